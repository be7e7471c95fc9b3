/* test/ir/test_verify.c -- the verifier: one broken program per rule, with
 * the exact message and location, plus programs that must verify clean. */
#include <criterion/criterion.h>
#include <string.h>

#include "ir/ir.h"

/* ------------------------------------------------------------- helpers */

static MilLoc L(int line, int col) { return (MilLoc){ "t.mil", line, col }; }

typedef struct Fix {
    MilProgram *p;
    MilFunc *f;
    const MilType *t;     /* tensor<fp16, [1, 4]> */
    const MilType *t32;   /* tensor<fp32, [1, 4]> */
    const MilType *tb;    /* tensor<bool, [1, 4]> */
    MilValue *x;          /* parameter x : t */
} Fix;

static Fix fix(void) {
    Fix F;
    F.p = mil_program_new("1.3");
    F.f = mil_func_new(F.p, "main", "ios18");
    F.f->loc = L(2, 5);
    F.f->body.outs_loc = L(20, 9);
    int64_t d[] = { 1, 4 };
    F.t = mil_type_tensor(F.p, MIL_DT_FP16, 2, d);
    F.t32 = mil_type_tensor(F.p, MIL_DT_FP32, 2, d);
    F.tb = mil_type_tensor(F.p, MIL_DT_BOOL, 2, d);
    F.x = mil_func_add_param(F.f, F.t, "x");
    return F;
}

/* Appends an op of kind k at line `line`, col 13. */
static MilOp *op_at(Fix *F, MilOpKind k, int line) {
    MilOp *op = mil_op_new(F->f, k, NULL);
    op->loc = L(line, 13);
    mil_block_append(&F->f->body, op);
    return op;
}

/* Appends an op of kind k at `line` whose argument x is the parameter x. */
static MilOp *op_x(Fix *F, MilOpKind k, int line) {
    MilOp *op = op_at(F, k, line);
    mil_op_add_arg(op, "x", F->x);
    return op;
}

/* A split of x on axis 1 at `line`; the test adds the rest. */
static MilOp *split_x(Fix *F, int line) {
    MilOp *sp = op_x(F, MIL_OP_SPLIT, line);
    mil_op_add_arg_const(sp, "axis", mil_const_scalar_int(F->p, MIL_DT_INT32, 1));
    return sp;
}

static MilValue *unary(Fix *F, MilOpKind k, int line, MilValue *x, const MilType *rt, const char *res) {
    MilOp *op = op_at(F, k, line);
    mil_op_add_arg(op, "x", x);
    return mil_op_add_result(op, rt, res);
}

static MilValue *konst(Fix *F, int line, MilConst *c, const char *res) {
    MilOp *op = op_at(F, MIL_OP_CONST, line);
    mil_op_set_attr(op, "val", c);
    return mil_op_add_result(op, c->type, res);
}

/* Verifies, checks the error count, and that diagnostic 0 reads `first`. */
static void expect(Fix *F, int nerrors, const char *first) {
    MilDiag d;
    mil_diag_init(&d);
    int n = mil_verify(F->p, &d);
    char buf[512] = "";
    if (d.n) mil_diag_format(&d, 0, buf, sizeof buf);
    cr_assert_eq(n, nerrors, "expected %d errors, got %d; first: %s", nerrors, n, buf);
    cr_assert_eq(d.nerrors, n);
    if (first) cr_assert_str_eq(buf, first);
    mil_diag_free(&d);
    mil_program_free(F->p);
}

/* -------------------------------------------------------------- positive */

