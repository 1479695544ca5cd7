/* src/ops/fused.h: kiln's fused ops (domain "kiln"), which graph passes
 * create from the op sequences exporters emit and the fast algorithms run in
 * one pass over the data:
 *
 *   kiln.FusedConv(X, W, B?, Z?) -> Y
 *       Y = act(Conv(X, W, B) + Z); every Conv attribute, plus `activation`
 *       and `activation_params` below. Z (optional): a residual of Y's shape.
 *   kiln.FusedMatMul(A, B, Bias?, Z?) -> Y
 *       Y = act(MatMul(A, B) + Bias + Z), MatMul's broadcasting; Bias (N,)
 *       along the last axis; Z (optional) of Y's shape.
 *
 * Attributes of both:
 *   activation        string: "" or absent (none), "Relu", "Clip", "Gelu"
 *                     (erf form), "GeluTanh" (tanh approximation), "Silu"
 *                     (x * sigmoid(x)); the set the GEMM epilogue computes.
 *   activation_params floats: Clip: (min, max), default (-inf, +inf).
 *
 * Shapes, when passes build these ops, always come from the original nodes.
 */
#ifndef KILN_OPS_FUSED_H
#define KILN_OPS_FUSED_H

#include "graph/ir.h"

typedef enum kiln__act_kind {
    KILN__ACT_NONE = 0,
    KILN__ACT_RELU,
    KILN__ACT_CLIP,
    KILN__ACT_GELU,      /* 0.5 x (1 + erf(x / sqrt 2)) */
    KILN__ACT_GELU_TANH, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    KILN__ACT_SILU,      /* x / (1 + exp(-x)) */
} kiln__act_kind;

typedef struct kiln__act {
    kiln__act_kind kind;
    float lo, hi; /* Clip bounds */
} kiln__act;

/* Reads a fused node's activation attributes; fails naming the attribute on
 * an unknown activation or bad parameters. */
kiln_status kiln__act_from_node(const kiln__node *n, kiln__act *out);
/* The same from attributes `attr` and `attr`_params (kiln.ConvDwNCHWc's
 * pw_activation). */
kiln_status kiln__act_from_attrs(const kiln__node *n, const char *attr, kiln__act *out);
/* Name of the `activation` attribute value for kind ("" for NONE). */
const char *kiln__act_name(kiln__act_kind kind);
/* The scalar reference of the activation. */
float kiln__act_apply(const kiln__act *a, float x);
/* Stores act(v) as element i of data (a float dtype): the activation is f32
 * (kiln__act_apply); without one, an f64 sum keeps its precision. */
void kiln__act_store(const kiln__act *a, kiln_dtype dt, void *data, int64_t i, double v);

#endif
