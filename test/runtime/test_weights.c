/* test/runtime/test_weights.c -- weight.bin (MILBlob v2) writer and reader:
 * exact layout of docs/mil-format.md §5, round trips for every dtype code,
 * sub-byte packing, sharing, several files, and every corruption check. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp;

static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmrf(tmp); free(tmp); }

static const char *tpath(const char *name) {
    static char buf[4][512];
    static int i;
    char *b = buf[i++ & 3];
    snprintf(b, 512, "%s/%s", tmp, name);
    return b;
}

static uint32_t u32at(const unsigned char *b, size_t off) { uint32_t v; memcpy(&v, b + off, 4); return v; }
static uint64_t u64at(const unsigned char *b, size_t off) { uint64_t v; memcpy(&v, b + off, 8); return v; }

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

TestSuite(weights, .init = setup, .fini = teardown);

Test(weights, exact_layout_500_fp32) {
    MilRtErr e;
    const char *p = tpath("weight.bin");
    MilRtBlobWriter *w = mil_rt_blob_writer_open(p, &e);
    cr_assert(w, "%s", e.msg);
    float a[500];
    for (int i = 0; i < 500; i++) a[i] = (float)i * 0.5f;
    uint16_t h[3] = {0x3c00, 0x4000, 0xc000};
    uint64_t m1, m2;
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP32, a, 500, &m1, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP16, h, 3, &m2, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_blob_writer_close(w, &e), 0, "%s", e.msg);
    cr_assert_eq(m1, 64);
    cr_assert_eq(m2, 2176);
    size_t n;
    unsigned char *b = (unsigned char *)tu_read_file(p, &n);
    cr_assert(b);
    cr_assert_eq(n, 2240 + 6, "file size %zu", n);
    /* header */
    cr_assert_eq(u32at(b, 0), 2);          /* count */
    cr_assert_eq(u32at(b, 4), 2);          /* version */
    for (size_t i = 8; i < 64; i++) cr_assert_eq(b[i], 0);
    /* first record */
    cr_assert_eq(b[64], 0xEF); cr_assert_eq(b[65], 0xBE); cr_assert_eq(b[66], 0xAD); cr_assert_eq(b[67], 0xDE);
    cr_assert_eq(u32at(b, 68), 2);         /* fp32 */
    cr_assert_eq(u64at(b, 72), 2000);      /* size */
    cr_assert_eq(u64at(b, 80), 128);       /* data offset */
    cr_assert_eq(u64at(b, 88), 0);         /* padding bits */
    for (size_t i = 96; i < 128; i++) cr_assert_eq(b[i], 0);
    cr_assert_eq(memcmp(b + 128, a, 2000), 0);
    for (size_t i = 2128; i < 2176; i++) cr_assert_eq(b[i], 0, "gap byte %zu", i);
    /* second record */
    cr_assert_eq(u32at(b, 2176), 0xDEADBEEFu);
    cr_assert_eq(u32at(b, 2180), 1);       /* fp16 */
    cr_assert_eq(u64at(b, 2184), 6);
    cr_assert_eq(u64at(b, 2192), 2240);
    cr_assert_eq(memcmp(b + 2240, h, 6), 0);
    free(b);

    MilRtBlobFile *bf = mil_rt_blob_open(p, &e);
    cr_assert(bf, "%s", e.msg);
    cr_assert_eq(mil_rt_blob_count(bf), 2);
    MilRtBlobInfo bi;
    cr_assert_eq(mil_rt_blob_info_at(bf, 1, &bi, &e), 0, "%s", e.msg);
    cr_assert_eq(bi.meta_offset, 2176);
    cr_assert_eq(bi.dtype, MIL_DT_FP16);
    cr_assert_eq(mil_rt_blob_info_at(bf, 2, &bi, &e), -1);
    mil_rt_blob_close(bf);
}

