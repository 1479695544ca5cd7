/* src/cpu/ref/gather_scatter.c: index-driven data movement and data-dependent
 * selection: Gather, GatherElements, GatherND, ScatterElements (and the
 * deprecated Scatter), ScatterND, TensorScatter, NonZero, Compress, Unique;
 * and kiln.GatherGrad, Gather's gradient (autograd, src/ops/defs/grad.def).
 *
 * Every index read from a tensor is normalized (negative counts from the end)
 * and checked against its dimension before use; a bad one fails naming the
 * input, the position and the value.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

/* ---- helpers ---------------------------------------------------------------- */

/* Element pos of the int32/int64 tensor t (input `what`), normalized into
 * [0, dim). */
static kiln_status load_index(const kiln_tensor *t, const char *what, int64_t pos, int64_t dim,
                              int64_t *out) {
    int64_t v = kiln__ld_i(t->dtype, t->data, pos);
    int64_t n = v < 0 ? v + dim : v;
    if (n < 0 || n >= dim)
        return kiln__err(KILN_E_RANGE, "input '%s' has index %lld at position %lld, out of range "
                         "[-%lld, %lld)", what, (long long)v, (long long)pos, (long long)dim,
                         (long long)dim);
    *out = n;
    return KILN_OK;
}

static kiln_status check_index_dtype(const kiln_tensor *t, const char *what) {
    return kiln__check_dtype(t, what, KILN_DTYPE_I64, KILN_DTYPE_I32, 0);
}

/* Reads attribute 'axis' (default def) normalized for rank. */
static kiln_status axis_attr(const kiln__kctx *c, int64_t def, int rank, int *axis) {
    if (rank < 1) return kiln__err(KILN_E_SHAPE, "input 'data' must have rank >= 1");
    return kiln__axis(kiln__attr_i(c->node, "axis", def), rank, "attribute 'axis'", axis);
}

/* ---- scatter reductions ------------------------------------------------------- */

typedef enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } scatter_red;

/* Attribute 'reduction': none/add/mul from opset 16, max/min from opset 18. */
static kiln_status scatter_reduction(const kiln__kctx *c, kiln_dtype dt, scatter_red *r) {
    const char *s = c->opset >= 16 ? kiln__attr_s(c->node, "reduction", "none") : "none";
    if (!strcmp(s, "none")) *r = RED_NONE;
    else if (!strcmp(s, "add")) *r = RED_ADD;
    else if (!strcmp(s, "mul")) *r = RED_MUL;
    else if (!strcmp(s, "max") && c->opset >= 18) *r = RED_MAX;
    else if (!strcmp(s, "min") && c->opset >= 18) *r = RED_MIN;
    else return kiln__err(KILN_E_INVAL, "attribute 'reduction' is '%s', expected none, add, mul%s",
                          s, c->opset >= 18 ? ", max or min" : "");
    if (*r != RED_NONE && dt == KILN_DTYPE_STRING)
        return kiln__err(KILN_E_TYPE, "reduction '%s' is not defined for strings", s);
    return KILN_OK;
}

static double reduce_f(double a, double b, scatter_red r) {
    switch (r) {
    case RED_ADD: return a + b;
    case RED_MUL: return a * b;
    case RED_MAX: return isnan(a) || a >= b ? a : b;
    case RED_MIN: return isnan(a) || a <= b ? a : b;
    default: return b;
    }
}

/* Integer add/mul wrap (done unsigned: no UB); bool add/mul act as or/and. */
static int64_t reduce_i(int64_t a, int64_t b, scatter_red r) {
    switch (r) {
    case RED_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
    case RED_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
    case RED_MAX: return a > b ? a : b;
    case RED_MIN: return a < b ? a : b;
    default: return b;
    }
}

static uint64_t reduce_u(uint64_t a, uint64_t b, scatter_red r) {
    switch (r) {
    case RED_ADD: return a + b;
    case RED_MUL: return a * b;
    case RED_MAX: return a > b ? a : b;
    case RED_MIN: return a < b ? a : b;
    default: return b;
    }
}

/* dst[di + j] = reduce(dst[di + j], src[si + j]) for j < n (a plain copy for
 * RED_NONE). */
