/* src/train/grad_nn.c: gradient rules of the network ops (grad.h): matrix
 * products, convolution and its transpose, pooling, batch and layer
 * normalization, dropout, softmax, the losses, and the recurrent LSTM and GRU
 * (through time). */
#include <stdlib.h>
#include <string.h>

#include "train/grad.h"

#define NEED(i) (gc->need[i])
#define IN(i) kiln__gb_in(gc, i)
#define OUT(k) kiln__gb_out(gc, k)

/* ---- matrix products ------------------------------------------------------------ */

/* Gemm(a, b) with the given transposes and alpha (no C). */
static int gemm(kiln__grad_ctx *gc, int a, int b, int trans_a, int trans_b, float alpha) {
    int node, v = kiln__gb_node(gc, "Gemm", "", 2, (int[]){a, b}, "grad_gemm", &node);
    if (trans_a) kiln__gb_attr_int(gc, node, "transA", 1);
    if (trans_b) kiln__gb_attr_int(gc, node, "transB", 1);
    if (alpha != 1.0f) kiln__gb_attr_float(gc, node, "alpha", alpha);
    return v;
}

/* v with its last two axes swapped (rank known). */
static int swap_last(kiln__grad_ctx *gc, int v, int rank) {
    int64_t perm[KILN_MAX_DIMS];
    int node;
    for (int i = 0; i < rank; i++) perm[i] = i;
    perm[rank - 2] = rank - 1;
    perm[rank - 1] = rank - 2;
    int t = kiln__gb_node(gc, "Transpose", "", 1, &v, "grad_transpose", &node);
    kiln__gb_attr_ints(gc, node, "perm", rank, perm);
    return t;
}

/* 1 if v (rank r) certainly has Y's batch dims (all but the last two). */
static int same_batch(kiln__grad_ctx *gc, int v, int r, int y) {
    const kiln_graph *g = gc->p->g;
    if (kiln__gb_rank(gc, y) != r) return 0;
    for (int i = 0; i < r - 2; i++)
        if (!kiln__px_dim_eq(&g->values[v].dims[i], &g->values[y].dims[i])) return 0;
    return 1;
}

// Y = A @ B, A: (..., M, K), B: (..., K, N), batch dims broadcast:
// dA = dY @ B^T, dB = A^T @ dY, each summed over the batch dims it was broadcast on
kiln_status kiln__grad_MatMul(kiln__grad_ctx *gc) {
    int a = IN(0), b = IN(1), y = OUT(0), dy = gc->dy[0];
    int ra = kiln__gb_rank(gc, a), rb = kiln__gb_rank(gc, b);
    if (ra < 2 || rb < 2)
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED,
                             "operands of rank %d and %d: gradients need both of known rank >= 2",
                             ra, rb);
    if (ra == 2 && rb == 2) {
        if (NEED(0)) gc->dx[0] = gemm(gc, dy, b, 0, 1, 1.0f);
        if (NEED(1)) gc->dx[1] = gemm(gc, a, dy, 1, 0, 1.0f);
        return gc->status;
    }
    if (NEED(0)) {
        int v = kiln__gb_op2(gc, "MatMul", dy, swap_last(gc, b, rb));
        gc->dx[0] = same_batch(gc, a, ra, y) ? v : kiln__gb_sum_to(gc, v, a);
    }
    if (NEED(1)) {
        int v = kiln__gb_op2(gc, "MatMul", swap_last(gc, a, ra), dy);
        gc->dx[1] = same_batch(gc, b, rb, y) ? v : kiln__gb_sum_to(gc, v, b);
    }
    return gc->status;
}

