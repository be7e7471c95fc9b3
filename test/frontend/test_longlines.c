/* test/frontend/test_longlines.c -- diagnostics on long source lines (issue
 * 15): a line of more than 121 characters is shown as the 60 characters
 * either side of the caret, cut at character boundaries with `…`, and the
 * caret stands under the character the column names.  Each case asserts the
 * exact lines mil_diag_print writes.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"

/* s repeated n times, malloc'd */
static char *rep(const char *s, int n) {
    size_t k = strlen(s);
    char *r = malloc(k * (size_t)n + 1);
    for (int i = 0; i < n; i++) memcpy(r + k * (size_t)i, s, k);
    r[k * (size_t)n] = 0;
    return r;
}

/* printf into a malloc'd string */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* Parses text (which must fail) and returns what mil_diag_print writes. */
static char *diagnose(const char *name, const char *text) {
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse(name, text, strlen(text), NULL, &d);
    cr_assert_null(p, "%s parsed", name);
    char *out = fe_diag_printed(&d);
    mil_diag_free(&d);
    return out;
}

#define HEAD "program(1.3)\n{\n    func main<ios18>() {\n"
#define TAIL "\n        } -> (c);\n}\n"
#define N 34000   /* elements of the big literal: a 102 KB line */

/* Line 4: `tensor<DT, [N]> c = OP(x = tensor<int32, [N]>([0, 0, ..., 0]), y = Y);`
 * with element `bad_at` written as `1.5`. */
static char *big_line(const char *dt, int bad_at, const char *y) {
    int k = bad_at >= 0 ? bad_at : N - 1;
    char *a = rep("0, ", k), *b = rep("0, ", bad_at >= 0 ? N - 2 - k : 0);
    char *line = bad_at >= 0
        ? fmt("            tensor<%s, [%d]> c = add(x = tensor<int32, [%d]>([%s1.5, %s0]), y = %s);", dt, N, N, a, b, y)
        : fmt("            tensor<%s, [%d]> c = add(x = tensor<int32, [%d]>([%s0]), y = %s);", dt, N, N, a, y);
    free(a);
    free(b);
    cr_assert_gt(strlen(line), 100000);
    return line;
}

/* "…" + the 121 bytes of an ASCII line from byte `from` + "…" where cut */
static char *window(const char *line, size_t from) {
    size_t n = strlen(line);
    return fmt("%s%.121s%s", from ? "\xe2\x80\xa6" : "", line + from, from + 121 < n ? "\xe2\x80\xa6" : "");
}

Test(longline, error_at_the_start) {
    char *line = big_line("int31", -1, "c");
    char *text = fmt(HEAD "%s" TAIL, line);
    char *out = diagnose("s.mil", text);
    char *pad = rep(" ", 19);
    char *want = fmt("s.mil:4:20: error: unknown dtype 'int31'\n%s\n%s^\n", window(line, 0), pad);
    cr_assert(!strncmp(out, want, strlen(want)), "got:\n%.600s\nwant:\n%s", out, want);
    cr_assert_lt(strlen(out), 1000, "the output stays short: %zu bytes", strlen(out));
    free(want);
    free(pad);
    free(out);
    free(text);
    free(line);
}

Test(longline, error_in_the_middle) {
    char *line = big_line("int32", N / 2, "c");
    char *text = fmt(HEAD "%s" TAIL, line);
    char *out = diagnose("m.mil", text);
    size_t col = (size_t)(strstr(line, "1.5") - line) + 1;
    char *pad = rep(" ", 61); /* the `…` and 60 characters */
    char *want = fmt("m.mil:4:%zu: error: expected an integer literal for int32, found number '1.5'\n%s\n%s^\n", col,
                     window(line, col - 1 - 60), pad);
    cr_assert(!strncmp(out, want, strlen(want)), "got:\n%.600s\nwant:\n%s", out, want);
    /* and literally: */
    cr_assert(strstr(out, "\n…0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.5, 0, 0, 0, "),
              "%s", out);
    free(want);
    free(pad);
    free(out);
    free(text);
    free(line);
}

