/* passes/mm2conv.c -- (in progress) */
#include "passes/pass_int.h"

int mil_pass_mm2conv(MilProgram *p, const MilPassOptions *o, MilDiag *d) { return 0; }
