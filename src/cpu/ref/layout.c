/* src/cpu/ref/layout.c: ops that rearrange elements without computing on them:
 * Transpose, Concat, Split, Slice, Expand, Tile, Pad, CenterCropPad,
 * DepthToSpace, SpaceToDepth, ReverseSequence.
 *
 * Two drivers do most of the work:
 *   strided_copy: out[k] = in[base + sum_d idx_d * stride_d]  (Transpose,
 *                 Slice, Expand, DepthToSpace, SpaceToDepth)
 *   pad_copy:     per-axis source coordinate by a pad mode  (Pad, Tile,
 *                 CenterCropPad)
 * Elements move as raw bytes of their dtype's size; strings are duplicated.
 */
#include <stdio.h>
#include <string.h>

#include "ops/op.h"

/* ---- drivers ---------------------------------------------------------------- */

/* out[k + j] = in[src + j * step] for j < row: fixed-size moves by element
 * size (memcpy of a constant size compiles to one load/store, without
 * aliasing concerns), strings through kiln__elem_copy. */
static kiln_status strided_row(kiln_dtype dt, void *out, int64_t k, const void *in, int64_t src,
                               int64_t step, int64_t row) {
#define STRIDED_ROW(ES)                                                      \
    do {                                                                     \
        char *o = (char *)out + k * (ES);                                    \
        const char *i = (const char *)in + src * (ES);                       \
        for (int64_t j = 0; j < row; j++)                                    \
            memcpy(o + j * (ES), i + j * step * (ES), (ES));                 \
    } while (0)
    switch (dt == KILN_DTYPE_STRING ? 0 : kiln_dtype_size(dt)) {
    case 1: STRIDED_ROW(1); return KILN_OK;
    case 2: STRIDED_ROW(2); return KILN_OK;
    case 4: STRIDED_ROW(4); return KILN_OK;
    case 8: STRIDED_ROW(8); return KILN_OK;
    default:
        for (int64_t j = 0; j < row; j++)
            KILN__TRY(kiln__elem_copy(dt, out, k + j, in, src + j * step, 1));
        return KILN_OK;
    }
#undef STRIDED_ROW
}

/* out (contiguous, shape odims) gets out[idx] = in[base + sum_d idx_d * strides[d]].
 * Rows whose innermost stride is 1 are copied in one move. */
