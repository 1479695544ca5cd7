/* src/graph/ir.c: graph construction, lookup, attributes, finalization
 * (op resolution, producers, topological order). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/ir.h"
#include "ops/op.h"

/* ---- construction ---------------------------------------------------------- */

kiln_graph *kiln__graph_new(kiln_graph *parent) {
    kiln_graph *g = calloc(1, sizeof *g);
    if (!g) {
        kiln__err(KILN_E_NOMEM, "out of memory");
        return NULL;
    }
    g->parent = parent;
    return g;
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int map_insert(kiln_graph *g, int idx) {
    if ((g->n_values + 1) * 2 > g->map_cap) {
        int cap = g->map_cap ? g->map_cap * 2 : 64;
        int *m = malloc((size_t)cap * sizeof *m);
        if (!m) return -1;
        for (int i = 0; i < cap; i++) m[i] = -1;
        free(g->map);
        g->map = m;
        g->map_cap = cap;
        for (int i = 0; i < g->n_values; i++) {
            if (i == idx) continue;
            uint64_t h = hash_str(g->values[i].name) & (uint64_t)(cap - 1);
            while (m[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
            m[h] = i;
        }
    }
    uint64_t h = hash_str(g->values[idx].name) & (uint64_t)(g->map_cap - 1);
    while (g->map[h] >= 0) h = (h + 1) & (uint64_t)(g->map_cap - 1);
    g->map[h] = idx;
    return 0;
}

int kiln__graph_find(const kiln_graph *g, const char *name) {
    if (!g->map_cap || !name) return -1;
    uint64_t h = hash_str(name) & (uint64_t)(g->map_cap - 1);
    while (g->map[h] >= 0) {
        if (strcmp(g->values[g->map[h]].name, name) == 0) return g->map[h];
        h = (h + 1) & (uint64_t)(g->map_cap - 1);
    }
    return -1;
}

int kiln__graph_add_value(kiln_graph *g, const char *name) {
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? g->cap_values * 2 : 32;
        kiln__value *v = realloc(g->values, (size_t)cap * sizeof *v);
        if (!v) goto oom;
        g->values = v;
        g->cap_values = cap;
    }
    kiln__value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = kiln__strdup(name);
    if (!v->name) goto oom;
    v->ndim = -1;
    v->producer = -1;
    g->n_values++;
    /* the map is built lazily on first insert; map_insert rehashes */
    if (map_insert(g, g->n_values - 1) != 0) {
        g->n_values--;
        free(v->name);
        goto oom;
    }
    return g->n_values - 1;
oom:
    kiln__err(KILN_E_NOMEM, "out of memory");
    return -1;
}

int kiln__graph_value(kiln_graph *g, const char *name) {
    int i = kiln__graph_find(g, name);
    return i >= 0 ? i : kiln__graph_add_value(g, name);
}

int kiln__graph_add_node(kiln_graph *g, const char *name, const char *op_type,
                         const char *domain, int n_in, int n_out) {
    if (n_in < 0 || n_out < 0 || n_in > 100000 || n_out > 100000) {
        kiln__err(KILN_E_LIMIT, "node '%s' has too many inputs/outputs", name ? name : "");
        return -1;
    }
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 32;
        kiln__node *n = realloc(g->nodes, (size_t)cap * sizeof *n);
        if (!n) goto oom;
        g->nodes = n;
        g->cap_nodes = cap;
    }
    kiln__node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = -1;
    n->name = kiln__strdup(name ? name : "");
    n->op_type = kiln__strdup(op_type ? op_type : "");
    n->domain = kiln__strdup(domain && strcmp(domain, "ai.onnx") ? domain : "");
    n->in = malloc(((size_t)n_in + 1) * sizeof *n->in);
    n->out = malloc(((size_t)n_out + 1) * sizeof *n->out);
    if (!n->name || !n->op_type || !n->domain || !n->in || !n->out) {
        free(n->name), free(n->op_type), free(n->domain), free(n->in), free(n->out);
        goto oom;
    }
    for (int i = 0; i < n_in; i++) n->in[i] = -1;
    for (int i = 0; i < n_out; i++) n->out[i] = -1;
    n->n_in = n_in;
    n->n_out = n_out;
    return g->n_nodes++;
oom:
    kiln__err(KILN_E_NOMEM, "out of memory");
    return -1;
}

const kiln_graph *kiln__graph_root(const kiln_graph *g) {
    while (g->parent) g = g->parent;
    return g;
}

int64_t kiln__graph_opset(const kiln_graph *g, const char *domain) {
    g = kiln__graph_root(g);
    if (!domain || strcmp(domain, "ai.onnx") == 0) domain = "";
    for (int i = 0; i < g->n_opsets; i++)
        if (strcmp(g->opsets[i].domain, domain) == 0) return g->opsets[i].version;
    return 0;
}

void kiln__attr_clear(kiln__attr *a) {
    free(a->name);
    free(a->s);
    kiln_tensor_free(a->t);
    kiln_graph_free(a->g);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (int i = 0; i < a->n; i++) free(a->strings[i]);
    free(a->strings);
    if (a->tensors)
        for (int i = 0; i < a->n; i++) kiln_tensor_free(a->tensors[i]);
    free(a->tensors);
    if (a->graphs)
        for (int i = 0; i < a->n; i++) kiln_graph_free(a->graphs[i]);
    free(a->graphs);
    memset(a, 0, sizeof *a);
}

void kiln_graph_free(kiln_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        kiln__value *v = &g->values[i];
        free(v->name);
        for (int d = 0; d < KILN_MAX_DIMS; d++) free(v->dims[d].sym);
        kiln_tensor_free(v->init);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        kiln__node *n = &g->nodes[i];
        free(n->name), free(n->op_type), free(n->domain), free(n->in), free(n->out);
        for (int a = 0; a < n->n_attr; a++) kiln__attr_clear(&n->attr[a]);
        free(n->attr);
    }
    free(g->values), free(g->nodes), free(g->inputs), free(g->outputs), free(g->outer);
    free(g->inits), free(g->map);
    for (int i = 0; i < g->n_opsets; i++) free(g->opsets[i].domain);
    free(g->opsets);
    free(g->name), free(g->path), free(g->producer_name), free(g->producer_version), free(g->doc);
    free(g);
}

