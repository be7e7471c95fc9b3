/* test/passes/test_diff.c -- differential tests of the optimiser: a program
 * and its optimised form run on the CPU device with the same random inputs
 * must agree within fp16 tolerance; the op counts show that the lowering and
 * the fusions happened.
 *
 * Programs: the transformer blocks of bench/gen_transformer.py (pre-norm,
 * RMSNorm, causal attention, SwiGLU) in the `linear` [1, S, D] form and the
 * ANE [1, C, 1, S] form, a hand-written attention backward, and every real
 * corpus program that runs on the CPU device (missing weight files are
 * synthesised with mil_synth_weights; integer outputs that index fp values,
 * e.g. topk ids, are reported apart because near-ties may rank differently
 * once the fp16 accumulation order changes).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "testutil.h"

static int count_kind(const MilProgram *p, MilOpKind k) {
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++)
        for (const MilOp *op = p->funcs[i]->body.first; op; op = op->next) n += op->kind == k;
    return n;
}

/* matmul / linear whose weight operand is a constant */
static int count_const_mm(const MilProgram *p) {
    int n = 0;
    for (int i = 0; i < p->nfuncs; i++)
        for (const MilOp *op = p->funcs[i]->body.first; op; op = op->next) {
            if (op->kind == MIL_OP_LINEAR) n++;
            if (op->kind == MIL_OP_MATMUL && (mil_op_const_arg(op, "x") || mil_op_const_arg(op, "y"))) n++;
        }
    return n;
}

static void dump_diags(MilDiag *d) {
    char buf[1024];
    for (int i = 0; i < d->n; i++) {
        mil_diag_format(d, i, buf, sizeof buf);
        cr_log_error("%s", buf);
    }
}

typedef struct DiffResult {
    int ran;               /* 1 = compared, 0 = skipped (cannot run) */
    char why[1024];        /* why it was skipped */
    /* integer outputs that are indices of fp values (topk / argmax / argsort,
     * possibly cast or reshaped): near-tied values may rank differently after
     * any change of the fp16 accumulation order, so they are not part of
     * max_rel_big but reported here (the values they rank are compared) */
    int index_outputs;
    double index_nmse;     /* largest nmse among them */
    char index_names[256];
    double max_abs, max_rel_big;
    MilProgram *opt;       /* the optimised program (caller frees) */
} DiffResult;

/* Is the value an index into fp data (topk indices, reduce_argmax/argmin,
 * argsort), possibly through cast / squeeze / expand_dims / reshape? */
static bool is_index_value(const MilValue *v) {
    while (v && v->def) {
        const MilOp *op = v->def;
        if (op->kind == MIL_OP_CAST || op->kind == MIL_OP_SQUEEZE || op->kind == MIL_OP_EXPAND_DIMS ||
            op->kind == MIL_OP_RESHAPE || op->kind == MIL_OP_IDENTITY) {
            const MilArg *x = mil_op_arg(op, "x");
            v = x && x->n == 1 ? x->items[0].value : NULL;
            continue;
        }
        return (op->kind == MIL_OP_TOPK && v->index == 1) || op->kind == MIL_OP_REDUCE_ARGMAX ||
               op->kind == MIL_OP_REDUCE_ARGMIN || op->kind == MIL_OP_ARGSORT;
    }
    return false;
}

static bool is_index_output(const MilProgram *p, const char *func, const char *name) {
    const MilFunc *f = mil_program_find_func(p, func);
    for (int i = 0; f && i < f->body.nouts; i++)
        if (f->body.outs[i]->name && !strcmp(f->body.outs[i]->name, name)) return is_index_value(f->body.outs[i]);
    return false;
}

/* Parses path twice, optimises one copy with o, runs both; fills r.
 * must_run: failure to lower/run the reference is a test failure.
 * weights: the model directory to use instead of path's (synthetic weights);
 * qdim: the size of every `?` input dimension. */
