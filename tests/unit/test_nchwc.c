/* tests/unit/test_nchwc.c: the blocked layout ops (src/ops/nchwc.h).
 *
 * The reorders' reference kernels against the layout's definition (element
 * (n, c, h, w) at [n][c/16][h][w][c%16], padding lanes zero) and back; the
 * AVX-512 algorithms (conv_nchwc, reorder_nchwc, reorder_nchw) against the
 * reference kernels on fresh random inputs at 1 and 2 threads: channel
 * counts that leave a partial last block, rows longer and shorter than a
 * tile, edge columns, asymmetric padding, strides 1, 2, 3, dilation, the
 * flattened 1x1 case, a plain (NCHW) input, depthwise, bias / residual /
 * every activation, one and two output blocks per tile, grouped
 * convolutions; pool_nchwc. The padding lanes
 * of the blocked inputs hold random values: nothing may read them.
 * ConvNCHWc's reference against Conv's runs in test_passes (the nchwc pass
 * on whole graphs, reference kernels on both sides). */
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
#include "cpu/kernels/gemm.h"
#include "ops/nchwc.h"

static unsigned seed = 777;

static int have_fast(void) {
    if (kiln__cpu_has_avx512f()) return 1;
    printf("  (no AVX-512F here: the blocked layout algorithms do not run)\n");
    return 0;
}

/* ---- reorders ---------------------------------------------------------------- */

static void reorder_case(ah_case *c, int to_blocked, const int64_t *plain_dims) {
    const int64_t C = plain_dims[1];
    if (to_blocked) {
        ah_case_init(c, "ReorderNCHWc", "kiln", 1, 1);
        ah_input(c, ah_random(KILN_DTYPE_F32, 4, plain_dims, &seed, -1, 1), 0);
    } else {
        ah_case_init(c, "ReorderNCHW", "kiln", 1, 1);
        const int64_t bd[5] = {plain_dims[0], kiln__nchwc_blocks(C), plain_dims[2], plain_dims[3], 16};
        ah_input(c, ah_random(KILN_DTYPE_F32, 5, bd, &seed, -1, 1), 0);
        ah_attr_int(c, "channels", C);
    }
}

/* Reference ReorderNCHWc then ReorderNCHW by the definition. */
static void test_reorder_reference(void **state) {
    (void)state;
    const int64_t d[4] = {2, 20, 3, 5}, C = 20, HW = 15;
    ah_case c;
    reorder_case(&c, 1, d);
    assert_int_equal(kiln__graph_finalize(c.g), KILN_OK);
    c.finalized = 1;
    kiln__select_opts ref = {.reference = 1};
    kiln_tensor *out[1] = {0};
    const char *ran;
    ah_exec(&c, &ref, 2, out, &ran);
    assert_int_equal(out[0]->ndim, 5);
    assert_int_equal(out[0]->dims[1], 2);
    const float *x = kiln_tensor_data(c.in[0]), *y = kiln_tensor_data(out[0]);
    for (int64_t n = 0; n < 2; n++)
        for (int64_t ch = 0; ch < 32; ch++)
            for (int64_t i = 0; i < HW; i++) {
                float want = ch < C ? x[(n * C + ch) * HW + i] : 0.0f;
                assert_true(y[((n * 2 + ch / 16) * HW + i) * 16 + ch % 16] == want);
            }
    /* and back */
    ah_case b;
    ah_case_init(&b, "ReorderNCHW", "kiln", 1, 1);
    ah_input(&b, out[0], 0);
    ah_attr_int(&b, "channels", C);
    assert_int_equal(kiln__graph_finalize(b.g), KILN_OK);
    b.finalized = 1;
    kiln_tensor *back[1] = {0};
    ah_exec(&b, &ref, 1, back, &ran);
    assert_int_equal(back[0]->ndim, 4);
    for (int64_t k = 0; k < 2 * C * HW; k++) assert_true(((float *)kiln_tensor_data(back[0]))[k] == x[k]);
    kiln_tensor_free(back[0]);
    ah_case_free(&b);
    ah_case_free(&c);
}

