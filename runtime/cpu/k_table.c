/* runtime/cpu/k_table.c -- the CPU kernel table, indexed by MilOpKind.
 * Ops not listed here (and every op without OPF_EXEC) have run == NULL and
 * are rejected by the device. */
#include "runtime/cpu/kutil.h"

#define K(op, fam) [MIL_OP_##op] = {fam##_shape, fam##_run, NULL, 0}
#define KS(op, fam) [MIL_OP_##op] = {fam##_shape, fam##_run, fam##_scratch, 0}
/* with constant fp16/bf16 arguments in `slots` converted to fp32 once, at prepare */
#define KF(op, fam, slots) [MIL_OP_##op] = {fam##_shape, fam##_run, fam##_scratch, slots}
#define BIT(op, arg) (1u << MIL_A_##op##_##arg)

KDECLS(k_lstm) KDECLS(k_gru) KDECLS(k_rnn) /* k_rnn.c */
KDECLS(k_einsum) KDECL(k_upsample_bilinear) KDECL(k_l2_pool) KDECL(k_sliding_windows) /* k_extra.c */

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
    /* reductions, sorting */
    K(REDUCE_SUM, k_reduce), K(REDUCE_MEAN, k_reduce), K(REDUCE_MAX, k_reduce), K(REDUCE_MIN, k_reduce),
    K(REDUCE_PROD, k_reduce), K(REDUCE_SUM_SQUARE, k_reduce), K(REDUCE_L1_NORM, k_reduce),
    K(REDUCE_L2_NORM, k_reduce), K(REDUCE_LOG_SUM, k_reduce), K(REDUCE_LOG_SUM_EXP, k_reduce),
    K(REDUCE_ARGMAX, k_argred), K(REDUCE_ARGMIN, k_argred), K(CUMSUM, k_cumsum),
    KS(TOPK, k_topk), KS(ARGSORT, k_argsort),
    /* normalisation, attention */
    K(SOFTMAX, k_softmax), K(LAYER_NORM, k_layer_norm), K(BATCH_NORM, k_batch_norm),
    K(INSTANCE_NORM, k_instance_norm), K(L2_NORM, k_l2_norm), K(LOCAL_RESPONSE_NORM, k_lrn),
    K(RMS_NORM, k_rms_norm), KF(SCALED_DOT_PRODUCT_ATTENTION, k_sdpa, BIT(SCALED_DOT_PRODUCT_ATTENTION, attn_mask)), KS(SDPA_BACKWARD, k_sdpa_bwd),
    K(BAND_PART, k_band_part),
    /* linear algebra, convolution, pooling */
    KF(MATMUL, k_matmul, BIT(MATMUL, x) | BIT(MATMUL, y)),
    KF(LINEAR, k_linear, BIT(LINEAR, x) | BIT(LINEAR, weight)), KF(CONV, k_conv, BIT(CONV, weight)), KS(CONV_TRANSPOSE, k_conv_t),
    K(AVG_POOL, k_pool), K(MAX_POOL, k_pool),
    /* recurrent (k_rnn.c) */
    KS(LSTM, k_lstm), KS(GRU, k_gru), KS(RNN, k_rnn),
    /* k_extra.c */
    KS(EINSUM, k_einsum), K(L2_POOL, k_l2_pool), K(UPSAMPLE_BILINEAR, k_upsample_bilinear),
    K(SLIDING_WINDOWS, k_sliding_windows),
    /* shape and data movement */
    K(RESHAPE, k_reshape), K(TRANSPOSE, k_transpose), K(EXPAND_DIMS, k_expand_dims), K(SQUEEZE, k_squeeze),
    K(CONCAT, k_concat), K(STACK, k_stack), K(SPLIT, k_split), K(SLICE_BY_SIZE, k_slice_size),
    K(SLICE_BY_INDEX, k_slice_index), K(SLICE_UPDATE, k_slice_update), K(TILE, k_tile), K(PAD, k_pad),
    K(FLATTEN2D, k_flatten2d), K(REVERSE, k_reverse), K(DEPTH_TO_SPACE, k_d2s), K(SPACE_TO_DEPTH, k_s2d),
    K(PIXEL_SHUFFLE, k_pixel_shuffle), K(UPSAMPLE_NEAREST_NEIGHBOR, k_upsample_nn), K(CROP, k_crop),
    K(GATHER, k_gather), K(GATHER_ALONG_AXIS, k_gather_axis), K(GATHER_ND, k_gather_nd),
    KS(SCATTER, k_scatter), KS(SCATTER_ALONG_AXIS, k_scatter_axis), KS(SCATTER_ND, k_scatter_nd),
    K(ONE_HOT, k_one_hot),
    K(CONST, k_const), K(FILL, k_fill), K(FILL_LIKE, k_fill_like), K(RANGE_1D, k_range), K(SHAPE, k_shapeop),
    K(IDENTITY, k_identity),
    /* constexpr */
    K(CONSTEXPR_AFFINE_DEQUANTIZE, k_affine_deq), K(CONSTEXPR_CAST, k_cx_cast), K(CONSTEXPR_LUT_TO_DENSE, k_lut),
    K(CONSTEXPR_SPARSE_TO_DENSE, k_sparse), K(CONSTEXPR_BLOCKWISE_SHIFT_SCALE, k_blockwise),
};
