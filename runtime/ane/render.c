/* runtime/ane/render.c -- MIL text and weight blob for Apple's in-memory
 * compiler, rendered from a runtime program (MilRtFunc: op chain + tensor
 * descriptors), so an app that ships only .milb files needs no compiler
 * code.  The text follows the in-memory route's rules (docs/ane-notes.md
 * §3.3, §7.2, §13.1):
 *   - one function `main`; parameters and the `-> (...)` list in
 *     alphabetical order of their names, so that declaration order and the
 *     route's alphabetical binding agree whichever of the two the hardware
 *     uses (§16);
 *   - every constant is a named const op (so matmul's transpose flags are
 *     named consts, both always given); scalars and tensors of at most 64
 *     bytes inline, larger fp16/fp32/int8/uint8 tensors in one MILBlob v2
 *     file referenced as "@model_path/weights/weight.bin";
 *   - conv's bias becomes a separate add (the route rejects conv(bias=));
 *   - arguments bound to defaults the lowering materialised ("default(...)"
 *     values) are left out, as Apple's compiler defaults them itself;
 *   - every op carries [name = string("...")]; names that are not MIL
 *     identifiers (the lowering's "op.arg" constants) are rewritten;
 *   - spelling program(1.0)/ios16 (the compatible one, mil-format.md §6),
 *     1.3/ios18 when the program uses an iOS18 op (SDPA).
 * mil_ane_check lists what is refused instead. */
#include "runtime/ane/ane_int.h"

#include "ir/ane_rules.h"
#include "ir/fp16.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INLINE_MAX 64

/* ------------------------------------------------------------ op tables */

typedef struct ArgRow {
    MilOpKind op;
    const char *name;
    int flags;
} ArgRow;

static const ArgRow arg_rows[] = {
#define OP(id, name, wire, nres, flags)
#define ARG(op, name, flags, def) {MIL_OP_##op, #name, flags},
#include "ir/ops.def"
#undef OP
#undef ARG
};

static const int op_flags[MIL_OP_COUNT] = {
#define OP(id, name, wire, nres, flags) [MIL_OP_##id] = flags,
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
};

/* The ARG row of slot s of op kind k (rows of one op are contiguous). */
static const ArgRow *arg_row(MilOpKind k, int s) {
    size_t n = sizeof arg_rows / sizeof arg_rows[0];
    for (size_t i = 0; i < n; i++)
        if (arg_rows[i].op == k) return i + (size_t)s < n && arg_rows[i + s].op == k ? &arg_rows[i + s] : NULL;
    return NULL;
}

/* ---------------------------------------------------------------- check */

static int op_err(const MilRtFunc *f, const MilRtOp *op, MilRtErr *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int op_err(const MilRtFunc *f, const MilRtOp *op, MilRtErr *e, const char *fmt, ...) {
    char where[600], msg[800];
    mil_rt_op_where(f, op, where, sizeof where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mil_rt_errf(e, "%sop '%s' (ANE device): %s", where, op->opname, msg);
}

static bool concrete(const MilRtValue *v) {
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i] < 0) return false;
    return true;
}

static bool slot_const(const MilRtFunc *f, const MilRtOp *op, int s) {
    const int *ids;
    int n = mil_rt_op_slot(op, s, &ids);
    for (int i = 0; i < n; i++)
        if (f->values[ids[i]].kind != MIL_RT_CONST) return false;
    return true;
}

static bool slot_bound(const MilRtOp *op, int s) {
    const int *ids;
    return mil_rt_op_slot(op, s, &ids) > 0;
}

static int check_io(const MilRtValue *v, const char *kind, MilRtErr *e) {
    char ty[256];
    if (v->dtype != MIL_DT_FP16 && v->dtype != MIL_DT_FP32)
        return mil_rt_errf(e, "ANE device: %s '%s' is %s; ANE surfaces hold fp16 (or fp32) tensors", kind, v->name,
                           mil_rt_format_type(v->dtype, v->rank, v->dims, ty, sizeof ty));
    return 0;
}

