/* src/cpu/kernels/gemm_u8s8.c: the u8 x s8 -> s32 GEMM driver (see
 * gemm_u8s8.h): isa dispatch, B packing with column sums, argument checks,
 * A packing with row sums, the blocked loops and the generic C tile. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* the epilogue is specified without FMA */
#endif

#include <string.h>

#include "core/elem.h"
#include "cpu/kernels/gemm_u8s8_impl.h"

#define MR KILN__U8S8_MR
#define NR KILN__U8S8_NR
#define KG KILN__U8S8_KG

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- isa ------------------------------------------------------------------- */

int kiln__gemm_u8s8_isa_supported(kiln__gemm_isa isa) {
    switch (isa) {
    case KILN__GEMM_ISA_AUTO:
    case KILN__GEMM_ISA_GENERIC: return 1;
#ifdef KILN__GEMM_X86_VNNI
    case KILN__GEMM_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
    default: return 0;
    }
}

/* ---- the generic tile ---------------------------------------------------------- */

static void tile_generic(int mr, int nr, int64_t k4, const uint8_t *restrict pa,
                         const int8_t *restrict pb, void *c, int64_t ldc,
                         const kiln__u8s8_tile_ep *ep) {
    uint32_t acc[MR][NR] = {{0}}; /* wrapping sums, as vpdpbusd */
    for (int64_t g = 0; g < k4; g++) {
        const uint8_t *a = pa + g * MR * KG;
        const int8_t *b = pb + g * NR * KG;
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < NR; j++) {
                int32_t s = 0; /* |s| <= 4 * 255 * 128 */
                for (int q = 0; q < KG; q++) s += (int32_t)a[i * KG + q] * b[j * KG + q];
                acc[i][j] += (uint32_t)s;
            }
    }
    const size_t es = ep->out == KILN__GEMM_U8S8_S32 || ep->out == KILN__GEMM_U8S8_F32 ? 4 : 1;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            kiln__u8s8_store1(kiln__u8s8_compensate(acc[i][j], i, j, ep), j, ep,
                              (char *)c + ((size_t)i * (size_t)ldc + (size_t)j) * es);
}

static kiln__u8s8_tile_fn resolve(kiln__gemm_isa isa) {
    if (isa == KILN__GEMM_ISA_AUTO)
        isa = kiln__gemm_u8s8_isa_supported(KILN__GEMM_ISA_AVX512) ? KILN__GEMM_ISA_AVX512
                                                                   : KILN__GEMM_ISA_GENERIC;
    if (!kiln__gemm_u8s8_isa_supported(isa)) return NULL;
    switch (isa) {
    case KILN__GEMM_ISA_GENERIC: return tile_generic;
#ifdef KILN__GEMM_X86_VNNI
    case KILN__GEMM_ISA_AVX512: return kiln__u8s8_tile_avx512;
#endif
    default: return NULL;
    }
}

/* ---- packed B -------------------------------------------------------------------
 * A 64-byte header, colsum[npad] and bzero[npad] (int32, npad = N rounded up
 * to NR, zero past N), then NR-column panels of K4 = round_up(K, 4) bytes
 * each (panel jp at byte jp * K4; layout of kiln__u8s8_tile_fn). */
#define PACKED_MAGIC 0x4b4c5138u /* "KLQ8" */
#define PACKED_HEADER 64

typedef struct packed_header {
    uint32_t magic;
    int32_t has_bzero;
    int64_t k, n;
} packed_header;

size_t kiln__gemm_u8s8_packed_b_bytes(int64_t k, int64_t n) {
    int64_t bytes;
    if (k < 0 || n < 0 || k > KILN__MAX_NUMEL || n > KILN__MAX_NUMEL ||
        !kiln__dims_mul(round_up(k, KG) + 8, round_up(n, NR), &bytes))
        return 0;
    return PACKED_HEADER + (size_t)bytes; /* + 8: colsum and bzero, 4 bytes each */
}

static const int32_t *packed_colsum(const void *packed) {
    return (const int32_t *)((const char *)packed + PACKED_HEADER);
}

