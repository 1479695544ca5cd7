/* src/serve/repository.c: the model repository (Triton's layout).
 *
 *   DIR/<model>/config.pbtxt            optional; completed from the model
 *   DIR/<model>/<version>/model.onnx    version: a positive integer directory
 *   DIR/<model>/<labels file>           classification labels, if configured
 *   DIR/<model>/warmup/<file>           warm-up input data, if configured
 *
 * Each model name has an entry: its state (READY, UNAVAILABLE with the
 * reason, or unloaded) and its loaded versions, chosen by the version policy.
 * Loading builds every version completely (graph, completed config, labels,
 * instances, warm-up) before it is published; a reload swaps the new versions
 * in and drops the old ones, which are freed when the last request using them
 * ends; a failed reload keeps the versions already served. Loads are
 * serialized by load_mu; lookups take mu only briefly.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "serve/serve_internal.h"

typedef enum entry_state { ENTRY_UNLOADED = 0, ENTRY_READY, ENTRY_UNAVAILABLE } entry_state;

typedef struct repo_entry {
    char *name;
    entry_state state;
    char reason[768];            /* why UNAVAILABLE */
    int n_versions;
    serve_model **versions;      /* loaded versions, ascending; one reference each */
    uint64_t fingerprint;        /* of the model's files when loaded (poll mode) */
    uint64_t shared_fingerprint; /* of its files outside the version directories */
    int overridden;              /* loaded with a load request's config */
    struct repo_entry *next;
} repo_entry;

struct serve_repo {
    char *dir;
    kiln_model_control mode;
    int threads;                 /* the thread budget */
    int poll_seconds, verbose;
    pthread_mutex_t mu;          /* entries and their fields */
    pthread_mutex_t load_mu;     /* one load or unload at a time */
    repo_entry *entries;
    pthread_t poller;
    int polling;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    int stop;
};

