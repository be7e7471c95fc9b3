/* runtime/cpu/k_linalg.c -- matmul (batch broadcasting, transposes, rank-1
 * promotion) and linear, on CBLAS sgemm.  fp16 operands are converted to fp32
 * in scratch; the fp32 result is rounded once when stored. */
#include <cblas.h>

#include <pthread.h>

#include "runtime/cpu/kutil.h"

/* ============================================================ threaded GEMM */

static void blas_single(void) {
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(1);  /* our pool splits the work; OpenBLAS's own workers stay parked */
#endif
}

void k_blas_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_single);
}

typedef struct {
    bool ta, tb, rows;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    KGemmEpi epi;
    void *epi_arg;
} GemmJob;

static void gemm_part(void *arg, int64_t i0, int64_t i1, int t) {
    (void)t;
    const GemmJob *j = arg;
    int64_t m0 = 0, m1 = j->M, n0 = 0, n1 = j->N;
    if (j->rows) { m0 = i0; m1 = i1; }
    else { n0 = i0; n1 = i1; }
    const float *A = j->A + (j->ta ? m0 : m0 * j->lda), *B = j->B + (j->tb ? n0 * j->ldb : n0);
    float *C = j->C + m0 * j->ldc + n0;
    int64_t m = m1 - m0, n = n1 - n0;
    if (m > 0 && n > 0) {
        if (j->K == 0) {
            for (int64_t i = 0; i < m; i++)
                for (int64_t q = 0; q < n; q++) C[i * j->ldc + q] = j->beta == 0.0f ? 0.0f : j->beta * C[i * j->ldc + q];
        } else {
            cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, (int)m,
                        (int)n, (int)j->K, j->alpha, A, (int)j->lda, B, (int)j->ldb, j->beta, C, (int)j->ldc);
        }
    }
    if (j->epi) j->epi(j->epi_arg, m0, m1, n0, n1);
}

void k_sgemm(const MilKernelCtx *k, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
             KGemmEpi epi, void *epi_arg) {
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    if (ldc < 1) ldc = 1;
    GemmJob j = {ta, tb, true, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C, epi, epi_arg};
    int nt = k_threads(k);
    double work = (double)M * (double)N * (double)(K > 0 ? K : 1);
    /* rows in blocks of 32 (the BLAS micro-kernels' multiple), else columns */
    if (M >= 64 * nt || N < 128 * nt) k_parallel(k, M, 32, work, gemm_part, &j);
    else {
        j.rows = false;
        k_parallel(k, N, 64, work, gemm_part, &j);
    }
}

/* ================================================================= matmul */

typedef struct {
    bool tx, ty, x1, y1;
    int64_t M, K, N;
    int brank;
    int64_t bdims[MIL_MAX_RANK], xbs[MIL_MAX_RANK], ybs[MIL_MAX_RANK]; /* batch dims and strides (elements) */
    int64_t nbatch;
} MmP;

