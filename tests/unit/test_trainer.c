/* tests/unit/test_trainer.c: the trainer API (kiln/train.h) on a graph built
 * in memory: an MLP with BatchNormalization (and Dropout) learns three
 * separable clusters (loss falls, nearly every sample right), the exported
 * model computes what the trainer's evaluation computes, the same seed trains
 * the same, a checkpoint resumes bit for bit, and bad input is refused with a
 * message; mixed precision (bf16, fp16) trains like fp32 and fp16's loss
 * scaler skips overflowing steps, halving and doubling its scale as it
 * should. The IDX reader is checked on files written here (plain and gzip). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "graph/ir.h"
#include "graph_builder.h"
#include "kiln/kiln.h"

#define N 24
#define F 4
#define H 8
#define C 3

static kiln_tensor *randn(int ndim, const int64_t *dims, unsigned *seed, double scale) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, ndim, dims, &t), KILN_OK);
    float *d = kiln_tensor_data(t);
    for (int64_t i = 0; i < kiln_tensor_numel(t); i++) {
        *seed = *seed * 1103515245u + 12345u;
        d[i] = (float)(((double)((*seed >> 8) % 20001) / 10000.0 - 1.0) * scale);
    }
    return t;
}

/* Gives node n outputs out[1..k-1] named after its output 0 ("bn" -> "bn.1"). */
static void extra_outputs(kiln_graph *g, kiln__node *n, int k) {
    n->out = realloc(n->out, (size_t)k * sizeof *n->out);
    for (int i = 1; i < k; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%d", g->values[n->out[0]].name, i);
        n->out[i] = kiln__graph_value(g, name);
    }
    n->n_out = k;
}

/* Constant node writing t (taken) to out. */
static void constant(kiln_graph *g, const char *out, kiln_tensor *t) {
    kiln__node *n = node(g, "Constant", out, NULL);
    n->attr = calloc(1, sizeof *n->attr);
    n->attr[n->n_attr++] = (kiln__attr){.name = kiln__strdup("value"), .type = KILN__ATTR_TENSOR, .t = t};
}

/* x (N,4) -> MatMul w1 (4,8) + b1 -> BatchNormalization -> Relu [-> Dropout(0.25) or
 * Sin] -> Gemm w2 (3,8)^T + b2 [-> LogSoftmax]. TRAINING_FORM is DROPOUT as
 * PyTorch exports it in training mode: BatchNormalization with training_mode 1
 * and its running-statistic outputs, the Dropout's ratio and training_mode
 * (true) from Constant nodes and its mask output; MASK_READ adds a graph
 * output reading that mask. */
enum { PLAIN, DROPOUT, SIN, LOG_SOFTMAX, TRAINING_FORM, MASK_READ };
static kiln_graph *mlp(int variant) {
    unsigned seed = 7;
    kiln_graph *g = new_graph(NULL);
    int x = kiln__graph_add_value(g, "x");
    g->values[x].kind = KILN__VAL_INPUT;
    g->values[x].dtype = KILN_DTYPE_F32;
    g->values[x].ndim = 2;
    g->values[x].has_type = 1;
    g->values[x].dims[0].v = -1;
    g->values[x].dims[0].sym = kiln__strdup("N");
    g->values[x].dims[1].v = F;
    g->inputs = malloc(sizeof *g->inputs);
    g->inputs[g->n_inputs++] = x;
    init(g, "w1", randn(2, (int64_t[]){F, H}, &seed, 0.7));
    init(g, "b1", randn(1, (int64_t[]){H}, &seed, 0.1));
    init(g, "gamma", vec(KILN_DTYPE_F32, H, (double[]){1, 1, 1, 1, 1, 1, 1, 1}));
    init(g, "beta", vec(KILN_DTYPE_F32, H, (double[]){0, 0, 0, 0, 0, 0, 0, 0}));
    init(g, "mean", vec(KILN_DTYPE_F32, H, (double[]){0, 0, 0, 0, 0, 0, 0, 0}));
    init(g, "var", vec(KILN_DTYPE_F32, H, (double[]){1, 1, 1, 1, 1, 1, 1, 1}));
    init(g, "w2", randn(2, (int64_t[]){C, H}, &seed, 0.5));
    init(g, "b2", vec(KILN_DTYPE_F32, C, (double[]){0, 0, 0}));
    node(g, "MatMul", "h", "x", "w1", NULL);
    node(g, "Add", "hb", "h", "b1", NULL);
    kiln__node *bn = node(g, "BatchNormalization", "bn", "hb", "gamma", "beta", "mean", "var", NULL);
    int dropout = variant == DROPOUT || variant >= TRAINING_FORM;
    if (variant >= TRAINING_FORM) {
        int_attr(bn, "training_mode", 1);
        extra_outputs(g, bn, 3);
    }
    node(g, "Relu", dropout || variant == SIN ? "r0" : "r", "bn", NULL);
    if (variant == DROPOUT) {
        init(g, "ratio", vec(KILN_DTYPE_F32, 1, (double[]){0.25}));
        node(g, "Dropout", "r", "r0", "ratio", NULL);
    } else if (dropout) {
        constant(g, "ratio", vec(KILN_DTYPE_F32, 1, (double[]){0.25}));
        constant(g, "training", vec(KILN_DTYPE_BOOL, 1, (double[]){1}));
        extra_outputs(g, node(g, "Dropout", "r", "r0", "ratio", "training", NULL), 2);
    }
    if (variant == SIN) node(g, "Sin", "r", "r0", NULL);
    int_attr(node(g, "Gemm", variant == LOG_SOFTMAX ? "z" : "logits", "r", "w2", "b2", NULL),
             "transB", 1);
    if (variant == LOG_SOFTMAX) int_attr(node(g, "LogSoftmax", "logits", "z", NULL), "axis", 1);
    add_output(g, "logits");
    if (variant == MASK_READ) add_output(g, "r.1");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    return g;
}

