/* runtime/cpu/k_attn.c -- scaled_dot_product_attention and its backward
 * (milc extension sdpa_backward).  Per batch matrix: scores = Q K^T * scale
 * (+ additive mask, or -inf where a bool mask is false), P = softmax(scores),
 * out = P V; all in fp32 with sgemm, batch dimensions broadcast. */
#include <cblas.h>

#include "runtime/cpu/kutil.h"

typedef struct {
    int nb;                               /* batch rank */
    int64_t bd[MIL_MAX_RANK], nbatch;     /* broadcast batch dims */
    int64_t L, S, E, EV;
    double scale;
} AttnP;

/* batch stride (in elements) of t for batch axis a, t's last two dims being the matrix */
static int64_t bstride(const MilRtTensor *t, const AttnP *p, int a, int64_t *st_out) {
    (void)st_out;
    int ta = a - (p->nb - (t->rank - 2));
    if (ta < 0 || t->dims[ta] == 1) return 0;
    int64_t s = t->dims[t->rank - 1] * t->dims[t->rank - 2];
    for (int i = ta + 1; i < t->rank - 2; i++) s *= t->dims[i];
    return s;
}

static int64_t boff(const MilRtTensor *t, const AttnP *p, int64_t b) {
    int64_t off = 0;
    for (int a = p->nb - 1; a >= 0; a--) {
        off += (b % p->bd[a]) * bstride(t, p, a, NULL);
        b /= p->bd[a];
    }
    return off;
}

static int bcast_batch(MilKernelCtx *k, AttnP *p, const MilRtTensor *const *ts, int n) {
    p->nb = 0;
    for (int i = 0; i < n; i++) if (ts[i] && ts[i]->rank - 2 > p->nb) p->nb = ts[i]->rank - 2;
    p->nbatch = 1;
    for (int a = 0; a < p->nb; a++) {
        int64_t d = 1;
        for (int i = 0; i < n; i++) {
            if (!ts[i]) continue;
            int ta = a - (p->nb - (ts[i]->rank - 2));
            if (ta < 0) continue;
            int64_t e = ts[i]->dims[ta];
            if (e == d || e == 1) continue;
            if (d != 1) return mil_k_fail(k, "%s: batch dimensions are not broadcast-compatible", k_opname(k));
            d = e;
        }
        p->bd[a] = d;
        p->nbatch *= d;
    }
    return 0;
}

/* mask [*, L or 1, S or 1] broadcast to [batch, L, S]: element offset */
typedef struct {
    const MilRtTensor *m;
    int64_t bst[MIL_MAX_RANK], ls, ss;
} MaskV;

static int mask_view(MilKernelCtx *k, const MilRtTensor *m, const AttnP *p, MaskV *v) {
    v->m = m;
    if (!m) return 0;
    if (m->dtype != MIL_DT_BOOL && !k_isfloat(m->dtype))
        return mil_k_fail(k, "%s: attn_mask must be bool or float, got %s", k_opname(k), k_dtname(m->dtype));
    int r = m->rank;
    if (r < 1 || r > p->nb + 2) return mil_k_fail(k, "%s: attn_mask rank %d not broadcastable", k_opname(k), r);
    int64_t st[MIL_MAX_RANK];
    k_contig_strides(r, m->dims, st);
    int64_t full[MIL_MAX_RANK + 2];
    for (int a = 0; a < p->nb; a++) full[a] = p->bd[a];
    full[p->nb] = p->L;
    full[p->nb + 1] = p->S;
    int64_t fst[MIL_MAX_RANK + 2];
    for (int a = 0; a < p->nb + 2; a++) {
        int ma = a - (p->nb + 2 - r);
        if (ma < 0) { fst[a] = 0; continue; }
        if (m->dims[ma] != full[a] && m->dims[ma] != 1)
            return mil_k_fail(k, "%s: attn_mask shape is not broadcastable to [..., %lld, %lld]", k_opname(k),
                              (long long)p->L, (long long)p->S);
        fst[a] = m->dims[ma] == 1 ? 0 : st[ma];
    }
    for (int a = 0; a < p->nb; a++) v->bst[a] = fst[a];
    v->ls = fst[p->nb];
    v->ss = fst[p->nb + 1];
    return 0;
}

