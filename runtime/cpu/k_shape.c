/* runtime/cpu/k_shape.c -- shape and data movement: reshape, transpose,
 * expand_dims, squeeze, concat, stack, split, slice_by_size, slice_by_index,
 * slice_update, tile, pad, flatten2d, reverse, depth_to_space, space_to_depth,
 * pixel_shuffle, upsample_nearest_neighbor, crop, band_part.  These copy
 * element bits (dtype-agnostic) and never round. */
#include "runtime/cpu/kutil.h"

/* Strided n-d copy: dst/src point at the base element; strides in elements
 * (may be negative or 0). */
static void copy_nd(char *dst, const int64_t *dst_st, const char *src, const int64_t *src_st, size_t es, int rank,
                    const int64_t *dims) {
    int64_t total = 1;
    for (int a = 0; a < rank; a++) total *= dims[a];
    if (total == 0) return;
    if (rank == 0) { memcpy(dst, src, es); return; }
    int64_t idx[MIL_MAX_RANK + 4] = {0}, n = dims[rank - 1], ds = dst_st[rank - 1], ss = src_st[rank - 1];
    int64_t rows = total / n;
    for (int64_t r = 0; r < rows; r++) {
        int64_t doff = 0, soff = 0;
        for (int a = 0; a < rank - 1; a++) { doff += idx[a] * dst_st[a]; soff += idx[a] * src_st[a]; }
        char *d = dst + doff * (int64_t)es;
        const char *s = src + soff * (int64_t)es;
        switch (es) {
        case 1: for (int64_t i = 0; i < n; i++) ((uint8_t *)d)[i * ds] = ((const uint8_t *)s)[i * ss]; break;
        case 2: for (int64_t i = 0; i < n; i++) ((uint16_t *)d)[i * ds] = ((const uint16_t *)s)[i * ss]; break;
        case 4: for (int64_t i = 0; i < n; i++) ((uint32_t *)d)[i * ds] = ((const uint32_t *)s)[i * ss]; break;
        case 8: for (int64_t i = 0; i < n; i++) ((uint64_t *)d)[i * ds] = ((const uint64_t *)s)[i * ss]; break;
        default: for (int64_t i = 0; i < n; i++) memcpy(d + i * ds * (int64_t)es, s + i * ss * (int64_t)es, es);
        }
        for (int a = rank - 2; a >= 0; a--) {
            if (++idx[a] < dims[a]) break;
            idx[a] = 0;
        }
    }
}

static int need_es(MilKernelCtx *k, const MilRtTensor *t) {
    if (!k_esize(t->dtype) || t->dtype == MIL_DT_STRING)
        return mil_k_fail(k, "%s: unsupported dtype %s", k_opname(k), k_dtname(t->dtype));
    return 0;
}

static int copy_all(MilKernelCtx *k, int xslot) {
    const MilRtTensor *x = mil_k_in(k, xslot);
    if (x->data != k->out[0]->data)
        memcpy(k->out[0]->data, x->data, (size_t)k_numel(x) * k_esize(x->dtype));
    return 0;
}

/* ================================================================ reshape */

int k_reshape_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_RESHAPE_x), *sh = x ? k_req(k, MIL_A_RESHAPE_shape) : NULL;
    if (!sh) return MIL_K_ERROR;
    int64_t v[MIL_MAX_RANK];
    int n, rc;
    if ((rc = need_es(k, x))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_RESHAPE_shape, v, MIL_MAX_RANK, &n))) return rc;
    int neg = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        if (v[i] == 0) {
            if (n != x->rank)
                return mil_k_fail(k, "reshape: 0 in shape needs len(shape) == rank(x) (%d vs %d)", n, x->rank);
            v[i] = x->dims[i];
        }
        if (v[i] == -1) {
            if (neg >= 0) return mil_k_fail(k, "reshape: more than one -1 in shape");
            neg = i;
            continue;
        }
        if (v[i] < 0) return mil_k_fail(k, "reshape: invalid dimension %lld", (long long)v[i]);
        known *= v[i];
    }
    int64_t total = k_numel(x);
    if (neg >= 0) {
        if (known == 0 || total % known)
            return mil_k_fail(k, "reshape: cannot infer -1 for %lld elements", (long long)total);
        v[neg] = total / known;
        known *= v[neg];
    }
    if (known != total)
        return mil_k_fail(k, "reshape: shape has %lld elements, x has %lld", (long long)known, (long long)total);
    k_set_shape(k->out[0], x->dtype, n, v);
    return 0;
}

int k_reshape_run(MilKernelCtx *k) { return copy_all(k, MIL_A_RESHAPE_x); }

/* ============================================================== transpose */

static int perm_params(MilKernelCtx *k, const MilRtTensor *x, int *perm) {
    int64_t v[MIL_MAX_RANK];
    int n, rc;
    if ((rc = k_arg_ints(k, MIL_A_TRANSPOSE_perm, v, MIL_MAX_RANK, &n))) return rc;
    if (n != x->rank) return mil_k_fail(k, "transpose: perm has %d values for rank %d", n, x->rank);
    bool seen[MIL_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        if ((rc = k_norm_axis(k, v[i], x->rank, &perm[i]))) return rc;
        if (seen[perm[i]]) return mil_k_fail(k, "transpose: perm is not a permutation");
        seen[perm[i]] = true;
    }
    return 0;
}

int k_transpose_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_TRANSPOSE_x);
    if (!x || !k_req(k, MIL_A_TRANSPOSE_perm)) return MIL_K_ERROR;
    int perm[MIL_MAX_RANK], rc;
    if ((rc = need_es(k, x)) || (rc = perm_params(k, x, perm))) return rc;
    int64_t d[MIL_MAX_RANK];
    for (int i = 0; i < x->rank; i++) d[i] = x->dims[perm[i]];
    k_set_shape(k->out[0], x->dtype, x->rank, d);
    return 0;
}

/* A transpose that moves the source's contiguous axis b away from the end:
 * copied in TT x TT tiles of (b, last axis), so that both the reads along b
 * and the writes along the last axis stay in cache; rows [i0, i1) of axis b
 * (one range per pool thread). */
enum { TT = 32 };
typedef struct {
    char *dst;
    const char *src;
    const int64_t *dims, *dst_st, *src_st;
    size_t es;
    int rank, b;
} TrJob;

