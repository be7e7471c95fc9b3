/* examples/train/trainer.c -- kernels, buffers, the training step, AdamW,
 * checkpoints and sampling for mil-train (trainer.h).
 *
 * Memory follows llm.c: the parameters, their gradients and the two Adam
 * moments are four flat fp32 arrays laid out by the parameter table
 * (model_params), so a checkpoint is three fwrites and zeroing is a memset.
 * Kernel arguments point straight into them: a layer's weight inputs are
 * slices of the parameter array (fp32 runs) or of its fp16 copy (fp16 runs),
 * and a layer's weight gradients are written by the backward kernel straight
 * into the gradient array (or its fp16 twin).  Forward taps of every layer
 * live in buffers the trainer owns; the forward kernel writes them
 * (mil_rt_plan_run_into) and the backward kernel reads them, no copies.
 *
 * Buffers are found by NAME (the naming contract of mil_grad in
 * passes/passes.h): each kernel call builds a small environment of named
 * buffers -- "x", "y", "d_x", "d_y", the weight names, "d_<weight>", the tap
 * names -- and every kernel input and output is looked up in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "backend/backend.h"
#include "examples/train/trainer.h"

#ifdef MILC_HAVE_ANE_SIM
#include "runtime/ane/ane_sim.h"
#endif

#define MAX_ENV 64
/* The optimiser's passes over the parameters (trainer_grad's unscale and
 * sum of squares, clipping + AdamW) run on the CPU device's threads in
 * blocks of OPT_BLOCK parameters (see "optimiser" below). */
#define OPT_BLOCK 16384
#define PI 3.14159265358979323846

struct Trainer {
    ModelConfig c;
    bool sample_only;
    MilRtDevice *cpu;              /* embed, head, logits (and everything on --device cpu) */
    MilRtDevice *ane;              /* the layer kernels on --device ane|ane-sim; NULL on cpu */
    MilRtProgram *rp, *rp_ane;     /* the CPU part and the ANE part */
    ParamInfo *pi;
    int npi;
    size_t np;
    float *w, *g, *m, *v;          /* np floats each */
    double *bss;                   /* per OPT_BLOCK parameters: the gradient's sum of squares */
    double gss;                    /* their sum after the last trainer_grad */
    uint16_t *w16, *g16;           /* fp16 runs: kernel copies of w and g */
    size_t es;                     /* bytes per activation element */
    Kernel embed_fwd, embed_bwd, layer_fwd, layer_bwd, layer_dw, head_fwd, head_bwd;
    Kernel embed, layer, head, logits;
    void **x;                      /* L + 1 activations [B,S,D] */
    void *dx[2];                   /* cotangent ping-pong [B,S,D] */
    void ***ltaps;                 /* [L][layer_fwd output] tap buffers */
    void **bextra;                 /* --split-weight-grads: layer_bwd's cotangents for layer_dw */
    void **htaps, **etaps;         /* head_fwd / embed_fwd outputs */
    void *lossbuf, *dlossbuf;      /* scalars */
    void *logitsbuf;               /* sampling: [1,S,V] */
    TrainState st;
};

typedef struct Env {
    int n;
    const char *name[MAX_ENV];
    void *data[MAX_ENV];
} Env;

static int errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------- rng */

/* splitmix64: tiny, full period, and its state is one word for checkpoints */
uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static double rng_normal(uint64_t *s) {
    double u1 = rng_uniform(s), u2 = rng_uniform(s);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2);
}

/* ------------------------------------------------------------ accessors */

const ParamInfo *trainer_params(const Trainer *t, int *n) { *n = t->npi; return t->pi; }
size_t trainer_nparams(const Trainer *t) { return t->np; }
float *trainer_weights(Trainer *t) { return t->w; }
float *trainer_grads(Trainer *t) { return t->g; }
TrainState *trainer_state(Trainer *t) { return &t->st; }

void trainer_init_weights(Trainer *t, uint64_t seed) {
    uint64_t s = seed;
    double proj = 0.02 / sqrt(2.0 * t->c.layers), embed = 1.0 / sqrt((double)t->c.dim);
    for (int i = 0; i < t->npi; i++) {
        const ParamInfo *p = &t->pi[i];
        float *w = t->w + p->offset;
        bool scaled = !strcmp(p->input, "wo") || !strcmp(p->input, "w2");
        bool emb = !strcmp(p->input, "emb") || !strcmp(p->input, "pos");
        for (size_t k = 0; k < p->numel; k++)
            w[k] = p->rank == 1 ? 1.0f : (float)(rng_normal(&s) * (emb ? embed : scaled ? proj : 0.02));
    }
    memset(t->m, 0, t->np * sizeof(float));
    memset(t->v, 0, t->np * sizeof(float));
    t->st = (TrainState){.loss_scale = t->c.dtype == MIL_DT_FP16 ? 1024.0f : 1.0f, .rng = seed ^ 0x5DEECE66Dull};
}

/* ------------------------------------------------------------- compiling */

static MilRtDevice *open_device(const char *name, char *err, size_t n) {
    MilRtErr e = {{0}};
    MilRtDevice *dev = NULL;
#ifdef MILC_HAVE_ANE_SIM
    if (!strcmp(name, "ane-sim")) dev = mil_ane_sim_device_new(&e);
    else
#endif
        dev = mil_rt_device_new(name, &e);
    if (!dev) errf(err, n, "device '%s': %s", name, e.msg);
    return dev;
}

static int diag_err(MilDiag *d, const char *what, char *err, size_t n) {
    char m[768] = "";
    if (d->n) mil_diag_format(d, 0, m, sizeof m);
    return errf(err, n, "%s: %s%s", what, m, d->n > 1 ? " (and more)" : "");
}

static int write_text(const char *dir, const char *name, const MilProgram *p, char *err, size_t n) {
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = mil_print(p, MIL_SPELLING_SAME, &len);
    MilDiag d;
    mil_diag_init(&d);
    int rc = text ? mil_write_file_atomic(path, text, len, &d) : -1;
    if (rc) diag_err(&d, path, err, n);
    free(text);
    mil_diag_free(&d);
    return rc;
}

