/* test/runtime/test_kernels_ops.c -- numerical tests of every CPU kernel
 * against the fixtures of test/gen_fixtures.py (NumPy / PyTorch references),
 * plus negative tests (shape errors produce messages) and a few inline cases. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fp16.h"
#include "test_kernels.h"
#include "testutil.h"

static const struct { const char *name; MilOpKind kind; } op_names[] = {
#define OP(id, name, wire, nres, flags) {name, MIL_OP_##id},
#define ARG(op, name, flags, def)
#include "ir/ops.def"
#undef OP
#undef ARG
};

static MilOpKind op_by_name(const char *s) {
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (!strcmp(op_names[i].name, s)) return op_names[i].kind;
    return MIL_OP_UNKNOWN;
}

/* Every fixture case listed in MANIFEST ("<op> <case>"), grouped by family so
 * that a failure names the case. */
static int run_manifest(bool (*want)(MilOpKind)) {
    size_t len;
    char *m = tu_read_file(tu_src("test/runtime/fixtures/MANIFEST"), &len);
    cr_assert_not_null(m, "fixtures/MANIFEST missing: run test/gen_fixtures.py");
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(m, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char op[64], name[128];
        if (sscanf(line, "%63s %127s", op, name) != 2) continue;
        MilOpKind k = op_by_name(op);
        cr_expect(k != MIL_OP_UNKNOWN, "unknown op %s in MANIFEST", op);
        if (!want(k)) continue;
        cr_expect(kt_case(k, name, 0, 0), "case %s (%s) failed", name, op);
        n++;
    }
    free(m);
    return n;
}

static bool fam_eltwise(MilOpKind k) {
    return (k >= MIL_OP_ADD && k <= MIL_OP_CAST);
}
static bool fam_reduce(MilOpKind k) { return k >= MIL_OP_REDUCE_SUM && k <= MIL_OP_ARGSORT; }
static bool fam_norm(MilOpKind k) {
    return (k >= MIL_OP_SOFTMAX && k <= MIL_OP_BAND_PART) || k == MIL_OP_RMS_NORM || k == MIL_OP_SDPA_BACKWARD;
}
static bool fam_linalg(MilOpKind k) { return k >= MIL_OP_MATMUL && k <= MIL_OP_L2_POOL; }
static bool fam_shape(MilOpKind k) { return k >= MIL_OP_RESHAPE && k <= MIL_OP_SLIDING_WINDOWS; }
static bool fam_constexpr(MilOpKind k) {
    return k >= MIL_OP_CONSTEXPR_AFFINE_DEQUANTIZE && k <= MIL_OP_CONSTEXPR_SPARSE_BLOCKWISE_SHIFT_SCALE;
}

Test(kernels, eltwise) { cr_expect_geq(run_manifest(fam_eltwise), 130); }
Test(kernels, reduce) { cr_expect_geq(run_manifest(fam_reduce), 40); }
Test(kernels, norm_attention) { cr_expect_geq(run_manifest(fam_norm), 20); }
Test(kernels, linalg_conv_pool) { cr_expect_geq(run_manifest(fam_linalg), 25); }
Test(kernels, shape_gather_misc) { cr_expect_geq(run_manifest(fam_shape), 60); }
Test(kernels, constexpr) { cr_expect_geq(run_manifest(fam_constexpr), 7); }

/* every OPF_EXEC op has a kernel, and no other op has one */
Test(kernels, table_complete) {
    static const int flags[MIL_OP_COUNT] = {
#define OP(id, name, wire, nres, fl) [MIL_OP_##id] = (fl),
#define ARG(op, name, f, def)
#include "ir/ops.def"
#undef OP
#undef ARG
    };
    for (int i = 1; i < MIL_OP_COUNT; i++) {
        bool exec = (flags[i] & OPF_EXEC) != 0;
        cr_expect(exec == (mil_cpu_kernels[i].run != NULL), "op %d: exec flag %d but run %p", i, exec,
                  (void *)mil_cpu_kernels[i].run);
        cr_expect(exec == (mil_cpu_kernels[i].shape != NULL), "op %d: shape entry mismatch", i);
    }
}