static kiln_status strided_copy(kiln_dtype dt, void *out, int ndim, const int64_t *odims,
                                const void *in, int64_t base, const int64_t *strides) {
    int64_t n = kiln__numel(ndim, odims);
    if (n <= 0) return KILN_OK;
    if (ndim == 0) return kiln__elem_copy(dt, out, 0, in, base, 1);
    int64_t row = odims[ndim - 1], step = strides[ndim - 1];
    int64_t st[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    memcpy(st[0], strides, sizeof(int64_t) * (size_t)(ndim - 1));
    kiln__iter it;
    kiln__iter_init(&it, ndim - 1, odims, 1, st);
    for (int64_t k = 0; k < n; k += row, kiln__iter_next(&it)) {
        int64_t src = base + it.off[0];
        if (step == 1) {
            KILN__TRY(kiln__elem_copy(dt, out, k, in, src, row));
            continue;
        }
        KILN__TRY(strided_row(dt, out, k, in, src, step, row));
    }
    return KILN_OK;
}

/* Copies `rows` runs of `len` elements: run r goes from src[soff + r*sstride]
 * to dst[doff + r*dstride] (Concat and Split). */
static kiln_status block_copy(kiln_dtype dt, void *dst, int64_t doff, int64_t dstride,
                              const void *src, int64_t soff, int64_t sstride, int64_t rows,
                              int64_t len) {
    for (int64_t r = 0; r < rows; r++)
        KILN__TRY(kiln__elem_copy(dt, dst, doff + r * dstride, src, soff + r * sstride, len));
    return KILN_OK;
}

typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

/* Source coordinate along one axis for output coordinate o, when `begin`
 * elements were added before the axis of size dim; -1 means "use the pad
 * value". dim > 0 unless mode is PAD_CONSTANT (infer checks it). */
static int64_t pad_source(int64_t o, int64_t dim, int64_t begin, pad_mode mode) {
    int64_t x = o - begin;
    if (x >= 0 && x < dim) return x;
    switch (mode) {
    case PAD_CONSTANT: return -1;
    case PAD_EDGE: return x < 0 ? 0 : dim - 1;
    case PAD_WRAP: return (x % dim + dim) % dim;
    case PAD_REFLECT: {
        if (dim == 1) return 0;
        int64_t period = 2 * (dim - 1), m = (x % period + period) % period;
        return m < dim ? m : period - m;
    }
    }
    return -1;
}

/* y[o] = x[pad_source(o_d) for each axis d], or *value where any axis is
 * outside (constant mode). x, y: same rank, contiguous; value is one element
 * of y's dtype. */
static kiln_status pad_copy(const kiln_tensor *x, kiln_tensor *y, const int64_t *begin,
                            pad_mode mode, const void *value) {
    kiln_dtype dt = y->dtype;
    int nd = y->ndim;
    int64_t n = kiln__n(y);
    if (n == 0) return KILN_OK;
    if (nd == 0) return kiln__elem_copy(dt, y->data, 0, x->data, 0, 1);
    int64_t xstride[KILN_MAX_DIMS], idx[KILN_MAX_DIMS] = {0};
    kiln__contiguous_strides(x->ndim, x->dims, xstride);
    int64_t row = y->dims[nd - 1];
    for (int64_t k = 0; k < n; k += row) {
        int64_t src = 0;
        int inside = 1;
        for (int d = 0; d < nd - 1 && inside; d++) {
            int64_t s = pad_source(idx[d], x->dims[d], begin[d], mode);
            if (s < 0) inside = 0;
            src += s * xstride[d];
        }
        if (!inside) {
            KILN__TRY(kiln__elem_fill(dt, y->data, k, row, value));
        } else {
            for (int64_t j = 0; j < row; j++) {
                int64_t s = pad_source(j, x->dims[nd - 1], begin[nd - 1], mode);
                if (s < 0)
                    KILN__TRY(kiln__elem_fill(dt, y->data, k + j, 1, value));
                else
                    KILN__TRY(kiln__elem_copy(dt, y->data, k + j, x->data, src + s, 1));
            }
        }
        for (int d = nd - 2; d >= 0; d--) { /* next row */
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
    }
    return KILN_OK;
}

/* ---- Transpose ------------------------------------------------------------ */

/* Reads 'perm' (default: reversed axes) and checks it is a permutation. */
static kiln_status transpose_perm(const kiln__kctx *c, int rank, int *perm) {
    const int64_t *p;
    int n = kiln__attr_ints(c->node, "perm", &p);
    if (n < 0) {
        for (int i = 0; i < rank; i++) perm[i] = rank - 1 - i;
        return KILN_OK;
    }
    if (n != rank)
        return kiln__err(KILN_E_INVAL, "attribute 'perm' has %d entries, 'data' has rank %d", n,
                         rank);
    int seen[KILN_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int a;
        KILN__TRY(kiln__axis(p[i], rank, "attribute 'perm' entry", &a));
        if (seen[a])
            return kiln__err(KILN_E_INVAL, "attribute 'perm' repeats axis %lld", (long long)p[i]);
        seen[a] = 1;
        perm[i] = a;
    }
    return KILN_OK;
}

// data: (d0..d{r-1}), transposed: (d{perm[0]}..d{perm[r-1]})
kiln_status kiln__infer_Transpose(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int perm[KILN_MAX_DIMS];
    KILN__TRY(transpose_perm(c, x->ndim, perm));
    int64_t dims[KILN_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) dims[i] = x->dims[perm[i]];
    return kiln__out_shape(c, 0, x->dtype, x->ndim, dims);
}

kiln_status kiln__ref_Transpose(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int perm[KILN_MAX_DIMS];
    KILN__TRY(transpose_perm(c, x->ndim, perm));
    int64_t xs[KILN_MAX_DIMS], strides[KILN_MAX_DIMS];
    kiln__contiguous_strides(x->ndim, x->dims, xs);
    for (int i = 0; i < x->ndim; i++) strides[i] = xs[perm[i]];
    return strided_copy(x->dtype, c->out[0]->data, c->out[0]->ndim, c->out[0]->dims, x->data, 0,
                        strides);
}

/* ---- Concat --------------------------------------------------------------- */

// inputs: n tensors (d0..dk_i..d{r-1}) equal except on axis, concat_result: dk = sum dk_i
kiln_status kiln__infer_Concat(kiln__kctx *c) {
    const kiln_tensor *x0 = c->in[0];
    if (!kiln__attr_find(c->node, "axis"))
        return kiln__err(KILN_E_INVAL, "attribute 'axis' is required");
    if (x0->ndim == 0)
        return kiln__err(KILN_E_SHAPE, "input 0 is a scalar; Concat needs rank >= 1");
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 0), x0->ndim, "attribute 'axis'", &axis));
    int64_t dims[KILN_MAX_DIMS];
    memcpy(dims, x0->dims, sizeof(int64_t) * (size_t)x0->ndim);
    dims[axis] = 0;
    for (int i = 0; i < c->n_in; i++) {
        const kiln_tensor *x = c->in[i];
        if (!x) return kiln__err(KILN_E_INVAL, "input %d is missing", i);
        if (x->dtype != x0->dtype)
            return kiln__err(KILN_E_TYPE, "input %d is %s, input 0 is %s", i,
                             kiln_dtype_name(x->dtype), kiln_dtype_name(x0->dtype));
        int same = x->ndim == x0->ndim;
        for (int d = 0; same && d < x->ndim; d++) same = d == axis || x->dims[d] == x0->dims[d];
        if (!same) {
            char a[128], b[128];
            return kiln__err(KILN_E_SHAPE,
                             "input %d has shape %s, incompatible with input 0 %s on axis %d", i,
                             kiln__shape_str(x->ndim, x->dims, a, sizeof a),
                             kiln__shape_str(x0->ndim, x0->dims, b, sizeof b), axis);
        }
        dims[axis] += x->dims[axis];
    }
    return kiln__out_shape(c, 0, x0->dtype, x0->ndim, dims);
}

