/* passes/cleanup.c -- constant folding, identity elimination, reshape /
 * transpose merging (one rule table run by the shared driver), CSE and DCE.
 *
 * Folding evaluates in double precision and stores the result in the op's
 * result dtype.  Small results (<= FOLD_MAX elements) of any foldable op are
 * folded; reshapes, transposes, casts, expand_dims and squeezes of constants
 * are folded whatever their size (weights).  A reshape of a BLOBFILE
 * constant becomes the same blob re-typed (the bytes do not move); other
 * folds of blob constants need the weight file (MilPassOptions.weights_dir).
 *
 * CSE: two ops are the same when kind, arguments (same values or equal
 * literals) and attributes other than `name` are equal; const ops compare
 * their values.  Ops with side effects (state) and opaque ops are skipped.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes/pass_int.h"

#define FOLD_MAX 4096

/* ------------------------------------------------------------- folding */

typedef struct Arr {
    const MilType *t;
    int64_t n;
    double *v;
} Arr;

static bool load(const MilOp *op, const char *name, Arr *a) {
    const MilConst *c = mil_op_const_arg(op, name);
    if (!c || !c->type || c->type->kind != MIL_TY_TENSOR || c->type->dtype == MIL_DT_STRING) return false;
    int64_t n;
    a->t = c->type;
    if (c->kind == MIL_CONST_TENSOR) {
        n = mil_type_numel(c->type);
        if (n < 0) return false;
        a->n = n;
        a->v = malloc(sizeof(double) * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) a->v[i] = mil_const_get_f64(c, c->count == 1 ? 0 : i);
        return true;
    }
    float *f = const_to_f32(c, &n);
    if (!f) return false;
    a->n = n;
    a->v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) a->v[i] = f[i];
    free(f);
    return true;
}

static MilConst *const_from_f64(MilProgram *p, const MilType *t, const double *v) {
    int64_t n = mil_type_numel(t);
    if (t->dtype == MIL_DT_INT32 || t->dtype == MIL_DT_INT64 || t->dtype == MIL_DT_UINT32 ||
        t->dtype == MIL_DT_BOOL || t->dtype == MIL_DT_INT16 || t->dtype == MIL_DT_INT8 ||
        t->dtype == MIL_DT_UINT8 || t->dtype == MIL_DT_UINT16) {
        size_t es = mil_dtype_storage_size(t->dtype);
        unsigned char *buf = malloc(es * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) {
            int64_t x = t->dtype == MIL_DT_BOOL ? v[i] != 0 : (int64_t)v[i];
            memcpy(buf + (size_t)i * es, &x, es); /* little-endian truncation */
        }
        MilConst *c = mil_const_tensor(p, t, buf, n);
        free(buf);
        return c;
    }
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    MilConst *c = const_from_f32(p, t, f);
    free(f);
    return c;
}

/* Index into a broadcast operand of shape `in` for the flat output index. */
static int64_t bcast_index(const MilType *out, const MilType *in, int64_t flat) {
    int64_t idx = 0, stride = 1;
    for (int k = out->rank - 1; k >= 0; k--) {
        int64_t c = flat % out->dims[k];
        flat /= out->dims[k];
        int ki = k - (out->rank - in->rank);
        if (ki < 0) continue;
        if (in->dims[ki] != 1) idx += c * stride;
        stride *= in->dims[ki];
    }
    return idx;
}

static double eval_binary(MilOpKind k, double x, double y, bool isint) {
    switch (k) {
    case MIL_OP_ADD: return x + y;
    case MIL_OP_SUB: return x - y;
    case MIL_OP_MUL: return x * y;
    case MIL_OP_REAL_DIV: return isint ? (y ? trunc(x / y) : 0) : x / y;
    case MIL_OP_POW: return pow(x, y);
    case MIL_OP_MAXIMUM: return x > y ? x : y;
    case MIL_OP_MINIMUM: return x < y ? x : y;
    case MIL_OP_FLOOR_DIV: return floor(x / y);
    case MIL_OP_MOD: return x - floor(x / y) * y;
    case MIL_OP_EQUAL: return x == y;
    case MIL_OP_NOT_EQUAL: return x != y;
    case MIL_OP_GREATER: return x > y;
    case MIL_OP_GREATER_EQUAL: return x >= y;
    case MIL_OP_LESS: return x < y;
    case MIL_OP_LESS_EQUAL: return x <= y;
    case MIL_OP_LOGICAL_AND: return (x != 0) && (y != 0);
    case MIL_OP_LOGICAL_OR: return (x != 0) || (y != 0);
    case MIL_OP_LOGICAL_XOR: return (x != 0) != (y != 0);
    default: return NAN;
    }
}

