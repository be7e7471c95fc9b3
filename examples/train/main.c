/* examples/train/main.c -- mil-train: trains a byte-level transformer LM
 * whose every forward and backward op is MIL compiled by milc, on a runtime
 * device.  This file is the command line: options, data, batching, the
 * loop, logging, the loss curve, checkpoints on schedule, self-restarts and
 * sampling.  The machinery is in trainer.c, the model in model.c.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "examples/train/trainer.h"

static const char usage[] =
    "usage: mil-train [options]                      train (default corpus: Debian's fortunes)\n"
    "       mil-train --sample CKPT [--prompt TEXT] [--tokens N] [--temperature T] [--seed S]\n"
    "\n"
    "Trains a decoder-only transformer language model over bytes: token embedding, pre-norm layers\n"
    "(RMSNorm, causal multi-head attention, SwiGLU FFN), final RMSNorm, classifier, cross-entropy.\n"
    "All model math is MIL built with milc's IR builder, differentiated by mil_grad, optimised at\n"
    "-O2 and run on a runtime device; C does data, AdamW, loss scaling and sampling.\n"
    "\n"
    "data:\n"
    "  --data FILE          text file, one token per byte (vocab 256)\n"
    "  --tokens FILE        pre-tokenised little-endian uint16 tokens (with --vocab N)\n"
    "  --vocab N            vocabulary size of --tokens (default 256)\n"
    "  --val-frac F         fraction held out for validation, at the end (default 0.05)\n"
    "model:\n"
    "  --dim D (128)  --layers L (2)  --heads H (4)  --ffn F (352)  --seq S (64)  --batch B (16)\n"
    "  --precision fp32|fp16   fp16: fp16 kernels, fp32 master weights, dynamic loss scaling\n"
    "  --device cpu|ane|ane-sim   ane, ane-sim: the layer kernels on the ANE device ([1, C, 1, S] fp16,\n"
    "                       compiled once, weights as inputs), embedding and loss on the cpu; fp16\n"
    "                       (--precision fp32 is refused); ane-sim is the contract-testing double\n"
    "optimiser:\n"
    "  --steps N (1200)  --lr LR (5e-3)  --warmup N (60)  --min-lr-frac F (0.1, cosine floor)\n"
    "  --beta1 B (0.9)  --beta2 B (0.95)  --eps E (1e-8)  --wd W (0.1, not on norms/embedding)\n"
    "  --clip C (1.0, global gradient norm; 0 = off)  --seed S (1)\n"
    "run:\n"
    "  --run-dir DIR        log.csv, loss.png, ckpt.bin and the cached .milb kernels (default train-run)\n"
    "  --val-every K (100)  validation loss every K steps   --val-batches N (8)\n"
    "  --ckpt FILE          checkpoint (default DIR/ckpt.bin), written every --ckpt-every K (default\n"
    "                       --val-every) steps and at the end\n"
    "  --resume FILE        continue from a checkpoint (bit-identical to an uninterrupted run)\n"
    "  --restart-every N    every N steps: checkpoint, then exec() itself with --resume\n"
    "  --stop-after K       stop after step K with a checkpoint (the schedule stays that of --steps)\n"
    "  --dump-mil DIR       write forward.mil, grad.mil (after mil_grad) and kernels.mil (after -O2);\n"
    "                       on ane/ane-sim also ane-forward.mil, ane-grad.mil, ane-kernels.mil (the layer)\n"
    "  --prompt TEXT        prompt of the sample printed at the end (default \"The \")\n"
    "  --quiet              no per-step lines\n"
    "  --bench              measure only: no validation, checkpoint, loss curve or sample\n"
    "  --profile            time per compiled function at the end\n"
    "  --split-weight-grads the layer's weight gradients in a separate layer_dw kernel (mil_grad's\n"
    "                       split_weight_grads; --device cpu only)\n"
    "  -h, --help\n"
    "\n"
    "Exit status: 0 success, 1 bad data / checkpoint / run errors, 2 usage errors.\n";

typedef struct Options {
    const char *data, *tokens_file, *run_dir, *ckpt, *resume, *dump_mil, *device, *sample, *prompt;
    ModelConfig model;
    OptConfig opt;
    double val_frac, temperature;
    int val_every, val_batches, ckpt_every, restart_every, stop_after, gen_tokens;
    uint64_t seed;
    bool quiet, bench, profile, precision_given, split_weight_grads;
} Options;

/* ---------------------------------------------------------------- options */