/* Storage-format test data for dtype dt: n elements within its range. */
static void fill(MilDType dt, void *buf, int n) {
    int bits = mil_rt_dtype_bits(dt);
    for (int i = 0; i < n; i++) {
        switch (dt) {
        case MIL_DT_FP16: ((uint16_t *)buf)[i] = (uint16_t)(0x3c00 + i * 7); break;
        case MIL_DT_BF16: ((uint16_t *)buf)[i] = (uint16_t)(0x3f80 + i * 3); break;
        case MIL_DT_FP32: ((float *)buf)[i] = (float)i * -1.25f; break;
        case MIL_DT_INT8: ((int8_t *)buf)[i] = (int8_t)(i * 37 - 100); break;
        case MIL_DT_INT16: ((int16_t *)buf)[i] = (int16_t)(i * 1237 - 30000); break;
        case MIL_DT_INT32: ((int32_t *)buf)[i] = i * 123457 - 1000000; break;
        case MIL_DT_UINT16: ((uint16_t *)buf)[i] = (uint16_t)(i * 2011); break;
        case MIL_DT_UINT32: ((uint32_t *)buf)[i] = (uint32_t)i * 3000000001u; break;
        case MIL_DT_INT4: ((int8_t *)buf)[i] = (int8_t)(i % 16 - 8); break;
        default: /* uint8, uintN, fp8: raw bytes within range */
            ((uint8_t *)buf)[i] = (uint8_t)((i * 7 + 3) & (bits < 8 ? (1 << bits) - 1 : 0xff));
        }
    }
}

Test(weights, round_trip_every_dtype) {
    static const MilDType dts[] = {
        MIL_DT_FP16, MIL_DT_FP32, MIL_DT_UINT8, MIL_DT_INT8, MIL_DT_BF16, MIL_DT_INT16, MIL_DT_UINT16,
        MIL_DT_INT4, MIL_DT_UINT1, MIL_DT_UINT2, MIL_DT_UINT4, MIL_DT_UINT3, MIL_DT_UINT6, MIL_DT_INT32,
        MIL_DT_UINT32, MIL_DT_FP8E4M3FN, MIL_DT_FP8E5M2,
    };
    enum { ND = sizeof dts / sizeof dts[0] };
    cr_assert_eq(ND, 17);  /* every code 1..17 */
    MilRtErr e;
    const char *p = tpath("all.bin");
    MilRtBlobWriter *w = mil_rt_blob_writer_open(p, &e);
    cr_assert(w);
    static unsigned char data[ND][4 * 37];
    uint64_t off[ND];
    const int n = 37;  /* odd: exercises partial trailing bytes */
    for (int k = 0; k < ND; k++) {
        fill(dts[k], data[k], n);
        cr_assert_eq(mil_rt_blob_writer_append(w, dts[k], data[k], n, &off[k], &e), 0, "%s", e.msg);
        cr_assert_eq(off[k] % 64, 0);
    }
    cr_assert_eq(mil_rt_blob_writer_close(w, &e), 0);
    MilRtBlobFile *bf = mil_rt_blob_open(p, &e);
    cr_assert(bf, "%s", e.msg);
    cr_assert_eq(mil_rt_blob_count(bf), ND);
    for (int k = 0; k < ND; k++) {
        MilRtBlobInfo bi;
        cr_assert_eq(mil_rt_blob_info(bf, off[k], &bi, &e), 0, "%s", e.msg);
        cr_assert_eq(bi.code, k + 1);  /* dts is in code order */
        cr_assert_eq(bi.dtype, dts[k]);
        cr_assert_eq(bi.code, mil_rt_dtype_blob_code(dts[k]));
        int bits = mil_rt_dtype_bits(dts[k]);
        cr_assert_eq(bi.size, (uint64_t)(n * bits + 7) / 8, "%s", mil_rt_dtype_name(dts[k]));
        cr_assert_eq(bi.padding_bits, bi.size * 8 - (uint64_t)(n * bits));
        MilRtBlobInfo bj;
        cr_assert_eq(mil_rt_blob_info_at(bf, (uint32_t)k, &bj, &e), 0, "%s", e.msg);
        cr_assert_eq(bj.meta_offset, off[k]);
        const void *d;
        void *owned;
        cr_assert_eq(mil_rt_blob_read(bf, off[k], dts[k], n, &d, &owned, &e), 0, "%s", e.msg);
        cr_assert_eq(memcmp(d, data[k], (size_t)n * mil_rt_dtype_size(dts[k])), 0, "%s differs",
                     mil_rt_dtype_name(dts[k]));
        cr_assert_eq(owned != NULL, bits < 8);
        free(owned);
    }
    mil_rt_blob_close(bf);
}

