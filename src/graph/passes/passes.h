/* src/graph/passes/passes.h: what the optimization passes share (see
 * graph/optimize.h for the list).
 *
 * A pass walks the nodes of a finalized graph and rewrites matches through
 * the kiln__px helpers below: nodes are removed by marking them dead, new
 * nodes and initializers are appended. After each pass the driver sweeps the
 * dead nodes and finalizes (producers, topological order), so within a pass
 * node indices stay valid while pointers into g->nodes do not survive
 * kiln__px_add_node.
 *
 * Rules every pass keeps: a value that is a graph output, graph input or a
 * capture of a subgraph (an implicit input, matched by name) is never renamed
 * or dropped; an intermediate of a fused chain must have exactly one consumer;
 * shapes a rewrite relies on come from constants, from the pattern, or from
 * the value annotations (declared or symbolically inferred, see
 * kiln__px_same_shape).
 */
#ifndef KILN_GRAPH_PASSES_H
#define KILN_GRAPH_PASSES_H

#include "graph/optimize.h"
#include "ops/fused.h"
#include "ops/op.h"

typedef struct kiln__px {
    kiln_graph *g;
    const kiln__opt_options *o;
    unsigned char *dead; /* per node */
    int cap_dead;
    int *uses;           /* per value: explicit input slots of live nodes + graph outputs */
    unsigned char *captured; /* per value: an implicit input of a live node */
    int cap_uses, uses_valid;
    int count;           /* rewrites by the current pass */
    int serial;          /* for fresh names */
} kiln__px;

typedef kiln_status (*kiln__pass_fn)(kiln__px *p);

/* Context over finalized g; kiln__px_free releases it. */
kiln_status kiln__px_init(kiln__px *p, kiln_graph *g, const kiln__opt_options *o);
void kiln__px_free(kiln__px *p);
/* Drops the dead nodes and finalizes g (after every pass). */
kiln_status kiln__px_sweep(kiln__px *p);

kiln_status kiln__pass_identity(kiln__px *p);
kiln_status kiln__pass_dead(kiln__px *p);
kiln_status kiln__pass_qdq(kiln__px *p);
kiln_status kiln__pass_fold(kiln__px *p);
kiln_status kiln__pass_bn(kiln__px *p);
kiln_status kiln__pass_layout(kiln__px *p);
kiln_status kiln__pass_gelu(kiln__px *p);
kiln_status kiln__pass_layernorm(kiln__px *p);
kiln_status kiln__pass_attention(kiln__px *p);
kiln_status kiln__pass_matmul(kiln__px *p);
kiln_status kiln__pass_conv(kiln__px *p);
kiln_status kiln__pass_grad(kiln__px *p);
kiln_status kiln__pass_nchwc(kiln__px *p);

/* ---- queries ------------------------------------------------------------- */

static inline kiln__node *kiln__px_node(kiln__px *p, int i) { return &p->g->nodes[i]; }
/* 1 if node i is an ai.onnx node of type op (and not removed). */
int kiln__px_is(kiln__px *p, int i, const char *op);
/* Consumers of v: explicit input slots of live nodes, plus one if v is a
 * graph output. */
int kiln__px_uses(kiln__px *p, int v);
/* 1 if v may not be renamed or dropped (graph input/output, initializer
 * listed as such, or captured by a subgraph). */
int kiln__px_pinned(kiln__px *p, int v);
/* Live producer node of v, or -1. */
int kiln__px_producer(kiln__px *p, int v);
/* The one live node consuming v (in exactly one explicit slot, *slot if not
 * NULL), when v is an intermediate used nowhere else; else -1. */
int kiln__px_sole_user(kiln__px *p, int v, int *slot);
/* Producer of v if it is an ai.onnx `op` node whose output v has no other
 * consumer (so the node can be absorbed), else -1. */
int kiln__px_absorb(kiln__px *p, int v, const char *op);
/* Constant data of v (an initializer), or NULL. */
const kiln_tensor *kiln__px_const(kiln__px *p, int v);
/* 1 and *x if v is a constant float or integer tensor of one element. */
int kiln__px_scalar(kiln__px *p, int v, double *x);
/* 1 if v is a constant scalar within rel (relative) of want. */
int kiln__px_scalar_is(kiln__px *p, int v, double want, double rel);
/* Known rank of v (declared, inferred or constant), or -1. */
int kiln__px_rank(kiln__px *p, int v);
/* 1 if values a and b certainly have the same shape (known ranks, every dim
 * the same number or the same symbol). */
int kiln__px_same_shape(kiln__px *p, int a, int b);
/* 1 if dims are certainly equal (same number or same named symbol). */
int kiln__px_dim_eq(const kiln__dim *a, const kiln__dim *b);
/* Known dtype of v (declared, constant, or the `to` of a producing Cast), or
 * KILN_DTYPE_UNDEFINED. */
