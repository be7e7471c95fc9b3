/* backend/backend.h -- the compiler's backend: turns the IR into what the
 * runtime executes.  The one public header of backend/.
 *
 *   lowering   MilProgram (ir/ir.h) -> MilRtProgram (runtime/runtime.h):
 *              constants resolved (inline literals copied, BLOBFILE data read
 *              from weight files and checked against the declared dtype and
 *              shape), arguments mapped to the op table's slots, defaults
 *              materialised, constexpr_* ops evaluated once, unsupported ops
 *              rejected before anything runs.
 *   (later)    .milb emission.
 */
#ifndef MILC_BACKEND_H
#define MILC_BACKEND_H

#include <stdbool.h>

#include "ir/ir.h"
#include "runtime/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct MilLowerOptions {
    const char *model_dir;     /* what `@model_path` means; NULL = "." */
    const char *weights_dir;   /* override for "@model_path/weights/NAME"; NULL = none */
    MilRtDevice *device;       /* reject ops it does not support; NULL = no check */
    const char *function;      /* lower only this function; NULL = all */
    const char *file;          /* source name for runtime messages; NULL = the ops' locations */
    bool no_defaults;          /* leave absent optional arguments absent (kernels default them) */
} MilLowerOptions;

/* Lowers p.  Every problem is reported into d at the op's location, e.g.
 *   model.mil:4:9: error: op 'lstm' is not supported by the cpu device
 *   model.mil:3:13: error: weights/weight.bin: blob at offset 64 has dtype fp16 but the constant is fp32
 * and NULL is returned when there was any.  The result is independent of p
 * (it may be freed first); free it with mil_rt_program_free.
 *
 * Lowering rules (what the runtime program looks like):
 *   - function parameters become INPUT values in written order; `state`
 *     parameters are rejected;
 *   - a `const` op becomes a CONST value named after its result; an inline
 *     literal argument or a constexpr attribute becomes a CONST value named
 *     "<op name>.<argument>";
 *   - an absent optional argument with a literal default in ir/ops.def is
 *     bound to a CONST value holding that default (fp32 for floats, int32 for
 *     integers, bool, string); "*" defaults (depending on other arguments)
 *     stay absent;
 *   - constexpr_* ops are evaluated with the CPU kernels and their results
 *     become CONST values (checked against the declared types);
 *   - everything else becomes a MilRtOp with its declared result types. */
MilRtProgram *mil_lower(const MilProgram *p, const MilLowerOptions *opt, MilDiag *d);


/* ================================================================ .milb
 * (issue 5.)  Compact parameterized binary programs; format in ir/milbin.h,
 * runtime loader in runtime/milb_load.c (mil_rt_milb_load).
 *
 *   mil_milb_write        IR -> .milb bytes + the MILBlob v2 weight file it
 *                         references (every BLOBFILE constant copied,
 *                         deduplicated, and inline tensors above inline_max
 *                         bytes moved there).  Deterministic.
 *   mil_milb_write_files  writes PATH (prog.milb) and, next to it,
 *                         prog.weights.bin (recorded as MILB_WEIGHTS_SELF,
 *                         "the weight file named after this program", so the
 *                         bytes do not depend on PATH); no weight file when
 *                         the program has no constant tensors to store.
 *   mil_milb_disassemble  .milb bytes -> MilProgram (validated by the runtime
 *                         parser); printing it gives canonical MIL, and writing
 *                         it again gives the same bytes.
 *   mil_emit_ane_mil      --emit=ane-mil: DIR/model.mil for Apple's compiler
 *                         (extension ops expanded) + DIR/weights/weight.bin. */
#include <stdio.h>

#include "ir/milbin.h"

#define MILB_INLINE_MAX_DEFAULT 64

