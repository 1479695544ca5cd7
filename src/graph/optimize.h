/* src/graph/optimize.h: graph optimization passes.
 *
 * A session optimizes a clone of the user's graph once, when it is created:
 * the passes rewrite the graph in place into one that computes the same
 * graph outputs (exactly in f32, up to rounding) with fewer, larger nodes
 * that the fast algorithms run (src/ops/fused.h, src/ops/algo.h):
 *
 *   identity     Identity, inference Dropout, Cast to the same dtype removed
 *   dead         nodes whose outputs reach no graph output removed
 *   qdq          (int8 sessions) DequantizeLinear -> Conv/MatMul -> QuantizeLinear
 *                -> QLinearConv / QLinearMatMul (before fold, which would
 *                dequantize the weights)
 *   fold         nodes whose inputs are all constants evaluated (Constant
 *                nodes become initializers; Transpose/Reshape/Cast of weights)
 *   bn           inference BatchNormalization folded into a preceding Conv,
 *                Gemm or MatMul with constant weights
 *   layout       Transpose o Transpose composed, identity Transposes removed,
 *                Reshape o Reshape collapsed, Unsqueeze/Squeeze pairs cancelled
 *   gelu         the erf and tanh GELU op sequences -> Gelu (opset 20)
 *   layernorm    ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over the
 *                last axis -> LayerNormalization (opset 17)
 *   attention    MatMul(Q, K^T) [* scale] [+ mask] -> Softmax -> MatMul(., V)
 *                on (B,H,S,D) heads -> Attention (opset 23)
 *   matmul       MatMul + bias Add -> Gemm (2-D A) or kiln.FusedMatMul, with
 *                residual Add and activation folded in
 *   conv         Conv + per-channel bias Add + residual Add + activation ->
 *                kiln.FusedConv
 *   grad         (training graphs) kiln.ReluGrad of a kiln.MaxPoolGrad whose
 *                X is the ReluGrad's Y -> the MaxPoolGrad with relu = 1
 *   nchwc        (last, once; fp32 and bf16 on AVX-512 CPUs) Conv / FusedConv
 *                -> kiln.ConvNCHWc in the blocked channel layout, with the
 *                layout changes at the ends of convolution chains; a 1x1
 *                one read only by a depthwise one (and the 1x1 projection
 *                after that, on large images) -> kiln.ConvDwNCHWc
 *
 * Every rewrite only fires when what it relies on is certain: constants are
 * initializers; shapes come from declared types, from the symbolic shape
 * inference run first (kiln_graph_infer_shapes) or from the pattern itself.
 * Values that are graph outputs, graph inputs or captured by a subgraph keep
 * their names; subgraph bodies are left as they are.
 */
#ifndef KILN_GRAPH_OPTIMIZE_H
#define KILN_GRAPH_OPTIMIZE_H

#include "graph/ir.h"

typedef enum kiln__pass_id {
    KILN__PASS_IDENTITY = 0,
    KILN__PASS_DEAD,
    KILN__PASS_QDQ,
    KILN__PASS_FOLD,
    KILN__PASS_BN,
    KILN__PASS_LAYOUT,
    KILN__PASS_GELU,
    KILN__PASS_LAYERNORM,
    KILN__PASS_ATTENTION,
    KILN__PASS_MATMUL,
    KILN__PASS_CONV,
    KILN__PASS_GRAD,
    KILN__PASS_NCHWC, /* once, after the rounds of the others */
    KILN__N_PASSES
} kiln__pass_id;

/* Rewrites done, per pass (nodes removed, folded or patterns fused). */
typedef struct kiln__opt_stats {
    int rewrites[KILN__N_PASSES];
} kiln__opt_stats;

typedef struct kiln__opt_options {
    int precision;          /* kiln_precision of the session */
    int device;             /* nonzero: the session runs nodes on a device (no CPU-only layouts) */
    unsigned disable;       /* bit (1u << kiln__pass_id): pass not run (tests) */
    kiln__opt_stats *stats; /* optional: receives the rewrite counts */
} kiln__opt_options;

/* Short name of a pass ("fold", "gelu", ...). */
const char *kiln__pass_name(int id);

/* Deep copy of g: values, initializers, nodes, attributes, subgraphs, opset
 * imports and model facts. The caller owns the result. NULL on OOM
 * (message set). g's subgraphs may be shared by nothing: the copy owns its own. */
kiln_graph *kiln__graph_clone(const kiln_graph *g);
/* Same, but the top-level initializers share g's data (numeric tensors: not
 * copied, not owned by the copy), so g must outlive the copy. Sessions use
 * this: the passes never write an initializer in place, they add new ones. */
kiln_graph *kiln__graph_clone_borrowing(const kiln_graph *g);

/* Deep copy of attribute src into dst (dst zeroed first); subgraphs are
 * cloned with parent `parent`. On failure dst is left cleared. */
kiln_status kiln__attr_copy(kiln__attr *dst, const kiln__attr *src, kiln_graph *parent);

/* Drops the values no node, graph input, output or capture refers to
 * (initializers left unused by rewrites, orphaned intermediates); keeps the
 * order of the rest. g must be finalized; it is finalized again. */
kiln_status kiln__graph_compact(kiln_graph *g);

/* Runs the passes to a fixed point. g is finalized before and after; graph
 * inputs and outputs keep their names, dtypes and shapes. o may be NULL. */
kiln_status kiln__graph_optimize(kiln_graph *g, const kiln__opt_options *o);

#endif
