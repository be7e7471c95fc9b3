/* bench/bench_compile.c -- compile time of the optimiser.
 *
 *   bench_compile [-O2] [--target=cpu|ane] [-n RUNS] [--per-pass] MODEL...
 *
 * For each MODEL (a .mil file or a .mlmodelc bundle) parses it once per run,
 * runs the pipeline and reports the best parse time, the best pass time and
 * the op count before and after (const ops counted separately).  Defaults:
 * -O2, cpu target, 5 runs.  --per-pass also prints the best time of each
 * pass (from the pipeline's --stats lines; the op counting of --stats then
 * adds a little to the total, not to the per-pass times).  The figures of issue 4 use the largest corpus file
 * and a 12-layer transformer from bench/gen_transformer.py:
 *   python3 bench/gen_transformer.py --layers 12 --dim 768 --seq 256 --heads 12 \
 *       --ffn 2048 --zeros --out /tmp/t12.mlmodelc
 *   bench_compile /work/shared/corpus/real/FluidAudio__ParakeetEOU_1280ms__streaming_encoder.mil /tmp/t12.mlmodelc
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/runtime.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Best time per pass name, parsed from the "stats: NAME  X ms" lines. */
typedef struct PassTime {
    char name[32];
    double best;
} PassTime;

static void parse_stats(const char *text, PassTime *pt, int *npt, int max) {
    for (const char *l = text; l && *l;) {
        char name[32];
        double ms;
        int end = 0;
        /* pass lines: "stats: NAME  X ms  ops ..."; per-kind lines are indented */
        if (!strncmp(l, "stats: ", 7) && l[7] != ' ' && sscanf(l, "stats: %31s %lf ms%n", name, &ms, &end) == 2 &&
            end > 0 && strcmp(name, "total")) {
            int i = 0;
            while (i < *npt && strcmp(pt[i].name, name)) i++;
            if (i == *npt && *npt < max) {
                snprintf(pt[i].name, sizeof pt[i].name, "%s", name);
                pt[i].best = 1e30;
                (*npt)++;
            }
            if (i < *npt && ms < pt[i].best) pt[i].best = ms;
        }
        const char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : NULL;
    }
}

static void count(const MilProgram *p, int *ops, int *consts) {
    *ops = *consts = 0;
    for (int i = 0; i < p->nfuncs; i++)
        for (const MilOp *op = p->funcs[i]->body.first; op; op = op->next) {
            if (op->kind == MIL_OP_CONST) (*consts)++;
            else (*ops)++;
        }
}

int main(int argc, char **argv) {
    int level = 2, runs = 5;
    bool per_pass = false;
    MilTarget target = MIL_TARGET_CPU;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-O0") || !strcmp(a, "-O1") || !strcmp(a, "-O2")) { level = a[2] - '0'; continue; }
        if (!strcmp(a, "--target=ane")) { target = MIL_TARGET_ANE; continue; }
        if (!strcmp(a, "--target=cpu")) { target = MIL_TARGET_CPU; continue; }
        if (!strcmp(a, "-n") && i + 1 < argc) { runs = atoi(argv[++i]); continue; }
        if (!strcmp(a, "--per-pass")) { per_pass = true; continue; }
        char mil_path[4096], model_dir[4096];
        MilRtErr e;
        if (mil_rt_model_paths(a, mil_path, sizeof mil_path, model_dir, sizeof model_dir, &e) != 0) {
            fprintf(stderr, "bench_compile: %s\n", e.msg);
            rc = 1;
            continue;
        }
        double best_parse = 1e30, best_pass = 1e30;
        int ops0 = 0, c0 = 0, ops1 = 0, c1 = 0;
        PassTime pt[32];
        int npt = 0;
        for (int r = 0; r < runs; r++) {
            MilDiag d;
            mil_diag_init(&d);
            MilParseOptions po = {.allow_unknown_ops = true};
            double t0 = now_ms();
            MilProgram *p = mil_parse_file(a, &po, &d);
            double t1 = now_ms();
            if (!p || d.nerrors) {
                mil_diag_print(&d, stderr);
                mil_program_free(p);
                mil_diag_free(&d);
                rc = 1;
                break;
            }
            count(p, &ops0, &c0);
            MilPassOptions o;
            mil_pass_options_init(&o);
            o.opt_level = level;
            o.target = target;
            o.weights_dir = model_dir;
            char *st = NULL;
            size_t stlen = 0;
            if (per_pass) {
                o.stats = true;
                o.out = open_memstream(&st, &stlen);
            }
            double t2 = now_ms();
            int errs = mil_pass_run(p, &o, &d);
            double t3 = now_ms();
            if (o.out) {
                fclose(o.out);
                parse_stats(st, pt, &npt, 32);
            }
            free(st);
            if (errs) {
                mil_diag_print(&d, stderr);
                rc = 1;
            }
            count(p, &ops1, &c1);
            if (t1 - t0 < best_parse) best_parse = t1 - t0;
            if (t3 - t2 < best_pass) best_pass = t3 - t2;
            mil_program_free(p);
            mil_diag_free(&d);
        }
        printf("%s\n  -O%d %s: parse %.1f ms, passes %.1f ms (best of %d); ops %d -> %d (+ const %d -> %d)\n", a,
               level, target == MIL_TARGET_CPU ? "cpu" : "ane", best_parse, best_pass, runs, ops0, ops1, c0, c1);
        for (int k = 0; k < npt; k++) printf("    %-10s %8.2f ms\n", pt[k].name, pt[k].best);
    }
    return rc;
}
