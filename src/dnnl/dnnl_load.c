/* src/dnnl/dnnl_load.c: loading oneDNN at run time (dnnl_api.h): dlopen
 * after OMP_WAIT_POLICY=passive, the function table, the CPU engine, the
 * OpenMP team size. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl/dnnl_api.h"

kiln__dnnl_api kiln__dnnl;

/* Written once, by load() under load_once; read after pthread_once. */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_started;    /* load() has begun: kiln__dnnl_set_library refuses */
static const char *library; /* kiln__dnnl_set_library's file, or NULL */
static int usable;
static char why[768]; /* the reason when not usable */
static dnnl_engine_t engine;
static void (*omp_set_threads)(int); /* libgomp's omp_set_num_threads, or NULL */

/* Reads and frees the message glibc keeps for the thread's last failed dl*
 * call (ours, or one libdnnl made while loading), which would otherwise stay
 * allocated until the thread exits. */
static void dlerror_clear(void) {
    while (dlerror()) {
    }
}

/* The library from the file names tried in order (the one opened in *name);
 * NULL with why set. */
static void *open_library(const char **name) {
    const char *const defaults[] = {"libdnnl.so.2", "libdnnl.so", NULL};
    const char *const given[] = {library, NULL};
    const char *const *names = library ? given : defaults;
    size_t len = 0;
    for (int i = 0; names[i]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) {
            *name = names[i];
            return h;
        }
        const char *e = dlerror();
        len += (size_t)snprintf(why + len, len < sizeof why ? sizeof why - len : 0, "%s%s",
                                i ? "; " : "", e ? e : names[i]);
        if (len >= sizeof why) len = sizeof why - 1;
        dlerror_clear();
    }
    return NULL;
}

static void load(void) {
    load_started = 1;
    /* before libgomp (which dnnl pulls in) loads and reads it; the user's setting wins */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    const char *file = NULL;
    void *h = open_library(&file);
    if (!h) return;
#define KILN__DNNL_SYM(name)                                                                   \
    if (!(kiln__dnnl.name = (__typeof__(kiln__dnnl.name))dlsym(h, "dnnl_" #name))) {          \
        snprintf(why, sizeof why, "%s has no function dnnl_" #name " (a oneDNN %d.x is needed)", \
                 file, DNNL_VERSION_MAJOR);                                                    \
        goto fail;                                                                             \
    }
    KILN__DNNL_FUNCS(KILN__DNNL_SYM)
#undef KILN__DNNL_SYM
    const dnnl_version_t *v = kiln__dnnl.version();
    if (!v || v->major != DNNL_VERSION_MAJOR) {
        snprintf(why, sizeof why, "%s is oneDNN %d.%d; kiln was built with the %d.x header", file,
                 v ? v->major : -1, v ? v->minor : -1, DNNL_VERSION_MAJOR);
        goto fail;
    }
    if (v->cpu_runtime == DNNL_RUNTIME_OMP) {
        /* the libgomp dnnl brought in (a dependency of h; RTLD_LOCAL hides it from RTLD_DEFAULT) */
        omp_set_threads = (void (*)(int))dlsym(h, "omp_set_num_threads");
        if (!omp_set_threads) {
            snprintf(why, sizeof why, "%s uses OpenMP but omp_set_num_threads was not found", file);
            goto fail;
        }
    }
    dnnl_status_t s = kiln__dnnl.engine_create(&engine, dnnl_cpu, 0);
    if (s != dnnl_success) {
        snprintf(why, sizeof why, "%s: dnnl_engine_create (CPU) failed (status %d)", file, (int)s);
        goto fail;
    }
    usable = 1;
    dlerror_clear();
    return;
fail:
    /* h stays open: its OpenMP runtime may have started; nothing of it is called again */
    memset(&kiln__dnnl, 0, sizeof kiln__dnnl);
    omp_set_threads = NULL;
    dlerror_clear();
}

kiln_status kiln__dnnl_load(void) {
    pthread_once(&load_once, load);
    if (!usable) return kiln__err(KILN_E_UNSUPPORTED, "oneDNN not loadable: %s", why);
    return KILN_OK;
}

const char *kiln__dnnl_unavailable(void) {
    pthread_once(&load_once, load);
    return usable ? NULL : why;
}

kiln_status kiln__dnnl_set_library(const char *file) {
    if (load_started)
        return kiln__err(KILN_E_INVAL, "kiln__dnnl_set_library(%s): oneDNN is already loaded "
                         "(or failed to load)", file ? file : "NULL");
    library = file;
    return KILN_OK;
}

dnnl_engine_t kiln__dnnl_engine(void) { return engine; }

void kiln__dnnl_set_threads(int nth) {
    if (omp_set_threads) omp_set_threads(nth > 0 ? nth : 1);
}
