/* passes/grad.c -- reverse-mode differentiation of a MIL function
 * (issue 9; docs/ane-notes.md §13.4 is the hand-written decomposition this
 * derives automatically).
 *
 * mil_grad(p, o, d) adds to p, next to FUNC (left unchanged):
 *   FUNC_fwd  a copy of FUNC whose extra outputs are the taps: the forward
 *             values the backward reads and cannot get otherwise;
 *   FUNC_bwd  inputs: the cotangents d_<out> (none with --loss), the forward
 *             inputs it reads (weights, x), the taps (same names as FUNC_fwd's
 *             tap outputs); outputs: d_<input> per --wrt input, in input order;
 *   FUNC_dw   (split_weight_grads) the dW of matmul/linear/conv weights that
 *             are inputs, taken out of FUNC_bwd (see split_dw below).
 *
 * How: activity analysis (values that depend on a --wrt input and reach a
 * differentiated output), then one sweep over FUNC's ops in reverse order.
 * Each active op's rule (rules[] at the end: one function per op, indexed by
 * op kind like the rewrite rules) reads the adjoint of its results and adds
 * contributions to the adjoints of its varying arguments.  An adjoint is
 * summed once, as a balanced tree of adds, when the op that defines the value
 * is reached (all its uses come later in the block, so all contributions
 * are known then).  Broadcast arguments get their contributions summed back
 * to their own shape (unbroadcast).
 *
 * Forward values a rule needs come through prim(): a constant is copied, a
 * FUNC input becomes a FUNC_bwd input of the same name, anything else is a
 * tap -- unless --recompute=cheap and the op is cheap to recompute
 * (element-wise, shape, reductions, normalisations, softmax, matmul of two
 * activations), in which case the op is copied into FUNC_bwd with its own
 * arguments obtained the same way.  Each forward value is tapped at most once.
 *
 * The result is plain IR: mil_pass_run cleans it, fuses the attention
 * backward into sdpa_backward and lowers it like any other function.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/pass_int.h"

typedef struct GradRule GradRule;

typedef struct Grad {
    MilProgram *p;
    MilFunc *f;               /* FUNC (read only) */
    MilFunc *b;               /* FUNC_bwd being built */
    MilDiag *d;
    const MilGradOptions *o;
    int nv;                   /* f->nvalues */
    unsigned char *vary;      /* by id: depends on a --wrt input */
    unsigned char *useful;    /* by id: reaches a differentiated output */
    unsigned char *wrt;       /* by param index */
    MilValue **prim;          /* by id: the value in FUNC_bwd */
    MilValue ***adj;          /* by id: contributions */
    int *nadj, *capadj;
    unsigned char *summed;    /* by id: adj[id][0] is the sum */
    MilValue **taps;          /* FUNC values tapped, in order */
    int ntaps, captaps;
    MilValue **fins;          /* FUNC inputs FUNC_bwd reads */
    int nfins, capfins;
    MilOp *cur;               /* op whose rule runs (location of new ops) */
    bool failed;
    /* split_weight_grads: ops built while `dw` is set go to FUNC_dw */
    bool dw;
    bool force_cheap;         /* recomputing a statistic / the attention core: its arguments as with cheap */
    unsigned char *dwop;      /* by FUNC_bwd value id of the result */
    int capdw;
} Grad;

#define GROW(arr, n, cap)                                                     \
    do {                                                                      \
        if ((n) == (cap)) {                                                   \
            int nc_ = (cap) ? 2 * (cap) : 16;                                 \
            void *np_ = realloc((arr), sizeof *(arr) * (size_t)nc_);          \
            if (!np_) abort();                                                \
            (arr) = np_;                                                      \
            (cap) = nc_;                                                      \
        }                                                                     \
    } while (0)

static MilLoc cur_loc(Grad *g) { return g->cur ? g->cur->loc : g->f->loc; }

static void gerr(Grad *g, const char *fmt, const char *a, const char *b2) {
    if (!g->failed || g->d->nerrors == 0) mil_error(g->d, cur_loc(g), fmt, a, b2);
    g->failed = true;
}

/* --------------------------------------------------------- type helpers */

static const MilType *tt(const MilValue *v) { return v ? v->type : NULL; }
static int rank_of(const MilValue *v) { return ty_tensor(tt(v)) ? v->type->rank : -1; }
static MilDType dt_of(const MilValue *v) { return ty_tensor(tt(v)) ? v->type->dtype : MIL_DT_NONE; }

static bool is_float_value(const MilValue *v) { return ty_tensor(tt(v)) && mil_dtype_is_float(v->type->dtype); }

/* ------------------------------------------------------------- builders
 * Everything is appended to FUNC_bwd (g->b) and typed by shape inference. */

static void mark_dw(Grad *g, MilOp *op) {
    if (!g->dw || !op) return;
    for (int i = 0; i < op->nresults; i++) {
        int id = op->results[i]->id;
        if (id >= g->capdw) {
            int nc = g->capdw ? g->capdw : 256;
            while (nc <= id) nc *= 2;
            unsigned char *n = realloc(g->dwop, (size_t)nc);
            if (!n) abort();
            memset(n + g->capdw, 0, (size_t)(nc - g->capdw));
            g->dwop = n;
            g->capdw = nc;
        }
        g->dwop[id] = 1;
    }
}

static MilOp *nop(Grad *g, MilOpKind k) { return pb_op(g->b, k, cur_loc(g)); }

static MilValue *fin(Grad *g, MilOp *op, const char *base) {
    MilValue *v = pb_finish(g->b, op, NULL, base);
    mark_dw(g, op);
    for (int i = 0; i < op->nresults; i++)
        if (!op->results[i]->type) {
            char err[512] = "";
            mil_shape_infer_result(g->p, op, i, err, sizeof err);
            gerr(g, "grad: cannot type the gradient op '%s' built for this op: %s", op->opname, err);
            return NULL;
        }
    return v;
}

static MilValue *cst_scalar(Grad *g, MilDType dt, double v) {
    MilValue *c = pb_const_scalar(g->b, NULL, dt, v, "c");
    mark_dw(g, c->def);
    return c;
}

static MilValue *cst_ints(Grad *g, int n, const int64_t *v, const char *base) {
    MilValue *c = pb_const_i32s(g->b, NULL, n, v, base);
    mark_dw(g, c->def);
    return c;
}

static MilValue *cst_bool(Grad *g, bool v) {
    MilValue *c = pb_const_bool(g->b, NULL, v, "flag");
    mark_dw(g, c->def);
    return c;
}

static MilValue *cst_str(Grad *g, const char *s) {
    MilValue *c = pb_const_str(g->b, NULL, s, "mode");
    mark_dw(g, c->def);
    return c;
}

static MilValue *bin(Grad *g, MilOpKind k, MilValue *x, MilValue *y) {
    if (!x || !y) return NULL;
    MilOp *op = nop(g, k);
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", y);
    return fin(g, op, "g");
}

