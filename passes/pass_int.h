/* passes/pass_int.h -- what the passes/ files share and nobody else
 * includes: the shared rewrite driver (passes/rewrite.c), small builders that
 * insert ops before a given op, and accessors for constant arguments.
 *
 * Conventions:
 *  - A pass that builds an op gives its results a NULL type and then calls
 *    mil_shape_infer_op(), which fills them in (passes.h documents this).
 *  - Rewrites never delete ops themselves: they redirect uses
 *    (mil_func_replace_uses) and leave the dead ops to the driver's DCE.
 */
#ifndef MILC_PASS_INT_H
#define MILC_PASS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "passes/passes.h"

/* ------------------------------------------------ shared rewrite driver */

/* A local rewrite: root op kind, a rule that both matches and rewrites (it
 * returns true when it changed the function), and its identity in a comment
 * next to the table row. */
typedef struct MilRule {
    MilOpKind root;
    bool (*apply)(MilFunc *f, MilOp *op, void *ctx);
    const char *name;
} MilRule;

/* Runs the rules over f until nothing matches (or `max_iters` sweeps), with
 * dead-code elimination between sweeps.  Rules are indexed by root op kind.
 * Returns the number of rewrites applied. */
int mil_rewrite_fixpoint(MilFunc *f, const MilRule *rules, int nrules, void *ctx);

/* Use-count bookkeeping of the driver (passes/rewrite.c): no-ops unless the
 * driver is applying rules to f.  use_track_count is the current number of
 * uses of v (arguments of ops in the block + outputs), -1 when unknown. */
void use_track_new_op(MilFunc *f, const MilOp *op);
int use_track_count(MilFunc *f, const MilValue *v);
void use_track_replace(MilFunc *f, MilValue *from, MilValue *to, int n);
/* The same bookkeeping for a pass's own loop, from fresh use counts:
 * begin (false if tracking is already on), sync where a recount would be
 * done (false: recount after all), end. */
bool use_track_begin(MilFunc *f);
bool use_track_sync(MilFunc *f);
void use_track_end(MilFunc *f);

/* Forget that the current use counts are exact (passes/rewrite.c): call
 * after changing uses other than through pb_finish / replace_value. */
void use_counts_dirty(void);

/* Dead-code elimination of ops without side effects whose results are unused.
 * Returns the number of ops removed. */
int mil_dce_func(MilFunc *f);

/* Collapses chains of reshape / transpose ops into at most two ops
 * (passes/layout.c).  Returns the number of chains rewritten. */
int mil_layout_collapse_func(MilFunc *f);

/* ---------------------------------------------------------- builders */

/* A const op inserted before `before` (NULL = append). */
MilValue *pb_const(MilFunc *f, MilOp *before, MilConst *c, const char *base);
MilValue *pb_const_i32s(MilFunc *f, MilOp *before, int n, const int64_t *v, const char *base);
MilValue *pb_const_bool(MilFunc *f, MilOp *before, bool v, const char *base);
MilValue *pb_const_str(MilFunc *f, MilOp *before, const char *s, const char *base);
MilValue *pb_const_scalar(MilFunc *f, MilOp *before, MilDType dt, double v, const char *base);
/* A new op of kind k before `before`; args are added by the caller, then
 * pb_finish() adds one result per table entry, infers the types and inserts. */
MilOp *pb_op(MilFunc *f, MilOpKind k, MilLoc loc);
MilValue *pb_finish(MilFunc *f, MilOp *op, MilOp *before, const char *base);

MilValue *pb_reshape(MilFunc *f, MilOp *before, MilValue *x, int rank, const int64_t *dims, const char *base);
MilValue *pb_transpose(MilFunc *f, MilOp *before, MilValue *x, int rank, const int64_t *perm, const char *base);
MilValue *pb_binary(MilFunc *f, MilOp *before, MilOpKind k, MilValue *x, MilValue *y, const char *base);

/* mil_func_unique_name(f, base), with "var" for an empty base. */
const char *pass_unique_name(MilFunc *f, const char *base);
/* Called first by every public pass entry: use_counts_dirty(). */
void pass_enter(void);

/* ------------------------------------------------------------ accessors */

/* The value bound to argument `name` (NULL if absent or a literal). */
MilValue *arg_value(const MilOp *op, const char *name);
/* The type of argument `name` (value or literal), NULL if absent. */
const MilType *arg_type(const MilOp *op, const char *name);
/* Constant argument as int list (returns count, -1 if absent/not const). */
int arg_ints(const MilOp *op, const char *name, int64_t *out, int max);
bool arg_int(const MilOp *op, const char *name, int64_t *out);
bool arg_bool(const MilOp *op, const char *name, bool dflt);
bool arg_float(const MilOp *op, const char *name, double *out);
const char *arg_str(const MilOp *op, const char *name);
/* True when the argument is a compile-time constant (literal or const op). */
bool arg_is_const(const MilOp *op, const char *name);
/* Single-element constant value of v (any shape with numel 1). */
bool value_scalar(const MilValue *v, double *out);
/* Is v a constant whose every element equals x? */
bool value_all_equal(const MilValue *v, double x);

/* Tensor type helpers. */
bool ty_tensor(const MilType *t);
bool ty_known(const MilType *t);      /* tensor with no `?` dim */
int ty_fmt(const MilType *t, char *buf, size_t n);

/* The unique op using v (NULL if 0 or >1 uses).  Needs fill_uses. */
MilOp *single_user(MilFunc *f, MilValue *v);
/* Does op (any argument) use v? */
bool op_uses(const MilOp *op, const MilValue *v);
/* Redirect every use of `from` to `to`, keeping function output names (to
 * is renamed to from's name).  Returns false, changing nothing, when from is
 * an output and `to` is a parameter or another output. */
bool replace_value(MilFunc *f, MilValue *from, MilValue *to);
/* replace_value without touching the op arguments: renames and function
 * outputs as replace_value; the caller redirects the argument uses itself. */
bool replace_value_keep_uses(MilFunc *f, MilValue *from, MilValue *to);
/* Is v a function output? */
bool value_is_output(const MilFunc *f, const MilValue *v);

/* Inline data of a constant: inline tensor data, or blob data read via the
 * weights directory registered with pass_set_weights_dir (malloc'd copy in
 * fp32 when *f32 requested).  Returns NULL when not available. */
float *const_to_f32(const MilConst *c, int64_t *count);
void pass_set_weights_dir(const char *dir);
/* The count elements of a tensor constant (inline with every element
 * present, or fp16/fp32 BLOBFILE data read in place) in their storage form
 * (mil_dtype_storage_size bytes each), without conversion; valid until
 * const_storage_release(*hold) (*hold may be NULL).  NULL when not
 * available. */
typedef struct ConstHold ConstHold;
const void *const_storage(const MilConst *c, int64_t *count, ConstHold **hold);
void const_storage_release(ConstHold *hold);
/* A tensor constant of type t from fp32 data, converted to t's dtype. */
MilConst *const_from_f32(MilProgram *p, const MilType *t, const float *data);

/* Per-run context shared by the passes. */
typedef struct PassCtx {
    const MilPassOptions *o;
    MilDiag *d;
} PassCtx;

#endif /* MILC_PASS_INT_H */
