/* test/frontend/test_parse.c -- the frontend on real and hand-made programs.
 *
 * Corpus (when present): every file parses and verifies; coremlc-written
 * files (non-empty buildInfo) print back byte for byte in their own spelling;
 * every file is a print -> parse -> print fixed point in both spellings.
 * Own files (test/frontend/data): golden canonical prints, the IR the parser
 * builds, options, trailing newlines, mil_parse_file, big and deep inputs.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fe_test.h"
#include "ir/fp16.h"
#include "testutil.h"

#define DATA "test/frontend/data/"

/* buildInfo = {} marks the hand-written files (docs/mil-format.md §8.2). */
static bool is_coremlc(const MilProgram *p) {
    for (int i = 0; i < p->nattrs; i++)
        if (strcmp(p->attrs[i].name, "buildInfo") == 0) return p->attrs[i].val->nitems > 0;
    return false;
}

static MilProgram *parse_path(const char *path, char **text, size_t *len, MilDiag *d) {
    *text = tu_read_file(path, len);
    cr_assert_not_null(*text, "cannot read %s", path);
    MilProgram *p = mil_parse(path, *text, *len, NULL, d);
    if (!p) {
        char *all = fe_diag_text(d);
        cr_assert_fail("%s does not parse:\n%s", path, all);
    }
    return p;
}

static void check_verifies(const MilProgram *p, const char *path) {
    MilDiag d;
    mil_diag_init(&d);
    int n = mil_verify(p, &d);
    if (n) {
        char *all = fe_diag_text(&d);
        cr_assert_fail("%s: mil_verify reports %d errors:\n%s", path, n, all);
    }
    mil_diag_free(&d);
}

/* ---------------------------------------------------------------- corpus */

Test(corpus, parses_verifies_and_round_trips, .timeout = 120) {
    const char *dir = tu_corpus_dir();
    if (!dir) {
        tu_warn("real corpus ABSENT: corpus round-trip checks nothing (set MILC_CORPUS_DIR)");
        return;
    }
    int n;
    char **files = fe_list_mil(dir, &n);
    cr_assert(n >= 1, "no .mil files in the corpus directory %s", dir);
    int exact = 0, hand = 0;
    for (int i = 0; i < n; i++) {
        MilDiag d;
        mil_diag_init(&d);
        char *text;
        size_t len;
        MilProgram *p = parse_path(files[i], &text, &len, &d);
        check_verifies(p, files[i]);
        if (is_coremlc(p)) {
            size_t m;
            char *out = fe_print(p, MIL_SPELLING_SAME, &m);
            if (m != len || memcmp(out, text, len) != 0) {
                size_t k = 0;
                while (k < m && k < len && out[k] == text[k]) k++;
                cr_assert_fail("%s: canonical print differs at byte %zu:\n  file: %.60s\n  print: %.60s", files[i], k,
                               text + k, out + k);
            }
            free(out);
            exact++;
        } else {
            hand++;
        }
        fe_assert_fixed_point(p, MIL_SPELLING_SAME, files[i]);
        fe_assert_fixed_point(p, MIL_SPELLING_1_0, files[i]);
        fe_assert_fixed_point(p, MIL_SPELLING_1_3, files[i]);
        mil_program_free(p);
        mil_diag_free(&d);
        free(text);
    }
    cr_log_info("corpus: %d byte-exact coremlc files, %d hand-written (fixed point only)", exact, hand);
    cr_assert(exact >= 1, "no coremlc-written file among %d corpus files", n);
    fe_free_list(files, n);
}

/* ------------------------------------------------------------- own files */

static void golden(const char *mil, MilSpelling sp, const char *expected) {
    MilDiag d;
    mil_diag_init(&d);
    char *text;
    size_t len;
    MilProgram *p = parse_path(tu_src(mil), &text, &len, &d);
    check_verifies(p, mil);
    size_t m, wl;
    char *out = fe_print(p, sp, &m);
    char *want = tu_read_file(tu_src(expected), &wl);
    cr_assert_not_null(want, "missing golden %s", expected);
    cr_assert_str_eq(out, want, "%s printed (spelling %d):\n%s\n--- expected (%s):\n%s", mil, (int)sp, out, expected,
                     want);
    fe_assert_fixed_point(p, MIL_SPELLING_SAME, mil);
    fe_assert_fixed_point(p, MIL_SPELLING_1_0, mil);
    fe_assert_fixed_point(p, MIL_SPELLING_1_3, mil);
    free(out);
    free(want);
    free(text);
    mil_program_free(p);
    mil_diag_free(&d);
}

