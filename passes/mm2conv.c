/* passes/mm2conv.c -- matmul / linear with a constant weight -> 1x1 conv in
 * the ANE's [1, C, 1, S] layout (docs/ane-notes.md §4, §13.1).
 *
 *   linear(x: [.., S, IC], W: [OC, IC], b)            -> conv(cf(x), W[OC, IC, 1, 1], b)
 *   matmul(x: [.., S, IC], W: [IC, OC] (or W^T))        -> conv(cf(x), W^T[OC, IC, 1, 1])
 *   matmul(W: [OC, IC], y: [.., IC, S]) (channel-first) -> conv(cf(y), W[OC, IC, 1, 1])
 *
 * Layout propagation: cf(v) is v in channel-first [1, C, 1, N] form.  It is
 * memoised per value and per source layout (MilValue.aux points to a Memo
 * with one slot per layout; cleared at the start).  The layout is part of the
 * key: for a square value ([1, S, D] with S == D) the channels-last form
 * (a transpose) and the channels-first form (a reshape) have the same type
 * but different contents.  The result of
 * every conv converted back to the original layout remembers its
 * channel-first source, so a chain of linear layers (and the element-wise
 * ops between them: activations, gates, residual adds, scalings) runs in
 * [1, C, 1, S] without bouncing.  Conversions back are only used by
 * consumers that need the original layout (function outputs, other ops); the
 * rest dies in DCE.  Matmuls with two runtime operands stay matmuls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/pass_int.h"

#define MAX_DEPTH 12

typedef enum { LAST, FIRST } Layout;   /* channels last ([.., N, C]) or first ([.., C, N]) */

static bool leading_ones(const MilType *t, int keep) {
    for (int i = 0; i < t->rank - keep; i++)
        if (t->dims[i] != 1) return false;
    return true;
}

/* The memo of a value: its channel-first form built from each layout. */
typedef struct Memo {
    MilValue *cf[2];   /* indexed by Layout */
} Memo;

/* Every Memo of the current function, freed when the pass leaves it. */
static Memo **memo_all;
static int memo_n, memo_cap;

static void memo_set(MilValue *v, Layout l, MilValue *c) {
    Memo *m = (Memo *)v->aux;
    if (!m) {
        if (memo_n == memo_cap) {
            int cap = memo_cap ? 2 * memo_cap : 64;
            Memo **a = realloc(memo_all, sizeof *a * (size_t)cap);
            if (!a) return;   /* no memo: the value is converted again later */
            memo_all = a;
            memo_cap = cap;
        }
        m = calloc(1, sizeof *m);
        if (!m) return;
        memo_all[memo_n++] = m;
        v->aux = m;
    }
    m->cf[l] = c;
}

static void memo_free_all(void) {
    for (int i = 0; i < memo_n; i++) free(memo_all[i]);
    free(memo_all);
    memo_all = NULL;
    memo_n = memo_cap = 0;
}

/* The memoised channel-first form of v built from layout l, if any. */
static MilValue *memo_l(MilValue *v, Layout l) {
    MilValue *c = v->aux ? ((Memo *)v->aux)->cf[l] : NULL;
    const MilType *t = v->type;
    if (!c || !ty_known(t) || t->rank < 2) return NULL;
    int64_t ch = l == LAST ? t->dims[t->rank - 1] : t->dims[t->rank - 2];
    int64_t n = mil_type_numel(t) / (ch ? ch : 1);
    const MilType *ct = c->type;
    if (ct->rank != 4 || ct->dims[1] != ch || ct->dims[3] != n) return NULL;
    if (l == FIRST && !leading_ones(t, 2)) return NULL;
    return c;
}


/* Builds cf(v) from v's layout with reshapes/transposes, before op `at`. */
static MilValue *convert_to_cf(MilFunc *f, MilOp *at, MilValue *v, Layout l) {
    const MilType *t = v->type;
    int r = t->rank;
    int64_t c, n;
    if (l == LAST) {
        c = t->dims[r - 1];
        n = mil_type_numel(t) / (c ? c : 1);
        MilValue *x = v;
        if (r != 2) {
            int64_t d2[2] = {n, c};
            x = pb_reshape(f, at, x, 2, d2, "flat");
        }
        int64_t perm[2] = {1, 0};
        x = pb_transpose(f, at, x, 2, perm, "cf_t");
        int64_t d4[4] = {1, c, 1, n};
        return pb_reshape(f, at, x, 4, d4, "cf");
    }
    /* channel-first [.., C, N] with leading ones */
    c = t->dims[r - 2];
    n = t->dims[r - 1];
    int64_t d4[4] = {1, c, 1, n};
    if (r == 4 && t->dims[2] == 1 && t->dims[0] == 1) return v;
    return pb_reshape(f, at, v, 4, d4, "cf");
}

