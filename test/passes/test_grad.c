/* test/passes/test_grad.c -- milc --grad (passes/grad.c, issue 9).
 *
 * grad_rules: one table row per VJP rule (a small program using the op,
 * broadcast cases included); the gradient FUNC_bwd computes is checked
 * against central finite differences of FUNC on the CPU device (fp32), and
 * FUNC_fwd's outputs against FUNC's bit for bit.  every_rule_has_a_row
 * fails when a rule (or an OPF_GRAD op in ir/ops.def) has no row.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "runtime/runtime.h"
#include "testutil.h"

#include "grad_util.h"

/* ------------------------------------------------------------ the table */

typedef struct Row {
    const char *op;      /* the op the row is for */
    const char *params;  /* FUNC's inputs; names starting with `pos` get values in [0.5, 1.5) */
    const char *body;
    const char *outs;
} Row;

#define T23 "tensor<fp32, [2, 3]>"
#define AX(...) "tensor<int32, [" #__VA_ARGS__ "]>"

static const Row rows[] = {
    {"add", T23 " x, tensor<fp32, [3]> y", T23 " z = add(x = x, y = y);", "z"},
    {"add", T23 " x, tensor<fp32, [2, 1]> y", T23 " z = add(x = x, y = y);", "z"},
    {"sub", T23 " x, tensor<fp32, [1, 3]> y", T23 " z = sub(x = x, y = y);", "z"},
    {"sub", T23 " x", T23 " z = sub(x = fp32(0x1p+0), y = x);", "z"},
    {"mul", T23 " x, " T23 " y", T23 " z = mul(x = x, y = y);", "z"},
    {"mul", T23 " x, fp32 y", T23 " z = mul(x = x, y = y);", "z"},
    {"real_div", T23 " x, tensor<fp32, [3]> posy", T23 " z = real_div(x = x, y = posy);", "z"},
    {"pow", T23 " posx", T23 " z = pow(x = posx, y = fp32(0x1.8p+1));", "z"},
    {"pow", T23 " posx, " T23 " y", T23 " z = pow(x = posx, y = y);", "z"},
    {"maximum", T23 " x, " T23 " y", T23 " z = maximum(x = x, y = y);", "z"},
    {"minimum", T23 " x, tensor<fp32, [3]> y", T23 " z = minimum(x = x, y = y);", "z"},
    {"square", T23 " x", T23 " z = square(x = x);", "z"},
    {"sqrt", T23 " posx", T23 " z = sqrt(x = posx);", "z"},
    {"rsqrt", T23 " posx", T23 " z = rsqrt(epsilon = fp32(0x1p-4), x = posx);", "z"},
    {"inverse", T23 " posx", T23 " z = inverse(epsilon = fp32(0x1p-4), x = posx);", "z"},
    {"exp", T23 " x", T23 " z = exp(x = x);", "z"},
    {"log", T23 " posx", T23 " z = log(epsilon = fp32(0x1p-3), x = posx);", "z"},
    {"abs", T23 " x", T23 " z = abs(x = x);", "z"},
    {"tanh", T23 " x", T23 " z = tanh(x = x);", "z"},
    {"sigmoid", T23 " x", T23 " z = sigmoid(x = x);", "z"},
    {"silu", T23 " x", T23 " z = silu(x = x);", "z"},
    {"relu", T23 " x", T23 " z = relu(x = x);", "z"},
    {"leaky_relu", T23 " x", T23 " z = leaky_relu(alpha = fp32(0x1p-2), x = x);", "z"},
    {"gelu", T23 " x", T23 " z = gelu(mode = string(\"EXACT\"), x = x);", "z"},
    {"gelu", T23 " x", T23 " z = gelu(mode = string(\"TANH_APPROXIMATION\"), x = x);", "z"},
    {"gelu", T23 " x", T23 " z = gelu(mode = string(\"SIGMOID_APPROXIMATION\"), x = x);", "z"},
    {"softplus", T23 " x", T23 " z = softplus(x = x);", "z"},
    {"erf", T23 " x", T23 " z = erf(x = x);", "z"},
    {"clip", T23 " x", T23 " z = clip(alpha = fp32(-0x1p-1), beta = fp32(0x1p-1), x = x);", "z"},
    {"identity", T23 " x", T23 " z = identity(x = x);", "z"},
    {"cast", T23 " x", "tensor<fp16, [2, 3]> h = cast(dtype = string(\"fp16\"), x = x); " T23
                       " z = cast(dtype = string(\"fp32\"), x = h);", "z"},
    {"select", T23 " x, tensor<fp32, [3]> y",
     "tensor<bool, [2, 3]> c = greater(x = x, y = fp32(0x0p+0)); " T23 " z = select(a = x, b = y, cond = c);", "z"},
    {"reduce_sum", T23 " x", "tensor<fp32, [2]> z = reduce_sum(axes = " AX(1) "([1]), keep_dims = bool(false), x = x);", "z"},
    {"reduce_sum", T23 " x", "fp32 z = reduce_sum(keep_dims = bool(false), x = x);", "z"},
    {"reduce_mean", T23 " x", "tensor<fp32, [1, 3]> z = reduce_mean(axes = " AX(1) "([0]), keep_dims = bool(true), x = x);", "z"},
    {"reduce_max", T23 " x", "tensor<fp32, [2]> z = reduce_max(axes = " AX(1) "([-1]), keep_dims = bool(false), x = x);", "z"},
    {"reduce_min", T23 " x", "tensor<fp32, [3]> z = reduce_min(axes = " AX(1) "([0]), keep_dims = bool(false), x = x);", "z"},
    {"reduce_sum_square", T23 " x", "tensor<fp32, [2, 1]> z = reduce_sum_square(axes = " AX(1) "([1]), keep_dims = bool(true), x = x);", "z"},
    {"reduce_log_sum_exp", T23 " x", "tensor<fp32, [2]> z = reduce_log_sum_exp(axes = " AX(1) "([1]), keep_dims = bool(false), x = x);", "z"},
    {"softmax", T23 " x", T23 " z = softmax(axis = int32(-1), x = x);", "z"},
    {"softmax", T23 " x", T23 " z = softmax(axis = int32(0), x = x);", "z"},
    {"layer_norm", "tensor<fp32, [2, 4]> x",
     "tensor<fp32, [2, 4]> z = layer_norm(axes = " AX(1) "([-1]), epsilon = fp32(0x1p-10), gamma = tensor<fp32, [4]>([0x1p+0, 0x1p-1, 0x1.8p+0, -0x1p+0]), x = x);", "z"},
    {"layer_norm", "tensor<fp32, [3, 2, 2]> x",
     "tensor<fp32, [3, 2, 2]> z = layer_norm(axes = " AX(2) "([1, 2]), beta = tensor<fp32, [2, 2]>([[0x1p+0, -0x1p+0], [0x1p-1, 0x0p+0]]), epsilon = fp32(0x1p-10), x = x);", "z"},
    {"rms_norm", "tensor<fp32, [2, 4]> x, tensor<fp32, [4]> w",
     "tensor<fp32, [2, 4]> z = rms_norm(axes = " AX(1) "([1]), epsilon = fp32(0x1p-10), gamma = w, x = x);", "z"},
    {"rms_norm", "tensor<fp32, [1, 3, 1, 2]> x, tensor<fp32, [3]> w",
     "tensor<fp32, [1, 3, 1, 2]> z = rms_norm(axes = " AX(1) "([1]), epsilon = fp32(0x1p-10), gamma = w, x = x);", "z"},
    {"matmul", "tensor<fp32, [2, 3]> x, tensor<fp32, [3, 4]> y",
     "tensor<fp32, [2, 4]> z = matmul(transpose_x = bool(false), transpose_y = bool(false), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [2, 3]> x, tensor<fp32, [4, 3]> y",
     "tensor<fp32, [2, 4]> z = matmul(transpose_x = bool(false), transpose_y = bool(true), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [3, 2]> x, tensor<fp32, [3, 4]> y",
     "tensor<fp32, [2, 4]> z = matmul(transpose_x = bool(true), transpose_y = bool(false), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [3, 2]> x, tensor<fp32, [4, 3]> y",
     "tensor<fp32, [2, 4]> z = matmul(transpose_x = bool(true), transpose_y = bool(true), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [2, 2, 3]> x, tensor<fp32, [3, 2]> y",
     "tensor<fp32, [2, 2, 2]> z = matmul(transpose_x = bool(false), transpose_y = bool(false), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [3]> x, tensor<fp32, [3, 4]> y",
     "tensor<fp32, [4]> z = matmul(transpose_x = bool(false), transpose_y = bool(false), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [2, 3]> x, tensor<fp32, [3]> y",
     "tensor<fp32, [2]> z = matmul(transpose_x = bool(false), transpose_y = bool(false), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [3, 2]> x, tensor<fp32, [3]> y",
     "tensor<fp32, [2]> z = matmul(transpose_x = bool(true), transpose_y = bool(false), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [3]> x, tensor<fp32, [2, 4, 3]> y",
     "tensor<fp32, [2, 4]> z = matmul(transpose_x = bool(false), transpose_y = bool(true), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [2, 2, 3]> x, tensor<fp32, [3]> y",
     "tensor<fp32, [2, 2]> z = matmul(transpose_x = bool(false), transpose_y = bool(false), x = x, y = y);", "z"},
    {"matmul", "tensor<fp32, [3]> x, tensor<fp32, [3]> y",
     "fp32 z = matmul(transpose_x = bool(false), transpose_y = bool(false), x = x, y = y);", "z"},
    {"linear", "tensor<fp32, [2, 3]> x",
     "tensor<fp32, [2, 2]> z = linear(bias = tensor<fp32, [2]>([0x1p+0, -0x1p+0]), weight = tensor<fp32, [2, 3]>([[0x1p+0, 0x1p-1, -0x1p+0], [0x1.8p+0, 0x1p-2, 0x1p+1]]), x = x);", "z"},
    {"conv", "tensor<fp32, [1, 3, 1, 2]> x, tensor<fp32, [2, 3, 1, 1]> w, tensor<fp32, [2]> b",
     "tensor<fp32, [1, 2, 1, 2]> z = conv(bias = b, dilations = " AX(2) "([1, 1]), groups = int32(1), pad = " AX(4) "([0, 0, 0, 0]), pad_type = string(\"valid\"), strides = " AX(2) "([1, 1]), weight = w, x = x);", "z"},
    {"conv", "tensor<fp32, [2, 4, 5, 6]> x, tensor<fp32, [6, 2, 3, 2]> w",
     "tensor<fp32, [2, 6, 2, 4]> z = conv(dilations = " AX(2) "([1, 2]), groups = int32(2), pad = " AX(4) "([1, 0, 2, 1]), pad_type = string(\"custom\"), strides = " AX(2) "([2, 2]), weight = w, x = x);", "z"},
    {"conv", "tensor<fp32, [1, 3, 7]> x, tensor<fp32, [4, 3, 3]> w, tensor<fp32, [4]> b",
     "tensor<fp32, [1, 4, 3]> z = conv(bias = b, pad_type = string(\"same\"), strides = " AX(1) "([3]), weight = w, x = x);", "z"},
    {"conv", "tensor<fp32, [1, 4, 1, 6]> x, tensor<fp32, [4, 1, 1, 3]> w",
     "tensor<fp32, [1, 4, 1, 6]> z = conv(groups = int32(4), pad_type = string(\"same_lower\"), weight = w, x = x);", "z"},
    {"reshape", T23 " x", "tensor<fp32, [3, 2]> z = reshape(shape = " AX(2) "([3, 2]), x = x);", "z"},
    {"transpose", "tensor<fp32, [2, 3, 2]> x", "tensor<fp32, [3, 2, 2]> z = transpose(perm = " AX(3) "([1, 2, 0]), x = x);", "z"},
    {"expand_dims", T23 " x", "tensor<fp32, [2, 1, 3]> z = expand_dims(axes = " AX(1) "([1]), x = x);", "z"},
    {"squeeze", "tensor<fp32, [2, 1, 3]> x", T23 " z = squeeze(axes = " AX(1) "([1]), x = x);", "z"},
    {"slice_by_index", "tensor<fp32, [3, 4]> x",
     "tensor<fp32, [2, 2]> z = slice_by_index(begin = " AX(2) "([1, 0]), end = " AX(2) "([3, 4]), stride = " AX(2) "([1, 2]), x = x);", "z"},
    {"slice_by_size", "tensor<fp32, [3, 4]> x",
     "tensor<fp32, [2, 3]> z = slice_by_size(begin = " AX(2) "([1, 1]), size = " AX(2) "([2, -1]), x = x);", "z"},
    {"concat", T23 " x, tensor<fp32, [2, 2]> y",
     "tensor<fp32, [2, 8]> z = concat(axis = int32(1), interleave = bool(false), values = (x, y, x));", "z"},
    {"concat", T23 " x, " T23 " y",
     "tensor<fp32, [2, 9]> z = concat(axis = int32(-1), interleave = bool(true), values = (x, y, x));", "z"},
    {"concat", T23 " x, " T23 " y",
     "tensor<fp32, [4, 3]> z = concat(axis = int32(0), interleave = bool(true), values = (y, x));", "z"},
    {"split", "tensor<fp32, [2, 5]> x",
     "tensor<fp32, [2, 2]> a, tensor<fp32, [2, 3]> b = split(axis = int32(1), split_sizes = " AX(2) "([2, 3]), x = x); "
     "tensor<fp32, [2, 3]> z = mul(x = b, y = b);", "a, z"},
    {"stack", T23 " x, " T23 " y", "tensor<fp32, [2, 2, 3]> z = stack(axis = int32(1), values = (x, y));", "z"},
    {"tile", T23 " x", "tensor<fp32, [4, 3]> z = tile(reps = " AX(2) "([2, 1]), x = x);", "z"},
    {"pad", T23 " x", "tensor<fp32, [2, 6]> z = pad(constant_val = fp32(0x0p+0), mode = string(\"constant\"), pad = " AX(2) "([1, 2]), x = x);", "z"},
    {"pad", "tensor<fp32, [2, 4]> x", "tensor<fp32, [2, 9]> z = pad(mode = string(\"reflect\"), pad = " AX(2) "([2, 3]), x = x);", "z"},
    {"pad", "tensor<fp32, [3, 4]> x",
     "tensor<fp32, [5, 7]> z = pad(mode = string(\"reflect\"), pad = " AX(4) "([1, 1, 0, 3]), x = x);", "z"},
    {"pad", "tensor<fp32, [2, 3]> x", "tensor<fp32, [2, 8]> z = pad(mode = string(\"replicate\"), pad = " AX(2) "([3, 2]), x = x);", "z"},
    {"pad", "tensor<fp32, [1, 2, 3]> x",
     "tensor<fp32, [1, 5, 4]> z = pad(mode = string(\"replicate\"), pad = " AX(4) "([2, 1, 0, 1]), x = x);", "z"},
    {"gather", "tensor<fp32, [2, 4, 3]> x",
     "tensor<fp32, [2, 3, 3]> z = gather(axis = int32(1), batch_dims = int32(1), indices = tensor<int32, [2, 3]>([[1, 3, 1], [0, -1, 2]]), x = x);", "z"},
    {"gather", "tensor<fp32, [2, 3, 4, 2]> x",
     "tensor<fp32, [2, 3, 2, 2, 2]> z = gather(axis = int32(2), batch_dims = int32(1), indices = tensor<int32, [2, 2, 2]>([[[0, 3], [3, 3]], [[2, 1], [0, 0]]]), x = x);", "z"},
    {"gather", "tensor<fp32, [4, 3]> x",
     "tensor<fp32, [5, 3]> z = gather(axis = int32(0), indices = tensor<int32, [5]>([1, 3, 1, 0, 1]), x = x);", "z"},
    {"gather_along_axis", "tensor<fp32, [2, 4]> x",
     "tensor<fp32, [2, 1]> z = gather_along_axis(axis = int32(1), indices = tensor<int32, [2, 1]>([[3], [0]]), x = x);", "z"},
    {"band_part", "tensor<fp32, [3, 3]> x", "tensor<fp32, [3, 3]> z = band_part(lower = int32(-1), upper = int32(0), x = x);", "z"},
    {"scaled_dot_product_attention",
     "tensor<fp32, [1, 2, 3, 4]> q, tensor<fp32, [1, 2, 3, 4]> k, tensor<fp32, [1, 2, 3, 4]> v",
     "tensor<fp32, [1, 2, 3, 4]> z = scaled_dot_product_attention(attn_mask = tensor<fp32, [1, 1, 3, 3]>([[[[0x0p+0, -0x1p+10, -0x1p+10], [0x0p+0, 0x0p+0, -0x1p+10], [0x0p+0, 0x0p+0, 0x0p+0]]]]), key = k, query = q, value = v);",
     "z"},
};

