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
    "                [--precision P] [--device D] [--tune] [--timing-cache F]\n"
    "                [--reference]\n"
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
    "  --repeat K         run K more times and report the mean latency\n"
    KILN_CLI_PLAN_HELP;

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

int kiln_cmd_run(int argc, char **argv) {
    const char *path = NULL, *outdir = NULL;
    int threads = 0, repeat = 0;
    kiln_cli_inputs in = {.seed = 1};
    kiln_session_options opt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc, taken;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if ((taken = kiln_cli_input_option(&in, "run", argc, argv, &i)) != 0) {
            if (taken < 0) return 2;
        } else if ((taken = kiln_cli_plan_option("run", argc, argv, &i, &opt)) != 0) {
            if (taken < 0) return 2;
        } else if (!strcmp(a, "-o") && has_val) {
            outdir = argv[++i];
        } else if (!strcmp(a, "--repeat") && has_val) {
            repeat = atoi(argv[++i]);
            if (repeat < 0) repeat = 0;
        } else if (kiln_cli_common_option("run", help, argc, argv, &i, &threads, &path) < 0) {
            return 2;
        }
    }
    if (kiln_cli_need_model(help, path)) return 2;
    if (kiln_cli_plan_finish("run", &opt) != 0) return 2;
    opt.threads = threads;
    int rc = 1;
    kiln_graph *g = NULL;
    kiln_session *sess = NULL;
    kiln_status s = kiln_graph_load_onnx(path, &g);
    if (s != KILN_OK) return kiln_cli_fail("run", s);
    if (kiln_cli_prepare_inputs(&in, "run", path, g) != 0) goto done;
    const char **names = in.names;
    kiln_tensor **tensors = in.tensors;
    int n = in.n;
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
    if (outdir && kiln_cli_mkdir_p(outdir) != 0) {
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
    kiln_cli_free_inputs(&in);
    kiln_session_free(sess);
    kiln_graph_free(g);
    return rc;
}