static MilValue *un(Grad *g, MilOpKind k, MilValue *x) {
    if (!x) return NULL;
    MilOp *op = nop(g, k);
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

/* x * c for a scalar c of x's dtype */
static MilValue *scale(Grad *g, MilValue *x, double c) {
    if (!x) return NULL;
    return bin(g, MIL_OP_MUL, x, cst_scalar(g, dt_of(x), c));
}

static MilValue *reshape_to(Grad *g, MilValue *x, const MilType *t) {
    if (!x) return NULL;
    if (x->type == t) return x;
    MilOp *op = nop(g, MIL_OP_RESHAPE);
    mil_op_add_arg(op, "shape", cst_ints(g, t->rank, t->dims, "shape"));
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

static MilValue *reshape_dims(Grad *g, MilValue *x, int rank, const int64_t *dims) {
    if (!x) return NULL;
    MilOp *op = nop(g, MIL_OP_RESHAPE);
    mil_op_add_arg(op, "shape", cst_ints(g, rank, dims, "shape"));
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

static MilValue *transpose(Grad *g, MilValue *x, int rank, const int64_t *perm) {
    if (!x) return NULL;
    MilOp *op = nop(g, MIL_OP_TRANSPOSE);
    mil_op_add_arg(op, "perm", cst_ints(g, rank, perm, "perm"));
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

static MilValue *reduce(Grad *g, MilOpKind k, MilValue *x, int n, const int64_t *axes, bool keep) {
    if (!x) return NULL;
    MilOp *op = nop(g, k);
    mil_op_add_arg(op, "axes", cst_ints(g, n, axes, "axes"));
    mil_op_add_arg(op, "keep_dims", cst_bool(g, keep));
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

static MilValue *matmul(Grad *g, MilValue *x, MilValue *y, bool tx, bool ty) {
    if (!x || !y) return NULL;
    MilOp *op = nop(g, MIL_OP_MATMUL);
    mil_op_add_arg(op, "transpose_x", cst_bool(g, tx));
    mil_op_add_arg(op, "transpose_y", cst_bool(g, ty));
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", y);
    return fin(g, op, "g");
}

static MilValue *select3(Grad *g, MilValue *cond, MilValue *a, MilValue *b) {
    if (!cond || !a || !b) return NULL;
    MilOp *op = nop(g, MIL_OP_SELECT);
    mil_op_add_arg(op, "a", a);
    mil_op_add_arg(op, "b", b);
    mil_op_add_arg(op, "cond", cond);
    return fin(g, op, "g");
}

static MilValue *zeros(Grad *g, const MilType *t) {
    MilOp *op = nop(g, MIL_OP_FILL);
    mil_op_add_arg(op, "shape", cst_ints(g, t->rank, t->dims, "shape"));
    mil_op_add_arg(op, "value", cst_scalar(g, t->dtype, 0.0));
    MilValue *z = fin(g, op, "zeros");
    if (z && t->rank == 0) return reshape_to(g, z, t);
    return z;
}

/* Sums x (broadcast from a value of type t) back to t's shape. */
static MilValue *unbroadcast(Grad *g, MilValue *x, const MilType *t) {
    if (!x || !t) return NULL;
    if (x->type == t) return x;
    if (!ty_known(x->type) || !ty_known(t)) {
        gerr(g, "grad: unbroadcasting needs known shapes (op '%s'%s)", g->cur ? g->cur->opname : "?", "");
        return NULL;
    }
    int rx = x->type->rank, rt = t->rank, lead = rx - rt;
    int64_t axes[MIL_MAX_RANK];
    int n = 0;
    for (int a = 0; a < rx; a++) {
        int64_t dt = a < lead ? 1 : t->dims[a - lead];
        if (a < lead || (dt == 1 && x->type->dims[a] != 1)) axes[n++] = a;
    }
    MilValue *r = n ? reduce(g, MIL_OP_REDUCE_SUM, x, n, axes, true) : x;
    return reshape_to(g, r, t);
}

/* ------------------------------------------------------------ forward values */

static bool is_cheap_kind(const MilOp *op) {
    const MilOpInfo *info = mil_op_info(op->kind);
    if (!info) return false;
    if (info->flags & (OPF_UNARY | OPF_BINARY | OPF_CMP | OPF_LOGIC | OPF_REDUCE | OPF_CONSTEXPR)) return true;
    switch (op->kind) {
    case MIL_OP_SELECT: case MIL_OP_CAST: case MIL_OP_SOFTMAX: case MIL_OP_LAYER_NORM: case MIL_OP_RMS_NORM:
    case MIL_OP_BAND_PART: case MIL_OP_RESHAPE: case MIL_OP_TRANSPOSE: case MIL_OP_EXPAND_DIMS:
    case MIL_OP_SQUEEZE: case MIL_OP_CONCAT: case MIL_OP_SPLIT: case MIL_OP_SLICE_BY_INDEX:
    case MIL_OP_SLICE_BY_SIZE: case MIL_OP_IDENTITY: case MIL_OP_FILL: case MIL_OP_SHAPE: case MIL_OP_TILE:
    case MIL_OP_PAD: case MIL_OP_STACK:
        return true;
    case MIL_OP_MATMUL: {
        /* a matmul of two activations (attention scores / context) is
           recomputed; a projection by an input or a constant is tapped */
        MilValue *x = arg_value(op, "x"), *y = arg_value(op, "y");
        return x && y && x->def && y->def && x->def->kind != MIL_OP_CONST && y->def->kind != MIL_OP_CONST;
    }
    default:
        return false;
    }
}

/* Does FUNC_bwd already have a value named `name`?  Then it is an internal
 * value (params get their names first): move it out of the way. */
static void free_name(Grad *g, const char *name) {
    MilValue *v = mil_func_find_value(g->b, name);
    if (v && v->def) mil_func_rename_value(g->b, v, pass_unique_name(g->b, name));
}

static MilValue *add_bwd_param(Grad *g, const MilType *t, const char *name) {
    MilValue *v = mil_func_find_value(g->b, name);
    if (v && !v->def) {
        gerr(g, "grad: name clash in the backward: '%s' is both a cotangent and a forward value%s", name, "");
        return NULL;
    }
    free_name(g, name);
    return mil_func_add_param(g->b, t, name);
}

static MilValue *prim(Grad *g, MilValue *v);

/* copies op into FUNC_bwd with its arguments mapped through prim() */
static void recompute(Grad *g, MilOp *op) {
    MilOp *c = mil_op_new(g->b, op->kind, op->opname);
    c->loc = op->loc;
    for (int i = 0; i < op->nargs; i++) {
        const MilArg *a = &op->args[i];
        MilBinding items[64], *it = a->n <= 64 ? items : malloc(sizeof *it * (size_t)a->n);
        for (int j = 0; j < a->n; j++) {
            it[j].cst = a->items[j].cst;
            it[j].value = a->items[j].value ? prim(g, a->items[j].value) : NULL;
        }
        if (a->variadic) mil_op_add_arg_tuple(c, a->name, a->n, it);
        else if (it[0].value) mil_op_add_arg(c, a->name, it[0].value);
        else mil_op_add_arg_const(c, a->name, it[0].cst);
        if (it != items) free(it);
    }
    for (int i = 0; i < op->nattrs; i++)
        if (strcmp(op->attrs[i].name, "name")) mil_op_set_attr(c, op->attrs[i].name, op->attrs[i].val);
    for (int i = 0; i < op->nresults; i++) {
        MilValue *r = mil_op_add_result(c, op->results[i]->type, pass_unique_name(g->b, op->results[i]->name));
        g->prim[op->results[i]->id] = r;
    }
    if (c->nresults) mil_op_set_attr(c, "name", mil_const_string(g->p, c->results[0]->name));
    mil_block_append(&g->b->body, c);
    mark_dw(g, c);
}

static bool is_view(const MilOp *op) {
    return op->kind == MIL_OP_RESHAPE || op->kind == MIL_OP_TRANSPOSE || op->kind == MIL_OP_EXPAND_DIMS ||
           op->kind == MIL_OP_SQUEEZE;
}

/* [1, C, 1, S]: the ANE's I/O form */
static bool ane_shaped(const MilType *t) {
    return ty_known(t) && t->rank == 4 && t->dims[0] == 1 && t->dims[2] == 1;
}

/* A reshape of v in FUNC whose result is [1, C, 1, S] (v is not): tapping it
 * instead of v costs the same bytes and gives the ANE a legal output. */
static MilValue *ane_view_of(Grad *g, const MilValue *v) {
    if (ane_shaped(v->type) || !ty_known(v->type)) return NULL;
    for (MilOp *op = g->f->body.first; op; op = op->next)
        if (op->kind == MIL_OP_RESHAPE && arg_value(op, "x") == v && ane_shaped(op->results[0]->type)) return op->results[0];
    return NULL;
}

/* Element-wise ops (and casts) through which a value keeps its role. */
static bool is_elementwise(const MilOp *op) {
    const MilOpInfo *info = mil_op_info(op->kind);
    return info && ((info->flags & (OPF_UNARY | OPF_BINARY)) || op->kind == MIL_OP_CAST);
}

/* A per-row statistic: a reduction, or element-wise results of reductions
 * and constants (a norm's mean square and 1/rms). */
static bool is_stat(Grad *g, const MilValue *v, int depth) {
    const MilOp *op = v ? v->def : NULL;
    if (!op || depth > 8) return false;
    const MilOpInfo *info = mil_op_info(op->kind);
    if (info && (info->flags & OPF_REDUCE)) return true;
    if (!is_elementwise(op)) return false;
    bool any = false;
    for (int i = 0; i < op->nargs; i++)
        for (int j = 0; j < op->args[i].n; j++) {
            const MilValue *a = op->args[i].items[j].value;
            if (!a || !g->vary[a->id]) continue;
            if (!is_stat(g, a, depth + 1)) return false;
            any = true;
        }
    return any;
}

static bool is_softmax_probs(Grad *g, const MilValue *v, int depth);

/* A matmul of two activations one of which is (a view of) attention
 * probabilities, or whose result feeds them: the scores or the context. */
static bool is_act_matmul(const MilOp *op) {
    if (!op || op->kind != MIL_OP_MATMUL) return false;
    MilValue *x = arg_value(op, "x"), *y = arg_value(op, "y");
    return x && y && x->def && y->def && x->def->kind != MIL_OP_CONST && y->def->kind != MIL_OP_CONST;
}

/* softmax of (element-wise functions of) scores = a matmul of two
 * activations: attention probabilities */
static bool is_softmax_probs(Grad *g, const MilValue *v, int depth) {
    const MilOp *op = v ? v->def : NULL;
    if (!op || op->kind != MIL_OP_SOFTMAX || depth > 4) return false;
    const MilValue *s = arg_value(op, "x");
    for (int k = 0; s && s->def && k < 6; k++) {
        if (is_act_matmul(s->def)) return true;
        if (!is_elementwise(s->def)) return false;
        const MilValue *next = NULL;   /* the varying argument (the mask and the scale are not) */
        for (int i = 0; i < s->def->nargs; i++)
            for (int j = 0; j < s->def->args[i].n; j++) {
                const MilValue *a = s->def->args[i].items[j].value;
                if (a && g->vary[a->id]) next = next ? NULL : a;
            }
        s = next;
    }
    return false;
}

/* The attention core: its probabilities and its context matmul(P, V).
 * Tapping P ([B, H, S, S]) would cost S values per token and head and is
 * no ANE I/O shape; sdpa_backward needs only Q, K, V and dO. */
static bool is_attention_core(Grad *g, const MilValue *v) {
    if (is_softmax_probs(g, v, 0)) return true;
    if (!v->def || !is_act_matmul(v->def)) return false;
    for (int i = 0; i < 2; i++) {
        const MilValue *a = arg_value(v->def, i ? "y" : "x");
        while (a && a->def && is_view(a->def)) a = arg_value(a->def, "x");
        if (is_softmax_probs(g, a, 0)) return true;
    }
    return false;
}

static MilValue *tap(Grad *g, MilValue *v) {
    if (g->prim[v->id]) return g->prim[v->id];
    MilValue *r = add_bwd_param(g, v->type, v->name);
    GROW(g->taps, g->ntaps, g->captaps);
    g->taps[g->ntaps++] = v;
    return g->prim[v->id] = r;
}

static MilValue *prim(Grad *g, MilValue *v) {
    if (!v) return NULL;
    if (g->prim[v->id]) return g->prim[v->id];
    MilValue *r;
    if (!v->def) {
        r = add_bwd_param(g, v->type, v->name);
        GROW(g->fins, g->nfins, g->capfins);
        g->fins[g->nfins++] = v;
    } else if (v->def->kind == MIL_OP_CONST) {
        r = pb_const(g->b, NULL, (MilConst *)mil_value_const(v), v->name);
        mark_dw(g, r->def);
    } else if (is_view(v->def) ||
               (is_cheap_kind(v->def) &&
                (g->o->recompute == MIL_RECOMPUTE_CHEAP || g->force_cheap ||
                 (mil_op_info(v->def->kind)->flags & OPF_CONSTEXPR) || !g->vary[v->id]))) {
        /* values that do not depend on --wrt inputs (masks, positions) are
           recomputed from constants and inputs rather than tapped; so are
           views (reshape, transpose, ...): the tap is their source, so one
           tensor is never tapped twice under two shapes */
        recompute(g, v->def);
        return g->prim[v->id];
    } else if (is_cheap_kind(v->def) && (is_stat(g, v, 0) || is_attention_core(g, v))) {
        /* --recompute=none still recomputes per-row statistics (a [1, 1, 1, S]
           tap is below the ANE's minimum surface) and the attention core
           (see is_attention_core), with their arguments as under cheap */
        bool saved = g->force_cheap;
        g->force_cheap = true;
        recompute(g, v->def);
        g->force_cheap = saved;
        return g->prim[v->id];
    } else {
        MilValue *w = ane_view_of(g, v);
        if (!w) return tap(g, v);
        r = reshape_to(g, tap(g, w), v->type);
    }
    g->prim[v->id] = r;
    return r;
}

/* The forward value of argument `name` in FUNC_bwd (a literal becomes a
 * constant); NULL when absent. */
static MilValue *parg(Grad *g, const MilOp *op, const char *name) {
    const MilArg *a = mil_op_arg(op, name);
    if (!a || a->n != 1) return NULL;
    if (a->items[0].value) return prim(g, a->items[0].value);
    MilValue *c = pb_const(g->b, NULL, a->items[0].cst, name);
    mark_dw(g, c->def);
    return c;
}

/* ------------------------------------------------------------- adjoints */

static bool varies(Grad *g, const MilValue *v) { return v && g->vary[v->id]; }

/* adds a contribution to the adjoint of forward value v (summed later) */
static void acc(Grad *g, MilValue *v, MilValue *dv) {
    if (!v || !dv || !varies(g, v)) return;
    if (dv->type != v->type) dv = unbroadcast(g, dv, v->type);
    if (!dv) return;
    if (dv->type != v->type) {
        gerr(g, "grad: internal: gradient of '%s' has the wrong type (op '%s')", v->name,
             g->cur ? g->cur->opname : "?");
        return;
    }
    GROW(g->adj[v->id], g->nadj[v->id], g->capadj[v->id]);
    g->adj[v->id][g->nadj[v->id]++] = dv;
}

/* The summed adjoint of v (NULL when nothing flows into it). */
static MilValue *adjoint(Grad *g, MilValue *v) {
    int id = v->id, n = g->nadj[id];
    if (!n) return NULL;
    if (g->summed[id] || n == 1) {
        g->summed[id] = 1;
        return g->adj[id][0];
    }
    /* balanced tree: pairwise sums level by level */
    MilValue **a = g->adj[id];
    bool saved = g->dw, all_dw = true;
    for (int i = 0; i < n; i++) all_dw &= a[i]->id < g->capdw && g->dwop[a[i]->id];
    g->dw = all_dw;   /* a sum of dW parts is part of the dW */
    while (n > 1) {
        int m = 0;
        for (int i = 0; i + 1 < n; i += 2) a[m++] = bin(g, MIL_OP_ADD, a[i], a[i + 1]);
        if (n % 2) a[m++] = a[n - 1];
        n = m;
    }
    g->dw = saved;
    g->nadj[id] = 1;
    g->summed[id] = 1;
    return a[0];
}

/* -------------------------------------------------------------- rules
 * A rule gets the op and dy = the adjoint of its (first) result; it calls
 * acc() for the arguments that vary. */

static MilValue *xv(const MilOp *op) { return arg_value(op, "x"); }
static MilValue *yv(const MilOp *op) { return arg_value(op, "y"); }
static MilValue *out0(Grad *g, const MilOp *op) { return prim(g, op->results[0]); }

static double arg_f(const MilOp *op, const char *name, double dflt) {
    double v;
    if (arg_float(op, name, &v)) return v;
    const MilArgInfo *ai = mil_op_arg_info(op->kind, name);
    if (ai && ai->def && *ai->def != '*') return strtod(ai->def, NULL);
    return dflt;
}

static void r_add(Grad *g, MilOp *op, MilValue *dy) {
    acc(g, xv(op), dy);
    acc(g, yv(op), dy);
}

static void r_sub(Grad *g, MilOp *op, MilValue *dy) {
    acc(g, xv(op), dy);
    if (varies(g, yv(op))) acc(g, yv(op), scale(g, dy, -1));
}

static void r_mul(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op), *y = yv(op);
    if (varies(g, x)) acc(g, x, bin(g, MIL_OP_MUL, dy, parg(g, op, "y")));
    if (varies(g, y)) acc(g, y, bin(g, MIL_OP_MUL, dy, parg(g, op, "x")));
}

static void r_real_div(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op), *y = yv(op);
    MilValue *t = bin(g, MIL_OP_REAL_DIV, dy, parg(g, op, "y"));
    acc(g, x, t);
    if (varies(g, y)) acc(g, y, scale(g, bin(g, MIL_OP_MUL, t, out0(g, op)), -1));
}

static void r_pow(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op), *y = yv(op);
    double c;
    if (varies(g, x)) {
        MilValue *px = parg(g, op, "x"), *d;
        if (!y && arg_float(op, "y", &c)) {
            d = scale(g, bin(g, MIL_OP_POW, px, cst_scalar(g, dt_of(px), c - 1)), c);
        } else {
            MilValue *py = parg(g, op, "y");
            MilValue *ym1 = bin(g, MIL_OP_SUB, py, cst_scalar(g, dt_of(py), 1));
            d = bin(g, MIL_OP_MUL, py, bin(g, MIL_OP_POW, px, ym1));
        }
        acc(g, x, bin(g, MIL_OP_MUL, dy, d));
    }
    if (varies(g, y)) {
        MilOp *lg = nop(g, MIL_OP_LOG);
        mil_op_add_arg(lg, "x", parg(g, op, "x"));
        MilValue *l = fin(g, lg, "g");
        acc(g, y, bin(g, MIL_OP_MUL, dy, bin(g, MIL_OP_MUL, out0(g, op), l)));
    }
}

/* maximum / minimum: the gradient goes to the chosen argument (x on ties) */
static void r_minmax(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *m = bin(g, op->kind == MIL_OP_MAXIMUM ? MIL_OP_GREATER_EQUAL : MIL_OP_LESS_EQUAL, parg(g, op, "x"),
                      parg(g, op, "y"));
    MilValue *z = cst_scalar(g, dt_of(dy), 0);
    if (varies(g, xv(op))) acc(g, xv(op), select3(g, m, dy, z));
    if (varies(g, yv(op))) acc(g, yv(op), select3(g, m, z, dy));
}

static void r_unary(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    if (!varies(g, x)) return;
    MilDType dt = dt_of(dy);
    MilValue *d = NULL;   /* dx = d (complete) */
    switch (op->kind) {
    case MIL_OP_SQUARE: d = bin(g, MIL_OP_MUL, dy, scale(g, prim(g, x), 2)); break;
    case MIL_OP_SQRT: d = bin(g, MIL_OP_REAL_DIV, scale(g, dy, 0.5), out0(g, op)); break;
    case MIL_OP_RSQRT: {
        MilValue *o = out0(g, op);
        d = bin(g, MIL_OP_MUL, scale(g, dy, -0.5), bin(g, MIL_OP_MUL, o, bin(g, MIL_OP_MUL, o, o)));
        break;
    }
    case MIL_OP_INVERSE: {
        MilValue *o = out0(g, op);
        d = bin(g, MIL_OP_MUL, scale(g, dy, -1), bin(g, MIL_OP_MUL, o, o));
        break;
    }
    case MIL_OP_EXP: d = bin(g, MIL_OP_MUL, dy, out0(g, op)); break;
    case MIL_OP_LOG:
        d = bin(g, MIL_OP_REAL_DIV, dy, bin(g, MIL_OP_ADD, prim(g, x), cst_scalar(g, dt, arg_f(op, "epsilon", 0))));
        break;
    case MIL_OP_ABS: d = bin(g, MIL_OP_MUL, dy, un(g, MIL_OP_SIGN, prim(g, x))); break;
    case MIL_OP_TANH: {
        MilValue *o = out0(g, op);
        d = bin(g, MIL_OP_MUL, dy, bin(g, MIL_OP_SUB, cst_scalar(g, dt, 1), bin(g, MIL_OP_MUL, o, o)));
        break;
    }
    case MIL_OP_SIGMOID: {
        MilValue *o = out0(g, op);
        d = bin(g, MIL_OP_MUL, dy, bin(g, MIL_OP_MUL, o, bin(g, MIL_OP_SUB, cst_scalar(g, dt, 1), o)));
        break;
    }
    case MIL_OP_SILU: {
        /* s (1 + x (1 - s)) */
        MilValue *px = prim(g, x), *s = un(g, MIL_OP_SIGMOID, px);
        MilValue *t = bin(g, MIL_OP_MUL, px, bin(g, MIL_OP_SUB, cst_scalar(g, dt, 1), s));
        d = bin(g, MIL_OP_MUL, dy, bin(g, MIL_OP_MUL, s, bin(g, MIL_OP_ADD, t, cst_scalar(g, dt, 1))));
        break;
    }
    case MIL_OP_RELU: {
        MilValue *m = bin(g, MIL_OP_GREATER, prim(g, x), cst_scalar(g, dt, 0));
        d = select3(g, m, dy, cst_scalar(g, dt, 0));
        break;
    }
    case MIL_OP_LEAKY_RELU: {
        MilValue *m = bin(g, MIL_OP_GREATER_EQUAL, prim(g, x), cst_scalar(g, dt, 0));
        d = select3(g, m, dy, scale(g, dy, arg_f(op, "alpha", 0.01)));
        break;
    }
    case MIL_OP_SOFTPLUS: d = bin(g, MIL_OP_MUL, dy, un(g, MIL_OP_SIGMOID, prim(g, x))); break;
    case MIL_OP_ERF: {
        MilValue *px = prim(g, x);
        MilValue *e = un(g, MIL_OP_EXP, scale(g, bin(g, MIL_OP_MUL, px, px), -1));
        d = bin(g, MIL_OP_MUL, dy, scale(g, e, 1.1283791670955126));   /* 2 / sqrt(pi) */
        break;
    }
    case MIL_OP_GELU: {
        const char *mode = arg_str(op, "mode");
        MilValue *px = prim(g, x), *one = cst_scalar(g, dt, 1);
        if (!mode || !strcmp(mode, "EXACT")) {
            /* Phi(x) + x phi(x) */
            MilValue *cdf = scale(g, bin(g, MIL_OP_ADD, un(g, MIL_OP_ERF, scale(g, px, 0.7071067811865476)), one), 0.5);
            MilValue *pdf = scale(g, un(g, MIL_OP_EXP, scale(g, bin(g, MIL_OP_MUL, px, px), -0.5)), 0.3989422804014327);
            d = bin(g, MIL_OP_ADD, cdf, bin(g, MIL_OP_MUL, px, pdf));
        } else if (!strcmp(mode, "TANH_APPROXIMATION")) {
            /* t = tanh(k (x + a x^3)); 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 a x^2) */
            const double k = 0.7978845608028654, a = 0.044715;
            MilValue *x2 = bin(g, MIL_OP_MUL, px, px);
            MilValue *inner = scale(g, bin(g, MIL_OP_ADD, px, scale(g, bin(g, MIL_OP_MUL, x2, px), a)), k);
            MilValue *t = un(g, MIL_OP_TANH, inner);
            MilValue *left = scale(g, bin(g, MIL_OP_ADD, t, one), 0.5);
            MilValue *sech2 = bin(g, MIL_OP_SUB, one, bin(g, MIL_OP_MUL, t, t));
            MilValue *dinner = scale(g, bin(g, MIL_OP_ADD, scale(g, x2, 3 * a), one), k);
            d = bin(g, MIL_OP_ADD, left, scale(g, bin(g, MIL_OP_MUL, px, bin(g, MIL_OP_MUL, sech2, dinner)), 0.5));
        } else if (!strcmp(mode, "SIGMOID_APPROXIMATION")) {
            /* x sigmoid(1.702 x): s + 1.702 x s (1 - s) */
            MilValue *s = un(g, MIL_OP_SIGMOID, scale(g, px, 1.702));
            MilValue *ds = bin(g, MIL_OP_MUL, s, bin(g, MIL_OP_SUB, one, s));
            d = bin(g, MIL_OP_ADD, s, scale(g, bin(g, MIL_OP_MUL, px, ds), 1.702));
        } else {
            gerr(g, "grad: gelu mode '%s' has no gradient rule%s", mode, "");
            return;
        }
        d = bin(g, MIL_OP_MUL, dy, d);
        break;
    }
    case MIL_OP_CLIP: {
        MilValue *px = prim(g, x);
        MilValue *lo = bin(g, MIL_OP_GREATER_EQUAL, px, cst_scalar(g, dt, arg_f(op, "alpha", 0)));
        MilValue *hi = bin(g, MIL_OP_LESS_EQUAL, px, cst_scalar(g, dt, arg_f(op, "beta", 0)));
        MilOp *and = nop(g, MIL_OP_LOGICAL_AND);
        mil_op_add_arg(and, "x", lo);
        mil_op_add_arg(and, "y", hi);
        d = select3(g, fin(g, and, "g"), dy, cst_scalar(g, dt, 0));
        break;
    }
    case MIL_OP_IDENTITY: d = dy; break;
    case MIL_OP_CAST: {
        MilOp *c = nop(g, MIL_OP_CAST);
        mil_op_add_arg(c, "dtype", cst_str(g, mil_dtype_name(dt_of(x))));
        mil_op_add_arg(c, "x", dy);
        d = fin(g, c, "g");
        break;
    }
    default: return;
    }
    acc(g, x, d);
}

static void r_select(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *a = arg_value(op, "a"), *b = arg_value(op, "b");
    MilValue *c = parg(g, op, "cond"), *z = cst_scalar(g, dt_of(dy), 0);
    if (varies(g, a)) acc(g, a, select3(g, c, dy, z));
    if (varies(g, b)) acc(g, b, select3(g, c, z, dy));
}

/* the reduced axes of a reduction (all when absent), normalised */
static int red_axes(const MilOp *op, const MilValue *x, int64_t *ax) {
    int r = rank_of(x);
    int n = arg_ints(op, "axes", ax, MIL_MAX_RANK);
    if (n < 0) {
        for (int a = 0; a < r; a++) ax[a] = a;
        return r;
    }
    for (int i = 0; i < n; i++)
        if (ax[i] < 0) ax[i] += r;
    return n;
}

/* dy of a reduction as a keep_dims tensor (x's rank, reduced axes 1) */
static MilValue *keep_form(Grad *g, MilValue *dy, const MilValue *x, int n, const int64_t *ax) {
    int r = rank_of(x);
    int64_t dims[MIL_MAX_RANK];
    for (int a = 0; a < r; a++) dims[a] = x->type->dims[a];
    for (int i = 0; i < n; i++) dims[ax[i]] = 1;
    const MilType *t = mil_type_tensor(g->p, dt_of(dy), r, dims);
    return reshape_to(g, dy, t);
}

/* broadcast a keep_dims tensor to x's shape */
static MilValue *expand_to(Grad *g, MilValue *k, const MilValue *x) {
    if (!k) return NULL;
    if (k->type == x->type) return k;
    int r = rank_of(x);
    int64_t reps[MIL_MAX_RANK];
    for (int a = 0; a < r; a++) reps[a] = k->type->dims[a] == 1 ? x->type->dims[a] : 1;
    MilOp *op = nop(g, MIL_OP_TILE);
    mil_op_add_arg(op, "reps", cst_ints(g, r, reps, "reps"));
    mil_op_add_arg(op, "x", k);
    return fin(g, op, "g");
}

static void r_reduce(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    if (!varies(g, x)) return;
    if (!ty_known(x->type)) {
        gerr(g, "grad: '%s' needs a known input shape%s", op->opname, "");
        return;
    }
    int64_t ax[MIL_MAX_RANK];
    int n = red_axes(op, x, ax);
    MilValue *k = keep_form(g, dy, x, n, ax), *d = NULL;
    MilDType dt = dt_of(dy);
    int64_t cnt = 1;
    for (int i = 0; i < n; i++) cnt *= x->type->dims[ax[i]];
    switch (op->kind) {
    case MIL_OP_REDUCE_SUM: d = expand_to(g, k, x); break;
    case MIL_OP_REDUCE_MEAN: d = expand_to(g, scale(g, k, 1.0 / (double)cnt), x); break;
    case MIL_OP_REDUCE_SUM_SQUARE: d = bin(g, MIL_OP_MUL, scale(g, prim(g, x), 2), k); break;
    case MIL_OP_REDUCE_MAX:
    case MIL_OP_REDUCE_MIN: {
        MilValue *o = keep_form(g, out0(g, op), x, n, ax);
        MilValue *m = bin(g, MIL_OP_EQUAL, prim(g, x), o);
        d = select3(g, m, expand_to(g, k, x), cst_scalar(g, dt, 0));
        break;
    }
    case MIL_OP_REDUCE_LOG_SUM_EXP: {
        MilValue *o = keep_form(g, out0(g, op), x, n, ax);
        d = bin(g, MIL_OP_MUL, un(g, MIL_OP_EXP, bin(g, MIL_OP_SUB, prim(g, x), o)), k);
        break;
    }
    default: return;
    }
    acc(g, x, d);
}

static void r_softmax(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    if (!varies(g, x)) return;
    int64_t axis = -1;
    arg_int(op, "axis", &axis);
    MilValue *y = out0(g, op);
    MilValue *s = reduce(g, MIL_OP_REDUCE_SUM, bin(g, MIL_OP_MUL, dy, y), 1, &axis, true);
    acc(g, x, bin(g, MIL_OP_MUL, y, bin(g, MIL_OP_SUB, dy, s)));
}

/* gamma (shaped like x over the normalised axes) reshaped to broadcast
 * against x: x's rank, 1 outside the axes */
static const MilType *norm_type(Grad *g, MilDType dt, const MilValue *x, int n, const int64_t *ax) {
    int r = rank_of(x);
    int64_t dims[MIL_MAX_RANK];
    for (int a = 0; a < r; a++) dims[a] = 1;
    for (int i = 0; i < n; i++) dims[ax[i]] = x->type->dims[ax[i]];
    return mil_type_tensor(g->p, dt, r, dims);
}

static MilValue *norm_bcast(Grad *g, MilValue *gm, const MilValue *x, int n, const int64_t *ax) {
    return reshape_to(g, gm, norm_type(g, dt_of(gm), x, n, ax));
}

/* rms_norm and layer_norm: y = xhat * gamma (+ beta), xhat = (x - mu) r */
static void r_norm(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op), *gm = arg_value(op, "gamma"), *bt = arg_value(op, "beta");
    bool ln = op->kind == MIL_OP_LAYER_NORM;
    if (!ty_known(tt(x))) {
        gerr(g, "grad: '%s' needs a known input shape%s", op->opname, "");
        return;
    }
    int64_t ax[MIL_MAX_RANK];
    int n = red_axes(op, x, ax);
    MilDType dt = dt_of(x);
    MilValue *px = prim(g, x);
    MilValue *xc = ln ? bin(g, MIL_OP_SUB, px, reduce(g, MIL_OP_REDUCE_MEAN, px, n, ax, true)) : px;
    MilValue *ms = reduce(g, MIL_OP_REDUCE_MEAN, bin(g, MIL_OP_MUL, xc, xc), n, ax, true);
    MilOp *rs = nop(g, MIL_OP_RSQRT);
    mil_op_add_arg(rs, "epsilon", cst_scalar(g, dt, arg_f(op, "epsilon", 1e-5)));
    mil_op_add_arg(rs, "x", ms);
    MilValue *r = fin(g, rs, "rrms");
    MilValue *xhat = bin(g, MIL_OP_MUL, xc, r);
    bool has_g = mil_op_arg(op, "gamma") != NULL;
    MilValue *gb = has_g ? norm_bcast(g, parg(g, op, "gamma"), x, n, ax) : NULL;
    if (varies(g, x)) {
        MilValue *u = has_g ? bin(g, MIL_OP_MUL, dy, gb) : dy;
        MilValue *m2 = reduce(g, MIL_OP_REDUCE_MEAN, bin(g, MIL_OP_MUL, u, xhat), n, ax, true);
        MilValue *t = bin(g, MIL_OP_SUB, u, bin(g, MIL_OP_MUL, xhat, m2));
        if (ln) t = bin(g, MIL_OP_SUB, t, reduce(g, MIL_OP_REDUCE_MEAN, u, n, ax, true));
        acc(g, x, bin(g, MIL_OP_MUL, r, t));
    }
    const MilType *nt = norm_type(g, dt_of(dy), x, n, ax);
    if (varies(g, gm)) acc(g, gm, reshape_to(g, unbroadcast(g, bin(g, MIL_OP_MUL, dy, xhat), nt), gm->type));
    if (varies(g, bt)) acc(g, bt, reshape_to(g, unbroadcast(g, dy, nt), bt->type));
}

/* the forward operand `name` of a matmul in FUNC_bwd; rank 1 (is1): x as
 * [1, K], y as [K, 1] */
static MilValue *mm_operand(Grad *g, const MilOp *op, const char *name, bool is1) {
    MilValue *v = parg(g, op, name);
    if (!is1 || !v) return v;
    bool isx = !strcmp(name, "x");
    int64_t k = v->type->dims[0], d[2] = {isx ? 1 : k, isx ? k : 1};
    return reshape_dims(g, v, 2, d);
}

/* x without its size-1 axis `back` places from the end */
static MilValue *drop_unit_axis(Grad *g, MilValue *x, int back) {
    if (!x || !ty_known(x->type)) return x;
    int r = x->type->rank;
    int64_t d[MIL_MAX_RANK];
    for (int a = 0, k = 0; a < r; a++)
        if (a != r - back) d[k++] = x->type->dims[a];
    return reshape_dims(g, x, r - 1, d);
}

/* matmul; a rank-1 operand is x as [1, K] / y as [K, 1] (its transpose flag
 * ignored), with dy reshaped to the promoted result (the dropped axis back
 * as 1); the promoted gradient loses that axis again, and unbroadcast sums
 * its batch axes. */
static void r_matmul(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op), *y = yv(op);
    bool tx = arg_bool(op, "transpose_x", false), ty = arg_bool(op, "transpose_y", false);
    bool x1 = rank_of(x) == 1, y1 = rank_of(y) == 1;
    if (rank_of(x) < 1 || rank_of(y) < 1) {
        gerr(g, "grad: matmul needs tensor operands%s%s", "", "");
        return;
    }
    MilValue *d2 = dy;
    if (x1 || y1) {
        if (!ty_known(x->type) || !ty_known(y->type) || !ty_known(tt(dy))) {
            gerr(g, "grad: matmul with a rank-1 operand needs known shapes%s%s", "", "");
            return;
        }
        int64_t dims[MIL_MAX_RANK + 2];
        int r = dy->type->rank;
        for (int a = 0; a < r; a++) dims[a] = dy->type->dims[a];
        if (y1) dims[r++] = 1;
        if (x1) {
            for (int a = r; a > r - 1; a--) dims[a] = dims[a - 1];
            dims[r - 1] = 1;
            r++;
        }
        d2 = reshape_dims(g, dy, r, dims);
        if (x1) tx = false;
        if (y1) ty = false;
    }
    if (varies(g, x)) {
        MilValue *py = mm_operand(g, op, "y", y1), *d;
        if (!tx) d = ty ? matmul(g, d2, py, false, false) : matmul(g, d2, py, false, true);
        else d = ty ? matmul(g, py, d2, true, true) : matmul(g, py, d2, false, true);
        acc(g, x, x1 ? drop_unit_axis(g, d, 2) : d);
    }
    if (varies(g, y)) {
        bool w = !y->def;   /* a weight input: dW */
        bool saved = g->dw;
        g->dw = w && g->o->split_weight_grads;
        MilValue *px = mm_operand(g, op, "x", x1), *d;
        if (!ty) d = tx ? matmul(g, px, d2, false, false) : matmul(g, px, d2, true, false);
        else d = tx ? matmul(g, d2, px, true, true) : matmul(g, d2, px, true, false);
        acc(g, y, y1 ? drop_unit_axis(g, d, 1) : d);
        g->dw = saved;
    }
}

