/* test/frontend/fe_test.c -- helpers shared by the frontend tests. */
#include "fe_test.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

MilProgram *fe_parse_str(const char *name, const char *text, const MilParseOptions *opt, MilDiag *d) {
    MilProgram *p = mil_parse(name, text, strlen(text), opt, d);
    if (!p) {
        char *all = fe_diag_text(d);
        cr_log_error("%s failed to parse:\n%s", name, all);
        free(all);
    }
    return p;
}

char *fe_diag_text(const MilDiag *d) {
    size_t cap = 256, n = 0;
    char *s = malloc(cap);
    s[0] = 0;
    for (int i = 0; i < d->n; i++) {
        char line[1024];
        mil_diag_format(d, i, line, sizeof line);
        size_t k = strlen(line);
        while (n + k + 2 > cap) s = realloc(s, cap *= 2);
        memcpy(s + n, line, k);
        n += k;
        s[n++] = '\n';
        s[n] = 0;
    }
    return s;
}

char *fe_diag_printed(const MilDiag *d) {
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    cr_assert_not_null(f);
    mil_diag_print(d, f);
    cr_assert_eq(fclose(f), 0);
    return s;
}

const char *fe_nth_error(const MilDiag *d, int i, char *buf, size_t size) {
    buf[0] = 0;
    for (int k = 0; k < d->n; k++) {
        if (d->v[k].sev != MIL_SEV_ERROR) continue;
        if (i-- == 0) {
            mil_diag_format(d, k, buf, size);
            break;
        }
    }
    return buf;
}

char *fe_print(const MilProgram *p, MilSpelling sp, size_t *len) {
    size_t n = 0;
    char *s = mil_print(p, sp, &n);
    cr_assert_not_null(s, "mil_print failed");
    if (len) *len = n;
    return s;
}

void fe_assert_fixed_point(const MilProgram *p, MilSpelling sp, const char *what) {
    size_t n1, n2;
    char *t1 = fe_print(p, sp, &n1);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *q = mil_parse(what, t1, n1, NULL, &d);
    if (!q) {
        char *all = fe_diag_text(&d);
        cr_assert_fail("%s: printed text (spelling %d) does not parse:\n%s\n--- text:\n%s", what, (int)sp, all, t1);
    }
    char *t2 = fe_print(q, sp, &n2);
    cr_assert(n1 == n2 && memcmp(t1, t2, n1) == 0, "%s: not a fixed point in spelling %d:\n%s\n--- vs ---\n%s", what,
              (int)sp, t1, t2);
    free(t1);
    free(t2);
    mil_program_free(q);
    mil_diag_free(&d);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char **fe_list_mil(const char *dir, int *n) {
    *n = 0;
    DIR *dd = opendir(dir);
    if (!dd) return NULL;
    int cap = 16;
    char **v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while ((e = readdir(dd))) {
        size_t k = strlen(e->d_name);
        if (k < 5 || strcmp(e->d_name + k - 4, ".mil") != 0) continue;
        if (strstr(e->d_name, ".expected")) continue;
        if (*n == cap) v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        size_t m = strlen(dir) + k + 2;
        v[*n] = malloc(m);
        snprintf(v[*n], m, "%s/%s", dir, e->d_name);
        (*n)++;
    }
    closedir(dd);
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

void fe_free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

unsigned long long fe_rand(unsigned long long *s) {
    unsigned long long x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
