/* runtime/runtime.h -- the milc runtime: a self-contained program
 * representation, weight files, devices that run programs, .npy I/O and a
 * differential helper.
 *
 * The runtime links no compiler code: it includes only header-only files of
 * ir/ (vocab.h, ops.def, dtypes.def, fp16.h).  The compiler's backend lowers a
 * MilProgram (ir/ir.h) into a MilRtProgram (backend/backend.h), and the .milb
 * loader of a later issue will produce the same structure from a file.
 *
 * Overview
 *   MilRtProgram  owns everything below (one chunked arena + adopted blocks +
 *                 mapped weight files); freed by mil_rt_program_free().
 *   MilRtFunc     values (dense ids 0..nvalues-1), ordered input and output
 *                 value ids, and ops in execution (= source) order.
 *   MilRtValue    one tensor: name, dtype, rank, dims (-1 = unknown), kind
 *                 (INPUT / CONST / TEMP) and, for CONST, its data.
 *   MilRtOp       an op kind from ir/ops.def, the value ids bound to each of
 *                 its argument SLOTS (MIL_A_<OP>_<arg>: alphabetical ARG rows),
 *                 its result value ids, and a source location for messages.
 *                 `const` ops never appear: a const op's result, every inline
 *                 literal argument, every iOS16-style constexpr attribute and
 *                 every materialised default is a CONST value.  constexpr_*
 *                 ops are evaluated by the lowering and become CONST values.
 *   MilRtDevice   a small backend vtable in ggml's spirit: supports_op,
 *                 prepare (plan buffers for concrete input shapes), run, free.
 *   MilRtSession  a function on a device; checks inputs against the declared
 *                 types and re-prepares when input shapes change (`?` dims).
 *
 * Tensor storage (MilRtTensor, CONST data, .npy I/O): dense, row-major (C
 * order), no strides.  fp16 and bf16 are uint16_t bit patterns, fp32 float,
 * fp64 double, bool uint8_t 0/1, intN/uintN native, sub-byte types (int4,
 * uint1..uint6) and fp8 one byte per element (unpacked: int4 sign-extended
 * into int8_t, uintN zero-extended into uint8_t, fp8 raw bits), string
 * `const char *` per element (pointing into the program's arena).
 * Kernels see fp16, bf16, fp32, bool, int8/16/32/64, uint8/16/32, and
 * rank-0 strings (arguments such as `dtype`, `mode`, `pad_type`); the other
 * dtypes only occur as constexpr inputs.
 *
 * fp16 rule (the ANE's storage semantics): fp16 tensors are stored as fp16.
 * Every op reads its fp16 inputs, computes in fp32 (fp32 accumulators) and
 * rounds each output element to fp16 once, when it stores it.  There is no
 * intermediate fp16 rounding inside an op, and no op keeps fp32 results
 * between ops: a chain of fp16 ops rounds after every op, exactly as the ANE
 * does.  Constants keep their declared dtype (an fp16 weight is fp16 data).
 *
 * Errors: library functions return 0 / a pointer on success and -1 / NULL on
 * failure with a one-line message in a MilRtErr (no trailing newline).  Messages
 * about an op start with "file:line:col: error: ".  Nothing here prints or
 * exits; only the tools do.
 */
#ifndef MILC_RUNTIME_H
#define MILC_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/vocab.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

typedef struct MilRtErr {
    char msg[1024];
} MilRtErr;