kiln_status kiln__gemm_u8s8_pack_b(int trans_b, int64_t k, int64_t n, const int8_t *b,
                                   int64_t ldb, const int8_t *b_zero, void *packed,
                                   size_t packed_bytes) {
    size_t need = kiln__gemm_u8s8_packed_b_bytes(k, n);
    if (need == 0)
        return kiln__err(KILN_E_INVAL, "gemm_u8s8_pack_b: bad size K=%lld N=%lld",
                         (long long)k, (long long)n);
    if (!packed || packed_bytes < need)
        return kiln__err(KILN_E_INVAL, "gemm_u8s8_pack_b: buffer of %zu bytes, need %zu",
                         packed ? packed_bytes : 0, need);
    const int64_t min_ld = trans_b ? k : n;
    if (k > 0 && n > 0 && (!b || ldb < min_ld))
        return kiln__err(KILN_E_INVAL, "gemm_u8s8_pack_b: B missing or ldb %lld < %lld",
                         (long long)ldb, (long long)min_ld);
    const int64_t npad = round_up(n, NR), k4 = round_up(k, KG);
    memset(packed, 0, need);
    packed_header h = {PACKED_MAGIC, 0, k, n};
    int32_t *colsum = (int32_t *)((char *)packed + PACKED_HEADER), *bzero = colsum + npad;
    int8_t *data = (int8_t *)(bzero + npad);
    for (int64_t j = 0; j < n; j++) {
        int8_t *panel = data + (j / NR) * NR * k4;
        const int64_t jj = j % NR;
        int32_t sum = 0; /* |sum| <= 128 K: fits */
        for (int64_t p = 0; p < k; p++) {
            const int8_t v = trans_b ? b[j * ldb + p] : b[p * ldb + j];
            panel[((p / KG) * NR + jj) * KG + p % KG] = v;
            sum += v;
        }
        colsum[j] = sum;
        bzero[j] = b_zero ? b_zero[j] : 0;
        h.has_bzero |= bzero[j] != 0;
    }
    memcpy(packed, &h, sizeof h);
    return KILN_OK;
}

/* ---- arguments ---------------------------------------------------------------------- */

static kiln_status check_args(const kiln__gemm_u8s8_args *g, kiln__u8s8_tile_fn *tile) {
    *tile = NULL;
    if (!g) return kiln__err(KILN_E_INVAL, "gemm_u8s8: no arguments");
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->m > KILN__MAX_NUMEL || g->n > KILN__MAX_NUMEL ||
        g->k > KILN__MAX_NUMEL)
        return kiln__err(KILN_E_INVAL, "gemm_u8s8: bad sizes M=%lld N=%lld K=%lld",
                         (long long)g->m, (long long)g->n, (long long)g->k);
    const packed_header *h = g->b;
    if (!h || h->magic != PACKED_MAGIC || h->k != g->k || h->n != g->n)
        return kiln__err(KILN_E_INVAL,
                         "gemm_u8s8: B is not a packed buffer for K=%lld N=%lld",
                         (long long)g->k, (long long)g->n);
    if ((unsigned)g->out >= KILN__GEMM_U8S8_OUT_COUNT)
        return kiln__err(KILN_E_INVAL, "gemm_u8s8: unknown output type %d", (int)g->out);
    if (!(*tile = resolve(g->isa)))
        return kiln__err(KILN_E_UNSUPPORTED, "gemm_u8s8: isa %s not available on this CPU",
                         kiln__gemm_isa_name(g->isa));
    if (g->m == 0 || g->n == 0) return KILN_OK;
    if (g->k > 0 && (!g->a || g->lda < g->k))
        return kiln__err(KILN_E_INVAL, "gemm_u8s8: A missing or lda %lld < K=%lld",
                         (long long)g->lda, (long long)g->k);
    if (!g->c || g->ldc < g->n)
        return kiln__err(KILN_E_INVAL, "gemm_u8s8: C missing or ldc %lld < N=%lld",
                         (long long)g->ldc, (long long)g->n);
    if (g->out == KILN__GEMM_U8S8_S32) {
        if (g->bias) return kiln__err(KILN_E_INVAL, "gemm_u8s8: bias with s32 output");
        return KILN_OK;
    }
    if (!g->b_scale) return kiln__err(KILN_E_INVAL, "gemm_u8s8: b_scale missing");
    if (g->out == KILN__GEMM_U8S8_F32) return KILN_OK;
    const int32_t lo = g->out == KILN__GEMM_U8S8_U8 ? 0 : -128,
                  hi = g->out == KILN__GEMM_U8S8_U8 ? 255 : 127;
    if (g->y_zero < lo || g->y_zero > hi || !(g->y_scale != 0.0f))
        return kiln__err(KILN_E_INVAL, "gemm_u8s8: output zero point %d outside [%d, %d] or "
                         "scale %g", (int)g->y_zero, (int)lo, (int)hi, (double)g->y_scale);
    return KILN_OK;
}

