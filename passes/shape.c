/* passes/shape.c -- type and shape inference for every op of ir/ops.def.
 *
 * For each op the rule computes its result types from the operand types and
 * constant arguments (docs/mil-format.md §7, after coremltools'
 * type_inference).  Results built with a NULL type get the inferred type;
 * declared types (parsed text) are checked: a rank, dim or dtype mismatch is
 * reported at the op's location.  `?` (MIL_DIM_UNKNOWN) is compatible with
 * every size and propagates through the rules.  Ops without a rule (opaque
 * ops, recurrent layers, a few data-dependent ones) keep what they declare.
 *
 * Rules return INF_OK (all results filled), INF_NONE (no rule: keep the
 * declared types) or INF_ERR (err holds the message, without the op name).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "passes/pass_int.h"

#define UNK MIL_DIM_UNKNOWN

typedef struct Shape {
    MilDType dt;
    int rank;
    int64_t d[MIL_MAX_RANK];
} Shape;

enum { INF_ERR = -1, INF_NONE = 0, INF_OK = 1 };

typedef struct Inf {
    MilProgram *p;
    const MilOp *op;
    Shape out[4];
    int nout;
    char *err;
    size_t errlen;
} Inf;

static int fail(Inf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Inf *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (s->err) vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
    return INF_ERR;
}

/* Ranks computed from data (a shape tensor's length, an axes list, a
 * concatenation of index dims...) are bounded by MIL_MAX_RANK: every Shape
 * holds at most that many dims. */
static int rank_too_large(Inf *s, int64_t r) {
    return fail(s, "rank %lld exceeds the maximum of %d", (long long)r, MIL_MAX_RANK);
}

/* Number of elements of a constant numeric argument, or -1. */
static int64_t const_count(const MilOp *op, const char *name) {
    const MilConst *c = mil_op_const_arg(op, name);
    if (!c || !c->type || c->type->kind != MIL_TY_TENSOR) return -1;
    return c->count;
}

static bool shape_of(const MilType *t, Shape *sh) {
    if (!t) return false;
    if (t->kind == MIL_TY_STATE) t = t->elem;
    if (!t || t->kind != MIL_TY_TENSOR || t->rank > MIL_MAX_RANK) return false;
    sh->dt = t->dtype;
    sh->rank = t->rank;
    for (int i = 0; i < t->rank; i++) sh->d[i] = t->dims[i];
    return true;
}

static bool in_shape(const MilOp *op, const char *name, Shape *sh) {
    return shape_of(arg_type(op, name), sh);
}

/* The rule's single result O (INF_OK). */
static int one_result(Inf *s, const Shape *o) {
    s->out[0] = *o;
    s->nout = 1;
    return INF_OK;
}

/* The constant integer list ARG (at most MAX entries; the op's input has rank
 * RANK, for the message) into V[*N]: INF_OK, INF_NONE when it is not
 * constant, INF_ERR when it has too many entries. */
static int list_arg(Inf *s, const char *arg, int rank, int64_t *v, int max, int *n) {
    *n = arg_ints(s->op, arg, v, max);
    if (*n < 0 && const_count(s->op, arg) > max)
        return fail(s, "%s has %lld entries for rank %d", arg, (long long)const_count(s->op, arg), rank);
    return *n < 0 ? INF_NONE : INF_OK;
}

/* A "shape" argument that is not constant: O gets the rank of the shape
 * tensor's length and unknown dims (INF_OK), or INF_NONE / INF_ERR. */
static int unknown_dims(Inf *s, Shape *o) {
    int64_t nc = const_count(s->op, "shape");
    if (nc > MIL_MAX_RANK) return rank_too_large(s, nc);
    Shape st;
    if (!in_shape(s->op, "shape", &st) || st.rank != 1 || st.d[0] == UNK) return INF_NONE;
    if (st.d[0] > MIL_MAX_RANK) return rank_too_large(s, st.d[0]);
    o->rank = (int)st.d[0];
    for (int i = 0; i < o->rank; i++) o->d[i] = UNK;
    return INF_OK;
}

static void fmt_dims(const Shape *s, char *buf, size_t n) {
    int k = snprintf(buf, n, "[");
    for (int i = 0; i < s->rank && k < (int)n; i++)
        k += s->d[i] == UNK ? snprintf(buf + k, n - (size_t)k, "%s?", i ? ", " : "")
                            : snprintf(buf + k, n - (size_t)k, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (k < (int)n) snprintf(buf + k, n - (size_t)k, "]");
}

static int norm_axis(int64_t a, int rank) { return (int)(a < 0 ? a + rank : a); }

static int64_t dim_prod(const Shape *s, int from, int to) {
    int64_t n = 1;
    for (int i = from; i < to; i++) {
        if (s->d[i] == UNK) return UNK;
        n *= s->d[i];
    }
    return n;
}

static MilDType dtype_named(const char *s) {
    if (!s) return MIL_DT_NONE;
    return mil_dtype_from_name(s, strlen(s));
}

/* numpy broadcasting of b into a (a is the accumulator). */
static bool broadcast(Shape *a, const Shape *b) {
    int r = a->rank > b->rank ? a->rank : b->rank;
    Shape o = *a;
    o.rank = r;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t x = ia >= 0 ? a->d[ia] : 1, y = ib >= 0 ? b->d[ib] : 1;
        int64_t z;
        if (x == y) z = x;
        else if (x == 1) z = y;
        else if (y == 1) z = x;
        else if (x == UNK) z = y;
        else if (y == UNK) z = x;
        else return false;
        o.d[i] = z;
    }
    *a = o;
    return true;
}

/* ------------------------------------------------------------- the rules */

static int same_as(Inf *s, const char *arg) {
    if (!in_shape(s->op, arg, &s->out[0])) return INF_NONE;
    s->nout = 1;
    return INF_OK;
}

