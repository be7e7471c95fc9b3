/* test/runtime/test_cpu_fast.c -- the CPU device's fast paths against its
 * scalar reference: vectorised fp16 conversion on every instruction-set level
 * this machine has (bit-identical to ir/fp16.h on all 65536 halves and a
 * sweep of floats), and the threaded / vectorised kernels on sizes that are
 * not multiples of the vector width or the block sizes, run serially with
 * the scalar conversion and on pools of 2 and 3 threads with the vector one:
 * outputs must be bit-identical (kernels using the vector exp and OpenBLAS:
 * within rounding, see modes_tol).  Attention is also checked against a naive
 * double-precision reference (causal float mask, bool mask, none). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fp16.h"
#include "runtime/cpu/kutil.h"
#include "test_kernels.h"
#include "testutil.h"

/* ------------------------------------------------------------ conversion */

Test(cpu_fast, fp16_to_fp32_every_half_every_level) {
    static uint16_t h[65536 + 13];
    static float got[65536 + 13], want[65536 + 13];
    for (int i = 0; i < 65536 + 13; i++) h[i] = (uint16_t)(i * 40503u);  /* odd multiplier: all 65536 */
    for (int i = 0; i < 65536 + 13; i++) want[i] = mil_h2f(h[i]);
    int best = k_simd_best();
    for (int lv = K_SIMD_SCALAR; lv <= best; lv++) {
        cr_assert_eq(k_simd_set(lv), 0);
        for (int off = 0; off < 3; off++) {  /* unaligned starts and odd tails */
            memset(got, 0x55, sizeof got);
            k_h2f_n(h + off, got + off, 65536 + 13 - 2 * off);
            cr_assert(memcmp(got + off, want + off, (65536 + 13 - 2 * off) * sizeof(float)) == 0,
                      "level %d, offset %d", lv, off);
        }
    }
    k_simd_set(best);
    cr_assert_eq(k_simd_set(best + 1), -1);
}

Test(cpu_fast, fp32_to_fp16_sweep_every_level) {
    enum { N = 1 << 20 };
    float *f = malloc(N * sizeof *f);
    uint16_t *got = malloc(N * sizeof *got), *want = malloc(N * sizeof *want);
    uint32_t bits = 0;
    for (int i = 0; i < N; i++) {  /* every exponent, many mantissas, both signs */
        bits = (uint32_t)i * 4099u + (uint32_t)(i >> 7);
        memcpy(&f[i], &bits, 4);
    }
    /* specials: ties in the normal and subnormal range, overflow edge, NaNs, inf, -0 */
    uint32_t sp[] = {0x3f801000u, 0x3f803000u, 0x33000000u, 0x33000001u, 0x387fc000u, 0x38800000u,
                     0x477fe000u, 0x477ff000u, 0x477fefffu, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                     0x7f800001u, 0xffa01234u, 0x80000000u, 0x00000001u, 0x35000000u, 0x34ffffffu};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) memcpy(&f[i * 37], &sp[i], 4);
    for (int i = 0; i < N; i++) want[i] = mil_f2h(f[i]);
    int best = k_simd_best();
    for (int lv = K_SIMD_SCALAR; lv <= best; lv++) {
        cr_assert_eq(k_simd_set(lv), 0);
        for (int len = 1; len < 40; len++) {
            k_f2h_n(f + len, got + len, len);
            cr_assert(memcmp(got + len, want + len, (size_t)len * 2) == 0, "level %d length %d", lv, len);
        }
        k_f2h_n(f, got, N);
        for (int i = 0; i < N; i++)
            cr_assert_eq(got[i], want[i], "level %d: f2h(%08x) = %04x, want %04x", lv, *(uint32_t *)&f[i], got[i], want[i]);
    }
    k_simd_set(best);
    free(f);
    free(got);
    free(want);
}

/* The vector conversions leave no dirty upper vector state behind (they end
 * with vzeroupper): the in-use bits of XGETBV(1) for the upper halves of
 * ymm0-15 / zmm0-15 are clear after each call.  Dirty state made every later
 * SSE instruction of the process slow (mil-train's AdamW: 2-5x). */
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
static int upper_in_use(void) {
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return -1;
    if (!__get_cpuid_count(0xd, 1, &a, &b, &c, &d) || !(a & 4)) return -1;  /* XGETBV with ECX = 1 */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
    return (int)(lo & 0x44u);  /* bit 2: YMM_Hi128, bit 6: ZMM_Hi256 */
}

