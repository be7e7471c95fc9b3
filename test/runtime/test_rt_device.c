/* test/runtime/test_rt_device.c -- the runtime program builder and the CPU
 * device on hand-built programs (no compiler code): execution, buffer
 * planning with liveness reuse, folding, data-dependent shapes, re-planning
 * for `?` inputs, declared-type checks, unsupported ops, input checks. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "ir/fp16.h"
#include "runtime/cpu/kernel.h"
#include "runtime/runtime.h"

static int nslots(MilOpKind k) {
    static const int n[MIL_OP_COUNT] = {
        [MIL_OP_UNKNOWN] = 0
#define OP(id, name, wire, nres, flags) , [MIL_OP_##id] = 0
#define ARG(op, name, flags, def) + 1
#include "ir/ops.def"
#undef OP
#undef ARG
    };
    return n[k];
}

/* op(f, kind, "name", line, nout, outs..., nbind, (slot, id)...) */
static int op(MilRtFunc *f, MilOpKind kind, const char *opname, int line, int nout, ...) {
    va_list ap;
    va_start(ap, nout);
    int outs[8];
    for (int i = 0; i < nout; i++) outs[i] = va_arg(ap, int);
    int nb = va_arg(ap, int);
    int ns = nslots(kind), slot_of[32], id_of[32];
    for (int i = 0; i < nb; i++) {
        slot_of[i] = va_arg(ap, int);
        id_of[i] = va_arg(ap, int);
    }
    va_end(ap);
    int start[65], args[32], n = 0;
    for (int s = 0; s < ns; s++) {
        start[s] = n;
        for (int i = 0; i < nb; i++)
            if (slot_of[i] == s) args[n++] = id_of[i];
    }
    start[ns] = n;
    return mil_rt_func_add_op(f, kind, opname, NULL, ns, start, args, nout, outs, line, 5);
}

static int tmpv(MilRtFunc *f, const char *name, MilDType dt, int rank, const int64_t *dims) {
    return mil_rt_func_add_value(f, name, MIL_RT_TEMP, dt, rank, dims);
}

static const int64_t d4[1] = {4}, d1024[1] = {1024}, dq[1] = {-1};

/* A new program of file with one function "main", returned. */
static MilRtFunc *new_main(MilRtProgram **p, const char *file) {
    *p = mil_rt_program_new(file);
    return mil_rt_program_add_func(*p, "main");
}

/* A function input: the value, appended to the input list. */
static int input(MilRtFunc *f, const char *name, MilDType dt, int rank, const int64_t *dims) {
    int v = mil_rt_func_add_value(f, name, MIL_RT_INPUT, dt, rank, dims);
    mil_rt_func_add_input(f, v);
    return v;
}

/* The plan of f for the inputs `in`: prepare must succeed. */
static MilRtPlan *prepare_ok(MilRtDevice *dev, const MilRtFunc *f, const MilRtTensor *in, MilRtErr *e) {
    MilRtPlan *plan = mil_rt_prepare(dev, f, in, e);
    cr_assert(plan, "%s", e->msg);
    return plan;
}

/* Frees what a test made, in order (any may be NULL). */
static void free_all(MilRtSession *s, MilRtPlan *plan, MilRtDevice *dev, MilRtProgram *p) {
    mil_rt_session_free(s);
    mil_rt_plan_free(plan);
    mil_rt_device_free(dev);
    mil_rt_program_free(p);
}

/* y = relu(x + c) with c = [1, -2, 3, -4] */
static MilRtFunc *build_add_relu(MilRtProgram *p) {
    MilRtFunc *f = mil_rt_program_add_func(p, "main");
    int x = input(f, "x", MIL_DT_FP32, 1, dq);
    float *c = mil_rt_alloc(p, 16);
    c[0] = 1; c[1] = -2; c[2] = 3; c[3] = -4;
    int cv = mil_rt_func_add_const(f, "c", MIL_DT_FP32, 1, d4, c);
    int s = tmpv(f, "s", MIL_DT_FP32, 1, dq);
    int y = tmpv(f, "y", MIL_DT_FP32, 1, dq);
    op(f, MIL_OP_ADD, "add", 2, 1, s, 2, MIL_A_ADD_x, x, MIL_A_ADD_y, cv);
    op(f, MIL_OP_RELU, "relu", 3, 1, y, 1, MIL_A_RELU_x, s);
    mil_rt_func_add_output(f, y);
    return f;
}

Test(rt_device, runs_add_relu) {
    MilRtProgram *p = mil_rt_program_new("t.mil");
    MilRtFunc *f = build_add_relu(p);
    MilRtErr e;
    cr_assert_eq(mil_rt_func_validate(f, &e), 0, "%s", e.msg);
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    cr_assert(dev);
    cr_assert_str_eq(mil_rt_device_name(dev), "cpu");
    float xv[4] = {0.5f, 0.5f, -5.0f, 10.0f};
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}, .data = xv}, out;
    cr_assert_eq(mil_rt_run_once(dev, f, &in, &out, &e), 0, "%s", e.msg);
    float *y = out.data;
    cr_assert(y[0] == 1.5f && y[1] == 0 && y[2] == 0 && y[3] == 6.0f, "%g %g %g %g", y[0], y[1], y[2], y[3]);
    mil_rt_tensor_free(&out);
    free_all(NULL, NULL, dev, p);
}

