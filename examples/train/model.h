/* examples/train/model.h -- the byte-level transformer LM of mil-train as MIL
 * programs, and the compiled kernels that run it.
 *
 * The model (pre-norm decoder, no biases, no positional encoding beyond the
 * causal mask, as in the seed's static pipeline):
 *   x0      = emb[tokens] + pos                             embed
 *   for each layer (one compiled function, weights are INPUTS):
 *     x    += wo . attn(rmsnorm(x) * attn_norm)             layer
 *     x    += w2 . (silu(w1 . h) * (w3 . h)),  h = rmsnorm(x) * ffn_norm
 *   loss    = mean(CE(wcls . (rmsnorm(x) * final_norm), targets))   head
 * (pos: a learned absolute position embedding [S, D].)  A linear map W . x is matmul(x, W, transpose_y = true) with W [out, in],
 * PyTorch's nn.Linear layout.
 *
 * model_build() writes the forward functions with the IR builder API;
 * model_compile() differentiates them (mil_grad), optimises them (-O2 for the
 * device's target) and lowers them to a runtime program, cached as a .milb
 * keyed by the hash of the configuration and the generated MIL.
 */
#ifndef MILC_TRAIN_MODEL_H
#define MILC_TRAIN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

typedef struct ModelConfig {
    int vocab;      /* V: 256 for bytes */
    int dim;        /* D */
    int layers;     /* L */
    int heads;      /* NH (D % NH == 0) */
    int ffn;        /* F: SwiGLU hidden size */
    int seq;        /* S: tokens per sequence */
    int batch;      /* B: sequences per step */
    MilDType dtype; /* MIL_DT_FP32 or MIL_DT_FP16: storage of every kernel tensor */
} ModelConfig;

/* The parameters in checkpoint / optimiser order: the token and position
 * embeddings, per layer
 * the nine tensors below, the final norm and the classifier. */
enum { LP_ATTN_NORM, LP_WQ, LP_WK, LP_WV, LP_WO, LP_FFN_NORM, LP_W1, LP_W3, LP_W2, LP_COUNT };
extern const char *const layer_param_names[LP_COUNT];

typedef struct ParamInfo {
    char name[32];       /* "emb", "l3.wq", "final_norm", "wcls" */
    const char *input;   /* the kernel input it binds to ("emb", "wq", ...) */
    int64_t dims[2];
    int rank;
    size_t offset;       /* in floats, into the flat parameter array */
    size_t numel;
    bool decay;          /* weight decay applies (matrices except the embedding) */
    int layer;           /* -1 for emb / final_norm / wcls */
} ParamInfo;

/* Fills the parameter table (malloc'd array, *n entries); returns the total
 * number of floats. */
size_t model_params(const ModelConfig *c, ParamInfo **out, int *n);

/* The forward program for the configured sizes: functions "embed"
 * (tokens, emb, pos -> x) and "layer" (x, attn_norm, wq, wk, wv, wo, ffn_norm,
 * w1, w3, w2 -> y), then for MODEL_TRAIN "head" (x, final_norm, wcls,
 * targets -> loss), for MODEL_SAMPLE "logits" (x, final_norm, wcls ->
 * logits).  parts selects the functions: MODEL_PART_OUTER = embed + head (or
 * logits), MODEL_PART_LAYER = layer.
 *
 * Layouts: MODEL_LAYOUT_BSD keeps activations [B, S, D] and weights in
 * nn.Linear's [OUT, IN] (the CPU device).  MODEL_LAYOUT_ANE gives the layer
 * the ANE's layout (docs/ane-notes.md §4, §13): x and y [1, D, 1, B*S]
 * channel-first, weights [1, OUT, 1, IN], norms [1, 1, 1, D] -- the same
 * bytes as the BSD weights, so the parameter arrays bind unchanged -- and
 * embed / head convert between [B, S, D] and [1, D, 1, B*S] with MIL
 * reshape + transpose ops at their boundary.  NULL with errors in d. */
typedef enum { MODEL_TRAIN, MODEL_SAMPLE } ModelMode;
typedef enum { MODEL_LAYOUT_BSD, MODEL_LAYOUT_ANE } ModelLayout;
enum { MODEL_PART_OUTER = 1, MODEL_PART_LAYER = 2, MODEL_PART_ALL = 3 };
MilProgram *model_build(const ModelConfig *c, ModelMode mode, ModelLayout layout, unsigned parts, MilDiag *d);

/* Adds embed_fwd/embed_bwd, layer_fwd/layer_bwd and head_fwd/head_bwd by
 * mil_grad (taps automatic; every output gets a cotangent input, so the
 * loss's d_loss carries the fp16 loss scale) for the functions p has;
 * recompute as in MilGradOptions; split_weight_grads moves the layer's
 * weight gradients into layer_dw (fed by layer_bwd's intermediate
 * cotangents, wired by name).
 * Returns the number of errors. */
int model_grad(MilProgram *p, MilRecompute recompute, bool split_weight_grads, MilDiag *d);

/* A compiled function with its plan and its argument arrays. */
typedef struct Kernel {
    const MilRtFunc *f;
    MilRtPlan *plan;
    MilRtTensor *in;     /* f->ninputs; dtype/rank/dims set, data set by the caller */
    MilRtTensor *out;    /* f->noutputs; data = caller's buffer or NULL */
    double ms;           /* time spent in kernel_run, and how often */
    long calls;
} Kernel;

int kernel_input(const Kernel *k, const char *name);   /* index or -1 */
int kernel_output(const Kernel *k, const char *name);  /* index or -1 */
/* Runs with the caller's output buffers (mil_rt_plan_run_into). */
int kernel_run(Kernel *k, MilRtErr *e);

#endif /* MILC_TRAIN_MODEL_H */
