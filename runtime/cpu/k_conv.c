/* runtime/cpu/k_conv.c -- conv (im2col + sgemm), conv_transpose (sgemm +
 * col2im), avg_pool, max_pool; 1 to 3 spatial dimensions (handled as 3-D with
 * unit leading dimensions). */
#include <cblas.h>

#include "runtime/cpu/kutil.h"

/* Geometry common to conv, conv_transpose and pooling, padded to 3-D. */
typedef struct {
    int S;                    /* spatial dims */
    int64_t N, Cin, Cout, G;
    int64_t in[3], ker[3], str[3], dil[3], pb[3], pa[3], out[3];
} Geo;

static int64_t prod3(const int64_t *v) { return v[0] * v[1] * v[2]; }

static int pad_kind(MilKernelCtx *k, int slot, const char *def, int *kind) {
    const char *s;
    int rc = k_arg_str(k, slot, def, &s);
    if (rc) return rc;
    if (!strcmp(s, "valid")) *kind = 0;
    else if (!strcmp(s, "custom")) *kind = 1;
    else if (!strcmp(s, "same")) *kind = 2;
    else if (!strcmp(s, "same_lower")) *kind = 3;
    else return mil_k_fail(k, "%s: unknown pad_type \"%s\"", k_opname(k), s);
    return 0;
}

/* strides / dilations / pad vectors: absent -> defaults; length checked */
static int spatial_vec(MilKernelCtx *k, int slot, int S, int64_t def, int64_t *out3, int mult) {
    int64_t v[6];
    int n, rc;
    for (int i = 0; i < 3 * mult; i++) out3[i] = (mult == 2 ? 0 : 1);
    if (slot < 0) { for (int i = 0; i < S * mult; i++) out3[i] = def; return 0; }
    if ((rc = k_arg_ints(k, slot, v, 6, &n))) return rc;
    if (n < 0) { for (int i = 0; i < S * mult; i++) out3[i] = def; return 0; }
    if (n != S * mult)
        return mil_k_fail(k, "%s: '%s' must have %d values, got %d", k_opname(k), k_argname(k, slot), S * mult, n);
    for (int i = 0; i < n; i++) out3[i] = v[i];
    return 0;
}

/* Fill g->in/ker/str/dil and the leading unit dims; S = x->rank - 2. */
static int geo_common(MilKernelCtx *k, Geo *g, const MilRtTensor *x, const int64_t *kernel, int s_str, int s_dil) {
    if (x->rank < 3 || x->rank > 5)
        return mil_k_fail(k, "%s: x must have rank 3 to 5 ([N, C, *D]), got %d", k_opname(k), x->rank);
    g->S = x->rank - 2;
    int off = 3 - g->S, rc;
    g->N = x->dims[0];
    g->Cin = x->dims[1];
    int64_t st[3], dl[3];
    if ((rc = spatial_vec(k, s_str, g->S, 1, st, 1))) return rc;
    if ((rc = spatial_vec(k, s_dil, g->S, 1, dl, 1))) return rc;
    for (int i = 0; i < 3; i++) {
        g->in[i] = g->ker[i] = g->str[i] = g->dil[i] = g->out[i] = 1;
        g->pb[i] = g->pa[i] = 0;
    }
    for (int i = 0; i < g->S; i++) {
        g->in[off + i] = x->dims[2 + i];
        g->ker[off + i] = kernel[i];
        g->str[off + i] = st[i];
        g->dil[off + i] = dl[i];
        if (kernel[i] < 1) return mil_k_fail(k, "%s: kernel sizes must be >= 1", k_opname(k));
        if (st[i] < 1) return mil_k_fail(k, "%s: strides must be >= 1", k_opname(k));
        if (dl[i] < 1) return mil_k_fail(k, "%s: dilations must be >= 1", k_opname(k));
    }
    return 0;
}

