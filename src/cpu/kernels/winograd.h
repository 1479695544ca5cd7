/* src/cpu/kernels/winograd.h: the vectorized Winograd transforms of
 * winograd.c (x86/winograd_avx512.c), for F(2x2,3x3) (m = 2, input tile
 * a = 4) and F(4x4,3x3) (m = 4, a = 6). Internal to src/cpu/kernels. */
#ifndef KILN_CPU_KERNELS_WINOGRAD_H
#define KILN_CPU_KERNELS_WINOGRAD_H

#include <stdint.h>

/* Row length (floats) of the input-row buffers the AVX-512 input transform
 * reads for tw tiles of width m: room for its whole-vector over-reads. */
static inline int64_t kiln__wino_row_floats(int m, int64_t tw) {
    return (m * tw + 16 * m + 16 + 15) / 16 * 16;
}

/* Tests: nonzero makes Winograd plans prepared afterwards use the portable
 * transforms on any CPU (0 by default). */
extern int kiln__wino_portable_only;

#if defined(__x86_64__) || defined(__i386__)
#define KILN__WINO_X86 1
/* 1 if this CPU runs the functions below (AVX-512F with VL). */
int kiln__wino_avx512_ok(void);

/* Input transform of one tile row of one channel: rb holds the a input rows
 * of the tile row (row i at rb + i*ld, zero where the convolution pads, and
 * finite up to ld; ld = kiln__wino_row_floats(m, tw)), tmp is a scratch of
 * a*ld floats. Writes point (i, j) of tile q, (B^T d B)[i][j], to
 * v[(i*a + j)*pstride + q] for q < tw. */
void kiln__wino_in_row_avx512(int m, const float *rb, float *tmp, int64_t ld, int64_t tw,
                              float *v, int64_t pstride);

/* Output transform of one tile for kc channels: point p of channel k at
 * mt[p*tstride + k]; writes (A^T M A)[i][j] of channel k to
 * y[k*cs + i*ldy + j] for i < hm, j < wm (hm, wm <= m: the tile's part
 * inside the output). */
void kiln__wino_out_tile_avx512(int m, const float *mt, int64_t tstride, int64_t kc, float *y,
                                int64_t cs, int64_t ldy, int hm, int wm);
#endif

#endif
