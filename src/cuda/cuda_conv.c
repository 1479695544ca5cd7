/* src/cuda/cuda_conv.c: 2-D Conv and kiln.FusedConv on cuDNN (algorithms
 * cuda_conv, cuda_fused_conv), and 2-D MaxPool / AveragePool /
 * GlobalAveragePool / GlobalMaxPool on cuDNN's pooling (cuda_pool).
 *
 * Conv: cuDNN's forward convolution (groups, strides, dilations; symmetric
 * pads only: cuDNN's legacy descriptors have one pad per dim). Its algorithm
 * is measured, not guessed: prepare runs cuDNN's own search
 * (cudnnFindConvolutionForwardAlgorithm) on the node's shapes and takes the
 * fastest whose workspace fits (the workspace is the step's scratch, in the
 * device arena); the choice is this algorithm's variant (algo.h), so the
 * timing cache keeps it and a signature is measured once. The bias, a
 * FusedConv residual Z and its activation follow in one elementwise pass
 * (kiln__cu_bias_act). Precision fp32: CUDNN_FMA_MATH (f32 products, no
 * TF32) and only the algorithms whose error is that of a direct sum (no FFT
 * or non-fused Winograd); bf16: any algorithm, and cuDNN may use the tensor
 * cores on the f32 data (TF32 products, f32 accumulation).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_algo.h"

#define MAX_WORKSPACE ((size_t)256 << 20)

typedef struct conv_state {
    kiln__device *dev;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t algo;
    size_t ws_bytes;
    int64_t k, pq; /* output channels, output pixels per channel */
    kiln__cuda_conv_node nd;
} conv_state;

static void conv_release(void *ks) {
    conv_state *s = ks;
    if (!s) return;
    if (s->xd) cudnnDestroyTensorDescriptor(s->xd);
    if (s->yd) cudnnDestroyTensorDescriptor(s->yd);
    if (s->wd) cudnnDestroyFilterDescriptor(s->wd);
    if (s->cd) cudnnDestroyConvolutionDescriptor(s->cd);
    free(s);
}

static kiln_status tensor4(cudnnTensorDescriptor_t *d, const int64_t *dims) {
    KILN__CUDNN(cudnnCreateTensorDescriptor(d), "tensor descriptor");
    KILN__CUDNN(cudnnSetTensor4dDescriptor(*d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)dims[0],
                                           (int)dims[1], (int)dims[2], (int)dims[3]),
                "tensor descriptor");
    return KILN_OK;
}

/* A variant: cuDNN's algorithm and the math type it was measured with. */
#define N_MATH 4 /* cudnnMathType_t values */
static int variant_of(cudnnConvolutionFwdAlgo_t algo, cudnnMathType_t math) {
    return (int)algo * N_MATH + (int)math;
}

static int algo_allowed(cudnnConvolutionFwdAlgo_t a, int precision) {
    if (precision == KILN_PRECISION_BF16) return 1;
    return a != CUDNN_CONVOLUTION_FWD_ALGO_FFT && a != CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING &&
           a != CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}

/* Sets s->algo, the math type and s->ws_bytes: the variant c->variant names
 * when it still applies; else, probing, cuDNN's heuristic first choice; else
 * the fastest that cuDNN's search measures (c->variant, c->variant_ms).
 * KILN_E_UNSUPPORTED if no allowed algorithm's workspace fits. */
static kiln_status choose_algo(kiln__kctx *c, conv_state *s, cudnnHandle_t h) {
    const int n_algo = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    if (c->variant >= 0 && c->variant < n_algo * N_MATH) {
        cudnnConvolutionFwdAlgo_t a = (cudnnConvolutionFwdAlgo_t)(c->variant / N_MATH);
        cudnnMathType_t m = (cudnnMathType_t)(c->variant % N_MATH);
        size_t ws;
        if (algo_allowed(a, c->precision) && (c->precision == KILN_PRECISION_BF16 || m == CUDNN_FMA_MATH) &&
            cudnnSetConvolutionMathType(s->cd, m) == CUDNN_STATUS_SUCCESS &&
            cudnnGetConvolutionForwardWorkspaceSize(h, s->xd, s->wd, s->cd, s->yd, a, &ws) ==
                CUDNN_STATUS_SUCCESS &&
            ws <= MAX_WORKSPACE) {
            s->algo = a;
            s->ws_bytes = ws;
            return KILN_OK;
        }
    }
    KILN__CUDNN(cudnnSetConvolutionMathType(s->cd, c->precision == KILN_PRECISION_BF16
                                                       ? CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
                                                       : CUDNN_FMA_MATH),
                "math type");
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    if (c->probe)
        KILN__CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, s->xd, s->wd, s->cd, s->yd, n_algo, &n, perf),
                    "algorithm heuristic");
    else /* sorted by measured time */
        KILN__CUDNN(cudnnFindConvolutionForwardAlgorithm(h, s->xd, s->wd, s->cd, s->yd, n_algo, &n, perf),
                    "algorithm search");
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > MAX_WORKSPACE ||
            !algo_allowed(perf[i].algo, c->precision))
            continue;
        KILN__CUDNN(cudnnSetConvolutionMathType(s->cd, perf[i].mathType), "math type");
        s->algo = perf[i].algo;
        s->ws_bytes = perf[i].memory;
        if (!c->probe) {
            c->variant = variant_of(perf[i].algo, perf[i].mathType);
            c->variant_ms = perf[i].time > 1e-6 ? perf[i].time : 1e-6;
        }
        return KILN_OK;
    }
    return KILN_E_UNSUPPORTED;
}