/* ---- blocking ------------------------------------------------------------------------ */

/* MC (rows of A packed at once, ~256 KB) and NC (columns of B swept per A
 * block, ~512 KB): both in L2 together, whatever K is. */
static int64_t block_mc(int64_t k4) { return min64(MR * 64, max64(MR, (256 << 10) / k4 / MR * MR)); }
static int64_t block_nc(int64_t k4) { return min64(NR * 64, max64(NR, (512 << 10) / k4 / NR * NR)); }

/* Bytes of one thread's slice: the packed A block and its row sums. */
static int64_t thread_bytes(const kiln__gemm_u8s8_args *g) {
    const int64_t k4 = max64(round_up(g->k, KG), KG), mc = round_up(min64(g->m, block_mc(k4)), MR);
    return round_up(mc * k4 + mc * (int64_t)sizeof(int32_t), 64);
}

size_t kiln__gemm_u8s8_scratch_bytes(const kiln__gemm_u8s8_args *g, int nth) {
    kiln__u8s8_tile_fn tile;
    if (check_args(g, &tile) != KILN_OK || g->m == 0 || g->n == 0 || nth < 1) return 0;
    return (size_t)thread_bytes(g) * (size_t)nth + 64;
}

/* Packs A rows [i0, i0+mc) into MR-row panels of K4 bytes at dst (rows past
 * mc and K padding zero) and, when rowsum, their sums. */
static void pack_a(const kiln__gemm_u8s8_args *g, int64_t i0, int64_t mc, int64_t k4,
                   uint8_t *restrict dst, int32_t *restrict rowsum) {
    const int64_t k = g->k, kfull = k / KG * KG;
    for (int64_t ip = 0; ip < mc; ip += MR) {
        uint8_t *panel = dst + ip * k4;
        const int mr = (int)min64(MR, mc - ip);
        for (int i = 0; i < MR; i++) {
            if (i >= mr) {
                for (int64_t p = 0; p < k4; p += KG) memset(panel + p * MR + i * KG, 0, KG);
                continue;
            }
            const uint8_t *src = g->a + (i0 + ip + i) * g->lda;
            uint32_t sum = 0;
            for (int64_t p = 0; p < kfull; p += KG) {
                memcpy(panel + p * MR + i * KG, src + p, KG);
                sum += (uint32_t)src[p] + src[p + 1] + src[p + 2] + src[p + 3];
            }
            if (kfull < k4) {
                uint8_t *d = panel + kfull * MR + i * KG;
                for (int q = 0; q < KG; q++) {
                    d[q] = kfull + q < k ? src[kfull + q] : 0;
                    sum += d[q];
                }
            }
            if (rowsum) rowsum[ip + i] = (int32_t)sum;
        }
    }
}

/* C rows [m0, m1), columns [n0, n1) (n0 a multiple of NR). Loops: M blocks
 * (A packed) > N blocks (B block in L2) > MR-row strips > NR-column tiles. */
