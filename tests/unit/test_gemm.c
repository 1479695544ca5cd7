/* tests/unit/test_gemm.c: the f32 GEMM kernel (src/cpu/kernels/gemm.h)
 * against a plain triple loop accumulating in double, on fresh random inputs:
 * shapes around and between the tile sizes, every transpose combination,
 * alpha/beta, every epilogue, prepacked B, prepacked A (alone and with
 * prepacked B), each ISA path, 1..4 threads; and
 * the bf16 compute type (where the CPU has AVX512_BF16) against the same
 * double loop over the bf16-rounded inputs (tight) and over the f32 inputs
 * (bf16 tolerance), with the same epilogues, edges, prepacking and threads.
 * Checks the normalized error ||out - ref|| / ||ref|| < 1e-5, that nothing
 * outside C's (M,N) elements is written (row padding and guard floats after C),
 * NaN/Inf parity, and that bad arguments fail without touching C. */
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
#include "cpu/kernels/gemm.h"

#define GUARD 64 /* floats after C checked untouched */
static const uint32_t SENTINEL = 0x7fc0dead; /* a NaN nobody computes */

/* ---- random numbers --------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float rnd(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}
static float *rnd_buf(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd();
    return p;
}

/* ---- the case and its reference -------------------------------------------- */

typedef struct gcase {
    int64_t m, n, k;
    int ta, tb;
    float alpha, beta;
    kiln__gemm_bias bias;
    int residual;
    kiln__gemm_act act;
    int prepack;   /* B packed once (kiln__gemm_pack_b_ex) */
    int prepack_a; /* A packed once (kiln__gemm_pack_a_ex) */
    kiln__gemm_isa isa;
    int nth;      /* threads */
    int use_pool; /* through kiln__sgemm_run, else kiln__sgemm per ith in turn */
    int pad;      /* extra floats per row in every leading dimension */
    kiln__gemm_compute compute;
} gcase;

static double ref_act(double x, kiln__gemm_act act) {
    switch (act) {
    case KILN__GEMM_ACT_RELU: return x < 0 ? 0 : x;
    case KILN__GEMM_ACT_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case KILN__GEMM_ACT_GELU_TANH:
        return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case KILN__GEMM_ACT_SILU: return x / (1 + exp(-x));
    case KILN__GEMM_ACT_CLIP: return x < -0.5 ? -0.5 : (x > 0.7 ? 0.7 : x);
    default: return x;
    }
}

typedef struct operands {
    float *a, *b, *c, *c0, *bias, *res, *packed, *packed_a;
    int64_t lda, ldb, ldc, ldr, c_floats;
} operands;

static void make_operands(const gcase *t, operands *o) {
    memset(o, 0, sizeof *o);
    o->lda = (t->ta ? t->m : t->k) + t->pad;
    o->ldb = (t->tb ? t->k : t->n) + t->pad;
    o->ldc = t->n + t->pad;
    o->ldr = t->n + 2 * t->pad + 1;
    o->a = rnd_buf((t->ta ? t->k : t->m) * o->lda);
    o->b = rnd_buf((t->tb ? t->n : t->k) * o->ldb);
    o->c_floats = t->m * o->ldc + GUARD;
    o->c0 = rnd_buf(o->c_floats);
    o->c = malloc((size_t)o->c_floats * sizeof(float));
    assert_non_null(o->c);
    o->bias = rnd_buf(t->m > t->n ? t->m : t->n);
    o->res = rnd_buf(t->m * o->ldr);
}

static void free_operands(operands *o) {
    free(o->a);
    free(o->b);
    free(o->c);
    free(o->c0);
    free(o->bias);
    free(o->res);
    free(o->packed);
    free(o->packed_a);
}

/* C as the kernel receives it: c0's values in the (M,N) elements (NaN when
 * beta == 0, which must not be read) and the sentinel everywhere else. */
static void prime_c(const gcase *t, operands *o) {
    for (int64_t x = 0; x < o->c_floats; x++) memcpy(&o->c[x], &SENTINEL, sizeof(float));
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = 0; j < t->n; j++)
            o->c[i * o->ldc + j] = t->beta == 0.0f ? NAN : o->c0[i * o->ldc + j];
}

/* x as the bf16 kernel sees it: rounded to nearest even, denormals zero. */
static double bf16_round(float x) {
    if (fabsf(x) < 1.17549435e-38f) return 0.0;
    return kiln_bf16_to_f32(kiln_f32_to_bf16(x));
}

/* ref (M,N) in double: act(alpha * op(A) op(B) + beta * C0 + bias + R), with
 * A and B rounded to bf16 first when `rounded`. */
