/* src/graph/ir_clone.c: deep copies of graphs and attributes, and compaction
 * (a copy without the values nothing refers to). */
#include <stdlib.h>
#include <string.h>

#include "graph/optimize.h"

static kiln_graph *clone_graph(const kiln_graph *g, kiln_graph *parent, const unsigned char *keep,
                               int no_init);

static kiln_status oom(void) { return kiln__err(KILN_E_NOMEM, "out of memory"); }

/* *out = deep copy of t (NULL stays NULL). */
static kiln_status copy_tensor(const kiln_tensor *t, kiln_tensor **out) {
    *out = NULL;
    return t ? kiln_tensor_copy(t, KILN_DTYPE_UNDEFINED, out) : KILN_OK;
}

static char *dup_or_null(const char *s, int *failed) {
    if (!s) return NULL;
    char *d = kiln__strdup(s);
    if (!d) *failed = 1;
    return d;
}

kiln_status kiln__attr_copy(kiln__attr *dst, const kiln__attr *src, kiln_graph *parent) {
    memset(dst, 0, sizeof *dst);
    int failed = 0;
    dst->type = src->type;
    dst->f = src->f;
    dst->i = src->i;
    dst->n = src->n;
    dst->tp_elem = src->tp_elem;
    dst->s_len = src->s_len;
    dst->name = dup_or_null(src->name, &failed);
    if (src->s) {
        if ((dst->s = malloc(src->s_len + 1))) memcpy(dst->s, src->s, src->s_len + 1);
        else failed = 1;
    }
    if (!failed && src->t && copy_tensor(src->t, &dst->t) != KILN_OK) failed = 1;
    if (!failed && src->g && !(dst->g = clone_graph(src->g, parent, NULL, 0))) failed = 1;
    size_t n = (size_t)(src->n > 0 ? src->n : 0);
    if (!failed && src->floats) {
        if ((dst->floats = malloc(n * sizeof *dst->floats + 1))) memcpy(dst->floats, src->floats, n * sizeof *dst->floats);
        else failed = 1;
    }
    if (!failed && src->ints) {
        if ((dst->ints = malloc(n * sizeof *dst->ints + 1))) memcpy(dst->ints, src->ints, n * sizeof *dst->ints);
        else failed = 1;
    }
    if (!failed && src->strings) {
        if (!(dst->strings = calloc(n + 1, sizeof *dst->strings))) failed = 1;
        for (size_t i = 0; !failed && i < n; i++) dst->strings[i] = dup_or_null(src->strings[i], &failed);
    }
    if (!failed && src->tensors) {
        if (!(dst->tensors = calloc(n + 1, sizeof *dst->tensors))) failed = 1;
        for (size_t i = 0; !failed && i < n; i++)
            if (copy_tensor(src->tensors[i], &dst->tensors[i]) != KILN_OK) failed = 1;
    }
    if (!failed && src->graphs) {
        if (!(dst->graphs = calloc(n + 1, sizeof *dst->graphs))) failed = 1;
        for (size_t i = 0; !failed && i < n; i++)
            if (src->graphs[i] && !(dst->graphs[i] = clone_graph(src->graphs[i], parent, NULL, 0))) failed = 1;
    }
    if (failed) {
        kiln__attr_clear(dst);
        return oom();
    }
    return KILN_OK;
}

/* dst[0..n) = map[src[k]] for the kept entries; *nd gets their count. */
static kiln_status remap_list(const int *src, int n, const int *map, int **dst, int *nd) {
    *dst = NULL;
    *nd = 0;
    if (n <= 0) return KILN_OK;
    if (!(*dst = malloc((size_t)n * sizeof **dst))) return oom();
    for (int i = 0; i < n; i++)
        if (src[i] >= 0 && map[src[i]] >= 0) (*dst)[(*nd)++] = map[src[i]];
    return KILN_OK;
}

/* A tensor header sharing t's data (the copy does not own it); strings and
 * containers, which own what their elements point to, are copied. */
static kiln_status borrow_tensor(const kiln_tensor *t, kiln_tensor **out) {
    *out = NULL;
    if (!t) return KILN_OK;
    if (t->dtype == KILN_DTYPE_STRING || kiln__is_container(t->dtype)) return copy_tensor(t, out);
    kiln_tensor *b = malloc(sizeof *b);
    if (!b) return oom();
    *b = *t;
    b->owns = 0;
    *out = b;
    return KILN_OK;
}

/* d = copy of s; its constant data: copied (INIT_COPY), left out (INIT_NONE:
 * the caller moves it over) or borrowed (INIT_BORROW). */
enum { INIT_COPY = 0, INIT_NONE = 1, INIT_BORROW = 2 };
static kiln_status copy_value(kiln__value *d, const kiln__value *s, int no_init) {
    d->kind = s->kind;
    d->dtype = s->dtype;
    d->ndim = s->ndim;
    d->producer = s->producer;
    d->is_output = s->is_output;
    d->has_type = s->has_type;
    d->container = s->container;
    d->container_inner = s->container_inner;
    d->is_sequence = s->is_sequence;
    int failed = 0;
    for (int k = 0; k < KILN_MAX_DIMS; k++) {
        d->dims[k].v = s->dims[k].v;
        d->dims[k].sym = dup_or_null(s->dims[k].sym, &failed);
    }
    if (failed) return oom();
    return no_init == INIT_NONE     ? KILN_OK
           : no_init == INIT_BORROW ? borrow_tensor(s->init, &d->init)
                                    : copy_tensor(s->init, &d->init);
}

