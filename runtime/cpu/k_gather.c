/* runtime/cpu/k_gather.c -- gather, gather_along_axis, gather_nd, scatter,
 * scatter_along_axis, scatter_nd, one_hot.  Indices may be negative
 * (-D <= i < D); anything outside that range is an error, never UB. */
#include "runtime/cpu/kutil.h"

static int need_idx(MilKernelCtx *k, const MilRtTensor *t) {
    if (!k_isint(t->dtype))
        return mil_k_fail(k, "%s: indices must be integers, got %s", k_opname(k), k_dtname(t->dtype));
    return 0;
}

static int need_es(MilKernelCtx *k, const MilRtTensor *t) {
    if (!k_esize(t->dtype) || t->dtype == MIL_DT_STRING)
        return mil_k_fail(k, "%s: unsupported dtype %s", k_opname(k), k_dtname(t->dtype));
    return 0;
}

/* index i of t normalised into [0, d); -1 (after mil_k_fail) when out of range */
static int64_t get_index(MilKernelCtx *k, const MilRtTensor *t, int64_t i, int64_t d) {
    int64_t v = k_geti(t, i);
    int64_t w = v < 0 ? v + d : v;
    if (w < 0 || w >= d) {
        mil_k_fail(k, "%s: index %lld out of range for a dimension of size %lld", k_opname(k), (long long)v,
                   (long long)d);
        return -1;
    }
    return w;
}

/* shape-time check of constant indices: column j of every row of width `w`
 * (w = 1: all) must lie in [-dims[j], dims[j]) */
static int check_indices(MilKernelCtx *k, const MilRtTensor *t, int w, const int64_t *dims) {
    if (!t->data) return 0;
    int64_t n = k_numel(t);
    for (int64_t i = 0; i < n; i++)
        if (get_index(k, t, i, dims[w > 1 ? i % w : 0]) < 0) return MIL_K_ERROR;
    return 0;
}

/* ================================================================= gather */

static int gather_params(MilKernelCtx *k, const MilRtTensor *x, const MilRtTensor *ind, int *axis, int *bd) {
    int64_t ax, b;
    bool vi;
    int rc;
    if ((rc = k_arg_int(k, MIL_A_GATHER_axis, 0, &ax)) || (rc = k_arg_int(k, MIL_A_GATHER_batch_dims, 0, &b)) ||
        (rc = k_arg_bool(k, MIL_A_GATHER_validate_indices, false, &vi)))
        return rc;
    if (x->rank == 0) return mil_k_fail(k, "gather: x must have rank >= 1");
    if ((rc = k_norm_axis(k, ax, x->rank, axis))) return rc;
    if (b < 0) b += ind->rank;
    if (b < 0 || b > *axis || b > ind->rank)
        return mil_k_fail(k, "gather: batch_dims %lld must be in [0, min(axis, rank(indices))]", (long long)b);
    for (int i = 0; i < b; i++)
        if (x->dims[i] != ind->dims[i]) return mil_k_fail(k, "gather: batch dimension %d of x and indices differ", i);
    *bd = (int)b;
    return 0;
}

int k_gather_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_GATHER_x), *ind = x ? k_req(k, MIL_A_GATHER_indices) : NULL;
    if (!ind) return MIL_K_ERROR;
    int axis, bd, rc;
    if ((rc = need_es(k, x)) || (rc = need_idx(k, ind)) || (rc = gather_params(k, x, ind, &axis, &bd))) return rc;
    if ((rc = check_indices(k, ind, 1, &x->dims[axis]))) return rc;
    int64_t d[MIL_MAX_RANK];
    int r = 0;
    if (x->rank - 1 + ind->rank - bd > MIL_MAX_RANK) return mil_k_fail(k, "gather: result rank too large");
    for (int a = 0; a < axis; a++) d[r++] = x->dims[a];
    for (int a = bd; a < ind->rank; a++) d[r++] = ind->dims[a];
    for (int a = axis + 1; a < x->rank; a++) d[r++] = x->dims[a];
    k_set_shape(k->out[0], x->dtype, r, d);
    return 0;
}