static int usage_error(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "mil-train: error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(see mil-train --help)\n");
    return 2;
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        char range[64];
        snprintf(range, sizeof range, "an integer in [%ld, %ld]", lo, hi);
        fprintf(stderr, "mil-train: error: %s expects %s, got '%s'\n", opt, range, s);
        return 2;
    }
    *out = (int)v;
    return 0;
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "mil-train: error: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi, s);
        return 2;
    }
    *out = v;
    return 0;
}

static void defaults(Options *o) {
    memset(o, 0, sizeof *o);
    o->model = (ModelConfig){.vocab = 256, .dim = 128, .layers = 2, .heads = 4, .ffn = 352, .seq = 64,
                             .batch = 16, .dtype = MIL_DT_FP32};
    o->opt = (OptConfig){.lr = 5e-3, .warmup = 60, .min_lr_frac = 0.1, .steps = 1200, .beta1 = 0.9,
                         .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .clip = 1.0};
    o->val_frac = 0.05;
    o->temperature = 0.8;
    o->val_every = 100;
    o->val_batches = 8;
    o->ckpt_every = -1;
    o->gen_tokens = -1;
    o->seed = 1;
    o->device = "cpu";
    o->run_dir = "train-run";
    o->prompt = "The ";
}

static int parse_args(Options *o, int argc, char **argv) {
    const char *tokens_arg = NULL;
    defaults(o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            exit(0);
        }
        if (!strcmp(a, "--quiet")) { o->quiet = true; continue; }
        if (!strcmp(a, "--bench")) { o->bench = true; continue; }
        if (!strcmp(a, "--profile")) { o->profile = true; continue; }
        if (!strcmp(a, "--split-weight-grads")) { o->split_weight_grads = true; continue; }
        if (strncmp(a, "--", 2) || i + 1 >= argc) {
            if (!strncmp(a, "--", 2)) return usage_error("option %s needs a value%s", a, "");
            return usage_error("unexpected argument '%s'%s", a, "");
        }
        const char *v = argv[++i];
        int rc = 0, n;
        double x;
        ModelConfig *m = &o->model;
        if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--tokens")) tokens_arg = v;
        else if (!strcmp(a, "--vocab")) rc = parse_int(a, v, 2, 65536, &m->vocab);
        else if (!strcmp(a, "--dim")) rc = parse_int(a, v, 1, 1 << 20, &m->dim);
        else if (!strcmp(a, "--layers")) rc = parse_int(a, v, 1, 4096, &m->layers);
        else if (!strcmp(a, "--heads")) rc = parse_int(a, v, 1, 4096, &m->heads);
        else if (!strcmp(a, "--ffn")) rc = parse_int(a, v, 1, 1 << 22, &m->ffn);
        else if (!strcmp(a, "--seq")) rc = parse_int(a, v, 2, 1 << 20, &m->seq);
        else if (!strcmp(a, "--batch")) rc = parse_int(a, v, 1, 1 << 20, &m->batch);
        else if (!strcmp(a, "--steps")) rc = parse_int(a, v, 1, INT_MAX, &o->opt.steps);
        else if (!strcmp(a, "--warmup")) rc = parse_int(a, v, 0, INT_MAX, &o->opt.warmup);
        else if (!strcmp(a, "--lr")) rc = parse_num(a, v, 0, 10, &o->opt.lr);
        else if (!strcmp(a, "--min-lr-frac")) rc = parse_num(a, v, 0, 1, &o->opt.min_lr_frac);
        else if (!strcmp(a, "--beta1")) rc = parse_num(a, v, 0, 0.999999, &o->opt.beta1);
        else if (!strcmp(a, "--beta2")) rc = parse_num(a, v, 0, 0.999999, &o->opt.beta2);
        else if (!strcmp(a, "--eps")) rc = parse_num(a, v, 0, 1, &o->opt.eps);
        else if (!strcmp(a, "--wd")) rc = parse_num(a, v, 0, 10, &o->opt.weight_decay);
        else if (!strcmp(a, "--clip")) rc = parse_num(a, v, 0, 1e9, &o->opt.clip);
        else if (!strcmp(a, "--val-frac")) rc = parse_num(a, v, 0.001, 0.5, &o->val_frac);
        else if (!strcmp(a, "--temperature")) rc = parse_num(a, v, 0, 100, &o->temperature);
        else if (!strcmp(a, "--seed")) {
            rc = parse_num(a, v, 0, 9007199254740992.0, &x);
            if (!rc && x != floor(x)) rc = parse_int(a, v, 0, 0, &n);
            o->seed = (uint64_t)x;
        }
        else if (!strcmp(a, "--val-every")) rc = parse_int(a, v, 1, INT_MAX, &o->val_every);
        else if (!strcmp(a, "--val-batches")) rc = parse_int(a, v, 1, 1 << 16, &o->val_batches);
        else if (!strcmp(a, "--ckpt-every")) rc = parse_int(a, v, 1, INT_MAX, &o->ckpt_every);
        else if (!strcmp(a, "--restart-every")) rc = parse_int(a, v, 1, INT_MAX, &o->restart_every);
        else if (!strcmp(a, "--stop-after")) rc = parse_int(a, v, 1, INT_MAX, &o->stop_after);
        else if (!strcmp(a, "--run-dir")) o->run_dir = v;
        else if (!strcmp(a, "--ckpt")) o->ckpt = v;
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--dump-mil")) o->dump_mil = v;
        else if (!strcmp(a, "--sample")) o->sample = v;
        else if (!strcmp(a, "--prompt")) o->prompt = v;
        else if (!strcmp(a, "--device")) {
            if (strcmp(v, "cpu") && strcmp(v, "ane") && strcmp(v, "ane-sim"))
                return usage_error("--device expects cpu, ane or ane-sim, got '%s'%s", v, "");
            o->device = v;
        } else if (!strcmp(a, "--precision")) {
            o->precision_given = true;
            if (!strcmp(v, "fp32")) m->dtype = MIL_DT_FP32;
            else if (!strcmp(v, "fp16")) m->dtype = MIL_DT_FP16;
            else return usage_error("--precision expects fp32 or fp16, got '%s'%s", v, "");
        } else return usage_error("unknown option '%s'%s", a, "");
        if (rc) return rc;
    }
    /* the ANE computes in fp16: --device ane* means fp16 kernels (fp32 master
     * weights and Adam state in C, as with --precision fp16 on the cpu) */
    if (strcmp(o->device, "cpu")) {
        if (o->precision_given && o->model.dtype != MIL_DT_FP16)
            return usage_error("--device %s runs fp16 kernels (the ANE's numerics); --precision fp32 is for "
                               "--device cpu%s", o->device, "");
        o->model.dtype = MIL_DT_FP16;
    }
    if (o->sample) {
        /* in sampling mode --tokens is the number of tokens to generate */
        if (tokens_arg && parse_int("--tokens", tokens_arg, 1, 1 << 20, &o->gen_tokens)) return 2;
        if (o->gen_tokens < 0) o->gen_tokens = 200;
        return 0;
    }
    o->tokens_file = tokens_arg;
    if (o->data && o->tokens_file) return usage_error("give --data FILE or --tokens FILE, not both%s%s", "", "");
    if (!o->tokens_file && o->model.vocab != 256)
        return usage_error("--vocab applies to --tokens data (bytes have vocab 256)%s%s", "", "");
    if (o->model.dim % o->model.heads)
        return fprintf(stderr, "mil-train: error: --dim %d is not divisible by --heads %d\n", o->model.dim,
                       o->model.heads), 2;
    if (o->opt.warmup > o->opt.steps) o->opt.warmup = o->opt.steps;
    if (o->ckpt_every < 0) o->ckpt_every = o->val_every;
    o->gen_tokens = 300;
    return 0;
}

