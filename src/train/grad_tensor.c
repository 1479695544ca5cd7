/* src/train/grad_tensor.c: gradient rules of shape, layout and indexing ops
 * (reshapes, Transpose, Expand, Cast, Where, Concat, Gather, Slice, Split,
 * Pad) and of the reductions (grad.h). */
#include <stdlib.h>
#include <string.h>

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

/* Integer list `name` of the forward node (attribute when attr, else constant
 * input in) into v: its length, -1 when absent, -2 when computed at run time. */
static int ints_arg(kiln__grad_ctx *gc, int attr, const char *name, int in, int64_t *v, int max) {
    int n = kiln__px_ints(gc->p, gc->node, attr, name, in, v, max);
    return n >= 0 || attr || IN(in) < 0 ? n : -2;
}

/* What a Reduce* node reduces, read as src/cpu/ref/reduce.c reads it: axes an
 * input from opset 13 for ReduceSum and 18 for the others, an attribute
 * before; none listed means all, or none at all (the identity) with
 * noop_with_empty_axes when they are an input. */
typedef struct reduction {
    int n;                       /* axes listed; 0: all of them */
    int64_t axes[KILN_MAX_DIMS]; /* non-negative when keepdims = 0 */
    int keepdims, identity;
} reduction;

/* Reads the forward node's reduction into r; 0, or -1 when it fails (axes
 * computed at run time, or negative on an input of unknown rank). */
static int reduction_read(kiln__grad_ctx *gc, reduction *r) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int from_input = nd->opset >= (strcmp(nd->op_type, "ReduceSum") == 0 ? 13 : 18);
    int n = ints_arg(gc, !from_input, "axes", 1, r->axes, KILN_MAX_DIMS);
    if (n == -2) {
        kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "axes computed at run time");
        return -1;
    }
    r->n = n > 0 ? n : 0;
    r->keepdims = kiln__attr_i(nd, "keepdims", 1) != 0;
    r->identity = !r->n && from_input && kiln__attr_i(nd, "noop_with_empty_axes", 0) != 0;
    int rank = kiln__gb_rank(gc, IN(0));
    for (int i = 0; i < r->n && !r->keepdims; i++) {
        if (r->axes[i] < 0 && rank < 0) {
            kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "negative axes on an input of unknown rank");
            return -1;
        }
        if (r->axes[i] < 0) r->axes[i] += rank;
    }
    return 0;
}

/* v, of Y's shape, with the axes keepdims = 0 dropped put back as 1s, so that
 * it broadcasts against X (with every axis reduced Y is a scalar and
 * broadcasts as it is). */
static int restore(kiln__grad_ctx *gc, const reduction *r, int v) {
    return r->keepdims || !r->n ? v : unsqueeze(gc, v, r->n, r->axes);
}

/* v, of X's shape, summed over the reduced axes, kept as 1s. */
static int sum_kept(kiln__grad_ctx *gc, const reduction *r, int v) {
    return r->identity ? v : kiln__gb_reduce_sum(gc, v, r->n, r->axes, 1);
}

/* v, of Y's shape, broadcast back over the reduced axes to X's shape. */
static int broadcast_back(kiln__grad_ctx *gc, const reduction *r, int v) {
    if (r->identity) return v;
    return kiln__gb_op2(gc, "Expand", restore(gc, r, v), kiln__gb_shape(gc, IN(0)));
}

// Y = sum of X over axes: dX = dY broadcast over them
kiln_status kiln__grad_ReduceSum(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) == 0) gc->dx[0] = broadcast_back(gc, &r, gc->dy[0]);
    return gc->status;
}

