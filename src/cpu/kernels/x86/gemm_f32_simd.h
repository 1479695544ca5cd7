/* src/cpu/kernels/x86/gemm_f32_simd.h: the f32 GEMM register-tile kernel and
 * its vector epilogue, written once and instantiated per x86 ISA by
 * gemm_f32_avx512.c and gemm_f32_avx2.c, and with bf16 products by
 * gemm_bf16_avx512.c (include this after defining):
 *
 *   GS_ATTR          attribute enabling the ISA on each function
 *   GS_FN(x)         per-ISA name of x
 *   GS_W, GS_MR, GS_NV   lanes per vector, tile rows, vectors per tile row
 *                    (tile: MR x NR with NR = W * NV; NV is 2 here)
 *   gs_v, gs_mask    vector and lane-mask types
 *   gs_zero() gs_set1(x) gs_loadu(p) gs_storeu(p, v)
 *   gs_add gs_sub gs_mul gs_div gs_fma(a, b, c) = a*b+c  gs_abs(x)
 *   gs_max(a, b) gs_min(a, b)   x86 semantics: b when either is NaN
 *   gs_round(x)      nearest integer (as float)
 *   gs_scale2(p, n)  p * 2^n, n integral in [-126, 127]
 *   gs_select_neg(x, if_neg, if_pos)   per lane: x < 0 ? if_neg : if_pos
 *   gs_mask_first(n) lanes [0, n) (n >= 1; n >= W: all)
 *   gs_maskload(p, m) (other lanes 0, not read), gs_maskstore(p, m, v)
 *   GS_BF16          (optional, AVX-512 only) the panels hold bf16 pairs along
 *                    K and the products are vdpbf16ps (f32 accumulation)
 *
 * Tile: for each k, NV vectors of the packed B row are loaded and each of the
 * MR A values is broadcast into NV FMAs: MR*NV accumulators stay in registers
 * (28 of 32 zmm for 14x32; 12 of 16 ymm for 6x16). One function per (mr, nv)
 * pair, so edge tiles run only the rows and vectors they need. */

#include <immintrin.h>

#define GS_NR (GS_W * GS_NV)

/* ---- vector activations ---------------------------------------------------- */

/* exp(x), relative error ~2 ulp (Cephes expf): x clamped to [-87.3, 88.3]
 * (so 0 and +inf come out as ~1e-38 and ~2e38), NaN propagates. */
static inline GS_ATTR gs_v GS_FN(gs_exp)(gs_v x) {
    x = gs_max(gs_set1(-87.3f), x); /* NaN-preserving operand order */
    x = gs_min(gs_set1(88.3f), x);
    gs_v n = gs_round(gs_mul(x, gs_set1(1.44269504088896341f)));
    gs_v r = gs_fma(n, gs_set1(-0.693359375f), x);
    r = gs_fma(n, gs_set1(2.12194440e-4f), r);
    gs_v p = gs_set1(1.9875691500e-4f);
    p = gs_fma(p, r, gs_set1(1.3981999507e-3f));
    p = gs_fma(p, r, gs_set1(8.3334519073e-3f));
    p = gs_fma(p, r, gs_set1(4.1665795894e-2f));
    p = gs_fma(p, r, gs_set1(1.6666665459e-1f));
    p = gs_fma(p, r, gs_set1(5.0000001201e-1f));
    p = gs_fma(p, gs_mul(r, r), gs_add(r, gs_set1(1.0f)));
    return gs_scale2(p, n);
}

/* x / (1 + exp(-z)): x * sigmoid(z). */
static inline GS_ATTR gs_v GS_FN(gs_x_sigmoid)(gs_v x, gs_v z) {
    return gs_div(x, gs_add(gs_set1(1.0f), GS_FN(gs_exp)(gs_sub(gs_zero(), z))));
}

/* 0.5 x (1 + erf(x/sqrt2)), erf from Abramowitz-Stegun 7.1.26 (|error| <
 * 1.5e-7): 1 - erf(z) = q(t) exp(-z^2), t = 1/(1 + 0.3275911 z), z >= 0. */
static inline GS_ATTR gs_v GS_FN(gs_gelu_erf)(gs_v x) {
    gs_v z = gs_mul(gs_abs(x), gs_set1(0.70710678118654752f));
    gs_v t = gs_div(gs_set1(1.0f), gs_fma(z, gs_set1(0.3275911f), gs_set1(1.0f)));
    gs_v q = gs_set1(1.061405429f);
    q = gs_fma(q, t, gs_set1(-1.453152027f));
    q = gs_fma(q, t, gs_set1(1.421413741f));
    q = gs_fma(q, t, gs_set1(-0.284496736f));
    q = gs_fma(q, t, gs_set1(0.254829592f));
    q = gs_mul(gs_mul(q, t), GS_FN(gs_exp)(gs_sub(gs_zero(), gs_mul(z, z))));
    gs_v one_plus_erf = gs_select_neg(x, q, gs_sub(gs_set1(2.0f), q));
    return gs_mul(gs_mul(x, gs_set1(0.5f)), one_plus_erf);
}