/* Three clusters in 4-D, 8 samples each. */
static void data(kiln_tensor **x, kiln_tensor **labels) {
    unsigned seed = 11;
    *x = randn(2, (int64_t[]){N, F}, &seed, 0.6);
    int64_t n = N;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 1, &n, labels), KILN_OK);
    float *xd = kiln_tensor_data(*x);
    int64_t *l = kiln_tensor_data(*labels);
    for (int i = 0; i < N; i++) {
        l[i] = i % C;
        xd[i * F + l[i]] += 1.0f;
    }
}

/* Mean cross-entropy of logits (N,C) against labels. */
static double cross_entropy(const kiln_tensor *logits, const kiln_tensor *labels) {
    const float *z = kiln_tensor_data(logits);
    const int64_t *l = kiln_tensor_data(labels);
    double sum = 0;
    for (int i = 0; i < N; i++) {
        double m = z[i * C], s = 0;
        for (int k = 1; k < C; k++) m = fmax(m, z[i * C + k]);
        for (int k = 0; k < C; k++) s += exp(z[i * C + k] - m);
        sum += m + log(s) - z[i * C + l[i]];
    }
    return sum / N;
}

static void test_learns_and_exports(void **state) {
    (void)state;
    kiln_tensor *x, *labels;
    data(&x, &labels);
    for (int opt = 0; opt < 4; opt++) { /* SGD, Adam, AdamW; SGD with dropout */
        kiln_graph *g = mlp(opt == 3 ? DROPOUT : PLAIN);
        kiln_train_options o = {.optimizer = (kiln_optimizer)(opt % 3), .momentum = 0.9,
                                .threads = 2, .seed = 5};
        double lr = opt % 3 ? 0.01 : 0.05, first = 0, loss = 0, eval = 0;
        int64_t right = 0;
        kiln_trainer *t;
        if (kiln_trainer_create(g, &o, &t) != KILN_OK) fail_msg("%s", kiln_last_error());
        assert_int_equal(kiln_trainer_num_params(t), F * H + H + H + H + C * H + C); /* not ratio */
        for (int step = 0; step < 20; step++) {
            assert_int_equal(kiln_trainer_step(t, x, labels, lr, &loss, &right), KILN_OK);
            if (step == 0) first = loss;
        }
        assert_int_equal(kiln_trainer_evaluate(t, x, labels, &eval, &right), KILN_OK);
        printf("  %s%s: loss %.4f -> %.4f, eval loss %.4f, %lld/%d right\n",
               (const char *[]){"sgd", "adam", "adamw"}[opt % 3], opt == 3 ? " + dropout" : "",
               first, loss, eval, (long long)right, N);
        assert_true(loss < 0.6 * first);
        assert_true(right >= N - 2);

        /* the export computes the evaluation's logits */
        kiln_graph *e;
        kiln_session *s;
        const kiln_tensor *logits;
        assert_int_equal(kiln_trainer_export(t, &e), KILN_OK);
        assert_int_equal(kiln_session_create(e, &(kiln_session_options){.threads = 1}, &s), KILN_OK);
        const char *name = "x";
        const kiln_tensor *in = x;
        assert_int_equal(kiln_session_run(s, 1, &name, &in), KILN_OK);
        assert_int_equal(kiln_session_output(s, 0, &logits), KILN_OK);
        double ce = cross_entropy(logits, labels);
        if (fabs(ce - eval) > 1e-4 * (1 + eval)) fail_msg("export loss %.6f, evaluate %.6f", ce, eval);
        /* running statistics moved off their start */
        const kiln_tensor *mean = NULL;
        for (int i = 0; i < kiln_graph_num_initializers(e); i++) {
            const char *n;
            const kiln_tensor *it = kiln_graph_initializer(e, i, &n);
            if (!strcmp(n, "mean")) mean = it;
        }
        assert_non_null(mean);
        assert_true(fabs(((const float *)kiln_tensor_data(mean))[0]) > 1e-3);
        kiln_session_free(s);
        kiln_graph_free(e);
        kiln_trainer_free(t);
        kiln_graph_free(g);
    }
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
}

