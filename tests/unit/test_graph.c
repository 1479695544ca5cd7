/* tests/unit/test_graph.c: IR construction and finalization, the planner
 * (arena reuse, views, plan cache, dynamic shapes), sessions, control flow. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph/exec.h"
#include "graph/ir.h"
#include "graph_builder.h"

/* ---- a tiny graph builder for tests ------------------------------------------- */

static int add_input(kiln_graph *g, const char *name, kiln_dtype dt, int ndim, const int64_t *dims) {
    int v = kiln__graph_add_value(g, name);
    g->values[v].kind = KILN__VAL_INPUT;
    g->values[v].dtype = dt;
    g->values[v].ndim = ndim;
    for (int d = 0; d < ndim; d++) g->values[v].dims[d].v = dims[d];
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
    return v;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_toposort_and_errors(void **state) {
    int64_t d[] = {4};
    kiln_graph *g = new_graph(NULL);
    add_input(g, "x", KILN_DTYPE_F32, 1, d);
    /* nodes given out of order */
    node(g, "Neg", "c", "b", NULL);
    node(g, "Relu", "b", "a", NULL);
    node(g, "Abs", "a", "x", NULL);
    add_output(g, "c");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    assert_string_equal(g->nodes[0].op_type, "Abs");
    assert_string_equal(g->nodes[2].op_type, "Neg");
    assert_int_equal(g->values[kiln__graph_find(g, "b")].producer, 1);
    kiln_graph_free(g);

    g = new_graph(NULL); /* a cycle */
    add_input(g, "x", KILN_DTYPE_F32, 1, d);
    node(g, "Add", "p", "x", "q", NULL);
    node(g, "Neg", "q", "p", NULL);
    add_output(g, "q");
    assert_int_equal(kiln__graph_finalize(g), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), "cycle"));
    kiln_graph_free(g);

    g = new_graph(NULL); /* an undefined input */
    add_input(g, "x", KILN_DTYPE_F32, 1, d);
    node(g, "Add", "y", "x", "ghost", NULL);
    add_output(g, "y");
    assert_int_equal(kiln__graph_finalize(g), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), "ghost"));
    kiln_graph_free(g);

    g = new_graph(NULL); /* an op kiln lacks: finalize keeps it, the session refuses */
    add_input(g, "x", KILN_DTYPE_F32, 1, d);
    node(g, "NoSuchOp", "y", "x", NULL);
    add_output(g, "y");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_session *s;
    assert_int_equal(kiln_session_create(g, NULL, &s), KILN_E_UNSUPPORTED);
    assert_non_null(strstr(kiln_last_error(), "NoSuchOp"));
    kiln_graph_free(g);
}

/* A chain of 40 elementwise nodes over 1 MiB values: liveness lets the
 * planner reuse two or three slots instead of forty. */
static void test_arena_reuse_and_plan_cache(void **state) {
    int64_t d[] = {1024, 256};
    kiln_graph *g = new_graph(NULL);
    add_input(g, "x", KILN_DTYPE_F32, 2, d);
    char prev[16] = "x", cur[16];
    for (int i = 0; i < 40; i++) {
        snprintf(cur, sizeof cur, "v%d", i);
        node(g, i % 2 ? "Neg" : "Abs", cur, prev, NULL);
        strcpy(prev, cur);
    }
    add_output(g, prev);
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, g, NULL, 2), KILN_OK);
    kiln_tensor *x;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, d, &x), KILN_OK);
    float *xd = kiln_tensor_data(x);
    for (int i = 0; i < 1024 * 256; i++) xd[i] = (float)(i % 7) - 3;
    const kiln_tensor *in[] = {x};
    assert_int_equal(kiln__runner_run(&r, 1, in), KILN_OK);
    size_t one = 1024 * 256 * 4;
    assert_true(kiln__runner_arena_bytes(&r) <= 3 * one);
    const void *base = kiln__runner_arena_base(&r);
    const float *y = kiln_tensor_data(kiln__runner_output(&r, 0));
    for (int i = 0; i < 1024 * 256; i++) assert_true(y[i] == -fabsf(xd[i]));
    /* same shape: same plan, same arena */
    assert_int_equal(kiln__runner_run(&r, 1, in), KILN_OK);
    assert_ptr_equal(kiln__runner_arena_base(&r), base);
    assert_int_equal(kiln__runner_num_plans(&r), 1);
    /* new shape: a second plan */
    kiln_tensor *x2;
    int64_t d2[] = {3, 5};
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, d2, &x2), KILN_OK);
    const kiln_tensor *in2[] = {x2};
    assert_int_equal(kiln__runner_run(&r, 1, in2), KILN_OK);
    assert_int_equal(kiln__runner_num_plans(&r), 2);
    assert_int_equal(kiln_tensor_dims(kiln__runner_output(&r, 0))[1], 5);
    kiln__runner_free(&r);
    /* a memory limit below what the plan needs is refused with the sizes */
    kiln_session_options opt = {1, 512 * 1024};
    kiln_session *s;
    assert_int_equal(kiln_session_create(g, &opt, &s), KILN_OK);
    const char *names[] = {"x"};
    assert_int_equal(kiln_session_run(s, 1, names, in), KILN_E_LIMIT);
    assert_non_null(strstr(kiln_last_error(), "memory limit of 0.5 MB"));
    kiln_session_free(s);
    kiln_tensor_free(x), kiln_tensor_free(x2);
    kiln_graph_free(g);
}