kiln_status kiln__ref_Concat(kiln__kctx *c) {
    kiln_tensor *y = c->out[0];
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 0), y->ndim, "attribute 'axis'", &axis));
    int64_t outer = kiln__dims_prod(y->dims, 0, axis),
            inner = kiln__dims_prod(y->dims, axis + 1, y->ndim);
    int64_t ystride = y->dims[axis] * inner, off = 0;
    for (int i = 0; i < c->n_in; i++) {
        int64_t len = c->in[i]->dims[axis] * inner;
        KILN__TRY(block_copy(y->dtype, y->data, off, ystride, c->in[i]->data, 0, len, outer, len));
        off += len;
    }
    return KILN_OK;
}

/* ---- Split ---------------------------------------------------------------- */

#define SPLIT_MAX_OUTPUTS 1024

/* Sizes of the outputs along the axis: from 'split' (attribute before opset
 * 13, input from 13), else equal parts (num_outputs from opset 18, else the
 * number of outputs), the last one smaller when it does not divide evenly. */
static kiln_status split_sizes(const kiln__kctx *c, int64_t dim, int64_t *sizes) {
    int n;
    if (c->n_out > SPLIT_MAX_OUTPUTS)
        return kiln__err(KILN_E_LIMIT, "%d outputs, at most %d supported", c->n_out,
                         SPLIT_MAX_OUTPUTS);
    KILN__TRY(kiln__ints_arg(c, c->opset >= 13, "split", 1, sizes, SPLIT_MAX_OUTPUTS, &n));
    if (n >= 0) {
        if (n != c->n_out)
            return kiln__err(KILN_E_INVAL, "'split' has %d entries for %d outputs", n, c->n_out);
        int64_t sum = 0;
        for (int i = 0; i < n; i++) {
            if (sizes[i] < 0 || sizes[i] > dim)
                return kiln__err(KILN_E_INVAL, "'split' entry %d is %lld, expected in [0, %lld]",
                                 i, (long long)sizes[i], (long long)dim);
            sum += sizes[i];
        }
        if (sum != dim)
            return kiln__err(KILN_E_SHAPE, "'split' sums to %lld, the axis has size %lld",
                             (long long)sum, (long long)dim);
        return KILN_OK;
    }
    int64_t parts = c->n_out;
    if (c->opset >= 18 && kiln__attr_find(c->node, "num_outputs")) {
        parts = kiln__attr_i(c->node, "num_outputs", 0);
        if (parts != c->n_out)
            return kiln__err(KILN_E_INVAL, "attribute 'num_outputs' is %lld but the node has %d "
                             "outputs", (long long)parts, c->n_out);
    }
    int64_t chunk = (dim + parts - 1) / parts, last = dim - chunk * (parts - 1);
    if (last < 0)
        return kiln__err(KILN_E_SHAPE, "cannot split an axis of size %lld into %lld parts",
                         (long long)dim, (long long)parts);
    for (int i = 0; i < parts; i++) sizes[i] = i == parts - 1 ? last : chunk;
    return KILN_OK;
}

