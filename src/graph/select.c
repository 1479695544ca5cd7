/* src/graph/select.c: algorithm choice per node (heuristic or tuned), the
 * timing cache, and running a node's chosen kernel (select.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "graph/select.h"

/* ---- running a node ------------------------------------------------------ */

#define MAX_THREADS 256

typedef struct par_arg {
    const kiln__kctx *ctx;
    kiln__op_fn fn;
    kiln_status st[MAX_THREADS];
    char msg[1024];
    int failed;
} par_arg;

static void par_task(void *a, int ith, int nth) {
    par_arg *pa = a;
    kiln__kctx c = *pa->ctx;
    c.ith = ith;
    c.nth = nth;
    pa->st[ith] = pa->fn(&c);
    if (pa->st[ith] != KILN_OK && !__atomic_exchange_n(&pa->failed, 1, __ATOMIC_ACQ_REL))
        snprintf(pa->msg, sizeof pa->msg, "%s", kiln_last_error());
}

kiln_status kiln__run_node(const kiln__algo *algo, const kiln__op_def *def, kiln__kctx *c) {
    kiln__op_fn fn = algo ? algo->run : def->ref;
    int flags = algo ? algo->flags : def->flags;
    c->ith = 0;
    c->nth = 1;
    if (!(flags & KILN_OPF_PARALLEL) || !c->pool || kiln__pool_size(c->pool) <= 1) return fn(c);
    par_arg pa; /* ~2 KB on the stack: no allocation per run */
    pa.failed = 0;
    pa.ctx = c;
    pa.fn = fn;
    int nth = kiln__pool_size(c->pool);
    if (nth > MAX_THREADS) nth = MAX_THREADS;
    kiln__pool_run(c->pool, nth, par_task, &pa);
    for (int i = 0; i < nth; i++)
        if (pa.st[i] != KILN_OK) return kiln__err(pa.st[i], "%s", pa.msg);
    return KILN_OK;
}

/* ---- timing cache --------------------------------------------------------- */

typedef struct entry {
    char *key;
    const kiln__algo *algo;
    int variant; /* an algorithm with variants (algo.h): the one chosen; else -1 */
    double ms;
} entry;

struct kiln__timing_cache {
    char *path;
    entry *e;
    int n, cap;
    int dirty;
};

kiln_status kiln__timing_cache_create(const char *path, kiln__timing_cache **out) {
    kiln__timing_cache *tc = calloc(1, sizeof *tc);
    if (!tc || (path && !(tc->path = kiln__strdup(path)))) {
        free(tc);
        return kiln__err(KILN_E_NOMEM, "out of memory");
    }
    *out = tc;
    return KILN_OK;
}

void kiln__timing_cache_free(kiln__timing_cache *tc) {
    if (!tc) return;
    for (int i = 0; i < tc->n; i++) free(tc->e[i].key);
    free(tc->e);
    free(tc->path);
    free(tc);
}

int kiln__timing_cache_size(const kiln__timing_cache *tc) { return tc ? tc->n : 0; }

static entry *cache_find(const kiln__timing_cache *tc, const char *key) {
    for (int i = 0; tc && i < tc->n; i++)
        if (strcmp(tc->e[i].key, key) == 0) return &tc->e[i];
    return NULL;
}

static kiln_status cache_put(kiln__timing_cache *tc, const char *key, const kiln__algo *a,
                             int variant, double ms) {
    entry *e = cache_find(tc, key);
    tc->dirty = 1;
    if (e) {
        e->algo = a;
        e->variant = variant;
        e->ms = ms;
        return KILN_OK;
    }
    if (tc->n == tc->cap) {
        int cap = tc->cap ? 2 * tc->cap : 32;
        entry *ne = realloc(tc->e, (size_t)cap * sizeof *ne);
        if (!ne) return kiln__err(KILN_E_NOMEM, "out of memory");
        tc->e = ne;
        tc->cap = cap;
    }
    char *k = kiln__strdup(key);
    if (!k) return kiln__err(KILN_E_NOMEM, "out of memory");
    tc->e[tc->n++] = (entry){k, a, variant, ms};
    return KILN_OK;
}