/* The same seed gives the same training (dropout masks included), another
 * seed another. */
static void test_reproducible(void **state) {
    (void)state;
    kiln_graph *g = mlp(DROPOUT);
    kiln_tensor *x, *labels;
    data(&x, &labels);
    double loss[3];
    for (int run = 0; run < 3; run++) {
        kiln_train_options o = {.momentum = 0.9, .threads = 2, .seed = run == 2 ? 6 : 5};
        kiln_trainer *t;
        assert_int_equal(kiln_trainer_create(g, &o, &t), KILN_OK);
        for (int step = 0; step < 5; step++)
            assert_int_equal(kiln_trainer_step(t, x, labels, 0.05, &loss[run], NULL), KILN_OK);
        kiln_trainer_free(t);
    }
    assert_true(loss[0] == loss[1]);
    assert_true(loss[0] != loss[2]);
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
    kiln_graph_free(g);
}

/* A model in PyTorch's training-mode export form trains exactly as the same
 * model in inference form and exports in inference form; a read mask is
 * refused, naming the node. */
static void test_training_form(void **state) {
    (void)state;
    kiln_tensor *x, *labels;
    data(&x, &labels);
    double loss[2];
    kiln_graph *e = NULL;
    for (int k = 0; k < 2; k++) {
        kiln_graph *g = mlp(k ? TRAINING_FORM : DROPOUT);
        kiln_train_options o = {.momentum = 0.9, .threads = 2, .seed = 5};
        kiln_trainer *t;
        if (kiln_trainer_create(g, &o, &t) != KILN_OK) fail_msg("%s", kiln_last_error());
        assert_int_equal(kiln_trainer_num_params(t), F * H + H + H + H + C * H + C);
        for (int step = 0; step < 5; step++)
            assert_int_equal(kiln_trainer_step(t, x, labels, 0.05, &loss[k], NULL), KILN_OK);
        if (k) assert_int_equal(kiln_trainer_export(t, &e), KILN_OK);
        kiln_trainer_free(t);
        kiln_graph_free(g);
    }
    assert_true(loss[0] == loss[1]);
    for (int i = 0; i < e->n_nodes; i++) { /* inference form */
        const kiln__node *n = &e->nodes[i];
        assert_string_not_equal(n->op_type, "Constant");
        if (!strcmp(n->op_type, "BatchNormalization")) {
            assert_int_equal(n->n_out, 1);
            assert_int_equal(kiln__attr_i(n, "training_mode", 0), 0);
        }
        if (!strcmp(n->op_type, "Dropout")) assert_true(n->n_in == 2 && n->n_out == 1);
    }
    kiln_graph_free(e);

    kiln_graph *g = mlp(MASK_READ);
    kiln_trainer *t;
    assert_int_equal(kiln_trainer_create(g, NULL, &t), KILN_E_UNSUPPORTED);
    assert_non_null(strstr(kiln_last_error(), "(Dropout): its output 1 ('r.1') is read"));
    kiln_graph_free(g);
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
}

/* First initializer value of t's export (a parameter's first element). */
static float first_param(const kiln_trainer *t) {
    kiln_graph *e;
    assert_int_equal(kiln_trainer_export(t, &e), KILN_OK);
    const char *n;
    float v = ((const float *)kiln_tensor_data(kiln_graph_initializer(e, 0, &n)))[0];
    kiln_graph_free(e);
    return v;
}

/* Trainer a takes 3 steps, is saved to path, takes 3 more; trainer b (same
 * options) loads path and takes the same 3: both end equal, bit for bit, loss
 * scaler included. Returns a (the caller frees it). */