int mil_ane_check(const MilRtFunc *f, MilRtErr *e) {
    for (int i = 0; i < f->nvalues; i++) {
        const MilRtValue *v = &f->values[i];
        char ty[256];
        if (v->kind == MIL_RT_CONST) continue;
        if (!concrete(v))
            return mil_rt_errf(e, "ANE device: '%s' has type %s; the ANE runs one program per concrete shape (compile with "
                                  "concrete shapes, e.g. milc --target=ane)", v->name,
                               mil_rt_format_type(v->dtype, v->rank, v->dims, ty, sizeof ty));
        if (v->rank > 5)
            return mil_rt_errf(e, "ANE device: '%s' has rank %d; the ANE supports at most 5", v->name, v->rank);
    }
    for (int i = 0; i < f->ninputs; i++)
        if (check_io(&f->values[f->inputs[i]], "input", e)) return -1;
    for (int i = 0; i < f->noutputs; i++) {
        const MilRtValue *v = &f->values[f->outputs[i]];
        if (check_io(v, "output", e)) return -1;
        if (v->kind != MIL_RT_TEMP)
            return mil_rt_errf(e, "ANE device: output '%s' is not computed by an op; the in-memory route needs every output "
                                  "to be a live op result", v->name);
        for (int j = 0; j < i; j++)
            if (f->outputs[j] == f->outputs[i])
                return mil_rt_errf(e, "ANE device: output '%s' is returned twice", v->name);
    }
    for (int i = 0; i < f->nops; i++) {
        const MilRtOp *op = &f->ops[i];
        if (op_flags[op->kind] & OPF_EXT)
            return op_err(f, op, e, "milc extension op; compile for an ANE target (milc --target=ane) so that it "
                                    "is expanded into standard MIL");
        if (mil_ane_no_path(op->kind)) return op_err(f, op, e, "has no ANE path (ane-notes §7.1)");
        if (op->kind == MIL_OP_GELU)
            return op_err(f, op, e, "rejected on the in-memory route (decompose to the tanh form)");
        if (op->kind == MIL_OP_SCALED_DOT_PRODUCT_ATTENTION && slot_bound(op, MIL_A_SCALED_DOT_PRODUCT_ATTENTION_attn_mask))
            return op_err(f, op, e, "attn_mask is ignored by the ANE; compile with milc --target=ane, which "
                                    "decomposes masked attention");
        if (op->kind == MIL_OP_CONV && !slot_const(f, op, MIL_A_CONV_bias))
            return op_err(f, op, e, "a computed bias cannot be split off for the ANE (conv(bias=) is rejected)");
        if (op->kind == MIL_OP_MATMUL &&
            (!slot_const(f, op, MIL_A_MATMUL_transpose_x) || !slot_const(f, op, MIL_A_MATMUL_transpose_y)))
            return op_err(f, op, e, "transpose flags must be constants");
        if (op->kind == MIL_OP_CONCAT && !slot_const(f, op, MIL_A_CONCAT_axis))
            return op_err(f, op, e, "axis must be a constant");
        if (op->nout > 0 && f->values[op->outs[0]].kind != MIL_RT_TEMP)
            return op_err(f, op, e, "internal: result is not a temporary");
    }
    return 0;
}

/* --------------------------------------------------------------- buffer */

typedef struct Buf {
    char *s;
    size_t len, cap;
    bool oom;
} Buf;

static void put(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = true; return; }
        if ((size_t)n < room && b->s) { b->len += (size_t)n; return; }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = true; return; }
        b->s = s;
        b->cap = cap;
    }
}

/* --------------------------------------------------------------- render */

typedef struct Blob {
    const void *data;
    MilDType dt;
    int64_t count;
    uint64_t offset;
} Blob;

typedef struct R {
    const MilRtFunc *f;
    bool v13;                    /* program(1.3) spelling */
    char **names;                /* rendered name per value id */
    char **extra;                /* names invented for split conv biases */
    int nextra;
    Buf b;
    MilRtBlobWriter *w;
    char *blob_path;
    Blob *blobs;
    int nblobs;
    MilRtErr *e;
    int rc;
} R;

static bool ident_ok(const char *s) {
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return false;
    return true;
}

