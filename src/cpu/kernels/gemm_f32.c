/* src/cpu/kernels/gemm_f32.c: the f32 GEMM driver: ISA dispatch, argument
 * checks, the thread grid, packing and the blocked loops around the tile
 * kernels (see gemm.h for the algorithm and the semantics). */
#include <string.h>

#include "core/elem.h"
#include "cpu/kernels/gemm_f32_impl.h"

/* ---- ISA dispatch -------------------------------------------------------- */

static const kiln__sgemm_kernel *kernel_of(kiln__gemm_isa isa, kiln__gemm_compute compute) {
    if (compute == KILN__GEMM_BF16) {
#ifdef KILN__GEMM_X86_BF16
        if (isa == KILN__GEMM_ISA_AVX512) return &kiln__sgemm_kernel_avx512_bf16;
#endif
        return NULL;
    }
    if (compute != KILN__GEMM_F32) return NULL;
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

int kiln__gemm_compute_supported(kiln__gemm_compute compute) {
    switch (compute) {
    case KILN__GEMM_F32: return 1;
#ifdef KILN__GEMM_X86_BF16
    case KILN__GEMM_BF16:
        __builtin_cpu_init();
        return kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX512) &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bf16");
#endif
    default: return 0;
    }
}

const char *kiln__gemm_compute_name(kiln__gemm_compute compute) {
    switch (compute) {
    case KILN__GEMM_F32: return "f32";
    case KILN__GEMM_BF16: return "bf16";
    default: return "unknown";
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

/* The kernel for (isa, compute) (AUTO: the best isa that computes it), or
 * NULL if this CPU or build lacks it. */
static const kiln__sgemm_kernel *resolve(kiln__gemm_isa isa, kiln__gemm_compute compute) {
    if ((unsigned)compute > KILN__GEMM_BF16 || !kiln__gemm_compute_supported(compute)) return NULL;
    if (isa == KILN__GEMM_ISA_AUTO)
        isa = compute == KILN__GEMM_BF16 ? KILN__GEMM_ISA_AVX512 : kiln__gemm_isa_best();
    if ((unsigned)isa >= KILN__GEMM_ISA_COUNT || !kiln__gemm_isa_supported(isa)) return NULL;
    return kernel_of(isa, compute);
}

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- f32 packing -----------------------------------------------------------
 * The layouts of kiln__sgemm_tile_fn with G = 1. */

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

/* kiln__gemm_pack_b_fn for f32: panel jp at dst + jp*kc, element (k,j) at
 * k*NR + j. */
static void pack_b_f32(const kiln__sgemm_kernel *kr, int trans_b, const float *b, int64_t ldb,
                       int64_t p0, int64_t kc, int64_t j0, int64_t nc, void *dstv) {
    const int nr_tile = kr->nr;
    float *restrict dst = dstv;
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

/* kiln__gemm_pack_a_fn for f32: panel ip at dst + ip*kc, element (i,k) at
 * k*MR + i. */
static void pack_a_f32(const kiln__sgemm_kernel *kr, const kiln__gemm_args *g, int64_t i0,
                       int64_t mc, int64_t p0, int64_t kc, void *dstv) {
    const int mr_tile = kr->mr;
    float *restrict dst = dstv;
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

static void pack_a(const kiln__sgemm_kernel *kr, const kiln__gemm_args *g, int64_t i0,
                   int64_t mc, int64_t p0, int64_t kc, void *dst) {
    (kr->pack_a ? kr->pack_a : pack_a_f32)(kr, g, i0, mc, p0, kc, dst);
}
static void pack_b(const kiln__sgemm_kernel *kr, int trans_b, const float *b, int64_t ldb,
                   int64_t p0, int64_t kc, int64_t j0, int64_t nc, void *dst) {
    (kr->pack_b ? kr->pack_b : pack_b_f32)(kr, trans_b, b, ldb, p0, kc, j0, nc, dst);
}

/* ---- prepacked buffers ----------------------------------------------------
 * A 64-byte header, then the operand cut into K blocks of kc = min(KC, K - p0)
 * K values: op(B) (K,N) in NR-wide panels (width W = NR, length L = N) or
 * op(A) (M,K) in MR-row panels (W = MR, L = M). Block p0 starts at element
 * p0 * round_up(L, W) and holds panel by panel kcp K values each (kc rounded
 * up to the kernel's K group), zero-padded past L and kc: the layout the
 * driver packs per thread, so the loops read both alike. Elements are f32 or
 * bf16 as the compute type says. */
#define PACKED_MAGIC_B 0x4b4c4e42u /* "KLNB" */
#define PACKED_MAGIC_A 0x4b4c4e41u /* "KLNA" */
#define PACKED_HEADER 64

typedef struct packed_header {
    uint32_t magic;
    int32_t isa, compute, width, kc; /* width: NR (B) or MR (A) */
    int64_t k, len;                  /* len: N (B) or M (A) */
} packed_header;

/* Bytes of a packed buffer of K x len in `width` panels for kr, 0 if too big. */
static size_t packed_bytes(const kiln__sgemm_kernel *kr, int64_t k, int64_t len, int width) {
    int64_t elems;
    if (!kr || k < 0 || len < 0 ||
        !kiln__dims_mul(round_up(k, kr->kgroup), round_up(len, width), &elems) ||
        elems > INT64_MAX / 4)
        return 0;
    return PACKED_HEADER + (size_t)elems * (size_t)kr->esize;
}

size_t kiln__gemm_packed_b_bytes_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int64_t k,
                                    int64_t n) {
    const kiln__sgemm_kernel *kr = resolve(isa, compute);
    return kr ? packed_bytes(kr, k, n, kr->nr) : 0;
}

size_t kiln__sgemm_packed_b_bytes(kiln__gemm_isa isa, int64_t k, int64_t n) {
    return kiln__gemm_packed_b_bytes_ex(isa, KILN__GEMM_F32, k, n);
}

size_t kiln__gemm_packed_a_bytes_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int64_t m,
                                    int64_t k) {
    const kiln__sgemm_kernel *kr = resolve(isa, compute);
    return kr ? packed_bytes(kr, k, m, kr->mr) : 0;
}

/* The checks both packing calls share: the kernel for (isa, compute), the
 * size and the buffer; writes the header. `what` names the call, `len_name`
 * the other dimension (N or M). */
static kiln_status packed_begin(const char *what, kiln__gemm_isa isa, kiln__gemm_compute compute,
                                uint32_t magic, const char *len_name, int64_t k, int64_t len,
                                void *packed, size_t bytes, const kiln__sgemm_kernel **out) {
    const kiln__sgemm_kernel *kr = resolve(isa, compute);
    *out = kr;
    if (!kr)
        return kiln__err(KILN_E_UNSUPPORTED, "%s: isa %s with %s compute not available on this CPU",
                         what, kiln__gemm_isa_name(isa), kiln__gemm_compute_name(compute));
    const int width = magic == PACKED_MAGIC_A ? kr->mr : kr->nr;
    size_t need = packed_bytes(kr, k, len, width);
    if (need == 0)
        return kiln__err(KILN_E_INVAL, "%s: bad size K=%lld %s=%lld", what, (long long)k,
                         len_name, (long long)len);
    if (!packed || bytes < need)
        return kiln__err(KILN_E_INVAL, "%s: buffer of %zu bytes, need %zu", what,
                         packed ? bytes : 0, need);
    packed_header h = {magic, kr->isa, compute, width, kr->kc, k, len};
    memset(packed, 0, PACKED_HEADER);
    memcpy(packed, &h, sizeof h);
    return KILN_OK;
}

kiln_status kiln__gemm_pack_b_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int trans_b,
                                 int64_t k, int64_t n, const float *b, int64_t ldb, void *packed,
                                 size_t packed_bytes) {
    const int64_t min_ld = trans_b ? k : n;
    if (k > 0 && n > 0 && (ldb < min_ld || !b))
        return kiln__err(KILN_E_INVAL, "sgemm_pack_b: ldb %lld < %lld or B missing",
                         (long long)ldb, (long long)min_ld);
    const kiln__sgemm_kernel *kr;
    KILN__TRY(packed_begin("sgemm_pack_b", isa, compute, PACKED_MAGIC_B, "N", k, n, packed,
                           packed_bytes, &kr));
    char *data = (char *)packed + PACKED_HEADER;
    const int64_t npad = round_up(n, kr->nr);
    if (n > 0)
        for (int64_t p0 = 0; p0 < k; p0 += kr->kc)
            pack_b(kr, trans_b, b, ldb, p0, min64(kr->kc, k - p0), 0, n,
                   data + (size_t)(p0 * npad) * (size_t)kr->esize);
    return KILN_OK;
}

kiln_status kiln__sgemm_pack_b(kiln__gemm_isa isa, int trans_b, int64_t k, int64_t n,
                               const float *b, int64_t ldb, void *packed, size_t packed_bytes) {
    return kiln__gemm_pack_b_ex(isa, KILN__GEMM_F32, trans_b, k, n, b, ldb, packed, packed_bytes);
}

kiln_status kiln__gemm_pack_a_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int trans_a,
                                 int64_t m, int64_t k, const float *a, int64_t lda, void *packed,
                                 size_t packed_bytes) {
    const int64_t min_ld = trans_a ? m : k;
    if (k > 0 && m > 0 && (lda < min_ld || !a))
        return kiln__err(KILN_E_INVAL, "sgemm_pack_a: lda %lld < %lld or A missing",
                         (long long)lda, (long long)min_ld);
    const kiln__sgemm_kernel *kr;
    KILN__TRY(packed_begin("sgemm_pack_a", isa, compute, PACKED_MAGIC_A, "M", k, m, packed,
                           packed_bytes, &kr));
    char *data = (char *)packed + PACKED_HEADER;
    const int64_t mpad = round_up(m, kr->mr);
    const kiln__gemm_args src = {.m = m, .k = k, .trans_a = trans_a, .a = a, .lda = lda};
    if (m > 0)
        for (int64_t p0 = 0; p0 < k; p0 += kr->kc)
            pack_a(kr, &src, 0, m, p0, min64(kr->kc, k - p0),
                   data + (size_t)(p0 * mpad) * (size_t)kr->esize);
    return KILN_OK;
}