Test(verify, clean_program) {
    Fix F = fix();
    MilProgram *p = F.p;
    MilValue *r = unary(&F, MIL_OP_RELU, 3, F.x, F.t, "r");
    MilValue *two = konst(&F, 4, mil_const_scalar_float(p, MIL_DT_FP16, 2.0), "two");
    MilOp *add = op_at(&F, MIL_OP_ADD, 5);
    mil_op_add_arg(add, "x", r);
    mil_op_add_arg(add, "y", two);
    mil_op_set_attr(add, "name", mil_const_string(p, "add_0"));
    MilValue *s = mil_op_add_result(add, F.t, "s");
    /* split by a const num_splits, then concat of a tuple */
    int64_t dh[] = { 1, 2 };
    const MilType *th = mil_type_tensor(p, MIL_DT_FP16, 2, dh);
    MilOp *sp = op_at(&F, MIL_OP_SPLIT, 6);
    mil_op_add_arg(sp, "x", s);
    mil_op_add_arg_const(sp, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 1));
    mil_op_add_arg(sp, "num_splits", konst(&F, 6, mil_const_scalar_int(p, MIL_DT_INT32, 2), "ns"));
    mil_block_remove(&F.f->body, sp); /* move split after its const */
    mil_block_append(&F.f->body, sp);
    MilValue *a = mil_op_add_result(sp, th, "a");
    MilValue *b = mil_op_add_result(sp, th, "b");
    MilOp *cat = op_at(&F, MIL_OP_CONCAT, 7);
    mil_op_add_arg_tuple(cat, "values", 2, (MilBinding[]){ { .value = b }, { .value = a } });
    mil_op_add_arg_const(cat, "axis", mil_const_scalar_int(p, MIL_DT_INT32, -1));
    MilValue *c = mil_op_add_result(cat, F.t, "c");
    /* a single value for a variadic argument is accepted */
    MilOp *st = op_at(&F, MIL_OP_STACK, 8);
    mil_op_add_arg(st, "values", c);
    mil_op_add_arg_const(st, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 0));
    int64_t d3[] = { 1, 1, 4 };
    MilValue *stk = mil_op_add_result(st, mil_type_tensor(p, MIL_DT_FP16, 3, d3), "stk");
    /* comparisons and casts */
    MilValue *g = mil_op_add_result(op_at(&F, MIL_OP_GREATER, 9), F.tb, "g");
    mil_op_add_arg(g->def, "x", c);
    mil_op_add_arg(g->def, "y", two);
    MilOp *cs = op_at(&F, MIL_OP_CAST, 10);
    mil_op_add_arg(cs, "x", g);
    mil_op_add_arg_const(cs, "dtype", mil_const_string(p, "fp32"));
    MilValue *cf = mil_op_add_result(cs, F.t32, "cf");
    /* iOS16 constexpr with attribute parameters feeding an A_CONST argument */
    int64_t d4[] = { 4 };
    MilOp *cx = op_at(&F, MIL_OP_CONSTEXPR_AFFINE_DEQUANTIZE, 11);
    mil_op_set_attr(cx, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 0));
    mil_op_set_attr(cx, "quantized_data", mil_const_blob(p, mil_type_tensor(p, MIL_DT_INT8, 1, d4), "@model_path/w.bin", 64));
    mil_op_set_attr(cx, "scale", mil_const_scalar_float(p, MIL_DT_FP32, 0.5));
    mil_op_set_attr(cx, "zero_point", mil_const_scalar_int(p, MIL_DT_INT8, 0));
    mil_op_set_attr(cx, "name", mil_const_string(p, "dq"));
    MilValue *gam = mil_op_add_result(cx, mil_type_tensor(p, MIL_DT_FP32, 1, d4), "gamma");
    MilOp *ln = op_at(&F, MIL_OP_LAYER_NORM, 12);
    mil_op_add_arg(ln, "x", cf);
    mil_op_add_arg(ln, "gamma", gam);
    MilValue *lnv = mil_op_add_result(ln, F.t32, "ln");
    /* blob const whose declared type has the same dtype and rank */
    int64_t d8[] = { 8 };
    MilValue *w = konst(&F, 13, mil_const_blob(p, mil_type_tensor(p, MIL_DT_FP32, 1, d8), "@model_path/w.bin", 128), "w");
    w->type = mil_type_tensor(p, MIL_DT_FP32, 1, d4);
    /* unknown op: accepted opaquely */
    MilOp *u = mil_op_new(F.f, MIL_OP_UNKNOWN, "frobnicate");
    u->loc = L(14, 13);
    mil_op_add_arg(u, "anything", stk);
    mil_op_add_arg_tuple(u, "many", 2, (MilBinding[]){ { .value = a }, { .value = w } });
    mil_block_append(&F.f->body, u);
    /* zero-result op */
    MilOp *ws = op_at(&F, MIL_OP_WRITE_STATE, 15);
    mil_op_add_arg(ws, "input", mil_func_add_param(F.f, mil_type_state(p, F.t), "st"));
    mil_op_add_arg(ws, "data", c);
    /* function attribute with a dict whose value is more specific than declared */
    const MilType *s_t = mil_type_scalar(p, MIL_DT_STRING);
    int64_t unk[] = { MIL_DIM_UNKNOWN };
    const MilType *dt = mil_type_dict(p, s_t, mil_type_tensor(p, MIL_DT_INT32, 1, unk));
    int32_t dims[] = { 1, 4 };
    int64_t two_[] = { 2 };
    MilConst *kv[] = { mil_const_string(p, "x"), mil_const_tensor(p, mil_type_tensor(p, MIL_DT_INT32, 1, two_), dims, 2) };
    mil_func_set_attr(F.f, "DefaultShapes", mil_const_aggregate(p, MIL_CONST_DICT, dt, 2, kv));
    mil_func_add_output(F.f, lnv);
    mil_func_add_output(F.f, F.x);
    expect(&F, 0, NULL);
}

