/* src/graph/graph_build.c: building a graph in C (kiln/graph.h), for users
 * who make models without an ONNX file: inputs, initializers, nodes with
 * attributes and outputs by name, then kiln_graph_finish checks and finalizes
 * it like a loaded model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/ir.h"
#include "ops/op.h"

static kiln_status oom(void) { return kiln__err(KILN_E_NOMEM, "out of memory"); }

kiln_status kiln_graph_create(int64_t opset, kiln_graph **out) {
    *out = NULL;
    kiln_graph *g = kiln__graph_new(NULL);
    if (!g) return oom();
    g->opsets = calloc(1, sizeof *g->opsets);
    if (!g->opsets || !(g->opsets[0].domain = kiln__strdup(""))) {
        kiln_graph_free(g);
        return oom();
    }
    g->opsets[0].version = opset > 0 ? opset : 17;
    g->n_opsets = 1;
    g->ir_version = 8;
    *out = g;
    return KILN_OK;
}

/* A new value `name` of kind, or an error when the name is taken. */
static kiln_status new_named(kiln_graph *g, const char *name, kiln__val_kind kind, int *v) {
    if (!name || !name[0]) return kiln__err(KILN_E_INVAL, "a graph input or initializer needs a name");
    if (kiln__graph_find(g, name) >= 0)
        return kiln__err(KILN_E_INVAL, "the graph already has a value named '%s'", name);
    if ((*v = kiln__graph_add_value(g, name)) < 0) return oom();
    g->values[*v].kind = kind;
    return KILN_OK;
}

static kiln_status push(int **list, int *n, int v) {
    int *l = realloc(*list, (size_t)(*n + 1) * sizeof *l);
    if (!l) return oom();
    l[(*n)++] = v;
    *list = l;
    return KILN_OK;
}

kiln_status kiln_graph_add_input(kiln_graph *g, const char *name, kiln_dtype dt, int ndim,
                                 const int64_t *dims, const char *const *dim_names) {
    if (ndim < 0 || ndim > KILN_MAX_DIMS)
        return kiln__err(KILN_E_INVAL, "input '%s': rank %d is outside [0, %d]", name, ndim, KILN_MAX_DIMS);
    int v;
    KILN__TRY(new_named(g, name, KILN__VAL_INPUT, &v));
    kiln__value *val = &g->values[v];
    val->dtype = dt;
    val->ndim = ndim;
    val->has_type = 1;
    for (int d = 0; d < ndim; d++) {
        val->dims[d].v = dims[d] >= 0 ? dims[d] : -1;
        if (dims[d] < 0 && dim_names && dim_names[d] && !(val->dims[d].sym = kiln__strdup(dim_names[d])))
            return oom();
    }
    return push(&g->inputs, &g->n_inputs, v);
}

kiln_status kiln_graph_add_initializer(kiln_graph *g, const char *name, const kiln_tensor *t) {
    kiln_tensor *copy;
    int v;
    KILN__TRY(new_named(g, name, KILN__VAL_INIT, &v));
    KILN__TRY(kiln_tensor_copy(t, KILN_DTYPE_UNDEFINED, &copy));
    g->values[v].init = copy;
    return push(&g->inits, &g->n_inits, v);
}

/* Adds an opset import of domain at version 1 when the graph has none. */
static kiln_status need_domain(kiln_graph *g, const char *domain) {
    if (kiln__graph_opset(g, domain) > 0) return KILN_OK;
    kiln__opset *o = realloc(g->opsets, (size_t)(g->n_opsets + 1) * sizeof *o);
    if (!o) return oom();
    g->opsets = o;
    if (!(o[g->n_opsets].domain = kiln__strdup(domain))) return oom();
    o[g->n_opsets++].version = 1;
    return KILN_OK;
}

