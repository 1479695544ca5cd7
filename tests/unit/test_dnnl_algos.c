/* tests/unit/test_dnnl_algos.c: the oneDNN-backed algorithms (src/dnnl/)
 * forced on one-node graphs against the reference kernels (algo_harness.h):
 * MatMul shapes (2-D, batched, broadcast, 1-D operands, computed B), Gemm
 * transposes / alpha / beta / C shapes, FusedMatMul and FusedConv bias,
 * residual and every activation, Conv groups / strides / pads / dilations,
 * NaN and Inf propagation, and bf16 within 1e-2. Then the choice: the cost
 * heuristic never picks a dnnl algorithm (they are KILN_ALGOF_TUNE_ONLY),
 * tuning may and stays correct, and a process where oneDNN cannot be loaded
 * (this program run again as a child with --unloadable, pointed at a library
 * that does not exist) runs every node on kiln's algorithms and says why.
 * Built without oneDNN, it prints "skipped: built without oneDNN" and
 * passes; built with it but unable to load it, it prints "skipped: oneDNN not
 * loadable: <why>" and runs only the tests that need no library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "algo_harness.h"

#ifdef KILN_HAVE_DNNL

#include <spawn.h>
#include <sys/wait.h>

#include "dnnl/dnnl_api.h"

extern char **environ;
static char *self_argv0; /* this program, to run it again as a child */

/* The sanitizer build: GCC 12's LeakSanitizer misreads the dynamic TLS of
 * the threads libgomp starts for the dlopen'd libdnnl and crashes at exit
 * ("DTLS 7 at 0x000300000180-...", "Tracer caught signal 11"), so it scans
 * no thread-local storage here (kiln keeps no heap block reachable only from
 * TLS). What glibc does keep so, the message of a failed dlopen (libdnnl
 * tries one while creating its first primitive), is suppressed. Unused
 * without LeakSanitizer. */
__attribute__((used, visibility("default"))) const char *__lsan_default_options(void) {
    return "use_tls=0";
}
__attribute__((used, visibility("default"))) const char *__lsan_default_suppressions(void) {
    return "leak:_dlerror_run\n";
}

#define F32 KILN_DTYPE_F32
#define FP32 KILN_PRECISION_FP32
#define BF16 KILN_PRECISION_BF16
#define TOL32 1e-5
#define TOL16 1e-2

static kiln_tensor *rnd(int ndim, const int64_t *dims, unsigned *seed) {
    return ah_random(F32, ndim, dims, seed, -1, 1);
}

/* 1 if oneDNN computes bf16 products on this CPU: it needs AVX-512 (emulated
 * on AVX-512 cores, native with AVX512_BF16); elsewhere the _bf16 algorithms
 * decline every node, which is what they should do. */
static int dnnl_bf16_runs(void) {
    static int said;
    int ok = kiln__cpu_has_avx512f();
    if (!ok && !said++) printf("  (no AVX-512: the _bf16 algorithms are not run)\n");
    return ok;
}

/* Runs algo (f32 at fp32, and its _bf16 twin at bf16 where it runs) on 1 and 2
 * threads. */
static void run_both(ah_case *c, const char *algo) {
    char bf[64];
    snprintf(bf, sizeof bf, "%s_bf16", algo);
    for (int t = 1; t <= 2; t++) {
        ah_run_algo(c, algo, FP32, t, TOL32);
        if (dnnl_bf16_runs()) ah_run_algo(c, bf, BF16, t, TOL16);
    }
}

/* ---- MatMul --------------------------------------------------------------------- */

static void matmul_case(int nda, const int64_t *da, int ndb, const int64_t *db, int b_const,
                        unsigned seed) {
    ah_case c;
    ah_case_init(&c, "MatMul", "", 17, 1);
    ah_input(&c, rnd(nda, da, &seed), 0);
    ah_input(&c, rnd(ndb, db, &seed), b_const);
    run_both(&c, "dnnl_matmul");
    ah_case_free(&c);
}

static void test_matmul_2d(void **state) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {7, 13, 5}, {17, 33, 65},
                                        {64, 48, 96}, {3, 130, 1}, {100, 1, 31}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int64_t a[2] = {shapes[i][0], shapes[i][2]}, b[2] = {shapes[i][2], shapes[i][1]};
        for (int bc = 0; bc < 2; bc++) matmul_case(2, a, 2, b, bc, 11 + (unsigned)i);
    }
}

