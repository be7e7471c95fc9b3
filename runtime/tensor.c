/* runtime/tensor.c -- dtype table and dense tensor helpers of the runtime:
 * element access by double/int64, checked dtype conversion, random fill and
 * type formatting.  The dtype table comes from ir/dtypes.def (header-only). */
#include "runtime/runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fp16.h"
#include "runtime/cpu/kutil.h" /* k_raw_get/set: storage access shared with the kernels */

static const struct {
    const char *name;
    int bits, blob, flags;
} dt_table[MIL_DT_COUNT] = {
    [MIL_DT_NONE] = {"?", 0, 0, 0},
#define DT(id, name, bits, blob, proto, flags) [MIL_DT_##id] = {name, bits, blob, flags},
#include "ir/dtypes.def"
#undef DT
};

static bool dt_ok(MilDType dt) { return dt > MIL_DT_NONE && dt < MIL_DT_COUNT; }

const char *mil_rt_dtype_name(MilDType dt) { return dt_ok(dt) ? dt_table[dt].name : "?"; }

MilDType mil_rt_dtype_from_name(const char *s) {
    for (int i = 1; i < MIL_DT_COUNT; i++)
        if (strcmp(dt_table[i].name, s) == 0) return (MilDType)i;
    return MIL_DT_NONE;
}

int mil_rt_dtype_bits(MilDType dt) { return dt_ok(dt) ? dt_table[dt].bits : 0; }

size_t mil_rt_dtype_size(MilDType dt) {
    if (!dt_ok(dt)) return 0;
    if (dt == MIL_DT_STRING) return sizeof(const char *);
    int b = dt_table[dt].bits;
    return b <= 8 ? 1 : (size_t)b / 8;
}

bool mil_rt_dtype_is_float(MilDType dt) { return dt_ok(dt) && (dt_table[dt].flags & DTF_FLOAT); }
bool mil_rt_dtype_is_int(MilDType dt) { return dt_ok(dt) && (dt_table[dt].flags & DTF_INT); }
bool mil_rt_dtype_is_signed(MilDType dt) { return dt_ok(dt) && (dt_table[dt].flags & DTF_SIGNED); }
int mil_rt_dtype_blob_code(MilDType dt) { return dt_ok(dt) ? dt_table[dt].blob : 0; }

MilDType mil_rt_dtype_from_blob_code(int code) {
    if (code <= 0) return MIL_DT_NONE;
    for (int i = 1; i < MIL_DT_COUNT; i++)
        if (dt_table[i].blob == code) return (MilDType)i;
    return MIL_DT_NONE;
}

/* ---------------------------------------------------------------- tensors */

int64_t mil_rt_numel(const MilRtTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

size_t mil_rt_nbytes(const MilRtTensor *t) {
    return (size_t)mil_rt_numel(t) * mil_rt_dtype_size(t->dtype);
}

int mil_rt_tensor_alloc(MilRtTensor *t, MilRtErr *e) {
    if (t->rank < 0 || t->rank > MIL_MAX_RANK) return mil_rt_errf(e, "bad rank %d", t->rank);
    int64_t numel = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0) return mil_rt_errf(e, "cannot allocate a tensor with an unknown dimension");
        if (t->dims[i] > 0 && numel > ((int64_t)1 << 50) / t->dims[i])
            return mil_rt_errf(e, "tensor too large (%s with %d dims)", mil_rt_dtype_name(t->dtype), t->rank);
        numel *= t->dims[i];
    }
    size_t n = mil_rt_nbytes(t);
    size_t cap = (n + 63) & ~(size_t)63;
    if (cap == 0) cap = 64;
    t->data = aligned_alloc(64, cap);
    if (!t->data) return mil_rt_errf(e, "out of memory (%zu bytes)", n);
    memset(t->data, 0, cap);
    return 0;
}

void mil_rt_tensor_free(MilRtTensor *t) {
    if (!t) return;
    free(t->data);
    t->data = NULL;
}

int mil_rt_tensor_copy(MilRtTensor *dst, const MilRtTensor *src, MilRtErr *e) {
    MilRtTensor t = *src;
    t.data = NULL;
    if (mil_rt_tensor_alloc(&t, e)) return -1;
    if (src->data) memcpy(t.data, src->data, mil_rt_nbytes(src));
    *dst = t;
    return 0;
}

bool mil_rt_same_shape(const MilRtTensor *a, const MilRtTensor *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

double mil_rt_get_f64(const MilRtTensor *t, int64_t i) {
    double d;
    int64_t v;
    if (k_raw_getf(t->dtype, t->data, i, &d)) return d;
    if (t->dtype == MIL_DT_UINT64) return (double)((const uint64_t *)t->data)[i];
    if (k_raw_geti(t->dtype, t->data, i, &v)) return (double)v;
    return NAN;
}

int64_t mil_rt_get_i64(const MilRtTensor *t, int64_t i) {
    int64_t iv;
    if (k_raw_geti(t->dtype, t->data, i, &iv)) return iv;
    double v = mil_rt_get_f64(t, i);
    if (!(v == v)) return 0;
    if (v >= 9.2e18) return INT64_MAX;
    if (v <= -9.2e18) return INT64_MIN;
    return (int64_t)v;
}

static int64_t sat(double v, double lo, double hi) {
    if (!(v == v)) return 0;
    v = nearbyint(v);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int64_t)v;
}

