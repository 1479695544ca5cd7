/* tests/unit/test_passes.c: graph optimization passes (src/graph/optimize.h).
 * Every case builds a small graph with random weights, optimizes a clone,
 * runs both on the same random inputs through the reference kernels and
 * asserts the outputs match, then asserts the rewrite happened (op counts).
 * The real models (tests/models/torch, the onnx wheel's light models) are
 * optimized and compared the same way; the rewrites per pass are printed. */
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "algo_harness.h"
#include "graph/exec.h"
#include "graph/ir.h"
#include "graph/optimize.h"
#include "graph_builder.h"

static unsigned seed = 12345;
/* passes optimize_and_check leaves out (bits of kiln__pass_id) */
static unsigned disabled_passes;

/* ---- building ---------------------------------------------------------------------- */

/* Graph input with static dims (dims[d] < 0: dynamic, named sym). */
static void input(kiln_graph *g, const char *name, int ndim, const int64_t *dims, const char *sym) {
    int v = kiln__graph_add_value(g, name);
    kiln__value *val = &g->values[v];
    val->kind = KILN__VAL_INPUT;
    val->dtype = KILN_DTYPE_F32;
    val->ndim = ndim;
    val->has_type = 1;
    for (int d = 0; d < ndim; d++) {
        val->dims[d].v = dims[d];
        if (dims[d] < 0) val->dims[d].sym = kiln__strdup(sym);
    }
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
}

static void rand_init(kiln_graph *g, const char *name, int ndim, const int64_t *dims, float lo, float hi) {
    init(g, name, ah_random(KILN_DTYPE_F32, ndim, dims, &seed, lo, hi));
}

static void scalar(kiln_graph *g, const char *name, double v) {
    init(g, name, vec(KILN_DTYPE_F32, 1, &v));
}

static void ints(kiln_graph *g, const char *name, int n, const int64_t *v) {
    double d[KILN_MAX_DIMS];
    for (int i = 0; i < n; i++) d[i] = (double)v[i];
    init(g, name, vec(KILN_DTYPE_I64, n, d));
}

static int count_op(const kiln_graph *g, const char *op) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) k += strcmp(g->nodes[i].op_type, op) == 0;
    return k;
}

/* ---- checking ------------------------------------------------------------------------ */

static void print_stats(const char *what, const kiln__opt_stats *st) {
    printf("  %-28s", what);
    for (int i = 0; i < KILN__N_PASSES; i++)
        if (st->rewrites[i]) printf(" %s=%d", kiln__pass_name(i), st->rewrites[i]);
    printf("\n");
}

/* Random inputs for g's declared inputs (dynamic dims: 2; int inputs in [0, imax)). */
static void make_inputs(const kiln_graph *g, kiln_tensor **in, int nan_at) {
    for (int i = 0; i < g->n_inputs; i++) {
        const kiln__value *v = &g->values[g->inputs[i]];
        int64_t dims[KILN_MAX_DIMS];
        for (int d = 0; d < v->ndim; d++) dims[d] = v->dims[d].v >= 0 ? v->dims[d].v : 2;
        kiln_dtype dt = v->dtype == KILN_DTYPE_UNDEFINED ? KILN_DTYPE_F32 : v->dtype;
        in[i] = kiln__dtype_is_float(dt) ? ah_random(dt, v->ndim, dims, &seed, -1, 1)
                                         : ah_random(dt, v->ndim, dims, &seed, 0, 8);
        if (nan_at >= 0 && i == 0 && kiln__dtype_is_float(dt) && kiln_tensor_numel(in[i]) > nan_at)
            kiln__st_f(dt, kiln_tensor_data(in[i]), nan_at, NAN);
    }
}

/* Runs g on in with the reference kernels (the passes are checked, not the
 * fast algorithms: those have their own tests); copies of the outputs into out. */
static void run_graph(const kiln_graph *g, kiln_tensor **in, kiln_tensor **out) {
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, g, NULL, 1), KILN_OK);
    r.sel.reference = getenv("PASSES_FAST") == NULL;
    kiln_status s = kiln__runner_run(&r, g->n_inputs, (const kiln_tensor *const *)in);
    if (s != KILN_OK) fail_msg("run failed: %s", kiln_last_error());
    for (int k = 0; k < g->n_outputs; k++) {
        kiln_tensor *t = kiln__runner_output(&r, k);
        assert_non_null(t);
        assert_int_equal(kiln_tensor_copy(t, t->dtype, &out[k]), KILN_OK);
    }
    kiln__runner_free(&r);
}

/* Optimizes a clone of g (finalized here), checks the outputs on random
 * inputs (one NaN in the first input when nan_at >= 0) and returns the
 * optimized graph (caller frees); g is freed. */
static kiln_graph *optimize_and_check(kiln_graph *g, double tol, int nan_at, kiln__opt_stats *st,
                                      const char *what) {
    if (kiln__graph_finalize(g) != KILN_OK) fail_msg("finalize: %s", kiln_last_error());
    kiln_graph *o = kiln__graph_clone(g);
    assert_non_null(o);
    kiln__opt_options opt = {.stats = st, .disable = disabled_passes};
    if (kiln__graph_optimize(o, &opt) != KILN_OK) fail_msg("optimize %s: %s", what, kiln_last_error());
    print_stats(what, st);
    assert_int_equal(o->n_inputs, g->n_inputs);
    assert_int_equal(o->n_outputs, g->n_outputs);
    for (int i = 0; i < g->n_outputs; i++)
        assert_string_equal(o->values[o->outputs[i]].name, g->values[g->outputs[i]].name);
    kiln_tensor *in[16] = {0}, *want[16] = {0}, *got[16] = {0};
    assert_true(g->n_inputs <= 16 && g->n_outputs <= 16);
    make_inputs(g, in, nan_at);
    run_graph(g, in, want);
    run_graph(o, in, got);
    for (int k = 0; k < g->n_outputs; k++) {
        ah_compare(got[k], want[k], tol, g->values[g->outputs[k]].name);
        kiln_tensor_free(got[k]);
        kiln_tensor_free(want[k]);
    }
    for (int i = 0; i < g->n_inputs; i++) kiln_tensor_free(in[i]);
    kiln_graph_free(g);
    return o;
}

/* ---- passes ---------------------------------------------------------------------------- */

