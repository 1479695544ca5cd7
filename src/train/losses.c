/* src/train/losses.c: the trainer's loss graphs (losses.h). */
#include <string.h>

#include "train/losses.h"

static const char *const loss_names[] = {"cross-entropy", "nll", "mse", "bce-with-logits"};

kiln_status kiln_loss_parse(const char *name, kiln_loss *out) {
    int i;
    KILN__TRY(kiln__name_index("loss", loss_names, 4, name, &i));
    *out = (kiln_loss)i;
    return KILN_OK;
}

const char *kiln_loss_name(kiln_loss kind) {
    return (unsigned)kind < 4 ? loss_names[kind] : NULL;
}

/* Appends node op(a[, b[, c]]) (-1: no input) with one new output; its value,
 * or -1 (status in *s) on failure or when *s is already an error. The node's
 * index goes to *node when node is not NULL (for attributes). */
static int op_node(kiln__px *p, kiln_status *s, const char *type, int a, int b, int c, int *node_out) {
    if (*s != KILN_OK) return -1;
    int n_in = c >= 0 ? 3 : b >= 0 ? 2 : 1;
    int node = kiln__px_add_node(p, "kiln_loss", type, "", n_in, 1);
    int out = node >= 0 ? kiln__px_new_value(p, "kiln_loss") : -1;
    if (out < 0) {
        *s = KILN_E_NOMEM;
        return -1;
    }
    kiln__node *n = &p->g->nodes[node];
    int in[3] = {a, b, c};
    for (int k = 0; k < n_in; k++) n->in[k] = in[k];
    n->out[0] = out;
    if (node_out) *node_out = node;
    return out;
}

static int op(kiln__px *p, kiln_status *s, const char *type, int a, int b, int c) {
    return op_node(p, s, type, a, b, c, NULL);
}

/* A constant: a scalar f32 (ndim 0) or an int64 vector / f32 pair. */
static int constant(kiln__px *p, kiln_status *s, kiln_dtype dt, int n, const double *v) {
    if (*s != KILN_OK) return -1;
    kiln_tensor *t;
    int64_t dims[1] = {n};
    if ((*s = kiln_tensor_create(dt, n == 0 ? 0 : 1, dims, &t)) != KILN_OK) return -1;
    for (int i = 0; i < (n ? n : 1); i++) kiln__st_f(dt, kiln_tensor_data(t), i, v[i]);
    int c = kiln__px_add_init(p, "kiln_loss_const", t);
    if (c < 0) *s = KILN_E_NOMEM;
    return c;
}

/* ReduceMean over every element, to a scalar. */
static int mean_all(kiln__px *p, kiln_status *s, int x) {
    int node, m = op_node(p, s, "ReduceMean", x, -1, -1, &node);
    if (*s == KILN_OK) *s = kiln__px_attr_int(p, node, "keepdims", 0);
    return m;
}

kiln_status kiln__add_loss(kiln__px *p, kiln_loss kind, double label_smoothing, int64_t classes,
                           int logits, int labels, int *loss) {
    kiln_status s = KILN_OK;
    if (label_smoothing < 0 || label_smoothing >= 1)
        return kiln__err(KILN_E_INVAL, "label smoothing %g is outside [0, 1)", label_smoothing);
    if (label_smoothing > 0 && kind != KILN_LOSS_CROSS_ENTROPY)
        return kiln__err(KILN_E_INVAL, "label smoothing applies to the cross-entropy loss, not %s",
                         kiln_loss_name(kind));
    if ((kind == KILN_LOSS_MSE || kind == KILN_LOSS_BCE_WITH_LOGITS) && classes <= 0)
        return kiln__err(KILN_E_SHAPE, "the %s loss needs the number of classes, but the model's "
                         "first output '%s' has no known dim 1", kiln_loss_name(kind),
                         p->g->values[logits].name);
    switch (kind) {
    case KILN_LOSS_CROSS_ENTROPY: {
        int ce = op(p, &s, "SoftmaxCrossEntropyLoss", logits, labels, -1);
        if (label_smoothing > 0) {
            const double e = label_smoothing, keep = 1 - e;
            int node, lp = op_node(p, &s, "LogSoftmax", logits, -1, -1, &node);
            if (s == KILN_OK) s = kiln__px_attr_int(p, node, "axis", 1);
            int smooth = op(p, &s, "Mul", mean_all(p, &s, lp), constant(p, &s, KILN_DTYPE_F32, 0, &e), -1);
            ce = op(p, &s, "Sub", op(p, &s, "Mul", ce, constant(p, &s, KILN_DTYPE_F32, 0, &keep), -1),
                    smooth, -1);
        }
        *loss = ce;
        break;
    }
    case KILN_LOSS_NLL:
        *loss = op(p, &s, "NegativeLogLikelihoodLoss", logits, labels, -1);
        break;
    default: { /* the one-hot losses */
        const double depth = (double)classes, values[2] = {0, 1};
        int onehot = op(p, &s, "OneHot", labels, constant(p, &s, KILN_DTYPE_I64, 1, &depth),
                        constant(p, &s, KILN_DTYPE_F32, 2, values));
        if (kind == KILN_LOSS_MSE) {
            int d = op(p, &s, "Sub", logits, onehot, -1);
            *loss = mean_all(p, &s, op(p, &s, "Mul", d, d, -1));
        } else {
            int sp = op(p, &s, "Softplus", logits, -1, -1);
            *loss = mean_all(p, &s, op(p, &s, "Sub", sp, op(p, &s, "Mul", logits, onehot, -1), -1));
        }
    }
    }
    return s;
}
