/* test/passes/grad_util.h -- running --grad output on the CPU device for the
 * gradient tests (test_grad.c, test_grad_torch.c). */
#ifndef MILC_TEST_GRAD_UTIL_H
#define MILC_TEST_GRAD_UTIL_H
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

/* Named tensors: inputs, cotangents, forward outputs. */
typedef struct GuPool {
    int n;
    char *names[256];
    MilRtTensor t[256];
} GuPool;

void gu_pool_add(GuPool *p, const char *name, const MilRtTensor *t);   /* deep copy */
const MilRtTensor *gu_pool_get(const GuPool *p, const char *name);
void gu_pool_free(GuPool *p);
/* Runs function `func` of rp with its inputs taken by name from `in`; adds
 * every output to `out` (by output name). */
void gu_run(MilRtDevice *dev, const MilRtProgram *rp, const char *func, const GuPool *in, GuPool *out);

/* Parses text, differentiates main (every float input, every output gets a
 * random cotangent), optionally runs the passes `po`, and checks FUNC_bwd
 * against central finite differences of main (fp32, h = 1e-2): max |fd - g|
 * <= tol * max(1, max |g|) per input.  Also checks that main_fwd's outputs
 * equal main's bit for bit. */
/* After mil_grad (before other passes): the taps (grad_taps of FUNC_bwd) are
 * unique, none is a FUNC input, each is a FUNC_fwd output and a FUNC_bwd
 * input of the same name and type, and FUNC_fwd's outputs are FUNC's
 * followed by the taps (each once). */
void gu_check_taps(const char *label, MilProgram *p, const char *func);

void gu_fd_check(const char *label, const char *text, const MilPassOptions *po, MilRecompute rc, double tol);
#endif