static double *reference_ex(const gcase *t, const operands *o, int rounded) {
    double *ref = malloc((size_t)(t->m * t->n > 0 ? t->m * t->n : 1) * sizeof(double));
    assert_non_null(ref);
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = 0; j < t->n; j++) {
            double s = 0;
            for (int64_t p = 0; p < t->k; p++) {
                float af = t->ta ? o->a[p * o->lda + i] : o->a[i * o->lda + p];
                float bf = t->tb ? o->b[j * o->ldb + p] : o->b[p * o->ldb + j];
                s += rounded ? bf16_round(af) * bf16_round(bf) : (double)af * bf;
            }
            double v = (double)t->alpha * s;
            if (t->beta != 0.0f) v += (double)t->beta * o->c0[i * o->ldc + j];
            if (t->bias == KILN__GEMM_BIAS_COL) v += o->bias[j];
            if (t->bias == KILN__GEMM_BIAS_ROW) v += o->bias[i];
            if (t->residual) v += o->res[i * o->ldr + j];
            ref[i * t->n + j] = ref_act(v, t->act);
        }
    return ref;
}

/* The reference of the arithmetic t computes in. */
static double *reference(const gcase *t, const operands *o) {
    return reference_ex(t, o, t->compute == KILN__GEMM_BF16);
}

static kiln__gemm_args args_of(const gcase *t, const operands *o) {
    kiln__gemm_args g = {
        .m = t->m, .n = t->n, .k = t->k, .trans_a = t->ta, .trans_b = t->tb,
        .alpha = t->alpha, .beta = t->beta, .a = o->a, .lda = o->lda, .b = o->b,
        .ldb = o->ldb, .c = o->c, .ldc = o->ldc, .bias_kind = t->bias, .bias = o->bias,
        .residual = t->residual ? o->res : NULL, .ldr = o->ldr, .act = t->act,
        .act_min = -0.5f, .act_max = 0.7f, .isa = t->isa, .compute = t->compute,
    };
    if (t->prepack) {
        g.b = o->packed;
        g.b_packed = 1;
    }
    if (t->prepack_a) {
        g.a = o->packed_a;
        g.a_packed = 1;
        g.lda = 0; /* ignored */
    }
    return g;
}

/* Runs the kernel on o->c as case t says. */
static kiln_status run_kernel(const gcase *t, operands *o) {
    if (t->prepack) {
        size_t bytes = t->compute == KILN__GEMM_F32
                           ? kiln__sgemm_packed_b_bytes(t->isa, t->k, t->n)
                           : kiln__gemm_packed_b_bytes_ex(t->isa, t->compute, t->k, t->n);
        assert_true(bytes > 0);
        free(o->packed);
        o->packed = malloc(bytes);
        assert_non_null(o->packed);
        kiln_status st = t->compute == KILN__GEMM_F32
                             ? kiln__sgemm_pack_b(t->isa, t->tb, t->k, t->n, o->b, o->ldb,
                                                  o->packed, bytes)
                             : kiln__gemm_pack_b_ex(t->isa, t->compute, t->tb, t->k, t->n, o->b,
                                                    o->ldb, o->packed, bytes);
        if (st != KILN_OK) return st;
    }
    if (t->prepack_a) {
        size_t bytes = kiln__gemm_packed_a_bytes_ex(t->isa, t->compute, t->m, t->k);
        assert_true(bytes > 0);
        free(o->packed_a);
        o->packed_a = malloc(bytes);
        assert_non_null(o->packed_a);
        kiln_status st = kiln__gemm_pack_a_ex(t->isa, t->compute, t->ta, t->m, t->k, o->a, o->lda,
                                              o->packed_a, bytes);
        if (st != KILN_OK) return st;
    }
    kiln__gemm_args g = args_of(t, o);
    size_t sbytes = kiln__sgemm_scratch_bytes(&g, t->nth);
    void *scratch = malloc(sbytes ? sbytes : 1);
    assert_non_null(scratch);
    kiln_status st = KILN_OK;
    if (t->use_pool) {
        kiln__pool *pool;
        assert_int_equal(kiln__pool_create(t->nth, &pool), KILN_OK);
        st = kiln__sgemm_run(pool, &g, scratch);
        kiln__pool_free(pool);
    } else {
        g.scratch = scratch;
        for (int ith = 0; ith < t->nth && st == KILN_OK; ith++) st = kiln__sgemm(&g, ith, t->nth);
    }
    free(scratch);
    return st;
}

static void describe(const gcase *t, char *buf, size_t n) {
    snprintf(buf, n,
             "M=%lld N=%lld K=%lld ta=%d tb=%d alpha=%g beta=%g bias=%d res=%d act=%d "
             "prepack=%d prepack_a=%d isa=%s nth=%d pool=%d pad=%d compute=%s",
             (long long)t->m, (long long)t->n, (long long)t->k, t->ta, t->tb, t->alpha,
             t->beta, t->bias, t->residual, t->act, t->prepack, t->prepack_a,
             kiln__gemm_isa_name(t->isa),
             t->nth, t->use_pool, t->pad, kiln__gemm_compute_name(t->compute));
}

