/* runtime/cpu/k_util.c -- helpers shared by the CPU kernels: element access
 * for every storage dtype, argument decoding, broadcasting. */
#include <stdarg.h>
#include <stdio.h>

#include "runtime/cpu/kutil.h"

/* The contract's error helper: formats into k->err (the device prefixes the
 * op's location when it reports it). */
int mil_k_fail(MilKernelCtx *k, const char *fmt, ...) {
    if (k && k->err && k->errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(k->err, k->errsize, fmt, ap);
        va_end(ap);
    }
    return MIL_K_ERROR;
}

/* ------------------------------------------------------------ names */

typedef struct { int op, slot; const char *name; } KArgName;
static const KArgName k_argnames[] = {
#define OP(id, name, wire, nres, flags)
#define ARG(op, name, flags, def) {MIL_OP_##op, MIL_A_##op##_##name, #name},
#include "ir/ops.def"
#undef OP
#undef ARG
};

static const char *const k_opnames[MIL_OP_COUNT] = {
    [MIL_OP_UNKNOWN] = "unknown",
#define OP(id, name, wire, nres, flags) [MIL_OP_##id] = name,
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
};

const char *k_argname(const MilKernelCtx *k, int slot) {
    for (size_t i = 0; i < sizeof k_argnames / sizeof k_argnames[0]; i++)
        if (k_argnames[i].op == (int)k->kind && k_argnames[i].slot == slot) return k_argnames[i].name;
    return "?";
}

const char *k_opname(const MilKernelCtx *k) {
    if ((int)k->kind < 0 || k->kind >= MIL_OP_COUNT || !k_opnames[k->kind]) return "?";
    return k_opnames[k->kind];
}

static const char *const k_dtnames[MIL_DT_COUNT] = {
    [MIL_DT_NONE] = "none",
#define DT(id, name, bits, blob, proto, flags) [MIL_DT_##id] = name,
#include "ir/dtypes.def"
#undef DT
};

const char *k_dtname(MilDType dt) {
    if ((int)dt < 0 || dt >= MIL_DT_COUNT || !k_dtnames[dt]) return "?";
    return k_dtnames[dt];
}

MilDType k_dtype_from_name(const char *s) {
    if (!s) return MIL_DT_NONE;
    for (int i = 1; i < MIL_DT_COUNT; i++)
        if (k_dtnames[i] && strcmp(k_dtnames[i], s) == 0) return (MilDType)i;
    /* coremltools spellings */
    if (!strcmp(s, "float32")) return MIL_DT_FP32;
    if (!strcmp(s, "float16")) return MIL_DT_FP16;
    return MIL_DT_NONE;
}

/* ------------------------------------------------------------ tensors */

int64_t k_numel(const MilRtTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

size_t k_esize(MilDType dt) {
    switch (dt) {
    case MIL_DT_BOOL: case MIL_DT_INT8: case MIL_DT_UINT8: case MIL_DT_INT4: case MIL_DT_UINT4:
    case MIL_DT_UINT2: case MIL_DT_UINT1: case MIL_DT_UINT6: case MIL_DT_UINT3:
    case MIL_DT_FP8E4M3FN: case MIL_DT_FP8E5M2:
        return 1;
    case MIL_DT_FP16: case MIL_DT_BF16: case MIL_DT_INT16: case MIL_DT_UINT16: return 2;
    case MIL_DT_FP32: case MIL_DT_INT32: case MIL_DT_UINT32: return 4;
    case MIL_DT_FP64: case MIL_DT_INT64: case MIL_DT_UINT64: return 8;
    case MIL_DT_STRING: return sizeof(const char *);
    default: return 0;
    }
}

bool k_isfloat(MilDType dt) {
    return dt == MIL_DT_FP16 || dt == MIL_DT_FP32 || dt == MIL_DT_BF16 || dt == MIL_DT_FP64;
}

bool k_isint(MilDType dt) {
    switch (dt) {
    case MIL_DT_INT8: case MIL_DT_INT16: case MIL_DT_INT32: case MIL_DT_INT64: case MIL_DT_INT4:
    case MIL_DT_UINT8: case MIL_DT_UINT16: case MIL_DT_UINT32: case MIL_DT_UINT64: case MIL_DT_UINT4:
    case MIL_DT_UINT2: case MIL_DT_UINT1: case MIL_DT_UINT6: case MIL_DT_UINT3:
        return true;
    default: return false;
    }
}

void k_set_shape(MilRtTensor *o, MilDType dt, int rank, const int64_t *dims) {
    o->dtype = dt;
    o->rank = rank;
    for (int i = 0; i < rank; i++) o->dims[i] = dims[i];
}

void k_contig_strides(int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) { strides[i] = s; s *= dims[i]; }
}

