/* test/train/test_train.c -- mil-train (examples/train): parity with
 * PyTorch, bit-identical resume and restart, refused inputs.
 *
 * The fixtures in test/train/data/ come from test/train/gen_fixtures.py
 * (PyTorch, float64): initial weights, 21 batches, the gradients of step 0
 * and the loss of batch i after i AdamW steps.  Tolerances:
 *   fp32  loss of step 0: 1e-4 relative; every parameter's gradient: max
 *         |ours - torch| over the tensor <= 1e-4 * max |torch|; loss after
 *         20 AdamW steps: 1e-3 relative.
 *   fp16  (fp16 kernels, fp32 master weights) loss of step 0: 5e-3 relative;
 *         gradients: max error <= 5e-2 * max |torch| per tensor.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "examples/train/trainer.h"
#include "testutil.h"

/* the fixture's configuration (gen_fixtures.py) */
static const ModelConfig FIX = {.vocab = 256, .dim = 32, .layers = 2, .heads = 4, .ffn = 64, .seq = 16, .batch = 2,
                                .dtype = MIL_DT_FP32};
static const OptConfig FIX_OPT = {.lr = 1e-2, .warmup = 5, .min_lr_frac = 0.1, .steps = 20, .beta1 = 0.9,
                                  .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .clip = 0.5};
#define FIX_STEPS 20

static void load_npy(const char *name, MilDType dt, MilRtTensor *t) {
    MilRtTensor raw;
    MilRtErr e;
    const char *path = tu_src(tu_fmt("test/train/data/%s", name));
    cr_assert_eq(mil_rt_npy_read(path, &raw, &e), 0, "%s: %s", path, e.msg);
    cr_assert_eq(mil_rt_tensor_convert(t, dt, &raw, &e), 0, "%s: %s", path, e.msg);
    mil_rt_tensor_free(&raw);
}

static Trainer *fixture_trainer_split(MilDType dt, const char *device, bool split) {
    char err[1024];
    TrainerOptions o = {.model = FIX, .device = device, .split_weight_grads = split};
    o.model.dtype = dt;
    Trainer *t = trainer_new(&o, err, sizeof err);
    cr_assert(t, "trainer_new: %s", err);
    MilRtTensor p;
    load_npy("params.npy", MIL_DT_FP32, &p);
    cr_assert_eq((size_t)mil_rt_numel(&p), trainer_nparams(t));
    trainer_init_weights(t, 1);
    memcpy(trainer_weights(t), p.data, trainer_nparams(t) * sizeof(float));
    mil_rt_tensor_free(&p);
    return t;
}

static Trainer *fixture_trainer_on(MilDType dt, const char *device) { return fixture_trainer_split(dt, device, false); }
static Trainer *fixture_trainer(MilDType dt) { return fixture_trainer_on(dt, "cpu"); }

static const int32_t *batch(const MilRtTensor *t, int i) {
    return (const int32_t *)t->data + (size_t)i * FIX.batch * FIX.seq;
}

