/* test/testutil.c -- helpers for the tests: files, paths, running tools. */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) { free(buf); buf = NULL; }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static char *rot_buf(void) {
    static char bufs[8][4096];
    static int i;
    return bufs[i++ & 7];
}

const char *tu_src(const char *rel) {
    char *b = rot_buf();
    snprintf(b, 4096, "%s/%s", MILC_SOURCE_DIR, rel);
    return b;
}

const char *tu_tool(const char *name) {
    char *b = rot_buf();
    snprintf(b, 4096, "%s/tools/%s", MILC_BINARY_DIR, name);
    return b;
}

const char *tu_path(const char *dir, const char *name) {
    static char bufs[64][4096];
    static int i;
    char *b = bufs[i++ & 63];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

const char *tu_fmt(const char *fmt, ...) {
    static char bufs[4][8192];
    static int i;
    char *b = bufs[i++ & 3];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    return b;
}

void tu_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

void tu_write_text(const char *path, const char *text) { tu_write_file(path, text, strlen(text)); }

void tu_write_npy(const char *path, MilDType dt, int rank, const int64_t *dims, const double *vals) {
    MilRtTensor t = {.dtype = dt, .rank = rank};
    for (int i = 0; i < rank; i++) t.dims[i] = dims[i];
    MilRtErr e;
    cr_assert_eq(mil_rt_tensor_alloc(&t, &e), 0);
    for (int64_t i = 0; i < mil_rt_numel(&t); i++) mil_rt_set_f64(&t, i, vals[i]);
    cr_assert_eq(mil_rt_npy_write(path, &t, &e), 0, "%s", e.msg);
    mil_rt_tensor_free(&t);
}

void tu_assert_same_file(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    cr_assert(x && y, "missing %s or %s", a, b);
    cr_assert_eq(la, lb, "%s vs %s", a, b);
    cr_assert(!memcmp(x, y, la), "%s and %s differ", a, b);
    free(x);
    free(y);
}

const char *tu_corpus_dir(void) {
    static int warned;
    const char *d = getenv("MILC_CORPUS_DIR");
    if (!d || !*d) d = MILC_CORPUS_DEFAULT;
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (!warned++)
            fprintf(stderr, "\n*** WARNING: real corpus directory %s is ABSENT: "
                            "corpus tests check nothing (set MILC_CORPUS_DIR) ***\n\n", d);
        return NULL;
    }
    return d;
}

static char *slurp_fd(FILE *f) {
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) { cap *= 2; buf = realloc(buf, cap + 1); }
    }
    if (buf) buf[n] = 0;
    return buf;
}

int tu_run(const char *cmd, char **out, char **err) {
    char errpath[] = "/tmp/milc-test-err-XXXXXX";
    int efd = mkstemp(errpath);
    if (efd < 0) return -1;
    close(efd);
    size_t n = strlen(cmd) + strlen(errpath) + 16;
    char *full = malloc(n);
    snprintf(full, n, "%s 2>%s", cmd, errpath);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) { unlink(errpath); return -1; }
    char *o = slurp_fd(p);
    int st = pclose(p);
    if (out) *out = o; else free(o);
    if (err) *err = tu_read_file(errpath, NULL);
    unlink(errpath);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tu_runf(char **out, char **err, const char *prefix, const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s", prefix, args);
    free(*out);
    free(*err);
    *out = *err = NULL;
    return tu_run(cmd, out, err);
}

void tu_run_ok(const char *cmd) {
    char *err = NULL;
    int rc = tu_run(cmd, NULL, &err);
    cr_assert_eq(rc, 0, "%s\n%s", cmd, err ? err : "");
    free(err);
}

char *tu_tmpdir(void) {
    char tmpl[] = "/tmp/milc-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

void tu_rmrf(const char *path) {
    if (!path || strncmp(path, "/tmp/milc-test-", 15) != 0) return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) { /* best effort */ }
}

void tu_fixture_init(char **tmp, char **out, char **err) {
    *tmp = tu_tmpdir();
    *out = *err = NULL;
}

void tu_fixture_fini(char **tmp, char **out, char **err) {
    tu_rmrf(*tmp);
    free(*tmp);
    free(*out);
    free(*err);
}

void tu_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[WARNING] ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}