static bool eval_unary(const MilOp *op, double x, double *r) {
    double eps = 0;
    switch (op->kind) {
    case MIL_OP_ABS: *r = fabs(x); return true;
    case MIL_OP_SQRT: *r = sqrt(x); return true;
    case MIL_OP_RSQRT: eps = 1e-12; arg_float(op, "epsilon", &eps); *r = 1.0 / sqrt(x + eps); return true;
    case MIL_OP_INVERSE: eps = 1e-4; arg_float(op, "epsilon", &eps); *r = 1.0 / (x + eps); return true;
    case MIL_OP_EXP: *r = exp(x); return true;
    case MIL_OP_EXP2: *r = exp2(x); return true;
    case MIL_OP_LOG: eps = 1e-45; arg_float(op, "epsilon", &eps); *r = log(x + eps); return true;
    case MIL_OP_SQUARE: *r = x * x; return true;
    case MIL_OP_RELU: *r = x > 0 ? x : 0; return true;
    case MIL_OP_SIGMOID: *r = 1 / (1 + exp(-x)); return true;
    case MIL_OP_TANH: *r = tanh(x); return true;
    case MIL_OP_FLOOR: *r = floor(x); return true;
    case MIL_OP_CEIL: *r = ceil(x); return true;
    case MIL_OP_ROUND: *r = nearbyint(x); return true;
    case MIL_OP_SIGN: *r = x > 0 ? 1 : x < 0 ? -1 : 0; return true;
    case MIL_OP_SIN: *r = sin(x); return true;
    case MIL_OP_COS: *r = cos(x); return true;
    case MIL_OP_LOGICAL_NOT: *r = x == 0; return true;
    default: return false;
    }
}

static bool is_layout_op(MilOpKind k) {
    return k == MIL_OP_RESHAPE || k == MIL_OP_TRANSPOSE || k == MIL_OP_CAST || k == MIL_OP_EXPAND_DIMS ||
           k == MIL_OP_SQUEEZE || k == MIL_OP_IDENTITY;
}

/* dst[i] = src[perm-mapped index] for element size es: an odometer over
 * the result's outer axes; the last two axes in 32 x 32 tiles (a weight
 * transpose reads with a large stride: the tiles keep its source lines in
 * cache). */
#define COPY_EL(T, dp, sp) (*(T *)(void *)(dp) = *(const T *)(const void *)(sp))
static void permute_raw(void *dst, const void *src, size_t es, int r, const int64_t *odims, const int64_t *sstride) {
    int64_t n = 1, idx[MIL_MAX_RANK] = {0};
    for (int k = 0; k < r; k++) n *= odims[k];
    if (!n) return;
    int64_t rows = r >= 2 ? odims[r - 2] : 1, cols = r ? odims[r - 1] : 1;
    int64_t rs = r >= 2 ? sstride[r - 2] : 0, cs = r ? sstride[r - 1] : 0, base = 0;
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (int64_t done = 0; done < n; done += rows * cols) {
        for (int64_t i0 = 0; i0 < rows; i0 += 32)
            for (int64_t j0 = 0; j0 < cols; j0 += 32) {
                int64_t i1 = i0 + 32 < rows ? i0 + 32 : rows, j1 = j0 + 32 < cols ? j0 + 32 : cols;
                for (int64_t i = i0; i < i1; i++) {
                    unsigned char *dr = d + (size_t)(i * cols) * es;
                    int64_t sr = base + i * rs;
                    for (int64_t j = j0; j < j1; j++) {
                        const unsigned char *sp = s + (size_t)(sr + j * cs) * es;
                        unsigned char *dp = dr + (size_t)j * es;
                        if (es == 2) COPY_EL(uint16_t, dp, sp);
                        else if (es == 4) COPY_EL(uint32_t, dp, sp);
                        else memcpy(dp, sp, es);
                    }
                }
            }
        d += (size_t)(rows * cols) * es;
        for (int k = r - 3; k >= 0; k--) {   /* next outer index */
            base += sstride[k];
            if (++idx[k] < odims[k]) break;
            base -= sstride[k] * odims[k];
            idx[k] = 0;
        }
    }
}

/* reshape / expand_dims / squeeze / identity / transpose of a constant of
 * the result's dtype, on the stored elements; NULL when not applicable. */
