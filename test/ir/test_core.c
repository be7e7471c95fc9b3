/* test/ir/test_core.c -- arena, diagnostics, dtypes, interned types,
 * constants, the op table and the builder. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* ------------------------------------------------------------------ arena */

Test(arena, zeroed_aligned_and_big) {
    MilArena a = { 0 };
    for (int i = 1; i < 2000; i += 7) {
        unsigned char *p = mil_arena_alloc(&a, (size_t)i);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 16, 0, "misaligned for size %d", i);
        for (int j = 0; j < i; j++) cr_assert_eq(p[j], 0);
        memset(p, 0xab, (size_t)i);
    }
    unsigned char *big = mil_arena_alloc(&a, 1 << 20);
    cr_assert_not_null(big);
    cr_assert_eq(big[(1 << 20) - 1], 0);
    char *s = mil_arena_strndup(&a, "hello world", 5);
    cr_assert_str_eq(s, "hello");
    cr_assert_geq(a.total, (size_t)(1 << 20));
    mil_arena_free(&a);
    cr_assert_null(a.head);
}

/* Blocks start small and double; requests above half the next block get a
 * block of their own.  Mixed sizes across all those cases: every allocation
 * is zeroed, aligned and keeps its bytes (no two overlap). */
Test(arena, growth_keeps_every_allocation) {
    MilArena a = { 0 };
    enum { N = 600 };
    unsigned char *p[N];
    size_t sz[N];
    for (int i = 0; i < N; i++) {
        sz[i] = i % 50 == 7 ? (size_t)(1000 + 977 * i) : (size_t)(1 + (i * 37) % 300);
        p[i] = mil_arena_alloc(&a, sz[i]);
        cr_assert_not_null(p[i]);
        cr_assert_eq((uintptr_t)p[i] % 16, 0);
        for (size_t j = 0; j < sz[i]; j++) cr_assert_eq(p[i][j], 0, "allocation %d not zeroed", i);
        memset(p[i], i & 0xff, sz[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < sz[i]; j++) cr_assert_eq(p[i][j], i & 0xff, "allocation %d overwritten", i);
    mil_arena_free(&a);
}

/* ------------------------------------------------------------ diagnostics */

Test(diag, format_and_print_with_caret) {
    MilDiag d;
    mil_diag_init(&d);
    const char *src = "program(1.0)\n{\n    func main() {\n";
    const char *file = mil_diag_add_source(&d, "m.mil", src, strlen(src));
    cr_assert_str_eq(file, "m.mil");
    mil_error(&d, ((MilLoc){ file, 3, 10 }), "bad %s", "thing");
    mil_warning(&d, ((MilLoc){ file, 1, 1 }), "hmm");
    cr_assert_eq(d.nerrors, 1);
    cr_assert_eq(d.nwarnings, 1);
    char buf[256];
    mil_diag_format(&d, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "m.mil:3:10: error: bad thing");
    mil_diag_format(&d, 1, buf, sizeof buf);
    cr_assert_str_eq(buf, "m.mil:1:1: warning: hmm");

    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    mil_diag_print(&d, f);
    fclose(f);
    cr_assert_str_eq(out, "m.mil:3:10: error: bad thing\n"
                          "    func main() {\n"
                          "         ^\n"
                          "m.mil:1:1: warning: hmm\n"
                          "program(1.0)\n"
                          "^\n");
    free(out);
    mil_diag_free(&d);
}

Test(diag, stops_recording_after_max_errors) {
    MilDiag d;
    mil_diag_init(&d);
    for (int i = 0; i < 30; i++) mil_error(&d, ((MilLoc){ NULL, 0, 0 }), "e%d", i);
    cr_assert_eq(d.n, 20);
    cr_assert_eq(d.nerrors, 30);
    char buf[64];
    mil_diag_format(&d, 19, buf, sizeof buf);
    cr_assert_str_eq(buf, "error: e19");
    mil_diag_free(&d);

    mil_diag_init(&d);
    d.max_errors = 3;
    for (int i = 0; i < 5; i++) mil_error(&d, ((MilLoc){ "f", 2, 0 }), "x");
    cr_assert_eq(d.n, 3);
    mil_diag_format(&d, 0, buf, sizeof buf);
    cr_assert_str_eq(buf, "f:2: error: x");
    mil_diag_free(&d);
}

/* ----------------------------------------------------------------- dtypes */

Test(dtype, names_codes_sizes) {
    cr_assert_str_eq(mil_dtype_name(MIL_DT_FP16), "fp16");
    cr_assert_str_eq(mil_dtype_name(MIL_DT_NONE), "?");
    cr_assert_eq(mil_dtype_from_name("uint4", 5), MIL_DT_UINT4);
    cr_assert_eq(mil_dtype_from_name("int32xx", 5), MIL_DT_INT32);
    cr_assert_eq(mil_dtype_from_name("int3", 4), MIL_DT_NONE);
    cr_assert_eq(mil_dtype_from_name("fp1", 3), MIL_DT_NONE);
    cr_assert_eq(mil_dtype_bits(MIL_DT_UINT4), 4);
    cr_assert_eq(mil_dtype_blob_code(MIL_DT_INT32), 14);
    cr_assert_eq(mil_dtype_from_blob_code(2), MIL_DT_FP32);
    cr_assert_eq(mil_dtype_from_blob_code(0), MIL_DT_NONE);
    cr_assert_eq(mil_dtype_from_blob_code(99), MIL_DT_NONE);
    cr_assert_eq(mil_dtype_proto_code(MIL_DT_UINT64), 34);
    cr_assert_eq(mil_dtype_from_proto_code(13), MIL_DT_BF16);
    cr_assert(mil_dtype_is_float(MIL_DT_BF16));
    cr_assert_not(mil_dtype_is_float(MIL_DT_INT8));
    cr_assert(mil_dtype_is_int(MIL_DT_UINT1));
    cr_assert(mil_dtype_is_signed(MIL_DT_INT4));
    cr_assert_not(mil_dtype_is_signed(MIL_DT_UINT8));
    cr_assert_eq(mil_dtype_storage_size(MIL_DT_BOOL), 1);
    cr_assert_eq(mil_dtype_storage_size(MIL_DT_UINT3), 1);
    cr_assert_eq(mil_dtype_storage_size(MIL_DT_FP8E5M2), 1);
    cr_assert_eq(mil_dtype_storage_size(MIL_DT_FP16), 2);
    cr_assert_eq(mil_dtype_storage_size(MIL_DT_FP64), 8);
    cr_assert_eq(mil_dtype_storage_size(MIL_DT_UINT16), 2);
    cr_assert_eq(mil_dtype_storage_size(MIL_DT_STRING), sizeof(char *));
}

Test(dtype, fp16_bf16) {
    cr_assert_eq(mil_f32_to_fp16(1.0f), 0x3c00);
    cr_assert_eq(mil_fp16_to_f32(0x0001), ldexpf(1.0f, -24));
    cr_assert_eq(mil_f32_to_fp16(65504.0f), 0x7bff);
    cr_assert_eq(mil_f32_to_fp16(1e6f), 0x7c00);
    cr_assert(isnan(mil_fp16_to_f32(mil_f32_to_fp16(NAN))));
    cr_assert_eq(mil_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(mil_bf16_to_f32(0xc000), -2.0f);
}

/* ------------------------------------------------------------------ types */

Test(types, interned_pointer_equality) {
    MilProgram *p = mil_program_new("1.0");
    int64_t d1[] = { 1, 10 }, d2[] = { 1, 10 }, d3[] = { 1, MIL_DIM_UNKNOWN };
    const MilType *a = mil_type_tensor(p, MIL_DT_FP16, 2, d1);
    const MilType *b = mil_type_tensor(p, MIL_DT_FP16, 2, d2);
    const MilType *c = mil_type_tensor(p, MIL_DT_FP32, 2, d2);
    const MilType *u = mil_type_tensor(p, MIL_DT_FP16, 2, d3);
    cr_assert_eq(a, b);
    cr_assert_neq(a, c);
    cr_assert_neq(a, u);
    cr_assert(mil_type_has_unknown(u));
    cr_assert_not(mil_type_has_unknown(a));
    cr_assert_eq(mil_type_numel(a), 10);
    cr_assert_eq(mil_type_numel(u), -1);
    cr_assert_eq(mil_type_scalar(p, MIL_DT_INT32), mil_type_tensor(p, MIL_DT_INT32, 0, NULL));
    cr_assert(mil_type_is_scalar(mil_type_scalar(p, MIL_DT_INT32)));
    cr_assert_eq(mil_type_numel(mil_type_scalar(p, MIL_DT_INT32)), 1);

    const MilType *s = mil_type_scalar(p, MIL_DT_STRING);
    const MilType *l = mil_type_list(p, a, -1);
    cr_assert_eq(l, mil_type_list(p, b, -5));
    cr_assert_eq(l->len, -1);
    cr_assert(mil_type_has_unknown(l));
    const MilType *dct = mil_type_dict(p, s, l);
    cr_assert_eq(dct, mil_type_dict(p, s, l));
    const MilType *parts[] = { s, dct };
    const MilType *tu = mil_type_tuple(p, 2, parts);
    const MilType *parts2[] = { mil_type_scalar(p, MIL_DT_STRING), dct };
    cr_assert_eq(tu, mil_type_tuple(p, 2, parts2));
    cr_assert_neq(tu, mil_type_tuple(p, 1, parts));
    cr_assert_eq(mil_type_state(p, a), mil_type_state(p, b));
    cr_assert_neq(mil_type_state(p, a), a);

    /* many types: the table grows and stays consistent */
    const MilType *ts[600];
    for (int i = 0; i < 600; i++) {
        int64_t dd[] = { i, 3 };
        ts[i] = mil_type_tensor(p, MIL_DT_FP32, 2, dd);
    }
    for (int i = 0; i < 600; i++) {
        int64_t dd[] = { i, 3 };
        cr_assert_eq(ts[i], mil_type_tensor(p, MIL_DT_FP32, 2, dd));
        cr_assert_eq(ts[i]->dims[0], i);
    }

    MilProgram *q = mil_program_new("1.3");
    const MilType *qa = mil_type_tensor(q, MIL_DT_FP16, 2, d1);
    cr_assert_neq(qa, a);
    cr_assert(mil_type_equal(qa, a));
    cr_assert(mil_type_equal(mil_type_tuple(q, 2, (const MilType *[]){ mil_type_scalar(q, MIL_DT_STRING),
                                                        mil_type_dict(q, mil_type_scalar(q, MIL_DT_STRING),
                                                                      mil_type_list(q, qa, -1)) }),
                             tu));
    cr_assert_not(mil_type_equal(qa, c));
    mil_program_free(q);
    mil_program_free(p);
}

/* -------------------------------------------------------------- constants */

Test(consts, scalars_and_accessors) {
    MilProgram *p = mil_program_new("1.0");
    MilConst *c = mil_const_scalar_int(p, MIL_DT_INT32, -7);
    cr_assert_eq(c->kind, MIL_CONST_TENSOR);
    cr_assert_eq(c->type, mil_type_scalar(p, MIL_DT_INT32));
    cr_assert_eq(c->count, 1);
    cr_assert_eq(mil_const_get_i64(c, 0), -7);
    cr_assert_eq(mil_const_get_f64(c, 0), -7.0);

    c = mil_const_scalar_float(p, MIL_DT_FP16, 0.5);
    cr_assert_eq(*(uint16_t *)c->data, 0x3800);
    cr_assert_eq(mil_const_get_f64(c, 0), 0.5);
    c = mil_const_scalar_float(p, MIL_DT_FP32, -2.25);
    cr_assert_eq(*(float *)c->data, -2.25f);
    c = mil_const_scalar_int(p, MIL_DT_FP32, 3);
    cr_assert_eq(mil_const_get_f64(c, 0), 3.0);
    c = mil_const_scalar_float(p, MIL_DT_FP8E4M3FN, 1.0);
    cr_assert_eq(*(uint8_t *)c->data, 0x38);
    cr_assert_eq(mil_const_get_f64(c, 0), 1.0);
    c = mil_const_scalar_float(p, MIL_DT_FP8E5M2, -0.5);
    cr_assert_eq(*(uint8_t *)c->data, 0xb8);
    cr_assert_eq(mil_const_get_f64(c, 0), -0.5);
    c = mil_const_scalar_int(p, MIL_DT_UINT64, 64);
    cr_assert_eq(*(uint64_t *)c->data, 64);

    c = mil_const_scalar_bool(p, true);
    cr_assert_eq(c->type->dtype, MIL_DT_BOOL);
    cr_assert_eq(mil_const_get_i64(c, 0), 1);

    char name[] = "op_3";
    c = mil_const_string(p, name);
    name[0] = 'X'; /* copied */
    cr_assert_str_eq(mil_const_get_str(c), "op_3");
    cr_assert_null(mil_const_get_str(mil_const_scalar_int(p, MIL_DT_INT32, 1)));

    int64_t dims[] = { 2, 2 };
    int32_t vals[] = { 1, -2, 3, -4 };
    c = mil_const_tensor(p, mil_type_tensor(p, MIL_DT_INT32, 2, dims), vals, 4);
    vals[0] = 100;
    cr_assert_eq(mil_const_get_i64(c, 0), 1);
    cr_assert_eq(mil_const_get_i64(c, 3), -4);
    cr_assert_eq(mil_const_get_i64(c, 4), 0); /* out of range */

    MilConst *b = mil_const_blob(p, mil_type_tensor(p, MIL_DT_FP16, 2, dims), "@model_path/weights/weight.bin", 64);
    cr_assert_eq(b->kind, MIL_CONST_BLOB);
    cr_assert_str_eq(b->blob_path, "@model_path/weights/weight.bin");
    cr_assert_eq(b->blob_offset, 64);

    const MilType *s = mil_type_scalar(p, MIL_DT_STRING);
    MilConst *kv[] = { mil_const_string(p, "k"), mil_const_string(p, "v") };
    MilConst *dc = mil_const_aggregate(p, MIL_CONST_DICT, mil_type_dict(p, s, s), 2, kv);
    cr_assert_eq(dc->nitems, 2);
    cr_assert_str_eq(mil_const_get_str(dc->items[1]), "v");
    mil_program_free(p);
}

/* -------------------------------------------------------------- op table */

Test(ops, table_lookup) {
    MilOpKind k = mil_op_lookup("conv", 4);
    cr_assert_eq(k, MIL_OP_CONV);
    cr_assert_eq(mil_op_lookup("conv_transpose", 14), MIL_OP_CONV_TRANSPOSE);
    cr_assert_eq(mil_op_lookup("convx", 4), MIL_OP_CONV);
    cr_assert_eq(mil_op_lookup("con", 3), MIL_OP_UNKNOWN);
    cr_assert_eq(mil_op_lookup("nope", 4), MIL_OP_UNKNOWN);
    const MilOpInfo *info = mil_op_info(MIL_OP_CONV);
    cr_assert_str_eq(info->name, "conv");
    cr_assert_eq(info->wire, 0x0203);
    cr_assert_eq(info->nresults, 1);
    cr_assert_eq(info->nargs, 8);
    cr_assert_str_eq(info->args[0].name, "bias");
    cr_assert_str_eq(info->args[7].name, "x");
    cr_assert_eq(info->args[MIL_A_CONV_weight].flags, A_REQ);
    cr_assert_null(mil_op_info(MIL_OP_UNKNOWN));
    cr_assert_eq(mil_op_info(MIL_OP_CONST)->nargs, 0);
    cr_assert_eq(mil_op_info(MIL_OP_SPLIT)->nresults, -1);
    cr_assert_eq(mil_op_info(MIL_OP_WRITE_STATE)->nresults, 0);
    cr_assert_eq(mil_op_from_wire(0x0f01), MIL_OP_RMS_NORM);
    cr_assert_eq(mil_op_from_wire(0x7777), MIL_OP_UNKNOWN);
    const MilArgInfo *ai = mil_op_arg_info(MIL_OP_CONCAT, "values");
    cr_assert_not_null(ai);
    cr_assert_eq(ai->flags, A_REQ | A_VARIADIC);
    cr_assert_str_eq(mil_op_arg_info(MIL_OP_GELU, "mode")->def, "\"EXACT\"");
    cr_assert_null(mil_op_arg_info(MIL_OP_CONCAT, "x"));
    /* every op's args are alphabetical and every wire code is unique */
    for (int i = 1; i < MIL_OP_COUNT; i++) {
        const MilOpInfo *oi = mil_op_info((MilOpKind)i);
        cr_assert_eq(mil_op_lookup(oi->name, strlen(oi->name)), (MilOpKind)i);
        cr_assert_eq(mil_op_from_wire(oi->wire), (MilOpKind)i);
        for (int j = 1; j < oi->nargs; j++)
            cr_assert_lt(strcmp(oi->args[j - 1].name, oi->args[j].name), 0, "%s", oi->name);
    }
}

/* ---------------------------------------------------------------- builder */

Test(builder, program_func_ops) {
    MilProgram *p = mil_program_new("1.0");
    cr_assert_str_eq(p->version, "1.0");
    cr_assert_eq(mil_program_spelling(p), MIL_SPELLING_1_0);
    int64_t dims[] = { 1, 10 };
    const MilType *t = mil_type_tensor(p, MIL_DT_FP16, 2, dims);
    MilFunc *f = mil_func_new(p, "main", "ios16");
    cr_assert_eq(mil_program_find_func(p, "main"), f);
    cr_assert_null(mil_program_find_func(p, "other"));
    MilValue *x = mil_func_add_param(f, t, "x");
    MilValue *y = mil_func_add_param(f, t, "y");
    cr_assert_eq(x->id, 0);
    cr_assert_eq(y->index, 1);
    cr_assert_null(x->def);

    MilOp *op = mil_op_new(f, MIL_OP_MUL, NULL);
    cr_assert_str_eq(op->opname, "mul");
    cr_assert_null(op->block);
    mil_op_add_arg(op, "x", x);
    mil_op_add_arg(op, "y", y);
    mil_op_set_attr(op, "name", mil_const_string(p, "op_3"));
    mil_op_set_attr(op, "name", mil_const_string(p, "op_3_cast_fp16")); /* replaces */
    cr_assert_eq(op->nattrs, 1);
    MilValue *r = mil_op_add_result(op, t, "var_3");
    cr_assert_eq(r->def, op);
    cr_assert_eq(r->id, 2);
    mil_block_append(&f->body, op);
    cr_assert_eq(op->block, &f->body);
    mil_func_add_output(f, r);
    cr_assert_eq(f->nvalues, 3);
    cr_assert_eq(mil_func_find_value(f, "var_3"), r);
    cr_assert_eq(mil_func_find_value(f, "y"), y);
    cr_assert_null(mil_func_find_value(f, "z"));
    cr_assert_str_eq(mil_const_get_str(mil_op_attr(op, "name")->val), "op_3_cast_fp16");
    cr_assert_eq(mil_op_arg(op, "y")->items[0].value, y);
    cr_assert_null(mil_op_arg(op, "name")); /* not an A_ATTR argument */

    /* unique names */
    cr_assert_str_eq(mil_func_unique_name(f, "x"), "x_1");
    cr_assert_str_eq(mil_func_unique_name(f, "x"), "x_2");
    cr_assert_str_eq(mil_func_unique_name(f, "fresh"), "fresh");
    cr_assert_str_eq(mil_func_unique_name(f, "fresh"), "fresh_1");
    MilValue *anon = mil_op_add_result(mil_op_new(f, MIL_OP_RELU, NULL), t, NULL);
    cr_assert_str_eq(anon->name, "var");

    /* const builder */
    MilValue *c = mil_build_const(f, mil_const_scalar_float(p, MIL_DT_FP16, 2.0), "two");
    cr_assert_str_eq(c->name, "two");
    cr_assert_eq(c->type, mil_type_scalar(p, MIL_DT_FP16));
    cr_assert_eq(c->def->kind, MIL_OP_CONST);
    cr_assert_eq(f->body.last, c->def);
    cr_assert_str_eq(mil_const_get_str(mil_op_attr(c->def, "name")->val), "two");
    cr_assert_eq(mil_const_get_f64(mil_value_const(c), 0), 2.0);
    cr_assert_null(mil_value_const(x));
    MilValue *c2 = mil_build_const(f, mil_const_scalar_int(p, MIL_DT_INT32, 1), "two");
    cr_assert_str_eq(c2->name, "two_1");

    /* replace uses + fill uses */
    MilOp *add = mil_op_new(f, MIL_OP_ADD, NULL);
    mil_op_add_arg(add, "x", r);
    mil_op_add_arg(add, "y", c);
    MilValue *s = mil_op_add_result(add, t, "s");
    mil_block_append(&f->body, add);
    mil_func_add_output(f, s);
    cr_assert_eq(mil_op_const_arg(add, "y"), mil_value_const(c));
    cr_assert_null(mil_op_const_arg(add, "x"));
    mil_func_fill_uses(f);
    cr_assert_eq(r->nuses, 2);
    cr_assert_eq(x->nuses, 1);
    cr_assert_eq(c2->nuses, 0);
    mil_func_replace_uses(f, r, x);
    mil_func_fill_uses(f);
    cr_assert_eq(r->nuses, 0);
    cr_assert_eq(x->nuses, 3);
    cr_assert_eq(f->body.outs[0], x);

    /* block list editing */
    MilOp *first = f->body.first;
    MilOp *ins = mil_op_new(f, MIL_OP_RELU, NULL);
    mil_block_insert_before(&f->body, first, ins);
    cr_assert_eq(f->body.first, ins);
    cr_assert_eq(ins->next, first);
    cr_assert_eq(first->prev, ins);
    mil_block_remove(&f->body, add);
    cr_assert_neq(f->body.last, add);
    cr_assert_null(add->block);
    cr_assert_null(f->body.last->next);
    mil_block_remove(&f->body, ins);
    cr_assert_eq(f->body.first, first);
    cr_assert_null(first->prev);
    int n = 0;
    for (MilOp *o = f->body.first; o; o = o->next) n++;
    cr_assert_eq(n, 3); /* mul, const two, const two_1 */

    /* rename keeps unique names unique */
    mil_func_rename_value(f, s, "renamed");
    cr_assert_str_eq(s->name, "renamed");
    cr_assert_str_eq(mil_func_unique_name(f, "renamed"), "renamed_1");
    mil_program_free(p);
}

Test(builder, tuple_args_attr_args_unknown_ops) {
    MilProgram *p = mil_program_new("1.3");
    cr_assert_eq(mil_program_spelling(p), MIL_SPELLING_1_3);
    MilFunc *f = mil_func_new(p, "main", "ios18");
    int64_t d[] = { 4 };
    const MilType *t = mil_type_tensor(p, MIL_DT_FP32, 1, d);
    MilValue *a = mil_func_add_param(f, t, "a");
    MilValue *b = mil_func_add_param(f, t, "b");
    MilOp *cat = mil_op_new(f, MIL_OP_CONCAT, NULL);
    MilBinding items[] = { { .value = a }, { .value = b } };
    mil_op_add_arg_tuple(cat, "values", 2, items);
    mil_op_add_arg_const(cat, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 0));
    const MilArg *va = mil_op_arg(cat, "values");
    cr_assert(va->variadic);
    cr_assert_eq(va->n, 2);
    cr_assert_eq(va->items[1].value, b);
    cr_assert_eq(mil_op_const_arg(cat, "axis")->type->dtype, MIL_DT_INT32);
    cr_assert_null(mil_op_const_arg(cat, "values"));

    /* iOS16 constexpr: A_ATTR parameters found through mil_op_arg */
    MilOp *cx = mil_op_new(f, MIL_OP_CONSTEXPR_AFFINE_DEQUANTIZE, NULL);
    mil_op_set_attr(cx, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 0));
    const MilArg *ax = mil_op_arg(cx, "axis");
    cr_assert_not_null(ax);
    cr_assert_eq(ax->n, 1);
    cr_assert_eq(mil_const_get_i64(ax->items[0].cst, 0), 0);
    cr_assert_eq(mil_op_const_arg(cx, "axis"), ax->items[0].cst);
    mil_op_set_attr(cx, "axis", mil_const_scalar_int(p, MIL_DT_INT32, 1));
    cr_assert_eq(mil_const_get_i64(mil_op_arg(cx, "axis")->items[0].cst, 0), 1);

    /* unknown op keeps its spelling; attrs act as args */
    MilOp *u = mil_op_new(f, MIL_OP_UNKNOWN, "frobnicate");
    cr_assert_eq(u->kind, MIL_OP_UNKNOWN);
    cr_assert_str_eq(u->opname, "frobnicate");
    mil_op_set_attr(u, "k", mil_const_scalar_bool(p, true));
    cr_assert_not_null(mil_op_arg(u, "k"));
    cr_assert_null(mil_op_new(f, MIL_OP_UNKNOWN, NULL));

    mil_program_set_attr(p, "buildInfo", mil_const_string(p, "x"));
    mil_program_set_attr(p, "buildInfo", mil_const_string(p, "y"));
    cr_assert_eq(p->nattrs, 1);
    mil_func_set_attr(f, "FlexibleShapeInformation", mil_const_string(p, "z"));
    cr_assert_eq(f->nattrs, 1);

    MilProgram *q = mil_program_new("1");
    cr_assert_eq(mil_program_spelling(q), MIL_SPELLING_1_0);
    mil_program_free(q);
    q = mil_program_new("1.4");
    cr_assert_eq(mil_program_spelling(q), MIL_SPELLING_1_3);
    mil_program_free(q);
    mil_program_free(p);
}

Test(builder, many_values_grow) {
    MilProgram *p = mil_program_new("1.0");
    MilFunc *f = mil_func_new(p, "main", "ios17");
    const MilType *t = mil_type_scalar(p, MIL_DT_FP32);
    MilValue *prev = mil_func_add_param(f, t, "x");
    for (int i = 0; i < 1000; i++) {
        MilOp *op = mil_op_new(f, MIL_OP_RELU, NULL);
        mil_op_add_arg(op, "x", prev);
        prev = mil_op_add_result(op, t, mil_func_unique_name(f, "r"));
        mil_block_append(&f->body, op);
    }
    cr_assert_str_eq(prev->name, "r_999");
    cr_assert_eq(prev->id, 1000);
    cr_assert_eq(f->nvalues, 1001);
    cr_assert_eq(mil_func_find_value(f, "r_500")->id, 501);
    mil_program_free(p);
}
