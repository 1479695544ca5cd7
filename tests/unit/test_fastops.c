/* tests/unit/test_fastops.c: the fast f32 elementwise, softmax, norm, pool
 * and attention algorithms (src/cpu/kernels/{eltwise,softmax,norm,pool,
 * attention}.c; train_ops.c's training kernels) against the reference
 * kernels, and the vector math of vmath.h against libm.
 *
 * Every algorithm runs through the one-node harness (algo_harness.h) on
 * fresh random inputs, forced, on each ISA table (generic C, and AVX2 and
 * AVX-512 when the CPU has them) at 1 and 2 threads: normalized error under 1e-5, NaN
 * and Inf at the reference's places. Sizes 1, 15, 16, 17, 1000 and one
 * spanning several thread units; broadcasts; pools with pads, strides,
 * ceil_mode, auto_pad and count_include_pad; attention with and without
 * masks, causal, GQA and several row blocks. Cases an algorithm must leave
 * to the reference are checked to run there (and still match). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "algo_harness.h"
#include "cpu/kernels/eltwise.h"
#include "cpu/kernels/vmath.h"

#define TOL 1e-5
#define F32 KILN_DTYPE_F32

static unsigned seed = 12345;

/* ---- helpers ------------------------------------------------------------------- */

static kiln_tensor *rnd(int ndim, const int64_t *dims, float lo, float hi) {
    return ah_random(F32, ndim, dims, &seed, lo, hi);
}

/* Puts NaN, +Inf and -Inf at a few spread positions of t (n >= 3). */
static void poison(kiln_tensor *t) {
    int64_t n = kiln__n(t);
    float *p = kiln_tensor_data(t);
    if (n < 3) return;
    p[n / 3] = NAN;
    p[n / 2] = INFINITY;
    p[n - 1] = -INFINITY;
}

static kiln_tensor *scalar_f32(float v) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(F32, 0, NULL, &t), KILN_OK);
    *(float *)kiln_tensor_data(t) = v;
    return t;
}

/* The tables to check: generic, and AVX2 and AVX-512 where the CPU has them. */
static int tables(const kiln__eltw_kernels **t) {
    int n = 0;
    t[n++] = &kiln__eltw_generic;
#if defined(__x86_64__) || defined(__i386__)
    if (kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX2)) t[n++] = &kiln__eltw_avx2;
    if (kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX512)) t[n++] = &kiln__eltw_avx512;
#endif
    return n;
}

/* Runs case c with algorithm algo forced, on every table, at 1 and 2 threads. */
static void run_all(ah_case *c, const char *algo, double tol) {
    const kiln__eltw_kernels *t[3];
    int nt = tables(t);
    for (int i = 0; i < nt; i++)
        for (int threads = 1; threads <= 2; threads++) {
            kiln__eltw_forced = t[i];
            ah_run_algo(c, algo, KILN_PRECISION_FP32, threads, tol);
        }
    kiln__eltw_forced = NULL;
}

/* Asserts that algo does not take case c (the reference runs it, or
 * another algorithm), and that the result still matches. */
static void refused(ah_case *c, const char *algo) {
    const char *ran = ah_run(c, KILN_PRECISION_FP32, 1, TOL);
    if (strcmp(ran, algo) == 0) fail_msg("algorithm %s took a case it must refuse", algo);
}

/* Runs case c as expected (expect_taken: algo takes it, on every table and
 * thread count; else algo must refuse it), then frees it. */
static void check_and_free(ah_case *c, const char *algo, int expect_taken) {
    if (expect_taken)
        run_all(c, algo, TOL);
    else
        refused(c, algo);
    ah_case_free(c);
}

/* ---- vmath against libm --------------------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
typedef enum { VM_EXP, VM_LOG, VM_TANH, VM_ERF, VM_SIGMOID, VM_GELU_ERF, VM_GELU_TANH } vm_fn;

static KILN__VM_AVX512 void vm_eval16(vm_fn f, const float *x, float *y) {
    __m512 v = _mm512_loadu_ps(x), r;
    switch (f) {
    case VM_EXP: r = kiln__vm_exp16(v); break;
    case VM_LOG: r = kiln__vm_log16(v); break;
    case VM_TANH: r = kiln__vm_tanh16(v); break;
    case VM_ERF: r = kiln__vm_erf16(v); break;
    case VM_SIGMOID: r = kiln__vm_sigmoid16(v); break;
    case VM_GELU_ERF: r = kiln__vm_gelu_erf16(v); break;
    default: r = kiln__vm_gelu_tanh16(v); break;
    }
    _mm512_storeu_ps(y, r);
}

/* The AVX2 forms (exp, tanh, sigmoid), 8 lanes twice. */
static KILN__VM_AVX2 void vm_eval8x2(vm_fn f, const float *x, float *y) {
    for (int h = 0; h < 16; h += 8) {
        __m256 v = _mm256_loadu_ps(x + h);
        _mm256_storeu_ps(y + h, f == VM_EXP ? kiln__vm_exp8(v)
                                : f == VM_TANH ? kiln__vm_tanh8(v) : kiln__vm_sigmoid8(v));
    }
}

static int vm_width = 16; /* which forms vm_eval runs: 16 (AVX-512) or 8 (AVX2) */

static void vm_eval(vm_fn f, const float *x, float *y) {
    if (vm_width == 16) vm_eval16(f, x, y);
    else vm_eval8x2(f, x, y);
}

