/* backend/lower.c -- IR -> runtime program (see backend/backend.h for the
 * rules).  One pass over each function's block in order: values are mapped
 * by MilValue.id to runtime value ids; constants are copied out of the IR's
 * arena (or mapped from weight files), so the runtime program outlives the
 * MilProgram.  Errors are reported and the walk continues, so one run lists
 * every unsupported op. */
#include "backend/backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct DefaultEnt {
    const char *lit;   /* ops.def spelling */
    int id;
} DefaultEnt;

typedef struct Lower {
    const MilLowerOptions *opt;
    MilDiag *d;
    MilRtProgram *rp;
    MilRtBlobCache *blobs;
    /* per function */
    MilRtFunc *rf;
    int *map;          /* MilValue.id -> runtime id (-1 = none) */
    int nmap;
    DefaultEnt *defs;
    int ndefs, capdefs;
    int *args;         /* scratch for one op's arguments */
    int capargs;
    int errors0;       /* d->nerrors before lowering */
} Lower;

static const char *val_name(const MilValue *v) { return v->name ? v->name : "?"; }

static const char *op_label(const MilOp *op) {
    const MilConst *n = NULL;
    for (int i = 0; i < op->nattrs; i++)
        if (strcmp(op->attrs[i].name, "name") == 0) n = op->attrs[i].val;
    const char *s = n ? mil_const_get_str(n) : NULL;
    if (s) return s;
    return op->nresults > 0 ? val_name(op->results[0]) : NULL;
}

/* Tensor type -> dtype/rank/dims; false (and an error) for other types. */
static bool tensor_type(Lower *L, MilLoc loc, const MilType *t, const char *what, MilDType *dt, int *rank,
                        int64_t *dims) {
    if (!t || t->kind != MIL_TY_TENSOR) {
        mil_error(L->d, loc, "%s: only tensor values can be lowered to the runtime", what);
        return false;
    }
    if (t->rank > MIL_MAX_RANK) {
        mil_error(L->d, loc, "%s: rank %d is above the runtime's limit of %d", what, t->rank, MIL_MAX_RANK);
        return false;
    }
    *dt = t->dtype;
    *rank = t->rank;
    for (int i = 0; i < t->rank; i++) dims[i] = t->dims[i];
    return true;
}

/* Element count of non-negative dims; -1 when it does not fit in int64_t. */
static int64_t numel_of(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] != 0 && n > INT64_MAX / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}

/* A MilConst -> CONST runtime value; -1 after reporting an error. */
static int lower_const(Lower *L, const MilConst *c, const char *name, MilLoc loc) {
    MilDType dt;
    int rank;
    int64_t dims[MIL_MAX_RANK];
    if (c->kind != MIL_CONST_TENSOR && c->kind != MIL_CONST_BLOB) {
        mil_error(L->d, loc, "constant '%s': list, tuple, dict and empty constants cannot be lowered", name);
        return -1;
    }
    if (!tensor_type(L, loc, c->type, name, &dt, &rank, dims)) return -1;
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0) {
            mil_error(L->d, loc, "constant '%s' has an unknown dimension", name);
            return -1;
        }
    int64_t n = numel_of(rank, dims);
    size_t es = mil_rt_dtype_size(dt);
    if (n < 0 || (es && (uint64_t)n > SIZE_MAX / es)) {
        mil_error(L->d, loc, "constant '%s': tensor too large", name);
        return -1;
    }
    const void *data = NULL;
    if (c->kind == MIL_CONST_TENSOR) {
        if (c->count != n) {
            mil_error(L->d, loc, "constant '%s' holds %lld elements but its type needs %lld", name,
                      (long long)c->count, (long long)n);
            return -1;
        }
        void *buf = mil_rt_alloc(L->rp, (size_t)n * es);
        if (!buf) { mil_error(L->d, loc, "out of memory"); return -1; }
        if (dt == MIL_DT_STRING) {
            const char *const *src = c->data;
            const char **dst = buf;
            for (int64_t i = 0; i < n; i++) dst[i] = mil_rt_strdup(L->rp, src[i] ? src[i] : "");
        } else if (n) {
            memcpy(buf, c->data, (size_t)n * es);
        }
        data = buf;
    } else {
        MilRtErr e;
        MilRtBlobFile *bf = mil_rt_blob_cache_get(L->blobs, c->blob_path, &e);
        void *owned = NULL;
        if (!bf || mil_rt_blob_read(bf, c->blob_offset, dt, n, &data, &owned, &e)) {
            mil_error(L->d, loc, "%s", e.msg);
            return -1;
        }
        if (owned && mil_rt_program_adopt(L->rp, owned)) {
            free(owned);
            mil_error(L->d, loc, "out of memory");
            return -1;
        }
    }
    int id = mil_rt_func_add_const(L->rf, name, dt, rank, dims, data);
    if (id < 0) mil_error(L->d, loc, "out of memory");
    return id;
}