static void logf_(serve_repo *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(serve_repo *r, const char *fmt, ...) {
    if (!r->verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln serve: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- models --------------------------------------------------------------- */

void serve_model_ref(serve_model *m) { atomic_fetch_add(&m->refs, 1); }

static void model_free(serve_model *m) {
    serve_sched_stop(m->sched);
    for (int o = 0; m->labels && o < m->cfg.n_outputs; o++) {
        for (int k = 0; m->labels[o] && k < m->n_labels[o]; k++) free(m->labels[o][k]);
        free(m->labels[o]);
    }
    free(m->labels);
    free(m->n_labels);
    kiln_graph_free(m->graph);
    serve_config_free(&m->cfg);
    if (m->stats.batch_input) serve_stats_free(&m->stats);
    free(m->name);
    free(m->dir);
    free(m);
}

void serve_model_unref(serve_model *m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) model_free(m);
}

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
static char *read_file(const char *path, size_t max, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (!p) goto fail;
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > max) goto fail;
        if (got == 0) break;
    }
    if (ferror(f)) goto fail;
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* The configured classification labels of every output. */
static int load_labels(serve_model *m, char *err, size_t errlen) {
    int n = m->cfg.n_outputs;
    m->labels = calloc((size_t)(n > 0 ? n : 1), sizeof *m->labels);
    m->n_labels = calloc((size_t)(n > 0 ? n : 1), sizeof *m->n_labels);
    if (!m->labels || !m->n_labels) return snprintf(err, errlen, "out of memory"), -1;
    for (int o = 0; o < n; o++) {
        const char *file = m->cfg.outputs[o].label_filename;
        if (!file) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", m->dir, file);
        size_t len = 0;
        char *text = read_file(path, 64u << 20, &len);
        if (!text) {
            snprintf(err, errlen, "output '%s': cannot read label_filename %s: %s",
                     m->cfg.outputs[o].name, path, strerror(errno ? errno : EIO));
            return -1;
        }
        int lines = 0;
        for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
        char **labels = calloc((size_t)lines + 1, sizeof *labels);
        int k = 0, oom = !labels;
        for (char *line = text; labels && *line;) {
            char *end = strchr(line, '\n');
            size_t l = end ? (size_t)(end - line) : strlen(line);
            line[l] = 0;
            if (l && line[l - 1] == '\r') line[l - 1] = 0;
            if (!(labels[k] = strdup(line))) {
                oom = 1;
                break;
            }
            k++;
            line = end ? end + 1 : line + l;
        }
        free(text);
        m->labels[o] = labels;
        m->n_labels[o] = k;
        if (oom) return snprintf(err, errlen, "out of memory"), -1;
    }
    return 0;
}

/* Fills a warm-up input's data: zeros, seeded random values, or the raw
 * row-major bytes of DIR/<model>/warmup/<file>. */
static int warmup_fill(const serve_model *m, const serve_warmup_input *wi, kiln_tensor *t,
                       int batch, char *err, size_t errlen) {
    size_t bytes = (size_t)kiln_tensor_numel(t) * kiln_dtype_size(kiln_tensor_dtype(t));
    if (kiln_tensor_dtype(t) == KILN_DTYPE_STRING) {
        if (wi->data == SERVE_WARMUP_FILE)
            return snprintf(err, errlen, "warm-up input '%s': input_data_file for a string input "
                            "is not supported", wi->name), -1;
        return 0; /* strings start as "" */
    }
    unsigned char *d = kiln_tensor_data(t);
    if (wi->data == SERVE_WARMUP_ZERO) {
        memset(d, 0, bytes);
    } else if (wi->data == SERVE_WARMUP_RANDOM) {
        uint64_t x = 0x9E3779B97F4A7C15ull;
        kiln_dtype dt = kiln_tensor_dtype(t);
        for (int64_t i = 0; i < kiln_tensor_numel(t); i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (dt == KILN_DTYPE_F32) ((float *)d)[i] = (float)(x >> 40) / (float)(1 << 24);
            else if (dt == KILN_DTYPE_F64) ((double *)d)[i] = (double)(x >> 11) / 9007199254740992.0;
            else memset(d + (size_t)i * kiln_dtype_size(dt), (int)(x & 1), kiln_dtype_size(dt));
        }
    } else {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/warmup/%s", m->dir, wi->input_data_file);
        size_t len = 0;
        char *data = read_file(path, bytes, &len);
        size_t one = bytes / (size_t)batch;
        if (!data || len != one) {
            snprintf(err, errlen, "warm-up input '%s': %s %s (expected %zu bytes)", wi->name,
                     data ? "wrong size of" : "cannot read", path, one);
            free(data);
            return -1;
        }
        for (int b = 0; b < batch; b++) memcpy(d + (size_t)b * one, data, one);
        free(data);
    }
    return 0;
}

/* Runs the configured warm-up requests on every instance. */
static int warm_up(serve_model *m, char *err, size_t errlen) {
    for (int w = 0; w < m->cfg.n_warmup; w++) {
        const serve_warmup *wu = &m->cfg.warmup[w];
        int n = wu->n_inputs, rc = 0;
        const char **names = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
        kiln_tensor **ts = calloc((size_t)(n > 0 ? n : 1), sizeof *ts);
        if (!names || !ts) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
        int batched = m->cfg.max_batch_size > 0, batch = wu->batch_size > 0 ? wu->batch_size : 1;
        for (int i = 0; !rc && i < n; i++) {
            const serve_warmup_input *wi = &wu->inputs[i];
            int64_t dims[KILN_MAX_DIMS + 1];
            int nd = 0;
            if (batched) dims[nd++] = batch;
            for (int d = 0; d < wi->ndim && nd < KILN_MAX_DIMS; d++) dims[nd++] = wi->dims[d];
            names[i] = wi->name;
            if (kiln_tensor_create(wi->dtype, nd, dims, &ts[i]) != KILN_OK) {
                snprintf(err, errlen, "warm-up '%s' input '%s': %s", wu->name, wi->name,
                         kiln_last_error());
                rc = -1;
            } else
                rc = warmup_fill(m, wi, ts[i], batched ? batch : 1, err, errlen);
        }
        for (int k = 0; !rc && k < (wu->count > 0 ? wu->count : 1); k++)
            if (serve_sched_warm(m->sched, n, names, (const kiln_tensor *const *)ts, err,
                                 errlen) != KILN_OK)
                rc = -1;
        for (int i = 0; ts && i < n; i++) kiln_tensor_free(ts[i]);
        free(ts);
        free(names);
        if (rc) return -1;
    }
    return 0;
}

/* A model's configuration as text: DIR/<model>/config.pbtxt, or the JSON a
 * load request carries in its "config" parameter (text NULL: none, the
 * configuration comes from the model). */
typedef struct config_source {
    const char *text;
    size_t len;
    int json;
    const char *path;            /* for messages */
} config_source;

static kiln_status config_parse(const config_source *src, serve_model_config *out, char *err,
                                size_t errlen) {
    if (!src->text) {
        serve_config_init(out);
        return KILN_OK;
    }
    return src->json ? serve_config_parse_json(src->text, src->len, src->path, out, err, errlen)
                     : serve_config_parse(src->text, src->len, src->path, out, err, errlen);
}

/* Loads version `version` of the model in dir with configuration src.
 * Returns the model with one reference, or NULL with err. */
static serve_model *model_load(serve_repo *r, const char *name, const char *dir,
                               const config_source *src, int64_t version, char *err,
                               size_t errlen) {
    serve_model *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name)) || !(m->dir = strdup(dir))) goto nomem;
    atomic_init(&m->refs, 1);
    m->version = version;
    snprintf(m->version_str, sizeof m->version_str, "%lld", (long long)version);
    if (config_parse(src, &m->cfg, err, errlen) != KILN_OK) goto fail;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%lld/%s", dir, (long long)version,
             m->cfg.default_model_filename ? m->cfg.default_model_filename : "model.onnx");
    if (kiln_graph_load_onnx(path, &m->graph) != KILN_OK) {
        snprintf(err, errlen, "%s", kiln_last_error());
        goto fail;
    }
    kiln_graph_infer_shapes(m->graph); /* outputs the model does not declare */
    if (serve_config_complete(&m->cfg, m->graph, name, err, errlen) != KILN_OK) goto fail;
    if (load_labels(m, err, errlen)) goto fail;
    if (serve_stats_init(&m->stats, m->cfg.max_batch_size)) goto nomem;
    int instances = m->cfg.instance_count > 0 ? m->cfg.instance_count : 1;
    int threads = m->cfg.threads > 0 ? m->cfg.threads : r->threads / instances;
    if (threads < 1) threads = 1;
    if (serve_sched_start(m, threads, &m->sched, err, errlen) != KILN_OK) goto fail;
    if (warm_up(m, err, errlen)) goto fail;
    logf_(r, "model '%s' version %s loaded (%d instance%s x %d thread%s, max_batch_size %d%s)",
          name, m->version_str, instances, instances == 1 ? "" : "s", threads,
          threads == 1 ? "" : "s", m->cfg.max_batch_size,
          m->cfg.dynamic_batching ? ", dynamic batching" : "");
    return m;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (m) model_free(m);
    return NULL;
}

