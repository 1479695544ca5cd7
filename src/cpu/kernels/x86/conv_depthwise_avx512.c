/* src/cpu/kernels/x86/conv_depthwise_avx512.c: the AVX-512F row kernel of
 * the depthwise convolution (conv_depthwise.h). Compiled for AVX-512 through
 * target attributes only; conv_depthwise.c calls it only when the CPU has
 * AVX-512F.
 *
 * Outputs whose column taps all lie inside the row (the interior, [qi0, qi1))
 * are computed 64 at a time in four zmm accumulators (16 with a lane mask at
 * the end), taps in (r, s) order with one FMA each; the column stride is
 * 1 (plain loads), 2 (two loads and an even-lane permute) or any (gathers).
 * Kernels 3x3 and 5x5 are instantiated with constant sizes (unrolled taps);
 * other sizes loop. Edge outputs use the scalar kiln__dw_point.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/conv_depthwise.h"

#define DW_ATTR __attribute__((target("avx512f")))
#define DW_INLINE static inline __attribute__((always_inline)) DW_ATTR

static inline __mmask16 lanes(int64_t n) {
    return (__mmask16)(n >= 16 ? 0xffffu : n <= 0 ? 0u : (1u << n) - 1u);
}

/* x[l*sw] for lanes l in [0, cnt) (others 0 and not read), 1 <= cnt <= 16. */
DW_INLINE __m512 dw_load(const float *x, int64_t sw, int64_t cnt) {
    if (sw == 1) return _mm512_maskz_loadu_ps(lanes(cnt), x);
    if (sw == 2) { /* the even elements of x[0 .. 2*cnt-1) */
        const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6,
                                              4, 2, 0);
        int64_t n = 2 * cnt - 1;
        __m512 a = _mm512_maskz_loadu_ps(lanes(n), x);
        __m512 b = _mm512_maskz_loadu_ps(lanes(n - 16), x + 16);
        return _mm512_permutex2var_ps(a, even, b);
    }
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((int)sw));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes(cnt), idx, x, 4);
}

/* Interior outputs [qi0, qi1) of the row; R, S, sw constant when inlined. */
DW_INLINE void dw_interior(const kiln__dw_geom *d, const float *const *rows, const float *w,
                           float bias, float *y, const int64_t R, const int64_t S,
                           const int64_t sw) {
    const int64_t dw = d->dw, pw = d->pw, qi1 = d->qi1;
    const __m512 vb = _mm512_set1_ps(bias);
    int64_t q = d->qi0;
    for (; q + 64 <= qi1; q += 64) {
        __m512 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
        for (int64_t r = 0; r < R; r++) {
            if (!rows[r]) continue;
            const float *x = rows[r] + q * sw - pw;
            for (int64_t s = 0; s < S; s++) {
                const __m512 wv = _mm512_set1_ps(w[r * S + s]);
                const float *xs = x + s * dw;
                a0 = _mm512_fmadd_ps(wv, dw_load(xs, sw, 16), a0);
                a1 = _mm512_fmadd_ps(wv, dw_load(xs + 16 * sw, sw, 16), a1);
                a2 = _mm512_fmadd_ps(wv, dw_load(xs + 32 * sw, sw, 16), a2);
                a3 = _mm512_fmadd_ps(wv, dw_load(xs + 48 * sw, sw, 16), a3);
            }
        }
        _mm512_storeu_ps(y + q, a0);
        _mm512_storeu_ps(y + q + 16, a1);
        _mm512_storeu_ps(y + q + 32, a2);
        _mm512_storeu_ps(y + q + 48, a3);
    }
    for (; q < qi1; q += 16) {
        const int64_t cnt = qi1 - q < 16 ? qi1 - q : 16;
        __m512 a = vb;
        for (int64_t r = 0; r < R; r++) {
            if (!rows[r]) continue;
            const float *x = rows[r] + q * sw - pw;
            for (int64_t s = 0; s < S; s++)
                a = _mm512_fmadd_ps(_mm512_set1_ps(w[r * S + s]), dw_load(x + s * dw, sw, cnt), a);
        }
        _mm512_mask_storeu_ps(y + q, lanes(cnt), a);
    }
}

#define DW_VARIANT(name, R, S, SW)                                                          \
    static DW_ATTR void name(const kiln__dw_geom *d, const float *const *rows, const float *w, \
                             float bias, float *y) {                                        \
        dw_interior(d, rows, w, bias, y, R, S, SW);                                          \
    }
DW_VARIANT(dw3x3_s1, 3, 3, 1)
DW_VARIANT(dw3x3_s2, 3, 3, 2)
DW_VARIANT(dw5x5_s1, 5, 5, 1)
DW_VARIANT(dw5x5_s2, 5, 5, 2)
DW_VARIANT(dwany_s1, d->R, d->S, 1)
DW_VARIANT(dwany_s2, d->R, d->S, 2)
DW_VARIANT(dwany, d->R, d->S, d->sw)

DW_ATTR void kiln__dw_row_avx512(const kiln__dw_geom *d, const float *const *rows, const float *w,
                                 float bias, float *y) {
    int64_t e0 = d->qi0 < d->qi1 ? d->qi0 : d->Q; /* edges: [0, e0) and [e1, Q) */
    int64_t e1 = d->qi0 < d->qi1 ? d->qi1 : d->Q;
    for (int64_t q = 0; q < e0; q++) y[q] = kiln__dw_point(d, rows, w, bias, q);
    if (d->qi0 < d->qi1) {
        const int sq3 = d->R == 3 && d->S == 3, sq5 = d->R == 5 && d->S == 5;
        if (d->sw == 1)
            (sq3 ? dw3x3_s1 : sq5 ? dw5x5_s1 : dwany_s1)(d, rows, w, bias, y);
        else if (d->sw == 2)
            (sq3 ? dw3x3_s2 : sq5 ? dw5x5_s2 : dwany_s2)(d, rows, w, bias, y);
        else
            dwany(d, rows, w, bias, y);
    }
    for (int64_t q = e1; q < d->Q; q++) y[q] = kiln__dw_point(d, rows, w, bias, q);
}

#endif
