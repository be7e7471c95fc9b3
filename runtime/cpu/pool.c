/* runtime/cpu/pool.c -- the CPU device's thread pool and the kernels' one
 * way to use it (k_parallel).
 *
 * A pool of n threads is the calling thread plus n - 1 workers created once
 * (when the device prepares its first plan) and joined when the device is
 * freed: no thread is created per run.  mil_pool_run(fn) runs fn(arg, t, n)
 * on every thread t and returns when all are done (serially, as fn(arg, 0,
 * 1), when called from inside a job or while another thread's job runs).  A worker that has
 * finished waits for the next job by spinning for a short while (the next op
 * is usually microseconds away) and then sleeps on a condition variable, so
 * an idle pool costs nothing; the BLAS library is single-threaded inside
 * each of our threads (k_blas_init), so the two never fight.
 *
 * Work is split statically: k_parallel cuts [0, n) into one contiguous range
 * per thread at multiples of `align`.  A kernel computes every output element
 * in one thread with a fixed order of operations, so results do not depend on
 * the thread count (milc's own kernels are bit-identical for 1 and 2
 * threads). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/cpu/kutil.h"

struct MilPool {
    int n;                       /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;             /* job generation */
    atomic_int pending;          /* workers still running the current job */
    atomic_int sleepers;         /* workers waiting on cv */
    atomic_bool stop;
    atomic_flag busy;            /* a job is running (plans of one device run from two threads) */
    MilPoolFn fn;                /* the current job (written before gen++) */
    void *arg;
};

typedef struct { MilPool *p; int tid; } WorkerArg;

static _Thread_local bool in_pool_job;  /* nested k_parallel runs serially */

enum { SPIN_NS = 50000 };               /* how long a worker spins before sleeping */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker(void *varg) {
    WorkerArg wa = *(WorkerArg *)varg;
    free(varg);
    MilPool *p = wa.p;
    unsigned seen = 0;
    in_pool_job = true;
    for (;;) {
        int64_t t0 = now_ns();
        for (int i = 0; atomic_load(&p->gen) == seen && !atomic_load(&p->stop); i++)
            if ((i & 63) == 63 && now_ns() - t0 > SPIN_NS) {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleepers, 1);
                while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->mu);
            } else {
                cpu_relax();
            }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load(&p->gen);
        p->fn(p->arg, wa.tid, p->n);
        atomic_fetch_sub(&p->pending, 1);
    }
}

int mil_cpu_default_threads(void) {
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

MilPool *mil_pool_new(int n) {
    MilPool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (n < 1) n = 1;
    p->n = 1;
    atomic_flag_clear(&p->busy);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->th = calloc((size_t)n, sizeof *p->th);
    if (!p->th) { mil_pool_free(p); return NULL; }
    for (int t = 1; t < n; t++) {
        WorkerArg *wa = malloc(sizeof *wa);
        if (!wa) break;
        wa->p = p;
        wa->tid = t;
        if (pthread_create(&p->th[t], NULL, worker, wa)) { free(wa); break; }
        p->n++;  /* with fewer threads than asked the pool still works */
    }
    /* worker t only uses p->n inside a job, and jobs start after this returns */
    return p;
}

void mil_pool_free(MilPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n; t++) pthread_join(p->th[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->th);
    free(p);
}

int mil_pool_size(const MilPool *p) { return p ? p->n : 1; }

void mil_pool_run(MilPool *p, MilPoolFn fn, void *arg) {
    if (!p || p->n == 1 || in_pool_job || atomic_flag_test_and_set(&p->busy)) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    in_pool_job = true;
    fn(arg, 0, p->n);
    in_pool_job = false;
    for (int i = 0; atomic_load(&p->pending) > 0; i++) {
        if (i < 4096) cpu_relax();
        else sched_yield();  /* a worker was descheduled: give it the core */
    }
    atomic_flag_clear(&p->busy);
}

/* ------------------------------------------------------------ k_parallel */

typedef struct {
    KRangeFn fn;
    void *arg;
    int64_t n, align;
} ParJob;

static void par_one(void *varg, int t, int nth) {
    const ParJob *j = varg;
    int64_t blocks = (j->n + j->align - 1) / j->align;
    int64_t b0 = blocks * t / nth, b1 = blocks * (t + 1) / nth;
    int64_t i0 = b0 * j->align, i1 = b1 * j->align < j->n ? b1 * j->align : j->n;
    if (i0 < i1) j->fn(j->arg, i0, i1, t);
}

void k_parallel(const MilKernelCtx *k, int64_t n, int64_t align, double work, KRangeFn fn, void *arg) {
    if (n <= 0) return;
    if (align < 1) align = 1;
    MilPool *p = k ? k->pool : NULL;
    /* below ~50k element-operations a thread hand-off costs more than it saves */
    if (!p || p->n == 1 || in_pool_job || work < 5e4 || n <= align) {
        fn(arg, 0, n, 0);
        return;
    }
    ParJob j = {fn, arg, n, align};
    mil_pool_run(p, par_one, &j);
}

int k_threads(const MilKernelCtx *k) { return (k && k->pool && !in_pool_job) ? k->pool->n : 1; }
