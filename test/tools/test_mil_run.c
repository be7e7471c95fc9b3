/* test/tools/test_mil_run.c -- the mil-run command line: options, exit codes
 * (0 ok, 1 error, 2 usage), messages, .npy inputs and outputs, and that a
 * failed run leaves no output files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp;
static char *out, *err;

static void setup(void) { tu_fixture_init(&tmp, &out, &err); }
static void teardown(void) { tu_fixture_fini(&tmp, &out, &err); }

TestSuite(mil_run, .init = setup, .fini = teardown);

#define cli(name) tu_path(MILC_SOURCE_DIR "/test/runtime/data/cli", name)
#define tp(name) tu_path(tmp, name)
#define run(...) tu_runf(&out, &err, tu_tool("mil-run"), __VA_ARGS__)

#define npy(name, ...) tu_write_npy(tp(name), __VA_ARGS__)

static const int64_t d24[2] = {2, 4}, d2[1] = {2}, d3[1] = {3};
static const double x8[8] = {0, 1, 2, 3, -4, -5, 6, 7}, k2[2] = {3, -5};

static void basic_inputs(void) {
    npy("x.npy", MIL_DT_FP32, 2, d24, x8);
    npy("k.npy", MIL_DT_INT32, 1, d2, k2);
}

/* number of directory entries other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

Test(mil_run, help_and_version) {
    cr_assert_eq(run("--help"), 0);
    cr_assert(strstr(out, "usage: mil-run [options] MODEL"), "%s", out);
    cr_assert(strstr(out, "--random-inputs SEED"));
    /* every accepted MODEL form is listed */
    const char *forms[] = { "  FILE.mil ", "  DIR.mlmodelc ", "  DIR.mlpackage ", "  FILE.milb " };
    for (int i = 0; i < 4; i++) cr_assert(strstr(out, forms[i]), "--help lacks %s:\n%s", forms[i], out);
    cr_assert_eq(run("--version"), 0);
    cr_assert(strncmp(out, "mil-run (milc) ", 15) == 0, "%s", out);
}

Test(mil_run, usage_errors_exit_2) {
    cr_assert_eq(run("%s", ""), 2);
    cr_assert(strstr(err, "mil-run: error: no MODEL given"), "%s", err);
    cr_assert_eq(run("--bogus %s", cli("basic.mil")), 2);
    cr_assert(strstr(err, "unknown option '--bogus'"), "%s", err);
    cr_assert_eq(run("-i x %s", cli("basic.mil")), 2);
    cr_assert(strstr(err, "-i wants NAME=FILE.npy, got 'x'"), "%s", err);
    cr_assert_eq(run("%s -o", cli("basic.mil")), 2);
    cr_assert(strstr(err, "option -o needs a value"), "%s", err);
    cr_assert_eq(run("--repeat 0 %s", cli("basic.mil")), 2);
    cr_assert(strstr(err, "bad repeat count '0'"), "%s", err);
    cr_assert_eq(run("--random-inputs x1 %s", cli("basic.mil")), 2);
    cr_assert(strstr(err, "bad seed 'x1'"), "%s", err);
    cr_assert_eq(run("%s %s", cli("basic.mil"), cli("basic.mil")), 2);
    cr_assert(strstr(err, "more than one MODEL"), "%s", err);
    cr_assert_eq(run("--device tpu --random-inputs 1 %s", cli("basic.mil")), 2);
    cr_assert(strstr(err, "unknown device 'tpu' (available: cpu, ane, ane-sim)"), "%s", err);
}

Test(mil_run, runs_and_writes_outputs) {
    basic_inputs();
    cr_assert_eq(run("-i x=%s -i k=%s -o %s --summary %s", tp("x.npy"), tp("k.npy"), tp("a/b"), cli("basic.mil")), 0,
                 "%s", err);
    cr_assert(strstr(out, "z: fp32 [2, 4] min=0 max=9 mean=2.25"), "%s", out);
    cr_assert(strstr(out, "k2: int32 [2] min=9 max=25 mean=17"), "%s", out);
    cr_assert_eq(count_entries(tp("a/b")), 2);
    MilRtTensor z, k;
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_read(tp("a/b/z.npy"), &z, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_npy_read(tp("a/b/k2.npy"), &k, &e), 0, "%s", e.msg);
    static const float want[8] = {1, 0, 5, 0, 0, 0, 9, 3};
    for (int i = 0; i < 8; i++) cr_assert_eq(((float *)z.data)[i], want[i], "z[%d]", i);
    cr_assert_eq(((int32_t *)k.data)[1], 25);
    mil_rt_tensor_free(&z);
    mil_rt_tensor_free(&k);
}

Test(mil_run, summary_is_default_without_o_and_time_goes_to_stderr) {
    basic_inputs();
    cr_assert_eq(run("-i x=%s -i k=%s --repeat 3 --time %s", tp("x.npy"), tp("k.npy"), cli("basic.mil")), 0, "%s", err);
    cr_assert(strstr(out, "z: fp32 [2, 4]"), "%s", out);
    cr_assert(strstr(err, "mil-run: run 1: ") && strstr(err, "mil-run: run 3: ") && strstr(err, " ms\n"), "%s", err);
    cr_assert_null(strstr(err, "run 4:"));
}

