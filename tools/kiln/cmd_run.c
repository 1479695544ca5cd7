/* tools/kiln/cmd_run.c: `kiln run MODEL -i NAME=FILE.npy ... -o OUTDIR`. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char *help =
    "usage: kiln run MODEL.onnx [-i NAME=FILE.npy ...] [-o OUTDIR] [-t N]\n"
    "                [--random] [--seed S] [--shape NAME=d0,d1,...] [--repeat K]\n"
    "\n"
    "Runs the model and writes OUTDIR/<output name>.npy for every graph output\n"
    "(characters outside [A-Za-z0-9._-] in names become '_'). A sequence output\n"
    "NAME is written as one file per item, OUTDIR/NAME.0.npy, NAME.1.npy, ...; an\n"
    "optional output as NAME.npy (NAME.<i>.npy if it holds a sequence), or nothing\n"
    "if it is empty (the summary says so). Prints a summary of each output and the\n"
    "latency.\n"
    "\n"
    "  -i NAME=FILE.npy   value of graph input NAME (repeat for each input)\n"
    "  -o OUTDIR          directory for the outputs (created if missing); without\n"
    "                     it nothing is written\n"
    "  -t N               threads (default: all cores)\n"
    "  --random           fill inputs not given with -i with seeded random data\n"
    "                     (floats uniform in [0,1), integers in [0,10), bools 0/1)\n"
    "  --seed S           seed for --random (default 1)\n"
    "  --shape NAME=DIMS  shape for a random input with dynamic dims (default: 1\n"
    "                     for each dynamic dim)\n"
    "  --repeat K         run K more times and report the mean latency\n";

#define MAX_INPUTS 256

static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t x = rng_state;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return rng_state = x;
}

static void fill_random(kiln_tensor *t) {
    int64_t n = kiln_tensor_numel(t);
    void *d = kiln_tensor_data(t);
    kiln_dtype dt = kiln_tensor_dtype(t);
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(rng_next() >> 11) / 9007199254740992.0;
        switch (dt) {
        case KILN_DTYPE_F32: ((float *)d)[i] = (float)u; break;
        case KILN_DTYPE_F64: ((double *)d)[i] = u; break;
        case KILN_DTYPE_F16: ((uint16_t *)d)[i] = kiln_f32_to_f16((float)u); break;
        case KILN_DTYPE_BF16: ((uint16_t *)d)[i] = kiln_f32_to_bf16((float)u); break;
        case KILN_DTYPE_BOOL: ((uint8_t *)d)[i] = u < 0.5; break;
        case KILN_DTYPE_I8: case KILN_DTYPE_U8: ((uint8_t *)d)[i] = (uint8_t)(u * 10); break;
        case KILN_DTYPE_I16: case KILN_DTYPE_U16: ((uint16_t *)d)[i] = (uint16_t)(u * 10); break;
        case KILN_DTYPE_I32: case KILN_DTYPE_U32: ((uint32_t *)d)[i] = (uint32_t)(u * 10); break;
        case KILN_DTYPE_I64: case KILN_DTYPE_U64: ((uint64_t *)d)[i] = (uint64_t)(u * 10); break;
        default: break;
        }
    }
}

static int parse_dims(const char *s, int64_t *dims, int *ndim) {
    *ndim = 0;
    if (!*s) return 0;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0 || *ndim >= KILN_MAX_DIMS) return -1;
        dims[(*ndim)++] = v;
        if (*end == 0) return 0;
        if (*end != ',') return -1;
        s = end + 1;
    }
}

/* Output file name: characters outside [A-Za-z0-9._-] become '_'; the names
 * "", "." and ".." (which are not file names) become "_", "_" and "__". */
static void sanitize(const char *name, char *out, size_t len) {
    size_t k = 0;
    for (; name[k] && k + 1 < len; k++) {
        char ch = name[k];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        out[k] = ok ? ch : '_';
    }
    out[k] = 0;
    if (k == 0) snprintf(out, len, "_");
    if (!strcmp(out, ".") || !strcmp(out, ".."))
        for (size_t i = 0; out[i]; i++) out[i] = '_';
}