kiln_status kiln__timing_cache_load(kiln__timing_cache *tc) {
    if (!tc->path) return KILN_OK;
    FILE *f = fopen(tc->path, "r");
    if (!f) {
        if (errno == ENOENT) return KILN_OK;
        return kiln__err(KILN_E_IO, "%s: cannot open timing cache: %s", tc->path, strerror(errno));
    }
    char line[4096];
    int lineno = 0;
    kiln_status s = KILN_OK;
    while (s == KILN_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n') line[--len] = 0;
        else if (len == sizeof line - 1) {
            s = kiln__err(KILN_E_FORMAT, "%s:%d: line too long", tc->path, lineno);
            break;
        }
        if (!line[0] || line[0] == '#') continue;
        char name[128];
        double ms;
        int used = 0, variant = -1;
        if (sscanf(line, "%127s %lf %n", name, &ms, &used) != 2 || !line[used] || !(ms >= 0)) {
            s = kiln__err(KILN_E_FORMAT, "%s:%d: expected '<algorithm>[#<variant>] <ms> <key>'",
                          tc->path, lineno);
            break;
        }
        char *hash = strchr(name, '#');
        if (hash) {
            char *end;
            long v = strtol(hash + 1, &end, 10);
            if (end == hash + 1 || *end || v < 0 || v > 0x7fffffff) {
                s = kiln__err(KILN_E_FORMAT, "%s:%d: bad variant '%s' (expected '<algorithm>#<n>')",
                              tc->path, lineno, name);
                break;
            }
            *hash = 0;
            variant = (int)v;
        }
        const kiln__algo *a = kiln__algo_find(name);
        if (a) s = cache_put(tc, line + used, a, variant, ms);
    }
    fclose(f);
    tc->dirty = 0;
    return s;
}

