/* coreml/write.c -- MilProgram -> model.mlmodel and a whole .mlpackage.
 *
 * The encoder builds protobuf-c messages (every allocation is recorded in
 * Enc and freed at the end) and packs them.  Values follow coremltools'
 * choice of TensorValue fields, so coremltools reads them back as it wrote
 * them: bool `bools`; int64/uint64 `longInts`; int16/uint16/int32 `ints`;
 * fp32 `floats`; fp64 `doubles`; string `strings`; fp16, int4, int8, the
 * uint1..uint8 types and uint32 `bytes` (little-endian, sub-byte packed
 * LSB first like weight.bin); bf16 and fp8 (which coremltools cannot
 * serialise) `bytes` too.
 *
 * The model description is derived from each function's signature: tensor
 * inputs become multiArray features (fp32/fp16/fp64/int32/int8), state
 * inputs state features, and the FlexibleShapeInformation attribute (in
 * milc's form or coremlc's dict-of-ids form for EnumeratedShapes) becomes
 * shapeRange / enumeratedShapes.  Other function attributes are dropped
 * with a warning: coremltools refuses attributes on functions.
 * An unknown dim without such information gets the range [1, unbounded).
 * The package writer first expands milc's extension ops (rms_norm, ...) into
 * standard MIL, as --emit=ane-mil does. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "backend/backend.h"
#include "coreml/coreml_int.h"

typedef struct Enc {
    void **allocs;
    size_t n, cap;
    bool failed;
    MilDiag *d;
    const char *func;
} Enc;

static void *A(Enc *e, size_t size) {
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 256;
        void **na = realloc(e->allocs, ncap * sizeof *na);
        if (!na) {
            e->failed = true;
            return NULL;
        }
        e->allocs = na;
        e->cap = ncap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        e->failed = true;
        return NULL;
    }
    e->allocs[e->n++] = p;
    return p;
}

#define NEW(e, T, init) ((T *)new_msg((e), sizeof(T), &(T)init))
static void *new_msg(Enc *e, size_t size, const void *init) {
    void *p = A(e, size);
    if (p) memcpy(p, init, size);
    return p;
}

static void eerr(Enc *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void eerr(Enc *e, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->func) mil_error(e->d, (MilLoc){0}, "function '%s': %s", e->func, msg);
    else mil_error(e->d, (MilLoc){0}, "%s", msg);
    e->failed = true;
}

static char *S(Enc *e, const char *s) {
    char *c = A(e, strlen(s) + 1);
    if (c) strcpy(c, s);
    return c ? c : (char *)"";
}

/* ---------------------------------------------------------------- types */

static Cml__Dimension *dim(Enc *e, int64_t n) {
    Cml__Dimension *d = NEW(e, Cml__Dimension, CML__DIMENSION__INIT);
    if (!d) return NULL;
    if (n < 0) {
        d->dimension_case = CML__DIMENSION__DIMENSION_UNKNOWN;
        d->unknown = NEW(e, Cml__Dimension__UnknownDimension, CML__DIMENSION__UNKNOWN_DIMENSION__INIT);
    } else {
        d->dimension_case = CML__DIMENSION__DIMENSION_CONSTANT;
        d->constant = NEW(e, Cml__Dimension__ConstantDimension, CML__DIMENSION__CONSTANT_DIMENSION__INIT);
        if (d->constant) d->constant->size = (uint64_t)n;
    }
    return d;
}

static Cml__ValueType *etype(Enc *e, const MilType *t) {
    Cml__ValueType *vt = NEW(e, Cml__ValueType, CML__VALUE_TYPE__INIT);
    if (!vt || !t) return vt;
    switch (t->kind) {
    case MIL_TY_TENSOR: {
        Cml__TensorType *tt = NEW(e, Cml__TensorType, CML__TENSOR_TYPE__INIT);
        if (!tt) return vt;
        tt->datatype = (Cml__DataType)mil_dtype_proto_code(t->dtype);
        tt->rank = t->rank;
        tt->n_dimensions = (size_t)t->rank;
        tt->dimensions = A(e, sizeof *tt->dimensions * (size_t)(t->rank + 1));
        for (int i = 0; tt->dimensions && i < t->rank; i++) tt->dimensions[i] = dim(e, t->dims[i]);
        vt->type_case = CML__VALUE_TYPE__TYPE_TENSOR_TYPE;
        vt->tensortype = tt;
        break;
    }
    case MIL_TY_LIST: {
        Cml__ListType *lt = NEW(e, Cml__ListType, CML__LIST_TYPE__INIT);
        if (!lt) return vt;
        lt->type = etype(e, t->elem);
        lt->length = dim(e, t->len);
        vt->type_case = CML__VALUE_TYPE__TYPE_LIST_TYPE;
        vt->listtype = lt;
        break;
    }
    case MIL_TY_TUPLE: {
        Cml__TupleType *tt = NEW(e, Cml__TupleType, CML__TUPLE_TYPE__INIT);
        if (!tt) return vt;
        tt->n_types = (size_t)t->ntypes;
        tt->types = A(e, sizeof *tt->types * (size_t)(t->ntypes + 1));
        for (int i = 0; tt->types && i < t->ntypes; i++) tt->types[i] = etype(e, t->types[i]);
        vt->type_case = CML__VALUE_TYPE__TYPE_TUPLE_TYPE;
        vt->tupletype = tt;
        break;
    }
    case MIL_TY_DICT: {
        Cml__DictionaryType *dt = NEW(e, Cml__DictionaryType, CML__DICTIONARY_TYPE__INIT);
        if (!dt) return vt;
        dt->keytype = etype(e, t->elem);
        dt->valuetype = etype(e, t->val);
        vt->type_case = CML__VALUE_TYPE__TYPE_DICTIONARY_TYPE;
        vt->dictionarytype = dt;
        break;
    }
    case MIL_TY_STATE: {
        Cml__StateType *st = NEW(e, Cml__StateType, CML__STATE_TYPE__INIT);
        if (!st) return vt;
        st->wrappedtype = etype(e, t->elem);
        vt->type_case = CML__VALUE_TYPE__TYPE_STATE_TYPE;
        vt->statetype = st;
        break;
    }
    }
    return vt;
}

