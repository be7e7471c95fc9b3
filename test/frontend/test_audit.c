/* test/frontend/test_audit.c -- diagnostics fixed after the frontend audit:
 * the error cap says that it stopped, an unterminated string gives one error,
 * float literals that overflow their dtype are errors, unknown program
 * versions are warned about.  Each expectation is an exact `file:line:col`
 * line.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"

/* The i-th diagnostic of any severity, formatted. */
static const char *nth_diag(const MilDiag *d, int i, char *buf, size_t size) {
    mil_diag_format(d, i, buf, size);
    return buf;
}

/* A function of `lines` statements, each using an undefined value. */
static char *undefined_refs(int lines) {
    size_t cap = 64 + (size_t)lines * 64, n = 0;
    char *t = malloc(cap);
    cr_assert_not_null(t);
    n += (size_t)snprintf(t + n, cap - n, "program(1.3)\n{\nfunc main<ios18>(tensor<fp32, [4]> x) {\n");
    for (int i = 0; i < lines; i++)
        n += (size_t)snprintf(t + n, cap - n, "tensor<fp32, [4]> r%d = relu(x = q%d);\n", i, i);
    snprintf(t + n, cap - n, "} -> (x);\n}\n");
    return t;
}

/* ------------------------------------------------------------- error cap */

Test(audit, error_cap_says_it_stopped) {
    char *t = undefined_refs(50);
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("cap.mil", t, strlen(t), NULL, &d));
    char buf[512];
    cr_assert_eq(d.nerrors, 20, "nerrors %d", d.nerrors);
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf), "cap.mil:4:33: error: use of undefined value 'q0'");
    cr_assert_str_eq(fe_nth_error(&d, 19, buf, sizeof buf), "cap.mil:23:34: error: use of undefined value 'q19'");
    cr_assert_eq(d.n, 21, "%s", fe_diag_text(&d));
    cr_assert_str_eq(nth_diag(&d, d.n - 1, buf, sizeof buf), "cap.mil: note: too many errors; stopped after 20");
    char *out = fe_diag_printed(&d);
    const char *last = "cap.mil: note: too many errors; stopped after 20\n";
    size_t ol = strlen(out), ll = strlen(last);
    cr_assert(ol >= ll && strcmp(out + ol - ll, last) == 0, "output ends with:\n%s", ol > 200 ? out + ol - 200 : out);
    free(out);
    mil_diag_free(&d);

    /* A smaller cap stops at its own count. */
    mil_diag_init(&d);
    d.max_errors = 3;
    cr_assert_null(mil_parse("cap.mil", t, strlen(t), NULL, &d));
    cr_assert_eq(d.nerrors, 3);
    cr_assert_str_eq(nth_diag(&d, d.n - 1, buf, sizeof buf), "cap.mil: note: too many errors; stopped after 3");
    mil_diag_free(&d);
    free(t);
}

/* Exactly as many errors as the cap: nothing was dropped, so no note. */
Test(audit, error_cap_exactly_reached_has_no_note) {
    char *t = undefined_refs(20);
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("cap.mil", t, strlen(t), NULL, &d));
    cr_assert_eq(d.nerrors, 20);
    cr_assert_eq(d.n, 20, "%s", fe_diag_text(&d));
    char buf[512];
    cr_assert_str_eq(fe_nth_error(&d, 19, buf, sizeof buf), "cap.mil:23:34: error: use of undefined value 'q19'");
    mil_diag_free(&d);
    free(t);
}

/* ---------------------------------------------------- unterminated string */

#define H "program(1.3)\n{\nfunc main<ios18>(tensor<fp16, [2]> x) {\n"

/* A string broken across two lines: one error, at its opening quote; the
 * closing quote on the next line does not open another string. */
Test(audit, unterminated_string_one_error) {
    const char *t = H "tensor<fp16, [2]> y = relu(x = x)[name = string(\"y\n\")];\n} -> (y);\n}";
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("s.mil", t, strlen(t), NULL, &d));
    char buf[512];
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf),
                     "s.mil:4:49: error: unterminated string (strings end on the same line)");
    cr_assert_eq(d.nerrors, 1, "%s", fe_diag_text(&d));
    mil_diag_free(&d);

    /* Same at the start of a program: the repro's `2:1` error is gone. */
    const char *t2 = "program(1.3)[a = string(\"x\n\")] {}";
    mil_diag_init(&d);
    cr_assert_null(mil_parse("s.mil", t2, strlen(t2), NULL, &d));
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf),
                     "s.mil:1:25: error: unterminated string (strings end on the same line)");
    cr_assert_eq(d.nerrors, 1, "%s", fe_diag_text(&d));
    mil_diag_free(&d);
}

