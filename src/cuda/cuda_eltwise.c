/* src/cuda/cuda_eltwise.c: elementwise ops on the GPU, f32 (algorithms
 * cuda_<op>): unary activations and math, broadcast binary arithmetic, and
 * the copies that only relabel a shape (Reshape, Flatten, Squeeze, Unsqueeze,
 * Identity). Kernels in kernels/eltwise.cu. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_algo.h"

typedef struct ew_state {
    kiln__cu_op op;
    float p0, p1;
    int binary_same; /* both inputs of the output's shape */
    kiln__cu_bcast bc;
} ew_state;

static void ew_release(void *ks) { free(ks); }

static kiln_status ew_new(kiln__kctx *c, const ew_state *t) {
    ew_state *s = malloc(sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    *s = *t;
    c->kstate = s;
    c->flops = (double)kiln__n(c->out[0]);
    return KILN_OK;
}

static double ew_cost(const kiln__kctx *c) {
    double bytes = 0;
    for (int k = 0; k < c->n_in; k++)
        if (c->in[k]) bytes += (double)kiln__tensor_bytes(c->in[k]);
    return kiln__cuda_cost(0, 1, 0, bytes + (double)kiln__tensor_bytes(c->out[0]));
}

typedef struct op_entry {
    const char *op_type;
    kiln__cu_op op;
} op_entry;

/* The kernel op of the node's op type in table t (n entries); 0 if absent. */
static int find_op(const op_entry *t, size_t n, const kiln__kctx *c, kiln__cu_op *out) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].op_type, c->node->op_type) == 0) {
            *out = t[i].op;
            return 1;
        }
    return 0;
}

/* ---- unary ------------------------------------------------------------------- */

static const op_entry unary_ops[] = {
    {"Relu", KILN__CU_RELU},   {"Sigmoid", KILN__CU_SIGMOID}, {"Tanh", KILN__CU_TANH},
    {"Exp", KILN__CU_EXP},     {"Log", KILN__CU_LOG},         {"Sqrt", KILN__CU_SQRT},
    {"Neg", KILN__CU_NEG},     {"Abs", KILN__CU_ABS},         {"Erf", KILN__CU_ERF},
    {"Reciprocal", KILN__CU_RECIPROCAL}, {"Gelu", KILN__CU_GELU}, {"Clip", KILN__CU_CLIP},
    {"LeakyRelu", KILN__CU_LEAKY_RELU}, {"HardSigmoid", KILN__CU_HARD_SIGMOID},
};

/* Clip bound input i (opset >= 11): absent, or a constant f32 scalar. */
static int clip_bound(const kiln__kctx *c, int i, float def, float *out) {
    const kiln_tensor *t = kiln__in(c, i);
    *out = def;
    if (!t) return 1;
    if (t->dtype != KILN_DTYPE_F32 || kiln__n(t) != 1 || !t->data) return 0;
    *out = *(const float *)t->data;
    return 1;
}

static kiln_status unary_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (x->dtype != KILN_DTYPE_F32 || y->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    ew_state t = {.op = KILN__CU_IDENTITY};
    if (!find_op(unary_ops, sizeof unary_ops / sizeof *unary_ops, c, &t.op)) return KILN_E_UNSUPPORTED;
    switch (t.op) {
    case KILN__CU_LEAKY_RELU: t.p0 = kiln__attr_f(c->node, "alpha", 0.01f); break;
    case KILN__CU_HARD_SIGMOID:
        t.p0 = kiln__attr_f(c->node, "alpha", 0.2f);
        t.p1 = kiln__attr_f(c->node, "beta", 0.5f);
        break;
    case KILN__CU_GELU: {
        const char *a = kiln__attr_s(c->node, "approximate", "none");
        if (strcmp(a, "tanh") == 0) t.op = KILN__CU_GELU_TANH;
        else if (strcmp(a, "none") != 0) return KILN_E_UNSUPPORTED;
        break;
    }
    case KILN__CU_CLIP:
        if (c->opset < 11) {
            t.p0 = kiln__attr_f(c->node, "min", -FLT_MAX);
            t.p1 = kiln__attr_f(c->node, "max", FLT_MAX);
        } else if (!clip_bound(c, 1, -INFINITY, &t.p0) || !clip_bound(c, 2, INFINITY, &t.p1)) {
            return KILN_E_UNSUPPORTED;
        }
        break;
    default: break;
    }
    return ew_new(c, &t);
}

static kiln_status unary_run(kiln__kctx *c) {
    const ew_state *s = c->kstate;
    return kiln__cuda_launched(kiln__cu_unary(kiln__cuda_stream(c), s->op, c->in[0]->data,
                                              c->out[0]->data, kiln__n(c->out[0]), s->p0, s->p1),
                               c->node->op_type);
}

#define UNARY_ALGO(id, Op)                                                                   \
    const kiln__algo kiln__algo_##id = {#id, "", #Op, KILN_ALGOF_CUDA, unary_prepare, ew_cost, \
                                        unary_run, ew_release};
