/* test/ir/test_print.c -- the canonical printer: programs built with the
 * builder must print exactly as coremlc wrote them (golden strings, and the
 * corpus files themselves when the corpus is present), in both spellings;
 * canonical hex floats for fp16 / fp32 / fp64. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "testutil.h"

/* ------------------------------------------------------------- helpers */

static char *print_prog(const MilProgram *p, MilSpelling sp) {
    size_t n = 0;
    char *s = mil_print(p, sp, &n);
    cr_assert_not_null(s);
    cr_assert_eq(strlen(s), n);
    return s;
}

static void assert_prints(const MilProgram *p, MilSpelling sp, const char *want) {
    char *got = print_prog(p, sp);
    cr_assert_str_eq(got, want, "got:\n%s\nwant:\n%s", got, want);
    free(got);
}

/* When the real corpus is present, the golden string must be the file. */
static void assert_corpus_file(const char *name, const char *want) {
    const char *dir = tu_corpus_dir();
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = 0;
    char *file = tu_read_file(path, &n);
    cr_assert_not_null(file, "cannot read %s", path);
    cr_assert_str_eq(want, file, "golden differs from %s", name);
    free(file);
}

/* The golden `want` is how p prints in its own spelling, and the corpus
 * file `name` when the corpus is present. */
static void assert_golden(const MilProgram *p, const char *want, const char *name) {
    assert_prints(p, MIL_SPELLING_SAME, want);
    assert_corpus_file(name, want);
}

static const MilType *tensor(MilProgram *p, MilDType dt, int rank, const int64_t *dims) {
    return mil_type_tensor(p, dt, rank, dims);
}

static MilConst *str(MilProgram *p, const char *s) { return mil_const_string(p, s); }

static void set_build_info(MilProgram *p, int n, const char *const *kv) {
    const MilType *s = mil_type_scalar(p, MIL_DT_STRING);
    MilConst *items[16];
    for (int i = 0; i < 2 * n; i++) items[i] = str(p, kv[i]);
    mil_program_set_attr(p, "buildInfo",
                         mil_const_aggregate(p, MIL_CONST_DICT, mil_type_dict(p, s, s), 2 * n, items));
}

/* A program of `version` whose buildInfo holds the n key / value pairs kv. */
static MilProgram *new_program(const char *version, int n, const char *const *kv) {
    MilProgram *p = mil_program_new(version);
    set_build_info(p, n, kv);
    return p;
}

/* Gives op its one result and appends it to f's body. */
static MilValue *append(MilFunc *f, MilOp *op, const MilType *t, const char *res) {
    MilValue *v = mil_op_add_result(op, t, res);
    mil_block_append(&f->body, op);
    return v;
}

static MilConst *i32_vec(MilProgram *p, int n, const int32_t *v) {
    int64_t d[] = { n };
    return mil_const_tensor(p, tensor(p, MIL_DT_INT32, 1, d), v, n);
}

/* FlexibleShapeInformation with DefaultShapes {name: dflt} and RangeDims
 * {name: [[lo, hi], ...]} (mlmodelc-export / FluidAudio shape). */
static MilConst *flexible_info(MilProgram *p, const char *name, int rank, const int32_t *dflt, const int32_t *ranges) {
    const MilType *s = mil_type_scalar(p, MIL_DT_STRING);
    int64_t unk[] = { MIL_DIM_UNKNOWN }, two[] = { 2 };
    const MilType *shape_t = tensor(p, MIL_DT_INT32, 1, unk);
    const MilType *pair_t = tensor(p, MIL_DT_INT32, 1, two);
    const MilType *list_t = mil_type_list(p, pair_t, -1);
    const MilType *d1 = mil_type_dict(p, s, shape_t), *d2 = mil_type_dict(p, s, list_t);
    const MilType *t1 = mil_type_tuple(p, 2, (const MilType *[]){ s, d1 });
    const MilType *t2 = mil_type_tuple(p, 2, (const MilType *[]){ s, d2 });
    const MilType *top = mil_type_tuple(p, 2, (const MilType *[]){ t1, t2 });

    MilConst *dd[] = { str(p, name), i32_vec(p, rank, dflt) };
    MilConst *dict1 = mil_const_aggregate(p, MIL_CONST_DICT, d1, 2, dd);
    MilConst *pairs[MIL_MAX_RANK];
    for (int i = 0; i < rank; i++) pairs[i] = i32_vec(p, 2, ranges + 2 * i);
    MilConst *lst = mil_const_aggregate(p, MIL_CONST_LIST, list_t, rank, pairs);
    MilConst *rd[] = { str(p, name), lst };
    MilConst *dict2 = mil_const_aggregate(p, MIL_CONST_DICT, d2, 2, rd);
    MilConst *tup1 = mil_const_aggregate(p, MIL_CONST_TUPLE, t1, 2, (MilConst *[]){ str(p, "DefaultShapes"), dict1 });
    MilConst *tup2 = mil_const_aggregate(p, MIL_CONST_TUPLE, t2, 2, (MilConst *[]){ str(p, "RangeDims"), dict2 });
    return mil_const_aggregate(p, MIL_CONST_TUPLE, top, 2, (MilConst *[]){ tup1, tup2 });
}

