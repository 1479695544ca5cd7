/* src/core/status.c: status names and the thread-local last-error message. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

#define KILN__ERR_LEN 1024
static _Thread_local char kiln__errbuf[KILN__ERR_LEN];

const char *kiln_status_name(kiln_status s) {
    switch (s) {
#define KILN__CASE(name, value, text) \
    case KILN_##name:                 \
        return #name;
        KILN_STATUS_MAP(KILN__CASE)
#undef KILN__CASE
    }
    return "E_UNKNOWN";
}

const char *kiln_status_text(kiln_status s) {
    switch (s) {
#define KILN__CASE(name, value, text) \
    case KILN_##name:                 \
        return text;
        KILN_STATUS_MAP(KILN__CASE)
#undef KILN__CASE
    }
    return "unknown status";
}

const char *kiln_last_error(void) { return kiln__errbuf; }

void kiln__err_clear(void) { kiln__errbuf[0] = 0; }

kiln_status kiln__err(kiln_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kiln__errbuf, sizeof kiln__errbuf, fmt, ap);
    va_end(ap);
    return s;
}

kiln_status kiln__err_prefix(kiln_status s, const char *fmt, ...) {
    char prefix[512], old[KILN__ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, kiln__errbuf, sizeof old);
    if (old[0])
        snprintf(kiln__errbuf, sizeof kiln__errbuf, "%s: %s", prefix, old);
    else
        snprintf(kiln__errbuf, sizeof kiln__errbuf, "%s: %s", prefix, kiln_status_text(s));
    return s;
}

kiln_status kiln__name_index(const char *what, const char *const *names, int n, const char *name,
                             int *index) {
    for (int i = 0; i < n; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *index = i;
            return KILN_OK;
        }
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ",
                                names[i]);
    return kiln__err(KILN_E_INVAL, "unknown %s '%s' (expected %s)", what, name ? name : "(null)", list);
}