static int mkdir_p(const char *dir) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* One line for tensor t: "  LABEL: float32 (2,3) min=... max=... mean=... argmax=...". */
static void summarize_tensor(const char *indent, const char *label, const kiln_tensor *t) {
    char shape[256];
    size_t k = 0;
    int nd = kiln_tensor_ndim(t);
    k += (size_t)snprintf(shape, sizeof shape, "(");
    for (int d = 0; d < nd && k < sizeof shape; d++)
        k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", d ? "," : "",
                              (long long)kiln_tensor_dims(t)[d]);
    if (k < sizeof shape) snprintf(shape + k, sizeof shape - k, ")");
    printf("%s%s: %s %s", indent, label, kiln_dtype_name(kiln_tensor_dtype(t)), shape);
    kiln_dtype dt = kiln_tensor_dtype(t);
    int64_t n = kiln_tensor_numel(t);
    if (n > 0 && dt != KILN_DTYPE_STRING) {
        kiln_tensor *f;
        if (kiln_tensor_copy(t, KILN_DTYPE_F64, &f) == KILN_OK) {
            const double *x = kiln_tensor_data(f);
            double mn = x[0], mx = x[0], sum = 0;
            int64_t am = 0;
            for (int64_t i = 0; i < n; i++) {
                if (x[i] < mn) mn = x[i];
                if (x[i] > mx) mx = x[i], am = i;
                sum += x[i];
            }
            printf(" min=%.6g max=%.6g mean=%.6g argmax=%lld", mn, mx, sum / (double)n, (long long)am);
            kiln_tensor_free(f);
        }
    }
    printf("\n");
}

/* Summary of an output: a tensor's line, or for a sequence / optional a line
 * saying what it holds and one line per tensor inside. */
static void summarize(const char *name, const kiln_tensor *t) {
    if (!kiln_tensor_is_sequence(t) && !kiln_tensor_is_optional(t)) {
        summarize_tensor("  ", name, t);
        return;
    }
    const char *elem = kiln_dtype_name(kiln_tensor_elem_dtype(t));
    int64_t n = kiln_tensor_num_items(t);
    const kiln_tensor *seq = t;
    if (kiln_tensor_is_optional(t)) {
        const kiln_tensor *item = kiln_tensor_item(t, 0);
        if (!item) {
            printf("  %s: optional(%s), empty\n", name, elem);
            return;
        }
        if (!kiln_tensor_is_sequence(item)) {
            summarize_tensor("  ", name, item);
            return;
        }
        printf("  %s: optional holding ", name);
        seq = item;
        n = kiln_tensor_num_items(item);
    } else {
        printf("  %s: ", name);
    }
    printf("sequence of %lld %s tensor%s\n", (long long)n, elem, n == 1 ? "" : "s");
    for (int64_t i = 0; i < n; i++) {
        char label[32];
        snprintf(label, sizeof label, "[%lld]", (long long)i);
        summarize_tensor("    ", label, kiln_tensor_item(seq, i));
    }
}

/* Writes output t as OUTDIR/FNAME.npy, a sequence as OUTDIR/FNAME.<i>.npy per
 * item, an optional as what it holds (nothing if empty). */
static kiln_status save_output(const char *outdir, const char *fname, const kiln_tensor *t) {
    char file[4096];
    if (kiln_tensor_is_optional(t)) {
        const kiln_tensor *item = kiln_tensor_item(t, 0);
        return item ? save_output(outdir, fname, item) : KILN_OK;
    }
    if (!kiln_tensor_is_sequence(t)) {
        snprintf(file, sizeof file, "%s/%s.npy", outdir, fname);
        return kiln_tensor_save_npy(t, file);
    }
    for (int64_t i = 0; i < kiln_tensor_num_items(t); i++) {
        snprintf(file, sizeof file, "%s/%s.%lld.npy", outdir, fname, (long long)i);
        kiln_status s = kiln_tensor_save_npy(kiln_tensor_item(t, i), file);
        if (s != KILN_OK) return s;
    }
    return KILN_OK;
}

/* Splits "NAME=VALUE" (arg is modified) into *name and *value and counts it
 * in *n; prints the usage of opt and returns -1 if malformed or too many. */
static int split_pair(const char *opt, const char *form, char *arg, const char **name,
                      const char **value, int *n) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || *n == MAX_INPUTS) {
        fprintf(stderr, "kiln run: %s expects %s, got '%s'\n", opt, form, arg);
        return -1;
    }
    *eq = 0;
    *name = arg;
    *value = eq + 1;
    (*n)++;
    return 0;
}

