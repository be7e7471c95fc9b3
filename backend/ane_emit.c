/* backend/ane_emit.c -- --emit=ane-mil: what Apple's in-memory compiler
 * (_ANEInMemoryModelDescriptor) wants (docs/mil-format.md §6, ane-notes §13):
 *
 *   DIR/model.mil            MIL text in the chosen spelling: 1.3 when any
 *                            function targets ios18 or later, else 1.0 (or
 *                            --spelling); milc extension ops (OPF_EXT in
 *                            ir/ops.def) expanded into standard MIL ops
 *   DIR/weights/weight.bin   MILBlob v2: every BLOBFILE constant (copied,
 *                            deduplicated) and every inline tensor above 64
 *                            bytes, referenced as
 *                            "@model_path/weights/weight.bin"
 *
 * Expansions (each new op gets a `name` attribute, constants are named const
 * ops, as the ANE projects write them):
 *   rms_norm(x, axes, epsilon, gamma)  ->  mul(x, x); reduce_sum(axes,
 *       keep_dims = true); mul(1/N); add(epsilon); pow(-0.5); mul(x, .);
 *       mul(., gamma)                      (ane-notes §13.2, no reduce_mean)
 *   sdpa_backward(query Q, key K, value V, d_out dO, attn_mask M, probs P,
 *       scale s)  ->  P = softmax(Q K^T s + M) unless given;
 *       dV = P^T dO; dP = dO V^T; dS = P (dP - sum(dP P, -1)); dQ = dS K s;
 *       dK = dS^T Q s
 *
 * Then what the ANE rejects or ignores (ane-notes §7.2), whatever -O level
 * and target the program was built for: masked scaled_dot_product_attention
 * decomposed with the mask added explicitly, conv(bias) split into conv +
 * add, matmul transpose flags given as named const ops. */
#include "backend/backend.h"
#include "passes/passes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANE_INLINE_MAX 64

typedef struct Ex {
    MilProgram *p;
    MilFunc *f;
    MilOp *at;          /* insert before this op */
    const char *base;   /* name prefix */
    MilDiag *d;
} Ex;

static const char *fresh(Ex *x, const char *suffix) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s_%s", x->base, suffix);
    return mil_func_unique_name(x->f, buf);
}

static MilValue *add_op(Ex *x, MilOp *op, const MilType *t, const char *suffix) {
    const char *n = fresh(x, suffix);
    mil_op_set_attr(op, "name", mil_const_string(x->p, n));
    MilValue *v = mil_op_add_result(op, t, n);
    mil_block_insert_before(&x->f->body, x->at, op);
    return v;
}

static MilValue *cst(Ex *x, MilConst *c, const char *suffix) {
    MilOp *op = mil_op_new(x->f, MIL_OP_CONST, NULL);
    const char *n = fresh(x, suffix);
    mil_op_set_attr(op, "name", mil_const_string(x->p, n));
    mil_op_set_attr(op, "val", c);
    MilValue *v = mil_op_add_result(op, c->type, n);
    mil_block_insert_before(&x->f->body, x->at, op);
    return v;
}

static MilValue *scalar(Ex *x, MilDType dt, double v, const char *suffix) {
    return cst(x, mil_const_scalar_float(x->p, dt, v), suffix);
}

static MilValue *bin(Ex *x, MilOpKind k, MilValue *a, MilValue *b, const MilType *t, const char *suffix) {
    MilOp *op = mil_op_new(x->f, k, NULL);
    mil_op_add_arg(op, "x", a);
    mil_op_add_arg(op, "y", b);
    return add_op(x, op, t, suffix);
}

static MilValue *matmul(Ex *x, MilValue *a, MilValue *b, bool tx, bool ty, const MilType *t, const char *suffix) {
    MilOp *op = mil_op_new(x->f, MIL_OP_MATMUL, NULL);
    char s1[64], s2[64];
    snprintf(s1, sizeof s1, "%s_tx", suffix);
    snprintf(s2, sizeof s2, "%s_ty", suffix);
    MilValue *vx = cst(x, mil_const_scalar_bool(x->p, tx), s1);
    MilValue *vy = cst(x, mil_const_scalar_bool(x->p, ty), s2);
    mil_op_add_arg(op, "transpose_x", vx);
    mil_op_add_arg(op, "transpose_y", vy);
    mil_op_add_arg(op, "x", a);
    mil_op_add_arg(op, "y", b);
    return add_op(x, op, t, suffix);
}