static int64_t mask_boff(const MaskV *v, const AttnP *p, int64_t b) {
    int64_t off = 0;
    for (int a = p->nb - 1; a >= 0; a--) { off += (b % p->bd[a]) * v->bst[a]; b /= p->bd[a]; }
    return off;
}

/* scores (L x S) += mask, then row softmax in place */
static void mask_softmax(float *P, const MaskV *mv, int64_t moff, const AttnP *p) {
    for (int64_t i = 0; i < p->L; i++) {
        float *row = P + i * p->S;
        if (mv->m) {
            for (int64_t j = 0; j < p->S; j++) {
                int64_t o = moff + i * mv->ls + j * mv->ss;
                if (mv->m->dtype == MIL_DT_BOOL) {
                    if (!((const uint8_t *)mv->m->data)[o]) row[j] = -INFINITY;
                } else {
                    row[j] += (float)k_getf(mv->m, o);
                }
            }
        }
        float mx = -INFINITY;
        for (int64_t j = 0; j < p->S; j++) if (row[j] > mx) mx = row[j];
        for (int64_t j = 0; j < p->S; j++) row[j] -= mx;
        k_exp_n(row, p->S);
        double sum = 0;
        for (int64_t j = 0; j < p->S; j++) sum += row[j];
        float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < p->S; j++) row[j] *= inv;
    }
}

/* ============================================================== forward */

#define SD(x) MIL_A_SCALED_DOT_PRODUCT_ATTENTION_##x
static int sdpa_params(MilKernelCtx *k, AttnP *p, MaskV *mv) {
    const MilRtTensor *q = k_req(k, SD(query)), *kk = q ? k_req(k, SD(key)) : NULL, *v = kk ? k_req(k, SD(value)) : NULL;
    if (!v) return MIL_K_ERROR;
    int rc;
    if ((rc = k_need_float(k, q, "query")) || (rc = k_need_float(k, kk, "key")) || (rc = k_need_float(k, v, "value")))
        return rc;
    if (q->rank < 3 || kk->rank < 3 || v->rank < 3)
        return mil_k_fail(k, "scaled_dot_product_attention: query, key and value must have rank >= 3");
    p->L = q->dims[q->rank - 2];
    p->E = q->dims[q->rank - 1];
    p->S = kk->dims[kk->rank - 2];
    p->EV = v->dims[v->rank - 1];
    if (kk->dims[kk->rank - 1] != p->E)
        return mil_k_fail(k, "scaled_dot_product_attention: query and key embedding sizes differ (%lld vs %lld)",
                          (long long)p->E, (long long)kk->dims[kk->rank - 1]);
    if (v->dims[v->rank - 2] != p->S)
        return mil_k_fail(k, "scaled_dot_product_attention: key and value sequence lengths differ (%lld vs %lld)",
                          (long long)p->S, (long long)v->dims[v->rank - 2]);
    const MilRtTensor *ts[3] = {q, kk, v};
    if ((rc = bcast_batch(k, p, ts, 3))) return rc;
    p->scale = p->E > 0 ? 1.0 / sqrt((double)p->E) : 1.0;
    return mask_view(k, mil_k_in(k, SD(attn_mask)), p, mv);
}

int k_sdpa_shape(MilKernelCtx *k) {
    AttnP p;
    MaskV mv;
    int rc = sdpa_params(k, &p, &mv);
    if (rc) return rc;
    int64_t d[MIL_MAX_RANK];
    for (int a = 0; a < p.nb; a++) d[a] = p.bd[a];
    d[p.nb] = p.L;
    d[p.nb + 1] = p.EV;
    k_set_shape(k->out[0], mil_k_in(k, SD(query))->dtype, p.nb + 2, d);
    return 0;
}

