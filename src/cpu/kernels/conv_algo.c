/* src/cpu/kernels/conv_algo.c: geometry, epilogue, work split and cost model
 * shared by the f32 convolution algorithms (conv_algo.h). */
#include <math.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/ref/conv.h"

int kiln__conv_copy_portable_only;

kiln_status kiln__conv2d_geometry(const kiln__kctx *c, const kiln_tensor *x,
                                  const kiln_tensor *w, const kiln_tensor *y, kiln__conv2d *g) {
    memset(g, 0, sizeof *g);
    if (!x || !w || !y || x->ndim != 4 || w->ndim != 4 || y->ndim != 4 ||
        x->dtype != KILN_DTYPE_F32 || w->dtype != KILN_DTYPE_F32 || y->dtype != KILN_DTYPE_F32)
        return kiln__err(KILN_E_UNSUPPORTED, "conv: 2-D f32 convolutions only");
    g->N = x->dims[0];
    g->C = x->dims[1];
    g->H = x->dims[2];
    g->W = x->dims[3];
    g->K = w->dims[0];
    g->Cg = w->dims[1];
    g->R = w->dims[2];
    g->S = w->dims[3];
    g->G = kiln__attr_i(c->node, "group", 1);
    if (g->G < 1 || g->C % g->G != 0 || g->K % g->G != 0 || g->C / g->G != g->Cg)
        return kiln__err(KILN_E_UNSUPPORTED, "conv: group %lld does not fit", (long long)g->G);
    g->Kg = g->K / g->G;
    kiln__win win;
    KILN__TRY(kiln__win_read(c->node, 2, x->dims + 2, w->dims + 2, &win));
    KILN__TRY(kiln__win_forward(&win, 0));
    if (win.out[0] != y->dims[2] || win.out[1] != y->dims[3] || y->dims[0] != g->N ||
        y->dims[1] != g->K)
        return kiln__err(KILN_E_UNSUPPORTED, "conv: output shape does not match the window");
    g->P = win.out[0];
    g->Q = win.out[1];
    g->sh = win.stride[0];
    g->sw = win.stride[1];
    g->dh = win.dil[0];
    g->dw = win.dil[1];
    g->ph = win.pad0[0];
    g->pw = win.pad0[1];
    g->act.kind = KILN__ACT_NONE;
    return KILN_OK;
}

kiln_status kiln__conv2d_read(const kiln__kctx *c, kiln__conv2d *g) {
    const kiln_tensor *b = kiln__in(c, 2);
    const int fused = strcmp(c->node->op_type, "FusedConv") == 0;
    const kiln_tensor *z = fused ? kiln__in(c, 3) : NULL;
    KILN__TRY(kiln__conv2d_geometry(c, kiln__in(c, 0), kiln__in(c, 1), kiln__out(c, 0), g));
    if ((b && b->dtype != KILN_DTYPE_F32) || (z && z->dtype != KILN_DTYPE_F32))
        return kiln__err(KILN_E_UNSUPPORTED, "conv: 2-D f32 convolutions only");
    g->fused = fused;
    g->has_bias = b != NULL;
    g->has_z = z != NULL;
    if (g->fused) KILN__TRY(kiln__act_from_node(c->node, &g->act));
    return KILN_OK;
}

void kiln__conv_io_get(const kiln__kctx *c, kiln__conv_io *io) {
    const kiln_tensor *b = kiln__in(c, 2);
    const kiln_tensor *z = strcmp(c->node->op_type, "FusedConv") == 0 ? kiln__in(c, 3) : NULL;
    io->x = (const float *)c->in[0]->data;
    io->w = (const float *)c->in[1]->data;
    io->b = b ? (const float *)b->data : NULL;
    io->z = z ? (const float *)z->data : NULL;
    io->y = (float *)c->out[0]->data;
}

kiln_status kiln__conv_accept_compute(const kiln__kctx *c, kiln__gemm_compute ct) {
    if (ct == KILN__GEMM_BF16 && c->precision != KILN_PRECISION_BF16)
        return kiln__err(KILN_E_UNSUPPORTED, "conv: bf16 only in a bf16 session");
    if (!kiln__gemm_compute_supported(ct))
        return kiln__err(KILN_E_UNSUPPORTED, "conv: the GEMM cannot compute in %s here",
                         kiln__gemm_compute_name(ct));
    return KILN_OK;
}

void kiln__conv_gemm_epilogue(const kiln__conv2d *g, kiln__gemm_args *a, const float *bias,
                              const float *z, int64_t ldz) {
    a->bias_kind = bias ? KILN__GEMM_BIAS_ROW : KILN__GEMM_BIAS_NONE;
    a->bias = bias;
    a->residual = z;
    a->ldr = z ? ldz : 0;
    a->act_min = g->act.lo;
    a->act_max = g->act.hi;
    switch (g->act.kind) {
    case KILN__ACT_RELU: a->act = KILN__GEMM_ACT_RELU; break;
    case KILN__ACT_CLIP: a->act = KILN__GEMM_ACT_CLIP; break;
    case KILN__ACT_GELU: a->act = KILN__GEMM_ACT_GELU_ERF; break;
    case KILN__ACT_GELU_TANH: a->act = KILN__GEMM_ACT_GELU_TANH; break;
    case KILN__ACT_SILU: a->act = KILN__GEMM_ACT_SILU; break;
    default: a->act = KILN__GEMM_ACT_NONE; break;
    }
}

