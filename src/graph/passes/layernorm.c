/* src/graph/passes/layernorm.c: LayerNormalization from its op sequence
 * over the last axis:
 *   m = ReduceMean(x); d = x - m; v = ReduceMean(Pow(d, 2) | d * d);
 *   y = d / Sqrt(v + eps) [* gamma] [+ beta]
 * (ReduceMean axes as attribute before opset 18, as input from 18; keepdims)
 * -> LayerNormalization(x, gamma, beta), axis -1, epsilon eps. The last dim
 * of x must be known (it sizes gamma and beta). */
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

/* 1 if ReduceMean node i reduces only the last axis of a rank-r input (r < 0:
 * unknown) and keeps dims. */
static int last_axis_mean(kiln__px *p, int i, int r) {
    const kiln__node *n = &p->g->nodes[i];
    if (!kiln__px_is(p, i, "ReduceMean") || kiln__attr_i(n, "keepdims", 1) != 1) return 0;
    int64_t ax[2];
    int k = kiln__px_ints(p, i, n->opset < 18, "axes", 1, ax, 2);
    return k == 1 && (ax[0] == -1 || (r > 0 && ax[0] == r - 1));
}

/* 1-D copy of constant t as (n) (a one-element t is repeated), or NULL. */
static kiln_tensor *as_vector(const kiln_tensor *t, int64_t n) {
    int64_t m = kiln_tensor_numel(t);
    for (int d = 0; d < t->ndim - 1; d++)
        if (t->dims[d] != 1) return NULL;
    if (m != n && m != 1) return NULL;
    kiln_tensor *v;
    if (kiln_tensor_create(t->dtype, 1, &n, &v) != KILN_OK) return NULL;
    size_t es = kiln_dtype_size(t->dtype);
    for (int64_t j = 0; j < n; j++)
        memcpy((char *)v->data + j * es, (const char *)t->data + (m == 1 ? 0 : j) * es, es);
    return v;
}

/* Node reading d in a slot other than `not`, of type op, or -1. */
static int user_of(kiln__px *p, int d, int not, const char *op) {
    for (int i = 0; i < p->g->n_nodes; i++) {
        if (i == not || !kiln__px_is(p, i, op)) continue;
        const kiln__node *n = &p->g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == d) return i;
    }
    return -1;
}

