/* tests/unit/test_rnn_algos.c: the fast LSTM / GRU algorithms
 * (src/cpu/kernels/rnn.c) and their gradients on products (rnn_grad.c:
 * lstm_grad_gemm, gru_grad_gemm) against the reference kernels on fresh random
 * inputs, through one-node graphs (algo_harness.h): forward, reverse and
 * bidirectional, layout 0 and 1, batch 1 and 3, hidden 1, 7, 40 and 64,
 * with and without B / initial states / peepholes / sequence_lens, GRU with
 * both linear_before_reset, clip, input_forget, only some outputs, NaN and
 * Inf in X, threads 1, 2 and 3; f32 within 1e-5 normalized error. Also the
 * gate kernels (rnn.h) alone, every implementation this CPU runs, against
 * the formulas in double on edge lengths and special values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "algo_harness.h"
#include "cpu/kernels/rnn.h"

#define TOL 1e-5

typedef enum { FWD, REV, BIDI } dir_kind;
static const char *const dir_names[] = {"forward", "reverse", "bidirectional"};

typedef struct rcase {
    int lstm;
    int64_t S, N, I, H;
    dir_kind dir;
    int layout;
    int bias, h0, c0, peep; /* inputs present */
    int lens;               /* 0 none, 1 all S, 2 varied (0..S) */
    int omit_y;             /* Y omitted (Y_h, Y_c kept) */
    int n_out;              /* outputs kept: 1 (Y), 2, 3 */
    int lbr;                /* GRU linear_before_reset */
    float clip;             /* > 0: the clip attribute */
    int input_forget;
    int named_acts;         /* activations attribute with the default names */
    float x_special;        /* NaN or Inf put into X (0: none) */
    int run_weights;        /* W, R, B, P graph inputs (as in training), not initializers */
    int train;              /* kiln.LSTMTrain / GRUTrain: with the Reserve output */
} rcase;

/* Removes graph output k (output k of the node becomes omitted). */
static void omit_output(ah_case *c, int k) {
    kiln_graph *g = c->g;
    kiln__node *nd = &g->nodes[c->node];
    int v = nd->out[k];
    nd->out[k] = -1;
    int w = 0;
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] != v) g->outputs[w++] = g->outputs[i];
    g->n_outputs = w;
    c->n_out = w;
}

static void build(ah_case *c, const rcase *t, unsigned *seed) {
    const int64_t D = t->dir == BIDI ? 2 : 1, G = t->lstm ? 4 : 3, H = t->H;
    const int n_out = t->n_out ? t->n_out : (t->lstm ? 3 : 2) + t->train;
    if (t->train)
        ah_case_init(c, t->lstm ? "LSTMTrain" : "GRUTrain", "kiln", 1, n_out);
    else
        ah_case_init(c, t->lstm ? "LSTM" : "GRU", "", 14, n_out);
    if (t->omit_y) omit_output(c, 0);
    const int64_t xd[3] = {t->layout ? t->N : t->S, t->layout ? t->S : t->N, t->I};
    const int64_t wd[3] = {D, G * H, t->I}, rd[3] = {D, G * H, H}, bd[2] = {D, 2 * G * H};
    const int64_t sd[3] = {t->layout ? t->N : D, t->layout ? D : t->N, H}, pd[2] = {D, 3 * H};
    kiln_tensor *x = ah_random(KILN_DTYPE_F32, 3, xd, seed, -1, 1);
    if (t->x_special != 0) {
        float *xv = kiln_tensor_data(x);
        xv[kiln__numel(3, xd) / 2] = t->x_special;
    }
    ah_input(c, x, 0);
    const int wconst = !t->run_weights;
    ah_input(c, ah_random(KILN_DTYPE_F32, 3, wd, seed, -0.6f, 0.6f), wconst);
    ah_input(c, ah_random(KILN_DTYPE_F32, 3, rd, seed, -0.6f, 0.6f), wconst);
    ah_input(c, t->bias ? ah_random(KILN_DTYPE_F32, 2, bd, seed, -0.5f, 0.5f) : NULL, wconst);
    kiln_tensor *lens = NULL;
    if (t->lens) {
        int64_t n = t->N;
        assert_int_equal(kiln_tensor_create(KILN_DTYPE_I32, 1, &n, &lens), KILN_OK);
        int32_t *lv = kiln_tensor_data(lens);
        for (int64_t b = 0; b < n; b++)
            lv[b] = t->lens == 1 ? (int32_t)t->S : (int32_t)((b * 5 + 2) % (t->S + 1));
    }
    ah_input(c, lens, 0);
    ah_input(c, t->h0 ? ah_random(KILN_DTYPE_F32, 3, sd, seed, -1, 1) : NULL, 0);
    if (t->lstm) {
        ah_input(c, t->c0 ? ah_random(KILN_DTYPE_F32, 3, sd, seed, -1, 1) : NULL, 0);
        ah_input(c, t->peep ? ah_random(KILN_DTYPE_F32, 2, pd, seed, -0.5f, 0.5f) : NULL, wconst);
    }
    ah_attr_int(c, "hidden_size", H);
    ah_attr_string(c, "direction", dir_names[t->dir]);
    ah_attr_int(c, "layout", t->layout);
    if (!t->lstm) ah_attr_int(c, "linear_before_reset", t->lbr);
    if (t->clip > 0) ah_attr_float(c, "clip", t->clip);
    if (t->input_forget) ah_attr_int(c, "input_forget", 1);
    if (t->named_acts) {
        kiln__attr *a = ah_attr_new(c, "activations", KILN__ATTR_STRINGS);
        static const char *const lstm_acts[] = {"sigmoid", "Tanh", "Tanh"};
        static const char *const gru_acts[] = {"Sigmoid", "tanh"};
        const int na = t->lstm ? 3 : 2;
        a->n = na * (int)D;
        a->strings = calloc((size_t)a->n, sizeof *a->strings);
        for (int k = 0; k < a->n; k++)
            a->strings[k] = kiln__strdup(t->lstm ? lstm_acts[k % na] : gru_acts[k % na]);
    }
}

