/* bench/gemm_bench.c: GEMM throughput of kiln side by side with oneDNN, one
 * thread count per process, square row-major C = A B at the given sizes:
 *
 *   f32   kiln__sgemm_run (B packed per call, and B prepacked once) vs
 *         dnnl_sgemm
 *   bf16  kiln with compute = BF16 (f32 A rounded while packing, B prepacked
 *         as bf16) vs the oneDNN matmul primitive on bf16 A and reordered
 *         bf16 B, f32 C
 *   u8s8  kiln__gemm_u8s8_run (u8 A, prepacked s8 B, s32 C) vs the oneDNN
 *         matmul primitive on u8 A, reordered s8 B, s32 C
 *
 * Median of repeated runs after a warm-up; every variant runs once per
 * repetition, in turn, so that load from elsewhere on the machine hits them
 * alike. Prints the f32 FMA peak measured in the same run and a markdown
 * table: GFLOP/s (GOP/s for u8s8, 2 M N K operations), kiln/oneDNN ratios,
 * f32 as % of the peak, and bf16 and u8s8 over kiln's f32 (B prepacked in
 * all three). oneDNN (Debian) threads with OpenMP: set OMP_NUM_THREADS to
 * the same -t. Without -DHAVE_DNNL the oneDNN columns are empty.
 *   gemm_bench [-t THREADS] [-i avx512|avx2|generic] [-H] [SIZE ...]
 *     (default sizes 256 512 1024 2048 4096; -H: no table header)
 * Build and run: bench/build_gemm_bench.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "cpu/kernels/gemm.h"
#include "cpu/kernels/gemm_u8s8.h"
#ifdef HAVE_DNNL
#include <dnnl.h>
#endif

#define PEAK_NO_MAIN
#include "peak.c"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "gemm_bench: %s: %s\n", what, why);
    exit(1);
}

static void *xalloc(size_t bytes) {
    void *p = kiln__aligned_alloc(bytes ? bytes : 64);
    if (!p) die("alloc", "out of memory");
    return p;
}

/* ---- the variants ----------------------------------------------------------- */

enum { V_F32, V_F32_PP, V_DNNL_F32, V_BF16, V_DNNL_BF16, V_U8S8, V_DNNL_U8S8, V_COUNT };

typedef struct kiln_gemm {
    kiln__pool *pool;
    int is_u8s8;
    kiln__gemm_args f;
    kiln__gemm_u8s8_args q;
    void *scratch, *packed;
} kiln_gemm;

static void kiln_run(kiln_gemm *x) {
    kiln_status st = x->is_u8s8 ? kiln__gemm_u8s8_run(x->pool, &x->q, x->scratch)
                                : kiln__sgemm_run(x->pool, &x->f, x->scratch);
    if (st != KILN_OK) die("kiln", kiln_last_error());
}

static void kiln_free(kiln_gemm *x) {
    kiln__aligned_free(x->scratch);
    kiln__aligned_free(x->packed);
}

/* f32 or bf16 product of a (n,n) and b (n,n) into c, B prepacked if pp. */
static int kiln_setup_f(kiln_gemm *x, kiln__pool *pool, int threads, int64_t n, const float *a,
                        const float *b, float *c, kiln__gemm_isa isa, kiln__gemm_compute comp,
                        int pp) {
    memset(x, 0, sizeof *x);
    x->pool = pool;
    if (!kiln__gemm_compute_supported(comp)) return 0;
    x->f = (kiln__gemm_args){.m = n, .n = n, .k = n, .alpha = 1.0f, .a = a, .lda = n, .b = b,
                             .ldb = n, .c = c, .ldc = n, .isa = comp == KILN__GEMM_F32 ? isa
                                                                         : KILN__GEMM_ISA_AUTO,
                             .compute = comp};
    if (pp) {
        size_t bytes = kiln__gemm_packed_b_bytes_ex(x->f.isa, comp, n, n);
        x->packed = xalloc(bytes);
        if (kiln__gemm_pack_b_ex(x->f.isa, comp, 0, n, n, b, n, x->packed, bytes) != KILN_OK)
            die("kiln pack", kiln_last_error());
        x->f.b = x->packed;
        x->f.b_packed = 1;
    }
    x->scratch = xalloc(kiln__sgemm_scratch_bytes(&x->f, threads));
    return 1;
}

