/* backend/milb_read.c -- the disassembler: .milb bytes -> MilProgram.
 *
 * The runtime's parser (mil_rt_milb_parse) validates the file and returns a
 * view with every index range-checked; this file only rebuilds the IR from
 * it: types, constants (weights become BLOBFILE constants with the recorded
 * path and offset), functions, ops with their argument names from ops.def,
 * `name` attributes and result names.  mil_print() of the result is the
 * canonical MIL of the program. */
#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

bool mil_milb_is_path(const char *path) {
    size_t n = path ? strlen(path) : 0, e = strlen(MILB_EXT);
    return n > e && !strcmp(path + n - e, MILB_EXT);
}

static MilConstKind const_kind(int k) {
    switch (k) {
    case MILB_C_BLOB: return MIL_CONST_BLOB;
    case MILB_C_LIST: return MIL_CONST_LIST;
    case MILB_C_TUPLE: return MIL_CONST_TUPLE;
    case MILB_C_DICT: return MIL_CONST_DICT;
    case MILB_C_EMPTY: return MIL_CONST_EMPTY;
    default: return MIL_CONST_TENSOR;
    }
}

MilProgram *mil_milb_disassemble(const void *buf, size_t len, const char *file, MilDiag *d) {
    MilbView v;
    MilRtErr e;
    MilLoc loc = {file, 0, 0};
    if (mil_rt_milb_parse(buf, len, file, &v, &e)) {
        mil_error(d, loc, "%s", e.msg);
        return NULL;
    }
    const char *const *S = v.strings;
    MilProgram *p = mil_program_new(S[v.version_str]);
    const MilType **T = calloc((size_t)v.ntypes + 1, sizeof *T);
    MilConst **C = calloc((size_t)v.nconsts + 1, sizeof *C);
    MilValue **V = NULL;
    bool ok = p && T && C;
    for (int i = 0; ok && i < v.ntypes; i++) {
        const MilbType *t = &v.types[i];
        switch (t->kind) {
        case MILB_TY_TENSOR: T[i] = mil_type_tensor(p, t->dtype, t->rank, t->dims); break;
        case MILB_TY_LIST: T[i] = mil_type_list(p, T[t->elem], t->len); break;
        case MILB_TY_DICT: T[i] = mil_type_dict(p, T[t->elem], T[t->val]); break;
        case MILB_TY_TUPLE: {
            const MilType **ts = calloc((size_t)t->ntypes + 1, sizeof *ts);
            if (!ts) { ok = false; break; }
            for (int k = 0; k < t->ntypes; k++) ts[k] = T[t->types[k]];
            T[i] = mil_type_tuple(p, t->ntypes, ts);
            free(ts);
            break;
        }
        case MILB_TY_STATE: T[i] = mil_type_state(p, T[t->elem]); break;
        }
        ok = ok && T[i];
    }
    for (int i = 0; ok && i < v.nconsts; i++) {
        const MilbConst *c = &v.consts[i];
        const MilType *t = T[c->type];
        switch (c->kind) {
        case MILB_C_TENSOR: C[i] = mil_const_tensor(p, t, c->data, c->count); break;
        case MILB_C_BLOB: {
            const char *wp = S[v.weights[c->weight].path];
            char self[1100];
            if (!strcmp(wp, MILB_WEIGHTS_SELF)) {   /* this program's own weight file, by name */
                if (milb_weights_name(file ? file : "", "@model_path/", self, sizeof self)) {
                    ok = false;
                    break;
                }
                wp = mil_strdup(p, self);
            }
            C[i] = mil_const_blob(p, t, wp, v.weights[c->weight].offset);
            break;
        }
        default: {
            MilConst **items = calloc((size_t)c->nitems + 1, sizeof *items);
            if (!items) { ok = false; break; }
            for (int k = 0; k < c->nitems; k++) items[k] = C[c->items[k]];
            C[i] = mil_const_aggregate(p, const_kind(c->kind), t, c->nitems, items);
            free(items);
            break;
        }
        }
        ok = ok && C[i];
    }
    /* DEBUG: ops get their source locations back (so writing the disassembly
     * again gives the same bytes) */
    const char *dfile = ok && v.debug_file ? mil_strdup(p, v.debug_file) : NULL;
    if (ok) {
        p->trailing_newline = v.prog_flags & MILB_PF_TRAILING_NEWLINE;
        for (int i = 0; i < v.nattrs; i++) mil_program_set_attr(p, S[v.attrs[i].name], C[v.attrs[i].cst]);
    }
    for (int fi = 0; ok && fi < v.nfuncs; fi++) {
        const MilbFunc *fn = &v.funcs[fi];
        MilFunc *f = mil_func_new(p, S[fn->name], fn->opset >= 0 ? S[fn->opset] : NULL);
        free(V);
        V = calloc((size_t)fn->nvalues + 1, sizeof *V);
        if (!f || !V) { ok = false; break; }
        for (int i = 0; i < fn->nattrs; i++) mil_func_set_attr(f, S[fn->attrs[i].name], C[fn->attrs[i].cst]);
        for (int i = 0; ok && i < fn->nparams; i++) {
            V[i] = mil_func_add_param(f, T[fn->param_types[i]], S[fn->param_names[i]]);
            ok = V[i] != NULL;
        }
        for (int oi = 0; ok && oi < fn->nops; oi++) {
            const MilbOp *o = &fn->ops[oi];
            const MilbOpRow *row = milb_op_row(o->kind);
            MilOp *op = mil_op_new(f, o->kind, o->kind == MIL_OP_UNKNOWN ? S[o->opname] : NULL);
            if (!op) { ok = false; break; }
            if (dfile && o->line > 0) op->loc = (MilLoc){dfile, o->line, o->col};
            if (o->opset >= 0) op->opset = mil_strdup(p, S[o->opset]);
            for (int j = 0; ok && j < o->nargs; j++) {
                const MilbArg *a = &o->args[j];
                const char *an = a->slot >= 0 ? row->args[a->slot].name : S[a->name];
                MilBinding *items = calloc((size_t)a->n + 1, sizeof *items);
                if (!items) { ok = false; break; }
                for (int k = 0; k < a->n; k++) {
                    uint32_t b = a->items[k];
                    if (b & 1) items[k].cst = C[b >> 1];
                    else items[k].value = V[b >> 1];
                }
                if (a->variadic) mil_op_add_arg_tuple(op, an, a->n, items);
                else if (items[0].cst) mil_op_add_arg_const(op, an, items[0].cst);
                else mil_op_add_arg(op, an, items[0].value);
                free(items);
            }
            if (o->name >= 0) mil_op_set_attr(op, "name", mil_const_string(p, S[o->name]));
            for (int j = 0; j < o->nattrs; j++) mil_op_set_attr(op, S[o->attrs[j].name], C[o->attrs[j].cst]);
            for (int j = 0; ok && j < o->nresults; j++) {
                char anon[64];
                if (o->anon) milb_anon_name(S, v.nstrings, o->first_result + j, anon, sizeof anon);
                MilValue *r = mil_op_add_result(op, T[o->res_types[j]], o->anon ? anon : S[o->res_names[j]]);
                V[o->first_result + j] = r;
                ok = r != NULL;
            }
            mil_block_append(&f->body, op);
        }
        for (int i = 0; ok && i < fn->nouts; i++) mil_func_add_output(f, V[fn->outs[i]]);
    }
    free(T);
    free(C);
    free(V);
    mil_rt_milb_view_free(&v);
    if (!ok) {
        mil_error(d, loc, "out of memory while disassembling");
        mil_program_free(p);
        return NULL;
    }
    return p;
}
