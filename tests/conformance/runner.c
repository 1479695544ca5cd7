/* tests/conformance/runner.c: kiln_conformance, the ONNX backend test suite
 * runner.
 *
 *   kiln_conformance [--data ROOT] [--suite node,pytorch-converted,...]
 *                    [--filter SUBSTR] [--baseline FILE] [--update-baseline FILE]
 *                    [-v] [-t THREADS] [--timeout SECONDS] [--roundtrip] [--export DIR]
 *
 * ROOT is the onnx wheel's backend/test/data folder: ROOT/SUITE/TEST/model.onnx
 * with TEST/test_data_set_N/{input_K.pb,output_K.pb}; the light suite is
 * ROOT/light/light_NAME.onnx + light_NAME_output_K.pb, fed arange(n)/n.
 *
 * Every test ends as pass, fail (wrong result, or an error that is not
 * KILN_E_UNSUPPORTED) or unsupported (an op or dtype kiln lacks). Tests run in
 * this process, one after the other; a crash or a hang in a kernel is caught
 * (signal handler + siglongjmp, alarm) and counted as a failure, so one bad
 * kernel does not hide the results of the others. The baseline file holds the
 * minimum number of passing tests per suite ("node 1234"); the exit status is
 * non-zero if a suite falls below it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compare.h"
#include "graph/ir.h"
#include "kiln/kiln.h"

#define MAX_TENSORS 64

typedef enum { RES_PASS, RES_FAIL, RES_UNSUP } result_kind;
static const char *const result_names[] = {"PASS", "FAIL", "UNSUPPORTED"};

typedef struct {
    char *name;
    int n[3];
} op_row;

typedef struct {
    const char *name;
    int n[3];
    double seconds;
    int ran;
} suite_row;

typedef struct {
    char *name; /* suite/test */
    double seconds;
} timing;

typedef struct {
    const char *root;
    const char *filter;
    const char *baseline, *update_baseline;
    int verbose;
    int threads; /* -t; -1: 1, and all cores for the light suite */
    int timeout_s;
    int roundtrip;          /* save and reload every model before running it */
    int reference;          /* sessions on the reference kernels only (no passes, no algorithms) */
    const char *export_dir; /* write kiln's export of every model here */
} options;

/* snprintf for paths and messages: truncation is acceptable (and silences
 * -Wformat-truncation, which only looks at direct snprintf calls). */
static void strf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void strf(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* ---- results ---------------------------------------------------------- */

static op_row *g_ops;
static int g_n_ops, g_cap_ops;
static timing *g_times;
static int g_n_times, g_cap_times;

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "kiln_conformance: out of memory\n");
        exit(2);
    }
    return q;
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) {
        fprintf(stderr, "kiln_conformance: out of memory\n");
        exit(2);
    }
    return d;
}

static void count_op(const char *op, result_kind r) {
    for (int i = 0; i < g_n_ops; i++)
        if (strcmp(g_ops[i].name, op) == 0) {
            g_ops[i].n[r]++;
            return;
        }
    if (g_n_ops == g_cap_ops) {
        g_cap_ops = g_cap_ops ? g_cap_ops * 2 : 256;
        g_ops = xrealloc(g_ops, (size_t)g_cap_ops * sizeof *g_ops);
    }
    g_ops[g_n_ops] = (op_row){xstrdup(op), {0, 0, 0}};
    g_ops[g_n_ops].n[r] = 1;
    g_n_ops++;
}

static void add_timing(const char *suite, const char *test, double s) {
    if (g_n_times == g_cap_times) {
        g_cap_times = g_cap_times ? g_cap_times * 2 : 1024;
        g_times = xrealloc(g_times, (size_t)g_cap_times * sizeof *g_times);
    }
    char *name;
    if (asprintf(&name, "%s/%s", suite, test) < 0) name = xstrdup(test);
    g_times[g_n_times++] = (timing){name, s};
}

