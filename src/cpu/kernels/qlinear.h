/* src/cpu/kernels/qlinear.h: what the 8-bit integer algorithms share
 * (qlinear_matmul.c: QLinearMatMul, MatMulInteger; qlinear_conv.c:
 * QLinearConv, ConvInteger), all on the u8 x s8 GEMM (gemm_u8s8.h).
 * Internal to src/cpu/kernels.
 *
 * These run models that are quantized already (ONNX QLinear* / *Integer
 * ops, as onnxruntime's quantizer writes them), so they accept their nodes
 * whatever the session's precision, and their results are bit-identical to
 * the reference kernels (src/cpu/ref/matmul.c, conv.c):
 *
 *   - the weights (constant, known at prepare) become the GEMM's packed B,
 *     s8; u8 weights are shifted by -128 with their zero point (w - wz =
 *     (w - 128) - (wz - 128), exact); s8 activations likewise become u8 by
 *     +128 (x ^ 0x80) with their zero point;
 *   - the GEMM writes exact s32 sums; the requantization below then does the
 *     reference's own double-precision operations, so every output byte is
 *     the reference's (the GEMM's float epilogue rounds differently);
 *   - the sums are exact while K * 255 * 255 < 2^31 (K <= KILN__Q_MAX_K);
 *     longer products are refused (the reference sums in 64 bits).
 *
 * Work split: the product's columns (the weights' output channels) are cut
 * into chunks at prepare, each packed on its own, so that (row block, column
 * chunk) items spread over the plan's threads; each thread runs the GEMM on
 * one thread (ith 0, nth 1) into its own scratch slice and requantizes its
 * block while it is in cache. No barrier is needed except where a phase
 * before the items (conv: the NCHW -> NHWC transpose of X) feeds them.
 *
 * Tests force the GEMM's generic C path through kiln__qlinear_isa.
 */
#ifndef KILN_CPU_KERNELS_QLINEAR_H
#define KILN_CPU_KERNELS_QLINEAR_H

#include "cpu/kernels/gemm_u8s8.h"
#include "ops/algo.h"

/* Longest exact product: K * 255 * 255 <= 2^31 - 1. */
#define KILN__Q_MAX_K 33025

/* The GEMM isa the algorithms prepare with (AUTO: the best this CPU runs;
 * GENERIC also turns off the vector requantization). For tests; read at
 * prepare. */
extern kiln__gemm_isa kiln__qlinear_isa;

/* ---- packed weights ----------------------------------------------------------
 * groups x nch packed B matrices: group g, chunk h holds the GEMM B (K,
 * cols [lo[h], lo[h+1])) of the group's n output channels. */
typedef struct kiln__qw {
    int64_t k, n;         /* per group */
    int64_t groups, nch;
    int64_t lo[65];       /* chunk boundaries (nch + 1 values, multiples of 32) */
    size_t stride;        /* bytes per packed matrix */
    unsigned char *buf;   /* groups * nch * stride bytes (kiln__aligned_alloc) */
} kiln__qw;

#define KILN__Q_MAX_CHUNKS 64

/* Packs bt: (groups * n, k) s8 rows, row j holding output channel j's
 * weights along K (B transposed), with zero points bz (groups * n values,
 * NULL: 0), into w with nch column chunks per group. On failure w is left
 * empty. */
kiln_status kiln__qw_pack(kiln__qw *w, int64_t groups, int64_t n, int64_t k, int64_t nch,
                          const int8_t *bt, const int8_t *bz);
void kiln__qw_free(kiln__qw *w);
/* Packed B of group g, chunk h. */
static inline const void *kiln__qw_at(const kiln__qw *w, int64_t g, int64_t h) {
    return w->buf + (size_t)(g * w->nch + h) * w->stride;
}

/* Element i of weights t (u8 or s8) as s8 (u8 shifted by -128), and
 * element i of their zero point zp of weights of dtype wdt (a scalar
 * repeats; NULL: 0), shifted alike when the weights are u8. */
int8_t kiln__q_weight_s8(const kiln_tensor *t, int64_t i);
int8_t kiln__q_wzero_s8(const kiln_tensor *zp, kiln_dtype wdt, int64_t i);

