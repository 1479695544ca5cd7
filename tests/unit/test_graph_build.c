/* tests/unit/test_graph_build.c: building graphs in C (kiln/graph.h's
 * builder) and the built-in architectures (kiln/train.h): an MLP, a CNN, a
 * ResNet and a character LSTM built by the library train (the MLP learns three
 * clusters, the CNN and the ResNet fit a batch, the LSTM a next-id rule), the same seed builds the same weights, a built graph survives
 * kiln_graph_save_onnx and reloading with the same outputs, and bad graphs
 * are refused naming what is wrong. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kiln/kiln.h"

static unsigned seed = 99;

static kiln_tensor *uniform(int ndim, const int64_t *dims, double lo, double hi) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, ndim, dims, &t), KILN_OK);
    float *d = kiln_tensor_data(t);
    for (int64_t i = 0; i < kiln_tensor_numel(t); i++) {
        seed = seed * 1103515245u + 12345u;
        d[i] = (float)(lo + (hi - lo) * ((seed >> 8) % 10001) / 10000.0);
    }
    return t;
}

static kiln_tensor *labels_of(int64_t n, const int64_t *v) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 1, &n, &t), KILN_OK);
    memcpy(kiln_tensor_data(t), v, (size_t)n * sizeof *v);
    return t;
}

/* Output 0 of g on x (a copy). */
static kiln_tensor *run(const kiln_graph *g, const kiln_tensor *x) {
    kiln_session *s;
    const kiln_tensor *y;
    kiln_tensor *copy;
    const char *name = "x";
    assert_int_equal(kiln_session_create(g, &(kiln_session_options){.threads = 1}, &s), KILN_OK);
    assert_int_equal(kiln_session_run(s, 1, &name, &x), KILN_OK);
    assert_int_equal(kiln_session_output(s, 0, &y), KILN_OK);
    assert_int_equal(kiln_tensor_copy(y, KILN_DTYPE_UNDEFINED, &copy), KILN_OK);
    kiln_session_free(s);
    return copy;
}

static int same_floats(const kiln_tensor *a, const kiln_tensor *b) {
    return kiln_tensor_numel(a) == kiln_tensor_numel(b) &&
           !memcmp(kiln_tensor_data(a), kiln_tensor_data(b), (size_t)kiln_tensor_numel(a) * sizeof(float));
}

/* Training steps on (x, labels); returns the last loss, *first the first. */
static double train(const kiln_graph *g, const kiln_tensor *x, const kiln_tensor *labels, int steps,
                    double *first, int64_t *right) {
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_ADAM, .threads = 2};
    kiln_trainer *t;
    double loss = 0;
    if (kiln_trainer_create(g, &o, &t) != KILN_OK) fail_msg("%s", kiln_last_error());
    for (int i = 0; i < steps; i++) {
        assert_int_equal(kiln_trainer_step(t, x, labels, 0.02, &loss, right), KILN_OK);
        if (i == 0) *first = loss;
    }
    kiln_trainer_free(t);
    return loss;
}

