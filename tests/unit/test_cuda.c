/* tests/unit/test_cuda.c: the CUDA backend (src/cuda/) against the reference
 * kernels on fresh random inputs, through the planner (algo_harness.h with
 * ah_device set): every CUDA algorithm forced on its op over edge shapes
 * (odd sizes, batches, broadcasts, transposes, groups, strides, dilations,
 * pads, attention masks), fp32 within 1e-5 and bf16 within 1e-2, NaN/Inf parity for the
 * elementwise kernels, Gather exactly (and its out-of-range fault); cuDNN's
 * algorithm search kept in a timing cache; and graphs that go back and forth between the GPU and
 * the CPU (the executor's planned copies), run twice with fresh inputs.
 *
 * Needs a GPU: without one (or in a build without CUDA) every test is
 * skipped and the run says "skipped: no GPU" on its first line. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "algo_harness.h"
#include "backend/device.h"
#include "graph_builder.h"

#define TOL_F32 1e-5
#define TOL_BF16 1e-2

static unsigned seed = 4242;

static kiln_tensor *rnd(int ndim, const int64_t *dims) {
    return ah_random(KILN_DTYPE_F32, ndim, dims, &seed, -1, 1);
}

#define NEED_GPU()                                  \
    do {                                            \
        if (!ah_device) skip();                     \
    } while (0)

/* ---- products ------------------------------------------------------------------ */

static void matmul_case(int na, const int64_t *a, int nb, const int64_t *b, int b_const, int bf16) {
    ah_case c;
    ah_case_init(&c, "MatMul", "", 17, 1);
    ah_input(&c, rnd(na, a), 0);
    ah_input(&c, rnd(nb, b), b_const);
    ah_run_algo(&c, "cuda_matmul", KILN_PRECISION_FP32, 1, TOL_F32);
    if (bf16) ah_run_algo(&c, "cuda_matmul", KILN_PRECISION_BF16, 1, TOL_BF16);
    ah_case_free(&c);
}

static void test_matmul(void **state) {
    NEED_GPU();
    for (int bc = 0; bc <= 1; bc++) {
        matmul_case(2, (int64_t[]){1, 1}, 2, (int64_t[]){1, 1}, bc, 0);
        matmul_case(2, (int64_t[]){17, 33}, 2, (int64_t[]){33, 5}, bc, 0);
        matmul_case(2, (int64_t[]){64, 96}, 2, (int64_t[]){96, 80}, bc, 1);
        matmul_case(3, (int64_t[]){3, 20, 31}, 2, (int64_t[]){31, 40}, bc, 1);        /* batch folds into M */
        matmul_case(4, (int64_t[]){2, 3, 12, 16}, 4, (int64_t[]){2, 3, 16, 9}, bc, 1); /* strided batches */
        matmul_case(2, (int64_t[]){7, 16}, 3, (int64_t[]){4, 16, 12}, bc, 1);         /* A shared */
    }
}

static void gemm_case(int64_t m, int64_t n, int64_t k, int ta, int tb, float alpha, float beta,
                      int cdims, const int64_t *cshape, int c_const) {
    ah_case c;
    ah_case_init(&c, "Gemm", "", 13, 1);
    ah_input(&c, rnd(2, ta ? (int64_t[]){k, m} : (int64_t[]){m, k}), 0);
    ah_input(&c, rnd(2, tb ? (int64_t[]){n, k} : (int64_t[]){k, n}), 1);
    if (cdims) ah_input(&c, rnd(cdims, cshape), c_const);
    ah_attr_int(&c, "transA", ta);
    ah_attr_int(&c, "transB", tb);
    ah_attr_float(&c, "alpha", alpha);
    ah_attr_float(&c, "beta", beta);
    ah_run_algo(&c, "cuda_gemm", KILN_PRECISION_FP32, 1, TOL_F32);
    if (m * n >= 64) ah_run_algo(&c, "cuda_gemm", KILN_PRECISION_BF16, 1, TOL_BF16);
    ah_case_free(&c);
}