Test(golden, all_constructs) { golden(DATA "all_constructs.mil", MIL_SPELLING_SAME, DATA "all_constructs.expected.mil"); }
Test(golden, all_constructs_as_1_0) {
    golden(DATA "all_constructs.mil", MIL_SPELLING_1_0, DATA "all_constructs.expected_1_0.mil");
}
Test(golden, program10) { golden(DATA "program10.mil", MIL_SPELLING_SAME, DATA "program10.expected.mil"); }
Test(golden, program10_as_1_3) { golden(DATA "program10.mil", MIL_SPELLING_1_3, DATA "program10.expected_1_3.mil"); }

/* The IR that the parser builds for the all-constructs file. */
Test(ir, all_constructs_structure) {
    MilDiag d;
    mil_diag_init(&d);
    char *text;
    size_t len;
    MilProgram *p = parse_path(tu_src(DATA "all_constructs.mil"), &text, &len, &d);
    cr_assert_str_eq(p->version, "1.3");
    cr_assert(p->trailing_newline);
    cr_assert_eq(p->nfuncs, 2);
    MilFunc *f = p->funcs[0];
    cr_assert_str_eq(f->name, "main");
    cr_assert_str_eq(f->opset, "ios18");
    cr_assert_eq(f->nparams, 4);
    cr_assert_str_eq(f->params[0]->name, "x");
    cr_assert_str_eq(f->params[2]->name, "flex");   /* written order kept */
    cr_assert_eq(f->params[1]->type->kind, MIL_TY_STATE);
    cr_assert_eq(f->params[3]->type->dims[0], MIL_DIM_UNKNOWN); /* symbolic dim -> ? */
    cr_assert_eq(f->nattrs, 1);
    cr_assert_str_eq(f->attrs[0].name, "FlexibleShapeInformation");
    cr_assert_eq(f->attrs[0].val->kind, MIL_CONST_TUPLE);
    cr_assert_eq(f->body.nouts, 4);
    cr_assert_str_eq(f->body.outs[3]->name, "sym");

    /* zero-output write_state, located at its op name */
    MilOp *op = f->body.first->next;
    cr_assert_eq(op->kind, MIL_OP_WRITE_STATE);
    cr_assert_eq(op->nresults, 0);
    cr_assert_eq(op->loc.line, 11);
    cr_assert_eq(op->loc.col, 13);
    cr_assert_str_eq(op->loc.file, tu_src(DATA "all_constructs.mil"));

    MilValue *a0 = mil_func_find_value(f, "a_0"), *a1 = mil_func_find_value(f, "a_1");
    cr_assert(a0 && a1 && a0->def == a1->def && a1->index == 1);
    cr_assert_eq(a0->def->kind, MIL_OP_SPLIT);

    MilValue *cat = mil_func_find_value(f, "cat");
    const MilArg *vals = mil_op_arg(cat->def, "values");
    cr_assert(vals && vals->variadic && vals->n == 2);
    cr_assert_eq(vals->items[0].value, a1);
    const MilArg *ax = mil_op_arg(cat->def, "axis");
    cr_assert(ax && ax->items[0].cst && mil_const_get_i64(ax->items[0].cst, 0) == 1);
    cr_assert_eq(ax->loc.line, 17);
    MilValue *one = mil_func_find_value(f, "one");
    vals = mil_op_arg(one->def, "values");
    cr_assert(vals->variadic && vals->n == 1);

    /* the no-space statement keeps its argument order as written */
    MilValue *sum = mil_func_find_value(f, "sum");
    cr_assert_str_eq(sum->def->args[0].name, "y");

    const MilConst *sp = mil_value_const(mil_func_find_value(f, "sp"));
    const uint16_t want16[8] = { 0x7c00, 0xfc00, 0x7e00, 0x3800, 0x3000, 0x0011, 0x0001, 0x8000 };
    for (int i = 0; i < 8; i++) {
        uint16_t h = ((const uint16_t *)sp->data)[i];
        if (i == 2) cr_assert((h & 0x7c00) == 0x7c00 && (h & 0x3ff), "nan");
        else cr_assert_eq(h, want16[i], "sp[%d] = %04x", i, h);
    }
    const MilConst *grid = mil_value_const(mil_func_find_value(f, "grid"));
    cr_assert_eq(grid->count, 6);
    cr_assert_eq(((const float *)grid->data)[0], 1.5f);
    cr_assert_eq(((const float *)grid->data)[1], 2.5e-3f);
    cr_assert_eq(((const float *)grid->data)[2], -0x1.e28358p-6f);
    cr_assert_eq(((const float *)grid->data)[5], 3.0f);
    cr_assert_eq(*(const double *)mil_value_const(mil_func_find_value(f, "eps"))->data, 0.125);
    cr_assert_eq(*(const uint64_t *)mil_value_const(mil_func_find_value(f, "u64"))->data, UINT64_MAX);
    const MilConst *i64 = mil_value_const(mil_func_find_value(f, "i64"));
    cr_assert_eq(((const int64_t *)i64->data)[0], INT64_MIN);
    const MilConst *i4 = mil_value_const(mil_func_find_value(f, "i4"));
    cr_assert_eq(mil_const_get_i64(i4, 0), -8);
    const MilConst *names = mil_value_const(mil_func_find_value(f, "names"));
    cr_assert_str_eq(((const char *const *)names->data)[1], "tab\there");
    const MilConst *bi = p->attrs[0].val;
    cr_assert_str_eq(mil_const_get_str(bi->items[5]), "all \"constructs\"\\");

    MilValue *dq = mil_func_find_value(f, "dq");
    const MilConst *qd = mil_op_const_arg(dq->def, "quantized_data");
    cr_assert(qd && qd->kind == MIL_CONST_BLOB);
    cr_assert_str_eq(qd->blob_path, "@model_path/weights/weight.bin");
    cr_assert_eq(qd->blob_offset, 64);
    MilValue *w = mil_func_find_value(f, "w");
    const MilConst *idx = mil_op_const_arg(w->def, "indices");
    cr_assert_eq(idx->type->dtype, MIL_DT_UINT4);
    cr_assert_eq(idx->blob_offset, 128);
    cr_assert_str_eq(idx->blob_path, "@model_path/weights.bin");

    MilFunc *g = p->funcs[1];
    cr_assert_str_eq(g->opset, "ios17");
    cr_assert_str_eq(g->body.last->opset, "ios17");   /* op-level opset tag */
    cr_assert_null(g->body.first->opset);
    free(text);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* ---------------------------------------------------------------- options */

Test(options, lenient_scalar_for_vector) {
    char *text = tu_read_file(tu_src(DATA "lenient.mil"), NULL);
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("lenient.mil", text, strlen(text), NULL, &d));
    char buf[512];
    cr_assert(strstr(fe_nth_error(&d, 0, buf, sizeof buf), "lenient.mil:4:76: error: expected '['"), "%s", buf);
    mil_diag_free(&d);
    mil_diag_init(&d);
    MilParseOptions o = { .lenient = true };
    MilProgram *p = fe_parse_str("lenient.mil", text, &o, &d);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->version, "1");
    cr_assert_eq(p->nattrs, 0);
    cr_assert_str_eq(p->funcs[0]->opset, "CoreML8");
    const MilConst *c = mil_value_const(mil_func_find_value(p->funcs[0], "ax"));
    cr_assert(c && c->count == 1 && mil_const_get_i64(c, 0) == 1);
    mil_program_free(p);
    mil_diag_free(&d);
    free(text);
}

