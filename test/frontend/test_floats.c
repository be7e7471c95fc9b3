/* test/frontend/test_floats.c -- float text parses back to the same bits.
 *
 * All 65,536 fp16 bit patterns, in the canonical spelling (mil_format_fp16),
 * in C's `%a` hex spelling and as 17-digit decimals, both as one big tensor
 * literal and as `fp16(<text>)` scalars; 200,000 random fp32 values likewise
 * (canonical and 9-digit decimal).  NaN only has to stay a NaN.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_test.h"
#include "ir/fp16.h"

typedef int (*Fmt)(uint32_t bits, char *buf);

static int fmt16_canon(uint32_t b, char *buf) { return mil_format_fp16((uint16_t)b, buf); }
static int fmt16_hex(uint32_t b, char *buf) {
    float f = mil_h2f((uint16_t)b);
    if (isnan(f) || isinf(f)) return mil_format_fp16((uint16_t)b, buf);
    return sprintf(buf, "%a", (double)f);
}
static int fmt16_dec(uint32_t b, char *buf) {
    float f = mil_h2f((uint16_t)b);
    if (isnan(f) || isinf(f)) return mil_format_fp16((uint16_t)b, buf);
    return sprintf(buf, "%.17g", (double)f);   /* exact for every fp16: parses back to it */
}
static float f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
static int fmt32_canon(uint32_t b, char *buf) { return mil_format_fp32(f32(b), buf); }
static int fmt32_dec(uint32_t b, char *buf) {
    float f = f32(b);
    if (isnan(f) || isinf(f)) return mil_format_fp32(f, buf);
    return sprintf(buf, "%.9g", (double)f);   /* 9 digits identify an fp32 */
}

/* `tensor<dt, [n]> c = const()[val = tensor<dt, [n]>([...])]` over bits[]. */
static char *tensor_program(const char *dt, const uint32_t *bits, int n, Fmt fmt) {
    size_t cap = (size_t)n * 40 + 256, k = 0;
    char *s = malloc(cap);
    k += (size_t)snprintf(s, cap, "program(1.3){func f<ios18>(){tensor<%s, [%d]> c = const()[val = tensor<%s, [%d]>([",
                          dt, n, dt, n);
    for (int i = 0; i < n; i++) {
        if (i) s[k++] = ',';
        k += (size_t)fmt(bits[i], s + k);
    }
    snprintf(s + k, cap - k, "])];}->(c);}");
    return s;
}

static bool same16(uint16_t got, uint16_t want) {
    bool nan_w = (want & 0x7c00) == 0x7c00 && (want & 0x3ff);
    bool nan_g = (got & 0x7c00) == 0x7c00 && (got & 0x3ff);
    return nan_w ? nan_g : got == want;
}

static bool same32(uint32_t got, uint32_t want) {
    if (isnan(f32(want))) return isnan(f32(got));
    return got == want;
}

static void check_tensor(const char *dt, const uint32_t *bits, int n, Fmt fmt, const char *what) {
    char *text = tensor_program(dt, bits, n, fmt);
    MilDiag d;
    mil_diag_init(&d);
    MilProgram *p = fe_parse_str(what, text, NULL, &d);
    cr_assert_not_null(p, "%s does not parse", what);
    const MilConst *c = mil_value_const(p->funcs[0]->body.outs[0]);
    cr_assert_eq(c->count, n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bool ok;
        uint32_t got;
        if (c->type->dtype == MIL_DT_FP16) {
            got = ((const uint16_t *)c->data)[i];
            ok = same16((uint16_t)got, (uint16_t)bits[i]);
        } else {
            memcpy(&got, (const char *)c->data + 4 * (size_t)i, 4);
            ok = same32(got, bits[i]);
        }
        if (!ok && bad++ < 5) {
            char t[64];
            fmt(bits[i], t);
            cr_log_error("%s: %s parsed to %08x, want %08x", what, t, got, bits[i]);
        }
    }
    cr_assert_eq(bad, 0, "%s: %d values changed", what, bad);
    mil_program_free(p);
    mil_diag_free(&d);
    free(text);
}

static uint32_t *all_fp16(void) {
    uint32_t *b = malloc(65536 * sizeof *b);
    for (uint32_t i = 0; i < 65536; i++) b[i] = i;
    return b;
}

Test(fp16, all_patterns_canonical_tensor, .timeout = 60) {
    uint32_t *b = all_fp16();
    check_tensor("fp16", b, 65536, fmt16_canon, "fp16 canonical");
    free(b);
}

Test(fp16, all_patterns_c99_hex_tensor, .timeout = 60) {
    uint32_t *b = all_fp16();
    check_tensor("fp16", b, 65536, fmt16_hex, "fp16 %a");
    free(b);
}

Test(fp16, all_patterns_decimal_tensor, .timeout = 60) {
    uint32_t *b = all_fp16();
    check_tensor("fp16", b, 65536, fmt16_dec, "fp16 decimal");
    free(b);
}

/* Every pattern as its own `fp16(<text>)` scalar, in chunks of statements. */
Test(fp16, all_patterns_scalars, .timeout = 120) {
    const int chunk = 4096;
    for (int base = 0; base < 65536; base += chunk) {
        size_t cap = (size_t)chunk * 80 + 256, k = 0;
        char *s = malloc(cap);
        k += (size_t)snprintf(s, cap, "program(1.3){func f<ios18>(){");
        for (int i = 0; i < chunk; i++) {
            char t[64];
            mil_format_fp16((uint16_t)(base + i), t);
            k += (size_t)snprintf(s + k, cap - k, "fp16 v%d=const()[val=fp16(%s)];", i, t);
        }
        snprintf(s + k, cap - k, "}->();}");
        MilDiag d;
        mil_diag_init(&d);
        MilProgram *p = fe_parse_str("fp16 scalars", s, NULL, &d);
        cr_assert_not_null(p);
        int i = 0;
        for (MilOp *op = p->funcs[0]->body.first; op; op = op->next, i++) {
            uint16_t got = *(const uint16_t *)mil_value_const(op->results[0])->data;
            cr_assert(same16(got, (uint16_t)(base + i)), "fp16 %04x parsed to %04x", base + i, got);
        }
        cr_assert_eq(i, chunk);
        mil_program_free(p);
        mil_diag_free(&d);
        free(s);
    }
}

static uint32_t *random_fp32(int n) {
    unsigned long long st = 0x9E3779B97F4A7C15ull;
    uint32_t *b = malloc((size_t)n * sizeof *b);
    for (int i = 0; i < n; i++) b[i] = (uint32_t)(fe_rand(&st) >> 32);
    /* and the edges */
    const uint32_t edge[] = { 0, 0x80000000u, 1, 0x807fffffu, 0x00800000u, 0x7f7fffffu, 0xff7fffffu,
                              0x7f800000u, 0xff800000u, 0x7fc00000u, 0x3f800001u, 0x33800000u };
    memcpy(b, edge, sizeof edge);
    return b;
}

Test(fp32, random_canonical, .timeout = 60) {
    const int n = 200000;
    uint32_t *b = random_fp32(n);
    check_tensor("fp32", b, n, fmt32_canon, "fp32 canonical");
    free(b);
}

Test(fp32, random_decimal, .timeout = 60) {
    const int n = 200000;
    uint32_t *b = random_fp32(n);
    check_tensor("fp32", b, n, fmt32_dec, "fp32 decimal");
    free(b);
}
