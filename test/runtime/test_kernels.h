/* test/runtime/test_kernels.h -- a small harness that calls the CPU kernels
 * directly through the MilKernelCtx contract, with operands from .npy
 * fixtures (test/runtime/fixtures, made by test/gen_fixtures.py) or inline. */
#ifndef MILC_TEST_KERNELS_H
#define MILC_TEST_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/cpu/kernel.h"

#define KT_MAXSLOT 32
#define KT_MAXVAR 16
#define KT_MAXT 64

typedef struct KT {
    MilOpKind kind;
    int nslots, nout;
    int slot_n[KT_MAXSLOT];
    const MilRtTensor *slotv[KT_MAXSLOT][KT_MAXVAR];
    const MilRtTensor *const *slotp[KT_MAXSLOT];
    MilRtTensor outs[8];
    MilRtTensor *outp[8];
    MilRtTensor pool[KT_MAXT];
    const char *strs[KT_MAXT];
    int npool;
    void *scratch;
    char err[512];
    MilKernelCtx ctx;
} KT;

void kt_init(KT *t, MilOpKind kind, int nout);
void kt_free(KT *t);
/* Slot index of argument `name` of t's op (-1 if none). */
int kt_slot(const KT *t, const char *name);
/* A tensor owned by t (data copied; NULL data = zeros). */
MilRtTensor *kt_tensor(KT *t, MilDType dt, int rank, const int64_t *dims, const void *data);
void kt_bind(KT *t, int slot, const MilRtTensor *x);
/* Convenience binders by argument name. */
void kt_f32(KT *t, const char *arg, float v);
void kt_i32(KT *t, const char *arg, int32_t v);
void kt_bool(KT *t, const char *arg, bool v);
void kt_str(KT *t, const char *arg, const char *s);
void kt_i32v(KT *t, const char *arg, int n, const int32_t *v);
/* Reads an .npy fixture (relative to test/runtime/fixtures) into t. */
MilRtTensor *kt_npy(KT *t, const char *file);
/* shape() only; returns its code. */
int kt_shape(KT *t);
/* shape, allocate outputs and scratch, run; returns the first non-zero code. */
int kt_run(KT *t);
/* Loads fixture case `name`: every <name>.<arg>.npy / .str / <arg>.<i>.npy
 * bound to its slot; returns the number of expected outputs found. */
int kt_load_case(KT *t, const char *name);
/* Compares out[i] with <name>.out<i>.npy: dtype, shape exactly; values within
 * |got - want| <= atol + rtol * |want| (ints and bools exactly; NaN == NaN).
 * Returns true on success; prints the first mismatch. */
bool kt_check(KT *t, const char *name, int i, double rtol, double atol);
/* Whole case: load, run, check every output with tolerances by dtype
 * (fp16 1e-3/1e-3, fp32 1e-5/1e-5 unless rtol/atol > 0 given). */
bool kt_case(MilOpKind kind, const char *name, double rtol, double atol);
/* Runs a case and expects an error whose message contains `needle`. */
bool kt_case_fails(MilOpKind kind, const char *name, const char *needle);

#endif
