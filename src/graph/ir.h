/* src/graph/ir.h: the graph IR.
 *
 * A graph owns its values, nodes, attributes and subgraphs. Values and nodes
 * are referred to by index. After kiln__graph_finalize the nodes are in
 * topological order and every node's op is resolved against the op registry.
 *
 * Subgraphs (If/Loop/Scan bodies) are graphs with a parent. A name a subgraph
 * uses but does not define is an outer-scope capture: it becomes a value of
 * kind KILN__VAL_OUTER in the subgraph (listed in g->outer) and an implicit
 * extra input of the node that owns the subgraph (after its declared inputs;
 * node->n_implicit counts them), so ordering and liveness see the dependency.
 */
#ifndef KILN_IR_H
#define KILN_IR_H

#include "core/core.h"

typedef enum {
    KILN__VAL_INTERMEDIATE = 0,
    KILN__VAL_INPUT,  /* graph input (no initializer) */
    KILN__VAL_INIT,   /* initializer or Constant-like known tensor (init != NULL) */
    KILN__VAL_OUTER,  /* subgraph: captured from the enclosing graph */
} kiln__val_kind;

/* A dimension: v >= 0 known; v < 0 unknown, sym is its name if any. */
typedef struct kiln__dim {
    int64_t v;
    char *sym; /* owned, may be NULL */
} kiln__dim;

typedef struct kiln__value {
    char *name;       /* owned; "" never used for real values */
    kiln__val_kind kind;
    kiln_dtype dtype; /* UNDEFINED if not declared */
    int ndim;         /* -1 if the rank is unknown */
    kiln__dim dims[KILN_MAX_DIMS];
    kiln_tensor *init; /* owned constant data (kind INIT), else NULL */
    int producer;      /* node index, or -1 */
    int is_output;     /* graph output */
    int has_type;      /* declared in the model (input/output/value_info) */
    /* Declared type kind: 0 a tensor; KILN__DTYPE_SEQUENCE or KILN__DTYPE_OPTIONAL
     * for a sequence or optional (dtype and dims then describe the tensors it
     * holds), container_inner being what an optional holds (KILN__DTYPE_SEQUENCE
     * for optional(sequence(tensor)), 0 for a tensor); KILN__TYPE_OTHER for
     * types kiln cannot hold (maps, sparse tensors, deeper nestings). */
    int container, container_inner;
    int is_sequence; /* container != 0 (kept for older callers; prefer container) */
} kiln__value;
#define KILN__TYPE_OTHER (-1) /* kiln__value.container of an unsupported type */

/* Attribute types: ONNX AttributeProto.AttributeType numbers. */
typedef enum {
    KILN__ATTR_UNDEFINED = 0,
    KILN__ATTR_FLOAT = 1,
    KILN__ATTR_INT = 2,
    KILN__ATTR_STRING = 3,
    KILN__ATTR_TENSOR = 4,
    KILN__ATTR_GRAPH = 5,
    KILN__ATTR_FLOATS = 6,
    KILN__ATTR_INTS = 7,
    KILN__ATTR_STRINGS = 8,
    KILN__ATTR_TENSORS = 9,
    KILN__ATTR_GRAPHS = 10,
    KILN__ATTR_SPARSE_TENSOR = 11,
    KILN__ATTR_SPARSE_TENSORS = 12,
    KILN__ATTR_TYPE_PROTO = 13,
    KILN__ATTR_TYPE_PROTOS = 14,
} kiln__attr_type;

typedef struct kiln__attr {
    char *name; /* owned */
    kiln__attr_type type;
    float f;
    int64_t i;
    char *s;       /* owned, NUL-terminated (s_len excludes the NUL) */
    size_t s_len;
    kiln_tensor *t; /* owned */
    struct kiln_graph *g; /* owned */
    int n;          /* element count of the list forms below */
    float *floats;  /* owned */
    int64_t *ints;  /* owned */
    char **strings; /* owned */
    kiln_tensor **tensors;     /* owned */
    struct kiln_graph **graphs; /* owned */
    int tp_elem;    /* TYPE_PROTO: tensor elem type (0 if not a tensor type) */
} kiln__attr;