static int kiln_setup_q(kiln_gemm *x, kiln__pool *pool, int threads, int64_t n, const uint8_t *a,
                        const int8_t *b, int32_t *c) {
    memset(x, 0, sizeof *x);
    x->pool = pool;
    x->is_u8s8 = 1;
    size_t bytes = kiln__gemm_u8s8_packed_b_bytes(n, n);
    x->packed = xalloc(bytes);
    if (kiln__gemm_u8s8_pack_b(0, n, n, b, n, NULL, x->packed, bytes) != KILN_OK)
        die("kiln u8s8 pack", kiln_last_error());
    x->q = (kiln__gemm_u8s8_args){.m = n, .n = n, .k = n, .a = a, .lda = n, .b = x->packed,
                                  .c = c, .ldc = n, .out = KILN__GEMM_U8S8_S32};
    x->scratch = xalloc(kiln__gemm_u8s8_scratch_bytes(&x->q, threads));
    return 1;
}

#ifdef HAVE_DNNL
/* A oneDNN matmul C (n,n) = A B with weights reordered once into the
 * primitive's preferred layout. */
typedef struct dnnl_mm {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
} dnnl_mm;

#define DN(call)                                               \
    do {                                                       \
        if ((call) != dnnl_success) die("oneDNN", #call);      \
    } while (0)

static void dnnl_mm_setup(dnnl_mm *d, int64_t n, dnnl_data_type_t st, void *a,
                          dnnl_data_type_t wt, void *b, dnnl_data_type_t dt, void *c) {
    dnnl_dims_t dims = {n, n};
    dnnl_memory_desc_t src_md, wei_any, wei_user, dst_md;
    DN(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
    DN(dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags));
    DN(dnnl_memory_desc_init_by_tag(&src_md, 2, dims, st, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&wei_any, 2, dims, wt, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&wei_user, 2, dims, wt, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&dst_md, 2, dims, dt, dnnl_ab));
    dnnl_matmul_desc_t md;
    DN(dnnl_matmul_desc_init(&md, &src_md, &wei_any, NULL, &dst_md));
    dnnl_primitive_desc_t pd;
    DN(dnnl_primitive_desc_create(&pd, &md, NULL, d->eng, NULL));
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    DN(dnnl_memory_create(&d->src, &src_md, d->eng, a));
    DN(dnnl_memory_create(&d->dst, &dst_md, d->eng, c));
    DN(dnnl_memory_create(&d->wei, wmd, d->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_memory_t user;
    DN(dnnl_memory_create(&user, &wei_user, d->eng, b));
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t reorder;
    DN(dnnl_reorder_primitive_desc_create(&rpd, &wei_user, d->eng, wmd, d->eng, NULL));
    DN(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, d->wei}};
    DN(dnnl_primitive_execute(reorder, d->stream, 2, rargs));
    DN(dnnl_stream_wait(d->stream));
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(user);
    DN(dnnl_primitive_create(&d->prim, pd));
    dnnl_primitive_desc_destroy(pd);
}

static void dnnl_mm_run(dnnl_mm *d) {
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, d->src}, {DNNL_ARG_WEIGHTS, d->wei}, {DNNL_ARG_DST, d->dst}};
    DN(dnnl_primitive_execute(d->prim, d->stream, 3, args));
    DN(dnnl_stream_wait(d->stream));
}

static void dnnl_mm_free(dnnl_mm *d) {
    dnnl_primitive_destroy(d->prim);
    dnnl_memory_destroy(d->src);
    dnnl_memory_destroy(d->wei);
    dnnl_memory_destroy(d->dst);
    dnnl_stream_destroy(d->stream);
    dnnl_engine_destroy(d->eng);
}
#endif

/* ---- one size --------------------------------------------------------------- */

typedef struct bench_size {
    int64_t n;
    int threads;
    float *a, *b, *c;
    uint16_t *a16, *b16;
    uint8_t *aq;
    int8_t *bq;
    int32_t *cq;
    kiln_gemm k[V_COUNT];
    int have[V_COUNT];
#ifdef HAVE_DNNL
    dnnl_mm d_bf16, d_u8s8;
#endif
} bench_size;