static kiln_status scatter_elems(kiln_dtype dt, void *dst, int64_t di, const void *src,
                                 int64_t si, int64_t n, scatter_red r) {
    if (r == RED_NONE) return kiln__elem_copy(dt, dst, di, src, si, n);
    for (int64_t j = 0; j < n; j++) {
        if (kiln__dtype_is_float(dt))
            kiln__st_f(dt, dst, di + j, reduce_f(kiln__ld_f(dt, dst, di + j),
                                                 kiln__ld_f(dt, src, si + j), r));
        else if (kiln__dtype_is_signed(dt))
            kiln__st_i(dt, dst, di + j, reduce_i(kiln__ld_i(dt, dst, di + j),
                                                 kiln__ld_i(dt, src, si + j), r));
        else
            kiln__st_u(dt, dst, di + j, reduce_u(kiln__ld_u(dt, dst, di + j),
                                                 kiln__ld_u(dt, src, si + j), r));
    }
    return KILN_OK;
}

/* ---- Gather ------------------------------------------------------------------ */

// data: (a..., d, b...), indices: (i...) int32/64, output: (a..., i..., b...)
kiln_status kiln__infer_Gather(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int axis;
    KILN__TRY(axis_attr(c, 0, x->ndim, &axis));
    KILN__TRY(check_index_dtype(idx, "input 'indices'"));
    int nd = x->ndim - 1 + idx->ndim;
    if (nd > KILN_MAX_DIMS)
        return kiln__err(KILN_E_LIMIT, "output rank %d exceeds %d", nd, KILN_MAX_DIMS);
    int64_t dims[KILN_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < axis; i++) dims[k++] = x->dims[i];
    for (int i = 0; i < idx->ndim; i++) dims[k++] = idx->dims[i];
    for (int i = axis + 1; i < x->ndim; i++) dims[k++] = x->dims[i];
    return kiln__out_shape(c, 0, x->dtype, nd, dims);
}

kiln_status kiln__ref_Gather(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int axis;
    KILN__TRY(axis_attr(c, 0, x->ndim, &axis));
    int64_t outer = kiln__dims_prod(x->dims, 0, axis), dim = x->dims[axis];
    int64_t inner = kiln__dims_prod(x->dims, axis + 1, x->ndim), ni = kiln__n(idx);
    for (int64_t j = 0; j < ni; j++) {
        int64_t k;
        KILN__TRY(load_index(idx, "indices", j, dim, &k));
        for (int64_t o = 0; o < outer; o++)
            KILN__TRY(kiln__elem_copy(x->dtype, c->out[0]->data, (o * ni + j) * inner,
                                           x->data, (o * dim + k) * inner, inner));
    }
    return KILN_OK;
}

/* kiln.GatherGrad(dY, indices, shape) -> dX: dX of `shape` (Gather's data),
 * zero except that every slice of dY that Gather took from data goes back to
 * where it came from, repeated indices adding up (in dX's dtype). Attribute
 * axis as the forward Gather's. */
static kiln_status gather_grad_shape(const kiln__kctx *c, int *nd, int64_t *dims) {
    const kiln_tensor *dy = c->in[0], *idx = c->in[1];
    char b1[96], b2[96];
    int axis;
    KILN__TRY(kiln__check_dtype(dy, "dY", KILN__FLOAT_DTYPES));
    KILN__TRY(check_index_dtype(idx, "input 'indices'"));
    KILN__TRY(kiln__read_ints(c->in[2], "shape", dims, KILN_MAX_DIMS, nd));
    KILN__TRY(axis_attr(c, 0, *nd, &axis));
    int ok = dy->ndim == *nd - 1 + idx->ndim, k = 0;
    for (int i = 0; ok && i < *nd; i++) {
        if (i != axis) {
            ok = dy->dims[k++] == dims[i];
            continue;
        }
        for (int j = 0; ok && j < idx->ndim; j++) ok = dy->dims[k++] == idx->dims[j];
    }
    if (!ok)
        return kiln__err(KILN_E_SHAPE, "dY %s is not what Gather makes of data %s and these indices",
                         kiln__shape_str(dy->ndim, dy->dims, b1, sizeof b1),
                         kiln__shape_str(*nd, dims, b2, sizeof b2));
    return KILN_OK;
}

kiln_status kiln__infer_GatherGrad(kiln__kctx *c) {
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__NEED(c, 2);
    KILN__TRY(gather_grad_shape(c, &nd, dims));
    return kiln__out_shape(c, 0, c->in[0]->dtype, nd, dims);
}

