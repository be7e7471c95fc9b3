/* examples/train/trainer.h -- the training loop's machinery for mil-train:
 * compiled kernels bound to caller-owned buffers, one training step
 * (forward, backward, loss scaling, clipping, AdamW), validation,
 * checkpoints and sampling.  Everything that is model math runs in the
 * milc-compiled kernels (model.h); C here only moves data, updates weights
 * and samples from logits.  Errors are returned (-1 + message in err),
 * never printed: main.c decides.
 */
#ifndef MILC_TRAIN_TRAINER_H
#define MILC_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "examples/train/model.h"

typedef struct OptConfig {
    double lr;          /* peak learning rate */
    int warmup;         /* linear warmup steps */
    double min_lr_frac; /* cosine decays to lr * min_lr_frac at `steps` */
    int steps;          /* total steps (for the schedule) */
    double beta1, beta2, eps, weight_decay, clip;  /* clip <= 0: none */
} OptConfig;

typedef struct TrainState {
    int64_t step;       /* steps done */
    uint64_t rng;       /* data sampling state (random windows) */
    float loss_scale;   /* fp16 only (1 in fp32) */
    int32_t good_steps; /* finite steps since the last scale change */
    int64_t skipped;    /* steps skipped for inf/NaN gradients */
} TrainState;

typedef struct Trainer Trainer;

typedef struct TrainerOptions {
    ModelConfig model;
    const char *device;     /* "cpu", "ane", "ane-sim" */
    const char *cache_dir;  /* where the .milb kernels are cached; NULL = no cache */
    const char *dump_dir;   /* --dump-mil: forward.mil, grad.mil, kernels.mil; NULL = none */
    bool sample_only;       /* build the sampling program (batch 1, logits) only */
    bool split_weight_grads;  /* --split-weight-grads: the layer's dW in layer_dw (cpu device only) */
    bool cache_hit;         /* OUT: kernels came from the cache */
    char cache_path[1024];  /* OUT: the .milb used (the CPU part on an ANE device) */
    char cache_path_ane[1024];  /* OUT: the ANE part's .milb ("" on cpu) */
    double compile_ms;      /* OUT */
    char placement[512];    /* OUT: which function runs on which device, and why */
    int ane_warnings;       /* OUT: ANE legality findings on the ANE part (-O2, not --strict) */
    char ane_first_warning[512];
} TrainerOptions;

Trainer *trainer_new(TrainerOptions *o, char *err, size_t errlen);
void trainer_free(Trainer *t);

/* The parameter table and the flat fp32 arrays (params, grads, Adam m, v). */
const ParamInfo *trainer_params(const Trainer *t, int *n);
size_t trainer_nparams(const Trainer *t);
float *trainer_weights(Trainer *t);
float *trainer_grads(Trainer *t);
TrainState *trainer_state(Trainer *t);

/* Init from seed: matrices N(0, 0.02) (wo, w2 scaled by 1/sqrt(2L), GPT-2
 * style), the two embeddings N(0, 1/D) so that the residual stream starts
 * near unit RMS (with 0.02 the RMSNorm backward's rrms^3 overflows fp16),
 * norms 1; Adam moments zero. */
void trainer_init_weights(Trainer *t, uint64_t seed);

/* Forward + backward on one batch (tokens/targets: batch * seq int32).
 * Gradients (divided by the loss scale) land in trainer_grads; *loss is the
 * mean cross-entropy; *finite is false when any gradient is inf/NaN. */
int trainer_grad(Trainer *t, const int32_t *tokens, const int32_t *targets, float *loss, bool *finite, char *err,
                 size_t errlen);
/* The learning rate at step (0-based). */
double trainer_lr(const OptConfig *o, int64_t step);
/* One whole step: grad, then (if finite) clip + AdamW, loss-scale update;
 * state->step advances either way.  *lr and *gnorm report what was used. */
int trainer_step(Trainer *t, const OptConfig *o, const int32_t *tokens, const int32_t *targets, float *loss,
                 double *lr, double *gnorm, bool *skipped, char *err, size_t errlen);
/* Mean loss of the forward functions (no taps) on one batch. */
int trainer_eval(Trainer *t, const int32_t *tokens, const int32_t *targets, float *loss, char *err, size_t errlen);

/* Checkpoints: header (magic, version, sizes, config), state, weights, Adam
 * m and v, XXH3-64 checksum; written to PATH.tmp, fsync'd, renamed. */
int trainer_save(Trainer *t, const char *path, char *err, size_t errlen);
/* Loads into t; refuses another config, a truncated or corrupted file. */
int trainer_load(Trainer *t, const char *path, char *err, size_t errlen);
/* Reads only the model config of a checkpoint (for --sample). */
int trainer_peek_config(const char *path, ModelConfig *c, char *err, size_t errlen);

/* Generates n tokens after prompt (np tokens) with the sampling program
 * (sample_only trainer); temperature 0 = greedy.  out gets n tokens. */
int trainer_sample(Trainer *t, const int32_t *prompt, int np, int n, double temperature, uint64_t seed,
                   int32_t *out, char *err, size_t errlen);

/* The ANE device's counters (compiles, cache hits, evaluations); -1 on cpu. */
int trainer_ane_stats(const Trainer *t, MilRtAneStats *st);

/* Time per compiled function so far (--profile). */
#include <stdio.h>
void trainer_print_profile(const Trainer *t, FILE *out);

/* Bytes the training run needs (weights, optimiser, activations, taps). */
double trainer_memory_estimate(const ModelConfig *c);

/* The random generator (also used by main.c for data windows). */
uint64_t rng_next(uint64_t *s);

#endif /* MILC_TRAIN_TRAINER_H */
