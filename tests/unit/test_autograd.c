/* tests/unit/test_autograd.c: gradient rules and the autograd driver
 * (src/train/autograd.h, grad.h) against central finite differences in f64.
 *
 * Every case builds a small f64 graph with output y, adds the backward nodes
 * for the vector-Jacobian product with a random seed r (an input "dy"), runs
 * forward and backward once on the reference kernels, and compares each
 * gradient element with
 *   (<y(x + h e_j), r> - <y(x - h e_j), r>) / 2h
 * as the normalized error ||analytic - numeric|| / ||numeric|| (bound 1e-6;
 * a wrong rule is off by order 1). */
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
#include "train/autograd.h"

#define DT KILN_DTYPE_F64
#define MAX_IN 8

static unsigned seed = 2024;

/* Input value ranges, per input name (inputs not listed: [-1, 1]). */
typedef struct range {
    const char *name;
    double lo, hi;
} range;

static void input(kiln_graph *g, const char *name, int ndim, const int64_t *dims) {
    int v = kiln__graph_add_value(g, name);
    kiln__value *val = &g->values[v];
    val->kind = KILN__VAL_INPUT;
    val->dtype = DT;
    val->ndim = ndim;
    val->has_type = 1;
    for (int d = 0; d < ndim; d++) val->dims[d].v = dims[d];
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
}

static void ints_init(kiln_graph *g, const char *name, int n, const int64_t *v) {
    double d[16];
    for (int i = 0; i < n; i++) d[i] = (double)v[i];
    init(g, name, vec(KILN_DTYPE_I64, n, d));
}

/* ---- running ------------------------------------------------------------------------ */

/* Runs g on the reference kernels; copies of its first n_out outputs into out. */
static void run(const kiln_graph *g, kiln_tensor **in, int n_out, kiln_tensor **out) {
    kiln__runner r;
    assert_int_equal(kiln__runner_init(&r, g, NULL, 1), KILN_OK);
    r.sel.reference = 1;
    kiln_status s = kiln__runner_run(&r, g->n_inputs, (const kiln_tensor *const *)in);
    if (s != KILN_OK) fail_msg("run failed: %s", kiln_last_error());
    for (int k = 0; k < n_out; k++) {
        kiln_tensor *t = kiln__runner_output(&r, k);
        assert_non_null(t);
        assert_int_equal(kiln_tensor_copy(t, t->dtype, &out[k]), KILN_OK);
    }
    kiln__runner_free(&r);
}

/* <y(in), r> */
static double project(const kiln_graph *g, kiln_tensor **in, const kiln_tensor *r) {
    kiln_tensor *y;
    run(g, in, 1, &y);
    double s = 0;
    const double *yd = kiln_tensor_data(y), *rd = kiln_tensor_data(r);
    for (int64_t i = 0; i < kiln_tensor_numel(y); i++) s += yd[i] * rd[i];
    kiln_tensor_free(y);
    return s;
}

/* The backward graph of g (finalized): a copy with an input dy of y's shape
 * (ndim, dims) after g's inputs and, as outputs, the gradients of g's inputs. */
static kiln_graph *backward(const kiln_graph *g, int ndim, const int64_t *dims) {
    int n = g->n_inputs;
    kiln_graph *b = kiln__graph_clone(g);
    assert_non_null(b);
    int dy = kiln__graph_add_value(b, "dy");
    b->values[dy].kind = KILN__VAL_INPUT;
    b->values[dy].dtype = DT;
    b->values[dy].ndim = ndim;
    b->values[dy].has_type = 1;
    for (int d = 0; d < ndim; d++) b->values[dy].dims[d].v = dims[d];
    b->inputs = realloc(b->inputs, (size_t)(b->n_inputs + 1) * sizeof *b->inputs);
    b->inputs[b->n_inputs++] = dy;
    assert_int_equal(kiln__graph_finalize(b), KILN_OK);
    int wrt[MAX_IN], grads[MAX_IN];
    for (int i = 0; i < n; i++) wrt[i] = b->inputs[i];
    if (kiln__autograd(b, b->outputs[0], dy, n, wrt, grads) != KILN_OK)
        fail_msg("%s", kiln_last_error());
    b->n_outputs = 0;
    for (int i = 0; i < n; i++) {
        assert_true(grads[i] >= 0);
        b->outputs = realloc(b->outputs, (size_t)(b->n_outputs + 1) * sizeof *b->outputs);
        b->outputs[b->n_outputs++] = grads[i];
        b->values[grads[i]].is_output = 1;
    }
    assert_int_equal(kiln__graph_finalize(b), KILN_OK);
    return b;
}

/* The check described at the top, for g (output 0 is y; every graph input is
 * differentiated), inputs drawn from ranges. */
static void grad_check(kiln_graph *g, const range *ranges, int n_ranges) {
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    assert_int_equal(kiln_graph_infer_shapes(g), KILN_OK);
    int n = g->n_inputs;
    assert_true(n <= MAX_IN);
    kiln_tensor *in[MAX_IN + 1], *y, *r;
    for (int i = 0; i < n; i++) {
        const kiln__value *v = &g->values[g->inputs[i]];
        int64_t dims[KILN_MAX_DIMS];
        double lo = -1, hi = 1;
        for (int d = 0; d < v->ndim; d++) dims[d] = v->dims[d].v;
        for (int k = 0; k < n_ranges; k++)
            if (strcmp(ranges[k].name, v->name) == 0) lo = ranges[k].lo, hi = ranges[k].hi;
        in[i] = ah_random(DT, v->ndim, dims, &seed, lo, hi);
    }
    run(g, in, 1, &y);
    r = ah_random(DT, y->ndim, y->dims, &seed, -1, 1);
    kiln_graph *b = backward(g, y->ndim, y->dims);
    kiln_tensor *got[MAX_IN];
    in[n] = r;
    run(b, in, n, got);

    const double h = 1e-6;
    for (int i = 0; i < n; i++) {
        assert_int_equal(got[i]->ndim, in[i]->ndim);
        assert_memory_equal(got[i]->dims, in[i]->dims, (size_t)in[i]->ndim * sizeof(int64_t));
        double *x = kiln_tensor_data(in[i]), *a = kiln_tensor_data(got[i]), err = 0, norm = 0;
        for (int64_t j = 0; j < kiln_tensor_numel(in[i]); j++) {
            double x0 = x[j];
            x[j] = x0 + h;
            double up = project(g, in, r);
            x[j] = x0 - h;
            double down = project(g, in, r);
            x[j] = x0;
            double num = (up - down) / (2 * h);
            err += (a[j] - num) * (a[j] - num);
            norm += num * num;
        }
        double rel = sqrt(err) / (sqrt(norm) > 1e-12 ? sqrt(norm) : 1);
        printf("  d/d%-6s %6lld elements  normalized error %.2e\n",
               g->values[g->inputs[i]].name, (long long)kiln_tensor_numel(in[i]), rel);
        if (!(rel < 1e-6)) fail_msg("gradient of '%s' off: %.3e", g->values[g->inputs[i]].name, rel);
        kiln_tensor_free(got[i]);
    }
    for (int i = 0; i < n; i++) kiln_tensor_free(in[i]);
    kiln_tensor_free(y);
    kiln_tensor_free(r);
    kiln_graph_free(b);
    kiln_graph_free(g);
}