static void r_linear(Grad *g, MilOp *op, MilValue *dy) {
    /* weight and bias are constants: only dx = dy W */
    if (varies(g, xv(op))) acc(g, xv(op), matmul(g, dy, parg(g, op, "weight"), false, false));
}

static MilValue *conv_op(Grad *g, MilValue *x, MilValue *w, int ns, const int64_t *st, const int64_t *dil,
                         const int64_t *pad, int64_t groups) {
    if (!x || !w) return NULL;
    MilOp *op = nop(g, MIL_OP_CONV);
    mil_op_add_arg(op, "dilations", cst_ints(g, ns, dil, "dilations"));
    mil_op_add_arg(op, "groups", cst_scalar(g, MIL_DT_INT32, (double)groups));
    mil_op_add_arg(op, "pad", cst_ints(g, 2 * ns, pad, "pad"));
    mil_op_add_arg(op, "pad_type", cst_str(g, "custom"));
    mil_op_add_arg(op, "strides", cst_ints(g, ns, st, "strides"));
    mil_op_add_arg(op, "weight", w);
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

static MilValue *slice_size(Grad *g, MilValue *x, int r, const int64_t *begin, const int64_t *size) {
    if (!x) return NULL;
    MilOp *op = nop(g, MIL_OP_SLICE_BY_SIZE);
    mil_op_add_arg(op, "begin", cst_ints(g, r, begin, "begin"));
    mil_op_add_arg(op, "size", cst_ints(g, r, size, "size"));
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

/* dy [N, O, *out] with s - 1 zeros between neighbours along each spatial
 * axis: per axis, a new axis after it padded to s, merged, the tail cut. */
static MilValue *dilate(Grad *g, MilValue *dy, int ns, const int64_t *st) {
    for (int i = 0; i < ns && dy; i++) {
        if (st[i] <= 1) continue;
        const MilType *t = dy->type;
        int r = t->rank, a = 2 + i;
        int64_t dims[MIL_MAX_RANK], pad[2 * MIL_MAX_RANK] = {0}, begin[MIL_MAX_RANK] = {0}, size[MIL_MAX_RANK];
        for (int k = 0, j = 0; k < r; k++) {
            dims[j++] = t->dims[k];
            if (k == a) dims[j++] = 1;
        }
        MilValue *u = reshape_dims(g, dy, r + 1, dims);
        int np = r + 1 - (a + 1);   /* pads cover the axes from a + 1 on */
        pad[1] = st[i] - 1;
        MilOp *op = nop(g, MIL_OP_PAD);
        mil_op_add_arg(op, "constant_val", cst_scalar(g, t->dtype, 0));
        mil_op_add_arg(op, "mode", cst_str(g, "constant"));
        mil_op_add_arg(op, "pad", cst_ints(g, 2 * np, pad, "pad"));
        mil_op_add_arg(op, "x", u);
        u = u ? fin(g, op, "g") : NULL;
        for (int k = 0; k < r; k++) dims[k] = t->dims[k];
        dims[a] = t->dims[a] * st[i];
        u = reshape_dims(g, u, r, dims);
        for (int k = 0; k < r; k++) size[k] = -1;
        size[a] = (t->dims[a] - 1) * st[i] + 1;
        dy = slice_size(g, u, r, begin, size);
    }
    return dy;
}

/* conv with any strides, dilations, padding and groups.  With the explicit
 * pads (pb, pa) of each spatial axis, Hp = H + pb + pa:
 *   dx = slice [pb, pb + H) of conv(dilate(dy, s), W', dilations = d,
 *        pad = ((k-1) d, (k-1) d + unused tail)), W' = W flipped with its
 *        channel axes swapped per group;
 *   dW = conv(x as [C/G, G*N, *], weight = dy as [O, N, *out], groups G,
 *        strides = d, dilations = s, pad = (pb, pa)), first k of each axis,
 *        [C/G, O, k] -> [O, C/G, k].
 * 1x1 kernels with stride 1, no padding and groups 1 (the ANE's hot case)
 * are matmuls instead. */
static void r_conv(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op), *w = arg_value(op, "weight"), *b = arg_value(op, "bias");
    const MilType *wt = arg_type(op, "weight"), *yt = op->results[0]->type;
    if (!ty_known(tt(x)) || rank_of(x) < 3 || !ty_known(wt) || !ty_known(yt) || wt->rank != x->type->rank) {
        gerr(g, "grad: conv needs known shapes of x, weight and result%s%s", "", "");
        return;
    }
    const MilType *xt = x->type;
    int r = xt->rank, ns = r - 2;
    int64_t st[MIL_MAX_RANK], dil[MIL_MAX_RANK], pv[2 * MIL_MAX_RANK], pb[MIL_MAX_RANK], pa[MIL_MAX_RANK], G = 1;
    for (int i = 0; i < ns; i++) st[i] = dil[i] = 1;
    for (int i = 0; i < 2 * ns; i++) pv[i] = 0;
    arg_ints(op, "strides", st, MIL_MAX_RANK);
    arg_ints(op, "dilations", dil, MIL_MAX_RANK);
    arg_int(op, "groups", &G);
    const char *pt = arg_str(op, "pad_type");
    if (!pt) pt = "valid";
    if (!strcmp(pt, "custom")) arg_ints(op, "pad", pv, 2 * MIL_MAX_RANK);
    bool simple = G == 1;
    for (int i = 0; i < ns; i++) {
        int64_t in = xt->dims[2 + i], k = wt->dims[2 + i], dk = (k - 1) * dil[i] + 1;
        if (!strcmp(pt, "same") || !strcmp(pt, "same_lower")) {
            int64_t tot = ((in + st[i] - 1) / st[i] - 1) * st[i] + dk - in;
            if (tot < 0) tot = 0;
            pb[i] = !strcmp(pt, "same") ? tot / 2 : tot - tot / 2;
            pa[i] = tot - pb[i];
        } else {
            pb[i] = pv[2 * i];
            pa[i] = pv[2 * i + 1];
        }
        simple &= k == 1 && st[i] == 1 && pb[i] == 0 && pa[i] == 0;
    }
    int64_t N = xt->dims[0], C = xt->dims[1], O = wt->dims[0];
    if (simple) {
        int64_t S = mil_type_numel(xt) / (N * C), w2[2] = {O, C};
        MilValue *pw = parg(g, op, "weight");
        int64_t d3[3] = {N, O, S};
        MilValue *g3 = reshape_dims(g, dy, 3, d3);
        if (varies(g, x)) {
            /* dx[n, c, s] = sum_o W[o, c] dy[n, o, s] */
            MilValue *dx = matmul(g, reshape_dims(g, pw, 2, w2), g3, true, false);
            acc(g, x, reshape_to(g, dx, xt));
        }
        if (varies(g, w)) {
            bool saved = g->dw;
            g->dw = !w->def && g->o->split_weight_grads;
            int64_t x3[3] = {N, C, S};
            /* dW[o, c] = sum_{n, s} dy[n, o, s] x[n, c, s] */
            MilValue *dw = matmul(g, g3, reshape_dims(g, parg(g, op, "x"), 3, x3), false, true);
            if (N > 1) {
                int64_t a0 = 0;
                dw = reduce(g, MIL_OP_REDUCE_SUM, dw, 1, &a0, false);
            }
            acc(g, w, reshape_to(g, dw, wt));
            g->dw = saved;
        }
    } else {
        int64_t Cg = C / G, Og = O / G, dims[MIL_MAX_RANK], perm[MIL_MAX_RANK];
        if (varies(g, x)) {
            /* W [O, Cg, k] -> [G, Og, Cg, k] -> [G, Cg, Og, k] -> [C, Og, k], flipped */
            MilValue *pw = parg(g, op, "weight");
            dims[0] = G, dims[1] = Og, dims[2] = Cg;
            for (int i = 0; i < ns; i++) dims[3 + i] = wt->dims[2 + i];
            MilValue *t = reshape_dims(g, pw, r + 1, dims);
            for (int a = 0; a <= r; a++) perm[a] = a;
            perm[1] = 2, perm[2] = 1;
            t = transpose(g, t, r + 1, perm);
            dims[0] = C, dims[1] = Og;
            for (int i = 0; i < ns; i++) dims[2 + i] = wt->dims[2 + i];
            t = reshape_dims(g, t, r, dims);
            int64_t axes[MIL_MAX_RANK], one[MIL_MAX_RANK], pad[2 * MIL_MAX_RANK], begin[MIL_MAX_RANK] = {0},
                size[MIL_MAX_RANK];
            for (int i = 0; i < ns; i++) axes[i] = 2 + i;
            MilOp *rv = nop(g, MIL_OP_REVERSE);
            mil_op_add_arg(rv, "axes", cst_ints(g, ns, axes, "axes"));
            mil_op_add_arg(rv, "x", t);
            MilValue *wf = t ? fin(g, rv, "g") : NULL;
            for (int i = 0; i < ns; i++) {
                int64_t k = wt->dims[2 + i], Ho = yt->dims[2 + i];
                int64_t e = (Ho - 1) * st[i] + (k - 1) * dil[i] + 1;
                int64_t tail = xt->dims[2 + i] + pb[i] + pa[i] - e;
                one[i] = 1;
                pad[2 * i] = (k - 1) * dil[i];
                pad[2 * i + 1] = (k - 1) * dil[i] + tail;
                begin[2 + i] = pb[i];
                size[2 + i] = xt->dims[2 + i];
            }
            size[0] = size[1] = -1;
            MilValue *dxp = conv_op(g, dilate(g, dy, ns, st), wf, ns, one, dil, pad, G);
            acc(g, x, slice_size(g, dxp, r, begin, size));
        }
        if (varies(g, w)) {
            bool saved = g->dw;
            g->dw = !w->def && g->o->split_weight_grads;
            /* x [N, C, *] -> [N, G, Cg, *] -> [Cg, G, N, *] -> [Cg, G*N, *] */
            dims[0] = N, dims[1] = G, dims[2] = Cg;
            for (int i = 0; i < ns; i++) dims[3 + i] = xt->dims[2 + i];
            MilValue *t = reshape_dims(g, parg(g, op, "x"), r + 1, dims);
            for (int a = 0; a <= r; a++) perm[a] = a;
            perm[0] = 2, perm[2] = 0;
            t = transpose(g, t, r + 1, perm);
            dims[0] = Cg, dims[1] = G * N;
            for (int i = 0; i < ns; i++) dims[2 + i] = xt->dims[2 + i];
            t = reshape_dims(g, t, r, dims);
            /* dy [N, O, *out] -> [N, G, Og, *] -> [G, Og, N, *] -> [O, N, *] */
            dims[0] = N, dims[1] = G, dims[2] = Og;
            for (int i = 0; i < ns; i++) dims[3 + i] = yt->dims[2 + i];
            MilValue *u = reshape_dims(g, dy, r + 1, dims);
            perm[0] = 1, perm[1] = 2, perm[2] = 0;
            for (int a = 3; a <= r; a++) perm[a] = a;
            u = transpose(g, u, r + 1, perm);
            dims[0] = O, dims[1] = N;
            for (int i = 0; i < ns; i++) dims[2 + i] = yt->dims[2 + i];
            u = reshape_dims(g, u, r, dims);
            int64_t pad[2 * MIL_MAX_RANK], begin[MIL_MAX_RANK] = {0}, size[MIL_MAX_RANK];
            for (int i = 0; i < ns; i++) {
                pad[2 * i] = pb[i];
                pad[2 * i + 1] = pa[i];
                size[2 + i] = wt->dims[2 + i];
            }
            size[0] = size[1] = -1;
            MilValue *dw = slice_size(g, conv_op(g, t, u, ns, dil, st, pad, G), r, begin, size);
            for (int a = 0; a < r; a++) perm[a] = a;
            perm[0] = 1, perm[1] = 0;
            acc(g, w, transpose(g, dw, r, perm));
            g->dw = saved;
        }
    }
    if (varies(g, b)) {
        int64_t ax[MIL_MAX_RANK], k = 0;
        for (int a = 0; a < xt->rank; a++)
            if (a != 1) ax[k++] = a;
        acc(g, b, reshape_to(g, reduce(g, MIL_OP_REDUCE_SUM, dy, (int)k, ax, false), b->type));
    }
}

static void r_reshape(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    if (varies(g, x)) acc(g, x, reshape_to(g, dy, x->type));
}

static void r_transpose(Grad *g, MilOp *op, MilValue *dy) {
    int64_t perm[MIL_MAX_RANK], inv[MIL_MAX_RANK];
    int n = arg_ints(op, "perm", perm, MIL_MAX_RANK);
    for (int i = 0; i < n; i++) inv[perm[i] < 0 ? perm[i] + n : perm[i]] = i;
    acc(g, xv(op), transpose(g, dy, n, inv));
}

static void r_band_part(Grad *g, MilOp *op, MilValue *dy) {
    MilOp *b = nop(g, MIL_OP_BAND_PART);
    int64_t lo = -1, up = -1;
    arg_int(op, "lower", &lo);
    arg_int(op, "upper", &up);
    mil_op_add_arg(b, "lower", cst_scalar(g, MIL_DT_INT32, (double)lo));
    mil_op_add_arg(b, "upper", cst_scalar(g, MIL_DT_INT32, (double)up));
    mil_op_add_arg(b, "x", dy);
    acc(g, xv(op), fin(g, b, "g"));
}

static void r_concat(Grad *g, MilOp *op, MilValue *dy) {
    const MilArg *vals = mil_op_arg(op, "values");
    int64_t axis = 0;
    if (!vals || !arg_int(op, "axis", &axis) || !ty_known(tt(dy))) {
        gerr(g, "grad: concat needs a constant axis and a known result shape%s%s", "", "");
        return;
    }
    int r = rank_of(dy);
    if (axis < 0) axis += r;
    if (arg_bool(op, "interleave", false)) {
        /* inputs of one shape, d along the axis: result element j * n + i
           is input i's element j -- dy as [.., d, n, ..], input i at i */
        int n = vals->n;
        int64_t dims[MIL_MAX_RANK + 1], begin[MIL_MAX_RANK + 1] = {0}, size[MIL_MAX_RANK + 1];
        for (int a = 0, k = 0; a < r; a++) {
            if (a == axis) {
                dims[k++] = dy->type->dims[a] / n;
                dims[k++] = n;
            } else {
                dims[k++] = dy->type->dims[a];
            }
        }
        for (int a = 0; a <= r; a++) size[a] = -1;
        size[axis + 1] = 1;
        MilValue *u = reshape_dims(g, dy, r + 1, dims);
        for (int i = 0; i < n; i++, begin[axis + 1]++) {
            MilValue *v = vals->items[i].value;
            if (!varies(g, v)) continue;
            acc(g, v, reshape_to(g, slice_size(g, u, r + 1, begin, size), v->type));
        }
        return;
    }
    int64_t begin[MIL_MAX_RANK] = {0}, size[MIL_MAX_RANK];
    for (int a = 0; a < r; a++) size[a] = -1;
    for (int i = 0; i < vals->n; i++) {
        const MilType *t = vals->items[i].value ? vals->items[i].value->type : vals->items[i].cst->type;
        size[axis] = t->dims[axis];
        if (varies(g, vals->items[i].value)) {
            MilOp *s = nop(g, MIL_OP_SLICE_BY_SIZE);
            mil_op_add_arg(s, "begin", cst_ints(g, r, begin, "begin"));
            mil_op_add_arg(s, "size", cst_ints(g, r, size, "size"));
            mil_op_add_arg(s, "x", dy);
            acc(g, vals->items[i].value, fin(g, s, "g"));
        }
        begin[axis] += t->dims[axis];
    }
}

static void r_stack(Grad *g, MilOp *op, MilValue *dy) {
    const MilArg *vals = mil_op_arg(op, "values");
    int64_t axis = 0;
    arg_int(op, "axis", &axis);
    int r = rank_of(dy);
    if (axis < 0) axis += r;
    int64_t begin[MIL_MAX_RANK] = {0}, size[MIL_MAX_RANK];
    for (int a = 0; a < r; a++) size[a] = -1;
    size[axis] = 1;
    for (int i = 0; vals && i < vals->n; i++, begin[axis]++) {
        MilValue *v = vals->items[i].value;
        if (!varies(g, v)) continue;
        MilOp *s = nop(g, MIL_OP_SLICE_BY_SIZE);
        mil_op_add_arg(s, "begin", cst_ints(g, r, begin, "begin"));
        mil_op_add_arg(s, "size", cst_ints(g, r, size, "size"));
        mil_op_add_arg(s, "x", dy);
        acc(g, v, reshape_to(g, fin(g, s, "g"), v->type));
    }
}

/* split: the adjoints of the parts (zeros where none) concatenated */
static void r_split(Grad *g, MilOp *op, MilValue *dy) {
    (void)dy;
    MilValue *x = xv(op);
    if (!varies(g, x)) return;
    int64_t axis = 0;
    arg_int(op, "axis", &axis);
    MilBinding *items = calloc((size_t)op->nresults, sizeof *items);
    for (int i = 0; i < op->nresults; i++) {
        MilValue *a = adjoint(g, op->results[i]);
        items[i].value = a ? a : zeros(g, op->results[i]->type);
    }
    MilOp *c = nop(g, MIL_OP_CONCAT);
    mil_op_add_arg(c, "axis", cst_scalar(g, MIL_DT_INT32, (double)axis));
    mil_op_add_arg(c, "interleave", cst_bool(g, false));
    mil_op_add_arg_tuple(c, "values", op->nresults, items);
    free(items);
    acc(g, x, fin(g, c, "g"));
}

/* slices: dx = slice_update(zeros, dy) over the same window */
static void r_slice(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    if (!varies(g, x)) return;
    if (!ty_known(x->type)) {
        gerr(g, "grad: '%s' needs a known input shape%s", op->opname, "");
        return;
    }
    int r = x->type->rank;
    MilOp *u = nop(g, MIL_OP_SLICE_UPDATE);
    if (op->kind == MIL_OP_SLICE_BY_SIZE) {
        int64_t b[MIL_MAX_RANK], s[MIL_MAX_RANK], e[MIL_MAX_RANK];
        if (arg_ints(op, "begin", b, MIL_MAX_RANK) != r || arg_ints(op, "size", s, MIL_MAX_RANK) != r) {
            gerr(g, "grad: slice_by_size needs constant begin and size%s%s", "", "");
            return;
        }
        for (int a = 0; a < r; a++) {
            if (b[a] < 0) b[a] += x->type->dims[a];
            e[a] = s[a] < 0 ? x->type->dims[a] : b[a] + s[a];
        }
        mil_op_add_arg(u, "begin", cst_ints(g, r, b, "begin"));
        mil_op_add_arg(u, "end", cst_ints(g, r, e, "end"));
    } else {
        static const char *const names[] = {"begin", "begin_mask", "end", "end_mask", "squeeze_mask", "stride"};
        for (int i = 0; i < 6; i++)
            if (mil_op_arg(op, names[i])) mil_op_add_arg(u, names[i], parg(g, op, names[i]));
    }
    mil_op_add_arg(u, "update", reshape_to(g, dy, op->results[0]->type));
    mil_op_add_arg(u, "x", zeros(g, x->type));
    acc(g, x, fin(g, u, "g"));
}

static void r_expand(Grad *g, MilOp *op, MilValue *dy) { acc(g, xv(op), reshape_to(g, dy, xv(op)->type)); }

static void r_tile(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    int64_t reps[MIL_MAX_RANK];
    int r = rank_of(x);
    if (!varies(g, x)) return;
    if (arg_ints(op, "reps", reps, MIL_MAX_RANK) != r || !ty_known(x->type)) {
        gerr(g, "grad: tile needs constant reps and a known shape%s%s", "", "");
        return;
    }
    /* [r0, d0, r1, d1, ...] summed over the r axes */
    int64_t dims[2 * MIL_MAX_RANK], ax[MIL_MAX_RANK];
    for (int a = 0; a < r; a++) {
        dims[2 * a] = reps[a];
        dims[2 * a + 1] = x->type->dims[a];
        ax[a] = 2 * a;
    }
    MilValue *t = reshape_dims(g, dy, 2 * r, dims);
    acc(g, x, reshape_to(g, reduce(g, MIL_OP_REDUCE_SUM, t, r, ax, false), x->type));
}

/* zero padding of x along axis a: before / after elements */
static MilValue *zpad(Grad *g, MilValue *x, int a, int64_t before, int64_t after) {
    if (!x || (!before && !after)) return x;
    int r = x->type->rank;
    int64_t pad[2 * MIL_MAX_RANK] = {0};
    pad[2 * a] = before;
    pad[2 * a + 1] = after;
    MilOp *op = nop(g, MIL_OP_PAD);
    mil_op_add_arg(op, "constant_val", cst_scalar(g, x->type->dtype, 0));
    mil_op_add_arg(op, "mode", cst_str(g, "constant"));
    mil_op_add_arg(op, "pad", cst_ints(g, 2 * r, pad, "pad"));
    mil_op_add_arg(op, "x", x);
    return fin(g, op, "g");
}

static MilValue *slice_axis(Grad *g, MilValue *x, int a, int64_t begin, int64_t len) {
    int r = x->type->rank;
    int64_t b[MIL_MAX_RANK] = {0}, sz[MIL_MAX_RANK];
    for (int k = 0; k < r; k++) sz[k] = -1;
    b[a] = begin;
    sz[a] = len;
    return slice_size(g, x, r, b, sz);
}

/* pad: constant -- the window of x; reflect / replicate -- per padded axis
 * (the modes are separable), the window plus the border parts folded back:
 * reflect sends out[pb - 1 - k] to x[1 + k] and out[pb + D + k] to
 * x[D - 2 - k] (reversed slices, zero-padded into place), replicate sums
 * each border into x[0] / x[D - 1]. */
static void r_pad(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    const char *mode = arg_str(op, "mode");
    int64_t v[2 * MIL_MAX_RANK];
    int n = arg_ints(op, "pad", v, 2 * MIL_MAX_RANK), r = rank_of(x);
    if (!varies(g, x)) return;
    if (!mode) mode = "constant";
    bool refl = !strcmp(mode, "reflect"), repl = !strcmp(mode, "replicate");
    if ((!refl && !repl && strcmp(mode, "constant")) || n < 0 || n % 2 || n / 2 > r || !ty_known(x->type)) {
        gerr(g, "grad: pad has a gradient rule for modes constant, reflect and replicate with constant pads (not '%s')%s",
             mode, "");
        return;
    }
    if (!refl && !repl) {
        int64_t b[MIL_MAX_RANK] = {0}, s[MIL_MAX_RANK];
        for (int a = 0; a < r; a++) s[a] = x->type->dims[a];
        for (int i = 0; i < n / 2; i++) b[r - n / 2 + i] = v[2 * i];
        acc(g, x, slice_size(g, dy, r, b, s));
        return;
    }
    MilValue *cur = dy;
    for (int i = 0; i < n / 2 && cur; i++) {
        int a = r - n / 2 + i;
        int64_t pb = v[2 * i], pa = v[2 * i + 1], D = x->type->dims[a];
        if (!pb && !pa) continue;
        MilValue *sum = slice_axis(g, cur, a, pb, D);
        int64_t ax = a;
        if (pb) {
            MilValue *part = slice_axis(g, cur, a, 0, pb), *t;
            if (refl) {
                MilOp *rv = nop(g, MIL_OP_REVERSE);
                mil_op_add_arg(rv, "axes", cst_ints(g, 1, &ax, "axes"));
                mil_op_add_arg(rv, "x", part);
                t = zpad(g, part ? fin(g, rv, "g") : NULL, a, 1, D - 1 - pb);
            } else {
                t = zpad(g, reduce(g, MIL_OP_REDUCE_SUM, part, 1, &ax, true), a, 0, D - 1);
            }
            sum = bin(g, MIL_OP_ADD, sum, t);
        }
        if (pa) {
            MilValue *part = slice_axis(g, cur, a, pb + D, pa), *t;
            if (refl) {
                MilOp *rv = nop(g, MIL_OP_REVERSE);
                mil_op_add_arg(rv, "axes", cst_ints(g, 1, &ax, "axes"));
                mil_op_add_arg(rv, "x", part);
                t = zpad(g, part ? fin(g, rv, "g") : NULL, a, D - 1 - pa, 1);
            } else {
                t = zpad(g, reduce(g, MIL_OP_REDUCE_SUM, part, 1, &ax, true), a, D - 1, 0);
            }
            sum = bin(g, MIL_OP_ADD, sum, t);
        }
        cur = sum;
    }
    acc(g, x, cur);
}

/* gather with batch_dims = b: x [B.., P.., D, Q..], indices [B.., I..],
 * y [B.., P.., I.., Q..].  With x as [B*D, P*Q] (D moved before P) and the
 * indices offset by b * D, it is a plain gather along axis 0, so
 *   dx = scatter-add of dy as [B*I, P*Q] into zeros [B*D, P*Q]
 * at (indices mod D) + b * D, back to [B, P, D, Q] and x's shape. */
static void gather_batched(Grad *g, MilOp *op, MilValue *dy, int64_t axis, int64_t bd) {
    MilValue *x = xv(op), *ind = arg_value(op, "indices");
    const MilType *it = arg_type(op, "indices");
    if (!ty_known(x->type) || !ty_known(it) || !ty_known(tt(dy)) || bd > axis) {
        gerr(g, "grad: gather with batch_dims needs known shapes%s%s", "", "");
        return;
    }
    int64_t B = 1, P = 1, D = x->type->dims[axis], Q = 1, I = 1;
    for (int a = 0; a < bd; a++) B *= x->type->dims[a];
    for (int a = (int)bd; a < axis; a++) P *= x->type->dims[a];
    for (int a = (int)axis + 1; a < x->type->rank; a++) Q *= x->type->dims[a];
    for (int a = (int)bd; a < it->rank; a++) I *= it->dims[a];
    MilDType idt = it->dtype;
    /* indices: [B*I], normalised to [0, D), + b * D */
    MilValue *pi = ind ? prim(g, ind) : parg(g, op, "indices");
    int64_t n1 = B * I, d4[4];
    MilValue *flat = reshape_dims(g, pi, 1, &n1);
    MilValue *neg = bin(g, MIL_OP_LESS, flat, cst_scalar(g, idt, 0));
    flat = select3(g, neg, bin(g, MIL_OP_ADD, flat, cst_scalar(g, idt, (double)D)), flat);
    int32_t *off = malloc(sizeof *off * (size_t)(n1 ? n1 : 1));
    for (int64_t k = 0; k < n1; k++) off[k] = (int32_t)((k / I) * D);
    const MilType *ot = mil_type_tensor(g->p, MIL_DT_INT32, 1, &n1);
    MilValue *offs = pb_const(g->b, NULL, mil_const_tensor(g->p, ot, off, n1), "batch_offsets");
    mark_dw(g, offs->def);
    free(off);
    if (idt != MIL_DT_INT32) {
        MilOp *c = nop(g, MIL_OP_CAST);
        mil_op_add_arg(c, "dtype", cst_str(g, mil_dtype_name(idt)));
        mil_op_add_arg(c, "x", offs);
        offs = fin(g, c, "g");
    }
    flat = bin(g, MIL_OP_ADD, flat, offs);
    /* dy [B, P, I, Q] -> [B, I, P, Q] -> [B*I, P*Q] */
    d4[0] = B, d4[1] = P, d4[2] = I, d4[3] = Q;
    static const int64_t swap[4] = {0, 2, 1, 3};
    MilValue *u = transpose(g, reshape_dims(g, dy, 4, d4), 4, swap);
    int64_t d2[2] = {B * I, P * Q};
    u = reshape_dims(g, u, 2, d2);
    int64_t z2[2] = {B * D, P * Q};
    MilOp *s = nop(g, MIL_OP_SCATTER);
    mil_op_add_arg(s, "axis", cst_scalar(g, MIL_DT_INT32, 0));
    mil_op_add_arg(s, "data", zeros(g, mil_type_tensor(g->p, dt_of(dy), 2, z2)));
    mil_op_add_arg(s, "indices", flat);
    mil_op_add_arg(s, "mode", cst_str(g, "add"));
    mil_op_add_arg(s, "updates", u);
    MilValue *dx = fin(g, s, "g");
    /* [B*D, P*Q] -> [B, D, P, Q] -> [B, P, D, Q] -> x */
    d4[0] = B, d4[1] = D, d4[2] = P, d4[3] = Q;
    dx = transpose(g, reshape_dims(g, dx, 4, d4), 4, swap);
    acc(g, x, reshape_to(g, dx, x->type));
}

/* gather / gather_along_axis: dx = scatter-add of dy into zeros */
static void r_gather(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *x = xv(op);
    if (!varies(g, x)) return;
    int64_t axis = 0, bd = 0;
    arg_int(op, "axis", &axis);
    arg_int(op, "batch_dims", &bd);
    if (bd < 0 && rank_of(arg_value(op, "indices")) > 0) bd += rank_of(arg_value(op, "indices"));
    if (axis < 0) axis += rank_of(x);
    if (op->kind == MIL_OP_GATHER && bd != 0) {
        gather_batched(g, op, dy, axis, bd);
        return;
    }
    MilOp *s = nop(g, op->kind == MIL_OP_GATHER ? MIL_OP_SCATTER : MIL_OP_SCATTER_ALONG_AXIS);
    mil_op_add_arg(s, "axis", cst_scalar(g, MIL_DT_INT32, (double)axis));
    mil_op_add_arg(s, "data", zeros(g, x->type));
    mil_op_add_arg(s, "indices", parg(g, op, "indices"));
    mil_op_add_arg(s, "mode", cst_str(g, "add"));
    mil_op_add_arg(s, "updates", dy);
    acc(g, x, fin(g, s, "g"));
}

static void r_sdpa(Grad *g, MilOp *op, MilValue *dy) {
    MilValue *q = arg_value(op, "query"), *k = arg_value(op, "key"), *v = arg_value(op, "value");
    if (varies(g, arg_value(op, "attn_mask"))) {
        gerr(g, "grad: the attention mask gets no gradient (make it a constant or leave it out of --wrt)%s%s", "",
             "");
        return;
    }
    MilOp *b = nop(g, MIL_OP_SDPA_BACKWARD);
    if (mil_op_arg(op, "attn_mask")) mil_op_add_arg(b, "attn_mask", parg(g, op, "attn_mask"));
    mil_op_add_arg(b, "d_out", dy);
    mil_op_add_arg(b, "key", parg(g, op, "key"));
    mil_op_add_arg(b, "query", parg(g, op, "query"));
    mil_op_add_arg(b, "value", parg(g, op, "value"));
    if (!fin(g, b, "sdpa_bwd")) return;
    acc(g, q, b->results[0]);
    acc(g, k, b->results[1]);
    acc(g, v, b->results[2]);
}

struct GradRule {
    MilOpKind kind;
    void (*vjp)(Grad *g, MilOp *op, MilValue *dy);
};

/* One row per op with a rule; ir/ops.def marks the same ops OPF_GRAD
 * (test/passes/test_grad.c checks that both lists agree). */
static const GradRule rules[] = {
    {MIL_OP_ADD, r_add}, {MIL_OP_SUB, r_sub}, {MIL_OP_MUL, r_mul}, {MIL_OP_REAL_DIV, r_real_div},
    {MIL_OP_POW, r_pow}, {MIL_OP_MAXIMUM, r_minmax}, {MIL_OP_MINIMUM, r_minmax},
    {MIL_OP_SQUARE, r_unary}, {MIL_OP_SQRT, r_unary}, {MIL_OP_RSQRT, r_unary}, {MIL_OP_INVERSE, r_unary},
    {MIL_OP_EXP, r_unary}, {MIL_OP_LOG, r_unary}, {MIL_OP_ABS, r_unary}, {MIL_OP_TANH, r_unary},
    {MIL_OP_SIGMOID, r_unary}, {MIL_OP_SILU, r_unary}, {MIL_OP_RELU, r_unary}, {MIL_OP_LEAKY_RELU, r_unary},
    {MIL_OP_GELU, r_unary}, {MIL_OP_SOFTPLUS, r_unary}, {MIL_OP_ERF, r_unary}, {MIL_OP_CLIP, r_unary},
    {MIL_OP_IDENTITY, r_unary}, {MIL_OP_CAST, r_unary},
    {MIL_OP_SELECT, r_select},
    {MIL_OP_REDUCE_SUM, r_reduce}, {MIL_OP_REDUCE_MEAN, r_reduce}, {MIL_OP_REDUCE_MAX, r_reduce},
    {MIL_OP_REDUCE_MIN, r_reduce}, {MIL_OP_REDUCE_SUM_SQUARE, r_reduce}, {MIL_OP_REDUCE_LOG_SUM_EXP, r_reduce},
    {MIL_OP_SOFTMAX, r_softmax}, {MIL_OP_LAYER_NORM, r_norm}, {MIL_OP_RMS_NORM, r_norm},
    {MIL_OP_MATMUL, r_matmul}, {MIL_OP_LINEAR, r_linear}, {MIL_OP_CONV, r_conv},
    {MIL_OP_RESHAPE, r_reshape}, {MIL_OP_TRANSPOSE, r_transpose}, {MIL_OP_EXPAND_DIMS, r_expand},
    {MIL_OP_SQUEEZE, r_expand}, {MIL_OP_SLICE_BY_INDEX, r_slice}, {MIL_OP_SLICE_BY_SIZE, r_slice},
    {MIL_OP_CONCAT, r_concat}, {MIL_OP_SPLIT, r_split}, {MIL_OP_STACK, r_stack}, {MIL_OP_TILE, r_tile},
    {MIL_OP_PAD, r_pad}, {MIL_OP_GATHER, r_gather}, {MIL_OP_GATHER_ALONG_AXIS, r_gather},
    {MIL_OP_BAND_PART, r_band_part}, {MIL_OP_SCALED_DOT_PRODUCT_ATTENTION, r_sdpa},
};

static const GradRule *find_rule(MilOpKind k) {
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (rules[i].kind == k) return &rules[i];
    return NULL;
}

bool mil_grad_has_rule(MilOpKind k) { return find_rule(k) != NULL; }

/* ------------------------------------------------------------ functions */

/* Copies f into a new function `name` of p (same value names); map[id] = copy. */
static MilFunc *clone_func(MilProgram *p, MilFunc *f, const char *name, MilValue **map) {
    MilFunc *c = mil_func_new(p, name, f->opset);
    c->loc = f->loc;
    for (int i = 0; i < f->nparams; i++) map[f->params[i]->id] = mil_func_add_param(c, f->params[i]->type, f->params[i]->name);
    for (int i = 0; i < f->nattrs; i++)
        if (strcmp(f->attrs[i].name, "taps") && strncmp(f->attrs[i].name, "grad_", 5))
            mil_func_set_attr(c, f->attrs[i].name, f->attrs[i].val);
    for (MilOp *op = f->body.first; op; op = op->next) {
        MilOp *n = mil_op_new(c, op->kind, op->opname);
        n->loc = op->loc;
        n->opset = op->opset;
        for (int i = 0; i < op->nargs; i++) {
            const MilArg *a = &op->args[i];
            MilBinding *it = malloc(sizeof *it * (size_t)(a->n ? a->n : 1));
            for (int j = 0; j < a->n; j++) {
                it[j].cst = a->items[j].cst;
                it[j].value = a->items[j].value ? map[a->items[j].value->id] : NULL;
            }
            if (a->variadic) mil_op_add_arg_tuple(n, a->name, a->n, it);
            else if (it[0].value) mil_op_add_arg(n, a->name, it[0].value);
            else mil_op_add_arg_const(n, a->name, it[0].cst);
            n->args[n->nargs - 1].loc = a->loc;
            free(it);
        }
        for (int i = 0; i < op->nattrs; i++) mil_op_set_attr(n, op->attrs[i].name, op->attrs[i].val);
        for (int i = 0; i < op->nresults; i++)
            map[op->results[i]->id] = mil_op_add_result(n, op->results[i]->type, op->results[i]->name);
        mil_block_append(&c->body, n);
    }
    for (int i = 0; i < f->body.nouts; i++) mil_func_add_output(c, map[f->body.outs[i]->id]);
    c->body.outs_loc = f->body.outs_loc;
    return c;
}

static char *join_names(MilValue *const *v, int n, const char *prefix) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(v[i]->name) + strlen(prefix) + 1;
    char *s = malloc(len), *q = s;
    *q = 0;
    for (int i = 0; i < n; i++) q += sprintf(q, "%s%s%s", i ? "," : "", prefix, v[i]->name);
    return s;
}

