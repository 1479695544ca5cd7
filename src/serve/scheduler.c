/* src/serve/scheduler.c: a model's request queue, dynamic batcher and
 * instance workers.
 *
 * Every loaded model version has one queue and instance_count workers, each
 * owning a kiln session (so instances run side by side; the server's thread
 * budget is split between them). A worker takes the oldest job; with dynamic
 * batching it also takes the queued jobs that can share its batch (same
 * inputs given, same dtypes, same shape past the batch dimension) up to
 * max_batch_size, waiting at most max_queue_delay_microseconds after the
 * oldest job arrived for the batch to fill (a full batch, or the largest
 * preferred size, runs at once; at the deadline a batch is cut back to the
 * largest preferred size it holds, if any). The batch's inputs are stacked
 * along dimension 0, the session runs once, and each job gets its rows of
 * every output. Queue policy: jobs past max_queue_size are rejected at once;
 * a job whose timeout passes while queued is answered 503 (timeout_action
 * REJECT) or waits behind every job still within its timeout (DELAY).
 * With priority_levels the queue is kept in level order (level 1 first,
 * arrival order within a level), so batches lead with the highest level,
 * and each level has its queue policy (priority_queue_policy, else the
 * default one; max_queue_size counts the level's own jobs).
 *
 * Fast path: when a job arrives to an empty queue, an idle instance and no
 * batch to wait for (no dynamic batching, or a queue delay of 0), the
 * requesting thread runs it on that instance itself: the same batch of one a
 * worker would run at once, without the two thread hand-offs. Each instance
 * is run by one thread at a time (busy[]); a worker waits while its
 * instance is lent out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve_internal.h"

struct serve_sched {
    serve_model *m;
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* a job arrived, or stop */
    serve_job *head, *tail;
    int64_t queued;
    int stop;
    int n_workers;
    pthread_t *threads;
    kiln_session **sessions;     /* one per worker */
    int *busy;                   /* instance w is running a batch */
    int n_graph_inputs, n_graph_outputs;
    const char **input_names;    /* graph inputs the config lists, in config order */
};

typedef struct worker_arg {
    serve_sched *s;
    int index;
    serve_job **jobs;            /* room for the largest batch's jobs */
} worker_arg;

