/* src/cpu/ref/loss.c: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
 *
 * input: (N,C,D1..Dk) float, target: (N,D1..Dk) int32/int64, weight: (C)
 * optional. Per position the loss is -weight[t] * logp[n,t,d] (0 where
 * t == ignore_index); logp is the input itself (NLL) or its log-softmax over
 * C (SCE, also output as log_prob when asked). reduction "none" gives the
 * per-position losses (shape of target), "sum" their sum, "mean" their sum
 * divided by the sum of the weights of the non-ignored positions. */
#include <math.h>
#include <string.h>

#include "ops/op.h"


typedef enum { RED_NONE, RED_SUM, RED_MEAN } loss_reduction;

static kiln_status loss_reduction_attr(const kiln__kctx *c, loss_reduction *r) {
    const char *s = kiln__attr_s(c->node, "reduction", "mean");
    if (strcmp(s, "none") == 0)
        *r = RED_NONE;
    else if (strcmp(s, "sum") == 0)
        *r = RED_SUM;
    else if (strcmp(s, "mean") == 0)
        *r = RED_MEAN;
    else
        return kiln__err(KILN_E_INVAL, "attribute 'reduction' is \"%s\", expected \"none\", \"sum\" or \"mean\"", s);
    return KILN_OK;
}

static kiln_status loss_infer(kiln__kctx *c, int softmax) {
    const kiln_tensor *x = c->in[0], *t = c->in[1], *w = kiln__in(c, 2);
    char bx[128], bt[128];
    loss_reduction red;
    KILN__TRY(kiln__check_dtype(x, softmax ? "scores" : "input", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(t, softmax ? "labels" : "target", KILN_DTYPE_I32, KILN_DTYPE_I64, 0));
    KILN__TRY(loss_reduction_attr(c, &red));
    int ok = x->ndim >= 2 && t->ndim == x->ndim - 1 && t->dims[0] == x->dims[0];
    for (int i = 1; ok && i < t->ndim; i++) ok = t->dims[i] == x->dims[i + 1];
    if (!ok)
        return kiln__err(KILN_E_SHAPE, "input shapes %s and target %s do not match (expected (N,C,D1..Dk) and (N,D1..Dk))",
                         kiln__shape_str(x->ndim, x->dims, bx, sizeof bx),
                         kiln__shape_str(t->ndim, t->dims, bt, sizeof bt));
    if (w) {
        KILN__TRY(kiln__check_dtype(w, "weight", KILN__FLOAT_DTYPES));
        if (w->ndim != 1 || w->dims[0] != x->dims[1])
            return kiln__err(KILN_E_SHAPE, "input 'weight' has shape %s, expected (%lld)",
                             kiln__shape_str(w->ndim, w->dims, bt, sizeof bt), (long long)x->dims[1]);
    }
    if (red == RED_NONE)
        KILN__TRY(kiln__out_shape(c, 0, x->dtype, t->ndim, t->dims));
    else
        KILN__TRY(kiln__out_shape(c, 0, x->dtype, 0, t->dims)); /* scalar */
    if (softmax) KILN__TRY(kiln__out_like(c, 1, x));
    return KILN_OK;
}

// x: (N,C,D), target: (N,D), weight: (C); loss: (N,D) or (); log_prob: (N,C,D)
static kiln_status loss_run(kiln__kctx *c, int softmax) {
    const kiln_tensor *x = c->in[0], *t = c->in[1], *w = kiln__in(c, 2);
    kiln_tensor *loss = c->out[0], *log_prob = softmax ? kiln__out(c, 1) : NULL;
    loss_reduction red;
    KILN__TRY(loss_reduction_attr(c, &red));
    int has_ignore = kiln__attr_find(c->node, "ignore_index") != NULL;
    int64_t ignore = kiln__attr_i(c->node, "ignore_index", 0);
    int64_t N = x->dims[0], C = x->dims[1], D = kiln__n(t) / (N ? N : 1);
    double total = 0, weight_sum = 0;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t d = 0; d < D; d++) {
            int64_t base = n * C * D + d; /* x[n, 0, d]; classes have stride D */
            double log_norm = 0;
            if (softmax) {
                double max = -INFINITY, sum = 0;
                for (int64_t k = 0; k < C; k++) {
                    double v = kiln__elem_ld_f(x->dtype, x->data, base + k * D);
                    if (v > max) max = v;
                }
                for (int64_t k = 0; k < C; k++)
                    sum += exp(kiln__elem_ld_f(x->dtype, x->data, base + k * D) - max);
                log_norm = max + log(sum);
                if (log_prob)
                    for (int64_t k = 0; k < C; k++)
                        kiln__elem_st_f(log_prob->dtype, log_prob->data, base + k * D,
                            kiln__elem_ld_f(x->dtype, x->data, base + k * D) - log_norm);
            }
            int64_t cls = kiln__ld_i(t->dtype, t->data, n * D + d);
            double l = 0, wt = 0;
            if (!(has_ignore && cls == ignore)) {
                if (cls < 0 || cls >= C)
                    return kiln__err(KILN_E_RANGE, "target value %lld at position %lld is outside [0, %lld)",
                                     (long long)cls, (long long)(n * D + d), (long long)C);
                wt = w ? kiln__elem_ld_f(w->dtype, w->data, cls) : 1.0;
                l = -wt * (kiln__elem_ld_f(x->dtype, x->data, base + cls * D) - log_norm);
            }
            if (red == RED_NONE) kiln__elem_st_f(loss->dtype, loss->data, n * D + d, l);
            total += l;
            weight_sum += wt;
        }
    }
    if (red != RED_NONE)
        kiln__elem_st_f(loss->dtype, loss->data, 0, red == RED_SUM ? total : total / weight_sum);
    return KILN_OK;
}

kiln_status kiln__infer_NegativeLogLikelihoodLoss(kiln__kctx *c) { return loss_infer(c, 0); }
kiln_status kiln__ref_NegativeLogLikelihoodLoss(kiln__kctx *c) { return loss_run(c, 0); }
kiln_status kiln__infer_SoftmaxCrossEntropyLoss(kiln__kctx *c) { return loss_infer(c, 1); }
kiln_status kiln__ref_SoftmaxCrossEntropyLoss(kiln__kctx *c) { return loss_run(c, 1); }
