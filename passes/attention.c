/* passes/attention.c -- (in progress) */
#include "passes/pass_int.h"

int mil_pass_attention(MilProgram *p, const MilPassOptions *o, MilDiag *d) { return 0; }
