/* ir/ane_rules.h -- header-only ANE op rules shared by the legality pass
 * (passes/legality.c) and the runtime's ANE device (runtime/ane/): ops with
 * no ANE path on any chip family (docs/ane-notes.md §7.1) and the minimum
 * I/O surface size (§3.3).  The runtime
 * includes this but links no compiler code. */
#ifndef MILC_IR_ANE_RULES_H
#define MILC_IR_ANE_RULES_H

#include <stdbool.h>

#include "ir/vocab.h"

/* The smallest I/O surface the in-memory route accepts (~49 KB, Orion; §3.3). */
#define MIL_ANE_MIN_SURFACE_BYTES (48 * 1024)

static inline bool mil_ane_no_path(MilOpKind k) {
    switch (k) {
    case MIL_OP_REDUCE_PROD: case MIL_OP_SCATTER: case MIL_OP_SCATTER_ALONG_AXIS: case MIL_OP_SCATTER_ND:
    case MIL_OP_MOD: case MIL_OP_ONE_HOT: case MIL_OP_NON_ZERO: case MIL_OP_BAND_PART: case MIL_OP_SHAPE:
    case MIL_OP_LOGICAL_AND: case MIL_OP_LOGICAL_OR: case MIL_OP_LOGICAL_XOR: case MIL_OP_LOGICAL_NOT:
    case MIL_OP_GRU: case MIL_OP_LSTM: case MIL_OP_RNN: case MIL_OP_INVERSE: case MIL_OP_ACOS: case MIL_OP_ASIN:
    case MIL_OP_ATAN: case MIL_OP_ATANH: case MIL_OP_COSH: case MIL_OP_SINH: case MIL_OP_UNKNOWN:
        return true;
    default:
        return false;
    }
}

#endif /* MILC_IR_ANE_RULES_H */
