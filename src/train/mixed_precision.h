/* src/train/mixed_precision.h: mixed-precision training (--precision bf16|fp16).
 *
 * The policy, as automatic mixed precision applies it: the matrix products
 * (MatMul, Gemm, Conv, ConvTranspose and the backward pass's kiln.ConvGrad)
 * take their operands in the low precision and give their results in it,
 * accumulating in f32; normalization, softmax, the loss, elementwise ops and
 * reductions compute in f32; the parameters stay f32 (master weights) and the
 * optimizer updates them in f32. On the graph this is kiln.RoundToPrecision
 * nodes around every product, forward and backward alike: the values carry
 * exactly what bf16 / fp16 tensors would (fp16 overflow to inf included), so
 * the numerics, and the loss scaling fp16 needs, are those of real mixed
 * precision. The storage stays f32 and the products run on the f32 kernels,
 * so memory does not shrink and the rounding nodes cost time: native
 * low-precision training kernels are not there yet.
 *
 * fp16's narrow range needs dynamic loss scaling: the loss's gradient seed is
 * the scale S (so every gradient is S times larger and small ones do not
 * flush to zero); a step whose gradients hold an inf or NaN is skipped and S
 * halves; after `interval` clean steps in a row S doubles.
 */
#ifndef KILN_TRAIN_MIXED_PRECISION_H
#define KILN_TRAIN_MIXED_PRECISION_H

#include "graph/passes/passes.h"

/* Puts kiln.RoundToPrecision(to) (to: KILN_DTYPE_BF16 or KILN_DTYPE_F16) on
 * every f32 operand and result of the products in p's graph (dtypes as
 * inferred): one rounding per value, shared by its consumers; a result keeps
 * its value (the product writes a new one that the rounding reads), so
 * consumers and graph outputs see the rounded one. The caller sweeps p. */
kiln_status kiln__round_products(kiln__px *p, kiln_dtype to);

typedef struct kiln__loss_scaler {
    double scale;     /* S, the loss gradient's seed */
    int64_t interval; /* clean steps before S doubles */
    int64_t clean;    /* clean steps since S last changed */
    int64_t skipped;  /* steps skipped so far */
} kiln__loss_scaler;

/* After a step's backward pass with gradients g[0..n) (scaled by S): if all
 * are finite, divides them by S, counts a clean step (doubling S after
 * `interval` of them) and returns 1: apply the update. Otherwise counts a
 * skipped step, halves S and returns 0: skip it. */
int kiln__loss_scaler_update(kiln__loss_scaler *ls, float *g, int64_t n);

#endif
