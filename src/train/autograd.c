/* src/train/autograd.c: the autograd driver (autograd.h).
 *
 * 1. Marks the values that depend on wrt (forward through float outputs) and
 *    the nodes on a path from wrt to y (those with such an output that y
 *    depends on).
 * 2. Seeds y's gradient with dy, then visits those nodes in reverse
 *    topological order: a node whose outputs received gradients calls its rule
 *    (grad.h), which adds the nodes computing its inputs' gradients; several
 *    contributions to one value are summed with Add as they arrive.
 * 3. Finalizes the graph, which puts the new nodes in order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/autograd.h"
#include "train/grad.h"

static int is_float(kiln_dtype dt) {
    return dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F64 || dt == KILN_DTYPE_F16 ||
           dt == KILN_DTYPE_BF16 || dt == KILN_DTYPE_UNDEFINED;
}

/* depends[v] = 1 if v is a float value computed from some wrt value. */
static void mark_forward(kiln__px *p, int n, const int *wrt, unsigned char *depends) {
    const kiln_graph *g = p->g;
    for (int i = 0; i < n; i++) depends[wrt[i]] = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln__node *nd = &g->nodes[i];
        int any = 0;
        for (int k = 0; k < nd->n_in && !any; k++) any = nd->in[k] >= 0 && depends[nd->in[k]];
        if (!any) continue;
        for (int k = 0; k < nd->n_out; k++)
            if (nd->out[k] >= 0 && is_float(kiln__px_dtype(p, nd->out[k]))) depends[nd->out[k]] = 1;
    }
}

/* reaches[v] = 1 if y is computed from v (or is v). */
static void mark_backward(const kiln_graph *g, int y, unsigned char *reaches) {
    reaches[y] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const kiln__node *nd = &g->nodes[i];
        int any = 0;
        for (int k = 0; k < nd->n_out && !any; k++) any = nd->out[k] >= 0 && reaches[nd->out[k]];
        if (!any) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0) reaches[nd->in[k]] = 1;
    }
}

/* grad[v] += c (a new Add node when v already has a gradient). */
static kiln_status accumulate(kiln__px *p, int *grad, int v, int c) {
    if (grad[v] < 0) {
        grad[v] = c;
        return KILN_OK;
    }
    char base[256];
    snprintf(base, sizeof base, "grad_%.200s", p->g->values[v].name);
    int i = kiln__px_add_node(p, base, "Add", "", 2, 1);
    int s = i >= 0 ? kiln__px_new_value(p, base) : -1;
    if (s < 0) return KILN_E_NOMEM;
    kiln__node *nd = &p->g->nodes[i];
    nd->in[0] = grad[v];
    nd->in[1] = c;
    nd->out[0] = s;
    grad[v] = s;
    return KILN_OK;
}

/* Runs the rule of node i, whose outputs' gradients are in grad. */
static kiln_status visit(kiln__px *p, int i, const unsigned char *depends, int *grad) {
    const kiln__node *nd = &p->g->nodes[i];
    int n_in = nd->n_in - nd->n_implicit, n_out = nd->n_out, any = 0;
    char desc[256];
    for (int k = 0; k < n_out; k++) any |= nd->out[k] >= 0 && grad[nd->out[k]] >= 0;
    if (!any) return KILN_OK;
    kiln__grad_rule rule = kiln__grad_rule_find(nd->domain, nd->op_type);
    if (!rule)
        return kiln__err(KILN_E_UNSUPPORTED, "autograd: %s has no gradient rule",
                         kiln__node_desc(nd, desc, sizeof desc));
    int *dy = malloc(((size_t)n_out + 2 * (size_t)n_in + 1) * sizeof *dy);
    unsigned char *need = malloc((size_t)n_in + 1);
    kiln_status s = KILN_E_NOMEM;
    if (!dy || !need) goto done;
    int *dx = dy + n_out;
    for (int k = 0; k < n_out; k++) dy[k] = nd->out[k] >= 0 ? grad[nd->out[k]] : -1;
    for (int k = 0; k < n_in; k++) {
        need[k] = nd->in[k] >= 0 && depends[nd->in[k]];
        dx[k] = -1;
    }
    kiln__grad_ctx gc = {.p = p, .node = i, .dy = dy, .n_dy = n_out, .need = need, .dx = dx};
    s = rule(&gc);
    if (s == KILN_OK) s = gc.status;
    for (int k = 0; k < n_in && s == KILN_OK; k++) {
        int v = p->g->nodes[i].in[k]; /* nodes may have moved */
        if (need[k] && dx[k] >= 0) s = accumulate(p, grad, v, dx[k]);
    }
done:
    if (s == KILN_E_NOMEM && !dy) kiln__err(s, "out of memory");
    free(dy);
    free(need);
    return s;
}

kiln_status kiln__autograd(kiln_graph *g, int y, int dy, int n, const int *wrt, int *grads) {
    kiln__opt_options opt = {0};
    kiln__px p;
    kiln_status s = kiln__px_init(&p, g, &opt);
    int nv = g->n_values, nn = g->n_nodes;
    unsigned char *depends = calloc((size_t)nv + 1, 1), *reaches = calloc((size_t)nv + 1, 1);
    int *grad = malloc(((size_t)nv + 1) * sizeof *grad);
    if (s == KILN_OK && (!depends || !reaches || !grad))
        s = kiln__err(KILN_E_NOMEM, "out of memory");
    for (int i = 0; i < n && s == KILN_OK; i++)
        if (wrt[i] < 0 || wrt[i] >= nv) s = kiln__err(KILN_E_INVAL, "autograd: bad value %d", wrt[i]);
    if (s == KILN_OK && (y < 0 || y >= nv || dy < 0 || dy >= nv))
        s = kiln__err(KILN_E_INVAL, "autograd: bad output or seed value");
    if (s == KILN_OK) s = kiln__px_need_opset(&p, "kiln", 1);
    if (s != KILN_OK) goto done;
    mark_forward(&p, n, wrt, depends);
    mark_backward(g, y, reaches);
    for (int v = 0; v < nv; v++) {
        depends[v] &= reaches[v];
        grad[v] = -1;
    }
    if (depends[y]) grad[y] = dy;
    /* nodes added below come after nn and are never visited */
    for (int i = nn - 1; i >= 0 && s == KILN_OK; i--) s = visit(&p, i, depends, grad);
    for (int i = 0; i < n && s == KILN_OK; i++) grads[i] = depends[wrt[i]] ? grad[wrt[i]] : -1;
    if (s == KILN_OK) s = kiln__px_sweep(&p);
done:
    free(depends);
    free(reaches);
    free(grad);
    kiln__px_free(&p);
    return s;
}