static void check_first_step_split(MilDType dt, bool split, double loss_tol, double grad_tol) {
    Trainer *t = fixture_trainer_split(dt, "cpu", split);
    MilRtTensor tok, tgt, g, losses;
    load_npy("tokens.npy", MIL_DT_INT32, &tok);
    load_npy("targets.npy", MIL_DT_INT32, &tgt);
    load_npy("grads.npy", MIL_DT_FP64, &g);
    load_npy("losses.npy", MIL_DT_FP64, &losses);
    float loss;
    bool finite;
    char err[1024];
    cr_assert_eq(trainer_grad(t, batch(&tok, 0), batch(&tgt, 0), &loss, &finite, err, sizeof err), 0, "%s", err);
    cr_assert(finite);
    double want = ((double *)losses.data)[0];
    cr_assert(fabs(loss - want) <= loss_tol * fabs(want), "loss %.7f, torch %.7f", loss, want);
    int n;
    const ParamInfo *pi = trainer_params(t, &n);
    const float *ours = trainer_grads(t);
    const double *ref = g.data;
    cr_assert_eq((size_t)mil_rt_numel(&g), trainer_nparams(t));
    for (int i = 0; i < n; i++) {
        double maxref = 0, maxerr = 0;
        for (size_t k = pi[i].offset; k < pi[i].offset + pi[i].numel; k++) {
            maxref = fmax(maxref, fabs(ref[k]));
            maxerr = fmax(maxerr, fabs(ours[k] - ref[k]));
        }
        cr_assert(maxref > 0, "%s: the reference gradient is zero", pi[i].name);
        cr_assert(maxerr <= grad_tol * maxref, "gradient of %s: max error %.3g vs max |grad| %.3g (%.2g relative)",
                  pi[i].name, maxerr, maxref, maxerr / maxref);
    }
    mil_rt_tensor_free(&tok);
    mil_rt_tensor_free(&tgt);
    mil_rt_tensor_free(&g);
    mil_rt_tensor_free(&losses);
    trainer_free(t);
}

static void check_first_step(MilDType dt, double loss_tol, double grad_tol) {
    check_first_step_split(dt, false, loss_tol, grad_tol);
}

/* --split-weight-grads: the layer's dW computed by layer_dw from layer_bwd's
 * cotangents, the same gradients */
Test(train_parity, split_weight_grads_first_step_loss_and_every_gradient) {
    check_first_step_split(MIL_DT_FP32, true, 1e-4, 1e-4);
}

Test(train_parity, fp32_first_step_loss_and_every_gradient) { check_first_step(MIL_DT_FP32, 1e-4, 1e-4); }

Test(train_parity, fp16_first_step_loss_and_every_gradient) { check_first_step(MIL_DT_FP16, 5e-3, 5e-2); }

Test(train_parity, fp32_loss_after_20_adamw_steps) {
    Trainer *t = fixture_trainer(MIL_DT_FP32);
    MilRtTensor tok, tgt, losses;
    load_npy("tokens.npy", MIL_DT_INT32, &tok);
    load_npy("targets.npy", MIL_DT_INT32, &tgt);
    load_npy("losses.npy", MIL_DT_FP64, &losses);
    const double *ref = losses.data;
    char err[1024];
    for (int i = 0; i < FIX_STEPS; i++) {
        float loss;
        double lr, gn;
        bool skipped;
        cr_assert_eq(trainer_step(t, &FIX_OPT, batch(&tok, i), batch(&tgt, i), &loss, &lr, &gn, &skipped, err,
                                  sizeof err), 0, "%s", err);
        cr_assert(!skipped);
        cr_assert(fabs(loss - ref[i]) <= 1e-3 * ref[i], "step %d: loss %.6f, torch %.6f", i, loss, ref[i]);
    }
    float loss;
    cr_assert_eq(trainer_eval(t, batch(&tok, FIX_STEPS), batch(&tgt, FIX_STEPS), &loss, err, sizeof err), 0);
    cr_assert(ref[FIX_STEPS] < ref[0] - 0.5, "the fixture should show learning");
    cr_assert(fabs(loss - ref[FIX_STEPS]) <= 1e-3 * ref[FIX_STEPS], "after %d steps: loss %.6f, torch %.6f",
              FIX_STEPS, loss, ref[FIX_STEPS]);
    mil_rt_tensor_free(&tok);
    mil_rt_tensor_free(&tgt);
    mil_rt_tensor_free(&losses);
    trainer_free(t);
}

/* ------------------------------------------------------------ ANE device */

/* --device ane-sim: the layer kernels (layer, layer_fwd, layer_bwd) run on the
 * ANE device over the recording double in the [1, C, 1, S] fp16 layout, the
 * embedding and the loss on the CPU device.  10 AdamW steps from the fixture's
 * weights and batches give the same losses as the CPU device in fp16 within
 * 5e-3 relative (the fp16 parity tolerance above: ~1 fp16 ulp of a loss near
 * 5.5 is 4e-3 absolute), and the double compiles each distinct kernel once. */
