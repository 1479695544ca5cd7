/* src/graph/passes/edit.c: queries and edits the passes share (passes.h). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

static kiln_status oom(void) { return kiln__err(KILN_E_NOMEM, "out of memory"); }

/* ---- bookkeeping ---------------------------------------------------------------- */

/* Makes room for per-node and per-value state after graph growth. */
static kiln_status grow(kiln__px *p) {
    const kiln_graph *g = p->g;
    if (g->n_nodes >= p->cap_dead) {
        int cap = g->n_nodes * 2 + 16;
        unsigned char *d = realloc(p->dead, (size_t)cap);
        if (!d) return oom();
        memset(d + p->cap_dead, 0, (size_t)(cap - p->cap_dead));
        p->dead = d;
        p->cap_dead = cap;
    }
    if (g->n_values >= p->cap_uses) {
        int cap = g->n_values * 2 + 16;
        int *u = realloc(p->uses, (size_t)cap * sizeof *u);
        if (u) p->uses = u;
        unsigned char *c = u ? realloc(p->captured, (size_t)cap) : NULL;
        if (!c) return oom();
        p->captured = c;
        p->cap_uses = cap;
    }
    p->uses_valid = 0;
    return KILN_OK;
}

static void count_uses(kiln__px *p) {
    const kiln_graph *g = p->g;
    memset(p->uses, 0, (size_t)g->n_values * sizeof *p->uses);
    memset(p->captured, 0, (size_t)g->n_values);
    for (int i = 0; i < g->n_nodes; i++) {
        if (p->dead[i]) continue;
        const kiln__node *n = &g->nodes[i];
        int ne = n->n_in - n->n_implicit;
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] < 0) continue;
            if (k < ne) p->uses[n->in[k]]++;
            else p->captured[n->in[k]] = 1;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) p->uses[g->outputs[i]]++;
    p->uses_valid = 1;
}

/* ---- queries ------------------------------------------------------------------------ */

int kiln__px_is(kiln__px *p, int i, const char *op) {
    if (i < 0 || p->dead[i]) return 0;
    const kiln__node *n = &p->g->nodes[i];
    return n->domain[0] == 0 && strcmp(n->op_type, op) == 0;
}

int kiln__px_uses(kiln__px *p, int v) {
    if (!p->uses_valid) count_uses(p);
    return p->uses[v];
}

int kiln__px_pinned(kiln__px *p, int v) {
    const kiln__value *val = &p->g->values[v];
    if (!p->uses_valid) count_uses(p);
    return val->is_output || val->kind == KILN__VAL_INPUT || val->kind == KILN__VAL_OUTER ||
           p->captured[v];
}

int kiln__px_producer(kiln__px *p, int v) {
    if (v < 0) return -1;
    int i = p->g->values[v].producer;
    return i >= 0 && i < p->g->n_nodes && !p->dead[i] ? i : -1;
}

int kiln__px_sole_user(kiln__px *p, int v, int *slot) {
    if (v < 0 || kiln__px_pinned(p, v) || kiln__px_uses(p, v) != 1) return -1;
    const kiln_graph *g = p->g;
    for (int i = 0; i < g->n_nodes; i++) {
        if (p->dead[i]) continue;
        const kiln__node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in - n->n_implicit; k++)
            if (n->in[k] == v) {
                if (slot) *slot = k;
                return i;
            }
    }
    return -1;
}

int kiln__px_absorb(kiln__px *p, int v, const char *op) {
    int i = kiln__px_producer(p, v);
    if (i < 0 || !kiln__px_is(p, i, op) || kiln__px_pinned(p, v) || kiln__px_uses(p, v) != 1) return -1;
    return i;
}

const kiln_tensor *kiln__px_const(kiln__px *p, int v) {
    if (v < 0) return NULL;
    const kiln__value *val = &p->g->values[v];
    return val->kind == KILN__VAL_INIT && val->init && val->init->data ? val->init : NULL;
}