// input: (..d_axis..), split: (n) int64 optional, outputs i: (..sizes[i]..)
kiln_status kiln__infer_Split(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis;
    if (x->ndim == 0) return kiln__err(KILN_E_SHAPE, "input is a scalar; Split needs rank >= 1");
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 0), x->ndim, "attribute 'axis'", &axis));
    int64_t sizes[SPLIT_MAX_OUTPUTS], dims[KILN_MAX_DIMS];
    KILN__TRY(split_sizes(c, x->dims[axis], sizes));
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->ndim);
    for (int i = 0; i < c->n_out; i++) {
        dims[axis] = sizes[i];
        KILN__TRY(kiln__out_shape(c, i, x->dtype, x->ndim, dims));
    }
    return KILN_OK;
}

kiln_status kiln__ref_Split(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 0), x->ndim, "attribute 'axis'", &axis));
    int64_t sizes[SPLIT_MAX_OUTPUTS];
    KILN__TRY(split_sizes(c, x->dims[axis], sizes));
    int64_t outer = kiln__dims_prod(x->dims, 0, axis),
            inner = kiln__dims_prod(x->dims, axis + 1, x->ndim);
    int64_t xstride = x->dims[axis] * inner, off = 0;
    for (int i = 0; i < c->n_out; i++) {
        int64_t len = sizes[i] * inner;
        if (c->out[i])
            KILN__TRY(block_copy(x->dtype, c->out[i]->data, 0, len, x->data, off, xstride, outer,
                                 len));
        off += len;
    }
    return KILN_OK;
}

/* ---- Slice ---------------------------------------------------------------- */

/* Per-axis first element, step and element count of a slice. */
typedef struct slice_plan {
    int64_t start[KILN_MAX_DIMS], step[KILN_MAX_DIMS], count[KILN_MAX_DIMS];
} slice_plan;

/* Builds the plan from starts/ends/axes (attributes before opset 10) or the
 * starts/ends/axes/steps inputs, clamping as the spec says. */
static kiln_status slice_plan_make(const kiln__kctx *c, const kiln_tensor *x, slice_plan *p) {
    int64_t starts[KILN_MAX_DIMS], ends[KILN_MAX_DIMS], axes[KILN_MAX_DIMS], steps[KILN_MAX_DIMS];
    int ns, ne, na, nst = -1;
    int from_input = c->opset >= 10;
    KILN__TRY(kiln__ints_arg(c, from_input, "starts", 1, starts, KILN_MAX_DIMS, &ns));
    KILN__TRY(kiln__ints_arg(c, from_input, "ends", 2, ends, KILN_MAX_DIMS, &ne));
    KILN__TRY(kiln__ints_arg(c, from_input, "axes", 3, axes, KILN_MAX_DIMS, &na));
    if (from_input) KILN__TRY(kiln__ints_arg(c, 1, "steps", 4, steps, KILN_MAX_DIMS, &nst));
    if (ns < 0 || ne < 0) return kiln__err(KILN_E_INVAL, "'starts' and 'ends' are required");
    if (ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return kiln__err(KILN_E_INVAL,
                         "'starts' (%d), 'ends' (%d), 'axes' (%d) and 'steps' (%d) must have the "
                         "same length",
                         ns, ne, na, nst);
    if (ns > x->ndim)
        return kiln__err(KILN_E_INVAL, "%d slices given for 'data' of rank %d", ns, x->ndim);
    for (int d = 0; d < x->ndim; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->count[d] = x->dims[d];
    }
    int seen[KILN_MAX_DIMS] = {0};
    for (int i = 0; i < ns; i++) {
        int a;
        KILN__TRY(kiln__axis(na >= 0 ? axes[i] : i, x->ndim, "'axes' entry", &a));
        if (seen[a]) return kiln__err(KILN_E_INVAL, "'axes' repeats axis %d", a);
        seen[a] = 1;
        int64_t dim = x->dims[a], step = nst >= 0 ? steps[i] : 1;
        if (step == 0) return kiln__err(KILN_E_INVAL, "'steps' entry %d is 0", i);
        int64_t s = starts[i], e = ends[i];
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        int64_t count;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            int64_t st = step > dim ? dim + 1 : step; /* same count, no overflow */
            count = e > s ? (e - s + st - 1) / st : 0;
        } else {
            s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            int64_t st = step < -dim ? dim + 1 : -step;
            count = s > e ? (s - e + st - 1) / st : 0;
        }
        p->start[a] = count > 0 ? s : 0;
        p->step[a] = count > 1 ? step : 1; /* huge steps of a 0/1 count never scale */
        p->count[a] = count;
    }
    return KILN_OK;
}

// data: (d...), starts/ends/axes/steps: (k) int (attributes before opset 10), output: counts
kiln_status kiln__infer_Slice(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    slice_plan p;
    KILN__TRY(slice_plan_make(c, x, &p));
    return kiln__out_shape(c, 0, x->dtype, x->ndim, p.count);
}

