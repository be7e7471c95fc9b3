/* test/runtime/test_diff.c -- the differential helper: per-output max abs /
 * max rel / nmse between two tensors and between two functions run on the
 * same inputs (what the passes' tests build on). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ir/fp16.h"
#include "runtime/runtime.h"

Test(diff, tensors) {
    float a[4] = {1, 2, 0, -4}, b[4] = {1, 2.5f, 0, -3};
    MilRtTensor ta = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}, .data = a};
    MilRtTensor tb = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}, .data = b};
    MilRtDiff d;
    cr_assert_eq(mil_rt_compare_tensors(&ta, &tb, &d), 0);
    cr_assert_eq(d.numel, 4);
    cr_assert_float_eq(d.max_abs, 1.0, 1e-12);
    cr_assert_eq(d.argmax_abs, 3);
    cr_assert_float_eq(d.max_rel, 0.25, 1e-12);          /* |-4 - -3| / 4 */
    cr_assert_float_eq(d.nmse, (0.25 + 1.0) / (1 + 6.25 + 9), 1e-12);
    /* fp16 against fp32: compared as values */
    uint16_t h[4] = {mil_f2h(1), mil_f2h(2.5f), 0, mil_f2h(-3)};
    MilRtTensor th = {.dtype = MIL_DT_FP16, .rank = 1, .dims = {4}, .data = h};
    cr_assert_eq(mil_rt_compare_tensors(&th, &tb, &d), 0);
    cr_assert_eq(d.max_abs, 0.0);
    /* shape mismatch */
    MilRtTensor tc = tb;
    tc.rank = 2; tc.dims[0] = 2; tc.dims[1] = 2;
    cr_assert_eq(mil_rt_compare_tensors(&ta, &tc, &d), -1);
    cr_assert(d.shape_mismatch);
}

Test(diff, nan_and_inf) {
    float a[3] = {NAN, INFINITY, 1}, b[3] = {NAN, INFINITY, 1};
    MilRtTensor ta = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {3}, .data = a};
    MilRtTensor tb = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {3}, .data = b};
    MilRtDiff d;
    mil_rt_compare_tensors(&ta, &tb, &d);
    cr_assert_eq(d.max_abs, 0.0);
    b[0] = 0;
    mil_rt_compare_tensors(&ta, &tb, &d);
    cr_assert(isinf(d.max_abs));
    cr_assert_eq(d.argmax_abs, 0);
    b[0] = NAN;
    b[1] = -INFINITY;
    mil_rt_compare_tensors(&ta, &tb, &d);
    cr_assert(isinf(d.max_abs) && d.argmax_abs == 1);
}

static int build(MilRtProgram *p, const char *name, float k, bool swap_inputs) {
    MilRtFunc *f = mil_rt_program_add_func(p, name);
    int64_t d3[1] = {3};
    int x = mil_rt_func_add_value(f, "x", MIL_RT_INPUT, MIL_DT_FP32, 1, d3);
    int y = mil_rt_func_add_value(f, "y", MIL_RT_INPUT, MIL_DT_FP32, 1, d3);
    mil_rt_func_add_input(f, swap_inputs ? y : x);
    mil_rt_func_add_input(f, swap_inputs ? x : y);
    float *c = mil_rt_alloc(p, 4);
    *c = k;
    int cv = mil_rt_func_add_const(f, "k", MIL_DT_FP32, 0, NULL, c);
    int s = mil_rt_func_add_value(f, "s", MIL_RT_TEMP, MIL_DT_FP32, 1, d3);
    int o = mil_rt_func_add_value(f, "o", MIL_RT_TEMP, MIL_DT_FP32, 1, d3);
    int st[3] = {0, 1, 2}, a1[2] = {x, y}, a2[2] = {s, cv};
    mil_rt_func_add_op(f, MIL_OP_ADD, "add", NULL, 2, st, a1, 1, &s, 1, 1);
    mil_rt_func_add_op(f, MIL_OP_MUL, "mul", NULL, 2, st, a2, 1, &o, 2, 1);
    mil_rt_func_add_output(f, o);
    mil_rt_func_add_output(f, s);
    return 0;
}

Test(diff, two_functions_same_inputs) {
    MilRtProgram *p = mil_rt_program_new("d.mil");
    build(p, "a", 2.0f, false);
    build(p, "b", 2.002f, true);  /* inputs in the other order: matched by name */
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    float xv[3] = {1, 2, 3}, yv[3] = {0, 0, -3};
    MilRtTensor in[2] = {{.dtype = MIL_DT_FP32, .rank = 1, .dims = {3}, .data = xv},
                         {.dtype = MIL_DT_FP32, .rank = 1, .dims = {3}, .data = yv}};
    MilRtDiff d[2];
    cr_assert_eq(mil_rt_compare(dev, p->funcs[0], p->funcs[1], in, d, &e), 0, "%s", e.msg);
    cr_assert_str_eq(d[0].name, "o");
    cr_assert_str_eq(d[1].name, "s");
    cr_assert_float_eq(d[0].max_abs, 0.004, 1e-6);  /* s = [1, 2, 0]: 2 * 2.002 - 2 * 2 */
    cr_assert_float_eq(d[0].max_rel, 0.002 / 2.002, 1e-6);
    cr_assert_eq(d[1].max_abs, 0.0);
    cr_assert_eq(d[1].nmse, 0.0);
    /* mismatched functions */
    MilRtFunc *c = mil_rt_program_add_func(p, "c");
    cr_assert_eq(mil_rt_compare(dev, p->funcs[0], c, in, d, &e), -1);
    cr_assert_str_eq(e.msg, "functions 'a' and 'c' have 2 and 0 outputs");
    mil_rt_device_free(dev);
    mil_rt_program_free(p);
}
