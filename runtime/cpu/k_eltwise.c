/* runtime/cpu/k_eltwise.c -- element-wise kernels: binary arithmetic,
 * comparisons and logical ops with numpy broadcasting, unary math and
 * activations, clip, prelu, softplus_parametric, select, cast. */
#include <stdatomic.h>

#include "runtime/cpu/kutil.h"

/* ================================================================ binary */

static bool is_cmp(MilOpKind op) {
    return op == MIL_OP_EQUAL || op == MIL_OP_NOT_EQUAL || op == MIL_OP_GREATER ||
           op == MIL_OP_GREATER_EQUAL || op == MIL_OP_LESS || op == MIL_OP_LESS_EQUAL;
}
static bool is_logic(MilOpKind op) {
    return op == MIL_OP_LOGICAL_AND || op == MIL_OP_LOGICAL_OR || op == MIL_OP_LOGICAL_XOR;
}

static int dt_rank(MilDType dt) {
    switch (dt) {
    case MIL_DT_FP32: return 40;
    case MIL_DT_FP16: return 31;
    case MIL_DT_BF16: return 30;
    case MIL_DT_INT64: return 24;
    case MIL_DT_INT32: return 23;
    case MIL_DT_UINT32: return 22;
    case MIL_DT_INT16: return 21;
    case MIL_DT_UINT16: return 20;
    case MIL_DT_INT8: return 19;
    case MIL_DT_UINT8: return 18;
    case MIL_DT_BOOL: return 1;
    default: return 0;
    }
}

/* numpy-style promotion of two supported dtypes (fp16+fp32 -> fp32, int+float -> float). */
static MilDType promote(MilDType a, MilDType b) {
    if (a == b) return a;
    if (k_isfloat(a) && k_isfloat(b)) return dt_rank(a) > dt_rank(b) ? a : b;
    if (k_isfloat(a)) return a;
    if (k_isfloat(b)) return b;
    return dt_rank(a) >= dt_rank(b) ? a : b;
}

static int check_numeric(MilKernelCtx *k, const MilRtTensor *t, const char *what) {
    if (!dt_rank(t->dtype) || t->dtype == MIL_DT_BOOL)
        return mil_k_fail(k, "%s: %s has unsupported dtype %s", k_opname(k), what, k_dtname(t->dtype));
    return 0;
}

int k_binary_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, 0), *y = x ? k_req(k, 1) : NULL;
    if (!x || !y) return MIL_K_ERROR;
    int rc;
    MilDType odt;
    if (is_logic(k->kind)) {
        if (x->dtype != MIL_DT_BOOL || y->dtype != MIL_DT_BOOL)
            return mil_k_fail(k, "%s: inputs must be bool, got %s and %s", k_opname(k),
                              k_dtname(x->dtype), k_dtname(y->dtype));
        odt = MIL_DT_BOOL;
    } else {
        if ((rc = check_numeric(k, x, "x")) || (rc = check_numeric(k, y, "y"))) return rc;
        odt = is_cmp(k->kind) ? MIL_DT_BOOL : promote(x->dtype, y->dtype);
    }
    const MilRtTensor *ts[2] = {x, y};
    int64_t dims[MIL_MAX_RANK];
    int rank;
    if ((rc = k_bcast_shape(k, ts, 2, &rank, dims))) return rc;
    k_set_shape(k->out[0], odt, rank, dims);
    return 0;
}

/* numpy's float floor division / modulo (npy_divmod). */
static inline float f_floordiv(float a, float b) {
    if (b == 0.0f) return a / b;
    float mod = fmodf(a, b), div = (a - mod) / b;
    if (mod != 0.0f && ((b < 0) != (mod < 0))) div -= 1.0f;
    if (div != 0.0f) {
        float fl = floorf(div);
        if (div - fl > 0.5f) fl += 1.0f;
        return fl;
    }
    return copysignf(0.0f, a / b);
}
static inline float f_mod(float a, float b) {
    if (b == 0.0f) return fmodf(a, b);
    float mod = fmodf(a, b);
    if (mod != 0.0f) {
        if ((b < 0) != (mod < 0)) mod += b;
    } else {
        mod = copysignf(0.0f, b);
    }
    return mod;
}
static inline float f_max(float a, float b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }
static inline float f_min(float a, float b) { return (a != a || b != b) ? a + b : (a < b ? a : b); }

