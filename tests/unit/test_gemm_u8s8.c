/* tests/unit/test_gemm_u8s8.c: the u8 x s8 GEMM (src/cpu/kernels/gemm_u8s8.h)
 * against an integer triple loop (int64 sums of (a - a_zero)(b - b_zero)) and
 * a scalar dequantize / requantize loop written from the header's spec, on
 * fresh random inputs over the full u8 / s8 ranges: exact equality for every
 * output type (s32, f32 bit for bit, u8 and s8 including round-half-to-even
 * ties), zero points (a_zero, per-column b_zero), bias, per-column or single
 * b_scale, ReLU, shapes around the 14x32 tile and the K groups of 4, B given
 * transposed, the generic and the VNNI paths, 1..3 threads, nothing written
 * outside C, NaN from the epilogue's parameters, and bad arguments. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* the reference follows the spec's operations */
#endif

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "cpu/kernels/gemm_u8s8.h"

#define GUARD 64 /* bytes after C checked untouched */
#define SENTINEL 0xa5

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rnd32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd32() >> 8) / 16777216.0f; }

typedef struct qcase {
    int64_t m, n, k;
    int tb;                 /* B given (N,K) */
    int a_zero;
    int bzero;              /* per-column b_zero (else none) */
    kiln__gemm_u8s8_out out;
    int bias, per_col, relu;
    int ties;               /* scales 1, y_scale 2: f / y_scale lands on halves */
    kiln__gemm_isa isa;
    int nth, use_pool, pad;
} qcase;

static size_t out_size(kiln__gemm_u8s8_out out) {
    return out == KILN__GEMM_U8S8_S32 || out == KILN__GEMM_U8S8_F32 ? 4 : 1;
}

typedef struct qops {
    uint8_t *a;
    int8_t *b, *bz;
    float *b_scale, *bias;
    float a_scale, y_scale;
    int32_t y_zero;
    int64_t lda, ldb, ldc;
    unsigned char *c;
    size_t c_bytes;
    void *packed;
} qops;

static void make_ops(const qcase *t, qops *o) {
    memset(o, 0, sizeof *o);
    o->lda = t->k + t->pad;
    o->ldb = (t->tb ? t->k : t->n) + t->pad;
    o->ldc = t->n + t->pad;
    o->a = malloc((size_t)(t->m * o->lda + 1));
    o->b = malloc((size_t)((t->tb ? t->n : t->k) * o->ldb + 1));
    o->bz = malloc((size_t)t->n + 1);
    o->b_scale = malloc(((size_t)t->n + 1) * sizeof(float));
    o->bias = malloc(((size_t)t->n + 1) * sizeof(float));
    assert_true(o->a && o->b && o->bz && o->b_scale && o->bias);
    for (int64_t x = 0; x < t->m * o->lda; x++) o->a[x] = (uint8_t)rnd32();
    for (int64_t x = 0; x < (t->tb ? t->n : t->k) * o->ldb; x++) o->b[x] = (int8_t)rnd32();
    for (int64_t j = 0; j < t->n; j++) {
        o->bz[j] = (int8_t)((int)(rnd32() % 21) - 10);
        o->b_scale[j] = t->ties ? 1.0f : rndf(0.001f, 0.02f);
        o->bias[j] = t->ties ? (float)((int)(rnd32() % 9) - 4) : rndf(-50.0f, 50.0f);
    }
    o->a_scale = t->ties ? 1.0f : rndf(0.005f, 0.05f);
    /* outputs that spread over the type's range, with some saturating */
    o->y_scale = t->ties ? 2.0f : 0.1f;
    o->y_zero = t->out == KILN__GEMM_U8S8_U8 ? 100 : -7;
    o->c_bytes = (size_t)(t->m * o->ldc) * out_size(t->out) + GUARD;
    o->c = malloc(o->c_bytes);
    assert_non_null(o->c);
    memset(o->c, SENTINEL, o->c_bytes);
}

static void free_ops(qops *o) {
    free(o->a);
    free(o->b);
    free(o->bz);
    free(o->b_scale);
    free(o->bias);
    free(o->c);
    free(o->packed);
}

/* acc (M,N): the exact sums, wrapped to int32 as the header specifies. */
static int32_t *int_reference(const qcase *t, const qops *o) {
    int32_t *acc = malloc((size_t)(t->m * t->n + 1) * sizeof(int32_t));
    assert_non_null(acc);
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = 0; j < t->n; j++) {
            int64_t s = 0;
            const int64_t zb = t->bzero ? o->bz[j] : 0;
            for (int64_t p = 0; p < t->k; p++) {
                const int64_t b = t->tb ? o->b[j * o->ldb + p] : o->b[p * o->ldb + j];
                s += ((int64_t)o->a[i * o->lda + p] - t->a_zero) * (b - zb);
            }
            acc[i * t->n + j] = (int32_t)(uint32_t)(uint64_t)s;
        }
    return acc;
}

