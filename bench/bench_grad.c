/* bench/bench_grad.c -- milc --grad figures (issue 9):
 *   bench_grad MODEL LAYERS SEQ DIM FFN
 * CPU time of mil_grad + -O2 (cpu) on the model, against -O2 of the forward
 * alone in the same run (the peer: ratio); ops of FUNC_fwd / FUNC_bwd before
 * and after -O2 for the cpu and the ane target; tap bytes per token and layer
 * for --recompute=none and cheap, against the seed's hand-chosen taps
 * (docs/ane-notes.md §13.4: attention Q, K, V, attention output, normalised
 * x; FFN h1, h3, gate, normalised x = 6D + 3H fp16 values per token). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend/frontend.h"
#include "passes/passes.h"

static double cpu_ms(void) { return (double)clock() * 1e3 / CLOCKS_PER_SEC; }

static int nops(const MilProgram *p, const char *fn) {
    const MilFunc *f = mil_program_find_func(p, fn);
    int n = 0;
    for (const MilOp *op = f ? f->body.first : NULL; op; op = op->next) n += op->kind != MIL_OP_CONST;
    return n;
}

static MilProgram *load(const char *path, MilDiag *d) {
    MilParseOptions po = {0};
    MilProgram *p = mil_parse_file(path, &po, d);
    if (!p || mil_verify(p, d)) {
        mil_diag_print(d, stderr);
        exit(1);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bench_grad MODEL.mlmodelc LAYERS SEQ DIM FFN\n");
        return 2;
    }
    char mil[4096];
    snprintf(mil, sizeof mil, "%s/model.mil", argv[1]);
    int L = atoi(argv[2]), S = atoi(argv[3]), D = atoi(argv[4]), H = atoi(argv[5]);
    MilDiag d;
    mil_diag_init(&d);
    MilPassOptions o2;
    mil_pass_options_init(&o2);
    o2.opt_level = 2;
    o2.weights_dir = argv[1];

    /* peer: -O2 of the forward alone */
    MilProgram *p = load(mil, &d);
    double t0 = cpu_ms();
    if (mil_pass_run(p, &o2, &d)) goto fail;
    double fwd_ms = cpu_ms() - t0;
    mil_program_free(p);

    for (int rc = 0; rc < 2; rc++) {
        for (int tgt = 0; tgt < 2; tgt++) {
            p = load(mil, &d);
            MilGradOptions go;
            mil_grad_options_init(&go);
            go.recompute = (MilRecompute)rc;
            t0 = cpu_ms();
            if (mil_grad(p, &go, &d)) goto fail;
            double grad_ms = cpu_ms() - t0;
            int f0 = nops(p, "main_fwd"), b0 = nops(p, "main_bwd");
            char *js = mil_grad_map_json(p, "main");
            const char *tb = js ? strstr(js, "\"tap_bytes\": ") : NULL;
            long long bytes = tb ? atoll(tb + 13) : -1;
            free(js);
            o2.target = tgt ? MIL_TARGET_ANE : MIL_TARGET_CPU;
            t0 = cpu_ms();
            if (mil_pass_run(p, &o2, &d)) goto fail;
            double opt_ms = cpu_ms() - t0;
            printf("grad recompute=%-5s target=%s: mil_grad %.1f ms + -O2 %.1f ms CPU (forward -O2 alone %.1f ms: %.2fx); "
                   "ops fwd %d -> %d, bwd %d -> %d\n",
                   rc ? "cheap" : "none", tgt ? "ane" : "cpu", grad_ms, opt_ms, fwd_ms, (grad_ms + opt_ms) / fwd_ms, f0,
                   nops(p, "main_fwd"), b0, nops(p, "main_bwd"));
            if (!tgt) {
                double per = (double)bytes / S / L, seed = 2.0 * (6 * D + 3 * H);
                printf("grad recompute=%-5s taps: %.0f bytes per token and layer (seed's hand-chosen taps: %.0f; %.2fx)\n",
                       rc ? "cheap" : "none", per, seed, per / seed);
            }
            mil_program_free(p);
        }
    }
    mil_diag_free(&d);
    return 0;
fail:
    mil_diag_print(&d, stderr);
    return 1;
}
