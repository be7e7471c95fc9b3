/* passes/taps.c -- (in progress) */
#include "passes/pass_int.h"

int mil_pass_taps(MilProgram *p, const MilPassOptions *o, MilDiag *d) { return 0; }
