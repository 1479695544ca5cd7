/* src/cpu/kernels/x86/winograd_avx512.c: the Winograd input and output
 * transforms of winograd.c in AVX-512 (winograd.h). Compiled through target
 * attributes only, called only when kiln__wino_avx512_ok().
 *
 * Input: the vertical pass (B^T over the a rows) runs on whole vectors of
 * 16 columns; the horizontal pass takes 16 tiles at once, pulling the
 * stride-m columns 16 tiles read out of 3 (F2) or 5 (F4) vectors with
 * two-source permutes, and the last two columns, which the next tile
 * shares, by shifting in one more value (valignd). Each point's 16 tiles
 * then go out as one vector.
 * Output: 16 channels at once; the m*m results of a tile (one vector of 16
 * channels each) are turned channel-major through register transposes and
 * stored a tile row (m floats) per channel (F4); F2 tiles (4 values a
 * channel) and tiles cut by the output's edge go through a small buffer. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/winograd.h"
#include "cpu/kernels/x86/transpose16_avx512.h"
#include "cpu/kernels/x86/winograd_1d_avx512.h"

#define W_ATTR __attribute__((target("avx512f,avx512vl")))
#define INLINE static inline __attribute__((always_inline)) W_ATTR

int kiln__wino_avx512_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}

static inline __mmask16 first_lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* d[l] (l < a) = column m*q + l of row for the 16 tiles q of the vectors at
 * row (row[m*q + l] for q = 0..15). */
INLINE void tile_columns(int m, const float *row, __m512 *d) {
    if (m == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                               28, 30);
        const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        const __m512 z0 = _mm512_loadu_ps(row), z1 = _mm512_loadu_ps(row + 16);
        const __m512 z2 = _mm512_loadu_ps(row + 32);
        d[0] = _mm512_permutex2var_ps(z0, even, z1);
        d[1] = _mm512_permutex2var_ps(z0, odd, z1);
        /* columns 2q+2, 2q+3: tile q+1's first two, the 17th tile's from z2 */
        const __m512 z2s = _mm512_castsi512_ps(
            _mm512_alignr_epi32(_mm512_castps_si512(z2), _mm512_castps_si512(z2), 1));
        d[2] = _mm512_castsi512_ps(
            _mm512_alignr_epi32(_mm512_castps_si512(z2), _mm512_castps_si512(d[0]), 1));
        d[3] = _mm512_castsi512_ps(
            _mm512_alignr_epi32(_mm512_castps_si512(z2s), _mm512_castps_si512(d[1]), 1));
        return;
    }
    const __m512 z0 = _mm512_loadu_ps(row), z1 = _mm512_loadu_ps(row + 16);
    const __m512 z2 = _mm512_loadu_ps(row + 32), z3 = _mm512_loadu_ps(row + 48);
    const __m512 z4 = _mm512_loadu_ps(row + 64);
    const __m512i stride4 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20,
                                              24, 28);
#pragma GCC unroll 4
    for (int l = 0; l < 4; l++) { /* 8 tiles from z0:z1, 8 from z2:z3 */
        const __m512i idx = _mm512_add_epi32(stride4, _mm512_set1_epi32(l));
        const __m512 lo = _mm512_permutex2var_ps(z0, idx, z1);
        const __m512 hi = _mm512_permutex2var_ps(z2, idx, z3);
        d[l] = _mm512_shuffle_f32x4(lo, hi, 0x44);
    }
    const __m512 z4s = _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(z4), _mm512_castps_si512(z4), 1));
    d[4] = _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(z4), _mm512_castps_si512(d[0]), 1));
    d[5] = _mm512_castsi512_ps(
        _mm512_alignr_epi32(_mm512_castps_si512(z4s), _mm512_castps_si512(d[1]), 1));
}

