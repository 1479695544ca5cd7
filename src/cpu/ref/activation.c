/* src/cpu/ref/activation.c: activation reference kernels (Relu family,
 * sigmoids, Gelu, Shrink, PRelu, Clip).
 *
 * Unary ones map X: (any shape) to Y: (same shape); PRelu broadcasts its
 * slope to X's shape. Float dtypes are computed in double and rounded once on
 * store (see elementwise.h). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "cpu/ref/elementwise.h"

#define FLOATS KILN__EW_FLOAT
#define NONE KILN_DTYPE_UNDEFINED

/* ---- attribute readers -------------------------------------------------------- */

static kiln_status prm_alpha(const kiln__kctx *c, kiln__ew_prm *p, double def) {
    p->alpha = kiln__attr_f(c->node, "alpha", (float)def);
    return KILN_OK;
}
static kiln_status prm_leaky(const kiln__kctx *c, kiln__ew_prm *p) { return prm_alpha(c, p, 0.01); }
static kiln_status prm_alpha1(const kiln__kctx *c, kiln__ew_prm *p) { return prm_alpha(c, p, 1.0); }

static kiln_status prm_selu(const kiln__kctx *c, kiln__ew_prm *p) {
    p->alpha = kiln__attr_f(c->node, "alpha", 1.67326319217681884765625f);
    p->gamma = kiln__attr_f(c->node, "gamma", 1.05070102214813232421875f);
    return KILN_OK;
}

static kiln_status prm_celu(const kiln__kctx *c, kiln__ew_prm *p) {
    p->alpha = kiln__attr_f(c->node, "alpha", 1.0f);
    if (p->alpha == 0) return kiln__err(KILN_E_INVAL, "attribute 'alpha' must be nonzero, got 0");
    return KILN_OK;
}

static kiln_status prm_hard_sigmoid(const kiln__kctx *c, kiln__ew_prm *p) {
    p->alpha = kiln__attr_f(c->node, "alpha", 0.2f);
    p->beta = kiln__attr_f(c->node, "beta", 0.5f);
    return KILN_OK;
}

static kiln_status prm_shrink(const kiln__kctx *c, kiln__ew_prm *p) {
    p->alpha = kiln__attr_f(c->node, "lambd", 0.5f); /* lambd */
    p->beta = kiln__attr_f(c->node, "bias", 0.0f);
    return KILN_OK;
}

#define GELU_TANH 1

static kiln_status prm_gelu(const kiln__kctx *c, kiln__ew_prm *p) {
    const char *a = kiln__attr_s(c->node, "approximate", "none");
    if (strcmp(a, "none") == 0)
        p->mode = 0;
    else if (strcmp(a, "tanh") == 0)
        p->mode = GELU_TANH;
    else
        return kiln__err(KILN_E_INVAL, "attribute 'approximate' is \"%s\", expected \"none\" or \"tanh\"", a);
    return KILN_OK;
}

/* ---- functions ------------------------------------------------------------------ */

static double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* log(1 + exp(x)) without overflow. */
static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

static double f_relu(double x, const kiln__ew_prm *p) { return x > 0 ? x : x == x ? 0.0 : x; }
static int64_t i_relu(int64_t x, const kiln__ew_prm *p) { return x > 0 ? x : 0; }
static double f_leaky(double x, const kiln__ew_prm *p) { return x < 0 ? p->alpha * x : x; }
static double f_elu(double x, const kiln__ew_prm *p) { return x < 0 ? p->alpha * expm1(x) : x; }
static double f_selu(double x, const kiln__ew_prm *p) {
    return p->gamma * (x > 0 ? x : p->alpha * expm1(x));
}
/* max(0, x) + min(0, alpha * (exp(x / alpha) - 1)), which is this for any alpha. */
static double f_celu(double x, const kiln__ew_prm *p) {
    return x > 0 ? x : p->alpha * expm1(x / p->alpha);
}
static double f_sigmoid(double x, const kiln__ew_prm *p) { return sigmoid(x); }
/* min(1, max(0, v)), NaN passing through (fmin/fmax would drop it). */
static double clamp01(double v) { return v > 1 ? 1.0 : v < 0 ? 0.0 : v; }
static double f_hard_sigmoid(double x, const kiln__ew_prm *p) {
    return clamp01(p->alpha * x + p->beta);
}
static double f_hard_swish(double x, const kiln__ew_prm *p) { return x * clamp01(x / 6.0 + 0.5); }
static double f_softplus(double x, const kiln__ew_prm *p) { return softplus(x); }
static double f_softsign(double x, const kiln__ew_prm *p) { return x / (1.0 + fabs(x)); }
static double f_swish(double x, const kiln__ew_prm *p) { return x * sigmoid(p->alpha * x); }
static double f_mish(double x, const kiln__ew_prm *p) { return x * tanh(softplus(x)); }
static double f_gelu(double x, const kiln__ew_prm *p) {
    if (p->mode == GELU_TANH)
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1.0 + erf(x / M_SQRT2));
}
static double f_thresholded(double x, const kiln__ew_prm *p) { return x > p->alpha ? x : 0.0; }
/* Integers go through double (lambd and bias are floats), as the ONNX reference. */
static double f_shrink(double x, const kiln__ew_prm *p) {
    return x < -p->alpha ? x + p->beta : x > p->alpha ? x - p->beta : 0.0;
}

