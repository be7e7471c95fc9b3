/* test/runtime/test_npy.c -- .npy reader/writer against NumPy-written
 * fixtures (test/runtime/gen_npy_fixtures.py), round trips, conversions and
 * malformed files (clear errors, never a crash). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fp16.h"
#include "runtime/runtime.h"
#include "testutil.h"

static const char *fx(const char *name) {
    static char b[4][1024];
    static int i;
    char *p = b[i++ & 3];
    snprintf(p, 1024, "%s/test/runtime/data/npy/%s", MILC_SOURCE_DIR, name);
    return p;
}

static void read_ok(const char *name, MilRtTensor *t, MilDType dt, int rank, const int64_t *dims) {
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_read(fx(name), t, &e), 0, "%s: %s", name, e.msg);
    cr_assert_eq(t->dtype, dt, "%s: dtype %s", name, mil_rt_dtype_name(t->dtype));
    cr_assert_eq(t->rank, rank, "%s", name);
    for (int i = 0; i < rank; i++) cr_assert_eq(t->dims[i], dims[i], "%s dim %d", name, i);
}

static const int64_t d23[2] = {2, 3};

Test(npy, numpy_files_every_dtype) {
    struct { const char *f; MilDType dt; } c[] = {
        {"f2.npy", MIL_DT_FP16}, {"f4.npy", MIL_DT_FP32}, {"f8.npy", MIL_DT_FP64}, {"i1.npy", MIL_DT_INT8},
        {"i2.npy", MIL_DT_INT16}, {"i4.npy", MIL_DT_INT32}, {"i8.npy", MIL_DT_INT64}, {"u1.npy", MIL_DT_UINT8},
        {"u2.npy", MIL_DT_UINT16}, {"b1.npy", MIL_DT_BOOL},
    };
    /* base = arange(6); the generator's formulas */
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        MilRtTensor t;
        read_ok(c[k].f, &t, c[k].dt, 2, d23);
        for (int i = 0; i < 6; i++) {
            double v = mil_rt_get_f64(&t, i), want;
            switch (c[k].dt) {
            case MIL_DT_FP16: want = i * 0.5 - 1; break;
            case MIL_DT_FP32: want = i * 0.25 - 0.5; break;
            case MIL_DT_FP64: want = i * 0.125 + 1e-9; break;
            case MIL_DT_INT8: want = i * 40 - 100; break;
            case MIL_DT_INT16: want = i * 10000 - 30000; break;
            case MIL_DT_INT32: want = i * 1000000 - 2000000; break;
            case MIL_DT_INT64: want = i * 3000000000.0 - 6000000000.0; break;
            case MIL_DT_UINT8: want = i * 50; break;
            case MIL_DT_UINT16: want = i * 13000; break;
            default: want = i % 2; break;
            }
            cr_assert_eq(v, want, "%s[%d] = %g, want %g", c[k].f, i, v, want);
        }
        mil_rt_tensor_free(&t);
    }
}

Test(npy, versions_byte_order_scalar_empty) {
    MilRtTensor t;
    read_ok("v2_f4.npy", &t, MIL_DT_FP32, 2, d23);
    cr_assert_eq(((float *)t.data)[5], 0.75f);
    mil_rt_tensor_free(&t);
    read_ok("v3_f4.npy", &t, MIL_DT_FP32, 2, d23);
    cr_assert_eq(((float *)t.data)[1], -0.25f);
    mil_rt_tensor_free(&t);
    read_ok("be_f4.npy", &t, MIL_DT_FP32, 2, d23);
    cr_assert_eq(((float *)t.data)[5], 0.75f);  /* byte-swapped to native */
    mil_rt_tensor_free(&t);
    read_ok("scalar_f4.npy", &t, MIL_DT_FP32, 0, NULL);
    cr_assert_eq(((float *)t.data)[0], 3.5f);
    mil_rt_tensor_free(&t);
    int64_t d04[2] = {0, 4};
    read_ok("empty_f4.npy", &t, MIL_DT_FP32, 2, d04);
    mil_rt_tensor_free(&t);
    int64_t d3[1] = {3};
    read_ok("rank1_i4.npy", &t, MIL_DT_INT32, 1, d3);
    cr_assert_eq(((int32_t *)t.data)[1], -8);
    mil_rt_tensor_free(&t);
}

Test(npy, fortran_and_unsupported_rejected) {
    MilRtTensor t;
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_read(fx("fortran_f4.npy"), &t, &e), -1);
    cr_assert(strstr(e.msg, "Fortran-order arrays are not supported"), "%s", e.msg);
    cr_assert_eq(mil_rt_npy_read(fx("c8.npy"), &t, &e), -1);
    cr_assert(strstr(e.msg, "unsupported dtype '<c8'"), "%s", e.msg);
    cr_assert_eq(mil_rt_npy_read(fx("missing.npy"), &t, &e), -1);
    cr_assert(strstr(e.msg, "missing.npy: No such file or directory"), "%s", e.msg);
}

