/* src/graph/passes/epilogue.c: the bias / residual / activation chain after a
 * MatMul or Conv that kiln's fused ops compute (passes.h, ops/fused.h). */
#include <stdio.h>
#include <string.h>

#include "graph/passes/passes.h"

/* Add node consuming v alone: the other operand, or -1. */
static int add_operand(kiln__px *p, int v, int *node) {
    int a = kiln__px_sole_user(p, v, NULL);
    if (!kiln__px_is(p, a, "Add")) return -1;
    const kiln__node *n = &p->g->nodes[a];
    if (n->n_in != 2 || n->in[0] == n->in[1]) return -1;
    *node = a;
    return n->in[0] == v ? n->in[1] : n->in[0];
}

void kiln__px_match_epilogue(kiln__px *p, int y, int (*bias_ok)(kiln__px *, int, void *), void *arg,
                             kiln__px_epi *e) {
    memset(e, 0, sizeof *e);
    e->bias_node = e->bias = e->res_node = e->z = -1;
    e->act.nodes[0] = e->act.nodes[1] = -1;
    e->out = y;
    int node, o = add_operand(p, e->out, &node);
    if (o >= 0 && kiln__px_const(p, o) && bias_ok(p, o, arg)) {
        e->bias_node = node;
        e->bias = o;
        e->out = p->g->nodes[node].out[0];
        o = add_operand(p, e->out, &node);
    }
    if (o >= 0 && !kiln__px_const(p, o) && kiln__px_same_shape(p, o, e->out)) {
        e->res_node = node;
        e->z = o;
        e->out = p->g->nodes[node].out[0];
    }
    if (kiln__px_match_act(p, e->out, &e->act)) e->out = e->act.out;
    else e->act.act.kind = KILN__ACT_NONE;
}

void kiln__px_kill_epilogue(kiln__px *p, const kiln__px_epi *e) {
    if (e->bias_node >= 0) kiln__px_kill(p, e->bias_node);
    if (e->res_node >= 0) kiln__px_kill(p, e->res_node);
    for (int k = 0; k < 2; k++)
        if (e->act.act.kind != KILN__ACT_NONE && e->act.nodes[k] >= 0) kiln__px_kill(p, e->act.nodes[k]);
}

kiln_status kiln__px_set_act_attr(kiln__px *p, int i, const char *attr, const kiln__act *a) {
    if (a->kind == KILN__ACT_NONE) return KILN_OK;
    KILN__TRY(kiln__px_attr_string(p, i, attr, kiln__act_name(a->kind)));
    if (a->kind != KILN__ACT_CLIP) return KILN_OK;
    char params[64];
    snprintf(params, sizeof params, "%s_params", attr);
    float prm[2] = {a->lo, a->hi};
    return kiln__px_attr_floats(p, i, params, 2, prm);
}

kiln_status kiln__px_set_act(kiln__px *p, int i, const kiln__act *a) {
    return kiln__px_set_act_attr(p, i, "activation", a);
}
