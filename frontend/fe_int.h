/* frontend/fe_int.h -- what the frontend sources share (lexer.l, parser.y,
 * build.c, numconv.c, frontend.c); nothing outside frontend/ includes it.
 *
 * Data flow: the flex scanner (lexer.l) hands the bison parser (parser.y)
 * tokens whose text stays in the caller's buffer (FeTok = pointer + length);
 * only strings are decoded, straight into the program's arena.  The grammar
 * actions call the fe_* builders below (build.c), which create IR through the
 * ir/ builder API and do the semantic checks.  Literal payloads are built by
 * a small stack machine (FeFrame): `T(` pushes a frame for the declared type,
 * brackets and scalars are events against the top frame, and numbers are
 * converted right away into a typed buffer that grows as they come.
 */
#ifndef MILC_FE_INT_H
#define MILC_FE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frontend/frontend.h"
#include "ir/ir.h"

#define FE_MAX_NEST 64     /* brackets of any kind open at once */
#define FE_MAX_FRAMES (FE_MAX_NEST + 8)
#define FE_FRAME_BLOCK 4  /* frames are allocated 4 at a time (zeroed), on first use */

/* Source location of a token (bison's location type, see parser.y). */
typedef struct FeLoc {
    int first_line, first_column, last_line, last_column;
} FeLoc;

/* A token's text in the caller's buffer; `str` is the decoded, arena-owned
 * value of a string token (NULL otherwise). */
typedef struct FeTok {
    const char *s;
    int n;
    const char *str;
} FeTok;

/* A parsed type plus where its first unknown (`?` or symbolic) dim is, for
 * the "no `?` in a literal's type" check. */
typedef struct FeType {
    const MilType *t;   /* NULL after an error (already reported) */
    int qline, qcol;    /* 0 = no unknown dim in this tensor type */
} FeType;

/* Scalar literal kinds (the `scalar_lit` rule). */
enum { LK_INT, LK_FLOAT, LK_STR, LK_TRUE, LK_FALSE, LK_IDENT, LK_NEGINF };

/* Literal frames. */
enum { FR_VALUE, FR_TENSOR, FR_LIST, FR_TUPLE, FR_DICT, FR_PAIR, FR_SKIP };

typedef struct FeFrame {
    int kind;
    const MilType *type;     /* declared (VALUE, LIST, TUPLE, DICT, PAIR: the dict) */
    MilLoc loc;              /* the opening token */
    bool bad;                /* an error was reported inside: result is NULL */
    bool filled;             /* VALUE: a payload was given */
    bool top;                /* TENSOR: the value's own type (not an aggregate item) */
    bool flat;               /* TENSOR: rank >= 2 written as one flat level */
    MilConst *result;        /* VALUE */
    /* VALUE: BLOBFILE(...) arguments so far, and where the BLOBFILE is */
    MilConst *bpath, *boff;
    bool bhas_path, bhas_off;
    FeLoc bkw, bpath_loc, boff_loc;
    MilConst **items;        /* LIST, TUPLE, DICT (key, value, ...), PAIR */
    int nitems, capitems;
    /* TENSOR */
    MilDType dt;
    int rank, depth;
    size_t esz;
    int64_t seen[MIL_MAX_RANK];   /* children so far of the open bracket at each level */
    int64_t want[MIL_MAX_RANK];   /* children expected per level; -1 = learn from the first */
    MilLoc oloc[MIL_MAX_RANK];    /* the `[` opening each level */
    unsigned char *buf;
    size_t cap;
    int64_t count;
} FeFrame;

typedef struct FeSym {
    const char *name;        /* interned; NULL = empty slot */
    MilValue *v;             /* NULL when its definition had an error */
    MilLoc loc;
} FeSym;

typedef struct FeRes {
    const MilType *t;
    const char *name;
    MilLoc loc;
} FeRes;

enum { ATTR_NONE, ATTR_PROGRAM, ATTR_FUNC, ATTR_OP };

typedef struct FeState {
    MilProgram *p;
    MilDiag *d;
    const char *file;          /* registered name (MilLoc.file) */
    const char *text;
    size_t len;
    MilParseOptions opt;
    int nerr, maxerr;
    bool stop;                 /* too many errors / too deep: the lexer returns EOF */
    bool quiet_syntax;         /* the next bison syntax error is already reported */

    /* scanner bookkeeping (lexer.l) */
    int line, col;
    size_t off;                /* byte offset of the next token */
    size_t tok_off;            /* last token */
    int tok_len;
    int nest;                  /* open ( [ { < */
    size_t rbrace_off;         /* last `}` token */
    size_t func_off;           /* last `func` keyword */
    bool have_rbrace;

    /* builder state (build.c) */
    MilFunc *f;
    MilOp *op;                 /* the statement's op (NULL after an error) */
    bool op_skip;              /* statement inside a nested block: build nothing */
    int attr_target;
    int in_nested;
    bool nested_reported;
    FeSym *syms;               /* current function's names: open addressing */
    size_t symcap, nsyms;
    const char **strs;         /* interned names: open addressing */
    size_t strcap, nstrs;
    FeRes *res;                /* pending `T name` results of the statement */
    int nres, capres;
    MilBinding *vb;            /* pending variadic `(a, b)` items */
    int nvb, capvb;
    bool vb_bad;
    int64_t dims[MIL_MAX_RANK];
    int ndims;
    bool dims_bad;
    int qline, qcol;
    const MilType **tys;       /* tuple<...> member stack */
    int ntys, captys;
    /* the literal frame stack: frame i is frblk[i / FE_FRAME_BLOCK][i % FE_FRAME_BLOCK];
     * blocks are calloc'd when the stack first gets that deep and never move */
    FeFrame *frblk[(FE_MAX_FRAMES + FE_FRAME_BLOCK - 1) / FE_FRAME_BLOCK];
    int nfr;
} FeState;