/* The activations too big to inline into every tile (ReLU and Clip are
 * applied in the epilogue itself). */
static inline GS_ATTR gs_v GS_FN(gs_act)(gs_v v, const kiln__gemm_tile_ep *ep) {
    switch (ep->act) {
    case KILN__GEMM_ACT_SILU: return GS_FN(gs_x_sigmoid)(v, v);
    case KILN__GEMM_ACT_GELU_TANH: {
        /* 0.5 x (1 + tanh(y)) = x sigmoid(2y), y = sqrt(2/pi) (x + 0.044715 x^3) */
        gs_v x2 = gs_mul(v, v);
        gs_v z = gs_mul(v, gs_fma(x2, gs_set1(2.0f * 0.79788456080286536f * 0.044715f),
                                  gs_set1(2.0f * 0.79788456080286536f)));
        return GS_FN(gs_x_sigmoid)(v, z);
    }
    case KILN__GEMM_ACT_GELU_ERF: return GS_FN(gs_gelu_erf)(v);
    default: return v;
    }
}

/* ---- the tile ----------------------------------------------------------------- */

/* C (mr,nr) = epilogue(pa (kc,MR) x pb (kc,NR)) for constant mr, nv (the
 * caller's nr needs nv vectors). Always inlined into one function per
 * (mr, nv) so the accumulators become registers. */
static inline __attribute__((always_inline)) GS_ATTR void GS_FN(tile_body)(
    const int mr, const int nv, int nr, int64_t kc, const void *pav, const void *pbv, float *c,
    int64_t ldc, const kiln__gemm_tile_ep *ep) {
    gs_v acc[GS_MR][GS_NV];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) acc[i][j] = gs_zero();

    /* Bring the C tile (when the product adds to it: beta != 0) and the
     * residual tile the last K block adds into L2 while the products run:
     * every cache line of their rows (first, middle and last element; a
     * 32-float row spans up to 3). A C tile only written is not fetched:
     * with few K values (1x1 convolutions of 16-32 channels) those fetches
     * cost more than the stores' own misses. */
    const float *res = ep->last ? ep->res : NULL;
    const int read_c_tile = ep->beta != 0.0f;
    for (int i = 0; i < mr; i++) {
        const char *row = (const char *)(c + i * ldc);
        if (read_c_tile) {
            _mm_prefetch(row, _MM_HINT_T1);
            if (nr > GS_W) _mm_prefetch(row + GS_W * sizeof(float), _MM_HINT_T1);
            _mm_prefetch(row + (nr - 1) * sizeof(float), _MM_HINT_T1);
        }
        if (res) {
            const char *rrow = (const char *)(res + i * ep->ldr);
            _mm_prefetch(rrow, _MM_HINT_T1);
            if (nr > GS_W) _mm_prefetch(rrow + GS_W * sizeof(float), _MM_HINT_T1);
            _mm_prefetch(rrow + (nr - 1) * sizeof(float), _MM_HINT_T1);
        }
    }

#ifdef GS_BF16
    /* per K pair: NV vectors of 16 columns x 2 bf16, one broadcast pair per row */
    const int32_t *restrict pa = pav;
    const int16_t *restrict pb = pbv;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k += 2) {
        __m512bh b[GS_NV];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) b[j] = (__m512bh)_mm512_loadu_si512(pb + j * 2 * GS_W);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32(pa[i]);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, b[j]);
        }
        pa += GS_MR;
        pb += 2 * GS_NR;
    }
#else
    const float *restrict pa = pav, *restrict pb = pbv;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; k++) {
        gs_v b[GS_NV];
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) b[j] = gs_loadu(pb + j * GS_W);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            gs_v a = gs_set1(pa[i]);
#pragma GCC unroll 4
            for (int j = 0; j < nv; j++) acc[i][j] = gs_fma(a, b[j], acc[i][j]);
        }
        pa += GS_MR;
        pb += GS_NR;
    }
#endif

    /* Epilogue: full vectors unmasked, the last partial one masked. */
    const gs_v alpha = gs_set1(ep->alpha), beta = gs_set1(ep->beta);
    const int read_c = ep->beta != 0.0f;
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        float *crow = c + i * ldc;
        const float *rrow = ep->res ? ep->res + i * ep->ldr : NULL;