/* Forward, blocked by BQ query rows: one task per (batch, row block) on the
 * pool, each with its own BQ x S score buffer (no S x S buffer per head).
 * Key columns from kend on are skipped when the mask hides them for every row
 * of the block (bool false, or a float <= MASK_SKIP such as a causal mask's
 * -inf / fp16 lowest) -- only where that is exact: a skipped score s + m,
 * |s| <= B = scale * max|q| * max|k|, would give exp(s + m - rowmax) == 0 in
 * fp32 when rowmax > B + m + 110; a row that fails the test is recomputed
 * over all S columns, as is a row with no visible column. */
enum { BQ = 64 };
#define MASK_SKIP (-1.0e4f)

static size_t sdpa_scratch_p(const MilKernelCtx *k, const AttnP *p) {
    size_t per = k_al64((size_t)(BQ * p->S) * sizeof(float)) + k_al64((size_t)(BQ * p->EV) * sizeof(float));
    const MilRtTensor *m = mil_k_in(k, SD(attn_mask));
    return k_f32_need(mil_k_in(k, SD(query))) + k_f32_need(mil_k_in(k, SD(key))) + k_f32_need(mil_k_in(k, SD(value))) +
           (m && m->dtype != MIL_DT_BOOL ? k_f32_need(m) : 0) + k_al64((size_t)(p->L + 1) * sizeof(int64_t)) +
           (size_t)k_threads(k) * per;
}

size_t k_sdpa_scratch(const MilKernelCtx *k) {
    AttnP p;
    MaskV mv;
    if (sdpa_params((MilKernelCtx *)k, &p, &mv)) return 0;
    return sdpa_scratch_p(k, &p);
}

typedef struct {
    const AttnP *p;
    const MaskV *mv;
    const MilRtTensor *q, *kt, *v;
    MilRtTensor *o;
    const float *Q, *K, *V, *Mf;   /* Mf: fp32 float mask (NULL for bool / none) */
    const uint8_t *Mb;             /* bool mask */
    const int64_t *kend;           /* per row: columns to compute (mask without batch strides), or NULL */
    float mthr;                    /* largest mask value among skipped entries */
    char *buf;
    size_t per;
    int64_t nblk;
} SdpaJob;

static inline bool mask_hides(const SdpaJob *j, int64_t o) {
    /* NaN is not hidden */
    return j->Mb ? !j->Mb[o] : j->Mf[o] <= MASK_SKIP;
}

/* columns [kend, S) of row i hidden?  The row's kend (scan from the right). */
static int64_t row_kend(const SdpaJob *j, int64_t moff, int64_t i, float *mthr) {
    const MaskV *mv = j->mv;
    int64_t c = j->p->S;
    while (c > 0) {
        int64_t o = moff + i * mv->ls + (c - 1) * mv->ss;
        if (!mask_hides(j, o)) break;
        if (j->Mf && j->Mf[o] > *mthr) *mthr = j->Mf[o];
        c--;
    }
    return c;
}

static float max_row_norm(const float *X, int64_t rows, int64_t E) {
    float best = 0;
    for (int64_t i = 0; i < rows; i++) {
        float s = 0;
        for (int64_t e = 0; e < E; e++) s += X[i * E + e] * X[i * E + e];
        if (s > best) best = s;
    }
    return sqrtf(best);
}

/* softmax of row[0, n) in place after adding the mask (the reference order:
 * max, exp and a double sum, one multiply by 1 / sum); returns the max */
static float row_softmax(const SdpaJob *j, float *row, int64_t n, int64_t moff, int64_t i) {
    const MaskV *mv = j->mv;
    if (mv->m) {
        int64_t o = moff + i * mv->ls;
        if (j->Mb) {
            for (int64_t c = 0; c < n; c++)
                if (!j->Mb[o + c * mv->ss]) row[c] = -INFINITY;
        } else {
            for (int64_t c = 0; c < n; c++) row[c] += j->Mf[o + c * mv->ss];
        }
    }
    float mx = -INFINITY;
    for (int64_t c = 0; c < n; c++) if (row[c] > mx) mx = row[c];
    for (int64_t c = 0; c < n; c++) row[c] -= mx;
    k_exp_n(row, n);
    double sum = 0;
    for (int64_t c = 0; c < n; c++) sum += row[c];
    float inv = (float)(1.0 / sum);
    for (int64_t c = 0; c < n; c++) row[c] *= inv;
    return mx;
}

