/* runtime/milb_load.c -- the .milb loader (format: ir/milbin.h).
 *
 * Two stages, both without compiler code:
 *   mil_rt_milb_parse   bytes -> MilbView.  Validates everything before use:
 *                       size, magic, version, then the XXH3 checksum of the
 *                       whole file, then sentinel, samples, flags, the section
 *                       table, and every field of every section (bounds, counts
 *                       against the bytes left, codes, ranks, references
 *                       between sections, argument slots against ir/ops.def,
 *                       SSA order), and finally the content hash.
 *   mil_rt_milb_load    MilbView -> MilRtProgram with the rules of
 *                       backend/lower.c (CONST values, "<op>.<arg>" names for
 *                       inline constants, ops.def defaults materialised,
 *                       constexpr ops evaluated), weight references resolved
 *                       next to the .milb and checked by xxhash.
 * Errors: "prog.milb: bad binary format (CODE: op 3 'matmul': argument slot 9
 * out of range)". */
#include "runtime/runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

/* ------------------------------------------------------------------ memory */

typedef struct MemBlock {
    struct MemBlock *next;
    size_t size;
} MemBlock;

/* Zeroed allocation owned by the view (one malloc per allocation; the view's
 * blocks may later be adopted by a program). */
static void *vmem(MilbView *v, size_t n) {
    if (n > ((size_t)1 << 40)) return NULL;
    MemBlock *b = calloc(1, sizeof(MemBlock) + 16 + (n ? n : 1));
    if (!b) return NULL;
    b->next = v->mem_;
    b->size = n;
    v->mem_ = b;
    return (char *)b + sizeof(MemBlock) + 16 - (sizeof(MemBlock) % 16);
}

void mil_rt_milb_view_free(MilbView *v) {
    if (!v) return;
    MemBlock *b = v->mem_;
    while (b) {
        MemBlock *n = b->next;
        free(b);
        b = n;
    }
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------------ parser */

typedef struct Parser {
    MilbView *v;
    const char *file;
    MilRtErr *e;
    const char *sec;       /* current section name */
    bool failed;
} Parser;

/* A MIL identifier: [A-Za-z_][A-Za-z0-9_@]*.  Value, function, input and
 * output names become file names (mil-run -o DIR), so nothing else passes. */
static bool ident_char(char ch, bool first) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
           (!first && ((ch >= '0' && ch <= '9') || ch == '@'));
}

static bool is_ident(const char *s) {
    if (!s || !ident_char(*s, true)) return false;
    for (s++; *s; s++)
        if (!ident_char(*s, false)) return false;
    return true;
}

static int bad(Parser *P, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(Parser *P, const char *fmt, ...) {
    if (P->failed) return -1;
    P->failed = true;
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (P->sec)
        return mil_rt_errf(P->e, "%s: bad binary format (%s: %s)", P->file, P->sec, msg);
    return mil_rt_errf(P->e, "%s: bad binary format (%s)", P->file, msg);
}

#define TRUNC(P, c, what) ((c)->bad ? bad((P), "%s truncated or malformed", (what)) : 0)

/* varint that must be < limit (an index or count); returns -1 on error. */
static int64_t get_index(Parser *P, MilbCursor *c, uint64_t limit, const char *what) {
    uint64_t x;
    if (!milb_get_varint(c, &x)) return bad(P, "%s truncated or malformed", what);
    if (x >= limit) return bad(P, "%s %llu out of range (limit %llu)", what, (unsigned long long)x,
                               (unsigned long long)limit);
    return (int64_t)x;
}
/* A count that cannot exceed the bytes left (each item takes >= min bytes). */
static int64_t get_count(Parser *P, MilbCursor *c, size_t min, const char *what) {
    uint64_t x;
    if (!milb_get_varint(c, &x)) return bad(P, "%s truncated or malformed", what);
    if (x > milb_left(c) / (min ? min : 1) || x > INT32_MAX)
        return bad(P, "%s %llu exceeds the %zu bytes left", what, (unsigned long long)x, milb_left(c));
    return (int64_t)x;
}

static int parse_strings(Parser *P, MilbCursor *c) {
    MilbView *v = P->v;
    int64_t n = get_count(P, c, 1, "string count");
    if (n < 0) return -1;
    const char **s = vmem(v, sizeof *s * (size_t)(n + 1));
    if (!s) return bad(P, "out of memory");
    size_t prevlen = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t lp;
        const uint8_t *b;
        if (!milb_get_varint(c, &lp)) return bad(P, "string %lld: length truncated or malformed", (long long)i);
        size_t pre = (size_t)(lp & 7);
        uint64_t len = lp >> 3;
        if (len > milb_left(c)) return bad(P, "string %lld: length %llu exceeds the %zu bytes left", (long long)i,
                                          (unsigned long long)len, milb_left(c));
        if (pre > prevlen) return bad(P, "string %lld: shares %zu bytes with a string of %zu", (long long)i, pre, prevlen);
        if (!milb_get_bytes(c, (size_t)len, &b)) return bad(P, "string %lld truncated", (long long)i);
        if (memchr(b, 0, (size_t)len)) return bad(P, "string %lld contains a NUL byte", (long long)i);
        char *d = vmem(v, pre + (size_t)len + 1);
        if (!d) return bad(P, "out of memory");
        if (pre) memcpy(d, s[i - 1], pre);
        memcpy(d + pre, b, (size_t)len);
        s[i] = d;
        prevlen = pre + (size_t)len;
    }
    v->nstrings = (int)n;
    v->strings = s;
    return 0;
}

static int parse_types(Parser *P, MilbCursor *c) {
    MilbView *v = P->v;
    int64_t n = get_count(P, c, 2, "type count");
    if (n < 0) return -1;
    MilbType *t = vmem(v, sizeof *t * (size_t)(n + 1));
    if (!t) return bad(P, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        MilbType *ty = &t[i];
        uint8_t kb;
        if (!milb_get_byte(c, &kb)) return bad(P, "type %lld: kind truncated", (long long)i);
        ty->kind = kb & 7;
        if (kb & 8) return bad(P, "type %lld: unknown layout", (long long)i);
        if (ty->kind > MILB_TY_MAX) return bad(P, "type %lld: unknown kind %d", (long long)i, ty->kind);
        if (ty->kind != MILB_TY_TENSOR && (kb >> 4)) return bad(P, "type %lld: rank bits on a non-tensor type", (long long)i);
        ty->elem = ty->val = -1;
        switch (ty->kind) {
        case MILB_TY_TENSOR: {
            uint64_t code, rank = (uint64_t)(kb >> 4);
            if (!milb_get_varint(c, &code)) return bad(P, "type %lld: dtype truncated", (long long)i);
            ty->dtype = milb_dtype_from_code(code);
            if (ty->dtype == MIL_DT_NONE)
                return bad(P, "type %lld: unknown dtype code %llu", (long long)i, (unsigned long long)code);
            if (rank > MIL_MAX_RANK)
                return bad(P, "type %lld: rank %llu above the limit of %d", (long long)i, (unsigned long long)rank,
                           MIL_MAX_RANK);
            ty->rank = (int)rank;
            int64_t *dims = vmem(v, sizeof *dims * (rank ? rank : 1));
            if (!dims) return bad(P, "out of memory");
            for (uint64_t k = 0; k < rank; k++) {
                uint64_t d;
                if (!milb_get_varint(c, &d)) return bad(P, "type %lld: dim %llu truncated", (long long)i,
                                                        (unsigned long long)k);
                if (d > (uint64_t)MILB_MAX_DIM)
                    return bad(P, "type %lld: dim %llu too large", (long long)i, (unsigned long long)k);
                dims[k] = (int64_t)d - 1;
            }
            ty->dims = dims;
            break;
        }
        case MILB_TY_LIST: {
            uint64_t l;
            if ((ty->elem = (int)get_index(P, c, (uint64_t)i, "list element type")) < 0) return -1;
            if (!milb_get_varint(c, &l)) return bad(P, "type %lld: list length truncated", (long long)i);
            ty->len = milb_unzigzag(l);
            if (ty->len < -1 || ty->len > INT32_MAX) return bad(P, "type %lld: bad list length", (long long)i);
            break;
        }
        case MILB_TY_DICT:
            if ((ty->elem = (int)get_index(P, c, (uint64_t)i, "dict key type")) < 0) return -1;
            if ((ty->val = (int)get_index(P, c, (uint64_t)i, "dict value type")) < 0) return -1;
            break;
        case MILB_TY_TUPLE: {
            int64_t nt = get_count(P, c, 1, "tuple size");
            if (nt < 0) return -1;
            uint32_t *ts = vmem(v, sizeof *ts * (size_t)(nt + 1));
            if (!ts) return bad(P, "out of memory");
            for (int64_t k = 0; k < nt; k++) {
                int64_t x = get_index(P, c, (uint64_t)i, "tuple element type");
                if (x < 0) return -1;
                ts[k] = (uint32_t)x;
            }
            ty->ntypes = (int)nt;
            ty->types = ts;
            break;
        }
        case MILB_TY_STATE:
            if ((ty->elem = (int)get_index(P, c, (uint64_t)i, "state type")) < 0) return -1;
            if (t[ty->elem].kind != MILB_TY_TENSOR) return bad(P, "type %lld: state of a non-tensor", (long long)i);
            break;
        }
    }
    v->ntypes = (int)n;
    v->types = t;
    return 0;
}