static void test_reorders(void **state) {
    (void)state;
    if (!have_fast()) return;
    static const int64_t shapes[][4] = {{1, 16, 4, 4}, {2, 20, 5, 7}, {1, 3, 17, 1}, {1, 33, 9, 9}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int dir = 0; dir < 2; dir++) {
            ah_case c;
            reorder_case(&c, dir, shapes[i]);
            for (int t = 1; t <= 2; t++)
                ah_run_algo(&c, dir ? "reorder_nchwc" : "reorder_nchw", KILN_PRECISION_FP32, t, 0);
            ah_case_free(&c);
        }
}

/* ---- ConvNCHWc --------------------------------------------------------------- */

typedef struct spec {
    int64_t n, c, h, w, k, r, s;
    int64_t stride[2], dil[2], pads[4];
    int depthwise, plain, bias, z;
    const char *act;
    int64_t group; /* grouped (not depthwise): > 1 */
} spec;

static int64_t out_dim(int64_t in, int64_t k, int64_t s, int64_t d, int64_t p0, int64_t p1) {
    return (in + p0 + p1 - ((k - 1) * d + 1)) / s + 1;
}

/* Activation attribute attr (and attr_params: Clip(-0.3, 0.4)) of case c. */
static void set_act(ah_case *c, const char *attr, const char *act) {
    if (!act || !act[0]) return;
    ah_attr_string(c, attr, act);
    if (strcmp(act, "Clip") == 0) {
        char params[64];
        snprintf(params, sizeof params, "%s_params", attr);
        const float clip[2] = {-0.3f, 0.4f};
        ah_attr_floats(c, params, 2, clip);
    }
}

/* A ConvNCHWc case of sp (random inputs; padding lanes of X and Z random). */
static void conv_case(ah_case *c, spec sp) {
    for (int i = 0; i < 2; i++) {
        if (!sp.stride[i]) sp.stride[i] = 1;
        if (!sp.dil[i]) sp.dil[i] = 1;
    }
    const int64_t P = out_dim(sp.h, sp.r, sp.stride[0], sp.dil[0], sp.pads[0], sp.pads[2]);
    const int64_t Q = out_dim(sp.w, sp.s, sp.stride[1], sp.dil[1], sp.pads[1], sp.pads[3]);
    ah_case_init(c, "ConvNCHWc", "kiln", 1, 1);
    const int64_t xb[5] = {sp.n, kiln__nchwc_blocks(sp.c), sp.h, sp.w, 16}, xp[4] = {sp.n, sp.c, sp.h, sp.w};
    const int64_t wd[4] = {sp.k, sp.depthwise ? 1 : sp.group > 1 ? sp.c / sp.group : sp.c, sp.r,
                           sp.s};
    const int64_t bd[1] = {sp.k};
    const int64_t zd[5] = {sp.n, kiln__nchwc_blocks(sp.k), P, Q, 16};
    ah_input(c, sp.plain ? ah_random(KILN_DTYPE_F32, 4, xp, &seed, -1, 1)
                          : ah_random(KILN_DTYPE_F32, 5, xb, &seed, -1, 1), 0);
    ah_input(c, ah_random(KILN_DTYPE_F32, 4, wd, &seed, -1, 1), 1);
    if (sp.bias || sp.z) ah_input(c, sp.bias ? ah_random(KILN_DTYPE_F32, 1, bd, &seed, -1, 1) : NULL, 1);
    if (sp.z) ah_input(c, ah_random(KILN_DTYPE_F32, 5, zd, &seed, -1, 1), 0);
    ah_attr_ints(c, "strides", 2, sp.stride);
    ah_attr_ints(c, "dilations", 2, sp.dil);
    ah_attr_ints(c, "pads", 4, sp.pads);
    if (sp.depthwise) ah_attr_int(c, "group", sp.c);
    if (sp.group > 1) ah_attr_int(c, "group", sp.group);
    if (sp.plain) ah_attr_int(c, "input_blocked", 0);
    set_act(c, "activation", sp.act);
}

/* algo in a session of precision prec against the reference at 1 and 2
 * threads, normalized error <= tol. */