/* forward (conv / pool) padding and output sizes */
static int geo_forward(MilKernelCtx *k, Geo *g, int kind, int s_pad, bool ceil_mode) {
    int off = 3 - g->S, rc;
    int64_t pv[6];
    if ((rc = spatial_vec(k, kind == 1 ? s_pad : -1, g->S, 0, pv, 2))) return rc;
    if (kind == 1 && !mil_k_in(k, s_pad)) for (int i = 0; i < 6; i++) pv[i] = 0;
    for (int i = 0; i < g->S; i++) {
        int a = off + i;
        int64_t dk = (g->ker[a] - 1) * g->dil[a] + 1, in = g->in[a], s = g->str[a];
        if (kind == 1) {
            g->pb[a] = pv[2 * i];
            g->pa[a] = pv[2 * i + 1];
            if (g->pb[a] < 0 || g->pa[a] < 0) return mil_k_fail(k, "%s: pad must be >= 0", k_opname(k));
        } else if (kind >= 2) {
            int64_t tot = ((in + s - 1) / s - 1) * s + dk - in;
            if (tot < 0) tot = 0;
            g->pb[a] = kind == 2 ? tot / 2 : tot - tot / 2;
            g->pa[a] = tot - g->pb[a];
        }
        int64_t span = in + g->pb[a] + g->pa[a] - dk;
        int64_t o;
        if (kind >= 2) o = (in + s - 1) / s;
        else if (!ceil_mode) o = span < 0 ? 0 : span / s + 1;
        else {
            o = span < 0 ? 0 : (span + s - 1) / s + 1;
            if (o > 0 && (o - 1) * s >= in + g->pb[a] && g->pb[a] + g->pa[a] > 0) o--;
        }
        if (o <= 0 || span < 0)
            return mil_k_fail(k, "%s: spatial dimension %d has no valid output (input %lld, effective kernel %lld)",
                              k_opname(k), i, (long long)in, (long long)dk);
        g->out[a] = o;
    }
    return 0;
}

/* The output: [N, C, *out] with x's dtype and rank. */
static void geo_set_out(MilKernelCtx *k, const Geo *g, const MilRtTensor *x, int64_t C) {
    int64_t dims[MIL_MAX_RANK] = {g->N, C};
    for (int i = 0; i < g->S; i++) dims[2 + i] = g->out[3 - g->S + i];
    k_set_shape(k->out[0], x->dtype, x->rank, dims);
}

/* =================================================================== conv */

typedef struct {
    Geo g;
    const MilRtTensor *x, *w, *b;
} ConvP;

/* What conv and conv_transpose read alike: x, weight, bias, strides,
 * dilations, groups (must divide C_in) and pad_type; k->kind picks the slots. */
static int conv_inputs(MilKernelCtx *k, ConvP *p, int *kind) {
    bool tr = k->kind == MIL_OP_CONV_TRANSPOSE;
    const MilRtTensor *x = k_req(k, tr ? MIL_A_CONV_TRANSPOSE_x : MIL_A_CONV_x),
                      *w = x ? k_req(k, tr ? MIL_A_CONV_TRANSPOSE_weight : MIL_A_CONV_weight) : NULL;
    if (!w) return MIL_K_ERROR;
    p->x = x; p->w = w; p->b = mil_k_in(k, tr ? MIL_A_CONV_TRANSPOSE_bias : MIL_A_CONV_bias);
    int rc;
    int64_t groups;
    if ((rc = k_need_float(k, x, "x")) || (rc = k_need_float(k, w, "weight"))) return rc;
    if (w->rank != x->rank)
        return mil_k_fail(k, "%s: weight rank %d does not match x rank %d", k_opname(k), w->rank, x->rank);
    if ((rc = geo_common(k, &p->g, x, w->dims + 2, tr ? MIL_A_CONV_TRANSPOSE_strides : MIL_A_CONV_strides,
                         tr ? MIL_A_CONV_TRANSPOSE_dilations : MIL_A_CONV_dilations)))
        return rc;
    if ((rc = k_arg_int(k, tr ? MIL_A_CONV_TRANSPOSE_groups : MIL_A_CONV_groups, 1, &groups))) return rc;
    if ((rc = pad_kind(k, tr ? MIL_A_CONV_TRANSPOSE_pad_type : MIL_A_CONV_pad_type, "valid", kind))) return rc;
    if (groups < 1 || p->g.Cin % groups)
        return mil_k_fail(k, "%s: groups %lld must divide C_in %lld", k_opname(k), (long long)groups,
                          (long long)p->g.Cin);
    p->g.G = groups;
    return 0;
}

