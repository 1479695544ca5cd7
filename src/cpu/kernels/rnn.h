/* src/cpu/kernels/rnn.h: the gate kernels of the fast LSTM / GRU algorithms
 * (rnn.c), internal to src/cpu/kernels.
 *
 * The algorithms compute the gate pre-activations with GEMMs (the input
 * projection x W^T + biases for all time steps at once, then h R^T once per
 * step) and hand the elementwise rest of a step to these kernels, one call
 * per batch row and slice of hidden units. A slice of n hidden units keeps
 * its gates as consecutive blocks of n floats (LSTM: i, o, f, c; GRU: z, r,
 * h), in the projection row and in the recurrent product row alike.
 *
 * Three implementations: scalar C (libm expf/tanhf), AVX2 and AVX-512F
 * (vmath.h's exp/tanh, a few ulp, masked tails, NaN propagating; one source,
 * rnn_gates_simd.h), picked at run time.
 * All arithmetic is f32. */
#ifndef KILN_CPU_KERNELS_RNN_H
#define KILN_CPU_KERNELS_RNN_H

#include <stdint.h>

#include "cpu/kernels/gemm.h"

/* One LSTM row slice (ONNX LSTM, activations Sigmoid/Tanh/Tanh):
 *   i = sig(clip(proj_i + rec_i + Pi*c))     f = sig(clip(proj_f + rec_f + Pf*c))
 *   g = tanh(clip(proj_c + rec_c))           (input_forget: f = 1 - i)
 *   c' = f*c + i*g    o = sig(clip(proj_o + rec_o + Po*c'))    h' = o*tanh(c') */
typedef struct kiln__rnn_lstm_row {
    int64_t n;           /* hidden units in the slice */
    const float *proj;   /* (4, n): x W^T + Wb + Rb, blocks i, o, f, c */
    const float *rec;    /* (4, n): h R^T */
    const float *pi, *po, *pf; /* (n) peepholes, or all NULL */
    int has_clip;
    float clip;          /* clip(v) = min(max(v, -clip), clip) when has_clip */
    int input_forget;
    float *c;            /* (n) cell state: read, then overwritten with c' */
    float *h;            /* (n) h' out */
} kiln__rnn_lstm_row;

/* One GRU row slice (ONNX GRU, activations Sigmoid/Tanh), in two calls:
 *   gru_zr: z = sig(clip(proj_z + rec_z)), r = sig(clip(proj_r + rec_r)),
 *           written over rec (blocks 0 and 1); when rh: rh = r * h_prev.
 *   gru_h:  lbr 0: n = tanh(clip(proj_h + rec_h))     (rec_h = Rh (r*h) + ...)
 *           lbr 1: n = tanh(clip(proj_h + r * rec_h)) (rec_h = Rh h + Rbh)
 *           h' = (1 - z) * n + z * h_prev
 * with rec's blocks z, r already holding the gates (after gru_zr). */
typedef struct kiln__rnn_gru_row {
    int64_t n;
    const float *proj;   /* (3, n): x W^T + biases, blocks z, r, h */
    float *rec;          /* (3, n): h R^T (+ Rbh with lbr 1); z, r overwritten */
    const float *h_prev; /* (n) */
    float *rh;           /* (n) gru_zr's r * h_prev out, or NULL */
    int lbr;             /* linear_before_reset */
    int has_clip;
    float clip;
    float *h;            /* (n) gru_h's h' out (may not alias h_prev) */
} kiln__rnn_gru_row;

typedef struct kiln__rnn_gates {
    const char *name; /* "generic", "avx2", "avx512" */
    void (*lstm)(const kiln__rnn_lstm_row *a);
    void (*gru_zr)(const kiln__rnn_gru_row *a);
    void (*gru_h)(const kiln__rnn_gru_row *a);
    /* x[j] = sigmoid(x[j]) / tanh(x[j]) for j < n, in place (the gradient
     * kernels' forward, rnn_grad.c, which keeps every gate). */
    void (*sigmoid)(float *x, int64_t n);
    void (*tanh)(float *x, int64_t n);
} kiln__rnn_gates;

extern const kiln__rnn_gates kiln__rnn_gates_generic;
#if defined(__x86_64__) || defined(__i386__)
#define KILN__RNN_X86 1
extern const kiln__rnn_gates kiln__rnn_gates_avx2;
extern const kiln__rnn_gates kiln__rnn_gates_avx512;
#endif

/* The gate kernels for isa: AUTO gives the best this CPU runs, GENERIC the
 * scalar ones, AVX2 / AVX512 the vector ones; NULL when the CPU lacks isa. */
const kiln__rnn_gates *kiln__rnn_gates_for(kiln__gemm_isa isa);

#endif