#define ANE_STEPS 10
Test(train_ane, ten_steps_on_the_double_match_the_cpu_device) {
    Trainer *cpu = fixture_trainer_on(MIL_DT_FP16, "cpu"), *ane = fixture_trainer_on(MIL_DT_FP16, "ane-sim");
    MilRtTensor tok, tgt;
    load_npy("tokens.npy", MIL_DT_INT32, &tok);
    load_npy("targets.npy", MIL_DT_INT32, &tgt);
    char err[1024];
    double worst = 0;
    for (int i = 0; i < ANE_STEPS; i++) {
        float lc, la;
        double lr, gn;
        bool sc, sa;
        cr_assert_eq(trainer_step(cpu, &FIX_OPT, batch(&tok, i), batch(&tgt, i), &lc, &lr, &gn, &sc, err, sizeof err),
                     0, "cpu: %s", err);
        cr_assert_eq(trainer_step(ane, &FIX_OPT, batch(&tok, i), batch(&tgt, i), &la, &lr, &gn, &sa, err, sizeof err),
                     0, "ane-sim: %s", err);
        cr_assert(!sc && !sa, "step %d skipped (cpu %d, ane-sim %d)", i, sc, sa);
        cr_assert(fabs(la - lc) <= 5e-3 * fabs(lc), "step %d: ane-sim loss %.6f, cpu %.6f", i, la, lc);
        worst = fmax(worst, fabs(la - lc) / fabs(lc));
    }
    /* and the weights after 10 updates: the loss of the next batch */
    float lc, la;
    cr_assert_eq(trainer_eval(cpu, batch(&tok, ANE_STEPS), batch(&tgt, ANE_STEPS), &lc, err, sizeof err), 0, "%s", err);
    cr_assert_eq(trainer_eval(ane, batch(&tok, ANE_STEPS), batch(&tgt, ANE_STEPS), &la, err, sizeof err), 0, "%s", err);
    cr_assert(fabs(la - lc) <= 5e-3 * fabs(lc), "after %d steps: ane-sim loss %.6f, cpu %.6f", ANE_STEPS, la, lc);
    double dw = 0, w2 = 0;
    const float *wc = trainer_weights(cpu), *wa = trainer_weights(ane);
    for (size_t k = 0; k < trainer_nparams(cpu); k++) {
        dw += (double)(wa[k] - wc[k]) * (wa[k] - wc[k]);
        w2 += (double)wc[k] * wc[k];
    }
    cr_log_info("weights after %d steps: |w_ane - w_cpu| / |w_cpu| = %.3g", ANE_STEPS, sqrt(dw / w2));
    /* each kernel compiled once for the whole run (weights are inputs):
     * layer and layer_bwd; layer_fwd renders to the same program as layer
     * (recomputation leaves it no taps) and hits the compile cache.  One
     * evaluation per layer per forward and per backward. */
    MilRtAneStats st;
    cr_assert_eq(trainer_ane_stats(ane, &st), 0);
    cr_assert_eq(st.compiles, 2, "compiles %d", st.compiles);
    cr_assert_eq(st.process_compiles, 2);
    cr_assert_eq(st.cache_hits, 1, "cache hits %d", st.cache_hits);
    cr_assert_eq(st.loads, 2);
    cr_assert_eq(st.evaluations, (long)ANE_STEPS * 2 * FIX.layers + FIX.layers, "evaluations %ld", st.evaluations);
    cr_assert_eq(trainer_ane_stats(cpu, &st), -1, "the cpu trainer has no ANE device");
    cr_log_info("ane-sim vs cpu (fp16, %d steps): worst relative loss difference %.2g", ANE_STEPS, worst);
    mil_rt_tensor_free(&tok);
    mil_rt_tensor_free(&tgt);
    trainer_free(cpu);
    trainer_free(ane);
}

