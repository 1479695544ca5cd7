/* tests/unit/test_int8_algos.c: the 8-bit integer algorithms
 * (src/cpu/kernels/qlinear_*.c: QLinearMatMul, MatMulInteger, QLinearConv,
 * ConvInteger on the u8 x s8 GEMM) against the reference kernels, and the
 * QDQ fusion pass (src/graph/passes/qdq.c) on small in-memory graphs.
 *
 * Algorithms: through the planner (algo_harness.h), each forced on fresh
 * random inputs with tolerance 0 (every output byte / int32 equal to the
 * reference's): u8 and s8 activations and weights, zero points absent, 0 and
 * non-zero, per-tensor and per-channel scales and zero points, s8 and u8
 * outputs, rounding ties (multipliers 1/2, 1/4), saturation, a degenerate
 * scale (y_scale 0: infinite multipliers), odd and edge sizes (1, not
 * multiples of the 14x32 tile or the 8-lane requantization), batched A,
 * convolution padding with a non-zero x_zero_point, strides, dilations,
 * groups (depthwise too), 1-D convolutions, the 1x1 direct path; at 1 and 2
 * threads, on the GEMM's generic C path and on VNNI where this CPU has it.
 * Also: they run in an fp32 session too, and what they refuse falls back to
 * the reference.
 *
 * QDQ pass: DequantizeLinear -> Conv / MatMul [-> Relu] -> QuantizeLinear
 * graphs (per-channel weights, int32 or float bias, Relu with a zero and a
 * non-zero output zero point) become QLinearConv / QLinearMatMul (plus Max
 * for the Relu clamp) in int8 sessions only; the fused graph, run on the
 * int8 algorithms, gives the unfused graph's (reference kernels) quantized
 * outputs within one step, in few elements (counted and bounded). Patterns
 * that do not fit (activation scale per channel) stay.
 */
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
#include "cpu/kernels/qlinear.h"
#include "graph/optimize.h"
#include "graph_builder.h"

static unsigned seed = 8080;

/* ---- tensors ------------------------------------------------------------------ */

static kiln_tensor *scalar_t(kiln_dtype dt, double v) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(dt, 0, NULL, &t), KILN_OK);
    kiln__st_f(dt, kiln_tensor_data(t), 0, v);
    return t;
}

static kiln_tensor *vec_rand(kiln_dtype dt, int64_t n, float lo, float hi) {
    return ah_random(dt, 1, &n, &seed, lo, hi);
}

/* Random values over the whole range of an 8-bit type. */
static kiln_tensor *q8_rand(kiln_dtype dt, int ndim, const int64_t *dims) {
    return dt == KILN_DTYPE_U8 ? ah_random(dt, ndim, dims, &seed, 0, 256)
                               : ah_random(dt, ndim, dims, &seed, -128, 128);
}

/* Zero point of dtype dt: mode 0 absent, 1 the value 0, 2 non-zero scalar, 3
 * per channel (n values, non-zero). */
static kiln_tensor *zero_point(kiln_dtype dt, int mode, int64_t n) {
    double mid = dt == KILN_DTYPE_U8 ? 128 : 0;
    switch (mode) {
    case 0: return NULL;
    case 1: return scalar_t(dt, 0);
    case 2: return scalar_t(dt, mid + 17);
    default: return vec_rand(dt, n, (float)mid - 30, (float)mid + 30);
    }
}

/* Runs the case on every isa this CPU has, at 1 and 2 threads, exactly. */
static void run_exact(ah_case *c, const char *algo) {
    kiln__gemm_isa isas[] = {KILN__GEMM_ISA_AUTO, KILN__GEMM_ISA_GENERIC, KILN__GEMM_ISA_AVX512};
    for (int i = 0; i < 3; i++) {
        if (!kiln__gemm_u8s8_isa_supported(isas[i])) continue;
        kiln__qlinear_isa = isas[i];
        for (int t = 1; t <= 2; t++) ah_run_algo(c, algo, KILN_PRECISION_INT8, t, 0.0);
    }
    kiln__qlinear_isa = KILN__GEMM_ISA_AUTO;
}

/* ---- QLinearMatMul / MatMulInteger ---------------------------------------------- */

