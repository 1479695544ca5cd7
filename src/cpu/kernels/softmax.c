/* src/cpu/kernels/softmax.c: fast f32 Softmax and LogSoftmax.
 *
 * X: f32 viewed as (rows, n), Y: X's shape. Opset >= 13 reduces along one
 * axis; this algorithm takes the last one (rows = the product of the other
 * dims); other axes are left to the reference. Opset < 13 coerces X to 2-D
 * at `axis` (rows = D0*..*D(axis-1), n = Daxis*..*Dk), which is always this
 * layout. Each row: max, exp(x - max) and its sum, then the scaling (or
 * x - max - log(sum)), by the ISA table's softmax (eltwise.h). Rows are
 * split over the threads (KILN_OPF_PARALLEL) in units of about
 * KILN__ELTW_GRAIN elements.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"

typedef struct softmax_state {
    kiln__eltw_state base;
    int64_t rows, n;
    int log_softmax;
} softmax_state;

static kiln_status softmax_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (!kiln__eltw_f32(x) || !kiln__eltw_f32(y) || x->ndim < 1) return KILN_E_UNSUPPORTED;
    int64_t axis = kiln__attr_i(c->node, "axis", c->opset < 13 ? 1 : -1);
    if (axis < -x->ndim || axis >= x->ndim) return KILN_E_UNSUPPORTED;
    if (axis < 0) axis += x->ndim;
    if (c->opset >= 13 && axis != x->ndim - 1) return KILN_E_UNSUPPORTED;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(softmax_state)));
    softmax_state *s = c->kstate;
    s->rows = kiln__dims_prod(x->dims, 0, (int)axis);
    s->n = kiln__dims_prod(x->dims, (int)axis, x->ndim);
    s->log_softmax = strcmp(c->node->op_type, "LogSoftmax") == 0;
    c->flops = 20.0 * (double)kiln__n(x);
    return KILN_OK;
}

static double softmax_cost(const kiln__kctx *c) {
    double n = (double)kiln__n(c->in[0]);
    return kiln__eltw_cost(c, 20.0 * n, 12.0 * n); /* x read twice, y written (and reread) */
}

// x, y: (rows, n) f32; thread ith does its rows
static kiln_status softmax_run(kiln__kctx *c) {
    const softmax_state *s = c->kstate;
    if (s->n == 0) return KILN_OK;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t lo, hi;
    kiln__eltw_share(s->rows, KILN__ELTW_GRAIN / s->n, c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) s->base.k->softmax(x + r * s->n, y + r * s->n, s->n, s->log_softmax);
    return KILN_OK;
}

const kiln__algo kiln__algo_softmax_f32 = {"softmax_f32", "", "Softmax", KILN_OPF_PARALLEL,
                                           softmax_prepare, softmax_cost, softmax_run, free};
const kiln__algo kiln__algo_log_softmax_f32 = {"log_softmax_f32", "", "LogSoftmax", KILN_OPF_PARALLEL,
                                               softmax_prepare, softmax_cost, softmax_run, free};