Test(npy, write_matches_numpy_bytes) {
    /* our writer produces exactly what np.save wrote for the same array */
    size_t n;
    char *ref = tu_read_file(fx("f4.npy"), &n);
    cr_assert(ref);
    float v[6];
    for (int i = 0; i < 6; i++) v[i] = (float)i * 0.25f - 0.5f;
    MilRtTensor t = {.dtype = MIL_DT_FP32, .rank = 2, .dims = {2, 3}, .data = v};
    void *buf;
    size_t len;
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_write_mem(&t, &buf, &len, &e), 0);
    cr_assert_eq(len, n);
    cr_assert_eq(memcmp(buf, ref, n), 0, "header: %.*s", 118, (char *)buf + 10);
    free(buf);
    free(ref);
    ref = tu_read_file(fx("rank1_i4.npy"), &n);
    int32_t iv[3] = {7, -8, 9};
    MilRtTensor ti = {.dtype = MIL_DT_INT32, .rank = 1, .dims = {3}, .data = iv};
    cr_assert_eq(mil_rt_npy_write_mem(&ti, &buf, &len, &e), 0);
    cr_assert_eq(len, n);
    cr_assert_eq(memcmp(buf, ref, n), 0);
    free(buf);
    free(ref);
}

Test(npy, round_trip_every_dtype) {
    static const MilDType dts[] = {MIL_DT_FP16, MIL_DT_FP32, MIL_DT_FP64, MIL_DT_INT8, MIL_DT_INT16,
                                   MIL_DT_INT32, MIL_DT_INT64, MIL_DT_UINT8, MIL_DT_UINT16, MIL_DT_UINT32,
                                   MIL_DT_BOOL};
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        for (int rank = 0; rank <= 4; rank++) {
            MilRtTensor t = {.dtype = dts[k], .rank = rank};
            for (int i = 0; i < rank; i++) t.dims[i] = i + 2;
            MilRtErr e;
            cr_assert_eq(mil_rt_tensor_alloc(&t, &e), 0);
            uint64_t s = 42;
            mil_rt_tensor_fill_random(&t, &s);
            void *buf;
            size_t len;
            cr_assert_eq(mil_rt_npy_write_mem(&t, &buf, &len, &e), 0);
            size_t hl = (size_t)((unsigned char *)buf)[8] | (size_t)((unsigned char *)buf)[9] << 8;
            cr_assert_eq((10 + hl) % 64, 0);
            cr_assert_eq(((char *)buf)[10 + hl - 1], '\n');
            MilRtTensor r;
            cr_assert_eq(mil_rt_npy_read_mem(buf, len, &r, &e), 0, "%s", e.msg);
            cr_assert_eq(r.dtype, t.dtype);
            cr_assert(mil_rt_same_shape(&r, &t));
            cr_assert_eq(memcmp(r.data, t.data, mil_rt_nbytes(&t)), 0, "%s rank %d", mil_rt_dtype_name(dts[k]), rank);
            free(buf);
            mil_rt_tensor_free(&r);
            mil_rt_tensor_free(&t);
        }
    }
}

Test(npy, write_file_and_read_back) {
    char *dir = tu_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/o.npy", dir);
    uint16_t h[2] = {mil_f2h(1.5f), mil_f2h(-2.0f)};
    MilRtTensor t = {.dtype = MIL_DT_FP16, .rank = 1, .dims = {2}, .data = h};
    MilRtErr e;
    cr_assert_eq(mil_rt_npy_write(p, &t, &e), 0, "%s", e.msg);
    MilRtTensor r;
    cr_assert_eq(mil_rt_npy_read(p, &r, &e), 0, "%s", e.msg);
    cr_assert_eq(mil_rt_get_f64(&r, 1), -2.0);
    mil_rt_tensor_free(&r);
    cr_assert_eq(mil_rt_npy_write("/nonexistent-dir/o.npy", &t, &e), -1);
    tu_rmrf(dir);
    free(dir);
}

/* --------------------------------------------------------- malformed */

static int parse(const char *hdr, size_t datalen, MilRtErr *e) {
    unsigned char buf[512] = {0};
    size_t hl = strlen(hdr);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)hl;
    buf[9] = 0;
    memcpy(buf + 10, hdr, hl);
    MilRtTensor t;
    int rc = mil_rt_npy_read_mem(buf, 10 + hl + datalen, &t, e);
    if (rc == 0) mil_rt_tensor_free(&t);
    return rc;
}

