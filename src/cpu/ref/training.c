/* src/cpu/ref/training.c: optimizer ops of ai.onnx.preview.training.
 *
 * Each op updates n tensors at once. Inputs: R (scalar learning rate),
 * T (scalar int64 update count), then n X, n G and n of each state;
 * outputs: n new X, then n of each new state. All per-tensor groups have
 * the shape of their X.
 *
 *   Adagrad   state H              outputs X_new, H_new
 *   Adam      states V, H          outputs X_new, V_new, H_new
 *   Momentum  state V              outputs X_new, V_new
 *
 * One driver (optim_run) walks the elements; the update rule is per op and
 * runs in double.
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

#define OPTIM_MAX_STATES 2

/* Scalars and attributes an update rule needs. */
typedef struct optim_args {
    double r;  /* learning rate (Adagrad: decayed) */
    int64_t t; /* update count */
    double alpha, beta, epsilon, norm, norm_post;
    int nesterov;
} optim_args;

/* Updates one element: x, g and the states in s[] -> *x_new and s_new[]. */
typedef void (*optim_rule)(const optim_args *a, double x, double g, const double *s,
                           double *x_new, double *s_new);

/* Reads the op's attributes into a (r and t are already set). */
typedef kiln_status (*optim_setup)(const kiln__node *node, optim_args *a);

typedef struct optim_op {
    const char *name;
    int n_states;
    optim_setup setup;
    optim_rule rule;
} optim_op;

/* Adagrad: g' = norm*x + g; h' = h + g'^2; x' = x - r * g' / (sqrt(h') + eps),
 * with r = R / (1 + T * decay_factor). */
static void rule_adagrad(const optim_args *a, double x, double g, const double *s, double *x_new,
                         double *s_new) {
    double gr = a->norm * x + g;
    double h = s[0] + gr * gr;
    *x_new = x - a->r * gr / (sqrt(h) + a->epsilon);
    s_new[0] = h;
}

/* Adam: g' = norm*x + g; v' = alpha*v + (1-alpha)*g'; h' = beta*h + (1-beta)*g'^2;
 * r' = T > 0 ? R * sqrt(1 - beta^T) / (1 - alpha^T) : R;
 * x' = (1 - norm_post) * (x - r' * v' / (sqrt(h') + eps)). */
static void rule_adam(const optim_args *a, double x, double g, const double *s, double *x_new,
                      double *s_new) {
    double gr = a->norm * x + g;
    double v = a->alpha * s[0] + (1 - a->alpha) * gr;
    double h = a->beta * s[1] + (1 - a->beta) * gr * gr;
    double r = a->t > 0 ? a->r * sqrt(1 - pow(a->beta, (double)a->t)) /
                              (1 - pow(a->alpha, (double)a->t))
                        : a->r;
    *x_new = (1 - a->norm_post) * (x - r * (v / (sqrt(h) + a->epsilon)));
    s_new[0] = v;
    s_new[1] = h;
}

/* Momentum: g' = norm*x + g; v' = alpha*v + (T > 0 ? beta : 1)*g';
 * standard: x' = x - R*v'; nesterov: x' = x - R*(g' + alpha*v'). */
static void rule_momentum(const optim_args *a, double x, double g, const double *s,
                          double *x_new, double *s_new) {
    double gr = a->norm * x + g;
    double v = a->alpha * s[0] + (a->t > 0 ? a->beta : 1.0) * gr;
    *x_new = a->nesterov ? x - a->r * (gr + a->alpha * v) : x - a->r * v;
    s_new[0] = v;
}

static kiln_status setup_adagrad(const kiln__node *node, optim_args *a) {
    a->r /= 1 + (double)a->t * kiln__attr_f(node, "decay_factor", 0.0f);
    return KILN_OK;
}

static kiln_status setup_adam(const kiln__node *node, optim_args *a) {
    a->alpha = kiln__attr_f(node, "alpha", 0.9f);
    a->beta = kiln__attr_f(node, "beta", 0.999f);
    a->norm_post = kiln__attr_f(node, "norm_coefficient_post", 0.0f);
    return KILN_OK;
}

static kiln_status setup_momentum(const kiln__node *node, optim_args *a) {
    static const char *const required[] = {"alpha", "beta", "norm_coefficient", "mode"};
    for (int k = 0; k < 4; k++)
        if (!kiln__attr_find(node, required[k]))
            return kiln__err(KILN_E_INVAL, "attribute '%s' is required", required[k]);
    a->alpha = kiln__attr_f(node, "alpha", 0.0f);
    a->beta = kiln__attr_f(node, "beta", 0.0f);
    const char *mode = kiln__attr_s(node, "mode", "");
    if (strcmp(mode, "nesterov") == 0) a->nesterov = 1;
    else if (strcmp(mode, "standard") != 0)
        return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected standard or nesterov",
                         mode);
    return KILN_OK;
}

static const optim_op optim_adagrad = {"Adagrad", 1, setup_adagrad, rule_adagrad};
static const optim_op optim_adam = {"Adam", 2, setup_adam, rule_adam};
static const optim_op optim_momentum = {"Momentum", 1, setup_momentum, rule_momentum};

/* Number of tensors n updated by a node of op with n_in inputs; validates
 * R, T and the per-tensor shapes and dtypes. */
