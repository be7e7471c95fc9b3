/* frontend/numconv.c -- number text to typed storage, rounded once.
 *
 * Literals are written in decimal or in any C99 hex-float form, and the
 * target dtype may be narrower than double.  Converting text -> double ->
 * fp16 rounds twice, which is wrong exactly when the double lands on a
 * halfway point of the target format.  So we round the double ourselves
 * (fe_round_binary, ties to even) and, only in that halfway case, ask strtod
 * again under FE_DOWNWARD / FE_UPWARD to learn on which side of the double
 * the exact value lies.  The result is the correctly rounded value of the
 * text for every target: fp32, fp16, bf16, fp8.  fp64 is strtod itself.
 */
#include "frontend/fe_int.h"

#include <fenv.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool fe_parse_u64(const char *s, int n, bool *neg, uint64_t *mag) {
    int i = 0;
    *neg = false;
    *mag = 0;
    if (i < n && s[i] == '-') {
        *neg = true;
        i++;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned dg = (unsigned)(s[i] - '0');
        if (dg > 9) break;
        if (v > (UINT64_MAX - dg) / 10) return false;
        v = v * 10 + dg;
    }
    *mag = v;
    return true;
}

/* strtod over a (pointer, length) slice. */
static double strtod_n(const char *s, int n) {
    char small[128];
    char *b = n < (int)sizeof small ? small : malloc((size_t)n + 1);
    if (!b) return 0.0;
    memcpy(b, s, (size_t)n);
    b[n] = 0;
    double d = strtod(b, NULL);
    if (b != small) free(b);
    return d;
}

double fe_strtod(const char *s, int n) { return strtod_n(s, n); }

/* Which side of d the exact value of the text lies on, by magnitude:
 * -1 below |d|, +1 above, 0 exactly d. */
static int exact_dir(const char *s, int n, double d) {
    int old = fegetround();
    fesetround(FE_DOWNWARD);
    double lo = strtod_n(s, n);
    fesetround(FE_UPWARD);
    double hi = strtod_n(s, n);
    fesetround(old);
    if (lo == hi) return 0;
    bool below = d == hi;   /* exact < d */
    return (d > 0) == below ? -1 : 1;
}

/* |d| rounded to a format with the given exponent bias and mbits fraction
 * bits, as unsigned magnitude bits in IEEE layout (exponent field above the
 * fraction).  Returns UINT64_MAX when the exponent is far out of range. */
static uint64_t round_mag(double a, int dir, int bias, int mbits, bool *tie) {
    *tie = false;
    if (a == 0) return 0;
    int e;
    double fr = frexp(a, &e);                      /* a = fr * 2^e, fr in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(fr, 53);          /* exact, in [2^52, 2^53) */
    int E = e - 1, emin = 1 - bias;                /* a in [2^E, 2^(E+1)) */
    if (E > bias + 2) return UINT64_MAX;
    int shift = ((E < emin ? emin : E) - mbits) - (e - 53);
    uint64_t q;
    if (shift <= 0) {
        q = m;                                     /* mbits >= 52: nothing to drop */
    } else if (shift > 60) {
        q = 0;                                     /* far below half the smallest step */
    } else {
        uint64_t rem = m & ((1ull << shift) - 1), half = 1ull << (shift - 1);
        q = m >> shift;
        *tie = rem == half;
        if (rem > half || (rem == half && (dir > 0 || (dir == 0 && (q & 1))))) q++;
    }
    if (E < emin) return q;                        /* subnormal; 2^mbits = smallest normal */
    return ((uint64_t)(E + bias - 1) << mbits) + q;
}

uint32_t fe_round_binary(double d, int dir, int ebits, int mbits, bool *tie) {
    uint32_t sign = signbit(d) ? 1u << (ebits + mbits) : 0;
    uint32_t inf = ((1u << ebits) - 1) << mbits;
    *tie = false;
    if (isnan(d)) return inf | (1u << (mbits - 1));  /* quiet NaN, no sign */
    if (isinf(d)) return sign | inf;
    uint64_t b = round_mag(fabs(d), dir, (1 << (ebits - 1)) - 1, mbits, tie);
    if (b >= inf) b = inf;
    return sign | (uint32_t)b;
}

/* One rounding of the text's exact value to (ebits, mbits). */
static uint32_t round_text(double d, const char *s, int n, int ebits, int mbits) {
    bool tie;
    uint32_t b = fe_round_binary(d, 0, ebits, mbits, &tie);
    if (tie && s) b = fe_round_binary(d, exact_dir(s, n, d), ebits, mbits, &tie);
    return b;
}

/* E4M3FN: no infinities; S.1111.111 is NaN, 448 the largest finite value. */
static uint8_t round_e4m3fn(double d, const char *s, int n) {
    uint8_t sign = signbit(d) ? 0x80 : 0;
    if (isnan(d) || isinf(d)) return 0x7f;
    bool tie;
    uint64_t b = round_mag(fabs(d), 0, 7, 3, &tie);
    if (tie && s) b = round_mag(fabs(d), exact_dir(s, n, d), 7, 3, &tie);
    if (b > 0x7e) return 0x7f;
    return (uint8_t)(sign | b);
}

bool fe_store_float(MilDType dt, double d, const char *s, int n, void *cell) {
    bool nonfinite = false;
    switch (dt) {
    case MIL_DT_FP64:
        *(double *)cell = d;
        nonfinite = !isfinite(d);
        break;
    case MIL_DT_FP32: {
        uint32_t b = round_text(d, s, n, 8, 23);
        memcpy(cell, &b, 4);
        nonfinite = (b & 0x7f800000u) == 0x7f800000u;
        break;
    }
    case MIL_DT_FP16: {
        uint16_t b = (uint16_t)round_text(d, s, n, 5, 10);
        *(uint16_t *)cell = b;
        nonfinite = (b & 0x7c00u) == 0x7c00u;
        break;
    }
    case MIL_DT_BF16: {
        uint16_t b = (uint16_t)round_text(d, s, n, 8, 7);
        *(uint16_t *)cell = b;
        nonfinite = (b & 0x7f80u) == 0x7f80u;
        break;
    }
    case MIL_DT_FP8E5M2: {
        uint8_t b = (uint8_t)round_text(d, s, n, 5, 2);
        *(uint8_t *)cell = b;
        nonfinite = (b & 0x7cu) == 0x7cu;
        break;
    }
    case MIL_DT_FP8E4M3FN: {
        uint8_t b = round_e4m3fn(d, s, n);
        *(uint8_t *)cell = b;
        nonfinite = (b & 0x7fu) == 0x7fu;
        break;
    }
    default: break;
    }
    /* Text (a finite number) that rounded to inf / NaN overflowed. */
    return !(s && nonfinite);
}
