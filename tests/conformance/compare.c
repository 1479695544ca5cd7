/* tests/conformance/compare.c: result vs expected tensor comparison. */
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

/* Multi-index of linear element k of shape t, as "(i,j,...)". */
static const char *index_str(const kiln_tensor *t, int64_t k, char *buf, size_t n) {
    int64_t idx[KILN_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->dims[d] ? k % t->dims[d] : 0;
        k = t->dims[d] ? k / t->dims[d] : 0;
    }
    return kiln__shape_str(t->ndim, idx, buf, n);
}

static int float_close(double g, double w, double rtol, double atol) {
    if (isnan(g) || isnan(w)) return isnan(g) && isnan(w);
    if (g == w) return 1; /* same infinities */
    if (isinf(g) || isinf(w)) return 0;
    return fabs(g - w) <= atol + rtol * fabs(w);
}

/* Sequences and optionals: same kind, same length, then item by item. */
static int compare_container(const kiln_tensor *got, const kiln_tensor *want, double rtol,
                             double atol, char *why, size_t why_len) {
    char a[256], b[256];
    if (got->dtype != want->dtype) {
        snprintf(why, why_len, "%s, expected %s", kiln__type_str(got, a, sizeof a),
                 kiln__type_str(want, b, sizeof b));
        return 0;
    }
    if (got->dims[0] != want->dims[0]) {
        snprintf(why, why_len, "%s of %lld items, expected %lld", kiln__type_str(got, a, sizeof a),
                 (long long)got->dims[0], (long long)want->dims[0]);
        return 0;
    }
    for (int64_t i = 0; i < want->dims[0]; i++) {
        const kiln_tensor *g = kiln__container_item(got, i), *w = kiln__container_item(want, i);
        char sub[512];
        if (!g || !w) {
            snprintf(why, why_len, "item %lld is missing", (long long)i);
            return 0;
        }
        if (!conf_compare(g, w, rtol, atol, sub, sizeof sub)) {
            snprintf(why, why_len, "item %lld: %s", (long long)i, sub);
            return 0;
        }
    }
    return 1;
}

int conf_compare(const kiln_tensor *got, const kiln_tensor *want, double rtol, double atol,
                 char *why, size_t why_len) {
    char a[256], b[256];
    if (kiln__is_container(got->dtype) || kiln__is_container(want->dtype))
        return compare_container(got, want, rtol, atol, why, why_len);
    if (got->dtype != want->dtype) {
        snprintf(why, why_len, "dtype %s, expected %s", kiln_dtype_name(got->dtype),
                 kiln_dtype_name(want->dtype));
        return 0;
    }
    if (!kiln__same_shape(got, want)) {
        snprintf(why, why_len, "shape %s, expected %s",
                 kiln__shape_str(got->ndim, got->dims, a, sizeof a),
                 kiln__shape_str(want->ndim, want->dims, b, sizeof b));
        return 0;
    }
    kiln_tensor *tmp = NULL;
    if (!kiln_tensor_is_contiguous(got)) {
        if (kiln_tensor_copy(got, KILN_DTYPE_UNDEFINED, &tmp) != KILN_OK) {
            snprintf(why, why_len, "cannot copy the result: %s", kiln_last_error());
            return 0;
        }
        got = tmp;
    }
    int64_t n = kiln_tensor_numel(want), bad = 0, first = -1;
    double max_err = 0;
    kiln_dtype dt = want->dtype;
    for (int64_t i = 0; i < n; i++) {
        int ok;
        if (dt == KILN_DTYPE_STRING) {
            const char *g = ((char *const *)got->data)[i], *w = ((char *const *)want->data)[i];
            ok = strcmp(g ? g : "", w ? w : "") == 0;
        } else if (kiln__dtype_is_float(dt)) {
            double g = kiln__ld_f(dt, got->data, i), w = kiln__ld_f(dt, want->data, i);
            ok = float_close(g, w, rtol, atol);
            if (!ok && !isnan(g - w) && fabs(g - w) > max_err) max_err = fabs(g - w);
        } else if (dt == KILN_DTYPE_U64) {
            ok = kiln__ld_u(dt, got->data, i) == kiln__ld_u(dt, want->data, i);
        } else {
            ok = kiln__ld_i(dt, got->data, i) == kiln__ld_i(dt, want->data, i);
        }
        if (!ok && bad++ == 0) first = i;
    }
    if (bad) {
        char gv[128], wv[128];
        if (dt == KILN_DTYPE_STRING) {
            snprintf(gv, sizeof gv, "\"%.60s\"", ((char *const *)got->data)[first]);
            snprintf(wv, sizeof wv, "\"%.60s\"", ((char *const *)want->data)[first]);
        } else if (kiln__dtype_is_float(dt)) {
            snprintf(gv, sizeof gv, "%.9g", kiln__ld_f(dt, got->data, first));
            snprintf(wv, sizeof wv, "%.9g", kiln__ld_f(dt, want->data, first));
        } else if (dt == KILN_DTYPE_U64) {
            snprintf(gv, sizeof gv, "%llu", (unsigned long long)kiln__ld_u(dt, got->data, first));
            snprintf(wv, sizeof wv, "%llu", (unsigned long long)kiln__ld_u(dt, want->data, first));
        } else {
            snprintf(gv, sizeof gv, "%lld", (long long)kiln__ld_i(dt, got->data, first));
            snprintf(wv, sizeof wv, "%lld", (long long)kiln__ld_i(dt, want->data, first));
        }
        int k = snprintf(why, why_len, "%lld of %lld elements differ; first at %s: got %s, expected %s",
                         (long long)bad, (long long)n, index_str(want, first, a, sizeof a), gv, wv);
        if (max_err > 0 && k > 0 && (size_t)k < why_len)
            snprintf(why + k, why_len - (size_t)k, " (max abs error %.3g)", max_err);
    }
    kiln_tensor_free(tmp);
    return bad == 0;
}
