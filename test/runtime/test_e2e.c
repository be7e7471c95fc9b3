/* test/runtime/test_e2e.c -- end to end: MIL text with BLOBFILE weights ->
 * mil-run (parse, verify, lower, plan, run) -> .npy outputs, compared with
 * NumPy references (test/runtime/gen_transformer.py), and the real corpus
 * programs that need no missing weights. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmrf(tmp); free(tmp); }

TestSuite(e2e, .init = setup, .fini = teardown);

#define tdir(name) tu_path(MILC_SOURCE_DIR "/test/runtime/data/transformer", name)

/* Runs mil-run on MODEL with input x and compares y with the reference. */
static void check_block(const char *name, const char *model, const char *extra, double tol) {
    char cmd[8192], o[1024], y[1100], ref[1100];
    snprintf(o, sizeof o, "%s/%s", tmp, name);
    snprintf(cmd, sizeof cmd, "%s -i x=%s/x.npy -o %s %s %s", tu_tool("mil-run"), tdir(name), o, extra, model);
    char *err = NULL;
    int rc = tu_run(cmd, NULL, &err);
    cr_assert_eq(rc, 0, "%s: %s", name, err);
    free(err);
    snprintf(y, sizeof y, "%s/y.npy", o);
    snprintf(ref, sizeof ref, "%s/y.npy", tdir(name));
    MilRtTensor a, b;
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_read(y, &a, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_npy_read(ref, &b, &e), 0, "%s", e.msg);
    cr_assert_eq(a.dtype, b.dtype, "%s: dtype %s", name, mil_rt_dtype_name(a.dtype));
    MilRtDiff d;
    cr_assert_eq(mil_rt_compare_tensors(&a, &b, &d), 0, "%s: shapes differ", name);
    cr_assert_leq(d.max_abs, tol, "%s: max abs diff %g at %lld (nmse %g)", name, d.max_abs,
                  (long long)d.argmax_abs, d.nmse);
    mil_rt_tensor_free(&a);
    mil_rt_tensor_free(&b);
}

Test(e2e, transformer_block_s_d) {
    /* the directory as a .mlmodelc-style package */
    check_block("sd", tdir("sd"), "", 1e-5);
}

Test(e2e, transformer_block_s_d_bare_mil) {
    /* a bare .mil next to its weights/ */
    char m[1100];
    snprintf(m, sizeof m, "%s/model.mil", tdir("sd"));
    check_block("sd", m, "", 1e-5);
}

Test(e2e, transformer_block_sdpa_bool_mask) {
    check_block("sdpa", tdir("sdpa"), "", 1e-5);
}

Test(e2e, transformer_block_c_1_s) {
    check_block("c1s", tdir("c1s"), "", 1e-5);
}

Test(e2e, transformer_block_c_1_s_weights_override) {
    /* the program alone in a temp dir, weights from --weights */
    char cmd[4096], m[1100], w[1100];
    snprintf(m, sizeof m, "%s/alone.mil", tmp);
    snprintf(cmd, sizeof cmd, "cp %s/model.mil %s", tdir("c1s"), m);
    cr_assert_eq(system(cmd), 0);
    snprintf(w, sizeof w, "--weights %s/weights", tdir("c1s"));
    check_block("c1s", m, w, 1e-5);
}

Test(e2e, transformer_block_c_1_s_fp16) {
    /* fp16 end to end; the reference rounds after every op as the runtime
     * does, so only accumulation order can differ */
    check_block("c1s_fp16", tdir("c1s_fp16"), "", 4e-3);  /* 2 fp16 ulps at 2 <= |y| < 4 */
}

/* In-process: parse, lower, run through the library API (what passes use). */
Test(e2e, library_api_and_plan_stats) {
    char m[1100];
    snprintf(m, sizeof m, "%s/model.mil", tdir("sd"));
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse_file(m, NULL, &d);
    cr_assert(p);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    MilLowerOptions lo = {.model_dir = tdir("sd"), .device = dev};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    cr_assert(rp, "lowering failed (%d errors)", d.nerrors);
    mil_program_free(p);  /* the runtime program does not depend on the IR */
    MilRtFunc *f = mil_rt_program_find_func(rp, "main");
    cr_assert(f);
    cr_assert_eq(mil_rt_func_validate(f, &e), 0, "%s", e.msg);
    char xp[1100];
    snprintf(xp, sizeof xp, "%s/x.npy", tdir("sd"));
    MilRtTensor x, y, ref;
    cr_assert_eq(mil_rt_npy_read(xp, &x, &e), 0);
    MilRtSession *s = mil_rt_session_new(dev, f, &e);
    cr_assert(s, "%s", e.msg);
    cr_assert_eq(mil_rt_session_run(s, &x, &y, &e), 0, "%s", e.msg);
    const MilRtPlan *plan = mil_rt_session_plan(s);
    cr_assert_lt(plan->info.arena_bytes, plan->info.naive_bytes, "arena %zu naive %zu", plan->info.arena_bytes,
                 plan->info.naive_bytes);
    snprintf(xp, sizeof xp, "%s/y.npy", tdir("sd"));
    cr_assert_eq(mil_rt_npy_read(xp, &ref, &e), 0);
    MilRtDiff diff;
    mil_rt_compare_tensors(&y, &ref, &diff);
    cr_assert_leq(diff.max_abs, 1e-5);
    mil_rt_tensor_free(&x);
    mil_rt_tensor_free(&ref);
    mil_rt_session_free(s);
    mil_rt_program_free(rp);
    mil_rt_device_free(dev);
    mil_diag_free(&d);
}

