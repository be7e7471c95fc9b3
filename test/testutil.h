/* test/testutil.h -- small helpers shared by the Criterion tests. */
#ifndef MILC_TESTUTIL_H
#define MILC_TESTUTIL_H
#include <stddef.h>

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
/* A warning on stderr.  (Criterion 2.4's cr_log_warn makes the whole run
 * exit with status 1 even when every test passes, so tests use this.) */
void tu_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
