/* tests/unit/algo_harness.h: checks fast algorithms against the reference
 * kernels on one-node graphs (include after <cmocka.h>).
 *
 *   ah_case c;
 *   ah_case_init(&c, "Conv", "", 17, 1);
 *   ah_input(&c, ah_random(KILN_DTYPE_F32, 4, xdims, &seed, -1, 1), 0); // X
 *   ah_input(&c, ah_random(KILN_DTYPE_F32, 4, wdims, &seed, -1, 1), 1); // W, constant
 *   ah_attr_ints(&c, "pads", 4, pads);
 *   const char *algo = ah_run(&c, KILN_PRECISION_FP32, 2, 1e-5);
 *   ah_case_free(&c);
 *
 * ah_run builds the graph (inputs x0, x1, ...; constant ones as initializers;
 * outputs y0, y1, ...), runs it in a reference runner and in a fast runner
 * (the planner's algorithm choice, at the given precision and threads) on
 * the same inputs, and asserts that every output matches: same dtype and
 * shape, normalized error ||out - ref|| / ||ref|| <= tol over the finite
 * reference values (absolute when ||ref|| is 0), NaN and +-Inf at the same
 * places. It returns the name of the algorithm that ran the node ("reference"
 * when none took it; the string is static). With AH_PRINT_ERR set in the
 * environment every comparison prints its error (to set bounds from).
 */
#ifndef KILN_TEST_ALGO_HARNESS_H
#define KILN_TEST_ALGO_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/exec.h"
#include "graph/ir.h"
#include "ops/algo.h"

#ifndef AH_MAX_IO
#define AH_MAX_IO 12 /* QLinearConv has 9 inputs */
#endif

typedef struct ah_case {
    kiln_graph *g;
    int node;
    int n_in, n_out;
    kiln_tensor *in[AH_MAX_IO]; /* owned; the constant ones are owned by g */
    int constant[AH_MAX_IO];
    int finalized;
} ah_case;

/* A case for op (domain, with an import of `opset` for it; "kiln" ops get
 * ai.onnx opset 17 as well) with n_out outputs. */
static inline void ah_case_init(ah_case *c, const char *op_type, const char *domain, int opset,
                                int n_out) {
    memset(c, 0, sizeof *c);
    c->g = kiln__graph_new(NULL);
    assert_non_null(c->g);
    kiln_graph *g = c->g;
    g->opsets = calloc(2, sizeof *g->opsets);
    g->opsets[0].domain = kiln__strdup("");
    g->opsets[0].version = domain[0] ? 17 : opset;
    g->n_opsets = 1;
    if (domain[0]) {
        g->opsets[1].domain = kiln__strdup(domain);
        g->opsets[1].version = opset;
        g->n_opsets = 2;
    }
    c->node = kiln__graph_add_node(g, "n", op_type, domain, 0, n_out);
    assert_true(c->node >= 0);
    c->n_out = n_out;
    for (int k = 0; k < n_out; k++) {
        char name[16];
        snprintf(name, sizeof name, "y%d", k);
        g->nodes[c->node].out[k] = kiln__graph_value(g, name);
        g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *g->outputs);
        g->outputs[g->n_outputs++] = g->nodes[c->node].out[k];
    }
}

/* Appends input t (NULL: an omitted optional input). constant: an
 * initializer (weights). Takes ownership of t. */