/* Range of an integer dtype. */
static void int_range(MilDType dt, double *lo, double *hi) {
    int b = mil_rt_dtype_bits(dt);
    if (mil_rt_dtype_is_signed(dt)) {
        *lo = -ldexp(1, b - 1);
        *hi = ldexp(1, b - 1) - 1;
    } else {
        *lo = 0;
        *hi = ldexp(1, b) - 1;
    }
}

/* To integers: rounded to nearest and saturated to the dtype's range (the
 * 64-bit types to [-9.2e18, 9.2e18] and [0, 1.8e19]). */
void mil_rt_set_f64(MilRtTensor *t, int64_t i, double v) {
    MilDType dt = t->dtype;
    double lo, hi;
    if (k_raw_setf(dt, t->data, i, v)) return;
    if (dt == MIL_DT_BOOL) {
        k_raw_seti(dt, t->data, i, v != 0);
        return;
    }
    if (!mil_rt_dtype_is_int(dt)) return;
    if (dt == MIL_DT_INT64) { lo = -9.2e18; hi = 9.2e18; }
    else if (dt == MIL_DT_UINT64) { lo = 0; hi = 1.8e19; }
    else int_range(dt, &lo, &hi);
    k_raw_seti(dt, t->data, i, sat(v, lo, hi));
}

const char *mil_rt_get_str(const MilRtTensor *t) {
    if (!t || t->dtype != MIL_DT_STRING || t->rank != 0 || !t->data) return NULL;
    return *(const char *const *)t->data;
}

void mil_rt_fp16_to_fp32(const uint16_t *src, float *dst, size_t n) { k_h2f_n(src, dst, (int64_t)n); }
void mil_rt_fp32_to_fp16(const float *src, uint16_t *dst, size_t n) { k_f2h_n(src, dst, (int64_t)n); }

int mil_rt_tensor_convert(MilRtTensor *dst, MilDType to, const MilRtTensor *src, MilRtErr *e) {
    MilDType from = src->dtype;
    bool ff = mil_rt_dtype_is_float(from) && mil_rt_dtype_is_float(to);
    bool ii = mil_rt_dtype_is_int(from) && mil_rt_dtype_is_int(to);
    bool same = from == to;
    if (!same && !ff && !ii)
        return mil_rt_errf(e, "cannot convert %s to %s", mil_rt_dtype_name(from), mil_rt_dtype_name(to));
    MilRtTensor t = *src;
    t.dtype = to;
    t.data = NULL;
    if (mil_rt_tensor_alloc(&t, e)) return -1;
    int64_t n = mil_rt_numel(src);
    if (same) {
        memcpy(t.data, src->data, mil_rt_nbytes(src));
    } else if (from == MIL_DT_FP16 && to == MIL_DT_FP32) {
        k_h2f_n(src->data, t.data, n);
    } else if (from == MIL_DT_FP32 && to == MIL_DT_FP16) {
        k_f2h_n(src->data, t.data, n);
    } else if (ff) {
        for (int64_t i = 0; i < n; i++) mil_rt_set_f64(&t, i, mil_rt_get_f64(src, i));
    } else {
        double lo, hi;
        int_range(to, &lo, &hi);
        for (int64_t i = 0; i < n; i++) {
            int64_t v = mil_rt_get_i64(src, i);
            /* range-check the unsigned value itself (get_i64 would saturate it) */
            uint64_t u = from == MIL_DT_UINT64 ? ((const uint64_t *)src->data)[i] : 0;
            if (u > (uint64_t)INT64_MAX) {
                mil_rt_tensor_free(&t);
                return mil_rt_errf(e, "value %llu at index %lld does not fit in %s", (unsigned long long)u,
                                   (long long)i, mil_rt_dtype_name(to));
            }
            if ((double)v < lo || (double)v > hi) {
                mil_rt_tensor_free(&t);
                return mil_rt_errf(e, "value %lld at index %lld does not fit in %s", (long long)v,
                                   (long long)i, mil_rt_dtype_name(to));
            }
            mil_rt_set_f64(&t, i, (double)v);
            if (to == MIL_DT_INT64) ((int64_t *)t.data)[i] = v; /* exact beyond 2^53 */
        }
    }
    *dst = t;
    return 0;
}

char *mil_rt_format_type(MilDType dt, int rank, const int64_t *dims, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "%s [", mil_rt_dtype_name(dt));
    for (int i = 0; i < rank && n < size; i++) {
        if (dims[i] < 0)
            n += (size_t)snprintf(buf + n, size - n, "%s?", i ? ", " : "");
        else
            n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    }
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

/* xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
 * generators, scrambled", 2016). */
static uint64_t xs_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* splitmix64's output function (Steele, Lea, Flood 2014): a bijection that
 * scrambles the caller's state, so that nearby seeds (1, 2, ...) do not start
 * xorshift64* on related states -- xorshift64* is linear over GF(2), and
 * seeding it with 2k gave seed k's stream doubled. */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

void mil_rt_tensor_fill_random(MilRtTensor *t, uint64_t *state) {
    *state = splitmix64(*state);
    if (*state == 0) *state = 0x9E3779B97F4A7C15ULL;
    int64_t n = mil_rt_numel(t);
    bool fl = mil_rt_dtype_is_float(t->dtype);
    int imax = (t->dtype == MIL_DT_BOOL || t->dtype == MIL_DT_UINT1) ? 2 : 8;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = xs_next(state);
        if (fl)
            mil_rt_set_f64(t, i, (double)(r >> 11) * 0x1p-52 - 1.0); /* [-1, 1) */
        else
            mil_rt_set_f64(t, i, (double)((r >> 32) % (uint64_t)imax));
    }
}
