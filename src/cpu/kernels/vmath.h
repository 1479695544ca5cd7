/* src/cpu/kernels/vmath.h: f32 transcendental functions for the fast
 * kernels: exp, log, tanh, erf and the activations built on them (sigmoid,
 * GELU in its erf and tanh forms).
 *
 * Forms:
 *   kiln__vm_<f>16(__m512 x)  AVX-512F, 16 lanes (static inline; callers must
 *                             be compiled for AVX-512 too: KILN__VM_AVX512 on
 *                             the function or a target pragma);
 *   kiln__vm_<f>8(__m256 x)   AVX2 + FMA, 8 lanes, for exp, tanh and sigmoid
 *                             (KILN__VM_AVX2 likewise);
 *   kiln__vm_<f>(float x)     the scalar fallback, from libm (the generic
 *                             path's arithmetic; also the vector forms' oracle).
 *
 * Accuracy of the vector forms over all of f32 (tests/unit/test_fastops.c
 * checks it against libm): exp, log, tanh, erf within a few ulp; special
 * values as C99 Annex F says: exp(-inf) = 0, exp(+inf) = +inf, log(0) = -inf,
 * log(x < 0) = NaN, log(+inf) = +inf, tanh(+-inf) = +-1, erf(+-inf) = +-1, NaN
 * in gives NaN out; denormal inputs and results are handled (no FTZ/DAZ
 * assumed).
 *
 * Algorithms: exp: n = round(x / ln2), r = x - n ln2 (two-part ln2), a degree
 * 6 polynomial (Cephes expf) and the exact scaling p * 2^n (vscalefps, which
 * rounds into the denormal range correctly). log: x = m 2^e with m in
 * [sqrt(1/2), sqrt(2)) (vgetexpps / vgetmantps, exact for denormals too),
 * log(m) by the Cephes logf polynomial. tanh: an odd polynomial below 0.625,
 * 1 - 2 / (exp(2|x|) + 1) above. erf: x P(x^2) below 1; above,
 * 1 - erfc(x) with erfc(x) = exp(-x^2) u G(u), u = 1/x, G a degree-12
 * least-squares fit of erfc(x) e^(x^2) x on x in [1, 10] (relative error
 * < 1e-7 in f32) and exp(-x^2) taken from the exact split x^2 = hi + lo.
 * GELU (erf form) uses erfc directly for x < 0, so that its tiny negative
 * values keep their relative accuracy instead of cancelling in 1 + erf.
 */
#ifndef KILN_CPU_KERNELS_VMATH_H
#define KILN_CPU_KERNELS_VMATH_H

#include <math.h>

/* ---- scalar forms (libm) ---------------------------------------------------- */

static inline float kiln__vm_exp(float x) { return expf(x); }
static inline float kiln__vm_log(float x) { return logf(x); }
static inline float kiln__vm_tanh(float x) { return tanhf(x); }
static inline float kiln__vm_erf(float x) { return erff(x); }
/* 1 / (1 + exp(-x)) */
static inline float kiln__vm_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
/* 0.5 x (1 + erf(x / sqrt 2)); for x < 0 as 0.5 x erfc(|x| / sqrt 2) */
static inline float kiln__vm_gelu_erf(float x) {
    float z = x * 0.70710678118654752f;
    return x < 0 ? 0.5f * x * erfcf(-z) : 0.5f * x * (1.0f + erff(z));
}
/* 0.5 x (1 + tanh(y)) = x / (1 + exp(-2y)), y = sqrt(2/pi) (x + 0.044715 x^3) */
static inline float kiln__vm_gelu_tanh(float x) {
    float y2 = x * (1.5957691216057308f + 0.0713548162726f * x * x);
    return x / (1.0f + expf(-y2));
}