static MilValue *arg_value(Ex *x, const MilOp *op, const char *name, const char *suffix) {
    const MilArg *a = mil_op_arg(op, name);
    if (!a || a->n != 1) return NULL;
    if (a->items[0].value) return a->items[0].value;
    return cst(x, a->items[0].cst, suffix);
}

/* The last op's result takes over the old result's name. */
static void take_over(MilFunc *f, MilValue *old, MilValue *nv) {
    const char *name = old->name;
    mil_func_replace_uses(f, old, nv);
    mil_func_rename_value(f, nv, name);
    if (nv->def) mil_op_set_attr(nv->def, "name", mil_const_string(f->prog, name));
}

/* Argument `name` of op as a value of type bt (same elements, another
 * shape): a constant is folded into a named const of that shape, any other
 * value gets a reshape; unchanged when it already has shape bt. */
static MilValue *arg_reshaped(Ex *x, const MilOp *op, const char *name, const MilType *bt) {
    const MilArg *a = mil_op_arg(op, name);
    if (!a || a->n != 1) return NULL;
    MilValue *gv = a->items[0].value;
    const MilConst *c = gv ? mil_value_const(gv) : a->items[0].cst;
    const MilType *gt = gv ? gv->type : c ? c->type : NULL;
    if (!gt || gt->kind != MIL_TY_TENSOR) return arg_value(x, op, name, name);
    bt = mil_type_tensor(x->p, gt->dtype, bt->rank, bt->dims);
    bool same = gt->rank == bt->rank;
    for (int i = 0; same && i < bt->rank; i++) same = gt->dims[i] == bt->dims[i];
    if (same) return arg_value(x, op, name, name);
    if (c && c->kind == MIL_CONST_TENSOR) return cst(x, mil_const_tensor(x->p, bt, c->data, c->count), name);
    if (c && c->kind == MIL_CONST_BLOB) return cst(x, mil_const_blob(x->p, bt, c->blob_path, c->blob_offset), name);
    MilValue *g = arg_value(x, op, name, name);
    int32_t shp[MIL_MAX_RANK];
    for (int i = 0; i < bt->rank; i++) shp[i] = (int32_t)bt->dims[i];
    char sfx[64];
    snprintf(sfx, sizeof sfx, "%s_shape", name);
    MilOp *rs = mil_op_new(x->f, MIL_OP_RESHAPE, NULL);
    mil_op_add_arg(rs, "shape", cst(x, mil_const_tensor(x->p, mil_type_tensor(x->p, MIL_DT_INT32, 1, (int64_t[]){bt->rank}),
                                                        shp, bt->rank), sfx));
    mil_op_add_arg(rs, "x", g);
    snprintf(sfx, sizeof sfx, "%s_b", name);
    return add_op(x, rs, bt, sfx);
}

/* rms_norm's gamma has the shape of x over the normalised axes (in axis
 * order); the expanded mul needs it broadcastable against x: gamma's dims
 * at the normalised positions, 1 elsewhere ([C] -> [1, C, 1, 1] for axes [1]
 * of a rank-4 x). */
static MilValue *gamma_bcast(Ex *x, const MilOp *op, const MilType *t, const bool *red) {
    int64_t bd[MIL_MAX_RANK];
    for (int i = 0; i < t->rank; i++) bd[i] = red[i] ? t->dims[i] : 1;
    return arg_reshaped(x, op, "gamma", mil_type_tensor(x->p, t->dtype, t->rank, bd));
}

