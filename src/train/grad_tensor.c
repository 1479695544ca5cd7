/* src/train/grad_tensor.c: gradient rules of shape, layout and indexing ops
 * (reshapes, Transpose, Expand, Cast, Where, Concat, Gather) and of the
 * reductions (grad.h). */
#include <stdlib.h>

#include "train/grad.h"

#define NEED(i) (gc->need[i])
#define IN(i) kiln__gb_in(gc, i)
#define OUT(k) kiln__gb_out(gc, k)

/* Ops that only change the shape: dX = dY reshaped to X's shape. */
static kiln_status reshape_back(kiln__grad_ctx *gc) {
    if (NEED(0)) gc->dx[0] = kiln__gb_reshape_like(gc, gc->dy[0], IN(0));
    return gc->status;
}

kiln_status kiln__grad_Reshape(kiln__grad_ctx *gc) { return reshape_back(gc); }
kiln_status kiln__grad_Flatten(kiln__grad_ctx *gc) { return reshape_back(gc); }
kiln_status kiln__grad_Squeeze(kiln__grad_ctx *gc) { return reshape_back(gc); }
kiln_status kiln__grad_Unsqueeze(kiln__grad_ctx *gc) { return reshape_back(gc); }

// Y = transpose(X, perm): dX = transpose(dY, inverse of perm); without perm
// (dims reversed) the transpose is its own inverse
kiln_status kiln__grad_Transpose(kiln__grad_ctx *gc) {
    const int64_t *perm;
    int n = kiln__attr_ints(kiln__gb_fwd(gc), "perm", &perm), t;
    int64_t inv[KILN_MAX_DIMS];
    if (n > KILN_MAX_DIMS) return kiln__gb_fail(gc, KILN_E_INVAL, "attribute 'perm' too long");
    for (int i = 0; i < n; i++) {
        if (perm[i] < 0 || perm[i] >= n)
            return kiln__gb_fail(gc, KILN_E_INVAL, "attribute 'perm' is not a permutation");
        inv[perm[i]] = i;
    }
    gc->dx[0] = kiln__gb_node(gc, "Transpose", "", 1, &gc->dy[0], "grad_transpose", &t);
    if (n >= 0) kiln__gb_attr_ints(gc, t, "perm", n, inv);
    return gc->status;
}

/* ---- reductions ---------------------------------------------------------------- */

/* Unsqueeze(v, axes) in the form of the graph's ai.onnx opset (axes an input
 * from opset 13, an attribute before). */
static int unsqueeze(kiln__grad_ctx *gc, int v, int n, const int64_t *axes) {
    int node;
    if (kiln__graph_opset(gc->p->g, "") >= 13) {
        int in[2] = {v, kiln__gb_ints(gc, n, axes)};
        return in[1] < 0 ? -1 : kiln__gb_node(gc, "Unsqueeze", "", 2, in, "grad_unsqueeze", NULL);
    }
    int out = kiln__gb_node(gc, "Unsqueeze", "", 1, &v, "grad_unsqueeze", &node);
    kiln__gb_attr_ints(gc, node, "axes", n, axes);
    return out;
}

/* dY broadcast back over the reduced axes of X = input 0: Expand(dY with the
 * reduced axes restored when keepdims = 0, Shape(X)). axes_input_opset: the
 * opset from which the op takes its axes as input 1 rather than an attribute. */
static int reduce_back(kiln__grad_ctx *gc, int axes_input_opset) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int64_t axes[KILN_MAX_DIMS];
    int from_attr = nd->opset < axes_input_opset;
    int n = kiln__px_ints(gc->p, gc->node, from_attr, "axes", 1, axes, KILN_MAX_DIMS);
    if (n < 0 && !from_attr && IN(1) >= 0) {
        kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "axes computed at run time");
        return -1;
    }
    int keepdims = kiln__attr_i(nd, "keepdims", 1) != 0;
    if (n <= 0 && kiln__attr_i(nd, "noop_with_empty_axes", 0)) return gc->dy[0]; /* identity */
    int dy = gc->dy[0];
    /* keepdims = 0 drops the reduced axes: put them back (with every axis reduced,
     * n <= 0, dY is a scalar and broadcasts as it is) */
    if (!keepdims && n > 0) {
        int rank = kiln__gb_rank(gc, IN(0));
        for (int i = 0; i < n; i++) {
            if (axes[i] < 0 && rank < 0) {
                kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "negative axes on an input of unknown rank");
                return -1;
            }
            if (axes[i] < 0) axes[i] += rank;
        }
        dy = unsqueeze(gc, dy, n, axes);
    }
    return kiln__gb_op2(gc, "Expand", dy, kiln__gb_shape(gc, IN(0)));
}

// Y = sum of X over axes: dX = dY broadcast over them
kiln_status kiln__grad_ReduceSum(kiln__grad_ctx *gc) {
    gc->dx[0] = reduce_back(gc, 13);
    return gc->status;
}

