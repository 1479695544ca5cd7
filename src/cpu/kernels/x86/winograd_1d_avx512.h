/* src/cpu/kernels/x86/winograd_1d_avx512.h: the 1-D Winograd transforms on
 * vectors of 16 independent values (pixels of one channel in
 * winograd_avx512.c, channels of one pixel in winograd_nchwc_avx512.c), for
 * F(2x2,3x3) (m = 2, input tile a = 4) and F(4x4,3x3) (m = 4, a = 6): the
 * formulas of winograd.c's in1d and out1d. Include from a file whose
 * functions carry an AVX-512F target attribute. */
#ifndef KILN_CPU_KERNELS_X86_WINOGRAD_1D_AVX512_H
#define KILN_CPU_KERNELS_X86_WINOGRAD_1D_AVX512_H

#include <immintrin.h>

#define KILN__W1D static inline __attribute__((always_inline, target("avx512f")))

/* o (a) = B^T d (a). */
KILN__W1D void kiln__wino_in1d_avx512(int m, const __m512 *d, __m512 *o) {
    if (m == 2) {
        o[0] = _mm512_sub_ps(d[0], d[2]);
        o[1] = _mm512_add_ps(d[1], d[2]);
        o[2] = _mm512_sub_ps(d[2], d[1]);
        o[3] = _mm512_sub_ps(d[1], d[3]);
        return;
    }
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f),
                 two = _mm512_set1_ps(2.0f);
    o[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    o[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
    o[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
    o[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), _mm512_sub_ps(d[4], d[2]));
    o[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), _mm512_sub_ps(d[4], d[2]));
    o[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* o (m) = A^T d (a). */
KILN__W1D void kiln__wino_out1d_avx512(int m, const __m512 *d, __m512 *o) {
    if (m == 2) {
        o[0] = _mm512_add_ps(_mm512_add_ps(d[0], d[1]), d[2]);
        o[1] = _mm512_sub_ps(_mm512_sub_ps(d[1], d[2]), d[3]);
        return;
    }
    const __m512 p12 = _mm512_add_ps(d[1], d[2]), m12 = _mm512_sub_ps(d[1], d[2]);
    const __m512 p34 = _mm512_add_ps(d[3], d[4]), m34 = _mm512_sub_ps(d[3], d[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(d[0], p12), p34);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), m34, m12);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), p34, p12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), m34, m12), d[5]);
}

#undef KILN__W1D
#endif
