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

/* Conv (no bias) of a cout x cin x k x k weight `name`.weight: in -> out, stride,
 * padding k / 2. */
static kiln_status conv(kiln_graph *g, const char *name, const char *in, const char *out, int64_t cin,
                        int64_t cout, int64_t k, int64_t stride, uint64_t seed, uint64_t *ctr) {
    char w[64];
    int node;
    snprintf(w, sizeof w, "%s.weight", name);
    KILN__TRY(add_param(g, w, 4, (int64_t[]){cout, cin, k, k}, cin * k * k, 0, seed, ctr));
    KILN__TRY(op(g, "Conv", out, 2, (const char *[]){in, w}, &node));
    const int64_t p = k / 2;
    KILN__TRY(kiln_graph_set_attr_ints(g, node, "pads", 4, (int64_t[]){p, p, p, p}));
    KILN__TRY(kiln_graph_set_attr_ints(g, node, "kernel_shape", 2, (int64_t[]){k, k}));
    return kiln_graph_set_attr_ints(g, node, "strides", 2, (int64_t[]){stride, stride});
}

/* BatchNormalization `name` of c channels (scale 1, shift 0, running mean 0,
 * variance 1): in -> out. */
static kiln_status batch_norm(kiln_graph *g, const char *name, const char *in, const char *out,
                              int64_t c, uint64_t seed, uint64_t *ctr) {
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    char bn[4][64];
    for (int k = 0; k < 4; k++) {
        snprintf(bn[k], sizeof bn[k], "%s.%s", name, parts[k]);
        KILN__TRY(add_param(g, bn[k], 1, &c, 0, k == 0 || k == 3 ? 1.0f : 0.0f, seed, ctr));
    }
    return op(g, "BatchNormalization", out, 5, (const char *[]){in, bn[0], bn[1], bn[2], bn[3]}, NULL);
}

/* Conv "<name>.conv" -> BatchNormalization "<name>.bn" [-> Relu]: in -> out. */
static kiln_status conv_bn(kiln_graph *g, const char *name, const char *in, const char *out, int64_t cin,
                           int64_t cout, int64_t k, int64_t stride, int relu, uint64_t seed, uint64_t *ctr) {
    char c[64], c_out[64], bn[64], b[64];
    snprintf(c, sizeof c, "%s.conv", name);
    snprintf(c_out, sizeof c_out, "%s.conv.out", name);
    snprintf(bn, sizeof bn, "%s.bn", name);
    snprintf(b, sizeof b, "%s.bn.out", name);
    KILN__TRY(conv(g, c, in, c_out, cin, cout, k, stride, seed, ctr));
    KILN__TRY(batch_norm(g, bn, c_out, relu ? b : out, cout, seed, ctr));
    return relu ? op(g, "Relu", out, 1, (const char *[]){b}, NULL) : KILN_OK;
}

/* "block<l + 1>.<part>" in buf (64 bytes). */
static const char *block_name(char *buf, int l, const char *part) {
    snprintf(buf, 64, "block%d.%s", l + 1, part);
    return buf;
}

/* Flatten(in) -> Gemm with fc.weight (classes, features) and fc.bias -> logits. */
static kiln_status classifier(kiln_graph *g, const char *in, int64_t features, int64_t classes,
                              uint64_t seed, uint64_t *ctr) {
    int node;
    KILN__TRY(op(g, "Flatten", "flat", 1, (const char *[]){in}, NULL));
    KILN__TRY(add_param(g, "fc.weight", 2, (int64_t[]){classes, features}, features, 0, seed, ctr));
    KILN__TRY(add_param(g, "fc.bias", 1, &classes, 0, 0, seed, ctr));
    KILN__TRY(op(g, "Gemm", "logits", 3, (const char *[]){"flat", "fc.weight", "fc.bias"}, &node));
    return kiln_graph_set_attr_int(g, node, "transB", 1);
}