Test(rt_device, session_replans_for_flexible_shapes) {
    MilRtProgram *p = mil_rt_program_new("t.mil");
    MilRtFunc *f = build_add_relu(p);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new(NULL, &e);
    MilRtSession *s = mil_rt_session_new(dev, f, &e);
    float xv[4] = {1, 1, 1, 1};
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}, .data = xv}, out;
    cr_assert_eq(mil_rt_session_run(s, &in, &out, &e), 0, "%s", e.msg);
    const MilRtPlan *p1 = mil_rt_session_plan(s);
    cr_assert_eq(mil_rt_session_run(s, &in, &out, &e), 0);
    cr_assert_eq(mil_rt_session_plan(s), p1, "same shapes must reuse the plan");
    /* a shape the constant cannot broadcast with: the kernel says so at prepare */
    float x3[3] = {1, 2, 3};
    MilRtTensor in3 = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {3}, .data = x3};
    cr_assert_eq(mil_rt_session_run(s, &in3, &out, &e), -1);
    cr_assert(strncmp(e.msg, "t.mil:2:5: error: op 'add': ", 28) == 0, "%s", e.msg);
    /* broadcasting [1] works and re-plans */
    float x1[1] = {2};
    MilRtTensor in1 = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {1}, .data = x1};
    cr_assert_eq(mil_rt_session_run(s, &in1, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(out.dims[0], 4);
    cr_assert_eq(((float *)out.data)[3], 0.0f);
    cr_assert_eq(((float *)out.data)[2], 5.0f);
    free_all(s, NULL, dev, p);
}

Test(rt_device, input_checks) {
    MilRtProgram *p = mil_rt_program_new("t.mil");
    MilRtFunc *f = build_add_relu(p);
    MilRtErr e;
    float xv[4] = {0};
    MilRtTensor in = {.dtype = MIL_DT_FP16, .rank = 1, .dims = {4}, .data = xv};
    cr_assert_eq(mil_rt_check_inputs(f, &in, true, &e), -1);
    cr_assert_str_eq(e.msg, "input 'x': expected fp32 [?], got fp16 [4]");
    in.dtype = MIL_DT_FP32;
    in.rank = 2;
    in.dims[1] = 1;
    cr_assert_eq(mil_rt_check_inputs(f, &in, true, &e), -1);
    cr_assert_str_eq(e.msg, "input 'x': expected fp32 [?], got fp32 [4, 1]");
    in.rank = 1;
    in.data = NULL;
    cr_assert_eq(mil_rt_check_inputs(f, &in, true, &e), -1);
    cr_assert_str_eq(e.msg, "input 'x': no data");
    cr_assert_eq(mil_rt_check_inputs(f, &in, false, &e), 0);
    mil_rt_program_free(p);
}

/* a chain of n unary ops: ping-pong between two buffers */
Test(rt_device, liveness_reuses_buffers) {
    MilRtProgram *p = mil_rt_program_new("t.mil");
    MilRtFunc *f = mil_rt_program_add_func(p, "chain");
    int x = input(f, "x", MIL_DT_FP32, 1, d1024);
    int prev = x;
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        int t = tmpv(f, name, MIL_DT_FP32, 1, d1024);
        op(f, i % 2 ? MIL_OP_RELU : MIL_OP_ABS, i % 2 ? "relu" : "abs", i + 1, 1, t, 1, 0, prev);
        prev = t;
    }
    mil_rt_func_add_output(f, prev);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {1024}};
    MilRtPlan *plan = prepare_ok(dev, f, &in, &e);
    cr_assert_eq(plan->info.naive_bytes, 10 * 4096);
    cr_assert_eq(plan->info.arena_bytes, 2 * 4096, "arena %zu", plan->info.arena_bytes);
    cr_assert_eq(plan->info.nsteps, 10);
    float *xv = calloc(1024, 4);
    for (int i = 0; i < 1024; i++) xv[i] = (float)(i - 512);
    in.data = xv;
    MilRtTensor out;
    cr_assert_eq(mil_rt_plan_run(plan, &in, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(((float *)out.data)[0], 512.0f);
    cr_assert_eq(((float *)out.data)[1023], 511.0f);
    free(xv);
    free_all(NULL, plan, dev, p);
}

Test(rt_device, outputs_are_never_overwritten) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int x = input(f, "x", MIL_DT_FP32, 1, d1024);
    int a = tmpv(f, "a", MIL_DT_FP32, 1, d1024), b = tmpv(f, "b", MIL_DT_FP32, 1, d1024);
    int c = tmpv(f, "c", MIL_DT_FP32, 1, d1024), d = tmpv(f, "d", MIL_DT_FP32, 1, d1024);
    int u = tmpv(f, "unused", MIL_DT_FP32, 1, d1024);
    op(f, MIL_OP_SQUARE, "square", 1, 1, a, 1, MIL_A_SQUARE_x, x);
    op(f, MIL_OP_SQUARE, "square", 2, 1, u, 1, MIL_A_SQUARE_x, x);   /* dead result */
    op(f, MIL_OP_ABS, "abs", 3, 1, b, 1, MIL_A_ABS_x, a);
    op(f, MIL_OP_RELU, "relu", 4, 1, c, 1, MIL_A_RELU_x, b);
    op(f, MIL_OP_SQRT, "sqrt", 5, 1, d, 1, MIL_A_SQRT_x, c);
    mil_rt_func_add_output(f, a);
    mil_rt_func_add_output(f, d);
    mil_rt_func_add_output(f, x);  /* an input may be an output */
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    float *xv = calloc(1024, 4);
    for (int i = 0; i < 1024; i++) xv[i] = (float)i - 100;
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {1024}, .data = xv}, out[3];
    MilRtPlan *plan = prepare_ok(dev, f, &in, &e);
    cr_assert_eq(mil_rt_plan_run(plan, &in, out, &e), 0, "%s", e.msg);
    /* a, the unused result, b, c, d: a lives to the end, so at least 3 buffers */
    cr_assert_leq(plan->info.arena_bytes, 3 * 4096);
    for (int i = 0; i < 1024; i++) {
        cr_assert_eq(((float *)out[0].data)[i], xv[i] * xv[i], "a[%d]", i);
        cr_assert_eq(((float *)out[1].data)[i], fabsf(xv[i]), "d[%d]", i);
    }
    cr_assert_eq(out[2].data, xv);
    free(xv);
    free_all(NULL, plan, dev, p);
}