static void diff_model_in(const char *path, const char *weights, int64_t qdim, MilPassOptions *o, bool must_run,
                          DiffResult *r) {
    memset(r, 0, sizeof *r);
    char mil_path[4096], model_dir[4096];
    MilRtErr e;
    cr_assert_eq(mil_rt_model_paths(path, mil_path, sizeof mil_path, model_dir, sizeof model_dir, &e), 0, "%s", e.msg);
    if (weights) snprintf(model_dir, sizeof model_dir, "%s", weights);
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions po = {0};
    MilProgram *a = mil_parse_file(path, &po, &d);
    MilProgram *b = mil_parse_file(path, &po, &d);
    cr_assert(a && b && d.nerrors == 0, "%s does not parse", path);
    o->verify_each = true;
    o->weights_dir = model_dir;
    if (mil_pass_run(b, o, &d) != 0) {
        dump_diags(&d);
        cr_assert_fail("%s: passes failed", path);
    }
    MilRtDevice *dev = mil_rt_device_cpu_new();
    MilLowerOptions lo = {.model_dir = model_dir, .device = dev};
    MilDiag ld;
    mil_diag_init(&ld);
    MilRtProgram *ra = mil_lower(a, &lo, &ld);
    if (!ra) {
        if (must_run) {
            dump_diags(&ld);
            cr_assert_fail("%s: reference does not lower", path);
        }
        if (ld.n) mil_diag_format(&ld, 0, r->why, sizeof r->why);
        goto out;
    }
    MilRtProgram *rb = mil_lower(b, &lo, &ld);
    if (!rb) {
        dump_diags(&ld);
        cr_assert_fail("%s: optimised program does not lower (the reference does)", path);
    }
    for (int fi = 0; fi < ra->nfuncs; fi++) {
        const MilRtFunc *fa = ra->funcs[fi];
        const MilRtFunc *fb = mil_rt_program_find_func(rb, fa->name);
        cr_assert_not_null(fb);
        MilRtTensor *in = calloc((size_t)fa->ninputs + 1, sizeof *in);
        uint64_t seed = 0x9e3779b97f4a7c15ull + (uint64_t)fi;
        bool ok = true;
        for (int i = 0; i < fa->ninputs; i++) {
            const MilRtValue *v = &fa->values[fa->inputs[i]];
            in[i].dtype = v->dtype;
            in[i].rank = v->rank;
            for (int k = 0; k < v->rank; k++) in[i].dims[k] = v->dims[k] < 0 ? qdim : v->dims[k];
            if (mil_rt_tensor_alloc(&in[i], &e) != 0) { ok = false; break; }
            if (mil_rt_dtype_is_float(v->dtype)) mil_rt_tensor_fill_random(&in[i], &seed);
        }
        MilRtDiff *diffs = calloc((size_t)fa->noutputs + 1, sizeof *diffs);
        if (ok && mil_rt_compare(dev, fa, fb, in, diffs, &e) == 0) {
            r->ran = 1;
            for (int i = 0; i < fa->noutputs; i++) {
                cr_expect(!diffs[i].shape_mismatch, "%s: output %s shapes differ", path, diffs[i].name);
                if (mil_rt_dtype_is_int(fa->values[fa->outputs[i]].dtype) &&
                    is_index_output(a, fa->name, diffs[i].name)) {
                    r->index_outputs++;
                    if (diffs[i].nmse > r->index_nmse) r->index_nmse = diffs[i].nmse;
                    if (diffs[i].nmse > 0) {
                        size_t l = strlen(r->index_names);
                        snprintf(r->index_names + l, sizeof r->index_names - l, "%s%s", l ? ", " : "", diffs[i].name);
                    }
                    continue;
                }
                if (diffs[i].max_abs > r->max_abs) r->max_abs = diffs[i].max_abs;
                if (diffs[i].nmse > r->max_rel_big) r->max_rel_big = diffs[i].nmse;
            }
        } else if (must_run) {
            cr_assert_fail("%s: does not run: %s", path, e.msg);
        } else {
            snprintf(r->why, sizeof r->why, "%s", e.msg);
        }
        for (int i = 0; i < fa->ninputs; i++) mil_rt_tensor_free(&in[i]);
        free(in);
        free(diffs);
    }
    mil_rt_program_free(rb);
    mil_rt_program_free(ra);
out:
    mil_rt_device_free(dev);
    mil_diag_free(&ld);
    mil_diag_free(&d);
    mil_program_free(a);
    r->opt = b;
}

static void diff_model(const char *path, MilPassOptions *o, bool must_run, DiffResult *r) {
    diff_model_in(path, NULL, 2, o, must_run, r);
}

