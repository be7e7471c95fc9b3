/* tools/mil_run.c -- run a MIL program on a runtime device.
 *
 *   mil-run [options] MODEL
 *
 * MODEL is a `.mil` file (`@model_path` = its directory) or a `.mlmodelc`
 * directory (its model.mil; `@model_path` = the directory) or a Core ML
 * `.mlpackage` (its protobuf; `@model_path` = Data/com.apple.CoreML), which the
 * tool parses, verifies and lowers (frontend + backend), or a `.milb` binary
 * program, which the runtime loads as it is; then it runs the program with the
 * runtime library.  usage() lists the forms one per line: keep it in step.  Exit codes: 0 success, 1 input/model/run errors (a clear
 * message on stderr), 2 usage errors.
 *
 * Inputs come from -i NAME=FILE.npy, or from --random-inputs SEED for every
 * input not given with -i.  A `.npy` file must have the input's shape; its
 * dtype must be the input's, except that fp64 files feed fp32/fp16 inputs and
 * any integer file feeds any integer input (range-checked).  Random inputs
 * use the function's FlexibleShapeInformation DefaultShapes for `?` dims
 * (1 when there is none).
 *
 * Outputs: -o DIR writes DIR/<output>.npy for each function output (DIR is
 * created if missing); every file is first written to a temporary name in DIR
 * and renamed only after all of them were written, so a failed run leaves no
 * partial output.  --summary (the default when -o is not given) prints one
 * line per output to stdout.  --time prints each run's wall time to stderr.
 *
 * --random-weights SEED runs a program whose weight files are missing (e.g.
 * Git LFS pointers never fetched): a private temporary directory mirrors the
 * model directory, weight files that exist are linked into it as they are,
 * missing ones are synthesised there by mil_synth_weights (backend/backend.h:
 * exact offsets, deterministic values from SEED), and the program is lowered
 * against it.  The directory is removed before exit, also after errors.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "coreml/coreml.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/ane/ane_sim.h"
#include "runtime/runtime.h"

typedef struct InputArg {
    const char *name, *file;
} InputArg;

typedef struct Options {
    const char *model, *outdir, *function, *weights, *device;
    InputArg *inputs;
    int ninputs;
    bool random, summary, time, random_weights;
    uint64_t seed, wseed;
    long repeat;
} Options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: mil-run [options] MODEL\n"
            "\n"
            "Runs a MIL program.  MODEL is one of (one line per accepted form):\n"
            "  FILE.mil                MIL text; @model_path is its directory\n"
            "  DIR.mlmodelc            a compiled model: DIR/model.mil and DIR/weights/\n"
            "  DIR.mlpackage           a Core ML ML Program package (model.mlmodel protobuf and weights)\n"
            "  FILE.milb               a binary program from milc --emit=milb (weights next to it)\n"
            "\n"
            "options:\n"
            "  -i NAME=FILE.npy        value of input NAME (repeatable)\n"
            "  --random-inputs SEED    deterministic random values for inputs not given with -i\n"
            "                          (floats uniform in [-1, 1), integers in [0, 8))\n"
            "  --random-weights SEED   synthesise missing weight files (deterministic values from SEED:\n"
            "                          floats in [-0.05, 0.05), integers in [0, 4)) in a private temporary\n"
            "                          copy of the model directory, removed on exit; existing weight\n"
            "                          files are used as they are\n"
            "  -o DIR                  write DIR/<output>.npy for every output\n"
            "  --function NAME         function to run (default: main, or the only function)\n"
            "  --weights DIR           directory of the weight files (default: MODEL's weights/)\n"
            "  --device NAME           device: cpu (default), ane (Apple's private in-memory ANE route;\n"
            "                          macOS only, otherwise 'not available on this system'), ane-sim\n"
            "                          (the ANE device over a recording double of that API: checks the\n"
            "                          program against the route's documented contract and runs it on\n"
            "                          the CPU in fp16; a contract simulation, not the hardware).\n"
            "                          For ane and ane-sim, milc's extension ops of a .mil are expanded\n"
            "                          and masked attention is decomposed first (as milc --target=ane\n"
            "                          does)\n"
            "  --repeat N              run N times (default 1); outputs are those of the last run\n"
            "  --time                  print the wall time of each run to stderr\n"
            "  --summary               print shape, dtype, min/max/mean (of the finite values) and the\n"
            "                          NaN/inf counts of each output to stdout\n"
            "                          (the default when -o is not given)\n"
            "  --help                  this text\n"
            "  --version               version\n"
            "\n"
            "exit status: 0 success, 1 error, 2 usage error\n");
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "mil-run: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(try mil-run --help)\n");
    return 2;
}

/* The long options that take a value (as the next argument or --opt=value). */
static bool long_takes_value(const char *a) {
    static const char *const opts[] = {"--random-inputs", "--random-weights", "--function",
                                       "--weights",       "--device",         "--repeat"};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        if (!strcmp(a, opts[i])) return true;
    return false;
}

