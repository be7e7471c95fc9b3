/* runtime/cpu/k_extra.c -- einsum, upsample_bilinear, l2_pool, sliding_windows.
 *
 * einsum: any number of operands (coremltools emits 1 or 2), explicit ("->")
 *   or implicit output, repeated labels (diagonals, traces), no ellipsis; a
 *   plain loop over the output and contracted labels with fp64 accumulation.
 * upsample_bilinear: last two axes scaled by floor(D * scale); sampling grid
 *   (coremltools, spacing recomputed from the sizes): align_corners
 *   i * (in - 1) / (out - 1); half_pixel_centers (default: !align_corners)
 *   clamp((i + .5) * in / out - .5, 0, in - 1); otherwise min(i * in / out, in - 1).
 * l2_pool: sqrt(sum of x^2) over each window (padding contributes nothing);
 *   pooling geometry as avg_pool / max_pool (valid, same, same_lower, custom,
 *   ceil_mode), 1 to 3 spatial dimensions.
 * sliding_windows: x[..., N, ...] -> [..., (N - size) / stride + 1, size, ...]. */
#include "runtime/cpu/kutil.h"

KDECLS(k_einsum) KDECL(k_upsample_bilinear) KDECL(k_l2_pool) KDECL(k_sliding_windows)

/* ================================================================= einsum */

#define EIN_MAXOP 8
#define EIN_MAXL 52

typedef struct {
    int nop;
    const MilRtTensor *v[EIN_MAXOP];
    int nl;                        /* distinct labels: [0, nout) output, then contracted */
    int nout;
    char lab[EIN_MAXL];
    int64_t dim[EIN_MAXL];
    int64_t st[EIN_MAXOP][EIN_MAXL]; /* element stride of label l in operand j (summed over repeats) */
    MilDType odt;
} EinP;

static int ein_find(const EinP *p, char c) {
    for (int i = 0; i < p->nl; i++)
        if (p->lab[i] == c) return i;
    return -1;
}