// dY: (outer, n_idx, inner), indices: (n_idx); dX: (outer, dim, inner)
kiln_status kiln__ref_GatherGrad(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *idx = c->in[1];
    kiln_tensor *dx = c->out[0];
    int axis;
    KILN__TRY(axis_attr(c, 0, dx->ndim, &axis));
    int64_t outer = kiln__dims_prod(dx->dims, 0, axis), dim = dx->dims[axis];
    int64_t inner = kiln__dims_prod(dx->dims, axis + 1, dx->ndim), ni = kiln__n(idx);
    memset(dx->data, 0, (size_t)kiln__n(dx) * kiln_dtype_size(dx->dtype));
    for (int64_t j = 0; j < ni; j++) {
        int64_t k;
        KILN__TRY(load_index(idx, "indices", j, dim, &k));
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t to = (o * dim + k) * inner + i;
                kiln__elem_st_f(dx->dtype, dx->data, to,
                                kiln__elem_ld_f(dx->dtype, dx->data, to) +
                                    kiln__elem_ld_f(dy->dtype, dy->data, (o * ni + j) * inner + i));
            }
    }
    return KILN_OK;
}

/* ---- GatherElements / ScatterElements / Scatter -------------------------------- */

/* indices must have data's rank and, off the axis, no larger dims. */
static kiln_status check_elements_indices(const kiln_tensor *x, const kiln_tensor *idx, int axis) {
    KILN__TRY(check_index_dtype(idx, "input 'indices'"));
    int ok = idx->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++) ok = d == axis || idx->dims[d] <= x->dims[d];
    if (!ok) {
        char a[128], b[128];
        return kiln__err(KILN_E_SHAPE, "input 'indices' has shape %s, incompatible with 'data' "
                         "%s (same rank, dims off axis %d no larger)",
                         kiln__shape_str(idx->ndim, idx->dims, a, sizeof a),
                         kiln__shape_str(x->ndim, x->dims, b, sizeof b), axis);
    }
    return KILN_OK;
}

/* Walks every position k of indices (contiguous) and calls visit with the
 * offset into a tensor of data's shape that position k addresses: its own
 * coordinates, with the axis coordinate replaced by indices[k]. */
typedef kiln_status (*elements_visit)(kiln__kctx *c, const void *arg, int64_t k,
                                      int64_t data_off);
static kiln_status walk_elements(kiln__kctx *c, const kiln_tensor *x, const kiln_tensor *idx,
                                 int axis, elements_visit visit, const void *arg) {
    int64_t n = kiln__n(idx);
    if (n == 0) return KILN_OK;
    int64_t xs[KILN_MAX_DIMS], st[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    kiln__contiguous_strides(x->ndim, x->dims, xs);
    memcpy(st[0], xs, sizeof(int64_t) * (size_t)x->ndim);
    st[0][axis] = 0;
    kiln__iter it;
    kiln__iter_init(&it, idx->ndim, idx->dims, 1, st);
    for (int64_t k = 0; k < n; k++, kiln__iter_next(&it)) {
        int64_t j;
        KILN__TRY(load_index(idx, "indices", k, x->dims[axis], &j));
        KILN__TRY(visit(c, arg, k, it.off[0] + j * xs[axis]));
    }
    return KILN_OK;
}

// data: (d...), indices: (i...) same rank, output: (i...) = data at indices along axis
kiln_status kiln__infer_GatherElements(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int axis;
    KILN__TRY(axis_attr(c, 0, x->ndim, &axis));
    KILN__TRY(check_elements_indices(x, idx, axis));
    return kiln__out_shape(c, 0, x->dtype, idx->ndim, idx->dims);
}

static kiln_status gather_one(kiln__kctx *c, const void *arg, int64_t k, int64_t data_off) {
    return kiln__elem_copy(c->in[0]->dtype, c->out[0]->data, k, c->in[0]->data, data_off, 1);
}

kiln_status kiln__ref_GatherElements(kiln__kctx *c) {
    int axis;
    KILN__TRY(axis_attr(c, 0, c->in[0]->ndim, &axis));
    return walk_elements(c, c->in[0], c->in[1], axis, gather_one, NULL);
}

// data: (d...), indices: (i...) same rank, updates: (i...), output: (d...)
kiln_status kiln__infer_ScatterElements(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1], *upd = c->in[2];
    int axis;
    scatter_red r;
    KILN__TRY(axis_attr(c, 0, x->ndim, &axis));
    KILN__TRY(check_elements_indices(x, idx, axis));
    KILN__TRY(scatter_reduction(c, x->dtype, &r));
    if (upd->dtype != x->dtype || !kiln__same_shape(upd, idx))
        return kiln__err(KILN_E_SHAPE, "input 'updates' must have the dtype of 'data' and the "
                         "shape of 'indices'");
    return kiln__out_like(c, 0, x);
}