/* One compiled part of the model (trainer_new compiles one for the CPU
 * device, or two -- the layer for the ANE, the rest for the CPU -- for an
 * ANE device). */
typedef struct Part {
    unsigned parts;          /* MODEL_PART_* */
    ModelLayout layout;
    MilTarget target;
    const char *prefix;      /* of the --dump-mil files: "" or "ane-" */
    MilRecompute recompute;  /* mil_grad's choice between taps and recomputation */
    bool cache_hit;          /* OUT */
    char *cache_path;        /* OUT: the .milb used (size 1024) */
    int warnings;            /* OUT: diagnostics of -O2 (ANE legality findings) */
    char first_warning[512];
} Part;

/* A cached .milb is valid only for the compiler that wrote it.  mil-train
 * links the compiler libraries statically, so the bytes of its own executable
 * stand for the compiler's code: a rebuild with a changed pass (same version
 * string) compiles afresh instead of loading kernels an older build made.
 * Where the executable cannot be read (no /proc), the version string in the
 * salt alone keys the cache. */
static void hash_own_executable(XXH3_state_t *hs) {
    FILE *f = fopen("/proc/self/exe", "rb");
    if (!f) return;
    char buf[1 << 15];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) XXH3_64bits_update(hs, buf, k);
    fclose(f);
}

/* Builds the program, differentiates and optimises it, and returns it
 * lowered -- from the .milb cache when a previous run compiled the same
 * MIL for the same target. */
static MilRtProgram *compile(const TrainerOptions *o, MilRtDevice *dev, Part *pt, char *err, size_t n) {
    MilDiag d;
    mil_diag_init(&d);
    MilRtProgram *rp = NULL;
    MilTarget target = pt->target;
    ModelConfig c = o->model;
    char name[64];
    if (o->sample_only) c.batch = 1;
    MilProgram *p = model_build(&c, o->sample_only ? MODEL_SAMPLE : MODEL_TRAIN, pt->layout, pt->parts, &d);
    if (!p) { diag_err(&d, "building the model", err, n); goto done; }

    /* the cache key: the forward MIL, the target, the pipeline and the
     * compiler that ran it (hash_own_executable) */
    size_t len;
    char *text = mil_print(p, MIL_SPELLING_SAME, &len);
    if (!text) { errf(err, n, "out of memory"); goto done; }
    char salt[128];
    snprintf(salt, sizeof salt, "mil-train kernels v2 target=%d recompute=%d split=%d O2 milc %s", (int)target,
             (int)pt->recompute, (int)o->split_weight_grads, MIL_VERSION_STRING);
    XXH3_state_t *hs = XXH3_createState();
    XXH3_64bits_reset(hs);
    XXH3_64bits_update(hs, text, len);
    XXH3_64bits_update(hs, salt, strlen(salt));
    hash_own_executable(hs);
    uint64_t hash = XXH3_64bits_digest(hs);
    XXH3_freeState(hs);
    free(text);
    if (o->cache_dir)
        snprintf(pt->cache_path, 1024, "%s/kernels-%016llx.milb", o->cache_dir, (unsigned long long)hash);
    struct stat sb;
    MilRtErr e = {{0}};
    if (o->cache_dir && !o->dump_dir && stat(pt->cache_path, &sb) == 0) {
        rp = mil_rt_milb_load(pt->cache_path, NULL, &e);
        if (rp) { pt->cache_hit = true; goto done; }
        /* a stale or damaged cache entry is rebuilt */
    }
    if (o->dump_dir) {
        if (mil_mkdirs(o->dump_dir)) { errf(err, n, "%s: cannot create directory: %s", o->dump_dir, strerror(errno)); goto done; }
        snprintf(name, sizeof name, "%sforward.mil", pt->prefix);
        if (write_text(o->dump_dir, name, p, err, n)) goto done;
    }
    if (!o->sample_only && model_grad(p, pt->recompute, o->split_weight_grads, &d)) { diag_err(&d, "mil_grad", err, n); goto done; }
    snprintf(name, sizeof name, "%sgrad.mil", pt->prefix);
    if (o->dump_dir && !o->sample_only && write_text(o->dump_dir, name, p, err, n)) goto done;
    MilPassOptions po;
    mil_pass_options_init(&po);
    po.opt_level = 2;
    po.target = target;
    if (mil_pass_run(p, &po, &d)) { diag_err(&d, "-O2", err, n); goto done; }
    /* the ANE device takes standard MIL only: milc's extension ops (rms_norm,
     * sdpa_backward) expanded, as milc --target=ane does for ane-mil */
    if (target != MIL_TARGET_CPU && mil_ane_expand_ext(p, &d)) { diag_err(&d, "expanding extension ops", err, n); goto done; }
    pt->warnings = d.n;
    if (d.n) mil_diag_format(&d, 0, pt->first_warning, sizeof pt->first_warning);
    snprintf(name, sizeof name, "%skernels.mil", pt->prefix);
    if (o->dump_dir && write_text(o->dump_dir, name, p, err, n)) goto done;
    if (o->cache_dir) {
        if (mil_milb_write_files(p, pt->cache_path, NULL, NULL, &d)) { diag_err(&d, pt->cache_path, err, n); goto done; }
        rp = mil_rt_milb_load(pt->cache_path, NULL, &e);
        if (!rp) errf(err, n, "%s", e.msg);
    } else {
        MilLowerOptions lo = {.device = dev};
        rp = mil_lower(p, &lo, &d);
        if (!rp) diag_err(&d, "lowering", err, n);
    }
done:
    mil_program_free(p);
    mil_diag_free(&d);
    return rp;
}

/* ---------------------------------------------------------------- kernels */

static size_t tensor_bytes(const MilRtTensor *t) { return mil_rt_nbytes(t); }

