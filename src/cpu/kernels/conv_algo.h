/* src/cpu/kernels/conv_algo.h: what the f32 convolution algorithms (Conv and
 * kiln.FusedConv; src/ops/algo.h) share: the 2-D geometry read from a node,
 * the fused epilogue (bias, residual Z, activation) expressed for the GEMM,
 * the split of a convolution's work into independent items for the threads,
 * and the cost model. Internal to src/cpu/kernels.
 *
 * Layouts (NCHW, as ONNX): x: (N,C,H,W), w: (K,C/G,R,S), b: (K), z and y:
 * (N,K,P,Q). For group g, image n:
 *     Y[n, g*Kg:(g+1)*Kg] (Kg, P*Q) = W_g (Kg, Cg*R*S) x cols (Cg*R*S, P*Q)
 * so the output channel is the GEMM row and the bias is per row.
 *
 * Algorithms (one file each):
 *   conv_gemm.c       conv_1x1 (one GEMM per image, stride > 1 by gathering)
 *                     and conv_im2col (any 2-D conv, im2col in column tiles)
 *   conv_depthwise.c  conv_depthwise (group == C, direct; x86/ AVX-512 rows)
 *   winograd.c        conv_winograd_f2 / conv_winograd_f4 (3x3, stride 1)
 *   conv_grad.c       conv_grad_gemm: kiln.ConvGrad (training) as GEMMs
 * (The blocked layout's algorithms, kiln.ConvNCHWc, are conv_nchwc.c and
 * conv_nchwc_winograd.c; they share the Winograd transforms' formulas and
 * weights, winograd.h.)
 * 1-D and 3-D convolutions stay on the reference kernel.
 */
#ifndef KILN_CPU_KERNELS_CONV_ALGO_H
#define KILN_CPU_KERNELS_CONV_ALGO_H

#include "cpu/kernels/gemm.h"
#include "ops/algo.h"
#include "ops/fused.h"

/* Geometry and operands of a 2-D f32 convolution node. Along each spatial
 * dim, output o and tap j read input o*stride - pad + j*dil (zero outside). */
typedef struct kiln__conv2d {
    int64_t N, C, K, G;   /* batch, input / output channels, groups */
    int64_t Cg, Kg;       /* channels per group (input, output) */
    int64_t H, W, P, Q;   /* input and output spatial sizes */
    int64_t R, S;         /* kernel */
    int64_t sh, sw;       /* strides */
    int64_t dh, dw;       /* dilations */
    int64_t ph, pw;       /* begin pads (end pads are implied by P, Q) */
    int fused;            /* kiln.FusedConv (act, Z) rather than Conv */
    int has_bias, has_z;  /* B and Z inputs present */
    kiln__act act;        /* NONE for Conv */
} kiln__conv2d;

/* Reads the geometry of c's node (Conv or kiln.FusedConv) for an algorithm's
 * prepare: KILN_E_UNSUPPORTED unless X, W, B, Z and Y are f32 and the conv
 * is 2-D; infer already validated the attributes and shapes. */
kiln_status kiln__conv2d_read(const kiln__kctx *c, kiln__conv2d *g);
/* The same from X, W and Y (y: the output's shape, e.g. a gradient of it)
 * with c's node's window attributes; no bias, residual or activation. */
kiln_status kiln__conv2d_geometry(const kiln__kctx *c, const kiln_tensor *x,
                                  const kiln_tensor *w, const kiln_tensor *y, kiln__conv2d *g);
/* Tap (r, s) of a convolution with unit strides whose output rows are as
 * wide as its input rows (sh = sw = 1, Q = W), seen flat: output pixel
 * j = p*Q + q reads input element j + delta of its channel when p is in
 * [plo, phi) and q in [qlo, qhi), else padding. All of them lie in the span
 * [lo, hi) (empty: lo = hi), inside which the pixels whose column is outside
 * [qlo, qhi) would read across a row's edge: im2col and its adjoint copy the
 * span at once and fix those few up. */
typedef struct kiln__conv_flat_tap {
    int64_t delta, plo, phi, qlo, qhi, lo, hi;
} kiln__conv_flat_tap;
/* 1 and *t for tap (r, s) if g has the flat form; 0 if not. */
int kiln__conv_flat_tap_of(const kiln__conv2d *g, int64_t r, int64_t s, kiln__conv_flat_tap *t);

/* cols (Cg*R*S, nbk) = columns [j0, j0+nbk) of the im2col matrix of one image
 * and group: row (c, r, s), column j = p*Q + q holds
 * x[c, p*sh - ph + r*dh, q*sw - pw + s*dw] (0 outside). x: (Cg, H, W). */
void kiln__conv_im2col(const kiln__conv2d *g, const float *x, int64_t j0, int64_t nbk,
                       float *restrict cols);