kiln_status kiln_graph_add_node(kiln_graph *g, const char *op_type, const char *domain, int n_in,
                                const char *const *inputs, int n_out, const char *const *outputs,
                                int *node) {
    if (!domain) domain = "";
    if (domain[0]) KILN__TRY(need_domain(g, domain));
    char name[64];
    snprintf(name, sizeof name, "%s_%d", op_type, g->n_nodes);
    int i = kiln__graph_add_node(g, name, op_type, domain, n_in, n_out);
    if (i < 0) return oom();
    for (int k = 0; k < n_in + n_out; k++) {
        const char *vn = k < n_in ? inputs[k] : outputs[k - n_in];
        int v = vn && vn[0] ? kiln__graph_value(g, vn) : -1;
        if (vn && vn[0] && v < 0) return oom();
        if (k < n_in)
            g->nodes[i].in[k] = v;
        else
            g->nodes[i].out[k - n_in] = v;
    }
    if (node) *node = i;
    return KILN_OK;
}

/* Node i's attribute `name` (replacing one of that name), cleared, typed. */
static kiln_status attr_slot(kiln_graph *g, int i, const char *name, kiln__attr_type type,
                             kiln__attr **out) {
    if (i < 0 || i >= g->n_nodes) return kiln__err(KILN_E_RANGE, "node index %d out of range", i);
    kiln__node *n = &g->nodes[i];
    kiln__attr *a = NULL;
    for (int k = 0; k < n->n_attr && !a; k++)
        if (!strcmp(n->attr[k].name, name)) a = &n->attr[k];
    if (a) {
        kiln__attr_clear(a);
    } else {
        kiln__attr *grown = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *grown);
        if (!grown) return oom();
        n->attr = grown;
        a = &n->attr[n->n_attr++];
    }
    memset(a, 0, sizeof *a);
    if (!(a->name = kiln__strdup(name))) return oom();
    a->type = type;
    *out = a;
    return KILN_OK;
}

kiln_status kiln_graph_set_attr_int(kiln_graph *g, int node, const char *name, int64_t v) {
    kiln__attr *a;
    KILN__TRY(attr_slot(g, node, name, KILN__ATTR_INT, &a));
    a->i = v;
    return KILN_OK;
}

kiln_status kiln_graph_set_attr_float(kiln_graph *g, int node, const char *name, float v) {
    kiln__attr *a;
    KILN__TRY(attr_slot(g, node, name, KILN__ATTR_FLOAT, &a));
    a->f = v;
    return KILN_OK;
}

/* A list attribute of n elements of `size` bytes copied from v: the slot in
 * *out with its buffer in *buf (to store in the slot's typed field). */
static kiln_status attr_list(kiln_graph *g, int node, const char *name, kiln__attr_type type, int n,
                             const void *v, size_t size, kiln__attr **out, void **buf) {
    KILN__TRY(attr_slot(g, node, name, type, out));
    if (!(*buf = malloc((size_t)n * size + 1))) return oom();
    memcpy(*buf, v, (size_t)n * size);
    (*out)->n = n;
    return KILN_OK;
}

kiln_status kiln_graph_set_attr_ints(kiln_graph *g, int node, const char *name, int n,
                                     const int64_t *v) {
    kiln__attr *a;
    void *buf;
    KILN__TRY(attr_list(g, node, name, KILN__ATTR_INTS, n, v, sizeof *v, &a, &buf));
    a->ints = buf;
    return KILN_OK;
}

kiln_status kiln_graph_set_attr_floats(kiln_graph *g, int node, const char *name, int n,
                                       const float *v) {
    kiln__attr *a;
    void *buf;
    KILN__TRY(attr_list(g, node, name, KILN__ATTR_FLOATS, n, v, sizeof *v, &a, &buf));
    a->floats = buf;
    return KILN_OK;
}

kiln_status kiln_graph_set_attr_string(kiln_graph *g, int node, const char *name, const char *v) {
    kiln__attr *a;
    KILN__TRY(attr_slot(g, node, name, KILN__ATTR_STRING, &a));
    if (!(a->s = kiln__strdup(v))) return oom();
    a->s_len = strlen(v);
    return KILN_OK;
}

kiln_status kiln_graph_add_output(kiln_graph *g, const char *name) {
    int v = kiln__graph_find(g, name);
    if (v < 0) return kiln__err(KILN_E_NOTFOUND, "no value named '%s' to make an output", name);
    g->values[v].is_output = 1;
    return push(&g->outputs, &g->n_outputs, v);
}

kiln_status kiln_graph_finish(kiln_graph *g) {
    if (g->n_outputs == 0) return kiln__err(KILN_E_INVAL, "the graph has no outputs");
    return kiln__graph_finalize(g);
}