Test(train_ane, fp32_kernels_are_refused_on_the_ane) {
    char err[1024];
    TrainerOptions o = {.model = FIX, .device = "ane-sim"};
    cr_assert_null(trainer_new(&o, err, sizeof err));
    cr_assert(strstr(err, "device 'ane-sim' runs fp16 kernels"), "%s", err);
    o.model.dtype = MIL_DT_FP16;
    o.split_weight_grads = true;
    cr_assert_null(trainer_new(&o, err, sizeof err));
    cr_assert(strstr(err, "--split-weight-grads is wired for --device cpu only"), "%s", err);
}

/* ------------------------------------------------------------------- CLI */

static char *tmp, *out, *err;
static void setup(void) { tu_fixture_init(&tmp, &out, &err); }
static void teardown(void) { tu_fixture_fini(&tmp, &out, &err); }

#define SMALL "--dim 32 --layers 2 --heads 4 --ffn 64 --seq 16 --batch 2 --val-every 4 --val-batches 1 --quiet"

/* a few KB of text to train on */
static const char *corpus(void) {
    static const char *words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and",
                                  "runs", "away", "from", "her", "house", "in", "morning", "light"};
    const char *path = tu_path(tmp, "corpus.txt");
    FILE *f = fopen(path, "w");
    cr_assert(f);
    uint64_t s = 7;
    for (int i = 0; i < 1500; i++) fprintf(f, "%s%s", words[rng_next(&s) % 18], i % 11 == 10 ? ".\n" : " ");
    fclose(f);
    return path;
}

static int train(const char *run, const char *extra) {
    return tu_runf(&out, &err, tu_tool("mil-train"), "--data %s --run-dir %s " SMALL " %s", corpus(),
                   tu_path(tmp, run), extra);
}

Test(train_cli, resume_is_bit_identical, .init = setup, .fini = teardown) {
    cr_assert_eq(train("straight", "--steps 8"), 0, "%s", err);
    cr_assert(strstr(out, "sample"), "%s", out);
    cr_assert_eq(train("split", "--steps 8 --stop-after 4"), 0, "%s", err);
    /* the second half: a new run of 8 steps resuming the 4-step checkpoint */
    cr_assert_eq(train("split", tu_fmt("--steps 8 --resume %s", tu_path(tmp, "split/ckpt.bin"))), 0, "%s", err);
    /* not a copy of the first half's checkpoint ... */
    cr_assert(strstr(out, "resuming at step 4"), "%s", out);
    /* ... but the same weights, moments, data position and state, bit for bit */
    tu_assert_same_file(tu_path(tmp, "straight/ckpt.bin"), tu_path(tmp, "split/ckpt.bin"));
}

Test(train_cli, restart_every_is_bit_identical, .init = setup, .fini = teardown) {
    cr_assert_eq(train("straight", "--steps 8"), 0, "%s", err);
    cr_assert_eq(train("restarted", "--steps 8 --restart-every 3"), 0, "%s", err);
    cr_assert(strstr(out, "restarting after step 3") && strstr(out, "restarting after step 6"), "%s", out);
    cr_assert(strstr(out, "kernels loaded from"), "a restart reuses the cached kernels:\n%s", out);
    tu_assert_same_file(tu_path(tmp, "straight/ckpt.bin"), tu_path(tmp, "restarted/ckpt.bin"));
}

