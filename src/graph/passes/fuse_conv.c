/* src/graph/passes/fuse_conv.c: Conv epilogues.
 *   Conv(X, W, B?) [+ per-channel constant] [+ Z] [act] -> kiln.FusedConv(X, W, B', Z?)
 * with the constant added into B', Z a value of the Conv output's shape and
 * the Conv attributes copied. f32 weights only. Skipped while kiln has no
 * FusedConv op. */
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

/* A constant that broadcasts per output channel over (N,K,spatial...). */
static int bias_ok(kiln__px *p, int c, void *arg) {
    const kiln_tensor *w = arg, *t = kiln__px_const(p, c);
    int r = w->ndim;
    if (t->dtype != KILN_DTYPE_F32 || t->ndim > r) return 0;
    for (int d = 0; d < t->ndim; d++) {
        int axis = r - t->ndim + d; /* axis of the output this dim lines up with */
        int64_t want = axis == 1 ? w->dims[0] : 1;
        if (t->dims[d] != want && t->dims[d] != 1) return 0;
    }
    return 1;
}

/* B' = B + c as a (K) initializer; -1 on OOM. */
static int merged_bias(kiln__px *p, int b, int c, int64_t k) {
    kiln_tensor *nb;
    if (kiln_tensor_create(KILN_DTYPE_F32, 1, &k, &nb) != KILN_OK) return -1;
    float *d = nb->data;
    const kiln_tensor *bt = b >= 0 ? kiln__px_const(p, b) : NULL, *ct = kiln__px_const(p, c);
    int64_t nc = kiln_tensor_numel(ct);
    for (int64_t j = 0; j < k; j++)
        d[j] = (bt ? ((const float *)bt->data)[j] : 0.0f) + ((const float *)ct->data)[nc == 1 ? 0 : j];
    return kiln__px_add_init(p, p->g->values[c].name, nb);
}

static kiln_status try_fuse(kiln__px *p, int i) {
    kiln_graph *g = p->g;
    const kiln__node *n = &g->nodes[i];
    int ne = n->n_in - n->n_implicit;
    int x = n->in[0], y = n->out[0], b = ne > 2 ? n->in[2] : -1;
    const kiln_tensor *w = ne > 1 ? kiln__px_const(p, n->in[1]) : NULL;
    if (x < 0 || y < 0 || !w || w->dtype != KILN_DTYPE_F32 || w->ndim < 3) return KILN_OK;
    const kiln_tensor *bt = b >= 0 ? kiln__px_const(p, b) : NULL;
    if (b >= 0 && (!bt || bt->dtype != KILN_DTYPE_F32 || kiln_tensor_numel(bt) != w->dims[0])) return KILN_OK;
    kiln__px_epi e;
    kiln__px_match_epilogue(p, y, bias_ok, (void *)w, &e);
    if (e.bias < 0 && e.z < 0 && e.act.act.kind == KILN__ACT_NONE) return KILN_OK;
    if (e.bias >= 0 && (b = merged_bias(p, b, e.bias, w->dims[0])) < 0) return KILN_E_NOMEM;
    int f = kiln__px_add_node(p, g->nodes[i].name, "FusedConv", "kiln", e.z >= 0 ? 4 : 3, 1);
    if (f < 0) return KILN_E_NOMEM;
    kiln__node *fn = &g->nodes[f];
    fn->in[0] = x;
    fn->in[1] = g->nodes[i].in[1];
    fn->in[2] = b;
    if (e.z >= 0) fn->in[3] = e.z;
    fn->out[0] = e.out;
    KILN__TRY(kiln__px_copy_attrs(p, f, i));
    KILN__TRY(kiln__px_set_act(p, f, &e.act.act));
    KILN__TRY(kiln__px_need_opset(p, "kiln", 1));
    kiln__px_kill(p, i);
    kiln__px_kill_epilogue(p, &e);
    g->values[e.out].producer = f;
    p->count++;
    return KILN_OK;
}

kiln_status kiln__pass_conv(kiln__px *p) {
    if (kiln__op_find("kiln", "FusedConv") < 0) return KILN_OK;
    for (int i = 0; i < p->g->n_nodes; i++)
        if (kiln__px_is(p, i, "Conv")) KILN__TRY(try_fuse(p, i));
    return KILN_OK;
}