int kiln__px_scalar(kiln__px *p, int v, double *x) {
    const kiln_tensor *t = kiln__px_const(p, v);
    if (!t || kiln_tensor_numel(t) != 1) return 0;
    if (!kiln__dtype_is_float(t->dtype) && !kiln__dtype_is_int(t->dtype)) return 0;
    *x = kiln__ld_f(t->dtype, t->data, 0);
    return 1;
}

int kiln__px_scalar_is(kiln__px *p, int v, double want, double rel) {
    double x;
    return kiln__px_scalar(p, v, &x) && fabs(x - want) <= rel * fabs(want);
}

int kiln__px_rank(kiln__px *p, int v) {
    if (v < 0) return -1;
    const kiln_tensor *t = kiln__px_const(p, v);
    if (t) return t->ndim;
    const kiln__value *val = &p->g->values[v];
    return val->container ? -1 : val->ndim;
}

int kiln__px_dim_eq(const kiln__dim *a, const kiln__dim *b) {
    if (a->v >= 0 || b->v >= 0) return a->v == b->v;
    return a->sym && b->sym && strcmp(a->sym, b->sym) == 0;
}

int kiln__px_same_shape(kiln__px *p, int a, int b) {
    if (a == b) return a >= 0;
    int ra = kiln__px_rank(p, a), rb = kiln__px_rank(p, b);
    if (ra < 0 || ra != rb) return 0;
    const kiln_tensor *ta = kiln__px_const(p, a), *tb = kiln__px_const(p, b);
    for (int d = 0; d < ra; d++) {
        kiln__dim da = ta ? (kiln__dim){ta->dims[d], NULL} : p->g->values[a].dims[d];
        kiln__dim db = tb ? (kiln__dim){tb->dims[d], NULL} : p->g->values[b].dims[d];
        if (!kiln__px_dim_eq(&da, &db)) return 0;
    }
    return 1;
}

kiln_dtype kiln__px_dtype(kiln__px *p, int v) {
    if (v < 0) return KILN_DTYPE_UNDEFINED;
    const kiln_tensor *t = kiln__px_const(p, v);
    if (t) return t->dtype;
    const kiln__value *val = &p->g->values[v];
    if (val->container) return KILN_DTYPE_UNDEFINED;
    if (val->dtype != KILN_DTYPE_UNDEFINED) return val->dtype;
    int pr = kiln__px_producer(p, v);
    if (kiln__px_is(p, pr, "Cast")) {
        int64_t to = kiln__attr_i(&p->g->nodes[pr], "to", 0);
        if (kiln_dtype_valid((int)to)) return (kiln_dtype)to;
    }
    return KILN_DTYPE_UNDEFINED;
}

int kiln__px_ints(kiln__px *p, int i, int from_attr, const char *name, int in, int64_t *v, int max) {
    const kiln__node *n = &p->g->nodes[i];
    if (from_attr) {
        const int64_t *a;
        int k = kiln__attr_ints(n, name, &a);
        if (k < 0 || k > max) return -1;
        memcpy(v, a, (size_t)k * sizeof *v);
        return k;
    }
    if (in >= n->n_in - n->n_implicit || n->in[in] < 0) return -1;
    const kiln_tensor *t = kiln__px_const(p, n->in[in]);
    if (!t || !kiln__dtype_is_int(t->dtype) || t->ndim > 1 || kiln_tensor_numel(t) > max) return -1;
    int k = (int)kiln_tensor_numel(t);
    for (int j = 0; j < k; j++) v[j] = kiln__ld_i(t->dtype, t->data, j);
    return k;
}

/* ---- edits ---------------------------------------------------------------------------- */

void kiln__px_kill(kiln__px *p, int i) {
    p->dead[i] = 1;
    p->uses_valid = 0;
}

void kiln__px_replace_uses(kiln__px *p, int from, int to) {
    kiln_graph *g = p->g;
    for (int i = 0; i < g->n_nodes; i++) {
        if (p->dead[i]) continue;
        kiln__node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in - n->n_implicit; k++)
            if (n->in[k] == from) n->in[k] = to;
    }
    p->uses_valid = 0;
}

