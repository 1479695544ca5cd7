/* tests/unit/test_matmul_algos.c: the packed-GEMM algorithms of MatMul, Gemm
 * and kiln.FusedMatMul (src/cpu/kernels/matmul_algos.c) against the
 * reference kernels on fresh random inputs, and kiln.FusedMatMul's own
 * reference kernel against a double-precision loop.
 *
 * Through the planner (algo_harness.h): shapes 1x1x1, odd sizes, vectors,
 * batched 3-D / 4-D, broadcast batches, Gemm's transposes, alpha, beta and
 * every C broadcast, every activation, bias and residual, constant and
 * runtime B, 1 and 2 threads, NaN / Inf parity, bf16 within 1e-2 where this
 * CPU and kiln__sgemm run it. By hand (a kiln__kctx built here): scratch and
 * output guards, repeated runs with fresh runtime inputs, flops, cost, and
 * the cases the algorithms must refuse. */
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
#include "cpu/kernels/matmul.h"
#include "ops/fused.h"

#define TOL_F32 1e-5
#define TOL_BF16 1e-2

static unsigned seed = 12345;

static kiln_tensor *rnd(int ndim, const int64_t *dims) {
    return ah_random(KILN_DTYPE_F32, ndim, dims, &seed, -1, 1);
}

/* Infers case c's output header into *y by hand; returns infer's status
 * (the message in kiln_last_error). */
static kiln_status infer_out(ah_case *c, kiln_tensor *y) {
    const kiln__node *nd = &c->g->nodes[c->node];
    int op = kiln__op_find(nd->domain, nd->op_type);
    assert_true(op >= 0);
    kiln_tensor *outs[1] = {y};
    memset(y, 0, sizeof *y);
    kiln__kctx k = {.node = nd, .graph = c->g, .opset = 13, .n_in = c->n_in, .n_out = 1,
                    .in = c->in, .out = outs, .ith = 0, .nth = 1};
    return kiln__ops[op].infer(&k);
}

/* Runs algorithm algo on the case at fp32 with 1 and 2 threads, and at bf16
 * when this build computes in bf16 (algo_bf16 then must take it). bf16 is
 * checked on outputs of at least 64 elements: on a handful, one sum that
 * cancels dominates the normalized error. */
static void check_algo(ah_case *c, const char *algo, const char *algo_bf16) {
    for (int t = 1; t <= 2; t++) ah_run_algo(c, algo, KILN_PRECISION_FP32, t, TOL_F32);
    kiln_tensor y;
    assert_int_equal(infer_out(c, &y), KILN_OK);
    if (algo_bf16 && kiln__mm_compute_supported(KILN__GEMM_BF16) && kiln__n(&y) >= 64)
        for (int t = 1; t <= 2; t++) ah_run_algo(c, algo_bf16, KILN_PRECISION_BF16, t, TOL_BF16);
}

/* ---- MatMul ------------------------------------------------------------------ */

typedef struct mm_shape {
    int an, bn;
    int64_t a[4], b[4];
} mm_shape;

static const mm_shape matmul_shapes[] = {
    {2, 2, {1, 1}, {1, 1}},                 /* 1x1x1 */
    {2, 2, {7, 13}, {13, 11}},              /* odd */
    {1, 2, {13}, {13, 11}},                 /* vector x matrix */
    {2, 2, {1, 37}, {37, 100}},             /* (1,K) x (K,N) */
    {2, 1, {9, 5}, {5}},                    /* matrix x vector */
    {1, 1, {6}, {6}},                       /* dot product: scalar out */
    {4, 2, {2, 3, 7, 13}, {13, 9}},         /* 4-D x 2-D: batch folds into M */
    {3, 1, {2, 5, 17}, {17}},               /* 3-D x vector */
    {3, 3, {3, 5, 17}, {3, 17, 6}},         /* batched, 3 products over 2 threads */
    {4, 4, {2, 3, 4, 8}, {2, 3, 8, 5}},     /* 4-D x 4-D */
    {4, 3, {2, 1, 5, 8}, {3, 8, 7}},        /* broadcast batch both ways */
    {2, 3, {5, 8}, {4, 8, 6}},              /* one A, batched B */
    {3, 3, {1, 4, 8}, {3, 8, 6}},           /* A's batch of 1 broadcast */
    {1, 3, {8}, {2, 8, 3}},                 /* vector x batched B */
    {2, 2, {4, 0}, {0, 5}},                 /* K = 0: zeros */
    {2, 2, {0, 5}, {5, 3}},                 /* M = 0 */
    {2, 2, {70, 300}, {300, 257}},          /* K over one block, N edge tile */
    {3, 3, {4, 33, 40}, {4, 40, 33}},       /* attention-like, whole products */
};