/* ---------------------------------------------- coremltools add_model */

static const char ADD_MODEL_10[] =
    "program(1.0)\n"
    "[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{\"coremlc-component-MIL\", \"3402.3.2\"}, "
    "{\"coremlc-version\", \"3402.4.1\"}, {\"coremltools-component-torch\", \"2.5.1\"}, "
    "{\"coremltools-source-dialect\", \"TorchScript\"}, {\"coremltools-version\", \"8.1\"}})]\n"
    "{\n"
    "    func main<ios16>(tensor<fp16, [1, 10]> x, tensor<fp16, [1, 10]> y) {\n"
    "            tensor<fp16, [1, 10]> var_3 = mul(x = x, y = y)[name = tensor<string, []>(\"op_3_cast_fp16\")];\n"
    "        } -> (var_3);\n"
    "}\n";

static MilProgram *build_add_model(void) {
    /* dict entries print in the order given (coremlc's sorted order here) */
    const char *kv[] = { "coremlc-component-MIL", "3402.3.2", "coremlc-version", "3402.4.1",
                         "coremltools-component-torch", "2.5.1", "coremltools-source-dialect", "TorchScript",
                         "coremltools-version", "8.1" };
    MilProgram *p = new_program("1.0", 5, kv);
    p->trailing_newline = true;
    int64_t d[] = { 1, 10 };
    const MilType *t = tensor(p, MIL_DT_FP16, 2, d);
    MilFunc *f = mil_func_new(p, "main", "ios16");
    MilValue *x = mil_func_add_param(f, t, "x");
    MilValue *y = mil_func_add_param(f, t, "y");
    MilOp *op = mil_op_new(f, MIL_OP_MUL, NULL);
    mil_op_add_arg(op, "y", y); /* out of order: printed sorted */
    mil_op_add_arg(op, "x", x);
    mil_op_set_attr(op, "name", str(p, "op_3_cast_fp16"));
    MilValue *r = append(f, op, t, "var_3");
    mil_func_add_output(f, r);
    return p;
}

Test(print, add_model_1_0_byte_for_byte) {
    MilProgram *p = build_add_model();
    assert_prints(p, MIL_SPELLING_SAME, ADD_MODEL_10);
    assert_prints(p, MIL_SPELLING_1_0, ADD_MODEL_10);
    assert_corpus_file("coremltools__ModelRunner__add_model.mil", ADD_MODEL_10);
    mil_program_free(p);
}

Test(print, add_model_in_1_3_spelling) {
    MilProgram *p = build_add_model();
    p->trailing_newline = false;
    assert_prints(p, MIL_SPELLING_1_3,
                  "program(1.3)\n"
                  "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3402.3.2\"}, "
                  "{\"coremlc-version\", \"3402.4.1\"}, {\"coremltools-component-torch\", \"2.5.1\"}, "
                  "{\"coremltools-source-dialect\", \"TorchScript\"}, {\"coremltools-version\", \"8.1\"}})]\n"
                  "{\n"
                  "    func main<ios16>(tensor<fp16, [1, 10]> x, tensor<fp16, [1, 10]> y) {\n"
                  "            tensor<fp16, [1, 10]> var_3 = mul(x = x, y = y)[name = string(\"op_3_cast_fp16\")];\n"
                  "        } -> (var_3);\n"
                  "}");
    mil_program_free(p);
}

/* ------------------------------------------- mlmodelc-export flexible-gather */

static const char FLEX_GATHER[] =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3520.4.1\"}, {\"coremlc-version\", \"3520.5.1\"}})]\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [3, 2]> data, tensor<int32, [?, ?]> indices) [FlexibleShapeInformation = "
    "tuple<tuple<string, dict<string, tensor<int32, [?]>>>, tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>>"
    "(((\"DefaultShapes\", {{\"indices\", [2, 4]}}), (\"RangeDims\", {{\"indices\", [[0, 2], [0, 4]]}})))] {\n"
    "            tensor<int32, [?, ?]> output_idx_i32 = cast(dtype = string(\"int32\"), x = indices);\n"
    "            int32 output_gsz = const()[val = int32(3)];\n"
    "            int32 output_gszm1 = const()[val = int32(2)];\n"
    "            int32 output_gz = const()[val = int32(0)];\n"
    "            tensor<bool, [?, ?]> output_gneg = less(x = output_idx_i32, y = output_gz);\n"
    "            tensor<int32, [?, ?]> output_gnegi = cast(dtype = string(\"int32\"), x = output_gneg);\n"
    "            tensor<int32, [?, ?]> output_goff = mul(x = output_gnegi, y = output_gsz);\n"
    "            tensor<int32, [?, ?]> output_gwrap = add(x = output_idx_i32, y = output_goff);\n"
    "            tensor<int32, [?, ?]> output_gmx = maximum(x = output_gwrap, y = output_gz);\n"
    "            tensor<int32, [?, ?]> output_gcl = minimum(x = output_gmx, y = output_gszm1);\n"
    "            tensor<fp32, [?, ?, 2]> output = gather(axis = int32(0), indices = output_gcl, "
    "validate_indices = bool(false), x = data);\n"
    "        } -> (output);\n"
    "}";