/* Nothing but C's (M,N) elements changed. */
static void check_untouched(const gcase *t, const operands *o, const char *what) {
    for (int64_t x = 0; x < o->c_floats; x++) {
        int64_t i = o->ldc ? x / o->ldc : t->m, j = o->ldc ? x % o->ldc : 0;
        if (i < t->m && j < t->n) continue;
        if (memcmp(&o->c[x], &SENTINEL, sizeof(float)) != 0)
            fail_msg("%s: float %lld outside C (row %lld col %lld) was written", what,
                     (long long)x, (long long)i, (long long)j);
    }
}

/* ||C - ref|| / ||ref|| over C's (M,N) elements. */
static double normalized_error(const gcase *t, const operands *o, const double *ref) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < t->m; i++)
        for (int64_t j = 0; j < t->n; j++) {
            double r = ref[i * t->n + j], d = o->c[i * o->ldc + j] - r;
            num += d * d;
            den += r * r;
        }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Runs case t and checks it against the reference. */
static void check_case(const gcase *t) {
    char what[256];
    describe(t, what, sizeof what);
    operands o;
    make_operands(t, &o);
    prime_c(t, &o);
    double *ref = reference(t, &o);
    kiln_status st = run_kernel(t, &o);
    if (st != KILN_OK) fail_msg("%s: status %d (%s)", what, st, kiln_last_error());
    double err = normalized_error(t, &o, ref);
    if (!(err < 1e-5)) fail_msg("%s: normalized error %g", what, err);
    /* and against the f32 product, where enough elements make the norm a
     * statistic (one element of a cancelling sum can lose more) */
    if (t->compute == KILN__GEMM_BF16 && t->m * t->n >= 16) {
        double *ref32 = reference_ex(t, &o, 0);
        double err32 = normalized_error(t, &o, ref32);
        if (!(err32 < 1e-2)) fail_msg("%s: normalized error vs f32 %g", what, err32);
        free(ref32);
    }
    check_untouched(t, &o, what);
    free(ref);
    free_operands(&o);
}

/* ---- the ISAs this CPU runs -------------------------------------------------- */

static int isas(kiln__gemm_isa *out) {
    int n = 0;
    for (int i = KILN__GEMM_ISA_GENERIC; i < KILN__GEMM_ISA_COUNT; i++)
        if (kiln__gemm_isa_supported((kiln__gemm_isa)i)) out[n++] = (kiln__gemm_isa)i;
    return n;
}

static gcase plain(int64_t m, int64_t n, int64_t k, kiln__gemm_isa isa) {
    gcase t = {.m = m, .n = n, .k = k, .alpha = 1.0f, .beta = 0.0f, .isa = isa, .nth = 1};
    return t;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_isa_dispatch(void **state) {
    assert_true(kiln__gemm_isa_supported(KILN__GEMM_ISA_AUTO));
    assert_true(kiln__gemm_isa_supported(KILN__GEMM_ISA_GENERIC));
    assert_false(kiln__gemm_isa_supported((kiln__gemm_isa)99));
    kiln__gemm_isa best = kiln__gemm_isa_best();
    assert_true(kiln__gemm_isa_supported(best));
    assert_int_not_equal(best, KILN__GEMM_ISA_AUTO);
    print_message("gemm: best isa on this CPU: %s\n", kiln__gemm_isa_name(best));
}

/* Shapes around the tile sizes (4x16, 6x16, 14x32) and blocks (KC 256 for
 * generic and AVX2, 384 for AVX-512, 512 for bf16). */
static const int64_t shapes[][3] = {
    {1, 1, 1},    {2, 3, 5},     {7, 13, 11},  {4, 16, 8},    {6, 16, 9},    {14, 32, 256},
    {15, 33, 257}, {13, 31, 255}, {29, 67, 17}, {1, 100, 37},  {100, 1, 37},  {64, 64, 0},
    {3, 17, 1},   {28, 64, 513}, {97, 131, 301}, {31, 7, 600}, {113, 520, 40}, {1, 1, 1000},
    {15, 33, 385}, {29, 800, 383},
};

static void test_shapes_transposes(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int ii = 0; ii < ni; ii++)
            for (int tr = 0; tr < 4; tr++) {
                gcase t = plain(shapes[s][0], shapes[s][1], shapes[s][2], list[ii]);
                t.ta = tr & 1;
                t.tb = tr >> 1;
                t.pad = (s + tr) % 3;
                check_case(&t);
            }
}

static void test_empty(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++) {
        gcase t = plain(0, 5, 3, list[ii]);
        check_case(&t);
        t = plain(5, 0, 3, list[ii]);
        check_case(&t);
        t = plain(0, 0, 0, list[ii]);
        check_case(&t);
        /* K == 0: C = act(beta C + bias + R) */
        t = plain(9, 40, 0, list[ii]);
        t.beta = 0.5f;
        t.bias = KILN__GEMM_BIAS_COL;
        t.residual = 1;
        t.act = KILN__GEMM_ACT_SILU;
        check_case(&t);
    }
}