int k_gather_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_GATHER_x), *ind = mil_k_in(k, MIL_A_GATHER_indices);
    int axis, bd, rc;
    if ((rc = gather_params(k, x, ind, &axis, &bd))) return rc;
    int64_t B = k_prod(x->dims, 0, bd), P = k_prod(x->dims, bd, axis), D = x->dims[axis],
            I = k_prod(ind->dims, bd, ind->rank), Q = k_prod(x->dims, axis + 1, x->rank);
    size_t es = k_esize(x->dtype), blk = (size_t)Q * es;
    char *dst = k->out[0]->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t i = 0; i < I; i++) {
                int64_t j = get_index(k, ind, b * I + i, D);
                if (j < 0) return MIL_K_ERROR;
                memcpy(dst, (const char *)x->data + (size_t)(((b * P + p) * D + j) * Q) * es, blk);
                dst += blk;
            }
    return 0;
}

/* ====================================================== gather_along_axis */

static int along_check(MilKernelCtx *k, const MilRtTensor *x, const MilRtTensor *ind, int axis_slot, int *axis) {
    int64_t ax;
    int rc;
    if ((rc = k_arg_int(k, axis_slot, 0, &ax))) return rc;
    if (x->rank == 0) return mil_k_fail(k, "%s: x must have rank >= 1", k_opname(k));
    if ((rc = k_norm_axis(k, ax, x->rank, axis))) return rc;
    if (ind->rank != x->rank)
        return mil_k_fail(k, "%s: indices rank %d must equal the data rank %d", k_opname(k), ind->rank, x->rank);
    for (int a = 0; a < x->rank; a++)
        if (a != *axis && ind->dims[a] != x->dims[a])
            return mil_k_fail(k, "%s: indices and data differ on axis %d (%lld vs %lld)", k_opname(k), a,
                              (long long)ind->dims[a], (long long)x->dims[a]);
    return 0;
}

int k_gather_axis_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_GATHER_ALONG_AXIS_x), *ind = x ? k_req(k, MIL_A_GATHER_ALONG_AXIS_indices) : NULL;
    if (!ind) return MIL_K_ERROR;
    int axis, rc;
    if ((rc = need_es(k, x)) || (rc = need_idx(k, ind)) || (rc = along_check(k, x, ind, MIL_A_GATHER_ALONG_AXIS_axis, &axis)))
        return rc;
    if ((rc = check_indices(k, ind, 1, &x->dims[axis]))) return rc;
    k_set_shape(k->out[0], x->dtype, ind->rank, ind->dims);
    return 0;
}

int k_gather_axis_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_GATHER_ALONG_AXIS_x), *ind = mil_k_in(k, MIL_A_GATHER_ALONG_AXIS_indices);
    int axis, rc;
    if ((rc = along_check(k, x, ind, MIL_A_GATHER_ALONG_AXIS_axis, &axis))) return rc;
    int64_t O = k_prod(x->dims, 0, axis), Nx = x->dims[axis], Ni = ind->dims[axis],
            Q = k_prod(x->dims, axis + 1, x->rank);
    size_t es = k_esize(x->dtype);
    char *dst = k->out[0]->data;
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < Ni; i++)
            for (int64_t q = 0; q < Q; q++) {
                int64_t ii = (o * Ni + i) * Q + q;
                int64_t j = get_index(k, ind, ii, Nx);
                if (j < 0) return MIL_K_ERROR;
                memcpy(dst + (size_t)ii * es, (const char *)x->data + (size_t)((o * Nx + j) * Q + q) * es, es);
            }
    return 0;
}

/* ============================================================== gather_nd */

