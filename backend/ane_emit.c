/* backend/ane_emit.c -- --emit=ane-mil (placeholder, filled in below). */
#include "backend/backend.h"

int mil_emit_ane_mil(MilProgram *p, const char *dir, const MilAneOptions *opt, MilDiag *d) {
    (void)p;
    (void)opt;
    mil_error(d, (MilLoc){0}, "--emit=ane-mil: not implemented yet (%s)", dir);
    return -1;
}
