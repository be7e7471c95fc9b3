/* runtime/cpu/k_norm.c -- softmax and normalisations: layer_norm, rms_norm,
 * batch_norm, instance_norm, l2_norm, local_response_norm.  Statistics are
 * accumulated in double; outputs are computed in fp32. */
#include "runtime/cpu/kutil.h"

/* ================================================================ softmax */

static int softmax_axis(MilKernelCtx *k, const MilRtTensor *x, int *axis) {
    int64_t ax;
    int rc = k_arg_int(k, MIL_A_SOFTMAX_axis, -1, &ax);
    if (rc) return rc;
    if (x->rank == 0) return mil_k_fail(k, "softmax: x must have rank >= 1");
    return k_norm_axis(k, ax, x->rank, axis);
}

int k_softmax_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_SOFTMAX_x);
    if (!x) return MIL_K_ERROR;
    int axis, rc;
    if ((rc = k_need_float(k, x, "x")) || (rc = softmax_axis(k, x, &axis))) return rc;
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

typedef struct {
    const MilRtTensor *x;
    MilRtTensor *o;
    int64_t n, inner;
    const KFused *f;             /* KF_SOFTMAX_SM: x [* scale] + mask, inner == 1 */
    int64_t mrows;               /* the mask's rows (1 or x's rows dim) */
} SoftmaxJob;

/* c elements of line base from element s: x's, or for the fused pattern
 * round(round(x * scale) + mask) as the mul and add ops would store them */
static void softmax_load(const SoftmaxJob *j, int64_t l, int64_t base, int64_t s, int64_t c, float *buf) {
    k_loadf(j->x, base + s * j->inner, j->inner, c, buf);
    const KFused *f = j->f;
    if (!f) return;
    MilDType dt = j->o->dtype;
    if (f->has_scale) {
        for (int64_t i = 0; i < c; i++) buf[i] *= f->scale;
        k_round_n(dt, buf, c);
    }
    if (f->b) {
        float m[KCHUNK];
        k_loadf(f->b, (j->mrows == 1 ? 0 : l % j->mrows) * j->n + s, 1, c, m);
        for (int64_t i = 0; i < c; i++) buf[i] += m[i];
        k_round_n(dt, buf, c);
    }
}

/* Contiguous rows of up to SOFTMAX_ROW elements: loaded once into a row
 * buffer, exp computed once.  The same values as the chunked loop below:
 * the same max, exp of the same differences, the sum in k_sum8 order. */
enum { SOFTMAX_ROW = 4096 };

K_VEC static void row_sub_scale(float *v, int64_t n, float sub, float mul, bool scale) {
    if (scale) for (int64_t i = 0; i < n; i++) v[i] *= mul;
    else for (int64_t i = 0; i < n; i++) v[i] -= sub;
}

static void softmax_rows(const SoftmaxJob *j, int64_t l0, int64_t l1) {
    float row[SOFTMAX_ROW];
    int64_t n = j->n;
    for (int64_t l = l0; l < l1; l++) {
        int64_t base = l * n;
        float mx = -INFINITY;
        for (int64_t s = 0; s < n; s += KCHUNK) {
            int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
            softmax_load(j, l, base, s, c, row + s);
        }
        for (int64_t i = 0; i < n; i++) if (row[i] > mx) mx = row[i];
        if (mx == -INFINITY) mx = 0;
        row_sub_scale(row, n, mx, 0, false);
        k_exp_n(row, n);
        double part[8] = {0};
        k_sum8(part, row, n);
        row_sub_scale(row, n, 0, (float)(1.0 / k_sum8_total(part)), true);
        k_storef(j->o, base, n, row);
    }
}

