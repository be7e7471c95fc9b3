/* ir/verify.c -- structural and op-table checks on a program.
 *
 * Per function, in block order:
 *   - SSA: every value is defined once, names are unique in the function
 *     (parameters included), every use refers to a value of this function
 *     defined earlier, every output names a defined value;
 *   - known ops (ir/ops.def): required arguments present (A_ATTR ones may be
 *     attributes), no unknown or duplicate argument names, A_CONST arguments
 *     bound to an inline literal or to a const / constexpr result, tuples only
 *     for A_VARIADIC arguments, the result count of the table (split: one per
 *     part), and the result dtype rules of the element-wise families, cast
 *     and const;
 *   - literals everywhere (arguments, attributes, function and program
 *     attributes): element counts match the literal's type, aggregate item
 *     counts and item types match their containers.
 * Unknown ops (MIL_OP_UNKNOWN) get only the SSA and literal checks.  Every
 * diagnostic carries the location of the argument / attribute when it has
 * one, else of its op (function, program).
 */
#include "ir/ir_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct Verifier {
    const MilProgram *p;
    MilDiag *d;
    MilSpelling sp;
    int errors;
} Verifier;

#define verr(V, loc, ...) ((V)->errors++, mil_error((V)->d, (loc), __VA_ARGS__))

static MilLoc pick(MilLoc inner, MilLoc outer) { return inner.line > 0 ? inner : outer; }

/* Type text for messages (rotating buffers: up to four per message). */
static const char *tstr(Verifier *V, const MilType *t) {
    static _Thread_local char bufs[4][256];
    static _Thread_local int i;
    char *b = bufs[i++ & 3];
    if (!t) return "<no type>";
    mil_type_format(t, V->sp, b, sizeof bufs[0]);
    return b;
}

/* ------------------------------------------------------------- literals */

/* Does the literal type `actual` fit the declared (container) type? */
static bool fits(const MilType *decl, const MilType *actual) {
    if (!decl || decl == actual) return true;
    if (!actual) return false;
    if (decl->kind == MIL_TY_LIST && actual->kind == MIL_TY_TENSOR) {
        /* a list of equal-shape tensors written as one nested literal */
        const MilType *e = decl->elem;
        if (!e || e->kind != MIL_TY_TENSOR || actual->rank != e->rank + 1 || actual->dtype != e->dtype) return false;
        if (decl->len >= 0 && actual->dims[0] >= 0 && actual->dims[0] != decl->len) return false;
        for (int i = 0; i < e->rank; i++)
            if (e->dims[i] >= 0 && actual->dims[i + 1] != e->dims[i]) return false;
        return true;
    }
    if (decl->kind != actual->kind) return false;
    switch (decl->kind) {
    case MIL_TY_TENSOR:
        if (decl->dtype != actual->dtype || decl->rank != actual->rank) return false;
        for (int i = 0; i < decl->rank; i++)
            if (decl->dims[i] >= 0 && decl->dims[i] != actual->dims[i]) return false;
        return true;
    case MIL_TY_LIST:
        return (decl->len < 0 || decl->len == actual->len) && fits(decl->elem, actual->elem);
    case MIL_TY_DICT: return fits(decl->elem, actual->elem) && fits(decl->val, actual->val);
    case MIL_TY_TUPLE:
        if (decl->ntypes != actual->ntypes) return false;
        for (int i = 0; i < decl->ntypes; i++)
            if (!fits(decl->types[i], actual->types[i])) return false;
        return true;
    case MIL_TY_STATE: return fits(decl->elem, actual->elem);
    }
    return false;
}