static void test_gemm(void **state) {
    NEED_GPU();
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            gemm_case(13, 21, 19, ta, tb, 1, 1, 0, NULL, 0);
            gemm_case(13, 21, 19, ta, tb, 0.5f, 1, 1, (int64_t[]){21}, 0);     /* bias epilogue */
            gemm_case(13, 21, 19, ta, tb, 1, 0.25f, 2, (int64_t[]){1, 21}, 1); /* scaled constant bias */
            gemm_case(13, 21, 19, ta, tb, 2, 0.5f, 2, (int64_t[]){13, 21}, 0); /* full C with beta */
        }
}

static void fused_matmul_case(const char *act, int bias, int z, int bf16) {
    ah_case c;
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, rnd(3, (int64_t[]){2, 24, 40}), 0);
    ah_input(&c, rnd(2, (int64_t[]){40, 36}), 1);
    ah_input(&c, bias ? rnd(1, (int64_t[]){36}) : NULL, 1);
    if (z) ah_input(&c, rnd(3, (int64_t[]){2, 24, 36}), 0);
    if (act) ah_attr_string(&c, "activation", act);
    if (act && !strcmp(act, "Clip")) ah_attr_floats(&c, "activation_params", 2, (float[]){-0.5f, 0.7f});
    ah_run_algo(&c, "cuda_fused_matmul", KILN_PRECISION_FP32, 1, TOL_F32);
    if (bf16) ah_run_algo(&c, "cuda_fused_matmul", KILN_PRECISION_BF16, 1, TOL_BF16);
    ah_case_free(&c);
}

static void test_fused_matmul(void **state) {
    NEED_GPU();
    const char *acts[] = {NULL, "Relu", "Gelu", "GeluTanh", "Silu", "Clip"};
    for (int a = 0; a < 6; a++)
        for (int bias = 0; bias <= 1; bias++)
            for (int z = 0; z <= 1; z++) fused_matmul_case(acts[a], bias, z, a < 2);
}

/* ---- convolutions and pools ----------------------------------------------------------- */

/* gemm: force the 1x1 algorithms (products on cuBLASLt) instead of cuDNN's */
static void conv_case(const char *op, const int64_t *x, const int64_t *w, int bias, int64_t group,
                      int64_t stride, int64_t pad, int64_t dil, const char *act, int z, int gemm) {
    ah_case c;
    ah_case_init(&c, op, op[0] == 'F' ? "kiln" : "", op[0] == 'F' ? 1 : 17, 1);
    ah_input(&c, rnd(4, x), 0);
    ah_input(&c, rnd(4, w), 1);
    ah_input(&c, bias ? rnd(1, (int64_t[]){w[0]}) : NULL, 1);
    ah_attr_int(&c, "group", group);
    ah_attr_ints(&c, "strides", 2, (int64_t[]){stride, stride});
    ah_attr_ints(&c, "pads", 4, (int64_t[]){pad, pad, pad, pad});
    ah_attr_ints(&c, "dilations", 2, (int64_t[]){dil, dil});
    if (act) ah_attr_string(&c, "activation", act);
    if (z) {
        int64_t ext = (w[2] - 1) * dil + 1;
        int64_t p = (x[2] + 2 * pad - ext) / stride + 1, q = (x[3] + 2 * pad - ext) / stride + 1;
        ah_input(&c, rnd(4, (int64_t[]){x[0], w[0], p, q}), 0);
    }
    const char *algo = op[0] == 'F' ? (gemm ? "cuda_fused_conv_1x1" : "cuda_fused_conv")
                                    : (gemm ? "cuda_conv_1x1" : "cuda_conv");
    ah_run_algo(&c, algo, KILN_PRECISION_FP32, 1, TOL_F32);
    if (!gemm) ah_run_algo(&c, algo, KILN_PRECISION_BF16, 1, TOL_BF16); /* the 1x1 products are fp32 only */
    ah_case_free(&c);
}

