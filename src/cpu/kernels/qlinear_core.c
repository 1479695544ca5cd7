/* src/cpu/kernels/qlinear_core.c: weight packing, parameters, the exact
 * requantization (scalar and AVX-512) and the layout helpers of the 8-bit
 * integer algorithms (qlinear.h). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* the reference's operations, one at a time */
#endif

#include <math.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h" /* kiln__conv_mchunks, kiln__conv_gemm_efficiency */
#include "cpu/kernels/qlinear.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define Q_X86 1
#include <immintrin.h>
#endif

kiln__gemm_isa kiln__qlinear_isa = KILN__GEMM_ISA_AUTO;

/* ---- packed weights ------------------------------------------------------------- */

kiln_status kiln__qw_pack(kiln__qw *w, int64_t groups, int64_t n, int64_t k, int64_t nch,
                          const int8_t *bt, const int8_t *bz) {
    memset(w, 0, sizeof *w);
    if (nch < 1 || nch > KILN__Q_MAX_CHUNKS || groups < 1 || n < 1 || k < 1)
        return kiln__err(KILN_E_INVAL, "qlinear: bad weight layout (groups %lld, n %lld, k %lld, "
                         "chunks %lld)", (long long)groups, (long long)n, (long long)k,
                         (long long)nch);
    w->k = k;
    w->n = n;
    w->groups = groups;
    w->nch = nch;
    size_t most = 0;
    for (int64_t h = 0; h < nch; h++) {
        int64_t lo, hi;
        kiln__conv_chunk(n, 32, h, nch, &lo, &hi);
        if (hi <= lo) return kiln__err(KILN_E_INVAL, "qlinear: %lld chunks of %lld columns",
                                       (long long)nch, (long long)n);
        w->lo[h] = lo;
    }
    w->lo[nch] = n;
    for (int64_t h = 0; h < nch; h++) {
        size_t b = kiln__gemm_u8s8_packed_b_bytes(k, w->lo[h + 1] - w->lo[h]);
        if (b == 0) return kiln__err(KILN_E_LIMIT, "qlinear: weights too large to pack");
        if (b > most) most = b;
    }
    w->stride = kiln__q_align64(most);
    w->buf = kiln__aligned_alloc(w->stride * (size_t)(groups * nch));
    if (!w->buf) return KILN_E_NOMEM;
    for (int64_t g = 0; g < groups; g++)
        for (int64_t h = 0; h < nch; h++) {
            int64_t c0 = g * n + w->lo[h], cw = w->lo[h + 1] - w->lo[h];
            kiln_status s = kiln__gemm_u8s8_pack_b(1, k, cw, bt + c0 * k, k, bz ? bz + c0 : NULL,
                                                   w->buf + (size_t)(g * nch + h) * w->stride,
                                                   w->stride);
            if (s != KILN_OK) {
                kiln__qw_free(w);
                return s;
            }
        }
    return KILN_OK;
}

void kiln__qw_free(kiln__qw *w) {
    kiln__aligned_free(w->buf);
    memset(w, 0, sizeof *w);
}

int8_t kiln__q_weight_s8(const kiln_tensor *t, int64_t i) {
    if (t->dtype == KILN_DTYPE_U8) return (int8_t)((int)((const uint8_t *)t->data)[i] - 128);
    return ((const int8_t *)t->data)[i];
}

int8_t kiln__q_wzero_s8(const kiln_tensor *zp, kiln_dtype wdt, int64_t i) {
    if (!zp) return wdt == KILN_DTYPE_U8 ? -128 : 0;
    int64_t j = kiln__n(zp) == 1 ? 0 : i;
    if (wdt == KILN_DTYPE_U8) return (int8_t)((int)((const uint8_t *)zp->data)[j] - 128);
    return ((const int8_t *)zp->data)[j];
}

int64_t kiln__q_chunks(int64_t base, int64_t n, int nth) {
    int64_t nch = kiln__conv_mchunks(base, n, nth, 32);
    return nch > KILN__Q_MAX_CHUNKS ? KILN__Q_MAX_CHUNKS : nch;
}

/* ---- parameters -------------------------------------------------------------------- */

