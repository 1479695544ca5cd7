/* src/cuda/cuda_matmul.c: MatMul, Gemm and kiln.FusedMatMul on cuBLASLt
 * (algorithms cuda_matmul, cuda_gemm, cuda_fused_matmul).
 *
 * Row-major Y(M,N) = A(M,K) B(K,N) is column-major Y^T = B^T A^T, so cuBLAS's
 * first operand is our B and its second our A, and Y needs no transpose.
 * Batches (MatMul of rank > 2) are strided batches; a 2-D B under a batched A
 * folds the batch into M. Epilogues: a bias along N (FusedMatMul's Bias,
 * Gemm's C of shape (N,) or (1,N)) and Relu / tanh-Gelu run in cuBLASLt's
 * epilogue; a residual (FusedMatMul's Z, Gemm's full C) is cuBLAS's C with
 * beta; other activations run after, in place (kiln__cu_bias_act).
 *
 * Precision fp32: f32 operands, f32 accumulation (CUBLAS_COMPUTE_32F, no
 * TF32). bf16: constant operands converted once at plan time, the others per
 * run into scratch; bf16 products on the tensor cores with f32 accumulation
 * and f32 output.
 *
 * A 1x1 convolution (stride 1, no pads, one group) is a product too
 * (algorithms cuda_conv_1x1, cuda_fused_conv_1x1): per image, Y (K, H*W) =
 * W (K, C) X (C, H*W), a strided batch with W shared; its bias runs along M,
 * with the activation after the product in one pass (kiln__cu_bias_act), and
 * a residual Z through cuBLAS's C. fp32 only: on the H100, ResNet-50 at
 * batch 64 ran in 25.9 ms with them against 30.5 ms with cuDNN's legacy
 * algorithms for its 1x1 layers, but at bf16 in 15.8 against 14.7 ms (the
 * per-run bf16 conversion of the activations costs more than it gains).
 */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_algo.h"

typedef struct mm_geom {
    int64_t m, n, k, batch;
    int64_t stride_a, stride_b; /* elements between batches (0: shared) */
    int trans_a, trans_b;
} mm_geom;

typedef struct mm_state {
    kiln__device *dev;
    mm_geom g;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t lx, lw, ly; /* cuBLAS A (our B), cuBLAS B (our A), C and D */
    cublasLtMatmulAlgo_t algo;
    int bf16;
    int in_of[2];       /* the inputs that are A and B (0 and 1 unless a 1x1 convolution) */
    void *c16[2];       /* bf16 copies of constant A / B (device, owned), or NULL */
    size_t off16[2];    /* scratch offsets of the per-run bf16 conversions of A / B */
    float alpha, beta;
    int bias_in;        /* input holding the bias along N, or -1 */
    int mbias_in;       /* input holding a bias along M (applied after, with post), or -1 */
    float *bias_dev;    /* Gemm: beta * C as the bias (device, owned), or NULL */
    int z_in;           /* input added through cuBLAS's C (beta), or -1 */
    kiln__cu_op post;   /* activation after the product (KILN__CU_IDENTITY: none) */
    float p0, p1;
} mm_state;

static void mm_release(void *ks) {
    mm_state *s = ks;
    if (!s) return;
    if (s->lx) cublasLtMatrixLayoutDestroy(s->lx);
    if (s->lw) cublasLtMatrixLayoutDestroy(s->lw);
    if (s->ly) cublasLtMatrixLayoutDestroy(s->ly);
    if (s->op) cublasLtMatmulDescDestroy(s->op);
    kiln__device_free(s->dev, s->c16[0]);
    kiln__device_free(s->dev, s->c16[1]);
    kiln__device_free(s->dev, s->bias_dev);
    free(s);
}

/* Geometry of MatMul(A, B) -> Y: A (..., M, K), B (..., K, N) with equal
 * batch dims, or one side 2-D (or all-ones batch dims). */
static kiln_status matmul_geom(const kiln_tensor *a, const kiln_tensor *b, mm_geom *g) {
    if (a->ndim < 2 || b->ndim < 2) return KILN_E_UNSUPPORTED;
    memset(g, 0, sizeof *g);
    g->k = a->dims[a->ndim - 1];
    g->n = b->dims[b->ndim - 1];
    int64_t ba = kiln__numel(a->ndim - 2, a->dims), bb = kiln__numel(b->ndim - 2, b->dims);
    g->m = a->dims[a->ndim - 2];
    g->batch = 1;
    if (bb == 1) { /* B is one matrix: A's batches fold into M */
        g->m *= ba;
    } else if (ba == 1) {
        g->batch = bb;
        g->stride_b = g->k * g->n;
    } else {
        if (a->ndim != b->ndim) return KILN_E_UNSUPPORTED;
        for (int d = 0; d < a->ndim - 2; d++)
            if (a->dims[d] != b->dims[d]) return KILN_E_UNSUPPORTED;
        g->batch = ba;
        g->stride_a = g->m * g->k;
        g->stride_b = g->k * g->n;
    }
    if (g->batch > 0x7fffffff) return KILN_E_UNSUPPORTED;
    return KILN_OK;
}

