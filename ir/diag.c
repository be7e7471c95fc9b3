/* ir/diag.c -- collected diagnostics, printed chibicc style.
 *
 * Libraries report into a MilDiag and carry on; tools print the list:
 *
 *     model.mil:3:14: error: unknown argument 'z' of op 'add'
 *                 tensor<fp16, [1]> y = add(x = a, z = b);
 *                              ^
 *
 * At most max_errors (default 20) errors are recorded; later errors are only
 * counted in nerrors.  Warnings and notes are always recorded.  The source
 * texts registered with mil_diag_add_source give the caret lines.
 */
#include "ir/ir_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MIL_DIAG_MAX_ERRORS 20

void mil_diag_init(MilDiag *d) { memset(d, 0, sizeof *d); }

void mil_diag_free(MilDiag *d) {
    for (int i = 0; i < d->n; i++) free(d->v[i].msg);
    for (int i = 0; i < d->nsrc; i++) {
        free(d->src[i].file);
        free(d->src[i].text);
    }
    free(d->v);
    free(d->src);
    memset(d, 0, sizeof *d);
}

static char *dupn(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (!r) return NULL;
    if (n) memcpy(r, s, n);
    r[n] = 0;
    return r;
}

const char *mil_diag_add_source(MilDiag *d, const char *file, const char *text, size_t len) {
    if (!file) file = "<input>";
    for (int i = 0; i < d->nsrc; i++) {
        if (strcmp(d->src[i].file, file) == 0) { /* re-registered: replace text */
            char *t = text ? dupn(text, len) : NULL;
            if (text && !t) return d->src[i].file;
            free(d->src[i].text);
            d->src[i].text = t;
            d->src[i].len = t ? len : 0;
            return d->src[i].file;
        }
    }
    if (d->nsrc == d->capsrc) {
        int ncap = d->capsrc ? d->capsrc * 2 : 4;
        MilDiagSource *ns = realloc(d->src, (size_t)ncap * sizeof *ns);
        if (!ns) return NULL;
        d->src = ns;
        d->capsrc = ncap;
    }
    MilDiagSource *s = &d->src[d->nsrc];
    s->file = dupn(file, strlen(file));
    if (!s->file) return NULL;
    s->text = text ? dupn(text, len) : NULL;
    s->len = s->text ? len : 0;
    d->nsrc++;
    return s->file;
}

void mil_diag_report(MilDiag *d, MilSeverity sev, MilLoc loc, const char *fmt, ...) {
    if (sev == MIL_SEV_ERROR) {
        int max = d->max_errors > 0 ? d->max_errors : MIL_DIAG_MAX_ERRORS;
        d->nerrors++;
        if (d->nerrors > max) return;
    } else if (sev == MIL_SEV_WARNING) {
        d->nwarnings++;
    }
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    char *msg = malloc((size_t)need + 1);
    if (!msg) return;
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)need + 1, fmt, ap);
    va_end(ap);
    if (d->n == d->cap) {
        int ncap = d->cap ? d->cap * 2 : 16;
        MilDiagEntry *nv = realloc(d->v, (size_t)ncap * sizeof *nv);
        if (!nv) { free(msg); return; }
        d->v = nv;
        d->cap = ncap;
    }
    d->v[d->n++] = (MilDiagEntry){ .sev = sev, .loc = loc, .msg = msg };
}

static const char *sev_name(MilSeverity s) {
    switch (s) {
    case MIL_SEV_ERROR: return "error";
    case MIL_SEV_WARNING: return "warning";
    case MIL_SEV_NOTE: return "note";
    }
    return "error";
}

void mil_diag_format(const MilDiag *d, int i, char *buf, size_t size) {
    if (!buf || size == 0) return;
    if (i < 0 || i >= d->n) { buf[0] = 0; return; }
    const MilDiagEntry *e = &d->v[i];
    const MilLoc *l = &e->loc;
    if (l->file && l->line > 0 && l->col > 0)
        snprintf(buf, size, "%s:%d:%d: %s: %s", l->file, l->line, l->col, sev_name(e->sev), e->msg);
    else if (l->file && l->line > 0)
        snprintf(buf, size, "%s:%d: %s: %s", l->file, l->line, sev_name(e->sev), e->msg);
    else if (l->file)
        snprintf(buf, size, "%s: %s: %s", l->file, sev_name(e->sev), e->msg);
    else
        snprintf(buf, size, "%s: %s", sev_name(e->sev), e->msg);
}

static const MilDiagSource *find_source(const MilDiag *d, const char *file) {
    if (!file) return NULL;
    for (int i = 0; i < d->nsrc; i++)
        if (d->src[i].file == file || strcmp(d->src[i].file, file) == 0) return &d->src[i];
    return NULL;
}

/* The source line `line` (1-based) and a caret under column `col`.  Tabs in
 * the line are kept in the caret's indentation so it stays aligned. */
static void print_caret(FILE *out, const MilDiagSource *s, int line, int col) {
    if (!s->text || line <= 0) return;
    const char *p = s->text, *end = s->text + s->len;
    int l = 1;
    for (; l < line && p < end; p++)
        if (*p == '\n') l++;
    if (l < line) return; /* past the end of the text */
    const char *q = p;
    while (q < end && *q != '\n') q++;
    size_t n = (size_t)(q - p);
    if (n && p[n - 1] == '\r') n--;
    fprintf(out, "%.*s\n", (int)n, p);
    if (col <= 0) return;
    for (int c = 1; c < col; c++) fputc(((size_t)(c - 1) < n && p[c - 1] == '\t') ? '\t' : ' ', out);
    fputs("^\n", out);
}

void mil_diag_print(const MilDiag *d, FILE *out) {
    for (int i = 0; i < d->n; i++) {
        const MilDiagEntry *e = &d->v[i];
        const MilLoc *l = &e->loc;
        if (l->file && l->line > 0 && l->col > 0) fprintf(out, "%s:%d:%d: ", l->file, l->line, l->col);
        else if (l->file && l->line > 0) fprintf(out, "%s:%d: ", l->file, l->line);
        else if (l->file) fprintf(out, "%s: ", l->file);
        fprintf(out, "%s: %s\n", sev_name(e->sev), e->msg);
        const MilDiagSource *s = find_source(d, l->file);
        if (s) print_caret(out, s, l->line, l->col);
    }
    int max = d->max_errors > 0 ? d->max_errors : MIL_DIAG_MAX_ERRORS;
    if (d->nerrors > max)
        fprintf(out, "too many errors: %d more not shown\n", d->nerrors - max);
}