#pragma GCC unroll 4
        for (int j = 0; j < nv; j++) {
            const int left = nr - j * GS_W, full = left >= GS_W;
            const gs_mask m = gs_mask_first(left);
            float *cp = crow + j * GS_W;
            gs_v v = gs_mul(acc[i][j], alpha);
            if (read_c) v = gs_fma(full ? gs_loadu(cp) : gs_maskload(cp, m), beta, v);
            if (ep->last) {
                if (ep->bias_col) {
                    const float *bp = ep->bias_col + j * GS_W;
                    v = gs_add(v, full ? gs_loadu(bp) : gs_maskload(bp, m));
                }
                if (ep->bias_row) v = gs_add(v, gs_set1(ep->bias_row[i]));
                if (rrow) {
                    const float *rp = rrow + j * GS_W;
                    v = gs_add(v, full ? gs_loadu(rp) : gs_maskload(rp, m));
                }
                if (ep->act == KILN__GEMM_ACT_RELU)
                    v = gs_max(gs_zero(), v);
                else if (ep->act == KILN__GEMM_ACT_CLIP)
                    v = gs_min(gs_set1(ep->hi), gs_max(gs_set1(ep->lo), v));
                else if (ep->act != KILN__GEMM_ACT_NONE)
                    v = GS_FN(gs_act)(v, ep);
            }
            if (full)
                gs_storeu(cp, v);
            else
                gs_maskstore(cp, m, v);
        }
    }
}

#define GS_TILE_DEF(MRV, NVV)                                                              \
    static GS_ATTR void GS_FN(tile_##MRV##_##NVV)(int nr, int64_t kc, const void *pa,       \
                                                  const void *pb, float *c, int64_t ldc,  \
                                                  const kiln__gemm_tile_ep *ep) {          \
        GS_FN(tile_body)(MRV, NVV, nr, kc, pa, pb, c, ldc, ep);                            \
    }

/* One tile function per (mr, nv); GS_ROWS(X) (from the includer) lists
 * X(1) ... X(MR). */
#define GS_DEF_ROW(r) GS_TILE_DEF(r, 1) GS_TILE_DEF(r, 2)
GS_ROWS(GS_DEF_ROW)

typedef void (*GS_FN(gs_tile_fn))(int nr, int64_t kc, const void *pa, const void *pb, float *c,
                                  int64_t ldc, const kiln__gemm_tile_ep *ep);
#define GS_ROW_ENTRY(r) {GS_FN(tile_##r##_1), GS_FN(tile_##r##_2)},
static const GS_FN(gs_tile_fn) GS_FN(tiles)[GS_MR][GS_NV] = {GS_ROWS(GS_ROW_ENTRY)};

/* The kiln__sgemm_tile_fn of this ISA. */
static void GS_FN(tile)(int mr, int nr, int64_t kc, const void *pa, const void *pb, float *c,
                        int64_t ldc, const kiln__gemm_tile_ep *ep) {
    const int nv = (nr + GS_W - 1) / GS_W;
    GS_FN(tiles)[mr - 1][nv - 1](nr, kc, pa, pb, c, ldc, ep);
}

/* The kiln__sgemm_strip_fn of this ISA: the tiles of one MR-row panel
 * across a B block. Whole tiles (mr == MR, NR columns) run the tile body
 * inlined in this loop, so that a product with few K values (1x1
 * convolutions of 16-32 channels: 16 k steps a tile) does not pay two
 * indirect calls and a tile's set-up per 192 FMAs, and the out-of-order core
 * overlaps one tile's stores with the next one's products. */
#ifdef GS_BF16
#define GS_ESIZE 2
#else
#define GS_ESIZE 4
#endif
static GS_ATTR void GS_FN(strip)(int mr, int64_t nc, int64_t kc, int64_t kcp, const void *pa,
                         const void *pb, float *c, int64_t ldc, const kiln__gemm_tile_ep *ep) {
    kiln__gemm_tile_ep e = *ep;
    int64_t j = 0;
    if (mr == GS_MR)
        for (; j + GS_NR <= nc; j += GS_NR) {
            e.bias_col = ep->bias_col ? ep->bias_col + j : NULL;
            e.res = ep->res ? ep->res + j : NULL;
            GS_FN(tile_body)(GS_MR, GS_NV, GS_NR, kc, pa, (const char *)pb + j * kcp * GS_ESIZE,
                             c + j, ldc, &e);
        }
    for (; j < nc; j += GS_NR) {
        e.bias_col = ep->bias_col ? ep->bias_col + j : NULL;
        e.res = ep->res ? ep->res + j : NULL;
        GS_FN(tile)(mr, nc - j < GS_NR ? (int)(nc - j) : GS_NR, kc, pa,
                    (const char *)pb + j * kcp * GS_ESIZE, c + j, ldc, &e);
    }
}
#undef GS_ESIZE

#undef GS_DEF_ROW
#undef GS_ROW_ENTRY
#undef GS_TILE_DEF
#undef GS_NR
