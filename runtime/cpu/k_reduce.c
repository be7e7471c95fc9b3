/* runtime/cpu/k_reduce.c -- reductions, argmax/argmin, cumsum, topk, argsort. */
#include <stdlib.h>

#include "runtime/cpu/kutil.h"

/* ============================================================ reductions */

typedef struct {
    bool red[MIL_MAX_RANK];
    bool keep;
} RedSpec;

/* all REDUCE_* ops share the slot layout axes=0, keep_dims=1, x=2 */
static int red_spec(MilKernelCtx *k, const MilRtTensor *x, RedSpec *s) {
    int64_t axes[MIL_MAX_RANK];
    int n, rc;
    if ((rc = k_arg_ints(k, MIL_A_REDUCE_SUM_axes, axes, MIL_MAX_RANK, &n))) return rc;
    if ((rc = k_arg_bool(k, MIL_A_REDUCE_SUM_keep_dims, false, &s->keep))) return rc;
    for (int i = 0; i < MIL_MAX_RANK; i++) s->red[i] = n < 0;
    for (int i = 0; i < n; i++) {
        int a;
        if ((rc = k_norm_axis(k, axes[i], x->rank, &a))) return rc;
        if (s->red[a]) return mil_k_fail(k, "%s: axis %d repeated in axes", k_opname(k), a);
        s->red[a] = true;
    }
    return 0;
}

int k_reduce_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_REDUCE_SUM_x);
    if (!x) return MIL_K_ERROR;
    if (!k_isfloat(x->dtype) && !k_isint(x->dtype))
        return mil_k_fail(k, "%s: unsupported dtype %s", k_opname(k), k_dtname(x->dtype));
    RedSpec s;
    int rc = red_spec(k, x, &s);
    if (rc) return rc;
    int64_t dims[MIL_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!s.red[i]) dims[r++] = x->dims[i];
        else if (s.keep) dims[r++] = 1;
    }
    k_set_shape(k->out[0], x->dtype, r, dims);
    return 0;
}

K_VEC void k_sum8(double part[8], const float *v, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; q++) part[q] += v[i + q];
    for (; i < n; i++) part[i % 8] += v[i];
}

typedef struct {
    const MilRtTensor *x;
    MilRtTensor *o;
    MilOpKind op;
    KAxisSplit it;
} RedJob;

/* outputs [o0, o1).  A sum (reduce_sum / reduce_mean) over a contiguous
 * innermost axis adds element i of each run into partial i % 8 (k_sum8) and
 * the partials in order at the end; every other reduction runs in element
 * order.  Either way one output's order is fixed: thread-count independent. */
