/* runtime/cpu/k_misc.c -- const, fill, fill_like, range_1d, shape, identity,
 * and the constexpr_* dequantisation ops (iOS16 attribute forms and iOS18
 * input forms). */
#include "runtime/cpu/kutil.h"

/* ================================================================== const */

/* The device materialises constants: it presets out[0] from the value. */
int k_const_shape(MilKernelCtx *k) {
    if (k->nout != 1 || k->out[0]->dtype == MIL_DT_NONE)
        return mil_k_fail(k, "const: the value is materialised by the device, not by a kernel");
    return 0;
}
int k_const_run(MilKernelCtx *k) { return 0; }

/* ======================================================= identity / shape */

int k_identity_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_IDENTITY_x);
    if (!x) return MIL_K_ERROR;
    if (!k_esize(x->dtype)) return mil_k_fail(k, "identity: unsupported dtype %s", k_dtname(x->dtype));
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

int k_identity_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_IDENTITY_x);
    if (x->data != k->out[0]->data) memcpy(k->out[0]->data, x->data, (size_t)k_numel(x) * k_esize(x->dtype));
    return 0;
}

int k_shapeop_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_SHAPE_x);
    if (!x) return MIL_K_ERROR;
    int64_t d = x->rank;
    k_set_shape(k->out[0], MIL_DT_INT32, 1, &d);
    return 0;
}

int k_shapeop_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_SHAPE_x);
    for (int i = 0; i < x->rank; i++) ((int32_t *)k->out[0]->data)[i] = (int32_t)x->dims[i];
    return 0;
}

/* ====================================================== fill / fill_like */

static MilDType value_dtype(const MilKernelCtx *k, int slot) {
    const MilRtTensor *v = mil_k_in(k, slot);
    return v ? v->dtype : MIL_DT_FP32;
}

static int fill_value(MilKernelCtx *k, int slot, double *v) {
    const MilRtTensor *t = mil_k_in(k, slot);
    if (t && t->dtype != MIL_DT_BOOL && !k_isfloat(t->dtype) && !k_isint(t->dtype))
        return mil_k_fail(k, "%s: unsupported value dtype %s", k_opname(k), k_dtname(t->dtype));
    return k_arg_float(k, slot, 0.0, v);
}

static void fill_all(MilRtTensor *o, double v) {
    int64_t n = k_numel(o);
    if (n == 0) return;
    k_setf(o, 0, v);
    size_t es = k_esize(o->dtype);
    for (int64_t i = 1; i < n; i++) memcpy((char *)o->data + (size_t)i * es, o->data, es);
}

int k_fill_shape(MilKernelCtx *k) {
    if (!k_req(k, MIL_A_FILL_shape)) return MIL_K_ERROR;
    int64_t d[MIL_MAX_RANK];
    int n, rc;
    double v;
    if ((rc = fill_value(k, MIL_A_FILL_value, &v))) return rc;
    if ((rc = k_arg_ints(k, MIL_A_FILL_shape, d, MIL_MAX_RANK, &n))) return rc;
    for (int i = 0; i < n; i++)
        if (d[i] < 0) return mil_k_fail(k, "fill: negative dimension %lld", (long long)d[i]);
    k_set_shape(k->out[0], value_dtype(k, MIL_A_FILL_value), n, d);
    return 0;
}

/* fill and fill_like: the value (at vslot) everywhere. */
static int fill_run(MilKernelCtx *k, int vslot) {
    double v;
    int rc = fill_value(k, vslot, &v);
    if (rc) return rc;
    fill_all(k->out[0], v);
    return 0;
}

int k_fill_run(MilKernelCtx *k) { return fill_run(k, MIL_A_FILL_value); }

int k_fill_like_shape(MilKernelCtx *k) {
    const MilRtTensor *r = k_req(k, MIL_A_FILL_LIKE_ref_tensor);
    if (!r) return MIL_K_ERROR;
    double v;
    int rc = fill_value(k, MIL_A_FILL_LIKE_value, &v);
    if (rc) return rc;
    k_set_shape(k->out[0], value_dtype(k, MIL_A_FILL_LIKE_value), r->rank, r->dims);
    return 0;
}