// Y = alpha * op(A) @ op(B) + beta * C (op: transposed when transA / transB):
//   dA = alpha * dY @ op(B)^T, transposed back when transA
//   dB = alpha * op(A)^T @ dY, transposed back when transB
//   dC = beta * dY summed to C's shape
kiln_status kiln__grad_Gemm(kiln__grad_ctx *gc) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int ta = kiln__attr_i(nd, "transA", 0) != 0, tb = kiln__attr_i(nd, "transB", 0) != 0;
    float alpha = kiln__attr_f(nd, "alpha", 1.0f), beta = kiln__attr_f(nd, "beta", 1.0f);
    int a = IN(0), b = IN(1), dy = gc->dy[0];
    if (NEED(0))
        gc->dx[0] = ta ? gemm(gc, b, dy, tb, 1, alpha) : gemm(gc, dy, b, 0, !tb, alpha);
    if (NEED(1))
        gc->dx[1] = tb ? gemm(gc, dy, a, 1, ta, alpha) : gemm(gc, a, dy, !ta, 0, alpha);
    if (IN(2) >= 0 && NEED(2)) {
        int v = beta == 1.0f ? dy : kiln__gb_op2(gc, "Mul", dy, kiln__gb_scalar(gc, OUT(0), beta));
        gc->dx[2] = kiln__gb_sum_to(gc, v, IN(2));
    }
    return gc->status;
}

/* ---- convolution and pooling ------------------------------------------------- */

// Y = Conv(X, W[, B]): kiln.ConvGrad(dY, X, W) -> (dX, dW, dB), the outputs
// asked for only
kiln_status kiln__grad_Conv(kiln__grad_ctx *gc) {
    unsigned char want[3] = {NEED(0), NEED(1), IN(2) >= 0 && NEED(2)};
    int outs[3];
    int node = kiln__gb_node_n(gc, "ConvGrad", "kiln", 3, (int[]){gc->dy[0], IN(0), IN(1)}, 3,
                               want, "grad_conv", outs);
    kiln__gb_copy_attrs(gc, node);
    for (int i = 0; i < 3; i++) gc->dx[i] = outs[i];
    return gc->status;
}

/* ConvTranspose(X, W) is the input gradient of the Conv with weight W from
 * Y's shape to X's: input position i and tap j meet output position
 * i*stride - pad0 + j*dil in both. The geometry of that Conv, from the forward
 * node's attributes (and, for output_shape or auto_pad SAME_*, its sizes, as
 * src/cpu/ref/conv_transpose.c computes the begin pads): the end pads make
 * its output X's size; crop[i] ends of dY no tap reaches (an output made
 * larger by output_shape) are cut off first, as a Conv pad cannot be
 * negative. */
typedef struct tconv {
    int nsp, n_kernel;
    int64_t group, stride[KILN_MAX_DIMS], dil[KILN_MAX_DIMS], kernel[KILN_MAX_DIMS];
    int64_t pads[2 * KILN_MAX_DIMS], crop[KILN_MAX_DIMS];
} tconv;

/* Ints attribute `name` of the forward node, n values into v (def each when
 * absent; output_shape may lead with N and C); 0, or -1 when it has another
 * length (failed). */
static int spatial_attr(kiln__grad_ctx *gc, const char *name, int n, int64_t def, int64_t *v) {
    const int64_t *a;
    int k = kiln__attr_ints(kiln__gb_fwd(gc), name, &a);
    int skip = k == n + 2 && !strcmp(name, "output_shape") ? 2 : 0;
    if (k >= 0 && k - skip != n) {
        kiln__gb_fail(gc, KILN_E_INVAL, "attribute '%s' has %d values for %d", name, k, n);
        return -1;
    }
    for (int i = 0; i < n; i++) v[i] = k < 0 ? def : a[skip + i];
    return 0;
}