typedef struct mm_spec {
    int an;             /* A rank (1..3) */
    int64_t batch, m, k, n;
    kiln_dtype at, bt, yt; /* yt: U8/I8 (QLinearMatMul) or I32 (MatMulInteger) */
    int az, bz;         /* zero point modes (zero_point) */
    int bs_per_col, ys_per_col;
    int scale_kind;     /* 0 normal, 1 ties (mult 1/2), 2 saturating, 3 y_scale 0 */
    int b_runtime;      /* B a graph input (refused: reference) */
} mm_spec;

static const char *mm_case(const mm_spec *sp, const char *force, kiln_precision prec) {
    ah_case c;
    const int ql = sp->yt != KILN_DTYPE_I32;
    ah_case_init(&c, ql ? "QLinearMatMul" : "MatMulInteger", "", ql ? 21 : 13, 1);
    int64_t adims[3], bdims[2] = {sp->k, sp->n};
    int an = 0;
    if (sp->an == 3) adims[an++] = sp->batch;
    if (sp->an >= 2) adims[an++] = sp->m;
    adims[an++] = sp->k;
    kiln_tensor *a = q8_rand(sp->at, an, adims), *b = q8_rand(sp->bt, 2, bdims);
    kiln_tensor *az = zero_point(sp->at, sp->az > 2 ? 2 : sp->az, 1);
    kiln_tensor *bz = zero_point(sp->bt, sp->bz, sp->n);
    if (!ql) {
        ah_input(&c, a, 0);
        ah_input(&c, b, !sp->b_runtime);
        ah_input(&c, az, 1);
        ah_input(&c, bz, 1);
    } else {
        /* y ~ acc * as * bs / ys spread over the output range */
        double as = 0.02, bs = 0.005, spread = 74.0 * 74.0 * sqrt((double)sp->k);
        double ys = spread * as * bs / 40.0;
        if (sp->scale_kind == 1) as = 1.0, bs = 0.5, ys = 1.0; /* every odd acc a tie */
        if (sp->scale_kind == 2) ys /= 30;
        if (sp->scale_kind == 3) ys = 0.0;
        kiln_tensor *bst = sp->bs_per_col && sp->scale_kind != 1
                               ? vec_rand(KILN_DTYPE_F32, sp->n, (float)bs * 0.5f, (float)bs * 1.5f)
                               : scalar_t(KILN_DTYPE_F32, bs);
        kiln_tensor *yst = sp->ys_per_col && sp->scale_kind == 0
                               ? vec_rand(KILN_DTYPE_F32, sp->n, (float)ys * 0.5f, (float)ys * 1.5f)
                               : scalar_t(KILN_DTYPE_F32, ys);
        kiln_tensor *yz = sp->ys_per_col ? zero_point(sp->yt, 3, sp->n)
                                         : sp->az ? zero_point(sp->yt, 2, 1)
                                                  : scalar_t(sp->yt, 0);
        ah_input(&c, a, 0);
        ah_input(&c, scalar_t(KILN_DTYPE_F32, as), 1);
        ah_input(&c, az ? az : scalar_t(sp->at, 0), 1);
        ah_input(&c, b, !sp->b_runtime);
        ah_input(&c, bst, 1);
        ah_input(&c, bz ? bz : scalar_t(sp->bt, 0), 1);
        ah_input(&c, yst, 1);
        ah_input(&c, yz, 1);
    }
    const char *got = force ? (run_exact(&c, force), force) : ah_run(&c, prec, 2, 0.0);
    ah_case_free(&c);
    return got;
}

static const mm_spec mm_shapes[] = {
    {2, 1, 1, 1, 1},     {2, 1, 3, 5, 7},    {2, 1, 14, 4, 32},  {2, 1, 17, 33, 40},
    {2, 1, 64, 100, 70}, {3, 2, 5, 19, 33},  {1, 1, 1, 37, 9},   {2, 1, 1, 256, 200},
    {2, 1, 29, 3, 65},
};