static void test_conv(void **state) {
    NEED_GPU();
    for (int bias = 0; bias <= 1; bias++) {
        conv_case("Conv", (int64_t[]){2, 8, 15, 13}, (int64_t[]){16, 8, 3, 3}, bias, 1, 1, 1, 1, NULL, 0, 0);
        conv_case("Conv", (int64_t[]){1, 16, 20, 20}, (int64_t[]){24, 16, 1, 1}, bias, 1, 1, 0, 1, NULL, 0, 0);
        conv_case("Conv", (int64_t[]){2, 12, 17, 17}, (int64_t[]){12, 4, 3, 3}, bias, 3, 2, 1, 1, NULL, 0, 0);
        conv_case("Conv", (int64_t[]){1, 16, 14, 14}, (int64_t[]){16, 1, 3, 3}, bias, 16, 1, 1, 1, NULL, 0, 0);
        conv_case("Conv", (int64_t[]){1, 6, 19, 19}, (int64_t[]){10, 6, 5, 5}, bias, 1, 2, 2, 2, NULL, 0, 0);
        conv_case("Conv", (int64_t[]){1, 3, 32, 32}, (int64_t[]){8, 3, 7, 7}, bias, 1, 2, 3, 1, NULL, 0, 0);
    }
    const char *acts[] = {NULL, "Relu", "Silu", "Clip"};
    for (int a = 0; a < 4; a++)
        for (int z = 0; z <= 1; z++)
            conv_case("FusedConv", (int64_t[]){2, 8, 12, 12}, (int64_t[]){16, 8, 3, 3}, 1, 1, 1, 1, 1,
                      acts[a], z, 0);
    /* 1x1 as products: batches, odd sizes, bias along the channels, residual, activations */
    for (int bias = 0; bias <= 1; bias++) {
        conv_case("Conv", (int64_t[]){3, 16, 7, 9}, (int64_t[]){24, 16, 1, 1}, bias, 1, 1, 0, 1, NULL, 0, 1);
        conv_case("Conv", (int64_t[]){1, 5, 1, 1}, (int64_t[]){3, 5, 1, 1}, bias, 1, 1, 0, 1, NULL, 0, 1);
    }
    for (int a = 0; a < 4; a++)
        for (int z = 0; z <= 1; z++)
            conv_case("FusedConv", (int64_t[]){2, 32, 5, 6}, (int64_t[]){20, 32, 1, 1}, a != 1, 1, 1, 0, 1,
                      acts[a], z, 1);
}

static void pool_case(const char *op, const int64_t *x, int64_t k, int64_t stride, int64_t pad,
                      int include_pad) {
    ah_case c;
    ah_case_init(&c, op, "", 17, 1);
    ah_input(&c, rnd(4, x), 0);
    if (k) {
        ah_attr_ints(&c, "kernel_shape", 2, (int64_t[]){k, k});
        ah_attr_ints(&c, "strides", 2, (int64_t[]){stride, stride});
        ah_attr_ints(&c, "pads", 4, (int64_t[]){pad, pad, pad, pad});
        if (include_pad) ah_attr_int(&c, "count_include_pad", 1);
    }
    char algo[64];
    snprintf(algo, sizeof algo, "cuda_%s",
             !strcmp(op, "MaxPool") ? "max_pool" : !strcmp(op, "AveragePool") ? "average_pool"
             : !strcmp(op, "GlobalAveragePool") ? "global_average_pool" : "global_max_pool");
    ah_run_algo(&c, algo, KILN_PRECISION_FP32, 1, TOL_F32);
    ah_case_free(&c);
}

static void test_pool(void **state) {
    NEED_GPU();
    pool_case("MaxPool", (int64_t[]){2, 5, 17, 15}, 3, 2, 1, 0);
    pool_case("MaxPool", (int64_t[]){1, 3, 8, 8}, 2, 2, 0, 0);
    pool_case("AveragePool", (int64_t[]){2, 5, 17, 15}, 3, 2, 1, 0);
    pool_case("AveragePool", (int64_t[]){2, 5, 17, 15}, 3, 1, 1, 1);
    pool_case("GlobalAveragePool", (int64_t[]){2, 7, 9, 11}, 0, 0, 0, 0);
    pool_case("GlobalMaxPool", (int64_t[]){2, 7, 9, 11}, 0, 0, 0, 0);
}

/* ---- elementwise, rows, layout ----------------------------------------------------------- */

/* x with NaN, +Inf and -Inf planted (parity with the reference). */
static kiln_tensor *rnd_special(int ndim, const int64_t *dims) {
    kiln_tensor *t = rnd(ndim, dims);
    float *d = kiln_tensor_data(t);
    int64_t n = kiln__numel(ndim, dims);
    if (n >= 8) {
        d[1] = NAN;
        d[3] = INFINITY;
        d[5] = -INFINITY;
    }
    return t;
}

