/* bench/peak.c: this CPU's f32 FMA peak, per core and for all cores: 16
 * independent chains of vfmadd on zmm (AVX-512) and on ymm (AVX2), enough to
 * cover the FMA latency on every current x86 core. Prints GFLOP/s (median of
 * repeated runs). Build: bench/build_gemm_bench.sh; run: build-<x>/bench/peak [threads]. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 16
#define ITERS 20000000L

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ITERS x CHAINS FMAs of 16 lanes; returns a value the compiler must keep. */
__attribute__((target("avx512f"), noinline)) static float run_zmm(void) {
    __m512 c[CHAINS];
    const __m512 x = _mm512_set1_ps(0.9999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) c[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < ITERS; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) c[i] = _mm512_fmadd_ps(c[i], x, y);
    }
    __m512 s = c[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, c[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) static float run_ymm(void) {
    __m256 c[CHAINS];
    const __m256 x = _mm256_set1_ps(0.9999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) c[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < ITERS; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < CHAINS; i++) c[i] = _mm256_fmadd_ps(c[i], x, y);
    }
    __m256 s = c[0];
    for (int i = 1; i < CHAINS; i++) s = _mm256_add_ps(s, c[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

typedef struct {
    int zmm;
    float sink;
} job;

static void *worker(void *arg) {
    job *j = arg;
    j->sink = j->zmm ? run_zmm() : run_ymm();
    return NULL;
}

/* GFLOP/s of nthreads threads each running one loop. */
static double measure(int zmm, int nthreads) {
    pthread_t th[64];
    job jobs[64];
    double t0 = now();
    for (int i = 0; i < nthreads; i++) {
        jobs[i].zmm = zmm;
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    double dt = now() - t0;
    volatile float sink = 0;
    for (int i = 0; i < nthreads; i++) sink += jobs[i].sink;
    (void)sink;
    return (double)ITERS * CHAINS * (zmm ? 16 : 8) * 2 * nthreads / dt * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int maxth = argc > 1 ? atoi(argv[1]) : 2;
    if (maxth < 1 || maxth > 64) maxth = 2;
    __builtin_cpu_init();
    for (int zmm = 1; zmm >= 0; zmm--) {
        if (zmm && !__builtin_cpu_supports("avx512f")) continue;
        if (!zmm && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) continue;
        for (int nt = 1; nt <= maxth; nt++) {
            double r[7];
            for (int k = 0; k < 7; k++) r[k] = measure(zmm, nt);
            qsort(r, 7, sizeof r[0], cmp);
            printf("peak %s fma f32: %d thread(s): %.1f GFLOP/s (%.1f per core; min %.1f max %.1f)\n",
                   zmm ? "zmm" : "ymm", nt, r[3], r[3] / nt, r[0], r[6]);
        }
    }
    return 0;
}