// Y = mean of X over axes: dX = dY broadcast over them * size(Y) / size(X)
kiln_status kiln__grad_ReduceMean(kiln__grad_ctx *gc) {
    int back = reduce_back(gc, 18), n_y, n_x, to = (int)kiln__px_dtype(gc->p, OUT(0));
    int y_size = kiln__gb_node(gc, "Cast", "", 1, (int[]){kiln__gb_op1(gc, "Size", OUT(0))},
                               "grad_count", &n_y);
    int x_size = kiln__gb_node(gc, "Cast", "", 1, (int[]){kiln__gb_op1(gc, "Size", IN(0))},
                               "grad_count", &n_x);
    kiln__gb_attr_int(gc, n_y, "to", to);
    kiln__gb_attr_int(gc, n_x, "to", to);
    gc->dx[0] = kiln__gb_op2(gc, "Mul", back, kiln__gb_op2(gc, "Div", y_size, x_size));
    return gc->status;
}

// Y = X broadcast to a shape: dX = dY summed back to X's shape
kiln_status kiln__grad_Expand(kiln__grad_ctx *gc) {
    gc->dx[0] = kiln__gb_sum_to(gc, gc->dy[0], IN(0));
    return gc->status;
}

// Y = cast(X): dX = cast(dY) back to X's float dtype
kiln_status kiln__grad_Cast(kiln__grad_ctx *gc) {
    int node;
    kiln_dtype dt = kiln__px_dtype(gc->p, IN(0));
    if (dt == KILN_DTYPE_UNDEFINED)
        return kiln__gb_fail(gc, KILN_E_TYPE, "the dtype of its input is not known");
    gc->dx[0] = kiln__gb_node(gc, "Cast", "", 1, &gc->dy[0], "grad_cast", &node);
    kiln__gb_attr_int(gc, node, "to", dt);
    return gc->status;
}

// Y = where(C, A, B): dA = dY where C, dB = dY where not C (each summed to its shape)
kiln_status kiln__grad_Where(kiln__grad_ctx *gc) {
    int cond = IN(0), dy = gc->dy[0], zero = kiln__gb_scalar(gc, OUT(0), 0);
    if (NEED(1)) {
        int in[3] = {cond, dy, zero};
        gc->dx[1] = kiln__gb_sum_to(gc, kiln__gb_node(gc, "Where", "", 3, in, "grad_where", NULL),
                                    IN(1));
    }
    if (NEED(2)) {
        int in[3] = {cond, zero, dy};
        gc->dx[2] = kiln__gb_sum_to(gc, kiln__gb_node(gc, "Where", "", 3, in, "grad_where", NULL),
                                    IN(2));
    }
    return gc->status;
}

// Y = concat(X0, X1, ..., axis): dX_i = the slice of dY that X_i filled, by one Split
// (sizes along the axis must be known when autograd runs)
kiln_status kiln__grad_Concat(kiln__grad_ctx *gc) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int n = nd->n_in - nd->n_implicit, rank = kiln__gb_rank(gc, OUT(0)), node;
    int64_t axis = kiln__attr_i(nd, "axis", 0);
    if (rank < 0) return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "the rank of its output is not known");
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return kiln__gb_fail(gc, KILN_E_INVAL, "attribute 'axis' out of range");
    int64_t *sizes = malloc((size_t)n * sizeof *sizes);
    int *outs = malloc((size_t)n * sizeof *outs);
    if (!sizes || !outs) {
        free(sizes), free(outs);
        return kiln__gb_fail(gc, KILN_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n && gc->status == KILN_OK; i++) {
        int x = IN(i);
        sizes[i] = x >= 0 && kiln__gb_rank(gc, x) == rank ? gc->p->g->values[x].dims[axis].v : -1;
        if (sizes[i] < 0)
            kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "the size of input %d along axis %lld is not known",
                          i, (long long)axis);
    }
    int in[2] = {gc->dy[0], -1};
    int new_split = kiln__graph_opset(gc->p->g, "") >= 13;
    if (new_split) in[1] = kiln__gb_ints(gc, n, sizes);
    node = kiln__gb_node_n(gc, "Split", "", new_split ? 2 : 1, in, n, NULL, "grad_concat", outs);
    kiln__gb_attr_int(gc, node, "axis", axis);
    if (!new_split) kiln__gb_attr_ints(gc, node, "split", n, sizes);
    for (int i = 0; i < n; i++) gc->dx[i] = outs[i];
    free(sizes);
    free(outs);
    return gc->status;
}

// Y = gather(X, indices, axis): dX = kiln.GatherGrad(dY, indices, Shape(X))
kiln_status kiln__grad_Gather(kiln__grad_ctx *gc) {
    int node, in[3] = {gc->dy[0], IN(1), kiln__gb_shape(gc, IN(0))};
    gc->dx[0] = kiln__gb_node(gc, "GatherGrad", "kiln", 3, in, "grad_gather", &node);
    kiln__gb_copy_attrs(gc, node);
    return gc->status;
}
