/* test/backend/test_ane_mil.c -- --emit=ane-mil: extension ops expanded into
 * standard MIL that computes the same thing (CPU device), spelling chosen by
 * the opset, weights in MILBlob v2. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "testutil.h"

static char *tmp;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmrf(tmp); free(tmp); }

static MilProgram *parse(const char *file, const char *text, MilDiag *d) {
    MilProgram *p = mil_parse(file, text, strlen(text), NULL, d);
    cr_assert(p && d->nerrors == 0, "parse failed");
    cr_assert_eq(mil_verify(p, d), 0);
    return p;
}

/* Runs function main of p on seeded random inputs; outs get deep copies. */
static int run(MilProgram *p, const char *model_dir, MilRtTensor *outs, int max) {
    MilDiag d;
    mil_diag_init(&d);
    MilLowerOptions lo = {.model_dir = model_dir};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    cr_assert(rp, "lowering failed: %s", d.n ? d.v[0].msg : "");
    MilRtFunc *f = rp->funcs[0];
    MilRtTensor in[8];
    uint64_t st = 42;
    cr_assert_leq(f->ninputs, 8);
    for (int i = 0; i < f->ninputs; i++) {
        const MilRtValue *v = &f->values[f->inputs[i]];
        in[i] = (MilRtTensor){.dtype = v->dtype, .rank = v->rank};
        for (int k = 0; k < v->rank; k++) in[i].dims[k] = v->dims[k];
        MilRtErr e;
        cr_assert_eq(mil_rt_tensor_alloc(&in[i], &e), 0);
        mil_rt_tensor_fill_random(&in[i], &st);
    }
    MilRtDevice *dev = mil_rt_device_cpu_new();
    MilRtErr e;
    cr_assert_leq(f->noutputs, max);
    cr_assert_eq(mil_rt_run_once(dev, f, in, outs, &e), 0, "%s", e.msg);
    int n = f->noutputs;
    for (int i = 0; i < f->ninputs; i++) mil_rt_tensor_free(&in[i]);
    mil_rt_device_free(dev);
    mil_rt_program_free(rp);
    mil_diag_free(&d);
    return n;
}

/* d owns the reparsed program's file names: free it after the program. */
static MilProgram *emit_and_reparse(MilProgram *p, const char *model_dir, char **text, MilDiag *dp) {
    MilDiag d = *dp;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ane", tmp);
    MilAneOptions ao = {.model_dir = model_dir};
    cr_assert_eq(mil_emit_ane_mil(p, dir, &ao, &d), 0, "%s", d.n ? d.v[0].msg : "");
    char path[1100];
    snprintf(path, sizeof path, "%s/model.mil", dir);
    size_t len;
    *text = tu_read_file(path, &len);
    cr_assert(*text);
    MilProgram *q = parse(path, *text, &d);
    for (MilOp *op = q->funcs[0]->body.first; op; op = op->next) {
        const MilOpInfo *info = mil_op_info(op->kind);
        cr_assert(info && !(info->flags & OPF_EXT), "extension op '%s' left in the output", op->opname);
    }
    *dp = d;
    return q;
}

static void close_enough(const MilRtTensor *a, const MilRtTensor *b, double tol) {
    MilRtDiff df;
    cr_assert_eq(mil_rt_compare_tensors(a, b, &df), 0);
    cr_assert(!df.shape_mismatch);
    cr_assert_leq(df.max_abs, tol, "max abs difference %g", df.max_abs);
}

TestSuite(ane_mil, .init = setup, .fini = teardown, .timeout = 120);