static int ein_params(MilKernelCtx *k, EinP *p) {
    memset(p, 0, sizeof *p);
    const char *eq;
    int rc;
    if (!k_req(k, MIL_A_EINSUM_values) || !k_req(k, MIL_A_EINSUM_equation)) return MIL_K_ERROR;
    if ((rc = k_arg_str(k, MIL_A_EINSUM_equation, "", &eq))) return rc;
    p->nop = k->slot_n[MIL_A_EINSUM_values];
    if (p->nop > EIN_MAXOP) return mil_k_fail(k, "einsum: at most %d operands", EIN_MAXOP);
    bool anyf32 = false;
    for (int j = 0; j < p->nop; j++) {
        p->v[j] = k->slot[MIL_A_EINSUM_values][j];
        if ((rc = k_need_float(k, p->v[j], "values"))) return rc;
        anyf32 |= p->v[j]->dtype == MIL_DT_FP32;
    }
    p->odt = anyf32 ? MIL_DT_FP32 : p->v[0]->dtype;
    /* terms */
    char terms[EIN_MAXOP][MIL_MAX_RANK + 1], out[EIN_MAXL + 1];
    int nt = 0, tl = 0;
    bool explicit_out = false;
    int nout = 0;
    const char *s = eq;
    memset(terms, 0, sizeof terms);
    for (; *s; s++) {
        char c = *s;
        if (c == ' ') continue;
        if (c == '.') return mil_k_fail(k, "einsum: ellipsis ('...') is not supported in \"%s\"", eq);
        if (c == ',') {
            if (++nt >= p->nop) return mil_k_fail(k, "einsum: \"%s\" has more terms than the %d operands", eq, p->nop);
            tl = 0;
            continue;
        }
        if (c == '-' && s[1] == '>') { explicit_out = true; s += 2; break; }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return mil_k_fail(k, "einsum: unexpected character '%c' in \"%s\"", c, eq);
        if (tl >= MIL_MAX_RANK) return mil_k_fail(k, "einsum: term %d of \"%s\" is too long", nt, eq);
        terms[nt][tl++] = c;
    }
    if (nt + 1 != p->nop) return mil_k_fail(k, "einsum: \"%s\" has %d terms for %d operands", eq, nt + 1, p->nop);
    if (explicit_out) {
        for (; *s; s++) {
            char c = *s;
            if (c == ' ') continue;
            if (c == '.') return mil_k_fail(k, "einsum: ellipsis ('...') is not supported in \"%s\"", eq);
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                return mil_k_fail(k, "einsum: unexpected character '%c' in \"%s\"", c, eq);
            for (int i = 0; i < nout; i++)
                if (out[i] == c) return mil_k_fail(k, "einsum: output label '%c' repeated in \"%s\"", c, eq);
            if (nout >= MIL_MAX_RANK) return mil_k_fail(k, "einsum: output of \"%s\" has too many labels", eq);
            out[nout++] = c;
        }
    } else {
        int cnt[128] = {0};
        for (int j = 0; j < p->nop; j++)
            for (const char *q = terms[j]; *q; q++) cnt[(int)*q]++;
        for (int c = 0; c < 128; c++)
            if (cnt[c] == 1) {
                if (nout >= MIL_MAX_RANK) return mil_k_fail(k, "einsum: output of \"%s\" has too many labels", eq);
                out[nout++] = (char)c;
            }
    }
    /* labels: output first, then the contracted ones */
    for (int i = 0; i < nout; i++) { p->lab[p->nl] = out[i]; p->dim[p->nl++] = -1; }
    p->nout = nout;
    for (int j = 0; j < p->nop; j++)
        for (const char *q = terms[j]; *q; q++)
            if (ein_find(p, *q) < 0) { p->lab[p->nl] = *q; p->dim[p->nl++] = -1; }
    for (int j = 0; j < p->nop; j++) {
        const MilRtTensor *v = p->v[j];
        int r = (int)strlen(terms[j]);
        if (r != v->rank)
            return mil_k_fail(k, "einsum: term \"%s\" has %d labels but operand %d has rank %d", terms[j], r, j, v->rank);
        int64_t cst[MIL_MAX_RANK];
        k_contig_strides(v->rank, v->dims, cst);
        for (int a = 0; a < r; a++) {
            int l = ein_find(p, terms[j][a]);
            if (p->dim[l] >= 0 && p->dim[l] != v->dims[a])
                return mil_k_fail(k, "einsum: label '%c' has sizes %lld and %lld", terms[j][a], (long long)p->dim[l],
                                  (long long)v->dims[a]);
            p->dim[l] = v->dims[a];
            p->st[j][l] += cst[a];
        }
    }
    for (int i = 0; i < nout; i++)
        if (p->dim[i] < 0) return mil_k_fail(k, "einsum: output label '%c' does not appear in an input", p->lab[i]);
    return 0;
}

int k_einsum_shape(MilKernelCtx *k) {
    EinP p;
    int rc = ein_params(k, &p);
    if (rc) return rc;
    k_set_shape(k->out[0], p.odt, p.nout, p.dim);
    return 0;
}

size_t k_einsum_scratch(const MilKernelCtx *k) {
    size_t n = 0;
    for (int j = 0; j < k->slot_n[MIL_A_EINSUM_values]; j++)
        n += k_al64((size_t)k_numel(k->slot[MIL_A_EINSUM_values][j]) * sizeof(float));
    return n;
}

