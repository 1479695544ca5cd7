/* src/cpu/ref/softmax.c: Softmax, LogSoftmax and Hardmax.
 *
 * Opset < 13: the input is coerced to 2-D (D0*..*D(axis-1), Daxis*..*Dk) and
 * the op runs over each row (default axis 1). Opset >= 13: the op runs along
 * the single dimension `axis` (default -1). Both are the view
 * (outer, n, inner) walked line by line with stride inner. Sums are in double
 * after subtracting the line's maximum. */
#include <math.h>

#include "ops/op.h"

typedef enum { SM_SOFTMAX, SM_LOGSOFTMAX, SM_HARDMAX } sm_kind;


/* The (outer, n, inner) view of x for this node's axis and opset. */
static kiln_status sm_view(const kiln__kctx *c, int64_t *outer, int64_t *n, int64_t *inner) {
    const kiln_tensor *x = c->in[0];
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", c->opset < 13 ? 1 : -1), x->ndim, "axis", &axis));
    *outer = *n = *inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < axis)
            *outer *= x->dims[i];
        else if (i == axis || c->opset < 13)
            *n *= x->dims[i];
        else
            *inner *= x->dims[i];
    }
    return KILN_OK;
}

static kiln_status sm_infer(kiln__kctx *c) {
    int64_t outer, n, inner;
    KILN__TRY(kiln__check_dtype(c->in[0], "input", KILN__FLOAT_DTYPES));
    KILN__TRY(sm_view(c, &outer, &n, &inner));
    return kiln__out_like(c, 0, c->in[0]);
}

// x: (outer, n, inner) view, y: like x; parallel over the outer*inner lines
static kiln_status sm_run(kiln__kctx *c, sm_kind kind) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    kiln_dtype dt = x->dtype;
    int64_t outer, n, inner, lo, hi;
    KILN__TRY(sm_view(c, &outer, &n, &inner));
    if (n == 0) return KILN_OK;
    kiln__split(outer * inner, c->ith, c->nth, &lo, &hi);
    for (int64_t l = lo; l < hi; l++) {
        int64_t base = (l / inner) * n * inner + l % inner;
        double max = kiln__elem_ld_f(dt, x->data, base);
        int64_t arg = 0;
        for (int64_t k = 1; k < n; k++) {
            double v = kiln__elem_ld_f(dt, x->data, base + k * inner);
            if (v > max) max = v, arg = k;
        }
        if (kind == SM_HARDMAX) {
            for (int64_t k = 0; k < n; k++)
                kiln__elem_st_f(dt, y->data, base + k * inner, k == arg);
            continue;
        }
        double sum = 0;
        for (int64_t k = 0; k < n; k++)
            sum += exp(kiln__elem_ld_f(dt, x->data, base + k * inner) - max);
        double log_sum = log(sum);
        for (int64_t k = 0; k < n; k++) {
            int64_t off = base + k * inner;
            double d = kiln__elem_ld_f(dt, x->data, off) - max;
            kiln__elem_st_f(dt, y->data, off, kind == SM_SOFTMAX ? exp(d) / sum : d - log_sum);
        }
    }
    return KILN_OK;
}

kiln_status kiln__infer_Softmax(kiln__kctx *c) { return sm_infer(c); }
kiln_status kiln__ref_Softmax(kiln__kctx *c) { return sm_run(c, SM_SOFTMAX); }
kiln_status kiln__infer_LogSoftmax(kiln__kctx *c) { return sm_infer(c); }
kiln_status kiln__ref_LogSoftmax(kiln__kctx *c) { return sm_run(c, SM_LOGSOFTMAX); }
kiln_status kiln__infer_Hardmax(kiln__kctx *c) { return sm_infer(c); }
kiln_status kiln__ref_Hardmax(kiln__kctx *c) { return sm_run(c, SM_HARDMAX); }
