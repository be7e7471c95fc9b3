/* ir/arena.c -- the bump allocator that owns every IR object of a program.
 *
 * Memory comes in blocks, newest first.  The first block is small
 * (MIL_ARENA_FIRST) and each new one doubles up to MIL_ARENA_MAX, so a tiny
 * program costs one small calloc and a big one mostly 64 KB blocks; a request
 * bigger than half the next block gets a block of its own.  Every allocation
 * is zeroed and 16-byte aligned; nothing is freed before mil_arena_free(),
 * which releases all blocks at once (chibicc / QBE style).
 */
#include "ir/ir_int.h"

#include <stdlib.h>
#include <string.h>

#define MIL_ARENA_FIRST (2 * 1024)
#define MIL_ARENA_MAX (64 * 1024)
#define MIL_ARENA_ALIGN 16

struct MilArenaBlock {
    MilArenaBlock *next;
    size_t used, cap;        /* bytes of data[] in use / available */
    unsigned char data[];
};

static size_t align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

/* Offset in b->data where an aligned allocation would start. */
static size_t aligned_offset(const MilArenaBlock *b) {
    uintptr_t base = (uintptr_t)b->data;
    return (size_t)(align_up(base + b->used, MIL_ARENA_ALIGN) - base);
}

void *mil_arena_alloc(MilArena *a, size_t size) {
    if (size == 0) size = 1;
    MilArenaBlock *b = a->head;
    if (b) {
        size_t off = aligned_offset(b);
        if (off <= b->cap && b->cap - off >= size) {
            b->used = off + size;
            a->total += size;
            return b->data + off;   /* calloc'd and never reused: already zero */
        }
    }
    /* The head is always a regular block (or a first, oversized one). */
    size_t next = !b ? MIL_ARENA_FIRST : b->cap >= MIL_ARENA_MAX / 2 ? MIL_ARENA_MAX : b->cap * 2;
    bool own = size > next / 2;
    size_t cap = own ? size + MIL_ARENA_ALIGN : next;
    if (cap < size) return NULL; /* overflow */
    MilArenaBlock *nb = calloc(1, sizeof(MilArenaBlock) + cap);
    if (!nb) return NULL;
    nb->cap = cap;
    /* A one-off big block goes behind the current one so the current block's
     * free tail stays usable for small allocations. */
    if (b && own) {
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        a->head = nb;
    }
    size_t off = aligned_offset(nb);
    nb->used = off + size;
    a->total += size;
    return nb->data + off;
}

char *mil_arena_strndup(MilArena *a, const char *s, size_t n) {
    char *r = mil_arena_alloc(a, n + 1);
    if (!r) return NULL;
    if (n) memcpy(r, s, n);
    r[n] = 0;
    return r;
}

void mil_arena_free(MilArena *a) {
    MilArenaBlock *b = a->head;
    while (b) {
        MilArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

bool mil_grow_(MilArena *a, void **v, int n, int *cap, size_t elsize) {
    if (n < *cap) return true;
    int ncap = *cap ? *cap * 2 : 4;
    void *nv = mil_arena_alloc(a, (size_t)ncap * elsize);
    if (!nv) return false;
    if (n && *v) memcpy(nv, *v, (size_t)n * elsize);
    *v = nv;
    *cap = ncap;
    return true;
}

uint64_t mil_hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
