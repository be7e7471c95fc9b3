/* test/runtime/test_kernels_rnn.c -- lstm / gru / rnn and einsum,
 * upsample_bilinear, l2_pool, sliding_windows kernels against the fixtures of
 * test/gen_fixtures_rnn.py (PyTorch / NumPy float64 references), plus
 * negative cases and an end-to-end lstm program through mil-run. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fp16.h"
#include "runtime/runtime.h"
#include "test_kernels.h"
#include "testutil.h"

static const struct { const char *name; MilOpKind kind; } rnn_op_names[] = {
#define OP(id, name, wire, nres, flags) {name, MIL_OP_##id},
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
};

static MilOpKind rnn_op_by_name(const char *s) {
    for (size_t i = 0; i < sizeof rnn_op_names / sizeof rnn_op_names[0]; i++)
        if (!strcmp(rnn_op_names[i].name, s)) return rnn_op_names[i].kind;
    return MIL_OP_UNKNOWN;
}

/* Runs every MANIFEST case of op `opname`; returns how many ran. */
static int run_op_cases(const char *opname) {
    size_t len;
    char *m = tu_read_file(tu_src("test/runtime/fixtures_rnn/MANIFEST"), &len);
    cr_assert_not_null(m, "fixtures_rnn/MANIFEST missing: run test/gen_fixtures_rnn.py");
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char op[64], name[128], path[200];
        if (sscanf(line, "%63s %127s", op, name) != 2 || strcmp(op, opname)) continue;
        MilOpKind k = rnn_op_by_name(op);
        cr_assert(k != MIL_OP_UNKNOWN, "unknown op %s", op);
        snprintf(path, sizeof path, "../fixtures_rnn/%s", name);
        cr_expect(kt_case(k, path, 0, 0), "case %s (%s) failed", name, op);
        n++;
    }
    free(m);
    return n;
}

/* a case whose expected outputs are perturbed must fail: the checks bite */
static bool perturbed_case_fails(MilOpKind kind, const char *name, float delta) {
    KT *t = malloc(sizeof *t);
    kt_init(t, kind, 0);
    t->nout = kt_load_case(t, name);
    cr_assert_gt(t->nout, 0);
    cr_assert_eq(kt_run(t), 0, "%s: %s", name, t->err);
    MilRtTensor *o = &t->outs[0];
    if (o->dtype == MIL_DT_FP32) ((float *)o->data)[0] += delta;
    else ((uint16_t *)o->data)[0] = mil_f2h(mil_h2f(((uint16_t *)o->data)[0]) + delta);
    bool ok = kt_check(t, name, 0, 1e-5, 1e-5);
    kt_free(t);
    free(t);
    return !ok;
}

Test(rnn_kernels, lstm) { cr_expect_geq(run_op_cases("lstm"), 19); }
Test(rnn_kernels, gru) { cr_expect_geq(run_op_cases("gru"), 16); }
Test(rnn_kernels, rnn) { cr_expect_geq(run_op_cases("rnn"), 16); }

Test(rnn_kernels, checks_can_fail) {
    cr_expect(perturbed_case_fails(MIL_OP_LSTM, "../fixtures_rnn/lstm_bid_seq_f32", 1e-3f));
    cr_expect(perturbed_case_fails(MIL_OP_GRU, "../fixtures_rnn/gru_rev_seq_sigmoid_f32", 1e-3f));
    cr_expect(perturbed_case_fails(MIL_OP_RNN, "../fixtures_rnn/rnn_for_seq_tanh_f32", 1e-3f));
}

/* Inline lstm with hand-computable values: H = 1, I = 1, weights zero except
 * the biases: i = f = o = sigmoid(0) = .5, z = tanh(b_z). */
Test(rnn_kernels, lstm_inline_bias_only) {
    KT t;
    kt_init(&t, MIL_OP_LSTM, 3);
    float x[2] = {0.3f, -0.7f}, h0 = 0.25f, c0 = 0.5f, w[4] = {0}, b[4] = {0, 0, 0, 0.5f};
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP32, 3, (int64_t[]){2, 1, 1}, x));
    kt_bind(&t, kt_slot(&t, "initial_h"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){1, 1}, &h0));
    kt_bind(&t, kt_slot(&t, "initial_c"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){1, 1}, &c0));
    kt_bind(&t, kt_slot(&t, "weight_ih"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){4, 1}, w));
    kt_bind(&t, kt_slot(&t, "weight_hh"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){4, 1}, w));
    kt_bind(&t, kt_slot(&t, "bias"), kt_tensor(&t, MIL_DT_FP32, 1, (int64_t[]){4}, b));
    kt_bool(&t, "output_sequence", true);
    cr_assert_eq(kt_run(&t), 0, "%s", t.err);
    double z = tanh(0.5), c = 0.5;
    for (int s = 0; s < 2; s++) {
        c = 0.5 * c + 0.5 * z;
        double h = 0.5 * tanh(c);
        cr_expect_float_eq(((float *)t.outs[0].data)[s], h, 1e-6);
    }
    cr_expect_float_eq(((float *)t.outs[2].data)[0], c, 1e-6);
    cr_expect_eq(t.outs[0].rank, 3);
    cr_expect_eq(t.outs[0].dims[0], 2);
    kt_free(&t);
}

