/* coreml/read.c -- model.mlmodel (Core ML Model protobuf with an ML Program)
 * -> MilProgram.  See coreml.h for the mapping; this file follows it top
 * down: model, program, functions, ops, values, types, then the model
 * description's shape flexibility.
 *
 * Messages name the file and the place in the program, e.g.
 *   m.mlpackage/Data/com.apple.CoreML/model.mlmodel: error: function 'main',
 *   op 'linear_0' (linear): argument 'x': use of undefined value 'y'
 * and the reader goes on after an error (up to MilDiag.max_errors) so one
 * run shows several problems; the program is returned only when there were
 * none. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coreml/coreml_int.h"
#include "runtime/runtime.h"

typedef struct Sym {
    const char *name;
    MilValue *v;
} Sym;

typedef struct Reader {
    MilProgram *p;
    MilDiag *d;
    const char *file;
    const MilCoreMLReadOptions *o;
    MilRtBlobCache *cache;
    int nerr;
    /* context of messages */
    const char *func;
    const char *opname, *optype;
    /* the current function's names */
    Sym *syms;
    size_t nsyms, cap;
} Reader;

/* ------------------------------------------------------------ messages */

static void rerr(Reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rerr(Reader *r, const char *fmt, ...) {
    char msg[1024], ctx[512] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->func && r->optype)
        snprintf(ctx, sizeof ctx, "function '%s', op '%s' (%s): ", r->func, r->opname, r->optype);
    else if (r->func)
        snprintf(ctx, sizeof ctx, "function '%s': ", r->func);
    mil_error(r->d, ((MilLoc){r->file, 0, 0}), "%s%s", ctx, msg);
    r->nerr++;
}

/* ------------------------------------------------------------- symbols */

static uint64_t hash_s(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static Sym *sym_slot(Reader *r, const char *name) {
    size_t mask = r->cap - 1;
    size_t i = (size_t)hash_s(name) & mask;
    while (r->syms[i].name && strcmp(r->syms[i].name, name)) i = (i + 1) & mask;
    return &r->syms[i];
}

static MilValue *sym_find(Reader *r, const char *name) {
    if (!r->cap) return NULL;
    Sym *s = sym_slot(r, name);
    return s->name ? s->v : NULL;
}

static bool sym_add(Reader *r, const char *name, MilValue *v) {
    if ((r->nsyms + 1) * 2 > r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 256;
        Sym *old = r->syms;
        size_t ocap = r->cap;
        r->syms = calloc(ncap, sizeof *r->syms);
        if (!r->syms) {
            r->syms = old;
            return false;
        }
        r->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].name) *sym_slot(r, old[i].name) = old[i];
        free(old);
    }
    Sym *s = sym_slot(r, name);
    if (s->name) return false;
    *s = (Sym){name, v};
    r->nsyms++;
    return true;
}

/* MIL identifiers: [A-Za-z_][A-Za-z0-9_@]* (MIL.proto). */
static bool is_ident(const char *s) {
    if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '@'))
            return false;
    return true;
}

/* --------------------------------------------------------------- opsets */

static const struct { const char *opset, *tag; } opsets[] = {
    {"CoreML5", "ios15"}, {"CoreML6", "ios16"}, {"CoreML7", "ios17"}, {"CoreML8", "ios18"}, {"CoreML9", "ios26"},
};

const char *cml_opset_to_tag(const char *opset) {
    for (size_t i = 0; i < sizeof opsets / sizeof *opsets; i++)
        if (!strcmp(opsets[i].opset, opset)) return opsets[i].tag;
    return NULL;
}

const char *cml_tag_to_opset(const char *tag) {
    for (size_t i = 0; i < sizeof opsets / sizeof *opsets; i++)
        if (!strcmp(opsets[i].tag, tag)) return opsets[i].opset;
    return NULL;
}

/* ---------------------------------------------------------------- types */