static kiln_trainer *resume_equal(const kiln_graph *g, const kiln_train_options *o,
                                  const kiln_tensor *x, const kiln_tensor *labels,
                                  const char *path) {
    kiln_trainer *a, *b;
    double la = 0, lb = 0;
    assert_int_equal(kiln_trainer_create(g, o, &a), KILN_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(kiln_trainer_step(a, x, labels, 0.01, NULL, NULL), KILN_OK);
    const char *k[] = {"note"}, *v[] = {"three steps"};
    assert_int_equal(kiln_trainer_save(a, path, 1, k, v), KILN_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(kiln_trainer_step(a, x, labels, 0.01, &la, NULL), KILN_OK);
    assert_int_equal(kiln_trainer_create(g, o, &b), KILN_OK);
    assert_int_equal(kiln_trainer_load(b, path), KILN_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(kiln_trainer_step(b, x, labels, 0.01, &lb, NULL), KILN_OK);
    assert_true(la == lb);
    assert_true(first_param(a) == first_param(b));
    kiln_train_stats sa, sb;
    kiln_trainer_stats(a, &sa);
    kiln_trainer_stats(b, &sb);
    assert_memory_equal(&sa, &sb, sizeof sa);
    kiln_trainer_free(b);
    return a;
}

/* save after 3 steps, 3 more = load into a new trainer, 3 more (bit for bit),
 * at fp32 and at fp16 with a loss scale that overflows at first (so the
 * scaler's state matters); a checkpoint of another optimizer or a damaged
 * file is refused, t unchanged. */
static void test_checkpoint(void **state) {
    (void)state;
    kiln_graph *g = mlp(DROPOUT);
    kiln_tensor *x, *labels;
    data(&x, &labels);
    char path[64], bad[64];
    snprintf(path, sizeof path, "/tmp/kiln_test_ckpt_%d.safetensors", (int)getpid());
    snprintf(bad, sizeof bad, "/tmp/kiln_test_ckpt_%d.bad", (int)getpid());
    kiln_train_options o16 = {.optimizer = KILN_OPTIMIZER_ADAM, .threads = 2, .seed = 9,
                              .precision = KILN_TRAIN_FP16, .loss_scale = 0x1p18,
                              .loss_scale_interval = 2};
    kiln_trainer *a16 = resume_equal(g, &o16, x, labels, path), *b, *sgd;
    kiln_train_stats st;
    kiln_trainer_stats(a16, &st);
    assert_true(st.skipped_steps > 0 && st.updates > 0);
    kiln_trainer_free(a16);
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_ADAM, .threads = 2, .seed = 9};
    kiln_trainer *a = resume_equal(g, &o, x, labels, path);
    assert_int_equal(kiln_trainer_create(g, &o, &b), KILN_OK);
    char buf[32];
    assert_int_equal(kiln_checkpoint_meta(path, "note", buf, sizeof buf), KILN_OK);
    assert_string_equal(buf, "three steps");
    assert_int_equal(kiln_checkpoint_meta(path, "kiln.step", buf, sizeof buf), KILN_OK);
    assert_string_equal(buf, "3");
    assert_int_equal(kiln_checkpoint_meta(path, "nope", buf, sizeof buf), KILN_E_NOTFOUND);

    kiln_train_options os = {.optimizer = KILN_OPTIMIZER_SGD, .momentum = 0.9};
    assert_int_equal(kiln_trainer_create(g, &os, &sgd), KILN_OK);
    float before = first_param(sgd);
    assert_int_equal(kiln_trainer_load(sgd, path), KILN_E_INVAL);
    assert_non_null(strstr(kiln_last_error(), "written by optimizer adam"));
    assert_true(first_param(sgd) == before);
    FILE *f = fopen(path, "rb"), *w = fopen(bad, "wb"); /* a checkpoint cut short */
    char chunk[200];
    size_t got = fread(chunk, 1, sizeof chunk, f);
    fwrite(chunk, 1, got, w);
    fclose(f);
    fclose(w);
    assert_int_equal(kiln_trainer_load(b, bad) < 0, 1);
    assert_non_null(strstr(kiln_last_error(), bad));
    kiln_trainer_free(a);
    kiln_trainer_free(b);
    kiln_trainer_free(sgd);
    remove(path);
    remove(bad);
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
    kiln_graph_free(g);
}

/* ---- mixed precision ---------------------------------------------------------- */

/* kiln.RoundToPrecision on values whose rounding is known: ties to even,
 * fp16's overflow to inf and underflow to 0 and subnormals, NaN. */
static void test_round_to_precision(void **state) {
    (void)state;
    static const float in[] = {1.0f, 1 + 0x1p-11f, 1 + 0x1p-8f, 1 + 3 * 0x1p-9f, 65504.0f,
                               65520.0f, -70000.0f, 1e-8f, 3e-8f, NAN, 1e30f};
    enum { K = sizeof in / sizeof *in };
    static const float f16[K] = {1.0f, 1.0f, 1 + 0x1p-8f, 1 + 3 * 0x1p-9f, 65504.0f, INFINITY,
                                 -INFINITY, 0.0f, 0x1p-24f, NAN, INFINITY};
    static const float bf16[K] = {1.0f, 1.0f, 1.0f, 1 + 0x1p-7f, 65536.0f, 65536.0f, -70144.0f,
                                  0 /* 7, 8 and 10: see below */, 0, NAN, 0};
    for (int to = 0; to < 2; to++) {
        kiln_graph *g = new_graph(NULL);
        g->opsets = realloc(g->opsets, 2 * sizeof *g->opsets);
        g->opsets[1] = (kiln__opset){.domain = kiln__strdup("kiln"), .version = 1};
        g->n_opsets = 2;
        int x = kiln__graph_add_value(g, "x");
        g->values[x].kind = KILN__VAL_INPUT;
        g->inputs = malloc(sizeof *g->inputs);
        g->inputs[g->n_inputs++] = x;
        int k = kiln__graph_add_node(g, "y", "RoundToPrecision", "kiln", 1, 1);
        g->nodes[k].in[0] = x;
        g->nodes[k].out[0] = kiln__graph_value(g, "y");
        int_attr(&g->nodes[k], "to", to ? KILN_DTYPE_BF16 : KILN_DTYPE_F16);
        add_output(g, "y");
        assert_int_equal(kiln__graph_finalize(g), KILN_OK);
        kiln_tensor *xt;
        int64_t n = K;
        assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 1, &n, &xt), KILN_OK);
        memcpy(kiln_tensor_data(xt), in, sizeof in);
        kiln_session *s;
        const kiln_tensor *y;
        const char *name = "x";
        assert_int_equal(kiln_session_create(g, &(kiln_session_options){.threads = 2}, &s), KILN_OK);
        assert_int_equal(kiln_session_run(s, 1, &name, (const kiln_tensor **)&xt), KILN_OK);
        assert_int_equal(kiln_session_output(s, 0, &y), KILN_OK);
        const float *got = kiln_tensor_data(y);
        for (int i = 0; i < K; i++) {
            float want = to ? bf16[i] : f16[i];
            if (to && (i == 7 || i == 8 || i == 10)) /* bf16 keeps f32's range: 8 significant bits */
                want = kiln_bf16_to_f32(kiln_f32_to_bf16(in[i]));
            if (isnan(want) ? !isnan(got[i]) : got[i] != want)
                fail_msg("%s(%.9g) = %.9g, expected %.9g", to ? "bf16" : "fp16", in[i], got[i], want);
        }
        if (to) assert_true(got[7] != 1e-8f && fabsf(got[7] - 1e-8f) < 1e-10f && isfinite(got[10]));
        kiln_session_free(s);
        kiln_tensor_free(xt);
        kiln_graph_free(g);
    }
}

