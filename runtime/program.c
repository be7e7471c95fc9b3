/* runtime/program.c -- MilRtProgram: a chunked arena, adopted resources, and
 * the builder used by the lowering (backend/lower.c) and the .milb loader.
 *
 * Invariants: values, inputs, outputs and ops are growable arrays owned by
 * the program (realloc'd by the builder, so hold ids, not pointers, while
 * building); everything else (names, op argument arrays, constant data) comes
 * from the arena and lives until mil_rt_program_free.
 */
#include "runtime/runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mil_rt_errf(MilRtErr *e, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ------------------------------------------------------------------ arena */

/* A chunk: a 64-byte header, then cap bytes of 64-aligned memory. */
struct MilRtChunk {
    MilRtChunk *next;
    size_t used, cap;
};
enum { CHUNK_HDR = 64 };
#define CHUNK_MEM(c) ((unsigned char *)(c) + CHUNK_HDR)

struct MilRtResource {
    MilRtResource *next;
    void (*release)(void *);
    void *ctx;
};

enum { CHUNK_MIN = 64 * 1024 };

void *mil_rt_alloc(MilRtProgram *p, size_t size) {
    size = (size + 63) & ~(size_t)63;
    if (size == 0) size = 64;
    MilRtChunk *c = p->chunks;
    if (!c || c->cap - c->used < size) {
        if (size >= CHUNK_MIN / 4) { /* big: its own chunk, behind the current one */
            MilRtChunk *b = aligned_alloc(64, CHUNK_HDR + size);
            if (!b) return NULL;
            b->used = b->cap = size;
            memset(CHUNK_MEM(b), 0, size);
            if (c) { b->next = c->next; c->next = b; }
            else { b->next = NULL; p->chunks = b; }
            return CHUNK_MEM(b);
        }
        size_t cap = CHUNK_MIN;
        c = aligned_alloc(64, CHUNK_HDR + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = p->chunks;
        p->chunks = c;
    }
    void *r = CHUNK_MEM(c) + c->used;
    c->used += size;
    memset(r, 0, size);
    return r;
}

char *mil_rt_strdup(MilRtProgram *p, const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = mil_rt_alloc(p, n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

int mil_rt_program_adopt_fn(MilRtProgram *p, void (*release)(void *), void *ctx) {
    MilRtResource *r = malloc(sizeof *r);
    if (!r) return -1;
    r->release = release;
    r->ctx = ctx;
    r->next = p->resources;
    p->resources = r;
    return 0;
}

int mil_rt_program_adopt(MilRtProgram *p, void *ptr) {
    return mil_rt_program_adopt_fn(p, free, ptr);
}

MilRtProgram *mil_rt_program_new(const char *file) {
    MilRtProgram *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->file = file ? mil_rt_strdup(p, file) : NULL;
    if (file && !p->file) { free(p); return NULL; }
    return p;
}

static void func_free(MilRtFunc *f) {
    free(f->values);
    free(f->inputs);
    free(f->outputs);
    free(f->ops);
    free(f);
}

void mil_rt_program_free(MilRtProgram *p) {
    if (!p) return;
    for (int i = 0; i < p->nfuncs; i++) func_free(p->funcs[i]);
    free(p->funcs);
    for (MilRtResource *r = p->resources, *n; r; r = n) {
        n = r->next;
        r->release(r->ctx);
        free(r);
    }
    for (MilRtChunk *c = p->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(p);
}

/* ---------------------------------------------------------------- builder */

static int grow(void **v, int *cap, int need, size_t esz) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 8;
    while (nc < need) nc *= 2;
    void *nv = realloc(*v, (size_t)nc * esz);
    if (!nv) return -1;
    memset((char *)nv + (size_t)*cap * esz, 0, (size_t)(nc - *cap) * esz);
    *v = nv;
    *cap = nc;
    return 0;
}

MilRtFunc *mil_rt_program_add_func(MilRtProgram *p, const char *name) {
    if (grow((void **)&p->funcs, &p->capfuncs, p->nfuncs + 1, sizeof *p->funcs)) return NULL;
    MilRtFunc *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->name = mil_rt_strdup(p, name ? name : "main");
    f->prog = p;
    if (!f->name) { free(f); return NULL; }
    p->funcs[p->nfuncs++] = f;
    return f;
}

MilRtFunc *mil_rt_program_find_func(const MilRtProgram *p, const char *name) {
    for (int i = 0; i < p->nfuncs; i++)
        if (strcmp(p->funcs[i]->name, name) == 0) return p->funcs[i];
    return NULL;
}

int mil_rt_func_add_value(MilRtFunc *f, const char *name, MilRtValueKind kind, MilDType dt,
                          int rank, const int64_t *dims) {
    if (rank < 0 || rank > MIL_MAX_RANK) return -1;
    if (grow((void **)&f->values, &f->capvalues, f->nvalues + 1, sizeof *f->values)) return -1;
    MilRtValue *v = &f->values[f->nvalues];
    memset(v, 0, sizeof *v);
    v->name = mil_rt_strdup(f->prog, name ? name : "");
    if (!v->name) return -1;
    v->kind = kind;
    v->dtype = dt;
    v->rank = rank;
    for (int i = 0; i < rank; i++) v->dims[i] = dims[i];
    v->def = -1;
    return f->nvalues++;
}

int mil_rt_func_add_const(MilRtFunc *f, const char *name, MilDType dt, int rank,
                          const int64_t *dims, const void *data) {
    int id = mil_rt_func_add_value(f, name, MIL_RT_CONST, dt, rank, dims);
    if (id >= 0) f->values[id].data = data;
    return id;
}

int mil_rt_func_add_input(MilRtFunc *f, int value_id) {
    if (grow((void **)&f->inputs, &f->capinputs, f->ninputs + 1, sizeof *f->inputs)) return -1;
    f->inputs[f->ninputs++] = value_id;
    return 0;
}

int mil_rt_func_add_output(MilRtFunc *f, int value_id) {
    if (grow((void **)&f->outputs, &f->capoutputs, f->noutputs + 1, sizeof *f->outputs)) return -1;
    f->outputs[f->noutputs++] = value_id;
    return 0;
}

int mil_rt_func_add_op(MilRtFunc *f, MilOpKind kind, const char *opname, const char *name,
                       int nslots, const int *slot_start, const int *args, int nout,
                       const int *outs, int line, int col) {
    if (grow((void **)&f->ops, &f->capops, f->nops + 1, sizeof *f->ops)) return -1;
    MilRtProgram *p = f->prog;
    int nargs = slot_start ? slot_start[nslots] : 0;
    int *ss = mil_rt_alloc(p, sizeof(int) * (size_t)(nslots + 1));
    int *aa = mil_rt_alloc(p, sizeof(int) * (size_t)(nargs > 0 ? nargs : 1));
    int *oo = mil_rt_alloc(p, sizeof(int) * (size_t)(nout > 0 ? nout : 1));
    if (!ss || !aa || !oo) return -1;
    if (slot_start) memcpy(ss, slot_start, sizeof(int) * (size_t)(nslots + 1));
    if (nargs > 0) memcpy(aa, args, sizeof(int) * (size_t)nargs);
    if (nout > 0) memcpy(oo, outs, sizeof(int) * (size_t)nout);
    MilRtOp *op = &f->ops[f->nops];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->opname = mil_rt_strdup(p, opname ? opname : "?");
    op->name = name ? mil_rt_strdup(p, name) : NULL;
    op->nslots = nslots;
    op->slot_start = ss;
    op->args = aa;
    op->nout = nout;
    op->outs = oo;
    op->line = line;
    op->col = col;
    for (int i = 0; i < nout; i++)
        if (outs[i] >= 0 && outs[i] < f->nvalues) f->values[outs[i]].def = f->nops;
    return f->nops++;
}

int mil_rt_func_find_value(const MilRtFunc *f, const char *name) {
    for (int i = 0; i < f->nvalues; i++)
        if (strcmp(f->values[i].name, name) == 0) return i;
    return -1;
}

void mil_rt_value_tensor(const MilRtValue *v, MilRtTensor *t) {
    memset(t, 0, sizeof *t);
    t->dtype = v->dtype;
    t->rank = v->rank;
    for (int i = 0; i < v->rank; i++) t->dims[i] = v->dims[i];
    t->data = (void *)v->data;
}

int mil_rt_op_where(const MilRtFunc *f, const MilRtOp *op, char *buf, size_t size) {
    const char *file = f && f->prog && f->prog->file ? f->prog->file : NULL;
    if (file && op && op->line > 0)
        return snprintf(buf, size, "%s:%d:%d: error: ", file, op->line, op->col);
    if (file) return snprintf(buf, size, "%s: error: ", file);
    return snprintf(buf, size, "error: ");
}

/* ------------------------------------------------------------- validation */

static int nslots_of(MilOpKind k) {
    static const int n[MIL_OP_COUNT] = {
        [MIL_OP_UNKNOWN] = -1
#define OP(id, name, wire, nres, flags) , [MIL_OP_##id] = 0
#define ARG(op, name, flags, def) + 1
#include "ir/ops.def"
#undef OP
#undef ARG
    };
    return (k > 0 && k < MIL_OP_COUNT) ? n[k] : -1;
}

int mil_rt_func_validate(const MilRtFunc *f, MilRtErr *e) {
    char *defined = calloc((size_t)f->nvalues + 1, 1);
    if (!defined) return mil_rt_errf(e, "out of memory");
    int rc = 0;
    for (int i = 0; i < f->nvalues && !rc; i++) {
        const MilRtValue *v = &f->values[i];
        if (v->rank < 0 || v->rank > MIL_MAX_RANK)
            rc = mil_rt_errf(e, "value '%s': bad rank %d", v->name, v->rank);
        else if (v->kind == MIL_RT_CONST && !v->data)
            rc = mil_rt_errf(e, "constant '%s' has no data", v->name);
        else if (v->kind == MIL_RT_CONST)
            for (int d = 0; d < v->rank; d++)
                if (v->dims[d] < 0) rc = mil_rt_errf(e, "constant '%s' has an unknown dimension", v->name);
        if (v->kind != MIL_RT_TEMP) defined[i] = 1;
    }
    for (int i = 0; i < f->ninputs && !rc; i++)
        if (f->inputs[i] < 0 || f->inputs[i] >= f->nvalues || f->values[f->inputs[i]].kind != MIL_RT_INPUT)
            rc = mil_rt_errf(e, "function '%s': input %d is not an input value", f->name, i);
    for (int o = 0; o < f->nops && !rc; o++) {
        const MilRtOp *op = &f->ops[o];
        int ns = nslots_of(op->kind);
        if (ns < 0 || op->kind == MIL_OP_CONST)
            rc = mil_rt_errf(e, "op %d ('%s'): bad kind %d", o, op->opname, (int)op->kind);
        else if (ns != op->nslots)
            rc = mil_rt_errf(e, "op %d ('%s'): %d slots, ops.def has %d", o, op->opname, op->nslots, ns);
        for (int s = 0; s < op->nslots && !rc; s++) {
            const int *ids;
            int n = mil_rt_op_slot(op, s, &ids);
            if (n < 0) rc = mil_rt_errf(e, "op %d ('%s'): bad slot table", o, op->opname);
            for (int i = 0; i < n && !rc; i++)
                if (ids[i] < 0 || ids[i] >= f->nvalues || !defined[ids[i]])
                    rc = mil_rt_errf(e, "op %d ('%s'): argument %d of slot %d is not defined before use",
                                     o, op->opname, i, s);
        }
        for (int i = 0; i < op->nout && !rc; i++) {
            int id = op->outs[i];
            if (id < 0 || id >= f->nvalues || f->values[id].kind != MIL_RT_TEMP || defined[id])
                rc = mil_rt_errf(e, "op %d ('%s'): result %d is not a fresh temporary", o, op->opname, i);
            else
                defined[id] = 1;
        }
    }
    for (int i = 0; i < f->noutputs && !rc; i++)
        if (f->outputs[i] < 0 || f->outputs[i] >= f->nvalues || !defined[f->outputs[i]])
            rc = mil_rt_errf(e, "function '%s': output %d is not defined", f->name, i);
    free(defined);
    return rc;
}