/* ---- argument checks ------------------------------------------------------ */

/* A prepacked operand (`which`: "A" or "B") against the product: its kind,
 * K, length (M or N) and compute type, and the isa (*isa: the args' isa, or
 * the isa the other packed operand fixed; set to the buffer's). */
static kiln_status check_packed(const char *which, const void *p, uint32_t magic, int64_t k,
                                const char *len_name, int64_t len, kiln__gemm_compute compute,
                                kiln__gemm_isa *isa) {
    const packed_header *h = p;
    if (!h || h->magic != magic)
        return kiln__err(KILN_E_INVAL, "sgemm: %s is flagged packed but is no packed %s buffer",
                         which, which);
    if (h->k != k || h->len != len)
        return kiln__err(KILN_E_INVAL,
                         "sgemm: packed %s holds K=%lld %s=%lld, the product has K=%lld %s=%lld",
                         which, (long long)h->k, len_name, (long long)h->len, (long long)k,
                         len_name, (long long)len);
    if (h->compute != (int32_t)compute)
        return kiln__err(KILN_E_INVAL, "sgemm: packed %s holds %s values, the product computes in %s",
                         which, kiln__gemm_compute_name((kiln__gemm_compute)h->compute),
                         kiln__gemm_compute_name(compute));
    if (*isa != KILN__GEMM_ISA_AUTO && *isa != (kiln__gemm_isa)h->isa)
        return kiln__err(KILN_E_INVAL, "sgemm: packed %s is for isa %s, the product runs %s",
                         which, kiln__gemm_isa_name((kiln__gemm_isa)h->isa),
                         kiln__gemm_isa_name(*isa));
    *isa = (kiln__gemm_isa)h->isa;
    return KILN_OK;
}