static kiln_status optim_check(const kiln__kctx *c, const optim_op *op, int *n_out) {
    int group = 2 + op->n_states; /* X, G, states */
    int n = (c->n_in - 2) / group;
    if (c->n_in < 2 + group || (c->n_in - 2) % group != 0)
        return kiln__err(KILN_E_INVAL, "%s takes R, T and %d groups of n tensors, got %d inputs",
                         op->name, group, c->n_in);
    if (c->n_out != n * (1 + op->n_states))
        return kiln__err(KILN_E_INVAL, "%s with %d tensors has %d outputs, expected %d",
                         op->name, n, c->n_out, n * (1 + op->n_states));
    const kiln_tensor *r = c->in[0], *t = c->in[1];
    if (!r || !t) return kiln__err(KILN_E_INVAL, "inputs 'R' and 'T' are required");
    KILN__TRY(kiln__check_dtype(r, "R", KILN_DTYPE_F32, KILN_DTYPE_F64, 0));
    KILN__TRY(kiln__check_dtype(t, "T", KILN_DTYPE_I64, 0));
    if (kiln__n(r) != 1 || kiln__n(t) != 1)
        return kiln__err(KILN_E_SHAPE, "inputs 'R' and 'T' must be scalars");
    for (int i = 0; i < n; i++) {
        const kiln_tensor *x = c->in[2 + i];
        if (!x) return kiln__err(KILN_E_INVAL, "input X[%d] is missing", i);
        KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_F32, KILN_DTYPE_F64, 0));
        for (int k = 1; k < group; k++) {
            const kiln_tensor *o = c->in[2 + k * n + i];
            if (!o || o->dtype != x->dtype || !kiln__same_shape(o, x)) {
                char a[128], b[128];
                return kiln__err(KILN_E_SHAPE, "input %d of %s is %s %s, expected %s %s like X[%d]",
                                 2 + k * n + i, op->name,
                                 o ? kiln_dtype_name(o->dtype) : "missing",
                                 o ? kiln__shape_str(o->ndim, o->dims, a, sizeof a) : "",
                                 kiln_dtype_name(x->dtype),
                                 kiln__shape_str(x->ndim, x->dims, b, sizeof b), i);
            }
        }
    }
    *n_out = n;
    return KILN_OK;
}

static kiln_status optim_infer(kiln__kctx *c, const optim_op *op) {
    int n;
    KILN__TRY(optim_check(c, op, &n));
    for (int k = 0; k <= op->n_states; k++)
        for (int i = 0; i < n; i++) KILN__TRY(kiln__out_like(c, k * n + i, c->in[2 + i]));
    return KILN_OK;
}

static kiln_status optim_run(kiln__kctx *c, const optim_op *op) {
    int n;
    KILN__TRY(optim_check(c, op, &n));
    optim_args a = {
        .r = kiln__ld_f(c->in[0]->dtype, c->in[0]->data, 0),
        .t = kiln__ld_i(KILN_DTYPE_I64, c->in[1]->data, 0),
        .epsilon = kiln__attr_f(c->node, "epsilon", 1e-6f),
        .norm = kiln__attr_f(c->node, "norm_coefficient", 0.0f),
    };
    KILN__TRY(op->setup(c->node, &a));
    for (int i = 0; i < n; i++) {
        const kiln_tensor *x = c->in[2 + i], *g = c->in[2 + n + i];
        kiln_tensor *x_out = c->out[i];
        int64_t m = kiln__n(x);
        for (int64_t e = 0; e < m; e++) {
            double s[OPTIM_MAX_STATES], s_new[OPTIM_MAX_STATES], x_new;
            for (int k = 0; k < op->n_states; k++) {
                const kiln_tensor *st = c->in[2 + (2 + k) * n + i];
                s[k] = kiln__ld_f(st->dtype, st->data, e);
            }
            op->rule(&a, kiln__ld_f(x->dtype, x->data, e), kiln__ld_f(g->dtype, g->data, e), s,
                     &x_new, s_new);
            if (x_out) kiln__st_f(x_out->dtype, x_out->data, e, x_new);
            for (int k = 0; k < op->n_states; k++) {
                kiln_tensor *st_out = c->out[(1 + k) * n + i];
                if (st_out) kiln__st_f(st_out->dtype, st_out->data, e, s_new[k]);
            }
        }
    }
    return KILN_OK;
}

// R: () f32/f64, T: () i64, X_i/G_i/H_i: any shape; X_new_i, H_new_i like X_i
kiln_status kiln__infer_Adagrad(kiln__kctx *c) { return optim_infer(c, &optim_adagrad); }
kiln_status kiln__ref_Adagrad(kiln__kctx *c) { return optim_run(c, &optim_adagrad); }
// R, T; X_i/G_i/V_i/H_i: any shape; X_new_i, V_new_i, H_new_i like X_i
kiln_status kiln__infer_Adam(kiln__kctx *c) { return optim_infer(c, &optim_adam); }
kiln_status kiln__ref_Adam(kiln__kctx *c) { return optim_run(c, &optim_adam); }
// R, T; X_i/G_i/V_i: any shape; X_new_i, V_new_i like X_i
kiln_status kiln__infer_Momentum(kiln__kctx *c) { return optim_infer(c, &optim_momentum); }
kiln_status kiln__ref_Momentum(kiln__kctx *c) { return optim_run(c, &optim_momentum); }