static void test_unary(void **state) {
    NEED_GPU();
    const char *ops[] = {"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf",
                         "Reciprocal", "Gelu", "LeakyRelu", "HardSigmoid", "Clip"};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        ah_case c;
        ah_case_init(&c, ops[i], "", 20, 1);
        kiln_tensor *x = rnd_special(3, (int64_t[]){3, 7, 45});
        if (!strcmp(ops[i], "Log") || !strcmp(ops[i], "Sqrt")) { /* a positive domain, NaN kept */
            float *d = kiln_tensor_data(x);
            for (int64_t j = 0; j < kiln__n(x); j++) d[j] = fabsf(d[j]);
        }
        ah_input(&c, x, 0);
        if (!strcmp(ops[i], "Clip")) {
            ah_input(&c, ah_random(KILN_DTYPE_F32, 0, NULL, &seed, -0.6, -0.5), 1);
            ah_input(&c, ah_random(KILN_DTYPE_F32, 0, NULL, &seed, 0.5, 0.6), 1);
        }
        char algo[64];
        snprintf(algo, sizeof algo, "cuda_%s",
                 !strcmp(ops[i], "LeakyRelu") ? "leaky_relu" : !strcmp(ops[i], "HardSigmoid") ? "hard_sigmoid" : ops[i]);
        for (char *p = algo; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        ah_run_algo(&c, algo, KILN_PRECISION_FP32, 1, TOL_F32);
        ah_case_free(&c);
    }
}