static int tconv_read(kiln__grad_ctx *gc, tconv *t) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int x = IN(0), w = IN(1), rank = kiln__gb_rank(gc, x), n = rank - 2;
    const char *auto_pad = kiln__attr_s(nd, "auto_pad", "NOTSET");
    int same = !strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER");
    int shaped = kiln__attr_find(nd, "output_shape") != NULL;
    int64_t opad[KILN_MAX_DIMS], oshape[KILN_MAX_DIMS];
    if (rank < 3) {
        kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "X needs a known rank >= 3");
        return -1;
    }
    t->nsp = n;
    t->group = kiln__attr_i(nd, "group", 1);
    t->n_kernel = kiln__attr_find(nd, "kernel_shape") ? n : 0;
    if (spatial_attr(gc, "strides", n, 1, t->stride) ||
        spatial_attr(gc, "dilations", n, 1, t->dil) ||
        spatial_attr(gc, "pads", 2 * n, 0, t->pads) ||
        spatial_attr(gc, "output_padding", n, 0, opad) ||
        spatial_attr(gc, "output_shape", n, 0, oshape) ||
        spatial_attr(gc, "kernel_shape", n, -1, t->kernel))
        return -1;
    for (int i = 0; i < n; i++) {
        int64_t s = t->stride[i], end; /* end pad, maybe negative */
        if (!strcmp(auto_pad, "VALID")) t->pads[i] = t->pads[n + i] = 0;
        if (shaped || same) {
            int64_t in = kiln__gb_dim(gc, x, 2 + i);
            int64_t k = t->n_kernel ? t->kernel[i] : kiln__gb_dim(gc, w, 2 + i);
            if (in < 0 || k < 0) {
                kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "output_shape or auto_pad SAME_* with "
                              "spatial sizes not known when autograd runs");
                return -1;
            }
            int64_t out = shaped ? oshape[i] : in * s;
            int64_t reach = s * (in - 1) + (k - 1) * t->dil[i] + 1, total = reach + opad[i] - out;
            if (total <= 0) /* a larger output gets its extra at the end */
                t->pads[i] = 0;
            else if (!strcmp(auto_pad, "SAME_UPPER"))
                t->pads[i] = total / 2;
            else
                t->pads[i] = total - total / 2;
            end = reach - out - t->pads[i];
        } else {
            end = t->pads[n + i] - opad[i];
        }
        t->pads[n + i] = end > 0 ? end : 0;
        t->crop[i] = end < 0 ? -end / s * s : 0;
    }
    return 0;
}

/* Sets the window of t on Conv / ConvGrad node i. */
static void tconv_attrs(kiln__grad_ctx *gc, int i, const tconv *t) {
    kiln__gb_attr_ints(gc, i, "strides", t->nsp, t->stride);
    kiln__gb_attr_ints(gc, i, "dilations", t->nsp, t->dil);
    kiln__gb_attr_ints(gc, i, "pads", 2 * t->nsp, t->pads);
    kiln__gb_attr_int(gc, i, "group", t->group);
    if (t->n_kernel) kiln__gb_attr_ints(gc, i, "kernel_shape", t->n_kernel, t->kernel);
}

// Y = ConvTranspose(X, W[, B]), the input gradient of Conv(., W) (see tconv):
//   dX = Conv(dY, W), dW = kiln.ConvGrad(X, dY, W).dW (the Conv's output gradient
//   is X, its input dY), dB = dY summed over all axes but 1
kiln_status kiln__grad_ConvTranspose(kiln__grad_ctx *gc) {
    int x = IN(0), w = IN(1), dy = gc->dy[0], rank = kiln__gb_rank(gc, x), node;
    tconv t;
    if (IN(2) >= 0 && NEED(2)) {
        int64_t axes[KILN_MAX_DIMS] = {0};
        if (rank < 3) return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "X needs a known rank >= 3");
        for (int i = 1; i < rank - 1; i++) axes[i] = i + 1;
        gc->dx[2] = kiln__gb_reduce_sum(gc, dy, rank - 1, axes, 0);
    }
    if ((!NEED(0) && !NEED(1)) || tconv_read(gc, &t) < 0) return gc->status;
    int64_t pads[2 * KILN_MAX_DIMS] = {0};
    int cropped = 0;
    for (int i = 0; i < t.nsp; i++) {
        pads[rank + 2 + i] = -t.crop[i];
        cropped |= t.crop[i] != 0;
    }
    if (cropped) dy = kiln__gb_pad(gc, dy, rank, pads);
    if (NEED(0)) {
        gc->dx[0] = kiln__gb_node(gc, "Conv", "", 2, (int[]){dy, w}, "grad_conv_transpose", &node);
        tconv_attrs(gc, node, &t);
    }
    if (NEED(1)) {
        int outs[3];
        node = kiln__gb_node_n(gc, "ConvGrad", "kiln", 3, (int[]){x, dy, w}, 3,
                               (const unsigned char[]){0, 1, 0}, "grad_conv_transpose", outs);
        tconv_attrs(gc, node, &t);
        gc->dx[1] = outs[1];
    }
    return gc->status;
}