static const char *unknown_op =
    "program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n    func main<ios18>(tensor<fp32, [2]> x) {\n"
    "            tensor<fp32, [2]> y = frobnicate(alpha = fp32(0x1p+0), x = x)[name = string(\"y\")];\n"
    "        } -> (y);\n}";

Test(options, unknown_ops) {
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("u.mil", unknown_op, strlen(unknown_op), NULL, &d));
    char buf[512];
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf), "u.mil:5:35: error: unknown op 'frobnicate'");
    mil_diag_free(&d);
    mil_diag_init(&d);
    MilParseOptions o = { .allow_unknown_ops = true };
    MilProgram *p = fe_parse_str("u.mil", unknown_op, &o, &d);
    cr_assert_not_null(p);
    MilOp *op = p->funcs[0]->body.first;
    cr_assert_eq(op->kind, MIL_OP_UNKNOWN);
    cr_assert_str_eq(op->opname, "frobnicate");
    cr_assert_eq(op->nargs, 2);
    size_t n;
    char *out = fe_print(p, MIL_SPELLING_SAME, &n);
    cr_assert_str_eq(out, unknown_op);
    free(out);
    mil_program_free(p);
    mil_diag_free(&d);
}

/* ------------------------------------------------------ small behaviours */

static MilProgram *parse_ok(const char *text) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = fe_parse_str("t.mil", text, NULL, &d);
    cr_assert_not_null(p);
    mil_diag_free(&d);
    return p;
}