static MilValue *unnamed_const(MilFunc *f, const char *res, MilConst *c) {
    MilOp *op = mil_op_new(f, MIL_OP_CONST, NULL);
    mil_op_set_attr(op, "val", c);
    return append(f, op, c->type, res);
}

static MilValue *binop(MilFunc *f, MilOpKind k, const MilType *t, const char *res, MilValue *x, MilValue *y) {
    MilOp *op = mil_op_new(f, k, NULL);
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", y);
    return append(f, op, t, res);
}

static MilValue *cast(MilFunc *f, const MilType *t, const char *res, const char *dt, MilValue *x) {
    MilOp *op = mil_op_new(f, MIL_OP_CAST, NULL);
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg_const(op, "dtype", str(f->prog, dt));
    return append(f, op, t, res);
}

Test(print, flexible_gather_1_3_byte_for_byte) {
    const char *kv[] = { "coremlc-component-MIL", "3520.4.1", "coremlc-version", "3520.5.1" };
    MilProgram *p = new_program("1.3", 2, kv);
    int64_t d32[] = { 3, 2 }, duu[] = { MIL_DIM_UNKNOWN, MIL_DIM_UNKNOWN }, duu2[] = { MIL_DIM_UNKNOWN, MIL_DIM_UNKNOWN, 2 };
    MilFunc *f = mil_func_new(p, "main", "ios17");
    MilValue *data = mil_func_add_param(f, tensor(p, MIL_DT_FP32, 2, d32), "data");
    const MilType *iuu = tensor(p, MIL_DT_INT32, 2, duu), *buu = tensor(p, MIL_DT_BOOL, 2, duu);
    MilValue *indices = mil_func_add_param(f, iuu, "indices");
    mil_func_set_attr(f, "FlexibleShapeInformation",
                      flexible_info(p, "indices", 2, (const int32_t[]){ 2, 4 }, (const int32_t[]){ 0, 2, 0, 4 }));
    MilValue *idx = cast(f, iuu, "output_idx_i32", "int32", indices);
    MilValue *gsz = unnamed_const(f, "output_gsz", mil_const_scalar_int(p, MIL_DT_INT32, 3));
    MilValue *gszm1 = unnamed_const(f, "output_gszm1", mil_const_scalar_int(p, MIL_DT_INT32, 2));
    MilValue *gz = unnamed_const(f, "output_gz", mil_const_scalar_int(p, MIL_DT_INT32, 0));
    MilValue *gneg = binop(f, MIL_OP_LESS, buu, "output_gneg", idx, gz);
    MilValue *gnegi = cast(f, iuu, "output_gnegi", "int32", gneg);
    MilValue *goff = binop(f, MIL_OP_MUL, iuu, "output_goff", gnegi, gsz);
    MilValue *gwrap = binop(f, MIL_OP_ADD, iuu, "output_gwrap", idx, goff);
    MilValue *gmx = binop(f, MIL_OP_MAXIMUM, iuu, "output_gmx", gwrap, gz);
    MilValue *gcl = binop(f, MIL_OP_MINIMUM, iuu, "output_gcl", gmx, gszm1);
    MilOp *g = mil_op_new(f, MIL_OP_GATHER, NULL);
    mil_op_add_arg(g, "x", data);
    mil_op_add_arg(g, "indices", gcl);
    mil_op_add_arg_const(g, "validate_indices", mil_const_scalar_bool(p, false));
    mil_op_add_arg_const(g, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 0));
    mil_func_add_output(f, mil_op_add_result(g, tensor(p, MIL_DT_FP32, 3, duu2), "output"));
    mil_block_append(&f->body, g);

    assert_golden(p, FLEX_GATHER, "mlmodelc-export__fixtures__flexible-gather.mil");
    mil_program_free(p);
}

/* ------------------------------------ FluidAudio TransposeEncoder (1.0 + flex) */