Test(rt_device, constant_ops_fold_at_prepare) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int x = input(f, "x", MIL_DT_FP32, 1, d4);
    float *c = mil_rt_alloc(p, 16);
    for (int i = 0; i < 4; i++) c[i] = (float)i;
    int cv = mil_rt_func_add_const(f, "c", MIL_DT_FP32, 1, d4, c);
    int cc = tmpv(f, "cc", MIL_DT_FP32, 1, d4), y = tmpv(f, "y", MIL_DT_FP32, 1, d4);
    op(f, MIL_OP_ADD, "add", 1, 1, cc, 2, MIL_A_ADD_x, cv, MIL_A_ADD_y, cv);
    op(f, MIL_OP_MUL, "mul", 2, 1, y, 2, MIL_A_MUL_x, x, MIL_A_MUL_y, cc);
    mil_rt_func_add_output(f, y);
    mil_rt_func_add_output(f, cc);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    float xv[4] = {1, 1, 1, 1};
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}, .data = xv}, out[2];
    MilRtPlan *plan = prepare_ok(dev, f, &in, &e);
    cr_assert_eq(plan->info.nfolded, 1);
    cr_assert_eq(plan->info.nsteps, 1);
    cr_assert_eq(mil_rt_plan_run(plan, &in, out, &e), 0, "%s", e.msg);
    cr_assert_eq(((float *)out[0].data)[3], 6.0f);
    cr_assert_eq(((float *)out[1].data)[2], 4.0f);
    free_all(NULL, plan, dev, p);
}

Test(rt_device, declared_type_mismatch_is_an_error) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int x = input(f, "x", MIL_DT_FP32, 1, d4);
    int64_t d5[1] = {5};
    int y = tmpv(f, "y", MIL_DT_FP32, 1, d5);
    op(f, MIL_OP_RELU, "relu", 7, 1, y, 1, MIL_A_RELU_x, x);
    mil_rt_func_add_output(f, y);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}};
    cr_assert_null(mil_rt_prepare(dev, f, &in, &e));
    cr_assert_str_eq(e.msg, "t.mil:7:5: error: op 'relu': result 'y' is declared fp32 [5] but the arguments give fp32 [4]");
    f->values[y].dims[0] = 4;
    f->values[y].dtype = MIL_DT_FP16;
    cr_assert_null(mil_rt_prepare(dev, f, &in, &e));
    cr_assert_str_eq(e.msg, "t.mil:7:5: error: op 'relu': result 'y' is declared fp16 [4] but the arguments give fp32 [4]");
    free_all(NULL, NULL, dev, p);
}

Test(rt_device, unsupported_op_is_rejected_before_running) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "m.mil");
    int x = input(f, "x", MIL_DT_FP32, 1, d4);
    int y = tmpv(f, "y", MIL_DT_FP32, 1, d4);
    int z = tmpv(f, "z", MIL_DT_FP32, 1, d4);
    op(f, MIL_OP_RELU, "relu", 2, 1, y, 1, MIL_A_RELU_x, x);
    op(f, MIL_OP_NON_ZERO, "non_zero", 3, 1, z, 1, MIL_A_NON_ZERO_x, y);
    mil_rt_func_add_output(f, z);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    cr_assert_not(mil_rt_device_supports_op(dev, f, &f->ops[1]));
    cr_assert_eq(mil_rt_device_check(dev, f, &e), -1);
    cr_assert_str_eq(e.msg, "m.mil:3:5: error: op 'non_zero' is not supported by the cpu device");
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}};
    cr_assert_null(mil_rt_prepare(dev, f, &in, &e));
    cr_assert_str_eq(e.msg, "m.mil:3:5: error: op 'non_zero' is not supported by the cpu device");
    cr_assert_null(mil_rt_session_new(dev, f, &e));
    cr_assert_null(mil_rt_device_new("tpu", &e));
    cr_assert_str_eq(e.msg, "unknown device 'tpu' (available: cpu, ane)");
    free_all(NULL, NULL, dev, p);
}