/* The CONST value of an ops.def default literal (deduplicated per function). */
static int lower_default(Lower *L, const char *lit, MilLoc loc) {
    for (int i = 0; i < L->ndefs; i++)
        if (strcmp(L->defs[i].lit, lit) == 0) return L->defs[i].id;
    MilRtProgram *rp = L->rp;
    void *buf;
    MilDType dt;
    size_t n = strlen(lit);
    char *end;
    if (lit[0] == '"') {
        dt = MIL_DT_STRING;
        char *s = mil_rt_alloc(rp, n);
        if (!s) return -1;
        memcpy(s, lit + 1, n >= 2 ? n - 2 : 0);
        const char **cell = mil_rt_alloc(rp, sizeof *cell);
        if (!cell) return -1;
        *cell = s;
        buf = cell;
    } else if (strcmp(lit, "true") == 0 || strcmp(lit, "false") == 0) {
        dt = MIL_DT_BOOL;
        uint8_t *b = mil_rt_alloc(rp, 1);
        if (!b) return -1;
        *b = lit[0] == 't';
        buf = b;
    } else {
        long long iv = strtoll(lit, &end, 10);
        if (*end == 0 && !strchr(lit, 'x')) {
            dt = MIL_DT_INT32;
            int32_t *p = mil_rt_alloc(rp, 4);
            if (!p) return -1;
            *p = (int32_t)iv;
            buf = p;
        } else {
            double v = strtod(lit, &end);
            if (*end) {
                mil_error(L->d, loc, "internal: cannot read the default '%s'", lit);
                return -1;
            }
            dt = MIL_DT_FP32;
            float *p = mil_rt_alloc(rp, 4);
            if (!p) return -1;
            *p = (float)v;
            buf = p;
        }
    }
    char name[96];
    snprintf(name, sizeof name, "default(%s)", lit);
    int id = mil_rt_func_add_const(L->rf, name, dt, 0, NULL, buf);
    if (id < 0) return -1;
    if (L->ndefs == L->capdefs) {
        int nc = L->capdefs ? L->capdefs * 2 : 16;
        DefaultEnt *nd = realloc(L->defs, sizeof *nd * (size_t)nc);
        if (!nd) return -1;
        L->defs = nd;
        L->capdefs = nc;
    }
    L->defs[L->ndefs].lit = lit;
    L->defs[L->ndefs].id = id;
    L->ndefs++;
    return id;
}

static int push_arg(Lower *L, int *n, int id) {
    if (*n == L->capargs) {
        int nc = L->capargs ? L->capargs * 2 : 32;
        int *na = realloc(L->args, sizeof *na * (size_t)nc);
        if (!na) return -1;
        L->args = na;
        L->capargs = nc;
    }
    L->args[(*n)++] = id;
    return 0;
}

static int map_value(Lower *L, const MilValue *v) {
    return (v && v->id >= 0 && v->id < L->nmap) ? L->map[v->id] : -1;
}

/* Evaluates a constexpr op now; its results become CONST values. */
static void lower_constexpr(Lower *L, const MilOp *op, const char *label, int nslots, const int *slot_start,
                            const int *outs_decl) {
    MilRtFunc *rf = L->rf;
    MilRtOp rop = {
        .kind = op->kind, .opname = op->opname, .name = label, .nslots = nslots,
        .slot_start = slot_start, .args = L->args, .nout = op->nresults, .outs = outs_decl,
        .line = op->loc.line, .col = op->loc.col,
    };
    MilRtTensor outs[8];
    if (op->nresults > 8) {
        mil_error(L->d, op->loc, "op '%s': too many results", op->opname);
        return;
    }
    MilRtErr e;
    if (mil_rt_eval_const_op(rf, &rop, outs, &e)) {
        /* the message already carries file:line:col when the program has a file */
        const char *msg = e.msg, *p = strstr(msg, "error: ");
        mil_error(L->d, op->loc, "%s", p ? p + 7 : msg);
        return;
    }
    for (int i = 0; i < op->nresults; i++) {
        MilRtValue *v = &rf->values[outs_decl[i]];
        bool ok = v->dtype == outs[i].dtype && v->rank == outs[i].rank;
        for (int k = 0; ok && k < v->rank; k++)
            if (v->dims[k] >= 0 && v->dims[k] != outs[i].dims[k]) ok = false;
        if (!ok) {
            char a[200], b[200];
            mil_error(L->d, op->loc, "op '%s': result '%s' is declared %s but evaluates to %s", op->opname,
                      v->name, mil_rt_format_type(v->dtype, v->rank, v->dims, a, sizeof a),
                      mil_rt_format_type(outs[i].dtype, outs[i].rank, outs[i].dims, b, sizeof b));
        }
        if (mil_rt_program_adopt(L->rp, outs[i].data)) {
            mil_error(L->d, op->loc, "out of memory");
            for (int k = i; k < op->nresults; k++) mil_rt_tensor_free(&outs[k]);
            return;
        }
        v->kind = MIL_RT_CONST;
        v->data = outs[i].data;
        v->rank = outs[i].rank;
        for (int k = 0; k < outs[i].rank; k++) v->dims[k] = outs[i].dims[k];
    }
}

