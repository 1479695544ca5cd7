/* src/cpu/ref/shape_ops.c: ops that only change or report a tensor's shape
 * (Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size).
 *
 * Data movement is dtype-generic: elements are moved as raw bytes of their
 * size, except STRING elements (char *, owned by their tensor), which are
 * duplicated.
 */
#include <string.h>

#include "ops/op.h"

/* Kernel shared by the pure reshaping ops: output = input's elements. */
static kiln_status copy_input(kiln__kctx *c) {
    if (c->out[0]->data == c->in[0]->data) return KILN_OK; /* executor aliased them */
    return kiln__tensor_copy_data(c->out[0], c->in[0]);
}

/* ---- Reshape -------------------------------------------------------------- */

// data: any shape, shape: (k) int64 (attribute before opset 5), reshaped: k dims
kiln_status kiln__infer_Reshape(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t shape[KILN_MAX_DIMS];
    int n;
    KILN__TRY(kiln__ints_arg(c, c->opset >= 5, "shape", 1, shape, KILN_MAX_DIMS, &n));
    if (n < 0)
        return kiln__err(KILN_E_INVAL, "the 'shape' %s is missing",
                         c->opset >= 5 ? "input" : "attribute");
    int allowzero = c->opset >= 14 && kiln__attr_i(c->node, "allowzero", 0) != 0;
    int64_t known = 1, total = kiln__n(x);
    int infer_at = -1;
    char buf[128];
    for (int i = 0; i < n; i++) {
        if (shape[i] == -1) {
            if (infer_at >= 0)
                return kiln__err(KILN_E_INVAL, "input 'shape' has more than one -1 (%s)",
                                 kiln__shape_str(n, shape, buf, sizeof buf));
            infer_at = i;
            continue;
        }
        if (shape[i] < -1 || shape[i] > KILN__MAX_NUMEL)
            return kiln__err(KILN_E_INVAL, "input 'shape' has invalid dim %lld at position %d",
                             (long long)shape[i], i);
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->ndim)
                return kiln__err(KILN_E_SHAPE,
                                 "input 'shape' has 0 (copy) at position %d but 'data' has "
                                 "rank %d",
                                 i, x->ndim);
            shape[i] = x->dims[i];
        }
        if (!kiln__dims_mul(known, shape[i], &known))
            return kiln__err(KILN_E_LIMIT, "input 'shape' %s is too large",
                             kiln__shape_str(n, shape, buf, sizeof buf));
    }
    if (infer_at >= 0) {
        if (known == 0 || total % known != 0)
            return kiln__err(KILN_E_SHAPE,
                             "cannot infer the -1 in shape %s for 'data' of %lld elements",
                             kiln__shape_str(n, shape, buf, sizeof buf), (long long)total);
        shape[infer_at] = total / known;
        known = total;
    }
    if (known != total) {
        char xb[128];
        return kiln__err(KILN_E_SHAPE, "cannot reshape 'data' %s (%lld elements) to %s",
                         kiln__shape_str(x->ndim, x->dims, xb, sizeof xb), (long long)total,
                         kiln__shape_str(n, shape, buf, sizeof buf));
    }
    return kiln__out_shape(c, 0, x->dtype, n, shape);
}

kiln_status kiln__ref_Reshape(kiln__kctx *c) { return copy_input(c); }

/* ---- Flatten -------------------------------------------------------------- */

// input: (d0..d{r-1}), output: (d0*..*d{axis-1}, d{axis}*..*d{r-1})
kiln_status kiln__infer_Flatten(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t axis = kiln__attr_i(c->node, "axis", 1);
    if (axis < -x->ndim || axis > x->ndim)
        return kiln__err(KILN_E_INVAL, "attribute 'axis' is %lld, expected in [%d, %d]",
                         (long long)axis, -x->ndim, x->ndim);
    if (axis < 0) axis += x->ndim;
    int64_t dims[2] = {1, 1};
    for (int i = 0; i < x->ndim; i++) dims[i < axis ? 0 : 1] *= x->dims[i];
    return kiln__out_shape(c, 0, x->dtype, 2, dims);
}

kiln_status kiln__ref_Flatten(kiln__kctx *c) { return copy_input(c); }

/* ---- Squeeze / Unsqueeze --------------------------------------------------- */

/* Reads the 'axes' list (attribute before opset 13, input 1 from 13),
 * normalizes each into [0, rank) and marks it in is_axis[]. Fails on
 * out-of-range or repeated axes. *n = -1 when absent. */