static void check_const(Verifier *V, const MilConst *c, const MilType *decl, MilLoc loc) {
    if (!c) return;
    const MilType *t = c->type;
    if (!t) {
        verr(V, loc, "literal has no type");
        return;
    }
    if (decl && !fits(decl, t)) {
        verr(V, loc, "literal of type %s does not match the declared type %s", tstr(V, t), tstr(V, decl));
        return;
    }
    switch (c->kind) {
    case MIL_CONST_TENSOR:
    case MIL_CONST_BLOB: {
        if (t->kind != MIL_TY_TENSOR) {
            verr(V, loc, "tensor literal has non-tensor type %s", tstr(V, t));
            return;
        }
        if (mil_type_has_unknown(t)) {
            verr(V, loc, "literal type %s has unknown dimensions", tstr(V, t));
            return;
        }
        int64_t n = mil_type_numel(t);
        if (c->kind == MIL_CONST_TENSOR && n >= 0 && c->count != n)
            verr(V, loc, "literal of type %s has %" PRId64 " elements, expected %" PRId64, tstr(V, t), c->count, n);
        if (c->kind == MIL_CONST_BLOB && (!c->blob_path || !*c->blob_path))
            verr(V, loc, "BLOBFILE literal has an empty path");
        return;
    }
    case MIL_CONST_LIST:
        if (t->kind != MIL_TY_LIST) {
            verr(V, loc, "list literal has non-list type %s", tstr(V, t));
            return;
        }
        if (t->len >= 0 && c->nitems != t->len)
            verr(V, loc, "list literal of type %s has %d items, expected %" PRId64, tstr(V, t), c->nitems, t->len);
        for (int i = 0; i < c->nitems; i++) check_const(V, c->items[i], t->elem, loc);
        return;
    case MIL_CONST_TUPLE:
        if (t->kind != MIL_TY_TUPLE) {
            verr(V, loc, "tuple literal has non-tuple type %s", tstr(V, t));
            return;
        }
        if (c->nitems != t->ntypes) {
            verr(V, loc, "tuple literal of type %s has %d items, expected %d", tstr(V, t), c->nitems, t->ntypes);
            return;
        }
        for (int i = 0; i < c->nitems; i++) check_const(V, c->items[i], t->types[i], loc);
        return;
    case MIL_CONST_DICT:
        if (t->kind != MIL_TY_DICT) {
            verr(V, loc, "dict literal has non-dict type %s", tstr(V, t));
            return;
        }
        if (c->nitems % 2) {
            verr(V, loc, "dict literal of type %s has an odd number of items", tstr(V, t));
            return;
        }
        for (int i = 0; i < c->nitems; i += 2) {
            check_const(V, c->items[i], t->elem, loc);
            check_const(V, c->items[i + 1], t->val, loc);
        }
        return;
    case MIL_CONST_EMPTY:
        return;
    }
}

static void check_attrs(Verifier *V, const MilAttr *attrs, int n, MilLoc outer) {
    for (int i = 0; i < n; i++) check_const(V, attrs[i].val, NULL, pick(attrs[i].loc, outer));
}

/* ------------------------------------------------------------ name sets */

typedef struct Names {
    const char **slots;
    size_t cap;
} Names;

/* Adds name; returns false if it was already there. */
static bool names_add(Names *s, const char *name) {
    size_t mask = s->cap - 1, i = (size_t)mil_hash_bytes(MIL_HASH_SEED, name, strlen(name)) & mask;
    for (; s->slots[i]; i = (i + 1) & mask)
        if (strcmp(s->slots[i], name) == 0) return false;
    s->slots[i] = name;
    return true;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c *= 2;
    return c;
}

/* ----------------------------------------------------------------- ops */

/* Per-function state: value ids -> the value once it is defined. */
typedef struct FuncState {
    const MilFunc *f;
    const MilValue **defined;   /* [f->nvalues] */
    Names names;
} FuncState;

static bool in_func(const MilFunc *f, const MilValue *v) {
    if (!v->def) return v->index >= 0 && v->index < f->nparams && f->params[v->index] == v;
    return v->def->func == f && v->index >= 0 && v->index < v->def->nresults && v->def->results[v->index] == v;
}

static bool is_defined(const FuncState *S, const MilValue *v) {
    return v->id >= 0 && v->id < S->f->nvalues && S->defined[v->id] == v;
}

static void define(Verifier *V, FuncState *S, const MilValue *v, MilLoc loc) {
    if (!v->name || !names_add(&S->names, v->name)) {
        verr(V, loc, "redefinition of value '%s'", v->name ? v->name : "?");
        return;
    }
    if (v->id < 0 || v->id >= S->f->nvalues || S->defined[v->id]) {
        verr(V, loc, "value '%s' is defined more than once", v->name);
        return;
    }
    S->defined[v->id] = v;
}

static void check_use(Verifier *V, FuncState *S, const MilValue *v, MilLoc loc) {
    if (is_defined(S, v)) return;
    if (in_func(S->f, v)) verr(V, loc, "value '%s' is used before its definition", v->name);
    else verr(V, loc, "use of undefined value '%s'", v->name ? v->name : "?");
}