static int gnd_params(MilKernelCtx *k, const MilRtTensor *x, const MilRtTensor *ind, int *bd) {
    int64_t b;
    int rc;
    if ((rc = k_arg_int(k, MIL_A_GATHER_ND_batch_dims, 0, &b))) return rc;
    if (ind->rank < 1) return mil_k_fail(k, "gather_nd: indices must have rank >= 1");
    int64_t K = ind->dims[ind->rank - 1];
    if (b < 0 || b >= ind->rank || b > x->rank)
        return mil_k_fail(k, "gather_nd: batch_dims %lld out of range", (long long)b);
    if (b + K > x->rank)
        return mil_k_fail(k, "gather_nd: index depth %lld too large for x of rank %d", (long long)K, x->rank);
    for (int i = 0; i < b; i++)
        if (x->dims[i] != ind->dims[i]) return mil_k_fail(k, "gather_nd: batch dimension %d of x and indices differ", i);
    *bd = (int)b;
    return 0;
}

int k_gather_nd_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_GATHER_ND_x), *ind = x ? k_req(k, MIL_A_GATHER_ND_indices) : NULL;
    if (!ind) return MIL_K_ERROR;
    int bd, rc;
    if ((rc = need_es(k, x)) || (rc = need_idx(k, ind)) || (rc = gnd_params(k, x, ind, &bd))) return rc;
    int64_t K = ind->dims[ind->rank - 1], d[MIL_MAX_RANK];
    if (K > 0 && (rc = check_indices(k, ind, (int)K, &x->dims[bd]))) return rc;
    int r = 0;
    if (ind->rank - 1 + x->rank - bd - K > MIL_MAX_RANK) return mil_k_fail(k, "gather_nd: result rank too large");
    for (int a = 0; a < ind->rank - 1; a++) d[r++] = ind->dims[a];
    for (int a = bd + (int)K; a < x->rank; a++) d[r++] = x->dims[a];
    k_set_shape(k->out[0], x->dtype, r, d);
    return 0;
}

int k_gather_nd_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_GATHER_ND_x), *ind = mil_k_in(k, MIL_A_GATHER_ND_indices);
    int bd, rc;
    if ((rc = gnd_params(k, x, ind, &bd))) return rc;
    int K = (int)ind->dims[ind->rank - 1];
    int64_t B = k_prod(x->dims, 0, bd), I = k_prod(ind->dims, bd, ind->rank - 1), Q = k_prod(x->dims, bd + K, x->rank),
            XB = k_prod(x->dims, bd, x->rank);
    int64_t xs[MIL_MAX_RANK];
    k_contig_strides(x->rank, x->dims, xs);
    size_t es = k_esize(x->dtype), blk = (size_t)Q * es;
    char *dst = k->out[0]->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < I; i++) {
            int64_t off = b * XB;
            for (int j = 0; j < K; j++) {
                int64_t v = get_index(k, ind, (b * I + i) * K + j, x->dims[bd + j]);
                if (v < 0) return MIL_K_ERROR;
                off += v * xs[bd + j];
            }
            memcpy(dst, (const char *)x->data + (size_t)off * es, blk);
            dst += blk;
        }
    return 0;
}

/* ================================================================ scatter */

enum { SM_UPDATE, SM_ADD, SM_SUB, SM_MUL, SM_DIV, SM_MAX, SM_MIN };

static int scatter_mode(MilKernelCtx *k, int slot, int *mode) {
    const char *s;
    int rc = k_arg_str(k, slot, "add", &s);
    if (rc) return rc;
    static const char *const names[] = {"update", "add", "sub", "mul", "div", "max", "min"};
    for (int i = 0; i < 7; i++)
        if (!strcmp(s, names[i])) { *mode = i; return 0; }
    return mil_k_fail(k, "%s: unknown mode \"%s\"", k_opname(k), s);
}

/* float accumulation buffer (fp32) for float data, so that each output
 * element is rounded once; ints work on the output directly. */
static size_t scat_scratch(const MilRtTensor *data) {
    return k_isfloat(data->dtype) ? (size_t)k_numel(data) * sizeof(float) : 0;
}

typedef struct {
    MilKernelCtx *k;
    const MilRtTensor *upd;
    MilRtTensor *out;
    float *acc; /* NULL for ints */
    int mode;
} Scat;

