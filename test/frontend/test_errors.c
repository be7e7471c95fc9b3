/* test/frontend/test_errors.c -- malformed inputs: each must fail with its
 * exact first diagnostic, `t.mil:line:col: error: message`, where line:col is
 * the first byte of the offending token.
 *
 * Most cases are one statement on line 5 of a small program (column 1 is the
 * statement's first byte), so the expected column can be read off the text.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"

#define H "program(1.3)\n[buildInfo = dict<string, string>({})]\n{\nfunc main<ios18>(tensor<fp16, [2]> x) {\n"
#define T "\n} -> (x);\n}"
#define S(stmt) H stmt T

typedef struct {
    const char *src;
    size_t len;        /* 0: strlen(src) */
    const char *want;  /* prefix of the first error */
} BadCase;

static const BadCase cases[] = {
    /* syntax */
    { H "tensor<fp16, [2]> y = relu(x = x);\n} -> (y)\n}", 0, "t.mil:7:1: error: unexpected '}', expected ';'" },
    { H "tensor<fp16, [2]> y = relu(x = x);\n} -> (y)\nfunc g<ios18>() {} -> ();\n}", 0,
      "t.mil:7:1: error: unexpected 'func', expected ';'" },
    { S("(tensor<fp16, [1]> a, tensor<fp16, [1]> b) = split(axis = int32(0), num_splits = int32(2), x = x);"), 0,
      "t.mil:5:1: error: results must not be parenthesised: write 'T a, T b = op(...)'" },
    { S("[tensor<fp16, [1]> a, tensor<fp16, [1]> b] = split(axis = int32(0), num_splits = int32(2), x = x);"), 0,
      "t.mil:5:1: error: results must not be bracketed" },
    { S("tensor<fp16, [2]> y = relu(x = x) { tensor<fp16, [2]> z = relu(x = x); } -> (z);"), 0,
      "t.mil:5:35: error: control flow (nested blocks) is not supported" },
    { "", 0, "t.mil:1:1: error: unexpected end of input, expected 'program'" },
    { "   \n\t\n", 0, "t.mil:3:1: error: unexpected end of input, expected 'program'" },
    { "func main<ios18>() {} -> ();", 0, "t.mil:1:1: error: unexpected 'func', expected 'program'" },
    { "program() {}", 0, "t.mil:1:9: error: unexpected ')', expected integer or number" },
    { "program(1.3) {", 0, "t.mil:1:15: error: unexpected end of input, expected 'func' or '}'" },
    { "program(1.3) {} x", 0, "t.mil:1:17: error: unexpected identifier 'x', expected end of input" },
    { S("tensor<fp16, [2]> y = relu(x x);"), 0, "t.mil:5:30: error: unexpected identifier 'x', expected '='" },
    { S("tensor<fp16, [2]> y = relu(x = x)"), 0, "t.mil:6:1: error: unexpected '}', expected '{', ';' or '['" },
    { S("tensor<fp16, [2]> y = relu(x = x, x = x);"), 0, "t.mil:5:35: error: duplicate argument 'x'" },
    { S("tensor<fp16, [2]> y = relu(x = x)[name = string(\"a\"), name = string(\"b\")];"), 0,
      "t.mil:5:55: error: duplicate attribute 'name'" },
    /* lexical */
    { S("string s = const()[val = string(\"abc)];"), 0,
      "t.mil:5:33: error: unterminated string (strings end on the same line)" },
    { S("string s = const()[val = string(\"ab\ncd\")];"), 0,
      "t.mil:5:33: error: unterminated string (strings end on the same line)" },
    { S("string s = const()[val = string(\"a\\qb\")];"), 0,
      "t.mil:5:35: error: unknown escape sequence '\\q' in string" },
    { S("tensor<fp16, [2]> y = relu(x = x); $"), 0, "t.mil:5:36: error: stray '$' in program" },
    { "\x01\x02garbage\xff", 0, "t.mil:1:1: error: stray '\\x01\\x02' in program" },
    { S("tensor<fp16, [2]> y = relu(x = x);\xc3\x28"), 0, "t.mil:5:35: error: stray '\\xc3' in program" },
    { S("tensor<fp16, [2]> y = relu(x = x);\0;"), 0 /* set below */, "t.mil:5:35: error: stray '\\x00' in program" },
    { S("tensor<fp16, [2]> y = relu(x = x); /* open"), 0, "t.mil:5:36: error: unterminated comment" },
    { S("fp16 y = const()[val = fp16(foo)];"), 0, "t.mil:5:29: error: expected a literal, found identifier 'foo'" },
    /* names */
    { S("tensor<fp16, [2]> y = frob(x = x);"), 0, "t.mil:5:23: error: unknown op 'frob'" },
    { S("tensor<fp16, [2]> y = relu(x = z);"), 0, "t.mil:5:32: error: use of undefined value 'z'" },
    { S("tensor<fp16, [2]> x = relu(x = x);"), 0, "t.mil:5:19: error: duplicate definition of 'x'" },
    { S("tensor<fp16, [1]> a, tensor<fp16, [1]> a = split(axis = int32(0), num_splits = int32(2), x = x);"), 0,
      "t.mil:5:40: error: duplicate definition of 'a'" },
    { H "tensor<fp16, [2]> y = relu(x = x);\n} -> (nope);\n}", 0, "t.mil:6:7: error: use of undefined value 'nope'" },
    { "program(1.3){func f<ios18>(){}->();func f<ios18>(){}->();}", 0, "t.mil:1:41: error: duplicate function 'f'" },
    /* types */
    { S("tensor<float32, [2]> y = relu(x = x);"), 0, "t.mil:5:8: error: unknown dtype 'float32'" },
    { S("tensor<fp16, [-1]> y = relu(x = x);"), 0, "t.mil:5:15: error: negative dimension -1" },
    { S("tensor<fp16, [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]> y = relu(x = x);"), 0,
      "t.mil:5:47: error: tensor rank exceeds 16" },
    { S("tensor_buffer<fp16, shape=[1, 2]> y = relu(x = x);"), 0, "t.mil:5:1: error: tensor_buffer types are not supported" },
    { S("state<tensor<fp16, [2]>> y = relu(x = x);"), 0, "t.mil:5:26: error: an op result cannot have a state type" },
    { S("tensor<fp16, [2]> y = add(x = x, y = tensor<fp16, [?]>([1, 2]));"), 0,
      "t.mil:5:52: error: unknown dimension in the type of a literal value" },
    { S("tensor<fp16, [2]> y = add(x = x, y = tensor<fp16, [n]>([1, 2]));"), 0,
      "t.mil:5:52: error: unknown dimension in the type of a literal value" },
    /* literal shapes and kinds */
    /* a flat list for rank >= 2 is read (with a warning); any other depth is not */
    { S("tensor<fp16, [2, 2, 2]> c = const()[val = tensor<fp16, [2, 2, 2]>([[1, 2, 3, 4], [5, 6, 7, 8]])];"), 0,
      "t.mil:5:69: error: expected '[': tensor literal nesting must match the rank 3 of tensor<fp16, [2, 2, 2]>" },
    { S("tensor<fp16, [2, 2]> c = const()[val = tensor<fp16, [2, 2]>([[1, 2], 3])];"), 0,
      "t.mil:5:70: error: expected '[': tensor literal nesting must match the rank 2 of tensor<fp16, [2, 2]>" },
    { S("tensor<fp16, [2, 2]> c = const()[val = tensor<fp16, [2, 2]>([1, 2, 3])];"), 0,
      "t.mil:5:61: error: flat tensor literal has 3 elements, expected 4 (type tensor<fp16, [2, 2]>)" },
    { S("tensor<fp16, [2, 2]> c = const()[val = tensor<fp16, [2, 2]>([1, 2, 3, 4, 5])];"), 0,
      "t.mil:5:61: error: flat tensor literal has 5 elements, expected 4 (type tensor<fp16, [2, 2]>)" },
    { S("tensor<fp16, [2, 2]> c = const()[val = tensor<fp16, [2, 2]>([1, 2, [3, 4]])];"), 0,
      "t.mil:5:68: error: '[' inside a flat tensor literal (type tensor<fp16, [2, 2]>): write one level or nest by the rank" },
    { S("tensor<fp16, [2]> c = const()[val = tensor<fp16, [2]>([[1], [2]])];"), 0,
      "t.mil:5:56: error: tensor literal is nested deeper than the rank 1 of tensor<fp16, [2]>" },
    { S("tensor<fp16, [3]> c = const()[val = tensor<fp16, [3]>([1, 2])];"), 0,
      "t.mil:5:55: error: tensor literal has 2 elements in dimension 0, expected 3 (type tensor<fp16, [3]>)" },
    { S("tensor<fp16, [2, 2]> c = const()[val = tensor<fp16, [2, 2]>([[1, 2], [3]])];"), 0,
      "t.mil:5:70: error: tensor literal has 1 elements in dimension 1, expected 2" },
    { S("tensor<fp16, [2]> c = const()[val = tensor<fp16, [2]>(1)];"), 0,
      "t.mil:5:55: error: expected '[' for tensor<fp16, [2]>, found number '1'" },
    { S("int32 c = const()[val = int32([1])];"), 0,
      "t.mil:5:31: error: a rank-0 tensor literal is a bare scalar, not '[...]' (type int32)" },
    { S("int8 c = const()[val = int8(300)];"), 0, "t.mil:5:29: error: integer literal 300 is out of range for int8" },
    { S("int8 c = const()[val = int8(-129)];"), 0, "t.mil:5:29: error: integer literal -129 is out of range for int8" },
    { S("uint8 c = const()[val = uint8(-1)];"), 0, "t.mil:5:31: error: integer literal -1 is out of range for uint8" },
    { S("tensor<uint4, [1]> c = const()[val = tensor<uint4, [1]>([16])];"), 0,
      "t.mil:5:58: error: integer literal 16 is out of range for uint4" },
    { S("uint64 c = const()[val = uint64(18446744073709551616)];"), 0,
      "t.mil:5:33: error: integer literal 18446744073709551616 is out of range for uint64" },
    { S("int32 c = const()[val = int32(1.5)];"), 0,
      "t.mil:5:31: error: expected an integer literal for int32, found number '1.5'" },
    { S("int32 c = const()[val = int32(-inf)];"), 0, "t.mil:5:31: error: expected an integer literal for int32, found '-inf'" },
    { S("fp16 c = const()[val = fp16(\"a\")];"), 0, "t.mil:5:29: error: expected a number for fp16, found string '\"a\"'" },
    { S("bool c = const()[val = bool(1)];"), 0, "t.mil:5:29: error: expected true or false for bool, found number '1'" },
    { S("string c = const()[val = string(true)];"), 0, "t.mil:5:33: error: expected a string literal for string, found 'true'" },
    { S("dict<string, string> c = const()[val = dict<string, string>([\"a\"])];"), 0,
      "t.mil:5:61: error: expected a dict literal '{...}' for type dict<string, string>, found '['" },
    { S("tuple<string, int32> c = const()[val = tuple<string, int32>((\"a\"))];"), 0,
      "t.mil:5:61: error: tuple literal has 1 elements, type tuple<string, int32> has 2" },
    { S("tuple<string> c = const()[val = tuple<string>((\"a\", \"b\"))];"), 0,
      "t.mil:5:53: error: too many elements in tuple literal: type tuple<string> has 1" },
    { S("list<int32, 2> c = const()[val = list<int32, 2>([1])];"), 0,
      "t.mil:5:49: error: list literal has 1 elements, type list<int32, 2> has length 2" },
    /* BLOBFILE */
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(pth = string(\"a\"), offset = uint64(64)))];"), 0,
      "t.mil:5:55: error: unknown BLOBFILE argument 'pth' (expected 'path' and 'offset')" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(path = string(\"a\"), offst = uint64(64)))];"), 0,
      "t.mil:5:55: error: unknown BLOBFILE argument 'offst' (expected 'path' and 'offset')" },
    /* every argument problem is reported at the BLOBFILE */
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\")))];"), 0,
      "t.mil:5:55: error: BLOBFILE needs an 'offset' argument" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(offset = uint64(64)))];"), 0,
      "t.mil:5:55: error: BLOBFILE needs a 'path' argument" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE())];"), 0,
      "t.mil:5:55: error: BLOBFILE needs a 'path' argument" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(path = string(\"a\"), offset = uint64(64), path = string(\"b\")))];"), 0,
      "t.mil:5:55: error: duplicate BLOBFILE argument 'path'" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(offset = uint64(0), offset = uint64(64), path = string(\"b\")))];"), 0,
      "t.mil:5:55: error: duplicate BLOBFILE argument 'offset'" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(path = string(\"a\"), offset = uint64(64), size = uint64(4)))];"), 0,
      "t.mil:5:55: error: unknown BLOBFILE argument 'size' (expected 'path' and 'offset')" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(path = string(\"a\"), offset = int32(64)))];"), 0,
      "t.mil:5:84: error: BLOBFILE offset must be a uint64 scalar" },
    { S("tensor<fp16, [2]> w = const()[val = tensor<fp16, [2]>(BLOBFILE(path = int32(1), offset = uint64(64)))];"), 0,
      "t.mil:5:64: error: BLOBFILE path must be a string" },
    { S("list<int32, 2> w = const()[val = list<int32, 2>(BLOBFILE(path = string(\"a\"), offset = uint64(64)))];"), 0,
      "t.mil:5:49: error: BLOBFILE needs a tensor type, not list<int32, 2>" },
    /* limits */
    { S("list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<list<int32>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>> c = const();"), 0,
      "t.mil:5:315: error: nesting too deep (more than 64 levels of brackets)" },
};

Test(errors, table) {
    int n = (int)(sizeof cases / sizeof cases[0]);
    cr_assert(n >= 30);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        const BadCase *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->src);
        if (strstr(c->want, "'\\x00'")) len = strlen(c->src) + 2 + strlen(T); /* the NUL case */
        char *buf = malloc(len + 1);   /* exact size, so ASan sees any over-read */
        memcpy(buf, c->src, len);
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = mil_parse("t.mil", buf, len, NULL, &d);
        char first[1024];
        fe_nth_error(&d, 0, first, sizeof first);
        if (p || d.nerrors < 1 || strncmp(first, c->want, strlen(c->want)) != 0) {
            char *all = fe_diag_text(&d);
            cr_log_error("case %d: want\n  %s\ngot (%s):\n%s", i, c->want, p ? "parsed!" : "failed", all);
            free(all);
            failed++;
        }
        mil_program_free(p);
        mil_diag_free(&d);
        free(buf);
    }
    cr_assert_eq(failed, 0, "%d of %d malformed inputs gave the wrong first diagnostic", failed, n);
}
