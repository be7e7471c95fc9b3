/* ir/milbin.h -- the `.milb` binary program format (header-only; shared by the
 * compiler's writer/disassembler in backend/ and the loader in runtime/).
 *
 * A .milb file is a compact, parameterized MIL program: which ops to chain,
 * with which arguments, over which tensor descriptors.  Weights are not in it:
 * large constants are references into a MILBlob v2 weight file next to the
 * program (`prog.milb` -> `prog.weights.bin`), checked by xxhash.  Programs
 * whose weights are function inputs need no weight file at all.
 *
 * Layout (all fixed-width integers little-endian; "varint" = unsigned LEB128,
 * at most 10 bytes; "svarint" = zigzag varint):
 *
 *   off  size  field
 *   0    4     magic            "\x1bMLB"
 *   4    1     version          MILB_VERSION (major << 4 | minor)
 *   5    1     format           MILB_FORMAT (0 = official)
 *   6    6     sentinel         "\x19\x93\r\n\x1a\n" (catches newline / 8-bit mangling)
 *   12   4     sample int       int32 0x12345678 (byte order / size check)
 *   16   4     sample float     fp32 370.5        (float format check)
 *   20   1     flags            MILB_F_* (bit 0: the program references a weight file)
 *   21   1     nsections        1 .. MILB_SEC_MAX
 *   22   ...   section table    nsections x { u8 id, varint length }, ids strictly
 *                               increasing; sections follow the table back to back
 *   ...        sections
 *   end-8 8    checksum         XXH3-64 of every byte before it
 *
 * The checksum is verified right after magic and version, before any other
 * field is used.  Sections (absent = empty, except FUNCS, CODE, HASH; DEBUG
 * is optional):
 *
 *   STRINGS  varint n; n x { varint len << 3 | pre; len bytes (no NUL) }: the
 *            string is the first pre (0..7) bytes of the previous string
 *            followed by the len bytes (front coding)
 *   TYPES    varint n; n x type:
 *              u8 kind | rank << 4 (TENSOR; 0 for the other kinds).  Bit 3 is
 *                      the layout (0 = dense row-major, the only one)
 *              TENSOR: varint dtype proto code (ir/dtypes.def, never the enum),
 *                      rank (<= 15 here) x varint (dim + 1; 0 = `?`)
 *              LIST:   varint elem type; svarint len (-1 = `?`)
 *              DICT:   varint key type; varint value type
 *              TUPLE:  varint n; n x varint type
 *              STATE:  varint wrapped type
 *            type references point at earlier types only (no cycles)
 *   WEIGHTS  weight files, then references into them:
 *            varint nfiles; nfiles x { varint path string << 1 | h;
 *                                      [u64 hash if h] }
 *            varint nrefs; nrefs x { varint file; svarint (offset / 64) minus the
 *                                    previous reference's (offset / 64) }
 *            hash = XXH3-64 of the payload bytes of every reference to that
 *            file, concatenated in reference order (one hash per file, not per
 *            blob).  h = 0 only for files kept without their data (the writer's
 *            keep_unreadable_weights); the loader then checks dtype and size
 *   CONSTS   varint n; n x constant (references point at earlier constants):
 *              varint type << 3 | kind
 *              TENSOR: (the element count is the type's, which must be
 *                      concrete) elements: floats raw little-endian bits
 *                      (fp16/bf16 2, fp32 4, fp64 8, fp8 1), strings a varint
 *                      string index, everything else (bool, ints, sub-byte) an
 *                      svarint
 *              BLOB:   varint weight reference
 *              LIST / TUPLE / DICT: varint n; n x varint constant (DICT: key,
 *                      value pairs, n = 2 x entries)
 *              EMPTY:  nothing
 *   FUNCS    varint program version string; u8 program flags (bit 0: text ended
 *            with a newline); attrs; varint nfuncs; per function:
 *              varint name; varint opset + 1 (0 = none); attrs;
 *              varint nparams; nparams x { varint name; varint type };
 *              varint nops; varint nouts; nouts x varint value
 *            attrs = varint n; n x { varint name; varint constant }
 *   CODE     varint npal; npal x { varint wire code; u8 default flags;
 *            [varint default slot mask] unless wire 0 } (the op palette:
 *            distinct wire codes of ir/ops.def, 0 = unknown op, in first-use
 *            order, each with the flags and the slot mask most of its ops
 *            have); then the ops of every function in order.
 *            Values are numbered per function: parameters first, then each
 *            op's results.  One op:
 *              varint palette index << 1 | f; f = 1: u8 flags (MILB_OP_*)
 *                     follows, f = 0: the op has its palette entry's flags
 *              [varint slot mask]               if MILB_OP_MASK (else the
 *                                               palette entry's mask)
 *              [varint spelling string]         for palette wire 0
 *              [varint opset string]            if MILB_OP_OPSET
 *              [varint name string]             if MILB_OP_NAME
 *              MILB_OP_VAL (const ops only): varint constant, the `val`
 *                  attribute; the op has one result whose type is the
 *                  constant's type; then its name (unless MILB_OP_ANON) and
 *                  nothing else (STRINGS must hold "val", the attribute's name)
 *              [varint nresults]                only when ops.def says -1 (or wire 0)
 *              nresults x { [varint name] unless MILB_OP_ANON;
 *                           [varint type] unless MILB_OP_TSAME }
 *              ops.def ops: for each slot of the slot mask (bit s = argument
 *                  slot s, the s-th alphabetical ARG row, is bound) in order:
 *                  A_VARIADIC slots varint n << 1 | variadic and n bindings,
 *                  other slots exactly one binding
 *              unknown ops: varint nargs; nargs x { varint name string;
 *                  varint n << 1 | variadic; n bindings }, sorted by name
 *              binding = varint back-distance << 1 (the value numbered
 *                  nvalues - 1 - distance, nvalues = the values defined so
 *                  far), or constant << 1 | 1
 *              [attrs]                          if MILB_OP_ATTRS
 *            MILB_OP_NAME0: the op has `name = string(<first result's name>)`.
 *            MILB_OP_TSAME (ops.def ops with one result): the result's type
 *            is the type of the first argument value (slot order) that is not
 *            a constant (a const or constexpr result); no shape inference.
 *            MILB_OP_ANON: the results carry no names (a stripped program);
 *            readers synthesise "v<value number>" (see milb_anon_name).
 *   HASH     u64 XXH3-64 of the bytes of all sections before it in file order:
 *            the program's content hash (a compile-cache key; it covers the
 *            weight hashes, so it identifies program + weights, and not the
 *            debug information).
 *   DEBUG    optional (dropped by strip modes): varint len; len bytes: the
 *            source file name; then per function in order, per op in order:
 *            svarint line minus the previous op's line (starting at 0);
 *            varint column.  Line 0 = unknown.
 *
 * Strip modes (MilbWriteOptions.strip, `milc --emit=milb --strip`): value and
 * op names and the DEBUG section are dropped; function names, input names and
 * the names of function outputs stay (the runtime binds by name); the
 * disassembly names the rest v<N> and writing it stripped again gives the same
 * bytes.  MilbWriteOptions.no_debug (`--no-debug`) drops only DEBUG.  A text
 * round trip (MIL -> milb -> MIL -> milb) gives identical bytes except in
 * DEBUG, which then records the disassembly's lines; in memory
 * (mil_milb_disassemble restores the op locations) it is byte-identical.
 *
 * Sizes (milc --stats, test/backend/data/transformer_layer.mil, format 1.1):
 * -O0 883 B named with DEBUG, 732 B --no-debug, 538 B --strip; -O2 1115 /
 * 968 / 594 B; a 128x128 or 1024x1024 fp16 matmul of two inputs 145 B.
 *
 * The writer is deterministic (same IR -> same bytes): strings, types and
 * constants are numbered in first-use order, constants are deduplicated by
 * content, arguments are written in slot order and attributes sorted by name.
 */
