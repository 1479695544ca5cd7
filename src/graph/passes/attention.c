/* src/graph/passes/attention.c: scaled dot-product attention on (B,H,S,D)
 * heads, as PyTorch and the onnx helper emit it,
 *   s = MatMul(Q [* c], K^T [* c]) [/ c | * c] [+ mask];  Y = MatMul(Softmax(s, -1), V)
 * -> Attention(Q, K, V, mask?) (opset 23) with the scales multiplied into
 * `scale`. K^T is recognized as Transpose(K, (0,1,3,2)), Transpose(Kr,
 * (0,2,3,1)) of the (B,S,H,D) projection (K becomes Transpose(Kr, (0,2,1,3))),
 * or the Reshape -> Transpose(0,2,1) -> Reshape chain of PyTorch's dynamo
 * export. The dims of Q, K, V (and the mask) must be known to agree, from
 * the shape annotations: the Attention op does not broadcast batch or heads,
 * and it reads a mask's last dim as the key length. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

/* Dims of a rank-4 value (annotation or constant) into d; 0 if unknown. */
static int dims4(kiln__px *p, int v, kiln__dim *d) {
    if (v < 0 || kiln__px_rank(p, v) != 4) return 0;
    const kiln_tensor *t = kiln__px_const(p, v);
    for (int k = 0; k < 4; k++) d[k] = t ? (kiln__dim){t->dims[k], NULL} : p->g->values[v].dims[k];
    return 1;
}

/* Strips scalar Mul/Div nodes (single-use) off v, multiplying *scale;
 * absorbed nodes go to nodes[*nn]. Returns the value under them. */
static int strip_scale(kiln__px *p, int v, double *scale, int *nodes, int *nn) {
    for (int rounds = 0; rounds < 2; rounds++) {
        int i, x, side = -1, div = 0;
        double c;
        if ((i = kiln__px_absorb(p, v, "Div")) >= 0) {
            side = 1;
            div = 1;
        } else if ((i = kiln__px_absorb(p, v, "Mul")) >= 0) {
            side = kiln__px_scalar(p, p->g->nodes[i].in[1], &c) ? 1 : 0;
        } else {
            break;
        }
        const kiln__node *n = &p->g->nodes[i];
        /* a one-element constant of rank <= 4 keeps the rank-4 operand's shape */
        if (!kiln__px_scalar(p, n->in[side], &c) || kiln__px_const(p, n->in[side])->ndim > 4 ||
            !isfinite(c) || c == 0)
            break;
        x = n->in[1 - side];
        *scale = div ? *scale / c : *scale * c;
        nodes[(*nn)++] = i;
        v = x;
    }
    return v;
}

/* Explicit perm of Transpose node i equals want (n entries). */
static int perm_is(kiln__px *p, int i, const int64_t *want, int n) {
    const int64_t *a;
    if (!kiln__px_is(p, i, "Transpose") || kiln__attr_ints(&p->g->nodes[i], "perm", &a) != n) return 0;
    return memcmp(a, want, (size_t)n * sizeof *a) == 0;
}

/* K^T -> K. *kr_perm is set (1) when K must be made as Transpose(*k, (0,2,1,3)). */
static int key_of(kiln__px *p, int kt, int *k, int *from_bshd, kiln__dim *kd) {
    static const int64_t swap_last[4] = {0, 1, 3, 2}, bshd_t[4] = {0, 2, 3, 1}, t3[3] = {0, 2, 1};
    int t = kiln__px_producer(p, kt);
    *from_bshd = 0;
    if (perm_is(p, t, swap_last, 4)) {
        *k = p->g->nodes[t].in[0];
        return dims4(p, *k, kd);
    }
    if (perm_is(p, t, bshd_t, 4)) {
        kiln__dim rd[4];
        *k = p->g->nodes[t].in[0];
        if (!dims4(p, *k, rd)) return 0;
        kd[0] = rd[0], kd[1] = rd[2], kd[2] = rd[1], kd[3] = rd[3];
        *from_bshd = 1;
        return 1;
    }
    /* Reshape(Transpose(Reshape(K, (BH,S,D)), (0,2,1)), (B,H,D,S)) */
    if (!kiln__px_is(p, t, "Reshape")) return 0;
    int tr = kiln__px_producer(p, p->g->nodes[t].in[0]);
    if (!perm_is(p, tr, t3, 3)) return 0;
    int r1 = kiln__px_producer(p, p->g->nodes[tr].in[0]);
    if (!kiln__px_is(p, r1, "Reshape")) return 0;
    int k4 = p->g->nodes[r1].in[0], flat = p->g->nodes[r1].out[0];
    kiln__dim ktd[4];
    if (!dims4(p, k4, kd) || !dims4(p, kt, ktd) || kiln__px_rank(p, flat) != 3) return 0;
    const kiln__dim *fd = p->g->values[flat].dims;
    if (!kiln__px_dim_eq(&fd[1], &kd[2]) || !kiln__px_dim_eq(&fd[2], &kd[3])) return 0;
    if (!kiln__px_dim_eq(&ktd[0], &kd[0]) || !kiln__px_dim_eq(&ktd[1], &kd[1]) ||
        !kiln__px_dim_eq(&ktd[2], &kd[3]) || !kiln__px_dim_eq(&ktd[3], &kd[2]))
        return 0;
    *k = k4;
    return 1;
}