static const char TRANSPOSE_ENC[] =
    "program(1.0)\n"
    "[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{\"coremlc-component-MIL\", \"3405.2.1\"}, "
    "{\"coremlc-version\", \"3404.23.1\"}, {\"coremltools-component-torch\", \"2.5.0\"}, "
    "{\"coremltools-source-dialect\", \"TorchScript\"}, {\"coremltools-version\", \"8.3.0\"}})]\n"
    "{\n"
    "    func main<ios16>(tensor<fp16, [1, ?, ?]> x) [FlexibleShapeInformation = "
    "tuple<tuple<tensor<string, []>, dict<tensor<string, []>, tensor<int32, [?]>>>, "
    "tuple<tensor<string, []>, dict<tensor<string, []>, list<tensor<int32, [2]>, ?>>>>"
    "(((\"DefaultShapes\", {{\"x\", [1, 1, 1]}}), (\"RangeDims\", {{\"x\", [[1, 1], [1, 2048], [1, 2048]]}})))] {\n"
    "            tensor<int32, [3]> var_4_perm_0 = const()[name = tensor<string, []>(\"op_4_perm_0\"), "
    "val = tensor<int32, [3]>([0, 2, 1])];\n"
    "            tensor<fp16, [1, ?, ?]> var_4 = transpose(perm = var_4_perm_0, x = x)"
    "[name = tensor<string, []>(\"transpose_0\")];\n"
    "        } -> (var_4);\n"
    "}";

Test(print, transpose_encoder_1_0_byte_for_byte) {
    const char *kv[] = { "coremlc-component-MIL", "3405.2.1", "coremlc-version", "3404.23.1",
                         "coremltools-component-torch", "2.5.0", "coremltools-source-dialect", "TorchScript",
                         "coremltools-version", "8.3.0" };
    MilProgram *p = new_program("1.0", 5, kv);
    int64_t d[] = { 1, MIL_DIM_UNKNOWN, MIL_DIM_UNKNOWN };
    const MilType *t = tensor(p, MIL_DT_FP16, 3, d);
    MilFunc *f = mil_func_new(p, "main", "ios16");
    MilValue *x = mil_func_add_param(f, t, "x");
    mil_func_set_attr(f, "FlexibleShapeInformation",
                      flexible_info(p, "x", 3, (const int32_t[]){ 1, 1, 1 },
                                    (const int32_t[]){ 1, 1, 1, 2048, 1, 2048 }));
    MilOp *c = mil_op_new(f, MIL_OP_CONST, NULL);
    mil_op_set_attr(c, "val", i32_vec(p, 3, (const int32_t[]){ 0, 2, 1 })); /* val before name: sorted */
    mil_op_set_attr(c, "name", str(p, "op_4_perm_0"));
    MilValue *perm = append(f, c, mil_op_attr(c, "val")->val->type, "var_4_perm_0");
    MilOp *tr = mil_op_new(f, MIL_OP_TRANSPOSE, NULL);
    mil_op_add_arg(tr, "x", x);
    mil_op_add_arg(tr, "perm", perm);
    mil_op_set_attr(tr, "name", str(p, "transpose_0"));
    mil_func_add_output(f, mil_op_add_result(tr, t, "var_4"));
    mil_block_append(&f->body, tr);
    assert_golden(p, TRANSPOSE_ENC, "FluidAudio__OptimizationModels__TransposeEncoder.mil");
    mil_program_free(p);
}

/* ---------------------------------------- BLOBFILE in both spellings */

static const char WEIGHTED_13[] =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3600.16.1\"}, {\"coremlc-version\", \"3600.25.1\"}})]\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [4]> input) {\n"
    "            tensor<fp32, [4]> weights = const()[val = tensor<fp32, [4]>(BLOBFILE(path = "
    "string(\"@model_path/weights/weights.bin\"), offset = uint64(64)))];\n"
    "            tensor<fp32, [4]> sum = add(x = input, y = weights);\n"
    "            tensor<fp16, [4]> rounded = cast(dtype = string(\"fp16\"), x = sum);\n"
    "        } -> (rounded);\n"
    "}";

Test(print, blobfile_both_spellings) {
    const char *kv[] = { "coremlc-component-MIL", "3600.16.1", "coremlc-version", "3600.25.1" };
    MilProgram *p = new_program("1.3", 2, kv);
    int64_t d[] = { 4 };
    const MilType *t = tensor(p, MIL_DT_FP32, 1, d), *h = tensor(p, MIL_DT_FP16, 1, d);
    MilFunc *f = mil_func_new(p, "main", "ios17");
    MilValue *in = mil_func_add_param(f, t, "input");
    MilValue *w = unnamed_const(f, "weights", mil_const_blob(p, t, "@model_path/weights/weights.bin", 64));
    MilValue *sum = binop(f, MIL_OP_ADD, t, "sum", in, w);
    mil_func_add_output(f, cast(f, h, "rounded", "fp16", sum));
    assert_golden(p, WEIGHTED_13, "mlmodelc-export__pipeline__weighted__model0.mil");

    char *s10 = print_prog(p, MIL_SPELLING_1_0);
    cr_assert(strncmp(s10, "program(1.0)\n[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{", 71) == 0, "%s", s10);
    cr_assert_not_null(strstr(s10, "            tensor<fp32, [4]> weights = const()[val = tensor<fp32, [4]>(BLOBFILE("
                                   "path = tensor<string, []>(\"@model_path/weights/weights.bin\"), "
                                   "offset = tensor<uint64, []>(64)))];\n"),
                       "%s", s10);
    cr_assert_not_null(strstr(s10, "cast(dtype = tensor<string, []>(\"fp16\"), x = sum);\n"), "%s", s10);
    free(s10);
    mil_program_free(p);
}

