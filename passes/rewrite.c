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

/* The function whose use counts are exactly what a recount would give,
 * NULL if unknown.  Set by the recount and by DCE; every change of uses made
 * by the passes (pb_finish, insert_const, replace_value*) and every public
 * pass entry (the IR may have changed in between) clears it, so a recount
 * that would find the same counts is skipped. */
static const MilFunc *exact_f;

void use_counts_dirty(void) { exact_f = NULL; }

/* nuses of every value, counting function outputs as uses (the IR's
 * recount), remembering that f's counts are now exact. */
static void fill_uses(MilFunc *f) {
    exact_f = f;
    mil_func_fill_uses(f);
}

static bool has_side_effects(const MilOp *op) {
    const MilOpInfo *info = mil_op_info(op->kind);
    if (!info) return true;                /* opaque ops: keep */
    return (info->flags & OPF_STATE) || info->nresults == 0;
}

int mil_dce_func(MilFunc *f) {
    if (exact_f != f) fill_uses(f);
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
    exact_f = f;   /* the decrements keep the counts exact */
    return removed;
}

/* ------------------------------------------------------- use tracking
 *
 * Recounting every use after each rewrite costs O(function) per change.
 * Instead, while the driver applies rules to f, the only two ways the
 * passes change uses are recorded as per-value deltas: pb_finish inserting
 * an op (its arguments gain a use) and replace_value moving the uses of one
 * value to another.  The deltas are folded into MilValue.nuses after each
 * successful rule, which gives exactly the counts a recount would (rules
 * never unlink ops or edit arguments of existing ops); rules see the counts
 * of the last change point, as with the recount, since nothing is folded in
 * while a rule runs.  Deltas of a rule that failed after building ops are
 * kept for the next change point, where the recount would have seen them. */
typedef struct UseTrack {
    MilFunc *f;           /* tracked function, NULL = off */
    int *delta;           /* by value id */
    unsigned char *seen;  /* by value id: in `touched` */
    int cap;
    MilValue **touched;
    int ntouched, captouched;
    bool oom;             /* fall back to a recount */
} UseTrack;

static UseTrack ut;

static void ut_add(MilValue *v, int d) {
    if (!v || ut.oom) return;
    if (v->id >= ut.cap) {
        int cap = ut.cap ? ut.cap : 256;
        while (cap <= v->id) cap *= 2;
        int *nd = realloc(ut.delta, sizeof *nd * (size_t)cap);
        if (nd) ut.delta = nd;
        unsigned char *ns = realloc(ut.seen, (size_t)cap);
        if (ns) ut.seen = ns;
        if (!nd || !ns) {
            ut.oom = true;
            return;
        }
        memset(ut.delta + ut.cap, 0, sizeof *nd * (size_t)(cap - ut.cap));
        memset(ut.seen + ut.cap, 0, (size_t)(cap - ut.cap));
        ut.cap = cap;
    }
    if (!ut.seen[v->id]) {
        if (ut.ntouched == ut.captouched) {
            int cap = ut.captouched ? 2 * ut.captouched : 64;
            MilValue **nt = realloc(ut.touched, sizeof *nt * (size_t)cap);
            if (!nt) {
                ut.oom = true;
                return;
            }
            ut.touched = nt;
            ut.captouched = cap;
        }
        ut.touched[ut.ntouched++] = v;
        ut.seen[v->id] = 1;
    }
    ut.delta[v->id] += d;
}

/* Folds the deltas into nuses; false when tracking failed (recount). */
static bool ut_commit(void) {
    bool ok = !ut.oom;
    for (int i = 0; i < ut.ntouched; i++) {
        MilValue *v = ut.touched[i];
        if (ok) v->nuses += ut.delta[v->id];
        ut.delta[v->id] = 0;
        ut.seen[v->id] = 0;
    }
    ut.ntouched = 0;
    ut.oom = false;
    return ok;
}

static void ut_clear(void) { ut_commit(); }

static void ut_free(void) {
    free(ut.delta);
    free(ut.seen);
    free(ut.touched);
    ut = (UseTrack){0};
}

void use_track_new_op(MilFunc *f, const MilOp *op) {
    if (ut.f != f) return;
    for (int i = 0; i < op->nargs; i++)
        for (int j = 0; j < op->args[i].n; j++) ut_add(op->args[i].items[j].value, 1);
}

int use_track_count(MilFunc *f, const MilValue *v) {
    if (ut.f != f || ut.oom) return -1;
    return v->nuses + (v->id < ut.cap ? ut.delta[v->id] : 0);
}

void use_track_replace(MilFunc *f, MilValue *from, MilValue *to, int n) {
    if (ut.f != f) return;
    ut_add(from, -n);
    ut_add(to, n);
}

bool use_track_begin(MilFunc *f) {
    if (ut.f) return false;
    ut.f = f;
    return true;
}

bool use_track_sync(MilFunc *f) { return ut.f == f && ut_commit(); }

void use_track_end(MilFunc *f) {
    if (ut.f == f) ut_free();
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
    /* a nested driver on the same or another function recounts instead */
    bool track = ut.f == NULL;
    for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
        int changed = 0;
        /* after the first sweep, mil_dce_func has just left exact counts */
        if (sweep == 0 && exact_f != f) fill_uses(f);
        if (track) {
            ut_clear();
            ut.f = f;
        }
        for (MilOp *op = f->body.first; op; op = op->next) {
            bool live = op->nresults == 0;
            for (int i = 0; i < op->nresults; i++) live |= op->results[i]->nuses > 0;
            if (!live) continue;
            for (int r = first[op->kind]; r >= 0; r = next[r]) {
                if (rules[r].apply(f, op, ctx)) {
                    changed++;
                    if (!track || !ut_commit()) fill_uses(f);
                    else exact_f = f;
                    break;
                }
            }
        }
        if (track) {
            ut_clear();
            ut.f = NULL;
        }
        total += changed;
        if (!changed) break;
        mil_dce_func(f);
    }
    if (track) ut_free();
    free(first);
    free(next);
    return total;
}
