/* src/cpu/kernels/x86/transpose_avx2.c: the AVX2 tile copy of the
 * transpose (layout.h): 8x8 blocks of 4-byte elements transposed in
 * registers. Reading 8 consecutive elements of 8 rows, instead of one
 * element of each of 16 rows, matters when the rows lie a multiple of 4 KiB
 * apart: 16 such rows share one set of an 8-way L1 cache and evict each other
 * before their lines are used again. Compiled through target attributes
 * only; layout.c calls it only when the CPU has AVX2. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/layout.h"
#include "cpu/kernels/x86/transpose8_avx2.h"

#define AVX2 __attribute__((target("avx2")))

AVX2 void kiln__transpose_tile32_avx2(const uint32_t *x, uint32_t *y, int64_t ni, int64_t nj,
                                      int64_t yi, int64_t sj) {
    const int64_t fi = ni & ~(int64_t)7, fj = nj & ~(int64_t)7; /* the whole 8x8 blocks */
    for (int64_t j = 0; j < nj; j++) /* every row's misses in flight at once */
        _mm_prefetch((const char *)(x + j * sj), _MM_HINT_T0);
    for (int64_t j0 = 0; j0 < fj; j0 += 8)
        for (int64_t i0 = 0; i0 < fi; i0 += 8) {
            __m256 r[8];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) /* input row j0 + k: elements i0 .. i0 + 7 */
                r[k] = _mm256_loadu_ps((const float *)(x + i0 + (j0 + k) * sj));
            kiln__transpose8_avx2(r);
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) /* output row i0 + k: elements j0 .. j0 + 7 */
                _mm256_storeu_ps((float *)(y + (i0 + k) * yi + j0), r[k]);
        }
    for (int64_t j = 0; j < nj; j++) /* the edges: i from fi, then j from fj */
        for (int64_t i = j < fj ? fi : 0; i < ni; i++) y[i * yi + j] = x[i + j * sj];
}

#endif