/* --------------------------------------------------------------- values */

static Cml__TensorValue *etensor(Enc *e, const MilConst *c) {
    Cml__TensorValue *tv = NEW(e, Cml__TensorValue, CML__TENSOR_VALUE__INIT);
    if (!tv) return NULL;
    MilDType dt = c->type->dtype;
    size_t n = (size_t)c->count;
    switch (dt) {
    case MIL_DT_BOOL: {
        Cml__TensorValue__RepeatedBools *r = NEW(e, Cml__TensorValue__RepeatedBools, CML__TENSOR_VALUE__REPEATED_BOOLS__INIT);
        if (!r || !(r->values = A(e, sizeof *r->values * (n + 1)))) return tv;
        for (size_t i = 0; i < n; i++) r->values[i] = ((const uint8_t *)c->data)[i] != 0;
        r->n_values = n;
        tv->value_case = CML__TENSOR_VALUE__VALUE_BOOLS;
        tv->bools = r;
        return tv;
    }
    case MIL_DT_STRING: {
        Cml__TensorValue__RepeatedStrings *r = NEW(e, Cml__TensorValue__RepeatedStrings, CML__TENSOR_VALUE__REPEATED_STRINGS__INIT);
        if (!r || !(r->values = A(e, sizeof *r->values * (n + 1)))) return tv;
        for (size_t i = 0; i < n; i++) r->values[i] = (char *)((const char *const *)c->data)[i];
        r->n_values = n;
        tv->value_case = CML__TENSOR_VALUE__VALUE_STRINGS;
        tv->strings = r;
        return tv;
    }
    case MIL_DT_FP32: {
        Cml__TensorValue__RepeatedFloats *r = NEW(e, Cml__TensorValue__RepeatedFloats, CML__TENSOR_VALUE__REPEATED_FLOATS__INIT);
        if (!r || !(r->values = A(e, sizeof *r->values * (n + 1)))) return tv;
        memcpy(r->values, c->data, n * sizeof(float));
        r->n_values = n;
        tv->value_case = CML__TENSOR_VALUE__VALUE_FLOATS;
        tv->floats = r;
        return tv;
    }
    case MIL_DT_FP64: {
        Cml__TensorValue__RepeatedDoubles *r = NEW(e, Cml__TensorValue__RepeatedDoubles, CML__TENSOR_VALUE__REPEATED_DOUBLES__INIT);
        if (!r || !(r->values = A(e, sizeof *r->values * (n + 1)))) return tv;
        memcpy(r->values, c->data, n * sizeof(double));
        r->n_values = n;
        tv->value_case = CML__TENSOR_VALUE__VALUE_DOUBLES;
        tv->doubles = r;
        return tv;
    }
    case MIL_DT_INT64: case MIL_DT_UINT64: {
        Cml__TensorValue__RepeatedLongInts *r = NEW(e, Cml__TensorValue__RepeatedLongInts, CML__TENSOR_VALUE__REPEATED_LONG_INTS__INIT);
        if (!r || !(r->values = A(e, sizeof *r->values * (n + 1)))) return tv;
        memcpy(r->values, c->data, n * sizeof(int64_t));
        r->n_values = n;
        tv->value_case = CML__TENSOR_VALUE__VALUE_LONG_INTS;
        tv->longints = r;
        return tv;
    }
    case MIL_DT_INT16: case MIL_DT_UINT16: case MIL_DT_INT32: {
        Cml__TensorValue__RepeatedInts *r = NEW(e, Cml__TensorValue__RepeatedInts, CML__TENSOR_VALUE__REPEATED_INTS__INIT);
        if (!r || !(r->values = A(e, sizeof *r->values * (n + 1)))) return tv;
        for (size_t i = 0; i < n; i++) r->values[i] = (int32_t)mil_const_get_i64(c, (int64_t)i);
        r->n_values = n;
        tv->value_case = CML__TENSOR_VALUE__VALUE_INTS;
        tv->ints = r;
        return tv;
    }
    default: {
        Cml__TensorValue__RepeatedBytes *r = NEW(e, Cml__TensorValue__RepeatedBytes, CML__TENSOR_VALUE__REPEATED_BYTES__INIT);
        uint64_t len = mil_rt_blob_payload_size(dt, c->count);
        if (!r || !(r->values.data = A(e, (size_t)len + 1))) return tv;
        mil_rt_blob_pack(dt, c->data, c->count, r->values.data);
        r->values.len = (size_t)len;
        tv->value_case = CML__TENSOR_VALUE__VALUE_BYTES;
        tv->bytes = r;
        return tv;
    }
    }
}

