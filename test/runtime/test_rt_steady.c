/* test/runtime/test_rt_steady.c -- the CPU device once a plan is prepared:
 *   - determinism: a transformer layer's forward and backward (mil-train's
 *     layer at B=2, S=128, D=256, data/steady/) run several times on the same
 *     inputs give bit-identical outputs, for 1 and for 2 threads, fp32 and
 *     fp16 storage; 1 vs 2 threads agree within fp32 rounding (the pool
 *     splits each GEMM into row blocks and OpenBLAS picks its kernel -- e.g.
 *     its small-matrix path -- by block size, so the summation order of a
 *     GEMM may change with the split), and a program of milc's own kernels
 *     only (norm, softmax, SwiGLU, reductions, forward and backward) is
 *     bit-identical for 1 and 2 threads;
 *   - steady state: mil_rt_plan_run / mil_rt_plan_run_into after prepare make
 *     no malloc/calloc/realloc/aligned_alloc/posix_memalign call and create
 *     no thread (counted by -Wl,--wrap on this executable, test/CMakeLists.txt;
 *     the static runtime's calls all go through the wrappers). */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "testutil.h"

/* ------------------------------------------------- allocation counters */

static atomic_bool counting;
static atomic_long nalloc, nthread;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

void *__wrap_malloc(size_t n) {
    if (atomic_load(&counting)) atomic_fetch_add(&nalloc, 1);
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
    if (atomic_load(&counting)) atomic_fetch_add(&nalloc, 1);
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
    if (atomic_load(&counting)) atomic_fetch_add(&nalloc, 1);
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    if (atomic_load(&counting)) atomic_fetch_add(&nalloc, 1);
    return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
    if (atomic_load(&counting)) atomic_fetch_add(&nalloc, 1);
    return __real_posix_memalign(p, a, n);
}
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg) {
    if (atomic_load(&counting)) atomic_fetch_add(&nthread, 1);
    return __real_pthread_create(t, a, fn, arg);
}

static void count_start(void) {
    atomic_store(&nalloc, 0);
    atomic_store(&nthread, 0);
    atomic_store(&counting, true);
}
static void count_stop(void) { atomic_store(&counting, false); }

/* the wrappers are live: a counted malloc and pthread_create are seen */
static void *nop(void *a) { return a; }
Test(steady, the_counters_see_calls) {
    void *(*volatile alloc)(size_t) = malloc;  /* not elided with the free below */
    count_start();
    void *p = alloc(16);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, nop, NULL), 0);
    count_stop();
    pthread_join(th, NULL);
    free(p);
    cr_assert_eq(atomic_load(&nalloc), 1);
    cr_assert_eq(atomic_load(&nthread), 1);
}

/* ------------------------------------------------------------ programs */

typedef struct Prog {
    MilRtDevice *dev;
    MilRtProgram *rp;
} Prog;

/* Parses PATH (or TEXT), differentiates FUNC w.r.t. WRT, -O2 for the cpu,
 * lowers for a CPU device of NT threads. */
static Prog compile(const char *path, const char *text, const char *func, const char *wrt, int nt) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = path ? mil_parse_file(path, NULL, &d) : mil_parse("steady.mil", text, strlen(text), NULL, &d);
    char m[1024] = "";
    if (d.n) mil_diag_format(&d, 0, m, sizeof m);
    cr_assert(p, "parse: %s", m);
    MilGradOptions go;
    mil_grad_options_init(&go);
    go.func = func;
    go.wrt = wrt;
    if (mil_grad(p, &go, &d)) {
        mil_diag_format(&d, 0, m, sizeof m);
        cr_assert_fail("mil_grad: %s", m);
    }
    MilPassOptions po;
    mil_pass_options_init(&po);
    po.opt_level = 2;
    if (mil_pass_run(p, &po, &d)) {
        mil_diag_format(&d, 0, m, sizeof m);
        cr_assert_fail("-O2: %s", m);
    }
    Prog g;
    g.dev = mil_rt_device_cpu_new_threads(nt);
    cr_assert(g.dev);
    MilLowerOptions lo = {.device = g.dev};
    g.rp = mil_lower(p, &lo, &d);
    cr_assert(g.rp, "lowering failed (%d errors)", d.nerrors);
    mil_program_free(p);
    mil_diag_free(&d);
    return g;
}