static int kernel_open(Trainer *t, Kernel *k, const char *name, char *err, size_t n) {
    MilRtErr e = {{0}};
    /* per-function placement: the ANE part's functions on the ANE device */
    k->f = t->rp_ane ? mil_rt_program_find_func(t->rp_ane, name) : NULL;
    MilRtDevice *dev = k->f ? t->ane : t->cpu;
    if (!k->f) k->f = mil_rt_program_find_func(t->rp, name);
    if (!k->f) return errf(err, n, "the compiled program has no function '%s'", name);
    k->in = calloc((size_t)k->f->ninputs + 1, sizeof *k->in);
    k->out = calloc((size_t)k->f->noutputs + 1, sizeof *k->out);
    if (!k->in || !k->out) return errf(err, n, "out of memory");
    for (int i = 0; i < k->f->ninputs; i++) mil_rt_value_tensor(&k->f->values[k->f->inputs[i]], &k->in[i]);
    for (int i = 0; i < k->f->noutputs; i++) {
        mil_rt_value_tensor(&k->f->values[k->f->outputs[i]], &k->out[i]);
        k->out[i].data = NULL;
        for (int j = 0; j < k->out[i].rank; j++)
            if (k->out[i].dims[j] < 0)
                return errf(err, n, "function '%s': output '%s' has an unknown shape", name,
                            k->f->values[k->f->outputs[i]].name);
    }
    k->plan = mil_rt_prepare(dev, k->f, k->in, &e);
    if (!k->plan) return errf(err, n, "function '%s': %s", name, e.msg);
    return 0;
}

static void kernel_close(Kernel *k) {
    if (k->plan) mil_rt_plan_free(k->plan);
    free(k->in);
    free(k->out);
    memset(k, 0, sizeof *k);
}

static void env_add(Env *v, const char *name, void *data) {
    if (v->n < MAX_ENV) { v->name[v->n] = name; v->data[v->n] = data; v->n++; }
}

static void *env_get(const Env *v, const char *name) {
    for (int i = v->n - 1; i >= 0; i--)
        if (!strcmp(v->name[i], name)) return v->data[i];
    return NULL;
}

/* Every input and output of k bound to the buffer of its name, then run. */
static int run(Kernel *k, const Env *env, char *err, size_t n) {
    for (int i = 0; i < k->f->ninputs; i++) {
        const char *nm = k->f->values[k->f->inputs[i]].name;
        if (!(k->in[i].data = env_get(env, nm)))
            return errf(err, n, "function '%s': no buffer for input '%s'", k->f->name, nm);
    }
    for (int i = 0; i < k->f->noutputs; i++) {
        const char *nm = k->f->values[k->f->outputs[i]].name;
        if (!(k->out[i].data = env_get(env, nm)))
            return errf(err, n, "function '%s': no buffer for output '%s'", k->f->name, nm);
    }
    MilRtErr e = {{0}};
    double t0 = now_ms();
    if (kernel_run(k, &e)) return errf(err, n, "function '%s': %s", k->f->name, e.msg);
    k->ms += now_ms() - t0;
    k->calls++;
    return 0;
}

/* One buffer per output of k that is a tap (every output not in skip). */
static void **alloc_taps(const Kernel *k, const char *const *skip) {
    void **b = calloc((size_t)k->f->noutputs + 1, sizeof *b);
    if (!b) return NULL;
    for (int i = 0; i < k->f->noutputs; i++) {
        const char *nm = k->f->values[k->f->outputs[i]].name;
        bool skipped = false;
        for (int j = 0; skip[j]; j++) skipped |= !strcmp(skip[j], nm);
        if (!skipped && !(b[i] = calloc(1, tensor_bytes(&k->out[i]) + 1))) return b; /* caller checks */
    }
    return b;
}

static void free_taps(const Kernel *k, void **b) {
    if (!b) return;
    for (int i = 0; k->f && i < k->f->noutputs; i++) free(b[i]);
    free(b);
}

static bool taps_ok(const Kernel *k, void **b, const char *const *skip) {
    if (!b) return false;
    for (int i = 0; i < k->f->noutputs; i++) {
        const char *nm = k->f->values[k->f->outputs[i]].name;
        bool skipped = false;
        for (int j = 0; skip[j]; j++) skipped |= !strcmp(skip[j], nm);
        if (!skipped && !b[i]) return false;
    }
    return true;
}

static void env_taps(Env *v, const Kernel *k, void **b) {
    for (int i = 0; i < k->f->noutputs; i++)
        if (b[i]) env_add(v, k->f->values[k->f->outputs[i]].name, b[i]);
}

/* ------------------------------------------------------------ lifecycle */

static void *weight_ptr(Trainer *t, const ParamInfo *p) {
    return t->w16 ? (void *)(t->w16 + p->offset) : (void *)(t->w + p->offset);
}

static void *grad_ptr(Trainer *t, const ParamInfo *p) {
    return t->g16 ? (void *)(t->g16 + p->offset) : (void *)(t->g + p->offset);
}

/* name -> "d_" name, in a static table that lives as long as the process */
static const char *dname(const char *name) {
    static char names[LP_COUNT + 8][40];
    static int n;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i] + 2, name)) return names[i];
    if (n == (int)(sizeof names / sizeof names[0])) return "d_?";
    snprintf(names[n], sizeof names[n], "d_%s", name);
    return names[n++];
}

/* the weights of layer l (or the head/embedding: l = -1) and their gradients */
static void env_params(Env *v, Trainer *t, int l) {
    for (int i = 0; i < t->npi; i++) {
        const ParamInfo *p = &t->pi[i];
        if (p->layer != l) continue;
        env_add(v, p->input, weight_ptr(t, p));
        env_add(v, dname(p->input), grad_ptr(t, p));
    }
}

static const char *const no_taps_layer[] = {"y", NULL};
static const char *const no_taps_head[] = {"loss", NULL};
static const char *const no_taps_embed[] = {"x", NULL};