Test(weights, subbyte_packing_is_lsb_first) {
    struct { MilDType dt; int n; uint8_t in[9]; int nb; uint8_t out[2]; } c[] = {
        {MIL_DT_UINT4, 3, {1, 2, 3}, 2, {0x21, 0x03}},
        {MIL_DT_UINT3, 3, {5, 3, 7}, 2, {0xDD, 0x01}},
        {MIL_DT_INT4, 3, {0xFF /* -1 */, 7, 0xF8 /* -8 */}, 2, {0x7F, 0x08}},
        {MIL_DT_UINT1, 9, {1, 0, 1, 1, 0, 0, 0, 0, 1}, 2, {0x0D, 0x01}},
        {MIL_DT_UINT6, 2, {63, 1}, 2, {0x7F, 0x00}},
        {MIL_DT_UINT2, 5, {3, 2, 1, 0, 1}, 2, {0x1B, 0x01}},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cr_assert_eq(mil_rt_blob_payload_size(c[i].dt, c[i].n), (uint64_t)c[i].nb);
        uint8_t packed[2] = {0xAA, 0xAA}, back[9];
        mil_rt_blob_pack(c[i].dt, c[i].in, c[i].n, packed);
        cr_assert_eq(packed[0], c[i].out[0], "%s byte 0: %02x", mil_rt_dtype_name(c[i].dt), packed[0]);
        cr_assert_eq(packed[1], c[i].out[1], "%s byte 1: %02x", mil_rt_dtype_name(c[i].dt), packed[1]);
        mil_rt_blob_unpack(c[i].dt, packed, c[i].n, back);
        cr_assert_eq(memcmp(back, c[i].in, (size_t)c[i].n), 0, "%s unpack", mil_rt_dtype_name(c[i].dt));
    }
    /* int4 unpacks sign-extended */
    int8_t v[2];
    uint8_t b = 0x8F;
    mil_rt_blob_unpack(MIL_DT_INT4, &b, 2, v);
    cr_assert_eq(v[0], -1);
    cr_assert_eq(v[1], -8);
}

Test(weights, shared_record_and_payload_in_place) {
    MilRtErr e;
    const char *p = tpath("s.bin");
    MilRtBlobWriter *w = mil_rt_blob_writer_open(p, &e);
    float a[16];
    fill(MIL_DT_FP32, a, 16);
    uint64_t m;
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP32, a, 16, &m, &e), 0);
    mil_rt_blob_writer_close(w, &e);
    MilRtBlobFile *bf = mil_rt_blob_open(p, &e);
    const void *d1, *d2;
    void *o1, *o2;
    cr_assert_eq(mil_rt_blob_read(bf, m, MIL_DT_FP32, 16, &d1, &o1, &e), 0);
    cr_assert_eq(mil_rt_blob_read(bf, m, MIL_DT_FP32, 16, &d2, &o2, &e), 0);
    cr_assert_eq(d1, d2);           /* both constants see the same mapped payload */
    cr_assert_null(o1);
    cr_assert_eq(((uintptr_t)d1) % 64, 0);
    mil_rt_blob_close(bf);
}

