/* test/install/ane_sim_run.c -- libmilanesim from the installed package:
 * runs PROG.milb on the "ane-sim" device and on the CPU device with the same
 * deterministic input and prints "same" when the outputs are identical. */
#include <stdio.h>
#include <string.h>

#include "runtime/ane/ane_sim.h"

int main(int argc, char **argv) {
    MilRtErr e = {{0}};
    MilRtProgram *p = argc > 1 ? mil_rt_milb_load(argv[1], NULL, &e) : NULL;
    MilRtDevice *ane = p ? mil_ane_sim_device_new(&e) : NULL;
    if (!ane) { fprintf(stderr, "ane_sim_run: %s\n", e.msg); return 1; }
    MilRtDevice *cpu = mil_rt_device_cpu_new();
    const MilRtFunc *f = p->funcs[0];
    const MilRtValue *x = &f->values[f->inputs[0]];
    MilRtTensor in = {x->dtype, x->rank, {0}, NULL}, a = {MIL_DT_NONE, 0, {0}, NULL}, b = a;
    memcpy(in.dims, x->dims, sizeof in.dims);
    uint64_t seed = 1;
    int rc = mil_rt_tensor_alloc(&in, &e);
    if (rc == 0) mil_rt_tensor_fill_random(&in, &seed);
    if (rc == 0) rc = mil_rt_run_once(ane, f, &in, &a, &e);
    if (rc == 0) rc = mil_rt_run_once(cpu, f, &in, &b, &e);
    if (rc == 0) printf("%s %s\n", mil_rt_device_name(ane),
                        mil_rt_same_shape(&a, &b) && !memcmp(a.data, b.data, mil_rt_nbytes(&a)) ? "same" : "differs");
    else fprintf(stderr, "ane_sim_run: %s\n", e.msg);
    mil_rt_tensor_free(&in);
    mil_rt_tensor_free(&a);
    mil_rt_tensor_free(&b);
    mil_rt_device_free(ane);
    mil_rt_device_free(cpu);
    mil_rt_program_free(p);
    return rc == 0 ? 0 : 1;
}