/* Reshape, Flatten, Squeeze and Unsqueeze share their input's buffer: a
 * value read through a view after another reader of the input, which may
 * not then overwrite it in place; a view of a graph output; fewer buffers. */
static void test_views(void **state) {
    int64_t d[] = {256, 64};
    const double shape[] = {64, 256}, axes[] = {0};
    kiln_graph *g = new_graph(NULL);
    add_input(g, "x", KILN_DTYPE_F32, 2, d);
    init(g, "shape", vec(KILN_DTYPE_I64, 2, shape));
    init(g, "axes", vec(KILN_DTYPE_I64, 1, axes));
    node(g, "Abs", "a", "x", NULL);
    node(g, "Reshape", "y", "a", "shape", NULL); /* view of a */
    node(g, "Neg", "b", "a", NULL);               /* a lives on through y: not in place */
    node(g, "Sqrt", "c", "y", NULL);
    node(g, "Unsqueeze", "u", "c", "axes", NULL); /* view of an output */
    node(g, "Squeeze", "v", "u", "axes", NULL);
    node(g, "Flatten", "f", "v", NULL);
    add_output(g, "b");
    add_output(g, "c");
    add_output(g, "u");
    add_output(g, "f");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, g, NULL, 1), KILN_OK);
    kiln_tensor *x;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, d, &x), KILN_OK);
    float *xd = kiln_tensor_data(x);
    for (int i = 0; i < 256 * 64; i++) xd[i] = (float)(i % 11) - 5;
    const kiln_tensor *in[] = {x};
    assert_int_equal(kiln__runner_run(&r, 1, in), KILN_OK);
    const float *b = kiln_tensor_data(kiln__runner_output(&r, 0));
    for (int k = 1; k < 4; k++) {
        const kiln_tensor *o = kiln__runner_output(&r, k);
        assert_int_equal(kiln_tensor_numel(o), 256 * 64);
        const float *c = kiln_tensor_data(o);
        for (int i = 0; i < 256 * 64; i++) assert_true(c[i] == sqrtf(fabsf(xd[i])));
    }
    for (int i = 0; i < 256 * 64; i++) assert_true(b[i] == -fabsf(xd[i]));
    assert_int_equal(kiln_tensor_dims(kiln__runner_output(&r, 2))[0], 1);
    /* a (with y), b, c (with u, v, f): three buffers, not seven */
    assert_true(kiln__runner_arena_bytes(&r) <= 3 * 256 * 64 * 4);
    kiln__runner_free(&r);
    kiln_tensor_free(x);
    kiln_graph_free(g);
}

/* Shape subgraphs fold at plan time; data-dependent shapes (NonZero) run as
 * dynamic steps. */