/* ----------------------------------- Argmax: 1.0 scalars, two outputs */

static const char ARGMAX_10[] =
    "program(1.0)\n"
    "[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{\"coremlc-component-MIL\", \"3405.2.1\"}, "
    "{\"coremlc-version\", \"3404.23.1\"}, {\"coremltools-component-torch\", \"2.7.1\"}, "
    "{\"coremltools-source-dialect\", \"TorchScript\"}, {\"coremltools-version\", \"8.3.0\"}})]\n"
    "{\n"
    "    func main<ios16>(tensor<fp16, [1025]> logits) {\n"
    "            tensor<int32, []> var_4_axis_0 = const()[name = tensor<string, []>(\"op_4_axis_0\"), "
    "val = tensor<int32, []>(-1)];\n"
    "            tensor<bool, []> var_4_keep_dims_0 = const()[name = tensor<string, []>(\"op_4_keep_dims_0\"), "
    "val = tensor<bool, []>(true)];\n"
    "            tensor<int32, [1]> index = reduce_argmax(axis = var_4_axis_0, keep_dims = var_4_keep_dims_0, "
    "x = logits)[name = tensor<string, []>(\"op_4_cast_fp16\")];\n"
    "            tensor<int32, [1]> reduce_max_0_axes_0 = const()[name = tensor<string, []>(\"reduce_max_0_axes_0\"), "
    "val = tensor<int32, [1]>([-1])];\n"
    "            tensor<bool, []> reduce_max_0_keep_dims_0 = const()[name = tensor<string, []>"
    "(\"reduce_max_0_keep_dims_0\"), val = tensor<bool, []>(true)];\n"
    "            tensor<fp16, [1]> score = reduce_max(axes = reduce_max_0_axes_0, keep_dims = "
    "reduce_max_0_keep_dims_0, x = logits)[name = tensor<string, []>(\"reduce_max_0_cast_fp16\")];\n"
    "        } -> (index, score);\n"
    "}";

static MilValue *named_const(MilFunc *f, const char *res, const char *name, MilConst *c) {
    MilOp *op = mil_op_new(f, MIL_OP_CONST, NULL);
    mil_op_set_attr(op, "name", str(f->prog, name));
    mil_op_set_attr(op, "val", c);
    return append(f, op, c->type, res);
}

Test(print, argmax_1_0_byte_for_byte) {
    const char *kv[] = { "coremlc-component-MIL", "3405.2.1", "coremlc-version", "3404.23.1",
                         "coremltools-component-torch", "2.7.1", "coremltools-source-dialect", "TorchScript",
                         "coremltools-version", "8.3.0" };
    MilProgram *p = new_program("1.0", 5, kv);
    int64_t d[] = { 1025 }, one[] = { 1 };
    MilFunc *f = mil_func_new(p, "main", "ios16");
    MilValue *logits = mil_func_add_param(f, tensor(p, MIL_DT_FP16, 1, d), "logits");
    MilValue *ax = named_const(f, "var_4_axis_0", "op_4_axis_0", mil_const_scalar_int(p, MIL_DT_INT32, -1));
    MilValue *kd = named_const(f, "var_4_keep_dims_0", "op_4_keep_dims_0", mil_const_scalar_bool(p, true));
    MilOp *am = mil_op_new(f, MIL_OP_REDUCE_ARGMAX, NULL);
    mil_op_add_arg(am, "x", logits);
    mil_op_add_arg(am, "keep_dims", kd);
    mil_op_add_arg(am, "axis", ax);
    mil_op_set_attr(am, "name", str(p, "op_4_cast_fp16"));
    MilValue *index = append(f, am, tensor(p, MIL_DT_INT32, 1, one), "index");
    MilValue *axes = named_const(f, "reduce_max_0_axes_0", "reduce_max_0_axes_0", i32_vec(p, 1, (const int32_t[]){ -1 }));
    MilValue *kd2 = named_const(f, "reduce_max_0_keep_dims_0", "reduce_max_0_keep_dims_0", mil_const_scalar_bool(p, true));
    MilOp *rm = mil_op_new(f, MIL_OP_REDUCE_MAX, NULL);
    mil_op_add_arg(rm, "x", logits);
    mil_op_add_arg(rm, "axes", axes);
    mil_op_add_arg(rm, "keep_dims", kd2);
    mil_op_set_attr(rm, "name", str(p, "reduce_max_0_cast_fp16"));
    MilValue *score = append(f, rm, tensor(p, MIL_DT_FP16, 1, one), "score");
    mil_func_add_output(f, index);
    mil_func_add_output(f, score);
    assert_golden(p, ARGMAX_10, "FluidAudio__OptimizationModels__Argmax__b1661f0.mil");

    /* in 1.3 the scalar types and literals lose their tensor wrapper */
    char *s13 = print_prog(p, MIL_SPELLING_1_3);
    cr_assert(strncmp(s13, "program(1.3)\n[buildInfo = dict<string, string>({{", 49) == 0, "%s", s13);
    cr_assert_not_null(strstr(s13, "            int32 var_4_axis_0 = const()[name = string(\"op_4_axis_0\"), "
                                   "val = int32(-1)];\n"), "%s", s13);
    cr_assert_not_null(strstr(s13, "val = tensor<int32, [1]>([-1])];\n"), "%s", s13);
    free(s13);
    mil_program_free(p);
}