K_VEC static void bin_f(MilOpKind op, const float *a, const float *b, float *r, int64_t n) {
#define L(e) for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; (void)x; (void)y; r[i] = (e); } break
    switch (op) {
    case MIL_OP_ADD: L(x + y);
    case MIL_OP_SUB: L(x - y);
    case MIL_OP_MUL: L(x * y);
    case MIL_OP_REAL_DIV: L(x / y);
    case MIL_OP_POW: L(powf(x, y));
    case MIL_OP_MAXIMUM: L(f_max(x, y));
    case MIL_OP_MINIMUM: L(f_min(x, y));
    case MIL_OP_FLOOR_DIV: L(f_floordiv(x, y));
    case MIL_OP_MOD: L(f_mod(x, y));
    case MIL_OP_EQUAL: L(x == y);
    case MIL_OP_NOT_EQUAL: L(x != y);
    case MIL_OP_GREATER: L(x > y);
    case MIL_OP_GREATER_EQUAL: L(x >= y);
    case MIL_OP_LESS: L(x < y);
    case MIL_OP_LESS_EQUAL: L(x <= y);
    default: L(0);
    }
#undef L
}

static int64_t ipow(int64_t b, int64_t e) {
    if (e < 0) {
        if (b == 1) return 1;
        if (b == -1) return (e & 1) ? -1 : 1;
        return 0;
    }
    uint64_t r = 1, bb = (uint64_t)b;
    while (e) { if (e & 1) r *= bb; bb *= bb; e >>= 1; }
    return (int64_t)r;
}

/* returns 1 on integer division by zero */
static int bin_i(MilOpKind op, const int64_t *a, const int64_t *b, int64_t *r, int64_t n) {
#define L(e) for (int64_t i = 0; i < n; i++) { int64_t x = a[i], y = b[i]; (void)x; (void)y; r[i] = (e); } break
#define LD(e) for (int64_t i = 0; i < n; i++) { int64_t x = a[i], y = b[i]; if (!y) return 1; r[i] = (e); } break
    switch (op) {
    case MIL_OP_ADD: L((int64_t)((uint64_t)x + (uint64_t)y));
    case MIL_OP_SUB: L((int64_t)((uint64_t)x - (uint64_t)y));
    case MIL_OP_MUL: L((int64_t)((uint64_t)x * (uint64_t)y));
    case MIL_OP_REAL_DIV: LD((int64_t)trunc((double)x / (double)y));
    case MIL_OP_POW: L(ipow(x, y));
    case MIL_OP_MAXIMUM: L(x > y ? x : y);
    case MIL_OP_MINIMUM: L(x < y ? x : y);
    case MIL_OP_FLOOR_DIV: LD((y == -1) ? (int64_t)(0 - (uint64_t)x) : (x / y - ((x % y != 0) && ((x < 0) != (y < 0)))));
    case MIL_OP_MOD: LD((y == -1) ? 0 : ((x % y != 0 && ((x % y < 0) != (y < 0))) ? x % y + y : x % y));
    case MIL_OP_EQUAL: L(x == y);
    case MIL_OP_NOT_EQUAL: L(x != y);
    case MIL_OP_GREATER: L(x > y);
    case MIL_OP_GREATER_EQUAL: L(x >= y);
    case MIL_OP_LESS: L(x < y);
    case MIL_OP_LESS_EQUAL: L(x <= y);
    case MIL_OP_LOGICAL_AND: L((x != 0) && (y != 0));
    case MIL_OP_LOGICAL_OR: L((x != 0) || (y != 0));
    case MIL_OP_LOGICAL_XOR: L((x != 0) != (y != 0));
    default: L(0);
    }
#undef L
#undef LD
    return 0;
}

typedef struct {
    MilKernelCtx *k;
    const MilRtTensor *x, *y;
    MilRtTensor *o;
    KRowIter it;
    bool fl, split_row;   /* split_row: one long row cut into element ranges */
    atomic_int divzero;
} BinJob;

