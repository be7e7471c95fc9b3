/* passes/util.c -- helpers shared by the passes: builders that insert ops at
 * a given place (results typed by shape inference), accessors for constant
 * arguments, and reading BLOBFILE payloads for constant folding
 * (docs/mil-format.md §5: the BLOBFILE offset names the 64-byte metadata
 * record; the payload sits at the record's absolute `offset`).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/pass_int.h"
#include "runtime/runtime.h"

/* ------------------------------------------------------- unique names */

/* mil_func_unique_name remembers the last suffix per base (ir/builder.c), so
 * naming many values after one base stays linear. */
const char *pass_unique_name(MilFunc *f, const char *base) {
    return mil_func_unique_name(f, base && *base ? base : "var");
}

void pass_enter(void) { use_counts_dirty(); }

/* ---------------------------------------------------------- builders */

static MilValue *insert_const(MilFunc *f, MilOp *before, MilConst *c, const char *base) {
    use_counts_dirty();
    MilOp *op = mil_op_new(f, MIL_OP_CONST, NULL);
    mil_op_set_attr(op, "val", c);
    MilValue *v = mil_op_add_result(op, c->type, pass_unique_name(f, base ? base : "c"));
    const char *nm = v->name;
    mil_op_set_attr(op, "name", mil_const_string(f->prog, nm));
    if (before) mil_block_insert_before(&f->body, before, op);
    else mil_block_append(&f->body, op);
    return v;
}

MilValue *pb_const(MilFunc *f, MilOp *before, MilConst *c, const char *base) {
    return insert_const(f, before, c, base);
}

MilValue *pb_const_i32s(MilFunc *f, MilOp *before, int n, const int64_t *v, const char *base) {
    int32_t buf[MIL_MAX_RANK * 2 + 8];
    int32_t *d = n <= (int)(sizeof buf / sizeof buf[0]) ? buf : malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) d[i] = (int32_t)v[i];
    int64_t dim = n;
    MilConst *c = mil_const_tensor(f->prog, mil_type_tensor(f->prog, MIL_DT_INT32, 1, &dim), d, n);
    if (d != buf) free(d);
    return insert_const(f, before, c, base);
}

MilValue *pb_const_bool(MilFunc *f, MilOp *before, bool v, const char *base) {
    return insert_const(f, before, mil_const_scalar_bool(f->prog, v), base);
}

MilValue *pb_const_str(MilFunc *f, MilOp *before, const char *s, const char *base) {
    return insert_const(f, before, mil_const_string(f->prog, s), base);
}

MilValue *pb_const_scalar(MilFunc *f, MilOp *before, MilDType dt, double v, const char *base) {
    MilConst *c = mil_dtype_is_float(dt) ? mil_const_scalar_float(f->prog, dt, v)
                                         : mil_const_scalar_int(f->prog, dt, (int64_t)v);
    return insert_const(f, before, c, base);
}

MilOp *pb_op(MilFunc *f, MilOpKind k, MilLoc loc) {
    MilOp *op = mil_op_new(f, k, NULL);
    op->loc = loc;
    return op;
}

MilValue *pb_finish(MilFunc *f, MilOp *op, MilOp *before, const char *base) {
    const MilOpInfo *info = mil_op_info(op->kind);
    int nres = info && info->nresults > 0 ? info->nresults : 1;
    for (int i = 0; i < nres; i++)
        mil_op_add_result(op, NULL, pass_unique_name(f, base ? base : "t"));
    mil_op_set_attr(op, "name", mil_const_string(f->prog, op->results[0]->name));
    if (before) mil_block_insert_before(&f->body, before, op);
    else mil_block_append(&f->body, op);
    use_counts_dirty();
    use_track_new_op(f, op);
    mil_shape_infer_op(f->prog, op, NULL);
    return op->results[0];
}

MilValue *pb_reshape(MilFunc *f, MilOp *before, MilValue *x, int rank, const int64_t *dims, const char *base) {
    MilValue *shape = pb_const_i32s(f, before, rank, dims, "shape");
    MilOp *op = pb_op(f, MIL_OP_RESHAPE, before ? before->loc : (MilLoc){0});
    mil_op_add_arg(op, "shape", shape);
    mil_op_add_arg(op, "x", x);
    return pb_finish(f, op, before, base);
}

