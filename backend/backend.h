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

#endif /* MILC_BACKEND_H */
