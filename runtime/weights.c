/* runtime/weights.c -- weight.bin (MILBlob storage v2) reader and writer,
 * BLOBFILE path resolution, and model path resolution.
 *
 * Layout (docs/mil-format.md §5; coremltools MILBlob StorageFormat.hpp):
 *   0    header   {u32 count, u32 version = 2, 7 x u64 reserved}
 *   M    metadata {u32 0xDEADBEEF, u32 mil_dtype, u64 size, u64 data_offset,
 *                  u64 padding_bits, 4 x u64 reserved}   (M % 64 == 0)
 *   M+64 payload  (size bytes; sub-byte types are an LSB-first bit stream)
 * The writer places each record at the current end rounded up to 64; the
 * first record is at 64, its data at 128.  All fields little-endian (the
 * runtime assumes a little-endian host, as every Apple and Linux target is).
 *
 * The reader maps the file read-only and hands out payload pointers in place
 * when no unpacking is needed; a program that uses them adopts the file.
 */
#include "runtime/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { HDR = 64, REC = 64, ALIGN = 64 };
#define SENTINEL 0xDEADBEEFu

struct MilRtBlobFile {
    char *path;
    const uint8_t *base;   /* mapping (NULL for an empty mapping) */
    uint64_t size;
    uint32_t count;
};

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint64_t align64(uint64_t x) { return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1); }

MilRtBlobFile *mil_rt_blob_open(const char *path, MilRtErr *e) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        mil_rt_errf(e, "%s: cannot open weight file: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        mil_rt_errf(e, "%s: not a regular file", path);
        return NULL;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < HDR) {
        close(fd);
        mil_rt_errf(e, "%s: file too small for a weight.bin header (%llu bytes)", path,
                    (unsigned long long)size);
        return NULL;
    }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        mil_rt_errf(e, "%s: cannot map weight file: %s", path, strerror(errno));
        return NULL;
    }
    const uint8_t *b = m;
    uint32_t version = rd32(b + 4);
    if (version != 2) {
        munmap(m, (size_t)size);
        mil_rt_errf(e, "%s: unsupported weight.bin version %u (expected 2)", path, version);
        return NULL;
    }
    MilRtBlobFile *bf = calloc(1, sizeof *bf);
    if (bf) bf->path = strdup(path);
    if (!bf || !bf->path) {
        free(bf);
        munmap(m, (size_t)size);
        mil_rt_errf(e, "out of memory");
        return NULL;
    }
    bf->base = b;
    bf->size = size;
    bf->count = rd32(b);
    return bf;
}

void mil_rt_blob_close(MilRtBlobFile *bf) {
    if (!bf) return;
    munmap((void *)bf->base, (size_t)bf->size);
    free(bf->path);
    free(bf);
}

const char *mil_rt_blob_path(const MilRtBlobFile *bf) { return bf->path; }
uint32_t mil_rt_blob_count(const MilRtBlobFile *bf) { return bf->count; }
uint64_t mil_rt_blob_file_size(const MilRtBlobFile *bf) { return bf->size; }

int mil_rt_blob_info(const MilRtBlobFile *bf, uint64_t m, MilRtBlobInfo *out, MilRtErr *e) {
    const char *p = bf->path;
    unsigned long long M = (unsigned long long)m, fs = (unsigned long long)bf->size;
    if (m % ALIGN)
        return mil_rt_errf(e, "%s: blob metadata offset %llu is not 64-byte aligned", p, M);
    if (m < HDR)
        return mil_rt_errf(e, "%s: blob metadata offset %llu is inside the file header", p, M);
    if (m > bf->size || bf->size - m < REC)
        return mil_rt_errf(e, "%s: blob metadata offset %llu is beyond the end of the file (%llu bytes)",
                           p, M, fs);
    const uint8_t *r = bf->base + m;
    uint32_t sentinel = rd32(r);
    if (sentinel != SENTINEL)
        return mil_rt_errf(e, "%s: invalid sentinel 0x%08x at offset %llu (expected 0xdeadbeef)", p,
                           sentinel, M);
    uint32_t code = rd32(r + 4);
    MilDType dt = mil_rt_dtype_from_blob_code((int)code);
    if (dt == MIL_DT_NONE)
        return mil_rt_errf(e, "%s: unknown blob dtype code %u at offset %llu", p, code, M);
    uint64_t size = rd64(r + 8), off = rd64(r + 16), pad = rd64(r + 24);
    if (off % ALIGN)
        return mil_rt_errf(e, "%s: blob at offset %llu: data offset %llu is not 64-byte aligned", p, M,
                           (unsigned long long)off);
    if (off < HDR)
        return mil_rt_errf(e, "%s: blob at offset %llu: data offset %llu is inside the file header", p, M,
                           (unsigned long long)off);
    if (off < m + REC && off + size > m)  /* overlaps its own record */
        return mil_rt_errf(e, "%s: blob at offset %llu: data offset %llu overlaps the metadata", p, M,
                           (unsigned long long)off);
    if (size > UINT64_MAX - off)  /* the end offset would wrap: print the size as stored */
        return mil_rt_errf(e, "%s: blob at offset %llu: data of %llu bytes at offset %llu is beyond the end of "
                              "the file (%llu bytes)", p, M, (unsigned long long)size, (unsigned long long)off, fs);
    if (off > bf->size || size > bf->size - off)
        return mil_rt_errf(e, "%s: blob at offset %llu: data [%llu, %llu) is beyond the end of the file "
                              "(%llu bytes)", p, M, (unsigned long long)off,
                           (unsigned long long)(off + size), fs);
    if (pad >= 8)
        return mil_rt_errf(e, "%s: blob at offset %llu: padding of %llu bits is more than a byte", p, M,
                           (unsigned long long)pad);
    out->meta_offset = m;
    out->code = (int)code;
    out->dtype = dt;
    out->size = size;
    out->data_offset = off;
    out->padding_bits = pad;
    out->data = bf->base + off;
    return 0;
}