/* The packed operand's blocking matches the kernel it resolved to. */
static kiln_status check_layout(const char *which, const void *p, int width,
                                const kiln__sgemm_kernel *kr) {
    const packed_header *h = p;
    if (h->width != width || h->kc != kr->kc)
        return kiln__err(KILN_E_INVAL,
                         "sgemm: packed %s has tile %d and K block %d, the %s kernel uses %d and %d",
                         which, (int)h->width, (int)h->kc, kiln__gemm_isa_name(kr->isa), width,
                         kr->kc);
    return KILN_OK;
}

static kiln_status check_args(const kiln__gemm_args *g, const kiln__sgemm_kernel **out) {
    *out = NULL;
    if (!g) return kiln__err(KILN_E_INVAL, "sgemm: no arguments");
    if (g->m < 0 || g->n < 0 || g->k < 0 || g->m > KILN__MAX_NUMEL || g->n > KILN__MAX_NUMEL ||
        g->k > KILN__MAX_NUMEL)
        return kiln__err(KILN_E_INVAL, "sgemm: bad sizes M=%lld N=%lld K=%lld", (long long)g->m,
                         (long long)g->n, (long long)g->k);
    const int64_t m = g->m, n = g->n, k = g->k;
    kiln__gemm_isa isa = g->isa;
    /* packed operands are checked whenever they hold data (K > 0 and M or N > 0) */
    const int check_a = g->a_packed && k > 0 && m > 0, check_b = g->b_packed && k > 0 && n > 0;
    if (check_a)
        KILN__TRY(check_packed("A", g->a, PACKED_MAGIC_A, k, "M", m, g->compute, &isa));
    if (check_b)
        KILN__TRY(check_packed("B", g->b, PACKED_MAGIC_B, k, "N", n, g->compute, &isa));
    const kiln__sgemm_kernel *kr = resolve(isa, g->compute);
    if (!kr)
        return kiln__err(KILN_E_UNSUPPORTED,
                         "sgemm: isa %s with %s compute not available on this CPU",
                         kiln__gemm_isa_name(isa), kiln__gemm_compute_name(g->compute));
    if (check_a) KILN__TRY(check_layout("A", g->a, kr->mr, kr));
    if (check_b) KILN__TRY(check_layout("B", g->b, kr->nr, kr));
    if (m == 0 || n == 0) {
        *out = kr;
        return KILN_OK;
    }
    const int64_t lda_min = g->trans_a ? m : k, ldb_min = g->trans_b ? k : n;
    if (k > 0 && !g->a_packed && (!g->a || g->lda < (lda_min > 1 ? lda_min : 1)))
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

/* Bytes one thread packs into: unless A comes packed, an MC x KC block of A
 * and, unless B comes packed, a KC x NC block of B (both clipped to the
 * problem). */
static int64_t thread_bytes(const kiln__gemm_args *g, const kiln__sgemm_kernel *kr) {
    const int64_t kcp = round_up(min64(g->k, kr->kc), kr->kgroup);
    int64_t e = 0;
    if (!g->a_packed) e += round_up(min64(g->m, kr->mc), kr->mr) * kcp;
    if (!g->b_packed) e += kcp * round_up(min64(g->n, kr->nc), kr->nr);
    return round_up(e * kr->esize, 64); /* 64-byte aligned slices */
}

size_t kiln__sgemm_scratch_bytes(const kiln__gemm_args *g, int nth) {
    const kiln__sgemm_kernel *kr;
    if (check_args(g, &kr) != KILN_OK || g->m == 0 || g->n == 0 || nth < 1) return 0;
    return (size_t)thread_bytes(g, kr) * (size_t)nth + 64;
}

void kiln__gemm_thread_grid(int64_t m, int64_t n, int mr, int nr, int nth, int *tm, int *tn) {
    const int64_t tiles_m = (m + mr - 1) / mr, tiles_n = (n + nr - 1) / nr;
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

/* One thread's share of the product: C rows [m0, m1) and columns [n0, n1)
 * (multiples of MR and NR where they start), the packed operands' blocks and
 * the order of the loops around them. */
typedef struct block_job {
    const kiln__gemm_args *g;
    const kiln__sgemm_kernel *kr;
    int64_t m0, m1, n0, n1;
    int64_t mc, nc;     /* rows / columns per A / B block */
    int a_outer;        /* A blocks outside B blocks (else B blocks outside) */
    char *pa_buf, *pb_buf;          /* this thread's packing buffers */
    const char *packed_a, *packed_b; /* prepacked data (past the header) or NULL */
    int64_t mpad, npad;             /* M, N rounded up to MR, NR (prepacked strides) */
} block_job;

/* Rows of A packed at once when B blocks are the outer loop: the A block then
 * shares L2 with the B block it sweeps, so it is kept small. */
#define MC_INNER_PANELS 12

/* Values of A and B (per K value) that one thread packs for C rows x cols,
 * and the loop order that packs the fewest (*a_outer). The outer operand is
 * packed once per K block, the inner one once per outer block: prepacked A
 * goes inner with a single block (no packing), prepacked B goes inner; with
 * neither, the order that packs fewer values. */
static int64_t pack_volume(const kiln__sgemm_kernel *kr, int a_packed, int b_packed, int64_t rows,
                           int64_t cols, int *a_outer) {
    const int64_t mblocks = (rows + kr->mc - 1) / kr->mc, nblocks = (cols + kr->nc - 1) / kr->nc;
    /* A outer: A once, B once per A block; B outer: B once, A once per B block */
    const int64_t v_a = rows + cols * mblocks, v_b = cols + rows * nblocks;
    if (a_packed) {
        *a_outer = 0;
        return b_packed ? 0 : cols;
    }
    if (b_packed) {
        *a_outer = 1;
        return rows;
    }
    *a_outer = v_a <= v_b;
    return v_a <= v_b ? v_a : v_b;
}

/* Chooses the loop order and block sizes of C rows [m0, m1), columns
 * [n0, n1) (pack_volume says the order). */
static void job_plan(block_job *j) {
    const kiln__sgemm_kernel *kr = j->kr;
    const int64_t rows = j->m1 - j->m0, cols = j->n1 - j->n0;
    const int64_t nblocks = (cols + kr->nc - 1) / kr->nc;
    (void)pack_volume(kr, j->packed_a != NULL, j->packed_b != NULL, rows, cols, &j->a_outer);
    /* even blocks: no thin remainder block that repacks the other operand */
    if (j->packed_a) {
        j->mc = rows > 0 ? rows : 1;
    } else {
        int64_t mc = j->a_outer ? kr->mc : (int64_t)kr->mr * MC_INNER_PANELS;
        int64_t nb = (rows + mc - 1) / mc;
        j->mc = round_up((rows + nb - 1) / (nb > 0 ? nb : 1), kr->mr);
        if (j->mc < kr->mr) j->mc = kr->mr;
    }
    int64_t nb = nblocks > 0 ? nblocks : 1;
    j->nc = round_up((cols + nb - 1) / nb, kr->nr);
    if (j->nc < kr->nr) j->nc = kr->nr;
}

/* Cycles per packed value, against products at one vector FMA (W lanes) a
 * cycle: packing moves a value through memory and its cache lines. */
#define PACK_CYCLES 1.0

/* Thread grid tm x tn (tm*tn <= nth) of the product g: as many threads as
 * there are tiles, then the least time of the busiest thread, counting its
 * whole tiles and the packing its share needs. Splitting N makes every
 * thread pack the same A rows, splitting M the same B columns; prepacked
 * operands cost nothing, so with B prepacked M splits, with A prepacked N. */
static void sgemm_grid(const kiln__gemm_args *g, const kiln__sgemm_kernel *kr, int nth, int *tm,
                       int *tn) {
    const int64_t tiles_m = (g->m + kr->mr - 1) / kr->mr, tiles_n = (g->n + kr->nr - 1) / kr->nr;
    const double lanes = kr->compute == KILN__GEMM_BF16 ? 32.0 : (double)kr->nr / 2.0;
    int best_m = 1, best_n = 1;
    double best_cost = -1;
    for (int a = 1; a <= nth && a <= tiles_m; a++) {
        int b = nth / a;
        if (b > tiles_n) b = (int)tiles_n;
        const int64_t rows = min64((tiles_m + a - 1) / a * kr->mr, g->m);
        const int64_t cols = min64((tiles_n + b - 1) / b * kr->nr, g->n);
        int a_outer;
        const double pack = (double)pack_volume(kr, g->a_packed, g->b_packed, rows, cols, &a_outer);
        const double cost = ((double)rows * (double)cols / lanes + PACK_CYCLES * pack) * (double)g->k;
        if (best_cost < 0 || a * b > best_m * best_n ||
            (a * b == best_m * best_n && cost < best_cost)) {
            best_m = a;
            best_n = b;
            best_cost = cost;
        }
    }
    *tm = best_m;
    *tn = best_n;
}

/* The tiles of rows [ic, ic+mc) x columns [jc, jc+nc) over one K block: A
 * block pa (MR-row panels), B block pb (NR-wide panels), kcp K values each.
 * MR-row strips outside (the A panel stays in L1), NR-column tiles inside
 * (the B block stays in L2). */
static void block_tiles(const block_job *j, int64_t ic, int64_t mc, int64_t jc, int64_t nc,
                        int64_t kc, int64_t kcp, const char *pa, const char *pb,
                        kiln__gemm_tile_ep *ep) {
    const kiln__gemm_args *g = j->g;
    const kiln__sgemm_kernel *kr = j->kr;
    const int64_t MR = kr->mr, NR = kr->nr, es = kr->esize;
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int mr = (int)min64(MR, mc - ir);
        const int64_t i = ic + ir;
        ep->bias_row = g->bias_kind == KILN__GEMM_BIAS_ROW ? g->bias + i : NULL;
        if (kr->strip) {
            ep->bias_col = g->bias_kind == KILN__GEMM_BIAS_COL ? g->bias + jc : NULL;
            ep->res = g->residual ? g->residual + i * g->ldr + jc : NULL;
            kr->strip(mr, nc, kc, kcp, pa + ir * kcp * es, pb, g->c + i * g->ldc + jc, g->ldc, ep);
            continue;
        }
        for (int64_t jr = 0; jr < nc; jr += NR) {
            const int nr = (int)min64(NR, nc - jr);
            const int64_t jj = jc + jr;
            ep->bias_col = g->bias_kind == KILN__GEMM_BIAS_COL ? g->bias + jj : NULL;
            ep->res = g->residual ? g->residual + i * g->ldr + jj : NULL;
            kr->tile(mr, nr, kc, pa + ir * kcp * es, pb + jr * kcp * es, g->c + i * g->ldc + jj,
                     g->ldc, ep);
        }
    }
}

/* The A block of rows [ic, ic+mc) for K block p0: the prepacked one, or
 * packed into the thread's buffer. */
static const char *a_block(const block_job *j, int64_t ic, int64_t mc, int64_t p0, int64_t kc,
                           int64_t kcp) {
    if (j->packed_a) return j->packed_a + (p0 * j->mpad + ic * kcp) * j->kr->esize;
    if (kc > 0) pack_a(j->kr, j->g, ic, mc, p0, kc, j->pa_buf);
    return j->pa_buf;
}

/* The same for the B block of columns [jc, jc+nc). */
static const char *b_block(const block_job *j, int64_t jc, int64_t nc, int64_t p0, int64_t kc,
                           int64_t kcp) {
    if (j->packed_b) return j->packed_b + (p0 * j->npad + jc * kcp) * j->kr->esize;
    if (kc > 0) pack_b(j->kr, j->g->trans_b, j->g->b, j->g->ldb, p0, kc, jc, nc, j->pb_buf);
    return j->pb_buf;
}

/* C rows [m0, m1), columns [n0, n1) with kernel kr, packing into buf.
 * Loops: K blocks (kc) > outer blocks (A or B, see job_plan) > inner blocks >
 * block_tiles. */
static void sgemm_block(const kiln__gemm_args *g, const kiln__sgemm_kernel *kr, int64_t m0,
                        int64_t m1, int64_t n0, int64_t n1, char *buf) {
    const int64_t K = g->k;
    block_job j = {.g = g, .kr = kr, .m0 = m0, .m1 = m1, .n0 = n0, .n1 = n1};
    j.packed_a = g->a_packed && K > 0 ? (const char *)g->a + PACKED_HEADER : NULL;
    j.packed_b = g->b_packed && K > 0 ? (const char *)g->b + PACKED_HEADER : NULL;
    j.mpad = round_up(g->m, kr->mr);
    j.npad = round_up(g->n, kr->nr);
    j.pa_buf = buf;
    j.pb_buf = buf + (g->a_packed ? 0
                                  : round_up(min64(g->m, kr->mc), kr->mr) *
                                        round_up(min64(K, kr->kc), kr->kgroup) * kr->esize);
    job_plan(&j);
    kiln__gemm_tile_ep ep = {.act = g->act, .lo = g->act_min, .hi = g->act_max, .ldr = g->ldr};

    /* K blocks; K == 0 still runs one (empty) block for beta and the epilogue */
    for (int64_t p0 = 0; p0 < K || (p0 == 0 && K == 0); p0 += kr->kc) {
        const int64_t kc = min64(kr->kc, K - p0), kcp = round_up(kc, kr->kgroup);
        ep.alpha = g->alpha;
        ep.beta = p0 == 0 ? g->beta : 1.0f;
        ep.last = p0 + kc >= K;
        if (j.a_outer) {
            for (int64_t ic = m0; ic < m1; ic += j.mc) {
                const int64_t mc = min64(j.mc, m1 - ic);
                const char *pa = a_block(&j, ic, mc, p0, kc, kcp);
                for (int64_t jc = n0; jc < n1; jc += j.nc) {
                    const int64_t nc = min64(j.nc, n1 - jc);
                    const char *pb = b_block(&j, jc, nc, p0, kc, kcp);
                    block_tiles(&j, ic, mc, jc, nc, kc, kcp, pa, pb, &ep);
                }
            }
        } else {
            for (int64_t jc = n0; jc < n1; jc += j.nc) {
                const int64_t nc = min64(j.nc, n1 - jc);
                const char *pb = b_block(&j, jc, nc, p0, kc, kcp);
                for (int64_t ic = m0; ic < m1; ic += j.mc) {
                    const int64_t mc = min64(j.mc, m1 - ic);
                    const char *pa = a_block(&j, ic, mc, p0, kc, kcp);
                    block_tiles(&j, ic, mc, jc, nc, kc, kcp, pa, pb, &ep);
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
    sgemm_grid(g, kr, nth, &tm, &tn);
    if (ith >= tm * tn) return KILN_OK; /* more threads than tiles */
    const int64_t tiles_m = (g->m + kr->mr - 1) / kr->mr, tiles_n = (g->n + kr->nr - 1) / kr->nr;
    int64_t mlo, mhi, nlo, nhi;
    kiln__split(tiles_m, ith / tn, tm, &mlo, &mhi);
    kiln__split(tiles_n, ith % tn, tn, &nlo, &nhi);
    if (mlo == mhi || nlo == nhi) return KILN_OK;
    uintptr_t base = ((uintptr_t)g->scratch + 63) & ~(uintptr_t)63;
    char *buf = (char *)base + (size_t)ith * (size_t)thread_bytes(g, kr);
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
    sgemm_grid(&g, kr, kiln__pool_size(pool), &tm, &tn);
    kiln__pool_run(pool, tm * tn, sgemm_task, &g);
    return KILN_OK;
}