/* The mask broadcasts to the scores (B,H,S,L) the way Attention reads it. */
static int mask_fits(kiln__px *p, int m, const kiln__dim *full) {
    int r = kiln__px_rank(p, m);
    kiln_dtype dt = kiln__px_dtype(p, m);
    if (r < 1 || r > 4 || !kiln__dtype_is_float(dt) || kiln__dtype_is_minifloat(dt)) return 0;
    const kiln_tensor *t = kiln__px_const(p, m);
    for (int k = 0; k < r; k++) {
        kiln__dim d = t ? (kiln__dim){t->dims[k], NULL} : p->g->values[m].dims[k];
        int f = 4 - r + k;
        if (kiln__px_dim_eq(&d, &full[f])) continue;
        if (f < 3 && d.v == 1) continue;
        return 0;
    }
    return 1;
}

static kiln_status try_fuse(kiln__px *p, int sm) {
    kiln_graph *g = p->g;
    const kiln__node *sn = &g->nodes[sm];
    int64_t axis = kiln__attr_i(sn, "axis", sn->opset >= 13 ? -1 : 1);
    if (axis != -1 && axis != 3) return KILN_OK;
    int nodes[16], nn = 0;
    nodes[nn++] = sm;
    int pv = kiln__px_sole_user(p, sn->out[0], NULL);
    if (!kiln__px_is(p, pv, "MatMul") || g->nodes[pv].in[0] != sn->out[0]) return KILN_OK;
    nodes[nn++] = pv;
    int v = g->nodes[pv].in[1], y = g->nodes[pv].out[0];
    /* [+ mask] */
    int s = sn->in[0], mask = -1, add = kiln__px_absorb(p, s, "Add");
    double scale = 1.0;
    int qk = -1;
    if (add >= 0) {
        for (int side = 0; side < 2 && qk < 0; side++) {
            int save = nn;
            double sc = 1.0;
            int under = strip_scale(p, g->nodes[add].in[side], &sc, nodes, &nn);
            if ((qk = kiln__px_absorb(p, under, "MatMul")) >= 0) {
                mask = g->nodes[add].in[1 - side];
                scale = sc;
            } else {
                nn = save;
            }
        }
        if (qk < 0) return KILN_OK;
        nodes[nn++] = add;
    } else {
        qk = kiln__px_absorb(p, strip_scale(p, s, &scale, nodes, &nn), "MatMul");
        if (qk < 0) return KILN_OK;
    }
    nodes[nn++] = qk;
    int q = strip_scale(p, g->nodes[qk].in[0], &scale, nodes, &nn);
    int kt = strip_scale(p, g->nodes[qk].in[1], &scale, nodes, &nn);
    int k, from_bshd;
    kiln__dim qd[4], kd[4], vd[4];
    if (!dims4(p, q, qd) || !dims4(p, v, vd) || !key_of(p, kt, &k, &from_bshd, kd)) return KILN_OK;
    for (int d = 0; d < 2; d++)
        if (!kiln__px_dim_eq(&qd[d], &kd[d]) || !kiln__px_dim_eq(&qd[d], &vd[d])) return KILN_OK;
    if (!kiln__px_dim_eq(&qd[3], &kd[3]) || !kiln__px_dim_eq(&kd[2], &vd[2])) return KILN_OK;
    kiln__dim full[4] = {qd[0], qd[1], qd[2], kd[2]};
    if (mask >= 0 && !mask_fits(p, mask, full)) return KILN_OK;
    kiln_dtype dt = kiln__px_dtype(p, q);
    if (!kiln__dtype_is_float(dt) || kiln__dtype_is_minifloat(dt) || !isfinite(scale) || scale == 0)
        return KILN_OK;
    if (from_bshd) { /* K = Transpose(Kr, (0,2,1,3)) */
        static const int64_t perm[4] = {0, 2, 1, 3};
        int kv = kiln__px_new_value(p, g->values[k].name);
        int t = kv >= 0 ? kiln__px_add_node(p, g->values[k].name, "Transpose", "", 1, 1) : -1;
        if (t < 0) return KILN_E_NOMEM;
        g->nodes[t].in[0] = k;
        g->nodes[t].out[0] = kv;
        g->values[kv].producer = t;
        KILN__TRY(kiln__px_attr_ints(p, t, "perm", 4, perm));
        k = kv;
    }
    int a = kiln__px_add_node(p, g->nodes[sm].name, "Attention", "", mask >= 0 ? 4 : 3, 1);
    if (a < 0) return KILN_E_NOMEM;
    kiln__node *an = &g->nodes[a];
    an->in[0] = q;
    an->in[1] = k;
    an->in[2] = v;
    if (mask >= 0) an->in[3] = mask;
    an->out[0] = y;
    KILN__TRY(kiln__px_attr_float(p, a, "scale", (float)scale));
    for (int j = 0; j < nn; j++) kiln__px_kill(p, nodes[j]);
    g->values[y].producer = a;
    p->count++;
    return KILN_OK;
}

kiln_status kiln__pass_attention(kiln__px *p) {
    for (int i = 0; i < p->g->n_nodes; i++)
        if (kiln__px_is(p, i, "Softmax") && p->g->nodes[i].in[0] >= 0) KILN__TRY(try_fuse(p, i));
    return KILN_OK;
}