static int parse_weights(Parser *P, MilbCursor *c) {
    MilbView *v = P->v;
    int64_t nf = get_count(P, c, 1, "weight file count");
    if (nf < 0) return -1;
    MilbWeightFile *wf = vmem(v, sizeof *wf * (size_t)(nf + 1));
    if (!wf) return bad(P, "out of memory");
    for (int64_t i = 0; i < nf; i++) {
        int64_t s = get_index(P, c, ((uint64_t)v->nstrings) << 1, "weight file path string");
        const uint8_t *h = NULL;
        if (s < 0) return -1;
        bool hh = s & 1;
        s >>= 1;
        if (hh && !milb_get_bytes(c, 8, &h)) return bad(P, "weight file %lld: hash truncated", (long long)i);
        if (!v->strings[s][0]) return bad(P, "weight file %lld: empty path", (long long)i);
        for (int64_t j = 0; j < i; j++)
            if (wf[j].path == s) return bad(P, "weight file %lld: path listed twice", (long long)i);
        wf[i].path = (int)s;
        wf[i].has_hash = hh;
        wf[i].hash = hh ? milb_get_u64(h) : 0;
    }
    int64_t n = get_count(P, c, 2, "weight reference count");
    if (n < 0) return -1;
    if (n == 0 || nf == 0) return bad(P, "a WEIGHTS section without references");
    MilbWeight *w = vmem(v, sizeof *w * (size_t)(n + 1));
    if (!w) return bad(P, "out of memory");
    bool *used = vmem(v, (size_t)nf + 1);
    if (!used) return bad(P, "out of memory");
    int64_t prev = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t f = get_index(P, c, (uint64_t)nf, "weight reference file");
        uint64_t d;
        if (f < 0) return -1;
        if (!milb_get_varint(c, &d)) return bad(P, "weight %lld: offset truncated", (long long)i);
        int64_t delta = milb_unzigzag(d);
        if (delta > ((int64_t)1 << 50) || delta < -((int64_t)1 << 50) || prev + delta < 1 || prev + delta > ((int64_t)1 << 50))
            return bad(P, "weight %lld: offset is not a valid blob offset", (long long)i);
        prev += delta;
        uint64_t off = (uint64_t)prev * 64;
        for (int64_t j = 0; j < i; j++)
            if (w[j].file == f && w[j].offset == off) return bad(P, "weight %lld: duplicate reference", (long long)i);
        w[i].file = (int)f;
        w[i].path = wf[f].path;
        w[i].offset = off;
        used[f] = true;
    }
    for (int64_t i = 0; i < nf; i++)
        if (!used[i]) return bad(P, "weight file %lld has no references", (long long)i);
    v->nwfiles = (int)nf;
    v->wfiles = wf;
    v->nweights = (int)n;
    v->weights = w;
    return 0;
}

static int64_t type_numel(const MilbType *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0) return -1;
        if (t->dims[i] && n > INT64_MAX / 64 / t->dims[i]) return -2;
        n *= t->dims[i];
    }
    return n;
}

static bool int_in_range(MilDType dt, int64_t x) {
    switch (dt) {
    case MIL_DT_BOOL: return x == 0 || x == 1;
    case MIL_DT_INT8: return x >= -128 && x <= 127;
    case MIL_DT_INT16: return x >= -32768 && x <= 32767;
    case MIL_DT_INT32: return x >= INT32_MIN && x <= INT32_MAX;
    case MIL_DT_INT64: case MIL_DT_UINT64: return true;
    case MIL_DT_INT4: return x >= -8 && x <= 7;
    case MIL_DT_UINT8: return x >= 0 && x <= 255;
    case MIL_DT_UINT16: return x >= 0 && x <= 65535;
    case MIL_DT_UINT32: return x >= 0 && x <= (int64_t)UINT32_MAX;
    case MIL_DT_UINT4: return x >= 0 && x <= 15;
    case MIL_DT_UINT2: return x >= 0 && x <= 3;
    case MIL_DT_UINT1: return x >= 0 && x <= 1;
    case MIL_DT_UINT6: return x >= 0 && x <= 63;
    case MIL_DT_UINT3: return x >= 0 && x <= 7;
    default: return false;
    }
}

static size_t storage_size(MilDType dt) {
    switch (dt) {
    case MIL_DT_FP16: case MIL_DT_BF16: case MIL_DT_INT16: case MIL_DT_UINT16: return 2;
    case MIL_DT_FP32: case MIL_DT_INT32: case MIL_DT_UINT32: return 4;
    case MIL_DT_FP64: case MIL_DT_INT64: case MIL_DT_UINT64: return 8;
    case MIL_DT_STRING: return sizeof(const char *);
    default: return 1;
    }
}

static void store_int(void *dst, MilDType dt, int64_t i, int64_t x) {
    switch (storage_size(dt)) {
    case 1: ((int8_t *)dst)[i] = (int8_t)(uint8_t)x; break;
    case 2: { uint16_t u = (uint16_t)x; memcpy((char *)dst + 2 * i, &u, 2); break; }
    case 4: { uint32_t u = (uint32_t)x; memcpy((char *)dst + 4 * i, &u, 4); break; }
    default: { uint64_t u = (uint64_t)x; memcpy((char *)dst + 8 * i, &u, 8); break; }
    }
}

static int parse_consts(Parser *P, MilbCursor *c) {
    MilbView *v = P->v;
    int64_t n = get_count(P, c, 1, "constant count");
    if (n < 0) return -1;
    MilbConst *k = vmem(v, sizeof *k * (size_t)(n + 1));
    if (!k) return bad(P, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        MilbConst *cs = &k[i];
        int64_t tkind = get_index(P, c, (uint64_t)v->ntypes << 3, "constant type");
        if (tkind < 0) return -1;
        int kind = (int)(tkind & 7);
        int64_t ti = tkind >> 3;
        if (kind > MILB_C_MAX) return bad(P, "constant %lld: unknown kind %d", (long long)i, kind);
        cs->kind = kind;
        cs->type = (int)ti;
        const MilbType *ty = &v->types[ti];
        cs->weight = -1;
        switch (kind) {
        case MILB_C_TENSOR: {
            if (ty->kind != MILB_TY_TENSOR) return bad(P, "constant %lld: tensor data with a non-tensor type", (long long)i);
            MilDType dt = ty->dtype;
            int fb = milb_float_bytes(dt);
            int64_t cnt = type_numel(ty);
            if (cnt < 0) return bad(P, "constant %lld: tensor data with an unknown or huge shape", (long long)i);
            if ((uint64_t)cnt > milb_left(c) / (fb ? (size_t)fb : 1))
                return bad(P, "constant %lld: %lld elements cannot fit in the %zu bytes left", (long long)i,
                           (long long)cnt, milb_left(c));
            size_t es = storage_size(dt);
            void *data = vmem(v, es * (size_t)cnt);
            if (!data) return bad(P, "out of memory");
            if (fb) {
                const uint8_t *b;
                if (!milb_get_bytes(c, (size_t)fb * (size_t)cnt, &b))
                    return bad(P, "constant %lld: data truncated", (long long)i);
                for (int64_t j = 0; j < cnt; j++) {
                    const uint8_t *q = b + (size_t)fb * (size_t)j;
                    if (fb == 1) ((uint8_t *)data)[j] = q[0];
                    else if (fb == 2) { uint16_t u = (uint16_t)(q[0] | q[1] << 8); memcpy((char *)data + 2 * j, &u, 2); }
                    else if (fb == 4) { uint32_t u = milb_get_u32(q); memcpy((char *)data + 4 * j, &u, 4); }
                    else { uint64_t u = milb_get_u64(q); memcpy((char *)data + 8 * j, &u, 8); }
                }
            } else if (dt == MIL_DT_STRING) {
                const char **sp = data;
                for (int64_t j = 0; j < cnt; j++) {
                    int64_t s = get_index(P, c, (uint64_t)v->nstrings, "string element");
                    if (s < 0) return -1;
                    sp[j] = v->strings[s];
                }
            } else {
                for (int64_t j = 0; j < cnt; j++) {
                    uint64_t u;
                    if (!milb_get_varint(c, &u)) return bad(P, "constant %lld: element %lld truncated", (long long)i, (long long)j);
                    int64_t x = milb_unzigzag(u);
                    if (!int_in_range(dt, x))
                        return bad(P, "constant %lld: element %lld (%lld) out of range for its dtype", (long long)i,
                                   (long long)j, (long long)x);
                    store_int(data, dt, j, x);
                }
            }
            cs->count = cnt;
            cs->data = data;
            break;
        }
        case MILB_C_BLOB: {
            if (ty->kind != MILB_TY_TENSOR) return bad(P, "constant %lld: weight with a non-tensor type", (long long)i);
            int64_t w = get_index(P, c, (uint64_t)v->nweights, "constant weight reference");
            if (w < 0) return -1;
            int64_t want = type_numel(ty);
            if (want < 0) return bad(P, "constant %lld: weight with an unknown or huge shape", (long long)i);
            cs->weight = (int)w;
            cs->count = want;
            break;
        }
        case MILB_C_LIST: case MILB_C_TUPLE: case MILB_C_DICT: {
            int tk = kind == MILB_C_LIST ? MILB_TY_LIST : kind == MILB_C_TUPLE ? MILB_TY_TUPLE : MILB_TY_DICT;
            if (ty->kind != tk) return bad(P, "constant %lld: aggregate kind does not match its type", (long long)i);
            int64_t ni = get_count(P, c, 1, "aggregate size");
            if (ni < 0) return -1;
            if (kind == MILB_C_DICT && ni % 2) return bad(P, "constant %lld: odd dict item count", (long long)i);
            uint32_t *it = vmem(v, sizeof *it * (size_t)(ni + 1));
            if (!it) return bad(P, "out of memory");
            for (int64_t j = 0; j < ni; j++) {
                int64_t x = get_index(P, c, (uint64_t)i, "aggregate item");
                if (x < 0) return -1;
                it[j] = (uint32_t)x;
            }
            cs->nitems = (int)ni;
            cs->items = it;
            break;
        }
        case MILB_C_EMPTY:
            break;
        }
    }
    v->nconsts = (int)n;
    v->consts = k;
    return 0;
}