static void lstm_small(KT *t, const char *dir) {
    float x[6] = {0}, s[2] = {0}, w[8] = {0};
    kt_bind(t, kt_slot(t, "x"), kt_tensor(t, MIL_DT_FP32, 3, (int64_t[]){3, 2, 1}, x));
    kt_bind(t, kt_slot(t, "initial_h"), kt_tensor(t, MIL_DT_FP32, 2, (int64_t[]){2, 1}, s));
    kt_bind(t, kt_slot(t, "initial_c"), kt_tensor(t, MIL_DT_FP32, 2, (int64_t[]){2, 1}, s));
    kt_bind(t, kt_slot(t, "weight_ih"), kt_tensor(t, MIL_DT_FP32, 2, (int64_t[]){4, 1}, w));
    kt_bind(t, kt_slot(t, "weight_hh"), kt_tensor(t, MIL_DT_FP32, 2, (int64_t[]){4, 1}, w));
    if (dir) kt_str(t, "direction", dir);
}

Test(rnn_kernels, negative) {
    KT t;
    kt_init(&t, MIL_OP_LSTM, 3);
    lstm_small(&t, "bidirectional");
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "weight_ih_back") != NULL, "%s", t.err);
    kt_free(&t);

    kt_init(&t, MIL_OP_LSTM, 3);
    lstm_small(&t, "sideways");
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "direction") != NULL, "%s", t.err);
    kt_free(&t);

    kt_init(&t, MIL_OP_LSTM, 3);
    lstm_small(&t, NULL);
    kt_str(&t, "activation", "softsign");
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "activation") != NULL, "%s", t.err);
    kt_free(&t);

    /* weight_ih of the wrong width */
    kt_init(&t, MIL_OP_LSTM, 3);
    float x[6] = {0}, s[2] = {0}, w[8] = {0};
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP32, 3, (int64_t[]){3, 2, 1}, x));
    kt_bind(&t, kt_slot(&t, "initial_h"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){2, 1}, s));
    kt_bind(&t, kt_slot(&t, "initial_c"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){2, 1}, s));
    kt_bind(&t, kt_slot(&t, "weight_ih"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){4, 2}, w));
    kt_bind(&t, kt_slot(&t, "weight_hh"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){4, 1}, w));
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "weight_ih must have shape") != NULL, "%s", t.err);
    kt_free(&t);

    /* initial_h of the wrong batch */
    kt_init(&t, MIL_OP_GRU, 2);
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP32, 3, (int64_t[]){3, 2, 1}, x));
    kt_bind(&t, kt_slot(&t, "initial_h"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){1, 1}, s));
    kt_bind(&t, kt_slot(&t, "weight_ih"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){3, 1}, w));
    kt_bind(&t, kt_slot(&t, "weight_hh"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){3, 1}, w));
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "initial_h") != NULL, "%s", t.err);
    kt_free(&t);
}

/* ------------------------------------------------ end to end: the corpus decoder */

static uint64_t e2e_rng = 0x9E3779B97F4A7C15ull;
static double e2e_next(void) { /* uniform [-0.5, 0.5) */
    e2e_rng ^= e2e_rng << 13;
    e2e_rng ^= e2e_rng >> 7;
    e2e_rng ^= e2e_rng << 17;
    return (double)(e2e_rng >> 11) * 0x1p-53 - 0.5;
}

/* fp16 values (stored) and their float images */
static uint16_t *e2e_blob(int64_t n, double scale, float **img) {
    uint16_t *h = malloc((size_t)n * 2);
    *img = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        h[i] = mil_f2h((float)(e2e_next() * scale));
        (*img)[i] = mil_h2f(h[i]);
    }
    return h;
}

