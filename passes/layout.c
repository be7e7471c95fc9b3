/* passes/layout.c -- collapsing chains of layout ops.
 *
 * A chain is a run of reshape / transpose ops  s -> o1 -> ... -> oL = w  whose
 * intermediate results have no other use.  Such a chain only moves elements,
 * and it is analysed on dims, never on elements (cost O(L * rank^2) per
 * chain, whatever the sizes):
 *
 *  - s's dims are cut into *atoms*: factors of s's dims, in s's row-major
 *    order, fine enough that every intermediate dim is a run of atoms.  Unit
 *    dims have no atom.  Every tensor of the chain is a list of axes, each an
 *    ordered (major -> minor) list of atoms.
 *  - a transpose permutes the axes;
 *  - a reshape flattens the atom sequence and regroups it into the new dims
 *    (consecutive runs with the right products), splitting an atom A into
 *    (q, A/q) when a new dim boundary falls inside it.  When a boundary
 *    cannot be placed that way (a new dim that is not a product of whole
 *    atoms and a divisor of the next), the chain is left alone.
 *
 * w is then its atom order (a permutation of s's atoms) and its grouping into
 * dims, matched against the cheap forms
 *
 *     w = s                                   (0 ops)
 *     w = reshape(s)                          (1 op; atoms in source order)
 *     w = transpose(reshape(s, S), P)         (1 or 2 ops; each dim of w a
 *                                              source-ordered run of atoms)
 *     w = reshape(transpose(s, P))            (1 or 2 ops; each dim of s stays
 *                                              in one piece in w's order)
 *     w = reshape(transpose(reshape(s, B), P))  (3 ops; B = maximal blocks of
 *                                              atoms adjacent in both orders)
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
#define MAX_ATOMS 64

static bool layout_op(const MilOp *op) {
    return op && (op->kind == MIL_OP_RESHAPE || op->kind == MIL_OP_TRANSPOSE) && op->nresults == 1 &&
           ty_known(op->results[0]->type) && arg_value(op, "x") && ty_known(arg_type(op, "x"));
}

static bool same_dims(int r1, const int64_t *d1, int r2, const int64_t *d2) {
    if (r1 != r2) return false;
    for (int i = 0; i < r1; i++)
        if (d1[i] != d2[i]) return false;
    return true;
}

/* The chain's effect on dims. */
typedef struct Atoms {
    int na;                          /* atoms, in s's row-major order */
    int64_t size[MAX_ATOMS];
    int src[MAX_ATOMS];              /* the dim of s each atom comes from */
    int rank;                        /* axes of the current tensor */
    int n[MIL_MAX_RANK];             /* atoms per axis */
    int ax[MIL_MAX_RANK][MAX_ATOMS]; /* atom ids per axis, major -> minor */
} Atoms;

static void atoms_init(Atoms *a, const MilType *st) {
    a->na = 0;
    a->rank = st->rank;
    for (int d = 0; d < st->rank; d++) {
        a->n[d] = 0;
        if (st->dims[d] == 1) continue;
        a->size[a->na] = st->dims[d];
        a->src[a->na] = d;
        a->ax[d][a->n[d]++] = a->na++;
    }
}

static void atoms_transpose(Atoms *a, const int64_t *perm) {
    int n[MIL_MAX_RANK], ax[MIL_MAX_RANK][MAX_ATOMS];
    memcpy(n, a->n, sizeof n);
    memcpy(ax, a->ax, sizeof ax);
    for (int i = 0; i < a->rank; i++) {
        a->n[i] = n[perm[i]];
        memcpy(a->ax[i], ax[perm[i]], sizeof(int) * (size_t)n[perm[i]]);
    }
}

/* Regroups the atom sequence into dims e[0..m).  False when some dim is not
 * a run of whole atoms after at most one split per boundary. */
static bool atoms_reshape(Atoms *a, int m, const int64_t *e) {
    int seq[MAX_ATOMS], ns = 0;
    for (int i = 0; i < a->rank; i++)
        for (int k = 0; k < a->n[i]; k++) seq[ns++] = a->ax[i][k];
    int p = 0;
    for (int j = 0; j < m; j++) {
        int64_t prod = 1;
        a->n[j] = 0;
        while (prod < e[j]) {
            if (p >= ns) return false;
            int x = seq[p];
            int64_t A = a->size[x];
            if (prod * A <= e[j]) {
                if (e[j] % (prod * A)) return false;
                a->ax[j][a->n[j]++] = x;
                prod *= A;
                p++;
                continue;
            }
            int64_t q = e[j] / prod;
            if (e[j] % prod || A % q || a->na >= MAX_ATOMS) return false;
            /* split x into (x: q, x+1: A/q) */
            for (int i = 0; i < ns; i++)
                if (seq[i] > x) seq[i]++;
            for (int i = 0; i < a->n[j]; i++)
                if (a->ax[j][i] > x) a->ax[j][i]++;
            for (int i = 0; i < j; i++)
                for (int k = 0; k < a->n[i]; k++)
                    if (a->ax[i][k] > x) a->ax[i][k]++;
            memmove(&a->size[x + 2], &a->size[x + 1], sizeof(int64_t) * (size_t)(a->na - x - 1));
            memmove(&a->src[x + 2], &a->src[x + 1], sizeof(int) * (size_t)(a->na - x - 1));
            a->na++;
            a->size[x] = q;
            a->size[x + 1] = A / q;
            a->src[x + 1] = a->src[x];
            a->ax[j][a->n[j]++] = x;
            seq[p] = x + 1;
            prod *= q;
        }
        if (prod != e[j]) return false;
    }
    a->rank = m;
    return p == ns;
}

