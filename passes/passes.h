/* passes/passes.h -- the milc optimiser: a pass manager over a table of named
 * passes (passes/pipeline.c), and the passes themselves (one file each).
 *
 * A pass returns >0 when it changed the program, 0 when it did nothing and <0
 * on error (diagnostics in d).  The pipeline is data: -O0 runs nothing but
 * type inference, -O1 inference + cleanup, -O2 adds the ANE-oriented lowering
 * and fusions.  Printing (--print-after, --stats) goes to the FILE the caller
 * gives; the library never prints on its own.
 */
#ifndef MILC_PASSES_H
#define MILC_PASSES_H

#include <stdbool.h>
#include <stdio.h>

#include "ir/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MIL_TARGET_CPU = 0,
    MIL_TARGET_ANE,      /* generic ANE: the conservative limits (M1-M3 family) */
    MIL_TARGET_ANE_M1,   /* A13-A15 family: W, H <= 16384 */
    MIL_TARGET_ANE_M4,   /* A16+ family: W, H <= 65536 */
} MilTarget;

typedef struct MilPassOptions {
    int opt_level;             /* 0, 1 (default), 2 */
    const char *passes;        /* explicit comma-separated list, overrides opt_level */
    const char *print_after;   /* pass name or "all"; NULL = none */
    bool verify_each;          /* run mil_verify after every pass */
    bool stats;                /* ops per kind before/after each pass, time per pass */
    MilTarget target;
    bool strict;               /* legality warnings become errors */
    const char *taps;          /* comma-separated value names to export (forward taps) */
    bool pack_taps;            /* pack taps along channels into one [1, sum C, 1, S] output */
    FILE *out;                 /* where print-after and stats go (tools: stderr) */
    const char *weights_dir;   /* directory that `@model_path` stands for (to read
                                  BLOBFILE data when folding); NULL = unknown */
    char *taps_json;           /* OUT: malloc'd channel map of --taps (JSON), or NULL;
                                  the caller frees it */
    int new_weights;           /* OUT: constants the passes created that belong in a
                                  weight file (mil_const_needs_weight_file) */
    const char *new_weight_name; /* OUT: the first such constant (arena-owned) */
} MilPassOptions;

void mil_pass_options_init(MilPassOptions *o);   /* -O1, cpu target, out = NULL */

/* Runs the pipeline selected by o on every function of p.  Returns the number
 * of errors reported into d (0 = success). */
int mil_pass_run(MilProgram *p, const MilPassOptions *o, MilDiag *d);

/* The weight-file rule for text output.  coremltools sends a constant to
 * weight.bin when it has >= 10 elements and a dtype of fp16, fp32, int8 or
 * uint8 (docs/mil-format.md §4.5); smaller ones stay inline.  A constant that
 * the passes created (not present in the parsed program, e.g. a folded
 * transpose of a BLOBFILE weight) and that falls under that rule cannot be
 * written faithfully as MIL text alone: mil_pass_run counts them into
 * o->new_weights, and the driver refuses `-o FILE.mil` when it is non-zero
 * (use `-o NAME.mlmodelc`, which writes weights/weight.bin).  BLOBFILE
 * constants are never "new": they refer to data that already exists. */
#define MIL_WEIGHT_FILE_MIN_ELEMS 10
bool mil_const_needs_weight_file(const MilConst *c);

/* Names of all registered passes, NULL-terminated (for --help / --passes). */
const char *const *mil_pass_names(void);

/* ---------------------------------------------------------------- passes
 * One file each.  Every pass takes the whole program; >0 changed, 0 no-op,
 * <0 error (diagnostics in d). */
typedef int (*MilPassFn)(MilProgram *p, const MilPassOptions *o, MilDiag *d);

int mil_pass_shape(MilProgram *p, const MilPassOptions *o, MilDiag *d);     /* shape.c */
int mil_pass_fold(MilProgram *p, const MilPassOptions *o, MilDiag *d);      /* cleanup.c */
int mil_pass_identity(MilProgram *p, const MilPassOptions *o, MilDiag *d);  /* cleanup.c */
int mil_pass_cse(MilProgram *p, const MilPassOptions *o, MilDiag *d);       /* cleanup.c */
int mil_pass_dce(MilProgram *p, const MilPassOptions *o, MilDiag *d);       /* cleanup.c */
int mil_pass_cleanup(MilProgram *p, const MilPassOptions *o, MilDiag *d);   /* cleanup.c: all four */
int mil_pass_mm2conv(MilProgram *p, const MilPassOptions *o, MilDiag *d);   /* mm2conv.c */
int mil_pass_rmsnorm(MilProgram *p, const MilPassOptions *o, MilDiag *d);   /* rmsnorm.c */
int mil_pass_attention(MilProgram *p, const MilPassOptions *o, MilDiag *d); /* attention.c */
int mil_pass_sdpa_bwd(MilProgram *p, const MilPassOptions *o, MilDiag *d);  /* sdpa_bwd.c */
int mil_pass_taps(MilProgram *p, const MilPassOptions *o, MilDiag *d);      /* taps.c */
int mil_pass_legality(MilProgram *p, const MilPassOptions *o, MilDiag *d);  /* legality.c */
int mil_pass_layout(MilProgram *p, const MilPassOptions *o, MilDiag *d);    /* layout.c */