/* ------------------------------------------------------------------ data */

typedef struct Data {
    int32_t *tok;
    int64_t n, ntrain;      /* train = [0, ntrain), validation = [ntrain, n) */
} Data;

#define DEFAULT_CORPUS "/usr/share/games/fortunes"

/* Debian's fortune files (the text files without an extension), concatenated
 * in name order. */
static int no_dot(const struct dirent *e) { return e->d_name[0] != '.' && !strchr(e->d_name, '.'); }

static char *read_default_corpus(size_t *len, char *err, size_t errlen) {
    struct dirent **names;
    char *buf = NULL;
    size_t cap = 0;
    int n = scandir(DEFAULT_CORPUS, &names, no_dot, alphasort);
    *len = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", DEFAULT_CORPUS, names[i]->d_name);
        free(names[i]);
        struct stat sb;
        FILE *f = stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? fopen(path, "rb") : NULL;
        if (!f) continue;
        if (*len + (size_t)sb.st_size > cap) {
            cap = (*len + (size_t)sb.st_size) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) cap = 0;
            else buf = nb;
        }
        if (cap) *len += fread(buf + *len, 1, (size_t)sb.st_size, f);
        fclose(f);
    }
    if (n >= 0) free(names);
    if (!*len) {
        free(buf);
        snprintf(err, errlen, "no --data given and the default corpus %s is missing (install Debian's 'fortunes' "
                              "package, or run make demo)", DEFAULT_CORPUS);
        return NULL;
    }
    return buf;
}