static int mm_params(MilKernelCtx *k, MmP *p, MilDType *odt) {
    const MilRtTensor *x = k_req(k, MIL_A_MATMUL_x), *y = x ? k_req(k, MIL_A_MATMUL_y) : NULL;
    if (!y) return MIL_K_ERROR;
    int rc;
    if ((rc = k_arg_bool(k, MIL_A_MATMUL_transpose_x, false, &p->tx))) return rc;
    if ((rc = k_arg_bool(k, MIL_A_MATMUL_transpose_y, false, &p->ty))) return rc;
    bool xf = k_isfloat(x->dtype), yf = k_isfloat(y->dtype);
    if ((!xf && !k_isint(x->dtype)) || (!yf && !k_isint(y->dtype)) || xf != yf)
        return mil_k_fail(k, "matmul: unsupported dtypes %s and %s", k_dtname(x->dtype), k_dtname(y->dtype));
    if (xf) *odt = (x->dtype == MIL_DT_FP32 || y->dtype == MIL_DT_FP32) ? MIL_DT_FP32 : x->dtype;
    else *odt = MIL_DT_INT32;
    if (x->rank < 1 || y->rank < 1) return mil_k_fail(k, "matmul: inputs must have rank >= 1");
    p->x1 = x->rank == 1;
    p->y1 = y->rank == 1;
    if (p->x1 && p->tx) return mil_k_fail(k, "matmul: cannot transpose a rank-1 x");
    if (p->y1 && p->ty) return mil_k_fail(k, "matmul: cannot transpose a rank-1 y");
    int64_t xm, xk, yk, yn;
    if (p->x1) { xm = 1; xk = x->dims[0]; }
    else {
        int64_t a = x->dims[x->rank - 2], b = x->dims[x->rank - 1];
        xm = p->tx ? b : a; xk = p->tx ? a : b;
    }
    if (p->y1) { yk = y->dims[0]; yn = 1; }
    else {
        int64_t a = y->dims[y->rank - 2], b = y->dims[y->rank - 1];
        yk = p->ty ? b : a; yn = p->ty ? a : b;
    }
    if (xk != yk)
        return mil_k_fail(k, "matmul: inner dimensions differ (%lld vs %lld)", (long long)xk, (long long)yk);
    p->M = xm; p->K = xk; p->N = yn;
    /* batch broadcast */
    int xbr = p->x1 ? 0 : x->rank - 2, ybr = p->y1 ? 0 : y->rank - 2;
    p->brank = xbr > ybr ? xbr : ybr;
    int64_t xst[MIL_MAX_RANK], yst[MIL_MAX_RANK];
    k_contig_strides(x->rank, x->dims, xst);
    k_contig_strides(y->rank, y->dims, yst);
    p->nbatch = 1;
    for (int a = 0; a < p->brank; a++) {
        int xa = a - (p->brank - xbr), ya = a - (p->brank - ybr);
        int64_t dx = xa >= 0 ? x->dims[xa] : 1, dy = ya >= 0 ? y->dims[ya] : 1;
        if (dx != dy && dx != 1 && dy != 1)
            return mil_k_fail(k, "matmul: batch dimensions are not broadcast-compatible (%lld vs %lld)",
                              (long long)dx, (long long)dy);
        p->bdims[a] = dx == 1 ? dy : dx;
        p->xbs[a] = (xa >= 0 && dx != 1) ? xst[xa] : 0;
        p->ybs[a] = (ya >= 0 && dy != 1) ? yst[ya] : 0;
        p->nbatch *= p->bdims[a];
    }
    return 0;
}

int k_matmul_shape(MilKernelCtx *k) {
    MmP p;
    MilDType odt;
    int rc = mm_params(k, &p, &odt);
    if (rc) return rc;
    int64_t dims[MIL_MAX_RANK];
    int r = 0;
    for (int a = 0; a < p.brank; a++) dims[r++] = p.bdims[a];
    if (!p.x1) dims[r++] = p.M;
    if (!p.y1) dims[r++] = p.N;
    k_set_shape(k->out[0], odt, r, dims);
    return 0;
}

/* Batches run in parallel (one sgemm per batch on one thread) when there are
 * enough of them; otherwise each batch's sgemm is split over the pool. */
static bool mm_by_batch(const MilKernelCtx *k, const MmP *p) {
    return p->nbatch >= 2 * k_threads(k) && k_threads(k) > 1;
}

size_t k_matmul_scratch(const MilKernelCtx *k) {
    MmP p;
    MilDType odt;
    /* shape() succeeded, so this cannot fail (it only re-reads the arguments) */
    if (mm_params((MilKernelCtx *)k, &p, &odt) || !k_isfloat(odt)) return 0;
    size_t n = k_f32_need(mil_k_in(k, MIL_A_MATMUL_x)) + k_f32_need(mil_k_in(k, MIL_A_MATMUL_y));
    if (odt != MIL_DT_FP32) n += (size_t)(mm_by_batch(k, &p) ? k_threads(k) : 1) * k_al64((size_t)(p.M * p.N) * sizeof(float));
    return n;
}

static int64_t bat_off(const MmP *p, const int64_t *bs, int64_t b) {
    int64_t off = 0;
    for (int a = p->brank - 1; a >= 0; a--) { off += (b % p->bdims[a]) * bs[a]; b /= p->bdims[a]; }
    return off;
}