static kiln_status conv_prepare_with(kiln__kctx *c, int fused) {
    if (c->precision != KILN_PRECISION_FP32 && c->precision != KILN_PRECISION_BF16)
        return KILN_E_UNSUPPORTED;
    kiln__cuda_conv_node nd;
    KILN__TRY(kiln__cuda_conv_read(c, fused, &nd));
    const kiln__win w = nd.w;
    const kiln_tensor *x = c->in[0], *wt = c->in[1], *y = c->out[0];
    conv_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    c->kstate = s;
    s->dev = c->dev;
    s->k = y->dims[1];
    s->pq = y->dims[2] * y->dims[3];
    s->nd = nd;
    KILN__TRY(tensor4(&s->xd, x->dims));
    KILN__TRY(tensor4(&s->yd, y->dims));
    KILN__CUDNN(cudnnCreateFilterDescriptor(&s->wd), "filter descriptor");
    KILN__CUDNN(cudnnSetFilter4dDescriptor(s->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)wt->dims[0],
                                           (int)wt->dims[1], (int)wt->dims[2], (int)wt->dims[3]),
                "filter descriptor");
    KILN__CUDNN(cudnnCreateConvolutionDescriptor(&s->cd), "convolution descriptor");
    KILN__CUDNN(cudnnSetConvolution2dDescriptor(s->cd, (int)w.pad0[0], (int)w.pad0[1], (int)w.stride[0],
                                                (int)w.stride[1], (int)w.dil[0], (int)w.dil[1],
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                "convolution descriptor");
    KILN__CUDNN(cudnnSetConvolutionGroupCount(s->cd, (int)nd.group), "group count");
    int dims[4];
    KILN__CUDNN(cudnnGetConvolutionNdForwardOutputDim(s->cd, s->xd, s->wd, 4, dims), "output dims");
    for (int d = 0; d < 4; d++)
        if (dims[d] != y->dims[d]) return KILN_E_UNSUPPORTED; /* cuDNN sees another geometry */
    cudnnHandle_t h;
    KILN__TRY(kiln__cuda_dnn(c->dev, &h));
    KILN__TRY(choose_algo(c, s, h));
    c->scratch_bytes = s->ws_bytes;
    c->flops = 2.0 * (double)kiln__n(y) * (double)(wt->dims[1] * wt->dims[2] * wt->dims[3]);
    return KILN_OK;
}

static kiln_status conv_prepare(kiln__kctx *c) { return conv_prepare_with(c, 0); }
static kiln_status fused_conv_prepare(kiln__kctx *c) { return conv_prepare_with(c, 1); }

static double conv_cost(const kiln__kctx *c) {
    double bytes = 0;
    for (int k = 0; k < c->n_in; k++)
        if (c->in[k]) bytes += (double)kiln__tensor_bytes(c->in[k]);
    return kiln__cuda_cost(c->flops, 0.5, c->precision == KILN_PRECISION_BF16,
                           bytes + (double)kiln__tensor_bytes(c->out[0]));
}

static kiln_status conv_run(kiln__kctx *c) {
    conv_state *s = c->kstate;
    cudnnHandle_t h;
    KILN__TRY(kiln__cuda_dnn(c->dev, &h));
    const float one = 1.0f, zero = 0.0f;
    float *y = c->out[0]->data;
    KILN__CUDNN(cudnnConvolutionForward(h, &one, s->xd, c->in[0]->data, s->wd, c->in[1]->data, s->cd,
                                        s->algo, c->scratch, s->ws_bytes, &zero, s->yd, y),
                "convolution");
    const kiln__cuda_conv_node *nd = &s->nd;
    const float *z = nd->z_in >= 0 ? c->in[nd->z_in]->data : NULL;
    if (nd->bias_in < 0 && !z && nd->act == KILN__CU_IDENTITY) return KILN_OK;
    return kiln__cuda_launched(kiln__cu_bias_act(kiln__cuda_stream(c), y,
                                                 nd->bias_in >= 0 ? c->in[nd->bias_in]->data : NULL,
                                                 s->k, s->pq, z, y, kiln__n(c->out[0]), nd->act,
                                                 nd->p0, nd->p1),
                               "convolution epilogue");
}

