/* tests/conformance/compare.h: comparing a result tensor with the expected one
 * the way the ONNX backend tests do. */
#ifndef KILN_CONF_COMPARE_H
#define KILN_CONF_COMPARE_H

#include <stddef.h>

#include "kiln/tensor.h"

#define CONF_RTOL 1e-3
#define CONF_ATOL 1e-7

/* 1 if got matches want: same dtype and shape; floats elementwise
 * |got - want| <= atol + rtol * |want| (NaN equals NaN, infinities must
 * match); integers and bools exactly; strings by content. Sequences and
 * optionals match if they are of the same kind and length and their items
 * match. Otherwise 0 and why says what differs (first bad element, count and
 * largest error). */
int conf_compare(const kiln_tensor *got, const kiln_tensor *want, double rtol, double atol,
                 char *why, size_t why_len);

#endif