/* A --random-* seed: a non-negative integer (any base strtoull accepts). */
static bool parse_seed(const char *val, uint64_t *seed) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(val, &end, 0);
    if (!*val || *end || errno || val[0] == '-') return false;
    *seed = s;
    return true;
}

static int parse_args(int argc, char **argv, Options *o) {
    o->repeat = 1;
    o->device = "cpu";
    o->inputs = calloc((size_t)argc + 1, sizeof *o->inputs);
    if (!o->inputs) return usage_error("%s", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        bool takes = !strcmp(a, "-i") || !strcmp(a, "-o") || long_takes_value(a);
        char opt[64];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof opt) { /* --opt=value */
            memcpy(opt, a, (size_t)(eq - a));
            opt[eq - a] = 0;
            if (long_takes_value(opt)) {
                a = opt;
                val = eq + 1;
                takes = true;
            }
        }
        if (takes && !val) {
            if (i + 1 >= argc) return usage_error("option %s needs a value", a);
            val = argv[++i];
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--version")) {
            printf("mil-run (milc) %s\n", MIL_VERSION_STRING);
            exit(0);
        } else if (!strcmp(a, "-i")) {
            const char *e = strchr(val, '=');
            if (!e || e == val || !e[1]) return usage_error("-i wants NAME=FILE.npy, got '%s'", val);
            char *name = strndup(val, (size_t)(e - val));
            if (!name) return usage_error("%s", "out of memory");
            o->inputs[o->ninputs].name = name;
            o->inputs[o->ninputs].file = e + 1;
            o->ninputs++;
        } else if (!strcmp(a, "-o")) {
            o->outdir = val;
        } else if (!strcmp(a, "--random-inputs")) {
            if (!parse_seed(val, &o->seed)) return usage_error("bad seed '%s'", val);
            o->random = true;
        } else if (!strcmp(a, "--random-weights")) {
            if (!parse_seed(val, &o->wseed)) return usage_error("bad seed '%s'", val);
            o->random_weights = true;
        } else if (!strcmp(a, "--function")) {
            o->function = val;
        } else if (!strcmp(a, "--weights")) {
            o->weights = val;
        } else if (!strcmp(a, "--device")) {
            o->device = val;
        } else if (!strcmp(a, "--repeat")) {
            char *end;
            errno = 0;
            long n = strtol(val, &end, 10);
            if (!*val || *end || errno || n < 1) return usage_error("bad repeat count '%s'", val);
            o->repeat = n;
        } else if (!strcmp(a, "--time")) {
            o->time = true;
        } else if (!strcmp(a, "--summary")) {
            o->summary = true;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (o->model) {
            return usage_error("more than one MODEL ('%s')", a);
        } else {
            o->model = a;
        }
    }
    if (!o->model) return usage_error("%s", "no MODEL given");
    if (!o->outdir) o->summary = true;
    return 0;
}

/* ------------------------------------------------------------ inputs */

/* --random-inputs refuses to allocate more than this (all inputs together):
 * a declared shape such as [2147483647] is more likely a mistake than an
 * input anyone means to fill. */
#define GIB (1024.0 * 1024.0 * 1024.0)
#define MAX_RANDOM_INPUT_BYTES (4 * GIB)

static bool is_container(const MilConst *c) {
    return c->kind == MIL_CONST_LIST || c->kind == MIL_CONST_TUPLE;
}