/* The expected bytes of element (i,j) of C, from the header's spec. */
static void expected(const qcase *t, const qops *o, int32_t acc, int64_t j, void *out) {
    if (t->out == KILN__GEMM_U8S8_S32) {
        int32_t v = t->relu && acc < 0 ? 0 : acc;
        memcpy(out, &v, 4);
        return;
    }
    float s = o->a_scale * o->b_scale[t->per_col ? j : 0];
    float f = s * (float)acc;
    if (t->bias) f = f + o->bias[j];
    if (t->relu && f < 0.0f) f = 0.0f;
    if (t->out == KILN__GEMM_U8S8_F32) {
        memcpy(out, &f, 4);
        return;
    }
    float lo = t->out == KILN__GEMM_U8S8_U8 ? 0.0f : -128.0f;
    float hi = t->out == KILN__GEMM_U8S8_U8 ? 255.0f : 127.0f;
    float q = rintf(f / o->y_scale) + (float)o->y_zero; /* default mode: half to even */
    if (!(q >= lo)) q = lo;
    if (q > hi) q = hi;
    if (t->out == KILN__GEMM_U8S8_U8) {
        uint8_t v = (uint8_t)(int)q;
        memcpy(out, &v, 1);
    } else {
        int8_t v = (int8_t)(int)q;
        memcpy(out, &v, 1);
    }
}

static kiln__gemm_u8s8_args args_of(const qcase *t, const qops *o) {
    kiln__gemm_u8s8_args g = {
        .m = t->m, .n = t->n, .k = t->k, .a = o->a, .lda = o->lda,
        .a_zero = (uint8_t)t->a_zero, .b = o->packed, .c = o->c, .ldc = o->ldc,
        .out = t->out, .a_scale = o->a_scale, .b_scale = o->b_scale,
        .b_scale_per_col = t->per_col, .bias = t->bias ? o->bias : NULL,
        .y_scale = o->y_scale, .y_zero = o->y_zero, .relu = t->relu, .isa = t->isa,
    };
    return g;
}

static kiln_status run_case(const qcase *t, qops *o) {
    size_t pb = kiln__gemm_u8s8_packed_b_bytes(t->k, t->n);
    assert_true(pb > 0);
    o->packed = malloc(pb);
    assert_non_null(o->packed);
    KILN__TRY(kiln__gemm_u8s8_pack_b(t->tb, t->k, t->n, o->b, o->ldb, t->bzero ? o->bz : NULL,
                                     o->packed, pb));
    kiln__gemm_u8s8_args g = args_of(t, o);
    size_t sb = kiln__gemm_u8s8_scratch_bytes(&g, t->nth);
    void *scratch = malloc(sb ? sb : 1);
    assert_non_null(scratch);
    kiln_status st = KILN_OK;
    if (t->use_pool) {
        kiln__pool *pool;
        assert_int_equal(kiln__pool_create(t->nth, &pool), KILN_OK);
        st = kiln__gemm_u8s8_run(pool, &g, scratch);
        kiln__pool_free(pool);
    } else {
        g.scratch = scratch;
        for (int ith = 0; ith < t->nth && st == KILN_OK; ith++)
            st = kiln__gemm_u8s8(&g, ith, t->nth);
    }
    free(scratch);
    return st;
}

static void describe(const qcase *t, char *buf, size_t n) {
    snprintf(buf, n,
             "M=%lld N=%lld K=%lld tb=%d a_zero=%d bzero=%d out=%d bias=%d per_col=%d relu=%d "
             "ties=%d isa=%s nth=%d pool=%d pad=%d",
             (long long)t->m, (long long)t->n, (long long)t->k, t->tb, t->a_zero, t->bzero,
             (int)t->out, t->bias, t->per_col, t->relu, t->ties, kiln__gemm_isa_name(t->isa),
             t->nth, t->use_pool, t->pad);
}

/* Runs t and requires C to equal the reference byte for byte, and nothing
 * outside C's (M,N) elements written. Returns how many outputs saturated
 * (U8/S8) for the callers that want some. */