static void test_clone(void **state) {
    int64_t d[] = {3, 4};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 2, d, NULL);
    rand_init(g, "w", 2, d, -1, 1);
    node(g, "Add", "y", "x", "w", NULL);
    int_attr(node(g, "Softmax", "z", "y", NULL), "axis", -1);
    add_output(g, "z");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_graph *c = kiln__graph_clone(g);
    assert_non_null(c);
    assert_int_equal(c->n_values, g->n_values);
    assert_int_equal(c->n_nodes, g->n_nodes);
    assert_int_equal(c->n_opsets, 1);
    assert_int_equal(kiln__attr_i(&c->nodes[1], "axis", 0), -1);
    const kiln_tensor *w = c->values[kiln__graph_find(c, "w")].init;
    assert_ptr_not_equal(w, g->values[kiln__graph_find(g, "w")].init);
    assert_memory_equal(w->data, g->values[kiln__graph_find(g, "w")].init->data, 12 * sizeof(float));
    kiln__opt_stats st;
    kiln_graph_free(optimize_and_check(c, 1e-6, -1, &st, "clone"));
    kiln_graph_free(g);
}

static void test_identity_dead(void **state) {
    int64_t d[] = {2, 5};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 2, d, NULL);
    node(g, "Identity", "a", "x", NULL);
    node(g, "Relu", "b", "a", NULL);
    node(g, "Dropout", "c", "b", NULL);
    int_attr(node(g, "Cast", "e", "c", NULL), "to", KILN_DTYPE_F32);
    node(g, "Neg", "f", "e", NULL);
    node(g, "Identity", "out", "f", NULL);  /* graph output: keeps its name */
    node(g, "Exp", "unused", "b", NULL);    /* reaches no output */
    node(g, "Sqrt", "unused2", "unused", NULL);
    add_output(g, "out");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-6, 3, &st, "identity+dead");
    assert_int_equal(o->n_nodes, 2);
    assert_int_equal(count_op(o, "Relu") + count_op(o, "Neg"), 2);
    assert_int_equal(st.rewrites[KILN__PASS_DEAD], 2);
    assert_int_equal(st.rewrites[KILN__PASS_IDENTITY], 4);
    kiln_graph_free(o);
}

static void test_fold(void **state) {
    int64_t wd[] = {6, 4}, xd[] = {3, 4}, shp[] = {4, 6};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 2, xd, NULL);
    rand_init(g, "w", 2, wd, -1, 1);
    ints(g, "shape", 2, shp);
    int64_t perm[] = {1, 0};
    ints_attr(node(g, "Transpose", "wt", "w", NULL), "perm", 2, perm);
    node(g, "Reshape", "wr", "wt", "shape", NULL);
    kiln__node *c = node(g, "Constant", "two", NULL);
    c->attr = calloc(1, sizeof *c->attr);
    c->attr[0] = (kiln__attr){.name = kiln__strdup("value_float"), .type = KILN__ATTR_FLOAT, .f = 2.0f};
    c->n_attr = 1;
    node(g, "Mul", "w2", "wr", "two", NULL);
    node(g, "MatMul", "y", "x", "w2", NULL);
    add_output(g, "y");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-6, -1, &st, "fold");
    assert_int_equal(o->n_nodes, 1);
    assert_int_equal(count_op(o, "MatMul"), 1);
    assert_int_equal(st.rewrites[KILN__PASS_FOLD], 4);
    assert_int_equal(o->n_inits, 1); /* the folded weight only: the rest compacted away */
    kiln_graph_free(o);
}

/* Sum of one input is dropped, Sum of two becomes Add (which the conv pass
 * then fuses as a residual), Sum of three stays. */
static void test_sum(void **state) {
    int64_t xd[] = {1, 4, 6, 6}, wd[] = {4, 4, 3, 3};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 4, xd, NULL);
    rand_init(g, "w", 4, wd, -1, 1);
    int64_t pads[] = {1, 1, 1, 1};
    ints_attr(node(g, "Conv", "c", "x", "w", NULL), "pads", 4, pads);
    node(g, "Sum", "s1", "c", NULL);
    node(g, "Sum", "s2", "s1", "x", NULL);
    node(g, "Sum", "s3", "s2", "x", "s2", NULL);
    add_output(g, "s3");
    kiln__opt_stats st;
    disabled_passes = 1u << KILN__PASS_NCHWC;
    kiln_graph *o = optimize_and_check(g, 1e-6, -1, &st, "sum");
    disabled_passes = 0;
    assert_int_equal(st.rewrites[KILN__PASS_IDENTITY], 2);
    assert_int_equal(count_op(o, "FusedConv"), 1); /* with the residual */
    assert_int_equal(count_op(o, "Sum"), 1);
    assert_int_equal(o->n_nodes, 2);
    kiln_graph_free(o);
}

/* A constant expanded into a large tensor is folded when it is used only as
 * a weight (here MatMul's B), and left to run time otherwise (MatMul's A). */
static void test_fold_expanded(void **state) {
    int64_t xd[] = {3, 32}, wshape[] = {32, 64}, bd[] = {64, 5};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 2, xd, NULL);
    scalar(g, "v", 0.25);
    ints(g, "wshape", 2, wshape);
    rand_init(g, "b", 2, bd, -1, 1);
    node(g, "Expand", "w", "v", "wshape", NULL); /* (32, 64): 8 KB */
    node(g, "MatMul", "y", "x", "w", NULL);
    node(g, "Expand", "e", "v", "wshape", NULL);
    node(g, "MatMul", "ee", "e", "b", NULL); /* e is the activation side */
    node(g, "Add", "z", "ee", "ee", NULL);
    add_output(g, "y");
    add_output(g, "z");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-6, -1, &st, "fold (expanded)");
    assert_int_equal(st.rewrites[KILN__PASS_FOLD], 1);
    assert_int_equal(count_op(o, "Expand"), 1);
    kiln_graph_free(o);
}

static void bn_params(kiln_graph *g, const char *p, int64_t k) {
    char name[64];
    const char *sfx[] = {"s", "b", "m", "v"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s_%s", p, sfx[i]);
        rand_init(g, name, 1, &k, i == 3 ? 0.5f : -1, i == 3 ? 2 : 1);
    }
}

static kiln__node *bn(kiln_graph *g, const char *out, const char *x, const char *p) {
    char n[4][64];
    const char *sfx[] = {"s", "b", "m", "v"};
    for (int i = 0; i < 4; i++) snprintf(n[i], sizeof n[i], "%s_%s", p, sfx[i]);
    kiln__node *b = node(g, "BatchNormalization", out, x, n[0], n[1], n[2], n[3], NULL);
    float_attr(b, "epsilon", 1e-3f);
    return b;
}

