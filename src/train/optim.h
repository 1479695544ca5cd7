/* src/train/optim.h: optimizers, learning-rate schedules and gradient
 * clipping over contiguous f32 buffers.
 *
 * A trainer keeps its parameters, their gradients and the optimizer state each
 * in one contiguous buffer of n floats (the state in kiln__optim), so one
 * update is a few passes over flat arrays. The updates follow PyTorch's
 * torch.optim definitions (the training golden tests compare with it):
 *
 *   SGD    g = grad + wd * p
 *          with momentum mu: b = g on the first step, else b = mu * b + g;
 *          g = g + mu * b (nesterov) or g = b
 *          p -= lr * g
 *   Adam   g = grad + wd * p          (L2 penalty in the gradient)
 *   AdamW  p *= 1 - lr * wd           (decoupled weight decay), g = grad
 *          then both: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
 *          p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * with t the 1-based step count. Arithmetic in f32 on the stored values, the
 * bias corrections in double.
 */
#ifndef KILN_TRAIN_OPTIM_H
#define KILN_TRAIN_OPTIM_H

#include "core/core.h"
#include "kiln/train.h"

typedef enum { KILN__OPTIM_SGD = 0, KILN__OPTIM_ADAM, KILN__OPTIM_ADAMW } kiln__optim_kind;

typedef struct kiln__optim {
    kiln__optim_kind kind;
    double momentum;     /* SGD */
    int nesterov;        /* SGD, needs momentum > 0 */
    double weight_decay;
    double beta1, beta2, eps; /* Adam, AdamW */
    int64_t n;           /* parameters */
    int64_t step;        /* updates done */
    float *state;        /* owned, from the first step: SGD with momentum: b (n);
                            Adam/AdamW: m then v (2n); else NULL */
} kiln__optim;

/* "sgd", "adam", "adamw"; NULL for a bad value. */
const char *kiln__optim_name(kiln__optim_kind k);
/* Parses an optimizer name; KILN_E_INVAL naming the accepted ones otherwise. */
kiln_status kiln__optim_parse(const char *name, kiln__optim_kind *out);

/* Sets o up for n parameters with PyTorch's defaults (momentum 0, no weight
 * decay, betas 0.9 / 0.999, eps 1e-8); the caller may change the
 * hyperparameters before the first step. State zeroed. */
kiln_status kiln__optim_init(kiln__optim *o, kiln__optim_kind kind, int64_t n);
void kiln__optim_free(kiln__optim *o);
/* Floats of state the optimizer keeps (0, n or 2n), for checkpoints. */
int64_t kiln__optim_state_size(const kiln__optim *o);

/* One update of params[0..n) from grads[0..n) at learning rate lr. The state
 * is allocated (zeroed) at the first step: fails only then, on OOM, with
 * nothing changed. */
kiln_status kiln__optim_step(kiln__optim *o, float *params, const float *grads, double lr);

/* Euclidean norm of g[0..n) (in double). */
double kiln__global_norm(const float *g, int64_t n);
/* Scales g so that its norm is at most max_norm (PyTorch's clip_grad_norm_:
 * factor max_norm / (norm + 1e-6) when below 1). Returns the norm before. */
double kiln__clip_global_norm(float *g, int64_t n, double max_norm);

/* Learning-rate schedules: kiln_lr_schedule in kiln/train.h (public, as the
 * caller picks each step's rate), implemented in optim.c. */

#endif
