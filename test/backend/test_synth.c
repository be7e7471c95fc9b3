/* test/backend/test_synth.c -- mil_synth_weights: synthetic weight files at
 * exactly the referenced offsets (shared offsets, gaps bridged by filler
 * records, several files, sub-byte types), deterministic, existing files left
 * alone; impossible layouts and unwritable directories reported. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "testutil.h"

static char *tmp;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmrf(tmp); free(tmp); }

#define tpath(name) tu_path(tmp, name)

static MilProgram *parse_text(const char *text, MilDiag *d) {
    MilParseOptions po = {0};
    MilProgram *p = mil_parse("synth.mil", text, strlen(text), &po, d);
    cr_assert(p && d->nerrors == 0, "test program does not parse");
    return p;
}

#define BLOB(file, off) "BLOBFILE(path = string(\"@model_path/weights/" file "\"), offset = uint64(" #off "))"

/* w1/w2 share offset 64 (same dtype and count, different shapes); w3 leaves a
 * gap (filler record); w4 follows right after w3; u in a second file. */
static const char *good_prog =
    "program(1.3)\n"
    "{\n"
    "    func main<ios18>(tensor<fp32, [2, 3]> x) {\n"
    "            tensor<fp32, [2, 3]> w1 = const()[name = string(\"w1\"), val = tensor<fp32, [2, 3]>(" BLOB("weight.bin", 64) ")];\n"
    "            tensor<fp32, [6]> w2 = const()[name = string(\"w2\"), val = tensor<fp32, [6]>(" BLOB("weight.bin", 64) ")];\n"
    "            tensor<fp16, [2, 3]> w3 = const()[name = string(\"w3\"), val = tensor<fp16, [2, 3]>(" BLOB("weight.bin", 512) ")];\n"
    "            tensor<int8, [5]> w4 = const()[name = string(\"w4\"), val = tensor<int8, [5]>(" BLOB("weight.bin", 640) ")];\n"
    "            tensor<uint4, [7]> u = const()[name = string(\"u\"), val = tensor<uint4, [7]>(" BLOB("sub/other.bin", 64) ")];\n"
    "            tensor<fp32, [2, 3]> y = add(x = x, y = w1);\n"
    "        } -> (y);\n"
    "}\n";

static void expect_blob(MilRtBlobFile *bf, uint64_t off, MilDType dt, uint64_t size) {
    MilRtBlobInfo info;
    MilRtErr e;
    cr_assert_eq(mil_rt_blob_info(bf, off, &info, &e), 0, "no blob at %llu: %s", (unsigned long long)off, e.msg);
    cr_expect_eq(info.dtype, dt, "blob at %llu: dtype %s", (unsigned long long)off, mil_rt_dtype_name(info.dtype));
    cr_expect_eq(info.size, size, "blob at %llu: size %llu", (unsigned long long)off, (unsigned long long)info.size);
}

static void check_floats(MilRtBlobFile *bf, uint64_t off, MilDType dt, int64_t n) {
    const void *data;
    void *owned;
    MilRtErr e;
    cr_assert_eq(mil_rt_blob_read(bf, off, dt, n, &data, &owned, &e), 0, "%s", e.msg);
    MilRtTensor t = {.dtype = dt, .rank = 1, .dims = {n}, .data = (void *)data};
    bool nonzero = false;
    for (int64_t k = 0; k < n; k++) {
        double v = mil_rt_get_f64(&t, k);
        cr_expect(v >= -0.05 && v < 0.0501, "value %g out of range", v);
        nonzero |= v != 0;
    }
    cr_expect(nonzero);
    free(owned);
}

static void check_ints(MilRtBlobFile *bf, uint64_t off, MilDType dt, int64_t n) {
    const void *data;
    void *owned;
    MilRtErr e;
    cr_assert_eq(mil_rt_blob_read(bf, off, dt, n, &data, &owned, &e), 0, "%s", e.msg);
    MilRtTensor t = {.dtype = dt, .rank = 1, .dims = {n}, .data = (void *)data};
    for (int64_t k = 0; k < n; k++) {
        double v = mil_rt_get_f64(&t, k);
        cr_expect(v >= 0 && v < 4 && v == (int)v, "value %g out of range", v);
    }
    free(owned);
}