/* arg: the scatter_red */
static kiln_status scatter_one(kiln__kctx *c, const void *arg, int64_t k, int64_t data_off) {
    return scatter_elems(c->in[0]->dtype, c->out[0]->data, data_off, c->in[2]->data, k, 1,
                         *(const scatter_red *)arg);
}

kiln_status kiln__ref_ScatterElements(kiln__kctx *c) {
    int axis;
    scatter_red r;
    KILN__TRY(axis_attr(c, 0, c->in[0]->ndim, &axis));
    KILN__TRY(scatter_reduction(c, c->in[0]->dtype, &r));
    if (c->out[0]->data != c->in[0]->data)
        KILN__TRY(kiln__tensor_copy_data(c->out[0], c->in[0]));
    return walk_elements(c, c->in[0], c->in[1], axis, scatter_one, &r);
}

/* Scatter (opsets 9-10): ScatterElements without reduction. */
kiln_status kiln__infer_Scatter(kiln__kctx *c) { return kiln__infer_ScatterElements(c); }
kiln_status kiln__ref_Scatter(kiln__kctx *c) { return kiln__ref_ScatterElements(c); }

/* ---- GatherND / ScatterND ---------------------------------------------------- */

/* Offset into data (within one batch of `batch` leading dims) of the index
 * tuple at indices[tuple * k .. + k). */
static kiln_status nd_offset(const kiln_tensor *x, const kiln_tensor *idx, int batch, int64_t tuple,
                             int k, int64_t *off) {
    int64_t xs[KILN_MAX_DIMS];
    kiln__contiguous_strides(x->ndim, x->dims, xs);
    *off = 0;
    for (int i = 0; i < k; i++) {
        int64_t j = 0;
        KILN__TRY(load_index(idx, "indices", tuple * k + i, x->dims[batch + i], &j));
        *off += j * xs[batch + i];
    }
    return KILN_OK;
}

// data: (b..., d...), indices: (b..., m..., k), output: (b..., m..., d[k:]...)
kiln_status kiln__infer_GatherND(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int64_t b = c->opset >= 12 ? kiln__attr_i(c->node, "batch_dims", 0) : 0;
    KILN__TRY(check_index_dtype(idx, "input 'indices'"));
    if (x->ndim < 1 || idx->ndim < 1)
        return kiln__err(KILN_E_SHAPE, "inputs 'data' and 'indices' must have rank >= 1");
    if (b < 0 || b >= x->ndim || b >= idx->ndim)
        return kiln__err(KILN_E_INVAL, "attribute 'batch_dims' is %lld, expected in [0, %d)",
                         (long long)b, x->ndim < idx->ndim ? x->ndim : idx->ndim);
    int64_t k = idx->dims[idx->ndim - 1];
    if (k > x->ndim - b)
        return kiln__err(KILN_E_SHAPE, "last dim of 'indices' is %lld, at most rank(data) - "
                         "batch_dims = %lld", (long long)k, (long long)(x->ndim - b));
    for (int i = 0; i < b; i++)
        if (x->dims[i] != idx->dims[i])
            return kiln__err(KILN_E_SHAPE, "batch dim %d differs: 'data' %lld, 'indices' %lld", i,
                             (long long)x->dims[i], (long long)idx->dims[i]);
    int64_t dims[KILN_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < idx->ndim - 1; i++) dims[nd++] = idx->dims[i];
    for (int i = (int)(b + k); i < x->ndim; i++) {
        if (nd == KILN_MAX_DIMS) return kiln__err(KILN_E_LIMIT, "output rank exceeds %d", nd);
        dims[nd++] = x->dims[i];
    }
    return kiln__out_shape(c, 0, x->dtype, nd, dims);
}

kiln_status kiln__ref_GatherND(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int b = c->opset >= 12 ? (int)kiln__attr_i(c->node, "batch_dims", 0) : 0;
    int k = (int)idx->dims[idx->ndim - 1];
    int64_t batches = kiln__dims_prod(x->dims, 0, b), block = kiln__dims_prod(x->dims, b, x->ndim);
    int64_t tuples = kiln__dims_prod(idx->dims, b, idx->ndim - 1);
    int64_t slice = kiln__dims_prod(x->dims, b + k, x->ndim);
    for (int64_t bi = 0; bi < batches; bi++) {
        for (int64_t m = 0; m < tuples; m++) {
            int64_t t = bi * tuples + m, off;
            KILN__TRY(nd_offset(x, idx, b, t, k, &off));
            KILN__TRY(kiln__elem_copy(x->dtype, c->out[0]->data, t * slice, x->data,
                                           bi * block + off, slice));
        }
    }
    return KILN_OK;
}