MilValue *pb_transpose(MilFunc *f, MilOp *before, MilValue *x, int rank, const int64_t *perm, const char *base) {
    MilValue *pv = pb_const_i32s(f, before, rank, perm, "perm");
    MilOp *op = pb_op(f, MIL_OP_TRANSPOSE, before ? before->loc : (MilLoc){0});
    mil_op_add_arg(op, "perm", pv);
    mil_op_add_arg(op, "x", x);
    return pb_finish(f, op, before, base);
}

MilValue *pb_binary(MilFunc *f, MilOp *before, MilOpKind k, MilValue *x, MilValue *y, const char *base) {
    MilOp *op = pb_op(f, k, before ? before->loc : (MilLoc){0});
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", y);
    return pb_finish(f, op, before, base);
}

/* ------------------------------------------------------------ accessors */

static const MilArg *find_arg(const MilOp *op, const char *name) {
    for (int i = 0; i < op->nargs; i++)
        if (!strcmp(op->args[i].name, name)) return &op->args[i];
    return NULL;
}

MilValue *arg_value(const MilOp *op, const char *name) {
    const MilArg *a = find_arg(op, name);
    if (!a || a->variadic || a->n != 1) return NULL;
    return a->items[0].value;
}

const MilType *arg_type(const MilOp *op, const char *name) {
    const MilArg *a = find_arg(op, name);
    if (a && !a->variadic && a->n == 1) {
        if (a->items[0].value) return a->items[0].value->type;
        if (a->items[0].cst) return a->items[0].cst->type;
    }
    if (!a) {
        const MilConst *c = mil_op_const_arg(op, name);
        if (c) return c->type;
    }
    return NULL;
}

bool arg_is_const(const MilOp *op, const char *name) {
    return mil_op_const_arg(op, name) != NULL;
}

static bool const_numeric(const MilConst *c) {
    return c && c->kind == MIL_CONST_TENSOR && c->type && c->type->kind == MIL_TY_TENSOR &&
           c->type->dtype != MIL_DT_STRING;
}

int arg_ints(const MilOp *op, const char *name, int64_t *out, int max) {
    const MilConst *c = mil_op_const_arg(op, name);
    if (!const_numeric(c) || c->count > max) return -1;
    for (int64_t i = 0; i < c->count; i++) out[i] = mil_const_get_i64(c, i);
    return (int)c->count;
}

bool arg_int(const MilOp *op, const char *name, int64_t *out) {
    const MilConst *c = mil_op_const_arg(op, name);
    if (!const_numeric(c) || c->count != 1) return false;
    *out = mil_const_get_i64(c, 0);
    return true;
}

bool arg_bool(const MilOp *op, const char *name, bool dflt) {
    const MilConst *c = mil_op_const_arg(op, name);
    if (!const_numeric(c) || c->count != 1) return dflt;
    return mil_const_get_i64(c, 0) != 0;
}

bool arg_float(const MilOp *op, const char *name, double *out) {
    const MilConst *c = mil_op_const_arg(op, name);
    if (!const_numeric(c) || c->count != 1) return false;
    *out = mil_const_get_f64(c, 0);
    return true;
}

const char *arg_str(const MilOp *op, const char *name) {
    const MilConst *c = mil_op_const_arg(op, name);
    return c ? mil_const_get_str(c) : NULL;
}

bool value_scalar(const MilValue *v, double *out) {
    const MilConst *c = v ? mil_value_const(v) : NULL;
    if (!const_numeric(c) || c->count != 1) return false;
    *out = mil_const_get_f64(c, 0);
    return true;
}

bool value_all_equal(const MilValue *v, double x) {
    const MilConst *c = v ? mil_value_const(v) : NULL;
    if (!const_numeric(c) || c->count < 1 || c->count > 4096) return false;
    for (int64_t i = 0; i < c->count; i++)
        if (mil_const_get_f64(c, i) != x) return false;
    return true;
}

bool ty_tensor(const MilType *t) { return t && t->kind == MIL_TY_TENSOR; }
bool ty_known(const MilType *t) { return ty_tensor(t) && !mil_type_has_unknown(t); }