static kiln_status try_fuse(kiln__px *p, int m1) {
    kiln_graph *g = p->g;
    int x = g->nodes[m1].in[0], r = kiln__px_rank(p, x);
    if (r < 1 || g->values[x].dims[r - 1].v <= 0 || !last_axis_mean(p, m1, r)) return KILN_OK;
    int64_t N = g->values[x].dims[r - 1].v;
    int nodes[9], nn = 0;
    nodes[nn++] = m1;
    int mean = g->nodes[m1].out[0];
    int sub = kiln__px_sole_user(p, mean, NULL);
    if (!kiln__px_is(p, sub, "Sub") || g->nodes[sub].in[0] != x || g->nodes[sub].in[1] != mean) return KILN_OK;
    nodes[nn++] = sub;
    int d = g->nodes[sub].out[0];
    /* d feeds the square and the Div, nothing else */
    int sq = user_of(p, d, -1, "Pow");
    int pow_form = sq >= 0;
    if (!pow_form) sq = user_of(p, d, -1, "Mul");
    if (sq < 0 || kiln__px_pinned(p, d)) return KILN_OK;
    const kiln__node *sn = &g->nodes[sq];
    if (pow_form ? sn->in[0] != d || !kiln__px_scalar_is(p, sn->in[1], 2.0, 0)
                 : sn->in[0] != d || sn->in[1] != d)
        return KILN_OK;
    int div = user_of(p, d, sq, "Div");
    if (div < 0 || g->nodes[div].in[0] != d || kiln__px_uses(p, d) != (pow_form ? 2 : 3)) return KILN_OK;
    nodes[nn++] = sq;
    int m2 = kiln__px_sole_user(p, g->nodes[sq].out[0], NULL);
    if (m2 < 0 || !last_axis_mean(p, m2, r)) return KILN_OK;
    nodes[nn++] = m2;
    int ad = kiln__px_sole_user(p, g->nodes[m2].out[0], NULL);
    if (!kiln__px_is(p, ad, "Add")) return KILN_OK;
    const kiln__node *an = &g->nodes[ad];
    int var = g->nodes[m2].out[0];
    int epsv = an->in[0] == var ? an->in[1] : an->in[0];
    double eps;
    if (!kiln__px_scalar(p, epsv, &eps) || eps < 0) return KILN_OK;
    nodes[nn++] = ad;
    int sqrt_n = kiln__px_sole_user(p, an->out[0], NULL);
    if (!kiln__px_is(p, sqrt_n, "Sqrt")) return KILN_OK;
    nodes[nn++] = sqrt_n;
    if (kiln__px_sole_user(p, g->nodes[sqrt_n].out[0], NULL) != div || g->nodes[div].in[1] != g->nodes[sqrt_n].out[0])
        return KILN_OK;
    nodes[nn++] = div;
    int y = g->nodes[div].out[0], gamma = -1, beta = -1;
    int mul = kiln__px_sole_user(p, y, NULL);
    if (kiln__px_is(p, mul, "Mul")) {
        const kiln__node *mn = &g->nodes[mul];
        gamma = mn->in[0] == y ? mn->in[1] : mn->in[0];
        if (!kiln__px_const(p, gamma)) return KILN_OK;
        nodes[nn++] = mul;
        y = mn->out[0];
        int add = kiln__px_sole_user(p, y, NULL);
        if (kiln__px_is(p, add, "Add")) {
            const kiln__node *bn = &g->nodes[add];
            int b = bn->in[0] == y ? bn->in[1] : bn->in[0];
            if (kiln__px_const(p, b)) {
                beta = b;
                nodes[nn++] = add;
                y = bn->out[0];
            }
        }
    }
    kiln_dtype dt = gamma >= 0 ? kiln__px_const(p, gamma)->dtype : kiln__px_dtype(p, x);
    if (!kiln__dtype_is_float(dt) || kiln__dtype_is_minifloat(dt)) return KILN_OK;
    if (beta >= 0 && kiln__px_const(p, beta)->dtype != dt) return KILN_OK;
    kiln_tensor *gt = NULL, *bt = NULL;
    if (gamma >= 0) {
        gt = as_vector(kiln__px_const(p, gamma), N);
    } else if (kiln_tensor_create(dt, 1, &N, &gt) == KILN_OK) {
        for (int64_t j = 0; j < N; j++) kiln__st_f(dt, gt->data, j, 1.0);
    }
    if (beta >= 0) bt = as_vector(kiln__px_const(p, beta), N);
    if (!gt || (beta >= 0 && !bt)) { /* shapes that do not broadcast along the last axis */
        kiln_tensor_free(gt), kiln_tensor_free(bt);
        kiln__err_clear();
        return KILN_OK;
    }
    const char *name = g->values[x].name;
    int vg = kiln__px_add_init(p, name, gt);
    int vb = bt && vg >= 0 ? kiln__px_add_init(p, name, bt) : (kiln_tensor_free(bt), -1);
    if (vg < 0 || (beta >= 0 && vb < 0)) return KILN_E_NOMEM;
    int ln = kiln__px_add_node(p, g->nodes[m1].name, "LayerNormalization", "", vb >= 0 ? 3 : 2, 1);
    if (ln < 0) return KILN_E_NOMEM;
    kiln__node *n = &g->nodes[ln];
    n->in[0] = x;
    n->in[1] = vg;
    if (vb >= 0) n->in[2] = vb;
    n->out[0] = y;
    KILN__TRY(kiln__px_attr_int(p, ln, "axis", -1));
    KILN__TRY(kiln__px_attr_float(p, ln, "epsilon", (float)eps));
    for (int k = 0; k < nn; k++) kiln__px_kill(p, nodes[k]);
    g->values[y].producer = ln;
    p->count++;
    return KILN_OK;
}

kiln_status kiln__pass_layernorm(kiln__px *p) {
    for (int i = 0; i < p->g->n_nodes; i++)
        if (kiln__px_is(p, i, "ReduceMean") && p->g->nodes[i].in[0] >= 0) KILN__TRY(try_fuse(p, i));
    return KILN_OK;
}
