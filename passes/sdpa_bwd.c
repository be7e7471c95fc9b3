/* passes/sdpa_bwd.c -- fuse the attention-backward subgraph into the
 * multi-output extension op sdpa_backward (docs/ane-notes.md §13.4,
 * kSdpaBwd1 + kSdpaBwd2):
 *
 *   dV = matmul(P, dO, transpose_x = true)
 *   dP = matmul(dO, V, transpose_y = true)
 *   dS = P * (dP - reduce_sum(P * dP, axes = [-1], keep_dims = true)) * scale
 *   dQ = matmul(dS, K)
 *   dK = matmul(dS, Q, transpose_x = true)
 *     -> dQ, dK, dV = sdpa_backward(query = Q, key = K, value = V, d_out = dO,
 *                                   probs = P, scale = scale)
 *
 * P is whatever value holds the probabilities (recomputed in the graph or a
 * function input); the op gets it as `probs`.  The scale may sit on either
 * factor of the product (or on the product), as a multiplication or a
 * division by a scalar constant.  dO may come from anything (for instance the output
 * projection's Wo^T); that part stays outside.  Rooted at the dQ matmul.
 *
 * Forms covered by differential tests (test/passes/test_diff.c): P recomputed
 * by softmax (data/attn_bwd.mil), P given as a function input
 * (data/attn_bwd_probs.mil), and dO = heads of dY @ Wo, i.e. preceded by the
 * output projection's Wo^T (data/attn_bwd_wo.mil; that matmul becomes a conv
 * at -O2 and feeds d_out through one reshape + transpose).  Not recognised:
 * a backward written with explicit transpose ops instead of the
 * transpose_x / transpose_y flags -- it stays decomposed (correct, unfused).
 */
#include <string.h>

#include "passes/pass_int.h"

static MilOp *def_of(MilValue *v, MilOpKind k) { return v && v->def && v->def->kind == k ? v->def : NULL; }

static bool flags(const MilOp *mm, bool tx, bool ty) {
    return arg_bool(mm, "transpose_x", false) == tx && arg_bool(mm, "transpose_y", false) == ty;
}

/* v == a * b (either order); returns the factor other than `known` (or both when known is NULL) */
static bool mul_pair(MilValue *v, MilValue **a, MilValue **b) {
    MilOp *d = def_of(v, MIL_OP_MUL);
    if (!d) return false;
    *a = arg_value(d, "x");
    *b = arg_value(d, "y");
    return *a && *b;
}

/* peel a multiplication by (or a division by) a scalar constant */
static MilValue *peel_scale(MilValue *v, double *scale) {
    MilOp *d = def_of(v, MIL_OP_MUL);
    double c;
    MilOp *dv = def_of(v, MIL_OP_REAL_DIV);
    if (dv && arg_float(dv, "y", &c) && c != 0 && arg_value(dv, "x")) { *scale /= c; return arg_value(dv, "x"); }
    if (!d) return v;
    if (arg_float(d, "y", &c) && arg_value(d, "x")) { *scale *= c; return arg_value(d, "x"); }
    if (arg_float(d, "x", &c) && arg_value(d, "y")) { *scale *= c; return arg_value(d, "y"); }
    return v;
}

/* u == dP - reduce_sum(P * dP, -1, keep) */
static bool match_centered(MilValue *u, MilValue *P, MilValue **dP) {
    MilOp *sub = def_of(u, MIL_OP_SUB);
    if (!sub) return false;
    MilValue *a = arg_value(sub, "x"), *r = arg_value(sub, "y");
    MilOp *rs = def_of(r, MIL_OP_REDUCE_SUM);
    if (!a || !rs || !arg_bool(rs, "keep_dims", false)) return false;
    int64_t ax[MIL_MAX_RANK];
    if (arg_ints(rs, "axes", ax, MIL_MAX_RANK) != 1 || !ty_known(a->type)) return false;
    if (ax[0] != -1 && ax[0] != a->type->rank - 1) return false;
    MilValue *m1, *m2;
    if (!mul_pair(arg_value(rs, "x"), &m1, &m2)) return false;
    if (!((m1 == P && m2 == a) || (m2 == P && m1 == a))) return false;
    *dP = a;
    return true;
}

/* dS == P * (dP - rowsum(P * dP)) * scale; the scale (a multiplication or
 * a division by a scalar constant) on the product, on the centred factor or
 * on the P factor. */
