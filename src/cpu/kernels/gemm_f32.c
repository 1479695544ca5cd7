/* src/cpu/kernels/gemm_f32.c: the f32 GEMM driver: ISA dispatch, argument
 * checks, the thread grid, packing and the blocked loops around the tile
 * kernels (see gemm.h for the algorithm and the semantics). */
#include <string.h>

#include "core/elem.h"
#include "cpu/kernels/gemm_f32_impl.h"

/* ---- ISA dispatch -------------------------------------------------------- */

static const kiln__sgemm_kernel *kernel_of(kiln__gemm_isa isa) {
    switch (isa) {
    case KILN__GEMM_ISA_GENERIC: return &kiln__sgemm_kernel_generic;
#ifdef KILN__GEMM_X86
    case KILN__GEMM_ISA_AVX2: return &kiln__sgemm_kernel_avx2;
    case KILN__GEMM_ISA_AVX512: return &kiln__sgemm_kernel_avx512;
#endif
    default: return NULL;
    }
}

int kiln__gemm_isa_supported(kiln__gemm_isa isa) {
    switch (isa) {
    case KILN__GEMM_ISA_AUTO:
    case KILN__GEMM_ISA_GENERIC: return 1;
#ifdef KILN__GEMM_X86
    case KILN__GEMM_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KILN__GEMM_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

kiln__gemm_isa kiln__gemm_isa_best(void) {
    static const kiln__gemm_isa order[] = {KILN__GEMM_ISA_AVX512, KILN__GEMM_ISA_AVX2};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (kiln__gemm_isa_supported(order[i])) return order[i];
    return KILN__GEMM_ISA_GENERIC;
}

const char *kiln__gemm_isa_name(kiln__gemm_isa isa) {
    switch (isa) {
    case KILN__GEMM_ISA_AUTO: return "auto";
    case KILN__GEMM_ISA_GENERIC: return "generic";
    case KILN__GEMM_ISA_AVX2: return "avx2";
    case KILN__GEMM_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

/* The kernel for isa (AUTO: the best), or NULL if this CPU lacks it. */
static const kiln__sgemm_kernel *resolve(kiln__gemm_isa isa) {
    if (isa == KILN__GEMM_ISA_AUTO) isa = kiln__gemm_isa_best();
    if ((unsigned)isa >= KILN__GEMM_ISA_COUNT || !kiln__gemm_isa_supported(isa)) return NULL;
    return kernel_of(isa);
}

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- packed B buffers ---------------------------------------------------
 * A 64-byte header, then op(B) (K,N) cut into K blocks of kc = min(KC, K - p0)
 * rows; block p0 starts at float p0 * round_up(N, NR) and holds NR-wide
 * panels (kc, NR), zero-padded past N: the layout the driver packs per
 * thread, so the loops read both alike. */
#define PACKED_MAGIC 0x4b4c4e42u /* "KLNB" */
#define PACKED_HEADER 64

typedef struct packed_header {
    uint32_t magic;
    int32_t isa, nr, kc;
    int64_t k, n;
} packed_header;

size_t kiln__sgemm_packed_b_bytes(kiln__gemm_isa isa, int64_t k, int64_t n) {
    const kiln__sgemm_kernel *kr = resolve(isa);
    int64_t floats;
    if (!kr || k < 0 || n < 0 || !kiln__dims_mul(k, round_up(n, kr->nr), &floats)) return 0;
    return PACKED_HEADER + (size_t)floats * sizeof(float);
}

/* Copies n floats (n <= nr_tile) of one B row into a panel row, zero-padding
 * it to nr_tile; full rows of the usual widths copy with a fixed size. */
static inline void copy_panel_row(float *restrict dst, const float *restrict src, int n,
                                  int nr_tile) {
    if (n == 32 && nr_tile == 32) {
        memcpy(dst, src, 32 * sizeof(float));
    } else if (n == 16 && nr_tile == 16) {
        memcpy(dst, src, 16 * sizeof(float));
    } else {
        for (int j = 0; j < n; j++) dst[j] = src[j];
        for (int j = n; j < nr_tile; j++) dst[j] = 0.0f;
    }
}

/* Packs op(B) rows [p0, p0+kc), columns [j0, j0+nc) into NR-wide panels at
 * dst (panel jp at dst + jp*kc, element (k,j) at k*NR + j), zero-padding the
 * last panel. */
static void pack_b(int nr_tile, int trans_b, const float *b, int64_t ldb, int64_t p0, int64_t kc,
                   int64_t j0, int64_t nc, float *restrict dst) {
    if (!trans_b) { /* B (K,N): walk each row once, left to right */
        for (int64_t k0 = 0; k0 < kc; k0 += 8) { /* 8 rows at a time: few streams each way */
            const int64_t k1 = min64(kc, k0 + 8);
            for (int64_t jp = 0; jp < nc; jp += nr_tile)
                for (int64_t k = k0; k < k1; k++)
                    copy_panel_row(dst + jp * kc + k * nr_tile, b + (p0 + k) * ldb + j0 + jp,
                                   (int)min64(nr_tile, nc - jp), nr_tile);
        }
        return;
    }
    for (int64_t jp = 0; jp < nc; jp += nr_tile) { /* B (N,K): op(B)[k][j] = b[j*ldb + k] */
        const int nr = (int)min64(nr_tile, nc - jp);
        float *panel = dst + jp * kc;
        for (int j = 0; j < nr; j++) {
            const float *src = b + (j0 + jp + j) * ldb + p0;
            for (int64_t k = 0; k < kc; k++) panel[k * nr_tile + j] = src[k];
        }
        for (int64_t k = 0; k < kc; k++)
            for (int j = nr; j < nr_tile; j++) panel[k * nr_tile + j] = 0.0f;
    }
}

kiln_status kiln__sgemm_pack_b(kiln__gemm_isa isa, int trans_b, int64_t k, int64_t n,
                               const float *b, int64_t ldb, void *packed, size_t packed_bytes) {
    const kiln__sgemm_kernel *kr = resolve(isa);
    if (!kr)
        return kiln__err(KILN_E_UNSUPPORTED, "sgemm_pack_b: isa %s not available on this CPU",
                         kiln__gemm_isa_name(isa));
    size_t need = kiln__sgemm_packed_b_bytes(kr->isa, k, n);
    if (need == 0) return kiln__err(KILN_E_INVAL, "sgemm_pack_b: bad size K=%lld N=%lld",
                                    (long long)k, (long long)n);
    if (!packed || packed_bytes < need)
        return kiln__err(KILN_E_INVAL, "sgemm_pack_b: buffer of %zu bytes, need %zu",
                         packed ? packed_bytes : 0, need);
    int64_t min_ld = trans_b ? k : n;
    if (ldb < (min_ld > 1 ? min_ld : 1) || (!b && k > 0 && n > 0))
        return kiln__err(KILN_E_INVAL, "sgemm_pack_b: ldb %lld < %lld or B missing",
                         (long long)ldb, (long long)min_ld);
    packed_header h = {PACKED_MAGIC, kr->isa, kr->nr, kr->kc, k, n};
    memset(packed, 0, PACKED_HEADER);
    memcpy(packed, &h, sizeof h);
    float *data = (float *)((char *)packed + PACKED_HEADER);
    const int64_t npad = round_up(n, kr->nr);
    for (int64_t p0 = 0; p0 < k; p0 += kr->kc)
        pack_b(kr->nr, trans_b, b, ldb, p0, min64(kr->kc, k - p0), 0, n, data + p0 * npad);
    return KILN_OK;
}

/* ---- argument checks ------------------------------------------------------ */

static kiln_status check_args(const kiln__gemm_args *g, const kiln__sgemm_kernel **out) {
    *out = NULL;
    if (!g) return kiln__err(KILN_E_INVAL, "sgemm: no arguments");
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->m > KILN__MAX_NUMEL || g->n > KILN__MAX_NUMEL ||
        g->k > KILN__MAX_NUMEL)
        return kiln__err(KILN_E_INVAL, "sgemm: bad sizes M=%lld N=%lld K=%lld", (long long)g->m,
                         (long long)g->n, (long long)g->k);
    if (g->compute != KILN__GEMM_F32)
        return kiln__err(KILN_E_UNSUPPORTED, "sgemm: compute type %d not implemented",
                         (int)g->compute);
    const int64_t m = g->m, n = g->n, k = g->k;
    kiln__gemm_isa isa = g->isa;
    if (g->b_packed && k > 0 && n > 0) {
        const packed_header *h = (const packed_header *)g->b;
        if (!h || h->magic != PACKED_MAGIC || h->k != k || h->n != n ||
            (isa != KILN__GEMM_ISA_AUTO && isa != (kiln__gemm_isa)h->isa))
            return kiln__err(KILN_E_INVAL,
                             "sgemm: packed B does not match (K=%lld N=%lld isa %s)",
                             (long long)k, (long long)n, kiln__gemm_isa_name(isa));
        isa = (kiln__gemm_isa)h->isa;
    }
    const kiln__sgemm_kernel *kr = resolve(isa);
    if (!kr)
        return kiln__err(KILN_E_UNSUPPORTED, "sgemm: isa %s not available on this CPU",
                         kiln__gemm_isa_name(isa));
    if (g->b_packed && k > 0 && n > 0 && ((const packed_header *)g->b)->nr != kr->nr)
        return kiln__err(KILN_E_INVAL, "sgemm: packed B has a foreign layout");
    if (m == 0 || n == 0) {
        *out = kr;
        return KILN_OK;
    }
    const int64_t lda_min = g->trans_a ? m : k, ldb_min = g->trans_b ? k : n;
    if (k > 0 && (!g->a || g->lda < (lda_min > 1 ? lda_min : 1)))
        return kiln__err(KILN_E_INVAL, "sgemm: A missing or lda %lld < %lld",
                         (long long)g->lda, (long long)lda_min);
    if (k > 0 && !g->b_packed && (!g->b || g->ldb < (ldb_min > 1 ? ldb_min : 1)))
        return kiln__err(KILN_E_INVAL, "sgemm: B missing or ldb %lld < %lld",
                         (long long)g->ldb, (long long)ldb_min);
    if (!g->c || g->ldc < n)
        return kiln__err(KILN_E_INVAL, "sgemm: C missing or ldc %lld < N=%lld",
                         (long long)g->ldc, (long long)n);
    if (g->residual && g->ldr < n)
        return kiln__err(KILN_E_INVAL, "sgemm: ldr %lld < N=%lld", (long long)g->ldr,
                         (long long)n);
    if ((unsigned)g->bias_kind > KILN__GEMM_BIAS_ROW ||
        (g->bias_kind != KILN__GEMM_BIAS_NONE && !g->bias))
        return kiln__err(KILN_E_INVAL, "sgemm: bad bias (kind %d)", (int)g->bias_kind);
    if ((unsigned)g->act >= KILN__GEMM_ACT_COUNT)
        return kiln__err(KILN_E_INVAL, "sgemm: unknown activation %d", (int)g->act);
    *out = kr;
    return KILN_OK;
}

/* ---- work split ------------------------------------------------------------ */

/* Floats one thread packs into: an MC x KC block of A and, unless B comes
 * packed, a KC x NC block of B (both clipped to the problem). */
static int64_t thread_floats(const kiln__gemm_args *g, const kiln__sgemm_kernel *kr) {
    const int64_t kc = min64(g->k, kr->kc);
    int64_t f = round_up(min64(g->m, kr->mc), kr->mr) * kc;
    if (!g->b_packed) f += kc * round_up(min64(g->n, kr->nc), kr->nr);
    return round_up(f, 16); /* 64-byte aligned slices */
}

size_t kiln__sgemm_scratch_bytes(const kiln__gemm_args *g, int nth) {
    const kiln__sgemm_kernel *kr;
    if (check_args(g, &kr) != KILN_OK || g->m == 0 || g->n == 0 || nth < 1) return 0;
    return (size_t)thread_floats(g, kr) * sizeof(float) * (size_t)nth + 64;
}

/* Thread grid tm x tn (tm*tn <= nth) over the MR x NR tiles of C: as many
 * threads as there are tiles, then the squarest blocks (least packing). */
static void thread_grid(int64_t m, int64_t n, const kiln__sgemm_kernel *kr, int nth, int *tm,
                        int *tn) {
    const int64_t tiles_m = (m + kr->mr - 1) / kr->mr, tiles_n = (n + kr->nr - 1) / kr->nr;
    int best_m = 1, best_n = 1;
    double best_cost = (double)m + (double)n;
    for (int a = 1; a <= nth && a <= tiles_m; a++) {
        int b = nth / a;
        if (b > tiles_n) b = (int)tiles_n;
        double cost = (double)m / a + (double)n / b;
        if (a * b > best_m * best_n || (a * b == best_m * best_n && cost < best_cost)) {
            best_m = a;
            best_n = b;
            best_cost = cost;
        }
    }
    *tm = best_m;
    *tn = best_n;
}

/* ---- the blocked loops ----------------------------------------------------- */

/* Packs op(A) rows [i0, i0+mc), columns [p0, p0+kc) into MR-row panels
 * (panel ip at dst + ip*MR*kc, element (i,k) at k*MR + i), zero-padding the
 * last panel's missing rows. */
static void pack_a(int mr_tile, const kiln__gemm_args *g, int64_t i0, int64_t mc, int64_t p0,
                   int64_t kc, float *restrict dst) {
    for (int64_t ip = 0; ip < mc; ip += mr_tile) {
        const int mr = (int)min64(mr_tile, mc - ip);
        float *panel = dst + ip * kc;
        if (!g->trans_a) { /* A (M,K): a cache line of each row at a time */
            const float *src = g->a + (i0 + ip) * g->lda + p0;
            for (int64_t k0 = 0; k0 < kc; k0 += 16) {
                const int kn = (int)min64(16, kc - k0);
                for (int i = 0; i < mr; i++)
                    for (int kk = 0; kk < kn; kk++)
                        panel[(k0 + kk) * mr_tile + i] = src[i * g->lda + k0 + kk];
            }
        } else { /* A (K,M): op(A)[i][k] = a[k*lda + i] */
            for (int64_t k = 0; k < kc; k++) {
                const float *src = g->a + (p0 + k) * g->lda + i0 + ip;
                for (int i = 0; i < mr; i++) panel[k * mr_tile + i] = src[i];
            }
        }
        if (mr < mr_tile)
            for (int64_t k = 0; k < kc; k++)
                for (int i = mr; i < mr_tile; i++) panel[k * mr_tile + i] = 0.0f;
    }
}

/* C rows [m0, m1), columns [n0, n1) (n0 a multiple of NR) with kernel kr,
 * packing into buf. Loops: K blocks (kc) > M blocks (mc rows of A packed
 * once) > N blocks (nc columns of B packed, unless prepacked) > MR-row strips
 * (A panel in L1) > NR-column tiles (B block in L2). */
static void sgemm_block(const kiln__gemm_args *g, const kiln__sgemm_kernel *kr, int64_t m0,
                        int64_t m1, int64_t n0, int64_t n1, float *buf) {
    const int64_t K = g->k, MR = kr->mr, NR = kr->nr;
    float *pa_buf = buf;
    float *pb_buf = buf + round_up(min64(g->m, kr->mc), MR) * min64(K, kr->kc);
    const float *packed_b = g->b_packed && K > 0 ? (const float *)((const char *)g->b + PACKED_HEADER)
                                                  : NULL;
    const int64_t npad = round_up(g->n, NR);
    kiln__gemm_tile_ep ep = {.act = g->act, .lo = g->act_min, .hi = g->act_max, .ldr = g->ldr};

    /* K blocks; K == 0 still runs one (empty) block for beta and the epilogue */
    for (int64_t p0 = 0; p0 < K || (p0 == 0 && K == 0); p0 += kr->kc) {
        const int64_t kc = min64(kr->kc, K - p0);
        ep.alpha = g->alpha;
        ep.beta = p0 == 0 ? g->beta : 1.0f;
        ep.last = p0 + kc >= K;
        for (int64_t ic = m0; ic < m1; ic += kr->mc) {
            const int64_t mc = min64(kr->mc, m1 - ic);
            if (kc > 0) pack_a((int)MR, g, ic, mc, p0, kc, pa_buf);
            for (int64_t jc = n0; jc < n1; jc += kr->nc) {
                const int64_t nc = min64(kr->nc, n1 - jc);
                const float *pb;
                if (packed_b) {
                    pb = packed_b + p0 * npad + jc * kc;
                } else {
                    if (kc > 0) pack_b((int)NR, g->trans_b, g->b, g->ldb, p0, kc, jc, nc, pb_buf);
                    pb = pb_buf;
                }
                for (int64_t ir = 0; ir < mc; ir += MR) {
                    const int mr = (int)min64(MR, mc - ir);
                    const int64_t i = ic + ir;
                    ep.bias_row = g->bias_kind == KILN__GEMM_BIAS_ROW ? g->bias + i : NULL;
                    for (int64_t jr = 0; jr < nc; jr += NR) {
                        const int nr = (int)min64(NR, nc - jr);
                        const int64_t j = jc + jr;
                        ep.bias_col = g->bias_kind == KILN__GEMM_BIAS_COL ? g->bias + j : NULL;
                        ep.res = g->residual ? g->residual + i * g->ldr + j : NULL;
                        kr->tile(mr, nr, kc, pa_buf + ir * kc, pb + jr * kc, g->c + i * g->ldc + j,
                                 g->ldc, &ep);
                    }
                }
            }
        }
    }
}

kiln_status kiln__sgemm(const kiln__gemm_args *g, int ith, int nth) {
    const kiln__sgemm_kernel *kr;
    KILN__TRY(check_args(g, &kr));
    if (nth < 1 || ith < 0 || ith >= nth)
        return kiln__err(KILN_E_INVAL, "sgemm: thread %d of %d", ith, nth);
    if (g->m == 0 || g->n == 0) return KILN_OK;
    if (!g->scratch) return kiln__err(KILN_E_INVAL, "sgemm: no scratch");
    int tm, tn;
    thread_grid(g->m, g->n, kr, nth, &tm, &tn);
    if (ith >= tm * tn) return KILN_OK; /* more threads than tiles */
    const int64_t tiles_m = (g->m + kr->mr - 1) / kr->mr, tiles_n = (g->n + kr->nr - 1) / kr->nr;
    int64_t mlo, mhi, nlo, nhi;
    kiln__split(tiles_m, ith / tn, tm, &mlo, &mhi);
    kiln__split(tiles_n, ith % tn, tn, &nlo, &nhi);
    if (mlo == mhi || nlo == nhi) return KILN_OK;
    uintptr_t base = ((uintptr_t)g->scratch + 63) & ~(uintptr_t)63;
    float *buf = (float *)base + (size_t)ith * (size_t)thread_floats(g, kr);
    sgemm_block(g, kr, mlo * kr->mr, min64(mhi * kr->mr, g->m), nlo * kr->nr,
                min64(nhi * kr->nr, g->n), buf);
    return KILN_OK;
}

/* ---- on a pool -------------------------------------------------------------- */

static void sgemm_task(void *arg, int ith, int nth) {
    (void)kiln__sgemm((const kiln__gemm_args *)arg, ith, nth); /* checked by the caller */
}

kiln_status kiln__sgemm_run(kiln__pool *pool, const kiln__gemm_args *args, void *scratch) {
    const kiln__sgemm_kernel *kr;
    KILN__TRY(check_args(args, &kr));
    if (args->m == 0 || args->n == 0) return KILN_OK;
    if (!scratch) return kiln__err(KILN_E_INVAL, "sgemm: no scratch");
    kiln__gemm_args g = *args;
    g.scratch = scratch;
    int tm, tn;
    thread_grid(g.m, g.n, kr, kiln__pool_size(pool), &tm, &tn);
    kiln__pool_run(pool, tm * tn, sgemm_task, &g);
    return KILN_OK;
}