KILN__EW_UNARY_OP(Relu, KILN__EW_SIGNED, NONE, NULL, f_relu, i_relu, NULL)
KILN__EW_UNARY_OP(LeakyRelu, FLOATS, NONE, prm_leaky, f_leaky, NULL, NULL)
KILN__EW_UNARY_OP(Elu, FLOATS, NONE, prm_alpha1, f_elu, NULL, NULL)
KILN__EW_UNARY_OP(Selu, FLOATS, NONE, prm_selu, f_selu, NULL, NULL)
KILN__EW_UNARY_OP(Celu, FLOATS, NONE, prm_celu, f_celu, NULL, NULL)
KILN__EW_UNARY_OP(Sigmoid, FLOATS, NONE, NULL, f_sigmoid, NULL, NULL)
KILN__EW_UNARY_OP(HardSigmoid, FLOATS, NONE, prm_hard_sigmoid, f_hard_sigmoid, NULL, NULL)
KILN__EW_UNARY_OP(HardSwish, FLOATS, NONE, NULL, f_hard_swish, NULL, NULL)
KILN__EW_UNARY_OP(Softplus, FLOATS, NONE, NULL, f_softplus, NULL, NULL)
KILN__EW_UNARY_OP(Softsign, FLOATS, NONE, NULL, f_softsign, NULL, NULL)
KILN__EW_UNARY_OP(Swish, FLOATS, NONE, prm_alpha1, f_swish, NULL, NULL)
KILN__EW_UNARY_OP(Mish, FLOATS, NONE, NULL, f_mish, NULL, NULL)
KILN__EW_UNARY_OP(Gelu, FLOATS, NONE, prm_gelu, f_gelu, NULL, NULL)
KILN__EW_UNARY_OP(ThresholdedRelu, FLOATS, NONE, prm_alpha1, f_thresholded, NULL, NULL)
KILN__EW_UNARY_OP(Shrink, KILN__EW_NUM, NONE, prm_shrink, f_shrink, NULL, NULL)

/* ---- PRelu ---------------------------------------------------------------------- */

/* The slope, viewed with a shape that broadcasts to x's. Besides numpy's
 * rules (opset >= 7) this accepts, like the ONNX reference, a 1-D slope whose
 * length matches exactly one axis of x (the per-channel form of old models). */
static kiln_status prelu_slope_view(const kiln_tensor *x, const kiln_tensor *slope,
                                    kiln_tensor *view) {
    char sx[128], ss[128];
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    *view = *slope;
    if (kiln__broadcast(x->ndim, x->dims, slope->ndim, slope->dims, &nd, dims) == KILN_OK) {
        if (nd == x->ndim && memcmp(dims, x->dims, (size_t)nd * sizeof *dims) == 0)
            return KILN_OK;
    } else if (slope->ndim == 1) {
        int axis = -1, hits = 0;
        for (int i = 0; i < x->ndim; i++)
            if (x->dims[i] == slope->dims[0]) axis = i, hits++;
        if (hits == 1) {
            view->ndim = x->ndim;
            for (int i = 0; i < x->ndim; i++) view->dims[i] = i == axis ? x->dims[i] : 1;
            kiln__contiguous_strides(view->ndim, view->dims, view->strides);
            kiln__err_clear();
            return KILN_OK;
        }
    }
    return kiln__err(KILN_E_SHAPE, "input 'slope' of shape %s does not broadcast to X's shape %s",
                     kiln__shape_str(slope->ndim, slope->dims, ss, sizeof ss),
                     kiln__shape_str(x->ndim, x->dims, sx, sizeof sx));
}

static double f_prelu(double x, double s, const kiln__ew_prm *p) { return x < 0 ? s * x : x; }
static int64_t i_prelu(int64_t x, int64_t s, const kiln__ew_prm *p) {
    return x < 0 ? (int64_t)((uint64_t)s * (uint64_t)x) : x;
}
static uint64_t u_prelu(uint64_t x, uint64_t s, const kiln__ew_prm *p) { return x; }