static void conv_check_prec(spec sp, const char *algo, kiln_precision prec, double tol) {
    ah_case c;
    conv_case(&c, sp);
    for (int t = 1; t <= 2; t++) ah_run_algo(&c, algo, prec, t, tol);
    ah_case_free(&c);
}

static void conv_check_algo(spec sp, const char *algo, double tol) {
    conv_check_prec(sp, algo, KILN_PRECISION_FP32, tol);
}

static void conv_check(spec sp) { conv_check_algo(sp, "conv_nchwc", 1e-5); }

static const char *const ACTS[] = {"", "Relu", "Clip", "Silu", "Gelu", "GeluTanh"};
#define NACT (sizeof ACTS / sizeof *ACTS)

static void test_conv(void **state) {
    (void)state;
    if (!have_fast()) return;
    for (size_t a = 0; a < NACT; a++) {
        const int bias = a % 2 == 0, z = a % 3 != 1;
        /* 1x1 flattened: 3 input blocks (last of 8), output pairs 2 + 1 block of 2 */
        conv_check((spec){.n = 2, .c = 40, .h = 5, .w = 7, .k = 50, .r = 1, .s = 1, .bias = bias,
                          .z = z, .act = ACTS[a]});
        /* 3x3 "same": interior tiles of 14 and a remainder, edge columns */
        conv_check((spec){.n = 1, .c = 16, .h = 6, .w = 33, .k = 32, .r = 3, .s = 3,
                          .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]});
        /* stride 2, asymmetric padding, one output block of 17 channels... two blocks */
        conv_check((spec){.n = 2, .c = 20, .h = 11, .w = 13, .k = 17, .r = 3, .s = 3,
                          .stride = {2, 2}, .pads = {1, 0, 1, 2}, .bias = bias, .z = z,
                          .act = ACTS[a]});
        /* stride 3, dilation 2, rectangular kernel, one block */
        conv_check((spec){.n = 1, .c = 7, .h = 14, .w = 19, .k = 9, .r = 3, .s = 2,
                          .stride = {3, 3}, .dil = {2, 2}, .pads = {2, 1, 0, 3}, .bias = bias,
                          .z = z, .act = ACTS[a]});
        /* plain NCHW input (the first layer): 7x7 stride 2 */
        conv_check((spec){.n = 1, .c = 3, .h = 20, .w = 21, .k = 24, .r = 7, .s = 7,
                          .stride = {2, 2}, .pads = {3, 3, 3, 3}, .plain = 1, .bias = bias, .z = z,
                          .act = ACTS[a]});
        /* 1x1 stride 2 (not flattened) */
        conv_check((spec){.n = 1, .c = 32, .h = 9, .w = 9, .k = 48, .r = 1, .s = 1,
                          .stride = {2, 2}, .bias = bias, .z = z, .act = ACTS[a]});
        /* depthwise: stride 1 and 2, 3x3 and 5x5, partial last block */
        conv_check((spec){.n = 2, .c = 40, .h = 9, .w = 20, .k = 40, .r = 3, .s = 3,
                          .pads = {1, 1, 1, 1}, .depthwise = 1, .bias = bias, .z = z,
                          .act = ACTS[a]});
        conv_check((spec){.n = 1, .c = 24, .h = 12, .w = 11, .k = 24, .r = 3, .s = 3,
                          .stride = {2, 2}, .pads = {1, 1, 1, 1}, .depthwise = 1, .bias = bias,
                          .z = z, .act = ACTS[a]});
        conv_check((spec){.n = 1, .c = 16, .h = 7, .w = 30, .k = 16, .r = 5, .s = 5,
                          .stride = {1, 3}, .pads = {2, 2, 2, 2}, .depthwise = 1, .bias = bias,
                          .z = z, .act = ACTS[a]});
        /* grouped: groups inside blocks and across them, pairs whose blocks
         * read the same or different input blocks, a channel multiplier */
        conv_check((spec){.n = 2, .c = 68, .h = 5, .w = 6, .k = 68, .r = 1, .s = 1, .group = 4,
                          .bias = bias, .z = z, .act = ACTS[a]});
        conv_check((spec){.n = 1, .c = 272, .h = 3, .w = 5, .k = 68, .r = 1, .s = 1, .group = 4,
                          .bias = bias, .z = z, .act = ACTS[a]});
        conv_check((spec){.n = 1, .c = 48, .h = 9, .w = 8, .k = 96, .r = 3, .s = 3, .group = 3,
                          .stride = {2, 2}, .pads = {1, 1, 1, 1}, .bias = bias, .z = z,
                          .act = ACTS[a]});
        conv_check((spec){.n = 1, .c = 40, .h = 4, .w = 17, .k = 20, .r = 1, .s = 3, .group = 2,
                          .pads = {0, 1, 0, 1}, .bias = bias, .z = z, .act = ACTS[a]});
        conv_check((spec){.n = 1, .c = 16, .h = 6, .w = 6, .k = 32, .r = 3, .s = 3, .group = 16,
                          .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]});
        /* narrow groups: 4 and 8 input channels, several groups per block */
        conv_check((spec){.n = 2, .c = 16, .h = 7, .w = 9, .k = 16, .r = 3, .s = 3, .group = 4,
                          .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]});
        conv_check((spec){.n = 1, .c = 40, .h = 5, .w = 6, .k = 40, .r = 3, .s = 3, .group = 5,
                          .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]});
    }
}

