/* src/cpu/kernels/x86/conv_copy_avx512.c: the data movement of the GEMM
 * convolutions (conv_algo.h) in AVX-512:
 *   kiln__copy_stride2: the stride-2 row copy of the im2col gathers, 16
 *     outputs from two loaded vectors through one two-source permute, the
 *     tail with masked loads so nothing past src[2n-2] is read;
 *   kiln__transpose_f32: 16x16 blocks through the register transpose, edge
 *     blocks with masked loads and stores. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdint.h>

#include "cpu/kernels/x86/transpose16_avx512.h"

#define C_ATTR __attribute__((target("avx512f")))

void kiln__copy_stride2_avx512(float *restrict dst, const float *restrict src, int64_t n);
void kiln__transpose_f32_avx512(const float *restrict src, int64_t lds, int64_t rows,
                                int64_t cols, float *restrict dst, int64_t ldd);

static inline __mmask16 first_lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

C_ATTR void kiln__copy_stride2_avx512(float *restrict dst, const float *restrict src, int64_t n) {
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int64_t t = 0;
    for (; t + 16 < n; t += 16) /* reads src[2t .. 2t+31] <= src[2n-3] */
        _mm512_storeu_ps(dst + t, _mm512_permutex2var_ps(_mm512_loadu_ps(src + 2 * t), even,
                                                         _mm512_loadu_ps(src + 2 * t + 16)));
    if (t < n) { /* 1..16 outputs from 2*(n-t)-1 inputs */
        const int64_t in = 2 * (n - t) - 1;
        const __mmask16 m0 = in >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << in) - 1u);
        const __mmask16 m1 = in > 16 ? (__mmask16)((1u << (in - 16)) - 1u) : 0;
        const __m512 a = _mm512_maskz_loadu_ps(m0, src + 2 * t);
        const __m512 b = _mm512_maskz_loadu_ps(m1, src + 2 * t + 16);
        _mm512_mask_storeu_ps(dst + t, (__mmask16)((1u << (n - t)) - 1u),
                              _mm512_permutex2var_ps(a, even, b));
    }
}

C_ATTR void kiln__transpose_f32_avx512(const float *restrict src, int64_t lds, int64_t rows,
                                       int64_t cols, float *restrict dst, int64_t ldd) {
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        const int nr = rows - r0 < 16 ? (int)(rows - r0) : 16;
        const __mmask16 mrow = first_lanes(nr);
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            const int nc = cols - c0 < 16 ? (int)(cols - c0) : 16;
            const __mmask16 mcol = first_lanes(nc);
            __m512 v[16];
            for (int i = 0; i < 16; i++)
                v[i] = i < nr ? _mm512_maskz_loadu_ps(mcol, src + (r0 + i) * lds + c0)
                              : _mm512_setzero_ps();
            kiln__transpose16_avx512(v);
            for (int j = 0; j < nc; j++)
                _mm512_mask_storeu_ps(dst + (c0 + j) * ldd + r0, mrow, v[j]);
        }
    }
}

#endif