/* ---- versions and fingerprints ------------------------------------------- */

static int is_version_name(const char *s) {
    if (!*s || strlen(s) > 18) return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The subdirectories of dir whose names accept() takes (caller frees them
 * with free_names); -1 when dir cannot be read. */
static int list_subdirs(const char *dir, int (*accept)(const char *), char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!accept(e->d_name)) continue;
        char p[PATH_MAX];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &sb) || !S_ISDIR(sb.st_mode)) continue;
        if (n == cap) {
            char **nv = realloc(v, sizeof *v * (size_t)(cap = cap ? cap * 2 : 16));
            if (!nv) break;
            v = nv;
        }
        if (!(v[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    *out = v;
    return n;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* The numeric version directories of dir, ascending (caller frees). */
static int list_versions(const char *dir, int64_t **out) {
    char **names = NULL;
    int found = list_subdirs(dir, is_version_name, &names), n = found;
    *out = n > 0 ? malloc(sizeof **out * (size_t)n) : NULL;
    if (n > 0 && !*out) n = -1;
    for (int i = 0; i < n; i++) (*out)[i] = strtoll(names[i], NULL, 10);
    free_names(names, found > 0 ? found : 0);
    if (n > 0) qsort(*out, (size_t)n, sizeof **out, cmp_i64);
    return n;
}

/* The versions the policy selects out of the available ones (in place). */
static int apply_policy(const serve_model_config *c, int64_t *v, int n) {
    if (c->version_policy == SERVE_VERSIONS_ALL) return n;
    if (c->version_policy == SERVE_VERSIONS_SPECIFIC) {
        int k = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < c->n_versions; j++)
                if (v[i] == c->versions[j]) {
                    v[k++] = v[i];
                    break;
                }
        return k;
    }
    int keep = c->latest_num_versions > 0 ? c->latest_num_versions : 1;
    if (keep >= n) return n;
    memmove(v, v + (n - keep), sizeof *v * (size_t)keep);
    return keep;
}

static uint64_t mix(uint64_t h, uint64_t x) {
    h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h;
}

/* A hash of the names, sizes and modification times of the files under dir
 * (depth levels down; skip_versions: leaving out the version directories
 * <number>/): it changes when a file there is edited, added or removed. */
static uint64_t fingerprint_files(const char *dir, int depth, int skip_versions) {
    uint64_t h = 1469598103934665603ull;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[PATH_MAX];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &sb)) continue;
        if (skip_versions && S_ISDIR(sb.st_mode) && is_version_name(e->d_name)) continue;
        uint64_t eh = 0;
        for (const char *c = e->d_name; *c; c++) eh = eh * 131 + (unsigned char)*c;
        eh = mix(eh, (uint64_t)sb.st_size);
        eh = mix(eh, (uint64_t)sb.st_mtim.tv_sec * 1000000000ull + (uint64_t)sb.st_mtim.tv_nsec);
        if (S_ISDIR(sb.st_mode) && depth > 0) eh = mix(eh, fingerprint_files(p, depth - 1, 0));
        h += eh * 0x100000001B3ull; /* order independent */
    }
    closedir(d);
    return h;
}