// Y = mean of X over axes: dX = dY broadcast over them * size(Y) / size(X)
kiln_status kiln__grad_ReduceMean(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) < 0) return gc->status;
    int back = broadcast_back(gc, &r, gc->dy[0]), n_y, n_x;
    int to = (int)kiln__px_dtype(gc->p, OUT(0));
    int y_size = kiln__gb_node(gc, "Cast", "", 1, (int[]){kiln__gb_op1(gc, "Size", OUT(0))},
                               "grad_count", &n_y);
    int x_size = kiln__gb_node(gc, "Cast", "", 1, (int[]){kiln__gb_op1(gc, "Size", IN(0))},
                               "grad_count", &n_x);
    kiln__gb_attr_int(gc, n_y, "to", to);
    kiln__gb_attr_int(gc, n_x, "to", to);
    gc->dx[0] = kiln__gb_op2(gc, "Mul", back, kiln__gb_op2(gc, "Div", y_size, x_size));
    return gc->status;
}

// Y = log(sum of X over axes): dX = dY / exp(Y) broadcast over them
kiln_status kiln__grad_ReduceLogSum(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) == 0)
        gc->dx[0] = broadcast_back(
            gc, &r, kiln__gb_op2(gc, "Div", gc->dy[0], kiln__gb_op1(gc, "Exp", OUT(0))));
    return gc->status;
}

// Y = sum of X^2 over axes: dX = 2 X dY
kiln_status kiln__grad_ReduceSumSquare(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) < 0) return gc->status;
    int two_x = kiln__gb_op2(gc, "Mul", IN(0), kiln__gb_scalar(gc, IN(0), 2));
    gc->dx[0] = kiln__gb_op2(gc, "Mul", two_x, restore(gc, &r, gc->dy[0]));
    return gc->status;
}

// Y = sqrt(sum of X^2 over axes): dX = X dY / Y, 0 where Y = 0 (as torch's norm)
kiln_status kiln__grad_ReduceL2(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) < 0) return gc->status;
    int y = OUT(0), zero = kiln__gb_scalar(gc, y, 0);
    int in[3] = {kiln__gb_op2(gc, "Equal", y, zero), zero, kiln__gb_op2(gc, "Div", gc->dy[0], y)};
    int q = kiln__gb_node(gc, "Where", "", 3, in, "grad_l2", NULL);
    gc->dx[0] = kiln__gb_op2(gc, "Mul", IN(0), restore(gc, &r, q));
    return gc->status;
}

// Y = sum of |X| over axes: dX = sign(X) dY (0 at 0)
kiln_status kiln__grad_ReduceL1(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) == 0)
        gc->dx[0] = kiln__gb_op2(gc, "Mul", kiln__gb_op1(gc, "Sign", IN(0)),
                                 restore(gc, &r, gc->dy[0]));
    return gc->status;
}

// Y = log(sum of exp(X) over axes): dX = exp(X - Y) dY (softmax of X times dY)
kiln_status kiln__grad_ReduceLogSumExp(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) < 0) return gc->status;
    int p = kiln__gb_op1(gc, "Exp", kiln__gb_op2(gc, "Sub", IN(0), restore(gc, &r, OUT(0))));
    gc->dx[0] = kiln__gb_op2(gc, "Mul", p, restore(gc, &r, gc->dy[0]));
    return gc->status;
}

/* Y = max or min of X over axes: dY goes to the elements equal to Y, split
 * evenly among ties (as torch's amax / amin):
 *   mask = cast(X == Y), dX = mask * dY / (sum of mask over the axes) */
static kiln_status extremum_back(kiln__grad_ctx *gc) {
    reduction r;
    if (reduction_read(gc, &r) < 0) return gc->status;
    int x = IN(0), node;
    int eq = kiln__gb_op2(gc, "Equal", x, restore(gc, &r, OUT(0)));
    int mask = kiln__gb_node(gc, "Cast", "", 1, &eq, "grad_mask", &node);
    kiln__gb_attr_int(gc, node, "to", kiln__px_dtype(gc->p, x));
    int share = kiln__gb_op2(gc, "Div", restore(gc, &r, gc->dy[0]), sum_kept(gc, &r, mask));
    gc->dx[0] = kiln__gb_op2(gc, "Mul", mask, share);
    return gc->status;
}