Test(weights, several_files_through_the_cache) {
    MilRtErr e;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/weights", tmp);
    cr_assert_eq(mkdir(dir, 0777), 0);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    uint64_t ma, mb;
    MilRtBlobWriter *w = mil_rt_blob_writer_open(tpath("weights/a.bin"), &e);
    mil_rt_blob_writer_append(w, MIL_DT_FP32, a, 4, &ma, &e);
    mil_rt_blob_writer_close(w, &e);
    w = mil_rt_blob_writer_open(tpath("weights/b.bin"), &e);
    mil_rt_blob_writer_append(w, MIL_DT_FP32, b, 2, &mb, &e);
    mil_rt_blob_writer_close(w, &e);
    MilRtBlobCache *c = mil_rt_blob_cache_new(tmp, NULL);
    MilRtBlobFile *fa = mil_rt_blob_cache_get(c, "@model_path/weights/a.bin", &e);
    MilRtBlobFile *fb = mil_rt_blob_cache_get(c, "@model_path/weights/b.bin", &e);
    MilRtBlobFile *fa2 = mil_rt_blob_cache_get(c, "@model_path/weights/a.bin", &e);
    cr_assert(fa && fb, "%s", e.msg);
    cr_assert_eq(fa, fa2);
    cr_assert_neq(fa, fb);
    const void *d;
    void *o;
    cr_assert_eq(mil_rt_blob_read(fb, mb, MIL_DT_FP32, 2, &d, &o, &e), 0);
    cr_assert_eq(((const float *)d)[1], 6.0f);
    cr_assert_null(mil_rt_blob_cache_get(c, "@model_path/weights/missing.bin", &e));
    cr_assert(strstr(e.msg, "weights/missing.bin: cannot open weight file"), "%s", e.msg);
    /* the program adopts the files; they stay valid after the cache is gone */
    MilRtProgram *p = mil_rt_program_new("x.mil");
    cr_assert_eq(mil_rt_blob_cache_give(c, p), 0);
    mil_rt_blob_cache_free(c);
    cr_assert_eq(((const float *)d)[0], 5.0f);
    mil_rt_program_free(p);
}

Test(weights, resolve_paths) {
    char out[512];
    MilRtErr e;
    cr_assert_eq(mil_rt_blob_resolve("@model_path/weights/weight.bin", "m.mlmodelc", NULL, out, sizeof out, &e), 0);
    cr_assert_str_eq(out, "m.mlmodelc/weights/weight.bin");
    mil_rt_blob_resolve("@model_path/weights/weight.bin", "m", "/w", out, sizeof out, &e);
    cr_assert_str_eq(out, "/w/weight.bin");
    mil_rt_blob_resolve("@model_path/weights.bin", "m", "/w", out, sizeof out, &e);
    cr_assert_str_eq(out, "/w/weights.bin");
    mil_rt_blob_resolve("@model_path/weights/wq.bin", NULL, NULL, out, sizeof out, &e);
    cr_assert_str_eq(out, "./weights/wq.bin");
    mil_rt_blob_resolve("/abs/w.bin", "m", NULL, out, sizeof out, &e);
    cr_assert_str_eq(out, "/abs/w.bin");
    char small[8];
    cr_assert_eq(mil_rt_blob_resolve("@model_path/weights/weight.bin", "m", NULL, small, sizeof small, &e), -1);
}

Test(weights, model_paths) {
    char mil[1300], dir[1300];
    MilRtErr e;
    char pkg[1200];
    snprintf(pkg, sizeof pkg, "%s/m.mlmodelc", tmp);
    mkdir(pkg, 0777);
    cr_assert_eq(mil_rt_model_paths(pkg, mil, sizeof mil, dir, sizeof dir, &e), -1);
    cr_assert(strstr(e.msg, "no model.mil in this directory"), "%s", e.msg);
    snprintf(mil, sizeof mil, "%s/model.mil", pkg);
    write_file(mil, "x", 1);
    cr_assert_eq(mil_rt_model_paths(pkg, mil, sizeof mil, dir, sizeof dir, &e), 0, "%s", e.msg);
    cr_assert(strstr(mil, "m.mlmodelc/model.mil"));
    cr_assert_str_eq(dir, pkg);
    char bare[1200];
    snprintf(bare, sizeof bare, "%s/prog.mil", tmp);
    write_file(bare, "x", 1);
    cr_assert_eq(mil_rt_model_paths(bare, mil, sizeof mil, dir, sizeof dir, &e), 0);
    cr_assert_str_eq(dir, tmp);
    cr_assert_eq(mil_rt_model_paths("nope.mil", mil, sizeof mil, dir, sizeof dir, &e), -1);
    cr_assert_str_eq(e.msg, "nope.mil: No such file or directory");
}

