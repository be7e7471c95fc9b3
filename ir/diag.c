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
 * texts registered with mil_diag_add_source give the caret lines; a line
 * longer than 121 characters is shown as a window of 60 characters either
 * side of the caret, with `…` where it was cut (print_caret), so one mistake
 * on a 200 KB constant line prints two short lines, not 400 KB.
 */
#include "ir/ir_int.h"

#include <stdarg.h>
#include <stdbool.h>
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
    char small[256]; /* most messages fit: formatted once */
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    char *msg = malloc((size_t)need + 1);
    if (!msg) return;
    if ((size_t)need < sizeof small) {
        memcpy(msg, small, (size_t)need + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)need + 1, fmt, ap);
        va_end(ap);
    }
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

/* Characters of context shown on each side of the caret: a longer line is
 * cut to a window of 2 * DIAG_CONTEXT + 1 characters around it. */
#define DIAG_CONTEXT 60

/* A UTF-8 continuation byte: not the start of a character. */
static bool cont_byte(char c) { return ((unsigned char)c & 0xc0) == 0x80; }

/* Byte offset of the k-th character start at or after byte i of p[0, n). */
static size_t skip_chars(const char *p, size_t n, size_t i, size_t k) {
    for (; i < n && k > 0; k--)
        for (i++; i < n && cont_byte(p[i]); i++) {}
    return i;
}

/* The source line `line` (1-based) and a caret under byte column `col`.
 * The caret's indentation copies the line's tabs and gives one space per
 * other character (a multi-byte UTF-8 character is one), so it lines up
 * under the character at `col`.  A line of more than 2 * DIAG_CONTEXT + 1
 * characters is shown as a window of that many characters around the caret
 * (DIAG_CONTEXT each side, moved inward at the ends of the line), cut at
 * character boundaries, with `…` where text was cut. */
static void print_caret(FILE *out, const MilDiagSource *s, int line, int col) {
    if (!s->text || line <= 0) return;
    const char *p = s->text, *end = s->text + s->len;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return; /* past the end of the text */
        p = nl + 1;
    }
    const char *q = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((q ? q : end) - p);
    if (n && p[n - 1] == '\r') n--;
    size_t cb = col > 0 ? (size_t)col - 1 : 0, from = 0, to = n, width = 2 * DIAG_CONTEXT + 1;
    bool cut_left = false, cut_right = false;
    if (n > width) { /* maybe more characters than the window (never when n bytes fit) */
        /* caret and line length in characters; a caret past the end of the
         * line stands that many columns after it */
        size_t nchars = 0, kc = 0;
        for (size_t i = 0; i < n; i++)
            if (!cont_byte(p[i])) {
                if (i < cb) kc++;
                nchars++;
            }
        if (cb > n) kc += cb - n;
        if (nchars > width) {
            size_t first = kc > DIAG_CONTEXT ? kc - DIAG_CONTEXT : 0; /* characters [first, first + width) */
            if (first + width > nchars) first = nchars - width;
            from = skip_chars(p, n, 0, first);
            to = skip_chars(p, n, from, width);
            cut_left = first > 0;
            cut_right = to < n;
        }
    }
    fprintf(out, "%s%.*s%s\n", cut_left ? "\xe2\x80\xa6" : "", (int)(to - from), p + from, cut_right ? "\xe2\x80\xa6" : "");
    if (col <= 0) return;
    char pad[256]; /* the caret line, written in pieces */
    size_t k = 0;
    if (cut_left) pad[k++] = ' ';
    for (size_t i = from; i < cb; i++) {
        if (i < n && cont_byte(p[i])) continue;
        pad[k++] = i < n && p[i] == '\t' ? '\t' : ' ';
        if (k == sizeof pad) {
            fwrite(pad, 1, k, out);
            k = 0;
        }
    }
    fwrite(pad, 1, k, out);
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