typedef struct MilbWriteOptions {
    const char *model_dir;     /* what the input's `@model_path` means; NULL = "." */
    const char *weights_dir;   /* override for the input's weight files */
    const char *weight_path;   /* BLOBFILE path recorded for the new weight file;
                                  NULL = "@model_path/weights.bin" */
    size_t inline_max;         /* inline tensors above this many bytes go to the
                                  weight file; 0 = MILB_INLINE_MAX_DEFAULT */
    bool keep_unreadable_weights; /* a BLOBFILE whose file cannot be read stays a
                                  reference to it (no hash) instead of an error */
    bool strip;                /* drop value and op names (all but function inputs
                                  and outputs) and the DEBUG section (milc --strip) */
    bool no_debug;             /* drop only the DEBUG section (milc --no-debug) */
} MilbWriteOptions;

typedef struct MilbStats {
    size_t total;              /* .milb bytes */
    size_t header;             /* fixed header + section table + checksum */
    size_t sections[MILB_SEC_MAX + 1];
    int nfuncs, nops, nstrings, ntypes, nconsts, nweights, nblobs;
    size_t weight_bytes;       /* size of the weight file (0 = none) */
    uint64_t content_hash;
    bool stripped;
} MilbStats;

typedef struct MilbOutput {
    uint8_t *milb;             /* malloc'd */
    size_t milb_len;
    uint8_t *weights;          /* malloc'd weight file image; NULL when there are no weights */
    size_t weights_len;
    MilbStats stats;
} MilbOutput;

int mil_milb_write(const MilProgram *p, const MilbWriteOptions *opt, MilbOutput *out, MilDiag *d);
void mil_milb_output_free(MilbOutput *o);
/* "dir/prog.milb" -> "prog.weights.bin" */
int mil_milb_weights_name(const char *milb_path, char *out, size_t size);
int mil_milb_write_files(const MilProgram *p, const char *path, const MilbWriteOptions *opt, MilbStats *stats,
                         MilDiag *d);
void mil_milb_print_stats(const MilbStats *s, const char *path, FILE *out);

/* Errors (the loader's "bad binary format (...)" messages) go into d. */
MilProgram *mil_milb_disassemble(const void *buf, size_t len, const char *file, MilDiag *d);
/* Is path a .milb file (by name)? */
bool mil_milb_is_path(const char *path);

/* ------------------------------------------------------ model directories */

/* Writes a whole file under a temporary name and renames it into place: on
 * failure nothing new is left.  Only an absent path or a regular file is
 * replaced (a symlink, device, fifo or directory is refused).  0 or -1. */
int mil_write_file_atomic(const char *path, const void *data, size_t len, MilDiag *d);

/* FlexibleShapeInformation of f (backend/flex.c): the value for input
 * `name` in entry `key` ("DefaultShapes", "RangeDims", "EnumeratedShapes"),
 * or NULL; and the DefaultShapes shape of `name` when it has `rank` dims. */
const MilConst *mil_flex_entry(const MilFunc *f, const char *key, const char *name);
bool mil_flex_default_shape(const MilFunc *f, const char *name, int rank, int64_t *dims);

/* rm -r PATH (symbolic links are removed, never followed). */
void mil_rm_tree(const char *path);

/* mkdir -p DIR: 0 when DIR is a directory afterwards, -1 (errno set by the
 * failing mkdir) otherwise. */
int mil_mkdirs(const char *dir);

typedef struct MilBundleOptions {
    MilSpelling spelling;        /* of model.mil */
    const char *model_dir;       /* the input's `@model_path` (to read its BLOBFILEs); NULL = "." */
    const char *weights_dir;     /* override for the input's weights; NULL = none */
    size_t inline_max_bytes;     /* inline tensors above this many bytes move to the
                                    weight file; 0 = coremltools' rule (>= 10
                                    elements of a weight-file dtype) */
    bool omit_empty_weights;     /* no weight.bin when nothing goes into it */
    bool weights_only;           /* weights/ only, no model.mil (the .mlpackage writer) */
} MilBundleOptions;

/* Writes DIR/model.mil + DIR/weights/weight.bin (every BLOBFILE constant the
 * program references, shared blobs once, and the large inline constants).
 * Built under a temporary name and renamed into place: on failure nothing is
 * left and an existing DIR is untouched.  p's constants are rewritten in
 * place to point into the new weight file.  0 or -1 (diagnostics in d). */