static int load_data(const Options *o, Data *d) {
    const char *path = o->tokens_file ? o->tokens_file : o->data;
    char err[512];
    size_t len = 0;
    char *buf = NULL;
    if (path) {
        FILE *f = fopen(path, "rb");
        struct stat sb;
        if (!f || fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
            fprintf(stderr, "mil-train: error: %s: %s\n", path, f ? "not a regular file" : strerror(errno));
            if (f) fclose(f);
            return 1;
        }
        buf = malloc((size_t)sb.st_size + 1);
        if (!buf) { fclose(f); fprintf(stderr, "mil-train: error: %s: out of memory\n", path); return 1; }
        len = fread(buf, 1, (size_t)sb.st_size, f);
        fclose(f);
    } else if (!(buf = read_default_corpus(&len, err, sizeof err))) {
        fprintf(stderr, "mil-train: error: %s\n", err);
        return 1;
    }
    const char *name = path ? path : DEFAULT_CORPUS;
    if (len == 0) {
        fprintf(stderr, "mil-train: error: %s: the data file is empty\n", name);
        free(buf);
        return 1;
    }
    if (o->tokens_file && len % 2) {
        fprintf(stderr, "mil-train: error: %s: %zu bytes is not a whole number of uint16 tokens\n", name, len);
        free(buf);
        return 1;
    }
    d->n = o->tokens_file ? (int64_t)len / 2 : (int64_t)len;
    d->tok = malloc(sizeof(int32_t) * (size_t)d->n);
    if (!d->tok) { free(buf); fprintf(stderr, "mil-train: error: out of memory\n"); return 1; }
    for (int64_t i = 0; i < d->n; i++) {
        if (o->tokens_file) {
            const uint8_t *b = (const uint8_t *)buf + 2 * i;
            d->tok[i] = b[0] | b[1] << 8;
            if (d->tok[i] >= o->model.vocab) {
                fprintf(stderr, "mil-train: error: %s: token %d at index %lld is outside --vocab %d\n", name,
                        d->tok[i], (long long)i, o->model.vocab);
                free(buf);
                free(d->tok);
                return 1;
            }
        } else {
            d->tok[i] = (uint8_t)buf[i];
        }
    }
    free(buf);
    d->ntrain = d->n - (int64_t)ceil((double)d->n * o->val_frac);
    int64_t need = o->model.seq + 1;
    if (d->ntrain < need || d->n - d->ntrain < need) {
        fprintf(stderr, "mil-train: error: %s: %lld tokens are too few: the training split (%lld) and the "
                        "validation split (%lld, --val-frac %g) each need one window of --seq %d + 1 tokens\n",
                name, (long long)d->n, (long long)d->ntrain, (long long)(d->n - d->ntrain), o->val_frac,
                o->model.seq);
        free(d->tok);
        return 1;
    }
    return 0;
}