static int rule_binary(Inf *s, MilDType force) {
    Shape x, y;
    if (!in_shape(s->op, "x", &x) || !in_shape(s->op, "y", &y)) return INF_NONE;
    Shape o = x;
    if (!broadcast(&o, &y)) {
        char a[128], b[128];
        fmt_dims(&x, a, sizeof a);
        fmt_dims(&y, b, sizeof b);
        return fail(s, "shapes %s and %s are not broadcastable", a, b);
    }
    if (force != MIL_DT_NONE) o.dt = force;
    return one_result(s, &o);
}

static int rule_select(Inf *s) {
    Shape c, a, b;
    if (!in_shape(s->op, "cond", &c) || !in_shape(s->op, "a", &a) || !in_shape(s->op, "b", &b))
        return INF_NONE;
    Shape o = a;
    if (!broadcast(&o, &b) || !broadcast(&o, &c)) return fail(s, "cond, a and b are not broadcastable");
    o.dt = a.dt;
    return one_result(s, &o);
}

static int rule_cast(Inf *s) {
    if (!in_shape(s->op, "x", &s->out[0])) return INF_NONE;
    MilDType dt = dtype_named(arg_str(s->op, "dtype"));
    if (dt == MIL_DT_NONE) return fail(s, "unknown dtype '%s'", arg_str(s->op, "dtype") ? arg_str(s->op, "dtype") : "");
    s->out[0].dt = dt;
    s->nout = 1;
    return INF_OK;
}

static int rule_reduce(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    bool keep = arg_bool(s->op, "keep_dims", false);
    bool red[MIL_MAX_RANK] = {0};
    int64_t axes[MIL_MAX_RANK];
    int n = arg_ints(s->op, "axes", axes, MIL_MAX_RANK);
    if (n < 0) {
        if (mil_op_const_arg(s->op, "axes") || arg_value(s->op, "axes")) return INF_NONE;
        for (int i = 0; i < x.rank; i++) red[i] = true;
    }
    for (int i = 0; i < n; i++) {
        int a = norm_axis(axes[i], x.rank);
        if (a < 0 || a >= x.rank) return fail(s, "axis %lld out of range for rank %d", (long long)axes[i], x.rank);
        red[a] = true;
    }
    Shape o = x;
    o.rank = 0;
    for (int i = 0; i < x.rank; i++) {
        if (!red[i]) o.d[o.rank++] = x.d[i];
        else if (keep) o.d[o.rank++] = 1;
    }
    return one_result(s, &o);
}

static int rule_argreduce(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t axis = -1;
    arg_int(s->op, "axis", &axis);
    int a = norm_axis(axis, x.rank);
    if (a < 0 || a >= x.rank) return fail(s, "axis %lld out of range for rank %d", (long long)axis, x.rank);
    bool keep = arg_bool(s->op, "keep_dims", false);
    Shape o = x;
    o.rank = 0;
    for (int i = 0; i < x.rank; i++)
        if (i != a) o.d[o.rank++] = x.d[i];
        else if (keep) o.d[o.rank++] = 1;
    const char *dt = arg_str(s->op, "output_dtype");
    o.dt = dt ? dtype_named(dt) : MIL_DT_INT32;
    return one_result(s, &o);
}

static int rule_topk(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t axis = -1, k = 1;
    arg_int(s->op, "axis", &axis);
    arg_int(s->op, "k", &k);
    int a = norm_axis(axis, x.rank);
    if (a < 0 || a >= x.rank) return fail(s, "axis %lld out of range for rank %d", (long long)axis, x.rank);
    Shape o = x;
    o.d[a] = k;
    s->out[0] = o;
    s->out[1] = o;
    const char *dt = arg_str(s->op, "output_indices_dtype");
    s->out[1].dt = dt ? dtype_named(dt) : MIL_DT_INT32;
    s->nout = 2;
    return INF_OK;
}

static int rule_matmul(Inf *s) {
    Shape x, y;
    if (!in_shape(s->op, "x", &x) || !in_shape(s->op, "y", &y)) return INF_NONE;
    bool tx = arg_bool(s->op, "transpose_x", false), ty = arg_bool(s->op, "transpose_y", false);
    if ((tx && x.rank < 2) || (ty && y.rank < 2)) return fail(s, "cannot transpose a rank-1 operand");
    if (x.rank == 0 || y.rank == 0) return fail(s, "operands must have rank >= 1");
    bool x1 = x.rank == 1, y1 = y.rank == 1;
    if (x1) { x.rank = 2; x.d[1] = x.d[0]; x.d[0] = 1; }
    if (y1) { y.rank = 2; y.d[1] = 1; }
    if (tx) { int64_t t = x.d[x.rank - 1]; x.d[x.rank - 1] = x.d[x.rank - 2]; x.d[x.rank - 2] = t; }
    if (ty) { int64_t t = y.d[y.rank - 1]; y.d[y.rank - 1] = y.d[y.rank - 2]; y.d[y.rank - 2] = t; }
    int64_t kx = x.d[x.rank - 1], ky = y.d[y.rank - 2];
    if (kx != UNK && ky != UNK && kx != ky)
        return fail(s, "inner dimensions do not match (%lld vs %lld)", (long long)kx, (long long)ky);
    Shape bx = x, by = y;
    bx.rank -= 2;
    by.rank -= 2;
    if (!broadcast(&bx, &by)) return fail(s, "batch dimensions are not broadcastable");
    Shape o = bx;
    o.dt = x.dt;
    if (!x1) o.d[o.rank++] = x.d[x.rank - 2];
    if (!y1) o.d[o.rank++] = y.d[y.rank - 1];
    return one_result(s, &o);
}