static char *row_text(const Row *r) {
    char *s = malloc(8192);
    snprintf(s, 8192, "program(1.3)\n{\n    func main<ios18>(%s) {\n            %s\n        } -> (%s);\n}\n", r->params,
             r->body, r->outs);
    return s;
}

Test(grad_rules, every_rule_has_a_row) {
    bool seen[MIL_OP_COUNT] = {0};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        MilOpKind k = mil_op_lookup(rows[i].op, strlen(rows[i].op));
        cr_assert_neq(k, MIL_OP_UNKNOWN, "row %zu: unknown op %s", i, rows[i].op);
        seen[k] = true;
    }
    for (int k = 1; k < MIL_OP_COUNT; k++) {
        const MilOpInfo *info = mil_op_info((MilOpKind)k);
        bool flagged = (info->flags & OPF_GRAD) != 0;
        cr_expect_eq(flagged, mil_grad_has_rule((MilOpKind)k), "op %s: OPF_GRAD in ir/ops.def and the rule table disagree",
                     info->name);
        cr_expect(!(flagged && (info->flags & OPF_NOGRAD)), "op %s is both OPF_GRAD and OPF_NOGRAD", info->name);
        if (flagged) cr_expect(seen[k], "op %s has a gradient rule but no row in test/passes/test_grad.c", info->name);
    }
}

