/* src/core/container.c: the public API of sequences and optionals (see
 * kiln/tensor.h); their layout and deep copies are in core.h / tensor.c. */
#include <stdlib.h>

#include "core/core.h"

int kiln_tensor_is_sequence(const kiln_tensor *t) { return t && t->dtype == KILN__DTYPE_SEQUENCE; }
int kiln_tensor_is_optional(const kiln_tensor *t) { return t && t->dtype == KILN__DTYPE_OPTIONAL; }

kiln_dtype kiln_tensor_elem_dtype(const kiln_tensor *t) {
    return kiln__is_container(t->dtype) ? t->elem : t->dtype;
}

int64_t kiln_tensor_num_items(const kiln_tensor *t) {
    return kiln__is_container(t->dtype) ? t->dims[0] : -1;
}

const kiln_tensor *kiln_tensor_item(const kiln_tensor *t, int64_t i) {
    if (!t || !kiln__is_container(t->dtype) || !t->data || i < 0 || i >= t->dims[0]) return NULL;
    return kiln__container_item(t, i);
}

/* New container of kind holding copies of items[0..n). */
static kiln_status container_new(kiln_dtype kind, kiln_dtype elem, int64_t n,
                                 const kiln_tensor *const *items, kiln_tensor **out) {
    kiln_tensor *c;
    KILN__TRY(kiln__container_new(kind, elem, n, &c));
    kiln_status s = KILN_OK;
    for (int64_t i = 0; s == KILN_OK && i < n; i++) {
        kiln_tensor *copy = NULL;
        s = kiln_tensor_copy(items[i], KILN_DTYPE_UNDEFINED, &copy);
        if (s == KILN_OK) kiln__container_set(c, i, copy);
    }
    if (s != KILN_OK) {
        kiln_tensor_free(c);
        return s;
    }
    *out = c;
    return KILN_OK;
}

kiln_status kiln_sequence_create(kiln_dtype elem, int64_t n, const kiln_tensor *const *items,
                                 kiln_tensor **out) {
    char buf[128];
    if (!out) return kiln__err(KILN_E_INVAL, "kiln_sequence_create: out is NULL");
    *out = NULL;
    if (!kiln_dtype_valid(elem) || elem == KILN_DTYPE_UNDEFINED)
        return kiln__err(KILN_E_TYPE, "kiln_sequence_create: invalid element dtype %d", (int)elem);
    if (n < 0 || (n > 0 && !items))
        return kiln__err(KILN_E_INVAL, "kiln_sequence_create: %lld items%s", (long long)n,
                         n > 0 ? " but items is NULL" : "");
    for (int64_t i = 0; i < n; i++) {
        if (!items[i]) return kiln__err(KILN_E_INVAL, "kiln_sequence_create: item %lld is NULL", (long long)i);
        if (items[i]->dtype != elem)
            return kiln__err(KILN_E_TYPE, "kiln_sequence_create: item %lld is %s, the sequence holds %s",
                             (long long)i, kiln__type_str(items[i], buf, sizeof buf),
                             kiln_dtype_name(elem));
    }
    return container_new(KILN__DTYPE_SEQUENCE, elem, n, items, out);
}

kiln_status kiln_optional_create(kiln_dtype elem, const kiln_tensor *item, kiln_tensor **out) {
    char buf[128];
    if (!out) return kiln__err(KILN_E_INVAL, "kiln_optional_create: out is NULL");
    *out = NULL;
    if (!kiln_dtype_valid(elem) || elem == KILN_DTYPE_UNDEFINED)
        return kiln__err(KILN_E_TYPE, "kiln_optional_create: invalid element dtype %d", (int)elem);
    if (item) {
        int ok = item->dtype == KILN__DTYPE_SEQUENCE
                     ? item->elem == elem || (item->elem == KILN_DTYPE_UNDEFINED && item->dims[0] == 0)
                     : item->dtype == elem;
        if (!ok)
            return kiln__err(KILN_E_TYPE, "kiln_optional_create: item is %s, expected a %s tensor "
                             "or sequence", kiln__type_str(item, buf, sizeof buf), kiln_dtype_name(elem));
    }
    return container_new(KILN__DTYPE_OPTIONAL, elem, item ? 1 : 0, &item, out);
}