kiln_status kiln__ref_Slice(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    slice_plan p;
    KILN__TRY(slice_plan_make(c, x, &p));
    int64_t xs[KILN_MAX_DIMS], strides[KILN_MAX_DIMS], base = 0;
    kiln__contiguous_strides(x->ndim, x->dims, xs);
    for (int d = 0; d < x->ndim; d++) {
        base += p.start[d] * xs[d];
        strides[d] = p.step[d] * xs[d];
    }
    return strided_copy(x->dtype, c->out[0]->data, x->ndim, p.count, x->data, base, strides);
}

/* ---- Expand --------------------------------------------------------------- */

/* Output shape: input broadcast with the 'shape' input (both ways). */
static kiln_status expand_shape(const kiln__kctx *c, int *nd, int64_t *dims) {
    const kiln_tensor *x = c->in[0];
    int64_t shape[KILN_MAX_DIMS];
    int n;
    KILN__TRY(kiln__ints_arg(c, 1, "shape", 1, shape, KILN_MAX_DIMS, &n));
    if (n < 0) return kiln__err(KILN_E_INVAL, "input 'shape' is missing");
    for (int i = 0; i < n; i++)
        if (shape[i] < 0)
            return kiln__err(KILN_E_INVAL, "input 'shape' has negative dim %lld",
                             (long long)shape[i]);
    return kiln__broadcast(x->ndim, x->dims, n, shape, nd, dims);
}

// input: (d...), shape: (k) int64, output: broadcast(d, shape)
kiln_status kiln__infer_Expand(kiln__kctx *c) {
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(expand_shape(c, &nd, dims));
    return kiln__out_shape(c, 0, c->in[0]->dtype, nd, dims);
}

kiln_status kiln__ref_Expand(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    const kiln_tensor *y = c->out[0];
    int64_t strides[KILN_MAX_DIMS];
    kiln__bcast_strides(x->ndim, x->dims, y->ndim, y->dims, strides);
    return strided_copy(x->dtype, y->data, y->ndim, y->dims, x->data, 0, strides);
}

/* ---- Tile ----------------------------------------------------------------- */

static kiln_status tile_repeats(const kiln__kctx *c, int64_t *reps) {
    const kiln_tensor *x = c->in[0];
    int n;
    KILN__TRY(kiln__ints_arg(c, 1, "repeats", 1, reps, KILN_MAX_DIMS, &n));
    if (n != x->ndim)
        return kiln__err(KILN_E_SHAPE, "input 'repeats' has %d entries, 'input' has rank %d", n,
                         x->ndim);
    for (int i = 0; i < n; i++) {
        if (reps[i] < 0)
            return kiln__err(KILN_E_INVAL, "input 'repeats' entry %d is negative (%lld)", i,
                             (long long)reps[i]);
        if (reps[i] > 0 && x->dims[i] > KILN__MAX_NUMEL / reps[i])
            return kiln__err(KILN_E_LIMIT, "input 'repeats' entry %d (%lld) makes the output "
                             "too large", i, (long long)reps[i]);
    }
    return KILN_OK;
}

// input: (d...), repeats: (r) int64, output: (d_i * repeats_i)
kiln_status kiln__infer_Tile(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t reps[KILN_MAX_DIMS], dims[KILN_MAX_DIMS];
    KILN__TRY(tile_repeats(c, reps));
    for (int i = 0; i < x->ndim; i++) dims[i] = x->dims[i] * reps[i];
    return kiln__out_shape(c, 0, x->dtype, x->ndim, dims);
}

kiln_status kiln__ref_Tile(kiln__kctx *c) {
    int64_t begin[KILN_MAX_DIMS] = {0};
    return pad_copy(c->in[0], c->out[0], begin, PAD_WRAP, NULL);
}

/* ---- Pad ------------------------------------------------------------------ */

typedef struct pad_plan {
    pad_mode mode;
    int64_t begin[KILN_MAX_DIMS], dims[KILN_MAX_DIMS]; /* dims: output shape */
} pad_plan;

/* Reads mode, pads (attribute before opset 11, input from 11) and axes
 * (input from opset 18) and computes the output shape. */