static void u8s8_block(const kiln__gemm_u8s8_args *g, kiln__u8s8_tile_fn tile, int64_t m0,
                       int64_t m1, int64_t n0, int64_t n1, char *buf) {
    const packed_header *h = g->b;
    const int64_t k4 = round_up(g->k, KG), npad = round_up(g->n, NR);
    const int64_t mcb = block_mc(max64(k4, KG)), ncb = block_nc(max64(k4, KG));
    uint8_t *pa = (uint8_t *)buf;
    int32_t *rowsum = (int32_t *)(buf + round_up(min64(g->m, mcb), MR) * max64(k4, KG));
    const int32_t *colsum = packed_colsum(g->b), *bzero = colsum + npad;
    const int8_t *pb = (const int8_t *)(bzero + npad);
    const size_t es = g->out == KILN__GEMM_U8S8_S32 || g->out == KILN__GEMM_U8S8_F32 ? 4 : 1;
    kiln__u8s8_tile_ep ep = {
        .out = g->out, .relu = g->relu, .a_zero = g->a_zero,
        .k_azero = (uint32_t)g->k * (uint32_t)g->a_zero, .a_scale = g->a_scale,
        .b_scale_per_col = g->b_scale_per_col, .y_scale = g->y_scale,
        .y_zero = (float)g->y_zero,
        .lo = g->out == KILN__GEMM_U8S8_U8 ? 0.0f : -128.0f,
        .hi = g->out == KILN__GEMM_U8S8_U8 ? 255.0f : 127.0f,
    };
    for (int64_t ic = m0; ic < m1; ic += mcb) {
        const int64_t mc = min64(mcb, m1 - ic);
        pack_a(g, ic, mc, k4, pa, h->has_bzero ? rowsum : NULL);
        for (int64_t jc = n0; jc < n1; jc += ncb) {
            const int64_t nc = min64(ncb, n1 - jc);
            for (int64_t ir = 0; ir < mc; ir += MR) {
                const int mr = (int)min64(MR, mc - ir);
                ep.rowsum = h->has_bzero ? rowsum + ir : NULL;
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t j = jc + jr;
                    ep.colsum = colsum + j;
                    ep.bzero = h->has_bzero ? bzero + j : NULL;
                    ep.b_scale = g->b_scale ? g->b_scale + (g->b_scale_per_col ? j : 0) : NULL;
                    ep.bias = g->bias ? g->bias + j : NULL;
                    tile(mr, (int)min64(NR, nc - jr), k4 / KG, pa + ir * k4,
                         pb + j * k4, (char *)g->c + ((ic + ir) * g->ldc + j) * (int64_t)es,
                         g->ldc, &ep);
                }
            }
        }
    }
}

kiln_status kiln__gemm_u8s8(const kiln__gemm_u8s8_args *g, int ith, int nth) {
    kiln__u8s8_tile_fn tile;
    KILN__TRY(check_args(g, &tile));
    if (nth < 1 || ith < 0 || ith >= nth)
        return kiln__err(KILN_E_INVAL, "gemm_u8s8: thread %d of %d", ith, nth);
    if (g->m == 0 || g->n == 0) return KILN_OK;
    if (!g->scratch) return kiln__err(KILN_E_INVAL, "gemm_u8s8: no scratch");
    int tm, tn;
    kiln__gemm_thread_grid(g->m, g->n, MR, NR, nth, &tm, &tn);
    if (ith >= tm * tn) return KILN_OK;
    int64_t mlo, mhi, nlo, nhi;
    kiln__split((g->m + MR - 1) / MR, ith / tn, tm, &mlo, &mhi);
    kiln__split((g->n + NR - 1) / NR, ith % tn, tn, &nlo, &nhi);
    if (mlo == mhi || nlo == nhi) return KILN_OK;
    uintptr_t base = ((uintptr_t)g->scratch + 63) & ~(uintptr_t)63;
    u8s8_block(g, tile, mlo * MR, min64(mhi * MR, g->m), nlo * NR, min64(nhi * NR, g->n),
               (char *)base + (size_t)ith * (size_t)thread_bytes(g));
    return KILN_OK;
}

static void u8s8_task(void *arg, int ith, int nth) {
    (void)kiln__gemm_u8s8((const kiln__gemm_u8s8_args *)arg, ith, nth); /* checked before */
}

kiln_status kiln__gemm_u8s8_run(kiln__pool *pool, const kiln__gemm_u8s8_args *args,
                                void *scratch) {
    kiln__u8s8_tile_fn tile;
    KILN__TRY(check_args(args, &tile));
    if (args->m == 0 || args->n == 0) return KILN_OK;
    if (!scratch) return kiln__err(KILN_E_INVAL, "gemm_u8s8: no scratch");
    kiln__gemm_u8s8_args g = *args;
    g.scratch = scratch;
    int tm, tn;
    kiln__gemm_thread_grid(g.m, g.n, MR, NR, kiln__pool_size(pool), &tm, &tn);
    kiln__pool_run(pool, tm * tn, u8s8_task, &g);
    return KILN_OK;
}
