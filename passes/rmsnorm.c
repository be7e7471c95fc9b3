/* passes/rmsnorm.c -- fuse RMSNorm into the extension op rms_norm(x, axes,
 * epsilon, gamma) = x / sqrt(mean(x^2 over axes) + epsilon) * gamma.
 *
 * Recognised spellings (docs/ane-notes.md §13.2 and the usual exports):
 *   mul(x,x) -> reduce_sum(keep) -> mul(1/D) -> add(eps) -> pow(-0.5) -> mul(x,.) -> mul(w)
 *   square(x) -> reduce_mean(keep) -> add(eps) -> rsqrt -> mul(x,.) -> mul(w)
 *   x / sqrt(reduce_mean(x^2) + eps) * w
 * and the mixtures of these (x^2 as mul(x,x), square(x) or pow(x,2); the mean
 * as reduce_mean, reduce_sum times 1/D or reduce_sum divided by D; the
 * inverse root as pow(-0.5), rsqrt, or a division by sqrt / pow(0.5)), over
 * one axis: the channel axis of [1, C, 1, S] or the last axis.
 *
 * Three rules compose: the normalisation (a mul or real_div root) becomes
 * rms_norm without gamma; a following mul by a constant of D elements laid
 * along the normalised axis becomes its gamma.
 */
#include <math.h>
#include <string.h>

#include "passes/pass_int.h"

typedef struct Norm {
    MilValue *x;
    int axis;
    double eps;
} Norm;

static MilOp *def_of(MilValue *v, MilOpKind k) { return v && v->def && v->def->kind == k ? v->def : NULL; }

static bool is_const_eq(MilOp *op, const char *arg, double want, double rel) {
    const MilConst *c = mil_op_const_arg(op, arg);
    if (!c || c->kind != MIL_CONST_TENSOR || c->count != 1) return false;
    double v = mil_const_get_f64(c, 0);
    return fabs(v - want) <= rel * fabs(want);
}

/* sq == x^2 ; returns x */
static MilValue *square_of(MilValue *sq) {
    MilOp *d;
    if ((d = def_of(sq, MIL_OP_MUL))) {
        MilValue *a = arg_value(d, "x"), *b = arg_value(d, "y");
        return a && a == b ? a : NULL;
    }
    if ((d = def_of(sq, MIL_OP_SQUARE))) return arg_value(d, "x");
    if ((d = def_of(sq, MIL_OP_POW)) && is_const_eq(d, "y", 2.0, 0)) return arg_value(d, "x");
    return NULL;
}

/* One reduced axis with keep_dims; returns the normalised axis or -1. */
static int reduced_axis(MilOp *red, MilValue *x) {
    int64_t axes[MIL_MAX_RANK];
    if (!arg_bool(red, "keep_dims", false)) return -1;
    if (arg_ints(red, "axes", axes, MIL_MAX_RANK) != 1 || !ty_known(x->type)) return -1;
    int r = x->type->rank;
    int a = (int)(axes[0] < 0 ? axes[0] + r : axes[0]);
    if (a == r - 1 || (r == 4 && a == 1)) return a;
    return -1;
}

/* m == mean(x^2) over one axis */
static bool mean_sq(MilValue *m, Norm *n) {
    MilOp *d;
    if ((d = def_of(m, MIL_OP_REDUCE_MEAN))) {
        MilValue *x = square_of(arg_value(d, "x"));
        if (!x || (n->x && n->x != x)) return false;
        int a = reduced_axis(d, x);
        if (a < 0) return false;
        n->x = x;
        n->axis = a;
        return true;
    }
    /* reduce_sum(x^2) * (1/D)  or  reduce_sum(x^2) / D */
    MilOp *scale = def_of(m, MIL_OP_MUL);
    bool div = false;
    if (!scale && (scale = def_of(m, MIL_OP_REAL_DIV))) div = true;
    if (!scale) return false;
    MilValue *s = arg_value(scale, "x");
    const char *carg = "y";
    if (!def_of(s, MIL_OP_REDUCE_SUM) && !def_of(s, MIL_OP_REDUCE_SUM_SQUARE) && !div) {
        s = arg_value(scale, "y");
        carg = "x";
    }
    MilOp *rs = def_of(s, MIL_OP_REDUCE_SUM);
    MilValue *x = NULL;
    if (rs) x = square_of(arg_value(rs, "x"));
    else if ((rs = def_of(s, MIL_OP_REDUCE_SUM_SQUARE))) x = arg_value(rs, "x");
    if (!x || (n->x && n->x != x)) return false;
    int a = reduced_axis(rs, x);
    if (a < 0) return false;
    double D = (double)x->type->dims[a];
    if (!is_const_eq(scale, carg, div ? D : 1.0 / D, 2e-3)) return false;
    n->x = x;
    n->axis = a;
    return true;
}

/* v == mean(x^2) + eps (eps may be absent) */
static bool mean_sq_eps(MilValue *v, Norm *n) {
    MilOp *d = def_of(v, MIL_OP_ADD);
    if (d) {
        double e;
        const char *ca = arg_is_const(d, "y") ? "y" : "x";
        MilValue *m = arg_value(d, ca[0] == 'y' ? "x" : "y");
        if (arg_float(d, ca, &e) && m && mean_sq(m, n)) {
            n->eps += e;
            return true;
        }
        return false;
    }
    return mean_sq(v, n);
}

