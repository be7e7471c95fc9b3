/* frontend/frontend.c -- mil_parse / mil_parse_file: run the scanner and the
 * parser over one text and hand back the program, or NULL after any error.
 */
#include "frontend/fe_int.h"
#include "parser.h"
#include "coreml/coreml.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static MilLoc at(const char *file, int line, int col) {
    MilLoc l = { file, line, col };
    return l;
}

MilProgram *mil_parse(const char *file, const char *text, size_t len, const MilParseOptions *opt, MilDiag *d) {
    if (!d) return NULL;
    if (!text) len = 0;
    const char *fname = mil_diag_add_source(d, file ? file : "<input>", text ? text : "", len);
    FeState st = { 0 }, *ps = &st;   /* small: the literal frames are allocated as needed */
    ps->d = d;
    ps->file = fname;
    ps->text = text ? text : "";
    ps->len = len;
    if (opt) ps->opt = *opt;
    ps->maxerr = d->max_errors > 0 ? d->max_errors : 20;
    ps->p = mil_program_new("1.0");
    if (!ps->p || len > (size_t)INT_MAX - 2) {
        if (ps->p) mil_error(d, at(fname, 0, 0), "input too large (%zu bytes)", len);
        else mil_error(d, at(fname, 0, 0), "out of memory");
        mil_program_free(ps->p);
        return NULL;
    }
    void *sc = fe_scan_begin(ps, ps->text, len);
    int rc = sc ? mil_yyparse(sc, ps) : 2;
    fe_scan_end(sc);
    fe_state_free(ps);
    if (rc != 0 && ps->nerr == 0) mil_error(d, at(fname, ps->line, ps->col), "cannot parse input");
    MilProgram *p = ps->p;
    if (rc != 0 || ps->nerr > 0) {
        mil_program_free(p);
        p = NULL;
    } else {
        /* "}\n" at the end (only whitespace or comments may follow the final `}`). */
        p->trailing_newline =
            ps->have_rbrace && memchr(ps->text + ps->rbrace_off, '\n', len - ps->rbrace_off) != NULL;
    }
    return p;
}

static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

MilProgram *mil_parse_file(const char *path, const MilParseOptions *opt, MilDiag *d) {
    if (!d || !path) return NULL;
    const char *name = path;
    char *dirpath = NULL;
    FILE *f;
    if (strcmp(path, "-") == 0) {
        name = "<stdin>";
        f = stdin;
    } else if (mil_coreml_is_package(path)) { /* Core ML package: its protobuf (coreml/) */
        MilCoreMLReadOptions co = {.allow_unknown_ops = opt && opt->allow_unknown_ops};
        return mil_coreml_read(path, &co, d);
    } else {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            size_t n = strlen(path);
            dirpath = malloc(n + 16);
            if (!dirpath) return NULL;
            snprintf(dirpath, n + 16, "%s%smodel.mil", path, (n && path[n - 1] == '/') ? "" : "/");
            name = dirpath;
        }
        f = fopen(name, "rb");
    }
    if (!f) {
        mil_error(d, at(mil_diag_add_source(d, name, NULL, 0), 0, 0), "cannot open: %s", strerror(errno));
        free(dirpath);
        return NULL;
    }
    size_t len = 0;
    char *text = read_all(f, &len);
    int err = errno;
    if (f != stdin) fclose(f);
    MilProgram *p = NULL;
    if (!text) mil_error(d, at(mil_diag_add_source(d, name, NULL, 0), 0, 0), "cannot read: %s", strerror(err));
    else p = mil_parse(name, text, len, opt, d);
    free(text);
    free(dirpath);
    return p;
}