Test(cpu_fast, conversions_leave_no_dirty_upper_state) {
    static uint16_t h[1000];
    static float f[1000];
    int best = k_simd_best();
    if (best == K_SIMD_SCALAR || upper_in_use() < 0) {
        tu_warn("cpu_fast: no vector conversion or no XGETBV(1) on this CPU: upper-state check not run\n");
        return;
    }
    for (int lv = K_SIMD_F16C; lv <= best; lv++)
        for (int n = 999; n <= 1000; n++) {  /* with and without a scalar tail */
            cr_assert_eq(k_simd_set(lv), 0);
            k_f2h_n(f, h, n);
            cr_assert_eq(upper_in_use(), 0, "level %d, f2h of %d", lv, n);
            k_h2f_n(h, f, n);
            cr_assert_eq(upper_in_use(), 0, "level %d, h2f of %d", lv, n);
        }
    k_simd_set(best);
}
#endif

/* --------------------------------------------------- kernels, every mode */

typedef void (*Setup)(KT *t);

static MilRtTensor *rnd(KT *t, MilDType dt, int rank, const int64_t *dims, uint64_t seed) {
    MilRtTensor x = {.dtype = dt, .rank = rank};
    for (int i = 0; i < rank; i++) x.dims[i] = dims[i];
    MilRtErr e;
    cr_assert_eq(mil_rt_tensor_alloc(&x, &e), 0);
    mil_rt_tensor_fill_random(&x, &seed);
    MilRtTensor *r = kt_tensor(t, dt, rank, dims, x.data);
    mil_rt_tensor_free(&x);
    return r;
}

static void bind(KT *t, const char *arg, const MilRtTensor *x) { kt_bind(t, kt_slot(t, arg), x); }

/* How a fast run must match the serial scalar-level run: */
enum {
    SAME,      /* bit-identical (milc's own kernels) */
    EXPTOL,    /* the vector exp: within fp32 / fp16 rounding of the scalar level, but
                  bit-identical to the serial run of the same level whatever the threads */
    BLASTOL,   /* within rounding everywhere: OpenBLAS rounds by how the pool split the rows */
};

static void same_or_close(const KT *t, const KT *ref, int nout, bool exact, const char *what, int lv, int nt) {
    for (int o = 0; o < nout; o++) {
        cr_assert(mil_rt_same_shape(&t->outs[o], &ref->outs[o]) && t->outs[o].dtype == ref->outs[o].dtype);
        if (exact) {
            cr_assert(memcmp(t->outs[o].data, ref->outs[o].data, mil_rt_nbytes(&ref->outs[o])) == 0,
                      "output %d differs from %s (level %d, %d threads)", o, what, lv, nt);
            continue;
        }
        double tol = ref->outs[o].dtype == MIL_DT_FP16 ? 2e-3 : 2e-5;
        for (int64_t i = 0; i < mil_rt_numel(&ref->outs[o]); i++) {
            double a = mil_rt_get_f64(&t->outs[o], i), b = mil_rt_get_f64(&ref->outs[o], i);
            cr_assert(fabs(a - b) <= tol * (1 + fabs(b)), "output %d[%lld]: %g vs %g of %s (level %d, %d threads)", o,
                      (long long)i, a, b, what, lv, nt);
        }
    }
}

static KT *run_case(MilOpKind kind, int nout, Setup setup, MilPool *pool) {
    KT *t = malloc(sizeof *t);
    kt_init(t, kind, nout);
    setup(t);
    t->ctx.pool = pool;
    cr_assert_eq(kt_run(t), 0, "%s", t->err);
    return t;
}

static void done(KT *t) {
    kt_free(t);
    free(t);
}

/* Runs the case serially at the scalar level (the reference), then at every
 * level this CPU has serially and on pools of 2 and 3 threads; compares as
 * `how` says.  Returns the reference run (free it with done()). */