/* conv_nchwc_bf16 (bf16 products, f32 sums) in a bf16 session, within the
 * bf16 bound (1e-2 normalized): the group-1 blocked cases of test_conv; and
 * conv_nchwc_winograd_f2_bf16. */
static void test_conv_bf16(void **state) {
    (void)state;
    if (!have_fast()) return;
    if (!kiln__gemm_compute_supported(KILN__GEMM_BF16)) {
        printf("  (no AVX512_BF16 here: conv_nchwc_bf16 does not run)\n");
        return;
    }
    for (size_t a = 0; a < NACT; a++) {
        const int bias = a % 2 == 0, z = a % 3 != 1;
        const char *al = "conv_nchwc_bf16";
        conv_check_prec((spec){.n = 2, .c = 40, .h = 5, .w = 7, .k = 50, .r = 1, .s = 1,
                               .bias = bias, .z = z, .act = ACTS[a]},
                        al, KILN_PRECISION_BF16, 1e-2);
        conv_check_prec((spec){.n = 1, .c = 16, .h = 6, .w = 33, .k = 32, .r = 3, .s = 3,
                               .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]},
                        al, KILN_PRECISION_BF16, 1e-2);
        conv_check_prec((spec){.n = 2, .c = 21, .h = 11, .w = 13, .k = 17, .r = 3, .s = 3,
                               .stride = {2, 2}, .pads = {1, 0, 1, 2}, .bias = bias, .z = z,
                               .act = ACTS[a]},
                        al, KILN_PRECISION_BF16, 1e-2);
        conv_check_prec((spec){.n = 1, .c = 7, .h = 14, .w = 19, .k = 9, .r = 3, .s = 2,
                               .stride = {3, 3}, .dil = {2, 2}, .pads = {2, 1, 0, 3},
                               .bias = bias, .z = z, .act = ACTS[a]},
                        al, KILN_PRECISION_BF16, 1e-2);
        conv_check_prec((spec){.n = 1, .c = 32, .h = 9, .w = 9, .k = 48, .r = 1, .s = 1,
                               .stride = {2, 2}, .bias = bias, .z = z, .act = ACTS[a]},
                        al, KILN_PRECISION_BF16, 1e-2);
        /* Winograd F2 on the bf16 products (measured 3.8e-3; with Clip 4x
         * as much, see test_winograd) */
        const char *wf = "conv_nchwc_winograd_f2_bf16";
        const double wtol = 1e-2 * (strcmp(ACTS[a], "Clip") == 0 ? 4 : 1);
        conv_check_prec((spec){.n = 2, .c = 40, .h = 9, .w = 13, .k = 50, .r = 3, .s = 3,
                               .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]},
                        wf, KILN_PRECISION_BF16, wtol);
        conv_check_prec((spec){.n = 3, .c = 256, .h = 9, .w = 9, .k = 256, .r = 3, .s = 3,
                               .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]},
                        wf, KILN_PRECISION_BF16, wtol);
    }
}

