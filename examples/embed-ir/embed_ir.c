/* examples/embed-ir/embed_ir.c -- embedding the milc compiler libraries.
 *
 * Builds a small MIL program with the IR builder API, optimises it with the
 * pass pipeline (-O1: type inference, folding, CSE, dead-code elimination),
 * prints it as MIL text, lowers it to a runtime program and runs it on the
 * CPU device.  It is built outside the source tree against an installed milc
 * (see CMakeLists.txt here, or README "Embedding"):
 *
 *   cc embed_ir.c $(pkg-config --cflags --libs milc-backend milc-passes) -o embed-ir
 *
 * The program computes  y = relu(linear(x, W, b)) + relu(linear(x, W, b))
 * with the relu written twice (CSE merges them) and one unused op (DCE
 * drops it).
 */
#include <stdio.h>

#include "backend/backend.h"
#include "passes/passes.h"

/* Appends `name = kind(x = a, y = b)` (b may be NULL) with an inferred result type. */
static MilValue *binop(MilFunc *f, MilOpKind kind, const char *name, MilValue *a, MilValue *b, MilDiag *d) {
    MilOp *op = mil_op_new(f, kind, NULL);
    mil_op_add_arg(op, "x", a);
    if (b) mil_op_add_arg(op, "y", b);
    mil_op_set_attr(op, "name", mil_const_string(f->prog, name));
    MilValue *r = mil_op_add_result(op, NULL, name);
    mil_block_append(&f->body, op);
    return mil_shape_infer_op(f->prog, op, d) == 0 ? r : NULL;
}

static MilValue *tensor_const(MilFunc *f, const char *name, int rank, const int64_t *dims, const float *v, int n) {
    const MilType *t = mil_type_tensor(f->prog, MIL_DT_FP32, rank, dims);
    return mil_build_const(f, mil_const_tensor(f->prog, t, v, n), name);
}

int main(void) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_program_new("1.3");
    p->trailing_newline = true;   /* print a final newline */
    MilFunc *f = mil_func_new(p, "main", "ios18");
    int64_t xdims[] = {1, 4}, wdims[] = {3, 4}, bdims[] = {3};
    MilValue *x = mil_func_add_param(f, mil_type_tensor(p, MIL_DT_FP32, 2, xdims), "x");

    static const float w[] = {1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1};
    static const float b[] = {0.5f, -1, 0};
    MilValue *wv = tensor_const(f, "W", 2, wdims, w, 12), *bv = tensor_const(f, "b", 1, bdims, b, 3);
    MilOp *lin = mil_op_new(f, MIL_OP_LINEAR, NULL);
    mil_op_add_arg(lin, "x", x);
    mil_op_add_arg(lin, "weight", wv);
    mil_op_add_arg(lin, "bias", bv);
    mil_op_set_attr(lin, "name", mil_const_string(p, "h"));
    MilValue *h = mil_op_add_result(lin, NULL, "h");
    mil_block_append(&f->body, lin);
    mil_shape_infer_op(p, lin, &d);

    MilValue *r1 = binop(f, MIL_OP_RELU, "r1", h, NULL, &d);
    MilValue *r2 = binop(f, MIL_OP_RELU, "r2", h, NULL, &d);   /* same as r1 */
    binop(f, MIL_OP_MUL, "unused", x, x, &d);                   /* never read */
    MilValue *y = binop(f, MIL_OP_ADD, "y", r1, r2, &d);
    if (!y || d.nerrors) goto fail;
    mil_func_add_output(f, y);
    if (mil_verify(p, &d)) goto fail;

    MilPassOptions po;
    mil_pass_options_init(&po);   /* -O1 */
    if (mil_pass_run(p, &po, &d)) goto fail;
    if (mil_print_file(p, MIL_SPELLING_SAME, stdout)) goto fail;

    MilLowerOptions lo = {0};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    if (!rp) goto fail;
    MilRtErr e = {{0}};
    MilRtDevice *cpu = mil_rt_device_cpu_new();
    float xv[] = {1, -2, 3, 4};
    MilRtTensor in = {MIL_DT_FP32, 2, {1, 4}, xv}, out = {MIL_DT_NONE, 0, {0}, NULL};
    int rc = mil_rt_run_once(cpu, mil_rt_program_find_func(rp, "main"), &in, &out, &e);
    if (rc == 0) {
        char ty[64];
        printf("y: %s =", mil_rt_format_type(out.dtype, out.rank, out.dims, ty, sizeof ty));
        for (int64_t i = 0; i < mil_rt_numel(&out); i++) printf(" %g", mil_rt_get_f64(&out, i));
        printf("\n");
    } else {
        fprintf(stderr, "embed-ir: error: %s\n", e.msg);
    }
    mil_rt_tensor_free(&out);
    mil_rt_device_free(cpu);
    mil_rt_program_free(rp);
    mil_program_free(p);
    mil_diag_free(&d);
    return rc == 0 ? 0 : 1;
fail:
    mil_diag_print(&d, stderr);
    if (!d.nerrors) fprintf(stderr, "embed-ir: error: out of memory or output error\n");
    mil_program_free(p);
    mil_diag_free(&d);
    return 1;
}
