/* src/cpu/ref/norm.h: what the normalization reference kernels (norm.c) share
 * with their gradients (grad_norm.c). Private to src/cpu/ref. */
#ifndef KILN_CPU_REF_NORM_H
#define KILN_CPU_REF_NORM_H

#include "ops/op.h"

/* Mean and population variance of n elements of x at base, base+stride, ...
 * in double. Returns the mean; *var gets the variance (0 elements: NaN). */
double kiln__mean_var(kiln_dtype dt, const void *x, int64_t base, int64_t n, int64_t stride,
                      double *var);

/* The same over channel c of x viewed as (N, C, inner): the N runs of
 * `inner` contiguous elements (BatchNormalization's batch statistics). */
double kiln__channel_mean_var(kiln_dtype dt, const void *x, int64_t N, int64_t C, int64_t inner,
                              int64_t c, double *var);

#endif
