/* tools/kiln/cmd_bench.c: `kiln bench MODEL`: latency and throughput, in the
 * spirit of trtexec and onnxruntime_perf_test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: kiln bench MODEL.onnx [-i NAME=FILE.npy ...] [--shape NAME=d0,d1,...]\n"
    "                  [--seed S] [-t N] [--precision P] [--device D] [--tune]\n"
    "                  [--timing-cache F]\n"
    "                  [--warmup W] [--iters K] [--profile] [--json]\n"
    "\n"
    "Runs the model W times to warm up, then K timed times, and prints the latency\n"
    "(mean, p50, p90, p99, min, max) and the throughput (runs per second). Inputs\n"
    "not given with -i get seeded random data (dynamic dims 1 unless --shape).\n"
    "\n"
    "  -t N        threads (default: all cores)\n"
    "  --warmup W  untimed runs after planning (default 3)\n"
    "  --iters K   timed runs (default 20)\n"
    "  --profile   add a per-node table: op, node, algorithm, time per run, share,\n"
    "              GFLOP/s (where the algorithm counts its operations)\n"
    "  --json      print one JSON object instead of text:\n"
    "              {\"latency_ms\": {\"mean\", \"p50\", \"p90\", \"p99\", \"min\", \"max\"},\n"
    "               \"throughput_per_s\", \"plan_ms\", \"first_run_ms\", \"threads\", \"iters\",\n"
    "               \"precision\", \"device\"}; plan_ms: session creation (graph passes) and planning\n"
    "              (with --profile also \"nodes\": [{\"op\", \"name\", \"algorithm\",\n"
    "               \"ms\", \"gflops\"}], slowest first)\n"
    KILN_CLI_PLAN_HELP;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Writes s as a JSON string literal. */