// data: (d...), indices: (m..., k), updates: (m..., d[k:]...), output: (d...)
kiln_status kiln__infer_ScatterND(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1], *upd = c->in[2];
    scatter_red r;
    KILN__TRY(check_index_dtype(idx, "input 'indices'"));
    KILN__TRY(scatter_reduction(c, x->dtype, &r));
    if (x->ndim < 1 || idx->ndim < 1)
        return kiln__err(KILN_E_SHAPE, "inputs 'data' and 'indices' must have rank >= 1");
    int64_t k = idx->dims[idx->ndim - 1];
    if (k > x->ndim)
        return kiln__err(KILN_E_SHAPE, "last dim of 'indices' is %lld, more than rank(data) %d",
                         (long long)k, x->ndim);
    int ok = upd->dtype == x->dtype && upd->ndim == idx->ndim - 1 + x->ndim - k;
    for (int i = 0; ok && i < upd->ndim; i++)
        ok = upd->dims[i] == (i < idx->ndim - 1 ? idx->dims[i] : x->dims[i - (idx->ndim - 1) + k]);
    if (!ok) {
        char a[128];
        return kiln__err(KILN_E_SHAPE, "input 'updates' (%s %s) must be indices.shape[:-1] + "
                         "data.shape[%lld:] of data's dtype",
                         kiln_dtype_name(upd->dtype),
                         kiln__shape_str(upd->ndim, upd->dims, a, sizeof a), (long long)k);
    }
    return kiln__out_like(c, 0, x);
}

kiln_status kiln__ref_ScatterND(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1], *upd = c->in[2];
    scatter_red r;
    KILN__TRY(scatter_reduction(c, x->dtype, &r));
    if (c->out[0]->data != x->data) KILN__TRY(kiln__tensor_copy_data(c->out[0], x));
    int k = (int)idx->dims[idx->ndim - 1];
    int64_t tuples = kiln__dims_prod(idx->dims, 0, idx->ndim - 1),
            slice = kiln__dims_prod(x->dims, k, x->ndim);
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off;
        KILN__TRY(nd_offset(x, idx, 0, t, k, &off));
        KILN__TRY(scatter_elems(x->dtype, c->out[0]->data, off, upd->data, t * slice, slice, r));
    }
    return KILN_OK;
}

/* ---- TensorScatter ------------------------------------------------------------ */

/* axis (>= 1: dim 0 is the batch) and circular mode. */
static kiln_status tensor_scatter_args(const kiln__kctx *c, int *axis, int *circular) {
    const char *mode = kiln__attr_s(c->node, "mode", "linear");
    if (strcmp(mode, "linear") && strcmp(mode, "circular"))
        return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected linear or circular",
                         mode);
    *circular = !strcmp(mode, "circular");
    KILN__TRY(axis_attr(c, -2, c->in[0]->ndim, axis));
    if (*axis == 0)
        return kiln__err(KILN_E_INVAL, "attribute 'axis' must not be the batch axis 0");
    return KILN_OK;
}

// past_cache: (B, ..., S_max, ...), update: (B, ..., S, ...), write_indices: (B) int64
// optional, present_cache: (B, ..., S_max, ...)
kiln_status kiln__infer_TensorScatter(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *upd = c->in[1], *w = kiln__in(c, 2);
    int axis, circular;
    KILN__TRY(tensor_scatter_args(c, &axis, &circular));
    int ok = upd->dtype == x->dtype && upd->ndim == x->ndim;
    for (int d = 0; ok && d < x->ndim; d++)
        ok = d == axis ? upd->dims[d] <= x->dims[d] : upd->dims[d] == x->dims[d];
    if (!ok) {
        char a[128], b[128];
        return kiln__err(KILN_E_SHAPE, "input 'update' %s must match 'past_cache' %s except on "
                         "axis %d (where it may be shorter)",
                         kiln__shape_str(upd->ndim, upd->dims, a, sizeof a),
                         kiln__shape_str(x->ndim, x->dims, b, sizeof b), axis);
    }
    if (w) {
        KILN__TRY(check_index_dtype(w, "input 'write_indices'"));
        if (w->ndim != 1 || w->dims[0] != x->dims[0])
            return kiln__err(KILN_E_SHAPE, "input 'write_indices' must have shape (%lld)",
                             (long long)x->dims[0]);
    }
    return kiln__out_like(c, 0, x);
}