static char *gen(const char *form, const char *extra) {
    char *dir = tu_tmpdir();
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "python3 %s --form %s %s --out %s/m.mlmodelc", tu_src("bench/gen_transformer.py"), form,
             extra, dir);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0, "generator failed: %s", cmd);
    return dir;
}

static void transformer_case(const char *form, MilTarget target) {
    char *dir = gen(form, "--layers 2 --dim 64 --seq 32 --heads 4 --ffn 128");
    char path[4096];
    snprintf(path, sizeof path, "%s/m.mlmodelc", dir);
    MilPassOptions o;
    mil_pass_options_init(&o);
    o.opt_level = 2;
    o.target = target;
    o.passes = getenv("MILC_DIFF_PASSES");   /* for bisecting a failure */
    DiffResult r;
    diff_model(path, &o, true, &r);
    cr_assert(r.ran);
    cr_log_info("%s/%d: max abs diff %g, nmse %g", form, target, r.max_abs, r.max_rel_big);
    cr_expect_lt(r.max_rel_big, 1e-4, "nmse %g too large", r.max_rel_big);
    cr_expect_lt(r.max_abs, 0.05, "max abs diff %g too large", r.max_abs);
    cr_expect_eq(count_const_mm(r.opt), 0, "matmul/linear with constant weights left");
    cr_expect_eq(count_kind(r.opt, MIL_OP_RMS_NORM), 4, "one rms_norm per norm (2 layers x 2)");
    if (target == MIL_TARGET_CPU)
        cr_expect_eq(count_kind(r.opt, MIL_OP_SCALED_DOT_PRODUCT_ATTENTION), 2, "attention fused per layer");
    else
        cr_expect_eq(count_kind(r.opt, MIL_OP_SCALED_DOT_PRODUCT_ATTENTION), 0, "no SDPA on the ANE");
    cr_expect_eq(count_kind(r.opt, MIL_OP_CONV), 14, "7 projections per layer as conv");
    mil_program_free(r.opt);
    tu_rmrf(dir);
    free(dir);
}

Test(diff, transformer_linear_cpu, .timeout = 120) { transformer_case("linear", MIL_TARGET_CPU); }
Test(diff, transformer_ane_form_cpu, .timeout = 120) { transformer_case("ane", MIL_TARGET_CPU); }
Test(diff, transformer_ane_form_ane, .timeout = 120) { transformer_case("ane", MIL_TARGET_ANE); }
Test(diff, transformer_linear_ane, .timeout = 120) { transformer_case("linear", MIL_TARGET_ANE_M4); }

/* Does every op of path have a CPU kernel?  (unknown ops / unsupported ops
 * make the program unrunnable whatever its weights.) */
static bool cpu_supports_all(const char *path) {
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions po = {0};
    MilProgram *p = mil_parse_file(path, &po, &d);
    bool ok = p && d.nerrors == 0;
    MilRtDevice *dev = mil_rt_device_cpu_new();
    for (int i = 0; ok && i < p->nfuncs; i++)
        for (const MilOp *op = p->funcs[i]->body.first; ok && op; op = op->next) {
            if (op->kind == MIL_OP_CONST) continue;
            MilRtOp probe = {.kind = op->kind, .opname = op->opname};
            ok = mil_op_info(op->kind) && mil_rt_device_supports_op(dev, NULL, &probe);
        }
    mil_rt_device_free(dev);
    mil_program_free(p);
    mil_diag_free(&d);
    return ok;
}

/* Every corpus program that lowers runs equal after -O2 (cpu and ane
 * targets).  Programs whose weight files are missing (Git LFS pointers) run
 * with synthetic weights (mil_synth_weights into a private mirror of the
 * corpus directory: existing files linked, missing ones written). */