static kiln_status pad_plan_make(const kiln__kctx *c, const kiln_tensor *x, pad_plan *p) {
    const char *mode = kiln__attr_s(c->node, "mode", "constant");
    if (!strcmp(mode, "constant")) p->mode = PAD_CONSTANT;
    else if (!strcmp(mode, "reflect")) p->mode = PAD_REFLECT;
    else if (!strcmp(mode, "edge")) p->mode = PAD_EDGE;
    else if (!strcmp(mode, "wrap") && c->opset >= 19) p->mode = PAD_WRAP;
    else return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected constant, reflect, "
                          "edge%s", mode, c->opset >= 19 ? " or wrap" : "");
    int64_t pads[2 * KILN_MAX_DIMS], axes[KILN_MAX_DIMS];
    int np, na = -1;
    KILN__TRY(kiln__ints_arg(c, c->opset >= 11, "pads", 1, pads, 2 * KILN_MAX_DIMS, &np));
    if (np < 0) return kiln__err(KILN_E_INVAL, "'pads' is required");
    if (c->opset >= 18) KILN__TRY(kiln__ints_arg(c, 1, "axes", 3, axes, KILN_MAX_DIMS, &na));
    if (na < 0) {
        na = x->ndim;
        for (int i = 0; i < na; i++) axes[i] = i;
    }
    if (np != 2 * na)
        return kiln__err(KILN_E_INVAL, "'pads' has %d entries, expected %d (2 per axis)", np,
                         2 * na);
    for (int d = 0; d < x->ndim; d++) {
        p->begin[d] = 0;
        p->dims[d] = x->dims[d];
    }
    int seen[KILN_MAX_DIMS] = {0};
    for (int i = 0; i < na; i++) {
        int a;
        KILN__TRY(kiln__axis(axes[i], x->ndim, "'axes' entry", &a));
        if (seen[a]) return kiln__err(KILN_E_INVAL, "'axes' repeats axis %d", a);
        seen[a] = 1;
        int64_t b = pads[i], e = pads[na + i];
        if (b < -KILN__MAX_NUMEL || b > KILN__MAX_NUMEL || e < -KILN__MAX_NUMEL ||
            e > KILN__MAX_NUMEL)
            return kiln__err(KILN_E_LIMIT, "'pads' for axis %d is out of range", a);
        p->begin[a] = b;
        p->dims[a] = x->dims[a] + b + e;
        if (p->dims[a] < 0)
            return kiln__err(KILN_E_SHAPE, "'pads' (%lld, %lld) remove more than the %lld "
                             "elements of axis %d", (long long)b, (long long)e,
                             (long long)x->dims[a], a);
        if (p->mode != PAD_CONSTANT && x->dims[a] == 0 && p->dims[a] > 0)
            return kiln__err(KILN_E_SHAPE, "cannot pad empty axis %d in mode '%s'", a, mode);
    }
    return KILN_OK;
}

// data: (d...), pads: (2k) int64, constant_value: () optional, axes: (k) optional, output: padded
kiln_status kiln__infer_Pad(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    const kiln_tensor *v = kiln__in(c, 2);
    if (c->opset >= 11 && v && v->dtype != x->dtype)
        return kiln__err(KILN_E_TYPE, "input 'constant_value' is %s, 'data' is %s",
                         kiln_dtype_name(v->dtype), kiln_dtype_name(x->dtype));
    pad_plan p;
    KILN__TRY(pad_plan_make(c, x, &p));
    return kiln__out_shape(c, 0, x->dtype, x->ndim, p.dims);
}

kiln_status kiln__ref_Pad(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    pad_plan p;
    KILN__TRY(pad_plan_make(c, x, &p));
    uint64_t buf[2] = {0, 0};
    const void *value = kiln__elem_zero(x->dtype);
    const kiln_tensor *v = kiln__in(c, 2);
    if (c->opset < 11) {
        if (x->dtype == KILN_DTYPE_STRING)
            return kiln__err(KILN_E_TYPE, "Pad before opset 11 does not take strings");
        kiln__st_f(x->dtype, buf, 0, kiln__attr_f(c->node, "value", 0.0f));
        value = buf;
    } else if (v && kiln__n(v) > 0) {
        value = v->data; /* element 0 */
    }
    return pad_copy(x, c->out[0], p.begin, p.mode, value);
}

/* ---- CenterCropPad ---------------------------------------------------------- */

/* Output shape and, per axis, the (possibly negative) number of elements
 * added before: centered, the odd element going to the end (pad) or the
 * start being rounded down (crop). */