Test(grad_rules, finite_differences, .timeout = 120) {
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *text = row_text(&rows[i]);
        char label[64];
        snprintf(label, sizeof label, "row %zu (%s)", i, rows[i].op);
        /* of the largest gradient element; through fp16 (cast) the rounding
           step (2^-11 relative) over h = 1e-2 makes the finite difference
           itself this coarse */
        double tol = !strcmp(rows[i].op, "cast") ? 3e-2 : 2e-3;
        gu_fd_check(label, text, NULL, MIL_RECOMPUTE_NONE, tol);
        gu_fd_check(label, text, NULL, MIL_RECOMPUTE_CHEAP, tol);
        free(text);
    }
}

/* ------------------------------------------------------------ the CLI */

static int milc(char **out, char **err, const char *args) {
    return tu_runf(out, err, tu_tool("milc"), " %s", args);
}

Test(grad_cli, usage_errors) {
    char *out = NULL, *err = NULL;
    const char *nr = tu_src("test/passes/data/grad_norule.mil");
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --wrt=zz %s", nr)), 2);
    cr_assert(strstr(err, "--wrt: function 'main' has no input 'zz'"), "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --loss=q %s", nr)), 2);
    cr_assert(strstr(err, "--loss: function 'main' has no output 'q'"), "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --loss=a %s", nr)), 2);
    cr_assert(strstr(err, "output 'a' is tensor<fp32, [2, 3]>, not a floating-point scalar"), "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad=nosuch %s", nr)), 2);
    cr_assert_eq(milc(&out, &err, tu_fmt("--wrt=x %s", nr)), 2);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --recompute=some %s", nr)), 2);
    free(out);
    free(err);
}

