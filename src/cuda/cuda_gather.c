/* src/cuda/cuda_gather.c: Gather on the GPU (algorithm cuda_gather):
 * embedding lookups and index selections along one axis, for every dtype
 * whose elements are 1, 2, 4 or 8 bytes (not strings, not sub-byte types),
 * int32 or int64 indices. Indices are checked on the GPU: one out of range
 * fails the run when the device next synchronizes (kiln__device_sync), not
 * the kernel (kernel in kernels/gather.cu). */
#include <stdlib.h>

#include "cuda/cuda_algo.h"

typedef struct gather_state {
    int elem_size, idx64;
    int64_t outer, axis_n, n_idx, inner;
} gather_state;

static void gather_release(void *ks) { free(ks); }

static kiln_status gather_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    size_t es = kiln_dtype_size(x->dtype);
    if (x->dtype == KILN_DTYPE_STRING || kiln__dtype_bits(x->dtype) != 8 * (int)es ||
        (es != 1 && es != 2 && es != 4 && es != 8))
        return KILN_E_UNSUPPORTED;
    if (idx->dtype != KILN_DTYPE_I64 && idx->dtype != KILN_DTYPE_I32) return KILN_E_UNSUPPORTED;
    int axis;
    if (x->ndim < 1 || kiln__axis(kiln__attr_i(c->node, "axis", 0), x->ndim, "axis", &axis) != KILN_OK)
        return KILN_E_UNSUPPORTED;
    gather_state *s = malloc(sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    s->elem_size = (int)es;
    s->idx64 = idx->dtype == KILN_DTYPE_I64;
    s->outer = kiln__numel(axis, x->dims);
    s->axis_n = x->dims[axis];
    s->n_idx = kiln__n(idx);
    s->inner = kiln__numel(x->ndim - axis - 1, x->dims + axis + 1);
    c->kstate = s;
    return KILN_OK;
}

static double gather_cost(const kiln__kctx *c) {
    return kiln__cuda_cost(0, 1, 0, 2.0 * (double)kiln__tensor_bytes(c->out[0]));
}

static kiln_status gather_run(kiln__kctx *c) {
    const gather_state *s = c->kstate;
    return kiln__cuda_launched(kiln__cu_gather(kiln__cuda_stream(c), c->in[0]->data, s->elem_size,
                                               c->in[1]->data, s->idx64, c->out[0]->data, s->outer,
                                               s->axis_n, s->n_idx, s->inner, c->dev->fault_dev),
                               "Gather");
}

const kiln__algo kiln__algo_cuda_gather = {
    "cuda_gather", "", "Gather", KILN_ALGOF_CUDA, gather_prepare, gather_cost, gather_run, gather_release,
};