Test(synth, shared_offsets_gaps_files, .init = setup, .fini = teardown) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text(good_prog, &d);
    MilSynthStats st;
    MilSynthOptions so = {.model_dir = tmp, .seed = 7, .stats = &st};
    cr_assert_eq(mil_synth_weights_opt(p, &so, &d), 2, "two files expected (errors: %d)", d.nerrors);
    cr_expect_eq(st.files, 2);
    cr_expect_eq(st.blobs, 5);
    cr_expect_eq(d.n, 0);

    MilRtErr e;
    MilRtBlobFile *bf = mil_rt_blob_open(tpath("weights/weight.bin"), &e);
    cr_assert_not_null(bf, "%s", e.msg);
    cr_expect_eq(mil_rt_blob_count(bf), 4, "w1/w2, filler, w3, w4");
    expect_blob(bf, 64, MIL_DT_FP32, 24);
    expect_blob(bf, 192, MIL_DT_UINT8, 512 - 192 - 64);  /* the filler */
    expect_blob(bf, 512, MIL_DT_FP16, 12);
    expect_blob(bf, 640, MIL_DT_INT8, 5);
    check_floats(bf, 64, MIL_DT_FP32, 6);
    check_floats(bf, 512, MIL_DT_FP16, 6);
    check_ints(bf, 640, MIL_DT_INT8, 5);
    mil_rt_blob_close(bf);
    bf = mil_rt_blob_open(tpath("weights/sub/other.bin"), &e);
    cr_assert_not_null(bf, "%s", e.msg);
    expect_blob(bf, 64, MIL_DT_UINT4, 4);
    check_ints(bf, 64, MIL_DT_UINT4, 7);
    mil_rt_blob_close(bf);

    /* the program lowers with them */
    MilRtDevice *dev = mil_rt_device_cpu_new();
    MilLowerOptions lo = {.model_dir = tmp, .device = dev};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    cr_assert_not_null(rp, "does not lower (%d errors)", d.nerrors);
    mil_rt_program_free(rp);
    mil_rt_device_free(dev);

    /* existing files are left alone */
    struct stat a;
    cr_assert_eq(stat(tpath("weights/weight.bin"), &a), 0);
    cr_expect_eq(mil_synth_weights(p, tmp, 99, &d), 0);

    /* deterministic: same seed, same bytes; another seed, other bytes */
    char *d2 = tu_tmpdir(), *d3 = tu_tmpdir();
    cr_expect_eq(mil_synth_weights(p, d2, 7, &d), 2);
    cr_expect_eq(mil_synth_weights(p, d3, 8, &d), 2);
    char x[2048], y[2048], z[2048];
    snprintf(x, sizeof x, "%s/weights/weight.bin", tmp);
    snprintf(y, sizeof y, "%s/weights/weight.bin", d2);
    snprintf(z, sizeof z, "%s/weights/weight.bin", d3);
    size_t nx, ny, nz;
    char *bx = tu_read_file(x, &nx), *by = tu_read_file(y, &ny), *bz = tu_read_file(z, &nz);
    cr_assert(bx && by && bz);
    cr_expect(nx == ny && memcmp(bx, by, nx) == 0, "same seed gave different files");
    cr_expect(nx == nz && memcmp(bx, bz, nx) != 0, "another seed gave the same file");
    free(bx);
    free(by);
    free(bz);
    tu_rmrf(d2);
    tu_rmrf(d3);
    free(d2);
    free(d3);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* One bad layout: returns -1, reports `want` at the constant, writes nothing. */
static void bad_layout(const char *consts, const char *want) {
    char text[4096];
    snprintf(text, sizeof text,
             "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [4]> x) {\n%s"
             "            tensor<fp32, [4]> y = relu(x = x);\n        } -> (y);\n}\n",
             consts);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text(text, &d);
    cr_expect_eq(mil_synth_weights(p, tmp, 1, &d), -1, "bad layout accepted:\n%s", text);
    cr_assert_gt(d.nerrors, 0);
    char buf[4096];
    mil_diag_format(&d, 0, buf, sizeof buf);
    cr_expect(strstr(buf, want) != NULL, "message '%s' lacks '%s'", buf, want);
    cr_expect(strstr(buf, "synth.mil:") != NULL, "message '%s' has no location", buf);
    struct stat st;
    cr_expect_neq(stat(tpath("weights/weight.bin"), &st), 0, "a file was written for a bad layout");
    mil_program_free(p);
    mil_diag_free(&d);
}

#define C(name, ty, off) \
    "            " ty " " name " = const()[name = string(\"" name "\"), val = " ty "(" BLOB("weight.bin", off) ")];\n"

