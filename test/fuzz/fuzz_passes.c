/* test/fuzz/fuzz_passes.c -- libFuzzer target: MIL text through the parser,
 * the verifier, reverse-mode differentiation (milc --grad) and the -O2 pass
 * pipeline, then the printer.  Slow per input (the passes run on every one),
 * so `make fuzz` gives it a small -max_len; the parser alone is fuzz_parse.
 * Built by `make fuzz` (clang); not part of ctest.  To fuzz another
 * pipeline, add a step between the verify and the print below.
 *
 * --grad runs on `main`, else on the first function with a floating-point
 * tensor input, with options picked by bits of the input size.  Its errors
 * are values (an op without a rule, ...); a program mil_grad reports success
 * on must verify, else the target aborts.  Whatever the grad step gave, the
 * program goes on through -O2 when it still verifies, so inputs the grad
 * refuses keep exercising the passes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const MilFunc *grad_func(const MilProgram *p) {
    const MilFunc *f = mil_program_find_func(p, "main");
    if (f) return f;
    for (int i = 0; i < p->nfuncs; i++)
        for (int j = 0; j < p->funcs[i]->nparams; j++) {
            const MilType *t = p->funcs[i]->params[j]->type;
            if (t && t->kind == MIL_TY_TENSOR && mil_dtype_is_float(t->dtype)) return p->funcs[i];
        }
    return NULL;
}

static void grad(MilProgram *p, size_t size, MilDiag *d) {
    const MilFunc *f = grad_func(p);
    if (!f) return;
    MilGradOptions g;
    mil_grad_options_init(&g);
    g.func = f->name;
    g.recompute = (size >> 1) & 1 ? MIL_RECOMPUTE_CHEAP : MIL_RECOMPUTE_NONE;
    g.split_weight_grads = (size >> 2) & 1;
    g.pack_taps = (size >> 3) & 1;
    if (mil_grad(p, &g, d) == 0 && d->nerrors == 0 && mil_verify(p, d) != 0) {
        mil_diag_print(d, stderr);
        fprintf(stderr, "--- mil_grad on '%s' succeeded but the program does not verify\n", f->name);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions po = {.allow_unknown_ops = size & 1};
    MilProgram *p = mil_parse("fuzz.mil", (const char *)data, size, &po, &d);
    if (p && mil_verify(p, &d) == 0) {
        MilDiag dg; /* the grad's own errors (locations point into d's sources) */
        mil_diag_init(&dg);
        grad(p, size, &dg);
        mil_diag_free(&dg);
        if (mil_verify(p, &d) == 0) {
            MilPassOptions o;
            mil_pass_options_init(&o);
            o.opt_level = 2;
            if (mil_pass_run(p, &o, &d) == 0) {
                size_t n;
                free(mil_print(p, MIL_SPELLING_1_0, &n));
            }
            free(o.taps_json);
        }
    }
    mil_program_free(p);
    mil_diag_free(&d);
    return 0;
}