/* elements [s0, s1) of the row at it->off */
static bool bin_span(BinJob *j, const KRowIter *it, int64_t s0, int64_t s1) {
    float fa[KCHUNK], fb[KCHUNK], fr[KCHUNK];
    int64_t ia[KCHUNK], ib[KCHUNK], ir[KCHUNK];
    for (int64_t s = s0; s < s1; s += KCHUNK) {
        int64_t n = s1 - s < KCHUNK ? s1 - s : KCHUNK;
        if (j->fl) {
            k_loadf(j->x, it->off[1] + s * it->inner[1], it->inner[1], n, fa);
            k_loadf(j->y, it->off[2] + s * it->inner[2], it->inner[2], n, fb);
            bin_f(j->k->kind, fa, fb, fr, n);
            k_storef(j->o, it->off[0] + s, n, fr);
        } else {
            k_loadi(j->x, it->off[1] + s * it->inner[1], it->inner[1], n, ia);
            k_loadi(j->y, it->off[2] + s * it->inner[2], it->inner[2], n, ib);
            if (bin_i(j->k->kind, ia, ib, ir, n)) return false;
            k_storei(j->o, it->off[0] + s, n, ir);
        }
    }
    return true;
}

static void bin_part(void *arg, int64_t i0, int64_t i1, int tid) {
    BinJob *j = arg;
    KRowIter it = j->it;
    (void)tid;
    bool ok = true;
    if (j->split_row) {
        k_rows_next(&it);
        ok = bin_span(j, &it, i0, i1);
    } else {
        k_rows_seek(&it, i0);
        for (int64_t r = i0; ok && r < i1 && k_rows_next(&it); r++) ok = bin_span(j, &it, 0, it.len);
    }
    if (!ok) atomic_store(&j->divzero, 1);
}

int k_binary_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, 0), *y = mil_k_in(k, 1);
    MilRtTensor *o = k->out[0];
    BinJob j;  /* not zero-initialised: on tiny tensors that memset was half the op's cost */
    j.k = k;
    j.x = x;
    j.y = y;
    j.o = o;
    j.split_row = false;
    j.fl = (k_isfloat(x->dtype) || k_isfloat(y->dtype)) && !is_logic(k->kind);
    const MilRtTensor *ops[3] = {o, x, y};
    k_rows_init(&j.it, o->rank, o->dims, 3, ops);
    atomic_init(&j.divzero, 0);
    double work = 4.0 * (double)(j.it.rows * j.it.len);
    if (work < 5e4 || k_threads(k) == 1) {  /* tiny tensors: no pool, no copies of the iterator */
        while (k_rows_next(&j.it))
            if (!bin_span(&j, &j.it, 0, j.it.len)) return mil_k_fail(k, "%s: integer division by zero", k_opname(k));
        return 0;
    }
    if (j.it.rows == 1) {
        j.split_row = true;
        k_parallel(k, j.it.len, KCHUNK, work, bin_part, &j);
    } else {
        k_parallel(k, j.it.rows, 1, work, bin_part, &j);
    }
    if (atomic_load(&j.divzero)) return mil_k_fail(k, "%s: integer division by zero", k_opname(k));
    return 0;
}

/* ================================================================= unary */

typedef struct {
    int xslot;
    float eps, alpha, beta;
    int gelu; /* 0 exact, 1 tanh, 2 sigmoid */
} UParams;

/* The unary ops with float parameters: up to two (slots p1, p2, -1 for none)
 * with their ops.def defaults, read into epsilon (is_eps) or alpha, beta. */