static kiln_graph *graph(int opset) {
    kiln_graph *g = new_graph(NULL);
    g->opsets[0].version = opset;
    return g;
}

/* ---- cases ---------------------------------------------------------------------------- */

static void test_broadcast_math(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "a", 3, (int64_t[]){2, 3, 4});
    input(g, "b", 2, (int64_t[]){3, 1});
    input(g, "c", 1, (int64_t[]){4});
    input(g, "d", 3, (int64_t[]){2, 1, 1});
    node(g, "Add", "ab", "a", "b", NULL);
    node(g, "Mul", "abc", "ab", "c", NULL);
    node(g, "Sub", "s", "abc", "a", NULL); /* a used twice: contributions add */
    node(g, "Div", "q", "s", "d", NULL);
    node(g, "Neg", "y", "q", NULL);
    add_output(g, "y");
    grad_check(g, (range[]){{"d", 0.5, 2}}, 1);
}

static void test_activations(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 2, (int64_t[]){3, 5});
    input(g, "z", 2, (int64_t[]){3, 5});
    node(g, "Relu", "r", "x", NULL);
    node(g, "Sigmoid", "s", "r", NULL);
    node(g, "Exp", "e", "x", NULL);
    node(g, "Mul", "m", "s", "e", NULL);
    node(g, "Tanh", "t", "m", NULL);
    node(g, "Sqrt", "q", "z", NULL);
    node(g, "Log", "l", "q", NULL);
    node(g, "Add", "y", "t", "l", NULL);
    add_output(g, "y");
    grad_check(g, (range[]){{"z", 0.5, 2}}, 1);
}

static void test_matmul(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "a", 3, (int64_t[]){2, 3, 4}); /* batched, B broadcast over the batch */
    input(g, "b", 2, (int64_t[]){4, 5});
    input(g, "p", 2, (int64_t[]){5, 3}); /* 2-D products run as Gemm */
    input(g, "q", 2, (int64_t[]){3, 2});
    node(g, "MatMul", "ab", "a", "b", NULL);
    node(g, "MatMul", "pq", "p", "q", NULL);
    node(g, "MatMul", "y", "ab", "pq", NULL);
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_gemm(void **state) {
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            kiln_graph *g = graph(17);
            input(g, "a", 2, ta ? (int64_t[]){4, 3} : (int64_t[]){3, 4});
            input(g, "b", 2, tb ? (int64_t[]){5, 4} : (int64_t[]){4, 5});
            input(g, "c", 1, (int64_t[]){5});
            kiln__node *n = node(g, "Gemm", "y", "a", "b", "c", NULL);
            int_attr(n, "transA", ta);
            int_attr(n, "transB", tb);
            float_attr(n, "alpha", 0.75f);
            float_attr(n, "beta", 1.25f);
            add_output(g, "y");
            printf(" transA %d transB %d\n", ta, tb);
            grad_check(g, NULL, 0);
        }
}