static void tr_tiles(void *arg, int64_t i0, int64_t i1, int tid) {
    const TrJob *j = arg;
    (void)tid;
    int l = j->rank - 1, b = j->b;
    int64_t outer = 1, idx[MIL_MAX_RANK] = {0};
    for (int a = 0; a < l; a++) if (a != b) outer *= j->dims[a];
    int64_t nl = j->dims[l], dsb = j->dst_st[b], dsl = j->dst_st[l], ssl = j->src_st[l];
    for (int64_t r = 0; r < outer; r++) {
        int64_t doff = 0, soff = 0;
        for (int a = 0; a < l; a++) { doff += idx[a] * j->dst_st[a]; soff += idx[a] * j->src_st[a]; }
        for (int64_t ib = i0; ib < i1; ib += TT) {
            int64_t ie = ib + TT < i1 ? ib + TT : i1;
            for (int64_t jb = 0; jb < nl; jb += TT) {
                int64_t je = jb + TT < nl ? jb + TT : nl;
                for (int64_t i = ib; i < ie; i++) {
                    int64_t d0 = doff + i * dsb, s0 = soff + i;
                    switch (j->es) {
                    case 2:
                        for (int64_t q = jb; q < je; q++)
                            ((uint16_t *)j->dst)[d0 + q * dsl] = ((const uint16_t *)j->src)[s0 + q * ssl];
                        break;
                    case 4:
                        for (int64_t q = jb; q < je; q++)
                            ((uint32_t *)j->dst)[d0 + q * dsl] = ((const uint32_t *)j->src)[s0 + q * ssl];
                        break;
                    default:
                        for (int64_t q = jb; q < je; q++)
                            memcpy(j->dst + (d0 + q * dsl) * (int64_t)j->es, j->src + (s0 + q * ssl) * (int64_t)j->es, j->es);
                    }
                }
            }
        }
        for (int a = l - 1; a >= 0; a--) {
            if (a == b) continue;
            if (++idx[a] < j->dims[a]) break;
            idx[a] = 0;
        }
    }
}

int k_transpose_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_TRANSPOSE_x);
    MilRtTensor *o = k->out[0];
    int perm[MIL_MAX_RANK];
    perm_params(k, x, perm);
    int64_t xs[MIL_MAX_RANK], ss[MIL_MAX_RANK], os[MIL_MAX_RANK];
    k_contig_strides(x->rank, x->dims, xs);
    k_contig_strides(o->rank, o->dims, os);
    for (int i = 0; i < x->rank; i++) ss[i] = xs[perm[i]];
    int r = o->rank, b = -1;
    for (int a = 0; r > 1 && a < r - 1; a++)
        if (ss[a] == 1 && o->dims[a] > 1) b = a;
    if (b >= 0 && ss[r - 1] != 1 && o->dims[r - 1] > 1) {
        TrJob j = {o->data, x->data, o->dims, os, ss, k_esize(x->dtype), r, b};
        k_parallel(k, o->dims[b], TT, (double)k_numel(o), tr_tiles, &j);
        return 0;
    }
    copy_nd(o->data, os, x->data, ss, k_esize(x->dtype), o->rank, o->dims);
    return 0;
}

/* ===================================================== expand_dims/squeeze */

int k_expand_dims_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_EXPAND_DIMS_x);
    if (!x || !k_req(k, MIL_A_EXPAND_DIMS_axes)) return MIL_K_ERROR;
    int64_t v[MIL_MAX_RANK];
    int n, rc;
    if ((rc = need_es(k, x))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_EXPAND_DIMS_axes, v, MIL_MAX_RANK, &n))) return rc;
    int orank = x->rank + n;
    if (orank > MIL_MAX_RANK) return mil_k_fail(k, "expand_dims: result rank %d too large", orank);
    bool ins[MIL_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int a;
        if ((rc = k_norm_axis(k, v[i], orank, &a))) return rc;
        if (ins[a]) return mil_k_fail(k, "expand_dims: axis %d repeated", a);
        ins[a] = true;
    }
    int64_t d[MIL_MAX_RANK];
    for (int a = 0, j = 0; a < orank; a++) d[a] = ins[a] ? 1 : x->dims[j++];
    k_set_shape(k->out[0], x->dtype, orank, d);
    return 0;
}

int k_expand_dims_run(MilKernelCtx *k) { return copy_all(k, MIL_A_EXPAND_DIMS_x); }

int k_squeeze_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_SQUEEZE_x);
    if (!x) return MIL_K_ERROR;
    int64_t v[MIL_MAX_RANK];
    int n, rc;
    if ((rc = need_es(k, x))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_SQUEEZE_axes, v, MIL_MAX_RANK, &n))) return rc;
    bool drop[MIL_MAX_RANK] = {0};
    if (n < 0) {
        for (int a = 0; a < x->rank; a++) drop[a] = x->dims[a] == 1;
    } else {
        for (int i = 0; i < n; i++) {
            int a;
            if ((rc = k_norm_axis(k, v[i], x->rank, &a))) return rc;
            if (x->dims[a] != 1)
                return mil_k_fail(k, "squeeze: axis %d has size %lld, not 1", a, (long long)x->dims[a]);
            drop[a] = true;
        }
    }
    int64_t d[MIL_MAX_RANK];
    int r = 0;
    for (int a = 0; a < x->rank; a++) if (!drop[a]) d[r++] = x->dims[a];
    k_set_shape(k->out[0], x->dtype, r, d);
    return 0;
}

int k_squeeze_run(MilKernelCtx *k) { return copy_all(k, MIL_A_SQUEEZE_x); }

int k_flatten2d_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_FLATTEN2D_x);
    if (!x) return MIL_K_ERROR;
    int64_t ax;
    int rc;
    if ((rc = need_es(k, x)) || (rc = k_arg_int(k, MIL_A_FLATTEN2D_axis, 1, &ax))) return rc;
    if (ax < -x->rank || ax > x->rank)
        return mil_k_fail(k, "flatten2d: axis %lld out of range for rank %d", (long long)ax, x->rank);
    if (ax < 0) ax += x->rank;
    int64_t d[2] = {1, 1};
    for (int a = 0; a < x->rank; a++) d[a < ax ? 0 : 1] *= x->dims[a];
    k_set_shape(k->out[0], x->dtype, 2, d);
    return 0;
}

int k_flatten2d_run(MilKernelCtx *k) { return copy_all(k, MIL_A_FLATTEN2D_x); }

/* ============================================================ concat/stack */

