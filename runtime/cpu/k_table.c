/* runtime/cpu/k_table.c -- the CPU kernel table, indexed by MilOpKind.
 * Ops not listed here (and every op without OPF_EXEC) have run == NULL and
 * are rejected by the device. */
#include "runtime/cpu/kutil.h"

#define K(op, fam) [MIL_OP_##op] = {fam##_shape, fam##_run, NULL}
#define KS(op, fam) [MIL_OP_##op] = {fam##_shape, fam##_run, fam##_scratch}

const MilKernel mil_cpu_kernels[MIL_OP_COUNT] = {
    /* element-wise binary, comparisons, logical */
    K(ADD, k_binary), K(SUB, k_binary), K(MUL, k_binary), K(REAL_DIV, k_binary),
    K(POW, k_binary), K(MAXIMUM, k_binary), K(MINIMUM, k_binary), K(FLOOR_DIV, k_binary),
    K(MOD, k_binary),
    K(EQUAL, k_binary), K(NOT_EQUAL, k_binary), K(GREATER, k_binary), K(GREATER_EQUAL, k_binary),
    K(LESS, k_binary), K(LESS_EQUAL, k_binary),
    K(LOGICAL_AND, k_binary), K(LOGICAL_OR, k_binary), K(LOGICAL_XOR, k_binary),
    K(LOGICAL_NOT, k_unary),
    /* unary */
    K(ABS, k_unary), K(ACOS, k_unary), K(ASIN, k_unary), K(ATAN, k_unary), K(ATANH, k_unary),
    K(CEIL, k_unary), K(COS, k_unary), K(COSH, k_unary), K(ERF, k_unary), K(EXP, k_unary),
    K(EXP2, k_unary), K(FLOOR, k_unary), K(INVERSE, k_unary), K(LOG, k_unary), K(RELU, k_unary),
    K(RELU6, k_unary), K(ROUND, k_unary), K(RSQRT, k_unary), K(SIGMOID, k_unary), K(SIGN, k_unary),
    K(SILU, k_unary), K(SIN, k_unary), K(SINH, k_unary), K(SOFTPLUS, k_unary), K(SOFTSIGN, k_unary),
    K(SQRT, k_unary), K(SQUARE, k_unary), K(TAN, k_unary), K(TANH, k_unary), K(ELU, k_unary),
    K(GELU, k_unary), K(LEAKY_RELU, k_unary), K(LINEAR_ACTIVATION, k_unary),
    K(SCALED_TANH, k_unary), K(SIGMOID_HARD, k_unary), K(THRESHOLDED_RELU, k_unary),
    K(CLIP, k_clip), K(PRELU, k_prelu), K(SOFTPLUS_PARAMETRIC, k_softplus_p),
    K(SELECT, k_select), K(CAST, k_cast),
};
