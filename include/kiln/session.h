/* kiln/session.h: running a graph.
 *
 * A session compiles a graph for the shapes of the inputs it is given into a
 * plan (kernel list + buffer offsets in one arena from a liveness-based
 * planner) and runs it. Plans are cached per input shape signature, so after
 * the first run of a shape a run allocates nothing (graphs whose shapes
 * depend on data, e.g. NonZero, keep grow-only buffers for those values).
 */
#ifndef KILN_SESSION_H
#define KILN_SESSION_H

#include "graph.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_session kiln_session;

/* Arithmetic a session computes in. Low-precision products accumulate in f32;
 * reductions (softmax, norms) stay f32. */
typedef enum kiln_precision {
    KILN_PRECISION_FP32 = 0, /* f32 everywhere (default) */
    KILN_PRECISION_BF16,     /* bf16 weights (converted once at plan time) and
                                bf16 products (AVX512_BF16) with f32 accumulation */
    KILN_PRECISION_INT8,     /* quantized models (QDQ / QLinear*) on u8 x s8
                                products (AVX512_VNNI) */
} kiln_precision;

/* "fp32", "bf16", "int8"; NULL for a bad value. */
const char *kiln_precision_name(kiln_precision p);
/* Parses a precision name; KILN_E_INVAL naming the accepted ones otherwise. */
kiln_status kiln_precision_parse(const char *name, kiln_precision *out);

/* Where a session runs. */
typedef enum kiln_device {
    KILN_DEVICE_CPU = 0, /* default */
    KILN_DEVICE_CUDA,    /* GPU 0: every node a CUDA kernel accepts runs there, the
                            others on the CPU, with the copies between them planned */
} kiln_device;

/* "cpu", "cuda"; NULL for a bad value. */
const char *kiln_device_name(kiln_device d);
/* Parses a device name; KILN_E_INVAL naming the accepted ones otherwise. */
kiln_status kiln_device_parse(const char *name, kiln_device *out);

/* How a session plans. Zero-initialized options are the defaults. */
typedef struct kiln_session_options {
    int threads;         /* worker threads; <= 0: all online cores */
    size_t memory_limit; /* bytes a plan's arena may take; 0: no limit */
    kiln_precision precision;
    int reference;       /* 1: run the graph as written on the reference kernels
                            (no graph passes, no fast algorithms): the oracle */
    int no_graph_passes; /* 1: fast algorithms, but no graph rewriting */
    int tune;            /* 1: time every candidate algorithm of every node on
                            its real shapes when planning, keep the fastest */
    const char *timing_cache; /* file of tuned choices (read at create, written
                                 after tuning); NULL: none. Copied. */
    kiln_device device;  /* KILN_DEVICE_CUDA fails at create (KILN_E_UNSUPPORTED /
                            KILN_E_DEVICE) when the build has no CUDA or no GPU is found */
} kiln_session_options;

/* g must outlive the session. opt may be NULL for defaults. */
kiln_status kiln_session_create(const kiln_graph *g, const kiln_session_options *opt,
                                kiln_session **out);
void kiln_session_free(kiln_session *s);

/* Runs the graph. inputs[i] is the value of the graph input named names[i];
 * every graph input without an initializer must be given. Inputs are copied
 * (and may be non-contiguous). */
kiln_status kiln_session_run(kiln_session *s, int n, const char *const *names,
                             const kiln_tensor *const *inputs);

/* Plans the graph for inputs of these dtypes and shapes (their data is not
 * read and may be NULL) without running it: graph passes ran at create; this
 * does shape inference, folding, algorithm choice (and tuning) and memory
 * planning, so the first run with such inputs starts at once. */
kiln_status kiln_session_plan(kiln_session *s, int n, const char *const *names,
                              const kiln_tensor *const *inputs);

/* Output i of the last run. The tensor belongs to the session and is valid
 * until the next run or kiln_session_free. */
kiln_status kiln_session_output(const kiln_session *s, int i, const kiln_tensor **out);

/* Per-node profile of the runs since profiling was turned on. */
typedef struct kiln_node_profile {
    const char *name;      /* node name ("" if unnamed) */
    const char *op_type;   /* e.g. "Conv" */
    const char *algorithm; /* kernel that ran: an algorithm's name ("conv_im2col"),
                              "reference", or "folded" when the node was computed
                              once at plan time */
    double flops;          /* operations of one call (0 if the kernel does not say) */
    double total_ms;       /* wall time summed over calls */
    int64_t calls;
} kiln_node_profile;

/* Turns profiling on (counters reset) or off. Costs two clock reads per node. */
kiln_status kiln_session_set_profiling(kiln_session *s, int on);
/* Number of nodes of the top-level graph; fills out[0..min(n, max)) in
 * execution order. Strings belong to the graph. */
int kiln_session_profile(const kiln_session *s, kiln_node_profile *out, int max);

/* Number of threads the session runs with. */
int kiln_session_threads(const kiln_session *s);
/* The GPU a KILN_DEVICE_CUDA session runs on ("NVIDIA H100 80GB HBM3 (sm_90,
 * 132 SMs, 79.2 GiB)"), or NULL for a CPU session. Belongs to the session. */
const char *kiln_session_device_name(const kiln_session *s);

#ifdef __cplusplus
}
#endif
#endif