#define TINY_HEAD "program(1.3)\n[buildInfo = dict<string, string>({})]\n{\n"

Test(behaviour, trailing_newline) {
    static const struct { const char *tail; bool nl; } cases[] = {
        { "}", false }, { "}\n", true }, { "}\n\n  \t", true }, { "} ", false }, { "}\r\n", true },
        { "} // c\n", true }, { "}/* x */", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, TINY_HEAD "%s", cases[i].tail);
        MilProgram *p = parse_ok(text);
        cr_assert_eq(p->trailing_newline, cases[i].nl, "tail %d", (int)i);
        cr_assert_eq(p->nfuncs, 0);
        mil_program_free(p);
    }
}

Test(behaviour, versions_as_written) {
    const char *v[] = { "1.0", "1.3", "1", "2.10" };
    for (int i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "program(%s){}", v[i]);
        MilProgram *p = parse_ok(text);
        cr_assert_str_eq(p->version, v[i]);
        mil_program_free(p);
    }
}

Test(behaviour, outputs_may_be_inputs_and_empty) {
    MilProgram *p = parse_ok("program(1.3){func f<ios18>(int32 a){}->(a,a);func g<ios18>(){}->();}");
    cr_assert_eq(p->funcs[0]->body.nouts, 2);
    cr_assert_eq(p->funcs[0]->body.outs[0], p->funcs[0]->params[0]);
    cr_assert_eq(p->funcs[1]->body.nouts, 0);
    mil_program_free(p);
}

Test(behaviour, same_names_in_two_functions) {
    MilProgram *p = parse_ok("program(1.3){func f<ios18>(int32 a){int32 b=identity(x=a)[name=string(\"n\")];}->(b);"
                             "func g<ios18>(int32 a){int32 b=identity(x=a)[name=string(\"n\")];}->(b);}");
    cr_assert_eq(p->nfuncs, 2);
    mil_program_free(p);
}

Test(behaviour, double_rounding_avoided) {
    /* Texts whose nearest double sits exactly halfway between two fp16 (or
     * fp32) values, while the text itself is just above or below: a naive
     * text -> double -> fp16 conversion rounds the wrong way. */
    MilProgram *p = parse_ok(
        "program(1.3){func f<ios18>(){"
        /* 1 + 2^-11 + 2^-60: above the midpoint of 1 and 1+2^-10 -> 0x3c01 */
        "fp16 a=const()[val=fp16(1.000488281250000000867361737988403547205962240695953369140625)];"
        /* 1 + 3*2^-11 - 2^-60: below the midpoint of 0x3c01 / 0x3c02 -> 0x3c01 */
        "fp16 b=const()[val=fp16(1.001464843749999999132638262011596452794037759304046630859375)];"
        /* hex with more than 53 bits: 1 + 2^-11 + 2^-68 -> 0x3c01 */
        "fp16 c=const()[val=fp16(0x1.00200000000000001p+0)];"
        /* exactly the midpoint: ties to even -> 0x3c00 */
        "fp16 e=const()[val=fp16(1.00048828125)];"
        /* fp32: 1 + 2^-24 + 2^-60 -> 1 + 2^-23 */
        "fp32 g=const()[val=fp32(0x1.0000010000000001p+0)];"
        "}->(a,b,c,e,g);}");
    MilFunc *f = p->funcs[0];
    const uint16_t want[4] = { 0x3c01, 0x3c01, 0x3c01, 0x3c00 };
    for (int i = 0; i < 4; i++) {
        uint16_t h = *(const uint16_t *)mil_value_const(f->body.outs[i])->data;
        cr_assert_eq(h, want[i], "case %d: got %04x want %04x", i, h, want[i]);
    }
    cr_assert_eq(*(const float *)mil_value_const(f->body.outs[4])->data, 1.0f + 0x1p-23f);
    mil_program_free(p);
}