INLINE void in_row(int m, const float *rb, float *tmp, int64_t ld, int64_t tw, float *v,
                   int64_t pstride) {
    const int a = m + 2;
    for (int64_t j = 0; j < ld; j += 16) { /* vertical: tmp = B^T rows */
        __m512 d[6], o[6];
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) d[i] = _mm512_loadu_ps(rb + i * ld + j);
        kiln__wino_in1d_avx512(m, d, o);
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) _mm512_storeu_ps(tmp + i * ld + j, o[i]);
    }
    for (int i = 0; i < a; i++) /* horizontal, 16 tiles at a time */
        for (int64_t q = 0; q < tw; q += 16) {
            const __mmask16 k = first_lanes(tw - q);
            __m512 d[6], o[6];
            tile_columns(m, tmp + i * ld + m * q, d);
            kiln__wino_in1d_avx512(m, d, o);
#pragma GCC unroll 6
            for (int j = 0; j < a; j++)
                _mm512_mask_storeu_ps(v + (i * a + j) * pstride + q, k, o[j]);
        }
}

W_ATTR void kiln__wino_in_row_avx512(int m, const float *rb, float *tmp, int64_t ld, int64_t tw,
                                     float *v, int64_t pstride) {
    if (m == 2)
        in_row(2, rb, tmp, ld, tw, v, pstride);
    else
        in_row(4, rb, tmp, ld, tw, v, pstride);
}

/* res[i*m + j] (16 channels each) = (A^T M A)[i][j] of the L channels at mt. */
INLINE void out_tile_vectors(int m, const float *mt, int64_t tstride, __mmask16 k,
                             __m512 *res) {
    const int a = m + 2;
    __m512 col[6][4]; /* col[j][i] = (A^T M)[i][j] */
#pragma GCC unroll 6
    for (int j = 0; j < a; j++) {
        __m512 d[6], o[4];
#pragma GCC unroll 6
        for (int i = 0; i < a; i++) d[i] = _mm512_maskz_loadu_ps(k, mt + (i * a + j) * tstride);
        kiln__wino_out1d_avx512(m, d, o);
#pragma GCC unroll 4
        for (int i = 0; i < m; i++) col[j][i] = o[i];
    }
#pragma GCC unroll 4
    for (int i = 0; i < m; i++) {
        __m512 d[6], o[4];
#pragma GCC unroll 6
        for (int j = 0; j < a; j++) d[j] = col[j][i];
        kiln__wino_out1d_avx512(m, d, o);
#pragma GCC unroll 4
        for (int j = 0; j < m; j++) res[i * m + j] = o[j];
    }
}

INLINE void out_tile(int m, const float *mt, int64_t tstride, int64_t kc, float *y, int64_t cs,
                     int64_t ldy, int hm, int wm) {
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
        const int L = kc - k0 < 16 ? (int)(kc - k0) : 16;
        __m512 r[16];
        out_tile_vectors(m, mt + k0, tstride, first_lanes(L), r);
        float *yk = y + k0 * cs;
        if (m == 4 && hm == 4 && wm == 4) { /* r[l] = channel l's 4x4 tile, row-major */
            kiln__transpose16_avx512(r);
            for (int l = 0; l < L; l++) { /* (the lane index must be a constant) */
                float *yl = yk + l * cs;
                _mm_storeu_ps(yl, _mm512_extractf32x4_ps(r[l], 0));
                _mm_storeu_ps(yl + ldy, _mm512_extractf32x4_ps(r[l], 1));
                _mm_storeu_ps(yl + 2 * ldy, _mm512_extractf32x4_ps(r[l], 2));
                _mm_storeu_ps(yl + 3 * ldy, _mm512_extractf32x4_ps(r[l], 3));
            }
        } else { /* F2 (4 values a channel), or cut by the edge: through a buffer */
            _Alignas(64) float buf[16][16];
            for (int p = 0; p < m * m; p++) _mm512_store_ps(buf[p], r[p]);
            for (int l = 0; l < L; l++)
                for (int i = 0; i < hm; i++)
                    for (int j = 0; j < wm; j++) yk[l * cs + i * ldy + j] = buf[i * m + j][l];
        }
    }
}

W_ATTR void kiln__wino_out_tile_avx512(int m, const float *mt, int64_t tstride, int64_t kc,
                                       float *y, int64_t cs, int64_t ldy, int hm, int wm) {
    if (m == 2)
        out_tile(2, mt, tstride, kc, y, cs, ldy, hm, wm);
    else
        out_tile(4, mt, tstride, kc, y, cs, ldy, hm, wm);
}

#endif