Trainer *trainer_new(TrainerOptions *o, char *err, size_t n) {
    Trainer *t = calloc(1, sizeof *t);
    if (!t) { errf(err, n, "out of memory"); return NULL; }
    /* sampling an fp32 checkpoint on the ANE: fp16 kernels over the fp32 weights */
    if (o->sample_only && strcmp(o->device, "cpu")) o->model.dtype = MIL_DT_FP16;
    t->c = o->model;
    t->sample_only = o->sample_only;
    if (t->sample_only) t->c.batch = 1;
    const ModelConfig *c = &t->c;
    t->es = c->dtype == MIL_DT_FP16 ? 2 : 4;
    t->np = model_params(c, &t->pi, &t->npi);
    size_t nb = t->np * sizeof(float);
    if (!t->pi || !(t->w = calloc(1, nb)) || !(t->g = calloc(1, nb)) || !(t->m = calloc(1, nb)) ||
        !(t->v = calloc(1, nb)) || !(t->bss = calloc(t->np / OPT_BLOCK + 1, sizeof *t->bss)))
        goto oom;
    if (c->dtype == MIL_DT_FP16 && (!(t->w16 = calloc(t->np, 2)) || !(t->g16 = calloc(t->np, 2)))) goto oom;
    bool ane = strcmp(o->device, "cpu") != 0;
    if (ane && o->split_weight_grads) {
        errf(err, n, "--split-weight-grads is wired for --device cpu only (on the ANE the layer backward recomputes "
                     "the forward)");
        goto fail;
    }
    if (ane && c->dtype != MIL_DT_FP16) {
        errf(err, n, "device '%s' runs fp16 kernels (the ANE's numerics): use --precision fp16", o->device);
        goto fail;
    }
    if (!(t->cpu = open_device("cpu", err, n))) goto fail;
    if (ane && !(t->ane = open_device(o->device, err, n))) goto fail;
    double t0 = now_ms();
    /* --device cpu: one program, the model's own [B, S, D] layout.  ANE: the
     * layer (forward, backward: the bulk of the work) compiled for the ANE
     * in its [1, C, 1, S] layout, and the int32 embedding gather and the
     * loss (int32 targets, one_hot: no ANE path) for the CPU device. */
    Part cpu_part = {.parts = ane ? MODEL_PART_OUTER : MODEL_PART_ALL, .layout = ane ? MODEL_LAYOUT_ANE : MODEL_LAYOUT_BSD,
                     .target = MIL_TARGET_CPU, .prefix = "", .cache_path = o->cache_path};
    Part ane_part = {.parts = MODEL_PART_LAYER, .layout = MODEL_LAYOUT_ANE, .target = MIL_TARGET_ANE,
                     .prefix = "ane-", .recompute = MIL_RECOMPUTE_CHEAP, .cache_path = o->cache_path_ane};
    if (!(t->rp = compile(o, t->cpu, &cpu_part, err, n))) goto fail;
    if (ane && !(t->rp_ane = compile(o, t->ane, &ane_part, err, n))) goto fail;
    o->cache_hit = cpu_part.cache_hit && (!ane || ane_part.cache_hit);
    o->compile_ms = now_ms() - t0;
    o->ane_warnings = ane_part.warnings;
    snprintf(o->ane_first_warning, sizeof o->ane_first_warning, "%s", ane_part.first_warning);
    if (ane) {
        const char *fl = t->sample_only ? "layer" : "layer, layer_fwd, layer_bwd";
        const char *fc = t->sample_only ? "embed, logits" : "embed, embed_fwd, embed_bwd, head, head_fwd, head_bwd";
        snprintf(o->placement, sizeof o->placement,
                 "%s: on %s ([1, C, 1, S] fp16 surfaces, weights as inputs)\n"
                 "%s: on cpu (int32 token/target inputs and gather/one_hot are not ANE surfaces or ops)",
                 fl, o->device, fc);
    } else {
        snprintf(o->placement, sizeof o->placement, "all functions: on cpu");
    }

    size_t act = (size_t)c->batch * c->seq * c->dim * t->es;
    if (!(t->x = calloc((size_t)c->layers + 1, sizeof *t->x))) goto oom;
    for (int l = 0; l <= c->layers; l++)
        if (!(t->x[l] = calloc(1, act))) goto oom;
    if (!(t->lossbuf = calloc(1, 8)) || !(t->dlossbuf = calloc(1, 8))) goto oom;
    if (kernel_open(t, &t->embed, "embed", err, n) || kernel_open(t, &t->layer, "layer", err, n)) goto fail;
    if (t->sample_only) {
        if (kernel_open(t, &t->logits, "logits", err, n)) goto fail;
        if (!(t->logitsbuf = calloc(1, tensor_bytes(&t->logits.out[0])))) goto oom;
        return t;
    }
    if (kernel_open(t, &t->head, "head", err, n) || kernel_open(t, &t->embed_fwd, "embed_fwd", err, n) ||
        kernel_open(t, &t->embed_bwd, "embed_bwd", err, n) || kernel_open(t, &t->layer_fwd, "layer_fwd", err, n) ||
        kernel_open(t, &t->layer_bwd, "layer_bwd", err, n) || kernel_open(t, &t->head_fwd, "head_fwd", err, n) ||
        kernel_open(t, &t->head_bwd, "head_bwd", err, n))
        goto fail;
    if (!(t->dx[0] = calloc(1, act)) || !(t->dx[1] = calloc(1, act))) goto oom;
    if (o->split_weight_grads) {
        /* layer_bwd's outputs other than d_x and the d_<weight>s are the
         * cotangents layer_dw reads (by name) */
        const char *skip[LP_COUNT + 2] = {"d_x"};
        for (int k = 0; k < LP_COUNT; k++) skip[k + 1] = dname(layer_param_names[k]);
        if (kernel_open(t, &t->layer_dw, "layer_dw", err, n)) goto fail;
        if (!taps_ok(&t->layer_bwd, t->bextra = alloc_taps(&t->layer_bwd, skip), skip)) goto oom;
    }
    if (!(t->ltaps = calloc((size_t)c->layers, sizeof *t->ltaps))) goto oom;
    for (int l = 0; l < c->layers; l++)
        if (!taps_ok(&t->layer_fwd, t->ltaps[l] = alloc_taps(&t->layer_fwd, no_taps_layer), no_taps_layer)) goto oom;
    if (!taps_ok(&t->head_fwd, t->htaps = alloc_taps(&t->head_fwd, no_taps_head), no_taps_head)) goto oom;
    if (!taps_ok(&t->embed_fwd, t->etaps = alloc_taps(&t->embed_fwd, no_taps_embed), no_taps_embed)) goto oom;
    return t;
oom:
    errf(err, n, "out of memory (the run needs about %.0f MiB)", trainer_memory_estimate(c) / 1048576.0);
fail:
    trainer_free(t);
    return NULL;
}

