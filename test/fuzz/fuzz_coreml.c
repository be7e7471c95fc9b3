/* test/fuzz/fuzz_coreml.c -- libFuzzer target: bytes as a Core ML
 * model.mlmodel through the .mlpackage reader (coreml/), then the verifier
 * and the printer on whatever it accepts.  Weight files are not opened
 * (no_weight_check), so BLOBFILE references stay references.  Seed it with
 * the model.mlmodel files of test/coreml/data (make fuzz does). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "coreml/coreml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    MilDiag d;
    mil_diag_init(&d);
    MilCoreMLReadOptions o = {.allow_unknown_ops = size & 1, .no_weight_check = true};
    MilProgram *p = mil_coreml_read_model("model.mlmodel", data, size, ".", &o, &d);
    if (p && mil_verify(p, &d) == 0) free(mil_print(p, MIL_SPELLING_SAME, NULL));
    mil_program_free(p);
    mil_diag_free(&d);
    return 0;
}