/* Winograd F2 and F4 in the blocked layout (f32), normalized error bounds
 * against the reference (measured: F2 2e-7..1e-6, F4 6e-7..3.3e-6, growing
 * with C; with Clip(-0.3, 0.4) 4x as much, most outputs being clipped to
 * the bounds, so the norm of the reference is small);
 * tiles cut by the output's edge, blocks of tiles across images, several
 * blocks and chunks of output pairs, partial channel blocks on both sides,
 * asymmetric and no padding. */
static void test_winograd(void **state) {
    (void)state;
    if (!have_fast()) return;
    static const struct { const char *algo; double tol; } algos[] = {
        {"conv_nchwc_winograd_f2", 1.5e-6}, {"conv_nchwc_winograd_f4", 5e-6}};
    for (size_t i = 0; i < 2; i++)
        for (size_t a = 0; a < NACT; a++) {
            const int bias = a % 2 == 0, z = a % 3 != 1;
            const char *al = algos[i].algo;
            const double tol = algos[i].tol * (strcmp(ACTS[a], "Clip") == 0 ? 4 : 1);
            conv_check_algo((spec){.n = 2, .c = 40, .h = 9, .w = 13, .k = 50, .r = 3, .s = 3,
                                   .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]},
                            al, tol);
            conv_check_algo((spec){.n = 3, .c = 20, .h = 7, .w = 7, .k = 17, .r = 3, .s = 3,
                                   .pads = {0, 1, 2, 0}, .bias = bias, .z = z, .act = ACTS[a]},
                            al, tol);
            conv_check_algo((spec){.n = 1, .c = 64, .h = 30, .w = 29, .k = 64, .r = 3, .s = 3,
                                   .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]},
                            al, tol);
            conv_check_algo((spec){.n = 3, .c = 256, .h = 9, .w = 9, .k = 256, .r = 3, .s = 3,
                                   .pads = {1, 1, 1, 1}, .bias = bias, .z = z, .act = ACTS[a]},
                            al, tol);
            conv_check_algo((spec){.n = 1, .c = 16, .h = 5, .w = 6, .k = 16, .r = 3, .s = 3,
                                   .bias = bias, .z = z, .act = ACTS[a]},
                            al, tol);
        }
}

/* Layers Winograd does not compute: it refuses them (the planner then
 * takes conv_nchwc); and conv_nchwc_bf16 outside bf16 sessions. */