/* The largest |difference| between the parameters of two exports of an
 * mlp(), and (if l2) the Euclidean norm of the differences. */
static double export_diff(const kiln_graph *ea, const kiln_graph *eb, double *l2) {
    double d = 0, sq = 0;
    for (int i = 0; i < kiln_graph_num_initializers(ea); i++) {
        const char *n;
        const kiln_tensor *ta = kiln_graph_initializer(ea, i, &n), *tb = kiln_graph_initializer(eb, i, &n);
        if (kiln_tensor_dtype(ta) != KILN_DTYPE_F32 || !strcmp(n, "mean") || !strcmp(n, "var"))
            continue; /* parameters only, not mlp()'s running statistics */
        const float *pa = kiln_tensor_data(ta), *pb = kiln_tensor_data(tb);
        for (int64_t k = 0; k < kiln_tensor_numel(ta); k++) {
            double e = (double)pa[k] - pb[k];
            d = fmax(d, fabs(e));
            sq += e * e;
        }
    }
    if (l2) *l2 = sqrt(sq);
    return d;
}

/* Largest |difference| between the parameters of two trainers. */
static double param_distance(const kiln_trainer *a, const kiln_trainer *b) {
    kiln_graph *ea, *eb;
    assert_int_equal(kiln_trainer_export(a, &ea), KILN_OK);
    assert_int_equal(kiln_trainer_export(b, &eb), KILN_OK);
    double d = export_diff(ea, eb, NULL);
    kiln_graph_free(ea);
    kiln_graph_free(eb);
    return d;
}

/* With clip_norm, one plain SGD update moves the parameters by exactly
 * lr * clip_norm, the gradient norm (reported) being larger; without it, by
 * lr times that norm. */
static void test_clip_norm(void **state) {
    (void)state;
    kiln_graph *g = mlp(PLAIN);
    kiln_tensor *x, *labels;
    data(&x, &labels);
    for (int clip = 0; clip < 2; clip++) {
        kiln_train_options o = {.threads = 2, .clip_norm = clip ? 1e-3 : 0};
        kiln_trainer *t;
        kiln_graph *before, *after;
        kiln_train_stats st;
        assert_int_equal(kiln_trainer_create(g, &o, &t), KILN_OK);
        assert_int_equal(kiln_trainer_export(t, &before), KILN_OK);
        assert_int_equal(kiln_trainer_step(t, x, labels, 0.5, NULL, NULL), KILN_OK);
        assert_int_equal(kiln_trainer_export(t, &after), KILN_OK);
        kiln_trainer_stats(t, &st);
        double moved;
        export_diff(before, after, &moved);
        double want = 0.5 * (clip ? 1e-3 : st.grad_norm);
        printf("  clip %g: gradient norm %.5f, parameters moved %.6f (expected %.6f)\n", o.clip_norm,
               st.grad_norm, moved, want);
        assert_true(st.grad_norm > 1e-2);
        if (fabs(moved - want) > 1e-3 * want) fail_msg("moved %.8f, expected %.8f", moved, want);
        kiln_graph_free(before);
        kiln_graph_free(after);
        kiln_trainer_free(t);
    }
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
    kiln_graph_free(g);
}