/* ---- op names of a graph (with subgraphs) ------------------------------- */

typedef struct {
    char **names;
    int n, cap;
} name_set;

static void name_set_add(name_set *s, const char *domain, const char *op) {
    char buf[256];
    strf(buf, sizeof buf, "%s%s%s", domain && domain[0] ? domain : "",
             domain && domain[0] ? "." : "", op);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], buf) == 0) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->names = xrealloc(s->names, (size_t)s->cap * sizeof *s->names);
    }
    s->names[s->n++] = xstrdup(buf);
}

static void name_set_free(name_set *s) {
    for (int i = 0; i < s->n; i++) free(s->names[i]);
    free(s->names);
    memset(s, 0, sizeof *s);
}

static void collect_ops(const kiln_graph *g, name_set *s) {
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln__node *n = &g->nodes[i];
        name_set_add(s, n->domain, n->op_type);
        for (int a = 0; a < n->n_attr; a++) {
            if (n->attr[a].g) collect_ops(n->attr[a].g, s);
            for (int j = 0; n->attr[a].graphs && j < n->attr[a].n; j++)
                collect_ops(n->attr[a].graphs[j], s);
        }
    }
}

/* 1 if a graph input or output has a type kiln cannot hold (map, sparse
 * tensor, nested sequence). */
static int uses_non_tensor_io(const kiln_graph *g) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->values[g->inputs[i]].container == KILN__TYPE_OTHER) return 1;
    for (int i = 0; i < g->n_outputs; i++)
        if (g->values[g->outputs[i]].container == KILN__TYPE_OTHER) return 1;
    return 0;
}

/* ---- crash and hang guard ----------------------------------------------- */

static sigjmp_buf g_jmp;
static volatile sig_atomic_t g_guard_armed;
static pthread_t g_main_thread;
static char g_current[512]; /* suite/test running now, for fatal messages */

static void on_signal(int sig) {
    if (g_guard_armed && pthread_equal(pthread_self(), g_main_thread)) {
        g_guard_armed = 0;
        siglongjmp(g_jmp, sig);
    }
    /* a worker thread crashed, or outside a test: nothing to recover */
    static const char msg[] = "kiln_conformance: fatal signal outside the guarded test thread "
                              "during test ";
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, g_current, strlen(g_current)) < 0 ||
        write(2, "\n", 1) < 0) { /* nothing more to do */ }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_guard(void) {
    static char altstack[1 << 16];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
    g_main_thread = pthread_self();
}

/* ---- one test ------------------------------------------------------------ */

typedef struct {
    kiln_tensor *t[MAX_TENSORS];
    char *names[MAX_TENSORS];
    int n;
} tensor_list;

static void tensor_list_free(tensor_list *l) {
    for (int i = 0; i < l->n; i++) {
        kiln_tensor_free(l->t[i]);
        free(l->names[i]);
    }
    l->n = 0;
}

typedef struct {
    result_kind result;
    char msg[1024];
} outcome;

static void set_outcome(outcome *o, result_kind r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_outcome(outcome *o, result_kind r, const char *fmt, ...) {
    o->result = r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->msg, sizeof o->msg, fmt, ap);
    va_end(ap);
}

/* An error status: unsupported if kiln says so, else a failure. */
static void set_error(outcome *o, kiln_status st, const char *what) {
    set_outcome(o, st == KILN_E_UNSUPPORTED ? RES_UNSUP : RES_FAIL, "%s: %s (%s)", what,
                kiln_last_error(), kiln_status_name(st));
}

/* Gives empty containers (whose files cannot say) the element dtype the
 * model declares, down to an optional's sequence. */
static void declared_elem(kiln_tensor *t, kiln_dtype dt) {
    if (!kiln__is_container(t->dtype)) return;
    if (t->elem == KILN_DTYPE_UNDEFINED) t->elem = dt;
    for (int64_t i = 0; i < t->dims[0]; i++) declared_elem(kiln__container_item(t, i), dt);
}

