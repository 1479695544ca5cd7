/* src/cpu/kernels/conv_depthwise.h: the kernels of the depthwise convolution
 * algorithm (conv_depthwise.c), portable C there, AVX-512 in
 * x86/conv_depthwise_avx512.c and AVX2 in x86/conv_depthwise_avx2.c.
 * Internal to src/cpu/kernels.
 *
 * Geometry of one channel plane (fixed at plan time): input (H,W), output
 * (P,Q), kernel (R,S); output (p, q) and tap (r, s) read input row
 * p*sh - ph + r*dh, column q*sw - pw + s*dw. Taps that fall in the padding
 * are skipped, as the reference skips them (NaN/Inf in weights meet only
 * real inputs), and the others are summed in f32 after the bias:
 *   y[p,q] = act(bias + sum over taps inside X of w[r,s] * x[...] + z[p,q])
 * z (the residual of kiln.FusedConv) and act are optional (act NONE for Conv).
 *
 * Two ways through a plane, both cut into units so threads can share one:
 *   row kernels   unit = one output row; any stride and padding. The row
 *                 kernel proper (kiln__dw_row_*) gets the R input row pointers
 *                 (NULL for rows in the padding) and writes one output row.
 *   flat kernel   unit = 16 consecutive outputs of the flattened plane
 *                 (P*Q): short rows (7x7, 14x14) fill whole vectors instead
 *                 of one short row each. Output i and tap (r, s) must read
 *                 element i + tapoff[r*S + s] of some plane of row length Q:
 *                 - direct: the input itself when sh == sw == 1 and Q == W;
 *                 - phased: otherwise the input is first split, per plane,
 *                   into sh*sw phase planes of Hp = ceil(H/sh) rows of Q
 *                   (space to depth: phase (rho, sigma) [u][v] = x[u*sh + rho]
 *                   [v*sw + sigma]), which turns stride 2 into stride 1; it
 *                   needs every input column a tap reads to land at v < Q
 *                   (kiln__dw_phase_ok: true for "same"-padded layers).
 *                 Lane masks skip the padding taps: a table of the whole
 *                 plane (vector, tap) when it is small (always when phased),
 *                 else (direct only) column masks that repeat every `period`
 *                 vectors and row masks from the flat index.
 *   padded rows   (AVX2) unit = one output row; the input rows a block of
 *                 output rows reads are first copied into padded phase
 *                 planes (below), where every tap is inside, so the kernel
 *                 needs no masks.
 */
#ifndef KILN_CPU_KERNELS_CONV_DEPTHWISE_H
#define KILN_CPU_KERNELS_CONV_DEPTHWISE_H

#include <stdint.h>

#include "ops/fused.h"

/* Plane geometry, fixed at plan time. */
typedef struct kiln__dw_geom {
    int64_t H, W, P, Q;       /* input / output plane */
    int64_t R, S;             /* kernel */
    int64_t sh, sw, dh, dw;   /* strides, dilations */
    int64_t ph, pw;           /* begin pads */
    const int64_t *qlo, *qhi; /* [S]: column tap s is inside for q in [qlo[s], qhi[s]) */
    kiln__act act;            /* applied last (NONE: none) */
    /* row kernels (AVX-512): kiln__dw_row_masks's table, or NULL */
    const uint16_t *vmask;
    /* flat kernel only: tapmask and tapoff, or colmask and period */
    const uint16_t *tapmask;  /* kiln__dw_flat_tapmasks's table (small planes), or NULL */
    const int64_t *tapoff;    /* [R*S] with tapmask or padded: offset of tap (r, s)
                                 (kiln__dw_tapoffs) */
    int phased;               /* with tapmask: taps read the phase planes */
    int padded;               /* AVX2 kernel: taps read the padded phase planes */
    int64_t Hp;               /* phase plane rows: ceil(H / sh); padded: window rows */
    int64_t Wp;               /* padded phase plane columns */
    int64_t period;           /* vectors after which the column masks repeat */
    const uint16_t *colmask;  /* [period][S]: lanes of vector v whose column tap s is
                                 inside, at [(v % period) * S + s] */
} kiln__dw_geom;