/* ---- entries --------------------------------------------------------------- */

/* The entry of name (created when missing, if create). Holds r->mu. */
static repo_entry *entry_find(serve_repo *r, const char *name, int create) {
    for (repo_entry *e = r->entries; e; e = e->next)
        if (!strcmp(e->name, name)) return e;
    if (!create) return NULL;
    repo_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->name = strdup(name))) {
        free(e);
        return NULL;
    }
    e->next = r->entries;
    r->entries = e;
    return e;
}

/* Replaces an entry's versions (their references move to the entry); the old
 * ones are returned for the caller to unref outside the lock. Holds r->mu. */
static void entry_swap(repo_entry *e, serve_model **v, int n, serve_model ***old, int *n_old) {
    *old = e->versions;
    *n_old = e->n_versions;
    e->versions = v;
    e->n_versions = n;
}

/* Drops a reference to each of v[0..n) and frees v. */
static void unref_all(serve_model **v, int n) {
    for (int i = 0; i < n; i++) serve_model_unref(v[i]);
    free(v);
}

/* The versions of name served now (a reference each, into *out) when it was
 * loaded from its files and what its versions share still fingerprints as
 * shared_fp; else none. Returns -1 when out of memory. */
static int collect_versions(serve_repo *r, const char *name, uint64_t shared_fp,
                            serve_model ***out, int *n) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&r->mu);
    repo_entry *e = entry_find(r, name, 0);
    int rc = 0;
    if (e && !e->overridden && e->shared_fingerprint == shared_fp && e->n_versions) {
        if ((*out = malloc((size_t)e->n_versions * sizeof **out))) {
            for (int i = 0; i < e->n_versions; i++) serve_model_ref((*out)[i] = e->versions[i]);
            *n = e->n_versions;
        } else {
            rc = -1;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int valid_model_name(const char *name) {
    if (!*name || name[0] == '.' || strlen(name) > 200) return 0;
    for (const char *p = name; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x20) return 0;
    return 1;
}

/* In err, the first path in the override directory dir ("dir/1/model.onnx")
 * becomes the parameter that gave the file ("file:1/model.onnx"). */
static void override_paths_named(char *err, size_t errlen, const char *dir) {
    size_t n = strlen(dir);
    char *at = strstr(err, dir);
    if (!at || at[n] != '/') return;
    char rest[1024];
    snprintf(rest, sizeof rest, "file:%s", at + n + 1);
    snprintf(at, errlen - (size_t)(at - err), "%s", rest);
}

/* Loads (or reloads) every selected version of a model, configured by its
 * config.pbtxt, or by config_json (len bytes) when that is not NULL; from
 * its repository directory, or (n_files > 0) from a temporary directory of
 * the files alone. Holds load_mu. Returns 0 or -1 with err (the entry then
 * says why, and keeps the versions it served before). */
static int load_model(serve_repo *r, const char *name, const char *config_json, size_t json_len,
                      const serve_file *files, int n_files, char *err, size_t errlen) {
    char dir[PATH_MAX], repo_dir[PATH_MAX] = "", tmp_root[PATH_MAX] = "";
    struct stat sb;
    serve_model **models = NULL;
    int n_models = 0, n = 0;
    int64_t *versions = NULL;
    char *cfg_text = NULL;
    size_t cfg_len = 0;
    serve_model **kept = NULL; /* the versions served before, one reference each */
    int n_kept = 0;
    const int named = valid_model_name(name) &&
                      snprintf(repo_dir, sizeof repo_dir, "%s/%s", r->dir, name) < (int)sizeof repo_dir;
    if (!named) {
        snprintf(err, errlen, "'%s' is not a model name (a directory name: no '/', not starting "
                 "with '.')", name);
        goto fail;
    }
    if (n_files > 0) {
        if (!config_json) {
            snprintf(err, errlen, "file overrides need the 'config' parameter as well (the model "
                     "is loaded from the files alone, not from its directory)");
            goto fail;
        }
        if (serve_override_write(name, files, n_files, tmp_root, sizeof tmp_root, dir, sizeof dir,
                                 err, errlen))
            goto fail;
    } else {
        snprintf(dir, sizeof dir, "%s", repo_dir);
        if (stat(dir, &sb) || !S_ISDIR(sb.st_mode)) {
            snprintf(err, errlen, "no model directory '%s' in the repository %s", name, r->dir);
            goto fail;
        }
    }
    uint64_t fp = fingerprint_files(dir, 2, 0);
    char cfg_path[PATH_MAX];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.pbtxt", dir);
    config_source src = {.path = cfg_path};
    if (config_json) {
        src = (config_source){config_json, json_len, 1, "the load request's 'config'"};
    } else if (!stat(cfg_path, &sb)) {
        if (!(cfg_text = read_file(cfg_path, 16u << 20, &cfg_len))) {
            snprintf(err, errlen, "%s: cannot read (or larger than 16 MiB)", cfg_path);
            goto fail;
        }
        src.text = cfg_text;
        src.len = cfg_len;
    }
    /* the policy lives in the config: parse it once to choose the versions */
    serve_model_config policy;
    if (config_parse(&src, &policy, err, errlen) != KILN_OK) goto fail;
    n = list_versions(dir, &versions);
    int chosen = n > 0 ? apply_policy(&policy, versions, n) : 0;
    serve_config_free(&policy);
    if (chosen <= 0) {
        snprintf(err, errlen, "model '%s': no version directory (%s<number>/) %s", name,
                 n_files ? "'file:' paths " : "DIR/<model>/",
                 n > 0 ? "matches the version_policy" : "found");
        goto fail;
    }
    if (!(models = calloc((size_t)chosen, sizeof *models))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* a reload keeps the versions whose directory is unchanged when nothing
     * they share (config.pbtxt, labels, ...) changed either */
    uint64_t shared_fp = fingerprint_files(dir, 1, 1);
    if (!config_json && collect_versions(r, name, shared_fp, &kept, &n_kept)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < chosen; i++) {
        char vdir[PATH_MAX];
        snprintf(vdir, sizeof vdir, "%s/%lld", dir, (long long)versions[i]);
        uint64_t vfp = fingerprint_files(vdir, 1, 0);
        for (int k = 0; k < n_kept && !models[i]; k++)
            if (kept[k]->version == versions[i] && kept[k]->fingerprint == vfp) {
                serve_model_ref(kept[k]);
                models[i] = kept[k];
                logf_(r, "model '%s' version %lld unchanged: kept", name, (long long)versions[i]);
            }
        if (!models[i] && !(models[i] = model_load(r, name, dir, &src, versions[i], err, errlen)))
            goto fail;
        models[i]->fingerprint = vfp;
        n_models++;
    }
    unref_all(kept, n_kept); /* and frees the array */
    kept = NULL;
    n_kept = 0;
    free(cfg_text);
    free(versions);
    serve_override_remove(tmp_root); /* the loaded models keep nothing of it */
    serve_model **old = NULL;
    int n_old = 0;
    pthread_mutex_lock(&r->mu);
    repo_entry *e = entry_find(r, name, 1);
    if (!e) {
        pthread_mutex_unlock(&r->mu);
        snprintf(err, errlen, "out of memory");
        unref_all(models, n_models);
        return -1;
    }
    entry_swap(e, models, n_models, &old, &n_old);
    e->state = ENTRY_READY;
    e->reason[0] = 0;
    e->fingerprint = fp;
    e->shared_fingerprint = shared_fp;
    e->overridden = config_json != NULL;
    pthread_mutex_unlock(&r->mu);
    unref_all(old, n_old);
    return 0;
fail:
    if (models) unref_all(models, n_models);
    unref_all(kept, n_kept);
    free(cfg_text);
    free(versions);
    if (tmp_root[0]) override_paths_named(err, errlen, dir);
    serve_override_remove(tmp_root);
    logf_(r, "model '%s' failed to load: %s", name, err);
    pthread_mutex_lock(&r->mu);
    /* a name with no directory gets no entry (unless it had one): a mistyped
     * load must not make the server unready */
    int has_dir = named && !stat(repo_dir, &sb) && S_ISDIR(sb.st_mode);
    repo_entry *fe = named ? entry_find(r, name, has_dir) : NULL;
    if (fe) {
        if (!fe->n_versions) fe->state = ENTRY_UNAVAILABLE; /* a failed reload keeps serving */
        snprintf(fe->reason, sizeof fe->reason, "%s", err);
        fe->fingerprint = has_dir ? fingerprint_files(repo_dir, 2, 0) : 0;
    }
    pthread_mutex_unlock(&r->mu);
    return -1;
}

static void unload_model(serve_repo *r, const char *name) {
    serve_model **old = NULL;
    int n_old = 0;
    pthread_mutex_lock(&r->mu);
    repo_entry *e = entry_find(r, name, 0);
    if (e) {
        entry_swap(e, NULL, 0, &old, &n_old);
        e->state = ENTRY_UNLOADED;
        snprintf(e->reason, sizeof e->reason, "unloaded");
    }
    pthread_mutex_unlock(&r->mu);
    if (e) logf_(r, "model '%s' unloaded", name);
    unref_all(old, n_old); /* freed when the last request using them ends */
}

/* POLL mode: loads new and changed models, unloads removed ones. */
static void poll_once(serve_repo *r) {
    char **names = NULL;
    int n = list_subdirs(r->dir, valid_model_name, &names);
    if (n < 0) return;
    char err[768];
    pthread_mutex_lock(&r->load_mu);
    for (int i = 0; i < n; i++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", r->dir, names[i]);
        uint64_t fp = fingerprint_files(dir, 2, 0);
        pthread_mutex_lock(&r->mu);
        repo_entry *e = entry_find(r, names[i], 0);
        int changed = !e || e->fingerprint != fp;
        pthread_mutex_unlock(&r->mu);
        if (changed) {
            logf_(r, "model '%s' %s: loading", names[i], e ? "changed" : "added");
            load_model(r, names[i], NULL, 0, NULL, 0, err, sizeof err);
        }
    }
    /* entries whose directory is gone */
    for (;;) {
        char *gone = NULL;
        pthread_mutex_lock(&r->mu);
        for (repo_entry *e = r->entries; e && !gone; e = e->next) {
            if (e->state == ENTRY_UNLOADED) continue;
            int found = 0;
            for (int i = 0; i < n && !found; i++) found = !strcmp(names[i], e->name);
            if (!found) gone = strdup(e->name);
        }
        pthread_mutex_unlock(&r->mu);
        if (!gone) break;
        unload_model(r, gone);
        free(gone);
    }
    pthread_mutex_unlock(&r->load_mu);
    free_names(names, n);
}

static void *poll_main(void *arg) {
    serve_repo *r = arg;
    pthread_mutex_lock(&r->stop_mu);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += r->poll_seconds;
        while (!r->stop && pthread_cond_timedwait(&r->stop_cv, &r->stop_mu, &ts) != ETIMEDOUT) {
        }
        if (r->stop) break;
        pthread_mutex_unlock(&r->stop_mu);
        poll_once(r);
        pthread_mutex_lock(&r->stop_mu);
    }
    pthread_mutex_unlock(&r->stop_mu);
    return NULL;
}

/* ---- the API ---------------------------------------------------------------- */

kiln_status serve_repo_open(const kiln_server_options *opt, int threads, serve_repo **out) {
    *out = NULL;
    struct stat sb;
    if (!opt->model_repository || stat(opt->model_repository, &sb) || !S_ISDIR(sb.st_mode))
        return KILN_E_IO;
    serve_repo *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(opt->model_repository))) {
        free(r);
        return KILN_E_NOMEM;
    }
    r->mode = opt->model_control;
    r->threads = threads;
    r->poll_seconds = opt->poll_seconds > 0 ? opt->poll_seconds : 15;
    r->verbose = opt->verbose;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->load_mu, NULL);
    pthread_mutex_init(&r->stop_mu, NULL);
    serve_cond_init_monotonic(&r->stop_cv);
    char err[768];
    pthread_mutex_lock(&r->load_mu);
    if (r->mode == KILN_MODEL_CONTROL_EXPLICIT) {
        for (int i = 0; i < opt->n_load_models; i++)
            if (load_model(r, opt->load_models[i], NULL, 0, NULL, 0, err, sizeof err))
                fprintf(stderr, "kiln serve: model '%s' failed to load: %s\n", opt->load_models[i],
                        err);
    } else {
        char **names = NULL;
        int n = list_subdirs(r->dir, valid_model_name, &names);
        for (int i = 0; i < n; i++)
            if (load_model(r, names[i], NULL, 0, NULL, 0, err, sizeof err))
                fprintf(stderr, "kiln serve: model '%s' failed to load: %s\n", names[i], err);
        free_names(names, n);
    }
    pthread_mutex_unlock(&r->load_mu);
    if (r->mode == KILN_MODEL_CONTROL_POLL) {
        if (pthread_create(&r->poller, NULL, poll_main, r) == 0) r->polling = 1;
        else fprintf(stderr, "kiln serve: cannot start the repository poller\n");
    }
    *out = r;
    return KILN_OK;
}

