/* src/cpu/kernels/eltwise.c: fast f32 elementwise algorithms (algo.h) and
 * the helpers the fast row-kernel families share (eltwise.h).
 *
 * Unary: Relu, LeakyRelu, Sigmoid, Tanh, Gelu (erf and tanh forms),
 * HardSigmoid, HardSwish, Clip, Exp, Erf, Sqrt, Neg, Abs.
 *   X: (any shape) f32, Y: X's shape.
 * Binary: Add, Sub, Mul, Div, Max, Min (two inputs), Pow with a constant
 * scalar exponent 1, 2 or 3.
 *   A, B: f32, Y: their broadcast shape. One operand must have Y's shape;
 *   the other may too, or be a scalar, or broadcast as one contiguous block
 *   of Y's axes: Y read as (outer, mid, inner), the operand as (mid) -- the
 *   row form (..., N) op (N) has inner = 1, the channel form (N,C,H,W) op
 *   (C,1,1) has mid = C, inner = H*W. Other broadcasts are left to the
 *   reference kernel (prepare says UNSUPPORTED).
 *
 * Where: C bool, X, Y f32, Z f32 their broadcast shape; C of Z's shape, X and
 *   Y each of Z's shape or a scalar (other broadcasts: the reference kernel).
 *
 * Every algorithm is KILN_OPF_PARALLEL: thread ith takes whole
 * KILN__ELTW_GRAIN-element units of Y. The math is the ISA table's
 * (eltwise.h): f32 throughout, within a few ulp of the reference's double.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"

/* ---- shared by the fast row-kernel families ----------------------------------- */

const kiln__eltw_kernels *kiln__eltw_forced;

const kiln__eltw_kernels *kiln__eltw_best(void) {
    if (kiln__eltw_forced) return kiln__eltw_forced;
#if defined(__x86_64__) || defined(__i386__)
    if (kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX512)) return &kiln__eltw_avx512;
    if (kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX2)) return &kiln__eltw_avx2;
#endif
    return &kiln__eltw_generic;
}

kiln_status kiln__eltw_state_new(kiln__kctx *c, size_t bytes) {
    kiln__eltw_state *s = calloc(1, bytes);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory for the state of %s", c->node->op_type);
    s->k = kiln__eltw_best();
    c->kstate = s;
    return KILN_OK;
}

double kiln__eltw_cost(const kiln__kctx *c, double flops, double bytes) {
    const kiln__eltw_state *s = c->kstate;
    double eff = s && s->k != &kiln__eltw_generic ? 0.25 : 1.0 / 32;
    return kiln__cost_seconds(c, flops, eff, bytes);
}

/* ---- unary -------------------------------------------------------------------- */

typedef struct unary_spec {
    const char *op_type;
    kiln__eltw_op op;
    double flops; /* per element, for profiles and cost */
} unary_spec;

static const unary_spec unary_specs[] = {
    {"Relu", KILN__ELTW_RELU, 1},          {"LeakyRelu", KILN__ELTW_LEAKY_RELU, 2},
    {"Sigmoid", KILN__ELTW_SIGMOID, 20},   {"Tanh", KILN__ELTW_TANH, 25},
    {"Gelu", KILN__ELTW_GELU_ERF, 45},     {"HardSigmoid", KILN__ELTW_HARD_SIGMOID, 4},
    {"HardSwish", KILN__ELTW_HARD_SWISH, 5}, {"Clip", KILN__ELTW_CLIP, 2},
    {"Exp", KILN__ELTW_EXP, 15},           {"Erf", KILN__ELTW_ERF, 40},
    {"Sqrt", KILN__ELTW_SQRT, 4},          {"Neg", KILN__ELTW_NEG, 1},
    {"Abs", KILN__ELTW_ABS, 1},
};

typedef struct unary_state {
    kiln__eltw_state base;
    kiln__eltw_unary u;
    double flops;
} unary_state;

static const unary_spec *unary_find(const char *op_type) {
    for (size_t i = 0; i < sizeof unary_specs / sizeof unary_specs[0]; i++)
        if (strcmp(unary_specs[i].op_type, op_type) == 0) return &unary_specs[i];
    return NULL;
}

/* Clip (opset >= 11): input i, when present, must be an f32 scalar. */
static int clip_bound_ok(const kiln__kctx *c, int i) {
    const kiln_tensor *t = kiln__in(c, i);
    return !t || (t->dtype == KILN_DTYPE_F32 && kiln__n(t) == 1);
}