int k_fill_like_run(MilKernelCtx *k) { return fill_run(k, MIL_A_FILL_LIKE_value); }

/* =============================================================== range_1d */

static int range_params(MilKernelCtx *k, double *s, double *e, double *st, int64_t *n, MilDType *dt) {
    const MilRtTensor *a = k_req(k, MIL_A_RANGE_1D_start), *b = a ? k_req(k, MIL_A_RANGE_1D_end) : NULL,
                      *c = b ? k_req(k, MIL_A_RANGE_1D_step) : NULL;
    if (!c) return MIL_K_ERROR;
    if (a->dtype != b->dtype || a->dtype != c->dtype)
        return mil_k_fail(k, "range_1d: start, end and step must have the same dtype");
    if (!k_isfloat(a->dtype) && !k_isint(a->dtype))
        return mil_k_fail(k, "range_1d: unsupported dtype %s", k_dtname(a->dtype));
    int rc;
    if ((rc = k_arg_float(k, MIL_A_RANGE_1D_start, 0, s)) || (rc = k_arg_float(k, MIL_A_RANGE_1D_end, 0, e)) ||
        (rc = k_arg_float(k, MIL_A_RANGE_1D_step, 1, st)))
        return rc;
    if (*st == 0) return mil_k_fail(k, "range_1d: step must not be 0");
    double cnt = ceil((*e - *s) / *st);
    if (!(cnt >= 0)) cnt = 0;
    if (cnt > 1e12) return mil_k_fail(k, "range_1d: too many elements");
    *n = (int64_t)cnt;
    *dt = a->dtype;
    return 0;
}

int k_range_shape(MilKernelCtx *k) {
    double s, e, st;
    int64_t n;
    MilDType dt;
    int rc = range_params(k, &s, &e, &st, &n, &dt);
    if (rc) return rc;
    k_set_shape(k->out[0], dt, 1, &n);
    return 0;
}

int k_range_run(MilKernelCtx *k) {
    double s, e, st;
    int64_t n;
    MilDType dt;
    int rc = range_params(k, &s, &e, &st, &n, &dt);
    if (rc) return rc;
    for (int64_t i = 0; i < n && i < k->out[0]->dims[0]; i++) k_setf(k->out[0], i, s + (double)i * st);
    return 0;
}

/* ====================================================== constexpr_cast */

int k_cx_cast_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_CONSTEXPR_CAST_source_val);
    if (!x || !k_req(k, MIL_A_CONSTEXPR_CAST_output_dtype)) return MIL_K_ERROR;
    const char *s;
    int rc = k_arg_str(k, MIL_A_CONSTEXPR_CAST_output_dtype, NULL, &s);
    if (rc) return rc;
    MilDType dt = k_dtype_from_name(s);
    if (!k_isfloat(dt) || dt == MIL_DT_FP64) return mil_k_fail(k, "constexpr_cast: unsupported output_dtype \"%s\"", s);
    if (!k_isfloat(x->dtype)) return mil_k_fail(k, "constexpr_cast: source_val must be a float tensor");
    k_set_shape(k->out[0], dt, x->rank, x->dims);
    return 0;
}

int k_cx_cast_run(MilKernelCtx *k) {
    k_convertf(mil_k_in(k, MIL_A_CONSTEXPR_CAST_source_val), k->out[0]);
    return 0;
}

/* ======================================== constexpr_affine_dequantize */

