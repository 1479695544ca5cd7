/* src/train/losses.h: the loss a trainer appends to the model (kiln/train.h's
 * kiln_loss), built from ONNX ops that have gradient rules:
 *
 *   cross-entropy    SoftmaxCrossEntropyLoss(logits, labels), mean; with label
 *                    smoothing e: (1 - e) * that - e * ReduceMean(LogSoftmax(logits))
 *                    (torch's: the target is (1 - e) onehot + e / C)
 *   nll              NegativeLogLikelihoodLoss(output, labels), mean: the model's
 *                    output is already log-probabilities
 *   mse              ReduceMean((output - onehot(labels))^2) over every element
 *   bce-with-logits  ReduceMean(Softplus(z) - z * onehot(labels)): each of the C
 *                    outputs a logit of its own binary label (numerically stable:
 *                    Softplus is computed without overflow)
 */
#ifndef KILN_TRAIN_LOSSES_H
#define KILN_TRAIN_LOSSES_H

#include "graph/passes/passes.h"
#include "kiln/train.h"

/* Appends loss `kind` of logits (N, C) against labels (N) int64 to p's graph;
 * *loss receives the scalar loss value. classes: C (needed by mse and
 * bce-with-logits, for the one-hot targets; <= 0 when unknown, which those
 * refuse). The caller sweeps p. */
kiln_status kiln__add_loss(kiln__px *p, kiln_loss kind, double label_smoothing, int64_t classes,
                           int logits, int labels, int *loss);

#endif