/* softmax lines [l0, l1): line l is (a, b) = (l / inner, l % inner) */
static void softmax_lines(void *arg, int64_t l0, int64_t l1, int tid) {
    const SoftmaxJob *j = arg;
    MilRtTensor *o = j->o;
    int64_t n = j->n, inner = j->inner;
    float buf[KCHUNK];
    (void)tid;
    if (inner == 1 && n <= SOFTMAX_ROW) {
        softmax_rows(j, l0, l1);
        return;
    }
    for (int64_t l = l0; l < l1; l++) {
        int64_t a = l / inner, b = l % inner, base = a * n * inner + b;
        float mx = -INFINITY;
        for (int64_t s = 0; s < n; s += KCHUNK) {
            int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
            softmax_load(j, l, base, s, c, buf);
            for (int64_t i = 0; i < c; i++) if (buf[i] > mx) mx = buf[i];
        }
        if (mx == -INFINITY) mx = 0;
        double part[8] = {0};
        for (int64_t s = 0; s < n; s += KCHUNK) {
            int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
            softmax_load(j, l, base, s, c, buf);
            for (int64_t i = 0; i < c; i++) buf[i] -= mx;
            k_exp_n(buf, c);
            k_sum8(part, buf, c);
        }
        float inv = (float)(1.0 / k_sum8_total(part));
        for (int64_t s = 0; s < n; s += KCHUNK) {
            int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
            softmax_load(j, l, base, s, c, buf);
            for (int64_t i = 0; i < c; i++) buf[i] -= mx;
            k_exp_n(buf, c);
            for (int64_t i = 0; i < c; i++) buf[i] *= inv;
            if (inner == 1) {
                k_storef(o, base + s, c, buf);
            } else {
                for (int64_t i = 0; i < c; i++) k_storef(o, base + (s + i) * inner, 1, &buf[i]);
            }
        }
    }
}

int k_softmax_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_SOFTMAX_x);
    int axis;
    softmax_axis(k, x, &axis);
    SoftmaxJob j = {x, k->out[0], x->dims[axis], k_prod(x->dims, axis + 1, x->rank), NULL, 1};
    int64_t lines = k_prod(x->dims, 0, axis) * j.inner;
    k_parallel(k, lines, 1, 12.0 * (double)k_numel(x), softmax_lines, &j);
    return 0;
}

int k_softmax_fused_run(const MilKernelCtx *k, const KFused *f) {
    const MilRtTensor *x = f->a, *m = f->b;
    int64_t n = x->dims[x->rank - 1];
    SoftmaxJob j = {x, f->o, n, 1, f, 1};
    if (m && n) j.mrows = k_numel(m) / n;
    k_parallel(k, n ? k_numel(x) / n : 0, 1, 14.0 * (double)k_numel(x), softmax_lines, &j);
    return 0;
}

/* ============================================ normalisation over an axis set */

enum { NM_LN, NM_RMS, NM_L2, NM_IN };

typedef struct {
    int mode;
    bool red[MIL_MAX_RANK];
    double eps;
    const MilRtTensor *gamma, *beta;
    int64_t C; /* NM_IN: channels (gamma/beta index = kept index % C) */
} NormP;

/* Fast path: the normalised axes are one contiguous run, x viewed as
 * [outer, R, inner].  Tasks of (outer index, a chunk of up to KCHUNK inner
 * columns) run on the pool; each column's statistics are summed over r in
 * order, in double, exactly as the generic loop below does. */
typedef struct {
    const MilRtTensor *x;
    MilRtTensor *o;
    const NormP *p;
    int64_t R, inner, nchunk;
} NormJob;

