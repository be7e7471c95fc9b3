/* test/testutil.c -- helpers for the tests: files, paths, running tools. */
#include "testutil.h"

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

void tu_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[WARNING] ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}