/* The bias, when given, is a float vector of C_out values. */
static int conv_bias_check(MilKernelCtx *k, const ConvP *p) {
    int rc;
    if (!p->b) return 0;
    if ((rc = k_need_float(k, p->b, "bias"))) return rc;
    if (p->b->rank > 1 || k_numel(p->b) != p->g.Cout)
        return mil_k_fail(k, "%s: bias must have shape [%lld]", k_opname(k), (long long)p->g.Cout);
    return 0;
}

static int conv_params(MilKernelCtx *k, ConvP *p) {
    int rc, kind;
    if ((rc = conv_inputs(k, p, &kind))) return rc;
    const MilRtTensor *w = p->w;
    int64_t groups = p->g.G;
    p->g.Cout = w->dims[0];
    if (w->dims[1] * groups != p->g.Cin)
        return mil_k_fail(k, "conv: weight is [%lld, %lld, ...] but C_in / groups = %lld", (long long)w->dims[0],
                          (long long)w->dims[1], (long long)(p->g.Cin / groups));
    if (p->g.Cout % groups)
        return mil_k_fail(k, "conv: groups %lld must divide C_out %lld", (long long)groups, (long long)p->g.Cout);
    if ((rc = conv_bias_check(k, p))) return rc;
    return geo_forward(k, &p->g, kind, MIL_A_CONV_pad, false);
}

static int convt_params(MilKernelCtx *k, ConvP *p);

/* conv_params or convt_params, by k->kind. */
static int conv_any_params(MilKernelCtx *k, ConvP *p) {
    return k->kind == MIL_OP_CONV_TRANSPOSE ? convt_params(k, p) : conv_params(k, p);
}

/* conv and conv_transpose: [N, C_out, *out] */
int k_conv_shape(MilKernelCtx *k) {
    ConvP p;
    int rc = conv_any_params(k, &p);
    if (rc) return rc;
    geo_set_out(k, &p.g, p.x, p.g.Cout);
    return 0;
}

/* Elements of the column matrix: (C / G) * prod(kernel) rows, over the output
 * positions for conv (im2col), over the input positions for conv_transpose
 * (C = C_out, before col2im). */
static int64_t col_elems(const Geo *g, bool tr) {
    return ((tr ? g->Cout : g->Cin) / g->G) * prod3(g->ker) * prod3(tr ? g->in : g->out);
}

/* fp32 copies of x and weight, the column matrix, one batch of output. */
static size_t conv_scratch_p(const ConvP *p, bool tr) {
    const Geo *g = &p->g;
    return k_f32_need(p->x) + k_f32_need(p->w) + k_al64((size_t)col_elems(g, tr) * sizeof(float)) +
           k_al64((size_t)(g->Cout * prod3(g->out)) * sizeof(float));
}

size_t k_conv_scratch(const MilKernelCtx *k) {
    ConvP p;
    if (conv_any_params((MilKernelCtx *)k, &p)) return 0;
    return conv_scratch_p(&p, k->kind == MIL_OP_CONV_TRANSPOSE);
}

/* The run's start for conv and conv_transpose: parameters, scratch check and
 * the scratch carved into X, W (fp32 views), col and Y (see conv_scratch_p). */