/* Runs the case with the plain algorithm at 1 and 2 threads and the split one
 * at 2 and 3 threads; all must match the reference. */
static void check(const rcase *t, unsigned seed) {
    ah_case c;
    build(&c, t, &seed);
    const char *plain = t->lstm ? "lstm_gemm" : "gru_gemm";
    const char *split = t->lstm ? "lstm_gemm_split" : "gru_gemm_split";
    ah_run_algo(&c, plain, KILN_PRECISION_FP32, 1, TOL);
    ah_run_algo(&c, plain, KILN_PRECISION_FP32, 2, TOL);
    if (t->H >= 2) {
        ah_run_algo(&c, split, KILN_PRECISION_FP32, 2, TOL);
        ah_run_algo(&c, split, KILN_PRECISION_FP32, 3, TOL);
    }
    ah_case_free(&c);
}

static void test_lstm_shapes(void **state) {
    static const int64_t hidden[] = {1, 7, 64};
    static const int64_t batch[] = {1, 3};
    unsigned seed = 11;
    for (int dir = FWD; dir <= BIDI; dir++)
        for (int layout = 0; layout < 2; layout++)
            for (int hi = 0; hi < 3; hi++)
                for (int bi = 0; bi < 2; bi++) {
                    rcase t = {.lstm = 1, .S = 5, .N = batch[bi], .I = 5, .H = hidden[hi],
                               .dir = (dir_kind)dir, .layout = layout, .bias = 1, .h0 = 1,
                               .c0 = 1, .peep = (hi + bi) % 2};
                    check(&t, seed++);
                }
}

static void test_gru_shapes(void **state) {
    static const int64_t hidden[] = {1, 7, 64};
    static const int64_t batch[] = {1, 3};
    unsigned seed = 101;
    for (int dir = FWD; dir <= BIDI; dir++)
        for (int layout = 0; layout < 2; layout++)
            for (int hi = 0; hi < 3; hi++)
                for (int lbr = 0; lbr < 2; lbr++) {
                    rcase t = {.lstm = 0, .S = 4, .N = batch[(hi + lbr) % 2], .I = 6,
                               .H = hidden[hi], .dir = (dir_kind)dir, .layout = layout,
                               .bias = 1, .h0 = 1, .lbr = lbr};
                    check(&t, seed++);
                }
}

/* Optional inputs absent, only some outputs, the defaults named explicitly. */
static void test_optional_inputs_and_outputs(void **state) {
    unsigned seed = 7;
    for (int lstm = 0; lstm < 2; lstm++)
        for (int v = 0; v < 4; v++) {
            rcase t = {.lstm = lstm, .S = 3, .N = 3, .I = 4, .H = 40, .dir = (dir_kind)(v % 3),
                       .layout = v / 2, .bias = v & 1, .h0 = v == 2, .c0 = v == 3,
                       .lbr = v == 1, .named_acts = v == 0};
            if (v == 0) t.n_out = 1;     /* Y only */
            if (v == 1) t.omit_y = 1;    /* Y_h (, Y_c) only */
            if (v == 2) t.n_out = 2;     /* Y, Y_h */
            check(&t, seed++);
        }
}

