/* src/graph/passes/fuse_matmul.c: MatMul epilogues.
 *   MatMul(A, B) + bias            -> Gemm(A, B, bias)  (A 2-D, nothing else fused)
 *   MatMul(A, B) [+ bias] [+ Z] [act] -> kiln.FusedMatMul(A, B, bias?, Z?)
 * B is 2-D (K,N); bias a constant of N (or 1) elements along the last axis;
 * Z a value of the product's shape. f32 only (the fused epilogue's type). */
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

typedef struct mm_info {
    int64_t n;  /* columns of B */
    int rank_a; /* -1 unknown */
} mm_info;

/* A constant bias broadcast along the last axis without growing the rank. */
static int bias_ok(kiln__px *p, int c, void *arg) {
    const mm_info *m = arg;
    const kiln_tensor *t = kiln__px_const(p, c);
    int64_t n = kiln_tensor_numel(t);
    if (t->dtype != KILN_DTYPE_F32 || (n != m->n && n != 1)) return 0;
    if (t->ndim > 1 && (m->rank_a < 2 || t->ndim > m->rank_a)) return 0;
    for (int d = 0; d + 1 < t->ndim; d++)
        if (t->dims[d] != 1) return 0;
    return 1;
}

/* bias as a 1-D (n) f32 initializer; -1 on OOM. */
static int bias_vector(kiln__px *p, int c, int64_t n) {
    const kiln_tensor *t = kiln__px_const(p, c);
    kiln_tensor *b;
    if (kiln_tensor_create(KILN_DTYPE_F32, 1, &n, &b) != KILN_OK) return -1;
    const float *s = t->data;
    float *d = b->data;
    int64_t m = kiln_tensor_numel(t);
    for (int64_t j = 0; j < n; j++) d[j] = s[m == 1 ? 0 : j];
    return kiln__px_add_init(p, p->g->values[c].name, b);
}

static kiln_status try_fuse(kiln__px *p, int i, int fused_op) {
    kiln_graph *g = p->g;
    const kiln__node *n = &g->nodes[i];
    int a = n->in[0], b = n->in[1], y = n->out[0];
    if (a < 0 || b < 0 || y < 0 || kiln__px_rank(p, b) != 2) return KILN_OK;
    if (kiln__px_dtype(p, b) != KILN_DTYPE_F32 || kiln__px_dtype(p, a) != KILN_DTYPE_F32) return KILN_OK;
    const kiln_tensor *bt = kiln__px_const(p, b);
    mm_info m = {bt ? bt->dims[1] : g->values[b].dims[1].v, kiln__px_rank(p, a)};
    if (m.n < 0) return KILN_OK;
    kiln__px_epi e;
    kiln__px_match_epilogue(p, y, bias_ok, &m, &e);
    int more = e.res_node >= 0 || e.act.act.kind != KILN__ACT_NONE;
    int gemm = e.bias >= 0 && m.rank_a == 2 && (!more || !fused_op);
    /* FusedMatMul only for a known rank >= 2: a 1-D A drops the row axis */
    if (!gemm && (!fused_op || (e.bias < 0 && !more) || m.rank_a < 2)) return KILN_OK;
    if (gemm) { /* only the bias */
        e.res_node = e.z = -1;
        e.act.act.kind = KILN__ACT_NONE;
        e.out = g->nodes[e.bias_node].out[0];
    }
    int vb = e.bias >= 0 ? bias_vector(p, e.bias, m.n) : -1;
    if (e.bias >= 0 && vb < 0) return KILN_E_NOMEM;
    int f = gemm ? kiln__px_add_node(p, g->nodes[i].name, "Gemm", "", 3, 1)
                 : kiln__px_add_node(p, g->nodes[i].name, "FusedMatMul", "kiln", e.z >= 0 ? 4 : 3, 1);
    if (f < 0) return KILN_E_NOMEM;
    kiln__node *fn = &g->nodes[f];
    fn->in[0] = a;
    fn->in[1] = b;
    fn->in[2] = vb;
    if (e.z >= 0) fn->in[3] = e.z;
    fn->out[0] = e.out;
    if (!gemm) {
        KILN__TRY(kiln__px_need_opset(p, "kiln", 1));
        KILN__TRY(kiln__px_set_act(p, f, &e.act.act));
    }
    kiln__px_kill(p, i);
    kiln__px_kill_epilogue(p, &e);
    g->values[e.out].producer = f;
    p->count++;
    return KILN_OK;
}

kiln_status kiln__pass_matmul(kiln__px *p) {
    int fused = kiln__op_find("kiln", "FusedMatMul") >= 0;
    for (int i = 0; i < p->g->n_nodes; i++)
        if (kiln__px_is(p, i, "MatMul")) KILN__TRY(try_fuse(p, i, fused));
    return KILN_OK;
}