UNARY_ALGO(cuda_relu, Relu)
UNARY_ALGO(cuda_sigmoid, Sigmoid)
UNARY_ALGO(cuda_tanh, Tanh)
UNARY_ALGO(cuda_exp, Exp)
UNARY_ALGO(cuda_log, Log)
UNARY_ALGO(cuda_sqrt, Sqrt)
UNARY_ALGO(cuda_neg, Neg)
UNARY_ALGO(cuda_abs, Abs)
UNARY_ALGO(cuda_erf, Erf)
UNARY_ALGO(cuda_reciprocal, Reciprocal)
UNARY_ALGO(cuda_gelu, Gelu)
UNARY_ALGO(cuda_clip, Clip)
UNARY_ALGO(cuda_leaky_relu, LeakyRelu)
UNARY_ALGO(cuda_hard_sigmoid, HardSigmoid)

/* ---- binary, with broadcasting ------------------------------------------------ */

static const op_entry binary_ops[] = {
    {"Add", KILN__CU_ADD}, {"Sub", KILN__CU_SUB}, {"Mul", KILN__CU_MUL},
    {"Div", KILN__CU_DIV}, {"Pow", KILN__CU_POW},
};

/* Strides (elements) of t read as y's shape under numpy broadcasting. */
static void bcast_strides(const kiln_tensor *t, const kiln_tensor *y, int64_t *st) {
    int64_t s = 1;
    for (int d = y->ndim - 1; d >= 0; d--) {
        int td = d - (y->ndim - t->ndim);
        int64_t n = td >= 0 ? t->dims[td] : 1;
        st[d] = n == 1 ? 0 : s;
        s *= n;
    }
}

static kiln_status binary_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 2));
    const kiln_tensor *a = c->in[0], *b = c->in[1], *y = c->out[0];
    ew_state t = {.op = KILN__CU_IDENTITY};
    if (!find_op(binary_ops, sizeof binary_ops / sizeof *binary_ops, c, &t.op)) return KILN_E_UNSUPPORTED;
    int64_t n = kiln__n(y);
    t.binary_same = kiln__n(a) == n && kiln__n(b) == n;
    if (!t.binary_same) {
        if (y->ndim > KILN__CU_MAXDIM) return KILN_E_UNSUPPORTED;
        t.bc.ndim = y->ndim;
        for (int d = 0; d < y->ndim; d++) t.bc.dims[d] = y->dims[d];
        bcast_strides(a, y, t.bc.as);
        bcast_strides(b, y, t.bc.bs);
    }
    return ew_new(c, &t);
}

static kiln_status binary_run(kiln__kctx *c) {
    const ew_state *s = c->kstate;
    return kiln__cuda_launched(kiln__cu_binary(kiln__cuda_stream(c), s->op, c->in[0]->data,
                                               c->in[1]->data, c->out[0]->data, kiln__n(c->out[0]),
                                               s->binary_same ? NULL : &s->bc),
                               c->node->op_type);
}

#define BINARY_ALGO(id, Op)                                                                   \
    const kiln__algo kiln__algo_##id = {#id, "", #Op, KILN_ALGOF_CUDA, binary_prepare, ew_cost, \
                                        binary_run, ew_release};
BINARY_ALGO(cuda_add, Add)
BINARY_ALGO(cuda_sub, Sub)
BINARY_ALGO(cuda_mul, Mul)
BINARY_ALGO(cuda_div, Div)
BINARY_ALGO(cuda_pow, Pow)

/* ---- shape relabels: the data is copied as it is --------------------------------- */

static kiln_status relabel_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (x->dtype != y->dtype || kiln__n(x) != kiln__n(y) || kiln__is_container(x->dtype) ||
        x->dtype == KILN_DTYPE_STRING)
        return KILN_E_UNSUPPORTED;
    ew_state t = {.op = KILN__CU_IDENTITY};
    KILN__TRY(ew_new(c, &t));
    c->flops = 0;
    return KILN_OK;
}

static double relabel_cost(const kiln__kctx *c) {
    return kiln__cuda_cost(0, 1, 0, 2.0 * (double)kiln__tensor_bytes(c->out[0]));
}

static kiln_status relabel_run(kiln__kctx *c) {
    if (c->out[0]->data == c->in[0]->data) return KILN_OK; /* in place */
    return kiln__device_copy(c->dev, c->out[0]->data, c->in[0]->data, kiln__tensor_bytes(c->out[0]));
}

#define RELABEL_ALGO(id, Op)                                                                    \
    const kiln__algo kiln__algo_##id = {#id, "", #Op, KILN_ALGOF_CUDA, relabel_prepare,            \
                                        relabel_cost, relabel_run, ew_release};
RELABEL_ALGO(cuda_reshape, Reshape)
RELABEL_ALGO(cuda_flatten, Flatten)
RELABEL_ALGO(cuda_squeeze, Squeeze)
RELABEL_ALGO(cuda_unsqueeze, Unsqueeze)
RELABEL_ALGO(cuda_identity, Identity)
