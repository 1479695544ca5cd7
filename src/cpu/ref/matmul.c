/* src/cpu/ref/matmul.c: reference kernels of Gemm, MatMul, MatMulInteger and
 * QLinearMatMul.
 *
 * One matrix-product core serves all four: an mm_prob describes a batch of
 * products Y[b] (M,N) = A[b] (M,K) x B[b] (K,N) through element strides (so
 * transposes and numpy batch broadcasting cost nothing), with optional
 * scale / zero-point parameters and an emit hook that stores each finished
 * sum. The work is split over the batch*M output rows. Two loops:
 *   - mm_rows_f32: float32 operands and output, float accumulation with a
 *     contiguous inner loop (axpy over B's rows, or dot products when B is
 *     stored transposed); Gemm's alpha/beta/C are applied per finished row;
 *   - mm_row_generic: every other dtype; sums (A - a_zero) * (B - b_zero) in
 *     double (floats) or wrapping int64 (integers) and calls emit.
 */
#if defined(__GNUC__) && !defined(__clang__) /* clang (the fuzz build): its own vectorizer */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <math.h>
#include <string.h>

#include "cpu/ref/conv.h" /* KILN__F32_CLONES */

/* A scale or zero point broadcast over the batch dims and the rows (A side:
 * shape (batch..., M, 1)) or columns (B side: (batch..., 1, N)) of the
 * product. A 1-D parameter of M values on the A side means per row. */
typedef struct mm_param {
    const kiln_tensor *t;        /* NULL: absent (0) */
    int64_t bstr[KILN_MAX_DIMS]; /* element strides over the batch dims */
    int64_t str;                 /* stride over m (A side) or n (B side) */
} mm_param;

enum { P_A_SCALE, P_A_ZERO, P_B_SCALE, P_B_ZERO, P_Y_SCALE, P_Y_ZERO, P_COUNT };

typedef struct mm_prob mm_prob;
/* Stores the finished sum of output element (m, n) at y index yi; acc is the
 * double sum (float operands), iacc the integer one (integer operands);
 * poff: batch offsets of the parameters. */
typedef void (*mm_emit_fn)(const mm_prob *p, const int64_t *poff, int64_t m, int64_t n, double acc,
                           int64_t iacc, int64_t yi);

struct mm_prob {
    int64_t M, N, K;
    int nb; /* batch dims */
    int64_t bdims[KILN_MAX_DIMS];
    int64_t a_bstr[KILN_MAX_DIMS], b_bstr[KILN_MAX_DIMS]; /* 0 on broadcast dims */
    int64_t a_rs, a_cs, b_rs, b_cs;                       /* strides of A (m, k) and B (k, n) */
    const kiln_tensor *a, *b;
    kiln_tensor *y;
    mm_param q[P_COUNT];
    /* Gemm: Y = alpha * A B + beta * C, C broadcast with strides c_rs, c_cs */
    double alpha, beta;
    const kiln_tensor *c;
    int64_t c_rs, c_cs;
    mm_emit_fn emit; /* NULL: float32 fast path */
};

/* ---- setup ---------------------------------------------------------------- */

/* Reads parameter t of side `side` (0: A rows, 1: B columns) into q,
 * checking that it broadcasts to (batch..., M, 1) / (batch..., 1, N). */