kiln_status kiln__ref_TensorScatter(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *upd = c->in[1], *w = kiln__in(c, 2);
    int axis, circular;
    KILN__TRY(tensor_scatter_args(c, &axis, &circular));
    if (c->out[0]->data != x->data) KILN__TRY(kiln__tensor_copy_data(c->out[0], x));
    int64_t prefixes = kiln__dims_prod(x->dims, 0, axis),
            per_batch = kiln__dims_prod(x->dims, 1, axis);
    int64_t max = x->dims[axis], len = upd->dims[axis];
    int64_t inner = kiln__dims_prod(x->dims, axis + 1, x->ndim);
    for (int64_t p = 0; p < prefixes; p++) {
        int64_t b = p / per_batch, start = w ? kiln__ld_i(w->dtype, w->data, b) : 0;
        if (circular && max > 0) start = (start % max + max) % max;
        else if (!circular && (start < 0 || start > max - len))
            return kiln__err(KILN_E_RANGE, "input 'write_indices' has %lld for batch %lld; "
                             "writing %lld entries needs it in [0, %lld]", (long long)start,
                             (long long)b, (long long)len, (long long)(max - len));
        for (int64_t s = 0; s < len; s++) {
            int64_t pos = circular ? (start + s) % max : start + s;
            KILN__TRY(kiln__elem_copy(x->dtype, c->out[0]->data, (p * max + pos) * inner,
                                           upd->data, (p * len + s) * inner, inner));
        }
    }
    return KILN_OK;
}

/* ---- NonZero -------------------------------------------------------------------- */

static int is_nonzero(kiln_dtype dt, const void *base, int64_t i) {
    if (dt == KILN_DTYPE_STRING) {
        const char *s = ((char *const *)base)[i];
        return s && s[0];
    }
    if (kiln__dtype_is_float(dt)) return kiln__ld_f(dt, base, i) != 0; /* NaN counts */
    return kiln__ld_u(dt, base, i) != 0;
}

// X: (d...) (a scalar reads as (1)), Y: (max(rank, 1), nnz) int64 coordinates
kiln_status kiln__infer_NonZero(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__NEED(c, 0);
    int64_t n = kiln__n(x), dims[2] = {x->ndim > 0 ? x->ndim : 1, 0};
    for (int64_t i = 0; i < n; i++) dims[1] += is_nonzero(x->dtype, x->data, i);
    return kiln__out_shape(c, 0, KILN_DTYPE_I64, 2, dims);
}

kiln_status kiln__ref_NonZero(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t *y = c->out[0]->data, nnz = c->out[0]->dims[1], n = kiln__n(x), k = 0;
    int64_t idx[KILN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        if (is_nonzero(x->dtype, x->data, i)) {
            if (k >= nnz) return kiln__err(KILN_E_INTERNAL, "NonZero count changed since infer");
            if (x->ndim == 0) y[k] = 0;
            for (int d = 0; d < x->ndim; d++) y[d * nnz + k] = idx[d];
            k++;
        }
        for (int d = x->ndim - 1; d >= 0; d--) { /* next coordinate */
            if (++idx[d] < x->dims[d]) break;
            idx[d] = 0;
        }
    }
    return KILN_OK;
}

/* ---- Compress -------------------------------------------------------------------- */

/* Number of selected entries (condition is 1-D bool; entries past the axis
 * size must be false), with outer/dim/inner of the axis (no axis: the
 * flattened input). */
static kiln_status compress_plan(const kiln__kctx *c, int *axis, int64_t *outer, int64_t *dim,
                                 int64_t *inner, int64_t *count) {
    const kiln_tensor *x = c->in[0], *cond = c->in[1];
    KILN__TRY(kiln__check_dtype(cond, "input 'condition'", KILN_DTYPE_BOOL, 0));
    if (cond->ndim != 1) return kiln__err(KILN_E_SHAPE, "input 'condition' must be 1-D");
    *axis = -1;
    *outer = *inner = 1;
    *dim = kiln__n(x);
    if (kiln__attr_find(c->node, "axis")) {
        KILN__TRY(axis_attr(c, 0, x->ndim, axis));
        *outer = kiln__dims_prod(x->dims, 0, *axis);
        *dim = x->dims[*axis];
        *inner = kiln__dims_prod(x->dims, *axis + 1, x->ndim);
    }
    KILN__NEED(c, 1);
    const uint8_t *cv = cond->data;
    *count = 0;
    for (int64_t i = 0; i < cond->dims[0]; i++) {
        if (!cv[i]) continue;
        if (i >= *dim)
            return kiln__err(KILN_E_RANGE, "input 'condition' selects entry %lld but the axis "
                             "has %lld", (long long)i, (long long)*dim);
        (*count)++;
    }
    return KILN_OK;
}