static void test_large(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++) {
        gcase t = plain(517, 1031, 400, list[ii]); /* two K blocks everywhere */
        t.nth = 2;
        t.use_pool = 1;
        t.beta = 1.0f;
        t.bias = KILN__GEMM_BIAS_COL;
        t.act = KILN__GEMM_ACT_GELU_ERF;
        t.ta = ii & 1;
        t.tb = (ii >> 1) & 1;
        check_case(&t);
    }
}

static void test_alpha_beta(void **state) {
    static const float alphas[] = {1.0f, 0.5f, -2.0f, 0.0f};
    static const float betas[] = {0.0f, 1.0f, 0.75f, -1.5f};
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++)
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) {
                gcase t = plain(37, 70, 300, list[ii]);
                t.alpha = alphas[a];
                t.beta = betas[b];
                t.ta = a & 1;
                t.tb = b & 1;
                t.pad = 1;
                if (alphas[a] == 0.0f && betas[b] == 0.0f) t.bias = KILN__GEMM_BIAS_ROW;
                check_case(&t);
            }
}

static void test_epilogues(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++)
        for (int act = 0; act < KILN__GEMM_ACT_COUNT; act++)
            for (int bias = 0; bias < 3; bias++)
                for (int res = 0; res < 2; res++) {
                    /* K spans two blocks: the epilogue must run once, at the end */
                    gcase t = plain(23, 45, 400 + act, list[ii]);
                    t.act = (kiln__gemm_act)act;
                    t.bias = (kiln__gemm_bias)bias;
                    t.residual = res;
                    t.beta = res ? 0.5f : 0.0f;
                    t.alpha = 0.25f; /* values around the activations' bends */
                    t.pad = bias;
                    check_case(&t);
                }
}

static void test_prepacked_b(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++)
        for (int tb = 0; tb < 2; tb++) {
            static const int64_t ps[][3] = {{1, 1, 1}, {15, 33, 257}, {50, 100, 600}, {3, 530, 9}};
            for (int s = 0; s < 4; s++) {
                gcase t = plain(ps[s][0], ps[s][1], ps[s][2], list[ii]);
                t.tb = tb;
                t.prepack = 1;
                t.bias = KILN__GEMM_BIAS_COL;
                t.act = KILN__GEMM_ACT_RELU;
                t.nth = 1 + s % 3;
                check_case(&t);
            }
        }
    /* AUTO packs for the best isa, and runs with it */
    gcase t = plain(40, 70, 90, KILN__GEMM_ISA_AUTO);
    t.prepack = 1;
    check_case(&t);
}

static void test_threads(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    static const int64_t ts[][3] = {{1, 1, 5}, {5, 3, 7}, {14, 32, 10}, {100, 40, 70},
                                    {30, 700, 33}, {257, 129, 65}};
    for (int ii = 0; ii < ni; ii++)
        for (int nth = 1; nth <= 4; nth++)
            for (int s = 0; s < 6; s++)
                for (int pool = 0; pool < 2; pool++) {
                    gcase t = plain(ts[s][0], ts[s][1], ts[s][2], list[ii]);
                    t.nth = nth;
                    t.use_pool = pool;
                    t.beta = 0.5f;
                    t.residual = 1;
                    t.bias = KILN__GEMM_BIAS_ROW;
                    t.ta = s & 1;
                    check_case(&t);
                }
}

/* NaN in A row i0 poisons row i0; Inf in B column j1 gives +-Inf in column
 * j1; Inf in C with beta != 0 stays Inf: exactly where the reference says. */
static void nan_inf_case(kiln__gemm_isa isa, kiln__gemm_act act, kiln__gemm_compute compute,
                         int prepack) { /* prepack: 1 B, 2 A, 3 both */
    gcase t = plain(20, 40, 500, isa);
    t.beta = 1.0f;
    t.act = act;
    t.compute = compute;
    t.prepack = prepack & 1;
    t.prepack_a = prepack >> 1;
    char what[256];
    describe(&t, what, sizeof what);
    operands o;
    make_operands(&t, &o);
    o.a[3 * o.lda + 100] = NAN;            /* row 3 */
    o.b[420 * o.ldb + 17] = INFINITY;      /* column 17, second K block */
    o.c0[11 * o.ldc + 33] = -INFINITY;     /* one element */
    prime_c(&t, &o);
    double *ref = reference(&t, &o);
    assert_int_equal(run_kernel(&t, &o), KILN_OK);
    int nonfinite = 0;
    for (int64_t i = 0; i < t.m; i++)
        for (int64_t j = 0; j < t.n; j++) {
            double r = ref[i * t.n + j];
            float v = o.c[i * o.ldc + j];
            if (isnan(r) != isnan(v) || (isinf(r) && (double)v != r))
                fail_msg("%s: (%lld,%lld) = %g, reference %g", what, (long long)i,
                         (long long)j, v, r);
            if (isfinite(r) && fabs(v - r) > 1e-4 * (1 + fabs(r)))
                fail_msg("%s: (%lld,%lld) = %g, reference %g", what, (long long)i,
                         (long long)j, v, r);
            nonfinite += !isfinite(r);
        }
    if (act == KILN__GEMM_ACT_NONE) assert_true(nonfinite >= t.n + t.m - 1);
    check_untouched(&t, &o, what);
    free(ref);
    free_operands(&o);
}