void kiln__conv_epilogue_rows(const kiln__conv2d *g, float *y, int64_t m, int64_t n, int64_t ld,
                              const float *bias, const float *z) {
    if (!bias && !z && g->act.kind == KILN__ACT_NONE) return;
    if (m <= 0 || n <= 0) return;
    kiln__gemm_args a = {.m = m, .n = n, .k = 0, .alpha = 1.0f, .beta = 1.0f, .c = y, .ldc = ld};
    kiln__conv_gemm_epilogue(g, &a, bias, z, ld);
    /* a K == 0 product packs nothing: its scratch is the alignment slack only */
    _Alignas(64) unsigned char scratch[256];
    a.scratch = scratch;
    if (kiln__sgemm_scratch_bytes(&a, 1) <= sizeof scratch) (void)kiln__sgemm(&a, 0, 1);
}

#if defined(__x86_64__) || defined(__i386__)
void kiln__copy_stride2_avx512(float *restrict dst, const float *restrict src, int64_t n);
void kiln__transpose_f32_avx512(const float *restrict src, int64_t lds, int64_t rows,
                                int64_t cols, float *restrict dst, int64_t ldd);
#endif

/* 1 when the AVX-512 copies run here (the CPU check the GEMM dispatch
 * makes), and no test asked for the portable ones. */
static int copy_avx512(void) {
    return !kiln__conv_copy_portable_only && kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX512);
}

void kiln__copy_stride2(float *restrict dst, const float *restrict src, int64_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (copy_avx512()) {
        kiln__copy_stride2_avx512(dst, src, n);
        return;
    }
#endif
    for (int64_t t = 0; t < n; t++) dst[t] = src[2 * t];
}

void kiln__transpose_f32(const float *restrict src, int64_t lds, int64_t rows, int64_t cols,
                         float *restrict dst, int64_t ldd) {
#if defined(__x86_64__) || defined(__i386__)
    if (copy_avx512()) {
        kiln__transpose_f32_avx512(src, lds, rows, cols, dst, ldd);
        return;
    }
#endif
    for (int64_t r0 = 0; r0 < rows; r0 += 8) /* 8x8 blocks: few streams each way */
        for (int64_t c0 = 0; c0 < cols; c0 += 8)
            for (int64_t c = c0; c < cols && c < c0 + 8; c++)
                for (int64_t r = r0; r < rows && r < r0 + 8; r++)
                    dst[c * ldd + r] = src[r * lds + c];
}

/* ---- work split ------------------------------------------------------------- */

int64_t kiln__conv_mchunks(int64_t base, int64_t M, int nth, int64_t align) {
    if (nth <= 1 || base <= 0 || M <= 0) return 1;
    /* the fewest chunks whose items spread over the threads within 15% of even */
    int64_t units = (M + align - 1) / align, mch = 1;
    for (; mch < units; mch++) {
        int64_t items = base * mch, most = (items + nth - 1) / nth;
        if ((double)most * nth <= 1.15 * (double)items) break;
    }
    return mch;
}

void kiln__conv_chunk(int64_t M, int64_t align, int64_t i, int64_t nch, int64_t *lo, int64_t *hi) {
    int64_t units = (M + align - 1) / align, ulo, uhi;
    kiln__split(units, (int)i, (int)nch, &ulo, &uhi);
    *lo = ulo * align < M ? ulo * align : M;
    *hi = uhi * align < M ? uhi * align : M;
}

/* ---- cost model --------------------------------------------------------------- */

double kiln__conv_direct_flops(const kiln__conv2d *g) {
    return 2.0 * (double)g->N * (double)g->K * (double)g->P * (double)g->Q * (double)g->Cg *
           (double)g->R * (double)g->S;
}

double kiln__conv_io_bytes(const kiln__conv2d *g) {
    double x = (double)g->N * g->C * g->H * g->W, w = (double)g->K * g->Cg * g->R * g->S;
    double y = (double)g->N * g->K * g->P * g->Q;
    return 4.0 * (x + w + y * (g->has_z ? 2 : 1));
}

double kiln__conv_gemm_efficiency(double m, double n, double k, kiln__gemm_compute ct) {
    /* register tiles of 14 x 32; the GEMM runs edge strips with kernels of
     * their own rows (a few rows' cost at least) and edge tiles of <= 16
     * columns with one vector, so only the lanes of those waste */
    double rem_m = m - floor(m / 14.0) * 14.0, rem_n = n - floor(n / 32.0) * 32.0;
    double waste_m = m / (floor(m / 14.0) * 14.0 + (rem_m > 0 ? fmax(rem_m, 4.0) : 0.0));
    double waste_n = n / (floor(n / 32.0) * 32.0 + (rem_n > 0 ? (rem_n <= 16 ? 16.0 : 32.0) : 0.0));
    double e = 0.85 * (m / (m + 8.0)) * (n / (n + 16.0)) * (k / (k + 32.0)) * waste_m * waste_n;
    return ct == KILN__GEMM_BF16 ? 1.8 * e : e;
}