/* A string missing its closing quote, followed by a line with balanced
 * strings: those strings are read normally (no errors on line 5). */
Test(audit, unterminated_string_next_line_balanced) {
    const char *t = H "tensor<fp16, [2]> y = relu(x = x)[name = string(\"y)];\n"
                      "tensor<fp16, [2]> z = relu(x = x)[name = string(\"z\")];\n} -> (z);\n}";
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("s.mil", t, strlen(t), NULL, &d));
    char buf[512];
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf),
                     "s.mil:4:49: error: unterminated string (strings end on the same line)");
    for (int i = 0; i < d.n; i++)
        cr_assert_null(strstr(nth_diag(&d, i, buf, sizeof buf), "s.mil:5:"), "%s", fe_diag_text(&d));
    mil_diag_free(&d);
}

/* ------------------------------------------------- float literal overflow */

/* `T(lit)` as a const: NULL and the first error in *err, or the program. */
static MilProgram *const_of(const char *type, const char *lit, char *err, size_t size) {
    char t[512];
    snprintf(t, sizeof t, "program(1.3)\n{\nfunc main<ios18>() {\n%s c = const()[val = %s(%s)];\n} -> (c);\n}", type,
             type, lit);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("f.mil", t, strlen(t), NULL, &d);
    fe_nth_error(&d, 0, err, size);
    mil_diag_free(&d);
    return p;
}

/* The printed value of `T(lit)`, which must parse. */
static void expect_value(const char *type, const char *lit, const char *want) {
    char err[512], w[128];
    MilProgram *p = const_of(type, lit, err, sizeof err);
    cr_assert_not_null(p, "%s(%s): %s", type, lit, err);
    char *s = fe_print(p, MIL_SPELLING_1_3, NULL);
    snprintf(w, sizeof w, "val = %s(%s)", type, want);
    cr_assert_not_null(strstr(s, w), "%s(%s): want %s in\n%s", type, lit, w, s);
    free(s);
    mil_program_free(p);
}

static void expect_overflow(const char *type, const char *lit) {
    char err[512], w[256];
    MilProgram *p = const_of(type, lit, err, sizeof err);
    if (p) mil_program_free(p);
    cr_assert_null(p, "%s(%s) accepted", type, lit);
    /* "T c = const()[val = T(" is 2 * strlen(T) + 20 bytes */
    snprintf(w, sizeof w, "f.mil:4:%d: error: value %s is out of range for %s", 21 + 2 * (int)strlen(type), lit, type);
    cr_assert_str_eq(err, w);
}

Test(audit, float_overflow_fp16) {
    expect_overflow("fp16", "70000.0");
    expect_overflow("fp16", "0x1p+16");
    expect_overflow("fp16", "-70000.0");
    expect_overflow("fp16", "65520");          /* max + half ulp: ties away to inf */
    expect_overflow("fp16", "65520.0");
    expect_overflow("fp16", "-65520.0");
    expect_overflow("fp16", "1e400");          /* beyond double too */
    expect_value("fp16", "65504", "0x1.ffcp+15");
    expect_value("fp16", "65519.99", "0x1.ffcp+15");
    expect_value("fp16", "-65519.99", "-0x1.ffcp+15");
    expect_value("fp16", "inf", "inf");
    expect_value("fp16", "-inf", "-inf");
    expect_value("fp16", "nan", "nan");
    expect_value("fp16", "1e-30", "0x0p+0");   /* underflow is not an error */
}

Test(audit, float_overflow_other_types) {
    expect_value("fp32", "0x1.fffffep+127", "0x1.fffffep+127");
    expect_value("fp32", "0x1.fffffefffp+127", "0x1.fffffep+127");
    expect_overflow("fp32", "0x1.ffffffp+127");
    expect_overflow("fp32", "3.5e38");
    expect_overflow("fp32", "-1e39");
    expect_value("fp32", "-inf", "-inf");
    expect_value("bf16", "0x1.fep+127", "0x1.fep+127");
    expect_value("bf16", "0x1.fefp+127", "0x1.fep+127");
    expect_overflow("bf16", "0x1.ffp+127");
    expect_value("fp8e5m2", "61439", "0x1.cp+15");
    expect_overflow("fp8e5m2", "61440");
    expect_value("fp8e4m3fn", "464", "0x1.cp+8");   /* ties to even: 448 (0x7f is NaN, not a step) */
    expect_overflow("fp8e4m3fn", "465");
    expect_overflow("fp8e4m3fn", "1000");
    expect_overflow("fp64", "1e309");
    expect_overflow("fp64", "0x1p+1024");
    expect_value("fp64", "0x1.fffffffffffffp+1023", "0x1.fffffffffffffp+1023");
}

