/* runtime/cpu/kutil.h -- private helpers shared by the CPU kernels (k_*.c).
 *
 * Conventions used by every kernel:
 *   - an absent optional argument (slot_n == 0) takes the ops.def default,
 *     which the kernels know themselves (the device may also pass it);
 *   - a string argument is a MIL_DT_STRING tensor whose data points to an
 *     array of `const char *` (the IR's MilConst storage), rank 0;
 *   - sub-byte constants (uint1..uint6, int4) arrive unpacked, one byte per
 *     element (int4 as int8);
 *   - fp16/bf16 are read to fp32, computed in fp32 and rounded once on store.
 */
#ifndef MILC_RUNTIME_CPU_KUTIL_H
#define MILC_RUNTIME_CPU_KUTIL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ir/fp16.h"
#include "runtime/cpu/kernel.h"

#define KCHUNK 256

/* The hot element-wise loops (binary/unary ops, norms): compiled twice by
 * GCC, for AVX-512F and for the baseline, and chosen once at load time from
 * the CPUID feature flags (target_clones).  Only loops whose vector form is
 * bit-identical to the scalar one are marked: IEEE +,-,*,/ per element, no
 * reassociated reductions, and no contraction into FMA (-std=c11 implies
 * -ffp-contract=off).  Plain functions elsewhere (other compilers, the
 * sanitizer builds). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define K_VEC __attribute__((target_clones("avx512f", "default")))
#else
#define K_VEC
#endif

/* ------------------------------------------------------------ tensors */
int64_t k_numel(const MilRtTensor *t);
size_t k_esize(MilDType dt);          /* bytes per stored element, 0 if unsupported */
bool k_isfloat(MilDType dt);          /* fp16, bf16, fp32, fp64 */
bool k_isint(MilDType dt);            /* any integer type (incl. sub-byte unpacked) */
const char *k_dtname(MilDType dt);
MilDType k_dtype_from_name(const char *s);  /* MIL_DT_NONE if unknown */
void k_set_shape(MilRtTensor *o, MilDType dt, int rank, const int64_t *dims);
void k_contig_strides(int rank, const int64_t *dims, int64_t *strides);
/* Product of dims[a..b) (1 when empty): outer / inner sizes around an axis. */
static inline int64_t k_prod(const int64_t *dims, int a, int b) {
    int64_t p = 1;
    for (int i = a; i < b; i++) p *= dims[i];
    return p;
}

/* Raw storage access, one switch over the storage dtypes for the kernels and
 * for runtime/tensor.c (which includes this header for them).  p is the
 * tensor data, i a flat element index.  Each returns false, reading or
 * storing nothing, for a dtype outside its class. */
/* Float storage (fp16, bf16, fp32, fp64) read to double. */
static inline bool k_raw_getf(MilDType dt, const void *p, int64_t i, double *v) {
    switch (dt) {
    case MIL_DT_FP16: *v = mil_h2f(((const uint16_t *)p)[i]); return true;
    case MIL_DT_BF16: *v = mil_bf2f(((const uint16_t *)p)[i]); return true;
    case MIL_DT_FP32: *v = ((const float *)p)[i]; return true;
    case MIL_DT_FP64: *v = ((const double *)p)[i]; return true;
    default: return false;
    }
}
/* Bool (0 or 1) and integer storage (sub-byte unpacked; uint64 reinterpreted). */
static inline bool k_raw_geti(MilDType dt, const void *p, int64_t i, int64_t *v) {
    switch (dt) {
    case MIL_DT_BOOL: *v = ((const uint8_t *)p)[i] != 0; return true;
    case MIL_DT_INT8: case MIL_DT_INT4: *v = ((const int8_t *)p)[i]; return true;
    case MIL_DT_INT16: *v = ((const int16_t *)p)[i]; return true;
    case MIL_DT_INT32: *v = ((const int32_t *)p)[i]; return true;
    case MIL_DT_INT64: *v = ((const int64_t *)p)[i]; return true;
    case MIL_DT_UINT8: case MIL_DT_UINT4: case MIL_DT_UINT2: case MIL_DT_UINT1:
    case MIL_DT_UINT6: case MIL_DT_UINT3:
        *v = ((const uint8_t *)p)[i];
        return true;
    case MIL_DT_UINT16: *v = ((const uint16_t *)p)[i]; return true;
    case MIL_DT_UINT32: *v = ((const uint32_t *)p)[i]; return true;
    case MIL_DT_UINT64: *v = (int64_t)((const uint64_t *)p)[i]; return true;
    default: return false;
    }
}
/* Float storage from double (fp16/bf16 rounded once, from float). */
static inline bool k_raw_setf(MilDType dt, void *p, int64_t i, double v) {
    switch (dt) {
    case MIL_DT_FP16: ((uint16_t *)p)[i] = mil_f2h((float)v); return true;
    case MIL_DT_BF16: ((uint16_t *)p)[i] = mil_f2bf((float)v); return true;
    case MIL_DT_FP32: ((float *)p)[i] = (float)v; return true;
    case MIL_DT_FP64: ((double *)p)[i] = v; return true;
    default: return false;
    }
}
/* Bool (v != 0) and integer storage: the low bits of v, like numpy astype. */
static inline bool k_raw_seti(MilDType dt, void *p, int64_t i, int64_t v) {
    switch (dt) {
    case MIL_DT_BOOL: ((uint8_t *)p)[i] = v != 0; return true;
    case MIL_DT_INT8: case MIL_DT_INT4: ((int8_t *)p)[i] = (int8_t)(uint8_t)(uint64_t)v; return true;
    case MIL_DT_INT16: ((int16_t *)p)[i] = (int16_t)(uint16_t)(uint64_t)v; return true;
    case MIL_DT_INT32: ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v; return true;
    case MIL_DT_INT64: ((int64_t *)p)[i] = v; return true;
    case MIL_DT_UINT8: case MIL_DT_UINT4: case MIL_DT_UINT2: case MIL_DT_UINT1:
    case MIL_DT_UINT6: case MIL_DT_UINT3:
        ((uint8_t *)p)[i] = (uint8_t)(uint64_t)v;
        return true;
    case MIL_DT_UINT16: ((uint16_t *)p)[i] = (uint16_t)(uint64_t)v; return true;
    case MIL_DT_UINT32: ((uint32_t *)p)[i] = (uint32_t)(uint64_t)v; return true;
    case MIL_DT_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; return true;
    default: return false;
    }
}