#define UA(op, a1, d1, a2, d2, is_eps) \
    {MIL_OP_##op, MIL_A_##op##_x, MIL_A_##op##_##a1, a2, d1, d2, is_eps}
static const struct UArgs {
    MilOpKind op;
    int x, p1, p2;
    double d1, d2;
    bool is_eps;
} unary_args[] = {
    UA(INVERSE, epsilon, 0x1.a36e2ep-14, -1, 0, true),
    UA(LOG, epsilon, 0x1p-149, -1, 0, true),
    UA(RSQRT, epsilon, 0x1.197998p-40, -1, 0, true),
    UA(ELU, alpha, 1.0, -1, 0, false),
    UA(LEAKY_RELU, alpha, 0x1.47ae14p-7, -1, 0, false),
    UA(LINEAR_ACTIVATION, alpha, 1.0, MIL_A_LINEAR_ACTIVATION_beta, 0.0, false),
    UA(SCALED_TANH, alpha, 1.0, MIL_A_SCALED_TANH_beta, 1.0, false),
    UA(SIGMOID_HARD, alpha, 0x1.99999ap-3, MIL_A_SIGMOID_HARD_beta, 0x1p-1, false),
    UA(THRESHOLDED_RELU, alpha, 1.0, -1, 0, false),
};
#undef UA

static int unary_params(MilKernelCtx *k, UParams *p) {
    double eps = 0, alpha = 0, beta = 0;
    int rc = 0;
    p->xslot = 0;
    p->gelu = 0;
    if (k->kind == MIL_OP_GELU) {
        p->xslot = MIL_A_GELU_x;
        const char *mode;
        if ((rc = k_arg_str(k, MIL_A_GELU_mode, "EXACT", &mode))) return rc;
        if (!strcmp(mode, "EXACT")) p->gelu = 0;
        else if (!strcmp(mode, "TANH_APPROXIMATION")) p->gelu = 1;
        else if (!strcmp(mode, "SIGMOID_APPROXIMATION")) p->gelu = 2;
        else return mil_k_fail(k, "gelu: unknown mode \"%s\"", mode);
    }
    for (size_t i = 0; i < sizeof unary_args / sizeof unary_args[0]; i++) {
        const struct UArgs *a = &unary_args[i];
        if (a->op != k->kind) continue;
        p->xslot = a->x;
        if (a->op == MIL_OP_LINEAR_ACTIVATION && !mil_k_in(k, a->p1))
            return mil_k_fail(k, "linear_activation: missing required argument 'alpha'");
        if ((rc = k_arg_float(k, a->p1, a->d1, a->is_eps ? &eps : &alpha))) return rc;
        if (a->p2 >= 0) rc = k_arg_float(k, a->p2, a->d2, &beta);
        break;
    }
    p->eps = (float)eps;
    p->alpha = (float)alpha;
    p->beta = (float)beta;
    return rc;
}

/* ops with an exact integer meaning */
static bool unary_int_ok(MilOpKind op) {
    switch (op) {
    case MIL_OP_ABS: case MIL_OP_SQUARE: case MIL_OP_SIGN: case MIL_OP_RELU: case MIL_OP_RELU6:
    case MIL_OP_CEIL: case MIL_OP_FLOOR: case MIL_OP_ROUND: case MIL_OP_EXP2:
        return true;
    default: return false;
    }
}

int k_unary_shape(MilKernelCtx *k) {
    UParams p;
    int rc = unary_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = k_req(k, p.xslot);
    if (!x) return MIL_K_ERROR;
    if (k->kind == MIL_OP_LOGICAL_NOT) {
        if (x->dtype != MIL_DT_BOOL)
            return mil_k_fail(k, "logical_not: x must be bool, got %s", k_dtname(x->dtype));
    } else if (!k_isfloat(x->dtype) && !(k_isint(x->dtype) && unary_int_ok(k->kind))) {
        return mil_k_fail(k, "%s: unsupported dtype %s", k_opname(k), k_dtname(x->dtype));
    } else if ((rc = check_numeric(k, x, "x"))) {
        return rc;
    }
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

static inline float f_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float f_softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

K_VEC static void unary_f(MilOpKind op, const UParams *p, float *v, int64_t n) {
    const float eps = p->eps, al = p->alpha, be = p->beta;
    if (op == MIL_OP_EXP || op == MIL_OP_SIGMOID || op == MIL_OP_SILU) {  /* through k_exp_n */
        float e[KCHUNK];
        for (int64_t s = 0; s < n; s += KCHUNK) {
            int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
            float *x = v + s;
            if (op == MIL_OP_EXP) { k_exp_n(x, c); continue; }
            for (int64_t i = 0; i < c; i++) e[i] = -x[i];
            k_exp_n(e, c);
            if (op == MIL_OP_SIGMOID) for (int64_t i = 0; i < c; i++) x[i] = 1.0f / (1.0f + e[i]);
            else for (int64_t i = 0; i < c; i++) x[i] = x[i] * (1.0f / (1.0f + e[i]));
        }
        return;
    }
#define L(e) for (int64_t i = 0; i < n; i++) { float x = v[i]; v[i] = (e); } break
    switch (op) {
    case MIL_OP_ABS: L(fabsf(x));
    case MIL_OP_ACOS: L(acosf(x));
    case MIL_OP_ASIN: L(asinf(x));
    case MIL_OP_ATAN: L(atanf(x));
    case MIL_OP_ATANH: L(atanhf(x));
    case MIL_OP_CEIL: L(ceilf(x));
    case MIL_OP_COS: L(cosf(x));
    case MIL_OP_COSH: L(coshf(x));
    case MIL_OP_ERF: L(erff(x));
    case MIL_OP_EXP: L(expf(x));
    case MIL_OP_EXP2: L(exp2f(x));
    case MIL_OP_FLOOR: L(floorf(x));
    case MIL_OP_INVERSE: L(1.0f / (x + eps));
    case MIL_OP_LOG: L(logf(x + eps));
    case MIL_OP_RELU: L(x < 0.0f ? 0.0f : x);
    case MIL_OP_RELU6: L(x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x));
    case MIL_OP_ROUND: L(rintf(x));
    case MIL_OP_RSQRT: L(1.0f / sqrtf(x + eps));
    case MIL_OP_SIGMOID: L(f_sigmoid(x));
    case MIL_OP_SIGN: L(x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x));
    case MIL_OP_SILU: L(x * f_sigmoid(x));
    case MIL_OP_SIN: L(sinf(x));
    case MIL_OP_SINH: L(sinhf(x));
    case MIL_OP_SOFTPLUS: L(f_softplus(x));
    case MIL_OP_SOFTSIGN: L(x / (1.0f + fabsf(x)));
    case MIL_OP_SQRT: L(sqrtf(x));
    case MIL_OP_SQUARE: L(x * x);
    case MIL_OP_TAN: L(tanf(x));
    case MIL_OP_TANH: L(tanhf(x));
    case MIL_OP_ELU: L(x > 0.0f ? x : al * expm1f(x));
    case MIL_OP_GELU:
        for (int64_t i = 0; i < n; i++) {
            float x = v[i];
            if (p->gelu == 0) v[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
            else if (p->gelu == 1)
                v[i] = 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
            else v[i] = x * f_sigmoid(1.702f * x);
        }
        break;
    case MIL_OP_LEAKY_RELU: L(x >= 0.0f ? x : al * x);
    case MIL_OP_LINEAR_ACTIVATION: L(al * x + be);
    case MIL_OP_SCALED_TANH: L(al * tanhf(be * x));
    case MIL_OP_SIGMOID_HARD: L(fminf(fmaxf(al * x + be, 0.0f), 1.0f));
    case MIL_OP_THRESHOLDED_RELU: L(x >= al ? x : 0.0f);
    default: L(x);
    }
#undef L
}

static void unary_i(MilOpKind op, int64_t *v, int64_t n) {
#define L(e) for (int64_t i = 0; i < n; i++) { int64_t x = v[i]; v[i] = (e); } break
    switch (op) {
    case MIL_OP_ABS: L(x < 0 ? (int64_t)(0 - (uint64_t)x) : x);
    case MIL_OP_SQUARE: L((int64_t)((uint64_t)x * (uint64_t)x));
    case MIL_OP_SIGN: L(x > 0 ? 1 : (x < 0 ? -1 : 0));
    case MIL_OP_RELU: L(x < 0 ? 0 : x);
    case MIL_OP_RELU6: L(x < 0 ? 0 : (x > 6 ? 6 : x));
    case MIL_OP_EXP2: L(x < 0 ? 0 : (x >= 63 ? 0 : ((int64_t)1 << x)));
    case MIL_OP_LOGICAL_NOT: L(!x);
    default: L(x);
    }
#undef L
}

typedef struct {
    const MilKernelCtx *k;
    const UParams *p;
    const MilRtTensor *x;
    MilRtTensor *o;
} UnJob;

static void unary_part(void *arg, int64_t i0, int64_t i1, int tid) {
    const UnJob *j = arg;
    float buf[KCHUNK];
    (void)tid;
    for (int64_t s = i0; s < i1; s += KCHUNK) {
        int64_t c = i1 - s < KCHUNK ? i1 - s : KCHUNK;
        k_loadf(j->x, s, 1, c, buf);
        unary_f(j->k->kind, j->p, buf, c);
        k_storef(j->o, s, c, buf);
    }
}

int k_unary_run(MilKernelCtx *k) {
    UParams p;
    int rc = unary_params(k, &p);
    if (rc) return rc;
    const MilRtTensor *x = mil_k_in(k, p.xslot);
    MilRtTensor *o = k->out[0];
    int64_t n = k_numel(x);
    if (k_isint(x->dtype) || x->dtype == MIL_DT_BOOL) {
        int64_t buf[KCHUNK];
        for (int64_t s = 0; s < n; s += KCHUNK) {
            int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
            k_loadi(x, s, 1, c, buf);
            unary_i(k->kind, buf, c);
            k_storei(o, s, c, buf);
        }
        return 0;
    }
    UnJob j = {k, &p, x, o};
    k_parallel(k, n, KCHUNK, 16.0 * (double)n, unary_part, &j);
    return 0;
}

/* ================================================================== clip */

int k_clip_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_CLIP_x);
    if (!x || !k_req(k, MIL_A_CLIP_alpha) || !k_req(k, MIL_A_CLIP_beta)) return MIL_K_ERROR;
    double a, b;
    int rc;
    if ((rc = k_arg_float(k, MIL_A_CLIP_alpha, 0, &a)) || (rc = k_arg_float(k, MIL_A_CLIP_beta, 0, &b)))
        return rc;
    if ((rc = check_numeric(k, x, "x"))) return rc;
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

