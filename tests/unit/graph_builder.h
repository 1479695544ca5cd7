/* tests/unit/graph_builder.h: building small graphs in memory for unit tests
 * (include after <cmocka.h> and "graph/ir.h"). */
#ifndef KILN_TEST_GRAPH_BUILDER_H
#define KILN_TEST_GRAPH_BUILDER_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A graph importing ai.onnx opset 17 (a subgraph of parent if not NULL). */
static inline kiln_graph *new_graph(kiln_graph *parent) {
    kiln_graph *g = kiln__graph_new(parent);
    if (parent) return g;
    g->opsets = calloc(1, sizeof *g->opsets);
    g->opsets[0].domain = kiln__strdup("");
    g->opsets[0].version = 17;
    g->n_opsets = 1;
    return g;
}

static inline void add_output(kiln_graph *g, const char *name) {
    g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *g->outputs);
    g->outputs[g->n_outputs++] = kiln__graph_value(g, name);
}

/* node(g, op, "out", "in1", "in2", NULL): one output; "" is an omitted input.
 * The pointer is valid until the next node is added. */
static inline kiln__node *node(kiln_graph *g, const char *op, const char *out, ...) {
    const char *ins[8];
    int n = 0;
    va_list ap;
    va_start(ap, out);
    for (const char *s; n < 8 && (s = va_arg(ap, const char *));) ins[n++] = s;
    va_end(ap);
    int i = kiln__graph_add_node(g, out, op, "", n, 1);
    for (int k = 0; k < n; k++) g->nodes[i].in[k] = ins[k][0] ? kiln__graph_value(g, ins[k]) : -1;
    g->nodes[i].out[0] = kiln__graph_value(g, out);
    return &g->nodes[i];
}

static inline void int_attr(kiln__node *n, const char *name, int64_t v) {
    n->attr = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *n->attr);
    n->attr[n->n_attr++] = (kiln__attr){.name = kiln__strdup(name), .type = KILN__ATTR_INT, .i = v};
}

static inline void float_attr(kiln__node *n, const char *name, float v) {
    n->attr = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *n->attr);
    n->attr[n->n_attr++] = (kiln__attr){.name = kiln__strdup(name), .type = KILN__ATTR_FLOAT, .f = v};
}

static inline void ints_attr(kiln__node *n, const char *name, int k, const int64_t *v) {
    n->attr = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *n->attr);
    kiln__attr a = {.name = kiln__strdup(name), .type = KILN__ATTR_INTS, .n = k};
    a.ints = malloc((size_t)k * sizeof *v);
    memcpy(a.ints, v, (size_t)k * sizeof *v);
    n->attr[n->n_attr++] = a;
}

static inline void floats_attr(kiln__node *n, const char *name, int k, const float *v) {
    n->attr = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *n->attr);
    kiln__attr a = {.name = kiln__strdup(name), .type = KILN__ATTR_FLOATS, .n = k};
    a.floats = malloc((size_t)k * sizeof *v);
    memcpy(a.floats, v, (size_t)k * sizeof *v);
    n->attr[n->n_attr++] = a;
}

static inline void strings_attr(kiln__node *n, const char *name, int k, const char *const *v) {
    n->attr = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *n->attr);
    kiln__attr a = {.name = kiln__strdup(name), .type = KILN__ATTR_STRINGS, .n = k};
    a.strings = malloc((size_t)k * sizeof *a.strings);
    for (int i = 0; i < k; i++) a.strings[i] = kiln__strdup(v[i]);
    n->attr[n->n_attr++] = a;
}

static inline void string_attr(kiln__node *n, const char *name, const char *s) {
    n->attr = realloc(n->attr, (size_t)(n->n_attr + 1) * sizeof *n->attr);
    n->attr[n->n_attr++] = (kiln__attr){.name = kiln__strdup(name), .type = KILN__ATTR_STRING,
                                        .s = kiln__strdup(s), .s_len = strlen(s)};
}

/* Initializer `name` holding t (ownership taken). */
static inline void init(kiln_graph *g, const char *name, kiln_tensor *t) {
    int v = kiln__graph_add_value(g, name);
    g->values[v].kind = KILN__VAL_INIT;
    g->values[v].init = t;
    g->inits = realloc(g->inits, (size_t)(g->n_inits + 1) * sizeof *g->inits);
    g->inits[g->n_inits++] = v;
}

/* 1-D tensor of n values converted to dt. */
static inline kiln_tensor *vec(kiln_dtype dt, int64_t n, const double *vals) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(dt, 1, &n, &t), KILN_OK);
    for (int64_t i = 0; i < n; i++) kiln__st_f(dt, kiln_tensor_data(t), i, vals[i]);
    return t;
}

#endif