/* The function's FlexibleShapeInformation limits on input `name` as the
 * runtime describes them for .milb models (mil_rt_milb_flex_limits), so
 * that one check serves both: RangeDims as a list of [lo, hi] tensors or a
 * flat tensor, EnumeratedShapes as a list of shapes or a dict whose values
 * are the shapes. */
static void mil_flex_limits(const MilFunc *f, const char *name, MilRtFlexLimits *l) {
    memset(l, 0, sizeof *l);
    const MilConst *r = mil_flex_entry(f, "RangeDims", name);
    if (r && is_container(r) && r->nitems <= MIL_MAX_RANK) {
        bool ok = true;
        for (int d = 0; ok && d < r->nitems; d++) {
            ok = r->items[d]->kind == MIL_CONST_TENSOR && r->items[d]->count == 2;
            if (ok) l->lo[d] = mil_const_get_i64(r->items[d], 0), l->hi[d] = mil_const_get_i64(r->items[d], 1);
        }
        l->nranges = ok ? r->nitems : 0;
    } else if (r && r->kind == MIL_CONST_TENSOR && r->count % 2 == 0 && r->count <= 2 * MIL_MAX_RANK) {
        l->nranges = (int)(r->count / 2);
        for (int d = 0; d < l->nranges; d++) {
            l->lo[d] = mil_const_get_i64(r, 2 * d);
            l->hi[d] = mil_const_get_i64(r, 2 * d + 1);
        }
    }
    const MilConst *en = mil_flex_entry(f, "EnumeratedShapes", name);
    if (en && (is_container(en) || en->kind == MIL_CONST_DICT)) {
        int step = en->kind == MIL_CONST_DICT ? 2 : 1, first = en->kind == MIL_CONST_DICT ? 1 : 0;
        for (int i = first; i < en->nitems; i += step) {
            const MilConst *sh = en->items[i];
            if (sh->kind != MIL_CONST_TENSOR || sh->count > 4096) continue;
            int64_t *dims = malloc((size_t)(sh->count ? sh->count : 1) * sizeof *dims);
            if (!dims) break;
            for (int64_t d = 0; d < sh->count; d++) dims[d] = mil_const_get_i64(sh, d);
            int fail = mil_rt_flex_limits_add_shape(l, (int)sh->count, dims);
            free(dims);
            if (fail) break;
        }
    }
}

/* Checks dims (an input's actual shape) against the function's
 * FlexibleShapeInformation limits: RangeDims (each dim within [lo, hi], hi -1
 * = unbounded) and EnumeratedShapes (one of the listed shapes).  Prints the
 * error and returns -1 when it does not fit. */
static int check_limits(const MilRtFlexLimits *l, const char *name, int rank, const int64_t *dims) {
    if (l->nranges == rank) {
        for (int d = 0; d < rank; d++) {
            int64_t lo = l->lo[d], hi = l->hi[d];
            if (dims[d] < lo || (hi >= 0 && dims[d] > hi)) {
                char range[64];
                if (hi >= 0) snprintf(range, sizeof range, "[%lld, %lld]", (long long)lo, (long long)hi);
                else snprintf(range, sizeof range, "[%lld, unbounded)", (long long)lo);
                fprintf(stderr, "mil-run: error: input '%s': dim %d is %lld, outside the allowed range %s\n", name,
                        d, (long long)dims[d], range);
                return -1;
            }
        }
    }
    if (l->nshapes) {
        for (int i = 0; i < l->nshapes; i++) {
            bool same = l->shape_rank[i] == rank;
            for (int d = 0; same && d < rank; d++) same = l->shapes[i][d] == dims[d];
            if (same) return 0;
        }
        fprintf(stderr, "mil-run: error: input '%s': shape [", name);
        for (int d = 0; d < rank; d++) fprintf(stderr, "%s%lld", d ? ", " : "", (long long)dims[d]);
        fprintf(stderr, "] is not one of the enumerated shapes:");
        for (int i = 0; i < l->nshapes; i++) {
            fprintf(stderr, " [");
            for (int d = 0; d < l->shape_rank[i]; d++)
                fprintf(stderr, "%s%lld", d ? ", " : "", (long long)l->shapes[i][d]);
            fprintf(stderr, "]");
        }
        fprintf(stderr, "\n");
        return -1;
    }
    return 0;
}