static void test_matmul_batched(void **state) {
    /* batch only A has (folds into M), equal batches, broadcast both ways, 4-D */
    int64_t a3[3] = {3, 5, 7}, b2[2] = {7, 9}, b3[3] = {3, 7, 9}, b31[3] = {1, 7, 9};
    int64_t a4[4] = {2, 1, 6, 5}, b4[4] = {1, 3, 5, 4}, a4f[4] = {2, 3, 4, 8}, b4f[4] = {2, 3, 8, 5};
    int64_t a31[3] = {1, 5, 7};
    for (int bc = 0; bc < 2; bc++) {
        matmul_case(3, a3, 2, b2, bc, 21);
        matmul_case(3, a3, 3, b3, bc, 22);
        matmul_case(3, a3, 3, b31, bc, 23);
        matmul_case(3, a31, 3, b3, bc, 24);
        matmul_case(4, a4, 4, b4, bc, 25);
        matmul_case(4, a4f, 4, b4f, bc, 26);
        matmul_case(4, a4f, 2, b4f + 2, bc, 27);
    }
}

static void test_matmul_vectors(void **state) {
    int64_t k[1] = {19}, a2[2] = {4, 19}, b2[2] = {19, 6}, a3[3] = {2, 3, 19}, b3[3] = {2, 19, 5};
    for (int bc = 0; bc < 2; bc++) {
        matmul_case(1, k, 2, b2, bc, 31); /* (K) x (K,N) -> (N) */
        matmul_case(2, a2, 1, k, bc, 32); /* (M,K) x (K) -> (M) */
        matmul_case(1, k, 1, k, bc, 33);  /* dot product -> scalar */
        matmul_case(1, k, 3, b3, bc, 34);
        matmul_case(3, a3, 1, k, bc, 35);
    }
}

/* NaN and Inf in A reach the rows they touch; -Inf too (no activation). */
static void test_matmul_nan_inf(void **state) {
    unsigned seed = 41;
    int64_t da[2] = {9, 20}, db[2] = {20, 17};
    ah_case c;
    ah_case_init(&c, "MatMul", "", 17, 1);
    kiln_tensor *a = rnd(2, da, &seed);
    float *x = (float *)kiln_tensor_data(a);
    x[3] = NAN;
    x[2 * 20 + 5] = INFINITY;
    x[5 * 20 + 7] = -INFINITY;
    ah_input(&c, a, 0);
    ah_input(&c, rnd(2, db, &seed), 1);
    run_both(&c, "dnnl_matmul");
    ah_case_free(&c);
}

/* ---- Gemm ----------------------------------------------------------------------- */

/* Gemm with A (M,K) or (K,M), B (K,N) or (N,K), C of c_ndim dims c_dims
 * (c_ndim < 0: no C). */
static void gemm_case(int64_t m, int64_t n, int64_t k, int ta, int tb, float alpha, float beta,
                      int c_ndim, const int64_t *c_dims, int c_const, int b_const,
                      unsigned seed) {
    ah_case c;
    ah_case_init(&c, "Gemm", "", 13, 1);
    int64_t da[2] = {ta ? k : m, ta ? m : k}, db[2] = {tb ? n : k, tb ? k : n};
    ah_input(&c, rnd(2, da, &seed), 0);
    ah_input(&c, rnd(2, db, &seed), b_const);
    if (c_ndim >= 0) ah_input(&c, rnd(c_ndim, c_dims, &seed), c_const);
    ah_attr_int(&c, "transA", ta);
    ah_attr_int(&c, "transB", tb);
    if (alpha != 1.0f) ah_attr_float(&c, "alpha", alpha);
    if (beta != 1.0f) ah_attr_float(&c, "beta", beta);
    run_both(&c, "dnnl_gemm");
    ah_case_free(&c);
}