static void reduce_outs(void *arg, int64_t o0, int64_t o1, int tid) {
    const RedJob *j = arg;
    const MilRtTensor *x = j->x;
    MilRtTensor *o = j->o;
    const KAxisSplit it = j->it;
    MilOpKind op = j->op;
    bool isint = k_isint(x->dtype);
    (void)tid;
    /* the innermost reduced axis, iterated contiguously */
    int64_t ilen = it.nr ? it.rd[it.nr - 1] : 1, ist = it.nr ? it.rs[it.nr - 1] : 0;
    int64_t nouter_red = ilen ? it.nred / ilen : 0;
    bool sum8 = !isint && ist == 1 && (op == MIL_OP_REDUCE_SUM || op == MIL_OP_REDUCE_MEAN);
    for (int64_t oi = o0; oi < o1; oi++) {
        int64_t base = k_odo(it.nk, it.kd, it.ks, oi);
        double acc;
        int64_t iacc;
        switch (op) {
        case MIL_OP_REDUCE_MAX: acc = -INFINITY; iacc = INT64_MIN; break;
        case MIL_OP_REDUCE_MIN: acc = INFINITY; iacc = INT64_MAX; break;
        case MIL_OP_REDUCE_PROD: acc = 1; iacc = 1; break;
        default: acc = 0; iacc = 0; break;
        }
        double mx = -INFINITY;
        if (op == MIL_OP_REDUCE_LOG_SUM_EXP) {
            for (int64_t r = 0; r < nouter_red; r++) {
                int64_t rb = base + k_odo(it.nr - 1, it.rd, it.rs, r);
                for (int64_t i = 0; i < ilen; i++) {
                    double v = k_getf(x, rb + i * ist);
                    if (v > mx || v != v) mx = v;
                }
            }
            if (mx == -INFINITY || mx == INFINITY) mx = mx == INFINITY ? INFINITY : 0;
        }
        float fb[KCHUNK];
        double part[8] = {0};
        for (int64_t r = 0; r < nouter_red; r++) {
            int64_t rb = base + k_odo(it.nr - 1, it.rd, it.rs, r);
            if (isint && (op == MIL_OP_REDUCE_SUM || op == MIL_OP_REDUCE_PROD || op == MIL_OP_REDUCE_MAX ||
                          op == MIL_OP_REDUCE_MIN)) {
                for (int64_t i = 0; i < ilen; i++) {
                    int64_t v = k_geti(x, rb + i * ist);
                    switch (op) {
                    case MIL_OP_REDUCE_SUM: iacc = (int64_t)((uint64_t)iacc + (uint64_t)v); break;
                    case MIL_OP_REDUCE_PROD: iacc = (int64_t)((uint64_t)iacc * (uint64_t)v); break;
                    case MIL_OP_REDUCE_MAX: if (v > iacc) iacc = v; break;
                    default: if (v < iacc) iacc = v; break;
                    }
                }
                continue;
            }
            for (int64_t c0 = 0; c0 < ilen; c0 += KCHUNK) {
                int64_t cn = ilen - c0 < KCHUNK ? ilen - c0 : KCHUNK;
                k_loadf(x, rb + c0 * ist, ist, cn, fb);
                if (sum8) {
                    k_sum8(part, fb, cn);
                    continue;
                }
                for (int64_t i = 0; i < cn; i++) {
                    double v = fb[i];
                    switch (op) {
                    case MIL_OP_REDUCE_SUM: case MIL_OP_REDUCE_MEAN: case MIL_OP_REDUCE_LOG_SUM: acc += v; break;
                    case MIL_OP_REDUCE_MAX: if (v > acc || v != v) acc = v; break;
                    case MIL_OP_REDUCE_MIN: if (v < acc || v != v) acc = v; break;
                    case MIL_OP_REDUCE_PROD: acc *= v; break;
                    case MIL_OP_REDUCE_SUM_SQUARE: case MIL_OP_REDUCE_L2_NORM: acc += v * v; break;
                    case MIL_OP_REDUCE_L1_NORM: acc += fabs(v); break;
                    case MIL_OP_REDUCE_LOG_SUM_EXP: acc += exp(v - mx); break;
                    default: break;
                    }
                }
            }
        }
        if (isint && (op == MIL_OP_REDUCE_SUM || op == MIL_OP_REDUCE_PROD || op == MIL_OP_REDUCE_MAX ||
                      op == MIL_OP_REDUCE_MIN)) {
            k_seti(o, oi, iacc);
            continue;
        }
        if (sum8) acc = k_sum8_total(part);
        switch (op) {
        case MIL_OP_REDUCE_MEAN: acc /= (double)it.nred; break;
        case MIL_OP_REDUCE_L2_NORM: acc = sqrt(acc); break;
        case MIL_OP_REDUCE_LOG_SUM: acc = log(acc); break;
        case MIL_OP_REDUCE_LOG_SUM_EXP: acc = mx + log(acc); break;
        default: break;
        }
        if (k_isfloat(o->dtype)) {
            float f = (float)acc;
            k_storef(o, oi, 1, &f);
        } else {
            k_setf(o, oi, acc);
        }
    }
}

int k_reduce_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_REDUCE_SUM_x);
    RedSpec s;
    int rc = red_spec(k, x, &s);
    if (rc) return rc;
    RedJob j = {x, k->out[0], k->kind, {0}};
    k_axis_split(x, s.red, &j.it);
    k_parallel(k, j.it.nout, 1, 4.0 * (double)k_numel(x), reduce_outs, &j);
    return 0;
}

