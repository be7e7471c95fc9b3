/* test/passes/test_grad_torch.c -- milc --grad against PyTorch autograd
 * (fixtures by test/gen_grad_fixtures.py, committed in test/passes/data/grad):
 * a pre-norm transformer layer in [1, S, D] and in [1, D, 1, S] and a loss
 * head, fp32 and fp16, as generated (-O0) and after -O2 for the cpu and the
 * ane target, with --recompute=none and cheap.  Every input and weight
 * gradient: max |milc - torch| <= tol * max |torch| per tensor, tol = 1e-4
 * for fp32; for fp16 1e-2 (each op rounds its output to fp16, 2^-11
 * relative, and the backward chains ~60 of them; 3e-3 measured).  FUNC_fwd's outputs equal
 * FUNC's bit for bit in the same program. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "grad_util.h"
#include "testutil.h"

static void dump(MilDiag *d) {
    char buf[1024];
    for (int i = 0; i < d->n; i++) {
        mil_diag_format(d, i, buf, sizeof buf);
        cr_log_error("%s", buf);
    }
}

static bool load_npy(const char *dir, const char *name, MilDType dt, MilRtTensor *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    MilRtTensor t;
    MilRtErr e;
    if (mil_rt_npy_read(path, &t, &e)) return false;
    if (dt == MIL_DT_NONE || t.dtype == dt || !mil_rt_dtype_is_float(t.dtype)) {
        *out = t;
        return true;
    }
    cr_assert_eq(mil_rt_tensor_convert(out, dt, &t, &e), 0, "%s", e.msg);
    mil_rt_tensor_free(&t);
    return true;
}

/* opt: 0 = -O0, 1 = -O2 cpu, 2 = -O2 ane; pack: --pack-taps; the
 * gradients are added to *keep when keep != NULL */
static void torch_case_ex(const char *name, bool fp16, int opt, MilRecompute rc, bool split, bool pack, GuPool *keep) {
    char path[4096], dir[4096], label[256];
    snprintf(path, sizeof path, "%s%s.mil", tu_src("test/passes/data/grad/"), fp16 ? tu_fmt("%s_fp16", name) : name);
    snprintf(dir, sizeof dir, "%s%s", tu_src("test/passes/data/grad/"), name);
    snprintf(label, sizeof label, "%s %s %s recompute=%s%s%s", name, fp16 ? "fp16" : "fp32",
             opt == 0 ? "-O0" : opt == 1 ? "-O2 cpu" : "-O2 ane", rc ? "cheap" : "none", split ? " split" : "",
             pack ? " pack-taps" : "");
    bool head = !strcmp(name, "head");
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions pa = {0};
    MilProgram *p = mil_parse_file(path, &pa, &d);
    cr_assert(p && mil_verify(p, &d) == 0, "%s: does not parse", label);
    MilGradOptions go;
    mil_grad_options_init(&go);
    go.recompute = rc;
    go.split_weight_grads = split;
    go.pack_taps = pack;
    if (head) go.loss = "loss";
    if (mil_grad(p, &go, &d)) {
        dump(&d);
        cr_assert_fail("%s: mil_grad failed", label);
    }
    gu_check_taps(label, p, "main");
    MilPassOptions po;
    mil_pass_options_init(&po);
    po.opt_level = opt ? 2 : 0;
    po.target = opt == 2 ? MIL_TARGET_ANE : MIL_TARGET_CPU;
    po.verify_each = true;
    if (mil_pass_run(p, &po, &d) || mil_verify(p, &d)) {
        dump(&d);
        cr_assert_fail("%s: passes failed", label);
    }
    MilRtDevice *dev = mil_rt_device_cpu_new();
    MilLowerOptions lo = {.model_dir = ".", .device = dev};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    if (!rp) {
        dump(&d);
        cr_assert_fail("%s: does not lower", label);
    }
    const MilRtFunc *fm = mil_rt_program_find_func(rp, "main");
    MilDType dt = fp16 ? MIL_DT_FP16 : MIL_DT_FP32;
    GuPool in = {0}, ref = {0}, fwd = {0}, bwd = {0}, dwo = {0};
    for (int i = 0; i < fm->ninputs; i++) {
        MilRtTensor t;
        cr_assert(load_npy(dir, fm->values[fm->inputs[i]].name, dt, &t), "%s: no fixture for %s", label,
                  fm->values[fm->inputs[i]].name);
        gu_pool_add(&in, fm->values[fm->inputs[i]].name, &t);
        mil_rt_tensor_free(&t);
    }
    for (int i = 0; i < fm->noutputs && !head; i++) {
        MilRtTensor t;
        const char *nm = tu_fmt("d_%s", fm->values[fm->outputs[i]].name);
        cr_assert(load_npy(dir, nm, dt, &t));
        gu_pool_add(&in, nm, &t);
        mil_rt_tensor_free(&t);
    }
    gu_run(dev, rp, "main", &in, &ref);
    gu_run(dev, rp, "main_fwd", &in, &fwd);
    for (int i = 0; i < ref.n; i++) {
        const MilRtTensor *b = gu_pool_get(&fwd, ref.names[i]);
        cr_assert(b && !memcmp(ref.t[i].data, b->data, mil_rt_nbytes(&ref.t[i])), "%s: main_fwd's %s differs from main's",
                  label, ref.names[i]);
    }
    for (int i = 0; i < fwd.n; i++) gu_pool_add(&in, fwd.names[i], &fwd.t[i]);
    gu_run(dev, rp, "main_bwd", &in, &bwd);
    if (split) {
        for (int i = 0; i < bwd.n; i++) gu_pool_add(&in, bwd.names[i], &bwd.t[i]);
        gu_run(dev, rp, "main_dw", &in, &dwo);
        for (int i = 0; i < dwo.n; i++) gu_pool_add(&bwd, dwo.names[i], &dwo.t[i]);
    }
    double tol = fp16 ? 1e-2 : 1e-4;
    int checked = 0;
    for (int i = 0; i < fm->ninputs; i++) {
        const char *x = fm->values[fm->inputs[i]].name;
        MilRtTensor want;
        if (!load_npy(dir, tu_fmt("grad_%s", x), MIL_DT_NONE, &want)) continue;
        const MilRtTensor *got = gu_pool_get(&bwd, tu_fmt("d_%s", x));
        cr_assert(got && mil_rt_numel(got) == mil_rt_numel(&want), "%s: no gradient d_%s of the right size", label, x);
        double m = 0, e = 0;
        for (int64_t k = 0; k < mil_rt_numel(&want); k++) {
            double w = mil_rt_get_f64(&want, k), g = mil_rt_get_f64(got, k);
            if (fabs(w) > m) m = fabs(w);
            if (!(fabs(w - g) <= e)) e = fabs(w - g);
        }
        cr_expect(e <= tol * m, "%s: d_%s: max error %g, max |torch| %g (relative %g > %g)", label, x, e, m, e / m, tol);
        checked++;
        mil_rt_tensor_free(&want);
    }
    cr_assert_geq(checked, head ? 3 : 10, "%s: only %d gradients compared", label, checked);
    for (int i = 0; keep && i < bwd.n; i++) gu_pool_add(keep, bwd.names[i], &bwd.t[i]);
    gu_pool_free(&in);
    gu_pool_free(&ref);
    gu_pool_free(&fwd);
    gu_pool_free(&bwd);
    gu_pool_free(&dwo);
    mil_rt_program_free(rp);
    mil_rt_device_free(dev);
    mil_program_free(p);
    mil_diag_free(&d);
}