static void test_gemm(void **state) {
    const int64_t m = 13, n = 37, k = 21;
    int64_t cn[1] = {n}, c1n[2] = {1, n}, cmn[2] = {m, n};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) gemm_case(m, n, k, ta, tb, 1.0f, 1.0f, 1, cn, 1, 1, 51);
    gemm_case(m, n, k, 0, 1, 1.0f, 1.0f, -1, NULL, 0, 1, 52);   /* no C */
    gemm_case(m, n, k, 0, 0, 1.0f, 1.0f, 0, NULL, 1, 1, 53);    /* scalar C */
    gemm_case(m, n, k, 0, 0, 1.0f, 1.0f, 2, c1n, 0, 1, 54);     /* (1,N), computed */
    gemm_case(m, n, k, 0, 0, 1.0f, 1.0f, 2, cmn, 0, 0, 56);     /* residual, computed B */
    gemm_case(m, n, k, 1, 1, 0.5f, 1.0f, 1, cn, 1, 1, 57);      /* alpha scales AB only */
    gemm_case(m, n, k, 0, 1, 2.0f, -0.75f, 2, cmn, 1, 1, 58);   /* beta: constant C scaled */
    gemm_case(m, n, k, 0, 1, 1.0f, 0.0f, 2, cmn, 0, 1, 59);     /* beta 0 ignores C */
    gemm_case(1, 1000, 64, 0, 1, 1.0f, 1.0f, 1, (int64_t[]){1000}, 1, 1, 60); /* classifier */
}

static const char *choose(ah_case *c, kiln__select_opts sel, int threads, double tol);

/* A per-row C (M,1): oneDNN 2.6 has only its reference implementation for
 * that broadcast, so dnnl_gemm refuses it, even forced. */
static void test_gemm_row_bias_refused(void **state) {
    unsigned seed = 55;
    int64_t da[2] = {13, 21}, db[2] = {21, 37}, dc[2] = {13, 1};
    ah_case c;
    ah_case_init(&c, "Gemm", "", 13, 1);
    ah_input(&c, rnd(2, da, &seed), 0);
    ah_input(&c, rnd(2, db, &seed), 1);
    ah_input(&c, rnd(2, dc, &seed), 1);
    const char *algo = choose(&c, (kiln__select_opts){.force_algo = "dnnl_gemm"}, 2, TOL32);
    assert_string_equal(algo, "reference");
    ah_case_free(&c);
}

/* ---- FusedMatMul ---------------------------------------------------------------- */

static const char *const acts[] = {"", "Relu", "Clip", "Gelu", "GeluTanh", "Silu"};

static void fused_matmul_case(int nda, const int64_t *da, int ndb, const int64_t *db,
                              const char *act, int bias, int z, unsigned seed) {
    ah_case c;
    ah_case_init(&c, "FusedMatMul", "kiln", 1, 1);
    int64_t n = db[ndb - 1];
    ah_input(&c, ah_random(F32, nda, da, &seed, -2, 2), 0);
    ah_input(&c, rnd(ndb, db, &seed), ndb == 2);
    ah_input(&c, bias ? rnd(1, &n, &seed) : NULL, 1);
    if (z) {
        int64_t dz[KILN_MAX_DIMS];
        for (int i = 0; i < nda - 1; i++) dz[i] = da[i];
        dz[nda - 1] = n;
        ah_input(&c, rnd(nda, dz, &seed), 0);
    }
    if (act[0]) ah_attr_string(&c, "activation", act);
    if (strcmp(act, "Clip") == 0) ah_attr_floats(&c, "activation_params", 2, (float[]){-0.5f, 0.7f});
    run_both(&c, "dnnl_fused_matmul");
    ah_case_free(&c);
}

static void test_fused_matmul(void **state) {
    int64_t a2[2] = {11, 24}, a3[3] = {2, 7, 24}, b[2] = {24, 29}, b3[3] = {2, 24, 29};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        fused_matmul_case(2, a2, 2, b, acts[i], 1, 0, 61 + (unsigned)i);
        fused_matmul_case(3, a3, 2, b, acts[i], 1, 1, 71 + (unsigned)i);
    }
    fused_matmul_case(2, a2, 2, b, "Relu", 0, 1, 81); /* residual without bias */
    fused_matmul_case(2, a2, 2, b, "", 0, 0, 82);
    fused_matmul_case(3, a3, 3, b3, "Gelu", 1, 1, 83); /* batched B (computed): no folding */
}

