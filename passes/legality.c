/* passes/legality.c -- (in progress) */
#include "passes/pass_int.h"

int mil_pass_legality(MilProgram *p, const MilPassOptions *o, MilDiag *d) { return 0; }