Test(behaviour, fp8_and_bf16) {
    MilProgram *p = parse_ok("program(1.3){func f<ios18>(){"
                             "tensor<fp8e4m3fn,[4]> a=const()[val=tensor<fp8e4m3fn,[4]>([448, -0.5, 464, nan])];"
                             "tensor<fp8e5m2,[3]> b=const()[val=tensor<fp8e5m2,[3]>([57344, -inf, 0x1p-16])];"
                             "tensor<bf16,[2]> c=const()[val=tensor<bf16,[2]>([1.00390625, 3e38])];"
                             "}->(a,b,c);}");
    MilFunc *f = p->funcs[0];
    const uint8_t *a = mil_value_const(f->body.outs[0])->data, *b = mil_value_const(f->body.outs[1])->data;
    /* 464 = 448 + half an ulp ties to even: 448 (no inf; 1000 is an error, test_audit.c) */
    cr_assert(a[0] == 0x7e && a[1] == 0xb0 && a[2] == 0x7e && a[3] == 0x7f, "%02x %02x %02x %02x", a[0], a[1], a[2], a[3]);
    cr_assert(b[0] == 0x7b && b[1] == 0xfc && b[2] == 0x01, "%02x %02x %02x", b[0], b[1], b[2]);
    const uint16_t *c = mil_value_const(f->body.outs[2])->data;
    cr_assert(c[0] == 0x3f80 && c[1] == 0x7f62, "%04x %04x", c[0], c[1]); /* 1+2^-8 ties to even */
    mil_program_free(p);
}

/* A 512-element decimal tensor on one line, as hand-written ANE programs have,
 * and a large one: both go straight into typed storage. */
Test(behaviour, big_inline_tensor) {
    const int n = 200000;
    size_t cap = (size_t)n * 8 + 512, k = 0;
    char *text = malloc(cap);
    k += (size_t)snprintf(text + k, cap - k, "program(1.3){func f<ios18>(){tensor<fp16,[%d]> c=const()[val=tensor<fp16,[%d]>([",
                          n, n);
    for (int i = 0; i < n; i++) k += (size_t)snprintf(text + k, cap - k, i ? ",0.25" : "0.25");
    k += (size_t)snprintf(text + k, cap - k, "])];}->(c);}");
    MilProgram *p = parse_ok(text);
    const MilConst *c = mil_value_const(p->funcs[0]->body.outs[0]);
    cr_assert_eq(c->count, n);
    for (int i = 0; i < n; i++) cr_assert_eq(((const uint16_t *)c->data)[i], 0x3400);
    mil_program_free(p);
    free(text);
}

/* Depth limits: every kind of bracket is capped, without recursion blowing up. */
Test(behaviour, deep_nesting_is_an_error, .timeout = 30) {
    const char *kinds[] = { "[", "list<", "(", "{" };
    for (int k = 0; k < 4; k++) {
        size_t depth = 100000, cap = depth * 6 + 256, n = 0;
        char *text = malloc(cap);
        n += (size_t)snprintf(text, cap, "program(1.3){func f<ios18>(){tensor<fp16,[1]> c=const()[val=tensor<fp16,[1]>(");
        for (size_t i = 0; i < depth; i++) n += (size_t)snprintf(text + n, cap - n, "%s", kinds[k]);
        MilDiag d;
        mil_diag_init(&d);
        cr_assert_null(mil_parse("deep.mil", text, n, NULL, &d));
        char buf[512];
        bool found = false;
        for (int i = 0; i < 3 && !found; i++) found = strstr(fe_nth_error(&d, i, buf, sizeof buf), "nesting too deep");
        cr_assert(found, "kind %d: %s", k, fe_diag_text(&d));
        mil_diag_free(&d);
        free(text);
    }
}