/* ---- Conv / FusedConv ----------------------------------------------------------- */

typedef struct conv_spec {
    int64_t n, c, h, w, k, r, s, group;
    int64_t stride[2], dil[2], pads[4]; /* pads: begin h, w, end h, w */
    const char *auto_pad;               /* NULL: explicit pads */
} conv_spec;

static void conv_case(const conv_spec *cs, const char *op, const char *act, int bias, int z,
                      int w_const, unsigned seed) {
    ah_case c;
    int fused = strcmp(op, "FusedConv") == 0;
    ah_case_init(&c, op, fused ? "kiln" : "", fused ? 1 : 17, 1);
    int64_t dx[4] = {cs->n, cs->c, cs->h, cs->w}, dw[4] = {cs->k, cs->c / cs->group, cs->r, cs->s};
    ah_input(&c, ah_random(F32, 4, dx, &seed, -2, 2), 0);
    ah_input(&c, rnd(4, dw, &seed), w_const);
    int64_t kk = cs->k;
    if (bias || z) ah_input(&c, bias ? rnd(1, &kk, &seed) : NULL, 1);
    if (z) { /* Z of Y's shape */
        int64_t p = (cs->h + cs->pads[0] + cs->pads[2] - cs->dil[0] * (cs->r - 1) - 1) / cs->stride[0] + 1;
        int64_t q = (cs->w + cs->pads[1] + cs->pads[3] - cs->dil[1] * (cs->s - 1) - 1) / cs->stride[1] + 1;
        if (cs->auto_pad) {
            p = (cs->h + cs->stride[0] - 1) / cs->stride[0];
            q = (cs->w + cs->stride[1] - 1) / cs->stride[1];
        }
        int64_t dz[4] = {cs->n, cs->k, p, q};
        ah_input(&c, rnd(4, dz, &seed), 0);
    }
    ah_attr_ints(&c, "strides", 2, cs->stride);
    ah_attr_ints(&c, "dilations", 2, cs->dil);
    if (cs->auto_pad) ah_attr_string(&c, "auto_pad", cs->auto_pad);
    else ah_attr_ints(&c, "pads", 4, cs->pads);
    if (cs->group != 1) ah_attr_int(&c, "group", cs->group);
    if (act && act[0]) ah_attr_string(&c, "activation", act);
    if (act && strcmp(act, "Clip") == 0)
        ah_attr_floats(&c, "activation_params", 2, (float[]){0.0f, 6.0f});
    run_both(&c, fused ? "dnnl_fused_conv" : "dnnl_conv");
    ah_case_free(&c);
}

static const conv_spec convs[] = {
    /* n  c   h   w   k  r  s  g   stride  dil     pads */
    {1, 8, 10, 10, 16, 3, 3, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL},   /* 3x3 same */
    {2, 3, 17, 15, 8, 7, 7, 1, {2, 2}, {1, 1}, {3, 3, 3, 3}, NULL},    /* stem: C=3, 7x7/2 */
    {1, 16, 9, 9, 24, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL},    /* 1x1 */
    {1, 16, 9, 11, 8, 1, 1, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, NULL},    /* 1x1 stride 2 */
    {1, 12, 11, 13, 12, 3, 3, 12, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL}, /* depthwise */
    {1, 12, 12, 12, 12, 3, 3, 12, {2, 2}, {1, 1}, {0, 0, 1, 1}, NULL}, /* depthwise /2, asym */
    {2, 6, 9, 8, 4, 3, 3, 2, {2, 1}, {1, 1}, {1, 0, 2, 1}, NULL},      /* groups, asym */
    {1, 5, 13, 14, 7, 3, 2, 1, {1, 1}, {2, 3}, {2, 1, 2, 3}, NULL},    /* dilated */
    {1, 4, 8, 7, 5, 3, 3, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, "SAME_UPPER"},
    {1, 3, 1, 1, 2, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL},      /* 1x1 image */
};

static void test_conv(void **state) {
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
        conv_case(&convs[i], "Conv", NULL, 1, 0, 1, 101 + (unsigned)i);
        conv_case(&convs[i], "Conv", NULL, 0, 0, i % 3 == 0 ? 0 : 1, 121 + (unsigned)i);
    }
}