int kiln__q_is_scalar(const kiln_tensor *t) { return !t || kiln__n(t) == 1; }

int kiln__q_is_vec(const kiln_tensor *t, int64_t n) {
    if (kiln__q_is_scalar(t)) return 1;
    if (t->ndim < 1 || t->dims[t->ndim - 1] != n) return 0;
    for (int d = 0; d + 1 < t->ndim; d++)
        if (t->dims[d] != 1) return 0;
    return 1;
}

double kiln__q_param(const kiln_tensor *t, int64_t j) {
    if (!t) return 0;
    return kiln__ld_f(t->dtype, t->data, kiln__n(t) == 1 ? 0 : j);
}

uint8_t kiln__q_azero_u8(const kiln_tensor *zp, kiln_dtype adt) {
    if (!zp) return adt == KILN_DTYPE_I8 ? 128 : 0;
    if (zp->dtype == KILN_DTYPE_I8) return (uint8_t)(((const int8_t *)zp->data)[0] + 128);
    return ((const uint8_t *)zp->data)[0];
}

/* ---- requantization ---------------------------------------------------------------- */

double kiln__q_conv_mult(double xs, double ws, double ys) {
    float mult = (float)xs * (float)ws; /* as src/cpu/ref/conv.c emit_qlinear */
    mult /= (float)ys;
    return (double)mult;
}

/* v rounded to dtype dt, as the reference rounds its scale products. */
static double round_to(kiln_dtype dt, double v) {
    uint64_t buf;
    kiln__st_f(dt, &buf, 0, v);
    return kiln__ld_f(dt, &buf, 0);
}

double kiln__q_matmul_mult(kiln_dtype st, double as, double bs, double ys) {
    return round_to(st, round_to(st, as * bs) / ys); /* as src/cpu/ref/matmul.c emit_qlinear */
}

static int cpu_has_avx512(void) {
#ifdef Q_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

void kiln__qreq_finish(kiln__qreq *q, int64_t n, kiln__gemm_isa isa) {
    q->vector = isa != KILN__GEMM_ISA_GENERIC && cpu_has_avx512();
    for (int64_t j = 0; j < n && q->vector; j++) q->vector = isfinite(q->mult[j]) != 0;
}

/* One row, scalar: the reference's operations and store. */
static void qreq_row_scalar(const kiln__qreq *q, int64_t cols, const int32_t *acc, int64_t col0,
                            void *y) {
    const double lo = q->out == KILN_DTYPE_I8 ? -128 : 0, hi = q->out == KILN_DTYPE_I8 ? 127 : 255;
    for (int64_t j = 0; j < cols; j++) {
        const int64_t c = col0 + j;
        double a = (double)acc[j], v;
        if (q->bias) a += (double)q->bias[c];
        if (q->zero_in_round)
            v = nearbyint(a * q->mult[c] + q->yz[c]);
        else
            v = nearbyint(a * q->mult[c]) + q->yz[c];
        kiln__st_f(q->out, y, j, v < lo ? lo : v > hi ? hi : v);
    }
}

#ifdef Q_X86
#define QV_ATTR __attribute__((target("avx512f,avx512bw,avx512vl")))
#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* One row, 8 columns at a time in double: the same IEEE operations as the
 * scalar row (explicitly rounded forms, never contracted), finite mult only. */
static QV_ATTR void qreq_row_avx512(const kiln__qreq *q, int64_t cols, const int32_t *acc,
                                    int64_t col0, void *y) {
    const int s8 = q->out == KILN_DTYPE_I8;
    const __m512d lo = _mm512_set1_pd(s8 ? -128.0 : 0.0), hi = _mm512_set1_pd(s8 ? 127.0 : 255.0);
    for (int64_t j = 0; j < cols; j += 8) {
        const int64_t left = cols - j;
        const __mmask8 m = left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1u);
        const int64_t c = col0 + j;
        __m512d a = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(m, acc + j));
        if (q->bias)
            a = _mm512_add_round_pd(a, _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(m, q->bias + c)),
                                    RNE);
        const __m512d mu = _mm512_maskz_loadu_pd(m, q->mult + c), z = _mm512_maskz_loadu_pd(m, q->yz + c);
        __m512d v = _mm512_mul_round_pd(a, mu, RNE);
        if (q->zero_in_round) {
            v = _mm512_roundscale_pd(_mm512_add_round_pd(v, z, RNE), _MM_FROUND_TO_NEAREST_INT);
        } else {
            v = _mm512_add_round_pd(_mm512_roundscale_pd(v, _MM_FROUND_TO_NEAREST_INT), z, RNE);
        }
        v = _mm512_min_pd(_mm512_max_pd(v, lo), hi);
        const __m256i iv = _mm512_cvtpd_epi32(v);
        _mm256_mask_cvtepi32_storeu_epi8((char *)y + j, m, iv);
    }
}
#endif