static void test_mlp(void **state) {
    (void)state;
    enum { N = 24, F = 4, C = 3 };
    kiln_graph *g, *same, *other;
    const int64_t hidden[1] = {8};
    assert_int_equal(kiln_model_mlp(F, 1, hidden, C, 7, &g), KILN_OK);
    assert_int_equal(kiln_model_mlp(F, 1, hidden, C, 7, &same), KILN_OK);
    assert_int_equal(kiln_model_mlp(F, 1, hidden, C, 8, &other), KILN_OK);
    kiln_tensor *x = uniform(2, (int64_t[]){N, F}, -0.5, 0.5);
    int64_t lab[N];
    float *xd = kiln_tensor_data(x);
    for (int i = 0; i < N; i++) {
        lab[i] = i % C;
        xd[i * F + lab[i]] += 1.5f;
    }
    kiln_tensor *labels = labels_of(N, lab);
    kiln_tensor *y = run(g, x), *y_same = run(same, x), *y_other = run(other, x);
    assert_true(same_floats(y, y_same));   /* the same seed: the same weights */
    assert_false(same_floats(y, y_other)); /* another seed: others */
    char path[64];
    snprintf(path, sizeof path, "/tmp/kiln_test_mlp_%d.onnx", (int)getpid());
    kiln_graph *back;
    assert_int_equal(kiln_graph_save_onnx(g, path), KILN_OK);
    assert_int_equal(kiln_graph_load_onnx(path, &back), KILN_OK);
    kiln_tensor *y_back = run(back, x);
    assert_true(same_floats(y, y_back));
    remove(path);
    double first, loss;
    int64_t right = 0;
    loss = train(g, x, labels, 40, &first, &right);
    printf("  mlp: loss %.4f -> %.4f, %lld/%d right\n", first, loss, (long long)right, N);
    assert_true(loss < 0.5 * first && right >= N - 2);
    kiln_tensor_free(y), kiln_tensor_free(y_same), kiln_tensor_free(y_other), kiln_tensor_free(y_back);
    kiln_tensor_free(x), kiln_tensor_free(labels);
    kiln_graph_free(g), kiln_graph_free(same), kiln_graph_free(other), kiln_graph_free(back);
}

/* Image model g (x (N,1,8,8) -> logits (N,3)) fits one batch of 12. */
static void fits_images(kiln_graph *g, const char *name) {
    enum { N = 12 };
    kiln_value_info info;
    assert_int_equal(kiln_graph_output_info(g, 0, &info), KILN_OK);
    assert_string_equal(info.name, "logits");
    kiln_tensor *x = uniform(4, (int64_t[]){N, 1, 8, 8}, 0, 1);
    int64_t lab[N];
    for (int i = 0; i < N; i++) lab[i] = i % 3;
    kiln_tensor *labels = labels_of(N, lab), *y = run(g, x);
    assert_int_equal(kiln_tensor_dims(y)[1], 3);
    double first, loss;
    int64_t right = 0;
    loss = train(g, x, labels, 30, &first, &right); /* fits the one batch */
    printf("  %s: loss %.4f -> %.4f, %lld/%d right\n", name, first, loss, (long long)right, N);
    assert_true(loss < 0.5 * first);
    kiln_tensor_free(y), kiln_tensor_free(x), kiln_tensor_free(labels);
    kiln_graph_free(g);
}

static void test_cnn(void **state) {
    (void)state;
    kiln_graph *g;
    assert_int_equal(kiln_model_cnn(1, 8, 8, 4, 3, 5, &g), KILN_OK);
    fits_images(g, "cnn");
}

static void test_resnet(void **state) {
    (void)state;
    kiln_graph *g;
    assert_int_equal(kiln_model_resnet(1, 8, 8, 4, 0, 3, 5, &g), KILN_E_INVAL);
    assert_int_equal(kiln_model_resnet(1, 8, 8, 4, 2, 3, 5, &g), KILN_OK);
    int adds = 0, convs = 0;
    for (int i = 0; i < kiln_graph_num_nodes(g); i++) {
        adds += !strcmp(kiln_graph_node_op_type(g, i), "Add");
        convs += !strcmp(kiln_graph_node_op_type(g, i), "Conv");
    }
    assert_int_equal(adds, 2);  /* one residual connection a block */
    assert_int_equal(convs, 6); /* stem, 2 a block, the projection where block 2 halves and widens */
    fits_images(g, "resnet");
}

