/* passes/pipeline.c -- the pass manager: the pipeline is a table of named
 * passes; -O levels select rows.  (Initial version: no passes registered yet.) */
#include <string.h>

#include "passes/passes.h"

typedef struct PassDef {
    const char *name;
    int (*run)(MilProgram *p, const MilPassOptions *o, MilDiag *d);
    int min_level;     /* runs at -O >= min_level */
} PassDef;

static const PassDef pass_table[] = {
    {NULL, NULL, 0},
};

static const char *const pass_name_list[] = {NULL};

void mil_pass_options_init(MilPassOptions *o) {
    memset(o, 0, sizeof *o);
    o->opt_level = 1;
    o->target = MIL_TARGET_CPU;
}

const char *const *mil_pass_names(void) { return pass_name_list; }

int mil_pass_run(MilProgram *p, const MilPassOptions *o, MilDiag *d) {
    int before = d->nerrors;
    for (const PassDef *pd = pass_table; pd->name; pd++) {
        if (o->opt_level < pd->min_level) continue;
        if (pd->run(p, o, d) < 0) break;
    }
    return d->nerrors - before;
}