void trainer_free(Trainer *t) {
    if (!t) return;
    if (t->ltaps)
        for (int l = 0; l < t->c.layers; l++) free_taps(&t->layer_fwd, t->ltaps[l]);
    free(t->ltaps);
    free_taps(&t->head_fwd, t->htaps);
    free_taps(&t->embed_fwd, t->etaps);
    free_taps(&t->layer_bwd, t->bextra);
    Kernel *ks[] = {&t->embed_fwd, &t->embed_bwd, &t->layer_fwd, &t->layer_bwd, &t->layer_dw, &t->head_fwd,
                    &t->head_bwd,  &t->embed,     &t->layer,     &t->head,      &t->logits};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) kernel_close(ks[i]);
    if (t->x)
        for (int l = 0; l <= t->c.layers; l++) free(t->x[l]);
    free(t->x);
    free(t->dx[0]);
    free(t->dx[1]);
    free(t->lossbuf);
    free(t->dlossbuf);
    free(t->logitsbuf);
    mil_rt_program_free(t->rp);
    mil_rt_program_free(t->rp_ane);
    mil_rt_device_free(t->ane);
    mil_rt_device_free(t->cpu);
    free(t->w); free(t->g); free(t->m); free(t->v); free(t->bss);
    free(t->w16); free(t->g16);
    free(t->pi);
    free(t);
}

/* ---------------------------------------------------------- forward/back */

static float read_scalar(const Trainer *t, const void *p) {
    return t->es == 2 ? mil_fp16_to_f32(*(const uint16_t *)p) : *(const float *)p;
}

static void write_scalar(const Trainer *t, void *p, float v) {
    if (t->es == 2) *(uint16_t *)p = mil_f32_to_fp16(v);
    else *(float *)p = v;
}

/* The kernels read fp16 copies of the master weights in fp16 runs. */
static void sync_range(void *arg, int64_t i0, int64_t i1) {
    Trainer *t = arg;
    mil_rt_fp32_to_fp16(t->w + i0, t->w16 + i0, (size_t)(i1 - i0));
}

static void sync_weights(Trainer *t) {
    if (t->w16) mil_rt_device_cpu_parallel(t->cpu, (int64_t)t->np, OPT_BLOCK, sync_range, t);
}

/* Gradients of the blocks [i0, i1) (OPT_BLOCK parameters each): fp16 ones
 * unscaled into fp32, and each block's sum of squares in double, element k
 * of the block into partial k % 8, the partials added in order -- the same
 * sums whichever thread runs the block.  An inf or NaN gradient makes its
 * block's sum inf or NaN (a finite float squared is finite in double). */
static void grad_range(void *arg, int64_t i0, int64_t i1) {
    Trainer *t = arg;
    float inv = 1.0f / t->st.loss_scale;
    for (int64_t b0 = i0; b0 < i1; b0 += OPT_BLOCK) {
        size_t n = (size_t)(i1 - b0 < OPT_BLOCK ? i1 - b0 : OPT_BLOCK), i = 0;
        float *g = t->g + b0;
        if (t->g16) {
            mil_rt_fp16_to_fp32(t->g16 + b0, g, n);
            for (size_t k = 0; k < n; k++) g[k] *= inv;
        }
        double part[8] = {0}, ss = 0;
        for (; i + 8 <= n; i += 8)
            for (int q = 0; q < 8; q++) part[q] += (double)g[i + q] * g[i + q];
        for (; i < n; i++) part[i % 8] += (double)g[i] * g[i];
        for (int q = 0; q < 8; q++) ss += part[q];
        t->bss[b0 / OPT_BLOCK] = ss;
    }
}

/* forward through embed + layers (plain or _fwd kernels with taps) */
static int forward(Trainer *t, bool taps, const int32_t *tokens, char *err, size_t n) {
    Env v = {0};
    env_add(&v, "tokens", (void *)tokens);
    env_params(&v, t, -1);
    env_add(&v, "x", t->x[0]);
    if (taps) env_taps(&v, &t->embed_fwd, t->etaps);
    if (run(taps ? &t->embed_fwd : &t->embed, &v, err, n)) return -1;
    for (int l = 0; l < t->c.layers; l++) {
        Env lv = {0};
        env_params(&lv, t, l);
        env_add(&lv, "x", t->x[l]);
        env_add(&lv, "y", t->x[l + 1]);
        if (taps) env_taps(&lv, &t->layer_fwd, t->ltaps[l]);
        if (run(taps ? &t->layer_fwd : &t->layer, &lv, err, n)) return -1;
    }
    return 0;
}

int trainer_eval(Trainer *t, const int32_t *tokens, const int32_t *targets, float *loss, char *err, size_t n) {
    sync_weights(t);
    if (forward(t, false, tokens, err, n)) return -1;
    Env v = {0};
    env_params(&v, t, -1);
    env_add(&v, "x", t->x[t->c.layers]);
    env_add(&v, "targets", (void *)targets);
    env_add(&v, "loss", t->lossbuf);
    if (run(&t->head, &v, err, n)) return -1;
    *loss = read_scalar(t, t->lossbuf);
    return 0;
}