Test(mil_run, int64_and_fp64_inputs_are_converted) {
    npy("x64.npy", MIL_DT_FP64, 2, d24, x8);
    npy("k64.npy", MIL_DT_INT64, 1, d2, k2);
    cr_assert_eq(run("-i x=%s -i k=%s %s", tp("x64.npy"), tp("k64.npy"), cli("basic.mil")), 0, "%s", err);
    cr_assert(strstr(out, "k2: int32 [2] min=9 max=25"), "%s", out);
    static const double big[2] = {3, 5e9};
    npy("kbig.npy", MIL_DT_INT64, 1, d2, big);
    cr_assert_eq(run("-i x=%s -i k=%s %s", tp("x64.npy"), tp("kbig.npy"), cli("basic.mil")), 1);
    cr_assert(strstr(err, "input 'k': ") && strstr(err, "value 5000000000 at index 1 does not fit in int32"), "%s", err);
}

Test(mil_run, input_errors_exit_1) {
    basic_inputs();
    const char *m = cli("basic.mil");
    cr_assert_eq(run("-i x=%s %s", tp("x.npy"), m), 1);
    cr_assert_str_eq(err, "mil-run: error: missing input 'k' (give -i k=FILE.npy or --random-inputs SEED)\n");
    cr_assert_eq(run("-i x=%s -i k=%s -i w=%s %s", tp("x.npy"), tp("k.npy"), tp("x.npy"), m), 1);
    cr_assert_str_eq(err, "mil-run: error: function 'main' has no input 'w' (inputs: k x)\n");
    cr_assert_eq(run("-i x=%s -i k=%s -i x=%s %s", tp("x.npy"), tp("k.npy"), tp("x.npy"), m), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'x' given twice\n");
    npy("x3.npy", MIL_DT_FP32, 1, d3, x8);
    cr_assert_eq(run("-i x=%s -i k=%s %s", tp("x3.npy"), tp("k.npy"), m), 1);
    cr_assert(strstr(err, "has shape fp32 [3] but the input is fp32 [?, 4]"), "%s", err);
    npy("x16.npy", MIL_DT_FP16, 2, d24, x8);
    cr_assert_eq(run("-i x=%s -i k=%s %s", tp("x16.npy"), tp("k.npy"), m), 1);
    cr_assert(strstr(err, "holds fp16 data but the input is fp32 [?, 4]"), "%s", err);
    npy("kf.npy", MIL_DT_FP32, 1, d2, k2);
    cr_assert_eq(run("-i x=%s -i k=%s %s", tp("x.npy"), tp("kf.npy"), m), 1);
    cr_assert(strstr(err, "holds fp32 data but the input is int32 [2]"), "%s", err);
    FILE *f = fopen(tp("junk.npy"), "w");
    fputs("not numpy", f);
    fclose(f);
    cr_assert_eq(run("-i x=%s -i k=%s %s", tp("junk.npy"), tp("k.npy"), m), 1);
    cr_assert(strstr(err, "input 'x': ") && strstr(err, "junk.npy: not a .npy file (bad magic)"), "%s", err);
    cr_assert_eq(run("-i x=%s -i k=%s %s", tp("none.npy"), tp("k.npy"), m), 1);
    cr_assert(strstr(err, "none.npy: No such file or directory"), "%s", err);
}

Test(mil_run, model_errors_exit_1) {
    cr_assert_eq(run("--random-inputs 1 %s", tp("nope.mil")), 1);
    cr_assert(strstr(err, "nope.mil: No such file or directory"), "%s", err);
    cr_assert_eq(run("--random-inputs 1 %s", cli("syntax_error.mil")), 1);
    cr_assert(strstr(err, "syntax_error.mil:6:9: error: "), "%s", err);
    cr_assert_eq(run("--random-inputs 1 %s", cli("unsupported.mil")), 1);
    cr_assert(strstr(err, "unsupported.mil:6:39: error: op 'non_zero' is not supported by the cpu device"), "%s", err);
    cr_assert_eq(run("--random-inputs 1 %s", cli("twofuncs.mil")), 1);
    cr_assert(strstr(err, "several functions and none is named 'main'; choose one with --function"), "%s", err);
    cr_assert_eq(run("--random-inputs 1 --function cube %s", cli("twofuncs.mil")), 1);
    cr_assert(strstr(err, "no function named 'cube'"), "%s", err);
}

Test(mil_run, function_and_random_inputs) {
    cr_assert_eq(run("--random-inputs 5 --function square %s", cli("twofuncs.mil")), 0, "%s", err);
    char *first = strdup(out);
    cr_assert(strstr(out, "y: fp32 [3] min="), "%s", out);
    cr_assert_eq(run("--random-inputs 5 --function=square %s", cli("twofuncs.mil")), 0, "%s", err);
    cr_assert_str_eq(out, first, "random inputs must be deterministic");
    cr_assert_eq(run("--random-inputs 6 --function square %s", cli("twofuncs.mil")), 0);
    cr_assert_str_neq(out, first);
    free(first);
    /* `?` dims of random inputs default to 1 */
    cr_assert_eq(run("--random-inputs 1 %s", cli("basic.mil")), 0, "%s", err);
    cr_assert(strstr(out, "z: fp32 [1, 4]"), "%s", out);
}

Test(mil_run, failed_run_leaves_no_output) {
    basic_inputs();
    /* y.npy's place is taken by a directory: nothing may be left behind */
    cr_assert_eq(mkdir(tp("o"), 0777), 0);
    cr_assert_eq(mkdir(tp("o/k2.npy"), 0777), 0);
    cr_assert_eq(run("-i x=%s -i k=%s -o %s %s", tp("x.npy"), tp("k.npy"), tp("o"), cli("basic.mil")), 1);
    cr_assert(strstr(err, "k2.npy: it is a directory"), "%s", err);
    cr_assert_eq(count_entries(tp("o")), 1, "left: %d entries", count_entries(tp("o")));
    /* an input error: the output directory is not even created */
    cr_assert_eq(run("-i x=%s -o %s %s", tp("x.npy"), tp("p"), cli("basic.mil")), 1);
    struct stat st;
    cr_assert_neq(stat(tp("p"), &st), 0);
    /* a shape error found after parsing and lowering */
    static const int64_t d23[2] = {2, 3};
    npy("x23.npy", MIL_DT_FP32, 2, d23, x8);
    cr_assert_eq(run("-i x=%s -i k=%s -o %s %s", tp("x23.npy"), tp("k.npy"), tp("q"), cli("basic.mil")), 1);
    cr_assert(strstr(err, "has shape fp32 [2, 3] but the input is fp32 [?, 4]"), "%s", err);
    cr_assert_neq(stat(tp("q"), &st), 0);
}

Test(mil_run, corpus_weighted_mlmodelc_and_bare_mil) {
    const char *corpus = tu_corpus_dir();
    if (!corpus) return;
    char cmd[4096];
    /* the corpus files are copied into place at test time, never committed */
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/m.mlmodelc/weights %s/bare/weights %s/w && "
             "cp %s/mlmodelc-export__fixtures__flexible-weighted-legacy.mil %s/m.mlmodelc/model.mil && "
             "cp %s/mlmodelc-export__fixtures__flexible-weighted-legacy.weight.bin %s/m.mlmodelc/weights/weights.bin && "
             "cp %s/m.mlmodelc/model.mil %s/bare/prog.mil && cp %s/m.mlmodelc/weights/weights.bin %s/bare/weights/ && "
             "cp %s/m.mlmodelc/model.mil %s/alone.mil && cp %s/m.mlmodelc/weights/weights.bin %s/w/",
             tmp, tmp, tmp, corpus, tmp, corpus, tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp, tmp);
    cr_assert_eq(system(cmd), 0);
    static const int64_t d34[2] = {3, 4};
    static const double xv[12] = {1, 2, 3, 4, 0, 0, 0, 0, -2, 3, -5, 7};
    npy("in.npy", MIL_DT_FP32, 2, d34, xv);
    const char *models[3] = {tp("m.mlmodelc"), tp("bare/prog.mil"), tp("alone.mil")};
    for (int m = 0; m < 3; m++) {
        char o[64];
        snprintf(o, sizeof o, "out%d", m);
        if (m < 2)
            cr_assert_eq(run("-i input=%s -o %s %s", tp("in.npy"), tp(o), models[m]), 0, "%s", err);
        else
            cr_assert_eq(run("-i input=%s -o %s --weights %s %s", tp("in.npy"), tp(o), tp("w"), models[m]), 0, "%s", err);
        char p[1200];
        snprintf(p, sizeof p, "%s/%s/output.npy", tmp, o);
        MilRtTensor t;
        MilRtErr e;
        cr_assert_eq(mil_rt_npy_read(p, &t, &e), 0, "%s", e.msg);
        cr_assert_eq(t.rank, 2);
        cr_assert_eq(t.dims[0], 3);
        static const float w[4] = {2, -3, 5, -7};
        for (int i = 0; i < 12; i++)
            cr_assert_eq(((float *)t.data)[i], (float)xv[i] + w[i % 4], "model %d [%d]", m, i);
        mil_rt_tensor_free(&t);
    }
    /* without --weights the bare file has no weights/ next to it */
    cr_assert_eq(run("-i input=%s %s", tp("in.npy"), tp("alone.mil")), 1);
    cr_assert(strstr(err, "weights/weights.bin: cannot open weight file: No such file or directory"), "%s", err);
    cr_assert(strstr(err, "alone.mil:5:"), "%s", err);
}
