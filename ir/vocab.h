/* ir/vocab.h -- header-only vocabulary shared by the compiler and the runtime:
 * the dtype and op enums generated from ir/dtypes.def and ir/ops.def.  The
 * runtime includes this (and the .def files) but links no compiler code.
 * Enum values are NOT stable across versions: serialise wire/proto codes.
 */
#ifndef MILC_IR_VOCAB_H
#define MILC_IR_VOCAB_H

#define MIL_MAX_RANK 16
#define MIL_DIM_UNKNOWN (-1) /* a `?` dimension */

enum { DTF_FLOAT = 1, DTF_INT = 2, DTF_SIGNED = 4, DTF_SUBBYTE = 8 };

typedef enum {
    MIL_DT_NONE = 0,
#define DT(id, name, bits, blob, proto, flags) MIL_DT_##id,
#include "ir/dtypes.def"
#undef DT
    MIL_DT_COUNT
} MilDType;

enum {
    OPF_EXEC = 1 << 0, OPF_EXT = 1 << 1, OPF_CONSTEXPR = 1 << 2, OPF_UNARY = 1 << 3,
    OPF_BINARY = 1 << 4, OPF_CMP = 1 << 5, OPF_LOGIC = 1 << 6, OPF_REDUCE = 1 << 7,
    OPF_STATE = 1 << 8, OPF_GRAD = 1 << 9, OPF_NOGRAD = 1 << 10,
};
enum { A_REQ = 1 << 0, A_CONST = 1 << 1, A_VARIADIC = 1 << 2, A_ATTR = 1 << 3 };

typedef enum {
    MIL_OP_UNKNOWN = 0,   /* opaque op kept with --allow-unknown-ops */
#define OP(id, name, wire, nres, flags) MIL_OP_##id,
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
    MIL_OP_COUNT
} MilOpKind;

/* Argument slots: MIL_A_<OP>_<arg> is the index of the argument among its
 * op's ARG rows (alphabetical).  The runtime addresses operands by slot. */
enum { MIL_A__none = -1,
#define OP(id, name, wire, nres, flags) }; enum { MIL_A_##id##__first = -1,
#define ARG(op, name, flags, def) MIL_A_##op##_##name,
#include "ir/ops.def"
#undef OP
#undef ARG
};

#endif /* MILC_IR_VOCAB_H */