/* --------------------------------------------------------------- SSA */

Test(verify, redefinition_of_value) {
    Fix F = fix();
    MilValue *r = unary(&F, MIL_OP_RELU, 3, F.x, F.t, "r");
    unary(&F, MIL_OP_RELU, 4, r, F.t, "r");
    expect(&F, 1, "t.mil:4:13: error: redefinition of value 'r'");
}

Test(verify, redefinition_of_parameter) {
    Fix F = fix();
    mil_func_add_param(F.f, F.t, "x");
    expect(&F, 1, "t.mil:2:5: error: redefinition of value 'x'");
}

Test(verify, result_redefines_parameter) {
    Fix F = fix();
    unary(&F, MIL_OP_RELU, 3, F.x, F.t, "x");
    expect(&F, 1, "t.mil:3:13: error: redefinition of value 'x'");
}

Test(verify, use_before_definition) {
    Fix F = fix();
    MilOp *first = op_at(&F, MIL_OP_RELU, 3);
    MilValue *later = unary(&F, MIL_OP_RELU, 4, F.x, F.t, "later");
    mil_op_add_arg(first, "x", later);
    first->args[0].loc = L(3, 30);
    mil_op_add_result(first, F.t, "r");
    expect(&F, 1, "t.mil:3:30: error: value 'later' is used before its definition");
}

Test(verify, use_of_own_result) {
    Fix F = fix();
    MilOp *op = op_at(&F, MIL_OP_RELU, 3);
    MilValue *r = mil_op_add_result(op, F.t, "r");
    mil_op_add_arg(op, "x", r);
    expect(&F, 1, "t.mil:3:13: error: value 'r' is used before its definition");
}

Test(verify, use_of_value_from_other_function) {
    Fix F = fix();
    MilFunc *g = mil_func_new(F.p, "other", "ios18");
    MilValue *gx = mil_func_add_param(g, F.t, "gx");
    unary(&F, MIL_OP_RELU, 3, gx, F.t, "r");
    expect(&F, 1, "t.mil:3:13: error: use of undefined value 'gx'");
}

Test(verify, output_not_defined) {
    Fix F = fix();
    MilValue *r = unary(&F, MIL_OP_RELU, 3, F.x, F.t, "r");
    mil_block_remove(&F.f->body, r->def);
    mil_func_add_output(F.f, r);
    expect(&F, 1, "t.mil:20:9: error: output 'r' of function 'main' is not defined");
}

