/* tools/kiln/cli_util.c: helpers shared by the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int kiln_cli_fail(const char *cmd, kiln_status s) {
    const char *msg = kiln_last_error();
    fprintf(stderr, "kiln %s: error: %s\n", cmd, msg && msg[0] ? msg : kiln_status_text(s));
    return 1;
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

int kiln_cli_need_model(const char *help, const char *path) {
    if (path) return 0;
    fputs(help, stderr);
    return 2;
}
