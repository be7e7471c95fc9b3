/* runtime/cpu/kernel.h -- the contract between the CPU device and its kernels.
 *
 * A kernel sees one op: its operands by argument slot (ir/ops.def order,
 * MIL_A_<OP>_<arg>), its outputs, and nothing else.  Every tensor is dense and
 * row-major.  Storage: fp16 as uint16_t bits, bf16 as uint16_t bits, fp32 as
 * float, bool as uint8_t (0/1), intN/uintN native; other dtypes do not reach
 * kernels.
 *
 * fp16 rule (the ANE's storage semantics): a kernel reads fp16 inputs, computes
 * in fp32 (accumulators fp32) and rounds each output element to fp16 once, on
 * store.  No intermediate fp16 rounding inside an op.
 *
 * Two entry points per op kind:
 *   shape(k)  fill k->out[i]->dtype/rank/dims from the inputs (inputs' dims are
 *             always set; their data is set for constants and, at run time,
 *             for everything).  Kernels whose output shape depends on input
 *             values (reshape with a runtime shape, range_1d, fill...) read the
 *             data when it is non-NULL and return MIL_K_NEED_DATA when it is
 *             NULL (the device then sizes the buffer at run time).
 *   run(k)    compute outputs; out[i]->data is preallocated with the shape
 *             that shape() produced.  No allocation in run() except through
 *             k->scratch (sized by the device from the kernel's scratch()).
 * Both return 0 on success or a negative MIL_K_* code with a message written
 * by mil_k_fail().
 */
#ifndef MILC_RUNTIME_CPU_KERNEL_H
#define MILC_RUNTIME_CPU_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

enum { MIL_K_OK = 0, MIL_K_ERROR = -1, MIL_K_NEED_DATA = -2, MIL_K_UNSUPPORTED = -3 };

/* The CPU device's thread pool (runtime/cpu/pool.c). */
typedef struct MilPool MilPool;
typedef void (*MilPoolFn)(void *arg, int tid, int nthreads);
MilPool *mil_pool_new(int nthreads);       /* nthreads - 1 workers; NULL on OOM */
void mil_pool_free(MilPool *p);
int mil_pool_size(const MilPool *p);       /* 1 for NULL */
/* fn(arg, t, n) on every thread t < n (t = 0 is the caller); returns when all
 * are done.  Called from inside a job, or while another thread's job runs,
 * it runs fn(arg, 0, 1) only. */
void mil_pool_run(MilPool *p, MilPoolFn fn, void *arg);
int mil_cpu_default_threads(void);         /* CPUs this process may run on */

typedef struct MilKernelCtx {
    MilOpKind kind;
    int nslots;                    /* number of ARG rows of this op */
    const int *slot_n;             /* tensors bound to slot s (0 = absent, >1 variadic) */
    const MilRtTensor *const *const *slot; /* slot[s][i], i < slot_n[s] */
    int nout;
    MilRtTensor *const *out;
    void *scratch;                 /* run(): at least scratch() bytes, 64-aligned */
    size_t scratch_size;
    char *err;                     /* message buffer for mil_k_fail */
    size_t errsize;
    MilPool *pool;                 /* NULL = run on the calling thread only */
    const float *const *cf32;      /* NULL, or per slot: an fp32 copy of the slot's
                                      (first) tensor when it is a constant that the
                                      device converted once at prepare, else NULL */
} MilKernelCtx;

typedef struct MilKernel {
    int (*shape)(MilKernelCtx *k);
    int (*run)(MilKernelCtx *k);
    size_t (*scratch)(const MilKernelCtx *k); /* NULL = none; called after shape() */
    uint32_t f32_slots;            /* slots (bit s) whose constant fp16/bf16 arguments
                                      the device converts to fp32 once (k->cf32) */
} MilKernel;

/* The table, indexed by MilOpKind; entries with run == NULL are not supported. */
extern const MilKernel mil_cpu_kernels[MIL_OP_COUNT];

/* Operand helpers. */
static inline const MilRtTensor *mil_k_in(const MilKernelCtx *k, int slot) {
    return (slot >= 0 && slot < k->nslots && k->slot_n[slot] > 0) ? k->slot[slot][0] : NULL;
}
int mil_k_fail(MilKernelCtx *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
