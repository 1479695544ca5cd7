/* src/graph/passes/bn.c: inference BatchNormalization folded into the Conv,
 * Gemm or MatMul (constant f32 weights) that produces its input:
 *   s = scale / sqrt(var + eps);  W' = W * s (per output channel);
 *   B' = (B - mean) * s + bias.
 * The producer's output must feed only the BatchNormalization; a lone
 * BatchNormalization stays. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

/* Constant f32 1-D tensor of k elements at v, or NULL. */
static const float *vec_f32(kiln__px *p, int v, int64_t k) {
    const kiln_tensor *t = kiln__px_const(p, v);
    if (!t || t->dtype != KILN_DTYPE_F32 || kiln_tensor_numel(t) != k || t->ndim > 2) return NULL;
    if (t->ndim == 2 && t->dims[0] != 1) return NULL;
    return t->data;
}

/* 1 if BatchNormalization node i runs in inference mode, with only output 0 used. */
static int bn_inference(kiln__px *p, int i) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->n_in - n->n_implicit != 5 || n->out[0] < 0) return 0;
    if (n->opset >= 14 && kiln__attr_i(n, "training_mode", 0) != 0) return 0;
    if (n->opset < 9 && kiln__attr_i(n, "spatial", 1) == 0) return 0;
    if (n->opset < 7 && kiln__attr_i(n, "is_test", 0) == 0) return 0;
    for (int k = 1; k < n->n_out; k++)
        if (n->out[k] >= 0 && (kiln__px_uses(p, n->out[k]) > 0 || kiln__px_pinned(p, n->out[k]))) return 0;
    for (int k = 1; k < 5; k++)
        if (!kiln__px_const(p, n->in[k])) return 0;
    return 1;
}

/* new tensor: copy of t */
static kiln_tensor *copy_of(const kiln_tensor *t) {
    kiln_tensor *c = NULL;
    return kiln_tensor_copy(t, KILN_DTYPE_UNDEFINED, &c) == KILN_OK ? c : NULL;
}

/* Folds BN (node bn, channels k, per-channel multiplier s and shift
 * `shift` = bias - mean * s) into producer node pr of kind `op`.
 * Returns 1 if done, 0 if the producer does not fit, <0 on OOM. */