/* Element access (slow paths; i is a flat element index). */
double k_getf(const MilRtTensor *t, int64_t i);
int64_t k_geti(const MilRtTensor *t, int64_t i);
void k_setf(MilRtTensor *t, int64_t i, double v);  /* to ints: truncate + saturate */
void k_seti(MilRtTensor *t, int64_t i, int64_t v); /* to ints: wrap like numpy astype */

/* Chunk access: n elements starting at element off with element stride st. */
void k_loadf(const MilRtTensor *t, int64_t off, int64_t st, int64_t n, float *dst);
void k_storef(MilRtTensor *t, int64_t off, int64_t n, const float *src);
void k_loadi(const MilRtTensor *t, int64_t off, int64_t st, int64_t n, int64_t *dst);
void k_storei(MilRtTensor *t, int64_t off, int64_t n, const int64_t *src);
/* Whole tensor to / from an fp32 buffer (contiguous). */
void k_tof32(const MilRtTensor *t, float *dst);
void k_fromf32(MilRtTensor *t, const float *src);
/* o = x, both float, element by element through fp32 (rounded once on store). */
void k_convertf(const MilRtTensor *x, MilRtTensor *o);
int64_t k_f2i_sat(double v, MilDType dt);  /* float -> int dtype: trunc, saturate, NaN -> 0 */
int64_t k_wrap_int(int64_t v, MilDType dt);

/* ---------------------------------------------------------- arguments */
const char *k_argname(const MilKernelCtx *k, int slot);
const char *k_opname(const MilKernelCtx *k);
/* Scalar arguments; absent -> def.  Fail (MIL_K_ERROR) when not a 1-element
 * tensor of a suitable type; MIL_K_NEED_DATA when the data is not known. */
int k_arg_int(MilKernelCtx *k, int slot, int64_t def, int64_t *out);
int k_arg_float(MilKernelCtx *k, int slot, double def, double *out);
int k_arg_bool(MilKernelCtx *k, int slot, bool def, bool *out);
int k_arg_str(MilKernelCtx *k, int slot, const char *def, const char **out);
/* 1-D (or scalar) integer vector; *n = -1 when absent. */
int k_arg_ints(MilKernelCtx *k, int slot, int64_t *out, int max, int *n);
int k_arg_bools(MilKernelCtx *k, int slot, bool *out, int max, int *n);
/* Required input present? */
const MilRtTensor *k_req(MilKernelCtx *k, int slot);
int k_norm_axis(MilKernelCtx *k, int64_t axis, int rank, int *out);
int k_need_float(MilKernelCtx *k, const MilRtTensor *t, const char *what);

/* x's axes split by red[] into kept (outer) and reduced (inner) index spaces,
 * each an odometer (dims, contiguous strides of x) walked with k_odo. */