static bool elementwise(const MilOp *op) {
    const MilOpInfo *info = mil_op_info(op->kind);
    return info && (info->flags & (OPF_UNARY | OPF_BINARY)) && op->nresults == 1;
}

/* Is the value a scalar-like constant (numel 1) usable in either layout? */
static bool scalar_const(const MilOp *op, const char *arg) {
    const MilType *t = arg_type(op, arg);
    return arg_is_const(op, arg) && ty_known(t) && mil_type_numel(t) == 1;
}

static MilValue *get_cf(MilFunc *f, MilOp *at, MilValue *v, Layout l, int depth, bool build);

/* cf of an element-wise op whose tensor operands have the op's shape; at
 * least one must already have a cf form (memo or closure), the others are
 * converted.  rms_norm over the channel axis is treated the same way. */
static MilValue *cf_elementwise(MilFunc *f, MilOp *at, MilOp *def, Layout l, int depth, bool build) {
    int feasible = 0, nt = 0;
    for (int i = 0; i < def->nargs; i++) {
        const char *nm = def->args[i].name;
        if (strcmp(nm, "x") && strcmp(nm, "y")) continue;
        if (scalar_const(def, nm)) continue;
        MilValue *a = arg_value(def, nm);
        if (!a || a->type != def->results[0]->type) return NULL;   /* no broadcasting */
        nt++;
        if (get_cf(f, at, a, l, depth + 1, false)) feasible++;
    }
    if (!nt || !feasible) return NULL;
    if (!build) return def->results[0];   /* feasible */
    MilOp *op = pb_op(f, def->kind, def->loc);
    for (int i = 0; i < def->nargs; i++) {
        const MilArg *a = &def->args[i];
        bool xy = !strcmp(a->name, "x") || !strcmp(a->name, "y");
        if (xy && !scalar_const(def, a->name)) {
            mil_op_add_arg(op, a->name, get_cf(f, at, a->items[0].value, l, depth + 1, true));
        } else if ((def->kind == MIL_OP_RMS_NORM || def->kind == MIL_OP_LAYER_NORM) && !strcmp(a->name, "axes")) {
            int64_t one = 1;
            mil_op_add_arg(op, "axes", pb_const_i32s(f, at, 1, &one, "axes"));
        } else if (a->items[0].value) {
            mil_op_add_arg(op, a->name, a->items[0].value);
        } else {
            mil_op_add_arg_const(op, a->name, a->items[0].cst);
        }
    }
    /* inserted just before `at`, which follows every operand */
    return pb_finish(f, op, at, def->results[0]->name);
}

/* rms_norm / layer_norm over the channel (last) axis: in [1, C, 1, N] the
 * same op over axis 1, with the same gamma / beta of shape [C]. */
static bool rms_last_axis(const MilOp *op) {
    int64_t ax[MIL_MAX_RANK];
    const MilType *t = op->results[0]->type;
    if (op->kind != MIL_OP_RMS_NORM && op->kind != MIL_OP_LAYER_NORM) return false;
    if (!ty_known(t) || arg_ints(op, "axes", ax, MIL_MAX_RANK) != 1 || (ax[0] != -1 && ax[0] != t->rank - 1))
        return false;
    for (int i = 0; i < op->nargs; i++) {   /* gamma / beta must be [C] (or absent) */
        const char *nm = op->args[i].name;
        if (strcmp(nm, "gamma") && strcmp(nm, "beta")) continue;
        const MilType *g = arg_type(op, nm);
        if (!ty_known(g) || g->rank != 1 || g->dims[0] != t->dims[t->rank - 1]) return false;
    }
    return true;
}

/* The channel-first form of v (layout l), memoised.  With build=false only
 * answers whether it exists without new layout ops (memo or element-wise
 * closure); with build=true always returns one. */
static MilValue *convert_back(MilFunc *f, MilOp *at, MilValue *cf, const MilType *like, Layout l, const char *name);

/* The channel-first form is built right after v's definition (parameters: at
 * the start of the body), so that it dominates every use of v. */
static MilOp *after_def(MilFunc *f, const MilValue *v) {
    return v->def ? v->def->next : f->body.first;
}