/* Copy of g under parent; keep (per value of g, may be NULL: all) selects
 * the values to copy. Node references to dropped values must not exist.
 * no_init: constant data is left out (the caller moves it over). */
static kiln_graph *clone_graph(const kiln_graph *g, kiln_graph *parent, const unsigned char *keep,
                               int no_init) {
    kiln_graph *c = kiln__graph_new(parent);
    int *map = malloc(((size_t)g->n_values + 1) * sizeof *map);
    int failed = !c || !map;
    for (int v = 0; !failed && v < g->n_values; v++) {
        map[v] = -1;
        if (keep && !keep[v]) continue;
        int nv = kiln__graph_add_value(c, g->values[v].name);
        if (nv < 0 || copy_value(&c->values[nv], &g->values[v], no_init) != KILN_OK)
            failed = 1;
        map[v] = nv;
    }
    for (int i = 0; !failed && i < g->n_nodes; i++) {
        const kiln__node *s = &g->nodes[i];
        int ni = kiln__graph_add_node(c, s->name, s->op_type, s->domain, s->n_in, s->n_out);
        if (ni < 0) {
            failed = 1;
            break;
        }
        kiln__node *d = &c->nodes[ni];
        d->op = s->op;
        d->opset = s->opset;
        d->n_implicit = s->n_implicit;
        for (int k = 0; k < s->n_in; k++) d->in[k] = s->in[k] >= 0 ? map[s->in[k]] : -1;
        for (int k = 0; k < s->n_out; k++) d->out[k] = s->out[k] >= 0 ? map[s->out[k]] : -1;
        if (s->n_attr > 0) {
            if (!(d->attr = calloc((size_t)s->n_attr, sizeof *d->attr))) {
                failed = 1;
                break;
            }
            for (int a = 0; a < s->n_attr && !failed; a++, d->n_attr++)
                if (kiln__attr_copy(&d->attr[a], &s->attr[a], c) != KILN_OK) failed = 1;
        }
    }
    if (!failed)
        failed = remap_list(g->inputs, g->n_inputs, map, &c->inputs, &c->n_inputs) ||
                 remap_list(g->outputs, g->n_outputs, map, &c->outputs, &c->n_outputs) ||
                 remap_list(g->outer, g->n_outer, map, &c->outer, &c->n_outer) ||
                 remap_list(g->inits, g->n_inits, map, &c->inits, &c->n_inits);
    if (!failed && g->n_opsets > 0) {
        if (!(c->opsets = calloc((size_t)g->n_opsets, sizeof *c->opsets))) failed = 1;
        for (int i = 0; !failed && i < g->n_opsets; i++, c->n_opsets++) {
            c->opsets[i].version = g->opsets[i].version;
            c->opsets[i].domain = dup_or_null(g->opsets[i].domain, &failed);
        }
    }
    if (!failed) {
        c->ir_version = g->ir_version;
        c->model_version = g->model_version;
        c->name = dup_or_null(g->name, &failed);
        c->path = dup_or_null(g->path, &failed);
        c->producer_name = dup_or_null(g->producer_name, &failed);
        c->producer_version = dup_or_null(g->producer_version, &failed);
        c->doc = dup_or_null(g->doc, &failed);
    }
    free(map);
    if (failed) {
        kiln_graph_free(c);
        oom();
        return NULL;
    }
    return c;
}

kiln_graph *kiln__graph_clone(const kiln_graph *g) { return clone_graph(g, g->parent, NULL, INIT_COPY); }

kiln_graph *kiln__graph_clone_borrowing(const kiln_graph *g) {
    return clone_graph(g, g->parent, NULL, INIT_BORROW);
}

/* Points the subgraphs of g's nodes at g (after g's struct moved). */
static void reparent(kiln_graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        for (int a = 0; a < g->nodes[i].n_attr; a++) {
            kiln__attr *at = &g->nodes[i].attr[a];
            if (at->g) at->g->parent = g;
            for (int j = 0; at->graphs && j < at->n; j++)
                if (at->graphs[j]) at->graphs[j]->parent = g;
        }
}

kiln_status kiln__graph_compact(kiln_graph *g) {
    unsigned char *keep = calloc((size_t)g->n_values + 1, 1);
    if (!keep) return oom();
    int dropped = g->n_values;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln__node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) keep[n->in[k]] = 1;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0) keep[n->out[k]] = 1;
    }
    for (int i = 0; i < g->n_inputs; i++) keep[g->inputs[i]] = 1;
    for (int i = 0; i < g->n_outputs; i++) keep[g->outputs[i]] = 1;
    for (int i = 0; i < g->n_outer; i++) keep[g->outer[i]] = 1;
    for (int v = 0; v < g->n_values; v++) dropped -= keep[v];
    if (dropped == 0) {
        free(keep);
        return KILN_OK;
    }
    /* the copy is made without the weights, which move over once it exists */
    kiln_graph *c = clone_graph(g, g->parent, keep, 1);
    if (!c) {
        free(keep);
        return KILN_E_NOMEM;
    }
    for (int v = 0, nv = 0; v < g->n_values; v++) {
        if (!keep[v]) continue;
        c->values[nv].init = g->values[v].init;
        g->values[v].init = NULL;
        nv++;
    }
    free(keep);
    kiln_graph tmp = *g;
    *g = *c;
    *c = tmp;
    kiln_graph_free(c); /* the old contents */
    reparent(g);
    return kiln__graph_finalize(g);
}