static bool value_is_const(const MilValue *v) {
    if (!v->def) return false;
    if (v->def->kind == MIL_OP_CONST) return true;
    const MilOpInfo *di = mil_op_info(v->def->kind);
    return di && (di->flags & OPF_CONSTEXPR);
}

static const MilType *binding_type(const MilBinding *b) {
    if (b->value) return b->value->type;
    if (b->cst) return b->cst->type;
    return NULL;
}

static void check_result_count(Verifier *V, const MilOp *op, const MilOpInfo *info, const char *name) {
    int n = op->nresults;
    if (op->kind == MIL_OP_SPLIT) {
        const MilConst *ns = mil_op_const_arg(op, "num_splits");
        const MilConst *ss = mil_op_const_arg(op, "split_sizes");
        if (ns && ns->kind == MIL_CONST_TENSOR && ns->count == 1) {
            int64_t k = mil_const_get_i64(ns, 0);
            if (n != k) verr(V, op->loc, "split has %d results, but num_splits is %" PRId64, n, k);
            return;
        }
        if (ss && (ss->kind == MIL_CONST_TENSOR || ss->kind == MIL_CONST_BLOB)) {
            int64_t k = ss->kind == MIL_CONST_TENSOR ? ss->count : mil_type_numel(ss->type);
            if (k >= 0 && n != k) verr(V, op->loc, "split has %d results, but split_sizes has %" PRId64 " entries", n, k);
            return;
        }
    }
    if (info->nresults < 0) {
        if (n < 1) verr(V, op->loc, "op '%s' has no results, expected at least 1", name);
    } else if (n != info->nresults) {
        verr(V, op->loc, "op '%s' has %d results, expected %d", name, n, info->nresults);
    }
}

static void check_result_dtype(Verifier *V, const MilOp *op, const char *name, MilDType want, const char *why) {
    if (op->nresults < 1 || want == MIL_DT_NONE) return;
    const MilType *rt = op->results[0]->type;
    if (!rt || rt->kind != MIL_TY_TENSOR) return;
    if (rt->dtype != want)
        verr(V, op->loc, "result of op '%s' has dtype %s, expected %s%s", name, mil_dtype_name(rt->dtype),
             mil_dtype_name(want), why);
}

static void check_result_types(Verifier *V, const MilOp *op, const MilOpInfo *info, const char *name) {
    if (op->kind == MIL_OP_CONST) {
        const MilAttr *val = mil_op_attr(op, "val");
        if (!val || !val->val) {
            verr(V, op->loc, "const has no attribute 'val'");
            return;
        }
        if (op->nresults != 1 || !op->results[0]->type || !val->val->type) return;
        const MilType *rt = op->results[0]->type, *vt = val->val->type;
        bool ok = mil_type_equal(rt, vt);
        if (!ok && val->val->kind == MIL_CONST_BLOB && rt->kind == MIL_TY_TENSOR && vt->kind == MIL_TY_TENSOR)
            ok = rt->dtype == vt->dtype && rt->rank == vt->rank;
        if (!ok)
            verr(V, op->loc, "const result type %s does not match the type of its value %s", tstr(V, rt),
                 tstr(V, vt));
        return;
    }
    if (info->flags & OPF_UNARY) {
        const MilArg *x = mil_op_arg(op, "x");
        const MilType *xt = x && x->n == 1 ? binding_type(&x->items[0]) : NULL;
        if (xt && xt->kind == MIL_TY_TENSOR) check_result_dtype(V, op, name, xt->dtype, " (the dtype of 'x')");
        return;
    }
    if (info->flags & (OPF_CMP | OPF_LOGIC)) {
        check_result_dtype(V, op, name, MIL_DT_BOOL, "");
        return;
    }
    if (op->kind == MIL_OP_CAST) {
        const MilConst *c = mil_op_const_arg(op, "dtype");
        const char *s = mil_const_get_str(c);
        if (!s) return;
        MilDType dt = mil_dtype_from_name(s, strlen(s));
        const MilArg *a = mil_op_arg(op, "dtype");
        if (dt == MIL_DT_NONE) verr(V, pick(a ? a->loc : op->loc, op->loc), "cast to unknown dtype '%s'", s);
        else check_result_dtype(V, op, name, dt, " (the cast's dtype)");
    }
}