static int scat_apply(Scat *s, int64_t dst, int64_t src) {
    if (s->acc) {
        float u = (float)k_getf(s->upd, src), *a = &s->acc[dst];
        switch (s->mode) {
        case SM_UPDATE: *a = u; break;
        case SM_ADD: *a += u; break;
        case SM_SUB: *a -= u; break;
        case SM_MUL: *a *= u; break;
        case SM_DIV: *a /= u; break;
        case SM_MAX: *a = (u > *a || u != u) ? u : *a; break;
        default: *a = (u < *a || u != u) ? u : *a; break;
        }
        return 0;
    }
    int64_t u = k_geti(s->upd, src), a = k_geti(s->out, dst);
    switch (s->mode) {
    case SM_UPDATE: a = u; break;
    case SM_ADD: a = (int64_t)((uint64_t)a + (uint64_t)u); break;
    case SM_SUB: a = (int64_t)((uint64_t)a - (uint64_t)u); break;
    case SM_MUL: a = (int64_t)((uint64_t)a * (uint64_t)u); break;
    case SM_DIV:
        if (!u) return mil_k_fail(s->k, "%s: integer division by zero", k_opname(s->k));
        a = (u == -1) ? (int64_t)(0 - (uint64_t)a) : a / u;
        break;
    case SM_MAX: a = u > a ? u : a; break;
    default: a = u < a ? u : a; break;
    }
    k_seti(s->out, dst, a);
    return 0;
}

static int scat_begin(MilKernelCtx *k, Scat *s, const MilRtTensor *data, const MilRtTensor *upd, int mode) {
    s->k = k;
    s->upd = upd;
    s->out = k->out[0];
    s->mode = mode;
    s->acc = NULL;
    if (k_isfloat(data->dtype)) {
        if (k->scratch_size < scat_scratch(data)) return mil_k_fail(k, "%s: scratch too small", k_opname(k));
        s->acc = k->scratch;
        k_tof32(data, s->acc);
    } else {
        memcpy(s->out->data, data->data, (size_t)k_numel(data) * k_esize(data->dtype));
    }
    return 0;
}

static void scat_end(Scat *s) {
    if (s->acc) k_fromf32(s->out, s->acc);
}

static int scat_types(MilKernelCtx *k, const MilRtTensor *data, const MilRtTensor *ind, const MilRtTensor *upd) {
    int rc;
    if ((rc = need_idx(k, ind))) return rc;
    if (!k_isfloat(data->dtype) && !k_isint(data->dtype))
        return mil_k_fail(k, "%s: unsupported data dtype %s", k_opname(k), k_dtname(data->dtype));
    if (upd->dtype != data->dtype)
        return mil_k_fail(k, "%s: updates dtype %s differs from data dtype %s", k_opname(k), k_dtname(upd->dtype),
                          k_dtname(data->dtype));
    return 0;
}

/* scatter: updates shape = data.shape[:axis] + indices.shape + data.shape[axis+1:] */
static int scatter_params(MilKernelCtx *k, int *axis, int *mode) {
    const MilRtTensor *data = k_req(k, MIL_A_SCATTER_data), *ind = data ? k_req(k, MIL_A_SCATTER_indices) : NULL,
                      *upd = ind ? k_req(k, MIL_A_SCATTER_updates) : NULL;
    if (!upd) return MIL_K_ERROR;
    int64_t ax;
    bool vi;
    int rc;
    if ((rc = scat_types(k, data, ind, upd))) return rc;
    if ((rc = k_arg_int(k, MIL_A_SCATTER_axis, 0, &ax)) || (rc = scatter_mode(k, MIL_A_SCATTER_mode, mode)) ||
        (rc = k_arg_bool(k, MIL_A_SCATTER_validate_indices, false, &vi)))
        return rc;
    if (data->rank == 0) return mil_k_fail(k, "scatter: data must have rank >= 1");
    if ((rc = k_norm_axis(k, ax, data->rank, axis))) return rc;
    int64_t want[2 * MIL_MAX_RANK];
    int r = 0;
    for (int a = 0; a < *axis; a++) want[r++] = data->dims[a];
    for (int a = 0; a < ind->rank; a++) want[r++] = ind->dims[a];
    for (int a = *axis + 1; a < data->rank; a++) want[r++] = data->dims[a];
    bool ok = upd->rank == r;
    for (int a = 0; ok && a < r; a++) ok = upd->dims[a] == want[a];
    if (!ok) return mil_k_fail(k, "scatter: updates shape must be data.shape[:axis] + indices.shape + data.shape[axis+1:]");
    return check_indices(k, ind, 1, &data->dims[*axis]);
}

