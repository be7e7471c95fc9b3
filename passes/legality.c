/* passes/legality.c -- ANE legality (--target=ane, ane-m1, ane-m4), after
 * docs/ane-notes.md §4-§7 and §3.3:
 *   - rank > 5;
 *   - a spatial dim (H, W: the last two axes) over the family limit (16384 on
 *     the A13-A15 / M1-M3 family and the generic target, 65536 on A16+ / M4),
 *     channels or batch over 65536;
 *   - ops with no ANE path on any family, plus the family-gated ones
 *     (sin/cos before A15, cast on M1/M2, gather);
 *   - the extra rejections of the in-memory MIL route (§7.2): gelu, conv
 *     with bias=, scaled_dot_product_attention's attn_mask (ignored), concat
 *     without an int32 scalar axis plus interleave;
 *   - function inputs over the rank / dim limits (like every op result);
 *   - function inputs / outputs that are not fp16 [1, C, 1, S], whose last
 *     axis is not a multiple of 32 fp16 elements (64 bytes), or whose surface
 *     is below the ~49 KB minimum.
 * Findings are warnings at the op's (or function's) location; --strict makes
 * them errors.  The pass never changes the program.
 */
#include <string.h>

#include "ir/ane_rules.h"
#include "passes/pass_int.h"

typedef struct Leg {
    const MilPassOptions *o;
    MilDiag *d;
    int found;
} Leg;

static void report(Leg *l, MilLoc loc, const char *fmt, const char *a, long long x, long long y) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a, x, y);
    l->found++;
    if (l->o->strict) mil_error(l->d, loc, "ane: %s", msg);
    else mil_warning(l->d, loc, "ane: %s", msg);
}

static bool concat_axis_ok(const MilOp *op) {
    const MilConst *c = mil_op_const_arg(op, "axis");
    return c && c->type && c->type->kind == MIL_TY_TENSOR && c->type->rank == 0 && c->type->dtype == MIL_DT_INT32;
}

static void check_type(Leg *l, MilLoc loc, const char *what, const MilType *t) {
    if (!ty_tensor(t)) return;
    if (t->rank > 5) {
        report(l, loc, "%s has rank %lld; the ANE supports at most 5", what, t->rank, 0);
        return;
    }
    int64_t hw = l->o->target == MIL_TARGET_ANE_M4 ? 65536 : 16384;
    for (int i = 0; i < t->rank; i++) {
        int64_t v = t->dims[i];
        if (v == MIL_DIM_UNKNOWN) continue;
        bool spatial = t->rank >= 3 && i >= t->rank - 2;
        int64_t lim = spatial ? hw : 65536;
        if (v > lim) report(l, loc, "%s: dimension %lld exceeds the limit %lld", what, (long long)v, (long long)lim);
    }
}

static void check_io(Leg *l, MilLoc loc, const char *kind, const MilValue *v) {
    const MilType *t = v->type;
    char what[200];
    snprintf(what, sizeof what, "%s '%.150s'", kind, v->name);
    if (!ty_tensor(t)) return;
    if (!strcmp(kind, "input")) check_type(l, loc, what, t);   /* outputs: checked at their op */
    if (t->dtype != MIL_DT_FP16 || t->rank != 4 || t->dims[0] != 1 || t->dims[2] != 1) {
        char ty[160];
        ty_fmt(t, ty, sizeof ty);
        char msg[448];
        snprintf(msg, sizeof msg, "%s is %s; ANE I/O should be fp16 [1, C, 1, S]", what, ty);
        report(l, loc, "%s", msg, 0, 0);
        return;
    }
    int64_t S = t->dims[3], C = t->dims[1];
    if (S != MIL_DIM_UNKNOWN && S % 32)
        report(l, loc, "%s: last axis %lld is not a multiple of 32 fp16 elements (64 bytes)", what, (long long)S, 0);
    if (S != MIL_DIM_UNKNOWN && C != MIL_DIM_UNKNOWN && C * S * 2 < MIL_ANE_MIN_SURFACE_BYTES)
        report(l, loc, "%s: surface of %lld bytes is below the ~%lld-byte minimum", what, (long long)(C * S * 2),
               (long long)MIL_ANE_MIN_SURFACE_BYTES);
}

int mil_pass_legality(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    if (!o || o->target == MIL_TARGET_CPU) return 0;
    Leg l = {.o = o, .d = d};
    int errs0 = d->nerrors;
    bool m1 = o->target != MIL_TARGET_ANE_M4;
    for (int fi = 0; fi < p->nfuncs; fi++) {
        MilFunc *f = p->funcs[fi];
        for (int i = 0; i < f->nparams; i++) check_io(&l, f->loc, "input", f->params[i]);
        for (int i = 0; i < f->body.nouts; i++)
            check_io(&l, f->body.outs_loc.line ? f->body.outs_loc : f->loc, "output", f->body.outs[i]);
        for (MilOp *op = f->body.first; op; op = op->next) {
            const MilOpInfo *info = mil_op_info(op->kind);
            const char *name = op->opname ? op->opname : info ? info->name : "?";
            if (op->kind == MIL_OP_CONST) continue;
            if (mil_ane_no_path(op->kind))
                report(&l, op->loc, "op '%s' has no ANE path (runs on the CPU)", name, 0, 0);
            else if (m1 && (op->kind == MIL_OP_SIN || op->kind == MIL_OP_COS))
                report(&l, op->loc, "op '%s' needs A15 or later", name, 0, 0);
            else if (m1 && op->kind == MIL_OP_CAST)
                report(&l, op->loc, "op '%s' is not available on M1/M2 (keep I/O fp16)", name, 0, 0);
            else if (op->kind == MIL_OP_GATHER)
                report(&l, op->loc, "op '%s' has a tiny envelope on the ANE and usually falls back", name, 0, 0);
            /* docs/ane-notes.md §7.2: extra rejections on the in-memory MIL route */
            else if (op->kind == MIL_OP_GELU)
                report(&l, op->loc, "op '%s' is rejected on the in-memory route (decompose to the tanh form)", name, 0, 0);
            else if (op->kind == MIL_OP_CONV && mil_op_arg(op, "bias"))
                report(&l, op->loc, "op '%s' with bias= is rejected on the in-memory route (use a separate add)", name, 0, 0);
            else if (op->kind == MIL_OP_SCALED_DOT_PRODUCT_ATTENTION && mil_op_arg(op, "attn_mask"))
                report(&l, op->loc, "op '%s': attn_mask is ignored by the ANE (decompose the attention)", name, 0, 0);
            else if (op->kind == MIL_OP_CONCAT && (!concat_axis_ok(op) || !mil_op_arg(op, "interleave")))
                report(&l, op->loc, "op '%s' needs an int32 scalar axis and interleave on the in-memory route", name, 0, 0);
            for (int r = 0; r < op->nresults; r++) {
                char what[300];
                snprintf(what, sizeof what, "'%s'", op->results[r]->name);
                check_type(&l, op->loc, what, op->results[r]->type);
            }
        }
    }
    return d->nerrors > errs0 ? -1 : 0;
}