static int expand_rms_norm(Ex *x, MilOp *op) {
    MilValue *in = arg_value(x, op, "x", "x");
    const MilConst *axes = mil_op_const_arg(op, "axes");
    const MilConst *eps = mil_op_const_arg(op, "epsilon");
    const MilType *t = in ? in->type : NULL;
    if (!in || !axes || !t || t->kind != MIL_TY_TENSOR || axes->kind != MIL_CONST_TENSOR) {
        mil_error(x->d, op->loc, "rms_norm: cannot expand (x and constant axes needed)");
        return -1;
    }
    int64_t dims[MIL_MAX_RANK];
    int64_t n = 1;
    bool red[MIL_MAX_RANK] = {false};
    for (int i = 0; i < t->rank; i++) dims[i] = t->dims[i];
    for (int64_t i = 0; i < axes->count; i++) {
        int64_t a = mil_const_get_i64(axes, i);
        if (a < 0) a += t->rank;
        if (a < 0 || a >= t->rank || t->dims[a] < 0) {
            mil_error(x->d, op->loc, "rms_norm: cannot expand (axis %lld unknown or out of range)", (long long)a);
            return -1;
        }
        n *= t->dims[a];
        dims[a] = 1;
        red[a] = true;
    }
    MilDType dt = t->dtype;
    const MilType *rt = mil_type_tensor(x->p, dt, t->rank, dims);
    double e = eps ? mil_const_get_f64(eps, 0) : 0x1.4f8b58p-17;
    const MilArg *ea = mil_op_arg(op, "epsilon");
    MilValue *ev = ea && ea->n == 1 && ea->items[0].value && ea->items[0].value->type->kind == MIL_TY_TENSOR &&
                           ea->items[0].value->type->dtype == dt && ea->items[0].value->type->rank == 0
                       ? ea->items[0].value : scalar(x, dt, e, "eps");
    MilValue *sq = bin(x, MIL_OP_MUL, in, in, t, "sq");
    MilOp *rs = mil_op_new(x->f, MIL_OP_REDUCE_SUM, NULL);
    mil_op_add_arg(rs, "axes", arg_value(x, op, "axes", "axes"));
    mil_op_add_arg(rs, "keep_dims", cst(x, mil_const_scalar_bool(x->p, true), "keep_dims"));
    mil_op_add_arg(rs, "x", sq);
    MilValue *ss = add_op(x, rs, rt, "ss");
    MilValue *ms = bin(x, MIL_OP_MUL, ss, scalar(x, dt, 1.0 / (double)n, "invn"), rt, "ms");
    MilValue *me = bin(x, MIL_OP_ADD, ms, ev, rt, "mse");
    MilValue *rr = bin(x, MIL_OP_POW, me, scalar(x, dt, -0.5, "nhalf"), rt, "rrms");
    MilValue *out = bin(x, MIL_OP_MUL, in, rr, t, "xr");
    MilValue *g = mil_op_arg(op, "gamma") ? gamma_bcast(x, op, t, red) : NULL;
    if (g) out = bin(x, MIL_OP_MUL, out, g, op->results[0]->type, "xg");
    take_over(x->f, op->results[0], out);
    return 0;
}

static int expand_sdpa_backward(Ex *x, MilOp *op) {
    MilValue *q = arg_value(x, op, "query", "q"), *k = arg_value(x, op, "key", "k");
    MilValue *v = arg_value(x, op, "value", "v"), *dO = arg_value(x, op, "d_out", "dout");
    if (!q || !k || !v || !dO || op->nresults != 3 || q->type->kind != MIL_TY_TENSOR || k->type->kind != MIL_TY_TENSOR ||
        q->type->rank < 2 || k->type->rank != q->type->rank) {
        mil_error(x->d, op->loc, "sdpa_backward: cannot expand (query, key, value, d_out tensors of equal rank needed)");
        return -1;
    }
    const MilType *qt = q->type;
    int r = qt->rank;
    MilDType dt = qt->dtype;
    int64_t sd[MIL_MAX_RANK];
    for (int i = 0; i < r; i++) sd[i] = qt->dims[i];
    sd[r - 1] = k->type->dims[r - 2];
    const MilType *st = mil_type_tensor(x->p, dt, r, sd);   /* [.., Lq, Lk] */
    sd[r - 1] = 1;
    const MilType *rt = mil_type_tensor(x->p, dt, r, sd);   /* [.., Lq, 1] */
    const MilConst *sc = mil_op_const_arg(op, "scale");
    double s = sc ? mil_const_get_f64(sc, 0) : (qt->dims[r - 1] > 0 ? 1.0 / sqrt((double)qt->dims[r - 1]) : 1.0);
    MilValue *scale = scalar(x, dt, s, "scale");
    MilValue *P = arg_value(x, op, "probs", "probs");
    if (!P) {
        MilValue *S = matmul(x, q, k, false, true, st, "qk");
        S = bin(x, MIL_OP_MUL, S, scale, st, "scores");
        MilValue *M = arg_value(x, op, "attn_mask", "mask");
        if (M) S = bin(x, MIL_OP_ADD, S, M, st, "masked");
        MilOp *sm = mil_op_new(x->f, MIL_OP_SOFTMAX, NULL);
        mil_op_add_arg(sm, "axis", cst(x, mil_const_scalar_int(x->p, MIL_DT_INT32, -1), "axis"));
        mil_op_add_arg(sm, "x", S);
        P = add_op(x, sm, st, "probs");
    }
    MilValue *dV = matmul(x, P, dO, true, false, op->results[2]->type, "dv");
    MilValue *dP = matmul(x, dO, v, false, true, st, "dp");
    MilValue *pdp = bin(x, MIL_OP_MUL, dP, P, st, "pdp");
    MilOp *rs = mil_op_new(x->f, MIL_OP_REDUCE_SUM, NULL);
    mil_op_add_arg(rs, "axes", cst(x, mil_const_tensor(x->p, mil_type_tensor(x->p, MIL_DT_INT32, 1, (int64_t[]){1}),
                                                       (int32_t[]){-1}, 1), "axes"));
    mil_op_add_arg(rs, "keep_dims", cst(x, mil_const_scalar_bool(x->p, true), "keep_dims"));
    mil_op_add_arg(rs, "x", pdp);
    MilValue *sum = add_op(x, rs, rt, "rowsum");
    MilValue *cen = bin(x, MIL_OP_SUB, dP, sum, st, "centered");
    MilValue *dS = bin(x, MIL_OP_MUL, P, cen, st, "ds");
    MilValue *dSs = bin(x, MIL_OP_MUL, dS, scale, st, "ds_scaled");
    MilValue *dQ = matmul(x, dSs, k, false, false, op->results[0]->type, "dq");
    MilValue *dK = matmul(x, dSs, q, true, false, op->results[1]->type, "dk");
    take_over(x->f, op->results[0], dQ);
    take_over(x->f, op->results[1], dK);
    take_over(x->f, op->results[2], dV);
    return 0;
}