static int check_case(const qcase *t) {
    char what[320];
    describe(t, what, sizeof what);
    qops o;
    make_ops(t, &o);
    int32_t *acc = int_reference(t, &o);
    kiln_status st = run_case(t, &o);
    if (st != KILN_OK) fail_msg("%s: status %d (%s)", what, st, kiln_last_error());
    const size_t es = out_size(t->out);
    int saturated = 0;
    for (int64_t x = 0; x < (int64_t)(o.c_bytes / es); x++) {
        const int64_t i = x / o.ldc, j = x % o.ldc;
        const unsigned char *got = o.c + (size_t)x * es;
        if (i < t->m && j < t->n) {
            unsigned char want[4];
            expected(t, &o, acc[i * t->n + j], j, want);
            if (memcmp(got, want, es) != 0) {
                if (t->out == KILN__GEMM_U8S8_F32) {
                    float g, w;
                    memcpy(&g, got, 4);
                    memcpy(&w, want, 4);
                    fail_msg("%s: (%lld,%lld) = %.9g, expected %.9g (acc %d)", what,
                             (long long)i, (long long)j, g, w, acc[i * t->n + j]);
                }
                int32_t g = 0, w = 0;
                memcpy(&g, got, es);
                memcpy(&w, want, es);
                fail_msg("%s: (%lld,%lld) = %d, expected %d (bytes; acc %d)", what, (long long)i,
                         (long long)j, g, w, acc[i * t->n + j]);
            }
            if (es == 1) {
                int v = t->out == KILN__GEMM_U8S8_U8 ? *got : (int8_t)*got;
                saturated += v == (t->out == KILN__GEMM_U8S8_U8 ? 255 : 127) ||
                             v == (t->out == KILN__GEMM_U8S8_U8 ? 0 : -128);
            }
        } else {
            for (size_t q = 0; q < es; q++)
                if (got[q] != SENTINEL)
                    fail_msg("%s: byte %zu of element %lld outside C was written", what, q,
                             (long long)x);
        }
    }
    free(acc);
    free_ops(&o);
    return saturated;
}

static int isas(kiln__gemm_isa *out) {
    int n = 0;
    out[n++] = KILN__GEMM_ISA_GENERIC;
    if (kiln__gemm_u8s8_isa_supported(KILN__GEMM_ISA_AVX512)) out[n++] = KILN__GEMM_ISA_AVX512;
    return n;
}

static qcase plain(int64_t m, int64_t n, int64_t k, kiln__gemm_isa isa) {
    qcase t = {.m = m, .n = n, .k = k, .isa = isa, .nth = 1, .per_col = 1};
    return t;
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_dispatch(void **state) {
    assert_true(kiln__gemm_u8s8_isa_supported(KILN__GEMM_ISA_AUTO));
    assert_true(kiln__gemm_u8s8_isa_supported(KILN__GEMM_ISA_GENERIC));
    assert_false(kiln__gemm_u8s8_isa_supported(KILN__GEMM_ISA_AVX2));
    assert_false(kiln__gemm_u8s8_isa_supported((kiln__gemm_isa)99));
    print_message("gemm_u8s8: vnni %s\n",
                  kiln__gemm_u8s8_isa_supported(KILN__GEMM_ISA_AVX512) ? "available"
                                                                       : "unavailable");
}

static const int64_t shapes[][3] = {
    {1, 1, 1},    {2, 3, 5},      {7, 13, 11},  {14, 32, 4},   {15, 33, 7},  {13, 31, 3},
    {29, 67, 17}, {1, 100, 37},   {100, 1, 37}, {64, 64, 0},   {3, 17, 1},   {28, 64, 513},
    {97, 131, 301}, {31, 7, 600}, {113, 520, 40}, {1, 1, 1000}, {9, 40, 2},
};

/* Every shape x output type x isa, zero points and options varying along. */
static void test_shapes_outputs(void **state) {
    kiln__gemm_isa list[2];
    int ni = isas(list);
    int c = 0;
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int out = 0; out < KILN__GEMM_U8S8_OUT_COUNT; out++)
            for (int ii = 0; ii < ni; ii++, c++) {
                qcase t = plain(shapes[s][0], shapes[s][1], shapes[s][2], list[ii]);
                t.out = (kiln__gemm_u8s8_out)out;
                t.tb = c & 1;
                t.a_zero = (c / 2) % 3 == 0 ? 0 : (c / 2) % 3 == 1 ? 128 : 255;
                t.bzero = (c / 3) & 1;
                t.bias = out != KILN__GEMM_U8S8_S32 && ((c / 5) & 1);
                t.per_col = (c / 7) & 1;
                t.relu = (c / 11) & 1;
                t.pad = c % 3;
                check_case(&t);
            }
}

