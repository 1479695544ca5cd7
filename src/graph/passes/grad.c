/* src/graph/passes/grad.c: the grad pass (graph/optimize.h), fusions among
 * the gradient nodes that autograd adds (src/train/).
 *
 *   D = kiln.ReluGrad(A, R), A = kiln.MaxPoolGrad(dY, R)
 *     -> D = kiln.MaxPoolGrad(dY, R) with relu = 1
 *
 * The network's Relu -> MaxPool, backwards: the max-pool gradient sends dY[o]
 * to the first maximum of window o in R and ReluGrad keeps it where R > 0, so
 * one pass over R can do both (src/cpu/ref/pool.c). A must be read by the
 * ReluGrad alone and the two must read the same R. */
#include <string.h>

#include "graph/passes/passes.h"

/* 1 if node i is a live kiln-domain node of type op. */
static int is_kiln(kiln__px *p, int i, const char *op) {
    if (i < 0 || p->dead[i]) return 0;
    const kiln__node *n = &p->g->nodes[i];
    return strcmp(n->domain, "kiln") == 0 && strcmp(n->op_type, op) == 0;
}

kiln_status kiln__pass_grad(kiln__px *p) {
    kiln_graph *g = p->g;
    for (int i = 0; i < g->n_nodes; i++) {
        if (!is_kiln(p, i, "ReluGrad")) continue;
        const kiln__node *rg = &g->nodes[i];
        if (rg->n_in - rg->n_implicit != 2 || rg->in[0] < 0 || rg->in[1] < 0 || rg->n_out != 1)
            continue;
        const int a = rg->in[0], r = rg->in[1], m = kiln__px_producer(p, a);
        if (!is_kiln(p, m, "MaxPoolGrad") || kiln__px_pinned(p, a) || kiln__px_uses(p, a) != 1) continue;
        const kiln__node *mp = &g->nodes[m];
        if (mp->n_in - mp->n_implicit != 2 || mp->in[1] != r || kiln__attr_i(mp, "relu", 0) != 0) continue;
        if (!kiln__px_bypass(p, i, a)) continue;
        KILN__TRY(kiln__px_attr_int(p, m, "relu", 1));
        p->count++;
    }
    return KILN_OK;
}
