/* kiln/train.h: training a model, and reading training data.
 *
 * A trainer turns a model (any ONNX graph whose first input takes a batch and
 * whose first output is the logits) into a training graph: its float
 * initializers become the trainable parameters (Dropout's ratio and
 * BatchNormalization's running statistics excepted), BatchNormalization nodes use
 * batch statistics and update their running mean and variance, a loss against
 * int64 labels is appended (softmax cross-entropy by default), and autograd adds the
 * backward nodes. The graph runs in a session like any other (same planner,
 * kernels and threads). Parameters, gradients and optimizer state are each one
 * contiguous f32 buffer.
 */
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H
#include <stdint.h>
#include "graph.h"
#include "session.h"
#include "status.h"
#include "tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

/* ---- data ----------------------------------------------------------------- */

/* Reads an IDX file (the MNIST / Fashion-MNIST layout: big-endian header, u8,
 * i8, i16, i32, f32 or f64 elements), gzip-compressed or not. The tensor has
 * the file's dims and dtype (u8, i8, i16, i32, f32, f64); the caller owns it.
 * Errors name the file and what is wrong (bad magic, truncated data). */
kiln_status kiln_idx_load(const char *path, kiln_tensor **out);

/* Reads a CSV file of numbers into an f32 tensor (rows, columns): fields
 * separated by commas, the same number on every line; blank lines and a first
 * line that is not numbers (a header) are skipped. Errors name the file, the
 * line and the field. */
kiln_status kiln_csv_load(const char *path, kiln_tensor **out);

/* ---- trainer ----------------------------------------------------------------- */

typedef struct kiln_trainer kiln_trainer;

typedef enum kiln_optimizer {
    KILN_OPTIMIZER_SGD = 0,
    KILN_OPTIMIZER_ADAM,  /* weight decay as an L2 term in the gradient */
    KILN_OPTIMIZER_ADAMW, /* decoupled weight decay */
} kiln_optimizer;

/* "sgd", "adam", "adamw"; KILN_E_INVAL naming the accepted ones otherwise. */
kiln_status kiln_optimizer_parse(const char *name, kiln_optimizer *out);

/* The loss, of the model's first output (N, C) against labels (N) int64. */
typedef enum kiln_loss {
    KILN_LOSS_CROSS_ENTROPY = 0, /* softmax cross-entropy of logits (optionally label-smoothed) */
    KILN_LOSS_NLL,               /* negative log-likelihood: the output is log-probabilities */
    KILN_LOSS_MSE,               /* mean squared error against one-hot targets */
    KILN_LOSS_BCE_WITH_LOGITS,   /* binary cross-entropy of each output, a logit, against
                                    one-hot targets */
} kiln_loss;

/* "cross-entropy", "nll", "mse", "bce-with-logits"; KILN_E_INVAL naming the
 * accepted ones otherwise. */
kiln_status kiln_loss_parse(const char *name, kiln_loss *out);
/* The name kiln_loss_parse takes; NULL for a bad value. */
const char *kiln_loss_name(kiln_loss kind);

/* The precision of the training step's matrix products (mixed precision):
 * operands and results of every MatMul, Gemm and convolution, forward and
 * backward, in bf16 or fp16 with f32 accumulation; normalization, softmax,
 * the loss and the optimizer in f32 on f32 master weights. fp16 scales the
 * loss dynamically (see kiln_train_options). Evaluation and the export are
 * f32. Tensors are stored in f32 holding the rounded values and the products
 * run on the f32 kernels: the numerics of mixed precision, not its speed. */
typedef enum kiln_train_precision {
    KILN_TRAIN_FP32 = 0,
    KILN_TRAIN_BF16,
    KILN_TRAIN_FP16,
} kiln_train_precision;

/* "fp32", "bf16", "fp16"; KILN_E_INVAL naming the accepted ones otherwise. */
kiln_status kiln_train_precision_parse(const char *name, kiln_train_precision *out);

/* Zero-initialized options are the defaults (SGD without momentum, fp32). */
typedef struct kiln_train_options {
    kiln_optimizer optimizer;
    double momentum;     /* SGD */
    int nesterov;        /* SGD with momentum */
    double weight_decay;
    double beta1, beta2, eps; /* Adam / AdamW; 0: 0.9, 0.999, 1e-8 */
    int threads;         /* <= 0: all online cores */
    uint64_t seed;       /* dropout masks: step t draws from a seed made of (seed, t) */
    kiln_train_precision precision;
    kiln_loss loss;
    double label_smoothing; /* cross-entropy: in [0, 1) */
    /* fp16's dynamic loss scaling: the gradients are computed for the loss
     * times S; a step with an inf or NaN gradient is skipped and S halves;
     * S doubles after loss_scale_interval clean steps in a row.
     * 0: S starts at 65536, interval 2000. */
    double loss_scale;
    int64_t loss_scale_interval;
    /* > 0: the gradients are scaled down to this global (Euclidean) norm
     * when above it, before every update (after fp16's unscaling) */
    double clip_norm;
} kiln_train_options;