uint64_t serve_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void serve_cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void job_finish(serve_job *j, int status, const char *msg) {
    pthread_mutex_lock(&j->mu);
    j->status = status;
    if (msg) snprintf(j->err, sizeof j->err, "%s", msg);
    j->done = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* The request's tensor for config input i, or NULL when it left it out. */
static const kiln_tensor *job_input(const serve_sched *s, const serve_job *j, int i) {
    const serve_request *r = j->req;
    for (int k = 0; k < r->n_inputs; k++)
        if (!strcmp(r->input_names[k], s->input_names[i])) return r->inputs[k];
    return NULL;
}

/* Can b run in one batch with a? Same inputs present, dtypes and shapes past
 * the batch dimension. */
static int batchable(const serve_sched *s, const serve_job *a, const serve_job *b) {
    for (int i = 0; i < s->m->cfg.n_inputs; i++) {
        const kiln_tensor *x = job_input(s, a, i), *y = job_input(s, b, i);
        if (!x || !y) {
            if (x != y) return 0;
            continue;
        }
        if (kiln_tensor_dtype(x) != kiln_tensor_dtype(y) ||
            kiln_tensor_ndim(x) != kiln_tensor_ndim(y))
            return 0;
        const int64_t *dx = kiln_tensor_dims(x), *dy = kiln_tensor_dims(y);
        for (int d = 1; d < kiln_tensor_ndim(x); d++)
            if (dx[d] != dy[d]) return 0;
    }
    return 1;
}

static void queue_remove(serve_sched *s, serve_job *prev, serve_job *j) {
    if (prev) prev->next = j->next;
    else s->head = j->next;
    if (s->tail == j) s->tail = prev;
    j->next = NULL;
    s->queued--;
}

/* Queues job after every job of its priority level or a higher one (a
 * lower number): the queue runs by level, oldest first within a level.
 * Holds s->mu. */
static void queue_insert(serve_sched *s, serve_job *job) {
    serve_job *prev = NULL;
    if (s->tail && s->tail->priority > job->priority) /* else it goes last */
        for (serve_job *j = s->head; j && j->priority <= job->priority; j = j->next) prev = j;
    else
        prev = s->tail;
    job->next = prev ? prev->next : s->head;
    if (prev) prev->next = job;
    else s->head = job;
    if (prev == s->tail) s->tail = job;
    s->queued++;
}

/* Jobs queued at priority level `level` (each level's max_queue_size counts
 * its own; without levels, all). Holds s->mu. */
static int64_t queued_at(const serve_sched *s, int64_t level) {
    if (!s->m->cfg.priority_levels) return s->queued;
    int64_t n = 0;
    for (const serve_job *j = s->head; j; j = j->next) n += j->priority == level;
    return n;
}

/* Answers the queued jobs whose queue timeout has passed. Holds s->mu. */
static void expire_jobs(serve_sched *s, uint64_t now) {
    serve_job *prev = NULL, *j = s->head;
    while (j) {
        serve_job *next = j->next;
        if (j->deadline_ns && now >= j->deadline_ns) {
            queue_remove(s, prev, j);
            j->queue_ns = now - j->t_enqueue_ns;
            job_finish(j, 503, "request timeout expired while queued");
        } else {
            prev = j;
        }
        j = next;
    }
}

static int is_preferred(const serve_model_config *c, int size) {
    for (int i = 0; i < c->n_preferred; i++)
        if (c->preferred_batch_sizes[i] == size) return 1;
    return 0;
}

static int largest_preferred(const serve_model_config *c) {
    int best = 0;
    for (int i = 0; i < c->n_preferred; i++)
        if (c->preferred_batch_sizes[i] > best) best = c->preferred_batch_sizes[i];
    return best;
}

/* Is j past a timeout whose action is DELAY (it then yields to the jobs
 * still within their timeout)? */
static int delayed(const serve_job *j, uint64_t now) {
    return j->delay_after_ns && now >= j->delay_after_ns;
}

/* Picks the jobs of the next batch into out[] (queue order, oldest first,
 * jobs past a DELAY timeout last), returns how many; 0 when stopping with an
 * empty queue. Holds s->mu and may wait on s->cv (releasing it) for a dynamic
 * batch to fill. */
static int collect(serve_sched *s, int w, serve_job **out, int max_jobs) {
    const serve_model_config *c = &s->m->cfg;
    for (;;) {
        while ((!s->head || s->busy[w]) && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (s->busy[w]) { /* stopping while the instance is lent out: wait for it */
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        uint64_t now = serve_now_ns();
        expire_jobs(s, now);
        if (!s->head) {
            if (s->stop) return 0;
            continue;
        }
        /* the oldest job within its timeout leads; jobs past a DELAY timeout
         * come after all of those */
        serve_job *first = s->head;
        while (first && delayed(first, now)) first = first->next;
        if (!first) first = s->head;
        int n = 0, total = 0;
        if (!c->dynamic_batching) {
            out[n++] = first;
            total = first->batch;
        } else {
            for (int pass = 0; pass < 2 && total < c->max_batch_size; pass++)
                for (serve_job *j = s->head; j && n < max_jobs; j = j->next) {
                    if (delayed(j, now) != pass) continue;
                    if (total + j->batch <= c->max_batch_size && batchable(s, first, j)) {
                        out[n++] = j;
                        total += j->batch;
                        if (total == c->max_batch_size) break;
                    }
                }
            uint64_t until = first->t_enqueue_ns + (uint64_t)c->max_queue_delay_us * 1000ull;
            int ready = total >= c->max_batch_size || s->stop ||
                        (c->n_preferred && total >= largest_preferred(c)) || now >= until;
            if (!ready) {
                struct timespec ts = {(time_t)(until / 1000000000ull),
                                      (long)(until % 1000000000ull)};
                int rc = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
                if (rc == 0 || rc == ETIMEDOUT) continue; /* look again: more may have come */
            }
            /* at the deadline, cut back to the largest preferred size held */
            if (c->n_preferred && !is_preferred(c, total) && total < c->max_batch_size) {
                int sum = 0, cut = 0;
                for (int k = 0; k < n; k++) {
                    sum += out[k]->batch;
                    if (is_preferred(c, sum)) cut = k + 1;
                }
                if (cut) n = cut;
            }
        }
        /* unlink the chosen jobs */
        for (int k = 0; k < n; k++) {
            serve_job *prev = NULL;
            for (serve_job *j = s->head; j; prev = j, j = j->next)
                if (j == out[k]) {
                    queue_remove(s, prev, j);
                    break;
                }
            out[k]->queue_ns = now - out[k]->t_enqueue_ns;
        }
        return n;
    }
}

/* Stacks the jobs' values of config input i along dimension 0 into a new
 * tensor (*out, caller frees). All jobs have it with one dtype and shape past
 * dimension 0. */
static kiln_status stack_input(const serve_sched *s, serve_job **jobs, int n, int i,
                               kiln_tensor **out) {
    const kiln_tensor *t0 = job_input(s, jobs[0], i);
    int nd = kiln_tensor_ndim(t0);
    int64_t dims[KILN_MAX_DIMS];
    memcpy(dims, kiln_tensor_dims(t0), sizeof(int64_t) * nd);
    dims[0] = 0;
    for (int k = 0; k < n; k++) dims[0] += kiln_tensor_dims(job_input(s, jobs[k], i))[0];
    kiln_dtype dt = kiln_tensor_dtype(t0);
    kiln_status st = kiln_tensor_create(dt, nd, dims, out);
    if (st != KILN_OK) return st;
    char *dst = kiln_tensor_data(*out);
    for (int k = 0; k < n; k++) {
        const kiln_tensor *t = job_input(s, jobs[k], i);
        int64_t count = kiln_tensor_numel(t);
        if (dt == KILN_DTYPE_STRING) {
            char **d = (char **)dst, *const *src = kiln_tensor_data(t);
            for (int64_t e = 0; e < count; e++) {
                char *copy = strdup(src[e]);
                if (!copy) {
                    kiln_tensor_free(*out);
                    *out = NULL;
                    return KILN_E_NOMEM;
                }
                free(d[e]);
                d[e] = copy;
            }
            dst += count * sizeof(char *);
        } else {
            size_t bytes = (size_t)count * kiln_dtype_size(dt);
            if (bytes) memcpy(dst, kiln_tensor_data(t), bytes);
            dst += bytes;
        }
    }
    return KILN_OK;
}

/* Rows [row, row + rows) of output t as a new tensor (the whole of t when
 * rows < 0). */
static kiln_status slice_rows(const kiln_tensor *t, int64_t row, int64_t rows, kiln_tensor **out) {
    if (rows < 0) return kiln_tensor_copy(t, kiln_tensor_dtype(t), out);
    kiln_tensor *view = NULL;
    kiln_status st = kiln_tensor_slice_view(t, 0, row, row + rows, 1, &view);
    if (st != KILN_OK) return st;
    st = kiln_tensor_copy(view, kiln_tensor_dtype(t), out);
    kiln_tensor_free(view);
    return st;
}

static void free_outputs(serve_job *j) {
    for (int o = 0; o < j->n_outputs; o++) kiln_tensor_free(j->outputs[o]);
    free(j->outputs);
    j->outputs = NULL;
    j->n_outputs = 0;
}

/* Runs one batch on worker w's session and answers its jobs. */
static void run_batch(serve_sched *s, int w, serve_job **jobs, int n) {
    serve_model *m = s->m;
    const serve_model_config *c = &m->cfg;
    int n_in = c->n_inputs, total = 0;
    for (int k = 0; k < n; k++) total += jobs[k]->batch;
    uint64_t t0 = serve_now_ns();
    const char *names[n_in > 0 ? n_in : 1];
    const kiln_tensor *inputs[n_in > 0 ? n_in : 1];
    kiln_tensor *stacked[n_in > 0 ? n_in : 1];
    int given = 0;
    char msg[512] = "";
    int status = 0;
    kiln_status st = KILN_OK;
    for (int i = 0; i < n_in; i++) {
        stacked[i] = NULL;
        if (!job_input(s, jobs[0], i)) continue; /* an optional input left out */
        names[given] = s->input_names[i];
        if (n == 1) {
            inputs[given++] = job_input(s, jobs[0], i);
            continue;
        }
        if ((st = stack_input(s, jobs, n, i, &stacked[i])) != KILN_OK) {
            snprintf(msg, sizeof msg, "stacking input '%s' for a batch of %d: %s",
                     s->input_names[i], total, kiln_status_text(st));
            status = 500;
            break;
        }
        inputs[given++] = stacked[i];
    }
    uint64_t t1 = serve_now_ns(), t2 = t1;
    if (!status) {
        st = kiln_session_run(s->sessions[w], given, names, inputs);
        t2 = serve_now_ns();
        if (st != KILN_OK) {
            snprintf(msg, sizeof msg, "model '%s' version %s failed to run: %s", m->name,
                     m->version_str, kiln_last_error());
            status = 500;
        }
    }
    for (int i = 0; i < n_in; i++) kiln_tensor_free(stacked[i]);
    /* each job's rows of every output */
    int64_t row = 0;
    for (int k = 0; k < n && !status; k++) {
        serve_job *j = jobs[k];
        j->n_outputs = s->n_graph_outputs;
        if (!(j->outputs = calloc((size_t)s->n_graph_outputs, sizeof *j->outputs))) {
            status = 500;
            snprintf(msg, sizeof msg, "out of memory");
            break;
        }
        for (int o = 0; o < s->n_graph_outputs && !status; o++) {
            const kiln_tensor *t = NULL;
            if ((st = kiln_session_output(s->sessions[w], o, &t)) != KILN_OK) {
                status = 500;
                snprintf(msg, sizeof msg, "reading output %d: %s", o, kiln_last_error());
            } else if (c->max_batch_size > 0 &&
                       (kiln_tensor_ndim(t) < 1 || kiln_tensor_dims(t)[0] != total)) {
                status = 500;
                snprintf(msg, sizeof msg,
                         "model '%s': output %d does not have the batch size %d as its "
                         "first dimension, so max_batch_size %d cannot apply to it",
                         m->name, o, total, c->max_batch_size);
            } else if ((st = slice_rows(t, row, c->max_batch_size > 0 ? j->batch : -1,
                                        &j->outputs[o])) != KILN_OK) {
                status = 500;
                snprintf(msg, sizeof msg, "copying output %d: %s", o, kiln_status_text(st));
            }
        }
        row += j->batch;
    }
    uint64_t t3 = serve_now_ns();
    if (!status) serve_stats_batch(&m->stats, total, t1 - t0, t2 - t1, t3 - t2);
    for (int k = 0; k < n; k++) {
        if (status) free_outputs(jobs[k]);
        job_finish(jobs[k], status, status ? msg : NULL);
    }
}

static void *worker_main(void *arg) {
    worker_arg *a = arg;
    serve_sched *s = a->s;
    int max_jobs = s->m->cfg.max_batch_size > 0 ? s->m->cfg.max_batch_size : 1;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int n = collect(s, a->index, a->jobs, max_jobs);
        if (n) s->busy[a->index] = 1;
        pthread_mutex_unlock(&s->mu);
        if (n == 0) break;
        run_batch(s, a->index, a->jobs, n);
        pthread_mutex_lock(&s->mu);
        s->busy[a->index] = 0;
        pthread_mutex_unlock(&s->mu);
    }
    free(a->jobs);
    free(a);
    return NULL;
}

void serve_sched_submit(serve_sched *s, serve_job *job) {
    const serve_model_config *c = &s->m->cfg;
    const serve_queue_policy *q = serve_config_queue_policy(c, job->priority);
    job->t_enqueue_ns = serve_now_ns();
    int64_t timeout = q->default_timeout_us;
    if (job->req->timeout_us > 0 && (q->allow_timeout_override || !timeout))
        timeout = job->req->timeout_us;
    uint64_t limit = timeout > 0 ? job->t_enqueue_ns + (uint64_t)timeout * 1000ull : 0;
    job->deadline_ns = q->timeout_action_delay ? 0 : limit;    /* REJECT */
    job->delay_after_ns = q->timeout_action_delay ? limit : 0; /* DELAY */
    job->done = 0;
    job->status = 0;
    job->next = NULL;
    pthread_mutex_init(&job->mu, NULL);
    serve_cond_init_monotonic(&job->cv);
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        job->status = 503;
        snprintf(job->err, sizeof job->err, "model '%s' is being unloaded", s->m->name);
        goto out;
    }
    if (q->max_queue_size > 0 && queued_at(s, job->priority) >= q->max_queue_size) {
        pthread_mutex_unlock(&s->mu);
        job->status = 503;
        if (c->priority_levels)
            snprintf(job->err, sizeof job->err,
                     "request rejected: the queue of model '%s' is full at priority level %lld "
                     "(max_queue_size %lld)", s->m->name, (long long)job->priority,
                     (long long)q->max_queue_size);
        else
            snprintf(job->err, sizeof job->err,
                     "request rejected: the queue of model '%s' is full (max_queue_size %lld)",
                     s->m->name, (long long)q->max_queue_size);
        goto out;
    }
    if (!s->head && (!c->dynamic_batching || c->max_queue_delay_us == 0)) {
        int w = 0;
        while (w < s->n_workers && s->busy[w]) w++;
        if (w < s->n_workers) { /* the fast path: run it here, on idle instance w */
            s->busy[w] = 1;
            pthread_mutex_unlock(&s->mu);
            job->queue_ns = 0;
            run_batch(s, w, &job, 1);
            pthread_mutex_lock(&s->mu);
            s->busy[w] = 0;
            if (s->head || s->stop) pthread_cond_broadcast(&s->cv); /* jobs queued meanwhile */
            pthread_mutex_unlock(&s->mu);
            goto out;
        }
    }
    queue_insert(s, job);
    if (c->dynamic_batching) pthread_cond_broadcast(&s->cv);
    else pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&job->mu);
    while (!job->done) {
        if (!job->deadline_ns) {
            pthread_cond_wait(&job->cv, &job->mu);
            continue;
        }
        struct timespec ts = {(time_t)(job->deadline_ns / 1000000000ull),
                              (long)(job->deadline_ns % 1000000000ull)};
        if (pthread_cond_timedwait(&job->cv, &job->mu, &ts) != ETIMEDOUT || job->done) continue;
        /* the timeout passed: a job still queued is taken out and answered now;
         * one a worker has taken is waited for */
        pthread_mutex_unlock(&job->mu);
        pthread_mutex_lock(&s->mu);
        serve_job *prev = NULL, *j = s->head;
        while (j && j != job) prev = j, j = j->next;
        if (j) queue_remove(s, prev, j);
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&job->mu);
        if (j) {
            job->queue_ns = serve_now_ns() - job->t_enqueue_ns;
            job->status = 503;
            snprintf(job->err, sizeof job->err, "request timeout expired while queued");
            job->done = 1;
        }
        job->deadline_ns = 0;
    }
    pthread_mutex_unlock(&job->mu);