/* sequence_lens: all equal to S, and varied (0 .. S) with states carried and
 * zeros in Y past each row's length. */
static void test_sequence_lens(void **state) {
    unsigned seed = 31;
    for (int lstm = 0; lstm < 2; lstm++)
        for (int dir = FWD; dir <= BIDI; dir++)
            for (int lens = 1; lens <= 2; lens++) {
                rcase t = {.lstm = lstm, .S = 6, .N = 5, .I = 3, .H = 33, .dir = (dir_kind)dir,
                           .layout = dir == REV, .bias = 1, .h0 = 1, .c0 = 1, .peep = 1,
                           .lens = lens, .lbr = dir == FWD};
                check(&t, seed++);
            }
}

/* clip and input_forget. */
static void test_clip_input_forget(void **state) {
    unsigned seed = 57;
    for (int lstm = 0; lstm < 2; lstm++)
        for (int v = 0; v < 2; v++) {
            rcase t = {.lstm = lstm, .S = 4, .N = 2, .I = 5, .H = 17, .dir = v ? BIDI : FWD,
                       .bias = 1, .h0 = 1, .c0 = 1, .peep = 1, .clip = 0.7f,
                       .input_forget = lstm && v, .lbr = v};
            check(&t, seed++);
        }
}

/* W, R, B, P known only at run time (a model being trained): packed at the
 * start of every run. Each case runs twice on one plan, the weights changed
 * in between, both runs against the reference. */
static void test_run_time_weights(void **state) {
    unsigned seed = 91;
    for (int lstm = 0; lstm < 2; lstm++)
        for (int v = 0; v < 3; v++) {
            rcase t = {.lstm = lstm, .S = 4, .N = 3, .I = 6, .H = v == 2 ? 33 : 9,
                       .dir = v == 1 ? BIDI : FWD, .layout = v == 2, .bias = v != 2, .h0 = 1,
                       .c0 = 1, .peep = v == 1, .lbr = v == 1, .run_weights = 1};
            check(&t, seed);
            ah_case c;
            unsigned s2 = seed++;
            build(&c, &t, &s2);
            assert_int_equal(kiln__graph_finalize(c.g), KILN_OK);
            const char *algos[] = {lstm ? "lstm_gemm" : "gru_gemm", lstm ? "lstm_gemm_split" : "gru_gemm_split"};
            for (int a = 0; a < 2; a++) {
                kiln__runner ref, fast;
                assert_int_equal(kiln__runner_init(&ref, c.g, NULL, 2), KILN_OK);
                assert_int_equal(kiln__runner_init(&fast, c.g, NULL, 2), KILN_OK);
                ref.sel = (kiln__select_opts){.reference = 1};
                fast.sel = (kiln__select_opts){.precision = KILN_PRECISION_FP32, .force_algo = algos[a]};
                for (int round = 0; round < 2; round++) {
                    if (round) /* new weights: every input but X and the states scaled and negated */
                        for (int k = 1; k <= (lstm ? 7 : 3); k++)
                            if (c.in[k] && k != 4 && k != 5 && k != 6) {
                                float *d = kiln_tensor_data(c.in[k]);
                                for (int64_t i = 0; i < kiln__numel(c.in[k]->ndim, c.in[k]->dims); i++)
                                    d[i] *= -0.8f;
                            }
                    const kiln_tensor *ins[AH_MAX_IO];
                    int n = 0;
                    for (int k = 0; k < c.n_in; k++)
                        if (c.in[k]) ins[n++] = c.in[k];
                    assert_int_equal(kiln__runner_run(&ref, n, ins), KILN_OK);
                    assert_int_equal(kiln__runner_run(&fast, n, ins), KILN_OK);
                    assert_string_equal(kiln__runner_algo(&fast, c.node)->name, algos[a]);
                    for (int k = 0; k < c.n_out; k++) {
                        char what[96];
                        snprintf(what, sizeof what, "%s run %d output %d", algos[a], round + 1, k);
                        ah_compare(kiln__runner_output(&fast, k), kiln__runner_output(&ref, k), TOL, what);
                    }
                }
                kiln__runner_free(&ref);
                kiln__runner_free(&fast);
            }
            ah_case_free(&c);
        }
}