/* Makes a trainer for model (which it copies; the caller keeps it). The loss
 * (opt->loss; averaged over the batch) is of the first output (N, C) against
 * labels (N) int64. Dropout trains (a new mask every step; its ratio, a constant, is
 * not a parameter) and is the identity in evaluation and in the export. Fails,
 * naming the node, for what cannot be trained yet (an op without a gradient
 * rule on the way from a parameter to the loss). */
kiln_status kiln_trainer_create(const kiln_graph *model, const kiln_train_options *opt,
                                kiln_trainer **out);
void kiln_trainer_free(kiln_trainer *t);
/* Trainable parameters (floats in the parameter buffer). */
int64_t kiln_trainer_num_params(const kiln_trainer *t);

/* One training step on a batch x (the model's first input) with labels (N)
 * int64 (or (N, D1..Dk) when the logits are (N, C, D1..Dk): a class per
 * position, as a sequence model predicts): forward, backward and one
 * optimizer update at learning rate lr
 * (with fp16, no update when the step is skipped: see kiln_trainer_stats).
 * *loss receives the batch's mean loss and *correct the samples (positions)
 * whose largest logit is at their label (either may be NULL). */
kiln_status kiln_trainer_step(kiln_trainer *t, const kiln_tensor *x, const kiln_tensor *labels,
                              double lr, double *loss, int64_t *correct);

/* Counters of the steps taken so far. */
typedef struct kiln_train_stats {
    int64_t updates;       /* optimizer updates applied */
    int64_t skipped_steps; /* fp16: steps skipped for inf/NaN gradients */
    double loss_scale;     /* fp16: the current loss scale; 1 otherwise */
    double grad_norm;      /* the global gradient norm of the last update, before
                              clipping (0 before the first) */
} kiln_train_stats;
void kiln_trainer_stats(const kiln_trainer *t, kiln_train_stats *out);

/* Per-node profile of the training graph (forward, loss and backward; not the
 * optimizer update) over the steps since profiling was turned on, as
 * kiln_session_set_profiling and kiln_session_profile give it for a session. */
kiln_status kiln_trainer_set_profiling(kiln_trainer *t, int on);
int kiln_trainer_profile(const kiln_trainer *t, kiln_node_profile *out, int max);

/* The model's forward pass in inference form (running statistics in
 * BatchNormalization) with the current parameters: *loss and *correct as for
 * a step; nothing is updated. */
kiln_status kiln_trainer_evaluate(kiln_trainer *t, const kiln_tensor *x,
                                  const kiln_tensor *labels, double *loss, int64_t *correct);

/* A copy of the model with the trained parameters and running statistics in
 * its initializers (the inference form: what kiln_graph_save_onnx writes for
 * onnxruntime). The caller owns *out. */
kiln_status kiln_trainer_export(const kiln_trainer *t, kiln_graph **out);

/* ---- learning-rate schedules ------------------------------------------------------ */

typedef enum kiln_lr_schedule_kind {
    KILN_LR_CONSTANT = 0,
    KILN_LR_STEP,   /* lr * gamma^floor(t / step_size) */
    KILN_LR_COSINE, /* lr_min + (lr - lr_min) * (1 + cos(pi * t / total)) / 2, then lr_min */
} kiln_lr_schedule_kind;

/* "constant", "step", "cosine"; KILN_E_INVAL naming the accepted ones otherwise. */
kiln_status kiln_lr_schedule_parse(const char *name, kiln_lr_schedule_kind *out);

typedef struct kiln_lr_schedule {
    kiln_lr_schedule_kind kind;
    double lr;         /* base learning rate */
    int64_t warmup;    /* linear warm-up: lr * (t + 1) / warmup for t < warmup; the
                          schedule's own t counts from the end of the warm-up */
    int64_t step_size; /* STEP (0: constant) */
    double gamma;      /* STEP */
    int64_t total;     /* COSINE: steps after the warm-up */
    double lr_min;     /* COSINE */
} kiln_lr_schedule;

/* The learning rate of step t (0-based). */
double kiln_lr_at(const kiln_lr_schedule *s, int64_t t);

/* ---- built-in architectures --------------------------------------------------------- */
/* Written with kiln/graph.h's builder; He-initialized from seed (the same seed
 * builds the same weights); input "x" with batch dim "N", output "logits". */

