/* test/fuzz/fuzz_npy.c -- libFuzzer target: bytes through the .npy reader. */
#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    MilRtErr e;
    MilRtTensor t = {0};
    if (mil_rt_npy_read_mem(data, size, &t, &e) == 0) mil_rt_tensor_free(&t);
    return 0;
}
