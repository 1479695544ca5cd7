/* src/cpu/kernels/matmul_algos.c: the packed-GEMM algorithms of MatMul,
 * Gemm and kiln.FusedMatMul (algo.h), each in f32 and in bf16 (bf16
 * products, f32 accumulation; only when the session asks for bf16). They
 * turn the node into a batched GEMM plan (matmul.h) and share its run.
 *
 *   MatMul        A (..., M, K) or (K) x B (..., K, N) or (K), numpy
 *                 broadcasting; a batch only A has folds into M.
 *   Gemm          Y (M,N) = alpha op(A) op(B) + beta C: C (N), (1,N) or a
 *                 scalar is a column bias, (M,1) a row bias (scaled by beta
 *                 per run when beta != 1), (M,N) a residual when beta is 1,
 *                 else copied into Y and scaled there by the product's beta.
 *                 beta == 0 ignores C.
 *   FusedMatMul   Y = act(MatMul(A, B) + Bias + Z): Bias the column bias, Z
 *                 the residual, act the epilogue's activation.
 *
 * f32 tensors only (other dtypes run the reference kernel). */
#include "cpu/kernels/matmul.h"
#include "ops/algo.h"
#include "ops/fused.h"

/* KILN_OK if computing in ct suits this node's session and CPU. */
static kiln_status accept_compute(const kiln__kctx *c, kiln__gemm_compute ct) {
    if (ct == KILN__GEMM_BF16 && c->precision != KILN_PRECISION_BF16) return KILN_E_UNSUPPORTED;
    return kiln__mm_compute_supported(ct) ? KILN_OK : KILN_E_UNSUPPORTED;
}

