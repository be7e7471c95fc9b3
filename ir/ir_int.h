/* ir/ir_int.h -- what the ir/ sources share and nobody else includes.
 *
 * Growable arrays: every array hanging off the IR (op arguments, results,
 * function parameters, ...) lives in the program's arena.  Growing doubles the
 * capacity and copies; the old storage simply stays in the arena until
 * mil_program_free().
 */
#ifndef MILC_IR_INT_H
#define MILC_IR_INT_H

#include "ir/ir.h"

/* Make room for one more element in an arena array: *v has *n elements and
 * room for *cap; returns false on OOM (nothing changed then). */
bool mil_grow_(MilArena *a, void **v, int n, int *cap, size_t elsize);
#define MIL_GROW(arena, v, n, cap) mil_grow_((arena), (void **)&(v), (n), &(cap), sizeof(*(v)))

/* Per-function set of every SSA name handed out (params, results, unique
 * names).  Names are never removed, so a name stays reserved after its value
 * is deleted: unique names remain unique. */
typedef struct MilNameSet {
    const char **slots;   /* open addressing, NULL = empty */
    size_t cap, n;
    /* mil_func_unique_name's memo: for a base, the last suffix k handed out
     * ("base_k"), so the next search resumes there (every smaller suffix is
     * taken for good, since names are never released). */
    const char **bases;   /* open addressing, NULL = empty */
    long *last;
    size_t bcap, bn;
} MilNameSet;

bool mil_nameset_has(const MilNameSet *s, const char *name);
void mil_nameset_add(MilArena *a, MilNameSet *s, const char *name);

/* FNV-1a over bytes, for the hash tables. */
uint64_t mil_hash_bytes(uint64_t h, const void *p, size_t n);
#define MIL_HASH_SEED 0xcbf29ce484222325ull

/* Shared by the printer and the verifier. */
const char *mil_op_display_name(const MilOp *op);

#endif /* MILC_IR_INT_H */
