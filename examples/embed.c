/* examples/embed.c -- embedding the milc runtime in an application.
 *
 * An app that ships compiled programs (.milb + weights) needs only the runtime
 * library: this program links milruntime alone (no parser, IR or passes; the
 * link would fail if the runtime pulled in compiler code).
 *
 *   milc -O2 --emit=milb -o prog.milb model.mil     # at build time
 *   embed prog.milb OUTDIR NAME=IN.npy ...          # in the app
 *
 * It loads the program, binds the named inputs of function `main` (or the only
 * function), runs it once on the CPU device and writes OUTDIR/<output>.npy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: embed PROG.milb OUTDIR [NAME=IN.npy ...]\n");
        return 2;
    }
    MilRtErr e = {{0}};
    int rc = 1;
    MilRtProgram *prog = mil_rt_milb_load(argv[1], NULL, &e);
    if (!prog) goto fail;
    MilRtFunc *f = mil_rt_program_find_func(prog, "main");
    if (!f && prog->nfuncs == 1) f = prog->funcs[0];
    if (!f) { mil_rt_errf(&e, "%s: no function 'main'", argv[1]); goto fail; }

    MilRtTensor *in = calloc((size_t)f->ninputs + 1, sizeof *in);
    MilRtTensor *out = calloc((size_t)f->noutputs + 1, sizeof *out);
    for (int a = 3; a < argc; a++) {
        char *eq = strchr(argv[a], '=');
        if (!eq) { mil_rt_errf(&e, "bad input '%s' (expected NAME=FILE.npy)", argv[a]); goto fail; }
        *eq = 0;
        int slot = -1;
        for (int i = 0; i < f->ninputs; i++)
            if (!strcmp(f->values[f->inputs[i]].name, argv[a])) slot = i;
        if (slot < 0) { mil_rt_errf(&e, "the program has no input '%s'", argv[a]); goto fail; }
        if (mil_rt_npy_read(eq + 1, &in[slot], &e) != 0) goto fail;
    }
    for (int i = 0; i < f->ninputs; i++)
        if (!in[i].data) { mil_rt_errf(&e, "missing input '%s'", f->values[f->inputs[i]].name); goto fail; }

    MilRtDevice *cpu = mil_rt_device_cpu_new();
    if (mil_rt_run_once(cpu, f, in, out, &e) != 0) { mil_rt_device_free(cpu); goto fail; }
    mil_rt_device_free(cpu);
    rc = 0;
    for (int i = 0; i < f->noutputs && rc == 0; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", argv[2], f->values[f->outputs[i]].name);
        if (mil_rt_npy_write(path, &out[i], &e) != 0) rc = 1;
        else printf("wrote %s\n", path);
    }
    for (int i = 0; i < f->ninputs; i++) mil_rt_tensor_free(&in[i]);
    for (int i = 0; i < f->noutputs; i++) mil_rt_tensor_free(&out[i]);
    free(in);
    free(out);
    mil_rt_program_free(prog);
    if (rc == 0) return 0;
fail:
    fprintf(stderr, "embed: error: %s\n", e.msg);
    return 1;
}