// input: (d...), condition: (n) bool, output: (count) without axis, else d with d[axis] = count
kiln_status kiln__infer_Compress(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis;
    int64_t outer, dim, inner, count;
    KILN__TRY(compress_plan(c, &axis, &outer, &dim, &inner, &count));
    if (axis < 0) return kiln__out_shape(c, 0, x->dtype, 1, &count);
    int64_t dims[KILN_MAX_DIMS];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->ndim);
    dims[axis] = count;
    return kiln__out_shape(c, 0, x->dtype, x->ndim, dims);
}

kiln_status kiln__ref_Compress(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *cond = c->in[1];
    int axis;
    int64_t outer, dim, inner, count;
    KILN__TRY(compress_plan(c, &axis, &outer, &dim, &inner, &count));
    const uint8_t *cv = cond->data;
    int64_t n = cond->dims[0] < dim ? cond->dims[0] : dim;
    for (int64_t o = 0; o < outer; o++) {
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!cv[i]) continue;
            KILN__TRY(kiln__elem_copy(x->dtype, c->out[0]->data, (o * count + k) * inner,
                                           x->data, (o * dim + i) * inner, inner));
            k++;
        }
    }
    return KILN_OK;
}

/* ---- Unique ----------------------------------------------------------------------- */

/* The input seen as `n` slices along an axis: slice s is the elements
 * (o * n + s) * inner + i for o < outer, i < inner (no axis: outer = inner = 1). */
typedef struct unique_view {
    kiln_dtype dt;
    const void *data;
    int axis; /* -1: flattened */
    int64_t outer, n, inner;
} unique_view;

static kiln_status unique_view_make(const kiln__kctx *c, unique_view *v) {
    const kiln_tensor *x = c->in[0];
    v->dt = x->dtype;
    v->data = x->data;
    v->axis = -1;
    v->outer = v->inner = 1;
    v->n = kiln__n(x);
    if (kiln__attr_find(c->node, "axis")) {
        KILN__TRY(axis_attr(c, 0, x->ndim, &v->axis));
        v->outer = kiln__dims_prod(x->dims, 0, v->axis);
        v->n = x->dims[v->axis];
        v->inner = kiln__dims_prod(x->dims, v->axis + 1, x->ndim);
    }
    return KILN_OK;
}

/* Orders elements i and j of one dtype: numbers by value (NaN after
 * everything, equal to NaN), strings by bytes. */
static int elem_cmp(kiln_dtype dt, const void *base, int64_t i, int64_t j) {
    if (dt == KILN_DTYPE_STRING) {
        const char *a = ((char *const *)base)[i], *b = ((char *const *)base)[j];
        return strcmp(a ? a : "", b ? b : "");
    }
    if (kiln__dtype_is_float(dt)) {
        double a = kiln__ld_f(dt, base, i), b = kiln__ld_f(dt, base, j);
        if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
        return (a > b) - (a < b);
    }
    if (kiln__dtype_is_signed(dt)) {
        int64_t a = kiln__ld_i(dt, base, i), b = kiln__ld_i(dt, base, j);
        return (a > b) - (a < b);
    }
    uint64_t a = kiln__ld_u(dt, base, i), b = kiln__ld_u(dt, base, j);
    return (a > b) - (a < b);
}

/* Lexicographic order of slices a and b (row-major over their elements). */
static int slice_cmp(const unique_view *v, int64_t a, int64_t b) {
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t i = 0; i < v->inner; i++) {
            int r = elem_cmp(v->dt, v->data, (o * v->n + a) * v->inner + i,
                             (o * v->n + b) * v->inner + i);
            if (r) return r;
        }
    return 0;
}

/* Stable bottom-up merge sort of slice numbers perm[0..n) (tmp: n entries). */
static void sort_slices(const unique_view *v, int64_t *perm, int64_t *tmp) {
    int64_t n = v->n;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = slice_cmp(v, perm[j], perm[i]) < 0 ? perm[j++]
                                                                                    : perm[i++];
            while (i < mid) tmp[k++] = perm[i++];
            while (j < hi) tmp[k++] = perm[j++];
        }
        memcpy(perm, tmp, sizeof(int64_t) * (size_t)n);
    }
}

/* Sorts the slices and groups equal ones. Returns the number of groups;
 * when group_of/first/counts are given, fills them: slice s belongs to group
 * group_of[s] (groups in ascending order), whose first occurrence is slice
 * first[g] and which has counts[g] members. */