static void test_fused_conv(void **state) {
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
        for (size_t i = 0; i < sizeof convs / sizeof *convs; i += 2)
            conv_case(&convs[i + a % 2], "FusedConv", acts[a], (a + i) % 3 != 0, 1, 1,
                      201 + (unsigned)(a * 16 + i));
    conv_case(&convs[0], "FusedConv", "Relu", 1, 0, 1, 301); /* no residual */
}

static void test_conv_nan_inf(void **state) {
    unsigned seed = 311;
    const conv_spec *cs = &convs[0];
    int64_t dx[4] = {cs->n, cs->c, cs->h, cs->w}, dw[4] = {cs->k, cs->c, cs->r, cs->s}, k = cs->k;
    ah_case c;
    ah_case_init(&c, "Conv", "", 17, 1);
    kiln_tensor *x = rnd(4, dx, &seed);
    float *xd = (float *)kiln_tensor_data(x);
    xd[11] = NAN;
    xd[3 * 100 + 55] = INFINITY;
    ah_input(&c, x, 0);
    ah_input(&c, rnd(4, dw, &seed), 1);
    ah_input(&c, rnd(1, &k, &seed), 1);
    ah_attr_ints(&c, "pads", 4, cs->pads);
    run_both(&c, "dnnl_conv");
    ah_case_free(&c);
}

/* The _bf16 algorithms never take a node at fp32 precision. */
static void test_bf16_only_at_bf16(void **state) {
    unsigned seed = 401;
    int64_t da[2] = {8, 16}, db[2] = {16, 8};
    ah_case c;
    ah_case_init(&c, "MatMul", "", 17, 1);
    ah_input(&c, rnd(2, da, &seed), 0);
    ah_input(&c, rnd(2, db, &seed), 1);
    for (int t = 1; t <= 2; t++) {
        kiln__select_opts sel = {.precision = FP32, .force_algo = "dnnl_matmul_bf16"};
        assert_string_equal(choose(&c, sel, t, TOL32), "reference");
        sel.tune = 1; /* nor when tuning */
        assert_null(strstr(choose(&c, sel, t, TOL32), "bf16"));
    }
    ah_case_free(&c);
}

/* Every dnnl algorithm is registered, chosen only by tuning, and none is
 * PARALLEL: oneDNN runs its own threads inside one call. */
static void test_registered(void **state) {
    static const char *const names[] = {
        "dnnl_matmul", "dnnl_matmul_bf16", "dnnl_gemm", "dnnl_gemm_bf16",
        "dnnl_fused_matmul", "dnnl_fused_matmul_bf16", "dnnl_conv", "dnnl_conv_bf16",
        "dnnl_fused_conv", "dnnl_fused_conv_bf16"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const kiln__algo *a = kiln__algo_find(names[i]);
        assert_non_null(a);
        assert_null(a->flags & KILN_OPF_PARALLEL ? a : NULL); /* oneDNN threads inside */
        assert_true(a->flags & KILN_ALGOF_TUNE_ONLY);
        assert_int_not_equal(KILN_ALGOF_TUNE_ONLY & KILN_OPF_PARALLEL, KILN_ALGOF_TUNE_ONLY);
    }
}

/* ---- the choice ------------------------------------------------------------------ */

/* The algorithm the planner picks for c's node with sel on `threads`
 * threads, after checking its outputs against the reference within tol. */
static const char *choose(ah_case *c, kiln__select_opts sel, int threads, double tol) {
    if (!c->finalized) {
        if (kiln__graph_finalize(c->g) != KILN_OK) fail_msg("graph: %s", kiln_last_error());
        c->finalized = 1;
    }
    kiln_tensor *ref[AH_MAX_IO] = {0}, *got[AH_MAX_IO] = {0};
    const char *ref_algo, *algo;
    kiln__select_opts sref = {.reference = 1};
    ah_exec(c, &sref, threads, ref, &ref_algo);
    ah_exec(c, &sel, threads, got, &algo);
    for (int k = 0; k < c->n_out; k++) {
        ah_compare(got[k], ref[k], tol, algo);
        kiln_tensor_free(ref[k]);
        kiln_tensor_free(got[k]);
    }
    return algo;
}