/* ------------------------------------------------ ANE legalisation
 * (docs/ane-notes.md §7.2): what the ANE compiler rejects or ignores,
 * rewritten whatever the -O level and target the program was built for. */

static void copy_arg(MilOp *to, const MilArg *a) {
    if (a->n == 1 && !a->variadic) {
        if (a->items[0].value) mil_op_add_arg(to, a->name, a->items[0].value);
        else mil_op_add_arg_const(to, a->name, a->items[0].cst);
    } else {
        mil_op_add_arg_tuple(to, a->name, a->n, a->items);
    }
}

/* conv(.., bias = b) -> add(conv(..), b as [1, C, 1, ..]): the ANE compiler
 * rejects conv's bias (§7.2). */
static int split_conv_bias(Ex *x, MilOp *op) {
    const MilType *ot = op->nresults == 1 ? op->results[0]->type : NULL;
    if (!ot || ot->kind != MIL_TY_TENSOR || ot->rank < 2 || ot->dims[1] < 0) {
        mil_error(x->d, op->loc, "conv: cannot split its bias for the ANE (output of known channels needed)");
        return -1;
    }
    int64_t bd[MIL_MAX_RANK];
    for (int i = 0; i < ot->rank; i++) bd[i] = i == 1 ? ot->dims[1] : 1;
    MilValue *b = arg_reshaped(x, op, "bias", mil_type_tensor(x->p, ot->dtype, ot->rank, bd));
    MilOp *cv = mil_op_new(x->f, op->kind, NULL);
    for (int i = 0; i < op->nargs; i++)
        if (strcmp(op->args[i].name, "bias")) copy_arg(cv, &op->args[i]);
    for (int i = 0; i < op->nattrs; i++)
        if (strcmp(op->attrs[i].name, "name")) mil_op_set_attr(cv, op->attrs[i].name, op->attrs[i].val);
    MilValue *c = add_op(x, cv, ot, "nobias");
    MilValue *out = bin(x, MIL_OP_ADD, c, b, ot, "bias_add");
    take_over(x->f, op->results[0], out);
    return 0;
}

/* matmul's transpose flags as named const ops, both given (§7.2). */
static void name_transposes(Ex *x, MilOp *op) {
    static const char *const flags[2] = {"transpose_x", "transpose_y"};
    for (int j = 0; j < 2; j++) {
        MilArg *a = NULL;
        for (int i = 0; i < op->nargs; i++)
            if (!strcmp(op->args[i].name, flags[j])) a = &op->args[i];
        if (a && a->n == 1 && a->items[0].value && mil_value_const(a->items[0].value)) continue;
        const MilConst *c = a && a->n == 1 ? a->items[0].cst : NULL;
        if (!c) {
            const MilAttr *at = mil_op_attr(op, flags[j]);
            c = at ? at->val : NULL;
        }
        bool v = c && c->kind == MIL_CONST_TENSOR && c->count == 1 && mil_const_get_i64(c, 0) != 0;
        if (a && a->n == 1 && a->items[0].value) continue;   /* a runtime flag: leave it to the checker */
        MilValue *cv = cst(x, mil_const_scalar_bool(x->p, v), flags[j]);
        if (a) {
            a->n = 1;
            a->variadic = false;
            a->items[0] = (MilBinding){.value = cv};
        } else {
            mil_op_add_arg(op, flags[j], cv);
        }
    }
}