int k_scatter_shape(MilKernelCtx *k) {
    int axis, mode, rc;
    if ((rc = scatter_params(k, &axis, &mode))) return rc;
    const MilRtTensor *data = mil_k_in(k, MIL_A_SCATTER_data);
    k_set_shape(k->out[0], data->dtype, data->rank, data->dims);
    return 0;
}

size_t k_scatter_scratch(const MilKernelCtx *k) { return scat_scratch(mil_k_in(k, MIL_A_SCATTER_data)); }

int k_scatter_run(MilKernelCtx *k) {
    int axis, mode, rc;
    if ((rc = scatter_params(k, &axis, &mode))) return rc;
    const MilRtTensor *data = mil_k_in(k, MIL_A_SCATTER_data), *ind = mil_k_in(k, MIL_A_SCATTER_indices),
                      *upd = mil_k_in(k, MIL_A_SCATTER_updates);
    Scat s;
    if ((rc = scat_begin(k, &s, data, upd, mode))) return rc;
    int64_t P = k_prod(data->dims, 0, axis), D = data->dims[axis], I = k_numel(ind),
            Q = k_prod(data->dims, axis + 1, data->rank);
    for (int64_t p = 0; p < P; p++)
        for (int64_t i = 0; i < I; i++) {
            int64_t j = get_index(k, ind, i, D);
            if (j < 0) return MIL_K_ERROR;
            for (int64_t q = 0; q < Q; q++)
                if ((rc = scat_apply(&s, (p * D + j) * Q + q, (p * I + i) * Q + q))) return rc;
        }
    scat_end(&s);
    return 0;
}

/* scatter_along_axis */
static int sa_params(MilKernelCtx *k, int *axis, int *mode) {
    const MilRtTensor *data = k_req(k, MIL_A_SCATTER_ALONG_AXIS_data),
                      *ind = data ? k_req(k, MIL_A_SCATTER_ALONG_AXIS_indices) : NULL,
                      *upd = ind ? k_req(k, MIL_A_SCATTER_ALONG_AXIS_updates) : NULL;
    if (!upd) return MIL_K_ERROR;
    bool vi;
    int rc;
    if ((rc = scat_types(k, data, ind, upd))) return rc;
    if ((rc = scatter_mode(k, MIL_A_SCATTER_ALONG_AXIS_mode, mode)) ||
        (rc = k_arg_bool(k, MIL_A_SCATTER_ALONG_AXIS_validate_indices, false, &vi)))
        return rc;
    if ((rc = along_check(k, data, ind, MIL_A_SCATTER_ALONG_AXIS_axis, axis))) return rc;
    bool ok = upd->rank == ind->rank;
    for (int a = 0; ok && a < ind->rank; a++) ok = upd->dims[a] == ind->dims[a];
    if (!ok) return mil_k_fail(k, "scatter_along_axis: updates must have the shape of indices");
    return check_indices(k, ind, 1, &data->dims[*axis]);
}

int k_scatter_axis_shape(MilKernelCtx *k) {
    int axis, mode, rc;
    if ((rc = sa_params(k, &axis, &mode))) return rc;
    const MilRtTensor *data = mil_k_in(k, MIL_A_SCATTER_ALONG_AXIS_data);
    k_set_shape(k->out[0], data->dtype, data->rank, data->dims);
    return 0;
}

size_t k_scatter_axis_scratch(const MilKernelCtx *k) { return scat_scratch(mil_k_in(k, MIL_A_SCATTER_ALONG_AXIS_data)); }

