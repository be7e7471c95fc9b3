/* examples/train/model.c -- mil-train's model as MIL, built with the IR
 * builder API (ir/ir.h), differentiated by mil_grad (passes/passes.h).
 *
 * Every op is appended with a NULL result type and typed by shape inference
 * (mil_shape_infer_op), the builder convention of passes/passes.h; values
 * get readable names because the forward taps, and so the backward inputs,
 * are named after them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/train/model.h"

const char *const layer_param_names[LP_COUNT] = {
    "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w3", "w2",
};

/* ------------------------------------------------------------ parameters */

static void add_param(ParamInfo *t, int *n, size_t *off, const char *name, const char *input, int rank,
                      int64_t d0, int64_t d1, bool decay, int layer) {
    ParamInfo *p = &t[(*n)++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->input = input;
    p->rank = rank;
    p->dims[0] = d0;
    p->dims[1] = rank > 1 ? d1 : 1;
    p->numel = (size_t)d0 * (size_t)p->dims[1];
    p->offset = *off;
    p->decay = decay;
    p->layer = layer;
    *off += p->numel;
}

size_t model_params(const ModelConfig *c, ParamInfo **out, int *n) {
    int64_t V = c->vocab, D = c->dim, F = c->ffn;
    ParamInfo *t = calloc((size_t)c->layers * LP_COUNT + 4, sizeof *t);   /* + emb, pos, final_norm, wcls */
    size_t off = 0;
    *n = 0;
    if (!t) return 0;
    add_param(t, n, &off, "emb", "emb", 2, V, D, false, -1);
    add_param(t, n, &off, "pos", "pos", 2, c->seq, D, false, -1);
    for (int l = 0; l < c->layers; l++) {
        int64_t dims[LP_COUNT][3] = {
            {1, D, 0}, {2, D, D}, {2, D, D}, {2, D, D}, {2, D, D}, {1, D, 0}, {2, F, D}, {2, F, D}, {2, D, F},
        };
        for (int k = 0; k < LP_COUNT; k++) {
            char name[32];
            snprintf(name, sizeof name, "l%d.%s", l, layer_param_names[k]);
            add_param(t, n, &off, name, layer_param_names[k], (int)dims[k][0], dims[k][1], dims[k][2],
                      dims[k][0] == 2, l);
        }
    }
    add_param(t, n, &off, "final_norm", "final_norm", 1, D, 0, false, -1);
    add_param(t, n, &off, "wcls", "wcls", 2, V, D, true, -1);
    *out = t;
    return off;
}

/* ---------------------------------------------------------------- builder */

typedef struct Bld {
    MilProgram *p;
    MilFunc *f;
    MilDType dt;      /* floating-point storage */
    bool cf;          /* MODEL_LAYOUT_ANE: layer I/O channel-first [1, C, 1, N] */
    MilDiag *d;
    int errors;
} Bld;

static MilValue *cst(Bld *b, MilConst *c, const char *base) {
    MilOp *op = mil_op_new(b->f, MIL_OP_CONST, NULL);
    MilValue *v = mil_op_add_result(op, c->type, mil_func_unique_name(b->f, base));
    mil_op_set_attr(op, "name", mil_const_string(b->p, v->name));
    mil_op_set_attr(op, "val", c);
    mil_block_append(&b->f->body, op);
    return v;
}

static MilValue *ints(Bld *b, int n, const int64_t *v, const char *base) {
    int32_t buf[8];
    int64_t len = n;
    for (int i = 0; i < n; i++) buf[i] = (int32_t)v[i];
    return cst(b, mil_const_tensor(b->p, mil_type_tensor(b->p, MIL_DT_INT32, 1, &len), buf, n), base);
}

static MilValue *scalar(Bld *b, double v, const char *base) {
    return cst(b, mil_const_scalar_float(b->p, b->dt, v), base);
}

/* Appends op, gives it one result named after base and types it. */
static MilValue *finish(Bld *b, MilOp *op, const char *base, const MilType *t) {
    MilValue *v = mil_op_add_result(op, t, mil_func_unique_name(b->f, base));
    mil_op_set_attr(op, "name", mil_const_string(b->p, v->name));
    mil_block_append(&b->f->body, op);
    if (!t) b->errors += mil_shape_infer_op(b->p, op, b->d);
    return v;
}

static MilValue *binary(Bld *b, MilOpKind k, MilValue *x, MilValue *y, const char *base) {
    MilOp *op = mil_op_new(b->f, k, NULL);
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", y);
    return finish(b, op, base, NULL);
}

static MilValue *unary(Bld *b, MilOpKind k, MilValue *x, const char *base) {
    MilOp *op = mil_op_new(b->f, k, NULL);
    mil_op_add_arg(op, "x", x);
    return finish(b, op, base, NULL);
}

/* x . W^T for W [out, in] (nn.Linear) */
static MilValue *linear(Bld *b, MilValue *x, MilValue *w, const char *base) {
    MilOp *op = mil_op_new(b->f, MIL_OP_MATMUL, NULL);
    mil_op_add_arg(op, "transpose_x", cst(b, mil_const_scalar_bool(b->p, false), "tx"));
    mil_op_add_arg(op, "transpose_y", cst(b, mil_const_scalar_bool(b->p, true), "ty"));
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", w);
    return finish(b, op, base, NULL);
}

static MilValue *matmul(Bld *b, MilValue *x, MilValue *y, bool ty, const char *base) {
    MilOp *op = mil_op_new(b->f, MIL_OP_MATMUL, NULL);
    mil_op_add_arg(op, "transpose_x", cst(b, mil_const_scalar_bool(b->p, false), "tx"));
    mil_op_add_arg(op, "transpose_y", cst(b, mil_const_scalar_bool(b->p, ty), "ty"));
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", y);
    return finish(b, op, base, NULL);
}

static MilValue *reshape(Bld *b, MilValue *x, int rank, const int64_t *dims, const char *base) {
    MilOp *op = mil_op_new(b->f, MIL_OP_RESHAPE, NULL);
    mil_op_add_arg(op, "shape", ints(b, rank, dims, "shape"));
    mil_op_add_arg(op, "x", x);
    return finish(b, op, base, NULL);
}

static MilValue *transpose(Bld *b, MilValue *x, int rank, const int64_t *perm, const char *base) {
    MilOp *op = mil_op_new(b->f, MIL_OP_TRANSPOSE, NULL);
    mil_op_add_arg(op, "perm", ints(b, rank, perm, "perm"));
    mil_op_add_arg(op, "x", x);
    return finish(b, op, base, NULL);
}

static MilValue *reduce(Bld *b, MilOpKind k, MilValue *x, int naxes, const int64_t *axes, bool keep,
                        const char *base) {
    MilOp *op = mil_op_new(b->f, k, NULL);
    mil_op_add_arg(op, "axes", ints(b, naxes, axes, "axes"));
    mil_op_add_arg(op, "keep_dims", cst(b, mil_const_scalar_bool(b->p, keep), "keep"));
    mil_op_add_arg(op, "x", x);
    return finish(b, op, base, NULL);
}

static MilValue *input(Bld *b, MilDType dt, int rank, const int64_t *dims, const char *name) {
    return mil_func_add_param(b->f, mil_type_tensor(b->p, dt, rank, dims), name);
}

static void begin(Bld *b, const char *name) {
    b->f = mil_func_new(b->p, name, "ios18");
}

/* x * rsqrt(mean(x^2, last axis) + eps) * gamma: the spelling the rmsnorm
 * pass recognises (passes/rmsnorm.c) */
static MilValue *rmsnorm(Bld *b, MilValue *x, MilValue *gamma, const char *base) {
    char nm[64];
    int64_t last = -1;
    MilValue *sq = binary(b, MIL_OP_MUL, x, x, "sq");
    MilValue *ms = reduce(b, MIL_OP_REDUCE_MEAN, sq, 1, &last, true, "ms");
    MilValue *r = unary(b, MIL_OP_RSQRT, binary(b, MIL_OP_ADD, ms, scalar(b, 1e-5, "eps"), "ms_eps"), "rrms");
    snprintf(nm, sizeof nm, "%s_hat", base);
    MilValue *xh = binary(b, MIL_OP_MUL, x, r, nm);
    return binary(b, MIL_OP_MUL, xh, gamma, base);
}

/* The same in the ANE layout: x [1, D, 1, N], gamma [1, D, 1, 1]; the mean
 * over the channel axis spelled reduce_sum * 1/D (ane-notes §13.2). */
static MilValue *rmsnorm_cf(Bld *b, MilValue *x, MilValue *gamma, int64_t D, const char *base) {
    char nm[64];
    int64_t ch = 1;
    MilValue *sq = binary(b, MIL_OP_MUL, x, x, "sq");
    MilValue *ss = reduce(b, MIL_OP_REDUCE_SUM, sq, 1, &ch, true, "ss");
    MilValue *ms = binary(b, MIL_OP_MUL, ss, scalar(b, 1.0 / (double)D, "inv_d"), "ms");
    MilValue *r = unary(b, MIL_OP_RSQRT, binary(b, MIL_OP_ADD, ms, scalar(b, 1e-5, "eps"), "ms_eps"), "rrms");
    snprintf(nm, sizeof nm, "%s_hat", base);
    MilValue *xh = binary(b, MIL_OP_MUL, x, r, nm);
    return binary(b, MIL_OP_MUL, xh, gamma, base);
}

/* W . x in the ANE layout: x [1, IN, 1, N], W [1, OUT, 1, IN] (the bytes of
 * nn.Linear's [OUT, IN]) -> [1, OUT, 1, N], as matmul(W [OUT, IN], x [IN, N]):
 * both operands are runtime inputs (weights are surfaces), so it stays a
 * matmul of two inputs (mm2conv turns only constant weights into convs). */
static MilValue *linear_cf(Bld *b, MilValue *x, MilValue *w, const char *base) {
    char nm[64];
    int64_t out = w->type->dims[1], in = w->type->dims[3], N = x->type->dims[3];
    int64_t wd[2] = {out, in}, xd[2] = {in, N}, yd[4] = {1, out, 1, N};
    snprintf(nm, sizeof nm, "%s_w", base);
    MilValue *wm = reshape(b, w, 2, wd, nm);
    snprintf(nm, sizeof nm, "%s_x", base);
    MilValue *xm = reshape(b, x, 2, xd, nm);
    snprintf(nm, sizeof nm, "%s_mm", base);
    return reshape(b, matmul(b, wm, xm, false, nm), 4, yd, base);
}

/* [B, S, D] <-> [1, D, 1, B*S]: the boundary between the CPU functions'
 * layout and the ANE layer's, as MIL (reshape + transpose). */
static MilValue *to_cf(Bld *b, MilValue *x, const ModelConfig *c, const char *base) {
    int64_t N = (int64_t)c->batch * c->seq, D = c->dim;
    int64_t nd[2] = {N, D}, perm[2] = {1, 0}, cf[4] = {1, D, 1, N};
    MilValue *t = transpose(b, reshape(b, x, 2, nd, "tok_major"), 2, perm, "ch_major");
    return reshape(b, t, 4, cf, base);
}

static MilValue *from_cf(Bld *b, MilValue *x, const ModelConfig *c, const char *base) {
    int64_t N = (int64_t)c->batch * c->seq, D = c->dim;
    int64_t dn[2] = {D, N}, perm[2] = {1, 0}, bsd[3] = {c->batch, c->seq, D};
    MilValue *t = transpose(b, reshape(b, x, 2, dn, "ch_major"), 2, perm, "tok_major");
    return reshape(b, t, 3, bsd, base);
}

/* ------------------------------------------------------------- functions */

static void build_embed(Bld *b, const ModelConfig *c) {
    int64_t bs[2] = {c->batch, c->seq}, vd[2] = {c->vocab, c->dim};
    begin(b, "embed");
    MilValue *tok = input(b, MIL_DT_INT32, 2, bs, "tokens");
    MilValue *emb = input(b, b->dt, 2, vd, "emb");
    int64_t sd[2] = {c->seq, c->dim};
    MilValue *pos = input(b, b->dt, 2, sd, "pos");
    MilOp *op = mil_op_new(b->f, MIL_OP_GATHER, NULL);
    mil_op_add_arg(op, "axis", cst(b, mil_const_scalar_int(b->p, MIL_DT_INT32, 0), "axis"));
    mil_op_add_arg(op, "indices", tok);
    mil_op_add_arg(op, "x", emb);
    /* token embedding + learned absolute position embedding */
    MilValue *x = binary(b, MIL_OP_ADD, finish(b, op, "tok_emb", NULL), pos, b->cf ? "x_bsd" : "x");
    mil_func_add_output(b->f, b->cf ? to_cf(b, x, c, "x") : x);
}

/* the layer's linear maps and norms in its layout */
static MilValue *layer_linear(Bld *b, MilValue *x, MilValue *w, const char *base) {
    return b->cf ? linear_cf(b, x, w, base) : linear(b, x, w, base);
}

static MilValue *layer_rmsnorm(Bld *b, MilValue *x, MilValue *gamma, int64_t D, const char *base) {
    return b->cf ? rmsnorm_cf(b, x, gamma, D, base) : rmsnorm(b, x, gamma, base);
}

/* One pre-norm layer: RMSNorm, causal multi-head attention, SwiGLU FFN,
 * residuals.  The model's layout: x [B, S, D], weights [OUT, IN] (nn.Linear),
 * norms [D].  The ANE layout (b->cf): every activation [1, C, 1, N] (N = B*S
 * tokens, channel-first, fp16 on the ANE), weights [1, OUT, 1, IN] (the same
 * bytes), norms [1, 1, 1, D]; attention splits heads per sequence with
 * reshape + transpose (ane-notes §13.3).  The same math either way. */
static void build_layer(Bld *b, const ModelConfig *c) {
    int64_t B = c->batch, S = c->seq, D = c->dim, NH = c->heads, HD = D / NH, F = c->ffn;
    bool cf = b->cf;
    int64_t xs[4] = {B, S, D}, nc[4] = {1, D, 1, 1};
    int xr = 3;
    if (cf) xs[0] = 1, xs[1] = D, xs[2] = 1, xs[3] = B * S, xr = 4;
    begin(b, "layer");
    MilValue *x = input(b, b->dt, xr, xs, "x");
    MilValue *w[LP_COUNT];
    for (int k = 0; k < LP_COUNT; k++) {
        bool norm = k == LP_ATTN_NORM || k == LP_FFN_NORM;
        int64_t out = k == LP_W1 || k == LP_W3 ? F : D, in = k == LP_W2 ? F : D;
        int64_t dims[4] = {out, in}, nd[4] = {1, 1, 1, D};
        if (cf) dims[0] = 1, dims[1] = out, dims[2] = 1, dims[3] = in;
        w[k] = norm ? input(b, b->dt, cf ? 4 : 1, cf ? nd : &D, layer_param_names[k])
                    : input(b, b->dt, cf ? 4 : 2, dims, layer_param_names[k]);
        /* a norm weight arrives as [1, 1, 1, D] (its last axis 64-byte aligned
         * like every surface's) and broadcasts over the tokens as [1, D, 1, 1] */
        if (cf && norm) w[k] = reshape(b, w[k], 4, nc, k == LP_ATTN_NORM ? "attn_gamma" : "ffn_gamma");
    }

    /* attention: heads [B, NH, S, HD], from [B, S, D] or [1, D, 1, B*S] */
    MilValue *h = layer_rmsnorm(b, x, w[LP_ATTN_NORM], D, "xn1");
    int64_t split[4] = {B, S, NH, HD}, perm[4] = {0, 2, 1, 3}, back[4] = {0, 2, 1, 3};
    if (cf) {
        int64_t s2[4] = {NH, HD, B, S}, p2[4] = {2, 0, 3, 1}, b2[4] = {1, 3, 0, 2};
        memcpy(split, s2, sizeof split), memcpy(perm, p2, sizeof perm), memcpy(back, b2, sizeof back);
    }
    MilValue *qkv[3];
    static const char *qn[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "%s_lin", qn[i]);
        MilValue *t = layer_linear(b, h, w[LP_WQ + i], nm);
        snprintf(nm, sizeof nm, "%s_split", qn[i]);
        qkv[i] = transpose(b, reshape(b, t, 4, split, nm), 4, perm, qn[i]);
    }
    /* causal mask: 0 on and below the diagonal, -65504 above (fp16's lowest) */
    float *m = malloc(sizeof(float) * (size_t)(S * S));
    uint16_t *mh = malloc(sizeof(uint16_t) * (size_t)(S * S));
    for (int64_t i = 0; i < S; i++)
        for (int64_t j = 0; j < S; j++) {
            m[i * S + j] = j > i ? -65504.0f : 0.0f;
            mh[i * S + j] = mil_f32_to_fp16(m[i * S + j]);
        }
    int64_t ss[2] = {S, S};
    MilValue *mask = cst(b, mil_const_tensor(b->p, mil_type_tensor(b->p, b->dt, 2, ss),
                                             b->dt == MIL_DT_FP16 ? (void *)mh : (void *)m, S * S), "mask");
    free(m);
    free(mh);
    MilValue *sc = matmul(b, qkv[0], qkv[1], true, "scores");
    sc = binary(b, MIL_OP_MUL, sc, scalar(b, 1.0 / sqrt((double)HD), "scale"), "scores_scaled");
    sc = binary(b, MIL_OP_ADD, sc, mask, "scores_masked");
    MilOp *sm = mil_op_new(b->f, MIL_OP_SOFTMAX, NULL);
    mil_op_add_arg(sm, "axis", cst(b, mil_const_scalar_int(b->p, MIL_DT_INT32, -1), "axis"));
    mil_op_add_arg(sm, "x", sc);
    MilValue *probs = finish(b, sm, "probs", NULL);
    MilValue *att = matmul(b, probs, qkv[2], false, "att");
    att = reshape(b, transpose(b, att, 4, back, "att_t"), xr, xs, "att_merged");
    MilValue *x2 = binary(b, MIL_OP_ADD, x, layer_linear(b, att, w[LP_WO], "att_out"), "x2");

    /* SwiGLU FFN */
    MilValue *h2 = layer_rmsnorm(b, x2, w[LP_FFN_NORM], D, "xn2");
    MilValue *h1 = layer_linear(b, h2, w[LP_W1], "h1");
    MilValue *h3 = layer_linear(b, h2, w[LP_W3], "h3");
    MilValue *gate = binary(b, MIL_OP_MUL, unary(b, MIL_OP_SILU, h1, "h1_silu"), h3, "gate");
    MilValue *y = binary(b, MIL_OP_ADD, x2, layer_linear(b, gate, w[LP_W2], "ffn_out"), "y");
    mil_func_add_output(b->f, y);
}