/* ---------------------- multi-output, zero-output, variadic, functions */

Test(print, statements_and_functions) {
    MilProgram *p = mil_program_new("1.3");
    MilFunc *f = mil_func_new(p, "main", "ios18");
    int64_t d2[] = { 1, 4 }, d1[] = { 1, 2 }, ds[] = { 1, 1, 4, 64 };
    const MilType *t = tensor(p, MIL_DT_FP16, 2, d1), *t4 = tensor(p, MIL_DT_FP16, 2, d2);
    const MilType *st = mil_type_state(p, tensor(p, MIL_DT_FP16, 4, ds));
    MilValue *x = mil_func_add_param(f, t4, "x");
    MilValue *k = mil_func_add_param(f, st, "k_state");

    MilOp *sp = mil_op_new(f, MIL_OP_SPLIT, NULL);
    mil_op_add_arg(sp, "x", x);
    mil_op_add_arg_const(sp, "num_splits", mil_const_scalar_int(p, MIL_DT_INT32, 2));
    mil_op_add_arg_const(sp, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 1));
    mil_op_set_attr(sp, "name", str(p, "s"));
    MilValue *a0 = mil_op_add_result(sp, t, "a_0");
    MilValue *a1 = mil_op_add_result(sp, t, "a_1");
    mil_block_append(&f->body, sp);

    MilOp *cat = mil_op_new(f, MIL_OP_CONCAT, NULL);
    mil_op_add_arg_tuple(cat, "values", 2, (MilBinding[]){ { .value = a1 }, { .value = a0 } });
    mil_op_add_arg_const(cat, "interleave", mil_const_scalar_bool(p, false));
    mil_op_add_arg_const(cat, "axis", mil_const_scalar_int(p, MIL_DT_INT32, -1));
    MilValue *c = append(f, cat, t4, "c");

    MilOp *ws = mil_op_new(f, MIL_OP_WRITE_STATE, NULL);
    mil_op_add_arg(ws, "input", k);
    mil_op_add_arg(ws, "data", c);
    mil_op_set_attr(ws, "name", str(p, "w"));
    mil_block_append(&f->body, ws);

    MilOp *u = mil_op_new(f, MIL_OP_UNKNOWN, "tensor_buffer_to_tensor");
    u->opset = "ios17";
    mil_op_add_arg(u, "x", c);
    mil_op_set_attr(u, "milId", mil_const_scalar_int(p, MIL_DT_UINT64, 7));
    MilValue *uo = append(f, u, t4, "u");
    mil_func_add_output(f, uo);
    mil_func_add_output(f, a0);

    MilFunc *g = mil_func_new(p, "second", "ios18");
    MilValue *gx = mil_func_add_param(g, mil_type_scalar(p, MIL_DT_FP32), "z");
    MilOp *r = mil_op_new(g, MIL_OP_RELU, NULL);
    mil_op_add_arg(r, "x", gx);
    mil_func_add_output(g, mil_op_add_result(r, mil_type_scalar(p, MIL_DT_FP32), "r"));
    mil_block_append(&g->body, r);

    assert_prints(p, MIL_SPELLING_SAME,
                  "program(1.3)\n"
                  "{\n"
                  "    func main<ios18>(tensor<fp16, [1, 4]> x, state<tensor<fp16, [1, 1, 4, 64]>> k_state) {\n"
                  "            tensor<fp16, [1, 2]> a_0, tensor<fp16, [1, 2]> a_1 = split(axis = int32(1), "
                  "num_splits = int32(2), x = x)[name = string(\"s\")];\n"
                  "            tensor<fp16, [1, 4]> c = concat(axis = int32(-1), interleave = bool(false), "
                  "values = (a_1, a_0));\n"
                  "            write_state(data = c, input = k_state)[name = string(\"w\")];\n"
                  "            tensor<fp16, [1, 4]> u = tensor_buffer_to_tensor<ios17>(x = c)[milId = uint64(7)];\n"
                  "        } -> (u, a_0);\n"
                  "    func second<ios18>(fp32 z) {\n"
                  "            fp32 r = relu(x = z);\n"
                  "        } -> (r);\n"
                  "}");
    /* built in C: no empty line between functions (current coremlc); one
     * only where a function asks for it (the parser records the input's) */
    cr_assert_not(g->blank_before);
    g->blank_before = true;
    size_t n;
    char *s = mil_print(p, MIL_SPELLING_SAME, &n);
    cr_assert(strstr(s, "        } -> (u, a_0);\n\n    func second<ios18>(fp32 z) {\n"), "%s", s);
    free(s);
    /* a function added later follows the style of the last one */
    cr_assert(mil_func_new(p, "third", "ios18")->blank_before);
    mil_program_free(p);
}

