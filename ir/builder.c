/* ir/builder.c -- creating and editing programs, functions and ops.
 *
 * Invariants kept here:
 *   - every value of a function gets a dense id (0 .. nvalues-1) when created;
 *   - every SSA name handed out (params, results, unique names) goes into the
 *     function's name set, so mil_func_unique_name() never repeats one;
 *   - ops are created detached (op->block == NULL) and linked into a block's
 *     doubly linked list with append / insert_before; remove only unlinks.
 * Use counts are not maintained: mil_func_fill_uses() recomputes them.
 */
#include "ir/ir_int.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- name sets */

static uint64_t hash_str(const char *s) { return mil_hash_bytes(MIL_HASH_SEED, s, strlen(s)); }

bool mil_nameset_has(const MilNameSet *s, const char *name) {
    if (!s || !s->cap || !name) return false;
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)hash_str(name) & mask; s->slots[i]; i = (i + 1) & mask)
        if (strcmp(s->slots[i], name) == 0) return true;
    return false;
}

void mil_nameset_add(MilArena *a, MilNameSet *s, const char *name) {
    if (!s || !name || mil_nameset_has(s, name)) return;
    if ((s->n + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        const char **ns = mil_arena_alloc(a, ncap * sizeof *ns);
        if (!ns) return;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i]) continue;
            size_t j = (size_t)hash_str(s->slots[i]) & (ncap - 1);
            while (ns[j]) j = (j + 1) & (ncap - 1);
            ns[j] = s->slots[i];
        }
        s->slots = ns;
        s->cap = ncap;
    }
    size_t mask = s->cap - 1, i = (size_t)hash_str(name) & mask;
    while (s->slots[i]) i = (i + 1) & mask;
    s->slots[i] = name;
    s->n++;
}

static void reserve_name(MilFunc *f, const char *name) {
    if (!f->names) f->names = mil_new(&f->prog->arena, MilNameSet);
    mil_nameset_add(&f->prog->arena, f->names, name);
}

/* --------------------------------------------------------------- program */

MilProgram *mil_program_new(const char *version) {
    MilProgram *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->version = mil_strdup(p, version ? version : "1.0");
    if (!p->version) {
        free(p);
        return NULL;
    }
    return p;
}

void mil_program_free(MilProgram *p) {
    if (!p) return;
    mil_arena_free(&p->arena);
    free(p);
}

char *mil_strdup(MilProgram *p, const char *s) {
    if (!p || !s) return NULL;
    return mil_arena_strndup(&p->arena, s, strlen(s));
}

MilSpelling mil_program_spelling(const MilProgram *p) {
    if (!p || !p->version) return MIL_SPELLING_1_0;
    const char *v = p->version;
    long major = strtol(v, (char **)&v, 10), minor = 0;
    if (major == 1 && *v == 0 && p->written != MIL_SPELLING_SAME) return p->written; /* `program(1)` */
    if (*v == '.') minor = strtol(v + 1, NULL, 10);
    return (major > 1 || (major == 1 && minor >= 3)) ? MIL_SPELLING_1_3 : MIL_SPELLING_1_0;
}

/* Replaces attribute `name` in (*v, *n) or appends it. */
static void set_attr(MilArena *a, MilAttr **v, int *n, int *cap, const char *name, MilConst *val) {
    for (int i = 0; i < *n; i++) {
        if (strcmp((*v)[i].name, name) == 0) {
            (*v)[i].val = val;
            return;
        }
    }
    if (!mil_grow_(a, (void **)v, *n, cap, sizeof **v)) return;
    char *nm = mil_arena_strndup(a, name, strlen(name));
    if (!nm) return;
    (*v)[*n] = (MilAttr){ .name = nm, .val = val };
    (*n)++;
}

void mil_program_set_attr(MilProgram *p, const char *name, MilConst *val) {
    if (!p || !name) return;
    set_attr(&p->arena, &p->attrs, &p->nattrs, &p->capattrs, name, val);
}

/* -------------------------------------------------------------- functions */