K_VEC static void norm_block(const NormJob *j, int64_t ob, int64_t i0, int64_t cn) {
    const NormP *p = j->p;
    int64_t R = j->R, inner = j->inner;
    double s1[KCHUNK], s2[KCHUNK];
    float buf[KCHUNK], fmean[KCHUNK], scale[KCHUNK];
    bool centred = p->mode == NM_LN;
    for (int64_t i = 0; i < cn; i++) s1[i] = s2[i] = 0;
    if (centred)
        for (int64_t r = 0; r < R; r++) {
            k_loadf(j->x, (ob * R + r) * inner + i0, 1, cn, buf);
            for (int64_t i = 0; i < cn; i++) s1[i] += buf[i];
        }
    for (int64_t i = 0; i < cn; i++) s1[i] = (centred && R) ? s1[i] / (double)R : 0;
    for (int64_t r = 0; r < R; r++) {
        k_loadf(j->x, (ob * R + r) * inner + i0, 1, cn, buf);
        for (int64_t i = 0; i < cn; i++) { double v = buf[i] - s1[i]; s2[i] += v * v; }
    }
    for (int64_t i = 0; i < cn; i++) {
        scale[i] = p->mode == NM_L2 ? (float)(1.0 / sqrt(s2[i] + p->eps))
                                    : (float)(1.0 / sqrt((R ? s2[i] / (double)R : 0) + p->eps));
        fmean[i] = (float)s1[i];
    }
    for (int64_t r = 0; r < R; r++) {
        float gr = p->gamma ? (float)k_getf(p->gamma, r) : 1.0f, br = p->beta ? (float)k_getf(p->beta, r) : 0.0f;
        k_loadf(j->x, (ob * R + r) * inner + i0, 1, cn, buf);
        for (int64_t i = 0; i < cn; i++) {
            float y = (buf[i] - fmean[i]) * scale[i];
            if (p->gamma) y *= gr;
            if (p->beta) y += br;
            buf[i] = y;
        }
        k_storef(j->o, (ob * R + r) * inner + i0, cn, buf);
    }
}

/* A row's sum in double, in a fixed order: element i goes to partial sum
 * i % NPART (position in the row, not in the chunk: KCHUNK is a multiple),
 * the partials are added in index order at the end.  Independent partial
 * sums vectorise; the result never depends on threads or the vector level. */
enum { NPART = 8 };

/* inner == 1: rows of R contiguous elements (one row per outer index) */
K_VEC static void norm_row(const NormJob *j, int64_t r) {
    const NormP *p = j->p;
    int64_t nred = j->R, base = r * nred;
    float buf[KCHUNK], g[KCHUNK];
    double s1 = 0, s2 = 0, part[NPART];
    bool centred = p->mode == NM_LN;
    if (centred) {
        for (int q = 0; q < NPART; q++) part[q] = 0;
        for (int64_t c0 = 0; c0 < nred; c0 += KCHUNK) {
            int64_t cn = nred - c0 < KCHUNK ? nred - c0 : KCHUNK, i = 0;
            k_loadf(j->x, base + c0, 1, cn, buf);
            for (; i + NPART <= cn; i += NPART)
                for (int q = 0; q < NPART; q++) part[q] += buf[i + q];
            for (; i < cn; i++) part[i % NPART] += buf[i];
        }
        for (int q = 0; q < NPART; q++) s1 += part[q];
    }
    double mean = (centred && nred) ? s1 / (double)nred : 0;
    for (int q = 0; q < NPART; q++) part[q] = 0;
    for (int64_t c0 = 0; c0 < nred; c0 += KCHUNK) {
        int64_t cn = nred - c0 < KCHUNK ? nred - c0 : KCHUNK, i = 0;
        k_loadf(j->x, base + c0, 1, cn, buf);
        for (; i + NPART <= cn; i += NPART)
            for (int q = 0; q < NPART; q++) { double v = buf[i + q] - mean; part[q] += v * v; }
        for (; i < cn; i++) { double v = buf[i] - mean; part[i % NPART] += v * v; }
    }
    for (int q = 0; q < NPART; q++) s2 += part[q];
    float scale = p->mode == NM_L2 ? (float)(1.0 / sqrt(s2 + p->eps))
                                   : (float)(1.0 / sqrt((nred ? s2 / (double)nred : 0) + p->eps));
    float fmean = (float)mean;
    for (int64_t c0 = 0; c0 < nred; c0 += KCHUNK) {
        int64_t cn = nred - c0 < KCHUNK ? nred - c0 : KCHUNK;
        k_loadf(j->x, base + c0, 1, cn, buf);
        for (int64_t i = 0; i < cn; i++) buf[i] = (buf[i] - fmean) * scale;
        if (p->gamma) {
            k_loadf(p->gamma, c0, 1, cn, g);
            for (int64_t i = 0; i < cn; i++) buf[i] *= g[i];
        }
        if (p->beta) {
            k_loadf(p->beta, c0, 1, cn, g);
            for (int64_t i = 0; i < cn; i++) buf[i] += g[i];
        }
        k_storef(j->o, base + c0, cn, buf);
    }
}