static void test_matmul_shapes(void **state) {
    for (size_t i = 0; i < sizeof matmul_shapes / sizeof *matmul_shapes; i++)
        for (int cb = 0; cb <= 1; cb++) {
            const mm_shape *s = &matmul_shapes[i];
            ah_case c;
            ah_case_init(&c, "MatMul", "", 13, 1);
            ah_input(&c, rnd(s->an, s->a), 0);
            ah_input(&c, rnd(s->bn, s->b), cb);
            check_algo(&c, "matmul_sgemm", "matmul_sgemm_bf16");
            ah_case_free(&c);
        }
}

/* The planner runs f32 MatMul on an algorithm (ours or another candidate,
 * such as oneDNN's), never on the reference kernel; with only ours offered
 * at bf16 it takes the bf16 one where kiln__sgemm computes in bf16. */
static void test_matmul_planner_choice(void **state) {
    int64_t a[] = {4, 24}, b[] = {24, 40};
    ah_case c;
    ah_case_init(&c, "MatMul", "", 13, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 1);
    const char *algo = ah_run(&c, KILN_PRECISION_FP32, 2, TOL_F32);
    assert_string_not_equal(algo, "reference");
    algo = ah_run(&c, KILN_PRECISION_BF16, 2, TOL_BF16);
    assert_string_not_equal(algo, "reference");
    ah_case_free(&c);
}

/* ---- Gemm ---------------------------------------------------------------------- */

static void test_gemm(void **state) {
    static const int64_t mnk[][3] = {{1, 1, 1}, {7, 11, 13}, {1, 40, 33}, {30, 1, 17}, {20, 70, 9}};
    /* C shapes (rank, dims from M and N): none, scalar, (1), (N), (1,N), (M,1), (M,N) */
    enum { C_NONE, C_SCALAR, C_ONE, C_N, C_1N, C_M1, C_MN, C_COUNT };
    static const float betas[] = {1.0f, 0.5f, -2.0f};
    int idx = 0;
    for (size_t s = 0; s < sizeof mnk / sizeof *mnk; s++)
        for (int tr = 0; tr < 4; tr++)
            for (int ck = 0; ck < C_COUNT; ck++, idx++) {
                const int64_t M = mnk[s][0], N = mnk[s][1], K = mnk[s][2];
                const int ta = tr & 1, tb = tr >> 1;
                int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
                ah_case c;
                ah_case_init(&c, "Gemm", "", 13, 1);
                ah_input(&c, rnd(2, ad), 0);
                ah_input(&c, rnd(2, bd), idx % 2);
                int64_t cd[2];
                int cn = -1;
                switch (ck) {
                case C_SCALAR: cn = 0; break;
                case C_ONE: cn = 1, cd[0] = 1; break;
                case C_N: cn = 1, cd[0] = N; break;
                case C_1N: cn = 2, cd[0] = 1, cd[1] = N; break;
                case C_M1: cn = 2, cd[0] = M, cd[1] = 1; break;
                case C_MN: cn = 2, cd[0] = M, cd[1] = N; break;
                }
                if (cn >= 0) ah_input(&c, rnd(cn, cd), idx % 3 == 0);
                ah_attr_int(&c, "transA", ta);
                ah_attr_int(&c, "transB", tb);
                if (idx % 2) ah_attr_float(&c, "alpha", 0.75f);
                if (idx % 5) ah_attr_float(&c, "beta", betas[idx % 3]);
                check_algo(&c, "gemm_sgemm", "gemm_sgemm_bf16");
                ah_case_free(&c);
            }
}