/* dX = op(dY, arg) with the forward node's attributes. */
static kiln_status pool_back(kiln__grad_ctx *gc, const char *op, int arg) {
    int node;
    if (gc->dy[0] < 0) return gc->status; /* only MaxPool's Indices are used */
    gc->dx[0] = kiln__gb_node(gc, op, "kiln", 2, (int[]){gc->dy[0], arg}, "grad_pool", &node);
    kiln__gb_copy_attrs(gc, node);
    return gc->status;
}

kiln_status kiln__grad_MaxPool(kiln__grad_ctx *gc) { return pool_back(gc, "MaxPoolGrad", IN(0)); }
kiln_status kiln__grad_AveragePool(kiln__grad_ctx *gc) {
    return pool_back(gc, "AveragePoolGrad", kiln__gb_shape(gc, IN(0)));
}
kiln_status kiln__grad_GlobalAveragePool(kiln__grad_ctx *gc) {
    return pool_back(gc, "GlobalAveragePoolGrad", kiln__gb_shape(gc, IN(0)));
}

/* ---- normalization -------------------------------------------------------------- */

/* 1 if any output from `from` on has a gradient. */
static int stats_differentiated(const kiln__grad_ctx *gc, int from) {
    for (int k = from; k < gc->n_dy; k++)
        if (gc->dy[k] >= 0) return 1;
    return 0;
}

// Y = BatchNormalization(X, scale, B, mean, var): kiln.BatchNormalizationGrad(dY, X,
// scale, mean, var) -> (dX, dScale, dB), with batch statistics when the node trains
// (training_mode = 1 from opset 14, extra outputs before), else the given mean and var
kiln_status kiln__grad_BatchNormalization(kiln__grad_ctx *gc) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int training = nd->opset >= 14 ? kiln__attr_i(nd, "training_mode", 0) != 0 : 0;
    for (int k = 1; nd->opset < 14 && k < nd->n_out; k++) training |= nd->out[k] >= 0;
    if (nd->opset < 9 && kiln__attr_i(nd, "spatial", 1) == 0)
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "spatial = 0 (per-activation statistics)");
    if (stats_differentiated(gc, 1))
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "its statistics outputs are differentiated");
    if (!training && (NEED(3) || NEED(4)))
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED,
                             "gradients with respect to input_mean and input_var");
    unsigned char want[3] = {NEED(0), NEED(1), NEED(2)};
    int outs[3], node = kiln__gb_node_n(gc, "BatchNormalizationGrad", "kiln", 5,
                                        (int[]){gc->dy[0], IN(0), IN(1), IN(3), IN(4)}, 3, want,
                                        "grad_bn", outs);
    kiln__gb_attr_float(gc, node, "epsilon", kiln__attr_f(nd, "epsilon", 1e-5f));
    kiln__gb_attr_int(gc, node, "training_mode", training);
    for (int i = 0; i < 3; i++) gc->dx[i] = outs[i];
    return gc->status;
}

// Y = LayerNormalization(X, scale[, B]): kiln.LayerNormalizationGrad(dY, X, scale)
// -> (dX, dScale, dB)
kiln_status kiln__grad_LayerNormalization(kiln__grad_ctx *gc) {
    if (stats_differentiated(gc, 1))
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "its Mean or InvStdDev output is differentiated");
    unsigned char want[3] = {NEED(0), NEED(1), IN(2) >= 0 && NEED(2)};
    int outs[3], node = kiln__gb_node_n(gc, "LayerNormalizationGrad", "kiln", 3,
                                        (int[]){gc->dy[0], IN(0), IN(1)}, 3, want, "grad_ln", outs);
    kiln__gb_copy_attrs(gc, node);
    for (int i = 0; i < 3; i++) gc->dx[i] = outs[i];
    return gc->status;
}

/* ---- dropout --------------------------------------------------------------------- */

/* dX = dY * scale where mask, else 0 (mask: the forward node's output 1). */
static kiln_status masked_back(kiln__grad_ctx *gc, double scale) {
    int mask = kiln__gb_output(gc, 1, "dropout_mask"), dy = gc->dy[0];
    int kept = scale == 1.0 ? dy : kiln__gb_op2(gc, "Mul", dy, kiln__gb_scalar(gc, OUT(0), scale));
    int in[3] = {mask, kept, kiln__gb_scalar(gc, OUT(0), 0)};
    gc->dx[0] = kiln__gb_node(gc, "Where", "", 3, in, "grad_dropout", NULL);
    return gc->status;
}

