/* passes/layout.c -- collapsing chains of layout ops.
 *
 * A chain is a run of reshape / transpose ops  s -> o1 -> ... -> oL = w  whose
 * intermediate results have no other use.  Every such chain only moves
 * elements, so w is fully described by a table: for each element of w (row
 * major), the linear index of the element of s it holds.  The table is
 * computed by running the chain on an index array, and then matched against
 * the cheap forms
 *
 *     w = s                          (0 ops)
 *     w = reshape(s)                 (1 op)
 *     w = transpose(reshape(s, S), P)    (1 or 2 ops; S = w's dims through P^-1)
 *     w = reshape(transpose(s, P))       (1 or 2 ops)
 *
 * and the chain is replaced when a form needs fewer ops than it has.  This
 * is what removes the round trips mm2conv's layout propagation leaves
 * (cf -> [N, C] -> [1, N, C] -> transpose back to [1, C, N] becomes one
 * reshape), merges transpose∘transpose and reshape∘transpose∘reshape
 * patterns, and turns the attention head split of a converted projection
 * ([1, C, 1, N] -> [1, N, C] -> [1, N, H, D] -> [1, H, D, N]) into one reshape.
 *
 * Runs from mm2conv (after the conversion) and as the named pass `layout`.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/pass_int.h"

#define MAX_CHAIN 16
#define MAX_TABLE (1 << 22)   /* elements; bigger chains are left alone */
#define MAX_PERM_RANK 5       /* 5! candidate permutations */

static bool layout_op(const MilOp *op) {
    return op && (op->kind == MIL_OP_RESHAPE || op->kind == MIL_OP_TRANSPOSE) && op->nresults == 1 &&
           ty_known(op->results[0]->type) && arg_value(op, "x") && ty_known(arg_type(op, "x"));
}

/* dst = transpose(src of shape dims, perm) on index arrays. */
static void table_transpose(const int32_t *src, int32_t *dst, int rank, const int64_t *dims, const int64_t *perm,
                            int64_t n) {
    int64_t sstride[MIL_MAX_RANK], ostride[MIL_MAX_RANK], odims[MIL_MAX_RANK], idx[MIL_MAX_RANK] = {0};
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        sstride[i] = s;
        s *= dims[i];
    }
    for (int i = 0; i < rank; i++) {
        odims[i] = dims[perm[i]];
        ostride[i] = sstride[perm[i]];
    }
    int64_t off = 0;
    for (int64_t j = 0; j < n; j++) {
        dst[j] = src[off];
        for (int k = rank - 1; k >= 0; k--) {
            idx[k]++;
            off += ostride[k];
            if (idx[k] < odims[k]) break;
            off -= ostride[k] * odims[k];
            idx[k] = 0;
        }
    }
}

/* Does transpose(reshape(iota, S), P) equal tab?  (S = dims of w through P^-1) */
static bool match_tr(const int32_t *tab, int64_t n, int rank, const int64_t *S, const int64_t *P) {
    int64_t sstride[MIL_MAX_RANK], ostride[MIL_MAX_RANK], odims[MIL_MAX_RANK], idx[MIL_MAX_RANK] = {0};
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        sstride[i] = s;
        s *= S[i];
    }
    for (int i = 0; i < rank; i++) {
        odims[i] = S[P[i]];
        ostride[i] = sstride[P[i]];
    }
    int64_t off = 0;
    for (int64_t j = 0; j < n; j++) {
        if (tab[j] != off) return false;
        for (int k = rank - 1; k >= 0; k--) {
            idx[k]++;
            off += ostride[k];
            if (idx[k] < odims[k]) break;
            off -= ostride[k] * odims[k];
            idx[k] = 0;
        }
    }
    return true;
}

static bool next_perm(int64_t *p, int n) {
    int i = n - 2;
    while (i >= 0 && p[i] >= p[i + 1]) i--;
    if (i < 0) return false;
    int j = n - 1;
    while (p[j] <= p[i]) j--;
    int64_t t = p[i];
    p[i] = p[j];
    p[j] = t;
    for (int a = i + 1, b = n - 1; a < b; a++, b--) {
        t = p[a];
        p[a] = p[b];
        p[b] = t;
    }
    return true;
}

static bool same_dims(int r1, const int64_t *d1, int r2, const int64_t *d2) {
    if (r1 != r2) return false;
    for (int i = 0; i < r1; i++)
        if (d1[i] != d2[i]) return false;
    return true;
}