static int rule_linear(Inf *s) {
    Shape x, w;
    if (!in_shape(s->op, "x", &x) || !in_shape(s->op, "weight", &w)) return INF_NONE;
    if (w.rank != 2) return fail(s, "weight must have rank 2, not %d", w.rank);
    if (x.rank < 1) return fail(s, "x must have rank >= 1");
    int64_t kx = x.d[x.rank - 1];
    if (kx != UNK && w.d[1] != UNK && kx != w.d[1])
        return fail(s, "inner dimensions do not match (%lld vs %lld)", (long long)kx, (long long)w.d[1]);
    Shape b;
    if (in_shape(s->op, "bias", &b) && b.rank == 1 && b.d[0] != UNK && w.d[0] != UNK && b.d[0] != w.d[0])
        return fail(s, "bias has %lld elements, expected %lld", (long long)b.d[0], (long long)w.d[0]);
    Shape o = x;
    o.d[o.rank - 1] = w.d[0];
    return one_result(s, &o);
}

/* Output extent of a windowed op along one spatial axis. */
static int64_t window_out(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pb, int64_t pe,
                          const char *pad_type, bool ceil_mode) {
    if (in == UNK || k == UNK) return UNK;
    if (!strcmp(pad_type, "same") || !strcmp(pad_type, "same_lower")) return (in + stride - 1) / stride;
    if (!strcmp(pad_type, "valid")) pb = pe = 0;
    int64_t eff = (k - 1) * dil + 1;
    int64_t num = in + pb + pe - eff;
    if (num < 0) return -2;
    return (ceil_mode ? (num + stride - 1) / stride : num / stride) + 1;
}

static int rule_window(Inf *s, bool conv) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    if (x.rank < 3) return fail(s, "x must have rank >= 3, not %d", x.rank);
    int ns = x.rank - 2;
    int64_t k[MIL_MAX_RANK], st[MIL_MAX_RANK], dil[MIL_MAX_RANK], pad[2 * MIL_MAX_RANK];
    int64_t cout = x.d[1];
    if (conv) {
        Shape w;
        if (!in_shape(s->op, "weight", &w)) return INF_NONE;
        if (w.rank != x.rank) return fail(s, "weight rank %d does not match x rank %d", w.rank, x.rank);
        int64_t g = 1;
        arg_int(s->op, "groups", &g);
        if (g < 1) return fail(s, "groups must be positive");
        if (x.d[1] != UNK && w.d[1] != UNK && x.d[1] != w.d[1] * g)
            return fail(s, "input channels do not match (%lld vs weight %lld x groups %lld)",
                        (long long)x.d[1], (long long)w.d[1], (long long)g);
        cout = w.d[0];
        for (int i = 0; i < ns; i++) k[i] = w.d[2 + i];
    } else {
        if (arg_ints(s->op, "kernel_sizes", k, MIL_MAX_RANK) != ns) return INF_NONE;
    }
    for (int i = 0; i < ns; i++) st[i] = dil[i] = 1;
    for (int i = 0; i < 2 * ns; i++) pad[i] = 0;
    int n;
    if ((n = arg_ints(s->op, "strides", st, MIL_MAX_RANK)) >= 0 && n != ns) return fail(s, "strides must have %d elements", ns);
    if ((n = arg_ints(s->op, "dilations", dil, MIL_MAX_RANK)) >= 0 && n != ns) return fail(s, "dilations must have %d elements", ns);
    if ((n = arg_ints(s->op, "pad", pad, 2 * MIL_MAX_RANK)) >= 0 && n != 2 * ns) return fail(s, "pad must have %d elements", 2 * ns);
    const char *pt = arg_str(s->op, "pad_type");
    if (!pt) pt = "valid";
    bool ceil_mode = arg_bool(s->op, "ceil_mode", false);
    Shape o = x;
    o.d[1] = cout;
    for (int i = 0; i < ns; i++) {
        int64_t v = window_out(x.d[2 + i], k[i], st[i] ? st[i] : 1, dil[i], pad[2 * i], pad[2 * i + 1], pt, ceil_mode);
        if (v == -2) return fail(s, "kernel larger than the padded input along axis %d", 2 + i);
        o.d[2 + i] = v;
    }
    return one_result(s, &o);
}

static int rule_reshape(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t sh[MIL_MAX_RANK];
    int n = arg_ints(s->op, "shape", sh, MIL_MAX_RANK);
    Shape o = x;
    if (n < 0) {
        int r = unknown_dims(s, &o);
        if (r != INF_OK) return r;
        return one_result(s, &o);
    }
    o.rank = n;
    int infer = -1;
    int64_t known = 1;
    bool unk = false;
    for (int i = 0; i < n; i++) {
        int64_t v = sh[i];
        if (v == 0 && n == x.rank) v = x.d[i];
        if (v == -1) {
            if (infer >= 0) return fail(s, "more than one -1 in the shape");
            infer = i;
            o.d[i] = UNK;
            continue;
        }
        if (v < -1) return fail(s, "invalid dimension %lld", (long long)v);
        o.d[i] = v;
        if (v == UNK) unk = true;
        else known *= v;
    }
    int64_t total = dim_prod(&x, 0, x.rank);
    if (infer >= 0) {
        if (total != UNK && !unk) {
            if (known == 0 || total % known) return fail(s, "cannot infer -1: %lld elements into a multiple of %lld",
                                                         (long long)total, (long long)known);
            o.d[infer] = total / known;
        }
    } else if (total != UNK && !unk && total != known) {
        char b[160];
        fmt_dims(&o, b, sizeof b);
        return fail(s, "element count mismatch: cannot reshape %lld elements into %s (%lld elements)",
                    (long long)total, b, (long long)known);
    }
    return one_result(s, &o);
}