#ifndef MILC_IR_MILBIN_H
#define MILC_IR_MILBIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ir/vocab.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MILB_MAGIC "\x1bMLB"
#define MILB_VERSION 0x11
#define MILB_FORMAT 0
#define MILB_SENTINEL "\x19\x93\r\n\x1a\n"
#define MILB_SAMPLE_INT 0x12345678
#define MILB_SAMPLE_FLOAT 370.5f
#define MILB_HEADER_SIZE 22      /* up to and including nsections */
#define MILB_CHECKSUM_SIZE 8
#define MILB_MIN_SIZE (MILB_HEADER_SIZE + MILB_CHECKSUM_SIZE)
#define MILB_EXT ".milb"
#define MILB_WEIGHTS_SUFFIX ".weights.bin"  /* prog.milb -> prog.weights.bin */
/* The weight-file path milc records for the weight file it writes next to
 * the program: "the weight file of this program", resolved by the loader
 * (and the disassembler) to "@model_path/<base>.weights.bin" for
 * <base>.milb, so the bytes do not depend on the output name and a renamed
 * pair (prog.milb + prog.weights.bin) still loads. */
#define MILB_WEIGHTS_SELF "@milb_weights"

enum { MILB_F_WEIGHTS = 1 };                         /* header flags */
enum { MILB_PF_TRAILING_NEWLINE = 1 };               /* program flags */