double k_getf(const MilRtTensor *t, int64_t i) {
    double v;
    if (k_raw_getf(t->dtype, t->data, i, &v)) return v;
    return (double)k_geti(t, i);
}

int64_t k_geti(const MilRtTensor *t, int64_t i) {
    int64_t v;
    if (k_raw_geti(t->dtype, t->data, i, &v)) return v;
    if (k_isfloat(t->dtype)) return k_f2i_sat(k_getf(t, i), MIL_DT_INT64);
    return 0;
}

int64_t k_wrap_int(int64_t v, MilDType dt) {
    switch (dt) {
    case MIL_DT_INT8: return (int8_t)(uint8_t)(uint64_t)v;
    case MIL_DT_INT16: return (int16_t)(uint16_t)(uint64_t)v;
    case MIL_DT_INT32: return (int32_t)(uint32_t)(uint64_t)v;
    case MIL_DT_UINT8: return (uint8_t)(uint64_t)v;
    case MIL_DT_UINT16: return (uint16_t)(uint64_t)v;
    case MIL_DT_UINT32: return (uint32_t)(uint64_t)v;
    case MIL_DT_BOOL: return v != 0;
    default: return v;
    }
}

int64_t k_f2i_sat(double v, MilDType dt) {
    if (v != v) return 0;
    double lo, hi;
    switch (dt) {
    case MIL_DT_INT8: case MIL_DT_INT4: lo = -128; hi = 127; break;
    case MIL_DT_INT16: lo = -32768; hi = 32767; break;
    case MIL_DT_INT32: lo = -2147483648.0; hi = 2147483647.0; break;
    case MIL_DT_UINT8: case MIL_DT_UINT4: case MIL_DT_UINT2: case MIL_DT_UINT1:
    case MIL_DT_UINT6: case MIL_DT_UINT3: lo = 0; hi = 255; break;
    case MIL_DT_UINT16: lo = 0; hi = 65535; break;
    case MIL_DT_UINT32: lo = 0; hi = 4294967295.0; break;
    case MIL_DT_BOOL: return v != 0;
    default: lo = -9223372036854775808.0; hi = 9223372036854774784.0; break;
    }
    v = trunc(v);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int64_t)v;
}

void k_setf(MilRtTensor *t, int64_t i, double v) {
    if (k_raw_setf(t->dtype, t->data, i, v)) return;
    if (t->dtype == MIL_DT_BOOL) k_raw_seti(MIL_DT_BOOL, t->data, i, v != 0);
    else k_seti(t, i, k_f2i_sat(v, t->dtype));
}

void k_seti(MilRtTensor *t, int64_t i, int64_t v) {
    if (!k_raw_seti(t->dtype, t->data, i, v)) k_setf(t, i, (double)v);
}