static int parse_attrs(Parser *P, MilbCursor *c, int *nout, const MilbAttr **out) {
    MilbView *v = P->v;
    int64_t n = get_count(P, c, 2, "attribute count");
    if (n < 0) return -1;
    MilbAttr *a = vmem(v, sizeof *a * (size_t)(n + 1));
    if (!a) return bad(P, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        int64_t s = get_index(P, c, (uint64_t)v->nstrings, "attribute name");
        if (s < 0) return -1;
        int64_t k = get_index(P, c, (uint64_t)v->nconsts, "attribute constant");
        if (k < 0) return -1;
        for (int64_t j = 0; j < i; j++)
            if (a[j].name == s) return bad(P, "attribute '%s' given twice", v->strings[s]);
        a[i].name = (int)s;
        a[i].cst = (int)k;
    }
    *nout = (int)n;
    *out = a;
    return 0;
}

static int parse_funcs(Parser *P, MilbCursor *c, MilbFunc **fout) {
    MilbView *v = P->v;
    int64_t s = get_index(P, c, (uint64_t)v->nstrings, "program version string");
    if (s < 0) return -1;
    v->version_str = (int)s;
    uint8_t pf;
    if (!milb_get_byte(c, &pf)) return bad(P, "program flags truncated");
    if (pf & ~MILB_PF_TRAILING_NEWLINE) return bad(P, "unknown program flags 0x%02x", pf);
    v->prog_flags = pf;
    if (parse_attrs(P, c, &v->nattrs, &v->attrs)) return -1;
    int64_t nf = get_count(P, c, 5, "function count");
    if (nf < 0) return -1;
    MilbFunc *f = vmem(v, sizeof *f * (size_t)(nf + 1));
    if (!f) return bad(P, "out of memory");
    for (int64_t i = 0; i < nf; i++) {
        MilbFunc *fn = &f[i];
        int64_t x = get_index(P, c, (uint64_t)v->nstrings, "function name");
        if (x < 0) return -1;
        fn->name = (int)x;
        if (!is_ident(v->strings[x])) return bad(P, "name '%s' is not an identifier", v->strings[x]);
        for (int64_t j = 0; j < i; j++)
            if (f[j].name == fn->name) return bad(P, "function '%s' defined twice", v->strings[x]);
        x = get_index(P, c, (uint64_t)v->nstrings + 1, "function opset");
        if (x < 0) return -1;
        fn->opset = (int)x - 1;
        if (parse_attrs(P, c, &fn->nattrs, &fn->attrs)) return -1;
        int64_t np = get_count(P, c, 2, "parameter count");
        if (np < 0) return -1;
        uint32_t *pn = vmem(v, sizeof *pn * (size_t)(np + 1)), *pt = vmem(v, sizeof *pt * (size_t)(np + 1));
        if (!pn || !pt) return bad(P, "out of memory");
        for (int64_t j = 0; j < np; j++) {
            if ((x = get_index(P, c, (uint64_t)v->nstrings, "parameter name")) < 0) return -1;
            if (!is_ident(v->strings[x])) return bad(P, "name '%s' is not an identifier", v->strings[x]);
            pn[j] = (uint32_t)x;
            if ((x = get_index(P, c, (uint64_t)v->ntypes, "parameter type")) < 0) return -1;
            pt[j] = (uint32_t)x;
        }
        fn->nparams = (int)np;
        fn->param_names = pn;
        fn->param_types = pt;
        int64_t nops = get_index(P, c, (uint64_t)INT32_MAX, "op count"); /* bounded by CODE below */
        if (nops < 0) return -1;
        fn->nops = (int)nops;
        int64_t no = get_count(P, c, 1, "output count");
        if (no < 0) return -1;
        uint32_t *o = vmem(v, sizeof *o * (size_t)(no + 1));
        if (!o) return bad(P, "out of memory");
        for (int64_t j = 0; j < no; j++) {
            uint64_t u;
            if (!milb_get_varint(c, &u) || u > INT32_MAX) return bad(P, "function %lld: output %lld malformed", (long long)i, (long long)j);
            o[j] = (uint32_t)u;   /* checked against the values after CODE */
        }
        fn->nouts = (int)no;
        fn->outs = o;
    }
    v->nfuncs = (int)nf;
    *fout = f;
    v->funcs = f;
    return 0;
}