/* fp16 rule: every op rounds its output to fp16 */
Test(rt_device, fp16_rounds_after_every_op) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int x = input(f, "x", MIL_DT_FP16, 1, d4);
    uint16_t *c = mil_rt_alloc(p, 8);
    for (int i = 0; i < 4; i++) c[i] = mil_f2h(0x1p-11f);  /* half an fp16 ulp at 1.0 */
    int cv = mil_rt_func_add_const(f, "eps", MIL_DT_FP16, 1, d4, c);
    int a = tmpv(f, "a", MIL_DT_FP16, 1, d4), b = tmpv(f, "b", MIL_DT_FP16, 1, d4);
    op(f, MIL_OP_ADD, "add", 1, 1, a, 2, MIL_A_ADD_x, x, MIL_A_ADD_y, cv);
    op(f, MIL_OP_ADD, "add", 2, 1, b, 2, MIL_A_ADD_x, a, MIL_A_ADD_y, cv);
    mil_rt_func_add_output(f, b);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    uint16_t xv[4] = {0x3c00, 0x3c00, 0x3c01, 0x4000};
    MilRtTensor in = {.dtype = MIL_DT_FP16, .rank = 1, .dims = {4}, .data = xv}, out;
    cr_assert_eq(mil_rt_run_once(dev, f, &in, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(out.dtype, MIL_DT_FP16);
    const uint16_t *r = out.data;
    /* 1 + 2^-11 ties to even (1.0) after each op; fp32 across both ops would give 0x3c01 */
    cr_assert_eq(r[0], 0x3c00, "%04x", r[0]);
    /* 0x3c01 (odd) + half ulp ties up to 0x3c02, then again to 0x3c02 */
    cr_assert_eq(r[2], 0x3c02, "%04x", r[2]);
    mil_rt_tensor_free(&out);
    free_all(NULL, NULL, dev, p);
}

Test(rt_device, validate_catches_bad_programs) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int x = input(f, "x", MIL_DT_FP32, 1, d4);
    int y = tmpv(f, "y", MIL_DT_FP32, 1, d4), z = tmpv(f, "z", MIL_DT_FP32, 1, d4);
    op(f, MIL_OP_RELU, "relu", 1, 1, y, 1, MIL_A_RELU_x, z);  /* z used before defined */
    op(f, MIL_OP_RELU, "relu", 2, 1, z, 1, MIL_A_RELU_x, x);
    mil_rt_func_add_output(f, y);
    MilRtErr e;
    cr_assert_eq(mil_rt_func_validate(f, &e), -1);
    cr_assert_str_eq(e.msg, "op 0 ('relu'): argument 0 of slot 0 is not defined before use");
    cr_assert_null(mil_rt_program_find_func(p, "other"));
    cr_assert_eq(mil_rt_program_find_func(p, "main"), f);
    cr_assert_eq(mil_rt_func_find_value(f, "z"), z);
    mil_rt_program_free(p);
}

/* reshape by a shape computed at run time: sized by the executor */
Test(rt_device, data_dependent_shapes_are_sized_at_run_time) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int64_t d2[1] = {2}, dqq[2] = {-1, -1};
    int x = input(f, "x", MIL_DT_FP32, 1, d4), s = input(f, "s", MIL_DT_INT32, 1, d2);
    int r = tmpv(f, "r", MIL_DT_FP32, 2, dqq), y = tmpv(f, "y", MIL_DT_FP32, 2, dqq);
    op(f, MIL_OP_RESHAPE, "reshape", 3, 1, r, 2, MIL_A_RESHAPE_x, x, MIL_A_RESHAPE_shape, s);
    op(f, MIL_OP_RELU, "relu", 4, 1, y, 1, MIL_A_RELU_x, r);  /* downstream of a dynamic value */
    mil_rt_func_add_output(f, y);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    MilRtSession *ss = mil_rt_session_new(dev, f, &e);
    float xv[4] = {1, -2, 3, -4};
    int32_t sv[2] = {2, 2};
    MilRtTensor in[2] = {{.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}, .data = xv},
                         {.dtype = MIL_DT_INT32, .rank = 1, .dims = {2}, .data = sv}}, out;
    cr_assert_eq(mil_rt_session_run(ss, in, &out, &e), 0, "%s", e.msg);
    const MilRtPlan *plan = mil_rt_session_plan(ss);
    cr_assert_eq(plan->info.ndynamic, 2);
    cr_assert_eq(out.dims[0], 2);
    cr_assert_eq(out.dims[1], 2);
    cr_assert_eq(((float *)out.data)[2], 3.0f);
    sv[0] = 4; sv[1] = 1;  /* same input shapes, new data: same plan, new output shape */
    cr_assert_eq(mil_rt_session_run(ss, in, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_session_plan(ss), plan);
    cr_assert_eq(out.dims[0], 4);
    cr_assert_eq(out.dims[1], 1);
    cr_assert_eq(((float *)out.data)[1], 0.0f);
    sv[0] = 3;  /* 3 x 1 != 4 elements: a clean run-time error with the location */
    cr_assert_eq(mil_rt_session_run(ss, in, &out, &e), -1);
    cr_assert(strncmp(e.msg, "t.mil:3:5: error: op 'reshape': ", 32) == 0, "%s", e.msg);
    free_all(ss, NULL, dev, p);
}