int mil_rt_blob_info_at(const MilRtBlobFile *bf, uint32_t index, MilRtBlobInfo *out, MilRtErr *e) {
    if (index >= bf->count)
        return mil_rt_errf(e, "%s: blob %u does not exist (the file holds %u)", bf->path, index, bf->count);
    uint64_t m = HDR;
    for (uint32_t i = 0;; i++) {
        if (mil_rt_blob_info(bf, m, out, e)) return -1;
        if (i == index) return 0;
        m = align64(out->data_offset + out->size);
    }
}

/* ---------------------------------------------------------------- packing */

uint64_t mil_rt_blob_payload_size(MilDType dt, int64_t count) {
    int bits = mil_rt_dtype_bits(dt);
    if (bits < 8) return ((uint64_t)count * (uint64_t)bits + 7) / 8;
    return (uint64_t)count * (uint64_t)(bits / 8);
}

/* Types of whole bytes are stored as they are: copies them, returns true. */
static bool copy_whole_bytes(MilDType dt, const void *src, int64_t count, void *dst) {
    if (mil_rt_dtype_bits(dt) < 8) return false;
    memcpy(dst, src, (size_t)mil_rt_blob_payload_size(dt, count));
    return true;
}

void mil_rt_blob_pack(MilDType dt, const void *src, int64_t count, void *dst) {
    if (copy_whole_bytes(dt, src, count, dst)) return;
    int bits = mil_rt_dtype_bits(dt);
    const uint8_t *s = src;
    uint8_t *d = dst;
    memset(d, 0, (size_t)mil_rt_blob_payload_size(dt, count));
    uint32_t mask = (1u << bits) - 1;
    for (int64_t i = 0; i < count; i++) {
        uint32_t v = s[i] & mask;  /* int4: two's complement low nibble */
        uint64_t bit = (uint64_t)i * (uint64_t)bits;
        for (int b = 0; b < bits; b++, bit++)
            if (v >> b & 1) d[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    }
}

void mil_rt_blob_unpack(MilDType dt, const void *src, int64_t count, void *dst) {
    if (copy_whole_bytes(dt, src, count, dst)) return;
    int bits = mil_rt_dtype_bits(dt);
    const uint8_t *s = src;
    uint8_t *d = dst;
    bool sign = mil_rt_dtype_is_signed(dt);
    for (int64_t i = 0; i < count; i++) {
        uint64_t bit = (uint64_t)i * (uint64_t)bits;
        uint32_t v = 0;
        for (int b = 0; b < bits; b++, bit++)
            v |= (uint32_t)(s[bit >> 3] >> (bit & 7) & 1) << b;
        if (sign && (v >> (bits - 1) & 1)) v |= ~0u << bits;  /* sign-extend int4 */
        d[i] = (uint8_t)v;
    }
}

int mil_rt_blob_read(const MilRtBlobFile *bf, uint64_t m, MilDType dt, int64_t count,
                     const void **data, void **owned, MilRtErr *e) {
    MilRtBlobInfo bi;
    *data = NULL;
    *owned = NULL;
    if (mil_rt_blob_info(bf, m, &bi, e)) return -1;
    unsigned long long M = (unsigned long long)m;
    if (bi.dtype != dt)
        return mil_rt_errf(e, "%s: blob at offset %llu has dtype %s but the constant is %s", bf->path, M,
                           mil_rt_dtype_name(bi.dtype), mil_rt_dtype_name(dt));
    uint64_t need = mil_rt_blob_payload_size(dt, count);
    if (bi.size != need)
        return mil_rt_errf(e, "%s: blob at offset %llu holds %llu bytes but %lld %s elements need %llu",
                           bf->path, M, (unsigned long long)bi.size, (long long)count,
                           mil_rt_dtype_name(dt), (unsigned long long)need);
    if (mil_rt_dtype_bits(dt) >= 8) {
        *data = bi.data;  /* 64-aligned inside a page-aligned mapping */
        return 0;
    }
    uint8_t *u = malloc(count > 0 ? (size_t)count : 1);
    if (!u) return mil_rt_errf(e, "out of memory");
    mil_rt_blob_unpack(dt, bi.data, count, u);
    *data = u;
    *owned = u;
    return 0;
}

/* ----------------------------------------------------------------- writer */

struct MilRtBlobWriter {
    FILE *f;
    char *path;
    uint64_t end;
    uint32_t count;
    bool failed;
};

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

MilRtBlobWriter *mil_rt_blob_writer_open(const char *path, MilRtErr *e) {
    MilRtBlobWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        mil_rt_errf(e, "out of memory");
        return NULL;
    }
    w->f = fopen(path, "wb");
    if (!w->f) {
        mil_rt_errf(e, "%s: cannot create weight file: %s", path, strerror(errno));
        free(w->path);
        free(w);
        return NULL;
    }
    uint8_t h[HDR] = {0};
    put32(h + 4, 2);
    if (fwrite(h, 1, HDR, w->f) != HDR) w->failed = true;
    w->end = HDR;
    return w;
}