MilFunc *mil_func_new(MilProgram *p, const char *name, const char *opset) {
    if (!p || !name) return NULL;
    MilFunc *f = mil_new(&p->arena, MilFunc);
    if (!f || !MIL_GROW(&p->arena, p->funcs, p->nfuncs, p->capfuncs)) return NULL;
    f->name = mil_strdup(p, name);
    f->opset = opset ? mil_strdup(p, opset) : NULL;
    f->prog = p;
    f->body.func = f;
    f->blank_before = p->nfuncs > 0 && p->funcs[p->nfuncs - 1]->blank_before;
    p->funcs[p->nfuncs++] = f;
    return f;
}

MilFunc *mil_program_find_func(const MilProgram *p, const char *name) {
    if (!p || !name) return NULL;
    for (int i = 0; i < p->nfuncs; i++)
        if (strcmp(p->funcs[i]->name, name) == 0) return p->funcs[i];
    return NULL;
}

static MilValue *new_value(MilFunc *f, const MilType *t, const char *name) {
    MilValue *v = mil_new(&f->prog->arena, MilValue);
    if (!v) return NULL;
    v->name = name ? mil_strdup(f->prog, name) : mil_func_unique_name(f, "var");
    if (!v->name) return NULL;
    reserve_name(f, v->name);
    v->type = t;
    v->id = f->nvalues++;
    return v;
}

MilValue *mil_func_add_param(MilFunc *f, const MilType *t, const char *name) {
    if (!f || !MIL_GROW(&f->prog->arena, f->params, f->nparams, f->capparams)) return NULL;
    MilValue *v = new_value(f, t, name);
    if (!v) return NULL;
    v->index = f->nparams;
    f->params[f->nparams++] = v;
    return v;
}

void mil_func_set_attr(MilFunc *f, const char *name, MilConst *val) {
    if (!f || !name) return;
    set_attr(&f->prog->arena, &f->attrs, &f->nattrs, &f->capattrs, name, val);
}

void mil_func_add_output(MilFunc *f, MilValue *v) {
    MilBlock *b = &f->body;
    if (!MIL_GROW(&f->prog->arena, b->outs, b->nouts, b->capouts)) return;
    b->outs[b->nouts++] = v;
}

/* The memo slot of base in s (inserting it with k = 0); NULL on OOM. */
static long *suffix_slot(MilArena *a, MilNameSet *s, const char *base) {
    if ((s->bn + 1) * 2 > s->bcap) {
        size_t ncap = s->bcap ? s->bcap * 2 : 64;
        const char **nb = mil_arena_alloc(a, ncap * sizeof *nb);
        long *nl = mil_arena_alloc(a, ncap * sizeof *nl);
        if (!nb || !nl) return NULL;
        for (size_t i = 0; i < s->bcap; i++) {
            if (!s->bases[i]) continue;
            size_t j = (size_t)hash_str(s->bases[i]) & (ncap - 1);
            while (nb[j]) j = (j + 1) & (ncap - 1);
            nb[j] = s->bases[i];
            nl[j] = s->last[i];
        }
        s->bases = nb;
        s->last = nl;
        s->bcap = ncap;
    }
    size_t mask = s->bcap - 1, i = (size_t)hash_str(base) & mask;
    while (s->bases[i] && strcmp(s->bases[i], base)) i = (i + 1) & mask;
    if (!s->bases[i]) {
        s->bases[i] = mil_arena_strndup(a, base, strlen(base));
        if (!s->bases[i]) return NULL;
        s->last[i] = 0;
        s->bn++;
    }
    return &s->last[i];
}

const char *mil_func_unique_name(MilFunc *f, const char *base) {
    if (!f) return NULL;
    if (!base || !*base) base = "var";
    if (!f->names) f->names = mil_new(&f->prog->arena, MilNameSet);
    const char *name = NULL;
    if (!mil_nameset_has(f->names, base)) {
        name = mil_strdup(f->prog, base);
    } else {
        size_t n = strlen(base) + 24;
        char *buf = malloc(n);
        long *last = suffix_slot(&f->prog->arena, f->names, base);
        if (!buf || !last) {
            free(buf);
            return NULL;
        }
        for (long k = *last + 1;; k++) {
            snprintf(buf, n, "%s_%ld", base, k);
            if (!mil_nameset_has(f->names, buf)) {
                *last = k;
                break;
            }
        }
        name = mil_strdup(f->prog, buf);
        free(buf);
    }
    if (name) reserve_name(f, name);
    return name;
}