/* ========================================================= argmax / argmin */

static int argred_params(MilKernelCtx *k, const MilRtTensor *x, int *axis, bool *keep, MilDType *odt) {
    int64_t ax;
    const char *dts;
    int rc;
    if ((rc = k_arg_int(k, MIL_A_REDUCE_ARGMAX_axis, -1, &ax))) return rc;
    if ((rc = k_arg_bool(k, MIL_A_REDUCE_ARGMAX_keep_dims, false, keep))) return rc;
    if ((rc = k_arg_str(k, MIL_A_REDUCE_ARGMAX_output_dtype, "int32", &dts))) return rc;
    if (x->rank == 0) return mil_k_fail(k, "%s: x must have rank >= 1", k_opname(k));
    if ((rc = k_norm_axis(k, ax, x->rank, axis))) return rc;
    *odt = k_dtype_from_name(dts);
    if (*odt != MIL_DT_INT32 && *odt != MIL_DT_INT16 && *odt != MIL_DT_UINT16 && *odt != MIL_DT_INT8 &&
        *odt != MIL_DT_UINT8)
        return mil_k_fail(k, "%s: unsupported output_dtype \"%s\"", k_opname(k), dts);
    return 0;
}

int k_argred_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_REDUCE_ARGMAX_x);
    if (!x) return MIL_K_ERROR;
    if (!k_isfloat(x->dtype) && !k_isint(x->dtype))
        return mil_k_fail(k, "%s: unsupported dtype %s", k_opname(k), k_dtname(x->dtype));
    int axis, rc;
    bool keep;
    MilDType odt;
    if ((rc = argred_params(k, x, &axis, &keep, &odt))) return rc;
    if (x->dims[axis] == 0) return mil_k_fail(k, "%s: reduced axis is empty", k_opname(k));
    int64_t dims[MIL_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i != axis) dims[r++] = x->dims[i];
        else if (keep) dims[r++] = 1;
    }
    k_set_shape(k->out[0], odt, r, dims);
    return 0;
}

int k_argred_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_REDUCE_ARGMAX_x);
    int axis, rc;
    bool keep;
    MilDType odt;
    if ((rc = argred_params(k, x, &axis, &keep, &odt))) return rc;
    bool ismax = k->kind == MIL_OP_REDUCE_ARGMAX;
    int64_t outer = k_prod(x->dims, 0, axis), inner = k_prod(x->dims, axis + 1, x->rank), n = x->dims[axis];
    for (int64_t a = 0; a < outer; a++)
        for (int64_t b = 0; b < inner; b++) {
            int64_t base = a * n * inner + b, best = 0;
            double bv = k_getf(x, base);
            for (int64_t i = 1; i < n && bv == bv; i++) {
                double v = k_getf(x, base + i * inner);
                if (v != v || (ismax ? v > bv : v < bv)) { bv = v; best = i; }
            }
            k_seti(k->out[0], a * inner + b, best);
        }
    return 0;
}

/* ================================================================= cumsum */

int k_cumsum_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_CUMSUM_x);
    if (!x) return MIL_K_ERROR;
    int64_t ax;
    int axis, rc;
    bool b;
    if ((rc = k_arg_int(k, MIL_A_CUMSUM_axis, 0, &ax))) return rc;
    if ((rc = k_arg_bool(k, MIL_A_CUMSUM_exclusive, false, &b))) return rc;
    if ((rc = k_arg_bool(k, MIL_A_CUMSUM_reverse, false, &b))) return rc;
    if (x->rank == 0) return mil_k_fail(k, "cumsum: x must have rank >= 1");
    if ((rc = k_norm_axis(k, ax, x->rank, &axis))) return rc;
    if (!k_isfloat(x->dtype) && !k_isint(x->dtype))
        return mil_k_fail(k, "cumsum: unsupported dtype %s", k_dtname(x->dtype));
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