/* Loads dir/prefixK.pb for K = 0, 1, ...: a TensorProto, or a SequenceProto /
 * OptionalProto where the K-th of the graph's values vals[0..n_vals) is
 * declared a sequence / optional. */
static kiln_status load_pb_series(const char *dir, const char *prefix, const kiln_graph *g,
                                  const int *vals, int n_vals, tensor_list *l) {
    for (int k = 0; k < MAX_TENSORS; k++) {
        char path[PATH_MAX];
        strf(path, sizeof path, "%s/%s%d.pb", dir, prefix, k);
        if (access(path, R_OK) != 0) break;
        const kiln__value *v = k < n_vals ? &g->values[vals[k]] : NULL;
        int kind = v ? v->container : 0;
        kiln_status st = kind == KILN__DTYPE_SEQUENCE
                             ? kiln_sequence_load_onnx_pb(path, &l->t[l->n], &l->names[l->n])
                         : kind == KILN__DTYPE_OPTIONAL
                             ? kiln_optional_load_onnx_pb(path, &l->t[l->n], &l->names[l->n])
                             : kiln_tensor_load_onnx_pb(path, &l->t[l->n], &l->names[l->n]);
        if (st != KILN_OK) return st;
        if (v) declared_elem(l->t[l->n], v->dtype);
        l->n++;
    }
    return KILN_OK;
}

/* Older test data (Debian's libonnx-testdata, onnx < 1.14) stores bfloat16
 * tensors as uint16 bit patterns: read them as the bfloat16 the model
 * declares. */
static void legacy_bf16(kiln_tensor *t, kiln_dtype declared) {
    if (declared == KILN_DTYPE_BF16 && t->dtype == KILN_DTYPE_U16) t->dtype = KILN_DTYPE_BF16;
}

/* Runs s on inputs (matched to graph inputs by name, else by position) and
 * compares with expected. */
static void run_and_compare(kiln_session *s, const kiln_graph *g, const tensor_list *in,
                            const tensor_list *expected, outcome *o) {
    const char *names[MAX_TENSORS];
    const kiln_tensor *ts[MAX_TENSORS];
    int n_graph_in = kiln_graph_num_inputs(g);
    for (int k = 0; k < in->n; k++) {
        const char *nm = NULL;
        kiln_value_info info;
        for (int i = 0; !nm && i < n_graph_in && in->names[k] && in->names[k][0]; i++)
            if (kiln_graph_input_info(g, i, &info) == KILN_OK && strcmp(info.name, in->names[k]) == 0)
                nm = info.name;
        if (!nm && k < n_graph_in && kiln_graph_input_info(g, k, &info) == KILN_OK) nm = info.name;
        if (!nm) {
            set_outcome(o, RES_FAIL, "input file %d has no matching graph input (%d inputs)", k,
                        n_graph_in);
            return;
        }
        names[k] = nm;
        ts[k] = in->t[k];
        legacy_bf16(in->t[k], info.dtype);
    }
    kiln_status st = kiln_session_run(s, in->n, names, ts);
    if (st != KILN_OK) {
        set_error(o, st, "run");
        return;
    }
    int n_out = kiln_graph_num_outputs(g);
    if (expected->n != n_out) {
        set_outcome(o, RES_FAIL, "%d expected outputs, the model has %d", expected->n, n_out);
        return;
    }
    for (int i = 0; i < n_out; i++) {
        const kiln_tensor *got;
        st = kiln_session_output(s, i, &got);
        if (st != KILN_OK) {
            set_error(o, st, "output");
            return;
        }
        kiln_value_info oinfo;
        if (kiln_graph_output_info(g, i, &oinfo) == KILN_OK) legacy_bf16(expected->t[i], oinfo.dtype);
        char why[512];
        if (!conf_compare(got, expected->t[i], CONF_RTOL, CONF_ATOL, why, sizeof why)) {
            kiln_value_info info;
            kiln_graph_output_info(g, i, &info);
            set_outcome(o, RES_FAIL, "output %d '%s': %s", i, info.name, why);
            return;
        }
    }
    set_outcome(o, RES_PASS, "ok");
}