static int fold_into(kiln__px *p, int bn, int pr, const char *op, int64_t k, const double *s,
                     const double *mean, const double *bias) {
    kiln__node *n = &p->g->nodes[pr];
    int ne = n->n_in - n->n_implicit;
    int wi = 1, conv = strcmp(op, "Conv") == 0, gemm = strcmp(op, "Gemm") == 0;
    const kiln_tensor *w = ne > 1 ? kiln__px_const(p, n->in[wi]) : NULL;
    if (!w || w->dtype != KILN_DTYPE_F32) return 0;
    int64_t rows, cols; /* W as (rows, cols); channel along rows (conv, transB) or cols */
    int along_rows;
    if (conv) {
        if (w->ndim < 3 || w->dims[0] != k) return 0;
        rows = k;
        cols = kiln_tensor_numel(w) / (k ? k : 1);
        along_rows = 1;
    } else {
        if (w->ndim != 2) return 0;
        along_rows = gemm && kiln__attr_i(n, "transB", 0) != 0;
        rows = w->dims[0];
        cols = w->dims[1];
        if ((along_rows ? rows : cols) != k) return 0;
        if (!gemm && kiln__px_rank(p, n->in[0]) != 2) return 0; /* BN's channel axis is 1 */
    }
    /* existing bias: Conv B (k), Gemm C (scalar, (k) or (1,k)) */
    int bi = conv ? 2 : gemm ? 2 : -1;
    const kiln_tensor *b = bi >= 0 && ne > bi && n->in[bi] >= 0 ? kiln__px_const(p, n->in[bi]) : NULL;
    if (bi >= 0 && ne > bi && n->in[bi] >= 0) {
        if (!b || b->dtype != KILN_DTYPE_F32) return 0;
        int64_t nb = kiln_tensor_numel(b);
        if (nb != k && nb != 1) return 0;
        if (b->ndim > 2 || (b->ndim == 2 && b->dims[0] != 1)) return 0;
    }
    double beta = gemm ? kiln__attr_f(n, "beta", 1.0f) : 1.0;
    kiln_tensor *nw = copy_of(w), *nb = NULL;
    int64_t kd = k;
    if (nw) kiln_tensor_create(KILN_DTYPE_F32, 1, &kd, &nb);
    if (!nw || !nb) {
        kiln_tensor_free(nw), kiln_tensor_free(nb);
        return -1;
    }
    float *wd = nw->data, *bd = nb->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) wd[r * cols + c] = (float)(wd[r * cols + c] * s[along_rows ? r : c]);
    for (int64_t c = 0; c < k; c++) {
        double b0 = b ? beta * ((const float *)b->data)[kiln_tensor_numel(b) == 1 ? 0 : c] : 0.0;
        bd[c] = (float)((b0 - mean[c]) * s[c] + bias[c]);
    }
    const char *base = p->g->values[n->in[wi]].name;
    int vw = kiln__px_add_init(p, base, nw);
    int vb = vw >= 0 ? kiln__px_add_init(p, base, nb) : (kiln_tensor_free(nb), -1);
    if (vb < 0) return -1;
    n = &p->g->nodes[pr];
    n->in[wi] = vw;
    int y = p->g->nodes[bn].out[0];
    if (conv || gemm) {
        if (ne < 3 && kiln__px_set_n_in(p, pr, 3) != KILN_OK) return -1;
        n = &p->g->nodes[pr];
        n->in[2] = vb;
        if (gemm && kiln__px_attr_float(p, pr, "beta", 1.0f) != KILN_OK) return -1;
        n = &p->g->nodes[pr];
        n->out[0] = y;
        p->g->values[y].producer = pr;
    } else { /* MatMul: the shift becomes an Add, which the matmul pass fuses */
        int t = kiln__px_new_value(p, p->g->values[y].name);
        int add = t >= 0 ? kiln__px_add_node(p, p->g->nodes[pr].name, "Add", "", 2, 1) : -1;
        if (add < 0) return -1;
        kiln__node *a = &p->g->nodes[add];
        a->in[0] = t;
        a->in[1] = vb;
        a->out[0] = y;
        p->g->nodes[pr].out[0] = t;
        p->g->values[t].producer = pr;
        p->g->values[y].producer = add;
    }
    kiln__px_kill(p, bn);
    return 1;
}

kiln_status kiln__pass_bn(kiln__px *p) {
    static const char *const producers[] = {"Conv", "Gemm", "MatMul"};
    for (int i = 0; i < p->g->n_nodes; i++) {
        if (!kiln__px_is(p, i, "BatchNormalization") || !bn_inference(p, i)) continue;
        const kiln__node *n = &p->g->nodes[i];
        const kiln_tensor *sc = kiln__px_const(p, n->in[1]);
        int64_t k = kiln_tensor_numel(sc);
        const float *scale = vec_f32(p, n->in[1], k), *bias = vec_f32(p, n->in[2], k);
        const float *mean = vec_f32(p, n->in[3], k), *var = vec_f32(p, n->in[4], k);
        if (!scale || !bias || !mean || !var || k <= 0) continue;
        int pr = -1;
        const char *op = NULL;
        for (int j = 0; j < 3 && pr < 0; j++)
            if ((pr = kiln__px_absorb(p, n->in[0], producers[j])) >= 0) op = producers[j];
        if (pr < 0 || p->g->nodes[pr].n_out != 1) continue;
        double eps = kiln__attr_f(n, "epsilon", 1e-5f);
        double *s = malloc((size_t)k * 3 * sizeof *s);
        if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
        double *m = s + k, *b = s + 2 * k;
        for (int64_t c = 0; c < k; c++) {
            s[c] = scale[c] / sqrt((double)var[c] + eps);
            m[c] = mean[c];
            b[c] = bias[c];
        }
        int r = fold_into(p, i, pr, op, k, s, m, b);
        free(s);
        if (r < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
        p->count += r;
    }
    return KILN_OK;
}
