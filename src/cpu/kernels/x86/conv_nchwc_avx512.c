/* src/cpu/kernels/x86/conv_nchwc_avx512.c: the AVX-512F kernels of the
 * blocked layout (conv_nchwc.h): convolution tiles, depthwise tiles and the
 * reorders. Compiled for AVX-512 through target attributes only; the
 * algorithms call them only when the CPU has AVX-512F.
 *
 * Tiles are instantiated per (pixels, blocks) and per column stride (1, 2,
 * or read at run time) so that, in the blocked layout, the input value of
 * pixel i is at a constant offset i * 64 * stride bytes from one pointer;
 * images in plain NCHW (input_blocked 0: the first layer) take the run-time
 * strides. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/x86/conv_nchwc_tiles.h"
#include "cpu/kernels/x86/transpose16_avx512.h"

#define DWN 8 /* pixels per depthwise tile */

/* ---- convolution tiles ------------------------------------------------------------ */

/* mr pixels from column q0 times nv blocks. SW: the column stride when
 * constant (0: g->sw); blocked: X in the blocked layout; edge: mr == 1 and
 * taps in the padding are skipped. */
NI void conv_tile(const int mr, const int nv, const int64_t SW, const int blocked, const int edge,
                  const tile_ctx *t, int64_t q0) {
    const kiln__nchwc_kern *k = t->k;
    const kiln__nchwc_conv *g = &k->g;
    const int64_t sw = SW ? SW : g->sw;
    const int64_t xpix = blocked ? 16 : k->xpix, xlane = blocked ? 1 : k->xlane;
    const int64_t pstep = sw * xpix;
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t cb = t->cb0; cb < t->cb1; cb++) {
        const int64_t cin = g->C - cb * 16 < 16 ? g->C - cb * 16 : 16;
        const float *xb = t->x + cb * k->xcb, *wb = t->w + cb * g->R * g->S * 512;
        for (int64_t r = 0; r < g->R; r++) {
            const int64_t ih = t->p * g->sh - g->ph + r * g->dh;
            if (ih < 0 || ih >= g->H) continue;
            const float *xr = xb + ih * k->xrow;
            for (int64_t s = 0; s < g->S; s++) {
                const int64_t iw = q0 * sw - g->pw + s * g->dw;
                if (edge && (iw < 0 || iw >= g->W)) continue;
                const float *xp = xr + iw * xpix, *wp = wb + (r * g->S + s) * 512;
                if (blocked && !edge && s == 0) /* the row's pixels two tiles on */
#pragma GCC unroll 14
                    for (int i = 0; i < mr; i++)
                        _mm_prefetch((const char *)(xp + (PREFETCH_TILES * mr + i) * pstep), _MM_HINT_T0);
#pragma GCC unroll 4
                for (int64_t ci = 0; ci < cin; ci++) {
                    const __m512 w0 = _mm512_loadu_ps(wp + ci * 32);
                    const __m512 w1 = nv > 1 ? _mm512_loadu_ps(wp + ci * 32 + 16) : w0;
#pragma GCC unroll 14
                    for (int i = 0; i < mr; i++) {
                        const __m512 a = _mm512_set1_ps(xp[i * pstep + ci * xlane]);
                        acc[i][0] = _mm512_fmadd_ps(a, w0, acc[i][0]);
                        if (nv > 1) acc[i][1] = _mm512_fmadd_ps(a, w1, acc[i][1]);
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


/* Variants: blocked stride 1, blocked stride 2, blocked any stride, plain. */
#define CONV_VARIANTS(X) X(s1, 1, 1) X(s2, 2, 1) X(sn, 0, 1) X(plain, 0, 0)
#define CONV_TILE_DEF(V, SWV, BL, MRV, NVV)                                    \
    static NA void conv_##V##_##MRV##_##NVV(const tile_ctx *t, int64_t q0) {   \
        conv_tile(MRV, NVV, SWV, BL, 0, t, q0);                                \
    }
#define CONV_ROWS(X, V, SWV, BL)                                                               \
    X(V, SWV, BL, 1) X(V, SWV, BL, 2) X(V, SWV, BL, 3) X(V, SWV, BL, 4) X(V, SWV, BL, 5)        \
    X(V, SWV, BL, 6) X(V, SWV, BL, 7) X(V, SWV, BL, 8) X(V, SWV, BL, 9) X(V, SWV, BL, 10)       \
    X(V, SWV, BL, 11) X(V, SWV, BL, 12) X(V, SWV, BL, 13) X(V, SWV, BL, 14)
#define CONV_DEF_MR(V, SWV, BL, MRV) CONV_TILE_DEF(V, SWV, BL, MRV, 1) CONV_TILE_DEF(V, SWV, BL, MRV, 2)
#define CONV_DEF_VARIANT(V, SWV, BL)                                                     \
    CONV_ROWS(CONV_DEF_MR, V, SWV, BL)                                                   \
    static NA void conv_##V##_edge_1(const tile_ctx *t, int64_t q0) {                    \
        conv_tile(1, 1, SWV, BL, 1, t, q0);                                              \
    }                                                                                    \
    static NA void conv_##V##_edge_2(const tile_ctx *t, int64_t q0) {                    \
        conv_tile(1, 2, SWV, BL, 1, t, q0);                                              \
    }
CONV_VARIANTS(CONV_DEF_VARIANT)

#define CONV_ENTRY_MR(V, SWV, BL, MRV) {conv_##V##_##MRV##_1, conv_##V##_##MRV##_2},
#define CONV_TABLE(V, SWV, BL) {CONV_ROWS(CONV_ENTRY_MR, V, SWV, BL)},
#define CONV_EDGE(V, SWV, BL) {conv_##V##_edge_1, conv_##V##_edge_2},
static const tile_fn conv_tiles[4][MR][2] = {CONV_VARIANTS(CONV_TABLE)};
static const tile_fn conv_edges[4][2] = {CONV_VARIANTS(CONV_EDGE)};

static int conv_variant(const kiln__nchwc_conv *g) {
    if (!g->input_blocked) return 3;
    return g->sw == 1 ? 0 : g->sw == 2 ? 1 : 2;
}

void kiln__nchwc_conv_row_avx512(const kiln__nchwc_kern *k, const float *x, const float *w,
                                 const float *bias, const float *z, float *y, int64_t kb0, int nb,
                                 int64_t cb0, int64_t cb1, int64_t p, int64_t q0, int64_t q1) {
    tile_ctx t = {.k = k, .x = x, .w = w, .bias = bias, .z = z, .y = y, .p = p, .cb0 = cb0,
                  .cb1 = cb1};
    for (int j = 0; j < 2; j++) t.m[j] = kb0 + j == k->g.KB - 1 ? k->last_lanes : 0xffff;
    const int v = conv_variant(&k->g);
    kiln__nchwc_row_tiles(&t, q0, q1, MR, &conv_tiles[v][0][nb - 1], 2, conv_edges[v][nb - 1]);
}

/* ---- depthwise tiles -------------------------------------------------------------- */

/* nq pixels from column q0 of one block (t->x and t->y at the block). */
NI void dw_tile(const int nq, const int64_t SW, const int edge, const tile_ctx *t, int64_t q0) {
    const kiln__nchwc_conv *g = &t->k->g;
    const int64_t sw = SW ? SW : g->sw;
    const __m512 zero = _mm512_setzero_ps();
    __m512 acc[DWN];
#pragma GCC unroll 8
    for (int i = 0; i < nq; i++) acc[i] = zero;
    for (int64_t r = 0; r < g->R; r++) {
        const int64_t ih = t->p * g->sh - g->ph + r * g->dh;
        if (ih < 0 || ih >= g->H) continue;
        const float *xr = t->x + ih * t->k->xrow;
        for (int64_t s = 0; s < g->S; s++) {
            const __m512 wv = _mm512_loadu_ps(t->w + (r * g->S + s) * 16);
            const int64_t iw = q0 * sw - g->pw + s * g->dw;
            if (edge && (iw < 0 || iw >= g->W)) continue;
            const float *xp = xr + iw * 16;
#pragma GCC unroll 8
            for (int i = 0; i < nq; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_loadu_ps(xp + i * sw * 16), wv, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < nq; i++) store_out(t, 0, q0 + i, acc[i]);
}

#define DW_VARIANTS(X) X(s1, 1) X(s2, 2) X(sn, 0)
#define DW_TILE_DEF(V, SWV, NQ) \
    static NA void dw_##V##_##NQ(const tile_ctx *t, int64_t q0) { dw_tile(NQ, SWV, 0, t, q0); }
#define DW_ROWS(X, V, SWV) \
    X(V, SWV, 1) X(V, SWV, 2) X(V, SWV, 3) X(V, SWV, 4) X(V, SWV, 5) X(V, SWV, 6) X(V, SWV, 7) X(V, SWV, 8)
#define DW_DEF_VARIANT(V, SWV)                                                                \
    DW_ROWS(DW_TILE_DEF, V, SWV)                                                              \
    static NA void dw_##V##_edge(const tile_ctx *t, int64_t q0) { dw_tile(1, SWV, 1, t, q0); }
DW_VARIANTS(DW_DEF_VARIANT)

#define DW_ENTRY(V, SWV, NQ) dw_##V##_##NQ,
#define DW_TABLE(V, SWV) {DW_ROWS(DW_ENTRY, V, SWV)},
#define DW_EDGE(V, SWV) dw_##V##_edge,
static const tile_fn dw_tiles[3][DWN] = {DW_VARIANTS(DW_TABLE)};
static const tile_fn dw_edges[3] = {DW_VARIANTS(DW_EDGE)};

void kiln__nchwc_dw_row_avx512(const kiln__nchwc_kern *k, const float *x, const float *w,
                               const float *bias, const float *z, float *y, int64_t kb, int64_t p,
                               int64_t q0, int64_t q1) {
    const kiln__nchwc_conv *g = &k->g;
    tile_ctx t = {.k = k, .x = x, .w = w, .bias = bias, .z = z, .y = y, .p = p};
    t.m[0] = kb == g->KB - 1 ? k->last_lanes : 0xffff;
    const int v = g->sw == 1 ? 0 : g->sw == 2 ? 1 : 2;
    kiln__nchwc_row_tiles(&t, q0, q1, DWN, dw_tiles[v], 1, dw_edges[v]);
}

/* ---- reorders ---------------------------------------------------------------------- */

/* Channel block cb: plain x (C, HW) <-> blocked (CB, HW, 16), 16 pixels at
 * a time through a 16x16 transpose. */
NA void kiln__nchwc_reorder_avx512(const float *x, float *y, int64_t C, int64_t HW, int64_t cb,
                                   int to_blocked) {
    const int nc = C - cb * 16 < 16 ? (int)(C - cb * 16) : 16;
    const float *plain_in = x + cb * 16 * HW, *blk_in = x + cb * HW * 16;
    float *plain_out = y + cb * 16 * HW, *blk_out = y + cb * HW * 16;
    for (int64_t i = 0; i < HW; i += 16) {
        const int n = HW - i < 16 ? (int)(HW - i) : 16;
        const __mmask16 mk = (__mmask16)(n == 16 ? 0xffffu : (1u << n) - 1u);
        __m512 r[16];
        if (to_blocked) {
#pragma GCC unroll 16
            for (int c = 0; c < 16; c++)
                r[c] = c < nc ? _mm512_maskz_loadu_ps(mk, plain_in + c * HW + i) : _mm512_setzero_ps();
            kiln__transpose16_avx512(r);
            for (int j = 0; j < n; j++) _mm512_storeu_ps(blk_out + (i + j) * 16, r[j]);
        } else {
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = j < n ? _mm512_loadu_ps(blk_in + (i + j) * 16) : _mm512_setzero_ps();
            kiln__transpose16_avx512(r);
            for (int c = 0; c < nc; c++) _mm512_mask_storeu_ps(plain_out + c * HW + i, mk, r[c]);
        }
    }
}

#endif