int mil_rt_blob_writer_append(MilRtBlobWriter *w, MilDType dt, const void *data, int64_t count,
                              uint64_t *meta_offset, MilRtErr *e) {
    int code = mil_rt_dtype_blob_code(dt);
    if (code == 0)
        return mil_rt_errf(e, "%s: dtype %s cannot be stored in a weight file", w->path, mil_rt_dtype_name(dt));
    if (count < 0) return mil_rt_errf(e, "%s: negative element count", w->path);
    if (w->failed) return mil_rt_errf(e, "%s: write error", w->path);
    uint64_t m = align64(w->end), size = mil_rt_blob_payload_size(dt, count);
    static const uint8_t zeros[ALIGN];
    if (m > w->end && fwrite(zeros, 1, (size_t)(m - w->end), w->f) != m - w->end) w->failed = true;
    uint8_t r[REC] = {0};
    put32(r, SENTINEL);
    put32(r + 4, (uint32_t)code);
    put64(r + 8, size);
    put64(r + 16, m + REC);
    put64(r + 24, size * 8 - (uint64_t)count * (uint64_t)mil_rt_dtype_bits(dt));
    if (fwrite(r, 1, REC, w->f) != REC) w->failed = true;
    if (mil_rt_dtype_bits(dt) < 8) {
        void *packed = malloc(size ? (size_t)size : 1);
        if (!packed) return mil_rt_errf(e, "out of memory");
        mil_rt_blob_pack(dt, data, count, packed);
        if (size && fwrite(packed, 1, (size_t)size, w->f) != size) w->failed = true;
        free(packed);
    } else if (size && fwrite(data, 1, (size_t)size, w->f) != size) {
        w->failed = true;
    }
    w->end = m + REC + size;
    w->count++;
    /* keep the header count current after each append (as MILBlob does) */
    uint8_t c[4];
    put32(c, w->count);
    if (fseek(w->f, 0, SEEK_SET) || fwrite(c, 1, 4, w->f) != 4 || fseek(w->f, 0, SEEK_END))
        w->failed = true;
    if (w->failed) return mil_rt_errf(e, "%s: write error: %s", w->path, strerror(errno));
    if (meta_offset) *meta_offset = m;
    return 0;
}

int mil_rt_blob_writer_close(MilRtBlobWriter *w, MilRtErr *e) {
    if (!w) return 0;
    bool bad = w->failed;
    if (fclose(w->f) != 0) bad = true;
    int rc = bad ? mil_rt_errf(e, "%s: write error", w->path) : 0;
    free(w->path);
    free(w);
    return rc;
}

/* ------------------------------------------------------------- resolution */