/* --------------------------------------------------- literal payloads */

Test(print, literal_payloads) {
    MilProgram *p = mil_program_new("1.3");
    MilFunc *f = mil_func_new(p, "main", "ios17");
    int64_t d23[] = { 2, 3 }, d3[] = { 3 }, d0[] = { 0 }, d20[] = { 2, 0 };
    const float fv[] = { 1.0f, -0.5f, 0.1f, INFINITY, -INFINITY, NAN };
    unnamed_const(f, "m", mil_const_tensor(p, tensor(p, MIL_DT_FP32, 2, d23), fv, 6));
    const uint8_t bv[] = { 1, 0, 1 };
    unnamed_const(f, "b", mil_const_tensor(p, tensor(p, MIL_DT_BOOL, 1, d3), bv, 3));
    const char *sv[] = { "a\"b", "c\\d", "e\nf\x01" };
    unnamed_const(f, "s", mil_const_tensor(p, tensor(p, MIL_DT_STRING, 1, d3), sv, 3));
    unnamed_const(f, "e", mil_const_tensor(p, tensor(p, MIL_DT_INT32, 1, d0), NULL, 0));
    unnamed_const(f, "e2", mil_const_tensor(p, tensor(p, MIL_DT_INT32, 2, d20), NULL, 0));
    unnamed_const(f, "u", mil_const_scalar_int(p, MIL_DT_UINT64, 0));
    *(uint64_t *)f->body.last->attrs[0].val->data = UINT64_MAX;
    unnamed_const(f, "h", mil_const_scalar_float(p, MIL_DT_FP16, -0.0));
    unnamed_const(f, "dbl", mil_const_scalar_float(p, MIL_DT_FP64, 0.125));
    unnamed_const(f, "bf", mil_const_scalar_float(p, MIL_DT_BF16, 1.5));
    unnamed_const(f, "i8", mil_const_scalar_int(p, MIL_DT_INT8, -128));
    const MilType *s = mil_type_scalar(p, MIL_DT_STRING);
    mil_func_set_attr(f, "E", mil_const_aggregate(p, MIL_CONST_DICT, mil_type_dict(p, s, s), 0, NULL));
    const MilType *l5 = mil_type_list(p, s, 2);
    mil_func_set_attr(f, "BackendSupport", mil_const_aggregate(p, MIL_CONST_LIST, l5, 2,
                                                                (MilConst *[]){ str(p, "ane"), str(p, "cpu") }));
    MilOp *em = mil_op_new(f, MIL_OP_UNKNOWN, "probe");
    mil_op_set_attr(em, "v", mil_const_aggregate(p, MIL_CONST_EMPTY, mil_type_scalar(p, MIL_DT_FP16), 0, NULL));
    mil_block_append(&f->body, em);

    assert_prints(p, MIL_SPELLING_SAME,
                  "program(1.3)\n"
                  "{\n"
                  "    func main<ios17>() [BackendSupport = list<string, 2>([\"ane\", \"cpu\"]), "
                  "E = dict<string, string>({})] {\n"
                  "            tensor<fp32, [2, 3]> m = const()[val = tensor<fp32, [2, 3]>([[0x1p+0, -0x1p-1, "
                  "0x1.99999ap-4], [inf, -inf, nan]])];\n"
                  "            tensor<bool, [3]> b = const()[val = tensor<bool, [3]>([true, false, true])];\n"
                  "            tensor<string, [3]> s = const()[val = tensor<string, [3]>([\"a\\\"b\", \"c\\\\d\", "
                  "\"e\\nf\\x01\"])];\n"
                  "            tensor<int32, [0]> e = const()[val = tensor<int32, [0]>([])];\n"
                  "            tensor<int32, [2, 0]> e2 = const()[val = tensor<int32, [2, 0]>([[], []])];\n"
                  "            uint64 u = const()[val = uint64(18446744073709551615)];\n"
                  "            fp16 h = const()[val = fp16(-0x0p+0)];\n"
                  "            fp64 dbl = const()[val = fp64(0x1p-3)];\n"
                  "            bf16 bf = const()[val = bf16(0x1.8p+0)];\n"
                  "            int8 i8 = const()[val = int8(-128)];\n"
                  "            probe()[v = fp16()];\n"
                  "        } -> ();\n"
                  "}");
    mil_program_free(p);
}