static double vm_want(vm_fn f, double x) {
    switch (f) {
    case VM_EXP: return exp(x);
    case VM_LOG: return log(x);
    case VM_TANH: return tanh(x);
    case VM_ERF: return erf(x);
    case VM_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case VM_GELU_ERF: return x < 0 ? 0.5 * x * erfc(-x / sqrt(2.0)) : 0.5 * x * (1 + erf(x / sqrt(2.0)));
    default: /* 0.5 x (1 + tanh(y)) without the cancellation of 1 + tanh(y) */
        return x / (1 + exp(-2 * sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    }
}

/* Error of got in units of the spacing of floats at want (rounded to f32);
 * 0 for matching NaN / infinities, huge for mismatches. */
static double ulp_err(float got, double want) {
    if (isnan(want)) return isnan(got) ? 0 : 1e30;
    float wf = (float)want;
    if (isinf(wf)) /* beyond FLT_MAX: inf, or FLT_MAX when want is just past it */
        return (isinf(got) || fabsf(got) == FLT_MAX) && (got > 0) == (want > 0) ? 0 : 1e30;
    if (isnan(got) || isinf(got)) return 1e30;
    double a = fabs((double)wf), spacing = (double)nextafterf((float)a, INFINITY) - a;
    return fabs((double)got - want) / spacing;
}

/* Largest ulp error of f over a sweep of all f32 bit patterns (step 997,
 * both signs: normals, denormals, zeros, infinities, NaNs) plus the
 * special values; fails above max_ulp. */
static void vm_check(vm_fn f, double max_ulp, const char *name) {
    static const float specials[16] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1.0f, -1.0f,
                                       FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f, FLT_MAX, -FLT_MAX,
                                       88.72f, -103.9f, 0.625f};
    float x[16], y[16];
    double worst = 0, worst_x = 0;
    vm_eval(f, specials, y);
    for (int i = 0; i < 16; i++) {
        double e = ulp_err(y[i], vm_want(f, specials[i]));
        if (e > worst) worst = e, worst_x = specials[i];
    }
    int k = 0;
    for (uint64_t b = 0; b < (1ull << 32); b += 997) {
        uint32_t bits = (uint32_t)b;
        memcpy(&x[k], &bits, sizeof bits);
        if (++k < 16) continue;
        k = 0;
        vm_eval(f, x, y);
        for (int i = 0; i < 16; i++) {
            double e = ulp_err(y[i], vm_want(f, x[i]));
            if (e > worst) worst = e, worst_x = x[i];
        }
    }
    print_message("vmath%d %s: max error %.2f ulp (at %g)\n", vm_width, name, worst, worst_x);
    if (!(worst <= max_ulp)) fail_msg("vmath %s: %.3g ulp at x = %.9g", name, worst, worst_x);
}

/* The activations' relative error on [-30, 30], at most max_rel * (1 + x^2/8):
 * their exp(-c x^2)-like tails amplify the rounding of the f32 exponent
 * argument in proportion to it (all of them are below 1e-6 there). */
static void vm_check_rel(vm_fn f, double max_rel, const char *name) {
    float x[16], y[16];
    double worst = 0, worst_x = 0;
    for (int i = 0; i < 200000; i += 16) {
        for (int j = 0; j < 16; j++) x[j] = -30.0f + 60.0f * (float)(i + j) / 200000.0f;
        vm_eval(f, x, y);
        for (int j = 0; j < 16; j++) {
            double w = vm_want(f, x[j]), e = fabs(y[j] - w) / fmax(fabs(w), 1e-30);
            if (fabs(w) < 1e-37) e = fabs(y[j] - w) < 1e-37 ? 0 : 1; /* underflow to denormals */
            e /= 1 + x[j] * x[j] / 8.0;
            if (e > worst) worst = e, worst_x = x[j];
        }
    }
    float sp[16] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f}, ys[16];
    vm_eval(f, sp, ys);
    for (int j = 0; j < 5; j++) {
        double w = vm_want(f, sp[j]);
        if (isnan(w) != isnan(ys[j]) || (!isnan(w) && ys[j] != (float)w))
            fail_msg("vmath %s(%g) = %g, want %g", name, sp[j], ys[j], w);
    }
    print_message("vmath%d %s: max scaled relative error %.3g (at %g)\n", vm_width, name, worst, worst_x);
    if (!(worst <= max_rel)) fail_msg("vmath %s: relative error %.3g at x = %.9g", name, worst, worst_x);
}
#endif

static void test_vmath(void **state) {
#if defined(__x86_64__) || defined(__i386__)
    int ran = 0;
    if (kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX2)) {
        vm_width = 8;
        vm_check(VM_EXP, 2.0, "exp");
        vm_check(VM_TANH, 3.0, "tanh");
        vm_check_rel(VM_SIGMOID, 4e-7, "sigmoid");
        ran = 1;
    }
    if (!kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX512)) {
        if (!ran) skip();
        return;
    }
    vm_width = 16;
    vm_check(VM_EXP, 2.0, "exp");
    vm_check(VM_LOG, 2.0, "log");
    vm_check(VM_TANH, 3.0, "tanh");
    vm_check(VM_ERF, 3.0, "erf");
    vm_check_rel(VM_SIGMOID, 4e-7, "sigmoid");
    vm_check_rel(VM_GELU_ERF, 1.5e-6, "gelu_erf");
    vm_check_rel(VM_GELU_TANH, 1e-6, "gelu_tanh");
#else
    skip();
#endif
}

/* ---- unary ------------------------------------------------------------------------- */

static const int64_t sizes[] = {1, 15, 16, 17, 1000, 40000};
#define N_SIZES (int)(sizeof sizes / sizeof sizes[0])

typedef struct unary_case {
    const char *op, *algo;
    int opset;
    float lo, hi;
    const char *sattr, *sval; /* a string attribute, or NULL */
    const char *fattr1;       /* float attributes, or NULL */
    float f1;
    const char *fattr2;
    float f2;
} unary_case;