/* NaN and Inf in X reach the same outputs as in the reference. */
static void test_special_values(void **state) {
    unsigned seed = 77;
    const float vals[] = {NAN, INFINITY, -INFINITY};
    for (int lstm = 0; lstm < 2; lstm++)
        for (int k = 0; k < 3; k++) {
            rcase t = {.lstm = lstm, .S = 4, .N = 3, .I = 4, .H = 19, .dir = BIDI, .bias = 1,
                       .h0 = 1, .c0 = 1, .x_special = vals[k]};
            check(&t, seed++);
        }
}

/* Precision bf16: the projection GEMM in bf16 (when this CPU has it), the
 * recurrence in f32; within 1e-2 of the reference. */
static void test_bf16(void **state) {
    if (!kiln__gemm_compute_supported(KILN__GEMM_BF16)) skip();
    unsigned seed = 19;
    for (int lstm = 0; lstm < 2; lstm++)
        for (int dir = FWD; dir <= BIDI; dir += 2) {
            rcase t = {.lstm = lstm, .S = 7, .N = 3, .I = 37, .H = 48, .dir = (dir_kind)dir,
                       .layout = dir == BIDI, .bias = 1, .h0 = 1, .c0 = 1, .peep = 1, .lbr = 1};
            ah_case c;
            build(&c, &t, &seed);
            ah_run_algo(&c, lstm ? "lstm_gemm" : "gru_gemm", KILN_PRECISION_BF16, 2, 1e-2);
            ah_run_algo(&c, lstm ? "lstm_gemm_split" : "gru_gemm_split", KILN_PRECISION_BF16, 2,
                        1e-2);
            ah_case_free(&c);
        }
}

/* The planner picks one of these algorithms for f32 LSTM / GRU nodes. */
static void test_planner_picks(void **state) {
    unsigned seed = 5;
    for (int lstm = 0; lstm < 2; lstm++) {
        rcase t = {.lstm = lstm, .S = 8, .N = 1, .I = 16, .H = 64, .dir = BIDI, .bias = 1};
        ah_case c;
        build(&c, &t, &seed);
        const char *algo = ah_run(&c, KILN_PRECISION_FP32, 2, TOL);
        assert_true(strncmp(algo, lstm ? "lstm_gemm" : "gru_gemm", lstm ? 9 : 8) == 0);
        ah_case_free(&c);
    }
}

/* Non-default activations and f64 stay with the reference. */
static void test_refusals(void **state) {
    unsigned seed = 9;
    rcase t = {.lstm = 1, .S = 3, .N = 2, .I = 3, .H = 5, .dir = FWD, .bias = 1};
    ah_case c;
    build(&c, &t, &seed);
    kiln__attr *a = ah_attr_new(&c, "activations", KILN__ATTR_STRINGS);
    static const char *const acts[] = {"Sigmoid", "Relu", "Tanh"};
    a->n = 3;
    a->strings = calloc(3, sizeof *a->strings);
    for (int k = 0; k < 3; k++) a->strings[k] = kiln__strdup(acts[k]);
    assert_string_equal(ah_run(&c, KILN_PRECISION_FP32, 1, TOL), "reference");
    ah_case_free(&c);
}

/* ---- the gate kernels alone ------------------------------------------------ */

static double sig(double x) { return 1 / (1 + exp(-x)); }
static double clipd(int on, double c, double v) { return !on ? v : v < -c ? -c : v > c ? c : v; }

static float frand(unsigned *s, float lo, float hi) {
    *s = *s * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)((*s >> 8) / (double)(1 << 24));
}

/* Compares got[0..n) with want: normalized error over finite values and the
 * same NaN / Inf places. */
static void compare(const float *got, const double *want, int64_t n, double tol, const char *what) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(want[i]) || isinf(want[i])) {
            if (!(isnan(want[i]) ? isnan(got[i]) : got[i] == want[i]))
                fail_msg("%s: [%lld] = %g, want %g", what, (long long)i, got[i], want[i]);
            continue;
        }
        if (!isfinite(got[i])) fail_msg("%s: [%lld] = %g, want %g", what, (long long)i, got[i], want[i]);
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    if (!(err <= tol)) fail_msg("%s: normalized error %.3g", what, err);
}