static bool match_ds(MilValue *dS, MilValue **P, MilValue **dP, double *scale) {
    *scale = 1.0;
    MilValue *x = peel_scale(dS, scale), *a, *b;
    if (!mul_pair(x, &a, &b)) return false;
    for (int k = 0; k < 2; k++)
        for (int peel_p = 0; peel_p < 2; peel_p++) {
            double s2 = *scale;
            MilValue *p = k ? b : a, *u = k ? a : b;
            if (peel_p) {
                MilValue *pp = peel_scale(p, &s2);
                if (pp == p) continue;
                p = pp;
            }
            MilValue *uu = peel_scale(u, &s2);
            if (match_centered(uu, p, dP)) {
                *P = p;
                *scale = s2;
                return true;
            }
        }
    return false;
}

static MilOp *find_user(MilFunc *f, MilValue *v, MilOpKind k, const char *arg, bool tx, bool ty) {
    for (MilOp *op = f->body.first; op; op = op->next)
        if (op->kind == k && arg_value(op, arg) == v && flags(op, tx, ty)) return op;
    return NULL;
}

/* matmul(dS, K) with its dK, dV siblings -> sdpa_backward */
static bool rule_sdpa_bwd(MilFunc *f, MilOp *op, void *ctx) {
    if (!flags(op, false, false)) return false;
    MilValue *dS = arg_value(op, "x"), *K = arg_value(op, "y");
    MilValue *P, *dP;
    double scale;
    if (!dS || !K || !match_ds(dS, &P, &dP, &scale)) return false;
    MilOp *dpmm = def_of(dP, MIL_OP_MATMUL);
    if (!dpmm || !flags(dpmm, false, true)) return false;
    MilValue *dO = arg_value(dpmm, "x"), *V = arg_value(dpmm, "y");
    MilOp *dk = find_user(f, dS, MIL_OP_MATMUL, "x", true, false);
    MilOp *dv = find_user(f, P, MIL_OP_MATMUL, "x", true, false);
    if (!dO || !V || !dk || !dv || arg_value(dv, "y") != dO) return false;
    MilValue *Q = arg_value(dk, "y");
    if (!Q) return false;
    /* every intermediate must be defined before the fused op, which goes before
       the first of the three results */
    MilOp *at = op;
    for (MilOp *s = f->body.first; s; s = s->next)
        if (s == op || s == dk || s == dv) { at = s; break; }
    for (MilOp *s = at; s; s = s->next)
        if (s == Q->def || s == K->def || s == V->def || s == dO->def || s == P->def) return false;

    MilOp *bw = pb_op(f, MIL_OP_SDPA_BACKWARD, op->loc);
    mil_op_add_arg(bw, "d_out", dO);
    mil_op_add_arg(bw, "key", K);
    mil_op_add_arg(bw, "probs", P);
    mil_op_add_arg(bw, "query", Q);
    mil_op_add_arg(bw, "scale", pb_const_scalar(f, at, ty_tensor(Q->type) ? Q->type->dtype : MIL_DT_FP32, scale, "scale"));
    mil_op_add_arg(bw, "value", V);
    pb_finish(f, bw, at, "sdpa_bwd");
    if (bw->nresults != 3 || bw->results[0]->type != op->results[0]->type ||
        bw->results[1]->type != dk->results[0]->type || bw->results[2]->type != dv->results[0]->type)
        return false;
    mil_func_rename_value(f, bw->results[0], pass_unique_name(f, "dq"));
    mil_func_rename_value(f, bw->results[1], pass_unique_name(f, "dk"));
    mil_func_rename_value(f, bw->results[2], pass_unique_name(f, "dv"));
    bool ok = replace_value(f, op->results[0], bw->results[0]);
    ok &= replace_value(f, dk->results[0], bw->results[1]);
    ok &= replace_value(f, dv->results[0], bw->results[2]);
    return ok;
}

static const MilRule sdpa_bwd_rules[] = {
    {MIL_OP_MATMUL, rule_sdpa_bwd, "sdpa-backward"},   /* dQ, dK, dV of softmax(QK^T s)V -> sdpa_backward */
};

int mil_pass_sdpa_bwd(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++) n += mil_rewrite_fixpoint(p->funcs[i], sdpa_bwd_rules, 1, NULL);
    return n > 0;
}
