/* kiln/graph.h: computation graphs, ONNX import and export, inspection.
 *
 * A kiln_graph is the IR every stage works on: values (graph inputs,
 * initializers, intermediates), nodes in topological order, attributes and
 * subgraphs (If/Loop/Scan bodies).
 */
#ifndef KILN_GRAPH_H
#define KILN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_graph kiln_graph;

/* Loads an ONNX model file. External tensor data is read from files next to
 * the model. On failure *out is NULL and kiln_last_error() names the file and
 * the node, field or tensor at fault. The caller owns *out. */
kiln_status kiln_graph_load_onnx(const char *path, kiln_graph **out);
/* Same from memory. name is used in messages; base_dir (may be NULL: external
 * data is then refused) is where external data files are looked up. */
kiln_status kiln_graph_load_onnx_buffer(const void *buf, size_t len, const char *name,
                                        const char *base_dir, kiln_graph **out);
/* Writes g as an ONNX model (all tensors inline). */
kiln_status kiln_graph_save_onnx(const kiln_graph *g, const char *path);
void kiln_graph_free(kiln_graph *g);

/* ---- building a graph in C -------------------------------------------------- */
/* kiln_graph_create, then inputs, initializers, nodes (values are named; a
 * node's output names new values, its inputs name existing ones or ones a
 * later node makes), outputs, and kiln_graph_finish, which checks the graph
 * (every input defined, ops known, no cycles; messages name the node) and
 * makes it ready for sessions, trainers and kiln_graph_save_onnx. */

/* An empty graph importing ai.onnx at opset (<= 0: 17). */
kiln_status kiln_graph_create(int64_t opset, kiln_graph **out);
/* Graph input `name` of dtype dt, rank ndim; dims[d] < 0 is dynamic, named
 * dim_names[d] when dim_names (may be NULL) gives one (inputs sharing a name
 * share the size). */
kiln_status kiln_graph_add_input(kiln_graph *g, const char *name, kiln_dtype dt, int ndim,
                                 const int64_t *dims, const char *const *dim_names);
/* Initializer `name` holding a copy of t (a trainer's parameter when f32). */
kiln_status kiln_graph_add_initializer(kiln_graph *g, const char *name, const kiln_tensor *t);
/* Node op_type of domain ("" or NULL: ai.onnx; another domain is imported at
 * version 1) reading inputs[0..n_in) and writing outputs[0..n_out) (names;
 * "" or NULL: omitted); *node (may be NULL) receives its index for the
 * attribute setters. */
kiln_status kiln_graph_add_node(kiln_graph *g, const char *op_type, const char *domain, int n_in,
                                const char *const *inputs, int n_out, const char *const *outputs,
                                int *node);
/* Attribute `name` of node (replacing one of that name). */
kiln_status kiln_graph_set_attr_int(kiln_graph *g, int node, const char *name, int64_t v);
kiln_status kiln_graph_set_attr_float(kiln_graph *g, int node, const char *name, float v);
kiln_status kiln_graph_set_attr_ints(kiln_graph *g, int node, const char *name, int n,
                                     const int64_t *v);
kiln_status kiln_graph_set_attr_floats(kiln_graph *g, int node, const char *name, int n,
                                       const float *v);
kiln_status kiln_graph_set_attr_string(kiln_graph *g, int node, const char *name, const char *v);
/* Value `name` becomes the next graph output. */
kiln_status kiln_graph_add_output(kiln_graph *g, const char *name);
/* Checks and finalizes a built graph (see above). */
kiln_status kiln_graph_finish(kiln_graph *g);

/* Reads one serialized ONNX TensorProto (the backend test suite's .pb files).
 * The caller owns *out. If name is not NULL it receives the tensor's name
 * (caller frees with free()). */
kiln_status kiln_tensor_load_onnx_pb(const char *path, kiln_tensor **out, char **name);

/* Description of a graph input or output. dims[i] < 0 is a dynamic dim whose
 * name (may be NULL) is dim_names[i]; ndim < 0 means the rank is unknown. */
typedef struct kiln_value_info {
    const char *name;
    kiln_dtype dtype;
    int ndim;
    int64_t dims[KILN_MAX_DIMS];
    const char *dim_names[KILN_MAX_DIMS];
} kiln_value_info;

/* Infers the dtype and shape of every value the model leaves undeclared,
 * from the graph inputs' declared types. A dim that follows a named dynamic
 * dim of an input keeps its name ("N"); a derived or data-dependent one stays
 * unknown (dims < 0, no name). Declared types are kept. Run before reading
 * output or value types when the model may not declare them. */
kiln_status kiln_graph_infer_shapes(kiln_graph *g);

/* Every value of the top-level graph: inputs, initializers, intermediates. */
int kiln_graph_num_values(const kiln_graph *g);
kiln_status kiln_graph_value_info(const kiln_graph *g, int i, kiln_value_info *info);

int kiln_graph_num_inputs(const kiln_graph *g);  /* excludes initializers */
int kiln_graph_num_outputs(const kiln_graph *g);
kiln_status kiln_graph_input_info(const kiln_graph *g, int i, kiln_value_info *info);
kiln_status kiln_graph_output_info(const kiln_graph *g, int i, kiln_value_info *info);

int kiln_graph_num_nodes(const kiln_graph *g);
/* op_type/domain of node i (top level only; subgraph nodes are not listed). */
const char *kiln_graph_node_op_type(const kiln_graph *g, int i);
const char *kiln_graph_node_domain(const kiln_graph *g, int i);
const char *kiln_graph_node_name(const kiln_graph *g, int i);

int kiln_graph_num_opsets(const kiln_graph *g);
/* Domain ("" is ai.onnx) and version of opset import i. */
kiln_status kiln_graph_opset(const kiln_graph *g, int i, const char **domain, int64_t *version);

int kiln_graph_num_initializers(const kiln_graph *g);
/* Initializer i and its name; the tensor belongs to the graph. */
const kiln_tensor *kiln_graph_initializer(const kiln_graph *g, int i, const char **name);

/* Names of ops the graph (including subgraphs) uses that kiln cannot run,
 * written comma-separated into buf. Returns the number of such node kinds. */
int kiln_graph_unsupported_ops(const kiln_graph *g, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif
#endif
