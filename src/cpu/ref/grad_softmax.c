/* src/cpu/ref/grad_softmax.c: reference kernels of the softmax family's
 * gradient ops (src/ops/defs/grad.def):
 *
 *   kiln.SoftmaxGrad(dY, Y) -> dX      dX = Y * (dY - sum_k dY_k Y_k)
 *   kiln.LogSoftmaxGrad(dY, Y) -> dX   dX = dY - exp(Y) * sum_k dY_k
 *
 * with the sums over the forward op's axis: attribute `axis` (default -1), and
 * `flatten` = 1 for Softmax/LogSoftmax before opset 13, which normalize over all
 * axes from `axis` on (X read as 2-D).
 *
 *   kiln.SoftmaxCrossEntropyLossGrad(dL, log_prob, labels[, weight]) -> dScores
 *
 * the gradient of SoftmaxCrossEntropyLoss (src/cpu/ref/loss.c) with respect to
 * its scores: log_prob: (N,C,D1..Dk) the loss's second output, labels:
 * (N,D1..Dk), weight: (C); dL: () for reductions "sum" and "mean", labels'
 * shape for "none". Per position with label t (not ignore_index)
 *   dScores[n,:,d] = g * weight[t] * (exp(log_prob[n,:,d]) - onehot(t))
 * where g is dL (sum), dL / (sum of the non-ignored positions' weights) (mean)
 * or dL[n,d] (none); ignored positions get 0. Attributes as the loss's.
 *
 *   kiln.NegativeLogLikelihoodLossGrad(dL, input, target[, weight]) -> dInput
 *
 * the same for NegativeLogLikelihoodLoss, whose input is already
 * log-probabilities: dInput[n,:,d] = -g * weight[t] * onehot(t).
 * All in double.
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

/* ---- SoftmaxGrad, LogSoftmaxGrad ---------------------------------------------- */

/* The rows: (outer, len, inner) with the sum over len (stride inner). */
static kiln_status softmax_rows(const kiln__kctx *c, int64_t *outer, int64_t *len,
                                int64_t *inner) {
    const kiln_tensor *y = c->in[1];
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), y->ndim, "axis", &axis));
    *outer = kiln__dims_prod(y->dims, 0, axis);
    if (kiln__attr_i(c->node, "flatten", 0)) {
        *len = kiln__dims_prod(y->dims, axis, y->ndim);
        *inner = 1;
    } else {
        *len = y->dims[axis];
        *inner = kiln__dims_prod(y->dims, axis + 1, y->ndim);
    }
    return KILN_OK;
}

// dY, Y: same shape and float dtype, rank >= 1; dX: like dY
static kiln_status softmax_grad_infer(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *y = c->in[1];
    char b1[96], b2[96];
    int64_t outer, len, inner;
    KILN__TRY(kiln__check_dtype(dy, "dY", KILN__FLOAT_DTYPES));
    if (y->dtype != dy->dtype || !kiln__same_shape(y, dy) || y->ndim < 1)
        return kiln__err(KILN_E_SHAPE, "input 'Y' is %s %s, expected %s %s like dY (rank >= 1)",
                         kiln_dtype_name(y->dtype), kiln__shape_str(y->ndim, y->dims, b1, sizeof b1),
                         kiln_dtype_name(dy->dtype),
                         kiln__shape_str(dy->ndim, dy->dims, b2, sizeof b2));
    KILN__TRY(softmax_rows(c, &outer, &len, &inner));
    return kiln__out_like(c, 0, dy);
}

static kiln_status softmax_grad_run(kiln__kctx *c, int log) {
    const kiln_tensor *dy = c->in[0], *y = c->in[1];
    kiln_tensor *dx = c->out[0];
    kiln_dtype dt = dy->dtype;
    int64_t outer, len, inner, lo, hi;
    KILN__TRY(softmax_rows(c, &outer, &len, &inner));
    kiln__split(outer * inner, c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t base = (r / inner) * len * inner + r % inner;
        double dot = 0;
        for (int64_t k = 0; k < len; k++) {
            int64_t i = base + k * inner;
            double g = kiln__elem_ld_f(dt, dy->data, i);
            dot += log ? g : g * kiln__elem_ld_f(dt, y->data, i);
        }
        for (int64_t k = 0; k < len; k++) {
            int64_t i = base + k * inner;
            double g = kiln__elem_ld_f(dt, dy->data, i), yv = kiln__elem_ld_f(dt, y->data, i);
            kiln__elem_st_f(dt, dx->data, i, log ? g - exp(yv) * dot : yv * (g - dot));
        }
    }
    return KILN_OK;
}

kiln_status kiln__infer_SoftmaxGrad(kiln__kctx *c) { return softmax_grad_infer(c); }
kiln_status kiln__ref_SoftmaxGrad(kiln__kctx *c) { return softmax_grad_run(c, 0); }
kiln_status kiln__infer_LogSoftmaxGrad(kiln__kctx *c) { return softmax_grad_infer(c); }
kiln_status kiln__ref_LogSoftmaxGrad(kiln__kctx *c) { return softmax_grad_run(c, 1); }

/* ---- SoftmaxCrossEntropyLossGrad ---------------------------------------------- */

