/* src/cpu/kernels/x86/winograd_nchwc_avx512.c: the Winograd input and
 * output transforms in the blocked layout (winograd.h), for
 * conv_nchwc_winograd.c. Compiled through target attributes only; called
 * only when the CPU has AVX-512F.
 *
 * Every vector holds the 16 channels of one pixel, so a tile's transform is
 * the 1-D formulas (winograd_1d_avx512.h) run down the a columns and then
 * along the a rows of an a x a array of vectors, in registers and a small
 * stack array; the bias, the residual and the activation are applied to the
 * output pixels before their one store. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/winograd.h"
#include "cpu/kernels/x86/act_avx512.h"
#include "cpu/kernels/x86/winograd_1d_avx512.h"

#define NA KILN__VM_AVX512
#define NI static inline __attribute__((always_inline)) KILN__VM_AVX512

/* Tile (n, ty, tx) of tile index i. */
static void tile_of(const kiln__wino_nchwc *w, int64_t i, int64_t *n, int64_t *ty, int64_t *tx) {
    const int64_t per_image = w->th * w->tw;
    *n = i / per_image;
    *ty = i % per_image / w->tw;
    *tx = i % w->tw;
}

/* Block cb of one tile: the a x a pixels from (iy0, ix0) of plane xb. */
NI void in_tile(const int m, const kiln__wino_nchwc *w, const float *xb, int64_t iy0, int64_t ix0,
                float *v, int64_t pstride) {
    const int a = m + 2;
    const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + a <= w->H && ix0 + a <= w->W;
    __m512 cols[6][6]; /* cols[i][j] = (B^T d)[i][j] */
#pragma GCC unroll 6
    for (int j = 0; j < a; j++) {
        __m512 d[6];
        const int64_t ix = ix0 + j;
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) {
            const int64_t iy = iy0 + i;
            d[i] = inside || (iy >= 0 && iy < w->H && ix >= 0 && ix < w->W)
                       ? _mm512_loadu_ps(xb + (iy * w->W + ix) * 16)
                       : _mm512_setzero_ps();
        }
        __m512 o[6];
        kiln__wino_in1d_avx512(m, d, o);
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) cols[i][j] = o[i];
    }
#pragma GCC unroll 6
    for (int i = 0; i < a; i++) {
        __m512 o[6];
        kiln__wino_in1d_avx512(m, cols[i], o);
#pragma GCC unroll 6
        for (int j = 0; j < a; j++) _mm512_storeu_ps(v + (i * a + j) * pstride, o[j]);
    }
}

NI void in_tiles(const int m, const kiln__wino_nchwc *w, const float *x, int64_t i0, int64_t i1,
                 float *V) {
    const int64_t plane = w->H * w->W * 16, pstride = w->CB * w->nt * 16;
    for (int64_t i = i0; i < i1; i++) {
        int64_t n, ty, tx;
        tile_of(w, i, &n, &ty, &tx);
        const float *xn = x + n * w->CB * plane;
        for (int64_t cb = 0; cb < w->CB; cb++)
            in_tile(m, w, xn + cb * plane, ty * m - w->ph, tx * m - w->pw,
                    V + (cb * w->nt + (i - i0)) * 16, pstride);
    }
}

NA void kiln__wino_nchwc_in_avx512(const kiln__wino_nchwc *w, const float *x, int64_t i0,
                                   int64_t i1, float *V) {
    if (w->m == 2)
        in_tiles(2, w, x, i0, i1, V);
    else
        in_tiles(4, w, x, i0, i1, V);
}

/* Block kb of one tile: the hm x wm output pixels from (oy, ox) of plane yb
 * (and zb). */
NI void out_tile(const int m, const kiln__wino_nchwc *w, const float *mt, int64_t pstride,
                 __m512 bias, __mmask16 lanes, const float *zb, float *yb, int64_t oy, int64_t ox,
                 int hm, int wm) {
    const int a = m + 2;
    __m512 cols[6][4]; /* cols[j][i] = (A^T M)[i][j] */
#pragma GCC unroll 6
    for (int j = 0; j < a; j++) {
        __m512 d[6];
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) d[i] = _mm512_loadu_ps(mt + (i * a + j) * pstride);
        kiln__wino_out1d_avx512(m, d, cols[j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < m; i++) {
        if (i >= hm) break;
        __m512 d[6], o[4];
#pragma GCC unroll 6
        for (int j = 0; j < a; j++) d[j] = cols[j][i];
        kiln__wino_out1d_avx512(m, d, o);
#pragma GCC unroll 4
        for (int j = 0; j < m; j++) {
            if (j >= wm) break;
            const int64_t off = ((oy + i) * w->Q + ox + j) * 16;
            __m512 v = _mm512_add_ps(o[j], bias);
            if (zb) v = _mm512_add_ps(v, _mm512_loadu_ps(zb + off));
            _mm512_storeu_ps(yb + off, _mm512_maskz_mov_ps(lanes, kiln__act16(v, &w->act)));
        }
    }
}

NI void out_tiles(const int m, const kiln__wino_nchwc *w, const float *M, const float *bias,
                  const float *z, float *y, int64_t i0, int64_t i1, int64_t kb0, int64_t kb1) {
    const int64_t plane = w->P * w->Q * 16, pstride = w->KB * w->nt * 16;
    for (int64_t i = i0; i < i1; i++) {
        int64_t n, ty, tx;
        tile_of(w, i, &n, &ty, &tx);
        const int64_t oy = ty * m, ox = tx * m;
        const int hm = w->P - oy < m ? (int)(w->P - oy) : m;
        const int wm = w->Q - ox < m ? (int)(w->Q - ox) : m;
        for (int64_t kb = kb0; kb < kb1; kb++) {
            const int64_t img = (n * w->KB + kb) * plane;
            out_tile(m, w, M + (kb * w->nt + (i - i0)) * 16, pstride,
                     _mm512_loadu_ps(bias + kb * 16),
                     kb == w->KB - 1 ? (__mmask16)w->last_lanes : (__mmask16)0xffff,
                     z ? z + img : NULL, y + img, oy, ox, hm, wm);
        }
    }
}

NA void kiln__wino_nchwc_out_avx512(const kiln__wino_nchwc *w, const float *M, const float *bias,
                                    const float *z, float *y, int64_t i0, int64_t i1, int64_t kb0,
                                    int64_t kb1) {
    if (w->m == 2)
        out_tiles(2, w, M, bias, z, y, i0, i1, kb0, kb1);
    else
        out_tiles(4, w, M, bias, z, y, i0, i1, kb0, kb1);
}

#endif