static kiln_status layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows, int64_t cols,
                          int64_t ld, int64_t batch, int64_t stride) {
    KILN__CUBLAS(cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld), "matrix layout");
    if (batch > 1) {
        int32_t bc = (int32_t)batch;
        KILN__CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc,
                                                      sizeof bc), "batch count");
        KILN__CUBLAS(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                      &stride, sizeof stride), "batch stride");
    }
    return KILN_OK;
}

/* Largest power of two (at most 64, the arena's alignment) dividing every
 * batch's start of an operand of elem-byte elements. */
static uint32_t operand_align(int64_t stride, int elem) {
    uint32_t a = 64;
    int64_t bytes = stride * elem;
    while (a > (uint32_t)elem && bytes % a) a >>= 1;
    return a;
}

static cublasLtEpilogue_t epilogue_of(int bias, kiln__cu_op *post) {
    kiln__cu_op act = *post;
    if (act == KILN__CU_RELU) {
        *post = KILN__CU_IDENTITY;
        return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    }
    if (act == KILN__CU_GELU_TANH) {
        *post = KILN__CU_IDENTITY;
        return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    }
    return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

/* Elements of operand A (o 0) or B (o 1) over all batches. */
static int64_t operand_elems(const mm_geom *g, int o) {
    return o == 0 ? (g->stride_a ? g->batch : 1) * g->m * g->k : (g->stride_b ? g->batch : 1) * g->k * g->n;
}

/* Descriptors, epilogue and the heuristic's algorithm for s->g. */
static kiln_status mm_plan(kiln__device *d, mm_state *s) {
    const mm_geom *g = &s->g;
    cudaDataType_t in_t = s->bf16 ? CUDA_R_16BF : CUDA_R_32F;
    int in_elem = s->bf16 ? 2 : 4;
    KILN__CUBLAS(cublasLtMatmulDescCreate(&s->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    cublasOperation_t tx = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, tw = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    KILN__CUBLAS(cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_TRANSA, &tx, sizeof tx), "transa");
    KILN__CUBLAS(cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_TRANSB, &tw, sizeof tw), "transb");
    int has_bias = s->bias_in >= 0 || s->bias_dev;
    /* a bias along M comes after the product: so does the activation */
    cublasLtEpilogue_t epi = s->mbias_in >= 0 ? CUBLASLT_EPILOGUE_DEFAULT : epilogue_of(has_bias, &s->post);
    KILN__CUBLAS(cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "epilogue");
    if (has_bias) {
        cudaDataType_t bt = CUDA_R_32F;
        KILN__CUBLAS(cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                                    sizeof bt), "bias type");
    }
    /* our B: (K,N) row-major is (N,K) column-major; transposed it is stored (N,K) */
    KILN__TRY(layout(&s->lx, in_t, g->trans_b ? g->k : g->n, g->trans_b ? g->n : g->k,
                     g->trans_b ? g->k : g->n, g->batch, g->stride_b));
    KILN__TRY(layout(&s->lw, in_t, g->trans_a ? g->m : g->k, g->trans_a ? g->k : g->m,
                     g->trans_a ? g->m : g->k, g->batch, g->stride_a));
    KILN__TRY(layout(&s->ly, CUDA_R_32F, g->n, g->m, g->n, g->batch, g->m * g->n));
    cublasLtMatmulPreference_t pref;
    KILN__CUBLAS(cublasLtMatmulPreferenceCreate(&pref), "preference");
    uint64_t ws = d->lt_ws_bytes;
    uint32_t ax = operand_align(g->stride_b, in_elem), aw = operand_align(g->stride_a, in_elem),
             ay = operand_align(g->m * g->n, 4);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ax, sizeof ax);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &aw, sizeof aw);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ay, sizeof ay);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ay, sizeof ay);
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t e = cublasLtMatmulAlgoGetHeuristic(d->lt, s->op, s->lx, s->lw, s->ly, s->ly, pref, 1,
                                                      &res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    if (e != CUBLAS_STATUS_SUCCESS || nres == 0) return KILN_E_UNSUPPORTED;
    s->algo = res.algo;
    return KILN_OK;
}

