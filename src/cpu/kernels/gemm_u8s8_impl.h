/* src/cpu/kernels/gemm_u8s8_impl.h: what the u8s8 GEMM driver
 * (gemm_u8s8.c) shares with its VNNI tile (x86/gemm_u8s8_avx512.c). Internal
 * to src/cpu/kernels. */
#ifndef KILN_CPU_KERNELS_GEMM_U8S8_IMPL_H
#define KILN_CPU_KERNELS_GEMM_U8S8_IMPL_H

#include <math.h>

#include "cpu/kernels/gemm_f32_impl.h"
#include "cpu/kernels/gemm_u8s8.h"

#define KILN__U8S8_MR 14 /* tile rows */
#define KILN__U8S8_NR 32 /* tile columns (two zmm of s32) */
#define KILN__U8S8_KG 4  /* K bytes per group (one vpdpbusd lane) */

/* The epilogue of one tile, offset to the tile (see gemm_u8s8.h). */
typedef struct kiln__u8s8_tile_ep {
    kiln__gemm_u8s8_out out;
    int relu;
    int32_t a_zero;
    uint32_t k_azero;      /* K * a_zero, wrapped */
    const int32_t *colsum; /* [nr]: sum_k B[k][j] */
    const int32_t *bzero;  /* [nr], or NULL when every b_zero is 0 */
    const int32_t *rowsum; /* [mr]: sum_k A[i][k] (set when bzero is) */
    float a_scale;
    const float *b_scale;  /* [nr] when b_scale_per_col, else [1] */
    int b_scale_per_col;
    const float *bias;     /* [nr] or NULL */
    float y_scale, y_zero; /* U8/S8 */
    float lo, hi;          /* the output type's range (U8/S8) */
} kiln__u8s8_tile_ep;

/* C tile (mr,nr) (element (0,0) at c, leading dimension ldc elements of the
 * output type) = epilogue(pa x pb) over k4 groups of 4 K bytes:
 *   pa: u8, byte (i,k) at ((k/4)*MR + i)*4 + k%4 (rows >= mr: zero)
 *   pb: s8, byte (k,j) at ((k/4)*NR + j)*4 + k%4 (columns >= nr: zero)
 * with K padding zero in both. 1 <= mr <= MR, 1 <= nr <= NR. */
typedef void (*kiln__u8s8_tile_fn)(int mr, int nr, int64_t k4, const uint8_t *pa,
                                   const int8_t *pb, void *c, int64_t ldc,
                                   const kiln__u8s8_tile_ep *ep);

#ifdef KILN__GEMM_X86_VNNI
void kiln__u8s8_tile_avx512(int mr, int nr, int64_t k4, const uint8_t *pa, const int8_t *pb,
                            void *c, int64_t ldc, const kiln__u8s8_tile_ep *ep);
#endif

/* The exact acc of element (i,j) from the raw sum of A*B (wrapping). */
static inline int32_t kiln__u8s8_compensate(uint32_t raw, int i, int j,
                                            const kiln__u8s8_tile_ep *ep) {
    uint32_t v = raw - (uint32_t)ep->a_zero * (uint32_t)ep->colsum[j];
    if (ep->bzero)
        v += (uint32_t)ep->bzero[j] * (ep->k_azero - (uint32_t)ep->rowsum[i]);
    return (int32_t)v;
}

/* The scalar epilogue of one exact acc at column j, written to c[0] (of the
 * output type); the vector one does the same operations. */
static inline void kiln__u8s8_store1(int32_t acc, int j, const kiln__u8s8_tile_ep *ep, void *c) {
    if (ep->out == KILN__GEMM_U8S8_S32) {
        *(int32_t *)c = ep->relu && acc < 0 ? 0 : acc;
        return;
    }
    const float s = ep->a_scale * ep->b_scale[ep->b_scale_per_col ? j : 0];
    float f = s * (float)acc;
    if (ep->bias) f = f + ep->bias[j];
    if (ep->relu && f < 0.0f) f = 0.0f;
    if (ep->out == KILN__GEMM_U8S8_F32) {
        *(float *)c = f;
        return;
    }
    float q = nearbyintf(f / ep->y_scale) + ep->y_zero;
    q = q >= ep->lo ? q : ep->lo; /* NaN -> lo */
    q = q <= ep->hi ? q : ep->hi;
    if (ep->out == KILN__GEMM_U8S8_U8)
        *(uint8_t *)c = (uint8_t)(int)q;
    else
        *(int8_t *)c = (int8_t)(int)q;
}

#endif