static kiln_status unary_prepare(kiln__kctx *c) {
    const unary_spec *sp = unary_find(c->node->op_type);
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (!sp || !kiln__eltw_f32(x) || !kiln__eltw_f32(y) || kiln__n(x) != kiln__n(y))
        return KILN_E_UNSUPPORTED;
    kiln__eltw_unary u = {sp->op, 0.0f, 0.0f};
    switch (sp->op) {
    case KILN__ELTW_LEAKY_RELU: u.alpha = kiln__attr_f(c->node, "alpha", 0.01f); break;
    case KILN__ELTW_HARD_SIGMOID:
        u.alpha = kiln__attr_f(c->node, "alpha", 0.2f);
        u.beta = kiln__attr_f(c->node, "beta", 0.5f);
        break;
    case KILN__ELTW_GELU_ERF: {
        const char *a = kiln__attr_s(c->node, "approximate", "none");
        if (strcmp(a, "tanh") == 0)
            u.op = KILN__ELTW_GELU_TANH;
        else if (strcmp(a, "none") != 0)
            return KILN_E_UNSUPPORTED;
        break;
    }
    case KILN__ELTW_CLIP:
        if (c->opset < 11) {
            u.alpha = kiln__attr_f(c->node, "min", -FLT_MAX);
            u.beta = kiln__attr_f(c->node, "max", FLT_MAX);
        } else {
            if (!clip_bound_ok(c, 1) || !clip_bound_ok(c, 2)) return KILN_E_UNSUPPORTED;
            u.alpha = -INFINITY; /* bounds read at run time: they may be computed */
            u.beta = INFINITY;
        }
        break;
    default: break;
    }
    KILN__TRY(kiln__eltw_state_new(c, sizeof(unary_state)));
    unary_state *s = c->kstate;
    s->u = u;
    s->flops = sp->flops;
    c->flops = sp->flops * (double)kiln__n(x);
    return KILN_OK;
}

static double unary_cost(const kiln__kctx *c) {
    const unary_state *s = c->kstate;
    double n = (double)kiln__n(c->in[0]);
    return kiln__eltw_cost(c, s->flops * n, 8.0 * n);
}

static kiln_status unary_run(kiln__kctx *c) {
    const unary_state *s = c->kstate;
    kiln__eltw_unary u = s->u;
    if (u.op == KILN__ELTW_CLIP && c->opset >= 11) {
        const kiln_tensor *lo = kiln__in(c, 1), *hi = kiln__in(c, 2);
        if (lo) u.alpha = *(const float *)lo->data;
        if (hi) u.beta = *(const float *)hi->data;
    }
    int64_t lo, hi;
    kiln__eltw_share(kiln__n(c->in[0]), KILN__ELTW_GRAIN, c->ith, c->nth, &lo, &hi);
    if (hi > lo) s->base.k->unary(&u, (const float *)c->in[0]->data + lo, (float *)c->out[0]->data + lo, hi - lo);
    return KILN_OK;
}

#define UNARY_ALGO(id, Op)                                                                  \
    const kiln__algo kiln__algo_##id = {"" #id, "", #Op, KILN_OPF_PARALLEL, unary_prepare, \
                                        unary_cost, unary_run, free};
UNARY_ALGO(relu_f32, Relu)
UNARY_ALGO(leaky_relu_f32, LeakyRelu)
UNARY_ALGO(sigmoid_f32, Sigmoid)
UNARY_ALGO(tanh_f32, Tanh)
UNARY_ALGO(gelu_f32, Gelu)
UNARY_ALGO(hard_sigmoid_f32, HardSigmoid)
UNARY_ALGO(hard_swish_f32, HardSwish)
UNARY_ALGO(clip_f32, Clip)
UNARY_ALGO(exp_f32, Exp)
UNARY_ALGO(erf_f32, Erf)
UNARY_ALGO(sqrt_f32, Sqrt)
UNARY_ALGO(neg_f32, Neg)
UNARY_ALGO(abs_f32, Abs)

/* ---- binary -------------------------------------------------------------------- */

typedef struct binary_spec {
    const char *op_type;
    kiln__eltw_op op;
    int min_opset; /* first opset with numpy broadcasting */
} binary_spec;

static const binary_spec binary_specs[] = {
    {"Add", KILN__ELTW_ADD, 7}, {"Sub", KILN__ELTW_SUB, 7}, {"Mul", KILN__ELTW_MUL, 7},
    {"Div", KILN__ELTW_DIV, 7}, {"Max", KILN__ELTW_MAX, 8}, {"Min", KILN__ELTW_MIN, 8},
    {"Pow", KILN__ELTW_COPY, 7}, /* becomes a unary op on A */
};

