/* src/graph/graph_api.c: public read-only views of a graph (kiln/graph.h). */
#include <stdio.h>
#include <string.h>

#include "graph/ir.h"
#include "ops/op.h"

int kiln_graph_num_inputs(const kiln_graph *g) { return g->n_inputs; }
int kiln_graph_num_outputs(const kiln_graph *g) { return g->n_outputs; }
int kiln_graph_num_nodes(const kiln_graph *g) { return g->n_nodes; }
int kiln_graph_num_opsets(const kiln_graph *g) { return kiln__graph_root(g)->n_opsets; }
int kiln_graph_num_initializers(const kiln_graph *g) { return g->n_inits; }

static void fill_info(const kiln__value *v, kiln_value_info *info) {
    memset(info, 0, sizeof *info);
    info->name = v->name;
    info->dtype = v->dtype;
    info->ndim = v->ndim;
    if (v->init) { /* the constant's own type is authoritative */
        info->dtype = v->init->dtype;
        info->ndim = v->init->ndim;
        for (int d = 0; d < v->init->ndim; d++) info->dims[d] = v->init->dims[d];
        return;
    }
    for (int d = 0; d < v->ndim && d < KILN_MAX_DIMS; d++) {
        info->dims[d] = v->dims[d].v;
        info->dim_names[d] = v->dims[d].sym;
    }
}

kiln_status kiln_graph_input_info(const kiln_graph *g, int i, kiln_value_info *info) {
    if (i < 0 || i >= g->n_inputs) return kiln__err(KILN_E_RANGE, "input index %d out of range", i);
    fill_info(&g->values[g->inputs[i]], info);
    return KILN_OK;
}

int kiln_graph_num_values(const kiln_graph *g) { return g->n_values; }

kiln_status kiln_graph_value_info(const kiln_graph *g, int i, kiln_value_info *info) {
    if (i < 0 || i >= g->n_values) return kiln__err(KILN_E_RANGE, "value index %d out of range", i);
    fill_info(&g->values[i], info);
    return KILN_OK;
}

kiln_status kiln_graph_output_info(const kiln_graph *g, int i, kiln_value_info *info) {
    if (i < 0 || i >= g->n_outputs) return kiln__err(KILN_E_RANGE, "output index %d out of range", i);
    fill_info(&g->values[g->outputs[i]], info);
    return KILN_OK;
}

const char *kiln_graph_node_op_type(const kiln_graph *g, int i) {
    return i >= 0 && i < g->n_nodes ? g->nodes[i].op_type : NULL;
}
const char *kiln_graph_node_domain(const kiln_graph *g, int i) {
    return i >= 0 && i < g->n_nodes ? g->nodes[i].domain : NULL;
}
const char *kiln_graph_node_name(const kiln_graph *g, int i) {
    return i >= 0 && i < g->n_nodes ? g->nodes[i].name : NULL;
}

kiln_status kiln_graph_opset(const kiln_graph *g, int i, const char **domain, int64_t *version) {
    g = kiln__graph_root(g);
    if (i < 0 || i >= g->n_opsets) return kiln__err(KILN_E_RANGE, "opset index %d out of range", i);
    *domain = g->opsets[i].domain;
    *version = g->opsets[i].version;
    return KILN_OK;
}

const kiln_tensor *kiln_graph_initializer(const kiln_graph *g, int i, const char **name) {
    if (i < 0 || i >= g->n_inits) return NULL;
    const kiln__value *v = &g->values[g->inits[i]];
    if (name) *name = v->name;
    return v->init;
}

/* Appends "domain.op" to buf unless already listed; returns 1 if appended. */
static int add_unsupported(const kiln__node *n, char *buf, size_t len) {
    char item[256];
    snprintf(item, sizeof item, "%s%s%s (opset %d)", n->domain, n->domain[0] ? "." : "",
             n->op_type, n->opset);
    const char *p = buf;
    size_t il = strlen(item);
    while ((p = strstr(p, item))) {
        if ((p == buf || p[-1] == ' ') && (p[il] == ',' || p[il] == 0)) return 0;
        p++;
    }
    size_t k = strlen(buf);
    snprintf(buf + k, len - k, "%s%s", k ? ", " : "", item);
    return 1;
}

static int scan(const kiln_graph *g, char *buf, size_t len) {
    int count = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln__node *n = &g->nodes[i];
        if (n->op < 0) count += add_unsupported(n, buf, len);
        for (int a = 0; a < n->n_attr; a++) {
            if (n->attr[a].g) count += scan(n->attr[a].g, buf, len);
            for (int j = 0; n->attr[a].graphs && j < n->attr[a].n; j++)
                count += scan(n->attr[a].graphs[j], buf, len);
        }
    }
    return count;
}

int kiln_graph_unsupported_ops(const kiln_graph *g, char *buf, size_t buflen) {
    if (buflen) buf[0] = 0;
    char tmp[4096] = "";
    int n = scan(g, tmp, sizeof tmp);
    if (buflen) snprintf(buf, buflen, "%s", tmp);
    return n;
}