static bool name_taken(R *r, const char *s, int upto) {
    for (int i = 0; i < r->f->nvalues; i++)
        if (r->names[i] && (i < upto || ident_ok(r->f->values[i].name)) && !strcmp(r->names[i], s)) return true;
    for (int i = 0; i < r->f->nvalues; i++)
        if (ident_ok(r->f->values[i].name) && !strcmp(r->f->values[i].name, s)) return true;
    for (int i = 0; i < r->nextra; i++)
        if (!strcmp(r->extra[i], s)) return true;
    return false;
}

/* A MIL identifier from base (non-identifier characters become '_'),
 * unique among the rendered names; malloc'd. */
static char *fresh_name(R *r, const char *base, int upto) {
    size_t n = strlen(base);
    char *s = malloc(n + 24);
    if (!s) return NULL;
    size_t k = 0;
    if (!(isalpha((unsigned char)base[0]) || base[0] == '_')) s[k++] = 'v';
    for (size_t i = 0; i < n; i++) s[k++] = isalnum((unsigned char)base[i]) ? base[i] : '_';
    s[k] = 0;
    for (int suffix = 1; name_taken(r, s, upto); suffix++) snprintf(s + k, 24, "_%d", suffix);
    return s;
}

static void put_dims(R *r, int rank, const int64_t *dims) {
    put(&r->b, "[");
    for (int i = 0; i < rank; i++) put(&r->b, "%s%lld", i ? ", " : "", (long long)dims[i]);
    put(&r->b, "]");
}

static void put_type(R *r, MilDType dt, int rank, const int64_t *dims) {
    if (rank == 0 && r->v13) {
        put(&r->b, "%s", mil_rt_dtype_name(dt));
        return;
    }
    put(&r->b, "tensor<%s, ", mil_rt_dtype_name(dt));
    put_dims(r, rank, dims);
    put(&r->b, ">");
}

static void put_string(R *r, const char *s) {
    put(&r->b, r->v13 ? "string(\"" : "tensor<string, []>(\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') put(&r->b, "\\%c", *p);
        else if ((unsigned char)*p < 0x20) put(&r->b, "\\x%02x", (unsigned char)*p);
        else put(&r->b, "%c", *p);
    }
    put(&r->b, "\")");
}