enum {
    MILB_SEC_STRINGS = 1,
    MILB_SEC_TYPES = 2,
    MILB_SEC_WEIGHTS = 3,
    MILB_SEC_CONSTS = 4,
    MILB_SEC_FUNCS = 5,
    MILB_SEC_CODE = 6,
    MILB_SEC_HASH = 7,
    MILB_SEC_DEBUG = 8,
    MILB_SEC_MAX = 8,
};

/* "dir/prog.milb" -> "prog.weights.bin" (with prefix in front, e.g. "@model_path/"). */
static inline int milb_weights_name(const char *milb_path, const char *prefix, char *out, size_t size) {
    const char *base = strrchr(milb_path, '/');
    base = base ? base + 1 : milb_path;
    size_t n = strlen(base);
    size_t el = strlen(MILB_EXT);
    if (n > el && !strcmp(base + n - el, MILB_EXT)) n -= el;
    int k = snprintf(out, size, "%s%.*s%s", prefix ? prefix : "", (int)n, base, MILB_WEIGHTS_SUFFIX);
    return k < 0 || (size_t)k >= size ? -1 : 0;
}

static inline const char *milb_section_name(int id) {
    static const char *const names[] = {"header", "STRINGS", "TYPES", "WEIGHTS", "CONSTS", "FUNCS", "CODE", "HASH", "DEBUG"};
    return id >= 0 && id <= MILB_SEC_MAX ? names[id] : "?";
}

/* Type kinds (== MilTypeKind of ir/ir.h, fixed here for the wire). */
enum { MILB_TY_TENSOR = 0, MILB_TY_LIST = 1, MILB_TY_DICT = 2, MILB_TY_TUPLE = 3, MILB_TY_STATE = 4, MILB_TY_MAX = 4 };
/* Constant kinds (== MilConstKind). */
enum { MILB_C_TENSOR = 0, MILB_C_BLOB = 1, MILB_C_LIST = 2, MILB_C_TUPLE = 3, MILB_C_DICT = 4, MILB_C_EMPTY = 5, MILB_C_MAX = 5 };
/* Op flags. */
enum {
    MILB_OP_NAME0 = 1, MILB_OP_NAME = 2, MILB_OP_OPSET = 4, MILB_OP_ATTRS = 8, MILB_OP_ANON = 16, MILB_OP_VAL = 32,
    MILB_OP_MASK = 64, MILB_OP_TSAME = 128, MILB_OP_ALL = 255
};
#define MILB_MAX_TYPE_RANK 15   /* the rank nibble of a TENSOR type byte */

/* Limits the loader enforces (beyond "fits in the remaining bytes"). */
/* largest encoded dim (dim + 1): the loader rejects above, the writer refuses
 * dims >= MILB_MAX_DIM */
#define MILB_MAX_DIM ((int64_t)1 << 40)
#define MILB_MAX_ARG_ITEMS 65536

/* ------------------------------------------------------------ byte helpers */

static inline void milb_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void milb_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t milb_get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t milb_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static inline uint64_t milb_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t milb_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Encodes v into p (at least 10 bytes); returns the length. */
static inline size_t milb_varint_put(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (uint8_t)(v | 0x80); v >>= 7; }
    p[n++] = (uint8_t)v;
    return n;
}
static inline size_t milb_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

/* A bounded reader: every get checks the remaining bytes first; after the
 * first failure `bad` stays set and every get returns 0. */
typedef struct MilbCursor {
    const uint8_t *p, *end;
    bool bad;
} MilbCursor;

static inline size_t milb_left(const MilbCursor *c) { return c->bad ? 0 : (size_t)(c->end - c->p); }