int trainer_grad(Trainer *t, const int32_t *tokens, const int32_t *targets, float *loss, bool *finite, char *err,
                 size_t n) {
    int L = t->c.layers, cur = 0;
    sync_weights(t);
    if (forward(t, true, tokens, err, n)) return -1;

    /* head: loss, then its backward seeded with d_loss = the loss scale */
    Env hv = {0};
    env_params(&hv, t, -1);
    env_add(&hv, "x", t->x[L]);
    env_add(&hv, "targets", (void *)targets);
    env_add(&hv, "loss", t->lossbuf);
    env_add(&hv, "d_loss", t->dlossbuf);
    env_add(&hv, "d_x", t->dx[cur]);
    env_taps(&hv, &t->head_fwd, t->htaps);
    if (run(&t->head_fwd, &hv, err, n)) return -1;
    *loss = read_scalar(t, t->lossbuf);
    write_scalar(t, t->dlossbuf, t->st.loss_scale);
    if (run(&t->head_bwd, &hv, err, n)) return -1;

    for (int l = L - 1; l >= 0; l--, cur ^= 1) {
        Env lv = {0};
        env_params(&lv, t, l);
        env_add(&lv, "x", t->x[l]);
        env_add(&lv, "y", t->x[l + 1]);
        env_add(&lv, "d_y", t->dx[cur]);
        env_add(&lv, "d_x", t->dx[cur ^ 1]);
        env_taps(&lv, &t->layer_fwd, t->ltaps[l]);
        if (t->bextra) env_taps(&lv, &t->layer_bwd, t->bextra);
        if (run(&t->layer_bwd, &lv, err, n)) return -1;
        if (t->bextra && run(&t->layer_dw, &lv, err, n)) return -1;
    }
    Env ev = {0};
    env_add(&ev, "tokens", (void *)tokens);
    env_params(&ev, t, -1);
    env_add(&ev, "x", t->x[0]);
    env_add(&ev, "d_x", t->dx[cur]);
    env_taps(&ev, &t->embed_fwd, t->etaps);
    if (run(&t->embed_bwd, &ev, err, n)) return -1;

    /* unscale (fp16 gradients to fp32), the sum of squares, inf/NaN */
    mil_rt_device_cpu_parallel(t->cpu, (int64_t)t->np, OPT_BLOCK, grad_range, t);
    t->gss = 0;
    for (size_t b = 0; b * OPT_BLOCK < t->np; b++) t->gss += t->bss[b];
    *finite = isfinite(t->gss) && isfinite(*loss);
    return 0;
}

/* ------------------------------------------------------------- optimiser */

double trainer_lr(const OptConfig *o, int64_t step) {
    if (step < o->warmup) return o->lr * (double)(step + 1) / o->warmup;
    int64_t span = o->steps - o->warmup;
    double prog = span > 0 ? (double)(step - o->warmup) / (double)span : 1.0;
    if (prog > 1) prog = 1;
    double lo = o->lr * o->min_lr_frac;
    return lo + 0.5 * (o->lr - lo) * (1.0 + cos(PI * prog));
}

/* AdamW as torch.optim.AdamW: decoupled decay first, bias-corrected moments;
 * the gradient is scaled by the clipping coefficient on the fly (1 when not
 * clipping: exact).  One pass per element over w, g, m, v, which GCC
 * vectorises (trainer.c is built with -fno-math-errno: sqrtf is the IEEE
 * instruction, per element the same value as the scalar code), split over
 * the CPU device's threads; an element's update never depends on the split. */
typedef struct AdamJob {
    Trainer *t;
    const OptConfig *o;
    double lr;
    float coef, b1, b2, step_size, bc2_sqrt, eps;
} AdamJob;

static void adam_span(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                      float decay, const AdamJob *a) {
    float coef = a->coef, b1 = a->b1, b2 = a->b2, step_size = a->step_size, bc2_sqrt = a->bc2_sqrt, eps = a->eps;
    for (size_t j = 0; j < n; j++) {
        float gj = g[j] * coef;
        w[j] *= decay;
        m[j] += (gj - m[j]) * (1.0f - b1);
        v[j] = v[j] * b2 + (1.0f - b2) * gj * gj;
        float denom = sqrtf(v[j]) / bc2_sqrt + eps;
        w[j] -= step_size * (m[j] / denom);
    }
}

static void adam_range(void *arg, int64_t i0, int64_t i1) {
    const AdamJob *a = arg;
    Trainer *t = a->t;
    for (int i = 0; i < t->npi; i++) {
        const ParamInfo *p = &t->pi[i];
        int64_t j0 = (int64_t)p->offset > i0 ? (int64_t)p->offset : i0;
        int64_t j1 = (int64_t)(p->offset + p->numel) < i1 ? (int64_t)(p->offset + p->numel) : i1;
        if (j0 >= j1) continue;
        float decay = p->decay ? (float)(1.0 - a->lr * a->o->weight_decay) : 1.0f;
        adam_span(t->w + j0, t->g + j0, t->m + j0, t->v + j0, (size_t)(j1 - j0), decay, a);
    }
}

static void adamw(Trainer *t, const OptConfig *o, double lr, float coef) {
    int64_t k = t->st.step - t->st.skipped + 1;   /* updates done, this one included */
    double bc1 = 1.0 - pow(o->beta1, (double)k), bc2 = 1.0 - pow(o->beta2, (double)k);
    AdamJob a = {t, o, lr, coef, (float)o->beta1, (float)o->beta2, (float)(lr / bc1), (float)sqrt(bc2), (float)o->eps};
    mil_rt_device_cpu_parallel(t->cpu, (int64_t)t->np, OPT_BLOCK, adam_range, &a);
}

/* fp16 dynamic loss scaling */
#define SCALE_MAX 32768.0f    /* the largest power of two below fp16's max */
#define SCALE_GROWTH_STEPS 200

int trainer_step(Trainer *t, const OptConfig *o, const int32_t *tokens, const int32_t *targets, float *loss,
                 double *lr, double *gnorm, bool *skipped, char *err, size_t n) {
    bool finite;
    *lr = trainer_lr(o, t->st.step);
    *gnorm = 0;
    if (trainer_grad(t, tokens, targets, loss, &finite, err, n)) return -1;
    *skipped = !finite;
    if (!finite) {
        t->st.skipped++;
        t->st.good_steps = 0;
        if (t->c.dtype == MIL_DT_FP16 && t->st.loss_scale > 1.0f) t->st.loss_scale *= 0.5f;
        t->st.step++;
        return 0;
    }
    *gnorm = sqrt(t->gss);
    float coef = 1.0f;
    if (o->clip > 0 && *gnorm > o->clip) coef = (float)(o->clip / (*gnorm + 1e-6));
    adamw(t, o, *lr, coef);
    if (t->c.dtype == MIL_DT_FP16 && ++t->st.good_steps >= SCALE_GROWTH_STEPS) {
        if (t->st.loss_scale < SCALE_MAX) t->st.loss_scale *= 2.0f;
        t->st.good_steps = 0;
    }
    t->st.step++;
    return 0;
}