int k_concat_shape(MilKernelCtx *k) {
    int n = k->nslots > MIL_A_CONCAT_values ? k->slot_n[MIL_A_CONCAT_values] : 0;
    if (n < 1) return mil_k_fail(k, "concat: no values");
    if (!k_req(k, MIL_A_CONCAT_axis)) return MIL_K_ERROR;
    const MilRtTensor *const *v = k->slot[MIL_A_CONCAT_values];
    int64_t ax;
    bool il;
    int rc, axis;
    if ((rc = k_arg_int(k, MIL_A_CONCAT_axis, 0, &ax)) || (rc = k_arg_bool(k, MIL_A_CONCAT_interleave, false, &il)))
        return rc;
    int rank = v[0]->rank;
    if ((rc = need_es(k, v[0]))) return rc;
    int64_t d[MIL_MAX_RANK];
    if (rank == 0) {
        for (int i = 0; i < n; i++)
            if (v[i]->rank != 0 || v[i]->dtype != v[0]->dtype)
                return mil_k_fail(k, "concat: values must all be scalars of the same dtype");
        d[0] = n;
        k_set_shape(k->out[0], v[0]->dtype, 1, d);
        return 0;
    }
    if ((rc = k_norm_axis(k, ax, rank, &axis))) return rc;
    memcpy(d, v[0]->dims, sizeof d);
    d[axis] = 0;
    for (int i = 0; i < n; i++) {
        if (v[i]->rank != rank) return mil_k_fail(k, "concat: value %d has rank %d, expected %d", i, v[i]->rank, rank);
        if (v[i]->dtype != v[0]->dtype)
            return mil_k_fail(k, "concat: value %d has dtype %s, expected %s", i, k_dtname(v[i]->dtype),
                              k_dtname(v[0]->dtype));
        for (int a = 0; a < rank; a++)
            if ((a != axis || il) && v[i]->dims[a] != v[0]->dims[a])
                return mil_k_fail(k, "concat: value %d has shape mismatch at axis %d (%lld vs %lld)", i, a,
                                  (long long)v[i]->dims[a], (long long)v[0]->dims[a]);
        d[axis] += v[i]->dims[axis];
    }
    k_set_shape(k->out[0], v[0]->dtype, rank, d);
    return 0;
}

int k_concat_run(MilKernelCtx *k) {
    int n = k->slot_n[MIL_A_CONCAT_values];
    const MilRtTensor *const *v = k->slot[MIL_A_CONCAT_values];
    MilRtTensor *o = k->out[0];
    int64_t ax;
    bool il;
    int axis = 0;
    k_arg_int(k, MIL_A_CONCAT_axis, 0, &ax);
    k_arg_bool(k, MIL_A_CONCAT_interleave, false, &il);
    size_t es = k_esize(o->dtype);
    char *dst = o->data;
    if (v[0]->rank == 0) {
        for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * es, v[i]->data, es);
        return 0;
    }
    k_norm_axis(k, ax, v[0]->rank, &axis);
    int64_t outer = k_prod(o->dims, 0, axis), inner = k_prod(o->dims, axis + 1, o->rank);
    if (!il) {
        for (int64_t q = 0; q < outer; q++)
            for (int i = 0; i < n; i++) {
                size_t blk = (size_t)(v[i]->dims[axis] * inner) * es;
                memcpy(dst, (const char *)v[i]->data + (size_t)q * blk, blk);
                dst += blk;
            }
    } else {
        int64_t da = v[0]->dims[axis];
        size_t blk = (size_t)inner * es;
        for (int64_t q = 0; q < outer; q++)
            for (int64_t j = 0; j < da; j++)
                for (int i = 0; i < n; i++) {
                    memcpy(dst, (const char *)v[i]->data + (size_t)(q * da + j) * blk, blk);
                    dst += blk;
                }
    }
    return 0;
}

int k_stack_shape(MilKernelCtx *k) {
    int n = k->nslots > MIL_A_STACK_values ? k->slot_n[MIL_A_STACK_values] : 0;
    if (n < 1) return mil_k_fail(k, "stack: no values");
    if (!k_req(k, MIL_A_STACK_axis)) return MIL_K_ERROR;
    const MilRtTensor *const *v = k->slot[MIL_A_STACK_values];
    int64_t ax;
    int rc, axis;
    if ((rc = need_es(k, v[0])) || (rc = k_arg_int(k, MIL_A_STACK_axis, 0, &ax))) return rc;
    int rank = v[0]->rank;
    if (rank + 1 > MIL_MAX_RANK) return mil_k_fail(k, "stack: result rank too large");
    if ((rc = k_norm_axis(k, ax, rank + 1, &axis))) return rc;
    for (int i = 1; i < n; i++) {
        bool ok = v[i]->rank == rank && v[i]->dtype == v[0]->dtype;
        for (int a = 0; ok && a < rank; a++) ok = v[i]->dims[a] == v[0]->dims[a];
        if (!ok) return mil_k_fail(k, "stack: value %d differs in shape or dtype from value 0", i);
    }
    int64_t d[MIL_MAX_RANK];
    for (int a = 0, j = 0; a <= rank; a++) d[a] = a == axis ? n : v[0]->dims[j++];
    k_set_shape(k->out[0], v[0]->dtype, rank + 1, d);
    return 0;
}

int k_stack_run(MilKernelCtx *k) {
    int n = k->slot_n[MIL_A_STACK_values];
    const MilRtTensor *const *v = k->slot[MIL_A_STACK_values];
    MilRtTensor *o = k->out[0];
    int64_t ax;
    int axis;
    k_arg_int(k, MIL_A_STACK_axis, 0, &ax);
    k_norm_axis(k, ax, v[0]->rank + 1, &axis);
    int64_t outer = k_prod(v[0]->dims, 0, axis), inner = k_prod(v[0]->dims, axis, v[0]->rank);
    size_t blk = (size_t)inner * k_esize(o->dtype);
    char *dst = o->data;
    for (int64_t q = 0; q < outer; q++)
        for (int i = 0; i < n; i++) {
            memcpy(dst, (const char *)v[i]->data + (size_t)q * blk, blk);
            dst += blk;
        }
    return 0;
}

/* ================================================================== split */

