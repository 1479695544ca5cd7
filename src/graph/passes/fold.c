/* src/graph/passes/fold.c: constant folding. A node whose inputs are all
 * initializers (or that has none, like Constant) is evaluated once with its
 * reference kernel and its outputs become initializers, so later passes see
 * constant weights (Transpose, Reshape, Cast, Mul of weights, ...). Shape
 * subgraphs that depend on input shapes are left to the planner, which folds
 * them per input signature.
 *
 * Size: a node whose outputs are much larger than its inputs (Expand, Tile,
 * ConstantOfShape) is folded only when its outputs are small or are used
 * only as weights (WEIGHT_OPS): those the fast algorithms need as constants
 * (they pack them once) and the session holds anyway; weights written as
 * ConstantOfShape fills (the ONNX suite's light models) become Conv weights
 * the other passes can fuse. Otherwise folding would trade a cheap kernel
 * for memory held for the session's life. */
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

#define FOLD_MAX_BYTES ((size_t)64 << 20) /* never materialize more than this */
#define FOLD_SMALL_BYTES ((size_t)4096)   /* always fine, whatever the inputs */
#define FOLD_MAX_IO 64

/* Ops whose inputs after the first are weights. */
static const char *const WEIGHT_OPS[] = {"Conv", "ConvTranspose", "Gemm", "MatMul",
                                         "BatchNormalization", "LSTM", "GRU", "RNN"};

/* 1 if value v is read only as a weight (an input after the first of a
 * WEIGHT_OPS node) and is no graph output. */
static int only_weights(kiln__px *p, int v) {
    if (kiln__px_pinned(p, v)) return 0;
    const kiln_graph *g = p->g;
    int used = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (p->dead[i]) continue;
        const kiln__node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] != v) continue;
            int weight = 0;
            for (size_t o = 0; o < sizeof WEIGHT_OPS / sizeof *WEIGHT_OPS && k > 0 && !weight; o++)
                weight = kiln__px_is(p, i, WEIGHT_OPS[o]);
            if (!weight) return 0;
            used = 1;
        }
    }
    return used;
}

/* 1 if node i may be folded: a known, deterministic, tensor-only op whose
 * inputs are all constants. */
static int foldable(kiln__px *p, int i) {
    const kiln__node *n = &p->g->nodes[i];
    if (p->dead[i] || n->op < 0 || n->n_implicit || n->n_in > FOLD_MAX_IO || n->n_out > FOLD_MAX_IO ||
        n->n_out < 1)
        return 0;
    const kiln__op_def *def = &kiln__ops[n->op];
    if (def->flags & (KILN_OPF_NOFOLD | KILN_OPF_ALLOC_OUT | KILN_OPF_CONTAINERS)) return 0;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && !kiln__px_const(p, n->in[k])) return 0;
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && p->g->values[n->out[k]].container) return 0;
    return 1;
}

/* Evaluates node i; on success its outputs are initializers and it is dead.
 * Returns 1 if folded, 0 if not (kernel error or too large: left alone). */
static int fold_node(kiln__px *p, int i, kiln_status *st) {
    kiln_graph *g = p->g;
    const kiln__node *n = &g->nodes[i];
    const kiln__op_def *def = &kiln__ops[n->op];
    kiln_tensor *in[FOLD_MAX_IO] = {0}, *out[FOLD_MAX_IO] = {0};
    size_t in_bytes = 0, out_bytes = 0;
    int ok = 0;
    void *scratch = NULL;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0) {
            in[k] = (kiln_tensor *)kiln__px_const(p, n->in[k]);
            in_bytes += kiln__tensor_bytes(in[k]);
        }
    for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0 && !(out[k] = calloc(1, sizeof *out[k]))) {
            *st = kiln__err(KILN_E_NOMEM, "out of memory");
            goto done;
        }
    kiln__kctx c = {0};
    c.node = n;
    c.graph = g;
    c.opset = n->opset;
    c.n_in = n->n_in;
    c.n_out = n->n_out;
    c.in = in;
    c.out = out;
    c.nth = 1;
    c.threads = 1;
    c.nth_plan = 1;
    c.precision = p->o->precision;
    if (def->infer(&c) != KILN_OK) goto done;
    for (int k = 0; k < n->n_out; k++) out_bytes += out[k] ? kiln__tensor_bytes(out[k]) : 0;
    if (out_bytes > FOLD_MAX_BYTES) goto done;
    if (n->n_in > 0 && out_bytes > FOLD_SMALL_BYTES && out_bytes > 2 * in_bytes) {
        int weights = 1;
        for (int k = 0; k < n->n_out && weights; k++) weights = n->out[k] < 0 || only_weights(p, n->out[k]);
        if (!weights) goto done;
    }
    for (int k = 0; k < n->n_out; k++)
        if (out[k] && kiln__tensor_reserve(out[k]) != KILN_OK) goto done;
    if (c.scratch_bytes && !(scratch = kiln__aligned_alloc(c.scratch_bytes))) goto done;
    c.scratch = scratch;
    if (def->ref(&c) != KILN_OK) goto done;
    int *inits = realloc(g->inits, ((size_t)g->n_inits + (size_t)n->n_out + 1) * sizeof *inits);
    if (!inits) {
        *st = kiln__err(KILN_E_NOMEM, "out of memory");
        goto done;
    }
    g->inits = inits;
    for (int k = 0; k < n->n_out; k++) {
        if (!out[k]) continue;
        kiln__value *v = &g->values[n->out[k]];
        v->kind = KILN__VAL_INIT;
        v->init = out[k];
        v->producer = -1;
        if (v->dtype == KILN_DTYPE_UNDEFINED) v->dtype = out[k]->dtype;
        g->inits[g->n_inits++] = n->out[k];
        out[k] = NULL;
    }
    kiln__px_kill(p, i);
    ok = 1;
done:
    kiln__aligned_free(scratch);
    for (int k = 0; k < n->n_out; k++) kiln_tensor_free(out[k]);
    if (!ok && *st == KILN_OK) kiln__err_clear(); /* a node that does not fold runs at run time */
    return ok;
}

kiln_status kiln__pass_fold(kiln__px *p) {
    kiln_status st = KILN_OK;
    /* topological order: a folded node's consumers see constants in this sweep */
    for (int i = 0; i < p->g->n_nodes && st == KILN_OK; i++)
        if (foldable(p, i) && fold_node(p, i, &st)) p->count++;
    return st;
}