/* ---- attributes -------------------------------------------------------------- */

const kiln__attr *kiln__attr_find(const kiln__node *n, const char *name) {
    for (int i = 0; i < n->n_attr; i++)
        if (strcmp(n->attr[i].name, name) == 0) return &n->attr[i];
    return NULL;
}

int64_t kiln__attr_i(const kiln__node *n, const char *name, int64_t def) {
    const kiln__attr *a = kiln__attr_find(n, name);
    return a && a->type == KILN__ATTR_INT ? a->i : def;
}

float kiln__attr_f(const kiln__node *n, const char *name, float def) {
    const kiln__attr *a = kiln__attr_find(n, name);
    if (!a) return def;
    if (a->type == KILN__ATTR_FLOAT) return a->f;
    if (a->type == KILN__ATTR_INT) return (float)a->i;
    return def;
}

const char *kiln__attr_s(const kiln__node *n, const char *name, const char *def) {
    const kiln__attr *a = kiln__attr_find(n, name);
    return a && a->type == KILN__ATTR_STRING && a->s ? a->s : def;
}

int kiln__attr_ints(const kiln__node *n, const char *name, const int64_t **v) {
    const kiln__attr *a = kiln__attr_find(n, name);
    if (!a || a->type != KILN__ATTR_INTS) return -1;
    *v = a->ints;
    return a->n;
}

int kiln__attr_floats(const kiln__node *n, const char *name, const float **v) {
    const kiln__attr *a = kiln__attr_find(n, name);
    if (!a || a->type != KILN__ATTR_FLOATS) return -1;
    *v = a->floats;
    return a->n;
}

int kiln__attr_strings(const kiln__node *n, const char *name, char *const **v) {
    const kiln__attr *a = kiln__attr_find(n, name);
    if (!a || a->type != KILN__ATTR_STRINGS) return -1;
    *v = a->strings;
    return a->n;
}

const kiln_tensor *kiln__attr_tensor(const kiln__node *n, const char *name) {
    const kiln__attr *a = kiln__attr_find(n, name);
    return a && a->type == KILN__ATTR_TENSOR ? a->t : NULL;
}

kiln_graph *kiln__attr_graph(const kiln__node *n, const char *name) {
    const kiln__attr *a = kiln__attr_find(n, name);
    return a && a->type == KILN__ATTR_GRAPH ? a->g : NULL;
}

const char *kiln__node_desc(const kiln__node *n, char *buf, size_t len) {
    if (n->name && n->name[0])
        snprintf(buf, len, "node '%s' (%s%s%s)", n->name, n->domain[0] ? n->domain : "",
                 n->domain[0] ? "." : "", n->op_type);
    else
        snprintf(buf, len, "unnamed %s%s%s node", n->domain[0] ? n->domain : "",
                 n->domain[0] ? "." : "", n->op_type);
    return buf;
}