void k_loadf(const MilRtTensor *t, int64_t off, int64_t st, int64_t n, float *dst) {
    switch (t->dtype) {
    case MIL_DT_FP32: {
        const float *p = (const float *)t->data + off;
        if (st == 1) memcpy(dst, p, (size_t)n * sizeof(float));
        else if (st == 0) for (int64_t i = 0; i < n; i++) dst[i] = p[0];
        else for (int64_t i = 0; i < n; i++) dst[i] = p[i * st];
        return;
    }
    case MIL_DT_FP16: {
        /* a broadcast operand (stride 0) is converted once; a strided one is
         * gathered into chunks for the vector conversion */
        const uint16_t *p = (const uint16_t *)t->data + off;
        if (st == 1) k_h2f_n(p, dst, n);
        else if (st == 0) {
            float v = mil_h2f(p[0]);
            for (int64_t i = 0; i < n; i++) dst[i] = v;
        } else {
            uint16_t h[KCHUNK];
            for (int64_t s = 0; s < n; s += KCHUNK) {
                int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
                for (int64_t i = 0; i < c; i++) h[i] = p[(s + i) * st];
                k_h2f_n(h, dst + s, c);
            }
        }
        return;
    }
    case MIL_DT_BF16: {
        const uint16_t *p = (const uint16_t *)t->data + off;
        for (int64_t i = 0; i < n; i++) dst[i] = mil_bf2f(p[i * st]);
        return;
    }
    case MIL_DT_INT32: {
        const int32_t *p = (const int32_t *)t->data + off;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)p[i * st];
        return;
    }
    default:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)k_getf(t, off + i * st);
        return;
    }
}

void k_storef(MilRtTensor *t, int64_t off, int64_t n, const float *src) {
    switch (t->dtype) {
    case MIL_DT_FP32: memcpy((float *)t->data + off, src, (size_t)n * sizeof(float)); return;
    case MIL_DT_FP16: k_f2h_n(src, (uint16_t *)t->data + off, n); return;
    default:
        for (int64_t i = 0; i < n; i++) k_setf(t, off + i, src[i]);
        return;
    }
}

void k_loadi(const MilRtTensor *t, int64_t off, int64_t st, int64_t n, int64_t *dst) {
    switch (t->dtype) {
    case MIL_DT_INT32: {
        const int32_t *p = (const int32_t *)t->data + off;
        for (int64_t i = 0; i < n; i++) dst[i] = p[i * st];
        return;
    }
    case MIL_DT_BOOL: case MIL_DT_UINT8: {
        const uint8_t *p = (const uint8_t *)t->data + off;
        for (int64_t i = 0; i < n; i++) dst[i] = t->dtype == MIL_DT_BOOL ? p[i * st] != 0 : p[i * st];
        return;
    }
    default:
        for (int64_t i = 0; i < n; i++) dst[i] = k_geti(t, off + i * st);
        return;
    }
}

void k_storei(MilRtTensor *t, int64_t off, int64_t n, const int64_t *src) {
    switch (t->dtype) {
    case MIL_DT_INT32: {
        int32_t *p = (int32_t *)t->data + off;
        for (int64_t i = 0; i < n; i++) p[i] = (int32_t)k_wrap_int(src[i], MIL_DT_INT32);
        return;
    }
    case MIL_DT_BOOL: {
        uint8_t *p = (uint8_t *)t->data + off;
        for (int64_t i = 0; i < n; i++) p[i] = src[i] != 0;
        return;
    }
    default:
        for (int64_t i = 0; i < n; i++) k_seti(t, off + i, src[i]);
        return;
    }
}

void k_tof32(const MilRtTensor *t, float *dst) { k_loadf(t, 0, 1, k_numel(t), dst); }
void k_fromf32(MilRtTensor *t, const float *src) { k_storef(t, 0, k_numel(t), src); }

void k_convertf(const MilRtTensor *x, MilRtTensor *o) {
    int64_t n = k_numel(x);
    float buf[KCHUNK];
    for (int64_t s = 0; s < n; s += KCHUNK) {
        int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
        k_loadf(x, s, 1, c, buf);
        k_storef(o, s, c, buf);
    }
}

float *k_take(char **sp, int64_t n) {
    float *p = (float *)*sp;
    *sp += k_al64((size_t)n * sizeof(float));
    return p;
}