static MilValue *fold_layout_raw(MilFunc *f, MilOp *op) {
    const MilType *rt = op->results[0]->type;
    const MilConst *c = mil_op_const_arg(op, "x");
    if (!c || !c->type || c->type->kind != MIL_TY_TENSOR || c->type->dtype != rt->dtype || !ty_known(c->type)) return NULL;
    if (mil_dtype_bits(rt->dtype) < 8) return NULL;   /* sub-byte storage: the generic path */
    int64_t n = 0, perm[MIL_MAX_RANK];
    int r = c->type->rank;
    if (op->kind == MIL_OP_TRANSPOSE && (arg_ints(op, "perm", perm, MIL_MAX_RANK) != r || rt->rank != r)) return NULL;
    ConstHold *hold = NULL;
    const void *src = const_storage(c, &n, &hold);
    MilConst *k = NULL;
    if (src && n == mil_type_numel(rt)) {
        if (op->kind != MIL_OP_TRANSPOSE && c->kind == MIL_CONST_TENSOR) {
            /* the same (immutable, arena-owned) elements under the new type */
            if ((k = mil_const_tensor(f->prog, rt, NULL, 0))) {
                k->data = c->data;
                k->count = n;
            }
        } else if ((k = mil_const_tensor(f->prog, rt, NULL, n)) && op->kind == MIL_OP_TRANSPOSE) {
            int64_t istride[MIL_MAX_RANK], sstride[MIL_MAX_RANK], s = 1;
            for (int a = r - 1; a >= 0; a--) { istride[a] = s; s *= c->type->dims[a]; }
            for (int a = 0; a < r; a++) sstride[a] = istride[perm[a] < 0 ? perm[a] + r : perm[a]];
            permute_raw(k->data, src, mil_dtype_storage_size(rt->dtype), r, rt->dims, sstride);
        } else if (k) {
            memcpy(k->data, src, mil_dtype_storage_size(rt->dtype) * (size_t)n);
        }
    }
    const_storage_release(hold);
    return k ? pb_const(f, op, k, op->results[0]->name) : NULL;
}