int ty_fmt(const MilType *t, char *buf, size_t n) {
    if (!t) return snprintf(buf, n, "<none>");
    if (t->kind != MIL_TY_TENSOR) return snprintf(buf, n, "<non-tensor>");
    int k = snprintf(buf, n, "tensor<%s, [", mil_dtype_name(t->dtype));
    for (int i = 0; i < t->rank && k < (int)n; i++) {
        if (t->dims[i] == MIL_DIM_UNKNOWN) k += snprintf(buf + k, n - (size_t)k, "%s?", i ? ", " : "");
        else k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    }
    if (k < (int)n) k += snprintf(buf + k, n - (size_t)k, "]>");
    return k;
}

bool op_uses(const MilOp *op, const MilValue *v) {
    for (int i = 0; i < op->nargs; i++)
        for (int j = 0; j < op->args[i].n; j++)
            if (op->args[i].items[j].value == v) return true;
    return false;
}

bool value_is_output(const MilFunc *f, const MilValue *v) {
    for (int i = 0; i < f->body.nouts; i++)
        if (f->body.outs[i] == v) return true;
    return false;
}

MilOp *single_user(MilFunc *f, MilValue *v) {
    if (v->nuses != 1 || value_is_output(f, v)) return NULL;
    MilOp *start = v->def ? v->def->next : f->body.first;
    for (MilOp *op = start; op; op = op->next)
        if (op_uses(op, v)) return op;
    return NULL;
}

/* -------------------------------------------------------- constant data */

static char *weights_dir;

void pass_set_weights_dir(const char *dir) {
    free(weights_dir);
    weights_dir = dir ? strdup(dir) : NULL;
}

/* fp16/fp32 BLOBFILE data as floats, read with the runtime's weight reader
 * (path resolution, record and dtype checks); NULL when unavailable. */
static float *read_blob_f32(const MilConst *c, int64_t n) {
    MilDType dt = c->type->dtype;
    if (!weights_dir || !c->blob_path || (dt != MIL_DT_FP16 && dt != MIL_DT_FP32)) return NULL;
    MilRtErr e;
    MilRtBlobCache *cache = mil_rt_blob_cache_new(weights_dir, NULL);
    MilRtBlobFile *bf = cache ? mil_rt_blob_cache_get(cache, c->blob_path, &e) : NULL;
    const void *data = NULL;
    void *owned = NULL;
    float *out = NULL;
    if (bf && mil_rt_blob_read(bf, c->blob_offset, dt, n, &data, &owned, &e) == 0 &&
        (out = malloc(sizeof(float) * (size_t)(n ? n : 1)))) {
        for (int64_t i = 0; i < n; i++)
            out[i] = dt == MIL_DT_FP16 ? mil_fp16_to_f32(((const uint16_t *)data)[i]) : ((const float *)data)[i];
    }
    free(owned);
    mil_rt_blob_cache_free(cache);
    return out;
}

struct ConstHold {
    MilRtBlobCache *cache;
    void *owned;
};

const void *const_storage(const MilConst *c, int64_t *count, ConstHold **hold) {
    *hold = NULL;
    if (!c || !c->type || c->type->kind != MIL_TY_TENSOR || c->type->dtype == MIL_DT_STRING) return NULL;
    int64_t n = mil_type_numel(c->type);
    if (n < 0) return NULL;
    *count = n;
    if (c->kind == MIL_CONST_TENSOR) return c->count == n ? c->data : NULL;
    MilDType dt = c->type->dtype;
    if (c->kind != MIL_CONST_BLOB || !weights_dir || !c->blob_path || (dt != MIL_DT_FP16 && dt != MIL_DT_FP32))
        return NULL;
    /* the weight file stays mapped (the payload is read in place) until
       const_storage_release */
    ConstHold *h = calloc(1, sizeof *h);
    MilRtErr e;
    const void *data = NULL;
    h->cache = mil_rt_blob_cache_new(weights_dir, NULL);
    MilRtBlobFile *bf = h->cache ? mil_rt_blob_cache_get(h->cache, c->blob_path, &e) : NULL;
    if (!bf || mil_rt_blob_read(bf, c->blob_offset, dt, n, &data, &h->owned, &e) != 0) data = NULL;
    if (!data) {
        const_storage_release(h);
        return NULL;
    }
    *hold = h;
    return data;
}