const float *k_as_f32(const MilRtTensor *t, char **sp) {
    if (t->dtype == MIL_DT_FP32) return t->data;
    float *d = (float *)*sp;
    k_tof32(t, d);
    *sp += k_al64((size_t)k_numel(t) * sizeof(float));
    return d;
}

typedef struct { const MilRtTensor *t; float *d; } ConvJob;
static void conv_part(void *arg, int64_t i0, int64_t i1, int tid) {
    const ConvJob *j = arg;
    (void)tid;
    k_loadf(j->t, i0, 1, i1 - i0, j->d + i0);
}

const float *k_in_f32(const MilKernelCtx *k, int slot, char **sp) {
    if (k->cf32 && slot >= 0 && slot < k->nslots && k->cf32[slot]) return k->cf32[slot];
    const MilRtTensor *t = mil_k_in(k, slot);
    if (t->dtype == MIL_DT_FP32) return t->data;
    float *d = (float *)*sp;
    int64_t n = k_numel(t);
    ConvJob j = {t, d};
    k_parallel(k, n, 64, (double)n, conv_part, &j);
    *sp += k_al64((size_t)n * sizeof(float));
    return d;
}

size_t k_f32_need(const MilRtTensor *t) {
    return t->dtype == MIL_DT_FP32 ? 0 : k_al64((size_t)k_numel(t) * sizeof(float));
}

float k_roundf_dt(float v, MilDType dt) {
    if (dt == MIL_DT_FP16) return mil_h2f(mil_f2h(v));
    if (dt == MIL_DT_BF16) return mil_bf2f(mil_f2bf(v));
    return v;
}

/* ---------------------------------------------------------- arguments */

const MilRtTensor *k_req(MilKernelCtx *k, int slot) {
    const MilRtTensor *t = mil_k_in(k, slot);
    if (!t) mil_k_fail(k, "%s: missing required argument '%s'", k_opname(k), k_argname(k, slot));
    return t;
}

static bool k_isnumber(MilDType dt) { return k_isfloat(dt) || k_isint(dt) || dt == MIL_DT_BOOL; }
static bool k_isboolish(MilDType dt) { return dt == MIL_DT_BOOL || k_isint(dt); }
static bool k_isstring(MilDType dt) { return dt == MIL_DT_STRING; }

/* The argument at slot in *tp (NULL when absent); fails when ok(its dtype)
 * does not hold. */
static int k_arg_of(MilKernelCtx *k, int slot, bool (*ok)(MilDType), const char *what, const MilRtTensor **tp) {
    const MilRtTensor *t = *tp = mil_k_in(k, slot);
    if (t && !ok(t->dtype))
        return mil_k_fail(k, "%s: argument '%s' must be %s, got %s", k_opname(k), k_argname(k, slot), what,
                          k_dtname(t->dtype));
    return 0;
}

/* k_arg_of, and a present argument must be one element of known data. */
static int k_arg_scalar(MilKernelCtx *k, int slot, bool (*ok)(MilDType), const char *what, const MilRtTensor **tp) {
    int rc = k_arg_of(k, slot, ok, what, tp);
    const MilRtTensor *t = *tp;
    if (rc || !t) return rc;
    if (k_numel(t) != 1 || t->rank > 1)
        return mil_k_fail(k, "%s: argument '%s' must be a scalar", k_opname(k), k_argname(k, slot));
    if (!t->data) return MIL_K_NEED_DATA;
    return 0;
}

/* k_arg_of, and a present argument must be 1-D (or scalar) with at most max
 * values of known data; *n is their count, -1 when absent. */
