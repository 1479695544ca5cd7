/* src/graph/passes/gelu.c: GELU from the op sequences exporters emit.
 *   erf form:  x * 0.5 * (1 + Erf(x / sqrt 2))   (Div by 1.414.. or Mul by 0.7071..)
 *   tanh form: 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
 *              (x^3 as Pow(x, 3), x * (x * x) or (x * x) * x)
 * with the final products in any order: (x * a) * 0.5, (a * 0.5) * x,
 * (x * 0.5) * a where a = 1 + Erf/Tanh(..). -> Gelu (approximate "tanh"
 * for the tanh form). */
#include <math.h>
#include <string.h>

#include "graph/passes/passes.h"

#define REL 1e-4 /* exporters round the constants to f32 or fewer digits */

/* The input of binary node i that is not v (v itself if both are), or -1
 * if v is not an input. */
static int other(kiln__px *p, int i, int v) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->n_in != 2) return -1;
    if (n->in[0] == v) return n->in[1];
    if (n->in[1] == v) return n->in[0];
    return -1;
}

/* Binary node i has a constant scalar ~want on one side: the other input, else -1. */
static int with_const(kiln__px *p, int i, double want) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->n_in != 2) return -1;
    if (kiln__px_scalar_is(p, n->in[1], want, REL)) return n->in[0];
    if (kiln__px_scalar_is(p, n->in[0], want, REL)) return n->in[1];
    return -1;
}

typedef struct match {
    int x, out;
    int nodes[10];
    int n;
} match;

static void take(match *m, int node) { m->nodes[m->n++] = node; }

/* a = 1 + f(..) (the Add node is add); matches the products with x and 0.5. */
static int tail(kiln__px *p, match *m, int add) {
    int a = p->g->nodes[add].out[0];
    int m1 = kiln__px_sole_user(p, a, NULL);
    if (!kiln__px_is(p, m1, "Mul")) return 0;
    take(m, add);
    take(m, m1);
    int o1 = other(p, m1, a), r1 = p->g->nodes[m1].out[0];
    if (o1 < 0) return 0;
    if (o1 == m->x || kiln__px_scalar_is(p, o1, 0.5, REL)) { /* (a * x) * 0.5 or (a * 0.5) * x */
        int m2 = kiln__px_sole_user(p, r1, NULL);
        if (!kiln__px_is(p, m2, "Mul")) return 0;
        int o2 = other(p, m2, r1);
        int ok = o1 == m->x ? kiln__px_scalar_is(p, o2, 0.5, REL) : o2 == m->x;
        if (!ok) return 0;
        take(m, m2);
        m->out = p->g->nodes[m2].out[0];
        return 1;
    }
    int h = kiln__px_absorb(p, o1, "Mul"); /* a * (x * 0.5) */
    if (h < 0 || with_const(p, h, 0.5) != m->x) return 0;
    take(m, h);
    m->out = r1;
    return 1;
}

/* Erf node e: Erf(x / sqrt 2) or Erf(x * (1 / sqrt 2)). */
static int match_erf(kiln__px *p, int e, match *m) {
    int u = p->g->nodes[e].in[0], d;
    if ((d = kiln__px_absorb(p, u, "Div")) >= 0) {
        if (!kiln__px_scalar_is(p, p->g->nodes[d].in[1], M_SQRT2, REL)) return 0;
        m->x = p->g->nodes[d].in[0];
    } else if ((d = kiln__px_absorb(p, u, "Mul")) >= 0) {
        if ((m->x = with_const(p, d, M_SQRT1_2)) < 0) return 0;
    } else {
        return 0;
    }
    take(m, d);
    take(m, e);
    int add = kiln__px_sole_user(p, p->g->nodes[e].out[0], NULL);
    if (!kiln__px_is(p, add, "Add") || with_const(p, add, 1.0) != p->g->nodes[e].out[0]) return 0;
    return tail(p, m, add);
}

/* cube == x^3 as Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x). */
static int match_cube(kiln__px *p, int cube, int x, match *m) {
    int c = kiln__px_absorb(p, cube, "Pow");
    if (c >= 0) {
        const kiln__node *n = &p->g->nodes[c];
        if (n->in[0] != x || !kiln__px_scalar_is(p, n->in[1], 3.0, 0)) return 0;
        take(m, c);
        return 1;
    }
    if ((c = kiln__px_absorb(p, cube, "Mul")) < 0) return 0;
    int sq = other(p, c, x);
    int s = sq >= 0 ? kiln__px_absorb(p, sq, "Mul") : -1;
    if (s < 0 || other(p, s, x) != x) return 0;
    take(m, c);
    take(m, s);
    return 1;
}

/* Tanh node t: Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)). */
static int match_tanh(kiln__px *p, int t, match *m) {
    int w = kiln__px_absorb(p, p->g->nodes[t].in[0], "Mul");
    int s = w >= 0 ? with_const(p, w, 0.79788456080286535588) : -1;
    int ad = s >= 0 ? kiln__px_absorb(p, s, "Add") : -1;
    if (ad < 0) return 0;
    take(m, t);
    take(m, w);
    take(m, ad);
    const kiln__node *an = &p->g->nodes[ad];
    int found = 0;
    for (int side = 0; side < 2 && !found; side++) {
        int x = an->in[side], k = an->in[1 - side];
        int km = kiln__px_absorb(p, k, "Mul");
        int cube = km >= 0 ? with_const(p, km, 0.044715) : -1;
        int save = m->n;
        if (cube >= 0 && match_cube(p, cube, x, m)) {
            take(m, km);
            m->x = x;
            found = 1;
        } else {
            m->n = save;
        }
    }
    if (!found) return 0;
    int add = kiln__px_sole_user(p, p->g->nodes[t].out[0], NULL);
    if (!kiln__px_is(p, add, "Add") || with_const(p, add, 1.0) != p->g->nodes[t].out[0]) return 0;
    return tail(p, m, add);
}

kiln_status kiln__pass_gelu(kiln__px *p) {
    for (int i = 0; i < p->g->n_nodes; i++) {
        int erf = kiln__px_is(p, i, "Erf");
        if (!erf && !kiln__px_is(p, i, "Tanh")) continue;
        match m = {.x = -1, .out = -1};
        if (!(erf ? match_erf(p, i, &m) : match_tanh(p, i, &m))) continue;
        if (m.x < 0 || m.out < 0) continue;
        int g = kiln__px_add_node(p, p->g->nodes[i].name, "Gelu", "", 1, 1);
        if (g < 0) return KILN_E_NOMEM;
        kiln__node *n = &p->g->nodes[g];
        n->in[0] = m.x;
        n->out[0] = m.out;
        if (!erf) KILN__TRY(kiln__px_attr_string(p, g, "approximate", "tanh"));
        for (int k = 0; k < m.n; k++) kiln__px_kill(p, m.nodes[k]);
        p->g->values[m.out].producer = g;
        p->count++;
    }
    return KILN_OK;
}