/* beta = 0 ignores C (alpha 1, as the reference does) */
static void test_gemm_beta_zero(void **state) {
    int64_t a[] = {5, 7}, b[] = {7, 9}, cd[] = {5, 9};
    ah_case c;
    ah_case_init(&c, "Gemm", "", 13, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 1);
    ah_input(&c, rnd(2, cd), 0);
    ah_attr_float(&c, "beta", 0.0f);
    check_algo(&c, "gemm_sgemm", "gemm_sgemm_bf16");
    ah_case_free(&c);
}

/* ---- FusedMatMul ----------------------------------------------------------------- */

typedef struct act_case {
    const char *name; /* NULL: attribute absent */
    int np;
    float params[2];
} act_case;

static const act_case acts[] = {
    {NULL, 0, {0}},          {"", 0, {0}},     {"Relu", 0, {0}},
    {"Clip", 2, {-0.3f, 0.4f}}, {"Clip", 1, {-0.2f}}, {"Clip", 0, {0}},
    {"Gelu", 0, {0}},        {"GeluTanh", 0, {0}}, {"Silu", 0, {0}},
};

static void set_act(ah_case *c, const act_case *a) {
    if (a->name) ah_attr_string(c, "activation", a->name);
    if (a->np) ah_attr_floats(c, "activation_params", a->np, a->params);
}

/* A, B (B constant or not), Bias (N) if bias, Z of Y's shape if z. */
static void fused_case(ah_case *c, int an, const int64_t *a, int bn, const int64_t *b, int cb,
                       int bias, int z, const act_case *act, int64_t zn, const int64_t *zd) {
    ah_case_init(c, "FusedMatMul", "kiln", 1, 1);
    ah_input(c, ah_random(KILN_DTYPE_F32, an, a, &seed, -2, 2), 0);
    ah_input(c, rnd(bn, b), cb);
    int64_t n = bn == 1 ? 1 : b[bn - 1];
    ah_input(c, bias ? rnd(1, &n) : NULL, cb);
    if (z) ah_input(c, rnd((int)zn, zd), 0);
    set_act(c, act);
}

static void test_fused_activations(void **state) {
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        ah_case c;
        /* folded batch, bias and residual */
        int64_t a[] = {2, 5, 19}, b[] = {19, 33}, y[] = {2, 5, 33};
        fused_case(&c, 3, a, 2, b, (int)i % 2, 1, 1, &acts[i], 3, y);
        check_algo(&c, "fused_matmul_sgemm", "fused_matmul_sgemm_bf16");
        ah_case_free(&c);
        /* batched products, bias only */
        int64_t a2[] = {3, 4, 9}, b2[] = {3, 9, 10};
        fused_case(&c, 3, a2, 3, b2, (int)(i + 1) % 2, 1, 0, &acts[i], 0, NULL);
        check_algo(&c, "fused_matmul_sgemm", "fused_matmul_sgemm_bf16");
        ah_case_free(&c);
    }
}

static void test_fused_bias_residual(void **state) {
    static const mm_shape shapes[] = {
        {2, 2, {1, 1}, {1, 1}},         {2, 2, {1, 64}, {64, 96}},  {2, 2, {15, 33}, {33, 31}},
        {4, 4, {2, 2, 3, 8}, {2, 2, 8, 5}}, {4, 3, {2, 1, 5, 8}, {3, 8, 7}}, {2, 1, {9, 5}, {5}},
        {1, 2, {7}, {7, 12}},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int mode = 0; mode < 8; mode++) {
            const mm_shape *sh = &shapes[s];
            int bias = mode & 1, z = (mode >> 1) & 1, cb = mode >> 2;
            /* Y's shape from the reference's infer: run it once without Z */
            int64_t yd[KILN_MAX_DIMS];
            int yn = 0;
            {
                int64_t nb = 0, bd[KILN_MAX_DIMS];
                int nbd;
                int anb = sh->an > 1 ? sh->an - 2 : 0, bnb = sh->bn > 1 ? sh->bn - 2 : 0;
                assert_int_equal(kiln__broadcast(anb, sh->a, bnb, sh->b, &nbd, bd), KILN_OK);
                for (nb = 0; nb < nbd; nb++) yd[yn++] = bd[nb];
                if (sh->an > 1) yd[yn++] = sh->a[sh->an - 2];
                if (sh->bn > 1) yd[yn++] = sh->b[sh->bn - 1];
            }
            ah_case c;
            act_case relu = {"Relu", 0, {0}};
            fused_case(&c, sh->an, sh->a, sh->bn, sh->b, cb, bias, z, mode % 3 ? &relu : &acts[0],
                       yn, yd);
            check_algo(&c, "fused_matmul_sgemm", "fused_matmul_sgemm_bf16");
            ah_case_free(&c);
        }
}

