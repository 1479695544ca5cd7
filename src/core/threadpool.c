/* src/core/threadpool.c: a fixed pool of worker threads running one
 * fork-join task at a time: fn(arg, ith, nth) on nth threads, the caller
 * being thread 0.
 *
 * Hand-off is spin-then-block, as in onnxruntime's and oneDNN's pools: a
 * graph runs one fork-join per node, often tens of microseconds apart, and a
 * futex wake-up costs about as much as a small node. So a worker that
 * finished a task watches the task counter for KILN_POOL_SPIN_US (default
 * 200 us) before it sleeps on the condition variable, and the caller
 * watches the pending count the same way before it sleeps. The counters are
 * C11 atomics; the mutex and condition variables are only for sleeping, with
 * "sleepers" counts so that a poster signals only when someone sleeps (the
 * counter store and the sleepers load are sequentially consistent, as are
 * the sleepers increment and the counter re-check under the mutex, so a
 * wake-up cannot be lost). KILN_POOL_SPIN_US=0 turns spinning off, for
 * machines shared with other work where a spinning thread steals a core. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#include "core/core.h"

struct kiln__pool {
    int n; /* threads including the caller */
    pthread_t *threads;
    int64_t spin_ns; /* how long a thread spins before it sleeps */
    /* task, written by the caller before generation is bumped */
    kiln__task_fn fn;
    void *arg;
    int nth; /* threads taking part in the current task */
    _Atomic uint64_t generation; /* bumped per task */
    _Atomic int pending;         /* workers still running the current task */
    _Atomic int quit;
    /* sleeping */
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    _Atomic int sleeping_workers;
    _Atomic int caller_sleeping;
};

typedef struct {
    kiln__pool *p;
    int ith;
} worker_arg;

int kiln__cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until done(p, v) or spin_ns elapse; returns whether done. The clock
 * is read every 64 pauses (a pause is tens of cycles). */
static int spin_until(const kiln__pool *p, int (*done)(kiln__pool *, uint64_t), uint64_t v) {
    if (p->spin_ns <= 0) return done((kiln__pool *)p, v);
    int64_t deadline = now_ns() + p->spin_ns;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done((kiln__pool *)p, v)) return 1;
            cpu_relax();
        }
        if (now_ns() > deadline) return done((kiln__pool *)p, v);
    }
}

static int new_task_or_quit(kiln__pool *p, uint64_t seen) {
    return atomic_load(&p->generation) != seen || atomic_load(&p->quit);
}

static int all_done(kiln__pool *p, uint64_t unused) {
    (void)unused;
    return atomic_load(&p->pending) == 0;
}

static void *worker(void *varg) {
    worker_arg wa = *(worker_arg *)varg;
    free(varg);
    kiln__pool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        if (!spin_until(p, new_task_or_quit, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleeping_workers, 1);
            while (!new_task_or_quit(p, seen)) pthread_cond_wait(&p->start, &p->mu);
            atomic_fetch_sub(&p->sleeping_workers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = atomic_load(&p->generation);
        if (wa.ith < p->nth) p->fn(p->arg, wa.ith, p->nth);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static int64_t spin_ns_from_env(void) {
    const char *s = getenv("KILN_POOL_SPIN_US");
    if (!s || !*s) return 200 * 1000;
    char *end;
    long us = strtol(s, &end, 10);
    if (*end || us < 0) return 200 * 1000;
    return (int64_t)us * 1000;
}

kiln_status kiln__pool_create(int nthreads, kiln__pool **out) {
    *out = NULL;
    if (nthreads <= 0) nthreads = kiln__cpu_count();
    if (nthreads > 256) return kiln__err(KILN_E_INVAL, "thread count %d exceeds 256", nthreads);
    kiln__pool *p = calloc(1, sizeof *p);
    if (!p) return kiln__err(KILN_E_NOMEM, "out of memory");
    p->n = nthreads;
    p->spin_ns = spin_ns_from_env();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->threads) {
        kiln__pool_free(p);
        return kiln__err(KILN_E_NOMEM, "out of memory");
    }
    for (int i = 1; i < nthreads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            p->n = i;
            kiln__pool_free(p);
            return kiln__err(KILN_E_NOMEM, "out of memory");
        }
        wa->p = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            p->n = i;
            kiln__pool_free(p);
            return kiln__err(KILN_E_INTERNAL, "cannot start worker thread %d", i);
        }
    }
    *out = p;
    return KILN_OK;
}

void kiln__pool_free(kiln__pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        if (p->threads) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int kiln__pool_size(const kiln__pool *p) { return p ? p->n : 1; }

void kiln__pool_run(kiln__pool *p, int n, kiln__task_fn fn, void *arg) {
    int nth = (n <= 0 || !p || n > p->n) ? kiln__pool_size(p) : n;
    if (!p || nth <= 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->nth = nth;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->generation, 1); /* publishes fn, arg, nth */
    if (atomic_load(&p->sleeping_workers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->start);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, nth);
    if (!spin_until(p, all_done, 0)) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, 1);
        while (!all_done(p, 0)) pthread_cond_wait(&p->done, &p->mu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