static void write_npy(const char *path, const char *descr, const char *shape, const void *data, size_t nb) {
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint16_t hl = (uint16_t)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hl & 0xff, f);
    fputc(hl >> 8, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, nb, f);
    fclose(f);
}

/* FluidAudio's Parakeet EOU decoder (gather -> lstm(640) -> outputs) lowers and
 * runs on the CPU device with synthetic weights written at its BLOBFILE
 * offsets, and its outputs match a float64 LSTM computed here. */
Test(rnn_kernels, e2e_parakeet_decoder) {
    const char *dir = tu_corpus_dir();
    if (!dir) return;
    enum { V = 1027, H = 640, G = 4 * H };
    char *tmp = tu_tmpdir(), cmd[4096], path[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/m/weights %s/out && cp %s/FluidAudio__ParakeetEOU_1280ms__decoder.mil %s/m/model.mil",
             tmp, tmp, dir, tmp);
    cr_assert_eq(system(cmd), 0);
    float *emb, *wih, *whh, *bias;
    uint16_t *he = e2e_blob((int64_t)V * H, 1.0, &emb), *hi = e2e_blob((int64_t)G * H, 0.1, &wih),
             *hh = e2e_blob((int64_t)G * H, 0.1, &whh), *hb = e2e_blob(G, 1.0, &bias);
    MilRtErr e;
    snprintf(path, sizeof path, "%s/m/weights/weight.bin", tmp);
    MilRtBlobWriter *w = mil_rt_blob_writer_open(path, &e);
    cr_assert_not_null(w, "%s", e.msg);
    uint64_t off[4];
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP16, he, (int64_t)V * H, &off[0], &e), 0);
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP16, hi, (int64_t)G * H, &off[1], &e), 0);
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP16, hh, (int64_t)G * H, &off[2], &e), 0);
    cr_assert_eq(mil_rt_blob_writer_append(w, MIL_DT_FP16, hb, G, &off[3], &e), 0);
    cr_assert_eq(mil_rt_blob_writer_close(w, &e), 0);
    cr_assert(off[0] == 64 && off[1] == 1314688 && off[2] == 4591552 && off[3] == 7868416,
              "offsets %llu %llu %llu %llu", (unsigned long long)off[0], (unsigned long long)off[1],
              (unsigned long long)off[2], (unsigned long long)off[3]);
    float hin[H], cin[H];
    for (int j = 0; j < H; j++) { hin[j] = (float)e2e_next(); cin[j] = (float)(2 * e2e_next()); }
    int32_t target = 517, tlen = 1;
    snprintf(path, sizeof path, "%s/h.npy", tmp);
    write_npy(path, "<f4", "(1, 1, 640)", hin, sizeof hin);
    snprintf(path, sizeof path, "%s/c.npy", tmp);
    write_npy(path, "<f4", "(1, 1, 640)", cin, sizeof cin);
    snprintf(path, sizeof path, "%s/t.npy", tmp);
    write_npy(path, "<i4", "(1, 1)", &target, 4);
    snprintf(path, sizeof path, "%s/l.npy", tmp);
    write_npy(path, "<i4", "(1,)", &tlen, 4);
    /* the summary run (random inputs) and the checked run */
    snprintf(cmd, sizeof cmd, "%s --random-inputs 1 --summary %s/m/model.mil", tu_tool("mil-run"), tmp);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err ? err : "");
    cr_expect(out && strstr(out, "decoder") && strstr(out, "h_out") && strstr(out, "c_out"), "%s", out ? out : "");
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s -i h_in=%s/h.npy -i c_in=%s/c.npy -i targets=%s/t.npy -i target_length=%s/l.npy -o %s/out %s/m/model.mil",
             tu_tool("mil-run"), tmp, tmp, tmp, tmp, tmp, tmp);
    err = NULL;
    cr_assert_eq(tu_run(cmd, NULL, &err), 0, "%s", err ? err : "");
    free(err);
    /* reference */
    double hr[H], cr[H];
    for (int j = 0; j < H; j++) {
        double g[4];
        for (int q = 0; q < 4; q++) {
            int64_t row = (int64_t)q * H + j;
            double s = bias[row];
            for (int k = 0; k < H; k++)
                s += (double)wih[row * H + k] * emb[(int64_t)target * H + k] +
                     (double)whh[row * H + k] * mil_h2f(mil_f2h(hin[k]));
            g[q] = s;
        }
        double ig = 1 / (1 + exp(-g[0])), fg = 1 / (1 + exp(-g[1])), og = 1 / (1 + exp(-g[2])), zg = tanh(g[3]);
        cr[j] = fg * mil_h2f(mil_f2h(cin[j])) + ig * zg;
        hr[j] = og * tanh(cr[j]);
    }
    static const char *names[3] = {"decoder", "h_out", "c_out"};
    for (int o = 0; o < 3; o++) {
        MilRtTensor t;
        snprintf(path, sizeof path, "%s/out/%s.npy", tmp, names[o]);
        cr_assert_eq(mil_rt_npy_read(path, &t, &e), 0, "%s", e.msg);
        cr_assert_eq(t.dtype, MIL_DT_FP32);
        cr_assert_eq(mil_rt_numel(&t), H);
        const double *ref = o == 2 ? cr : hr;
        int bad = 0;
        for (int j = 0; j < H && bad < 3; j++) {
            double got = ((float *)t.data)[j];
            if (fabs(got - ref[j]) > 1e-3 + 1e-3 * fabs(ref[j])) {
                cr_expect(false, "%s[%d]: got %.6f, want %.6f", names[o], j, got, ref[j]);
                bad++;
            }
        }
        mil_rt_tensor_free(&t);
    }
    free(he); free(hi); free(hh); free(hb); free(emb); free(wih); free(whh); free(bias);
    tu_rmrf(tmp);
    free(tmp);
}