static void prog_free(Prog *g) {
    mil_rt_program_free(g->rp);
    mil_rt_device_free(g->dev);
}

/* A prepared function with its input and output tensors. */
typedef struct Fn {
    MilRtFunc *f;
    MilRtPlan *plan;
    MilRtTensor *in, *out;
} Fn;

static void fn_open(Fn *k, const Prog *g, const char *name) {
    MilRtErr e;
    k->f = mil_rt_program_find_func(g->rp, name);
    cr_assert(k->f, "no function %s", name);
    k->in = calloc((size_t)k->f->ninputs + 1, sizeof *k->in);
    k->out = calloc((size_t)k->f->noutputs + 1, sizeof *k->out);
    for (int i = 0; i < k->f->ninputs; i++) mil_rt_value_tensor(&k->f->values[k->f->inputs[i]], &k->in[i]);
    k->plan = mil_rt_prepare(g->dev, k->f, k->in, &e);
    cr_assert(k->plan, "prepare %s: %s", name, e.msg);
}

static void fn_close(Fn *k) {
    mil_rt_plan_free(k->plan);
    free(k->in);
    free(k->out);
}

static const char *in_name(const Fn *k, int i) { return k->f->values[k->f->inputs[i]].name; }
static const char *out_name(const Fn *k, int i) { return k->f->values[k->f->outputs[i]].name; }

/* Named buffers: the inputs the test made and every output of a run (copied,
 * the plan reuses its memory). */
typedef struct Env {
    int n;
    char name[96][48];
    MilRtTensor t[96];
} Env;

static MilRtTensor *env_get(Env *v, const char *name) {
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->name[i], name)) return &v->t[i];
    return NULL;
}

static MilRtTensor *env_add(Env *v, const char *name, const MilRtTensor *like) {
    cr_assert_lt(v->n, 96);
    snprintf(v->name[v->n], sizeof v->name[0], "%s", name);
    MilRtTensor *t = &v->t[v->n++];
    *t = *like;
    t->data = NULL;
    MilRtErr e;
    cr_assert_eq(mil_rt_tensor_alloc(t, &e), 0, "%s", e.msg);
    return t;
}

static void env_free(Env *v) {
    for (int i = 0; i < v->n; i++) mil_rt_tensor_free(&v->t[i]);
    v->n = 0;
}

/* Deterministic inputs: "mask" causal (0 / -65504), rank-2 weights uniform
 * in [-1, 1) / sqrt(fan-in), rank-1 gains 1 + [-0.1, 0.1), the rest [-1, 1). */
static void make_input(Env *v, const char *name, const MilRtTensor *like, uint64_t seed) {
    MilRtTensor *t = env_add(v, name, like);
    int64_t n = mil_rt_numel(t);
    if (!strcmp(name, "mask")) {
        int64_t S = t->dims[t->rank - 1];
        for (int64_t i = 0; i < n; i++) mil_rt_set_f64(t, i, (i % S) > (i / S) % S ? -65504.0 : 0.0);
        return;
    }
    mil_rt_tensor_fill_random(t, &seed);
    double s = t->rank == 2 && !strncmp(name, "w", 1) ? 1.0 / sqrt((double)t->dims[1]) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        double x = mil_rt_get_f64(t, i);
        mil_rt_set_f64(t, i, t->rank == 1 ? 1.0 + 0.1 * x : s * x);
    }
}

/* Binds every input of k by name (making the missing ones), runs it into
 * fresh env buffers (caller-owned outputs: run_into) or plan-owned ones. */