/* A graph with image input x (N, channels, height, width). */
static kiln_status image_graph(int64_t channels, int64_t height, int64_t width, kiln_graph **g) {
    KILN__TRY(kiln_graph_create(17, g));
    const char *names[4] = {"N", NULL, NULL, NULL};
    kiln_status s = kiln_graph_add_input(*g, "x", KILN_DTYPE_F32, 4,
                                         (int64_t[]){-1, channels, height, width}, names);
    if (s != KILN_OK) { /* nothing for the caller to free */
        kiln_graph_free(*g);
        *g = NULL;
    }
    return s;
}

kiln_status kiln_model_cnn(int64_t channels, int64_t height, int64_t width, int64_t c1,
                           int64_t classes, uint64_t seed, kiln_graph **out) {
    *out = NULL;
    if (channels < 1 || height < 4 || width < 4 || c1 < 1 || classes < 1)
        return kiln__err(KILN_E_INVAL, "kiln_model_cnn: needs images of at least 4x4 and positive sizes");
    kiln_graph *g;
    KILN__TRY(image_graph(channels, height, width, &g));
    uint64_t ctr = 0;
    const int64_t k2[2] = {2, 2};
    char in[32] = "x";
    int64_t cin = channels, cout = c1;
    kiln_status s = KILN_OK;
    for (int l = 1; l <= 2 && s == KILN_OK; l++, cin = cout, cout *= 2) {
        char name[32], r[32], p[32];
        int node;
        snprintf(name, sizeof name, "layer%d", l);
        snprintf(r, sizeof r, "relu%d", l);
        snprintf(p, sizeof p, "pool%d", l);
        s = conv_bn(g, name, in, r, cin, cout, 3, 1, 1, seed, &ctr);
        if (s == KILN_OK) s = op(g, "MaxPool", p, 1, (const char *[]){r}, &node);
        if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "kernel_shape", 2, k2);
        if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "strides", 2, k2);
        snprintf(in, sizeof in, "%s", p);
    }
    if (s == KILN_OK) s = classifier(g, in, cin * (height / 4) * (width / 4), classes, seed, &ctr);
    return finish(g, s, out);
}

kiln_status kiln_model_resnet(int64_t channels, int64_t height, int64_t width, int64_t c1, int stages,
                              int64_t classes, uint64_t seed, kiln_graph **out) {
    *out = NULL;
    if (channels < 1 || height < 1 || width < 1 || c1 < 1 || stages < 1 || stages > 8 || classes < 1)
        return kiln__err(KILN_E_INVAL, "kiln_model_resnet: sizes must be positive, stages 1..8");
    kiln_graph *g;
    KILN__TRY(image_graph(channels, height, width, &g));
    uint64_t ctr = 0;
    kiln_status s = conv_bn(g, "stem", "x", "stem.relu", channels, c1, 3, 1, 1, seed, &ctr);
    char in[64] = "stem.relu";
    int64_t cin = c1;
    for (int l = 0; l < stages && s == KILN_OK; l++) {
        const int64_t c = c1 << l, stride = l ? 2 : 1;
        char name[64], a[64], b[64], skip[64], sum[64];
        s = conv_bn(g, block_name(name, l, "1"), in, block_name(a, l, "relu1"), cin, c, 3, stride, 1,
                    seed, &ctr);
        if (s == KILN_OK)
            s = conv_bn(g, block_name(name, l, "2"), a, block_name(b, l, "branch"), c, c, 3, 1, 0,
                        seed, &ctr);
        snprintf(skip, sizeof skip, "%s", in); /* identity, or a 1x1 projection */
        if (s == KILN_OK && (stride > 1 || cin != c))
            s = conv_bn(g, block_name(name, l, "skip"), in, block_name(skip, l, "shortcut"), cin, c, 1,
                        stride, 0, seed, &ctr);
        block_name(sum, l, "sum");
        block_name(in, l, "relu2");
        if (s == KILN_OK) s = op(g, "Add", sum, 2, (const char *[]){b, skip}, NULL);
        if (s == KILN_OK) s = op(g, "Relu", in, 1, (const char *[]){sum}, NULL);
        cin = c;
    }
    if (s == KILN_OK) s = op(g, "GlobalAveragePool", "pool", 1, (const char *[]){in}, NULL);
    if (s == KILN_OK) s = classifier(g, "pool", cin, classes, seed, &ctr);
    return finish(g, s, out);
}