/* ---- finalization ---------------------------------------------------------- */

static kiln_status finalize_one(kiln_graph *g);

kiln_status kiln__graph_finalize(kiln_graph *g) { return finalize_one(g); }

/* Kahn's algorithm; keeps the original order among ready nodes. */
static kiln_status toposort(kiln_graph *g) {
    int nn = g->n_nodes;
    if (nn == 0) return KILN_OK;
    int *indeg = calloc((size_t)nn, sizeof *indeg);
    int *order = malloc((size_t)nn * sizeof *order);
    int *users_start = calloc((size_t)nn + 1, sizeof *users_start);
    kiln__node *sorted = malloc((size_t)nn * sizeof *sorted);
    int *users = NULL;
    kiln_status st = KILN_OK;
    if (!indeg || !order || !users_start || !sorted) {
        st = kiln__err(KILN_E_NOMEM, "out of memory");
        goto done;
    }
    /* edges producer -> consumer (one per input slot) */
    int ne = 0;
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && g->values[v].producer >= 0) {
                users_start[g->values[v].producer + 1]++;
                indeg[i]++;
                ne++;
            }
        }
    for (int i = 0; i < nn; i++) users_start[i + 1] += users_start[i];
    users = malloc(((size_t)ne + 1) * sizeof *users);
    int *fill = calloc((size_t)nn, sizeof *fill);
    if (!users || !fill) {
        free(fill);
        st = kiln__err(KILN_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && g->values[v].producer >= 0) {
                int p = g->values[v].producer;
                users[users_start[p] + fill[p]++] = i;
            }
        }
    free(fill);
    /* ready queue processed in index order: a min-heap would be exact; a
     * simple scan keeps original order for already-sorted graphs */
    int head = 0, tail = 0;
    for (int i = 0; i < nn; i++)
        if (indeg[i] == 0) order[tail++] = i;
    while (head < tail) {
        int i = order[head++];
        for (int e = users_start[i]; e < users_start[i + 1]; e++)
            if (--indeg[users[e]] == 0) order[tail++] = users[e];
    }
    if (tail != nn) {
        char d[256];
        for (int i = 0; i < nn; i++)
            if (indeg[i] > 0) {
                st = kiln__err(KILN_E_FORMAT, "graph has a cycle through %s",
                               kiln__node_desc(&g->nodes[i], d, sizeof d));
                break;
            }
        goto done;
    }
    for (int i = 0; i < nn; i++) sorted[i] = g->nodes[order[i]];
    memcpy(g->nodes, sorted, (size_t)nn * sizeof *sorted);
    for (int i = 0; i < nn; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0) g->values[g->nodes[i].out[k]].producer = i;
done:
    free(indeg), free(order), free(users_start), free(sorted), free(users);
    return st;
}

static kiln_status finalize_one(kiln_graph *g) {
    char d[256];
    for (int i = 0; i < g->n_values; i++) g->values[i].producer = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        kiln__node *n = &g->nodes[i];
        n->opset = (int)kiln__graph_opset(g, n->domain);
        n->op = kiln__op_find(n->domain, n->op_type);
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            kiln__value *val = &g->values[v];
            if (val->producer >= 0 || val->kind == KILN__VAL_INPUT || val->kind == KILN__VAL_INIT ||
                val->kind == KILN__VAL_OUTER)
                return kiln__err(KILN_E_FORMAT, "%s: output '%s' is already defined",
                                 kiln__node_desc(n, d, sizeof d), val->name);
            val->producer = i;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        kiln__node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0) continue;
            kiln__value *val = &g->values[v];
            if (val->producer < 0 && val->kind == KILN__VAL_INTERMEDIATE)
                return kiln__err(KILN_E_FORMAT, "%s: input '%s' is not defined by any node, "
                                 "graph input or initializer",
                                 kiln__node_desc(n, d, sizeof d), val->name);
        }
        for (int a = 0; a < n->n_attr; a++) {
            kiln__attr *at = &n->attr[a];
            if (at->g) KILN__TRY(finalize_one(at->g));
            for (int j = 0; at->graphs && j < at->n; j++) KILN__TRY(finalize_one(at->graphs[j]));
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        kiln__value *val = &g->values[g->outputs[i]];
        if (val->producer < 0 && val->kind == KILN__VAL_INTERMEDIATE)
            return kiln__err(KILN_E_FORMAT, "graph output '%s' is not produced by any node",
                             val->name);
        val->is_output = 1;
    }
    return toposort(g);
}
