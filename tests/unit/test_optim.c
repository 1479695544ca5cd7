/* tests/unit/test_optim.c: optimizers, schedules and clipping
 * (src/train/optim.h) against closed forms that do not repeat the update
 * formulas: with a constant gradient SGD's momentum buffer is a geometric
 * series and Adam's bias-corrected step is lr * g / (|g| + eps); a first step
 * of Adam with L2 moves by lr * d / (|d| + eps) with d = g + wd * p. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "train/optim.h"

#define N 7

static void fill(float *p, float *g, unsigned seed) {
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
        seed = seed * 1103515245u + 12345u;
        g[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
        if (g[i] == 0) g[i] = 0.25f;
    }
}

static void near(double got, double want, double tol) {
    if (!(fabs(got - want) <= tol * (1 + fabs(want))))
        fail_msg("got %.9g, want %.9g", got, want);
}

static void test_sgd(void **state) {
    (void)state;
    float p[N], g[N], p0[N];
    const double lr = 0.1, mu = 0.9, wd = 0.01;
    kiln__optim o;
    /* plain, with weight decay: one step */
    fill(p, g, 1);
    for (int i = 0; i < N; i++) p0[i] = p[i];
    assert_int_equal(kiln__optim_init(&o, KILN__OPTIM_SGD, N), KILN_OK);
    o.weight_decay = wd;
    assert_int_equal(kiln__optim_step(&o, p, g, lr), KILN_OK);
    for (int i = 0; i < N; i++) near(p[i], p0[i] - lr * (g[i] + wd * p0[i]), 1e-6);
    assert_int_equal(kiln__optim_state_size(&o), 0);
    kiln__optim_free(&o);
    /* momentum (and Nesterov), constant gradient: b_t = g (1 - mu^t) / (1 - mu) */
    for (int nesterov = 0; nesterov < 2; nesterov++) {
        fill(p, g, 2);
        for (int i = 0; i < N; i++) p0[i] = p[i];
        assert_int_equal(kiln__optim_init(&o, KILN__OPTIM_SGD, N), KILN_OK);
        o.momentum = mu;
        o.nesterov = nesterov;
        double moved = 0; /* sum of the steps per unit gradient */
        for (int t = 1; t <= 6; t++) {
            assert_int_equal(kiln__optim_step(&o, p, g, lr), KILN_OK);
            double b = (1 - pow(mu, t)) / (1 - mu);
            moved += nesterov ? 1 + mu * b : b;
        }
        for (int i = 0; i < N; i++) near(p[i], p0[i] - lr * g[i] * moved, 1e-5);
        assert_int_equal(kiln__optim_state_size(&o), N);
        kiln__optim_free(&o);
    }
}

static void test_adam(void **state) {
    (void)state;
    float p[N], g[N], p0[N];
    const double lr = 0.01, eps = 1e-8, wd = 0.1;
    kiln__optim o;
    /* constant gradient: every step moves by lr * g / (|g| + eps) */
    fill(p, g, 3);
    for (int i = 0; i < N; i++) p0[i] = p[i];
    assert_int_equal(kiln__optim_init(&o, KILN__OPTIM_ADAM, N), KILN_OK);
    for (int t = 0; t < 5; t++) assert_int_equal(kiln__optim_step(&o, p, g, lr), KILN_OK);
    for (int i = 0; i < N; i++) near(p[i], p0[i] - 5 * lr * g[i] / (fabs(g[i]) + eps), 1e-5);
    assert_int_equal(kiln__optim_state_size(&o), 2 * N);
    kiln__optim_free(&o);
    /* L2 weight decay, first step: d = g + wd * p */
    fill(p, g, 4);
    for (int i = 0; i < N; i++) p0[i] = p[i];
    assert_int_equal(kiln__optim_init(&o, KILN__OPTIM_ADAM, N), KILN_OK);
    o.weight_decay = wd;
    assert_int_equal(kiln__optim_step(&o, p, g, lr), KILN_OK);
    for (int i = 0; i < N; i++) {
        double d = g[i] + wd * p0[i];
        near(p[i], p0[i] - lr * d / (fabs(d) + eps), 1e-5);
    }
    kiln__optim_free(&o);
    /* AdamW, constant gradient: p <- p (1 - lr wd) - lr g / (|g| + eps) */
    fill(p, g, 5);
    double want[N];
    for (int i = 0; i < N; i++) want[i] = p[i];
    assert_int_equal(kiln__optim_init(&o, KILN__OPTIM_ADAMW, N), KILN_OK);
    o.weight_decay = wd;
    for (int t = 0; t < 4; t++) {
        assert_int_equal(kiln__optim_step(&o, p, g, lr), KILN_OK);
        for (int i = 0; i < N; i++)
            want[i] = want[i] * (1 - lr * wd) - lr * g[i] / (fabs(g[i]) + eps);
    }
    for (int i = 0; i < N; i++) near(p[i], want[i], 1e-5);
    kiln__optim_free(&o);
}