static void fill(float *v, int64_t n, unsigned *s, float scale) {
    for (int64_t i = 0; i < n; i++) v[i] = frand(s, -scale, scale);
}

/* Puts specials (NaN, +-Inf, huge, tiny) at a few places of v. */
static void specials(float *v, int64_t n, int k) {
    const float sp[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 1e-7f, -3e-5f, 95.0f, -95.0f};
    for (int i = 0; i < 9 && i * 3 + k < n; i++) v[i * 3 + k] = sp[(i + k) % 9];
}

static void test_gate_kernels(void **state) {
    static const int64_t lens[] = {1, 7, 15, 16, 17, 33, 64};
    const kiln__gemm_isa isas[] = {KILN__GEMM_ISA_GENERIC, KILN__GEMM_ISA_AVX2, KILN__GEMM_ISA_AVX512};
    unsigned s = 3;
    for (int ii = 0; ii < 3; ii++) {
        const kiln__rnn_gates *k = kiln__rnn_gates_for(isas[ii]);
        if (!k) continue; /* this CPU lacks it */
        for (int li = 0; li < 7; li++)
            for (int v = 0; v < 4; v++) { /* v: 0 plain, 1 peep+clip, 2 input_forget, 3 specials */
                const int64_t n = lens[li];
                float proj[4 * 64], rec[4 * 64], peep[3 * 64], c[64], h[64], hp[64], rh[64];
                double wc[64], wh[64], wrh[64];
                fill(proj, 4 * n, &s, v == 3 ? 1.0f : 4.0f);
                fill(rec, 4 * n, &s, 4.0f);
                fill(peep, 3 * n, &s, 1.0f);
                fill(c, n, &s, 2.0f);
                fill(hp, n, &s, 1.0f);
                if (v == 3) specials(proj, 4 * n, li % 3);
                const int clip_on = v == 1;
                const float clip = 1.5f;
                /* LSTM */
                for (int64_t j = 0; j < n; j++) {
                    double cp = c[j];
                    double gi = (double)proj[j] + rec[j] + (v == 1 ? peep[j] * cp : 0);
                    double gf = (double)proj[2 * n + j] + rec[2 * n + j] + (v == 1 ? peep[2 * n + j] * cp : 0);
                    double i = sig(clipd(clip_on, clip, gi));
                    double f = v == 2 ? 1 - i : sig(clipd(clip_on, clip, gf));
                    double g = tanh(clipd(clip_on, clip, (double)proj[3 * n + j] + rec[3 * n + j]));
                    wc[j] = f * cp + i * g;
                    double go = (double)proj[n + j] + rec[n + j] + (v == 1 ? peep[n + j] * wc[j] : 0);
                    wh[j] = sig(clipd(clip_on, clip, go)) * tanh(wc[j]);
                }
                kiln__rnn_lstm_row la = {.n = n, .proj = proj, .rec = rec,
                                         .pi = v == 1 ? peep : NULL, .po = v == 1 ? peep + n : NULL,
                                         .pf = v == 1 ? peep + 2 * n : NULL, .has_clip = clip_on,
                                         .clip = clip, .input_forget = v == 2, .c = c, .h = h};
                k->lstm(&la);
                char what[64];
                snprintf(what, sizeof what, "%s lstm n=%lld v=%d c", k->name, (long long)n, v);
                compare(c, wc, n, 2e-6, what);
                what[strlen(what) - 1] = 'h';
                compare(h, wh, n, 2e-6, what);
                /* GRU, both linear_before_reset */
                for (int lbr = 0; lbr < 2; lbr++) {
                    float r3[3 * 64];
                    memcpy(r3, rec, sizeof(float) * 3 * n);
                    double z[64], r[64];
                    for (int64_t j = 0; j < n; j++) {
                        z[j] = sig(clipd(clip_on, clip, (double)proj[j] + r3[j]));
                        r[j] = sig(clipd(clip_on, clip, (double)proj[n + j] + r3[n + j]));
                        wrh[j] = r[j] * hp[j];
                        double pre = lbr ? proj[2 * n + j] + r[j] * r3[2 * n + j]
                                         : (double)proj[2 * n + j] + r3[2 * n + j];
                        double nv = tanh(clipd(clip_on, clip, pre));
                        wh[j] = (1 - z[j]) * nv + z[j] * hp[j];
                    }
                    kiln__rnn_gru_row ga = {.n = n, .proj = proj, .rec = r3, .h_prev = hp,
                                            .rh = lbr ? NULL : rh, .lbr = lbr, .has_clip = clip_on,
                                            .clip = clip, .h = h};
                    k->gru_zr(&ga);
                    k->gru_h(&ga);
                    snprintf(what, sizeof what, "%s gru lbr=%d n=%lld v=%d", k->name, lbr, (long long)n, v);
                    compare(h, wh, n, 2e-6, what);
                    if (!lbr) compare(rh, wrh, n, 2e-6, what);
                }
                /* the row functions alone, on proj (specials included for v 3) */
                for (int t = 0; t < 2; t++) {
                    float row[4 * 64];
                    memcpy(row, proj, sizeof(float) * 4 * n);
                    double want[4 * 64];
                    for (int64_t j = 0; j < 4 * n; j++) want[j] = t ? tanh(row[j]) : sig(row[j]);
                    (t ? k->tanh : k->sigmoid)(row, 4 * n);
                    snprintf(what, sizeof what, "%s %s n=%lld v=%d", k->name, t ? "tanh" : "sigmoid",
                             (long long)(4 * n), v);
                    compare(row, want, 4 * n, 2e-6, what);
                }
            }
    }
}