static void test_bn(void **state) {
    int64_t xd[] = {2, 3, 7, 7}, wd[] = {5, 3, 3, 3}, k = 5, ad[] = {4, 6}, gd[] = {5, 6};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 4, xd, NULL);
    input(g, "a", 2, ad, NULL);
    rand_init(g, "w", 4, wd, -1, 1);
    rand_init(g, "cb", 1, &k, -1, 1);
    rand_init(g, "gw", 2, gd, -1, 1);
    bn_params(g, "bn1", 5);
    bn_params(g, "bn2", 5);
    bn_params(g, "bn3", 3);
    node(g, "Conv", "c", "x", "w", "cb", NULL);
    bn(g, "y", "c", "bn1");
    kiln__node *gm = node(g, "Gemm", "gy", "a", "gw", NULL);
    int_attr(gm, "transB", 1);
    bn(g, "gz", "gy", "bn2");
    bn(g, "lone", "x", "bn3"); /* no producer to fold into */
    add_output(g, "y");
    add_output(g, "gz");
    add_output(g, "lone");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, -1, &st, "bn");
    assert_int_equal(count_op(o, "BatchNormalization"), 1);
    assert_int_equal(st.rewrites[KILN__PASS_BN], 2);
    kiln_graph_free(o);
}

/* Per-channel Mul and Add after a Conv (constants (K,1,1) and (1,K,1,1),
 * on either side, after a BatchNormalization already folded) and a scalar
 * Mul after a Gemm fold into the producer, and those after a lone
 * BatchNormalization into its parameters; a Mul varying along H, one after
 * a MatMul and one whose producer has another reader stay. */
static void test_affine(void **state) {
    (void)state;
    int64_t xd[] = {2, 3, 7, 7}, wd[] = {5, 3, 3, 3}, kd[] = {5, 1, 1}, k4[] = {1, 5, 1, 1};
    int64_t hd[] = {1, 1, 7, 1}, ad[] = {4, 6}, gd[] = {5, 6}, one = 1, md[] = {6, 5};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 4, xd, NULL);
    input(g, "a", 2, ad, NULL);
    rand_init(g, "w", 4, wd, -1, 1);
    rand_init(g, "w2", 4, wd, -1, 1);
    rand_init(g, "sc", 3, kd, -1, 1);
    rand_init(g, "sh", 4, k4, -1, 1);
    rand_init(g, "hv", 4, hd, -1, 1);
    rand_init(g, "gw", 2, gd, -1, 1);
    rand_init(g, "mw", 2, md, -1, 1);
    rand_init(g, "s1", 1, &one, -1, 1);
    rand_init(g, "s3", 3, (int64_t[]){3, 1, 1}, -1, 1);
    rand_init(g, "b3", 4, (int64_t[]){1, 3, 1, 1}, -1, 1);
    bn_params(g, "bn1", 5);
    bn_params(g, "bn2", 3);
    node(g, "Conv", "c", "x", "w", NULL);
    bn(g, "cb", "c", "bn1");
    node(g, "Mul", "cm", "sc", "cb", NULL);
    node(g, "Add", "y", "cm", "sh", NULL);
    ints_attr(node(g, "Conv", "c2", "x", "w2", NULL), "pads", 4, (int64_t[]){1, 1, 1, 1});
    node(g, "Mul", "yh", "c2", "hv", NULL); /* varies along H */
    kiln__node *gm = node(g, "Gemm", "gy", "a", "gw", NULL);
    int_attr(gm, "transB", 1);
    node(g, "Mul", "gz", "gy", "s1", NULL);
    node(g, "MatMul", "mm", "a", "mw", NULL);
    node(g, "Mul", "mz", "mm", "s1", NULL);
    bn(g, "lb", "x", "bn2"); /* no producer: the Mul and Add go into its parameters */
    node(g, "Mul", "lm", "lb", "s3", NULL);
    node(g, "Add", "ly", "b3", "lm", NULL);
    add_output(g, "y");
    add_output(g, "ly");
    add_output(g, "yh");
    add_output(g, "gz");
    add_output(g, "mz");
    add_output(g, "c2"); /* c2 has another reader */
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, -1, &st, "affine");
    assert_int_equal(count_op(o, "BatchNormalization"), 1); /* lb */
    assert_int_equal(count_op(o, "Mul"), 2);                /* yh, mz */
    assert_int_equal(count_op(o, "Add"), 0);
    assert_int_equal(st.rewrites[KILN__PASS_BN], 6);
    kiln_graph_free(o);
}

static void test_layout(void **state) {
    int64_t xd[] = {2, 3, 4}, s1[] = {6, 4}, s2[] = {4, 6}, ax[] = {1};
    int64_t p1[] = {1, 0, 2}, p2[] = {2, 0, 1}, p3[] = {0, 2, 1}, id[] = {0, 1, 2};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 3, xd, NULL);
    ints(g, "s1", 2, s1);
    ints(g, "s2", 2, s2);
    ints(g, "ax", 1, ax);
    ints_attr(node(g, "Transpose", "t1", "x", NULL), "perm", 3, p1);
    ints_attr(node(g, "Transpose", "t2", "t1", NULL), "perm", 3, p1); /* identity again */
    ints_attr(node(g, "Transpose", "t3", "t2", NULL), "perm", 3, p2);
    ints_attr(node(g, "Transpose", "t4", "t3", NULL), "perm", 3, p3); /* composes */
    ints_attr(node(g, "Transpose", "t5", "t4", NULL), "perm", 3, id); /* identity */
    node(g, "Reshape", "r1", "t5", "s1", NULL);
    node(g, "Reshape", "r2", "r1", "s2", NULL);
    node(g, "Unsqueeze", "u", "r2", "ax", NULL);
    node(g, "Squeeze", "sq", "u", "ax", NULL);
    node(g, "Neg", "out", "sq", NULL);
    add_output(g, "out");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 0, 1, &st, "layout");
    assert_int_equal(count_op(o, "Transpose"), 1);
    assert_int_equal(count_op(o, "Reshape"), 1);
    assert_int_equal(count_op(o, "Squeeze") + count_op(o, "Unsqueeze"), 0);
    assert_int_equal(o->n_nodes, 3);
    kiln_graph_free(o);
}

