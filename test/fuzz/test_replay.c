/* test/fuzz/test_replay.c -- the fuzz regressions in ctest: every input kept
 * in test/fuzz/corpus/regressions goes through one fuzz target's
 * LLVMFuzzerTestOneInput (linked in: test_fuzz_parse, test_fuzz_passes)
 * without libFuzzer, so an input that once crashed, aborted or leaked (the
 * last one under `make check SANITIZE=1`: LeakSanitizer is asked after every
 * input, since a leak report at the exit of Criterion's worker would not
 * fail the test) fails make check if it does again.  Name a new reproducer
 * after what it found. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

Test(fuzz, regressions_replay) {
    const char *dir = tu_src("test/fuzz/corpus/regressions");
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t len = 0;
        char *text = tu_read_file(tu_path(dir, e->d_name), &len);
        cr_assert_not_null(text, "cannot read %s", e->d_name);
        fprintf(stderr, "replay: %s\n", e->d_name); /* names the input if it crashes */
        /* an exact-size copy, so ASan sees a read past the end */
        char *copy = malloc(len ? len : 1);
        cr_assert_not_null(copy);
        memcpy(copy, text, len);
        cr_assert_eq(LLVMFuzzerTestOneInput((const uint8_t *)copy, len), 0, "%s", e->d_name);
        free(copy);
        free(text);
#ifdef HAVE_LSAN
        cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "%s leaks (the report is above)", e->d_name);
#endif
        n++;
    }
    closedir(d);
    cr_assert_gt(n, 0, "no inputs in %s", dir);
}