static void test_winograd_refuses(void **state) {
    (void)state;
    if (!have_fast()) return;
    static const spec cases[] = {
        {.n = 1, .c = 16, .h = 9, .w = 9, .k = 16, .r = 3, .s = 3, .stride = {2, 2}},
        {.n = 1, .c = 16, .h = 9, .w = 9, .k = 16, .r = 3, .s = 3, .dil = {2, 2}},
        {.n = 1, .c = 16, .h = 9, .w = 9, .k = 16, .r = 5, .s = 5},
        {.n = 1, .c = 16, .h = 9, .w = 9, .k = 16, .r = 3, .s = 3, .depthwise = 1},
        {.n = 1, .c = 32, .h = 9, .w = 9, .k = 32, .r = 3, .s = 3, .group = 2},
        {.n = 1, .c = 3, .h = 9, .w = 9, .k = 16, .r = 3, .s = 3, .plain = 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int f = 0; f < 4; f++) {
            /* the bf16 ones: refused in this fp32 session whatever the layer */
            static const char *const names[] = {"conv_nchwc_winograd_f2", "conv_nchwc_winograd_f4",
                                                "conv_nchwc_bf16", "conv_nchwc_winograd_f2_bf16"};
            const char *name = names[f];
            ah_case c;
            conv_case(&c, cases[i]);
            assert_int_equal(kiln__graph_finalize(c.g), KILN_OK);
            c.finalized = 1;
            kiln__select_opts so = {.force_algo = name};
            kiln_tensor *out[1] = {0};
            const char *ran;
            ah_exec(&c, &so, 1, out, &ran);
            if (strcmp(ran, name) == 0) fail_msg("%s took case %zu, which it should refuse", name, i);
            kiln_tensor_free(out[0]);
            ah_case_free(&c);
        }
}

/* ---- ConvDwNCHWc ------------------------------------------------------------- */

typedef struct dw_spec {
    int64_t n, c, h, w, k, r, s;
    int64_t stride[2], dil[2], pads[4];
    int64_t k3;                    /* projection to k3 channels, or 0 */
    int z;                         /* with a projection: a residual */
    const char *act1, *act2, *act3; /* pointwise, depthwise, projection */
} dw_spec;

/* A ConvDwNCHWc case of sp (random inputs and weights; padding lanes of X
 * random). */
static void convdw_case(ah_case *c, dw_spec sp) {
    for (int i = 0; i < 2; i++) {
        if (!sp.stride[i]) sp.stride[i] = 1;
        if (!sp.dil[i]) sp.dil[i] = 1;
    }
    ah_case_init(c, "ConvDwNCHWc", "kiln", 1, 1);
    const int64_t xd[5] = {sp.n, kiln__nchwc_blocks(sp.c), sp.h, sp.w, 16};
    const int64_t w1[4] = {sp.k, sp.c, 1, 1}, w2[4] = {sp.k, 1, sp.r, sp.s}, bd[1] = {sp.k};
    ah_input(c, ah_random(KILN_DTYPE_F32, 5, xd, &seed, -1, 1), 0);
    ah_input(c, ah_random(KILN_DTYPE_F32, 4, w1, &seed, -1, 1), 1);
    ah_input(c, ah_random(KILN_DTYPE_F32, 1, bd, &seed, -1, 1), 1);
    ah_input(c, ah_random(KILN_DTYPE_F32, 4, w2, &seed, -1, 1), 1);
    ah_input(c, ah_random(KILN_DTYPE_F32, 1, bd, &seed, -1, 1), 1);
    if (sp.k3) {
        const int64_t w3[4] = {sp.k3, sp.k, 1, 1}, b3[1] = {sp.k3};
        const int64_t P = out_dim(sp.h, sp.r, sp.stride[0], sp.dil[0], sp.pads[0], sp.pads[2]);
        const int64_t Q = out_dim(sp.w, sp.s, sp.stride[1], sp.dil[1], sp.pads[1], sp.pads[3]);
        const int64_t zd[5] = {sp.n, kiln__nchwc_blocks(sp.k3), P, Q, 16};
        ah_input(c, ah_random(KILN_DTYPE_F32, 4, w3, &seed, -1, 1), 1);
        ah_input(c, ah_random(KILN_DTYPE_F32, 1, b3, &seed, -1, 1), 1);
        if (sp.z) ah_input(c, ah_random(KILN_DTYPE_F32, 5, zd, &seed, -1, 1), 0);
    }
    ah_attr_int(c, "group", sp.k);
    ah_attr_ints(c, "strides", 2, sp.stride);
    ah_attr_ints(c, "dilations", 2, sp.dil);
    ah_attr_ints(c, "pads", 4, sp.pads);
    set_act(c, "pw_activation", sp.act1);
    set_act(c, sp.k3 ? "dw_activation" : "activation", sp.act2);
    if (sp.k3) set_act(c, "activation", sp.act3);
}

/* conv_dw_nchwc (f32) and conv_dw_nchwc_bf16 (bf16 session) against the
 * reference at 1 and 2 threads: strides 1 and 2, a 5x5 dilated kernel with
 * asymmetric padding and unequal strides, channel counts with partial
 * blocks (an odd block count: a lone last block in the pointwise pairs),
 * every activation on each side; with and without the projection (and its
 * residual); bands of 1 row up to the whole image (the band buffer
 * shrunk), so that rows carry over between bands, groups of pairs split the
 * blocks, and thread ranges start mid-image. */
static void test_convdw(void **state) {
    (void)state;
    if (!have_fast()) return;
    const int bf16 = kiln__gemm_compute_supported(KILN__GEMM_BF16);
    const dw_spec cases[] = {
        {.n = 2, .c = 24, .h = 20, .w = 21, .k = 72, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        {.n = 1, .c = 16, .h = 23, .w = 30, .k = 40, .r = 3, .s = 3, .stride = {2, 2},
         .pads = {1, 1, 1, 1}},
        {.n = 1, .c = 20, .h = 17, .w = 9, .k = 33, .r = 5, .s = 5, .stride = {1, 2},
         .dil = {2, 1}, .pads = {3, 2, 1, 2}},
        {.n = 3, .c = 7, .h = 6, .w = 5, .k = 16, .r = 3, .s = 3, .stride = {2, 2}},
        {.n = 1, .c = 24, .h = 64, .w = 120, .k = 96, .r = 3, .s = 3, .pads = {1, 1, 1, 1}},
        /* with the projection: MobileNetV2's blocks, one with a residual */
        {.n = 2, .c = 24, .h = 20, .w = 21, .k = 72, .r = 3, .s = 3, .pads = {1, 1, 1, 1},
         .k3 = 24, .z = 1},
        {.n = 1, .c = 16, .h = 23, .w = 30, .k = 40, .r = 3, .s = 3, .stride = {2, 2},
         .pads = {1, 1, 1, 1}, .k3 = 50},
        {.n = 1, .c = 20, .h = 17, .w = 9, .k = 33, .r = 5, .s = 5, .stride = {1, 2},
         .dil = {2, 1}, .pads = {3, 2, 1, 2}, .k3 = 7, .z = 1},
        {.n = 3, .c = 24, .h = 56, .w = 56, .k = 144, .r = 3, .s = 3, .pads = {1, 1, 1, 1},
         .k3 = 24, .z = 1},
    };
    static const size_t bufs[] = {256 * 1024, 8 * 1024, 1};
    const size_t keep = kiln__conv_dw_buf_bytes;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (size_t b = 0; b < sizeof bufs / sizeof *bufs; b++) {
            kiln__conv_dw_buf_bytes = bufs[b];
            dw_spec sp = cases[i];
            sp.act1 = ACTS[(i + b) % NACT];
            sp.act2 = ACTS[(i + 2 * b + 1) % NACT];
            sp.act3 = ACTS[(i + 3 * b + 2) % NACT];
            ah_case c;
            convdw_case(&c, sp);
            for (int t = 1; t <= 2; t++) {
                ah_run_algo(&c, "conv_dw_nchwc", KILN_PRECISION_FP32, t, 1e-5);
                /* two bf16 products in a row with the projection: up to 1.1e-2 measured */
                if (bf16)
                    ah_run_algo(&c, "conv_dw_nchwc_bf16", KILN_PRECISION_BF16, t,
                                sp.k3 ? 1.5e-2 : 1e-2);
            }
            ah_case_free(&c);
        }
    kiln__conv_dw_buf_bytes = keep;
}

/* ---- PoolNCHWc --------------------------------------------------------------- */

typedef struct pool_spec {
    const char *kind;
    int64_t n, c, h, w, r, s;
    int64_t stride[2], dil[2], pads[4];
    int ceil, include_pad;
} pool_spec;

/* A PoolNCHWc case of sp (random input, padding lanes random). */
static void pool_case(ah_case *c, pool_spec sp) {
    ah_case_init(c, "PoolNCHWc", "kiln", 1, 1);
    const int64_t xb[5] = {sp.n, kiln__nchwc_blocks(sp.c), sp.h, sp.w, 16};
    ah_input(c, ah_random(KILN_DTYPE_F32, 5, xb, &seed, -1, 1), 0);
    ah_attr_string(c, "kind", sp.kind);
    ah_attr_int(c, "channels", sp.c);
    if (strncmp(sp.kind, "Global", 6) == 0) return;
    const int64_t k[2] = {sp.r, sp.s}, st[2] = {sp.stride[0] ? sp.stride[0] : 1, sp.stride[1] ? sp.stride[1] : 1};
    const int64_t dl[2] = {sp.dil[0] ? sp.dil[0] : 1, sp.dil[1] ? sp.dil[1] : 1};
    ah_attr_ints(c, "kernel_shape", 2, k);
    ah_attr_ints(c, "strides", 2, st);
    ah_attr_ints(c, "dilations", 2, dl);
    ah_attr_ints(c, "pads", 4, sp.pads);
    ah_attr_int(c, "ceil_mode", sp.ceil);
    if (sp.include_pad) ah_attr_int(c, "count_include_pad", 1);
}

/* pool_nchwc against the reference at 1 and 2 threads (max: exact; average:
 * f32 sums against double): every kind, partial last block, padding with
 * windows cut at both edges, ceil_mode windows that start inside the input
 * and run past it, stride, dilation, count_include_pad. The reference
 * against the ONNX pools runs in test_passes (the nchwc pass on graphs). */
static void test_pool(void **state) {
    (void)state;
    if (!have_fast()) return;
    static const char *const kinds[] = {"MaxPool", "AveragePool"};
    for (int k = 0; k < 2; k++)
        for (int inc = 0; inc < 2; inc++) {
            const char *kind = kinds[k];
            const double tol = k ? 1e-6 : 0;
            const pool_spec cases[] = {
                {kind, 2, 40, 9, 11, 3, 3, {2, 2}, {0}, {1, 1, 1, 1}, 0, inc},
                {kind, 1, 16, 8, 8, 2, 2, {2, 2}, {0}, {0}, 0, inc},
                {kind, 1, 20, 10, 9, 3, 3, {2, 2}, {0}, {0, 1, 0, 0}, 1, inc},
                {kind, 1, 33, 7, 12, 3, 2, {1, 3}, {2, 1}, {2, 0, 1, 1}, 1, inc},
                {kind, 2, 8, 5, 5, 5, 5, {1, 1}, {0}, {2, 2, 2, 2}, 0, inc},
            };
            for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                ah_case c;
                pool_case(&c, cases[i]);
                for (int t = 1; t <= 2; t++) ah_run_algo(&c, "pool_nchwc", KILN_PRECISION_FP32, t, tol);
                ah_case_free(&c);
            }
        }
    static const char *const globals[] = {"GlobalMaxPool", "GlobalAveragePool"};
    for (int k = 0; k < 2; k++) {
        ah_case c;
        pool_case(&c, (pool_spec){.kind = globals[k], .n = 3, .c = 50, .h = 7, .w = 6});
        for (int t = 1; t <= 2; t++) ah_run_algo(&c, "pool_nchwc", KILN_PRECISION_FP32, t, k ? 1e-6 : 0);
        ah_case_free(&c);
    }
}

/* A kind the op does not know: refused, naming the attribute. */
/* Runs case c (one input), which must fail with an error containing msg;
 * frees c. */
static void expect_run_error(ah_case *c, const char *msg) {
    assert_int_equal(kiln__graph_finalize(c->g), KILN_OK);
    c->finalized = 1;
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, c->g, NULL, 1), KILN_OK);
    const kiln_tensor *ins[1] = {c->in[0]};
    assert_int_not_equal(kiln__runner_run(&r, 1, ins), KILN_OK);
    assert_non_null(strstr(kiln_last_error(), msg));
    kiln__runner_free(&r);
    ah_case_free(c);
}

