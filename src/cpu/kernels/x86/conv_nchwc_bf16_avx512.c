/* src/cpu/kernels/x86/conv_nchwc_bf16_avx512.c: the bf16 convolution tiles
 * of the blocked layout (conv_nchwc.h, algorithm conv_nchwc_bf16): the f32
 * tiles' shape (up to 14 pixels x 32 output channels, 28 f32 accumulators)
 * with vdpbf16ps products, two input channels per instruction. Compiled for
 * AVX512_BF16 through target attributes; called only where the CPU has it.
 *
 * Per input block and tap, the tile's pixels (16 f32 channels each) are
 * rounded to bf16 once (vcvtneps2bf16: round to nearest even, lanes past C
 * zero) into a small buffer of channel pairs; each pair is then broadcast as
 * one 32-bit value against the pair's packed weights, [pair][32 output
 * channels] of 32-bit (even channel, odd channel) bf16 pairs. Bias,
 * residual and activation in f32, as the f32 tiles. */
#include "cpu/kernels/conv_nchwc.h"

#ifdef KILN__NCHWC_X86_BF16

#include "cpu/kernels/x86/conv_nchwc_tiles.h"

#define BF __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define BI static inline __attribute__((always_inline)) BF

/* mr pixels from column q0 times nv blocks (as conv_nchwc_avx512.c's
 * conv_tile, blocked input only). t->w: the pair's packed bf16 weights. */
BI void conv_tile_bf16(const int mr, const int nv, const int64_t SW, const int edge,
                       const tile_ctx *t, int64_t q0) {
    const kiln__nchwc_kern *k = t->k;
    const kiln__nchwc_conv *g = &k->g;
    const int64_t sw = SW ? SW : g->sw, pstep = sw * 16;
    const uint32_t *w = (const uint32_t *)(const void *)t->w;
    _Alignas(32) uint32_t in[MR][8]; /* pixel i's channel pairs, bf16 */
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t cb = t->cb0; cb < t->cb1; cb++) {
        const int64_t cin = g->C - cb * 16 < 16 ? g->C - cb * 16 : 16;
        const __mmask16 lanes = (__mmask16)(cin == 16 ? 0xffffu : (1u << cin) - 1u);
        const int64_t pairs = (cin + 1) / 2;
        const float *xb = t->x + cb * k->xcb;
        const uint32_t *wb = w + cb * g->R * g->S * 256;
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t ih = t->p * g->sh - g->ph + r * g->dh;
            if (ih < 0 || ih >= g->H) continue;
            const float *xr = xb + ih * k->xrow;
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t iw = q0 * sw - g->pw + s * g->dw;
                if (edge && (iw < 0 || iw >= g->W)) continue;
                const float *xp = xr + iw * 16;
                const uint32_t *wp = wb + (r * g->S + s) * 256;
                if (!edge && s == 0)
#pragma GCC unroll 14
                    for (int i = 0; i < mr; i++)
                        _mm_prefetch((const char *)(xp + (PREFETCH_TILES * mr + i) * pstep),
                                     _MM_HINT_T0);
#pragma GCC unroll 14
                for (int i = 0; i < mr; i++)
                    _mm256_store_si256((__m256i *)in[i],
                                       (__m256i)_mm512_cvtneps_pbh(
                                           _mm512_maskz_loadu_ps(lanes, xp + i * pstep)));
#pragma GCC unroll 4
                for (int64_t q = 0; q < pairs; q++) {
                    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(wp + q * 32);
                    const __m512bh w1 =
                        nv > 1 ? (__m512bh)_mm512_loadu_si512(wp + q * 32 + 16) : w0;
#pragma GCC unroll 14
                    for (int i = 0; i < mr; i++) {
                        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)in[i][q]);
                        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, w0);
                        if (nv > 1) acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, w1);
                    }
                }
            }
        }
    }
#pragma GCC unroll 14
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) store_out(t, j, q0 + i, acc[i][j]);
}

/* Variants: stride 1, stride 2, any stride. */
#define BF_VARIANTS(X) X(s1, 1) X(s2, 2) X(sn, 0)
#define BF_TILE_DEF(V, SWV, MRV, NVV)                                              \
    static BF void bf_##V##_##MRV##_##NVV(const tile_ctx *t, int64_t q0) {         \
        conv_tile_bf16(MRV, NVV, SWV, 0, t, q0);                                   \
    }
#define BF_ROWS(X, V, SWV)                                                                    \
    X(V, SWV, 1) X(V, SWV, 2) X(V, SWV, 3) X(V, SWV, 4) X(V, SWV, 5) X(V, SWV, 6) X(V, SWV, 7) \
    X(V, SWV, 8) X(V, SWV, 9) X(V, SWV, 10) X(V, SWV, 11) X(V, SWV, 12) X(V, SWV, 13)         \
    X(V, SWV, 14)
#define BF_DEF_MR(V, SWV, MRV) BF_TILE_DEF(V, SWV, MRV, 1) BF_TILE_DEF(V, SWV, MRV, 2)
#define BF_DEF_VARIANT(V, SWV)                                                                \
    BF_ROWS(BF_DEF_MR, V, SWV)                                                                \
    static BF void bf_##V##_edge_1(const tile_ctx *t, int64_t q0) {                           \
        conv_tile_bf16(1, 1, SWV, 1, t, q0);                                                  \
    }                                                                                         \
    static BF void bf_##V##_edge_2(const tile_ctx *t, int64_t q0) {                           \
        conv_tile_bf16(1, 2, SWV, 1, t, q0);                                                  \
    }
BF_VARIANTS(BF_DEF_VARIANT)

#define BF_ENTRY_MR(V, SWV, MRV) {bf_##V##_##MRV##_1, bf_##V##_##MRV##_2},
#define BF_TABLE(V, SWV) {BF_ROWS(BF_ENTRY_MR, V, SWV)},
#define BF_EDGE(V, SWV) {bf_##V##_edge_1, bf_##V##_edge_2},
static const tile_fn bf_tiles[3][MR][2] = {BF_VARIANTS(BF_TABLE)};
static const tile_fn bf_edges[3][2] = {BF_VARIANTS(BF_EDGE)};

void kiln__nchwc_conv_row_bf16_avx512(const kiln__nchwc_kern *k, const float *x,
                                      const uint32_t *w, const float *bias, const float *z,
                                      float *y, int64_t kb0, int nb, int64_t p, int64_t q0,
                                      int64_t q1) {
    tile_ctx t = {.k = k, .x = x, .w = (const float *)(const void *)w, .bias = bias, .z = z,
                  .y = y, .p = p, .cb0 = 0, .cb1 = k->g.CB}; /* group 1 only */
    for (int j = 0; j < 2; j++) t.m[j] = kb0 + j == k->g.KB - 1 ? k->last_lanes : 0xffff;
    const int v = k->g.sw == 1 ? 0 : k->g.sw == 2 ? 1 : 2;
    kiln__nchwc_row_tiles(&t, q0, q1, MR, &bf_tiles[v][0][nb - 1], 2, bf_edges[v][nb - 1]);
}

#endif