static int rule_transpose(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t perm[MIL_MAX_RANK];
    int n, r = list_arg(s, "perm", x.rank, perm, MIL_MAX_RANK, &n);
    if (r != INF_OK) return r;
    if (n != x.rank) return fail(s, "perm has %d entries for rank %d", n, x.rank);
    bool seen[MIL_MAX_RANK] = {0};
    Shape o = x;
    for (int i = 0; i < n; i++) {
        int a = norm_axis(perm[i], n);
        if (a < 0 || a >= n || seen[a]) return fail(s, "perm is not a permutation");
        seen[a] = true;
        o.d[i] = x.d[a];
    }
    return one_result(s, &o);
}

static int rule_expand_dims(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t axes[MIL_MAX_RANK];
    int n = arg_ints(s->op, "axes", axes, MIL_MAX_RANK);
    if (n < 0 && const_count(s->op, "axes") > MIL_MAX_RANK)
        return rank_too_large(s, x.rank + const_count(s->op, "axes"));
    if (n < 0) return INF_NONE;
    int r = x.rank + n;
    if (r > MIL_MAX_RANK) return rank_too_large(s, r);
    bool ins[MIL_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int a = norm_axis(axes[i], r);
        if (a < 0 || a >= r || ins[a]) return fail(s, "axis %lld out of range", (long long)axes[i]);
        ins[a] = true;
    }
    Shape o = x;
    o.rank = r;
    for (int i = 0, j = 0; i < r; i++) o.d[i] = ins[i] ? 1 : x.d[j++];
    return one_result(s, &o);
}

static int rule_squeeze(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t axes[MIL_MAX_RANK];
    int n = arg_ints(s->op, "axes", axes, MIL_MAX_RANK);
    bool rm[MIL_MAX_RANK] = {0};
    if (n < 0) {
        for (int i = 0; i < x.rank; i++) {
            if (x.d[i] == UNK) return INF_NONE;
            rm[i] = x.d[i] == 1;
        }
    }
    for (int i = 0; i < n; i++) {
        int a = norm_axis(axes[i], x.rank);
        if (a < 0 || a >= x.rank) return fail(s, "axis %lld out of range", (long long)axes[i]);
        if (x.d[a] != 1 && x.d[a] != UNK) return fail(s, "cannot squeeze axis %d of size %lld", a, (long long)x.d[a]);
        rm[a] = true;
    }
    Shape o = x;
    o.rank = 0;
    for (int i = 0; i < x.rank; i++)
        if (!rm[i]) o.d[o.rank++] = x.d[i];
    return one_result(s, &o);
}

static const MilArg *variadic_arg(const MilOp *op, const char *name) {
    for (int i = 0; i < op->nargs; i++)
        if (!strcmp(op->args[i].name, name)) return &op->args[i];
    return NULL;
}

static bool item_shape(const MilBinding *b, Shape *sh) {
    return shape_of(b->value ? b->value->type : b->cst ? b->cst->type : NULL, sh);
}

static int rule_concat(Inf *s, bool stack) {
    const MilArg *a = variadic_arg(s->op, "values");
    int64_t axis;
    if (!a || a->n < 1 || !arg_int(s->op, "axis", &axis)) return INF_NONE;
    Shape first;
    if (!item_shape(&a->items[0], &first)) return INF_NONE;
    int r = stack ? first.rank + 1 : first.rank;
    if (r > MIL_MAX_RANK) return rank_too_large(s, r);
    int ax = norm_axis(axis, r);
    if (ax < 0 || ax >= r) return fail(s, "axis %lld out of range for rank %d", (long long)axis, r);
    Shape o = first;
    int64_t sum = 0;
    for (int i = 0; i < a->n; i++) {
        Shape v;
        if (!item_shape(&a->items[i], &v)) return INF_NONE;
        if (v.rank != first.rank) return fail(s, "values have different ranks (%d vs %d)", first.rank, v.rank);
        for (int k = 0; k < v.rank; k++) {
            if (!stack && k == ax) continue;
            if (v.d[k] != UNK && o.d[k] != UNK && v.d[k] != o.d[k])
                return fail(s, "dimension %d of value %d does not match (%lld vs %lld)", k, i,
                            (long long)v.d[k], (long long)o.d[k]);
            if (o.d[k] == UNK) o.d[k] = v.d[k];
        }
        if (!stack) sum = (sum == UNK || v.d[ax] == UNK) ? UNK : sum + v.d[ax];
    }
    if (stack) {
        o.rank = r;
        for (int k = r - 1; k > ax; k--) o.d[k] = o.d[k - 1];
        o.d[ax] = a->n;
    } else {
        o.d[ax] = sum;
    }
    return one_result(s, &o);
}

static int rule_split(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t axis;
    if (!arg_int(s->op, "axis", &axis)) return INF_NONE;
    int ax = norm_axis(axis, x.rank);
    if (ax < 0 || ax >= x.rank) return fail(s, "axis %lld out of range for rank %d", (long long)axis, x.rank);
    int nres = s->op->nresults;
    if (nres < 1 || nres > 4) return INF_NONE;
    int64_t sizes[64];
    int n = arg_ints(s->op, "split_sizes", sizes, 64);
    if (n >= 0) {
        if (n != nres) return fail(s, "split_sizes has %d entries but the op has %d results", n, nres);
        int64_t sum = 0;
        for (int i = 0; i < n; i++) sum += sizes[i];
        if (x.d[ax] != UNK && sum != x.d[ax])
            return fail(s, "split_sizes sum to %lld, axis has %lld", (long long)sum, (long long)x.d[ax]);
    } else {
        int64_t ns = nres;
        arg_int(s->op, "num_splits", &ns);
        if (ns != nres) return fail(s, "num_splits is %lld but the op has %d results", (long long)ns, nres);
        if (x.d[ax] != UNK && x.d[ax] % ns) return fail(s, "axis size %lld is not divisible by %lld", (long long)x.d[ax], (long long)ns);
        for (int i = 0; i < nres; i++) sizes[i] = x.d[ax] == UNK ? UNK : x.d[ax] / ns;
    }
    for (int i = 0; i < nres; i++) {
        s->out[i] = x;
        s->out[i].d[ax] = sizes[i];
    }
    s->nout = nres;
    return INF_OK;
}