typedef struct Form {
    int kind;                 /* 0 = s, 1 = reshape, 2 = transpose(reshape), 3 = reshape(transpose) */
    int cost;
    int64_t S[MIL_MAX_RANK];  /* kind 2: the reshape */
    int64_t P[MIL_MAX_RANK];
} Form;

/* The cheapest form for the table (cost < limit), or false. */
static bool best_form(const int32_t *tab, int64_t n, const MilType *st, const MilType *wt, int limit, Form *best) {
    int wr = wt->rank, sr = st->rank;
    bool iota = true;
    for (int64_t j = 0; j < n && iota; j++) iota = tab[j] == j;
    if (iota) {
        best->kind = same_dims(sr, st->dims, wr, wt->dims) ? 0 : 1;
        best->cost = best->kind;
        return best->cost < limit;
    }
    if (limit <= 1) return false;
    best->cost = 3;
    /* transpose(reshape(s, S), P) */
    if (wr <= MAX_PERM_RANK) {
        int64_t P[MIL_MAX_RANK], S[MIL_MAX_RANK];
        for (int i = 0; i < wr; i++) P[i] = i;
        while (next_perm(P, wr)) {   /* skips the identity (the iota case) */
            for (int i = 0; i < wr; i++) S[P[i]] = wt->dims[i];
            if (!match_tr(tab, n, wr, S, P)) continue;
            int cost = 1 + !same_dims(sr, st->dims, wr, S);
            if (cost < best->cost) {
                best->kind = 2;
                best->cost = cost;
                memcpy(best->S, S, sizeof S);
                memcpy(best->P, P, sizeof P);
                if (cost == 1) break;
            }
        }
    }
    /* reshape(transpose(s, P)) */
    if (best->cost > 1 && sr <= MAX_PERM_RANK) {
        int64_t P[MIL_MAX_RANK];
        for (int i = 0; i < sr; i++) P[i] = i;
        while (next_perm(P, sr)) {
            if (!match_tr(tab, n, sr, st->dims, P)) continue;
            int64_t od[MIL_MAX_RANK];
            for (int i = 0; i < sr; i++) od[i] = st->dims[P[i]];
            int cost = 1 + !same_dims(sr, od, wr, wt->dims);
            if (cost < best->cost) {
                best->kind = 3;
                best->cost = cost;
                memcpy(best->P, P, sizeof P);
            }
            break;
        }
    }
    return best->cost < limit && best->cost < 3;
}

/* Rule rooted at the end of a chain. */
static bool rule_collapse(MilFunc *f, MilOp *op, void *ctx) {
    (void)ctx;
    if (!layout_op(op)) return false;
    MilValue *w = op->results[0];
    /* only at chain ends: a single layout user continues the chain */
    MilOp *u = single_user(f, w);
    if (u && layout_op(u) && arg_value(u, "x") == w && !value_is_output(f, w)) return false;
    MilOp *chain[MAX_CHAIN];
    int L = 0;
    chain[L++] = op;
    MilValue *s = arg_value(op, "x");
    while (L < MAX_CHAIN && s->def && layout_op(s->def) && s->nuses == 1 && !value_is_output(f, s)) {
        chain[L++] = s->def;
        s = arg_value(s->def, "x");
    }
    if (L < 2) return false;
    const MilType *st = s->type, *wt = w->type;
    int64_t n = mil_type_numel(st);
    if (n <= 0 || n > MAX_TABLE || n != mil_type_numel(wt)) return false;
    int32_t *a = malloc(sizeof(int32_t) * (size_t)n), *b = malloc(sizeof(int32_t) * (size_t)n);
    if (!a || !b) {
        free(a);
        free(b);
        return false;
    }
    for (int64_t j = 0; j < n; j++) a[j] = (int32_t)j;
    bool ok = true;
    for (int i = L - 1; i >= 0 && ok; i--) {
        MilOp *c = chain[i];
        if (c->kind != MIL_OP_TRANSPOSE) continue;
        const MilType *xt = arg_type(c, "x");
        int64_t perm[MIL_MAX_RANK];
        if (arg_ints(c, "perm", perm, MIL_MAX_RANK) != xt->rank) {
            ok = false;
            break;
        }
        for (int k = 0; k < xt->rank; k++)
            if (perm[k] < 0) perm[k] += xt->rank;
        table_transpose(a, b, xt->rank, xt->dims, perm, n);
        int32_t *t = a;
        a = b;
        b = t;
    }
    Form fm;
    bool changed = false;
    if (ok && best_form(a, n, st, wt, L, &fm)) {
        MilValue *r = s;
        const char *nm = w->name;
        switch (fm.kind) {
        case 0: break;
        case 1: r = pb_reshape(f, op, s, wt->rank, wt->dims, nm); break;
        case 2:
            if (!same_dims(st->rank, st->dims, wt->rank, fm.S)) r = pb_reshape(f, op, r, wt->rank, fm.S, "lr");
            r = pb_transpose(f, op, r, wt->rank, fm.P, nm);
            break;
        default: {
            r = pb_transpose(f, op, r, st->rank, fm.P, "lt");
            if (!same_dims(r->type->rank, r->type->dims, wt->rank, wt->dims)) r = pb_reshape(f, op, r, wt->rank, wt->dims, nm);
            break;
        }
        }
        changed = r != w && replace_value(f, w, r);
    }
    free(a);
    free(b);
    return changed;
}

