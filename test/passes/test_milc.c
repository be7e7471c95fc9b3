/* test/passes/test_milc.c -- the pass-related options of the milc driver:
 * --check reports shape errors as file:line:col with exit 1, --stats,
 * --print-after, --emit=taps, and -o NAME.mlmodelc bundles that mil-run runs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

Test(milc, check_reports_shape_error) {
    char cmd[4096], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s --check %s", tu_tool("milc"), tu_src("test/passes/shape_matmul_error.mil"));
    int rc = tu_run(cmd, &out, &err);
    cr_assert_eq(rc, 1, "exit %d, stderr: %s", rc, err);
    cr_assert(strstr(err, "shape_matmul_error.mil:5:38: error: matmul: inner dimensions do not match (64 vs 32)"),
              "stderr: %s", err);
    free(out);
    free(err);
}

Test(milc, stats_and_print_after) {
    char cmd[4096], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s -O2 --stats --print-after=rmsnorm %s", tu_tool("milc"), tu_src("test/passes/data/rms_ane.mil"));
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    cr_assert(strstr(err, "stats: rmsnorm"), "%s", err);
    cr_assert(strstr(err, "IR after rmsnorm"), "%s", err);
    cr_assert(strstr(err, "stats:   rms_norm"), "%s", err);
    free(out);
    free(err);
}

Test(milc, bundle_and_taps, .timeout = 60) {
    char *dir = tu_tmpdir();
    char cmd[8192], *out = NULL, *err = NULL, path[4096];
    snprintf(cmd, sizeof cmd, "python3 %s --form ane --layers 1 --dim 32 --seq 32 --heads 2 --ffn 64 --out %s/in.mlmodelc",
             tu_src("bench/gen_transformer.py"), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s -O2 --verify-each --taps=l0_xn,l0_q --pack-taps -o %s/out.mlmodelc %s/in.mlmodelc",
             tu_tool("milc"), dir, dir);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    struct stat st;
    snprintf(path, sizeof path, "%s/out.mlmodelc/weights/weight.bin", dir);
    cr_assert_eq(stat(path, &st), 0, "no weight.bin");
    snprintf(path, sizeof path, "%s/out.mlmodelc/taps.json", dir);
    char *json = tu_read_file(path, NULL);
    cr_assert_not_null(json);
    cr_assert(strstr(json, "{\"name\": \"l0_q\", \"offset\": 32, \"channels\": 32}"), "%s", json);
    free(json);
    free(out);
    free(err);
    out = err = NULL;
    snprintf(cmd, sizeof cmd, "%s --random-inputs 1 --summary %s/out.mlmodelc", tu_tool("mil-run"), dir);
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "mil-run failed: %s", err);
    cr_assert(strstr(out, "taps: fp16 [1, 64, 1, 32]"), "%s", out);
    free(out);
    free(err);
    tu_rmrf(dir);
    free(dir);
}

/* Text output is refused when the passes created constants that belong in a
 * weight file (here the folded transpose of a 4x4 weight, inline or BLOBFILE);
 * a bundle output takes them. */
Test(milc, text_output_refuses_new_weights, .timeout = 60) {
    char *dir = tu_tmpdir();
    char cmd[8192], *out = NULL, *err = NULL, path[4096];
    struct stat st;
    const char *src = tu_src("test/passes/data/mm_weight.mil");
    snprintf(cmd, sizeof cmd, "%s -O2 -o %s/o.mil %s", tu_tool("milc"), dir, src);
    cr_assert_eq(tu_run(cmd, &out, &err), 1, "%s", err);
    cr_assert(strstr(err, "need") && strstr(err, "weight file") && strstr(err, "-o NAME.mlmodelc"), "%s", err);
    snprintf(path, sizeof path, "%s/o.mil", dir);
    cr_assert_neq(stat(path, &st), 0, "o.mil was written");
    free(out);
    free(err);
    /* -O1 creates nothing: text is fine */
    snprintf(cmd, sizeof cmd, "%s -O1 -o %s/o1.mil %s", tu_tool("milc"), dir, src);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    /* the weight as BLOBFILE (a -O1 bundle moves it to weight.bin) */
    snprintf(cmd, sizeof cmd, "%s -O1 -o %s/in.mlmodelc %s", tu_tool("milc"), dir, src);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s -O2 -o %s/b.mil %s/in.mlmodelc", tu_tool("milc"), dir, dir);
    out = err = NULL;
    cr_assert_eq(tu_run(cmd, &out, &err), 1, "%s", err);
    cr_assert(strstr(err, "-o NAME.mlmodelc"), "%s", err);
    snprintf(path, sizeof path, "%s/b.mil", dir);
    cr_assert_neq(stat(path, &st), 0, "b.mil was written");
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s -O2 -o %s/b.mlmodelc %s/in.mlmodelc", tu_tool("milc"), dir, dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s --random-inputs 1 --summary %s/b.mlmodelc", tu_tool("mil-run"), dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    tu_rmrf(dir);
    free(dir);
}

/* --print-after with an unknown pass name is a usage error listing the passes. */
Test(milc, print_after_unknown_pass) {
    char cmd[4096], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "%s -O2 --print-after=bogus %s", tu_tool("milc"), tu_src("test/passes/data/rms_ane.mil"));
    cr_assert_eq(tu_run(cmd, &out, &err), 2, "%s", err);
    cr_assert(strstr(err, "unknown pass 'bogus'"), "%s", err);
    cr_assert(strstr(err, "all, "), "%s", err);
    cr_assert(strstr(err, "rmsnorm"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s -O2 --print-after=all %s", tu_tool("milc"), tu_src("test/passes/data/rms_ane.mil"));
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err);
    free(out);
    free(err);
}