Test(diff, corpus_O2, .timeout = 300) {
    const char *dir = tu_corpus_dir();
    if (!dir) return;
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp);
    struct dirent *de;
    int ran = 0, total = 0, runnable = 0, progs = 0, synthesised = 0;
    char *only = getenv("MILC_DIFF_CORPUS");   /* substring filter, for bisecting */
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".mil")) continue;
        if (only && !strstr(de->d_name, only)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        progs++;
        bool supported = cpu_supports_all(path);
        runnable += supported ? 2 : 0;
        /* synthetic weights for whatever is missing */
        char *wdir = NULL;
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = mil_parse_file(path, NULL, &d);
        if (p && d.nerrors == 0) {
            wdir = tu_tmpdir();
            MilSynthOptions so = {.model_dir = wdir, .link_dir = dir, .seed = 1};
            int nw = mil_synth_weights_opt(p, &so, &d);
            if (nw < 0) {
                dump_diags(&d);
                cr_expect_fail("%s: cannot synthesise its weights", de->d_name);
            }
            if (nw <= 0) {  /* nothing missing (or failed): the real directory */
                tu_rmrf(wdir);
                free(wdir);
                wdir = NULL;
            } else {
                synthesised++;
            }
        }
        mil_program_free(p);
        mil_diag_free(&d);
        for (int t = 0; t < 2; t++) {
            MilPassOptions o;
            mil_pass_options_init(&o);
            o.opt_level = 2;
            o.target = t ? MIL_TARGET_ANE : MIL_TARGET_CPU;
            o.passes = getenv("MILC_DIFF_PASSES");
            DiffResult r;
            diff_model_in(path, wdir, 2, &o, false, &r);
            if (!r.ran && r.why[0] && !strstr(r.why, "not supported")) {
                /* e.g. reflect padding of a [1, ?] audio input needs more than 2 samples */
                cr_log_info("corpus %s: with `?` = 2: %s; retrying with `?` = 4096", de->d_name, r.why);
                mil_program_free(r.opt);
                diff_model_in(path, wdir, 4096, &o, false, &r);
            }
            total++;
            if (r.ran) {
                ran++;
                cr_log_info("corpus %s (target %s%s): ran, max abs %g, nmse %g%s%s%s", de->d_name, t ? "ane" : "cpu",
                            wdir ? ", synthetic weights" : "", r.max_abs, r.max_rel_big,
                            r.index_names[0] ? "; near-tie index flips in " : "", r.index_names,
                            r.index_names[0] ? " (the ranked values agree)" : "");
                cr_expect_lt(r.max_rel_big, 1e-3, "%s (target %d): nmse %g", de->d_name, t, r.max_rel_big);
            } else {
                cr_log_info("corpus %s (target %s): not run: %s", de->d_name, t ? "ane" : "cpu", r.why);
                cr_expect(!supported, "%s: every op has a CPU kernel but it did not run: %s", de->d_name, r.why);
            }
            mil_program_free(r.opt);
        }
        if (wdir) {
            tu_rmrf(wdir);
            free(wdir);
        }
    }
    closedir(dp);
    cr_log_info("corpus: %d programs (%d with synthetic weights), %d of %d runs compared, %d runnable", progs,
                synthesised, ran, total, runnable);
    cr_expect_geq(ran, runnable, "only %d of the %d runs whose ops are all supported were compared", ran, runnable);
    if (!only) cr_expect_geq(ran, 2 * 19, "fewer corpus programs ran than observed (all 19)");
}

/* Every program in test/passes/data runs equal after -O2 (cpu and ane). */
Test(diff, data_files, .timeout = 120) {
    const char *dir = tu_src("test/passes/data");
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp);
    struct dirent *de;
    int ran = 0;
    while ((de = readdir(dp))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".mil")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        for (int t = 0; t < 2; t++) {
            MilPassOptions o;
            mil_pass_options_init(&o);
            o.opt_level = 2;
            o.target = t ? MIL_TARGET_ANE : MIL_TARGET_CPU;
            o.passes = getenv("MILC_DIFF_PASSES");
            DiffResult r;
            diff_model(path, &o, true, &r);
            ran += r.ran;
            cr_log_info("%s target %d: max abs %g nmse %g", de->d_name, t, r.max_abs, r.max_rel_big);
            cr_expect_lt(r.max_rel_big, 1e-4, "%s (target %d): nmse %g", de->d_name, t, r.max_rel_big);
            mil_program_free(r.opt);
        }
    }
    closedir(dp);
    cr_expect_gt(ran, 0);
}

/* The hand-written attention backward fuses into one sdpa_backward. */
Test(diff, attention_backward_fuses, .timeout = 60) {
    MilPassOptions o;
    mil_pass_options_init(&o);
    o.opt_level = 2;
    DiffResult r;
    diff_model(tu_src("test/passes/data/attn_bwd.mil"), &o, true, &r);
    cr_expect(r.ran);
    cr_expect_eq(count_kind(r.opt, MIL_OP_SDPA_BACKWARD), 1);
    cr_expect_lt(r.max_rel_big, 1e-4, "dQ/dK/dV differ: nmse %g", r.max_rel_big);
    mil_program_free(r.opt);
}