/* The dtype of single-binding tensor argument `arg`, MIL_DT_NONE otherwise. */
static MilDType arg_dtype(const MilOp *op, const char *arg, MilLoc *loc) {
    const MilArg *a = mil_op_arg(op, arg);
    const MilType *t = a && a->n == 1 ? binding_type(&a->items[0]) : NULL;
    if (loc) *loc = pick(a ? a->loc : op->loc, op->loc);
    return t && t->kind == MIL_TY_TENSOR ? t->dtype : MIL_DT_NONE;
}

/* Operand dtypes of the families whose rule is simple and universal
 * (mil-format.md §7.2): x and y of arithmetic and comparison ops share one
 * dtype, logical ops take bool, select takes a bool cond and a, b of one
 * dtype.  States only flow into read_state / write_state's `input`.
 * (Result dtypes of these ops are checked by shape inference, passes/.) */
static void check_operand_types(Verifier *V, const MilOp *op, const MilOpInfo *info, const char *name) {
    bool state_op = op->kind == MIL_OP_READ_STATE || op->kind == MIL_OP_WRITE_STATE;
    for (int i = 0; i < op->nargs; i++) {
        const MilArg *a = &op->args[i];
        bool state_slot = state_op && strcmp(a->name, "input") == 0;
        for (int j = 0; j < a->n; j++) {
            const MilType *t = binding_type(&a->items[j]);
            if (!t) continue;
            if (t->kind == MIL_TY_STATE && !state_slot)
                verr(V, pick(a->loc, op->loc), "argument '%s' of op '%s' is a state; only read_state and "
                     "write_state take states", a->name, name);
            else if (state_slot && t->kind != MIL_TY_STATE)
                verr(V, pick(a->loc, op->loc), "argument 'input' of op '%s' must be a state, got %s", name,
                     tstr(V, t));
            else if (state_slot && op->kind == MIL_OP_READ_STATE && op->nresults == 1 && op->results[0]->type &&
                     !mil_type_equal(op->results[0]->type, t->elem))
                verr(V, op->loc, "read_state result type %s does not match the state's %s",
                     tstr(V, op->results[0]->type), tstr(V, t->elem));
        }
    }
    MilLoc lx, ly;
    if (info->flags & (OPF_BINARY | OPF_CMP)) {
        MilDType x = arg_dtype(op, "x", &lx), y = arg_dtype(op, "y", &ly);
        if (x != MIL_DT_NONE && y != MIL_DT_NONE && x != y)
            verr(V, ly, "operands of op '%s' have different dtypes: x is %s, y is %s", name, mil_dtype_name(x),
                 mil_dtype_name(y));
    } else if (info->flags & OPF_LOGIC) {
        const char *args[2] = {"x", "y"};
        for (int i = 0; i < 2; i++) {
            MilDType t = arg_dtype(op, args[i], &lx);
            if (t != MIL_DT_NONE && t != MIL_DT_BOOL)
                verr(V, lx, "argument '%s' of op '%s' must be bool, got %s", args[i], name, mil_dtype_name(t));
        }
    } else if (op->kind == MIL_OP_SELECT) {
        MilDType c = arg_dtype(op, "cond", &lx);
        if (c != MIL_DT_NONE && c != MIL_DT_BOOL)
            verr(V, lx, "argument 'cond' of op 'select' must be bool, got %s", mil_dtype_name(c));
        MilDType a = arg_dtype(op, "a", NULL), b = arg_dtype(op, "b", &ly);
        if (a != MIL_DT_NONE && b != MIL_DT_NONE && a != b)
            verr(V, ly, "operands of op 'select' have different dtypes: a is %s, b is %s", mil_dtype_name(a),
                 mil_dtype_name(b));
    }
}