int k_clip_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_CLIP_x);
    MilRtTensor *o = k->out[0];
    double a, b;
    int rc;
    if ((rc = k_arg_float(k, MIL_A_CLIP_alpha, 0, &a)) || (rc = k_arg_float(k, MIL_A_CLIP_beta, 0, &b)))
        return rc;
    int64_t n = k_numel(x);
    if (k_isint(x->dtype)) {
        for (int64_t i = 0; i < n; i++) {
            double v = (double)k_geti(x, i);
            v = v < a ? a : v;
            v = v > b ? b : v;
            k_setf(o, i, v);
        }
        return 0;
    }
    float fa = (float)a, fb = (float)b, buf[KCHUNK];
    for (int64_t s = 0; s < n; s += KCHUNK) {
        int64_t c = n - s < KCHUNK ? n - s : KCHUNK;
        k_loadf(x, s, 1, c, buf);
        for (int64_t i = 0; i < c; i++) {
            float v = buf[i];
            v = v < fa ? fa : v;
            buf[i] = v > fb ? fb : v;
        }
        k_storef(o, s, c, buf);
    }
    return 0;
}

/* ==================================================== per-channel activations */

static int chan_param(MilKernelCtx *k, int slot, const MilRtTensor *x) {
    const MilRtTensor *a = k_req(k, slot);
    if (!a) return MIL_K_ERROR;
    if (!k_isfloat(a->dtype))
        return mil_k_fail(k, "%s: '%s' must be a float tensor", k_opname(k), k_argname(k, slot));
    int64_t n = k_numel(a);
    if (a->rank > 1 || (n != x->dims[1] && n != 1))
        return mil_k_fail(k, "%s: '%s' must have shape [%lld] (channel axis 1 of x)", k_opname(k),
                          k_argname(k, slot), (long long)x->dims[1]);
    if (!a->data) return MIL_K_NEED_DATA;
    return 0;
}