static void binary_case(const char *op, int na, const int64_t *a, int nb, const int64_t *b) {
    ah_case c;
    ah_case_init(&c, op, "", 17, 1);
    /* Pow: positive bases, no NaN from fractional exponents */
    ah_input(&c, !strcmp(op, "Pow") ? ah_random(KILN_DTYPE_F32, na, a, &seed, 0.1, 2) : rnd_special(na, a), 0);
    ah_input(&c, rnd(nb, b), 1);
    char algo[32];
    snprintf(algo, sizeof algo, "cuda_%s", op);
    for (char *p = algo; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    ah_run_algo(&c, algo, KILN_PRECISION_FP32, 1, TOL_F32);
    ah_case_free(&c);
}

static void test_binary(void **state) {
    NEED_GPU();
    const char *ops[] = {"Add", "Sub", "Mul", "Div", "Pow"};
    for (int i = 0; i < 5; i++) {
        binary_case(ops[i], 3, (int64_t[]){4, 5, 6}, 3, (int64_t[]){4, 5, 6});
        binary_case(ops[i], 3, (int64_t[]){4, 5, 6}, 1, (int64_t[]){6});
        binary_case(ops[i], 4, (int64_t[]){2, 3, 4, 5}, 4, (int64_t[]){2, 1, 4, 1});
        binary_case(ops[i], 2, (int64_t[]){1, 7}, 2, (int64_t[]){9, 1}); /* both broadcast */
        binary_case(ops[i], 1, (int64_t[]){8}, 0, NULL);                 /* scalar */
    }
}

static void test_rows(void **state) {
    NEED_GPU();
    int64_t shapes[][3] = {{3, 5, 7}, {2, 4, 1000}, {1, 1, 1}};
    for (int i = 0; i < 3; i++) {
        for (int log = 0; log <= 1; log++)
            for (int opset = 11; opset <= 13; opset += 2) {
                ah_case c;
                ah_case_init(&c, log ? "LogSoftmax" : "Softmax", "", opset, 1);
                ah_input(&c, rnd(3, shapes[i]), 0);
                ah_run_algo(&c, log ? "cuda_log_softmax" : "cuda_softmax", KILN_PRECISION_FP32, 1, TOL_F32);
                ah_case_free(&c);
            }
        for (int axis = -1; axis >= -2; axis--) {
            ah_case c;
            ah_case_init(&c, "LayerNormalization", "", 17, 3);
            ah_input(&c, rnd(3, shapes[i]), 0);
            int nr = -axis;
            ah_input(&c, rnd(nr, shapes[i] + 3 - nr), 1);
            ah_input(&c, rnd(nr, shapes[i] + 3 - nr), 1);
            ah_attr_int(&c, "axis", axis);
            ah_run_algo(&c, "cuda_layernorm", KILN_PRECISION_FP32, 1, 1e-4);
            ah_case_free(&c);
        }
    }
    ah_case c;
    ah_case_init(&c, "Transpose", "", 17, 1);
    ah_input(&c, rnd(4, (int64_t[]){2, 3, 5, 7}), 0);
    ah_attr_ints(&c, "perm", 4, (int64_t[]){0, 2, 3, 1});
    ah_run_algo(&c, "cuda_transpose", KILN_PRECISION_FP32, 1, 0);
    ah_case_free(&c);
    ah_case_init(&c, "Reshape", "", 17, 1);
    ah_input(&c, rnd(3, (int64_t[]){2, 3, 4}), 0);
    ah_input(&c, vec(KILN_DTYPE_I64, 2, (double[]){6, -1}), 1);
    ah_run_algo(&c, "cuda_reshape", KILN_PRECISION_FP32, 1, 0);
    ah_case_free(&c);
}

static void attention_case(int64_t b, int64_t h, int64_t s, int64_t t, int64_t dk, int64_t dv,
                           int mask, int causal) {
    ah_case c;
    ah_case_init(&c, "Attention", "", 23, 1);
    ah_input(&c, rnd(4, (int64_t[]){b, h, s, dk}), 0);
    ah_input(&c, rnd(4, (int64_t[]){b, h, t, dk}), 0);
    ah_input(&c, rnd(4, (int64_t[]){b, h, t, dv}), 0);
    if (mask == 1) ah_input(&c, rnd(4, (int64_t[]){b, 1, 1, t}), 0);  /* additive, per batch */
    if (mask == 2) ah_input(&c, rnd(2, (int64_t[]){s, t}), 1);         /* additive, shared */
    if (mask == 3) {                                                   /* bool, row 0 kept */
        kiln_tensor *m;
        assert_int_equal(kiln_tensor_create(KILN_DTYPE_BOOL, 4, (int64_t[]){b, h, s, t}, &m), KILN_OK);
        uint8_t *d = kiln_tensor_data(m);
        for (int64_t i = 0; i < kiln__n(m); i++) d[i] = (uint8_t)(i % t == 0 || rand_r(&seed) % 3 != 0);
        ah_input(&c, m, 0);
    }
    if (causal) ah_attr_int(&c, "is_causal", 1);
    ah_run_algo(&c, "cuda_attention", KILN_PRECISION_FP32, 1, TOL_F32);
    ah_case_free(&c);
}

static void test_attention(void **state) {
    NEED_GPU();
    for (int mask = 0; mask <= 3; mask++) {
        attention_case(2, 3, 17, 17, 16, 16, mask, 0);
        attention_case(1, 2, 5, 33, 8, 12, mask, 0);
    }
    attention_case(2, 4, 32, 32, 64, 64, 0, 1);
    attention_case(1, 12, 128, 128, 64, 64, 1, 0); /* BERT-base's heads */
}

/* ---- Gather ---------------------------------------------------------------------------- */

static void gather_case(kiln_dtype dt, int nd, const int64_t *d, int ni, const int64_t *id,
                        kiln_dtype it, int idx_const, int64_t axis) {
    ah_case c;
    ah_case_init(&c, "Gather", "", 13, 1);
    ah_input(&c, ah_random(dt, nd, d, &seed, dt == KILN_DTYPE_U8 ? 0 : -100, 100), 0);
    ah_input(&c, ah_random(it, ni, id, &seed, (float)-d[axis], (float)d[axis]), idx_const);
    ah_attr_int(&c, "axis", axis);
    ah_run_algo(&c, "cuda_gather", KILN_PRECISION_FP32, 1, 0);
    ah_case_free(&c);
}

static void test_gather(void **state) {
    NEED_GPU();
    /* embedding lookup, token ids from the input; negative ids count from the end */
    gather_case(KILN_DTYPE_F32, 2, (int64_t[]){50, 16}, 2, (int64_t[]){3, 7}, KILN_DTYPE_I64, 0, 0);
    gather_case(KILN_DTYPE_I64, 3, (int64_t[]){3, 10, 5}, 1, (int64_t[]){4}, KILN_DTYPE_I32, 1, 1);
    gather_case(KILN_DTYPE_F16, 3, (int64_t[]){2, 6, 33}, 0, NULL, KILN_DTYPE_I64, 1, 1); /* scalar index */
    gather_case(KILN_DTYPE_U8, 2, (int64_t[]){9, 7}, 2, (int64_t[]){2, 5}, KILN_DTYPE_I32, 0, 1);
    /* an index out of range fails the run with a message; the device keeps working */
    ah_case c;
    ah_case_init(&c, "Gather", "", 13, 1);
    ah_input(&c, rnd(2, (int64_t[]){5, 4}), 1);
    kiln_tensor *idx = ah_random(KILN_DTYPE_I64, 1, (int64_t[]){3}, &seed, 0, 5);
    ah_input(&c, idx, 0);
    assert_int_equal(kiln__graph_finalize(c.g), KILN_OK);
    c.finalized = 1;
    kiln__select_opts sdev = {.dev = ah_device};
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, c.g, NULL, 1), KILN_OK);
    r.sel = sdev;
    const kiln_tensor *ins[1] = {idx};
    ((int64_t *)kiln_tensor_data(idx))[1] = 5;
    assert_int_not_equal(kiln__runner_run(&r, 1, ins), KILN_OK);
    assert_non_null(strstr(kiln_last_error(), "out of range"));
    ((int64_t *)kiln_tensor_data(idx))[1] = -5;
    if (kiln__runner_run(&r, 1, ins) != KILN_OK) fail_msg("run after the fault: %s", kiln_last_error());
    assert_string_equal(kiln__runner_algo(&r, 0)->name, "cuda_gather");
    kiln__runner_free(&r);
    ah_case_free(&c);
}