#define AD(x) MIL_A_CONSTEXPR_AFFINE_DEQUANTIZE_##x
static int ad_params(MilKernelCtx *k, int *axis) {
    const MilRtTensor *q = k_req(k, AD(quantized_data)), *sc = q ? k_req(k, AD(scale)) : NULL,
                      *zp = sc ? k_req(k, AD(zero_point)) : NULL;
    if (!zp || !k_req(k, AD(axis))) return MIL_K_ERROR;
    int64_t ax;
    int rc;
    if ((rc = k_arg_int(k, AD(axis), 0, &ax))) return rc;
    if (!k_isint(q->dtype)) return mil_k_fail(k, "constexpr_affine_dequantize: quantized_data must be integers");
    if (!k_isfloat(sc->dtype)) return mil_k_fail(k, "constexpr_affine_dequantize: scale must be fp16 or fp32");
    if (!k_isint(zp->dtype) && !k_isfloat(zp->dtype))
        return mil_k_fail(k, "constexpr_affine_dequantize: unsupported zero_point dtype %s", k_dtname(zp->dtype));
    if (q->rank == 0) return mil_k_fail(k, "constexpr_affine_dequantize: quantized_data must have rank >= 1");
    if ((rc = k_norm_axis(k, ax, q->rank, axis))) return rc;
    const MilRtTensor *ps[2] = {sc, zp};
    for (int i = 0; i < 2; i++) {
        if (ps[i]->rank > 1 || (ps[i]->rank == 1 && ps[i]->dims[0] != q->dims[*axis]))
            return mil_k_fail(k, "constexpr_affine_dequantize: %s must be a scalar or a vector of %lld",
                              i ? "zero_point" : "scale", (long long)q->dims[*axis]);
        if (!ps[i]->data) return MIL_K_NEED_DATA;
    }
    return 0;
}

int k_affine_deq_shape(MilKernelCtx *k) {
    int axis, rc;
    if ((rc = ad_params(k, &axis))) return rc;
    const MilRtTensor *q = mil_k_in(k, AD(quantized_data)), *sc = mil_k_in(k, AD(scale));
    k_set_shape(k->out[0], sc->dtype, q->rank, q->dims);
    return 0;
}

int k_affine_deq_run(MilKernelCtx *k) {
    int axis, rc;
    if ((rc = ad_params(k, &axis))) return rc;
    const MilRtTensor *q = mil_k_in(k, AD(quantized_data)), *sc = mil_k_in(k, AD(scale)), *zp = mil_k_in(k, AD(zero_point));
    int64_t D = q->dims[axis], inner = k_prod(q->dims, axis + 1, q->rank), n = k_numel(q);
    for (int64_t i = 0; i < n; i++) {
        int64_t c = (i / inner) % D;
        float s = (float)k_getf(sc, sc->rank ? c : 0), z = (float)k_getf(zp, zp->rank ? c : 0);
        float v = s * ((float)k_geti(q, i) - z);
        k_storef(k->out[0], i, 1, &v);
    }
    return 0;
}
#undef AD

/* ============================================== constexpr_lut_to_dense */

#define LUT(x) MIL_A_CONSTEXPR_LUT_TO_DENSE_##x
static int nbits_of(MilDType dt) {
    switch (dt) {
    case MIL_DT_UINT1: return 1;
    case MIL_DT_UINT2: return 2;
    case MIL_DT_UINT3: return 3;
    case MIL_DT_UINT4: return 4;
    case MIL_DT_UINT6: return 6;
    case MIL_DT_UINT8: return 8;
    default: return 0;
    }
}

/* LSB-first bit stream element i of width nb */
static unsigned unpack_bits(const uint8_t *p, int64_t i, int nb) {
    unsigned v = 0;
    int64_t bit = i * nb;
    for (int b = 0; b < nb; b++, bit++) v |= (unsigned)((p[bit >> 3] >> (bit & 7)) & 1u) << b;
    return v;
}

typedef struct {
    bool ios16;
    int nb, vaxis;
    int64_t vs, out[MIL_MAX_RANK];
    int orank;
} LutP;

