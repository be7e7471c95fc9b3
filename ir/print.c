/* ir/print.c -- canonical MIL text (docs/mil-format.md §2.4, §4).
 *
 * The output reproduces coremlc's model.mil byte for byte when a parsed file
 * is printed in its own spelling:
 *
 *     program(1.0)
 *     [buildInfo = dict<...>({{"k", "v"}, ...})]
 *     {
 *         func main<ios16>(tensor<fp16, [1, 10]> x) [Attr = ...] {
 *                 tensor<fp16, [1, 10]> y = relu(x = x)[name = tensor<string, []>("y")];
 *             } -> (y);
 *     }
 *
 * Functions at 4 spaces, statements at 12, the `} -> (...)` line at 8, an
 * empty line before a function only when f->blank_before (the parser records
 * the input's; programs built in C get none, like current coremlc), and a
 * newline after the final `}` only when p->trailing_newline.  Arguments and attributes are sorted by name (strcmp,
 * i.e. byte order, which is Apple's); parameters and outputs keep their order.
 * Spelling 1.0 writes scalars as `tensor<T, []>`, 1.3 as bare `T`, recursively
 * inside list / dict / tuple / state types.  Floats are canonical hex: the
 * fraction widened to 24 bits (fp16, fp32) or 52 bits (fp64), trailing zeros
 * trimmed, subnormals normalised, `inf` / `-inf` / `nan` bare.
 */
#include "ir/ir_int.h"
#include "ir/fp16.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- hex floats */

/* Writes [-]0x1[.frac]p±E for a normalised value: `frac` holds `fbits`
 * fraction bits (a multiple of 4), printed as fbits/4 hex digits, trimmed. */
static int fmt_hex(char *buf, bool neg, uint64_t frac, int fbits, int exp) {
    char digits[24];
    int nd = fbits / 4;
    for (int i = nd - 1; i >= 0; i--) {
        digits[i] = "0123456789abcdef"[frac & 0xf];
        frac >>= 4;
    }
    while (nd > 0 && digits[nd - 1] == '0') nd--;
    if (nd > 0) return sprintf(buf, "%s0x1.%.*sp%+d", neg ? "-" : "", nd, digits, exp);
    return sprintf(buf, "%s0x1p%+d", neg ? "-" : "", exp);
}

/* Common body: sign, biased exponent field, fraction field of mbits bits,
 * exponent bias; the fraction is widened to `fbits` bits for printing. */
static int fmt_ieee(char *buf, bool neg, uint64_t e, uint64_t m, int mbits, int bias, int emax, int fbits) {
    if (e == (uint64_t)emax) {
        if (m) return sprintf(buf, "nan");
        return sprintf(buf, "%sinf", neg ? "-" : "");
    }
    if (e == 0 && m == 0) return sprintf(buf, "%s0x0p+0", neg ? "-" : "");
    int exp;
    if (e == 0) { /* subnormal: normalise */
        exp = 1 - bias;
        while (!(m & ((uint64_t)1 << mbits))) {
            m <<= 1;
            exp--;
        }
        m &= ((uint64_t)1 << mbits) - 1;
    } else {
        exp = (int)e - bias;
    }
    return fmt_hex(buf, neg, m << (fbits - mbits), fbits, exp);
}

int mil_format_fp16(uint16_t bits, char *buf) {
    return fmt_ieee(buf, bits >> 15, (bits >> 10) & 0x1f, bits & 0x3ff, 10, 15, 0x1f, 24);
}

int mil_format_fp32(float v, char *buf) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return fmt_ieee(buf, bits >> 31, (bits >> 23) & 0xff, bits & 0x7fffff, 23, 127, 0xff, 24);
}

int mil_format_fp64(double v, char *buf) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    return fmt_ieee(buf, bits >> 63, (bits >> 52) & 0x7ff, bits & 0xfffffffffffffull, 52, 1023, 0x7ff, 52);
}

/* ---------------------------------------------------------- text buffer */

typedef struct Buf {
    char *s;
    size_t n, cap;
    bool oom;
    MilSpelling sp;      /* MIL_SPELLING_1_0 or _1_3, never SAME */
} Buf;

static void reserve(Buf *b, size_t more) {
    if (b->oom || b->n + more + 1 <= b->cap) return;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->n + more + 1) ncap *= 2;
    char *ns = realloc(b->s, ncap);
    if (!ns) {
        b->oom = true;
        return;
    }
    b->s = ns;
    b->cap = ncap;
}