#define KILN__DW_NB 4 /* output vectors the AVX-512 kernels keep in flight */

/* The row kernels' mask table: for output vector v of a row (16 outputs
 * from q = 16v) and column tap s, at [(v*S + s)*3]: the lanes whose tap is
 * inside the row, then (stride 2) the input elements x[0..16), x[16..31)
 * from the vector's first tap column that lie inside the row (what the two
 * loads may read). KILN__DW_NB - 1 all-zero vectors follow the row's
 * ceil(Q/16), so kernels run whole groups of vectors. Entries: */
static inline int64_t kiln__dw_row_masks_len(int64_t Q, int64_t S) {
    return ((Q + 15) / 16 + KILN__DW_NB - 1) * S * 3;
}
void kiln__dw_row_masks(const kiln__dw_geom *d, uint16_t *table);

/* The flat kernel's column masks: they repeat every Q / gcd(Q, 16) vectors
 * (the period); table [period][S] (kiln__dw_geom.colmask). */
int64_t kiln__dw_flat_period(int64_t Q);
void kiln__dw_flat_masks(const kiln__dw_geom *d, uint16_t *table);
/* The flat kernel's whole-plane table (small planes): for vector v of the
 * plane and tap (r, s), at [v*R*S + r*S + s], the lanes whose tap is inside
 * (row and column); KILN__DW_NB - 1 all-zero vectors follow the plane's
 * ceil(P*Q/16). Entries: */
static inline int64_t kiln__dw_flat_tapmasks_len(const kiln__dw_geom *d) {
    return ((d->P * d->Q + 15) / 16 + KILN__DW_NB - 1) * d->R * d->S;
}
void kiln__dw_flat_tapmasks(const kiln__dw_geom *d, uint16_t *table);
/* 1 if the phase planes of d hold every input column its taps read. */
int kiln__dw_phase_ok(const kiln__dw_geom *d);
/* Phase planes (sh*sw of Hp x Q floats) of d, in floats. */
static inline int64_t kiln__dw_phase_len(const kiln__dw_geom *d) {
    return d->sh * d->sw * ((d->H + d->sh - 1) / d->sh) * d->Q;
}
/* tapoff[R*S] of d (d->phased or d->padded, and their fields, set). */
void kiln__dw_tapoffs(const kiln__dw_geom *d, int64_t *tapoff);

/* d = the plane geometry of g (its act too), column ranges in ranges[2*S];
 * no tables, no kernel-specific fields. */
struct kiln__conv2d;
void kiln__dw_geom_init(kiln__dw_geom *d, const struct kiln__conv2d *g, int64_t *ranges);

/* One output plane's operands. */
typedef struct kiln__dw_plane {
    const float *x;    /* input plane (H,W), or its phase planes (d->phased) */
    const float *w;    /* taps (R,S) */
    float bias;
    const float *z;    /* residual plane (P,Q), or NULL */
    float *y;          /* output plane (P,Q) */
    const float **rows; /* scratch: KILN__DW_NB * R row pointers (row kernels) */
    float *buf;        /* scratch: kiln__dw_pad_scratch_len floats (padded kernel) */
} kiln__dw_plane;

/* Padded phase planes (the AVX2 kernel's input): the input zero-padded
 * (xpad[i][j] = x[i - ph][j - pw] inside the input, else 0) and split by
 * stride into sh*sw planes of Wp columns, phase (rho, sigma) [u][v] =
 * xpad[u*sh + rho][v*sw + sigma]. Output (p, q) and tap (r, s) read phase
 * ((r*dh) % sh, (s*dw) % sw) at row p + r*dh / sh, column q + s*dw / sw, so
 * Wp = Q + (S-1)*dw / sw columns hold every read. The kernel works on a
 * block of kiln__dw_pad_block_rows output rows at a time (Wp each, 2048
 * floats: in L1) and keeps a window of Hp = those rows + (R-1)*dh / sh
 * rows of each phase plane (kiln__dw_pad_plane_stride apart); tap t's
 * offset from p*Wp + q, p and the window's rows counted from the block's
 * first, is kiln__dw_tapoffs's. kiln__dw_pad_geom sets d->padded, Wp and
 * Hp. The kernel's scratch: the window, with slack for the vectors that run
 * past its last row, then the block's outputs. */