static kiln_status read_axes(const kiln__kctx *c, int rank, int *is_axis, int *n) {
    int64_t axes[KILN_MAX_DIMS];
    memset(is_axis, 0, sizeof(int) * KILN_MAX_DIMS);
    KILN__TRY(kiln__ints_arg(c, c->opset >= 13, "axes", 1, axes, KILN_MAX_DIMS, n));
    for (int i = 0; i < *n; i++) {
        int a;
        KILN__TRY(kiln__axis(axes[i], rank, "axes", &a));
        if (is_axis[a])
            return kiln__err(KILN_E_INVAL, "'axes' repeats axis %lld", (long long)axes[i]);
        is_axis[a] = 1;
    }
    return KILN_OK;
}

// data: (d...), axes: (k) int64 (attribute before opset 13), squeezed: d without the 1s at axes
kiln_status kiln__infer_Squeeze(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int is_axis[KILN_MAX_DIMS], n;
    KILN__TRY(read_axes(c, x->ndim, is_axis, &n));
    int64_t dims[KILN_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (n < 0 ? x->dims[i] == 1 : is_axis[i]) {
            if (x->dims[i] != 1)
                return kiln__err(KILN_E_SHAPE, "cannot squeeze axis %d of 'data': its size is "
                                 "%lld, not 1", i, (long long)x->dims[i]);
            continue;
        }
        dims[nd++] = x->dims[i];
    }
    return kiln__out_shape(c, 0, x->dtype, nd, dims);
}

kiln_status kiln__ref_Squeeze(kiln__kctx *c) { return copy_input(c); }

// data: (d...), axes: (k) int64 (attribute before opset 13), expanded: rank r+k, 1 at axes
kiln_status kiln__infer_Unsqueeze(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int is_axis[KILN_MAX_DIMS], n;
    int64_t probe[KILN_MAX_DIMS];
    int np;
    /* the output rank (needed to normalize the axes) is rank + number of axes */
    KILN__TRY(kiln__ints_arg(c, c->opset >= 13, "axes", 1, probe, KILN_MAX_DIMS, &np));
    if (np < 0)
        return kiln__err(KILN_E_INVAL, "the 'axes' %s is missing",
                         c->opset >= 13 ? "input" : "attribute");
    int rank = x->ndim + np;
    if (rank > KILN_MAX_DIMS)
        return kiln__err(KILN_E_LIMIT, "output rank %d exceeds the maximum of %d", rank,
                         KILN_MAX_DIMS);
    KILN__TRY(read_axes(c, rank, is_axis, &n));
    int64_t dims[KILN_MAX_DIMS];
    for (int i = 0, j = 0; i < rank; i++) dims[i] = is_axis[i] ? 1 : x->dims[j++];
    return kiln__out_shape(c, 0, x->dtype, rank, dims);
}

kiln_status kiln__ref_Unsqueeze(kiln__kctx *c) { return copy_input(c); }

/* ---- Shape / Size ---------------------------------------------------------- */

/* The [start, end) range of dims Shape reports (attributes from opset 15). */
static void shape_range(const kiln__kctx *c, int rank, int *start, int *end) {
    int64_t s = kiln__attr_i(c->node, "start", 0);
    int64_t e = kiln__attr_i(c->node, "end", rank);
    if (s < 0) s += rank;
    if (e < 0) e += rank;
    s = s < 0 ? 0 : s > rank ? rank : s;
    e = e < 0 ? 0 : e > rank ? rank : e;
    *start = (int)s;
    *end = (int)(e > s ? e : s);
}

// data: any shape (values unused), shape: (end - start) int64
kiln_status kiln__infer_Shape(kiln__kctx *c) {
    int start, end;
    shape_range(c, c->in[0]->ndim, &start, &end);
    int64_t len = end - start;
    return kiln__out_shape(c, 0, KILN_DTYPE_I64, 1, &len);
}

kiln_status kiln__ref_Shape(kiln__kctx *c) {
    int start, end;
    shape_range(c, c->in[0]->ndim, &start, &end);
    int64_t *y = c->out[0]->data;
    for (int i = start; i < end; i++) y[i - start] = c->in[0]->dims[i];
    return KILN_OK;
}

// data: any shape (values unused), size: () int64
kiln_status kiln__infer_Size(kiln__kctx *c) {
    return kiln__out_shape(c, 0, KILN_DTYPE_I64, 0, NULL);
}

kiln_status kiln__ref_Size(kiln__kctx *c) {
    *(int64_t *)c->out[0]->data = kiln__n(c->in[0]);
    return KILN_OK;
}