static void put_scalar_lit(R *r, const char *ty, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put_scalar_lit(R *r, const char *ty, const char *fmt, ...) {
    char v[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    if (r->v13) put(&r->b, "%s(%s)", ty, v);
    else put(&r->b, "tensor<%s, []>(%s)", ty, v);
}

static void put_elem(R *r, const MilRtTensor *t, int64_t i) {
    if (t->dtype == MIL_DT_BOOL) put(&r->b, "%s", ((const uint8_t *)t->data)[i] ? "true" : "false");
    else if (mil_rt_dtype_is_float(t->dtype)) put(&r->b, "%a", mil_rt_get_f64(t, i));
    else put(&r->b, "%lld", (long long)mil_rt_get_i64(t, i));
}

/* Nested brackets for dims[d..]; *i is the running element index. */
static void put_nested(R *r, const MilRtTensor *t, int d, int64_t *i) {
    put(&r->b, "[");
    for (int64_t k = 0; k < t->dims[d]; k++) {
        if (k) put(&r->b, ", ");
        if (d + 1 < t->rank) put_nested(r, t, d + 1, i);
        else put_elem(r, t, (*i)++);
    }
    put(&r->b, "]");
}

static bool blob_dtype(MilDType dt) {
    return dt == MIL_DT_FP16 || dt == MIL_DT_FP32 || dt == MIL_DT_INT8 || dt == MIL_DT_UINT8;
}

/* The metadata offset of t's data in the weight blob (appended once). */
static int blob_offset(R *r, const MilRtTensor *t, uint64_t *off) {
    int64_t n = mil_rt_numel(t);
    for (int i = 0; i < r->nblobs; i++)
        if (r->blobs[i].data == t->data && r->blobs[i].dt == t->dtype && r->blobs[i].count == n) {
            *off = r->blobs[i].offset;
            return 0;
        }
    if (!r->w) {
        r->w = mil_rt_blob_writer_open(r->blob_path, r->e);
        if (!r->w) return -1;
    }
    Blob *nb = realloc(r->blobs, (size_t)(r->nblobs + 1) * sizeof *nb);
    if (!nb) return mil_rt_errf(r->e, "out of memory");
    r->blobs = nb;
    if (mil_rt_blob_writer_append(r->w, t->dtype, t->data, n, off, r->e)) return -1;
    r->blobs[r->nblobs++] = (Blob){t->data, t->dtype, n, *off};
    return 0;
}

/* TYPE name = const()[name = string("name"), val = LITERAL]; with the data
 * of t shown with dims (rank, dims). */
static void put_const(R *r, const char *name, const MilRtTensor *t) {
    put(&r->b, "            ");
    put_type(r, t->dtype, t->rank, t->dims);
    put(&r->b, " %s = const()[name = ", name);
    put_string(r, name);
    put(&r->b, ", val = ");
    const char *ty = mil_rt_dtype_name(t->dtype);
    if (t->dtype == MIL_DT_STRING) {
        put_string(r, mil_rt_get_str(t) ? mil_rt_get_str(t) : "");
    } else if (t->rank == 0) {
        char v[64];
        if (t->dtype == MIL_DT_BOOL) snprintf(v, sizeof v, "%s", *(const uint8_t *)t->data ? "true" : "false");
        else if (mil_rt_dtype_is_float(t->dtype)) snprintf(v, sizeof v, "%a", mil_rt_get_f64(t, 0));
        else snprintf(v, sizeof v, "%lld", (long long)mil_rt_get_i64(t, 0));
        put_scalar_lit(r, ty, "%s", v);
    } else if (blob_dtype(t->dtype) && mil_rt_nbytes(t) > INLINE_MAX) {
        uint64_t off = 0;
        if (blob_offset(r, t, &off)) {
            r->rc = -1;
            return;
        }
        put_type(r, t->dtype, t->rank, t->dims);
        put(&r->b, "(BLOBFILE(path = ");
        put_string(r, ANE_WEIGHT_PATH);
        put(&r->b, ", offset = ");
        put_scalar_lit(r, "uint64", "%llu", (unsigned long long)off);
        put(&r->b, "))");
    } else {
        int64_t i = 0;
        put_type(r, t->dtype, t->rank, t->dims);
        put(&r->b, "(");
        put_nested(r, t, 0, &i);
        put(&r->b, ")");
    }
    put(&r->b, "];\n");
}

static bool is_default(const MilRtValue *v) {
    return v->kind == MIL_RT_CONST && !strncmp(v->name, "default(", 8);
}

/* Is argument slot s of op rendered?  Materialised defaults are left out,
 * except matmul's transpose flags (the route wants them named, §7.2) and
 * conv's bias (split off). */
static bool render_slot(const MilRtFunc *f, const MilRtOp *op, int s) {
    const int *ids;
    int n = mil_rt_op_slot(op, s, &ids);
    if (n == 0) return false;
    if (op->kind == MIL_OP_CONV && s == MIL_A_CONV_bias) return false;
    if (op->kind == MIL_OP_MATMUL) return true;
    return !(n == 1 && is_default(&f->values[ids[0]]));
}

static int cmp_names(const MilRtFunc *f, const int *ids, int a, int b) {
    return strcmp(f->values[ids[a]].name, f->values[ids[b]].name);
}

/* Indices 0..n-1 into ids sorted by value name (insertion sort: I/O lists are short). */
static int *sorted_order(const MilRtFunc *f, const int *ids, int n) {
    int *o = malloc(((size_t)n + 1) * sizeof *o);
    if (!o) return NULL;
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j > 0 && cmp_names(f, ids, o[j - 1], i) > 0) {
            o[j] = o[j - 1];
            j--;
        }
        o[j] = i;
    }
    return o;
}