static int parse_code(Parser *P, MilbCursor *c, MilbFunc *funcs) {
    MilbView *v = P->v;
    /* the op palette and the default flags */
    int64_t npal = get_count(P, c, 1, "op palette size");
    if (npal < 0) return -1;
    if (npal > MIL_OP_COUNT) return bad(P, "op palette of %lld entries (the ops table has %d ops)", (long long)npal, MIL_OP_COUNT);
    MilOpKind pal[MIL_OP_COUNT + 1];
    uint8_t palfl[MIL_OP_COUNT + 1];
    uint64_t palmask[MIL_OP_COUNT + 1];
    for (int64_t i = 0; i < npal; i++) {
        uint64_t wire;
        if (!milb_get_varint(c, &wire) || !milb_get_byte(c, &palfl[i])) return bad(P, "op palette truncated");
        pal[i] = wire ? milb_op_from_wire(wire) : MIL_OP_UNKNOWN;
        if (wire && pal[i] == MIL_OP_UNKNOWN) return bad(P, "op palette: unknown opcode 0x%04llx", (unsigned long long)wire);
        palmask[i] = 0;
        if (wire) {
            int ns = milb_op_row(pal[i])->nargs;
            if (!milb_get_varint(c, &palmask[i])) return bad(P, "op palette truncated");
            if (ns < 64 && (palmask[i] >> ns))
                return bad(P, "op palette: slot mask 0x%llx names slots beyond the op's %d", (unsigned long long)palmask[i], ns);
        }
        for (int64_t j = 0; j < i; j++)
            if (pal[j] == pal[i]) return bad(P, "op palette: opcode 0x%04llx listed twice", (unsigned long long)wire);
    }
    int64_t total = 0;
    for (int fi = 0; fi < v->nfuncs; fi++) total += funcs[fi].nops;
    if ((uint64_t)total > milb_left(c) / 2) return bad(P, "%lld ops cannot fit in %zu bytes", (long long)total, milb_left(c));
    /* which values are constants (const / constexpr results), for A_CONST;
     * every result takes >= 2 bytes of CODE */
    int maxparams = 0;
    for (int fi = 0; fi < v->nfuncs; fi++)
        if (funcs[fi].nparams > maxparams) maxparams = funcs[fi].nparams;
    size_t nvmax = (size_t)maxparams + milb_left(c) + 1;
    uint8_t *isconst = vmem(v, nvmax);
    uint32_t *vtype = vmem(v, sizeof *vtype * nvmax);
    if (!isconst || !vtype) return bad(P, "out of memory");
    for (int fi = 0; fi < v->nfuncs; fi++) {
        MilbFunc *fn = &funcs[fi];
        MilbOp *ops = vmem(v, sizeof *ops * (size_t)(fn->nops + 1));
        if (!ops) return bad(P, "out of memory");
        int64_t nvalues = fn->nparams;
        memset(isconst, 0, (size_t)fn->nparams);
        for (int j = 0; j < fn->nparams; j++) vtype[j] = fn->param_types[j];
        for (int oi = 0; oi < fn->nops; oi++) {
            MilbOp *op = &ops[oi];
            char where[160];
            uint64_t head;
            snprintf(where, sizeof where, "function '%s' op %d", v->strings[fn->name], oi);
            if (!milb_get_varint(c, &head)) return bad(P, "%s: opcode truncated", where);
            if ((head >> 1) >= (uint64_t)npal)
                return bad(P, "%s: op palette index %llu out of range (limit %lld)", where, (unsigned long long)(head >> 1),
                           (long long)npal);
            uint8_t fl = palfl[head >> 1];
            if ((head & 1) && !milb_get_byte(c, &fl)) return bad(P, "%s: flags truncated", where);
            op->opname = op->opset = op->name = -1;
            op->kind = pal[head >> 1];
            const MilbOpRow *row = NULL;
            if (op->kind == MIL_OP_UNKNOWN) {
                int64_t x = get_index(P, c, (uint64_t)v->nstrings, "unknown op spelling");
                if (x < 0) return -1;
                op->opname = (int)x;
            } else {
                row = milb_op_row(op->kind);
                snprintf(where, sizeof where, "function '%s' op %d '%s'", v->strings[fn->name], oi, row->name);
            }
            if (((fl & MILB_OP_NAME0) && (fl & MILB_OP_NAME)) ||
                ((fl & MILB_OP_VAL) && (op->kind != MIL_OP_CONST || (fl & (MILB_OP_ATTRS | MILB_OP_MASK | MILB_OP_TSAME)))) ||
                ((fl & MILB_OP_ANON) && (fl & MILB_OP_NAME0)) ||
                (!row && (fl & (MILB_OP_MASK | MILB_OP_TSAME))) || ((fl & MILB_OP_TSAME) && row->nresults != 1))
                return bad(P, "%s: bad flags 0x%02x", where, fl);
            uint64_t mask = palmask[head >> 1];
            if ((fl & MILB_OP_MASK) && !milb_get_varint(c, &mask)) return bad(P, "%s: argument mask truncated", where);
            op->anon = fl & MILB_OP_ANON;
            if (fl & MILB_OP_OPSET) {
                int64_t x = get_index(P, c, (uint64_t)v->nstrings, "op opset");
                if (x < 0) return -1;
                op->opset = (int)x;
            }
            if (fl & MILB_OP_NAME) {
                int64_t x = get_index(P, c, (uint64_t)v->nstrings, "op name");
                if (x < 0) return -1;
                op->name = (int)x;
            }
            int64_t nr, val = -1;
            if (fl & MILB_OP_VAL) {
                if ((val = get_index(P, c, (uint64_t)v->nconsts, "const value")) < 0) return -1;
                nr = 1;
            } else if (!row || row->nresults < 0) {
                if ((nr = get_count(P, c, 1, "result count")) < 0) return -1;
            } else {
                nr = row->nresults;
            }
            if ((fl & MILB_OP_NAME0) && nr == 0) return bad(P, "%s: name flag without results", where);
            uint32_t *rn = vmem(v, sizeof *rn * (size_t)(nr + 1)), *rt = vmem(v, sizeof *rt * (size_t)(nr + 1));
            if (!rn || !rt) return bad(P, "out of memory");
            for (int64_t j = 0; j < nr; j++) {
                int64_t x;
                if (!(fl & MILB_OP_ANON)) {
                    if ((x = get_index(P, c, (uint64_t)v->nstrings, "result name")) < 0) return -1;
                    if (!is_ident(v->strings[x])) return bad(P, "name '%s' is not an identifier", v->strings[x]);
                    rn[j] = (uint32_t)x;
                } else {
                    rn[j] = UINT32_MAX;   /* synthesised (milb_anon_name) */
                }
                if (val >= 0) x = v->consts[val].type;
                else if (fl & MILB_OP_TSAME) x = 0;   /* set from the arguments below */
                else if ((x = get_index(P, c, (uint64_t)v->ntypes, "result type")) < 0) return -1;
                rt[j] = (uint32_t)x;
            }
            if (fl & MILB_OP_NAME0) op->name = (int)rn[0];
            op->nresults = (int)nr;
            op->res_names = rn;
            op->res_types = rt;
            op->first_result = (int)nvalues;
            int nslots = row ? row->nargs : 0;
            int64_t na = 0;
            if (val >= 0) {
                /* a const op: no arguments, one attribute */
                MilbAttr *at = vmem(v, sizeof *at);
                if (!at) return bad(P, "out of memory");
                int vs = -1;
                for (int q = 0; q < v->nstrings && vs < 0; q++)
                    if (!strcmp(v->strings[q], "val")) vs = q;
                if (vs < 0) return bad(P, "%s: the string table has no 'val'", where);
                at->name = vs;
                at->cst = (int)val;
                op->nattrs = 1;
                op->attrs = at;
            } else if (row) {
                if (nslots < 64 && (mask >> nslots))
                    return bad(P, "%s: argument slot mask 0x%llx names slots beyond the op's %d", where,
                               (unsigned long long)mask, nslots);
                for (uint64_t m = mask; m; m &= m - 1) na++;
            } else if ((na = get_count(P, c, 2, "argument count")) < 0) {
                return -1;
            }
            MilbArg *args = vmem(v, sizeof *args * (size_t)(na + 1));
            if (!args) return bad(P, "out of memory");
            int slot = -1;
            for (int64_t j = 0; j < na; j++) {
                MilbArg *a = &args[j];
                uint64_t nv = 2;
                a->slot = a->name = -1;
                const MilbArgRow *ar = NULL;
                if (row) {
                    do slot++; while (!(mask >> slot & 1));
                    a->slot = slot;
                    ar = &row->args[slot];
                    if ((ar->flags & A_VARIADIC) && !milb_get_varint(c, &nv))
                        return bad(P, "%s: argument '%s' count truncated", where, ar->name);
                } else {
                    int64_t x = get_index(P, c, (uint64_t)v->nstrings, "argument name");
                    if (x < 0) return -1;
                    a->name = (int)x;
                    if (j && strcmp(v->strings[args[j - 1].name], v->strings[x]) >= 0)
                        return bad(P, "%s: argument '%s' out of order or repeated", where, v->strings[x]);
                    if (!milb_get_varint(c, &nv)) return bad(P, "%s: argument '%s' count truncated", where, v->strings[x]);
                }
                a->variadic = nv & 1;
                nv >>= 1;
                if (nv > milb_left(c) || nv > MILB_MAX_ARG_ITEMS || (!a->variadic && nv != 1))
                    return bad(P, "%s: argument %lld has a bad binding count", where, (long long)j);
                uint32_t *items = vmem(v, sizeof *items * (size_t)(nv + 1));
                if (!items) return bad(P, "out of memory");
                for (uint64_t q = 0; q < nv; q++) {
                    uint64_t b;
                    if (!milb_get_varint(c, &b)) return bad(P, "%s: binding truncated", where);
                    if (b & 1) {
                        if ((b >> 1) >= (uint64_t)v->nconsts) return bad(P, "%s: constant %llu out of range", where, (unsigned long long)(b >> 1));
                    } else {
                        if ((b >> 1) >= (uint64_t)nvalues)
                            return bad(P, "%s: argument refers %llu values back, only %lld are defined", where,
                                       (unsigned long long)(b >> 1), (long long)nvalues);
                        b = (uint64_t)(nvalues - 1 - (int64_t)(b >> 1)) << 1;   /* absolute value number */
                        if (ar && (ar->flags & A_CONST) && !isconst[b >> 1])
                            return bad(P, "%s: argument '%s' must be a constant", where, ar->name);
                    }
                    if (b > UINT32_MAX) return bad(P, "%s: binding out of range", where);
                    items[q] = (uint32_t)b;
                }
                a->n = (int)nv;
                a->items = items;
            }
            op->nargs = (int)na;
            op->args = args;
            if (fl & MILB_OP_TSAME) {
                int64_t first = -1;
                for (int64_t j = 0; j < na && first < 0; j++)
                    for (int q = 0; q < args[j].n && first < 0; q++)
                        if (!(args[j].items[q] & 1) && !isconst[args[j].items[q] >> 1]) first = args[j].items[q] >> 1;
                if (first < 0) return bad(P, "%s: implicit result type without a non-constant argument", where);
                rt[0] = vtype[first];
            }
            if (fl & MILB_OP_ATTRS) {
                if (parse_attrs(P, c, &op->nattrs, &op->attrs)) return -1;
                for (int j = 0; j < op->nattrs; j++)
                    if (!strcmp(v->strings[op->attrs[j].name], "name") && op->name >= 0)
                        return bad(P, "%s: 'name' attribute given twice", where);
            }
            /* required arguments (possibly given as attributes for A_ATTR) */
            for (int s = 0; row && s < nslots; s++) {
                if (!(row->args[s].flags & A_REQ)) continue;
                bool found = false;
                for (int j = 0; j < op->nargs && !found; j++) found = op->args[j].slot == s;
                for (int j = 0; j < op->nattrs && !found; j++)
                    found = (row->args[s].flags & A_ATTR) && !strcmp(v->strings[op->attrs[j].name], row->args[s].name);
                if (!found) return bad(P, "%s: missing required argument '%s'", where, row->args[s].name);
            }
            if (op->kind == MIL_OP_CONST) {
                bool hasval = false;
                for (int j = 0; j < op->nattrs; j++) hasval |= !strcmp(v->strings[op->attrs[j].name], "val");
                if (!hasval) return bad(P, "%s: const op without 'val'", where);
            }
            for (int64_t j = 0; j < nr; j++) {
                isconst[nvalues + j] = op->kind == MIL_OP_CONST || (row && (row->flags & OPF_CONSTEXPR));
                vtype[nvalues + j] = rt[j];
            }
            nvalues += nr;
            if (nvalues > INT32_MAX / 2) return bad(P, "%s: too many values", where);
        }
        fn->ops = ops;
        fn->nvalues = (int)nvalues;
        for (int j = 0; j < fn->nouts; j++)
            if (fn->outs[j] >= (uint32_t)nvalues)
                return bad(P, "function '%s': output %d names value %u, which is not defined", v->strings[fn->name], j,
                           fn->outs[j]);
    }
    return 0;
}

