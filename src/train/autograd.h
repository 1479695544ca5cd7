/* src/train/autograd.h: reverse-mode differentiation on the graph IR.
 *
 * Training is the same graph run backwards: kiln__autograd appends to a graph
 * the nodes that compute gradients (the gradient rules of grad.h), so the
 * backward pass is planned, optimized and run by the same session machinery
 * as the forward one, and the memory planner keeps exactly the forward values
 * the backward nodes read.
 */
#ifndef KILN_TRAIN_AUTOGRAD_H
#define KILN_TRAIN_AUTOGRAD_H

#include "graph/ir.h"

/* Adds to g (finalized; value shapes as known, best after
 * kiln_graph_infer_shapes) the nodes computing the vector-Jacobian product of
 * value y with seed dy, a value of y's dtype and shape (for a scalar loss, a
 * constant or input 1): grads[i] receives the value holding
 *   sum over y's elements j of dy[j] * d y[j] / d wrt[i]
 * of wrt[i]'s shape, or -1 when y does not depend on wrt[i]. Values of g that
 * wrt does not reach are not differentiated. Fails, naming the node, when a
 * node on a path from wrt to y has no gradient rule or a rule cannot apply
 * (unknown rank where it needs one, an unsupported attribute). g is finalized
 * again; on failure it may hold some of the added nodes. */
kiln_status kiln__autograd(kiln_graph *g, int y, int dy, int n, const int *wrt, int *grads);

#endif