/* Stores rows [m0, m1) x columns [n0, n1) of the fp32 result C (ldc) into o
 * (rows of n elements) starting at element base. */
typedef struct {
    MilRtTensor *o;
    const float *C;
    int64_t base, ldc, n;
    const MilRtTensor *bias;   /* linear: added to every row, NULL = none */
    float *Cw;                 /* writable C (bias is added in place) */
} StoreEpi;

static void store_epi(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const StoreEpi *s = arg;
    if (s->bias) {
        float bb[KCHUNK];
        for (int64_t c = n0; c < n1; c += KCHUNK) {
            int64_t cn = n1 - c < KCHUNK ? n1 - c : KCHUNK;
            k_loadf(s->bias, c, 1, cn, bb);
            for (int64_t i = m0; i < m1; i++)
                for (int64_t q = 0; q < cn; q++) s->Cw[i * s->ldc + c + q] += bb[q];
        }
    }
    if (s->o->dtype == MIL_DT_FP32 && s->C == s->o->data) return;
    if (n0 == 0 && n1 == s->n && s->ldc == s->n)
        k_storef(s->o, s->base + m0 * s->n, (m1 - m0) * s->n, s->C + m0 * s->ldc);
    else
        for (int64_t i = m0; i < m1; i++) k_storef(s->o, s->base + i * s->n + n0, n1 - n0, s->C + i * s->ldc + n0);
}

typedef struct {
    const MmP *p;
    const float *A, *B;
    MilRtTensor *o;
    char *cbuf;                /* per-thread C for a non-fp32 output */
    size_t cstride;
} MmBatch;

static void mm_batches(void *arg, int64_t b0, int64_t b1, int t) {
    const MmBatch *j = arg;
    const MmP *p = j->p;
    int64_t M = p->M, N = p->N, K = p->K;
    int lda = (int)(p->tx ? M : K), ldb = (int)(p->ty ? K : N);
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    float *own = j->cbuf ? (float *)(j->cbuf + (size_t)t * j->cstride) : NULL;
    for (int64_t b = b0; b < b1; b++) {
        int64_t xo = bat_off(p, p->xbs, b), yo = bat_off(p, p->ybs, b);
        float *dst = own ? own : (float *)j->o->data + b * M * N;
        if (M * N == 0) continue;
        if (K == 0) memset(dst, 0, (size_t)(M * N) * sizeof(float));
        else
            cblas_sgemm(CblasRowMajor, p->tx ? CblasTrans : CblasNoTrans, p->ty ? CblasTrans : CblasNoTrans, (int)M,
                        (int)N, (int)K, 1.0f, j->A + xo, lda, j->B + yo, ldb, 0.0f, dst, (int)(N > 0 ? N : 1));
        if (own) k_storef(j->o, b * M * N, M * N, own);
    }
}

int k_matmul_run(MilKernelCtx *k) {
    MmP p;
    MilDType odt;
    int rc = mm_params(k, &p, &odt);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, MIL_A_MATMUL_x), *y = mil_k_in(k, MIL_A_MATMUL_y);
    MilRtTensor *o = k->out[0];
    int64_t M = p.M, N = p.N, K = p.K;
    if (!k_isfloat(odt)) {
        for (int64_t b = 0; b < p.nbatch; b++) {
            int64_t xo = bat_off(&p, p.xbs, b), yo = bat_off(&p, p.ybs, b);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++) {
                    int64_t acc = 0;
                    for (int64_t q = 0; q < K; q++) {
                        int64_t xi = p.tx ? q * M + i : i * K + q, yi = p.ty ? j * K + q : q * N + j;
                        acc += k_geti(x, xo + xi) * k_geti(y, yo + yi);
                    }
                    k_seti(o, b * M * N + i * N + j, acc);
                }
        }
        return 0;
    }
    if (k->scratch_size < k_matmul_scratch(k)) return mil_k_fail(k, "matmul: scratch too small");
    char *sp = k->scratch;
    const float *A = k_in_f32(k, MIL_A_MATMUL_x, &sp), *B = k_in_f32(k, MIL_A_MATMUL_y, &sp);
    bool own = o->dtype != MIL_DT_FP32;
    if (mm_by_batch(k, &p)) {
        MmBatch j = {&p, A, B, o, own ? sp : NULL, k_al64((size_t)(M * N) * sizeof(float))};
        k_parallel(k, p.nbatch, 1, (double)p.nbatch * (double)(M * N) * (double)(K + 1), mm_batches, &j);
        return 0;
    }
    float *C = own ? (float *)sp : NULL;
    int64_t lda = p.tx ? M : K, ldb = p.ty ? K : N;
    for (int64_t b = 0; b < p.nbatch; b++) {
        int64_t xo = bat_off(&p, p.xbs, b), yo = bat_off(&p, p.ybs, b);
        float *dst = C ? C : (float *)o->data + b * M * N;
        if (M * N == 0) continue;
        StoreEpi se = {o, dst, b * M * N, N, N, NULL, dst};
        k_sgemm(k, p.tx, p.ty, M, N, K, 1.0f, A + xo, lda, B + yo, ldb, 0.0f, dst, N, C ? store_epi : NULL, &se);
    }
    return 0;
}