static void test_unary(void **state) {
    static const unary_case cases[] = {
        {"Relu", "relu_f32", 14, -3, 3},
        {"LeakyRelu", "leaky_relu_f32", 16, -3, 3, NULL, NULL, "alpha", 0.07f},
        {"Sigmoid", "sigmoid_f32", 13, -20, 20},
        {"Tanh", "tanh_f32", 13, -6, 6},
        {"Gelu", "gelu_f32", 20, -6, 6},
        {"Gelu", "gelu_f32", 20, -6, 6, "approximate", "tanh"},
        {"HardSigmoid", "hard_sigmoid_f32", 6, -6, 6, NULL, NULL, "alpha", 0.3f, "beta", 0.4f},
        {"HardSwish", "hard_swish_f32", 14, -6, 6},
        {"Clip", "clip_f32", 6, -3, 3, NULL, NULL, "min", -0.5f, "max", 1.5f},
        {"Clip", "clip_f32", 13, -3, 3}, /* no bounds */
        {"Exp", "exp_f32", 13, -20, 20},
        {"Erf", "erf_f32", 13, -4, 4},
        {"Sqrt", "sqrt_f32", 13, -1, 10}, /* negatives: NaN in both */
        {"Neg", "neg_f32", 13, -3, 3},
        {"Abs", "abs_f32", 13, -3, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unary_case *u = &cases[i];
        for (int s = 0; s < N_SIZES; s++) {
            for (int poisoned = 0; poisoned < 2; poisoned++) {
                ah_case c;
                ah_case_init(&c, u->op, "", u->opset, 1);
                kiln_tensor *x = rnd(1, &sizes[s], u->lo, u->hi);
                if (poisoned) poison(x);
                ah_input(&c, x, 0);
                if (u->sattr) ah_attr_string(&c, u->sattr, u->sval);
                if (u->fattr1) ah_attr_float(&c, u->fattr1, u->f1);
                if (u->fattr2) ah_attr_float(&c, u->fattr2, u->f2);
                run_all(&c, u->algo, TOL);
                ah_case_free(&c);
            }
        }
    }
}

/* Clip-11+: bounds as inputs, constant or computed, one or both, min > max. */
static void test_clip_inputs(void **state) {
    static const float bounds[][2] = {{-0.5f, 1.5f}, {0.7f, 0.2f}};
    for (int b = 0; b < 2; b++)
        for (int constant = 0; constant < 2; constant++)
            for (int which = 0; which < 3; which++) { /* min only, max only, both */
                int64_t n = 1000;
                ah_case c;
                ah_case_init(&c, "Clip", "", 13, 1);
                kiln_tensor *x = rnd(1, &n, -3, 3);
                poison(x);
                ah_input(&c, x, 0);
                ah_input(&c, which != 1 ? scalar_f32(bounds[b][0]) : NULL, constant);
                if (which != 0) ah_input(&c, scalar_f32(bounds[b][1]), constant);
                run_all(&c, "clip_f32", TOL);
                ah_case_free(&c);
            }
}

/* ---- binary ------------------------------------------------------------------------ */

typedef struct shape {
    int ndim;
    int64_t d[4];
} shape;

static void binary_case(const char *op, const char *algo, int opset, shape a, shape b, int poisoned,
                        int expect_taken) {
    ah_case c;
    ah_case_init(&c, op, "", opset, 1);
    kiln_tensor *ta = rnd(a.ndim, a.d, -2, 2), *tb = rnd(b.ndim, b.d, -2, 2);
    if (strcmp(op, "Div") == 0) { /* keep divisors away from 0 */
        float *p = kiln_tensor_data(tb);
        for (int64_t i = 0; i < kiln__n(tb); i++) p[i] = p[i] < 0 ? p[i] - 0.5f : p[i] + 0.5f;
    }
    if (poisoned) {
        poison(ta);
        poison(tb);
    }
    ah_input(&c, ta, 0);
    ah_input(&c, tb, 0);
    check_and_free(&c, algo, expect_taken);
}

static void test_binary(void **state) {
    static const struct {
        const char *op, *algo;
        int opset;
    } ops[] = {{"Add", "add_f32", 14}, {"Sub", "sub_f32", 14}, {"Mul", "mul_f32", 14},
               {"Div", "div_f32", 14}, {"Max", "max_f32", 13}, {"Min", "min_f32", 13}};
    static const struct {
        shape a, b;
    } taken[] = {
        {{1, {1}}, {1, {1}}},
        {{1, {17}}, {1, {17}}},
        {{1, {40000}}, {1, {40000}}},
        {{2, {3, 1000}}, {0, {0}}},             /* scalar */
        {{0, {0}}, {2, {3, 1000}}},             /* scalar first */
        {{3, {3, 5, 17}}, {1, {17}}},           /* row */
        {{1, {16}}, {2, {7, 16}}},              /* row first */
        {{4, {2, 16, 5, 5}}, {3, {16, 1, 1}}},  /* channel */
        {{3, {15, 1, 1}}, {4, {2, 15, 3, 7}}},  /* channel first */
        {{4, {2, 3, 4, 5}}, {4, {2, 3, 1, 1}}}, /* (N,C,1,1) */
        {{3, {4, 1000, 16}}, {2, {1000, 16}}},  /* several thread units */
        {{3, {2, 1, 17}}, {2, {1, 17}}},        /* size-1 axes in Y */
    };
    static const struct {
        shape a, b;
    } left[] = {
        {{2, {5, 1}}, {2, {1, 7}}},       /* outer product */
        {{3, {4, 5, 6}}, {3, {4, 1, 6}}}, /* two blocks */
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
            for (int p = 0; p < 2; p++)
                binary_case(ops[o].op, ops[o].algo, ops[o].opset, taken[i].a, taken[i].b, p, 1);
        for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
            binary_case(ops[o].op, ops[o].algo, ops[o].opset, left[i].a, left[i].b, 0, 0);
    }
}

/* Where(C, X, Y) on where_f32: C bool of Z's shape, X and Y each of it or
 * scalars (NaN and Inf pass through); other broadcasts refused. */
static void where_case(shape sc, shape sx, shape sy, int expect_taken) {
    ah_case c;
    ah_case_init(&c, "Where", "", 16, 1);
    kiln_tensor *x = rnd(sx.ndim, sx.d, -2, 2), *y = rnd(sy.ndim, sy.d, -2, 2);
    poison(x);
    ah_input(&c, ah_random(KILN_DTYPE_BOOL, sc.ndim, sc.d, &seed, 0, 2), 0);
    ah_input(&c, x, 0);
    ah_input(&c, y, 0);
    check_and_free(&c, "where_f32", expect_taken);
}

static void test_where(void **state) {
    (void)state;
    const shape full = {2, {3, 1000}}, scalar = {0, {0}}, row = {1, {1000}};
    where_case(full, full, full, 1);
    where_case(full, full, scalar, 1);
    where_case(full, scalar, full, 1);
    where_case(full, scalar, scalar, 1);
    where_case((shape){4, {2, 3, 5, 7}}, (shape){4, {2, 3, 5, 7}}, scalar, 1);
    where_case((shape){1, {1}}, scalar, (shape){1, {1}}, 1);
    where_case(row, full, full, 0); /* C broadcast */
    where_case(full, row, full, 0); /* X a row */
}

static void pow_case(float e, int constant, int expect_taken) {
    int64_t n = 1000;
    ah_case c;
    ah_case_init(&c, "Pow", "", 15, 1);
    kiln_tensor *x = rnd(1, &n, -3, 3);
    poison(x);
    ah_input(&c, x, 0);
    ah_input(&c, scalar_f32(e), constant);
    check_and_free(&c, "pow_f32", expect_taken);
}

static void test_pow(void **state) {
    pow_case(1.0f, 1, 1);
    pow_case(2.0f, 1, 1);
    pow_case(3.0f, 1, 1);
    pow_case(0.5f, 1, 0);
    pow_case(2.0f, 0, 0); /* exponent not known at plan time */
}

/* ---- softmax ---------------------------------------------------------------------- */

static void softmax_case(const char *op, int opset, int ndim, const int64_t *dims, int axis, int has_axis,
                         int poisoned, int expect_taken) {
    const char *algo = strcmp(op, "Softmax") == 0 ? "softmax_f32" : "log_softmax_f32";
    ah_case c;
    ah_case_init(&c, op, "", opset, 1);
    kiln_tensor *x = rnd(ndim, dims, -20, 20);
    if (poisoned) poison(x);
    ah_input(&c, x, 0);
    if (has_axis) ah_attr_int(&c, "axis", axis);
    check_and_free(&c, algo, expect_taken);
}

static void test_softmax(void **state) {
    static const char *ops[] = {"Softmax", "LogSoftmax"};
    for (int o = 0; o < 2; o++) {
        for (int s = 0; s < N_SIZES; s++) {
            int64_t d2[2] = {3, sizes[s]};
            for (int p = 0; p < 2; p++) softmax_case(ops[o], 13, 2, d2, -1, 0, p, 1);
        }
        int64_t d1[1] = {1}, d3[3] = {2, 3, 5};
        softmax_case(ops[o], 13, 1, d1, 0, 1, 0, 1);
        softmax_case(ops[o], 13, 3, d3, 2, 1, 1, 1);
        softmax_case(ops[o], 11, 3, d3, 1, 1, 1, 1); /* coerced to (2, 15) */
        softmax_case(ops[o], 11, 3, d3, 0, 0, 0, 1); /* default axis 1 */
        softmax_case(ops[o], 13, 3, d3, 1, 1, 0, 0); /* a middle axis: the reference's */
    }
    /* a row of -inf only, and a row of one +inf: NaN rows in both */
    for (int o = 0; o < 2; o++) {
        int64_t d[2] = {2, 17};
        ah_case c;
        ah_case_init(&c, ops[o], "", 13, 1);
        kiln_tensor *x = rnd(2, d, -1, 1);
        float *p = kiln_tensor_data(x);
        for (int j = 0; j < 17; j++) p[j] = -INFINITY;
        p[17 + 4] = INFINITY;
        ah_input(&c, x, 0);
        run_all(&c, o ? "log_softmax_f32" : "softmax_f32", TOL);
        ah_case_free(&c);
    }
}

/* ---- normalizations ----------------------------------------------------------------- */

static void layer_norm_case(const char *op, int ndim, const int64_t *dims, int axis, int bias, int n_out,
                            int poisoned, int params_constant) {
    int rms = strcmp(op, "RMSNormalization") == 0;
    ah_case c;
    ah_case_init(&c, op, "", rms ? 23 : 17, n_out);
    kiln_tensor *x = rnd(ndim, dims, -3, 3);
    if (poisoned) poison(x);
    int a = axis < 0 ? axis + ndim : axis;
    ah_input(&c, x, 0);
    ah_input(&c, rnd(ndim - a, dims + a, 0.5f, 1.5f), params_constant);
    if (bias) ah_input(&c, rnd(ndim - a, dims + a, -1, 1), params_constant);
    ah_attr_int(&c, "axis", axis);
    ah_attr_float(&c, "epsilon", 1e-4f);
    run_all(&c, rms ? "rms_norm_f32" : "layer_norm_f32", TOL);
    ah_case_free(&c);
}

static void test_layer_norm(void **state) {
    for (int s = 0; s < N_SIZES; s++) {
        int64_t d[2] = {4, sizes[s]};
        layer_norm_case("LayerNormalization", 2, d, -1, 1, 1, s == 4, 1);
        layer_norm_case("LayerNormalization", 2, d, -1, 0, 1, 0, 0);
        layer_norm_case("RMSNormalization", 2, d, -1, 0, 1, s == 4, 1);
    }
    int64_t d3[3] = {2, 3, 16};
    layer_norm_case("LayerNormalization", 3, d3, 1, 1, 3, 0, 1); /* Mean, InvStdDev too */
    layer_norm_case("LayerNormalization", 3, d3, -1, 1, 3, 1, 1);
    layer_norm_case("RMSNormalization", 3, d3, 1, 0, 1, 0, 1);
    /* scale broadcasting over part of the normalized axes: the reference's */
    ah_case c;
    ah_case_init(&c, "LayerNormalization", "", 17, 1);
    ah_input(&c, rnd(3, d3, -1, 1), 0);
    int64_t sd[2] = {1, 16};
    ah_input(&c, rnd(2, sd, 0.5f, 1.5f), 1);
    ah_attr_int(&c, "axis", 1);
    refused(&c, "layer_norm_f32");
    ah_case_free(&c);
}

/* poisoned: 1 NaN/Inf (poison), 2 a large mean (100) with each channel's first
 * value an outlier (1e4) */
static void batch_norm_case(int ndim, const int64_t *dims, int poisoned, int opset, int training) {
    ah_case c;
    ah_case_init(&c, "BatchNormalization", "", opset, training ? 3 : 1);
    kiln_tensor *x = poisoned == 2 ? rnd(ndim, dims, 97, 103) : rnd(ndim, dims, -3, 3);
    if (poisoned == 1) poison(x);
    const int64_t plane = kiln__n(x) / (dims[0] * dims[1]);
    for (int64_t ch = 0; poisoned == 2 && ch < dims[1]; ch++) ((float *)kiln_tensor_data(x))[ch * plane] = 1e4f;
    ah_input(&c, x, 0);
    int64_t C = dims[1];
    ah_input(&c, rnd(1, &C, 0.5f, 1.5f), 1);
    ah_input(&c, rnd(1, &C, -1, 1), 1);
    ah_input(&c, rnd(1, &C, -1, 1), 1);
    ah_input(&c, rnd(1, &C, 0.5f, 2), 1);
    ah_attr_float(&c, "epsilon", 1e-3f);
    if (training) {
        ah_attr_int(&c, "training_mode", 1);
        ah_attr_float(&c, "momentum", 0.8f);
        refused(&c, "batch_norm_f32");
        run_all(&c, "batch_norm_train_f32", TOL);
    } else {
        run_all(&c, "batch_norm_f32", TOL);
    }
    ah_case_free(&c);
}

static void test_batch_norm(void **state) {
    int64_t a[4] = {2, 16, 7, 7}, b[2] = {3, 5}, d[4] = {1, 17, 1, 1}, e[3] = {2, 3, 1000};
    batch_norm_case(4, a, 1, 15, 0);
    batch_norm_case(2, b, 0, 15, 0);
    batch_norm_case(4, d, 0, 9, 0);
    batch_norm_case(3, e, 1, 15, 0);
    batch_norm_case(4, a, 0, 15, 1);
    batch_norm_case(3, e, 0, 15, 1);
    batch_norm_case(2, b, 0, 15, 1);
    batch_norm_case(4, a, 2, 15, 1);
    batch_norm_case(3, e, 2, 15, 1);
}

/* kiln.BatchNormalizationGrad on batch_norm_grad_f32, training and inference
 * forms, every output and each alone, inputs with a large mean. */
static void test_batch_norm_grad(void **state) {
    (void)state;
    static const int64_t shapes[3][4] = {{4, 16, 7, 7}, {3, 5, 1, 1}, {2, 3, 1000, 1}};
    for (int k = 0; k < 3; k++)
        for (int training = 0; training < 2; training++)
            for (int outs = 0; outs < 4; outs++) {
                ah_case c;
                int64_t C = shapes[k][1];
                ah_case_init(&c, "BatchNormalizationGrad", "kiln", 1, 3);
                ah_input(&c, rnd(4, shapes[k], -1, 1), 0);
                ah_input(&c, rnd(4, shapes[k], 5, 7), 0); /* mean far from 0 */
                ah_input(&c, rnd(1, &C, 0.5f, 1.5f), 0);
                ah_input(&c, rnd(1, &C, 5, 7), 0);
                ah_input(&c, rnd(1, &C, 0.5f, 2), 0);
                ah_attr_float(&c, "epsilon", 1e-3f);
                ah_attr_int(&c, "training_mode", training);
                if (outs) { /* only output outs-1 */
                    c.g->outputs[0] = c.g->nodes[c.node].out[outs - 1];
                    for (int j = 0; j < 3; j++)
                        if (j != outs - 1) c.g->nodes[c.node].out[j] = -1;
                    c.g->n_outputs = c.n_out = 1;
                }
                run_all(&c, "batch_norm_grad_f32", TOL);
                ah_case_free(&c);
            }
}

/* kiln.LayerNormalizationGrad (layer_norm_grad_f32): the last axis and
 * several trailing ones, one row and more rows than threads, rows about the
 * vector blocks, each output alone and all three; X's mean far from 0. */
static void test_layer_norm_grad(void **state) {
    (void)state;
    static const struct { int ndim; int64_t d[3]; int axis; } cases[] = {
        {2, {6, 768}, -1}, {3, {2, 5, 17}, 1}, {2, {1, 40}, 1}, {3, {3, 4, 4100}, 2}, {2, {33, 16}, -1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        for (int outs = 0; outs < 4; outs++) {
            ah_case c;
            int64_t cols = 1;
            const int axis = cases[k].axis < 0 ? cases[k].ndim + cases[k].axis : cases[k].axis;
            for (int a = axis; a < cases[k].ndim; a++) cols *= cases[k].d[a];
            ah_case_init(&c, "LayerNormalizationGrad", "kiln", 1, 3);
            ah_input(&c, rnd(cases[k].ndim, cases[k].d, -1, 1), 0);
            ah_input(&c, rnd(cases[k].ndim, cases[k].d, 5, 7), 0);
            ah_input(&c, rnd(1, &cols, 0.5f, 1.5f), 0);
            ah_attr_int(&c, "axis", cases[k].axis);
            ah_attr_float(&c, "epsilon", 1e-3f);
            if (outs) { /* only output outs-1 */
                c.g->outputs[0] = c.g->nodes[c.node].out[outs - 1];
                for (int j = 0; j < 3; j++)
                    if (j != outs - 1) c.g->nodes[c.node].out[j] = -1;
                c.g->n_outputs = c.n_out = 1;
            }
            run_all(&c, "layer_norm_grad_f32", TOL);
            ah_case_free(&c);
        }
}

/* kiln.SoftmaxGrad / LogSoftmaxGrad: the last axis (rows about the vector
 * blocks and across thread units), flatten from a middle axis, NaN and Inf;
 * a middle axis without flatten (the positions after it summed together):
 * the class axis of (N, C, H, W), short and long axes, blocks across thread
 * units. */
static void softmax_grad_case(const char *op, int ndim, const int64_t *dims, int axis, int flatten,
                              int poisoned, int expect_taken) {
    ah_case c;
    ah_case_init(&c, op, "kiln", 1, 1);
    kiln_tensor *dy = rnd(ndim, dims, -2, 2), *y = rnd(ndim, dims, strcmp(op, "SoftmaxGrad") ? -6 : 0, 0.5f);
    if (poisoned) poison(dy), poison(y);
    ah_input(&c, dy, 0);
    ah_input(&c, y, 0);
    ah_attr_int(&c, "axis", axis);
    if (flatten) ah_attr_int(&c, "flatten", 1);
    check_and_free(&c, strcmp(op, "SoftmaxGrad") ? "log_softmax_grad_f32" : "softmax_grad_f32", expect_taken);
}

static void test_softmax_grad(void **state) {
    (void)state;
    static const char *const ops[2] = {"SoftmaxGrad", "LogSoftmaxGrad"};
    static const int64_t lens[5] = {1, 15, 17, 128, 1000};
    for (int o = 0; o < 2; o++) {
        for (int k = 0; k < 5; k++) {
            const int64_t d[2] = {k == 3 ? 300 : 5, lens[k]};
            softmax_grad_case(ops[o], 2, d, -1, 0, k == 2, 1);
        }
        const int64_t d3[3] = {4, 6, 7};
        softmax_grad_case(ops[o], 3, d3, 1, 1, 0, 1);
        softmax_grad_case(ops[o], 3, d3, 1, 0, 0, 1);
        softmax_grad_case(ops[o], 3, d3, 0, 0, 1, 1);
        const int64_t d4[4] = {3, 10, 9, 17}, wide[3] = {2, 300, 33}, many[3] = {200, 3, 70};
        softmax_grad_case(ops[o], 4, d4, 1, 0, 1, 1);
        softmax_grad_case(ops[o], 4, d4, -2, 0, 0, 1);
        softmax_grad_case(ops[o], 3, wide, 1, 0, 0, 1);
        softmax_grad_case(ops[o], 3, many, 1, 0, 0, 1);
    }
}

/* kiln.ReluGrad / SigmoidGrad / TanhGrad on their algorithms: sizes about the
 * vector blocks and across thread units, NaN and Inf in dY and in Y. */
static void test_activation_grad(void **state) {
    (void)state;
    static const char *const ops[3] = {"ReluGrad", "SigmoidGrad", "TanhGrad"};
    static const char *const algos[3] = {"relu_grad_f32", "sigmoid_grad_f32", "tanh_grad_f32"};
    static const float lo[3] = {-2, 0, -1}, hi[3] = {2, 1, 1}; /* Y's range */
    static const int64_t sizes[6] = {1, 15, 16, 17, 1000, 3 * KILN__ELTW_GRAIN + 5};
    for (int o = 0; o < 3; o++)
        for (int k = 0; k < 6; k++) {
            ah_case c;
            ah_case_init(&c, ops[o], "kiln", 1, 1);
            kiln_tensor *dy = rnd(1, &sizes[k], -3, 3), *y = rnd(1, &sizes[k], lo[o], hi[o]);
            if (k == 4) poison(dy), poison(y);
            ah_input(&c, dy, 0);
            ah_input(&c, y, 0);
            run_all(&c, algos[o], TOL);
            ah_case_free(&c);
        }
}

/* kiln.TrainDropout on its algorithm: the same mask and outputs as the
 * reference exactly (tolerance 0), for ratios 0 (all kept) to 0.9, sizes
 * about the thread units, NaN and Inf in X, with and without the mask. */
static void test_train_dropout(void **state) {
    (void)state;
    static const float ratios[4] = {0.0f, 0.25f, 0.5f, 0.9f};
    static const int64_t sizes[4] = {1, 17, 1000, 3 * KILN__ELTW_GRAIN + 5};
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 4; k++) {
            ah_case c;
            ah_case_init(&c, "TrainDropout", "kiln", 1, 1 + (k & 1));
            kiln_tensor *x = rnd(1, &sizes[k], -3, 3), *seed;
            if (k == 2) poison(x);
            assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 0, NULL, &seed), KILN_OK);
            *(int64_t *)kiln_tensor_data(seed) = (int64_t)rand() << 31 ^ rand();
            ah_input(&c, x, 0);
            ah_input(&c, seed, 0);
            ah_attr_float(&c, "ratio", ratios[r]);
            run_all(&c, "train_dropout_f32", 0);
            ah_case_free(&c);
        }
}