static const MilType *rtype(Reader *r, const Cml__ValueType *vt, const char *what, int depth) {
    if (!vt) {
        rerr(r, "%s: no type", what);
        return NULL;
    }
    if (depth > 32) {
        rerr(r, "%s: type nested too deeply", what);
        return NULL;
    }
    switch (vt->type_case) {
    case CML__VALUE_TYPE__TYPE_TENSOR_TYPE: {
        const Cml__TensorType *t = vt->tensortype;
        MilDType dt = mil_dtype_from_proto_code((int)t->datatype);
        if (dt == MIL_DT_NONE) {
            rerr(r, "%s: unknown data type %d", what, (int)t->datatype);
            return NULL;
        }
        if (t->rank < 0) {
            rerr(r, "%s: tensors of variable rank are not supported", what);
            return NULL;
        }
        if (t->rank > MIL_MAX_RANK || (size_t)t->rank != t->n_dimensions) {
            rerr(r, "%s: tensor rank %lld with %zu dimensions (at most %d)", what, (long long)t->rank,
                 t->n_dimensions, MIL_MAX_RANK);
            return NULL;
        }
        int64_t dims[MIL_MAX_RANK];
        for (size_t i = 0; i < t->n_dimensions; i++) {
            const Cml__Dimension *dm = t->dimensions[i];
            if (dm->dimension_case == CML__DIMENSION__DIMENSION_CONSTANT && dm->constant->size <= (uint64_t)INT64_MAX) {
                dims[i] = (int64_t)dm->constant->size;
            } else if (dm->dimension_case == CML__DIMENSION__DIMENSION_UNKNOWN && !dm->unknown->variadic) {
                dims[i] = MIL_DIM_UNKNOWN;
            } else {
                rerr(r, "%s: dimension %zu is %s", what, i,
                     dm->dimension_case == CML__DIMENSION__DIMENSION_UNKNOWN ? "variadic (not supported)"
                     : dm->dimension_case == CML__DIMENSION__DIMENSION_CONSTANT ? "too large"
                                                                                  : "not set");
                return NULL;
            }
        }
        return mil_type_tensor(r->p, dt, (int)t->rank, dims);
    }
    case CML__VALUE_TYPE__TYPE_LIST_TYPE: {
        const MilType *e = rtype(r, vt->listtype->type, what, depth + 1);
        const Cml__Dimension *len = vt->listtype->length;
        int64_t n = -1;
        if (len && len->dimension_case == CML__DIMENSION__DIMENSION_CONSTANT) {
            if (len->constant->size > (uint64_t)INT64_MAX) {
                rerr(r, "%s: list length too large", what);
                return NULL;
            }
            n = (int64_t)len->constant->size;
        }
        return e ? mil_type_list(r->p, e, n) : NULL;
    }
    case CML__VALUE_TYPE__TYPE_TUPLE_TYPE: {
        const Cml__TupleType *t = vt->tupletype;
        const MilType **ts = calloc(t->n_types + 1, sizeof *ts);
        bool ok = ts != NULL;
        for (size_t i = 0; ok && i < t->n_types; i++) ok = (ts[i] = rtype(r, t->types[i], what, depth + 1)) != NULL;
        const MilType *res = ok ? mil_type_tuple(r->p, (int)t->n_types, ts) : NULL;
        free(ts);
        return res;
    }
    case CML__VALUE_TYPE__TYPE_DICTIONARY_TYPE: {
        const MilType *k = rtype(r, vt->dictionarytype->keytype, what, depth + 1);
        const MilType *v = k ? rtype(r, vt->dictionarytype->valuetype, what, depth + 1) : NULL;
        return v ? mil_type_dict(r->p, k, v) : NULL;
    }
    case CML__VALUE_TYPE__TYPE_STATE_TYPE: {
        const MilType *w = rtype(r, vt->statetype->wrappedtype, what, depth + 1);
        if (w && w->kind != MIL_TY_TENSOR) {
            rerr(r, "%s: state<...> must wrap a tensor type", what);
            return NULL;
        }
        return w ? mil_type_state(r->p, w) : NULL;
    }
    default:
        rerr(r, "%s: type not set", what);
        return NULL;
    }
}

static const char *tstr(const MilType *t, char *buf, size_t size) {
    mil_type_format(t, MIL_SPELLING_1_3, buf, size);
    return buf;
}

/* --------------------------------------------------------------- values */

/* Stores v into one storage cell of an integer dtype; false when out of range. */
static bool put_int(MilDType dt, int64_t v, bool from_unsigned, void *cell) {
    int bits = mil_dtype_bits(dt);
    if (mil_dtype_is_signed(dt)) {
        if (from_unsigned && v < 0) return false;
        if (bits < 64 && (v < -(INT64_C(1) << (bits - 1)) || v >= (INT64_C(1) << (bits - 1)))) return false;
    } else if (!from_unsigned || bits < 64) {
        if (v < 0 || (bits < 64 && (uint64_t)v >= (UINT64_C(1) << bits))) return false;
    }
    switch (mil_dtype_storage_size(dt)) {
    case 1: *(uint8_t *)cell = (uint8_t)v; break;
    case 2: *(uint16_t *)cell = (uint16_t)v; break;
    case 4: *(uint32_t *)cell = (uint32_t)v; break;
    default: *(uint64_t *)cell = (uint64_t)v; break;
    }
    return true;
}

static bool put_float(MilDType dt, double v, void *cell) {
    switch (dt) {
    case MIL_DT_FP32: *(float *)cell = (float)v; return true;
    case MIL_DT_FP64: *(double *)cell = v; return true;
    case MIL_DT_FP16: *(uint16_t *)cell = mil_f32_to_fp16((float)v); return true;
    case MIL_DT_BF16: *(uint16_t *)cell = mil_f32_to_bf16((float)v); return true;
    default: return false;
    }
}

static const char *tensor_field_name(Cml__TensorValue__ValueCase c) {
    switch (c) {
    case CML__TENSOR_VALUE__VALUE_FLOATS: return "floats";
    case CML__TENSOR_VALUE__VALUE_INTS: return "ints";
    case CML__TENSOR_VALUE__VALUE_BOOLS: return "bools";
    case CML__TENSOR_VALUE__VALUE_STRINGS: return "strings";
    case CML__TENSOR_VALUE__VALUE_LONG_INTS: return "longInts";
    case CML__TENSOR_VALUE__VALUE_DOUBLES: return "doubles";
    case CML__TENSOR_VALUE__VALUE_BYTES: return "bytes";
    default: return "nothing";
    }
}