/* batch of random windows from the training split; targets shifted by one */
static void train_batch(const Data *d, const ModelConfig *c, uint64_t *rng, int32_t *tok, int32_t *tgt) {
    uint64_t span = (uint64_t)(d->ntrain - c->seq);
    for (int b = 0; b < c->batch; b++) {
        int64_t s = (int64_t)(rng_next(rng) % span);
        memcpy(tok + (size_t)b * c->seq, d->tok + s, sizeof(int32_t) * (size_t)c->seq);
        memcpy(tgt + (size_t)b * c->seq, d->tok + s + 1, sizeof(int32_t) * (size_t)c->seq);
    }
}

/* batch k of the validation windows: evenly spread, the same every time */
static void val_batch(const Data *d, const ModelConfig *c, int k, int nb, int32_t *tok, int32_t *tgt) {
    int64_t nval = d->n - d->ntrain, span = nval - c->seq - 1, count = (int64_t)nb * c->batch;
    for (int b = 0; b < c->batch; b++) {
        int64_t i = (int64_t)k * c->batch + b;
        int64_t s = d->ntrain + (count > 1 ? i * span / (count - 1) : 0);
        memcpy(tok + (size_t)b * c->seq, d->tok + s, sizeof(int32_t) * (size_t)c->seq);
        memcpy(tgt + (size_t)b * c->seq, d->tok + s + 1, sizeof(int32_t) * (size_t)c->seq);
    }
}

/* ---------------------------------------------------------------- helpers */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb > 0) return kb * 1024;
    long pages = sysconf(_SC_AVPHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    return pages > 0 && ps > 0 ? (double)pages * ps : 0;
}

static void print_text(FILE *out, const int32_t *t, int n, int vocab) {
    for (int i = 0; i < n; i++) {
        if (vocab != 256) fprintf(out, "%s%d", i ? " " : "", t[i]);
        else if (t[i] == '\n' || t[i] == '\t' || (t[i] >= 32 && t[i] < 127) ) fputc(t[i], out);
        else fputc('?', out);
    }
}

static int validation(Trainer *tr, const Data *d, const Options *o, int32_t *tok, int32_t *tgt, double *out) {
    char err[1024];
    double sum = 0;
    for (int k = 0; k < o->val_batches; k++) {
        float l;
        val_batch(d, &o->model, k, o->val_batches, tok, tgt);
        if (trainer_eval(tr, tok, tgt, &l, err, sizeof err)) {
            fprintf(stderr, "mil-train: error: %s\n", err);
            return -1;
        }
        sum += l;
    }
    *out = sum / o->val_batches;
    return 0;
}