/* r == 1 / sqrt(mean(x^2) + eps) */
static bool inv_rms(MilValue *r, Norm *n) {
    MilOp *d;
    if ((d = def_of(r, MIL_OP_POW)) && is_const_eq(d, "y", -0.5, 0)) return mean_sq_eps(arg_value(d, "x"), n);
    if ((d = def_of(r, MIL_OP_RSQRT))) {
        double e = 1e-12;
        arg_float(d, "epsilon", &e);
        n->eps += e;
        return mean_sq_eps(arg_value(d, "x"), n);
    }
    return false;
}

/* s == sqrt(mean(x^2) + eps) */
static bool rms(MilValue *s, Norm *n) {
    MilOp *d;
    if ((d = def_of(s, MIL_OP_SQRT))) return mean_sq_eps(arg_value(d, "x"), n);
    if ((d = def_of(s, MIL_OP_POW)) && is_const_eq(d, "y", 0.5, 0)) return mean_sq_eps(arg_value(d, "x"), n);
    return false;
}

static MilValue *build(MilFunc *f, MilOp *at, const Norm *n, MilValue *gamma, const char *name) {
    MilDType dt = n->x->type->dtype;
    int64_t ax = n->axis;
    MilOp *op = pb_op(f, MIL_OP_RMS_NORM, at->loc);
    mil_op_add_arg(op, "axes", pb_const_i32s(f, at, 1, &ax, "axes"));
    mil_op_add_arg(op, "epsilon", pb_const_scalar(f, at, mil_dtype_is_float(dt) ? dt : MIL_DT_FP32, n->eps, "epsilon"));
    if (gamma) mil_op_add_arg(op, "gamma", gamma);
    mil_op_add_arg(op, "x", n->x);
    return pb_finish(f, op, at, name);
}

/* mul(x, 1/sqrt(mean(x^2)+eps)) -> rms_norm(x) */
static bool rule_mul_norm(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *a = arg_value(op, "x"), *b = arg_value(op, "y");
    if (!a || !b) return false;
    for (int k = 0; k < 2; k++) {
        MilValue *x = k ? b : a, *r = k ? a : b;
        Norm n = {.x = x};
        if (inv_rms(r, &n) && n.x == x && op->results[0]->type == x->type) {
            MilValue *v = build(f, op, &n, NULL, op->results[0]->name);
            return replace_value(f, op->results[0], v);
        }
    }
    return false;
}

/* real_div(x, sqrt(mean(x^2)+eps)) -> rms_norm(x) */
static bool rule_div_norm(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *x = arg_value(op, "x"), *s = arg_value(op, "y");
    if (!x || !s) return false;
    Norm n = {.x = x};
    if (!rms(s, &n) || n.x != x || op->results[0]->type != x->type) return false;
    MilValue *v = build(f, op, &n, NULL, op->results[0]->name);
    return replace_value(f, op->results[0], v);
}

/* Is w a constant of D elements laid along axis `axis` of x? */
static bool gamma_fits(MilValue *w, const MilType *xt, int axis) {
    const MilConst *c = w ? mil_value_const(w) : NULL;
    if (!c || !ty_known(c->type) || c->type->rank > xt->rank) return false;
    const MilType *t = c->type;
    int off = xt->rank - t->rank;
    for (int i = 0; i < t->rank; i++) {
        int xi = i + off;
        if (xi == axis ? t->dims[i] != xt->dims[axis] : t->dims[i] != 1) return false;
    }
    return mil_type_numel(t) == xt->dims[axis];
}

/* mul(rms_norm(x), w) -> rms_norm(x, gamma = w) */
static bool rule_gamma(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *a = arg_value(op, "x"), *b = arg_value(op, "y");
    if (!a || !b) return false;
    for (int k = 0; k < 2; k++) {
        MilValue *nv = k ? b : a, *w = k ? a : b;
        MilOp *rn = def_of(nv, MIL_OP_RMS_NORM);
        if (!rn || arg_type(rn, "gamma") || nv->nuses != 1 || value_is_output(f, nv)) continue;
        MilValue *x = arg_value(rn, "x");
        int64_t ax;
        if (!x || !arg_int(rn, "axes", &ax) || !gamma_fits(w, x->type, (int)ax)) continue;
        if (op->results[0]->type != x->type) continue;
        Norm n = {.x = x, .axis = (int)ax};
        arg_float(rn, "epsilon", &n.eps);
        MilValue *v = build(f, op, &n, w, op->results[0]->name);
        return replace_value(f, op->results[0], v);
    }
    return false;
}

static const MilRule rmsnorm_rules[] = {
    {MIL_OP_MUL, rule_gamma, "rms-gamma"},          /* mul(rms_norm(x), w) -> rms_norm(x, gamma=w) */
    {MIL_OP_MUL, rule_mul_norm, "rms-mul"},         /* x * (mean(x^2)+eps)^-0.5 -> rms_norm(x) */
    {MIL_OP_REAL_DIV, rule_div_norm, "rms-div"},    /* x / sqrt(mean(x^2)+eps) -> rms_norm(x) */
};

int mil_pass_rmsnorm(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++) n += mil_rewrite_fixpoint(p->funcs[i], rmsnorm_rules, 3, NULL);
    return n > 0;
}