static void set_str_attr(MilFunc *f, const char *name, const char *val) {
    mil_func_set_attr(f, name, mil_const_string(f->prog, val));
}

static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *q = list; q && *q;) {
        size_t l = strcspn(q, ",");
        if (l == n && !strncmp(q, name, n)) return true;
        q += l;
        if (*q == ',') q++;
    }
    return false;
}

static int by_id(const void *a, const void *b) {
    int x = (*(MilValue *const *)a)->id, y = (*(MilValue *const *)b)->id;
    return (x > y) - (x < y);
}

/* FUNC_bwd's inputs in a fixed order: cotangents, forward inputs (in FUNC's
 * order), taps (in FUNC's order). */
static int rank_param(Grad *g, const MilValue *v) {
    for (int i = 0; i < g->ntaps; i++)
        if (!strcmp(g->taps[i]->name, v->name)) return 2 * g->nv + g->taps[i]->id;
    for (int i = 0; i < g->nfins; i++)
        if (!strcmp(g->fins[i]->name, v->name)) return g->nv + g->fins[i]->id;
    return v->index - g->b->nparams;   /* cotangents keep their order */
}

static void order_params(Grad *g) {
    MilFunc *b = g->b;
    int n = b->nparams;
    int *key = malloc(sizeof *key * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) key[i] = rank_param(g, b->params[i]);
    for (int i = 1; i < n; i++)   /* insertion sort: small n */
        for (int j = i; j > 0 && key[j - 1] > key[j]; j--) {
            int tk = key[j]; key[j] = key[j - 1]; key[j - 1] = tk;
            MilValue *tv = b->params[j]; b->params[j] = b->params[j - 1]; b->params[j - 1] = tv;
        }
    for (int i = 0; i < n; i++) b->params[i]->index = i;
    free(key);
}