/* scores of rows [r0, r0 + nr) against columns [0, n), then row softmax;
 * false when a skipped column might not vanish (see above) */
static bool sdpa_block(const SdpaJob *j, float *P, const float *Qb, const float *Kb, int64_t r0, int64_t nr,
                       int64_t n, int64_t moff, float limit) {
    const AttnP *p = j->p;
    int64_t E = p->E;
    if (E > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)n, (int)E, (float)p->scale, Qb + r0 * E,
                    (int)E, Kb, (int)E, 0.0f, P, (int)n);
    else memset(P, 0, (size_t)(nr * n) * sizeof(float));
    bool ok = true;
    for (int64_t i = 0; i < nr; i++) {
        float mx = row_softmax(j, P + i * n, n, moff, r0 + i);
        if (n < p->S && j->Mf && !(mx > limit)) ok = false;
    }
    return ok;
}

static void sdpa_tasks(void *arg, int64_t t0, int64_t t1, int tid) {
    const SdpaJob *j = arg;
    const AttnP *p = j->p;
    int64_t L = p->L, S = p->S, E = p->E, EV = p->EV;
    float *P = (float *)(j->buf + (size_t)tid * j->per), *O = P + k_al64((size_t)(BQ * S) * sizeof(float)) / sizeof(float);
    int64_t bound_b = -1;
    float bound = INFINITY;
    for (int64_t t = t0; t < t1; t++) {
        int64_t b = t / j->nblk, r0 = (t % j->nblk) * BQ, r1 = r0 + BQ < L ? r0 + BQ : L, nr = r1 - r0;
        const float *Qb = j->Q + boff(j->q, p, b), *Kb = j->K + boff(j->kt, p, b), *Vb = j->V + boff(j->v, p, b);
        int64_t moff = j->mv->m ? mask_boff(j->mv, p, b) : 0;
        float *dst = j->o->dtype == MIL_DT_FP32 ? (float *)j->o->data + b * L * EV + r0 * EV : O;
        if (S == 0) {  /* nothing to attend to: zeros, as the reference */
            memset(dst, 0, (size_t)(nr * EV) * sizeof(float));
            if (dst == O) k_storef(j->o, b * L * EV + r0 * EV, nr * EV, O);
            continue;
        }
        int64_t kend = j->mv->m ? 0 : S;  /* columns to compute for the block */
        float mthr = j->mthr;
        for (int64_t i = r0; j->mv->m && i < r1; i++) {
            int64_t c = j->kend ? j->kend[i] : row_kend(j, moff, i, &mthr);
            if (c > kend) kend = c;
        }
        if (kend < S && j->Mf && b != bound_b) {
            bound = (float)p->scale * max_row_norm(Qb, L, E) * max_row_norm(Kb, S, E);
            bound_b = b;
        }
        if (kend == 0 || !sdpa_block(j, P, Qb, Kb, r0, nr, kend, moff, bound + mthr + 110.0f)) {
            kend = S;
            sdpa_block(j, P, Qb, Kb, r0, nr, S, moff, 0);
        }
        if (EV > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)EV, (int)kend, 1.0f, P, (int)kend,
                        Vb, (int)EV, 0.0f, dst, (int)EV);
            if (dst == O) k_storef(j->o, b * L * EV + r0 * EV, nr * EV, O);
        }
    }
}