/* The prefix for the names of the ops that replace op: its `name` attribute,
 * else its first result's name, else fallback. */
static const char *base_name(const MilOp *op, const char *fallback) {
    const MilAttr *na = mil_op_attr(op, "name");
    const char *base = na ? mil_const_get_str(na->val) : NULL;
    return base ? base : op->nresults ? op->results[0]->name : fallback;
}

/* The ANE rewrites of p, in place. */
static int ane_legalise(MilProgram *p, MilDiag *d) {
    int rc = 0;
    for (int fi = 0; fi < p->nfuncs; fi++) {
        MilFunc *f = p->funcs[fi];
        for (MilOp *op = f->body.first, *next; op; op = next) {
            next = op->next;
            Ex x = {p, f, op, base_name(op, op->opname), d};
            int r = 0;
            bool drop = false;
            if (op->kind == MIL_OP_SCALED_DOT_PRODUCT_ATTENTION && mil_op_arg(op, "attn_mask")) {
                /* what the attention pass could not decompose */
                mil_error(d, op->loc, "scaled_dot_product_attention: cannot decompose its attn_mask for the ANE "
                                      "(tensors of known shape needed)");
                r = -1;
            } else if (op->kind == MIL_OP_CONV && mil_op_arg(op, "bias")) {
                r = split_conv_bias(&x, op);
                drop = true;
            } else if (op->kind == MIL_OP_MATMUL) {
                name_transposes(&x, op);
            }
            if (r) rc = -1;
            else if (drop) mil_block_remove(&f->body, op);
        }
    }
    return rc;
}

/* Expands every OPF_EXT op of p in place. */
int mil_ane_expand_ext(MilProgram *p, MilDiag *d) {
    int rc = 0;
    for (int fi = 0; fi < p->nfuncs; fi++) {
        MilFunc *f = p->funcs[fi];
        for (MilOp *op = f->body.first, *next; op; op = next) {
            next = op->next;
            const MilOpInfo *info = mil_op_info(op->kind);
            if (!info || !(info->flags & OPF_EXT)) continue;
            Ex x = {p, f, op, base_name(op, info->name), d};
            int r;
            if (op->kind == MIL_OP_RMS_NORM) r = expand_rms_norm(&x, op);
            else if (op->kind == MIL_OP_SDPA_BACKWARD) r = expand_sdpa_backward(&x, op);
            else {
                mil_error(d, op->loc, "extension op '%s' has no expansion into standard MIL", info->name);
                r = -1;
            }
            if (r) rc = -1;
            else mil_block_remove(&f->body, op);
        }
    }
    return rc;
}

static bool later_than_ios17(const char *opset) {
    if (!opset || strncmp(opset, "ios", 3)) return false;
    return atoi(opset + 3) >= 18;
}

int mil_emit_ane_mil(MilProgram *p, const char *dir, const MilAneOptions *opt, MilDiag *d) {
    MilAneOptions none = {0};
    if (!opt) opt = &none;
    int errors0 = d->nerrors;
    /* The ANE ignores attn_mask (§7.2): the attention pass's ANE rule
     * decomposes masked SDPA with the mask added explicitly, whatever -O and
     * --target were. */
    MilPassOptions po;
    mil_pass_options_init(&po);
    po.target = MIL_TARGET_ANE;
    po.passes = "attention";
    if (mil_ane_expand_ext(p, d) || mil_pass_run(p, &po, d) || ane_legalise(p, d)) return -1;
    MilSpelling sp = opt->spelling;
    if (sp == MIL_SPELLING_SAME) {
        sp = MIL_SPELLING_1_0;
        for (int i = 0; i < p->nfuncs; i++)
            if (later_than_ios17(p->funcs[i]->opset)) sp = MIL_SPELLING_1_3;
    }
    p->version = mil_strdup(p, sp == MIL_SPELLING_1_3 ? "1.3" : "1.0");
    MilBundleOptions bo = {.spelling = sp,
                           .model_dir = opt->model_dir,
                           .weights_dir = opt->weights_dir,
                           .inline_max_bytes = ANE_INLINE_MAX,
                           .omit_empty_weights = true};
    if (d->nerrors > errors0 || mil_bundle_write(p, dir, &bo, d)) return -1;
    return 0;
}
