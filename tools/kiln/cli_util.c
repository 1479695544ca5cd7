/* tools/kiln/cli_util.c: helpers shared by the subcommands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

int kiln_cli_fail(const char *cmd, kiln_status s) {
    const char *msg = kiln_last_error();
    fprintf(stderr, "kiln %s: error: %s\n", cmd, msg && msg[0] ? msg : kiln_status_text(s));
    return 1;
}

int kiln_cli_mkdir_p(const char *dir) {
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

int kiln_cli_threads(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < 1 || v > 256) return -1;
    return (int)v;
}

void kiln_cli_describe(const kiln_value_info *v, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "%s", kiln_dtype_name(v->dtype));
    if (v->ndim < 0) {
        snprintf(buf + k, len - k, "[?]");
        return;
    }
    k += (size_t)snprintf(buf + k, len - k, "[");
    for (int d = 0; d < v->ndim && k < len; d++) {
        if (v->dims[d] >= 0)
            k += (size_t)snprintf(buf + k, len - k, "%s%lld", d ? "," : "", (long long)v->dims[d]);
        else
            k += (size_t)snprintf(buf + k, len - k, "%s%s", d ? "," : "",
                                  v->dim_names[d] ? v->dim_names[d] : "?");
    }
    if (k < len) snprintf(buf + k, len - k, "]");
}

double kiln_cli_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int kiln_cli_common_option(const char *cmd, const char *help, int argc, char **argv, int *i,
                           int *threads, const char **path) {
    const char *a = argv[*i];
    if (!strcmp(a, "-t") && *i + 1 < argc) {
        if ((*threads = kiln_cli_threads(argv[++*i])) < 0) {
            fprintf(stderr, "kiln %s: -t expects a thread count in 1..256, got '%s'\n", cmd, argv[*i]);
            return -1;
        }
        return 1;
    }
    if (a[0] == '-' || *path) {
        fprintf(stderr, "kiln %s: unexpected argument '%s'\n%s", cmd, a, help);
        return -1;
    }
    *path = a;
    return 1;
}

int kiln_cli_plan_option(const char *cmd, int argc, char **argv, int *i, kiln_session_options *opt) {
    const char *a = argv[*i];
    int has_val = *i + 1 < argc;
    if (!strcmp(a, "--precision") && has_val) {
        if (kiln_precision_parse(argv[++*i], &opt->precision) != KILN_OK) {
            fprintf(stderr, "kiln %s: --precision: %s\n", cmd, kiln_last_error());
            return -1;
        }
    } else if (!strcmp(a, "--device") && has_val) {
        if (kiln_device_parse(argv[++*i], &opt->device) != KILN_OK) {
            fprintf(stderr, "kiln %s: --device: %s\n", cmd, kiln_last_error());
            return -1;
        }
    } else if (!strcmp(a, "--tune")) {
        opt->tune = 1;
    } else if (!strcmp(a, "--timing-cache") && has_val) {
        opt->timing_cache = argv[++*i];
    } else if (!strcmp(a, "--reference")) {
        opt->reference = 1;
    } else if (!strcmp(a, "--no-graph-passes")) {
        opt->no_graph_passes = 1;
    } else {
        return 0;
    }
    return 1;
}

int kiln_cli_plan_finish(const char *cmd, kiln_session_options *opt) {
    static char path[4096];
    if (opt->reference && (opt->tune || opt->precision != KILN_PRECISION_FP32 ||
                           opt->device != KILN_DEVICE_CPU)) {
        fprintf(stderr, "kiln %s: --reference runs fp32 reference kernels on the CPU; it does not "
                "combine with --tune, --precision or --device\n", cmd);
        return -1;
    }
    if (!opt->tune || opt->timing_cache) return 0;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0]) snprintf(path, sizeof path, "%s/kiln", xdg);
    else if (home && home[0]) snprintf(path, sizeof path, "%s/.cache/kiln", home);
    else {
        fprintf(stderr, "kiln %s: --tune: no HOME or XDG_CACHE_HOME for the timing cache; give "
                "--timing-cache FILE\n", cmd);
        return -1;
    }
    /* mkdir -p */
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kiln %s: --tune: cannot create %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    size_t n = strlen(path);
    snprintf(path + n, sizeof path - n, "/timing-cache.txt");
    opt->timing_cache = path;
    return 0;
}

int kiln_cli_need_model(const char *help, const char *path) {
    if (path) return 0;
    fputs(help, stderr);
    return 2;
}

static int cmp_profile(const void *a, const void *b) {
    const kiln_node_profile *x = a, *y = b;
    return x->total_ms < y->total_ms ? 1 : x->total_ms > y->total_ms ? -1 : 0;
}

void kiln_cli_profile_sort(kiln_node_profile *p, int n) {
    qsort(p, (size_t)n, sizeof *p, cmp_profile);
}

double kiln_cli_node_gflops(const kiln_node_profile *p) {
    return p->flops > 0 && p->total_ms > 0 ? p->flops * (double)p->calls / (p->total_ms * 1e6) : 0;
}

void kiln_cli_profile_table(const kiln_node_profile *p, int n, int64_t runs) {
    double total = 0;
    for (int i = 0; i < n; i++) total += p[i].total_ms;
    printf("  %-27s %-28s %-20s %12s %7s %9s\n", "op", "node", "algorithm", "ms/run", "share",
           "GFLOP/s");
    for (int i = 0; i < n; i++) {
        char gf[32] = "-";
        if (kiln_cli_node_gflops(&p[i]) > 0) snprintf(gf, sizeof gf, "%.1f", kiln_cli_node_gflops(&p[i]));
        printf("  %-27s %-28.28s %-20s %12.4f %6.1f%% %9s\n", p[i].op_type,
               p[i].name[0] ? p[i].name : "-", p[i].algorithm, p[i].total_ms / (double)runs,
               total > 0 ? 100 * p[i].total_ms / total : 0, gf);
    }
    printf("  %-77s %12.4f\n", "total", total / (double)runs);
}
