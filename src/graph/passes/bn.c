/* src/graph/passes/bn.c: per-channel affine maps folded into the Conv, Gemm
 * or MatMul (constant f32 weights) that produces their input: inference
 * BatchNormalization,
 *   s = scale / sqrt(var + eps);  W' = W * s (per output channel);
 *   B' = (B - mean) * s + bias,
 * and a Mul (s = c) or an Add (bias = c) after a Conv or Gemm, by a
 * constant c that is one value or one per output channel (shape (K,1,1),
 * (1,K,1,1), ... for Conv; (K) or (1,K) for Gemm), as exporters that split
 * BatchNormalization into a scale and a shift write them; such a Mul or Add
 * after a BatchNormalization that is not folded goes into its scale and
 * bias. The producer's output must feed only that node; a lone
 * BatchNormalization, Mul or Add stays. */
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

/* Folds the per-channel map y = x * s + shift of node bn (k channels) into
 * producer node pr of kind `op`: W' = W * s, B' = B * s + shift.
 * Returns 1 if done, 0 if the producer does not fit, <0 on OOM. */
static int fold_into(kiln__px *p, int bn, int pr, const char *op, int64_t k, const double *s,
                     const double *shift) {
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
        bd[c] = (float)(b0 * s[c] + shift[c]);
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

static const char *const PRODUCERS[] = {"Conv", "Gemm", "MatMul"};

/* Producer node of v that a fold may rewrite (its output feeds only the
 * folded node), or -1; *op gets its kind. */
static int producer(kiln__px *p, int v, const char **op) {
    for (int j = 0; j < 3; j++) {
        const int pr = kiln__px_absorb(p, v, PRODUCERS[j]);
        if (pr >= 0 && p->g->nodes[pr].n_out == 1) {
            *op = PRODUCERS[j];
            return pr;
        }
    }
    return -1;
}

/* c (constant f32 at v) as k per-channel values in d, for an output of
 * rank `rank` whose channels lie along axis 1: c is one value, or varies
 * only along axis 1 and broadcasts without raising the rank. 0 if not. */
static int channel_values(kiln__px *p, int v, int rank, int64_t k, double *d) {
    const kiln_tensor *t = kiln__px_const(p, v);
    if (!t || t->dtype != KILN_DTYPE_F32 || rank < 2 || t->ndim > rank) return 0;
    const int64_t n = kiln_tensor_numel(t);
    for (int a = 0; a < t->ndim; a++) {
        const int axis = rank - t->ndim + a; /* aligned from the right */
        if (t->dims[a] != 1 && !(axis == 1 && t->dims[a] == k)) return 0;
    }
    const float *c = t->data;
    for (int64_t i = 0; i < k; i++) d[i] = c[n == 1 ? 0 : i];
    return 1;
}

/* BN params scale (in 1) and bias (in 2) of inference BatchNormalization
 * bn replaced by scale * c, bias * c (mul) or bias + c, and its output by
 * that of the Mul or Add node i, which goes. 1 done, <0 on OOM. */
static int fold_into_bn(kiln__px *p, int i, int bn, int64_t k, int mul, const double *c) {
    kiln_tensor *t[2] = {NULL, NULL};
    for (int j = 0; j < 2; j++) {
        const float *old = vec_f32(p, p->g->nodes[bn].in[1 + j], k);
        if (kiln_tensor_create(KILN_DTYPE_F32, 1, &k, &t[j]) != KILN_OK) {
            kiln_tensor_free(t[0]);
            return -1;
        }
        float *d = t[j]->data;
        for (int64_t ch = 0; ch < k; ch++)
            d[ch] = (float)(mul ? old[ch] * c[ch] : j ? old[ch] + c[ch] : old[ch]);
    }
    for (int j = 0; j < 2; j++) {
        const int v = kiln__px_add_init(p, p->g->values[p->g->nodes[bn].in[1 + j]].name, t[j]);
        if (v < 0) {
            if (j == 0) kiln_tensor_free(t[1]);
            return -1;
        }
        p->g->nodes[bn].in[1 + j] = v;
    }
    const int y = p->g->nodes[i].out[0];
    p->g->nodes[bn].out[0] = y;
    p->g->values[y].producer = bn;
    kiln__px_kill(p, i);
    return 1;
}

/* Mul or Add node i by a per-channel constant after a BatchNormalization
 * that feeds only it (inference form, constant f32 parameters of k
 * channels): folded into its scale and bias. 1 done, 0 not, <0 on OOM. */
static int fold_affine_bn(kiln__px *p, int i, int x, int c, int mul) {
    const int bn = kiln__px_absorb(p, x, "BatchNormalization");
    if (bn < 0 || !bn_inference(p, bn)) return 0;
    const kiln__node *n = &p->g->nodes[bn];
    const kiln_tensor *sc = kiln__px_const(p, n->in[1]);
    const int64_t k = kiln_tensor_numel(sc);
    const int rank = kiln__px_rank(p, x);
    if (k <= 0 || rank < 2 || !vec_f32(p, n->in[1], k) || !vec_f32(p, n->in[2], k)) return 0;
    double *d = malloc((size_t)k * sizeof *d);
    if (!d) return -1;
    const int r = channel_values(p, c, rank, k, d) ? fold_into_bn(p, i, bn, k, mul, d) : 0;
    free(d);
    return r;
}

int kiln__px_bn_affine(kiln__px *p, int i, int64_t *k, double **s) {
    if (!kiln__px_is(p, i, "BatchNormalization") || !bn_inference(p, i)) return 0;
    const kiln__node *n = &p->g->nodes[i];
    *k = kiln_tensor_numel(kiln__px_const(p, n->in[1]));
    const float *scale = vec_f32(p, n->in[1], *k), *bias = vec_f32(p, n->in[2], *k);
    const float *mean = vec_f32(p, n->in[3], *k), *var = vec_f32(p, n->in[4], *k);
    if (!scale || !bias || !mean || !var || *k <= 0) return 0;
    const double eps = kiln__attr_f(n, "epsilon", 1e-5f);
    if (!(*s = malloc((size_t)*k * 2 * sizeof **s))) return -1;
    for (int64_t c = 0; c < *k; c++) {
        (*s)[c] = scale[c] / sqrt((double)var[c] + eps);
        (*s)[*k + c] = bias[c] - mean[c] * (*s)[c];
    }
    return 1;
}

/* Mul or Add node i by a per-channel constant after a producer: folded.
 * Returns 1 if done, 0 if not, <0 on OOM. */
static int fold_affine(kiln__px *p, int i, int mul) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->n_in - n->n_implicit != 2 || n->out[0] < 0) return 0;
    for (int side = 0; side < 2; side++) {
        const char *op;
        const int x = n->in[side], c = n->in[1 - side];
        if (!kiln__px_const(p, c)) continue;
        const int rb = fold_affine_bn(p, i, x, c, mul);
        if (rb) return rb;
        const int pr = producer(p, x, &op);
        if (pr < 0) continue;
        const kiln__node *pn = &p->g->nodes[pr];
        const kiln_tensor *w = pn->n_in > 1 ? kiln__px_const(p, pn->in[1]) : NULL;
        const int rank = kiln__px_rank(p, x);
        if (!w || w->ndim < 2 || rank < 2) continue;
        /* output channels: Conv W (K, ...); Gemm/MatMul W (rows, cols) */
        const int along_rows = strcmp(op, "Conv") == 0 ||
                               (strcmp(op, "Gemm") == 0 && kiln__attr_i(pn, "transB", 0) != 0);
        const int64_t k = w->dims[along_rows ? 0 : 1];
        /* not MatMul: an Add after it is the matmul pass's (Gemm), and a
         * scale after one may belong to an attention pattern */
        if (strcmp(op, "MatMul") == 0 || (strcmp(op, "Gemm") == 0 && rank != 2)) continue;
        double *s = malloc((size_t)k * 2 * sizeof *s);
        if (!s) return -1;
        double *b = s + k;
        int r = 0;
        if (channel_values(p, c, rank, k, mul ? s : b)) {
            for (int64_t j = 0; j < k; j++) {
                if (mul) b[j] = 0;
                else s[j] = 1;
            }
            r = fold_into(p, i, pr, op, k, s, b);
        }
        free(s);
        if (r) return r;
    }
    return 0;
}

kiln_status kiln__pass_bn(kiln__px *p) {
    for (int i = 0; i < p->g->n_nodes; i++) {
        const int mul = kiln__px_is(p, i, "Mul");
        if (mul || kiln__px_is(p, i, "Add")) {
            const int r = fold_affine(p, i, mul);
            if (r < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
            p->count += r;
            continue;
        }
        const char *op = NULL;
        const int pr = kiln__px_is(p, i, "BatchNormalization") ? producer(p, p->g->nodes[i].in[0], &op) : -1;
        int64_t k;
        double *s;
        const int a = pr >= 0 ? kiln__px_bn_affine(p, i, &k, &s) : 0;
        if (a < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
        if (!a) continue;
        const int r = fold_into(p, i, pr, op, k, s, s + k);
        free(s);
        if (r < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
        p->count += r;
    }
    return KILN_OK;
}