/* final norm + classifier; returns the logits [B,S,V] */
static MilValue *classifier(Bld *b, const ModelConfig *c, MilValue **x_out) {
    int64_t xs[3] = {c->batch, c->seq, c->dim}, vd[2] = {c->vocab, c->dim}, D = c->dim;
    int64_t cf[4] = {1, D, 1, (int64_t)c->batch * c->seq};
    MilValue *x = b->cf ? input(b, b->dt, 4, cf, "x") : input(b, b->dt, 3, xs, "x");
    MilValue *fn = input(b, b->dt, 1, &D, "final_norm");
    MilValue *wcls = input(b, b->dt, 2, vd, "wcls");
    *x_out = x;
    if (b->cf) x = from_cf(b, x, c, "x_bsd");
    return linear(b, rmsnorm(b, x, fn, "xnf"), wcls, "logits");
}

/* loss = mean over tokens of logsumexp(logits) - logits[target] */
static void build_head(Bld *b, const ModelConfig *c) {
    int64_t bs[2] = {c->batch, c->seq}, bsv[3] = {c->batch, c->seq, c->vocab};
    begin(b, "head");
    MilValue *x;
    MilValue *logits = classifier(b, c, &x);
    MilValue *tgt = input(b, MIL_DT_INT32, 2, bs, "targets");
    /* the classifier inputs come first: x, final_norm, wcls, targets */
    MilOp *oh = mil_op_new(b->f, MIL_OP_ONE_HOT, NULL);
    mil_op_add_arg(oh, "axis", cst(b, mil_const_scalar_int(b->p, MIL_DT_INT32, -1), "axis"));
    mil_op_add_arg(oh, "indices", tgt);
    mil_op_add_arg(oh, "off_value", scalar(b, 0.0, "off"));
    mil_op_add_arg(oh, "on_value", scalar(b, 1.0, "on"));
    mil_op_add_arg(oh, "one_hot_vector_size", cst(b, mil_const_scalar_int(b->p, MIL_DT_INT32, c->vocab), "vsize"));
    MilValue *onehot = finish(b, oh, "onehot", mil_type_tensor(b->p, b->dt, 3, bsv));
    int64_t last = -1, all[2] = {0, 1};
    MilValue *lse = reduce(b, MIL_OP_REDUCE_LOG_SUM_EXP, logits, 1, &last, false, "lse");
    MilValue *picked = reduce(b, MIL_OP_REDUCE_SUM, binary(b, MIL_OP_MUL, logits, onehot, "masked"), 1, &last,
                              false, "picked");
    MilValue *nll = binary(b, MIL_OP_SUB, lse, picked, "nll");
    mil_func_add_output(b->f, reduce(b, MIL_OP_REDUCE_MEAN, nll, 2, all, false, "loss"));
    (void)x;
}