Test(print, print_file_matches_string) {
    MilProgram *p = build_add_model();
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cr_assert_eq(mil_print_file(p, MIL_SPELLING_SAME, f), 0);
    fclose(f);
    cr_assert_str_eq(buf, ADD_MODEL_10);
    free(buf);
    mil_program_free(p);
}

/* ------------------------------------------------------- hex floats */

static const char *f16(uint16_t bits) {
    static char buf[4][64];
    static int i;
    char *b = buf[i++ & 3];
    int n = mil_format_fp16(bits, b);
    cr_assert_eq((size_t)n, strlen(b));
    return b;
}

Test(hexfloat, fp16_canonical) {
    cr_assert_str_eq(f16(0x0001), "0x1p-24");     /* smallest subnormal, normalised */
    cr_assert_str_eq(f16(0x0003), "0x1.8p-23");
    cr_assert_str_eq(f16(0x03ff), "0x1.ff8p-15"); /* largest subnormal */
    cr_assert_str_eq(f16(0x0400), "0x1p-14");
    cr_assert_str_eq(f16(0x3c00), "0x1p+0");
    cr_assert_str_eq(f16(0x3c01), "0x1.004p+0");
    cr_assert_str_eq(f16(0xbc00), "-0x1p+0");
    cr_assert_str_eq(f16(0x3800), "0x1p-1");
    cr_assert_str_eq(f16(0x5460), "0x1.18p+6");   /* 70 */
    cr_assert_str_eq(f16(0x0054), "0x1.5p-18");
    cr_assert_str_eq(f16(0x00a8), "0x1.5p-17");
    cr_assert_str_eq(f16(0x7bff), "0x1.ffcp+15"); /* 65504 */
    cr_assert_str_eq(f16(0x0000), "0x0p+0");
    cr_assert_str_eq(f16(0x8000), "-0x0p+0");
    cr_assert_str_eq(f16(0x7c00), "inf");
    cr_assert_str_eq(f16(0xfc00), "-inf");
    cr_assert_str_eq(f16(0x7e00), "nan");
    cr_assert_str_eq(f16(0xfe01), "nan");
}

Test(hexfloat, fp16_all_patterns_parse_back) {
    char buf[64];
    for (uint32_t b = 0; b < 0x10000; b++) {
        mil_format_fp16((uint16_t)b, buf);
        float v = strtof(buf, NULL);
        uint16_t back = mil_f32_to_fp16(v);
        bool isnan16 = (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
        if (isnan16) cr_assert_str_eq(buf, "nan");
        else cr_assert_eq(back, b, "0x%04x -> %s -> 0x%04x", b, buf, back);
    }
}

Test(hexfloat, fp32_fp64_canonical) {
    char b[64];
    const char *spec[] = { "-0x1.e28358p-6", "0x1.f0a3d8p-1", "0x1.388p+13", "0x1.5p-17" };
    for (int i = 0; i < 4; i++) {
        mil_format_fp32(strtof(spec[i], NULL), b);
        cr_assert_str_eq(b, spec[i]);
    }
    mil_format_fp32(0.1f, b);
    cr_assert_str_eq(b, "0x1.99999ap-4");
    mil_format_fp32(ldexpf(1.0f, -149), b); /* smallest fp32 subnormal */
    cr_assert_str_eq(b, "0x1p-149");
    mil_format_fp32(ldexpf(3.0f, -149), b);
    cr_assert_str_eq(b, "0x1.8p-148");
    mil_format_fp32(1e-12f, b);
    cr_assert_str_eq(b, "0x1.197998p-40");
    mil_format_fp32(2.0f, b);
    cr_assert_str_eq(b, "0x1p+1");
    mil_format_fp32(8192.0f + 1024.0f + 512.0f, b);
    cr_assert_str_eq(b, "0x1.3p+13");
    mil_format_fp32(10000.0f, b);
    cr_assert_str_eq(b, "0x1.388p+13");
    mil_format_fp32(-INFINITY, b);
    cr_assert_str_eq(b, "-inf");
    mil_format_fp32(-NAN, b);
    cr_assert_str_eq(b, "nan");
    mil_format_fp64(0.125, b);
    cr_assert_str_eq(b, "0x1p-3");
    mil_format_fp64(0.1, b);
    cr_assert_str_eq(b, "0x1.999999999999ap-4");
    mil_format_fp64(ldexp(1.0, -1074), b);
    cr_assert_str_eq(b, "0x1p-1074");
    mil_format_fp64(-0.0, b);
    cr_assert_str_eq(b, "-0x0p+0");
    int n = mil_format_fp64(-ldexp(1.0 + ldexp(1.0, -52), 1023), b);
    cr_assert_str_eq(b, "-0x1.0000000000001p+1023");
    cr_assert_eq(n, (int)strlen(b));
}
