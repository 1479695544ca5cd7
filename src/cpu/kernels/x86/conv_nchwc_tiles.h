/* src/cpu/kernels/x86/conv_nchwc_tiles.h: what the f32 and bf16 tile
 * kernels of the blocked layout share (conv_nchwc_avx512.c,
 * conv_nchwc_bf16_avx512.c; conv_nchwc.h describes the tiles): the context
 * of one row call, the output store with bias, residual and activation, and
 * the walk of a row's columns over edge pixels and interior tiles. Include
 * from AVX-512 code only. */
#ifndef KILN_CPU_KERNELS_X86_CONV_NCHWC_TILES_H
#define KILN_CPU_KERNELS_X86_CONV_NCHWC_TILES_H

#include <immintrin.h>

#include "cpu/kernels/conv_nchwc.h"
#include "cpu/kernels/x86/act_avx512.h"

#define NA KILN__VM_AVX512
#define NI static inline __attribute__((always_inline)) KILN__VM_AVX512
#define MR 14 /* pixels per convolution tile (x 2 blocks: 28 accumulators) */
/* Blocked input: each tile prefetches, per input block and kernel row, the
 * pixels this many tiles further along the row (the input planes of a tile
 * are read as CB interleaved streams, which the hardware prefetchers follow
 * poorly: 12-15% on MobileNetV2's 1x1 projections at batch 8). */
#define PREFETCH_TILES 2

/* What every tile of one row call shares. */
typedef struct tile_ctx {
    const kiln__nchwc_kern *k;
    const float *x, *w, *bias, *z; /* x: the image (depthwise: its block); z may be NULL */
    float *y;                      /* the image's first output block of the call */
    int64_t p;
    int64_t cb0, cb1; /* input blocks summed over */
    __mmask16 m[2]; /* lanes of each output block holding real channels */
} tile_ctx;

/* Output value v of pixel (p, q) of block j: + bias, + z, act, padding lanes
 * zeroed, stored. */
NI void store_out(const tile_ctx *t, int j, int64_t q, __m512 v) {
    const kiln__nchwc_kern *k = t->k;
    const int64_t off = j * k->yblock + (t->p * k->g.Q + q) * 16;
    v = _mm512_add_ps(v, _mm512_loadu_ps(t->bias + 16 * j));
    if (t->z) v = _mm512_add_ps(v, _mm512_loadu_ps(t->z + off));
    _mm512_storeu_ps(t->y + off, _mm512_maskz_mov_ps(t->m[j], kiln__act16(v, &k->g.act)));
}

typedef void (*tile_fn)(const tile_ctx *t, int64_t q0);

/* Columns [q0, q1): edge pixels one at a time, the interior in tiles of
 * width up to `width` (table tiles[width - 1] ... tiles[0]). */
static inline NA void kiln__nchwc_row_tiles(const tile_ctx *t, int64_t q0, int64_t q1, int width,
                                              const tile_fn *tiles, int tstride, tile_fn edge) {
    const kiln__nchwc_kern *k = t->k;
    int64_t q = q0;
    for (; q < q1 && q < k->qlo; q++) edge(t, q);
    const int64_t e = q1 < k->qhi ? q1 : k->qhi;
    for (; q + width <= e; q += width) tiles[(width - 1) * tstride](t, q);
    if (q < e) {
        tiles[(e - q - 1) * tstride](t, q);
        q = e;
    }
    for (; q < q1; q++) edge(t, q);
}

#endif