/* Column chunks for `base` row blocks over the plan's threads (<=
 * KILN__Q_MAX_CHUNKS), boundaries at multiples of 32 (kiln__conv_mchunks). */
int64_t kiln__q_chunks(int64_t base, int64_t n, int nth);

/* ---- parameters ------------------------------------------------------------------- */

/* 1 if t is absent or has one element. */
int kiln__q_is_scalar(const kiln_tensor *t);
/* 1 if t is absent, has one element, or holds n values along its last dim
 * (every other dim 1). */
int kiln__q_is_vec(const kiln_tensor *t, int64_t n);
/* Element j of a scalar-or-vector parameter (0 when t is NULL). */
double kiln__q_param(const kiln_tensor *t, int64_t j);

/* The activation's zero point as the GEMM takes it (u8; s8 shifted +128). */
uint8_t kiln__q_azero_u8(const kiln_tensor *zp, kiln_dtype adt);

/* ---- requantization -------------------------------------------------------------
 * Column j of an s32 block, with bias b[j] (or 0), becomes
 *   QLinearMatMul (zero_in_round 1): nearbyint(acc * mult[j] + yz[j])
 *   QLinearConv   (zero_in_round 0): nearbyint((acc + b) * mult[j]) + yz[j]
 * in double, clamped to the output type's range and stored as the reference
 * stores it. mult, yz and bias are indexed by absolute column. */
typedef struct kiln__qreq {
    kiln_dtype out;          /* KILN_DTYPE_U8 or KILN_DTYPE_I8 */
    int zero_in_round;
    const int32_t *bias;     /* or NULL */
    const double *mult, *yz;
    int vector;              /* 1: the AVX-512 path may run (every mult finite, CPU has it) */
} kiln__qreq;

/* QLinearConv's multiplier: (float)((float)xs * (float)ws) / (float)ys. */
double kiln__q_conv_mult(double xs, double ws, double ys);
/* QLinearMatMul's: (as * bs) rounded to st, divided by ys, rounded to st. */
double kiln__q_matmul_mult(kiln_dtype st, double as, double bs, double ys);
/* Sets q->vector from mult[0..n), the CPU and the GEMM isa the algorithm
 * prepared with (GENERIC: scalar requantization too). */
void kiln__qreq_finish(kiln__qreq *q, int64_t n, kiln__gemm_isa isa);

/* y (rows, cols) of q->out, leading dimension ldy elements = requantized
 * acc (rows, cols) s32 with leading dimension ldacc; columns are col0 ..
 * col0 + cols - 1 of the parameters. */
void kiln__qreq_rows(const kiln__qreq *q, int64_t rows, int64_t cols, const int32_t *acc,
                     int64_t ldacc, int64_t col0, void *y, int64_t ldy);

/* ---- layout helpers ----------------------------------------------------------------- */

/* dst (rows, cols) bytes, leading dimension ldd = src (cols, rows)^T with
 * leading dimension lds, each byte xor'ed with flip (0 or 0x80). */
void kiln__q_transpose_u8(int64_t rows, int64_t cols, const uint8_t *src, int64_t lds,
                          uint8_t *dst, int64_t ldd, uint8_t flip);
/* Same for 4-byte elements. */
void kiln__q_transpose_s32(int64_t rows, int64_t cols, const int32_t *src, int64_t lds,
                           int32_t *dst, int64_t ldd);

/* ---- running items ------------------------------------------------------------------- */

/* Runs fn(arg, ith, nth) on the pool's threads (at most `want`), or on the
 * caller alone when want <= 1. */
void kiln__q_parallel(kiln__kctx *c, int want, kiln__task_fn fn, void *arg);

/* Bytes the GEMM wants for one thread on (m, n, k) with packed B pb and isa. */
size_t kiln__q_gemm_scratch(int64_t m, int64_t n, int64_t k, const void *pb, kiln__gemm_isa isa);

/* Seconds of `ops` integer operations on the u8s8 GEMM in products of
 * (m, n, k) (their shape sets the efficiency), plus `bytes` moved (cost()). */
double kiln__q_cost(const kiln__kctx *c, double ops, double m, double n, double k, double bytes,
                    kiln__gemm_isa isa);

static inline size_t kiln__q_align64(size_t b) { return (b + 63) & ~(size_t)63; }

#endif