/* Common prepare: state for geometry g with the inputs' roles set by the
 * caller in tmpl (in_of, bias_in, mbias_in, z_in, post, alpha, beta). */
static kiln_status mm_prepare(kiln__kctx *c, const mm_state *tmpl) {
    if (c->precision != KILN_PRECISION_FP32 && c->precision != KILN_PRECISION_BF16)
        return KILN_E_UNSUPPORTED;
    mm_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    *s = *tmpl;
    s->dev = c->dev;
    s->bf16 = c->precision == KILN_PRECISION_BF16;
    c->kstate = s;
    kiln_status st = mm_plan(c->dev, s);
    if (st != KILN_OK) return st;
    const mm_geom *g = &s->g;
    size_t off = 0;
    for (int o = 0; s->bf16 && o < 2; o++) {
        int64_t elems = operand_elems(g, o);
        const kiln_tensor *t = c->in[s->in_of[o]];
        if (!t->data) {
            s->off16[o] = off;
            off += ((size_t)elems * 2 + 255) & ~(size_t)255;
        } else if (!c->probe) { /* a constant: converted once, on the device */
            float *tmp;
            KILN__TRY(kiln__device_alloc(c->dev, (size_t)elems * 4, (void **)&tmp));
            kiln_status e = kiln__device_alloc(c->dev, (size_t)elems * 2, &s->c16[o]);
            if (e == KILN_OK) e = kiln__device_upload(c->dev, tmp, t->data, (size_t)elems * 4);
            if (e == KILN_OK)
                e = kiln__cuda_launched(kiln__cu_f32_to_bf16(c->dev->stream, tmp, s->c16[o], elems),
                                        "bf16 weights");
            kiln__device_free(c->dev, tmp);
            KILN__TRY(e);
        }
    }
    c->scratch_bytes = off;
    double flops = 2.0 * (double)g->m * g->n * g->k * g->batch;
    c->flops = flops;
    return KILN_OK;
}

static double mm_cost(const kiln__kctx *c) {
    const mm_state *s = c->kstate;
    const mm_geom *g = &s->g;
    double bytes = 4.0 * ((double)operand_elems(g, 0) + (double)operand_elems(g, 1) +
                          (double)g->batch * g->m * g->n);
    return kiln__cuda_cost(c->flops, 0.6, s->bf16, bytes);
}

static kiln_status mm_run(kiln__kctx *c) {
    mm_state *s = c->kstate;
    kiln__device *d = c->dev;
    const mm_geom *g = &s->g;
    const void *ab[2] = {c->in[s->in_of[0]]->data, c->in[s->in_of[1]]->data};
    for (int o = 0; s->bf16 && o < 2; o++) {
        if (s->c16[o]) {
            ab[o] = s->c16[o];
            continue;
        }
        uint16_t *to = (uint16_t *)((char *)c->scratch + s->off16[o]);
        KILN__TRY(kiln__cuda_launched(kiln__cu_f32_to_bf16(d->stream, ab[o], to, operand_elems(g, o)),
                                      "bf16 activations"));
        ab[o] = to;
    }
    const void *a = ab[0], *b = ab[1];
    const void *bias = s->bias_dev ? s->bias_dev : s->bias_in >= 0 ? c->in[s->bias_in]->data : NULL;
    if (bias)
        KILN__CUBLAS(cublasLtMatmulDescSetAttribute(s->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                    sizeof bias), "bias pointer");
    float *y = c->out[0]->data;
    const void *cin = s->z_in >= 0 ? c->in[s->z_in]->data : y;
    float beta = s->z_in >= 0 ? s->beta : 0.0f;
    KILN__CUBLAS(cublasLtMatmul(d->lt, s->op, &s->alpha, b, s->lx, a, s->lw, &beta, cin, s->ly, y, s->ly,
                                &s->algo, d->lt_ws, d->lt_ws_bytes, d->stream), "matmul");
    const float *mbias = s->mbias_in >= 0 ? c->in[s->mbias_in]->data : NULL;
    if (mbias || s->post != KILN__CU_IDENTITY)
        KILN__TRY(kiln__cuda_launched(kiln__cu_bias_act(d->stream, y, mbias, mbias ? g->m : 0, g->n, NULL, y,
                                                        kiln__n(c->out[0]), s->post, s->p0, s->p1),
                                      "matmul epilogue"));
    return KILN_OK;
}

/* ---- MatMul ------------------------------------------------------------------ */