/* check_limits with the limits of f (a .mil model) or, when f is NULL, of
 * function `func` of the .milb view mv (NULL: no limits known). */
static int check_flexible(const MilFunc *f, const MilbView *mv, const char *func, const char *name, int rank,
                          const int64_t *dims) {
    MilRtFlexLimits l;
    if (f) mil_flex_limits(f, name, &l);
    else if (!mv || mil_rt_milb_view_flex_limits(mv, func, name, &l)) return 0;
    int rc = check_limits(&l, name, rank, dims);
    mil_rt_flex_limits_free(&l);
    return rc;
}

static int load_input(const MilRtValue *v, const char *file, MilRtTensor *out) {
    MilRtErr e;
    MilRtTensor raw;
    if (mil_rt_npy_read(file, &raw, &e)) {
        fprintf(stderr, "mil-run: error: input '%s': %s\n", v->name, e.msg);
        return -1;
    }
    char a[256], b[256];
    bool conv = raw.dtype == v->dtype ||
                (raw.dtype == MIL_DT_FP64 && mil_rt_dtype_is_float(v->dtype)) ||
                (mil_rt_dtype_is_int(raw.dtype) && mil_rt_dtype_is_int(v->dtype));
    if (!conv) {
        fprintf(stderr, "mil-run: error: input '%s': %s holds %s data but the input is %s\n", v->name, file,
                mil_rt_dtype_name(raw.dtype), mil_rt_format_type(v->dtype, v->rank, v->dims, a, sizeof a));
        mil_rt_tensor_free(&raw);
        return -1;
    }
    bool shape_ok = raw.rank == v->rank;
    for (int d = 0; shape_ok && d < v->rank; d++)
        if (v->dims[d] >= 0 && v->dims[d] != raw.dims[d]) shape_ok = false;
    if (!shape_ok) {
        fprintf(stderr, "mil-run: error: input '%s': %s has shape %s but the input is %s\n", v->name, file,
                mil_rt_format_type(raw.dtype, raw.rank, raw.dims, b, sizeof b),
                mil_rt_format_type(v->dtype, v->rank, v->dims, a, sizeof a));
        mil_rt_tensor_free(&raw);
        return -1;
    }
    if (raw.dtype == v->dtype) {
        *out = raw;
        return 0;
    }
    int rc = mil_rt_tensor_convert(out, v->dtype, &raw, &e);
    mil_rt_tensor_free(&raw);
    if (rc) fprintf(stderr, "mil-run: error: input '%s': %s: %s\n", v->name, file, e.msg);
    return rc;
}

/* ------------------------------------------------------------ outputs */

/* Writes every output to a temporary file in dir, then renames them all;
 * on any failure every file this call created is removed again. */
