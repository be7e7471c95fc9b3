/* test/tools/test_mil_run_milb.c -- mil-run checks the inputs of a .milb
 * model against the FlexibleShapeInformation stored in it (RangeDims,
 * EnumeratedShapes), with the messages it gives for .mil models; the
 * runtime's accessor (mil_rt_milb_flex_limits). */
#include <criterion/criterion.h>
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

TestSuite(mil_run_milb, .init = setup, .fini = teardown);

#define tp(name) tu_path(tmp, name)
/* TOOL ARGS..., output in out/err; the exit status. */
#define run(tool, ...) tu_runf(&out, &err, tu_tool(tool), __VA_ARGS__)
#define write_file(name, text) tu_write_text(tp(name), text)

static void npy(const char *name, int rank, const int64_t *dims) {
    MilRtTensor t = {.dtype = MIL_DT_FP32, .rank = rank};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    MilRtErr e;
    cr_assert_eq(mil_rt_tensor_alloc(&t, &e), 0);
    for (int64_t i = 0; i < mil_rt_numel(&t); i++) mil_rt_set_f64(&t, i, (double)i * 0.5);
    cr_assert_eq(mil_rt_npy_write(tp(name), &t, &e), 0, "%s", e.msg);
    mil_rt_tensor_free(&t);
}

static void compile(const char *mil, const char *milb) {
    cr_assert_eq(run("milc", "--emit=milb -o %s %s", tp(milb), tp(mil)), 0, "%s", err);
}

/* ----------------------------------------------------------- RangeDims */

static const char *ranged =
    "program(1.3)\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [?, ?]> input) [FlexibleShapeInformation = "
    "tuple<tuple<string, dict<string, tensor<int32, [?]>>>, tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>>"
    "(((\"DefaultShapes\", {{\"input\", [%s]}}), (\"RangeDims\", {{\"input\", [[1, 4], [4, -1]]}})))] {\n"
    "            tensor<fp32, [?, ?]> y = relu(x = input)[name = string(\"y\")];\n"
    "        } -> (y);\n"
    "}\n";

static void write_ranged(const char *name, const char *dflt) {
    char text[4096];
    snprintf(text, sizeof text, ranged, dflt);
    write_file(name, text);
}

