/* coreml/coreml.h -- Core ML `.mlpackage` reader and writer (issue 13).
 * The one public header of coreml/ (library milcoreml).
 *
 * A package is a directory:
 *   NAME.mlpackage/Manifest.json                  items + rootModelIdentifier
 *   NAME.mlpackage/Data/com.apple.CoreML/model.mlmodel   protobuf (Model)
 *   NAME.mlpackage/Data/com.apple.CoreML/weights/weight.bin  MILBlob v2
 * The root model's directory is what `@model_path` means in its BLOBFILE
 * paths.  The protobuf is Core ML's Model message holding an ML Program
 * (MIL.proto): the same program milc reads as text, so the reader builds the
 * IR the text parser builds for the equivalent `model.mil`:
 *   - program version "1.3" for specificationVersion >= 9, else "1.0"
 *     (coremlc's rule); program attributes (buildInfo) as they are;
 *   - one function per Program.functions entry, in file order; the opset
 *     CoreML5..CoreML8 becomes the tag ios15..ios18 (CoreML9: ios26), and
 *     the block of that opset is the body; parameters keep the order of
 *     Function.inputs (coremlc would sort them; milc never reorders);
 *   - ops with their arguments (a single binding is a plain argument, several
 *     bindings -- or any binding of a variadic argument -- a tuple), inline
 *     values of every dtype (fp32 `floats`, fp64 `doubles`, int16..int32
 *     `ints`, 64-bit `longInts`, bool `bools`, string `strings`, and raw
 *     little-endian `bytes` for fp16/bf16/fp8/int8/uint8/uint32 and the packed
 *     sub-byte types), tuples, lists and dicts, BLOBFILE constants (their
 *     weight file and record are checked: present, version 2, dtype and size
 *     matching the declared type), attributes;
 *   - flexible input shapes of the model description become the function's
 *     FlexibleShapeInformation attribute, the form milc's tools enforce:
 *     ("DefaultShapes", {{"x", [1, 4]}}) with ("RangeDims",
 *     {{"x", [[1, 16], [4, 4]]}}) (upper bound -1 = unbounded) and/or
 *     ("EnumeratedShapes", {{"x", [[1, 4], [3, 4]]}});
 *   - the model description's inputs and outputs must name the function's
 *     parameters and outputs (checked); per-function descriptions of
 *     multi-function packages likewise.
 * Refused with a message naming the file and the field or op: old
 * (neural-network, pipeline, ...) models, nested blocks (control flow),
 * unknown ops (unless allow_unknown_ops: then opaque ops), malformed
 * protobuf (truncated, wrong wire types: the field path is named), types or
 * values that do not match, missing or short weight files, bad manifests.
 * Unknown protobuf fields are skipped.
 *
 * The writer (mil_coreml_write) builds a package coremltools loads: a
 * Manifest.json, model.mlmodel (specificationVersion from the functions'
 * opsets, a model description derived from the main function, the
 * FlexibleShapeInformation attribute turned back into shape flexibility;
 * other function attributes are dropped with a warning, as coremltools
 * refuses them) and
 * weights/weight.bin holding every BLOBFILE constant and the large inline
 * constants (backend's bundle writer); milc's extension ops are expanded
 * into standard MIL first.  Errors are values: nothing here
 * prints or exits. */
#ifndef MILC_COREML_H
#define MILC_COREML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct MilCoreMLReadOptions {
    bool allow_unknown_ops;    /* keep unknown op types as opaque ops */
    bool no_weight_check;      /* don't open the weight files (fuzzing) */
} MilCoreMLReadOptions;

/* Is path a Core ML package: a directory holding Manifest.json, or a name
 * ending in .mlpackage? */
bool mil_coreml_is_package(const char *path);

/* The root model's directory inside the package (what `@model_path`
 * means), e.g. "M.mlpackage/Data/com.apple.CoreML".  0, or -1 with the
 * manifest's problem in d. */
int mil_coreml_model_dir(const char *pkg, char *dir, size_t size, MilDiag *d);

/* Reads a whole package.  NULL when any error was reported into d; the
 * program is the caller's (mil_program_free).  MilLoc.file of the messages
 * and of the IR's ops points into d's source table: keep d alive. */
MilProgram *mil_coreml_read(const char *pkg, const MilCoreMLReadOptions *opt, MilDiag *d);

/* Reads model.mlmodel bytes.  file names them in messages; model_dir is
 * `@model_path` for the weight checks (NULL = the directory of file). */
MilProgram *mil_coreml_read_model(const char *file, const void *buf, size_t len, const char *model_dir,
                                  const MilCoreMLReadOptions *opt, MilDiag *d);

typedef struct MilCoreMLWriteOptions {
    const char *model_dir;     /* the input's `@model_path` (to read its BLOBFILEs); NULL = "." */
    const char *weights_dir;   /* override for the input's weights; NULL = none */
    int spec_version;          /* 0 = from the opsets (ios15 -> 6 ... ios18 -> 9) */
    const char *author, *short_description;  /* model metadata; NULL = none */
} MilCoreMLWriteOptions;

/* The Model protobuf for p (weights not touched: BLOBFILE paths are written
 * as they are).  *out is malloc'd.  0 or -1 (diagnostics in d). */
int mil_coreml_encode(const MilProgram *p, const MilCoreMLWriteOptions *opt, uint8_t **out, size_t *len,
                      MilDiag *d);

/* Writes the package PKG (built under a temporary name and renamed into
 * place: on failure nothing is left, an existing package is untouched; only
 * an absent path or an earlier package is replaced).  p's constants are
 * rewritten in place to point into the new weight file and its extension
 * ops expanded.  0 or -1. */
int mil_coreml_write(MilProgram *p, const char *pkg, const MilCoreMLWriteOptions *opt, MilDiag *d);

#ifdef __cplusplus
}
#endif

#endif /* MILC_COREML_H */