/* LRN: even and odd sizes (asymmetric windows), windows cut by the first and
 * last channels, planes of one element and of a vector tail, NaN inputs. */
static void lrn_case(int ndim, const int64_t *dims, int64_t size, float alpha, float beta,
                     float bias, int poisoned) {
    ah_case c;
    ah_case_init(&c, "LRN", "", 13, 1);
    kiln_tensor *x = rnd(ndim, dims, -3, 3);
    if (poisoned) poison(x);
    ah_input(&c, x, 0);
    ah_attr_int(&c, "size", size);
    ah_attr_float(&c, "alpha", alpha);
    ah_attr_float(&c, "beta", beta);
    ah_attr_float(&c, "bias", bias);
    run_all(&c, "lrn_f32", TOL);
    ah_case_free(&c);
}

static void test_lrn(void **state) {
    int64_t a[4] = {2, 7, 5, 9}, b[2] = {3, 4}, d[4] = {1, 20, 1, 1}, e[3] = {2, 3, 1000};
    lrn_case(4, a, 5, 1e-4f, 0.75f, 1.0f, 1);
    lrn_case(4, a, 4, 0.3f, 0.6f, 2.0f, 0);
    lrn_case(2, b, 3, 0.5f, 1.2f, 0.5f, 0);
    lrn_case(4, d, 9, 0.1f, 0.75f, 1.0f, 0);
    lrn_case(3, e, 1, 2.0f, 0.5f, 1.0f, 1);
    lrn_case(3, e, 11, 1.0f, 0.75f, 1.0f, 0); /* window wider than C */
}