typedef struct binary_state {
    kiln__eltw_state base;
    kiln__eltw_op op;
    kiln__eltw_unary pow;    /* Pow: the unary op on A (op is COPY then) */
    int a_full, b_full;      /* operand has Y's shape */
    int64_t mid, inner;      /* the other operand's (mid) in Y's (outer, mid, inner) */
} binary_state;

enum { BC_NONE = 0, BC_FULL, BC_BLOCK };

/* How t (broadcastable to y) reads when y is viewed as (outer, mid, inner):
 * BC_FULL: t has y's elements; BC_BLOCK: t is (mid), its axes being one
 * contiguous run of y's (a scalar: mid = 1); BC_NONE otherwise. */
static int bcast_view(const kiln_tensor *t, const kiln_tensor *y, int64_t *mid, int64_t *inner) {
    if (kiln__n(t) == kiln__n(y)) return BC_FULL;
    int off = y->ndim - t->ndim, first = -1, last = -1, gap = 0;
    if (off < 0) return BC_NONE;
    for (int i = 0; i < y->ndim; i++) {
        int64_t yd = y->dims[i], td = i < off ? 1 : t->dims[i - off];
        if (yd == 1) continue;
        if (td == yd) {
            if (gap) return BC_NONE;
            if (first < 0) first = i;
            last = i;
        } else if (td == 1) {
            if (first >= 0) gap = 1;
        } else {
            return BC_NONE;
        }
    }
    *mid = first < 0 ? 1 : kiln__dims_prod(y->dims, first, last + 1);
    *inner = first < 0 ? 1 : kiln__dims_prod(y->dims, last + 1, y->ndim);
    return BC_BLOCK;
}

/* Pow's exponent, if it is a constant f32 scalar 1, 2 or 3: the unary op. */
static int pow_as_unary(const kiln_tensor *e, kiln__eltw_unary *u) {
    if (!kiln__eltw_f32(e) || !e->data || kiln__n(e) != 1) return 0;
    float v = *(const float *)e->data;
    u->op = v == 1.0f ? KILN__ELTW_COPY : v == 2.0f ? KILN__ELTW_SQUARE
          : v == 3.0f ? KILN__ELTW_CUBE : KILN__ELTW_OP_COUNT;
    return u->op != KILN__ELTW_OP_COUNT;
}

static kiln_status binary_prepare(kiln__kctx *c) {
    const binary_spec *sp = NULL;
    for (size_t i = 0; i < sizeof binary_specs / sizeof binary_specs[0]; i++)
        if (strcmp(binary_specs[i].op_type, c->node->op_type) == 0) sp = &binary_specs[i];
    if (!sp || c->opset < sp->min_opset || c->n_in != 2) return KILN_E_UNSUPPORTED;
    const kiln_tensor *a = c->in[0], *b = c->in[1], *y = c->out[0];
    if (!kiln__eltw_f32(a) || !kiln__eltw_f32(y)) return KILN_E_UNSUPPORTED;
    binary_state st = {.op = sp->op};
    if (strcmp(sp->op_type, "Pow") == 0) {
        if (!pow_as_unary(b, &st.pow) || kiln__n(a) != kiln__n(y)) return KILN_E_UNSUPPORTED;
        st.a_full = st.b_full = 1;
    } else {
        if (!kiln__eltw_f32(b)) return KILN_E_UNSUPPORTED;
        int64_t ma = 1, ia = 1, mb = 1, ib = 1;
        int va = bcast_view(a, y, &ma, &ia), vb = bcast_view(b, y, &mb, &ib);
        if (va == BC_NONE || vb == BC_NONE || (va != BC_FULL && vb != BC_FULL))
            return KILN_E_UNSUPPORTED;
        st.a_full = va == BC_FULL;
        st.b_full = vb == BC_FULL;
        st.mid = st.a_full ? mb : ma;
        st.inner = st.a_full ? ib : ia;
    }
    KILN__TRY(kiln__eltw_state_new(c, sizeof(binary_state)));
    st.base = *(kiln__eltw_state *)c->kstate;
    *(binary_state *)c->kstate = st;
    c->flops = (double)kiln__n(y);
    return KILN_OK;
}

static double binary_cost(const kiln__kctx *c) {
    double n = (double)kiln__n(c->out[0]);
    double bytes = 4.0 * ((double)kiln__n(c->in[0]) + (double)kiln__n(c->in[1]) + n);
    return kiln__eltw_cost(c, n, bytes);
}

