/* test/tools/test_random_weights.c -- mil-run --random-weights SEED: programs
 * whose weight files are missing run with synthetic weights, deterministically;
 * existing weight files are used as they are; the private temporary directory
 * is gone afterwards (also after errors); without the flag a missing weight
 * file is a clear error (exit 1). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp, *tmpdir;   /* test files; TMPDIR of mil-run */
static char *out, *err;

static void setup(void) {
    tmp = tu_tmpdir();
    tmpdir = tu_tmpdir();
    out = err = NULL;
}
static void teardown(void) {
    tu_rmrf(tmp);
    tu_rmrf(tmpdir);
    free(tmp);
    free(tmpdir);
    free(out);
    free(err);
}

TestSuite(random_weights, .init = setup, .fini = teardown);

#define tp(name) tu_path(tmp, name)
/* mil-run ARGS with TMPDIR set to the test's private directory. */
#define run(...) tu_runf(&out, &err, tu_fmt("TMPDIR='%s' %s", tmpdir, tu_tool("mil-run")), __VA_ARGS__)

/* mil-run left nothing in its TMPDIR. */
static void expect_no_leftovers(void) {
    DIR *dp = opendir(tmpdir);
    cr_assert_not_null(dp);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            n++;
            tu_warn("left behind: %s/%s", tmpdir, de->d_name);
        }
    closedir(dp);
    cr_expect_eq(n, 0, "mil-run left its temporary directory behind");
}

/* Every .npy of dir a equals (bytes) the same file in b; returns the count. */
static int same_outputs(const char *a, const char *b) {
    DIR *dp = opendir(a);
    cr_assert_not_null(dp);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".npy")) continue;
        char pa[2048], pb[2048];
        snprintf(pa, sizeof pa, "%s/%s", a, de->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, de->d_name);
        size_t la, lb;
        char *x = tu_read_file(pa, &la), *y = tu_read_file(pb, &lb);
        cr_assert(x && y, "%s missing", pb);
        cr_expect(la == lb && memcmp(x, y, la) == 0, "%s differs between two runs", de->d_name);
        free(x);
        free(y);
        n++;
    }
    closedir(dp);
    return n;
}

/* Runs model twice with --random-weights 1 and compares; then without. */
static void deterministic_case(const char *model) {
    cr_assert_eq(run("--random-weights 1 --random-inputs 1 --summary -o %s %s", tp("o1"), model), 0, "%s", err);
    char *sum1 = strdup(out);
    cr_expect(strstr(sum1, "min=") != NULL, "no summary: %s", sum1);
    cr_expect(strstr(sum1, "nan") == NULL, "NaN in the outputs: %s", sum1);
    expect_no_leftovers();
    cr_assert_eq(run("--random-weights 1 --random-inputs 1 --summary -o %s %s", tp("o2"), model), 0, "%s", err);
    cr_expect_str_eq(out, sum1);
    cr_expect_gt(same_outputs(tp("o1"), tp("o2")), 0, "no outputs written");
    expect_no_leftovers();
    /* another seed: other weights, other outputs */
    cr_assert_eq(run("--random-weights 2 --random-inputs 1 --summary %s", model), 0, "%s", err);
    cr_expect_str_neq(out, sum1, "seed 2 gave the same outputs as seed 1");
    free(sum1);
    /* without the flag: a clear error */
    cr_expect_eq(run("--random-inputs 1 --summary %s", model), 1);
    cr_expect(strstr(err, "cannot open weight file") != NULL, "%s", err);
    cr_expect(strstr(err, "--random-weights") != NULL, "no hint: %s", err);
    expect_no_leftovers();
}

#define BLOB(file, off) "BLOBFILE(path = string(\"@model_path/weights/" file "\"), offset = uint64(" #off "))"

/* real.bin exists (known values), missing.bin does not; two constants share
 * an offset of missing.bin and another one leaves a gap. */