/* ---- NaN / Inf ----------------------------------------------------------------------- */

static void poke(kiln_tensor *t, int64_t i, float v) { ((float *)kiln_tensor_data(t))[i] = v; }

static void test_nan_inf(void **state) {
    int64_t a[] = {2, 9, 12}, b[] = {12, 40}, y[] = {2, 9, 40};
    /* MatMul: NaN and +-Inf in A, NaN in a column of B */
    for (int cb = 0; cb <= 1; cb++) {
        ah_case c;
        ah_case_init(&c, "MatMul", "", 13, 1);
        kiln_tensor *ta = rnd(3, a), *tb = rnd(2, b);
        poke(ta, 2 * 12 + 3, NAN);
        poke(ta, 5 * 12 + 0, INFINITY);
        poke(ta, 11 * 12 + 7, -INFINITY);
        poke(tb, 4 * 40 + 17, NAN);
        ah_input(&c, ta, 0);
        ah_input(&c, tb, cb);
        check_algo(&c, "matmul_sgemm", NULL);
        ah_case_free(&c);
    }
    /* FusedMatMul: NaN in A, B, Bias and Z through every activation; +-Inf
     * through none and Relu */
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        ah_case c;
        fused_case(&c, 3, a, 2, b, (int)i % 2, 1, 1, &acts[i], 3, y);
        poke(c.in[0], 7, NAN);
        poke(c.in[1], 3 * 40 + 21, NAN);
        poke(c.in[2], 30, NAN);
        poke(c.in[3], 100, NAN);
        const char *nm = acts[i].name ? acts[i].name : "";
        if (!nm[0] || strcmp(nm, "Relu") == 0) {
            poke(c.in[0], 4 * 12 + 1, INFINITY);
            poke(c.in[0], 13 * 12 + 1, -INFINITY);
            poke(c.in[3], 200, -INFINITY);
        }
        check_algo(&c, "fused_matmul_sgemm", NULL);
        ah_case_free(&c);
    }
    /* Gemm: NaN in C as residual and as bias */
    for (int full = 0; full <= 1; full++) {
        int64_t ga[] = {9, 12}, cd[] = {9, 40}, cv[] = {40};
        ah_case c;
        ah_case_init(&c, "Gemm", "", 13, 1);
        ah_input(&c, rnd(2, ga), 0);
        ah_input(&c, rnd(2, b), 1);
        kiln_tensor *tc = full ? rnd(2, cd) : rnd(1, cv);
        poke(tc, 5, NAN);
        ah_input(&c, tc, 0);
        check_algo(&c, "gemm_sgemm", NULL);
        ah_case_free(&c);
    }
}

/* ---- by hand: guards, repeated runs, refusals ------------------------------------------ */

#define GUARD_BYTES 256
static const unsigned char GUARD = 0xa5;

static kiln_tensor *new_header(void) {
    kiln_tensor *t = calloc(1, sizeof *t);
    assert_non_null(t);
    return t;
}

static int last_serial; /* the plan of the last hand_algo ran on the caller alone */

/* Infers case c's output and runs its reference kernel on nth threads (in
 * turn): a new tensor the caller frees. */