int k_sdpa_run(MilKernelCtx *k) {
    AttnP p;
    MaskV mv;
    int rc = sdpa_params(k, &p, &mv);
    if (rc) return rc;
    if (k->scratch_size < sdpa_scratch_p(k, &p)) return mil_k_fail(k, "scaled_dot_product_attention: scratch too small");
    char *sp = k->scratch;
    SdpaJob j = {&p, &mv, mil_k_in(k, SD(query)), mil_k_in(k, SD(key)), mil_k_in(k, SD(value)), k->out[0],
                 NULL, NULL, NULL, NULL, NULL, NULL, -INFINITY, NULL, 0, 0};
    j.Q = k_in_f32(k, SD(query), &sp);
    j.K = k_in_f32(k, SD(key), &sp);
    j.V = k_in_f32(k, SD(value), &sp);
    if (mv.m && mv.m->dtype == MIL_DT_BOOL) j.Mb = mv.m->data;
    else if (mv.m) j.Mf = k_in_f32(k, SD(attn_mask), &sp);
    int64_t *kend = (int64_t *)sp;
    sp += k_al64((size_t)(p.L + 1) * sizeof(int64_t));
    bool nobatch = true;
    for (int a = 0; a < p.nb; a++) if (mv.bst[a]) nobatch = false;
    if (mv.m && nobatch) {  /* the same mask for every batch: scan it once */
        for (int64_t i = 0; i < p.L; i++) kend[i] = row_kend(&j, 0, i, &j.mthr);
        j.kend = kend;
    }
    j.per = k_al64((size_t)(BQ * p.S) * sizeof(float)) + k_al64((size_t)(BQ * p.EV) * sizeof(float));
    j.buf = sp;
    j.nblk = (p.L + BQ - 1) / BQ;
    if (p.L * p.EV == 0) return 0;
    k_parallel(k, p.nbatch * j.nblk, 1, (double)p.nbatch * (double)(p.L * p.S) * (double)(p.E + p.EV + 8), sdpa_tasks, &j);
    return 0;
}
#undef SD

/* ============================================================= backward */

#define SB(x) MIL_A_SDPA_BACKWARD_##x
static int bwd_params(MilKernelCtx *k, AttnP *p, MaskV *mv) {
    const MilRtTensor *q = k_req(k, SB(query)), *kk = q ? k_req(k, SB(key)) : NULL, *v = kk ? k_req(k, SB(value)) : NULL,
                      *dO = v ? k_req(k, SB(d_out)) : NULL, *pr = mil_k_in(k, SB(probs));
    if (!dO) return MIL_K_ERROR;
    int rc;
    if ((rc = k_need_float(k, q, "query")) || (rc = k_need_float(k, kk, "key")) || (rc = k_need_float(k, v, "value")) ||
        (rc = k_need_float(k, dO, "d_out")))
        return rc;
    if (q->rank < 3 || kk->rank < 3 || v->rank < 3 || dO->rank < 3)
        return mil_k_fail(k, "sdpa_backward: query, key, value and d_out must have rank >= 3");
    if (k->nout != 3) return mil_k_fail(k, "sdpa_backward: expected 3 results, got %d", k->nout);
    p->L = q->dims[q->rank - 2];
    p->E = q->dims[q->rank - 1];
    p->S = kk->dims[kk->rank - 2];
    p->EV = v->dims[v->rank - 1];
    if (kk->dims[kk->rank - 1] != p->E) return mil_k_fail(k, "sdpa_backward: query and key embedding sizes differ");
    if (v->dims[v->rank - 2] != p->S) return mil_k_fail(k, "sdpa_backward: key and value sequence lengths differ");
    if (dO->dims[dO->rank - 2] != p->L || dO->dims[dO->rank - 1] != p->EV)
        return mil_k_fail(k, "sdpa_backward: d_out must be [..., %lld, %lld]", (long long)p->L, (long long)p->EV);
    if (pr) {
        if ((rc = k_need_float(k, pr, "probs"))) return rc;
        if (pr->rank < 2 || pr->dims[pr->rank - 2] != p->L || pr->dims[pr->rank - 1] != p->S)
            return mil_k_fail(k, "sdpa_backward: probs must be [..., %lld, %lld]", (long long)p->L, (long long)p->S);
    }
    const MilRtTensor *ts[5] = {q, kk, v, dO, pr};
    if ((rc = bcast_batch(k, p, ts, 5))) return rc;
    /* d_out must cover the whole broadcast batch */
    for (int a = 0; a < p->nb; a++) {
        int ta = a - (p->nb - (dO->rank - 2));
        if (ta < 0 || dO->dims[ta] != p->bd[a])
            return mil_k_fail(k, "sdpa_backward: d_out must have the full broadcast batch shape");
    }
    double sc = p->E > 0 ? 1.0 / sqrt((double)p->E) : 1.0;
    if ((rc = k_arg_float(k, SB(scale), sc, &p->scale))) return rc;
    return mask_view(k, mil_k_in(k, SB(attn_mask)), p, mv);
}