static MilConst *rtensor(Reader *r, const MilType *t, const Cml__TensorValue *tv, const char *what) {
    char tb[256];
    int64_t n = mil_type_numel(t);
    if (n < 0) {
        rerr(r, "%s: an immediate value needs a type with known dims, not %s", what, tstr(t, tb, sizeof tb));
        return NULL;
    }
    MilDType dt = t->dtype;
    size_t es = mil_dtype_storage_size(dt);
    size_t have = 0;
    bool fits = true; /* the field's kind suits dt */
    switch (tv->value_case) {
    case CML__TENSOR_VALUE__VALUE_FLOATS: have = tv->floats->n_values; fits = mil_dtype_is_float(dt) && dt != MIL_DT_FP8E4M3FN && dt != MIL_DT_FP8E5M2; break;
    case CML__TENSOR_VALUE__VALUE_DOUBLES: have = tv->doubles->n_values; fits = dt == MIL_DT_FP64 || dt == MIL_DT_FP32; break;
    case CML__TENSOR_VALUE__VALUE_INTS: have = tv->ints->n_values; fits = mil_dtype_is_int(dt); break;
    case CML__TENSOR_VALUE__VALUE_LONG_INTS: have = tv->longints->n_values; fits = mil_dtype_is_int(dt); break;
    case CML__TENSOR_VALUE__VALUE_BOOLS: have = tv->bools->n_values; fits = dt == MIL_DT_BOOL; break;
    case CML__TENSOR_VALUE__VALUE_STRINGS: have = tv->strings->n_values; fits = dt == MIL_DT_STRING; break;
    case CML__TENSOR_VALUE__VALUE_BYTES: {
        fits = dt != MIL_DT_STRING;
        uint64_t want = mil_rt_blob_payload_size(dt, n);
        if (fits && tv->bytes->values.len != want) {
            rerr(r, "%s: %zu bytes of data for %s (expected %llu)", what, tv->bytes->values.len,
                 tstr(t, tb, sizeof tb), (unsigned long long)want);
            return NULL;
        }
        have = (size_t)n;
        break;
    }
    default:
        rerr(r, "%s: tensor value has no data", what);
        return NULL;
    }
    if (!fits) {
        rerr(r, "%s: tensor data in '%s' cannot hold %s", what, tensor_field_name(tv->value_case),
             tstr(t, tb, sizeof tb));
        return NULL;
    }
    if (have != (size_t)n) {
        rerr(r, "%s: %zu values for %s (expected %lld)", what, have, tstr(t, tb, sizeof tb), (long long)n);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)n * es + 8);
    if (!buf) {
        rerr(r, "%s: out of memory", what);
        return NULL;
    }
    bool ok = true;
    for (int64_t i = 0; ok && i < n; i++) {
        void *cell = buf + (size_t)i * es;
        switch (tv->value_case) {
        case CML__TENSOR_VALUE__VALUE_FLOATS: ok = put_float(dt, tv->floats->values[i], cell); break;
        case CML__TENSOR_VALUE__VALUE_DOUBLES: ok = put_float(dt, tv->doubles->values[i], cell); break;
        case CML__TENSOR_VALUE__VALUE_INTS: ok = put_int(dt, tv->ints->values[i], false, cell); break;
        case CML__TENSOR_VALUE__VALUE_LONG_INTS:
            ok = put_int(dt, tv->longints->values[i], dt == MIL_DT_UINT64, cell);
            break;
        case CML__TENSOR_VALUE__VALUE_BOOLS: *(uint8_t *)cell = tv->bools->values[i] != 0; break;
        case CML__TENSOR_VALUE__VALUE_STRINGS: {
            const char *s = mil_strdup(r->p, tv->strings->values[i]);
            ok = s != NULL;
            memcpy(cell, &s, sizeof s);
            break;
        }
        default: i = n; break; /* bytes: below */
        }
        if (!ok) rerr(r, "%s: value %lld is out of range for %s", what, (long long)i, tstr(t, tb, sizeof tb));
    }
    if (ok && tv->value_case == CML__TENSOR_VALUE__VALUE_BYTES) {
        mil_rt_blob_unpack(dt, tv->bytes->values.data, n, buf);
        if (dt == MIL_DT_BOOL)
            for (int64_t i = 0; i < n; i++) buf[i] = buf[i] != 0;
    }
    MilConst *c = ok ? mil_const_tensor(r->p, t, buf, n) : NULL;
    free(buf);
    return c;
}

static void check_blob(Reader *r, const MilConst *c, const char *what) {
    if (r->o->no_weight_check || !r->cache) return;
    MilRtErr e;
    MilRtBlobFile *bf = mil_rt_blob_cache_get(r->cache, c->blob_path, &e);
    const void *data;
    void *owned = NULL;
    if (!bf || mil_rt_blob_read(bf, c->blob_offset, c->type->dtype, mil_type_numel(c->type), &data, &owned, &e))
        rerr(r, "%s: %s", what, e.msg);
    free(owned);
}

