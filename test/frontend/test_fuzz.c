/* test/frontend/test_fuzz.c -- random mutations of real and own files.
 *
 * Byte flips, deletions, punctuation insertions, chunk duplications and
 * truncations (a fixed-seed, bounded loop): the parser must return, and when
 * it fails it must have reported at least one error.  Each input is copied
 * into an exactly sized buffer so a sanitizer build catches over-reads.
 * When a mutant still parses, it must verify without crashing and be a
 * print -> parse -> print fixed point in all three spellings.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"
#include "testutil.h"

static const char punct[] = "()[]{}<>,;=?-\"/*\\\n 0x.@";

static size_t mutate(unsigned long long *st, char *buf, size_t len, size_t cap) {
    int nmut = 1 + (int)(fe_rand(st) % 4);
    for (int m = 0; m < nmut; m++) {
        size_t at = len ? (size_t)(fe_rand(st) % len) : 0;
        switch (fe_rand(st) % 6) {
        case 0: /* flip a byte to anything */
            if (len) buf[at] = (char)(fe_rand(st) & 0xff);
            break;
        case 1: { /* delete a short run */
            size_t n = 1 + (size_t)(fe_rand(st) % 8);
            if (at + n > len) n = len - at;
            memmove(buf + at, buf + at + n, len - at - n);
            len -= n;
            break;
        }
        case 2: /* insert punctuation */
            if (len + 1 < cap) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = punct[fe_rand(st) % (sizeof punct - 1)];
                len++;
            }
            break;
        case 3: /* truncate */
            if (fe_rand(st) % 4 == 0) len = at;
            break;
        case 4: { /* duplicate a chunk */
            size_t n = 1 + (size_t)(fe_rand(st) % 32);
            if (at + n > len) n = len - at;
            if (len + n < cap) {
                memmove(buf + at + n, buf + at, len - at);
                len += n;
            }
            break;
        }
        case 5: /* swap a digit */
            for (size_t i = at; i < len && i < at + 64; i++)
                if (buf[i] >= '0' && buf[i] <= '9') {
                    buf[i] = (char)('0' + fe_rand(st) % 10);
                    break;
                }
            break;
        }
    }
    return len;
}

static int run_one(const char *src, size_t len, unsigned long long *st, int *parsed) {
    size_t cap = len + 256;
    char *work = malloc(cap);
    memcpy(work, src, len);
    size_t n = mutate(st, work, len, cap);
    char *exact = malloc(n ? n : 1);
    memcpy(exact, work, n);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("mutant.mil", exact, n, NULL, &d);
    int bad = 0;
    if (!p && d.nerrors < 1) {
        cr_log_error("mutant failed without a diagnostic:\n%.*s", (int)(n < 400 ? n : 400), exact);
        bad = 1;
    }
    if (p) {
        (*parsed)++;
        fe_assert_fixed_point(p, MIL_SPELLING_SAME, "mutant");
        fe_assert_fixed_point(p, MIL_SPELLING_1_0, "mutant");
        fe_assert_fixed_point(p, MIL_SPELLING_1_3, "mutant");
        MilDiag v;
        mil_diag_init(&v);
        mil_verify(p, &v);
        mil_diag_free(&v);
    }
    mil_program_free(p);
    mil_diag_free(&d);
    free(exact);
    free(work);
    return bad;
}

static void fuzz_files(char **files, int nfiles, int total, unsigned long long seed) {
    unsigned long long st = seed;
    int bad = 0, parsed = 0, runs = 0;
    for (int i = 0; i < nfiles; i++) {
        size_t len;
        char *src = tu_read_file(files[i], &len);
        cr_assert_not_null(src);
        /* big files get few mutations: each one re-parses the whole file */
        int k = len > 100000 ? 12 : total / nfiles;
        for (int j = 0; j < k; j++, runs++) bad += run_one(src, len, &st, &parsed);
        free(src);
    }
    cr_log_info("%d mutants, %d still parsed", runs, parsed);
    cr_assert_eq(bad, 0);
}

Test(fuzz, corpus_mutations, .timeout = 300) {
    const char *dir = tu_corpus_dir();
    if (!dir) {
        tu_warn("real corpus ABSENT: mutating only the frontend's own files");
        return;
    }
    int n;
    char **files = fe_list_mil(dir, &n);
    fuzz_files(files, n, 3000, 0x1234567ull);
    fe_free_list(files, n);
}

Test(fuzz, own_file_mutations, .timeout = 300) {
    int n;
    char **files = fe_list_mil(tu_src("test/frontend/data"), &n);
    cr_assert(n >= 3);
    fuzz_files(files, n, 3000, 0xfeedbeefull);
    fe_free_list(files, n);
}

Test(fuzz, random_bytes, .timeout = 60) {
    unsigned long long st = 42;
    for (int i = 0; i < 500; i++) {
        size_t n = (size_t)(fe_rand(&st) % 300);
        char *b = malloc(n ? n : 1);
        for (size_t k = 0; k < n; k++) b[k] = (char)(fe_rand(&st) & 0xff);
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = mil_parse("rnd.mil", b, n, NULL, &d);
        cr_assert(p || d.nerrors >= 1);
        mil_program_free(p);
        mil_diag_free(&d);
        free(b);
    }
}
