/* test/runtime/test_rt_convert.c -- uint64 values above INT64_MAX are
 * rejected (not clamped) when converted to a signed integer type. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "runtime/runtime.h"

Test(rt_convert, uint64_above_int64_max_rejected) {
    MilRtErr e;
    MilRtTensor dst;
    uint64_t v[3] = {5, UINT64_MAX, 1};
    MilRtTensor src = {.dtype = MIL_DT_UINT64, .rank = 1, .dims = {3}, .data = v};
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_INT64, &src, &e), -1);
    cr_assert_str_eq(e.msg, "value 18446744073709551615 at index 1 does not fit in int64");
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_INT32, &src, &e), -1);
    cr_assert_str_eq(e.msg, "value 18446744073709551615 at index 1 does not fit in int32");
    uint64_t w[2] = {(uint64_t)INT64_MAX + 1, 0};
    src.data = w;
    src.dims[0] = 2;
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_INT64, &src, &e), -1);
    cr_assert_str_eq(e.msg, "value 9223372036854775808 at index 0 does not fit in int64");
    /* in range: converted exactly */
    uint64_t ok[2] = {(uint64_t)INT64_MAX, 7};
    src.data = ok;
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_INT64, &src, &e), 0, "%s", e.msg);
    cr_assert_eq(((int64_t *)dst.data)[0], INT64_MAX);
    cr_assert_eq(((int64_t *)dst.data)[1], 7);
    mil_rt_tensor_free(&dst);
}