static void run_fn(Fn *k, Env *v, bool into) {
    for (int i = 0; i < k->f->ninputs; i++) {
        MilRtTensor *t = env_get(v, in_name(k, i));
        if (!t) {
            make_input(v, in_name(k, i), &k->in[i], 1000 + (uint64_t)i);
            t = env_get(v, in_name(k, i));
        }
        k->in[i].data = t->data;
    }
    MilRtErr e;
    if (into) {
        for (int i = 0; i < k->f->noutputs; i++) {
            MilRtTensor decl;
            mil_rt_value_tensor(&k->f->values[k->f->outputs[i]], &decl);
            k->out[i] = *env_add(v, out_name(k, i), &decl);
        }
        cr_assert_eq(mil_rt_plan_run_into(k->plan, k->in, k->out, &e), 0, "%s", e.msg);
    } else {
        cr_assert_eq(mil_rt_plan_run(k->plan, k->in, k->out, &e), 0, "%s", e.msg);
        for (int i = 0; i < k->f->noutputs; i++) {
            MilRtTensor *t = env_add(v, out_name(k, i), &k->out[i]);
            memcpy(t->data, k->out[i].data, mil_rt_nbytes(t));
        }
    }
}

/* FUNC_fwd then FUNC_bwd of a compiled program; the outputs of both in *v. */
typedef struct Pair {
    Fn fwd, bwd;
} Pair;

static void pair_open(Pair *p, const Prog *g, const char *func) {
    char n[64];
    snprintf(n, sizeof n, "%s_fwd", func);
    fn_open(&p->fwd, g, n);
    snprintf(n, sizeof n, "%s_bwd", func);
    fn_open(&p->bwd, g, n);
}

static void pair_close(Pair *p) {
    fn_close(&p->fwd);
    fn_close(&p->bwd);
}

static void pair_run(Pair *p, Env *v, bool into) {
    run_fn(&p->fwd, v, into);
    run_fn(&p->bwd, v, into);
}

/* max |a - b| / max |b| over one output */
static double rel_diff(const MilRtTensor *a, const MilRtTensor *b) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < mil_rt_numel(b); i++) {
        double x = mil_rt_get_f64(a, i), y = mil_rt_get_f64(b, i);
        cr_assert(isfinite(x) && isfinite(y));
        if (fabs(x - y) > md) md = fabs(x - y);
        if (fabs(y) > mb) mb = fabs(y);
    }
    return mb > 0 ? md / mb : md;
}

/* The outputs of fn in a and b (same names): bit-identical, or within tol. */
static int compare(const Fn *k, Env *a, Env *b, double tol, const char *what) {
    int identical = 0;
    for (int i = 0; i < k->f->noutputs; i++) {
        const char *nm = out_name(k, i);
        MilRtTensor *x = env_get(a, nm), *y = env_get(b, nm);
        cr_assert(x && y, "%s: %s missing", what, nm);
        bool same = memcmp(x->data, y->data, mil_rt_nbytes(x)) == 0;
        identical += same;
        if (tol < 0)
            cr_assert(same, "%s: output %s of %s differs", what, nm, k->f->name);
        else if (!same) {
            double r = rel_diff(x, y);
            cr_assert_leq(r, tol, "%s: output %s of %s: max rel diff %g > %g", what, nm, k->f->name, r, tol);
        }
    }
    return identical;
}

#define LAYER_WRT "x,attn_norm,wq,wk,wv,wo,ffn_norm,w1,w3,w2"

/* 3 runs at each thread count (the 2nd and 3rd into caller-owned buffers),
 * each bit-identical to the first; 1 vs 2 threads within tol. */
