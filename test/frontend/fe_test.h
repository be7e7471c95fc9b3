/* test/frontend/fe_test.h -- helpers shared by the frontend tests. */
#ifndef MILC_FE_TEST_H
#define MILC_FE_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include "frontend/frontend.h"
#include "ir/ir.h"

/* Parses NUL-terminated text; on failure logs every diagnostic. */
MilProgram *fe_parse_str(const char *name, const char *text, const MilParseOptions *opt, MilDiag *d);
/* All diagnostics, one formatted line each, in a malloc'd string. */
char *fe_diag_text(const MilDiag *d);
/* mil_diag_print output (source lines and carets) in a malloc'd string. */
char *fe_diag_printed(const MilDiag *d);
/* The i-th error (not note) formatted, or "" when there is none. */
const char *fe_nth_error(const MilDiag *d, int i, char *buf, size_t size);
/* mil_print as a malloc'd string (asserts success). */
char *fe_print(const MilProgram *p, MilSpelling sp, size_t *len);
/* Fixed point: print(sp) -> parse -> print(sp) gives the same bytes. */
void fe_assert_fixed_point(const MilProgram *p, MilSpelling sp, const char *what);
/* The .mil files of a directory, sorted; *n set; free with fe_free_list. */
char **fe_list_mil(const char *dir, int *n);
void fe_free_list(char **v, int n);
/* Deterministic xorshift64* generator. */
unsigned long long fe_rand(unsigned long long *state);

#endif