static Cml__Value *evalue(Enc *e, const MilConst *c) {
    Cml__Value *v = NEW(e, Cml__Value, CML__VALUE__INIT);
    if (!v || !c) return v;
    v->type = etype(e, c->type);
    if (c->kind == MIL_CONST_BLOB) {
        Cml__Value__BlobFileValue *b = NEW(e, Cml__Value__BlobFileValue, CML__VALUE__BLOB_FILE_VALUE__INIT);
        if (!b) return v;
        b->filename = S(e, c->blob_path);
        b->offset = c->blob_offset;
        v->value_case = CML__VALUE__VALUE_BLOB_FILE_VALUE;
        v->blobfilevalue = b;
        return v;
    }
    Cml__Value__ImmediateValue *iv = NEW(e, Cml__Value__ImmediateValue, CML__VALUE__IMMEDIATE_VALUE__INIT);
    if (!iv) return v;
    v->value_case = CML__VALUE__VALUE_IMMEDIATE_VALUE;
    v->immediatevalue = iv;
    size_t n = (size_t)c->nitems;
    switch (c->kind) {
    case MIL_CONST_TENSOR:
        iv->value_case = CML__VALUE__IMMEDIATE_VALUE__VALUE_TENSOR;
        iv->tensor = etensor(e, c);
        break;
    case MIL_CONST_TUPLE: case MIL_CONST_LIST: {
        Cml__Value **vals = A(e, sizeof *vals * (n + 1));
        for (size_t i = 0; vals && i < n; i++) vals[i] = evalue(e, c->items[i]);
        if (c->kind == MIL_CONST_TUPLE) {
            Cml__TupleValue *t = NEW(e, Cml__TupleValue, CML__TUPLE_VALUE__INIT);
            if (!t) break;
            t->n_values = n;
            t->values = vals;
            iv->value_case = CML__VALUE__IMMEDIATE_VALUE__VALUE_TUPLE;
            iv->tuple = t;
        } else {
            Cml__ListValue *l = NEW(e, Cml__ListValue, CML__LIST_VALUE__INIT);
            if (!l) break;
            l->n_values = n;
            l->values = vals;
            iv->value_case = CML__VALUE__IMMEDIATE_VALUE__VALUE_LIST;
            iv->list = l;
        }
        break;
    }
    case MIL_CONST_DICT: {
        Cml__DictionaryValue *dv = NEW(e, Cml__DictionaryValue, CML__DICTIONARY_VALUE__INIT);
        if (!dv || !(dv->values = A(e, sizeof *dv->values * (n / 2 + 1)))) break;
        for (size_t i = 0; i + 1 < n; i += 2) {
            Cml__DictionaryValue__KeyValuePair *kv =
                NEW(e, Cml__DictionaryValue__KeyValuePair, CML__DICTIONARY_VALUE__KEY_VALUE_PAIR__INIT);
            if (!kv) break;
            kv->key = evalue(e, c->items[i]);
            kv->value = evalue(e, c->items[i + 1]);
            dv->values[dv->n_values++] = kv;
        }
        iv->value_case = CML__VALUE__IMMEDIATE_VALUE__VALUE_DICTIONARY;
        iv->dictionary = dv;
        break;
    }
    default:
        eerr(e, "a value without data (T()) cannot be written to a Core ML model");
        break;
    }
    return v;
}

static Cml__ValueEntry **eattrs(Enc *e, const MilAttr *attrs, int n, size_t *count, const char *skip) {
    Cml__ValueEntry **v = A(e, sizeof *v * (size_t)(n + 1));
    *count = 0;
    for (int i = 0; v && i < n; i++) {
        if (skip && !strcmp(attrs[i].name, skip)) continue;
        Cml__ValueEntry *en = NEW(e, Cml__ValueEntry, CML__VALUE_ENTRY__INIT);
        if (!en) break;
        en->key = S(e, attrs[i].name);
        en->value = evalue(e, attrs[i].val);
        v[(*count)++] = en;
    }
    return v;
}