/* ---- pooling -------------------------------------------------------------------------- */

typedef struct pool_case {
    int64_t x[4];
    int64_t k[2], s[2], pads[4];
    int ceil_mode, include_pad;
    const char *auto_pad;
} pool_case;

/* The window attributes of pc on case c (MaxPool, AveragePool, MaxPoolGrad). */
static void pool_attrs(ah_case *c, const pool_case *pc) {
    ah_attr_ints(c, "kernel_shape", 2, pc->k);
    ah_attr_ints(c, "strides", 2, pc->s);
    if (pc->auto_pad)
        ah_attr_string(c, "auto_pad", pc->auto_pad);
    else
        ah_attr_ints(c, "pads", 4, pc->pads);
    if (pc->ceil_mode) ah_attr_int(c, "ceil_mode", 1);
}

static void test_pool(void **state) {
    static const pool_case cases[] = {
        {{1, 3, 15, 17}, {3, 3}, {1, 1}, {1, 1, 1, 1}},
        {{1, 3, 15, 17}, {3, 3}, {2, 2}, {1, 1, 1, 1}, 1},
        {{2, 4, 16, 16}, {2, 2}, {2, 2}, {0, 0, 0, 0}},
        {{1, 2, 15, 17}, {3, 3}, {1, 1}, {1, 1, 1, 1}, 0, 1},
        {{1, 2, 15, 17}, {3, 3}, {2, 2}, {0, 0, 0, 0}, 0, 0, "SAME_UPPER"},
        {{1, 2, 17, 40}, {7, 5}, {3, 2}, {0, 2, 3, 1}, 1, 1},
        {{1, 1, 1, 1000}, {1, 17}, {1, 1}, {0, 8, 0, 8}},
        {{1, 2, 9, 50}, {1, 1}, {3, 3}, {0, 0, 0, 0}},
        {{1, 1, 1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}},
        {{1, 1, 5, 5}, {3, 3}, {2, 2}, {2, 2, 2, 2}, 1, 0}, /* edge windows mostly padding */
        {{1, 64, 56, 56}, {3, 3}, {2, 2}, {1, 1, 1, 1}},    /* ResNet stem: several thread units */
        {{2, 3, 15, 17}, {2, 2}, {2, 2}, {0, 0, 0, 0}},     /* tiling windows, a row and a column left */
        {{1, 2, 10, 11}, {3, 2}, {3, 2}, {0, 0, 0, 0}},     /* tiling, unequal sides */
    };
    static const char *ops[] = {"MaxPool", "AveragePool"};
    for (int o = 0; o < 2; o++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int p = 0; p < 2; p++) {
                const pool_case *pc = &cases[i];
                ah_case c;
                ah_case_init(&c, ops[o], "", o ? 19 : 12, 1);
                kiln_tensor *x = rnd(4, pc->x, -3, 3);
                if (p) poison(x);
                ah_input(&c, x, 0);
                pool_attrs(&c, pc);
                if (o && pc->include_pad) ah_attr_int(&c, "count_include_pad", 1);
                run_all(&c, o ? "average_pool2d_f32" : "max_pool2d_f32", TOL);
                ah_case_free(&c);
            }
    /* kiln.MaxPoolGrad(dY, X) on max_pool2d_grad_f32 for the same windows;
     * p % 3: 1 NaN and Inf in X, 2 X of whole numbers (ties: the first maximum
     * wins; maxima of 0); p >= 3: with relu = 1 (half of X below 0) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int p = 0; p < 6; p++) {
            const pool_case *pc = &cases[i];
            int64_t yd[4] = {pc->x[0], pc->x[1], 0, 0};
            for (int d = 0; d < 2; d++) {
                int64_t in = pc->x[2 + d], span = in + pc->pads[d] + pc->pads[2 + d] - pc->k[d];
                yd[2 + d] = pc->auto_pad ? (in + pc->s[d] - 1) / pc->s[d]
                            : (pc->ceil_mode ? (span + pc->s[d] - 1) / pc->s[d] : span / pc->s[d]) + 1;
                if (pc->ceil_mode && !pc->auto_pad && (yd[2 + d] - 1) * pc->s[d] >= in + pc->pads[d])
                    yd[2 + d]--; /* the last window must start inside X or its begin pad */
            }
            ah_case c;
            ah_case_init(&c, "MaxPoolGrad", "kiln", 1, 1);
            ah_input(&c, rnd(4, yd, -1, 1), 0);
            kiln_tensor *x = rnd(4, pc->x, -3, 3);
            if (p % 3 == 1) poison(x);
            if (p % 3 == 2)
                for (int64_t k = 0; k < kiln__n(x); k++)
                    ((float *)kiln_tensor_data(x))[k] = floorf(((float *)kiln_tensor_data(x))[k]);
            ah_input(&c, x, 0);
            pool_attrs(&c, pc);
            if (p >= 3) ah_attr_int(&c, "relu", 1);
            run_all(&c, "max_pool2d_grad_f32", TOL);
            ah_case_free(&c);
            if (p >= 3) continue;
            /* kiln.AveragePoolGrad(dY, X's shape) on average_pool2d_grad_f32 */
            ah_case_init(&c, "AveragePoolGrad", "kiln", 1, 1);
            kiln_tensor *dy = rnd(4, yd, -1, 1), *xs = NULL;
            if (p == 1) poison(dy);
            ah_input(&c, dy, 0);
            assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 1, (int64_t[]){4}, &xs), KILN_OK);
            memcpy(kiln_tensor_data(xs), pc->x, sizeof pc->x);
            ah_input(&c, xs, 1);
            pool_attrs(&c, pc);
            if (pc->include_pad) ah_attr_int(&c, "count_include_pad", 1);
            run_all(&c, "average_pool2d_grad_f32", TOL);
            ah_case_free(&c);
        }
    /* MaxPool with Indices, and dilations: the reference's */
    int64_t x[4] = {1, 2, 8, 8}, k[2] = {2, 2}, dil[2] = {2, 2};
    ah_case c;
    ah_case_init(&c, "MaxPool", "", 12, 2);
    ah_input(&c, rnd(4, x, -1, 1), 0);
    ah_attr_ints(&c, "kernel_shape", 2, k);
    refused(&c, "max_pool2d_f32");
    ah_case_free(&c);
    ah_case_init(&c, "MaxPool", "", 12, 1);
    ah_input(&c, rnd(4, x, -1, 1), 0);
    ah_attr_ints(&c, "kernel_shape", 2, k);
    ah_attr_ints(&c, "dilations", 2, dil);
    refused(&c, "max_pool2d_f32");
    ah_case_free(&c);
}