/* ---- cuDNN's algorithm search and the timing cache ----------------------------------------- */

/* A Conv plan measures cuDNN's algorithms once: its choice goes into the
 * timing cache as a variant ("cuda_conv#<n>"), the file keeps it, and a plan
 * from the reloaded cache uses it (as it does a variant that no longer
 * applies: the search runs again); every plan matches the reference. */
static void test_conv_search_cache(void **state) {
    NEED_GPU();
    char path[] = "/tmp/kiln-test-cuda-cacheXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    ah_case c;
    ah_case_init(&c, "Conv", "", 17, 1);
    ah_input(&c, rnd(4, (int64_t[]){2, 8, 21, 19}), 0);
    ah_input(&c, rnd(4, (int64_t[]){16, 8, 3, 3}), 1);
    ah_attr_ints(&c, "pads", 4, (int64_t[]){1, 1, 1, 1});
    assert_int_equal(kiln__graph_finalize(c.g), KILN_OK);
    c.finalized = 1;
    kiln_tensor *ref[1], *got[1];
    const char *algo;
    kiln__select_opts sref = {.reference = 1};
    ah_exec(&c, &sref, 1, ref, &algo);
    for (int round = 0; round < 3; round++) {
        kiln__timing_cache *tc;
        assert_int_equal(kiln__timing_cache_create(path, &tc), KILN_OK);
        if (kiln__timing_cache_load(tc) != KILN_OK) fail_msg("load: %s", kiln_last_error());
        assert_int_equal(kiln__timing_cache_size(tc), round == 0 ? 0 : 1);
        kiln__select_opts sdev = {.dev = ah_device, .cache = tc};
        ah_exec(&c, &sdev, 1, got, &algo);
        assert_string_equal(algo, "cuda_conv");
        ah_compare(got[0], ref[0], TOL_F32, "Conv from the timing cache");
        kiln_tensor_free(got[0]);
        assert_int_equal(kiln__timing_cache_size(tc), 1);
        assert_int_equal(kiln__timing_cache_save(tc), KILN_OK);
        kiln__timing_cache_free(tc);
        FILE *f = fopen(path, "r");
        char text[4096];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        if (round == 0) {
            char *v = strstr(text, "\ncuda_conv#");
            if (!v) fail_msg("no cuda_conv variant in the cache file:\n%s", text);
            /* a variant that is not one of cuDNN's: the next plan searches again */
            char *sp = strchr(v + 1, ' ');
            char bad[4096];
            snprintf(bad, sizeof bad, "%.*s999%s", (int)(v - text) + 11, text, sp);
            f = fopen(path, "w");
            fputs(bad, f);
            fclose(f);
        } else if (round == 1) {
            assert_null(strstr(text, "cuda_conv#999 ")); /* replaced by the new search */
        }
    }
    kiln_tensor_free(ref[0]);
    ah_case_free(&c);
    remove(path);
}