static void test_nan_inf(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    static const kiln__gemm_act acts[] = {KILN__GEMM_ACT_NONE, KILN__GEMM_ACT_RELU,
                                          KILN__GEMM_ACT_CLIP};
    for (int ii = 0; ii < ni; ii++)
        for (int ai = 0; ai < 3; ai++)
            for (int pp = 0; pp < 4; pp += 2) nan_inf_case(list[ii], acts[ai], KILN__GEMM_F32, pp);
}

/* ---- prepacked A ---------------------------------------------------------------- */

/* Shapes for prepacked A: edge rows (M not a multiple of any row tile), one
 * row, one column, K across blocks with odd tails, K == 0. */
static const int64_t pa_shapes[][3] = {{1, 1, 1},    {15, 33, 257}, {50, 100, 600}, {3, 530, 9},
                                       {29, 7, 513}, {100, 1, 37},  {1, 70, 1030}, {43, 64, 0},
                                       {257, 129, 65}};
#define N_PA_SHAPES ((int)(sizeof pa_shapes / sizeof pa_shapes[0]))

/* Prepacked A on every isa, both layouts of A, with and without prepacked B,
 * 1..3 threads (pool or not), every epilogue across the cases. */
static void prepacked_a_cases(kiln__gemm_isa isa, kiln__gemm_compute compute) {
    for (int s = 0; s < N_PA_SHAPES; s++)
        for (int v = 0; v < 4; v++) {
            gcase t = plain(pa_shapes[s][0], pa_shapes[s][1], pa_shapes[s][2], isa);
            t.compute = compute;
            t.prepack_a = 1;
            t.ta = v & 1;
            t.prepack = v >> 1;
            t.tb = (s + v) & 1;
            t.nth = 1 + (s + v) % 3;
            t.use_pool = (s >> 1) & 1;
            t.pad = s % 3;
            t.act = (kiln__gemm_act)((s + v) % KILN__GEMM_ACT_COUNT);
            t.bias = (kiln__gemm_bias)(v % 3);
            t.residual = (s + v) & 1;
            t.beta = t.residual ? 0.5f : 0.0f;
            t.alpha = v == 3 ? -0.5f : 1.0f;
            check_case(&t);
        }
    /* every epilogue over two K blocks, A and B both prepacked and not */
    for (int act = 0; act < KILN__GEMM_ACT_COUNT; act++)
        for (int bias = 0; bias < 3; bias++)
            for (int res = 0; res < 2; res++) {
                gcase t = plain(23, 45, 517 + act, isa);
                t.compute = compute;
                t.prepack_a = 1;
                t.prepack = res;
                t.act = (kiln__gemm_act)act;
                t.bias = (kiln__gemm_bias)bias;
                t.residual = res;
                t.beta = res ? 0.5f : 0.0f;
                t.alpha = 0.25f;
                t.nth = 1 + (act + bias) % 3;
                check_case(&t);
            }
    /* beyond one row block of the on-the-fly packing, split over threads */
    gcase t = plain(1031, 67, 300, isa);
    t.compute = compute;
    t.prepack_a = 1;
    t.nth = 3;
    t.use_pool = 1;
    t.bias = KILN__GEMM_BIAS_ROW;
    check_case(&t);
}

static void test_prepacked_a(void **state) {
    kiln__gemm_isa list[KILN__GEMM_ISA_COUNT];
    int ni = isas(list);
    for (int ii = 0; ii < ni; ii++) prepacked_a_cases(list[ii], KILN__GEMM_F32);
    /* AUTO packs for the best isa, and runs with it */
    gcase t = plain(40, 70, 90, KILN__GEMM_ISA_AUTO);
    t.prepack_a = 1;
    t.prepack = 1;
    check_case(&t);
}