// X: (any shape), slope: broadcastable to X (unidirectional); Y: X's shape
kiln_status kiln__infer_PRelu(kiln__kctx *c) {
    kiln_tensor *x, *slope, view;
    KILN__TRY(kiln__ew_input(c, 0, "X", &x));
    KILN__TRY(kiln__ew_input(c, 1, "slope", &slope));
    KILN__TRY(kiln__ew_check(x, "input 'X'", KILN__EW_NUM));
    if (slope->dtype != x->dtype)
        return kiln__err(KILN_E_TYPE, "input 'slope' has dtype %s, expected %s like 'X'",
                         kiln_dtype_name(slope->dtype), kiln_dtype_name(x->dtype));
    KILN__TRY(prelu_slope_view(x, slope, &view));
    return kiln__out_shape(c, 0, x->dtype, x->ndim, x->dims);
}

kiln_status kiln__ref_PRelu(kiln__kctx *c) {
    static const kiln__ew_binary op = {f_prelu, i_prelu, u_prelu, NULL};
    kiln__ew_prm p = {0};
    kiln_tensor view;
    KILN__TRY(prelu_slope_view(c->in[0], c->in[1], &view));
    return kiln__ew_binary_run(c, &op, &p, c->in[0], &view, c->out[0]);
}

/* ---- Clip ------------------------------------------------------------------------ */

/* NaN passes through; min > max gives max (numpy's clip). */
static double f_clip(double x, const kiln__ew_prm *p) {
    if (x < p->lo.f) x = p->lo.f;
    return x > p->hi.f ? p->hi.f : x;
}
static int64_t i_clip(int64_t x, const kiln__ew_prm *p) {
    if (x < p->lo.i) x = p->lo.i;
    return x > p->hi.i ? p->hi.i : x;
}
static uint64_t u_clip(uint64_t x, const kiln__ew_prm *p) {
    if (x < p->lo.u) x = p->lo.u;
    return x > p->hi.u ? p->hi.u : x;
}

/* Reads the bound input i (opset >= 11) into *v; absent inputs leave *v. */
static kiln_status clip_bound(const kiln__kctx *c, int i, const char *what, kiln__ew_val *v) {
    const kiln_tensor *x = c->in[0], *b = kiln__in(c, i);
    if (!b) return KILN_OK;
    if (b->dtype != x->dtype)
        return kiln__err(KILN_E_TYPE, "input '%s' has dtype %s, expected %s like 'input'", what,
                         kiln_dtype_name(b->dtype), kiln_dtype_name(x->dtype));
    if (kiln__n(b) != 1)
        return kiln__err(KILN_E_SHAPE, "input '%s' must be a scalar, got %lld elements", what,
                         (long long)kiln__n(b));
    if (b->data) *v = kiln__ew_load(b->dtype, b->data, 0);
    return KILN_OK;
}

static kiln_status prm_clip(const kiln__kctx *c, kiln__ew_prm *p) {
    switch (kiln__ew_class_of(c->in[0]->dtype)) {
    case KILN__EW_F: p->lo.f = -INFINITY, p->hi.f = INFINITY; break;
    case KILN__EW_I: p->lo.i = INT64_MIN, p->hi.i = INT64_MAX; break;
    default: p->lo.u = 0, p->hi.u = UINT64_MAX; break;
    }
    if (c->opset < 11) {
        p->lo.f = kiln__attr_f(c->node, "min", -FLT_MAX);
        p->hi.f = kiln__attr_f(c->node, "max", FLT_MAX);
        return KILN_OK;
    }
    KILN__TRY(clip_bound(c, 1, "min", &p->lo));
    return clip_bound(c, 2, "max", &p->hi);
}

// input: (any shape); min, max: scalars (opset >= 11) or attributes; output: input's shape
kiln_status kiln__infer_Clip(kiln__kctx *c) {
    kiln_tensor *x;
    kiln__ew_prm p;
    KILN__TRY(kiln__ew_input(c, 0, "input", &x));
    KILN__TRY(kiln__ew_check(x, "input 'input'", c->opset < 11 ? FLOATS : KILN__EW_NUM));
    KILN__TRY(prm_clip(c, &p));
    return kiln__out_shape(c, 0, x->dtype, x->ndim, x->dims);
}

kiln_status kiln__ref_Clip(kiln__kctx *c) {
    static const kiln__ew_unary op = {f_clip, i_clip, u_clip};
    return kiln__ew_unary_ref(c, &op, prm_clip);
}