kiln_status kiln_model_char_lstm(int64_t vocab, int64_t embed, int64_t hidden, uint64_t seed,
                                 kiln_graph **out) {
    *out = NULL;
    if (vocab < 1 || embed < 1 || hidden < 1)
        return kiln__err(KILN_E_INVAL, "kiln_model_char_lstm: sizes must be positive");
    kiln_graph *g;
    KILN__TRY(kiln_graph_create(17, &g));
    uint64_t ctr = 0;
    const char *names[2] = {"N", "T"};
    kiln_status s = kiln_graph_add_input(g, "x", KILN_DTYPE_I64, 2, (int64_t[]){-1, -1}, names);
    /* embedding N(0, 1); LSTM and output weights N(0, 1 / hidden) */
    if (s == KILN_OK) s = add_param(g, "embedding", 2, (int64_t[]){vocab, embed}, 2, 0, seed, &ctr);
    const int64_t G = 4 * hidden, fan = 2 * hidden; /* fan: N(0, 1 / hidden) */
    if (s == KILN_OK) s = add_param(g, "lstm.W", 3, (int64_t[]){1, G, embed}, fan, 0, seed, &ctr);
    if (s == KILN_OK) s = add_param(g, "lstm.R", 3, (int64_t[]){1, G, hidden}, fan, 0, seed, &ctr);
    if (s == KILN_OK) s = add_param(g, "lstm.B", 2, (int64_t[]){1, 2 * G}, 0, 0, seed, &ctr);
    if (s == KILN_OK) s = add_param(g, "out.weight", 2, (int64_t[]){hidden, vocab}, fan, 0, seed, &ctr);
    if (s == KILN_OK) s = add_param(g, "out.bias", 1, &vocab, 0, 0, seed, &ctr);
    kiln_tensor *axes = NULL;
    if (s == KILN_OK) s = kiln_tensor_create(KILN_DTYPE_I64, 1, (int64_t[]){1}, &axes);
    if (s == KILN_OK) {
        *(int64_t *)kiln_tensor_data(axes) = 1;
        s = kiln_graph_add_initializer(g, "squeeze.axes", axes);
    }
    kiln_tensor_free(axes);
    int node;
    if (s == KILN_OK) s = op(g, "Gather", "e", 2, (const char *[]){"embedding", "x"}, NULL); /* (N,T,E) */
    if (s == KILN_OK) s = op(g, "Transpose", "et", 1, (const char *[]){"e"}, &node);        /* (T,N,E) */
    if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "perm", 3, (int64_t[]){1, 0, 2});
    if (s == KILN_OK) s = op(g, "LSTM", "y", 4, (const char *[]){"et", "lstm.W", "lstm.R", "lstm.B"}, &node);
    if (s == KILN_OK) s = kiln_graph_set_attr_int(g, node, "hidden_size", hidden);      /* (T,1,N,H) */
    if (s == KILN_OK) s = op(g, "Squeeze", "h", 2, (const char *[]){"y", "squeeze.axes"}, NULL);
    if (s == KILN_OK) s = op(g, "MatMul", "o", 2, (const char *[]){"h", "out.weight"}, NULL);
    if (s == KILN_OK) s = op(g, "Add", "ob", 2, (const char *[]){"o", "out.bias"}, NULL); /* (T,N,V) */
    if (s == KILN_OK) s = op(g, "Transpose", "logits", 1, (const char *[]){"ob"}, &node); /* (N,V,T) */
    if (s == KILN_OK) s = kiln_graph_set_attr_ints(g, node, "perm", 3, (int64_t[]){1, 2, 0});
    return finish(g, s, out);
}