/* erf form in three orderings and the tanh form with Pow and with Mul cubes */
static void test_gelu(void **state) {
    int64_t xd[] = {3, 17};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 2, xd, NULL);
    scalar(g, "sqrt2", 1.4142135381698608);
    scalar(g, "rsqrt2", 0.7071067811865476);
    scalar(g, "one", 1.0);
    scalar(g, "half", 0.5);
    scalar(g, "three", 3.0);
    scalar(g, "c", 0.044715);
    scalar(g, "k", 0.7978845608028654);
    /* x * (1 + erf(x / sqrt2)) * 0.5 */
    node(g, "Div", "a1", "x", "sqrt2", NULL);
    node(g, "Erf", "a2", "a1", NULL);
    node(g, "Add", "a3", "a2", "one", NULL);
    node(g, "Mul", "a4", "x", "a3", NULL);
    node(g, "Mul", "ya", "a4", "half", NULL);
    /* (x * 0.5) * (1 + erf(x * rsqrt2)) */
    node(g, "Mul", "b1", "rsqrt2", "x", NULL);
    node(g, "Erf", "b2", "b1", NULL);
    node(g, "Add", "b3", "one", "b2", NULL);
    node(g, "Mul", "bh", "x", "half", NULL);
    node(g, "Mul", "yb", "bh", "b3", NULL);
    /* tanh form, Pow cube, (a * 0.5) * x */
    node(g, "Pow", "c1", "x", "three", NULL);
    node(g, "Mul", "c2", "c1", "c", NULL);
    node(g, "Add", "c3", "x", "c2", NULL);
    node(g, "Mul", "c4", "c3", "k", NULL);
    node(g, "Tanh", "c5", "c4", NULL);
    node(g, "Add", "c6", "c5", "one", NULL);
    node(g, "Mul", "c7", "c6", "half", NULL);
    node(g, "Mul", "yc", "c7", "x", NULL);
    /* tanh form, x * (x * x) cube */
    node(g, "Mul", "d0", "x", "x", NULL);
    node(g, "Mul", "d1", "x", "d0", NULL);
    node(g, "Mul", "d2", "c", "d1", NULL);
    node(g, "Add", "d3", "d2", "x", NULL);
    node(g, "Mul", "d4", "k", "d3", NULL);
    node(g, "Tanh", "d5", "d4", NULL);
    node(g, "Add", "d6", "d5", "one", NULL);
    node(g, "Mul", "dh", "half", "x", NULL);
    node(g, "Mul", "yd", "dh", "d6", NULL);
    add_output(g, "ya");
    add_output(g, "yb");
    add_output(g, "yc");
    add_output(g, "yd");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, 5, &st, "gelu");
    assert_int_equal(o->n_nodes, 4);
    assert_int_equal(count_op(o, "Gelu"), 4);
    int tanh = 0;
    for (int i = 0; i < o->n_nodes; i++)
        tanh += strcmp(kiln__attr_s(&o->nodes[i], "approximate", "none"), "tanh") == 0;
    assert_int_equal(tanh, 2);
    kiln_graph_free(o);
}

/* the decomposed LayerNorm (Pow form, opset 17 attribute axes; Mul form) */
static void test_layernorm(void **state) {
    int64_t xd[] = {2, 5, 16}, n = 16, ax[] = {-1};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 3, xd, NULL);
    rand_init(g, "gamma", 1, &n, 0.5f, 1.5f);
    rand_init(g, "beta", 1, &n, -1, 1);
    scalar(g, "two", 2.0);
    scalar(g, "eps", 1e-5);
    ints_attr(node(g, "ReduceMean", "m", "x", NULL), "axes", 1, ax);
    node(g, "Sub", "d", "x", "m", NULL);
    node(g, "Pow", "sq", "d", "two", NULL);
    ints_attr(node(g, "ReduceMean", "v", "sq", NULL), "axes", 1, ax);
    node(g, "Add", "ve", "v", "eps", NULL);
    node(g, "Sqrt", "sd", "ve", NULL);
    node(g, "Div", "nrm", "d", "sd", NULL);
    node(g, "Mul", "sc", "nrm", "gamma", NULL);
    node(g, "Add", "y", "sc", "beta", NULL);
    /* Mul form, no beta */
    ints_attr(node(g, "ReduceMean", "m2", "y", NULL), "axes", 1, ax);
    node(g, "Sub", "e", "y", "m2", NULL);
    node(g, "Mul", "esq", "e", "e", NULL);
    ints_attr(node(g, "ReduceMean", "v2", "esq", NULL), "axes", 1, ax);
    node(g, "Add", "ve2", "eps", "v2", NULL);
    node(g, "Sqrt", "sd2", "ve2", NULL);
    node(g, "Div", "n2", "e", "sd2", NULL);
    node(g, "Mul", "y2", "gamma", "n2", NULL);
    add_output(g, "y2");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, -1, &st, "layernorm");
    assert_int_equal(o->n_nodes, 2);
    assert_int_equal(count_op(o, "LayerNormalization"), 2);
    kiln_graph_free(o);
}

/* BERT-style self-attention with a mask, as bench/models.py writes it */
static void test_attention(void **state) {
    const int64_t B = 2, S = 5, E = 16, H = 2, D = 8;
    int64_t xd[] = {B, S, E}, md[] = {B, 1, 1, S}, wd[] = {E, E}, heads[] = {B, S, H, D}, flat[] = {B, S, E};
    int64_t p0213[] = {0, 2, 1, 3}, p0231[] = {0, 2, 3, 1};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 3, xd, NULL);
    input(g, "mask", 4, md, NULL);
    ints(g, "heads", 4, heads);
    ints(g, "flat", 2 + 1, flat);
    scalar(g, "sqrtd", sqrt((double)D));
    const char *pj[] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        char w[16], b[16], mm[16], ad[16], rs[16], tr[16];
        snprintf(w, sizeof w, "W%s", pj[i]), snprintf(b, sizeof b, "b%s", pj[i]);
        snprintf(mm, sizeof mm, "%s_mm", pj[i]), snprintf(ad, sizeof ad, "%s_add", pj[i]);
        snprintf(rs, sizeof rs, "%s_rs", pj[i]), snprintf(tr, sizeof tr, "%s_t", pj[i]);
        rand_init(g, w, 2, wd, -0.5f, 0.5f);
        rand_init(g, b, 1, &wd[0], -0.5f, 0.5f);
        node(g, "MatMul", mm, "x", w, NULL);
        node(g, "Add", ad, mm, b, NULL);
        node(g, "Reshape", rs, ad, "heads", NULL);
        ints_attr(node(g, "Transpose", tr, rs, NULL), "perm", 4, i == 1 ? p0231 : p0213);
    }
    node(g, "MatMul", "scores", "q_t", "k_t", NULL);
    node(g, "Div", "scaled", "scores", "sqrtd", NULL);
    node(g, "Add", "masked", "scaled", "mask", NULL);
    int_attr(node(g, "Softmax", "probs", "masked", NULL), "axis", -1);
    node(g, "MatMul", "ctx", "probs", "v_t", NULL);
    ints_attr(node(g, "Transpose", "ctx_t", "ctx", NULL), "perm", 4, p0213);
    node(g, "Reshape", "out", "ctx_t", "flat", NULL);
    add_output(g, "out");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, -1, &st, "attention");
    assert_int_equal(count_op(o, "Attention"), 1);
    assert_int_equal(count_op(o, "Softmax"), 0);
    assert_int_equal(count_op(o, "MatMul"), 0); /* projections became FusedMatMul */
    kiln_graph_free(o);
}