/* Folds op into a new constant; returns the value or NULL. */
static MilValue *fold_op(MilFunc *f, MilOp *op) {
    if (op->nresults != 1 || op->kind == MIL_OP_CONST) return NULL;
    const MilType *rt = op->results[0]->type;
    if (!ty_known(rt) || rt->dtype == MIL_DT_STRING) return NULL;
    const MilOpInfo *info = mil_op_info(op->kind);
    if (!info || (info->flags & (OPF_STATE | OPF_CONSTEXPR))) return NULL;
    int64_t n = mil_type_numel(rt);

    /* shape(x) of a fully known type needs no constant input. */
    if (op->kind == MIL_OP_SHAPE) {
        const MilType *xt = arg_type(op, "x");
        if (!ty_known(xt)) return NULL;
        double v[MIL_MAX_RANK];
        for (int i = 0; i < xt->rank; i++) v[i] = (double)xt->dims[i];
        return pb_const(f, op, const_from_f64(f->prog, rt, v), op->results[0]->name);
    }
    /* Every value argument must be a constant. */
    for (int i = 0; i < op->nargs; i++)
        for (int j = 0; j < op->args[i].n; j++) {
            MilValue *v = op->args[i].items[j].value;
            if (v && !mil_value_const(v)) return NULL;
        }
    if (!is_layout_op(op->kind) && n > FOLD_MAX) return NULL;

    /* Re-typed blob: reshape / expand_dims / squeeze / identity of a BLOBFILE. */
    if (op->kind == MIL_OP_RESHAPE || op->kind == MIL_OP_EXPAND_DIMS || op->kind == MIL_OP_SQUEEZE ||
        op->kind == MIL_OP_IDENTITY) {
        const MilConst *c = mil_op_const_arg(op, "x");
        if (c && c->kind == MIL_CONST_BLOB && c->type->dtype == rt->dtype)
            return pb_const(f, op, mil_const_blob(f->prog, rt, c->blob_path, c->blob_offset), op->results[0]->name);
    }

    /* Layout ops that keep the dtype move storage elements as they are (no
       round trip through double: the weight transposes of a backward are
       tens of millions of elements). */
    if (op->kind == MIL_OP_RESHAPE || op->kind == MIL_OP_EXPAND_DIMS || op->kind == MIL_OP_SQUEEZE ||
        op->kind == MIL_OP_IDENTITY || op->kind == MIL_OP_TRANSPOSE) {
        MilValue *r = fold_layout_raw(f, op);
        if (r) return r;
    }

    double *out = NULL;
    Arr x = {0}, y = {0};
    bool ok = false;
    if (info->flags & (OPF_BINARY | OPF_CMP | OPF_LOGIC) && op->kind != MIL_OP_LOGICAL_NOT) {
        if (load(op, "x", &x) && load(op, "y", &y) && ty_known(x.t) && ty_known(y.t)) {
            out = malloc(sizeof(double) * (size_t)(n ? n : 1));
            bool isint = mil_dtype_is_int(rt->dtype);
            for (int64_t i = 0; i < n; i++)
                out[i] = eval_binary(op->kind, x.v[bcast_index(rt, x.t, i)], y.v[bcast_index(rt, y.t, i)], isint);
            ok = true;
        }
    } else if ((info->flags & (OPF_UNARY | OPF_LOGIC)) || op->kind == MIL_OP_CAST || op->kind == MIL_OP_RESHAPE ||
               op->kind == MIL_OP_EXPAND_DIMS || op->kind == MIL_OP_SQUEEZE || op->kind == MIL_OP_IDENTITY) {
        if (load(op, "x", &x) && x.n == n) {
            out = malloc(sizeof(double) * (size_t)(n ? n : 1));
            ok = true;
            for (int64_t i = 0; i < n && ok; i++) {
                if (info->flags & (OPF_UNARY | OPF_LOGIC)) ok = eval_unary(op, x.v[i], &out[i]);
                else out[i] = x.v[i];
            }
        }
    } else if (op->kind == MIL_OP_TRANSPOSE) {
        int64_t perm[MIL_MAX_RANK];
        if (load(op, "x", &x) && x.n == n && arg_ints(op, "perm", perm, MIL_MAX_RANK) == x.t->rank) {
            int r = x.t->rank;
            int64_t istride[MIL_MAX_RANK], s = 1;
            for (int k = r - 1; k >= 0; k--) { istride[k] = s; s *= x.t->dims[k]; }
            out = malloc(sizeof(double) * (size_t)(n ? n : 1));
            for (int64_t i = 0; i < n; i++) {
                int64_t flat = i, src = 0;
                for (int k = r - 1; k >= 0; k--) {
                    int64_t c = flat % rt->dims[k];
                    flat /= rt->dims[k];
                    int64_t pk = perm[k] < 0 ? perm[k] + r : perm[k];
                    src += c * istride[pk];
                }
                out[i] = x.v[src];
            }
            ok = true;
        }
    } else if (op->kind == MIL_OP_SELECT) {
        Arr c = {0};
        if (load(op, "cond", &c) && load(op, "a", &x) && load(op, "b", &y) && ty_known(c.t) && ty_known(x.t) &&
            ty_known(y.t)) {
            out = malloc(sizeof(double) * (size_t)(n ? n : 1));
            for (int64_t i = 0; i < n; i++)
                out[i] = c.v[bcast_index(rt, c.t, i)] != 0 ? x.v[bcast_index(rt, x.t, i)] : y.v[bcast_index(rt, y.t, i)];
            ok = true;
        }
        free(c.v);
    } else if (op->kind == MIL_OP_FILL && n < MIL_WEIGHT_FILE_MIN_ELEMS) {
        /* a larger fill stays one op: as a constant it would need a weight file */
        double val = 0;
        arg_float(op, "value", &val);
        out = malloc(sizeof(double) * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) out[i] = val;
        ok = true;
    } else if (op->kind == MIL_OP_CONCAT) {
        const MilArg *a = NULL;
        for (int i = 0; i < op->nargs; i++)
            if (!strcmp(op->args[i].name, "values")) a = &op->args[i];
        int64_t axis;
        if (a && arg_int(op, "axis", &axis) && !arg_bool(op, "interleave", false)) {
            int r = rt->rank, ax = (int)(axis < 0 ? axis + r : axis);
            int64_t outer = 1, inner = 1;
            for (int k = 0; k < ax; k++) outer *= rt->dims[k];
            for (int k = ax + 1; k < r; k++) inner *= rt->dims[k];
            out = malloc(sizeof(double) * (size_t)(n ? n : 1));
            ok = true;
            int64_t off = 0;
            for (int j = 0; j < a->n && ok; j++) {
                const MilConst *c = a->items[j].cst ? a->items[j].cst : mil_value_const(a->items[j].value);
                if (!c || c->kind != MIL_CONST_TENSOR || !ty_known(c->type) || c->type->rank != r) { ok = false; break; }
                int64_t len = c->type->dims[ax];
                for (int64_t o = 0; o < outer; o++)
                    for (int64_t l = 0; l < len * inner; l++)
                        out[o * rt->dims[ax] * inner + off * inner + l] = mil_const_get_f64(c, o * len * inner + l);
                off += len;
            }
        }
    }
    free(x.v);
    free(y.v);
    if (!ok) {
        free(out);
        return NULL;
    }
    MilConst *c = const_from_f64(f->prog, rt, out);
    free(out);
    if (!c) return NULL;
    return pb_const(f, op, c, op->results[0]->name);
}

static bool rule_fold(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *v = fold_op(f, op);
    return v && replace_value(f, op->results[0], v);
}

/* -------------------------------------------------- identity elimination */

