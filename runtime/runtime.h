/* runtime/runtime.h -- the milc runtime: loads programs and runs them on a
 * device.  Links no compiler code; includes only header-only files of ir/.
 * (Skeleton: the runtime owner extends this header.) */
#ifndef MILC_RUNTIME_H
#define MILC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "ir/vocab.h"

/* A dense row-major tensor.  Storage: fp16/bf16 as uint16_t bits, fp32 float,
 * bool uint8_t 0/1, intN/uintN native. */
typedef struct MilRtTensor {
    MilDType dtype;
    int rank;
    int64_t dims[MIL_MAX_RANK];
    void *data;
} MilRtTensor;

#endif