int kiln__px_bypass(kiln__px *p, int i, int x) {
    kiln__node *n = &p->g->nodes[i];
    int y = n->out[0];
    if (x < 0 || y < 0) return 0;
    if (!kiln__px_pinned(p, y)) {
        kiln__px_kill(p, i);
        kiln__px_replace_uses(p, y, x);
        return 1;
    }
    /* y keeps its name: x's producer writes y */
    int pr = kiln__px_producer(p, x);
    if (pr < 0 || kiln__px_pinned(p, x) || p->g->values[x].kind != KILN__VAL_INTERMEDIATE ||
        p->g->values[y].kind != KILN__VAL_INTERMEDIATE)
        return 0;
    kiln__px_kill(p, i);
    kiln__px_replace_uses(p, x, y);
    kiln__node *pn = &p->g->nodes[pr];
    for (int k = 0; k < pn->n_out; k++)
        if (pn->out[k] == x) pn->out[k] = y;
    p->g->values[y].producer = pr;
    p->g->values[x].producer = -1;
    return 1;
}

int kiln__px_new_value(kiln__px *p, const char *base) {
    char name[512];
    int v = -1;
    do snprintf(name, sizeof name, "%.400s_k%d", base, p->serial++);
    while (kiln__graph_find(p->g, name) >= 0);
    v = kiln__graph_add_value(p->g, name);
    if (v < 0 || grow(p) != KILN_OK) return -1;
    return v;
}

int kiln__px_add_init(kiln__px *p, const char *base, kiln_tensor *t) {
    kiln_graph *g = p->g;
    int *inits = realloc(g->inits, ((size_t)g->n_inits + 1) * sizeof *inits);
    if (inits) g->inits = inits;
    int v = inits ? kiln__px_new_value(p, base) : -1;
    if (v < 0) {
        kiln_tensor_free(t);
        if (!inits) oom();
        return -1;
    }
    kiln__value *val = &g->values[v];
    val->kind = KILN__VAL_INIT;
    val->init = t;
    val->dtype = t->dtype;
    val->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) val->dims[d].v = t->dims[d];
    g->inits[g->n_inits++] = v;
    return v;
}

int kiln__px_add_node(kiln__px *p, const char *base, const char *op_type, const char *domain,
                      int n_in, int n_out) {
    char name[512];
    snprintf(name, sizeof name, "%.400s_k%d", base && base[0] ? base : op_type, p->serial++);
    int i = kiln__graph_add_node(p->g, name, op_type, domain, n_in, n_out);
    if (i < 0 || grow(p) != KILN_OK) return -1;
    p->dead[i] = 0;
    p->g->nodes[i].opset = (int)kiln__graph_opset(p->g, domain);
    return i;
}

kiln_status kiln__px_set_n_in(kiln__px *p, int i, int n) {
    kiln__node *nd = &p->g->nodes[i];
    int ne = nd->n_in - nd->n_implicit;
    int *in = malloc(((size_t)n + nd->n_implicit + 1) * sizeof *in);
    if (!in) return oom();
    for (int k = 0; k < n; k++) in[k] = k < ne ? nd->in[k] : -1;
    for (int k = 0; k < nd->n_implicit; k++) in[n + k] = nd->in[ne + k];
    free(nd->in);
    nd->in = in;
    nd->n_in = n + nd->n_implicit;
    p->uses_valid = 0;
    return KILN_OK;
}

/* Slot for attribute name on node i (cleared if it existed), or NULL. */
static kiln__attr *attr_slot(kiln__px *p, int i, const char *name) {
    kiln__node *n = &p->g->nodes[i];
    for (int a = 0; a < n->n_attr; a++)
        if (strcmp(n->attr[a].name, name) == 0) {
            kiln__attr_clear(&n->attr[a]);
            if (!(n->attr[a].name = kiln__strdup(name))) return NULL;
            return &n->attr[a];
        }
    kiln__attr *at = realloc(n->attr, ((size_t)n->n_attr + 1) * sizeof *at);
    if (!at) return NULL;
    n->attr = at;
    kiln__attr *a = &n->attr[n->n_attr];
    memset(a, 0, sizeof *a);
    if (!(a->name = kiln__strdup(name))) return NULL;
    n->n_attr++;
    return a;
}

