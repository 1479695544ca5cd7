/* tests/unit/test_conv_algos.c: the convolution algorithms of Conv and
 * kiln.FusedConv (src/cpu/kernels/conv_gemm.c, conv_depthwise.c, winograd.c)
 * against the reference kernels on fresh random inputs, and kiln.FusedConv's
 * own reference kernel against a double-precision loop.
 *
 * Through the planner (algo_harness.h), every algorithm forced on shapes it
 * takes, at 1 and 2 threads: odd sizes, asymmetric padding, stride 2 and 3,
 * dilation 2, groups, channel multipliers, N = 2, bias absent / present,
 * the residual Z, every activation, blocks and row chunks that do not
 * divide evenly; NaN / Inf parity (not for Winograd, whose transforms
 * spread a non-finite input over its tile); bf16 within 1e-2 where this CPU
 * runs it; the Winograd error bound; the cases each algorithm refuses; and
 * the heuristic's choice on ResNet-50 / MobileNetV2 layers. By hand: the
 * depthwise row kernels (portable and AVX-512) against each other. */
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
#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/conv_depthwise.h"
#include "cpu/kernels/winograd.h"
#include "cpu/kernels/gemm.h"
#include "ops/fused.h"

#define TOL_F32 1e-5
#define TOL_BF16 1e-2
#define TOL_BF16_WINOGRAD 2e-2

static unsigned seed = 4242;

/* ---- cases ------------------------------------------------------------------ */

typedef struct conv_spec {
    int64_t n, c, h, w; /* X */
    int64_t k, r, s;    /* W: (k, c/group, r, s) */
    int64_t group;
    int64_t stride[2], dil[2], pads[4]; /* zeros: defaults (1, 1, 0) */
    int bias, z;        /* inputs present */
    const char *act;    /* FusedConv activation ("" none); NULL: plain Conv */
    float clip[2];      /* Clip bounds */
    int wconst;         /* W an initializer (Winograd needs it) */
} conv_spec;