static void putn(Buf *b, const char *s, size_t n) {
    reserve(b, n);
    if (b->oom) return;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(Buf *b, const char *s) { putn(b, s, strlen(s)); }

static void putf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(Buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        putn(b, tmp, (size_t)n);
        return;
    }
    reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* ---------------------------------------------------------------- types */

static void print_type(Buf *b, const MilType *t) {
    if (!t) {
        puts_(b, "?");
        return;
    }
    switch (t->kind) {
    case MIL_TY_TENSOR:
        if (t->rank == 0 && b->sp == MIL_SPELLING_1_3) {
            puts_(b, mil_dtype_name(t->dtype));
            return;
        }
        putf(b, "tensor<%s, [", mil_dtype_name(t->dtype));
        for (int i = 0; i < t->rank; i++) {
            if (i) puts_(b, ", ");
            if (t->dims[i] < 0) puts_(b, "?");
            else putf(b, "%" PRId64, t->dims[i]);
        }
        puts_(b, "]>");
        return;
    case MIL_TY_LIST:
        puts_(b, "list<");
        print_type(b, t->elem);
        if (t->len < 0) puts_(b, ", ?>");
        else putf(b, ", %" PRId64 ">", t->len);
        return;
    case MIL_TY_DICT:
        puts_(b, "dict<");
        print_type(b, t->elem);
        puts_(b, ", ");
        print_type(b, t->val);
        puts_(b, ">");
        return;
    case MIL_TY_TUPLE:
        puts_(b, "tuple<");
        for (int i = 0; i < t->ntypes; i++) {
            if (i) puts_(b, ", ");
            print_type(b, t->types[i]);
        }
        puts_(b, ">");
        return;
    case MIL_TY_STATE:
        puts_(b, "state<");
        print_type(b, t->elem);
        puts_(b, ">");
        return;
    }
}

/* ------------------------------------------------------------- literals */

static void print_string(Buf *b, const char *s) {
    puts_(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': puts_(b, "\\\""); break;
        case '\\': puts_(b, "\\\\"); break;
        case '\n': puts_(b, "\\n"); break;
        case '\t': puts_(b, "\\t"); break;
        case '\r': puts_(b, "\\r"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) putf(b, "\\x%02x", *p);
            else putn(b, (const char *)p, 1);
        }
    }
    puts_(b, "\"");
}

/* One element of an inline tensor. */
static void print_elem(Buf *b, const MilConst *c, int64_t i) {
    MilDType dt = c->type->dtype;
    const void *cell = (const char *)c->data + (size_t)i * mil_dtype_storage_size(dt);
    char tmp[40];
    switch (dt) {
    case MIL_DT_BOOL: puts_(b, *(const uint8_t *)cell ? "true" : "false"); return;
    case MIL_DT_STRING: print_string(b, *(const char *const *)cell); return;
    case MIL_DT_FP16: mil_format_fp16(*(const uint16_t *)cell, tmp); puts_(b, tmp); return;
    case MIL_DT_BF16: mil_format_fp32(mil_bf2f(*(const uint16_t *)cell), tmp); puts_(b, tmp); return;
    case MIL_DT_FP32: mil_format_fp32(*(const float *)cell, tmp); puts_(b, tmp); return;
    case MIL_DT_FP64: mil_format_fp64(*(const double *)cell, tmp); puts_(b, tmp); return;
    case MIL_DT_FP8E4M3FN: case MIL_DT_FP8E5M2:
        mil_format_fp32((float)mil_const_get_f64(c, i), tmp);
        puts_(b, tmp);
        return;
    case MIL_DT_UINT64: putf(b, "%" PRIu64, *(const uint64_t *)cell); return;
    default: putf(b, "%" PRId64, mil_const_get_i64(c, i)); return;
    }
}

/* Elements [*pos, ...) nested by dims[d..rank). */
static void print_nested(Buf *b, const MilConst *c, const int64_t *dims, int rank, int d, int64_t *pos) {
    if (d == rank) {
        if (*pos < c->count) print_elem(b, c, *pos);
        (*pos)++;
        return;
    }
    puts_(b, "[");
    for (int64_t i = 0; i < dims[d]; i++) {
        if (i) puts_(b, ", ");
        print_nested(b, c, dims, rank, d + 1, pos);
    }
    puts_(b, "]");
}

static void print_payload(Buf *b, const MilConst *c);

