/* src/cpu/kernels/x86/transpose8_avx2.h: the 8x8 f32 register transpose the
 * AVX2 transpose copy and GEMM packing share. Include from a file whose
 * functions carry an AVX2 target attribute. */
#ifndef KILN_CPU_KERNELS_X86_TRANSPOSE8_AVX2_H
#define KILN_CPU_KERNELS_X86_TRANSPOSE8_AVX2_H

#include <immintrin.h>

/* r[k] = column k of the 8x8 matrix whose rows were r[0..8). */
static inline __attribute__((always_inline, target("avx2"))) void kiln__transpose8_avx2(__m256 r[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma GCC unroll 8
    for (int k = 0; k < 4; k++) {
        r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}

#endif
