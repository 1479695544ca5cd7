/* src/cpu/kernels/winograd.h: the vectorized Winograd transforms of
 * winograd.c (x86/winograd_avx512.c), for F(2x2,3x3) (m = 2, input tile
 * a = 4) and F(4x4,3x3) (m = 4, a = 6). Internal to src/cpu/kernels. */
#ifndef KILN_CPU_KERNELS_WINOGRAD_H
#define KILN_CPU_KERNELS_WINOGRAD_H

#include <stdint.h>

#include "ops/fused.h"

/* Row length (floats) of the input-row buffers the AVX-512 input transform
 * reads for tw tiles of width m: room for its whole-vector over-reads. */
static inline int64_t kiln__wino_row_floats(int m, int64_t tw) {
    return (m * tw + 16 * m + 16 + 15) / 16 * 16;
}

/* The transformed weights of F(m x m, 3x3), computed in double: point t
 * (of T = (m+2)^2) of output channel k and input channel c, (G w[k][c] G^T)[t]
 * for w (K, C, 3, 3), at U[t*ts + c*cs + k] (U (T, C, K): ts = C*K, cs = K). */
void kiln__wino_weights(int m, const float *w, int64_t K, int64_t C, float *U, int64_t ts,
                        int64_t cs);

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

/* ---- the blocked layout (src/ops/nchwc.h; conv_nchwc_winograd.c) ----------
 * Vectors are the 16 channels of a pixel, so both transforms are the 1-D
 * formulas applied to whole vectors, no transposes. Tiles are numbered over
 * the batch: tile i is image i / (th*tw), tile row i / tw % th, column i % tw.
 * A block of up to nt consecutive tiles keeps, in the running thread's
 * scratch, V (T, CB, nt, 16) and M (T, KB, nt, 16): point t of tile q of
 * channel block b at ((t*CB + b)*nt + q)*16 (KB for M). */
typedef struct kiln__wino_nchwc {
    int m;                   /* output tile m x m, input tile (m+2) x (m+2) */
    int64_t CB, KB;          /* channel blocks of X and Y */
    int64_t H, W, P, Q;      /* input and output planes */
    int64_t ph, pw;          /* begin pads */
    int64_t th, tw, nt;      /* tile rows and columns per image; tiles per block */
    kiln__act act;
    uint16_t last_lanes;     /* lanes of Y's block KB-1 that hold channels < K */
} kiln__wino_nchwc;

/* V of tiles [i0, i1) of x (N, CB, H, W, 16), every block; input pixels
 * outside the image read as zero. */
void kiln__wino_nchwc_in_avx512(const kiln__wino_nchwc *w, const float *x, int64_t i0,
                                int64_t i1, float *V);
/* Y blocks [kb0, kb1) of tiles [i0, i1) from M: act(A^T M A + bias + z),
 * padding lanes stored as 0, pixels past P and Q not stored; bias (KB*16),
 * z (N, KB, P, Q, 16) or NULL, y (N, KB, P, Q, 16). */
void kiln__wino_nchwc_out_avx512(const kiln__wino_nchwc *w, const float *M, const float *bias,
                                 const float *z, float *y, int64_t i0, int64_t i1, int64_t kb0,
                                 int64_t kb1);
#endif

#endif