static int k_arg_vector(MilKernelCtx *k, int slot, bool (*ok)(MilDType), const char *what, int max,
                        const MilRtTensor **tp, int *n) {
    int rc = k_arg_of(k, slot, ok, what, tp);
    const MilRtTensor *t = *tp;
    if (rc) return rc;
    if (!t) { *n = -1; return 0; }
    if (t->rank > 1)
        return mil_k_fail(k, "%s: argument '%s' must be 1-D, got rank %d", k_opname(k),
                          k_argname(k, slot), t->rank);
    int64_t cnt = k_numel(t);
    if (cnt > max)
        return mil_k_fail(k, "%s: argument '%s' has %lld values, at most %d allowed", k_opname(k),
                          k_argname(k, slot), (long long)cnt, max);
    if (!t->data) return MIL_K_NEED_DATA;
    *n = (int)cnt;
    return 0;
}

int k_arg_int(MilKernelCtx *k, int slot, int64_t def, int64_t *out) {
    const MilRtTensor *t;
    int rc = k_arg_scalar(k, slot, k_isint, "an integer", &t);
    if (!rc) *out = t ? k_geti(t, 0) : def;
    return rc;
}

int k_arg_float(MilKernelCtx *k, int slot, double def, double *out) {
    const MilRtTensor *t;
    int rc = k_arg_scalar(k, slot, k_isnumber, "a number", &t);
    if (!rc) *out = t ? k_getf(t, 0) : def;
    return rc;
}

int k_arg_bool(MilKernelCtx *k, int slot, bool def, bool *out) {
    const MilRtTensor *t;
    int rc = k_arg_scalar(k, slot, k_isboolish, "a bool", &t);
    if (!rc) *out = t ? k_geti(t, 0) != 0 : def;
    return rc;
}

int k_arg_str(MilKernelCtx *k, int slot, const char *def, const char **out) {
    const MilRtTensor *t;
    int rc = k_arg_of(k, slot, k_isstring, "a string", &t);
    if (rc) return rc;
    if (!t) { *out = def; return 0; }
    if (k_numel(t) != 1)
        return mil_k_fail(k, "%s: argument '%s' must be a single string", k_opname(k), k_argname(k, slot));
    if (!t->data) return MIL_K_NEED_DATA;
    *out = ((const char *const *)t->data)[0];
    if (!*out) return mil_k_fail(k, "%s: argument '%s' is a null string", k_opname(k), k_argname(k, slot));
    return 0;
}

int k_arg_ints(MilKernelCtx *k, int slot, int64_t *out, int max, int *n) {
    const MilRtTensor *t;
    int rc = k_arg_vector(k, slot, k_isint, "integers", max, &t, n);
    for (int i = 0; !rc && t && i < *n; i++) out[i] = k_geti(t, i);
    return rc;
}

int k_arg_bools(MilKernelCtx *k, int slot, bool *out, int max, int *n) {
    const MilRtTensor *t;
    int rc = k_arg_vector(k, slot, k_isboolish, "bools", max, &t, n);
    for (int i = 0; !rc && t && i < *n; i++) out[i] = k_geti(t, i) != 0;
    return rc;
}

