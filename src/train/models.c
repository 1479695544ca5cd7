/* src/train/models.c: built-in architectures (kiln/train.h), written with the
 * graph-building API (kiln/graph.h) as a C user would: seeded He-initialized
 * weights, batch dim "N". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"
#include "kiln/kiln.h"

/* A tensor of dims filled with N(0, 2 / fan_in) draws (He), or with `fill`
 * when fan_in is 0, from the counter-based stream (seed, *ctr). */
static kiln_status param(int ndim, const int64_t *dims, int64_t fan_in, float fill, uint64_t seed,
                         uint64_t *ctr, kiln_tensor **out) {
    KILN__TRY(kiln_tensor_create(KILN_DTYPE_F32, ndim, dims, out));
    float *p = kiln_tensor_data(*out);
    double sd = fan_in > 0 ? sqrt(2.0 / (double)fan_in) : 0;
    for (int64_t i = 0; i < kiln_tensor_numel(*out); i++) {
        if (fan_in == 0) {
            p[i] = fill;
            continue;
        }
        /* Box-Muller from two uniforms in (0, 1] */
        double u1 = ((double)(kiln__hash64(seed, (*ctr)++) >> 11) + 1) / 9007199254740992.0;
        double u2 = (double)(kiln__hash64(seed, (*ctr)++) >> 11) / 9007199254740992.0;
        p[i] = (float)(sd * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
    }
    return KILN_OK;
}

/* Adds initializer `name` made by param(). */
static kiln_status add_param(kiln_graph *g, const char *name, int ndim, const int64_t *dims,
                             int64_t fan_in, float fill, uint64_t seed, uint64_t *ctr) {
    kiln_tensor *t;
    KILN__TRY(param(ndim, dims, fan_in, fill, seed, ctr, &t));
    kiln_status s = kiln_graph_add_initializer(g, name, t);
    kiln_tensor_free(t);
    return s;
}

/* Node op(in...) -> out with up to 5 inputs; its index in *node if not NULL. */
static kiln_status op(kiln_graph *g, const char *type, const char *out, int n_in,
                      const char *const *in, int *node) {
    return kiln_graph_add_node(g, type, "", n_in, in, 1, &out, node);
}

static kiln_status finish(kiln_graph *g, kiln_status s, kiln_graph **out) {
    if (s == KILN_OK) s = kiln_graph_add_output(g, "logits");
    if (s == KILN_OK) s = kiln_graph_finish(g);
    if (s != KILN_OK) {
        kiln_graph_free(g);
        return s;
    }
    *out = g;
    return KILN_OK;
}

kiln_status kiln_model_mlp(int64_t features, int n_hidden, const int64_t *hidden, int64_t classes,
                           uint64_t seed, kiln_graph **out) {
    *out = NULL;
    if (features < 1 || classes < 1 || n_hidden < 0)
        return kiln__err(KILN_E_INVAL, "kiln_model_mlp: features, classes must be positive");
    kiln_graph *g;
    KILN__TRY(kiln_graph_create(17, &g));
    uint64_t ctr = 0;
    const char *names[2] = {"N", NULL};
    kiln_status s = kiln_graph_add_input(g, "x", KILN_DTYPE_F32, 2, (int64_t[]){-1, features}, names);
    char prev[32] = "x", w[32], b[32], h[32], hb[32];
    int64_t width = features;
    for (int l = 0; l <= n_hidden && s == KILN_OK; l++) {
        int last = l == n_hidden;
        int64_t next = last ? classes : hidden[l];
        if (next < 1) return finish(g, kiln__err(KILN_E_INVAL, "kiln_model_mlp: layer %d has width %lld", l, (long long)next), out);
        snprintf(w, sizeof w, "fc%d.weight", l);
        snprintf(b, sizeof b, "fc%d.bias", l);
        snprintf(h, sizeof h, "fc%d.mm", l);
        snprintf(hb, sizeof hb, last ? "logits" : "fc%d.out", l);
        s = add_param(g, w, 2, (int64_t[]){width, next}, width, 0, seed, &ctr);
        if (s == KILN_OK) s = add_param(g, b, 1, &next, 0, 0, seed, &ctr);
        if (s == KILN_OK) s = op(g, "MatMul", h, 2, (const char *[]){prev, w}, NULL);
        if (s == KILN_OK) s = op(g, "Add", hb, 2, (const char *[]){h, b}, NULL);
        if (!last) {
            snprintf(prev, sizeof prev, "relu%d", l);
            if (s == KILN_OK) s = op(g, "Relu", prev, 1, (const char *[]){hb}, NULL);
        }
        width = next;
    }
    return finish(g, s, out);
}

kiln_status kiln_model_cnn(int64_t channels, int64_t height, int64_t width, int64_t c1,
                           int64_t classes, uint64_t seed, kiln_graph **out) {
    *out = NULL;
    if (channels < 1 || height < 4 || width < 4 || c1 < 1 || classes < 1)
        return kiln__err(KILN_E_INVAL, "kiln_model_cnn: needs images of at least 4x4 and positive sizes");
    kiln_graph *g;
    KILN__TRY(kiln_graph_create(17, &g));
    uint64_t ctr = 0;
    const char *names[4] = {"N", NULL, NULL, NULL};
    kiln_status s = kiln_graph_add_input(g, "x", KILN_DTYPE_F32, 4,
                                         (int64_t[]){-1, channels, height, width}, names);
    const int64_t pads[4] = {1, 1, 1, 1}, k2[2] = {2, 2};
    char in[32] = "x";
    int64_t cin = channels, cout = c1;
    for (int l = 1; l <= 2 && s == KILN_OK; l++, cin = cout, cout *= 2) {
        char w[32], c[32], bn[5][32], r[32], p[32];
        int node;
        snprintf(w, sizeof w, "conv%d.weight", l);
        snprintf(c, sizeof c, "conv%d.out", l);
        snprintf(r, sizeof r, "relu%d", l);
        snprintf(p, sizeof p, "pool%d", l);
        static const char *const bn_parts[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int k = 0; k < 4; k++) snprintf(bn[k], sizeof bn[k], "bn%d.%s", l, bn_parts[k]);
        snprintf(bn[4], sizeof bn[4], "bn%d.out", l);
        s = add_param(g, w, 4, (int64_t[]){cout, cin, 3, 3}, cin * 9, 0, seed, &ctr);
        for (int k = 0; k < 4 && s == KILN_OK; k++)
            s = add_param(g, bn[k], 1, &cout, 0, k == 0 || k == 3 ? 1.0f : 0.0f, seed, &ctr);
        if (s == KILN_OK) s = op(g, "Conv", c, 2, (const char *[]){in, w}, &node);
        if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "pads", 4, pads);
        if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "kernel_shape", 2, (int64_t[]){3, 3});
        if (s == KILN_OK)
            s = op(g, "BatchNormalization", bn[4], 5, (const char *[]){c, bn[0], bn[1], bn[2], bn[3]}, NULL);
        if (s == KILN_OK) s = op(g, "Relu", r, 1, (const char *[]){bn[4]}, NULL);
        if (s == KILN_OK) s = op(g, "MaxPool", p, 1, (const char *[]){r}, &node);
        if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "kernel_shape", 2, k2);
        if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "strides", 2, k2);
        snprintf(in, sizeof in, "%s", p);
    }
    int64_t flat = cin * (height / 4) * (width / 4);
    int node;
    if (s == KILN_OK) s = op(g, "Flatten", "flat", 1, (const char *[]){in}, NULL);
    if (s == KILN_OK) s = add_param(g, "fc.weight", 2, (int64_t[]){classes, flat}, flat, 0, seed, &ctr);
    if (s == KILN_OK) s = add_param(g, "fc.bias", 1, &classes, 0, 0, seed, &ctr);
    if (s == KILN_OK) s = op(g, "Gemm", "logits", 3, (const char *[]){"flat", "fc.weight", "fc.bias"}, &node);
    if (s == KILN_OK) s = kiln_graph_set_attr_int(g, node, "transB", 1);
    return finish(g, s, out);
}