static inline void ah_input(ah_case *c, kiln_tensor *t, int constant) {
    assert_true(c->n_in < AH_MAX_IO);
    kiln_graph *g = c->g;
    kiln__node *nd = &g->nodes[c->node];
    nd->in = realloc(nd->in, (size_t)(nd->n_in + 1) * sizeof *nd->in);
    int k = c->n_in++;
    c->in[k] = t;
    c->constant[k] = constant;
    if (!t) {
        nd->in[nd->n_in++] = -1;
        return;
    }
    char name[16];
    snprintf(name, sizeof name, "x%d", k);
    int v = kiln__graph_add_value(g, name);
    assert_true(v >= 0);
    kiln__value *val = &g->values[v];
    val->dtype = t->dtype;
    val->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) val->dims[d].v = t->dims[d];
    val->has_type = 1;
    if (constant) {
        val->kind = KILN__VAL_INIT;
        val->init = t;
        g->inits = realloc(g->inits, (size_t)(g->n_inits + 1) * sizeof *g->inits);
        g->inits[g->n_inits++] = v;
    } else {
        val->kind = KILN__VAL_INPUT;
        g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
        g->inputs[g->n_inputs++] = v;
    }
    nd = &g->nodes[c->node];
    nd->in[nd->n_in++] = v;
}

static inline kiln__attr *ah_attr_new(ah_case *c, const char *name, kiln__attr_type type) {
    kiln__node *nd = &c->g->nodes[c->node];
    nd->attr = realloc(nd->attr, (size_t)(nd->n_attr + 1) * sizeof *nd->attr);
    kiln__attr *a = &nd->attr[nd->n_attr++];
    memset(a, 0, sizeof *a);
    a->name = kiln__strdup(name);
    a->type = type;
    return a;
}
static inline void ah_attr_int(ah_case *c, const char *name, int64_t v) {
    ah_attr_new(c, name, KILN__ATTR_INT)->i = v;
}
static inline void ah_attr_float(ah_case *c, const char *name, float v) {
    ah_attr_new(c, name, KILN__ATTR_FLOAT)->f = v;
}
static inline void ah_attr_string(ah_case *c, const char *name, const char *s) {
    kiln__attr *a = ah_attr_new(c, name, KILN__ATTR_STRING);
    a->s = kiln__strdup(s);
    a->s_len = strlen(s);
}
static inline void ah_attr_ints(ah_case *c, const char *name, int n, const int64_t *v) {
    kiln__attr *a = ah_attr_new(c, name, KILN__ATTR_INTS);
    a->n = n;
    a->ints = malloc((size_t)(n ? n : 1) * sizeof *a->ints);
    memcpy(a->ints, v, (size_t)n * sizeof *v);
}
static inline void ah_attr_floats(ah_case *c, const char *name, int n, const float *v) {
    kiln__attr *a = ah_attr_new(c, name, KILN__ATTR_FLOATS);
    a->n = n;
    a->floats = malloc((size_t)(n ? n : 1) * sizeof *a->floats);
    memcpy(a->floats, v, (size_t)n * sizeof *v);
}

/* A tensor of uniform values in [lo, hi) (integers: rounded down) from seed. */
static inline kiln_tensor *ah_random(kiln_dtype dt, int ndim, const int64_t *dims, unsigned *seed,
                                     float lo, float hi) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(dt, ndim, dims, &t), KILN_OK);
    int64_t n = kiln__numel(ndim, dims);
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        double u = lo + (hi - lo) * ((*seed >> 8) / (double)(1 << 24));
        kiln__st_f(dt, kiln_tensor_data(t), i, kiln__dtype_is_float(dt) ? u : floor(u));
    }
    return t;
}

/* Runs the case's graph on a runner with these settings; copies of the
 * outputs into out[] (caller frees); the algorithm of the node into *algo. */
static inline void ah_exec(ah_case *c, const kiln__select_opts *sel, int threads,
                           kiln_tensor **out, const char **algo) {
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, c->g, NULL, threads), KILN_OK);
    r.sel = *sel;
    const kiln_tensor *ins[AH_MAX_IO];
    int n = 0;
    for (int k = 0; k < c->n_in; k++)
        if (c->in[k] && !c->constant[k]) ins[n++] = c->in[k];
    kiln_status s = kiln__runner_run(&r, n, ins);
    if (s != KILN_OK) fail_msg("run failed: %s", kiln_last_error());
    const kiln__algo *a = kiln__runner_algo(&r, c->node);
    *algo = a ? a->name : "reference";
    for (int k = 0; k < c->n_out; k++) {
        kiln_tensor *t = kiln__runner_output(&r, k);
        assert_non_null(t);
        assert_int_equal(kiln_tensor_copy(t, t->dtype, &out[k]), KILN_OK);
    }
    kiln__runner_free(&r);
}