/* ------------------------------------------------ layout chain collapse */

static uint64_t lc_rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random dims with product n (rank 1..5, unit dims sprinkled in). */
static int lc_factor(uint64_t *s, int64_t n, int64_t *d) {
    int r = 0, want = 1 + (int)(lc_rng(s) % 4);
    while (n > 1 && r < want - 1) {
        int64_t divs[64];
        int nd = 0;
        for (int64_t k = 2; k <= n && nd < 64; k++)
            if (n % k == 0) divs[nd++] = k;
        int64_t k = divs[lc_rng(s) % (uint64_t)nd];
        d[r++] = k;
        n /= k;
    }
    d[r++] = n;
    if (r < 5 && lc_rng(s) % 3 == 0) {   /* a unit dim somewhere */
        int at = (int)(lc_rng(s) % (uint64_t)(r + 1));
        memmove(d + at + 1, d + at, sizeof *d * (size_t)(r - at));
        d[at] = 1;
        r++;
    }
    return r;
}

static void lc_dims(char *b, size_t n, int r, const int64_t *d) {
    size_t o = 0;
    for (int i = 0; i < r; i++) o += (size_t)snprintf(b + o, n - o, "%s%lld", i ? ", " : "", (long long)d[i]);
}

/* Random reshape / transpose chains (sizes with mixed factors, so that some
 * chains cannot be expressed on dims and must be left alone) give the same
 * result after the `layout` pass; most collapse to fewer ops. */
Test(diff, layout_chains_random, .timeout = 120) {
    static const int64_t sizes[] = {24, 36, 60, 64, 72, 96, 120, 128};
    uint64_t seed = 0x2545f4914f6cdd1dull;
    char *dir = tu_tmpdir();
    int collapsed = 0;
    for (int t = 0; t < 150; t++) {
        int64_t n = sizes[lc_rng(&seed) % 8], d[MIL_MAX_RANK];
        int r = lc_factor(&seed, n, d);
        char text[16384], ds[256];
        size_t o = 0;
        lc_dims(ds, sizeof ds, r, d);
        o += (size_t)snprintf(text + o, sizeof text - o, "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [%s]> x) {\n", ds);
        int L = 2 + (int)(lc_rng(&seed) % 4);
        const char *prev = "x";
        char names[8][8];
        for (int k = 0; k < L; k++) {
            snprintf(names[k], sizeof names[k], "c%d", k);
            if (lc_rng(&seed) % 2) {
                int64_t p[MIL_MAX_RANK], nd[MIL_MAX_RANK];
                for (int i = 0; i < r; i++) p[i] = i;
                for (int i = r - 1; i > 0; i--) {
                    int j = (int)(lc_rng(&seed) % (uint64_t)(i + 1));
                    int64_t tmp = p[i];
                    p[i] = p[j];
                    p[j] = tmp;
                }
                for (int i = 0; i < r; i++) nd[i] = d[p[i]];
                char ps[256];
                lc_dims(ps, sizeof ps, r, p);
                lc_dims(ds, sizeof ds, r, nd);
                o += (size_t)snprintf(text + o, sizeof text - o,
                                      "            tensor<fp32, [%s]> %s = transpose(perm = tensor<int32, [%d]>([%s]), x = %s);\n",
                                      ds, names[k], r, ps, prev);
                memcpy(d, nd, sizeof nd);
            } else {
                r = lc_factor(&seed, n, d);
                lc_dims(ds, sizeof ds, r, d);
                o += (size_t)snprintf(text + o, sizeof text - o,
                                      "            tensor<fp32, [%s]> %s = reshape(shape = tensor<int32, [%d]>([%s]), x = %s);\n",
                                      ds, names[k], r, ds, prev);
            }
            prev = names[k];
        }
        o += (size_t)snprintf(text + o, sizeof text - o,
                              "            tensor<fp32, [%s]> y = relu(x = %s);\n        } -> (y);\n}\n", ds, prev);
        char path[4096];
        snprintf(path, sizeof path, "%s/chain%d.mil", dir, t);
        FILE *fp = fopen(path, "w");
        cr_assert_not_null(fp);
        fputs(text, fp);
        fclose(fp);
        MilPassOptions po;
        mil_pass_options_init(&po);
        po.passes = "shape,layout,dce";
        DiffResult res;
        diff_model(path, &po, true, &res);
        cr_assert(res.ran);
        cr_assert_eq(res.max_abs, 0.0, "chain %d differs after `layout`:\n%s", t, text);
        int left = count_kind(res.opt, MIL_OP_RESHAPE) + count_kind(res.opt, MIL_OP_TRANSPOSE);
        cr_assert_leq(left, L, "chain %d grew", t);
        collapsed += left < L;
        mil_program_free(res.opt);
    }
    cr_log_info("layout chains: %d of 150 collapsed", collapsed);
    cr_expect_gt(collapsed, 50, "only %d of 150 chains collapsed", collapsed);
    tu_rmrf(dir);
    free(dir);
}