static void test_conv(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 4, (int64_t[]){2, 4, 7, 6});
    input(g, "w", 4, (int64_t[]){6, 2, 3, 3});
    input(g, "b", 1, (int64_t[]){6});
    kiln__node *n = node(g, "Conv", "y", "x", "w", "b", NULL);
    int_attr(n, "group", 2);
    ints_attr(n, "strides", 2, (int64_t[]){2, 1});
    ints_attr(n, "pads", 4, (int64_t[]){1, 0, 1, 2});
    ints_attr(n, "dilations", 2, (int64_t[]){1, 2});
    add_output(g, "y");
    grad_check(g, NULL, 0);

    g = graph(17); /* 1-D, SAME padding, no bias */
    input(g, "x", 3, (int64_t[]){1, 3, 9});
    input(g, "w", 3, (int64_t[]){2, 3, 4});
    n = node(g, "Conv", "y", "x", "w", NULL);
    string_attr(n, "auto_pad", "SAME_UPPER");
    ints_attr(n, "strides", 1, (int64_t[]){2});
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_pools(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 4, (int64_t[]){2, 3, 7, 7});
    kiln__node *n = node(g, "MaxPool", "m", "x", NULL);
    ints_attr(n, "kernel_shape", 2, (int64_t[]){3, 3});
    ints_attr(n, "strides", 2, (int64_t[]){2, 2});
    ints_attr(n, "pads", 4, (int64_t[]){1, 1, 0, 0});
    int_attr(n, "ceil_mode", 1);
    n = node(g, "AveragePool", "a", "x", NULL);
    ints_attr(n, "kernel_shape", 2, (int64_t[]){3, 3});
    ints_attr(n, "strides", 2, (int64_t[]){2, 2});
    ints_attr(n, "pads", 4, (int64_t[]){1, 1, 0, 0});
    int_attr(n, "ceil_mode", 1);
    n = node(g, "AveragePool", "c", "x", NULL);
    ints_attr(n, "kernel_shape", 2, (int64_t[]){2, 3});
    ints_attr(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    int_attr(n, "count_include_pad", 1);
    node(g, "GlobalAveragePool", "p", "x", NULL);
    node(g, "Add", "ma", "m", "a", NULL);
    node(g, "ReduceSum", "cs", "c", NULL); /* all axes, keepdims: (1,1,1,1) */
    node(g, "Add", "t", "ma", "cs", NULL);
    node(g, "Mul", "y", "t", "p", NULL);
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_softmax(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 3, (int64_t[]){2, 3, 4});
    kiln__node *n = node(g, "Softmax", "s", "x", NULL);
    int_attr(n, "axis", 1);
    node(g, "LogSoftmax", "l", "x", NULL); /* axis -1 */
    node(g, "Mul", "y", "s", "l", NULL);
    add_output(g, "y");
    grad_check(g, NULL, 0);

    g = graph(11); /* before opset 13: over the trailing block from axis 1 */
    input(g, "x", 3, (int64_t[]){2, 3, 4});
    node(g, "Softmax", "s", "x", NULL);
    n = node(g, "LogSoftmax", "l", "x", NULL);
    int_attr(n, "axis", 2);
    node(g, "Mul", "y", "s", "l", NULL);
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_shapes_and_reductions(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 3, (int64_t[]){2, 3, 4});
    ints_init(g, "shape", 2, (int64_t[]){4, 6});
    ints_init(g, "axes", 1, (int64_t[]){-1});
    node(g, "Reshape", "r", "x", "shape", NULL);
    kiln__node *n = node(g, "Transpose", "t", "r", NULL);
    ints_attr(n, "perm", 2, (int64_t[]){1, 0});
    n = node(g, "ReduceSum", "s", "t", "axes", NULL); /* (6) */
    int_attr(n, "keepdims", 0);
    node(g, "Flatten", "f", "x", NULL); /* (2, 12) */
    n = node(g, "ReduceMean", "m", "f", NULL); /* opset 17: axes attribute */
    ints_attr(n, "axes", 1, (int64_t[]){0});
    ints_init(g, "zero", 1, (int64_t[]){0});
    ints_init(g, "shape2", 2, (int64_t[]){2, 6});
    node(g, "Unsqueeze", "u", "s", "zero", NULL); /* (1, 6) */
    node(g, "Squeeze", "sq", "m", "zero", NULL); /* (12) */
    node(g, "Reshape", "sr", "sq", "shape2", NULL);
    node(g, "Mul", "y", "sr", "u", NULL); /* (2, 6) */
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_cross_entropy(void **state) {
    (void)state;
    static const char *const reductions[] = {"mean", "sum", "none"};
    for (int k = 0; k < 3; k++) {
        kiln_graph *g = graph(17);
        input(g, "scores", 3, (int64_t[]){4, 5, 2}); /* (N, C, D) */
        input(g, "w", 1, (int64_t[]){5});
        ints_init(g, "labels_flat", 8, (int64_t[]){0, 3, 4, 1, 2, 2, 3, 0});
        ints_init(g, "lshape", 2, (int64_t[]){4, 2});
        node(g, "Reshape", "labels", "labels_flat", "lshape", NULL);
        ints_init(g, "wshape", 2, (int64_t[]){5, 1});
        node(g, "Reshape", "w_col", "w", "wshape", NULL);
        node(g, "Mul", "sw", "scores", "w_col", NULL);
        kiln__node *n = node(g, "SoftmaxCrossEntropyLoss", "y", "sw", "labels", NULL);
        string_attr(n, "reduction", reductions[k]);
        int_attr(n, "ignore_index", 3);
        add_output(g, "y");
        printf(" reduction %s\n", reductions[k]);
        grad_check(g, NULL, 0);
    }
    /* NegativeLogLikelihoodLoss on log-probabilities, with class weights */
    for (int k = 0; k < 3; k++) {
        kiln_graph *g = graph(17);
        input(g, "scores", 3, (int64_t[]){4, 5, 2});
        init(g, "weight", vec(DT, 5, (double[]){0.5, 1, 2, 1.5, 0.8}));
        ints_init(g, "labels_flat", 8, (int64_t[]){0, 3, 4, 1, 2, 2, 3, 0});
        ints_init(g, "lshape", 2, (int64_t[]){4, 2});
        node(g, "Reshape", "labels", "labels_flat", "lshape", NULL);
        kiln__node *n = node(g, "LogSoftmax", "lp", "scores", NULL);
        int_attr(n, "axis", 1);
        n = node(g, "NegativeLogLikelihoodLoss", "y", "lp", "labels", "weight", NULL);
        string_attr(n, "reduction", reductions[k]);
        int_attr(n, "ignore_index", 4);
        add_output(g, "y");
        printf(" nll, reduction %s\n", reductions[k]);
        grad_check(g, NULL, 0);
    }
}

static void test_more_math(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 2, (int64_t[]){3, 4});
    input(g, "a", 2, (int64_t[]){3, 4});
    input(g, "b", 1, (int64_t[]){4});
    input(g, "e", 2, (int64_t[]){1, 4});
    init(g, "lo", vec(DT, 1, (double[]){-0.4}));
    init(g, "hi", vec(DT, 1, (double[]){0.5}));
    ints_init(g, "shape", 2, (int64_t[]){3, 4});
    kiln__node *n = node(g, "LeakyRelu", "lr", "x", NULL);
    float_attr(n, "alpha", 0.2f);
    node(g, "Clip", "cl", "x", "lo", "hi", NULL);
    node(g, "Erf", "er", "x", NULL);
    node(g, "Pow", "pw", "a", "b", NULL); /* a in [0.5, 2]: real powers */
    node(g, "Expand", "ex", "e", "shape", NULL);
    n = node(g, "Cast", "ca", "ex", NULL);
    int_attr(n, "to", KILN_DTYPE_F64);
    node(g, "Greater", "pos", "x", "lo", NULL);
    node(g, "Where", "wh", "pos", "pw", "ca", NULL);
    node(g, "Mul", "m1", "lr", "cl", NULL);
    node(g, "Mul", "m2", "er", "wh", NULL);
    node(g, "Abs", "ab", "x", NULL);
    node(g, "Softplus", "sp", "a", NULL);
    node(g, "Mul", "m3", "ab", "sp", NULL);
    node(g, "Add", "m12", "m1", "m2", NULL);
    node(g, "Add", "y", "m12", "m3", NULL);
    add_output(g, "y");
    grad_check(g, (range[]){{"a", 0.5, 2}}, 1);
}