static kiln_tensor *hand_reference(ah_case *c, int nth) {
    const kiln__node *nd = &c->g->nodes[c->node];
    int op = kiln__op_find(nd->domain, nd->op_type);
    assert_true(op >= 0);
    kiln_tensor *y = new_header();
    kiln__kctx k = {.node = nd, .graph = c->g, .opset = 13, .n_in = c->n_in, .n_out = 1,
                    .in = c->in, .out = &y, .ith = 0, .nth = 1};
    if (kiln__ops[op].infer(&k) != KILN_OK) fail_msg("infer: %s", kiln_last_error());
    assert_int_equal(kiln__tensor_reserve(y), KILN_OK);
    for (int ith = 0; ith < nth; ith++) {
        k.ith = ith;
        k.nth = nth;
        if (kiln__ops[op].ref(&k) != KILN_OK) fail_msg("ref: %s", kiln_last_error());
    }
    return y;
}

/* Prepares algorithm `name` on case c by hand (constant inputs with data,
 * the others without) for nth threads and precision p; returns prepare's
 * status, and on KILN_OK runs it `runs` times, refilling the runtime inputs
 * with fresh values before each run, and checks each output against the
 * reference, the output's and the scratch's guard bytes, flops and cost. */
static kiln_status hand_algo(ah_case *c, const char *name, int p, int nth, int runs, double tol) {
    const kiln__algo *algo = kiln__algo_find(name);
    assert_non_null(algo);
    kiln_tensor *ref = hand_reference(c, 1);
    kiln_tensor hdr[AH_MAX_IO], *ins[AH_MAX_IO];
    for (int i = 0; i < c->n_in; i++) {
        ins[i] = NULL;
        if (!c->in[i]) continue;
        hdr[i] = *c->in[i];
        hdr[i].owns = 0;
        if (!c->constant[i]) hdr[i].data = NULL;
        ins[i] = &hdr[i];
    }
    kiln_tensor yh = *ref, *outs[1] = {&yh};
    yh.owns = 0;
    yh.data = NULL;
    kiln__pool *pool = NULL;
    if (nth > 1) assert_int_equal(kiln__pool_create(nth, &pool), KILN_OK);
    kiln__kctx k = {.node = &c->g->nodes[c->node], .graph = c->g, .opset = 13, .n_in = c->n_in,
                    .n_out = 1, .in = ins, .out = outs, .ith = 0, .nth = 1, .pool = pool,
                    .nth_plan = nth, .precision = p};
    kiln_status st = algo->prepare(&k);
    if (st != KILN_OK) {
        assert_null(k.kstate);
        kiln__pool_free(pool);
        kiln_tensor_free(ref);
        return st;
    }
    assert_true(algo->cost(&k) > 0);
    last_serial = ((const kiln__mm_plan *)k.kstate)->serial;
    /* flops: 2 K per output element */
    const kiln_tensor *a = c->in[0];
    int64_t K = a->dims[a->ndim - 1];
    if (strcmp(k.node->op_type, "Gemm") == 0 && kiln__attr_i(k.node, "transA", 0)) K = a->dims[0];
    assert_true(k.flops == 2.0 * (double)K * (double)kiln__n(ref));
    size_t ybytes = kiln__tensor_bytes(ref);
    unsigned char *scratch = malloc(k.scratch_bytes + GUARD_BYTES);
    unsigned char *ybuf = malloc(ybytes + GUARD_BYTES);
    assert_non_null(scratch);
    assert_non_null(ybuf);
    for (int r = 0; r < runs; r++) {
        if (r > 0) { /* fresh runtime inputs, and the reference of them */
            for (int i = 0; i < c->n_in; i++)
                if (c->in[i] && !c->constant[i]) {
                    float *d = kiln_tensor_data(c->in[i]);
                    for (int64_t e = 0; e < kiln__n(c->in[i]); e++)
                        d[e] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) /
                                   (float)(1 << 23) - 1.0f;
                }
            kiln_tensor_free(ref);
            ref = hand_reference(c, 1);
        }
        memset(scratch, GUARD, k.scratch_bytes + GUARD_BYTES);
        memset(ybuf, GUARD, ybytes + GUARD_BYTES);
        for (int i = 0; i < c->n_in; i++)
            if (ins[i]) hdr[i].data = c->in[i]->data;
        yh.data = ybuf;
        k.scratch = scratch;
        if (algo->run(&k) != KILN_OK) fail_msg("%s run: %s", name, kiln_last_error());
        for (size_t g = 0; g < GUARD_BYTES; g++) {
            if (scratch[k.scratch_bytes + g] != GUARD) fail_msg("%s: scratch overrun", name);
            if (ybuf[ybytes + g] != GUARD) fail_msg("%s: output overrun", name);
        }
        ah_compare(&yh, ref, tol, name);
    }
    algo->release(k.kstate);
    free(scratch);
    free(ybuf);
    kiln__pool_free(pool);
    kiln_tensor_free(ref);
    return KILN_OK;
}