void kiln__dw_pad_geom(kiln__dw_geom *d);
/* Floats from one padded plane to the next: 8 between them take the spill
 * of a plane's last row (the fill stores whole vectors). */
static inline int64_t kiln__dw_pad_plane_stride(const kiln__dw_geom *d) {
    return d->Hp * d->Wp + 8;
}
static inline int64_t kiln__dw_pad_planes_len(const kiln__dw_geom *d) {
    return d->sh * d->sw * kiln__dw_pad_plane_stride(d) + 64 + (d->S - 1) * d->dw / d->sw;
}
/* Output rows per block: 2048 outputs' worth (Wp each), at least one. */
static inline int64_t kiln__dw_pad_block_rows(const kiln__dw_geom *d) {
    return 2048 / d->Wp > 1 ? 2048 / d->Wp : 1;
}
static inline int64_t kiln__dw_pad_scratch_len(const kiln__dw_geom *d) {
    return kiln__dw_pad_planes_len(d) + kiln__dw_pad_block_rows(d) * d->Wp + 64;
}

/* Computes units [lo, hi) of one output plane (rows or 16-output vectors). */
typedef void (*kiln__dw_plane_fn)(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo,
                                  int64_t hi);

/* Row kernel proper: output row y (Q) = bias + the taps of rows[0..R) (NULL:
 * padding row, skipped), no residual; d->act applied by the AVX-512 one only
 * (the portable one leaves it to kiln__dw_rows_generic). */
typedef void (*kiln__dw_row_fn)(const kiln__dw_geom *d, const float *const *rows,
                                const float *w, float bias, float *y);

void kiln__dw_row_generic(const kiln__dw_geom *d, const float *const *rows, const float *w,
                          float bias, float *y);
/* Rows [lo, hi) of a plane, portable: kiln__dw_row_generic, then z and act. */
void kiln__dw_rows_generic(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo,
                           int64_t hi);

#if defined(__x86_64__) || defined(__i386__)
#define KILN__DW_X86 1
/* Largest Q and R, S kiln__dw_row_avx512 takes (its tables live on the
 * stack; beyond, it runs the portable row). */
#define KILN__DW_ROW_QMAX 1024
#define KILN__DW_KMAX 16
/* These need AVX-512F (kiln__cpu_has_avx512f checks the CPU). */
void kiln__dw_row_avx512(const kiln__dw_geom *d, const float *const *rows, const float *w,
                         float bias, float *y);
/* Row kernel for this geometry (3x3 and 5x5 unrolled, stride 1, 2 or any). */
kiln__dw_plane_fn kiln__dw_rows_avx512_pick(const kiln__dw_geom *d);
/* Flat kernel for this geometry (d->tapmask or d->colmask set). */
kiln__dw_plane_fn kiln__dw_flat_avx512_pick(const kiln__dw_geom *d);
/* Copies input rows [ih0, ih1) of plane x into the phase planes ph
 * (kiln__dw_phase_len floats): phase (rho, sigma) [u][v] = x[u*sh + rho]
 * [v*sw + sigma] for the columns v < Q inside the row; the rest is left
 * alone (the flat kernel's masks never read it). */
void kiln__dw_phase_fill_avx512(const kiln__dw_geom *d, const float *x, float *ph, int64_t ih0,
                                int64_t ih1);
/* Rows kernel over the padded phase planes (d->padded, d->tapoff), AVX2 +
 * FMA (x86/conv_depthwise_avx2.c; the caller checks the CPU): what CPUs
 * without AVX-512 run, for planes whose weights are all finite. */
kiln__dw_plane_fn kiln__dw_pad_avx2_pick(const kiln__dw_geom *d);
#endif

/* 1 if the flat kernel can run geometry d (sh == sw == 1, Q == W). */
static inline int kiln__dw_flat_ok(const kiln__dw_geom *d) {
    return d->sh == 1 && d->sw == 1 && d->Q == d->W;
}

#endif