/* Light suite input: arange(n)/n as float32 of the declared shape (unknown
 * dims are 1). */
static kiln_status light_inputs(const kiln_graph *g, tensor_list *in) {
    int n = kiln_graph_num_inputs(g);
    for (int i = 0; i < n && i < MAX_TENSORS; i++) {
        kiln_value_info info;
        KILN__TRY(kiln_graph_input_info(g, i, &info));
        int64_t dims[KILN_MAX_DIMS];
        int nd = info.ndim < 0 ? 0 : info.ndim;
        for (int d = 0; d < nd; d++) dims[d] = info.dims[d] >= 0 ? info.dims[d] : 1;
        kiln_tensor *t;
        KILN__TRY(kiln_tensor_create(KILN_DTYPE_F32, nd, dims, &t));
        float *p = kiln_tensor_data(t);
        int64_t numel = kiln_tensor_numel(t);
        for (int64_t k = 0; k < numel; k++) p[k] = (float)((double)k / (double)numel);
        in->t[in->n] = t;
        in->names[in->n] = xstrdup(info.name);
        in->n++;
    }
    return KILN_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of entries of dir that start with prefix (and, if suffix is
 * not NULL, end with it). */
static char **list_dir(const char *dir, const char *prefix, const char *suffix, int *count) {
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        size_t l = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
        if (suffix && (l < sl || strcmp(e->d_name + l - sl, suffix) != 0)) continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 64;
            names = xrealloc(names, (size_t)cap * sizeof *names);
        }
        names[(*count)++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (*count) qsort(names, (size_t)*count, sizeof *names, cmp_str);
    return names;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* State of one test, kept outside the guarded region so that what was
 * allocated can still be freed after a caught crash. */
typedef struct {
    kiln_graph *g;
    kiln_session *s;
    tensor_list in, out;
    name_set ops;
} test_state;

/* model: the model file; data_dir: the test folder (NULL for light);
 * light_prefix: ROOT/light/light_NAME for light tests. */
/* Writes kiln's export of *g to the export folder and, with --roundtrip,
 * replaces *g by the graph read back from it. */
static kiln_status save_copy(const options *opt, const char *suite, const char *test,
                             kiln_graph **g) {
    char path[PATH_MAX];
    if (opt->export_dir) {
        strf(path, sizeof path, "%s/%s", opt->export_dir, suite);
        mkdir(opt->export_dir, 0777);
        mkdir(path, 0777);
        strf(path, sizeof path, "%s/%s/%s.onnx", opt->export_dir, suite, test);
    } else {
        strf(path, sizeof path, "/tmp/kiln_conformance_rt_%d.onnx", (int)getpid());
    }
    KILN__TRY(kiln_graph_save_onnx(*g, path));
    if (!opt->roundtrip) return KILN_OK;
    kiln_graph *back = NULL;
    kiln_status st = kiln_graph_load_onnx(path, &back);
    if (!opt->export_dir) unlink(path);
    if (st != KILN_OK) return st;
    kiln_graph_free(*g);
    *g = back;
    return KILN_OK;
}

static void run_test_body(const options *opt, const char *suite_name, const char *test_name,
                          const char *model, const char *data_dir, const char *light_prefix,
                          test_state *ts, outcome *o) {
    kiln_status st = kiln_graph_load_onnx(model, &ts->g);
    if (st != KILN_OK) {
        set_error(o, st, "load");
        return;
    }
    collect_ops(ts->g, &ts->ops);
    if (opt->export_dir || opt->roundtrip) {
        st = save_copy(opt, suite_name, test_name, &ts->g);
        if (st != KILN_OK) {
            set_error(o, st, opt->roundtrip ? "round trip" : "export");
            return;
        }
    }
    char buf[1024];
    if (kiln_graph_unsupported_ops(ts->g, buf, sizeof buf) > 0) {
        set_outcome(o, RES_UNSUP, "unsupported op(s): %s", buf);
        return;
    }
    if (uses_non_tensor_io(ts->g)) {
        set_outcome(o, RES_UNSUP, "a graph input or output is a map, sparse tensor or nested sequence");
        return;
    }
    /* one thread unless -t says otherwise: a crash on the calling thread is
     * recoverable, one in a worker is not. The light models are big enough
     * to want every core. */
    kiln_session_options so = {.threads = opt->threads >= 0 ? opt->threads : light_prefix ? 0 : 1,
                               .reference = opt->reference};
    st = kiln_session_create(ts->g, &so, &ts->s);
    if (st != KILN_OK) {
        set_error(o, st, "session");
        return;
    }
    if (light_prefix) {
        st = light_inputs(ts->g, &ts->in);
        if (st != KILN_OK) {
            set_error(o, st, "inputs");
            return;
        }
        char dir[PATH_MAX], base[PATH_MAX];
        strf(dir, sizeof dir, "%s", light_prefix);
        char *slash = strrchr(dir, '/');
        *slash = 0;
        strf(base, sizeof base, "%s_output_", slash + 1);
        st = load_pb_series(dir, base, ts->g, ts->g->outputs, ts->g->n_outputs, &ts->out);
        if (st != KILN_OK) {
            set_error(o, st, "expected outputs");
            return;
        }
        run_and_compare(ts->s, ts->g, &ts->in, &ts->out, o);
        return;
    }
    int n_sets;
    char **sets = list_dir(data_dir, "test_data_set_", NULL, &n_sets);
    if (n_sets == 0) set_outcome(o, RES_FAIL, "no test_data_set_N folder");
    for (int k = 0; k < n_sets; k++) {
        char dir[PATH_MAX];
        strf(dir, sizeof dir, "%s/%s", data_dir, sets[k]);
        tensor_list_free(&ts->in);
        tensor_list_free(&ts->out);
        st = load_pb_series(dir, "input_", ts->g, ts->g->inputs, ts->g->n_inputs, &ts->in);
        if (st == KILN_OK)
            st = load_pb_series(dir, "output_", ts->g, ts->g->outputs, ts->g->n_outputs, &ts->out);
        if (st != KILN_OK) {
            set_error(o, st, "test data");
        } else {
            run_and_compare(ts->s, ts->g, &ts->in, &ts->out, o);
        }
        if (o->result != RES_PASS) {
            char tmp[sizeof o->msg];
            strf(tmp, sizeof tmp, "%s: %s", sets[k], o->msg);
            strf(o->msg, sizeof o->msg, "%s", tmp);
            break;
        }
    }
    free_names(sets, n_sets);
}

static void run_test(const options *opt, suite_row *suite, const char *test_name,
                     const char *model, const char *data_dir, const char *light_prefix) {
    static test_state ts;
    static outcome o;
    memset(&ts, 0, sizeof ts);
    set_outcome(&o, RES_FAIL, "did not finish");
    strf(g_current, sizeof g_current, "%s/%s", suite->name, test_name);
    double t0 = kiln__now_s();
    int sig = sigsetjmp(g_jmp, 1);
    if (sig == 0) {
        g_guard_armed = 1;
        if (opt->timeout_s > 0) alarm((unsigned)opt->timeout_s);
        run_test_body(opt, suite->name, test_name, model, data_dir, light_prefix, &ts, &o);
        alarm(0);
        g_guard_armed = 0;
    } else {
        alarm(0);
        if (sig == SIGALRM) set_outcome(&o, RES_FAIL, "timed out after %d s", opt->timeout_s);
        else set_outcome(&o, RES_FAIL, "crashed with signal %d (%s)", sig, strsignal(sig));
        /* after a crash the session may be inconsistent: leak it rather than
         * risk a second crash while freeing */
        ts.s = NULL;
        ts.g = NULL;
    }
    double dt = kiln__now_s() - t0;
    kiln_session_free(ts.s);
    kiln_graph_free(ts.g);
    tensor_list_free(&ts.in);
    tensor_list_free(&ts.out);

    suite->n[o.result]++;
    if (ts.ops.n == 0) count_op("(model did not load)", o.result);
    for (int i = 0; i < ts.ops.n; i++) count_op(ts.ops.names[i], o.result);
    name_set_free(&ts.ops);
    add_timing(suite->name, test_name, dt);
    if (opt->verbose) {
        printf("%-11s %s/%s (%.3f s)%s%s\n", result_names[o.result], suite->name, test_name, dt,
               o.result == RES_PASS ? "" : ": ", o.result == RES_PASS ? "" : o.msg);
        fflush(stdout);
    }
}

static int matches(const options *opt, const char *suite, const char *test) {
    if (!opt->filter) return 1;
    char full[PATH_MAX];
    strf(full, sizeof full, "%s/%s", suite, test);
    return strstr(full, opt->filter) != NULL;
}

static void run_suite(const options *opt, suite_row *suite) {
    char dir[PATH_MAX];
    strf(dir, sizeof dir, "%s/%s", opt->root, suite->name);
    double t0 = kiln__now_s();
    int n;
    if (strcmp(suite->name, "light") == 0) {
        char **files = list_dir(dir, "light_", ".onnx", &n);
        for (int i = 0; i < n; i++) {
            char name[PATH_MAX], model[PATH_MAX], prefix[PATH_MAX];
            strf(name, sizeof name, "%.*s", (int)(strlen(files[i]) - 5), files[i]);
            if (!matches(opt, suite->name, name)) continue;
            strf(model, sizeof model, "%s/%s", dir, files[i]);
            strf(prefix, sizeof prefix, "%s/%s", dir, name);
            run_test(opt, suite, name, model, NULL, prefix);
            suite->ran++;
        }
        free_names(files, n);
    } else {
        char **tests = list_dir(dir, "", NULL, &n);
        for (int i = 0; i < n; i++) {
            char tdir[PATH_MAX], model[PATH_MAX];
            strf(tdir, sizeof tdir, "%s/%s", dir, tests[i]);
            strf(model, sizeof model, "%s/model.onnx", tdir);
            if (tests[i][0] == '.' || access(model, R_OK) != 0) continue;
            if (!matches(opt, suite->name, tests[i])) continue;
            run_test(opt, suite, tests[i], model, tdir, NULL);
            suite->ran++;
        }
        free_names(tests, n);
    }
    suite->seconds = kiln__now_s() - t0;
}

/* ---- data root, baseline -------------------------------------------------- */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --data, $KILN_ONNX_TEST_DATA, or the onnx wheel of a venv: ./.venv, the
 * venv of the source tree above the binary, then /tmp/venv. */
static char *find_root(const char *given) {
    if (given) return xstrdup(given);
    const char *env = getenv("KILN_ONNX_TEST_DATA");
    if (env && *env) return xstrdup(env);
    const char *tail = "lib/python3*/site-packages/onnx/backend/test/data";
    char exe[PATH_MAX] = "";
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[l > 0 ? l : 0] = 0;
    char *candidates[8];
    int nc = 0;
    if (asprintf(&candidates[nc], ".venv/%s", tail) >= 0) nc++;
    for (int up = 1; up <= 3 && exe[0]; up++) { /* build/tests/kiln_conformance -> src root */
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = 0;
        if (asprintf(&candidates[nc], "%s/.venv/%s", exe, tail) >= 0) nc++;
    }
    if (asprintf(&candidates[nc], "/tmp/venv/%s", tail) >= 0) nc++;
    char *found = NULL;
    for (int i = 0; i < nc; i++) {
        glob_t gl;
        if (!found && glob(candidates[i], 0, NULL, &gl) == 0) {
            for (size_t k = 0; k < gl.gl_pathc && !found; k++)
                if (is_dir(gl.gl_pathv[k])) found = xstrdup(gl.gl_pathv[k]);
            globfree(&gl);
        }
        free(candidates[i]);
    }
    return found;
}

/* Returns the number of suites below their baseline (-1 if unreadable). */
static int check_baseline(const char *path, const suite_row *suites, int n) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "kiln_conformance: cannot read baseline %s\n", path);
        return -1;
    }
    char line[512];
    int below = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256];
        int min;
        if (line[0] == '#' || sscanf(line, "%255s %d", name, &min) != 2) continue;
        for (int i = 0; i < n; i++) {
            if (strcmp(suites[i].name, name) != 0 || !suites[i].ran) continue;
            if (suites[i].n[RES_PASS] < min) {
                printf("baseline: suite %s has %d passing tests, below the baseline %d\n", name,
                       suites[i].n[RES_PASS], min);
                below++;
            }
        }
    }
    fclose(f);
    return below;
}

