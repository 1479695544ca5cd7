/* src/cpu/kernels/x86/gemm_bf16_avx512.c: bf16 products in the f32 GEMM API
 * (args.compute = KILN__GEMM_BF16): op(A) and op(B) are rounded to bf16
 * (round-to-nearest-even, as vcvtne2ps2bf16 does: NaN stays NaN, denormal
 * inputs become zero) while they are packed into pairs along K, and the
 * 14x32 tile of gemm_f32_simd.h accumulates vdpbf16ps products in f32, with
 * the f32 kernel's epilogue. Compiled for AVX512_BF16 through target
 * attributes; the driver calls it only when kiln__gemm_compute_supported. */
#include "cpu/kernels/gemm_f32_impl.h"

#ifdef KILN__GEMM_X86_BF16

#include <immintrin.h>
#include <string.h>

#define GS_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define GS_FN(x) x##_avx512_bf16
#define GS_MR 14
#define GS_NV 2
#define GS_ROWS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14)
#define GS_BF16 1

#include "cpu/kernels/x86/gemm_avx512_ops.h"
#include "cpu/kernels/x86/gemm_f32_simd.h"

#define BF_ATTR GS_ATTR

/* ---- packing ------------------------------------------------------------------
 * Both panel kinds are arrays of 32-bit bf16 pairs: pair p of lane r (a row
 * of the A panel or a column of the B panel) at dst[p*width + r], holding
 * K values 2p (low half) and 2p+1 (high half). Two source layouts occur:
 * K contiguous per lane (A (M,K), B (N,K) transposed) and lanes contiguous
 * per K (A (K,M) transposed, B (K,N)). */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static inline BF_ATTR __mmask16 mask16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* bf16 of 32 floats, word i = lo[i] (i < 16), hi[i-16] (i >= 16). */
static inline BF_ATTR __m512i cvt32(__m512 lo, __m512 hi) {
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* K contiguous: lane r (r < lanes) reads src[r*ld + k], k < kc; lanes in
 * [lanes, width) are zero. */
static BF_ATTR void pack_kcontig(const float *src, int64_t ld, int lanes, int64_t kc, int width,
                                 uint32_t *restrict dst) {
    const int64_t pairs = (kc + 1) / 2;
    for (int r = 0; r < lanes; r++) {
        const float *s = src + r * ld;
        for (int64_t k0 = 0; k0 < kc; k0 += 32) {
            const int64_t n = min64(32, kc - k0);
            __m512 lo = _mm512_maskz_loadu_ps(mask16(n), s + k0);
            __m512 hi = _mm512_maskz_loadu_ps(mask16(n - 16 > 0 ? n - 16 : 0), s + k0 + 16);
            uint32_t tmp[16];
            _mm512_storeu_si512(tmp, cvt32(lo, hi)); /* tmp[d] = pair k0/2 + d */
            uint32_t *d = dst + (k0 / 2) * width + r;
            for (int64_t q = 0; q < (n + 1) / 2; q++) d[q * width] = tmp[q];
        }
    }
    for (int64_t p = 0; p < pairs; p++)
        for (int r = lanes; r < width; r++) dst[p * width + r] = 0;
}

/* Lanes contiguous: lane r (r < lanes) of K row k reads src[k*ld + r],
 * k < kc; lanes in [lanes, width) and the K padding are zero. */
static BF_ATTR void pack_lcontig(const float *src, int64_t ld, int lanes, int64_t kc, int width,
                                 uint32_t *restrict dst) {
    /* interleave two rows of 16 words: (row k lane c, row k+1 lane c) */
    const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                           24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17,
                                           1, 16, 0);
    for (int64_t k = 0; k < kc; k += 2) {
        const float *r0 = src + k * ld, *r1 = r0 + ld;
        const int two = k + 1 < kc;
        uint32_t *d = dst + (k / 2) * width;
        for (int c = 0; c < width; c += 16) {
            const int64_t n = lanes - c > 0 ? lanes - c : 0;
            const __mmask16 m = mask16(n);
            __m512 lo = _mm512_maskz_loadu_ps(m, r0 + c);
            __m512 hi = two ? _mm512_maskz_loadu_ps(m, r1 + c) : _mm512_setzero_ps();
            __m512i v = _mm512_permutexvar_epi16(inter, cvt32(lo, hi));
            _mm512_mask_storeu_epi32(d + c, mask16(width - c), v);
        }
    }
}

/* kiln__gemm_pack_a_fn: MR-row panels of pairs. */
static BF_ATTR void pack_a_bf16(const kiln__sgemm_kernel *kr, const kiln__gemm_args *g,
                                int64_t i0, int64_t mc, int64_t p0, int64_t kc, void *dstv) {
    const int MR = kr->mr;
    const int64_t kcp = (kc + 1) / 2 * 2;
    uint16_t *dst = dstv;
    for (int64_t ip = 0; ip < mc; ip += MR) {
        const int mr = (int)min64(MR, mc - ip);
        uint32_t *panel = (uint32_t *)(dst + ip * kcp);
        if (!g->trans_a)
            pack_kcontig(g->a + (i0 + ip) * g->lda + p0, g->lda, mr, kc, MR, panel);
        else
            pack_lcontig(g->a + p0 * g->lda + i0 + ip, g->lda, mr, kc, MR, panel);
    }
}

/* kiln__gemm_pack_b_fn: NR-wide panels of pairs. */
static BF_ATTR void pack_b_bf16(const kiln__sgemm_kernel *kr, int trans_b, const float *b,
                                int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                                void *dstv) {
    const int NR = kr->nr;
    const int64_t kcp = (kc + 1) / 2 * 2;
    uint16_t *dst = dstv;
    for (int64_t jp = 0; jp < nc; jp += NR) {
        const int nr = (int)min64(NR, nc - jp);
        uint32_t *panel = (uint32_t *)(dst + jp * kcp);
        if (!trans_b)
            pack_lcontig(b + p0 * ldb + j0 + jp, ldb, nr, kc, NR, panel);
        else
            pack_kcontig(b + (j0 + jp) * ldb + p0, ldb, nr, kc, NR, panel);
    }
}

const kiln__sgemm_kernel kiln__sgemm_kernel_avx512_bf16 = {
    .isa = KILN__GEMM_ISA_AVX512,
    .compute = KILN__GEMM_BF16,
    .mr = GS_MR,
    .nr = GS_W * GS_NV,
    .kc = 512,
    .nc = 512,
    .mc = 14 * 72,
    .kgroup = 2,
    .esize = 2,
    .tile = tile_avx512_bf16,
    .strip = strip_avx512_bf16,
    .pack_a = pack_a_bf16,
    .pack_b = pack_b_bf16,
};

#endif