static void test_clip(void **state) {
    (void)state;
    float g[3] = {3, 0, -4};
    near(kiln__global_norm(g, 3), 5, 1e-12);
    near(kiln__clip_global_norm(g, 3, 10), 5, 1e-12); /* below the bound: unchanged */
    near(g[0], 3, 0);
    near(kiln__clip_global_norm(g, 3, 1), 5, 1e-12);
    near(g[0], 3 / (5 + 1e-6), 1e-6);
    near(g[2], -4 / (5 + 1e-6), 1e-6);
    near(kiln__global_norm(g, 3), 1, 1e-6);
}

static void test_schedules(void **state) {
    (void)state;
    kiln_lr_schedule s = {.kind = KILN_LR_CONSTANT, .lr = 0.1, .warmup = 4};
    near(kiln_lr_at(&s, 0), 0.025, 1e-12);
    near(kiln_lr_at(&s, 2), 0.075, 1e-12);
    near(kiln_lr_at(&s, 3), 0.1, 1e-12);
    near(kiln_lr_at(&s, 100), 0.1, 1e-12);
    s = (kiln_lr_schedule){.kind = KILN_LR_STEP, .lr = 0.1, .step_size = 2, .gamma = 0.5};
    near(kiln_lr_at(&s, 1), 0.1, 1e-12);
    near(kiln_lr_at(&s, 2), 0.05, 1e-12);
    near(kiln_lr_at(&s, 5), 0.025, 1e-12);
    s = (kiln_lr_schedule){.kind = KILN_LR_COSINE, .lr = 0.1, .lr_min = 0.01, .total = 10,
                         .warmup = 2};
    near(kiln_lr_at(&s, 2), 0.1, 1e-12);           /* start of the cosine */
    near(kiln_lr_at(&s, 7), 0.055, 1e-12);         /* half way */
    near(kiln_lr_at(&s, 12), 0.01, 1e-12);         /* end */
    near(kiln_lr_at(&s, 50), 0.01, 1e-12);         /* after the end */
}

static void test_names(void **state) {
    (void)state;
    kiln__optim_kind k;
    assert_int_equal(kiln__optim_parse("adamw", &k), KILN_OK);
    assert_int_equal(k, KILN__OPTIM_ADAMW);
    assert_string_equal(kiln__optim_name(KILN__OPTIM_SGD), "sgd");
    assert_int_equal(kiln__optim_parse("lion", &k), KILN_E_INVAL);
    kiln_lr_schedule_kind sk;
    assert_int_equal(kiln_lr_schedule_parse("cosine", &sk), KILN_OK);
    assert_int_equal(sk, KILN_LR_COSINE);
    assert_int_equal(kiln_lr_schedule_parse("linear", &sk), KILN_E_INVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),      cmocka_unit_test(test_adam),
        cmocka_unit_test(test_clip),     cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
