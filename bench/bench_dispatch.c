/* bench/bench_dispatch.c -- per-op dispatch overhead of the CPU device on
 * tiny tensors.
 *
 * Builds chains of N ops on 1-element (and 16-element) fp32/fp16 tensors
 * with the runtime builder, prepares once, runs R times, and prints the
 * time per op.  With tensors this small the time is almost all dispatch:
 * the executor's loop, the kernel's argument decoding and its broadcast
 * set-up.  "kernel only" calls the same kernel directly through the
 * MilKernelCtx the device built, so the difference is the device's own cost.
 *
 *   bench_dispatch [N] [R]     (defaults 1000 ops, 2000 runs)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/cpu/kernel.h"
#include "runtime/runtime.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

/* x -> op -> op -> ... (N ops); binary ops take a constant as y. */
static MilRtFunc *chain(MilRtProgram *p, MilOpKind kind, const char *opname, MilDType dt, int64_t n, int nops) {
    MilRtFunc *f = mil_rt_program_add_func(p, opname);
    int64_t dims[1] = {n};
    int x = mil_rt_func_add_value(f, "x", MIL_RT_INPUT, dt, 1, dims);
    mil_rt_func_add_input(f, x);
    void *cdata = mil_rt_alloc(p, (size_t)n * 4);
    MilRtTensor ct = {.dtype = dt, .rank = 1, .dims = {n}, .data = cdata};
    for (int64_t i = 0; i < n; i++) mil_rt_set_f64(&ct, i, 1.0 / 1024);
    int c = mil_rt_func_add_const(f, "c", dt, 1, dims, cdata);
    int ns = nslots(kind), prev = x;
    for (int i = 0; i < nops; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        int t = mil_rt_func_add_value(f, name, MIL_RT_TEMP, dt, 1, dims);
        int start[8] = {0}, args[2], na = 0;
        for (int s = 0; s < ns; s++) {
            start[s] = na;
            if (s == 0) args[na++] = prev;              /* x (slot 0 for add/relu) */
            else if (s == 1 && ns == 2) args[na++] = c; /* y */
        }
        start[ns] = na;
        mil_rt_func_add_op(f, kind, opname, NULL, ns, start, args, 1, &t, i + 1, 1);
        prev = t;
    }
    mil_rt_func_add_output(f, prev);
    return f;
}

static void bench(MilRtDevice *dev, MilOpKind kind, const char *opname, MilDType dt, int64_t n, int nops, int runs) {
    MilRtProgram *p = mil_rt_program_new("bench");
    MilRtFunc *f = chain(p, kind, opname, dt, n, nops);
    MilRtErr e;
    MilRtTensor x = {.dtype = dt, .rank = 1, .dims = {n}};
    mil_rt_tensor_alloc(&x, &e);
    MilRtPlan *plan = mil_rt_prepare(dev, f, &x, &e);
    if (!plan) {
        fprintf(stderr, "bench_dispatch: %s\n", e.msg);
        exit(1);
    }
    MilRtTensor y;
    for (int r = 0; r < 10; r++) mil_rt_plan_run(plan, &x, &y, &e); /* warm up */
    double t0 = now_s();
    for (int r = 0; r < runs; r++)
        if (mil_rt_plan_run(plan, &x, &y, &e)) {
            fprintf(stderr, "bench_dispatch: %s\n", e.msg);
            exit(1);
        }
    double per_op = (now_s() - t0) / ((double)runs * nops) * 1e6;
    printf("%-6s %-4s n=%-4lld  %7.3f us/op  (arena %zu bytes for %d ops)\n", opname, mil_rt_dtype_name(dt),
           (long long)n, per_op, plan->info.arena_bytes, nops);
    mil_rt_plan_free(plan);
    mil_rt_tensor_free(&x);
    mil_rt_program_free(p);
}

/* The kernel alone, called in a loop on one context (no executor). */
static void bench_kernel_only(MilOpKind kind, const char *opname, int64_t n, int calls) {
    float xv[64] = {0}, cv[64] = {0}, yv[64];
    MilRtTensor x = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {n}, .data = xv};
    MilRtTensor c = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {n}, .data = cv};
    MilRtTensor y = {.dtype = MIL_DT_FP32, .rank = 1, .dims = {n}, .data = yv};
    const MilRtTensor *xs[1] = {&x}, *cs[1] = {&c};
    const MilRtTensor *const *slots[2] = {xs, cs};
    int ns = nslots(kind), slot_n[2] = {1, ns == 2 ? 1 : 0};
    MilRtTensor *outs[1] = {&y};
    char err[256];
    MilKernelCtx k = {.kind = kind, .nslots = ns, .slot_n = slot_n, .slot = slots, .nout = 1, .out = outs,
                      .err = err, .errsize = sizeof err};
    const MilKernel *kern = &mil_cpu_kernels[kind];
    double t0 = now_s();
    for (int i = 0; i < calls; i++) kern->run(&k);
    printf("%-6s fp32 n=%-4lld  %7.3f us/op  (kernel run() alone)\n", opname, (long long)n,
           (now_s() - t0) / calls * 1e6);
}

int main(int argc, char **argv) {
    int nops = argc > 1 ? atoi(argv[1]) : 1000, runs = argc > 2 ? atoi(argv[2]) : 2000;
    MilRtErr e;
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    printf("CPU device dispatch, %d-op chains, %d runs each\n", nops, runs);
    bench(dev, MIL_OP_ADD, "add", MIL_DT_FP32, 1, nops, runs);
    bench(dev, MIL_OP_ADD, "add", MIL_DT_FP16, 1, nops, runs);
    bench(dev, MIL_OP_RELU, "relu", MIL_DT_FP32, 1, nops, runs);
    bench(dev, MIL_OP_ADD, "add", MIL_DT_FP32, 16, nops, runs);
    bench(dev, MIL_OP_RELU, "relu", MIL_DT_FP32, 16, nops, runs);
    bench_kernel_only(MIL_OP_ADD, "add", 1, nops * runs / 4);
    bench_kernel_only(MIL_OP_RELU, "relu", 1, nops * runs / 4);
    mil_rt_device_free(dev);
    return 0;
}