/* ----------------------------------------------------------- checkpoints */

/* Layout (host byte order, x86-64 and arm64 are both little-endian):
 *   CkptHeader, then weights, Adam m, Adam v (nparams fp32 each), then the
 *   XXH3-64 of everything before it. */
#define CKPT_MAGIC "MILTRAIN"
#define CKPT_VERSION 1

typedef struct CkptHeader {
    char magic[8];
    uint32_t version, header_bytes;
    int32_t vocab, dim, layers, heads, ffn, seq, batch, dtype;
    uint64_t nparams, payload_bytes;
    int64_t step, skipped;
    uint64_t rng;
    float loss_scale;
    int32_t good_steps;
} CkptHeader;

static void header_config(const CkptHeader *h, ModelConfig *c) {
    *c = (ModelConfig){.vocab = h->vocab, .dim = h->dim, .layers = h->layers, .heads = h->heads,
                       .ffn = h->ffn, .seq = h->seq, .batch = h->batch, .dtype = (MilDType)h->dtype};
}

int trainer_save(Trainer *t, const char *path, char *err, size_t n) {
    CkptHeader h = {.version = CKPT_VERSION, .header_bytes = sizeof h, .vocab = t->c.vocab, .dim = t->c.dim,
                    .layers = t->c.layers, .heads = t->c.heads, .ffn = t->c.ffn, .seq = t->c.seq,
                    .batch = t->c.batch, .dtype = (int32_t)t->c.dtype, .nparams = t->np,
                    .payload_bytes = 3 * t->np * sizeof(float), .step = t->st.step, .skipped = t->st.skipped,
                    .rng = t->st.rng, .loss_scale = t->st.loss_scale, .good_steps = t->st.good_steps};
    memcpy(h.magic, CKPT_MAGIC, 8);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return errf(err, n, "%s: cannot create: %s", tmp, strerror(errno));
    XXH3_state_t *hs = XXH3_createState();
    XXH3_64bits_reset(hs);
    const void *part[4] = {&h, t->w, t->m, t->v};
    size_t size[4] = {sizeof h, t->np * sizeof(float), t->np * sizeof(float), t->np * sizeof(float)};
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        XXH3_64bits_update(hs, part[i], size[i]);
        ok &= fwrite(part[i], 1, size[i], f) == size[i];
    }
    uint64_t sum = XXH3_64bits_digest(hs);
    XXH3_freeState(hs);
    ok &= fwrite(&sum, sizeof sum, 1, f) == 1;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return errf(err, n, "%s: cannot write the checkpoint: %s", path, strerror(e));
    }
    /* make the rename itself durable */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int fd = open(slash ? dir : ".", O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
    return 0;
}

/* Reads and validates the whole file: *buf holds header + payload. */
static int ckpt_read(const char *path, CkptHeader *h, void **buf, char *err, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return errf(err, n, "%s: cannot open: %s", path, strerror(errno));
    *buf = NULL;
    if (fread(h, sizeof *h, 1, f) != 1) { fclose(f); return errf(err, n, "%s: not a mil-train checkpoint (too short)", path); }
    if (memcmp(h->magic, CKPT_MAGIC, 8)) { fclose(f); return errf(err, n, "%s: not a mil-train checkpoint (bad magic)", path); }
    if (h->version != CKPT_VERSION || h->header_bytes != sizeof *h) {
        fclose(f);
        return errf(err, n, "%s: checkpoint version %u (header %u bytes) is not supported (this is version %d)", path,
                    h->version, h->header_bytes, CKPT_VERSION);
    }
    if (h->payload_bytes != 3 * h->nparams * sizeof(float) || h->nparams > ((uint64_t)1 << 36)) {
        fclose(f);
        return errf(err, n, "%s: corrupted checkpoint (inconsistent sizes)", path);
    }
    struct stat sb;
    uint64_t want = sizeof *h + h->payload_bytes + 8;
    if (fstat(fileno(f), &sb) || (uint64_t)sb.st_size != want) {
        fclose(f);
        return errf(err, n, "%s: truncated or padded checkpoint (%lld bytes, expected %llu)", path,
                    (long long)sb.st_size, (unsigned long long)want);
    }
    uint8_t *b = malloc(h->payload_bytes + 8);
    if (!b) { fclose(f); return errf(err, n, "%s: out of memory", path); }
    if (fread(b, 1, h->payload_bytes + 8, f) != h->payload_bytes + 8) {
        fclose(f);
        free(b);
        return errf(err, n, "%s: read error", path);
    }
    fclose(f);
    XXH3_state_t *hs = XXH3_createState();
    XXH3_64bits_reset(hs);
    XXH3_64bits_update(hs, h, sizeof *h);
    XXH3_64bits_update(hs, b, h->payload_bytes);
    uint64_t sum = XXH3_64bits_digest(hs), got;
    XXH3_freeState(hs);
    memcpy(&got, b + h->payload_bytes, 8);
    if (sum != got) { free(b); return errf(err, n, "%s: corrupted checkpoint (checksum mismatch)", path); }
    *buf = b;
    return 0;
}

int trainer_peek_config(const char *path, ModelConfig *c, char *err, size_t n) {
    CkptHeader h;
    void *buf;
    if (ckpt_read(path, &h, &buf, err, n)) return -1;
    free(buf);
    header_config(&h, c);
    return 0;
}