static void put_op(R *r, const MilRtOp *op) {
    const MilRtFunc *f = r->f;
    const char *opname = op->opname;
    const char *out0 = op->nout ? r->names[op->outs[0]] : "op";
    char *nobias = NULL, *bias = NULL;
    const int *bids = NULL;
    bool split = op->kind == MIL_OP_CONV && mil_rt_op_slot(op, MIL_A_CONV_bias, &bids) == 1;
    if (split) {
        char base[300];
        snprintf(base, sizeof base, "%s_nobias", out0);
        nobias = fresh_name(r, base, f->nvalues);
        char **ex = nobias ? realloc(r->extra, (size_t)(r->nextra + 2) * sizeof *ex) : NULL;
        if (!ex) { free(nobias); r->b.oom = true; return; }
        r->extra = ex;
        r->extra[r->nextra++] = nobias;
        snprintf(base, sizeof base, "%s_bias", out0);
        bias = fresh_name(r, base, f->nvalues);
        if (!bias) { r->b.oom = true; return; }
        r->extra[r->nextra++] = bias;
        /* the bias as [1, C, 1, ...] (rank of the output) */
        const MilRtValue *ov = &f->values[op->outs[0]];
        MilRtTensor bt;
        mil_rt_value_tensor(&f->values[bids[0]], &bt);
        bt.rank = ov->rank;
        for (int i = 0; i < ov->rank; i++) bt.dims[i] = i == 1 ? ov->dims[1] : 1;
        put_const(r, bias, &bt);
    }
    put(&r->b, "            ");
    for (int i = 0; i < op->nout; i++) {
        const MilRtValue *v = &f->values[op->outs[i]];
        if (i) put(&r->b, ", ");
        put_type(r, v->dtype, v->rank, v->dims);
        put(&r->b, " %s", split ? nobias : r->names[op->outs[i]]);
    }
    put(&r->b, " = %s(", opname);
    bool first = true;
    for (int s = 0; s < op->nslots; s++) {
        if (!render_slot(f, op, s)) continue;
        const ArgRow *row = arg_row(op->kind, s);
        const int *ids;
        int n = mil_rt_op_slot(op, s, &ids);
        put(&r->b, "%s%s = ", first ? "" : ", ", row ? row->name : "?");
        first = false;
        bool tuple = row && (row->flags & A_VARIADIC);
        if (tuple) put(&r->b, "(");
        for (int i = 0; i < n; i++) put(&r->b, "%s%s", i ? ", " : "", r->names[ids[i]]);
        if (tuple) put(&r->b, ")");
    }
    put(&r->b, ")[name = ");
    put_string(r, split ? nobias : out0);
    put(&r->b, "];\n");
    if (split) {
        const MilRtValue *ov = &f->values[op->outs[0]];
        put(&r->b, "            ");
        put_type(r, ov->dtype, ov->rank, ov->dims);
        put(&r->b, " %s = add(x = %s, y = %s)[name = ", out0, nobias, bias);
        put_string(r, out0);
        put(&r->b, "];\n");
    }
}