static int split_params(MilKernelCtx *k, const MilRtTensor *x, int *axis, int64_t *sizes, int *nparts) {
    int64_t ax, ns, ss[256];
    int nss, rc;
    if (!k_req(k, MIL_A_SPLIT_axis)) return MIL_K_ERROR;
    if ((rc = k_arg_int(k, MIL_A_SPLIT_axis, 0, &ax))) return rc;
    if (x->rank == 0) return mil_k_fail(k, "split: x must have rank >= 1");
    if ((rc = k_norm_axis(k, ax, x->rank, axis))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_SPLIT_split_sizes, ss, 256, &nss))) return rc;
    bool has_ns = mil_k_in(k, MIL_A_SPLIT_num_splits) != NULL;
    if ((rc = k_arg_int(k, MIL_A_SPLIT_num_splits, 0, &ns))) return rc;
    int64_t dim = x->dims[*axis];
    if (nss >= 0) {
        int64_t sum = 0;
        for (int i = 0; i < nss; i++) {
            if (ss[i] < 0) return mil_k_fail(k, "split: negative split size");
            sum += ss[i];
            sizes[i] = ss[i];
        }
        if (sum != dim)
            return mil_k_fail(k, "split: split_sizes sum to %lld but the axis has %lld", (long long)sum, (long long)dim);
        if (has_ns && ns != nss) return mil_k_fail(k, "split: num_splits %lld != len(split_sizes) %d", (long long)ns, nss);
        *nparts = nss;
    } else {
        if (!has_ns) return mil_k_fail(k, "split: needs num_splits or split_sizes");
        if (ns < 1 || ns > 256 || dim % ns)
            return mil_k_fail(k, "split: num_splits %lld does not divide the axis size %lld", (long long)ns,
                              (long long)dim);
        for (int i = 0; i < ns; i++) sizes[i] = dim / ns;
        *nparts = (int)ns;
    }
    if (*nparts != k->nout) return mil_k_fail(k, "split: %d parts but %d results", *nparts, k->nout);
    return 0;
}

int k_split_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_SPLIT_x);
    if (!x) return MIL_K_ERROR;
    int axis, np, rc;
    int64_t sizes[256];
    if ((rc = need_es(k, x)) || (rc = split_params(k, x, &axis, sizes, &np))) return rc;
    for (int i = 0; i < np; i++) {
        int64_t d[MIL_MAX_RANK];
        memcpy(d, x->dims, sizeof d);
        d[axis] = sizes[i];
        k_set_shape(k->out[i], x->dtype, x->rank, d);
    }
    return 0;
}

int k_split_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_SPLIT_x);
    int axis, np, rc;
    int64_t sizes[256];
    if ((rc = split_params(k, x, &axis, sizes, &np))) return rc;
    int64_t outer = k_prod(x->dims, 0, axis), inner = k_prod(x->dims, axis + 1, x->rank);
    size_t es = k_esize(x->dtype);
    const char *src = x->data;
    for (int64_t q = 0; q < outer; q++)
        for (int i = 0; i < np; i++) {
            size_t blk = (size_t)(sizes[i] * inner) * es;
            memcpy((char *)k->out[i]->data + (size_t)q * blk, src, blk);
            src += blk;
        }
    return 0;
}

/* ================================================================ slicing */

typedef struct {
    int64_t start[MIL_MAX_RANK], step[MIL_MAX_RANK], count[MIL_MAX_RANK];
    bool sq[MIL_MAX_RANK];
} SliceP;

static int slice_size_params(MilKernelCtx *k, const MilRtTensor *x, SliceP *p) {
    int64_t b[MIL_MAX_RANK], s[MIL_MAX_RANK];
    int nb, ns, rc;
    if (!k_req(k, MIL_A_SLICE_BY_SIZE_begin) || !k_req(k, MIL_A_SLICE_BY_SIZE_size)) return MIL_K_ERROR;
    if ((rc = k_arg_ints(k, MIL_A_SLICE_BY_SIZE_begin, b, MIL_MAX_RANK, &nb))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_SLICE_BY_SIZE_size, s, MIL_MAX_RANK, &ns))) return rc;
    if (nb != x->rank || ns != x->rank)
        return mil_k_fail(k, "slice_by_size: begin and size must have %d values", x->rank);
    for (int a = 0; a < x->rank; a++) {
        int64_t d = x->dims[a], st = b[a] < 0 ? b[a] + d : b[a];
        if (st < 0 || st > d) return mil_k_fail(k, "slice_by_size: begin %lld out of range on axis %d", (long long)b[a], a);
        int64_t c = s[a] == -1 ? d - st : s[a];
        if (c < 0 || st + c > d)
            return mil_k_fail(k, "slice_by_size: size %lld out of range on axis %d (begin %lld, dim %lld)", (long long)s[a],
                              a, (long long)st, (long long)d);
        p->start[a] = st;
        p->step[a] = 1;
        p->count[a] = c;
        p->sq[a] = false;
    }
    return 0;
}