void serve_repo_close(serve_repo *r) {
    if (!r) return;
    if (r->polling) {
        pthread_mutex_lock(&r->stop_mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->stop_cv);
        pthread_mutex_unlock(&r->stop_mu);
        pthread_join(r->poller, NULL);
    }
    while (r->entries) {
        repo_entry *e = r->entries;
        r->entries = e->next;
        unref_all(e->versions, e->n_versions);
        free(e->name);
        free(e);
    }
    pthread_cond_destroy(&r->stop_cv);
    pthread_mutex_destroy(&r->stop_mu);
    pthread_mutex_destroy(&r->load_mu);
    pthread_mutex_destroy(&r->mu);
    free(r->dir);
    free(r);
}

int serve_repo_get(serve_repo *r, const char *name, const char *version, serve_model **out,
                   char *err, size_t errlen) {
    *out = NULL;
    int64_t want = -1;
    if (version && *version) {
        if (!is_version_name(version)) {
            snprintf(err, errlen, "model '%s': version '%s' is not a version number", name,
                     version);
            return 400;
        }
        want = strtoll(version, NULL, 10);
    }
    int status = 0;
    pthread_mutex_lock(&r->mu);
    repo_entry *e = entry_find(r, name, 0);
    if (!e || e->state == ENTRY_UNLOADED) {
        snprintf(err, errlen, "unknown model '%s'%s", name,
                 e ? " (it is unloaded)" : "");
        status = 404;
    } else if (!e->n_versions) {
        snprintf(err, errlen, "model '%s' is not ready: %s", name, e->reason);
        status = 503;
    } else {
        serve_model *m = want < 0 ? e->versions[e->n_versions - 1] : NULL;
        for (int i = 0; i < e->n_versions && !m; i++)
            if (e->versions[i]->version == want) m = e->versions[i];
        if (!m) {
            snprintf(err, errlen, "model '%s' has no version %s loaded", name, version);
            status = 404;
        } else {
            serve_model_ref(m);
            *out = m;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return status;
}

int serve_repo_list_ready(serve_repo *r, serve_model ***out) {
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (repo_entry *e = r->entries; e; e = e->next) n += e->n_versions;
    serve_model **v = calloc((size_t)(n > 0 ? n : 1), sizeof *v);
    int k = 0;
    for (repo_entry *e = r->entries; e && v; e = e->next)
        for (int i = 0; i < e->n_versions; i++) {
            serve_model_ref(e->versions[i]);
            v[k++] = e->versions[i];
        }
    pthread_mutex_unlock(&r->mu);
    *out = v;
    return k;
}

cJSON *serve_repo_index(serve_repo *r, int ready_only) {
    cJSON *a = cJSON_CreateArray();
    char **names = NULL;
    int n = list_subdirs(r->dir, valid_model_name, &names);
    pthread_mutex_lock(&r->mu);
    /* every model directory, and entries whose directory is gone */
    for (repo_entry *e = r->entries; e && a; e = e->next) {
        for (int i = 0; i < e->n_versions; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", e->name);
            cJSON_AddStringToObject(o, "version", e->versions[i]->version_str);
            cJSON_AddStringToObject(o, "state", "READY");
            cJSON_AddStringToObject(o, "reason", "");
            cJSON_AddItemToArray(a, o);
        }
        if (e->n_versions || ready_only) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", e->name);
        cJSON_AddStringToObject(o, "state", "UNAVAILABLE");
        cJSON_AddStringToObject(o, "reason", e->state == ENTRY_UNLOADED ? "unloaded" : e->reason);
        cJSON_AddItemToArray(a, o);
    }
    for (int i = 0; i < n && a && !ready_only; i++) {
        if (entry_find(r, names[i], 0)) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", names[i]);
        cJSON_AddItemToArray(a, o);
    }
    pthread_mutex_unlock(&r->mu);
    free_names(names, n > 0 ? n : 0);
    return a;
}

int serve_repo_versions(serve_repo *r, const char *name, cJSON *array) {
    int n = 0;
    pthread_mutex_lock(&r->mu);
    repo_entry *e = entry_find(r, name, 0);
    for (int i = 0; e && i < e->n_versions; i++, n++)
        cJSON_AddItemToArray(array, cJSON_CreateString(e->versions[i]->version_str));
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int explicit_only(serve_repo *r, const char *what, char *err, size_t errlen) {
    if (r->mode == KILN_MODEL_CONTROL_EXPLICIT) return 0;
    snprintf(err, errlen,
             "%s is only allowed with --model-control-mode explicit (this server runs in mode %s)",
             what, kiln_model_control_name(r->mode));
    return 400;
}

int serve_repo_load(serve_repo *r, const char *name, const char *config_json,
                    const serve_file *files, int n_files, char *err, size_t errlen) {
    int status = explicit_only(r, "loading a model", err, errlen);
    if (status) return status;
    pthread_mutex_lock(&r->load_mu);
    char why[768];
    if (load_model(r, name, config_json, config_json ? strlen(config_json) : 0, files, n_files, why,
                   sizeof why)) {
        snprintf(err, errlen, "failed to load '%s': %s", name, why);
        status = 400;
    }
    pthread_mutex_unlock(&r->load_mu);
    return status;
}

int serve_repo_unload(serve_repo *r, const char *name, char *err, size_t errlen) {
    int status = explicit_only(r, "unloading a model", err, errlen);
    if (status) return status;
    pthread_mutex_lock(&r->load_mu);
    pthread_mutex_lock(&r->mu);
    repo_entry *e = entry_find(r, name, 0);
    int known = e && e->state != ENTRY_UNLOADED;
    pthread_mutex_unlock(&r->mu);
    if (known) {
        unload_model(r, name);
    } else {
        snprintf(err, errlen, "unknown model '%s': nothing to unload", name);
        status = 400;
    }
    pthread_mutex_unlock(&r->load_mu);
    return status;
}

int serve_repo_ready(serve_repo *r) {
    int ready = 1;
    pthread_mutex_lock(&r->mu);
    for (repo_entry *e = r->entries; e; e = e->next)
        if (e->state == ENTRY_UNAVAILABLE && !e->n_versions) ready = 0;
    pthread_mutex_unlock(&r->mu);
    return ready;
}
