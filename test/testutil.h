/* test/testutil.h -- small helpers shared by the Criterion tests. */
#ifndef MILC_TESTUTIL_H
#define MILC_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

/* Whole file into a malloc'd NUL-terminated buffer; NULL if unreadable. */
char *tu_read_file(const char *path, size_t *len);
/* Path under the source tree (static buffer rotation of 8). */
const char *tu_src(const char *rel);
/* Path of a built tool, e.g. tu_tool("milc"). */
const char *tu_tool(const char *name);
/* The real corpus directory: $MILC_CORPUS_DIR or ../shared/corpus/real.
 * Returns NULL (and prints a loud warning once) when it is absent. */
const char *tu_corpus_dir(void);
/* Runs a shell command; stdout and stderr captured into malloc'd strings
 * (may be NULL to discard).  Returns the exit status (-1 on failure). */
int tu_run(const char *cmd, char **out, char **err);
/* A fresh temporary directory (removed by the caller with tu_rmrf). */
char *tu_tmpdir(void);
void tu_rmrf(const char *path);
/* A suite that runs tools: *TMP a fresh directory, *OUT and *ERR the last
 * output (NULL at first); fini removes the directory and frees all three. */
void tu_fixture_init(char **tmp, char **out, char **err);
void tu_fixture_fini(char **tmp, char **out, char **err);
/* "DIR/NAME" (static buffer rotation of 64, apart from tu_src's). */
const char *tu_path(const char *dir, const char *name);
/* printf into a static buffer (rotation of 4), e.g. a command line. */
const char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* tu_run of PREFIX followed by the formatted arguments; frees *out and *err
 * first and replaces them with the new output. */
int tu_runf(char **out, char **err, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Runs CMD and asserts that it exits with 0 (stderr in the message). */
void tu_run_ok(const char *cmd);
/* Writes N bytes (or a NUL-terminated text) to PATH; asserts on failure. */
void tu_write_file(const char *path, const void *data, size_t n);
void tu_write_text(const char *path, const char *text);
/* Writes a DT tensor of shape DIMS[RANK] with values VALS as .npy to PATH. */
void tu_write_npy(const char *path, MilDType dt, int rank, const int64_t *dims, const double *vals);
/* Asserts that A and B both exist and have the same bytes. */
void tu_assert_same_file(const char *a, const char *b);
/* A warning on stderr.  (Criterion 2.4's cr_log_warn makes the whole run
 * exit with status 1 even when every test passes, so tests use this.) */
void tu_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