/* numpy slice semantics; slot layout shared by slice_by_index and slice_update */
static int slice_index_params(MilKernelCtx *k, const MilRtTensor *x, int sb, int se, int sst, int sbm, int sem,
                              int ssm, SliceP *p) {
    int64_t b[MIL_MAX_RANK], e[MIL_MAX_RANK], st[MIL_MAX_RANK];
    bool bm[MIL_MAX_RANK], em[MIL_MAX_RANK], sm[MIL_MAX_RANK];
    int nb, ne, ns, nbm, nem, nsm, rc, r = x->rank;
    if (!k_req(k, sb) || !k_req(k, se)) return MIL_K_ERROR;
    if ((rc = k_arg_ints(k, sst, st, MIL_MAX_RANK, &ns))) return rc;
    if ((rc = k_arg_bools(k, sbm, bm, MIL_MAX_RANK, &nbm))) return rc;
    if ((rc = k_arg_bools(k, sem, em, MIL_MAX_RANK, &nem))) return rc;
    if ((rc = k_arg_bools(k, ssm, sm, MIL_MAX_RANK, &nsm))) return rc;
    if ((rc = k_arg_ints(k, sb, b, MIL_MAX_RANK, &nb))) return rc;
    if ((rc = k_arg_ints(k, se, e, MIL_MAX_RANK, &ne))) return rc;
    if (nb != r || ne != r) return mil_k_fail(k, "%s: begin and end must have %d values", k_opname(k), r);
    if ((ns >= 0 && ns != r) || (nbm >= 0 && nbm != r) || (nem >= 0 && nem != r) || (nsm >= 0 && nsm != r))
        return mil_k_fail(k, "%s: stride and masks must have %d values", k_opname(k), r);
    for (int a = 0; a < r; a++) {
        int64_t d = x->dims[a], s = ns >= 0 ? st[a] : 1;
        bool bma = nbm >= 0 && bm[a], ema = nem >= 0 && em[a], sma = nsm >= 0 && sm[a];
        p->sq[a] = sma;
        if (sma) {
            int64_t i = bma ? 0 : (b[a] < 0 ? b[a] + d : b[a]);
            if (i < 0 || i >= d)
                return mil_k_fail(k, "%s: squeezed index %lld out of range on axis %d (size %lld)", k_opname(k),
                                  (long long)b[a], a, (long long)d);
            p->start[a] = i; p->step[a] = 1; p->count[a] = 1;
            continue;
        }
        if (s == 0) return mil_k_fail(k, "%s: stride 0 on axis %d", k_opname(k), a);
        int64_t lo, hi;
        if (s > 0) {
            if (bma) lo = 0;
            else { lo = b[a] < 0 ? b[a] + d : b[a]; lo = lo < 0 ? 0 : (lo > d ? d : lo); }
            if (ema) hi = d;
            else { hi = e[a] < 0 ? e[a] + d : e[a]; hi = hi < 0 ? 0 : (hi > d ? d : hi); }
            p->count[a] = hi > lo ? (hi - lo + s - 1) / s : 0;
        } else {
            if (bma) lo = d - 1;
            else { lo = b[a] < 0 ? b[a] + d : b[a]; lo = lo < -1 ? -1 : (lo > d - 1 ? d - 1 : lo); }
            if (ema) hi = -1;
            else { hi = e[a] < 0 ? e[a] + d : e[a]; hi = hi < -1 ? -1 : (hi > d - 1 ? d - 1 : hi); }
            p->count[a] = lo > hi ? (lo - hi + (-s) - 1) / (-s) : 0;
        }
        p->start[a] = lo;
        p->step[a] = s;
    }
    return 0;
}

static void slice_out_shape(const MilRtTensor *x, const SliceP *p, int *rank, int64_t *d) {
    int r = 0;
    for (int a = 0; a < x->rank; a++) if (!p->sq[a]) d[r++] = p->count[a];
    *rank = r;
}

/* source base pointer and strides of the slice region of x */
static const char *slice_view(const MilRtTensor *x, const SliceP *p, int64_t *sst) {
    int64_t xs[MIL_MAX_RANK], off = 0;
    k_contig_strides(x->rank, x->dims, xs);
    for (int a = 0; a < x->rank; a++) {
        off += p->start[a] * xs[a];
        sst[a] = p->step[a] * xs[a];
    }
    return (const char *)x->data + off * (int64_t)k_esize(x->dtype);
}

int k_slice_size_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_SLICE_BY_SIZE_x);
    if (!x) return MIL_K_ERROR;
    SliceP p;
    int rc, r;
    if ((rc = need_es(k, x)) || (rc = slice_size_params(k, x, &p))) return rc;
    int64_t d[MIL_MAX_RANK];
    slice_out_shape(x, &p, &r, d);
    k_set_shape(k->out[0], x->dtype, r, d);
    return 0;
}

int k_slice_size_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_SLICE_BY_SIZE_x);
    SliceP p;
    int rc = slice_size_params(k, x, &p);
    if (rc) return rc;
    int64_t sst[MIL_MAX_RANK], ost[MIL_MAX_RANK];
    const char *src = slice_view(x, &p, sst);
    k_contig_strides(x->rank, p.count, ost);
    copy_nd(k->out[0]->data, ost, src, sst, k_esize(x->dtype), x->rank, p.count);
    return 0;
}

#define SBI(x) MIL_A_SLICE_BY_INDEX_##x
int k_slice_index_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, SBI(x));
    if (!x) return MIL_K_ERROR;
    SliceP p;
    int rc, r;
    if ((rc = need_es(k, x))) return rc;
    if ((rc = slice_index_params(k, x, SBI(begin), SBI(end), SBI(stride), SBI(begin_mask), SBI(end_mask),
                                 SBI(squeeze_mask), &p)))
        return rc;
    int64_t d[MIL_MAX_RANK];
    slice_out_shape(x, &p, &r, d);
    k_set_shape(k->out[0], x->dtype, r, d);
    return 0;
}

int k_slice_index_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, SBI(x));
    SliceP p;
    int rc = slice_index_params(k, x, SBI(begin), SBI(end), SBI(stride), SBI(begin_mask), SBI(end_mask),
                                SBI(squeeze_mask), &p);
    if (rc) return rc;
    int64_t sst[MIL_MAX_RANK], ost[MIL_MAX_RANK];
    const char *src = slice_view(x, &p, sst);
    k_contig_strides(x->rank, p.count, ost);
    copy_nd(k->out[0]->data, ost, src, sst, k_esize(x->dtype), x->rank, p.count);
    return 0;
}
#undef SBI

#define SU(x) MIL_A_SLICE_UPDATE_##x
static int su_params(MilKernelCtx *k, SliceP *p) {
    const MilRtTensor *x = k_req(k, SU(x)), *u = x ? k_req(k, SU(update)) : NULL;
    if (!u) return MIL_K_ERROR;
    int rc, r;
    if ((rc = need_es(k, x))) return rc;
    if (u->dtype != x->dtype)
        return mil_k_fail(k, "slice_update: update dtype %s differs from x dtype %s", k_dtname(u->dtype),
                          k_dtname(x->dtype));
    if ((rc = slice_index_params(k, x, SU(begin), SU(end), SU(stride), SU(begin_mask), SU(end_mask),
                                 SU(squeeze_mask), p)))
        return rc;
    int64_t d[MIL_MAX_RANK];
    slice_out_shape(x, p, &r, d);
    bool ok = u->rank == r;
    for (int a = 0; ok && a < r; a++) ok = u->dims[a] == d[a];
    if (!ok) {
        /* also accept the unsqueezed slice shape */
        ok = u->rank == x->rank;
        for (int a = 0; ok && a < x->rank; a++) ok = u->dims[a] == p->count[a];
    }
    if (!ok) return mil_k_fail(k, "slice_update: update shape does not match the slice shape");
    return 0;
}

int k_slice_update_shape(MilKernelCtx *k) {
    SliceP p;
    int rc = su_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, SU(x));
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

