/* src/core/cpu.c: what CPU this is (for timing-cache keys and reports). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

static char model[128] = "unknown-cpu";
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_model(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        size_t n = strcspn(v, "\n");
        if (n >= sizeof model) n = sizeof model - 1;
        if (n == 0) break;
        memcpy(model, v, n);
        model[n] = 0;
        for (size_t i = 0; i < n; i++)
            if (model[i] == ' ' || model[i] == '\t' || model[i] == '|') model[i] = '_';
        break;
    }
    fclose(f);
}

const char *kiln__cpu_model(void) {
    pthread_once(&once, read_model);
    return model;
}

int kiln__cpu_has_avx512f(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}