int k_scatter_axis_run(MilKernelCtx *k) {
    int axis, mode, rc;
    if ((rc = sa_params(k, &axis, &mode))) return rc;
    const MilRtTensor *data = mil_k_in(k, MIL_A_SCATTER_ALONG_AXIS_data),
                      *ind = mil_k_in(k, MIL_A_SCATTER_ALONG_AXIS_indices),
                      *upd = mil_k_in(k, MIL_A_SCATTER_ALONG_AXIS_updates);
    Scat s;
    if ((rc = scat_begin(k, &s, data, upd, mode))) return rc;
    int64_t O = k_prod(data->dims, 0, axis), Nd = data->dims[axis], Ni = ind->dims[axis],
            Q = k_prod(data->dims, axis + 1, data->rank);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < Ni; i++)
            for (int64_t q = 0; q < Q; q++) {
                int64_t ii = (o * Ni + i) * Q + q;
                int64_t j = get_index(k, ind, ii, Nd);
                if (j < 0) return MIL_K_ERROR;
                if ((rc = scat_apply(&s, (o * Nd + j) * Q + q, ii))) return rc;
            }
    scat_end(&s);
    return 0;
}

/* scatter_nd: updates shape = indices.shape[:-1] + data.shape[K:] */
static int snd_params(MilKernelCtx *k, int *mode) {
    const MilRtTensor *data = k_req(k, MIL_A_SCATTER_ND_data), *ind = data ? k_req(k, MIL_A_SCATTER_ND_indices) : NULL,
                      *upd = ind ? k_req(k, MIL_A_SCATTER_ND_updates) : NULL;
    if (!upd) return MIL_K_ERROR;
    bool vi;
    int rc;
    if ((rc = scat_types(k, data, ind, upd))) return rc;
    if ((rc = scatter_mode(k, MIL_A_SCATTER_ND_mode, mode)) ||
        (rc = k_arg_bool(k, MIL_A_SCATTER_ND_validate_indices, false, &vi)))
        return rc;
    if (ind->rank < 1) return mil_k_fail(k, "scatter_nd: indices must have rank >= 1");
    int64_t K = ind->dims[ind->rank - 1];
    if (K > data->rank) return mil_k_fail(k, "scatter_nd: index depth %lld exceeds the data rank", (long long)K);
    int64_t want[2 * MIL_MAX_RANK];
    int r = 0;
    for (int a = 0; a < ind->rank - 1; a++) want[r++] = ind->dims[a];
    for (int a = (int)K; a < data->rank; a++) want[r++] = data->dims[a];
    bool ok = upd->rank == r;
    for (int a = 0; ok && a < r; a++) ok = upd->dims[a] == want[a];
    if (!ok) return mil_k_fail(k, "scatter_nd: updates shape must be indices.shape[:-1] + data.shape[K:]");
    return K > 0 ? check_indices(k, ind, (int)K, data->dims) : 0;
}

int k_scatter_nd_shape(MilKernelCtx *k) {
    int mode, rc;
    if ((rc = snd_params(k, &mode))) return rc;
    const MilRtTensor *data = mil_k_in(k, MIL_A_SCATTER_ND_data);
    k_set_shape(k->out[0], data->dtype, data->rank, data->dims);
    return 0;
}

size_t k_scatter_nd_scratch(const MilKernelCtx *k) { return scat_scratch(mil_k_in(k, MIL_A_SCATTER_ND_data)); }

int k_scatter_nd_run(MilKernelCtx *k) {
    int mode, rc;
    if ((rc = snd_params(k, &mode))) return rc;
    const MilRtTensor *data = mil_k_in(k, MIL_A_SCATTER_ND_data), *ind = mil_k_in(k, MIL_A_SCATTER_ND_indices),
                      *upd = mil_k_in(k, MIL_A_SCATTER_ND_updates);
    Scat s;
    if ((rc = scat_begin(k, &s, data, upd, mode))) return rc;
    int K = (int)ind->dims[ind->rank - 1];
    int64_t I = k_prod(ind->dims, 0, ind->rank - 1), Q = k_prod(data->dims, K, data->rank), ds[MIL_MAX_RANK];
    k_contig_strides(data->rank, data->dims, ds);
    for (int64_t i = 0; i < I; i++) {
        int64_t off = 0;
        for (int j = 0; j < K; j++) {
            int64_t v = get_index(k, ind, i * K + j, data->dims[j]);
            if (v < 0) return MIL_K_ERROR;
            off += v * ds[j];
        }
        for (int64_t q = 0; q < Q; q++)
            if ((rc = scat_apply(&s, off + q, i * Q + q))) return rc;
    }
    scat_end(&s);
    return 0;
}