int k_slice_update_run(MilKernelCtx *k) {
    SliceP p;
    int rc = su_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, SU(x)), *u = mil_k_in(k, SU(update));
    MilRtTensor *o = k->out[0];
    copy_all(k, SU(x));
    int64_t dst_st[MIL_MAX_RANK], ust[MIL_MAX_RANK];
    char *dst = (char *)slice_view(o, &p, dst_st);
    k_contig_strides(x->rank, p.count, ust);
    copy_nd(dst, dst_st, u->data, ust, k_esize(x->dtype), x->rank, p.count);
    return 0;
}
#undef SU

/* =================================================================== tile */

int k_tile_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_TILE_x);
    if (!x || !k_req(k, MIL_A_TILE_reps)) return MIL_K_ERROR;
    int64_t r[MIL_MAX_RANK], d[MIL_MAX_RANK];
    int n, rc;
    if ((rc = need_es(k, x)) || (rc = k_arg_ints(k, MIL_A_TILE_reps, r, MIL_MAX_RANK, &n))) return rc;
    if (n != x->rank) return mil_k_fail(k, "tile: reps must have %d values, got %d", x->rank, n);
    for (int a = 0; a < n; a++) {
        if (r[a] < 1) return mil_k_fail(k, "tile: reps must be >= 1, got %lld", (long long)r[a]);
        d[a] = x->dims[a] * r[a];
    }
    k_set_shape(k->out[0], x->dtype, x->rank, d);
    return 0;
}

int k_tile_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_TILE_x);
    MilRtTensor *o = k->out[0];
    int r = x->rank;
    int64_t reps[MIL_MAX_RANK], os[MIL_MAX_RANK], xs[MIL_MAX_RANK], ntiles = 1;
    for (int a = 0; a < r; a++) { reps[a] = o->dims[a] / (x->dims[a] ? x->dims[a] : 1); ntiles *= reps[a]; }
    if (k_numel(o) == 0) return 0;
    k_contig_strides(r, o->dims, os);
    k_contig_strides(r, x->dims, xs);
    size_t es = k_esize(x->dtype);
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t rem = t, off = 0;
        for (int a = r - 1; a >= 0; a--) {
            off += (rem % reps[a]) * x->dims[a] * os[a];
            rem /= reps[a];
        }
        copy_nd((char *)o->data + off * (int64_t)es, os, x->data, xs, es, r, x->dims);
    }
    return 0;
}

/* ==================================================================== pad */

typedef struct {
    int64_t pb[MIL_MAX_RANK], pa[MIL_MAX_RANK];
    int mode; /* 0 constant, 1 reflect, 2 replicate */
    double cval;
} PadP;

static int pad_params(MilKernelCtx *k, const MilRtTensor *x, PadP *p) {
    int64_t v[2 * MIL_MAX_RANK];
    int n, rc;
    const char *mode;
    if (!k_req(k, MIL_A_PAD_pad)) return MIL_K_ERROR;
    if ((rc = k_arg_str(k, MIL_A_PAD_mode, "constant", &mode))) return rc;
    if ((rc = k_arg_float(k, MIL_A_PAD_constant_val, 0.0, &p->cval))) return rc;
    if (!strcmp(mode, "constant")) p->mode = 0;
    else if (!strcmp(mode, "reflect")) p->mode = 1;
    else if (!strcmp(mode, "replicate")) p->mode = 2;
    else return mil_k_fail(k, "pad: unknown mode \"%s\"", mode);
    if ((rc = k_arg_ints(k, MIL_A_PAD_pad, v, 2 * MIL_MAX_RANK, &n))) return rc;
    if (n % 2 || n / 2 > x->rank)
        return mil_k_fail(k, "pad: pad must have an even number of values, at most 2 * rank(x) = %d", 2 * x->rank);
    int first = x->rank - n / 2;
    for (int a = 0; a < x->rank; a++) p->pb[a] = p->pa[a] = 0;
    for (int i = 0; i < n / 2; i++) {
        int a = first + i;
        p->pb[a] = v[2 * i];
        p->pa[a] = v[2 * i + 1];
        if (p->pb[a] < 0 || p->pa[a] < 0) return mil_k_fail(k, "pad: pad values must be >= 0");
        int64_t d = x->dims[a];
        if (p->mode == 1 && (p->pb[a] > d - 1 || p->pa[a] > d - 1) && (p->pb[a] || p->pa[a]))
            return mil_k_fail(k, "pad: reflect padding on axis %d must be < %lld", a, (long long)d);
        if (p->mode == 2 && d == 0 && (p->pb[a] || p->pa[a]))
            return mil_k_fail(k, "pad: cannot replicate an empty axis %d", a);
    }
    return 0;
}

int k_pad_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_PAD_x);
    if (!x) return MIL_K_ERROR;
    PadP p;
    int rc;
    if ((rc = need_es(k, x)) || (rc = pad_params(k, x, &p))) return rc;
    int64_t d[MIL_MAX_RANK];
    for (int a = 0; a < x->rank; a++) d[a] = x->dims[a] + p.pb[a] + p.pa[a];
    k_set_shape(k->out[0], x->dtype, x->rank, d);
    return 0;
}

int k_pad_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_PAD_x);
    MilRtTensor *o = k->out[0];
    PadP p;
    int rc = pad_params(k, x, &p);
    if (rc) return rc;
    size_t es = k_esize(x->dtype);
    uint64_t cbits = 0;
    MilRtTensor ct = {.dtype = o->dtype, .rank = 0, .data = &cbits};
    k_setf(&ct, 0, p.cval);
    int r = x->rank;
    int64_t xs[MIL_MAX_RANK], idx[MIL_MAX_RANK] = {0}, n = k_numel(o);
    k_contig_strides(r, x->dims, xs);
    char *dst = o->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        bool inside = true;
        for (int a = 0; a < r; a++) {
            int64_t j = idx[a] - p.pb[a], d = x->dims[a];
            if (j < 0 || j >= d) {
                if (p.mode == 0) { inside = false; break; }
                if (p.mode == 1) j = j < 0 ? -j : 2 * (d - 1) - j;
                else j = j < 0 ? 0 : d - 1;
            }
            off += j * xs[a];
        }
        memcpy(dst + (size_t)i * es, inside ? (const char *)x->data + (size_t)off * es : (const char *)&cbits, es);
        for (int a = r - 1; a >= 0; a--) {
            if (++idx[a] < o->dims[a]) break;
            idx[a] = 0;
        }
    }
    return 0;
}