static void test_hand_runs(void **state) {
    /* small ones run on the caller alone; the last five are big enough for
     * the pool: one product over the threads, whole products per thread,
     * whole products plus a remainder split over the threads */
    static const mm_shape shapes[] = {
        {2, 2, {1, 1}, {1, 1}},             {3, 2, {3, 50, 40}, {40, 70}},
        {3, 3, {3, 29, 40}, {3, 40, 47}},   {4, 3, {2, 1, 5, 8}, {3, 8, 7}},
        {3, 3, {5, 33, 20}, {5, 20, 3}},    {2, 2, {1, 300}, {300, 513}},
        {2, 2, {100, 200}, {200, 150}},     {3, 3, {3, 64, 128}, {3, 128, 96}},
        {3, 3, {5, 64, 100}, {5, 100, 64}}, {4, 3, {2, 3, 60, 70}, {3, 70, 90}},
    };
    const size_t first_big = 5;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int cb = 0; cb <= 1; cb++)
            for (int nth = 1; nth <= 3; nth++) {
                ah_case c;
                ah_case_init(&c, "MatMul", "", 13, 1);
                ah_input(&c, rnd(shapes[s].an, shapes[s].a), 0);
                ah_input(&c, rnd(shapes[s].bn, shapes[s].b), cb);
                assert_int_equal(
                    hand_algo(&c, "matmul_sgemm", KILN_PRECISION_FP32, nth, 3, TOL_F32), KILN_OK);
                if (s >= first_big) assert_false(last_serial);
                if (s < first_big) assert_true(last_serial);
                ah_case_free(&c);
            }
    /* FusedMatMul with everything, and Gemm with a scaled bias and a copied C */
    int64_t a[] = {2, 7, 30}, b[] = {30, 45}, y[] = {2, 7, 45};
    act_case gelu = {"Gelu", 0, {0}};
    ah_case c;
    fused_case(&c, 3, a, 2, b, 0, 1, 1, &gelu, 3, y);
    assert_int_equal(hand_algo(&c, "fused_matmul_sgemm", KILN_PRECISION_FP32, 2, 3, TOL_F32),
                     KILN_OK);
    ah_case_free(&c);
    for (int full = 0; full <= 1; full++) {
        int64_t ga[] = {30, 14}, gb[] = {45, 30}, cd[] = {14, 45}, cv[] = {45};
        ah_case_init(&c, "Gemm", "", 13, 1);
        ah_input(&c, rnd(2, ga), 0);
        ah_input(&c, rnd(2, gb), 1);
        ah_input(&c, full ? rnd(2, cd) : rnd(1, cv), 0);
        ah_attr_int(&c, "transA", 1);
        ah_attr_int(&c, "transB", 1);
        ah_attr_float(&c, "beta", 0.25f);
        assert_int_equal(hand_algo(&c, "gemm_sgemm", KILN_PRECISION_FP32, 2, 3, TOL_F32), KILN_OK);
        ah_case_free(&c);
    }
}