static KT *modes_tol(MilOpKind kind, int nout, Setup setup, int how) {
    int best = k_simd_best();
    k_simd_set(K_SIMD_SCALAR);
    KT *ref = run_case(kind, nout, setup, NULL);
    MilPool *pools[2] = {mil_pool_new(2), mil_pool_new(3)};
    for (int lv = K_SIMD_SCALAR; lv <= best; lv++) {
        k_simd_set(lv);
        KT *serial = run_case(kind, nout, setup, NULL);
        same_or_close(serial, ref, nout, how == SAME || lv == K_SIMD_SCALAR, "the scalar level", lv, 1);
        for (int pi = 0; pi < 2; pi++) {
            KT *t = run_case(kind, nout, setup, pools[pi]);
            same_or_close(t, serial, nout, how != BLASTOL, "the serial run", lv, mil_pool_size(pools[pi]));
            same_or_close(t, ref, nout, how == SAME, "the scalar level", lv, mil_pool_size(pools[pi]));
            done(t);
        }
        done(serial);
    }
    k_simd_set(best);
    mil_pool_free(pools[0]);
    mil_pool_free(pools[1]);
    return ref;
}

static KT *modes(MilOpKind kind, int nout, Setup setup) { return modes_tol(kind, nout, setup, SAME); }

static void s_add_bcast(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 3, (int64_t[]){3, 37, 1029}, 1));
    bind(t, "y", rnd(t, MIL_DT_FP16, 2, (int64_t[]){37, 1}, 2));
}
static void s_mul_row(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 2, (int64_t[]){7, 10001}, 3));
    bind(t, "y", rnd(t, MIL_DT_FP32, 2, (int64_t[]){7, 10001}, 4));
}
static void s_silu(KT *t) { bind(t, "x", rnd(t, MIL_DT_FP16, 2, (int64_t[]){7, 3333}, 5)); }
static void s_softmax_last(KT *t) { bind(t, "x", rnd(t, MIL_DT_FP16, 3, (int64_t[]){6, 77, 301}, 6)); }
static void s_softmax_mid(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP32, 3, (int64_t[]){6, 77, 301}, 7));
    kt_i32(t, "axis", 1);
}
static void s_rms_mid(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 4, (int64_t[]){2, 37, 1, 300}, 8));
    kt_i32v(t, "axes", 1, (int32_t[]){1});
    bind(t, "gamma", rnd(t, MIL_DT_FP16, 1, (int64_t[]){37}, 9));
}
static void s_rms_last(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 2, (int64_t[]){77, 771}, 10));
    kt_i32v(t, "axes", 1, (int32_t[]){-1});
    bind(t, "gamma", rnd(t, MIL_DT_FP32, 1, (int64_t[]){771}, 11));
}
static void s_ln_last(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP32, 2, (int64_t[]){45, 333}, 12));
    kt_i32v(t, "axes", 1, (int32_t[]){-1});
    bind(t, "gamma", rnd(t, MIL_DT_FP32, 1, (int64_t[]){333}, 13));
    bind(t, "beta", rnd(t, MIL_DT_FP32, 1, (int64_t[]){333}, 14));
}
static void s_transpose(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 3, (int64_t[]){2, 145, 70}, 15));
    kt_i32v(t, "perm", 3, (int32_t[]){0, 2, 1});
}
static void s_transpose4(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP32, 4, (int64_t[]){1, 3, 77, 33}, 16));
    kt_i32v(t, "perm", 4, (int32_t[]){2, 1, 3, 0});
}
static void s_matmul(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 3, (int64_t[]){3, 170, 33}, 17));
    bind(t, "y", rnd(t, MIL_DT_FP16, 3, (int64_t[]){3, 145, 33}, 18));
    kt_bool(t, "transpose_y", BLASTOL);
}
static void s_matmul_batches(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 4, (int64_t[]){2, 7, 45, 33}, 19));
    bind(t, "y", rnd(t, MIL_DT_FP16, 2, (int64_t[]){33, 29}, 20));
}
static void s_linear(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 3, (int64_t[]){1, 130, 70}, 21));
    bind(t, "weight", rnd(t, MIL_DT_FP16, 2, (int64_t[]){290, 70}, 22));
    bind(t, "bias", rnd(t, MIL_DT_FP16, 1, (int64_t[]){290}, 23));
}
static void s_conv1x1(KT *t) {
    bind(t, "x", rnd(t, MIL_DT_FP16, 4, (int64_t[]){2, 70, 1, 131}, 24));
    bind(t, "weight", rnd(t, MIL_DT_FP16, 4, (int64_t[]){290, 70, 1, 1}, 25));
    bind(t, "bias", rnd(t, MIL_DT_FP16, 1, (int64_t[]){290}, 26));
}