/* MatMul + bias -> Gemm (2-D A); N-D A with bias, residual and activations ->
 * FusedMatMul (when kiln has it) */
static void test_matmul(void **state) {
    int64_t ad[] = {4, 6}, xd[] = {2, 3, 6}, wd[] = {6, 5}, n = 5, zd[] = {2, 3, 5};
    kiln_graph *g = new_graph(NULL);
    input(g, "a", 2, ad, NULL);
    input(g, "x", 3, xd, NULL);
    input(g, "z", 3, zd, NULL);
    rand_init(g, "w", 2, wd, -1, 1);
    rand_init(g, "b", 1, &n, -1, 1);
    scalar(g, "lo", -0.2), scalar(g, "hi", 0.3);
    node(g, "MatMul", "am", "a", "w", NULL);
    node(g, "Add", "ya", "b", "am", NULL);
    node(g, "MatMul", "xm", "x", "w", NULL);
    node(g, "Add", "xb", "xm", "b", NULL);
    node(g, "Add", "xr", "z", "xb", NULL);
    node(g, "Sigmoid", "xs", "xr", NULL);
    node(g, "Mul", "yx", "xr", "xs", NULL);
    node(g, "MatMul", "cm", "x", "w", NULL);
    node(g, "Clip", "yc", "cm", "lo", "hi", NULL);
    add_output(g, "ya");
    add_output(g, "yx");
    add_output(g, "yc");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, 2, &st, "matmul");
    assert_int_equal(count_op(o, "Gemm"), 1);
    if (kiln__op_find("kiln", "FusedMatMul") >= 0) {
        assert_int_equal(count_op(o, "FusedMatMul"), 2);
        assert_int_equal(o->n_nodes, 3);
    }
    kiln_graph_free(o);
}

/* Conv + channel bias + residual + Relu/Clip/SiLU -> FusedConv (when kiln has it) */
static void test_conv(void **state) {
    int64_t xd[] = {1, 3, 8, 8}, wd[] = {4, 3, 3, 3}, bd[] = {4, 1, 1}, zd[] = {1, 4, 8, 8}, k = 4;
    int64_t pads[] = {1, 1, 1, 1};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 4, xd, NULL);
    input(g, "z", 4, zd, NULL);
    rand_init(g, "w", 4, wd, -1, 1);
    rand_init(g, "cb", 1, &k, -1, 1);
    rand_init(g, "bias", 3, bd, -1, 1);
    ints_attr(node(g, "Conv", "c1", "x", "w", NULL), "pads", 4, pads);
    node(g, "Add", "c2", "c1", "bias", NULL);
    node(g, "Add", "c3", "c2", "z", NULL);
    node(g, "Relu", "y1", "c3", NULL);
    ints_attr(node(g, "Conv", "d1", "x", "w", "cb", NULL), "pads", 4, pads);
    node(g, "Sigmoid", "d2", "d1", NULL);
    node(g, "Mul", "y2", "d2", "d1", NULL);
    node(g, "Conv", "e1", "x", "w", NULL); /* nothing to fuse: stays a Conv */
    add_output(g, "y1");
    add_output(g, "y2");
    add_output(g, "e1");
    kiln__opt_stats st;
    disabled_passes = 1u << KILN__PASS_NCHWC; /* counts FusedConv nodes */
    kiln_graph *o = optimize_and_check(g, 1e-5, 7, &st, "conv");
    disabled_passes = 0;
    if (kiln__op_find("kiln", "FusedConv") >= 0) {
        assert_int_equal(count_op(o, "FusedConv"), 2);
        assert_int_equal(count_op(o, "Conv"), 1);
        assert_int_equal(o->n_nodes, 3);
    }
    kiln_graph_free(o);
}

/* The grad pass: ReluGrad(MaxPoolGrad(dY, R), R) -> MaxPoolGrad relu = 1;
 * not when the MaxPoolGrad's output is read elsewhere or the two read
 * different values. */
static kiln__node *kiln_node(kiln__node *n) {
    free(n->domain);
    n->domain = kiln__strdup("kiln");
    return n;
}

static void test_grad(void **state) {
    int64_t xd[] = {2, 3, 8, 8}, yd[] = {2, 3, 4, 4}, k[] = {2, 2};
    kiln_graph *g = new_graph(NULL);
    g->opsets = realloc(g->opsets, 2 * sizeof *g->opsets);
    g->opsets[1] = (kiln__opset){.domain = kiln__strdup("kiln"), .version = 1};
    g->n_opsets = 2;
    input(g, "b", 4, xd, NULL);
    input(g, "dy", 4, yd, NULL);
    node(g, "Relu", "r", "b", NULL);
    node(g, "Sigmoid", "s", "b", NULL);
    const char *outs[] = {"d1", "d2", "d3"};
    const char *pool_x[] = {"r", "r", "s"}; /* d3: ReluGrad reads another value */
    for (int i = 0; i < 3; i++) {
        char a[8];
        snprintf(a, sizeof a, "a%d", i + 1);
        kiln__node *mp = kiln_node(node(g, "MaxPoolGrad", a, "dy", pool_x[i], NULL));
        ints_attr(mp, "kernel_shape", 2, k);
        ints_attr(mp, "strides", 2, k);
        kiln_node(node(g, "ReluGrad", outs[i], a, "r", NULL));
        add_output(g, outs[i]);
    }
    add_output(g, "a2"); /* read elsewhere: stays */
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 0, -1, &st, "grad");
    assert_int_equal(st.rewrites[KILN__PASS_GRAD], 1);
    assert_int_equal(count_op(o, "ReluGrad"), 2);
    assert_int_equal(count_op(o, "MaxPoolGrad"), 3);
    int relu = 0;
    for (int i = 0; i < o->n_nodes; i++) relu += kiln__attr_i(&o->nodes[i], "relu", 0) != 0;
    assert_int_equal(relu, 1);
    kiln_graph_free(o);
}