static bool same_type(const MilValue *a, const MilValue *b) {
    return a && b && a->type && a->type == b->type && ty_known(a->type);
}

static bool forward_x(MilFunc *f, MilOp *op, MilValue *x) {
    return x && same_type(x, op->results[0]) && replace_value(f, op->results[0], x);
}

/* reshape(x) -> x when shapes agree; transpose by identity; cast to same dtype; identity(x) -> x */
static bool rule_noop(MilFunc *f, MilOp *op, void *ctx) {
    if (op->nresults != 1) return false;
    MilValue *x = arg_value(op, "x");
    if (op->kind == MIL_OP_TRANSPOSE) {
        int64_t perm[MIL_MAX_RANK];
        int n = arg_ints(op, "perm", perm, MIL_MAX_RANK);
        for (int i = 0; i < n; i++)
            if (perm[i] != i) return false;
    }
    if (op->kind == MIL_OP_SLICE_BY_SIZE || op->kind == MIL_OP_SLICE_BY_INDEX) {
        int64_t b[MIL_MAX_RANK];
        int n = arg_ints(op, "begin", b, MIL_MAX_RANK);
        if (n < 0) return false;
        for (int i = 0; i < n; i++)
            if (b[i] != 0) return false;
        if (op->kind == MIL_OP_SLICE_BY_INDEX) {
            int64_t st[MIL_MAX_RANK];
            int ns = arg_ints(op, "stride", st, MIL_MAX_RANK);
            for (int i = 0; i < ns; i++)
                if (st[i] != 1) return false;
        }
    }
    return forward_x(f, op, x);
}

/* add(x, 0) / sub(x, 0) -> x; mul(x, 1) / real_div(x, 1) -> x (and the commuted forms) */
/* Is argument `name` of op a constant (a const value or an inline literal)
 * whose elements all equal unit? */
static bool arg_all_equal(const MilOp *op, const char *name, double unit) {
    MilValue *v = arg_value(op, name);
    if (v) return value_all_equal(v, unit);
    const MilConst *c = mil_op_const_arg(op, name);
    bool all = c && c->kind == MIL_CONST_TENSOR && c->count >= 1;
    for (int64_t i = 0; all && i < c->count; i++) all = mil_const_get_f64(c, i) == unit;
    return all;
}

static bool rule_neutral(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *x = arg_value(op, "x"), *y = arg_value(op, "y");
    const MilConst *cx = mil_op_const_arg(op, "x"), *cy = mil_op_const_arg(op, "y");
    double unit = (op->kind == MIL_OP_ADD || op->kind == MIL_OP_SUB) ? 0 : 1;
    bool commutes = op->kind == MIL_OP_ADD || op->kind == MIL_OP_MUL;
    if (cy && !cx && x && arg_all_equal(op, "y", unit)) return forward_x(f, op, x);
    /* commuted: a neutral constant (value or inline literal) on the left */
    if (commutes && cx && !cy && y && arg_all_equal(op, "x", unit)) return forward_x(f, op, y);
    return false;
}

/* A sum / mean / max / min / prod over axes that all have size 1 reads one
 * element per output: x itself (keep_dims) or a reshape of it.  The gradient
 * of a matmul against a broadcast [1, ...] batch makes these (reduce_sum over
 * axis 0 of a [1, M, N] weight gradient), each a full copy at run time. */
static bool rule_reduce_noop(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *x = arg_value(op, "x");
    if (op->nresults != 1 || !x || !ty_known(x->type) || !ty_known(op->results[0]->type)) return false;
    const MilType *xt = x->type, *rt = op->results[0]->type;
    if (xt->dtype != rt->dtype || mil_type_numel(xt) != mil_type_numel(rt)) return false;
    int64_t axes[MIL_MAX_RANK];
    int n = mil_op_arg(op, "axes") ? arg_ints(op, "axes", axes, MIL_MAX_RANK) : xt->rank;
    if (!mil_op_arg(op, "axes"))
        for (int i = 0; i < n; i++) axes[i] = i;
    if (n <= 0) return false;
    for (int i = 0; i < n; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + xt->rank : axes[i];
        if (a < 0 || a >= xt->rank || xt->dims[a] != 1) return false;
    }
    if (same_type(x, op->results[0])) return forward_x(f, op, x);
    MilValue *r = pb_reshape(f, op, x, rt->rank, rt->dims, op->results[0]->name);
    return replace_value(f, op->results[0], r);
}