static void test_global_pool(void **state) {
    static const shape shapes[] = {{4, {2, 16, 7, 7}}, {3, {1, 3, 1000}}, {4, {1, 1, 1, 1}},
                                   {4, {2, 3, 4, 5}}, {3, {2, 600, 17}}};
    static const char *ops[] = {"GlobalMaxPool", "GlobalAveragePool"};
    for (int o = 0; o < 2; o++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int p = 0; p < 2; p++) {
                ah_case c;
                ah_case_init(&c, ops[o], "", 13, 1);
                kiln_tensor *x = rnd(shapes[i].ndim, shapes[i].d, -3, 3);
                if (p) poison(x);
                ah_input(&c, x, 0);
                run_all(&c, o ? "global_average_pool_f32" : "global_max_pool_f32", TOL);
                ah_case_free(&c);
            }
    /* kiln.GlobalAveragePoolGrad(dY, X's shape) on global_average_pool_grad_f32 */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int p = 0; p < 2; p++) {
            const shape *sh = &shapes[i];
            int64_t yd[KILN_MAX_DIMS];
            for (int d = 0; d < sh->ndim; d++) yd[d] = d < 2 ? sh->d[d] : 1;
            ah_case c;
            ah_case_init(&c, "GlobalAveragePoolGrad", "kiln", 1, 1);
            kiln_tensor *dy = rnd(sh->ndim, yd, -1, 1), *xs = NULL;
            if (p) poison(dy);
            ah_input(&c, dy, 0);
            assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 1, (int64_t[]){sh->ndim}, &xs), KILN_OK);
            memcpy(kiln_tensor_data(xs), sh->d, (size_t)sh->ndim * sizeof(int64_t));
            ah_input(&c, xs, 1);
            run_all(&c, "global_average_pool_grad_f32", TOL);
            ah_case_free(&c);
        }
}