/* Convolution chains into the blocked layout: a plain-input stem, depthwise,
 * 1x1 with a residual, a MaxPool in the middle, graph outputs from blocked
 * values, partial channel blocks, a dynamic batch. */
static void test_nchwc(void **state) {
    (void)state;
    int64_t xd[] = {-1, 3, 16, 15}, w1[] = {20, 3, 3, 3}, w2[] = {20, 1, 3, 3}, w3[] = {20, 20, 1, 1};
    int64_t w4[] = {33, 20, 3, 3}, k20 = 20, pads[] = {1, 1, 1, 1}, s2[] = {2, 2}, k2[] = {2, 2};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 4, xd, "N");
    rand_init(g, "w1", 4, w1, -1, 1);
    rand_init(g, "b1", 1, &k20, -1, 1);
    rand_init(g, "w2", 4, w2, -1, 1);
    rand_init(g, "w3", 4, w3, -1, 1);
    rand_init(g, "w4", 4, w4, -1, 1);
    kiln__node *n = node(g, "Conv", "c1", "x", "w1", "b1", NULL);
    ints_attr(n, "pads", 4, pads);
    ints_attr(n, "strides", 2, s2);
    node(g, "Relu", "r1", "c1", NULL);
    n = node(g, "Conv", "c2", "r1", "w2", NULL);
    ints_attr(n, "pads", 4, pads);
    int_attr(n, "group", 20);
    node(g, "Relu", "r2", "c2", NULL);
    node(g, "Conv", "c3", "r2", "w3", NULL);
    node(g, "Add", "y2", "c3", "r1", NULL);
    n = node(g, "MaxPool", "mp", "y2", NULL);
    ints_attr(n, "kernel_shape", 2, k2);
    ints_attr(n, "strides", 2, s2);
    ints_attr(node(g, "Conv", "y1", "mp", "w4", NULL), "pads", 4, pads);
    add_output(g, "y1");
    add_output(g, "y2");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, 5, &st, "nchwc");
    if (kiln__cpu_has_avx512f()) {
        assert_int_equal(count_op(o, "ConvNCHWc"), 4);
        assert_int_equal(count_op(o, "PoolNCHWc"), 1);    /* mp */
        assert_int_equal(count_op(o, "ReorderNCHWc"), 0); /* the stem reads x as it is */
        assert_int_equal(count_op(o, "ReorderNCHW"), 2);  /* the outputs y2 and y1 */
        assert_int_equal(count_op(o, "Conv") + count_op(o, "FusedConv"), 0);
    }
    kiln_graph_free(o);
    /* a lone Conv (nothing fused, so no kiln import before this pass) */
    int64_t xd2[] = {2, 17, 6, 5}, w5[] = {4, 17, 3, 3};
    g = new_graph(NULL);
    input(g, "x", 4, xd2, NULL);
    rand_init(g, "w5", 4, w5, -1, 1);
    ints_attr(node(g, "Conv", "y", "x", "w5", NULL), "pads", 4, pads);
    add_output(g, "y");
    o = optimize_and_check(g, 1e-5, -1, &st, "nchwc, lone conv");
    if (kiln__cpu_has_avx512f()) {
        assert_int_equal(count_op(o, "ConvNCHWc"), 1);
        assert_int_equal(count_op(o, "ReorderNCHWc"), 1);
        assert_int_equal(count_op(o, "ReorderNCHW"), 1);
    }
    kiln_graph_free(o);
    /* grouped: groups of whole blocks (AlexNet's group 2) convert, 1x1 and
     * 3x3; ShuffleNet's (groups of 68 input channels into 17 outputs,
     * twice the products in whole blocks) stay plain; narrow groups (8
     * input channels) convert 3x3 (twice the products), not 1x1 */
    int64_t xd3[] = {1, 64, 5, 6}, wg1[] = {96, 32, 1, 1}, wg2[] = {32, 48, 3, 3};
    int64_t wg3[] = {68, 24, 1, 1}, wg4[] = {96, 8, 3, 3}, wg5[] = {48, 8, 1, 1};
    g = new_graph(NULL);
    input(g, "x", 4, xd3, NULL);
    rand_init(g, "wg1", 4, wg1, -1, 1);
    rand_init(g, "wg2", 4, wg2, -1, 1);
    rand_init(g, "wg3", 4, wg3, -1, 1);
    rand_init(g, "wg4", 4, wg4, -1, 1);
    rand_init(g, "wg5", 4, wg5, -1, 1);
    int_attr(node(g, "Conv", "g1", "x", "wg1", NULL), "group", 2);
    node(g, "Relu", "r", "g1", NULL);
    n = node(g, "Conv", "y1", "r", "wg2", NULL);
    int_attr(n, "group", 2);
    ints_attr(n, "pads", 4, pads);
    int_attr(node(g, "Conv", "y2", "r", "wg3", NULL), "group", 4);
    n = node(g, "Conv", "y3", "r", "wg4", NULL);
    int_attr(n, "group", 12);
    ints_attr(n, "pads", 4, pads);
    int_attr(node(g, "Conv", "y4", "r", "wg5", NULL), "group", 12);
    add_output(g, "y1");
    add_output(g, "y2");
    add_output(g, "y3");
    add_output(g, "y4");
    o = optimize_and_check(g, 1e-5, -1, &st, "nchwc, grouped");
    if (kiln__cpu_has_avx512f()) {
        assert_int_equal(count_op(o, "ConvNCHWc"), 3);
        assert_int_equal(count_op(o, "Conv"), 2); /* y2, y4 */
    }
    kiln_graph_free(o);
}

static kiln__node *pool(kiln_graph *g, const char *op, const char *out, const char *in,
                        int64_t k, int64_t stride, const int64_t *pads) {
    kiln__node *n = node(g, op, out, in, NULL);
    const int64_t ks[2] = {k, k}, st[2] = {stride, stride};
    ints_attr(n, "kernel_shape", 2, ks);
    ints_attr(n, "strides", 2, st);
    ints_attr(n, "pads", 4, pads);
    return n;
}