Test(verify, redefinition_of_function) {
    Fix F = fix();
    MilFunc *g = mil_func_new(F.p, "main", "ios18");
    g->loc = L(30, 5);
    expect(&F, 1, "t.mil:30:5: error: redefinition of function 'main'");
}

/* ------------------------------------------------------------ arguments */

Test(verify, missing_required_argument) {
    Fix F = fix();
    MilOp *add = op_x(&F, MIL_OP_ADD, 3);
    mil_op_add_result(add, F.t, "s");
    expect(&F, 1, "t.mil:3:13: error: missing required argument 'y' of op 'add'");
}

Test(verify, unknown_argument_uses_op_location) {
    Fix F = fix();
    MilOp *r = op_x(&F, MIL_OP_RELU, 3);
    mil_op_add_arg(r, "alpha", F.x);
    r->args[1].loc = L(3, 40);
    mil_op_add_result(r, F.t, "r");
    expect(&F, 1, "t.mil:3:13: error: unknown argument 'alpha' of op 'relu'");
}

Test(verify, duplicate_argument) {
    Fix F = fix();
    MilOp *r = op_x(&F, MIL_OP_RELU, 3);
    mil_op_add_arg(r, "x", F.x);
    r->args[1].loc = L(3, 35);
    mil_op_add_result(r, F.t, "r");
    expect(&F, 1, "t.mil:3:35: error: duplicate argument 'x' of op 'relu'");
}

Test(verify, const_argument_from_parameter) {
    Fix F = fix();
    int64_t d[] = { 4 };
    MilValue *ax = mil_func_add_param(F.f, mil_type_tensor(F.p, MIL_DT_INT32, 1, d), "ax");
    MilOp *rs = op_x(&F, MIL_OP_REDUCE_SUM, 3);
    mil_op_add_arg(rs, "axes", ax);
    rs->args[1].loc = L(3, 44);
    mil_op_add_result(rs, F.t, "s");
    expect(&F, 1, "t.mil:3:44: error: argument 'axes' of op 'reduce_sum' must be a constant");
}

Test(verify, const_argument_from_runtime_op) {
    Fix F = fix();
    MilValue *shp = unary(&F, MIL_OP_SHAPE, 3, F.x, mil_type_tensor(F.p, MIL_DT_INT32, 1, (int64_t[]){ 2 }), "shp");
    MilOp *tr = op_x(&F, MIL_OP_TRANSPOSE, 4);
    mil_op_add_arg(tr, "perm", shp); /* no arg loc: falls back to the op's */
    mil_op_add_result(tr, F.t, "t");
    expect(&F, 1, "t.mil:4:13: error: argument 'perm' of op 'transpose' must be a constant");
}

Test(verify, tuple_for_non_variadic_argument) {
    Fix F = fix();
    MilOp *add = op_at(&F, MIL_OP_ADD, 3);
    mil_op_add_arg_tuple(add, "x", 2, (MilBinding[]){ { .value = F.x }, { .value = F.x } });
    add->args[0].loc = L(3, 20);
    mil_op_add_arg(add, "y", F.x);
    mil_op_add_result(add, F.t, "s");
    expect(&F, 1, "t.mil:3:20: error: argument 'x' of op 'add' does not take a tuple");
}

Test(verify, single_element_tuple_for_non_variadic_is_accepted) {
    Fix F = fix();
    MilOp *add = op_at(&F, MIL_OP_ADD, 3);
    mil_op_add_arg_tuple(add, "x", 1, (MilBinding[]){ { .value = F.x } });
    mil_op_add_arg(add, "y", F.x);
    mil_op_add_result(add, F.t, "s");
    expect(&F, 0, NULL);
}