/* KILN_OK if inputs [0, n) that are present are f32 tensors. */
static kiln_status all_f32(const kiln__kctx *c, int n) {
    for (int i = 0; i < n; i++) {
        const kiln_tensor *t = kiln__in(c, i);
        if (t && t->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    }
    const kiln_tensor *y = kiln__out(c, 0);
    return y && y->dtype == KILN_DTYPE_F32 ? KILN_OK : KILN_E_UNSUPPORTED;
}

/* ---- MatMul ------------------------------------------------------------------ */

static kiln_status matmul_prepare(kiln__kctx *c, kiln__gemm_compute ct) {
    KILN__TRY(accept_compute(c, ct));
    KILN__TRY(all_f32(c, 2));
    kiln__mm_plan p;
    kiln__mm_plan_init(&p);
    p.compute = ct;
    KILN__TRY(kiln__mm_plan_matmul(&p, c, 0, 1));
    return kiln__mm_finish(c, &p);
}

/* ---- FusedMatMul --------------------------------------------------------------- */

static kiln_status gemm_act_of(const kiln__act *a, kiln__mm_plan *p) {
    switch (a->kind) {
    case KILN__ACT_NONE: p->act = KILN__GEMM_ACT_NONE; break;
    case KILN__ACT_RELU: p->act = KILN__GEMM_ACT_RELU; break;
    case KILN__ACT_CLIP: p->act = KILN__GEMM_ACT_CLIP; break;
    case KILN__ACT_GELU: p->act = KILN__GEMM_ACT_GELU_ERF; break;
    case KILN__ACT_GELU_TANH: p->act = KILN__GEMM_ACT_GELU_TANH; break;
    case KILN__ACT_SILU: p->act = KILN__GEMM_ACT_SILU; break;
    default: return KILN_E_UNSUPPORTED;
    }
    p->act_min = a->lo;
    p->act_max = a->hi;
    return KILN_OK;
}

/* A (..., M, K), B (..., K, N), Bias (N), Z (Y's shape) -> Y (..., M, N). */
static kiln_status fused_matmul_prepare(kiln__kctx *c, kiln__gemm_compute ct) {
    KILN__TRY(accept_compute(c, ct));
    KILN__TRY(all_f32(c, 4));
    kiln__mm_plan p;
    kiln__mm_plan_init(&p);
    p.compute = ct;
    KILN__TRY(kiln__mm_plan_matmul(&p, c, 0, 1));
    kiln__act act;
    KILN__TRY(kiln__act_from_node(c->node, &act));
    KILN__TRY(gemm_act_of(&act, &p));
    const kiln_tensor *bias = kiln__in(c, 2), *z = kiln__in(c, 3);
    if (bias) {
        if (kiln__n(bias) != p.n) return KILN_E_UNSUPPORTED; /* infer refuses it anyway */
        p.bias_in = 2;
        p.bias_kind = KILN__GEMM_BIAS_COL;
        p.bias_src = KILN__MM_BIAS_INPUT;
    }
    if (z) {
        if (kiln__n(z) != kiln__n(c->out[0])) return KILN_E_UNSUPPORTED;
        p.res_in = 3;
    }
    return kiln__mm_finish(c, &p);
}

/* ---- Gemm ------------------------------------------------------------------------ */

/* A (M,K) or (K,M) (transA), B (K,N) or (N,K) (transB), C broadcastable
 * to (M,N) -> Y (M,N). */
static kiln_status gemm_prepare(kiln__kctx *c, kiln__gemm_compute ct) {
    KILN__TRY(accept_compute(c, ct));
    KILN__TRY(all_f32(c, 3));
    const kiln_tensor *a = c->in[0], *b = c->in[1], *cc = kiln__in(c, 2);
    if (a->ndim != 2 || b->ndim != 2) return KILN_E_UNSUPPORTED; /* infer refuses it */
    kiln__mm_plan p;
    kiln__mm_plan_init(&p);
    p.compute = ct;
    p.a_in = 0;
    p.b_in = 1;
    p.trans_a = kiln__attr_i(c->node, "transA", 0) != 0;
    p.trans_b = kiln__attr_i(c->node, "transB", 0) != 0;
    p.m = a->dims[p.trans_a ? 1 : 0];
    p.k = a->dims[p.trans_a ? 0 : 1];
    p.n = b->dims[p.trans_b ? 0 : 1];
    if (b->dims[p.trans_b ? 1 : 0] != p.k) return KILN_E_UNSUPPORTED;
    p.lda = a->dims[1];
    p.ldb = b->dims[1];
    p.alpha = kiln__attr_f(c->node, "alpha", 1.0f);
    float beta = kiln__attr_f(c->node, "beta", 1.0f);
    if (cc && beta != 0.0f) {
        int64_t mn[2] = {p.m, p.n}, str[2];
        if (cc->ndim > 2) return KILN_E_UNSUPPORTED;
        for (int i = 0; i < cc->ndim; i++) {
            int64_t d = cc->dims[i], want = mn[2 - cc->ndim + i];
            if (d != want && d != 1) return KILN_E_UNSUPPORTED; /* infer refuses it */
        }
        kiln__bcast_strides(cc->ndim, cc->dims, 2, mn, str);
        if (str[0] == 0 || str[1] == 0) { /* a vector (or scalar) along N or M */
            int col = str[0] == 0;
            p.bias_in = 2;
            p.bias_kind = col ? KILN__GEMM_BIAS_COL : KILN__GEMM_BIAS_ROW;
            p.bias_stride = col ? str[1] : str[0];
            p.bias_scale = beta;
            p.bias_src = beta == 1.0f && p.bias_stride == 1 ? KILN__MM_BIAS_INPUT
                                                             : KILN__MM_BIAS_SCALED;
        } else if (beta == 1.0f) {
            p.res_in = 2;
        } else {
            p.copy_in = 2;
            p.copy_rs = str[0];
            p.copy_cs = str[1];
            p.beta = beta;
        }
    }
    return kiln__mm_finish(c, &p);
}

/* ---- the algorithm table entries ------------------------------------------------ */

static kiln_status matmul_f32(kiln__kctx *c) { return matmul_prepare(c, KILN__GEMM_F32); }
static kiln_status matmul_bf16(kiln__kctx *c) { return matmul_prepare(c, KILN__GEMM_BF16); }
static kiln_status gemm_f32(kiln__kctx *c) { return gemm_prepare(c, KILN__GEMM_F32); }
static kiln_status gemm_bf16(kiln__kctx *c) { return gemm_prepare(c, KILN__GEMM_BF16); }
static kiln_status fused_f32(kiln__kctx *c) { return fused_matmul_prepare(c, KILN__GEMM_F32); }
static kiln_status fused_bf16(kiln__kctx *c) { return fused_matmul_prepare(c, KILN__GEMM_BF16); }

#define MM_ALGO(algo_name, domain, op, prep)                                                \
    const kiln__algo kiln__algo_##algo_name = {#algo_name, domain, op, 0, prep, kiln__mm_cost, \
                                               kiln__mm_run, kiln__mm_release}

MM_ALGO(matmul_sgemm, "", "MatMul", matmul_f32);
MM_ALGO(matmul_sgemm_bf16, "", "MatMul", matmul_bf16);
MM_ALGO(gemm_sgemm, "", "Gemm", gemm_f32);
MM_ALGO(gemm_sgemm_bf16, "", "Gemm", gemm_bf16);
MM_ALGO(fused_matmul_sgemm, "kiln", "FusedMatMul", fused_f32);
MM_ALGO(fused_matmul_sgemm_bf16, "kiln", "FusedMatMul", fused_bf16);