static kiln_status center_crop_pad_plan(const kiln__kctx *c, int64_t *begin, int64_t *dims) {
    const kiln_tensor *x = c->in[0];
    int64_t shape[KILN_MAX_DIMS], axes[KILN_MAX_DIMS];
    int ns, na;
    KILN__TRY(kiln__ints_arg(c, 1, "shape", 1, shape, KILN_MAX_DIMS, &ns));
    KILN__TRY(kiln__ints_arg(c, 0, "axes", -1, axes, KILN_MAX_DIMS, &na));
    if (ns < 0) return kiln__err(KILN_E_INVAL, "input 'shape' is missing");
    if (na < 0) {
        na = x->ndim;
        for (int i = 0; i < na; i++) axes[i] = i;
    }
    if (ns != na)
        return kiln__err(KILN_E_INVAL, "input 'shape' has %d entries for %d axes", ns, na);
    for (int d = 0; d < x->ndim; d++) {
        begin[d] = 0;
        dims[d] = x->dims[d];
    }
    for (int i = 0; i < na; i++) {
        int a;
        KILN__TRY(kiln__axis(axes[i], x->ndim, "attribute 'axes' entry", &a));
        if (shape[i] < 0)
            return kiln__err(KILN_E_INVAL, "input 'shape' entry %d is negative (%lld)", i,
                             (long long)shape[i]);
        int64_t dim = x->dims[a];
        begin[a] = shape[i] >= dim ? (shape[i] - dim) / 2 : -((dim - shape[i]) / 2);
        dims[a] = shape[i];
    }
    return KILN_OK;
}

// input_data: (d...), shape: (k) int64, output: d with d[axes[i]] = shape[i]
kiln_status kiln__infer_CenterCropPad(kiln__kctx *c) {
    int64_t begin[KILN_MAX_DIMS], dims[KILN_MAX_DIMS];
    KILN__TRY(center_crop_pad_plan(c, begin, dims));
    return kiln__out_shape(c, 0, c->in[0]->dtype, c->in[0]->ndim, dims);
}

kiln_status kiln__ref_CenterCropPad(kiln__kctx *c) {
    int64_t begin[KILN_MAX_DIMS], dims[KILN_MAX_DIMS];
    KILN__TRY(center_crop_pad_plan(c, begin, dims));
    const void *zero = kiln__elem_zero(c->in[0]->dtype);
    return pad_copy(c->in[0], c->out[0], begin, PAD_CONSTANT, zero);
}

/* ---- DepthToSpace / SpaceToDepth -------------------------------------------- */

/* Checks a rank-4 input and a positive 'blocksize'. */
static kiln_status block_args(const kiln__kctx *c, int64_t *b) {
    const kiln_tensor *x = c->in[0];
    if (x->ndim != 4)
        return kiln__err(KILN_E_SHAPE, "input must be 4-D (N,C,H,W), got rank %d", x->ndim);
    *b = kiln__attr_i(c->node, "blocksize", 0);
    if (*b <= 0 || *b > (1 << 20))
        return kiln__err(KILN_E_INVAL, "attribute 'blocksize' is %lld, expected > 0",
                         (long long)*b);
    return KILN_OK;
}

/* 1 for DepthToSpace mode CRD, 0 for DCR (the default). */
static kiln_status depth_to_space_crd(const kiln__kctx *c, int *crd) {
    const char *mode = kiln__attr_s(c->node, "mode", "DCR");
    if (strcmp(mode, "DCR") && strcmp(mode, "CRD"))
        return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected DCR or CRD", mode);
    *crd = !strcmp(mode, "CRD");
    return KILN_OK;
}

// input: (N, C, H, W), output: (N, C/(b*b), H*b, W*b)
kiln_status kiln__infer_DepthToSpace(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t b;
    int crd;
    KILN__TRY(block_args(c, &b));
    KILN__TRY(depth_to_space_crd(c, &crd));
    if (x->dims[1] % (b * b))
        return kiln__err(KILN_E_SHAPE, "channels %lld are not divisible by blocksize^2 = %lld",
                         (long long)x->dims[1], (long long)(b * b));
    int64_t dims[4] = {x->dims[0], x->dims[1] / (b * b), x->dims[2] * b, x->dims[3] * b};
    return kiln__out_shape(c, 0, x->dtype, 4, dims);
}

/* The output, seen as (N, C', H, b, W, b), read from the input seen as
 * (N, b, b, C', H, W) (DCR) or (N, C', b, b, H, W) (CRD). */