void mil_grad_options_init(MilGradOptions *o) { memset(o, 0, sizeof *o); }

/* pack_taps: which taps (by index in g->taps) are packed -- the [1, C, 1, S]
 * ones of the first such tap's dtype and S (calloc'd; all 0 without
 * pack_taps). */
static unsigned char *pack_group(Grad *g) {
    unsigned char *in = calloc((size_t)g->ntaps + 1, 1);
    const MilType *first = NULL;
    for (int i = 0; g->o->pack_taps && i < g->ntaps; i++) {
        const MilType *t = g->taps[i]->type;
        if (!ane_shaped(t)) continue;
        if (!first) first = t;
        in[i] = t->dtype == first->dtype && t->dims[3] == first->dims[3];
    }
    return in;
}

/* The packed taps travel as one tensor (the --pack-taps form of
 * passes/taps.c): FUNC_fwd gets concat(axis = 1) of them as an output, and
 * FUNC_bwd that tensor as an input (both of one free name, "taps" unless
 * taken) whose slices replace the individual tap inputs.  grad_taps then
 * names the tensors exchanged; grad_packed / grad_packed_taps
 * ("name:offset:channels,...") record the channel map. */
/* In f (FUNC_bwd / FUNC_dw): the inputs named like packed taps become
 * slices of a new input `name` of type t.  Returns whether f had any. */