Test(grad_cli, op_without_rule_is_an_error_at_its_location) {
    char *out = NULL, *err = NULL, *tmp = tu_tmpdir();
    const char *nr = tu_src("test/passes/data/grad_norule.mil");
    const char *o = tu_path(tmp, "o.mil");
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --wrt=y %s -o %s", nr, o)), 1);
    cr_assert(strstr(err, "grad_norule.mil:5:38: error: grad: op 'cos' has no gradient rule"), "%s", err);
    cr_assert(!strstr(err, "'sin'"), "sin is off the path of y: %s", err);
    struct stat st;
    cr_assert_neq(stat(o, &st), 0, "a failed run left %s", o);
    /* off the path it is fine: the int cast of x never matters */
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --wrt=x --loss=l %s", tu_src("test/passes/data/grad_nopath.mil"))), 0, "%s", err);
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

Test(grad_cli, no_path_gives_zero_gradient_with_a_warning) {
    char *out = NULL, *err = NULL;
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --wrt=x,y --loss=l %s", tu_src("test/passes/data/grad_nopath.mil"))), 0,
                 "%s", err);
    cr_assert(strstr(err, "warning: grad: no path from --wrt input 'x' to the loss: its gradient is zero"), "%s", err);
    cr_assert(strstr(out, "d_x = const()[name = string(\"d_x\"), val = tensor<fp32, [2, 3]>([[0x0p+0, 0x0p+0, 0x0p+0], [0x0p+0"), "%s", out);
    cr_assert(strstr(out, "-> (d_x, d_y)"), "%s", out);
    free(out);
    free(err);
}