static void test_qlinear_matmul(void **state) {
    (void)state;
    const kiln_dtype q8[2] = {KILN_DTYPE_U8, KILN_DTYPE_I8};
    for (size_t i = 0; i < sizeof mm_shapes / sizeof *mm_shapes; i++)
        for (int v = 0; v < 4; v++) {
            mm_spec sp = mm_shapes[i];
            sp.at = q8[v & 1];
            sp.bt = q8[(v >> 1) & 1];
            sp.yt = q8[(v + i) & 1];
            sp.az = (int)((i + v) % 3);
            sp.bz = (int)((i + 2 * v) % 4);
            sp.bs_per_col = (i + v) & 1;
            sp.ys_per_col = v == 3 && (i & 1);
            mm_case(&sp, "qlinear_matmul_u8s8", KILN_PRECISION_INT8);
        }
    /* ties, saturation, infinite multipliers */
    for (int kind = 1; kind <= 3; kind++)
        for (int y = 0; y < 2; y++) {
            mm_spec sp = {2, 1, 13, 21, 45, KILN_DTYPE_U8, KILN_DTYPE_I8, y ? KILN_DTYPE_I8 : KILN_DTYPE_U8,
                          2, 3, 1, 0, kind};
            mm_case(&sp, "qlinear_matmul_u8s8", KILN_PRECISION_INT8);
        }
}

static void test_matmul_integer(void **state) {
    (void)state;
    const kiln_dtype q8[2] = {KILN_DTYPE_U8, KILN_DTYPE_I8};
    for (size_t i = 0; i < sizeof mm_shapes / sizeof *mm_shapes; i++)
        for (int v = 0; v < 4; v++) {
            mm_spec sp = mm_shapes[i];
            sp.at = q8[v & 1];
            sp.bt = q8[(v >> 1) & 1];
            sp.yt = KILN_DTYPE_I32;
            sp.az = (int)((i + v) % 3);
            sp.bz = (int)((i + 2 * v) % 4);
            mm_case(&sp, "matmul_integer_u8s8", KILN_PRECISION_INT8);
        }
}

/* The planner picks them in any session; what they refuse runs the reference. */
static void test_matmul_choice(void **state) {
    (void)state;
    mm_spec sp = {2, 1, 9, 30, 20, KILN_DTYPE_U8, KILN_DTYPE_I8, KILN_DTYPE_U8, 2, 3, 1};
    for (kiln_precision p = KILN_PRECISION_FP32; p <= KILN_PRECISION_INT8; p++)
        assert_string_equal(mm_case(&sp, NULL, p), "qlinear_matmul_u8s8");
    sp.yt = KILN_DTYPE_I32;
    assert_string_equal(mm_case(&sp, NULL, KILN_PRECISION_FP32), "matmul_integer_u8s8");
    sp.b_runtime = 1;
    assert_string_equal(mm_case(&sp, NULL, KILN_PRECISION_INT8), "reference");
    mm_spec big = {2, 1, 2, KILN__Q_MAX_K + 1, 3, KILN_DTYPE_U8, KILN_DTYPE_I8, KILN_DTYPE_I32};
    assert_string_equal(mm_case(&big, NULL, KILN_PRECISION_INT8), "reference");
    big.k = KILN__Q_MAX_K;
    assert_string_equal(mm_case(&big, NULL, KILN_PRECISION_INT8), "matmul_integer_u8s8");
}

/* ---- QLinearConv / ConvInteger ---------------------------------------------------- */

typedef struct conv_spec {
    int nsp;                       /* spatial dims (1 or 2) */
    int64_t n, c, h, w, k, r, s, group;
    int64_t stride[2], dil[2], pads[4];
    const char *auto_pad;          /* NULL: explicit pads */
    kiln_dtype xt, wt, yt;         /* yt I32: ConvInteger */
    int xz, wz;                    /* zero point modes (wz 3: per channel) */
    int ws_per_ch, bias;
    int scale_kind;                /* as mm_spec */
} conv_spec;