/* An inception-style module in the blocked layout: branches of 1x1 and 3x3
 * convolutions and of average (count_include_pad) and max pools, a channel
 * Concat of whole blocks (converted) and one whose first input is a partial
 * block (left plain, through reorders), a ceil_mode MaxPool with end pads,
 * global max and average pools as outputs, a pre-activation
 * BatchNormalization (a depthwise 1x1 ConvNCHWc taking the Relu). */
static void test_nchwc_pools(void **state) {
    (void)state;
    const int64_t xd[] = {2, 3, 13, 14}, ws[] = {24, 3, 3, 3}, wa[] = {16, 24, 1, 1};
    const int64_t wb[] = {32, 24, 3, 3}, wc[] = {8, 24, 1, 1}, wd[] = {20, 24, 1, 1};
    const int64_t we[] = {16, 68, 1, 1}, p1[] = {1, 1, 1, 1}, p0[] = {0, 0, 0, 0};
    const int64_t pe[] = {0, 0, 1, 1};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 4, xd, NULL);
    rand_init(g, "ws", 4, ws, -1, 1);
    rand_init(g, "wa", 4, wa, -1, 1);
    rand_init(g, "wb", 4, wb, -1, 1);
    rand_init(g, "wc", 4, wc, -1, 1);
    rand_init(g, "wd", 4, wd, -1, 1);
    rand_init(g, "we", 4, we, -1, 1);
    ints_attr(node(g, "Conv", "s", "x", "ws", NULL), "pads", 4, p1);
    node(g, "Relu", "sr", "s", NULL);
    node(g, "Conv", "a", "sr", "wa", NULL);
    ints_attr(node(g, "Conv", "b", "sr", "wb", NULL), "pads", 4, p1);
    kiln__node *n = pool(g, "AveragePool", "ap", "sr", 3, 1, p1);
    int_attr(n, "count_include_pad", 1);
    node(g, "Conv", "c", "ap", "wc", NULL);
    pool(g, "MaxPool", "mp", "sr", 3, 1, p1);
    node(g, "Conv", "d", "mp", "wd", NULL);
    n = node(g, "Concat", "cat", "a", "b", "d", NULL);
    int_attr(n, "axis", 1);
    n = node(g, "Concat", "cat2", "c", "a", NULL); /* 8 channels first: stays plain */
    int_attr(n, "axis", -3);
    n = pool(g, "MaxPool", "cp", "cat", 3, 2, pe);
    int_attr(n, "ceil_mode", 1);
    node(g, "Conv", "y1", "cp", "we", NULL);
    node(g, "GlobalAveragePool", "y2", "cat", NULL);
    node(g, "GlobalMaxPool", "y3", "y1", NULL);
    pool(g, "AveragePool", "y4", "cat2", 2, 2, p0);
    /* pre-activation: BatchNormalization, per-channel Mul, Relu, Conv */
    bn_params(g, "bn", 68);
    rand_init(g, "sc", 3, (int64_t[]){68, 1, 1}, -1, 1);
    rand_init(g, "wf", 4, (int64_t[]){8, 68, 1, 1}, -1, 1);
    bn(g, "pb", "cat", "bn");
    node(g, "Mul", "pm", "pb", "sc", NULL);
    node(g, "Relu", "pr", "pm", NULL);
    node(g, "Conv", "y5", "pr", "wf", NULL);
    add_output(g, "y1");
    add_output(g, "y2");
    add_output(g, "y3");
    add_output(g, "y4");
    add_output(g, "y5");
    kiln__opt_stats st;
    /* no NaN input: with PASSES_FAST, Winograd spreads a NaN over its tile */
    kiln_graph *o = optimize_and_check(g, 1e-5, -1, &st, "nchwc pools and concats");
    if (kiln__cpu_has_avx512f()) {
        assert_int_equal(count_op(o, "ConvNCHWc"), 8); /* and pb (with pr), y5 */
        assert_int_equal(count_op(o, "BatchNormalization") + count_op(o, "Relu"), 0);
        assert_int_equal(count_op(o, "PoolNCHWc"), 5); /* ap, mp, cp, y2, y3 */
        assert_int_equal(count_op(o, "Concat"), 2);
        assert_int_equal(count_op(o, "ReorderNCHWc"), 0);
        /* y1, y2, y3, y5, and c and a for cat2 */
        assert_int_equal(count_op(o, "ReorderNCHW"), 6);
        assert_int_equal(count_op(o, "MaxPool") + count_op(o, "AveragePool"), 1); /* y4 */
    }
    kiln_graph_free(o);
}

/* Nodes of type op with at least n inputs. */
static int count_op_inputs(const kiln_graph *g, const char *op, int n) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) k += strcmp(g->nodes[i].op_type, op) == 0 && g->nodes[i].n_in >= n;
    return k;
}

/* MobileNetV2's inverted residual blocks: a pointwise convolution read
 * only by a depthwise one becomes one kiln.ConvDwNCHWc (both activations,
 * stride 1 and 2, with and without biases: the pass gives zeros, a partial
 * last block), and with it the projection that reads the depthwise output
 * (with its residual) on 56x56 images, not on 28x28 ones; not when the
 * pointwise output is also a graph output. */