// Y = Dropout(X, ratio, training_mode): dX = dY in inference (no training_mode,
// or a constant false; before opset 12 always), else dY * mask / (1 - ratio)
kiln_status kiln__grad_Dropout(kiln__grad_ctx *gc) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    double train = 0, ratio = 0.5;
    if (gc->n_dy > 1 && gc->dy[1] >= 0)
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "its mask output is differentiated");
    if (nd->opset >= 12 && IN(2) >= 0) {
        const kiln_tensor *t = kiln__px_const(gc->p, IN(2));
        if (!t || kiln_tensor_numel(t) != 1)
            return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "training_mode computed at run time");
        train = kiln__ld_f(t->dtype, t->data, 0);
    }
    if (!train) {
        gc->dx[0] = gc->dy[0];
        return gc->status;
    }
    if (IN(1) >= 0 && !kiln__px_scalar(gc->p, IN(1), &ratio))
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "ratio computed at run time");
    if (ratio == 0) {
        gc->dx[0] = gc->dy[0];
        return gc->status;
    }
    return masked_back(gc, (double)(1.0f / (1.0f - (float)ratio))); /* as the kernel scales */
}

// (Y, mask) = kiln.TrainDropout(X, seed): dX = dY * mask / (1 - ratio)
kiln_status kiln__grad_TrainDropout(kiln__grad_ctx *gc) {
    if (gc->n_dy > 1 && gc->dy[1] >= 0)
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED, "its mask output is differentiated");
    double ratio = kiln__attr_f(kiln__gb_fwd(gc), "ratio", 0.5f);
    return masked_back(gc, (double)(1.0f / (1.0f - (float)ratio)));
}

/* ---- softmax and the loss --------------------------------------------------------- */

/* op(dY, Y) over the forward node's axis: before opset 13 the ops normalize
 * over the trailing block from axis (default 1), from 13 over axis (default -1). */
static kiln_status softmax_back(kiln__grad_ctx *gc, const char *op) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int old = nd->opset < 13, node;
    int64_t axis = kiln__attr_i(nd, "axis", old ? 1 : -1);
    gc->dx[0] = kiln__gb_node(gc, op, "kiln", 2, (int[]){gc->dy[0], OUT(0)}, "grad_softmax",
                              &node);
    kiln__gb_attr_int(gc, node, "axis", axis);
    if (old) kiln__gb_attr_int(gc, node, "flatten", 1);
    return gc->status;
}

kiln_status kiln__grad_Softmax(kiln__grad_ctx *gc) { return softmax_back(gc, "SoftmaxGrad"); }
kiln_status kiln__grad_LogSoftmax(kiln__grad_ctx *gc) { return softmax_back(gc, "LogSoftmaxGrad"); }

// L = SoftmaxCrossEntropyLoss(scores, labels[, weights]):
// dScores = kiln.SoftmaxCrossEntropyLossGrad(dL, log_prob, labels[, weights])
kiln_status kiln__grad_SoftmaxCrossEntropyLoss(kiln__grad_ctx *gc) {
    if (gc->n_dy > 1 && gc->dy[1] >= 0)
        return kiln__gb_fail(gc, KILN_E_UNSUPPORTED,
                             "its output log_prob is differentiated: only the loss is");
    if (!NEED(0)) return gc->status;
    int node, lp = kiln__gb_output(gc, 1, "log_prob");
    gc->dx[0] = kiln__gb_node(gc, "SoftmaxCrossEntropyLossGrad", "kiln", 4,
                              (int[]){gc->dy[0], lp, IN(1), IN(2)}, "grad_loss", &node);
    kiln__gb_copy_attrs(gc, node);
    return gc->status;
}

// L = NegativeLogLikelihoodLoss(input, target[, weight]):
// dInput = kiln.NegativeLogLikelihoodLossGrad(dL, input, target[, weight])
kiln_status kiln__grad_NegativeLogLikelihoodLoss(kiln__grad_ctx *gc) {
    if (!NEED(0)) return gc->status;
    int node;
    gc->dx[0] = kiln__gb_node(gc, "NegativeLogLikelihoodLossGrad", "kiln", 4,
                              (int[]){gc->dy[0], IN(0), IN(1), IN(2)}, "grad_loss", &node);
    kiln__gb_copy_attrs(gc, node);
    return gc->status;
}