static void conv_case(const conv_spec *sp0, const char *force) {
    conv_spec sp = *sp0;
    if (!sp.group) sp.group = 1;
    for (int i = 0; i < 2; i++) {
        if (!sp.stride[i]) sp.stride[i] = 1;
        if (!sp.dil[i]) sp.dil[i] = 1;
    }
    const int ql = sp.yt != KILN_DTYPE_I32;
    ah_case c;
    ah_case_init(&c, ql ? "QLinearConv" : "ConvInteger", "", 13, 1);
    int64_t xd[4] = {sp.n, sp.c, sp.h, sp.w}, wd[4] = {sp.k, sp.c / sp.group, sp.r, sp.s};
    if (sp.nsp == 1) xd[2] = sp.w, wd[2] = sp.s;
    const int nd = 2 + sp.nsp;
    kiln_tensor *x = q8_rand(sp.xt, nd, xd), *w = q8_rand(sp.wt, nd, wd);
    kiln_tensor *xz = zero_point(sp.xt, sp.xz > 2 ? 2 : sp.xz, 1);
    kiln_tensor *wz = zero_point(sp.wt, sp.wz, sp.k);
    if (!ql) {
        ah_input(&c, x, 0);
        ah_input(&c, w, 1);
        ah_input(&c, xz, 1);
        ah_input(&c, wz, 1);
    } else {
        const double K = (double)(wd[1] * sp.r * (sp.nsp == 2 ? sp.s : 1));
        double xs = 0.03, ws = 0.004, ys = 74.0 * 74.0 * sqrt(K) * xs * ws / 40.0;
        if (sp.scale_kind == 1) xs = 0.5, ws = 0.5, ys = 1.0; /* mult 1/4: ties */
        if (sp.scale_kind == 2) ys /= 30;
        if (sp.scale_kind == 3) ys = 0.0;
        kiln_tensor *wst = sp.ws_per_ch && sp.scale_kind != 1
                               ? vec_rand(KILN_DTYPE_F32, sp.k, (float)ws * 0.5f, (float)ws * 1.5f)
                               : scalar_t(KILN_DTYPE_F32, ws);
        ah_input(&c, x, 0);
        ah_input(&c, scalar_t(KILN_DTYPE_F32, xs), 1);
        ah_input(&c, xz ? xz : scalar_t(sp.xt, 0), 1);
        ah_input(&c, w, 1);
        ah_input(&c, wst, 1);
        ah_input(&c, wz ? wz : scalar_t(sp.wt, 0), 1);
        ah_input(&c, scalar_t(KILN_DTYPE_F32, ys), 1);
        ah_input(&c, sp.xz ? zero_point(sp.yt, 2, 1) : scalar_t(sp.yt, 0), 1);
        if (sp.bias) ah_input(&c, vec_rand(KILN_DTYPE_I32, sp.k, -30000, 30000), 1);
    }
    const int64_t *st = sp.stride, *dl = sp.dil;
    if (sp.nsp == 1) {
        ah_attr_ints(&c, "strides", 1, st + 1);
        ah_attr_ints(&c, "dilations", 1, dl + 1);
        int64_t p1[2] = {sp.pads[1], sp.pads[3]};
        if (!sp.auto_pad) ah_attr_ints(&c, "pads", 2, p1);
    } else {
        ah_attr_ints(&c, "strides", 2, st);
        ah_attr_ints(&c, "dilations", 2, dl);
        if (!sp.auto_pad) ah_attr_ints(&c, "pads", 4, sp.pads);
    }
    if (sp.auto_pad) ah_attr_string(&c, "auto_pad", sp.auto_pad);
    if (sp.group > 1) ah_attr_int(&c, "group", sp.group);
    run_exact(&c, force);
    ah_case_free(&c);
}

static const conv_spec conv_shapes[] = {
    /* 3x3 padded, odd sizes */
    {2, 1, 3, 7, 9, 5, 3, 3, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}},
    /* asymmetric padding, stride 2 */
    {2, 2, 8, 11, 10, 33, 3, 3, 1, {2, 2}, {1, 1}, {0, 2, 1, 0}},
    /* dilation 2, stride (1, 3), 5x3 kernel */
    {2, 1, 5, 13, 12, 17, 5, 3, 1, {1, 3}, {2, 2}, {2, 1, 2, 1}},
    /* 1x1 direct (no im2col) and 1x1 strided */
    {2, 2, 16, 6, 7, 40, 1, 1, 1},
    {2, 1, 16, 9, 9, 24, 1, 1, 1, {2, 2}},
    /* groups: 2 groups of odd sizes, depthwise with multiplier 2 */
    {2, 1, 6, 7, 8, 10, 3, 3, 2, {1, 1}, {1, 1}, {1, 1, 1, 1}},
    {2, 2, 8, 9, 6, 16, 3, 3, 8, {2, 1}, {1, 1}, {1, 1, 1, 1}},
    /* 1-D, SAME_UPPER */
    {1, 2, 4, 1, 15, 9, 1, 5, 1, {1, 2}, {1, 1}, {0, 0, 0, 0}, "SAME_UPPER"},
    /* one pixel, one channel, big channel count (column chunks at 2 threads) */
    {2, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 1, 70, 3, 3, 130, 3, 3, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}},
    /* output pixels not a multiple of the pixel block */
    {2, 1, 4, 31, 29, 12, 3, 3, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}},
};

