/* src/ops/reduce.h: what the reference (src/cpu/ref/reduce.c) and the fast
 * kernels (src/cpu/kernels/reduce.c) of the Reduce* ops share: reading the
 * axes a node reduces.
 */
#ifndef KILN_OPS_REDUCE_H
#define KILN_OPS_REDUCE_H

#include <stdint.h>

#include "ops/op.h"

/* Marks in red[0..rank) the axes Reduce* node c reduces. The axes come from
 * the "axes" attribute before the op's axes-input opset (ReduceSum 13, the
 * others 18) and from the optional second input from then on (where
 * noop_with_empty_axes applies). No axes means all axes, or none with
 * noop_with_empty_axes. KILN__NEED_VALUE when the axes input has no value
 * yet; errors name the argument at fault. */
kiln_status kiln__reduce_axes(kiln__kctx *c, int rank, uint8_t *red);

#endif