static void test_pool_errors(void **state) {
    (void)state;
    ah_case c;
    pool_case(&c, (pool_spec){.kind = "LpPool", .n = 1, .c = 16, .h = 4, .w = 4, .r = 2, .s = 2});
    expect_run_error(&c, "attribute 'kind' is 'LpPool'");
}

/* Shapes the op refuses, naming what is wrong. */
static void test_conv_errors(void **state) {
    (void)state;
    ah_case c;
    ah_case_init(&c, "ConvNCHWc", "kiln", 1, 1);
    const int64_t xd[5] = {1, 2, 4, 4, 16}, wd[4] = {8, 40, 1, 1}; /* 40 channels need 3 blocks */
    ah_input(&c, ah_random(KILN_DTYPE_F32, 5, xd, &seed, -1, 1), 0);
    ah_input(&c, ah_random(KILN_DTYPE_F32, 4, wd, &seed, -1, 1), 1);
    expect_run_error(&c, "input 'X' (blocked) has 2 blocks");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reorder_reference),
        cmocka_unit_test(test_reorders),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_conv_bf16),
        cmocka_unit_test(test_winograd),
        cmocka_unit_test(test_winograd_refuses),
        cmocka_unit_test(test_conv_errors),
        cmocka_unit_test(test_convdw),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