static int rule_slice_by_size(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t b[MIL_MAX_RANK], z[MIL_MAX_RANK];
    int nz = arg_ints(s->op, "size", z, MIL_MAX_RANK);
    int nb = arg_ints(s->op, "begin", b, MIL_MAX_RANK);
    Shape o = x;
    if (nz < 0) {
        for (int i = 0; i < x.rank; i++) o.d[i] = UNK;
    } else {
        if (nz != x.rank) return fail(s, "size has %d entries for rank %d", nz, x.rank);
        for (int i = 0; i < x.rank; i++) {
            if (z[i] >= 0) o.d[i] = z[i];
            else if (nb == x.rank && x.d[i] != UNK) o.d[i] = x.d[i] - b[i];
            else o.d[i] = UNK;
            if (nb == x.rank && x.d[i] != UNK && z[i] >= 0 && b[i] >= 0 && b[i] + z[i] > x.d[i])
                return fail(s, "slice [%lld, %lld) out of range for axis %d of size %lld", (long long)b[i],
                            (long long)(b[i] + z[i]), i, (long long)x.d[i]);
        }
    }
    return one_result(s, &o);
}

static int mask_of(const MilOp *op, const char *name, bool *m, int rank) {
    int64_t v[MIL_MAX_RANK];
    int n = arg_ints(op, name, v, MIL_MAX_RANK);
    for (int i = 0; i < rank; i++) m[i] = n == rank ? v[i] != 0 : false;
    return n;
}

static int rule_slice_by_index(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int r = x.rank;
    int64_t b[MIL_MAX_RANK], e[MIL_MAX_RANK], st[MIL_MAX_RANK];
    bool bm[MIL_MAX_RANK], em[MIL_MAX_RANK], sq[MIL_MAX_RANK];
    int nb = arg_ints(s->op, "begin", b, MIL_MAX_RANK);
    int ne = arg_ints(s->op, "end", e, MIL_MAX_RANK);
    int ns = arg_ints(s->op, "stride", st, MIL_MAX_RANK);
    mask_of(s->op, "begin_mask", bm, r);
    mask_of(s->op, "end_mask", em, r);
    mask_of(s->op, "squeeze_mask", sq, r);
    if (ns != r)
        for (int i = 0; i < r; i++) st[i] = 1;
    Shape o = x;
    o.rank = 0;
    for (int i = 0; i < r; i++) {
        int64_t len = UNK;
        if (x.d[i] != UNK && (nb == r || bm[i]) && (ne == r || em[i]) && st[i] != 0) {
            int64_t n = x.d[i], lo, hi;
            if (st[i] > 0) {
                lo = bm[i] ? 0 : (b[i] < 0 ? b[i] + n : b[i]);
                hi = em[i] ? n : (e[i] < 0 ? e[i] + n : e[i]);
                lo = lo < 0 ? 0 : lo > n ? n : lo;
                hi = hi < 0 ? 0 : hi > n ? n : hi;
                len = hi > lo ? (hi - lo + st[i] - 1) / st[i] : 0;
            } else {
                lo = bm[i] ? n - 1 : (b[i] < 0 ? b[i] + n : b[i]);
                hi = em[i] ? -1 : (e[i] < 0 ? e[i] + n : e[i]);
                lo = lo < -1 ? -1 : lo > n - 1 ? n - 1 : lo;
                hi = hi < -1 ? -1 : hi > n - 1 ? n - 1 : hi;
                len = lo > hi ? (lo - hi + (-st[i]) - 1) / (-st[i]) : 0;
            }
        }
        if (sq[i]) continue;
        o.d[o.rank++] = len;
    }
    return one_result(s, &o);
}

static int rule_gather(Inf *s) {
    Shape x, idx;
    if (!in_shape(s->op, "x", &x) || !in_shape(s->op, "indices", &idx)) return INF_NONE;
    int64_t axis = 0, bd = 0;
    arg_int(s->op, "axis", &axis);
    arg_int(s->op, "batch_dims", &bd);
    int ax = norm_axis(axis, x.rank);
    if (ax < 0 || ax >= x.rank) return fail(s, "axis %lld out of range for rank %d", (long long)axis, x.rank);
    if (bd < 0 || bd > idx.rank) return fail(s, "batch_dims out of range");
    int64_t r = (int64_t)x.rank - 1 + idx.rank - bd;
    if (r > MIL_MAX_RANK) return rank_too_large(s, r);
    Shape o = x;
    o.rank = 0;
    for (int i = 0; i < ax; i++) o.d[o.rank++] = x.d[i];
    for (int i = (int)bd; i < idx.rank; i++) o.d[o.rank++] = idx.d[i];
    for (int i = ax + 1; i < x.rank; i++) o.d[o.rank++] = x.d[i];
    return one_result(s, &o);
}