static void test_folding_and_dynamic_shapes(void **state) {
    int64_t d[] = {2, 3};
    kiln_graph *g = new_graph(NULL);
    add_input(g, "x", KILN_DTYPE_F32, 2, d);
    double flat[] = {-1};
    init(g, "minus1", vec(KILN_DTYPE_I64, 1, flat));
    node(g, "Shape", "s", "x", NULL);            /* folded: (2,3) */
    node(g, "Reshape", "flat", "x", "minus1", NULL);
    node(g, "NonZero", "nz", "flat", NULL);      /* dynamic: (1, count) */
    int_attr(node(g, "Cast", "nzf", "nz", NULL), "to", KILN_DTYPE_F32);
    add_output(g, "s");
    add_output(g, "nzf");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_session *s;
    assert_int_equal(kiln_session_create(g, NULL, &s), KILN_OK);
    kiln_tensor *x;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, d, &x), KILN_OK);
    float *xd = kiln_tensor_data(x);
    xd[1] = 2, xd[4] = 5;
    const char *names[] = {"x"};
    const kiln_tensor *in[] = {x};
    assert_int_equal(kiln_session_run(s, 1, names, in), KILN_OK);
    const kiln_tensor *o;
    assert_int_equal(kiln_session_output(s, 0, &o), KILN_OK);
    assert_int_equal(((int64_t *)kiln_tensor_data(o))[1], 3);
    assert_int_equal(kiln_session_output(s, 1, &o), KILN_OK);
    assert_int_equal(kiln_tensor_dims(o)[1], 2);
    assert_true(((float *)kiln_tensor_data(o))[1] == 4.0f);
    xd[0] = 1; /* more nonzeros, same input shape: the dynamic value grows */
    assert_int_equal(kiln_session_run(s, 1, names, in), KILN_OK);
    assert_int_equal(kiln_session_output(s, 1, &o), KILN_OK);
    assert_int_equal(kiln_tensor_dims(o)[1], 3);
    /* wrong input shape and dtype: messages name the input and both shapes */
    kiln_tensor *bad;
    int64_t bd[] = {2, 4};
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, bd, &bad), KILN_OK);
    in[0] = bad;
    assert_int_equal(kiln_session_run(s, 1, names, in), KILN_E_SHAPE);
    assert_non_null(strstr(kiln_last_error(), "'x'"));
    assert_non_null(strstr(kiln_last_error(), "(2,4)"));
    assert_non_null(strstr(kiln_last_error(), "(2,3)"));
    kiln_tensor_free(bad);
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I32, 2, d, &bad), KILN_OK);
    in[0] = bad;
    assert_int_equal(kiln_session_run(s, 1, names, in), KILN_E_TYPE);
    const char *wrong[] = {"nope"};
    assert_int_equal(kiln_session_run(s, 1, wrong, in), KILN_E_NOTFOUND);
    assert_int_equal(kiln_session_run(s, 0, names, in), KILN_E_INVAL);
    kiln_tensor_free(bad);
    kiln_session_free(s);
    kiln_tensor_free(x);
    kiln_graph_free(g);
}