static kiln_status matmul_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 2));
    mm_state t = {.in_of = {0, 1}, .bias_in = -1, .mbias_in = -1, .z_in = -1, .post = KILN__CU_IDENTITY,
                   .alpha = 1, .beta = 0};
    KILN__TRY(matmul_geom(c->in[0], c->in[1], &t.g));
    return mm_prepare(c, &t);
}

const kiln__algo kiln__algo_cuda_matmul = {
    "cuda_matmul", "", "MatMul", KILN_ALGOF_CUDA, matmul_prepare, mm_cost, mm_run, mm_release,
};

/* ---- kiln.FusedMatMul(A, B, Bias?, Z?) -------------------------------------- */

static kiln_status fused_matmul_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 4));
    mm_state t = {.in_of = {0, 1}, .bias_in = -1, .mbias_in = -1, .z_in = -1, .alpha = 1, .beta = 1};
    KILN__TRY(matmul_geom(c->in[0], c->in[1], &t.g));
    if (kiln__cuda_fused_act(c->node, &t.post, &t.p0, &t.p1) != KILN_OK) return KILN_E_UNSUPPORTED;
    const kiln_tensor *bias = kiln__in(c, 2), *z = kiln__in(c, 3);
    if (bias) {
        if (kiln__n(bias) != t.g.n || bias->ndim != 1) return KILN_E_UNSUPPORTED;
        t.bias_in = 2;
    }
    if (z) {
        const kiln_tensor *y = c->out[0];
        if (z->ndim != y->ndim || memcmp(z->dims, y->dims, (size_t)y->ndim * sizeof *y->dims))
            return KILN_E_UNSUPPORTED;
        t.z_in = 3;
    }
    return mm_prepare(c, &t);
}

const kiln__algo kiln__algo_cuda_fused_matmul = {
    "cuda_fused_matmul", "kiln", "FusedMatMul", KILN_ALGOF_CUDA, fused_matmul_prepare, mm_cost,
    mm_run, mm_release,
};

/* ---- Gemm(A, B, C?) ------------------------------------------------------------ */

static kiln_status gemm_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 3));
    const kiln_tensor *a = c->in[0], *b = c->in[1], *cc = kiln__in(c, 2);
    if (a->ndim != 2 || b->ndim != 2) return KILN_E_UNSUPPORTED;
    mm_state t = {.in_of = {0, 1}, .bias_in = -1, .mbias_in = -1, .z_in = -1, .post = KILN__CU_IDENTITY};
    t.g.trans_a = kiln__attr_i(c->node, "transA", 0) != 0;
    t.g.trans_b = kiln__attr_i(c->node, "transB", 0) != 0;
    t.g.m = a->dims[t.g.trans_a ? 1 : 0];
    t.g.k = a->dims[t.g.trans_a ? 0 : 1];
    t.g.n = b->dims[t.g.trans_b ? 0 : 1];
    t.g.batch = 1;
    t.alpha = kiln__attr_f(c->node, "alpha", 1.0f);
    t.beta = kiln__attr_f(c->node, "beta", 1.0f);
    int scaled_bias = 0;
    if (cc && t.beta != 0.0f) {
        int64_t n = kiln__n(cc);
        int row = (cc->ndim == 1 && n == t.g.n) || (cc->ndim == 2 && cc->dims[0] == 1 && cc->dims[1] == t.g.n);
        if (row && t.beta == 1.0f) {
            t.bias_in = 2;
        } else if (row && cc->data) {
            scaled_bias = 1; /* beta * C uploaded below */
        } else if (cc->ndim == 2 && cc->dims[0] == t.g.m && cc->dims[1] == t.g.n) {
            t.z_in = 2;
        } else {
            return KILN_E_UNSUPPORTED; /* other broadcasts of C stay on the CPU */
        }
    }
    if (scaled_bias && !c->probe) {
        float *tmp = malloc((size_t)t.g.n * sizeof *tmp);
        if (!tmp) return kiln__err(KILN_E_NOMEM, "out of memory");
        for (int64_t j = 0; j < t.g.n; j++) tmp[j] = t.beta * ((const float *)cc->data)[j];
        kiln_status e = kiln__device_alloc(c->dev, (size_t)t.g.n * 4, (void **)&t.bias_dev);
        if (e == KILN_OK) e = kiln__device_upload(c->dev, t.bias_dev, tmp, (size_t)t.g.n * 4);
        if (e == KILN_OK) e = kiln__device_sync(c->dev); /* tmp is freed next */
        free(tmp);
        if (e != KILN_OK) {
            kiln__device_free(c->dev, t.bias_dev);
            return e;
        }
    }
    if (scaled_bias && c->probe) t.bias_in = 2; /* the epilogue the full prepare will ask for */
    kiln_status s = mm_prepare(c, &t);
    if (s != KILN_OK && !c->kstate) kiln__device_free(c->dev, t.bias_dev);
    return s;
}