/* Which of c's candidates runs: `dnnl` (a dnnl algorithm that takes the
 * node: checked by forcing it, when the library is loadable) is never the
 * heuristic's choice, at fp32 and (with its _bf16 twin) bf16, on 1 and 2
 * threads; with tuning, whichever wins is correct. */
static void check_choice(ah_case *c, const char *dnnl) {
    char bf[64];
    snprintf(bf, sizeof bf, "%s_bf16", dnnl);
    const int loadable = kiln__dnnl_unavailable() == NULL;
    for (int t = 1; t <= 2; t++)
        for (int p = 0; p < 2; p++) {
            kiln_precision prec = p ? BF16 : FP32;
            double tol = p ? TOL16 : TOL32;
            if (loadable && (!p || dnnl_bf16_runs())) /* a real candidate */
                ah_run_algo(c, p ? bf : dnnl, prec, t, tol);
            const char *algo = ah_run(c, prec, t, tol);
            if (strncmp(algo, "dnnl_", 5) == 0)
                fail_msg("the heuristic chose %s for %s (%d threads)", algo,
                         c->g->nodes[c->node].op_type, t);
            choose(c, (kiln__select_opts){.precision = prec, .tune = 1}, t, tol);
        }
}

static void test_heuristic_never_dnnl(void **state) {
    unsigned seed = 501;
    static const int64_t mm[][3] = {{64, 256, 128}, {1, 1000, 512}, {7, 13, 5}, {100, 384, 256}};
    for (size_t i = 0; i < sizeof mm / sizeof *mm; i++) {
        int64_t da[2] = {mm[i][0], mm[i][2]}, db[2] = {mm[i][2], mm[i][1]};
        ah_case c;
        ah_case_init(&c, "MatMul", "", 17, 1);
        ah_input(&c, rnd(2, da, &seed), 0);
        ah_input(&c, rnd(2, db, &seed), 1);
        check_choice(&c, "dnnl_matmul");
        ah_case_free(&c);
    }
    { /* Gemm, transposed weights, bias */
        int64_t da[2] = {32, 384}, db[2] = {256, 384}, dc[1] = {256};
        ah_case c;
        ah_case_init(&c, "Gemm", "", 13, 1);
        ah_input(&c, rnd(2, da, &seed), 0);
        ah_input(&c, rnd(2, db, &seed), 1);
        ah_input(&c, rnd(1, dc, &seed), 1);
        ah_attr_int(&c, "transB", 1);
        check_choice(&c, "dnnl_gemm");
        ah_case_free(&c);
    }
    static const conv_spec cv[] = {
        {1, 64, 28, 28, 64, 3, 3, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL},     /* 3x3 */
        {1, 128, 14, 14, 256, 1, 1, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, NULL},   /* 1x1 */
        {1, 3, 56, 56, 32, 7, 7, 1, {2, 2}, {1, 1}, {3, 3, 3, 3}, NULL},      /* stem */
        {1, 32, 28, 28, 32, 3, 3, 32, {1, 1}, {1, 1}, {1, 1, 1, 1}, NULL},    /* depthwise */
    };
    for (size_t i = 0; i < sizeof cv / sizeof *cv; i++) {
        const conv_spec *cs = &cv[i];
        int64_t dx[4] = {cs->n, cs->c, cs->h, cs->w};
        int64_t dw[4] = {cs->k, cs->c / cs->group, cs->r, cs->s}, k = cs->k;
        for (int fused = 0; fused < 2; fused++) {
            ah_case c;
            ah_case_init(&c, fused ? "FusedConv" : "Conv", fused ? "kiln" : "", fused ? 1 : 17, 1);
            ah_input(&c, ah_random(F32, 4, dx, &seed, -2, 2), 0);
            ah_input(&c, rnd(4, dw, &seed), 1);
            ah_input(&c, rnd(1, &k, &seed), 1);
            ah_attr_ints(&c, "strides", 2, cs->stride);
            ah_attr_ints(&c, "pads", 4, cs->pads);
            if (cs->group != 1) ah_attr_int(&c, "group", cs->group);
            if (fused) ah_attr_string(&c, "activation", "Relu");
            check_choice(&c, fused ? "dnnl_fused_conv" : "dnnl_conv");
            ah_case_free(&c);
        }
    }
}