/* transpose(norm(transpose(x, p), axes=[a]), q) with q∘p = identity
 *   -> norm(x, axes=[p[a]])
 * for layer_norm / rms_norm over one axis (gamma / beta keep their [C]
 * shape), and for unary element-wise ops in between.  The conformer's
 * conv module does  conv -> transpose -> layer_norm(last axis) -> transpose. */
static bool rule_norm_sandwich(MilFunc *f, MilOp *op, void *ctx) {
    (void)ctx;
    MilValue *y = arg_value(op, "x");
    if (!y || !y->def || y->nuses != 1 || value_is_output(f, y)) return false;
    MilOp *mid = y->def;
    bool norm = mid->kind == MIL_OP_LAYER_NORM || mid->kind == MIL_OP_RMS_NORM;
    const MilOpInfo *info = mil_op_info(mid->kind);
    bool unary = info && (info->flags & OPF_UNARY) && mid->nresults == 1;
    if (!norm && !unary) return false;
    MilValue *t = arg_value(mid, "x");
    if (!t || !t->def || t->def->kind != MIL_OP_TRANSPOSE || t->nuses != 1 || value_is_output(f, t)) return false;
    MilValue *x = arg_value(t->def, "x");
    const MilType *xt = x ? x->type : NULL;
    if (!ty_known(xt) || !ty_known(op->results[0]->type)) return false;
    int r = xt->rank;
    int64_t p[MIL_MAX_RANK], q[MIL_MAX_RANK];
    if (arg_ints(t->def, "perm", p, MIL_MAX_RANK) != r || arg_ints(op, "perm", q, MIL_MAX_RANK) != r) return false;
    for (int i = 0; i < r; i++) {
        if (p[i] < 0) p[i] += r;
        if (q[i] < 0) q[i] += r;
    }
    for (int i = 0; i < r; i++)
        if (q[i] < 0 || q[i] >= r || p[q[i]] != i) return false;
    MilOp *n = pb_op(f, mid->kind, mid->loc);
    for (int i = 0; i < mid->nargs; i++) {
        const MilArg *a = &mid->args[i];
        if (a->variadic || a->n != 1) return false;
        if (!strcmp(a->name, "x")) {
            mil_op_add_arg(n, "x", x);
        } else if (norm && !strcmp(a->name, "axes")) {
            int64_t ax;
            if (arg_ints(mid, "axes", &ax, 1) != 1) return false;
            if (ax < 0) ax += r;
            if (ax < 0 || ax >= r) return false;
            int64_t nax = p[ax];
            mil_op_add_arg(n, "axes", pb_const_i32s(f, op, 1, &nax, "axes"));
        } else if (a->items[0].value) {
            mil_op_add_arg(n, a->name, a->items[0].value);
        } else {
            mil_op_add_arg_const(n, a->name, a->items[0].cst);
        }
    }
    if (norm && !mil_op_arg(n, "axes")) return false;
    MilValue *res = pb_finish(f, n, op, op->results[0]->name);
    if (res->type != op->results[0]->type) return false;   /* (dead; DCE removes it) */
    return replace_value(f, op->results[0], res);
}

static const MilRule layout_rules[] = {
    {MIL_OP_RESHAPE, rule_collapse, "layout-collapse"},     /* reshape/transpose chain -> <= 2 ops */
    {MIL_OP_TRANSPOSE, rule_norm_sandwich, "norm-sandwich"}, /* transpose(norm(transpose(x,p)),p^-1) -> norm(x, p[axes]) */
    {MIL_OP_TRANSPOSE, rule_collapse, "layout-collapse"},   /* same, rooted at a transpose */
};

int mil_layout_collapse_func(MilFunc *f) {
    return mil_rewrite_fixpoint(f, layout_rules, 3, NULL);
}

int mil_pass_layout(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    (void)o;
    (void)d;
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++) n += mil_layout_collapse_func(p->funcs[i]);
    return n > 0;
}