/* ------------------------------------------------------- type inference
 *
 * Convention for ops built through the builder: give results a NULL type
 * (mil_op_add_result(op, NULL, name)) and call mil_shape_infer_op(), which
 * sets every NULL result type from the operands.  For results that already
 * have a type (parsed text) the inferred type is checked against it: a
 * mismatch is an error at op->loc.  `?` dims are compatible with anything and
 * propagate.  Ops whose rule is unknown keep their declared types; a NULL
 * result type that cannot be inferred is an error.
 * Returns the number of errors reported into d (d may be NULL: silent). */
int mil_shape_infer_op(MilProgram *p, MilOp *op, MilDiag *d);

/* The inferred type of result `i` of op, NULL when it cannot be inferred
 * (error text in err when non-NULL). */
const MilType *mil_shape_infer_result(MilProgram *p, const MilOp *op, int i, char *err, size_t errlen);

/* ------------------------------------------------------------ autodiff
 * Reverse-mode differentiation (passes/grad.c, issue 9).  Naming contract:
 * a tap is a FUNC_fwd output and a FUNC_bwd input with the SAME name;
 * FUNC_bwd cotangent inputs are named d_<output name>; gradient outputs are
 * named d_<input name> (in FUNC_bwd, or in FUNC_dw for split weight grads;
 * FUNC_dw's inputs are named like the FUNC_bwd inputs / outputs they take:
 * taps, forward inputs, intermediate cotangents such as d_q, listed in the
 * grad map).  The wiring is kept as string attributes of the functions
 * (grad_of, grad_taps, grad_cotangents, grad_inputs, grad_wrt, grad_loss,
 * grad_recompute; with pack_taps grad_packed = the packed tensor's name and
 * grad_packed_taps = "name:offset:channels,..."), which survive the MIL text
 * and .milb round trips. */
typedef enum { MIL_RECOMPUTE_NONE = 0, MIL_RECOMPUTE_CHEAP = 1 } MilRecompute;
typedef struct MilGradOptions {
    const char *func;          /* function to differentiate; NULL = "main" */
    const char *wrt;           /* comma-separated input names; NULL = every floating-point input */
    const char *loss;          /* name of a scalar output whose cotangent is 1; NULL = every output y
                                  gets a cotangent input d_y of its type */
    MilRecompute recompute;    /* default NONE */
    bool split_weight_grads;   /* gradients of matmul/linear/conv weight inputs go to FUNC_dw */
    bool pack_taps;            /* the [1, C, 1, S] taps (one dtype and S) travel as one tensor: FUNC_fwd
                                  concatenates them along channels into an output `taps`, FUNC_bwd takes
                                  that input and slices them out; offsets in grad_packed_taps */
} MilGradOptions;
void mil_grad_options_init(MilGradOptions *o);
/* Adds FUNC_fwd (FUNC + taps as extra outputs), FUNC_bwd (inputs: taps (same names as the fwd tap
 * outputs), cotangents d_<out>, needed forward inputs; outputs d_<input> per wrt input in input order)
 * and, with split_weight_grads, FUNC_dw, to p; FUNC itself is unchanged.  Returns the number of errors
 * reported into d (0 = success).  Run mil_pass_run afterwards for -O2 etc. */
int mil_grad(MilProgram *p, const MilGradOptions *o, MilDiag *d);
/* The wiring of FUNC's grad functions as JSON (malloc'd; caller frees), NULL when p has none. */
char *mil_grad_map_json(const MilProgram *p, const char *func);
/* Does passes/grad.c have a VJP rule for ops of kind k?  (ir/ops.def's OPF_GRAD
 * marks the same ops; a test keeps the two in step.) */
bool mil_grad_has_rule(MilOpKind k);
#ifdef __cplusplus
}
#endif

#endif /* MILC_PASSES_H */