static void layer_determinism(const char *file, double tol) {
    const char *path = tu_src(tu_fmt("test/runtime/data/steady/%s", file));
    Env *ref[2];
    Pair p[2];
    Prog g[2];
    for (int t = 0; t < 2; t++) {
        g[t] = compile(path, NULL, "layer", LAYER_WRT, t + 1);
        pair_open(&p[t], &g[t], "layer");
        ref[t] = calloc(1, sizeof(Env));
        pair_run(&p[t], ref[t], false);
        for (int r = 0; r < 2; r++) {
            Env *v = calloc(1, sizeof(Env));
            pair_run(&p[t], v, r == 1);
            compare(&p[t].fwd, v, ref[t], -1, tu_fmt("%s, %d thread(s), run %d", file, t + 1, r + 2));
            compare(&p[t].bwd, v, ref[t], -1, tu_fmt("%s, %d thread(s), run %d", file, t + 1, r + 2));
            env_free(v);
            free(v);
        }
    }
    compare(&p[0].fwd, ref[1], ref[0], tol, tu_fmt("%s, 2 vs 1 threads", file));
    compare(&p[0].bwd, ref[1], ref[0], tol, tu_fmt("%s, 2 vs 1 threads", file));
    for (int t = 0; t < 2; t++) {
        pair_close(&p[t]);
        prog_free(&g[t]);
        env_free(ref[t]);
        free(ref[t]);
    }
}

/* fp32: GEMM blocks summed in another order (K <= 512 terms) */
Test(steady, layer_fwd_bwd_fp32_bit_identical_across_runs, .timeout = 120) {
    layer_determinism("layer_fp32.mil", 1e-5);
}

/* fp16 storage: a GEMM rounding difference can flip one fp16 rounding (1 ulp
 * = 2^-11 relative), which later ops carry */
Test(steady, layer_fwd_bwd_fp16_bit_identical_across_runs, .timeout = 120) {
    layer_determinism("layer_fp16.mil", 8e-3);
}

/* milc's own kernels only -- an RMS norm (fused to rms_norm by -O2),
 * softmax over rows, SwiGLU, a reduction, and their backward -- on tensors large enough to be split over
 * the pool: 1 and 2 threads bit-identical, fp32 and fp16. */
static const char *own_kernels =
    "program(1.3)\n"
    "{\n"
    "    func f<ios18>(tensor<DT, [4, 96, 320]> x, tensor<DT, [4, 96, 320]> u, tensor<DT, [320]> g) {\n"
    "            tensor<int32, [1]> axes = const()[name = string(\"axes\"), val = tensor<int32, [1]>([-1])];\n"
    "            bool kd = const()[name = string(\"kd\"), val = bool(true)];\n"
    "            tensor<DT, [4, 96, 320]> sq = mul(x = x, y = x)[name = string(\"sq\")];\n"
    "            tensor<DT, [4, 96, 1]> ms = reduce_mean(axes = axes, keep_dims = kd, x = sq)[name = string(\"ms\")];\n"
    "            DT eps = const()[name = string(\"eps\"), val = DT(0x1p-10)];\n"
    "            tensor<DT, [4, 96, 1]> mse = add(x = ms, y = eps)[name = string(\"mse\")];\n"
    "            tensor<DT, [4, 96, 1]> r = rsqrt(x = mse)[name = string(\"r\")];\n"
    "            tensor<DT, [4, 96, 320]> nh = mul(x = x, y = r)[name = string(\"nh\")];\n"
    "            tensor<DT, [4, 96, 320]> n = mul(x = nh, y = g)[name = string(\"n\")];\n"
    "            tensor<DT, [4, 96, 320]> s = silu(x = n)[name = string(\"s\")];\n"
    "            tensor<DT, [4, 96, 320]> h = mul(x = s, y = u)[name = string(\"h\")];\n"
    "            int32 ax = const()[name = string(\"ax\"), val = int32(-1)];\n"
    "            tensor<DT, [4, 96, 320]> p = softmax(x = h, axis = ax)[name = string(\"p\")];\n"
    "            tensor<DT, [4, 96, 320]> q = mul(x = p, y = x)[name = string(\"q\")];\n"
    "            bool keep = const()[name = string(\"keep\"), val = bool(false)];\n"
    "            tensor<DT, [4, 96]> y = reduce_sum(x = q, axes = axes, keep_dims = keep)[name = string(\"y\")];\n"
    "        } -> (y);\n"
    "}\n";