static Cml__NamedValueType *enamed(Enc *e, const MilValue *v) {
    Cml__NamedValueType *nt = NEW(e, Cml__NamedValueType, CML__NAMED_VALUE_TYPE__INIT);
    if (!nt) return NULL;
    nt->name = S(e, v->name);
    nt->type = etype(e, v->type);
    return nt;
}

/* ------------------------------------------------------------------ ops */

static Cml__Operation *eop(Enc *e, const MilOp *op) {
    Cml__Operation *o = NEW(e, Cml__Operation, CML__OPERATION__INIT);
    if (!o) return NULL;
    o->type = S(e, op->opname);
    o->inputs = A(e, sizeof *o->inputs * (size_t)(op->nargs + 1));
    for (int i = 0; o->inputs && i < op->nargs; i++) {
        const MilArg *a = &op->args[i];
        Cml__ArgumentEntry *en = NEW(e, Cml__ArgumentEntry, CML__ARGUMENT_ENTRY__INIT);
        Cml__Argument *arg = NEW(e, Cml__Argument, CML__ARGUMENT__INIT);
        if (!en || !arg || !(arg->arguments = A(e, sizeof *arg->arguments * (size_t)(a->n + 1)))) break;
        for (int j = 0; j < a->n; j++) {
            Cml__Argument__Binding *b = NEW(e, Cml__Argument__Binding, CML__ARGUMENT__BINDING__INIT);
            if (!b) break;
            if (a->items[j].value) {
                b->binding_case = CML__ARGUMENT__BINDING__BINDING_NAME;
                b->name = S(e, a->items[j].value->name);
            } else {
                b->binding_case = CML__ARGUMENT__BINDING__BINDING_VALUE;
                b->value = evalue(e, a->items[j].cst);
            }
            arg->arguments[arg->n_arguments++] = b;
        }
        en->key = S(e, a->name);
        en->value = arg;
        o->inputs[o->n_inputs++] = en;
    }
    o->outputs = A(e, sizeof *o->outputs * (size_t)(op->nresults + 1));
    for (int i = 0; o->outputs && i < op->nresults; i++) o->outputs[o->n_outputs++] = enamed(e, op->results[i]);
    o->attributes = eattrs(e, op->attrs, op->nattrs, &o->n_attributes, NULL);
    return o;
}

/* ------------------------------------------------------ the description */

static Cml__ArrayFeatureType__ArrayDataType array_dtype(MilDType dt) {
    switch (dt) {
    case MIL_DT_FP32: return CML__ARRAY_FEATURE_TYPE__ARRAY_DATA_TYPE__FLOAT32;
    case MIL_DT_FP16: return CML__ARRAY_FEATURE_TYPE__ARRAY_DATA_TYPE__FLOAT16;
    case MIL_DT_FP64: return CML__ARRAY_FEATURE_TYPE__ARRAY_DATA_TYPE__DOUBLE;
    case MIL_DT_INT32: return CML__ARRAY_FEATURE_TYPE__ARRAY_DATA_TYPE__INT32;
    case MIL_DT_INT8: return CML__ARRAY_FEATURE_TYPE__ARRAY_DATA_TYPE__INT8;
    default: return CML__ARRAY_FEATURE_TYPE__ARRAY_DATA_TYPE__INVALID_ARRAY_DATA_TYPE;
    }
}

static int64_t *shape_of(Enc *e, const MilConst *c, int rank) {
    if (!c || c->kind != MIL_CONST_TENSOR || c->count != rank) return NULL;
    int64_t *s = A(e, sizeof *s * (size_t)(rank + 1));
    for (int i = 0; s && i < rank; i++) s[i] = mil_const_get_i64(c, i);
    return s;
}

/* EnumeratedShapes of input `name`: milc's form (name -> list of shapes) or
 * coremlc's (id -> dict name -> shape).  Appends the shapes to *es. */