static void test_nchwc_pointwise_depthwise(void **state) {
    (void)state;
    const int64_t xd[] = {-1, 24, 56, 56}, p1[] = {1, 1, 1, 1}, s2[] = {2, 2};
    kiln_graph *g = new_graph(NULL);
    input(g, "x", 4, xd, "N");
    rand_init(g, "we1", 4, (int64_t[]){72, 24, 1, 1}, -1, 1);
    rand_init(g, "be1", 1, (int64_t[]){72}, -1, 1);
    rand_init(g, "wd1", 4, (int64_t[]){72, 1, 3, 3}, -1, 1);
    rand_init(g, "bd1", 1, (int64_t[]){72}, -1, 1);
    rand_init(g, "wp1", 4, (int64_t[]){24, 72, 1, 1}, -1, 1);
    rand_init(g, "we2", 4, (int64_t[]){40, 24, 1, 1}, -1, 1);
    rand_init(g, "wd2", 4, (int64_t[]){40, 1, 3, 3}, -1, 1);
    rand_init(g, "we3", 4, (int64_t[]){32, 24, 1, 1}, -1, 1);
    rand_init(g, "wd3", 4, (int64_t[]){32, 1, 3, 3}, -1, 1);
    rand_init(g, "we4", 4, (int64_t[]){48, 40, 1, 1}, -1, 1);
    rand_init(g, "wd4", 4, (int64_t[]){48, 1, 3, 3}, -1, 1);
    rand_init(g, "wp4", 4, (int64_t[]){16, 48, 1, 1}, -1, 1);
    scalar(g, "lo", 0.0);
    scalar(g, "hi", 0.5);
    /* 56x56, stride 1, biases, Relu and Clip, the projection with its residual */
    node(g, "Conv", "e1", "x", "we1", "be1", NULL);
    node(g, "Relu", "a1", "e1", NULL);
    kiln__node *n = node(g, "Conv", "d1", "a1", "wd1", "bd1", NULL);
    ints_attr(n, "pads", 4, p1);
    int_attr(n, "group", 72);
    node(g, "Clip", "a2", "d1", "lo", "hi", NULL);
    node(g, "Conv", "p1", "a2", "wp1", NULL);
    node(g, "Add", "y1", "p1", "x", NULL);
    /* stride 2, no biases, no activations, 40 channels */
    node(g, "Conv", "e2", "y1", "we2", NULL);
    n = node(g, "Conv", "y2", "e2", "wd2", NULL);
    ints_attr(n, "pads", 4, p1);
    ints_attr(n, "strides", 2, s2);
    int_attr(n, "group", 40);
    /* 28x28: the projection stays apart */
    node(g, "Conv", "e4", "y2", "we4", NULL);
    n = node(g, "Conv", "d4", "e4", "wd4", NULL);
    ints_attr(n, "pads", 4, p1);
    int_attr(n, "group", 48);
    node(g, "Relu", "a4", "d4", NULL);
    node(g, "Conv", "y5", "a4", "wp4", NULL);
    /* the pointwise output is an output too: stays two convolutions */
    node(g, "Conv", "y3", "y1", "we3", NULL);
    n = node(g, "Conv", "y4", "y3", "wd3", NULL);
    int_attr(n, "group", 32);
    add_output(g, "y1");
    add_output(g, "y2");
    add_output(g, "y3");
    add_output(g, "y4");
    add_output(g, "y5");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-5, -1, &st, "nchwc pointwise + depthwise");
    if (kiln__cpu_has_avx512f()) {
        assert_int_equal(count_op(o, "ConvDwNCHWc"), 3);           /* e1+d1+p1, e2+y2, e4+d4 */
        assert_int_equal(count_op_inputs(o, "ConvDwNCHWc", 8), 1); /* with p1 and its residual */
        assert_int_equal(count_op(o, "ConvNCHWc"), 3);             /* y5, y3, y4 */
        assert_int_equal(count_op(o, "Conv") + count_op(o, "Relu") + count_op(o, "Clip"), 0);
    }
    kiln_graph_free(o);
}

/* Never across values that have other consumers or are graph outputs. */
static void test_no_rewrite_across_outputs(void **state) {
    int64_t ad[] = {4, 6}, wd[] = {6, 5}, n = 5;
    kiln_graph *g = new_graph(NULL);
    input(g, "a", 2, ad, NULL);
    rand_init(g, "w", 2, wd, -1, 1);
    rand_init(g, "b", 1, &n, -1, 1);
    node(g, "MatMul", "am", "a", "w", NULL);
    node(g, "Add", "ya", "am", "b", NULL);
    node(g, "Relu", "r", "ya", NULL);
    add_output(g, "am"); /* the product itself is an output */
    add_output(g, "r");
    kiln__opt_stats st;
    kiln_graph *o = optimize_and_check(g, 1e-6, -1, &st, "outputs kept");
    assert_int_equal(count_op(o, "MatMul"), 1);
    assert_int_equal(count_op(o, "Relu"), 1);
    kiln_graph_free(o);
}

/* ---- real models --------------------------------------------------------------------------- */

static void check_model(const char *path) {
    kiln_graph *g;
    if (kiln_graph_load_onnx(path, &g) != KILN_OK) fail_msg("%s: %s", path, kiln_last_error());
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    kiln__opt_stats st;
    /* torch models hold int inputs (token ids) in [0, 8): inside every vocabulary */
    kiln_graph *o = optimize_and_check(g, 1e-4, -1, &st, base);
    kiln_graph_free(o);
}

static void glob_models(const char *pattern) {
    glob_t gl;
    if (glob(pattern, 0, NULL, &gl) != 0) {
        printf("  (no models match %s)\n", pattern);
        return;
    }
    for (size_t i = 0; i < gl.gl_pathc; i++) check_model(gl.gl_pathv[i]);
    globfree(&gl);
}

static void source_root(char *buf, size_t n) {
    snprintf(buf, n, "%s", __FILE__);
    char *p = strstr(buf, "/tests/unit/");
    if (p) *p = 0;
}

static void test_torch_models(void **state) {
    char root[1024], pat[1200];
    source_root(root, sizeof root);
    snprintf(pat, sizeof pat, "%s/tests/models/torch/*.onnx", root);
    glob_models(pat);
}

static void test_light_models(void **state) {
    char root[1024], pat[1200];
    source_root(root, sizeof root);
    snprintf(pat, sizeof pat, "%s/.venv/lib/python3*/site-packages/onnx/backend/test/data/light/*.onnx", root);
    glob_models(pat);
}

/* More models from the environment: KILN_PASSES_MODELS=GLOB (e.g. the
 * bench/models.py set); nothing when unset. */
static void test_env_models(void **state) {
    const char *pat = getenv("KILN_PASSES_MODELS");
    if (pat && pat[0]) glob_models(pat);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clone),         cmocka_unit_test(test_identity_dead),
        cmocka_unit_test(test_fold),          cmocka_unit_test(test_bn),
        cmocka_unit_test(test_affine),
        cmocka_unit_test(test_sum),           cmocka_unit_test(test_fold_expanded),
        cmocka_unit_test(test_layout),        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_layernorm),     cmocka_unit_test(test_attention),
        cmocka_unit_test(test_matmul),        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_grad),
        cmocka_unit_test(test_nchwc),
        cmocka_unit_test(test_nchwc_pools),
        cmocka_unit_test(test_nchwc_pointwise_depthwise),
        cmocka_unit_test(test_no_rewrite_across_outputs),
        cmocka_unit_test(test_torch_models),  cmocka_unit_test(test_light_models),
        cmocka_unit_test(test_env_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
