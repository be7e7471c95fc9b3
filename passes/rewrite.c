/* passes/rewrite.c -- the one shared fixed-point driver for local rewrites,
 * and dead-code elimination.
 *
 * Every rewriting pass (cleanup, mm2conv, rmsnorm, attention, sdpa_bwd) is a
 * table of MilRule rows { root op kind, apply, name }.  The driver indexes
 * the rows by root kind (tinygrad's pdict, MLIR's greedy driver) and sweeps
 * the block in order, trying the rules of each op's kind; after a sweep with
 * changes it removes dead ops and sweeps again, until a sweep changes
 * nothing.  Rules redirect uses and never unlink ops; DCE does that.
 *
 * Use counts (MilValue.nuses) are recounted before each rule application
 * that follows a change, counting function outputs as uses, so rules may
 * rely on them.
 */
#include <stdlib.h>
#include <string.h>

#include "passes/pass_int.h"

#define MAX_SWEEPS 64

/* nuses of every value, counting function outputs as uses. */
static void fill_uses(MilFunc *f) {
    for (int i = 0; i < f->nparams; i++) f->params[i]->nuses = 0;
    for (MilOp *op = f->body.first; op; op = op->next)
        for (int i = 0; i < op->nresults; i++) op->results[i]->nuses = 0;
    for (MilOp *op = f->body.first; op; op = op->next)
        for (int i = 0; i < op->nargs; i++)
            for (int j = 0; j < op->args[i].n; j++)
                if (op->args[i].items[j].value) op->args[i].items[j].value->nuses++;
    for (int i = 0; i < f->body.nouts; i++)
        if (f->body.outs[i]) f->body.outs[i]->nuses++;
}

static bool has_side_effects(const MilOp *op) {
    const MilOpInfo *info = mil_op_info(op->kind);
    if (!info) return true;                /* opaque ops: keep */
    return (info->flags & OPF_STATE) || info->nresults == 0;
}

int mil_dce_func(MilFunc *f) {
    fill_uses(f);
    int removed = 0;
    MilOp *op = f->body.last;
    while (op) {
        MilOp *prev = op->prev;
        bool used = false;
        for (int i = 0; i < op->nresults; i++) used |= op->results[i]->nuses > 0;
        if (!used && !has_side_effects(op)) {
            for (int i = 0; i < op->nargs; i++)
                for (int j = 0; j < op->args[i].n; j++)
                    if (op->args[i].items[j].value) op->args[i].items[j].value->nuses--;
            mil_block_remove(&f->body, op);
            removed++;
        }
        op = prev;
    }
    return removed;
}

int mil_rewrite_fixpoint(MilFunc *f, const MilRule *rules, int nrules, void *ctx) {
    /* Index: for each op kind, the rules rooted there, in table order. */
    int *first = malloc(sizeof(int) * (MIL_OP_COUNT + 1));
    int *next = malloc(sizeof(int) * (size_t)(nrules ? nrules : 1));
    if (!first || !next) {
        free(first);
        free(next);
        return 0;
    }
    for (int k = 0; k <= MIL_OP_COUNT; k++) first[k] = -1;
    for (int r = nrules - 1; r >= 0; r--) {
        next[r] = first[rules[r].root];
        first[rules[r].root] = r;
    }
    int total = 0;
    for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
        int changed = 0;
        fill_uses(f);
        for (MilOp *op = f->body.first; op; op = op->next) {
            bool live = op->nresults == 0;
            for (int i = 0; i < op->nresults; i++) live |= op->results[i]->nuses > 0;
            if (!live) continue;
            for (int r = first[op->kind]; r >= 0; r = next[r]) {
                if (rules[r].apply(f, op, ctx)) {
                    changed++;
                    fill_uses(f);
                    break;
                }
            }
        }
        total += changed;
        if (!changed) break;
        mil_dce_func(f);
    }
    free(first);
    free(next);
    return total;
}
