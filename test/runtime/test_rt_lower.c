/* test/runtime/test_rt_lower.c -- backend/lower.c: IR -> runtime program.
 * Constants (inline, BLOBFILE incl. sub-byte), argument slots, materialised
 * defaults, constexpr evaluation (iOS16 attributes and iOS18 inputs),
 * unsupported ops and errors with locations. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp;
static MilDiag d;
static MilProgram *prog;
static MilRtDevice *dev;

static void setup(void) {
    tmp = tu_tmpdir();
    mil_diag_init(&d);
    prog = NULL;
    MilRtErr e;
    dev = mil_rt_device_new("cpu", &e);
}
static void teardown(void) {
    mil_program_free(prog);
    mil_diag_free(&d);
    mil_rt_device_free(dev);
    tu_rmrf(tmp);
    free(tmp);
}

TestSuite(lower, .init = setup, .fini = teardown);

#define HEAD "program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n"

static MilRtProgram *lower_text(const char *text, const MilLowerOptions *opt) {
    prog = mil_parse("t.mil", text, strlen(text), NULL, &d);
    cr_assert(prog, "parse failed");
    MilLowerOptions o = opt ? *opt : (MilLowerOptions){0};
    if (!o.device) o.device = dev;
    if (!o.model_dir) o.model_dir = tmp;
    return mil_lower(prog, &o, &d);
}

static const char *diag(int i) {
    static char buf[1024];
    mil_diag_format(&d, i, buf, sizeof buf);
    return buf;
}

static const MilRtOp *find_op(const MilRtFunc *f, MilOpKind k) {
    for (int i = 0; i < f->nops; i++)
        if (f->ops[i].kind == k) return &f->ops[i];
    return NULL;
}

static const MilRtValue *slot_value(const MilRtFunc *f, const MilRtOp *op, int s) {
    const int *ids;
    int n = mil_rt_op_slot(op, s, &ids);
    return n == 1 ? &f->values[ids[0]] : NULL;
}

Test(lower, slots_literals_and_defaults) {
    MilRtProgram *rp = lower_text(HEAD
        "    func main<ios18>(tensor<fp32, [2, 3]> x) {\n"
        "            tensor<fp32, [2, 3]> a = add(x = x, y = tensor<fp32, [1]>([-0x1p+0]))[name = string(\"a\")];\n"
        "            tensor<fp32, [2, 3]> s = softmax(x = a)[name = string(\"s\")];\n"
        "            tensor<fp32, [2, 3]> g = gelu(x = s)[name = string(\"g\")];\n"
        "        } -> (g, s);\n}\n", NULL);
    cr_assert(rp, "%s", diag(0));
    MilRtFunc *f = rp->funcs[0];
    MilRtErr e;
    cr_assert_eq(mil_rt_func_validate(f, &e), 0, "%s", e.msg);
    cr_assert_eq(f->nops, 3);
    cr_assert_eq(f->ninputs, 1);
    cr_assert_eq(f->noutputs, 2);
    cr_assert_str_eq(f->values[f->outputs[1]].name, "s");
    const MilRtOp *add = find_op(f, MIL_OP_ADD);
    cr_assert_eq(add->line, 5);
    cr_assert_str_eq(add->name, "a");
    const MilRtValue *y = slot_value(f, add, MIL_A_ADD_y);
    cr_assert(y && y->kind == MIL_RT_CONST);
    cr_assert_str_eq(y->name, "a.y");
    cr_assert_eq(((const float *)y->data)[0], -1.0f);
    const MilRtValue *ax = slot_value(f, find_op(f, MIL_OP_SOFTMAX), MIL_A_SOFTMAX_axis);
    cr_assert(ax && ax->kind == MIL_RT_CONST && ax->dtype == MIL_DT_INT32 && ax->rank == 0);
    cr_assert_eq(*(const int32_t *)ax->data, -1);
    const MilRtValue *mode = slot_value(f, find_op(f, MIL_OP_GELU), MIL_A_GELU_mode);
    cr_assert(mode && mode->dtype == MIL_DT_STRING);
    cr_assert_str_eq(*(const char *const *)mode->data, "EXACT");
    /* the runtime program does not depend on the IR */
    mil_program_free(prog);
    prog = NULL;
    float xv[6] = {1, 2, 3, 1, 1, 1};
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 2, .dims = {2, 3}, .data = xv}, out[2];
    cr_assert_eq(mil_rt_run_once(dev, f, &in, out, &e), 0, "%s", e.msg);
    cr_assert_float_eq(((float *)out[1].data)[3], 1.0f / 3, 1e-6);
    mil_rt_tensor_free(&out[0]);
    mil_rt_tensor_free(&out[1]);
    mil_rt_program_free(rp);
}