static void own_kernels_threads(const char *dt) {
    char text[4096], *o = text;
    for (const char *s = own_kernels; *s; s++) {
        if (s[0] == 'D' && s[1] == 'T') { o += sprintf(o, "%s", dt); s++; }
        else *o++ = *s;
    }
    *o = 0;
    Env *v[2];
    for (int t = 0; t < 2; t++) {
        Prog g = compile(NULL, text, "f", NULL, t + 1);
        Pair p;
        pair_open(&p, &g, "f");
        v[t] = calloc(1, sizeof(Env));
        pair_run(&p, v[t], false);
        if (t == 1) {
            cr_assert_eq(compare(&p.fwd, v[1], v[0], -1, tu_fmt("%s, 2 vs 1 threads", dt)), p.fwd.f->noutputs);
            cr_assert_eq(compare(&p.bwd, v[1], v[0], -1, tu_fmt("%s, 2 vs 1 threads", dt)), p.bwd.f->noutputs);
            cr_assert_geq(p.bwd.f->noutputs, 3, "d_x, d_u, d_g");
        }
        pair_close(&p);
        prog_free(&g);
    }
    for (int t = 0; t < 2; t++) {
        env_free(v[t]);
        free(v[t]);
    }
}

Test(steady, own_kernels_fwd_bwd_bit_identical_for_1_and_2_threads_fp32, .timeout = 60) {
    own_kernels_threads("fp32");
}

Test(steady, own_kernels_fwd_bwd_bit_identical_for_1_and_2_threads_fp16, .timeout = 60) {
    own_kernels_threads("fp16");
}

/* ---------------------------------------------------------- steady state */

/* After prepare (and the pool's threads, created by the first prepare), every
 * run of the layer's forward and backward -- plan-owned outputs and
 * caller-owned ones -- allocates nothing and creates no thread. */
static void no_alloc(const char *file, int nt) {
    const char *path = tu_src(tu_fmt("test/runtime/data/steady/%s", file));
    Prog g = compile(path, NULL, "layer", LAYER_WRT, nt);
    Pair p;
    pair_open(&p, &g, "layer");
    Env *v = calloc(1, sizeof(Env)), *w = calloc(1, sizeof(Env));
    /* every input and caller-owned output buffer made outside the count */
    pair_run(&p, v, false);
    pair_run(&p, w, true);
    Fn *fns[2] = {&p.fwd, &p.bwd};
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 2; j++) {
            Fn *k = fns[j];
            Env *src = r & 1 ? w : v;
            for (int i = 0; i < k->f->ninputs; i++) k->in[i].data = env_get(src, in_name(k, i))->data;
            MilRtErr e;
            int rc;
            if (r & 1) {
                for (int i = 0; i < k->f->noutputs; i++) k->out[i] = *env_get(w, out_name(k, i));
                count_start();
                rc = mil_rt_plan_run_into(k->plan, k->in, k->out, &e);
            } else {
                count_start();
                rc = mil_rt_plan_run(k->plan, k->in, k->out, &e);
            }
            count_stop();
            cr_assert_eq(rc, 0, "%s", e.msg);
            cr_assert_eq(atomic_load(&nalloc), 0, "%s (%s, %d threads, %s): %ld allocations", k->f->name, file, nt,
                         r & 1 ? "run_into" : "run", atomic_load(&nalloc));
            cr_assert_eq(atomic_load(&nthread), 0, "%s: %ld threads created", k->f->name, atomic_load(&nthread));
        }
    pair_close(&p);
    prog_free(&g);
    env_free(v);
    env_free(w);
    free(v);
    free(w);
}

Test(steady, no_allocation_or_thread_per_run_fp32, .timeout = 60) {
    no_alloc("layer_fp32.mil", 2);
    no_alloc("layer_fp32.mil", 1);
}

Test(steady, no_allocation_or_thread_per_run_fp16, .timeout = 60) {
    no_alloc("layer_fp16.mil", 2);
}