int mil_bundle_write(MilProgram *p, const char *dir, const MilBundleOptions *opt, MilDiag *d);

typedef struct MilAneOptions {
    MilSpelling spelling;      /* SAME = 1.3 if any function is ios18, else 1.0 */
    const char *model_dir;     /* the input's `@model_path`; NULL = "." */
    const char *weights_dir;
} MilAneOptions;

/* Writes DIR/model.mil and DIR/weights/weight.bin.  p is rewritten in place
 * (extension ops expanded, constants moved to the weight file). */
int mil_emit_ane_mil(MilProgram *p, const char *dir, const MilAneOptions *opt, MilDiag *d);
/* Expands every milc extension op (OPF_EXT) of p into standard MIL ops in
 * place (used by mil_emit_ane_mil); -1 after reporting an op it cannot. */
int mil_ane_expand_ext(MilProgram *p, MilDiag *d);


/* ===================================================== synthetic weights
 * (backend/synth.c)  Real programs often reference weight files that are not
 * available (e.g. Git LFS pointers).  mil_synth_weights re-creates them with
 * deterministic random data so the program can be lowered and run (tests,
 * benchmarks, `mil-run --random-weights`).
 *
 * For every BLOBFILE constant of p (op arguments and attributes, function and
 * program attributes, inside lists/tuples/dicts), the path is resolved like
 * mil_lower does (`@model_path` = model_dir, weights_dir override).  A file
 * that exists is used as it is (never rewritten or checked).  A missing file
 * is written with the runtime's MILBlob v2 writer:
 *   - one record at exactly each referenced metadata offset; constants
 *     sharing an offset share the record (they must have the same dtype and
 *     element count);
 *   - a gap before a record is bridged by one uint8 filler record whose
 *     payload ends where the next record starts (gaps up to 1 GiB);
 *   - the record's dtype and element count are the constant's declared
 *     tensor type;
 *   - values: floats uniform in [-0.05, 0.05); bool and uint1 in {0, 1};
 *     other integers (sub-byte included) in [0, 4); fp8 small magnitudes.
 *     They depend only on (seed, the path as written, the offset), so the
 *     same program and seed give byte-identical files.
 * Errors go into d at the constant's location, and nothing is written for
 * that file: an offset that is not a multiple of 64, lies in the 64-byte
 * header, or overlaps the previous record; constants of different types at
 * one offset; a type of unknown size or not storable; a directory or file
 * that cannot be created.  Never exits or crashes.
 *
 * Returns the number of files written (0 = nothing was missing), or -1 when
 * there was any error (files for other, valid paths may have been written).
 *
 * mil_synth_weights_opt with link_dir set mirrors a real model directory:
 * model_dir is then a (usually empty, private) directory, and a file that
 * exists when resolved against link_dir / link_weights_dir is symlinked into
 * model_dir instead of being synthesised, so lowering with model_dir (and no
 * weights_dir) reads the real weights where they exist and synthetic ones
 * elsewhere. */
typedef struct MilSynthStats {
    int files;                 /* weight files written */
    int blobs;                 /* BLOBFILE constants seen */
} MilSynthStats;

typedef struct MilSynthOptions {
    const char *model_dir;     /* `@model_path`; missing files are written here; NULL = "." */
    const char *weights_dir;   /* as MilLowerOptions.weights_dir; NULL = none */
    const char *link_dir;      /* real model dir whose existing files are linked; NULL = none */
    const char *link_weights_dir; /* weights_dir override for link_dir */
    uint64_t seed;
    MilSynthStats *stats;      /* filled when not NULL */
} MilSynthOptions;

int mil_synth_weights(const MilProgram *p, const char *model_dir, uint64_t seed, MilDiag *d);
int mil_synth_weights_opt(const MilProgram *p, const MilSynthOptions *opt, MilDiag *d);

#ifdef __cplusplus
}
#endif

#endif /* MILC_BACKEND_H */