/* Runs the chain (chain[L-1] first) on s's atoms. */
static bool atoms_run(Atoms *a, MilOp **chain, int L, const MilType *st) {
    atoms_init(a, st);
    for (int i = L - 1; i >= 0; i--) {
        MilOp *c = chain[i];
        const MilType *xt = arg_type(c, "x"), *rt = c->results[0]->type;
        if (xt->rank != a->rank || rt->rank > MIL_MAX_RANK) return false;
        if (c->kind == MIL_OP_TRANSPOSE) {
            int64_t perm[MIL_MAX_RANK];
            bool seen[MIL_MAX_RANK] = {false};
            if (arg_ints(c, "perm", perm, MIL_MAX_RANK) != xt->rank || rt->rank != xt->rank) return false;
            for (int k = 0; k < xt->rank; k++) {
                if (perm[k] < 0) perm[k] += xt->rank;
                if (perm[k] < 0 || perm[k] >= xt->rank || seen[perm[k]]) return false;
                seen[perm[k]] = true;
            }
            atoms_transpose(a, perm);
        } else if (!atoms_reshape(a, rt->rank, rt->dims)) {
            return false;
        }
    }
    return true;
}

typedef struct Form {
    int kind;                 /* 0 = s, 1 = reshape, 2 = transpose(reshape), 3 = reshape(transpose),
                                 4 = reshape(transpose(reshape)) */
    int cost;
    int rS;                   /* kinds 2, 4: rank of the first reshape */
    int64_t S[MIL_MAX_RANK];  /* kinds 2, 4: the first reshape */
    int64_t P[MIL_MAX_RANK];  /* the transpose */
} Form;

/* Is the atom list a run of consecutive source atoms? */
static bool src_run(const int *ids, int n) {
    for (int k = 1; k < n; k++)
        if (ids[k] != ids[k - 1] + 1) return false;
    return true;
}

/* Is the source-ordered run ids[0..n) exactly the atoms of s's dim d? */
static bool whole_dim(const Atoms *a, const int *ids, int n, int d) {
    int x0 = ids[0], x1 = ids[n - 1];
    return a->src[x0] == d && a->src[x1] == d && (x0 == 0 || a->src[x0 - 1] != d) &&
           (x1 == a->na - 1 || a->src[x1 + 1] != d);
}

/* w = transpose(reshape(s, S), P): every non-unit dim of w is a source-ordered
 * run of atoms; S lists w's dims in source order.  Unit dims of w take the
 * places of s's unit dims when that makes S = s's dims (no reshape). */
static bool form_tr(const Atoms *a, const MilType *st, const MilType *wt, Form *fm) {
    int r = wt->rank, order[MIL_MAX_RANK], no = 0;
    int units[MIL_MAX_RANK], nu = 0;
    for (int i = 0; i < r; i++) {
        if (!a->n[i]) {
            units[nu++] = i;
            continue;
        }
        if (!src_run(a->ax[i], a->n[i])) return false;
        /* insert by first atom */
        int k = no++;
        while (k > 0 && a->ax[order[k - 1]][0] > a->ax[i][0]) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    int Sidx[MIL_MAX_RANK], ns = 0;   /* w axis at each position of S */
    bool as_s = st->rank == r;
    if (as_s) {   /* the non-unit dims of s must be exactly the sorted w dims */
        int k = 0, u = 0;
        for (int d = 0; d < r && as_s; d++) {
            if (st->dims[d] == 1) {
                if (u >= nu) as_s = false;
                else Sidx[ns++] = units[u++];
            } else if (k < no && whole_dim(a, a->ax[order[k]], a->n[order[k]], d)) {
                Sidx[ns++] = order[k++];
            } else {
                as_s = false;
            }
        }
        as_s = as_s && k == no && u == nu;
    }
    if (!as_s) {
        ns = 0;
        for (int u = 0; u < nu; u++) Sidx[ns++] = units[u];
        for (int k = 0; k < no; k++) Sidx[ns++] = order[k];
    }
    for (int j = 0; j < r; j++) fm->S[j] = wt->dims[Sidx[j]];
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++)
            if (Sidx[j] == i) fm->P[i] = j;
    fm->kind = 2;
    fm->rS = r;
    fm->cost = 1 + !same_dims(st->rank, st->dims, r, fm->S);
    return true;
}