Test(cpu_fast, eltwise_bit_identical_across_threads_and_levels) {
    done(modes(MIL_OP_ADD, 1, s_add_bcast));
    done(modes(MIL_OP_MUL, 1, s_mul_row));
    done(modes_tol(MIL_OP_SILU, 1, s_silu, EXPTOL));
}

Test(cpu_fast, norms_bit_identical_across_threads_and_levels) {
    done(modes_tol(MIL_OP_SOFTMAX, 1, s_softmax_last, EXPTOL));
    done(modes_tol(MIL_OP_SOFTMAX, 1, s_softmax_mid, EXPTOL));
    done(modes(MIL_OP_RMS_NORM, 1, s_rms_last));
    done(modes(MIL_OP_LAYER_NORM, 1, s_ln_last));
}

/* rms_norm over a middle axis (the ANE layout [1, C, 1, S]) against a double reference */
Test(cpu_fast, rms_norm_middle_axis) {
    KT *t = modes(MIL_OP_RMS_NORM, 1, s_rms_mid);
    const MilRtTensor *x = t->slotv[kt_slot(t, "x")][0], *g = t->slotv[kt_slot(t, "gamma")][0];
    for (int64_t n = 0; n < 2; n++)
        for (int64_t s = 0; s < 300; s++) {
            double ss = 0;
            for (int64_t c = 0; c < 37; c++) { double v = mil_rt_get_f64(x, (n * 37 + c) * 300 + s); ss += v * v; }
            double sc = 1.0 / sqrt(ss / 37 + 0x1.4f8b58p-17);
            for (int64_t c = 0; c < 37; c++) {
                int64_t i = (n * 37 + c) * 300 + s;
                double want = mil_rt_get_f64(x, i) * sc * mil_rt_get_f64(g, c), got = mil_rt_get_f64(&t->outs[0], i);
                cr_assert(fabs(got - want) <= 2e-3 * (1 + fabs(want)), "[%lld,%lld,%lld]: %g vs %g", (long long)n,
                          (long long)c, (long long)s, got, want);
            }
        }
    done(t);
}

Test(cpu_fast, transpose_tiles) {
    KT *t = modes(MIL_OP_TRANSPOSE, 1, s_transpose);
    const MilRtTensor *x = t->slotv[kt_slot(t, "x")][0];
    const uint16_t *a = x->data, *b = t->outs[0].data;
    for (int64_t n = 0; n < 2; n++)
        for (int64_t i = 0; i < 145; i++)
            for (int64_t j = 0; j < 70; j++) cr_assert_eq(b[(n * 70 + j) * 145 + i], a[(n * 145 + i) * 70 + j]);
    done(t);
    t = modes(MIL_OP_TRANSPOSE, 1, s_transpose4);
    x = t->slotv[kt_slot(t, "x")][0];
    const float *fa = x->data, *fb = t->outs[0].data;  /* out [77, 3, 33, 1] */
    for (int64_t c = 0; c < 3; c++)
        for (int64_t i = 0; i < 77; i++)
            for (int64_t j = 0; j < 33; j++) cr_assert_eq(fb[(i * 3 + c) * 33 + j], fa[(c * 77 + i) * 33 + j]);
    done(t);
}

/* GEMMs: the pool splits rows (or batches) over single-threaded OpenBLAS
 * calls; for a given thread count the split is fixed (deterministic), across
 * thread counts OpenBLAS may round differently (its tail kernels) */