int k_einsum_run(MilKernelCtx *k) {
    EinP p;
    int rc = ein_params(k, &p);
    if (rc) return rc;
    if (k->scratch_size < k_einsum_scratch(k)) return mil_k_fail(k, "einsum: scratch too small");
    char *sp = k->scratch;
    const float *buf[EIN_MAXOP];
    for (int j = 0; j < p.nop; j++) {
        float *b = (float *)sp;
        k_tof32(p.v[j], b);
        buf[j] = b;
        sp += k_al64((size_t)k_numel(p.v[j]) * sizeof(float));
    }
    int64_t nouter = k_prod(p.dim, 0, p.nout), ninner = k_prod(p.dim, p.nout, p.nl);
    MilRtTensor *o = k->out[0];
    int64_t oidx[EIN_MAXL] = {0};
    for (int64_t of = 0; of < nouter; of++) {
        int64_t base[EIN_MAXOP] = {0};
        for (int j = 0; j < p.nop; j++)
            for (int i = 0; i < p.nout; i++) base[j] += oidx[i] * p.st[j][i];
        double acc = 0;
        int64_t cidx[EIN_MAXL] = {0}, off[EIN_MAXOP];
        for (int j = 0; j < p.nop; j++) off[j] = base[j];
        for (int64_t c = 0; c < ninner; c++) {
            double prod = 1;
            for (int j = 0; j < p.nop; j++) prod *= buf[j][off[j]];
            acc += prod;
            /* odometer over the contracted labels */
            for (int i = p.nl - 1; i >= p.nout; i--) {
                if (++cidx[i] < p.dim[i]) {
                    for (int j = 0; j < p.nop; j++) off[j] += p.st[j][i];
                    break;
                }
                cidx[i] = 0;
                for (int j = 0; j < p.nop; j++) off[j] -= (p.dim[i] - 1) * p.st[j][i];
            }
        }
        float f = (float)acc;
        k_storef(o, of, 1, &f);
        for (int i = p.nout - 1; i >= 0; i--) {
            if (++oidx[i] < p.dim[i]) break;
            oidx[i] = 0;
        }
    }
    return 0;
}

/* ====================================================== upsample_bilinear */

typedef struct {
    const MilRtTensor *x;
    int64_t hin, win, hout, wout;
    bool ac, hp;
} UpP;

static int up_params(MilKernelCtx *k, UpP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_UPSAMPLE_BILINEAR_x);
    if (!x) return MIL_K_ERROR;
    p->x = x;
    int rc;
    double sh, sw;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if (x->rank < 3) return mil_k_fail(k, "upsample_bilinear: x must have rank >= 3, got %d", x->rank);
    if ((rc = k_arg_float(k, MIL_A_UPSAMPLE_BILINEAR_scale_factor_height, 1, &sh)) ||
        (rc = k_arg_float(k, MIL_A_UPSAMPLE_BILINEAR_scale_factor_width, 1, &sw)) ||
        (rc = k_arg_bool(k, MIL_A_UPSAMPLE_BILINEAR_align_corners, false, &p->ac)) ||
        (rc = k_arg_bool(k, MIL_A_UPSAMPLE_BILINEAR_half_pixel_centers, !p->ac, &p->hp)))
        return rc;
    if (p->ac && p->hp)
        return mil_k_fail(k, "upsample_bilinear: align_corners and half_pixel_centers cannot both be true");
    if (!(sh > 0) || !(sw > 0)) return mil_k_fail(k, "upsample_bilinear: scale factors must be > 0");
    p->hin = x->dims[x->rank - 2];
    p->win = x->dims[x->rank - 1];
    p->hout = (int64_t)floor((double)p->hin * sh);
    p->wout = (int64_t)floor((double)p->win * sw);
    if (p->hout < 1 || p->wout < 1)
        return mil_k_fail(k, "upsample_bilinear: output size %lldx%lld is empty", (long long)p->hout,
                          (long long)p->wout);
    return 0;
}

int k_upsample_bilinear_shape(MilKernelCtx *k) {
    UpP p;
    int rc = up_params(k, &p);
    if (rc) return rc;
    k_set_shape(k->out[0], p.x->dtype, p.x->rank, p.x->dims);
    k->out[0]->dims[p.x->rank - 2] = p.hout;
    k->out[0]->dims[p.x->rank - 1] = p.wout;
    return 0;
}