/* A packed buffer that does not fit the product is refused, C untouched. */
static void test_prepacked_a_mismatch(void **state) {
    gcase t = plain(8, 9, 10, KILN__GEMM_ISA_AUTO);
    operands o;
    make_operands(&t, &o);
    prime_c(&t, &o);
    float *c_before = malloc((size_t)o.c_floats * sizeof(float));
    assert_non_null(c_before);
    memcpy(c_before, o.c, (size_t)o.c_floats * sizeof(float));
    _Alignas(64) char scratch[8192];
    kiln__gemm_args g = args_of(&t, &o);
    g.scratch = scratch;
    const kiln__gemm_isa best = kiln__gemm_isa_best();
    /* packing itself: bad lda, missing A, short buffer, bad isa */
    size_t bytes = kiln__gemm_packed_a_bytes_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 8, 10);
    assert_true(bytes > 0);
    assert_int_equal(kiln__gemm_packed_a_bytes_ex((kiln__gemm_isa)42, KILN__GEMM_F32, 8, 10), 0);
    assert_int_equal(kiln__gemm_packed_a_bytes_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, -1, 10), 0);
    void *pa = malloc(bytes), *pa9 = NULL, *pa11 = NULL;
    assert_non_null(pa);
    assert_int_equal(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 0, 8, 10, o.a, 9,
                                          pa, bytes),
                     KILN_E_INVAL);
    assert_int_equal(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 0, 8, 10, NULL,
                                          o.lda, pa, bytes),
                     KILN_E_INVAL);
    assert_int_equal(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 0, 8, 10, o.a,
                                          o.lda, pa, bytes - 4),
                     KILN_E_INVAL);
    assert_int_equal(kiln__gemm_pack_a_ex((kiln__gemm_isa)42, KILN__GEMM_F32, 0, 8, 10, o.a,
                                          o.lda, pa, bytes),
                     KILN_E_UNSUPPORTED);
    assert_int_equal(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 0, 8, 10, o.a,
                                          o.lda, pa, bytes),
                     KILN_OK);
    kiln__gemm_args bad = g;
    bad.a = pa;
    bad.a_packed = 1;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_OK); /* the good one runs */
    prime_c(&t, &o);
    /* packed for other M or K */
    size_t b9 = kiln__gemm_packed_a_bytes_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 9, 10);
    size_t b11 = kiln__gemm_packed_a_bytes_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 8, 11);
    pa9 = malloc(b9);
    pa11 = malloc(b11);
    assert_non_null(pa9);
    assert_non_null(pa11);
    float *a_big = rnd_buf(9 * 11);
    assert_int_equal(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 0, 9, 10, a_big,
                                          11, pa9, b9),
                     KILN_OK);
    assert_int_equal(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 0, 8, 11, a_big,
                                          11, pa11, b11),
                     KILN_OK);
    bad.a = pa9;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad.a = pa11;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    /* raw A flagged as packed; a packed A passed as packed B */
    bad.a = o.a;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    kiln__gemm_args swap = g;
    swap.b = pa;
    swap.b_packed = 1;
    assert_int_equal(kiln__sgemm(&swap, 0, 1), KILN_E_INVAL);
    /* a forced isa other than the buffer's; A and B packed for different isas */
    if (best != KILN__GEMM_ISA_GENERIC) {
        bad = g;
        bad.a = pa;
        bad.a_packed = 1;
        bad.isa = KILN__GEMM_ISA_GENERIC;
        assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
        size_t bb = kiln__sgemm_packed_b_bytes(KILN__GEMM_ISA_GENERIC, 10, 9);
        void *pb = malloc(bb);
        assert_non_null(pb);
        assert_int_equal(
            kiln__sgemm_pack_b(KILN__GEMM_ISA_GENERIC, 0, 10, 9, o.b, o.ldb, pb, bb), KILN_OK);
        bad.isa = KILN__GEMM_ISA_AUTO;
        bad.b = pb;
        bad.b_packed = 1;
        assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
        free(pb);
    }
    /* an f32 A in a bf16 product, a bf16 A in an f32 one */
    if (kiln__gemm_compute_supported(KILN__GEMM_BF16)) {
        bad = g;
        bad.a = pa;
        bad.a_packed = 1;
        bad.compute = KILN__GEMM_BF16;
        assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
        size_t b16 = kiln__gemm_packed_a_bytes_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_BF16, 8, 10);
        assert_true(b16 > 0 && b16 < bytes);
        void *p16 = malloc(b16);
        assert_non_null(p16);
        assert_int_equal(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_BF16, 0, 8, 10, o.a,
                                              o.lda, p16, b16),
                         KILN_OK);
        bad.a = p16;
        bad.compute = KILN__GEMM_F32;
        assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
        free(p16);
    }
    assert_memory_equal(o.c, c_before, (size_t)o.c_floats * sizeof(float));
    assert_true(strlen(kiln_last_error()) > 0);
    free(a_big);
    free(pa);
    free(pa9);
    free(pa11);
    free(c_before);
    free_operands(&o);
}

/* ---- bf16 compute -------------------------------------------------------------- */

/* Skips the test (with a message) where this CPU cannot compute in bf16. */
static int bf16_available(void) {
    if (kiln__gemm_compute_supported(KILN__GEMM_BF16)) return 1;
    print_message("gemm: no AVX512_BF16 on this CPU or build: bf16 cases skipped\n");
    return 0;
}

static gcase plain_bf16(int64_t m, int64_t n, int64_t k) {
    gcase t = plain(m, n, k, KILN__GEMM_ISA_AUTO);
    t.compute = KILN__GEMM_BF16;
    return t;
}