kiln_status kiln__px_attr_int(kiln__px *p, int i, const char *name, int64_t v) {
    kiln__attr *a = attr_slot(p, i, name);
    if (!a) return oom();
    a->type = KILN__ATTR_INT;
    a->i = v;
    return KILN_OK;
}

kiln_status kiln__px_attr_float(kiln__px *p, int i, const char *name, float v) {
    kiln__attr *a = attr_slot(p, i, name);
    if (!a) return oom();
    a->type = KILN__ATTR_FLOAT;
    a->f = v;
    return KILN_OK;
}

kiln_status kiln__px_attr_ints(kiln__px *p, int i, const char *name, int n, const int64_t *v) {
    kiln__attr *a = attr_slot(p, i, name);
    if (!a) return oom();
    a->type = KILN__ATTR_INTS;
    if (!(a->ints = malloc((size_t)n * sizeof *v + 1))) return oom();
    memcpy(a->ints, v, (size_t)n * sizeof *v);
    a->n = n;
    return KILN_OK;
}

kiln_status kiln__px_attr_floats(kiln__px *p, int i, const char *name, int n, const float *v) {
    kiln__attr *a = attr_slot(p, i, name);
    if (!a) return oom();
    a->type = KILN__ATTR_FLOATS;
    if (!(a->floats = malloc((size_t)n * sizeof *v + 1))) return oom();
    memcpy(a->floats, v, (size_t)n * sizeof *v);
    a->n = n;
    return KILN_OK;
}

kiln_status kiln__px_attr_string(kiln__px *p, int i, const char *name, const char *s) {
    kiln__attr *a = attr_slot(p, i, name);
    if (!a) return oom();
    a->type = KILN__ATTR_STRING;
    if (!(a->s = kiln__strdup(s))) return oom();
    a->s_len = strlen(s);
    return KILN_OK;
}

kiln_status kiln__px_copy_attrs(kiln__px *p, int dst, int src) {
    return kiln__px_copy_attrs_except(p, dst, src, NULL);
}

kiln_status kiln__px_copy_attrs_except(kiln__px *p, int dst, int src, const char *prefix) {
    int n = p->g->nodes[src].n_attr;
    for (int a = 0; a < n; a++) {
        if (prefix && strncmp(p->g->nodes[src].attr[a].name, prefix, strlen(prefix)) == 0) continue;
        kiln__attr copy;
        KILN__TRY(kiln__attr_copy(&copy, &p->g->nodes[src].attr[a], p->g));
        kiln__attr *slot = attr_slot(p, dst, copy.name);
        if (!slot) {
            kiln__attr_clear(&copy);
            return oom();
        }
        kiln__attr_clear(slot);
        *slot = copy;
    }
    return KILN_OK;
}

kiln_status kiln__px_need_opset(kiln__px *p, const char *domain, int64_t version) {
    kiln_graph *g = p->g;
    if (kiln__graph_opset(g, domain) > 0 || g->parent) return KILN_OK;
    kiln__opset *o = realloc(g->opsets, ((size_t)g->n_opsets + 1) * sizeof *o);
    if (!o) return oom();
    g->opsets = o;
    if (!(o[g->n_opsets].domain = kiln__strdup(domain))) return oom();
    o[g->n_opsets++].version = version;
    return KILN_OK;
}

/* ---- activations ------------------------------------------------------------------------ */

/* Clip bounds of node i when constant: 1 and (*lo, *hi), else 0. */
static int clip_bounds(kiln__px *p, int i, float *lo, float *hi) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->opset < 11) {
        *lo = kiln__attr_f(n, "min", -FLT_MAX);
        *hi = kiln__attr_f(n, "max", FLT_MAX);
        return 1;
    }
    *lo = -INFINITY;
    *hi = INFINITY;
    double x;
    int ne = n->n_in - n->n_implicit;
    if (ne > 1 && n->in[1] >= 0) {
        if (!kiln__px_scalar(p, n->in[1], &x)) return 0;
        *lo = (float)x;
    }
    if (ne > 2 && n->in[2] >= 0) {
        if (!kiln__px_scalar(p, n->in[2], &x)) return 0;
        *hi = (float)x;
    }
    return !isnan(*lo) && !isnan(*hi);
}