/* The character LSTM learns to predict id + 1 (mod 5) from id, at every position. */
static void test_char_lstm(void **state) {
    (void)state;
    enum { N = 8, T = 6, V = 5 };
    kiln_graph *g;
    assert_int_equal(kiln_model_char_lstm(V, 4, 8, 3, &g), KILN_OK);
    kiln_tensor *x, *labels;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 2, (int64_t[]){N, T}, &x), KILN_OK);
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 2, (int64_t[]){N, T}, &labels), KILN_OK);
    int64_t *xd = kiln_tensor_data(x), *ld = kiln_tensor_data(labels);
    for (int i = 0; i < N * T; i++) {
        xd[i] = (i * 7 + i / T) % V;
        ld[i] = (xd[i] + 1) % V;
    }
    kiln_tensor *y = run(g, x);
    assert_int_equal(kiln_tensor_ndim(y), 3);
    assert_true(kiln_tensor_dims(y)[0] == N && kiln_tensor_dims(y)[1] == V && kiln_tensor_dims(y)[2] == T);
    double first, loss;
    int64_t right = 0;
    loss = train(g, x, labels, 60, &first, &right);
    printf("  char lstm: loss %.4f -> %.4f, %lld/%d right\n", first, loss, (long long)right, N * T);
    assert_true(loss < 0.3 * first && right == N * T);
    kiln_tensor_free(y), kiln_tensor_free(x), kiln_tensor_free(labels);
    kiln_graph_free(g);
}

/* The builder by hand, and what it refuses. */
static void test_builder(void **state) {
    (void)state;
    kiln_graph *g;
    int node;
    assert_int_equal(kiln_graph_create(0, &g), KILN_OK);
    assert_int_equal(kiln_graph_add_input(g, "x", KILN_DTYPE_F32, 2, (int64_t[]){-1, 3}, NULL), KILN_OK);
    assert_int_equal(kiln_graph_add_input(g, "x", KILN_DTYPE_F32, 1, (int64_t[]){3}, NULL), KILN_E_INVAL);
    assert_non_null(strstr(kiln_last_error(), "already has a value named 'x'"));
    assert_int_equal(kiln_graph_add_node(g, "LeakyRelu", "", 1, (const char *[]){"x"}, 1,
                                         (const char *[]){"y"}, &node), KILN_OK);
    assert_int_equal(kiln_graph_set_attr_float(g, node, "alpha", 0.5f), KILN_OK);
    assert_int_equal(kiln_graph_set_attr_float(g, node, "alpha", 0.25f), KILN_OK); /* replaced */
    assert_int_equal(kiln_graph_set_attr_int(g, 99, "alpha", 1), KILN_E_RANGE);
    assert_int_equal(kiln_graph_finish(g), KILN_E_INVAL); /* no outputs yet */
    assert_int_equal(kiln_graph_add_output(g, "nope"), KILN_E_NOTFOUND);
    assert_int_equal(kiln_graph_add_output(g, "y"), KILN_OK);
    assert_int_equal(kiln_graph_finish(g), KILN_OK);
    kiln_tensor *x = uniform(2, (int64_t[]){2, 3}, -1, 1), *y = run(g, x);
    const float *xd = kiln_tensor_data(x), *yd = kiln_tensor_data(y);
    for (int i = 0; i < 6; i++) assert_true(yd[i] == (xd[i] > 0 ? xd[i] : 0.25f * xd[i]));
    kiln_tensor_free(x), kiln_tensor_free(y);
    kiln_graph_free(g);

    assert_int_equal(kiln_graph_create(0, &g), KILN_OK); /* an input nothing defines */
    assert_int_equal(kiln_graph_add_input(g, "x", KILN_DTYPE_F32, 1, (int64_t[]){3}, NULL), KILN_OK);
    assert_int_equal(kiln_graph_add_node(g, "Add", "", 2, (const char *[]){"x", "ghost"}, 1,
                                         (const char *[]){"y"}, NULL), KILN_OK);
    assert_int_equal(kiln_graph_add_output(g, "y"), KILN_OK);
    assert_true(kiln_graph_finish(g) != KILN_OK);
    assert_non_null(strstr(kiln_last_error(), "ghost"));
    kiln_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_cnn),
        cmocka_unit_test(test_resnet),
        cmocka_unit_test(test_char_lstm),
        cmocka_unit_test(test_builder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