/* Asserts got matches want (see the header comment). */
static inline void ah_compare(const kiln_tensor *got, const kiln_tensor *want, double tol,
                              const char *what) {
    assert_int_equal(got->dtype, want->dtype);
    assert_int_equal(got->ndim, want->ndim);
    for (int d = 0; d < got->ndim; d++) assert_int_equal(got->dims[d], want->dims[d]);
    int64_t n = kiln__numel(got->ndim, got->dims);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = kiln__ld_f(got->dtype, kiln_tensor_data((kiln_tensor *)got), i);
        double w = kiln__ld_f(want->dtype, kiln_tensor_data((kiln_tensor *)want), i);
        if (isnan(w) || isinf(w)) {
            if (!(isnan(w) ? isnan(g) : g == w))
                fail_msg("%s: element %lld is %g, the reference gives %g", what, (long long)i, g, w);
            continue;
        }
        if (!isfinite(g))
            fail_msg("%s: element %lld is %g, the reference gives %g", what, (long long)i, g, w);
        num += (g - w) * (g - w);
        den += w * w;
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    if (getenv("AH_PRINT_ERR")) printf("  %s: normalized error %.3g (tol %.3g)\n", what, err, tol);
    if (!(err <= tol)) fail_msg("%s: normalized error %.3g > %.3g", what, err, tol);
}

/* The device the fast runner may use (backend/device.h; NULL: CPU only).
 * Set by tests of the CUDA algorithms. */
static struct kiln__device *ah_device;

static inline const char *ah_check(ah_case *c, const char *force, kiln_precision p, int threads,
                                   double tol) {
    if (!c->finalized) {
        if (kiln__graph_finalize(c->g) != KILN_OK) fail_msg("graph: %s", kiln_last_error());
        c->finalized = 1;
    }
    kiln_tensor *ref[AH_MAX_IO] = {0}, *got[AH_MAX_IO] = {0};
    const char *ref_algo, *algo;
    kiln__select_opts sref = {.reference = 1};
    kiln__select_opts sfast = {.precision = p, .force_algo = force, .dev = ah_device};
    ah_exec(c, &sref, threads, ref, &ref_algo);
    ah_exec(c, &sfast, threads, got, &algo);
    if (force && strcmp(algo, force) != 0)
        fail_msg("algorithm %s did not take node %s (ran: %s)", force, c->g->nodes[c->node].op_type,
                 algo);
    for (int k = 0; k < c->n_out; k++) {
        char what[96];
        snprintf(what, sizeof what, "%s output %d (algorithm %s, %d threads)",
                 c->g->nodes[c->node].op_type, k, algo, threads);
        ah_compare(got[k], ref[k], tol, what);
        kiln_tensor_free(ref[k]);
        kiln_tensor_free(got[k]);
    }
    return algo;
}

/* Planner's choice; returns the algorithm that ran. */
static inline const char *ah_run(ah_case *c, kiln_precision p, int threads, double tol) {
    return ah_check(c, NULL, p, threads, tol);
}

/* Forces algorithm algo (fails the test if it does not take the node). */
static inline void ah_run_algo(ah_case *c, const char *algo, kiln_precision p, int threads,
                               double tol) {
    ah_check(c, algo, p, threads, tol);
}

static inline void ah_case_free(ah_case *c) {
    for (int k = 0; k < c->n_in; k++)
        if (!c->constant[k]) kiln_tensor_free(c->in[k]);
    kiln_graph_free(c->g);
    memset(c, 0, sizeof *c);
}

#endif