static void up_grid(const UpP *p, int64_t in, int64_t out, int64_t i, int64_t *i0, int64_t *i1, double *fr) {
    double g;
    if (p->ac) g = out > 1 ? (double)i * (double)(in - 1) / (double)(out - 1) : 0.0;
    else if (p->hp) g = ((double)i + 0.5) * (double)in / (double)out - 0.5;
    else g = (double)i * (double)in / (double)out;
    if (g < 0) g = 0;
    if (g > (double)(in - 1)) g = (double)(in - 1);
    *i0 = (int64_t)floor(g);
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *fr = g - (double)*i0;
}

int k_upsample_bilinear_run(MilKernelCtx *k) {
    UpP p;
    int rc = up_params(k, &p);
    if (rc) return rc;
    int64_t plane = p.hin * p.win;
    if (plane == 0) return 0;
    int64_t planes = k_numel(p.x) / plane;
    MilRtTensor *o = k->out[0];
    float row[KCHUNK];
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t xb = pl * p.hin * p.win, ob = pl * p.hout * p.wout;
        for (int64_t y = 0; y < p.hout; y++) {
            int64_t y0, y1;
            double fy;
            up_grid(&p, p.hin, p.hout, y, &y0, &y1, &fy);
            for (int64_t xs = 0; xs < p.wout; xs += KCHUNK) {
                int64_t n = p.wout - xs < KCHUNK ? p.wout - xs : KCHUNK;
                for (int64_t q = 0; q < n; q++) {
                    int64_t x0, x1;
                    double fx;
                    up_grid(&p, p.win, p.wout, xs + q, &x0, &x1, &fx);
                    double a = k_getf(p.x, xb + y0 * p.win + x0), b = k_getf(p.x, xb + y0 * p.win + x1);
                    double c = k_getf(p.x, xb + y1 * p.win + x0), d = k_getf(p.x, xb + y1 * p.win + x1);
                    double top = a + (b - a) * fx, bot = c + (d - c) * fx;
                    row[q] = (float)(top + (bot - top) * fy);
                }
                k_storef(o, ob + y * p.wout + xs, n, row);
            }
        }
    }
    return 0;
}

/* ================================================================ l2_pool */

typedef struct {
    const MilRtTensor *x;
    int S;
    int64_t NC, in[3], ker[3], str[3], pb[3], pa[3], out[3];
} L2P;