MilValue *mil_func_find_value(MilFunc *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->nparams; i++)
        if (strcmp(f->params[i]->name, name) == 0) return f->params[i];
    for (MilOp *op = f->body.first; op; op = op->next)
        for (int i = 0; i < op->nresults; i++)
            if (strcmp(op->results[i]->name, name) == 0) return op->results[i];
    return NULL;
}

void mil_func_rename_value(MilFunc *f, MilValue *v, const char *name) {
    if (!f || !v || !name) return;
    const char *nm = mil_strdup(f->prog, name);
    if (!nm) return;
    v->name = nm;
    reserve_name(f, nm);
}

/* -------------------------------------------------------------------- ops */

MilOp *mil_op_new(MilFunc *f, MilOpKind kind, const char *opname) {
    if (!f) return NULL;
    const MilOpInfo *info = mil_op_info(kind);
    if (!opname) opname = info ? info->name : NULL;
    if (!opname) return NULL;
    MilOp *op = mil_new(&f->prog->arena, MilOp);
    if (!op) return NULL;
    op->kind = info ? kind : MIL_OP_UNKNOWN;
    op->opname = (info && strcmp(opname, info->name) == 0) ? info->name : mil_strdup(f->prog, opname);
    op->func = f;
    return op;
}

static MilArg *new_arg(MilOp *op, const char *name, int n) {
    MilArena *a = &op->func->prog->arena;
    if (!name || !MIL_GROW(a, op->args, op->nargs, op->capargs)) return NULL;
    MilArg *arg = &op->args[op->nargs];
    memset(arg, 0, sizeof *arg);
    arg->name = mil_arena_strndup(a, name, strlen(name));
    arg->n = n;
    arg->items = mil_arena_alloc(a, (size_t)(n > 0 ? n : 1) * sizeof *arg->items);
    if (!arg->name || !arg->items) return NULL;
    op->nargs++;
    return arg;
}

void mil_op_add_arg(MilOp *op, const char *name, MilValue *v) {
    MilArg *arg = new_arg(op, name, 1);
    if (arg) arg->items[0].value = v;
}

void mil_op_add_arg_const(MilOp *op, const char *name, MilConst *c) {
    MilArg *arg = new_arg(op, name, 1);
    if (arg) arg->items[0].cst = c;
}

void mil_op_add_arg_tuple(MilOp *op, const char *name, int n, const MilBinding *items) {
    if (n < 0) return;
    MilArg *arg = new_arg(op, name, n);
    if (!arg) return;
    arg->variadic = true;
    if (n) memcpy(arg->items, items, (size_t)n * sizeof *items);
}

void mil_op_set_attr(MilOp *op, const char *name, MilConst *c) {
    if (!op || !name) return;
    set_attr(&op->func->prog->arena, &op->attrs, &op->nattrs, &op->capattrs, name, c);
}

MilValue *mil_op_add_result(MilOp *op, const MilType *t, const char *name) {
    MilFunc *f = op->func;
    if (!MIL_GROW(&f->prog->arena, op->results, op->nresults, op->capres)) return NULL;
    MilValue *v = new_value(f, t, name);
    if (!v) return NULL;
    v->def = op;
    v->index = op->nresults;
    op->results[op->nresults++] = v;
    return v;
}

void mil_block_append(MilBlock *b, MilOp *op) {
    op->block = b;
    op->next = NULL;
    op->prev = b->last;
    if (b->last) b->last->next = op;
    else b->first = op;
    b->last = op;
}

void mil_block_insert_before(MilBlock *b, MilOp *before, MilOp *op) {
    if (!before) {
        mil_block_append(b, op);
        return;
    }
    op->block = b;
    op->next = before;
    op->prev = before->prev;
    if (before->prev) before->prev->next = op;
    else b->first = op;
    before->prev = op;
}

void mil_block_remove(MilBlock *b, MilOp *op) {
    if (op->prev) op->prev->next = op->next;
    else if (b->first == op) b->first = op->next;
    if (op->next) op->next->prev = op->prev;
    else if (b->last == op) b->last = op->prev;
    op->prev = op->next = NULL;
    op->block = NULL;
}