/* ================================================================= linear */

static int lin_params(MilKernelCtx *k, int64_t *M, int64_t *N, int64_t *K) {
    const MilRtTensor *x = k_req(k, MIL_A_LINEAR_x), *w = x ? k_req(k, MIL_A_LINEAR_weight) : NULL;
    if (!w) return MIL_K_ERROR;
    const MilRtTensor *b = mil_k_in(k, MIL_A_LINEAR_bias);
    int rc;
    if ((rc = k_need_float(k, x, "x")) || (rc = k_need_float(k, w, "weight"))) return rc;
    if (x->rank < 1) return mil_k_fail(k, "linear: x must have rank >= 1");
    if (w->rank != 2) return mil_k_fail(k, "linear: weight must have rank 2 ([D_out, D_in])");
    *K = x->dims[x->rank - 1];
    *N = w->dims[0];
    if (w->dims[1] != *K)
        return mil_k_fail(k, "linear: weight is [%lld, %lld] but x's last dimension is %lld", (long long)w->dims[0],
                          (long long)w->dims[1], (long long)*K);
    if (b) {
        if ((rc = k_need_float(k, b, "bias"))) return rc;
        if (b->rank > 1 || k_numel(b) != *N)
            return mil_k_fail(k, "linear: bias must have shape [%lld]", (long long)*N);
    }
    *M = k_numel(x) / (*K ? *K : 1);
    if (*K == 0) { *M = 1; for (int i = 0; i < x->rank - 1; i++) *M *= x->dims[i]; }
    return 0;
}

int k_linear_shape(MilKernelCtx *k) {
    int64_t M, N, K;
    int rc = lin_params(k, &M, &N, &K);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, MIL_A_LINEAR_x);
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    k->out[0]->dims[x->rank - 1] = N;
    return 0;
}

size_t k_linear_scratch(const MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_LINEAR_x), *w = mil_k_in(k, MIL_A_LINEAR_weight);
    return k_f32_need(x) + k_f32_need(w) + k_al64((size_t)k_numel(k->out[0]) * sizeof(float));
}

int k_linear_run(MilKernelCtx *k) {
    int64_t M, N, K;
    int rc = lin_params(k, &M, &N, &K);
    if (rc) return rc;
    if (k->scratch_size < k_linear_scratch(k)) return mil_k_fail(k, "linear: scratch too small");
    const MilRtTensor *b = mil_k_in(k, MIL_A_LINEAR_bias);
    MilRtTensor *o = k->out[0];
    char *sp = k->scratch;
    const float *A = k_in_f32(k, MIL_A_LINEAR_x, &sp), *W = k_in_f32(k, MIL_A_LINEAR_weight, &sp);
    float *C = o->dtype == MIL_DT_FP32 ? (float *)o->data : (float *)sp;
    if (M * N == 0) return 0;
    StoreEpi se = {o, C, 0, N, N, b, C};
    k_sgemm(k, false, true, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N, (b || C != o->data) ? store_epi : NULL, &se);
    return 0;
}