/* ------------------------------------------------------------------ k_extra.c */

Test(extra_kernels, einsum) { cr_expect_geq(run_op_cases("einsum"), 22); }
Test(extra_kernels, upsample_bilinear) { cr_expect_geq(run_op_cases("upsample_bilinear"), 33); }
Test(extra_kernels, l2_pool) { cr_expect_geq(run_op_cases("l2_pool"), 9); }
Test(extra_kernels, sliding_windows) { cr_expect_geq(run_op_cases("sliding_windows"), 15); }

Test(extra_kernels, checks_can_fail) {
    cr_expect(perturbed_case_fails(MIL_OP_EINSUM, "../fixtures_rnn/einsum_0_f32", 1e-3f));
    cr_expect(perturbed_case_fails(MIL_OP_UPSAMPLE_BILINEAR, "../fixtures_rnn/upbil_1_hp_f32", 1e-3f));
    cr_expect(perturbed_case_fails(MIL_OP_L2_POOL, "../fixtures_rnn/l2_same_f32", 1e-3f));
    cr_expect(perturbed_case_fails(MIL_OP_SLIDING_WINDOWS, "../fixtures_rnn/sw_1_f32", 1e-3f));
}

static int einsum_shape_err(const char *eq, int n, KT *t) {
    float v[12] = {0};
    kt_init(t, MIL_OP_EINSUM, 1);
    kt_str(t, "equation", eq);
    for (int i = 0; i < n; i++)
        kt_bind(t, kt_slot(t, "values"), kt_tensor(t, MIL_DT_FP32, 2, (int64_t[]){3, 4}, v));
    return kt_shape(t);
}

Test(extra_kernels, negative) {
    KT t;
    static const struct { const char *eq; int n; const char *needle; } bad[] = {
        {"...ij,jk->ik", 2, "ellipsis"}, {"ij,jk->ik", 2, "sizes"}, {"ij->k", 1, "does not appear"},
        {"ijk->i", 1, "rank"}, {"ij,ij,ij", 2, "terms"}, {"ij->ii", 1, "repeated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(einsum_shape_err(bad[i].eq, bad[i].n, &t), MIL_K_ERROR, "%s", bad[i].eq);
        cr_expect(strstr(t.err, bad[i].needle) != NULL, "%s: %s", bad[i].eq, t.err);
        kt_free(&t);
    }
    float x[12] = {0};
    kt_init(&t, MIL_OP_SLIDING_WINDOWS, 1);
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){3, 4}, x));
    kt_i32(&t, "axis", 1);
    kt_i32(&t, "size", 5);
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "larger than the axis") != NULL, "%s", t.err);
    kt_free(&t);

    kt_init(&t, MIL_OP_UPSAMPLE_BILINEAR, 1);
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP32, 2, (int64_t[]){3, 4}, x));
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "rank") != NULL, "%s", t.err);
    kt_free(&t);

    kt_init(&t, MIL_OP_L2_POOL, 1);
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP32, 3, (int64_t[]){1, 3, 4}, x));
    kt_i32v(&t, "kernel_sizes", 1, (int32_t[]){5});
    kt_str(&t, "pad_type", "valid");
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "no valid output") != NULL, "%s", t.err);
    kt_free(&t);
}

