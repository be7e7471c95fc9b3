/* ir/ir.h -- the milc IR: typed SSA for MIL programs.
 *
 * A MilProgram owns an arena; every type, value, op, constant and string the IR
 * allocates comes from it and is freed by mil_program_free().  Nothing in this
 * library exits or prints on its own: errors are collected in a MilDiag and
 * returned as counts or NULL, and only the tools decide what to do with them.
 *
 * Structure (docs/mil-format.md §3-4):
 *   MilProgram  version ("1.0" / "1.3"), attributes (buildInfo), functions
 *   MilFunc     name, opset tag, ordered typed parameters, attributes, one block
 *   MilBlock    doubly linked list of ops, then the function outputs
 *   MilOp       kind (from ir/ops.def) or an opaque unknown op; named arguments
 *               (a value, an inline literal, or a variadic tuple); attributes;
 *               zero or more typed results; a source location
 *   MilValue    an SSA value: function parameter or op result
 *   MilConst    a typed literal: inline data, a BLOBFILE reference, or an
 *               aggregate (list / tuple / dict) used by attributes
 *
 * Types are interned per program: within one program `a == b` is type equality.
 * Across programs use mil_type_equal().
 */
#ifndef MILC_IR_H
#define MILC_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MIL_VERSION_STRING "0.1.0"

#include "ir/vocab.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ dtypes */

const char *mil_dtype_name(MilDType dt);         /* "fp16"; "?" for NONE */
MilDType mil_dtype_from_name(const char *s, size_t n); /* MIL_DT_NONE if not a dtype */
int mil_dtype_bits(MilDType dt);                 /* packed width (4 for uint4) */
int mil_dtype_blob_code(MilDType dt);            /* weight.bin code, 0 if none */
MilDType mil_dtype_from_blob_code(int code);     /* MIL_DT_NONE if unknown */
int mil_dtype_proto_code(MilDType dt);
MilDType mil_dtype_from_proto_code(int code);
bool mil_dtype_is_float(MilDType dt);
bool mil_dtype_is_int(MilDType dt);              /* includes sub-byte ints */
bool mil_dtype_is_signed(MilDType dt);
/* Bytes per element of the in-memory (unpacked) storage used by MilConst:
 * bool/int4/uintN<8/fp8 -> 1, fp16/bf16 -> 2 (raw bits), fp32 -> 4 (float),
 * fp64 -> 8 (double), intN/uintN -> N/8 (native), string -> sizeof(char *). */
size_t mil_dtype_storage_size(MilDType dt);

/* fp16 / bf16 conversions (round to nearest even; NaN stays NaN). */
float mil_fp16_to_f32(uint16_t h);
uint16_t mil_f32_to_fp16(float f);
float mil_bf16_to_f32(uint16_t h);
uint16_t mil_f32_to_bf16(float f);

/* ------------------------------------------------------------------- arena */

typedef struct MilArenaBlock MilArenaBlock;
typedef struct MilArena {
    MilArenaBlock *head;   /* newest block first */
    size_t total;          /* bytes handed out, for statistics */
} MilArena;

void *mil_arena_alloc(MilArena *a, size_t size); /* zeroed, 16-byte aligned; NULL on OOM */
char *mil_arena_strndup(MilArena *a, const char *s, size_t n);
void mil_arena_free(MilArena *a);
#define mil_new(arena, T) ((T *)mil_arena_alloc((arena), sizeof(T)))

/* ------------------------------------------------------------- diagnostics */

typedef struct MilLoc {
    const char *file;  /* owned by the MilDiag's source table (or static) */
    int line, col;     /* 1-based; 0 = unknown */
} MilLoc;

typedef enum { MIL_SEV_NOTE, MIL_SEV_WARNING, MIL_SEV_ERROR } MilSeverity;

typedef struct MilDiagEntry {
    MilSeverity sev;
    MilLoc loc;
    char *msg;          /* malloc'd, no trailing newline */
} MilDiagEntry;

typedef struct MilDiagSource {
    char *file;         /* malloc'd copy of the name */
    char *text;         /* malloc'd copy of the contents (for the caret line) */
    size_t len;
} MilDiagSource;

typedef struct MilDiag {
    MilDiagEntry *v; int n, cap;
    MilDiagSource *src; int nsrc, capsrc;
    int nerrors, nwarnings;
    int max_errors;     /* stop recording errors beyond this (0 = 20) */
} MilDiag;

void mil_diag_init(MilDiag *d);
void mil_diag_free(MilDiag *d);
/* Register a source text so diagnostics can show its lines; returns the
 * stable file-name pointer to put into MilLoc.file. */