/* If with branches that capture a value of the enclosing graph. */
static void test_if_with_captures(void **state) {
    int64_t d[] = {3};
    kiln_graph *g = new_graph(NULL);
    add_input(g, "x", KILN_DTYPE_F32, 1, d);
    add_input(g, "c", KILN_DTYPE_BOOL, 0, d);
    kiln_graph *br[2];
    const char *ops[2] = {"Neg", "Abs"};
    for (int b = 0; b < 2; b++) {
        br[b] = kiln__graph_new(g);
        int v = kiln__graph_add_value(br[b], "x");
        br[b]->values[v].kind = KILN__VAL_OUTER;
        br[b]->outer = malloc(sizeof(int));
        br[b]->outer[0] = v;
        br[b]->n_outer = 1;
        node(br[b], ops[b], "r", "x", NULL);
        add_output(br[b], "r");
    }
    int n = kiln__graph_add_node(g, "if", "If", "", 2, 1);
    g->nodes[n].in[0] = kiln__graph_value(g, "c");
    g->nodes[n].in[1] = kiln__graph_value(g, "x");
    g->nodes[n].n_implicit = 1;
    g->nodes[n].out[0] = kiln__graph_value(g, "y");
    g->nodes[n].attr = calloc(2, sizeof(kiln__attr));
    g->nodes[n].attr[0] = (kiln__attr){.name = kiln__strdup("then_branch"), .type = KILN__ATTR_GRAPH, .g = br[0]};
    g->nodes[n].attr[1] = (kiln__attr){.name = kiln__strdup("else_branch"), .type = KILN__ATTR_GRAPH, .g = br[1]};
    g->nodes[n].n_attr = 2;
    add_output(g, "y");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_session *s;
    assert_int_equal(kiln_session_create(g, NULL, &s), KILN_OK);
    double xv[] = {1, -2, 3};
    kiln_tensor *x = vec(KILN_DTYPE_F32, 3, xv), *c;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_BOOL, 0, NULL, &c), KILN_OK);
    const char *names[] = {"x", "c"};
    const kiln_tensor *in[] = {x, c};
    for (int cond = 0; cond < 2; cond++) {
        *(uint8_t *)kiln_tensor_data(c) = (uint8_t)cond;
        assert_int_equal(kiln_session_run(s, 2, names, in), KILN_OK);
        const kiln_tensor *o;
        assert_int_equal(kiln_session_output(s, 0, &o), KILN_OK);
        const float *y = kiln_tensor_data(o);
        for (int i = 0; i < 3; i++) assert_true(y[i] == (cond ? -(float)xv[i] : fabsf((float)xv[i])));
    }
    kiln_session_free(s);
    kiln_tensor_free(x), kiln_tensor_free(c);
    kiln_graph_free(g);
}

/* Symbolic inference: x (N,3) -> Shape/Concat-driven Reshape to (N,3,1) ->
 * Transpose -> MatMul with itself: (N,1,3)x(N,3,1)=(N,1,1); NonZero unknown. */
static void test_symbolic_shapes(void **state) {
    int64_t d[] = {-1, 3};
    kiln_graph *g = new_graph(NULL);
    int x = add_input(g, "x", KILN_DTYPE_F32, 2, d);
    g->values[x].dims[0].sym = kiln__strdup("N");
    double one[] = {1};
    init(g, "one", vec(KILN_DTYPE_I64, 1, one));
    node(g, "Shape", "s", "x", NULL);
    int_attr(node(g, "Concat", "s3", "s", "one", NULL), "axis", 0);
    node(g, "Reshape", "r", "x", "s3", NULL);
    node(g, "Transpose", "t", "r", NULL);
    kiln__node *tr = &g->nodes[3];
    tr->attr = calloc(1, sizeof *tr->attr);
    tr->attr[0] = (kiln__attr){.name = kiln__strdup("perm"), .type = KILN__ATTR_INTS, .n = 3,
                               .ints = malloc(3 * sizeof(int64_t))};
    tr->attr[0].ints[0] = 0, tr->attr[0].ints[1] = 2, tr->attr[0].ints[2] = 1;
    tr->n_attr = 1;
    node(g, "MatMul", "y", "t", "r", NULL);
    node(g, "NonZero", "nz", "x", NULL);
    add_output(g, "y");
    add_output(g, "nz");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    assert_int_equal(kiln_graph_infer_shapes(g), KILN_OK);
    kiln_value_info info;
    assert_int_equal(kiln_graph_output_info(g, 0, &info), KILN_OK);
    assert_int_equal(info.dtype, KILN_DTYPE_F32);
    assert_int_equal(info.ndim, 3);
    assert_true(info.dims[0] < 0);
    assert_string_equal(info.dim_names[0], "N");
    assert_int_equal(info.dims[1], 1);
    assert_int_equal(info.dims[2], 1);
    assert_int_equal(kiln_graph_output_info(g, 1, &info), KILN_OK);
    assert_int_equal(info.ndim, -1); /* data-dependent */
    const kiln__value *r = &g->values[kiln__graph_find(g, "r")];
    assert_int_equal(r->ndim, 3);
    assert_string_equal(r->dims[0].sym, "N");
    assert_int_equal(r->dims[1].v, 3);
    kiln_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toposort_and_errors),
        cmocka_unit_test(test_arena_reuse_and_plan_cache),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_folding_and_dynamic_shapes),
        cmocka_unit_test(test_if_with_captures),
        cmocka_unit_test(test_symbolic_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