static int conv_begin(MilKernelCtx *k, ConvP *p, const float **X, const float **W, float **col, float **Y) {
    int rc = conv_any_params(k, p);
    if (rc) return rc;
    bool tr = k->kind == MIL_OP_CONV_TRANSPOSE;
    if (k->scratch_size < conv_scratch_p(p, tr)) return mil_k_fail(k, "%s: scratch too small", k_opname(k));
    char *sp = k->scratch;
    *X = k_in_f32(k, tr ? MIL_A_CONV_TRANSPOSE_x : MIL_A_CONV_x, &sp);
    *W = k_in_f32(k, tr ? MIL_A_CONV_TRANSPOSE_weight : MIL_A_CONV_weight, &sp);
    *col = (float *)sp;
    sp += k_al64((size_t)col_elems(&p->g, tr) * sizeof(float));
    *Y = (float *)sp;
    return 0;
}

/* The run's end for one batch n: add the bias to Y and store it. */
static void conv_finish(MilKernelCtx *k, const ConvP *p, int64_t n, float *Y) {
    const Geo *g = &p->g;
    int64_t po = prod3(g->out);
    if (p->b)
        for (int64_t c = 0; c < g->Cout; c++) {
            float bv = (float)k_getf(p->b, c);
            for (int64_t i = 0; i < po; i++) Y[c * po + i] += bv;
        }
    k_storef(k->out[0], n * g->Cout * po, g->Cout * po, Y);
}

/* 1x1 conv epilogue: rows [m0, m1) are output channels: + bias, store. */
typedef struct {
    const ConvP *p;
    MilRtTensor *o;
    float *Y;
    int64_t base, po;
} ConvEpi;

static void conv_epi(void *arg, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const ConvEpi *c = arg;
    for (int64_t m = m0; m < m1; m++) {
        float *row = c->Y + m * c->po;
        if (c->p->b) {
            float bv = (float)k_getf(c->p->b, m);
            for (int64_t i = n0; i < n1; i++) row[i] += bv;
        }
        if (row != (float *)c->o->data + c->base + m * c->po)
            k_storef(c->o, c->base + m * c->po + n0, n1 - n0, row + n0);
    }
}

int k_conv_run(MilKernelCtx *k) {
    ConvP p;
    const float *X, *W;
    float *col, *Y;
    int rc = conv_begin(k, &p, &X, &W, &col, &Y);
    if (rc) return rc;
    const Geo *g = &p.g;
    int64_t cig = g->Cin / g->G, cog = g->Cout / g->G, pk = prod3(g->ker), po = prod3(g->out),
            pi = prod3(g->in), kk = cig * pk;
    bool pointwise = g->G == 1 && pk == 1 && po == pi && kk > 0;
    for (int a = 0; a < 3; a++)
        if (g->str[a] != 1 || g->pb[a] != 0 || g->pa[a] != 0) pointwise = false;
    if (pointwise) {
        /* 1x1: Y[Cout, P] = W[Cout, Cin] X[Cin, P] straight from x (no im2col), split over the pool */
        MilRtTensor *o = k->out[0];
        for (int64_t n = 0; n < g->N; n++) {
            float *dst = o->dtype == MIL_DT_FP32 ? (float *)o->data + n * g->Cout * po : Y;
            ConvEpi ce = {&p, o, dst, n * g->Cout * po, po};
            k_sgemm(k, false, false, g->Cout, po, kk, 1.0f, W, kk, X + n * g->Cin * pi, pi, 0.0f, dst, po,
                    (p.b || dst == Y) ? conv_epi : NULL, &ce);
        }
        return 0;
    }
    for (int64_t n = 0; n < g->N; n++) {
        for (int64_t gi = 0; gi < g->G; gi++) {
            /* im2col: rows (c, kd, kh, kw), columns (od, oh, ow) */
            for (int64_t c = 0; c < cig; c++) {
                const float *xc = X + (n * g->Cin + gi * cig + c) * pi;
                for (int64_t a = 0; a < g->ker[0]; a++)
                    for (int64_t b = 0; b < g->ker[1]; b++)
                        for (int64_t e = 0; e < g->ker[2]; e++) {
                            float *row = col + (((c * g->ker[0] + a) * g->ker[1] + b) * g->ker[2] + e) * po;
                            for (int64_t o0 = 0; o0 < g->out[0]; o0++) {
                                int64_t i0 = o0 * g->str[0] - g->pb[0] + a * g->dil[0];
                                for (int64_t o1 = 0; o1 < g->out[1]; o1++) {
                                    int64_t i1 = o1 * g->str[1] - g->pb[1] + b * g->dil[1];
                                    float *r = row + (o0 * g->out[1] + o1) * g->out[2];
                                    if (i0 < 0 || i0 >= g->in[0] || i1 < 0 || i1 >= g->in[1]) {
                                        memset(r, 0, (size_t)g->out[2] * sizeof(float));
                                        continue;
                                    }
                                    const float *xr = xc + (i0 * g->in[1] + i1) * g->in[2];
                                    for (int64_t o2 = 0; o2 < g->out[2]; o2++) {
                                        int64_t i2 = o2 * g->str[2] - g->pb[2] + e * g->dil[2];
                                        r[o2] = (i2 < 0 || i2 >= g->in[2]) ? 0.0f : xr[i2];
                                    }
                                }
                            }
                        }
            }
            if (kk == 0) memset(Y + gi * cog * po, 0, (size_t)(cog * po) * sizeof(float));
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cog, (int)po, (int)kk, 1.0f,
                            W + gi * cog * kk, (int)kk, col, (int)po, 0.0f, Y + gi * cog * po, (int)po);
        }
        conv_finish(k, &p, n, Y);
    }
    return 0;
}