static int lut_params(MilKernelCtx *k, LutP *p) {
    const MilRtTensor *ind = k_req(k, LUT(indices)), *lut = ind ? k_req(k, LUT(lut)) : NULL;
    if (!lut) return MIL_K_ERROR;
    int rc, n;
    if (lut->dtype != MIL_DT_FP16 && lut->dtype != MIL_DT_FP32 && lut->dtype != MIL_DT_INT8 && lut->dtype != MIL_DT_UINT8 &&
        lut->dtype != MIL_DT_BF16)
        return mil_k_fail(k, "constexpr_lut_to_dense: unsupported lut dtype %s", k_dtname(lut->dtype));
    if (!ind->data || !lut->data) return MIL_K_NEED_DATA;
    p->ios16 = mil_k_in(k, LUT(shape)) != NULL;
    if (p->ios16) {
        if ((rc = k_arg_ints(k, LUT(shape), p->out, MIL_MAX_RANK, &n))) return rc;
        p->orank = n;
        int64_t cnt = 1;
        for (int i = 0; i < n; i++) {
            if (p->out[i] < 0) return mil_k_fail(k, "constexpr_lut_to_dense: negative dimension in shape");
            cnt *= p->out[i];
        }
        if (lut->rank != 1) return mil_k_fail(k, "constexpr_lut_to_dense: lut must be 1-D (iOS16 form)");
        int64_t np = lut->dims[0];
        p->nb = np == 2 ? 1 : np == 4 ? 2 : np == 16 ? 4 : np == 64 ? 6 : np == 256 ? 8 : 0;
        if (!p->nb) return mil_k_fail(k, "constexpr_lut_to_dense: lut size must be 2, 4, 16, 64 or 256");
        if (ind->dtype != MIL_DT_UINT8 || ind->rank != 1)
            return mil_k_fail(k, "constexpr_lut_to_dense: indices must be a uint8 vector (iOS16 form)");
        if (ind->dims[0] != (cnt * p->nb + 7) / 8)
            return mil_k_fail(k, "constexpr_lut_to_dense: indices has %lld bytes, expected %lld", (long long)ind->dims[0],
                              (long long)((cnt * p->nb + 7) / 8));
        p->vs = 1;
        return 0;
    }
    p->nb = nbits_of(ind->dtype);
    if (!p->nb) return mil_k_fail(k, "constexpr_lut_to_dense: indices must be uint1..uint8, got %s", k_dtname(ind->dtype));
    if (ind->rank < 1 || lut->rank != ind->rank + 2)
        return mil_k_fail(k, "constexpr_lut_to_dense: lut must have rank(indices) + 2 dimensions");
    for (int a = 0; a < ind->rank; a++)
        if (lut->dims[a] < 1 || ind->dims[a] % lut->dims[a])
            return mil_k_fail(k, "constexpr_lut_to_dense: lut dimension %d must divide the indices dimension", a);
    if (lut->dims[ind->rank] != ((int64_t)1 << p->nb))
        return mil_k_fail(k, "constexpr_lut_to_dense: lut needs %d palette entries for %s indices", 1 << p->nb,
                          k_dtname(ind->dtype));
    p->vs = lut->dims[ind->rank + 1];
    int64_t va = 0;
    if ((rc = k_arg_int(k, LUT(vector_axis), 0, &va))) return rc;
    if (p->vs > 1 && !mil_k_in(k, LUT(vector_axis)))
        return mil_k_fail(k, "constexpr_lut_to_dense: vector_axis is required when the vector size is > 1");
    if ((rc = k_norm_axis(k, va, ind->rank, &p->vaxis))) return rc;
    p->orank = ind->rank;
    memcpy(p->out, ind->dims, sizeof p->out);
    p->out[p->vaxis] *= p->vs;
    return 0;
}

int k_lut_shape(MilKernelCtx *k) {
    LutP p;
    int rc = lut_params(k, &p);
    if (rc) return rc;
    k_set_shape(k->out[0], mil_k_in(k, LUT(lut))->dtype, p.orank, p.out);
    return 0;
}

