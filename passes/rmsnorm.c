/* passes/rmsnorm.c -- (in progress) */
#include "passes/pass_int.h"

int mil_pass_rmsnorm(MilProgram *p, const MilPassOptions *o, MilDiag *d) { return 0; }