static int chan_shape(MilKernelCtx *k, int xslot, int s1, int s2) {
    const MilRtTensor *x = k_req(k, xslot);
    if (!x) return MIL_K_ERROR;
    int rc;
    if ((rc = k_need_float(k, x, "x"))) return rc;
    if (x->rank < 2) return mil_k_fail(k, "%s: x must have rank >= 2 (channel axis 1)", k_opname(k));
    if ((rc = chan_param(k, s1, x))) return rc;
    if (s2 >= 0 && (rc = chan_param(k, s2, x))) return rc;
    k_set_shape(k->out[0], x->dtype, x->rank, x->dims);
    return 0;
}

static void chan_run(MilKernelCtx *k, const MilRtTensor *x, const MilRtTensor *pa, const MilRtTensor *pb) {
    MilRtTensor *o = k->out[0];
    int64_t N = x->dims[0], C = x->dims[1], S = k_prod(x->dims, 2, x->rank);
    float buf[KCHUNK];
    for (int64_t nn = 0; nn < N; nn++) {
        for (int64_t c = 0; c < C; c++) {
            float al = (float)k_getf(pa, k_numel(pa) == 1 ? 0 : c);
            float be = pb ? (float)k_getf(pb, k_numel(pb) == 1 ? 0 : c) : 0.0f;
            int64_t base = (nn * C + c) * S;
            for (int64_t s = 0; s < S; s += KCHUNK) {
                int64_t cn = S - s < KCHUNK ? S - s : KCHUNK;
                k_loadf(x, base + s, 1, cn, buf);
                if (!pb) {
                    for (int64_t i = 0; i < cn; i++) buf[i] = buf[i] >= 0.0f ? buf[i] : al * buf[i];
                } else {
                    for (int64_t i = 0; i < cn; i++) buf[i] = al * f_softplus(be * buf[i]);
                }
                k_storef(o, base + s, cn, buf);
            }
        }
    }
}