int trainer_load(Trainer *t, const char *path, char *err, size_t n) {
    CkptHeader h;
    void *buf;
    if (ckpt_read(path, &h, &buf, err, n)) return -1;
    ModelConfig c;
    header_config(&h, &c);
    static const char *const what[] = {"--vocab", "--dim", "--layers", "--heads", "--ffn", "--seq", "--batch"};
    const int have[] = {c.vocab, c.dim, c.layers, c.heads, c.ffn, c.seq, c.batch};
    const int want[] = {t->c.vocab, t->c.dim, t->c.layers, t->c.heads, t->c.ffn, t->c.seq, t->c.batch};
    for (int i = 0; i < 7; i++) {
        if (t->sample_only && i == 6) continue;
        if (have[i] != want[i]) {
            free(buf);
            return errf(err, n, "%s: the checkpoint is for another configuration (%s %d, this run has %d)", path,
                        what[i], have[i], want[i]);
        }
    }
    if (!t->sample_only && c.dtype != t->c.dtype) {
        free(buf);
        return errf(err, n, "%s: the checkpoint is for another configuration (--precision %s, this run has %s)",
                    path, c.dtype == MIL_DT_FP16 ? "fp16" : "fp32", t->c.dtype == MIL_DT_FP16 ? "fp16" : "fp32");
    }
    if (h.nparams != t->np) {
        free(buf);
        return errf(err, n, "%s: corrupted checkpoint (%llu parameters, expected %zu)", path,
                    (unsigned long long)h.nparams, t->np);
    }
    const float *f = buf;
    memcpy(t->w, f, t->np * sizeof(float));
    memcpy(t->m, f + t->np, t->np * sizeof(float));
    memcpy(t->v, f + 2 * t->np, t->np * sizeof(float));
    free(buf);
    t->st = (TrainState){.step = h.step, .rng = h.rng, .loss_scale = h.loss_scale, .good_steps = h.good_steps,
                         .skipped = h.skipped};
    return 0;
}

/* -------------------------------------------------------------- sampling */

int trainer_sample(Trainer *t, const int32_t *prompt, int np, int count, double temperature, uint64_t seed,
                   int32_t *out, char *err, size_t n) {
    int S = t->c.seq, V = t->c.vocab;
    int32_t *ctx = calloc((size_t)S + (size_t)np + (size_t)count, sizeof *ctx);
    double *p = malloc(sizeof(double) * (size_t)V);
    uint64_t rng = seed;
    int len = np, rc = -1;
    if (!ctx || !p) { errf(err, n, "out of memory"); goto done; }
    memcpy(ctx, prompt, sizeof *ctx * (size_t)np);
    sync_weights(t);
    for (int i = 0; i < count; i++) {
        /* the last S tokens (or fewer, followed by padding the causal mask ignores) */
        int start = len > S ? len - S : 0, used = len - start;
        int32_t window[4096], *win = S <= 4096 ? window : malloc(sizeof(int32_t) * (size_t)S);
        if (!win) { errf(err, n, "out of memory"); goto done; }
        memset(win, 0, sizeof(int32_t) * (size_t)S);
        memcpy(win, ctx + start, sizeof(int32_t) * (size_t)used);
        int frc = forward(t, false, win, err, n);
        if (win != window) free(win);
        if (frc) goto done;
        Env v = {0};
        env_params(&v, t, -1);
        env_add(&v, "x", t->x[t->c.layers]);
        env_add(&v, "logits", t->logitsbuf);
        if (run(&t->logits, &v, err, n)) goto done;
        /* softmax(logits / T) of the last real position, then draw */
        size_t row = (size_t)(used > 0 ? used - 1 : 0) * (size_t)V;
        double mx = -INFINITY, sum = 0;
        for (int k = 0; k < V; k++) {
            p[k] = t->es == 2 ? mil_fp16_to_f32(((uint16_t *)t->logitsbuf)[row + k]) : ((float *)t->logitsbuf)[row + k];
            if (p[k] > mx) mx = p[k];
        }
        int pick = 0;
        if (temperature <= 0) {
            for (int k = 1; k < V; k++)
                if (p[k] > p[pick]) pick = k;
        } else {
            for (int k = 0; k < V; k++) sum += p[k] = exp((p[k] - mx) / temperature);
            double r = rng_uniform(&rng) * sum, acc = 0;
            pick = V - 1;
            for (int k = 0; k < V; k++)
                if ((acc += p[k]) > r) { pick = k; break; }
        }
        ctx[len++] = pick;
        out[i] = pick;
    }
    rc = 0;
done:
    free(ctx);
    free(p);
    return rc;
}

int trainer_ane_stats(const Trainer *t, MilRtAneStats *st) {
    return t->ane ? mil_rt_ane_stats(t->ane, st) : -1;
}

void trainer_print_profile(const Trainer *t, FILE *out) {
    const Kernel *ks[] = {&t->embed_fwd, &t->layer_fwd, &t->head_fwd, &t->head_bwd, &t->layer_bwd, &t->layer_dw,
                          &t->embed_bwd, &t->embed,     &t->layer,    &t->head,     &t->logits};
    double total = 0;
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) total += ks[i]->ms;
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (ks[i]->calls)
            fprintf(out, "  %-10s %6ld calls %9.1f ms  %7.2f ms/call  %5.1f %%\n", ks[i]->f->name, ks[i]->calls,
                    ks[i]->ms, ks[i]->ms / ks[i]->calls, 100 * ks[i]->ms / (total > 0 ? total : 1));
}

/* -------------------------------------------------------------- memory */

double trainer_memory_estimate(const ModelConfig *c) {
    double B = c->batch, S = c->seq, D = c->dim, F = c->ffn, V = c->vocab, L = c->layers, NH = c->heads;
    double es = c->dtype == MIL_DT_FP16 ? 2 : 4;
    double params = V * D * 2 + S * D + L * (4 * D * D + 3 * D * F + 2 * D) + D;
    double weights = params * 4 * 4 + (es == 2 ? params * 4 : 0);
    double layer_act = B * S * (12 * D + 4 * F) * es + B * NH * S * S * 3 * es;  /* taps + temps per layer */
    double head_act = B * S * V * 6 * es;
    return weights + (L + 3) * layer_act + head_act + (L + 3) * B * S * D * es;
}