static int64_t out_dim(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1) {
    return (in + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
}

static void spec_defaults(conv_spec *sp) {
    if (!sp->group) sp->group = 1;
    for (int i = 0; i < 2; i++) {
        if (!sp->stride[i]) sp->stride[i] = 1;
        if (!sp->dil[i]) sp->dil[i] = 1;
    }
}

/* Builds the case of sp; X gets values from x_fill when not NULL. */
static void build(ah_case *c, conv_spec sp) {
    spec_defaults(&sp);
    int fused = sp.act != NULL;
    if (fused)
        ah_case_init(c, "FusedConv", "kiln", 1, 1);
    else
        ah_case_init(c, "Conv", "", 17, 1);
    int64_t xd[4] = {sp.n, sp.c, sp.h, sp.w}, wd[4] = {sp.k, sp.c / sp.group, sp.r, sp.s};
    ah_input(c, ah_random(KILN_DTYPE_F32, 4, xd, &seed, -1, 1), 0);
    ah_input(c, ah_random(KILN_DTYPE_F32, 4, wd, &seed, -1, 1), sp.wconst);
    int64_t bd[1] = {sp.k};
    if (sp.bias || sp.z) ah_input(c, sp.bias ? ah_random(KILN_DTYPE_F32, 1, bd, &seed, -1, 1) : NULL, 1);
    if (sp.z) {
        int64_t yd[4] = {sp.n, sp.k,
                         out_dim(sp.h, sp.r, sp.stride[0], sp.dil[0], sp.pads[0], sp.pads[2]),
                         out_dim(sp.w, sp.s, sp.stride[1], sp.dil[1], sp.pads[1], sp.pads[3])};
        ah_input(c, ah_random(KILN_DTYPE_F32, 4, yd, &seed, -1, 1), 0);
    }
    ah_attr_ints(c, "strides", 2, sp.stride);
    ah_attr_ints(c, "dilations", 2, sp.dil);
    ah_attr_ints(c, "pads", 4, sp.pads);
    if (sp.group != 1) ah_attr_int(c, "group", sp.group);
    if (fused && sp.act[0]) ah_attr_string(c, "activation", sp.act);
    if (fused && strcmp(sp.act, "Clip") == 0) ah_attr_floats(c, "activation_params", 2, sp.clip);
}

/* The name of algorithm base for sp's op ("fused_" prefix for FusedConv). */
static const char *algo_name(const conv_spec *sp, const char *base, char *buf, size_t n) {
    snprintf(buf, n, "%s%s", sp->act ? "fused_" : "", base);
    return buf;
}

/* Forces algorithm base on sp at 1 and 2 threads (and its _bf16 twin when
 * bf16 runs here and the output is big enough for a stable bf16 error;
 * depthwise and Winograd F4 have none). */
static void check(conv_spec sp, const char *base, double tol) {
    ah_case c;
    build(&c, sp);
    char name[64];
    algo_name(&sp, base, name, sizeof name);
    for (int t = 1; t <= 2; t++) ah_run_algo(&c, name, KILN_PRECISION_FP32, t, tol);
    spec_defaults(&sp);
    int64_t ny = sp.n * sp.k *
                 out_dim(sp.h, sp.r, sp.stride[0], sp.dil[0], sp.pads[0], sp.pads[2]) *
                 out_dim(sp.w, sp.s, sp.stride[1], sp.dil[1], sp.pads[1], sp.pads[3]);
    if (strcmp(base, "conv_depthwise") != 0 && strcmp(base, "conv_winograd_f4") != 0 &&
        kiln__gemm_compute_supported(KILN__GEMM_BF16) && ny >= 64) {
        char bf[80];
        snprintf(bf, sizeof bf, "%s_bf16", name);
        /* Winograd rounds the transformed tiles (sums of up to 4 inputs) to
         * bf16 too: up to 1.1e-2 seen on the few-channel cases here */
        const double tol = strncmp(base, "conv_winograd", 13) == 0 ? TOL_BF16_WINOGRAD : TOL_BF16;
        for (int t = 1; t <= 2; t++) ah_run_algo(&c, bf, KILN_PRECISION_BF16, t, tol);
    }
    ah_case_free(&c);
}

/* Asserts algorithm base refuses sp (the planner falls back to another). */
static void refuses(conv_spec sp, const char *base) {
    ah_case c;
    build(&c, sp);
    assert_int_equal(kiln__graph_finalize(c.g), KILN_OK);
    c.finalized = 1;
    char name[64];
    algo_name(&sp, base, name, sizeof name);
    kiln__select_opts so = {.force_algo = name};
    kiln_tensor *out[1] = {0};
    const char *ran;
    ah_exec(&c, &so, 1, out, &ran);
    if (strcmp(ran, name) == 0) fail_msg("%s took a case it should refuse", name);
    kiln_tensor_free(out[0]);
    ah_case_free(&c);
}

/* ---- the GEMM convolutions' two layouts ----------------------------------------- */

/* The cases with constant weights, in each layout forced (conv_gemm.c:
 * channel-major, and spatial-major: the transposed product through T). */
static void both_layouts(const conv_spec *cases, size_t n, const char *base) {
    for (int layout = 1; layout <= 2; layout++) {
        kiln__conv_gemm_layout = layout;
        for (size_t i = 0; i < n; i++) {
            conv_spec sp = cases[i];
            sp.wconst = 1;
            check(sp, base, TOL_F32);
        }
    }
    kiln__conv_gemm_layout = 0;
}

/* ---- conv_1x1 ----------------------------------------------------------------- */

static void test_conv_1x1(void **state) {
    (void)state;
    conv_spec cases[] = {
        {.n = 1, .c = 1, .h = 1, .w = 1, .k = 1, .r = 1, .s = 1},
        {.n = 1, .c = 8, .h = 7, .w = 9, .k = 5, .r = 1, .s = 1},
        {.n = 2, .c = 16, .h = 5, .w = 5, .k = 33, .r = 1, .s = 1, .bias = 1},
        {.n = 1, .c = 70, .h = 31, .w = 37, .k = 40, .r = 1, .s = 1, .bias = 1}, /* blocks */
        {.n = 1, .c = 12, .h = 9, .w = 11, .k = 7, .r = 1, .s = 1, .stride = {2, 2}},
        {.n = 2, .c = 6, .h = 8, .w = 7, .k = 5, .r = 1, .s = 1, .stride = {2, 3}, .bias = 1},
        {.n = 1, .c = 6, .h = 5, .w = 6, .k = 4, .r = 1, .s = 1, .pads = {1, 0, 0, 2}},
        {.n = 2, .c = 12, .h = 6, .w = 5, .k = 9, .r = 1, .s = 1, .group = 3, .bias = 1},
        {.n = 1, .c = 8, .h = 7, .w = 9, .k = 6, .r = 1, .s = 1, .wconst = 1, .bias = 1},
        {.n = 1, .c = 8, .h = 6, .w = 6, .k = 40, .r = 1, .s = 1, .bias = 1}, /* row chunks */
        /* batch 1 at 2 threads: each product split by the GEMM's grid, groups too */
        {.n = 1, .c = 12, .h = 6, .w = 5, .k = 9, .r = 1, .s = 1, .group = 3, .bias = 1},
        {.n = 1, .c = 40, .h = 9, .w = 14, .k = 45, .r = 1, .s = 1, .bias = 1, .z = 1,
         .act = "Relu"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check(cases[i], "conv_1x1", TOL_F32);
        check(cases[i], "conv_im2col", TOL_F32);
    }
    both_layouts(cases, sizeof cases / sizeof *cases, "conv_1x1");
    refuses((conv_spec){.n = 1, .c = 4, .h = 5, .w = 5, .k = 4, .r = 3, .s = 3}, "conv_1x1");
}

/* ---- conv_im2col -------------------------------------------------------------- */

static void test_conv_im2col(void **state) {
    (void)state;
    conv_spec cases[] = {
        {.n = 1, .c = 3, .h = 8, .w = 8, .k = 4, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        {.n = 2, .c = 5, .h = 9, .w = 11, .k = 7, .r = 3, .s = 2, .bias = 1},
        {.n = 1, .c = 4, .h = 13, .w = 10, .k = 6, .r = 3, .s = 3, .stride = {2, 2},
         .pads = {1, 1, 1, 1}, .bias = 1},
        {.n = 1, .c = 4, .h = 12, .w = 14, .k = 5, .r = 3, .s = 3, .dil = {2, 2},
         .pads = {2, 2, 2, 2}},
        {.n = 2, .c = 3, .h = 11, .w = 9, .k = 4, .r = 3, .s = 3, .pads = {0, 1, 2, 1},
         .stride = {1, 2}, .dil = {2, 1}, .bias = 1},
        {.n = 2, .c = 6, .h = 7, .w = 7, .k = 9, .r = 3, .s = 3, .group = 3, .pads = {1, 1, 1, 1}},
        {.n = 1, .c = 6, .h = 9, .w = 9, .k = 6, .r = 3, .s = 3, .group = 6, .pads = {1, 1, 1, 1}},
        {.n = 1, .c = 3, .h = 23, .w = 23, .k = 8, .r = 7, .s = 7, .stride = {2, 2},
         .pads = {3, 3, 3, 3}, .bias = 1},
        /* several column blocks (partial rows) and, on 2 threads, row chunks */
        {.n = 1, .c = 64, .h = 20, .w = 19, .k = 37, .r = 3, .s = 3, .pads = {1, 1, 1, 1},
         .bias = 1},
        {.n = 1, .c = 2, .h = 1, .w = 1, .k = 3, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        {.n = 1, .c = 8, .h = 6, .w = 6, .k = 40, .r = 3, .s = 3, .pads = {1, 1, 1, 1},
         .bias = 1}, /* one block: row chunks of 32 and 8 on 2 threads */
        /* weights known at run time and enough images for each thread to pack
         * them once (training): groups, row chunks, column blocks */
        {.n = 6, .c = 6, .h = 9, .w = 8, .k = 40, .r = 3, .s = 3, .group = 2, .pads = {1, 1, 1, 1},
         .bias = 1},
        {.n = 5, .c = 64, .h = 20, .w = 19, .k = 37, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check(cases[i], "conv_im2col", TOL_F32);
    both_layouts(cases, sizeof cases / sizeof *cases, "conv_im2col");
}

/* ---- conv_depthwise ----------------------------------------------------------- */

static void test_conv_depthwise(void **state) {
    (void)state;
    conv_spec cases[] = {
        {.n = 1, .c = 16, .h = 17, .w = 19, .k = 16, .r = 3, .s = 3, .group = 16,
         .pads = {1, 1, 1, 1}, .bias = 1},
        {.n = 2, .c = 8, .h = 150, .w = 141, .k = 8, .r = 3, .s = 3, .group = 8,
         .pads = {1, 1, 1, 1}}, /* 64-wide interior blocks */
        {.n = 1, .c = 8, .h = 29, .w = 133, .k = 8, .r = 3, .s = 3, .group = 8,
         .stride = {2, 2}, .pads = {1, 1, 1, 1}, .bias = 1},
        {.n = 1, .c = 5, .h = 21, .w = 90, .k = 5, .r = 5, .s = 5, .group = 5,
         .pads = {2, 2, 2, 2}, .bias = 1},
        {.n = 1, .c = 5, .h = 21, .w = 90, .k = 5, .r = 5, .s = 5, .group = 5,
         .stride = {2, 2}, .pads = {2, 1, 2, 1}},
        {.n = 1, .c = 4, .h = 20, .w = 70, .k = 4, .r = 7, .s = 7, .group = 4,
         .pads = {3, 3, 3, 3}}, /* generic kernel size */
        {.n = 1, .c = 4, .h = 20, .w = 70, .k = 4, .r = 3, .s = 3, .group = 4,
         .dil = {2, 2}, .pads = {2, 2, 2, 2}},
        {.n = 1, .c = 4, .h = 20, .w = 70, .k = 4, .r = 3, .s = 3, .group = 4,
         .stride = {3, 3}, .pads = {0, 1, 2, 0}}, /* gathers */
        {.n = 2, .c = 3, .h = 9, .w = 40, .k = 6, .r = 3, .s = 3, .group = 3,
         .pads = {1, 1, 1, 1}, .bias = 1}, /* channel multiplier 2 */
        {.n = 1, .c = 2, .h = 2, .w = 3, .k = 2, .r = 3, .s = 3, .group = 2,
         .pads = {1, 1, 1, 1}}, /* no interior */
        {.n = 1, .c = 1, .h = 7, .w = 5, .k = 1, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check(cases[i], "conv_depthwise", TOL_F32);
        if (i < 3) check(cases[i], "conv_im2col", TOL_F32);
    }
    refuses((conv_spec){.n = 1, .c = 4, .h = 5, .w = 5, .k = 4, .r = 3, .s = 3, .group = 2},
            "conv_depthwise");
}

/* The AVX-512 row kernel against the portable one, every stride path,
 * interiors of every length. */
static void test_depthwise_rows(void **state) {
    (void)state;
#ifdef KILN__DW_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) skip();
    float x[3][400], w[49], y0[200], y1[200];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 400; j++) x[i][j] = (float)((j * 37 + i * 11) % 17) / 8.0f - 1.0f;
    for (int i = 0; i < 49; i++) w[i] = (float)((i * 13) % 7) / 3.0f - 1.0f;
    const float *rows[3] = {x[0], NULL, x[2]};
    int64_t S_list[] = {3, 5, 4}, sw_list[] = {1, 2, 3};
    for (int si = 0; si < 3; si++)
        for (int ti = 0; ti < 3; ti++)
            for (int64_t Q = 1; Q < 110; Q += 7) {
                int64_t S = S_list[si], sw = sw_list[ti], pw = S / 2, qlo[8], qhi[8];
                int64_t W = (Q - 1) * sw + 1;
                kiln__dw_geom d = {.W = W, .Q = Q, .R = 3, .S = S, .sw = sw, .dw = 1, .pw = pw,
                                   .qlo = qlo, .qhi = qhi};
                for (int64_t s = 0; s < S; s++) {
                    int64_t b = s - pw;
                    qlo[s] = b >= 0 ? 0 : (-b + sw - 1) / sw;
                    qhi[s] = W - 1 - b < 0 ? 0 : (W - 1 - b) / sw + 1;
                    if (qhi[s] > Q) qhi[s] = Q;
                    if (qlo[s] > qhi[s]) qlo[s] = qhi[s];
                }
                kiln__dw_row_generic(&d, rows, w, 0.5f, y0);
                kiln__dw_row_avx512(&d, rows, w, 0.5f, y1);
                for (int64_t q = 0; q < Q; q++)
                    if (fabsf(y0[q] - y1[q]) > 1e-5f * (1.0f + fabsf(y0[q])))
                        fail_msg("S %lld sw %lld Q %lld: q %lld: %g vs %g", (long long)S,
                                 (long long)sw, (long long)Q, (long long)q, y0[q], y1[q]);
            }
#else
    skip();
#endif
}

/* ---- the stride-2 im2col row copy ------------------------------------------------- */

/* Every length 0..70 on both paths, from a source of exactly 2n-1 floats (so
 * the sanitizer runs catch a read past it). */
static void test_copy_stride2(void **state) {
    (void)state;
    for (int portable = 0; portable < 2; portable++) {
        kiln__conv_copy_portable_only = portable;
        for (int64_t n = 0; n <= 70; n++) {
            const int64_t len = n > 0 ? 2 * n - 1 : 0;
            float *src = malloc((size_t)(len > 0 ? len : 1) * sizeof(float));
            float *dst = malloc((size_t)(n + 1) * sizeof(float));
            assert_non_null(src);
            assert_non_null(dst);
            for (int64_t i = 0; i < len; i++) src[i] = (float)i * 0.5f - 3.0f;
            dst[n] = 12345.0f;
            kiln__copy_stride2(dst, src, n);
            for (int64_t t = 0; t < n; t++) assert_true(dst[t] == src[2 * t]);
            assert_true(dst[n] == 12345.0f); /* nothing written past n */
            free(src);
            free(dst);
        }
    }
    kiln__conv_copy_portable_only = 0;
}

/* ---- Winograd ------------------------------------------------------------------- */

/* Winograd forced on these cases (normalized error under bound). */
static void winograd_cases(const char *base, double bound) {
    conv_spec cases[] = {
        {.n = 1, .c = 1, .h = 3, .w = 3, .k = 1, .r = 3, .s = 3},
        {.n = 1, .c = 3, .h = 8, .w = 8, .k = 4, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        {.n = 2, .c = 5, .h = 11, .w = 9, .k = 7, .r = 3, .s = 3, .pads = {1, 1, 1, 1},
         .bias = 1},
        {.n = 1, .c = 6, .h = 13, .w = 10, .k = 5, .r = 3, .s = 3, .pads = {0, 2, 1, 0}},
        {.n = 1, .c = 4, .h = 10, .w = 17, .k = 3, .r = 3, .s = 3}, /* no padding */
        /* K in several chunks on 2 threads, blocks of several tile rows */
        {.n = 1, .c = 32, .h = 14, .w = 14, .k = 80, .r = 3, .s = 3, .pads = {1, 1, 1, 1},
         .bias = 1},
        {.n = 2, .c = 64, .h = 56, .w = 56, .k = 64, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        /* more than 16 tiles a row (F4 too), channels past a multiple of 16 */
        {.n = 1, .c = 3, .h = 6, .w = 75, .k = 17, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
    };
    /* the vectorized transforms where the CPU has them, then the portable ones */
    for (int portable = 0; portable < 2; portable++) {
        kiln__wino_portable_only = portable;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            cases[i].wconst = 1;
            check(cases[i], base, bound);
        }
    }
    kiln__wino_portable_only = 0;
}

/* Normalized error against the reference, uniform [-1, 1) inputs, measured
 * (AMD EPYC, Zen 5): F2 1.3e-7 (C = 3) .. 3.4e-7 (C = 64) .. 7.5e-7 (C = 512);
 * F4 1.1e-6 (C = 3) .. 1.7e-6 (C = 64) .. 3.0e-6 (C = 256). The error grows
 * slowly with C; the bounds below are for this suite's layers (C <= 64). */
static void test_winograd_f2(void **state) {
    (void)state;
    winograd_cases("conv_winograd_f2", 1e-6);
}
static void test_winograd_f4(void **state) {
    (void)state;
    winograd_cases("conv_winograd_f4", 5e-6);
}

static void test_winograd_refuses(void **state) {
    (void)state;
    conv_spec base = {.n = 1, .c = 4, .h = 9, .w = 9, .k = 4, .r = 3, .s = 3, .wconst = 1};
    conv_spec sp = base;
    sp.stride[0] = 2;
    refuses(sp, "conv_winograd_f4");
    sp = base;
    sp.dil[1] = 2;
    refuses(sp, "conv_winograd_f2");
    sp = base;
    sp.group = 2;
    refuses(sp, "conv_winograd_f4");
    sp = base;
    sp.r = 5;
    sp.s = 5;
    refuses(sp, "conv_winograd_f4");
    sp = base;
    sp.wconst = 0; /* runtime weights: nothing to transform at plan time */
    refuses(sp, "conv_winograd_f2");
}

/* ---- kiln.FusedConv ---------------------------------------------------------------- */

static const char *const ACTS[] = {"", "Relu", "Clip", "Gelu", "GeluTanh", "Silu"};

/* Every activation, with and without bias and Z, on every algorithm. */
static void test_fused(void **state) {
    (void)state;
    for (size_t a = 0; a < sizeof ACTS / sizeof *ACTS; a++)
        for (int variant = 0; variant < 3; variant++) {
            int bias = variant != 1, z = variant != 0;
            conv_spec one = {.n = 2, .c = 6, .h = 7, .w = 9, .k = 5, .r = 1, .s = 1,
                             .bias = bias, .z = z, .act = ACTS[a], .clip = {-0.3f, 0.4f}};
            check(one, "conv_1x1", TOL_F32);
            conv_spec gen = {.n = 1, .c = 4, .h = 9, .w = 8, .k = 6, .r = 3, .s = 3,
                             .stride = {2, 1}, .pads = {1, 0, 1, 2}, .bias = bias, .z = z,
                             .act = ACTS[a], .clip = {-0.3f, 0.4f}};
            check(gen, "conv_im2col", TOL_F32);
            conv_spec dw = {.n = 1, .c = 6, .h = 11, .w = 37, .k = 6, .r = 3, .s = 3,
                            .group = 6, .pads = {1, 1, 1, 1}, .bias = bias, .z = z,
                            .act = ACTS[a], .clip = {-0.3f, 0.4f}};
            check(dw, "conv_depthwise", TOL_F32);
            conv_spec wg = {.n = 1, .c = 5, .h = 10, .w = 11, .k = 6, .r = 3, .s = 3,
                            .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a],
                            .clip = {-0.3f, 0.4f}, .wconst = 1};
            check(wg, "conv_winograd_f2", TOL_F32);
            check(wg, "conv_winograd_f4", TOL_F32);
        }
}

/* kiln.FusedConv's reference against act(conv + B + Z) in double. */
static void test_fused_reference(void **state) {
    (void)state;
    for (size_t a = 0; a < sizeof ACTS / sizeof *ACTS; a++) {
        conv_spec sp = {.n = 2, .c = 4, .h = 6, .w = 7, .k = 6, .r = 3, .s = 2, .group = 2,
                        .stride = {1, 2}, .pads = {1, 0, 0, 1}, .bias = 1, .z = 1,
                        .act = ACTS[a], .clip = {-0.25f, 0.5f}};
        ah_case c;
        build(&c, sp);
        spec_defaults(&sp);
        assert_int_equal(kiln__graph_finalize(c.g), KILN_OK);
        c.finalized = 1;
        kiln__select_opts so = {.reference = 1};
        kiln_tensor *out[1] = {0};
        const char *ran;
        ah_exec(&c, &so, 2, out, &ran);
        const float *x = kiln_tensor_data(c.in[0]), *w = kiln_tensor_data(c.in[1]);
        const float *b = kiln_tensor_data(c.in[2]), *z = kiln_tensor_data(c.in[3]);
        const float *y = kiln_tensor_data(out[0]);
        int64_t P = out_dim(sp.h, sp.r, 1, 1, 1, 0), Q = out_dim(sp.w, sp.s, 2, 1, 0, 1);
        int64_t cg = sp.c / sp.group, kg = sp.k / sp.group;
        kiln__act act = {.kind = (kiln__act_kind)a, .lo = -0.25f, .hi = 0.5f};
        for (int64_t n = 0; n < sp.n; n++)
            for (int64_t k = 0; k < sp.k; k++)
                for (int64_t p = 0; p < P; p++)
                    for (int64_t q = 0; q < Q; q++) {
                        double acc = b[k];
                        for (int64_t ci = 0; ci < cg; ci++)
                            for (int64_t r = 0; r < sp.r; r++)
                                for (int64_t s = 0; s < sp.s; s++) {
                                    int64_t ih = p - 1 + r, iw = q * 2 + s;
                                    if (ih < 0 || ih >= sp.h || iw < 0 || iw >= sp.w) continue;
                                    int64_t cin = (k / kg) * cg + ci;
                                    acc += (double)x[((n * sp.c + cin) * sp.h + ih) * sp.w + iw] *
                                           w[((k * cg + ci) * sp.r + r) * sp.s + s];
                                }
                        int64_t i = ((n * sp.k + k) * P + p) * Q + q;
                        double want = kiln__act_apply(&act, (float)(acc + z[i]));
                        if (fabs(y[i] - want) > 1e-5 * (1 + fabs(want)))
                            fail_msg("act %s: y[%lld] = %g, want %g", ACTS[a], (long long)i, y[i],
                                     want);
                    }
        kiln_tensor_free(out[0]);
        ah_case_free(&c);
    }
}

/* ---- NaN / Inf ---------------------------------------------------------------------- */

/* kiln.ConvGrad(dY, X, W) -> (dX, dW, dB) on conv_grad_gemm against the
 * reference kernel (src/cpu/ref/grad_conv.c), every output and each alone. */
static void test_conv_grad(void **state) {
    (void)state;
    static const conv_spec cases[] = {
        {.n = 2, .c = 4, .h = 9, .w = 8, .k = 6, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        {.n = 3, .c = 6, .h = 11, .w = 7, .k = 4, .r = 3, .s = 2, .group = 2, .stride = {2, 1},
         .dil = {1, 2}, .pads = {1, 0, 2, 1}},
        {.n = 2, .c = 8, .h = 5, .w = 6, .k = 5, .r = 1, .s = 1},                 /* direct */
        {.n = 1, .c = 3, .h = 13, .w = 13, .k = 2, .r = 5, .s = 5, .stride = {3, 3}},
        {.n = 2, .c = 6, .h = 7, .w = 7, .k = 6, .r = 3, .s = 3, .group = 6, .pads = {1, 1, 1, 1}},
        /* flat taps (Q = W) that wrap 3 and 1 columns at the left, 1 at the right */
        {.n = 2, .c = 3, .h = 6, .w = 10, .k = 4, .r = 3, .s = 3, .dil = {2, 2}, .pads = {2, 3, 2, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int outs = 0; outs < 4; outs++) { /* 0: all three; 1..3: output outs-1 alone */
            conv_spec sp = cases[i];
            spec_defaults(&sp);
            int64_t P = out_dim(sp.h, sp.r, sp.stride[0], sp.dil[0], sp.pads[0], sp.pads[2]);
            int64_t Q = out_dim(sp.w, sp.s, sp.stride[1], sp.dil[1], sp.pads[1], sp.pads[3]);
            int64_t yd[4] = {sp.n, sp.k, P, Q}, xd[4] = {sp.n, sp.c, sp.h, sp.w},
                    wd[4] = {sp.k, sp.c / sp.group, sp.r, sp.s};
            ah_case c;
            ah_case_init(&c, "ConvGrad", "kiln", 1, 3);
            ah_input(&c, ah_random(KILN_DTYPE_F32, 4, yd, &seed, -1, 1), 0);
            ah_input(&c, ah_random(KILN_DTYPE_F32, 4, xd, &seed, -1, 1), 0);
            ah_input(&c, ah_random(KILN_DTYPE_F32, 4, wd, &seed, -1, 1), 0);
            ah_attr_ints(&c, "strides", 2, sp.stride);
            ah_attr_ints(&c, "dilations", 2, sp.dil);
            ah_attr_ints(&c, "pads", 4, sp.pads);
            if (sp.group != 1) ah_attr_int(&c, "group", sp.group);
            if (outs) { /* only output outs-1: the graph's one output */
                int keep = c.g->nodes[c.node].out[outs - 1];
                for (int k = 0; k < 3; k++)
                    if (k != outs - 1) c.g->nodes[c.node].out[k] = -1;
                c.g->outputs[0] = keep;
                c.g->n_outputs = c.n_out = 1;
            }
            for (int t = 1; t <= 2; t++) ah_run_algo(&c, "conv_grad_gemm", KILN_PRECISION_FP32, t, TOL_F32);
            ah_case_free(&c);
        }
}

/* NaN and +-Inf in X reach the same outputs as in the reference. */
static void test_nonfinite(void **state) {
    (void)state;
    conv_spec specs[] = {
        {.n = 1, .c = 4, .h = 9, .w = 10, .k = 3, .r = 1, .s = 1, .bias = 1},
        {.n = 1, .c = 4, .h = 9, .w = 10, .k = 3, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        {.n = 1, .c = 4, .h = 9, .w = 70, .k = 4, .r = 3, .s = 3, .group = 4,
         .pads = {1, 1, 1, 1}, .bias = 1},
    };
    const char *algos[] = {"conv_1x1", "conv_im2col", "conv_depthwise"};
    for (int i = 0; i < 3; i++) {
        ah_case c;
        build(&c, specs[i]);
        float *x = kiln_tensor_data(c.in[0]);
        x[5] = NAN;
        x[40] = INFINITY;
        x[200] = -INFINITY;
        for (int t = 1; t <= 2; t++) ah_run_algo(&c, algos[i], KILN_PRECISION_FP32, t, TOL_F32);
        ah_case_free(&c);
    }
}

/* ---- the heuristic ----------------------------------------------------------------- */

/* The kiln conv algorithm (conv.def; other backends' algorithms such as
 * oneDNN's left out) with the lowest cost() for case c at `threads`, as the
 * planner ranks them; each one that takes the node must also match the
 * reference. */
static const char *cheapest(ah_case *c, int threads) {
    static const char *const mine[] = {"conv_1x1", "conv_im2col", "conv_depthwise",
                                       "conv_winograd_f2", "conv_winograd_f4"};
    assert_int_equal(kiln__graph_finalize(c->g), KILN_OK);
    c->finalized = 1;
    const kiln__node *nd = &c->g->nodes[c->node];
    int fused = strcmp(nd->op_type, "FusedConv") == 0;
    int op = kiln__op_find(nd->domain, nd->op_type);
    assert_true(op >= 0);
    kiln_tensor y;
    kiln_tensor *outs[1] = {&y};
    memset(&y, 0, sizeof y);
    kiln__kctx k = {.node = nd, .graph = c->g, .opset = 17, .n_in = c->n_in, .n_out = 1,
                    .in = c->in, .out = outs, .nth = 1, .nth_plan = threads};
    assert_int_equal(kiln__ops[op].infer(&k), KILN_OK);
    /* prepare sees only constants' data, as at plan time */
    void *data[AH_MAX_IO];
    for (int i = 0; i < c->n_in; i++)
        if (c->in[i]) {
            data[i] = c->in[i]->data;
            if (!c->constant[i]) c->in[i]->data = NULL;
        }
    const char *best = NULL;
    double best_cost = INFINITY;
    for (size_t i = 0; i < sizeof mine / sizeof *mine; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", fused ? "fused_" : "", mine[i]);
        const kiln__algo *a = kiln__algo_find(name);
        assert_non_null(a);
        k.kstate = NULL;
        k.scratch_bytes = 0;
        if (a->prepare(&k) != KILN_OK) continue;
        double cost = a->cost(&k);
        if (a->release) a->release(k.kstate);
        if (cost < best_cost) {
            best_cost = cost;
            best = a->name;
        }
    }
    for (int i = 0; i < c->n_in; i++)
        if (c->in[i]) c->in[i]->data = data[i];
    assert_non_null(best);
    ah_run_algo(c, best, KILN_PRECISION_FP32, threads, TOL_F32);
    return best;
}

static void expect_choice(conv_spec sp, int threads, const char *want) {
    ah_case c;
    build(&c, sp);
    const char *got = cheapest(&c, threads);
    if (strcmp(got, want) != 0)
        fail_msg("layer %lldx%lld %lld->%lld at %lldx%lld (group %lld), %d threads: chose %s, "
                 "expected %s",
                 (long long)sp.r, (long long)sp.s, (long long)sp.c, (long long)sp.k,
                 (long long)sp.h, (long long)sp.w, (long long)sp.group, threads, got, want);
    ah_case_free(&c);
}

/* ResNet-50 and MobileNetV2 layers at batch 1. */
static void test_heuristic(void **state) {
    (void)state;
    for (int t = 1; t <= 2; t++) {
        /* ResNet-50 */
        expect_choice((conv_spec){.n = 1, .c = 64, .h = 56, .w = 56, .k = 256, .r = 1, .s = 1,
                                  .bias = 1, .wconst = 1},
                      t, "conv_1x1");
        expect_choice((conv_spec){.n = 1, .c = 64, .h = 56, .w = 56, .k = 64, .r = 3, .s = 3,
                                  .pads = {1, 1, 1, 1}, .bias = 1, .wconst = 1},
                      t, "conv_winograd_f4");
        expect_choice((conv_spec){.n = 1, .c = 128, .h = 28, .w = 28, .k = 128, .r = 3, .s = 3,
                                  .pads = {1, 1, 1, 1}, .bias = 1, .wconst = 1},
                      t, "conv_winograd_f4");
        expect_choice((conv_spec){.n = 1, .c = 256, .h = 14, .w = 14, .k = 256, .r = 3, .s = 3,
                                  .pads = {1, 1, 1, 1}, .bias = 1, .wconst = 1},
                      t, "conv_winograd_f2");
        expect_choice((conv_spec){.n = 1, .c = 512, .h = 7, .w = 7, .k = 512, .r = 3, .s = 3,
                                  .pads = {1, 1, 1, 1}, .bias = 1, .wconst = 1},
                      t, "conv_winograd_f2");
        expect_choice((conv_spec){.n = 1, .c = 128, .h = 56, .w = 56, .k = 128, .r = 3, .s = 3,
                                  .stride = {2, 2}, .pads = {1, 1, 1, 1}, .bias = 1,
                                  .wconst = 1},
                      t, "conv_im2col");
        expect_choice((conv_spec){.n = 1, .c = 3, .h = 64, .w = 64, .k = 64, .r = 7, .s = 7,
                                  .stride = {2, 2}, .pads = {3, 3, 3, 3}, .bias = 1,
                                  .wconst = 1},
                      t, "conv_im2col");
        expect_choice((conv_spec){.n = 1, .c = 256, .h = 28, .w = 28, .k = 512, .r = 1, .s = 1,
                                  .stride = {2, 2}, .bias = 1, .wconst = 1},
                      t, "conv_1x1");
        /* MobileNetV2 */
        expect_choice((conv_spec){.n = 1, .c = 96, .h = 56, .w = 56, .k = 96, .r = 3, .s = 3,
                                  .group = 96, .pads = {1, 1, 1, 1}, .bias = 1, .wconst = 1},
                      t, "conv_depthwise");
        expect_choice((conv_spec){.n = 1, .c = 144, .h = 56, .w = 56, .k = 144, .r = 3, .s = 3,
                                  .group = 144, .stride = {2, 2}, .pads = {1, 1, 1, 1},
                                  .bias = 1, .wconst = 1},
                      t, "conv_depthwise");
        expect_choice((conv_spec){.n = 1, .c = 32, .h = 56, .w = 56, .k = 16, .r = 1, .s = 1,
                                  .bias = 1, .wconst = 1},
                      t, "conv_1x1");
        expect_choice((conv_spec){.n = 1, .c = 96, .h = 28, .w = 28, .k = 24, .r = 1, .s = 1,
                                  .bias = 1, .z = 1, .act = "Clip", .clip = {0, 6},
                                  .wconst = 1},
                      t, "fused_conv_1x1");
    }
}

/* ---- depthwise kernel paths ------------------------------------------------------ */

/* Depthwise spec: C channels (multiplier mult), H x W, k x k, stride, pads
 * (top, left, bottom, right). */
static conv_spec dw_spec(int64_t n, int64_t c, int64_t mult, int64_t h, int64_t w, int64_t k,
                         int64_t stride, int64_t p0, int64_t p1, int64_t p2, int64_t p3) {
    conv_spec sp = {.n = n, .c = c, .h = h, .w = w, .k = c * mult, .r = k, .s = k, .group = c,
                    .stride = {stride, stride}, .pads = {p0, p1, p2, p3}, .bias = 1,
                    .wconst = 1};
    return sp;
}

/* Every kernel of conv_depthwise.c by the geometry that selects it (on
 * AVX-512 CPUs; elsewhere all run the portable rows), at 1 and 2 threads:
 * flat over the input ("same" stride 1: 7x7, 14x14, 112x112, odd sizes,
 * 1x1, one plane cut in chunks on 2 threads), flat with column masks
 * (planes past the whole-plane table: 224x224, odd 150x141), flat over
 * phase planes (stride 2 "same": 112->56, 14->7, odd 13->7, stride 3, 5x5),
 * AVX-512 rows (no padding, stride 2 past the table, stride 2 and 3 whose
 * last column falls outside the phase planes: permutes and gathers). */
static void test_depthwise_paths(void **state) {
    (void)state;
    const conv_spec cases[] = {
        /* flat, direct, whole-plane masks */
        dw_spec(1, 24, 1, 7, 7, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 20, 1, 14, 14, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 3, 1, 112, 112, 3, 1, 1, 1, 1, 1),
        dw_spec(2, 5, 1, 17, 33, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 4, 1, 1, 1, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 3, 1, 5, 2, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 1, 1, 19, 21, 3, 1, 1, 1, 1, 1),  /* one plane: chunks on 2 threads */
        dw_spec(1, 6, 2, 9, 9, 3, 1, 1, 1, 1, 1),    /* channel multiplier 2 */
        dw_spec(1, 4, 1, 11, 12, 5, 1, 2, 2, 2, 2),  /* 5x5 */
        dw_spec(1, 4, 1, 10, 9, 3, 1, 2, 1, 0, 1),   /* taller top pad: Q == W, P != H */
        /* flat, direct, column masks */
        dw_spec(1, 2, 1, 224, 224, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 1, 1, 150, 141, 3, 1, 1, 1, 1, 1),
        /* flat over phase planes */
        dw_spec(1, 4, 1, 112, 112, 3, 2, 1, 1, 1, 1),
        dw_spec(1, 16, 1, 14, 14, 3, 2, 1, 1, 1, 1),
        dw_spec(2, 7, 1, 13, 13, 3, 2, 1, 1, 1, 1),
        dw_spec(1, 1, 1, 28, 28, 3, 2, 1, 1, 1, 1),  /* one plane: chunks, partial fills */
        dw_spec(1, 3, 2, 15, 20, 3, 2, 1, 1, 1, 1),
        dw_spec(1, 3, 1, 21, 22, 5, 2, 2, 2, 2, 2),
        dw_spec(1, 3, 1, 16, 17, 3, 3, 1, 1, 1, 1),
        dw_spec(1, 3, 1, 2, 2, 3, 2, 1, 1, 1, 1),
        /* AVX-512 rows */
        dw_spec(1, 5, 1, 9, 40, 3, 1, 0, 0, 0, 0),   /* valid: Q != W */
        dw_spec(1, 2, 1, 256, 256, 3, 2, 1, 1, 1, 1),
        dw_spec(1, 3, 1, 14, 14, 3, 2, 0, 0, 0, 0),  /* last column outside the phases */
        dw_spec(1, 3, 1, 16, 17, 3, 3, 0, 1, 2, 0),  /* stride 3, phased */
        dw_spec(1, 3, 1, 20, 70, 5, 3, 0, 1, 2, 0),  /* stride 3 past the phases: gathers */
        dw_spec(1, 3, 2, 9, 37, 3, 2, 0, 0, 1, 1),
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check(cases[i], "conv_depthwise", TOL_F32);
    conv_spec dil = dw_spec(1, 3, 1, 15, 15, 3, 1, 2, 2, 2, 2);
    dil.dil[0] = dil.dil[1] = 2; /* flat with dilation */
    check(dil, "conv_depthwise", TOL_F32);
    dil.stride[0] = dil.stride[1] = 2; /* phased with dilation */
    check(dil, "conv_depthwise", TOL_F32);
    conv_spec nob = dw_spec(1, 8, 1, 7, 7, 3, 1, 1, 1, 1, 1);
    nob.bias = 0;
    check(nob, "conv_depthwise", TOL_F32);
}

/* kiln.FusedConv on every depthwise path: each activation, with and without
 * bias and the residual Z (MobileNetV2's Clip(0, 6) among them). */
static void test_depthwise_fused_paths(void **state) {
    (void)state;
    const conv_spec shapes[] = {
        dw_spec(1, 10, 1, 7, 7, 3, 1, 1, 1, 1, 1),      /* flat */
        dw_spec(1, 2, 1, 224, 200, 3, 1, 1, 1, 1, 1),   /* flat, column masks */
        dw_spec(2, 6, 1, 14, 14, 3, 2, 1, 1, 1, 1),     /* phased */
        dw_spec(1, 4, 1, 9, 40, 3, 1, 0, 0, 0, 0),      /* rows */
        dw_spec(1, 3, 1, 20, 70, 5, 3, 0, 1, 2, 0),     /* rows, gathers */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (size_t a = 0; a < sizeof ACTS / sizeof *ACTS; a++)
            for (int variant = 0; variant < 3; variant++) {
                conv_spec sp = shapes[i];
                sp.bias = variant != 1;
                sp.z = variant != 0;
                sp.act = ACTS[a];
                sp.clip[0] = a == 2 && variant == 2 ? 0.0f : -0.3f;
                sp.clip[1] = a == 2 && variant == 2 ? 6.0f : 0.4f;
                check(sp, "conv_depthwise", TOL_F32);
            }
}

/* NaN / Inf parity on every depthwise path: in X (spread to every output
 * whose taps reach it), and in W, where the reference skips the taps that
 * fall in the padding (so a non-finite corner tap leaves the border outputs
 * finite): the kernels must skip them too, not multiply them by zero. */
static void test_depthwise_nonfinite(void **state) {
    (void)state;
    const conv_spec shapes[] = {
        dw_spec(1, 4, 1, 7, 7, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 4, 1, 224, 200, 3, 1, 1, 1, 1, 1),
        dw_spec(1, 4, 1, 14, 14, 3, 2, 1, 1, 1, 1),
        dw_spec(1, 4, 1, 9, 40, 3, 1, 0, 1, 0, 1),
        dw_spec(1, 4, 1, 20, 70, 5, 3, 1, 1, 2, 0),
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int where = 0; where < 2; where++) {
            conv_spec sp = shapes[i]; /* 4 channels: planes 0..3 below */
            sp.act = "Clip";
            sp.clip[0] = 0.0f;
            sp.clip[1] = 6.0f;
            sp.z = 1;
            ah_case c;
            build(&c, sp);
            if (where == 0) {
                float *x = kiln_tensor_data(c.in[0]);
                int64_t hw = sp.h * sp.w;
                x[0] = NAN;                 /* corner of plane 0 */
                x[hw + sp.w + 3] = INFINITY; /* plane 1 */
                x[2 * hw + hw / 2] = -INFINITY;
                x[3 * hw + hw - 1] = NAN;   /* last element of plane 3 */
            } else {
                float *w = kiln_tensor_data(c.in[1]);
                int64_t taps = sp.r * sp.s;
                w[0] = INFINITY;                  /* channel 0, tap (0, 0) */
                w[2 * taps - 1] = NAN;            /* channel 1, the last tap */
                w[2 * taps + sp.s] = -INFINITY;   /* channel 2, tap (1, 0) */
            }
            for (int t = 1; t <= 2; t++)
                ah_run_algo(&c, "fused_conv_depthwise", KILN_PRECISION_FP32, t, TOL_F32);
            ah_case_free(&c);
        }
}

/* Each depthwise kernel called directly on one plane against the portable
 * rows (kiln__dw_rows_generic, which the planner never picks on AVX-512 or
 * AVX2 CPUs): AVX-512 rows, flat over the input with the whole-plane table
 * and with column masks, flat over phase planes; AVX2 over padded phase
 * planes, whole planes and row ranges; with the residual and activations,
 * NaN / Inf in the input; the guard floats after the output (and, for row
 * ranges, around the rows written) stay untouched. */
static void test_depthwise_kernels(void **state) {
    (void)state;
#ifdef KILN__DW_X86
    const int avx512 = kiln__cpu_has_avx512f();
    const int avx2 = kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX2); /* and FMA */
    if (!avx512 && !avx2) skip();
    /* H, W, R(=S), stride, dilation, pad top, left, bottom, right */
    static const int64_t geo[][9] = {
        {7, 7, 3, 1, 1, 1, 1, 1, 1},    {14, 14, 3, 2, 1, 1, 1, 1, 1}, {13, 13, 3, 2, 1, 1, 1, 1, 1},
        {17, 33, 3, 1, 1, 1, 1, 1, 1},  {30, 37, 5, 2, 1, 2, 2, 2, 2}, {9, 40, 3, 1, 1, 0, 0, 0, 0},
        {20, 70, 5, 3, 1, 0, 1, 2, 0},  {16, 17, 3, 3, 1, 1, 1, 1, 1}, {15, 15, 3, 2, 2, 2, 2, 2, 2},
        {1, 1, 3, 1, 1, 1, 1, 1, 1},    {2, 2, 3, 2, 1, 1, 1, 1, 1},   {12, 100, 4, 1, 1, 2, 1, 1, 2},
    };
    static const kiln__act acts[] = {{KILN__ACT_NONE, 0, 0}, {KILN__ACT_CLIP, 0.0f, 6.0f},
                                     {KILN__ACT_SILU, 0, 0}, {KILN__ACT_GELU, 0, 0}};
    enum { MAXN = 4096, GUARD = 32 };
    static float x[MAXN], z[MAXN], y0[MAXN + GUARD], y1[MAXN + GUARD], ph[4 * MAXN],
        pad[8 * MAXN];
    float w[25];
    const float *rows[4 * 5];
    for (size_t gi = 0; gi < sizeof geo / sizeof *geo; gi++)
        for (size_t ai = 0; ai < sizeof acts / sizeof *acts; ai++) {
            const int64_t *e = geo[gi];
            kiln__conv2d g = {.H = e[0], .W = e[1], .R = e[2], .S = e[2], .sh = e[3], .sw = e[3],
                              .dh = e[4], .dw = e[4], .ph = e[5], .pw = e[6], .act = acts[ai]};
            g.P = out_dim(g.H, g.R, g.sh, g.dh, e[5], e[7]);
            g.Q = out_dim(g.W, g.S, g.sw, g.dw, e[6], e[8]);
            int64_t ranges[10], PQ = g.P * g.Q, HW = g.H * g.W;
            assert_true(PQ <= MAXN && HW <= MAXN);
            kiln__dw_geom d;
            kiln__dw_geom_init(&d, &g, ranges);
            for (int64_t i = 0; i < HW; i++) x[i] = (float)((i * 37 + gi * 11) % 23) / 7.0f - 1.5f;
            for (int64_t i = 0; i < PQ; i++) z[i] = (float)((i * 13) % 17) / 9.0f - 0.9f;
            for (int64_t i = 0; i < g.R * g.S; i++) w[i] = (float)((i * 7 + ai) % 11) / 5.0f - 1.0f;
            x[HW / 3] = NAN;
            x[HW - 1] = INFINITY;
            for (int with_z = 0; with_z < 2; with_z++) {
                kiln__dw_plane pl = {.x = x, .w = w, .bias = 0.25f, .z = with_z ? z : NULL,
                                     .y = y0, .rows = rows};
                kiln__dw_rows_generic(&d, &pl, 0, g.P);
                for (int kind = 0; kind < 5; kind++) {
                    if (kind < 4 ? !avx512 : !avx2) continue;
                    kiln__dw_geom dk = d;
                    uint16_t *table = NULL;
                    int64_t tapoff[25], units = (PQ + 15) / 16;
                    kiln__dw_plane pk = pl;
                    pk.y = y1;
                    if (kind == 4) { /* AVX2, padded phase planes */
                        kiln__dw_pad_geom(&dk);
                        assert_true(kiln__dw_pad_scratch_len(&dk) <= 8 * MAXN);
                        kiln__dw_tapoffs(&dk, tapoff);
                        dk.tapoff = tapoff;
                        pk.buf = pad;
                        for (int64_t i = 0; i < 8 * MAXN; i++) pad[i] = NAN; /* stale scratch */
                        kiln__dw_plane_fn fn = kiln__dw_pad_avx2_pick(&dk);
                        /* rows [p0, p1) alone write only their rows */
                        const int64_t p0 = g.P / 3, p1 = g.P - g.P / 4;
                        for (int64_t i = 0; i < PQ + GUARD; i++) y1[i] = 1234.5f;
                        fn(&dk, &pk, p0, p1);
                        for (int64_t i = 0; i < PQ + GUARD; i++) {
                            int inside = i >= p0 * g.Q && i < p1 * g.Q;
                            if (!inside && y1[i] != 1234.5f)
                                fail_msg("geometry %zu: rows [%lld, %lld) wrote y[%lld]", gi,
                                         (long long)p0, (long long)p1, (long long)i);
                        }
                        fn(&dk, &pk, 0, p0);
                        fn(&dk, &pk, p1, g.P);
                    } else if (kind == 0) { /* AVX-512 rows */
                        table = malloc((size_t)kiln__dw_row_masks_len(g.Q, g.S) * 2);
                        kiln__dw_row_masks(&dk, table);
                        dk.vmask = table;
                        units = g.P;
                    } else if (kind == 3) { /* phase planes */
                        dk.phased = 1;
                        dk.Hp = (g.H + g.sh - 1) / g.sh;
                        if (!kiln__dw_phase_ok(&dk) || kiln__dw_phase_len(&dk) > 4 * MAXN) continue;
                        kiln__dw_phase_fill_avx512(&dk, x, ph, 0, g.H);
                        pk.x = ph;
                    } else if (!kiln__dw_flat_ok(&d)) {
                        continue;
                    }
                    if (kind == 1 || kind == 3) { /* whole-plane table */
                        table = malloc((size_t)kiln__dw_flat_tapmasks_len(&dk) * 2);
                        kiln__dw_flat_tapmasks(&dk, table);
                        kiln__dw_tapoffs(&dk, tapoff);
                        dk.tapmask = table;
                        dk.tapoff = tapoff;
                    } else if (kind == 2) { /* column masks */
                        dk.period = kiln__dw_flat_period(g.Q);
                        table = malloc((size_t)(dk.period * g.S) * 2);
                        kiln__dw_flat_masks(&dk, table);
                        dk.colmask = table;
                    }
                    if (kind < 4) {
                        for (int i = 0; i < GUARD; i++) y1[PQ + i] = 1234.5f;
                        kiln__dw_plane_fn fn = kind == 0 ? kiln__dw_rows_avx512_pick(&dk)
                                                         : kiln__dw_flat_avx512_pick(&dk);
                        fn(&dk, &pk, 0, units);
                        free(table);
                    }
                    for (int i = 0; i < GUARD; i++)
                        if (y1[PQ + i] != 1234.5f)
                            fail_msg("geometry %zu kernel %d: wrote past the plane", gi, kind);
                    for (int64_t i = 0; i < PQ; i++) {
                        int same = isnan(y0[i]) ? isnan(y1[i])
                                   : y0[i] == y1[i] ||
                                         fabsf(y0[i] - y1[i]) <= 1e-5f * (1 + fabsf(y0[i]));
                        if (!same)
                            fail_msg("geometry %zu act %zu z %d kernel %d: y[%lld] = %g, portable %g",
                                     gi, ai, with_z, kind, (long long)i, y1[i], y0[i]);
                    }
                }
            }
        }
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_1x1),
        cmocka_unit_test(test_conv_im2col),
        cmocka_unit_test(test_conv_depthwise),
        cmocka_unit_test(test_depthwise_rows),
        cmocka_unit_test(test_copy_stride2),
        cmocka_unit_test(test_winograd_f2),
        cmocka_unit_test(test_winograd_f4),
        cmocka_unit_test(test_winograd_refuses),
        cmocka_unit_test(test_fused),
        cmocka_unit_test(test_fused_reference),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_heuristic),
        cmocka_unit_test(test_depthwise_paths),
        cmocka_unit_test(test_depthwise_fused_paths),
        cmocka_unit_test(test_depthwise_nonfinite),
        cmocka_unit_test(test_depthwise_kernels),
        cmocka_unit_test(test_conv_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