static inline bool milb_get_varint(MilbCursor *c, uint64_t *out) {
    uint64_t v = 0;
    *out = 0;
    if (c->bad) return false;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->p >= c->end) { c->bad = true; return false; }
        uint8_t b = *c->p++;
        if (shift == 63 && b > 1) { c->bad = true; return false; }       /* > 64 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift) { c->bad = true; return false; }       /* non-minimal */
            *out = v;
            return true;
        }
    }
    c->bad = true;
    return false;
}
static inline bool milb_get_byte(MilbCursor *c, uint8_t *out) {
    *out = 0;
    if (c->bad || c->p >= c->end) { c->bad = true; return false; }
    *out = *c->p++;
    return true;
}
static inline bool milb_get_bytes(MilbCursor *c, size_t n, const uint8_t **out) {
    *out = NULL;
    if (c->bad || (size_t)(c->end - c->p) < n) { c->bad = true; return false; }
    *out = c->p;
    c->p += n;
    return true;
}

/* ------------------------------------------------- vocabulary (from .def) */

/* dtype proto code (ir/dtypes.def) <-> MilDType; MIL_DT_NONE / 0 if unknown. */
static inline MilDType milb_dtype_from_code(uint64_t code) {
    switch (code) {
#define DT(id, name, bits, blob, proto, flags) case proto: return MIL_DT_##id;
#include "ir/dtypes.def"
#undef DT
    default: return MIL_DT_NONE;
    }
}
static inline int milb_dtype_code(MilDType dt) {
    switch (dt) {
#define DT(id, name, bits, blob, proto, flags) case MIL_DT_##id: return proto;
#include "ir/dtypes.def"
#undef DT
    default: return 0;
    }
}
static inline int milb_dtype_flags(MilDType dt) {
    switch (dt) {
#define DT(id, name, bits, blob, proto, flags) case MIL_DT_##id: return flags;
#include "ir/dtypes.def"
#undef DT
    default: return 0;
    }
}
/* Raw bytes per element of a float constant on the wire (0 = not a float). */
static inline int milb_float_bytes(MilDType dt) {
    switch (dt) {
    case MIL_DT_FP16: case MIL_DT_BF16: return 2;
    case MIL_DT_FP32: return 4;
    case MIL_DT_FP64: return 8;
    case MIL_DT_FP8E4M3FN: case MIL_DT_FP8E5M2: return 1;
    default: return 0;
    }
}

typedef struct MilbArgRow {
    const char *name;
    int flags;          /* A_* */
    const char *def;    /* default literal or NULL */
} MilbArgRow;

typedef struct MilbOpRow {
    const char *name;
    uint16_t wire;
    int nresults;       /* -1 = variable */
    int flags;          /* OPF_* */
    int nargs;
    const MilbArgRow *args;
} MilbOpRow;

/* The ops.def row of kind k (NULL for MIL_OP_UNKNOWN / out of range). */
static inline const MilbOpRow *milb_op_row(int k) {
    static const MilbArgRow args[] = {
#define OP(id, name, wire, nres, flags)
#define ARG(op, name, flags, def) {#name, flags, def},
#include "ir/ops.def"
#undef OP
#undef ARG
        {NULL, 0, NULL}};
    static MilbOpRow rows[MIL_OP_COUNT];
    static bool init;
    if (!init) { /* idempotent: every thread computes the same table */
        int a = 0, cur = 0;
        enum { NARGS = sizeof args / sizeof args[0] - 1 };
        static const struct { const char *name; uint16_t wire; int nres, flags; } ops[] = {
            {NULL, 0, 0, 0},
#define OP(id, name, wire, nres, flags) {name, wire, nres, flags},
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
        };
        static const int owner[] = {
#define OP(id, name, wire, nres, flags)
#define ARG(op, name, flags, def) MIL_OP_##op,
#include "ir/ops.def"
#undef OP
#undef ARG
            0};
        for (int i = 1; i < MIL_OP_COUNT; i++) {
            rows[i].name = ops[i].name;
            rows[i].wire = ops[i].wire;
            rows[i].nresults = ops[i].nres;
            rows[i].flags = ops[i].flags;
            cur = a;
            while (a < NARGS && owner[a] == i) a++;
            rows[i].args = &args[cur];
            rows[i].nargs = a - cur;
        }
        init = true;
    }
    return k > 0 && k < MIL_OP_COUNT ? &rows[k] : NULL;
}

/* Wire code -> op kind (MIL_OP_UNKNOWN if not in ops.def). */
static inline MilOpKind milb_op_from_wire(uint64_t wire) {
    switch (wire) {
#define OP(id, name, wire, nres, flags) case wire: return MIL_OP_##id;
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
    default: return MIL_OP_UNKNOWN;
    }
}