static void norm_tasks(void *arg, int64_t t0, int64_t t1, int tid) {
    const NormJob *j = arg;
    (void)tid;
    for (int64_t t = t0; t < t1; t++) {
        if (j->inner == 1) { norm_row(j, t); continue; }
        int64_t ob = t / j->nchunk, i0 = (t % j->nchunk) * KCHUNK;
        norm_block(j, ob, i0, j->inner - i0 < KCHUNK ? j->inner - i0 : KCHUNK);
    }
}

static bool norm_rows(const MilKernelCtx *k, const MilRtTensor *x, MilRtTensor *o, const NormP *p) {
    if (p->mode == NM_IN) return false;
    int first = -1, last = -1;
    for (int a = 0; a < x->rank; a++)
        if (p->red[a]) {
            if (first < 0) first = a;
            else if (last != a - 1) return false;  /* not one contiguous run */
            last = a;
        }
    if (first < 0) return false;
    NormJob j = {x, o, p, k_prod(x->dims, first, last + 1), k_prod(x->dims, last + 1, x->rank), 0};
    int64_t outer = k_prod(x->dims, 0, first);
    j.nchunk = (j.inner + KCHUNK - 1) / KCHUNK;
    int64_t ntask = j.inner == 1 ? outer : outer * j.nchunk;
    k_parallel(k, ntask, 1, 4.0 * (double)k_numel(x), norm_tasks, &j);
    return true;
}

static void norm_run(const MilKernelCtx *k, const MilRtTensor *x, MilRtTensor *o, const NormP *p) {
    if (norm_rows(k, x, o, p)) return;
    KAxisSplit it;
    k_axis_split(x, p->red, &it);
    int64_t nred = it.nred;
    for (int64_t oi = 0; oi < it.nout; oi++) {
        int64_t base = k_odo(it.nk, it.kd, it.ks, oi);
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < nred; j++) {
            double v = k_getf(x, base + k_odo(it.nr, it.rd, it.rs, j));
            s1 += v;
        }
        double mean = nred ? s1 / (double)nred : 0;
        for (int64_t j = 0; j < nred; j++) {
            double v = k_getf(x, base + k_odo(it.nr, it.rd, it.rs, j));
            if (p->mode == NM_LN || p->mode == NM_IN) v -= mean;
            s2 += v * v;
        }
        float scale;
        switch (p->mode) {
        case NM_L2: scale = (float)(1.0 / sqrt(s2 + p->eps)); break;
        default: scale = (float)(1.0 / sqrt((nred ? s2 / (double)nred : 0) + p->eps)); break;
        }
        float fmean = (p->mode == NM_LN || p->mode == NM_IN) ? (float)mean : 0.0f;
        float gc = 1.0f, bc = 0.0f;
        if (p->mode == NM_IN) {
            int64_t c = oi % p->C;
            if (p->gamma) gc = (float)k_getf(p->gamma, c);
            if (p->beta) bc = (float)k_getf(p->beta, c);
        }
        for (int64_t j = 0; j < nred; j++) {
            int64_t off = base + k_odo(it.nr, it.rd, it.rs, j);
            float v = (float)k_getf(x, off);
            float y = (v - fmean) * scale;
            if (p->mode == NM_LN || p->mode == NM_RMS) {
                if (p->gamma) y *= (float)k_getf(p->gamma, j);
                if (p->beta) y += (float)k_getf(p->beta, j);
            } else if (p->mode == NM_IN) {
                y = y * gc + bc;
            }
            k_storef(o, off, 1, &y);
        }
    }
}