Test(ane_mil, rms_norm_expanded) {
    MilDiag d;
    mil_diag_init(&d);
    size_t len;
    char *src = tu_read_file(tu_src("examples/mil/ffn_block.mil"), &len);
    MilProgram *p = parse("ffn_block.mil", src, &d);
    MilPassOptions po;
    mil_pass_options_init(&po);
    po.opt_level = 2;
    mil_pass_run(p, &po, &d);
    cr_assert_eq(d.nerrors, 0);
    bool has_rms = false;
    for (MilOp *op = p->funcs[0]->body.first; op; op = op->next) has_rms |= op->kind == MIL_OP_RMS_NORM;
    cr_assert(has_rms, "-O2 did not fuse rms_norm (nothing to expand)");
    MilRtTensor ref[4], got[4];
    run(p, tu_src("examples/mil"), ref, 4);
    char *text;
    MilProgram *q = emit_and_reparse(p, tu_src("examples/mil"), &text, &d);
    cr_assert(!strncmp(text, "program(1.3)", 12));
    char wdir[1100];
    snprintf(wdir, sizeof wdir, "%s/ane", tmp);
    run(q, wdir, got, 4);
    close_enough(&got[0], &ref[0], 2e-2);
    /* weights: MILBlob v2 header, 3 blobs, first record at 64 with data at 128 */
    char wpath[1200];
    snprintf(wpath, sizeof wpath, "%s/ane/weights/weight.bin", tmp);
    unsigned char *w = (unsigned char *)tu_read_file(wpath, &len);
    cr_assert(w);
    uint32_t count, version, sentinel;
    uint64_t off;
    memcpy(&count, w, 4);
    memcpy(&version, w + 4, 4);
    memcpy(&sentinel, w + 64, 4);
    memcpy(&off, w + 80, 8);
    cr_assert_eq(version, 2);
    cr_assert_eq(count, 3);
    cr_assert_eq(sentinel, 0xDEADBEEFu);
    cr_assert_eq(off, 128);
    cr_assert(strstr(text, "@model_path/weights/weight.bin"));
    free(w);
    mil_rt_tensor_free(&ref[0]);
    mil_rt_tensor_free(&got[0]);
    free(text);
    free(src);
    free(po.taps_json);
    mil_program_free(p);
    mil_program_free(q);
    mil_diag_free(&d);
}

static const char *sdpa_src =
    "program(1.3)\n"
    "{\n"
    "    func main<ios18>(tensor<fp32, [1, 2, 4, 8]> q, tensor<fp32, [1, 2, 6, 8]> k, tensor<fp32, [1, 2, 6, 8]> v, "
    "tensor<fp32, [1, 2, 4, 8]> g) {\n"
    "            tensor<fp32, [1, 2, 4, 8]> dq, tensor<fp32, [1, 2, 6, 8]> dk, tensor<fp32, [1, 2, 6, 8]> dv = "
    "sdpa_backward(d_out = g, key = k, query = q, value = v)[name = string(\"bw\")];\n"
    "        } -> (dq, dk, dv);\n"
    "}\n";

Test(ane_mil, sdpa_backward_expanded) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = parse("sdpa.mil", sdpa_src, &d);
    MilRtTensor ref[3], got[3];
    cr_assert_eq(run(p, ".", ref, 3), 3);
    char *text;
    MilProgram *q = emit_and_reparse(p, ".", &text, &d);
    cr_assert_eq(run(q, ".", got, 3), 3);
    for (int i = 0; i < 3; i++) {
        close_enough(&got[i], &ref[i], 1e-4);
        mil_rt_tensor_free(&ref[i]);
        mil_rt_tensor_free(&got[i]);
    }
    /* outputs keep their names */
    cr_assert(strstr(text, "-> (dq, dk, dv);"), "%s", text);
    free(text);
    mil_program_free(p);
    mil_program_free(q);
    mil_diag_free(&d);
}

Test(ane_mil, spelling_follows_opset) {
    MilDiag d;
    mil_diag_init(&d);
    const char *src = "program(1.3)\n{\n    func main<ios17>(tensor<fp16, [1, 4]> x) {\n"
                      "            tensor<fp16, [1, 4]> y = relu(x = x)[name = string(\"y\")];\n"
                      "        } -> (y);\n}\n";
    MilProgram *p = parse("s.mil", src, &d);
    char *text;
    MilProgram *q = emit_and_reparse(p, ".", &text, &d);
    cr_assert(!strncmp(text, "program(1.0)", 12), "%s", text);
    cr_assert(strstr(text, "name = tensor<string, []>(\"y\")"), "%s", text);
    free(text);
    mil_program_free(p);
    mil_program_free(q);
    mil_diag_free(&d);
}

/* ------------------------------------------------- every program, ane-mil */


