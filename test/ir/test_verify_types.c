/* test/ir/test_verify_types.c -- the verifier's operand dtype and state
 * rules, on parsed text (exact line:col and message). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "frontend/frontend.h"
#include "ir/ir.h"
#include "testutil.h"

/* Parses `body` inside a main function with parameters
 * (tensor<fp32, [4]> x, tensor<bool, [4]> c, state<tensor<fp32, [4]>> st)
 * and returns the first verifier diagnostic as "line:col: message" in buf
 * ("" when the program verifies). */
static const char *verify_body(const char *body, char *buf, size_t size) {
    char text[4096];
    snprintf(text, sizeof text,
             "program(1.3)\n"
             "[buildInfo = dict<string, string>({})]\n"
             "{\n"
             "    func main<ios18>(tensor<fp32, [4]> x, tensor<bool, [4]> c, state<tensor<fp32, [4]>> st) {\n"
             "%s"
             "        } -> (x);\n"
             "}\n",
             body);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = mil_parse("t.mil", text, strlen(text), NULL, &d);
    cr_assert_not_null(p, "parse failed: %s", d.n ? d.v[0].msg : "");
    buf[0] = 0;
    if (mil_verify(p, &d) > 0) snprintf(buf, size, "%d:%d: %s", d.v[0].loc.line, d.v[0].loc.col, d.v[0].msg);
    mil_program_free(p);
    mil_diag_free(&d);
    return buf;
}

#define EXPECT(body, want)                                    \
    do {                                                      \
        char b_[512];                                         \
        cr_assert_str_eq(verify_body(body, b_, sizeof b_), want); \
    } while (0)

Test(verify_types, binary_operands_share_a_dtype) {
    EXPECT("            tensor<fp32, [4]> a = add(x = x, y = int32(1));\n",
           "5:46: operands of op 'add' have different dtypes: x is fp32, y is int32");
    EXPECT("            tensor<bool, [4]> a = greater(x = x, y = fp16(0x1p+0));\n",
           "5:50: operands of op 'greater' have different dtypes: x is fp32, y is fp16");
    EXPECT("            tensor<fp32, [4]> a = real_div(x = x, y = fp32(0x1p+1));\n", "");
}

Test(verify_types, logical_and_select) {
    EXPECT("            tensor<bool, [4]> a = logical_and(x = c, y = x);\n",
           "5:54: argument 'y' of op 'logical_and' must be bool, got fp32");
    EXPECT("            tensor<fp32, [4]> a = select(a = x, b = x, cond = x);\n",
           "5:56: argument 'cond' of op 'select' must be bool, got fp32");
    EXPECT("            tensor<fp32, [4]> a = select(a = x, b = int32(0), cond = c);\n",
           "5:49: operands of op 'select' have different dtypes: a is fp32, b is int32");
    EXPECT("            tensor<fp32, [4]> a = select(a = x, b = fp32(0x0p+0), cond = c);\n", "");
}

Test(verify_types, states_only_in_state_ops) {
    EXPECT("            tensor<fp32, [4]> a = relu(x = st);\n",
           "5:40: argument 'x' of op 'relu' is a state; only read_state and write_state take states");
    EXPECT("            tensor<fp32, [4]> a = read_state(input = x);\n",
           "5:46: argument 'input' of op 'read_state' must be a state, got tensor<fp32, [4]>");
    EXPECT("            write_state(data = x, input = x);\n",
           "5:35: argument 'input' of op 'write_state' must be a state, got tensor<fp32, [4]>");
    EXPECT("            tensor<fp16, [4]> a = read_state(input = st);\n",
           "5:35: read_state result type tensor<fp16, [4]> does not match the state's tensor<fp32, [4]>");
    EXPECT("            tensor<fp32, [4]> a = read_state(input = st);\n"
           "            write_state(data = a, input = st);\n",
           "");
}