static void build_logits(Bld *b, const ModelConfig *c) {
    begin(b, "logits");
    MilValue *x;
    mil_func_add_output(b->f, classifier(b, c, &x));
}

MilProgram *model_build(const ModelConfig *c, ModelMode mode, ModelLayout layout, unsigned parts, MilDiag *d) {
    MilProgram *p = mil_program_new("1.3");
    if (!p) return NULL;
    p->trailing_newline = true;
    Bld b = {.p = p, .dt = c->dtype, .cf = layout == MODEL_LAYOUT_ANE, .d = d};
    if (parts & MODEL_PART_OUTER) build_embed(&b, c);
    if (parts & MODEL_PART_LAYER) {
        build_layer(&b, c);
    }
    if (parts & MODEL_PART_OUTER) {
        if (mode == MODEL_TRAIN) build_head(&b, c);
        else build_logits(&b, c);
    }
    if (b.errors || mil_verify(p, d)) {
        mil_program_free(p);
        return NULL;
    }
    return p;
}

/* ------------------------------------------------------------- gradients */

int model_grad(MilProgram *p, MilRecompute recompute, bool split_weight_grads, MilDiag *d) {
    static const struct { const char *func, *wrt, *loss; } g[] = {
        {"embed", "emb,pos", NULL},
        {"layer", NULL, NULL},
        {"head", "x,final_norm,wcls", NULL},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        if (!mil_program_find_func(p, g[i].func)) continue;   /* another part of the model */
        MilGradOptions o;
        mil_grad_options_init(&o);
        o.func = g[i].func;
        o.wrt = g[i].wrt;
        o.loss = g[i].loss;
        o.recompute = recompute;
        o.split_weight_grads = split_weight_grads && !strcmp(g[i].func, "layer");
        if (mil_grad(p, &o, d)) return d->nerrors ? d->nerrors : 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- kernels */

int kernel_input(const Kernel *k, const char *name) {
    for (int i = 0; i < k->f->ninputs; i++)
        if (!strcmp(k->f->values[k->f->inputs[i]].name, name)) return i;
    return -1;
}

int kernel_output(const Kernel *k, const char *name) {
    for (int i = 0; i < k->f->noutputs; i++)
        if (!strcmp(k->f->values[k->f->outputs[i]].name, name)) return i;
    return -1;
}

int kernel_run(Kernel *k, MilRtErr *e) {
    return mil_rt_plan_run_into(k->plan, k->in, k->out, e);
}