Test(verify, attr_style_required_arguments) {
    Fix F = fix();
    int64_t d4[] = { 4 };
    MilOp *cx = op_at(&F, MIL_OP_CONSTEXPR_AFFINE_DEQUANTIZE, 3);
    mil_op_set_attr(cx, "axis", mil_const_scalar_int(F.p, MIL_DT_INT32, 0));
    mil_op_set_attr(cx, "scale", mil_const_scalar_float(F.p, MIL_DT_FP32, 0.5));
    mil_op_set_attr(cx, "zero_point", mil_const_scalar_int(F.p, MIL_DT_INT8, 0));
    mil_op_add_result(cx, mil_type_tensor(F.p, MIL_DT_FP32, 1, d4), "w");
    expect(&F, 1, "t.mil:3:13: error: missing required argument 'quantized_data' of op 'constexpr_affine_dequantize'");
}

Test(verify, unknown_op_is_opaque_but_uses_are_checked) {
    Fix F = fix();
    MilOp *u = mil_op_new(F.f, MIL_OP_UNKNOWN, "mystery");
    u->loc = L(3, 13);
    mil_op_add_arg(u, "whatever", F.x);
    mil_op_add_arg_tuple(u, "t", 2, (MilBinding[]){ { .value = F.x }, { .value = F.x } });
    mil_block_append(&F.f->body, u);
    MilOp *v = mil_op_new(F.f, MIL_OP_UNKNOWN, "mystery2");
    v->loc = L(4, 13);
    MilFunc *g = mil_func_new(F.p, "g", "ios18");
    mil_op_add_arg(v, "y", mil_func_add_param(g, F.t, "elsewhere"));
    mil_block_append(&F.f->body, v);
    expect(&F, 1, "t.mil:4:13: error: use of undefined value 'elsewhere'");
}

/* -------------------------------------------------------------- literals */

Test(verify, literal_element_count) {
    Fix F = fix();
    int64_t d[] = { 3 };
    int32_t v[] = { 0, 1 };
    MilOp *tr = op_x(&F, MIL_OP_TRANSPOSE, 3);
    mil_op_add_arg_const(tr, "perm", mil_const_tensor(F.p, mil_type_tensor(F.p, MIL_DT_INT32, 1, d), v, 2));
    tr->args[1].loc = L(3, 50);
    mil_op_add_result(tr, F.t, "t");
    expect(&F, 1, "t.mil:3:50: error: literal of type tensor<int32, [3]> has 2 elements, expected 3");
}

Test(verify, scalar_literal_has_one_element) {
    Fix F = fix();
    int32_t v[] = { 0, 1 };
    MilOp *sm = op_x(&F, MIL_OP_SOFTMAX, 3);
    mil_op_add_arg_const(sm, "axis", mil_const_tensor(F.p, mil_type_scalar(F.p, MIL_DT_INT32), v, 2));
    mil_op_add_result(sm, F.t, "s");
    expect(&F, 1, "t.mil:3:13: error: literal of type int32 has 2 elements, expected 1");
}

Test(verify, literal_in_attribute_uses_attr_location_and_1_0_spelling) {
    Fix F = fix();
    F.p->version = "1.0";
    MilValue *r = unary(&F, MIL_OP_RELU, 3, F.x, F.t, "r");
    mil_op_set_attr(r->def, "name", mil_const_tensor(F.p, mil_type_scalar(F.p, MIL_DT_STRING), NULL, 0));
    r->def->attrs[0].loc = L(3, 60);
    expect(&F, 1, "t.mil:3:60: error: literal of type tensor<string, []> has 0 elements, expected 1");
}

Test(verify, literal_type_with_unknown_dims) {
    Fix F = fix();
    int64_t d[] = { MIL_DIM_UNKNOWN };
    konst(&F, 3, mil_const_tensor(F.p, mil_type_tensor(F.p, MIL_DT_INT32, 1, d), NULL, 0), "c");
    expect(&F, 1, "t.mil:3:13: error: literal type tensor<int32, [?]> has unknown dimensions");
}

