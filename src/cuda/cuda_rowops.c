/* src/cuda/cuda_rowops.c: ops that work row by row or permute, on the GPU,
 * f32: Softmax and LogSoftmax over trailing axes, LayerNormalization, and
 * Transpose (algorithms cuda_softmax, cuda_log_softmax, cuda_layernorm,
 * cuda_transpose; kernels in kernels/softmax.cu, norm.cu, eltwise.cu). */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_algo.h"

typedef struct row_state {
    int64_t rows, cols;
    float eps;
    int ndim;                  /* Transpose */
    int64_t ydims[KILN__CU_MAXDIM], xs[KILN__CU_MAXDIM];
} row_state;

static void row_release(void *ks) { free(ks); }

static double row_cost(const kiln__kctx *c) {
    return kiln__cuda_cost(0, 1, 0, 2.0 * (double)kiln__tensor_bytes(c->out[0]));
}

static kiln_status row_new(kiln__kctx *c, const row_state *t, double flops_per_elem) {
    row_state *s = malloc(sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    *s = *t;
    c->kstate = s;
    c->flops = flops_per_elem * (double)kiln__n(c->in[0]);
    return KILN_OK;
}

/* ---- Softmax / LogSoftmax --------------------------------------------------------- */

static kiln_status softmax_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 1));
    const kiln_tensor *x = c->in[0];
    int axis;
    /* opset >= 13: over one axis (the last one here); before: over the flattened
     * trailing axes from `axis` (default 1) */
    if (kiln__axis(kiln__attr_i(c->node, "axis", c->opset >= 13 ? -1 : 1), x->ndim > 0 ? x->ndim : 1,
                   "axis", &axis) != KILN_OK)
        return KILN_E_UNSUPPORTED;
    if (c->opset >= 13 && axis != x->ndim - 1) return KILN_E_UNSUPPORTED;
    row_state t = {0};
    t.cols = kiln__numel(x->ndim - axis, x->dims + axis);
    t.rows = t.cols ? kiln__n(x) / t.cols : 0;
    return row_new(c, &t, 5);
}

static kiln_status softmax_run_as(kiln__kctx *c, int log) {
    const row_state *s = c->kstate;
    return kiln__cuda_launched(kiln__cu_softmax(kiln__cuda_stream(c), c->in[0]->data, c->out[0]->data,
                                                s->rows, s->cols, log),
                               c->node->op_type);
}
static kiln_status softmax_run(kiln__kctx *c) { return softmax_run_as(c, 0); }
static kiln_status log_softmax_run(kiln__kctx *c) { return softmax_run_as(c, 1); }

const kiln__algo kiln__algo_cuda_softmax = {
    "cuda_softmax", "", "Softmax", KILN_ALGOF_CUDA, softmax_prepare, row_cost, softmax_run, row_release,
};
const kiln__algo kiln__algo_cuda_log_softmax = {
    "cuda_log_softmax", "", "LogSoftmax", KILN_ALGOF_CUDA, softmax_prepare, row_cost, log_softmax_run,
    row_release,
};

/* ---- LayerNormalization(X, Scale, B?) -> Y, Mean?, InvStdDev? ------------------- */

static kiln_status layernorm_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 3));
    const kiln_tensor *x = c->in[0], *scale = c->in[1], *b = kiln__in(c, 2);
    int axis;
    if (x->ndim < 1 || kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "axis", &axis) != KILN_OK)
        return KILN_E_UNSUPPORTED;
    row_state t = {0};
    t.cols = kiln__numel(x->ndim - axis, x->dims + axis);
    t.rows = t.cols ? kiln__n(x) / t.cols : 0;
    t.eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    /* scale and bias must hold every element of a row (no broadcast within it) */
    if (kiln__n(scale) != t.cols || (b && kiln__n(b) != t.cols)) return KILN_E_UNSUPPORTED;
    return row_new(c, &t, 8);
}

static kiln_status layernorm_run(kiln__kctx *c) {
    const row_state *s = c->kstate;
    const kiln_tensor *b = kiln__in(c, 2), *mean = kiln__out(c, 1), *inv = kiln__out(c, 2);
    return kiln__cuda_launched(
        kiln__cu_layernorm(kiln__cuda_stream(c), c->in[0]->data, c->in[1]->data, b ? b->data : NULL,
                           c->out[0]->data, mean ? mean->data : NULL, inv ? inv->data : NULL, s->rows,
                           s->cols, s->eps),
        "LayerNormalization");
}

const kiln__algo kiln__algo_cuda_layernorm = {
    "cuda_layernorm", "", "LayerNormalization", KILN_ALGOF_CUDA, layernorm_prepare, row_cost,
    layernorm_run, row_release,
};

/* ---- Transpose ---------------------------------------------------------------------- */

static kiln_status transpose_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (x->dtype != KILN_DTYPE_F32 || y->dtype != KILN_DTYPE_F32 || x->ndim > KILN__CU_MAXDIM)
        return KILN_E_UNSUPPORTED;
    const int64_t *perm;
    int np = kiln__attr_ints(c->node, "perm", &perm);
    row_state t = {0};
    t.ndim = x->ndim;
    int64_t xstride[KILN__CU_MAXDIM], s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        xstride[d] = s;
        s *= x->dims[d];
    }
    if (np >= 0 && np != x->ndim) return KILN_E_UNSUPPORTED;
    for (int d = 0; d < x->ndim; d++) {
        int64_t p = np >= 0 ? perm[d] : x->ndim - 1 - d;
        if (p < 0) p += x->ndim;
        if (p < 0 || p >= x->ndim) return KILN_E_UNSUPPORTED;
        t.ydims[d] = y->dims[d];
        t.xs[d] = xstride[p];
    }
    KILN__TRY(row_new(c, &t, 0));
    c->flops = 0;
    return KILN_OK;
}

static kiln_status transpose_run(kiln__kctx *c) {
    const row_state *s = c->kstate;
    return kiln__cuda_launched(kiln__cu_permute(kiln__cuda_stream(c), c->in[0]->data, c->out[0]->data,
                                                s->ndim, s->ydims, s->xs, kiln__n(c->out[0])),
                               "Transpose");
}

const kiln__algo kiln__algo_cuda_transpose = {
    "cuda_transpose", "", "Transpose", KILN_ALGOF_CUDA, transpose_prepare, row_cost, transpose_run,
    row_release,
};
