/* src/core/threadpool.c: a fixed pool of worker threads running one
 * fork-join task at a time: fn(arg, ith, nth) on nth threads, the caller
 * being thread 0. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"

struct kiln__pool {
    int n; /* threads including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    uint64_t generation; /* bumped per task */
    int pending;         /* workers still running the current task */
    int nth;             /* threads taking part in the current task */
    kiln__task_fn fn;
    void *arg;
    int quit;
};

typedef struct {
    kiln__pool *p;
    int ith;
} worker_arg;

int kiln__cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void *worker(void *varg) {
    worker_arg wa = *(worker_arg *)varg;
    free(varg);
    kiln__pool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->start, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->generation;
        int nth = p->nth;
        kiln__task_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        if (wa.ith < nth) fn(arg, wa.ith, nth);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

kiln_status kiln__pool_create(int nthreads, kiln__pool **out) {
    *out = NULL;
    if (nthreads <= 0) nthreads = kiln__cpu_count();
    if (nthreads > 256) return kiln__err(KILN_E_INVAL, "thread count %d exceeds 256", nthreads);
    kiln__pool *p = calloc(1, sizeof *p);
    if (!p) return kiln__err(KILN_E_NOMEM, "out of memory");
    p->n = nthreads;
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
    p->quit = 1;
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->nth = nth;
    p->pending = p->n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0, nth);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