Test(verify, aggregate_literals) {
    Fix F = fix();
    MilProgram *p = F.p;
    const MilType *s = mil_type_scalar(p, MIL_DT_STRING), *i = mil_type_scalar(p, MIL_DT_INT32);
    /* dict<string, string> holding an int32 value */
    MilConst *kv[] = { mil_const_string(p, "k"), mil_const_scalar_int(p, MIL_DT_INT32, 1) };
    mil_program_set_attr(p, "buildInfo", mil_const_aggregate(p, MIL_CONST_DICT, mil_type_dict(p, s, s), 2, kv));
    /* list<int32, 3> with 2 items */
    MilConst *li[] = { mil_const_scalar_int(p, MIL_DT_INT32, 1), mil_const_scalar_int(p, MIL_DT_INT32, 2) };
    mil_func_set_attr(F.f, "L", mil_const_aggregate(p, MIL_CONST_LIST, mil_type_list(p, i, 3), 2, li));
    F.f->attrs[0].loc = L(2, 40);
    /* tuple<string, int32> with 1 item */
    MilConst *ti[] = { mil_const_string(p, "a") };
    mil_func_set_attr(F.f, "T", mil_const_aggregate(p, MIL_CONST_TUPLE, mil_type_tuple(p, 2, (const MilType *[]){ s, i }),
                                                    1, ti));
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_eq(mil_verify(p, &d), 3);
    char buf[256];
    mil_diag_format(&d, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "error: literal of type int32 does not match the declared type string");
    mil_diag_format(&d, 1, buf, sizeof buf);
    cr_assert_str_eq(buf, "t.mil:2:40: error: list literal of type list<int32, 3> has 2 items, expected 3");
    mil_diag_format(&d, 2, buf, sizeof buf);
    cr_assert_str_eq(buf, "t.mil:2:5: error: tuple literal of type tuple<string, int32> has 1 items, expected 2");
    mil_diag_free(&d);
    mil_program_free(p);
}

/* ------------------------------------------------------------- results */

Test(verify, result_count_fixed) {
    Fix F = fix();
    MilOp *add = op_x(&F, MIL_OP_ADD, 3);
    mil_op_add_arg(add, "y", F.x);
    mil_op_add_result(add, F.t, "a");
    mil_op_add_result(add, F.t, "b");
    expect(&F, 1, "t.mil:3:13: error: op 'add' has 2 results, expected 1");
}

Test(verify, zero_result_op_with_result) {
    Fix F = fix();
    MilOp *ws = op_at(&F, MIL_OP_WRITE_STATE, 3);
    mil_op_add_arg(ws, "input", mil_func_add_param(F.f, mil_type_state(F.p, F.t), "st"));
    mil_op_add_arg(ws, "data", F.x);
    mil_op_add_result(ws, F.t, "w");
    expect(&F, 1, "t.mil:3:13: error: op 'write_state' has 1 results, expected 0");
}

Test(verify, split_needs_results) {
    Fix F = fix();
    split_x(&F, 3);
    expect(&F, 1, "t.mil:3:13: error: op 'split' has no results, expected at least 1");
}

Test(verify, split_num_splits) {
    Fix F = fix();
    MilOp *sp = split_x(&F, 3);
    mil_op_add_arg_const(sp, "num_splits", mil_const_scalar_int(F.p, MIL_DT_INT32, 3));
    mil_op_add_result(sp, F.t, "a");
    mil_op_add_result(sp, F.t, "b");
    expect(&F, 1, "t.mil:3:13: error: split has 2 results, but num_splits is 3");
}

Test(verify, split_split_sizes) {
    Fix F = fix();
    int64_t d[] = { 2 };
    int32_t sz[] = { 1, 3 };
    MilValue *sizes = konst(&F, 3, mil_const_tensor(F.p, mil_type_tensor(F.p, MIL_DT_INT32, 1, d), sz, 2), "sizes");
    MilOp *sp = split_x(&F, 4);
    mil_op_add_arg(sp, "split_sizes", sizes);
    mil_op_add_result(sp, F.t, "a");
    mil_op_add_result(sp, F.t, "b");
    mil_op_add_result(sp, F.t, "c");
    expect(&F, 1, "t.mil:4:13: error: split has 3 results, but split_sizes has 2 entries");
}