/* loss.png from log.csv with gnuplot (skipped with a note when absent) */
static void plot(const char *dir) {
    char gp[1100], cmd[2400];
    snprintf(gp, sizeof gp, "%s/loss.gp", dir);
    FILE *f = fopen(gp, "w");
    if (!f) return;
    fprintf(f, "set terminal png size 900,540\n"
               "set output '%s/loss.png'\n"
               "set datafile separator ','\n"
               "set title 'mil-train: cross-entropy (nats/token)'\n"
               "set xlabel 'step'\nset ylabel 'loss'\nset grid\nset key top right\n"
               "plot '%s/log.csv' using 1:2 skip 1 with lines lw 1 title 'train', "
               "'' using 1:(strcol(3) eq '' ? NaN : $3) skip 1 with linespoints lw 2 pt 7 title 'validation'\n",
               dir, dir);
    fclose(f);
    snprintf(cmd, sizeof cmd, "command -v gnuplot >/dev/null 2>&1 && gnuplot '%s' 2>&1", gp);
    if (system(cmd) == 0) printf("loss curve: %s/loss.png\n", dir);
    else printf("note: gnuplot is not installed; no loss curve (install Debian's gnuplot-nox)\n");
}

/* exec() this program again with --resume CKPT (the seed's ANE compile-limit
 * workaround); the arguments are kept, an earlier --resume is replaced */
static void restart(int argc, char **argv, const char *ckpt) {
    char **av = calloc((size_t)argc + 3, sizeof *av);
    int n = 0;
    if (!av) return;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--resume") && i + 1 < argc) { i++; continue; }
        av[n++] = argv[i];
    }
    av[n++] = "--resume";
    av[n++] = (char *)ckpt;
    av[n] = NULL;
    fflush(NULL);
    execv("/proc/self/exe", av);
    execvp(argv[0], av);
    fprintf(stderr, "mil-train: error: cannot restart itself: %s\n", strerror(errno));
    free(av);
}

/* Per-function device placement, once at startup (--device ane|ane-sim). */
static void print_placement(const TrainerOptions *to) {
    for (const char *p = to->placement; *p;) {
        size_t l = strcspn(p, "\n");
        printf("mil-train: %.*s\n", (int)l, p);
        p += l + (p[l] == '\n');
    }
    if (to->ane_warnings)
        printf("mil-train: note: %d ANE legality finding(s) on the layer kernels (run on the double; check them "
               "before the hardware), e.g. %s\n", to->ane_warnings, to->ane_first_warning);
}

/* --------------------------------------------------------------- sampling */

static int sample_main(const Options *o) {
    char err[1024];
    TrainerOptions to = {.device = o->device, .sample_only = true};
    if (trainer_peek_config(o->sample, &to.model, err, sizeof err)) {
        fprintf(stderr, "mil-train: error: %s\n", err);
        return 1;
    }
    Trainer *tr = trainer_new(&to, err, sizeof err);
    if (!tr || trainer_load(tr, o->sample, err, sizeof err)) {
        fprintf(stderr, "mil-train: error: %s\n", err);
        trainer_free(tr);
        return 1;
    }
    int np = (int)strlen(o->prompt);
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)(np + 1)), *out = malloc(sizeof(int32_t) * (size_t)o->gen_tokens);
    int rc = 1;
    if (!prompt || !out) goto done;
    for (int i = 0; i < np; i++) prompt[i] = (uint8_t)o->prompt[i] % to.model.vocab;
    if (trainer_sample(tr, prompt, np, o->gen_tokens, o->temperature, o->seed, out, err, sizeof err)) {
        fprintf(stderr, "mil-train: error: %s\n", err);
        goto done;
    }
    fputs(o->prompt, stdout);
    print_text(stdout, out, o->gen_tokens, to.model.vocab);
    fputc('\n', stdout);
    rc = 0;