Test(behaviour, error_cap) {
    size_t cap = 200000, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text, cap, "program(1.3){func f<ios18>(){");
    for (int i = 0; i < 1000; i++) n += (size_t)snprintf(text + n, cap - n, "int32 a%d=const()[val=int8(999)];", i);
    n += (size_t)snprintf(text + n, cap - n, "}->();}");
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("cap.mil", text, n, NULL, &d));
    cr_assert_eq(d.nerrors, 20, "nerrors %d", d.nerrors);
    mil_diag_free(&d);
    mil_diag_init(&d);
    d.max_errors = 3;
    cr_assert_null(mil_parse("cap.mil", text, n, NULL, &d));
    cr_assert_eq(d.nerrors, 3);
    mil_diag_free(&d);
    free(text);
}

/* Several independent errors in one file are all reported. */
Test(behaviour, recovers_per_statement) {
    const char *text = "program(1.3){func f<ios18>(int32 a){\n"
                       "int32 b = add(x = a, y = nope);\n"
                       "int32 c = add(x = a y = a);\n"
                       "int32 d = add(x = a, y = int8(300));\n"
                       "int32 e = add(x = b, y = c);\n"
                       "}->(e);}";
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("r.mil", text, strlen(text), NULL, &d));
    char buf[512];
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf), "r.mil:2:26: error: use of undefined value 'nope'");
    cr_assert(strstr(fe_nth_error(&d, 1, buf, sizeof buf), "r.mil:3:21: error: unexpected identifier 'y'"), "%s", buf);
    cr_assert_str_eq(fe_nth_error(&d, 2, buf, sizeof buf),
                     "r.mil:4:31: error: integer literal 300 is out of range for int8");
    cr_assert_eq(d.nerrors, 3, "%s", fe_diag_text(&d));
    mil_diag_free(&d);
}

Test(behaviour, duplicate_definition_note) {
    const char *text = "program(1.3){func f<ios18>(int32 a){\nint32 a = identity(x = a);\n}->(a);}";
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("n.mil", text, strlen(text), NULL, &d));
    cr_assert_eq(d.n, 2);
    char buf[512];
    mil_diag_format(&d, 1, buf, sizeof buf);
    cr_assert_str_eq(buf, "n.mil:1:34: note: previous definition of 'a' is here");
    mil_diag_free(&d);
}

/* ------------------------------------------------------------ parse_file */

Test(parse_file, directory_and_stdin) {
    char *dir = tu_tmpdir();
    char sub[1024], path[1100];
    snprintf(sub, sizeof sub, "%s/m.mlmodelc", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(path, sizeof path, "%s/model.mil", sub);
    FILE *f = fopen(path, "wb");
    fputs("program(1.0){}\n", f);
    fclose(f);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse_file(sub, NULL, &d);
    cr_assert_not_null(p);
    cr_assert(p->trailing_newline);
    mil_program_free(p);
    p = mil_parse_file(path, NULL, &d);
    cr_assert_not_null(p);
    mil_program_free(p);
    cr_assert_not_null(freopen(path, "rb", stdin));
    p = mil_parse_file("-", NULL, &d);
    cr_assert_not_null(p);
    mil_program_free(p);
    cr_assert_eq(d.nerrors, 0);
    snprintf(path, sizeof path, "%s/missing.mil", dir);
    cr_assert_null(mil_parse_file(path, NULL, &d));
    char buf[2048];
    cr_assert(strstr(fe_nth_error(&d, 0, buf, sizeof buf), "missing.mil: error: cannot open"), "%s", buf);
    mil_diag_free(&d);
    tu_rmrf(dir);
    free(dir);
}

/* The diagnostics show the source line and a caret. */
Test(parse_file, caret_rendering) {
    const char *text = "program(1.3){func f<ios18>(){\n    int32 b = add(x = q, y = q);\n}->(b);}";
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("c.mil", text, strlen(text), NULL, &d));
    char *out = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&out, &n);
    mil_diag_print(&d, m);
    fclose(m);
    cr_assert(strstr(out, "c.mil:2:23: error: use of undefined value 'q'\n"
                          "    int32 b = add(x = q, y = q);\n"
                          "                      ^\n"),
              "%s", out);
    free(out);
    mil_diag_free(&d);
}
