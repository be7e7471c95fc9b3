/* test/fuzz/fuzz_passes.c -- libFuzzer target: MIL text through the parser,
 * the verifier, the -O2 pass pipeline and the printer.  Slow per input (the
 * passes run on every one), so `make fuzz` gives it a small -max_len; the
 * parser alone is fuzz_parse.  Built by `make fuzz` (clang); not part of
 * ctest.  To fuzz another pipeline, add a step between the verify and the
 * print below. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions po = {.allow_unknown_ops = size & 1};
    MilProgram *p = mil_parse("fuzz.mil", (const char *)data, size, &po, &d);
    if (p && mil_verify(p, &d) == 0) {
        MilPassOptions o;
        mil_pass_options_init(&o);
        o.opt_level = 2;
        if (mil_pass_run(p, &o, &d) == 0) {
            size_t n;
            free(mil_print(p, MIL_SPELLING_1_0, &n));
        }
        free(o.taps_json);
    }
    mil_program_free(p);
    mil_diag_free(&d);
    return 0;
}