static MilValue *get_cf(MilFunc *f, MilOp *at, MilValue *v, Layout l, int depth, bool build) {
    (void)at;
    MilValue *m = memo_l(v, l);
    if (m) return m;
    if (depth > MAX_DEPTH) return NULL;
    MilOp *pos = after_def(f, v);
    if (v->def && (elementwise(v->def) || (l == LAST && rms_last_axis(v->def))) && ty_known(v->type)) {
        MilValue *c = cf_elementwise(f, pos, v->def, l, depth, build);
        if (c && build) {
            /* v is now computed in [1, C, 1, N]; the remaining users of the
               original layout get one conversion back instead of a second
               copy of the computation (it dies when nobody needs it) */
            memo_set(v, l, c);
            if (l == LAST) {
                MilValue *back = convert_back(f, pos, c, v->type, l, v->name);
                if (replace_value(f, v, back)) memo_set(back, l, c);
            }
        }
        if (c) return c;
    }
    if (!build) return NULL;
    MilValue *c = convert_to_cf(f, pos, v, l);
    memo_set(v, l, c);
    return c;
}

/* Converts the conv result [1, OC, 1, N] back to the shape of `like`. */
static MilValue *convert_back(MilFunc *f, MilOp *at, MilValue *cf, const MilType *like, Layout l, const char *name) {
    int r = like->rank;
    if (l == LAST) {
        int64_t oc = like->dims[r - 1], n = mil_type_numel(like) / (oc ? oc : 1);
        int64_t d2[2] = {oc, n}, perm[2] = {1, 0};
        MilValue *x = pb_reshape(f, at, cf, 2, d2, "sm");
        x = pb_transpose(f, at, x, 2, perm, "sm_t");
        if (r != 2) x = pb_reshape(f, at, x, r, like->dims, name);
        return x;
    }
    if (r == 4 && like->dims[2] == 1) return cf;
    return pb_reshape(f, at, cf, r, like->dims, name);
}

static MilValue *conv_weight(MilFunc *f, MilOp *at, MilValue *w, const MilConst *wc, bool transpose) {
    MilValue *wv = w ? w : pb_const(f, at, (MilConst *)wc, "w");
    const MilType *t = wv->type;
    int64_t a = t->dims[t->rank - 2], b = t->dims[t->rank - 1];
    if (t->rank != 2) {
        int64_t d2[2] = {a, b};
        wv = pb_reshape(f, at, wv, 2, d2, "w2");
    }
    if (transpose) {
        int64_t perm[2] = {1, 0};
        wv = pb_transpose(f, at, wv, 2, perm, "wt");
        int64_t tmp = a;
        a = b;
        b = tmp;
    }
    int64_t d4[4] = {a, b, 1, 1};
    return pb_reshape(f, at, wv, 4, d4, "w4");
}

static MilValue *build_conv(MilFunc *f, MilOp *at, MilValue *x, MilValue *w4, MilValue *bias, const MilConst *bias_c) {
    int64_t ones[2] = {1, 1}, zeros[4] = {0, 0, 0, 0};
    MilOp *op = pb_op(f, MIL_OP_CONV, at->loc);
    if (bias) mil_op_add_arg(op, "bias", bias);
    else if (bias_c) mil_op_add_arg_const(op, "bias", (MilConst *)bias_c);
    mil_op_add_arg(op, "dilations", pb_const_i32s(f, at, 2, ones, "dilations"));
    mil_op_add_arg(op, "groups", pb_const_scalar(f, at, MIL_DT_INT32, 1, "groups"));
    mil_op_add_arg(op, "pad", pb_const_i32s(f, at, 4, zeros, "pad"));
    mil_op_add_arg(op, "pad_type", pb_const_str(f, at, "valid", "pad_type"));
    mil_op_add_arg(op, "strides", pb_const_i32s(f, at, 2, ones, "strides"));
    mil_op_add_arg(op, "weight", w4);
    mil_op_add_arg(op, "x", x);
    return pb_finish(f, op, at, "conv");
}

static bool const_weight(const MilOp *op, const char *arg, MilValue **v, const MilConst **c) {
    *v = arg_value(op, arg);
    *c = mil_op_const_arg(op, arg);
    if (!*c) return false;
    const MilType *t = (*c)->type;
    return ty_known(t) && t->rank >= 2 && leading_ones(t, 2);
}

/* ANE targets: conv with bias= is rejected on the in-memory route
 * (docs/ane-notes.md §7.2), so the bias becomes a separate add. */
static bool split_bias;