/* reshape(reshape(x)) -> reshape(x); also through expand_dims / squeeze */
static bool rule_reshape_merge(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *x = arg_value(op, "x");
    if (!x || !x->def || !ty_known(op->results[0]->type)) return false;
    MilOpKind k = x->def->kind;
    if (k != MIL_OP_RESHAPE && k != MIL_OP_EXPAND_DIMS && k != MIL_OP_SQUEEZE) return false;
    MilValue *src = arg_value(x->def, "x");
    if (!src) return false;
    const MilType *rt = op->results[0]->type;
    if (op->kind != MIL_OP_RESHAPE) {
        /* expand_dims / squeeze of a reshape: one reshape to the final shape */
        if (k != MIL_OP_RESHAPE) return false;
    }
    MilValue *r = pb_reshape(f, op, src, rt->rank, rt->dims, op->results[0]->name);
    return replace_value(f, op->results[0], r);
}

/* transpose(transpose(x, p1), p2) -> transpose(x, p1[p2]) */
static bool rule_transpose_merge(MilFunc *f, MilOp *op, void *ctx) {
    MilValue *x = arg_value(op, "x");
    if (!x || !x->def || x->def->kind != MIL_OP_TRANSPOSE) return false;
    MilValue *src = arg_value(x->def, "x");
    int64_t p1[MIL_MAX_RANK], p2[MIL_MAX_RANK], p[MIL_MAX_RANK];
    int n1 = arg_ints(x->def, "perm", p1, MIL_MAX_RANK), n2 = arg_ints(op, "perm", p2, MIL_MAX_RANK);
    if (!src || n1 < 0 || n1 != n2) return false;
    for (int i = 0; i < n1; i++) {
        int64_t a = p2[i] < 0 ? p2[i] + n1 : p2[i];
        p[i] = p1[a] < 0 ? p1[a] + n1 : p1[a];
    }
    MilValue *r = pb_transpose(f, op, src, n1, p, op->results[0]->name);
    return replace_value(f, op->results[0], r);
}

static const MilRule cleanup_rules[] = {
    {MIL_OP_RESHAPE, rule_noop, "reshape-noop"},          /* reshape(x: T) : T -> x */
    {MIL_OP_TRANSPOSE, rule_noop, "transpose-noop"},      /* transpose(x, [0..n-1]) -> x */
    {MIL_OP_CAST, rule_noop, "cast-noop"},                /* cast(x: T, T.dtype) -> x */
    {MIL_OP_IDENTITY, rule_noop, "identity"},             /* identity(x) -> x */
    {MIL_OP_SQUEEZE, rule_noop, "squeeze-noop"},          /* squeeze(x) : T(x) -> x */
    {MIL_OP_EXPAND_DIMS, rule_noop, "expand-noop"},       /* expand_dims(x) : T(x) -> x */
    {MIL_OP_SLICE_BY_SIZE, rule_noop, "slice-noop"},      /* slice_by_size(x, 0, full) -> x */
    {MIL_OP_SLICE_BY_INDEX, rule_noop, "slice-noop"},     /* slice_by_index(x, 0, full, 1) -> x */
    {MIL_OP_ADD, rule_neutral, "add-zero"},               /* x + 0 -> x, 0 + x -> x */
    {MIL_OP_SUB, rule_neutral, "sub-zero"},               /* x - 0 -> x */
    {MIL_OP_MUL, rule_neutral, "mul-one"},                /* x * 1 -> x, 1 * x -> x */
    {MIL_OP_REAL_DIV, rule_neutral, "div-one"},           /* x / 1 -> x */
    {MIL_OP_REDUCE_SUM, rule_reduce_noop, "reduce-noop"},  /* reduce over size-1 axes -> x (or a reshape) */
    {MIL_OP_REDUCE_MEAN, rule_reduce_noop, "reduce-noop"},
    {MIL_OP_REDUCE_MAX, rule_reduce_noop, "reduce-noop"},
    {MIL_OP_REDUCE_MIN, rule_reduce_noop, "reduce-noop"},
    {MIL_OP_REDUCE_PROD, rule_reduce_noop, "reduce-noop"},
    {MIL_OP_RESHAPE, rule_reshape_merge, "reshape-merge"},         /* reshape(reshape(x)) -> reshape(x) */
    {MIL_OP_EXPAND_DIMS, rule_reshape_merge, "reshape-merge"},     /* expand_dims(reshape(x)) -> reshape(x) */
    {MIL_OP_SQUEEZE, rule_reshape_merge, "reshape-merge"},         /* squeeze(reshape(x)) -> reshape(x) */
    {MIL_OP_TRANSPOSE, rule_transpose_merge, "transpose-merge"},   /* transpose(transpose(x,p1),p2) -> transpose(x,p1∘p2) */
};

static bool rule_fold_any(MilFunc *f, MilOp *op, void *ctx) { return rule_fold(f, op, ctx); }

/* Folding is rooted at every op kind: the table is built once. */
static MilRule fold_rules[MIL_OP_COUNT];
static int nfold_rules;

