/* src/graph/passes/dead.c: nodes that compute nothing (Identity, Dropout in
 * inference, Cast to the dtype it already has) and nodes whose outputs reach
 * no graph output. */
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

kiln_status kiln__pass_identity(kiln__px *p) {
    kiln_graph *g = p->g;
    for (int i = 0; i < g->n_nodes; i++) {
        kiln__node *n = &g->nodes[i];
        if (n->n_in - n->n_implicit < 1 || n->in[0] < 0 || n->n_out < 1 || n->out[0] < 0) continue;
        int drop = 0;
        if (kiln__px_is(p, i, "Identity")) {
            drop = !g->values[n->in[0]].container && !g->values[n->out[0]].container;
        } else if (kiln__px_is(p, i, "Dropout")) {
            drop = dropout_is_identity(p, i);
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