static int l2_params(MilKernelCtx *k, L2P *p) {
    const MilRtTensor *x = k_req(k, MIL_A_L2_POOL_x);
    if (!x || !k_req(k, MIL_A_L2_POOL_kernel_sizes) || !k_req(k, MIL_A_L2_POOL_pad_type)) return MIL_K_ERROR;
    p->x = x;
    int rc, nk, ns, np;
    const char *pt;
    bool ceil_mode;
    int64_t ks[6], st[6], pv[6];
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if (x->rank < 3 || x->rank > 5)
        return mil_k_fail(k, "l2_pool: x must have rank 3 to 5 ([N, C, *D]), got %d", x->rank);
    p->S = x->rank - 2;
    if ((rc = k_arg_ints(k, MIL_A_L2_POOL_kernel_sizes, ks, 6, &nk)) ||
        (rc = k_arg_ints(k, MIL_A_L2_POOL_strides, st, 6, &ns)) || (rc = k_arg_ints(k, MIL_A_L2_POOL_pad, pv, 6, &np)) ||
        (rc = k_arg_str(k, MIL_A_L2_POOL_pad_type, "valid", &pt)) ||
        (rc = k_arg_bool(k, MIL_A_L2_POOL_ceil_mode, false, &ceil_mode)))
        return rc;
    if (nk != p->S) return mil_k_fail(k, "l2_pool: kernel_sizes must have %d values, got %d", p->S, nk);
    if (ns >= 0 && ns != p->S) return mil_k_fail(k, "l2_pool: strides must have %d values, got %d", p->S, ns);
    int kind;
    if (!strcmp(pt, "valid")) kind = 0;
    else if (!strcmp(pt, "custom")) kind = 1;
    else if (!strcmp(pt, "same")) kind = 2;
    else if (!strcmp(pt, "same_lower")) kind = 3;
    else return mil_k_fail(k, "l2_pool: unknown pad_type \"%s\"", pt);
    if (kind == 1 && np >= 0 && np != 2 * p->S)
        return mil_k_fail(k, "l2_pool: pad must have %d values, got %d", 2 * p->S, np);
    p->NC = x->dims[0] * x->dims[1];
    int off = 3 - p->S;
    for (int a = 0; a < 3; a++) { p->in[a] = p->ker[a] = p->str[a] = p->out[a] = 1; p->pb[a] = p->pa[a] = 0; }
    for (int i = 0; i < p->S; i++) {
        int a = off + i;
        int64_t in = x->dims[2 + i], kk = ks[i], s = ns >= 0 ? st[i] : 1;
        if (kk < 1 || s < 1) return mil_k_fail(k, "l2_pool: kernel sizes and strides must be >= 1");
        p->in[a] = in; p->ker[a] = kk; p->str[a] = s;
        if (kind == 1 && np >= 0) {
            p->pb[a] = pv[2 * i];
            p->pa[a] = pv[2 * i + 1];
            if (p->pb[a] < 0 || p->pa[a] < 0) return mil_k_fail(k, "l2_pool: pad must be >= 0");
        } else if (kind >= 2) {
            int64_t tot = ((in + s - 1) / s - 1) * s + kk - in;
            if (tot < 0) tot = 0;
            p->pb[a] = kind == 2 ? tot / 2 : tot - tot / 2;
            p->pa[a] = tot - p->pb[a];
        }
        int64_t span = in + p->pb[a] + p->pa[a] - kk, o;
        if (kind >= 2) o = (in + s - 1) / s;
        else if (!ceil_mode) o = span < 0 ? 0 : span / s + 1;
        else {
            o = span < 0 ? 0 : (span + s - 1) / s + 1;
            /* the last window must start inside the input or the leading padding */
            if (o > 0 && (o - 1) * s >= in + p->pb[a]) o--;
        }
        if (o <= 0 || span < 0)
            return mil_k_fail(k, "l2_pool: spatial dimension %d has no valid output (input %lld, kernel %lld)", i,
                              (long long)in, (long long)kk);
        p->out[a] = o;
    }
    return 0;
}

int k_l2_pool_shape(MilKernelCtx *k) {
    L2P p;
    int rc = l2_params(k, &p);
    if (rc) return rc;
    int64_t dims[MIL_MAX_RANK] = {p.x->dims[0], p.x->dims[1]};
    for (int i = 0; i < p.S; i++) dims[2 + i] = p.out[3 - p.S + i];
    k_set_shape(k->out[0], p.x->dtype, p.x->rank, dims);
    return 0;
}

int k_l2_pool_run(MilKernelCtx *k) {
    L2P p;
    int rc = l2_params(k, &p);
    if (rc) return rc;
    int64_t pi = p.in[0] * p.in[1] * p.in[2], po = p.out[0] * p.out[1] * p.out[2];
    for (int64_t nc = 0; nc < p.NC; nc++) {
        int64_t xb = nc * pi, ob = nc * po;
        for (int64_t o0 = 0; o0 < p.out[0]; o0++)
            for (int64_t o1 = 0; o1 < p.out[1]; o1++)
                for (int64_t o2 = 0; o2 < p.out[2]; o2++) {
                    int64_t ov[3] = {o0, o1, o2}, lo[3], hi[3];
                    for (int a = 0; a < 3; a++) {
                        int64_t s0 = ov[a] * p.str[a] - p.pb[a], e0 = s0 + p.ker[a];
                        lo[a] = s0 < 0 ? 0 : s0;
                        hi[a] = e0 > p.in[a] ? p.in[a] : e0;
                    }
                    double acc = 0;
                    for (int64_t i0 = lo[0]; i0 < hi[0]; i0++)
                        for (int64_t i1 = lo[1]; i1 < hi[1]; i1++)
                            for (int64_t i2 = lo[2]; i2 < hi[2]; i2++) {
                                double v = k_getf(p.x, xb + (i0 * p.in[1] + i1) * p.in[2] + i2);
                                acc += v * v;
                            }
                    float f = (float)sqrt(acc);
                    k_storef(k->out[0], ob + (o0 * p.out[1] + o1) * p.out[2] + o2, 1, &f);
                }
    }
    return 0;
}