/* w = reshape(transpose(s, P)): every dim of s is one run of w's atom order. */
static bool form_rt(const Atoms *a, const MilType *st, const int *word, int nw, Form *fm) {
    int r = st->rank, pos[MAX_ATOMS];
    for (int k = 0; k < nw; k++) pos[word[k]] = k;
    int first[MIL_MAX_RANK], nd = 0, order[MIL_MAX_RANK], no = 0;
    for (int d = 0; d < r; d++) first[d] = -1;
    for (int x = 0; x < a->na; x++) {
        int d = a->src[x];
        if (first[d] < 0) first[d] = x;
        else if (pos[x] != pos[x - 1] + 1) return false;
    }
    for (int d = 0; d < r; d++) {
        if (first[d] < 0) {
            fm->P[nd++] = d;   /* unit dims first */
            continue;
        }
        int k = no++;
        while (k > 0 && pos[first[order[k - 1]]] > pos[first[d]]) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = d;
    }
    for (int k = 0; k < no; k++) fm->P[nd++] = order[k];
    fm->kind = 3;
    fm->cost = 2;
    return true;
}

/* w = reshape(transpose(reshape(s, B), P)) with B the maximal blocks. */
static void form_rtr(const Atoms *a, const int *word, int nw, Form *fm) {
    int blk_of[MAX_ATOMS], nb = 0, bfirst[MAX_ATOMS];
    /* a block starts at atom x unless x-1 precedes x directly in w's order */
    int pos[MAX_ATOMS];
    for (int k = 0; k < nw; k++) pos[word[k]] = k;
    for (int x = 0; x < a->na; x++) {
        if (x == 0 || pos[x] != pos[x - 1] + 1) {
            bfirst[nb] = x;
            fm->S[nb++] = 1;
        }
        blk_of[x] = nb - 1;
        fm->S[nb - 1] *= a->size[x];
    }
    int np = 0;
    for (int k = 0; k < nw; k++)
        if (bfirst[blk_of[word[k]]] == word[k]) fm->P[np++] = blk_of[word[k]];
    fm->rS = nb;
    fm->kind = 4;
    fm->cost = 3;
}

/* The cheapest form of the chain (cost < limit), or false. */
static bool best_form(const Atoms *a, const MilType *st, const MilType *wt, int limit, Form *best) {
    int word[MAX_ATOMS], nw = 0;
    for (int i = 0; i < a->rank; i++)
        for (int k = 0; k < a->n[i]; k++) word[nw++] = a->ax[i][k];
    if (nw != a->na) return false;
    if (src_run(word, nw)) {
        best->kind = same_dims(st->rank, st->dims, wt->rank, wt->dims) ? 0 : 1;
        best->cost = best->kind;
        return best->cost < limit;
    }
    if (limit <= 1) return false;
    Form f2, f3;
    best->cost = 99;
    if (wt->rank <= MIL_MAX_RANK && form_tr(a, st, wt, &f2)) *best = f2;
    if (best->cost > 1 && form_rt(a, st, word, nw, &f3)) {
        /* a transpose of s that already has w's dims needs no reshape */
        int64_t od[MIL_MAX_RANK];
        for (int i = 0; i < st->rank; i++) od[i] = st->dims[f3.P[i]];
        if (same_dims(st->rank, od, wt->rank, wt->dims)) f3.cost = 1;
        if (f3.cost < best->cost) *best = f3;
    }
    if (best->cost > 3) form_rtr(a, word, nw, best);
    return best->cost < limit;
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
    if (n <= 0 || n != mil_type_numel(wt) || st->rank > MIL_MAX_RANK) return false;
    Atoms *a = malloc(sizeof *a);
    if (!a) return false;
    Form fm;
    bool changed = false;
    if (atoms_run(a, chain, L, st) && best_form(a, st, wt, L, &fm)) {
        MilValue *r = s;
        const char *nm = w->name;
        switch (fm.kind) {
        case 0: break;
        case 1: r = pb_reshape(f, op, s, wt->rank, wt->dims, nm); break;
        case 2:
            if (!same_dims(st->rank, st->dims, fm.rS, fm.S)) r = pb_reshape(f, op, r, fm.rS, fm.S, "lr");
            r = pb_transpose(f, op, r, wt->rank, fm.P, nm);
            break;
        case 3:
            r = pb_transpose(f, op, r, st->rank, fm.P, "lt");
            if (!same_dims(r->type->rank, r->type->dims, wt->rank, wt->dims)) r = pb_reshape(f, op, r, wt->rank, wt->dims, nm);
            break;
        default:
            if (!same_dims(st->rank, st->dims, fm.rS, fm.S)) r = pb_reshape(f, op, r, fm.rS, fm.S, "lr");
            r = pb_transpose(f, op, r, fm.rS, fm.P, "lt");
            r = pb_reshape(f, op, r, wt->rank, wt->dims, nm);
            break;
        }
        changed = r != w && replace_value(f, w, r);
    }
    free(a);
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
    pass_enter();
    (void)o;
    (void)d;
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++) n += mil_layout_collapse_func(p->funcs[i]);
    return n > 0;
}