int k_norm_axis(MilKernelCtx *k, int64_t axis, int rank, int *out) {
    if (axis < -rank || axis >= rank)
        return mil_k_fail(k, "%s: axis %lld out of range for rank %d", k_opname(k), (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

int k_need_float(MilKernelCtx *k, const MilRtTensor *t, const char *what) {
    if (t->dtype != MIL_DT_FP16 && t->dtype != MIL_DT_FP32 && t->dtype != MIL_DT_BF16)
        return mil_k_fail(k, "%s: %s must be fp16 or fp32, got %s", k_opname(k), what, k_dtname(t->dtype));
    return 0;
}

void k_axis_split(const MilRtTensor *x, const bool *red, KAxisSplit *it) {
    int64_t st[MIL_MAX_RANK];
    k_contig_strides(x->rank, x->dims, st);
    it->nk = it->nr = 0;
    it->nout = it->nred = 1;
    for (int i = 0; i < x->rank; i++) {
        if (red[i]) { it->rd[it->nr] = x->dims[i]; it->rs[it->nr++] = st[i]; it->nred *= x->dims[i]; }
        else { it->kd[it->nk] = x->dims[i]; it->ks[it->nk++] = st[i]; it->nout *= x->dims[i]; }
    }
}

/* --------------------------------------------------------- broadcasting */

int k_bcast_shape(MilKernelCtx *k, const MilRtTensor *const *ts, int n, int *rank, int64_t *dims) {
    int r = 0;
    for (int i = 0; i < n; i++) if (ts[i]->rank > r) r = ts[i]->rank;
    for (int a = 0; a < r; a++) {
        int64_t d = 1;
        for (int i = 0; i < n; i++) {
            int ta = a - (r - ts[i]->rank);
            if (ta < 0) continue;
            int64_t e = ts[i]->dims[ta];
            if (e == d || e == 1) continue;
            if (d != 1)
                return mil_k_fail(k, "%s: shapes are not broadcast-compatible (axis %d: %lld vs %lld)",
                                  k_opname(k), a, (long long)d, (long long)e);
            d = e;
        }
        dims[a] = d;
    }
    *rank = r;
    return 0;
}

void k_rows_init(KRowIter *it, int rank, const int64_t *dims, int nop, const MilRtTensor *const *ops) {
    int64_t st[4][MIL_MAX_RANK], d[MIL_MAX_RANK];
    int64_t total = 1;
    for (int a = 0; a < rank; a++) total *= dims[a];
    for (int j = 0; j < nop; j++) {
        const MilRtTensor *t = ops[j];
        int64_t cs[MIL_MAX_RANK];
        k_contig_strides(t->rank, t->dims, cs);
        for (int a = 0; a < rank; a++) {
            int ta = a - (rank - t->rank);
            st[j][a] = (ta < 0 || t->dims[ta] == 1) ? 0 : cs[ta];
        }
    }
    /* drop size-1 axes, then merge axes that are contiguous for every operand */
    int m = 0;
    int64_t cst[4][MIL_MAX_RANK];
    for (int a = 0; a < rank; a++) {
        if (dims[a] == 1) continue;
        if (m > 0) {
            bool merge = true;
            for (int j = 0; j < nop; j++)
                if (cst[j][m - 1] != st[j][a] * dims[a]) { merge = false; break; }
            if (merge) {
                d[m - 1] *= dims[a];
                for (int j = 0; j < nop; j++) cst[j][m - 1] = st[j][a];
                continue;
            }
        }
        d[m] = dims[a];
        for (int j = 0; j < nop; j++) cst[j][m] = st[j][a];
        m++;
    }
    it->nop = nop;
    if (m == 0) {
        it->rank = 0;
        it->len = 1;
        for (int j = 0; j < nop; j++) it->inner[j] = 0;
    } else {
        it->rank = m - 1;
        it->len = d[m - 1];
        for (int j = 0; j < nop; j++) it->inner[j] = cst[j][m - 1];
        for (int a = 0; a < m - 1; a++) {
            it->dims[a] = d[a];
            for (int j = 0; j < nop; j++) it->st[j][a] = cst[j][a];
        }
    }
    it->rows = total == 0 ? 0 : total / it->len;
    it->row = 0;
    for (int a = 0; a < MIL_MAX_RANK; a++) it->idx[a] = 0;
}

bool k_rows_next(KRowIter *it) {
    if (it->row >= it->rows) return false;
    for (int j = 0; j < it->nop; j++) {
        int64_t o = 0;
        for (int a = 0; a < it->rank; a++) o += it->idx[a] * it->st[j][a];
        it->off[j] = o;
    }
    for (int a = it->rank - 1; a >= 0; a--) {
        if (++it->idx[a] < it->dims[a]) break;
        it->idx[a] = 0;
    }
    it->row++;
    return true;
}

void k_rows_seek(KRowIter *it, int64_t row) {
    it->row = row;
    for (int a = it->rank - 1; a >= 0; a--) {
        it->idx[a] = row % it->dims[a];
        row /= it->dims[a];
    }
}