Test(lower, no_defaults_leaves_slots_absent) {
    MilLowerOptions o = {.no_defaults = true};
    MilRtProgram *rp = lower_text(HEAD
        "    func main<ios18>(tensor<fp32, [2, 3]> x) {\n"
        "            tensor<fp32, [2, 3]> s = softmax(x = x)[name = string(\"s\")];\n"
        "        } -> (s);\n}\n", &o);
    cr_assert(rp);
    const int *ids;
    cr_assert_eq(mil_rt_op_slot(find_op(rp->funcs[0], MIL_OP_SOFTMAX), MIL_A_SOFTMAX_axis, &ids), 0);
    mil_rt_program_free(rp);
}

Test(lower, constexpr_ios16_attributes_evaluated) {
    MilRtProgram *rp = lower_text(HEAD
        "    func main<ios16>(tensor<fp32, [2, 3]> x) {\n"
        "            tensor<fp32, [2, 3]> w = constexpr_affine_dequantize()[axis = int32(0), name = string(\"w\"), "
        "quantized_data = tensor<uint8, [2, 3]>([[1, 2, 3], [4, 5, 6]]), scale = tensor<fp32, [2]>([0x1p-1, 0x1p+1]), "
        "zero_point = tensor<uint8, [2]>([1, 2])];\n"
        "            tensor<fp32, [2, 3]> y = add(x = x, y = w)[name = string(\"y\")];\n"
        "        } -> (y);\n}\n", NULL);
    cr_assert(rp, "%s", diag(0));
    MilRtFunc *f = rp->funcs[0];
    cr_assert_eq(f->nops, 1, "constexpr ops do not reach the device");
    int w = mil_rt_func_find_value(f, "w");
    cr_assert(w >= 0 && f->values[w].kind == MIL_RT_CONST);
    static const float want[6] = {0, 0.5f, 1, 4, 6, 8};
    for (int i = 0; i < 6; i++) cr_assert_eq(((const float *)f->values[w].data)[i], want[i], "w[%d]", i);
    mil_rt_program_free(rp);
}

Test(lower, constexpr_ios18_with_int4_blobfile) {
    char wd[1200], wp[1300];
    snprintf(wd, sizeof wd, "%s/weights", tmp);
    cr_assert_eq(mkdir(wd, 0777), 0);
    snprintf(wp, sizeof wp, "%s/w.bin", wd);
    MilRtErr e;
    MilRtBlobWriter *bw = mil_rt_blob_writer_open(wp, &e);
    int8_t q[8] = {-8, -1, 0, 7, 1, 2, 3, -3};
    float pad[3] = {9, 9, 9};
    uint64_t m0, m1;
    mil_rt_blob_writer_append(bw, MIL_DT_FP32, pad, 3, &m0, &e);  /* q is the second record */
    cr_assert_eq(mil_rt_blob_writer_append(bw, MIL_DT_INT4, q, 8, &m1, &e), 0, "%s", e.msg);
    mil_rt_blob_writer_close(bw, &e);
    char text[2048];
    snprintf(text, sizeof text, HEAD
        "    func main<ios18>(tensor<fp32, [2, 4]> x) {\n"
        "            tensor<int4, [2, 4]> q = const()[name = string(\"q\"), val = tensor<int4, [2, 4]>(BLOBFILE(path = "
        "string(\"@model_path/weights/w.bin\"), offset = uint64(%llu)))];\n"
        "            tensor<fp32, [2, 1]> s = const()[name = string(\"s\"), val = tensor<fp32, [2, 1]>([[0x1p-1], [0x1p+1]])];\n"
        "            tensor<fp32, [2, 4]> w = constexpr_blockwise_shift_scale(data = q, scale = s)[name = string(\"w\")];\n"
        "            tensor<fp32, [2, 4]> y = add(x = x, y = w)[name = string(\"y\")];\n"
        "        } -> (y);\n}\n", (unsigned long long)m1);
    MilRtProgram *rp = lower_text(text, NULL);
    cr_assert(rp, "%s", diag(0));
    MilRtFunc *f = rp->funcs[0];
    int w = mil_rt_func_find_value(f, "w");
    static const float want[8] = {-4, -0.5f, 0, 3.5f, 2, 4, 6, -6};
    for (int i = 0; i < 8; i++) cr_assert_eq(((const float *)f->values[w].data)[i], want[i], "w[%d]", i);
    mil_rt_program_free(rp);
}