Test(train_cli, a_rebuilt_compiler_does_not_reuse_cached_kernels, .init = setup, .fini = teardown) {
    cr_assert_eq(train("r", "--steps 2"), 0, "%s", err);
    cr_assert(strstr(out, "kernels compiled to"), "%s", out);
    cr_assert_eq(train("r", "--steps 2"), 0, "%s", err);
    cr_assert(strstr(out, "kernels loaded from"), "the same build reuses its kernels:\n%s", out);
    /* a different build of mil-train (here: the same program with one more
     * byte at the end of the file, which the loader ignores) may hold other
     * passes, so it compiles again instead of loading the first build's .milb */
    size_t n;
    char *exe = tu_read_file(tu_tool("mil-train"), &n);
    cr_assert(exe);
    char *other = malloc(n + 1);
    memcpy(other, exe, n);
    other[n] = 0;
    const char *copy = tu_path(tmp, "mil-train-rebuilt");
    tu_write_file(copy, other, n + 1);
    free(exe);
    free(other);
    cr_assert_eq(chmod(copy, 0755), 0);
    cr_assert_eq(tu_runf(&out, &err, copy, "--data %s --run-dir %s " SMALL " --steps 2", corpus(), tu_path(tmp, "r")), 0,
                 "%s", err);
    cr_assert(strstr(out, "kernels compiled to"), "another build compiles afresh:\n%s", out);
}

Test(train_cli, fp16_trains_and_reports_skips, .init = setup, .fini = teardown) {
    cr_assert_eq(train("h", "--steps 8 --precision fp16"), 0, "%s", err);
    /* the loss scale settles: most steps update the weights */
    long long skipped = -1;
    const char *done = strstr(out, "mil-train: done: 8 steps, ");
    cr_assert(done && sscanf(done, "mil-train: done: 8 steps, %lld skipped", &skipped) == 1, "%s", out);
    cr_assert(skipped >= 0 && skipped < 4, "%lld of 8 steps skipped:\n%s", skipped, out);
    size_t n;
    char *csv = tu_read_file(tu_path(tmp, "h/log.csv"), &n);
    cr_assert(csv && strstr(csv, "loss_scale,skipped"));
    free(csv);
}

/* --device ane-sim from the command line: the placement is printed, the
 * double's counters stay at two compiles per process, and --restart-every
 * (the compile-budget workaround) is bit-identical on the ANE path too. */
Test(train_cli, ane_sim_restart_every_is_bit_identical, .init = setup, .fini = teardown) {
    cr_assert_eq(train("straight", "--steps 6 --device ane-sim"), 0, "%s", err);
    cr_assert(strstr(out, "layer, layer_fwd, layer_bwd: on ane-sim"), "%s", out);
    cr_assert(strstr(out, "embed, embed_fwd, embed_bwd, head, head_fwd, head_bwd: on cpu (int32"), "%s", out);
    cr_assert(strstr(out, "fp16 on ane-sim"), "--device ane-sim implies fp16:\n%s", out);
    cr_assert(strstr(out, "ane-sim: 2 compiles (2 in this process, budget 100), 1 cache hits, 30 evaluations"),
              "6 steps x 2 layers x (forward + backward) + 3 validations x 2 layers:\n%s", out);
    cr_assert_eq(train("restarted", "--steps 6 --device ane-sim --restart-every 2"), 0, "%s", err);
    cr_assert(strstr(out, "restarting after step 2") && strstr(out, "restarting after step 4"), "%s", out);
    /* the last process compiled its own two kernels and ran the last 2 steps */
    cr_assert(strstr(out, "ane-sim: 2 compiles (2 in this process, budget 100), 1 cache hits, 10 evaluations"),
              "2 steps x 2 layers x 2 + a validation x 2 layers:\n%s",
              out);
    tu_assert_same_file(tu_path(tmp, "straight/ckpt.bin"), tu_path(tmp, "restarted/ckpt.bin"));
    /* sampling a checkpoint through the ANE double */
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-train"), "--sample %s --device ane-sim --prompt 'the ' --tokens 20 "
                         "--temperature 0", tu_path(tmp, "straight/ckpt.bin")), 0, "%s", err);
    cr_assert_eq(strlen(out), 4 + 20 + 1, "'%s'", out);
}

/* The layer kernels are in the ANE's layout: at a size where surfaces can
 * reach the route's minimum (D = 256, B*S = 256 tokens), milc's ANE legality
 * check on the dumped kernels finds nothing but the norm weights' small
 * surfaces (which the device pads): every input and output is fp16
 * [1, C, 1, S] with S a multiple of 32, no op without an ANE path. */
