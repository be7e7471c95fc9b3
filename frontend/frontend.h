/* frontend/frontend.h -- the MIL text reader (docs/mil-format.md §2-4).
 *
 * Parses `model.mil` text (both the program(1.0) and the program(1.3)
 * spellings) into a MilProgram built with the ir/ builder API.  Syntax and
 * the semantic checks that need the source (literal shapes and element kinds,
 * integer ranges, undefined / duplicate names, unknown ops) are reported into
 * the MilDiag as `file:line:col: error: message`; the parser keeps going after
 * a bad statement and stops after MilDiag.max_errors (default 20) errors.
 * Structural rules of the op table (required arguments, result counts) are
 * mil_verify()'s job, not the parser's.
 */
#ifndef MILC_FRONTEND_H
#define MILC_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>

#include "ir/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct MilParseOptions {
    bool allow_unknown_ops; /* keep unknown op names as MIL_OP_UNKNOWN opaque ops;
                               default: error at the op name's location */
    bool lenient;           /* accept third-party oddities like tensor<int32, [1]>(1) */
} MilParseOptions;

/* Parses len bytes of text (need not be NUL-terminated; any bytes allowed).
 * `file` names the text in diagnostics; the text is registered with
 * mil_diag_add_source so mil_diag_print can show source lines.  opt may be
 * NULL (all options off).  Returns NULL if any error was reported; the
 * program is the caller's (mil_program_free).  The program records the
 * version as written (p->version), whether a newline follows the final `}`
 * (p->trailing_newline) and whether an empty line precedes each function
 * after the first (f->blank_before), so mil_print(p, MIL_SPELLING_SAME)
 * reproduces a coremlc file byte for byte.  The MilLoc.file of every op, argument and
 * attribute points into d's source table: keep d alive while using them.
 * Nothing in the program points into `text`.
 *
 * Both spellings are accepted in any file (a bare `fp32` scalar type is
 * read in a program(1.0) file too), but the spelling that MIL_SPELLING_SAME
 * prints is decided by the version (mil_program_spelling: 1.3 and later print
 * bare scalars, 1.0 to 1.2 `tensor<T, []>`).  The ambiguous third-party
 * `program(1)` follows the file itself: the parser records in p->written the
 * scalar spelling it met first (a bare `fp32` or a `tensor<fp32, []>`), so
 * such a file round-trips in its own spelling.  A version other than 1 or
 * 1.<digits> is kept as written and draws the
 * warning "unknown program version V (expected 1.0 or 1.3)".
 *
 * Float literals are rounded once to their dtype (IEEE round to nearest
 * even).  A finite literal that overflows (rounds to inf, or to NaN for
 * fp8e4m3fn) is an error, "value X is out of range for T"; `inf`, `-inf` and
 * `nan` are the only ways to write non-finite values.  Underflow to zero is
 * not an error.
 *
 * A rank >= 2 tensor literal written as one flat list of exactly the shape's
 * element count is read in row-major order with the warning "flat literal
 * for a rank-R tensor read in row-major order" at its `[`.
 *
 * When more than MilDiag.max_errors errors would be reported, the parse
 * stops and the last diagnostic is a note "too many errors; stopped after N"
 * (file only, no line). */
MilProgram *mil_parse(const char *file, const char *text, size_t len, const MilParseOptions *opt, MilDiag *d);

/* Reads and parses a file.  path "-" reads stdin; a directory (such as a
 * compiled `X.mlmodelc`) means its `model.mil`; a Core ML package
 * (`X.mlpackage`, coreml/coreml.h) is read from its protobuf. */
MilProgram *mil_parse_file(const char *path, const MilParseOptions *opt, MilDiag *d);

#ifdef __cplusplus
}
#endif

#endif /* MILC_FRONTEND_H */