static void enum_shapes(Enc *e, const MilFunc *f, const char *name, int rank, Cml__ArrayFeatureType__EnumeratedShapes *es) {
    const MilConst *l = mil_flex_entry(f, "EnumeratedShapes", name);
    const MilConst *fsi = NULL;
    for (int i = 0; i < f->nattrs; i++)
        if (!strcmp(f->attrs[i].name, "FlexibleShapeInformation")) fsi = f->attrs[i].val;
    const MilConst *shapes[4096];
    int n = 0;
    if (l && (l->kind == MIL_CONST_LIST || l->kind == MIL_CONST_TUPLE)) {
        for (int i = 0; i < l->nitems && n < 4096; i++) shapes[n++] = l->items[i];
    } else if (l && l->kind == MIL_CONST_DICT) {
        for (int i = 1; i < l->nitems && n < 4096; i += 2) shapes[n++] = l->items[i];
    } else if (fsi && fsi->kind == MIL_CONST_TUPLE) {
        for (int i = 0; i < fsi->nitems; i++) {
            const MilConst *pair = fsi->items[i];
            const char *k = pair->kind == MIL_CONST_TUPLE && pair->nitems == 2 ? mil_const_get_str(pair->items[0]) : NULL;
            if (!k || strcmp(k, "EnumeratedShapes") || pair->items[1]->kind != MIL_CONST_DICT) continue;
            const MilConst *dict = pair->items[1];
            for (int j = 1; j < dict->nitems; j += 2) {
                const MilConst *inner = dict->items[j];
                if (inner->kind != MIL_CONST_DICT) continue;
                for (int k2 = 0; k2 + 1 < inner->nitems && n < 4096; k2 += 2) {
                    const char *nm = mil_const_get_str(inner->items[k2]);
                    if (nm && !strcmp(nm, name)) shapes[n++] = inner->items[k2 + 1];
                }
            }
        }
    }
    if (!n) return;
    es->shapes = A(e, sizeof *es->shapes * (size_t)(n + 1));
    for (int i = 0; es->shapes && i < n; i++) {
        int64_t *s = shape_of(e, shapes[i], rank);
        if (!s) {
            eerr(e, "input '%s': enumerated shape %d is not a shape of rank %d", name, i, rank);
            return;
        }
        Cml__ArrayFeatureType__Shape *sh = NEW(e, Cml__ArrayFeatureType__Shape, CML__ARRAY_FEATURE_TYPE__SHAPE__INIT);
        if (!sh) return;
        sh->shape = s;
        sh->n_shape = (size_t)rank;
        es->shapes[es->n_shapes++] = sh;
    }
}

static Cml__FeatureDescription *efeature_in(Enc *e, const MilFunc *f, const MilValue *v) {
    Cml__FeatureDescription *fd = NEW(e, Cml__FeatureDescription, CML__FEATURE_DESCRIPTION__INIT);
    Cml__FeatureType *ft = NEW(e, Cml__FeatureType, CML__FEATURE_TYPE__INIT);
    Cml__ArrayFeatureType *a = NEW(e, Cml__ArrayFeatureType, CML__ARRAY_FEATURE_TYPE__INIT);
    if (!fd || !ft || !a) return fd;
    fd->name = S(e, v->name);
    fd->type = ft;
    const MilType *t = v->type->kind == MIL_TY_STATE ? v->type->elem : v->type;
    if (t->kind != MIL_TY_TENSOR || !(a->datatype = array_dtype(t->dtype))) {
        char tb[256];
        mil_type_format(v->type, MIL_SPELLING_1_3, tb, sizeof tb);
        eerr(e, "input '%s' of type %s cannot be described in a Core ML model (tensors of fp32, fp16, fp64, int32 or "
                "int8, or states of them)", v->name, tb);
        return fd;
    }
    int rank = t->rank;
    a->n_shape = (size_t)rank;
    a->shape = A(e, sizeof *a->shape * (size_t)(rank + 1));
    if (!a->shape) return fd;
    int64_t def[MIL_MAX_RANK];
    bool has_def = mil_flex_default_shape(f, v->name, rank, def);
    for (int i = 0; i < rank; i++) a->shape[i] = t->dims[i] >= 0 ? t->dims[i] : has_def ? def[i] : 1;
    if (v->type->kind == MIL_TY_STATE) {
        Cml__StateFeatureType *st = NEW(e, Cml__StateFeatureType, CML__STATE_FEATURE_TYPE__INIT);
        if (!st) return fd;
        st->type_case = CML__STATE_FEATURE_TYPE__TYPE_ARRAY_TYPE;
        st->arraytype = a;
        ft->type_case = CML__FEATURE_TYPE__TYPE_STATE_TYPE;
        ft->statetype = st;
        return fd;
    }
    ft->type_case = CML__FEATURE_TYPE__TYPE_MULTI_ARRAY_TYPE;
    ft->multiarraytype = a;
    Cml__ArrayFeatureType__EnumeratedShapes *es =
        NEW(e, Cml__ArrayFeatureType__EnumeratedShapes, CML__ARRAY_FEATURE_TYPE__ENUMERATED_SHAPES__INIT);
    if (!es) return fd;
    enum_shapes(e, f, v->name, rank, es);
    if (es->n_shapes) {
        a->shape_flexibility_case = CML__ARRAY_FEATURE_TYPE__SHAPE_FLEXIBILITY_ENUMERATED_SHAPES;
        a->enumeratedshapes = es;
        return fd;
    }
    const MilConst *rd = mil_flex_entry(f, "RangeDims", v->name);
    if (!rd && !mil_type_has_unknown(t)) return fd;
    Cml__ArrayFeatureType__ShapeRange *sr = NEW(e, Cml__ArrayFeatureType__ShapeRange, CML__ARRAY_FEATURE_TYPE__SHAPE_RANGE__INIT);
    if (!sr || !(sr->sizeranges = A(e, sizeof *sr->sizeranges * (size_t)(rank + 1)))) return fd;
    if (rd && !((rd->kind == MIL_CONST_LIST || rd->kind == MIL_CONST_TUPLE) && rd->nitems == rank)) {
        eerr(e, "input '%s': RangeDims is not a list of %d [lo, hi] pairs", v->name, rank);
        return fd;
    }
    for (int i = 0; i < rank; i++) {
        Cml__SizeRange *s = NEW(e, Cml__SizeRange, CML__SIZE_RANGE__INIT);
        if (!s) return fd;
        if (rd) {
            const MilConst *pr = rd->items[i];
            if (pr->kind != MIL_CONST_TENSOR || pr->count != 2 || mil_const_get_i64(pr, 0) < 0) {
                eerr(e, "input '%s': RangeDims entry %d is not a [lo, hi] pair", v->name, i);
                return fd;
            }
            s->lowerbound = (uint64_t)mil_const_get_i64(pr, 0);
            s->upperbound = mil_const_get_i64(pr, 1);
        } else if (t->dims[i] >= 0) {
            s->lowerbound = (uint64_t)t->dims[i];
            s->upperbound = t->dims[i];
        } else {
            s->lowerbound = 1;
            s->upperbound = -1;
        }
        sr->sizeranges[sr->n_sizeranges++] = s;
    }
    a->shape_flexibility_case = CML__ARRAY_FEATURE_TYPE__SHAPE_FLEXIBILITY_SHAPE_RANGE;
    a->shaperange = sr;
    return fd;
}