kiln_status kiln__grad_ReduceMax(kiln__grad_ctx *gc) { return extremum_back(gc); }
kiln_status kiln__grad_ReduceMin(kiln__grad_ctx *gc) { return extremum_back(gc); }

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

/* ---- Slice, Split, Pad --------------------------------------------------------- */

/* dX for ops whose output elements are elements of X = input 0 picked by
 * position alone (Slice, Pad in modes edge, reflect and wrap): the forward op,
 * with its attributes and inputs params[0..n) after the first, applied to the
 * flat positions of X (Range(0, size(X)) in X's shape) says where each element
 * of Y came from, and kiln.GatherGrad adds dY up there:
 *   dX = reshape(GatherGrad(dY, op(positions), [size(X)]), Shape(X)) */
static int pick_back(kiln__grad_ctx *gc, int n, const int *params) {
    const char *op = kiln__gb_fwd(gc)->op_type; /* owned by the node: survives new nodes */
    int x = IN(0), node, in[5]; /* n <= 4 */
    int range[3] = {kiln__gb_int(gc, 0), kiln__gb_op1(gc, "Size", x), kiln__gb_int(gc, 1)};
    int flat = kiln__gb_node(gc, "Range", "", 3, range, "grad_positions", NULL);
    in[0] = kiln__gb_reshape_like(gc, flat, x);
    for (int i = 0; i < n; i++) in[i + 1] = params[i];
    int from = kiln__gb_node(gc, op, "", n + 1, in, "grad_positions", &node);
    kiln__gb_copy_attrs(gc, node);
    int back[3] = {gc->dy[0], from, kiln__gb_shape(gc, flat)};
    return kiln__gb_reshape_like(
        gc, kiln__gb_node(gc, "GatherGrad", "kiln", 3, back, "grad_pick", NULL), x);
}

/* 1 and the pads that put Y back in place in X (clamping as Slice does) when
 * the slice is constant, its steps 1 and X's dims on its axes known; else 0. */
static int slice_pads(kiln__grad_ctx *gc, int rank, int64_t *pads) {
    int64_t starts[KILN_MAX_DIMS], ends[KILN_MAX_DIMS], axes[KILN_MAX_DIMS], steps[KILN_MAX_DIMS];
    int attr = kiln__gb_fwd(gc)->opset < 10; /* starts, ends, axes: attributes; no steps */
    int n = ints_arg(gc, attr, "starts", 1, starts, KILN_MAX_DIMS);
    int na = ints_arg(gc, attr, "axes", 3, axes, KILN_MAX_DIMS);
    int ns = attr ? -1 : ints_arg(gc, 0, "steps", 4, steps, KILN_MAX_DIMS);
    if (rank < 0 || n < 0 || ints_arg(gc, attr, "ends", 2, ends, KILN_MAX_DIMS) != n ||
        (na != -1 && na != n) || (ns != -1 && ns != n))
        return 0;
    for (int d = 0; d < 2 * rank; d++) pads[d] = 0;
    for (int i = 0; i < n; i++) {
        int64_t a = na >= 0 ? axes[i] : i;
        if (a < 0) a += rank;
        if (a < 0 || a >= rank || (ns >= 0 && steps[i] != 1)) return 0;
        int64_t dim = kiln__gb_dim(gc, IN(0), (int)a), s = starts[i], e = ends[i];
        if (dim < 0) return 0;
        s = s < 0 ? (s + dim < 0 ? 0 : s + dim) : (s > dim ? dim : s);
        e = e < 0 ? (e + dim < 0 ? 0 : e + dim) : (e > dim ? dim : e);
        if (e < s) e = s;
        pads[a] = s;
        pads[rank + a] = dim - e;
    }
    return 1;
}