/* ================================================================ one_hot */

static int oh_params(MilKernelCtx *k, const MilRtTensor **ind, int *axis, int64_t *depth, MilDType *odt) {
    const MilRtTensor *t = k_req(k, MIL_A_ONE_HOT_indices);
    if (!t || !k_req(k, MIL_A_ONE_HOT_one_hot_vector_size)) return MIL_K_ERROR;
    int64_t ax;
    double dummy;
    int rc;
    if ((rc = need_idx(k, t))) return rc;
    if ((rc = k_arg_int(k, MIL_A_ONE_HOT_axis, -1, &ax))) return rc;
    if (ax < -t->rank - 1 || ax > t->rank)
        return mil_k_fail(k, "one_hot: axis %lld out of range for rank %d", (long long)ax, t->rank);
    *axis = (int)(ax < 0 ? ax + t->rank + 1 : ax);
    if (t->rank + 1 > MIL_MAX_RANK) return mil_k_fail(k, "one_hot: result rank too large");
    const MilRtTensor *on = mil_k_in(k, MIL_A_ONE_HOT_on_value), *off = mil_k_in(k, MIL_A_ONE_HOT_off_value);
    if ((rc = k_arg_float(k, MIL_A_ONE_HOT_on_value, 1, &dummy)) || (rc = k_arg_float(k, MIL_A_ONE_HOT_off_value, 0, &dummy)))
        return rc;
    *odt = on ? on->dtype : (off ? off->dtype : MIL_DT_INT32);
    if (on && off && on->dtype != off->dtype)
        return mil_k_fail(k, "one_hot: on_value and off_value must have the same dtype");
    if ((rc = k_arg_int(k, MIL_A_ONE_HOT_one_hot_vector_size, 0, depth))) return rc;
    if (*depth < 0) return mil_k_fail(k, "one_hot: one_hot_vector_size must be >= 0");
    *ind = t;
    return 0;
}

int k_one_hot_shape(MilKernelCtx *k) {
    const MilRtTensor *t;
    int axis, rc;
    int64_t depth;
    MilDType odt;
    if ((rc = oh_params(k, &t, &axis, &depth, &odt))) return rc;
    int64_t d[MIL_MAX_RANK];
    for (int a = 0, j = 0; a <= t->rank; a++) d[a] = a == axis ? depth : t->dims[j++];
    k_set_shape(k->out[0], odt, t->rank + 1, d);
    return 0;
}

/* indices outside [0, depth) (after adding depth to negatives is NOT done:
 * TensorFlow semantics) give an all-off vector */
int k_one_hot_run(MilKernelCtx *k) {
    const MilRtTensor *t;
    int axis, rc;
    int64_t depth;
    MilDType odt;
    if ((rc = oh_params(k, &t, &axis, &depth, &odt))) return rc;
    double on, off;
    k_arg_float(k, MIL_A_ONE_HOT_on_value, 1, &on);
    k_arg_float(k, MIL_A_ONE_HOT_off_value, 0, &off);
    MilRtTensor *o = k->out[0];
    int64_t O = k_prod(t->dims, 0, axis), Q = k_prod(t->dims, axis, t->rank);
    for (int64_t a = 0; a < O; a++)
        for (int64_t d = 0; d < depth; d++)
            for (int64_t q = 0; q < Q; q++) {
                int64_t v = k_geti(t, a * Q + q);
                k_setf(o, (a * depth + d) * Q + q, v == d ? on : off);
            }
    return 0;
}