int k_prelu_shape(MilKernelCtx *k) { return chan_shape(k, MIL_A_PRELU_x, MIL_A_PRELU_alpha, -1); }
int k_prelu_run(MilKernelCtx *k) {
    chan_run(k, mil_k_in(k, MIL_A_PRELU_x), mil_k_in(k, MIL_A_PRELU_alpha), NULL);
    return 0;
}
int k_softplus_p_shape(MilKernelCtx *k) {
    return chan_shape(k, MIL_A_SOFTPLUS_PARAMETRIC_x, MIL_A_SOFTPLUS_PARAMETRIC_alpha,
                      MIL_A_SOFTPLUS_PARAMETRIC_beta);
}
int k_softplus_p_run(MilKernelCtx *k) {
    chan_run(k, mil_k_in(k, MIL_A_SOFTPLUS_PARAMETRIC_x), mil_k_in(k, MIL_A_SOFTPLUS_PARAMETRIC_alpha),
             mil_k_in(k, MIL_A_SOFTPLUS_PARAMETRIC_beta));
    return 0;
}

/* ================================================================ select */

int k_select_shape(MilKernelCtx *k) {
    const MilRtTensor *c = k_req(k, MIL_A_SELECT_cond);
    const MilRtTensor *a = c ? k_req(k, MIL_A_SELECT_a) : NULL;
    const MilRtTensor *b = a ? k_req(k, MIL_A_SELECT_b) : NULL;
    if (!b) return MIL_K_ERROR;
    if (c->dtype != MIL_DT_BOOL && !k_isint(c->dtype) && !k_isfloat(c->dtype))
        return mil_k_fail(k, "select: cond has unsupported dtype %s", k_dtname(c->dtype));
    if (a->dtype != b->dtype)
        return mil_k_fail(k, "select: a and b must have the same dtype, got %s and %s",
                          k_dtname(a->dtype), k_dtname(b->dtype));
    if (!k_esize(a->dtype) || a->dtype == MIL_DT_STRING)
        return mil_k_fail(k, "select: unsupported dtype %s", k_dtname(a->dtype));
    const MilRtTensor *ts[3] = {c, a, b};
    int64_t dims[MIL_MAX_RANK];
    int rank, rc;
    if ((rc = k_bcast_shape(k, ts, 3, &rank, dims))) return rc;
    k_set_shape(k->out[0], a->dtype, rank, dims);
    return 0;
}

int k_select_run(MilKernelCtx *k) {
    const MilRtTensor *c = mil_k_in(k, MIL_A_SELECT_cond), *a = mil_k_in(k, MIL_A_SELECT_a),
                      *b = mil_k_in(k, MIL_A_SELECT_b);
    MilRtTensor *o = k->out[0];
    size_t es = k_esize(o->dtype);
    const MilRtTensor *ops[4] = {o, c, a, b};
    KRowIter it;
    k_rows_init(&it, o->rank, o->dims, 4, ops);
    const char *pa = a->data, *pb = b->data;
    char *po = o->data;
    while (k_rows_next(&it)) {
        for (int64_t i = 0; i < it.len; i++) {
            int64_t ci = it.off[1] + i * it.inner[1];
            bool cv = c->dtype == MIL_DT_BOOL ? ((const uint8_t *)c->data)[ci] != 0 : k_getf(c, ci) != 0;
            const char *src = cv ? pa + (size_t)(it.off[2] + i * it.inner[2]) * es
                                 : pb + (size_t)(it.off[3] + i * it.inner[3]) * es;
            memcpy(po + (size_t)(it.off[0] + i) * es, src, es);
        }
    }
    return 0;
}

/* ================================================================== cast */

static bool cast_ok(MilDType dt) {
    return dt == MIL_DT_BOOL || k_isfloat(dt) ||
           (k_isint(dt) && dt != MIL_DT_INT4 && dt != MIL_DT_UINT4 && dt != MIL_DT_UINT2 &&
            dt != MIL_DT_UINT1 && dt != MIL_DT_UINT6 && dt != MIL_DT_UINT3);
}