/* In a tensor literal the error is at the element. */
Test(audit, float_overflow_in_tensor) {
    const char *t = "program(1.3)\n{\nfunc main<ios18>() {\n"
                    "tensor<fp16, [3]> c = const()[val = tensor<fp16, [3]>([1.0, 65520.0, 2.0])];\n} -> (c);\n}";
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_null(mil_parse("f.mil", t, strlen(t), NULL, &d));
    char buf[512];
    cr_assert_str_eq(fe_nth_error(&d, 0, buf, sizeof buf), "f.mil:4:61: error: value 65520.0 is out of range for fp16");
    cr_assert_eq(d.nerrors, 1, "%s", fe_diag_text(&d));
    mil_diag_free(&d);
}

/* ------------------------------------------------------ program version */

/* The diagnostics of parsing `program(V) {}`: its warning text, or "". */
static bool version_ok(const char *v, char *warn, size_t size) {
    char t[128];
    snprintf(t, sizeof t, "program(%s) {\n}", v);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("v.mil", t, strlen(t), NULL, &d);
    warn[0] = 0;
    for (int i = 0; i < d.n; i++)
        if (d.v[i].sev == MIL_SEV_WARNING) mil_diag_format(&d, i, warn, size);
    bool ok = p && d.nerrors == 0 && d.nwarnings == (warn[0] ? 1 : 0);
    if (p) {
        cr_assert_str_eq(p->version, v);   /* kept as written */
        mil_program_free(p);
    }
    mil_diag_free(&d);
    return ok;
}

Test(audit, unknown_program_version_warns) {
    char w[256];
    const char *bad[] = { "2.0", "2", "0.9", "1.0e0", "10", "0x1p+0", "1." };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(version_ok(bad[i], w, sizeof w), "%s not read", bad[i]);
        char want[128];
        snprintf(want, sizeof want, "v.mil:1:9: warning: unknown program version %s (expected 1.0 or 1.3)", bad[i]);
        cr_assert_str_eq(w, want);
    }
    const char *good[] = { "1", "1.0", "1.3", "1.4", "1.10" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert(version_ok(good[i], w, sizeof w), "%s not read", good[i]);
        cr_assert_str_eq(w, "", "%s", good[i]);
    }
}

/* ------------------------------------------- program(1) with bare scalars */

/* Documented in frontend.h: an ambiguous `program(1)` file prints under
 * MIL_SPELLING_SAME in the scalar spelling it was written in, with its
 * version line kept as written. */
Test(audit, version_1_follows_its_own_spelling) {
    const char *t = "program(1)\n{\n    func main<ios17>(fp32 x) {\n"
                    "            fp32 y = relu(x = x);\n        } -> (y);\n}\n";
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("b.mil", t, strlen(t), NULL, &d);
    cr_assert_not_null(p, "%s", fe_diag_text(&d));
    cr_assert_eq(d.nwarnings, 0);
    cr_assert_str_eq(p->version, "1");
    char *s = fe_print(p, MIL_SPELLING_SAME, NULL);
    cr_assert_str_eq(s, t);
    free(s);
    s = fe_print(p, MIL_SPELLING_1_0, NULL);
    cr_assert_not_null(strstr(s, "program(1.0)\n"), "%s", s);
    cr_assert_not_null(strstr(s, "tensor<fp32, []> y = relu(x = x);"), "%s", s);
    free(s);
    mil_program_free(p);
    mil_diag_free(&d);
    /* the same version written with tensor<T, []> scalars stays in that spelling */
    const char *t0 = "program(1)\n{\n    func main<ios17>(tensor<fp32, []> x) {\n"
                     "            tensor<fp32, []> y = relu(x = x);\n        } -> (y);\n}\n";
    mil_diag_init(&d);
    p = mil_parse("b0.mil", t0, strlen(t0), NULL, &d);
    cr_assert_not_null(p, "%s", fe_diag_text(&d));
    s = fe_print(p, MIL_SPELLING_SAME, NULL);
    cr_assert_str_eq(s, t0);
    free(s);
    mil_program_free(p);
    mil_diag_free(&d);
}
