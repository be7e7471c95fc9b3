/* ir/const.c -- typed literals (MilConst).
 *
 * Inline tensors keep their elements unpacked, row-major, one storage cell per
 * element (mil_dtype_storage_size): bool / int4 / uintN<8 / fp8 in one byte,
 * fp16 / bf16 as raw bits, fp32 as float, fp64 as double, intN/uintN native,
 * strings as arena-owned `const char *`.  Everything is copied into the
 * program's arena.
 */
#include "ir/ir_int.h"
#include "ir/fp16.h"

#include <math.h>
#include <string.h>

MilConst *mil_const_tensor(MilProgram *p, const MilType *t, const void *data, int64_t count) {
    if (!p || !t || t->kind != MIL_TY_TENSOR || count < 0) return NULL;
    MilConst *c = mil_new(&p->arena, MilConst);
    if (!c) return NULL;
    c->kind = MIL_CONST_TENSOR;
    c->type = t;
    c->count = count;
    size_t es = mil_dtype_storage_size(t->dtype);
    if (es == 0) return NULL;
    c->data = mil_arena_alloc(&p->arena, (size_t)count * es);
    if (!c->data) return NULL;
    if (!data || count == 0) return c;
    if (t->dtype == MIL_DT_STRING) {
        const char *const *src = data;
        const char **dst = c->data;
        for (int64_t i = 0; i < count; i++) {
            dst[i] = src[i] ? mil_strdup(p, src[i]) : mil_strdup(p, "");
            if (!dst[i]) return NULL;
        }
    } else {
        memcpy(c->data, data, (size_t)count * es);
    }
    return c;
}

MilConst *mil_const_blob(MilProgram *p, const MilType *t, const char *path, uint64_t offset) {
    if (!p || !t || !path) return NULL;
    MilConst *c = mil_new(&p->arena, MilConst);
    if (!c) return NULL;
    c->kind = MIL_CONST_BLOB;
    c->type = t;
    c->blob_path = mil_strdup(p, path);
    c->blob_offset = offset;
    return c->blob_path ? c : NULL;
}

/* Stores v (already in range) into one storage cell of dtype dt. */
static void store_int(MilDType dt, void *cell, int64_t v) {
    switch (dt) {
    case MIL_DT_BOOL: *(uint8_t *)cell = v != 0; break;
    case MIL_DT_INT8: case MIL_DT_INT4: *(int8_t *)cell = (int8_t)v; break;
    case MIL_DT_UINT8: case MIL_DT_UINT4: case MIL_DT_UINT2: case MIL_DT_UINT1:
    case MIL_DT_UINT6: case MIL_DT_UINT3: *(uint8_t *)cell = (uint8_t)v; break;
    case MIL_DT_INT16: *(int16_t *)cell = (int16_t)v; break;
    case MIL_DT_UINT16: *(uint16_t *)cell = (uint16_t)v; break;
    case MIL_DT_INT32: *(int32_t *)cell = (int32_t)v; break;
    case MIL_DT_UINT32: *(uint32_t *)cell = (uint32_t)v; break;
    case MIL_DT_INT64: *(int64_t *)cell = v; break;
    case MIL_DT_UINT64: *(uint64_t *)cell = (uint64_t)v; break;
    default: break;
    }
}

/* fp8 encoders / decoders (OCP FP8: E4M3FN has no inf, S.1111.111 = NaN;
 * E5M2 is IEEE-like).  Round to nearest even via the float -> double path. */
static double fp8_decode(uint8_t b, int ebits, int mbits, bool fn) {
    int sign = b >> 7, e = (b >> mbits) & ((1 << ebits) - 1), m = b & ((1 << mbits) - 1);
    int bias = (1 << (ebits - 1)) - 1;
    double v;
    if (fn) {
        if (e == (1 << ebits) - 1 && m == (1 << mbits) - 1) return NAN;
    } else if (e == (1 << ebits) - 1) {
        v = m ? NAN : INFINITY;
        return sign ? -v : v;
    }
    if (e == 0) v = ldexp((double)m, 1 - bias - mbits);
    else v = ldexp((double)(m + (1 << mbits)), e - bias - mbits);
    return sign ? -v : v;
}

static uint8_t fp8_encode(double v, int ebits, int mbits, bool fn) {
    uint8_t sign = signbit(v) ? 0x80 : 0;
    if (isnan(v)) return fn ? 0x7f : 0x7e;
    double a = fabs(v);
    double maxv = fn ? 448.0 : 57344.0;      /* largest finite value */
    if (a > maxv) return (uint8_t)(sign | (fn ? 0x7f : 0x7c)); /* E4M3FN: NaN; E5M2: inf */
    /* Nearest representable value, ties to the even code (128 codes: cheap and exact). */
    uint8_t best = 0;
    double bestd = INFINITY;
    for (int code = 0; code < 0x80; code++) {
        double x = fp8_decode((uint8_t)code, ebits, mbits, fn);
        if (isnan(x) || isinf(x)) continue;
        double d = fabs(x - a);
        if (d < bestd || (d == bestd && (code & 1) == 0)) { bestd = d; best = (uint8_t)code; }
    }
    return (uint8_t)(sign | best);
}