/* 1 for reduction "none", 2 "sum", 3 "mean"; 0 (message set) otherwise. */
static int loss_reduction(const kiln__kctx *c) {
    const char *s = kiln__attr_s(c->node, "reduction", "mean");
    if (strcmp(s, "none") == 0) return 1;
    if (strcmp(s, "sum") == 0) return 2;
    if (strcmp(s, "mean") == 0) return 3;
    kiln__err(KILN_E_INVAL, "attribute 'reduction' is \"%s\", expected \"none\", \"sum\" or \"mean\"",
              s);
    return 0;
}

/* Both losses' gradients: in[1] (named what) is (N,C,D1..Dk), in[2] the labels. */
static kiln_status loss_grad_infer(kiln__kctx *c, const char *what) {
    const kiln_tensor *dl = c->in[0], *lp = c->in[1], *t = c->in[2], *w = kiln__in(c, 3);
    char b1[96], b2[96];
    int red = loss_reduction(c);
    if (!red) return KILN_E_INVAL;
    KILN__TRY(kiln__check_dtype(lp, what, KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(t, "labels", KILN_DTYPE_I32, KILN_DTYPE_I64, 0));
    int ok = lp->ndim >= 2 && t->ndim == lp->ndim - 1 && t->dims[0] == lp->dims[0];
    for (int i = 1; ok && i < t->ndim; i++) ok = t->dims[i] == lp->dims[i + 1];
    if (!ok)
        return kiln__err(KILN_E_SHAPE, "%s %s and labels %s do not match (expected (N,C,D1..Dk) "
                         "and (N,D1..Dk))", what,
                         kiln__shape_str(lp->ndim, lp->dims, b1, sizeof b1),
                         kiln__shape_str(t->ndim, t->dims, b2, sizeof b2));
    if (dl->dtype != lp->dtype)
        return kiln__err(KILN_E_TYPE, "input 'dL' is %s, expected %s like %s",
                         kiln_dtype_name(dl->dtype), kiln_dtype_name(lp->dtype), what);
    if (red == 1)
        KILN__TRY(kiln__check_shape(dl, "dL", t->ndim, t->dims));
    else if (kiln__n(dl) != 1)
        return kiln__err(KILN_E_SHAPE, "input 'dL' has shape %s, expected a scalar",
                         kiln__shape_str(dl->ndim, dl->dims, b1, sizeof b1));
    if (w) {
        KILN__TRY(kiln__check_dtype(w, "weight", KILN__FLOAT_DTYPES));
        KILN__TRY(kiln__check_shape(w, "weight", 1, lp->dims + 1));
    }
    return kiln__out_like(c, 0, lp);
}

// dL: () or (N,D), log_prob: (N,C,D), labels: (N,D), weight: (C); dScores: (N,C,D)
kiln_status kiln__infer_SoftmaxCrossEntropyLossGrad(kiln__kctx *c) {
    return loss_grad_infer(c, "log_prob");
}
kiln_status kiln__infer_NegativeLogLikelihoodLossGrad(kiln__kctx *c) {
    return loss_grad_infer(c, "input");
}

/* softmax: SoftmaxCrossEntropyLoss's gradient (p - onehot), else NLL's (-onehot). */
static kiln_status loss_grad_run(kiln__kctx *c, int softmax) {
    const kiln_tensor *dl = c->in[0], *lp = c->in[1], *t = c->in[2], *w = kiln__in(c, 3);
    kiln_tensor *dx = c->out[0];
    int red = loss_reduction(c);
    int has_ignore = kiln__attr_find(c->node, "ignore_index") != NULL;
    int64_t ignore = kiln__attr_i(c->node, "ignore_index", 0);
    int64_t N = lp->dims[0], C = lp->dims[1], D = kiln__n(t) / (N ? N : 1);
    kiln_dtype dt = lp->dtype;
    double weight_sum = 0;
    for (int64_t i = 0; i < N * D; i++) { /* label checks, and the mean's divisor */
        int64_t cls = kiln__ld_i(t->dtype, t->data, i);
        if (has_ignore && cls == ignore) continue;
        if (cls < 0 || cls >= C)
            return kiln__err(KILN_E_RANGE, "label %lld at position %lld is outside [0, %lld)",
                             (long long)cls, (long long)i, (long long)C);
        weight_sum += w ? kiln__elem_ld_f(w->dtype, w->data, cls) : 1.0;
    }
    double g_all = red == 1 ? 0 : kiln__elem_ld_f(dt, dl->data, 0);
    if (red == 3) g_all /= weight_sum;
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            int64_t base = n * C * D + d, cls = kiln__ld_i(t->dtype, t->data, n * D + d);
            double g = 0;
            if (!(has_ignore && cls == ignore)) {
                g = red == 1 ? kiln__elem_ld_f(dt, dl->data, n * D + d) : g_all;
                if (w) g *= kiln__elem_ld_f(w->dtype, w->data, cls);
            }
            for (int64_t k = 0; k < C; k++) {
                double p = softmax ? exp(kiln__elem_ld_f(dt, lp->data, base + k * D)) : 0;
                kiln__elem_st_f(dt, dx->data, base + k * D, g == 0 ? 0 : g * (p - (k == cls)));
            }
        }
    return KILN_OK;
}

kiln_status kiln__ref_SoftmaxCrossEntropyLossGrad(kiln__kctx *c) { return loss_grad_run(c, 1); }
kiln_status kiln__ref_NegativeLogLikelihoodLossGrad(kiln__kctx *c) { return loss_grad_run(c, 0); }