/* lexer.l */
void *fe_scan_begin(FeState *ps, const char *text, size_t len);
void fe_scan_end(void *scanner);

/* build.c: diagnostics */
MilLoc fe_loc(const FeState *ps, FeLoc l);
void fe_error(FeState *ps, FeLoc l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fe_error_at(FeState *ps, MilLoc l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* `'text'` of a token for messages (truncated, non-printables escaped). */
const char *fe_tokdesc(const char *s, int n, char *buf, size_t size);
void fe_state_free(FeState *ps);

/* build.c: program structure */
const char *fe_intern(FeState *ps, const char *s, int n);
void fe_version(FeState *ps, FeTok v, FeLoc l);   /* warns on unknown versions */
void fe_func_begin(FeState *ps, FeTok name, FeLoc l, FeTok opset);
void fe_param(FeState *ps, FeType t, FeTok name, FeLoc l);
void fe_output(FeState *ps, FeTok name, FeLoc l);
void fe_block_end(FeState *ps, FeLoc arrow);
void fe_op_begin(FeState *ps, FeTok name, FeLoc l, FeTok opset, bool has_opset);
void fe_result(FeState *ps, FeType t, FeTok name, FeLoc l);
void fe_stmt_end(FeState *ps);
void fe_stmt_reset(FeState *ps);
void fe_stmt_error(FeState *ps);
void fe_paren_results(FeState *ps, FeLoc l, char open);
void fe_nested_begin(FeState *ps, FeLoc l);
void fe_nested_end(FeState *ps);
MilBinding fe_ref(FeState *ps, FeTok name, FeLoc l);
void fe_arg(FeState *ps, FeTok name, FeLoc l, MilBinding b);
void fe_vb_reset(FeState *ps);
void fe_vb_push(FeState *ps, MilBinding b);
void fe_arg_tuple(FeState *ps, FeTok name, FeLoc l);
void fe_attr(FeState *ps, FeTok name, FeLoc l, MilConst *c);

/* build.c: types */
MilDType fe_bad_dtype(FeState *ps, FeTok t, FeLoc l);
FeType fe_ty_scalar(FeState *ps, MilDType dt);
void fe_dims_reset(FeState *ps);
void fe_dim(FeState *ps, FeTok t, FeLoc l, int kind);   /* kind: 'i' INT, '?' , 'n' IDENT */
FeType fe_ty_tensor(FeState *ps, MilDType dt, FeLoc l);
int64_t fe_list_len(FeState *ps, FeTok t, FeLoc l);
FeType fe_ty_list(FeState *ps, FeType elem, int64_t len);
FeType fe_ty_dict(FeState *ps, FeType k, FeType v);
int fe_tys_mark(FeState *ps);
void fe_tys_push(FeState *ps, FeType t);
FeType fe_ty_tuple(FeState *ps, int mark);
FeType fe_ty_state(FeState *ps, FeType t, FeLoc l);
FeType fe_ty_buffer(FeState *ps, FeLoc l);

/* build.c: literals */
void fe_lit_begin(FeState *ps, FeType t, FeLoc l);
MilConst *fe_lit_end(FeState *ps);
void fe_blob_begin(FeState *ps, FeLoc kw);
void fe_blob_arg(FeState *ps, FeTok key, FeLoc l, MilConst *v);
void fe_lit_blob(FeState *ps);
void fe_lit_scalar(FeState *ps, int kind, FeTok t, FeLoc l);
void fe_lit_open(FeState *ps, char what, FeLoc l);   /* '[' '{' (dict) 'p' (pair) '(' */
void fe_lit_close(FeState *ps, char what, FeLoc l);
void fe_lit_reset(FeState *ps);

/* numconv.c: numbers (text is pointer + length, not NUL-terminated) */
bool fe_parse_u64(const char *s, int n, bool *neg, uint64_t *mag); /* false on overflow */
double fe_strtod(const char *s, int n);
/* Rounds |d| to a binary format with ebits exponent and mbits fraction bits
 * (IEEE layout), ties to even; dir breaks exact ties when the true value was
 * below (-1) or above (+1) |d|.  *tie says whether |d| sat exactly halfway. */
uint32_t fe_round_binary(double d, int dir, int ebits, int mbits, bool *tie);
/* Stores a number into one storage cell of a float dtype, rounding the exact
 * value of the text once (text may be NULL for inf/nan).  Returns false when
 * the text (always a finite number) overflows the dtype, i.e. rounds to inf
 * (or to NaN for fp8 E4M3FN, which has no inf) under IEEE round to nearest
 * even: |value| >= max finite + half an ulp. */
bool fe_store_float(MilDType dt, double d, const char *s, int n, void *cell);

#endif /* MILC_FE_INT_H */