static const char *prog =
    "program(1.3)\n"
    "{\n"
    "    func main<ios18>(tensor<fp32, [2, 3]> x) {\n"
    "            tensor<fp32, [2, 3]> r = const()[name = string(\"r\"), val = tensor<fp32, [2, 3]>(" BLOB("real.bin", 64) ")];\n"
    "            tensor<fp32, [2, 3]> w1 = const()[name = string(\"w1\"), val = tensor<fp32, [2, 3]>(" BLOB("missing.bin", 64) ")];\n"
    "            tensor<fp32, [2, 3]> w2 = const()[name = string(\"w2\"), val = tensor<fp32, [2, 3]>(" BLOB("missing.bin", 64) ")];\n"
    "            tensor<fp16, [3]> w3 = const()[name = string(\"w3\"), val = tensor<fp16, [3]>(" BLOB("missing.bin", 1024) ")];\n"
    "            tensor<fp32, [2, 3]> a = add(x = r, y = r);\n"
    "            tensor<fp32, [2, 3]> b0 = add(x = x, y = w1);\n"
    "            tensor<fp32, [2, 3]> b = sub(x = b0, y = w2);\n"
    "            tensor<fp16, [3]> c = mul(x = w3, y = w3);\n"
    "        } -> (a, b, c);\n"
    "}\n";

static void write_prog(void) {
    tu_write_text(tp("m.mil"), prog);
    mkdir(tp("weights"), 0777);
    MilRtErr e;
    MilRtBlobWriter *w = mil_rt_blob_writer_open(tp("weights/real.bin"), &e);
    cr_assert_not_null(w, "%s", e.msg);
    float v[6] = {1, 2, 3, 4, 5, 6};
    uint64_t off;
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP32, v, 6, &off, &e), 0);
    cr_assert_eq(off, 64);
    cr_assert_eq(mil_rt_blob_writer_close(w, &e), 0);
}

Test(random_weights, own_program) {
    write_prog();
    deterministic_case(tp("m.mil"));
    /* the existing file was used as it is; shared offset = same values */
    MilRtTensor t;
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_read(tp("o1/a.npy"), &t, &e), 0, "%s", e.msg);
    for (int k = 0; k < 6; k++) cr_expect_eq(((float *)t.data)[k], 2.0f * (float)(k + 1));
    mil_rt_tensor_free(&t);
    cr_assert_eq(run("--random-weights 1 -i x=%s -o %s %s", tp("o1/a.npy"), tp("o3"), tp("m.mil")), 0, "%s", err);
    cr_assert_eq(mil_rt_npy_read(tp("o3/b.npy"), &t, &e), 0, "%s", e.msg);
    for (int k = 0; k < 6; k++) cr_expect_eq(((float *)t.data)[k], 2.0f * (float)(k + 1), "w1 and w2 differ");
    mil_rt_tensor_free(&t);
    /* nothing was written next to the model */
    struct stat st;
    cr_expect_neq(stat(tp("weights/missing.bin"), &st), 0, "a weight file was written into the model directory");
    expect_no_leftovers();
}

/* An impossible layout: exit 1, the reason, no temporary directory left. */
Test(random_weights, impossible_layout) {
    FILE *f = fopen(tp("bad.mil"), "w");
    cr_assert_not_null(f);
    fputs("program(1.3)\n{\n    func main<ios18>(tensor<fp32, [4]> x) {\n"
          "            tensor<fp32, [4]> w = const()[name = string(\"w\"), val = tensor<fp32, [4]>(" BLOB("w.bin", 100) ")];\n"
          "            tensor<fp32, [4]> y = add(x = x, y = w);\n        } -> (y);\n}\n", f);
    fclose(f);
    cr_expect_eq(run("--random-weights 1 --random-inputs 1 %s", tp("bad.mil")), 1);
    cr_expect(strstr(err, "not a multiple of 64") != NULL, "%s", err);
    cr_expect(strstr(err, "bad.mil:4:") != NULL, "no location: %s", err);
    expect_no_leftovers();
}

Test(random_weights, usage) {
    cr_expect_eq(run("--random-weights x m.mil"), 2);
    cr_expect(strstr(err, "bad seed") != NULL, "%s", err);
    cr_expect_eq(run("--random-weights"), 2);
    cr_expect_eq(run("--help"), 0);
    cr_expect(strstr(out, "--random-weights SEED") != NULL);
}

/* The Parakeet decoder of the corpus (lstm; its weights are not available). */
Test(random_weights, parakeet_decoder, .timeout = 120) {
    const char *dir = tu_corpus_dir();
    if (!dir) return;
    char model[2048];
    snprintf(model, sizeof model, "%s/FluidAudio__ParakeetEOU_1280ms__decoder.mil", dir);
    struct stat st;
    if (stat(model, &st) != 0) {
        tu_warn("%s is not in the corpus; covered by own_program only", model);
        return;
    }
    char wb[2048];
    snprintf(wb, sizeof wb, "%s/weights/weight.bin", dir);
    if (stat(wb, &st) == 0) {
        tu_warn("%s exists; the decoder's weights are real here", wb);
        return;
    }
    deterministic_case(model);
}