void const_storage_release(ConstHold *h) {
    if (!h) return;
    free(h->owned);
    mil_rt_blob_cache_free(h->cache);
    free(h);
}

float *const_to_f32(const MilConst *c, int64_t *count) {
    if (!c || !c->type || c->type->kind != MIL_TY_TENSOR) return NULL;
    int64_t n = mil_type_numel(c->type);
    if (n < 0) return NULL;
    *count = n;
    if (c->kind == MIL_CONST_BLOB) return read_blob_f32(c, n);
    if (c->kind != MIL_CONST_TENSOR || c->type->dtype == MIL_DT_STRING) return NULL;
    float *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!out) return NULL;
    for (int64_t i = 0; i < n; i++) out[i] = (float)mil_const_get_f64(c, c->count == 1 ? 0 : i);
    return out;
}

MilConst *const_from_f32(MilProgram *p, const MilType *t, const float *data) {
    int64_t n = mil_type_numel(t);
    size_t es = mil_dtype_storage_size(t->dtype);
    void *buf = malloc(es * (size_t)(n ? n : 1));
    if (!buf) return NULL;
    for (int64_t i = 0; i < n; i++) {
        float v = data[i];
        switch (t->dtype) {
        case MIL_DT_FP16: ((uint16_t *)buf)[i] = mil_f32_to_fp16(v); break;
        case MIL_DT_BF16: ((uint16_t *)buf)[i] = mil_f32_to_bf16(v); break;
        case MIL_DT_FP32: ((float *)buf)[i] = v; break;
        case MIL_DT_FP64: ((double *)buf)[i] = v; break;
        case MIL_DT_BOOL: ((uint8_t *)buf)[i] = v != 0; break;
        case MIL_DT_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
        case MIL_DT_UINT8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
        case MIL_DT_INT16: ((int16_t *)buf)[i] = (int16_t)v; break;
        case MIL_DT_UINT16: ((uint16_t *)buf)[i] = (uint16_t)v; break;
        case MIL_DT_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
        case MIL_DT_UINT32: ((uint32_t *)buf)[i] = (uint32_t)v; break;
        case MIL_DT_INT64: ((int64_t *)buf)[i] = (int64_t)v; break;
        default: free(buf); return NULL;
        }
    }
    MilConst *c = mil_const_tensor(p, t, buf, n);
    free(buf);
    return c;
}

/* ------------------------------------------------------------ replacing */

bool replace_value(MilFunc *f, MilValue *from, MilValue *to) {
    int n = from != to ? use_track_count(f, from) : -1;
    int nout = 0;
    if (n >= 0)
        for (int i = 0; i < f->body.nouts; i++) nout += f->body.outs[i] == from;
    if (!replace_value_keep_uses(f, from, to)) return false;
    if (n < 0) {
        mil_func_replace_uses(f, from, to);
        return true;
    }
    /* The driver knows how many uses there are, and they all follow the
     * definition: stop at the last one instead of walking the function. */
    for (int i = 0; i < f->body.nouts; i++)
        if (f->body.outs[i] == from) f->body.outs[i] = to;
    int left = n - nout;
    for (MilOp *op = from->def ? from->def->next : f->body.first; op && left > 0; op = op->next)
        for (int i = 0; i < op->nargs; i++)
            for (int j = 0; j < op->args[i].n; j++)
                if (op->args[i].items[j].value == from) {
                    op->args[i].items[j].value = to;
                    left--;
                }
    use_track_replace(f, from, to, n);
    return true;
}

bool replace_value_keep_uses(MilFunc *f, MilValue *from, MilValue *to) {
    if (from == to) return false;
    use_counts_dirty();
    if (value_is_output(f, from)) {
        if (!to->def || value_is_output(f, to)) return false;
        /* Keep the function's output names: `to` takes over from's name. */
        const char *name = from->name;
        mil_func_rename_value(f, from, pass_unique_name(f, name));
        mil_func_rename_value(f, to, name);
        MilAttr *a = mil_op_attr(to->def, "name");
        if (a && to->def->nresults == 1) mil_op_set_attr(to->def, "name", mil_const_string(f->prog, name));
        for (int i = 0; i < f->body.nouts; i++)
            if (f->body.outs[i] == from) f->body.outs[i] = to;
    }
    return true;
}
