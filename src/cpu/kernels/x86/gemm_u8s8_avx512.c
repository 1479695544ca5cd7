/* src/cpu/kernels/x86/gemm_u8s8_avx512.c: the AVX512_VNNI tile of the u8s8
 * GEMM: 14x32 s32 accumulators (28 zmm), per group of 4 K bytes two B
 * vectors (16 columns x 4 s8) and one broadcast of 4 A bytes per row into
 * vpdpbusd; then the zero-point compensation and the s32 / dequantizing /
 * requantizing epilogue on the registers, the scalar epilogue's operations
 * in vector form (no FMA contraction: the *_round_ps forms). One function
 * per (rows, vectors) so edge tiles run only what they need. Compiled for
 * VNNI through target attributes; the driver calls it only when the CPU has
 * it. */
#include "cpu/kernels/gemm_u8s8_impl.h"

#ifdef KILN__GEMM_X86_VNNI

#include <immintrin.h>
#include <string.h>

#define QA __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define MR KILN__U8S8_MR
#define NV 2 /* vectors of 16 columns per tile row */
#define RND (_MM_FROUND_CUR_DIRECTION)

static inline QA __mmask16 mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}

/* The epilogue of row i, vector j (columns 16j..16j+15, n of them valid). */
static inline __attribute__((always_inline)) QA void store_vec(__m512i raw, int i, int j, int n,
                                                               const kiln__u8s8_tile_ep *ep,
                                                               void *crow) {
    const __mmask16 m = mask16(n);
    const int full = n >= 16;
    /* compensation (wrapping): raw - a_zero colsum + bzero (K a_zero - rowsum) */
    __m512i cs = _mm512_loadu_si512(ep->colsum + 16 * j); /* packed: padded to NR */
    __m512i v = _mm512_sub_epi32(raw, _mm512_mullo_epi32(cs, _mm512_set1_epi32(ep->a_zero)));
    if (ep->bzero) {
        __m512i bz = _mm512_loadu_si512(ep->bzero + 16 * j);
        v = _mm512_add_epi32(v, _mm512_mullo_epi32(bz, _mm512_set1_epi32((int32_t)(
                                                              ep->k_azero -
                                                              (uint32_t)ep->rowsum[i]))));
    }
    if (ep->out == KILN__GEMM_U8S8_S32) {
        if (ep->relu) v = _mm512_max_epi32(v, _mm512_setzero_si512());
        int32_t *c = (int32_t *)crow + 16 * j;
        if (full)
            _mm512_storeu_si512(c, v);
        else
            _mm512_mask_storeu_epi32(c, m, v);
        return;
    }
    __m512 bs = ep->b_scale_per_col ? _mm512_maskz_loadu_ps(m, ep->b_scale + 16 * j)
                                    : _mm512_set1_ps(ep->b_scale[0]);
    __m512 s = _mm512_mul_round_ps(_mm512_set1_ps(ep->a_scale), bs, RND);
    __m512 f = _mm512_mul_round_ps(s, _mm512_cvtepi32_ps(v), RND);
    if (ep->bias) f = _mm512_add_round_ps(f, _mm512_maskz_loadu_ps(m, ep->bias + 16 * j), RND);
    if (ep->relu) f = _mm512_max_ps(_mm512_setzero_ps(), f); /* NaN stays */
    if (ep->out == KILN__GEMM_U8S8_F32) {
        float *c = (float *)crow + 16 * j;
        if (full)
            _mm512_storeu_ps(c, f);
        else
            _mm512_mask_storeu_ps(c, m, f);
        return;
    }
    __m512 q = _mm512_div_round_ps(f, _mm512_set1_ps(ep->y_scale), RND);
    q = _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_add_round_ps(q, _mm512_set1_ps(ep->y_zero), RND);
    q = _mm512_max_ps(q, _mm512_set1_ps(ep->lo)); /* NaN -> lo */
    q = _mm512_min_ps(q, _mm512_set1_ps(ep->hi));
    __m128i b = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q)); /* in range: the low byte */
    _mm_mask_storeu_epi8((char *)crow + 16 * j, m, b);
}

static inline __attribute__((always_inline)) QA void tile_body(const int mr, const int nv, int nr,
                                                               int64_t k4, const uint8_t *pa,
                                                               const int8_t *pb, void *c,
                                                               int64_t ldc,
                                                               const kiln__u8s8_tile_ep *ep) {
    __m512i acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) acc[i][j] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int64_t g = 0; g < k4; g++) {
        __m512i b[NV];
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) b[j] = _mm512_loadu_si512(pb + j * 64);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            int32_t a4;
            memcpy(&a4, pa + i * 4, 4);
            const __m512i a = _mm512_set1_epi32(a4);
#pragma GCC unroll 2
            for (int j = 0; j < nv; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], a, b[j]);
        }
        pa += MR * 4;
        pb += KILN__U8S8_NR * 4;
    }
    /* The epilogue loops over a copy of the sums: indexing the registers
     * themselves from a loop the compiler does not unroll would keep them in
     * memory through the K loop. */
    __m512i sums[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int j = 0; j < nv; j++) _mm512_store_si512(&sums[i][j], acc[i][j]);
    const size_t es = ep->out == KILN__GEMM_U8S8_S32 || ep->out == KILN__GEMM_U8S8_F32 ? 4 : 1;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nv; j++)
            store_vec(_mm512_load_si512(&sums[i][j]), i, j, nr - 16 * j, ep,
                      (char *)c + (size_t)i * (size_t)ldc * es);
}

#define QTILE(MRV, NVV)                                                                      \
    static QA void tile_##MRV##_##NVV(int nr, int64_t k4, const uint8_t *pa, const int8_t *pb, \
                                      void *c, int64_t ldc, const kiln__u8s8_tile_ep *ep) {   \
        tile_body(MRV, NVV, nr, k4, pa, pb, c, ldc, ep);                                     \
    }
#define QROW(r) QTILE(r, 1) QTILE(r, 2)
QROW(1) QROW(2) QROW(3) QROW(4) QROW(5) QROW(6) QROW(7)
QROW(8) QROW(9) QROW(10) QROW(11) QROW(12) QROW(13) QROW(14)

typedef void (*qtile_fn)(int nr, int64_t k4, const uint8_t *pa, const int8_t *pb, void *c,
                         int64_t ldc, const kiln__u8s8_tile_ep *ep);
#define QENTRY(r) {tile_##r##_1, tile_##r##_2},
static const qtile_fn tiles[MR][NV] = {QENTRY(1) QENTRY(2) QENTRY(3) QENTRY(4) QENTRY(5)
                                           QENTRY(6) QENTRY(7) QENTRY(8) QENTRY(9) QENTRY(10)
                                               QENTRY(11) QENTRY(12) QENTRY(13) QENTRY(14)};

void kiln__u8s8_tile_avx512(int mr, int nr, int64_t k4, const uint8_t *pa, const int8_t *pb,
                            void *c, int64_t ldc, const kiln__u8s8_tile_ep *ep) {
    tiles[mr - 1][(nr + 15) / 16 - 1](nr, k4, pa, pb, c, ldc, ep);
}

#endif