static MilConst *rvalue(Reader *r, const Cml__Value *v, const char *what, bool nested, int depth) {
    char tb[256];
    if (!v) {
        rerr(r, "%s: no value", what);
        return NULL;
    }
    const MilType *t = rtype(r, v->type, what, 0);
    if (!t) return NULL;
    if (depth > 32) {
        rerr(r, "%s: value nested too deeply", what);
        return NULL;
    }
    if (v->value_case == CML__VALUE__VALUE_BLOB_FILE_VALUE) {
        if (t->kind != MIL_TY_TENSOR || mil_type_numel(t) < 0 || !mil_dtype_blob_code(t->dtype)) {
            rerr(r, "%s: a weight-file value cannot have type %s", what, tstr(t, tb, sizeof tb));
            return NULL;
        }
        MilConst *c = mil_const_blob(r->p, t, v->blobfilevalue->filename, v->blobfilevalue->offset);
        if (c) check_blob(r, c, what);
        return c;
    }
    if (v->value_case != CML__VALUE__VALUE_IMMEDIATE_VALUE) {
        rerr(r, "%s: value has neither immediate data nor a weight-file reference", what);
        return NULL;
    }
    const Cml__Value__ImmediateValue *iv = v->immediatevalue;
    size_t n = 0;
    Cml__Value **vals = NULL;
    MilConstKind kind;
    switch (iv->value_case) {
    case CML__VALUE__IMMEDIATE_VALUE__VALUE_TENSOR:
        if (t->kind != MIL_TY_TENSOR) break;
        return rtensor(r, t, iv->tensor, what);
    case CML__VALUE__IMMEDIATE_VALUE__VALUE_TUPLE:
        if (t->kind != MIL_TY_TUPLE) break;
        n = iv->tuple->n_values;
        vals = iv->tuple->values;
        kind = MIL_CONST_TUPLE;
        if (n != (size_t)t->ntypes) {
            rerr(r, "%s: tuple value has %zu elements, type %s has %d", what, n, tstr(t, tb, sizeof tb), t->ntypes);
            return NULL;
        }
        goto aggregate;
    case CML__VALUE__IMMEDIATE_VALUE__VALUE_LIST:
        if (t->kind != MIL_TY_LIST) break;
        n = iv->list->n_values;
        vals = iv->list->values;
        kind = MIL_CONST_LIST;
        if (t->len >= 0 && n != (size_t)t->len) {
            rerr(r, "%s: list value has %zu elements, type %s has length %lld", what, n, tstr(t, tb, sizeof tb),
                 (long long)t->len);
            return NULL;
        }
        goto aggregate;
    case CML__VALUE__IMMEDIATE_VALUE__VALUE_DICTIONARY: {
        if (t->kind != MIL_TY_DICT) break;
        const Cml__DictionaryValue *dv = iv->dictionary;
        MilConst **items = calloc(2 * dv->n_values + 1, sizeof *items);
        bool ok = items != NULL;
        for (size_t i = 0; ok && i < dv->n_values; i++) {
            ok = (items[2 * i] = rvalue(r, dv->values[i]->key, what, true, depth + 1)) &&
                 (items[2 * i + 1] = rvalue(r, dv->values[i]->value, what, true, depth + 1));
            if (ok && (!mil_type_equal(items[2 * i]->type, t->elem) ||
                       (items[2 * i + 1]->kind == MIL_CONST_TENSOR) != (t->val->kind == MIL_TY_TENSOR))) {
                rerr(r, "%s: dict entry %zu does not match the type %s", what, i, tstr(t, tb, sizeof tb));
                ok = false;
            }
        }
        MilConst *c = ok ? mil_const_aggregate(r->p, MIL_CONST_DICT, t, (int)(2 * dv->n_values), items) : NULL;
        free(items);
        return c;
    }
    default:
        rerr(r, "%s: immediate value has no data", what);
        return NULL;
    }
    rerr(r, "%s: immediate value does not match its type %s", what, tstr(t, tb, sizeof tb));
    return NULL;
aggregate:;
    MilConst **items = calloc(n + 1, sizeof *items);
    bool ok = items != NULL;
    for (size_t i = 0; ok && i < n; i++) ok = (items[i] = rvalue(r, vals[i], what, true, depth + 1)) != NULL;
    MilConst *c = NULL;
    if (ok) {
        /* like the text parser: a list inside another literal has its actual length */
        const MilType *ct = kind == MIL_CONST_LIST && nested ? mil_type_list(r->p, t->elem, (int64_t)n) : t;
        c = mil_const_aggregate(r->p, kind, ct, (int)n, items);
    }
    free(items);
    return c;
}

/* ------------------------------------------------------------------ ops */

static const char *op_name_of(const Cml__Operation *op) {
    for (size_t i = 0; i < op->n_attributes; i++) {
        const Cml__Value *v = op->attributes[i]->value;
        if (strcmp(op->attributes[i]->key, "name") || !v || v->value_case != CML__VALUE__VALUE_IMMEDIATE_VALUE)
            continue;
        const Cml__Value__ImmediateValue *iv = v->immediatevalue;
        if (iv->value_case == CML__VALUE__IMMEDIATE_VALUE__VALUE_TENSOR &&
            iv->tensor->value_case == CML__TENSOR_VALUE__VALUE_STRINGS && iv->tensor->strings->n_values == 1)
            return iv->tensor->strings->values[0];
    }
    return NULL;
}

