/* bench/bench_corpus.c -- run a real program whose weights are not available
 * (e.g. the corpus's largest, the Parakeet streaming encoder) on the CPU
 * device, with synthetic weights.
 *
 *   bench_corpus [PROGRAM.mil] [RUNS] [NAME=D0,D1,...]...
 *
 * Without PROGRAM, the largest .mil in $MILC_CORPUS_DIR (default
 * ../shared/corpus/real) is used.  Every BLOBFILE the program references is
 * re-created in a temporary model directory by mil_synth_weights
 * (backend/backend.h: the runtime's weight writer at exactly the referenced
 * offsets, filler records bridging gaps, deterministic random values: floats
 * in [-0.05, 0.05), integers in [0, 4)).
 * Then the program is lowered, prepared once with random inputs (`?` dims
 * from NAME=D0,D1,... arguments, else FlexibleShapeInformation's
 * DefaultShapes, else 1), run RUNS times (default 5), and the per-run wall time is printed.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "runtime/runtime.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static char *largest_in(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *best = NULL;
    off_t bs = -1;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        size_t n = strlen(ent->d_name);
        if (n < 5 || strcmp(ent->d_name + n - 4, ".mil")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && st.st_size > bs) {
            bs = st.st_size;
            free(best);
            best = strdup(p);
        }
    }
    closedir(d);
    return best;
}

int main(int argc, char **argv) {
    const char *corpus = getenv("MILC_CORPUS_DIR");
    char *prog = argc > 1 ? strdup(argv[1]) : largest_in(corpus && *corpus ? corpus : "../shared/corpus/real");
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (!prog) {
        fprintf(stderr, "bench_corpus: no program (give PROGRAM.mil or set MILC_CORPUS_DIR)\n");
        return 2;
    }
    MilDiag d;
    mil_diag_init(&d);
    double t0 = now_ms();
    MilProgram *p = mil_parse_file(prog, NULL, &d);
    if (!p) {
        mil_diag_print(&d, stderr);
        return 1;
    }
    double t_parse = now_ms() - t0;
    char tmpl[] = "/tmp/milc-bench-XXXXXX";
    char *dir = mkdtemp(tmpl);
    MilRtErr e;
    MilSynthStats st = {0};
    MilSynthOptions so = {.model_dir = dir, .seed = 12345, .stats = &st};
    if (!dir || mil_synth_weights_opt(p, &so, &d) < 0) {
        mil_diag_print(&d, stderr);
        fprintf(stderr, "bench_corpus: cannot synthesise the weights\n");
        return 1;
    }
    MilRtDevice *dev = mil_rt_device_new("cpu", &e);
    t0 = now_ms();
    MilLowerOptions lo = {.model_dir = dir, .device = dev, .file = prog};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    if (!rp) {
        mil_diag_print(&d, stderr);
        return 1;
    }
    double t_lower = now_ms() - t0;
    MilRtFunc *f = mil_rt_program_find_func(rp, "main");
    if (!f) f = rp->funcs[0];
    MilRtTensor *in = calloc((size_t)f->ninputs + 1, sizeof *in), *out = calloc((size_t)f->noutputs + 1, sizeof *out);
    uint64_t seed = 1;
    for (int i = 0; i < f->ninputs; i++) {
        const MilRtValue *v = &f->values[f->inputs[i]];
        in[i] = (MilRtTensor){.dtype = v->dtype, .rank = v->rank};
        int64_t def[MIL_MAX_RANK];
        bool have = mil_flex_default_shape(mil_program_find_func(p, f->name), v->name, v->rank, def);
        for (int a = 3; a < argc; a++) {  /* NAME=D0,D1,... */
            size_t nl = strlen(v->name);
            if (strncmp(argv[a], v->name, nl) || argv[a][nl] != '=') continue;
            char *q = argv[a] + nl + 1;
            for (int k = 0; k < v->rank && *q; k++) {
                def[k] = strtoll(q, &q, 10);
                if (*q == ',') q++;
            }
            have = true;
        }
        for (int k = 0; k < v->rank; k++) in[i].dims[k] = v->dims[k] >= 0 ? v->dims[k] : have ? def[k] : 1;
        mil_rt_tensor_alloc(&in[i], &e);
        mil_rt_tensor_fill_random(&in[i], &seed);
    }
    MilRtSession *s = mil_rt_session_new(dev, f, &e);
    t0 = now_ms();
    if (!s || mil_rt_session_run(s, in, out, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double t_first = now_ms() - t0;
    const MilRtPlan *plan = mil_rt_session_plan(s);
    printf("%s\n", prog);
    printf("  %d ops (%d run, %d folded at prepare, %d sized at run time), %d weight blobs\n", f->nops,
           plan->info.nsteps, plan->info.nfolded, plan->info.ndynamic, st.blobs);
    printf("  arena %.2f MB (%.2f MB without reuse), scratch %.2f MB\n", plan->info.arena_bytes / 1e6,
           plan->info.naive_bytes / 1e6, plan->info.scratch_bytes / 1e6);
    printf("  parse %.1f ms, lower %.1f ms, prepare + first run %.1f ms\n", t_parse, t_lower, t_first);
    double best = 1e30, sum = 0;
    for (int r = 0; r < runs; r++) {
        t0 = now_ms();
        if (mil_rt_session_run(s, in, out, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        double t = now_ms() - t0;
        sum += t;
        if (t < best) best = t;
    }
    printf("  run: best %.2f ms, mean %.2f ms over %d runs\n", best, sum / runs, runs);
    mil_rt_session_free(s);
    for (int i = 0; i < f->ninputs; i++) mil_rt_tensor_free(&in[i]);
    free(in);
    free(out);
    mil_rt_program_free(rp);
    mil_rt_device_free(dev);
    mil_program_free(p);
    mil_diag_free(&d);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {}
    free(prog);
    return 0;
}