static void lower_op(Lower *L, const MilOp *op) {
    MilRtFunc *rf = L->rf;
    const char *label = op_label(op);
    if (op->kind == MIL_OP_CONST) {
        const MilConst *c = NULL;
        for (int i = 0; i < op->nattrs; i++)
            if (strcmp(op->attrs[i].name, "val") == 0) c = op->attrs[i].val;
        if (!c || op->nresults != 1) {
            mil_error(L->d, op->loc, "const op without a 'val' attribute");
            return;
        }
        int id = lower_const(L, c, val_name(op->results[0]), op->loc);
        if (id >= 0) L->map[op->results[0]->id] = id;
        return;
    }
    const MilOpInfo *info = mil_op_info(op->kind);
    if (!info) {
        mil_error(L->d, op->loc, "op '%s' is not supported by the %s device", op->opname,
                  L->opt->device ? mil_rt_device_name(L->opt->device) : "runtime");
        return;
    }
    /* supports_op only looks at the kind here (the shapes come at prepare) */
    if (L->opt->device) {
        MilRtOp probe = {.kind = op->kind, .opname = op->opname};
        if (!mil_rt_device_supports_op(L->opt->device, rf, &probe)) {
            mil_error(L->d, op->loc, "op '%s' is not supported by the %s device", op->opname,
                      mil_rt_device_name(L->opt->device));
            return;
        }
    }
    for (int i = 0; i < op->nargs; i++)
        if (!mil_op_arg_info(op->kind, op->args[i].name)) {
            mil_error(L->d, op->args[i].loc, "op '%s' has no argument '%s'", op->opname, op->args[i].name);
            return;
        }
    int nslots = info->nargs, n = 0;
    int slot_start[64];
    if (nslots >= 64) {
        mil_error(L->d, op->loc, "op '%s': too many arguments", op->opname);
        return;
    }
    for (int s = 0; s < nslots; s++) {
        slot_start[s] = n;
        const MilArgInfo *ai = &info->args[s];
        const MilArg *a = mil_op_arg(op, ai->name);
        if (!a) {
            if (ai->def && strcmp(ai->def, "*") != 0 && !L->opt->no_defaults) {
                int id = lower_default(L, ai->def, op->loc);
                if (id < 0 || push_arg(L, &n, id)) { mil_error(L->d, op->loc, "out of memory"); return; }
            } else if (ai->flags & A_REQ) {
                mil_error(L->d, op->loc, "op '%s': missing required argument '%s'", op->opname, ai->name);
                return;
            }
            continue;
        }
        for (int j = 0; j < a->n; j++) {
            const MilBinding *b = &a->items[j];
            int id;
            if (b->value) {
                id = map_value(L, b->value);
                if (id < 0) {
                    if (L->d->nerrors == L->errors0)
                        mil_error(L->d, a->loc, "op '%s': argument '%s' uses '%s', which is not defined",
                                  op->opname, ai->name, val_name(b->value));
                    return;  /* an earlier error left it undefined */
                }
            } else {
                char name[256];
                snprintf(name, sizeof name, "%s.%s", label ? label : op->opname, ai->name);
                id = lower_const(L, b->cst, name, a->loc);
                if (id < 0) return;
            }
            if (push_arg(L, &n, id)) { mil_error(L->d, op->loc, "out of memory"); return; }
        }
    }
    slot_start[nslots] = n;
    int outs[64];
    if (op->nresults > 64) {
        mil_error(L->d, op->loc, "op '%s': too many results", op->opname);
        return;
    }
    bool cx = info->flags & OPF_CONSTEXPR;
    for (int i = 0; i < op->nresults; i++) {
        const MilValue *v = op->results[i];
        MilDType dt;
        int rank;
        int64_t dims[MIL_MAX_RANK];
        if (!tensor_type(L, op->loc, v->type, val_name(v), &dt, &rank, dims)) return;
        outs[i] = mil_rt_func_add_value(rf, val_name(v), MIL_RT_TEMP, dt, rank, dims);
        if (outs[i] < 0) { mil_error(L->d, op->loc, "out of memory"); return; }
        L->map[v->id] = outs[i];
    }
    if (cx) {
        lower_constexpr(L, op, label, nslots, slot_start, outs);
        return;
    }
    if (mil_rt_func_add_op(rf, op->kind, op->opname, label, nslots, slot_start, L->args, op->nresults, outs,
                           op->loc.line, op->loc.col) < 0)
        mil_error(L->d, op->loc, "out of memory");
}

