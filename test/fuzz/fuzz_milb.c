/* test/fuzz/fuzz_milb.c -- libFuzzer target: bytes through the runtime's
 * .milb loader (no compiler code involved). */
#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    MilRtErr e;
    MilRtProgram *p = mil_rt_milb_load_mem(data, size, "fuzz.milb", NULL, &e);
    mil_rt_program_free(p);
    return 0;
}