/* Every new op lowers and runs through mil-run (verifier, shape inference, planner). */
static const char *ops_prog =
    "program(1.0)\n"
    "[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{\"coremlc-version\", \"3500.32.1\"}})]\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [2, 3, 4, 5]> a, tensor<fp32, [2, 5, 4, 3]> b, tensor<fp32, [4, 2, 3]> s) {\n"
    "            tensor<string, []> eq = const()[name = tensor<string, []>(\"eq\"), val = tensor<string, []>(\"nchw,nwhu->nchu\")];\n"
    "            tensor<fp32, [2, 3, 4, 3]> e = einsum(equation = eq, values = (a, b))[name = tensor<string, []>(\"e\")];\n"
    "            tensor<fp32, []> sh = const()[name = tensor<string, []>(\"sh\"), val = tensor<fp32, []>(2.0)];\n"
    "            tensor<bool, []> ac = const()[name = tensor<string, []>(\"ac\"), val = tensor<bool, []>(false)];\n"
    "            tensor<fp32, [2, 3, 8, 6]> u = upsample_bilinear(x = e, scale_factor_height = sh, scale_factor_width = sh, align_corners = ac)[name = tensor<string, []>(\"u\")];\n"
    "            tensor<int32, [2]> ks = const()[name = tensor<string, []>(\"ks\"), val = tensor<int32, [2]>([2, 2])];\n"
    "            tensor<string, []> pt = const()[name = tensor<string, []>(\"pt\"), val = tensor<string, []>(\"valid\")];\n"
    "            tensor<fp32, [2, 3, 4, 3]> l = l2_pool(x = u, kernel_sizes = ks, strides = ks, pad_type = pt)[name = tensor<string, []>(\"l\")];\n"
    "            tensor<int32, []> ax = const()[name = tensor<string, []>(\"ax\"), val = tensor<int32, []>(2)];\n"
    "            tensor<int32, []> sz = const()[name = tensor<string, []>(\"sz\"), val = tensor<int32, []>(2)];\n"
    "            tensor<fp32, [2, 3, 3, 2, 3]> w = sliding_windows(x = l, axis = ax, size = sz)[name = tensor<string, []>(\"w\")];\n"
    "            tensor<fp32, [2, 3]> h0 = const()[name = tensor<string, []>(\"h0\"), val = tensor<fp32, [2, 3]>([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])];\n"
    "            tensor<fp32, [9, 3]> wi = const()[name = tensor<string, []>(\"wi\"), val = tensor<fp32, [9, 3]>([[0.1, 0.2, 0.0], [0.1, 0.2, 0.1], [0.1, 0.2, 0.2], [0.1, 0.2, 0.3], [0.1, 0.2, 0.4], [0.1, 0.2, 0.5], [0.1, 0.2, 0.6], [0.1, 0.2, 0.7], [0.1, 0.2, 0.8]])];\n"
    "            tensor<bool, []> sq = const()[name = tensor<string, []>(\"sq\"), val = tensor<bool, []>(true)];\n"
    "            tensor<fp32, [4, 2, 3]> g0, tensor<fp32, [2, 3]> g1 = gru(x = s, initial_h = h0, weight_ih = wi, weight_hh = wi, output_sequence = sq)[name = tensor<string, []>(\"g\")];\n"
    "            tensor<fp32, [3, 3]> w3 = const()[name = tensor<string, []>(\"w3\"), val = tensor<fp32, [3, 3]>([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])];\n"
    "            tensor<fp32, [1, 2, 3]> r0, tensor<fp32, [2, 3]> r1 = rnn(x = s, initial_h = h0, weight_ih = w3, weight_hh = w3)[name = tensor<string, []>(\"r\")];\n"
    "        } -> (w, g0, g1, r0);\n"
    "}\n";

Test(extra_kernels, e2e_mil_run_all_new_ops) {
    char *tmp = tu_tmpdir(), path[1024], cmd[2048];
    snprintf(path, sizeof path, "%s/p.mil", tmp);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(ops_prog, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s --random-inputs 1 --summary %s", tu_tool("mil-run"), path);
    char *out = NULL, *err = NULL;
    cr_assert_eq(tu_run(cmd, &out, &err), 0, "%s", err ? err : "");
    cr_expect(out && strstr(out, "w: fp32 [2, 3, 3, 2, 3]") && strstr(out, "g0: fp32 [4, 2, 3]") &&
              strstr(out, "g1: fp32 [2, 3]") && strstr(out, "r0: fp32 [1, 2, 3]"), "%s", out ? out : "");
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}