static MilRtProgram *lower_file(const char *path, const char *model_dir, bool check, MilProgram **pp, char **text,
                                MilDiag *d) {
    size_t len;
    *text = tu_read_file(path, &len);
    cr_assert(*text, "%s", path);
    MilProgram *p = mil_parse(path, *text, len, NULL, d);
    cr_assert(p && d->nerrors == 0, "%s: parse failed: %s", path, d->n ? d->v[0].msg : "");
    cr_assert_eq(mil_verify(p, d), 0, "%s: verify failed: %s", path, d->n ? d->v[0].msg : "");
    if (check) {
        MilPassOptions po;
        mil_pass_options_init(&po);
        po.passes = "shape";
        cr_assert_eq(mil_pass_run(p, &po, d), 0, "%s: shape inference failed: %s", path, d->n ? d->v[0].msg : "");
        cr_assert_eq(d->nerrors, 0, "%s: shape inference: %s", path, d->n ? d->v[0].msg : "");
        free(po.taps_json);
        for (int fi = 0; fi < p->nfuncs; fi++)
            for (MilOp *op = p->funcs[fi]->body.first; op; op = op->next) {
                const MilOpInfo *info = mil_op_info(op->kind);
                cr_assert(info && !(info->flags & OPF_EXT), "%s: extension op '%s' left in the output", path,
                          op->opname);
                /* ane-notes §7.2: what the ANE rejects or ignores */
                cr_assert(!(op->kind == MIL_OP_SCALED_DOT_PRODUCT_ATTENTION && mil_op_arg(op, "attn_mask")),
                          "%s: scaled_dot_product_attention with attn_mask left in the output", path);
                cr_assert(!(op->kind == MIL_OP_CONV && mil_op_arg(op, "bias")), "%s: conv with bias left", path);
                if (op->kind == MIL_OP_MATMUL) {
                    const char *fl[2] = {"transpose_x", "transpose_y"};
                    for (int j = 0; j < 2; j++) {
                        const MilArg *a = mil_op_arg(op, fl[j]);
                        cr_assert(a && a->n == 1 && a->items[0].value && a->items[0].value->def &&
                                      a->items[0].value->def->kind == MIL_OP_CONST,
                                  "%s: matmul '%s': %s is not a named const", path,
                                  op->nresults ? op->results[0]->name : "?", fl[j]);
                    }
                }
            }
    }
    MilLowerOptions lo = {.model_dir = model_dir};
    MilRtProgram *rp = mil_lower(p, &lo, d);
    cr_assert(rp, "%s: lowering failed: %s", path, d->n ? d->v[d->n - 1].msg : "");
    *pp = p;
    return rp;
}

static void ane_mil_matches_source(const char *src, const char *srcdir, int lvl, const char *target) {
    char out[1200], model[1300];
    snprintf(out, sizeof out, "%s/am_O%d_%s", tmp, lvl, target);
    snprintf(model, sizeof model, "%s/model.mil", out);
    char *err = NULL;
    int rc = tu_run(tu_fmt("%s -O%d --target=%s --emit=ane-mil -o %s %s", tu_tool("milc"), lvl, target, out, src), NULL,
                    &err);
    cr_assert_eq(rc, 0, "%s -O%d --target=%s: %s", src, lvl, target, err ? err : "");
    free(err);
    err = NULL;
    rc = tu_run(tu_fmt("%s --check %s", tu_tool("milc"), model), NULL, &err);
    cr_assert_eq(rc, 0, "%s -O%d --target=%s: --check: %s", src, lvl, target, err ? err : "");
    free(err);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p, *q;
    char *ts, *tq;
    MilRtProgram *rp = lower_file(src, srcdir, false, &p, &ts, &d);
    MilRtProgram *rq = lower_file(model, out, true, &q, &tq, &d);
    for (int fi = 0; fi < rp->nfuncs; fi++) {
        MilRtFunc *a = rp->funcs[fi], *b = NULL;
        for (int k = 0; k < rq->nfuncs; k++)
            if (!strcmp(rq->funcs[k]->name, a->name)) b = rq->funcs[k];
        cr_assert(b, "%s: function '%s' missing from the ane-mil output", src, a->name);
        cr_assert_eq(a->noutputs, b->noutputs);
        MilRtTensor in[16];
        MilRtDiff df[16];
        cr_assert_leq(a->ninputs, 16);
        cr_assert_leq(a->noutputs, 16);
        uint64_t st = 7;
        MilRtErr e;
        for (int i = 0; i < a->ninputs; i++) {
            const MilRtValue *v = &a->values[a->inputs[i]];
            in[i] = (MilRtTensor){.dtype = v->dtype, .rank = v->rank};
            for (int k = 0; k < v->rank; k++) in[i].dims[k] = v->dims[k];
            cr_assert_eq(mil_rt_tensor_alloc(&in[i], &e), 0);
            mil_rt_tensor_fill_random(&in[i], &st);
        }
        MilRtDevice *dev = mil_rt_device_cpu_new();
        cr_assert_eq(mil_rt_compare(dev, a, b, in, df, &e), 0, "%s -O%d --target=%s: %s", src, lvl, target, e.msg);
        for (int i = 0; i < a->noutputs; i++) {
            cr_assert(!df[i].shape_mismatch, "%s -O%d --target=%s: output %s: shape", src, lvl, target, df[i].name);
            cr_assert(df[i].max_abs <= 3e-2 || df[i].nmse <= 1e-4, "%s -O%d --target=%s: output %s: max abs %g nmse %g",
                      src, lvl, target, df[i].name, df[i].max_abs, df[i].nmse);
        }
        for (int i = 0; i < a->ninputs; i++) mil_rt_tensor_free(&in[i]);
        mil_rt_device_free(dev);
    }
    mil_rt_program_free(rp);
    mil_rt_program_free(rq);
    mil_program_free(p);
    mil_program_free(q);
    free(ts);
    free(tq);
    mil_diag_free(&d);
}

