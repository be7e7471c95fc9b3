/* passes/attention.c -- attention for the chosen target.
 *
 * --target=cpu: fuse decomposed attention into scaled_dot_product_attention
 *   matmul(softmax(matmul(q, k^T) * scale (+ mask), axis=-1), v)
 *     -> sdpa(query = q * (scale * sqrt(E)), key = k, value = v, attn_mask = mask)
 *   (SDPA's scale is fixed at 1/sqrt(E); another scale pre-multiplies q, and
 *   the multiplication disappears when the ratio is 1).  k^T may be written
 *   with transpose_y = true, an explicit transpose of the last two axes, or
 *   the scale as a division.
 *
 * --target=ane*: the ANE ignores attn_mask (docs/ane-notes.md §7.2), so an
 *   SDPA with a mask is decomposed into matmul / mul / add(mask) / softmax /
 *   matmul (§13.3).  A bool mask becomes an additive one (0 where true,
 *   -65504 elsewhere) -- a constant when the mask is constant (folded later).
 */
#include <math.h>
#include <string.h>

#include "passes/pass_int.h"

static MilOp *def_of(MilValue *v, MilOpKind k) { return v && v->def && v->def->kind == k ? v->def : NULL; }

static bool single_use(MilFunc *f, MilValue *v) { return v->nuses == 1 && !value_is_output(f, v); }

static bool swaps_last_two(const MilOp *tr) {
    int64_t perm[MIL_MAX_RANK];
    int n = arg_ints(tr, "perm", perm, MIL_MAX_RANK);
    if (n < 2) return false;
    for (int i = 0; i < n - 2; i++)
        if (perm[i] != i) return false;
    return perm[n - 2] == n - 1 && perm[n - 1] == n - 2;
}

/* matmul(softmax(scores), v) -> scaled_dot_product_attention */
static bool rule_fuse(MilFunc *f, MilOp *op, void *ctx) {
    if (arg_bool(op, "transpose_x", false) || arg_bool(op, "transpose_y", false)) return false;
    MilValue *probs = arg_value(op, "x"), *v = arg_value(op, "y");
    MilOp *sm = def_of(probs, MIL_OP_SOFTMAX);
    if (!sm || !v || !single_use(f, probs)) return false;
    MilValue *s = arg_value(sm, "x");
    if (!s || !ty_known(s->type)) return false;
    int64_t axis = -1;
    arg_int(sm, "axis", &axis);
    if (axis != -1 && axis != s->type->rank - 1) return false;

    MilValue *mask = NULL;
    MilOp *d;
    if ((d = def_of(s, MIL_OP_ADD)) && single_use(f, s)) {
        MilValue *a = arg_value(d, "x"), *b = arg_value(d, "y");
        if (!a || !b) return false;
        /* the scores side is the matmul / scaling chain */
        if (def_of(a, MIL_OP_MUL) || def_of(a, MIL_OP_REAL_DIV) || def_of(a, MIL_OP_MATMUL)) { s = a; mask = b; }
        else { s = b; mask = a; }
        if (!single_use(f, s)) return false;
    }
    double scale = 1.0;
    if ((d = def_of(s, MIL_OP_MUL)) || (d = def_of(s, MIL_OP_REAL_DIV))) {
        double c;
        MilValue *a = arg_value(d, "x");
        if (d->kind == MIL_OP_MUL && arg_float(d, "x", &c)) a = arg_value(d, "y");
        else if (!arg_float(d, "y", &c)) return false;
        if (!a || !single_use(f, s)) return false;
        scale = d->kind == MIL_OP_REAL_DIV ? 1.0 / c : c;
        s = a;
    }
    MilOp *qk = def_of(s, MIL_OP_MATMUL);
    if (!qk || !single_use(f, s) || arg_bool(qk, "transpose_x", false)) return false;
    MilValue *q = arg_value(qk, "x"), *k = arg_value(qk, "y");
    if (!q || !k || !ty_known(q->type) || !ty_known(v->type)) return false;
    int r = q->type->rank;
    if (r < 3 || k->type->rank != r || v->type->rank != r) return false;
    /* same batch dims (no broadcasting inside SDPA) */
    for (int i = 0; i < r - 2; i++)
        if (q->type->dims[i] != k->type->dims[i] || q->type->dims[i] != v->type->dims[i]) return false;
    if (!arg_bool(qk, "transpose_y", false)) {
        MilOp *tr = def_of(k, MIL_OP_TRANSPOSE);
        if (tr && swaps_last_two(tr)) {
            k = arg_value(tr, "x");
        } else {
            int64_t perm[MIL_MAX_RANK];
            for (int i = 0; i < r; i++) perm[i] = i;
            perm[r - 2] = r - 1;
            perm[r - 1] = r - 2;
            k = pb_transpose(f, op, k, r, perm, "key");
        }
    }
    double E = (double)q->type->dims[r - 1];
    double ratio = scale * sqrt(E);
    if (fabs(ratio - 1.0) > 1e-3) {
        MilValue *c = pb_const_scalar(f, op, q->type->dtype, ratio, "q_scale");
        q = pb_binary(f, op, MIL_OP_MUL, q, c, "q_scaled");
    }
    MilOp *sd = pb_op(f, MIL_OP_SCALED_DOT_PRODUCT_ATTENTION, op->loc);
    if (mask) mil_op_add_arg(sd, "attn_mask", mask);
    mil_op_add_arg(sd, "key", k);
    mil_op_add_arg(sd, "query", q);
    mil_op_add_arg(sd, "value", v);
    MilValue *out = pb_finish(f, sd, op, op->results[0]->name);
    if (out->type != op->results[0]->type) return false;
    return replace_value(f, op->results[0], out);
}

