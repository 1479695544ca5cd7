/* src/graph/passes/dead.c: nodes that compute nothing (Identity, Dropout in
 * inference, Cast to the dtype it already has, Sum of one input) and nodes
 * whose outputs reach no graph output; and Sum of two inputs, which is Add
 * (the form the fusion passes and the fast elementwise kernels know: Caffe2
 * exports write residual connections as Sum). */
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

/* 1 if Dropout node i is the identity: inference mode and its mask unused. */
static int dropout_is_identity(kiln__px *p, int i) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->n_out > 1 && n->out[1] >= 0 && kiln__px_uses(p, n->out[1]) > 0) return 0;
    if (n->n_out > 1 && n->out[1] >= 0 && kiln__px_pinned(p, n->out[1])) return 0;
    if (n->opset < 12) return n->opset >= 7 || kiln__attr_i(n, "is_test", 0) != 0;
    int ne = n->n_in - n->n_implicit;
    if (ne < 3 || n->in[2] < 0) return 1; /* training_mode defaults to false */
    double t;
    return kiln__px_scalar(p, n->in[2], &t) && t == 0;
}

/* Replaces Sum node i of two inputs by an Add of the same operands and
 * output. Returns 1 if done, -1 out of memory. */
static int sum_to_add(kiln__px *p, int i) {
    int add = kiln__px_add_node(p, p->g->nodes[i].name, "Add", "", 2, 1);
    if (add < 0) return -1;
    const kiln__node *n = &p->g->nodes[i];
    kiln__node *a = &p->g->nodes[add];
    a->in[0] = n->in[0];
    a->in[1] = n->in[1];
    a->out[0] = n->out[0];
    p->g->values[a->out[0]].producer = add;
    kiln__px_kill(p, i);
    return 1;
}

kiln_status kiln__pass_identity(kiln__px *p) {
    kiln_graph *g = p->g;
    const int count = g->n_nodes; /* not the Add nodes this loop appends */
    for (int i = 0; i < count; i++) {
        kiln__node *n = &g->nodes[i];
        if (n->n_in - n->n_implicit < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) continue;
        const int ne = n->n_in - n->n_implicit;
        if (kiln__px_is(p, i, "Sum") && ne == 2 && n->in[1] >= 0) {
            if (sum_to_add(p, i) < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
            p->count++;
            continue;
        }
        int drop = 0;
        if (kiln__px_is(p, i, "Identity")) {
            drop = !g->values[n->in[0]].container && !g->values[n->out[0]].container;
        } else if (kiln__px_is(p, i, "Dropout")) {
            drop = dropout_is_identity(p, i);
        } else if (kiln__px_is(p, i, "Sum")) {
            drop = ne == 1;
        } else if (kiln__px_is(p, i, "Cast")) {
            kiln_dtype dt = kiln__px_dtype(p, n->in[0]);
            drop = dt != KILN_DTYPE_UNDEFINED && dt != KILN_DTYPE_STRING &&
                   kiln__attr_i(n, "to", -1) == (int64_t)dt;
        }
        if (drop && kiln__px_bypass(p, i, n->in[0])) p->count++;
    }
    return KILN_OK;
}

kiln_status kiln__pass_dead(kiln__px *p) {
    kiln_graph *g = p->g;
    unsigned char *live = calloc((size_t)g->n_values + 1, 1);
    if (!live) return kiln__err(KILN_E_NOMEM, "out of memory");
    for (int i = 0; i < g->n_outputs; i++) live[g->outputs[i]] = 1;
    /* nodes are in topological order: one backward sweep marks everything */
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        kiln__node *n = &g->nodes[i];
        int needed = 0;
        for (int k = 0; k < n->n_out && !needed; k++) needed = n->out[k] >= 0 && live[n->out[k]];
        if (!needed) {
            if (!p->dead[i]) {
                kiln__px_kill(p, i);
                p->count++;
            }
            continue;
        }
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) live[n->in[k]] = 1;
    }
    free(live);
    return KILN_OK;
}