Test(ane_mil, every_program_valid_and_equal, .timeout = 600) {
    const char *dirs[] = {"test/backend/data", "test/passes/data", "examples/mil"};
    const char *targets[] = {"cpu", "ane"};
    int n = 0;
    for (size_t di = 0; di < sizeof dirs / sizeof *dirs; di++) {
        const char *dir = tu_src(dirs[di]);
        char sdir[1024];
        snprintf(sdir, sizeof sdir, "%s", dir);
        DIR *dd = opendir(sdir);
        cr_assert(dd, "%s", sdir);
        struct dirent *de;
        while ((de = readdir(dd))) {
            size_t l = strlen(de->d_name);
            if (l < 5 || strcmp(de->d_name + l - 4, ".mil")) continue;
            char src[2048];
            snprintf(src, sizeof src, "%s/%s", sdir, de->d_name);
            for (int lvl = 0; lvl <= 2; lvl += 2)
                for (int t = 0; t < 2; t++) ane_mil_matches_source(src, sdir, lvl, targets[t]);
            n++;
        }
        closedir(dd);
    }
    cr_assert_geq(n, 3);
}

/* ane-notes §7.2: masked attention decomposed (float, bool and constant
 * masks), conv's bias split off (constant and runtime), matmul transpose
 * flags named consts -- at every -O level and target. */
Test(ane_mil, ane_rejections_rewritten, .timeout = 120) {
    const char *W = "tensor<fp16, [3, 4, 1, 1]>([[[[1]], [[2]], [[3]], [[4]]], [[[5]], [[-6]], [[7]], [[8]]], "
                    "[[[0.5]], [[10]], [[-1]], [[2]]]])";
    const char *CA = "strides = tensor<int32, [2]>([1, 1]), pad_type = string(\"valid\"), pad = tensor<int32, [4]>([0, "
                     "0, 0, 0]), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1)";
    char src[8192];
    int n = snprintf(
        src, sizeof src,
        "program(1.3)\n{\n"
        "    func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x, tensor<fp16, [3]> b, tensor<fp16, [1, 1, 8, 8]> fm) {\n"
        "        tensor<fp16, [1, 3, 1, 8]> c = conv(x = x, weight = %s, bias = tensor<fp16, [3]>([0.5, -1, 2]), %s);\n"
        "        tensor<fp16, [1, 3, 1, 8]> c2 = conv(x = x, weight = %s, bias = b, %s);\n"
        "        tensor<fp16, [1, 1, 8, 4]> t = reshape(x = x, shape = tensor<int32, [4]>([1, 1, 8, 4]));\n"
        "        tensor<bool, [1, 1, 8, 8]> bm = greater(x = fm, y = fp16(0));\n"
        "        tensor<fp16, [1, 1, 8, 4]> a = scaled_dot_product_attention(query = t, key = t, value = t, attn_mask = bm);\n"
        "        tensor<fp16, [1, 1, 8, 4]> a1 = scaled_dot_product_attention(query = t, key = t, value = t, attn_mask = fm);\n"
        "        tensor<fp16, [1, 1, 8, 4]> a2 = scaled_dot_product_attention(query = t, key = t, value = t, attn_mask = "
        "tensor<fp16, [1, 8]>([[0, 0, 0, -100, -100, 0, -100, -100]]));\n"
        "        tensor<fp16, [1, 1, 8, 8]> mm = matmul(x = t, y = t, transpose_y = bool(true));\n"
        "        tensor<fp16, [1, 1, 8, 8]> mm2 = matmul(x = t, y = t, transpose_x = bool(false), transpose_y = bool(true));\n"
        "    } -> (c, c2, a, a1, a2, mm, mm2);\n}\n",
        W, CA, W, CA);
    cr_assert_lt(n, (int)sizeof src);
    (void)n;
    char path[1100];
    snprintf(path, sizeof path, "%s/rej.mil", tmp);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(src, f);
    fclose(f);
    for (int lvl = 0; lvl <= 2; lvl++) {
        ane_mil_matches_source(path, tmp, lvl, "cpu");
        ane_mil_matches_source(path, tmp, lvl, "ane");
    }
}