/* sdpa(q, k, v, mask) -> softmax(q k^T / sqrt(E) + mask) v   (ANE: attn_mask is ignored) */
static bool rule_decompose(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *mask = arg_value(op, "attn_mask");
    const MilConst *mc = mil_op_const_arg(op, "attn_mask");
    if (!mask && !mc) return false;
    MilValue *q = arg_value(op, "query"), *k = arg_value(op, "key"), *v = arg_value(op, "value");
    if (!q || !k || !v || !ty_known(q->type)) return false;
    if (!mask) mask = pb_const(f, op, (MilConst *)mc, "mask");
    MilDType dt = q->type->dtype;
    if (mask->type->dtype == MIL_DT_BOOL) {
        MilOp *sel = pb_op(f, MIL_OP_SELECT, op->loc);
        mil_op_add_arg(sel, "a", pb_const_scalar(f, op, dt, 0.0, "zero"));
        mil_op_add_arg(sel, "b", pb_const_scalar(f, op, dt, -65504.0, "neg_inf"));
        mil_op_add_arg(sel, "cond", mask);
        mask = pb_finish(f, sel, op, "mask_add");
    }
    MilOp *mm = pb_op(f, MIL_OP_MATMUL, op->loc);
    mil_op_add_arg(mm, "transpose_x", pb_const_bool(f, op, false, "transpose_x"));
    mil_op_add_arg(mm, "transpose_y", pb_const_bool(f, op, true, "transpose_y"));
    mil_op_add_arg(mm, "x", q);
    mil_op_add_arg(mm, "y", k);
    MilValue *sc = pb_finish(f, mm, op, "scores");
    double E = (double)q->type->dims[q->type->rank - 1];
    sc = pb_binary(f, op, MIL_OP_MUL, sc, pb_const_scalar(f, op, dt, 1.0 / sqrt(E), "scale"), "scores_scaled");
    sc = pb_binary(f, op, MIL_OP_ADD, sc, mask, "scores_masked");
    MilOp *sm = pb_op(f, MIL_OP_SOFTMAX, op->loc);
    mil_op_add_arg(sm, "axis", pb_const_scalar(f, op, MIL_DT_INT32, -1, "axis"));
    mil_op_add_arg(sm, "x", sc);
    MilValue *pr = pb_finish(f, sm, op, "probs");
    MilOp *mv = pb_op(f, MIL_OP_MATMUL, op->loc);
    mil_op_add_arg(mv, "transpose_x", pb_const_bool(f, op, false, "transpose_x"));
    mil_op_add_arg(mv, "transpose_y", pb_const_bool(f, op, false, "transpose_y"));
    mil_op_add_arg(mv, "x", pr);
    mil_op_add_arg(mv, "y", v);
    MilValue *out = pb_finish(f, mv, op, op->results[0]->name);
    return replace_value(f, op->results[0], out);
}

static const MilRule fuse_rules[] = {
    {MIL_OP_MATMUL, rule_fuse, "attention-fuse"},   /* softmax(q k^T * s + m) v -> sdpa(q * s sqrt(E), k, v, m) */
};
static const MilRule ane_rules[] = {
    {MIL_OP_SCALED_DOT_PRODUCT_ATTENTION, rule_decompose, "sdpa-decompose"},   /* sdpa(q,k,v,m) -> softmax(q k^T/sqrt(E) + m) v */
};

int mil_pass_attention(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    int n = 0;
    bool ane = o && o->target != MIL_TARGET_CPU;
    for (int i = 0; i < p->nfuncs; i++)
        n += ane ? mil_rewrite_fixpoint(p->funcs[i], ane_rules, 1, NULL)
                 : mil_rewrite_fixpoint(p->funcs[i], fuse_rules, 1, NULL);
    return n > 0;
}