/* the grad map survives MIL text and .milb; --grad composes with -O2
 * --target=ane, --emit=milb and .mlmodelc / .milb input */
Test(grad_cli, grad_map_round_trips, .timeout = 60) {
    char *out = NULL, *err = NULL, *tmp = tu_tmpdir();
    const char *h = tu_src("test/passes/data/grad/head.mil");
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --loss=loss -O2 --emit=grad-map -o %s %s", tu_path(tmp, "a.json"), h)), 0,
                 "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --loss=loss -O2 -o %s %s", tu_path(tmp, "g.mil"), h)), 0, "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--emit=grad-map -o %s %s", tu_path(tmp, "b.json"), tu_path(tmp, "g.mil"))), 0,
                 "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --loss=loss -O2 --target=ane --emit=milb -o %s %s",
                                         tu_path(tmp, "g.milb"), h)), 0, "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--emit=grad-map -o %s %s", tu_path(tmp, "c.json"), tu_path(tmp, "g.milb"))), 0,
                 "%s", err);
    tu_assert_same_file(tu_path(tmp, "a.json"), tu_path(tmp, "b.json"));
    tu_assert_same_file(tu_path(tmp, "a.json"), tu_path(tmp, "c.json"));
    char *js = tu_read_file(tu_path(tmp, "a.json"), NULL);
    cr_assert(strstr(js, "\"taps\": [{\"name\": \"x\", \"dtype\": \"fp32\", \"shape\": [1, 8, 16], \"bytes\": 512}"), "%s",
              js);
    cr_assert(strstr(js, "\"bwd_outputs\": [{\"name\": \"d_emb\""), "%s", js);
    free(js);
    /* a .milb input differentiates too (and an input without grad functions has no map) */
    cr_assert_eq(milc(&out, &err, tu_fmt("-O2 --emit=milb -o %s %s", tu_path(tmp, "h.milb"), h)), 0, "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--emit=grad-map %s", tu_path(tmp, "h.milb"))), 1);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --loss=loss -O2 --emit=grad-map %s", tu_path(tmp, "h.milb"))), 0, "%s",
                 err);
    cr_assert(strstr(out, "\"loss\": \"loss\""), "%s", out);
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