kiln_status kiln__timing_cache_save(kiln__timing_cache *tc) {
    if (!tc->path || !tc->dirty) return KILN_OK;
    size_t n = strlen(tc->path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return kiln__err(KILN_E_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp", tc->path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        kiln_status s = kiln__err(KILN_E_IO, "%s: cannot write timing cache: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    fprintf(f, "# kiln timing cache: <algorithm>[#<variant>] <median ms> "
               "<cpu or gpu|threads|precision|node signature>\n");
    for (int i = 0; i < tc->n; i++) {
        const entry *e = &tc->e[i];
        if (e->variant >= 0) fprintf(f, "%s#%d %.6f %s\n", e->algo->name, e->variant, e->ms, e->key);
        else fprintf(f, "%s %.6f %s\n", e->algo->name, e->ms, e->key);
    }
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    kiln_status s = KILN_OK;
    if (bad || rename(tmp, tc->path) != 0) {
        s = kiln__err(KILN_E_IO, "%s: cannot write timing cache: %s", tc->path, strerror(errno));
        remove(tmp);
    } else {
        tc->dirty = 0;
    }
    free(tmp);
    return s;
}

/* ---- node signature ---------------------------------------------------------- */

/* "cpu|threads|precision|domain.op|in: dtype[dims]c ...|attrs" (malloc'd);
 * for a node on a device (c->dev), the device's name in place of the CPU's. */
static char *node_key(const kiln__kctx *c) {
    kiln__strbuf b = {0};
    const kiln__node *nd = c->node;
    kiln__sb_printf(&b, "%s|t%d|p%d|%s.%s|", c->dev ? kiln__device_name(c->dev) : kiln__cpu_model(),
              c->nth_plan, c->precision, nd->domain, nd->op_type);
    for (int k = 0; k < c->n_in; k++) {
        const kiln_tensor *t = c->in[k];
        if (!t) {
            kiln__sb_printf(&b, "-;");
            continue;
        }
        kiln__sb_printf(&b, "%s[", kiln_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) kiln__sb_printf(&b, d ? ",%" PRId64 : "%" PRId64, t->dims[d]);
        kiln__sb_printf(&b, "]%s;", t->data ? "c" : "");
    }
    kiln__sb_printf(&b, "|");
    for (int i = 0; i < nd->n_attr; i++) {
        const kiln__attr *a = &nd->attr[i];
        kiln__sb_printf(&b, "%s=", a->name);
        switch (a->type) {
        case KILN__ATTR_INT: kiln__sb_printf(&b, "%" PRId64, a->i); break;
        case KILN__ATTR_FLOAT: kiln__sb_printf(&b, "%.9g", a->f); break;
        case KILN__ATTR_STRING: kiln__sb_printf(&b, "%.64s", a->s); break;
        case KILN__ATTR_INTS:
            for (int j = 0; j < a->n; j++) kiln__sb_printf(&b, j ? ",%" PRId64 : "%" PRId64, a->ints[j]);
            break;
        case KILN__ATTR_FLOATS:
            for (int j = 0; j < a->n; j++) kiln__sb_printf(&b, j ? ",%.9g" : "%.9g", a->floats[j]);
            break;
        default: kiln__sb_printf(&b, "t%d", (int)a->type); break;
        }
        kiln__sb_printf(&b, ";");
    }
    for (size_t i = 0; b.p && i < b.n; i++) /* one line, no separators inside */
        if (b.p[i] == '\n' || b.p[i] == '\r' || b.p[i] == ' ' || b.p[i] == '\t') b.p[i] = '_';
    if (b.oom) {
        free(b.p);
        kiln__err(KILN_E_NOMEM, "out of memory");
        return NULL;
    }
    return b.p;
}

/* ---- tuning ---------------------------------------------------------------------- */

/* Fills t with seeded values a kernel can run on: floats in [-1, 1),
 * integers 0 (valid as indices and counts), booleans false. */
static void fill_random(kiln_tensor *t, uint32_t *seed) {
    int64_t n = kiln__numel(t->ndim, t->dims);
    if (kiln__dtype_is_float(t->dtype)) {
        for (int64_t i = 0; i < n; i++) {
            *seed = *seed * 1664525u + 1013904223u;
            kiln__st_f(t->dtype, t->data, i, (double)(*seed >> 8) / (1 << 23) - 1.0);
        }
    } else {
        memset(t->data, 0, kiln__tensor_bytes(t));
    }
}

/* Median of the run times of algo on c in milliseconds: the inputs without
 * data get random values, outputs and scratch temporary storage. */
static kiln_status time_algo(const kiln__algo *algo, kiln__kctx *c, double *ms) {
    kiln_status s = KILN_OK;
    kiln_tensor *saved_in[64], *saved_out[64];
    kiln_tensor tin[64], tout[64];
    int n_in = c->n_in < 64 ? c->n_in : 64, n_out = c->n_out < 64 ? c->n_out : 64;
    uint32_t seed = 12345;
    void *scratch = NULL;
    memset(tin, 0, sizeof tin);
    memset(tout, 0, sizeof tout);
    for (int k = 0; k < n_in; k++) {
        saved_in[k] = c->in[k];
        if (!c->in[k] || c->in[k]->data) continue;
        if ((s = kiln__tensor_init(&tin[k], c->in[k]->dtype, c->in[k]->ndim, c->in[k]->dims)) != KILN_OK ||
            (s = kiln__tensor_reserve(&tin[k])) != KILN_OK)
            goto done;
        fill_random(&tin[k], &seed);
        c->in[k] = &tin[k];
    }
    for (int k = 0; k < n_out; k++) {
        saved_out[k] = c->out[k];
        if (!c->out[k]) continue;
        if ((s = kiln__tensor_init(&tout[k], c->out[k]->dtype, c->out[k]->ndim, c->out[k]->dims)) != KILN_OK ||
            (s = kiln__tensor_reserve(&tout[k])) != KILN_OK)
            goto done;
        c->out[k] = &tout[k];
    }
    if (c->scratch_bytes && !(scratch = kiln__aligned_alloc(c->scratch_bytes))) {
        s = KILN_E_NOMEM;
        goto done;
    }
    c->scratch = scratch;
    double times[9];
    int runs = 0;
    double t_start = kiln__now_s();
    if ((s = kiln__run_node(algo, NULL, c)) != KILN_OK) goto done; /* warm-up */
    /* up to 9 timed runs, at least 3, stopping after ~50 ms */
    while (runs < 9 && (runs < 3 || kiln__now_s() - t_start < 0.05)) {
        double t0 = kiln__now_s();
        if ((s = kiln__run_node(algo, NULL, c)) != KILN_OK) goto done;
        times[runs++] = (kiln__now_s() - t0) * 1e3;
    }
    for (int i = 1; i < runs; i++) /* insertion sort */
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            double t = times[j];
            times[j] = times[j - 1];
            times[j - 1] = t;
        }
    *ms = times[runs / 2];
done:
    c->scratch = NULL;
    kiln__aligned_free(scratch);
    for (int k = 0; k < n_in; k++) {
        if (c->in[k] == &tin[k]) c->in[k] = saved_in[k];
        kiln__tensor_release(&tin[k]);
    }
    for (int k = 0; k < n_out; k++) {
        if (c->out[k] == &tout[k]) c->out[k] = saved_out[k];
        kiln__tensor_release(&tout[k]);
    }
    return s;
}

/* ---- choice ------------------------------------------------------------------------ */

typedef struct cand {
    const kiln__algo *algo;
    void *kstate;
    size_t scratch_bytes;
    double flops, cost;
    int variant;       /* c->variant after prepare */
    double variant_ms; /* c->variant_ms after prepare: > 0 if it measured its variants */
} cand;

#define MAX_CANDS 16

static void release_cand(cand *k) {
    if (k->kstate && k->algo->release) k->algo->release(k->kstate);
    k->kstate = NULL;
}

/* Prepares cands[best] without probe (candidates' states already released).
 * Should it refuse now (it must not), the next cheapest heuristic choice is
 * tried; none left: the reference (*out NULL). */
static kiln_status full_prepare(kiln__kctx *c, cand *cands, int nc, int best, size_t ref_scratch,
                                const kiln__algo **out) {
    for (;;) {
        const kiln__algo *a = cands[best].algo;
        c->scratch_bytes = 0;
        c->kstate = NULL;
        c->flops = 0;
        c->variant = -1;
        kiln_status s = a->prepare(c);
        if (s == KILN_OK) {
            *out = a;
            return KILN_OK;
        }
        if (c->kstate && a->release) a->release(c->kstate);
        c->kstate = NULL;
        c->scratch_bytes = ref_scratch;
        c->flops = 0;
        if (s != KILN_E_UNSUPPORTED) return s;
        cands[best].cost = INFINITY;
        best = -1;
        for (int i = 0; i < nc; i++)
            if (isfinite(cands[i].cost) && !(cands[i].algo->flags & KILN_ALGOF_TUNE_ONLY) &&
                (best < 0 || cands[i].cost < cands[best].cost))
                best = i;
        if (best < 0) return KILN_OK;
    }
}

/* Asks the algorithms of the node's op that run on the device (pass 0) or
 * the CPU (pass 1) to prepare; fills cands. A variant cache entry (e) is
 * passed to the algorithm it names. */
static kiln_status gather_cands(const kiln__select_opts *o, kiln__kctx *c, int pass, int probed,
                                const entry *e, cand *cands, int *nc) {
    const kiln__node *nd = c->node;
    const int by_cost_only = !o->tune && !o->cache && !o->force_algo;
    for (int i = 0; kiln__algos[i] && *nc < MAX_CANDS; i++) {
        const kiln__algo *a = kiln__algos[i];
        if (strcmp(a->op_type, nd->op_type) != 0 || strcmp(a->domain, nd->domain) != 0) continue;
        if ((a->flags & KILN_ALGOF_CUDA) ? pass != 0 : pass != 1) continue;
        if (o->force_algo && strcmp(a->name, o->force_algo) != 0) continue;
        /* tuning-only algorithms: chosen by tuning, a cache entry or force_algo, never by cost */
        if (by_cost_only && (a->flags & KILN_ALGOF_TUNE_ONLY)) continue; /* not even prepared */
        c->scratch_bytes = 0;
        c->kstate = NULL;
        c->flops = 0;
        c->probe = probed;
        c->variant = e && e->algo == a ? e->variant : -1;
        c->variant_ms = 0;
        kiln_status s = a->prepare(c);
        c->probe = 0;
        if (s == KILN_E_UNSUPPORTED) {
            if (c->kstate && a->release) a->release(c->kstate);
            continue;
        }
        if (s != KILN_OK) return s;
        cands[(*nc)++] = (cand){a,        c->kstate, c->scratch_bytes, c->flops, a->cost ? a->cost(c) : 1.0,
                                c->variant, c->variant_ms};
    }
    return KILN_OK;
}

kiln_status kiln__select_algo(const kiln__select_opts *o, kiln__kctx *c, const kiln__algo **out) {
    *out = NULL;
    if (o->reference) return KILN_OK;
    cand cands[MAX_CANDS];
    int nc = 0;
    size_t ref_scratch = c->scratch_bytes;
    kiln_status s = KILN_OK;
    char *key = NULL;
    entry *e = NULL; /* the cache's entry for key */
    const int keyed = (o->tune || o->cache) && c->n_in <= 64 && c->n_out <= 64;
    /* pass 0: the GPU's algorithms (with a device); pass 1: the CPU's, if none took the node */
    int on_device = 0;
    for (int pass = o->dev ? 0 : 1; pass < 2 && nc == 0; pass++) {
        on_device = pass == 0;
        c->dev = on_device ? o->dev : NULL;
        free(key);
        key = NULL;
        if (keyed && !(key = node_key(c))) {
            s = KILN_E_NOMEM;
            goto fail;
        }
        /* Without timing, only estimates are compared: candidates are prepared
         * in probe mode (algo.h) and only the chosen one fully (full_prepare).
         * Device algorithms are prepared fully: they may measure variants. */
        const int probed = !o->tune && !o->force_algo && !on_device;
        e = key ? cache_find(o->cache, key) : NULL;
        if ((s = gather_cands(o, c, pass, probed, e, cands, &nc)) != KILN_OK) goto fail;
    }
    c->kstate = NULL;
    c->scratch_bytes = ref_scratch;
    c->flops = 0;
    if (nc == 0) {
        free(key);
        c->dev = NULL;
        return KILN_OK;
    }
    int best = -1; /* by cost, among the candidates the heuristic may choose (-1: none) */
    for (int i = 0; i < nc; i++) {
        if ((cands[i].algo->flags & KILN_ALGOF_TUNE_ONLY) && !o->force_algo) continue;
        if (best < 0 || cands[i].cost < cands[best].cost) best = i;
    }
    if (key && !on_device && (nc > 1 || best < 0)) {
        int found = -1;
        for (int i = 0; e && i < nc; i++)
            if (cands[i].algo == e->algo) found = i;
        if (found >= 0) {
            best = found;
        } else if (o->tune) {
            double best_ms = INFINITY;
            for (int i = 0; i < nc; i++) {
                double ms;
                c->kstate = cands[i].kstate;
                c->scratch_bytes = cands[i].scratch_bytes;
                s = time_algo(cands[i].algo, c, &ms);
                c->kstate = NULL;
                c->scratch_bytes = ref_scratch;
                if (s != KILN_OK) goto fail;
                if (ms < best_ms) {
                    best_ms = ms;
                    best = i;
                }
            }
            if (o->cache && (s = cache_put(o->cache, key, cands[best].algo, -1, best_ms)) != KILN_OK)
                goto fail;
        }
    }
    /* a device algorithm that measured its variants: its choice goes to the cache */
    if (key && on_device && best >= 0 && o->cache && cands[best].variant_ms > 0 &&
        (s = cache_put(o->cache, key, cands[best].algo, cands[best].variant,
                       cands[best].variant_ms)) != KILN_OK)
        goto fail;
    free(key);
    key = NULL;
    if (best < 0) { /* only tuning-only candidates, and no tuning chose one: the reference */
        for (int i = 0; i < nc; i++) release_cand(&cands[i]);
        c->dev = NULL;
        return KILN_OK;
    }
    if (!o->tune && !o->force_algo && !on_device) { /* probed */
        for (int i = 0; i < nc; i++) release_cand(&cands[i]);
        s = full_prepare(c, cands, nc, best, ref_scratch, out);
        if (!*out) c->dev = NULL;
        return s;
    }
    for (int i = 0; i < nc; i++)
        if (i != best) release_cand(&cands[i]);
    c->kstate = cands[best].kstate;
    c->scratch_bytes = cands[best].scratch_bytes;
    c->flops = cands[best].flops;
    *out = cands[best].algo;
    return KILN_OK;
fail:
    free(key);
    for (int i = 0; i < nc; i++) release_cand(&cands[i]);
    c->dev = NULL;
    c->kstate = NULL;
    c->scratch_bytes = ref_scratch;
    c->flops = 0;
    return s;
}