int k_cumsum_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_CUMSUM_x);
    int64_t ax;
    int axis;
    bool excl, rev;
    k_arg_int(k, MIL_A_CUMSUM_axis, 0, &ax);
    k_arg_bool(k, MIL_A_CUMSUM_exclusive, false, &excl);
    k_arg_bool(k, MIL_A_CUMSUM_reverse, false, &rev);
    k_norm_axis(k, ax, x->rank, &axis);
    int64_t outer = k_prod(x->dims, 0, axis), inner = k_prod(x->dims, axis + 1, x->rank), n = x->dims[axis];
    bool isint = k_isint(x->dtype);
    for (int64_t a = 0; a < outer; a++)
        for (int64_t b = 0; b < inner; b++) {
            double acc = 0;
            int64_t iacc = 0;
            for (int64_t j = 0; j < n; j++) {
                int64_t i = rev ? n - 1 - j : j;
                int64_t off = (a * n + i) * inner + b;
                if (isint) {
                    int64_t v = k_geti(x, off);
                    if (!excl) iacc += v;
                    k_seti(k->out[0], off, iacc);
                    if (excl) iacc += v;
                } else {
                    double v = k_getf(x, off);
                    if (!excl) acc += v;
                    float f = (float)acc;
                    k_storef(k->out[0], off, 1, &f);
                    if (excl) acc += v;
                }
            }
        }
    return 0;
}

/* ========================================================= topk / argsort */

typedef struct { double v; int64_t i; } KPair;

/* NaN sorts last in both directions (numpy argsort(x) / argsort(-x)); ties keep
 * index order (stable). */
