/* bench/peak.c: this CPU's arithmetic peaks, per core and for all cores:
 * independent chains of one instruction (enough to cover its latency on
 * every current x86 core, few enough to stay in registers):
 *   fma zmm   vfmadd231ps on 16 f32 lanes        (2 flop per lane)
 *   fma ymm   vfmadd231ps on 8 f32 lanes          (AVX2; 12 chains in 16 ymm)
 *   bf16 zmm  vdpbf16ps, 16 lanes x 2 bf16 pairs   (4 flop per lane)
 *   vnni zmm  vpdpbusd, 16 lanes x 4 u8*s8         (8 int ops per lane)
 * Prints GFLOP/s (GOP/s for vnni), the median of repeated runs.
 *   peak [THREADS]          (default 2: 1..THREADS threads)
 * Build: bench/build_gemm_bench.sh. gemm_bench includes this file with
 * PEAK_NO_MAIN for its "% of peak" column (kiln_peak_gflops). */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { PEAK_FMA_ZMM, PEAK_FMA_YMM, PEAK_BF16_ZMM, PEAK_VNNI_ZMM, PEAK_KINDS };
static const char *const peak_names[PEAK_KINDS] = {"fma zmm f32", "fma ymm f32",
                                                    "vdpbf16ps zmm", "vpdpbusd zmm"};
/* operations per instruction */
static const int peak_ops[PEAK_KINDS] = {32, 16, 64, 128};

#define CHAINS 16

static double peak_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* iters x CHAINS instructions; each returns a value the compiler must keep. */
__attribute__((target("avx512f"), noinline)) static float run_fma_zmm(long iters) {
    __m512 c[CHAINS];
    const __m512 x = _mm512_set1_ps(0.9999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) c[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) c[i] = _mm512_fmadd_ps(c[i], x, y);
    }
    __m512 s = c[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, c[i]);
    return _mm512_reduce_add_ps(s);
}

#define YCHAINS 12 /* + 2 constants: no spills in 16 ymm registers */
__attribute__((target("avx2,fma"), noinline)) static float run_fma_ymm(long iters) {
    __m256 c[YCHAINS];
    const __m256 x = _mm256_set1_ps(0.9999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < YCHAINS; i++) c[i] = _mm256_set1_ps((float)i);
    iters = iters * CHAINS / YCHAINS; /* the same instruction count */
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < YCHAINS; i++) c[i] = _mm256_fmadd_ps(c[i], x, y);
    }
    __m256 s = c[0];
    for (int i = 1; i < YCHAINS; i++) s = _mm256_add_ps(s, c[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

#if defined(__clang__) ? (__clang_major__ >= 9) : (__GNUC__ >= 10)
#define PEAK_HAVE_AVX512_EXT 1
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"), noinline)) static float
run_bf16_zmm(long iters) {
    __m512 c[CHAINS];
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = x; /* (1, 1) pairs */
    for (int i = 0; i < CHAINS; i++) c[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) c[i] = _mm512_dpbf16_ps(c[i], x, y);
        __asm__ volatile("" : "+v"(c[0])); /* keep the loop a loop */
    }
    __m512 s = c[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, c[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), noinline)) static float
run_vnni_zmm(long iters) {
    __m512i c[CHAINS];
    const __m512i x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(1);
    for (int i = 0; i < CHAINS; i++) c[i] = _mm512_set1_epi32(i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) c[i] = _mm512_dpbusd_epi32(c[i], x, y);
        __asm__ volatile("" : "+v"(c[0]));
    }
    __m512i s = c[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_epi32(s, c[i]);
    return (float)_mm512_reduce_add_epi32(s);
}
#endif

/* 1 if this CPU (and compiler) runs kind. */
static int peak_supported(int kind) {
    __builtin_cpu_init();
    switch (kind) {
    case PEAK_FMA_ZMM: return __builtin_cpu_supports("avx512f");
    case PEAK_FMA_YMM: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#ifdef PEAK_HAVE_AVX512_EXT
    case PEAK_BF16_ZMM:
        return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bf16");
    case PEAK_VNNI_ZMM:
        return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
#endif
    default: return 0;
    }
}

typedef struct {
    int kind;
    long iters;
    float sink;
} peak_job;

static void *peak_worker(void *arg) {
    peak_job *j = arg;
    switch (j->kind) {
    case PEAK_FMA_ZMM: j->sink = run_fma_zmm(j->iters); break;
    case PEAK_FMA_YMM: j->sink = run_fma_ymm(j->iters); break;
#ifdef PEAK_HAVE_AVX512_EXT
    case PEAK_BF16_ZMM: j->sink = run_bf16_zmm(j->iters); break;
    case PEAK_VNNI_ZMM: j->sink = run_vnni_zmm(j->iters); break;
#endif
    default: break;
    }
    return NULL;
}

/* G(FL)OP/s of nthreads threads each running iters iterations of kind. */
static double peak_measure(int kind, int nthreads, long iters) {
    pthread_t th[64];
    peak_job jobs[64];
    double t0 = peak_now();
    for (int i = 0; i < nthreads; i++) {
        jobs[i].kind = kind;
        jobs[i].iters = iters;
        pthread_create(&th[i], NULL, peak_worker, &jobs[i]);
    }
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    double dt = peak_now() - t0;
    volatile float sink = 0;
    for (int i = 0; i < nthreads; i++) sink += jobs[i].sink;
    (void)sink;
    return (double)iters * CHAINS * peak_ops[kind] * nthreads / dt * 1e-9;
}

static int peak_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of reps measurements of kind on nthreads threads; r[0..reps) keeps
 * them sorted (reps <= 15). 0 if unsupported. */
static double peak_median(int kind, int nthreads, long iters, int reps, double *r) {
    if (!peak_supported(kind)) return 0.0;
    for (int k = 0; k < reps; k++) r[k] = peak_measure(kind, nthreads, iters);
    qsort(r, (size_t)reps, sizeof r[0], peak_cmp);
    return r[reps / 2];
}

/* The f32 FMA peak of nthreads threads (zmm where there is AVX-512, else
 * ymm), in GFLOP/s: a short measurement for benchmarks' "% of peak". */
static __attribute__((unused)) double kiln_peak_gflops(int nthreads) {
    double r[15];
    int kind = peak_supported(PEAK_FMA_ZMM) ? PEAK_FMA_ZMM : PEAK_FMA_YMM;
    return peak_median(kind, nthreads, 4000000L, 5, r);
}

#ifndef PEAK_NO_MAIN
int main(int argc, char **argv) {
    int maxth = argc > 1 ? atoi(argv[1]) : 2;
    if (maxth < 1 || maxth > 64) maxth = 2;
    for (int kind = 0; kind < PEAK_KINDS; kind++) {
        if (!peak_supported(kind)) continue;
        for (int nt = 1; nt <= maxth; nt++) {
            double r[7];
            double med = peak_median(kind, nt, 20000000L, 7, r);
            printf("peak %s: %d thread(s): %.1f G%s/s (%.1f per core; min %.1f max %.1f)\n",
                   peak_names[kind], nt, med, kind == PEAK_VNNI_ZMM ? "OP" : "FLOP", med / nt,
                   r[0], r[6]);
        }
    }
    return 0;
}
#endif