/* Every option combination on one shape with edges in both dimensions. */
static void test_epilogues(void **state) {
    kiln__gemm_isa list[2];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++)
        for (int out = 0; out < KILN__GEMM_U8S8_OUT_COUNT; out++) {
            int sat = 0;
            for (int opt = 0; opt < 16; opt++) {
                qcase t = plain(31, 45, 67, list[ii]);
                t.out = (kiln__gemm_u8s8_out)out;
                t.bias = out != KILN__GEMM_U8S8_S32 && (opt & 1);
                t.per_col = (opt >> 1) & 1;
                t.relu = (opt >> 2) & 1;
                t.bzero = (opt >> 3) & 1;
                t.a_zero = (3 + 50 * opt) % 256;
                sat += check_case(&t);
            }
            /* the requantizing cases went through saturation too */
            if (out >= KILN__GEMM_U8S8_U8) assert_true(sat > 0);
        }
}

/* f / y_scale exactly on halves: round half to even, as QuantizeLinear. */
static void test_ties(void **state) {
    kiln__gemm_isa list[2];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++)
        for (int out = KILN__GEMM_U8S8_U8; out <= KILN__GEMM_U8S8_S8; out++)
            for (int bias = 0; bias < 2; bias++) {
                qcase t = plain(20, 50, 1, list[ii]); /* K 1: small accs, many odd */
                t.out = (kiln__gemm_u8s8_out)out;
                t.ties = 1;
                t.bias = bias;
                t.a_zero = 128;
                check_case(&t);
            }
}

/* Larger products: several M and N blocks (the blocking follows K). */
static void test_large(void **state) {
    kiln__gemm_isa list[2];
    int ni = isas(list);
    static const int64_t big[][3] = {{300, 700, 1031}, {1100, 90, 4096}, {40, 2500, 130}};
    for (int ii = 0; ii < ni; ii++)
        for (int s = 0; s < 3; s++) {
            qcase t = plain(big[s][0], big[s][1], big[s][2], list[ii]);
            t.out = (kiln__gemm_u8s8_out)(s + ii) % KILN__GEMM_U8S8_OUT_COUNT;
            t.bzero = s & 1;
            t.a_zero = 77;
            t.bias = t.out != KILN__GEMM_U8S8_S32;
            t.nth = 2;
            t.use_pool = 1;
            check_case(&t);
        }
}

/* The extremes: every A 255, every B -128, zero points 0, K at the bound
 * where the exact sum still fits in int32. */
static void test_extremes(void **state) {
    kiln__gemm_isa list[2];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++) {
        const int64_t m = 3, n = 35, k = 33025;
        uint8_t *a = malloc((size_t)(m * k));
        int8_t *b = malloc((size_t)(k * n));
        int32_t *c = malloc((size_t)(m * n) * sizeof(int32_t));
        assert_true(a && b && c);
        memset(a, 255, (size_t)(m * k));
        memset(b, -128, (size_t)(k * n));
        b[5 * n + 3] = 127;
        size_t pb = kiln__gemm_u8s8_packed_b_bytes(k, n);
        void *packed = malloc(pb);
        assert_non_null(packed);
        assert_int_equal(kiln__gemm_u8s8_pack_b(0, k, n, b, n, NULL, packed, pb), KILN_OK);
        kiln__gemm_u8s8_args g = {.m = m, .n = n, .k = k, .a = a, .lda = k, .b = packed,
                                  .c = c, .ldc = n, .isa = list[ii]};
        size_t sb = kiln__gemm_u8s8_scratch_bytes(&g, 1);
        void *scratch = malloc(sb);
        assert_non_null(scratch);
        assert_int_equal(kiln__gemm_u8s8_run(NULL, &g, scratch), KILN_OK);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                assert_int_equal(c[i * n + j], j == 3 ? 255 * (-128 * (k - 1) + 127)
                                                      : 255 * -128 * k);
        free(scratch);
        free(packed);
        free(a);
        free(b);
        free(c);
    }
}

static void test_threads(void **state) {
    kiln__gemm_isa list[2];
    int ni = isas(list);
    static const int64_t ts[][3] = {{1, 1, 5}, {5, 3, 7}, {14, 32, 10}, {100, 40, 70},
                                    {30, 700, 33}, {257, 129, 65}};
    for (int ii = 0; ii < ni; ii++)
        for (int nth = 1; nth <= 3; nth++)
            for (int s = 0; s < 6; s++)
                for (int pool = 0; pool < 2; pool++) {
                    qcase t = plain(ts[s][0], ts[s][1], ts[s][2], list[ii]);
                    t.nth = nth;
                    t.use_pool = pool;
                    t.out = (kiln__gemm_u8s8_out)((s + pool) % KILN__GEMM_U8S8_OUT_COUNT);
                    t.bzero = 1;
                    t.a_zero = 9;
                    t.bias = t.out != KILN__GEMM_U8S8_S32;
                    t.relu = pool;
                    check_case(&t);
                }
}