static void test_bf16_dispatch(void **state) {
    assert_true(kiln__gemm_compute_supported(KILN__GEMM_F32));
    assert_false(kiln__gemm_compute_supported((kiln__gemm_compute)9));
    print_message("gemm: bf16 compute %s\n",
                  kiln__gemm_compute_supported(KILN__GEMM_BF16) ? "available" : "unavailable");
    if (!kiln__gemm_compute_supported(KILN__GEMM_BF16)) { /* refused, never wrong */
        gcase t = plain_bf16(4, 4, 4);
        operands o;
        make_operands(&t, &o);
        prime_c(&t, &o);
        assert_int_equal(run_kernel(&t, &o), KILN_E_UNSUPPORTED);
        free_operands(&o);
        return;
    }
    /* only the AVX-512 path computes in bf16 */
    gcase t = plain_bf16(4, 4, 4);
    t.isa = KILN__GEMM_ISA_GENERIC;
    operands o;
    make_operands(&t, &o);
    prime_c(&t, &o);
    assert_int_equal(run_kernel(&t, &o), KILN_E_UNSUPPORTED);
    free_operands(&o);
}

static void test_bf16_shapes(void **state) {
    if (!bf16_available()) return;
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int tr = 0; tr < 8; tr++) {
            gcase t = plain_bf16(shapes[s][0], shapes[s][1], shapes[s][2]);
            t.ta = tr & 1;
            t.tb = (tr >> 1) & 1;
            t.prepack = tr >> 2;
            t.isa = (s & 1) ? KILN__GEMM_ISA_AVX512 : KILN__GEMM_ISA_AUTO;
            t.pad = (s + tr) % 3;
            check_case(&t);
        }
    /* K blocks of the bf16 kernel (512) with odd tails, beyond one MC block */
    static const int64_t big[][3] = {{1031, 67, 1025}, {29, 1100, 513}, {300, 300, 1}};
    for (int s = 0; s < 3; s++)
        for (int pp = 0; pp < 2; pp++) {
            gcase t = plain_bf16(big[s][0], big[s][1], big[s][2]);
            t.prepack = pp;
            t.ta = t.tb = s == 1;
            t.beta = 0.5f;
            check_case(&t);
        }
}

static void test_bf16_epilogues(void **state) {
    if (!bf16_available()) return;
    for (int act = 0; act < KILN__GEMM_ACT_COUNT; act++)
        for (int bias = 0; bias < 3; bias++)
            for (int res = 0; res < 2; res++) {
                gcase t = plain_bf16(23, 45, 515 + act); /* two K blocks */
                t.act = (kiln__gemm_act)act;
                t.bias = (kiln__gemm_bias)bias;
                t.residual = res;
                t.beta = res ? 0.5f : 0.0f;
                t.alpha = 0.25f;
                t.pad = bias;
                t.prepack = act & 1;
                check_case(&t);
            }
    static const float alphas[] = {1.0f, -2.0f, 0.0f};
    static const float betas[] = {0.0f, 1.0f, -1.5f};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            gcase t = plain_bf16(37, 70, 300);
            t.alpha = alphas[a];
            t.beta = betas[b];
            if (alphas[a] == 0.0f && betas[b] == 0.0f) t.bias = KILN__GEMM_BIAS_ROW;
            check_case(&t);
        }
}

static void test_bf16_threads(void **state) {
    if (!bf16_available()) return;
    static const int64_t ts[][3] = {{1, 1, 5}, {14, 32, 10}, {100, 40, 70}, {30, 700, 33},
                                    {257, 129, 65}};
    for (int nth = 1; nth <= 3; nth++)
        for (int s = 0; s < 5; s++)
            for (int pool = 0; pool < 2; pool++) {
                gcase t = plain_bf16(ts[s][0], ts[s][1], ts[s][2]);
                t.nth = nth;
                t.use_pool = pool;
                t.prepack = (s + nth) & 1;
                t.residual = 1;
                t.bias = KILN__GEMM_BIAS_COL;
                t.act = KILN__GEMM_ACT_GELU_TANH;
                t.ta = s & 1;
                t.tb = pool;
                check_case(&t);
            }
}

static void test_bf16_prepacked_a(void **state) {
    if (!bf16_available()) return;
    prepacked_a_cases(KILN__GEMM_ISA_AUTO, KILN__GEMM_BF16);
    /* K blocks of the bf16 kernel (512) with an odd tail */
    gcase t = plain_bf16(61, 90, 1025);
    t.prepack_a = 1;
    t.ta = 1;
    t.nth = 2;
    t.beta = 1.0f;
    check_case(&t);
}

static void test_bf16_nan_inf(void **state) {
    if (!bf16_available()) return;
    static const kiln__gemm_act acts[] = {KILN__GEMM_ACT_NONE, KILN__GEMM_ACT_RELU,
                                          KILN__GEMM_ACT_CLIP};
    for (int ai = 0; ai < 3; ai++)
        for (int pp = 0; pp < 4; pp++)
            nan_inf_case(KILN__GEMM_ISA_AUTO, acts[ai], KILN__GEMM_BF16, pp);
}

/* Packed B carries its compute type: an f32 buffer is refused by a bf16
 * product and the other way round. */