static void init_fold_rules(void) {
    if (nfold_rules) return;
    for (int k = 1; k < MIL_OP_COUNT; k++)
        if (k != MIL_OP_CONST) fold_rules[nfold_rules++] = (MilRule){(MilOpKind)k, rule_fold_any, "fold"};
}

static void set_weights(const MilPassOptions *o) { pass_set_weights_dir(o ? o->weights_dir : NULL); }

static int fold_prog(MilProgram *p, const MilPassOptions *o) {
    set_weights(o);
    init_fold_rules();
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++) n += mil_rewrite_fixpoint(p->funcs[i], fold_rules, nfold_rules, NULL);
    return n > 0;
}

static int identity_prog(MilProgram *p) {
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++)
        n += mil_rewrite_fixpoint(p->funcs[i], cleanup_rules, (int)(sizeof cleanup_rules / sizeof cleanup_rules[0]), NULL);
    return n > 0;
}

static int dce_prog(MilProgram *p) {
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++) n += mil_dce_func(p->funcs[i]);
    return n > 0;
}

int mil_pass_fold(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    return fold_prog(p, o);
}

int mil_pass_identity(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    return identity_prog(p);
}

int mil_pass_dce(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    return dce_prog(p);
}

/* ------------------------------------------------------------------ CSE */

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t hash_const(const MilConst *c) {
    uint64_t h = mix((uint64_t)c->kind, (uint64_t)(uintptr_t)c->type);
    if (c->kind == MIL_CONST_TENSOR) {
        h = mix(h, (uint64_t)c->count);
        if (c->type->dtype == MIL_DT_STRING) {
            const char *s = mil_const_get_str(c);
            for (; s && *s; s++) h = mix(h, (unsigned char)*s);
        } else {
            size_t nb = mil_dtype_storage_size(c->type->dtype) * (size_t)c->count;
            const unsigned char *b = c->data;
            size_t step = nb > 4096 ? nb / 512 : 1;
            for (size_t i = 0; i < nb; i += step) h = mix(h, b[i]);
        }
    } else if (c->kind == MIL_CONST_BLOB) {
        h = mix(h, c->blob_offset);
        for (const char *s = c->blob_path; s && *s; s++) h = mix(h, (unsigned char)*s);
    } else {
        for (int i = 0; i < c->nitems; i++) h = mix(h, hash_const(c->items[i]));
    }
    return h;
}

static bool const_eq(const MilConst *a, const MilConst *b) {
    if (a == b) return true;
    if (!a || !b || a->kind != b->kind || a->type != b->type) return false;
    switch (a->kind) {
    case MIL_CONST_TENSOR:
        if (a->count != b->count) return false;
        if (a->type->dtype == MIL_DT_STRING) {
            for (int64_t i = 0; i < a->count; i++) {
                const char *x = ((const char *const *)a->data)[i], *y = ((const char *const *)b->data)[i];
                if (strcmp(x ? x : "", y ? y : "")) return false;
            }
            return true;
        }
        return !memcmp(a->data, b->data, mil_dtype_storage_size(a->type->dtype) * (size_t)a->count);
    case MIL_CONST_BLOB:
        return a->blob_offset == b->blob_offset && !strcmp(a->blob_path, b->blob_path);
    case MIL_CONST_EMPTY: return true;
    default:
        if (a->nitems != b->nitems) return false;
        for (int i = 0; i < a->nitems; i++)
            if (!const_eq(a->items[i], b->items[i])) return false;
        return true;
    }
}

static bool cse_candidate(const MilOp *op) {
    const MilOpInfo *info = mil_op_info(op->kind);
    if (!info || (info->flags & OPF_STATE) || op->nresults == 0) return false;
    return true;
}

static uint64_t hash_op(const MilOp *op) {
    uint64_t h = mix(0, (uint64_t)op->kind);
    for (int i = 0; i < op->nargs; i++) {
        const MilArg *a = &op->args[i];
        for (const char *s = a->name; *s; s++) h = mix(h, (unsigned char)*s);
        for (int j = 0; j < a->n; j++)
            h = a->items[j].value ? mix(h, (uint64_t)a->items[j].value->id * 31u + 7u) : mix(h, hash_const(a->items[j].cst));
    }
    for (int i = 0; i < op->nattrs; i++)
        if (strcmp(op->attrs[i].name, "name")) h = mix(h, hash_const(op->attrs[i].val));
    return h;
}

static const MilArg *find_named_arg(const MilOp *op, const char *name) {
    for (int i = 0; i < op->nargs; i++)
        if (!strcmp(op->args[i].name, name)) return &op->args[i];
    return NULL;
}