int kiln__px_match_act(kiln__px *p, int v, kiln__px_act *a) {
    memset(a, 0, sizeof *a);
    a->nodes[0] = a->nodes[1] = -1;
    a->act.lo = -INFINITY;
    a->act.hi = INFINITY;
    if (v < 0 || kiln__px_pinned(p, v)) return 0;
    /* x * Sigmoid(x): v feeds a Sigmoid and the Mul that takes its output */
    if (kiln__px_uses(p, v) == 2) {
        int sig = -1, mul = -1;
        const kiln_graph *g = p->g;
        for (int i = 0; i < g->n_nodes; i++) {
            if (p->dead[i]) continue;
            const kiln__node *n = &g->nodes[i];
            if (kiln__px_is(p, i, "Sigmoid") && n->n_in == 1 && n->in[0] == v) sig = i;
            else if (kiln__px_is(p, i, "Mul") && n->n_in == 2 && (n->in[0] == v || n->in[1] == v)) mul = i;
        }
        if (sig < 0 || mul < 0) return 0;
        int s = g->nodes[sig].out[0], slot;
        const kiln__node *m = &g->nodes[mul];
        if (kiln__px_sole_user(p, s, &slot) != mul || m->in[1 - slot] != v) return 0;
        a->act.kind = KILN__ACT_SILU;
        a->out = m->out[0];
        a->nodes[0] = sig;
        a->nodes[1] = mul;
        return 1;
    }
    int u = kiln__px_sole_user(p, v, NULL);
    if (u < 0 || p->g->nodes[u].n_out != 1) return 0;
    const kiln__node *n = &p->g->nodes[u];
    if (kiln__px_is(p, u, "Relu")) {
        a->act.kind = KILN__ACT_RELU;
    } else if (kiln__px_is(p, u, "Gelu")) {
        const char *ap = kiln__attr_s(n, "approximate", "none");
        if (strcmp(ap, "none") == 0) a->act.kind = KILN__ACT_GELU;
        else if (strcmp(ap, "tanh") == 0) a->act.kind = KILN__ACT_GELU_TANH;
        else return 0;
    } else if (kiln__px_is(p, u, "Clip")) {
        if (!clip_bounds(p, u, &a->act.lo, &a->act.hi)) return 0;
        a->act.kind = KILN__ACT_CLIP;
    } else {
        return 0;
    }
    a->out = n->out[0];
    a->nodes[0] = u;
    return a->out >= 0;
}

/* ---- context --------------------------------------------------------------------------- */

kiln_status kiln__px_init(kiln__px *p, kiln_graph *g, const kiln__opt_options *o) {
    memset(p, 0, sizeof *p);
    p->g = g;
    p->o = o;
    return grow(p);
}

void kiln__px_free(kiln__px *p) {
    free(p->dead);
    free(p->uses);
    free(p->captured);
    memset(p, 0, sizeof *p);
}

static void node_clear(kiln__node *n) {
    free(n->name), free(n->op_type), free(n->domain), free(n->in), free(n->out);
    for (int a = 0; a < n->n_attr; a++) kiln__attr_clear(&n->attr[a]);
    free(n->attr);
}

kiln_status kiln__px_sweep(kiln__px *p) {
    kiln_graph *g = p->g;
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (p->dead[i]) {
            node_clear(&g->nodes[i]);
            continue;
        }
        if (k != i) g->nodes[k] = g->nodes[i];
        k++;
    }
    g->n_nodes = k;
    memset(p->dead, 0, (size_t)p->cap_dead);
    p->uses_valid = 0;
    return kiln__graph_finalize(g);
}
