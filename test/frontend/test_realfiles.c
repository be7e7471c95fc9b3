/* test/frontend/test_realfiles.c -- what real model.mil files showed (issue 8):
 * several functions with or without an empty line between them print back
 * byte for byte, flat literals for rank >= 2 tensors are read (with a
 * warning), BLOBFILE argument errors say what is wrong, and a declared result
 * type that the op contradicts is refused at that op.  Exact bytes and exact
 * `file:line:col` throughout.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fe_test.h"
#include "passes/passes.h"
#include "testutil.h"

#define DATA "test/frontend/data/"

/* text with "\n" inserted before the line starting with `line` */
static char *insert_blank(const char *text, const char *line) {
    const char *at = strstr(text, line);
    cr_assert_not_null(at, "no '%s'", line);
    size_t k = (size_t)(at - text), n = strlen(text);
    char *r = malloc(n + 2);
    memcpy(r, text, k);
    r[k] = '\n';
    memcpy(r + k + 1, at, n - k + 1);
    return r;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

static void assert_round_trip(const char *text, int blanks, const char *what) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = fe_parse_str(what, text, NULL, &d);
    cr_assert_not_null(p);
    cr_assert_eq(p->nfuncs, 3);
    size_t n;
    char *out = fe_print(p, MIL_SPELLING_SAME, &n);
    cr_assert(n == strlen(text) && memcmp(out, text, n) == 0, "%s: not byte for byte:\n%s\n--- input:\n%s", what, out,
              text);
    free(out);
    /* the other spelling keeps the separators too (like the final newline) */
    out = fe_print(p, MIL_SPELLING_1_0, &n);
    cr_assert_eq(count(out, ";\n\n    func "), blanks, "%s: %s", what, out);
    cr_assert_eq(count(out, ";\n    func "), 2 - blanks, "%s: %s", what, out);
    free(out);
    fe_assert_fixed_point(p, MIL_SPELLING_SAME, what);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* coremlc 3600 writes no empty line between functions, older versions one:
 * both (and a mix) round-trip exactly. */
Test(multifunc, round_trips_both_ways) {
    char *text = tu_read_file(tu_src(DATA "multi_func.mil"), NULL);
    cr_assert_not_null(text);
    cr_assert_eq(count(text, "\n\n"), 0, "the file itself has no empty line");
    assert_round_trip(text, 0, "no empty lines");
    char *one = insert_blank(text, "    func third");
    assert_round_trip(one, 1, "one empty line");
    char *two = insert_blank(one, "    func second");
    assert_round_trip(two, 2, "two empty lines");
    /* blanks on the empty line, and CR LF, still count as an empty line;
     * printed as a plain empty line */
    char *sp = insert_blank(text, "    func second");
    char *ws = malloc(strlen(sp) + 8);
    const char *at = strstr(sp, "\n\n    func second");
    size_t k = (size_t)(at - sp);
    memcpy(ws, sp, k);
    strcpy(ws + k, " \r\n  \t\n");
    strcat(ws, at + 2);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = fe_parse_str("ws.mil", ws, NULL, &d);
    cr_assert_not_null(p);
    char *out = fe_print(p, MIL_SPELLING_SAME, NULL);
    cr_assert_str_eq(out, sp);
    free(out);
    mil_program_free(p);
    mil_diag_free(&d);
    free(ws);
    free(sp);
    free(two);
    free(one);
    free(text);
}

/* The same through the CLI the issue names, both ways. */
Test(multifunc, milc_same_spelling_is_byte_exact) {
    const char *file = tu_src(DATA "multi_func.mil");
    char *text = tu_read_file(file, NULL), *out = NULL, *err = NULL;
    int rc = tu_run(tu_fmt("%s -O0 --emit=mil --spelling=same %s", tu_tool("milc"), file), &out, &err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(out, text);
    free(out);
    free(err);
    char *dir = tu_tmpdir();
    char *blank = insert_blank(text, "    func second");
    const char *path = tu_path(dir, "blank.mil");
    tu_write_text(path, blank);
    rc = tu_run(tu_fmt("%s -O0 --emit=mil --spelling=same %s", tu_tool("milc"), path), &out, &err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(out, blank);
    free(out);
    free(err);
    tu_rmrf(dir);
    free(dir);
    free(blank);
    free(text);
}

/* ----------------------------------------------------------- flat literals */

#define FLAT_HEAD "program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n    func main<ios18>() {\n"

Test(flat, rank2_fp16_1x512_reads_row_major_with_a_warning) {
    size_t cap = 16384, n = 0;
    char *t = malloc(cap);
    n += (size_t)snprintf(t + n, cap - n, FLAT_HEAD "            tensor<fp16, [1, 512]> c = const()[name = string(\"c\"), "
                                                    "val = tensor<fp16, [1, 512]>([");
    for (int i = 0; i < 512; i++) n += (size_t)snprintf(t + n, cap - n, "%s%d.25", i ? ", " : "", i % 100);
    snprintf(t + n, cap - n, "])];\n        } -> (c);\n}\n");
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = fe_parse_str("flat.mil", t, NULL, &d);
    cr_assert_not_null(p);
    cr_assert_eq(d.nerrors, 0);
    cr_assert_eq(d.nwarnings, 1);
    char buf[512];
    mil_diag_format(&d, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "flat.mil:5:97: warning: flat literal for a rank-2 tensor read in row-major order");
    cr_assert_eq(mil_verify(p, &d), 0);
    const MilConst *c = p->funcs[0]->body.first->attrs[1].val;
    cr_assert_eq(c->count, 512);
    for (int i = 0; i < 512; i++) cr_assert_float_eq(mil_const_get_f64(c, i), i % 100 + 0.25, 0, "element %d", i);
    /* printed nested: the fixed point, not the flat text */
    char *out = fe_print(p, MIL_SPELLING_SAME, NULL);
    cr_assert(strstr(out, "val = tensor<fp16, [1, 512]>([[0x1p-2, 0x1.4p+0, 0x1.2p+1, "), "%.300s", out);
    fe_assert_fixed_point(p, MIL_SPELLING_SAME, "flat");
    MilDiag d2;
    mil_diag_init(&d2);
    MilProgram *q = fe_parse_str("nested.mil", out, NULL, &d2);
    cr_assert_not_null(q);
    cr_assert_eq(d2.n, 0, "the nested form draws no warning");
    mil_program_free(q);
    mil_diag_free(&d2);
    free(out);
    mil_program_free(p);
    mil_diag_free(&d);
    free(t);
}

Test(flat, rank3_and_the_caret) {
    const char *t = FLAT_HEAD
        "            tensor<int32, [2, 2, 2]> c = const()[val = tensor<int32, [2, 2, 2]>([1, 2, 3, 4, 5, 6, 7, 8])];\n"
        "        } -> (c);\n}";
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = fe_parse_str("f3.mil", t, NULL, &d);
    cr_assert_not_null(p);
    char *shown = fe_diag_printed(&d);
    cr_assert_str_eq(shown,
                     "f3.mil:5:81: warning: flat literal for a rank-3 tensor read in row-major order\n"
                     "            tensor<int32, [2, 2, 2]> c = const()[val = tensor<int32, [2, 2, 2]>([1, 2, 3, 4, 5, 6, 7, 8])];\n"
                     "                                                                                ^\n");
    free(shown);
    char *out = fe_print(p, MIL_SPELLING_SAME, NULL);
    cr_assert(strstr(out, "val = tensor<int32, [2, 2, 2]>([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])"), "%s", out);
    free(out);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* --------------------------------------------------------------- BLOBFILE */

Test(blobfile, missing_offset_through_milc) {
    char *dir = tu_tmpdir(), *out = NULL, *err = NULL;
    const char *in = tu_path(dir, "b.mil"), *o = tu_path(dir, "out.mil");
    tu_write_text(in, "program(1.3)\n{\n    func main<ios18>() {\n"
                      "            tensor<fp16, [1, 512]> w = const()[val = tensor<fp16, [1, 512]>("
                      "BLOBFILE(path = string(\"@model_path/weights/weight.bin\")))];\n"
                      "        } -> (w);\n}\n");
    int rc = tu_run(tu_fmt("%s -O0 --emit=mil -o %s %s", tu_tool("milc"), o, in), &out, &err);
    cr_assert_eq(rc, 1, "%s", err);
    const char *want = tu_fmt("%s:4:77: error: BLOBFILE needs an 'offset' argument\n", in);
    cr_assert(!strncmp(err, want, strlen(want)), "%s", err);
    cr_assert_neq(access(o, F_OK), 0, "no output file after an error");
    free(out);
    free(err);
    tu_rmrf(dir);
    free(dir);
}

/* ------------------------------------------ declared result type is wrong */

/* A real file declares a transpose result [1, 1, 512, 5120] where its input
 * and perm give [1, 1, 5120, 512]: refused at that op's line (no change in
 * behaviour; this keeps it). */
static const char TRANSPOSE[] =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"coremlc-version\", \"3600.25.1\"}})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp16, [1, 1, 512, 5120]> x) {\n"
    "            tensor<int32, [4]> perm = const()[name = string(\"perm\"), val = tensor<int32, [4]>([0, 1, 3, 2])];\n"
    "            tensor<fp16, [1, 1, 512, 5120]> y = transpose(perm = perm, x = x)[name = string(\"y\")];\n"
    "        } -> (y);\n"
    "}\n";

Test(declared_type, transpose_mismatch_refused_at_its_line) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = fe_parse_str("tr.mil", TRANSPOSE, NULL, &d);
    cr_assert_not_null(p);
    MilPassOptions o;
    mil_pass_options_init(&o);
    o.opt_level = 0;
    cr_assert_gt(mil_pass_run(p, &o, &d), 0);
    char buf[1024];
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf),
                     "tr.mil:6:49: error: transpose: 'y' is declared tensor<fp16, [1, 1, 512, 5120]> but the op "
                     "produces tensor<fp16, [1, 1, 5120, 512]>");
    free(o.taps_json);
    mil_program_free(p);
    mil_diag_free(&d);

    char *dir = tu_tmpdir(), *out = NULL, *err = NULL;
    const char *in = tu_path(dir, "tr.mil");
    tu_write_text(in, TRANSPOSE);
    int rc = tu_run(tu_fmt("%s --check %s", tu_tool("milc"), in), &out, &err);
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert(strstr(err, tu_fmt("%s:6:49: error: transpose: 'y' is declared", in)), "%s", err);
    free(out);
    free(err);
    tu_rmrf(dir);
    free(dir);
}
