/* src/train/grad_build.c: the node-building helpers of the gradient rules
 * (grad.h) and the rule table (grad_rules.def). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/grad.h"

static const struct {
    const char *op;
    kiln__grad_rule rule;
} rules[] = {
#define KILN_GRAD(name) {#name, kiln__grad_##name},
#include "train/grad_rules.def"
#undef KILN_GRAD
};

kiln__grad_rule kiln__grad_rule_find(const char *domain, const char *op_type) {
    if (domain && domain[0] && strcmp(domain, "ai.onnx") != 0 && strcmp(domain, "kiln") != 0)
        return NULL;
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].op, op_type) == 0) return rules[i].rule;
    return NULL;
}

kiln_status kiln__gb_fail(kiln__grad_ctx *gc, kiln_status s, const char *fmt, ...) {
    char msg[512], desc[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (gc->status == KILN_OK)
        gc->status = kiln__err(s, "autograd: %s: %s",
                               kiln__node_desc(kiln__gb_fwd(gc), desc, sizeof desc), msg);
    return gc->status;
}

/* Records a helper's failure (message already set) unless one is recorded. */
static int failed(kiln__grad_ctx *gc) {
    if (gc->status == KILN_OK) gc->status = KILN_E_NOMEM;
    return -1;
}

/* -1 for an operand that is -1: an earlier helper failed (status set), or, if
 * none did, the rule passed one it never made. */
static int missing_operand(kiln__grad_ctx *gc) {
    if (gc->status == KILN_OK) kiln__gb_fail(gc, KILN_E_INVAL, "a gradient operand is missing");
    return -1;
}

int kiln__gb_node_n(kiln__grad_ctx *gc, const char *op, const char *domain, int n_in,
                    const int *in, int n_out, const unsigned char *want, const char *base,
                    int *outs) {
    for (int k = 0; k < n_out; k++) outs[k] = -1;
    if (gc->status != KILN_OK) return -1;
    int i = kiln__px_add_node(gc->p, base, op, domain, n_in, n_out);
    if (i < 0) return failed(gc);
    for (int k = 0; k < n_out; k++)
        if (!want || want[k]) {
            outs[k] = kiln__px_new_value(gc->p, base);
            if (outs[k] < 0) return failed(gc);
        }
    kiln__node *n = &gc->p->g->nodes[i];
    for (int k = 0; k < n_in; k++) n->in[k] = in[k];
    for (int k = 0; k < n_out; k++) n->out[k] = outs[k];
    return i;
}

int kiln__gb_node(kiln__grad_ctx *gc, const char *op, const char *domain, int n_in, const int *in,
                  const char *base, int *node_out) {
    int out, i = kiln__gb_node_n(gc, op, domain, n_in, in, 1, NULL, base, &out);
    if (node_out) *node_out = i;
    return out;
}

/* Base name of the values a rule makes: "grad_" and the forward node's first
 * output. */
static void base_name(kiln__grad_ctx *gc, char *buf, size_t len) {
    int y = kiln__gb_out(gc, 0);
    snprintf(buf, len, "grad_%.200s", y >= 0 ? gc->p->g->values[y].name : "");
}

static int op_n(kiln__grad_ctx *gc, const char *op, int n, const int *in) {
    char base[256];
    for (int k = 0; k < n; k++)
        if (in[k] < 0) return missing_operand(gc);
    base_name(gc, base, sizeof base);
    return kiln__gb_node(gc, op, "", n, in, base, NULL);
}

int kiln__gb_op1(kiln__grad_ctx *gc, const char *op, int a) { return op_n(gc, op, 1, &a); }

int kiln__gb_output(kiln__grad_ctx *gc, int k, const char *base) {
    if (kiln__gb_out(gc, k) >= 0 || gc->status != KILN_OK) return kiln__gb_out(gc, k);
    int v = kiln__px_new_value(gc->p, base);
    kiln__node *nd = &gc->p->g->nodes[gc->node];
    int n = nd->n_out > k ? nd->n_out : k + 1;
    int *o = v >= 0 ? realloc(nd->out, (size_t)n * sizeof *o) : NULL;
    if (!o) {
        kiln__gb_fail(gc, KILN_E_NOMEM, "out of memory");
        return -1;
    }
    for (int i = nd->n_out; i < n; i++) o[i] = -1;
    o[k] = v;
    nd->out = o;
    nd->n_out = n;
    return v;
}

void kiln__gb_retype(kiln__grad_ctx *gc, const char *op_type, const char *domain) {
    if (gc->status != KILN_OK) return;
    kiln__node *nd = &gc->p->g->nodes[gc->node];
    char *op = kiln__strdup(op_type), *dom = kiln__strdup(domain);
    kiln_status s = op && dom ? kiln__px_need_opset(gc->p, domain, 1) : KILN_E_NOMEM;
    if (s != KILN_OK) {
        free(op), free(dom);
        kiln__gb_fail(gc, s, "out of memory");
        return;
    }
    free(nd->op_type), free(nd->domain);
    nd->op_type = op;
    nd->domain = dom;
    nd->opset = (int)kiln__graph_opset(gc->p->g, domain);
}

int kiln__gb_op2(kiln__grad_ctx *gc, const char *op, int a, int b) {
    int in[2] = {a, b};
    return op_n(gc, op, 2, in);
}