Test(verify, unary_result_dtype) {
    Fix F = fix();
    unary(&F, MIL_OP_SIGMOID, 3, F.x, F.t32, "s");
    expect(&F, 1, "t.mil:3:13: error: result of op 'sigmoid' has dtype fp32, expected fp16 (the dtype of 'x')");
}

Test(verify, comparison_result_is_bool) {
    Fix F = fix();
    MilOp *lt = op_x(&F, MIL_OP_LESS, 3);
    mil_op_add_arg(lt, "y", F.x);
    mil_op_add_result(lt, F.t, "l");
    expect(&F, 1, "t.mil:3:13: error: result of op 'less' has dtype fp16, expected bool");
}

Test(verify, logical_result_is_bool) {
    Fix F = fix();
    MilValue *xb = mil_func_add_param(F.f, F.tb, "xb");
    MilValue *b = unary(&F, MIL_OP_LOGICAL_NOT, 3, xb, F.tb, "b");
    unary(&F, MIL_OP_LOGICAL_NOT, 4, b, F.t32, "c");
    expect(&F, 1, "t.mil:4:13: error: result of op 'logical_not' has dtype fp32, expected bool");
}

Test(verify, cast_result_dtype) {
    Fix F = fix();
    MilValue *dt = konst(&F, 3, mil_const_string(F.p, "int32"), "dt");
    MilOp *cs = op_x(&F, MIL_OP_CAST, 4);
    mil_op_add_arg(cs, "dtype", dt);
    mil_op_add_result(cs, F.t32, "c");
    expect(&F, 1, "t.mil:4:13: error: result of op 'cast' has dtype fp32, expected int32 (the cast's dtype)");
}

Test(verify, cast_unknown_dtype) {
    Fix F = fix();
    MilOp *cs = op_x(&F, MIL_OP_CAST, 3);
    mil_op_add_arg_const(cs, "dtype", mil_const_string(F.p, "float17"));
    cs->args[1].loc = L(3, 27);
    mil_op_add_result(cs, F.t32, "c");
    expect(&F, 1, "t.mil:3:27: error: cast to unknown dtype 'float17'");
}

Test(verify, const_result_type) {
    Fix F = fix();
    MilValue *c = konst(&F, 3, mil_const_scalar_int(F.p, MIL_DT_INT32, 1), "c");
    c->type = mil_type_scalar(F.p, MIL_DT_FP32);
    expect(&F, 1, "t.mil:3:13: error: const result type fp32 does not match the type of its value int32");
}

Test(verify, const_blob_must_keep_dtype) {
    Fix F = fix();
    int64_t d4[] = { 4 };
    MilValue *c = konst(&F, 3, mil_const_blob(F.p, mil_type_tensor(F.p, MIL_DT_FP16, 1, d4), "@model_path/w.bin", 64), "w");
    c->type = mil_type_tensor(F.p, MIL_DT_FP32, 1, d4);
    expect(&F, 1, "t.mil:3:13: error: const result type tensor<fp32, [4]> does not match the type of its value "
                  "tensor<fp16, [4]>");
}

Test(verify, const_without_val) {
    Fix F = fix();
    MilOp *c = op_at(&F, MIL_OP_CONST, 3);
    mil_op_set_attr(c, "name", mil_const_string(F.p, "c"));
    mil_op_add_result(c, F.t, "c");
    expect(&F, 1, "t.mil:3:13: error: const has no attribute 'val'");
}

Test(verify, errors_are_capped_but_counted) {
    Fix F = fix();
    for (int i = 0; i < 30; i++) unary(&F, MIL_OP_RELU, 3 + i, F.x, F.t, "same");
    MilDiag d;
    mil_diag_init(&d);
    cr_assert_eq(mil_verify(F.p, &d), 29);
    cr_assert_eq(d.n, 20);
    char buf[128];
    mil_diag_format(&d, 19, buf, sizeof buf);
    cr_assert_str_eq(buf, "t.mil:23:13: error: redefinition of value 'same'");
    mil_diag_free(&d);
    mil_program_free(F.p);
}