static void test_qlinear_conv(void **state) {
    (void)state;
    const kiln_dtype q8[2] = {KILN_DTYPE_U8, KILN_DTYPE_I8};
    for (size_t i = 0; i < sizeof conv_shapes / sizeof *conv_shapes; i++)
        for (int v = 0; v < 4; v++) {
            conv_spec sp = conv_shapes[i];
            sp.xt = q8[v & 1];
            sp.wt = q8[(v >> 1) & 1];
            sp.yt = q8[(v + i) & 1];
            sp.xz = v == 0 ? 2 : (int)((i + v) % 3); /* non-zero x_zero_point pads */
            sp.wz = (int)((i + 2 * v) % 4);
            sp.ws_per_ch = (i + v) & 1;
            sp.bias = v != 1;
            conv_case(&sp, "qlinear_conv_u8s8");
        }
    for (int kind = 1; kind <= 3; kind++) {
        conv_spec sp = conv_shapes[1];
        sp.xt = KILN_DTYPE_U8, sp.wt = KILN_DTYPE_I8, sp.yt = kind == 2 ? KILN_DTYPE_I8 : KILN_DTYPE_U8;
        sp.xz = 2, sp.wz = 3, sp.bias = 1, sp.scale_kind = kind;
        conv_case(&sp, "qlinear_conv_u8s8");
    }
}

static void test_conv_integer(void **state) {
    (void)state;
    const kiln_dtype q8[2] = {KILN_DTYPE_U8, KILN_DTYPE_I8};
    for (size_t i = 0; i < sizeof conv_shapes / sizeof *conv_shapes; i++)
        for (int v = 0; v < 4; v++) {
            conv_spec sp = conv_shapes[i];
            sp.xt = q8[v & 1];
            sp.wt = q8[(v >> 1) & 1];
            sp.yt = KILN_DTYPE_I32;
            sp.xz = v == 0 ? 2 : (int)((i + v) % 3);
            sp.wz = (int)((i + 2 * v) % 4);
            conv_case(&sp, "conv_integer_u8s8");
        }
}

/* ---- the QDQ pass ------------------------------------------------------------------ */

static void g_input(kiln_graph *g, const char *name, int ndim, const int64_t *dims) {
    int v = kiln__graph_add_value(g, name);
    kiln__value *val = &g->values[v];
    val->kind = KILN__VAL_INPUT;
    val->dtype = KILN_DTYPE_F32;
    val->ndim = ndim;
    val->has_type = 1;
    for (int d = 0; d < ndim; d++) val->dims[d].v = dims[d];
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
}

static void g_init(kiln_graph *g, const char *name, kiln_tensor *t) {
    int v = kiln__graph_add_value(g, name);
    g->values[v].kind = KILN__VAL_INIT;
    g->values[v].init = t;
    g->inits = realloc(g->inits, (size_t)(g->n_inits + 1) * sizeof *g->inits);
    g->inits[g->n_inits++] = v;
}

static int count_op(const kiln_graph *g, const char *op) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) k += strcmp(g->nodes[i].op_type, op) == 0;
    return k;
}

typedef struct qdq_spec {
    int conv;        /* Conv, else MatMul */
    int relu;        /* Relu before the output QuantizeLinear */
    int yz;          /* output zero point (u8) */
    int bias;        /* Conv: 0 none, 1 DequantizeLinear(int32), 2 float constant, 3 int32
                        with a scale other than xs * ws */
    int x_per_ch;    /* activation scale per channel: the pass must leave it */
} qdq_spec;

