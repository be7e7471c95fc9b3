/* runtime/cpu/k_linalg.c -- matmul (batch broadcasting, transposes, rank-1
 * promotion) and linear, on CBLAS sgemm.  fp16 operands are converted to fp32
 * in scratch; the fp32 result is rounded once when stored. */
#include <cblas.h>

#include "runtime/cpu/kutil.h"

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

size_t k_matmul_scratch(const MilKernelCtx *k) {
    MmP p;
    MilDType odt;
    /* shape() succeeded, so this cannot fail (it only re-reads the arguments) */
    if (mm_params((MilKernelCtx *)k, &p, &odt) || !k_isfloat(odt)) return 0;
    size_t n = k_f32_need(mil_k_in(k, MIL_A_MATMUL_x)) + k_f32_need(mil_k_in(k, MIL_A_MATMUL_y));
    if (odt != MIL_DT_FP32) n += k_al64((size_t)(p.M * p.N) * sizeof(float));
    return n;
}

static int64_t bat_off(const MmP *p, const int64_t *bs, int64_t b) {
    int64_t off = 0;
    for (int a = p->brank - 1; a >= 0; a--) { off += (b % p->bdims[a]) * bs[a]; b /= p->bdims[a]; }
    return off;
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
    const float *A = k_as_f32(x, &sp), *B = k_as_f32(y, &sp);
    float *C = o->dtype == MIL_DT_FP32 ? NULL : (float *)sp;
    int lda = (int)(p.tx ? M : K), ldb = (int)(p.ty ? K : N);
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    for (int64_t b = 0; b < p.nbatch; b++) {
        int64_t xo = bat_off(&p, p.xbs, b), yo = bat_off(&p, p.ybs, b);
        float *dst = C ? C : (float *)o->data + b * M * N;
        if (M * N == 0) continue;
        if (K == 0) memset(dst, 0, (size_t)(M * N) * sizeof(float));
        else
            cblas_sgemm(CblasRowMajor, p.tx ? CblasTrans : CblasNoTrans, p.ty ? CblasTrans : CblasNoTrans,
                        (int)M, (int)N, (int)K, 1.0f, A + xo, lda, B + yo, ldb, 0.0f, dst, (int)(N > 0 ? N : 1));
        if (C) k_storef(o, b * M * N, M * N, C);
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
    const MilRtTensor *x = mil_k_in(k, MIL_A_LINEAR_x), *w = mil_k_in(k, MIL_A_LINEAR_weight),
                      *b = mil_k_in(k, MIL_A_LINEAR_bias);
    MilRtTensor *o = k->out[0];
    char *sp = k->scratch;
    const float *A = k_as_f32(x, &sp), *W = k_as_f32(w, &sp);
    float *C = (float *)sp;
    if (M * N == 0) return 0;
    if (K == 0) memset(C, 0, (size_t)(M * N) * sizeof(float));
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K, W, (int)K,
                    0.0f, C, (int)N);
    if (b) {
        float bb[KCHUNK];
        for (int64_t s = 0; s < N; s += KCHUNK) {
            int64_t cn = N - s < KCHUNK ? N - s : KCHUNK;
            k_loadf(b, s, 1, cn, bb);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < cn; j++) C[i * N + s + j] += bb[j];
        }
    }
    k_storef(o, 0, M * N, C);
    return 0;
}
