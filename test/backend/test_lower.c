/* test/backend/test_lower.c -- mil_lower rejects constants whose element
 * count overflows (no signed overflow, a clear "tensor too large"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "frontend/frontend.h"
#include "testutil.h"

static void expect_too_large(const char *ty, const char *val) {
    char prog[4096];
    snprintf(prog, sizeof prog,
             "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [2]> a) {\n"
             "            %s c = const()[name = string(\"c\"), val = %s(%s)];\n"
             "            tensor<fp16, [2]> y = add(x = a, y = a)[name = string(\"y\")];\n"
             "        } -> (y, c);\n}\n",
             ty, ty, val);
    MilDiag d;
    mil_diag_init(&d);
    MilParseOptions po = {0};
    MilProgram *p = mil_parse("huge.mil", prog, strlen(prog), &po, &d);
    cr_assert(p && d.nerrors == 0, "test program does not parse: %s", d.n ? d.v[0].msg : "");
    MilLowerOptions lo = {0};
    MilRtProgram *rp = mil_lower(p, &lo, &d);
    cr_expect_null(rp, "%s lowered", ty);
    mil_rt_program_free(rp);
    char buf[4096] = "";
    if (d.n) mil_diag_format(&d, 0, buf, sizeof buf);
    cr_expect(strstr(buf, "tensor too large") != NULL, "%s: %s", ty, buf);
    mil_program_free(p);
    mil_diag_free(&d);
}

Test(lower, const_numel_overflow) {
    const char *blob = "BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), offset = uint64(64))";
    expect_too_large("tensor<fp16, [9223372036854775807, 9223372036854775807]>", blob);
    expect_too_large("tensor<fp32, [4294967296, 4294967296]>", blob);
    expect_too_large("tensor<fp32, [3, 3074457345618258603]>", blob);
    /* fits int64 but not in bytes */
    expect_too_large("tensor<fp64, [2305843009213693952]>", blob);
}