/* shape(x) of a statically shaped x is folded, so the reshape is static */
Test(rt_device, shape_of_static_tensor_folds) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int64_t d22[2] = {2, 2}, d2[1] = {2};
    int x = input(f, "x", MIL_DT_FP32, 1, d4), z = input(f, "z", MIL_DT_FP32, 2, d22);
    int sh = tmpv(f, "sh", MIL_DT_INT32, 1, d2), r = tmpv(f, "r", MIL_DT_FP32, 2, d22);
    op(f, MIL_OP_SHAPE, "shape", 1, 1, sh, 1, MIL_A_SHAPE_x, z);
    op(f, MIL_OP_RESHAPE, "reshape", 2, 1, r, 2, MIL_A_RESHAPE_x, x, MIL_A_RESHAPE_shape, sh);
    mil_rt_func_add_output(f, r);
    mil_rt_func_add_output(f, sh);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    MilRtTensor in[2] = {{.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}}, {.dtype = MIL_DT_FP32, .rank = 2, .dims = {2, 2}}};
    MilRtPlan *plan = prepare_ok(dev, f, in, &e);
    cr_assert_eq(plan->info.nfolded, 1);
    cr_assert_eq(plan->info.ndynamic, 0);
    float xv[4] = {1, 2, 3, 4}, zv[4] = {0};
    in[0].data = xv;
    in[1].data = zv;
    MilRtTensor out[2];
    cr_assert_eq(mil_rt_plan_run(plan, in, out, &e), 0, "%s", e.msg);
    cr_assert_eq(((int32_t *)out[1].data)[0], 2);
    cr_assert_eq(out[0].dims[1], 2);
    /* the plan refuses inputs of other shapes */
    in[0].dims[0] = 5;
    cr_assert_eq(mil_rt_plan_run(plan, in, out, &e), -1);
    cr_assert_str_eq(e.msg, "input 'x': the plan was prepared for fp32 [4], got fp32 [5]");
    free_all(NULL, plan, dev, p);
}

/* ------------------------------------------------- caller-owned outputs */

/* x -> a = x*x (output, also read below) -> b = |a| -> d = relu(b); outputs
 * a, d, x (an input), a again */
static MilRtFunc *build_run_into(MilRtProgram **p) {
    MilRtFunc *f = new_main(p, "t.mil");
    int x = input(f, "x", MIL_DT_FP32, 1, d1024);
    int a = tmpv(f, "a", MIL_DT_FP32, 1, d1024), b = tmpv(f, "b", MIL_DT_FP32, 1, d1024);
    int d = tmpv(f, "d", MIL_DT_FP32, 1, d1024);
    op(f, MIL_OP_SQUARE, "square", 1, 1, a, 1, MIL_A_SQUARE_x, x);
    op(f, MIL_OP_SUB, "sub", 2, 1, b, 2, MIL_A_SUB_x, x, MIL_A_SUB_y, a);
    op(f, MIL_OP_RELU, "relu", 3, 1, d, 1, MIL_A_RELU_x, b);
    mil_rt_func_add_output(f, a);
    mil_rt_func_add_output(f, d);
    mil_rt_func_add_output(f, x);
    mil_rt_func_add_output(f, a);
    return f;
}

static void check_run_into(float *xv, MilRtTensor *out, int i0, int i1) {
    for (int i = i0; i < i1; i++) {
        float a = xv[i] * xv[i], d = xv[i] - a > 0 ? xv[i] - a : 0;
        cr_assert_eq(((float *)out[0].data)[i], a, "a[%d]", i);
        cr_assert_eq(((float *)out[1].data)[i], d, "d[%d]", i);
        cr_assert_eq(((float *)out[2].data)[i], xv[i], "x[%d]", i);
        cr_assert_eq(((float *)out[3].data)[i], a, "a'[%d]", i);
    }
}

/* the run_into contract on device dev (the CPU device or one without the hook) */
static void run_into_contract(MilRtDevice *dev) {
    MilRtProgram *p;
    MilRtFunc *f = build_run_into(&p);
    MilRtErr e;
    float *xv = calloc(1024, 4), *mine = calloc(4 * 1024, 4);
    for (int i = 0; i < 1024; i++) xv[i] = (float)i / 512 - 1;
    MilRtTensor in = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {1024}, .data = xv}, out[4];
    MilRtPlan *plan = prepare_ok(dev, f, &in, &e);
    for (int i = 0; i < 4; i++) out[i] = (MilRtTensor){.dtype = MIL_DT_FP32, .rank = 1, .dims = {1024}, .data = mine + 1024 * i};
    cr_assert_eq(mil_rt_plan_run_into(plan, &in, out, &e), 0, "%s", e.msg);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(out[i].data, mine + 1024 * i, "output %d must be the caller's buffer", i);
        cr_assert_eq(out[i].dims[0], 1024);
    }
    check_run_into(xv, out, 0, 1024);
    /* NULL entries get plan-owned data; a later plain run leaves the caller's buffers alone */
    out[1].data = NULL;
    out[3].data = NULL;
    cr_assert_eq(mil_rt_plan_run_into(plan, &in, out, &e), 0, "%s", e.msg);
    cr_assert_eq(out[0].data, mine);
    cr_assert(out[1].data && out[1].data != mine + 1024 && out[3].data != mine + 3 * 1024);
    check_run_into(xv, out, 0, 1024);
    float keep = mine[5];
    xv[5] = 0.25f;
    MilRtTensor own[4];
    cr_assert_eq(mil_rt_plan_run(plan, &in, own, &e), 0, "%s", e.msg);
    check_run_into(xv, own, 0, 1024);
    cr_assert(own[0].data != mine && own[1].data != mine + 1024);
    cr_assert_eq(mine[5], keep, "a plain run must not write the caller's old buffer");
    /* a wrong buffer type is an error before anything runs: the buffer is untouched */
    for (int i = 0; i < 4; i++) out[i] = (MilRtTensor){.dtype = MIL_DT_FP32, .rank = 1, .dims = {1024}, .data = mine + 1024 * i};
    out[1].dims[0] = 1023;
    mine[0] = 42;
    cr_assert_eq(mil_rt_plan_run_into(plan, &in, out, &e), -1);
    cr_assert_str_eq(e.msg, "output 'd': the plan gives fp32 [1024], the caller's buffer is fp32 [1023]");
    cr_assert_eq(mine[0], 42);
    out[1].dims[0] = 1024;
    out[2].dtype = MIL_DT_FP16;
    cr_assert_eq(mil_rt_plan_run_into(plan, &in, out, &e), -1);
    cr_assert_str_eq(e.msg, "output 'x': the plan gives fp32 [1024], the caller's buffer is fp16 [1024]");
    cr_assert_eq(mine[0], 42);
    free(xv);
    free(mine);
    free_all(NULL, plan, dev, p);
}