done:
    free(prompt);
    free(out);
    trainer_free(tr);
    return rc;
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    Options o;
    int rc = parse_args(&o, argc, argv);
    if (rc) return rc;
    if (o.sample) return sample_main(&o);
    const ModelConfig *c = &o.model;

    /* everything that can be refused is checked before anything is written */
    double need = trainer_memory_estimate(c), avail = mem_available();
    if (avail > 0 && need > avail) {
        fprintf(stderr, "mil-train: error: this configuration needs about %.1f GiB (weights, optimiser state, "
                        "activations), more than the %.1f GiB available\n", need / 1073741824.0, avail / 1073741824.0);
        return 1;
    }
    Data d = {0};
    if (load_data(&o, &d)) return 1;

    char ckpt[1100], log[1100], err[1024];
    snprintf(ckpt, sizeof ckpt, "%s", o.ckpt ? o.ckpt : "");
    if (!o.ckpt) snprintf(ckpt, sizeof ckpt, "%s/ckpt.bin", o.run_dir);
    snprintf(log, sizeof log, "%s/log.csv", o.run_dir);
    TrainerOptions to = {.model = o.model, .device = o.device, .cache_dir = o.run_dir, .dump_dir = o.dump_mil,
                         .split_weight_grads = o.split_weight_grads};
    Trainer *tr = NULL;
    FILE *csv = NULL;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)c->batch * c->seq);
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)c->batch * c->seq);
    rc = 1;
    if (!tok || !tgt) { fprintf(stderr, "mil-train: error: out of memory\n"); goto done; }
    /* a resume checkpoint is validated before the run directory is touched */
    if (o.resume) {
        ModelConfig rc_cfg;
        if (trainer_peek_config(o.resume, &rc_cfg, err, sizeof err)) {
            fprintf(stderr, "mil-train: error: %s\n", err);
            goto done;
        }
    }
    struct stat sb;
    bool fresh_dir = stat(o.run_dir, &sb) != 0;
    if (mil_mkdirs(o.run_dir)) {
        fprintf(stderr, "mil-train: error: %s: cannot create the run directory: %s\n", o.run_dir, strerror(errno));
        goto done;
    }
    if (!(tr = trainer_new(&to, err, sizeof err))) {
        fprintf(stderr, "mil-train: error: %s\n", err);
        if (fresh_dir) mil_rm_tree(o.run_dir);   /* e.g. an unavailable device: leave nothing */
        goto done;
    }
    TrainState *st = trainer_state(tr);
    trainer_init_weights(tr, o.seed);
    if (o.resume && trainer_load(tr, o.resume, err, sizeof err)) {
        fprintf(stderr, "mil-train: error: %s\n", err);
        goto done;
    }
    if (st->step == 0 || !o.resume)
        printf("mil-train: %zu parameters, D=%d L=%d heads=%d ffn=%d seq=%d batch=%d %s on %s; data %lld tokens "
               "(%lld train, %lld validation)\n",
               trainer_nparams(tr), c->dim, c->layers, c->heads, c->ffn, c->seq, c->batch,
               c->dtype == MIL_DT_FP16 ? "fp16" : "fp32", o.device, (long long)d.n, (long long)d.ntrain,
               (long long)(d.n - d.ntrain));
    printf("mil-train: kernels %s %s%s%s (%.0f ms)%s\n", to.cache_hit ? "loaded from" : "compiled to", to.cache_path,
           to.cache_path_ane[0] ? " + " : "", to.cache_path_ane, to.compile_ms, o.resume ? "; resumed" : "");
    if (strcmp(o.device, "cpu") && (st->step == 0 || !o.resume)) print_placement(&to);
    if (o.resume) printf("mil-train: resuming at step %lld from %s\n", (long long)st->step, o.resume);
    csv = fopen(log, o.resume ? "a" : "w");
    if (!csv) { fprintf(stderr, "mil-train: error: %s: %s\n", log, strerror(errno)); goto done; }
    if (!o.resume) fprintf(csv, "step,train_loss,val_loss,lr,ms,tokens_per_s,grad_norm,loss_scale,skipped\n");

    double vloss;
    if (st->step == 0 && !o.bench) {
        if (validation(tr, &d, &o, tok, tgt, &vloss)) goto done;
        printf("step %5d | val loss %.4f\n", 0, vloss);
        fprintf(csv, "0,,%.6f,,,,,,\n", vloss);
    }
    int64_t end = o.stop_after && o.stop_after < o.opt.steps ? o.stop_after : o.opt.steps;
    while (st->step < end) {
        float loss;
        double lr, gnorm, t0 = now_s();
        bool skipped;
        train_batch(&d, c, &st->rng, tok, tgt);
        if (trainer_step(tr, &o.opt, tok, tgt, &loss, &lr, &gnorm, &skipped, err, sizeof err)) {
            fprintf(stderr, "mil-train: error: %s\n", err);
            goto done;
        }
        double dt = now_s() - t0, tps = (double)c->batch * c->seq / dt;
        long long step = (long long)st->step;
        bool val = (step % o.val_every == 0 || step == end) && !o.bench;
        if (!o.quiet)
            printf("step %5lld | loss %.4f | lr %.2e | %7.1f ms | %8.0f tok/s | skipped %lld%s\n", step, loss, lr,
                   dt * 1e3, tps, (long long)st->skipped, skipped ? " (inf/NaN: step skipped, loss scale halved)" : "");
        fprintf(csv, "%lld,%.6f,", step, loss);
        if (val) {
            if (validation(tr, &d, &o, tok, tgt, &vloss)) goto done;
            printf("step %5lld | val loss %.4f\n", step, vloss);
            fprintf(csv, "%.6f", vloss);
        }
        fprintf(csv, ",%.6g,%.2f,%.0f,%.4g,%g,%lld\n", lr, dt * 1e3, tps, gnorm, st->loss_scale,
                (long long)st->skipped);
        fflush(stdout);
        fflush(csv);
        bool last = step == end;
        bool restart_now = o.restart_every && step % o.restart_every == 0 && !last;
        if (!o.bench && (last || step % o.ckpt_every == 0 || restart_now)) {
            fflush(csv);
            if (trainer_save(tr, ckpt, err, sizeof err)) {
                fprintf(stderr, "mil-train: error: %s\n", err);
                goto done;
            }
        }
        if (restart_now) {
            printf("mil-train: restarting after step %lld (--restart-every %d)\n", step, o.restart_every);
            fclose(csv);
            csv = NULL;
            trainer_free(tr);
            tr = NULL;
            restart(argc, argv, ckpt);
            goto done;
        }
    }
    fclose(csv);
    csv = NULL;
    printf("mil-train: done: %lld steps, %lld skipped; checkpoint %s, log %s\n", (long long)st->step,
           (long long)st->skipped, o.bench ? "(none: --bench)" : ckpt, log);
    if (o.profile) {
        printf("time per compiled function:\n");
        trainer_print_profile(tr, stdout);
    }
    MilRtAneStats as;
    if (trainer_ane_stats(tr, &as) == 0)
        printf("mil-train: %s: %d compiles (%d in this process, budget %d), %d cache hits, %ld evaluations\n", o.device,
               as.compiles, as.process_compiles, as.budget, as.cache_hits, as.evaluations);
    if (!o.bench) plot(o.run_dir);
    trainer_free(tr);
    tr = NULL;
    if (o.bench) { rc = 0; goto done; }

    /* the sample runs through the sampling program (batch 1, logits) */
    Options so = o;
    so.sample = ckpt;
    printf("sample (temperature %.2g):\n", o.temperature);
    rc = sample_main(&so);
done:
    if (csv) fclose(csv);
    trainer_free(tr);
    free(tok);
    free(tgt);
    free(d.tok);
    return rc;
}
