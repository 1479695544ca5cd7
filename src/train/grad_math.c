/* src/train/grad_math.c: gradient rules of elementwise math and activations
 * (grad.h). Binary ops broadcast (numpy rules), so an input's gradient is the
 * output-shaped product summed down to its shape (kiln__gb_sum_to). */
#include "train/grad.h"

#define NEED(i) (gc->need[i])
#define IN(i) kiln__gb_in(gc, i)
#define OUT(k) kiln__gb_out(gc, k)

// Y = X: dX = dY
kiln_status kiln__grad_Identity(kiln__grad_ctx *gc) {
    gc->dx[0] = gc->dy[0];
    return gc->status;
}

// Y = A + B: dA = dY, dB = dY (each summed to its shape)
kiln_status kiln__grad_Add(kiln__grad_ctx *gc) {
    if (NEED(0)) gc->dx[0] = kiln__gb_sum_to(gc, gc->dy[0], IN(0));
    if (NEED(1)) gc->dx[1] = kiln__gb_sum_to(gc, gc->dy[0], IN(1));
    return gc->status;
}

// Y = A - B: dA = dY, dB = -dY
kiln_status kiln__grad_Sub(kiln__grad_ctx *gc) {
    if (NEED(0)) gc->dx[0] = kiln__gb_sum_to(gc, gc->dy[0], IN(0));
    if (NEED(1)) gc->dx[1] = kiln__gb_sum_to(gc, kiln__gb_op1(gc, "Neg", gc->dy[0]), IN(1));
    return gc->status;
}

// Y = A * B: dA = dY * B, dB = dY * A
kiln_status kiln__grad_Mul(kiln__grad_ctx *gc) {
    int dy = gc->dy[0];
    if (NEED(0)) gc->dx[0] = kiln__gb_sum_to(gc, kiln__gb_op2(gc, "Mul", dy, IN(1)), IN(0));
    if (NEED(1)) gc->dx[1] = kiln__gb_sum_to(gc, kiln__gb_op2(gc, "Mul", dy, IN(0)), IN(1));
    return gc->status;
}

// Y = A / B: dA = dY / B, dB = -(dY / B) * Y
kiln_status kiln__grad_Div(kiln__grad_ctx *gc) {
    int dy_b = kiln__gb_op2(gc, "Div", gc->dy[0], IN(1));
    if (NEED(0)) gc->dx[0] = kiln__gb_sum_to(gc, dy_b, IN(0));
    if (NEED(1))
        gc->dx[1] = kiln__gb_sum_to(
            gc, kiln__gb_op1(gc, "Neg", kiln__gb_op2(gc, "Mul", dy_b, OUT(0))), IN(1));
    return gc->status;
}

// Y = -X: dX = -dY
kiln_status kiln__grad_Neg(kiln__grad_ctx *gc) {
    gc->dx[0] = kiln__gb_op1(gc, "Neg", gc->dy[0]);
    return gc->status;
}

// Y = exp(X): dX = dY * Y
kiln_status kiln__grad_Exp(kiln__grad_ctx *gc) {
    gc->dx[0] = kiln__gb_op2(gc, "Mul", gc->dy[0], OUT(0));
    return gc->status;
}

// Y = log(X): dX = dY / X
kiln_status kiln__grad_Log(kiln__grad_ctx *gc) {
    gc->dx[0] = kiln__gb_op2(gc, "Div", gc->dy[0], IN(0));
    return gc->status;
}

// Y = sqrt(X): dX = dY * 0.5 / Y
kiln_status kiln__grad_Sqrt(kiln__grad_ctx *gc) {
    int half = kiln__gb_scalar(gc, OUT(0), 0.5);
    gc->dx[0] = kiln__gb_op2(gc, "Div", kiln__gb_op2(gc, "Mul", gc->dy[0], half), OUT(0));
    return gc->status;
}

/* dX = op(dY, Y) for the activations whose gradient reads their output. */
static kiln_status act_grad(kiln__grad_ctx *gc, const char *op) {
    int in[2] = {gc->dy[0], OUT(0)};
    gc->dx[0] = kiln__gb_node(gc, op, "kiln", 2, in, "grad_act", NULL);
    return gc->status;
}

kiln_status kiln__grad_Relu(kiln__grad_ctx *gc) { return act_grad(gc, "ReluGrad"); }
kiln_status kiln__grad_Sigmoid(kiln__grad_ctx *gc) { return act_grad(gc, "SigmoidGrad"); }
kiln_status kiln__grad_Tanh(kiln__grad_ctx *gc) { return act_grad(gc, "TanhGrad"); }