static int parse_debug(Parser *P, MilbCursor *c) {
    MilbView *v = P->v;
    int64_t len = get_count(P, c, 1, "source file name length");
    const uint8_t *b;
    if (len < 0) return -1;
    if (!milb_get_bytes(c, (size_t)len, &b)) return bad(P, "source file name truncated");
    if (memchr(b, 0, (size_t)len)) return bad(P, "source file name contains a NUL byte");
    char *name = vmem(v, (size_t)len + 1);
    if (!name) return bad(P, "out of memory");
    memcpy(name, b, (size_t)len);
    int64_t line = 0;
    for (int fi = 0; fi < v->nfuncs; fi++) {
        MilbFunc *fn = (MilbFunc *)&v->funcs[fi];
        MilbOp *ops = (MilbOp *)fn->ops;
        for (int oi = 0; oi < fn->nops; oi++) {
            uint64_t d, col;
            if (!milb_get_varint(c, &d) || !milb_get_varint(c, &col))
                return bad(P, "function '%s' op %d: location truncated", v->strings[fn->name], oi);
            int64_t dl = milb_unzigzag(d);
            if (dl > INT32_MAX || dl < -(int64_t)INT32_MAX || line + dl < 0 || line + dl > INT32_MAX || col > INT32_MAX)
                return bad(P, "function '%s' op %d: location out of range", v->strings[fn->name], oi);
            line += dl;
            ops[oi].line = (int)line;
            ops[oi].col = line ? (int)col : 0;
            if (!line && col) return bad(P, "function '%s' op %d: a column without a line", v->strings[fn->name], oi);
        }
    }
    v->debug_file = name;
    return 0;
}