/* Formats into e (if non-NULL) and returns -1. */
int mil_rt_errf(MilRtErr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------ dtypes, tensors */

const char *mil_rt_dtype_name(MilDType dt);      /* "fp16"; "?" for NONE */
MilDType mil_rt_dtype_from_name(const char *s);  /* MIL_DT_NONE if unknown */
int mil_rt_dtype_bits(MilDType dt);              /* packed width (4 for int4) */
size_t mil_rt_dtype_size(MilDType dt);           /* bytes per element in storage */
bool mil_rt_dtype_is_float(MilDType dt);
bool mil_rt_dtype_is_int(MilDType dt);           /* includes sub-byte ints */
bool mil_rt_dtype_is_signed(MilDType dt);
int mil_rt_dtype_blob_code(MilDType dt);         /* weight.bin code, 0 if none */
MilDType mil_rt_dtype_from_blob_code(int code);  /* MIL_DT_NONE if unknown */

/* A dense row-major tensor.  `data` is owned by whoever filled the struct
 * (see each function); mil_rt_tensor_alloc'd data is freed with
 * mil_rt_tensor_free. */
typedef struct MilRtTensor {
    MilDType dtype;
    int rank;                    /* 0 = scalar */
    int64_t dims[MIL_MAX_RANK];  /* outermost first; all >= 0 in a real tensor */
    void *data;
} MilRtTensor;

int64_t mil_rt_numel(const MilRtTensor *t);            /* product of dims (1 for rank 0) */
size_t mil_rt_nbytes(const MilRtTensor *t);            /* numel * dtype size */
/* Allocates zeroed data for t's dtype/dims (64-byte aligned, at least 1 byte). */
int mil_rt_tensor_alloc(MilRtTensor *t, MilRtErr *e);
void mil_rt_tensor_free(MilRtTensor *t);               /* frees data, sets it NULL */
/* dst = deep copy of src (dst->data freshly allocated). */
int mil_rt_tensor_copy(MilRtTensor *dst, const MilRtTensor *src, MilRtErr *e);
bool mil_rt_same_shape(const MilRtTensor *a, const MilRtTensor *b);
/* Element i as double / int64 and back (any numeric dtype incl. bool; fp16 and
 * bf16 converted; writes round to nearest and saturate for ints). */
double mil_rt_get_f64(const MilRtTensor *t, int64_t i);
int64_t mil_rt_get_i64(const MilRtTensor *t, int64_t i);
void mil_rt_set_f64(MilRtTensor *t, int64_t i, double v);
/* The string of a rank-0 string tensor (NULL otherwise). */
const char *mil_rt_get_str(const MilRtTensor *t);
/* Converts src into dst->dtype (dst->data allocated, shape copied).  Allowed:
 * same dtype; fp64/fp32/fp16/bf16 between floats; ints between ints with a
 * range check ("value 300 at index 2 does not fit in int8"); bool to bool.
 * Anything else is an error. */
int mil_rt_tensor_convert(MilRtTensor *dst, MilDType to, const MilRtTensor *src, MilRtErr *e);
/* n fp16 <-> fp32 conversions (fp16 as uint16_t bit patterns), vectorised
 * with the instruction set chosen from CPUID (F16C, AVX-512F) and
 * bit-identical to the portable scalar code on every path: round to nearest
 * even, subnormals kept, overflow to inf, NaN kept (quiet, sign and payload). */
void mil_rt_fp16_to_fp32(const uint16_t *src, float *dst, size_t n);
void mil_rt_fp32_to_fp16(const float *src, uint16_t *dst, size_t n);
/* "fp32 [1, 4]" (or "fp32 []"); -1 dims print as "?".  Returns buf. */
char *mil_rt_format_type(MilDType dt, int rank, const int64_t *dims, char *buf, size_t size);

/* Deterministic pseudo-random fill (xorshift64*): floats uniform in [-1, 1),
 * ints in [0, 8) (or [0, 1] for uint1/bool); *state is first scrambled with
 * splitmix64 (so nearby seeds give unrelated values), then advanced. */
void mil_rt_tensor_fill_random(MilRtTensor *t, uint64_t *state);

/* ----------------------------------------------------------------- program */

typedef enum {
    MIL_RT_INPUT,    /* function parameter: data supplied at run time */
    MIL_RT_CONST,    /* constant: data set at load time, never written */
    MIL_RT_TEMP,     /* op result */
} MilRtValueKind;

typedef struct MilRtValue {
    const char *name;            /* SSA name (arena-owned) */
    MilRtValueKind kind;
    MilDType dtype;
    int rank;
    int64_t dims[MIL_MAX_RANK];  /* declared; -1 = unknown (`?`).  CONST: concrete */
    const void *data;            /* CONST: numel elements in runtime storage; else NULL */
    int def;                     /* TEMP: index of the defining op; -1 otherwise */
} MilRtValue;

typedef struct MilRtOp {
    MilOpKind kind;              /* never MIL_OP_CONST or MIL_OP_UNKNOWN */
    const char *opname;          /* "conv" (spelling, for messages) */
    const char *name;            /* the op's name attribute or its first result's name */
    int nslots;                  /* number of ARG rows of kind (ir/ops.def) */
    const int *slot_start;       /* nslots + 1 entries: slot s binds */
    const int *args;             /*   args[slot_start[s] .. slot_start[s+1]) (value ids) */
    int nout;
    const int *outs;             /* result value ids */
    int line, col;               /* source location (0 = unknown) */
} MilRtOp;

typedef struct MilRtProgram MilRtProgram;

typedef struct MilRtFunc {
    const char *name;
    MilRtProgram *prog;
    int nvalues;  MilRtValue *values;
    int ninputs;  int *inputs;   /* value ids in declared order; the input name is
                                    values[id].name */
    int noutputs; int *outputs;  /* value ids in declared order (may be inputs or
                                    consts); the output name is values[id].name */
    int nops;     MilRtOp *ops;  /* execution order: every arg is an input, a
                                    const, or the result of an earlier op */
    int capvalues, capinputs, capoutputs, capops; /* builder */
} MilRtFunc;

typedef struct MilRtChunk MilRtChunk;
typedef struct MilRtResource MilRtResource;

struct MilRtProgram {
    const char *file;            /* source file for messages ("model.mil") */
    int nfuncs, capfuncs;
    MilRtFunc **funcs;
    MilRtChunk *chunks;          /* arena */
    MilRtResource *resources;    /* adopted malloc blocks and mapped files */
};

/* Builder.  Every pointer handed out is owned by the program. */
MilRtProgram *mil_rt_program_new(const char *file);
void mil_rt_program_free(MilRtProgram *p);
void *mil_rt_alloc(MilRtProgram *p, size_t size);  /* zeroed, 64-byte aligned; NULL on OOM */
char *mil_rt_strdup(MilRtProgram *p, const char *s);
/* The program frees `ptr` (malloc'd) with itself. */
int mil_rt_program_adopt(MilRtProgram *p, void *ptr);
/* The program calls release(ctx) when it is freed (used for mapped files). */
int mil_rt_program_adopt_fn(MilRtProgram *p, void (*release)(void *), void *ctx);
MilRtFunc *mil_rt_program_add_func(MilRtProgram *p, const char *name);
MilRtFunc *mil_rt_program_find_func(const MilRtProgram *p, const char *name);
/* Adds a value; returns its id (or -1 on OOM).  dims may be NULL for rank 0. */
int mil_rt_func_add_value(MilRtFunc *f, const char *name, MilRtValueKind kind, MilDType dt,
                          int rank, const int64_t *dims);
/* Adds a CONST value whose data (numel * dtype size bytes) is not copied:
 * it must live as long as the program (arena, adopted or mapped memory). */
int mil_rt_func_add_const(MilRtFunc *f, const char *name, MilDType dt, int rank,
                          const int64_t *dims, const void *data);
int mil_rt_func_add_input(MilRtFunc *f, int value_id);
int mil_rt_func_add_output(MilRtFunc *f, int value_id);
/* Appends an op; slot_start has nslots + 1 entries, args slot_start[nslots]
 * entries; arrays are copied.  Result values get def = the op's index.
 * Returns the op index or -1. */
int mil_rt_func_add_op(MilRtFunc *f, MilOpKind kind, const char *opname, const char *name,
                       int nslots, const int *slot_start, const int *args, int nout,
                       const int *outs, int line, int col);
int mil_rt_func_find_value(const MilRtFunc *f, const char *name); /* id or -1 */
/* Values bound to slot s of op (count; *ids set to the first). */
static inline int mil_rt_op_slot(const MilRtOp *op, int s, const int **ids) {
    if (s < 0 || s >= op->nslots) { *ids = NULL; return 0; }
    *ids = op->args + op->slot_start[s];
    return op->slot_start[s + 1] - op->slot_start[s];
}
/* The tensor view of a value (data NULL unless CONST). */
void mil_rt_value_tensor(const MilRtValue *v, MilRtTensor *t);
/* "model.mil:12:7: error: " prefix for op (just "error: " without a location). */
int mil_rt_op_where(const MilRtFunc *f, const MilRtOp *op, char *buf, size_t size);
/* Checks internal consistency (ids in range, defined before use, slot counts
 * match ops.def, CONST values have data); for loaders and tests. */
int mil_rt_func_validate(const MilRtFunc *f, MilRtErr *e);

/* ----------------------------------------------------------- weight files */

/* MILBlob v2 (docs/mil-format.md §5).  Reader: the file is mapped read-only;
 * blob payloads are 64-byte aligned inside it, so fp16/fp32/int payloads are
 * used in place without a copy.  All offsets are absolute file offsets. */
typedef struct MilRtBlobFile MilRtBlobFile;

typedef struct MilRtBlobInfo {
    uint64_t meta_offset;        /* offset of the 64-byte metadata record */
    int code;                    /* mil_dtype code */
    MilDType dtype;
    uint64_t size;               /* payload bytes */
    uint64_t data_offset;        /* absolute payload offset */
    uint64_t padding_bits;       /* unused trailing bits (sub-byte types) */
    const uint8_t *data;         /* payload inside the mapping */
} MilRtBlobInfo;

/* Opens and checks the header (size >= 64, version 2). */
MilRtBlobFile *mil_rt_blob_open(const char *path, MilRtErr *e);
void mil_rt_blob_close(MilRtBlobFile *bf);
const char *mil_rt_blob_path(const MilRtBlobFile *bf);
uint32_t mil_rt_blob_count(const MilRtBlobFile *bf);  /* header count */
uint64_t mil_rt_blob_file_size(const MilRtBlobFile *bf);
/* The record at meta_offset: alignment, bounds, sentinel, dtype code and
 * payload bounds/alignment checked. */
int mil_rt_blob_info(const MilRtBlobFile *bf, uint64_t meta_offset, MilRtBlobInfo *out, MilRtErr *e);
/* Record number i (0-based) by walking from 64, stepping to align64(offset+size). */
int mil_rt_blob_info_at(const MilRtBlobFile *bf, uint32_t index, MilRtBlobInfo *out, MilRtErr *e);
/* Reads the blob at meta_offset as `count` elements of `dt`: the record's
 * dtype must be dt and its size exactly ceil(count * bits / 8).  *data is set
 * to the payload in place when it needs no conversion (*owned = NULL), else to
 * a malloc'd unpacked copy (*owned = that pointer; caller frees). */
int mil_rt_blob_read(const MilRtBlobFile *bf, uint64_t meta_offset, MilDType dt, int64_t count,
                     const void **data, void **owned, MilRtErr *e);

/* Packs `count` elements from runtime storage into the weight.bin payload
 * layout (sub-byte: LSB-first bit stream) / unpacks it back.  dst must hold
 * mil_rt_blob_payload_size(dt, count) bytes / count * dtype size bytes. */
uint64_t mil_rt_blob_payload_size(MilDType dt, int64_t count);
void mil_rt_blob_pack(MilDType dt, const void *src, int64_t count, void *dst);
void mil_rt_blob_unpack(MilDType dt, const void *src, int64_t count, void *dst);

/* Writer: creates (truncates) path with a version-2 header.  append writes a
 * metadata record at the current end rounded up to 64 and the payload right
 * after it, updates the header count, and returns the METADATA offset (what a
 * BLOBFILE's `offset` names).  Data is in runtime storage (packed as needed). */
typedef struct MilRtBlobWriter MilRtBlobWriter;
MilRtBlobWriter *mil_rt_blob_writer_open(const char *path, MilRtErr *e);
int mil_rt_blob_writer_append(MilRtBlobWriter *w, MilDType dt, const void *data, int64_t count,
                              uint64_t *meta_offset, MilRtErr *e);
/* Flushes and closes (also on error); returns -1 if any write failed. */
int mil_rt_blob_writer_close(MilRtBlobWriter *w, MilRtErr *e);

/* BLOBFILE path resolution.  `@model_path` is the model directory: the
 * `.mlmodelc` directory, or the directory holding a bare `.mil`.  With a
 * weights_dir override, "@model_path/weights/NAME" and "@model_path/NAME"
 * both resolve to weights_dir/NAME.  Paths without @model_path are used as
 * written (relative to the model directory when relative). */
int mil_rt_blob_resolve(const char *blob_path, const char *model_dir, const char *weights_dir,
                        char *out, size_t size, MilRtErr *e);

/* A set of open blob files keyed by resolved path (several constants and
 * several files); owned files are closed by mil_rt_blob_cache_free unless
 * adopted by a program with mil_rt_blob_cache_give(). */
typedef struct MilRtBlobCache MilRtBlobCache;
MilRtBlobCache *mil_rt_blob_cache_new(const char *model_dir, const char *weights_dir);
MilRtBlobFile *mil_rt_blob_cache_get(MilRtBlobCache *c, const char *blob_path, MilRtErr *e);
/* Hands every open file to p (closed when p is freed) and empties the cache. */
int mil_rt_blob_cache_give(MilRtBlobCache *c, MilRtProgram *p);
void mil_rt_blob_cache_free(MilRtBlobCache *c);

/* Model paths: MODEL is a `.mlmodelc` directory (MODEL/model.mil, model dir
 * MODEL) or a `.mil` file (model dir = its directory).  Writes both paths. */
int mil_rt_model_paths(const char *model, char *mil_path, size_t mil_size, char *model_dir,
                       size_t dir_size, MilRtErr *e);

/* -------------------------------------------------------------------- .npy */

/* Reads a .npy file (format v1, v2 or v3; C order only).  Supported descrs:
 * f2 f4 f8, i1 i2 i4 i8, u1 u2 u4, b1 (either byte order; converted to
 * native).  out->data is malloc'd (mil_rt_tensor_free); fp64 and int64 arrive
 * as MIL_DT_FP64 / MIL_DT_INT64 and are meant to be converted with
 * mil_rt_tensor_convert.  Every malformed header or truncation is an error. */
int mil_rt_npy_read(const char *path, MilRtTensor *out, MilRtErr *e);
int mil_rt_npy_read_mem(const void *buf, size_t len, MilRtTensor *out, MilRtErr *e);
/* Writes a v1 .npy (v2 if the header needs it).  bf16 is written as f4. */
int mil_rt_npy_write(const char *path, const MilRtTensor *t, MilRtErr *e);
/* The same into a malloc'd buffer. */
int mil_rt_npy_write_mem(const MilRtTensor *t, void **buf, size_t *len, MilRtErr *e);

/* ----------------------------------------------------------------- devices */

typedef struct MilRtDevice MilRtDevice;
typedef struct MilRtPlan MilRtPlan;

/* Plans (CPU device; runtime/cpu/device.c has the details).  prepare runs
 * every kernel's shape() once for the given input shapes and checks the
 * results against the declared types; ops whose arguments are all constant
 * are evaluated once (folded); temporaries get offsets in ONE arena by
 * liveness (a buffer is reused once its last reader has run; function
 * outputs are never reused).  An op whose output shape depends on run-time
 * data (kernel shape() returns MIL_K_NEED_DATA: reshape by a computed shape,
 * range_1d, ...) and every op downstream of it is "dynamic": it is shaped at
 * run time and its results live in per-value buffers owned by the plan that
 * only grow, so steady-state runs do not allocate.  Inputs are read in place.
 * Statistics of a plan (filled by prepare): */
typedef struct MilRtPlanInfo {
    size_t arena_bytes;          /* planned buffer (with liveness reuse) */
    size_t naive_bytes;          /* sum of all planned temps (no reuse) */
    size_t scratch_bytes;        /* largest kernel scratch */
    int nsteps;                  /* ops executed per run */
    int nfolded;                 /* ops evaluated once at prepare (constant inputs) */
    int ndynamic;                /* ops sized at run time (data-dependent shapes) */
    int nfused;                  /* element-wise ops run inside their consumer (not in nsteps) */
} MilRtPlanInfo;

/* A plan: a function prepared for one set of input shapes.  Devices embed
 * this header first in their own plan struct. */
struct MilRtPlan {
    MilRtDevice *dev;
    const MilRtFunc *func;
    MilRtPlanInfo info;
};

typedef struct MilRtDeviceIface {
    const char *name;                                       /* "cpu" */
    /* Can this device run op (dtypes/attributes aside)?  Optional: NULL = all. */
    bool (*supports_op)(MilRtDevice *dev, const MilRtFunc *f, const MilRtOp *op);
    /* Plans f for inputs[i] (dtype/rank/dims of input i; data may be NULL):
     * shape propagation, type checks, buffer planning. */
    MilRtPlan *(*prepare)(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *inputs, MilRtErr *e);
    /* Runs the plan on inputs of exactly the prepared shapes.  outputs[i]
     * (f->noutputs) receive dtype, shape and a data pointer owned by the plan
     * (or aliasing an input or constant), valid until the next run or
     * plan_free; copy what you keep. */
    int (*run)(MilRtPlan *plan, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e);
    void (*plan_free)(MilRtPlan *plan);
    /* Optional: mil_rt_plan_run_into without copies (outputs[i].data != NULL
     * = caller-owned memory of exactly the planned type; the hook checks the
     * types itself).  NULL = the runtime runs `run` and copies. */
    int (*run_into)(MilRtPlan *plan, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e);
    void (*free)(MilRtDevice *dev);                         /* optional */
} MilRtDeviceIface;

struct MilRtDevice {
    const MilRtDeviceIface *iface;
    void *ctx;
};

/* "cpu" (the reference device) or "ane".  NULL + error for an unknown name. */
MilRtDevice *mil_rt_device_new(const char *name, MilRtErr *e);
MilRtDevice *mil_rt_device_cpu_new(void);                /* runtime/cpu/device.c */
/* The CPU device with its own pool of nthreads threads (the caller's thread
 * plus nthreads - 1 workers, created at the first prepare, joined by
 * mil_rt_device_free).  nthreads <= 0: $MILC_THREADS when set to a positive
 * number, else the CPUs this process may run on; mil_rt_device_cpu_new() and
 * mil_rt_device_new("cpu") use that default.  The BLAS library is made
 * single-threaded for the whole process (the pool splits GEMMs itself).
 * Results of milc's own kernels do not depend on the thread count. */
MilRtDevice *mil_rt_device_cpu_new_threads(int nthreads);
int mil_rt_device_cpu_threads(const MilRtDevice *dev);   /* 0 if dev is not the CPU device */
/* Runs fn(arg, i0, i1) on the CPU device's threads over contiguous ranges
 * that cover [0, n) once, each starting at a multiple of align (the caller's
 * thread takes the first), and returns when all are done -- for a caller's
 * own loops beside the kernels (mil-train's optimiser).  The split depends
 * only on n, align and the thread count.  Runs fn(arg, 0, n) on the calling
 * thread when dev is not the CPU device, has one thread, or is busy running
 * a plan on another thread. */
void mil_rt_device_cpu_parallel(MilRtDevice *dev, int64_t n, int64_t align,
                                void (*fn)(void *arg, int64_t i0, int64_t i1), void *arg);
void mil_rt_device_free(MilRtDevice *dev);
const char *mil_rt_device_name(const MilRtDevice *dev);
bool mil_rt_device_supports_op(MilRtDevice *dev, const MilRtFunc *f, const MilRtOp *op);
/* Every op of f supported?  If not, the error names the first unsupported op:
 * "model.mil:3:5: error: op 'lstm' is not supported by the cpu device". */
int mil_rt_device_check(MilRtDevice *dev, const MilRtFunc *f, MilRtErr *e);
MilRtPlan *mil_rt_prepare(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *inputs, MilRtErr *e);
int mil_rt_plan_run(MilRtPlan *plan, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e);
/* Like mil_rt_plan_run, but for every i with outputs[i].data != NULL on entry, output i is written
 * into that caller-owned memory (outputs[i].dtype/rank/dims must equal the planned output exactly,
 * else an error before anything runs); entries with data == NULL get plan-owned data as in
 * mil_rt_plan_run.  The caller's buffers must not overlap the inputs.
 * (An output whose shape depends on run-time data -- a "dynamic" op, see the
 * plan notes above -- can only be checked once it is computed: a mismatch is
 * then reported after the run, and the caller's buffer is left untouched.)
 * The CPU device writes such outputs in place (no copy); a device without a
 * run_into hook runs and copies. */
int mil_rt_plan_run_into(MilRtPlan *plan, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e);
void mil_rt_plan_free(MilRtPlan *plan);

/* ANE device (runtime/ane/, issue 12): Apple's private in-memory route
 * (docs/ane-notes.md §3).  mil_rt_device_new("ane") is this; on a system
 * without AppleNeuralEngine.framework it fails with "ANE device: not
 * available on this system (...)".  Contract-tested on Linux against a
 * recording double of the private API (runtime/ane/ane_sim.h), not verified
 * on hardware.  Compiles are cached by content hash and limited per process
 * (budget: MILC_ANE_COMPILE_BUDGET, default 100; the route fails after ~119). */
typedef struct MilRtAneStats {
    int compiles;                /* compiles made by this device */
    int process_compiles;        /* compiles made in this process (the budget counts these) */
    int budget;                  /* compile budget */
    int cache_hits;              /* prepares served by the compile cache */
    int cache_entries;           /* compiled and loaded models */
    int loads;
    long evaluations;
} MilRtAneStats;
MilRtDevice *mil_rt_device_ane_new(MilRtErr *e);
/* -1 when dev is not an ANE device (or budget < 1). */
int mil_rt_ane_set_compile_budget(MilRtDevice *dev, int budget);
int mil_rt_ane_stats(const MilRtDevice *dev, MilRtAneStats *st);

/* Checks inputs[i] against f's declared input i: same dtype, same rank, equal
 * dims where declared (non-`?`), non-NULL data when need_data.  Message:
 * "input 'x': expected fp32 [?, 4], got fp16 [1, 4]". */
int mil_rt_check_inputs(const MilRtFunc *f, const MilRtTensor *inputs, bool need_data, MilRtErr *e);
/* Checks a caller-owned buffer `given` for output i of f against the type
 * `want` (dtype, rank, dims; a -1 dim in want is not checked): "output 'y':
 * the plan gives fp32 [1, 4], the caller's buffer is fp32 [4]". */
int mil_rt_check_output(const MilRtFunc *f, int i, const MilRtTensor *want, const MilRtTensor *given, MilRtErr *e);

/* A function bound to a device; prepares lazily and again whenever the input
 * shapes differ from the previous run. */
typedef struct MilRtSession MilRtSession;
MilRtSession *mil_rt_session_new(MilRtDevice *dev, const MilRtFunc *f, MilRtErr *e);
/* Checks inputs (mil_rt_check_inputs), then runs.  outputs as in iface.run. */
int mil_rt_session_run(MilRtSession *s, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e);
/* Checks inputs, (re)prepares as mil_rt_session_run, then mil_rt_plan_run_into. */
int mil_rt_session_run_into(MilRtSession *s, const MilRtTensor *inputs, MilRtTensor *outputs, MilRtErr *e);
const MilRtPlan *mil_rt_session_plan(const MilRtSession *s);  /* NULL before the first run */
void mil_rt_session_free(MilRtSession *s);

/* Runs f once on dev: outputs[i] get deep copies (mil_rt_tensor_free each). */
int mil_rt_run_once(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *inputs,
                    MilRtTensor *outputs, MilRtErr *e);

/* Evaluates one op whose arguments are all CONST values with the CPU kernels
 * (used for constexpr_* ops at load time and for constant folding).  outs
 * (op->nout) receive malloc'd data (mil_rt_tensor_free). */
int mil_rt_eval_const_op(const MilRtFunc *f, const MilRtOp *op, MilRtTensor *outs, MilRtErr *e);

/* ------------------------------------------------------------ differential */

/* Per-output difference between two runs.
 *   max_abs = max |a_i - b_i|
 *   max_rel = max |a_i - b_i| / max(|a_i|, |b_i|)   (0 where both are 0)
 *   nmse    = sum (a_i - b_i)^2 / sum b_i^2         (ggml's test-backend-ops;
 *             sum (a-b)^2 when b is all zeros)
 * NaN in exactly one of a_i, b_i (or an inf mismatch) counts as infinite
 * difference; NaN in both counts as equal. */
typedef struct MilRtDiff {
    char name[128];              /* output name (of function A) */
    bool shape_mismatch;         /* dtype class or shape differ: numbers below unset */
    int64_t numel;
    double max_abs, max_rel, nmse;
    int64_t argmax_abs;          /* index of the largest absolute difference */
} MilRtDiff;

int mil_rt_compare_tensors(const MilRtTensor *a, const MilRtTensor *b, MilRtDiff *d);
/* Runs A and B on dev with the same inputs (given in A's input order; B's
 * inputs are matched by name, and B must have the same names) and fills
 * diffs[i] for each output i (A and B must have the same number of outputs).
 * Returns 0, or -1 when either function fails to run. */
int mil_rt_compare(MilRtDevice *dev, const MilRtFunc *a, const MilRtFunc *b,
                   const MilRtTensor *inputs, MilRtDiff *diffs, MilRtErr *e);


/* ============================================================ .milb loader
 * (issue 5; runtime/milb_load.c.)  Loads a compiled binary program (format:
 * ir/milbin.h) without any compiler code.  Every field is validated before
 * use; errors read "prog.milb: bad binary format (CODE: function 'main' op 3
 * 'matmul': argument slot 9 out of range (the op has 4))".  Weight references
 * resolve like BLOBFILE paths with `@model_path` = the .milb's directory (or
 * model_dir) and are checked against the XXH3-64 recorded in the program. */
#include "ir/milbin.h"

typedef struct MilRtMilbOptions {
    const char *model_dir;       /* what `@model_path` means; NULL = the file's directory */
    const char *weights_dir;     /* override for "@model_path/weights/NAME" and "@model_path/NAME" */
    const char *function;        /* load only this function; NULL = all */
} MilRtMilbOptions;

/* bytes -> validated view (free with mil_rt_milb_view_free, also after errors). */
int mil_rt_milb_parse(const void *buf, size_t len, const char *file, MilbView *view, MilRtErr *e);
void mil_rt_milb_view_free(MilbView *view);
/* bytes -> runtime program (rules of mil_lower: CONST values, defaults,
 * constexpr ops evaluated).  file names the program in messages. */
MilRtProgram *mil_rt_milb_load_mem(const void *buf, size_t len, const char *file, const MilRtMilbOptions *opt,
                                   MilRtErr *e);
MilRtProgram *mil_rt_milb_load(const char *path, const MilRtMilbOptions *opt, MilRtErr *e);
/* Whole file into a malloc'd buffer. */
int mil_rt_milb_read_file(const char *path, void **buf, size_t *len, MilRtErr *e);
/* The FlexibleShapeInformation DefaultShapes entry of `input` of `function`
 * (NULL = "main", or the only function) in a validated view or a .milb file:
 * 1 and dims[0..rank) filled when there is one with that rank (what to use for
 * `?` dims of generated inputs), 0 when there is none, -1 when the file cannot
 * be read or is invalid. */
int mil_rt_milb_view_default_shape(const MilbView *v, const char *function, const char *input, int rank, int64_t *dims);
int mil_rt_milb_default_shape(const char *path, const char *function, const char *input, int rank, int64_t *dims);
/* The FlexibleShapeInformation limits on `input` of `function` (NULL as
 * above): RangeDims (nranges pairs: dim d within [lo[d], hi[d]], hi -1 =
 * unbounded; given as a list of [lo, hi] tensors or one flat tensor) and
 * EnumeratedShapes (nshapes shapes, a list of shape tensors or a dict whose
 * values are the shapes).  Absent or unrecognised entries leave the counts 0.
 * Returns 0 (free with mil_rt_flex_limits_free), -1 when the file cannot be
 * read or is invalid (nothing to free). */
typedef struct MilRtFlexLimits {
    int nranges;                       /* 0 = no RangeDims */
    int64_t lo[MIL_MAX_RANK], hi[MIL_MAX_RANK];
    int nshapes;                       /* 0 = no EnumeratedShapes */
    int *shape_rank;                   /* [nshapes] */
    int64_t **shapes;                  /* [nshapes][shape_rank[i]] */
} MilRtFlexLimits;
int mil_rt_milb_view_flex_limits(const MilbView *v, const char *function, const char *input, MilRtFlexLimits *out);
int mil_rt_milb_flex_limits(const char *path, const char *function, const char *input, MilRtFlexLimits *out);
/* Appends one enumerated shape (0, or -1 when out of memory). */
int mil_rt_flex_limits_add_shape(MilRtFlexLimits *l, int rank, const int64_t *dims);
void mil_rt_flex_limits_free(MilRtFlexLimits *l);

#ifdef __cplusplus
}
#endif

#endif /* MILC_RUNTIME_H */