MilValue *mil_build_const(MilFunc *f, MilConst *c, const char *name) {
    if (!f || !c) return NULL;
    MilOp *op = mil_op_new(f, MIL_OP_CONST, NULL);
    if (!op) return NULL;
    const char *nm = mil_func_unique_name(f, name ? name : "const");
    if (!nm) return NULL;
    mil_op_set_attr(op, "name", mil_const_string(f->prog, nm));
    mil_op_set_attr(op, "val", c);
    MilValue *v = mil_op_add_result(op, c->type, nm);
    if (!v) return NULL;
    mil_block_append(&f->body, op);
    return v;
}

/* ---------------------------------------------------------------- queries */

MilAttr *mil_op_attr(const MilOp *op, const char *name) {
    if (!op || !name) return NULL;
    for (int i = 0; i < op->nattrs; i++)
        if (strcmp(op->attrs[i].name, name) == 0) return &op->attrs[i];
    return NULL;
}

const MilArg *mil_op_arg(const MilOp *op, const char *name) {
    if (!op || !name) return NULL;
    for (int i = 0; i < op->nargs; i++)
        if (strcmp(op->args[i].name, name) == 0) return &op->args[i];
    const MilArgInfo *ai = mil_op_arg_info(op->kind, name);
    if (op->kind != MIL_OP_UNKNOWN && !(ai && (ai->flags & A_ATTR))) return NULL;
    MilAttr *at = mil_op_attr(op, name);
    if (!at) return NULL;
    /* Refresh the view each time: the attribute may have been replaced or
     * the attrs array moved since the last call. */
    at->view_item_ = (MilBinding){ .value = NULL, .cst = at->val };
    at->view_ = (MilArg){ .name = at->name, .variadic = false, .n = 1, .items = &at->view_item_, .loc = at->loc };
    return &at->view_;
}

const MilConst *mil_value_const(const MilValue *v) {
    if (!v || !v->def || v->def->kind != MIL_OP_CONST) return NULL;
    const MilAttr *a = mil_op_attr(v->def, "val");
    return a ? a->val : NULL;
}

const MilConst *mil_op_const_arg(const MilOp *op, const char *name) {
    if (!op || !name) return NULL;
    for (int i = 0; i < op->nargs; i++) {
        const MilArg *a = &op->args[i];
        if (strcmp(a->name, name) != 0) continue;
        if (a->variadic || a->n != 1) return NULL;
        if (a->items[0].cst) return a->items[0].cst;
        return mil_value_const(a->items[0].value);
    }
    const MilAttr *at = mil_op_attr(op, name);
    return at ? at->val : NULL;
}

void mil_func_replace_uses(MilFunc *f, MilValue *from, MilValue *to) {
    if (!f || !from) return;
    for (MilOp *op = f->body.first; op; op = op->next)
        for (int i = 0; i < op->nargs; i++)
            for (int j = 0; j < op->args[i].n; j++)
                if (op->args[i].items[j].value == from) op->args[i].items[j].value = to;
    for (int i = 0; i < f->body.nouts; i++)
        if (f->body.outs[i] == from) f->body.outs[i] = to;
}

void mil_func_fill_uses(MilFunc *f) {
    if (!f) return;
    for (int i = 0; i < f->nparams; i++) f->params[i]->nuses = 0;
    for (MilOp *op = f->body.first; op; op = op->next)
        for (int i = 0; i < op->nresults; i++) op->results[i]->nuses = 0;
    for (MilOp *op = f->body.first; op; op = op->next)
        for (int i = 0; i < op->nargs; i++)
            for (int j = 0; j < op->args[i].n; j++)
                if (op->args[i].items[j].value) op->args[i].items[j].value->nuses++;
    for (int i = 0; i < f->body.nouts; i++)
        if (f->body.outs[i]) f->body.outs[i]->nuses++;
}

const char *mil_op_display_name(const MilOp *op) {
    if (op->opname) return op->opname;
    const MilOpInfo *info = mil_op_info(op->kind);
    return info ? info->name : "?";
}