/* Run time: the operands of c (NULL when absent). */
typedef struct kiln__conv_io {
    const float *x, *w, *b, *z;
    float *y;
} kiln__conv_io;
void kiln__conv_io_get(const kiln__kctx *c, kiln__conv_io *io);

/* KILN_OK if a GEMM-based algorithm computing in ct suits c's session and
 * this CPU: F32 always (also in a bf16 session, where it competes on cost),
 * BF16 (bf16 products, f32 sums) only when the session asks for bf16 and the
 * GEMM runs it here; else KILN_E_UNSUPPORTED. Each GEMM-based algorithm is
 * registered as <name> (F32) and <name>_bf16, except Winograd F4 (f32 only:
 * its transforms amplify bf16 rounding past 1e-2). */
kiln_status kiln__conv_accept_compute(const kiln__kctx *c, kiln__gemm_compute ct);

/* Fills the epilogue fields of a GEMM whose rows are output channels:
 * bias (ROW, `bias` = B already offset to the first row, or NULL), residual
 * z (already offset, leading dimension ldz, or NULL) and g's activation. */
void kiln__conv_gemm_epilogue(const kiln__conv2d *g, kiln__gemm_args *a, const float *bias,
                              const float *z, int64_t ldz);

/* y (m, n), leading dimension ld = act(y + bias[row] + z) with z (m, n) of
 * the same leading dimension (bias, z NULL: absent), vectorized through the
 * GEMM's epilogue (a K == 0 product). Nothing to do when g has no bias, no Z
 * and no activation and bias/z are NULL. */
void kiln__conv_epilogue_rows(const kiln__conv2d *g, float *y, int64_t m, int64_t n, int64_t ld,
                              const float *bias, const float *z);

/* ---- work split ------------------------------------------------------------
 * An algorithm cuts its run into `base` independent blocks (images x column
 * or tile blocks) of M output rows each; when the blocks do not spread
 * evenly (within 15%) over nth threads it also cuts M into the fewest chunks
 * that do (the threads then redo the cheap
 * per-block step, im2col or input transform, for their own chunk). Items
 * are (block, chunk) with the chunk varying fastest; thread ith runs items
 * kiln__split(items, ith, nth). */
int64_t kiln__conv_mchunks(int64_t base, int64_t M, int nth, int64_t align);
/* Rows [*lo, *hi) of M in chunk i of nch, boundaries at multiples of align. */
void kiln__conv_chunk(int64_t M, int64_t align, int64_t i, int64_t nch, int64_t *lo, int64_t *hi);

/* Threads the plan runs on (>= 1). */
static inline int kiln__conv_nth(const kiln__kctx *c) { return c->nth_plan > 0 ? c->nth_plan : 1; }

/* Rounds bytes up to a 64-byte multiple (scratch slices). */
static inline size_t kiln__conv_align64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* ---- cost model --------------------------------------------------------------- */

/* The direct operation count 2*N*K*P*Q*Cg*R*S (c->flops of every algorithm,
 * Winograd included, so GFLOP/s compare). */
double kiln__conv_direct_flops(const kiln__conv2d *g);
/* Bytes of X, W and Y (and Z) one run touches at least once. */
double kiln__conv_io_bytes(const kiln__conv2d *g);
/* Fraction of f32 peak a packed GEMM of (m, n, k) computing in ct reaches
 * (small dims waste the register tile and the pipeline; bf16 does twice the
 * products per instruction). */
double kiln__conv_gemm_efficiency(double m, double n, double k, kiln__gemm_compute ct);

/* Scratch bytes kiln__sgemm needs on nth threads for a product of (m, n, k)
 * computing in `compute`, A the packed buffer packed_a when not NULL, B
 * packed_b when not NULL (transposes do not change it). */
size_t kiln__conv_gemm_scratch(int64_t m, int64_t n, int64_t k, kiln__gemm_compute compute,
                               const void *packed_a, const void *packed_b, int nth);
/* dst[t] = src[2*t] for t in [0, n): the stride-2 row copy of the im2col
 * gathers. Reads src[0 .. 2n-2] only. AVX-512 where the CPU has it. */
void kiln__copy_stride2(float *restrict dst, const float *restrict src, int64_t n);
/* dst[c*ldd + r] = src[r*lds + c] for r < rows, c < cols (no overlap). */
void kiln__transpose_f32(const float *restrict src, int64_t lds, int64_t rows, int64_t cols,
                         float *restrict dst, int64_t ldd);
/* Tests: nonzero makes the two above take their portable loops. */
extern int kiln__conv_copy_portable_only;
/* Tests: the layout of the GEMM convolutions prepared afterwards (conv_gemm.c):
 * 0 the cheaper (default), 1 channel-major, 2 spatial-major where W is constant. */
extern int kiln__conv_gemm_layout;
/* Tests: bytes of a thread's band buffer in conv_dw_nchwc (prepared
 * afterwards); less makes shorter bands. */
extern size_t kiln__conv_dw_buf_bytes;

#endif