static bool unpack_into(Grad *g, MilFunc *f, const MilType *t, const char *name, const unsigned char *packed) {
    MilValue *in = NULL;
    MilOp *first = f->body.first;
    int64_t off = 0, S = t->dims[3];
    for (int i = 0; i < g->ntaps; i++) {
        if (!packed[i]) continue;
        int64_t ch = g->taps[i]->type->dims[1], begin[4] = {0, off, 0, 0}, size[4] = {1, ch, 1, S};
        off += ch;
        MilValue *old = NULL;   /* the tap input (g->prim may hold a view recomputed from it) */
        for (int j = 0; j < f->nparams && !old; j++)
            if (!strcmp(f->params[j]->name, g->taps[i]->name)) old = f->params[j];
        if (!old) continue;
        if (!in) {
            MilValue *clash = mil_func_find_value(f, name);
            if (clash) mil_func_rename_value(f, clash, pass_unique_name(f, name));
            in = mil_func_add_param(f, t, name);
        }
        MilOp *sl = pb_op(f, MIL_OP_SLICE_BY_SIZE, g->taps[i]->def ? g->taps[i]->def->loc : f->loc);
        mil_op_add_arg(sl, "begin", pb_const_i32s(f, first, 4, begin, "begin"));
        mil_op_add_arg(sl, "size", pb_const_i32s(f, first, 4, size, "size"));
        mil_op_add_arg(sl, "x", in);
        MilValue *v = pb_finish(f, sl, first, "tap");
        mil_func_rename_value(f, old, pass_unique_name(f, "unpacked"));
        mil_func_rename_value(f, v, g->taps[i]->name);
        mil_op_set_attr(sl, "name", mil_const_string(g->p, v->name));
        mil_func_replace_uses(f, old, v);
        /* the individual input goes */
        int k = 0;
        for (int j = 0; j < f->nparams; j++)
            if (f->params[j] != old) f->params[k++] = f->params[j];
        f->nparams = k;
    }
    for (int j = 0; j < f->nparams; j++) f->params[j]->index = j;
    return in != NULL;
}

