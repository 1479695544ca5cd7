/* src/cpu/ref/rnn_act.c: the recurrent ops' activation functions, their
 * derivatives and the attributes that choose them (rnn_act.h). */
#include <math.h>
#include <strings.h>

#include "cpu/ref/rnn_act.h"

/* Name, whether alpha/beta are used, and their defaults (those of the
 * corresponding ONNX operators). */
static const struct {
    const char *name;
    int uses_alpha, uses_beta;
    float alpha, beta;
} act_table[] = {
    [KILN__RNN_ACT_RELU] = {"Relu", 0, 0, 0, 0},
    [KILN__RNN_ACT_TANH] = {"Tanh", 0, 0, 0, 0},
    [KILN__RNN_ACT_SIGMOID] = {"Sigmoid", 0, 0, 0, 0},
    [KILN__RNN_ACT_AFFINE] = {"Affine", 1, 1, 1.0f, 0.0f},
    [KILN__RNN_ACT_LEAKYRELU] = {"LeakyRelu", 1, 0, 0.01f, 0},
    [KILN__RNN_ACT_THRESHOLDEDRELU] = {"ThresholdedRelu", 1, 0, 1.0f, 0},
    [KILN__RNN_ACT_SCALEDTANH] = {"ScaledTanh", 1, 1, 1.0f, 1.0f},
    [KILN__RNN_ACT_HARDSIGMOID] = {"HardSigmoid", 1, 1, 0.2f, 0.5f},
    [KILN__RNN_ACT_ELU] = {"Elu", 1, 0, 1.0f, 0},
    [KILN__RNN_ACT_SOFTSIGN] = {"Softsign", 0, 0, 0, 0},
    [KILN__RNN_ACT_SOFTPLUS] = {"Softplus", 0, 0, 0, 0},
};
#define N_ACT_FNS ((int)(sizeof(act_table) / sizeof(act_table[0])))

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

double kiln__rnn_act_apply(const kiln__rnn_act *a, double x) {
    switch (a->fn) {
    case KILN__RNN_ACT_RELU: return x > 0 ? x : 0;
    case KILN__RNN_ACT_TANH: return tanh(x);
    case KILN__RNN_ACT_SIGMOID: return sigmoid(x);
    case KILN__RNN_ACT_AFFINE: return a->alpha * x + a->beta;
    case KILN__RNN_ACT_LEAKYRELU: return x >= 0 ? x : a->alpha * x;
    case KILN__RNN_ACT_THRESHOLDEDRELU: return x > a->alpha ? x : 0;
    case KILN__RNN_ACT_SCALEDTANH: return a->alpha * tanh(a->beta * x);
    case KILN__RNN_ACT_HARDSIGMOID: {
        double y = a->alpha * x + a->beta;
        return y < 0 ? 0 : y > 1 ? 1 : y;
    }
    case KILN__RNN_ACT_ELU: return x >= 0 ? x : a->alpha * (exp(x) - 1);
    case KILN__RNN_ACT_SOFTSIGN: return x / (1 + fabs(x));
    case KILN__RNN_ACT_SOFTPLUS: return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
    }
    return x;
}

double kiln__rnn_act_grad(const kiln__rnn_act *a, double x) {
    switch (a->fn) {
    case KILN__RNN_ACT_RELU: return x > 0 ? 1 : 0;
    case KILN__RNN_ACT_TANH: {
        double t = tanh(x);
        return 1 - t * t;
    }
    case KILN__RNN_ACT_SIGMOID: {
        double s = sigmoid(x);
        return s * (1 - s);
    }
    case KILN__RNN_ACT_AFFINE: return a->alpha;
    case KILN__RNN_ACT_LEAKYRELU: return x >= 0 ? 1 : a->alpha;
    case KILN__RNN_ACT_THRESHOLDEDRELU: return x > a->alpha ? 1 : 0;
    case KILN__RNN_ACT_SCALEDTANH: {
        double t = tanh(a->beta * x);
        return a->alpha * a->beta * (1 - t * t);
    }
    case KILN__RNN_ACT_HARDSIGMOID: {
        double y = a->alpha * x + a->beta;
        return y < 0 || y > 1 ? 0 : a->alpha;
    }
    case KILN__RNN_ACT_ELU: return x >= 0 ? 1 : a->alpha * exp(x);
    case KILN__RNN_ACT_SOFTSIGN: {
        double d = 1 + fabs(x);
        return 1 / (d * d);
    }
    case KILN__RNN_ACT_SOFTPLUS: return sigmoid(x);
    }
    return 1;
}

kiln_status kiln__rnn_act_read(const kiln__node *node, int n_acts, const kiln__rnn_act_fn *defaults,
                               int dirs, kiln__rnn_act act[2][3]) {
    char *const *names = NULL;
    const float *alphas = NULL, *betas = NULL;
    int n_names = kiln__attr_strings(node, "activations", &names);
    int n_alpha = kiln__attr_floats(node, "activation_alpha", &alphas);
    int n_beta = kiln__attr_floats(node, "activation_beta", &betas);
    int need = n_acts * dirs;
    int shared = n_names == n_acts;
    if (n_names > 0 && n_names < need && !shared)
        return kiln__err(KILN_E_INVAL, "attribute 'activations' has %d names, expected %d",
                         n_names, need);
    int ia = 0, ib = 0;
    for (int d = 0; d < dirs; d++) {
        for (int k = 0; k < n_acts; k++) {
            kiln__rnn_act *a = &act[d][k];
            a->fn = defaults[k];
            if (n_names > 0) {
                const char *name = names[shared ? k : d * n_acts + k];
                int found = -1;
                for (int f = 0; f < N_ACT_FNS; f++)
                    if (strcasecmp(name, act_table[f].name) == 0) found = f;
                if (found < 0)
                    return kiln__err(KILN_E_UNSUPPORTED,
                                     "attribute 'activations' has unknown function '%s'", name);
                a->fn = (kiln__rnn_act_fn)found;
            }
            a->alpha = act_table[a->fn].alpha;
            a->beta = act_table[a->fn].beta;
            if (act_table[a->fn].uses_alpha && ia < n_alpha) a->alpha = alphas[ia++];
            if (act_table[a->fn].uses_beta && ib < n_beta) a->beta = betas[ib++];
        }
    }
    return KILN_OK;
}