/* iOS18 LUT: indices are sub-byte (uint2 / uint1) tensors unpacked one per byte */
static void lut18(const char *name, MilDType idt) {
    KT t;
    kt_init(&t, MIL_OP_CONSTEXPR_LUT_TO_DENSE, 1);
    t.nout = kt_load_case(&t, name);
    cr_assert_eq(t.nout, 1);
    int s = kt_slot(&t, "indices");
    cr_assert_eq(t.slot_n[s], 1);
    ((MilRtTensor *)t.slotv[s][0])->dtype = idt;
    cr_assert_eq(kt_run(&t), 0, "%s: %s", name, t.err);
    cr_expect(kt_check(&t, name, 0, 1e-6, 0));
    kt_free(&t);
}
Test(kernels, lut_ios18) {
    lut18("lut_ios18", MIL_DT_UINT2);
    lut18("lut_ios18_vec", MIL_DT_UINT1);
}

Test(kernels, lut_ios18_wrong_bits) {
    KT t;
    kt_init(&t, MIL_OP_CONSTEXPR_LUT_TO_DENSE, 1);
    kt_load_case(&t, "lut_ios18");
    ((MilRtTensor *)t.slotv[kt_slot(&t, "indices")][0])->dtype = MIL_DT_UINT4;
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "palette") != NULL, "%s", t.err);
    kt_free(&t);
}

/* ------------------------------------------------------------ negatives */

Test(kernels, negative) {
    cr_expect(kt_case_fails(MIL_OP_ADD, "neg_add_bcast", "broadcast"));
    cr_expect(kt_case_fails(MIL_OP_GATHER, "neg_gather_oob", "out of range"));
    cr_expect(kt_case_fails(MIL_OP_RESHAPE, "neg_reshape", "infer"));
    cr_expect(kt_case_fails(MIL_OP_MATMUL, "neg_matmul_inner", "inner dimensions"));
    cr_expect(kt_case_fails(MIL_OP_CONV, "neg_conv_groups", "groups 2 must divide C_in 3"));
    cr_expect(kt_case_fails(MIL_OP_CAST, "neg_cast_dtype", "unsupported dtype"));
    cr_expect(kt_case_fails(MIL_OP_GELU, "neg_gelu_mode", "unknown mode"));
    cr_expect(kt_case_fails(MIL_OP_SOFTMAX, "neg_softmax_axis", "axis 2 out of range"));
    cr_expect(kt_case_fails(MIL_OP_SPLIT, "neg_split", "does not divide"));
    cr_expect(kt_case_fails(MIL_OP_FLOOR_DIV, "neg_int_div0", "division by zero"));
    cr_expect(kt_case_fails(MIL_OP_TOPK, "neg_topk_k", "out of range"));
    cr_expect(kt_case_fails(MIL_OP_CONCAT, "neg_concat_shape", "shape mismatch"));
    cr_expect(kt_case_fails(MIL_OP_SLICE_BY_INDEX, "neg_slice_squeeze", "out of range"));
    cr_expect(kt_case_fails(MIL_OP_SCATTER, "neg_scatter_oob", "out of range"));
}

Test(kernels, missing_required_argument) {
    KT t;
    kt_init(&t, MIL_OP_ADD, 1);
    int64_t d = 2;
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP32, 1, &d, NULL));
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "missing required argument 'y'") != NULL, "%s", t.err);
    kt_free(&t);
}

Test(kernels, wrong_argument_type) {
    KT t;
    kt_init(&t, MIL_OP_SOFTMAX, 1);
    int64_t d = 3;
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP16, 1, &d, NULL));
    kt_f32(&t, "axis", 0.0f);
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "'axis' must be an integer") != NULL, "%s", t.err);
    kt_free(&t);
}

