/* src/cpu/ref/rnn_act.h: the activation functions of the recurrent ops (the
 * "activations", "activation_alpha" and "activation_beta" attributes of RNN,
 * GRU and LSTM), for their reference kernels (rnn.c) and gradients
 * (grad_rnn.c). */
#ifndef KILN_CPU_REF_RNN_ACT_H
#define KILN_CPU_REF_RNN_ACT_H

#include "ops/op.h"

typedef enum {
    KILN__RNN_ACT_RELU, KILN__RNN_ACT_TANH, KILN__RNN_ACT_SIGMOID, KILN__RNN_ACT_AFFINE,
    KILN__RNN_ACT_LEAKYRELU, KILN__RNN_ACT_THRESHOLDEDRELU, KILN__RNN_ACT_SCALEDTANH,
    KILN__RNN_ACT_HARDSIGMOID, KILN__RNN_ACT_ELU, KILN__RNN_ACT_SOFTSIGN, KILN__RNN_ACT_SOFTPLUS,
} kiln__rnn_act_fn;

/* One activation with its parameters. */
typedef struct kiln__rnn_act {
    kiln__rnn_act_fn fn;
    double alpha, beta;
} kiln__rnn_act;

/* a(x), and its derivative at x (the one-sided value at the kinks of Relu,
 * LeakyRelu, ThresholdedRelu and HardSigmoid: that of the side the forward's
 * comparison puts x on). */
double kiln__rnn_act_apply(const kiln__rnn_act *a, double x);
double kiln__rnn_act_grad(const kiln__rnn_act *a, double x);

/* Reads node's activations for `dirs` directions of n_acts each into
 * act[dir][k] (defaults[k] where the node names none). Alphas and betas are
 * consumed in order by the activations that use them (as ONNX Runtime does);
 * missing ones take the operator defaults. A list of exactly n_acts names is
 * shared by both directions. */
kiln_status kiln__rnn_act_read(const kiln__node *node, int n_acts, const kiln__rnn_act_fn *defaults,
                               int dirs, kiln__rnn_act act[2][3]);

#endif