typedef struct KAxisSplit {
    int nk, nr;
    int64_t kd[MIL_MAX_RANK], ks[MIL_MAX_RANK], rd[MIL_MAX_RANK], rs[MIL_MAX_RANK];
    int64_t nout, nred;
} KAxisSplit;
void k_axis_split(const MilRtTensor *x, const bool *red, KAxisSplit *it);
/* Offset of the j-th element of an odometer over n dims d with strides s. */
static inline int64_t k_odo(int n, const int64_t *d, const int64_t *s, int64_t j) {
    int64_t off = 0;
    for (int a = n - 1; a >= 0; a--) {
        off += (j % d[a]) * s[a];
        j /= d[a];
    }
    return off;
}

/* --------------------------------------------------------- broadcasting */
int k_bcast_shape(MilKernelCtx *k, const MilRtTensor *const *ts, int n, int *rank, int64_t *dims);
/* Row iterator over a broadcast: up to 4 operands (operand 0 usually the
 * output), contiguous inner rows of length `len` with per-operand element
 * stride `inner[j]` (0 or 1 after collapsing, but any value works). */
typedef struct KRowIter {
    int nop, rank;            /* rank of the outer loop (inner dim removed) */
    int64_t dims[MIL_MAX_RANK];
    int64_t st[4][MIL_MAX_RANK];
    int64_t idx[MIL_MAX_RANK];
    int64_t off[4], inner[4];
    int64_t len, rows, row;
} KRowIter;
/* ops[j] dims are broadcast to (rank, dims). */
void k_rows_init(KRowIter *it, int rank, const int64_t *dims, int nop, const MilRtTensor *const *ops);
bool k_rows_next(KRowIter *it); /* fills off[] for the next row; false at the end */
void k_rows_seek(KRowIter *it, int64_t row); /* the next k_rows_next gives row `row` */

/* ------------------------------------------------------------ scratch */
/* n rounded up to a multiple of 64: scratch blocks stay 64-byte aligned. */
static inline size_t k_al64(size_t n) { return (n + 63) & ~(size_t)63; }
/* n floats carved from *sp (advanced by k_al64 of their size). */
float *k_take(char **sp, int64_t n);
/* fp32 view of t: in place when fp32, else converted into *sp (advanced). */
const float *k_as_f32(const MilRtTensor *t, char **sp);
size_t k_f32_need(const MilRtTensor *t); /* what k_as_f32 takes from *sp */

/* ----------------------------------------------------------- threads */
/* fn(arg, i0, i1, t) on disjoint ranges covering [0, n), one contiguous
 * range per pool thread t < k_threads(k) (per-thread scratch can be indexed
 * by t), range starts at multiples of align; serial (one call, t = 0) when
 * the pool is absent, `work` (about the element-operations of the whole
 * loop) is too small, or when called from inside another parallel range. */
typedef void (*KRangeFn)(void *arg, int64_t i0, int64_t i1, int t);
void k_parallel(const MilKernelCtx *k, int64_t n, int64_t align, double work, KRangeFn fn, void *arg);
int k_threads(const MilKernelCtx *k);  /* threads k_parallel may use */

/* Row-major C[M, N] (ldc) = alpha op(A) op(B) + beta C with op(A) [M, K],
 * op(B) [K, N] (ta/tb: transposed storage), on the BLAS library, split over
 * the pool in blocks of rows (or of columns when M is small).  epi, when
 * non-NULL, is called by the thread that computed rows [m0, m1) x columns
 * [n0, n1) right after it (bias, rounding to the output dtype, ...). */