Test(cpu_fast, gemm_kernels_across_threads_and_levels) {
    KT *t = modes_tol(MIL_OP_MATMUL, 1, s_matmul, BLASTOL);
    const MilRtTensor *x = t->slotv[kt_slot(t, "x")][0], *y = t->slotv[kt_slot(t, "y")][0];
    for (int64_t b = 0; b < 3; b++)
        for (int64_t i = 0; i < 170; i += 13)
            for (int64_t j = 0; j < 145; j += 7) {
                double want = 0;
                for (int64_t q = 0; q < 33; q++)
                    want += mil_rt_get_f64(x, (b * 170 + i) * 33 + q) * mil_rt_get_f64(y, (b * 145 + j) * 33 + q);
                double got = mil_rt_get_f64(&t->outs[0], (b * 170 + i) * 145 + j);
                cr_assert(fabs(got - want) <= 2e-3 * (1 + fabs(want)), "%g vs %g", got, want);
            }
    done(t);
    done(modes_tol(MIL_OP_MATMUL, 1, s_matmul_batches, BLASTOL));
    done(modes_tol(MIL_OP_LINEAR, 1, s_linear, BLASTOL));
    t = modes_tol(MIL_OP_CONV, 1, s_conv1x1, BLASTOL);
    x = t->slotv[kt_slot(t, "x")][0];
    const MilRtTensor *w = t->slotv[kt_slot(t, "weight")][0], *bias = t->slotv[kt_slot(t, "bias")][0];
    for (int64_t n = 0; n < 2; n++)
        for (int64_t co = 0; co < 290; co += 17)
            for (int64_t p = 0; p < 131; p += 5) {
                double want = mil_rt_get_f64(bias, co);
                for (int64_t ci = 0; ci < 70; ci++)
                    want += mil_rt_get_f64(w, co * 70 + ci) * mil_rt_get_f64(x, (n * 70 + ci) * 131 + p);
                double got = mil_rt_get_f64(&t->outs[0], (n * 290 + co) * 131 + p);
                cr_assert(fabs(got - want) <= 2e-3 * (1 + fabs(want)), "%g vs %g", got, want);
            }
    done(t);
}

/* ------------------------------------------------------------- attention */

enum { AB = 2, AH = 3, AL = 77, AS = 77, AE = 19 };
static int mask_kind;  /* 0 none, 1 fp16 causal (0 / fp16 lowest), 2 bool causal, 3 fp32 causal with -1e9 */

static void s_sdpa(KT *t) {
    int64_t qd[4] = {AB, AH, AL, AE}, kd[4] = {AB, AH, AS, AE};
    bind(t, "query", rnd(t, MIL_DT_FP16, 4, qd, 30));
    bind(t, "key", rnd(t, MIL_DT_FP16, 4, kd, 31));
    bind(t, "value", rnd(t, MIL_DT_FP16, 4, kd, 32));
    if (!mask_kind) return;
    MilDType dt = mask_kind == 1 ? MIL_DT_FP16 : mask_kind == 2 ? MIL_DT_BOOL : MIL_DT_FP32;
    MilRtTensor *m = kt_tensor(t, dt, 2, (int64_t[]){AL, AS}, NULL);
    for (int i = 0; i < AL; i++)
        for (int j = 0; j < AS; j++) {
            bool vis = j <= i;
            if (dt == MIL_DT_FP16) ((uint16_t *)m->data)[i * AS + j] = vis ? 0 : 0xfbff;
            else if (dt == MIL_DT_BOOL) ((uint8_t *)m->data)[i * AS + j] = vis;
            else ((float *)m->data)[i * AS + j] = vis ? 0.0f : -1e9f;
        }
    bind(t, "attn_mask", m);
}

static void check_sdpa(KT *t) {
    const MilRtTensor *q = t->slotv[kt_slot(t, "query")][0], *k = t->slotv[kt_slot(t, "key")][0],
                      *v = t->slotv[kt_slot(t, "value")][0];
    double sc = 1.0 / sqrt((double)AE), s[AS];
    for (int b = 0; b < AB * AH; b++)
        for (int i = 0; i < AL; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < AS; j++) {
                double d = 0;
                for (int e = 0; e < AE; e++) d += mil_rt_get_f64(q, (b * AL + i) * AE + e) * mil_rt_get_f64(k, (b * AS + j) * AE + e);
                s[j] = (mask_kind && j > i) ? -INFINITY : d * sc;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < AS; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
            for (int e = 0; e < AE; e++) {
                double want = 0;
                for (int j = 0; j < AS; j++) want += s[j] / sum * mil_rt_get_f64(v, (b * AS + j) * AE + e);
                double got = mil_rt_get_f64(&t->outs[0], (b * AL + i) * AE + e);
                cr_assert(fabs(got - want) <= 2e-3 * (1 + fabs(want)), "mask %d [%d,%d,%d]: %g vs %g", mask_kind, b, i,
                          e, got, want);
            }
        }
}

Test(cpu_fast, attention_blocks_and_masks) {
    for (mask_kind = 0; mask_kind < 4; mask_kind++) {
        KT *t = modes_tol(MIL_OP_SCALED_DOT_PRODUCT_ATTENTION, 1, s_sdpa, EXPTOL);
        check_sdpa(t);
        done(t);
    }
}