static int write_outputs(const MilRtFunc *f, const MilRtTensor *outs, const char *dir) {
    if (mil_mkdirs(dir)) {
        fprintf(stderr, "mil-run: error: cannot create output directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int n = f->noutputs, rc = 0, written = 0, renamed = 0;
    char **tmp = calloc((size_t)n + 1, sizeof *tmp), **fin = calloc((size_t)n + 1, sizeof *fin);
    if (!tmp || !fin) { free(tmp); free(fin); return -1; }
    for (int i = 0; i < n && rc == 0; i++) {
        const char *name = f->values[f->outputs[i]].name;
        /* the name becomes DIR/<name>.npy: never a path out of DIR */
        if (!name[0] || name[0] == '.' || strchr(name, '/')) {
            fprintf(stderr, "mil-run: error: output name '%s' cannot be a file name in %s\n", name, dir);
            rc = -1;
            break;
        }
        size_t len = strlen(dir) + strlen(name) + 32;
        tmp[i] = malloc(len);
        fin[i] = malloc(len);
        if (!tmp[i] || !fin[i]) { rc = -1; break; }
        snprintf(tmp[i], len, "%s/.%s.npy.XXXXXX", dir, name);
        snprintf(fin[i], len, "%s/%s.npy", dir, name);
        int fd = mkstemp(tmp[i]);
        if (fd < 0) {
            fprintf(stderr, "mil-run: error: cannot create a file in %s: %s\n", dir, strerror(errno));
            rc = -1;
            break;
        }
        written = i + 1;
        /* mkstemp creates 0600: give the output the mode a plain create would */
        mode_t um = umask(0);
        umask(um);
        if (fchmod(fd, 0666 & ~um) != 0) {
            fprintf(stderr, "mil-run: error: cannot set the mode of %s: %s\n", tmp[i], strerror(errno));
            close(fd);
            rc = -1;
            break;
        }
        close(fd);
        MilRtErr e;
        if (mil_rt_npy_write(tmp[i], &outs[i], &e)) {
            fprintf(stderr, "mil-run: error: output '%s': %s\n", name, e.msg);
            rc = -1;
        }
        struct stat st;
        if (rc == 0 && stat(fin[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            fprintf(stderr, "mil-run: error: cannot write %s: it is a directory\n", fin[i]);
            rc = -1;
        }
    }
    for (; rc == 0 && renamed < n; renamed++)
        if (rename(tmp[renamed], fin[renamed]) != 0) {
            fprintf(stderr, "mil-run: error: cannot write %s: %s\n", fin[renamed], strerror(errno));
            rc = -1;
            break;
        }
    if (rc) {
        for (int i = 0; i < renamed; i++) unlink(fin[i]);
        for (int i = renamed; i < written; i++) unlink(tmp[i]);
    }
    for (int i = 0; i < n; i++) { free(tmp[i]); free(fin[i]); }
    free(tmp);
    free(fin);
    return rc;
}

/* One line per output: "name: type min=A max=B mean=C", then " nan=N",
 * " inf=N", " -inf=N" when there are any.  min/max/mean are over the finite
 * values (omitted when there are none); integer and bool outputs print
 * min/max as integers. */
static void summary(const MilRtFunc *f, const MilRtTensor *outs) {
    for (int i = 0; i < f->noutputs; i++) {
        const MilRtTensor *t = &outs[i];
        char ty[256];
        int64_t n = mil_rt_numel(t);
        printf("%s: %s", f->values[f->outputs[i]].name, mil_rt_format_type(t->dtype, t->rank, t->dims, ty, sizeof ty));
        if (t->dtype == MIL_DT_STRING || n == 0) {
            printf("\n");
            continue;
        }
        if (!mil_rt_dtype_is_float(t->dtype)) {
            bool u64 = t->dtype == MIL_DT_UINT64;
            int64_t mn = mil_rt_get_i64(t, 0), mx = mn;
            uint64_t umn = (uint64_t)mn, umx = umn;
            long double sum = 0;
            for (int64_t k = 0; k < n; k++) {
                int64_t v = mil_rt_get_i64(t, k);
                if (u64) {
                    if ((uint64_t)v < umn) umn = (uint64_t)v;
                    if ((uint64_t)v > umx) umx = (uint64_t)v;
                    sum += (long double)(uint64_t)v;
                } else {
                    if (v < mn) mn = v;
                    if (v > mx) mx = v;
                    sum += (long double)v;
                }
            }
            if (u64)
                printf(" min=%llu max=%llu", (unsigned long long)umn, (unsigned long long)umx);
            else
                printf(" min=%lld max=%lld", (long long)mn, (long long)mx);
            printf(" mean=%.6g\n", (double)(sum / (long double)n));
            continue;
        }
        double mn = 0, mx = 0, sum = 0;
        int64_t finite = 0, nan = 0, pinf = 0, ninf = 0;
        for (int64_t k = 0; k < n; k++) {
            double v = mil_rt_get_f64(t, k);
            if (v != v) { nan++; continue; }
            if (v == INFINITY) { pinf++; continue; }
            if (v == -INFINITY) { ninf++; continue; }
            if (!finite || v < mn) mn = v;
            if (!finite || v > mx) mx = v;
            sum += v;
            finite++;
        }
        if (finite) printf(" min=%.6g max=%.6g mean=%.6g", mn, mx, sum / (double)finite);
        if (nan) printf(" nan=%lld", (long long)nan);
        if (pinf) printf(" inf=%lld", (long long)pinf);
        if (ninf) printf(" -inf=%lld", (long long)ninf);
        printf("\n");
    }
}

static void report(const MilRtErr *e) {
    if (strstr(e->msg, "error: ")) fprintf(stderr, "%s\n", e->msg);  /* has a location */
    else fprintf(stderr, "mil-run: error: %s\n", e->msg);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ------------------------------------------------------ random weights */


/* A private model directory for --random-weights: real weight files linked,
 * missing ones synthesised.  Returns the malloc'd directory, or NULL after
 * reporting (nothing left behind). */
static char *synth_model_dir(const MilProgram *p, const char *model_dir, const Options *o, MilDiag *d) {
    const char *t = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/mil-run-weights-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "mil-run: error: cannot create a temporary directory %s: %s\n", tmpl, strerror(errno));
        return NULL;
    }
    MilSynthOptions so = {.model_dir = tmpl, .link_dir = model_dir, .link_weights_dir = o->weights,
                          .seed = o->wseed};
    if (mil_synth_weights_opt(p, &so, d) < 0) {
        mil_diag_print(d, stderr);
        fprintf(stderr, "mil-run: error: cannot synthesise the missing weight files\n");
        mil_rm_tree(tmpl);
        return NULL;
    }
    return strdup(tmpl);
}

/* --------------------------------------------------------------- main */

static void free_options(Options *o) {
    for (int k = 0; k < o->ninputs; k++) free((void *)o->inputs[k].name);
    free(o->inputs);
}

/* A .milb model's bytes and their validated view, read once for loading and
 * for the FlexibleShapeInformation lookups of every input. */
typedef struct MilbModel {
    void *buf;
    size_t len;
    MilbView view;
    bool have_view;
} MilbModel;

static void milb_model_free(MilbModel *m) {
    if (m->have_view) mil_rt_milb_view_free(&m->view);
    free(m->buf);
}

/* MODEL.milb: the runtime's loader, no parsing or lowering (issue 5). */
static MilRtProgram *load_milb_model(const char *path, const Options *o, MilbModel *m, MilRtFunc **f) {
    MilRtErr e;
    MilRtMilbOptions mo = {.weights_dir = o->weights, .function = o->function};
    MilRtProgram *rp = mil_rt_milb_read_file(path, &m->buf, &m->len, &e)
                           ? NULL
                           : mil_rt_milb_load_mem(m->buf, m->len, path, &mo, &e);
    if (!rp) {
        fprintf(stderr, "mil-run: error: %s\n", e.msg);
        return NULL;
    }
    m->have_view = true;
    if (mil_rt_milb_parse(m->buf, m->len, path, &m->view, &e)) { /* the loader has validated it already */
        mil_rt_milb_view_free(&m->view);
        m->have_view = false;
    }
    *f = o->function ? mil_rt_program_find_func(rp, o->function) : mil_rt_program_find_func(rp, "main");
    if (!*f && !o->function && rp->nfuncs == 1) *f = rp->funcs[0];
    if (!*f) {
        fprintf(stderr, "mil-run: error: %s: %s\n", path,
                o->function ? "no such function" : "several functions and none is named 'main'; choose one with --function");
        mil_rt_program_free(rp);
        return NULL;
    }
    return rp;
}

/* --device: the runtime's devices plus the simulated ANE (libmilanesim). */
static bool known_device(const char *name) {
    return !strcmp(name, "cpu") || !strcmp(name, "ane") || !strcmp(name, "ane-sim");
}

static MilRtDevice *open_device(const char *name, MilRtErr *e) {
    if (!strcmp(name, "ane-sim")) return mil_ane_sim_device_new(e);
    if (!known_device(name)) {
        mil_rt_errf(e, "unknown device '%s' (available: cpu, ane, ane-sim)", name);
        return NULL;
    }
    return mil_rt_device_new(name, e);
}

int main(int argc, char **argv) {
    Options o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        free_options(&o);
        return rc;
    }
    MilRtErr e;
    MilRtDevice *dev = NULL;
    MilProgram *p = NULL;
    MilRtProgram *rp = NULL;
    MilRtFunc *f = NULL;
    MilRtTensor *in = NULL, *out = NULL;
    MilRtSession *s = NULL;
    MilDiag d;
    mil_diag_init(&d);
    char *synth_dir = NULL;
    MilbModel mb = {0};
    rc = 1;
    char mil_path[4096], model_dir[4096];
    if (mil_coreml_is_package(o.model)) { /* MODEL.mlpackage: @model_path is its root model's directory */
        snprintf(mil_path, sizeof mil_path, "%s", o.model);
        if (mil_coreml_model_dir(o.model, model_dir, sizeof model_dir, &d)) {
            mil_diag_print(&d, stderr);
            goto done;
        }
    } else if (mil_rt_model_paths(o.model, mil_path, sizeof mil_path, model_dir, sizeof model_dir, &e)) {
        fprintf(stderr, "mil-run: error: %s\n", e.msg);
        goto done;
    }
    dev = open_device(o.device, &e);
    if (!dev) {
        fprintf(stderr, "mil-run: error: %s\n", e.msg);
        rc = known_device(o.device) ? 1 : 2;
        goto done;
    }
    const MilFunc *mf = NULL;
    const MilbView *mv = NULL;
    if (mil_milb_is_path(mil_path)) {
        if (o.random_weights) {
            fprintf(stderr, "mil-run: error: --random-weights works on .mil models only\n");
            rc = 2;
            goto done;
        }
        if (!(rp = load_milb_model(mil_path, &o, &mb, &f))) goto done;
        mv = mb.have_view ? &mb.view : NULL;
        goto have_program;
    }
    p = mil_parse_file(mil_path, NULL, &d);
    if (p && d.nerrors == 0) mil_verify(p, &d);
    if (p && d.nerrors == 0) {
        /* shape/type inference first (as milc --check): a type error is
         * reported before any input is read or allocated */
        MilPassOptions po;
        mil_pass_options_init(&po);
        po.passes = "shape";
        po.out = stderr;
        mil_pass_run(p, &po, &d);
        /* the ANE devices take standard MIL only: expand milc's extension
         * ops and decompose masked attention (the ANE ignores attn_mask) as
         * milc --target=ane does (a .milb must be compiled so) */
        if (d.nerrors == 0 && strncmp(o.device, "ane", 3) == 0 && mil_ane_expand_ext(p, &d) == 0) {
            po.passes = "attention";
            po.target = MIL_TARGET_ANE;
            mil_pass_run(p, &po, &d);
        }
    }
    if (!p || d.nerrors) {
        mil_diag_print(&d, stderr);
        if (!d.nerrors) fprintf(stderr, "mil-run: error: %s: cannot read the program\n", mil_path);
        goto done;
    }
    /* the function */
    if (o.function) {
        mf = mil_program_find_func(p, o.function);
        if (!mf) {
            fprintf(stderr, "mil-run: error: %s: no function named '%s'\n", mil_path, o.function);
            goto done;
        }
    } else {
        mf = mil_program_find_func(p, "main");
        if (!mf && p->nfuncs == 1) mf = p->funcs[0];
        if (!mf) {
            fprintf(stderr, "mil-run: error: %s: %s; choose one with --function\n", mil_path,
                    p->nfuncs ? "several functions and none is named 'main'" : "no functions");
            goto done;
        }
    }
    if (o.random_weights && !(synth_dir = synth_model_dir(p, model_dir, &o, &d))) goto done;
    MilLowerOptions lo = {.model_dir = synth_dir ? synth_dir : model_dir, .weights_dir = synth_dir ? NULL : o.weights,
                          .device = dev, .function = mf->name, .file = mil_path};
    rp = mil_lower(p, &lo, &d);
    if (!rp) {
        mil_diag_print(&d, stderr);
        bool missing = false;
        for (int i = 0; i < d.n && !missing; i++) {
            char m[1024];
            mil_diag_format(&d, i, m, sizeof m);
            missing = strstr(m, "cannot open weight file") != NULL;
        }
        if (missing && !synth_dir)
            fprintf(stderr, "mil-run: error: weight files are missing (run with --random-weights SEED to use "
                            "synthetic weights)\n");
        goto done;
    }
    f = mil_rt_program_find_func(rp, mf->name);
have_program:

    /* inputs */
    in = calloc((size_t)f->ninputs + 1, sizeof *in);
    out = calloc((size_t)f->noutputs + 1, sizeof *out);
    if (!in || !out) goto done;
    for (int k = 0; k < o.ninputs; k++) {
        int j = 0;
        while (j < f->ninputs && strcmp(f->values[f->inputs[j]].name, o.inputs[k].name)) j++;
        if (j == f->ninputs) {
            fprintf(stderr, "mil-run: error: function '%s' has no input '%s' (inputs:", f->name, o.inputs[k].name);
            for (int i = 0; i < f->ninputs; i++) fprintf(stderr, " %s", f->values[f->inputs[i]].name);
            fprintf(stderr, "%s)\n", f->ninputs ? "" : " none");
            goto done;
        }
        if (in[j].data) {
            fprintf(stderr, "mil-run: error: input '%s' given twice\n", o.inputs[k].name);
            goto done;
        }
        if (load_input(&f->values[f->inputs[j]], o.inputs[k].file, &in[j])) goto done;
        if (check_flexible(mf, mv, f->name, o.inputs[k].name, in[j].rank, in[j].dims)) goto done;
    }
    uint64_t state = o.seed;
    double random_bytes = 0;
    for (int j = 0; j < f->ninputs; j++) {
        if (in[j].data) continue;
        const MilRtValue *v = &f->values[f->inputs[j]];
        if (!o.random) {
            fprintf(stderr, "mil-run: error: missing input '%s' (give -i %s=FILE.npy or --random-inputs SEED)\n",
                    v->name, v->name);
            goto done;
        }
        MilRtTensor t = {.dtype = v->dtype, .rank = v->rank};
        int64_t dims[MIL_MAX_RANK];
        bool have = mf ? mil_flex_default_shape(mf, v->name, v->rank, dims)
                       : mv && mil_rt_milb_view_default_shape(mv, f->name, v->name, v->rank, dims) == 1; /* .milb */
        double bytes = (double)mil_rt_dtype_size(v->dtype);
        for (int k = 0; k < v->rank; k++) {
            t.dims[k] = v->dims[k] >= 0 ? v->dims[k] : have && dims[k] >= 0 ? dims[k] : 1;
            bytes *= (double)t.dims[k];
        }
        if (check_flexible(mf, mv, f->name, v->name, t.rank, t.dims)) goto done;
        random_bytes += bytes;
        if (random_bytes > MAX_RANDOM_INPUT_BYTES) {
            char ty[256];
            fprintf(stderr, "mil-run: error: input '%s' (%s) needs %.3g GiB; random inputs are limited to %.0f GiB "
                            "in total\n", v->name, mil_rt_format_type(t.dtype, t.rank, t.dims, ty, sizeof ty),
                    bytes / GIB, MAX_RANDOM_INPUT_BYTES / GIB);
            goto done;
        }
        if (mil_rt_tensor_alloc(&t, &e)) {
            fprintf(stderr, "mil-run: error: input '%s': %s\n", v->name, e.msg);
            goto done;
        }
        mil_rt_tensor_fill_random(&t, &state);
        in[j] = t;
    }

    /* run */
    s = mil_rt_session_new(dev, f, &e);
    if (!s) {
        report(&e);
        goto done;
    }
    for (long r = 0; r < o.repeat; r++) {
        double t0 = now_ms();
        if (mil_rt_session_run(s, in, out, &e)) {
            report(&e);
            goto done;
        }
        double t1 = now_ms();
        if (o.time) fprintf(stderr, "mil-run: run %ld: %.3f ms\n", r + 1, t1 - t0);
    }
    if (o.outdir && write_outputs(f, out, o.outdir)) goto done;
    if (o.summary) summary(f, out);
    rc = 0;
done:
    mil_rt_session_free(s);
    if (in)
        for (int j = 0; j < f->ninputs; j++) mil_rt_tensor_free(&in[j]);
    free(in);
    free(out);
    free_options(&o);
    mil_rt_program_free(rp);
    milb_model_free(&mb);
    mil_program_free(p);
    mil_diag_free(&d);
    mil_rt_device_free(dev);
    if (synth_dir) mil_rm_tree(synth_dir);
    free(synth_dir);
    return rc;
}