/* x (N, features) -> [MatMul + bias -> Relu] for each of the n_hidden widths
 * -> MatMul + bias -> logits (N, classes). */
kiln_status kiln_model_mlp(int64_t features, int n_hidden, const int64_t *hidden, int64_t classes,
                           uint64_t seed, kiln_graph **out);
/* x (N, channels, height, width) -> Conv 3x3 (c1, pad 1) -> BatchNormalization
 * -> Relu -> MaxPool 2 -> Conv 3x3 (2 c1) -> BatchNormalization -> Relu ->
 * MaxPool 2 -> Flatten -> Gemm -> logits (N, classes): the small CNN of
 * scripts/fashion_cnn.py, without its dropout. */
kiln_status kiln_model_cnn(int64_t channels, int64_t height, int64_t width, int64_t c1,
                           int64_t classes, uint64_t seed, kiln_graph **out);
/* x (N, channels, height, width) -> Conv 3x3 (c1) -> BatchNormalization -> Relu
 * -> `stages` residual blocks, block l of c1 * 2^l channels (stride 2 from the
 * second on): Conv 3x3 -> BN -> Relu -> Conv 3x3 -> BN, plus the block's input
 * (through a Conv 1x1 + BN projection where the shape changes), Relu ->
 * GlobalAveragePool -> Flatten -> Gemm -> logits (N, classes). Convolutions
 * without bias (the BNs shift); the network of
 * tests/train/torch/torch_fashion_resnet.onnx without its dropout. */
kiln_status kiln_model_resnet(int64_t channels, int64_t height, int64_t width, int64_t c1, int stages,
                              int64_t classes, uint64_t seed, kiln_graph **out);
/* Character language model: x (N, T) int64 ids in [0, vocab) -> Gather
 * (embedding (vocab, embed)) -> LSTM (hidden) over T -> MatMul + bias -> logits
 * (N, vocab, T), each position predicting the next id (kiln train
 * --train-text); the network of scripts/char_lstm.py. */
kiln_status kiln_model_char_lstm(int64_t vocab, int64_t embed, int64_t hidden, uint64_t seed,
                                 kiln_graph **out);

/* ---- TensorBoard event files ---------------------------------------------------- */

typedef struct kiln_events kiln_events;

/* Creates dir if missing (its parent must exist) and a TensorBoard event file in it,
 * events.out.tfevents.<seconds>.<host>.<pid>.<n>.kiln (never an existing
 * file: a resumed run adds one beside the first; TFRecord framing, Event
 * protocol buffers), which TensorBoard shows when pointed at dir or a parent
 * of it. Errors name the path. */
kiln_status kiln_events_open(const char *dir, kiln_events **out);
/* Appends scalar `tag` = value at step (a point of TensorBoard's scalar plot
 * named tag), stamped with the current time. */
kiln_status kiln_events_scalar(kiln_events *ev, const char *tag, int64_t step, double value);
/* Writes what is buffered to the file (call at checkpoints). */
kiln_status kiln_events_flush(kiln_events *ev);
/* Flushes and closes; NULL is fine. */
kiln_status kiln_events_close(kiln_events *ev);

/* ---- checkpoints ------------------------------------------------------------------ */

/* Writes a checkpoint to path as safetensors: every parameter and running
 * statistic under its initializer's name (f32, its shape), the optimizer
 * state ("kiln.optimizer_state", f32, when it has one) and, as metadata, the
 * optimizer, its step count, the precision, the loss scaler's state (scale,
 * clean steps, skipped steps) and the n_meta caller pairs keys[i] = values[i]
 * (an epoch, the data order's random state...). Written to path.tmp, then
 * renamed: a failed write leaves an earlier checkpoint as it was. */
kiln_status kiln_trainer_save(const kiln_trainer *t, const char *path, int n_meta,
                              const char *const *keys, const char *const *values);

/* Restores a checkpoint that kiln_trainer_save wrote for a trainer of the
 * same model and optimizer: parameters, statistics, optimizer state, step and
 * loss scaler, so that training goes on exactly as it would have (with the
 * same precision; another precision goes on from the same weights, and an
 * fp16 trainer restores the scale only from an fp16 checkpoint). Checks everything before
 * changing anything: on failure (naming the file and the tensor or field at
 * fault) t is unchanged. */
kiln_status kiln_trainer_load(kiln_trainer *t, const char *path);

/* Metadata value `key` of checkpoint path into buf (NUL-terminated, at most
 * len bytes); KILN_E_NOTFOUND if it has none, KILN_E_LIMIT if it does not fit. */
kiln_status kiln_checkpoint_meta(const char *path, const char *key, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