// a, b: (broadcast to y), y: f32; thread ith does its units of y
static kiln_status binary_run(kiln__kctx *c) {
    const binary_state *s = c->kstate;
    const kiln__eltw_kernels *k = s->base.k;
    const float *a = c->in[0]->data, *b = c->in[1]->data;
    float *y = c->out[0]->data;
    int64_t lo, hi;
    kiln__eltw_share(kiln__n(c->out[0]), KILN__ELTW_GRAIN, c->ith, c->nth, &lo, &hi);
    if (hi <= lo) return KILN_OK;
    if (s->op == KILN__ELTW_COPY) { /* Pow */
        k->unary(&s->pow, a + lo, y + lo, hi - lo);
        return KILN_OK;
    }
    if (s->a_full && s->b_full) {
        k->binary(s->op, a + lo, 1, b + lo, 1, y + lo, hi - lo);
        return KILN_OK;
    }
    const float *full = s->a_full ? a : b, *part = s->a_full ? b : a;
    for (int64_t i = lo; i < hi;) {
        int64_t len = hi - i, m = 0;
        int ps = 0;
        if (s->mid > 1 && s->inner == 1) { /* row: part[m .. mid) along y */
            m = i % s->mid;
            len = len < s->mid - m ? len : s->mid - m;
            ps = 1;
        } else if (s->mid > 1) { /* channel: part[m] over an inner run */
            m = (i / s->inner) % s->mid;
            int64_t run = s->inner - i % s->inner;
            len = len < run ? len : run;
        }
        if (s->a_full)
            k->binary(s->op, full + i, 1, part + m, ps, y + i, len);
        else
            k->binary(s->op, part + m, ps, full + i, 1, y + i, len);
        i += len;
    }
    return KILN_OK;
}

#define BINARY_ALGO(id, Op)                                                                   \
    const kiln__algo kiln__algo_##id = {"" #id, "", #Op, KILN_OPF_PARALLEL, binary_prepare, \
                                        binary_cost, binary_run, free};
BINARY_ALGO(add_f32, Add)
BINARY_ALGO(sub_f32, Sub)
BINARY_ALGO(mul_f32, Mul)
BINARY_ALGO(div_f32, Div)
BINARY_ALGO(max_f32, Max)
BINARY_ALGO(min_f32, Min)
BINARY_ALGO(pow_f32, Pow)

/* ---- where ---------------------------------------------------------------------- */

typedef struct where_state {
    kiln__eltw_state base;
    int xs, ys; /* 1: X / Y has Z's shape; 0: a scalar */
} where_state;

static kiln_status where_prepare(kiln__kctx *c) {
    if (c->n_in != 3 || c->opset < 9) return KILN_E_UNSUPPORTED;
    const kiln_tensor *cond = c->in[0], *x = c->in[1], *y = c->in[2], *z = c->out[0];
    if (!cond || cond->dtype != KILN_DTYPE_BOOL || !kiln__eltw_f32(x) ||
        !kiln__eltw_f32(y) || !kiln__eltw_f32(z) || kiln__n(cond) != kiln__n(z))
        return KILN_E_UNSUPPORTED;
    const int64_t n = kiln__n(z), nx = kiln__n(x), ny = kiln__n(y);
    if ((nx != n && nx != 1) || (ny != n && ny != 1)) return KILN_E_UNSUPPORTED;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(where_state)));
    where_state *s = c->kstate;
    s->xs = nx == n; /* when n is 1 both read element 0 either way */
    s->ys = ny == n;
    c->flops = (double)n;
    return KILN_OK;
}

static double where_cost(const kiln__kctx *c) {
    double n = (double)kiln__n(c->out[0]);
    return kiln__eltw_cost(c, n, n + 4.0 * ((double)kiln__n(c->in[1]) + (double)kiln__n(c->in[2]) + n));
}

// C: bool, X, Y: f32 (Z's shape or scalars), Z: f32; thread ith does its units of Z
static kiln_status where_run(kiln__kctx *c) {
    const where_state *s = c->kstate;
    const uint8_t *cond = c->in[0]->data;
    const float *x = c->in[1]->data, *y = c->in[2]->data;
    int64_t lo, hi;
    kiln__eltw_share(kiln__n(c->out[0]), KILN__ELTW_GRAIN, c->ith, c->nth, &lo, &hi);
    if (hi > lo)
        s->base.k->select(cond + lo, x + (s->xs ? lo : 0), s->xs, y + (s->ys ? lo : 0), s->ys,
                          (float *)c->out[0]->data + lo, hi - lo);
    return KILN_OK;
}

const kiln__algo kiln__algo_where_f32 = {"where_f32", "", "Where", KILN_OPF_PARALLEL, where_prepare,
                                         where_cost, where_run, free};