int mil_rt_blob_resolve(const char *blob_path, const char *model_dir, const char *weights_dir,
                        char *out, size_t size, MilRtErr *e) {
    static const char key[] = "@model_path";
    const char *dir = model_dir && *model_dir ? model_dir : ".";
    int n;
    if (strncmp(blob_path, key, sizeof key - 1) == 0) {
        const char *rest = blob_path + sizeof key - 1;
        while (*rest == '/') rest++;
        if (weights_dir && *weights_dir) {
            if (strncmp(rest, "weights/", 8) == 0) rest += 8;
            n = snprintf(out, size, "%s/%s", weights_dir, rest);
        } else {
            n = snprintf(out, size, "%s/%s", dir, rest);
        }
    } else if (blob_path[0] == '/') {
        n = snprintf(out, size, "%s", blob_path);
    } else {
        n = snprintf(out, size, "%s/%s", dir, blob_path);
    }
    if (n < 0 || (size_t)n >= size) return mil_rt_errf(e, "%s: weight path too long", blob_path);
    return 0;
}

typedef struct CacheEnt {
    char *key;      /* resolved path */
    MilRtBlobFile *bf;
} CacheEnt;

struct MilRtBlobCache {
    char *model_dir, *weights_dir;
    CacheEnt *v;
    int n, cap;
};

MilRtBlobCache *mil_rt_blob_cache_new(const char *model_dir, const char *weights_dir) {
    MilRtBlobCache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->model_dir = strdup(model_dir ? model_dir : ".");
    c->weights_dir = weights_dir ? strdup(weights_dir) : NULL;
    if (!c->model_dir || (weights_dir && !c->weights_dir)) {
        mil_rt_blob_cache_free(c);
        return NULL;
    }
    return c;
}

MilRtBlobFile *mil_rt_blob_cache_get(MilRtBlobCache *c, const char *blob_path, MilRtErr *e) {
    char path[4096];
    if (mil_rt_blob_resolve(blob_path, c->model_dir, c->weights_dir, path, sizeof path, e)) return NULL;
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i].key, path) == 0) return c->v[i].bf;
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 4;
        CacheEnt *nv = realloc(c->v, sizeof *nv * (size_t)nc);
        if (!nv) { mil_rt_errf(e, "out of memory"); return NULL; }
        c->v = nv;
        c->cap = nc;
    }
    MilRtBlobFile *bf = mil_rt_blob_open(path, e);
    if (!bf) return NULL;
    char *key = strdup(path);
    if (!key) { mil_rt_blob_close(bf); mil_rt_errf(e, "out of memory"); return NULL; }
    c->v[c->n].key = key;
    c->v[c->n].bf = bf;
    c->n++;
    return bf;
}

static void close_blob(void *p) { mil_rt_blob_close(p); }

int mil_rt_blob_cache_give(MilRtBlobCache *c, MilRtProgram *p) {
    int rc = 0;
    for (int i = 0; i < c->n; i++) {
        if (mil_rt_program_adopt_fn(p, close_blob, c->v[i].bf)) {
            mil_rt_blob_close(c->v[i].bf);
            rc = -1;
        }
        free(c->v[i].key);
    }
    c->n = 0;
    return rc;
}

void mil_rt_blob_cache_free(MilRtBlobCache *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        mil_rt_blob_close(c->v[i].bf);
        free(c->v[i].key);
    }
    free(c->v);
    free(c->model_dir);
    free(c->weights_dir);
    free(c);
}

int mil_rt_model_paths(const char *model, char *mil_path, size_t mil_size, char *model_dir,
                       size_t dir_size, MilRtErr *e) {
    struct stat st;
    if (stat(model, &st) != 0) return mil_rt_errf(e, "%s: %s", model, strerror(errno));
    int n1, n2;
    if (S_ISDIR(st.st_mode)) {
        n1 = snprintf(mil_path, mil_size, "%s/model.mil", model);
        n2 = snprintf(model_dir, dir_size, "%s", model);
        if (n1 > 0 && (size_t)n1 < mil_size && stat(mil_path, &st) != 0)
            return mil_rt_errf(e, "%s: no model.mil in this directory", model);
    } else {
        n1 = snprintf(mil_path, mil_size, "%s", model);
        const char *slash = strrchr(model, '/');
        if (!slash)
            n2 = snprintf(model_dir, dir_size, ".");
        else if (slash == model)
            n2 = snprintf(model_dir, dir_size, "/");
        else
            n2 = snprintf(model_dir, dir_size, "%.*s", (int)(slash - model), model);
    }
    if (n1 < 0 || (size_t)n1 >= mil_size || n2 < 0 || (size_t)n2 >= dir_size)
        return mil_rt_errf(e, "%s: path too long", model);
    return 0;
}