/* ========================================================= conv_transpose */

static int convt_params(MilKernelCtx *k, ConvP *p) {
    int rc, kind;
    if ((rc = conv_inputs(k, p, &kind))) return rc;
    const MilRtTensor *x = p->x, *w = p->w;
    Geo *g = &p->g;
    if (w->dims[0] != g->Cin)
        return mil_k_fail(k, "conv_transpose: weight's first dimension %lld must equal C_in %lld",
                          (long long)w->dims[0], (long long)g->Cin);
    g->Cout = w->dims[1] * g->G;
    if ((rc = conv_bias_check(k, p))) return rc;
    int64_t pv[6], os[MIL_MAX_RANK];
    int nos;
    if ((rc = spatial_vec(k, kind == 1 ? MIL_A_CONV_TRANSPOSE_pad : -1, g->S, 0, pv, 2))) return rc;
    if (kind == 1 && !mil_k_in(k, MIL_A_CONV_TRANSPOSE_pad)) for (int i = 0; i < 6; i++) pv[i] = 0;
    if ((rc = k_arg_ints(k, MIL_A_CONV_TRANSPOSE_output_shape, os, MIL_MAX_RANK, &nos))) return rc;
    const int64_t *ospat = NULL;
    if (nos >= 0) {
        if (nos == x->rank) {
            if (os[0] != g->N || os[1] != g->Cout)
                return mil_k_fail(k, "conv_transpose: output_shape must start with [N=%lld, C_out=%lld]",
                                  (long long)g->N, (long long)g->Cout);
            ospat = os + 2;
        } else if (nos == g->S) {
            ospat = os;
        } else {
            return mil_k_fail(k, "conv_transpose: output_shape must have %d or %d values", x->rank, g->S);
        }
    }
    int off = 3 - g->S;
    for (int i = 0; i < g->S; i++) {
        int a = off + i;
        int64_t dk = (g->ker[a] - 1) * g->dil[a] + 1, full = (g->in[a] - 1) * g->str[a] + dk, o;
        if (kind == 1) {
            g->pb[a] = pv[2 * i];
            g->pa[a] = pv[2 * i + 1];
            if (g->pb[a] < 0 || g->pa[a] < 0) return mil_k_fail(k, "conv_transpose: pad must be >= 0");
            o = ospat ? ospat[i] : full - g->pb[a] - g->pa[a];
        } else {
            o = ospat ? ospat[i] : (kind >= 2 ? g->in[a] * g->str[a] : full);
            int64_t tot = full - o;
            if (tot < 0 || kind == 0) tot = 0;
            g->pb[a] = kind == 2 ? tot / 2 : (kind == 3 ? tot - tot / 2 : 0);
            g->pa[a] = 0;
        }
        if (o <= 0) return mil_k_fail(k, "conv_transpose: spatial dimension %d has output size %lld", i, (long long)o);
        g->out[a] = o;
    }
    return 0;
}