static int rule_gather_nd(Inf *s) {
    Shape x, idx;
    if (!in_shape(s->op, "x", &x) || !in_shape(s->op, "indices", &idx)) return INF_NONE;
    int64_t bd = 0;
    arg_int(s->op, "batch_dims", &bd);
    if (idx.rank < 1 || idx.d[idx.rank - 1] == UNK) return INF_NONE;
    if (bd < 0 || bd >= idx.rank) return fail(s, "batch_dims out of range");
    int64_t from = bd + idx.d[idx.rank - 1];
    if (from > x.rank)
        return fail(s, "indices address %lld dims of an input of rank %d", (long long)from, x.rank);
    int64_t r = (int64_t)idx.rank - 1 + x.rank - from;
    if (r > MIL_MAX_RANK) return rank_too_large(s, r);
    Shape o = x;
    o.rank = 0;
    for (int i = 0; i < idx.rank - 1; i++) o.d[o.rank++] = idx.d[i];
    for (int i = (int)from; i < x.rank; i++) o.d[o.rank++] = x.d[i];
    return one_result(s, &o);
}

static int rule_tile(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t reps[MIL_MAX_RANK];
    int n, r = list_arg(s, "reps", x.rank, reps, MIL_MAX_RANK, &n);
    if (r != INF_OK) return r;
    if (n != x.rank) return fail(s, "reps has %d entries for rank %d", n, x.rank);
    for (int i = 0; i < n; i++) x.d[i] = x.d[i] == UNK ? UNK : x.d[i] * reps[i];
    return one_result(s, &x);
}

static int rule_pad(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t pad[2 * MIL_MAX_RANK];
    int n, r = list_arg(s, "pad", x.rank, pad, 2 * MIL_MAX_RANK, &n);
    if (r != INF_OK) return r;
    if (n % 2 || n / 2 > x.rank) return fail(s, "pad has %d entries for rank %d", n, x.rank);
    int k = n / 2;
    for (int i = 0; i < k; i++) {
        int a = x.rank - k + i;
        if (x.d[a] != UNK) x.d[a] += pad[2 * i] + pad[2 * i + 1];
    }
    return one_result(s, &x);
}

static int rule_fill(Inf *s) {
    int64_t sh[MIL_MAX_RANK];
    int n = arg_ints(s->op, "shape", sh, MIL_MAX_RANK);
    const MilType *vt = arg_type(s->op, "value");
    Shape o = {.dt = vt && vt->kind == MIL_TY_TENSOR ? vt->dtype : MIL_DT_FP32};
    if (n < 0) {
        int r = unknown_dims(s, &o);
        if (r != INF_OK) return r;
    } else {
        o.rank = n;
        for (int i = 0; i < n; i++) o.d[i] = sh[i];
    }
    return one_result(s, &o);
}

static int rule_range(Inf *s) {
    Shape st;
    if (!in_shape(s->op, "start", &st)) return INF_NONE;
    double a, b, c;
    Shape o = {.dt = st.dt, .rank = 1, .d = {UNK}};
    if (arg_float(s->op, "start", &a) && arg_float(s->op, "end", &b) && arg_float(s->op, "step", &c) && c != 0) {
        double n = (b - a) / c;
        int64_t k = (int64_t)n;
        if ((double)k < n) k++;
        o.d[0] = k > 0 ? k : 0;
    }
    return one_result(s, &o);
}

static int rule_flatten2d(Inf *s) {
    Shape x;
    if (!in_shape(s->op, "x", &x)) return INF_NONE;
    int64_t axis = 1;
    arg_int(s->op, "axis", &axis);
    int ax = norm_axis(axis, x.rank);
    if (ax < 0 || ax > x.rank) return fail(s, "axis out of range");
    Shape o = x;
    o.rank = 2;
    o.d[0] = dim_prod(&x, 0, ax);
    o.d[1] = dim_prod(&x, ax, x.rank);
    return one_result(s, &o);
}

static int rule_space(Inf *s, int dir /* +1 depth_to_space, -1 space_to_depth */, const char *arg) {
    Shape x;
    int64_t b;
    if (!in_shape(s->op, "x", &x) || !arg_int(s->op, arg, &b) || x.rank != 4 || b < 1) return INF_NONE;
    Shape o = x;
    if (dir > 0) {
        if (x.d[1] != UNK && x.d[1] % (b * b)) return fail(s, "channels %lld not divisible by %lld", (long long)x.d[1], (long long)(b * b));
        o.d[1] = x.d[1] == UNK ? UNK : x.d[1] / (b * b);
        o.d[2] = x.d[2] == UNK ? UNK : x.d[2] * b;
        o.d[3] = x.d[3] == UNK ? UNK : x.d[3] * b;
    } else {
        o.d[1] = x.d[1] == UNK ? UNK : x.d[1] * b * b;
        o.d[2] = x.d[2] == UNK ? UNK : x.d[2] / b;
        o.d[3] = x.d[3] == UNK ? UNK : x.d[3] / b;
    }
    return one_result(s, &o);
}

static int rule_upsample(Inf *s) {
    Shape x;
    double sh = 1, sw = 1;
    if (!in_shape(s->op, "x", &x) || x.rank < 2) return INF_NONE;
    arg_float(s->op, "scale_factor_height", &sh);
    arg_float(s->op, "scale_factor_width", &sw);
    int h = x.rank - 2, w = x.rank - 1;
    x.d[h] = x.d[h] == UNK ? UNK : (int64_t)((double)x.d[h] * sh);
    x.d[w] = x.d[w] == UNK ? UNK : (int64_t)((double)x.d[w] * sw);
    return one_result(s, &x);
}

static int rule_crop(Inf *s) {
    Shape x;
    int64_t ch[2], cw[2];
    if (!in_shape(s->op, "x", &x) || x.rank < 2 || arg_ints(s->op, "crop_height", ch, 2) != 2 ||
        arg_ints(s->op, "crop_width", cw, 2) != 2)
        return INF_NONE;
    int h = x.rank - 2, w = x.rank - 1;
    if (x.d[h] != UNK) x.d[h] -= ch[0] + ch[1];
    if (x.d[w] != UNK) x.d[w] -= cw[0] + cw[1];
    return one_result(s, &x);
}