static void print_value(Buf *b, const MilConst *c) {
    print_type(b, c->type);
    puts_(b, "(");
    print_payload(b, c);
    puts_(b, ")");
}

static void print_tensor_payload(Buf *b, const MilConst *c) {
    const MilType *t = c->type;
    if (t->rank == 0) {
        if (c->count > 0) print_elem(b, c, 0);
        return;
    }
    /* The literal's dims: the type's, unless unknown or inconsistent with the
     * element count, in which case the elements print as one flat level
     * inside rank-1 extra brackets. */
    int64_t dims[MIL_MAX_RANK];
    bool ok = true;
    int64_t prod = 1;
    for (int i = 0; i < t->rank; i++) {
        dims[i] = t->dims[i];
        if (dims[i] < 0) ok = false;
        else prod *= dims[i];
    }
    if (!ok || prod != c->count) {
        for (int i = 0; i < t->rank - 1; i++) dims[i] = 1;
        dims[t->rank - 1] = c->count;
    }
    int64_t pos = 0;
    print_nested(b, c, dims, t->rank, 0, &pos);
}

static void print_payload(Buf *b, const MilConst *c) {
    switch (c->kind) {
    case MIL_CONST_TENSOR:
        print_tensor_payload(b, c);
        return;
    case MIL_CONST_BLOB:
        puts_(b, "BLOBFILE(path = ");
        print_type(b, &(MilType){ .kind = MIL_TY_TENSOR, .dtype = MIL_DT_STRING });
        puts_(b, "(");
        print_string(b, c->blob_path);
        puts_(b, "), offset = ");
        print_type(b, &(MilType){ .kind = MIL_TY_TENSOR, .dtype = MIL_DT_UINT64 });
        putf(b, "(%" PRIu64 "))", c->blob_offset);
        return;
    case MIL_CONST_LIST:
    case MIL_CONST_TUPLE:
        puts_(b, c->kind == MIL_CONST_LIST ? "[" : "(");
        for (int i = 0; i < c->nitems; i++) {
            if (i) puts_(b, ", ");
            if (c->items[i]) print_payload(b, c->items[i]);
        }
        puts_(b, c->kind == MIL_CONST_LIST ? "]" : ")");
        return;
    case MIL_CONST_DICT:
        puts_(b, "{");
        for (int i = 0; i + 1 < c->nitems; i += 2) {
            if (i) puts_(b, ", ");
            puts_(b, "{");
            if (c->items[i]) print_payload(b, c->items[i]);
            puts_(b, ", ");
            if (c->items[i + 1]) print_payload(b, c->items[i + 1]);
            puts_(b, "}");
        }
        puts_(b, "}");
        return;
    case MIL_CONST_EMPTY:
        return;
    }
}

/* ------------------------------------------------------------ statements */

static int cmp_arg(const void *a, const void *b) {
    const MilArg *x = *(const MilArg *const *)a, *y = *(const MilArg *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x < y ? -1 : x > y);   /* stable for duplicates */
}

static int cmp_attr(const void *a, const void *b) {
    const MilAttr *x = *(const MilAttr *const *)a, *y = *(const MilAttr *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x < y ? -1 : x > y);
}

static void print_binding(Buf *b, const MilBinding *bd) {
    if (bd->value) puts_(b, bd->value->name);
    else if (bd->cst) print_value(b, bd->cst);
    else puts_(b, "?");
}

/* `[k = v, ...]` sorted by key; nothing at all when there are no attrs. */
static void print_attrs(Buf *b, const MilAttr *attrs, int n) {
    if (n <= 0) return;
    const MilAttr *stackv[16];
    const MilAttr **v = n <= 16 ? stackv : malloc((size_t)n * sizeof *v);
    if (!v) {
        b->oom = true;
        return;
    }
    for (int i = 0; i < n; i++) v[i] = &attrs[i];
    qsort(v, (size_t)n, sizeof *v, cmp_attr);
    puts_(b, "[");
    for (int i = 0; i < n; i++) {
        if (i) puts_(b, ", ");
        puts_(b, v[i]->name);
        puts_(b, " = ");
        if (v[i]->val) print_value(b, v[i]->val);
    }
    puts_(b, "]");
    if (v != stackv) free(v);
}