Test(rt_device, run_into_writes_caller_buffers) {
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    cr_assert(dev->iface->run_into, "the CPU device writes outputs in place");
    run_into_contract(dev);
}

static MilRtDeviceIface no_hook_iface;

/* a device without the run_into hook: the runtime's run + copy fallback */
Test(rt_device, run_into_falls_back_to_run_and_copy) {
    MilRtErr e;
    MilRtDevice *cpu = mil_rt_device_new("cpu", &e);
    no_hook_iface = *cpu->iface;
    no_hook_iface.run_into = NULL;
    no_hook_iface.name = "nohook";
    cpu->iface = &no_hook_iface;
    run_into_contract(cpu);
}

/* a data-dependent output shape is checked once it is known */
Test(rt_device, session_run_into_checks_dynamic_outputs_after_the_run) {
    MilRtProgram *p;
    MilRtFunc *f = new_main(&p, "t.mil");
    int64_t d2[1] = {2}, dqq[2] = {-1, -1};
    int x = input(f, "x", MIL_DT_FP32, 1, d4), s = input(f, "s", MIL_DT_INT32, 1, d2);
    int r = tmpv(f, "r", MIL_DT_FP32, 2, dqq), y = tmpv(f, "y", MIL_DT_FP32, 2, dqq);
    op(f, MIL_OP_RESHAPE, "reshape", 3, 1, r, 2, MIL_A_RESHAPE_x, x, MIL_A_RESHAPE_shape, s);
    op(f, MIL_OP_RELU, "relu", 4, 1, y, 1, MIL_A_RELU_x, r);
    mil_rt_func_add_output(f, y);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    MilRtSession *ss = mil_rt_session_new(dev, f, &e);
    float xv[4] = {1, -2, 3, -4}, mine[4] = {9, 9, 9, 9};
    int32_t sv[2] = {2, 2};
    MilRtTensor in[2] = {{.dtype = MIL_DT_FP32, .rank = 1, .dims = {4}, .data = xv},
                         {.dtype = MIL_DT_INT32, .rank = 1, .dims = {2}, .data = sv}};
    MilRtTensor out = {.dtype = MIL_DT_FP32, .rank = 2, .dims = {2, 2}, .data = mine};
    cr_assert_eq(mil_rt_session_run_into(ss, in, &out, &e), 0, "%s", e.msg);
    cr_assert_eq(out.data, mine);
    cr_assert(mine[0] == 1 && mine[1] == 0 && mine[2] == 3 && mine[3] == 0);
    sv[0] = 4; sv[1] = 1;
    mine[0] = 9;
    cr_assert_eq(mil_rt_session_run_into(ss, in, &out, &e), -1);
    cr_assert_str_eq(e.msg, "output 'y': the plan gives fp32 [4, 1], the caller's buffer is fp32 [2, 2]");
    cr_assert_eq(mine[0], 9, "a mismatching buffer is not written");
    /* input checks come first, as in mil_rt_session_run */
    in[0].dtype = MIL_DT_FP16;
    cr_assert_eq(mil_rt_session_run_into(ss, in, &out, &e), -1);
    cr_assert_str_eq(e.msg, "input 'x': expected fp32 [4], got fp16 [4]");
    free_all(ss, NULL, dev, p);
}

/* silu(a) * b (SwiGLU): the silu runs inside the mul, bit-identical to the
 * two ops (the same program with the silu result also returned is not fused) */
static MilRtFunc *build_swiglu(MilRtProgram **p, bool silu_out) {
    static const int64_t d[2] = {3, 1001};
    MilRtFunc *f = new_main(p, "t.mil");
    int a = input(f, "a", MIL_DT_FP16, 2, d), b = input(f, "b", MIL_DT_FP16, 2, d);
    int s = tmpv(f, "s", MIL_DT_FP16, 2, d), y = tmpv(f, "y", MIL_DT_FP16, 2, d);
    op(f, MIL_OP_SILU, "silu", 1, 1, s, 1, MIL_A_SILU_x, a);
    op(f, MIL_OP_MUL, "mul", 2, 1, y, 2, MIL_A_MUL_x, s, MIL_A_MUL_y, b);
    mil_rt_func_add_output(f, y);
    if (silu_out) mil_rt_func_add_output(f, s);
    return f;
}