int k_sdpa_bwd_shape(MilKernelCtx *k) {
    AttnP p;
    MaskV mv;
    int rc = bwd_params(k, &p, &mv);
    if (rc) return rc;
    const MilRtTensor *q = mil_k_in(k, SB(query)), *kk = mil_k_in(k, SB(key)), *v = mil_k_in(k, SB(value));
    k_set_shape(k->out[0], q->dtype, q->rank, q->dims);
    k_set_shape(k->out[1], kk->dtype, kk->rank, kk->dims);
    k_set_shape(k->out[2], v->dtype, v->rank, v->dims);
    return 0;
}

/* Heads run in parallel when no operand is broadcast over the batch (each
 * head's dQ, dK, dV are then written by one thread only); per thread a P and
 * a dS buffer of L x S. */
static bool bwd_by_batch(const MilKernelCtx *k, const AttnP *p) {
    const MilRtTensor *q = mil_k_in(k, SB(query)), *kk = mil_k_in(k, SB(key)), *v = mil_k_in(k, SB(value));
    return k_threads(k) > 1 && p->nbatch > 1 && k_numel(q) == p->nbatch * p->L * p->E &&
           k_numel(kk) == p->nbatch * p->S * p->E && k_numel(v) == p->nbatch * p->S * p->EV;
}

static size_t bwd_scratch_p(const MilKernelCtx *k, const AttnP *p) {
    const MilRtTensor *q = mil_k_in(k, SB(query)), *kk = mil_k_in(k, SB(key)), *v = mil_k_in(k, SB(value));
    size_t nt = bwd_by_batch(k, p) ? (size_t)k_threads(k) : 1;
    return k_f32_need(q) + k_f32_need(kk) + k_f32_need(v) + k_f32_need(mil_k_in(k, SB(d_out))) +
           nt * 2 * k_al64((size_t)(p->L * p->S) * sizeof(float)) + k_al64((size_t)k_numel(q) * sizeof(float)) +
           k_al64((size_t)k_numel(kk) * sizeof(float)) + k_al64((size_t)k_numel(v) * sizeof(float));
}

size_t k_sdpa_bwd_scratch(const MilKernelCtx *k) {
    AttnP p;
    MaskV mv;
    if (bwd_params((MilKernelCtx *)k, &p, &mv)) return 0;
    return bwd_scratch_p(k, &p);
}

typedef struct {
    const AttnP *p;
    const MaskV *mv;
    const MilRtTensor *q, *kt, *v, *pr;
    const float *Q, *K, *V, *dO;
    float *dQ, *dK, *dV;
    char *buf;
    size_t per;
} BwdJob;