int k_lut_run(MilKernelCtx *k) {
    LutP p;
    int rc = lut_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *ind = mil_k_in(k, LUT(indices)), *lut = mil_k_in(k, LUT(lut));
    MilRtTensor *o = k->out[0];
    size_t es = k_esize(lut->dtype);
    int64_t n = k_numel(o);
    if (p.ios16) {
        for (int64_t i = 0; i < n; i++) {
            unsigned v = unpack_bits(ind->data, i, p.nb);
            memcpy((char *)o->data + (size_t)i * es, (const char *)lut->data + (size_t)v * es, es);
        }
        return 0;
    }
    int r = ind->rank;
    int64_t is[MIL_MAX_RANK], ls[MIL_MAX_RANK + 2], idx[MIL_MAX_RANK] = {0};
    k_contig_strides(r, ind->dims, is);
    k_contig_strides(lut->rank, lut->dims, ls);
    for (int64_t i = 0; i < n; i++) {
        int64_t ioff = 0, loff = 0, v = 0;
        for (int a = 0; a < r; a++) {
            int64_t pa = idx[a];
            if (a == p.vaxis && p.vs > 1) { v = pa % p.vs; pa /= p.vs; }
            ioff += pa * is[a];
            loff += (pa / (ind->dims[a] / lut->dims[a])) * ls[a];
        }
        int64_t e = k_geti(ind, ioff);
        if (e < 0 || e >= ((int64_t)1 << p.nb)) return mil_k_fail(k, "constexpr_lut_to_dense: index %lld out of range", (long long)e);
        loff += e * ls[r] + v;
        memcpy((char *)o->data + (size_t)i * es, (const char *)lut->data + (size_t)loff * es, es);
        for (int a = r - 1; a >= 0; a--) {
            if (++idx[a] < o->dims[a]) break;
            idx[a] = 0;
        }
    }
    return 0;
}
#undef LUT

/* ============================================ constexpr_sparse_to_dense */

#define SP(x) MIL_A_CONSTEXPR_SPARSE_TO_DENSE_##x
static int sparse_params(MilKernelCtx *k, bool *ios16, int64_t *dims, int *rank) {
    const MilRtTensor *nz = k_req(k, SP(nonzero_data)), *mask = nz ? k_req(k, SP(mask)) : NULL;
    if (!mask) return MIL_K_ERROR;
    int rc;
    if (!k_esize(nz->dtype) || nz->dtype == MIL_DT_STRING || nz->dtype == MIL_DT_BOOL)
        return mil_k_fail(k, "constexpr_sparse_to_dense: unsupported dtype %s", k_dtname(nz->dtype));
    if (nz->rank != 1) return mil_k_fail(k, "constexpr_sparse_to_dense: nonzero_data must be 1-D");
    if (!mask->data) return MIL_K_NEED_DATA;
    *ios16 = mil_k_in(k, SP(shape)) != NULL;
    int64_t cnt = 0, bits = 0;
    if (*ios16) {
        if ((rc = k_arg_ints(k, SP(shape), dims, MIL_MAX_RANK, rank))) return rc;
        int64_t total = 1;
        for (int i = 0; i < *rank; i++) {
            if (dims[i] < 0) return mil_k_fail(k, "constexpr_sparse_to_dense: negative dimension in shape");
            total *= dims[i];
        }
        if (mask->dtype != MIL_DT_UINT8 || mask->rank != 1 || mask->dims[0] != (total + 7) / 8)
            return mil_k_fail(k, "constexpr_sparse_to_dense: mask must be %lld uint8 bytes (iOS16 form)",
                              (long long)((total + 7) / 8));
        for (int64_t i = 0; i < mask->dims[0] * 8; i++) {
            unsigned b = (((const uint8_t *)mask->data)[i >> 3] >> (i & 7)) & 1u;
            if (i < total) cnt += b;
            else bits += b;
        }
        if (bits) return mil_k_fail(k, "constexpr_sparse_to_dense: padding bits of mask must be 0");
    } else {
        if (!k_isint(mask->dtype) && mask->dtype != MIL_DT_BOOL)
            return mil_k_fail(k, "constexpr_sparse_to_dense: mask must be uint1");
        *rank = mask->rank;
        memcpy(dims, mask->dims, sizeof(int64_t) * MIL_MAX_RANK);
        int64_t m = k_numel(mask);
        for (int64_t i = 0; i < m; i++) cnt += k_geti(mask, i) != 0;
    }
    if (cnt != nz->dims[0])
        return mil_k_fail(k, "constexpr_sparse_to_dense: mask has %lld set bits but nonzero_data has %lld values",
                          (long long)cnt, (long long)nz->dims[0]);
    return 0;
}

int k_sparse_shape(MilKernelCtx *k) {
    bool ios16;
    int64_t dims[MIL_MAX_RANK];
    int rank, rc;
    if ((rc = sparse_params(k, &ios16, dims, &rank))) return rc;
    k_set_shape(k->out[0], mil_k_in(k, SP(nonzero_data))->dtype, rank, dims);
    return 0;
}

