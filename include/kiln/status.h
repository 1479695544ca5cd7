/* kiln/status.h: status codes and the last-error message.
 *
 * Every fallible kiln call returns a kiln_status. KILN_OK is 0; failures are
 * negative. On failure, kiln_last_error() returns a message (thread-local) that
 * names the file, node, field or input at fault.
 */
#ifndef KILN_STATUS_H
#define KILN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, description): the one list of status codes. */
#define KILN_STATUS_MAP(X)                                          \
    X(OK, 0, "success")                                             \
    X(E_INVAL, -1, "invalid argument")                              \
    X(E_NOMEM, -2, "out of memory")                                 \
    X(E_FORMAT, -3, "malformed input")                              \
    X(E_UNSUPPORTED, -4, "unsupported")                             \
    X(E_IO, -5, "I/O error")                                        \
    X(E_DEVICE, -6, "device error")                                 \
    X(E_SHAPE, -7, "shape mismatch")                                \
    X(E_TYPE, -8, "type mismatch")                                  \
    X(E_RANGE, -9, "value out of range")                            \
    X(E_NOTFOUND, -10, "not found")                                 \
    X(E_LIMIT, -11, "size limit exceeded")                          \
    X(E_INTERNAL, -12, "internal error")

typedef enum kiln_status {
#define KILN__STATUS_ENUM(name, value, text) KILN_##name = value,
    KILN_STATUS_MAP(KILN__STATUS_ENUM)
#undef KILN__STATUS_ENUM
} kiln_status;

/* Short symbolic name of a status, e.g. "E_FORMAT". Never NULL. */
const char *kiln_status_name(kiln_status s);

/* Human description of a status code, e.g. "malformed input". Never NULL. */
const char *kiln_status_text(kiln_status s);

/* Message describing the last failure on this thread ("" if none).
 * The pointer is valid until the next kiln call on this thread. */
const char *kiln_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
