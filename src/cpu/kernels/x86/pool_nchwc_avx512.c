/* src/cpu/kernels/x86/pool_nchwc_avx512.c: the pooling rows of
 * kiln.PoolNCHWc in AVX-512 (conv_nchwc.h; algorithm pool_nchwc): one
 * vector holds a pixel's 16 channels, so a window is reduced with one
 * vector max (or add) per tap. Compiled through target attributes only;
 * called only where the CPU has AVX-512F. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/conv_nchwc.h"
#include "cpu/kernels/vmath.h"

#define NA KILN__VM_AVX512

/* First and one-past-last tap j of a window starting at b (input position
 * b + j*d) inside [0, n). */
static inline void taps_inside(int64_t b, int64_t d, int64_t k, int64_t n, int64_t *j0,
                               int64_t *j1) {
    int64_t lo = b < 0 ? (-b + d - 1) / d : 0;
    int64_t hi = n - 1 - b < 0 ? 0 : (n - 1 - b) / d + 1;
    *j0 = lo < k ? lo : k;
    *j1 = hi < k ? hi : k;
    if (*j1 < *j0) *j1 = *j0;
}

NA void kiln__nchwc_pool_row_avx512(const kiln__nchwc_pool *g, const float *x, float *y,
                                    int64_t p, uint16_t lanes) {
    int64_t r0, r1;
    const int64_t hb = p * g->sh - g->ph;
    taps_inside(hb, g->dh, g->R, g->H, &r0, &r1);
    /* taps inside the padded input along H (count_include_pad) */
    int64_t pr0, pr1;
    taps_inside(hb + g->ph, g->dh, g->R, g->hp, &pr0, &pr1);
    for (int64_t q = 0; q < g->Q; q++) {
        int64_t s0, s1, ps0, ps1;
        const int64_t wb = q * g->sw - g->pw;
        taps_inside(wb, g->dw, g->S, g->W, &s0, &s1);
        const int64_t inside = (r1 - r0) * (s1 - s0);
        __m512 acc = g->max ? _mm512_set1_ps(-INFINITY) : _mm512_setzero_ps();
        int first = 1;
        for (int64_t r = r0; r < r1; r++) {
            const float *xr = x + ((hb + r * g->dh) * g->W + wb) * 16;
            for (int64_t s = s0; s < s1; s++) {
                const __m512 v = _mm512_loadu_ps(xr + s * g->dw * 16);
                if (!g->max) {
                    acc = _mm512_add_ps(acc, v);
                } else if (first) { /* the reference's rule: take v when v > max */
                    acc = v;
                    first = 0;
                } else {
                    acc = _mm512_mask_mov_ps(acc, _mm512_cmp_ps_mask(v, acc, _CMP_GT_OQ), v);
                }
            }
        }
        if (!g->max) {
            taps_inside(wb + g->pw, g->dw, g->S, g->wp, &ps0, &ps1);
            const int64_t div = g->count_include_pad ? (pr1 - pr0) * (ps1 - ps0) : inside;
            acc = div ? _mm512_div_ps(acc, _mm512_set1_ps((float)div)) : _mm512_set1_ps(NAN);
        }
        _mm512_storeu_ps(y + q * 16, _mm512_maskz_mov_ps((__mmask16)lanes, acc));
    }
}

#endif