Test(lower, blobfile_dtype_mismatch_reported_at_the_const) {
    char wd[1200], wp[1300];
    snprintf(wd, sizeof wd, "%s/weights", tmp);
    mkdir(wd, 0777);
    snprintf(wp, sizeof wp, "%s/weight.bin", wd);
    MilRtErr e;
    MilRtBlobWriter *bw = mil_rt_blob_writer_open(wp, &e);
    uint16_t h[4] = {0};
    mil_rt_blob_writer_append(bw, MIL_DT_FP16, h, 4, NULL, &e);
    mil_rt_blob_writer_close(bw, &e);
    MilRtProgram *rp = lower_text(HEAD
        "    func main<ios18>(tensor<fp32, [4]> x) {\n"
        "            tensor<fp32, [4]> w = const()[name = string(\"w\"), val = tensor<fp32, [4]>(BLOBFILE(path = "
        "string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];\n"
        "            tensor<fp32, [4]> y = add(x = x, y = w)[name = string(\"y\")];\n"
        "        } -> (y);\n}\n", NULL);
    cr_assert_null(rp);
    cr_assert_eq(d.nerrors, 1);
    char want[1500];
    snprintf(want, sizeof want, "t.mil:5:35: error: %s: blob at offset 64 has dtype fp16 but the constant is fp32", wp);
    cr_assert_str_eq(diag(0), want);
}

Test(lower, unsupported_ops_all_reported) {
    MilRtProgram *rp = lower_text(HEAD
        "    func main<ios18>(tensor<fp32, [4]> x) {\n"
        "            tensor<int32, [?, 1]> a = non_zero(x = x)[name = string(\"a\")];\n"
        "            tensor<fp32, [4]> b = relu(x = x)[name = string(\"b\")];\n"
        "            tensor<fp32, [?, 1]> c = cast(dtype = string(\"fp32\"), x = a)[name = string(\"c\")];\n"
        "            tensor<int32, [?, 1]> e = non_zero(x = b)[name = string(\"e\")];\n"
        "        } -> (c, e);\n}\n", NULL);
    cr_assert_null(rp);
    cr_assert_eq(d.nerrors, 2, "%d errors: %s", d.nerrors, diag(0));
    cr_assert_str_eq(diag(0), "t.mil:5:39: error: op 'non_zero' is not supported by the cpu device");
    cr_assert_str_eq(diag(1), "t.mil:8:39: error: op 'non_zero' is not supported by the cpu device");
}

Test(lower, constexpr_result_type_checked) {
    MilRtProgram *rp = lower_text(HEAD
        "    func main<ios16>(tensor<fp32, [2, 3]> x) {\n"
        "            tensor<fp16, [2, 3]> w = constexpr_cast()[name = string(\"w\"), output_dtype = string(\"fp32\"), "
        "source_val = tensor<fp16, [2, 3]>([[1, 2, 3], [4, 5, 6]])];\n"
        "        } -> (w);\n}\n", NULL);
    cr_assert_null(rp);
    cr_assert_str_eq(diag(0), "t.mil:5:38: error: op 'constexpr_cast': result 'w' is declared fp16 [2, 3] but evaluates "
                              "to fp32 [2, 3]");
}

Test(lower, function_filter_and_state_inputs) {
    MilLowerOptions o = {.function = "b"};
    MilRtProgram *rp = lower_text(HEAD
        "    func a<ios18>(tensor<fp32, [4]> x) {\n"
        "            tensor<int32, [?, 1]> z = non_zero(x = x)[name = string(\"z\")];\n"
        "        } -> (z);\n"
        "    func b<ios18>(tensor<fp32, [4]> x) {\n"
        "            tensor<fp32, [4]> y = relu(x = x)[name = string(\"y\")];\n"
        "        } -> (y);\n}\n", &o);
    cr_assert(rp, "only b is lowered: %s", diag(0));
    cr_assert_eq(rp->nfuncs, 1);
    cr_assert_str_eq(rp->funcs[0]->name, "b");
    mil_rt_program_free(rp);
    o.function = "c";
    MilRtProgram *r2 = mil_lower(prog, &(MilLowerOptions){.function = "c", .device = dev}, &d);
    cr_assert_null(r2);
    cr_assert(strstr(diag(d.n - 1), "no function named 'c'"), "%s", diag(d.n - 1));
}