typedef struct kiln__node {
    char *name;    /* owned; may be "" */
    char *op_type; /* owned */
    char *domain;  /* owned; "" for ai.onnx */
    int op;        /* op registry index, -1 if kiln has no kernel */
    int opset;     /* opset version of the node's domain */
    int n_in, n_out;
    int *in, *out; /* value indices; -1 for an omitted optional input/output */
    int n_implicit; /* trailing entries of in[] that are outer-scope captures */
    int n_attr;
    kiln__attr *attr;
} kiln__node;

typedef struct kiln__opset {
    char *domain; /* "" for ai.onnx */
    int64_t version;
} kiln__opset;

struct kiln_graph {
    char *name;
    char *path; /* model file, for messages (top level only) */
    int n_values, cap_values;
    kiln__value *values;
    int n_nodes, cap_nodes;
    kiln__node *nodes;
    int n_inputs;  int *inputs;  /* values of kind INPUT, in declared order */
    int n_outputs; int *outputs;
    int n_outer;   int *outer;   /* values of kind OUTER (subgraphs) */
    int n_inits;   int *inits;   /* values of kind INIT, in declared order */
    struct kiln_graph *parent;   /* enclosing graph of a subgraph */
    /* hash map name -> value index */
    int map_cap;
    int *map;
    /* model-level facts (top level; subgraphs point to their root's) */
    int n_opsets;
    kiln__opset *opsets;
    int64_t ir_version;
    char *producer_name, *producer_version, *doc;
    int64_t model_version;
};

/* ---- construction (used by importers and passes) ------------------------- */

kiln_graph *kiln__graph_new(kiln_graph *parent); /* NULL on OOM (message set) */
/* Value by name, or -1. Looks only in g (not parents). */
int kiln__graph_find(const kiln_graph *g, const char *name);
/* Adds a value named name (must not exist yet); returns index or -1 on OOM. */
int kiln__graph_add_value(kiln_graph *g, const char *name);
/* Existing value named name, or a new intermediate one. -1 on OOM. */
int kiln__graph_value(kiln_graph *g, const char *name);
/* Appends a node; returns its index or -1 on OOM. Strings are copied. */
int kiln__graph_add_node(kiln_graph *g, const char *name, const char *op_type,
                         const char *domain, int n_in, int n_out);
/* Opset version g's root imports for domain ("" and "ai.onnx" are the same);
 * 0 if not imported. */
int64_t kiln__graph_opset(const kiln_graph *g, const char *domain);
/* Root of a subgraph chain. */
const kiln_graph *kiln__graph_root(const kiln_graph *g);
void kiln__attr_clear(kiln__attr *a);

/* Resolves ops, sets each node's opset, records producers, checks that every
 * input is defined, sorts nodes topologically (fails on cycles) and does the
 * same for every subgraph. Messages name the node. */
kiln_status kiln__graph_finalize(kiln_graph *g);

/* ---- attribute access ----------------------------------------------------- */

const kiln__attr *kiln__attr_find(const kiln__node *n, const char *name);
int64_t kiln__attr_i(const kiln__node *n, const char *name, int64_t def);
float kiln__attr_f(const kiln__node *n, const char *name, float def);
/* NUL-terminated string or def. */
const char *kiln__attr_s(const kiln__node *n, const char *name, const char *def);
/* Number of ints (and *v), or -1 if absent. */
int kiln__attr_ints(const kiln__node *n, const char *name, const int64_t **v);
int kiln__attr_floats(const kiln__node *n, const char *name, const float **v);
int kiln__attr_strings(const kiln__node *n, const char *name, char *const **v);
const kiln_tensor *kiln__attr_tensor(const kiln__node *n, const char *name);
kiln_graph *kiln__attr_graph(const kiln__node *n, const char *name);

/* "node 'name' (OpType)" for messages. */
const char *kiln__node_desc(const kiln__node *n, char *buf, size_t len);

#endif
