/* src/cpu/ref/grad_eltwise.c: reference kernels of the elementwise gradient
 * ops that autograd adds (src/ops/defs/grad.def):
 *
 *   kiln.SumTo(dY, shape) -> dX      dX = dY summed over the axes along which an
 *                                     input of `shape` was broadcast to dY's shape
 *                                     (the gradient of numpy broadcasting)
 *   kiln.ReluGrad(dY, Y) -> dX       dX = dY where Y > 0, else 0
 *   kiln.SigmoidGrad(dY, Y) -> dX    dX = dY * Y * (1 - Y)
 *   kiln.TanhGrad(dY, Y) -> dX       dX = dY * (1 - Y^2)
 *
 * Y is the forward op's output. Float dtypes; dY and Y of one dtype and shape.
 * f32 runs in float, other dtypes in double.
 */
#include <string.h>

#include "ops/op.h"

/* ---- SumTo ------------------------------------------------------------------ */

// dY: (D...) float, shape: (r) int64 with r <= rank(dY) and every entry equal to
// dY's aligned dim or 1; dX: (shape)
static kiln_status sum_to_shape(const kiln__kctx *c, int *nd, int64_t *dims) {
    const kiln_tensor *dy = c->in[0];
    char b1[96], b2[96];
    KILN__TRY(kiln__check_dtype(dy, "dY", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__read_ints(c->in[1], "shape", dims, KILN_MAX_DIMS, nd));
    int off = dy->ndim - *nd, ok = off >= 0;
    for (int i = 0; ok && i < *nd; i++) ok = dims[i] == 1 || dims[i] == dy->dims[off + i];
    if (!ok)
        return kiln__err(KILN_E_SHAPE, "dY %s does not broadcast from shape %s",
                         kiln__shape_str(dy->ndim, dy->dims, b1, sizeof b1),
                         kiln__shape_str(*nd, dims, b2, sizeof b2));
    return KILN_OK;
}

kiln_status kiln__infer_SumTo(kiln__kctx *c) {
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__NEED(c, 1);
    KILN__TRY(sum_to_shape(c, &nd, dims));
    c->scratch_bytes = (size_t)kiln__numel(nd, dims) * sizeof(double);
    return kiln__out_shape(c, 0, c->in[0]->dtype, nd, dims);
}

/* Sums in double (scratch), then stores once. */
kiln_status kiln__ref_SumTo(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0];
    kiln_tensor *dx = c->out[0];
    double *acc = (double *)c->scratch;
    int64_t n_out = kiln__n(dx), n_in = kiln__n(dy);
    int64_t strides[1][KILN_MAX_DIMS];
    for (int64_t i = 0; i < n_out; i++) acc[i] = 0;
    kiln__bcast_strides(dx->ndim, dx->dims, dy->ndim, dy->dims, strides[0]);
    kiln__iter it;
    kiln__iter_init(&it, dy->ndim, dy->dims, 1, strides);
    for (int64_t k = 0; k < n_in; k++, kiln__iter_next(&it))
        acc[it.off[0]] += kiln__elem_ld_f(dy->dtype, dy->data, k);
    for (int64_t i = 0; i < n_out; i++) kiln__elem_st_f(dx->dtype, dx->data, i, acc[i]);
    return KILN_OK;
}

/* ---- activation gradients ---------------------------------------------------- */

typedef enum { ACT_RELU, ACT_SIGMOID, ACT_TANH } act_grad_kind;

// dY, Y: same shape and float dtype; dX: like dY
static kiln_status act_grad_infer(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *y = c->in[1];
    char b1[96], b2[96];
    KILN__TRY(kiln__check_dtype(dy, "dY", KILN__FLOAT_DTYPES));
    if (y->dtype != dy->dtype || !kiln__same_shape(y, dy))
        return kiln__err(KILN_E_SHAPE, "input 'Y' is %s %s, expected %s %s like dY",
                         kiln_dtype_name(y->dtype), kiln__shape_str(y->ndim, y->dims, b1, sizeof b1),
                         kiln_dtype_name(dy->dtype),
                         kiln__shape_str(dy->ndim, dy->dims, b2, sizeof b2));
    return kiln__out_like(c, 0, dy);
}

static inline double act_grad(act_grad_kind k, double dy, double y) {
    switch (k) {
    case ACT_RELU: return y > 0 ? dy : 0;
    case ACT_SIGMOID: return dy * y * (1 - y);
    default: return dy * (1 - y * y);
    }
}

static inline float act_grad_f32(act_grad_kind k, float dy, float y) {
    switch (k) {
    case ACT_RELU: return y > 0 ? dy : 0.f;
    case ACT_SIGMOID: return dy * y * (1.f - y);
    default: return dy * (1.f - y * y);
    }
}

/* Elements [lo, hi) of this thread; dX may be dY's or Y's buffer (in place). */
static kiln_status act_grad_run(kiln__kctx *c, act_grad_kind k) {
    const kiln_tensor *dy = c->in[0], *y = c->in[1];
    kiln_tensor *dx = c->out[0];
    int64_t lo, hi;
    kiln__split(kiln__n(dx), c->ith, c->nth, &lo, &hi);
    if (dx->dtype == KILN_DTYPE_F32) {
        const float *g = (const float *)dy->data, *yv = (const float *)y->data;
        float *o = (float *)dx->data;
        for (int64_t i = lo; i < hi; i++) o[i] = act_grad_f32(k, g[i], yv[i]);
        return KILN_OK;
    }
    for (int64_t i = lo; i < hi; i++)
        kiln__elem_st_f(dx->dtype, dx->data, i,
                        act_grad(k, kiln__elem_ld_f(dy->dtype, dy->data, i),
                                 kiln__elem_ld_f(y->dtype, y->data, i)));
    return KILN_OK;
}

kiln_status kiln__infer_ReluGrad(kiln__kctx *c) { return act_grad_infer(c); }
kiln_status kiln__ref_ReluGrad(kiln__kctx *c) { return act_grad_run(c, ACT_RELU); }
kiln_status kiln__infer_SigmoidGrad(kiln__kctx *c) { return act_grad_infer(c); }
kiln_status kiln__ref_SigmoidGrad(kiln__kctx *c) { return act_grad_run(c, ACT_SIGMOID); }
kiln_status kiln__infer_TanhGrad(kiln__kctx *c) { return act_grad_infer(c); }
kiln_status kiln__ref_TanhGrad(kiln__kctx *c) { return act_grad_run(c, ACT_TANH); }