// Y = X[starts:ends:steps] along axes: dX = dY in its place in zeros of X's shape:
// Pad(dY) when the slice is constant with steps 1, else pick_back (any steps,
// bounds computed at run time)
kiln_status kiln__grad_Slice(kiln__grad_ctx *gc) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int rank = kiln__gb_rank(gc, IN(0)), n_params = nd->n_in - nd->n_implicit - 1;
    int64_t pads[2 * KILN_MAX_DIMS];
    if (slice_pads(gc, rank, pads))
        gc->dx[0] = kiln__gb_pad(gc, gc->dy[0], rank, pads);
    else
        gc->dx[0] = pick_back(gc, n_params, (int[]){IN(1), IN(2), IN(3), IN(4)});
    return gc->status;
}

// (Y_0, ..., Y_n-1) = split(X, axis): dX = concat(dY_0, ..., dY_n-1) along axis,
// zeros of Y_k's shape for an output without a gradient
kiln_status kiln__grad_Split(kiln__grad_ctx *gc) {
    int n = gc->n_dy, node, zero = -1;
    int64_t axis = kiln__attr_i(kiln__gb_fwd(gc), "axis", 0);
    int *parts = malloc((size_t)n * sizeof *parts);
    if (!parts) return kiln__gb_fail(gc, KILN_E_NOMEM, "out of memory");
    for (int k = 0; k < n; k++) {
        if ((parts[k] = gc->dy[k]) >= 0) continue;
        if (zero < 0) zero = kiln__gb_scalar(gc, IN(0), 0);
        int shape = kiln__gb_shape(gc, kiln__gb_output(gc, k, "grad_split_unused"));
        parts[k] = kiln__gb_op2(gc, "Expand", zero, shape);
    }
    gc->dx[0] = kiln__gb_node(gc, "Concat", "", n, parts, "grad_split", &node);
    kiln__gb_attr_int(gc, node, "axis", axis);
    free(parts);
    return gc->status;
}

// Y = Pad(X, pads[, value][, axes]), mode constant: dX = Pad(dY, -pads) (negative pads
// crop what was added, positive ones restore what was cropped) and dValue =
// sum(dY) - sum(dX), what fell on the padding; modes edge, reflect and wrap copy
// elements of X into the padding: dX = pick_back, their gradients adding up
kiln_status kiln__grad_Pad(kiln__grad_ctx *gc) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int attr = nd->opset < 11, dy = gc->dy[0], axes = IN(3), dx;
    if (strcmp(kiln__attr_s(nd, "mode", "constant"), "constant") != 0) {
        int n_params = attr ? 0 : axes >= 0 ? 3 : 1; /* constant_value left out */
        if (NEED(0)) gc->dx[0] = pick_back(gc, n_params, (int[]){IN(1), -1, axes});
        return gc->status;
    }
    int64_t pads[2 * KILN_MAX_DIMS];
    int n = ints_arg(gc, attr, "pads", 1, pads, 2 * KILN_MAX_DIMS);
    for (int i = 0; i < n; i++) pads[i] = -pads[i];
    if (n >= 0 && axes < 0) {
        dx = kiln__gb_pad(gc, dy, n / 2, pads);
    } else { /* pads computed at run time, or only for some axes (from opset 18) */
        int neg = n >= 0 ? kiln__gb_ints(gc, n, pads) : kiln__gb_op1(gc, "Neg", IN(1));
        dx = kiln__gb_node(gc, "Pad", "", axes >= 0 ? 4 : 2, (int[]){dy, neg, -1, axes}, "grad_pad",
                           NULL);
    }
    if (NEED(0)) gc->dx[0] = dx;
    if (IN(2) >= 0 && NEED(2)) {
        int all_dy = kiln__gb_reduce_sum(gc, dy, 0, NULL, 0);
        int all_dx = kiln__gb_reduce_sum(gc, dx, 0, NULL, 0);
        gc->dx[2] = kiln__gb_reshape_like(gc, kiln__gb_op2(gc, "Sub", all_dy, all_dx), IN(2));
    }
    return gc->status;
}