Test(longline, error_at_the_end) {
    char *line = big_line("int32", -1, "nope");
    char *text = fmt(HEAD "%s" TAIL, line);
    char *out = diagnose("e.mil", text);
    size_t n = strlen(line), col = n - 5;
    char *pad = rep(" ", 1 + 115); /* the window is moved inward: the last 121 characters */
    char *want = fmt("e.mil:4:%zu: error: use of undefined value 'nope'\n%s\n%s^\n", col, window(line, n - 121), pad);
    cr_assert_str_eq(out, want);
    cr_assert(strstr(out, ", 0, 0, 0]), y = nope);\n"), "%s", out);
    free(want);
    free(pad);
    free(out);
    free(text);
    free(line);
}

/* Multi-byte characters on both sides of the cuts: the window is 121
 * characters (not bytes), cut between characters, and the caret's
 * indentation has one space per character (the tab kept). */
Test(longline, utf8_near_the_cut) {
    char *e = rep("é", 40), *u = rep("ü", 80);
    char *line = fmt("            string s = const()[name = string(\"%s€€€€€€€€€€𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥\"), val =\tstring(1.5)]; // %s", e, u);
    char *text = fmt(HEAD "%s" TAIL, line);
    char *out = diagnose("u.mil", text);
    char *e23 = rep("é", 23), *u51 = rep("ü", 51), *pad = rep(" ", 53);
    char *want = fmt("u.mil:4:214: error: expected a string literal for string, found number '1.5'\n"
                     "…%s€€€€€€€€€€𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥𝑥\"), val =\tstring(1.5)]; // %s…\n"
                     "%s\t       ^\n",
                     e23, u51, pad);
    cr_assert(!strncmp(out, want, strlen(want)), "got:\n%s\nwant:\n%s", out, want);
    free(want);
    free(pad);
    free(u51);
    free(e23);
    free(out);
    free(text);
    free(line);
    free(u);
    free(e);
}

/* Up to 121 characters a line is shown whole, as before; at 122 it is cut.
 * Multi-byte characters count once. */
Test(longline, fits_or_not) {
    const char *pre = "            int32 c = add(x = q, y = string(\"", *post = "\"));";
    for (int extra = 0; extra <= 1; extra++) {
        /* 121 + extra characters; the error is at `q` (col 31) */
        char *fill = rep("ä", 121 + extra - (int)strlen(pre) - (int)strlen(post));
        char *line = fmt("%s%s%s", pre, fill, post);
        char *text = fmt(HEAD "%s" TAIL, line);
        char *out = diagnose("f.mil", text);
        char *sp = rep(" ", 30);
        /* one character too many: the last one (`;`) is cut */
        char *want = extra ? fmt("f.mil:4:31: error: use of undefined value 'q'\n%.*s…\n%s^\n", (int)strlen(line) - 1,
                                 line, sp)
                           : fmt("f.mil:4:31: error: use of undefined value 'q'\n%s\n%s^\n", line, sp);
        cr_assert(!strncmp(out, want, strlen(want)), "extra %d: got\n%s\nwant\n%s", extra, out, want);
        free(want);
        free(sp);
        free(out);
        free(text);
        free(line);
        free(fill);
    }
}

/* Warnings quote the source the same way: a flat rank-2 literal (read, with
 * a warning at its `[`) on a 102 KB line shows the window, not the line. */
Test(longline, warning_is_windowed_too) {
    char *zeros = rep("0, ", 2 * N - 1);
    char *line = fmt("            tensor<int32, [2, %d]> c = const()[name = string(\"c\"), val = tensor<int32, [2, %d]>([%s0])];",
                     N, N, zeros);
    char *text = fmt(HEAD "%s" TAIL, line);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("w.mil", text, strlen(text), NULL, &d);
    cr_assert_not_null(p, "the flat literal is read");
    cr_assert_eq(d.nerrors, 0);
    char *out = fe_diag_printed(&d);
    size_t col = (size_t)(strstr(line, ">([") - line) + 3; /* the `[` */
    char *pad = rep(" ", 61); /* the `…` and 60 characters */
    char *want = fmt("w.mil:4:%zu: warning: flat literal for a rank-2 tensor read in row-major order\n%s\n%s^\n", col,
                     window(line, col - 1 - 60), pad);
    cr_assert_str_eq(out, want);
    free(want);
    free(pad);
    free(out);
    mil_program_free(p);
    mil_diag_free(&d);
    free(text);
    free(line);
    free(zeros);
}