static void check_known_op(Verifier *V, const MilOp *op, const MilOpInfo *info) {
    const char *name = mil_op_display_name(op);
    for (int i = 0; i < op->nargs; i++) {
        const MilArg *a = &op->args[i];
        MilLoc loc = pick(a->loc, op->loc);
        const MilArgInfo *ai = mil_op_arg_info(op->kind, a->name);
        if (!ai) {
            verr(V, op->loc, "unknown argument '%s' of op '%s'", a->name, name);
            continue;
        }
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) dup = strcmp(op->args[j].name, a->name) == 0;
        if (dup) {
            verr(V, loc, "duplicate argument '%s' of op '%s'", a->name, name);
            continue;
        }
        if (a->variadic && a->n != 1 && !(ai->flags & A_VARIADIC)) {
            verr(V, loc, "argument '%s' of op '%s' does not take a tuple", a->name, name);
            continue;
        }
        if (ai->flags & A_CONST) {
            for (int j = 0; j < a->n; j++) {
                const MilBinding *b = &a->items[j];
                if (b->cst || (b->value && value_is_const(b->value))) continue;
                if (!b->value) continue; /* reported as an empty binding */
                verr(V, loc, "argument '%s' of op '%s' must be a constant", a->name, name);
                break;
            }
        }
    }
    for (int k = 0; k < info->nargs; k++) {
        const MilArgInfo *ai = &info->args[k];
        if (!(ai->flags & A_REQ)) continue;
        bool found = false;
        for (int i = 0; i < op->nargs && !found; i++) found = strcmp(op->args[i].name, ai->name) == 0;
        if (!found && (ai->flags & A_ATTR)) found = mil_op_attr(op, ai->name) != NULL;
        if (!found) verr(V, op->loc, "missing required argument '%s' of op '%s'", ai->name, name);
    }
    check_result_count(V, op, info, name);
    check_result_types(V, op, info, name);
    check_operand_types(V, op, info, name);
}

static void check_op(Verifier *V, FuncState *S, const MilOp *op) {
    const char *name = mil_op_display_name(op);
    for (int i = 0; i < op->nargs; i++) {
        const MilArg *a = &op->args[i];
        MilLoc loc = pick(a->loc, op->loc);
        for (int j = 0; j < a->n; j++) {
            const MilBinding *b = &a->items[j];
            if (b->value) check_use(V, S, b->value, loc);
            else if (b->cst) check_const(V, b->cst, NULL, loc);
            else verr(V, loc, "argument '%s' of op '%s' has no binding", a->name, name);
        }
    }
    check_attrs(V, op->attrs, op->nattrs, op->loc);
    const MilOpInfo *info = mil_op_info(op->kind);
    if (info) check_known_op(V, op, info);
    for (int i = 0; i < op->nresults; i++) {
        const MilValue *r = op->results[i];
        if (!r->type) verr(V, op->loc, "result '%s' of op '%s' has no type", r->name ? r->name : "?", name);
        if (r->def != op || r->index != i) {
            verr(V, op->loc, "result '%s' of op '%s' belongs to another op", r->name ? r->name : "?", name);
            continue;
        }
        define(V, S, r, op->loc);
    }
}

static void check_func(Verifier *V, const MilFunc *f) {
    FuncState S = { .f = f };
    size_t nv = f->nvalues > 0 ? (size_t)f->nvalues : 1;
    S.defined = calloc(nv, sizeof *S.defined);
    S.names.cap = pow2_at_least(2 * nv + 2);
    S.names.slots = calloc(S.names.cap, sizeof *S.names.slots);
    if (!S.defined || !S.names.slots) {
        verr(V, f->loc, "out of memory while verifying function '%s'", f->name);
        free(S.defined);
        free(S.names.slots);
        return;
    }
    check_attrs(V, f->attrs, f->nattrs, f->loc);
    for (int i = 0; i < f->nparams; i++) {
        const MilValue *v = f->params[i];
        if (!v->type) verr(V, f->loc, "parameter '%s' of function '%s' has no type", v->name, f->name);
        define(V, &S, v, f->loc);
    }
    for (const MilOp *op = f->body.first; op; op = op->next) check_op(V, &S, op);
    MilLoc oloc = pick(f->body.outs_loc, f->loc);
    for (int i = 0; i < f->body.nouts; i++) {
        const MilValue *v = f->body.outs[i];
        if (!v) verr(V, oloc, "output %d of function '%s' is missing", i, f->name);
        else if (!is_defined(&S, v)) verr(V, oloc, "output '%s' of function '%s' is not defined", v->name, f->name);
    }
    free(S.defined);
    free(S.names.slots);
}

int mil_verify(const MilProgram *p, MilDiag *d) {
    if (!p || !d) return 0;
    Verifier V = { .p = p, .d = d, .sp = mil_program_spelling(p) };
    check_attrs(&V, p->attrs, p->nattrs, (MilLoc){ 0 });
    for (int i = 0; i < p->nfuncs; i++) {
        const MilFunc *f = p->funcs[i];
        for (int j = 0; j < i; j++)
            if (strcmp(p->funcs[j]->name, f->name) == 0) {
                verr(&V, f->loc, "redefinition of function '%s'", f->name);
                break;
            }
        check_func(&V, f);
    }
    return V.errors;
}