static int rule_sdpa(Inf *s) {
    Shape q, k, v;
    if (!in_shape(s->op, "query", &q) || !in_shape(s->op, "key", &k) || !in_shape(s->op, "value", &v))
        return INF_NONE;
    if (q.rank < 2 || k.rank != q.rank || v.rank != q.rank) return fail(s, "query, key and value must have equal ranks >= 2");
    int64_t eq = q.d[q.rank - 1], ek = k.d[k.rank - 1];
    if (eq != UNK && ek != UNK && eq != ek)
        return fail(s, "query and key embedding sizes do not match (%lld vs %lld)", (long long)eq, (long long)ek);
    int64_t sk = k.d[k.rank - 2], sv = v.d[v.rank - 2];
    if (sk != UNK && sv != UNK && sk != sv)
        return fail(s, "key and value sequence lengths do not match (%lld vs %lld)", (long long)sk, (long long)sv);
    Shape o = q;
    o.d[o.rank - 1] = v.d[v.rank - 1];
    return one_result(s, &o);
}

static int rule_sdpa_backward(Inf *s) {
    if (!in_shape(s->op, "query", &s->out[0]) || !in_shape(s->op, "key", &s->out[1]) ||
        !in_shape(s->op, "value", &s->out[2]))
        return INF_NONE;
    Shape d;
    if (in_shape(s->op, "d_out", &d) && d.rank == s->out[0].rank) {
        int64_t a = d.d[d.rank - 2], b = s->out[0].d[d.rank - 2];
        if (a != UNK && b != UNK && a != b) return fail(s, "d_out and query lengths do not match (%lld vs %lld)", (long long)a, (long long)b);
    }
    s->nout = 3;
    return INF_OK;
}

static int rule_const(Inf *s) {
    const MilConst *c = mil_op_const_arg(s->op, "val");
    if (!c || !shape_of(c->type, &s->out[0])) return INF_NONE;
    s->nout = 1;
    return INF_OK;
}

static int rule_constexpr(Inf *s) {
    const char *src = s->op->kind == MIL_OP_CONSTEXPR_CAST ? "source_val" : "quantized_data";
    const MilConst *c = mil_op_const_arg(s->op, src);
    if (!c || !shape_of(c->type, &s->out[0])) return INF_NONE;
    if (s->op->kind == MIL_OP_CONSTEXPR_CAST) {
        MilDType dt = dtype_named(arg_str(s->op, "output_dtype"));
        if (dt == MIL_DT_NONE) return INF_NONE;
        s->out[0].dt = dt;
    } else {
        const MilConst *sc = mil_op_const_arg(s->op, "scale");
        if (!sc || !sc->type || sc->type->kind != MIL_TY_TENSOR) return INF_NONE;
        s->out[0].dt = sc->type->dtype;
    }
    s->nout = 1;
    return INF_OK;
}

static int infer(Inf *s) {
    const MilOp *op = s->op;
    const MilOpInfo *info = mil_op_info(op->kind);
    if (!info) return INF_NONE;
    if (info->flags & OPF_UNARY) return same_as(s, "x");
    if (info->flags & OPF_BINARY) return rule_binary(s, MIL_DT_NONE);
    if (info->flags & (OPF_CMP | OPF_LOGIC))
        return op->kind == MIL_OP_LOGICAL_NOT ? same_as(s, "x") : rule_binary(s, MIL_DT_BOOL);
    if (info->flags & OPF_REDUCE) return rule_reduce(s);
    switch (op->kind) {
    case MIL_OP_CONST: return rule_const(s);
    case MIL_OP_PRELU: case MIL_OP_SOFTPLUS_PARAMETRIC: case MIL_OP_SOFTMAX: case MIL_OP_LAYER_NORM:
    case MIL_OP_BATCH_NORM: case MIL_OP_INSTANCE_NORM: case MIL_OP_L2_NORM: case MIL_OP_LOCAL_RESPONSE_NORM:
    case MIL_OP_BAND_PART: case MIL_OP_RMS_NORM: case MIL_OP_IDENTITY: case MIL_OP_CUMSUM: case MIL_OP_REVERSE:
    case MIL_OP_SLICE_UPDATE:
        return same_as(s, "x");
    case MIL_OP_SCATTER: case MIL_OP_SCATTER_ALONG_AXIS: case MIL_OP_SCATTER_ND:
        return same_as(s, "data");
    case MIL_OP_READ_STATE: return same_as(s, "input");
    case MIL_OP_SELECT: return rule_select(s);
    case MIL_OP_CAST: return rule_cast(s);
    case MIL_OP_REDUCE_ARGMAX: case MIL_OP_REDUCE_ARGMIN: return rule_argreduce(s);
    case MIL_OP_TOPK: return rule_topk(s);
    case MIL_OP_ARGSORT:
        if (same_as(s, "x") != INF_OK) return INF_NONE;
        s->out[0].dt = MIL_DT_INT32;
        return INF_OK;
    case MIL_OP_MATMUL: return rule_matmul(s);
    case MIL_OP_LINEAR: return rule_linear(s);
    case MIL_OP_CONV: return rule_window(s, true);
    case MIL_OP_AVG_POOL: case MIL_OP_MAX_POOL: case MIL_OP_L2_POOL: return rule_window(s, false);
    case MIL_OP_SCALED_DOT_PRODUCT_ATTENTION: return rule_sdpa(s);
    case MIL_OP_RESHAPE: return rule_reshape(s);
    case MIL_OP_TRANSPOSE: return rule_transpose(s);
    case MIL_OP_EXPAND_DIMS: return rule_expand_dims(s);
    case MIL_OP_SQUEEZE: return rule_squeeze(s);
    case MIL_OP_CONCAT: return rule_concat(s, false);
    case MIL_OP_STACK: return rule_concat(s, true);
    case MIL_OP_SPLIT: return rule_split(s);
    case MIL_OP_SLICE_BY_SIZE: return rule_slice_by_size(s);
    case MIL_OP_SLICE_BY_INDEX: return rule_slice_by_index(s);
    case MIL_OP_GATHER: return rule_gather(s);
    case MIL_OP_GATHER_ALONG_AXIS: {
        Shape x;
        if (!in_shape(op, "x", &x) || same_as(s, "indices") != INF_OK) return INF_NONE;
        s->out[0].dt = x.dt;
        return INF_OK;
    }
    case MIL_OP_GATHER_ND: return rule_gather_nd(s);
    case MIL_OP_TILE: return rule_tile(s);
    case MIL_OP_PAD: return rule_pad(s);
    case MIL_OP_FILL: return rule_fill(s);
    case MIL_OP_RANGE_1D: return rule_range(s);
    case MIL_OP_SHAPE: {
        Shape x;
        if (!in_shape(op, "x", &x)) return INF_NONE;
        s->out[0] = (Shape){.dt = MIL_DT_INT32, .rank = 1, .d = {x.rank}};
        s->nout = 1;
        return INF_OK;
    }
    case MIL_OP_FLATTEN2D: return rule_flatten2d(s);
    case MIL_OP_DEPTH_TO_SPACE: return rule_space(s, 1, "block_size");
    case MIL_OP_PIXEL_SHUFFLE: return rule_space(s, 1, "upscale_factor");
    case MIL_OP_SPACE_TO_DEPTH: return rule_space(s, -1, "block_size");
    case MIL_OP_UPSAMPLE_NEAREST_NEIGHBOR: case MIL_OP_UPSAMPLE_BILINEAR: return rule_upsample(s);
    case MIL_OP_CROP: return rule_crop(s);
    case MIL_OP_CONSTEXPR_CAST: case MIL_OP_CONSTEXPR_AFFINE_DEQUANTIZE: return rule_constexpr(s);
    case MIL_OP_SDPA_BACKWARD: return rule_sdpa_backward(s);
    default: return INF_NONE;
    }
}