Test(rt_device, unary_fuses_into_its_binary_consumer) {
    MilRtProgram *p1, *p2;
    MilRtFunc *f1 = build_swiglu(&p1, false), *f2 = build_swiglu(&p2, true);
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    MilRtTensor in[2] = {{.dtype = MIL_DT_FP16, .rank = 2, .dims = {3, 1001}}, {.dtype = MIL_DT_FP16, .rank = 2, .dims = {3, 1001}}};
    uint64_t seed = 7;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mil_rt_tensor_alloc(&in[i], &e), 0);
        mil_rt_tensor_fill_random(&in[i], &seed);
        for (int64_t j = 0; j < 3003; j++) mil_rt_set_f64(&in[i], j, mil_rt_get_f64(&in[i], j) * 8);
    }
    MilRtPlan *a = prepare_ok(dev, f1, in, &e), *b = prepare_ok(dev, f2, in, &e);
    cr_assert_eq(a->info.nfused, 1);
    cr_assert_eq(a->info.nsteps, 1);
    cr_assert_eq(b->info.nfused, 0);
    cr_assert_eq(a->info.arena_bytes, 6016, "the silu result is never stored: %zu", a->info.arena_bytes);
    MilRtTensor oa, ob[2];
    cr_assert_eq(mil_rt_plan_run(a, in, &oa, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_plan_run(b, in, ob, &e), 0, "%s", e.msg);
    cr_assert(memcmp(oa.data, ob[0].data, 3003 * 2) == 0, "fused and unfused differ");
    mil_rt_plan_free(b);
    mil_rt_program_free(p2);
    mil_rt_tensor_free(&in[0]);
    mil_rt_tensor_free(&in[1]);
    free_all(NULL, a, dev, p1);
}

/* ------------------------------------------- multi-op patterns (KF_*) */

/* A one-element constant of dtype dt with value v. */
static int scalar_const(MilRtProgram *p, MilRtFunc *f, const char *name, MilDType dt, float v) {
    void *d = mil_rt_alloc(p, 4);
    if (dt == MIL_DT_FP16) *(uint16_t *)d = mil_f2h(v);
    else *(float *)d = v;
    return mil_rt_func_add_const(f, name, dt, 0, NULL, d);
}

/* Runs f and g (the same program, g returning an intermediate as well, so
 * that nothing fuses) on the same random inputs; asserts f fused `nfused`
 * ops and that output 0 is bit-identical. */
static void same_as_unfused(MilRtFunc *f, MilRtFunc *g, int nin, int nfused, int threads) {
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_cpu_new_threads(threads);
    MilRtTensor in[4];
    uint64_t seed = 11;
    for (int i = 0; i < nin; i++) {
        mil_rt_value_tensor(&f->values[f->inputs[i]], &in[i]);
        in[i].data = NULL;
        cr_assert_eq(mil_rt_tensor_alloc(&in[i], &e), 0);
        mil_rt_tensor_fill_random(&in[i], &seed);
    }
    MilRtPlan *a = prepare_ok(dev, f, in, &e), *b = prepare_ok(dev, g, in, &e);
    cr_assert_eq(a->info.nfused, nfused, "fused %d ops", a->info.nfused);
    cr_assert_eq(b->info.nfused, 0);
    MilRtTensor oa, ob[2];
    cr_assert_eq(mil_rt_plan_run(a, in, &oa, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_plan_run(b, in, ob, &e), 0, "%s", e.msg);
    cr_assert(mil_rt_same_shape(&oa, &ob[0]) && oa.dtype == ob[0].dtype);
    cr_assert(memcmp(oa.data, ob[0].data, mil_rt_nbytes(&oa)) == 0, "fused and unfused differ");
    mil_rt_plan_free(a);
    mil_rt_plan_free(b);
    mil_rt_device_free(dev);
    for (int i = 0; i < nin; i++) mil_rt_tensor_free(&in[i]);
}

/* d = p * (dp - reduce_sum(dp * p, [-1], keep)) * 0.125, rows of n */
static MilRtFunc *build_softmax_bwd(MilRtProgram **p, MilDType dt, int64_t n, bool sum_out) {
    const int64_t d[3] = {2, 3, n}, dr[3] = {2, 3, 1}, one = 1;
    MilRtFunc *f = new_main(p, "t.mil");
    int dp = input(f, "dp", dt, 3, d), pr = input(f, "p", dt, 3, d);
    int32_t *ax = mil_rt_alloc(*p, 4);
    *ax = -1;
    uint8_t *kp = mil_rt_alloc(*p, 1);
    *kp = 1;
    int axes = mil_rt_func_add_const(f, "axes", MIL_DT_INT32, 1, &one, ax);
    int keep = mil_rt_func_add_const(f, "keep", MIL_DT_BOOL, 0, NULL, kp);
    int sc = scalar_const(*p, f, "scale", dt, 0.125f);
    int t = tmpv(f, "t", dt, 3, d), s = tmpv(f, "s", dt, 3, dr), u = tmpv(f, "u", dt, 3, d);
    int o = tmpv(f, "o", dt, 3, d), y = tmpv(f, "y", dt, 3, d);
    op(f, MIL_OP_MUL, "mul", 1, 1, t, 2, MIL_A_MUL_x, dp, MIL_A_MUL_y, pr);
    op(f, MIL_OP_REDUCE_SUM, "reduce_sum", 2, 1, s, 3, MIL_A_REDUCE_SUM_axes, axes, MIL_A_REDUCE_SUM_keep_dims, keep,
       MIL_A_REDUCE_SUM_x, t);
    op(f, MIL_OP_SUB, "sub", 3, 1, u, 2, MIL_A_SUB_x, dp, MIL_A_SUB_y, s);
    op(f, MIL_OP_MUL, "mul", 4, 1, o, 2, MIL_A_MUL_x, pr, MIL_A_MUL_y, u);
    op(f, MIL_OP_MUL, "mul", 5, 1, y, 2, MIL_A_MUL_x, o, MIL_A_MUL_y, sc);
    mil_rt_func_add_output(f, y);
    if (sum_out) mil_rt_func_add_output(f, s);
    return f;
}

/* A pattern built by BUILD (fused, and unfused because an intermediate is
 * also an output) gives the same bytes in fp32 and fp16, with 1 and 2
 * threads, on rows of 37 (not a multiple of 8) and 300 (more than one
 * 256-element chunk). */
static void pattern_same_as_unfused(MilRtFunc *(*build)(MilRtProgram **, MilDType, int64_t, bool), int nfused) {
    static const int64_t ns[] = {37, 300};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 2; i++)
            for (int th = 1; th <= 2; th++) {
                MilDType dt = d ? MIL_DT_FP16 : MIL_DT_FP32;
                MilRtProgram *p1, *p2;
                MilRtFunc *f = build(&p1, dt, ns[i], false), *g = build(&p2, dt, ns[i], true);
                same_as_unfused(f, g, 2, nfused, th);
                mil_rt_program_free(p1);
                mil_rt_program_free(p2);
            }
}