int mil_ane_render(const MilRtFunc *f, const char *scratch_dir, AneRender *out, MilRtErr *e) {
    memset(out, 0, sizeof *out);
    if (mil_ane_check(f, e)) return -1;
    R r = {.f = f, .e = e};
    for (int i = 0; i < f->nops; i++)
        if (f->ops[i].kind == MIL_OP_SCALED_DOT_PRODUCT_ATTENTION) r.v13 = true;
    r.names = calloc((size_t)f->nvalues + 1, sizeof *r.names);
    bool *used = calloc((size_t)f->nvalues + 1, sizeof *used);
    size_t plen = strlen(scratch_dir) + 32;
    r.blob_path = malloc(plen);
    if (!r.names || !used || !r.blob_path) {
        mil_rt_errf(e, "out of memory");
        goto fail;
    }
    int fd = -1;
    snprintf(r.blob_path, plen, "%s/milc-ane-XXXXXX", scratch_dir);
    if ((fd = mkstemp(r.blob_path)) < 0) {
        mil_rt_errf(e, "%s: cannot create a scratch file: %s", r.blob_path, strerror(errno));
        r.blob_path[0] = 0;
        goto fail;
    }
    close(fd);
    for (int i = 0; i < f->nvalues; i++) {
        r.names[i] = ident_ok(f->values[i].name) ? strdup(f->values[i].name) : fresh_name(&r, f->values[i].name, i);
        if (!r.names[i]) {
            mil_rt_errf(e, "out of memory");
            goto fail;
        }
    }
    for (int i = 0; i < f->nops; i++)
        for (int s = 0; s < f->ops[i].nslots; s++) {
            if (!render_slot(f, &f->ops[i], s)) continue;
            const int *ids;
            int n = mil_rt_op_slot(&f->ops[i], s, &ids);
            for (int k = 0; k < n; k++) used[ids[k]] = true;
        }
    out->nin = f->ninputs;
    out->nout = f->noutputs;
    out->in_order = sorted_order(f, f->inputs, f->ninputs);
    out->out_order = sorted_order(f, f->outputs, f->noutputs);
    if (!out->in_order || !out->out_order) {
        mil_rt_errf(e, "out of memory");
        goto fail;
    }

    put(&r.b, "program(%s)\n", r.v13 ? "1.3" : "1.0");
    put(&r.b, "[buildInfo = dict<%s, %s>({{\"coremlc-component-MIL\", \"3510.2.1\"}, {\"coremlc-version\", "
              "\"3505.4.1\"}, {\"coremltools-component-milinternal\", \"\"}, {\"coremltools-version\", \"9.0\"}, "
              "{\"milc-ane-device\", \"1\"}})]\n{\n",
        r.v13 ? "string" : "tensor<string, []>", r.v13 ? "string" : "tensor<string, []>");
    put(&r.b, "    func main<%s>(", r.v13 ? "ios18" : "ios16");
    for (int k = 0; k < f->ninputs; k++) {
        const MilRtValue *v = &f->values[f->inputs[out->in_order[k]]];
        if (k) put(&r.b, ", ");
        put_type(&r, v->dtype, v->rank, v->dims);
        put(&r.b, " %s", r.names[f->inputs[out->in_order[k]]]);
    }
    put(&r.b, ") {\n");
    for (int i = 0; i < f->nvalues && r.rc == 0; i++) {
        if (!used[i] || f->values[i].kind != MIL_RT_CONST) continue;
        MilRtTensor t;
        mil_rt_value_tensor(&f->values[i], &t);
        put_const(&r, r.names[i], &t);
    }
    for (int i = 0; i < f->nops && r.rc == 0; i++) put_op(&r, &f->ops[i]);
    put(&r.b, "    } -> (");
    for (int k = 0; k < f->noutputs; k++) put(&r.b, "%s%s", k ? ", " : "", r.names[f->outputs[out->out_order[k]]]);
    put(&r.b, ");\n}\n");
    if (r.rc) goto fail;
    if (r.b.oom) {
        mil_rt_errf(e, "out of memory");
        goto fail;
    }
    if (r.w) {
        MilRtBlobWriter *w = r.w;
        r.w = NULL;
        void *buf = NULL;
        if (mil_rt_blob_writer_close(w, e) || mil_rt_milb_read_file(r.blob_path, &buf, &out->blob_len, e)) goto fail;
        out->blob = buf;
    }
    out->text = r.b.s;
    out->len = r.b.len;
    r.b.s = NULL;
    r.rc = 0;
    goto done;
fail:
    r.rc = -1;
    mil_ane_render_free(out);
done:
    if (r.w) mil_rt_blob_writer_close(r.w, NULL);
    if (r.blob_path && r.blob_path[0]) unlink(r.blob_path);
    free(r.blob_path);
    if (r.names)
        for (int i = 0; i < f->nvalues; i++) free(r.names[i]);
    free(r.names);
    for (int i = 0; i < r.nextra; i++) free(r.extra[i]);
    free(r.extra);
    free(r.blobs);
    free(r.b.s);
    free(used);
    return r.rc;
}

void mil_ane_render_free(AneRender *r) {
    free(r->text);
    free(r->blob);
    free(r->in_order);
    free(r->out_order);
    memset(r, 0, sizeof *r);
}
