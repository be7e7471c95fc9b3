/* ir/ops.c -- the op info table, generated from ir/ops.def.
 *
 * Each OP row opens a static MilArgInfo array for the ARG rows that follow it
 * (closing the previous one with a sentinel), so every op gets its own array
 * `args_<ID>` of nargs + 1 entries.  op_info[] then points at them.
 */
#include "ir/ir_int.h"

#include <string.h>

/* ---- one argument array per op ---- */
#define SENTINEL { NULL, 0, NULL }
#define OP(id, name, wire, nres, flags) SENTINEL }; static const MilArgInfo args_##id[] = {
#define ARG(op, name, flags, def) { #name, flags, def },
static const MilArgInfo args_none_[] = {
#include "ir/ops.def"
    SENTINEL
};
#undef OP
#undef ARG

#define NARGS(arr) ((int)(sizeof(arr) / sizeof((arr)[0])) - 1)

static const MilOpInfo op_info[MIL_OP_COUNT] = {
    [MIL_OP_UNKNOWN] = { "?", 0, -1, 0, NARGS(args_none_), args_none_ },
#define OP(id, name, wire, nres, flags) \
    [MIL_OP_##id] = { name, wire, nres, flags, NARGS(args_##id), args_##id },
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
};

const MilOpInfo *mil_op_info(MilOpKind k) {
    if (k <= MIL_OP_UNKNOWN || k >= MIL_OP_COUNT) return NULL;
    return &op_info[k];
}

MilOpKind mil_op_lookup(const char *name, size_t n) {
    if (!name) return MIL_OP_UNKNOWN;
    for (int k = 1; k < MIL_OP_COUNT; k++) {
        const char *s = op_info[k].name;
        if (strncmp(s, name, n) == 0 && s[n] == 0) return (MilOpKind)k;
    }
    return MIL_OP_UNKNOWN;
}

MilOpKind mil_op_from_wire(uint16_t wire) {
    for (int k = 1; k < MIL_OP_COUNT; k++)
        if (op_info[k].wire == wire) return (MilOpKind)k;
    return MIL_OP_UNKNOWN;
}

const MilArgInfo *mil_op_arg_info(MilOpKind k, const char *arg) {
    const MilOpInfo *info = mil_op_info(k);
    if (!info || !arg) return NULL;
    for (int i = 0; i < info->nargs; i++)
        if (strcmp(info->args[i].name, arg) == 0) return &info->args[i];
    return NULL;
}