/* Corpus programs without (missing) weights run with random inputs. */
Test(e2e, corpus_programs_run) {
    const char *dir = tu_corpus_dir();
    if (!dir) return;
    static const char *progs[] = {
        "FluidAudio__OptimizationModels__Argmax__b1661f0.mil",
        "FluidAudio__OptimizationModels__TokenDurationPrediction__b1661f0.mil",
        "FluidAudio__OptimizationModels__TransposeEncoder.mil",
        "ane-linux-experiments__fixtures__h14-anec__add-scalar.mil",
        "coremltools__ModelRunner__add_model.mil",
        "mlmodelc-export__fixtures__flexible-gather.mil",
        "mlmodelc-export__fixtures__flexible-range.mil",
        "mlmodelc-export__fixtures__neg-0d-scalar.mil",
        "mlmodelc-export__pipeline__cast__model0.mil",
        "mlmodelc-export__pipeline__indexed__model0.mil",
        "mlmodelc-export__pipeline__indexed__model1.mil",
        "mlmodelc-export__pipeline__masked-int32__model0.mil",
        "mlx-omarchy__probes__softmax-8375375.mil",
    };
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "%s --random-inputs 3 -o %s/c%zu %s/%s", tu_tool("mil-run"), tmp, i, dir, progs[i]);
        char *err = NULL;
        int rc = tu_run(cmd, NULL, &err);
        cr_expect_eq(rc, 0, "%s: %s", progs[i], err);
        free(err);
    }
}

/* The weighted corpus fixture: input + [2, -3, 5, -7]. */
Test(e2e, corpus_flexible_weighted_legacy) {
    const char *dir = tu_corpus_dir();
    if (!dir) return;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/m.mlmodelc/weights && cp %s/mlmodelc-export__fixtures__flexible-weighted-legacy.mil "
             "%s/m.mlmodelc/model.mil && cp %s/mlmodelc-export__fixtures__flexible-weighted-legacy.weight.bin "
             "%s/m.mlmodelc/weights/weights.bin",
             tmp, dir, tmp, dir, tmp);
    cr_assert_eq(system(cmd), 0);
    char mp[1100];
    snprintf(mp, sizeof mp, "%s/m.mlmodelc/model.mil", tmp);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse_file(mp, NULL, &d);
    cr_assert(p);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    char md[1100];
    snprintf(md, sizeof md, "%s/m.mlmodelc", tmp);
    MilLowerOptions lo = {.model_dir = md, .device = dev};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    cr_assert(rp);
    MilRtFunc *f = rp->funcs[0];
    /* flexible [?, 4]: run two batch sizes through one session */
    MilRtSession *s = mil_rt_session_new(dev, f, &e);
    for (int n = 1; n <= 3; n += 2) {
        float xv[12];
        for (int i = 0; i < 4 * n; i++) xv[i] = (float)i;
        MilRtTensor x = {.dtype = MIL_DT_FP32, .rank = 2, .dims = {n, 4}, .data = xv}, y;
        cr_assert_eq(mil_rt_session_run(s, &x, &y, &e), 0, "%s", e.msg);
        cr_assert_eq(y.dims[0], n);
        static const float w[4] = {2, -3, 5, -7};
        for (int i = 0; i < 4 * n; i++) cr_assert_eq(((float *)y.data)[i], xv[i] + w[i % 4]);
    }
    mil_rt_session_free(s);
    mil_rt_program_free(rp);
    mil_program_free(p);
    mil_rt_device_free(dev);
    mil_diag_free(&d);
}

/* Lowering errors carry the op's location. */
Test(e2e, lowering_reports_weight_errors_at_the_const) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/m/weights && cp %s/model.mil %s/m/ && head -c 1000 %s/weights/weight.bin > %s/m/weights/weight.bin",
             tmp, tdir("sd"), tmp, tdir("sd"), tmp);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --random-inputs 1 %s/m", tu_tool("mil-run"), tmp);
    char *err = NULL;
    cr_assert_eq(tu_run(cmd, NULL, &err), 1);
    /* wq's record (576) survives the cut but its data does not; bq's record is gone */
    cr_assert(strstr(err, "m/model.mil:9:41: error: ") &&
              strstr(err, "weight.bin: blob at offset 576: data [640, 1664) is beyond the end of the file (1000 bytes)"),
              "%s", err);
    cr_assert(strstr(err, "m/model.mil:10:37: error: ") &&
              strstr(err, "weight.bin: blob metadata offset 1664 is beyond the end of the file (1000 bytes)"), "%s", err);
    free(err);
}