/* gamma/beta of layer_norm / rms_norm: shape x.shape[axes] (ascending axes) */
static int check_affine(MilKernelCtx *k, int slot, const MilRtTensor *x, const bool *red, const MilRtTensor **out) {
    const MilRtTensor *g = mil_k_in(k, slot);
    *out = g;
    if (!g) return 0;
    if (!k_isfloat(g->dtype))
        return mil_k_fail(k, "%s: '%s' must be a float tensor", k_opname(k), k_argname(k, slot));
    int64_t want[MIL_MAX_RANK];
    int n = 0;
    int64_t cnt = 1;
    for (int i = 0; i < x->rank; i++) if (red[i]) { want[n++] = x->dims[i]; cnt *= x->dims[i]; }
    bool ok = k_numel(g) == cnt;
    if (ok && g->rank == n)
        for (int i = 0; i < n; i++) if (g->dims[i] != want[i]) ok = false;
    if (!ok) return mil_k_fail(k, "%s: '%s' must have the shape of x over the normalised axes", k_opname(k),
                               k_argname(k, slot));
    if (!g->data) return MIL_K_NEED_DATA;
    return 0;
}

static int axes_set(MilKernelCtx *k, int slot, const MilRtTensor *x, bool all_default, bool *red) {
    int64_t axes[MIL_MAX_RANK];
    int n, rc;
    if ((rc = k_arg_ints(k, slot, axes, MIL_MAX_RANK, &n))) return rc;
    for (int i = 0; i < MIL_MAX_RANK; i++) red[i] = n < 0 && all_default && i < x->rank;
    for (int i = 0; i < n; i++) {
        int a;
        if ((rc = k_norm_axis(k, axes[i], x->rank, &a))) return rc;
        if (red[a]) return mil_k_fail(k, "%s: axis %d repeated in axes", k_opname(k), a);
        red[a] = true;
    }
    return 0;
}

/* layer_norm, rms_norm, l2_norm and instance_norm: their parameters (params),
 * then the output has x's shape and norm_run computes it. */
typedef int (*NormParamsFn)(MilKernelCtx *k, NormP *p);

static int norm_shape(MilKernelCtx *k, NormParamsFn params, int xslot) {
    NormP p;
    int rc = params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, xslot);
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

static int norm_kernel_run(MilKernelCtx *k, NormParamsFn params, int xslot) {
    NormP p;
    int rc = params(k, &p);
    if (rc) return rc;
    norm_run(k, mil_k_in(k, xslot), k->out[0], &p);
    return 0;
}

static int ln_params(MilKernelCtx *k, NormP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_LAYER_NORM_x);
    if (!x) return MIL_K_ERROR;
    int rc;
    p->mode = NM_LN;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if ((rc = axes_set(k, MIL_A_LAYER_NORM_axes, x, true, p->red))) return rc;
    if ((rc = k_arg_float(k, MIL_A_LAYER_NORM_epsilon, 0x1.4f8b58p-17, &p->eps))) return rc;
    if ((rc = check_affine(k, MIL_A_LAYER_NORM_gamma, x, p->red, &p->gamma))) return rc;
    return check_affine(k, MIL_A_LAYER_NORM_beta, x, p->red, &p->beta);
}

int k_layer_norm_shape(MilKernelCtx *k) { return norm_shape(k, ln_params, MIL_A_LAYER_NORM_x); }
int k_layer_norm_run(MilKernelCtx *k) { return norm_kernel_run(k, ln_params, MIL_A_LAYER_NORM_x); }

static int rms_params(MilKernelCtx *k, NormP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_RMS_NORM_x);
    if (!x || !k_req(k, MIL_A_RMS_NORM_axes)) return MIL_K_ERROR;
    int rc;
    p->mode = NM_RMS;
    p->beta = NULL;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if ((rc = axes_set(k, MIL_A_RMS_NORM_axes, x, false, p->red))) return rc;
    if ((rc = k_arg_float(k, MIL_A_RMS_NORM_epsilon, 0x1.4f8b58p-17, &p->eps))) return rc;
    return check_affine(k, MIL_A_RMS_NORM_gamma, x, p->red, &p->gamma);
}