int k_sparse_run(MilKernelCtx *k) {
    bool ios16;
    int64_t dims[MIL_MAX_RANK];
    int rank, rc;
    if ((rc = sparse_params(k, &ios16, dims, &rank))) return rc;
    const MilRtTensor *nz = mil_k_in(k, SP(nonzero_data)), *mask = mil_k_in(k, SP(mask));
    MilRtTensor *o = k->out[0];
    size_t es = k_esize(nz->dtype);
    int64_t n = k_numel(o), j = 0;
    memset(o->data, 0, (size_t)n * es);
    for (int64_t i = 0; i < n; i++) {
        bool set = ios16 ? ((((const uint8_t *)mask->data)[i >> 3] >> (i & 7)) & 1u) : k_geti(mask, i) != 0;
        if (set) {
            memcpy((char *)o->data + (size_t)i * es, (const char *)nz->data + (size_t)j * es, es);
            j++;
        }
    }
    return 0;
}
#undef SP

/* ======================================= constexpr_blockwise_shift_scale */

#define BW(x) MIL_A_CONSTEXPR_BLOCKWISE_SHIFT_SCALE_##x
static int bw_params(MilKernelCtx *k) {
    const MilRtTensor *d = k_req(k, BW(data)), *s = d ? k_req(k, BW(scale)) : NULL, *off = mil_k_in(k, BW(offset));
    if (!s) return MIL_K_ERROR;
    if (!k_isint(d->dtype) && !k_isfloat(d->dtype))
        return mil_k_fail(k, "constexpr_blockwise_shift_scale: unsupported data dtype %s", k_dtname(d->dtype));
    if (!k_isfloat(s->dtype)) return mil_k_fail(k, "constexpr_blockwise_shift_scale: scale must be fp16 or fp32");
    if (d->rank < 1 || s->rank != d->rank)
        return mil_k_fail(k, "constexpr_blockwise_shift_scale: data and scale must have the same rank >= 1");
    for (int a = 0; a < d->rank; a++)
        if (s->dims[a] < 1 || d->dims[a] % s->dims[a])
            return mil_k_fail(k, "constexpr_blockwise_shift_scale: scale dimension %d (%lld) must divide data's (%lld)",
                              a, (long long)s->dims[a], (long long)d->dims[a]);
    if (off) {
        bool ok = off->rank == s->rank && (k_isint(off->dtype) || k_isfloat(off->dtype));
        for (int a = 0; ok && a < s->rank; a++) ok = off->dims[a] == s->dims[a];
        if (!ok) return mil_k_fail(k, "constexpr_blockwise_shift_scale: offset must have the shape of scale");
    }
    return 0;
}

int k_blockwise_shape(MilKernelCtx *k) {
    int rc = bw_params(k);
    if (rc) return rc;
    const MilRtTensor *d = mil_k_in(k, BW(data)), *s = mil_k_in(k, BW(scale));
    k_set_shape(k->out[0], s->dtype, d->rank, d->dims);
    return 0;
}

int k_blockwise_run(MilKernelCtx *k) {
    int rc = bw_params(k);
    if (rc) return rc;
    const MilRtTensor *d = mil_k_in(k, BW(data)), *s = mil_k_in(k, BW(scale)), *off = mil_k_in(k, BW(offset));
    int r = d->rank;
    int64_t ss[MIL_MAX_RANK], idx[MIL_MAX_RANK] = {0}, n = k_numel(d);
    k_contig_strides(r, s->dims, ss);
    for (int64_t i = 0; i < n; i++) {
        int64_t so = 0;
        for (int a = 0; a < r; a++) so += (idx[a] / (d->dims[a] / s->dims[a])) * ss[a];
        float v = (float)k_getf(d, i);
        if (off) v -= (float)k_getf(off, so);
        v *= (float)k_getf(s, so);
        k_storef(k->out[0], i, 1, &v);
        for (int a = r - 1; a >= 0; a--) {
            if (++idx[a] < d->dims[a]) break;
            idx[a] = 0;
        }
    }
    return 0;
}
#undef BW
