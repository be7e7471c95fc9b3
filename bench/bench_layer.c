/* bench/bench_layer.c -- wall time of a compiled program (.milb) on the CPU
 * device: prepared once, inputs random, outputs written into caller-owned
 * buffers (mil_rt_session_run_into), RUNS timed runs after one warm-up.
 *
 *   bench_layer PROG.milb [RUNS] [THREADS]
 *
 * Prints best and median ms and the GFLOP/s of the program's matmul-class
 * FLOPs (conv, matmul, linear, scaled_dot_product_attention counted in full
 * -- "model FLOPs", what PyTorch peers report), computed from the declared
 * shapes.  THREADS (default: MILC_THREADS, else every available CPU). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/runtime.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static double numel(const MilRtValue *v) {
    double n = 1;
    for (int i = 0; i < v->rank; i++) n *= (double)(v->dims[i] > 0 ? v->dims[i] : 1);
    return n;
}

static const MilRtValue *arg(const MilRtFunc *f, const MilRtOp *op, int slot) {
    const int *ids;
    return mil_rt_op_slot(op, slot, &ids) > 0 ? &f->values[ids[0]] : NULL;
}

/* 2 * multiply-adds of the ops that dominate a transformer */
static double flops(const MilRtFunc *f) {
    double fl = 0;
    for (int i = 0; i < f->nops; i++) {
        const MilRtOp *op = &f->ops[i];
        const MilRtValue *out = &f->values[op->outs[0]], *w;
        switch (op->kind) {
        case MIL_OP_CONV:  /* out elements * (C_in / groups * kernel) */
            if ((w = arg(f, op, MIL_A_CONV_weight)) && w->rank >= 2)
                fl += 2 * numel(out) * numel(w) / (double)(w->dims[0] > 0 ? w->dims[0] : 1);
            break;
        case MIL_OP_LINEAR:
            if ((w = arg(f, op, MIL_A_LINEAR_weight)) && w->rank == 2) fl += 2 * numel(out) * (double)w->dims[1];
            break;
        case MIL_OP_MATMUL: {
            const MilRtValue *x = arg(f, op, MIL_A_MATMUL_x);
            const int *ids;
            bool tx = false;
            if (mil_rt_op_slot(op, MIL_A_MATMUL_transpose_x, &ids) > 0 && f->values[ids[0]].data)
                tx = *(const uint8_t *)f->values[ids[0]].data != 0;
            if (x && x->rank >= 2) fl += 2 * numel(out) * (double)x->dims[x->rank - (tx ? 2 : 1)];
            break;
        }
        case MIL_OP_SCALED_DOT_PRODUCT_ATTENTION: {
            const MilRtValue *q = arg(f, op, MIL_A_SCALED_DOT_PRODUCT_ATTENTION_query),
                             *k = arg(f, op, MIL_A_SCALED_DOT_PRODUCT_ATTENTION_key);
            if (q && k && q->rank >= 2 && k->rank >= 2)  /* Q K^T and P V */
                fl += 2 * numel(q) * (double)k->dims[k->rank - 2] + 2 * numel(out) * (double)k->dims[k->rank - 2];
            break;
        }
        default: break;
        }
    }
    return fl;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_layer PROG.milb [RUNS] [THREADS]\n");
        return 2;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 10, threads = argc > 3 ? atoi(argv[3]) : 0;
    if (runs < 1) runs = 1;
    MilRtErr e;
    MilRtProgram *p = mil_rt_milb_load(argv[1], NULL, &e);
    if (!p) { fprintf(stderr, "bench_layer: %s\n", e.msg); return 1; }
    MilRtFunc *f = mil_rt_program_find_func(p, "main");
    if (!f) f = p->funcs[0];
    MilRtDevice *dev = mil_rt_device_cpu_new_threads(threads);
    MilRtSession *s = dev ? mil_rt_session_new(dev, f, &e) : NULL;
    MilRtTensor *in = calloc((size_t)f->ninputs + 1, sizeof *in), *out = calloc((size_t)f->noutputs + 1, sizeof *out);
    double *ms = calloc((size_t)runs, sizeof *ms);
    uint64_t seed = 1;
    int rc = 1;
    if (!s || !in || !out || !ms) { fprintf(stderr, "bench_layer: %s\n", s ? "out of memory" : e.msg); goto done; }
    for (int i = 0; i < f->ninputs; i++) {
        mil_rt_value_tensor(&f->values[f->inputs[i]], &in[i]);
        for (int d = 0; d < in[i].rank; d++) if (in[i].dims[d] < 0) in[i].dims[d] = 1;
        if (mil_rt_tensor_alloc(&in[i], &e)) goto fail;
        mil_rt_tensor_fill_random(&in[i], &seed);
    }
    /* the first run shapes the outputs; then they go to buffers of ours */
    if (mil_rt_session_run(s, in, out, &e)) goto fail;
    for (int i = 0; i < f->noutputs; i++) {
        out[i].data = NULL;
        if (mil_rt_tensor_alloc(&out[i], &e)) goto fail;
    }
    for (int r = 0; r < runs; r++) {
        double t = now_ms();
        if (mil_rt_session_run_into(s, in, out, &e)) goto fail;
        ms[r] = now_ms() - t;
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp);
    double gf = flops(f) * 1e-9;
    printf("milc %s threads=%d: best %.1f ms median %.1f ms, %.2f GFLOP -> %.1f GFLOP/s (best)\n", argv[1],
           mil_rt_device_cpu_threads(dev), ms[0], ms[runs / 2], gf, gf / ms[0] * 1e3);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_layer: %s\n", e.msg);
done:
    for (int i = 0; in && i < f->ninputs; i++) mil_rt_tensor_free(&in[i]);
    for (int i = 0; out && rc == 0 && i < f->noutputs; i++) mil_rt_tensor_free(&out[i]);
    free(in);
    free(out);
    free(ms);
    mil_rt_session_free(s);
    mil_rt_device_free(dev);
    mil_rt_program_free(p);
    return rc;
}