int k_cast_shape(MilKernelCtx *k) {
    const MilRtTensor *x = k_req(k, MIL_A_CAST_x);
    if (!x || !k_req(k, MIL_A_CAST_dtype)) return MIL_K_ERROR;
    const char *name;
    int rc = k_arg_str(k, MIL_A_CAST_dtype, NULL, &name);
    if (rc) return rc;
    MilDType dt = k_dtype_from_name(name);
    if (dt == MIL_DT_NONE || !cast_ok(dt)) return mil_k_fail(k, "cast: unsupported dtype \"%s\"", name);
    if (!cast_ok(x->dtype)) return mil_k_fail(k, "cast: unsupported input dtype %s", k_dtname(x->dtype));
    k_set_shape(k->out[0], dt, x->rank, x->dims);
    return 0;
}

int k_cast_run(MilKernelCtx *k) {
    const MilRtTensor *x = mil_k_in(k, MIL_A_CAST_x);
    MilRtTensor *o = k->out[0];
    int64_t n = k_numel(x);
    bool sf = k_isfloat(x->dtype), df = k_isfloat(o->dtype);
    if (sf && df) {
        k_convertf(x, o);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        if (sf) {
            double v = k_getf(x, i);
            if (o->dtype == MIL_DT_BOOL) k_seti(o, i, v != 0);
            else k_seti(o, i, k_f2i_sat(v, o->dtype));
        } else {
            int64_t v = k_geti(x, i);
            if (df) k_setf(o, i, (double)v);
            else k_seti(o, i, v);
        }
    }
    return 0;
}

/* ====================================================== unary -> binary fusion */

static bool fusable_binary(MilOpKind op) {
    return op == MIL_OP_ADD || op == MIL_OP_SUB || op == MIL_OP_MUL || op == MIL_OP_REAL_DIV ||
           op == MIL_OP_MAXIMUM || op == MIL_OP_MINIMUM;
}

static bool is_fp(MilDType dt) { return dt == MIL_DT_FP16 || dt == MIL_DT_FP32; }

bool k_fusable_unary_binary(const MilKernelCtx *u, const MilKernelCtx *b, int pos) {
    if (!fusable_binary(b->kind) || (pos != 0 && pos != 1) || u->nout != 1 || b->nout != 1) return false;
    if (mil_cpu_kernels[u->kind].run != k_unary_run || u->kind == MIL_OP_LOGICAL_NOT) return false;
    UParams p;
    if (unary_params((MilKernelCtx *)u, &p)) return false;
    const MilRtTensor *ux = mil_k_in(u, p.xslot), *uo = u->out[0], *other = mil_k_in(b, 1 - pos),
                      *bo = b->out[0], *mine = mil_k_in(b, pos);
    if (!ux || !other || mine != uo) return false;
    if (!is_fp(ux->dtype) || !is_fp(uo->dtype) || !is_fp(other->dtype) || !is_fp(bo->dtype)) return false;
    return mil_rt_same_shape(ux, bo) && mil_rt_same_shape(uo, bo) && mil_rt_same_shape(other, bo);
}

typedef struct {
    const MilKernelCtx *u, *b;
    const UParams *p;
    const MilRtTensor *ux, *other;
    MilDType udt;
    int pos;
} FuseJob;

/* o = b(u(x) rounded to u's dtype, other): exactly what the two ops give */
static void fused_part(void *arg, int64_t i0, int64_t i1, int tid) {
    const FuseJob *j = arg;
    float a[KCHUNK], c[KCHUNK], r[KCHUNK];
    uint16_t h[KCHUNK];
    (void)tid;
    for (int64_t s = i0; s < i1; s += KCHUNK) {
        int64_t n = i1 - s < KCHUNK ? i1 - s : KCHUNK;
        k_loadf(j->ux, s, 1, n, a);
        unary_f(j->u->kind, j->p, a, n);
        if (j->udt == MIL_DT_FP16) {  /* the unary op's fp16 result, as if stored and reloaded */
            k_f2h_n(a, h, n);
            k_h2f_n(h, a, n);
        }
        k_loadf(j->other, s, 1, n, c);
        if (j->pos == 0) bin_f(j->b->kind, a, c, r, n);
        else bin_f(j->b->kind, c, a, r, n);
        k_storef(j->b->out[0], s, n, r);
    }
}

int k_fused_unary_binary_run(MilKernelCtx *u, MilKernelCtx *b, int pos) {
    UParams p;
    int rc = unary_params(u, &p);
    if (rc) return rc;
    FuseJob j = {u, b, &p, mil_k_in(u, p.xslot), mil_k_in(b, 1 - pos), u->out[0]->dtype, pos};
    int64_t n = k_numel(b->out[0]);
    k_parallel(b, n, KCHUNK, 20.0 * (double)n, fused_part, &j);
    return 0;
}