static void test_bf16_packed_mismatch(void **state) {
    if (!bf16_available()) return;
    gcase t = plain_bf16(8, 9, 10);
    operands o;
    make_operands(&t, &o);
    prime_c(&t, &o);
    size_t b16 = kiln__gemm_packed_b_bytes_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_BF16, 10, 9);
    size_t b32 = kiln__sgemm_packed_b_bytes(KILN__GEMM_ISA_AVX512, 10, 9);
    assert_true(b16 > 0 && b32 > b16);
    void *p16 = malloc(b16), *p32 = malloc(b32);
    assert_non_null(p16);
    assert_non_null(p32);
    assert_int_equal(kiln__gemm_pack_b_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_BF16, 0, 10, 9, o.b,
                                          o.ldb, p16, b16),
                     KILN_OK);
    assert_int_equal(kiln__sgemm_pack_b(KILN__GEMM_ISA_AVX512, 0, 10, 9, o.b, o.ldb, p32, b32),
                     KILN_OK);
    char scratch[4096];
    kiln__gemm_args g = args_of(&t, &o);
    g.scratch = scratch;
    g.b_packed = 1;
    g.b = p32; /* f32 buffer, bf16 product */
    assert_int_equal(kiln__sgemm(&g, 0, 1), KILN_E_INVAL);
    g.b = p16;
    g.compute = KILN__GEMM_F32; /* bf16 buffer, f32 product */
    assert_int_equal(kiln__sgemm(&g, 0, 1), KILN_E_INVAL);
    g.b = o.b;
    g.b_packed = 0;
    g.compute = (kiln__gemm_compute)5;
    assert_int_equal(kiln__sgemm(&g, 0, 1), KILN_E_UNSUPPORTED);
    free(p16);
    free(p32);
    free_operands(&o);
}

static void test_bad_args(void **state) {
    gcase t = plain(8, 9, 10, KILN__GEMM_ISA_AUTO);
    operands o;
    make_operands(&t, &o);
    prime_c(&t, &o);
    float *c_before = malloc((size_t)o.c_floats * sizeof(float));
    assert_non_null(c_before);
    memcpy(c_before, o.c, (size_t)o.c_floats * sizeof(float));
    char scratch[64];
    kiln__gemm_args g = args_of(&t, &o);
    g.scratch = scratch;

    kiln__gemm_args bad = g;
    bad.lda = 9; /* < K */
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.ldb = 3;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.ldc = 8;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.m = -1;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.a = NULL;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.bias_kind = KILN__GEMM_BIAS_COL;
    bad.bias = NULL;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.act = (kiln__gemm_act)77;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    bad = g;
    bad.isa = (kiln__gemm_isa)42;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_UNSUPPORTED);
    bad = g;
    bad.scratch = NULL;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    assert_int_equal(kiln__sgemm(&g, 2, 2), KILN_E_INVAL);
    assert_int_equal(kiln__sgemm_run(NULL, &bad, NULL), KILN_E_INVAL);
    /* B packed for another K, a short packing buffer, raw B flagged as packed */
    float *b11 = rnd_buf(11 * 9);
    size_t pbytes = kiln__sgemm_packed_b_bytes(KILN__GEMM_ISA_AUTO, 11, 9);
    void *packed = calloc(1, pbytes);
    assert_non_null(packed);
    assert_int_equal(kiln__sgemm_pack_b(KILN__GEMM_ISA_AUTO, 0, 11, 9, b11, 9, packed, pbytes - 4),
                     KILN_E_INVAL);
    assert_int_equal(kiln__sgemm_pack_b(KILN__GEMM_ISA_AUTO, 0, 11, 9, b11, 9, packed, pbytes),
                     KILN_OK);
    bad = g;
    bad.b = packed;
    bad.b_packed = 1;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    free(b11);
    bad = g;
    bad.b = o.b; /* raw B flagged as packed */
    bad.b_packed = 1;
    assert_int_equal(kiln__sgemm(&bad, 0, 1), KILN_E_INVAL);
    assert_memory_equal(o.c, c_before, (size_t)o.c_floats * sizeof(float));
    assert_true(strlen(kiln_last_error()) > 0);
    free(packed);
    free(c_before);
    free_operands(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_dispatch),  cmocka_unit_test(test_shapes_transposes),
        cmocka_unit_test(test_empty),         cmocka_unit_test(test_large),
        cmocka_unit_test(test_alpha_beta),    cmocka_unit_test(test_epilogues),
        cmocka_unit_test(test_prepacked_b),   cmocka_unit_test(test_threads),
        cmocka_unit_test(test_nan_inf),       cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_prepacked_a),   cmocka_unit_test(test_prepacked_a_mismatch),
        cmocka_unit_test(test_bf16_dispatch), cmocka_unit_test(test_bf16_shapes),
        cmocka_unit_test(test_bf16_epilogues), cmocka_unit_test(test_bf16_threads),
        cmocka_unit_test(test_bf16_prepacked_a), cmocka_unit_test(test_bf16_nan_inf),
        cmocka_unit_test(test_bf16_packed_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
