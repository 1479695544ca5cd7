/* src/train/mixed_precision.c: the rounding policy and dynamic loss scaling
 * of mixed-precision training (mixed_precision.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/mixed_precision.h"

/* 1 if node i multiplies matrices: its operands and results get rounded. */
static int is_product(kiln__px *p, int i) {
    const kiln__node *n = kiln__px_node(p, i);
    if (!strcmp(n->domain, "kiln")) return !strcmp(n->op_type, "ConvGrad");
    return kiln__px_is(p, i, "MatMul") || kiln__px_is(p, i, "Gemm") || kiln__px_is(p, i, "Conv") ||
           kiln__px_is(p, i, "ConvTranspose");
}

/* 1 if v holds f32 (or, not inferred, presumably does: products multiply
 * floats; were it another dtype, the rounding node would fail the plan
 * naming it rather than be left out silently). */
static int is_f32(kiln__px *p, int v) {
    kiln_dtype dt = kiln__px_dtype(p, v);
    return dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_UNDEFINED;
}

/* New node RoundToPrecision(to): x -> y. */
static kiln_status add_round(kiln__px *p, int x, int y, kiln_dtype to) {
    int r = kiln__px_add_node(p, "round", "RoundToPrecision", "kiln", 1, 1);
    if (r < 0) return KILN_E_NOMEM;
    p->g->nodes[r].in[0] = x;
    p->g->nodes[r].out[0] = y;
    return kiln__px_attr_int(p, r, "to", to);
}

kiln_status kiln__round_products(kiln__px *p, kiln_dtype to) {
    kiln_graph *g = p->g;
    int n_nodes = g->n_nodes, n_values = g->n_values;
    /* rounded[v]: the rounded version of original value v (v itself once it
     * is a product's rounded result), -1 while it has none */
    int *rounded = malloc((size_t)n_values * sizeof *rounded + 1);
    if (!rounded) return kiln__err(KILN_E_NOMEM, "out of memory");
    for (int v = 0; v < n_values; v++) rounded[v] = -1;
    kiln_status s = kiln__px_need_opset(p, "kiln", 1);
    for (int i = 0; i < n_nodes && s == KILN_OK; i++) {
        if (p->dead[i] || !is_product(p, i)) continue;
        for (int k = 0; k < g->nodes[i].n_in - g->nodes[i].n_implicit && s == KILN_OK; k++) {
            int v = g->nodes[i].in[k];
            if (v < 0 || v >= n_values || !is_f32(p, v)) continue;
            if (rounded[v] < 0) {
                int r = kiln__px_new_value(p, g->values[v].name);
                if (r < 0) s = KILN_E_NOMEM;
                else s = add_round(p, v, r, to);
                rounded[v] = r;
            }
            g->nodes[i].in[k] = rounded[v];
        }
        for (int k = 0; k < g->nodes[i].n_out && s == KILN_OK; k++) {
            int v = g->nodes[i].out[k];
            if (v < 0 || v >= n_values || !is_f32(p, v)) continue;
            int raw = kiln__px_new_value(p, g->values[v].name);
            if (raw < 0) {
                s = KILN_E_NOMEM;
                break;
            }
            g->nodes[i].out[k] = raw;
            s = add_round(p, raw, v, to);
            rounded[v] = v;
        }
    }
    free(rounded);
    return s;
}

int kiln__loss_scaler_update(kiln__loss_scaler *ls, float *g, int64_t n) {
    int finite = 1;
    for (int64_t i = 0; i < n && finite; i++) finite = isfinite(g[i]);
    if (!finite) {
        ls->skipped++;
        ls->clean = 0;
        if (ls->scale * 0.5 >= FLT_MIN) ls->scale *= 0.5;
        return 0;
    }
    float inv = (float)(1.0 / ls->scale);
    for (int64_t i = 0; i < n; i++) g[i] *= inv;
    if (++ls->clean >= ls->interval) {
        ls->clean = 0;
        ls->scale *= 2;
    }
    return 1;
}
