/* test/tools/test_mil_run_checks.c -- mil-run: --summary of non-finite and
 * integer outputs, type errors before input allocation, input size limits,
 * flexible-shape ranges. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "testutil.h"

static char *tmp;
static char *out, *err;

static void setup(void) { tu_fixture_init(&tmp, &out, &err); }
static void teardown(void) { tu_fixture_fini(&tmp, &out, &err); }

TestSuite(mil_run_checks, .init = setup, .fini = teardown);

#define tp(name) tu_path(tmp, name)
#define run(...) tu_runf(&out, &err, tu_tool("mil-run"), __VA_ARGS__)
#define write_file(name, text) tu_write_text(tp(name), text)

#define npy(name, ...) tu_write_npy(tp(name), __VA_ARGS__)

/* ------------------------------------------------------------ --summary */

static const char *ident =
    "program(1.3)\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [6]> x, tensor<int32, [3]> k) {\n"
    "            tensor<fp32, [6]> y = identity(x = x);\n"
    "            tensor<int32, [3]> j = identity(x = k);\n"
    "        } -> (y, j);\n"
    "}\n";

Test(mil_run_checks, summary_counts_nan_and_inf_and_uses_finite_values) {
    write_file("id.mil", ident);
    static const int64_t d6[1] = {6}, d3[1] = {3};
    const double x[6] = {NAN, 1, -3, INFINITY, NAN, -INFINITY}, k[3] = {2147483647, -2147483647 - 1.0, 7};
    npy("x.npy", MIL_DT_FP32, 1, d6, x);
    npy("k.npy", MIL_DT_INT32, 1, d3, k);
    cr_assert_eq(run("-i x=%s -i k=%s --summary %s", tp("x.npy"), tp("k.npy"), tp("id.mil")), 0, "%s", err);
    cr_assert(strstr(out, "y: fp32 [6] min=-3 max=1 mean=-1 nan=2 inf=1 -inf=1\n"), "%s", out);
    cr_assert(strstr(out, "j: int32 [3] min=-2147483648 max=2147483647 mean=2\n"), "%s", out);
    /* nothing finite: only the counts */
    const double allnan[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    npy("x.npy", MIL_DT_FP32, 1, d6, allnan);
    cr_assert_eq(run("-i x=%s -i k=%s --summary %s", tp("x.npy"), tp("k.npy"), tp("id.mil")), 0, "%s", err);
    cr_assert(strstr(out, "y: fp32 [6] nan=6\n"), "%s", out);
}

/* ------------------------------------------- type errors before inputs */

Test(mil_run_checks, type_error_reported_before_inputs_are_allocated) {
    /* the declared output type is wrong: reported by shape inference, before
     * 8 GB of random input is allocated (and without any input at all) */
    write_file("t.mil", "program(1.3)\n{\n    func main<ios17>(tensor<fp32, [2147483647]> o) {\n"
                        "            tensor<fp32, [2]> y = relu(x = o);\n        } -> (y);\n}\n");
    cr_assert_eq(run("--random-inputs 1 %s", tp("t.mil")), 1);
    cr_assert(strstr(err, "t.mil:4:35: error: relu: 'y' is declared tensor<fp32, [2]> but the op produces "
                          "tensor<fp32, [2147483647]>"), "%s", err);
    cr_assert_eq(run("%s", tp("t.mil")), 1);  /* no inputs given: still the type error */
    cr_assert(strstr(err, "is declared tensor<fp32, [2]>"), "%s", err);
    cr_assert_null(strstr(err, "missing input"), "%s", err);
}

Test(mil_run_checks, absurd_random_input_size_refused) {
    write_file("big.mil", "program(1.3)\n{\n    func main<ios17>(tensor<fp32, [2147483647]> o) {\n"
                          "            tensor<fp32, [2147483647]> y = relu(x = o);\n        } -> (y);\n}\n");
    cr_assert_eq(run("--random-inputs 1 %s", tp("big.mil")), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'o' (fp32 [2147483647]) needs 8 GiB; random inputs are limited "
                          "to 4 GiB in total\n");
    /* the limit is on all inputs together */
    write_file("two.mil", "program(1.3)\n{\n    func main<ios17>(tensor<fp32, [805306368]> a, "
                          "tensor<fp32, [805306368]> b) {\n"
                          "            tensor<fp32, [805306368]> y = add(x = a, y = b);\n        } -> (y);\n}\n");
    cr_assert_eq(run("--random-inputs 1 %s", tp("two.mil")), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'b' (fp32 [805306368]) needs 3 GiB; random inputs are limited "
                          "to 4 GiB in total\n");
}

/* ------------------------------------------------ flexible-shape ranges */

static const char *flex =
    "program(1.3)\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [?, ?]> x, tensor<fp32, [?, 4]> y) [FlexibleShapeInformation = "
    "tuple<tuple<string, dict<string, tensor<int32, [?]>>>, tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>, "
    "tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>>(((\"DefaultShapes\", {{\"x\", [2, 4]}, {\"y\", [1, 4]}}), "
    "(\"RangeDims\", {{\"x\", [[1, 4], [4, -1]]}}), (\"EnumeratedShapes\", {{\"y\", [[1, 4], [3, 4]]}})))] {\n"
    "            tensor<fp32, [?, ?]> a = identity(x = x);\n"
    "            tensor<fp32, [?, 4]> b = identity(x = y);\n"
    "        } -> (a, b);\n"
    "}\n";

Test(mil_run_checks, flexible_ranges_and_enumerated_shapes_enforced) {
    write_file("flex.mil", flex);
    static double z[64];
    static const int64_t d54[2] = {5, 4}, d34[2] = {3, 4}, d43[2] = {4, 3}, d49[2] = {4, 9}, d24[2] = {2, 4};
    npy("x54.npy", MIL_DT_FP32, 2, d54, z);
    npy("x34.npy", MIL_DT_FP32, 2, d34, z);
    npy("x43.npy", MIL_DT_FP32, 2, d43, z);
    npy("x49.npy", MIL_DT_FP32, 2, d49, z);
    npy("x24.npy", MIL_DT_FP32, 2, d24, z);
    /* defaults fit */
    cr_assert_eq(run("--random-inputs 1 %s", tp("flex.mil")), 0, "%s", err);
    cr_assert(strstr(out, "a: fp32 [2, 4]") && strstr(out, "b: fp32 [1, 4]"), "%s", out);
    /* in range (dim 1 unbounded above), one of the enumerated shapes */
    cr_assert_eq(run("-i x=%s -i y=%s %s", tp("x49.npy"), tp("x34.npy"), tp("flex.mil")), 0, "%s", err);
    cr_assert(strstr(out, "a: fp32 [4, 9]") && strstr(out, "b: fp32 [3, 4]"), "%s", out);
    cr_assert_eq(run("-i x=%s -i y=%s %s", tp("x54.npy"), tp("x34.npy"), tp("flex.mil")), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'x': dim 0 is 5, outside the allowed range [1, 4]\n");
    cr_assert_eq(run("-i x=%s -i y=%s %s", tp("x43.npy"), tp("x34.npy"), tp("flex.mil")), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'x': dim 1 is 3, outside the allowed range [4, unbounded)\n");
    cr_assert_eq(run("-i x=%s -i y=%s %s", tp("x34.npy"), tp("x24.npy"), tp("flex.mil")), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'y': shape [2, 4] is not one of the enumerated shapes: [1, 4] "
                          "[3, 4]\n");
}

/* the audit's case: the corpus model with RangeDims [[1, 4], [4, 4]] */
Test(mil_run_checks, corpus_flexible_range) {
    const char *corpus = tu_corpus_dir();
    if (!corpus) return; /* tu_corpus_dir warned */
    char model[2048];
    snprintf(model, sizeof model, "%s/mlmodelc-export__fixtures__flexible-weighted-legacy.mil", corpus);
    FILE *f = fopen(model, "r");
    if (!f) {
        tu_warn("corpus model %s not found; skipped", model);
        return;
    }
    fclose(f);
    static double z[64];
    static const int64_t d54[2] = {5, 4};
    npy("x54.npy", MIL_DT_FP32, 2, d54, z);
    cr_assert_eq(run("--random-weights 1 -i input=%s %s", tp("x54.npy"), model), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'input': dim 0 is 5, outside the allowed range [1, 4]\n");
}