static void run_variant(bench_size *s, int v) {
    switch (v) {
    case V_F32:
    case V_F32_PP:
    case V_BF16:
    case V_U8S8: kiln_run(&s->k[v]); break;
#ifdef HAVE_DNNL
    case V_DNNL_F32:
        if (dnnl_sgemm('N', 'N', s->n, s->n, s->n, 1.0f, s->a, s->n, s->b, s->n, 0.0f, s->c,
                       s->n) != dnnl_success)
            die("oneDNN", "dnnl_sgemm failed");
        break;
    case V_DNNL_BF16: dnnl_mm_run(&s->d_bf16); break;
    case V_DNNL_U8S8: dnnl_mm_run(&s->d_u8s8); break;
#endif
    default: break;
    }
}

static void setup(bench_size *s, kiln__pool *pool, kiln__gemm_isa isa) {
    const int64_t n = s->n, nn = n * n;
    s->a = xalloc((size_t)nn * sizeof(float));
    s->b = xalloc((size_t)nn * sizeof(float));
    s->c = xalloc((size_t)nn * sizeof(float));
    s->a16 = xalloc((size_t)nn * 2);
    s->b16 = xalloc((size_t)nn * 2);
    s->aq = xalloc((size_t)nn);
    s->bq = xalloc((size_t)nn);
    s->cq = xalloc((size_t)nn * sizeof(int32_t));
    for (int64_t i = 0; i < nn; i++) {
        s->a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
        s->b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        s->a16[i] = kiln_f32_to_bf16(s->a[i]);
        s->b16[i] = kiln_f32_to_bf16(s->b[i]);
        s->aq[i] = (uint8_t)((i * 7919) % 251);
        s->bq[i] = (int8_t)((i * 104729) % 255 - 127);
    }
    s->have[V_F32] = kiln_setup_f(&s->k[V_F32], pool, s->threads, n, s->a, s->b, s->c, isa,
                                  KILN__GEMM_F32, 0);
    s->have[V_F32_PP] = kiln_setup_f(&s->k[V_F32_PP], pool, s->threads, n, s->a, s->b, s->c, isa,
                                     KILN__GEMM_F32, 1);
    s->have[V_BF16] = kiln_setup_f(&s->k[V_BF16], pool, s->threads, n, s->a, s->b, s->c, isa,
                                   KILN__GEMM_BF16, 1);
    s->have[V_U8S8] = kiln_setup_q(&s->k[V_U8S8], pool, s->threads, n, s->aq, s->bq, s->cq);
#ifdef HAVE_DNNL
    s->have[V_DNNL_F32] = 1;
    dnnl_mm_setup(&s->d_bf16, n, dnnl_bf16, s->a16, dnnl_bf16, s->b16, dnnl_f32, s->c);
    dnnl_mm_setup(&s->d_u8s8, n, dnnl_u8, s->aq, dnnl_s8, s->bq, dnnl_s32, s->cq);
    s->have[V_DNNL_BF16] = s->have[V_DNNL_U8S8] = 1;
#endif
}

static void teardown(bench_size *s) {
    for (int v = 0; v < V_COUNT; v++)
        if (s->have[v] && (v == V_F32 || v == V_F32_PP || v == V_BF16 || v == V_U8S8))
            kiln_free(&s->k[v]);
#ifdef HAVE_DNNL
    dnnl_mm_free(&s->d_bf16);
    dnnl_mm_free(&s->d_u8s8);
#endif
    void *bufs[] = {s->a, s->b, s->c, s->a16, s->b16, s->aq, s->bq, s->cq};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) kiln__aligned_free(bufs[i]);
}

static double ratio(double x, double y) { return x > 0 && y > 0 ? x / y : 0.0; }

/* "%.1f" or "-" for 0 into buf. */
static const char *fmt(char *buf, double v, const char *f) {
    if (v <= 0) return "-";
    snprintf(buf, 32, f, v);
    return buf;
}

