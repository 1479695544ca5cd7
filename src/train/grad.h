/* src/train/grad.h: gradient rules, and what they share with the autograd
 * driver (autograd.c).
 *
 * A rule adds to the graph the nodes that compute the gradients of one
 * forward node's inputs from the gradients of its outputs (a vector-Jacobian
 * product): ONNX ops where one says it (MatMul, Mul, Reshape, ...) and kiln's
 * gradient ops (src/ops/defs/grad.def) where none does. Rules are listed in
 * grad_rules.def, one line per forward op, and live in files by family:
 * grad_math.c (elementwise math and activations), grad_tensor.c (shape,
 * layout and indexing ops, reductions), grad_nn.c (products, convolution,
 * pooling, normalization, softmax, losses, LSTM and GRU).
 *
 * A rule reads gc->dy[k], the gradient of output k (-1: none reaches it, it
 * is zero), and sets gc->dx[i] for every input i with gc->need[i], or leaves
 * it -1 when that gradient is zero. It builds nodes with the kiln__gb_* helpers
 * below, which take and return value indices; a helper given -1 (a failed
 * earlier step) returns -1, and the first failure is kept in gc->status, so a
 * rule is written straight through and ends with `return gc->status;`.
 *
 * Shapes: rules rely only on ranks and shapes known when autograd runs
 * (declared, or from kiln_graph_infer_shapes); what is known only at run time
 * is read there (Shape of a value, SumTo, Expand).
 */
#ifndef KILN_TRAIN_GRAD_H
#define KILN_TRAIN_GRAD_H

#include "graph/passes/passes.h"

typedef struct kiln__grad_ctx {
    kiln__px *p;              /* the graph being extended */
    int node;                 /* the forward node */
    const int *dy;            /* per output of the node: its gradient, or -1 */
    int n_dy;                 /* outputs of the node (entries of dy) */
    const unsigned char *need; /* per input: 1 if its gradient is wanted */
    int *dx;                  /* per input: set by the rule, -1 for none (zero) */
    kiln_status status;       /* first failure of a helper */
} kiln__grad_ctx;

typedef kiln_status (*kiln__grad_rule)(kiln__grad_ctx *gc);

/* The rule of op (domain, op_type), or NULL if there is none. */
kiln__grad_rule kiln__grad_rule_find(const char *domain, const char *op_type);

#define KILN_GRAD(name) kiln_status kiln__grad_##name(kiln__grad_ctx *gc);
#include "train/grad_rules.def"
#undef KILN_GRAD

/* ---- what rules read ------------------------------------------------------- */

static inline const kiln__node *kiln__gb_fwd(const kiln__grad_ctx *gc) {
    return &gc->p->g->nodes[gc->node];
}
/* Input i / output k of the forward node (-1 if omitted or absent). */
static inline int kiln__gb_in(const kiln__grad_ctx *gc, int i) {
    const kiln__node *n = kiln__gb_fwd(gc);
    return i < n->n_in - n->n_implicit ? n->in[i] : -1;
}
static inline int kiln__gb_out(const kiln__grad_ctx *gc, int k) {
    const kiln__node *n = kiln__gb_fwd(gc);
    return k < n->n_out ? n->out[k] : -1;
}
/* Known rank of value v, or -1. */
static inline int kiln__gb_rank(kiln__grad_ctx *gc, int v) { return kiln__px_rank(gc->p, v); }
/* Dim d of value v when known (a number, not a symbol), else -1. */
static inline int64_t kiln__gb_dim(kiln__grad_ctx *gc, int v, int d) {
    const kiln_tensor *t = kiln__px_const(gc->p, v);
    if (t) return d < t->ndim ? t->dims[d] : -1;
    const kiln__value *val = &gc->p->g->values[v];
    return d < val->ndim ? val->dims[d].v : -1;
}
/* Fails the rule (status and message, naming the forward node). */
kiln_status kiln__gb_fail(kiln__grad_ctx *gc, kiln_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- building -------------------------------------------------------------- */

/* New node (domain "" or "kiln") with inputs in[0..n_in) (-1: omitted) and one
 * new output value named after `base`; returns the output (or -1). *node_out,
 * when not NULL, receives the node index for attributes (-1 on failure). */
int kiln__gb_node(kiln__grad_ctx *gc, const char *op, const char *domain, int n_in, const int *in,
            const char *base, int *node_out);
/* Node with n_out outputs, of which those with want[k] (all when want is
 * NULL) get new values, in outs[k] (-1 for the others); returns the node. */
int kiln__gb_node_n(kiln__grad_ctx *gc, const char *op, const char *domain, int n_in,
                    const int *in, int n_out, const unsigned char *want, const char *base,
                    int *outs);
/* Output k of the forward node, added (a new value) when the model did not
 * ask for it, e.g. the mask of a Dropout whose gradient needs it. */
int kiln__gb_output(kiln__grad_ctx *gc, int k, const char *base);
/* The forward node becomes op_type of domain (opset 1 of a domain the graph
 * did not import), keeping its inputs, outputs and attributes: its training
 * form, e.g. an LSTM that also keeps what its gradient reads. */
void kiln__gb_retype(kiln__grad_ctx *gc, const char *op_type, const char *domain);
/* ai.onnx node with one or two inputs and one output. */
int kiln__gb_op1(kiln__grad_ctx *gc, const char *op, int a);
int kiln__gb_op2(kiln__grad_ctx *gc, const char *op, int a, int b);
/* Scalar constant of the dtype of value like (a forward value: the dtypes of the
 * gradient values rules make are not recorded). */
int kiln__gb_scalar(kiln__grad_ctx *gc, int like, double v);
/* 1-D int64 constant. */
int kiln__gb_ints(kiln__grad_ctx *gc, int n, const int64_t *v);
/* Scalar (0-D) int64 constant. */
int kiln__gb_int(kiln__grad_ctx *gc, int64_t v);
/* Shape(v). */
int kiln__gb_shape(kiln__grad_ctx *gc, int v);
/* v (a gradient of the forward node's output 0, so of its shape) summed down
 * to the shape of `like`, the input it flows to (numpy broadcasting undone):
 * v itself when the two shapes are certainly equal, else kiln.SumTo. */
int kiln__gb_sum_to(kiln__grad_ctx *gc, int v, int like);
/* v reshaped to the shape of `like` (Reshape(v, Shape(like))). */
int kiln__gb_reshape_like(kiln__grad_ctx *gc, int v, int like);
/* ReduceSum(v) over axes[0..n) (all axes when n is 0) in the form of the
 * graph's ai.onnx opset (axes an input from opset 13, an attribute before). */
int kiln__gb_reduce_sum(kiln__grad_ctx *gc, int v, int n, const int64_t *axes, int keepdims);
/* Pad(v) with zeros by pads (2 * rank entries: the begins, then the ends;
 * negative ones crop) in the form of the graph's ai.onnx opset (pads an input
 * from opset 11, an attribute before). */
int kiln__gb_pad(kiln__grad_ctx *gc, int v, int rank, const int64_t *pads);
/* Copies every attribute of the forward node to node i. */
void kiln__gb_copy_attrs(kiln__grad_ctx *gc, int i);
/* Attribute setters on node i (failures go to gc->status). */
void kiln__gb_attr_int(kiln__grad_ctx *gc, int i, const char *name, int64_t v);
void kiln__gb_attr_float(kiln__grad_ctx *gc, int i, const char *name, float v);
void kiln__gb_attr_ints(kiln__grad_ctx *gc, int i, const char *name, int n, const int64_t *v);

#endif
