/* test/fuzz/fuzz_parse.c -- libFuzzer target: MIL text through the parser,
 * the verifier and the printer, and the printed text back through the
 * parser: it must parse again and print the same bytes (the printer's fixed
 * point), else the target aborts.  No passes, so it runs tens of thousands
 * of small inputs a second; fuzz_passes adds the -O2 pipeline.  The
 * diagnostics are rendered too (source windows, carets).  Built by
 * `make fuzz` (clang); not part of ctest. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *null_out(void) {
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions po = {.allow_unknown_ops = size & 1, .lenient = (size >> 1) & 1};
    MilProgram *p = mil_parse("fuzz.mil", (const char *)data, size, &po, &d);
    if (p && mil_verify(p, &d) == 0) {
        MilSpelling sp = (size >> 2) & 1 ? MIL_SPELLING_1_3 : MIL_SPELLING_SAME;
        size_t n1, n2;
        char *t1 = mil_print(p, sp, &n1);
        if (t1) {
            MilDiag d2;
            mil_diag_init(&d2);
            MilProgram *q = mil_parse("printed.mil", t1, n1, &po, &d2);
            if (!q) {
                mil_diag_print(&d2, stderr);
                fprintf(stderr, "--- printed text does not parse:\n%.*s\n", (int)n1, t1);
                abort();
            }
            char *t2 = mil_print(q, sp, &n2);
            if (t2 && (n1 != n2 || memcmp(t1, t2, n1) != 0)) {
                fprintf(stderr, "--- not a fixed point:\n%.*s\n--- vs\n%.*s\n", (int)n1, t1, (int)n2, t2);
                abort();
            }
            free(t2);
            mil_program_free(q);
            mil_diag_free(&d2);
        }
        free(t1);
    }
    FILE *out = null_out();
    if (out) mil_diag_print(&d, out);
    mil_program_free(p);
    mil_diag_free(&d);
    return 0;
}