static void test_normalization(void **state) {
    (void)state;
    for (int training = 0; training < 2; training++) {
        kiln_graph *g = graph(15);
        input(g, "x", 4, (int64_t[]){4, 3, 2, 2});
        input(g, "scale", 1, (int64_t[]){3});
        input(g, "bias", 1, (int64_t[]){3});
        init(g, "mean", vec(DT, 3, (double[]){0.1, -0.2, 0.3}));
        init(g, "var", vec(DT, 3, (double[]){0.5, 1.5, 0.8}));
        kiln__node *n = node(g, "BatchNormalization", "y", "x", "scale", "bias", "mean", "var",
                             NULL);
        int_attr(n, "training_mode", training);
        float_attr(n, "epsilon", 1e-3f);
        add_output(g, "y");
        printf(" BatchNormalization training_mode %d\n", training);
        grad_check(g, NULL, 0);
    }
    kiln_graph *g = graph(17);
    input(g, "x", 3, (int64_t[]){3, 4, 5});
    input(g, "scale", 2, (int64_t[]){4, 5});
    input(g, "bias", 2, (int64_t[]){4, 5});
    kiln__node *n = node(g, "LayerNormalization", "y", "x", "scale", "bias", NULL);
    int_attr(n, "axis", 1);
    printf(" LayerNormalization\n");
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_concat_gather(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "a", 2, (int64_t[]){2, 3});
    input(g, "b", 2, (int64_t[]){2, 2});
    input(g, "emb", 2, (int64_t[]){6, 5});
    ints_init(g, "ids", 6, (int64_t[]){1, 4, 1, -1, 0, 4}); /* repeats add up */
    ints_init(g, "ids_shape", 2, (int64_t[]){2, 3});
    ints_init(g, "cshape", 3, (int64_t[]){2, 1, 5});
    node(g, "Reshape", "ids2", "ids", "ids_shape", NULL);
    node(g, "Gather", "rows", "emb", "ids2", NULL); /* (2, 3, 5) */
    kiln__node *n = node(g, "Concat", "ab", "a", "b", NULL);
    int_attr(n, "axis", -1); /* (2, 5) */
    node(g, "Reshape", "ab3", "ab", "cshape", NULL);
    node(g, "Mul", "y", "rows", "ab3", NULL);
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

/* Dropout in training mode with a seed attribute and the trainer's
 * kiln.TrainDropout with a constant seed draw the same mask every run, so the
 * function is deterministic and finite differences apply; Dropout without
 * training_mode is the identity. */
static void test_dropout(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    g->opsets = realloc(g->opsets, 2 * sizeof *g->opsets);
    g->opsets[1] = (kiln__opset){.domain = kiln__strdup("kiln"), .version = 1};
    g->n_opsets = 2;
    input(g, "x", 2, (int64_t[]){4, 6});
    init(g, "ratio", vec(DT, 1, (double[]){0.3}));
    init(g, "on", vec(KILN_DTYPE_BOOL, 1, (double[]){1}));
    init(g, "seed", vec(KILN_DTYPE_I64, 1, (double[]){12345}));
    int_attr(node(g, "Dropout", "d", "x", "ratio", "on", NULL), "seed", 7);
    node(g, "Dropout", "i", "x", NULL); /* inference: identity */
    int k = kiln__graph_add_node(g, "t", "TrainDropout", "kiln", 2, 1);
    g->nodes[k].in[0] = kiln__graph_value(g, "x");
    g->nodes[k].in[1] = kiln__graph_value(g, "seed");
    g->nodes[k].out[0] = kiln__graph_value(g, "t");
    float_attr(&g->nodes[k], "ratio", 0.4f);
    node(g, "Mul", "di", "d", "i", NULL);
    node(g, "Add", "y", "di", "t", NULL);
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

/* A small CNN with its loss: what kiln train differentiates. */
static void test_small_cnn(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "image", 4, (int64_t[]){3, 2, 6, 6});
    input(g, "w1", 4, (int64_t[]){4, 2, 3, 3});
    input(g, "b1", 1, (int64_t[]){4});
    input(g, "w2", 2, (int64_t[]){5, 36});
    input(g, "b2", 1, (int64_t[]){5});
    ints_init(g, "labels", 3, (int64_t[]){1, 4, 0});
    kiln__node *n = node(g, "Conv", "c1", "image", "w1", "b1", NULL);
    ints_attr(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    node(g, "Relu", "r1", "c1", NULL);
    n = node(g, "MaxPool", "p1", "r1", NULL);
    ints_attr(n, "kernel_shape", 2, (int64_t[]){2, 2});
    ints_attr(n, "strides", 2, (int64_t[]){2, 2});
    node(g, "Flatten", "f", "p1", NULL);
    n = node(g, "Gemm", "logits", "f", "w2", "b2", NULL);
    int_attr(n, "transB", 1);
    node(g, "SoftmaxCrossEntropyLoss", "y", "logits", "labels", NULL);
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

/* Autograd of g (output y, from its first input) fails as unsupported with
 * `msg`; frees g. */
static void check_refused(kiln_graph *g, const char *msg) {
    add_output(g, "y");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    int dy = kiln__graph_add_value(g, "dy");
    g->values[dy].kind = KILN__VAL_INPUT;
    g->values[dy].dtype = DT;
    int x = g->inputs[0], grad = 0;
    assert_int_equal(kiln__autograd(g, g->outputs[0], dy, 1, &x, &grad), KILN_E_UNSUPPORTED);
    assert_non_null(strstr(kiln_last_error(), msg));
    kiln_graph_free(g);
}

/* A node without a rule on the path fails, naming it; off the path it is fine. */
static void test_no_rule(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 1, (int64_t[]){4});
    node(g, "Sin", "s", "x", NULL);
    node(g, "Relu", "y", "s", NULL);
    check_refused(g, "'s' (Sin) has no gradient rule");

    g = graph(17); /* the Sin branch does not reach y */
    input(g, "x", 1, (int64_t[]){4});
    node(g, "Sin", "s", "x", NULL);
    node(g, "Relu", "y", "x", NULL);
    add_output(g, "y");
    add_output(g, "s");
    grad_check(g, NULL, 0);
}

/* ---- Slice, Split, Pad ---------------------------------------------------------------- */

/* y = Slice(x), x: (3, 7, 5), with n starts/ends and optional axes/steps:
 * attributes before opset 10, constant inputs from 10 (starts computed when
 * the graph runs with at_run_time). */
static void check_slice(int opset, int n, const int64_t *starts, const int64_t *ends,
                        const int64_t *axes, const int64_t *steps, int at_run_time) {
    kiln_graph *g = graph(opset);
    input(g, "x", 3, (int64_t[]){3, 7, 5});
    printf(" opset %d, %s%s\n", opset, steps ? "steps" : "step 1",
           at_run_time ? ", starts at run time" : "");
    if (opset < 10) {
        kiln__node *s = node(g, "Slice", "y", "x", NULL);
        ints_attr(s, "starts", n, starts);
        ints_attr(s, "ends", n, ends);
        if (axes) ints_attr(s, "axes", n, axes);
    } else {
        ints_init(g, "starts", n, starts);
        ints_init(g, "ends", n, ends);
        if (axes) ints_init(g, "axes", n, axes);
        if (steps) ints_init(g, "steps", n, steps);
        if (at_run_time) node(g, "Identity", "starts_rt", "starts", NULL);
        node(g, "Slice", "y", "x", at_run_time ? "starts_rt" : "starts", "ends",
             axes ? "axes" : steps ? "" : NULL, steps ? "steps" : NULL, NULL);
    }
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_slice(void **state) {
    (void)state;
    /* steps 1, ends clamped: dY padded back */
    check_slice(17, 2, (int64_t[]){1, -4}, (int64_t[]){1000, -1}, (int64_t[]){0, -1}, NULL, 0);
    check_slice(13, 2, (int64_t[]){1, 2}, (int64_t[]){3, 6}, NULL, NULL, 0);
    check_slice(17, 1, (int64_t[]){-100}, (int64_t[]){INT64_MAX}, (int64_t[]){1},
                (int64_t[]){1}, 0);
    /* steps 2 and -1 (clamped start and end), then -2 with starts at run time */
    check_slice(17, 2, (int64_t[]){0, 100}, (int64_t[]){7, -1000}, (int64_t[]){1, 2},
                (int64_t[]){2, -1}, 0);
    check_slice(17, 2, (int64_t[]){5, 1}, (int64_t[]){0, 3}, (int64_t[]){1, 0},
                (int64_t[]){-2, 1}, 1);
    /* attributes (opset 9), and negative steps in opset 10 */
    check_slice(9, 2, (int64_t[]){0, 2}, (int64_t[]){2, -2}, (int64_t[]){2, 1}, NULL, 0);
    check_slice(10, 1, (int64_t[]){-1}, (int64_t[]){-1000}, (int64_t[]){1}, (int64_t[]){-1}, 0);
}

/* x: (2, 7, 3) split along axis into a, b, c (sizes as input from opset 13,
 * an attribute before, or num_outputs from 18, else equal parts); y =
 * concat(c, a): b has no gradient. */
static void check_split(int opset, const int64_t *sizes, int64_t axis, int num_outputs) {
    kiln_graph *g = graph(opset);
    input(g, "x", 3, (int64_t[]){2, 7, 3});
    int as_input = sizes && opset >= 13;
    if (as_input) ints_init(g, "sizes", 3, sizes);
    int k = kiln__graph_add_node(g, "sp", "Split", "", as_input ? 2 : 1, 3);
    kiln__node *n = &g->nodes[k];
    n->in[0] = kiln__graph_value(g, "x");
    if (as_input) n->in[1] = kiln__graph_value(g, "sizes");
    n->out[0] = kiln__graph_value(g, "a");
    n->out[1] = kiln__graph_value(g, "b");
    n->out[2] = kiln__graph_value(g, "c");
    int_attr(n, "axis", axis);
    if (sizes && !as_input) ints_attr(n, "split", 3, sizes);
    if (num_outputs) int_attr(n, "num_outputs", 3);
    int_attr(node(g, "Concat", "y", "c", "a", NULL), "axis", axis);
    add_output(g, "y");
    printf(" opset %d, axis %lld\n", opset, (long long)axis);
    grad_check(g, NULL, 0);
}

static void test_split(void **state) {
    (void)state;
    check_split(17, (int64_t[]){2, 4, 1}, 1, 0);
    check_split(11, (int64_t[]){3, 1, 3}, -2, 0);
    check_split(18, NULL, 1, 1); /* 3, 3, 1 */
}

/* y = Pad(x), x: (3, 4, 5), with pads (2 per axis given, axes from opset 18),
 * mode; pads as attribute before opset 11, else an input (computed when the
 * graph runs with at_run_time); the constant value, from opset 11, a graph
 * input v (differentiated too). */
static void check_pad(int opset, const char *mode, int n, const int64_t *pads, const int64_t *axes,
                      int at_run_time) {
    kiln_graph *g = graph(opset);
    input(g, "x", 3, (int64_t[]){3, 4, 5});
    int value = !strcmp(mode, "constant") && opset >= 11;
    if (value) input(g, "v", 0, NULL);
    printf(" opset %d, mode %s%s%s\n", opset, mode, axes ? ", axes" : "",
           at_run_time ? ", pads at run time" : "");
    kiln__node *p;
    if (opset < 11) {
        p = node(g, "Pad", "y", "x", NULL);
        ints_attr(p, "pads", n, pads);
        float_attr(p, "value", 1.5f);
    } else {
        ints_init(g, "pads", n, pads);
        if (axes) ints_init(g, "axes", n / 2, axes);
        if (at_run_time) node(g, "Identity", "pads_rt", "pads", NULL);
        p = node(g, "Pad", "y", "x", at_run_time ? "pads_rt" : "pads", value ? "v" : "",
                 axes ? "axes" : NULL, NULL);
    }
    string_attr(p, "mode", mode);
    add_output(g, "y");
    grad_check(g, NULL, 0);
}

static void test_pad(void **state) {
    (void)state;
    const int64_t pads[6] = {1, 0, 2, 2, -1, 1}; /* begins, ends; one crops */
    check_pad(17, "constant", 6, pads, NULL, 0);
    check_pad(17, "constant", 6, pads, NULL, 1);
    check_pad(18, "constant", 4, (int64_t[]){1, -1, 2, 0}, (int64_t[]){2, 0}, 0);
    check_pad(10, "constant", 6, (int64_t[]){0, 1, 1, 0, 2, 0}, NULL, 0);
    const int64_t copies[6] = {1, 2, 0, 2, 1, 3};
    check_pad(17, "edge", 6, copies, NULL, 0);
    check_pad(17, "reflect", 6, copies, NULL, 0);
    check_pad(19, "wrap", 6, copies, NULL, 0);
    check_pad(18, "reflect", 2, (int64_t[]){2, 1}, (int64_t[]){1}, 0);
    check_pad(10, "edge", 6, copies, NULL, 0);
}

/* ---- reductions ----------------------------------------------------------------------- */

/* y = op(x), x: (3, 4, 5), over n axes (all when 0), as an input from
 * axes_opset on, an attribute before. */
static void check_reduce(const char *op, int opset, int n, const int64_t *axes, int keepdims,
                         int noop) {
    int axes_opset = strcmp(op, "ReduceSum") == 0 ? 13 : 18;
    kiln_graph *g = graph(opset);
    input(g, "x", 3, (int64_t[]){3, 4, 5});
    kiln__node *r;
    if (n && opset >= axes_opset) {
        ints_init(g, "axes", n, axes);
        r = node(g, op, "y", "x", "axes", NULL);
    } else {
        r = node(g, op, "y", "x", NULL);
        if (n) ints_attr(r, "axes", n, axes);
    }
    int_attr(r, "keepdims", keepdims);
    if (noop) int_attr(r, "noop_with_empty_axes", 1);
    add_output(g, "y");
    printf(" %s opset %d, %d axes, keepdims %d%s\n", op, opset, n, keepdims,
           noop ? ", noop_with_empty_axes" : "");
    /* LogSum takes logs of sums: positive inputs */
    grad_check(g, (range[]){{"x", 0.5, 2}}, strcmp(op, "ReduceLogSum") == 0);
}

static void test_reductions(void **state) {
    (void)state;
    static const char *const ops[] = {"ReduceMax",  "ReduceMin",    "ReduceSumSquare",
                                      "ReduceL1",   "ReduceL2",     "ReduceLogSum",
                                      "ReduceLogSumExp", "ReduceSum", "ReduceMean"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        check_reduce(ops[i], 18, 2, (int64_t[]){0, -1}, 0, 0);
        check_reduce(ops[i], 18, 0, NULL, 1, 0);
        check_reduce(ops[i], 18, 0, NULL, 0, 0);
        check_reduce(ops[i], 18, 0, NULL, 1, 1); /* the identity */
        check_reduce(ops[i], 13, 1, (int64_t[]){1}, 1, 0);
        check_reduce(ops[i], 11, 2, (int64_t[]){-2, 0}, 0, 0);
    }
}

/* What finite differences cannot see, as ties and zero norms are not
 * differentiable: ReduceMax and ReduceMin share dY evenly among the elements
 * equal to the result (as torch's amax / amin do); ReduceL2's gradient is 0
 * where the norm is 0 (as torch's norm). x: (2, 4) reduced over axis 1, dY =
 * (1, 4). */
static void test_reduce_ties(void **state) {
    (void)state;
    static const struct {
        const char *op;
        double x[8], want[8];
    } cases[] = {
        {"ReduceMax", {1, 3, 3, 1, 2, 2, 2, 2}, {0, 0.5, 0.5, 0, 1, 1, 1, 1}},
        {"ReduceMin", {1, 3, 3, 1, 2, 2, 2, 2}, {0.5, 0, 0, 0.5, 1, 1, 1, 1}},
        {"ReduceL2", {3, 0, 0, 4, 0, 0, 0, 0}, {0.6, 0, 0, 0.8, 0, 0, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        kiln_graph *g = graph(18);
        input(g, "x", 2, (int64_t[]){2, 4});
        ints_init(g, "axes", 1, (int64_t[]){1});
        int_attr(node(g, cases[c].op, "y", "x", "axes", NULL), "keepdims", 0);
        add_output(g, "y");
        assert_int_equal(kiln__graph_finalize(g), KILN_OK);
        assert_int_equal(kiln_graph_infer_shapes(g), KILN_OK);
        kiln_graph *b = backward(g, 1, (int64_t[]){2});
        kiln_tensor *in[2], *dx;
        int64_t dims[2] = {2, 4};
        assert_int_equal(kiln_tensor_create(DT, 2, dims, &in[0]), KILN_OK);
        memcpy(kiln_tensor_data(in[0]), cases[c].x, sizeof cases[c].x);
        in[1] = vec(DT, 2, (double[]){1, 4});
        run(b, in, 1, &dx);
        const double *got = kiln_tensor_data(dx);
        for (int i = 0; i < 8; i++)
            if (!(fabs(got[i] - cases[c].want[i]) <= 1e-12)) /* NaN fails too */
                fail_msg("%s: dX[%d] = %g, expected %g", cases[c].op, i, got[i], cases[c].want[i]);
        kiln_tensor_free(dx);
        kiln_tensor_free(in[0]);
        kiln_tensor_free(in[1]);
        kiln_graph_free(b);
        kiln_graph_free(g);
    }
}

/* ---- ConvTranspose --------------------------------------------------------------------- */

/* y = ConvTranspose(x, w[, b]) of group groups; the caller sets the other
 * attributes on the node returned (valid until the next node is added). */
static kiln__node *conv_transpose(kiln_graph *g, int nd, const int64_t *x, const int64_t *w,
                                  int group, int bias) {
    input(g, "x", nd, x);
    input(g, "w", nd, w);
    if (bias) input(g, "b", 1, (int64_t[]){w[1] * group});
    add_output(g, "y");
    kiln__node *n = node(g, "ConvTranspose", "y", "x", "w", bias ? "b" : NULL, NULL);
    if (group != 1) int_attr(n, "group", group);
    return n;
}

static void test_conv_transpose(void **state) {
    (void)state;
    printf(" 2-D, group 2, strides, pads, output_padding, dilations, bias\n");
    kiln_graph *g = graph(17);
    kiln__node *n = conv_transpose(g, 4, (int64_t[]){2, 4, 3, 4}, (int64_t[]){4, 3, 3, 2}, 2, 1);
    ints_attr(n, "strides", 2, (int64_t[]){2, 1});
    ints_attr(n, "pads", 4, (int64_t[]){1, 0, 0, 1});
    ints_attr(n, "output_padding", 2, (int64_t[]){1, 0});
    ints_attr(n, "dilations", 2, (int64_t[]){1, 2});
    grad_check(g, NULL, 0);

    printf(" 1-D, stride 3, output_padding 2 past the end pad, dilation 2, bias\n");
    g = graph(17);
    n = conv_transpose(g, 3, (int64_t[]){1, 3, 4}, (int64_t[]){3, 2, 2}, 1, 1);
    ints_attr(n, "strides", 1, (int64_t[]){3});
    ints_attr(n, "pads", 2, (int64_t[]){1, 0});
    ints_attr(n, "output_padding", 1, (int64_t[]){2});
    ints_attr(n, "dilations", 1, (int64_t[]){2});
    grad_check(g, NULL, 0);

    printf(" 1-D, output_padding 2 with stride 1 and dilation 3: taps never reach the end\n");
    g = graph(17);
    n = conv_transpose(g, 3, (int64_t[]){1, 2, 5}, (int64_t[]){2, 2, 3}, 1, 0);
    ints_attr(n, "dilations", 1, (int64_t[]){3});
    ints_attr(n, "output_padding", 1, (int64_t[]){2});
    grad_check(g, NULL, 0);

    printf(" 1-D, output_shape larger than the taps reach\n");
    g = graph(17);
    n = conv_transpose(g, 3, (int64_t[]){1, 2, 4}, (int64_t[]){2, 3, 3}, 1, 1);
    ints_attr(n, "strides", 1, (int64_t[]){2});
    ints_attr(n, "output_shape", 1, (int64_t[]){12});
    grad_check(g, NULL, 0);

    static const char *const same[] = {"SAME_UPPER", "SAME_LOWER"};
    for (int k = 0; k < 2; k++) {
        printf(" 1-D, auto_pad %s, stride 3, group 2\n", same[k]);
        g = graph(17);
        n = conv_transpose(g, 3, (int64_t[]){2, 2, 4}, (int64_t[]){2, 1, 4}, 2, 0);
        ints_attr(n, "strides", 1, (int64_t[]){3});
        string_attr(n, "auto_pad", same[k]);
        grad_check(g, NULL, 0);
    }

    printf(" 3-D, opset 11, strides, output_shape (leading N and C) larger on one axis\n");
    g = graph(11);
    n = conv_transpose(g, 5, (int64_t[]){1, 2, 2, 3, 2}, (int64_t[]){2, 2, 2, 1, 2}, 1, 0);
    ints_attr(n, "strides", 3, (int64_t[]){2, 1, 2});
    ints_attr(n, "output_shape", 5, (int64_t[]){1, 2, 5, 3, 4});
    grad_check(g, NULL, 0);
}

/* What a rule cannot know when autograd runs fails naming it: ConvTranspose's
 * SAME padding on a spatial size known only at run time. */
static void test_unknown_sizes(void **state) {
    (void)state;
    kiln_graph *g = graph(17);
    input(g, "x", 3, (int64_t[]){1, 2, -1});
    g->values[g->inputs[0]].dims[2].sym = kiln__strdup("L");
    input(g, "w", 3, (int64_t[]){2, 3, 3});
    string_attr(node(g, "ConvTranspose", "y", "x", "w", NULL), "auto_pad", "SAME_UPPER");
    add_output(g, "y");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    int dy = kiln__graph_add_value(g, "dy");
    g->values[dy].kind = KILN__VAL_INPUT;
    g->values[dy].dtype = DT;
    int wrt[2] = {g->inputs[0], g->inputs[1]}, grads[2];
    assert_int_equal(kiln__autograd(g, g->outputs[0], dy, 2, wrt, grads), KILN_E_UNSUPPORTED);
    assert_non_null(strstr(kiln_last_error(), "'y' (ConvTranspose)"));
    assert_non_null(strstr(kiln_last_error(), "auto_pad SAME_* with spatial sizes not known"));
    kiln_graph_free(g);
}

/* RNN ops through time: `op` (G gate blocks, n_states states: LSTM 4 and 2,
 * GRU 3 and 1) with S = 3, B = 2, I = 3, H = 2, differentiated with respect to
 * X, W, R and, when full, B and the initial states; y is the outputs asked for
 * (bits of outs: Y, Y_h, Y_c) flattened and concatenated. lbr >= 0 sets
 * linear_before_reset; lens (B values, or NULL) is sequence_lens; clip > 0
 * sets clip (0.4 clips a good share of the gate inputs, which are about
 * +-1 with these ranges), input_forget LSTM's input_forget; peepholes gives
 * the LSTM a P input (differentiated too); acts sets the activations. */
enum { RNN_S = 3, RNN_B = 2, RNN_I = 3, RNN_H = 2 };
/* The activations attributes of a check (NULL: the defaults). */
typedef struct rnn_acts {
    int n;
    const char *names[6];
    int n_alpha, n_beta;
    float alpha[4], beta[4];
} rnn_acts;
static void check_rnn(const char *op, int G, int n_states, const char *dir, int layout, int full,
                      int outs, int lbr, const double *lens, double clip, int input_forget,
                      int peepholes, const rnn_acts *acts) {
    enum { S = RNN_S, B = RNN_B, I = RNN_I, H = RNN_H };
    int D = strcmp(dir, "bidirectional") ? 1 : 2;
    kiln_graph *g = graph(17);
    int64_t xd[3] = {S, B, I}, sd[3] = {D, B, H};
    if (layout) xd[0] = B, xd[1] = S, sd[0] = B, sd[1] = D;
    input(g, "X", 3, xd);
    input(g, "W", 3, (int64_t[]){D, G * H, I});
    input(g, "R", 3, (int64_t[]){D, G * H, H});
    if (full) {
        input(g, "B", 2, (int64_t[]){D, 2 * G * H});
        input(g, "h0", 3, sd);
        if (n_states > 1) input(g, "c0", 3, sd);
    }
    if (lens) init(g, "lens", vec(KILN_DTYPE_I32, B, lens));
    if (peepholes) input(g, "P", 2, (int64_t[]){D, 3 * H});
    const char *const ins[8] = {"X", "W", "R", full ? "B" : "", lens ? "lens" : "",
                                full ? "h0" : "", full ? "c0" : "", "P"};
    static const char *const names[3] = {"Y", "Y_h", "Y_c"};
    int n_in = peepholes ? 8 : full ? 5 + n_states : lens ? 5 : 3, n_out = 1 + n_states;
    int i = kiln__graph_add_node(g, "rnn", op, "", n_in, n_out);
    for (int j = 0; j < n_in; j++) g->nodes[i].in[j] = ins[j][0] ? kiln__graph_value(g, ins[j]) : -1;
    for (int j = 0; j < n_out; j++)
        g->nodes[i].out[j] = outs >> j & 1 ? kiln__graph_value(g, names[j]) : -1;
    string_attr(&g->nodes[i], "direction", dir);
    int_attr(&g->nodes[i], "hidden_size", H);
    int_attr(&g->nodes[i], "layout", layout);
    if (lbr >= 0) int_attr(&g->nodes[i], "linear_before_reset", lbr);
    if (clip > 0) float_attr(&g->nodes[i], "clip", (float)clip);
    if (input_forget) int_attr(&g->nodes[i], "input_forget", 1);
    if (acts) {
        strings_attr(&g->nodes[i], "activations", acts->n, acts->names);
        if (acts->n_alpha) floats_attr(&g->nodes[i], "activation_alpha", acts->n_alpha, acts->alpha);
        if (acts->n_beta) floats_attr(&g->nodes[i], "activation_beta", acts->n_beta, acts->beta);
    }
    ints_init(g, "flat", 1, (int64_t[]){-1});
    const char *parts[3];
    int n_parts = 0;
    for (int j = 0; j < n_out; j++) {
        if (!(outs >> j & 1)) continue;
        static const char *const flat[3] = {"fY", "fY_h", "fY_c"};
        node(g, "Reshape", flat[j], names[j], "flat", NULL);
        parts[n_parts++] = flat[j];
    }
    if (n_parts == 1) {
        node(g, "Identity", "y", parts[0], NULL);
    } else {
        kiln__node *cat = node(g, "Concat", "y", parts[0], parts[1], n_parts > 2 ? parts[2] : NULL,
                               NULL);
        int_attr(cat, "axis", 0);
    }
    add_output(g, "y");
    grad_check(g, NULL, 0);
}


/* Sequence lengths of the RNN checks: shorter than S, and 0 (the row's states
 * pass straight from the initial ones to Y_h, Y_c). */
static const double rnn_lens[2][RNN_B] = {{2, 3}, {0, 2}};

/* LSTM through time. Variants: forward with bias and initial states (layout
 * 0), bidirectional without them (layout 1), reverse with only Y_h; with
 * sequence_lens: bidirectional (layout 1), forward with initial states and an
 * empty row; with clip, input_forget and both (the last with sequence_lens);
 * with peepholes: alone, bidirectional with sequence_lens, and with clip and
 * input_forget. */
static void test_lstm(void **state) {
    (void)state;
    enum { S = RNN_S, B = RNN_B, I = RNN_I, H = RNN_H };
    static const struct { const char *dir; int layout, full, outs, lens; double clip; int forget, peep; } cases[] = {
        {"forward", 0, 1, 7, -1, 0, 0, 0},      {"bidirectional", 1, 0, 7, -1, 0, 0, 0},
        {"reverse", 0, 1, 2, -1, 0, 0, 0},      {"bidirectional", 1, 0, 7, 0, 0, 0, 0},
        {"forward", 0, 1, 7, 1, 0, 0, 0},       {"forward", 0, 1, 7, -1, 0.4, 0, 0},
        {"bidirectional", 1, 1, 7, -1, 0, 1, 0}, {"reverse", 0, 1, 7, 1, 0.4, 1, 0},
        {"forward", 0, 1, 7, -1, 0, 0, 1},      {"bidirectional", 1, 0, 7, 0, 0, 0, 1},
        {"reverse", 0, 1, 3, -1, 0.4, 1, 1}};
    for (int k = 0; k < 11; k++) {
        printf(" lstm %s, layout %d%s%s%s%s\n", cases[k].dir, cases[k].layout,
               cases[k].lens >= 0 ? ", sequence_lens" : "", cases[k].clip > 0 ? ", clip 0.4" : "",
               cases[k].forget ? ", input_forget" : "", cases[k].peep ? ", peepholes" : "");
        check_rnn("LSTM", 4, 2, cases[k].dir, cases[k].layout, cases[k].full, cases[k].outs, -1,
                  cases[k].lens >= 0 ? rnn_lens[cases[k].lens] : NULL, cases[k].clip, cases[k].forget,
                  cases[k].peep, NULL);
    }
    /* other activations, with their alpha and beta: one list for both
     * directions, then one per direction, then with clip and peepholes */
    static const rnn_acts lstm_acts[3] = {
        {3, {"HardSigmoid", "Softsign", "Elu"}, 2, 1, {0.3f, 0.8f}, {0.45f}},
        {6, {"Sigmoid", "ScaledTanh", "Softplus", "Affine", "Tanh", "LeakyRelu"}, 3, 2,
         {1.5f, 0.7f, 0.1f}, {0.6f, -0.2f}},
        {3, {"Softplus", "Relu", "ThresholdedRelu"}, 1, 0, {0.05f}, {0}}};
    printf(" lstm forward, HardSigmoid / Softsign / Elu\n");
    check_rnn("LSTM", 4, 2, "forward", 0, 1, 7, -1, NULL, 0, 0, 0, &lstm_acts[0]);
    printf(" lstm bidirectional, per-direction activations\n");
    check_rnn("LSTM", 4, 2, "bidirectional", 1, 1, 7, -1, NULL, 0, 0, 0, &lstm_acts[1]);
    printf(" lstm reverse, Softplus / Relu / ThresholdedRelu, clip 0.4, peepholes\n");
    check_rnn("LSTM", 4, 2, "reverse", 0, 1, 7, -1, NULL, 0.4, 0, 1, &lstm_acts[2]);
}

/* GRU through time, both linear_before_reset. Variants: forward with bias and
 * initial state (layout 0, linear_before_reset 0), bidirectional without them
 * (layout 1, 1), reverse with only Y_h (layout 0, 1); with sequence_lens:
 * reverse with the initial state and an empty row (0), forward (1); with clip
 * (both linear_before_reset). */
static void test_gru(void **state) {
    (void)state;
    enum { S = RNN_S, B = RNN_B, I = RNN_I, H = RNN_H };
    static const struct { const char *dir; int layout, full, outs, lbr, lens; double clip; } cases[] = {
        {"forward", 0, 1, 3, 0, -1, 0}, {"bidirectional", 1, 0, 3, 1, -1, 0}, {"reverse", 0, 1, 2, 1, -1, 0},
        {"reverse", 0, 1, 3, 0, 1, 0},  {"forward", 1, 0, 3, 1, 0, 0},         {"forward", 0, 1, 3, 0, -1, 0.4},
        {"bidirectional", 1, 1, 3, 1, 1, 0.4}};
    for (int k = 0; k < 7; k++) {
        printf(" gru %s, layout %d, linear_before_reset %d%s%s\n", cases[k].dir, cases[k].layout,
               cases[k].lbr, cases[k].lens >= 0 ? ", sequence_lens" : "", cases[k].clip > 0 ? ", clip 0.4" : "");
        check_rnn("GRU", 3, 1, cases[k].dir, cases[k].layout, cases[k].full, cases[k].outs,
                  cases[k].lbr, cases[k].lens >= 0 ? rnn_lens[cases[k].lens] : NULL, cases[k].clip, 0, 0,
                  NULL);
    }
    /* other activations, with their alpha and beta */
    static const rnn_acts gru_acts[2] = {
        {2, {"HardSigmoid", "ScaledTanh"}, 2, 2, {0.25f, 1.2f}, {0.5f, 0.8f}},
        {4, {"Softsign", "Affine", "Sigmoid", "Elu"}, 2, 1, {0.9f, 0.5f}, {0.1f}}};
    printf(" gru forward, HardSigmoid / ScaledTanh, linear_before_reset 0\n");
    check_rnn("GRU", 3, 1, "forward", 0, 1, 3, 0, NULL, 0, 0, 0, &gru_acts[0]);
    printf(" gru bidirectional, per-direction activations, linear_before_reset 1, clip 0.4\n");
    check_rnn("GRU", 3, 1, "bidirectional", 1, 1, 3, 1, NULL, 0.4, 0, 0, &gru_acts[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_math),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_shapes_and_reductions),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_more_math),
        cmocka_unit_test(test_normalization),
        cmocka_unit_test(test_concat_gather),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_small_cnn),
        cmocka_unit_test(test_no_rule),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_reduce_ties),
        cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_unknown_sizes),
        cmocka_unit_test(test_lstm),
        cmocka_unit_test(test_gru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