static int cmp_asc(const void *pa, const void *pb) {
    const KPair *a = pa, *b = pb;
    bool na = a->v != a->v, nb = b->v != b->v;
    if (na != nb) return na ? 1 : -1;
    if (!na && a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}
static int cmp_desc(const void *pa, const void *pb) {
    const KPair *a = pa, *b = pb;
    bool na = a->v != a->v, nb = b->v != b->v;
    if (na != nb) return na ? 1 : -1;
    if (!na && a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : (a->i > b->i);
}

typedef struct {
    int axis;
    int64_t kk;
    bool asc, ret_idx;
    MilDType idt;
} TopkP;

static int topk_params(MilKernelCtx *k, const MilRtTensor *x, TopkP *p) {
    int64_t ax;
    const char *dts;
    bool sort;
    int rc;
    if ((rc = k_arg_bool(k, MIL_A_TOPK_ascending, false, &p->asc))) return rc;
    if ((rc = k_arg_int(k, MIL_A_TOPK_axis, -1, &ax))) return rc;
    if ((rc = k_arg_int(k, MIL_A_TOPK_k, 1, &p->kk))) return rc;
    if ((rc = k_arg_str(k, MIL_A_TOPK_output_indices_dtype, "int32", &dts))) return rc;
    if ((rc = k_arg_bool(k, MIL_A_TOPK_return_indices, true, &p->ret_idx))) return rc;
    if ((rc = k_arg_bool(k, MIL_A_TOPK_sort, true, &sort))) return rc;
    if (x->rank == 0) return mil_k_fail(k, "topk: x must have rank >= 1");
    if ((rc = k_norm_axis(k, ax, x->rank, &p->axis))) return rc;
    p->idt = k_dtype_from_name(dts);
    if (p->idt != MIL_DT_INT32 && p->idt != MIL_DT_UINT16 && p->idt != MIL_DT_INT16)
        return mil_k_fail(k, "topk: unsupported output_indices_dtype \"%s\"", dts);
    if (p->kk < 0 || p->kk > x->dims[p->axis])
        return mil_k_fail(k, "topk: k=%lld out of range for axis size %lld", (long long)p->kk,
                          (long long)x->dims[p->axis]);
    return 0;
}

int k_topk_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_TOPK_x);
    if (!x) return MIL_K_ERROR;
    if (!k_isfloat(x->dtype) && !k_isint(x->dtype))
        return mil_k_fail(k, "topk: unsupported dtype %s", k_dtname(x->dtype));
    TopkP p;
    int rc = topk_params(k, x, &p);
    if (rc) return rc;
    int need = p.ret_idx ? 2 : 1;
    if (k->nout != need) return mil_k_fail(k, "topk: expected %d results, got %d", need, k->nout);
    int64_t dims[MIL_MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[p.axis] = p.kk;
    k_set_shape(k->out[0], x->dtype, x->rank, dims);
    if (p.ret_idx) k_set_shape(k->out[1], p.idt, x->rank, dims);
    return 0;
}

static size_t sort_scratch(const MilRtTensor *x) {
    int64_t m = 1;
    for (int i = 0; i < x->rank; i++) if (x->dims[i] > m) m = x->dims[i];
    return (size_t)m * sizeof(KPair);
}

size_t k_topk_scratch(const MilKernelCtx *k) { return sort_scratch(mil_k_in(k, MIL_A_TOPK_x)); }
size_t k_argsort_scratch(const MilKernelCtx *k) { return sort_scratch(mil_k_in(k, MIL_A_ARGSORT_x)); }

static void sort_lines(const MilRtTensor *x, int axis, bool asc, int64_t kk, KPair *buf, MilRtTensor *vals,
                       MilRtTensor *idx) {
    int64_t outer = k_prod(x->dims, 0, axis), inner = k_prod(x->dims, axis + 1, x->rank), n = x->dims[axis];
    for (int64_t a = 0; a < outer; a++)
        for (int64_t b = 0; b < inner; b++) {
            for (int64_t i = 0; i < n; i++) {
                buf[i].v = k_getf(x, (a * n + i) * inner + b);
                buf[i].i = i;
            }
            qsort(buf, (size_t)n, sizeof(KPair), asc ? cmp_asc : cmp_desc);
            for (int64_t j = 0; j < kk; j++) {
                int64_t off = (a * kk + j) * inner + b;
                if (vals) k_setf(vals, off, buf[j].v);
                if (idx) k_seti(idx, off, buf[j].i);
            }
        }
}

int k_topk_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_TOPK_x);
    TopkP p;
    int rc = topk_params(k, x, &p);
    if (rc) return rc;
    if (k->scratch_size < sort_scratch(x)) return mil_k_fail(k, "topk: scratch too small");
    sort_lines(x, p.axis, p.asc, p.kk, k->scratch, k->out[0], p.ret_idx ? k->out[1] : NULL);
    return 0;
}

static int argsort_params(MilKernelCtx *k, const MilRtTensor *x, int *axis, bool *asc) {
    int64_t ax;
    int rc;
    if ((rc = k_arg_bool(k, MIL_A_ARGSORT_ascending, false, asc))) return rc;
    if ((rc = k_arg_int(k, MIL_A_ARGSORT_axis, -1, &ax))) return rc;
    if (x->rank == 0) return mil_k_fail(k, "argsort: x must have rank >= 1");
    return k_norm_axis(k, ax, x->rank, axis);
}

int k_argsort_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_ARGSORT_x);
    if (!x) return MIL_K_ERROR;
    if (!k_isfloat(x->dtype) && !k_isint(x->dtype))
        return mil_k_fail(k, "argsort: unsupported dtype %s", k_dtname(x->dtype));
    int axis, rc;
    bool asc;
    if ((rc = argsort_params(k, x, &axis, &asc))) return rc;
    k_set_shape(k->out[0], MIL_DT_INT32, x->rank, x->dims);
    return 0;
}

int k_argsort_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_ARGSORT_x);
    int axis, rc;
    bool asc;
    if ((rc = argsort_params(k, x, &axis, &asc))) return rc;
    if (k->scratch_size < sort_scratch(x)) return mil_k_fail(k, "argsort: scratch too small");
    sort_lines(x, axis, asc, x->dims[axis], k->scratch, NULL, k->out[0]);
    return 0;
}
