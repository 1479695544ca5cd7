/* src/dnnl/dnnl_api.h: oneDNN, loaded at run time.
 *
 * kiln is built against oneDNN's header only and never linked with libdnnl:
 * the first dnnl algorithm asked to prepare a node loads the library with
 * dlopen ("libdnnl.so.2", else "libdnnl.so"; once per process) and resolves
 * the functions src/dnnl calls into one table, kiln__dnnl (call
 * kiln__dnnl.memory_create(...) for dnnl_memory_create(...)).
 *
 * Why: Debian's libdnnl is built with OpenMP, and libgomp reads
 * OMP_WAIT_POLICY once, when it is loaded. Its default policy spins at every
 * barrier and after every parallel region: on a busy machine a 2-thread
 * primitive then takes 10-100x longer, and the spinning team takes the cores
 * from kiln's own pool for the node after it. Linked at build time, libgomp
 * would load before main, before kiln could say anything; loading it here,
 * kiln first sets OMP_WAIT_POLICY=passive in the environment unless the user
 * set it. (A process that has libgomp already, from another library built
 * with OpenMP, keeps the policy libgomp started with.)
 *
 * If the library, one of the functions or a CPU engine is missing, or the
 * library is not of the header's major version, every dnnl algorithm's
 * prepare returns KILN_E_UNSUPPORTED (the planner then uses kiln's own
 * algorithms) and kiln__dnnl_unavailable() says why.
 */
#ifndef KILN_DNNL_API_H
#define KILN_DNNL_API_H

#include <oneapi/dnnl/dnnl.h>

#include "core/core.h"

/* The dnnl_<name> functions src/dnnl uses, one X(name) each. */
#define KILN__DNNL_FUNCS(X)                                                                 \
    X(version)                                                                              \
    X(engine_create)                                                                        \
    X(stream_create) X(stream_destroy) X(stream_wait)                                       \
    X(memory_create) X(memory_destroy) X(memory_get_data_handle) X(memory_set_data_handle)  \
    X(memory_get_memory_desc)                                                               \
    X(memory_desc_init_by_tag) X(memory_desc_init_by_strides) X(memory_desc_get_size)       \
    X(memory_desc_equal)                                                                    \
    X(post_ops_create) X(post_ops_destroy) X(post_ops_append_eltwise) X(post_ops_append_sum) \
    X(post_ops_append_binary)                                                               \
    X(primitive_attr_create) X(primitive_attr_destroy) X(primitive_attr_set_scratchpad_mode) \
    X(primitive_attr_set_post_ops) X(primitive_attr_set_output_scales)                      \
    X(matmul_desc_init) X(dilated_convolution_forward_desc_init)                            \
    X(reorder_primitive_desc_create)                                                        \
    X(primitive_desc_create) X(primitive_desc_destroy) X(primitive_desc_query)              \
    X(primitive_desc_query_md)                                                              \
    X(primitive_create) X(primitive_destroy) X(primitive_execute)

/* One pointer per function, typed from its declaration in oneapi/dnnl/dnnl.h
 * (so a signature is never written here). */
typedef struct kiln__dnnl_api {
#define KILN__DNNL_FN(name) __typeof__(dnnl_##name) *name;
    KILN__DNNL_FUNCS(KILN__DNNL_FN)
#undef KILN__DNNL_FN
} kiln__dnnl_api;

/* The loaded functions; valid after kiln__dnnl_load() returned KILN_OK. */
extern kiln__dnnl_api kiln__dnnl;

/* Loads oneDNN (the first call; thread-safe) and creates its CPU engine.
 * KILN_OK when usable; else KILN_E_UNSUPPORTED with a message that starts
 * "oneDNN not loadable: " and says why. */
kiln_status kiln__dnnl_load(void);

/* NULL when oneDNN is usable (loading it if not yet), else why it is not
 * (static text). */
const char *kiln__dnnl_unavailable(void);

/* Loads oneDNN from `file` (what dlopen takes: a name or a path) instead of
 * libdnnl.so.2 / libdnnl.so: for tests (a name that does not exist) and
 * other builds of oneDNN. Before the first load only (call it before any
 * session is planned, on one thread): KILN_E_INVAL after. Does not copy
 * file, which must outlive the process's use of oneDNN. */
kiln_status kiln__dnnl_set_library(const char *file);

/* The process's CPU engine; only after kiln__dnnl_load() returned KILN_OK. */
dnnl_engine_t kiln__dnnl_engine(void);

/* Sizes oneDNN's OpenMP team for the calling thread (no-op for the other
 * runtimes); only after kiln__dnnl_load() returned KILN_OK. */
void kiln__dnnl_set_threads(int nth);

#endif