int k_rms_norm_shape(MilKernelCtx *k) { return norm_shape(k, rms_params, MIL_A_RMS_NORM_x); }
int k_rms_norm_run(MilKernelCtx *k) { return norm_kernel_run(k, rms_params, MIL_A_RMS_NORM_x); }

static int l2_params(MilKernelCtx *k, NormP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_L2_NORM_x);
    if (!x) return MIL_K_ERROR;
    int rc;
    p->mode = NM_L2;
    p->gamma = p->beta = NULL;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if ((rc = axes_set(k, MIL_A_L2_NORM_axes, x, false, p->red))) return rc;
    if (!mil_k_in(k, MIL_A_L2_NORM_axes)) {
        if (x->rank < 3) return mil_k_fail(k, "l2_norm: x must have rank >= 3 (or give axes)");
        for (int i = x->rank - 3; i < x->rank; i++) p->red[i] = true;
    }
    return k_arg_float(k, MIL_A_L2_NORM_epsilon, 0x1.0c6f7ap-20, &p->eps);
}

int k_l2_norm_shape(MilKernelCtx *k) { return norm_shape(k, l2_params, MIL_A_L2_NORM_x); }
int k_l2_norm_run(MilKernelCtx *k) { return norm_kernel_run(k, l2_params, MIL_A_L2_NORM_x); }

/* per-channel [C] parameter */
static int chan_vec(MilKernelCtx *k, int slot, int64_t C, bool req, const MilRtTensor **out) {
    const MilRtTensor *t = mil_k_in(k, slot);
    *out = t;
    if (!t) return req ? mil_k_fail(k, "%s: missing required argument '%s'", k_opname(k), k_argname(k, slot)) : 0;
    if (!k_isfloat(t->dtype))
        return mil_k_fail(k, "%s: '%s' must be a float tensor", k_opname(k), k_argname(k, slot));
    if (k_numel(t) != C || t->rank > 1)
        return mil_k_fail(k, "%s: '%s' must have shape [%lld]", k_opname(k), k_argname(k, slot), (long long)C);
    if (!t->data) return MIL_K_NEED_DATA;
    return 0;
}

static int in_params(MilKernelCtx *k, NormP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_INSTANCE_NORM_x);
    if (!x) return MIL_K_ERROR;
    int rc;
    p->mode = NM_IN;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if (x->rank < 3) return mil_k_fail(k, "instance_norm: x must have rank >= 3 ([N, C, *D])");
    p->C = x->dims[1];
    for (int i = 0; i < MIL_MAX_RANK; i++) p->red[i] = i >= 2 && i < x->rank;
    if ((rc = k_arg_float(k, MIL_A_INSTANCE_NORM_epsilon, 0x1.4f8b58p-17, &p->eps))) return rc;
    if ((rc = chan_vec(k, MIL_A_INSTANCE_NORM_gamma, p->C, false, &p->gamma))) return rc;
    return chan_vec(k, MIL_A_INSTANCE_NORM_beta, p->C, false, &p->beta);
}

int k_instance_norm_shape(MilKernelCtx *k) { return norm_shape(k, in_params, MIL_A_INSTANCE_NORM_x); }
int k_instance_norm_run(MilKernelCtx *k) { return norm_kernel_run(k, in_params, MIL_A_INSTANCE_NORM_x); }

/* ============================================================= batch_norm */

typedef struct {
    const MilRtTensor *mean, *var, *gamma, *beta;
    double eps;
} BnP;

static int bn_params(MilKernelCtx *k, BnP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_BATCH_NORM_x);
    if (!x) return MIL_K_ERROR;
    int rc;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if (x->rank < 2) return mil_k_fail(k, "batch_norm: x must have rank >= 2 ([N, C, *D])");
    int64_t C = x->dims[1];
    if ((rc = chan_vec(k, MIL_A_BATCH_NORM_mean, C, true, &p->mean))) return rc;
    if ((rc = chan_vec(k, MIL_A_BATCH_NORM_variance, C, true, &p->var))) return rc;
    if ((rc = chan_vec(k, MIL_A_BATCH_NORM_gamma, C, false, &p->gamma))) return rc;
    if ((rc = chan_vec(k, MIL_A_BATCH_NORM_beta, C, false, &p->beta))) return rc;
    return k_arg_float(k, MIL_A_BATCH_NORM_epsilon, 0x1.4f8b58p-17, &p->eps);
}