/* ---- plans that cross between GPU and CPU ---------------------------------------------- */

static void run_graph(kiln_graph *g, const kiln__select_opts *sel, const kiln_tensor *x,
                      kiln__runner *r) {
    assert_int_equal(kiln__runner_init(r, g, NULL, 2), KILN_OK);
    r->sel = *sel;
    const kiln_tensor *ins[1] = {x};
    if (kiln__runner_run(r, 1, ins) != KILN_OK) fail_msg("run: %s", kiln_last_error());
}

/* x -> MatMul (GPU) -> Cos (CPU: no CUDA kernel) -> Add with the MatMul's
 * output (GPU) -> outputs a (on the GPU) and m (also read by the CPU). */
static void test_mixed_plan(void **state) {
    NEED_GPU();
    kiln_graph *g = new_graph(NULL);
    int xv = kiln__graph_value(g, "x"), wv = kiln__graph_value(g, "w");
    g->values[xv].kind = KILN__VAL_INPUT;
    g->values[xv].dtype = KILN_DTYPE_F32;
    g->values[xv].ndim = -1;
    g->inputs = calloc(1, sizeof *g->inputs);
    g->inputs[g->n_inputs++] = xv;
    g->values[wv].kind = KILN__VAL_INIT;
    g->values[wv].init = rnd(2, (int64_t[]){16, 12});
    g->inits = calloc(1, sizeof *g->inits);
    g->inits[g->n_inits++] = wv;
    node(g, "MatMul", "m", "x", "w", NULL);
    node(g, "Cos", "c", "m", NULL);
    node(g, "Add", "a", "c", "m", NULL);
    node(g, "Relu", "r", "a", NULL);
    add_output(g, "r");
    add_output(g, "m");
    if (kiln__graph_finalize(g) != KILN_OK) fail_msg("graph: %s", kiln_last_error());
    kiln__select_opts sref = {.reference = 1}, sdev = {.dev = ah_device};
    kiln__runner rr, rd;
    for (int run = 0; run < 2; run++) { /* the second run reuses both plans, with new data */
        kiln_tensor *x = rnd(2, (int64_t[]){9, 16});
        if (run == 0) {
            run_graph(g, &sref, x, &rr);
            run_graph(g, &sdev, x, &rd);
        } else {
            const kiln_tensor *ins[1] = {x};
            assert_int_equal(kiln__runner_run(&rr, 1, ins), KILN_OK);
            if (kiln__runner_run(&rd, 1, ins) != KILN_OK) fail_msg("run: %s", kiln_last_error());
        }
        assert_string_equal(kiln__runner_algo(&rd, 0)->name, "cuda_matmul");
        assert_true(!kiln__runner_algo(&rd, 1) || !(kiln__runner_algo(&rd, 1)->flags & KILN_ALGOF_CUDA));
        assert_string_equal(kiln__runner_algo(&rd, 2)->name, "cuda_add");
        for (int k = 0; k < 2; k++)
            ah_compare(kiln__runner_output(&rd, k), kiln__runner_output(&rr, k), TOL_F32, "mixed plan");
        kiln_tensor_free(x);
    }
    kiln__runner_free(&rr);
    kiln__runner_free(&rd);
    kiln_graph_free(g);
}

int main(void) {
    kiln_status s = kiln__device_open(&ah_device);
    if (s != KILN_OK) {
        printf("skipped: no GPU (%s)\n", kiln_last_error());
        ah_device = NULL;
    } else {
        printf("GPU: %s\n", kiln__device_name(ah_device));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),     cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_fused_matmul), cmocka_unit_test(test_conv),
        cmocka_unit_test(test_pool),       cmocka_unit_test(test_unary),
        cmocka_unit_test(test_binary),     cmocka_unit_test(test_rows),
        cmocka_unit_test(test_attention),  cmocka_unit_test(test_gather),
        cmocka_unit_test(test_conv_search_cache), cmocka_unit_test(test_mixed_plan),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    kiln__device_close(ah_device);
    return failed;
}