Test(synth, impossible_layouts, .init = setup, .fini = teardown) {
    bad_layout(C("a", "tensor<fp32, [100]>", 64) C("b", "tensor<fp32, [4]>", 128), "overlaps the previous blob");
    bad_layout(C("a", "tensor<fp32, [4]>", 100), "not a multiple of 64");
    bad_layout(C("a", "tensor<fp32, [4]>", 0), "inside the file header");
    bad_layout(C("a", "tensor<fp32, [4]>", 64) C("b", "tensor<fp16, [4]>", 64), "constants of different types share it");
    bad_layout(C("a", "tensor<fp32, [4]>", 64) C("b", "tensor<fp32, [5]>", 64), "constants of different types share it");
}

Test(synth, unwritable_dir, .init = setup, .fini = teardown) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text(good_prog, &d);
    FILE *f = fopen(tpath("plain"), "w");   /* a file where a directory is needed */
    cr_assert_not_null(f);
    fclose(f);
    cr_expect_eq(mil_synth_weights(p, tpath("plain"), 1, &d), -1);
    cr_assert_gt(d.nerrors, 0);
    char buf[4096];
    mil_diag_format(&d, 0, buf, sizeof buf);
    cr_expect(strstr(buf, "cannot create the directory") != NULL, "%s", buf);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* link_dir: existing files of the real model dir are linked, missing ones synthesised. */
Test(synth, link_existing, .init = setup, .fini = teardown) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse_text(good_prog, &d);
    char *real = tu_tmpdir();
    cr_assert_eq(mil_synth_weights(p, real, 3, &d), 2);
    char victim[2048];
    snprintf(victim, sizeof victim, "%s/weights/sub/other.bin", real);
    cr_assert_eq(unlink(victim), 0);
    MilSynthStats st;
    MilSynthOptions so = {.model_dir = tmp, .link_dir = real, .seed = 4, .stats = &st};
    cr_expect_eq(mil_synth_weights_opt(p, &so, &d), 1, "only other.bin is missing");
    struct stat a;
    cr_expect_eq(lstat(tpath("weights/weight.bin"), &a), 0);
    cr_expect(S_ISLNK(a.st_mode), "weight.bin should be a link to the real one");
    cr_expect_eq(lstat(tpath("weights/sub/other.bin"), &a), 0);
    cr_expect(S_ISREG(a.st_mode));
    cr_expect_eq(d.n, 0);
    tu_rmrf(real);
    free(real);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* A BLOBFILE path that is absolute or climbs out with ".." is never written:
 * error, nothing created outside (or inside) the model directory. */
Test(synth, paths_outside_model_dir, .init = setup, .fini = teardown) {
    cr_assert_eq(mkdir(tpath("model"), 0777), 0);
    const char *paths[] = {"%s/abs/victim.bin", "@model_path/../victim2.bin", "@model_path/weights/../../victim3.bin",
                           "../victim4.bin", "@model_path/a/../../victim5.bin"};
    const char *created[] = {"abs", "victim2.bin", "victim3.bin", "victim4.bin", "victim5.bin"};
    for (int i = 0; i < 5; i++) {
        char bp[4200], prog[9000];
        snprintf(bp, sizeof bp, paths[i], tmp);
        snprintf(prog, sizeof prog,
                 "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [4]> x) {\n"
                 "            tensor<fp32, [4]> w = const()[name = string(\"w\"), val = tensor<fp32, [4]>("
                 "BLOBFILE(path = string(\"%s\"), offset = uint64(64)))];\n"
                 "            tensor<fp32, [4]> y = add(x = x, y = w);\n        } -> (y);\n}\n",
                 bp);
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = parse_text(prog, &d);
        cr_expect_eq(mil_synth_weights(p, tpath("model"), 1, &d), -1, "%s", bp);
        char buf[4096] = "", want[4400];
        if (d.n) mil_diag_format(&d, 0, buf, sizeof buf);
        snprintf(want, sizeof want, "weight path '%s' is outside the model directory; not synthesised", bp);
        cr_expect(strstr(buf, want) != NULL, "%s", buf);
        struct stat st;
        cr_expect_neq(lstat(tpath(created[i]), &st), 0, "%s created", created[i]);
        mil_program_free(p);
        mil_diag_free(&d);
    }
    cr_expect_eq(rmdir(tpath("model")), 0, "something was created in the model directory");
}

Test(synth, mkdirs_empty_path_sets_errno) {
    errno = 0;
    cr_expect_eq(mil_mkdirs(""), -1);
    cr_expect_eq(errno, EINVAL);
    errno = 0;
    cr_expect_eq(mil_mkdirs(NULL), -1);
    cr_expect_eq(errno, EINVAL);
}