static int64_t unique_groups(const unique_view *v, int64_t *perm, int64_t *tmp, int64_t *group_of,
                             int64_t *first, int64_t *counts) {
    for (int64_t s = 0; s < v->n; s++) perm[s] = s;
    sort_slices(v, perm, tmp);
    int64_t groups = 0;
    for (int64_t r = 0; r < v->n; r++) {
        if (r == 0 || slice_cmp(v, perm[r - 1], perm[r]) != 0) {
            if (first) {
                first[groups] = perm[r]; /* stable sort: smallest slice number */
                counts[groups] = 0;
            }
            groups++;
        }
        if (group_of) {
            group_of[perm[r]] = groups - 1;
            counts[groups - 1]++;
        }
    }
    return groups;
}

// X: (d...), Y: (u) flattened or d with d[axis] = u, indices: (u), inverse_indices: (n),
// counts: (u), all int64; u unique values/slices among the n of X
kiln_status kiln__infer_Unique(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    unique_view v;
    KILN__TRY(unique_view_make(c, &v));
    KILN__NEED(c, 0);
    int64_t groups = 0;
    if (v.n > 0) {
        /* infer is no kernel: it may take temporary memory for the count */
        int64_t *work = malloc(sizeof(int64_t) * 2 * (size_t)v.n);
        if (!work) return kiln__err(KILN_E_NOMEM, "out of memory sorting %lld slices",
                                    (long long)v.n);
        groups = unique_groups(&v, work, work + v.n, NULL, NULL, NULL);
        free(work);
    }
    c->scratch_bytes = sizeof(int64_t) * 5 * (size_t)v.n;
    if (v.axis < 0) {
        KILN__TRY(kiln__out_shape(c, 0, x->dtype, 1, &groups));
    } else {
        int64_t dims[KILN_MAX_DIMS];
        memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->ndim);
        dims[v.axis] = groups;
        KILN__TRY(kiln__out_shape(c, 0, x->dtype, x->ndim, dims));
    }
    KILN__TRY(kiln__out_shape(c, 1, KILN_DTYPE_I64, 1, &groups));
    KILN__TRY(kiln__out_shape(c, 2, KILN_DTYPE_I64, 1, &v.n));
    return kiln__out_shape(c, 3, KILN_DTYPE_I64, 1, &groups);
}

/* Sorted: groups in ascending order; unsorted: in order of first occurrence. */
kiln_status kiln__ref_Unique(kiln__kctx *c) {
    unique_view v;
    KILN__TRY(unique_view_make(c, &v));
    if (v.n == 0) return KILN_OK;
    if (!c->scratch || c->scratch_bytes < sizeof(int64_t) * 5 * (size_t)v.n)
        return kiln__err(KILN_E_INTERNAL, "Unique got no scratch memory");
    int64_t *perm = c->scratch, *tmp = perm + v.n, *group_of = tmp + v.n;
    int64_t *first = group_of + v.n, *counts = first + v.n;
    int64_t groups = unique_groups(&v, perm, tmp, group_of, first, counts);
    int64_t *pos = perm; /* perm is free again: pos[g] = output position of group g */
    if (kiln__attr_i(c->node, "sorted", 1)) {
        for (int64_t g = 0; g < groups; g++) pos[g] = g;
    } else {
        int64_t next = 0;
        for (int64_t s = 0; s < v.n; s++)
            if (first[group_of[s]] == s) pos[group_of[s]] = next++;
    }
    kiln_tensor *y = c->out[0], *indices = kiln__out(c, 1), *inverse = kiln__out(c, 2);
    kiln_tensor *cnt = kiln__out(c, 3);
    if (y->dims[v.axis < 0 ? 0 : v.axis] != groups)
        return kiln__err(KILN_E_INTERNAL, "Unique count changed since infer");
    for (int64_t g = 0; g < groups; g++) {
        for (int64_t o = 0; o < v.outer; o++)
            KILN__TRY(kiln__elem_copy(v.dt, y->data, (o * groups + pos[g]) * v.inner, v.data,
                                           (o * v.n + first[g]) * v.inner, v.inner));
        if (indices) ((int64_t *)indices->data)[pos[g]] = first[g];
        if (cnt) ((int64_t *)cnt->data)[pos[g]] = counts[g];
    }
    if (inverse)
        for (int64_t s = 0; s < v.n; s++) ((int64_t *)inverse->data)[s] = pos[group_of[s]];
    return KILN_OK;
}