int k_conv_t_shape(MilKernelCtx *k) { return k_conv_shape(k); }
size_t k_conv_t_scratch(const MilKernelCtx *k) { return k_conv_scratch(k); }

int k_conv_t_run(MilKernelCtx *k) {
    ConvP p;
    const float *X, *W;
    float *col, *Y;
    int rc = conv_begin(k, &p, &X, &W, &col, &Y);
    if (rc) return rc;
    const Geo *g = &p.g;
    int64_t cig = g->Cin / g->G, cog = g->Cout / g->G, pk = prod3(g->ker), pi = prod3(g->in),
            po = prod3(g->out), kk = cog * pk;
    for (int64_t n = 0; n < g->N; n++) {
        memset(Y, 0, (size_t)(g->Cout * po) * sizeof(float));
        for (int64_t gi = 0; gi < g->G; gi++) {
            /* col[(co, k), i] = sum_ci W[ci, co, k] x[ci, i] */
            if (cig == 0) continue;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, (int)pi, (int)cig, 1.0f,
                        W + gi * cig * kk, (int)kk, X + (n * g->Cin + gi * cig) * pi, (int)pi, 0.0f, col,
                        (int)pi);
            for (int64_t co = 0; co < cog; co++) {
                float *yc = Y + (gi * cog + co) * po;
                for (int64_t a = 0; a < g->ker[0]; a++)
                    for (int64_t b = 0; b < g->ker[1]; b++)
                        for (int64_t e = 0; e < g->ker[2]; e++) {
                            const float *row = col + (((co * g->ker[0] + a) * g->ker[1] + b) * g->ker[2] + e) * pi;
                            for (int64_t i0 = 0; i0 < g->in[0]; i0++) {
                                int64_t o0 = i0 * g->str[0] + a * g->dil[0] - g->pb[0];
                                if (o0 < 0 || o0 >= g->out[0]) continue;
                                for (int64_t i1 = 0; i1 < g->in[1]; i1++) {
                                    int64_t o1 = i1 * g->str[1] + b * g->dil[1] - g->pb[1];
                                    if (o1 < 0 || o1 >= g->out[1]) continue;
                                    const float *r = row + (i0 * g->in[1] + i1) * g->in[2];
                                    float *yr = yc + (o0 * g->out[1] + o1) * g->out[2];
                                    for (int64_t i2 = 0; i2 < g->in[2]; i2++) {
                                        int64_t o2 = i2 * g->str[2] + e * g->dil[2] - g->pb[2];
                                        if (o2 >= 0 && o2 < g->out[2]) yr[o2] += r[i2];
                                    }
                                }
                            }
                        }
            }
        }
        conv_finish(k, &p, n, Y);
    }
    return 0;
}

/* ================================================================ pooling */

typedef struct {
    Geo g;
    bool excl;
} PoolP;