static void test_refusals(void **state) {
    int64_t a[] = {4, 6}, b[] = {6, 5};
    ah_case c;
    /* other dtypes */
    ah_case_init(&c, "MatMul", "", 13, 1);
    ah_input(&c, ah_random(KILN_DTYPE_F64, 2, a, &seed, -1, 1), 0);
    ah_input(&c, ah_random(KILN_DTYPE_F64, 2, b, &seed, -1, 1), 1);
    assert_int_equal(hand_algo(&c, "matmul_sgemm", KILN_PRECISION_FP32, 1, 1, TOL_F32),
                     KILN_E_UNSUPPORTED);
    ah_case_free(&c);
    ah_case_init(&c, "Gemm", "", 13, 1);
    ah_input(&c, ah_random(KILN_DTYPE_I32, 2, a, &seed, -5, 5), 0);
    ah_input(&c, ah_random(KILN_DTYPE_I32, 2, b, &seed, -5, 5), 1);
    assert_int_equal(hand_algo(&c, "gemm_sgemm", KILN_PRECISION_FP32, 1, 1, TOL_F32),
                     KILN_E_UNSUPPORTED);
    ah_case_free(&c);
    /* bf16 algorithms only when the session asks for bf16, and only where
     * kiln__sgemm computes in bf16 */
    ah_case_init(&c, "MatMul", "", 13, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 1);
    assert_int_equal(hand_algo(&c, "matmul_sgemm_bf16", KILN_PRECISION_FP32, 1, 1, TOL_BF16),
                     KILN_E_UNSUPPORTED);
    ah_case_free(&c);
    int64_t a2[] = {2, 16, 40}, b2[] = {40, 24};
    for (int cb = 0; cb <= 1; cb++) {
        ah_case_init(&c, "MatMul", "", 13, 1);
        ah_input(&c, rnd(3, a2), 0);
        ah_input(&c, rnd(2, b2), cb);
        assert_int_equal(hand_algo(&c, "matmul_sgemm_bf16", KILN_PRECISION_BF16, 2, 2, TOL_BF16),
                         kiln__mm_compute_supported(KILN__GEMM_BF16) ? KILN_OK
                                                                     : KILN_E_UNSUPPORTED);
        /* the f32 algorithm serves bf16 sessions too */
        assert_int_equal(hand_algo(&c, "matmul_sgemm", KILN_PRECISION_BF16, 2, 2, TOL_F32),
                         KILN_OK);
        ah_case_free(&c);
    }
}

/* ---- FusedMatMul's reference kernel and shape rule ---------------------------------------- */

/* act(sum_k A[b,m,k] B[b,k,n] + bias[n] + Z[b,m,n]) in double, A (nb,M,K), B (nb,K,N). */
static double fused_oracle(const kiln_tensor *A, const kiln_tensor *B, const kiln_tensor *bias,
                           const kiln_tensor *Z, const kiln__act *act, int64_t nb, int64_t M,
                           int64_t N, int64_t K, int64_t bi, int64_t m, int64_t n) {
    double s = 0;
    for (int64_t k = 0; k < K; k++)
        s += kiln__ld_f(A->dtype, A->data, (bi * M + m) * K + k) *
             kiln__ld_f(B->dtype, B->data, (bi * K + k) * N + n);
    if (bias) s += kiln__ld_f(bias->dtype, bias->data, n);
    if (Z) s += kiln__ld_f(Z->dtype, Z->data, (bi * M + m) * N + n);
    return act->kind == KILN__ACT_NONE ? s : kiln__act_apply(act, (float)s);
}

