/* runtime/cpu/k_simd.c -- vectorised fp16 <-> fp32 conversion and exp with the
 * instruction set chosen at run time from CPUID feature flags (never from a
 * CPU model name): AVX-512F, else F16C (+AVX), else the portable scalar code
 * of ir/fp16.h.  Every path is bit-identical to the scalar reference: round
 * to nearest even, subnormals kept, overflow to inf, NaN quiet with sign and
 * payload (the hardware's vcvtps2ph gives exactly what mil_f2h gives; for
 * vcvtph2ps the only difference, quieting a signalling NaN, is patched lane
 * by lane).  test/runtime/test_simd.c checks all 65536 halves and a sweep of
 * floats on every level the machine has.  k_exp_n is libm's expf on the
 * scalar and F16C levels and a ~1 ulp polynomial on AVX-512 (softmax,
 * attention, sigmoid, silu, exp use it): results then differ from the scalar
 * level within fp32 tolerance, but never with the thread count.
 * Each vector routine clears the upper vector state (vzeroupper) before it
 * returns to baseline code: GCC 12 emits none before the tail call to the
 * scalar remainder, and the dirty state then slowed every later SSE
 * instruction of the process (mil-train's scalar AdamW loop ran 2-5x slower
 * after the fp16 conversions). */
#include <pthread.h>

#include "runtime/cpu/kutil.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define K_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static void h2f_scalar(const uint16_t *s, float *d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = mil_h2f(s[i]);
}
static void f2h_scalar(const float *s, uint16_t *d, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = mil_f2h(s[i]);
}

#ifdef K_X86
/* exponent all ones and mantissa non-zero without the quiet bit: a signalling NaN */
static inline int snan_mask8(const uint16_t *s) {
    int m = 0;
    for (int i = 0; i < 8; i++) m |= ((s[i] & 0x7e00u) == 0x7c00u && (s[i] & 0x1ffu)) << i;
    return m;
}

__attribute__((target("avx,f16c"))) static void h2f_f16c(const uint16_t *s, float *d, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(s + i));
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
        /* rare: lanes with exponent 31 are redone by the reference (sNaN quieting) */
        __m128i e = _mm_and_si128(h, _mm_set1_epi16(0x7c00));
        if (_mm_movemask_epi8(_mm_cmpeq_epi16(e, _mm_set1_epi16(0x7c00))) && snan_mask8(s + i))
            h2f_scalar(s + i, d + i, 8);
    }
    _mm256_zeroupper();
    h2f_scalar(s + i, d + i, n - i);
}

__attribute__((target("avx,f16c"))) static void f2h_f16c(const float *s, uint16_t *d, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_zeroupper();
    f2h_scalar(s + i, d + i, n - i);
}

__attribute__((target("avx512f"))) static void h2f_avx512(const uint16_t *s, float *d, int64_t n) {
    int64_t i = 0;
    const __m256i ex = _mm256_set1_epi16(0x7c00);
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(s + i));
        _mm512_storeu_ps(d + i, _mm512_cvtph_ps(h));
        __m256i e = _mm256_and_si256(h, ex);
        if (_mm256_movemask_epi8(_mm256_cmpeq_epi16(e, ex)) && (snan_mask8(s + i) | snan_mask8(s + i + 8)))
            h2f_scalar(s + i, d + i, 16);
    }
    _mm256_zeroupper();
    h2f_scalar(s + i, d + i, n - i);
}

__attribute__((target("avx512f"))) static void f2h_avx512(const float *s, uint16_t *d, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(d + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_zeroupper();
    f2h_scalar(s + i, d + i, n - i);
}

/* e^x for 16 lanes: x = n ln2 + r (|r| <= ln2 / 2, ln2 in two parts), a
 * degree-7 polynomial for e^r (Cephes' expf coefficients, ~1 ulp), then
 * scalef by 2^n, which rounds underflow to subnormals and 0 and overflow to
 * inf.  x is clamped to [-110, 89] first (NaN passes through the clamp);
 * e^-110 is already 0 in fp32. */
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* every element through the same vector code (the tail with a lane mask),
 * so a result does not depend on where a thread's range starts */
__attribute__((target("avx512f"))) static void exp_avx512(float *v, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(v + i, exp16(_mm512_loadu_ps(v + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(v + i, m, exp16(_mm512_maskz_loadu_ps(m, v + i)));
    }
}
#endif

static void exp_scalar(float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = expf(v[i]);
}

static int simd_best = -1, simd_level = -1;
static void (*exp_fn)(float *, int64_t) = exp_scalar;
static void (*h2f_fn)(const uint16_t *, float *, int64_t) = h2f_scalar;
static void (*f2h_fn)(const float *, uint16_t *, int64_t) = f2h_scalar;

static void simd_detect(void) {
    int best = K_SIMD_SCALAR;
#ifdef K_X86
    __builtin_cpu_init();
    /* F16C is CPUID.1:ECX bit 29, read directly (clang 14 has no "f16c" for
     * __builtin_cpu_supports); "avx" also checks that the OS saves YMM state */
    unsigned a, b, c = 0, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    if (__builtin_cpu_supports("avx") && f16c) best = K_SIMD_F16C;
    if (__builtin_cpu_supports("avx512f")) best = K_SIMD_AVX512;
#endif
    simd_best = best;
    k_simd_set(best);
}

static pthread_once_t simd_once = PTHREAD_ONCE_INIT;

int k_simd_best(void) {
    pthread_once(&simd_once, simd_detect);
    return simd_best;
}

int k_simd_level(void) {
    pthread_once(&simd_once, simd_detect);
    return simd_level;
}

int k_simd_set(int level) {
    if (simd_best < 0) pthread_once(&simd_once, simd_detect);
    if (level < K_SIMD_SCALAR || level > simd_best) return -1;
    simd_level = level;
    h2f_fn = h2f_scalar;
    f2h_fn = f2h_scalar;
    exp_fn = exp_scalar;
#ifdef K_X86
    if (level == K_SIMD_F16C) { h2f_fn = h2f_f16c; f2h_fn = f2h_f16c; }
    if (level == K_SIMD_AVX512) { h2f_fn = h2f_avx512; f2h_fn = f2h_avx512; exp_fn = exp_avx512; }
#endif
    return 0;
}

void k_h2f_n(const uint16_t *src, float *dst, int64_t n) {
    pthread_once(&simd_once, simd_detect);
    h2f_fn(src, dst, n);
}

void k_f2h_n(const float *src, uint16_t *dst, int64_t n) {
    pthread_once(&simd_once, simd_detect);
    f2h_fn(src, dst, n);
}

void k_exp_n(float *v, int64_t n) {
    pthread_once(&simd_once, simd_detect);
    exp_fn(v, n);
}