static void pack_taps(Grad *g, MilFunc *fw, MilValue **fmap, const unsigned char *packed, MilFunc *dwf) {
    MilFunc *b = g->b;
    int np = 0;
    for (int i = 0; i < g->ntaps; i++) np += packed[i];
    if (!np) return;
    char name[64];
    for (int k = 0;; k++) {
        if (k) snprintf(name, sizeof name, "taps_%d", k);
        else snprintf(name, sizeof name, "taps");
        MilValue *a = mil_func_find_value(fw, name), *c = mil_func_find_value(b, name);
        MilValue *w = dwf ? mil_func_find_value(dwf, name) : NULL;
        if (!a && (!c || c->def) && (!w || w->def)) break;
    }
    free_name(g, name);
    /* FUNC_fwd: the concat, as the last output */
    MilBinding *items = calloc((size_t)np, sizeof *items);
    int64_t C = 0, S = 0;
    MilDType dt = MIL_DT_NONE;
    size_t cap = 64, len = 0;
    char *map = malloc(cap);
    map[0] = 0;
    for (int i = 0, j = 0; i < g->ntaps; i++) {
        if (!packed[i]) continue;
        const MilType *t = g->taps[i]->type;
        items[j++].value = fmap[g->taps[i]->id];
        size_t need = len + strlen(g->taps[i]->name) + 48;
        if (need > cap) {
            cap = 2 * need;
            char *nm = realloc(map, cap);
            if (!nm) abort();
            map = nm;
        }
        len += (size_t)snprintf(map + len, cap - len, "%s%s:%lld:%lld", len ? "," : "", g->taps[i]->name, (long long)C,
                                (long long)t->dims[1]);
        C += t->dims[1];
        S = t->dims[3];
        dt = t->dtype;
    }
    MilOp *cat = pb_op(fw, MIL_OP_CONCAT, fw->body.last ? fw->body.last->loc : fw->loc);
    mil_op_add_arg(cat, "axis", pb_const_scalar(fw, NULL, MIL_DT_INT32, 1, "taps_axis"));
    mil_op_add_arg(cat, "interleave", pb_const_bool(fw, NULL, false, "taps_interleave"));
    mil_op_add_arg_tuple(cat, "values", np, items);
    free(items);
    MilValue *out = pb_finish(fw, cat, NULL, name);
    mil_func_add_output(fw, out);
    /* FUNC_bwd (and FUNC_dw when it reads taps): the packed input, sliced */
    int64_t dims[4] = {1, C, 1, S};
    unpack_into(g, b, mil_type_tensor(g->p, dt, 4, dims), name, packed);
    if (dwf && unpack_into(g, dwf, mil_type_tensor(g->p, dt, 4, dims), name, packed)) {
        char *ins = join_names(dwf->params, dwf->nparams, "");
        set_str_attr(dwf, "grad_inputs", ins);
        free(ins);
    }
    /* the map: the exchanged tensors, then the channel offsets */
    MilValue **ex = calloc((size_t)g->ntaps + 1, sizeof *ex);
    int nex = 0;
    for (int i = 0; i < g->ntaps; i++)
        if (!packed[i]) ex[nex++] = g->taps[i];
    ex[nex++] = out;
    char *s = join_names(ex, nex, "");
    set_str_attr(fw, "grad_taps", s);
    set_str_attr(b, "grad_taps", s);
    free(s);
    free(ex);
    set_str_attr(fw, "grad_packed", name);
    set_str_attr(b, "grad_packed", name);
    set_str_attr(fw, "grad_packed_taps", map);
    set_str_attr(b, "grad_packed_taps", map);
    free(map);
}

/* Wraps v in an identity op (so it can be renamed / output twice). */
static MilValue *ident(Grad *g, MilValue *v) {
    MilOp *op = nop(g, MIL_OP_IDENTITY);
    mil_op_add_arg(op, "x", v);
    return fin(g, op, "g");
}

/* Gives value v of FUNC_bwd the output name `name`. */
static MilValue *name_output(Grad *g, MilFunc *b, MilValue *v, const char *name) {
    if (!v->def || v->def->kind == MIL_OP_CONST || value_is_output(b, v)) v = ident(g, v);
    if (!v) return NULL;
    MilValue *other = mil_func_find_value(b, name);
    if (other && other != v) {
        if (!other->def) {
            gerr(g, "grad: the gradient output '%s' clashes with an input of the backward%s", name, "");
            return NULL;
        }
        mil_func_rename_value(b, other, pass_unique_name(b, name));
    }
    mil_func_rename_value(b, v, name);
    if (v->def) mil_op_set_attr(v->def, "name", mil_const_string(g->p, v->def->results[0]->name));
    return v;
}

/* split_weight_grads: ops marked dw move from FUNC_bwd into FUNC_dw; every
 * FUNC_bwd value a moved op reads becomes an input of FUNC_dw with the same
 * name (a FUNC_bwd input: tap / forward input; a computed value: an extra
 * output of FUNC_bwd, a cotangent such as d_q). */
static void split_dw(Grad *g, MilFunc *b, MilFunc *dw, MilValue **grads, int ng) {
    int nv = b->nvalues;
    MilValue **map = calloc((size_t)nv, sizeof *map);
    MilValue **extra = NULL;
    int nextra = 0, capextra = 0;
    bool *moved_res = calloc((size_t)nv, sizeof *moved_res);
    for (MilOp *op = b->body.first; op; op = op->next)
        if (op->nresults && op->results[0]->id < g->capdw && g->dwop[op->results[0]->id])
            for (int i = 0; i < op->nresults; i++) moved_res[op->results[i]->id] = true;
    /* a moved op whose result is read by a kept op stays in FUNC_bwd too:
       the kept op reads the FUNC_bwd copy */
    for (MilOp *op = b->body.first; op; op = op->next) {
        if (!op->nresults || !moved_res[op->results[0]->id]) continue;
        MilOp *n = mil_op_new(dw, op->kind, op->opname);
        n->loc = op->loc;
        for (int i = 0; i < op->nargs; i++) {
            const MilArg *a = &op->args[i];
            MilBinding *it = malloc(sizeof *it * (size_t)(a->n ? a->n : 1));
            for (int j = 0; j < a->n; j++) {
                MilValue *v = a->items[j].value;
                it[j].cst = a->items[j].cst;
                it[j].value = NULL;
                if (!v) continue;
                if (!map[v->id]) {
                    if (moved_res[v->id]) {
                        map[v->id] = v;   /* unreachable: defined before */
                    } else {
                        map[v->id] = mil_func_add_param(dw, v->type, v->name);
                        if (v->def) {
                            GROW(extra, nextra, capextra);
                            extra[nextra++] = v;
                        }
                    }
                }
                it[j].value = map[v->id];
            }
            if (a->variadic) mil_op_add_arg_tuple(n, a->name, a->n, it);
            else if (it[0].value) mil_op_add_arg(n, a->name, it[0].value);
            else mil_op_add_arg_const(n, a->name, it[0].cst);
            free(it);
        }
        for (int i = 0; i < op->nattrs; i++) mil_op_set_attr(n, op->attrs[i].name, op->attrs[i].val);
        for (int i = 0; i < op->nresults; i++)
            map[op->results[i]->id] = mil_op_add_result(n, op->results[i]->type, op->results[i]->name);
        mil_block_append(&dw->body, n);
    }
    for (int i = 0; i < ng; i++) {
        MilValue *v = grads[i];
        MilValue *m = v && map[v->id] && moved_res[v->id] ? map[v->id] : NULL;
        if (!m) continue;
        mil_func_add_output(dw, m);
    }
    for (int i = 0; i < nextra; i++) mil_func_add_output(b, extra[i]);
    char *ins = join_names(dw->params, dw->nparams, "");
    set_str_attr(dw, "grad_inputs", ins);
    free(ins);
    free(extra);
    free(map);
    free(moved_res);
}