static void store_float(MilDType dt, void *cell, double v) {
    switch (dt) {
    case MIL_DT_FP16: *(uint16_t *)cell = mil_f2h((float)v); break;
    case MIL_DT_BF16: *(uint16_t *)cell = mil_f2bf((float)v); break;
    case MIL_DT_FP32: *(float *)cell = (float)v; break;
    case MIL_DT_FP64: *(double *)cell = v; break;
    case MIL_DT_FP8E4M3FN: *(uint8_t *)cell = fp8_encode(v, 4, 3, true); break;
    case MIL_DT_FP8E5M2: *(uint8_t *)cell = fp8_encode(v, 5, 2, false); break;
    default: store_int(dt, cell, (int64_t)v); break;
    }
}

static MilConst *scalar(MilProgram *p, MilDType dt) {
    const MilType *t = mil_type_scalar(p, dt);
    return t ? mil_const_tensor(p, t, NULL, 1) : NULL;
}

MilConst *mil_const_scalar_int(MilProgram *p, MilDType dt, int64_t v) {
    MilConst *c = scalar(p, dt);
    if (!c) return NULL;
    if (mil_dtype_is_float(dt)) store_float(dt, c->data, (double)v);
    else store_int(dt, c->data, v);
    return c;
}

MilConst *mil_const_scalar_float(MilProgram *p, MilDType dt, double v) {
    MilConst *c = scalar(p, dt);
    if (!c) return NULL;
    store_float(dt, c->data, v);
    return c;
}

MilConst *mil_const_scalar_bool(MilProgram *p, bool v) {
    MilConst *c = scalar(p, MIL_DT_BOOL);
    if (c) *(uint8_t *)c->data = v;
    return c;
}

MilConst *mil_const_string(MilProgram *p, const char *s) {
    const MilType *t = mil_type_scalar(p, MIL_DT_STRING);
    if (!t) return NULL;
    return mil_const_tensor(p, t, &s, 1);
}

MilConst *mil_const_aggregate(MilProgram *p, MilConstKind kind, const MilType *t, int n, MilConst *const *items) {
    if (!p || !t || n < 0 || (n > 0 && !items)) return NULL;
    if (kind != MIL_CONST_LIST && kind != MIL_CONST_TUPLE && kind != MIL_CONST_DICT && kind != MIL_CONST_EMPTY)
        return NULL;
    MilConst *c = mil_new(&p->arena, MilConst);
    if (!c) return NULL;
    c->kind = kind;
    c->type = t;
    c->nitems = n;
    if (n > 0) {
        c->items = mil_arena_alloc(&p->arena, (size_t)n * sizeof *c->items);
        if (!c->items) return NULL;
        memcpy(c->items, items, (size_t)n * sizeof *c->items);
    }
    return c;
}

double mil_const_get_f64(const MilConst *c, int64_t i) {
    if (!c || c->kind != MIL_CONST_TENSOR || !c->data || i < 0 || i >= c->count) return 0.0;
    const void *cell = (const char *)c->data + (size_t)i * mil_dtype_storage_size(c->type->dtype);
    switch (c->type->dtype) {
    case MIL_DT_FP16: return mil_h2f(*(const uint16_t *)cell);
    case MIL_DT_BF16: return mil_bf2f(*(const uint16_t *)cell);
    case MIL_DT_FP32: return *(const float *)cell;
    case MIL_DT_FP64: return *(const double *)cell;
    case MIL_DT_FP8E4M3FN: return fp8_decode(*(const uint8_t *)cell, 4, 3, true);
    case MIL_DT_FP8E5M2: return fp8_decode(*(const uint8_t *)cell, 5, 2, false);
    case MIL_DT_UINT64: return (double)*(const uint64_t *)cell;
    case MIL_DT_STRING: return 0.0;
    default: return (double)mil_const_get_i64(c, i);
    }
}

int64_t mil_const_get_i64(const MilConst *c, int64_t i) {
    if (!c || c->kind != MIL_CONST_TENSOR || !c->data || i < 0 || i >= c->count) return 0;
    const void *cell = (const char *)c->data + (size_t)i * mil_dtype_storage_size(c->type->dtype);
    switch (c->type->dtype) {
    case MIL_DT_BOOL: return *(const uint8_t *)cell != 0;
    case MIL_DT_INT8: case MIL_DT_INT4: return *(const int8_t *)cell;
    case MIL_DT_UINT8: case MIL_DT_UINT4: case MIL_DT_UINT2: case MIL_DT_UINT1:
    case MIL_DT_UINT6: case MIL_DT_UINT3: return *(const uint8_t *)cell;
    case MIL_DT_INT16: return *(const int16_t *)cell;
    case MIL_DT_UINT16: return *(const uint16_t *)cell;
    case MIL_DT_INT32: return *(const int32_t *)cell;
    case MIL_DT_UINT32: return *(const uint32_t *)cell;
    case MIL_DT_INT64: return *(const int64_t *)cell;
    case MIL_DT_UINT64: return (int64_t)*(const uint64_t *)cell;
    case MIL_DT_STRING: return 0;
    default: {
        double v = mil_const_get_f64(c, i);
        if (isnan(v)) return 0;
        if (v >= 9.2233720368547758e18) return INT64_MAX;
        if (v <= -9.2233720368547758e18) return INT64_MIN;
        return (int64_t)v;
    }
    }
}

const char *mil_const_get_str(const MilConst *c) {
    if (!c || c->kind != MIL_CONST_TENSOR || !c->type || c->type->dtype != MIL_DT_STRING || c->count != 1 ||
        !c->data)
        return NULL;
    return *(const char *const *)c->data;
}