int k_batch_norm_shape(MilKernelCtx *k) {
    BnP p;
    int rc = bn_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, MIL_A_BATCH_NORM_x);
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

int k_batch_norm_run(MilKernelCtx *k) {
    BnP p;
    int rc = bn_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, MIL_A_BATCH_NORM_x);
    MilRtTensor *o = k->out[0];
    int64_t N = x->dims[0], C = x->dims[1], S = k_prod(x->dims, 2, x->rank);
    float buf[KCHUNK];
    for (int64_t c = 0; c < C; c++) {
        double sc = 1.0 / sqrt(k_getf(p.var, c) + p.eps);
        if (p.gamma) sc *= k_getf(p.gamma, c);
        double sh = -k_getf(p.mean, c) * sc + (p.beta ? k_getf(p.beta, c) : 0.0);
        float fs = (float)sc, fh = (float)sh;
        for (int64_t n = 0; n < N; n++) {
            int64_t base = (n * C + c) * S;
            for (int64_t s = 0; s < S; s += KCHUNK) {
                int64_t cn = S - s < KCHUNK ? S - s : KCHUNK;
                k_loadf(x, base + s, 1, cn, buf);
                for (int64_t i = 0; i < cn; i++) buf[i] = buf[i] * fs + fh;
                k_storef(o, base + s, cn, buf);
            }
        }
    }
    return 0;
}

/* ==================================================== local_response_norm */

typedef struct {
    int64_t size;
    double alpha, beta, kk;
} LrnP;

static int lrn_params(MilKernelCtx *k, LrnP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_LOCAL_RESPONSE_NORM_x);
    if (!x || !k_req(k, MIL_A_LOCAL_RESPONSE_NORM_size)) return MIL_K_ERROR;
    int rc;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if (x->rank < 3) return mil_k_fail(k, "local_response_norm: x must have rank >= 3 ([N, C, *D])");
    if ((rc = k_arg_int(k, MIL_A_LOCAL_RESPONSE_NORM_size, 1, &p->size))) return rc;
    if (p->size < 1) return mil_k_fail(k, "local_response_norm: size must be >= 1");
    if ((rc = k_arg_float(k, MIL_A_LOCAL_RESPONSE_NORM_alpha, 0x1.a36e2ep-14, &p->alpha))) return rc;
    if ((rc = k_arg_float(k, MIL_A_LOCAL_RESPONSE_NORM_beta, 0x1.8p-1, &p->beta))) return rc;
    return k_arg_float(k, MIL_A_LOCAL_RESPONSE_NORM_k, 1.0, &p->kk);
}

int k_lrn_shape(MilKernelCtx *k) {
    LrnP p;
    int rc = lrn_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, MIL_A_LOCAL_RESPONSE_NORM_x);
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

/* window over channels: [c - floor((size-1)/2), c + ceil((size-1)/2)] */
int k_lrn_run(MilKernelCtx *k) {
    LrnP p;
    int rc = lrn_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, MIL_A_LOCAL_RESPONSE_NORM_x);
    MilRtTensor *o = k->out[0];
    int64_t N = x->dims[0], C = x->dims[1], S = k_prod(x->dims, 2, x->rank);
    int64_t lo = (p.size - 1) / 2, hi = p.size / 2;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t s = 0; s < S; s++) {
                double ss = 0;
                for (int64_t j = c - lo; j <= c + hi; j++) {
                    if (j < 0 || j >= C) continue;
                    double v = k_getf(x, (n * C + j) * S + s);
                    ss += v * v;
                }
                int64_t off = (n * C + c) * S + s;
                float y = (float)(k_getf(x, off) / pow(p.kk + p.alpha / (double)p.size * ss, p.beta));
                k_storef(o, off, 1, &y);
            }
    return 0;
}