const char *mil_diag_add_source(MilDiag *d, const char *file, const char *text, size_t len);
void mil_diag_report(MilDiag *d, MilSeverity sev, MilLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define mil_error(d, loc, ...) mil_diag_report((d), MIL_SEV_ERROR, (loc), __VA_ARGS__)
#define mil_warning(d, loc, ...) mil_diag_report((d), MIL_SEV_WARNING, (loc), __VA_ARGS__)
/* Writes `file:line:col: error: msg`, then the source line and a caret when the
 * source is registered (a line of more than 121 characters: the 60 characters
 * either side of the caret, `…` where cut).  Called by tools, never by the
 * libraries. */
void mil_diag_print(const MilDiag *d, FILE *out);
/* Formats one entry into buf (without the source line); for tests. */
void mil_diag_format(const MilDiag *d, int i, char *buf, size_t size);

/* ------------------------------------------------------------------- types */

typedef enum {
    MIL_TY_TENSOR,  /* tensor<dt, [dims]>; rank 0 = scalar (`fp16` in 1.3) */
    MIL_TY_LIST,    /* list<elem, len>; len -1 = `?` */
    MIL_TY_DICT,    /* dict<key, val> */
    MIL_TY_TUPLE,   /* tuple<t0, t1, ...> */
    MIL_TY_STATE,   /* state<tensor<...>> */
} MilTypeKind;

typedef struct MilType MilType;
struct MilType {
    MilTypeKind kind;
    MilDType dtype;          /* TENSOR */
    int rank;                /* TENSOR: number of dims; 0 = scalar */
    const int64_t *dims;     /* TENSOR: rank dims, outermost first; MIL_DIM_UNKNOWN = `?` */
    const MilType *elem;     /* LIST element, STATE wrapped type, DICT key */
    const MilType *val;      /* DICT value */
    int64_t len;             /* LIST length, -1 = `?` */
    int ntypes;              /* TUPLE */
    const MilType *const *types;
};

typedef struct MilProgram MilProgram;

const MilType *mil_type_tensor(MilProgram *p, MilDType dt, int rank, const int64_t *dims);
const MilType *mil_type_scalar(MilProgram *p, MilDType dt);
const MilType *mil_type_list(MilProgram *p, const MilType *elem, int64_t len);
const MilType *mil_type_dict(MilProgram *p, const MilType *key, const MilType *val);
const MilType *mil_type_tuple(MilProgram *p, int n, const MilType *const *types);
const MilType *mil_type_state(MilProgram *p, const MilType *wrapped);
bool mil_type_equal(const MilType *a, const MilType *b);  /* structural, across programs */
bool mil_type_is_scalar(const MilType *t);                 /* rank-0 tensor */
bool mil_type_has_unknown(const MilType *t);               /* any `?` dim */
int64_t mil_type_numel(const MilType *t);                  /* -1 if unknown or not a tensor */

/* ------------------------------------------------------ constants (literals) */

typedef enum {
    MIL_CONST_TENSOR,  /* inline tensor data (rank 0 = scalar) */
    MIL_CONST_BLOB,    /* BLOBFILE(path, offset) reference */
    MIL_CONST_LIST,    /* items[] */
    MIL_CONST_TUPLE,   /* items[] */
    MIL_CONST_DICT,    /* items[2i] = key, items[2i+1] = value */
    MIL_CONST_EMPTY,   /* `T()` : no payload (hand-written / E5 text only) */
} MilConstKind;

typedef struct MilConst MilConst;
struct MilConst {
    MilConstKind kind;
    const MilType *type;     /* its own concrete type (for dict/list items the
                                actual shape of the literal, which may be more
                                specific than the container's declared type) */
    /* TENSOR: `count` elements in unpacked storage (mil_dtype_storage_size),
     * row-major.  Strings are `const char *` (arena-owned). */
    void *data;
    int64_t count;
    /* BLOB */
    const char *blob_path;   /* as written, e.g. "@model_path/weights/weight.bin" */
    uint64_t blob_offset;    /* offset of the blob METADATA record */
    /* LIST / TUPLE / DICT */
    int nitems;
    MilConst **items;
};

MilConst *mil_const_tensor(MilProgram *p, const MilType *t, const void *data, int64_t count); /* copies */
MilConst *mil_const_blob(MilProgram *p, const MilType *t, const char *path, uint64_t offset);
MilConst *mil_const_scalar_int(MilProgram *p, MilDType dt, int64_t v);
MilConst *mil_const_scalar_float(MilProgram *p, MilDType dt, double v);
MilConst *mil_const_scalar_bool(MilProgram *p, bool v);
MilConst *mil_const_string(MilProgram *p, const char *s);
MilConst *mil_const_aggregate(MilProgram *p, MilConstKind kind, const MilType *t, int n, MilConst *const *items);
/* Element i of an inline tensor as a double / int64 (any numeric dtype). */
double mil_const_get_f64(const MilConst *c, int64_t i);
int64_t mil_const_get_i64(const MilConst *c, int64_t i);
const char *mil_const_get_str(const MilConst *c);   /* scalar string, or NULL */

/* --------------------------------------------------------------------- ops */

typedef struct MilArgInfo {
    const char *name;
    int flags;            /* A_* */
    const char *def;      /* default in MIL literal spelling, NULL, or "*" */
} MilArgInfo;

typedef struct MilOpInfo {
    const char *name;
    uint16_t wire;
    int nresults;         /* -1 = variable */
    int flags;            /* OPF_* */
    int nargs;
    const MilArgInfo *args;  /* alphabetical */
} MilOpInfo;

const MilOpInfo *mil_op_info(MilOpKind k);             /* NULL for UNKNOWN */
MilOpKind mil_op_lookup(const char *name, size_t n);   /* MIL_OP_UNKNOWN if not found */
MilOpKind mil_op_from_wire(uint16_t wire);             /* MIL_OP_UNKNOWN if not found */
const MilArgInfo *mil_op_arg_info(MilOpKind k, const char *arg); /* NULL if not an argument */

typedef struct MilValue MilValue;
typedef struct MilOp MilOp;
typedef struct MilBlock MilBlock;
typedef struct MilFunc MilFunc;

struct MilValue {
    const char *name;        /* SSA name, arena-owned */
    const MilType *type;
    MilOp *def;              /* defining op; NULL for a function parameter */
    int index;               /* result index in def, or parameter index */
    int id;                  /* dense per function: 0 .. func->nvalues-1 */
    int nuses;               /* filled by mil_func_fill_uses() */
    void *aux;               /* scratch for passes; never owned */
};

/* One binding: exactly one of value / cst is set. */
typedef struct MilBinding {
    MilValue *value;
    MilConst *cst;
} MilBinding;

typedef struct MilArg {
    const char *name;
    bool variadic;           /* written `(a, b, ...)` */
    int n;                   /* number of bindings (1 unless variadic) */
    MilBinding *items;
    MilLoc loc;
} MilArg;

typedef struct MilAttr {
    const char *name;
    MilConst *val;
    MilLoc loc;
    /* private: the argument view mil_op_arg() returns for an attribute */
    MilBinding view_item_;
    MilArg view_;
} MilAttr;

struct MilOp {
    MilOpKind kind;
    const char *opname;      /* spelling as written (== info name for known ops) */
    const char *opset;       /* op-level `<ios17>` tag (E5 dumps), usually NULL */
    int nargs, capargs;   MilArg *args;      /* in source/creation order */
    int nattrs, capattrs; MilAttr *attrs;    /* in source/creation order */
    int nresults, capres; MilValue **results;
    MilLoc loc;
    MilOp *prev, *next;
    MilBlock *block;
    MilFunc *func;           /* owning function (set by mil_op_new) */
    void *aux;
};

struct MilBlock {
    MilOp *first, *last;
    int nouts, capouts;
    MilValue **outs;          /* function outputs, in order */
    MilLoc outs_loc;
    MilFunc *func;
};

struct MilFunc {
    const char *name;
    const char *opset;        /* "ios17" */
    int nparams, capparams;
    MilValue **params;        /* in written order (never reordered) */
    int nattrs, capattrs;
    MilAttr *attrs;           /* FlexibleShapeInformation, ... */
    MilBlock body;
    int nvalues;              /* values created so far (ids are dense) */
    MilProgram *prog;
    MilLoc loc;
    bool blank_before;        /* an empty line separates it from the previous function
                                 when printed: as parsed; mil_func_new copies the
                                 previous function's (none: false, coremlc's style) */
    struct MilNameSet *names; /* private: every SSA name handed out in f */
};

typedef enum { MIL_SPELLING_SAME = 0, MIL_SPELLING_1_0, MIL_SPELLING_1_3 } MilSpelling;

typedef struct MilTypeTable MilTypeTable;

struct MilProgram {
    MilArena arena;
    const char *version;      /* "1.0", "1.3", "1" ... as written */
    int nattrs, capattrs;
    MilAttr *attrs;           /* buildInfo */
    int nfuncs, capfuncs;
    MilFunc **funcs;
    bool trailing_newline;    /* input ended with "}\n" */
    MilSpelling written;      /* scalar spelling the parsed text used first
                                 (SAME = none seen); decides the spelling of
                                 an ambiguous `program(1)` */
    MilTypeTable *types;      /* interning table (private) */
};

/* ------------------------------------------------------------- builder API */

MilProgram *mil_program_new(const char *version);   /* NULL on OOM */
void mil_program_free(MilProgram *p);
char *mil_strdup(MilProgram *p, const char *s);     /* arena copy */
MilSpelling mil_program_spelling(const MilProgram *p); /* from version: 1.3+ -> 1_3 */
void mil_program_set_attr(MilProgram *p, const char *name, MilConst *val);

MilFunc *mil_func_new(MilProgram *p, const char *name, const char *opset);
MilFunc *mil_program_find_func(const MilProgram *p, const char *name);
MilValue *mil_func_add_param(MilFunc *f, const MilType *t, const char *name);
void mil_func_set_attr(MilFunc *f, const char *name, MilConst *val);
void mil_func_add_output(MilFunc *f, MilValue *v);
/* A name not yet used by any value of f, derived from base ("x", "x_1", ...). */
const char *mil_func_unique_name(MilFunc *f, const char *base);
MilValue *mil_func_find_value(MilFunc *f, const char *name); /* linear scan */
/* Renames v (a parameter or result of f) and reserves the name, so that
 * mil_func_unique_name() keeps avoiding it.  Prefer this to assigning
 * v->name directly. */
void mil_func_rename_value(MilFunc *f, MilValue *v, const char *name);

/* Creates a detached op; append it with mil_block_append / insert_before. */
MilOp *mil_op_new(MilFunc *f, MilOpKind kind, const char *opname /* NULL = table name */);
void mil_op_add_arg(MilOp *op, const char *name, MilValue *v);
void mil_op_add_arg_const(MilOp *op, const char *name, MilConst *c);
void mil_op_add_arg_tuple(MilOp *op, const char *name, int n, const MilBinding *items);
void mil_op_set_attr(MilOp *op, const char *name, MilConst *c); /* replaces */
MilValue *mil_op_add_result(MilOp *op, const MilType *t, const char *name /* NULL = unique */);
void mil_block_append(MilBlock *b, MilOp *op);
void mil_block_insert_before(MilBlock *b, MilOp *before, MilOp *op);
void mil_block_remove(MilBlock *b, MilOp *op);  /* unlink; memory stays in the arena */

/* Convenience: append `const()[name = .., val = c]` and return its result. */
MilValue *mil_build_const(MilFunc *f, MilConst *c, const char *name);

/* Lookup of an argument by name: in args first, then (for A_ATTR / unknown
 * ops) in attrs.  Returns NULL when absent. */
const MilArg *mil_op_arg(const MilOp *op, const char *name);
MilAttr *mil_op_attr(const MilOp *op, const char *name);
/* The constant bound to argument `name`: an inline literal, a const op's val,
 * or an attribute.  NULL if absent or not constant. */
const MilConst *mil_op_const_arg(const MilOp *op, const char *name);
/* The constant a value holds when it is a const op's result, else NULL. */
const MilConst *mil_value_const(const MilValue *v);
/* Replace every use of `from` (in args and function outputs) by `to`. */
void mil_func_replace_uses(MilFunc *f, MilValue *from, MilValue *to);
/* Recount MilValue.nuses for every value of f. */
void mil_func_fill_uses(MilFunc *f);

/* ---------------------------------------------------------------- verifier */

/* Checks the rules of issue #2: values defined before use and once per
 * function, outputs name defined values, required arguments present,
 * const-only arguments bound to constants, literal element counts and nesting
 * match their types, declared result counts/types consistent with the op
 * table.  Reports into d; returns the number of errors. */
int mil_verify(const MilProgram *p, MilDiag *d);

/* ----------------------------------------------------------------- printer */

/* Canonical MIL text (docs/mil-format.md §2.4, §4): arguments and attributes
 * sorted by name, canonical hex floats, 4/12/8 indentation, an empty line
 * before a function only if f->blank_before, a trailing newline only if
 * p->trailing_newline.  Returns a malloc'd NUL-terminated string (len
 * in *len if non-NULL), NULL on OOM. */
char *mil_print(const MilProgram *p, MilSpelling sp, size_t *len);
int mil_print_file(const MilProgram *p, MilSpelling sp, FILE *out); /* 0 ok, -1 I/O error */
/* One type in MIL spelling (SAME is taken as 1.3) into buf, snprintf style:
 * returns the full length, truncates to size-1 characters.  For messages. */
int mil_type_format(const MilType *t, MilSpelling sp, char *buf, size_t size);

/* Canonical float text (§2.4) of fp16 bits / fp32 / fp64 values into buf
 * (at least 32 bytes); returns the length. */
int mil_format_fp16(uint16_t bits, char *buf);
int mil_format_fp32(float v, char *buf);
int mil_format_fp64(double v, char *buf);

#ifdef __cplusplus
}
#endif

#endif /* MILC_IR_H */