out:
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
}

static void sched_free(serve_sched *s) {
    for (int w = 0; w < s->n_workers; w++) kiln_session_free(s->sessions[w]);
    free(s->sessions);
    free(s->threads);
    free(s->busy);
    free(s->input_names);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

kiln_status serve_sched_start(serve_model *m, int threads, serve_sched **out, char *err,
                              size_t errlen) {
    *out = NULL;
    const serve_model_config *c = &m->cfg;
    serve_sched *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->m = m;
    pthread_mutex_init(&s->mu, NULL);
    serve_cond_init_monotonic(&s->cv);
    s->n_graph_inputs = kiln_graph_num_inputs(m->graph);
    s->n_graph_outputs = kiln_graph_num_outputs(m->graph);
    int n = c->instance_count > 0 ? c->instance_count : 1;
    s->sessions = calloc((size_t)n, sizeof *s->sessions);
    s->threads = calloc((size_t)n, sizeof *s->threads);
    s->busy = calloc((size_t)n, sizeof *s->busy);
    s->input_names = calloc((size_t)(c->n_inputs > 0 ? c->n_inputs : 1), sizeof(char *));
    if (!s->sessions || !s->threads || !s->busy || !s->input_names) goto nomem;
    for (int i = 0; i < c->n_inputs; i++) s->input_names[i] = c->inputs[i].name;
    kiln_session_options so = {0};
    so.threads = threads;
    so.precision = c->precision;
    /* KIND_GPU: GPU 0 (failing where there is none); KIND_AUTO: GPU 0 when
     * there is one, else the CPU */
    const char *kind = c->instance_kind ? c->instance_kind : "KIND_CPU";
    int gpu = !strcmp(kind, "KIND_GPU"), auto_kind = !strcmp(kind, "KIND_AUTO");
    so.device = gpu || auto_kind ? KILN_DEVICE_CUDA : KILN_DEVICE_CPU;
    for (int w = 0; w < n; w++) {
        kiln_status st = kiln_session_create(m->graph, &so, &s->sessions[w]);
        if (st != KILN_OK && auto_kind && so.device == KILN_DEVICE_CUDA) {
            so.device = KILN_DEVICE_CPU;
            st = kiln_session_create(m->graph, &so, &s->sessions[w]);
        }
        if (st != KILN_OK) {
            snprintf(err, errlen, "model '%s' version %s: creating instance %d (%s): %s",
                     m->name, m->version_str, w, kind, kiln_last_error());
            s->n_workers = w;
            sched_free(s);
            return st;
        }
        s->n_workers = w + 1;
    }
    int max_jobs = c->max_batch_size > 0 ? c->max_batch_size : 1;
    for (int w = 0; w < n; w++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) {
            a->s = s;
            a->index = w;
            a->jobs = malloc(sizeof *a->jobs * (size_t)max_jobs);
        }
        if (!a || !a->jobs || pthread_create(&s->threads[w], NULL, worker_main, a) != 0) {
            if (a) free(a->jobs);
            free(a);
            snprintf(err, errlen, "model '%s': cannot start instance thread %d", m->name, w);
            pthread_mutex_lock(&s->mu);
            s->stop = 1;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            for (int k = 0; k < w; k++) pthread_join(s->threads[k], NULL);
            sched_free(s);
            return KILN_E_NOMEM;
        }
    }
    *out = s;
    return KILN_OK;
nomem:
    snprintf(err, errlen, "model '%s': out of memory starting its instances", m->name);
    if (s) sched_free(s);
    return KILN_E_NOMEM;
}

void serve_sched_stop(serve_sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int w = 0; w < s->n_workers; w++) pthread_join(s->threads[w], NULL);
    sched_free(s);
}

kiln_status serve_sched_warm(serve_sched *s, int n, const char *const *names,
                             const kiln_tensor *const *inputs, char *err, size_t errlen) {
    for (int w = 0; w < s->n_workers; w++) {
        kiln_status st = kiln_session_run(s->sessions[w], n, names, inputs);
        if (st != KILN_OK) {
            snprintf(err, errlen, "model '%s' version %s: warm-up on instance %d: %s",
                     s->m->name, s->m->version_str, w, kiln_last_error());
            return st;
        }
    }
    return KILN_OK;
}