int mil_rt_milb_parse(const void *buf, size_t len, const char *file, MilbView *v, MilRtErr *e) {
    memset(v, 0, sizeof *v);
    Parser P = {.v = v, .file = file ? file : "<milb>", .e = e};
    const uint8_t *b = buf;
    if (!b || len < MILB_MIN_SIZE) return bad(&P, "truncated: %zu bytes, a header needs %d", len, MILB_MIN_SIZE);
    if (memcmp(b, MILB_MAGIC, 4)) return bad(&P, "not a .milb file: bad magic");
    if (b[4] != MILB_VERSION) return bad(&P, "version mismatch: file has %d.%d, loader reads %d.%d", b[4] >> 4, b[4] & 15,
                                         MILB_VERSION >> 4, MILB_VERSION & 15);
    uint64_t sum = milb_get_u64(b + len - MILB_CHECKSUM_SIZE);
    uint64_t got = XXH3_64bits(b, len - MILB_CHECKSUM_SIZE);
    if (sum != got) {
        if (memcmp(b + 6, MILB_SENTINEL, 6)) return bad(&P, "corrupted: newline or byte conversion");
        return bad(&P, "checksum mismatch: file is truncated or corrupted");
    }
    v->checksum = sum;
    if (memcmp(b + 6, MILB_SENTINEL, 6)) return bad(&P, "corrupted: newline or byte conversion");
    if (b[5] != MILB_FORMAT) return bad(&P, "format mismatch");
    if (milb_get_u32(b + 12) != MILB_SAMPLE_INT) return bad(&P, "integer format mismatch");
    float f = MILB_SAMPLE_FLOAT;
    uint32_t fb;
    memcpy(&fb, &f, 4);
    if (milb_get_u32(b + 16) != fb) return bad(&P, "float format mismatch");
    v->version = b[4];
    v->format = b[5];
    v->flags = b[20];
    if (v->flags & ~MILB_F_WEIGHTS) return bad(&P, "unknown header flags 0x%02x", v->flags);
    int ns = b[21];
    if (ns < 1 || ns > MILB_SEC_MAX) return bad(&P, "section count %d out of range", ns);
    MilbCursor c = {b + MILB_HEADER_SIZE, b + len - MILB_CHECKSUM_SIZE, false};
    size_t off;
    int prev = 0;
    uint64_t lens[MILB_SEC_MAX];
    for (int i = 0; i < ns; i++) {
        uint8_t id;
        uint64_t l;
        if (!milb_get_byte(&c, &id) || !milb_get_varint(&c, &l)) return bad(&P, "section table truncated");
        if (id <= prev || id > MILB_SEC_MAX) return bad(&P, "section table: bad or out-of-order section id %d", id);
        prev = id;
        v->sections[i].id = id;
        lens[i] = l;
    }
    off = (size_t)(c.p - b);
    uint64_t rest = milb_left(&c);
    for (int i = 0; i < ns; i++) {
        if (lens[i] > rest) return bad(&P, "section table: %s length %llu exceeds the file", milb_section_name(v->sections[i].id),
                                      (unsigned long long)lens[i]);
        rest -= lens[i];
        v->sections[i].offset = off;
        v->sections[i].size = (size_t)lens[i];
        off += (size_t)lens[i];
    }
    if (rest) return bad(&P, "section table: %llu stray bytes after the sections", (unsigned long long)rest);
    v->nsections = ns;
    const MilbSectionInfo *sec[MILB_SEC_MAX + 1] = {0};
    for (int i = 0; i < ns; i++) sec[v->sections[i].id] = &v->sections[i];
    if (!sec[MILB_SEC_FUNCS] || !sec[MILB_SEC_CODE] || !sec[MILB_SEC_HASH])
        return bad(&P, "missing %s section", !sec[MILB_SEC_FUNCS] ? "FUNCS" : !sec[MILB_SEC_CODE] ? "CODE" : "HASH");
    MilbFunc *funcs = NULL;
    for (int id = 1; id <= MILB_SEC_MAX; id++) {
        if (!sec[id]) continue;
        MilbCursor sc = {b + sec[id]->offset, b + sec[id]->offset + sec[id]->size, false};
        P.sec = milb_section_name(id);
        int rc = 0;
        switch (id) {
        case MILB_SEC_STRINGS: rc = parse_strings(&P, &sc); break;
        case MILB_SEC_TYPES: rc = parse_types(&P, &sc); break;
        case MILB_SEC_WEIGHTS: rc = parse_weights(&P, &sc); break;
        case MILB_SEC_CONSTS: rc = parse_consts(&P, &sc); break;
        case MILB_SEC_FUNCS: rc = parse_funcs(&P, &sc, &funcs); break;
        case MILB_SEC_CODE: rc = parse_code(&P, &sc, funcs); break;
        case MILB_SEC_DEBUG: rc = parse_debug(&P, &sc); break;
        case MILB_SEC_HASH: {
            const uint8_t *h;
            if (!milb_get_bytes(&sc, 8, &h)) { rc = bad(&P, "content hash truncated"); break; }
            v->content_hash = milb_get_u64(h);
            size_t start = v->sections[0].offset;
            uint64_t want = XXH3_64bits(b + start, sec[MILB_SEC_HASH]->offset - start);
            if (want != v->content_hash) rc = bad(&P, "content hash mismatch");
            break;
        }
        }
        if (rc) { mil_rt_milb_view_free(v); return -1; }
        if (milb_left(&sc) || sc.bad) {
            bad(&P, "%zu unread bytes at the end of the section", milb_left(&sc));
            mil_rt_milb_view_free(v);
            return -1;
        }
    }
    P.sec = NULL;
    if (!!(v->flags & MILB_F_WEIGHTS) != (v->nweights > 0)) {
        bad(&P, "header flags disagree with the WEIGHTS section");
        mil_rt_milb_view_free(v);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ the program */

typedef struct Loader {
    const MilbView *v;
    const char *file;
    MilRtProgram *rp;
    MilRtBlobCache *cache;
    MilRtErr *e;
    const void **wdata;     /* per weight: verified? (data of the last dtype) */
    bool *wok;
    /* per function */
    MilRtFunc *rf;
    int *map;               /* value number -> runtime id */
    struct { const char *lit; int id; } defs[64];
    int ndefs;
    const MilbOp *op;       /* the op being loaded (its DEBUG location prefixes messages) */
    char names[2][64];      /* synthesised names */
} Loader;

static int lerr(Loader *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lerr(Loader *L, const char *fmt, ...) {
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->op && L->v->debug_file && L->op->line > 0)
        return mil_rt_errf(L->e, "%s:%d:%d: error: %s", L->v->debug_file, L->op->line, L->op->col, msg);
    return mil_rt_errf(L->e, "%s: %s", L->file, msg);
}

static const char *S(const Loader *L, int i) { return i >= 0 ? L->v->strings[i] : ""; }

/* Name of result j of op (synthesised for MILB_OP_ANON ops). */
static const char *RN(Loader *L, const MilbOp *op, int j, int buf) {
    if (!op->anon) return S(L, (int)op->res_names[j]);
    milb_anon_name(L->v->strings, L->v->nstrings, op->first_result + j, L->names[buf], sizeof L->names[buf]);
    return L->names[buf];
}

/* CONST runtime value from constant k; -1 on error. */
static int load_const(Loader *L, int k, const char *name) {
    const MilbView *v = L->v;
    const MilbConst *c = &v->consts[k];
    const MilbType *t = &v->types[c->type];
    if (c->kind != MILB_C_TENSOR && c->kind != MILB_C_BLOB)
        return lerr(L, "constant '%s': list, tuple, dict and empty constants cannot be loaded", name);
    int64_t n = type_numel(t);
    if (n < 0) return lerr(L, "constant '%s' has an unknown dimension", name);
    const void *data = c->data;
    if (c->kind == MILB_C_BLOB) {
        const MilbWeight *w = &v->weights[c->weight];
        MilRtErr e2;
        const char *wp = S(L, w->path);
        char self[1100];
        if (!strcmp(wp, MILB_WEIGHTS_SELF)) {
            if (milb_weights_name(L->file, "@model_path/", self, sizeof self))
                return lerr(L, "constant '%s': program path too long for its weight file name", name);
            wp = self;
        }
        MilRtBlobFile *bf = mil_rt_blob_cache_get(L->cache, wp, &e2);
        if (!bf) return lerr(L, "constant '%s': %s", name, e2.msg);
        if (!L->wok[w->file]) {
            /* the first use of this weight file: every reference to it must be
             * a readable blob, and their payloads must hash to the recorded value */
            const MilbWeightFile *wf = &v->wfiles[w->file];
            XXH3_state_t *st = XXH3_createState();
            if (!st) return lerr(L, "out of memory");
            XXH3_64bits_reset(st);
            for (int r = 0; r < v->nweights; r++) {
                if (v->weights[r].file != w->file) continue;
                MilRtBlobInfo info;
                if (mil_rt_blob_info(bf, v->weights[r].offset, &info, &e2)) {
                    XXH3_freeState(st);
                    return lerr(L, "constant '%s': %s", name, e2.msg);
                }
                XXH3_64bits_update(st, info.data, (size_t)info.size);
            }
            uint64_t got = XXH3_64bits_digest(st);
            XXH3_freeState(st);
            if (wf->has_hash && got != wf->hash)
                return lerr(L, "constant '%s': weight file %s does not match the program (xxhash of its referenced blobs differs)",
                            name, mil_rt_blob_path(bf));
            L->wok[w->file] = true;
        }
        void *owned = NULL;
        if (mil_rt_blob_read(bf, w->offset, t->dtype, n, &data, &owned, &e2))
            return lerr(L, "constant '%s': %s", name, e2.msg);
        if (owned && mil_rt_program_adopt(L->rp, owned)) {
            free(owned);
            return lerr(L, "out of memory");
        }
    }
    int id = mil_rt_func_add_const(L->rf, name, t->dtype, t->rank, t->dims, data);
    if (id < 0) return lerr(L, "out of memory");
    return id;
}

static int load_default(Loader *L, const char *lit) {
    for (int i = 0; i < L->ndefs; i++)
        if (!strcmp(L->defs[i].lit, lit)) return L->defs[i].id;
    MilRtProgram *rp = L->rp;
    MilDType dt;
    void *buf;
    size_t n = strlen(lit);
    if (lit[0] == '"') {
        char *s = mil_rt_alloc(rp, n);
        const char **cell = mil_rt_alloc(rp, sizeof *cell);
        if (!s || !cell) return lerr(L, "out of memory");
        memcpy(s, lit + 1, n >= 2 ? n - 2 : 0);
        *cell = s;
        buf = cell;
        dt = MIL_DT_STRING;
    } else if (!strcmp(lit, "true") || !strcmp(lit, "false")) {
        uint8_t *b = mil_rt_alloc(rp, 1);
        if (!b) return lerr(L, "out of memory");
        *b = lit[0] == 't';
        buf = b;
        dt = MIL_DT_BOOL;
    } else {
        char *end;
        long long iv = strtoll(lit, &end, 10);
        if (*end == 0 && !strchr(lit, 'x')) {
            int32_t *p = mil_rt_alloc(rp, 4);
            if (!p) return lerr(L, "out of memory");
            *p = (int32_t)iv;
            buf = p;
            dt = MIL_DT_INT32;
        } else {
            double d = strtod(lit, &end);
            if (*end) return lerr(L, "internal: cannot read the default '%s'", lit);
            float *p = mil_rt_alloc(rp, 4);
            if (!p) return lerr(L, "out of memory");
            *p = (float)d;
            buf = p;
            dt = MIL_DT_FP32;
        }
    }
    char name[96];
    snprintf(name, sizeof name, "default(%s)", lit);
    int id = mil_rt_func_add_const(L->rf, name, dt, 0, NULL, buf);
    if (id < 0) return lerr(L, "out of memory");
    if (L->ndefs < (int)(sizeof L->defs / sizeof L->defs[0])) {
        L->defs[L->ndefs].lit = lit;
        L->defs[L->ndefs].id = id;
        L->ndefs++;
    }
    return id;
}

static int tensor_of(Loader *L, int type, const char *what, const char *name, MilDType *dt, int *rank,
                     const int64_t **dims) {
    const MilbType *t = &L->v->types[type];
    if (t->kind != MILB_TY_TENSOR) {
        if (t->kind == MILB_TY_STATE) return lerr(L, "%s '%s': state values are not supported by the runtime", what, name);
        return lerr(L, "%s '%s': only tensor values can be loaded into the runtime", what, name);
    }
    *dt = t->dtype;
    *rank = t->rank;
    *dims = t->dims;
    return 0;
}

static int push(int **a, int *n, int *cap, int x) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 32;
        int *na = realloc(*a, sizeof *na * (size_t)nc);
        if (!na) return -1;
        *a = na;
        *cap = nc;
    }
    (*a)[(*n)++] = x;
    return 0;
}