/* ---- reductions ------------------------------------------------------------------------ */

typedef struct red_case {
    shape x;
    int naxes;         /* -1: no axes */
    int64_t axes[4];
    int keepdims, noop; /* noop_with_empty_axes */
} red_case;

/* Reduce op `op` at `opset` (axes an attribute below the op's axes-input
 * opset, else a constant input, or a computed one with axes_computed) on
 * case r, poisoned with NaN and infinities or not; expect_taken: the fast
 * algorithm runs it, else it must refuse it. */
static void reduce_case(const char *op, int opset, const red_case *r, int poisoned, int axes_computed,
                        int expect_taken) {
    static const char *ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"};
    static const char *algos[] = {"reduce_sum_f32", "reduce_mean_f32", "reduce_max_f32",
                                  "reduce_min_f32"};
    const char *algo = NULL;
    for (int i = 0; i < 4; i++)
        if (strcmp(op, ops[i]) == 0) algo = algos[i];
    const int axes_input = opset >= (strcmp(op, "ReduceSum") == 0 ? 13 : 18);
    ah_case c;
    ah_case_init(&c, op, "", opset, 1);
    kiln_tensor *x = rnd(r->x.ndim, r->x.d, -3, 3);
    if (poisoned) poison(x);
    ah_input(&c, x, 0);
    if (r->naxes >= 0 && axes_input) {
        kiln_tensor *a;
        const int64_t n = r->naxes;
        assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 1, &n, &a), KILN_OK);
        memcpy(kiln_tensor_data(a), r->axes, (size_t)n * sizeof(int64_t));
        ah_input(&c, a, !axes_computed);
    } else if (r->naxes >= 0) {
        ah_attr_ints(&c, "axes", r->naxes, r->axes);
    }
    ah_attr_int(&c, "keepdims", r->keepdims);
    if (r->noop) ah_attr_int(&c, "noop_with_empty_axes", 1);
    check_and_free(&c, algo, expect_taken);
}

/* Every reduced-axes pattern the fast kernels take: trailing axes (a global
 * pool; rows past two LANES of running max/min values), a leading axis over
 * rows wider than a column chunk, middle axes, axes of size 1 set aside,
 * every axis, none (noop_with_empty_axes); and the patterns they refuse. */
static void test_reduce(void **state) {
    static const red_case taken[] = {
        {{4, {2, 32, 8, 8}}, 2, {2, 3}, 1, 0},  {{2, {3, 1000}}, 1, {-1}, 0, 0},
        {{3, {5, 7, 300}}, 1, {0}, 0, 0},       {{4, {4, 6, 5, 3}}, 2, {1, 2}, 1, 0},
        {{4, {2, 3, 1, 4}}, 3, {1, 2, 3}, 1, 0}, {{3, {3, 1, 129}}, 2, {0, 1}, 0, 0},
        {{3, {2, 3, 4}}, -1, {0}, 0, 0},        {{3, {2, 3, 4}}, -1, {0}, 1, 1},
    };
    static const char *ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"};
    for (int o = 0; o < 4; o++) {
        for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
            for (int p = 0; p < 2; p++) {
                if (taken[i].noop) {
                    reduce_case(ops[o], 18, &taken[i], p, 0, 1);
                    continue;
                }
                reduce_case(ops[o], 18, &taken[i], p, 0, 1);
                reduce_case(ops[o], 11, &taken[i], p, 0, 1); /* axes an attribute */
            }
        /* two runs of reduced axes; axes computed at run time; empty */
        const red_case two_runs = {{3, {4, 5, 6}}, 2, {0, 2}, 1, 0};
        const red_case empty = {{3, {4, 0, 3}}, 1, {1}, 1, 0};
        reduce_case(ops[o], 18, &two_runs, 0, 0, 0);
        reduce_case(ops[o], 18, &taken[0], 0, 1, 0);
        reduce_case(ops[o], 18, &empty, 0, 0, 0);
    }
}

/* kiln.SumTo(dY, shape): broadcast axes leading, trailing, none, all, with
 * axes of size 1 between (the bias gradients of MatMul + Add); poisoned or
 * not. Two runs of summed axes (a per-channel bias of NCHW) are refused. */
static void sum_to_case(shape dy, shape to, int poisoned, int expect_taken) {
    ah_case c;
    ah_case_init(&c, "SumTo", "kiln", 1, 1);
    kiln_tensor *x = rnd(dy.ndim, dy.d, -3, 3), *t;
    if (poisoned) poison(x);
    ah_input(&c, x, 0);
    const int64_t n = to.ndim;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 1, &n, &t), KILN_OK);
    memcpy(kiln_tensor_data(t), to.d, (size_t)n * sizeof(int64_t));
    ah_input(&c, t, 1);
    check_and_free(&c, "sum_to_f32", expect_taken);
}

static void test_sum_to(void **state) {
    static const struct { shape dy, to; } taken[] = {
        {{3, {64, 32, 256}}, {1, {256}}},     {{4, {8, 16, 5, 5}}, {3, {16, 5, 5}}},
        {{2, {300, 7}}, {2, {300, 1}}},        {{3, {4, 5, 6}}, {3, {4, 5, 6}}},
        {{3, {4, 5, 6}}, {0, {0}}},            {{4, {3, 1, 9, 2}}, {3, {1, 9, 2}}},
    };
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
        for (int p = 0; p < 2; p++) sum_to_case(taken[i].dy, taken[i].to, p, 1);
    sum_to_case((shape){3, {4, 5, 6}}, (shape){3, {1, 5, 1}}, 0, 0);
    sum_to_case((shape){4, {8, 16, 5, 5}}, (shape){4, {1, 16, 1, 1}}, 0, 0);
}

/* ---- softmax cross-entropy ---------------------------------------------------------- */

typedef struct sce_case {
    shape x;         /* (N, C, D...) */
    const char *red; /* reduction */
    int weight, ignore, log_prob, poisoned;
} sce_case;