static void bwd_heads(void *arg, int64_t b0, int64_t b1, int tid) {
    const BwdJob *j = arg;
    const AttnP *p = j->p;
    int64_t L = p->L, S = p->S, E = p->E, EV = p->EV;
    float *P = (float *)(j->buf + (size_t)tid * j->per), *dS = P + k_al64((size_t)(L * S) * sizeof(float)) / sizeof(float);
    float sc = (float)p->scale;
    for (int64_t b = b0; b < b1; b++) {
        int64_t qo = boff(j->q, p, b), ko = boff(j->kt, p, b), vo = boff(j->v, p, b), oo = b * L * EV;
        if (j->pr) {
            k_loadf(j->pr, boff(j->pr, p, b), 1, L * S, P);
        } else {
            if (E > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)L, (int)S, (int)E, sc, j->Q + qo, (int)E,
                            j->K + ko, (int)E, 0.0f, P, (int)S);
            else memset(P, 0, (size_t)(L * S) * sizeof(float));
            mask_softmax(P, j->mv, j->mv->m ? mask_boff(j->mv, p, b) : 0, p);
        }
        /* dV += P^T dO */
        if (EV > 0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)S, (int)EV, (int)L, 1.0f, P, (int)S, j->dO + oo,
                        (int)EV, 1.0f, j->dV + vo, (int)EV);
        /* dP = dO V^T */
        if (EV > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)L, (int)S, (int)EV, 1.0f, j->dO + oo, (int)EV,
                        j->V + vo, (int)EV, 0.0f, dS, (int)S);
        else memset(dS, 0, (size_t)(L * S) * sizeof(float));
        /* dS = P * (dP - rowsum(dP * P)) */
        for (int64_t i = 0; i < L; i++) {
            double dot = 0;
            for (int64_t c = 0; c < S; c++) dot += (double)dS[i * S + c] * P[i * S + c];
            for (int64_t c = 0; c < S; c++) dS[i * S + c] = P[i * S + c] * (dS[i * S + c] - (float)dot);
        }
        if (E > 0) {
            /* dQ += scale dS K ; dK += scale dS^T Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)L, (int)E, (int)S, sc, dS, (int)S, j->K + ko,
                        (int)E, 1.0f, j->dQ + qo, (int)E);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)S, (int)E, (int)L, sc, dS, (int)S, j->Q + qo,
                        (int)E, 1.0f, j->dK + ko, (int)E);
        }
    }
}

int k_sdpa_bwd_run(MilKernelCtx *k) {
    AttnP p;
    MaskV mv;
    int rc = bwd_params(k, &p, &mv);
    if (rc) return rc;
    if (k->scratch_size < bwd_scratch_p(k, &p)) return mil_k_fail(k, "sdpa_backward: scratch too small");
    const MilRtTensor *q = mil_k_in(k, SB(query)), *kt = mil_k_in(k, SB(key)), *v = mil_k_in(k, SB(value));
    char *sp = k->scratch;
    BwdJob j = {&p, &mv, q, kt, v, mil_k_in(k, SB(probs)), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0};
    j.Q = k_in_f32(k, SB(query), &sp);
    j.K = k_in_f32(k, SB(key), &sp);
    j.V = k_in_f32(k, SB(value), &sp);
    j.dO = k_in_f32(k, SB(d_out), &sp);
    int64_t L = p.L, S = p.S;
    j.dQ = k_take(&sp, k_numel(q));
    j.dK = k_take(&sp, k_numel(kt));
    j.dV = k_take(&sp, k_numel(v));
    memset(j.dQ, 0, (size_t)k_numel(q) * sizeof(float));
    memset(j.dK, 0, (size_t)k_numel(kt) * sizeof(float));
    memset(j.dV, 0, (size_t)k_numel(v) * sizeof(float));
    j.per = 2 * k_al64((size_t)(L * S) * sizeof(float));
    j.buf = sp;
    if (L * S > 0) {
        if (bwd_by_batch(k, &p))
            k_parallel(k, p.nbatch, 1, (double)p.nbatch * (double)(L * S) * (double)(2 * p.E + 2 * p.EV + 8), bwd_heads, &j);
        else
            bwd_heads(&j, 0, p.nbatch, 0);
    }
    k_fromf32(k->out[0], j.dQ);
    k_fromf32(k->out[1], j.dK);
    k_fromf32(k->out[2], j.dV);
    return 0;
}
#undef SB