/* ------------------------------------------------------ the decoded view
 * What runtime/milb_load.c's parser produces after validating a file: plain
 * arrays with indices already range-checked.  Both the runtime loader and the
 * disassembler build from it.  Everything is owned by the view. */

typedef struct MilbType {
    int kind;                 /* MILB_TY_* */
    MilDType dtype;           /* TENSOR */
    int rank;
    const int64_t *dims;      /* -1 = `?` */
    int elem, val;            /* LIST elem / DICT key, DICT value / STATE wrapped */
    int64_t len;              /* LIST, -1 = `?` */
    int ntypes;               /* TUPLE */
    const uint32_t *types;
} MilbType;

typedef struct MilbConst {
    int kind;                 /* MILB_C_* */
    int type;
    int64_t count;            /* TENSOR elements */
    const void *data;         /* TENSOR: runtime storage (strings: const char *[]) */
    int weight;               /* BLOB */
    int nitems;
    const uint32_t *items;
} MilbConst;

typedef struct MilbWeightFile {
    int path;                 /* string index: the BLOBFILE path as written */
    bool has_hash;
    uint64_t hash;            /* XXH3-64 of the payloads of its references, in order */
} MilbWeightFile;

typedef struct MilbWeight {
    int file;                 /* MilbView.wfiles index */
    int path;                 /* == wfiles[file].path */
    uint64_t offset;          /* metadata offset in that file */
} MilbWeight;

typedef struct MilbAttr {
    int name;                 /* string */
    int cst;                  /* constant */
} MilbAttr;

typedef struct MilbArg {
    int slot;                 /* ops.def slot, or -1 */
    int name;                 /* string index of a name outside the ops table, else -1 */
    bool variadic;
    int n;
    const uint32_t *items;    /* value << 1 | 0, constant << 1 | 1 */
} MilbArg;

typedef struct MilbOp {
    MilOpKind kind;           /* MIL_OP_UNKNOWN for wire 0 */
    int opname;               /* string index of an unknown op's spelling, else -1 */
    int opset;                /* string or -1 */
    int name;                 /* string of the `name` attribute, or -1 */
    int nresults;
    const uint32_t *res_names, *res_types;
    int first_result;         /* value number of result 0 */
    int nargs;
    const MilbArg *args;
    int nattrs;
    const MilbAttr *attrs;
    bool anon;                /* results without names (MILB_OP_ANON) */
    int line, col;            /* from DEBUG; 0 = unknown */
} MilbOp;

typedef struct MilbFunc {
    int name, opset;          /* opset -1 = none */
    int nattrs;
    const MilbAttr *attrs;
    int nparams;
    const uint32_t *param_names, *param_types;
    int nops;
    const MilbOp *ops;
    int nouts;
    const uint32_t *outs;     /* value numbers */
    int nvalues;
} MilbFunc;

typedef struct MilbSectionInfo {
    int id;
    size_t offset, size;
} MilbSectionInfo;

typedef struct MilbView {
    uint8_t version, format, flags;
    int nsections;
    MilbSectionInfo sections[MILB_SEC_MAX];
    uint64_t checksum, content_hash;
    int nstrings;
    const char *const *strings;
    int ntypes;
    const MilbType *types;
    int nwfiles;
    const MilbWeightFile *wfiles;
    int nweights;
    const MilbWeight *weights;
    int nconsts;
    const MilbConst *consts;
    int version_str;          /* program version string */
    int prog_flags;
    int nattrs;
    const MilbAttr *attrs;
    int nfuncs;
    const MilbFunc *funcs;
    const char *debug_file;   /* DEBUG section's source file; NULL = no DEBUG section */
    void *mem_;               /* private: allocations */
} MilbView;

/* The name a reader gives value `num` of an op with MILB_OP_ANON: "v<num>",
 * with '_' appended while it collides with one of the program's strings (so
 * it never clashes with a kept input or output name). */
static inline void milb_anon_name(const char *const *strings, int nstrings, int num, char *buf, size_t size) {
    int n = snprintf(buf, size, "v%d", num);
    for (int i = 0; i < nstrings && n > 0 && (size_t)n + 1 < size; i++)
        if (!strcmp(strings[i], buf)) {
            buf[n++] = '_';
            buf[n] = 0;
            i = -1;
        }
}

#ifdef __cplusplus
}
#endif

#endif /* MILC_IR_MILBIN_H */