/* A NaN bias poisons its column: NaN in f32 (ReLU keeps it), the lowest
 * value in u8/s8; an infinite one saturates. */
static void test_nan_bias(void **state) {
    kiln__gemm_isa list[2];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++)
        for (int out = KILN__GEMM_U8S8_F32; out < KILN__GEMM_U8S8_OUT_COUNT; out++) {
            qcase t = plain(5, 40, 20, list[ii]);
            t.out = (kiln__gemm_u8s8_out)out;
            t.bias = 1;
            t.relu = 1;
            qops o;
            make_ops(&t, &o);
            o.bias[7] = NAN;
            o.bias[33] = INFINITY;
            assert_int_equal(run_case(&t, &o), KILN_OK);
            for (int64_t i = 0; i < t.m; i++) {
                if (out == KILN__GEMM_U8S8_F32) {
                    const float *c = (const float *)o.c + i * o.ldc;
                    assert_true(isnan(c[7]));
                    assert_true(isinf(c[33]) && c[33] > 0);
                } else {
                    const unsigned char *c = o.c + i * o.ldc;
                    assert_int_equal(c[7], out == KILN__GEMM_U8S8_U8 ? 0 : 0x80);
                    assert_int_equal(c[33], out == KILN__GEMM_U8S8_U8 ? 255 : 127);
                }
            }
            free_ops(&o);
        }
}

static void test_bad_args(void **state) {
    qcase t = plain(8, 9, 10, KILN__GEMM_ISA_AUTO);
    t.out = KILN__GEMM_U8S8_U8;
    qops o;
    make_ops(&t, &o);
    size_t pb = kiln__gemm_u8s8_packed_b_bytes(t.k, t.n);
    o.packed = malloc(pb);
    assert_non_null(o.packed);
    assert_int_equal(kiln__gemm_u8s8_pack_b(0, t.k, t.n, o.b, o.ldb, NULL, o.packed, pb - 1),
                     KILN_E_INVAL);
    assert_int_equal(kiln__gemm_u8s8_pack_b(0, t.k, t.n, o.b, 3, NULL, o.packed, pb),
                     KILN_E_INVAL);
    assert_int_equal(kiln__gemm_u8s8_packed_b_bytes(-1, 4), 0);
    assert_int_equal(kiln__gemm_u8s8_pack_b(0, t.k, t.n, o.b, o.ldb, NULL, o.packed, pb), KILN_OK);
    unsigned char *before = malloc(o.c_bytes);
    assert_non_null(before);
    memcpy(before, o.c, o.c_bytes);
    char scratch[8192];
    kiln__gemm_u8s8_args g = args_of(&t, &o);
    g.scratch = scratch;
    assert_true(kiln__gemm_u8s8_scratch_bytes(&g, 1) <= sizeof scratch);
    kiln__gemm_u8s8_args bad = g;
    bad.lda = 9;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.k = 11; /* packed for K 10 */
    bad.lda = 11;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.b = o.b; /* not a packed buffer */
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.y_zero = 256;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.y_scale = 0.0f;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.b_scale = NULL;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.out = KILN__GEMM_U8S8_S32;
    bad.bias = o.bias;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.out = (kiln__gemm_u8s8_out)9;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.isa = KILN__GEMM_ISA_AVX2;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_UNSUPPORTED);
    bad = g;
    bad.scratch = NULL;
    assert_int_equal(kiln__gemm_u8s8(&bad, 0, 1), KILN_E_INVAL);
    assert_int_equal(kiln__gemm_u8s8(&g, 1, 1), KILN_E_INVAL);
    assert_int_equal(kiln__gemm_u8s8_run(NULL, &g, NULL), KILN_E_INVAL);
    assert_memory_equal(o.c, before, o.c_bytes);
    assert_true(strlen(kiln_last_error()) > 0);
    free(before);
    free_ops(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch), cmocka_unit_test(test_shapes_outputs),
        cmocka_unit_test(test_epilogues), cmocka_unit_test(test_ties),
        cmocka_unit_test(test_large),    cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_threads),  cmocka_unit_test(test_nan_bias),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