Test(rt_device, softmax_backward_pattern_is_one_kernel) { pattern_same_as_unfused(build_softmax_bwd, 4); }

/* y = softmax(x * 0.125 + mask, -1), x [2, 3, 5, n], mask [5, n] */
static MilRtFunc *build_masked_softmax(MilRtProgram **p, MilDType dt, int64_t n, bool mid_out) {
    const int64_t d[4] = {2, 3, 5, n}, dm[2] = {5, n};
    MilRtFunc *f = new_main(p, "t.mil");
    int x = input(f, "x", dt, 4, d), m = input(f, "mask", dt, 2, dm);
    int sc = scalar_const(*p, f, "scale", dt, 0.125f);
    int32_t *ax = mil_rt_alloc(*p, 4);
    *ax = -1;
    int axis = mil_rt_func_add_const(f, "axis", MIL_DT_INT32, 0, NULL, ax);
    int a = tmpv(f, "a", dt, 4, d), b = tmpv(f, "b", dt, 4, d), y = tmpv(f, "y", dt, 4, d);
    op(f, MIL_OP_MUL, "mul", 1, 1, a, 2, MIL_A_MUL_x, x, MIL_A_MUL_y, sc);
    op(f, MIL_OP_ADD, "add", 2, 1, b, 2, MIL_A_ADD_x, a, MIL_A_ADD_y, m);
    op(f, MIL_OP_SOFTMAX, "softmax", 3, 1, y, 2, MIL_A_SOFTMAX_axis, axis, MIL_A_SOFTMAX_x, b);
    mil_rt_func_add_output(f, y);
    if (mid_out) mil_rt_func_add_output(f, b);
    return f;
}

Test(rt_device, scaled_masked_softmax_is_one_kernel) { pattern_same_as_unfused(build_masked_softmax, 2); }

/* y = tile(a [3, 1, 37], [1, 5, 1]) * b [3, 5, 37]: the mul broadcasts a */
static MilRtFunc *build_tile_mul(MilRtProgram **p, bool tile_out) {
    const int64_t da[3] = {3, 1, 37}, d[3] = {3, 5, 37}, three = 3;
    MilRtFunc *f = new_main(p, "t.mil");
    int a = input(f, "a", MIL_DT_FP16, 3, da), b = input(f, "b", MIL_DT_FP16, 3, d);
    int32_t *r = mil_rt_alloc(*p, 12);
    r[0] = 1; r[1] = 5; r[2] = 1;
    int reps = mil_rt_func_add_const(f, "reps", MIL_DT_INT32, 1, &three, r);
    int t = tmpv(f, "t", MIL_DT_FP16, 3, d), y = tmpv(f, "y", MIL_DT_FP16, 3, d);
    op(f, MIL_OP_TILE, "tile", 1, 1, t, 2, MIL_A_TILE_reps, reps, MIL_A_TILE_x, a);
    op(f, MIL_OP_MUL, "mul", 2, 1, y, 2, MIL_A_MUL_x, t, MIL_A_MUL_y, b);
    mil_rt_func_add_output(f, y);
    if (tile_out) mil_rt_func_add_output(f, t);
    return f;
}

Test(rt_device, tile_read_by_a_broadcasting_op_is_not_copied) {
    MilRtProgram *p1, *p2;
    MilRtFunc *f = build_tile_mul(&p1, false), *g = build_tile_mul(&p2, true);
    same_as_unfused(f, g, 2, 1, 2);
    mil_rt_program_free(p1);
    mil_rt_program_free(p2);
}

/* mil_rt_device_cpu_parallel: every index once, ranges at multiples of align */
typedef struct { int hits[1000]; int bad; } ParHits;
static void par_mark(void *arg, int64_t i0, int64_t i1) {
    ParHits *h = arg;
    if (i0 % 64) __atomic_fetch_add(&h->bad, 1, __ATOMIC_RELAXED);
    for (int64_t i = i0; i < i1; i++) __atomic_fetch_add(&h->hits[i], 1, __ATOMIC_RELAXED);
}

Test(rt_device, cpu_parallel_covers_each_index_once) {
    for (int th = 1; th <= 3; th++) {
        MilRtDevice *dev = mil_rt_device_cpu_new_threads(th);
        static ParHits h;
        memset(&h, 0, sizeof h);
        mil_rt_device_cpu_parallel(dev, 1000, 64, par_mark, &h);
        for (int i = 0; i < 1000; i++) cr_assert_eq(h.hits[i], 1, "threads %d index %d", th, i);
        cr_assert_eq(h.bad, 0);
        mil_rt_device_free(dev);
    }
}
