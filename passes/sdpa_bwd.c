/* passes/sdpa_bwd.c -- (in progress) */
#include "passes/pass_int.h"

int mil_pass_sdpa_bwd(MilProgram *p, const MilPassOptions *o, MilDiag *d) { return 0; }