/* ================================================================ reverse */

static int rev_params(MilKernelCtx *k, const MilRtTensor *x, bool *rv) {
    int64_t v[MIL_MAX_RANK];
    int n, rc;
    if ((rc = k_arg_ints(k, MIL_A_REVERSE_axes, v, MIL_MAX_RANK, &n))) return rc;
    for (int a = 0; a < MIL_MAX_RANK; a++) rv[a] = n < 0 && a < x->rank;
    for (int i = 0; i < n; i++) {
        int a;
        if ((rc = k_norm_axis(k, v[i], x->rank, &a))) return rc;
        rv[a] = !rv[a]; /* np.flip twice is the identity */
    }
    return 0;
}

int k_reverse_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_REVERSE_x);
    if (!x) return MIL_K_ERROR;
    bool rv[MIL_MAX_RANK];
    int rc;
    if ((rc = need_es(k, x)) || (rc = rev_params(k, x, rv))) return rc;
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

int k_reverse_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_REVERSE_x);
    bool rv[MIL_MAX_RANK];
    rev_params(k, x, rv);
    int64_t xs[MIL_MAX_RANK], ss[MIL_MAX_RANK], off = 0;
    k_contig_strides(x->rank, x->dims, xs);
    for (int a = 0; a < x->rank; a++) {
        ss[a] = rv[a] ? -xs[a] : xs[a];
        if (rv[a] && x->dims[a] > 0) off += (x->dims[a] - 1) * xs[a];
    }
    size_t es = k_esize(x->dtype);
    copy_nd(k->out[0]->data, xs, (const char *)x->data + off * (int64_t)es, ss, es, x->rank, x->dims);
    return 0;
}

/* ============================================ depth/space rearrangements */

static int block_params(MilKernelCtx *k, int xs, int bs_slot, const MilRtTensor **xo, int64_t *bs) {
    const MilRtTensor *x = k_req(k, xs);
    if (!x || !k_req(k, bs_slot)) return MIL_K_ERROR;
    int rc;
    if ((rc = need_es(k, x)) || (rc = k_arg_int(k, bs_slot, 1, bs))) return rc;
    if (x->rank != 4) return mil_k_fail(k, "%s: x must have rank 4 ([N, C, H, W])", k_opname(k));
    if (*bs < 1) return mil_k_fail(k, "%s: block size must be >= 1", k_opname(k));
    *xo = x;
    return 0;
}

/* depth_to_space and pixel_shuffle: [N, C, H, W] -> [N, C/b^2, H*b, W*b] */
static int to_space_shape(MilKernelCtx *k, int xs, int bs_slot) {
    const MilRtTensor *x;
    int64_t b;
    int rc = block_params(k, xs, bs_slot, &x, &b);
    if (rc) return rc;
    if (x->dims[1] % (b * b))
        return mil_k_fail(k, "%s: C must be divisible by %s^2", k_opname(k), k_argname(k, bs_slot));
    int64_t d[4] = {x->dims[0], x->dims[1] / (b * b), x->dims[2] * b, x->dims[3] * b};
    k_set_shape(k->out[0], x->dtype, 4, d);
    return 0;
}

int k_d2s_shape(MilKernelCtx *k) {
    return to_space_shape(k, MIL_A_DEPTH_TO_SPACE_x, MIL_A_DEPTH_TO_SPACE_block_size);
}

int k_pixel_shuffle_shape(MilKernelCtx *k) {
    return to_space_shape(k, MIL_A_PIXEL_SHUFFLE_x, MIL_A_PIXEL_SHUFFLE_upscale_factor);
}

int k_s2d_shape(MilKernelCtx *k) {
    const MilRtTensor *x;
    int64_t b;
    int rc = block_params(k, MIL_A_SPACE_TO_DEPTH_x, MIL_A_SPACE_TO_DEPTH_block_size, &x, &b);
    if (rc) return rc;
    if (x->dims[2] % b || x->dims[3] % b) return mil_k_fail(k, "space_to_depth: H and W must be divisible by block_size");
    int64_t d[4] = {x->dims[0], x->dims[1] * b * b, x->dims[2] / b, x->dims[3] / b};
    k_set_shape(k->out[0], x->dtype, 4, d);
    return 0;
}

/* Copies x into the contiguous output, read through the 6-D view dims with
 * element strides ss of x. */
static int copy_view6(MilKernelCtx *k, const MilRtTensor *x, const int64_t *dims, const int64_t *ss) {
    int64_t os[6];
    k_contig_strides(6, dims, os);
    copy_nd(k->out[0]->data, os, x->data, ss, k_esize(x->dtype), 6, dims);
    return 0;
}

/* depth_to_space (DCR): out[n, c, h*b+i, w*b+j] = x[n, (i*b+j)*C' + c, h, w] */
int k_d2s_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_DEPTH_TO_SPACE_x);
    MilRtTensor *o = k->out[0];
    int64_t b = o->dims[2] / x->dims[2], C = x->dims[1], Cp = o->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t dims[6] = {x->dims[0], Cp, H, b, W, b};
    int64_t ss[6] = {C * H * W, H * W, W, b * Cp * H * W, 1, Cp * H * W};
    return copy_view6(k, x, dims, ss);
}

/* pixel_shuffle (CRD): out[n, c, h*f+i, w*f+j] = x[n, c*f*f + i*f + j, h, w] */
int k_pixel_shuffle_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_PIXEL_SHUFFLE_x);
    MilRtTensor *o = k->out[0];
    int64_t f = o->dims[2] / x->dims[2], C = x->dims[1], Cp = o->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t dims[6] = {x->dims[0], Cp, H, f, W, f};
    int64_t ss[6] = {C * H * W, f * f * H * W, W, f * H * W, 1, H * W};
    return copy_view6(k, x, dims, ss);
}

/* space_to_depth: out[n, (i*b+j)*C + c, h, w] = x[n, c, h*b+i, w*b+j] */
int k_s2d_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_SPACE_TO_DEPTH_x);
    MilRtTensor *o = k->out[0];
    int64_t b = x->dims[2] / o->dims[2], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t dims[6] = {x->dims[0], b, b, C, H / b, W / b};
    int64_t ss[6] = {C * H * W, W, 1, H * W, b * W, b};
    return copy_view6(k, x, dims, ss);
}

/* ============================================== upsample_nearest_neighbor */