Test(npy, malformed_headers) {
    MilRtErr e;
    struct { const char *hdr; size_t data; const char *msg; } c[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", 8, NULL},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", 7, "truncated data: expected 8 bytes, found 7"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", 9, "1 unexpected bytes after the array data"},
        {"{'descr': '<f4', 'shape': (2,), }\n", 8, "missing 'fortran_order'"},
        {"{'fortran_order': False, 'shape': (2,), }\n", 8, "missing 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False}\n", 8, "missing 'shape'"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", 8, "Fortran-order arrays are not supported"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }\n", 8, "'fortran_order' is not True/False"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n", 8, "unsupported dtype '|O'"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n", 8, "structured or malformed 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }\n", 8, "bad dimension in 'shape'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, }\n", 8, "bad dimension in 'shape'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2], }\n", 8, "'shape' is not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n", 8, "unexpected key 'x'"},
        {"['descr']\n", 8, "expected '{'"},
        {"{'descr' '<f4'}\n", 8, "expected ':' after 'descr'"},
        {"{'descr': '<f4' 'shape': (2,)}\n", 8, "expected ',' or '}'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 8, "dimension too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1), }\n", 4, "rank above 16"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }\n", 8, "array too large"},
        {"{'descr': '<f4", 8, "malformed 'descr'"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        memset(&e, 0, sizeof e);
        int rc = parse(c[i].hdr, c[i].data, &e);
        if (!c[i].msg) {
            cr_assert_eq(rc, 0, "case %zu: %s", i, e.msg);
            continue;
        }
        cr_assert_eq(rc, -1, "case %zu accepted", i);
        cr_assert(strstr(e.msg, c[i].msg), "case %zu: got '%s', want '%s'", i, e.msg, c[i].msg);
    }
}

Test(npy, bad_magic_and_version) {
    MilRtErr e;
    MilRtTensor t;
    cr_assert_eq(mil_rt_npy_read_mem("\x93NUMPX\x01\x00\x00\x00", 10, &t, &e), -1);
    cr_assert_str_eq(e.msg, "<memory>: not a .npy file (bad magic)");
    cr_assert_eq(mil_rt_npy_read_mem("\x93NUMPY\x04\x00\x00\x00", 10, &t, &e), -1);
    cr_assert_str_eq(e.msg, "<memory>: unsupported .npy format version 4.0");
    cr_assert_eq(mil_rt_npy_read_mem("\x93NUMPY\x01\x00\xff\x00", 10, &t, &e), -1);
    cr_assert_str_eq(e.msg, "<memory>: truncated header");
    cr_assert_eq(mil_rt_npy_read_mem("\x93NUM", 4, &t, &e), -1);
    cr_assert_eq(mil_rt_npy_read_mem("\x93NUMPY\x02\x00\x00\x00", 10, &t, &e), -1);
    cr_assert_str_eq(e.msg, "<memory>: truncated header");
}

Test(npy, every_truncation_is_an_error) {
    size_t n;
    char *buf = tu_read_file(fx("v2_f4.npy"), &n);
    cr_assert(buf);
    for (size_t len = 0; len < n; len++) {
        /* an exact-size copy, so ASan sees any read past the end */
        char *cut = malloc(len ? len : 1);
        memcpy(cut, buf, len);
        MilRtTensor t;
        MilRtErr e = {{0}};
        cr_assert_eq(mil_rt_npy_read_mem(cut, len, &t, &e), -1, "length %zu accepted", len);
        cr_assert(e.msg[0]);
        free(cut);
    }
    free(buf);
}

Test(npy, garbage_headers_never_crash) {
    uint64_t s = 7;
    for (int iter = 0; iter < 2000; iter++) {
        unsigned char buf[160];
        memcpy(buf, "\x93NUMPY\x01\x00", 8);
        buf[8] = 140;
        buf[9] = 0;
        const char *alphabet = "{}()'\":, <>|=fiub12480TrueFalsdcposhp\n";
        size_t na = strlen(alphabet);
        for (int i = 10; i < 150; i++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            buf[i] = (unsigned char)alphabet[s % na];
        }
        MilRtTensor t;
        MilRtErr e;
        if (mil_rt_npy_read_mem(buf, 150 + (s % 10), &t, &e) == 0) mil_rt_tensor_free(&t);
    }
}

/* ------------------------------------------------------ conversions */

Test(npy, convert_checked) {
    MilRtErr e;
    int64_t v[3] = {1, -128, 300};
    MilRtTensor src = {.dtype = MIL_DT_INT64, .rank = 1, .dims = {3}, .data = v}, dst;
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_INT8, &src, &e), -1);
    cr_assert_str_eq(e.msg, "value 300 at index 2 does not fit in int8");
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_INT32, &src, &e), 0);
    cr_assert_eq(((int32_t *)dst.data)[1], -128);
    mil_rt_tensor_free(&dst);
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_UINT8, &src, &e), -1);
    cr_assert_str_eq(e.msg, "value -128 at index 1 does not fit in uint8");
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_FP32, &src, &e), -1);
    cr_assert_str_eq(e.msg, "cannot convert int64 to fp32");
    double d[2] = {0.1, 70000.0};
    MilRtTensor sd = {.dtype = MIL_DT_FP64, .rank = 1, .dims = {2}, .data = d};
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_FP16, &sd, &e), 0);
    cr_assert_eq(((uint16_t *)dst.data)[0], mil_f2h(0.1f));
    cr_assert(isinf(mil_rt_get_f64(&dst, 1)));
    mil_rt_tensor_free(&dst);
    uint8_t b[1] = {1};
    MilRtTensor sb = {.dtype = MIL_DT_BOOL, .rank = 1, .dims = {1}, .data = b};
    cr_assert_eq(mil_rt_tensor_convert(&dst, MIL_DT_INT32, &sb, &e), -1);
}