static void lower_func(Lower *L, const MilFunc *f) {
    MilRtFunc *rf = mil_rt_program_add_func(L->rp, f->name);
    if (!rf) { mil_error(L->d, f->loc, "out of memory"); return; }
    L->rf = rf;
    L->ndefs = 0;
    L->nmap = f->nvalues;
    free(L->map);
    L->map = malloc(sizeof *L->map * (size_t)(f->nvalues + 1));
    if (!L->map) { mil_error(L->d, f->loc, "out of memory"); return; }
    for (int i = 0; i < f->nvalues; i++) L->map[i] = -1;
    for (int i = 0; i < f->nparams; i++) {
        const MilValue *v = f->params[i];
        MilDType dt;
        int rank;
        int64_t dims[MIL_MAX_RANK];
        if (v->type && v->type->kind == MIL_TY_STATE) {
            mil_error(L->d, f->loc, "function '%s': state input '%s' is not supported by the runtime", f->name,
                      val_name(v));
            continue;
        }
        if (!tensor_type(L, f->loc, v->type, val_name(v), &dt, &rank, dims)) continue;
        int id = mil_rt_func_add_value(rf, val_name(v), MIL_RT_INPUT, dt, rank, dims);
        if (id < 0 || mil_rt_func_add_input(rf, id)) { mil_error(L->d, f->loc, "out of memory"); return; }
        if (v->id >= 0 && v->id < L->nmap) L->map[v->id] = id;
    }
    for (const MilOp *op = f->body.first; op; op = op->next) lower_op(L, op);
    for (int i = 0; i < f->body.nouts; i++) {
        int id = map_value(L, f->body.outs[i]);
        if (id < 0) {
            if (L->d->nerrors == L->errors0)
                mil_error(L->d, f->body.outs_loc, "output '%s' is not defined", val_name(f->body.outs[i]));
            continue;
        }
        if (mil_rt_func_add_output(rf, id)) mil_error(L->d, f->body.outs_loc, "out of memory");
    }
}

MilRtProgram *mil_lower(const MilProgram *p, const MilLowerOptions *opt, MilDiag *d) {
    MilLowerOptions none = {0};
    if (!opt) opt = &none;
    const char *file = opt->file;
    for (int i = 0; !file && i < p->nfuncs; i++) {
        if (p->funcs[i]->loc.file) file = p->funcs[i]->loc.file;
        for (const MilOp *op = p->funcs[i]->body.first; !file && op; op = op->next) file = op->loc.file;
    }
    Lower L = {.opt = opt, .d = d, .errors0 = d->nerrors};
    int errors0 = d->nerrors;
    L.rp = mil_rt_program_new(file);
    L.blobs = mil_rt_blob_cache_new(opt->model_dir, opt->weights_dir);
    if (!L.rp || !L.blobs) {
        mil_error(d, (MilLoc){0}, "out of memory");
    } else {
        bool found = opt->function == NULL;
        for (int i = 0; i < p->nfuncs; i++) {
            if (opt->function && strcmp(opt->function, p->funcs[i]->name) != 0) continue;
            found = true;
            lower_func(&L, p->funcs[i]);
        }
        if (!found) mil_error(d, (MilLoc){0}, "no function named '%s'", opt->function);
        if (mil_rt_blob_cache_give(L.blobs, L.rp)) mil_error(d, (MilLoc){0}, "out of memory");
    }
    mil_rt_blob_cache_free(L.blobs);
    free(L.map);
    free(L.defs);
    free(L.args);
    if (d->nerrors > errors0) {
        mil_rt_program_free(L.rp);
        return NULL;
    }
    return L.rp;
}