kiln_dtype kiln__px_dtype(kiln__px *p, int v);
/* Integer list given as attribute `name` (from_attr) or constant input `in`
 * of node i into v (at most max): count, or -1 if absent or not constant. */
int kiln__px_ints(kiln__px *p, int i, int from_attr, const char *name, int in, int64_t *v, int max);

/* If node i is an inference BatchNormalization with constant f32 parameters
 * of *k channels: 1 and *s, the map y = x * s[c] + s[k + c] per channel
 * ((*s) 2k values, caller frees); 0 if not; -1 on OOM. (bn.c) */
int kiln__px_bn_affine(kiln__px *p, int i, int64_t *k, double **s);

/* ---- edits ----------------------------------------------------------------- */

/* Marks node i removed. */
void kiln__px_kill(kiln__px *p, int i);
/* Every explicit use of `from` in live nodes becomes `to` (graph outputs and
 * captures are not touched: check kiln__px_pinned first). */
void kiln__px_replace_uses(kiln__px *p, int from, int to);
/* Removes node i, whose output 0 equals value x: consumers read x instead,
 * or, when the output is pinned, x's producer writes the output directly
 * (x's other consumers follow). Returns 1 if done, 0 if neither is possible
 * (nothing changed). */
int kiln__px_bypass(kiln__px *p, int i, int x);
/* New value named after base (made unique); -1 on OOM (message set). */
int kiln__px_new_value(kiln__px *p, const char *base);
/* New initializer named after base holding t (ownership taken even on
 * failure); value index or -1 on OOM. */
int kiln__px_add_init(kiln__px *p, const char *base, kiln_tensor *t);
/* New live node (inputs/outputs -1); index or -1 on OOM. The name is made
 * from base. g->nodes may move. */
int kiln__px_add_node(kiln__px *p, const char *base, const char *op_type, const char *domain,
                      int n_in, int n_out);
/* Resizes node i's explicit inputs to n (new slots -1); keeps implicit ones. */
kiln_status kiln__px_set_n_in(kiln__px *p, int i, int n);
/* Sets (replacing) an attribute of node i. */
kiln_status kiln__px_attr_int(kiln__px *p, int i, const char *name, int64_t v);
kiln_status kiln__px_attr_float(kiln__px *p, int i, const char *name, float v);
kiln_status kiln__px_attr_ints(kiln__px *p, int i, const char *name, int n, const int64_t *v);
kiln_status kiln__px_attr_floats(kiln__px *p, int i, const char *name, int n, const float *v);
kiln_status kiln__px_attr_string(kiln__px *p, int i, const char *name, const char *s);
/* Copies every attribute of node src to node dst (dst's same-named ones replaced). */
kiln_status kiln__px_copy_attrs(kiln__px *p, int dst, int src);
/* The same but for the attributes whose names start with prefix. */
kiln_status kiln__px_copy_attrs_except(kiln__px *p, int dst, int src, const char *prefix);
/* Adds an opset import for domain (version) if the graph has none. */
kiln_status kiln__px_need_opset(kiln__px *p, const char *domain, int64_t version);

/* ---- activation matching (matmul and conv fusion) --------------------------- */

typedef struct kiln__px_act {
    kiln__act act;
    int out;     /* value the activation writes (the chain's new end) */
    int nodes[2]; /* nodes absorbed (-1 unused) */
} kiln__px_act;
/* 1 if v's only consumer chain is an activation the fused ops compute
 * (Relu, Clip with constant bounds, Gelu, x * Sigmoid(x)); fills *a. */
int kiln__px_match_act(kiln__px *p, int v, kiln__px_act *a);

/* What follows a MatMul/Conv output y that a fused op can compute:
 *   y [+ bias] [+ z] [act]
 * bias: an Add of a constant that bias_ok(p, const value, arg) accepts; z: an
 * Add of a value certainly of y's shape (the residual); act: as above. */
typedef struct kiln__px_epi {
    int bias_node, bias; /* Add node and its constant, or -1 */
    int res_node, z;     /* Add node and the residual, or -1 */
    kiln__px_act act;    /* act.act.kind NONE: none */
    int out;             /* the value the chain ends in */
} kiln__px_epi;
void kiln__px_match_epilogue(kiln__px *p, int y, int (*bias_ok)(kiln__px *, int, void *), void *arg,
                             kiln__px_epi *e);
/* Kills the epilogue's nodes. */
void kiln__px_kill_epilogue(kiln__px *p, const kiln__px_epi *e);
/* Sets the activation attributes of fused node i. */
kiln_status kiln__px_set_act(kiln__px *p, int i, const kiln__act *a);
/* The same in attributes `attr` and `attr`_params. */
kiln_status kiln__px_set_act_attr(kiln__px *p, int i, const char *attr, const kiln__act *a);

#endif