Test(train_cli, ane_layer_kernels_pass_ane_legality, .init = setup, .fini = teardown) {
    const char *dir = tu_path(tmp, "mil");
    int rc = tu_runf(&out, &err, tu_tool("mil-train"), "--data %s --run-dir %s --dim 256 --layers 1 --heads 4 --ffn 512 "
                     "--seq 128 --batch 2 --steps 1 --bench --quiet --device ane-sim --dump-mil %s", corpus(),
                     tu_path(tmp, "big"), dir);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strstr(out, "note: 8 ANE legality finding(s)"), "%s", out);
    rc = tu_runf(&out, &err, tu_tool("milc"), "-O2 --target=ane -o %s %s", tu_path(tmp, "k.mil"),
                 tu_path(dir, "ane-kernels.mil"));
    cr_assert_eq(rc, 0, "%s", err);
    int found = 0;
    for (const char *l = err; (l = strstr(l, "warning: ")); l++, found++) {
        size_t n = strcspn(l, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), l);
        cr_assert(strstr(line, "_norm'") && strstr(line, "is below the ~49152-byte minimum"), "%s", line);
    }
    /* attn_norm, ffn_norm: inputs of layer, layer_fwd and layer_bwd; outputs d_* of layer_bwd */
    cr_assert_eq(found, 8, "%s", err);
}

/* every refused input: exit status, message, and no run directory */
static void refused(const char *args, int status, const char *msg) {
    const char *run = tu_path(tmp, "refused");
    int rc = tu_runf(&out, &err, tu_tool("mil-train"), "--run-dir %s %s", run, args);
    cr_assert_eq(rc, status, "mil-train %s: exit %d, expected %d\n%s", args, rc, status, err);
    cr_assert(strstr(err, msg), "mil-train %s: expected '%s' in:\n%s", args, msg, err);
    struct stat sb;
    cr_assert(stat(run, &sb) != 0, "mil-train %s left %s behind", args, run);
}

Test(train_cli, bad_inputs_are_refused_and_write_nothing, .init = setup, .fini = teardown) {
    const char *empty = tu_path(tmp, "empty.txt"), *shorty = tu_path(tmp, "short.txt");
    tu_write_text(empty, "");
    tu_write_text(shorty, "just a few bytes of text, shorter than two windows");
    refused(tu_fmt("--data %s", tu_path(tmp, "missing.txt")), 1, "missing.txt: No such file");
    refused(tu_fmt("--data %s", empty), 1, "the data file is empty");
    refused(tu_fmt("--data %s --seq 64", shorty), 1, "too few");
    refused(tu_fmt("--data %s --dim 30 --heads 4", shorty), 2, "--dim 30 is not divisible by --heads 4");
    refused(tu_fmt("--data %s --dim 1000000 --layers 4000 --ffn 4000000", shorty), 1, "GiB");
    refused(tu_fmt("--data %s --steps ten", shorty), 2, "--steps expects an integer");
    refused(tu_fmt("--data %s --lr fast", shorty), 2, "--lr expects a number");
    refused(tu_fmt("--data %s --precision fp8", shorty), 2, "--precision expects fp32 or fp16");
    refused(tu_fmt("--data %s --device ane-sim --precision fp32", shorty), 2,
            "--device ane-sim runs fp16 kernels (the ANE's numerics); --precision fp32 is for --device cpu");
    refused(tu_fmt("--data %s --bogus 1", shorty), 2, "unknown option '--bogus'");
    refused(tu_fmt("--tokens %s --vocab 256", tu_path(tmp, "missing.bin")), 1, "missing.bin");
#ifndef __APPLE__
    refused(tu_fmt("--data %s " SMALL " --device ane", corpus()), 1, "ANE device: not available");
#endif
}

