/* src/cpu/kernels/gemm_f32_generic.c: the portable C tile kernel of the f32
 * GEMM (4x16 tile; the compiler vectorizes the column loop with whatever the
 * base ISA offers). Used where no SIMD path applies, and as a check on them. */
#include "cpu/kernels/gemm_f32_impl.h"

#define GEN_MR 4
#define GEN_NR 16

/* C (mr,nr) = epilogue(pa (kc,MR) x pb (kc,NR)); see kiln__sgemm_tile_fn. */
static void tile_generic(int mr, int nr, int64_t kc, const void *pav, const void *pbv, float *c,
                         int64_t ldc, const kiln__gemm_tile_ep *ep) {
    const float *restrict pa = pav, *restrict pb = pbv;
    float acc[GEN_MR][GEN_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        const float *a = pa + k * GEN_MR, *b = pb + k * GEN_NR;
        for (int i = 0; i < GEN_MR; i++)
            for (int j = 0; j < GEN_NR; j++) acc[i][j] += a[i] * b[j];
    }
    for (int i = 0; i < mr; i++) {
        float *crow = c + i * ldc;
        for (int j = 0; j < nr; j++) {
            float v = ep->alpha * acc[i][j];
            if (ep->beta != 0.0f) v += ep->beta * crow[j];
            if (ep->last) {
                if (ep->bias_col) v += ep->bias_col[j];
                if (ep->bias_row) v += ep->bias_row[i];
                if (ep->res) v += ep->res[i * ep->ldr + j];
                v = kiln__gemm_act_f32(v, ep);
            }
            crow[j] = v;
        }
    }
}

const kiln__sgemm_kernel kiln__sgemm_kernel_generic = {
    .isa = KILN__GEMM_ISA_GENERIC,
    .compute = KILN__GEMM_F32,
    .mr = GEN_MR,
    .nr = GEN_NR,
    .kc = 256,
    .nc = 512,
    .mc = 4 * 252,
    .kgroup = 1,
    .esize = 4,
    .tile = tile_generic,
};