/* ---- AVX-512 forms ---------------------------------------------------------- */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* The polynomials both vector widths evaluate (FMA, MUL, ADD, S: the
 * width's fused multiply-add, product, sum and broadcast):
 * exp's on r = x - n ln2, |r| <= ln2/2 (Cephes expf): 1 + r + r^2 P(r);
 * tanh's on |x| < 0.625, z = x^2: x + x z Q(z). */
#define KILN__VM_EXP_POLY(FMA, MUL, ADD, S, r)                                                     \
    FMA(FMA(FMA(FMA(FMA(FMA(S(1.9875691500e-4f), r, S(1.3981999507e-3f)), r, S(8.3334519073e-3f)), \
                    r, S(4.1665795894e-2f)),                                                     \
                r, S(1.6666665459e-1f)),                                                         \
            r, S(5.0000001201e-1f)),                                                             \
        MUL(r, r), ADD(r, S(1.0f)))
#define KILN__VM_TANH_POLY(FMA, MUL, S, x, z)                                                        \
    FMA(MUL(FMA(FMA(FMA(FMA(S(-5.70498872745e-3f), z, S(2.06390887954e-2f)), z, S(-5.37397155531e-2f)), \
                    z, S(1.33314422036e-1f)),                                                      \
                z, S(-3.33332819422e-1f)),                                                         \
            z),                                                                                    \
        x, x)

#define KILN__VM_AVX512 __attribute__((target("avx512f,avx2,fma")))

#define KILN__VM_S(x) _mm512_set1_ps(x)
#define KILN__VM_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)

/* exp(x), ~1 ulp. x is clamped to [-104, 89] (results 0 and +inf beyond);
 * the operand order of max/min lets NaN through. */
static inline KILN__VM_AVX512 __m512 kiln__vm_exp16(__m512 x) {
    x = _mm512_max_ps(KILN__VM_S(-104.0f), x);
    x = _mm512_min_ps(KILN__VM_S(89.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, KILN__VM_S(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = KILN__VM_FMA(n, KILN__VM_S(-0.693359375f), x);
    r = KILN__VM_FMA(n, KILN__VM_S(2.12194440e-4f), r);
    __m512 p = KILN__VM_EXP_POLY(_mm512_fmadd_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_set1_ps, r);
    return _mm512_scalef_ps(p, n);
}

/* log(x), ~1 ulp; 0 -> -inf, negative -> NaN, +inf -> +inf. */
static inline KILN__VM_AVX512 __m512 kiln__vm_log16(__m512 x) {
    __m512 e = _mm512_getexp_ps(x);
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    __mmask16 big = _mm512_cmp_ps_mask(m, KILN__VM_S(1.41421356237f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, KILN__VM_S(0.5f));
    e = _mm512_mask_add_ps(e, big, e, KILN__VM_S(1.0f));
    __m512 f = _mm512_sub_ps(m, KILN__VM_S(1.0f));
    __m512 z = _mm512_mul_ps(f, f);
    __m512 p = KILN__VM_S(7.0376836292e-2f);
    p = KILN__VM_FMA(p, f, KILN__VM_S(-1.1514610310e-1f));
    p = KILN__VM_FMA(p, f, KILN__VM_S(1.1676998740e-1f));
    p = KILN__VM_FMA(p, f, KILN__VM_S(-1.2420140846e-1f));
    p = KILN__VM_FMA(p, f, KILN__VM_S(1.4249322787e-1f));
    p = KILN__VM_FMA(p, f, KILN__VM_S(-1.6668057665e-1f));
    p = KILN__VM_FMA(p, f, KILN__VM_S(2.0000714765e-1f));
    p = KILN__VM_FMA(p, f, KILN__VM_S(-2.4999993993e-1f));
    p = KILN__VM_FMA(p, f, KILN__VM_S(3.3333331174e-1f));
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(p, f), z);
    y = KILN__VM_FMA(e, KILN__VM_S(-2.12194440e-4f), y);
    y = KILN__VM_FMA(z, KILN__VM_S(-0.5f), y);
    __m512 r = _mm512_add_ps(f, y);
    r = KILN__VM_FMA(e, KILN__VM_S(0.693359375f), r);
    /* special values: NaN stays NaN through f */
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_EQ_OQ),
                           KILN__VM_S(-INFINITY));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ),
                           KILN__VM_S(NAN));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, KILN__VM_S(INFINITY), _CMP_EQ_OQ),
                           KILN__VM_S(INFINITY));
    return r;
}

/* x with the sign bit of s */
static inline KILN__VM_AVX512 __m512 kiln__vm_copysign16(__m512 x, __m512 s) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(x),
                                                         _mm512_castps_si512(s), sign, 0xd8));
}