/* ------------------------------------------- attention forms (issue 4, 5/6) */

static void fused_case(const char *rel, MilTarget target, MilOpKind k, int want) {
    MilPassOptions o;
    mil_pass_options_init(&o);
    o.opt_level = 2;
    o.target = target;
    DiffResult r;
    diff_model(tu_src(rel), &o, true, &r);
    cr_expect(r.ran);
    cr_expect_eq(count_kind(r.opt, k), want, "%s: %d fused op(s) expected", rel, want);
    cr_expect_lt(r.max_rel_big, 1e-4, "%s: outputs differ: nmse %g", rel, r.max_rel_big);
    mil_program_free(r.opt);
}

/* Attention in the ANE [1, C, 1, S] layout: heads split with reshape /
 * transpose, K used as [HD, S], constant causal mask: fused for cpu,
 * left decomposed (no SDPA) for ane. */
Test(diff, attention_cf_heads, .timeout = 60) {
    fused_case("test/passes/data/attn_cf_heads.mil", MIL_TARGET_CPU, MIL_OP_SCALED_DOT_PRODUCT_ATTENTION, 1);
    fused_case("test/passes/data/attn_cf_heads.mil", MIL_TARGET_ANE, MIL_OP_SCALED_DOT_PRODUCT_ATTENTION, 0);
}

/* Attention backward preceded by the output projection's Wo^T (dO = heads of
 * dY @ Wo, lowered to a conv at -O2), P recomputed by softmax. */
Test(diff, attention_backward_after_wo, .timeout = 60) {
    fused_case("test/passes/data/attn_bwd_wo.mil", MIL_TARGET_CPU, MIL_OP_SDPA_BACKWARD, 1);
}

/* Attention backward with P provided (a function input, saved from the
 * forward pass) instead of recomputed. */
Test(diff, attention_backward_probs_given, .timeout = 60) {
    fused_case("test/passes/data/attn_bwd_probs.mil", MIL_TARGET_CPU, MIL_OP_SDPA_BACKWARD, 1);
}

/* matmul with a constant weight on either side, every combination of
 * transpose flags, with and without a batch dim: all become conv (no matmul
 * with a constant weight left) and compute the same values. */
static void mm_dims(char *b, size_t n, int64_t d0, int64_t d1, int64_t d2) {
    snprintf(b, n, "[%lld, %lld, %lld]", (long long)d0, (long long)d1, (long long)d2);
}