void kiln__qreq_rows(const kiln__qreq *q, int64_t rows, int64_t cols, const int32_t *acc,
                     int64_t ldacc, int64_t col0, void *y, int64_t ldy) {
    for (int64_t i = 0; i < rows; i++) {
        const int32_t *a = acc + i * ldacc;
        void *yr = (char *)y + i * ldy; /* 1-byte outputs */
#ifdef Q_X86
        if (q->vector) {
            qreq_row_avx512(q, cols, a, col0, yr);
            continue;
        }
#endif
        qreq_row_scalar(q, cols, a, col0, yr);
    }
}

/* ---- layout helpers ------------------------------------------------------------------ */

#define TB 32 /* transpose block */

void kiln__q_transpose_u8(int64_t rows, int64_t cols, const uint8_t *src, int64_t lds,
                          uint8_t *dst, int64_t ldd, uint8_t flip) {
    for (int64_t i0 = 0; i0 < rows; i0 += TB)
        for (int64_t j0 = 0; j0 < cols; j0 += TB) {
            const int64_t i1 = i0 + TB < rows ? i0 + TB : rows, j1 = j0 + TB < cols ? j0 + TB : cols;
            for (int64_t i = i0; i < i1; i++)
                for (int64_t j = j0; j < j1; j++) dst[i * ldd + j] = src[j * lds + i] ^ flip;
        }
}

void kiln__q_transpose_s32(int64_t rows, int64_t cols, const int32_t *src, int64_t lds,
                           int32_t *dst, int64_t ldd) {
    for (int64_t i0 = 0; i0 < rows; i0 += TB)
        for (int64_t j0 = 0; j0 < cols; j0 += TB) {
            const int64_t i1 = i0 + TB < rows ? i0 + TB : rows, j1 = j0 + TB < cols ? j0 + TB : cols;
            for (int64_t i = i0; i < i1; i++)
                for (int64_t j = j0; j < j1; j++) dst[i * ldd + j] = src[j * lds + i];
        }
}

/* ---- running ------------------------------------------------------------------------- */

void kiln__q_parallel(kiln__kctx *c, int want, kiln__task_fn fn, void *arg) {
    if (want <= 1 || !c->pool)
        fn(arg, 0, 1);
    else
        kiln__pool_run(c->pool, want, fn, arg);
}

size_t kiln__q_gemm_scratch(int64_t m, int64_t n, int64_t k, const void *pb, kiln__gemm_isa isa) {
    static const uint8_t dummy[1];
    kiln__gemm_u8s8_args a = {.m = m, .n = n, .k = k, .a = dummy, .lda = k, .b = pb,
                              .c = (void *)dummy, .ldc = n, .out = KILN__GEMM_U8S8_S32,
                              .isa = isa};
    return kiln__gemm_u8s8_scratch_bytes(&a, 1);
}

double kiln__q_cost(const kiln__kctx *c, double ops, double m, double n, double k, double bytes,
                    kiln__gemm_isa isa) {
    /* vpdpbusd does 64 multiply-adds where an f32 FMA does 16: up to 4x the
     * f32 rate; the generic path is a plain C loop */
    double eff = kiln__conv_gemm_efficiency(m, n, k, KILN__GEMM_F32);
    int vnni = isa != KILN__GEMM_ISA_GENERIC &&
               kiln__gemm_u8s8_isa_supported(KILN__GEMM_ISA_AVX512);
    eff *= vnni ? 3.0 : 0.1;
    return kiln__cost_seconds(c, ops, eff, bytes);
}
