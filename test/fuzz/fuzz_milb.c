/* test/fuzz/fuzz_milb.c -- libFuzzer target: bytes through the runtime's
 * .milb loader (no compiler code involved).
 *
 * A random mutation almost never survives the XXH3 checksum, so before
 * loading, the harness re-seals a copy of the input: it walks the section
 * table (ir/milbin.h layout) to recompute the HASH section's content hash,
 * then recomputes the trailing checksum.  The loader's field checks are then
 * what the fuzzer exercises.  Seed it with real .milb files (make fuzz does).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "runtime/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int varint(const uint8_t *b, size_t n, size_t *pos, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *pos < n; shift += 7) {
        uint8_t c = b[(*pos)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

static void reseal(uint8_t *b, size_t n) {
    if (n < 22 + 8) return;
    size_t body = n - 8, pos = 22, nsec = b[21], off;
    uint8_t ids[64];
    uint64_t lens[64];
    if (nsec > 64) return;
    for (size_t i = 0; i < nsec; i++) {
        if (pos >= body) return;
        ids[i] = b[pos++];
        if (varint(b, body, &pos, &lens[i]) != 0) return;
    }
    off = pos;
    size_t first = off;
    for (size_t i = 0; i < nsec; i++) {
        if (lens[i] > body - off) return;
        if (ids[i] == MILB_SEC_HASH && lens[i] == 8) {
            uint64_t h = XXH3_64bits(b + first, off - first);
            memcpy(b + off, &h, 8);   /* little-endian host */
        }
        off += lens[i];
    }
    uint64_t c = XXH3_64bits(b, body);
    memcpy(b + body, &c, 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (size && (data[0] & 1)) reseal(copy, size); /* half the runs keep the raw bytes */
    MilRtErr e;
    MilRtProgram *p = mil_rt_milb_load_mem(copy, size, "fuzz.milb", NULL, &e);
    mil_rt_program_free(p);
    free(copy);
    return 0;
}