static int up_params(MilKernelCtx *k, const MilRtTensor **xo, double *sh, double *sw) {
    const MilRtTensor *x = k_req(k, MIL_A_UPSAMPLE_NEAREST_NEIGHBOR_x);
    if (!x) return MIL_K_ERROR;
    int rc;
    if ((rc = need_es(k, x))) return rc;
    if ((rc = k_arg_float(k, MIL_A_UPSAMPLE_NEAREST_NEIGHBOR_scale_factor_height, 1, sh))) return rc;
    if ((rc = k_arg_float(k, MIL_A_UPSAMPLE_NEAREST_NEIGHBOR_scale_factor_width, 1, sw))) return rc;
    if (x->rank < 3) return mil_k_fail(k, "upsample_nearest_neighbor: x must have rank >= 3");
    if (!(*sh > 0) || !(*sw > 0)) return mil_k_fail(k, "upsample_nearest_neighbor: scale factors must be > 0");
    *xo = x;
    return 0;
}

int k_upsample_nn_shape(MilKernelCtx *k) {
    const MilRtTensor *x;
    double sh, sw;
    int rc = up_params(k, &x, &sh, &sw);
    if (rc) return rc;
    int64_t d[MIL_MAX_RANK];
    memcpy(d, x->dims, sizeof d);
    d[x->rank - 2] = (int64_t)floor((double)x->dims[x->rank - 2] * sh);
    d[x->rank - 1] = (int64_t)floor((double)x->dims[x->rank - 1] * sw);
    k_set_shape(k->out[0], x->dtype, x->rank, d);
    return 0;
}

int k_upsample_nn_run(MilKernelCtx *k) {
    const MilRtTensor *x;
    double sh, sw;
    int rc = up_params(k, &x, &sh, &sw);
    if (rc) return rc;
    MilRtTensor *o = k->out[0];
    int64_t H = x->dims[x->rank - 2], W = x->dims[x->rank - 1], OH = o->dims[o->rank - 2], OW = o->dims[o->rank - 1];
    int64_t planes = H * W != 0 ? k_numel(x) / (H * W) : 0;
    size_t es = k_esize(x->dtype);
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t i = 0; i < OH; i++) {
            int64_t si = (int64_t)floor((double)i / sh);
            if (si > H - 1) si = H - 1;
            for (int64_t j = 0; j < OW; j++) {
                int64_t sj = (int64_t)floor((double)j / sw);
                if (sj > W - 1) sj = W - 1;
                memcpy((char *)o->data + (size_t)((pl * OH + i) * OW + j) * es,
                       (const char *)x->data + (size_t)((pl * H + si) * W + sj) * es, es);
            }
        }
    return 0;
}

/* =================================================================== crop */

static int crop_params(MilKernelCtx *k, const MilRtTensor **xo, int64_t *ch, int64_t *cw) {
    const MilRtTensor *x = k_req(k, MIL_A_CROP_x);
    if (!x || !k_req(k, MIL_A_CROP_crop_height) || !k_req(k, MIL_A_CROP_crop_width)) return MIL_K_ERROR;
    int n1, n2, rc;
    if ((rc = need_es(k, x))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_CROP_crop_height, ch, 2, &n1))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_CROP_crop_width, cw, 2, &n2))) return rc;
    if (n1 != 2 || n2 != 2) return mil_k_fail(k, "crop: crop_height and crop_width must have 2 values");
    if (x->rank < 2) return mil_k_fail(k, "crop: x must have rank >= 2");
    if (ch[0] < 0 || ch[1] < 0 || cw[0] < 0 || cw[1] < 0 || ch[0] + ch[1] > x->dims[x->rank - 2] ||
        cw[0] + cw[1] > x->dims[x->rank - 1])
        return mil_k_fail(k, "crop: crop amounts out of range");
    *xo = x;
    return 0;
}

int k_crop_shape(MilKernelCtx *k) {
    const MilRtTensor *x;
    int64_t ch[2], cw[2];
    int rc = crop_params(k, &x, ch, cw);
    if (rc) return rc;
    int64_t d[MIL_MAX_RANK];
    memcpy(d, x->dims, sizeof d);
    d[x->rank - 2] -= ch[0] + ch[1];
    d[x->rank - 1] -= cw[0] + cw[1];
    k_set_shape(k->out[0], x->dtype, x->rank, d);
    return 0;
}

int k_crop_run(MilKernelCtx *k) {
    const MilRtTensor *x;
    int64_t ch[2], cw[2];
    int rc = crop_params(k, &x, ch, cw);
    if (rc) return rc;
    MilRtTensor *o = k->out[0];
    int r = x->rank;
    int64_t xs[MIL_MAX_RANK], os[MIL_MAX_RANK];
    k_contig_strides(r, x->dims, xs);
    k_contig_strides(r, o->dims, os);
    size_t es = k_esize(x->dtype);
    const char *src = (const char *)x->data + (ch[0] * xs[r - 2] + cw[0]) * (int64_t)es;
    copy_nd(o->data, os, src, xs, es, r, o->dims);
    return 0;
}

/* ============================================================== band_part */

int k_band_part_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_BAND_PART_x);
    if (!x) return MIL_K_ERROR;
    int64_t lo, up;
    int rc;
    if ((rc = need_es(k, x)) || (rc = k_arg_int(k, MIL_A_BAND_PART_lower, -1, &lo)) ||
        (rc = k_arg_int(k, MIL_A_BAND_PART_upper, -1, &up)))
        return rc;
    if (x->rank < 2) return mil_k_fail(k, "band_part: x must have rank >= 2");
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

int k_band_part_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_BAND_PART_x);
    MilRtTensor *o = k->out[0];
    int64_t lo, up;
    k_arg_int(k, MIL_A_BAND_PART_lower, -1, &lo);
    k_arg_int(k, MIL_A_BAND_PART_upper, -1, &up);
    int64_t M = x->dims[x->rank - 2], N = x->dims[x->rank - 1], mats = M * N != 0 ? k_numel(x) / (M * N) : 0;
    size_t es = k_esize(x->dtype);
    for (int64_t q = 0; q < mats; q++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                size_t off = (size_t)((q * M + m) * N + n) * es;
                bool keep = (lo < 0 || m - n <= lo) && (up < 0 || n - m <= up);
                if (keep) memcpy((char *)o->data + off, (const char *)x->data + off, es);
                else memset((char *)o->data + off, 0, es);
            }
    return 0;
}