typedef void (*KGemmEpi)(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
void k_sgemm(const MilKernelCtx *k, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
             KGemmEpi epi, void *epi_arg);
void k_blas_init(void);  /* the BLAS library single-threaded (once per process) */
/* The fp32 view of argument `slot` (its first tensor): the device's prepared
 * copy of a constant when there is one, else k_as_f32 (scratch from *sp). */
const float *k_in_f32(const MilKernelCtx *k, int slot, char **sp);

/* ------------------------------------------------------ SIMD (k_simd.c) */
/* n fp16 <-> fp32 conversions, vectorised, bit-identical to mil_h2f/mil_f2h. */
void k_h2f_n(const uint16_t *src, float *dst, int64_t n);
void k_f2h_n(const float *src, uint16_t *dst, int64_t n);
/* v[i] = e^v[i]: expf, or a vector polynomial within ~1 ulp of it (AVX-512
 * level); NaN stays NaN, results below e^-104 are 0. */
void k_exp_n(float *v, int64_t n);
enum { K_SIMD_SCALAR = 0, K_SIMD_F16C = 1, K_SIMD_AVX512 = 2 };
int k_simd_best(void);        /* the best level this CPU supports (CPUID flags) */
int k_simd_level(void);       /* the level in use (default: the best) */
/* Selects a level <= k_simd_best() (tests compare every level with the
 * scalar one); -1 if unavailable.  Not thread-safe: call it before running. */
int k_simd_set(int level);

/* ---------------------------------------------------------- fusion */
/* Can unary step u (one use: operand `pos` of binary step b) run inside b?
 * Float element-wise ops of one shape (no broadcasting).  The fused kernel
 * computes u, rounds to u's dtype, applies b: bit-identical to the two ops. */
bool k_fusable_unary_binary(const MilKernelCtx *u, const MilKernelCtx *b, int pos);
int k_fused_unary_binary_run(MilKernelCtx *u, MilKernelCtx *b, int pos);

/* Multi-op patterns the device recognises at prepare (device.c
 * fuse_patterns) and runs as one kernel at the position of the pattern's
 * last op.  Every fused-away intermediate is rounded to its dtype exactly
 * where the unfused op would have stored it, and sums run in the order of
 * the unfused kernels, so results are bit-identical to running the ops.
 *   KF_SOFTMAX_BWD   o = p * (dp - reduce_sum(dp * p, axes = [-1], keep))
 *                    [* scale]: the softmax backward of autodiff
 *   KF_SOFTMAX_SM    o = softmax((x [* scale]) + mask, axis = -1), mask
 *                    [..., R, n] broadcast over the leading dims (R = x's
 *                    rows dim or 1): the attention scores of a forward
 * All tensors of a pattern are one float dtype (fp16 or fp32); x / dp / p /
 * o one shape; scale a one-element constant. */
enum { KF_NONE = 0, KF_SOFTMAX_BWD, KF_SOFTMAX_SM };
typedef struct KFused {
    int kind;
    const MilRtTensor *a, *b;    /* BWD: dp, p; SM: x, mask (NULL: none) */
    MilRtTensor *o;
    bool has_scale;
    float scale;
} KFused;
int k_fused_run(const MilKernelCtx *k, const KFused *f);
int k_softmax_fused_run(const MilKernelCtx *k, const KFused *f);  /* k_norm.c */
/* part[i % 8] += v[i] (n values from a multiple of 8 in their row): the
 * fixed-order row sums of reduce_sum and the fused kernels */
void k_sum8(double part[8], const float *v, int64_t n);
static inline double k_sum8_total(const double part[8]) {
    double s = 0;
    for (int q = 0; q < 8; q++) s += part[q];
    return s;
}
/* v rounded to dt as if stored and read back (fp16 with the vector code) */
void k_round_n(MilDType dt, float *v, int64_t n);

/* ------------------------------------------------------------- misc */
static inline float k_h2f(uint16_t h) { return mil_h2f(h); }
static inline uint16_t k_f2h(float f) { return mil_f2h(f); }
/* Round a float value to what storing it in dt and reading it back gives. */
float k_roundf_dt(float v, MilDType dt);

/* --------------------------------------------------------- the kernels */
#define KDECL(n) int n##_shape(MilKernelCtx *k); int n##_run(MilKernelCtx *k);
#define KDECLS(n) KDECL(n) size_t n##_scratch(const MilKernelCtx *k);
KDECL(k_binary) KDECL(k_unary) KDECL(k_clip) KDECL(k_prelu) KDECL(k_softplus_p)
KDECL(k_select) KDECL(k_cast)
KDECL(k_reduce) KDECL(k_argred) KDECL(k_cumsum) KDECLS(k_topk) KDECLS(k_argsort)
KDECL(k_softmax) KDECL(k_layer_norm) KDECL(k_batch_norm) KDECL(k_instance_norm)
KDECL(k_l2_norm) KDECL(k_lrn) KDECL(k_rms_norm)
KDECLS(k_sdpa) KDECLS(k_sdpa_bwd)
KDECLS(k_matmul) KDECLS(k_linear) KDECLS(k_conv) KDECLS(k_conv_t) KDECL(k_pool)
KDECL(k_reshape) KDECL(k_transpose) KDECL(k_expand_dims) KDECL(k_squeeze) KDECL(k_concat)
KDECL(k_stack) KDECL(k_split) KDECL(k_slice_size) KDECL(k_slice_index) KDECL(k_slice_update)
KDECL(k_tile) KDECL(k_pad) KDECL(k_flatten2d) KDECL(k_reverse) KDECL(k_d2s) KDECL(k_s2d)
KDECL(k_pixel_shuffle) KDECL(k_upsample_nn) KDECL(k_crop) KDECL(k_band_part)
KDECL(k_gather) KDECL(k_gather_axis) KDECL(k_gather_nd) KDECLS(k_scatter) KDECLS(k_scatter_axis)
KDECLS(k_scatter_nd) KDECL(k_one_hot)
KDECL(k_const) KDECL(k_fill) KDECL(k_fill_like) KDECL(k_range) KDECL(k_shapeop) KDECL(k_identity)
KDECL(k_affine_deq) KDECL(k_cx_cast) KDECL(k_lut) KDECL(k_sparse) KDECL(k_blockwise)

#endif