int kiln_cmd_run(int argc, char **argv) {
    const char *path = NULL, *outdir = NULL;
    const char *in_names[MAX_INPUTS], *in_files[MAX_INPUTS];
    const char *shape_names[MAX_INPUTS], *shape_dims[MAX_INPUTS];
    int n_in = 0, n_shapes = 0, threads = 0, random = 0, repeat = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if (!strcmp(a, "-i") && has_val) {
            if (split_pair("-i", "NAME=FILE.npy", argv[++i], &in_names[n_in], &in_files[n_in], &n_in) != 0)
                return 2;
        } else if (!strcmp(a, "--shape") && has_val) {
            if (split_pair("--shape", "NAME=d0,d1,...", argv[++i], &shape_names[n_shapes],
                           &shape_dims[n_shapes], &n_shapes) != 0)
                return 2;
        } else if (!strcmp(a, "-o") && has_val) {
            outdir = argv[++i];
        } else if (!strcmp(a, "-t") && has_val) {
            if ((threads = kiln_cli_threads(argv[++i])) < 0) {
                fprintf(stderr, "kiln run: -t expects a thread count in 1..256, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--seed") && has_val) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--repeat") && has_val) {
            repeat = atoi(argv[++i]);
            if (repeat < 0) repeat = 0;
        } else if (!strcmp(a, "--random")) {
            random = 1;
        } else if (a[0] == '-' || path) {
            fprintf(stderr, "kiln run: unexpected argument '%s'\n%s", a, help);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fputs(help, stderr);
        return 2;
    }
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    int rc = 1;
    kiln_graph *g = NULL;
    kiln_session *sess = NULL;
    const char *names[MAX_INPUTS];
    kiln_tensor *tensors[MAX_INPUTS] = {0};
    int n = 0;
    kiln_status s = kiln_graph_load_onnx(path, &g);
    if (s != KILN_OK) return kiln_cli_fail("run", s);
    for (int k = 0; k < n_in; k++) {
        int found = 0;
        for (int i = 0; i < kiln_graph_num_inputs(g); i++) {
            kiln_value_info v;
            kiln_graph_input_info(g, i, &v);
            found |= !strcmp(v.name, in_names[k]);
        }
        if (!found) {
            fprintf(stderr, "kiln run: error: %s has no input named '%s'\n", path, in_names[k]);
            goto done;
        }
        if ((s = kiln_tensor_load_npy(in_files[k], &tensors[n])) != KILN_OK) {
            kiln_cli_fail("run", s);
            goto done;
        }
        names[n++] = in_names[k];
    }
    for (int i = 0; i < kiln_graph_num_inputs(g); i++) {
        kiln_value_info v;
        kiln_graph_input_info(g, i, &v);
        int given = 0;
        for (int k = 0; k < n; k++) given |= !strcmp(names[k], v.name);
        if (given) continue;
        if (!random) {
            char d[256];
            kiln_cli_describe(&v, d, sizeof d);
            fprintf(stderr, "kiln run: error: input '%s' (%s) not given: use -i %s=FILE.npy or --random\n",
                    v.name, d, v.name);
            goto done;
        }
        int64_t dims[KILN_MAX_DIMS];
        int ndim = v.ndim < 0 ? 0 : v.ndim;
        for (int d = 0; d < ndim; d++) dims[d] = v.dims[d] >= 0 ? v.dims[d] : 1;
        for (int k = 0; k < n_shapes; k++)
            if (!strcmp(shape_names[k], v.name) && parse_dims(shape_dims[k], dims, &ndim) != 0) {
                fprintf(stderr, "kiln run: error: bad --shape for '%s': '%s'\n", v.name, shape_dims[k]);
                goto done;
            }
        kiln_dtype dt = v.dtype == KILN_DTYPE_UNDEFINED ? KILN_DTYPE_F32 : v.dtype;
        if ((s = kiln_tensor_create(dt, ndim, dims, &tensors[n])) != KILN_OK) {
            kiln_cli_fail("run", s);
            goto done;
        }
        fill_random(tensors[n]);
        names[n++] = v.name;
    }
    kiln_session_options opt = {threads};
    if ((s = kiln_session_create(g, &opt, &sess)) != KILN_OK) {
        kiln_cli_fail("run", s);
        goto done;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s = kiln_session_run(sess, n, names, (const kiln_tensor *const *)tensors);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (s != KILN_OK) {
        kiln_cli_fail("run", s);
        goto done;
    }
    double first_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    double total_ms = 0;
    for (int r = 0; r < repeat; r++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        s = kiln_session_run(sess, n, names, (const kiln_tensor *const *)tensors);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (s != KILN_OK) {
            kiln_cli_fail("run", s);
            goto done;
        }
        total_ms += (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    }
    if (outdir && mkdir_p(outdir) != 0) {
        fprintf(stderr, "kiln run: error: cannot create %s: %s\n", outdir, strerror(errno));
        goto done;
    }
    printf("outputs:\n");
    for (int i = 0; i < kiln_graph_num_outputs(g); i++) {
        kiln_value_info v;
        kiln_graph_output_info(g, i, &v);
        const kiln_tensor *t;
        if ((s = kiln_session_output(sess, i, &t)) != KILN_OK) {
            kiln_cli_fail("run", s);
            goto done;
        }
        summarize(v.name, t);
        if (outdir) {
            char fname[512];
            sanitize(v.name, fname, sizeof fname);
            if ((s = save_output(outdir, fname, t)) != KILN_OK) {
                kiln_cli_fail("run", s);
                goto done;
            }
        }
    }
    printf("threads: %d\nlatency: first run %.3f ms (includes planning)", kiln_session_threads(sess),
           first_ms);
    if (repeat) printf(", mean of %d runs %.3f ms", repeat, total_ms / repeat);
    printf("\n");
    rc = 0;
done:
    for (int k = 0; k < n; k++) kiln_tensor_free(tensors[k]);
    kiln_session_free(sess);
    kiln_graph_free(g);
    return rc;
}