/* Labels for x's shape: every class, and ignore_index 3 at some positions. */
static kiln_tensor *sce_labels(const shape *x) {
    int64_t d[4] = {x->d[0]}, n = x->d[0];
    for (int a = 2; a < x->ndim; a++) d[a - 1] = x->d[a], n *= x->d[a];
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, x->ndim - 1, d, &t), KILN_OK);
    int64_t *v = kiln_tensor_data(t);
    for (int64_t i = 0; i < n; i++) v[i] = (i * 7 + i / 5) % x->d[1];
    return t;
}

static void sce_attrs(ah_case *c, const sce_case *k) {
    ah_attr_string(c, "reduction", k->red);
    if (k->ignore) ah_attr_int(c, "ignore_index", 3);
}

/* SoftmaxCrossEntropyLoss (softmax_ce_f32) and kiln.SoftmaxCrossEntropyLossGrad
 * (softmax_ce_grad_f32) against the reference: plain classification (D = 1),
 * positions over one or two trailing dims, column blocks past 256 positions,
 * every reduction, weights, ignore_index, the log_prob output, NaN and
 * infinities among the scores. */
static void test_softmax_ce(void **state) {
    static const sce_case cases[] = {
        {{2, {7, 10}}, "mean", 0, 0, 0, 0},      {{2, {5, 300}}, "sum", 1, 1, 1, 0},
        {{3, {3, 256, 64}}, "mean", 0, 0, 1, 0}, {{3, {2, 5, 300}}, "none", 1, 1, 0, 0},
        {{4, {2, 4, 3, 5}}, "mean", 1, 1, 1, 1}, {{2, {6, 9}}, "none", 0, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const sce_case *k = &cases[i];
        const int64_t C = k->x.d[1];
        ah_case c;
        ah_case_init(&c, "SoftmaxCrossEntropyLoss", "", 13, k->log_prob ? 2 : 1);
        kiln_tensor *x = rnd(k->x.ndim, k->x.d, -4, 4);
        if (k->poisoned) poison(x);
        ah_input(&c, x, 0);
        ah_input(&c, sce_labels(&k->x), 0);
        if (k->weight) ah_input(&c, rnd(1, &C, 0.2f, 2), 0);
        sce_attrs(&c, k);
        check_and_free(&c, "softmax_ce_f32", 1);
        /* the gradient, from log-probabilities and dL of the reduction's shape */
        ah_case_init(&c, "SoftmaxCrossEntropyLossGrad", "kiln", 1, 1);
        int64_t ld[4] = {k->x.d[0]};
        for (int a = 2; a < k->x.ndim; a++) ld[a - 1] = k->x.d[a];
        const int none = strcmp(k->red, "none") == 0;
        ah_input(&c, rnd(none ? k->x.ndim - 1 : 0, ld, -2, 2), 0);
        kiln_tensor *lp = rnd(k->x.ndim, k->x.d, -6, 0);
        if (k->poisoned) poison(lp);
        ah_input(&c, lp, 0);
        ah_input(&c, sce_labels(&k->x), 0);
        if (k->weight) ah_input(&c, rnd(1, &C, 0.2f, 2), 0);
        sce_attrs(&c, k);
        check_and_free(&c, "softmax_ce_grad_f32", 1);
    }
}

/* ---- attention ------------------------------------------------------------------------ */

typedef struct attn_case {
    int64_t B, Hq, Hkv, Sq, T, dk, dv;
    int mask;        /* 0 none, 1 bool (Sq, T), 2 float (B, 1, Sq, T), 3 float (Sq, T - 7) */
    int causal;
    float scale;     /* 0: default */
    int poisoned;
} attn_case;

static void attention_case(const attn_case *a, int expect_taken, int with_past) {
    ah_case c;
    ah_case_init(&c, "Attention", "", 23, 1);
    int64_t q[4] = {a->B, a->Hq, a->Sq, a->dk}, k[4] = {a->B, a->Hkv, a->T, a->dk},
            v[4] = {a->B, a->Hkv, a->T, a->dv};
    kiln_tensor *tq = rnd(4, q, -1, 1);
    if (a->poisoned) poison(tq);
    ah_input(&c, tq, 0);
    ah_input(&c, rnd(4, k, -1, 1), 0);
    ah_input(&c, rnd(4, v, -1, 1), 0);
    if (a->mask == 1) {
        int64_t md[2] = {a->Sq, a->T};
        kiln_tensor *m;
        assert_int_equal(kiln_tensor_create(KILN_DTYPE_BOOL, 2, md, &m), KILN_OK);
        uint8_t *p = kiln_tensor_data(m);
        for (int64_t i = 0; i < a->Sq * a->T; i++) p[i] = (i * 7919 % 10) < 7;
        ah_input(&c, m, 0);
    } else if (a->mask == 2) {
        int64_t md[4] = {a->B, 1, a->Sq, a->T};
        ah_input(&c, rnd(4, md, -3, 0), 0);
    } else if (a->mask == 3) {
        int64_t md[2] = {a->Sq, a->T - 7};
        ah_input(&c, rnd(2, md, -3, 0), 1);
    } else if (with_past) {
        ah_input(&c, NULL, 0);
    }
    if (with_past) {
        int64_t pk[4] = {a->B, a->Hkv, 3, a->dk}, pv[4] = {a->B, a->Hkv, 3, a->dv};
        ah_input(&c, rnd(4, pk, -1, 1), 0);
        ah_input(&c, rnd(4, pv, -1, 1), 0);
    }
    if (a->causal) ah_attr_int(&c, "is_causal", 1);
    if (a->scale != 0) ah_attr_float(&c, "scale", a->scale);
    check_and_free(&c, "attention_f32", expect_taken);
}

static void test_attention(void **state) {
    static const attn_case cases[] = {
        {1, 2, 2, 15, 17, 16, 8},
        {1, 1, 1, 1, 1, 1, 1},
        {2, 2, 2, 16, 16, 16, 16, 1},
        {1, 3, 3, 17, 15, 8, 16, 2},
        {2, 2, 1, 33, 33, 16, 16, 0, 1},       /* causal, MQA */
        {1, 2, 2, 33, 40, 16, 16, 1, 1},       /* causal with a mask, T > Sq */
        {1, 4, 2, 70, 1000, 64, 64, 3},        /* GQA, row blocks, short mask */
        {1, 2, 2, 128, 128, 64, 64, 0, 0, 0.3f},
        {1, 2, 2, 15, 17, 16, 8, 2, 0, 0, 1},  /* NaN / Inf in Q */
        {1, 12, 12, 128, 128, 64, 64, 2},      /* a BERT-base layer at sequence 128 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attention_case(&cases[i], 1, 0);
    attention_case(&cases[0], 0, 1); /* past key/value: the reference's */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vmath),       cmocka_unit_test(test_unary),
        cmocka_unit_test(test_clip_inputs), cmocka_unit_test(test_binary),
        cmocka_unit_test(test_pow),         cmocka_unit_test(test_where),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_layer_norm),  cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_batch_norm_grad), cmocka_unit_test(test_layer_norm_grad),
        cmocka_unit_test(test_softmax_grad),
        cmocka_unit_test(test_activation_grad),
        cmocka_unit_test(test_train_dropout),
        cmocka_unit_test(test_lrn),
        cmocka_unit_test(test_pool),        cmocka_unit_test(test_global_pool),
        cmocka_unit_test(test_attention),   cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_sum_to),
        cmocka_unit_test(test_softmax_ce),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
