/* src/cpu/kernels/layout.h: the transpose tile kernels of layout.c,
 * internal to src/cpu/kernels.
 *
 * A tile copy moves an ni x nj block (ni, nj <= 16) of 4-byte elements:
 *   y[i * yi + j] = x[i + j * sj]    for i < ni, j < nj
 * (x's rows run along i, y's along j: the two axes trade places). */
#ifndef KILN_CPU_KERNELS_LAYOUT_H
#define KILN_CPU_KERNELS_LAYOUT_H

#include <stdint.h>

typedef void (*kiln__tile32_fn)(const uint32_t *x, uint32_t *y, int64_t ni, int64_t nj, int64_t yi,
                                int64_t sj);

#if defined(__x86_64__) || defined(__i386__)
/* AVX2: 8x8 blocks transposed in registers (each side read and written 32
 * bytes at a time, whatever its stride), the edges element by element.
 * Call only when the CPU has AVX2. */
void kiln__transpose_tile32_avx2(const uint32_t *x, uint32_t *y, int64_t ni, int64_t nj, int64_t yi,
                                 int64_t sj);
#endif

#endif