kiln_status kiln__ref_DepthToSpace(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t b;
    int crd;
    KILN__TRY(block_args(c, &b));
    KILN__TRY(depth_to_space_crd(c, &crd));
    int64_t N = x->dims[0], C = x->dims[1] / (b * b), H = x->dims[2], W = x->dims[3];
    int64_t odims[6] = {N, C, H, b, W, b};
    int64_t hw = H * W, strides[6];
    strides[0] = x->dims[1] * hw;
    strides[2] = W;
    strides[4] = 1;
    if (crd) {
        strides[1] = b * b * hw; /* c' */
        strides[3] = b * hw;     /* block row */
        strides[5] = hw;         /* block col */
    } else {
        strides[1] = hw;
        strides[3] = b * C * hw;
        strides[5] = C * hw;
    }
    return strided_copy(x->dtype, c->out[0]->data, 6, odims, x->data, 0, strides);
}

// input: (N, C, H, W), output: (N, C*b*b, H/b, W/b)
kiln_status kiln__infer_SpaceToDepth(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t b;
    KILN__TRY(block_args(c, &b));
    if (x->dims[2] % b || x->dims[3] % b)
        return kiln__err(KILN_E_SHAPE, "H %lld and W %lld must be divisible by blocksize %lld",
                         (long long)x->dims[2], (long long)x->dims[3], (long long)b);
    int64_t dims[4] = {x->dims[0], 0, x->dims[2] / b, x->dims[3] / b};
    if (!kiln__dims_mul(x->dims[1], b * b, &dims[1])) /* C may be huge when H or W is 0 */
        return kiln__err(KILN_E_LIMIT, "channels %lld * blocksize^2 %lld is too large",
                         (long long)x->dims[1], (long long)(b * b));
    return kiln__out_shape(c, 0, x->dtype, 4, dims);
}

/* The output, seen as (N, b, b, C, H/b, W/b), read from the input seen as
 * (N, C, H/b, b, W/b, b). */
kiln_status kiln__ref_SpaceToDepth(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t b;
    KILN__TRY(block_args(c, &b));
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t odims[6] = {N, b, b, C, H / b, W / b};
    int64_t strides[6] = {C * H * W, W, 1, H * W, b * W, b};
    return strided_copy(x->dtype, c->out[0]->data, 6, odims, x->data, 0, strides);
}

/* ---- ReverseSequence ---------------------------------------------------------- */

/* Validates batch_axis/time_axis (0 and 1, either order). */
static kiln_status reverse_axes(const kiln__kctx *c, int *batch_axis, int *time_axis) {
    int64_t b = kiln__attr_i(c->node, "batch_axis", 1), t = kiln__attr_i(c->node, "time_axis", 0);
    if (!((b == 0 && t == 1) || (b == 1 && t == 0)))
        return kiln__err(KILN_E_INVAL, "attributes 'batch_axis' %lld and 'time_axis' %lld must "
                         "be 0 and 1 in some order", (long long)b, (long long)t);
    *batch_axis = (int)b;
    *time_axis = (int)t;
    return KILN_OK;
}

// input: (T, B, ...) or (B, T, ...), sequence_lens: (B) int64, Y: same as input
kiln_status kiln__infer_ReverseSequence(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *lens = c->in[1];
    int ba, ta;
    KILN__TRY(reverse_axes(c, &ba, &ta));
    if (x->ndim < 2) return kiln__err(KILN_E_SHAPE, "input must have rank >= 2, got %d", x->ndim);
    KILN__TRY(kiln__check_dtype(lens, "input 'sequence_lens'", KILN_DTYPE_I64, 0));
    if (lens->ndim != 1 || lens->dims[0] != x->dims[ba])
        return kiln__err(KILN_E_SHAPE, "input 'sequence_lens' must have shape (%lld)",
                         (long long)x->dims[ba]);
    return kiln__out_like(c, 0, x);
}

kiln_status kiln__ref_ReverseSequence(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    const int64_t *lens = c->in[1]->data;
    int ba, ta;
    KILN__TRY(reverse_axes(c, &ba, &ta));
    int64_t T = x->dims[ta], B = x->dims[ba], inner = kiln__dims_prod(x->dims, 2, x->ndim);
    int64_t tstride = (ta == 0 ? B : 1) * inner, bstride = (ba == 0 ? T : 1) * inner;
    for (int64_t b = 0; b < B; b++) {
        if (lens[b] < 0 || lens[b] > T)
            return kiln__err(KILN_E_RANGE, "input 'sequence_lens' has value %lld at batch %lld, "
                             "expected in [0, %lld]", (long long)lens[b], (long long)b,
                             (long long)T);
        for (int64_t t = 0; t < T; t++) {
            int64_t src = t < lens[b] ? lens[b] - 1 - t : t;
            KILN__TRY(kiln__elem_copy(x->dtype, c->out[0]->data, b * bstride + t * tstride,
                                           x->data, b * bstride + src * tstride, inner));
        }
    }
    return KILN_OK;
}