static void test_fused_reference(void **state) {
    const kiln_dtype dts[] = {KILN_DTYPE_F32, KILN_DTYPE_F64};
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
            for (int nth = 1; nth <= 3; nth += 2) {
                int64_t a[] = {2, 7, 11}, b[] = {2, 11, 13}, y[] = {2, 7, 13}, nn = 13;
                ah_case c;
                ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
                ah_input(&c, ah_random(dts[d], 3, a, &seed, -2, 2), 0);
                ah_input(&c, ah_random(dts[d], 3, b, &seed, -1, 1), 0);
                ah_input(&c, ah_random(dts[d], 1, &nn, &seed, -1, 1), 0);
                ah_input(&c, ah_random(dts[d], 3, y, &seed, -1, 1), 0);
                set_act(&c, &acts[i]);
                kiln__act act;
                assert_int_equal(kiln__act_from_node(&c.g->nodes[c.node], &act), KILN_OK);
                kiln_tensor *out = hand_reference(&c, nth);
                assert_int_equal(out->ndim, 3);
                double num = 0, den = 0;
                for (int64_t bi = 0; bi < 2; bi++)
                    for (int64_t m = 0; m < 7; m++)
                        for (int64_t n = 0; n < 13; n++) {
                            double w = fused_oracle(c.in[0], c.in[1], c.in[2], c.in[3], &act, 2, 7,
                                                    13, 11, bi, m, n);
                            double g = kiln__ld_f(out->dtype, out->data, (bi * 7 + m) * 13 + n);
                            num += (g - w) * (g - w);
                            den += w * w;
                        }
                double err = sqrt(num / den);
                if (!(err < (d ? 1e-7 : 1e-6)))
                    fail_msg("FusedMatMul reference (%s, %s): error %g", kiln_dtype_name(dts[d]),
                             acts[i].name ? acts[i].name : "-", err);
                kiln_tensor_free(out);
                ah_case_free(&c);
            }
}

/* Infer of case c by hand: its status (the message in kiln_last_error). */
static kiln_status infer_status(ah_case *c) {
    kiln_tensor y;
    return infer_out(c, &y);
}

static void test_fused_infer_errors(void **state) {
    int64_t a[] = {3, 4}, b[] = {4, 5}, good_bias = 5, bad_bias = 4, bad_z[] = {3, 4};
    ah_case c;
    /* bias of the wrong length */
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 0);
    ah_input(&c, rnd(1, &bad_bias), 0);
    assert_int_equal(infer_status(&c), KILN_E_SHAPE);
    assert_non_null(strstr(kiln_last_error(), "Bias"));
    ah_case_free(&c);
    /* Z not of Y's shape */
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 0);
    ah_input(&c, rnd(1, &good_bias), 0);
    ah_input(&c, rnd(2, bad_z), 0);
    assert_int_equal(infer_status(&c), KILN_E_SHAPE);
    assert_non_null(strstr(kiln_last_error(), "Z"));
    ah_case_free(&c);
    /* unknown activation, and Clip with three parameters */
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 0);
    ah_attr_string(&c, "activation", "Swish");
    assert_int_equal(infer_status(&c), KILN_E_INVAL);
    assert_non_null(strstr(kiln_last_error(), "activation"));
    ah_case_free(&c);
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 0);
    ah_attr_string(&c, "activation", "Clip");
    float three[] = {0, 1, 2};
    ah_attr_floats(&c, "activation_params", 3, three);
    assert_int_equal(infer_status(&c), KILN_E_INVAL);
    ah_case_free(&c);
    /* integers, mixed dtypes, inner dims that differ */
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, ah_random(KILN_DTYPE_I32, 2, a, &seed, -3, 3), 0);
    ah_input(&c, ah_random(KILN_DTYPE_I32, 2, b, &seed, -3, 3), 0);
    assert_int_equal(infer_status(&c), KILN_E_TYPE);
    ah_case_free(&c);
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, b), 0);
    ah_input(&c, ah_random(KILN_DTYPE_F64, 1, &good_bias, &seed, -1, 1), 0);
    assert_int_equal(infer_status(&c), KILN_E_TYPE);
    ah_case_free(&c);
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    ah_input(&c, rnd(2, a), 0);
    ah_input(&c, rnd(2, a), 0);
    assert_int_equal(infer_status(&c), KILN_E_SHAPE);
    ah_case_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_shapes),
        cmocka_unit_test(test_matmul_planner_choice),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_beta_zero),
        cmocka_unit_test(test_fused_activations),
        cmocka_unit_test(test_fused_bias_residual),
        cmocka_unit_test(test_nan_inf),
        cmocka_unit_test(test_hand_runs),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_fused_reference),
        cmocka_unit_test(test_fused_infer_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