static int write_baseline(const char *path, const suite_row *suites, int n) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kiln_conformance: cannot write baseline %s\n", path);
        return -1;
    }
    fprintf(f, "# kiln_conformance baseline: minimum passing tests per suite\n");
    for (int i = 0; i < n; i++)
        if (suites[i].ran) fprintf(f, "%s %d\n", suites[i].name, suites[i].n[RES_PASS]);
    return fclose(f) == 0 ? 0 : -1;
}

static int cmp_op_row(const void *a, const void *b) {
    return strcmp(((const op_row *)a)->name, ((const op_row *)b)->name);
}

static int cmp_timing(const void *a, const void *b) {
    double x = ((const timing *)a)->seconds, y = ((const timing *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: kiln_conformance [--data ROOT] [--suite node,pytorch-converted,pytorch-operator,"
            "simple,light]\n"
            "                        [--filter SUBSTR] [--baseline FILE] [--update-baseline FILE]\n"
            "                        [-v] [-t THREADS] [--timeout SECONDS] [--roundtrip] [--export DIR]\n"
            "                        [--reference]\n"
            "--reference: run on the reference kernels only (default: graph passes and fast\n"
            "  algorithms, as kiln run does)\n"
            "-t THREADS: session threads (default 1, all cores for the light suite; a crash\n"
            "  is recoverable only on the calling thread)\n"
            "--timeout SECONDS: per-test limit (default 120)\n"
            "--roundtrip: run every model after saving it with kiln and loading it back\n"
            "--export DIR: write kiln's export of every model to DIR/SUITE/TEST.onnx\n"
            "ROOT defaults to $KILN_ONNX_TEST_DATA, else .venv/lib/python3*/site-packages/onnx/"
            "backend/test/data\n");
}

int main(int argc, char **argv) {
    options opt = {.threads = -1, .timeout_s = 120};
    const char *data = NULL;
    char *suite_list = xstrdup("node,pytorch-converted,pytorch-operator,simple,light");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) opt.verbose = 1;
        else if (strcmp(a, "--roundtrip") == 0) opt.roundtrip = 1;
        else if (strcmp(a, "--reference") == 0) opt.reference = 1;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (!next) {
            fprintf(stderr, "kiln_conformance: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        } else if (strcmp(a, "--data") == 0) data = argv[++i];
        else if (strcmp(a, "--suite") == 0) {
            free(suite_list);
            suite_list = xstrdup(argv[++i]);
        } else if (strcmp(a, "--filter") == 0) opt.filter = argv[++i];
        else if (strcmp(a, "--baseline") == 0) opt.baseline = argv[++i];
        else if (strcmp(a, "--update-baseline") == 0) opt.update_baseline = argv[++i];
        else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) opt.threads = atoi(argv[++i]);
        else if (strcmp(a, "--timeout") == 0) opt.timeout_s = atoi(argv[++i]);
        else if (strcmp(a, "--export") == 0) opt.export_dir = argv[++i];
        else {
            fprintf(stderr, "kiln_conformance: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    char *root = find_root(data);
    if (!root || !is_dir(root)) {
        fprintf(stderr, "kiln_conformance: test data not found (%s); use --data ROOT or "
                        "KILN_ONNX_TEST_DATA\n", root ? root : "no onnx wheel in .venv");
        return 2;
    }
    opt.root = root;
    if (opt.threads >= 0 && opt.threads != 1)
        fprintf(stderr, "kiln_conformance: note: with -t %d a crash in a worker thread ends the run\n",
                opt.threads);
    install_guard();

    suite_row suites[16];
    int n_suites = 0;
    for (char *save, *tok = strtok_r(suite_list, ",", &save); tok && n_suites < 16;
         tok = strtok_r(NULL, ",", &save))
        suites[n_suites++] = (suite_row){tok, {0, 0, 0}, 0, 0};
    double t0 = kiln__now_s();
    for (int i = 0; i < n_suites; i++) {
        char dir[PATH_MAX];
        strf(dir, sizeof dir, "%s/%s", root, suites[i].name);
        if (!is_dir(dir)) {
            fprintf(stderr, "kiln_conformance: no suite folder %s\n", dir);
            continue;
        }
        run_suite(&opt, &suites[i]);
    }
    double total_s = kiln__now_s() - t0;

    /* per-op table */
    qsort(g_ops, (size_t)g_n_ops, sizeof *g_ops, cmp_op_row);
    printf("\n%-40s %6s %6s %6s\n", "op", "pass", "fail", "unsup");
    for (int i = 0; i < g_n_ops; i++)
        printf("%-40s %6d %6d %6d\n", g_ops[i].name, g_ops[i].n[RES_PASS], g_ops[i].n[RES_FAIL],
               g_ops[i].n[RES_UNSUP]);
    if (opt.verbose && g_n_times) {
        qsort(g_times, (size_t)g_n_times, sizeof *g_times, cmp_timing);
        printf("\nslowest tests:\n");
        for (int i = 0; i < g_n_times && i < 10; i++)
            printf("  %8.3f s  %s\n", g_times[i].seconds, g_times[i].name);
    }
    int tot[3] = {0, 0, 0};
    printf("\n");
    for (int i = 0; i < n_suites; i++) {
        if (!suites[i].ran) continue;
        printf("suite %-18s %5d passed, %5d failed, %5d unsupported (%.1f s)\n", suites[i].name,
               suites[i].n[RES_PASS], suites[i].n[RES_FAIL], suites[i].n[RES_UNSUP],
               suites[i].seconds);
        for (int r = 0; r < 3; r++) tot[r] += suites[i].n[r];
    }
    printf("conformance: %d passed, %d failed, %d unsupported (%.1f s)\n", tot[RES_PASS],
           tot[RES_FAIL], tot[RES_UNSUP], total_s);

    int rc = 0;
    if (opt.update_baseline && write_baseline(opt.update_baseline, suites, n_suites) != 0) rc = 2;
    if (opt.baseline) {
        if (opt.filter) {
            printf("baseline: not checked (--filter selects a subset)\n");
        } else {
            int below = check_baseline(opt.baseline, suites, n_suites);
            if (below != 0) rc = 1;
        }
    }
    printf("%d passed, %d failed\n", tot[RES_PASS], tot[RES_FAIL]);
    for (int i = 0; i < g_n_ops; i++) free(g_ops[i].name);
    free(g_ops);
    for (int i = 0; i < g_n_times; i++) free(g_times[i].name);
    free(g_times);
    free(suite_list);
    free(root);
    return rc;
}