/* bf16 and fp16 learn as fp32 does, to weights near fp32's but not equal to
 * them (the products did round). */
static void test_mixed_precision_learns(void **state) {
    (void)state;
    kiln_graph *g = mlp(PLAIN);
    kiln_tensor *x, *labels;
    data(&x, &labels);
    kiln_trainer *t[3];
    double first[3], loss[3];
    int64_t right = 0;
    for (int p = 0; p < 3; p++) {
        kiln_train_options o = {.momentum = 0.9, .threads = 2, .precision = (kiln_train_precision)p};
        assert_int_equal(kiln_trainer_create(g, &o, &t[p]), KILN_OK);
        for (int step = 0; step < 20; step++) {
            assert_int_equal(kiln_trainer_step(t[p], x, labels, 0.05, &loss[p], &right), KILN_OK);
            if (step == 0) first[p] = loss[p];
        }
        kiln_train_stats st;
        kiln_trainer_stats(t[p], &st);
        printf("  %s: loss %.5f -> %.5f, %lld/%d right, %lld updates, %lld skipped, scale %g\n",
               (const char *[]){"fp32", "bf16", "fp16"}[p], first[p], loss[p], (long long)right, N,
               (long long)st.updates, (long long)st.skipped_steps, st.loss_scale);
        assert_true(loss[p] < 0.6 * first[p]);
        assert_true(right >= N - 2);
        assert_true(st.loss_scale == (p == 2 ? 65536.0 : 1.0)); /* nothing overflowed here */
        assert_int_equal(st.updates, 20);
    }
    for (int p = 1; p < 3; p++) {
        double d = param_distance(t[0], t[p]);
        printf("  %s weights differ from fp32's by at most %.2g\n", p == 1 ? "bf16" : "fp16", d);
        assert_true(d > 0 && d < (p == 1 ? 0.1 : 0.01));
    }
    for (int p = 0; p < 3; p++) kiln_trainer_free(t[p]);
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
    kiln_graph_free(g);
}

/* fp16 with a loss scale so large that the scaled gradients overflow: those
 * steps are skipped (parameters unchanged) and halve the scale until the
 * gradients fit; then every step updates and every `interval` clean steps in
 * a row double the scale (and may overflow again). A batch that overflows in
 * the forward pass (inputs beyond fp16's range) is skipped too. */
static void test_loss_scaling(void **state) {
    (void)state;
    kiln_graph *g = mlp(PLAIN);
    kiln_tensor *x, *labels;
    data(&x, &labels);
    const int64_t interval = 3;
    kiln_train_options o = {.momentum = 0.9, .threads = 2, .precision = KILN_TRAIN_FP16,
                            .loss_scale = 0x1p40, .loss_scale_interval = interval};
    kiln_trainer *t;
    assert_int_equal(kiln_trainer_create(g, &o, &t), KILN_OK);
    kiln_train_stats before, after;
    kiln_trainer_stats(t, &before);
    assert_true(before.loss_scale == 0x1p40);
    double scale = 0x1p40, first = 0, loss = 0;
    int64_t clean = 0, skips = 0, doublings = 0;
    for (int step = 0; step < 40; step++) {
        float p0 = first_param(t);
        assert_int_equal(kiln_trainer_step(t, x, labels, 0.05, &loss, NULL), KILN_OK);
        if (step == 0) first = loss;
        kiln_trainer_stats(t, &after);
        if (after.skipped_steps == before.skipped_steps + 1) { /* skipped */
            assert_int_equal(after.updates, before.updates);
            assert_true(first_param(t) == p0);
            scale /= 2, clean = 0, skips++;
        } else {
            assert_int_equal(after.skipped_steps, before.skipped_steps);
            assert_int_equal(after.updates, before.updates + 1);
            if (++clean == interval) scale *= 2, clean = 0, doublings++;
        }
        if (after.loss_scale != scale)
            fail_msg("step %d: loss scale %g, expected %g", step, after.loss_scale, scale);
        before = after;
    }
    printf("  fp16 from scale 2^40: %lld skipped, %lld doublings, scale now 2^%g, loss %.4f -> %.4f\n",
           (long long)skips, (long long)doublings, log2(scale), first, loss);
    assert_true(skips >= 20); /* 2^40 down to below 2^20 at least */
    assert_true(doublings >= 2);
    assert_true(loss < 0.8 * first);

    kiln_tensor *huge; /* fp16 overflows in the forward pass: the loss is not finite */
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, kiln_tensor_dims(x), &huge), KILN_OK);
    for (int64_t i = 0; i < kiln_tensor_numel(x); i++)
        ((float *)kiln_tensor_data(huge))[i] = ((const float *)kiln_tensor_data(x))[i] * 1e6f;
    float p0 = first_param(t);
    assert_int_equal(kiln_trainer_step(t, huge, labels, 0.05, &loss, NULL), KILN_OK);
    kiln_trainer_stats(t, &after);
    assert_true(!isfinite(loss));
    assert_int_equal(after.skipped_steps, before.skipped_steps + 1);
    assert_true(after.loss_scale == before.loss_scale / 2);
    assert_true(first_param(t) == p0);
    kiln_tensor_free(huge);
    kiln_trainer_free(t);
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
    kiln_graph_free(g);
}