int kiln__gb_scalar(kiln__grad_ctx *gc, int like, double v) {
    if (gc->status != KILN_OK || like < 0) return missing_operand(gc);
    kiln_dtype dt = kiln__px_dtype(gc->p, like);
    if (dt == KILN_DTYPE_UNDEFINED) {
        kiln__gb_fail(gc, KILN_E_TYPE, "the dtype of '%s' is not known",
                      gc->p->g->values[like].name);
        return -1;
    }
    kiln_tensor *t;
    if (kiln_tensor_create(dt, 0, NULL, &t) != KILN_OK) return failed(gc);
    kiln__st_f(dt, kiln_tensor_data(t), 0, v);
    int c = kiln__px_add_init(gc->p, "grad_const", t);
    return c < 0 ? failed(gc) : c;
}

/* int64 constant of rank ndim (0 or 1) holding v[0..n). */
static int int_const(kiln__grad_ctx *gc, int ndim, int n, const int64_t *v) {
    if (gc->status != KILN_OK) return -1;
    int64_t len = n;
    kiln_tensor *t;
    if (kiln_tensor_create(KILN_DTYPE_I64, ndim, &len, &t) != KILN_OK) return failed(gc);
    if (n) memcpy(kiln_tensor_data(t), v, (size_t)n * sizeof *v);
    int c = kiln__px_add_init(gc->p, "grad_ints", t);
    return c < 0 ? failed(gc) : c;
}

int kiln__gb_ints(kiln__grad_ctx *gc, int n, const int64_t *v) { return int_const(gc, 1, n, v); }

int kiln__gb_int(kiln__grad_ctx *gc, int64_t v) { return int_const(gc, 0, 1, &v); }

int kiln__gb_shape(kiln__grad_ctx *gc, int v) { return kiln__gb_op1(gc, "Shape", v); }

int kiln__gb_sum_to(kiln__grad_ctx *gc, int v, int like) {
    if (v < 0 || like < 0) return missing_operand(gc);
    int y = kiln__gb_out(gc, 0);
    if (y >= 0 && kiln__px_same_shape(gc->p, y, like)) return v;
    char base[256];
    int in[2] = {v, kiln__gb_shape(gc, like)};
    if (in[1] < 0) return -1;
    base_name(gc, base, sizeof base);
    return kiln__gb_node(gc, "SumTo", "kiln", 2, in, base, NULL);
}

int kiln__gb_reshape_like(kiln__grad_ctx *gc, int v, int like) {
    return kiln__gb_op2(gc, "Reshape", v, kiln__gb_shape(gc, like));
}

int kiln__gb_reduce_sum(kiln__grad_ctx *gc, int v, int n, const int64_t *axes, int keepdims) {
    char base[256];
    int node, in[2] = {v, -1}, axes_input = kiln__graph_opset(gc->p->g, "") >= 13;
    if (v < 0) return missing_operand(gc);
    if (axes_input && n > 0 && (in[1] = kiln__gb_ints(gc, n, axes)) < 0) return -1;
    base_name(gc, base, sizeof base);
    int out = kiln__gb_node(gc, "ReduceSum", "", in[1] >= 0 ? 2 : 1, in, base, &node);
    if (!axes_input && n > 0) kiln__gb_attr_ints(gc, node, "axes", n, axes);
    kiln__gb_attr_int(gc, node, "keepdims", keepdims);
    return out;
}

int kiln__gb_pad(kiln__grad_ctx *gc, int v, int rank, const int64_t *pads) {
    char base[256];
    int node, in[2] = {v, -1}, pads_input = kiln__graph_opset(gc->p->g, "") >= 11;
    if (v < 0) return missing_operand(gc);
    if (pads_input && (in[1] = kiln__gb_ints(gc, 2 * rank, pads)) < 0) return -1;
    base_name(gc, base, sizeof base);
    int out = kiln__gb_node(gc, "Pad", "", pads_input ? 2 : 1, in, base, &node);
    if (!pads_input) kiln__gb_attr_ints(gc, node, "pads", 2 * rank, pads);
    return out;
}

static void attr_done(kiln__grad_ctx *gc, kiln_status s) {
    if (s != KILN_OK && gc->status == KILN_OK) gc->status = s;
}

void kiln__gb_copy_attrs(kiln__grad_ctx *gc, int i) {
    if (i >= 0 && gc->status == KILN_OK) attr_done(gc, kiln__px_copy_attrs(gc->p, i, gc->node));
}

void kiln__gb_attr_int(kiln__grad_ctx *gc, int i, const char *name, int64_t v) {
    if (i >= 0 && gc->status == KILN_OK) attr_done(gc, kiln__px_attr_int(gc->p, i, name, v));
}

void kiln__gb_attr_float(kiln__grad_ctx *gc, int i, const char *name, float v) {
    if (i >= 0 && gc->status == KILN_OK) attr_done(gc, kiln__px_attr_float(gc->p, i, name, v));
}

void kiln__gb_attr_ints(kiln__grad_ctx *gc, int i, const char *name, int n, const int64_t *v) {
    if (i >= 0 && gc->status == KILN_OK) attr_done(gc, kiln__px_attr_ints(gc->p, i, name, n, v));
}
