/* bench/gemm_bench.c: f32 GEMM GFLOP/s, kiln (kiln__sgemm_run, B packed per
 * call and B prepacked) side by side with oneDNN's dnnl_sgemm when built with
 * -DHAVE_DNNL, on square row-major C = A B at the given sizes, same thread
 * count (oneDNN: OpenMP, so set OMP_NUM_THREADS to the same -t). Median of
 * repeated runs after a warm-up; the three alternate within each repetition.
 *   gemm_bench [-t THREADS] [-i ISA] [SIZE ...]   (default 256 512 1024 2048 4096)
 * Build and run: bench/build_gemm_bench.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "cpu/kernels/gemm.h"
#ifdef HAVE_DNNL
#include <dnnl.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench_ctx {
    int64_t n;
    float *a, *b, *c;
    kiln__pool *pool;
    kiln__gemm_args args;
    void *scratch;
} bench_ctx;

typedef void (*run_fn)(bench_ctx *x);

static void run_kiln(bench_ctx *x) {
    if (kiln__sgemm_run(x->pool, &x->args, x->scratch) != KILN_OK) {
        fprintf(stderr, "kiln: %s\n", kiln_last_error());
        exit(1);
    }
}

#ifdef HAVE_DNNL
static void run_dnnl(bench_ctx *x) {
    int64_t n = x->n;
    if (dnnl_sgemm('N', 'N', n, n, n, 1.0f, x->a, n, x->b, n, 0.0f, x->c, n) != dnnl_success) {
        fprintf(stderr, "dnnl_sgemm failed\n");
        exit(1);
    }
}
#endif

/* GFLOP/s of one timed run. */
static double gflops(run_fn fn, bench_ctx *x) {
    double t0 = now();
    fn(x);
    return 2.0 * x->n * x->n * x->n / (now() - t0) * 1e-9;
}

static double median(double *r, int n) {
    qsort(r, (size_t)n, sizeof r[0], cmp);
    return r[n / 2];
}

int main(int argc, char **argv) {
    int threads = 1;
    kiln__gemm_isa isa = KILN__GEMM_ISA_AUTO;
    int64_t sizes[32];
    int nsizes = 0, opt;
    while ((opt = getopt(argc, argv, "t:i:")) != -1) {
        if (opt == 't') threads = atoi(optarg);
        else if (opt == 'i') isa = !strcmp(optarg, "avx512") ? KILN__GEMM_ISA_AVX512
                                 : !strcmp(optarg, "avx2") ? KILN__GEMM_ISA_AVX2
                                 : !strcmp(optarg, "generic") ? KILN__GEMM_ISA_GENERIC
                                 : KILN__GEMM_ISA_AUTO;
        else {
            fprintf(stderr, "usage: %s [-t THREADS] [-i avx512|avx2|generic] [SIZE ...]\n", argv[0]);
            return 2;
        }
    }
    for (int i = optind; i < argc && nsizes < 32; i++) sizes[nsizes++] = atoll(argv[i]);
    if (nsizes == 0) {
        static const int64_t def[] = {256, 512, 1024, 2048, 4096};
        for (int i = 0; i < 5; i++) sizes[nsizes++] = def[i];
    }
    const char *omp = getenv("OMP_NUM_THREADS");
    printf("# f32 GEMM C = A B, square, row-major; threads %d (OMP_NUM_THREADS=%s); kiln isa %s\n",
           threads, omp ? omp : "unset",
           kiln__gemm_isa_name(isa == KILN__GEMM_ISA_AUTO ? kiln__gemm_isa_best() : isa));
    printf("%6s %5s %12s %14s %12s %12s\n", "size", "reps", "kiln GF/s", "kiln-pp GF/s",
           "onednn GF/s", "kiln/onednn");
    kiln__pool *pool = NULL;
    if (kiln__pool_create(threads, &pool) != KILN_OK) return 1;
    for (int s = 0; s < nsizes; s++) {
        int64_t n = sizes[s];
        double flop = 2.0 * n * n * n;
        int reps = flop < 1e9 ? 41 : flop < 2e10 ? 11 : 5;
        bench_ctx x = {.n = n, .pool = pool};
        x.a = kiln__aligned_alloc((size_t)(n * n) * sizeof(float));
        x.b = kiln__aligned_alloc((size_t)(n * n) * sizeof(float));
        x.c = kiln__aligned_alloc((size_t)(n * n) * sizeof(float));
        for (int64_t i = 0; i < n * n; i++) {
            x.a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
            x.b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
        }
        x.args = (kiln__gemm_args){.m = n, .n = n, .k = n, .alpha = 1.0f, .beta = 0.0f,
                                   .a = x.a, .lda = n, .b = x.b, .ldb = n, .c = x.c, .ldc = n,
                                   .isa = isa};
        /* the same product with B prepacked once, as for constant weights */
        bench_ctx pp = x;
        size_t pb = kiln__sgemm_packed_b_bytes(isa, n, n);
        void *packed = kiln__aligned_alloc(pb);
        kiln__sgemm_pack_b(isa, 0, n, n, x.b, n, packed, pb);
        pp.args.b = packed;
        pp.args.b_packed = 1;
        x.scratch = kiln__aligned_alloc(kiln__sgemm_scratch_bytes(&x.args, threads));
        pp.scratch = kiln__aligned_alloc(kiln__sgemm_scratch_bytes(&pp.args, threads));

        /* warm up, then alternate the three per repetition so that load from
         * elsewhere on the machine hits them alike */
        double r_kiln[64], r_pp[64], r_dnnl[64], g_dnnl = 0;
        run_kiln(&x);
        run_kiln(&pp);
#ifdef HAVE_DNNL
        run_dnnl(&x);
        usleep(10000);
#endif
        for (int r = 0; r < reps; r++) {
            r_kiln[r] = gflops(run_kiln, &x);
            r_pp[r] = gflops(run_kiln, &pp);
#ifdef HAVE_DNNL
            r_dnnl[r] = gflops(run_dnnl, &x);
            usleep(10000); /* OpenMP workers spin a while after a region: let them sleep */
#endif
        }
        double g_kiln = median(r_kiln, reps), g_pp = median(r_pp, reps);
#ifdef HAVE_DNNL
        g_dnnl = median(r_dnnl, reps);
#else
        (void)r_dnnl;
#endif
        printf("%6lld %5d %12.1f %14.1f %12.1f %12.2f\n", (long long)n, reps, g_kiln, g_pp,
               g_dnnl, g_dnnl > 0 ? g_kiln / g_dnnl : 0.0);
        fflush(stdout);
        kiln__aligned_free(x.scratch);
        kiln__aligned_free(pp.scratch);
        kiln__aligned_free(packed);
        kiln__aligned_free(x.a);
        kiln__aligned_free(x.b);
        kiln__aligned_free(x.c);
    }
    kiln__pool_free(pool);
    return 0;
}