/* The model's output on x (through its export: what evaluate computes). */
static kiln_tensor *outputs(const kiln_trainer *t, const kiln_tensor *x) {
    kiln_graph *e;
    kiln_session *s;
    const kiln_tensor *o;
    kiln_tensor *copy;
    const char *name = "x";
    assert_int_equal(kiln_trainer_export(t, &e), KILN_OK);
    assert_int_equal(kiln_session_create(e, &(kiln_session_options){.threads = 1}, &s), KILN_OK);
    assert_int_equal(kiln_session_run(s, 1, &name, &x), KILN_OK);
    assert_int_equal(kiln_session_output(s, 0, &o), KILN_OK);
    assert_int_equal(kiln_tensor_copy(o, KILN_DTYPE_F32, &copy), KILN_OK);
    kiln_session_free(s);
    kiln_graph_free(e);
    return copy;
}

/* Loss `kind` of outputs z (N,C) by its definition (losses.h), in double. */
static double loss_by_hand(kiln_loss kind, double smoothing, const kiln_tensor *z,
                           const kiln_tensor *labels) {
    const float *v = kiln_tensor_data(z);
    const int64_t *l = kiln_tensor_data(labels);
    double sum = 0;
    for (int i = 0; i < N; i++) {
        const float *r = v + i * C;
        double m = r[0], se = 0, lp_sum = 0;
        for (int k = 1; k < C; k++) m = fmax(m, r[k]);
        for (int k = 0; k < C; k++) se += exp(r[k] - m);
        for (int k = 0; k < C; k++) {
            double lp = r[k] - m - log(se), t = k == l[i];
            lp_sum += lp;
            if (kind == KILN_LOSS_MSE) sum += (r[k] - t) * (r[k] - t) / C;
            if (kind == KILN_LOSS_BCE_WITH_LOGITS) sum += (log1p(exp(-fabs(r[k]))) + fmax(r[k], 0) - r[k] * t) / C;
            if (kind == KILN_LOSS_CROSS_ENTROPY && k == l[i]) sum += -(1 - smoothing) * lp;
            if (kind == KILN_LOSS_NLL && k == l[i]) sum += -r[k];
        }
        if (kind == KILN_LOSS_CROSS_ENTROPY) sum += -smoothing * lp_sum / C;
    }
    return sum / N;
}

/* Every loss: the trainer's loss of the untrained model is the definition's,
 * and training with it learns the clusters. */
static void test_losses(void **state) {
    (void)state;
    kiln_tensor *x, *labels;
    data(&x, &labels);
    const struct { kiln_loss kind; double smoothing; } cases[] = {
        {KILN_LOSS_CROSS_ENTROPY, 0}, {KILN_LOSS_CROSS_ENTROPY, 0.2}, {KILN_LOSS_NLL, 0},
        {KILN_LOSS_MSE, 0}, {KILN_LOSS_BCE_WITH_LOGITS, 0}};
    for (int c = 0; c < 5; c++) {
        kiln_graph *g = mlp(cases[c].kind == KILN_LOSS_NLL ? LOG_SOFTMAX : PLAIN);
        kiln_train_options o = {.optimizer = KILN_OPTIMIZER_ADAM, .threads = 2, .loss = cases[c].kind,
                                .label_smoothing = cases[c].smoothing};
        kiln_trainer *t;
        if (kiln_trainer_create(g, &o, &t) != KILN_OK) fail_msg("%s", kiln_last_error());
        double eval, loss = 0, first = 0;
        int64_t right = 0;
        assert_int_equal(kiln_trainer_evaluate(t, x, labels, &eval, NULL), KILN_OK);
        kiln_tensor *z = outputs(t, x);
        double want = loss_by_hand(cases[c].kind, cases[c].smoothing, z, labels);
        kiln_tensor_free(z);
        if (fabs(eval - want) > 1e-5 * (1 + want))
            fail_msg("%s: loss %.7f, by definition %.7f", kiln_loss_name(cases[c].kind), eval, want);
        for (int step = 0; step < 30; step++) {
            assert_int_equal(kiln_trainer_step(t, x, labels, 0.02, &loss, &right), KILN_OK);
            if (step == 0) first = loss;
        }
        printf("  %s%s: loss %.4f -> %.4f, %lld/%d right\n", kiln_loss_name(cases[c].kind),
               cases[c].smoothing > 0 ? " (label smoothing 0.2)" : "", first, loss, (long long)right, N);
        assert_true(loss < 0.7 * first);
        assert_true(right >= N - 2);
        kiln_trainer_free(t);
        kiln_graph_free(g);
    }
    kiln_graph *g = mlp(PLAIN);
    kiln_trainer *t;
    kiln_train_options o = {.loss = KILN_LOSS_MSE, .label_smoothing = 0.1};
    assert_int_equal(kiln_trainer_create(g, &o, &t), KILN_E_INVAL);
    assert_non_null(strstr(kiln_last_error(), "label smoothing applies to the cross-entropy loss"));
    kiln_graph_free(g);
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
}