static Cml__FeatureDescription *efeature_out(Enc *e, const MilValue *v) {
    Cml__FeatureDescription *fd = NEW(e, Cml__FeatureDescription, CML__FEATURE_DESCRIPTION__INIT);
    Cml__FeatureType *ft = NEW(e, Cml__FeatureType, CML__FEATURE_TYPE__INIT);
    Cml__ArrayFeatureType *a = NEW(e, Cml__ArrayFeatureType, CML__ARRAY_FEATURE_TYPE__INIT);
    if (!fd || !ft || !a) return fd;
    fd->name = S(e, v->name);
    fd->type = ft;
    ft->type_case = CML__FEATURE_TYPE__TYPE_MULTI_ARRAY_TYPE;
    ft->multiarraytype = a;
    if (v->type->kind != MIL_TY_TENSOR || !(a->datatype = array_dtype(v->type->dtype))) {
        char tb[256];
        mil_type_format(v->type, MIL_SPELLING_1_3, tb, sizeof tb);
        eerr(e, "output '%s' of type %s cannot be described in a Core ML model (tensors of fp32, fp16, fp64, int32 "
                "or int8)", v->name, tb);
    }
    return fd;
}

static void edescribe(Enc *e, const MilFunc *f, Cml__FeatureDescription ***in, size_t *nin,
                      Cml__FeatureDescription ***st, size_t *nst, Cml__FeatureDescription ***out, size_t *nout) {
    *in = A(e, sizeof **in * (size_t)(f->nparams + 1));
    *st = A(e, sizeof **st * (size_t)(f->nparams + 1));
    *out = A(e, sizeof **out * (size_t)(f->body.nouts + 1));
    if (!*in || !*st || !*out) return;
    for (int i = 0; i < f->nparams; i++) {
        Cml__FeatureDescription *fd = efeature_in(e, f, f->params[i]);
        if (f->params[i]->type->kind == MIL_TY_STATE) (*st)[(*nst)++] = fd;
        else (*in)[(*nin)++] = fd;
    }
    for (int i = 0; i < f->body.nouts; i++) (*out)[(*nout)++] = efeature_out(e, f->body.outs[i]);
}

/* ---------------------------------------------------------------- model */

static int spec_of_tag(const char *tag) {
    static const struct { const char *tag; int spec; } t[] = {
        {"ios15", 6}, {"ios16", 7}, {"ios17", 8}, {"ios18", 9}, {"ios26", 10},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(t[i].tag, tag)) return t[i].spec;
    return 0;
}