/* kiln.LSTMGrad on lstm_grad_gemm and kiln.GRUGrad on gru_grad_gemm (both
 * linear_before_reset), without the forward's Reserve, against the reference
 * (double, per batch row): directions, layouts, batch 1 to 4, hidden 1, 7, 9
 * and 40, with and without B, initial states and each incoming gradient,
 * sequence_lens (lengths 1, 0, 5, 4 of 5), some outputs only, 1 and 2
 * threads. */
static void test_rnn_grad(void **state) {
    (void)state;
    static const struct {
        int lstm, lbr;
        dir_kind dir;
        int layout;
        int64_t S, N, I, H;
        int full, dys, outs;
        int lens; /* sequence_lens (int32): (n * 5 + 1) % (S + 1) */
    } cases[] = {
        {1, 0, FWD, 0, 4, 3, 5, 7, 1, 7, 63},  {1, 0, REV, 0, 5, 1, 3, 1, 0, 1, 63},
        {1, 0, BIDI, 1, 3, 3, 4, 40, 1, 7, 63}, {1, 0, BIDI, 0, 6, 2, 2, 7, 0, 6, 63},
        {1, 0, FWD, 1, 2, 3, 6, 7, 1, 2, 7},   {1, 0, REV, 1, 4, 3, 5, 7, 1, 5, 48},
        {0, 0, FWD, 0, 4, 3, 5, 7, 1, 3, 31},  {0, 1, FWD, 0, 4, 3, 5, 7, 1, 3, 31},
        {0, 0, BIDI, 1, 3, 3, 4, 40, 1, 3, 31}, {0, 1, BIDI, 0, 5, 2, 3, 7, 0, 2, 31},
        {0, 1, REV, 1, 3, 1, 2, 1, 1, 1, 31},  {0, 0, REV, 0, 4, 3, 5, 7, 1, 3, 21},
        {1, 0, BIDI, 0, 5, 4, 3, 7, 1, 7, 63, 1}, {1, 0, REV, 1, 5, 4, 3, 9, 0, 3, 63, 1},
        {0, 1, BIDI, 1, 5, 4, 3, 7, 1, 3, 31, 1}, {0, 0, REV, 0, 5, 4, 3, 9, 1, 1, 31, 1},
    };
    unsigned seed = 77;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const int lstm = cases[k].lstm, n_states = lstm ? 2 : 1, n_out = 4 + n_states;
        const int64_t D = cases[k].dir == BIDI ? 2 : 1, S = cases[k].S, N = cases[k].N,
                      I = cases[k].I, H = cases[k].H, G = (lstm ? 4 : 3) * H;
        const int layout = cases[k].layout, full = cases[k].full, dys = cases[k].dys;
        const int64_t xd[3] = {layout ? N : S, layout ? S : N, I}, wd[3] = {D, G, I},
                      rd[3] = {D, G, H}, bd[2] = {D, 2 * G},
                      yd[4] = {layout ? N : S, layout ? S : D, layout ? D : N, H},
                      sd[3] = {layout ? N : D, layout ? D : N, H};
        ah_case c;
        ah_case_init(&c, lstm ? "LSTMGrad" : "GRUGrad", "kiln", 1, n_out);
        ah_input(&c, ah_random(KILN_DTYPE_F32, 3, xd, &seed, -1, 1), 0);
        ah_input(&c, ah_random(KILN_DTYPE_F32, 3, wd, &seed, -0.6f, 0.6f), 0);
        ah_input(&c, ah_random(KILN_DTYPE_F32, 3, rd, &seed, -0.6f, 0.6f), 0);
        ah_input(&c, dys & 1 ? ah_random(KILN_DTYPE_F32, 4, yd, &seed, -1, 1) : NULL, 0);
        for (int st = 0; st < n_states; st++) /* dY_h, dY_c */
            ah_input(&c, dys >> (1 + st) & 1 ? ah_random(KILN_DTYPE_F32, 3, sd, &seed, -1, 1) : NULL, 0);
        ah_input(&c, full ? ah_random(KILN_DTYPE_F32, 2, bd, &seed, -0.5f, 0.5f) : NULL, 0);
        for (int st = 0; st < n_states; st++) /* initial_h, initial_c */
            ah_input(&c, full ? ah_random(KILN_DTYPE_F32, 3, sd, &seed, -1, 1) : NULL, 0);
        if (cases[k].lens) {
            kiln_tensor *lens = NULL;
            assert_int_equal(kiln_tensor_create(KILN_DTYPE_I32, 1, &N, &lens), KILN_OK);
            for (int64_t n = 0; n < N; n++) ((int32_t *)kiln_tensor_data(lens))[n] = (int32_t)((n * 5 + 1) % (S + 1));
            ah_input(&c, lens, 0);
        }
        ah_attr_int(&c, "hidden_size", H);
        ah_attr_string(&c, "direction", dir_names[cases[k].dir]);
        ah_attr_int(&c, "layout", layout);
        if (!lstm) ah_attr_int(&c, "linear_before_reset", cases[k].lbr);
        for (int o = n_out - 1; o >= 0; o--) /* outputs: bits of outs */
            if (!(cases[k].outs >> o & 1)) omit_output(&c, o);
        printf(" %s%s %s, layout %d, S %lld N %lld I %lld H %lld%s%s, outputs %#x\n",
               lstm ? "LSTMGrad" : "GRUGrad", lstm ? "" : cases[k].lbr ? " (lbr 1)" : " (lbr 0)",
               dir_names[cases[k].dir], layout, (long long)S, (long long)N, (long long)I, (long long)H,
               full ? ", B and initial states" : "", cases[k].lens ? ", sequence_lens" : "", cases[k].outs);
        const char *algo = lstm ? "lstm_grad_gemm" : "gru_grad_gemm";
        ah_run_algo(&c, algo, KILN_PRECISION_FP32, 1, TOL);
        ah_run_algo(&c, algo, KILN_PRECISION_FP32, 2, TOL);
        ah_case_free(&c);
    }
}