int mil_grad(MilProgram *p, const MilGradOptions *o, MilDiag *d) {
    pass_enter();
    int errs0 = d->nerrors;
    const char *fname = o->func ? o->func : "main";
    MilFunc *f = mil_program_find_func(p, fname);
    if (!f) {
        mil_error(d, (MilLoc){0}, "grad: no function named '%s'", fname);
        return d->nerrors - errs0;
    }
    char nm[512];
    const char *suffixes[] = {"_fwd", "_bwd", "_dw"};
    for (int i = 0; i < 3; i++) {
        snprintf(nm, sizeof nm, "%s%s", fname, suffixes[i]);
        if (mil_program_find_func(p, nm)) {
            mil_error(d, f->loc, "grad: the program already has a function '%s'", nm);
            return d->nerrors - errs0;
        }
    }
    /* --wrt names and --loss */
    for (const char *q = o->wrt; q && *q;) {
        size_t l = strcspn(q, ",");
        bool found = false;
        for (int i = 0; i < f->nparams; i++) found |= strlen(f->params[i]->name) == l && !strncmp(f->params[i]->name, q, l);
        if (l && !found) {
            mil_error(d, f->loc, "grad: function '%s' has no input named '%.*s' (--wrt)", fname, (int)l, q);
            return d->nerrors - errs0;
        }
        q += l;
        if (*q == ',') q++;
    }
    MilValue *loss = NULL;
    if (o->loss) {
        for (int i = 0; i < f->body.nouts; i++)
            if (!strcmp(f->body.outs[i]->name, o->loss)) loss = f->body.outs[i];
        if (!loss) {
            mil_error(d, f->loc, "grad: function '%s' has no output named '%s' (--loss)", fname, o->loss);
            return d->nerrors - errs0;
        }
        if (!is_float_value(loss) || mil_type_numel(loss->type) != 1) {
            char t[128];
            ty_fmt(loss->type, t, sizeof t);
            mil_error(d, f->loc, "grad: --loss '%s' must be a floating-point scalar, not %s", o->loss, t);
            return d->nerrors - errs0;
        }
    }

    Grad G = {0}, *g = &G;
    g->p = p;
    g->f = f;
    g->d = d;
    g->o = o;
    int nv = g->nv = f->nvalues;
    g->vary = calloc((size_t)nv, 1);
    g->useful = calloc((size_t)nv, 1);
    g->wrt = calloc((size_t)f->nparams + 1, 1);
    g->prim = calloc((size_t)nv, sizeof *g->prim);
    g->adj = calloc((size_t)nv, sizeof *g->adj);
    g->nadj = calloc((size_t)nv, sizeof *g->nadj);
    g->capadj = calloc((size_t)nv, sizeof *g->capadj);
    g->summed = calloc((size_t)nv, 1);
    MilValue **fmap = calloc((size_t)nv, sizeof *fmap);

    for (int i = 0; i < f->nparams; i++) {
        MilValue *v = f->params[i];
        g->wrt[i] = o->wrt ? in_list(o->wrt, v->name) : is_float_value(v);
        if (g->wrt[i] && !is_float_value(v)) {
            mil_error(d, f->loc, "grad: --wrt input '%s' is not a floating-point tensor", v->name);
            goto done;
        }
        g->vary[v->id] = g->wrt[i];
    }
    /* forward: what depends on a --wrt input */
    for (MilOp *op = f->body.first; op; op = op->next) {
        const MilOpInfo *info = mil_op_info(op->kind);
        if (info && (info->flags & OPF_NOGRAD)) continue;
        bool any = false;
        for (int i = 0; i < op->nargs; i++)
            for (int j = 0; j < op->args[i].n; j++) any |= varies(g, op->args[i].items[j].value);
        if (!any) continue;
        for (int i = 0; i < op->nresults; i++) g->vary[op->results[i]->id] = is_float_value(op->results[i]);
    }
    /* backward: what reaches a differentiated output */
    for (int i = 0; i < f->body.nouts; i++)
        if (!loss || f->body.outs[i] == loss) g->useful[f->body.outs[i]->id] = 1;
    for (MilOp *op = f->body.last; op; op = op->prev) {
        bool u = false;
        for (int i = 0; i < op->nresults; i++) u |= g->useful[op->results[i]->id] && g->vary[op->results[i]->id];
        if (!u) continue;
        if (!find_rule(op->kind)) {
            mil_error(d, op->loc, "grad: op '%s' has no gradient rule, and it is on the path from the --wrt inputs to %s",
                      op->opname, loss ? "the loss" : "the outputs");
            continue;
        }
        for (int i = 0; i < op->nargs; i++)
            for (int j = 0; j < op->args[i].n; j++)
                if (op->args[i].items[j].value) g->useful[op->args[i].items[j].value->id] = 1;
    }
    if (d->nerrors > errs0) goto done;

    /* FUNC_fwd */
    snprintf(nm, sizeof nm, "%s_fwd", fname);
    MilFunc *fw = clone_func(p, f, nm, fmap);
    /* FUNC_bwd: the cotangents first, so their names are taken */
    snprintf(nm, sizeof nm, "%s_bwd", fname);
    g->b = mil_func_new(p, nm, f->opset);
    g->b->loc = f->loc;
    MilValue **cots = calloc((size_t)f->body.nouts + 1, sizeof *cots);
    int ncots = 0;
    for (int i = 0; i < f->body.nouts; i++) {
        MilValue *y = f->body.outs[i];
        if (loss || !g->vary[y->id] || !is_float_value(y)) continue;
        bool dup = false;
        for (int k = 0; k < i; k++) dup |= f->body.outs[k] == y;
        if (dup) continue;
        snprintf(nm, sizeof nm, "d_%s", y->name);
        MilValue *c = mil_func_add_param(g->b, y->type, nm);
        cots[ncots++] = c;
        acc(g, y, c);
    }
    if (loss && g->vary[loss->id]) {
        MilConst *one = NULL;
        int64_t cnt = 1;
        double v1 = 1.0;
        if (loss->type->dtype == MIL_DT_FP32) {
            float f1 = 1.0f;
            one = mil_const_tensor(p, loss->type, &f1, cnt);
        } else {
            one = mil_const_scalar_float(p, loss->type->dtype, v1);
            if (loss->type->rank) {
                one = mil_const_tensor(p, loss->type, one->data, cnt);
            }
        }
        acc(g, loss, pb_const(g->b, NULL, one, "d_loss_seed"));
    }

    /* the reverse sweep */
    for (MilOp *op = f->body.last; op && !g->failed; op = op->prev) {
        bool active = false;
        for (int i = 0; i < op->nresults; i++) active |= g->useful[op->results[i]->id] && g->vary[op->results[i]->id];
        if (!active) continue;
        const GradRule *r = find_rule(op->kind);
        MilValue *dy = adjoint(g, op->results[0]);
        bool any = dy != NULL;
        for (int i = 1; i < op->nresults; i++) any |= g->nadj[op->results[i]->id] > 0;
        if (!any || !r) continue;
        g->cur = op;
        if (dy && dy->def && dy->def->kind != MIL_OP_CONST && !strncmp(dy->name, "g", 1)) {
            char base[256];
            snprintf(base, sizeof base, "d_%s", op->results[0]->name);
            {
                /* readable cotangent names: d_<forward value> */
                mil_func_rename_value(g->b, dy, pass_unique_name(g->b, base));
                mil_op_set_attr(dy->def, "name", mil_const_string(p, dy->def->results[0]->name));
            }
        }
        if (!dy && op->kind != MIL_OP_SPLIT) continue;
        r->vjp(g, op, dy);
        g->cur = NULL;
    }
    if (g->failed || d->nerrors > errs0) {
        free(cots);
        goto done;
    }

    /* gradient outputs, in input order */
    MilValue **grads = calloc((size_t)f->nparams + 1, sizeof *grads);
    const char **gnames = calloc((size_t)f->nparams + 1, sizeof *gnames);
    int ng = 0;
    bool warned = false;
    for (int i = 0; i < f->nparams; i++) {
        if (!g->wrt[i]) continue;
        MilValue *x = f->params[i];
        MilValue *a = adjoint(g, x);
        if (!a) {
            if (!warned)
                mil_warning(d, f->loc, "grad: no path from --wrt input '%s' to %s: its gradient is zero", x->name,
                            loss ? "the loss" : "the outputs");
            warned = true;
            a = zeros(g, x->type);
        }
        snprintf(nm, sizeof nm, "d_%s", x->name);
        gnames[ng] = mil_strdup(p, nm);
        grads[ng++] = a;
    }
    if (g->failed) goto done2;
    for (int i = 0; i < ng; i++) {
        bool dwg = grads[i] && grads[i]->id < g->capdw && g->dwop[grads[i]->id];
        if (!dwg) grads[i] = name_output(g, g->b, grads[i], gnames[i]);
        else mil_func_rename_value(g->b, grads[i], gnames[i]);
        if (grads[i] && grads[i]->def) mil_op_set_attr(grads[i]->def, "name", mil_const_string(p, gnames[i]));
    }
    MilFunc *dwf = NULL;
    if (o->split_weight_grads) {
        snprintf(nm, sizeof nm, "%s_dw", fname);
        dwf = mil_func_new(p, nm, f->opset);
        dwf->loc = f->loc;
        MilValue **dwgrads = calloc((size_t)ng + 1, sizeof *dwgrads);
        int nd = 0;
        for (int i = 0; i < ng; i++)
            if (grads[i] && grads[i]->id < g->capdw && g->dwop[grads[i]->id]) dwgrads[nd++] = grads[i];
        split_dw(g, g->b, dwf, dwgrads, nd);
        /* FUNC_bwd keeps the other gradients */
        for (int i = 0; i < ng; i++)
            if (grads[i] && grads[i]->id < g->capdw && g->dwop[grads[i]->id]) grads[i] = NULL;
        free(dwgrads);
    }
    /* outputs of FUNC_bwd: the gradients first (split cotangents were added
       by split_dw; move them after) */
    {
        int nextra = g->b->body.nouts;
        MilValue **extra = calloc((size_t)nextra + 1, sizeof *extra);
        if (nextra) memcpy(extra, g->b->body.outs, sizeof *extra * (size_t)nextra);
        g->b->body.nouts = 0;
        for (int i = 0; i < ng; i++)
            if (grads[i]) mil_func_add_output(g->b, grads[i]);
        for (int i = 0; i < nextra; i++) mil_func_add_output(g->b, extra[i]);
        free(extra);
    }
    /* taps and forward inputs in FUNC's order */
    if (g->ntaps) qsort(g->taps, (size_t)g->ntaps, sizeof *g->taps, by_id);
    if (g->nfins) qsort(g->fins, (size_t)g->nfins, sizeof *g->fins, by_id);
    /* taps: extra outputs of FUNC_fwd (never twice); packed ones later */
    unsigned char *packed = pack_group(g);
    for (int i = 0; i < g->ntaps; i++) {
        MilValue *v = fmap[g->taps[i]->id];
        if (!packed[i] && !value_is_output(fw, v)) mil_func_add_output(fw, v);
    }
    /* the grad map */
    {
        char *s;
        set_str_attr(fw, "grad_of", fname);
        set_str_attr(g->b, "grad_of", fname);
        s = join_names(g->taps, g->ntaps, "");
        set_str_attr(fw, "grad_taps", s);
        set_str_attr(g->b, "grad_taps", s);
        free(s);
        s = join_names(cots, ncots, "");
        set_str_attr(g->b, "grad_cotangents", s);
        free(s);
        if (loss) set_str_attr(g->b, "grad_loss", loss->name);
        s = join_names(g->fins, g->nfins, "");
        set_str_attr(g->b, "grad_inputs", s);
        free(s);
        MilValue **w = calloc((size_t)f->nparams + 1, sizeof *w);
        int nw = 0;
        for (int i = 0; i < f->nparams; i++)
            if (g->wrt[i]) w[nw++] = f->params[i];
        s = join_names(w, nw, "");
        set_str_attr(g->b, "grad_wrt", s);
        free(s);
        free(w);
        set_str_attr(g->b, "grad_recompute", o->recompute == MIL_RECOMPUTE_CHEAP ? "cheap" : "none");
        if (dwf) set_str_attr(dwf, "grad_of", fname);
    }
    order_params(g);
    pack_taps(g, fw, fmap, packed, dwf);
    free(packed);
    mil_dce_func(g->b);
    if (dwf) mil_dce_func(dwf);
done2:
    free(grads);
    free(gnames);
    free(cots);
done:
    for (int i = 0; i < nv; i++) free(g->adj[i]);
    free(g->adj);
    free(g->nadj);
    free(g->capadj);
    free(g->summed);
    free(g->vary);
    free(g->useful);
    free(g->wrt);
    free(g->prim);
    free(g->taps);
    free(g->fins);
    free(g->dwop);
    free(fmap);
    use_counts_dirty();
    return d->nerrors - errs0;
}

/* ------------------------------------------------------------- grad map */

typedef struct Buf {
    char *s;
    size_t n, cap;
} Buf;

static void put(Buf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        char *ns = realloc(b->s, b->cap);
        if (!ns) abort();
        b->s = ns;
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

static void put_str(Buf *b, const char *s) {
    put(b, "\"");
    char t[8];
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') snprintf(t, sizeof t, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) snprintf(t, sizeof t, "\\u%04x", (unsigned char)*s);
        else snprintf(t, sizeof t, "%c", *s);
        put(b, t);
    }
    put(b, "\"");
}

static const char *fattr(const MilFunc *f, const char *name) {
    for (int i = 0; f && i < f->nattrs; i++)
        if (!strcmp(f->attrs[i].name, name)) return mil_const_get_str(f->attrs[i].val);
    return NULL;
}

static const MilValue *param_named(const MilFunc *f, const char *name, size_t n) {
    for (int i = 0; f && i < f->nparams; i++)
        if (strlen(f->params[i]->name) == n && !strncmp(f->params[i]->name, name, n)) return f->params[i];
    return NULL;
}

static void put_type(Buf *b, const MilType *t) {
    char tmp[64];
    put(b, "\"dtype\": ");
    put_str(b, ty_tensor(t) ? mil_dtype_name(t->dtype) : "?");
    put(b, ", \"shape\": [");
    for (int a = 0; ty_tensor(t) && a < t->rank; a++) {
        snprintf(tmp, sizeof tmp, "%s%lld", a ? ", " : "", (long long)t->dims[a]);
        put(b, tmp);
    }
    put(b, "]");
}

/* a list attribute of f as [{"name": .., "dtype": .., "shape": ..}] with the
 * types of f's params of those names */
static void put_list(Buf *b, const MilFunc *typed, const char *list) {
    put(b, "[");
    bool first = true;
    for (const char *q = list; q && *q;) {
        size_t l = strcspn(q, ",");
        if (l) {
            char nm[512];
            snprintf(nm, sizeof nm, "%.*s", (int)(l < 511 ? l : 511), q);
            put(b, first ? "{\"name\": " : ", {\"name\": ");
            first = false;
            put_str(b, nm);
            const MilValue *v = param_named(typed, q, l);
            if (v) {
                put(b, ", ");
                put_type(b, v->type);
                int64_t ne = mil_type_numel(v->type);
                char tmp[64];
                snprintf(tmp, sizeof tmp, ", \"bytes\": %lld",
                         (long long)(ne < 0 ? -1 : ne * (int64_t)(mil_dtype_bits(v->type->dtype) / 8)));
                put(b, tmp);
            }
            put(b, "}");
        }
        q += l;
        if (*q == ',') q++;
    }
    put(b, "]");
}

static void put_outputs(Buf *b, const MilFunc *f) {
    put(b, "[");
    for (int i = 0; f && i < f->body.nouts; i++) {
        put(b, i ? ", {\"name\": " : "{\"name\": ");
        put_str(b, f->body.outs[i]->name);
        put(b, ", ");
        put_type(b, f->body.outs[i]->type);
        put(b, "}");
    }
    put(b, "]");
}

char *mil_grad_map_json(const MilProgram *p, const char *func) {
    if (!func) func = "main";
    char nm[512];
    snprintf(nm, sizeof nm, "%s_fwd", func);
    const MilFunc *fw = mil_program_find_func(p, nm);
    snprintf(nm, sizeof nm, "%s_bwd", func);
    const MilFunc *bw = mil_program_find_func(p, nm);
    snprintf(nm, sizeof nm, "%s_dw", func);
    const MilFunc *dw = mil_program_find_func(p, nm);
    if (!fw || !bw || !fattr(bw, "grad_of")) return NULL;
    Buf b = {0};
    put(&b, "{\"function\": ");
    put_str(&b, func);
    put(&b, ", \"fwd\": ");
    put_str(&b, fw->name);
    put(&b, ", \"bwd\": ");
    put_str(&b, bw->name);
    put(&b, ", \"dw\": ");
    if (dw) put_str(&b, dw->name);
    else put(&b, "null");
    put(&b, ", \"recompute\": ");
    put_str(&b, fattr(bw, "grad_recompute") ? fattr(bw, "grad_recompute") : "none");
    put(&b, ", \"loss\": ");
    if (fattr(bw, "grad_loss")) put_str(&b, fattr(bw, "grad_loss"));
    else put(&b, "null");
    put(&b, ",\n  \"wrt\": ");
    put_list(&b, NULL, fattr(bw, "grad_wrt"));
    put(&b, ",\n  \"taps\": ");
    put_list(&b, bw, fattr(bw, "grad_taps"));
    const char *packed = fattr(bw, "grad_packed");
    if (packed) {
        /* {"name": .., "axis": 1, "taps": [{"name": .., "offset": .., "channels": .., "shape": ..}]} */
        const MilValue *pv = param_named(bw, packed, strlen(packed));
        put(&b, ",\n  \"packed_taps\": {\"name\": ");
        put_str(&b, packed);
        put(&b, ", \"axis\": 1, \"taps\": [");
        bool first = true;
        for (const char *q = fattr(bw, "grad_packed_taps"); q && *q;) {
            size_t l = strcspn(q, ",");
            char item[512], tmp[192];
            snprintf(item, sizeof item, "%.*s", (int)(l < 511 ? l : 511), q);
            char *c2 = strrchr(item, ':'), *c1 = NULL;
            if (c2) {
                *c2 = 0;
                c1 = strrchr(item, ':');
            }
            if (c1) {
                *c1 = 0;
                long long off = atoll(c1 + 1), ch = atoll(c2 + 1);
                put(&b, first ? "{\"name\": " : ", {\"name\": ");
                first = false;
                put_str(&b, item);
                snprintf(tmp, sizeof tmp, ", \"offset\": %lld, \"channels\": %lld", off, ch);
                put(&b, tmp);
                if (pv && ane_shaped(pv->type)) {
                    snprintf(tmp, sizeof tmp, ", \"dtype\": \"%s\", \"shape\": [1, %lld, 1, %lld]",
                             mil_dtype_name(pv->type->dtype), ch, (long long)pv->type->dims[3]);
                    put(&b, tmp);
                }
                put(&b, "}");
            }
            q += l;
            if (*q == ',') q++;
        }
        put(&b, "]}");
    }
    put(&b, ",\n  \"cotangents\": ");
    put_list(&b, bw, fattr(bw, "grad_cotangents"));
    put(&b, ",\n  \"forward_inputs\": ");
    put_list(&b, bw, fattr(bw, "grad_inputs"));
    put(&b, ",\n  \"bwd_outputs\": ");
    put_outputs(&b, bw);
    if (dw) {
        put(&b, ",\n  \"dw_inputs\": ");
        put_list(&b, dw, fattr(dw, "grad_inputs"));
        put(&b, ",\n  \"dw_outputs\": ");
        put_outputs(&b, dw);
    }
    int64_t bytes = 0;
    for (const char *q = fattr(bw, "grad_taps"); q && *q;) {
        size_t l = strcspn(q, ",");
        const MilValue *v = param_named(bw, q, l);
        if (v && mil_type_numel(v->type) > 0) bytes += mil_type_numel(v->type) * (mil_dtype_bits(v->type->dtype) / 8);
        q += l;
        if (*q == ',') q++;
    }
    char tmp[64];
    snprintf(tmp, sizeof tmp, ",\n  \"tap_bytes\": %lld}\n", (long long)bytes);
    put(&b, tmp);
    return b.s;
}
