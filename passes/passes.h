/* passes/passes.h -- the milc optimiser: a pass manager over a table of named
 * passes (passes/pipeline.c), and the passes themselves (one file each).
 *
 * A pass returns >0 when it changed the program, 0 when it did nothing and <0
 * on error (diagnostics in d).  The pipeline is data: -O0 runs nothing but
 * type inference, -O1 inference + cleanup, -O2 adds the ANE-oriented lowering
 * and fusions.  Printing (--print-after, --stats) goes to the FILE the caller
 * gives; the library never prints on its own.
 */
#ifndef MILC_PASSES_H
#define MILC_PASSES_H

#include <stdbool.h>
#include <stdio.h>

#include "ir/ir.h"

typedef enum {
    MIL_TARGET_CPU = 0,
    MIL_TARGET_ANE,      /* generic ANE: the conservative limits (M1-M3 family) */
    MIL_TARGET_ANE_M1,   /* A13-A15 family: W, H <= 16384 */
    MIL_TARGET_ANE_M4,   /* A16+ family: W, H <= 65536 */
} MilTarget;

typedef struct MilPassOptions {
    int opt_level;             /* 0, 1 (default), 2 */
    const char *passes;        /* explicit comma-separated list, overrides opt_level */
    const char *print_after;   /* pass name or "all"; NULL = none */
    bool verify_each;          /* run mil_verify after every pass */
    bool stats;                /* ops per kind before/after each pass, time per pass */
    MilTarget target;
    bool strict;               /* legality warnings become errors */
    const char *taps;          /* comma-separated value names to export (forward taps) */
    bool pack_taps;            /* pack taps along channels into one [1, sum C, 1, S] output */
    FILE *out;                 /* where print-after and stats go (tools: stderr) */
} MilPassOptions;

void mil_pass_options_init(MilPassOptions *o);   /* -O1, cpu target, out = NULL */

/* Runs the pipeline selected by o on every function of p.  Returns the number
 * of errors reported into d (0 = success). */
int mil_pass_run(MilProgram *p, const MilPassOptions *o, MilDiag *d);

/* Names of all registered passes, NULL-terminated (for --help / --passes). */
const char *const *mil_pass_names(void);

#endif /* MILC_PASSES_H */
