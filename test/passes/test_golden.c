/* test/passes/test_golden.c -- the golden tests of the optimiser.
 *
 * Each .mil file in test/passes holds
 *   // RUN: <milc pass options>          (e.g. --passes=cse,dce, -O2 --target=ane)
 *   the input program
 *   // expect:                           then the expected printed IR, verbatim
 * or, instead of `// expect:`, one or more
 *   // error: LINE:COL: message          expected error diagnostics (exact)
 *   // warning: LINE:COL: message        expected warnings (exact, when any is given)
 * One Criterion test walks the directory; --verify-each is always on.
 * MILC_GOLDEN_UPDATE=1 rewrites the expected IR of passing-by-construction
 * files (for writing new tests; review the diff).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "testutil.h"

static void parse_run_line(const char *text, MilPassOptions *o, char *storage, size_t cap) {
    const char *r = strstr(text, "// RUN:");
    if (!r) return;
    r += 7;
    size_t n = strcspn(r, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(storage, r, n);
    storage[n] = 0;
    for (char *tok = strtok(storage, " \t"); tok; tok = strtok(NULL, " \t")) {
        if (!strncmp(tok, "--passes=", 9)) o->passes = tok + 9;
        else if (!strcmp(tok, "-O0") || !strcmp(tok, "-O1") || !strcmp(tok, "-O2")) o->opt_level = tok[2] - '0';
        else if (!strcmp(tok, "--target=cpu")) o->target = MIL_TARGET_CPU;
        else if (!strcmp(tok, "--target=ane")) o->target = MIL_TARGET_ANE;
        else if (!strcmp(tok, "--target=ane-m1")) o->target = MIL_TARGET_ANE_M1;
        else if (!strcmp(tok, "--target=ane-m4")) o->target = MIL_TARGET_ANE_M4;
        else if (!strcmp(tok, "--strict")) o->strict = true;
        else if (!strcmp(tok, "--pack-taps")) o->pack_taps = true;
        else if (!strncmp(tok, "--taps=", 7)) o->taps = tok + 7;
        else tu_warn("unknown RUN option %s", tok);
    }
}

static char *trim_trailing(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

/* Collect `// <kind>: ...` lines (kind = error / warning) into out, one per line. */
static int collect(const char *text, const char *kind, char *out, size_t cap) {
    char pat[32];
    snprintf(pat, sizeof pat, "// %s: ", kind);
    size_t k = 0;
    int n = 0;
    out[0] = 0;
    for (const char *p = strstr(text, pat); p; p = strstr(p + 1, pat)) {
        const char *s = p + strlen(pat);
        size_t len = strcspn(s, "\n");
        k += (size_t)snprintf(out + k, cap - k, "%s: %.*s\n", kind, (int)len, s);
        n++;
    }
    return n;
}

/* Diagnostics of severity sev as "kind: LINE:COL: msg" lines. */
static void diags(const MilDiag *d, MilSeverity sev, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < d->n; i++) {
        if (d->v[i].sev != sev) continue;
        k += (size_t)snprintf(out + k, cap - k, "%s: %d:%d: %s\n", sev == MIL_SEV_ERROR ? "error" : "warning",
                              d->v[i].loc.line, d->v[i].loc.col, d->v[i].msg);
    }
}

static int run_file(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len;
    char *text = tu_read_file(path, &len);
    if (!text) {
        cr_log_error("%s: unreadable", name);
        return 1;
    }
    int fails = 0;
    MilPassOptions o;
    mil_pass_options_init(&o);
    char runbuf[512];
    parse_run_line(text, &o, runbuf, sizeof runbuf);
    o.verify_each = true;
    char *expect = strstr(text, "// expect:");
    size_t in_len = expect ? (size_t)(expect - text) : len;

    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions po = {0};
    MilProgram *p = mil_parse(name, text, in_len, &po, &d);
    if (p && mil_verify(p, &d) == 0) mil_pass_run(p, &o, &d);

    static char want[16384], got[16384];
    int nerr = collect(text, "error", want, sizeof want);
    if (nerr) {
        diags(&d, MIL_SEV_ERROR, got, sizeof got);
        if (strcmp(want, got)) {
            cr_log_error("%s: diagnostics differ\n--- expected\n%s--- got\n%s", name, want, got);
            fails++;
        }
    }
    int nwarn = collect(text, "warning", want, sizeof want);
    if (nwarn) {
        diags(&d, MIL_SEV_WARNING, got, sizeof got);
        if (strcmp(want, got)) {
            cr_log_error("%s: warnings differ\n--- expected\n%s--- got\n%s", name, want, got);
            fails++;
        }
    }
    if (!nerr && d.nerrors) {
        diags(&d, MIL_SEV_ERROR, got, sizeof got);
        cr_log_error("%s: unexpected errors:\n%s", name, got);
        fails++;
    }
    if (expect && p && !d.nerrors) {
        char *printed = mil_print(p, MIL_SPELLING_SAME, NULL);
        char *exp_text = expect + strlen("// expect:");
        while (*exp_text == '\n') exp_text++;
        char *e = trim_trailing(strdup(exp_text));
        char *g = trim_trailing(printed ? printed : strdup(""));
        if (strcmp(e, g)) {
            if (getenv("MILC_GOLDEN_UPDATE")) {
                FILE *fp = fopen(path, "wb");
                fwrite(text, 1, (size_t)(expect - text), fp);
                fprintf(fp, "// expect:\n%s\n", g);
                fclose(fp);
                tu_warn("%s: expected IR rewritten", name);
            } else {
                cr_log_error("%s: printed IR differs\n--- expected\n%s\n--- got\n%s", name, e, g);
                fails++;
            }
        }
        free(e);
        free(g);
    } else if (!expect && !nerr) {
        cr_log_error("%s: no `// expect:` and no `// error:` lines", name);
        fails++;
    }
    mil_program_free(p);
    free(o.taps_json);
    mil_diag_free(&d);
    free(text);
    return fails;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

Test(passes, golden_files, .timeout = 120) {
    const char *dir = tu_src("test/passes");
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp, "cannot open %s", dir);
    char *names[512];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) && n < 512) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".mil")) names[n++] = strdup(de->d_name);
    }
    closedir(dp);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    cr_assert_gt(n, 0, "no golden files in %s", dir);
    int fails = 0;
    for (int i = 0; i < n; i++) {
        fails += run_file(dir, names[i]);
        free(names[i]);
    }
    cr_assert_eq(fails, 0, "%d golden file(s) failed (see the log)", fails);
}