const kiln__algo kiln__algo_cuda_conv = {
    "cuda_conv", "", "Conv", KILN_ALGOF_CUDA, conv_prepare, conv_cost, conv_run, conv_release,
};
const kiln__algo kiln__algo_cuda_fused_conv = {
    "cuda_fused_conv", "kiln", "FusedConv", KILN_ALGOF_CUDA, fused_conv_prepare, conv_cost, conv_run,
    conv_release,
};

/* ---- pooling ---------------------------------------------------------------------- */

typedef struct pool_state {
    cudnnTensorDescriptor_t xd, yd;
    cudnnPoolingDescriptor_t pd;
} pool_state;

static void pool_release(void *ks) {
    pool_state *s = ks;
    if (!s) return;
    if (s->xd) cudnnDestroyTensorDescriptor(s->xd);
    if (s->yd) cudnnDestroyTensorDescriptor(s->yd);
    if (s->pd) cudnnDestroyPoolingDescriptor(s->pd);
    free(s);
}

static kiln_status pool_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 1));
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (x->ndim != 4 || !kiln__cuda_fits_int(x) || c->n_out > 1) return KILN_E_UNSUPPORTED; /* no MaxPool indices */
    const char *op = c->node->op_type;
    int global = strncmp(op, "Global", 6) == 0;
    int is_max = strstr(op, "MaxPool") != NULL;
    kiln__win w;
    if (global) {
        memset(&w, 0, sizeof w);
        for (int i = 0; i < 2; i++) {
            w.k[i] = x->dims[2 + i];
            w.stride[i] = 1;
            w.dil[i] = 1;
        }
    } else {
        if (kiln__win_read(c->node, 2, x->dims + 2, NULL, &w) != KILN_OK) return KILN_E_UNSUPPORTED;
        int ceil_mode = (int)kiln__attr_i(c->node, "ceil_mode", 0);
        if (kiln__win_forward(&w, ceil_mode) != KILN_OK || ceil_mode) return KILN_E_UNSUPPORTED;
        for (int i = 0; i < 2; i++)
            if (w.pad0[i] != w.pad1[i] || w.dil[i] != 1) return KILN_E_UNSUPPORTED;
        if (is_max && kiln__attr_i(c->node, "storage_order", 0) != 0) return KILN_E_UNSUPPORTED;
    }
    /* count_include_pad = 0 (the default) is cuDNN's EXCLUDE_PADDING */
    cudnnPoolingMode_t mode =
        is_max ? CUDNN_POOLING_MAX_DETERMINISTIC
        : kiln__attr_i(c->node, "count_include_pad", 0) ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                                        : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
    pool_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    c->kstate = s;
    KILN__TRY(tensor4(&s->xd, x->dims));
    KILN__TRY(tensor4(&s->yd, y->dims));
    KILN__CUDNN(cudnnCreatePoolingDescriptor(&s->pd), "pooling descriptor");
    KILN__CUDNN(cudnnSetPooling2dDescriptor(s->pd, mode, CUDNN_PROPAGATE_NAN, (int)w.k[0], (int)w.k[1],
                                            (int)w.pad0[0], (int)w.pad0[1], (int)w.stride[0],
                                            (int)w.stride[1]),
                "pooling descriptor");
    int dims[4];
    KILN__CUDNN(cudnnGetPoolingNdForwardOutputDim(s->pd, s->xd, 4, dims), "pooling output dims");
    for (int d = 0; d < 4; d++)
        if (dims[d] != y->dims[d]) return KILN_E_UNSUPPORTED;
    c->flops = (double)kiln__n(y) * (double)(w.k[0] * w.k[1]);
    return KILN_OK;
}

static double pool_cost(const kiln__kctx *c) {
    return kiln__cuda_cost(0, 1, 0,
                           (double)kiln__tensor_bytes(c->in[0]) + (double)kiln__tensor_bytes(c->out[0]));
}

static kiln_status pool_run(kiln__kctx *c) {
    pool_state *s = c->kstate;
    cudnnHandle_t h;
    KILN__TRY(kiln__cuda_dnn(c->dev, &h));
    const float one = 1.0f, zero = 0.0f;
    KILN__CUDNN(cudnnPoolingForward(h, s->pd, &one, s->xd, c->in[0]->data, &zero, s->yd, c->out[0]->data),
                "pooling");
    return KILN_OK;
}

#define POOL_ALGO(id, Op)                                                                    \
    const kiln__algo kiln__algo_##id = {#id, "", #Op, KILN_ALGOF_CUDA, pool_prepare, pool_cost, \
                                        pool_run, pool_release};
POOL_ALGO(cuda_max_pool, MaxPool)
POOL_ALGO(cuda_average_pool, AveragePool)
POOL_ALGO(cuda_global_average_pool, GlobalAveragePool)
POOL_ALGO(cuda_global_max_pool, GlobalMaxPool)