/* a fully hidden row (every column masked with fp16 lowest) is not skipped:
 * the reference gives a softmax over the raw scores for it */
static void s_sdpa_hidden_row(KT *t) {
    mask_kind = 1;
    s_sdpa(t);
    MilRtTensor *m = (MilRtTensor *)t->slotv[kt_slot(t, "attn_mask")][0];
    ((uint16_t *)m->data)[5 * AS + 0] = 0xfbff;  /* row 5 sees columns 1..5 only */
    for (int j = 0; j < AS; j++) ((uint16_t *)m->data)[3 * AS + j] = 0xfbff;  /* row 3 sees nothing */
}

Test(cpu_fast, attention_fully_masked_row_matches_the_plain_computation) {
    KT *t = modes_tol(MIL_OP_SCALED_DOT_PRODUCT_ATTENTION, 1, s_sdpa_hidden_row, EXPTOL);
    const MilRtTensor *q = t->slotv[kt_slot(t, "query")][0], *k = t->slotv[kt_slot(t, "key")][0],
                      *v = t->slotv[kt_slot(t, "value")][0];
    /* row 3 of batch 0: every score shifted by the same -65504: softmax of the raw scores */
    double sc = 1.0 / sqrt((double)AE), s[AS], mx = -INFINITY, sum = 0;
    for (int j = 0; j < AS; j++) {
        double d = 0;
        for (int e = 0; e < AE; e++) d += mil_rt_get_f64(q, 3 * AE + e) * mil_rt_get_f64(k, j * AE + e);
        s[j] = d * sc;
        if (s[j] > mx) mx = s[j];
    }
    for (int j = 0; j < AS; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
    for (int e = 0; e < AE; e++) {
        double want = 0;
        for (int j = 0; j < AS; j++) want += s[j] / sum * mil_rt_get_f64(v, j * AE + e);
        double got = mil_rt_get_f64(&t->outs[0], 3 * AE + e);
        cr_assert(fabs(got - want) <= 2e-2 * (1 + fabs(want)), "[3,%d]: %g vs %g", e, got, want);
    }
    done(t);
}

/* sdpa_backward: heads in parallel, bit-identical to the serial run; checked
 * against a central difference of the forward kernel for a few dQ entries */
static void s_sdpa_bwd(KT *t) {
    mask_kind = 1;
    s_sdpa(t);
    int64_t od[4] = {AB, AH, AL, AE};
    bind(t, "d_out", rnd(t, MIL_DT_FP32, 4, od, 33));
}

Test(cpu_fast, sdpa_backward_heads_in_parallel) {
    KT *t = modes_tol(MIL_OP_SDPA_BACKWARD, 3, s_sdpa_bwd, EXPTOL);
    cr_assert_eq(t->outs[0].dtype, MIL_DT_FP16);
    /* dV = P^T dO: sum over i of P[i, j] dO[i, e]; for causal j = AS - 1 only i = AL - 1 sees it */
    const MilRtTensor *dO = t->slotv[kt_slot(t, "d_out")][0];
    for (int b = 0; b < AB * AH; b++)
        for (int e = 0; e < AE; e++) {
            double want = 0;  /* P[AL-1, AS-1] dO[AL-1, e]; P from the forward's softmax row */
            const MilRtTensor *q = t->slotv[kt_slot(t, "query")][0], *k = t->slotv[kt_slot(t, "key")][0];
            double s[AS], mx = -INFINITY, sum = 0, sc = 1.0 / sqrt((double)AE);
            for (int j = 0; j < AS; j++) {
                double d = 0;
                for (int x = 0; x < AE; x++)
                    d += mil_rt_get_f64(q, (b * AL + AL - 1) * AE + x) * mil_rt_get_f64(k, (b * AS + j) * AE + x);
                s[j] = d * sc;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < AS; j++) sum += exp(s[j] - mx);
            want = exp(s[AS - 1] - mx) / sum * mil_rt_get_f64(dO, (b * AL + AL - 1) * AE + e);
            double got = mil_rt_get_f64(&t->outs[2], (b * AS + AS - 1) * AE + e);
            cr_assert(fabs(got - want) <= 2e-3 * (1 + fabs(want)), "dV[%d, last, %d]: %g vs %g", b, e, got, want);
        }
    done(t);
}