/* x (f32) -> Q -> DQ -> op(DQ(w_q)) [-> Relu] -> Q -> y_q (output) -> DQ -> y (output). */
static kiln_graph *qdq_graph(const qdq_spec *sp) {
    kiln_graph *g = new_graph(NULL);
    const int64_t K = 6, C = 5;
    int64_t xd[4] = {2, C, 9, 8}, wd[4] = {K, C, 3, 3}, md[2] = {7, 37}, mw[2] = {37, 11};
    const float xs = 0.008f;
    g_input(g, "x", sp->conv ? 4 : 2, sp->conv ? xd : md);
    double xsv[5] = {xs, xs * 1.5, xs, xs * 0.5, xs}, z = 128;
    g_init(g, "xs", sp->x_per_ch ? vec(KILN_DTYPE_F32, C, xsv) : scalar_t(KILN_DTYPE_F32, xs));
    double zv[5] = {z, z, z, z, z};
    g_init(g, "xz", sp->x_per_ch ? vec(KILN_DTYPE_U8, C, zv) : scalar_t(KILN_DTYPE_U8, z));
    kiln__node *q = node(g, "QuantizeLinear", "xq", "x", "xs", "xz", NULL);
    if (sp->x_per_ch) int_attr(q, "axis", 1);
    kiln__node *dq = node(g, "DequantizeLinear", "xd", "xq", "xs", "xz", NULL);
    if (sp->x_per_ch) int_attr(dq, "axis", 1);
    const int64_t nout = sp->conv ? K : mw[1];
    g_init(g, "wq", ah_random(KILN_DTYPE_I8, sp->conv ? 4 : 2, sp->conv ? wd : mw, &seed, -127, 128));
    kiln_tensor *ws = ah_random(KILN_DTYPE_F32, 1, &nout, &seed, 0.002f, 0.006f);
    const float *wsv = kiln_tensor_data(ws);
    double b[16], bs[16];
    for (int64_t k = 0; k < K; k++) {
        b[k] = (double)(int)(k * 977 % 2001) - 1000;
        bs[k] = sp->bias == 3 ? 1e-4 : (double)(xs * wsv[k]);
    }
    g_init(g, "ws", ws);
    g_init(g, "wz", ah_random(KILN_DTYPE_I8, 1, &nout, &seed, 0, 1)); /* zeros, per channel */
    int_attr(node(g, "DequantizeLinear", "wd", "wq", "ws", "wz", NULL), "axis", sp->conv ? 0 : 1);
    const char *bias = "";
    if (sp->conv && sp->bias) {
        if (sp->bias == 2) {
            for (int64_t k = 0; k < K; k++) b[k] *= 1e-4;
            g_init(g, "bd", vec(KILN_DTYPE_F32, K, b));
        } else {
            g_init(g, "bq", vec(KILN_DTYPE_I32, K, b));
            g_init(g, "bs", vec(KILN_DTYPE_F32, K, bs));
            int_attr(node(g, "DequantizeLinear", "bd", "bq", "bs", NULL), "axis", 0);
        }
        bias = "bd";
    }
    if (sp->conv) {
        kiln__node *cv = node(g, "Conv", "c", "xd", "wd", bias, NULL);
        int64_t pads[4] = {1, 0, 1, 2};
        cv->attr = realloc(cv->attr, (size_t)(cv->n_attr + 1) * sizeof *cv->attr);
        kiln__attr a = {.name = kiln__strdup("pads"), .type = KILN__ATTR_INTS, .n = 4};
        a.ints = malloc(sizeof pads);
        memcpy(a.ints, pads, sizeof pads);
        cv->attr[cv->n_attr++] = a;
    } else {
        node(g, "MatMul", "c", "xd", "wd", NULL);
    }
    if (sp->relu) node(g, "Relu", "r", "c", NULL);
    g_init(g, "ys", scalar_t(KILN_DTYPE_F32, sp->conv ? 0.05 : 0.04));
    g_init(g, "yz", scalar_t(KILN_DTYPE_U8, sp->yz));
    node(g, "QuantizeLinear", "yq", sp->relu ? "r" : "c", "ys", "yz", NULL);
    node(g, "DequantizeLinear", "y", "yq", "ys", "yz", NULL);
    add_output(g, "yq");
    add_output(g, "y");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    return g;
}