int main(int argc, char **argv) {
    int threads = 1, header = 1, opt;
    kiln__gemm_isa isa = KILN__GEMM_ISA_AUTO;
    int64_t sizes[32];
    int nsizes = 0;
    while ((opt = getopt(argc, argv, "t:i:H")) != -1) {
        if (opt == 't') threads = atoi(optarg);
        else if (opt == 'H') header = 0;
        else if (opt == 'i') isa = !strcmp(optarg, "avx512") ? KILN__GEMM_ISA_AVX512
                                 : !strcmp(optarg, "avx2") ? KILN__GEMM_ISA_AVX2
                                 : !strcmp(optarg, "generic") ? KILN__GEMM_ISA_GENERIC
                                 : KILN__GEMM_ISA_AUTO;
        else {
            fprintf(stderr, "usage: %s [-t THREADS] [-i avx512|avx2|generic] [-H] [SIZE ...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 64) die("-t", "threads must be in 1..64");
    for (int i = optind; i < argc && nsizes < 32; i++) sizes[nsizes++] = atoll(argv[i]);
    if (nsizes == 0) {
        static const int64_t def[] = {256, 512, 1024, 2048, 4096};
        for (int i = 0; i < 5; i++) sizes[nsizes++] = def[i];
    }
    kiln__pool *pool = NULL;
    if (kiln__pool_create(threads, &pool) != KILN_OK) die("pool", kiln_last_error());
    const double peak = kiln_peak_gflops(threads);
    const char *omp = getenv("OMP_NUM_THREADS");
    printf("peak f32 FMA, %d thread(s), measured in this run: %.1f GFLOP/s; kiln isa %s, "
           "OMP_NUM_THREADS=%s\n\n",
           threads, peak,
           kiln__gemm_isa_name(isa == KILN__GEMM_ISA_AUTO ? kiln__gemm_isa_best() : isa),
           omp ? omp : "unset");
    if (header) {
        printf("| size | threads | f32 kiln | f32 kiln, B prepacked | f32 oneDNN | f32 kiln/oneDNN "
               "| f32 kiln %% of peak | bf16 kiln | bf16 oneDNN | bf16 kiln/oneDNN | bf16/f32 "
               "kiln | u8s8 kiln (GOP/s) | u8s8 oneDNN | u8s8 kiln/oneDNN | u8s8/f32 kiln |\n");
        printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    for (int si = 0; si < nsizes; si++) {
        bench_size s = {.n = sizes[si], .threads = threads};
        setup(&s, pool, isa);
        const double flop = 2.0 * s.n * s.n * s.n;
        int reps = flop < 1e9 ? 31 : flop < 2e10 ? 9 : 5;
        double r[V_COUNT][64], g[V_COUNT] = {0};
        for (int v = 0; v < V_COUNT; v++) /* warm-up */
            if (s.have[v]) run_variant(&s, v);
        for (int rep = 0; rep < reps; rep++)
            for (int v = 0; v < V_COUNT; v++) {
                if (!s.have[v]) continue;
                double t0 = now();
                run_variant(&s, v);
                r[v][rep] = flop / (now() - t0) * 1e-9;
                /* let the other side's idle workers go to sleep (OpenMP's, and
                 * kiln's pool, which spins up to KILN_POOL_SPIN_US after a
                 * task): every call starts alike, none shares the cores */
                usleep(5000);
            }
        for (int v = 0; v < V_COUNT; v++)
            if (s.have[v]) {
                qsort(r[v], (size_t)reps, sizeof r[v][0], cmp);
                g[v] = r[v][reps / 2];
            }
        char b[15][32];
        printf("| %lld | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
               (long long)s.n, threads, fmt(b[0], g[V_F32], "%.1f"),
               fmt(b[1], g[V_F32_PP], "%.1f"), fmt(b[2], g[V_DNNL_F32], "%.1f"),
               fmt(b[3], ratio(g[V_F32], g[V_DNNL_F32]), "%.2f"),
               fmt(b[4], 100.0 * ratio(g[V_F32], peak), "%.0f%%"), fmt(b[5], g[V_BF16], "%.1f"),
               fmt(b[6], g[V_DNNL_BF16], "%.1f"),
               fmt(b[7], ratio(g[V_BF16], g[V_DNNL_BF16]), "%.2f"),
               fmt(b[8], ratio(g[V_BF16], g[V_F32_PP]), "%.2f"), fmt(b[9], g[V_U8S8], "%.1f"),
               fmt(b[10], g[V_DNNL_U8S8], "%.1f"),
               fmt(b[11], ratio(g[V_U8S8], g[V_DNNL_U8S8]), "%.2f"),
               fmt(b[12], ratio(g[V_U8S8], g[V_F32_PP]), "%.2f"));
        fflush(stdout);
        teardown(&s);
    }
    kiln__pool_free(pool);
    return 0;
}