/* ------------------------------------------------------------ corruption */

/* A valid one-blob file (4 fp32 at 128) to corrupt. */
static void good_file(unsigned char *b) {
    memset(b, 0, 144);
    uint32_t one = 1, two = 2, sent = 0xDEADBEEFu;
    uint64_t size = 16, off = 128;
    memcpy(b, &one, 4);
    memcpy(b + 4, &two, 4);
    memcpy(b + 64, &sent, 4);
    memcpy(b + 68, &two, 4);
    memcpy(b + 72, &size, 8);
    memcpy(b + 80, &off, 8);
    float v[4] = {2, -3, 5, -7};
    memcpy(b + 128, v, 16);
}

static int read_corrupt(unsigned char *b, size_t n, uint64_t meta, MilDType dt, int64_t count, MilRtErr *e) {
    const char *p = tpath("bad.bin");
    write_file(p, b, n);
    MilRtBlobFile *bf = mil_rt_blob_open(p, e);
    if (!bf) return -2;
    const void *d;
    void *o;
    int rc = mil_rt_blob_read(bf, meta, dt, count, &d, &o, e);
    free(o);
    mil_rt_blob_close(bf);
    return rc;
}

static char expect[1024];
#define EXPECT(...) (snprintf(expect, sizeof expect, __VA_ARGS__), expect)

/* read_corrupt of b[0..n) must return rc with the message "<bad.bin>: msg". */
static void expect_corrupt(unsigned char *b, size_t n, uint64_t meta, MilDType dt, int64_t count, int rc,
                           const char *msg) {
    MilRtErr e;
    cr_assert_eq(read_corrupt(b, n, meta, dt, count, &e), rc, "%s", msg);
    cr_assert_str_eq(e.msg, EXPECT("%s: %s", tpath("bad.bin"), msg));
}

Test(weights, corrupt_good_file_reads) {
    unsigned char b[144];
    good_file(b);
    MilRtErr e;
    cr_assert_eq(read_corrupt(b, 144, 64, MIL_DT_FP32, 4, &e), 0, "%s", e.msg);
}

Test(weights, corrupt_bad_sentinel) {
    unsigned char b[144];
    good_file(b);
    b[64] = 0xEE;
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -1, "invalid sentinel 0xdeadbeee at offset 64 (expected 0xdeadbeef)");
}

Test(weights, corrupt_bad_version) {
    unsigned char b[144];
    good_file(b);
    b[4] = 1;
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -2, "unsupported weight.bin version 1 (expected 2)");
}

Test(weights, corrupt_too_small) {
    unsigned char b[144];
    good_file(b);
    expect_corrupt(b, 20, 64, MIL_DT_FP32, 4, -2, "file too small for a weight.bin header (20 bytes)");
}

Test(weights, corrupt_offset_beyond_file) {
    unsigned char b[144];
    good_file(b);
    expect_corrupt(b, 144, 4096, MIL_DT_FP32, 4, -1,
                   "blob metadata offset 4096 is beyond the end of the file (144 bytes)");
    /* a record that would straddle the end */
    expect_corrupt(b, 100, 64, MIL_DT_FP32, 4, -1, "blob metadata offset 64 is beyond the end of the file (100 bytes)");
}

Test(weights, corrupt_misaligned) {
    unsigned char b[144];
    good_file(b);
    expect_corrupt(b, 144, 70, MIL_DT_FP32, 4, -1, "blob metadata offset 70 is not 64-byte aligned");
    uint64_t off = 132;
    memcpy(b + 80, &off, 8);
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -1, "blob at offset 64: data offset 132 is not 64-byte aligned");
    off = 0;
    memcpy(b + 80, &off, 8);
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -1, "blob at offset 64: data offset 0 is inside the file header");
    off = 64;  /* the payload would overwrite its own record */
    memcpy(b + 80, &off, 8);
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -1, "blob at offset 64: data offset 64 overlaps the metadata");
}