static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, int n, double p) {
    int k = (int)(p / 100.0 * n + 0.999999) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static void print_profile(kiln_session *s, int iters, int json) {
    int n = kiln_session_profile(s, NULL, 0);
    kiln_node_profile *p = calloc((size_t)n + 1, sizeof *p);
    if (!p) return;
    kiln_session_profile(s, p, n);
    kiln_cli_profile_sort(p, n);
    if (json) {
        printf(", \"nodes\": [");
        for (int i = 0; i < n; i++) {
            printf("%s{\"op\": ", i ? ", " : "");
            json_string(p[i].op_type);
            printf(", \"name\": ");
            json_string(p[i].name);
            printf(", \"algorithm\": ");
            json_string(p[i].algorithm);
            printf(", \"ms\": %.5f, \"gflops\": %.3f}", p[i].total_ms / iters,
                   kiln_cli_node_gflops(&p[i]));
        }
        printf("]");
    } else {
        printf("\nper node (%d runs):\n", iters);
        kiln_cli_profile_table(p, n, iters);
    }
    free(p);
}

int kiln_cmd_bench(int argc, char **argv) {
    const char *path = NULL;
    int threads = 0, warmup = 3, iters = 20, profile = 0, json = 0;
    kiln_cli_inputs in = {.seed = 1, .random = 1};
    kiln_session_options opt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc, taken;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if (strcmp(a, "--random") && (taken = kiln_cli_input_option(&in, "bench", argc, argv, &i)) != 0) {
            if (taken < 0) return 2;
        } else if ((!strcmp(a, "--warmup") || !strcmp(a, "--iters")) && has_val) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 1000000 || (!strcmp(a, "--iters") && v < 1)) {
                fprintf(stderr, "kiln bench: %s expects a count, got '%s'\n", a, argv[i]);
                return 2;
            }
            *(!strcmp(a, "--iters") ? &iters : &warmup) = (int)v;
        } else if ((taken = kiln_cli_plan_option("bench", argc, argv, &i, &opt)) != 0) {
            if (taken < 0) return 2;
        } else if (!strcmp(a, "--profile")) {
            profile = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (kiln_cli_common_option("bench", help, argc, argv, &i, &threads, &path) < 0) {
            return 2;
        }
    }
    if (kiln_cli_need_model(help, path)) return 2;
    if (kiln_cli_plan_finish("bench", &opt) != 0) return 2;
    opt.threads = threads;
    int rc = 1;
    kiln_graph *g = NULL;
    kiln_session *sess = NULL;
    double *lat = calloc((size_t)iters, sizeof *lat);
    kiln_status s = kiln_graph_load_onnx(path, &g);
    if (s != KILN_OK || !lat) {
        free(lat);
        return kiln_cli_fail("bench", s);
    }
    if (kiln_cli_prepare_inputs(&in, "bench", path, g) != 0) goto done;
    const kiln_tensor *const *tensors = (const kiln_tensor *const *)in.tensors;
    /* planning: graph passes (create) + shapes, folding, algorithms, memory (plan) */
    double t_plan = kiln_cli_now_ms();
    if ((s = kiln_session_create(g, &opt, &sess)) != KILN_OK) goto fail;
    if ((s = kiln_session_plan(sess, in.n, in.names, tensors)) != KILN_OK) goto fail;
    double plan_ms = kiln_cli_now_ms() - t_plan, first_ms = 0;
    for (int w = 0; w < (warmup > 0 ? warmup : 1); w++) {
        double t0 = kiln_cli_now_ms();
        if ((s = kiln_session_run(sess, in.n, in.names, tensors)) != KILN_OK) goto fail;
        if (w == 0) first_ms = kiln_cli_now_ms() - t0;
    }
    if (profile && (s = kiln_session_set_profiling(sess, 1)) != KILN_OK) goto fail;
    double total = 0;
    for (int k = 0; k < iters; k++) {
        double t0 = kiln_cli_now_ms();
        if ((s = kiln_session_run(sess, in.n, in.names, tensors)) != KILN_OK) goto fail;
        lat[k] = kiln_cli_now_ms() - t0;
        total += lat[k];
    }
    qsort(lat, (size_t)iters, sizeof *lat, cmp_double);
    double mean = total / iters;
    if (json) {
        printf("{\"model\": ");
        json_string(path);
        printf(", \"device\": ");
        json_string(kiln_session_device_name(sess) ? kiln_session_device_name(sess) : "cpu");
        printf(", \"threads\": %d, \"precision\": \"%s\", \"iters\": %d, \"plan_ms\": %.4f, "
               "\"first_run_ms\": %.4f, "
               "\"latency_ms\": {\"mean\": %.4f, \"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, "
               "\"min\": %.4f, \"max\": %.4f}, \"throughput_per_s\": %.3f",
               kiln_session_threads(sess), kiln_precision_name(opt.precision), iters, plan_ms, first_ms, mean,
               percentile(lat, iters, 50), percentile(lat, iters, 90), percentile(lat, iters, 99),
               lat[0], lat[iters - 1], 1000.0 / mean);
        if (profile) print_profile(sess, iters, 1);
        printf("}\n");
    } else {
        printf("model: %s\n", path);
        if (kiln_session_device_name(sess)) printf("device: %s\n", kiln_session_device_name(sess));
        printf("threads: %d\nprecision: %s\nplanning (passes, shapes, algorithms, "
               "memory): %.3f ms\nfirst run: %.3f ms\n", kiln_session_threads(sess),
               kiln_precision_name(opt.precision), plan_ms, first_ms);
        printf("latency over %d runs (ms): mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  min %.3f  max %.3f\n",
               iters, mean, percentile(lat, iters, 50), percentile(lat, iters, 90),
               percentile(lat, iters, 99), lat[0], lat[iters - 1]);
        printf("throughput: %.2f runs/s\n", 1000.0 / mean);
        if (profile) print_profile(sess, iters, 0);
    }
    rc = 0;
    goto done;
fail:
    kiln_cli_fail("bench", s);
done:
    kiln_cli_free_inputs(&in);
    kiln_session_free(sess);
    kiln_graph_free(g);
    free(lat);
    return rc;
}