/* runtime shape operands without data: the kernel asks for data */
Test(kernels, need_data) {
    KT t;
    kt_init(&t, MIL_OP_RESHAPE, 1);
    int64_t d = 6, ds = 2;
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP16, 1, &d, NULL));
    MilRtTensor *sh = kt_tensor(&t, MIL_DT_INT32, 1, &ds, NULL);
    free(sh->data);
    sh->data = NULL;
    kt_bind(&t, kt_slot(&t, "shape"), sh);
    cr_expect_eq(kt_shape(&t), MIL_K_NEED_DATA);
    kt_free(&t);
}

/* ------------------------------------------------------------- inline */

/* fp16 storage rule: one rounding per element on store.  1 + 2^-11 + 2^-11
 * computed in fp32 and rounded once is 1 + 2^-10; rounding the intermediate
 * (1 + 2^-11 -> 1, ties to even) would give 1. */
Test(kernels, fp16_rounds_once) {
    KT t;
    kt_init(&t, MIL_OP_REDUCE_SUM, 1);
    int64_t d = 3;
    uint16_t x[3] = {mil_f2h(1.0f), mil_f2h(0x1p-11f), mil_f2h(0x1p-11f)};
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP16, 1, &d, x));
    cr_assert_eq(kt_run(&t), 0, "%s", t.err);
    cr_expect_eq(t.outs[0].rank, 0);
    cr_expect_eq(mil_h2f(*(uint16_t *)t.outs[0].data), 1.0f + 0x1p-10f);
    kt_free(&t);
}

Test(kernels, const_is_device_materialised) {
    KT t;
    kt_init(&t, MIL_OP_CONST, 1);
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    t.outs[0].dtype = MIL_DT_FP32;
    t.outs[0].rank = 0;
    cr_expect_eq(kt_shape(&t), 0);
    kt_free(&t);
}

Test(kernels, matmul_large_fp16) {
    /* a sgemm-sized product against a double reference */
    enum { M = 37, K = 70, N = 29 };
    KT t;
    kt_init(&t, MIL_OP_MATMUL, 1);
    static uint16_t a[M * K], b[K * N];
    double ref[M * N];
    for (int i = 0; i < M * K; i++) a[i] = mil_f2h((float)((i * 37 % 101) - 50) / 64.0f);
    for (int i = 0; i < K * N; i++) b[i] = mil_f2h((float)((i * 53 % 97) - 48) / 64.0f);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int q = 0; q < K; q++) s += (double)mil_h2f(a[i * K + q]) * mil_h2f(b[q * N + j]);
            ref[i * N + j] = mil_h2f(mil_f2h((float)s));
        }
    int64_t da[2] = {M, K}, db[2] = {K, N};
    kt_bind(&t, kt_slot(&t, "x"), kt_tensor(&t, MIL_DT_FP16, 2, da, a));
    kt_bind(&t, kt_slot(&t, "y"), kt_tensor(&t, MIL_DT_FP16, 2, db, b));
    cr_assert_eq(kt_run(&t), 0, "%s", t.err);
    const uint16_t *o = t.outs[0].data;
    for (int i = 0; i < M * N; i++) {
        double g = mil_h2f(o[i]);
        cr_assert(fabs(g - ref[i]) <= 1e-3 + 1e-3 * fabs(ref[i]), "element %d: %g vs %g", i, g, ref[i]);
    }
    kt_free(&t);
}

/* constant indices are checked by shape(); runtime indices by run() */
Test(kernels, gather_index_checks) {
    KT t;
    kt_init(&t, MIL_OP_GATHER, 1);
    kt_load_case(&t, "neg_gather_oob");
    cr_expect_eq(kt_shape(&t), MIL_K_ERROR);
    cr_expect(strstr(t.err, "index 2 out of range") != NULL, "%s", t.err);
    /* hide the data from shape(), as for a runtime operand */
    MilRtTensor *ind = (MilRtTensor *)t.slotv[kt_slot(&t, "indices")][0];
    void *data = ind->data;
    ind->data = NULL;
    cr_expect_eq(kt_shape(&t), 0, "%s", t.err);
    ind->data = data;
    cr_expect_eq(kt_run(&t), MIL_K_ERROR);
    kt_free(&t);
}