/* kiln.LSTMTrain / GRUTrain on lstm_train_gemm / gru_train_gemm against the
 * reference, every output (the Reserve too); then kiln.LSTMGrad / GRUGrad on
 * lstm_grad_gemm / gru_grad_gemm given the reference's Reserve, against the
 * reference gradient (which computes the forward again): directions,
 * layouts, batch 1 and 3, hidden 1, 7 and 40, with and without B and
 * initial states, Y omitted, sequence_lens (all S, or varied from 0 to S),
 * GRU with both linear_before_reset, 1 and 2 threads. */
static void test_train_forms(void **state) {
    (void)state;
    unsigned seed = 505;
    int k = 0;
    for (int lstm = 1; lstm >= 0; lstm--)
        for (int dir = FWD; dir <= BIDI; dir++)
            for (int layout = 0; layout < 2; layout++)
                for (int hi = 0; hi < 3; hi++, k++) {
                    static const int64_t hidden[] = {1, 7, 40};
                    rcase t = {.lstm = lstm, .train = 1, .S = 4 + k % 3, .N = k % 2 ? 1 : 3, .I = 5,
                               .H = hidden[hi], .dir = (dir_kind)dir, .layout = layout,
                               .bias = k % 3 != 1, .h0 = k % 2, .c0 = k % 4 < 2,
                               .omit_y = k % 5 == 3, .lbr = k % 4 >= 2, .run_weights = 1,
                               .lens = k % 3 == 2 ? 2 : k % 7 == 1};
                    const char *fwd_op = lstm ? "LSTMTrain" : "GRUTrain", *grad_op = lstm ? "LSTMGrad" : "GRUGrad";
                    printf(" %s%s %s, layout %d, S %lld N %lld H %lld%s%s\n", fwd_op,
                           lstm ? "" : t.lbr ? " (lbr 1)" : " (lbr 0)", dir_names[dir], layout, (long long)t.S,
                           (long long)t.N, (long long)t.H, t.omit_y ? ", Y omitted" : "",
                           t.lens == 2 ? ", sequence_lens varied" : t.lens ? ", sequence_lens all S" : "");
                    ah_case fwd;
                    build(&fwd, &t, &seed);
                    const char *fwd_algo = lstm ? "lstm_train_gemm" : "gru_train_gemm";
                    ah_run_algo(&fwd, fwd_algo, KILN_PRECISION_FP32, 1, TOL);
                    ah_run_algo(&fwd, fwd_algo, KILN_PRECISION_FP32, 2, TOL);
                    kiln_tensor *out[AH_MAX_IO] = {0};
                    const char *algo;
                    ah_exec(&fwd, &(kiln__select_opts){.reference = 1}, 1, out, &algo);
                    const int64_t D = dir == BIDI ? 2 : 1, S = t.S, N = t.N, H = t.H;
                    const int64_t yd[4] = {layout ? N : S, layout ? S : D, layout ? D : N, H},
                                  sd[3] = {layout ? N : D, layout ? D : N, H};
                    const int n_states = lstm ? 2 : 1, n_out = 4 + n_states + lstm;
                    ah_case c;
                    ah_case_init(&c, grad_op, "kiln", 1, n_out);
                    /* LSTMGrad: X, W, R, dY, dY_h, dY_c, B, initial_h, initial_c, sequence_lens, P, Reserve
                     * GRUGrad:  X, W, R, dY, dY_h, B, initial_h, sequence_lens, Reserve */
                    static const int lstm_from[12] = {0, 1, 2, -1, -1, -1, 3, 5, 6, 4, -1, -1};
                    static const int gru_from[9] = {0, 1, 2, -1, -1, 3, 5, 4, -1};
                    const int n_in = lstm ? 12 : 9, *from_fwd = lstm ? lstm_from : gru_from;
                    for (int i = 0; i < n_in; i++) {
                        kiln_tensor *in = NULL;
                        if (from_fwd[i] >= 0 && fwd.in[from_fwd[i]])
                            assert_int_equal(kiln_tensor_copy(fwd.in[from_fwd[i]], fwd.in[from_fwd[i]]->dtype, &in),
                                             KILN_OK);
                        else if (i == 3)
                            in = ah_random(KILN_DTYPE_F32, 4, yd, &seed, -1, 1);
                        else if (i == 4 || (lstm && i == 5 && k % 2))
                            in = ah_random(KILN_DTYPE_F32, 3, sd, &seed, -1, 1);
                        else if (i == n_in - 1)
                            in = out[fwd.n_out - 1], out[fwd.n_out - 1] = NULL;
                        ah_input(&c, in, 0);
                    }
                    for (int o = 0; o < fwd.n_out; o++) kiln_tensor_free(out[o]);
                    ah_attr_int(&c, "hidden_size", H);
                    ah_attr_string(&c, "direction", dir_names[dir]);
                    ah_attr_int(&c, "layout", layout);
                    if (!lstm) ah_attr_int(&c, "linear_before_reset", t.lbr);
                    if (lstm && k == 0) /* dP asked for without peepholes: the reference's */
                        assert_string_equal(ah_run(&c, KILN_PRECISION_FP32, 1, TOL), "reference");
                    if (lstm) omit_output(&c, 6);
                    if (k % 4 == 1) omit_output(&c, 0);
                    const char *grad_algo = lstm ? "lstm_grad_gemm" : "gru_grad_gemm";
                    ah_run_algo(&c, grad_algo, KILN_PRECISION_FP32, 1, TOL);
                    ah_run_algo(&c, grad_algo, KILN_PRECISION_FP32, 2, TOL);
                    ah_case_free(&c);
                    ah_case_free(&fwd);
                }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_kernels),
        cmocka_unit_test(test_lstm_shapes),
        cmocka_unit_test(test_gru_shapes),
        cmocka_unit_test(test_optional_inputs_and_outputs),
        cmocka_unit_test(test_sequence_lens),
        cmocka_unit_test(test_clip_input_forget),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_run_time_weights),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_planner_picks),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rnn_grad),
        cmocka_unit_test(test_train_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