static inline KILN__VM_AVX512 __m512 kiln__vm_abs16(__m512 x) {
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

/* tanh(x), ~2 ulp. */
static inline KILN__VM_AVX512 __m512 kiln__vm_tanh16(__m512 x) {
    __m512 ax = kiln__vm_abs16(x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 small = KILN__VM_TANH_POLY(_mm512_fmadd_ps, _mm512_mul_ps, _mm512_set1_ps, x, z);
    __m512 cl = _mm512_min_ps(KILN__VM_S(10.0f), ax); /* tanh(10) is 1 in f32 */
    __m512 e = kiln__vm_exp16(_mm512_add_ps(cl, cl));
    __m512 large = _mm512_sub_ps(KILN__VM_S(1.0f),
                                 _mm512_div_ps(KILN__VM_S(2.0f), _mm512_add_ps(e, KILN__VM_S(1.0f))));
    large = kiln__vm_copysign16(large, x);
    return _mm512_mask_mov_ps(large, _mm512_cmp_ps_mask(ax, KILN__VM_S(0.625f), _CMP_LT_OQ), small);
}

/* erf(x) / x on |x| < 1, as a polynomial in t = x^2. */
static inline KILN__VM_AVX512 __m512 kiln__vm_erf_small16(__m512 t) {
    __m512 p = KILN__VM_S(7.853846910e-05f);
    p = KILN__VM_FMA(p, t, KILN__VM_S(-8.010189049e-04f));
    p = KILN__VM_FMA(p, t, KILN__VM_S(5.188327283e-03f));
    p = KILN__VM_FMA(p, t, KILN__VM_S(-2.685381100e-02f));
    p = KILN__VM_FMA(p, t, KILN__VM_S(1.128358543e-01f));
    p = KILN__VM_FMA(p, t, KILN__VM_S(-3.761262596e-01f));
    return KILN__VM_FMA(p, t, KILN__VM_S(1.128379107e+00f));
}

/* erfc(z) for z in [1, 10.5] given the exact split z^2 = hi + lo (so that
 * callers scaling z keep exp(-z^2) accurate); relative error a few ulp. */
static inline KILN__VM_AVX512 __m512 kiln__vm_erfc_big16(__m512 z, __m512 hi, __m512 lo) {
    __m512 u = _mm512_div_ps(KILN__VM_S(1.0f), z);
    __m512 v = _mm512_sub_ps(u, KILN__VM_S(0.55f));
    static const float g[13] = {
        5.023534298e-01f, -1.700351238e-01f, -2.036392875e-02f, 9.835843742e-02f,
        -9.701247513e-02f, 4.984191433e-02f, 1.172598917e-02f, -6.035720557e-02f,
        8.583941311e-02f, -9.617846459e-02f, 3.930245340e-02f, 1.194780767e-01f,
        -1.443135887e-01f};
    __m512 p = KILN__VM_S(g[12]);
    for (int i = 11; i >= 0; i--) p = KILN__VM_FMA(p, v, KILN__VM_S(g[i]));
    __m512 e = kiln__vm_exp16(_mm512_sub_ps(_mm512_setzero_ps(), hi));
    e = _mm512_fnmadd_ps(e, lo, e); /* exp(-hi - lo) ~ exp(-hi) (1 - lo) */
    return _mm512_mul_ps(_mm512_mul_ps(e, u), p);
}

/* erf(x), ~2 ulp. */
static inline KILN__VM_AVX512 __m512 kiln__vm_erf16(__m512 x) {
    __m512 ax = kiln__vm_abs16(x);
    __m512 small = _mm512_mul_ps(x, kiln__vm_erf_small16(_mm512_mul_ps(x, x)));
    /* erf is 1 in f32 from 3.92 on; NaN passes through max/min */
    __m512 z = _mm512_min_ps(KILN__VM_S(4.0f), _mm512_max_ps(KILN__VM_S(1.0f), ax));
    __m512 hi = _mm512_mul_ps(z, z);
    __m512 large = _mm512_sub_ps(KILN__VM_S(1.0f), kiln__vm_erfc_big16(z, hi, _mm512_fmsub_ps(z, z, hi)));
    large = kiln__vm_copysign16(large, x);
    return _mm512_mask_mov_ps(large, _mm512_cmp_ps_mask(ax, KILN__VM_S(1.0f), _CMP_LT_OQ), small);
}

/* 1 / (1 + exp(-x)) */
static inline KILN__VM_AVX512 __m512 kiln__vm_sigmoid16(__m512 x) {
    __m512 e = kiln__vm_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(KILN__VM_S(1.0f), _mm512_add_ps(KILN__VM_S(1.0f), e));
}

/* 0.5 x (1 + erf(x / sqrt 2)) */
static inline KILN__VM_AVX512 __m512 kiln__vm_gelu_erf16(__m512 x) {
    __m512 ax = kiln__vm_abs16(x);
    __m512 z = _mm512_mul_ps(ax, KILN__VM_S(0.70710678118654752f));
    __m512 erf_small = _mm512_mul_ps(z, kiln__vm_erf_small16(_mm512_mul_ps(z, z)));
    /* large: |x| in [sqrt 2, 14.8] (z in [1, 10.47]: erfc is 0 in f32 beyond),
     * z^2 = x^2 / 2 split exactly from x, not from the rounded z */
    __m512 cx = _mm512_min_ps(KILN__VM_S(14.8f), _mm512_max_ps(KILN__VM_S(1.41421356237f), ax));
    __m512 x2 = _mm512_mul_ps(cx, cx);
    __m512 erfc_big = kiln__vm_erfc_big16(_mm512_mul_ps(cx, KILN__VM_S(0.70710678118654752f)),
                                          _mm512_mul_ps(x2, KILN__VM_S(0.5f)),
                                          _mm512_mul_ps(_mm512_fmsub_ps(cx, cx, x2), KILN__VM_S(0.5f)));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __mmask16 small = _mm512_cmp_ps_mask(z, KILN__VM_S(1.0f), _CMP_LT_OQ);
    /* 1 + erf(x/sqrt2): small: 1 +- erf(z); large: 2 - erfc(z) or erfc(z) */
    __m512 s_pos = _mm512_add_ps(KILN__VM_S(1.0f), erf_small);
    __m512 s_neg = _mm512_sub_ps(KILN__VM_S(1.0f), erf_small);
    __m512 l_pos = _mm512_sub_ps(KILN__VM_S(2.0f), erfc_big);
    __m512 pos = _mm512_mask_mov_ps(l_pos, small, s_pos);
    __m512 negv = _mm512_mask_mov_ps(erfc_big, small, s_neg);
    __m512 one_plus = _mm512_mask_mov_ps(pos, neg, negv);
    return _mm512_mul_ps(_mm512_mul_ps(x, KILN__VM_S(0.5f)), one_plus);
}

/* x / (1 + exp(-2y)), y = sqrt(2/pi) (x + 0.044715 x^3) */
static inline KILN__VM_AVX512 __m512 kiln__vm_gelu_tanh16(__m512 x) {
    __m512 y2 = _mm512_mul_ps(
        x, KILN__VM_FMA(_mm512_mul_ps(x, x), KILN__VM_S(0.0713548162726f), KILN__VM_S(1.5957691216057308f)));
    __m512 e = kiln__vm_exp16(_mm512_sub_ps(_mm512_setzero_ps(), y2));
    return _mm512_div_ps(x, _mm512_add_ps(KILN__VM_S(1.0f), e));
}

/* ---- AVX2 forms (8 lanes): exp, tanh, sigmoid --------------------------------
 * The same algorithms and accuracy as the AVX-512 forms, for CPUs without
 * AVX-512 (callers compiled for AVX2 + FMA: KILN__VM_AVX2 or a target pragma).
 * AVX2 has no vscalefps: p * 2^n is taken as (p * 2^a) * 2^b with a + b = n,
 * both halves normal, so only the last product rounds (into the denormals
 * correctly). */

#define KILN__VM_AVX2 __attribute__((target("avx2,fma")))
#define KILN__VM_S8(x) _mm256_set1_ps(x)

/* 2^k for integer-valued k in [-126, 127], as a float */
static inline KILN__VM_AVX2 __m256 kiln__vm_pow2i8(__m256i k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

static inline KILN__VM_AVX2 __m256 kiln__vm_exp8(__m256 x) {
    x = _mm256_max_ps(KILN__VM_S8(-104.0f), x);
    x = _mm256_min_ps(KILN__VM_S8(89.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, KILN__VM_S8(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, KILN__VM_S8(-0.693359375f), x);
    r = _mm256_fmadd_ps(n, KILN__VM_S8(2.12194440e-4f), r);
    __m256 p = KILN__VM_EXP_POLY(_mm256_fmadd_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_set1_ps, r);
    /* n in [-150, 129] (NaN: p is NaN whatever the scale); a = n >> 1 */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i a = _mm256_srai_epi32(ni, 1);
    return _mm256_mul_ps(_mm256_mul_ps(p, kiln__vm_pow2i8(a)),
                         kiln__vm_pow2i8(_mm256_sub_epi32(ni, a)));
}

static inline KILN__VM_AVX2 __m256 kiln__vm_abs8(__m256 x) {
    return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

/* tanh(x), ~2 ulp. */
static inline KILN__VM_AVX2 __m256 kiln__vm_tanh8(__m256 x) {
    __m256 ax = kiln__vm_abs8(x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 small = KILN__VM_TANH_POLY(_mm256_fmadd_ps, _mm256_mul_ps, _mm256_set1_ps, x, z);
    __m256 cl = _mm256_min_ps(KILN__VM_S8(10.0f), ax); /* NaN passes */
    __m256 e = kiln__vm_exp8(_mm256_add_ps(cl, cl));
    __m256 large = _mm256_sub_ps(KILN__VM_S8(1.0f),
                                 _mm256_div_ps(KILN__VM_S8(2.0f), _mm256_add_ps(e, KILN__VM_S8(1.0f))));
    /* large >= 0 (or NaN): x's sign bit or'ed in */
    large = _mm256_or_ps(large, _mm256_and_ps(x, KILN__VM_S8(-0.0f)));
    return _mm256_blendv_ps(large, small, _mm256_cmp_ps(ax, KILN__VM_S8(0.625f), _CMP_LT_OQ));
}

/* 1 / (1 + exp(-x)) */
static inline KILN__VM_AVX2 __m256 kiln__vm_sigmoid8(__m256 x) {
    __m256 e = kiln__vm_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(KILN__VM_S8(1.0f), _mm256_add_ps(KILN__VM_S8(1.0f), e));
}

#endif /* x86 */

#endif