/* ======================================================== sliding_windows */

typedef struct {
    const MilRtTensor *x;
    int axis;
    int64_t size, stride, nw;
} SwP;

static int sw_params(MilKernelCtx *k, SwP *p) {
    const MilRtTensor *x = k_req(k, MIL_A_SLIDING_WINDOWS_x);
    if (!x || !k_req(k, MIL_A_SLIDING_WINDOWS_axis) || !k_req(k, MIL_A_SLIDING_WINDOWS_size)) return MIL_K_ERROR;
    p->x = x;
    int rc;
    int64_t ax;
    if ((rc = k_arg_int(k, MIL_A_SLIDING_WINDOWS_axis, 0, &ax)) ||
        (rc = k_arg_int(k, MIL_A_SLIDING_WINDOWS_size, 1, &p->size)) ||
        (rc = k_arg_int(k, MIL_A_SLIDING_WINDOWS_stride, 1, &p->stride)))
        return rc;
    if (k_esize(x->dtype) == 0)
        return mil_k_fail(k, "sliding_windows: unsupported dtype %s", k_dtname(x->dtype));
    if (x->rank < 1) return mil_k_fail(k, "sliding_windows: x must have rank >= 1");
    if (x->rank + 1 > MIL_MAX_RANK) return mil_k_fail(k, "sliding_windows: the result would exceed rank %d", MIL_MAX_RANK);
    if ((rc = k_norm_axis(k, ax, x->rank, &p->axis))) return rc;
    int64_t n = x->dims[p->axis];
    if (p->size < 1 || p->stride < 1) return mil_k_fail(k, "sliding_windows: size and stride must be >= 1");
    if (p->size > n)
        return mil_k_fail(k, "sliding_windows: size %lld is larger than the axis (%lld)", (long long)p->size,
                          (long long)n);
    p->nw = (n - p->size) / p->stride + 1;
    return 0;
}

int k_sliding_windows_shape(MilKernelCtx *k) {
    SwP p;
    int rc = sw_params(k, &p);
    if (rc) return rc;
    int64_t dims[MIL_MAX_RANK];
    int r = 0;
    for (int a = 0; a < p.x->rank; a++) {
        if (a == p.axis) { dims[r++] = p.nw; dims[r++] = p.size; }
        else dims[r++] = p.x->dims[a];
    }
    k_set_shape(k->out[0], p.x->dtype, r, dims);
    return 0;
}

int k_sliding_windows_run(MilKernelCtx *k) {
    SwP p;
    int rc = sw_params(k, &p);
    if (rc) return rc;
    int64_t outer = k_prod(p.x->dims, 0, p.axis), inner = k_prod(p.x->dims, p.axis + 1, p.x->rank),
            n = p.x->dims[p.axis];
    size_t es = k_esize(p.x->dtype), row = (size_t)inner * es;
    const char *src = p.x->data;
    char *dst = k->out[0]->data;
    if (row == 0) return 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t w = 0; w < p.nw; w++)
            for (int64_t s = 0; s < p.size; s++) {
                const char *from = src + (size_t)(o * n + w * p.stride + s) * row;
                memcpy(dst, from, row);
                dst += row;
            }
    return 0;
}