/* act is the activation in layout al ([.., N, IC] or [.., IC, N]); the op's
 * result has layout rl ([.., N, OC] or [.., OC, N]).  A channel-first result
 * with batch dims other than 1 is produced channels-last and transposed. */
static bool lower(MilFunc *f, MilOp *op, MilValue *act, Layout al, Layout rl, MilValue *w4, MilValue *bias,
                  const MilConst *bias_c) {
    const MilType *rt = op->results[0]->type;
    if (!ty_known(rt) || !ty_known(act->type)) return false;
    MilValue *x = get_cf(f, op, act, al, 0, true);
    MilValue *y;
    if (split_bias && (bias || bias_c)) {
        MilValue *b = bias ? bias : pb_const(f, op, (MilConst *)bias_c, "bias");
        y = build_conv(f, op, x, w4, NULL, NULL);
        int64_t d4[4] = {1, y->type->dims[1], 1, 1};
        y = pb_binary(f, op, MIL_OP_ADD, y, pb_reshape(f, op, b, 4, d4, "bias4"), "conv_bias");
    } else {
        y = build_conv(f, op, x, w4, bias, bias_c);
    }
    if (rl == FIRST && !leading_ones(rt, 2)) {
        int r = rt->rank;
        int64_t oc = rt->dims[r - 2], n = mil_type_numel(rt) / (oc ? oc : 1);
        int64_t d2[2] = {oc, n}, perm2[2] = {1, 0}, dl[MIL_MAX_RANK], perm[MIL_MAX_RANK];
        for (int i = 0; i < r; i++) dl[i] = rt->dims[i], perm[i] = i;
        dl[r - 2] = rt->dims[r - 1];
        dl[r - 1] = oc;
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 2;
        MilValue *t = pb_reshape(f, op, y, 2, d2, "sm");
        t = pb_transpose(f, op, t, 2, perm2, "sm_t");
        MilValue *last = pb_reshape(f, op, t, r, dl, "sm_last");
        memo_set(last, LAST, y);
        return replace_value(f, op->results[0], pb_transpose(f, op, last, r, perm, op->results[0]->name));
    }
    MilValue *back = convert_back(f, op, y, rt, rl, op->results[0]->name);
    if (!replace_value(f, op->results[0], back)) return false;
    memo_set(back, rl, y);
    return true;
}

/* v with its last two axes swapped, before op `at`. */
static MilValue *swap_last2(MilFunc *f, MilOp *at, MilValue *v) {
    int r = v->type->rank;
    int64_t perm[MIL_MAX_RANK];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return pb_transpose(f, at, v, r, perm, "act_t");
}

/* linear(x, W, b) -> conv(cf(x), W[OC, IC, 1, 1], b) */
static bool rule_linear(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *act = arg_value(op, "x"), *wv;
    const MilConst *wc;
    if (!act || !ty_known(act->type) || act->type->rank < 2 || !const_weight(op, "weight", &wv, &wc)) return false;
    MilValue *w4 = conv_weight(f, op, wv, wc, false);
    return lower(f, op, act, LAST, LAST, w4, arg_value(op, "bias"), arg_value(op, "bias") ? NULL : mil_op_const_arg(op, "bias"));
}

/* matmul(x, W) -> conv(cf(x), W^T);  matmul(W, y) -> conv(cf(y), W) (channel-first).
 * Every combination of transpose flags: a transposed activation is taken in
 * the other layout (or transposed first when it has batch dims). */
static bool rule_matmul(MilFunc *f, MilOp *op, void *ctx) {
    bool tx = arg_bool(op, "transpose_x", false), ty = arg_bool(op, "transpose_y", false);
    MilValue *x = arg_value(op, "x"), *y = arg_value(op, "y"), *wv;
    const MilConst *wc;
    const MilType *rt = op->results[0]->type;
    if (!ty_known(rt) || rt->rank < 2) return false;
    if (const_weight(op, "y", &wv, &wc) && x && !mil_value_const(x) && ty_known(x->type) && x->type->rank >= 2) {
        /* x [.., N, IC] (or [.., IC, N] with transpose_x) @ W [IC, OC] (or W^T with transpose_y) */
        MilValue *w4 = conv_weight(f, op, wv, wc, !ty);
        if (!tx) return lower(f, op, x, LAST, LAST, w4, NULL, NULL);
        if (leading_ones(x->type, 2)) return lower(f, op, x, FIRST, LAST, w4, NULL, NULL);
        return lower(f, op, swap_last2(f, op, x), LAST, LAST, w4, NULL, NULL);
    }
    if (const_weight(op, "x", &wv, &wc) && y && !mil_value_const(y) && ty_known(y->type) && y->type->rank >= 2) {
        /* W [OC, IC] (or W^T with transpose_x) @ y [.., IC, N] (or [.., N, IC] with transpose_y) */
        MilValue *w4 = conv_weight(f, op, wv, wc, tx);
        if (!ty && leading_ones(y->type, 2)) return lower(f, op, y, FIRST, FIRST, w4, NULL, NULL);
        if (ty) return lower(f, op, y, LAST, FIRST, w4, NULL, NULL);
        return lower(f, op, swap_last2(f, op, y), LAST, FIRST, w4, NULL, NULL);
    }
    return false;
}