Test(diff, matmul_const_weight_all_transposes, .timeout = 120) {
    const int64_t N = 7, IC = 6, OC = 5;
    char *dir = tu_tmpdir();
    int cases = 0;
    for (int side = 0; side < 2; side++)          /* 0: weight is y, 1: weight is x */
        for (int tx = 0; tx < 2; tx++)
            for (int ty = 0; ty < 2; ty++)
                for (int64_t B = 1; B <= 2; B++) {
                    bool wt = side ? tx : ty;    /* is the weight operand transposed */
                    bool at = side ? ty : tx;    /* is the activation operand transposed */
                    int64_t wr = side ? (wt ? IC : OC) : (wt ? OC : IC), wc = side ? (wt ? OC : IC) : (wt ? IC : OC);
                    char ad[64], rd[64], wlit[4096];
                    if (!side) mm_dims(ad, sizeof ad, B, at ? IC : N, at ? N : IC);
                    else mm_dims(ad, sizeof ad, B, at ? N : IC, at ? IC : N);
                    if (!side) mm_dims(rd, sizeof rd, B, N, OC);
                    else mm_dims(rd, sizeof rd, B, OC, N);
                    size_t k = 0;
                    k += (size_t)snprintf(wlit + k, sizeof wlit - k, "[");
                    for (int64_t i = 0; i < wr; i++) {
                        k += (size_t)snprintf(wlit + k, sizeof wlit - k, "%s[", i ? ", " : "");
                        for (int64_t j = 0; j < wc; j++)
                            k += (size_t)snprintf(wlit + k, sizeof wlit - k, "%s%a", j ? ", " : "",
                                                  (double)((i * 7 + j * 3) % 11 - 5) / 8.0);
                        k += (size_t)snprintf(wlit + k, sizeof wlit - k, "]");
                    }
                    snprintf(wlit + k, sizeof wlit - k, "]");
                    char path[4096];
                    snprintf(path, sizeof path, "%s/mm_%d%d%d_%lld.mil", dir, side, tx, ty, (long long)B);
                    FILE *fp = fopen(path, "w");
                    cr_assert_not_null(fp);
                    fprintf(fp,
                            "program(1.3)\n{\n    func main<ios18>(tensor<fp16, %s> a) {\n"
                            "            tensor<fp16, [%lld, %lld]> w = const()[val = tensor<fp16, [%lld, %lld]>(%s)];\n"
                            "            tensor<fp16, %s> r = matmul(transpose_x = bool(%s), transpose_y = bool(%s), x = %s, y = %s);\n"
                            "        } -> (r);\n}\n",
                            ad, (long long)wr, (long long)wc, (long long)wr, (long long)wc, wlit, rd,
                            tx ? "true" : "false", ty ? "true" : "false", side ? "w" : "a", side ? "a" : "w");
                    fclose(fp);
                    for (int t = 0; t < 2; t++) {
                        MilPassOptions o;
                        mil_pass_options_init(&o);
                        o.opt_level = 2;
                        o.target = t ? MIL_TARGET_ANE : MIL_TARGET_CPU;
                        DiffResult r;
                        diff_model(path, &o, true, &r);
                        cr_assert(r.ran, "%s did not run", path);
                        cr_expect_lt(r.max_rel_big, 1e-4, "side %d tx %d ty %d B %lld target %d: nmse %g", side, tx, ty,
                                     (long long)B, t, r.max_rel_big);
                        cr_expect_eq(count_const_mm(r.opt), 0, "side %d tx %d ty %d B %lld target %d: matmul left", side,
                                     tx, ty, (long long)B, t);
                        cr_expect_eq(count_kind(r.opt, MIL_OP_CONV), 1, "side %d tx %d ty %d B %lld target %d: no conv",
                                     side, tx, ty, (long long)B, t);
                        mil_program_free(r.opt);
                        cases++;
                    }
                }
    cr_expect_eq(cases, 32);
    tu_rmrf(dir);
    free(dir);
}

/* The scale on the P factor (psc = P * s; dS = psc * centred) and the scale
 * as a division (dS = (P * centred) / sqrt(d)) fuse too. */
static void bwd_case(const char *rel) {
    for (int t = 0; t < 2; t++) {
        MilPassOptions o;
        mil_pass_options_init(&o);
        o.opt_level = 2;
        o.target = t ? MIL_TARGET_ANE : MIL_TARGET_CPU;
        DiffResult r;
        diff_model(tu_src(rel), &o, true, &r);
        cr_expect(r.ran);
        cr_expect_eq(count_kind(r.opt, MIL_OP_SDPA_BACKWARD), 1, "%s target %d: not fused", rel, t);
        cr_expect_lt(r.max_rel_big, 1e-4, "%s target %d: dQ/dK/dV differ: nmse %g", rel, t, r.max_rel_big);
        mil_program_free(r.opt);
    }
}
Test(diff, attention_backward_scale_on_p, .timeout = 60) { bwd_case("test/passes/data/attn_bwd_scale_p.mil"); }
Test(diff, attention_backward_scale_div, .timeout = 60) { bwd_case("test/passes/data/attn_bwd_div.mil"); }