int mil_coreml_encode(const MilProgram *p, const MilCoreMLWriteOptions *opt, uint8_t **out, size_t *len,
                      MilDiag *d) {
    MilCoreMLWriteOptions none = {0};
    if (!opt) opt = &none;
    Enc e = {.d = d};
    *out = NULL;
    *len = 0;
    Cml__Model m = CML__MODEL__INIT;
    Cml__Program *pp = NEW(&e, Cml__Program, CML__PROGRAM__INIT);
    Cml__ModelDescription *md = NEW(&e, Cml__ModelDescription, CML__MODEL_DESCRIPTION__INIT);
    if (!pp || !md) goto done;
    int spec = (p->version && strcmp(p->version, "1.3") >= 0 && strlen(p->version) >= 3) ? 9 : 6;
    if (p->nfuncs > 1 && spec < 9) spec = 9; /* multi-function models: iOS18 */
    if (!p->nfuncs) eerr(&e, "the program has no functions");
    pp->version = 1;
    pp->attributes = eattrs(&e, p->attrs, p->nattrs, &pp->n_attributes, NULL);
    pp->functions = A(&e, sizeof *pp->functions * (size_t)(p->nfuncs + 1));
    md->functions = A(&e, sizeof *md->functions * (size_t)(p->nfuncs + 1));
    if (!pp->functions || !md->functions) goto done;
    const MilFunc *deff = mil_program_find_func(p, "main");
    if (!deff && p->nfuncs) deff = p->funcs[0];
    for (int fi = 0; fi < p->nfuncs && !e.failed; fi++) {
        const MilFunc *f = p->funcs[fi];
        e.func = f->name;
        const char *opset = f->opset ? cml_tag_to_opset(f->opset) : NULL;
        if (!opset) {
            eerr(&e, "opset '%s' has no Core ML name (expected ios15 .. ios18 or ios26)", f->opset ? f->opset : "");
            break;
        }
        if (spec_of_tag(f->opset) > spec) spec = spec_of_tag(f->opset);
        Cml__Function *pf = NEW(&e, Cml__Function, CML__FUNCTION__INIT);
        Cml__Block *b = NEW(&e, Cml__Block, CML__BLOCK__INIT);
        Cml__FunctionEntry *fe = NEW(&e, Cml__FunctionEntry, CML__FUNCTION_ENTRY__INIT);
        Cml__BlockEntry *be = NEW(&e, Cml__BlockEntry, CML__BLOCK_ENTRY__INIT);
        if (!pf || !b || !fe || !be) break;
        pf->opset = S(&e, opset);
        pf->inputs = A(&e, sizeof *pf->inputs * (size_t)(f->nparams + 1));
        for (int i = 0; pf->inputs && i < f->nparams; i++) pf->inputs[pf->n_inputs++] = enamed(&e, f->params[i]);
        /* coremltools refuses function attributes ("Attributes on functions not
           supported"): FlexibleShapeInformation goes into the description, the
           rest is dropped with a warning */
        for (int i = 0; i < f->nattrs; i++)
            if (strcmp(f->attrs[i].name, "FlexibleShapeInformation"))
                mil_warning(d, (MilLoc){0}, "function '%s': attribute '%s' is not written (Core ML models have no "
                            "function attributes)", f->name, f->attrs[i].name);
        int nops = 0;
        for (const MilOp *op = f->body.first; op; op = op->next) nops++;
        b->operations = A(&e, sizeof *b->operations * (size_t)(nops + 1));
        for (const MilOp *op = f->body.first; b->operations && op; op = op->next)
            b->operations[b->n_operations++] = eop(&e, op);
        b->outputs = A(&e, sizeof *b->outputs * (size_t)(f->body.nouts + 1));
        for (int i = 0; b->outputs && i < f->body.nouts; i++) b->outputs[b->n_outputs++] = S(&e, f->body.outs[i]->name);
        be->key = pf->opset;
        be->value = b;
        pf->block_specializations = A(&e, sizeof *pf->block_specializations);
        if (!pf->block_specializations) break;
        pf->block_specializations[0] = be;
        pf->n_block_specializations = 1;
        fe->key = S(&e, f->name);
        fe->value = pf;
        pp->functions[pp->n_functions++] = fe;
        if (p->nfuncs > 1) {
            Cml__FunctionDescription *fd = NEW(&e, Cml__FunctionDescription, CML__FUNCTION_DESCRIPTION__INIT);
            if (!fd) break;
            fd->name = fe->key;
            edescribe(&e, f, &fd->input, &fd->n_input, &fd->state, &fd->n_state, &fd->output, &fd->n_output);
            md->functions[md->n_functions++] = fd;
        }
        if (f == deff)
            edescribe(&e, f, &md->input, &md->n_input, &md->state, &md->n_state, &md->output, &md->n_output);
    }
    e.func = NULL;
    if (p->nfuncs > 1 && deff) md->defaultfunctionname = S(&e, deff->name);
    if (opt->spec_version > spec) spec = opt->spec_version;
    if (opt->author || opt->short_description) {
        Cml__Metadata *meta = NEW(&e, Cml__Metadata, CML__METADATA__INIT);
        if (meta) {
            meta->author = S(&e, opt->author ? opt->author : "");
            meta->shortdescription = S(&e, opt->short_description ? opt->short_description : "");
            md->metadata = meta;
        }
    }
    m.specificationversion = spec;
    m.description = md;
    m.type_case = CML__MODEL__TYPE_ML_PROGRAM;
    m.mlprogram = pp;
    if (e.failed) goto done;
    *len = cml__model__get_packed_size(&m);
    *out = malloc(*len ? *len : 1);
    if (!*out) eerr(&e, "out of memory");
    else cml__model__pack(&m, *out);
done:
    if (e.failed && !d->nerrors) mil_error(d, (MilLoc){0}, "out of memory");
    for (size_t i = 0; i < e.n; i++) free(e.allocs[i]);
    free(e.allocs);
    if (e.failed) {
        free(*out);
        *out = NULL;
        *len = 0;
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------------- package */

static bool pathf(MilDiag *d, char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool pathf(MilDiag *d, char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        mil_error(d, (MilLoc){0}, "output path too long");
        return false;
    }
    return true;
}

static int write_file(const char *path, const void *data, size_t len, MilDiag *d) {
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f)) ok = false;
    if (!ok) mil_error(d, (MilLoc){0}, "cannot write '%s': %s", path, strerror(errno));
    return ok ? 0 : -1;
}

