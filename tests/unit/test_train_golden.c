/* tests/unit/test_train_golden.c: kiln's trainer against PyTorch.
 *
 * tests/train/golden/ holds what scripts/make_train_golden.py recorded with
 * torch (a small CNN: Conv, BatchNormalization, ReLU, MaxPool, grouped Conv,
 * AveragePool, Gemm; 20 steps on fixed batches for each of SGD with momentum
 * and weight decay, Adam with L2 weight decay and AdamW, and for two other
 * losses: cross-entropy with label smoothing, binary cross-entropy of the
 * logits against one-hot targets): the initial model,
 * the batches, the loss of every step and the model after the last one. Here
 * the same model trains on the same batches with kiln_trainer_step, on one
 * thread and on two; every step's loss and every final parameter and running
 * statistic must agree with torch's to float32 accumulation differences. The
 * test needs no torch: the golden files are committed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kiln/kiln.h"

#define GOLDEN KILN_SOURCE_DIR "/tests/train/golden/"

static kiln_tensor *load_npy(const char *file) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN "%s", file);
    kiln_tensor *t = NULL;
    kiln_status st = kiln_tensor_load_npy(path, &t);
    if (st != KILN_OK)
        fail_msg("%s: %s", path, kiln_last_error());
    return t;
}

static kiln_graph *load_onnx(const char *file) {
    char path[512];
    snprintf(path, sizeof path, GOLDEN "%s", file);
    kiln_graph *g = NULL;
    if (kiln_graph_load_onnx(path, &g) != KILN_OK)
        fail_msg("%s: %s", path, kiln_last_error());
    return g;
}

/* Step s's slice of a batches tensor (STEPS, ...) as a tensor over its data. */
static kiln_tensor *batch(const kiln_tensor *all, int64_t s, size_t elem_bytes) {
    int nd = kiln_tensor_ndim(all);
    const int64_t *dims = kiln_tensor_dims(all);
    int64_t per = kiln_tensor_numel(all) / dims[0];
    kiln_tensor *t = NULL;
    assert_int_equal(kiln_tensor_wrap(kiln_tensor_dtype(all), nd - 1, dims + 1,
                                      (char *)kiln_tensor_data(all) + s * per * elem_bytes, &t),
                     KILN_OK);
    return t;
}

/* Every initializer of want has a same-named, same-sized one in got within
 * |got - want| <= atol + rtol |want|. */
static void expect_same_initializers(const kiln_graph *got, const kiln_graph *want, double atol,
                                     double rtol, const char *what) {
    int n_want = kiln_graph_num_initializers(want);
    assert_true(n_want > 0);
    for (int i = 0; i < n_want; i++) {
        const char *name;
        const kiln_tensor *w = kiln_graph_initializer(want, i, &name);
        const kiln_tensor *g = NULL;
        for (int j = 0; j < kiln_graph_num_initializers(got) && !g; j++) {
            const char *gname;
            const kiln_tensor *t = kiln_graph_initializer(got, j, &gname);
            if (!strcmp(gname, name))
                g = t;
        }
        if (!g)
            fail_msg("%s: the trained model has no initializer '%s'", what, name);
        assert_int_equal(kiln_tensor_numel(g), kiln_tensor_numel(w));
        const float *gd = kiln_tensor_data(g), *wd = kiln_tensor_data(w);
        for (int64_t k = 0; k < kiln_tensor_numel(w); k++)
            if (!(fabs((double)gd[k] - wd[k]) <= atol + rtol * fabs(wd[k])))
                fail_msg("%s: %s[%lld] = %.7g, torch %.7g", what, name, (long long)k, gd[k],
                         wd[k]);
    }
}

/* atol: the final parameters' absolute tolerance (Adam, which divides by the
 * root of the squared gradients' average, amplifies rounding where gradients
 * are near zero, as label smoothing makes some) */
static void train_like_torch(const char *opt_name, kiln_train_options opt, double lr,
                             int threads, double atol) {
    kiln_graph *net = load_onnx("net.onnx");
    kiln_tensor *x = load_npy("x.npy"), *y = load_npy("y.npy");
    char file[64];
    snprintf(file, sizeof file, "%s_losses.npy", opt_name);
    kiln_tensor *losses = load_npy(file);
    snprintf(file, sizeof file, "%s_final.onnx", opt_name);
    kiln_graph *want = load_onnx(file);
    int64_t steps = kiln_tensor_dims(x)[0];
    assert_int_equal(kiln_tensor_numel(losses), steps);

    opt.threads = threads;
    kiln_trainer *t = NULL;
    if (kiln_trainer_create(net, &opt, &t) != KILN_OK)
        fail_msg("%s: %s", opt_name, kiln_last_error());
    const double *want_loss = kiln_tensor_data(losses);
    for (int64_t s = 0; s < steps; s++) {
        kiln_tensor *xb = batch(x, s, sizeof(float)), *yb = batch(y, s, sizeof(int64_t));
        double loss = 0;
        if (kiln_trainer_step(t, xb, yb, lr, &loss, NULL) != KILN_OK)
            fail_msg("%s step %lld: %s", opt_name, (long long)s, kiln_last_error());
        if (!(fabs(loss - want_loss[s]) <= 1e-5 * (1 + fabs(want_loss[s]))))
            fail_msg("%s, %d thread(s), step %lld: loss %.8f, torch %.8f", opt_name, threads,
                     (long long)s, loss, want_loss[s]);
        kiln_tensor_free(xb);
        kiln_tensor_free(yb);
    }
    kiln_graph *got = NULL;
    assert_int_equal(kiln_trainer_export(t, &got), KILN_OK);
    char what[64];
    snprintf(what, sizeof what, "%s, %d thread(s)", opt_name, threads);
    expect_same_initializers(got, want, atol, 1e-5, what);

    kiln_graph_free(got);
    kiln_trainer_free(t);
    kiln_graph_free(want);
    kiln_tensor_free(losses);
    kiln_tensor_free(x);
    kiln_tensor_free(y);
    kiln_graph_free(net);
}

/* The hyperparameters of scripts/make_train_golden.py's CASES. */
static void test_sgd(void **state) {
    (void)state;
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_SGD, .momentum = 0.9, .weight_decay = 1e-3};
    train_like_torch("sgd", o, 0.05, 1, 2e-6);
    train_like_torch("sgd", o, 0.05, 2, 2e-6);
}

static void test_adam(void **state) {
    (void)state;
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_ADAM, .weight_decay = 1e-3};
    train_like_torch("adam", o, 0.01, 1, 2e-6);
    train_like_torch("adam", o, 0.01, 2, 2e-6);
}

static void test_adamw(void **state) {
    (void)state;
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_ADAMW, .weight_decay = 0.05};
    train_like_torch("adamw", o, 0.01, 1, 2e-6);
    train_like_torch("adamw", o, 0.01, 2, 2e-6);
}

static void test_label_smoothing(void **state) {
    (void)state;
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_ADAM, .label_smoothing = 0.1};
    train_like_torch("adam_smoothing", o, 0.01, 1, 2e-5);
}

static void test_bce_with_logits(void **state) {
    (void)state;
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_SGD, .momentum = 0.9,
                            .loss = KILN_LOSS_BCE_WITH_LOGITS};
    train_like_torch("sgd_bce", o, 0.5, 2, 2e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_label_smoothing),
        cmocka_unit_test(test_bce_with_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