static bool op_eq(const MilOp *a, const MilOp *b) {
    if (a->kind != b->kind || a->nargs != b->nargs || a->nresults != b->nresults) return false;
    if (a->kind == MIL_OP_UNKNOWN && strcmp(a->opname, b->opname)) return false;
    for (int i = 0; i < a->nresults; i++)
        if (a->results[i]->type != b->results[i]->type) return false;
    for (int i = 0; i < a->nargs; i++) {
        const MilArg *x = &a->args[i], *y = find_named_arg(b, x->name);
        if (!y || x->n != y->n || x->variadic != y->variadic) return false;
        for (int j = 0; j < x->n; j++) {
            if (x->items[j].value != y->items[j].value) return false;
            if (!x->items[j].value && !const_eq(x->items[j].cst, y->items[j].cst)) return false;
        }
    }
    int na = 0, nb = 0;
    for (int i = 0; i < a->nattrs; i++) {
        if (!strcmp(a->attrs[i].name, "name")) continue;
        na++;
        MilAttr *o = mil_op_attr(b, a->attrs[i].name);
        if (!o || !const_eq(a->attrs[i].val, o->val)) return false;
    }
    for (int i = 0; i < b->nattrs; i++) nb += strcmp(b->attrs[i].name, "name") != 0;
    return na == nb;
}

/* Uses of a replaced value are redirected lazily: fwd[id] is the value that
 * replaces value `id`.  Values are used only after their definition, so each
 * op's arguments are forwarded just before it is hashed (exactly what an
 * immediate mil_func_replace_uses would have left there), and one final walk
 * forwards the rest.  Function outputs (and their names) are updated at once
 * by replace_value_keep_uses, since later decisions look at them. */
static MilValue *fwd_get(MilValue **fwd, int nfwd, MilValue *v) {
    while (v && v->id < nfwd && fwd[v->id]) v = fwd[v->id];
    return v;
}

static void fwd_args(MilOp *op, MilValue **fwd, int nfwd) {
    for (int i = 0; i < op->nargs; i++)
        for (int j = 0; j < op->args[i].n; j++) {
            MilValue *v = op->args[i].items[j].value;
            if (v) op->args[i].items[j].value = fwd_get(fwd, nfwd, v);
        }
}

static int cse_func(MilFunc *f) {
    size_t cap = 64;
    int nops = 0;
    for (MilOp *op = f->body.first; op; op = op->next) nops++;
    while (cap < (size_t)nops * 2) cap *= 2;
    MilOp **tab = calloc(cap, sizeof *tab);
    int nfwd = f->nvalues;
    MilValue **fwd = calloc((size_t)(nfwd ? nfwd : 1), sizeof *fwd);
    if (!tab || !fwd) {
        free(tab);
        free(fwd);
        return 0;
    }
    int changed = 0;
    for (MilOp *op = f->body.first; op; op = op->next) {
        if (changed) fwd_args(op, fwd, nfwd);
        if (!cse_candidate(op)) continue;
        uint64_t h = hash_op(op);
        size_t i = h & (cap - 1);
        bool replaced = false;
        while (tab[i]) {
            if (op_eq(tab[i], op)) {
                bool ok = true;
                for (int r = 0; r < op->nresults && ok; r++) {
                    MilValue *from = op->results[r], *to = tab[i]->results[r];
                    if (value_is_output(f, from) && (value_is_output(f, to) || !to->def)) ok = false;
                }
                if (ok) {
                    for (int r = 0; r < op->nresults; r++) {
                        MilValue *from = op->results[r], *to = tab[i]->results[r];
                        if (replace_value_keep_uses(f, from, to) && from->id < nfwd) fwd[from->id] = to;
                    }
                    changed++;
                    replaced = true;
                }
                break;
            }
            i = (i + 1) & (cap - 1);
        }
        if (!replaced && !tab[i]) tab[i] = op;
    }
    free(tab);
    if (changed)
        for (MilOp *op = f->body.first; op; op = op->next) fwd_args(op, fwd, nfwd);
    free(fwd);
    if (changed) mil_dce_func(f);
    return changed;
}

static int cse_prog(MilProgram *p) {
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++) n += cse_func(p->funcs[i]);
    return n > 0;
}

int mil_pass_cse(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    return cse_prog(p);
}

/* The -O1 cleanup: fold, identities and merges, CSE, DCE, to a fixed point. */
int mil_pass_cleanup(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    int any = 0;
    for (int round = 0; round < 8; round++) {
        int c = 0;
        c |= fold_prog(p, o) > 0;
        c |= identity_prog(p) > 0;
        c |= cse_prog(p) > 0;
        c |= dce_prog(p) > 0;
        any |= c;
        if (!c) break;
    }
    return any;
}