static void torch_case(const char *name, bool fp16, int opt, MilRecompute rc, bool split) {
    torch_case_ex(name, fp16, opt, rc, split, false, NULL);
}

static void all_cases(const char *name) {
    for (int fp16 = 0; fp16 < 2; fp16++)
        for (int opt = 0; opt < 3; opt++)
            for (int rc = 0; rc < 2; rc++) torch_case(name, fp16, opt, (MilRecompute)rc, false);
    torch_case(name, false, 1, MIL_RECOMPUTE_CHEAP, true);
    torch_case(name, false, 0, MIL_RECOMPUTE_NONE, true);
}

Test(grad_torch, layer_sd, .timeout = 120) { all_cases("layer_sd"); }
Test(grad_torch, layer_cf, .timeout = 120) { all_cases("layer_cf"); }
Test(grad_torch, loss_head, .timeout = 120) { all_cases("head"); }

/* --pack-taps: the [1, C, 1, S] layer's taps travel as one tensor; every
 * gradient equals the unpacked program's bit for bit (both also against
 * the PyTorch fixtures), fp32 and fp16, -O0 / -O2 cpu / -O2 ane, both
 * recompute modes, and with --split-weight-grads */
Test(grad_torch, pack_taps_gives_the_unpacked_gradients, .timeout = 120) {
    for (int fp16 = 0; fp16 < 3; fp16++)   /* 2: fp32 with --split-weight-grads (FUNC_dw reads the packed taps) */
        for (int opt = 0; opt < 3; opt++)
            for (int rc = 0; rc < 2; rc++) {
                GuPool a = {0}, b = {0};
                torch_case_ex("layer_cf", fp16 == 1, opt, (MilRecompute)rc, fp16 == 2, false, &a);
                torch_case_ex("layer_cf", fp16 == 1, opt, (MilRecompute)rc, fp16 == 2, true, &b);
                cr_assert_eq(a.n, b.n);
                for (int i = 0; i < a.n; i++) {
                    const MilRtTensor *t = gu_pool_get(&b, a.names[i]);
                    cr_assert(t && mil_rt_nbytes(t) == mil_rt_nbytes(&a.t[i]) &&
                                  !memcmp(t->data, a.t[i].data, mil_rt_nbytes(t)),
                              "fp16=%d opt=%d recompute=%d: %s differs packed / unpacked", fp16, opt, rc, a.names[i]);
                }
                gu_pool_free(&a);
                gu_pool_free(&b);
            }
}