static void print_op(Buf *b, const MilOp *op) {
    puts_(b, "            ");
    for (int i = 0; i < op->nresults; i++) {
        if (i) puts_(b, ", ");
        print_type(b, op->results[i]->type);
        puts_(b, " ");
        puts_(b, op->results[i]->name);
    }
    if (op->nresults) puts_(b, " = ");
    puts_(b, mil_op_display_name(op));
    if (op->opset) putf(b, "<%s>", op->opset);
    puts_(b, "(");
    if (op->nargs > 0) {
        const MilArg *stackv[16];
        const MilArg **v = op->nargs <= 16 ? stackv : malloc((size_t)op->nargs * sizeof *v);
        if (!v) {
            b->oom = true;
            return;
        }
        for (int i = 0; i < op->nargs; i++) v[i] = &op->args[i];
        qsort(v, (size_t)op->nargs, sizeof *v, cmp_arg);
        for (int i = 0; i < op->nargs; i++) {
            const MilArg *a = v[i];
            if (i) puts_(b, ", ");
            puts_(b, a->name);
            puts_(b, " = ");
            if (a->variadic) {
                puts_(b, "(");
                for (int j = 0; j < a->n; j++) {
                    if (j) puts_(b, ", ");
                    print_binding(b, &a->items[j]);
                }
                puts_(b, ")");
            } else if (a->n > 0) {
                print_binding(b, &a->items[0]);
            }
        }
        if (v != stackv) free(v);
    }
    puts_(b, ")");
    print_attrs(b, op->attrs, op->nattrs);
    puts_(b, ";\n");
}

static void print_func(Buf *b, const MilFunc *f) {
    puts_(b, "    func ");
    puts_(b, f->name);
    if (f->opset) putf(b, "<%s>", f->opset);
    puts_(b, "(");
    for (int i = 0; i < f->nparams; i++) {
        if (i) puts_(b, ", ");
        print_type(b, f->params[i]->type);
        puts_(b, " ");
        puts_(b, f->params[i]->name);
    }
    puts_(b, ")");
    if (f->nattrs > 0) {
        puts_(b, " ");
        print_attrs(b, f->attrs, f->nattrs);
    }
    puts_(b, " {\n");
    for (const MilOp *op = f->body.first; op; op = op->next) print_op(b, op);
    puts_(b, "        } -> (");
    for (int i = 0; i < f->body.nouts; i++) {
        if (i) puts_(b, ", ");
        puts_(b, f->body.outs[i] ? f->body.outs[i]->name : "?");
    }
    puts_(b, ");\n");
}

/* The version line: as written when printing in the program's own spelling,
 * otherwise the canonical version of the requested spelling. */
static const char *version_for(const MilProgram *p, MilSpelling sp) {
    if (mil_program_spelling(p) == sp && p->version) return p->version;
    return sp == MIL_SPELLING_1_3 ? "1.3" : "1.0";
}

int mil_type_format(const MilType *t, MilSpelling sp, char *buf, size_t size) {
    Buf b = { 0 };
    b.sp = sp == MIL_SPELLING_1_0 ? MIL_SPELLING_1_0 : MIL_SPELLING_1_3;
    print_type(&b, t);
    int n = b.oom ? -1 : (int)b.n;
    if (buf && size) {
        size_t k = b.oom ? 0 : (b.n < size ? b.n : size - 1);
        if (k) memcpy(buf, b.s, k);
        buf[k] = 0;
    }
    free(b.s);
    return n;
}

char *mil_print(const MilProgram *p, MilSpelling sp, size_t *len) {
    if (!p) return NULL;
    Buf b = { 0 };
    b.sp = sp == MIL_SPELLING_SAME ? mil_program_spelling(p) : sp;
    reserve(&b, 0);
    putf(&b, "program(%s)\n", version_for(p, b.sp));
    if (p->nattrs > 0) {
        print_attrs(&b, p->attrs, p->nattrs);
        puts_(&b, "\n");
    }
    puts_(&b, "{\n");
    for (int i = 0; i < p->nfuncs; i++) {
        if (i && p->funcs[i]->blank_before) puts_(&b, "\n");
        print_func(&b, p->funcs[i]);
    }
    puts_(&b, p->trailing_newline ? "}\n" : "}");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    if (len) *len = b.n;
    return b.s;
}

int mil_print_file(const MilProgram *p, MilSpelling sp, FILE *out) {
    size_t n;
    char *s = mil_print(p, sp, &n);
    if (!s) return -1;
    size_t w = fwrite(s, 1, n, out);
    free(s);
    if (w != n || fflush(out) != 0 || ferror(out)) return -1;
    return 0;
}
