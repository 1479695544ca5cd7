/* src/graph/shape_infer.c: static type and shape inference with symbolic dims.
 *
 * The op table's infer rules work on concrete shapes (that is what plans
 * need). Symbolic inference reuses them by probing: every dynamic dim of the
 * graph inputs is a symbol; the graph is planned twice (shape inference only,
 * kiln__infer_types) with each symbol set to a different probe value in each
 * pass. Shape subgraphs (Shape -> Gather -> Concat -> Reshape) are folded
 * during planning, so symbols flow through them like through any op. A
 * resulting dim is
 *   - a constant if both passes agree,
 *   - the symbol k if it equals symbol k's probe value in both passes,
 *   - unknown otherwise (a derived size such as N*S, or a data-dependent one).
 * Values whose shapes depend on data (NonZero, Loop outputs, ...) keep an
 * unknown rank.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/exec.h"

#define MAX_SYMBOLS 256

typedef struct symtab {
    int n;
    const char *name[MAX_SYMBOLS];
} symtab;

/* Index of the symbol named name (NULL: a fresh anonymous symbol). */
static int symbol(symtab *t, const char *name) {
    if (name)
        for (int i = 0; i < t->n; i++)
            if (t->name[i] && strcmp(t->name[i], name) == 0) return i;
    if (t->n == MAX_SYMBOLS) return -1;
    t->name[t->n] = name;
    return t->n++;
}

/* Probe value of symbol k in pass p (0 or 1): distinct, above common sizes. */
static int64_t probe(int k, int pass) { return (pass ? 1543 : 1031) + 2 * (int64_t)k; }

static void set_dim(kiln__dim *d, int64_t v, const char *sym) {
    free(d->sym);
    d->sym = sym ? kiln__strdup(sym) : NULL;
    d->v = v;
}

kiln_status kiln_graph_infer_shapes(kiln_graph *g) {
    int npos = g->n_inputs;
    kiln_status s = KILN_OK;
    symtab syms = {0};
    kiln_tensor *in[2] = {NULL, NULL}, *types[2] = {NULL, NULL};
    const kiln_tensor **inp = NULL;
    int *sym_of = NULL; /* per input and dim: symbol index or -1 */
    for (int pass = 0; pass < 2; pass++) {
        in[pass] = calloc((size_t)npos + 1, sizeof **in);
        types[pass] = calloc((size_t)g->n_values + 1, sizeof **types);
    }
    inp = calloc((size_t)npos + 1, sizeof *inp);
    sym_of = malloc(((size_t)npos * KILN_MAX_DIMS + 1) * sizeof *sym_of);
    if (!in[0] || !in[1] || !types[0] || !types[1] || !inp || !sym_of) {
        s = kiln__err(KILN_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < npos; i++) {
        const kiln__value *v = &g->values[g->inputs[i]];
        for (int d = 0; d < KILN_MAX_DIMS; d++) sym_of[i * KILN_MAX_DIMS + d] = -1;
        if (v->ndim < 0 || v->is_sequence) continue; /* rank unknown: consumers stay unknown */
        for (int d = 0; d < v->ndim; d++)
            if (v->dims[d].v < 0 && (sym_of[i * KILN_MAX_DIMS + d] = symbol(&syms, v->dims[d].sym)) < 0) {
                s = kiln__err(KILN_E_LIMIT, "more than %d dynamic dims", MAX_SYMBOLS);
                goto done;
            }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < npos; i++) {
            const kiln__value *v = &g->values[g->inputs[i]];
            inp[i] = NULL;
            if (v->ndim < 0 || v->is_sequence) continue;
            int64_t dims[KILN_MAX_DIMS];
            for (int d = 0; d < v->ndim; d++) {
                int k = sym_of[i * KILN_MAX_DIMS + d];
                dims[d] = k >= 0 ? probe(k, pass) : v->dims[d].v;
            }
            kiln_dtype dt = v->dtype == KILN_DTYPE_UNDEFINED ? KILN_DTYPE_F32 : v->dtype;
            if (kiln__tensor_init(&in[pass][i], dt, v->ndim, dims) != KILN_OK) continue;
            inp[i] = &in[pass][i];
        }
        if ((s = kiln__infer_types(g, npos, inp, types[pass])) != KILN_OK) goto done;
    }
    for (int v = 0; v < g->n_values; v++) {
        kiln__value *val = &g->values[v];
        const kiln_tensor *a = &types[0][v], *b = &types[1][v];
        if (val->kind != KILN__VAL_INTERMEDIATE || a->ndim < 0 || b->ndim != a->ndim ||
            a->dtype != b->dtype || kiln__is_container(a->dtype))
            continue;
        if (val->ndim >= 0 && val->ndim != a->ndim) continue; /* declared rank wins */
        if (val->dtype == KILN_DTYPE_UNDEFINED) val->dtype = a->dtype;
        if (val->ndim < 0) {
            val->ndim = a->ndim;
            for (int d = 0; d < a->ndim; d++) set_dim(&val->dims[d], -1, NULL);
        }
        for (int d = 0; d < a->ndim; d++) {
            if (val->dims[d].v >= 0) continue; /* declared size wins */
            if (a->dims[d] == b->dims[d]) {
                set_dim(&val->dims[d], a->dims[d], NULL);
                continue;
            }
            for (int k = 0; k < syms.n; k++)
                if (a->dims[d] == probe(k, 0) && b->dims[d] == probe(k, 1)) {
                    if (!val->dims[d].sym && syms.name[k]) set_dim(&val->dims[d], -1, syms.name[k]);
                    break;
                }
        }
    }
done:
    for (int pass = 0; pass < 2; pass++) {
        free(in[pass]);
        free(types[pass]);
    }
    free(inp);
    free(sym_of);
    return s;
}