/* ---- recurrent ------------------------------------------------------------------- */

/* Emits op(X, W, R, dY, dY_h[, dY_c], B, initial_h[, initial_c],
 * sequence_lens[, P, Reserve]) -> (dX, dW, dR, dB, dinitial_h[, dinitial_c, dP])
 * (Reserve: the value `reserve`, left out when -1) for
 * an RNN op with `states` states (h, and c for LSTM) whose forward inputs are
 * X, W, R, B, sequence_lens, initial_h[, initial_c, P]; the gradient node
 * takes the forward's attributes (direction, activations, clip, ...). */
static kiln_status rnn_back(kiln__grad_ctx *gc, const char *op, const char *base, int states,
                            int reserve) {
    static const int slot[7] = {0, 1, 2, 3, 5, 6, 7}; /* forward input of each output */
    const int lstm = states == 2, n_out = 4 + states + lstm; /* LSTM: dP last */
    unsigned char want[7];
    int in[12], n_in = 0, outs[7];
    for (int k = 0; k < n_out; k++) want[k] = IN(slot[k]) >= 0 && NEED(slot[k]);
    for (int k = 0; k < 3; k++) in[n_in++] = IN(k);
    for (int k = 0; k <= states; k++) in[n_in++] = gc->n_dy > k ? gc->dy[k] : -1;
    in[n_in++] = IN(3);
    for (int k = 0; k < states; k++) in[n_in++] = IN(5 + k);
    in[n_in++] = IN(4); /* sequence_lens */
    if (lstm) in[n_in++] = IN(7); /* P */
    if (reserve >= 0) in[n_in++] = reserve;
    int node = kiln__gb_node_n(gc, op, "kiln", n_in, in, n_out, want, base, outs);
    kiln__gb_copy_attrs(gc, node);
    for (int k = 0; k < n_out; k++)
        if (IN(slot[k]) >= 0) gc->dx[slot[k]] = outs[k];
    return gc->status;
}

// (Y, Y_h, Y_c) = LSTM(X, W, R[, B, sequence_lens, initial_h, initial_c, P]):
// the forward node becomes (Y, Y_h, Y_c, Reserve) = kiln.LSTMTrain(...), which
// also keeps every step's gates and states, and
// kiln.LSTMGrad(X, W, R, dY, dY_h, dY_c, B, initial_h, initial_c, sequence_lens, P,
//   Reserve) -> (dX, dW, dR, dB, dinitial_h, dinitial_c, dP), back through time
// (grad_rnn.c): any activations, peepholes, clip and input_forget
kiln_status kiln__grad_LSTM(kiln__grad_ctx *gc) {
    if (strcmp(kiln__gb_fwd(gc)->domain, "kiln") != 0) kiln__gb_retype(gc, "LSTMTrain", "kiln");
    int reserve = kiln__gb_output(gc, 3, "lstm_reserve");
    return rnn_back(gc, "LSTMGrad", "grad_lstm", 2, reserve);
}
kiln_status kiln__grad_LSTMTrain(kiln__grad_ctx *gc) { return kiln__grad_LSTM(gc); }

// (Y, Y_h) = GRU(X, W, R[, B, sequence_lens, initial_h]): the forward node
// becomes (Y, Y_h, Reserve) = kiln.GRUTrain(...), keeping every step's gates
// and states, and
// kiln.GRUGrad(X, W, R, dY, dY_h, B, initial_h, sequence_lens, Reserve)
//   -> (dX, dW, dR, dB, dinitial_h), back through time (grad_rnn.c): any
// activations, either linear_before_reset, clip
kiln_status kiln__grad_GRU(kiln__grad_ctx *gc) {
    if (strcmp(kiln__gb_fwd(gc)->domain, "kiln") != 0) kiln__gb_retype(gc, "GRUTrain", "kiln");
    int reserve = kiln__gb_output(gc, 2, "gru_reserve");
    return rnn_back(gc, "GRUGrad", "grad_gru", 1, reserve);
}
kiln_status kiln__grad_GRUTrain(kiln__grad_ctx *gc) { return kiln__grad_GRU(gc); }