/* Forward sinking: an element-wise op / channel norm whose operands are
 * conversions back from [1, C, 1, N] runs in [1, C, 1, N] itself when that
 * lets at least one of those conversions die (its only user was the op); its
 * own result is converted back once, and that conversion then often collapses
 * with the consumer's layout op (layer_norm -> transpose into a conv module
 * becomes layer_norm in [1, C, 1, N] + one reshape). */
static void sink_forward(MilFunc *f) {
    bool debug = getenv("MM2CONV_DEBUG") != NULL;
    mil_dce_func(f);   /* fresh use counts */
    bool track = use_track_begin(f);
    for (MilOp *op = f->body.first; op; op = op->next) {
        if (op->nresults != 1 || !(elementwise(op) || rms_last_axis(op))) continue;
        MilValue *r = op->results[0];
        if (!ty_known(r->type) || r->type->rank < 2 || memo_l(r, LAST)) continue;
        int dying = 0, missing = 0;
        for (int i = 0; i < op->nargs; i++) {
            const char *nm = op->args[i].name;
            if (strcmp(nm, "x") && strcmp(nm, "y")) continue;
            if (scalar_const(op, nm)) continue;
            MilValue *a = arg_value(op, nm);
            if (!a || a->type != r->type || !memo_l(a, LAST)) {
                missing++;
                continue;
            }
            if (a->nuses == 1 && !value_is_output(f, a)) dying++;
        }
        if (debug) fprintf(stderr, "sink %s: missing %d dying %d\n", r->name, missing, dying);
        if (missing || !dying) continue;
        if (get_cf(f, NULL, r, LAST, 0, true) && !(track && use_track_sync(f))) mil_func_fill_uses(f);
    }
    if (track) use_track_end(f);
}

static const MilRule mm2conv_rules[] = {
    {MIL_OP_LINEAR, rule_linear, "linear-conv1x1"},   /* linear(x, W, b) -> conv(cf(x), W[OC,IC,1,1], b) */
    {MIL_OP_MATMUL, rule_matmul, "matmul-conv1x1"},   /* matmul(x, W) -> conv(cf(x), W^T[OC,IC,1,1]) */
};

int mil_pass_mm2conv(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    int n = 0;
    split_bias = o && o->target != MIL_TARGET_CPU;
    for (int i = 0; i < p->nfuncs; i++) {
        MilFunc *f = p->funcs[i];
        for (int k = 0; k < f->nparams; k++) f->params[k]->aux = NULL;
        for (MilOp *op = f->body.first; op; op = op->next)
            for (int r = 0; r < op->nresults; r++) op->results[r]->aux = NULL;
        n += mil_rewrite_fixpoint(f, mm2conv_rules, 2, NULL);
        if (n) sink_forward(f);
        /* outputs computed element-wise from converted values: compute them in
           [1, C, 1, S] too and convert once at the end */
        if (n) {
            for (int k = 0; k < f->body.nouts; k++) {
                MilValue *v = f->body.outs[k];
                if (!v->def || !ty_known(v->type) || v->type->rank < 2 || !elementwise(v->def)) continue;
                if (!get_cf(f, NULL, v, LAST, 0, false) || memo_l(v, LAST)) continue;
                MilValue *c = get_cf(f, NULL, v, LAST, 0, true);
                MilValue *back = convert_back(f, NULL, c, v->type, LAST, v->name);
                replace_value(f, v, back);
            }
            mil_dce_func(f);
            mil_layout_collapse_func(f);
        }
        for (int k = 0; k < f->nparams; k++) f->params[k]->aux = NULL;
        for (MilOp *op = f->body.first; op; op = op->next)
            for (int r = 0; r < op->nresults; r++) op->results[r]->aux = NULL;
        memo_free_all();
    }
    return n > 0;
}