static const MilType *to_type(MilProgram *p, const Shape *sh) {
    return mil_type_tensor(p, sh->dt, sh->rank, sh->d);
}

const MilType *mil_shape_infer_result(MilProgram *p, const MilOp *op, int i, char *err, size_t errlen) {
    Inf s = {.p = p, .op = op, .err = err, .errlen = errlen};
    if (err && errlen) err[0] = 0;
    if (infer(&s) != INF_OK || i >= s.nout) return NULL;
    return to_type(p, &s.out[i]);
}

/* Declared vs inferred: compatible when ranks and dtypes agree and every dim
 * pair is equal or has a `?`. */
static bool compatible(const MilType *decl, const Shape *inf, bool *dtype_only) {
    *dtype_only = false;
    if (decl->kind == MIL_TY_STATE) decl = decl->elem;
    if (!decl || decl->kind != MIL_TY_TENSOR) return true;
    bool dims_ok = decl->rank == inf->rank;
    for (int k = 0; dims_ok && k < inf->rank; k++)
        if (decl->dims[k] != UNK && inf->d[k] != UNK && decl->dims[k] != inf->d[k]) dims_ok = false;
    if (!dims_ok) return false;
    if (decl->dtype != inf->dt) {
        *dtype_only = true;
        return false;
    }
    return true;
}

static const char *op_display(const MilOp *op) {
    const MilOpInfo *info = mil_op_info(op->kind);
    return op->opname ? op->opname : info ? info->name : "op";
}

int mil_shape_infer_op(MilProgram *p, MilOp *op, MilDiag *d) {
    char err[256];
    Inf s = {.p = p, .op = op, .err = err, .errlen = sizeof err};
    err[0] = 0;
    int r = infer(&s);
    if (r == INF_ERR) {
        if (d) mil_error(d, op->loc, "%s: %s", op_display(op), err);
        return 1;
    }
    int nerr = 0;
    for (int i = 0; i < op->nresults; i++) {
        MilValue *v = op->results[i];
        if (r != INF_OK || i >= s.nout) {
            if (!v->type) {
                if (d) mil_error(d, op->loc, "%s: cannot infer the type of result %d", op_display(op), i);
                nerr++;
            }
            continue;
        }
        if (!v->type) {
            v->type = to_type(p, &s.out[i]);
            continue;
        }
        bool dtype_only;
        if (!compatible(v->type, &s.out[i], &dtype_only)) {
            if (d) {
                char a[192], b[192];
                ty_fmt(v->type, a, sizeof a);
                ty_fmt(to_type(p, &s.out[i]), b, sizeof b);
                if (dtype_only)
                    mil_error(d, op->loc, "%s: declared dtype %s of '%s' cannot be produced (the op produces %s)",
                              op_display(op), mil_dtype_name(v->type->dtype), v->name, mil_dtype_name(s.out[i].dt));
                else
                    mil_error(d, op->loc, "%s: '%s' is declared %s but the op produces %s", op_display(op), v->name, a, b);
            }
            nerr++;
        }
    }
    return nerr;
}

/* The pass: every op of every function, in order.  Returns 1 when a NULL
 * type was filled in. */
int mil_pass_shape(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    pass_enter();
    int before = d ? d->nerrors : 0, changed = 0;
    for (int fi = 0; fi < p->nfuncs; fi++)
        for (MilOp *op = p->funcs[fi]->body.first; op; op = op->next) {
            bool had_null = false;
            for (int i = 0; i < op->nresults; i++) had_null |= op->results[i]->type == NULL;
            mil_shape_infer_op(p, op, d);
            if (had_null) changed = 1;
        }
    if (d && d->nerrors > before) return -1;
    return changed;
}