static void rop(Reader *r, MilFunc *f, const Cml__Operation *pop, size_t index) {
    char nb[32], what[320];
    const char *nm = op_name_of(pop);
    if (!nm) {
        snprintf(nb, sizeof nb, "#%zu", index);
        nm = nb;
    }
    r->opname = nm;
    r->optype = pop->type;
    MilOpKind k = mil_op_lookup(pop->type, strlen(pop->type));
    if (k == MIL_OP_UNKNOWN && !r->o->allow_unknown_ops) {
        rerr(r, "unknown op type '%s' (use --allow-unknown-ops to keep it as an opaque op)", pop->type);
        goto out;
    }
    if (k == MIL_OP_UNKNOWN && !is_ident(pop->type)) {
        rerr(r, "op type is not a MIL identifier");
        goto out;
    }
    if (pop->n_blocks) {
        rerr(r, "control flow (nested blocks) is not supported");
        goto out;
    }
    MilOp *op = mil_op_new(f, k, k == MIL_OP_UNKNOWN ? mil_strdup(r->p, pop->type) : NULL);
    if (!op) {
        rerr(r, "out of memory");
        goto out;
    }
    op->loc = (MilLoc){r->file, 0, 0};
    bool ok = true;
    for (size_t i = 0; i < pop->n_inputs; i++) {
        const char *an = pop->inputs[i]->key;
        const Cml__Argument *arg = pop->inputs[i]->value;
        snprintf(what, sizeof what, "argument '%s'", an);
        if (!is_ident(an)) {
            rerr(r, "argument name '%s' is not a MIL identifier", an);
            ok = false;
            continue;
        }
        if (mil_op_arg(op, an)) {
            rerr(r, "duplicate argument '%s'", an);
            ok = false;
            continue;
        }
        size_t nb_ = arg ? arg->n_arguments : 0;
        if (nb_ == 0) {
            rerr(r, "%s has no bindings", what);
            ok = false;
            continue;
        }
        MilBinding *bs = calloc(nb_, sizeof *bs);
        if (!bs) {
            rerr(r, "out of memory");
            ok = false;
            continue;
        }
        bool aok = true;
        for (size_t j = 0; j < nb_; j++) {
            const Cml__Argument__Binding *b = arg->arguments[j];
            if (b->binding_case == CML__ARGUMENT__BINDING__BINDING_NAME) {
                bs[j].value = sym_find(r, b->name);
                if (!bs[j].value) {
                    rerr(r, "%s: use of undefined value '%s'", what, b->name);
                    aok = false;
                }
            } else if (b->binding_case == CML__ARGUMENT__BINDING__BINDING_VALUE) {
                if (!(bs[j].cst = rvalue(r, b->value, what, false, 0))) aok = false;
            } else {
                rerr(r, "%s: binding %zu is neither a name nor a value", what, j);
                aok = false;
            }
        }
        const MilArgInfo *ai = k != MIL_OP_UNKNOWN ? mil_op_arg_info(k, an) : NULL;
        const char *name = mil_strdup(r->p, an);
        if (!aok || !name) {
            ok = false;
        } else if (nb_ == 1 && !(ai && (ai->flags & A_VARIADIC))) {
            if (bs[0].value) mil_op_add_arg(op, name, bs[0].value);
            else mil_op_add_arg_const(op, name, bs[0].cst);
        } else {
            mil_op_add_arg_tuple(op, name, (int)nb_, bs);
        }
        free(bs);
    }
    for (size_t i = 0; i < pop->n_attributes; i++) {
        const char *an = pop->attributes[i]->key;
        snprintf(what, sizeof what, "attribute '%s'", an);
        if (!is_ident(an)) {
            rerr(r, "attribute name '%s' is not a MIL identifier", an);
            ok = false;
            continue;
        }
        if (mil_op_attr(op, an)) {
            rerr(r, "duplicate attribute '%s'", an);
            ok = false;
            continue;
        }
        MilConst *c = rvalue(r, pop->attributes[i]->value, what, false, 0);
        if (c) mil_op_set_attr(op, mil_strdup(r->p, an), c);
        else ok = false;
    }
    for (size_t i = 0; i < pop->n_outputs; i++) {
        const Cml__NamedValueType *o = pop->outputs[i];
        snprintf(what, sizeof what, "output '%s'", o->name);
        const MilType *t = rtype(r, o->type, what, 0);
        if (!is_ident(o->name)) {
            rerr(r, "output name '%s' is not a MIL identifier", o->name);
            ok = false;
        } else if (sym_find(r, o->name)) {
            rerr(r, "duplicate definition of '%s'", o->name);
            ok = false;
        } else if (t && t->kind == MIL_TY_STATE) {
            rerr(r, "%s: an op result cannot have a state type (states are function inputs)", what);
            ok = false;
        } else if (t) {
            MilValue *v = mil_op_add_result(op, t, mil_strdup(r->p, o->name));
            if (!v || !sym_add(r, v->name, v)) {
                rerr(r, "out of memory");
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    if (ok) mil_block_append(&f->body, op);
out:
    r->opname = r->optype = NULL;
}

/* ------------------------------------------------------------ functions */

static void rfunc(Reader *r, const char *name, const Cml__Function *pf) {
    r->func = name;
    if (r->syms) memset(r->syms, 0, r->cap * sizeof *r->syms);
    r->nsyms = 0;
    if (!is_ident(name)) {
        rerr(r, "function name is not a MIL identifier");
        return;
    }
    if (mil_program_find_func(r->p, name)) {
        rerr(r, "duplicate function");
        return;
    }
    const char *tag = cml_opset_to_tag(pf->opset);
    if (!tag) {
        rerr(r, "unknown opset '%s' (expected CoreML5 .. CoreML9)", pf->opset);
        return;
    }
    const Cml__Block *b = NULL;
    for (size_t i = 0; i < pf->n_block_specializations; i++)
        if (!strcmp(pf->block_specializations[i]->key, pf->opset)) b = pf->block_specializations[i]->value;
    if (!b) {
        rerr(r, "no block for its opset '%s' in block_specializations", pf->opset);
        return;
    }
    if (b->n_inputs) {
        rerr(r, "the function's block has inputs");
        return;
    }
    MilFunc *f = mil_func_new(r->p, mil_strdup(r->p, name), tag);
    if (!f) {
        rerr(r, "out of memory");
        return;
    }
    f->loc = (MilLoc){r->file, 0, 0};
    char what[320];
    for (size_t i = 0; i < pf->n_inputs; i++) {
        const Cml__NamedValueType *in = pf->inputs[i];
        snprintf(what, sizeof what, "input '%s'", in->name);
        const MilType *t = rtype(r, in->type, what, 0);
        if (!is_ident(in->name)) {
            rerr(r, "input name '%s' is not a MIL identifier", in->name);
        } else if (sym_find(r, in->name)) {
            rerr(r, "duplicate definition of '%s'", in->name);
        } else if (t) {
            MilValue *v = mil_func_add_param(f, t, mil_strdup(r->p, in->name));
            if (!v || !sym_add(r, v->name, v)) rerr(r, "out of memory");
        }
    }
    for (size_t i = 0; i < pf->n_attributes; i++) {
        snprintf(what, sizeof what, "attribute '%s'", pf->attributes[i]->key);
        MilConst *c = is_ident(pf->attributes[i]->key) ? rvalue(r, pf->attributes[i]->value, what, false, 0) : NULL;
        if (c) mil_func_set_attr(f, mil_strdup(r->p, pf->attributes[i]->key), c);
        else if (!is_ident(pf->attributes[i]->key)) rerr(r, "attribute name is not a MIL identifier");
    }
    for (size_t i = 0; i < b->n_operations; i++) rop(r, f, b->operations[i], i);
    for (size_t i = 0; i < b->n_outputs; i++) {
        MilValue *v = sym_find(r, b->outputs[i]);
        if (v) mil_func_add_output(f, v);
        else rerr(r, "output '%s' is not defined", b->outputs[i]);
    }
    f->body.outs_loc = f->loc;
}

/* ------------------------------------------------- shape flexibility */

/* int32 shape constant of n dims. */
static MilConst *shape_const(MilProgram *p, int n, const int64_t *v) {
    int32_t buf[MIL_MAX_RANK * 2 + 1];
    for (int i = 0; i < n; i++) buf[i] = (int32_t)v[i];
    int64_t dn = n;
    return mil_const_tensor(p, mil_type_tensor(p, MIL_DT_INT32, 1, &dn), buf, n);
}

typedef struct FlexBuild {
    MilConst **defaults, **ranges, **enums; /* key/value pairs */
    int ndef, nrange, nenum;
} FlexBuild;

static bool fits_int32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

/* One described input: its default shape and its flexibility. */
static void flex_input(Reader *r, FlexBuild *fb, const MilValue *param, const Cml__ArrayFeatureType *a) {
    MilProgram *p = r->p;
    int rank = param->type->kind == MIL_TY_TENSOR ? param->type->rank : -1;
    bool is_range = a->shape_flexibility_case == CML__ARRAY_FEATURE_TYPE__SHAPE_FLEXIBILITY_SHAPE_RANGE;
    bool is_enum = a->shape_flexibility_case == CML__ARRAY_FEATURE_TYPE__SHAPE_FLEXIBILITY_ENUMERATED_SHAPES;
    if (!is_range && !is_enum) return;
    if (rank < 0) {
        rerr(r, "model description: input '%s' has shape flexibility but is not a tensor", param->name);
        return;
    }
    int64_t def[MIL_MAX_RANK];
    if ((int)a->n_shape == rank) {
        for (int i = 0; i < rank; i++) def[i] = a->shape[i];
    } else if (is_enum && a->enumeratedshapes->n_shapes && (int)a->enumeratedshapes->shapes[0]->n_shape == rank) {
        for (int i = 0; i < rank; i++) def[i] = a->enumeratedshapes->shapes[0]->shape[i];
    } else if (is_range && (int)a->shaperange->n_sizeranges == rank) {
        for (int i = 0; i < rank; i++) def[i] = (int64_t)a->shaperange->sizeranges[i]->lowerbound;
    } else {
        rerr(r, "model description: input '%s' has no default shape of rank %d", param->name, rank);
        return;
    }
    for (int i = 0; i < rank; i++)
        if (def[i] < 0 || !fits_int32(def[i])) {
            rerr(r, "model description: input '%s': bad default shape", param->name);
            return;
        }
    MilConst *key = mil_const_string(p, param->name);
    fb->defaults[fb->ndef++] = key;
    fb->defaults[fb->ndef++] = shape_const(p, rank, def);
    const MilType *i32v = mil_type_tensor(p, MIL_DT_INT32, 1, (int64_t[]){MIL_DIM_UNKNOWN});
    if (is_range) {
        const Cml__ArrayFeatureType__ShapeRange *sr = a->shaperange;
        if ((int)sr->n_sizeranges != rank) {
            rerr(r, "model description: input '%s': %zu size ranges for rank %d", param->name, sr->n_sizeranges, rank);
            return;
        }
        MilConst *items[MIL_MAX_RANK];
        for (int i = 0; i < rank; i++) {
            int64_t lh[2] = {(int64_t)sr->sizeranges[i]->lowerbound, sr->sizeranges[i]->upperbound};
            if (sr->sizeranges[i]->lowerbound > INT32_MAX || !fits_int32(lh[1]) || lh[1] < -1 ||
                (lh[1] >= 0 && lh[1] < lh[0])) {
                rerr(r, "model description: input '%s': bad size range for dim %d", param->name, i);
                return;
            }
            items[i] = shape_const(p, 2, lh);
        }
        const MilType *lt = mil_type_list(p, mil_type_tensor(p, MIL_DT_INT32, 1, (int64_t[]){2}), rank);
        fb->ranges[fb->nrange++] = key;
        fb->ranges[fb->nrange++] = mil_const_aggregate(p, MIL_CONST_LIST, lt, rank, items);
    } else {
        const Cml__ArrayFeatureType__EnumeratedShapes *es = a->enumeratedshapes;
        MilConst **items = calloc(es->n_shapes + 1, sizeof *items);
        if (!items) return;
        for (size_t i = 0; i < es->n_shapes; i++) {
            const Cml__ArrayFeatureType__Shape *s = es->shapes[i];
            bool ok = (int)s->n_shape == rank;
            for (size_t j = 0; ok && j < s->n_shape; j++) ok = s->shape[j] >= 0 && fits_int32(s->shape[j]);
            if (!ok) {
                rerr(r, "model description: input '%s': enumerated shape %zu is not a shape of rank %d", param->name,
                     i, rank);
                free(items);
                return;
            }
            items[i] = shape_const(p, rank, s->shape);
        }
        fb->enums[fb->nenum++] = key;
        fb->enums[fb->nenum++] =
            mil_const_aggregate(p, MIL_CONST_LIST, mil_type_list(p, i32v, (int64_t)es->n_shapes), (int)es->n_shapes, items);
        free(items);
    }
}

static MilConst *flex_entry(MilProgram *p, const char *key, const MilType *dict_val, int n, MilConst **items,
                            const MilType **tt) {
    const MilType *st = mil_type_scalar(p, MIL_DT_STRING);
    const MilType *dt = mil_type_dict(p, st, dict_val);
    const MilType *pair[2] = {st, dt};
    *tt = mil_type_tuple(p, 2, pair);
    MilConst *kv[2] = {mil_const_string(p, key), mil_const_aggregate(p, MIL_CONST_DICT, dt, n, items)};
    return mil_const_aggregate(p, MIL_CONST_TUPLE, *tt, 2, kv);
}

/* Checks a function's description against its signature and adds the
 * FlexibleShapeInformation attribute for flexible inputs. */
static void rdescription(Reader *r, MilFunc *f, Cml__FeatureDescription **in, size_t nin,
                         Cml__FeatureDescription **out, size_t nout) {
    r->func = f->name;
    FlexBuild fb = {0};
    fb.defaults = calloc(2 * nin + 1, sizeof *fb.defaults);
    fb.ranges = calloc(2 * nin + 1, sizeof *fb.ranges);
    fb.enums = calloc(2 * nin + 1, sizeof *fb.enums);
    if (!fb.defaults || !fb.ranges || !fb.enums) goto done;
    for (size_t i = 0; i < nin; i++) {
        const MilValue *param = NULL;
        for (int j = 0; j < f->nparams; j++)
            if (!strcmp(f->params[j]->name, in[i]->name)) param = f->params[j];
        if (!param) {
            rerr(r, "model description: input '%s' is not an input of the function", in[i]->name);
            continue;
        }
        const Cml__FeatureType *ft = in[i]->type;
        if (ft && ft->type_case == CML__FEATURE_TYPE__TYPE_MULTI_ARRAY_TYPE) flex_input(r, &fb, param, ft->multiarraytype);
    }
    for (size_t i = 0; i < nout; i++) {
        bool found = false;
        for (int j = 0; j < f->body.nouts; j++) found |= !strcmp(f->body.outs[j]->name, out[i]->name);
        if (!found) rerr(r, "model description: output '%s' is not an output of the function", out[i]->name);
    }
    if (!fb.ndef || r->nerr) goto done;
    for (int i = 0; i < f->nattrs; i++)
        if (!strcmp(f->attrs[i].name, "FlexibleShapeInformation")) goto done; /* the program's own wins */
    MilProgram *p = r->p;
    const MilType *i32v = mil_type_tensor(p, MIL_DT_INT32, 1, (int64_t[]){MIL_DIM_UNKNOWN});
    const MilType *tts[3];
    MilConst *entries[3];
    int ne = 0;
    entries[ne] = flex_entry(p, "DefaultShapes", i32v, fb.ndef, fb.defaults, &tts[ne]);
    ne++;
    if (fb.nrange) {
        const MilType *lt = mil_type_list(p, mil_type_tensor(p, MIL_DT_INT32, 1, (int64_t[]){2}), -1);
        entries[ne] = flex_entry(p, "RangeDims", lt, fb.nrange, fb.ranges, &tts[ne]);
        ne++;
    }
    if (fb.nenum) {
        entries[ne] = flex_entry(p, "EnumeratedShapes", mil_type_list(p, i32v, -1), fb.nenum, fb.enums, &tts[ne]);
        ne++;
    }
    const MilType *t = mil_type_tuple(p, ne, tts);
    mil_func_set_attr(f, "FlexibleShapeInformation", mil_const_aggregate(p, MIL_CONST_TUPLE, t, ne, entries));
done:
    free(fb.defaults);
    free(fb.ranges);
    free(fb.enums);
    r->func = NULL;
}

/* --------------------------------------------------------------- model */

static const char *refused_kind(const Cml__Model *m) {
    if (m->neuralnetwork) return "a neural-network model (Model.neuralNetwork, field 500)";
    if (m->neuralnetworkclassifier) return "a neural-network classifier (Model.neuralNetworkClassifier, field 403)";
    if (m->neuralnetworkregressor) return "a neural-network regressor (Model.neuralNetworkRegressor, field 303)";
    if (m->pipeline || m->pipelineclassifier || m->pipelineregressor) return "a pipeline model";
    return "no ML Program (Model.mlProgram, field 502)";
}

MilProgram *mil_coreml_read_model(const char *file, const void *buf, size_t len, const char *model_dir,
                                  const MilCoreMLReadOptions *opt, MilDiag *d) {
    MilCoreMLReadOptions none = {0};
    Reader r = {.d = d, .o = opt ? opt : &none};
    int errors0 = d->nerrors;
    r.file = mil_diag_add_source(d, file, NULL, 0);
    Cml__Model *m = cml__model__unpack(NULL, len, buf);
    if (!m) {
        char why[512];
        cml_wire_explain(&cml__model__descriptor, buf, len, why, sizeof why);
        mil_error(d, ((MilLoc){r.file, 0, 0}), "malformed protobuf: %s", why);
        return NULL;
    }
    if (m->type_case != CML__MODEL__TYPE_ML_PROGRAM) {
        mil_error(d, ((MilLoc){r.file, 0, 0}),
                  "this is %s, not an ML Program: milc reads ML Programs only (coremltools: convert_to=\"mlprogram\")",
                  refused_kind(m));
        cml__model__free_unpacked(m, NULL);
        return NULL;
    }
    const Cml__Program *pp = m->mlprogram;
    r.p = mil_program_new(m->specificationversion >= 9 ? "1.3" : "1.0");
    char dirbuf[4200];
    if (!model_dir) {
        const char *slash = strrchr(file, '/');
        snprintf(dirbuf, sizeof dirbuf, "%.*s", slash ? (int)(slash - file) : 1, slash ? file : ".");
        model_dir = dirbuf;
    }
    if (!r.o->no_weight_check) r.cache = mil_rt_blob_cache_new(model_dir, NULL);
    if (!r.p) {
        mil_error(d, ((MilLoc){r.file, 0, 0}), "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < pp->n_attributes; i++) {
        char what[320];
        snprintf(what, sizeof what, "program attribute '%s'", pp->attributes[i]->key);
        MilConst *c = rvalue(&r, pp->attributes[i]->value, what, false, 0);
        if (c) mil_program_set_attr(r.p, mil_strdup(r.p, pp->attributes[i]->key), c);
    }
    if (!pp->n_functions) mil_error(d, ((MilLoc){r.file, 0, 0}), "the ML Program has no functions");
    for (size_t i = 0; i < pp->n_functions && r.nerr < 20; i++) {
        if (!pp->functions[i]->value) {
            r.func = pp->functions[i]->key;
            rerr(&r, "no function body");
            continue;
        }
        rfunc(&r, pp->functions[i]->key, pp->functions[i]->value);
    }
    r.func = NULL;
    const Cml__ModelDescription *md = m->description;
    if (md && !r.nerr) {
        for (size_t i = 0; i < md->n_functions; i++) {
            MilFunc *f = mil_program_find_func(r.p, md->functions[i]->name);
            if (!f) {
                mil_error(d, ((MilLoc){r.file, 0, 0}), "model description: function '%s' is not in the program",
                          md->functions[i]->name);
                r.nerr++;
                continue;
            }
            rdescription(&r, f, md->functions[i]->input, md->functions[i]->n_input, md->functions[i]->output,
                         md->functions[i]->n_output);
        }
        if (!md->n_functions && (md->n_input || md->n_output)) {
            MilFunc *f = mil_program_find_func(r.p, md->defaultfunctionname && *md->defaultfunctionname
                                                        ? md->defaultfunctionname : "main");
            if (!f && r.p->nfuncs == 1) f = r.p->funcs[0];
            if (!f) {
                mil_error(d, ((MilLoc){r.file, 0, 0}), "model description: no function 'main' to describe");
                r.nerr++;
            } else {
                rdescription(&r, f, md->input, md->n_input, md->output, md->n_output);
            }
        }
    }
    if (r.nerr || d->nerrors > errors0) goto fail;
    free(r.syms);
    mil_rt_blob_cache_free(r.cache);
    cml__model__free_unpacked(m, NULL);
    return r.p;
fail:
    free(r.syms);
    mil_rt_blob_cache_free(r.cache);
    cml__model__free_unpacked(m, NULL);
    mil_program_free(r.p);
    return NULL;
}

MilProgram *mil_coreml_read(const char *pkg, const MilCoreMLReadOptions *opt, MilDiag *d) {
    char model[4200];
    if (cml_manifest_root(pkg, model, sizeof model, d)) return NULL;
    char *buf;
    size_t len;
    if (cml_read_all(model, &buf, &len, model, d)) return NULL;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", model);
    *strrchr(dir, '/') = 0;
    MilProgram *p = mil_coreml_read_model(model, buf, len, dir, opt, d);
    free(buf);
    return p;
}