Test(train_cli, bad_checkpoints_are_refused, .init = setup, .fini = teardown) {
    cr_assert_eq(train("a", "--steps 4"), 0, "%s", err);
    const char *ck = tu_path(tmp, "a/ckpt.bin");
    size_t n;
    char *b = tu_read_file(ck, &n);
    cr_assert(b && n > 200);
    const char *trunc = tu_path(tmp, "trunc.bin"), *bad = tu_path(tmp, "bad.bin");
    tu_write_file(trunc, b, n - 9);
    b[n / 2] ^= 0x10;
    tu_write_file(bad, b, n);
    free(b);
    const char *data = corpus();
    const char *runs[][3] = {
        {trunc, SMALL, "truncated"},
        {bad, SMALL, "checksum mismatch"},
        {ck, "--dim 64 --layers 2 --heads 4 --ffn 64 --seq 16 --batch 2", "another configuration (--dim 32"},
    };
    for (int i = 0; i < 3; i++) {
        int rc = tu_runf(&out, &err, tu_tool("mil-train"), "--data %s --run-dir %s %s --steps 8 --resume %s", data,
                         tu_path(tmp, "r"), runs[i][1], runs[i][0]);
        cr_assert_eq(rc, 1, "%s", err);
        cr_assert(strstr(err, runs[i][2]), "expected '%s' in:\n%s", runs[i][2], err);
    }
    int rc = tu_runf(&out, &err, tu_tool("mil-train"), "--sample %s --tokens 5", bad);
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert(strstr(err, "checksum mismatch"), "%s", err);
}

Test(train_cli, sample_from_checkpoint, .init = setup, .fini = teardown) {
    cr_assert_eq(train("a", "--steps 4"), 0, "%s", err);
    const char *ck = tu_path(tmp, "a/ckpt.bin");
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-train"), "--sample %s --prompt 'the ' --tokens 40 --temperature 0",
                         ck), 0, "%s", err);
    cr_assert_eq(strncmp(out, "the ", 4), 0, "%s", out);
    cr_assert_eq(strlen(out), 4 + 40 + 1, "prompt + 40 bytes + newline: '%s'", out);
    char *first = strdup(out);
    /* greedy sampling is deterministic */
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-train"), "--sample %s --prompt 'the ' --tokens 40 --temperature 0",
                         ck), 0);
    cr_assert_str_eq(out, first);
    free(first);
}

/* --dump-mil: milc --grad on the dumped forward reproduces the dumped
 * backward (one --grad per differentiated function, as model_grad does) */
Test(train_cli, dumped_forward_regrads_to_dumped_backward, .init = setup, .fini = teardown) {
    const char *dir = tu_path(tmp, "mil");
    cr_assert_eq(train("d", tu_fmt("--steps 1 --dump-mil %s", dir)), 0, "%s", err);
    const char *milc = tu_tool("milc");
    cr_assert_eq(tu_runf(&out, &err, milc, "-O0 --grad=embed --wrt=emb,pos -o %s %s", tu_path(tmp, "a.mil"),
                         tu_path(dir, "forward.mil")), 0, "%s", err);
    cr_assert_eq(tu_runf(&out, &err, milc, "-O0 --grad=layer -o %s %s", tu_path(tmp, "b.mil"), tu_path(tmp, "a.mil")),
                 0, "%s", err);
    cr_assert_eq(tu_runf(&out, &err, milc, "-O0 --grad=head --wrt=x,final_norm,wcls -o %s %s", tu_path(tmp, "c.mil"),
                         tu_path(tmp, "b.mil")), 0, "%s", err);
    tu_assert_same_file(tu_path(tmp, "c.mil"), tu_path(dir, "grad.mil"));
    /* and the optimised kernels are what the run used */
    size_t n;
    char *k = tu_read_file(tu_path(dir, "kernels.mil"), &n);
    cr_assert(k && strstr(k, "func layer_bwd") && strstr(k, "func head_fwd"));
    free(k);
}