static void test_bad_input(void **state) {
    (void)state;
    kiln_graph *g = mlp(PLAIN);
    kiln_tensor *x, *labels, *wrong;
    data(&x, &labels);
    kiln_trainer *t;
    assert_int_equal(kiln_trainer_create(g, NULL, &t), KILN_OK);
    int64_t n = N;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I32, 1, &n, &wrong), KILN_OK);
    assert_int_equal(kiln_trainer_step(t, x, wrong, 0.1, NULL, NULL), KILN_E_SHAPE);
    assert_non_null(strstr(kiln_last_error(), "labels are int32"));
    kiln_tensor_free(wrong);
    kiln_trainer_free(t);
    kiln_graph_free(g);

    g = mlp(SIN); /* no gradient rule on the way to the loss */
    assert_int_equal(kiln_trainer_create(g, NULL, &t), KILN_E_UNSUPPORTED);
    assert_non_null(strstr(kiln_last_error(), "'r' (Sin) has no gradient rule"));
    kiln_graph_free(g);
    kiln_tensor_free(x);
    kiln_tensor_free(labels);
}

/* Writes an IDX file of (2,3) u8 (gzip when gz) and reads it back; truncated
 * and bad-magic files fail naming the file. */
static void test_idx(void **state) {
    (void)state;
    static const unsigned char file[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    char path[4][64];
    for (int k = 0; k < 4; k++) snprintf(path[k], sizeof path[k], "/tmp/kiln_test_idx_%d_%d", (int)getpid(), k);
    FILE *f = fopen(path[0], "wb");
    fwrite(file, 1, sizeof file, f);
    fclose(f);
    gzFile z = gzopen(path[1], "wb");
    gzwrite(z, file, sizeof file);
    gzclose(z);
    f = fopen(path[2], "wb");
    fwrite(file, 1, sizeof file - 2, f); /* truncated */
    fclose(f);
    f = fopen(path[3], "wb");
    fwrite("\x01\x02\x08\x02", 1, 4, f); /* bad magic */
    fclose(f);
    for (int k = 0; k < 2; k++) {
        kiln_tensor *t;
        assert_int_equal(kiln_idx_load(path[k], &t), KILN_OK);
        assert_int_equal(kiln_tensor_dtype(t), KILN_DTYPE_U8);
        assert_int_equal(kiln_tensor_ndim(t), 2);
        assert_int_equal(kiln_tensor_dims(t)[1], 3);
        assert_memory_equal(kiln_tensor_data(t), file + 12, 6);
        kiln_tensor_free(t);
    }
    kiln_tensor *t = NULL;
    assert_int_equal(kiln_idx_load(path[2], &t), KILN_E_FORMAT);
    assert_null(t);
    assert_non_null(strstr(kiln_last_error(), "truncated"));
    assert_int_equal(kiln_idx_load(path[3], &t), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), "not an IDX file"));
    assert_int_equal(kiln_idx_load("/nonexistent/kiln.idx", &t), KILN_E_IO);
    /* a header claiming 1 GB of int32 over 4 bytes of data: truncated, and
     * refused without taking that memory first (the fuzzer found one such) */
    static const unsigned char huge[] = {0, 0, 0x0c, 2, 0, 1, 0, 0, 0, 0, 0x10, 0, 1, 2, 3, 4};
    f = fopen(path[2], "wb");
    fwrite(huge, 1, sizeof huge, f);
    fclose(f);
    assert_int_equal(kiln_idx_load(path[2], &t), KILN_E_FORMAT);
    if (!strstr(kiln_last_error(), "truncated")) fail_msg("%s", kiln_last_error());
    for (int k = 0; k < 4; k++) remove(path[k]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_and_exports),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_training_form),
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_round_to_precision),
        cmocka_unit_test(test_mixed_precision_learns),
        cmocka_unit_test(test_loss_scaling),
        cmocka_unit_test(test_clip_norm),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_idx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