/* 0 when final may be written: absent, or an earlier package (a real
 * directory with Manifest.json). */
static int check_target(const char *final, bool *had_old, MilDiag *d) {
    struct stat st;
    char m[4300];
    *had_old = false;
    if (lstat(final, &st)) {
        if (errno == ENOENT) return 0;
        mil_error(d, (MilLoc){0}, "cannot write '%s': %s", final, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': it exists and is not a directory", final);
        return -1;
    }
    snprintf(m, sizeof m, "%s/Manifest.json", final);
    if (lstat(m, &st) || !S_ISREG(st.st_mode)) {
        mil_error(d, (MilLoc){0}, "cannot write '%s': it exists and is not a Core ML package (remove it first)", final);
        return -1;
    }
    *had_old = true;
    return 0;
}

static int fill_package(MilProgram *p, const char *stage, const MilCoreMLWriteOptions *o, MilDiag *d) {
    char path[4300];
    if (!pathf(d, path, sizeof path, "%s/Data", stage) || mkdir(path, 0777)) {
        mil_error(d, (MilLoc){0}, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    if (mil_ane_expand_ext(p, d)) return -1; /* milc's extension ops mean nothing to Core ML */
    if (!pathf(d, path, sizeof path, "%s/Data/com.apple.CoreML", stage)) return -1;
    MilBundleOptions bo = {.model_dir = o->model_dir, .weights_dir = o->weights_dir, .weights_only = true};
    if (mil_bundle_write(p, path, &bo, d)) return -1;
    uint8_t *buf;
    size_t len;
    if (mil_coreml_encode(p, o, &buf, &len, d)) return -1;
    int rc = -1;
    if (pathf(d, path, sizeof path, "%s/Data/com.apple.CoreML/model.mlmodel", stage) && !write_file(path, buf, len, d)) {
        XXH128_hash_t h = XXH3_128bits(buf, len);
        char *man = cml_manifest_text(h.high64, h.low64);
        if (!man) mil_error(d, (MilLoc){0}, "out of memory");
        else if (pathf(d, path, sizeof path, "%s/Manifest.json", stage)) rc = write_file(path, man, strlen(man), d);
        free(man);
    }
    free(buf);
    return rc;
}

int mil_coreml_write(MilProgram *p, const char *pkg, const MilCoreMLWriteOptions *opt, MilDiag *d) {
    MilCoreMLWriteOptions none = {0};
    if (!opt) opt = &none;
    size_t n = strlen(pkg);
    while (n > 1 && pkg[n - 1] == '/') n--;
    char stage[4200], old[4200], final[4200];
    if (!pathf(d, final, sizeof final, "%.*s", (int)n, pkg) ||
        !pathf(d, stage, sizeof stage, "%s.tmp.%ld", final, (long)getpid()) ||
        !pathf(d, old, sizeof old, "%s.old.%ld", final, (long)getpid()))
        return -1;
    bool had_old;
    if (check_target(final, &had_old, d)) return -1;
    mil_rm_tree(stage);
    if (mkdir(stage, 0777)) {
        mil_error(d, (MilLoc){0}, "cannot create '%s': %s", final, strerror(errno));
        return -1;
    }
    if (fill_package(p, stage, opt, d) || check_target(final, &had_old, d)) {
        mil_rm_tree(stage);
        return -1;
    }
    if (had_old && rename(final, old)) {
        mil_error(d, (MilLoc){0}, "cannot replace '%s': %s", final, strerror(errno));
        mil_rm_tree(stage);
        return -1;
    }
    if (rename(stage, final)) {
        mil_error(d, (MilLoc){0}, "cannot create '%s': %s", final, strerror(errno));
        if (had_old && rename(old, final)) { /* best effort to restore */ }
        mil_rm_tree(stage);
        return -1;
    }
    if (had_old) mil_rm_tree(old);
    return 0;
}