/* --grad of path (fp32, -O2 cpu), then main_fwd / main_bwd on `in`; the
 * forward outputs go to *fwd, the gradients to *bwd */
static void grad_run(const char *path, const GuPool *in, GuPool *fwd, GuPool *bwd) {
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions pa = {0};
    MilProgram *p = mil_parse_file(path, &pa, &d);
    cr_assert(p && !mil_verify(p, &d));
    MilGradOptions go;
    mil_grad_options_init(&go);
    MilPassOptions po;
    mil_pass_options_init(&po);
    po.opt_level = 2;
    cr_assert(!mil_grad(p, &go, &d) && !mil_pass_run(p, &po, &d));
    MilRtDevice *dev = mil_rt_device_cpu_new();
    MilLowerOptions lo = {.model_dir = ".", .device = dev};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    cr_assert_not_null(rp);
    GuPool all = {0};
    for (int i = 0; i < in->n; i++) gu_pool_add(&all, in->names[i], &in->t[i]);
    gu_run(dev, rp, "main_fwd", in, fwd);
    for (int i = 0; i < fwd->n; i++) gu_pool_add(&all, fwd->names[i], &fwd->t[i]);
    gu_run(dev, rp, "main_bwd", &all, bwd);
    gu_pool_free(&all);
    mil_rt_program_free(rp);
    mil_rt_device_free(dev);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* fwd+bwd of a two-layer stack (shared weights) == chaining the one-layer
 * fwd/bwd, weight gradients of both uses summed */
Test(grad_torch, two_layer_stack_equals_chained_layers, .timeout = 60) {
    const char *dir = tu_src("test/passes/data/grad/layer_sd");
    static const char *const names[] = {"x", "g1", "wq", "wk", "wv", "wo", "g2", "w1", "w3", "w2"};
    GuPool in = {0}, f1 = {0}, b1 = {0}, f2 = {0}, b2 = {0}, f3 = {0}, b3 = {0};
    MilRtTensor t;
    for (int i = 0; i < 10; i++) {
        cr_assert(load_npy(dir, names[i], MIL_DT_NONE, &t));
        gu_pool_add(&in, names[i], &t);
        mil_rt_tensor_free(&t);
    }
    cr_assert(load_npy(dir, "d_y", MIL_DT_NONE, &t));
    gu_pool_add(&in, "d_y_b", &t);   /* the stack's output is y_b */
    gu_pool_add(&in, "d_y", &t);
    mil_rt_tensor_free(&t);
    grad_run(tu_src("test/passes/data/grad/layer_sd_x2.mil"), &in, &f1, &b1);
    /* layer 2 at the output of layer 1 */
    const char *one = tu_src("test/passes/data/grad/layer_sd.mil");
    grad_run(one, &in, &f2, &b2);                    /* f2.y = layer(x) */
    GuPool in2 = {0};
    for (int i = 0; i < in.n; i++) gu_pool_add(&in2, strcmp(in.names[i], "x") ? in.names[i] : "x_unused", &in.t[i]);
    gu_pool_add(&in2, "x", gu_pool_get(&f2, "y"));
    gu_pool_free(&f2);
    gu_pool_free(&b2);
    grad_run(one, &in2, &f2, &b2);                   /* b2 = grads of layer 2 */
    gu_pool_add(&in, "d_y", gu_pool_get(&b2, "d_x")); /* cotangent of layer 1 = d(layer-2 input) */
    grad_run(one, &in, &f3, &b3);
    for (int i = 0; i < 10; i++) {
        const char *g = tu_fmt("d_%s", names[i]);
        const MilRtTensor *a = gu_pool_get(&b1, g), *x1 = gu_pool_get(&b3, g), *x2 = gu_pool_get(&b2, g);
        cr_assert(a && x1 && x2);
        double m = 0, e = 0;
        for (int64_t k = 0; k < mil_rt_numel(a); k++) {
            double want = mil_rt_get_f64(x1, k) + (strcmp(names[i], "x") ? mil_rt_get_f64(x2, k) : 0);
            if (fabs(want) > m) m = fabs(want);
            if (!(fabs(want - mil_rt_get_f64(a, k)) <= e)) e = fabs(want - mil_rt_get_f64(a, k));
        }
        cr_expect(e <= 1e-5 * m, "%s: stack %g vs chained layers (max %g)", g, e, m);
    }
    GuPool *all[] = {&in, &in2, &f1, &b1, &f2, &b2, &f3, &b3};
    for (int i = 0; i < 8; i++) gu_pool_free(all[i]);
}