static int pool_params(MilKernelCtx *k, PoolP *p) {
    bool avg = k->kind == MIL_OP_AVG_POOL;
    int sx = avg ? MIL_A_AVG_POOL_x : MIL_A_MAX_POOL_x, sks = avg ? MIL_A_AVG_POOL_kernel_sizes : MIL_A_MAX_POOL_kernel_sizes,
        sst = avg ? MIL_A_AVG_POOL_strides : MIL_A_MAX_POOL_strides, spt = avg ? MIL_A_AVG_POOL_pad_type : MIL_A_MAX_POOL_pad_type,
        spd = avg ? MIL_A_AVG_POOL_pad : MIL_A_MAX_POOL_pad, scm = avg ? MIL_A_AVG_POOL_ceil_mode : MIL_A_MAX_POOL_ceil_mode;
    const MilRtTensor *x = k_req(k, sx);
    if (!x || !k_req(k, sks) || !k_req(k, spt)) return MIL_K_ERROR;
    int rc, kind, nk;
    bool ceil_mode;
    int64_t ks[MIL_MAX_RANK];
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if ((rc = k_arg_ints(k, sks, ks, MIL_MAX_RANK, &nk))) return rc;
    if (nk != x->rank - 2)
        return mil_k_fail(k, "%s: kernel_sizes must have %d values, got %d", k_opname(k), x->rank - 2, nk);
    if ((rc = geo_common(k, &p->g, x, ks, sst, -1))) return rc;
    p->g.G = 1;
    p->g.Cout = p->g.Cin;
    if ((rc = pad_kind(k, spt, "valid", &kind))) return rc;
    if ((rc = k_arg_bool(k, scm, false, &ceil_mode))) return rc;
    p->excl = false;
    if (avg && (rc = k_arg_bool(k, MIL_A_AVG_POOL_exclude_padding_from_average, false, &p->excl))) return rc;
    return geo_forward(k, &p->g, kind, spd, ceil_mode && kind < 2);
}

int k_pool_shape(MilKernelCtx *k) {
    PoolP p;
    int rc = pool_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, k->kind == MIL_OP_AVG_POOL ? MIL_A_AVG_POOL_x : MIL_A_MAX_POOL_x);
    geo_set_out(k, &p.g, x, p.g.Cin);
    return 0;
}

int k_pool_run(MilKernelCtx *k) {
    PoolP p;
    int rc = pool_params(k, &p);
    if (rc) return rc;
    bool avg = k->kind == MIL_OP_AVG_POOL;
    const MilRtTensor *x = mil_k_in(k, avg ? MIL_A_AVG_POOL_x : MIL_A_MAX_POOL_x);
    const Geo *g = &p.g;
    int64_t pi = prod3(g->in), po = prod3(g->out);
    for (int64_t nc = 0; nc < g->N * g->Cin; nc++) {
        int64_t xb = nc * pi, ob = nc * po;
        for (int64_t o0 = 0; o0 < g->out[0]; o0++)
            for (int64_t o1 = 0; o1 < g->out[1]; o1++)
                for (int64_t o2 = 0; o2 < g->out[2]; o2++) {
                    int64_t st[3] = {o0 * g->str[0] - g->pb[0], o1 * g->str[1] - g->pb[1], o2 * g->str[2] - g->pb[2]};
                    int64_t lo[3], hi[3], incl = 1;
                    for (int a = 0; a < 3; a++) {
                        int64_t en = st[a] + g->ker[a];
                        if (en > g->in[a] + g->pa[a]) en = g->in[a] + g->pa[a];
                        incl *= en - st[a];
                        lo[a] = st[a] < 0 ? 0 : st[a];
                        hi[a] = en > g->in[a] ? g->in[a] : en;
                    }
                    double acc = avg ? 0.0 : -INFINITY;
                    int64_t cnt = 0;
                    for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                        for (int64_t i1 = lo[1]; i1 < hi[1]; i1++)
                            for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) {
                                double v = k_getf(x, xb + (i0 * g->in[1] + i1) * g->in[2] + i2);
                                if (avg) acc += v;
                                else if (v > acc || v != v) acc = v;
                                cnt++;
                            }
                    if (avg) {
                        int64_t div = p.excl ? cnt : incl;
                        acc = div > 0 ? acc / (double)div : 0.0;
                    }
                    float f = (float)acc;
                    k_storef(k->out[0], ob + (o0 * g->out[1] + o1) * g->out[2] + o2, 1, &f);
                }
    }
    return 0;
}