/* Runs g on x (int8 session algorithms unless reference); output k copied. */
static kiln_tensor *qdq_run(const kiln_graph *g, const kiln_tensor *x, int reference, int threads, int k) {
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, g, NULL, threads), KILN_OK);
    r.sel.reference = reference;
    r.sel.precision = KILN_PRECISION_INT8;
    const kiln_tensor *ins[1] = {x};
    if (kiln__runner_run(&r, 1, ins) != KILN_OK) fail_msg("run failed: %s", kiln_last_error());
    kiln_tensor *out;
    assert_int_equal(kiln_tensor_copy(kiln__runner_output(&r, k), KILN_DTYPE_UNDEFINED, &out), KILN_OK);
    kiln__runner_free(&r);
    return out;
}

/* Optimizes a clone of sp's graph at precision prec; checks what fused and
 * the outputs; returns the elements that differ by one step. */
static int64_t qdq_check(const qdq_spec *sp, kiln_precision prec, int64_t *total) {
    kiln_graph *g = qdq_graph(sp), *o = kiln__graph_clone(g);
    assert_non_null(o);
    kiln__opt_stats st;
    kiln__opt_options opt = {.precision = prec, .stats = &st};
    if (kiln__graph_optimize(o, &opt) != KILN_OK) fail_msg("optimize: %s", kiln_last_error());
    const char *fused = sp->conv ? "QLinearConv" : "QLinearMatMul";
    const int fires = prec == KILN_PRECISION_INT8 && !sp->x_per_ch;
    assert_int_equal(st.rewrites[KILN__PASS_QDQ], fires);
    assert_int_equal(count_op(o, fused), fires);
    if (fires) { /* (otherwise the float passes may fuse the float op their way) */
        assert_int_equal(count_op(o, sp->conv ? "Conv" : "MatMul"), 0);
        assert_int_equal(count_op(o, "Relu"), 0);
    }
    assert_int_equal(count_op(o, "Max"), fires && sp->relu && sp->yz != 0);
    int64_t xd[4] = {2, 5, 9, 8}, md[2] = {7, 37};
    kiln_tensor *x = ah_random(KILN_DTYPE_F32, sp->conv ? 4 : 2, sp->conv ? xd : md, &seed, -1, 1);
    kiln_tensor *want = qdq_run(g, x, 1, 1, 0);
    int64_t off = 0, n = kiln_tensor_numel(want);
    for (int t = 1; t <= 2; t++) {
        kiln_tensor *got = qdq_run(o, x, 0, t, 0);
        assert_int_equal(got->dtype, KILN_DTYPE_U8);
        assert_int_equal(kiln_tensor_numel(got), n);
        const uint8_t *a = kiln_tensor_data(got), *b = kiln_tensor_data(want);
        int64_t cnt = 0;
        for (int64_t i = 0; i < n; i++) {
            int d = abs((int)a[i] - (int)b[i]);
            if (d > 1) fail_msg("%s: element %lld is %d, unfused %d", fused, (long long)i, a[i], b[i]);
            cnt += d;
            if (sp->relu && a[i] < sp->yz) fail_msg("%s: relu clamp broken at %lld", fused, (long long)i);
        }
        off = cnt > off ? cnt : off;
        kiln_tensor_free(got);
    }
    kiln_tensor_free(want);
    kiln_tensor_free(x);
    kiln_graph_free(o);
    kiln_graph_free(g);
    *total = n;
    return off;
}

static void test_qdq_pass(void **state) {
    (void)state;
    const qdq_spec specs[] = {
        {1, 0, 128, 1}, {1, 1, 0, 1}, {1, 1, 20, 2}, {1, 0, 100, 0}, {1, 1, 0, 3},
        {0, 0, 128},    {0, 1, 0},    {0, 1, 37},
        {1, 0, 128, 1, 1}, /* activation scale per channel: left alone */
    };
    int64_t off = 0, total = 0;
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        int64_t n;
        assert_int_equal(qdq_check(&specs[i], KILN_PRECISION_FP32, &n), 0);
        off += qdq_check(&specs[i], KILN_PRECISION_INT8, &n);
        total += n;
    }
    printf("  qdq: %lld of %lld quantized outputs one step from the unfused graph\n",
           (long long)off, (long long)total);
    assert_true(off * 100 <= total); /* one step in at most 1% of the elements */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qlinear_matmul), cmocka_unit_test(test_matmul_integer),
        cmocka_unit_test(test_matmul_choice),  cmocka_unit_test(test_qlinear_conv),
        cmocka_unit_test(test_conv_integer),   cmocka_unit_test(test_qdq_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