/* ---- oneDNN not loadable (the child process) ---------------------------------------- */

#define NO_SUCH_DNNL "libkiln-test-no-such-dnnl.so.2"

/* The library cannot be loaded: the reason names it, every dnnl algorithm
 * declines (forcing one leaves the reference kernel), and the planner, with
 * or without tuning, runs kiln's own algorithms. */
static void test_unloadable(void **state) {
    const char *why = kiln__dnnl_unavailable();
    assert_non_null(why);
    assert_non_null(strstr(why, NO_SUCH_DNNL));
    printf("skipped: oneDNN not loadable: %s\n", why);
    assert_int_equal(kiln__dnnl_load(), KILN_E_UNSUPPORTED);
    assert_int_equal(strncmp(kiln_last_error(), "oneDNN not loadable: ", 21), 0);
    assert_non_null(strstr(kiln_last_error(), NO_SUCH_DNNL));
    assert_int_equal(kiln__dnnl_set_library("libdnnl.so.2"), KILN_E_INVAL); /* too late */

    unsigned seed = 601;
    const conv_spec *cs = &convs[0];
    int64_t da[2] = {33, 70}, db[2] = {70, 41}, dx[4] = {cs->n, cs->c, cs->h, cs->w};
    int64_t dw[4] = {cs->k, cs->c, cs->r, cs->s};
    for (int conv = 0; conv < 2; conv++) {
        ah_case c;
        ah_case_init(&c, conv ? "Conv" : "MatMul", "", 17, 1);
        ah_input(&c, conv ? rnd(4, dx, &seed) : rnd(2, da, &seed), 0);
        ah_input(&c, conv ? rnd(4, dw, &seed) : rnd(2, db, &seed), 1);
        if (conv) ah_attr_ints(&c, "pads", 4, cs->pads);
        const char *dnnl = conv ? "dnnl_conv" : "dnnl_matmul";
        for (int t = 1; t <= 2; t++) {
            const char *forced = choose(&c, (kiln__select_opts){.force_algo = dnnl}, t, TOL32);
            assert_string_equal(forced, "reference");
            const char *tuned = choose(&c, (kiln__select_opts){.tune = 1}, t, TOL32);
            assert_int_not_equal(strncmp(tuned, "dnnl_", 5), 0);
        }
        ah_case_free(&c);
    }
}

/* Runs this program again with --unloadable; passes when the child does. */
static void test_unloadable_child(void **state) {
    char *argv[] = {self_argv0, "--unloadable", NULL};
    pid_t pid;
    fflush(stdout);
    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv) {
    self_argv0 = argv[0];
    if (argc > 1 && strcmp(argv[1], "--unloadable") == 0) {
        if (kiln__dnnl_set_library(NO_SUCH_DNNL) != KILN_OK) { /* before any use */
            fprintf(stderr, "kiln__dnnl_set_library: %s\n", kiln_last_error());
            return 1;
        }
        const struct CMUnitTest child[] = {
            cmocka_unit_test(test_unloadable),
            cmocka_unit_test(test_registered),
            cmocka_unit_test(test_heuristic_never_dnnl),
        };
        return cmocka_run_group_tests_name("oneDNN not loadable", child, NULL, NULL);
    }
    const char *why = kiln__dnnl_unavailable();
    if (why) {
        printf("skipped: oneDNN not loadable: %s\n", why);
        const struct CMUnitTest rest[] = {
            cmocka_unit_test(test_registered),
            cmocka_unit_test(test_heuristic_never_dnnl),
            cmocka_unit_test(test_unloadable_child),
        };
        return cmocka_run_group_tests(rest, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registered),
        cmocka_unit_test(test_heuristic_never_dnnl),
        cmocka_unit_test(test_unloadable_child),
        cmocka_unit_test(test_matmul_2d),
        cmocka_unit_test(test_matmul_batched),
        cmocka_unit_test(test_matmul_vectors),
        cmocka_unit_test(test_matmul_nan_inf),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_row_bias_refused),
        cmocka_unit_test(test_fused_matmul),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_fused_conv),
        cmocka_unit_test(test_conv_nan_inf),
        cmocka_unit_test(test_bf16_only_at_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void) {
    printf("skipped: built without oneDNN\n");
    return 0;
}

#endif