Test(grad_cli, wrt_input_that_is_not_floating_point_is_a_usage_error) {
    char *out = NULL, *err = NULL, *tmp = tu_tmpdir();
    const char *in = tu_path(tmp, "i.mil");
    tu_write_text(in, "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> x, tensor<int32, [2]> n) {\n"
                      "            tensor<fp32, [2]> c = cast(dtype = string(\"fp32\"), x = n);\n"
                      "            tensor<fp32, [2]> y = mul(x = x, y = c);\n        } -> (y);\n}\n");
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --wrt=x,n %s -o %s", in, tu_path(tmp, "o.mil"))), 2);
    cr_assert(strstr(err, "--wrt: input 'n' is tensor<int32, [2]>, not a floating-point tensor"), "%s", err);
    struct stat st;
    cr_assert_neq(stat(tu_path(tmp, "o.mil"), &st), 0);
    /* the default --wrt skips it: integer inputs get no gradient */
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad %s", in)), 0, "%s", err);
    cr_assert(strstr(out, "-> (d_x);"), "%s", out);
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

/* --grad=FUNC differentiates another function: FUNC_fwd / FUNC_bwd, the map
 * of FUNC; main is left alone */
Test(grad_cli, grad_of_a_named_function) {
    char *out = NULL, *err = NULL, *tmp = tu_tmpdir();
    const char *in = tu_path(tmp, "i.mil");
    tu_write_text(in, "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [2]> x) {\n"
                      "            tensor<fp32, [2]> y = exp(x = x);\n        } -> (y);\n"
                      "    func layer<ios18>(tensor<fp32, [2]> a, tensor<fp32, [2]> b) {\n"
                      "            tensor<fp32, [2]> p = mul(x = a, y = b);\n"
                      "            tensor<fp32, [2]> q = tanh(x = p);\n        } -> (q);\n}\n");
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad=layer --wrt=b %s", in)), 0, "%s", err);
    cr_assert(strstr(out, "func layer_fwd<ios18>(tensor<fp32, [2]> a, tensor<fp32, [2]> b)"), "%s", out);
    cr_assert(strstr(out, "func layer_bwd<ios18>("), "%s", out);
    cr_assert(strstr(out, "-> (d_b);"), "%s", out);
    cr_assert(!strstr(out, "main_fwd") && !strstr(out, "d_a"), "%s", out);
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad=layer --emit=grad-map %s", in)), 0, "%s", err);
    cr_assert(strstr(out, "{\"function\": \"layer\", \"fwd\": \"layer_fwd\", \"bwd\": \"layer_bwd\""), "%s", out);
    cr_assert(strstr(out, "\"cotangents\": [{\"name\": \"d_q\", \"dtype\": \"fp32\", \"shape\": [2], \"bytes\": 8}]"), "%s",
              out);
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

/* occurrences of `what` in the body of function `fn` of MIL text */
static int count_in_func(const char *text, const char *fn, const char *what) {
    const char *b = strstr(text, tu_fmt("func %s<", fn));
    cr_assert_not_null(b, "no function %s", fn);
    const char *e = strstr(b + 5, "    func ");
    int n = 0;
    for (const char *q = strstr(b, what); q && (!e || q < e); q = strstr(q + 1, what)) n++;
    return n;
}

/* The transformer layer in the ANE's [1, C, 1, S] form (a .mlmodelc made by
 * bench/gen_transformer.py --form ane --dtype fp16 --zeros; attention written
 * out as matmul / softmax): --grad -O2 --target=ane passes ANE legality with
 * --strict for both recompute modes (every tap is an fp16 [1, C, 1, S]
 * tensor of >= the minimum surface: with none the attention probabilities
 * and the norms' per-token statistics are recomputed, not tapped), the
 * attention backward fuses into one sdpa_backward and the seven weight
 * transposes (Wo^T included) become convs. */
Test(grad_cli, ane_layer_is_strictly_legal_and_fuses, .timeout = 60) {
    char *out = NULL, *err = NULL, *tmp = tu_tmpdir();
    const char *in = tu_src("test/passes/data/grad/ane_layer.mlmodelc"), *o = tu_path(tmp, "g.mlmodelc");
    for (int rc = 0; rc < 2; rc++) {
        const char *mode = rc ? "cheap" : "none";
        cr_assert_eq(milc(&out, &err, tu_fmt("--grad --recompute=%s -O2 --target=ane --strict %s -o %s", mode, in, o)), 0,
                     "%s: %s", mode, err);
        char *text = tu_read_file(tu_path(o, "model.mil"), NULL);
        cr_assert_eq(count_in_func(text, "main_bwd", "= sdpa_backward("), 1, "%s: %s", mode, text);
        cr_assert_eq(count_in_func(text, "main_bwd", "= conv("), 7, "%s: %s", mode, text);
        cr_assert_eq(count_in_func(text, "main_fwd", "= sdpa_backward("), 0);
        cr_assert_eq(count_in_func(text, "main_bwd", "l0_probs = softmax("), 1, "%s: the probabilities are not recomputed",
                     mode);
        free(text);
        /* the map: every tap [1, C, 1, S] fp16, C > 1 */
        cr_assert_eq(milc(&out, &err, tu_fmt("--grad --recompute=%s -O2 --target=ane --emit=grad-map %s", mode, in)), 0,
                     "%s", err);
        const char *t = strstr(out, "\"taps\": [");
        cr_assert_not_null(t, "%s", out);
        int ntaps = 0;
        for (const char *q = strstr(t, "\"dtype\""); q && q < strstr(t, "\"cotangents\""); q = strstr(q + 1, "\"dtype\"")) {
            cr_assert(!strncmp(q, "\"dtype\": \"fp16\", \"shape\": [1, ", 30), "%s: %.80s", mode, q);
            char *end = NULL;
            long c = strtol(q + 30, &end, 10);
            cr_assert(c > 1 && !strncmp(end, ", 1, ", 5), "%s: not a [1, C > 1, 1, S] tap: %.80s", mode, q);
            ntaps++;
        }
        cr_assert_geq(ntaps, 4, "%s", out);
    }
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

/* tap bytes of the transformer layer [1, D, 1, S] (D = 16, FFN 32, S = 8,
 * fp32) against the seed's hand-chosen taps (docs/ane-notes.md §13.4:
 * Q, K, V, attention output, normalised x; h1, h3, gate, normalised x =
 * 6 D + 3 H values per token): --recompute=cheap taps no more */
Test(grad_cli, cheap_taps_no_more_than_the_seeds) {
    char *out = NULL, *err = NULL;
    const char *in = tu_src("test/passes/data/grad/layer_cf.mil");
    long long bytes[2];
    for (int rc = 0; rc < 2; rc++) {
        cr_assert_eq(milc(&out, &err, tu_fmt("--grad --recompute=%s --emit=grad-map %s", rc ? "cheap" : "none", in)), 0,
                     "%s", err);
        const char *t = strstr(out, "\"tap_bytes\": ");
        cr_assert_not_null(t, "%s", out);
        bytes[rc] = atoll(t + 13);
    }
    const long long seed = (6 * 16 + 3 * 32) * 4 * 8;
    cr_expect_leq(bytes[1], seed, "cheap: %lld tap bytes, the seed's %lld", bytes[1], seed);
    cr_expect_lt(bytes[1], bytes[0], "cheap %lld, none %lld", bytes[1], bytes[0]);
    free(out);
    free(err);
}

/* --grad --pack-taps: the map (golden) records the packed tensor and each
 * tap's channel offset, and survives the MIL text and .milb round trips;
 * taps that are not [1, C, 1, S] stay separate tensors */
Test(grad_cli, pack_taps_map_is_golden_and_round_trips, .timeout = 60) {
    char *out = NULL, *err = NULL, *tmp = tu_tmpdir();
    const char *in = tu_src("test/passes/data/grad/layer_cf.mil"), *golden = tu_src("test/passes/data/grad/layer_cf_packed.json");
    const char *flags = "--grad --recompute=cheap --pack-taps -O2";
    cr_assert_eq(milc(&out, &err, tu_fmt("%s --emit=grad-map -o %s %s", flags, tu_path(tmp, "a.json"), in)), 0, "%s", err);
    tu_assert_same_file(golden, tu_path(tmp, "a.json"));
    cr_assert_eq(milc(&out, &err, tu_fmt("%s -o %s %s", flags, tu_path(tmp, "g.mil"), in)), 0, "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--emit=grad-map -o %s %s", tu_path(tmp, "b.json"), tu_path(tmp, "g.mil"))), 0,
                 "%s", err);
    tu_assert_same_file(golden, tu_path(tmp, "b.json"));
    cr_assert_eq(milc(&out, &err, tu_fmt("%s --emit=milb -o %s %s", flags, tu_path(tmp, "g.milb"), in)), 0, "%s", err);
    cr_assert_eq(milc(&out, &err, tu_fmt("--emit=grad-map -o %s %s", tu_path(tmp, "c.json"), tu_path(tmp, "g.milb"))), 0,
                 "%s", err);
    tu_assert_same_file(golden, tu_path(tmp, "c.json"));
    char *text = tu_read_file(tu_path(tmp, "g.mil"), NULL);
    cr_assert(strstr(text, "tensor<fp32, [1, 128, 1, 8]> taps = concat("), "%s", text);
    cr_assert(strstr(text, "tensor<fp32, [1, 16, 1, 8]> q = slice_by_size(begin = "), "%s", text);
    free(text);
    /* a tap that is not [1, C, 1, S] (e) stays a tensor of its own */
    const char *mixed = tu_path(tmp, "m.mil");
    tu_write_text(mixed, "program(1.3)\n{\n    func main<ios18>(tensor<fp32, [1, 4, 1, 3]> x, tensor<fp32, [4, 3]> w) {\n"
                         "            tensor<fp32, [1, 4, 1, 3]> a = exp(x = x);\n"
                         "            tensor<fp32, [4, 3]> b = reshape(shape = tensor<int32, [2]>([4, 3]), x = a);\n"
                         "            tensor<fp32, [4, 3]> c = mul(x = b, y = w);\n"
                         "            tensor<fp32, [4, 3]> e = tanh(x = c);\n        } -> (e);\n}\n");
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad --pack-taps --emit=grad-map %s", mixed)), 0, "%s", err);
    cr_assert(strstr(out, "\"taps\": [{\"name\": \"e\", \"dtype\": \"fp32\", \"shape\": [4, 3], \"bytes\": 48}, "
                          "{\"name\": \"taps\", \"dtype\": \"fp32\", \"shape\": [1, 4, 1, 3], \"bytes\": 48}],\n"
                          "  \"packed_taps\": {\"name\": \"taps\", \"axis\": 1, \"taps\": [{\"name\": \"a\", \"offset\": 0, "
                          "\"channels\": 4, \"dtype\": \"fp32\", \"shape\": [1, 4, 1, 3]}]}"),
              "%s", out);
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

/* mil-run chains FUNC_fwd and FUNC_bwd by name, through files (the README's
 * commands): `-o fwd` writes fwd/NAME.npy per output, every FUNC_bwd input
 * is a tap of that name, a forward input or a cotangent; the gradients match
 * the PyTorch fixtures of the layer ([1, S, D], and [1, D, 1, S] with its
 * taps packed into one tensor). */
static void chain_by_name(const char *model, const char *flags) {
    char *out = NULL, *err = NULL, *tmp = tu_tmpdir();
    const char *fix = tu_src(tu_fmt("test/passes/data/grad/%s", model));
    const char *g = tu_path(tmp, "g.mil");
    cr_assert_eq(milc(&out, &err, tu_fmt("--grad %s -O2 -o %s %s", flags, g, tu_src(tu_fmt("test/passes/data/grad/%s.mil", model)))),
                 0, "%s", err);
    static const char *const ins[] = {"x", "g1", "wq", "wk", "wv", "wo", "g2", "w1", "w3", "w2"};
    char args[8192] = "";
    for (int i = 0; i < 10; i++)
        snprintf(args + strlen(args), sizeof args - strlen(args), " -i %s=%s/%s.npy", ins[i], fix, ins[i]);
    const char *fwd = tu_path(tmp, "fwd"), *bwd = tu_path(tmp, "bwd");
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), " %s --function main_fwd%s -o %s", g, args, fwd), 0, "%s", err);
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions pa = {0};
    MilProgram *p = mil_parse_file(g, &pa, &d);
    cr_assert_not_null(p);
    const MilFunc *b = mil_program_find_func(p, "main_bwd");
    cr_assert_not_null(b);
    args[0] = 0;
    int ntaps = 0;
    for (int i = 0; i < b->nparams; i++) {
        const char *nm = b->params[i]->name, *f = tu_path(fwd, tu_fmt("%s.npy", nm));
        struct stat st;
        bool is_tap = stat(f, &st) == 0;
        ntaps += is_tap;
        snprintf(args + strlen(args), sizeof args - strlen(args), " -i %s=%s", nm,
                 is_tap ? f : tu_path(fix, tu_fmt("%s.npy", nm)));
    }
    if (strstr(flags, "pack")) {
        /* q reaches the backward only inside the packed tensor `taps` */
        bool q = false, packed = false;
        for (int i = 0; i < b->nparams; i++) {
            q |= !strcmp(b->params[i]->name, "q");
            packed |= !strcmp(b->params[i]->name, "taps");
        }
        cr_assert(packed && !q);
    }
    cr_assert_geq(ntaps, strstr(flags, "pack") ? 1 : 4);
    cr_assert_eq(tu_runf(&out, &err, tu_tool("mil-run"), " %s --function main_bwd%s -o %s", g, args, bwd), 0, "%s", err);
    for (int i = 0; i < 10; i++) {
        MilRtTensor got, want;
        MilRtErr e;
        cr_assert_eq(mil_rt_npy_read(tu_path(bwd, tu_fmt("d_%s.npy", ins[i])), &got, &e), 0, "%s", e.msg);
        cr_assert_eq(mil_rt_npy_read(tu_path(fix, tu_fmt("grad_%s.npy", ins[i])), &want, &e), 0, "%s", e.msg);
        cr_assert_eq(mil_rt_numel(&got), mil_rt_numel(&want));
        double m = 0, er = 0;
        for (int64_t k = 0; k < mil_rt_numel(&want); k++) {
            double w = mil_rt_get_f64(&want, k);
            if (fabs(w) > m) m = fabs(w);
            if (!(fabs(w - mil_rt_get_f64(&got, k)) <= er)) er = fabs(w - mil_rt_get_f64(&got, k));
        }
        cr_expect(er <= 1e-4 * m, "d_%s: error %g, max %g", ins[i], er, m);
        mil_rt_tensor_free(&got);
        mil_rt_tensor_free(&want);
    }
    mil_program_free(p);
    mil_diag_free(&d);
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

Test(grad_cli, mil_run_chains_fwd_and_bwd_by_name, .timeout = 60) { chain_by_name("layer_sd", ""); }
Test(grad_cli, mil_run_chains_packed_taps_by_name, .timeout = 60) { chain_by_name("layer_cf", "--recompute=cheap --pack-taps"); }