static kiln_status mm_param_init(const mm_prob *p, const kiln_tensor *t, const char *what, int side,
                                 mm_param *q) {
    memset(q, 0, sizeof(*q));
    q->t = t;
    if (!t) return KILN_OK;
    int nd = p->nb + 2;
    int64_t want[KILN_MAX_DIMS], dims[KILN_MAX_DIMS], str[KILN_MAX_DIMS];
    memcpy(want, p->bdims, p->nb * sizeof(int64_t));
    want[p->nb] = side == 0 ? p->M : 1;
    want[p->nb + 1] = side == 0 ? 1 : p->N;
    int tnd = t->ndim;
    memcpy(dims, t->dims, tnd * sizeof(int64_t));
    if (side == 0 && tnd == 1 && dims[0] > 1) { /* per-row vector (M) */
        dims[1] = 1;
        tnd = 2;
    }
    int ok = tnd <= nd;
    for (int i = 0; ok && i < tnd; i++) {
        int64_t d = dims[tnd - 1 - i], w = want[nd - 1 - i];
        ok = d == w || d == 1;
    }
    if (!ok) {
        char b1[96], b2[96];
        return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected one broadcastable to %s",
                         what, kiln__shape_str(t->ndim, t->dims, b1, sizeof b1),
                         kiln__shape_str(nd, want, b2, sizeof b2));
    }
    kiln__bcast_strides(tnd, dims, nd, want, str);
    memcpy(q->bstr, str, p->nb * sizeof(int64_t));
    q->str = str[p->nb + side];
    return KILN_OK;
}

static inline double mm_param_f(const mm_param *q, int64_t boff, int64_t i) {
    return q->t ? kiln__ld_f(q->t->dtype, q->t->data, boff + i * q->str) : 0.0;
}
static inline int64_t mm_param_i(const mm_param *q, int64_t boff, int64_t i) {
    return q->t ? kiln__ld_i(q->t->dtype, q->t->data, boff + i * q->str) : 0;
}

/* numpy matmul shapes: A (..., M, K) or (K), B (..., K, N) or (K); output
 * (broadcast batch..., M, N) without M / N for 1-D operands. Fills p's
 * sizes and strides and the output shape. */
static kiln_status mm_setup(const kiln_tensor *a, const kiln_tensor *b, mm_prob *p, int *yndim,
                            int64_t *ydims) {
    memset(p, 0, sizeof(*p));
    char b1[96], b2[96];
    if (a->ndim < 1 || b->ndim < 1)
        return kiln__err(KILN_E_SHAPE, "inputs have shapes %s and %s, expected rank >= 1",
                         kiln__shape_str(a->ndim, a->dims, b1, sizeof b1),
                         kiln__shape_str(b->ndim, b->dims, b2, sizeof b2));
    int a1 = a->ndim == 1, b1d = b->ndim == 1;
    p->M = a1 ? 1 : a->dims[a->ndim - 2];
    p->K = a->dims[a->ndim - 1];
    p->N = b1d ? 1 : b->dims[b->ndim - 1];
    int64_t kb = b1d ? b->dims[0] : b->dims[b->ndim - 2];
    if (kb != p->K)
        return kiln__err(KILN_E_SHAPE, "inputs A %s and B %s: inner dims %lld and %lld differ",
                         kiln__shape_str(a->ndim, a->dims, b1, sizeof b1),
                         kiln__shape_str(b->ndim, b->dims, b2, sizeof b2), (long long)p->K,
                         (long long)kb);
    int anb = a1 ? 0 : a->ndim - 2, bnb = b1d ? 0 : b->ndim - 2;
    KILN__TRY(kiln__broadcast(anb, a->dims, bnb, b->dims, &p->nb, p->bdims));
    int64_t astr[KILN_MAX_DIMS], bstr[KILN_MAX_DIMS];
    kiln__contiguous_strides(a->ndim, a->dims, astr);
    kiln__contiguous_strides(b->ndim, b->dims, bstr);
    /* batch strides: contiguous strides of the batch part, 0 on broadcast */
    kiln__bcast_strides(anb, a->dims, p->nb, p->bdims, p->a_bstr);
    kiln__bcast_strides(bnb, b->dims, p->nb, p->bdims, p->b_bstr);
    for (int i = 0; i < p->nb; i++) {
        p->a_bstr[i] *= p->M * p->K;
        p->b_bstr[i] *= p->K * p->N;
    }
    p->a_rs = p->K;
    p->a_cs = 1;
    p->b_rs = p->N;
    p->b_cs = 1;
    p->a = a;
    p->b = b;
    *yndim = p->nb;
    memcpy(ydims, p->bdims, p->nb * sizeof(int64_t));
    if (!a1) ydims[(*yndim)++] = p->M;
    if (!b1d) ydims[(*yndim)++] = p->N;
    return KILN_OK;
}