Test(weights, corrupt_data_beyond_file) {
    unsigned char b[144];
    good_file(b);
    MilRtErr e;
    expect_corrupt(b, 140, 64, MIL_DT_FP32, 4, -1,
                   "blob at offset 64: data [128, 144) is beyond the end of the file (140 bytes)");
    uint64_t huge = UINT64_MAX - 8;
    memcpy(b + 72, &huge, 8);  /* size overflowing offset + size */
    cr_assert_eq(read_corrupt(b, 144, 64, MIL_DT_FP32, 4, &e), -1);
    cr_assert(strstr(e.msg, "is beyond the end of the file"), "%s", e.msg);
    /* the size is printed as stored, never as a wrapped end offset */
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -1,
                   "blob at offset 64: data of 18446744073709551607 bytes at offset 128 is beyond the end of the "
                   "file (144 bytes)");
    huge = UINT64_MAX;
    memcpy(b + 72, &huge, 8);
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -1,
                   "blob at offset 64: data of 18446744073709551615 bytes at offset 128 is beyond the end of the "
                   "file (144 bytes)");
}

Test(weights, corrupt_dtype_mismatch) {
    unsigned char b[144];
    good_file(b);
    expect_corrupt(b, 144, 64, MIL_DT_FP16, 8, -1, "blob at offset 64 has dtype fp32 but the constant is fp16");
    b[68] = 99;
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 4, -1, "unknown blob dtype code 99 at offset 64");
}

Test(weights, corrupt_size_mismatch) {
    unsigned char b[144];
    good_file(b);
    expect_corrupt(b, 144, 64, MIL_DT_FP32, 5, -1, "blob at offset 64 holds 16 bytes but 5 fp32 elements need 20");
}

Test(weights, corrupt_every_byte_never_crashes) {
    /* flip each byte of the metadata in turn: either a clean error or a read */
    for (int i = 64; i < 128; i++) {
        unsigned char b[144];
        good_file(b);
        b[i] ^= 0xA5;
        MilRtErr e = {{0}};
        int rc = read_corrupt(b, 144, 64, MIL_DT_FP32, 4, &e);
        if (rc) cr_assert(e.msg[0], "byte %d: empty message", i);
    }
}

Test(weights, writer_rejects_unstorable_dtype) {
    MilRtErr e;
    MilRtBlobWriter *w = mil_rt_blob_writer_open(tpath("x.bin"), &e);
    int64_t v = 1;
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_INT64, &v, 1, NULL, &e), -1);
    cr_assert(strstr(e.msg, "dtype int64 cannot be stored in a weight file"), "%s", e.msg);
    mil_rt_blob_writer_close(w, &e);
    cr_assert_null(mil_rt_blob_writer_open("/nonexistent-dir/x.bin", &e));
    cr_assert(strstr(e.msg, "/nonexistent-dir/x.bin: cannot create weight file"), "%s", e.msg);
}

Test(weights, corpus_file_reads) {
    const char *dir = tu_corpus_dir();
    if (!dir) return;
    char p[1024];
    snprintf(p, sizeof p, "%s/mlmodelc-export__fixtures__flexible-weighted-legacy.weight.bin", dir);
    MilRtErr e;
    MilRtBlobFile *bf = mil_rt_blob_open(p, &e);
    cr_assert(bf, "%s", e.msg);
    const void *d;
    void *o;
    cr_assert_eq(mil_rt_blob_read(bf, 64, MIL_DT_FP32, 4, &d, &o, &e), 0, "%s", e.msg);
    const float *f = d;
    cr_assert(f[0] == 2 && f[1] == -3 && f[2] == 5 && f[3] == -7);
    mil_rt_blob_close(bf);
}