static int load_op(Loader *L, const MilbFunc *fn, const MilbOp *op, int **args, int *capargs) {
    const MilbView *v = L->v;
    MilRtFunc *rf = L->rf;
    const MilbOpRow *row = milb_op_row(op->kind);
    const char *label = op->name >= 0 ? S(L, op->name) : op->nresults ? RN(L, op, 0, 0) : NULL;
    if (!row) return lerr(L, "op '%s' is not supported by the runtime", S(L, op->opname));
    if (op->kind == MIL_OP_CONST) {
        for (int i = 0; i < op->nattrs; i++)
            if (!strcmp(S(L, op->attrs[i].name), "val")) {
                int id = load_const(L, op->attrs[i].cst, RN(L, op, 0, 1));
                if (id < 0) return -1;
                L->map[op->first_result] = id;
                return 0;
            }
        return lerr(L, "const op without a 'val' attribute");
    }
    int nslots = row->nargs, n = 0;
    int slot_start[65];
    if (nslots >= 64) return lerr(L, "op '%s': too many arguments", row->name);
    for (int s = 0; s < nslots; s++) {
        slot_start[s] = n;
        const MilbArgRow *ar = &row->args[s];
        const MilbArg *a = NULL;
        for (int j = 0; j < op->nargs; j++)
            if (op->args[j].slot == s) a = &op->args[j];
        int attr_const = -1;
        if (!a && (ar->flags & A_ATTR))
            for (int j = 0; j < op->nattrs; j++)
                if (!strcmp(S(L, op->attrs[j].name), ar->name)) attr_const = op->attrs[j].cst;
        if (!a && attr_const < 0) {
            if (ar->def && strcmp(ar->def, "*")) {
                int id = load_default(L, ar->def);
                if (id < 0 || push(args, &n, capargs, id)) return id < 0 ? -1 : lerr(L, "out of memory");
            }
            continue;
        }
        int cnt = a ? a->n : 1;
        for (int j = 0; j < cnt; j++) {
            uint32_t b = a ? a->items[j] : ((uint32_t)attr_const << 1 | 1);
            int id;
            if (b & 1) {
                char name[256];
                snprintf(name, sizeof name, "%s.%s", label ? label : row->name, ar->name);
                id = load_const(L, (int)(b >> 1), name);
                if (id < 0) return -1;
            } else {
                id = L->map[b >> 1];
                if (id < 0) return lerr(L, "op '%s': argument '%s' uses a value that could not be loaded", label ? label : row->name, ar->name);
            }
            if (push(args, &n, capargs, id)) return lerr(L, "out of memory");
        }
    }
    slot_start[nslots] = n;
    int outs[64];
    if (op->nresults > 64) return lerr(L, "op '%s': too many results", row->name);
    for (int i = 0; i < op->nresults; i++) {
        MilDType dt;
        int rank;
        const int64_t *dims;
        const char *rn = RN(L, op, i, 1);
        if (tensor_of(L, (int)op->res_types[i], "result", rn, &dt, &rank, &dims)) return -1;
        outs[i] = mil_rt_func_add_value(rf, rn, MIL_RT_TEMP, dt, rank, dims);
        if (outs[i] < 0) return lerr(L, "out of memory");
        L->map[op->first_result + i] = outs[i];
    }
    if (row->flags & OPF_CONSTEXPR) {
        MilRtOp rop = {.kind = op->kind, .opname = row->name, .name = label, .nslots = nslots,
                       .slot_start = slot_start, .args = *args, .nout = op->nresults, .outs = outs};
        MilRtTensor res[8];
        if (op->nresults > 8) return lerr(L, "op '%s': too many results", row->name);
        MilRtErr e2;
        if (mil_rt_eval_const_op(rf, &rop, res, &e2)) {
            /* e2 reads "<where>op 'KIND' ('name'): why": the where-prefix is
             * the program's, lerr gives ours (with the DEBUG location) */
            char where[600];
            int wn = mil_rt_op_where(rf, &rop, where, sizeof where);
            const char *why = e2.msg;
            if (wn > 0 && (size_t)wn < sizeof where && !strncmp(why, where, (size_t)wn)) why += wn;
            return lerr(L, "%s", why);
        }
        int rc = 0;
        for (int i = 0; i < op->nresults; i++) {
            MilRtValue *val = &rf->values[outs[i]];
            bool ok = val->dtype == res[i].dtype && val->rank == res[i].rank;
            for (int k = 0; ok && k < val->rank; k++)
                if (val->dims[k] >= 0 && val->dims[k] != res[i].dims[k]) ok = false;
            if (!ok && !rc) rc = lerr(L, "op '%s': result '%s' does not match its declared type", row->name, val->name);
            if (mil_rt_program_adopt(L->rp, res[i].data)) {
                free(res[i].data);
                if (!rc) rc = lerr(L, "out of memory");
                continue;
            }
            val->kind = MIL_RT_CONST;
            val->data = res[i].data;
            val->rank = res[i].rank;
            for (int k = 0; k < res[i].rank; k++) val->dims[k] = res[i].dims[k];
        }
        return rc;
    }
    (void)fn;
    (void)v;
    if (mil_rt_func_add_op(rf, op->kind, row->name, label, nslots, slot_start, *args, op->nresults, outs, op->line,
                           op->col) < 0)
        return lerr(L, "out of memory");
    return 0;
}

static int load_func(Loader *L, const MilbFunc *fn) {
    L->rf = mil_rt_program_add_func(L->rp, S(L, fn->name));
    if (!L->rf) return lerr(L, "out of memory");
    L->ndefs = 0;
    free(L->map);
    L->map = malloc(sizeof *L->map * (size_t)(fn->nvalues + 1));
    if (!L->map) return lerr(L, "out of memory");
    for (int i = 0; i < fn->nvalues; i++) L->map[i] = -1;
    for (int i = 0; i < fn->nparams; i++) {
        MilDType dt;
        int rank;
        const int64_t *dims;
        const char *pn = S(L, (int)fn->param_names[i]);
        if (tensor_of(L, (int)fn->param_types[i], "input", pn, &dt, &rank, &dims)) return -1;
        int id = mil_rt_func_add_value(L->rf, pn, MIL_RT_INPUT, dt, rank, dims);
        if (id < 0 || mil_rt_func_add_input(L->rf, id)) return lerr(L, "out of memory");
        L->map[i] = id;
    }
    int *args = NULL, cap = 0, rc = 0;
    for (int i = 0; i < fn->nops && !rc; i++) {
        L->op = &fn->ops[i];
        rc = load_op(L, fn, &fn->ops[i], &args, &cap);
    }
    L->op = NULL;
    free(args);
    if (rc) return -1;
    for (int i = 0; i < fn->nouts; i++) {
        int id = L->map[fn->outs[i]];
        if (id < 0) return lerr(L, "function '%s': output %d could not be loaded", S(L, fn->name), i);
        if (mil_rt_func_add_output(L->rf, id)) return lerr(L, "out of memory");
    }
    MilRtErr e2;
    if (mil_rt_func_validate(L->rf, &e2)) return lerr(L, "function '%s': %s", S(L, fn->name), e2.msg);
    return 0;
}

MilRtProgram *mil_rt_milb_load_mem(const void *buf, size_t len, const char *file, const MilRtMilbOptions *opt,
                                   MilRtErr *e) {
    MilRtMilbOptions none = {0};
    if (!opt) opt = &none;
    if (!file) file = "<milb>";
    MilbView v;
    if (mil_rt_milb_parse(buf, len, file, &v, e)) return NULL;
    char dir[4096];
    const char *slash = strrchr(file, '/');
    if (opt->model_dir) snprintf(dir, sizeof dir, "%s", opt->model_dir);
    else if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == file) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - file), file);
    Loader L = {.v = &v, .file = file, .e = e};
    L.rp = mil_rt_program_new(v.debug_file ? v.debug_file : file);
    L.cache = mil_rt_blob_cache_new(dir, opt->weights_dir);
    L.wok = calloc((size_t)v.nwfiles + 1, sizeof *L.wok);
    int rc = 0;
    if (!L.rp || !L.cache || !L.wok) {
        rc = lerr(&L, "out of memory");
    } else {
        bool found = !opt->function;
        for (int i = 0; i < v.nfuncs && !rc; i++) {
            if (opt->function && strcmp(opt->function, S(&L, v.funcs[i].name))) continue;
            found = true;
            rc = load_func(&L, &v.funcs[i]);
        }
        if (!rc && !found) rc = lerr(&L, "no function named '%s'", opt->function);
        if (!rc && mil_rt_blob_cache_give(L.cache, L.rp)) rc = lerr(&L, "out of memory");
    }
    /* the program keeps the view's memory (constant data, strings) */
    while (!rc && v.mem_) {
        MemBlock *b = v.mem_;
        v.mem_ = b->next;
        if (mil_rt_program_adopt(L.rp, b)) {
            free(b);
            rc = lerr(&L, "out of memory");
        }
    }
    mil_rt_blob_cache_free(L.cache);
    free(L.map);
    free(L.wok);
    mil_rt_milb_view_free(&v);
    if (rc) {
        mil_rt_program_free(L.rp);
        return NULL;
    }
    return L.rp;
}

int mil_rt_milb_read_file(const char *path, void **buf, size_t *len, MilRtErr *e) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mil_rt_errf(e, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 32) ? NULL : realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (!b) return mil_rt_errf(e, "%s: out of memory", path);
    if (err) {
        free(b);
        return mil_rt_errf(e, "%s: read error", path);
    }
    *buf = b;
    *len = n;
    return 0;
}

MilRtProgram *mil_rt_milb_load(const char *path, const MilRtMilbOptions *opt, MilRtErr *e) {
    void *buf;
    size_t len;
    if (mil_rt_milb_read_file(path, &buf, &len, e)) return NULL;
    MilRtProgram *p = mil_rt_milb_load_mem(buf, len, path, opt, e);
    free(buf);
    return p;
}

/* ------------------------------------------------- run-time attributes */