// Y = x if x > 0 else alpha * x: dX = dY where X > 0, else alpha * dY
kiln_status kiln__grad_LeakyRelu(kiln__grad_ctx *gc) {
    int x = IN(0), dy = gc->dy[0];
    float alpha = kiln__attr_f(kiln__gb_fwd(gc), "alpha", 0.01f);
    int pos = kiln__gb_op2(gc, "Greater", x, kiln__gb_scalar(gc, x, 0));
    int in[3] = {pos, dy, kiln__gb_op2(gc, "Mul", dy, kiln__gb_scalar(gc, x, alpha))};
    gc->dx[0] = kiln__gb_node(gc, "Where", "", 3, in, "grad_leaky_relu", NULL);
    return gc->status;
}

// Y = min(max(X, lo), hi): dX = dY where lo <= X <= hi, else 0 (bounds: inputs from
// opset 11, attributes min/max before; each optional)
kiln_status kiln__grad_Clip(kiln__grad_ctx *gc) {
    const kiln__node *nd = kiln__gb_fwd(gc);
    int x = IN(0), dy = gc->dy[0], lo = -1, hi = -1, inside = -1;
    if (nd->opset >= 11) {
        lo = IN(1);
        hi = IN(2);
    } else {
        if (kiln__attr_find(nd, "min")) lo = kiln__gb_scalar(gc, x, kiln__attr_f(nd, "min", 0));
        if (kiln__attr_find(nd, "max")) hi = kiln__gb_scalar(gc, x, kiln__attr_f(nd, "max", 0));
    }
    if (lo >= 0) inside = kiln__gb_op1(gc, "Not", kiln__gb_op2(gc, "Less", x, lo));
    if (hi >= 0) {
        int below = kiln__gb_op1(gc, "Not", kiln__gb_op2(gc, "Greater", x, hi));
        inside = inside >= 0 ? kiln__gb_op2(gc, "And", inside, below) : below;
    }
    if (inside < 0) {
        gc->dx[0] = dy;
        return gc->status;
    }
    int in[3] = {inside, dy, kiln__gb_scalar(gc, OUT(0), 0)};
    gc->dx[0] = kiln__gb_node(gc, "Where", "", 3, in, "grad_clip", NULL);
    return gc->status;
}

// Y = erf(X): dX = dY * 2/sqrt(pi) * exp(-X^2)
kiln_status kiln__grad_Erf(kiln__grad_ctx *gc) {
    int x = IN(0);
    int e = kiln__gb_op1(gc, "Exp", kiln__gb_op1(gc, "Neg", kiln__gb_op2(gc, "Mul", x, x)));
    int k = kiln__gb_scalar(gc, x, 1.1283791670955126); /* 2 / sqrt(pi) */
    gc->dx[0] = kiln__gb_op2(gc, "Mul", gc->dy[0], kiln__gb_op2(gc, "Mul", e, k));
    return gc->status;
}

// Y = |X|: dX = dY * sign(X) (0 at 0)
kiln_status kiln__grad_Abs(kiln__grad_ctx *gc) {
    gc->dx[0] = kiln__gb_op2(gc, "Mul", gc->dy[0], kiln__gb_op1(gc, "Sign", IN(0)));
    return gc->status;
}

// Y = log(1 + exp(X)): dX = dY * sigmoid(X)
kiln_status kiln__grad_Softplus(kiln__grad_ctx *gc) {
    gc->dx[0] = kiln__gb_op2(gc, "Mul", gc->dy[0], kiln__gb_op1(gc, "Sigmoid", IN(0)));
    return gc->status;
}

// Y = A ^ B: dA = dY * B * A^(B-1), dB = dY * Y * log(A)
kiln_status kiln__grad_Pow(kiln__grad_ctx *gc) {
    int a = IN(0), b = IN(1), dy = gc->dy[0];
    if (NEED(0)) {
        int b1 = kiln__gb_op2(gc, "Sub", b, kiln__gb_scalar(gc, b, 1));
        int d = kiln__gb_op2(gc, "Mul", b, kiln__gb_op2(gc, "Pow", a, b1));
        gc->dx[0] = kiln__gb_sum_to(gc, kiln__gb_op2(gc, "Mul", dy, d), a);
    }
    if (NEED(1)) {
        int d = kiln__gb_op2(gc, "Mul", OUT(0), kiln__gb_op1(gc, "Log", a));
        gc->dx[1] = kiln__gb_sum_to(gc, kiln__gb_op2(gc, "Mul", dy, d), b);
    }
    return gc->status;
}