Test(mil_run_milb, range_dims_checked_like_for_mil) {
    write_ranged("r.mil", "2, 4");
    compile("r.mil", "r.milb");
    static const int64_t d34[2] = {3, 4}, d49[2] = {4, 9}, d54[2] = {5, 4}, d43[2] = {4, 3};
    npy("x34.npy", 2, d34);
    npy("x49.npy", 2, d49);
    npy("x54.npy", 2, d54);
    npy("x43.npy", 2, d43);

    /* the accessor */
    MilRtFlexLimits l;
    cr_assert_eq(mil_rt_milb_flex_limits(tp("r.milb"), NULL, "input", &l), 0);
    cr_assert_eq(l.nranges, 2);
    cr_assert(l.lo[0] == 1 && l.hi[0] == 4 && l.lo[1] == 4 && l.hi[1] == -1);
    cr_assert_eq(l.nshapes, 0);
    mil_rt_flex_limits_free(&l);
    cr_assert_eq(mil_rt_milb_flex_limits(tp("r.milb"), "main", "other", &l), 0);
    cr_assert(l.nranges == 0 && l.nshapes == 0);
    mil_rt_flex_limits_free(&l);
    cr_assert_eq(mil_rt_milb_flex_limits(tp("missing.milb"), NULL, "input", &l), -1);
    mil_rt_flex_limits_free(&l);

    /* allowed (dim 1 unbounded above) */
    cr_assert_eq(run("mil-run", "-i input=%s --summary %s", tp("x34.npy"), tp("r.milb")), 0, "%s", err);
    cr_assert(strstr(out, "y: fp32 [3, 4]"), "%s", out);
    cr_assert_eq(run("mil-run", "-i input=%s --summary %s", tp("x49.npy"), tp("r.milb")), 0, "%s", err);
    cr_assert(strstr(out, "y: fp32 [4, 9]"), "%s", out);
    cr_assert_eq(run("mil-run", "--random-inputs 1 --summary %s", tp("r.milb")), 0, "%s", err);
    cr_assert(strstr(out, "y: fp32 [2, 4]"), "%s", out);

    /* not allowed: the same messages as for the .mil */
    const char *m54 = "mil-run: error: input 'input': dim 0 is 5, outside the allowed range [1, 4]\n";
    cr_assert_eq(run("mil-run", "-i input=%s %s", tp("x54.npy"), tp("r.milb")), 1);
    cr_assert_str_eq(err, m54);
    cr_assert_eq(run("mil-run", "-i input=%s %s", tp("x54.npy"), tp("r.mil")), 1);
    cr_assert_str_eq(err, m54);
    cr_assert_eq(run("mil-run", "-i input=%s %s", tp("x43.npy"), tp("r.milb")), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'input': dim 1 is 3, outside the allowed range [4, unbounded)\n");

    /* random inputs too: a default shape outside the ranges */
    write_ranged("bad.mil", "5, 4");
    compile("bad.mil", "bad.milb");
    cr_assert_eq(run("mil-run", "--random-inputs 1 %s", tp("bad.milb")), 1);
    cr_assert_str_eq(err, m54);
    cr_assert_eq(run("mil-run", "--random-inputs 1 %s", tp("bad.mil")), 1);
    cr_assert_str_eq(err, m54);
}

/* ---------------------------------------------------- EnumeratedShapes */

static const char *enumerated =
    "program(1.3)\n"
    "{\n"
    "    func main<ios17>(tensor<fp32, [?, 4]> y) [FlexibleShapeInformation = "
    "tuple<tuple<string, dict<string, tensor<int32, [?]>>>, tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>>"
    "(((\"DefaultShapes\", {{\"y\", [%s, 4]}}), (\"EnumeratedShapes\", {{\"y\", [[1, 4], [3, 4]]}})))] {\n"
    "            tensor<fp32, [?, 4]> b = identity(x = y)[name = string(\"b\")];\n"
    "        } -> (b);\n"
    "}\n";

Test(mil_run_milb, enumerated_shapes_checked_like_for_mil) {
    char text[4096];
    snprintf(text, sizeof text, enumerated, "1");
    write_file("e.mil", text);
    snprintf(text, sizeof text, enumerated, "2");
    write_file("ebad.mil", text);
    compile("e.mil", "e.milb");
    compile("ebad.mil", "ebad.milb");
    static const int64_t d34[2] = {3, 4}, d24[2] = {2, 4};
    npy("y34.npy", 2, d34);
    npy("y24.npy", 2, d24);

    MilRtFlexLimits l;
    cr_assert_eq(mil_rt_milb_flex_limits(tp("e.milb"), "main", "y", &l), 0);
    cr_assert_eq(l.nranges, 0);
    cr_assert_eq(l.nshapes, 2);
    cr_assert(l.shape_rank[0] == 2 && l.shapes[0][0] == 1 && l.shapes[0][1] == 4);
    cr_assert(l.shape_rank[1] == 2 && l.shapes[1][0] == 3 && l.shapes[1][1] == 4);
    mil_rt_flex_limits_free(&l);

    cr_assert_eq(run("mil-run", "-i y=%s --summary %s", tp("y34.npy"), tp("e.milb")), 0, "%s", err);
    cr_assert(strstr(out, "b: fp32 [3, 4]"), "%s", out);
    cr_assert_eq(run("mil-run", "--random-inputs 1 --summary %s", tp("e.milb")), 0, "%s", err);
    cr_assert(strstr(out, "b: fp32 [1, 4]"), "%s", out);

    const char *m24 = "mil-run: error: input 'y': shape [2, 4] is not one of the enumerated shapes: [1, 4] [3, 4]\n";
    cr_assert_eq(run("mil-run", "-i y=%s %s", tp("y24.npy"), tp("e.milb")), 1);
    cr_assert_str_eq(err, m24);
    cr_assert_eq(run("mil-run", "-i y=%s %s", tp("y24.npy"), tp("e.mil")), 1);
    cr_assert_str_eq(err, m24);
    cr_assert_eq(run("mil-run", "--random-inputs 1 %s", tp("ebad.milb")), 1);
    cr_assert_str_eq(err, m24);
}

/* ------------------------------------------------------ the corpus model */

/* mlmodelc-export's legacy weighted fixture (RangeDims [[1, 4], [4, 4]]),
 * staged with its weights as weights/weights.bin next to the program. */
Test(mil_run_milb, corpus_flexible_weighted_legacy) {
    const char *corpus = tu_corpus_dir();
    if (!corpus) return; /* tu_corpus_dir warned */
    char model[2048], weights[2048];
    snprintf(model, sizeof model, "%s/mlmodelc-export__fixtures__flexible-weighted-legacy.mil", corpus);
    snprintf(weights, sizeof weights, "%s/mlmodelc-export__fixtures__flexible-weighted-legacy.weight.bin", corpus);
    FILE *f = fopen(model, "r");
    if (!f) {
        tu_warn("corpus model %s not found; skipped", model);
        return;
    }
    fclose(f);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/m/weights && cp %s %s/m/model.mil && cp %s %s/m/weights/weights.bin", tmp,
             model, tmp, weights, tmp);
    cr_assert_eq(tu_run(cmd, NULL, NULL), 0);
    compile("m/model.mil", "m/prog.milb");
    static const int64_t d24[2] = {2, 4}, d54[2] = {5, 4};
    npy("x24.npy", 2, d24);
    npy("x54.npy", 2, d54);
    cr_assert_eq(run("mil-run", "-i input=%s %s", tp("x24.npy"), tp("m/prog.milb")), 0, "%s", err);
    cr_assert_eq(run("mil-run", "-i input=%s %s", tp("x54.npy"), tp("m/prog.milb")), 1);
    cr_assert_str_eq(err, "mil-run: error: input 'input': dim 0 is 5, outside the allowed range [1, 4]\n");
}