/* ---- the matrix-product core -------------------------------------------- */

/* Element offsets of batch index bi (linear over p->bdims) for `n` stride
 * arrays. */
static void mm_batch_offsets(const mm_prob *p, int64_t bi, int n, const int64_t *const *strides,
                             int64_t *off) {
    for (int j = 0; j < n; j++) off[j] = 0;
    for (int d = p->nb - 1; d >= 0; d--) {
        int64_t i = bi % p->bdims[d];
        bi /= p->bdims[d];
        for (int j = 0; j < n; j++) off[j] += i * strides[j][d];
    }
}

static float dot_f32(const float *restrict a, const float *restrict b, int64_t n) {
    float s[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) s[j] += a[k + j] * b[k + j];
    float r = 0;
    for (; k < n; k++) r += a[k] * b[k];
    return r + ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Float32 rows [m0, m1) of one product: y (rows, N) = A (rows, K) B (K, N),
 * then Gemm's y = alpha*y + beta*C. A and B are at their batch offsets. */
KILN__F32_CLONES static void mm_rows_f32(const mm_prob *p, const float *A, const float *B, float *y,
                                         int64_t m0, int64_t m1) {
    int64_t N = p->N, K = p->K;
    if (p->b_cs == 1) { /* axpy over rows of B, four rows of A at a time */
        for (int64_t m = m0; m < m1; m += 4) {
            int64_t rows = m1 - m < 4 ? m1 - m : 4;
            float *yr[4];
            for (int r = 0; r < rows; r++) {
                yr[r] = y + (m + r) * N;
                for (int64_t n = 0; n < N; n++) yr[r][n] = 0.f;
            }
            for (int64_t k = 0; k < K; k++) {
                const float *restrict brow = B + k * p->b_rs;
                for (int r = 0; r < rows; r++) {
                    float av = A[(m + r) * p->a_rs + k * p->a_cs];
                    float *restrict yy = yr[r];
                    for (int64_t n = 0; n < N; n++) yy[n] += av * brow[n];
                }
            }
        }
    } else if (p->a_cs == 1 && p->b_rs == 1) { /* B stored (N, K): dot products */
        for (int64_t m = m0; m < m1; m++)
            for (int64_t n = 0; n < N; n++)
                y[m * N + n] = dot_f32(A + m * p->a_rs, B + n * p->b_cs, K);
    } else {
        for (int64_t m = m0; m < m1; m++)
            for (int64_t n = 0; n < N; n++) {
                float s = 0.f;
                for (int64_t k = 0; k < K; k++)
                    s += A[m * p->a_rs + k * p->a_cs] * B[k * p->b_rs + n * p->b_cs];
                y[m * N + n] = s;
            }
    }
    if (p->alpha == 1.0 && (!p->c || p->beta == 0.0)) return;
    float alpha = (float)p->alpha, beta = (float)p->beta;
    const float *C = p->c ? (const float *)p->c->data : NULL;
    for (int64_t m = m0; m < m1; m++)
        for (int64_t n = 0; n < N; n++) {
            float v = alpha * y[m * N + n];
            if (C && beta != 0.0f) v += beta * C[m * p->c_rs + n * p->c_cs]; /* beta 0 ignores C (NaN too), as onnxruntime */
            y[m * N + n] = v;
        }
}

/* Any-dtype row m of one product (A, B, y at element offsets ao, bo, yo):
 * acc[n] = sum_k (A[m,k] - a_zero[m]) * (B[k,n] - b_zero[n]), emitted. */
static void mm_row_generic(const mm_prob *p, int64_t ao, int64_t bo, int64_t yo,
                           const int64_t *poff, int64_t m) {
    kiln_dtype at = p->a->dtype, bt = p->b->dtype;
    const void *A = p->a->data, *B = p->b->data;
    int ints = !kiln__dtype_is_float(at) && !kiln__dtype_is_float(bt);
    const mm_param *az = &p->q[P_A_ZERO], *bz = &p->q[P_B_ZERO];
    for (int64_t n = 0; n < p->N; n++) {
        int64_t ai = ao + m * p->a_rs, bi = bo + n * p->b_cs;
        if (ints) {
            int64_t za = mm_param_i(az, poff[P_A_ZERO], m), zb = mm_param_i(bz, poff[P_B_ZERO], n);
            uint64_t acc = 0; /* wraps like the integer types */
            for (int64_t k = 0; k < p->K; k++)
                acc += (uint64_t)(kiln__ld_i(at, A, ai + k * p->a_cs) - za) *
                       (uint64_t)(kiln__ld_i(bt, B, bi + k * p->b_rs) - zb);
            p->emit(p, poff, m, n, (double)(int64_t)acc, (int64_t)acc, yo + m * p->N + n);
        } else {
            double za = mm_param_f(az, poff[P_A_ZERO], m), zb = mm_param_f(bz, poff[P_B_ZERO], n);
            double acc = 0;
            for (int64_t k = 0; k < p->K; k++)
                acc += (kiln__ld_f(at, A, ai + k * p->a_cs) - za) *
                       (kiln__ld_f(bt, B, bi + k * p->b_rs) - zb);
            /* float operands: emitters read acc only (an int64 cast of a NaN or huge acc would be UB) */
            p->emit(p, poff, m, n, acc, 0, yo + m * p->N + n);
        }
    }
}

/* Runs this thread's share of the batch*M output rows. */
/* kiln__ref_FusedMatMul (fused_matmul.c) relies on this split: thread ith
 * computes rows [lo, hi) of kiln__split(nbatch * M, ith, nth). */
static void mm_run(const kiln__kctx *c, const mm_prob *p) {
    int64_t nbatch = 1, lo, hi;
    for (int d = 0; d < p->nb; d++) nbatch *= p->bdims[d];
    kiln__split(nbatch * p->M, c->ith, c->nth, &lo, &hi);
    const int64_t *strides[2 + P_COUNT] = {p->a_bstr, p->b_bstr};
    for (int j = 0; j < P_COUNT; j++) strides[2 + j] = p->q[j].bstr;
    for (int64_t r = lo; r < hi;) {
        int64_t bi = r / p->M, m0 = r % p->M;
        int64_t m1 = hi - r < p->M - m0 ? m0 + (hi - r) : p->M; /* rows of this batch */
        int64_t off[2 + P_COUNT], yo = bi * p->M * p->N;
        mm_batch_offsets(p, bi, 2 + P_COUNT, strides, off);
        if (!p->emit) {
            mm_rows_f32(p, (const float *)p->a->data + off[0], (const float *)p->b->data + off[1],
                        (float *)p->y->data + yo, m0, m1);
        } else {
            for (int64_t m = m0; m < m1; m++) mm_row_generic(p, off[0], off[1], yo, off + 2, m);
        }
        r += m1 - m0;
    }
}

/* ---- emit hooks ------------------------------------------------------------ */

static void emit_store(const mm_prob *p, const int64_t *poff, int64_t m, int64_t n, double acc,
                       int64_t iacc, int64_t yi) {
    if (kiln__dtype_is_float(p->y->dtype))
        kiln__st_f(p->y->dtype, p->y->data, yi, acc);
    else
        kiln__st_i(p->y->dtype, p->y->data, yi, iacc);
}

static void emit_gemm(const mm_prob *p, const int64_t *poff, int64_t m, int64_t n, double acc,
                      int64_t iacc, int64_t yi) {
    double v = p->alpha * acc;
    if (p->c && p->beta != 0.0) v += p->beta * kiln__ld_f(p->c->dtype, p->c->data, m * p->c_rs + n * p->c_cs);
    kiln__st_f(p->y->dtype, p->y->data, yi, v);
}

/* v rounded to dtype dt (scales are multiplied in their own precision). */
static double round_to(kiln_dtype dt, double v) {
    uint64_t buf;
    kiln__st_f(dt, &buf, 0, v);
    return kiln__ld_f(dt, &buf, 0);
}

/* QLinearMatMul: y = saturate(round_half_even(acc * (a_scale * b_scale / y_scale)) + y_zero). */
static void emit_qlinear(const mm_prob *p, const int64_t *poff, int64_t m, int64_t n, double acc,
                         int64_t iacc, int64_t yi) {
    kiln_dtype st = p->q[P_A_SCALE].t->dtype;
    double as = mm_param_f(&p->q[P_A_SCALE], poff[P_A_SCALE], m);
    double bs = mm_param_f(&p->q[P_B_SCALE], poff[P_B_SCALE], n);
    double ys = mm_param_f(&p->q[P_Y_SCALE], poff[P_Y_SCALE], n);
    double mult = round_to(st, round_to(st, as * bs) / ys);
    double v = nearbyint((double)iacc * mult + mm_param_f(&p->q[P_Y_ZERO], poff[P_Y_ZERO], n));
    double lo = p->y->dtype == KILN_DTYPE_I8 ? -128 : 0,
           hi = p->y->dtype == KILN_DTYPE_I8 ? 127 : 255;
    kiln__st_f(p->y->dtype, p->y->data, yi, v < lo ? lo : v > hi ? hi : v);
}

/* ---- MatMul ------------------------------------------------------------------ */

/* a: (..., M, K) or (K), b: (..., K, N) or (K); y: (batch..., M, N) (numpy
 * matmul); f16 / bf16 / f32 / f64 / i32 / i64 / u32 / u64. */
kiln_status kiln__infer_MatMul(kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "A", KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_F16,
                                KILN_DTYPE_BF16, KILN_DTYPE_I32, KILN_DTYPE_I64, KILN_DTYPE_U32,
                                KILN_DTYPE_U64, 0));
    if (c->in[1]->dtype != c->in[0]->dtype)
        return kiln__err(KILN_E_TYPE, "input 'B' is %s, expected %s like A",
                         kiln_dtype_name(c->in[1]->dtype), kiln_dtype_name(c->in[0]->dtype));
    mm_prob p;
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(mm_setup(c->in[0], c->in[1], &p, &nd, dims));
    return kiln__out_shape(c, 0, c->in[0]->dtype, nd, dims);
}