const kiln__algo kiln__algo_cuda_gemm = {
    "cuda_gemm", "", "Gemm", KILN_ALGOF_CUDA, gemm_prepare, mm_cost, mm_run, mm_release,
};

/* ---- 1x1 Conv and kiln.FusedConv(X, W, B?, Z?) as products ---------------------------- */

static kiln_status conv_1x1_prepare_with(kiln__kctx *c, int fused) {
    if (c->precision != KILN_PRECISION_FP32) return KILN_E_UNSUPPORTED;
    kiln__cuda_conv_node nd;
    KILN__TRY(kiln__cuda_conv_read(c, fused, &nd));
    const kiln_tensor *x = c->in[0], *w = c->in[1], *y = c->out[0];
    if (w->dims[2] != 1 || w->dims[3] != 1 || nd.group != 1) return KILN_E_UNSUPPORTED;
    for (int i = 0; i < 2; i++)
        if (nd.w.stride[i] != 1 || nd.w.pad0[i] || y->dims[2 + i] != x->dims[2 + i])
            return KILN_E_UNSUPPORTED;
    int64_t hw = x->dims[2] * x->dims[3];
    mm_state t = {.in_of = {1, 0}, .bias_in = -1, .mbias_in = nd.bias_in, .z_in = nd.z_in,
                  .post = nd.act, .p0 = nd.p0, .p1 = nd.p1, .alpha = 1, .beta = 1};
    t.g = (mm_geom){.m = w->dims[0], .n = hw, .k = x->dims[1], .batch = x->dims[0],
                    .stride_b = x->dims[1] * hw};
    return mm_prepare(c, &t);
}

static kiln_status conv_1x1_prepare(kiln__kctx *c) { return conv_1x1_prepare_with(c, 0); }
static kiln_status fused_conv_1x1_prepare(kiln__kctx *c) { return conv_1x1_prepare_with(c, 1); }

const kiln__algo kiln__algo_cuda_conv_1x1 = {
    "cuda_conv_1x1", "", "Conv", KILN_ALGOF_CUDA, conv_1x1_prepare, mm_cost, mm_run, mm_release,
};
const kiln__algo kiln__algo_cuda_fused_conv_1x1 = {
    "cuda_fused_conv_1x1", "kiln", "FusedConv", KILN_ALGOF_CUDA, fused_conv_1x1_prepare, mm_cost,
    mm_run, mm_release,
};

/* ---- batched products for other CUDA algorithms (cuda_algo.h) ------------------- */

struct kiln__cuda_gemm {
    mm_state s;
};

kiln_status kiln__cuda_gemm_new(kiln__device *d, int64_t m, int64_t n, int64_t k, int64_t batch,
                                int64_t stride_a, int64_t stride_b, int trans_b, float alpha,
                                kiln__cuda_gemm **out) {
    *out = NULL;
    if (batch > 0x7fffffff) return KILN_E_UNSUPPORTED;
    mm_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    s->dev = d;
    s->g = (mm_geom){.m = m, .n = n, .k = k, .batch = batch, .stride_a = stride_a,
                     .stride_b = stride_b, .trans_b = trans_b};
    s->in_of[1] = 1;
    s->bias_in = s->mbias_in = s->z_in = -1;
    s->post = KILN__CU_IDENTITY;
    s->alpha = alpha;
    kiln_status st = mm_plan(d, s);
    if (st != KILN_OK) {
        mm_release(s);
        return st;
    }
    *out = (kiln__cuda_gemm *)s;
    return KILN_OK;
}

kiln_status kiln__cuda_gemm_run(kiln__cuda_gemm *g, const float *a, const float *b, float *y) {
    mm_state *s = &g->s;
    kiln__device *d = s->dev;
    const float beta = 0.0f;
    KILN__CUBLAS(cublasLtMatmul(d->lt, s->op, &s->alpha, b, s->lx, a, s->lw, &beta, y, s->ly, y, s->ly,
                                &s->algo, d->lt_ws, d->lt_ws_bytes, d->stream), "batched matmul");
    return KILN_OK;
}

void kiln__cuda_gemm_free(kiln__cuda_gemm *g) { mm_release(g ? &g->s : NULL); }
