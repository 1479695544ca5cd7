/* src/graph/passes/layout.c: transpose and reshape elimination.
 *   Transpose(Transpose(x, p1), p2) -> Transpose(x, p1 o p2), removed when
 *   that is the identity; a Transpose with the identity perm is removed;
 *   Reshape(Reshape(x, s1), s2) -> Reshape(x, s2) (s2 constant, no 0 that
 *   would copy a dim of the intermediate); Squeeze(Unsqueeze(x, a), a) and
 *   Unsqueeze(Squeeze(x, a), a) -> x. */
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"

/* Explicit perm of Transpose node i, validated: its length, or -1. */
static int perm_of(kiln__px *p, int i, int64_t *perm) {
    const int64_t *a;
    int n = kiln__attr_ints(&p->g->nodes[i], "perm", &a);
    if (n <= 0 || n > KILN_MAX_DIMS) return -1;
    int seen[KILN_MAX_DIMS] = {0};
    for (int k = 0; k < n; k++) {
        int64_t v = a[k] < 0 ? a[k] + n : a[k];
        if (v < 0 || v >= n || seen[v]++) return -1;
        perm[k] = v;
    }
    return n;
}

static int is_identity(const int64_t *perm, int n) {
    for (int k = 0; k < n; k++)
        if (perm[k] != k) return 0;
    return 1;
}

static kiln_status transposes(kiln__px *p, int i) {
    int64_t p2[KILN_MAX_DIMS], p1[KILN_MAX_DIMS];
    int n = perm_of(p, i, p2);
    if (n < 0) return KILN_OK;
    kiln__node *nd = &p->g->nodes[i];
    int x = nd->in[0];
    int inner = kiln__px_producer(p, x);
    if (kiln__px_is(p, inner, "Transpose") && perm_of(p, inner, p1) == n) {
        int64_t q[KILN_MAX_DIMS];
        for (int k = 0; k < n; k++) q[k] = p1[p2[k]];
        int src = p->g->nodes[inner].in[0];
        if (is_identity(q, n)) {
            if (kiln__px_bypass(p, i, src)) p->count++;
            return KILN_OK;
        }
        KILN__TRY(kiln__px_attr_ints(p, i, "perm", n, q));
        p->g->nodes[i].in[0] = src;
        p->uses_valid = 0;
        p->count++;
        return KILN_OK;
    }
    if (is_identity(p2, n) && kiln__px_rank(p, x) == n && kiln__px_bypass(p, i, x)) p->count++;
    return KILN_OK;
}

/* Reshape(Reshape(x, s1), s2) -> Reshape(x, s2). */
static void reshapes(kiln__px *p, int i) {
    kiln__node *nd = &p->g->nodes[i];
    if (nd->opset < 5 || nd->n_in - nd->n_implicit != 2) return;
    int inner = kiln__px_producer(p, nd->in[0]);
    if (!kiln__px_is(p, inner, "Reshape") || p->g->nodes[inner].opset < 5) return;
    int64_t s[KILN_MAX_DIMS];
    int n = kiln__px_ints(p, i, 0, NULL, 1, s, KILN_MAX_DIMS);
    if (n < 0) return;
    int allowzero = nd->opset >= 14 && kiln__attr_i(nd, "allowzero", 0) != 0;
    for (int k = 0; k < n && !allowzero; k++)
        if (s[k] == 0) return; /* 0 copies a dim of the intermediate */
    nd->in[0] = p->g->nodes[inner].in[0];
    p->uses_valid = 0;
    p->count++;
}

/* Axes of a Squeeze/Unsqueeze node, sorted: count, or -1. */
static int axes_of(kiln__px *p, int i, int64_t *ax) {
    const kiln__node *nd = &p->g->nodes[i];
    int n = kiln__px_ints(p, i, nd->opset < 13, "axes", 1, ax, KILN_MAX_DIMS);
    if (n <= 0) return -1;
    for (int a = 1; a < n; a++) /* insertion sort */
        for (int b = a; b > 0 && ax[b - 1] > ax[b]; b--) {
            int64_t t = ax[b];
            ax[b] = ax[b - 1];
            ax[b - 1] = t;
        }
    for (int a = 1; a < n; a++)
        if (ax[a] == ax[a - 1]) return -1;
    return n;
}

/* Squeeze(Unsqueeze(x, a), a) or Unsqueeze(Squeeze(x, a), a) -> x. */
static void squeeze_pairs(kiln__px *p, int i, const char *inner_op) {
    int inner = kiln__px_producer(p, p->g->nodes[i].in[0]);
    if (!kiln__px_is(p, inner, inner_op)) return;
    int64_t a[KILN_MAX_DIMS], b[KILN_MAX_DIMS];
    int na = axes_of(p, i, a), nb = axes_of(p, inner, b);
    if (na < 0 || na != nb || memcmp(a, b, (size_t)na * sizeof *a) != 0) return;
    /* equal lists name the same axes: both count from the rank of the larger tensor */
    if (kiln__px_bypass(p, i, p->g->nodes[inner].in[0])) p->count++;
}

kiln_status kiln__pass_layout(kiln__px *p) {
    for (int i = 0; i < p->g->n_nodes; i++) {
        if (p->dead[i]) continue;
        const kiln__node *nd = &p->g->nodes[i];
        if (nd->n_in - nd->n_implicit < 1 || nd->in[0] < 0 || nd->n_out != 1 || nd->out[0] < 0) continue;
        if (kiln__px_is(p, i, "Transpose")) KILN__TRY(transposes(p, i));
        else if (kiln__px_is(p, i, "Reshape")) reshapes(p, i);
        else if (kiln__px_is(p, i, "Squeeze")) squeeze_pairs(p, i, "Unsqueeze");
        else if (kiln__px_is(p, i, "Unsqueeze")) squeeze_pairs(p, i, "Squeeze");
    }
    return KILN_OK;
}