kiln_status kiln__ref_MatMul(kiln__kctx *c) {
    mm_prob p;
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(mm_setup(c->in[0], c->in[1], &p, &nd, dims));
    p.y = c->out[0];
    p.alpha = 1.0;
    p.emit = p.a->dtype == KILN_DTYPE_F32 ? NULL : emit_store;
    mm_run(c, &p);
    return KILN_OK;
}

/* ---- MatMulInteger ----------------------------------------------------------- */

/* A: (..., M, K) u8/i8, B: (..., K, N) u8/i8, a_zero_point: scalar or per
 * row (M), b_zero_point: scalar or per column (N); y: int32
 * = sum (A - a_zero) * (B - b_zero). */
static kiln_status matmul_integer_setup(kiln__kctx *c, mm_prob *p, int *nd, int64_t *dims) {
    KILN__TRY(kiln__check_dtype(c->in[0], "A", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    KILN__TRY(kiln__check_dtype(c->in[1], "B", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    KILN__TRY(mm_setup(c->in[0], c->in[1], p, nd, dims));
    KILN__TRY(mm_param_init(p, kiln__in(c, 2), "a_zero_point", 0, &p->q[P_A_ZERO]));
    KILN__TRY(mm_param_init(p, kiln__in(c, 3), "b_zero_point", 1, &p->q[P_B_ZERO]));
    return KILN_OK;
}

/* Validates the inputs of a quantized matmul, fills p and the output shape. */
typedef kiln_status (*mm_setup_fn)(kiln__kctx *c, mm_prob *p, int *nd, int64_t *dims);

/* Infer of the quantized matmuls: output 0 of dtype yt and setup's shape. */
static kiln_status mm_quant_infer(kiln__kctx *c, mm_setup_fn setup, kiln_dtype yt) {
    mm_prob p;
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(setup(c, &p, &nd, dims));
    return kiln__out_shape(c, 0, yt, nd, dims);
}

/* Kernel of the quantized matmuls: output 0 written element by element by emit. */
static kiln_status mm_quant_ref(kiln__kctx *c, mm_setup_fn setup, mm_emit_fn emit) {
    mm_prob p;
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(setup(c, &p, &nd, dims));
    p.y = c->out[0];
    p.emit = emit;
    mm_run(c, &p);
    return KILN_OK;
}

kiln_status kiln__infer_MatMulInteger(kiln__kctx *c) {
    return mm_quant_infer(c, matmul_integer_setup, KILN_DTYPE_I32);
}

kiln_status kiln__ref_MatMulInteger(kiln__kctx *c) {
    return mm_quant_ref(c, matmul_integer_setup, emit_store);
}

/* ---- QLinearMatMul ----------------------------------------------------------- */

/* a: (..., M, K) u8/i8 with a_scale / a_zero_point per tensor or per row
 * ((M) or (..., M, 1)); b: (..., K, N) with b_scale / b_zero_point per tensor
 * or per column ((N) or (..., 1, N)); y_scale / y_zero_point per tensor.
 * Scales f32 (opset 10) or f32 / f16 / bf16 (opset 21). y: y_zero_point's
 * dtype. */
static kiln_status qlinear_matmul_setup(kiln__kctx *c, mm_prob *p, int *nd, int64_t *dims) {
    static const char *const names[] = {"a",       "a_scale",      "a_zero_point", "b",
                                        "b_scale", "b_zero_point", "y_scale",      "y_zero_point"};
    static const int slot[] = {-1,        P_A_SCALE, P_A_ZERO,  -1,
                               P_B_SCALE, P_B_ZERO,  P_Y_SCALE, P_Y_ZERO};
    KILN__TRY(kiln__check_dtype(c->in[0], "a", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    KILN__TRY(kiln__check_dtype(c->in[3], "b", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    KILN__TRY(mm_setup(c->in[0], c->in[3], p, nd, dims));
    for (int i = 1; i < 8; i++) {
        if (slot[i] < 0) continue;
        const kiln_tensor *t = kiln__in(c, i);
        if (!t && (i == 1 || i == 4 || i == 6))
            return kiln__err(KILN_E_INVAL, "input '%s' is required", names[i]);
        if (t && (i == 1 || i == 4 || i == 6))
            KILN__TRY(
                kiln__check_dtype(t, names[i], KILN_DTYPE_F32, KILN_DTYPE_F16, KILN_DTYPE_BF16, 0));
        KILN__TRY(mm_param_init(p, t, names[i], i < 3 ? 0 : 1, &p->q[slot[i]]));
    }
    kiln_dtype yt = kiln__in(c, 7) ? c->in[7]->dtype : c->in[0]->dtype;
    if (yt != KILN_DTYPE_U8 && yt != KILN_DTYPE_I8)
        return kiln__err(KILN_E_TYPE, "input 'y_zero_point' is %s, expected uint8 or int8",
                         kiln_dtype_name(yt));
    return KILN_OK;
}

kiln_status kiln__infer_QLinearMatMul(kiln__kctx *c) {
    kiln_dtype yt = kiln__in(c, 7) ? c->in[7]->dtype : c->in[0]->dtype; /* setup checks it */
    return mm_quant_infer(c, qlinear_matmul_setup, yt);
}

kiln_status kiln__ref_QLinearMatMul(kiln__kctx *c) {
    return mm_quant_ref(c, qlinear_matmul_setup, emit_qlinear);
}

/* ---- Gemm -------------------------------------------------------------------- */

/* A: (M,K) or (K,M) with transA, B: (K,N) or (N,K) with transB, C:
 * broadcastable to (M,N), optional from opset 11; Y = alpha*A'B' + beta*C.
 * f16 / bf16 / f32 / f64 / i32 / i64 / u32 / u64. */
static kiln_status gemm_setup(kiln__kctx *c, mm_prob *p) {
    memset(p, 0, sizeof(*p));
    const kiln_tensor *a = c->in[0], *b = c->in[1], *cc = kiln__in(c, 2);
    char b1[96], b2[96];
    KILN__TRY(kiln__check_dtype(a, "A", KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_F16,
                                KILN_DTYPE_BF16, KILN_DTYPE_I32, KILN_DTYPE_I64, KILN_DTYPE_U32,
                                KILN_DTYPE_U64, 0));
    for (int i = 1; i < 3; i++)
        if (kiln__in(c, i) && c->in[i]->dtype != a->dtype)
            return kiln__err(KILN_E_TYPE, "input '%c' is %s, expected %s like A", "ABC"[i],
                             kiln_dtype_name(c->in[i]->dtype), kiln_dtype_name(a->dtype));
    if (a->ndim != 2 || b->ndim != 2)
        return kiln__err(KILN_E_SHAPE, "inputs A %s and B %s, expected 2-D matrices",
                         kiln__shape_str(a->ndim, a->dims, b1, sizeof b1),
                         kiln__shape_str(b->ndim, b->dims, b2, sizeof b2));
    int ta = kiln__attr_i(c->node, "transA", 0) != 0, tb = kiln__attr_i(c->node, "transB", 0) != 0;
    p->M = a->dims[ta ? 1 : 0];
    p->K = a->dims[ta ? 0 : 1];
    p->N = b->dims[tb ? 0 : 1];
    if (b->dims[tb ? 1 : 0] != p->K)
        return kiln__err(KILN_E_SHAPE, "A %s (transA=%d) and B %s (transB=%d): inner dims differ",
                         kiln__shape_str(a->ndim, a->dims, b1, sizeof b1), ta,
                         kiln__shape_str(b->ndim, b->dims, b2, sizeof b2), tb);
    p->a_rs = ta ? 1 : p->K;
    p->a_cs = ta ? p->M : 1;
    p->b_rs = tb ? 1 : p->N;
    p->b_cs = tb ? p->K : 1;
    p->a = a;
    p->b = b;
    p->alpha = kiln__attr_f(c->node, "alpha", 1.0f);
    p->beta = kiln__attr_f(c->node, "beta", 1.0f);
    if (cc) {
        int64_t mn[2] = {p->M, p->N}, bd[KILN_MAX_DIMS], str[2];
        int bnd;
        if (cc->ndim > 2 || kiln__broadcast(cc->ndim, cc->dims, 2, mn, &bnd, bd) != KILN_OK ||
            bd[0] != p->M || bd[1] != p->N)
            return kiln__err(KILN_E_SHAPE,
                             "input 'C' has shape %s, expected one broadcastable to %s",
                             kiln__shape_str(cc->ndim, cc->dims, b1, sizeof b1),
                             kiln__shape_str(2, mn, b2, sizeof b2));
        kiln__bcast_strides(cc->ndim, cc->dims, 2, mn, str);
        p->c = cc;
        p->c_rs = str[0];
        p->c_cs = str[1];
    }
    return KILN_OK;
}

kiln_status kiln__infer_Gemm(kiln__kctx *c) {
    mm_prob p;
    KILN__TRY(gemm_setup(c, &p));
    int64_t dims[2] = {p.M, p.N};
    return kiln__out_shape(c, 0, c->in[0]->dtype, 2, dims);
}

kiln_status kiln__ref_Gemm(kiln__kctx *c) {
    mm_prob p;
    KILN__TRY(gemm_setup(c, &p));
    p.y = c->out[0];
    p.emit = p.a->dtype == KILN_DTYPE_F32 ? NULL : emit_gemm;
    mm_run(c, &p);
    return KILN_OK;
}