static const char *const_str(const MilbView *v, int k) {
    const MilbConst *c = &v->consts[k];
    const MilbType *t = &v->types[c->type];
    if (c->kind != MILB_C_TENSOR || t->dtype != MIL_DT_STRING || c->count != 1) return NULL;
    return ((const char *const *)c->data)[0];
}

static bool const_int(const MilbView *v, int k, int64_t i, int64_t *out) {
    const MilbConst *c = &v->consts[k];
    const MilbType *t = &v->types[c->type];
    if (c->kind != MILB_C_TENSOR || i >= c->count) return false;
    const char *d = c->data;
    switch (t->dtype) {
    case MIL_DT_INT8: *out = ((const int8_t *)d)[i]; return true;
    case MIL_DT_UINT8: *out = ((const uint8_t *)d)[i]; return true;
    case MIL_DT_INT16: { int16_t x; memcpy(&x, d + 2 * i, 2); *out = x; return true; }
    case MIL_DT_UINT16: { uint16_t x; memcpy(&x, d + 2 * i, 2); *out = x; return true; }
    case MIL_DT_INT32: { int32_t x; memcpy(&x, d + 4 * i, 4); *out = x; return true; }
    case MIL_DT_UINT32: { uint32_t x; memcpy(&x, d + 4 * i, 4); *out = x; return true; }
    case MIL_DT_INT64: case MIL_DT_UINT64: { int64_t x; memcpy(&x, d + 8 * i, 8); *out = x; return true; }
    default: return false;
    }
}

/* ------------------------------------------ flexible-shape limits */

static const MilbFunc *milb_find_func(const MilbView *v, const char *function) {
    const MilbFunc *fn = NULL;
    for (int i = 0; i < v->nfuncs; i++)
        if (!strcmp(v->strings[v->funcs[i].name], function ? function : "main")) fn = &v->funcs[i];
    if (!fn && !function && v->nfuncs == 1) fn = &v->funcs[0];
    return fn;
}

/* The constant index of `input`'s value in the FlexibleShapeInformation
 * entry `key` of fn, or -1. */
static int milb_flex_entry(const MilbView *v, const MilbFunc *fn, const char *key, const char *input) {
    for (int a = 0; a < fn->nattrs; a++) {
        if (strcmp(v->strings[fn->attrs[a].name], "FlexibleShapeInformation")) continue;
        const MilbConst *fsi = &v->consts[fn->attrs[a].cst];
        if (fsi->kind != MILB_C_TUPLE) continue;
        for (int i = 0; i < fsi->nitems; i++) {
            const MilbConst *pair = &v->consts[fsi->items[i]];
            if (pair->kind != MILB_C_TUPLE || pair->nitems != 2) continue;
            const char *k = const_str(v, (int)pair->items[0]);
            const MilbConst *dict = &v->consts[pair->items[1]];
            if (!k || strcmp(k, key) || dict->kind != MILB_C_DICT) continue;
            for (int d = 0; d + 1 < dict->nitems; d += 2) {
                const char *n = const_str(v, (int)dict->items[d]);
                if (n && !strcmp(n, input)) return (int)dict->items[d + 1];
            }
        }
    }
    return -1;
}

int mil_rt_flex_limits_add_shape(MilRtFlexLimits *l, int rank, const int64_t *dims) {
    int *r = realloc(l->shape_rank, (size_t)(l->nshapes + 1) * sizeof *r);
    if (!r) return -1;
    l->shape_rank = r;
    int64_t **s = realloc(l->shapes, (size_t)(l->nshapes + 1) * sizeof *s);
    if (!s) return -1;
    l->shapes = s;
    int64_t *d = malloc((size_t)(rank ? rank : 1) * sizeof *d);
    if (!d) return -1;
    if (rank) memcpy(d, dims, (size_t)rank * sizeof *d);
    l->shape_rank[l->nshapes] = rank;
    l->shapes[l->nshapes++] = d;
    return 0;
}

void mil_rt_flex_limits_free(MilRtFlexLimits *l) {
    for (int i = 0; i < l->nshapes; i++) free(l->shapes[i]);
    free(l->shapes);
    free(l->shape_rank);
    memset(l, 0, sizeof *l);
}

/* The shape tensor constant k as dims (at most max of them). */
static bool milb_shape(const MilbView *v, int k, int64_t *dims, int max, int *rank) {
    const MilbConst *c = &v->consts[k];
    if (c->kind != MILB_C_TENSOR || c->count > max) return false;
    for (int64_t d = 0; d < c->count; d++)
        if (!const_int(v, k, d, &dims[d])) return false;
    *rank = (int)c->count;
    return true;
}

/* DefaultShapes (runtime.h), found with the lookups of the flex limits. */
int mil_rt_milb_view_default_shape(const MilbView *v, const char *function, const char *input, int rank, int64_t *dims) {
    const MilbFunc *fn = milb_find_func(v, function);
    if (!fn || rank < 0 || rank > MIL_MAX_RANK) return 0;
    int k = milb_flex_entry(v, fn, "DefaultShapes", input);
    int64_t tmp[MIL_MAX_RANK];
    int n;
    if (k < 0 || !milb_shape(v, k, tmp, MIL_MAX_RANK, &n) || n != rank) return 0;
    for (int d = 0; d < rank; d++)
        if (tmp[d] < 0) return 0;
    for (int d = 0; d < rank; d++) dims[d] = tmp[d];
    return 1;
}

int mil_rt_milb_default_shape(const char *path, const char *function, const char *input, int rank, int64_t *dims) {
    void *buf;
    size_t len;
    MilRtErr e;
    MilbView v;
    if (mil_rt_milb_read_file(path, &buf, &len, &e)) return -1;
    int rc = mil_rt_milb_parse(buf, len, path, &v, &e) ? -1 : mil_rt_milb_view_default_shape(&v, function, input, rank, dims);
    mil_rt_milb_view_free(&v);
    free(buf);
    return rc;
}

#define MILB_MAX_ENUM_RANK 4096 /* longer "shapes" are not shapes */

int mil_rt_milb_view_flex_limits(const MilbView *v, const char *function, const char *input, MilRtFlexLimits *out) {
    memset(out, 0, sizeof *out);
    const MilbFunc *fn = milb_find_func(v, function);
    if (!fn) return 0;
    int r = milb_flex_entry(v, fn, "RangeDims", input);
    if (r >= 0) {
        const MilbConst *c = &v->consts[r];
        int n = 0;
        bool ok = true;
        if (c->kind == MILB_C_LIST || c->kind == MILB_C_TUPLE) {
            /* [[lo, hi], ...] */
            ok = c->nitems <= MIL_MAX_RANK;
            for (int d = 0; ok && d < c->nitems; d++) {
                int64_t pr[2];
                int rank;
                ok = milb_shape(v, (int)c->items[d], pr, 2, &rank) && rank == 2;
                if (ok) out->lo[d] = pr[0], out->hi[d] = pr[1];
            }
            n = c->nitems;
        } else if (c->kind == MILB_C_TENSOR && c->count % 2 == 0 && c->count <= 2 * MIL_MAX_RANK) {
            /* flat [lo0, hi0, lo1, hi1, ...] */
            for (int d = 0; ok && d < c->count / 2; d++)
                ok = const_int(v, r, 2 * d, &out->lo[d]) && const_int(v, r, 2 * d + 1, &out->hi[d]);
            n = (int)(c->count / 2);
        } else {
            ok = false;
        }
        out->nranges = ok ? n : 0;
    }
    int en = milb_flex_entry(v, fn, "EnumeratedShapes", input);
    if (en >= 0) {
        const MilbConst *c = &v->consts[en];
        if (c->kind == MILB_C_LIST || c->kind == MILB_C_TUPLE || c->kind == MILB_C_DICT) {
            /* a list of shapes, or a dict whose values are the shapes */
            int step = c->kind == MILB_C_DICT ? 2 : 1, first = c->kind == MILB_C_DICT ? 1 : 0;
            int64_t *dims = malloc(MILB_MAX_ENUM_RANK * sizeof *dims);
            if (!dims) return 0;
            for (int i = first; i < c->nitems; i += step) {
                int rank;
                if (!milb_shape(v, (int)c->items[i], dims, MILB_MAX_ENUM_RANK, &rank)) continue;
                if (mil_rt_flex_limits_add_shape(out, rank, dims)) break;
            }
            free(dims);
        }
    }
    return 0;
}

int mil_rt_milb_flex_limits(const char *path, const char *function, const char *input, MilRtFlexLimits *out) {
    void *buf;
    size_t len;
    MilRtErr e;
    MilbView v;
    memset(out, 0, sizeof *out);
    if (mil_rt_milb_read_file(path, &buf, &len, &e)) return -1;
    int rc = mil_rt_milb_parse(buf, len, path, &v, &e) ? -1 : mil_rt_milb_view_flex_limits(&v, function, input, out);
    mil_rt_milb_view_free(&v);
    free(buf);
    return rc;
}
