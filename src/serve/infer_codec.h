/* src/serve/infer_codec.h: KServe v2 inference requests and responses.
 *
 * The wire format (KServe v2 REST, as Triton speaks it): a JSON object
 *   {"id": "...", "parameters": {...},
 *    "inputs":  [{"name", "shape", "datatype", "parameters"?, "data"?}, ...],
 *    "outputs": [{"name", "parameters"?}, ...]?}
 * optionally followed, with Triton's binary tensor data extension, by the raw
 * bytes of inputs that say "parameters": {"binary_data_size": N}, in input
 * order; the HTTP header Inference-Header-Content-Length gives the JSON's
 * length. BYTES elements travel as a 4-byte little-endian length and the bytes
 * in binary form, as JSON strings otherwise; FP16 and BF16 only in binary form.
 * Responses have the same shape ({"model_name", "model_version", "id"?,
 * "outputs": [{"name", "datatype", "shape", "data" | "parameters":
 * {"binary_data_size"}}]} + binary bytes).
 *
 * Nothing here touches the network or a model: parsing and checking give an
 * HTTP status and a message, so bad input is answered and never crashes.
 */
#ifndef KILN_SERVE_INFER_CODEC_H
#define KILN_SERVE_INFER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"
#include "serve/model_config.h"

/* A tensor that travels through a registered system shared memory region
 * (Triton's shared-memory extension): "parameters": {"shared_memory_region",
 * "shared_memory_byte_size", "shared_memory_offset" (optional, 0)}. */
typedef struct serve_shm_ref {
    char *region;                /* NULL: not in shared memory */
    uint64_t offset, byte_size;
} serve_shm_ref;

/* An input in shared memory, as the request describes it. */
typedef struct serve_shm_input {
    serve_shm_ref ref;
    kiln_dtype dtype;
    int ndim;
    int64_t dims[KILN_MAX_DIMS];
} serve_shm_input;

/* One requested output ("outputs": [...] of the request). */
typedef struct serve_output_request {
    char *name;
    serve_shm_ref shm;           /* region: write the output there, not in the body */
    int binary;       /* "binary_data": -1 not said (the request-level
                         "binary_data_output" decides), 0 JSON, 1 binary */
    int class_count;  /* classification extension ("classification": K): > 0
                         returns the top K classes instead of the tensor */
} serve_output_request;

typedef struct serve_request {
    char *id;                    /* NULL when the request has none */
    int n_inputs;
    char **input_names;          /* owned */
    kiln_tensor **inputs;        /* owned, contiguous; BYTES as KILN_DTYPE_STRING
                                    (elements are C strings: an element holding
                                    a NUL byte is refused); NULL for an input in
                                    shared memory until serve_request_read_shm */
    serve_shm_input *input_shm;  /* [n_inputs] when any input is in shared
                                    memory (region NULL for the others), else NULL */
    int n_outputs;               /* 0: every output of the model, in JSON
                                    unless binary_data_output */
    serve_output_request *outputs;
    int binary_data_output;      /* request "parameters": {"binary_data_output": true} */
    int64_t timeout_us;          /* request "parameters": {"timeout": us}; 0 none */
    uint64_t priority;           /* request "parameters": {"priority": p}; 0: the
                                    model's default level */
} serve_request;

/* Parses a request body of len bytes. header_len is the value of the
 * Inference-Header-Content-Length header, or 0 when absent (the whole body is
 * JSON). Like Triton, the JSON may hold NaN, Infinity, -Infinity (and Inf);
 * integers are read exactly (all of UINT64 and INT64); "data" may be flat or
 * nested up to 64 arrays deep; unknown parameters are ignored. An input in
 * shared memory is only described (region, offset, byte size; its tensor
 * NULL) until serve_request_read_shm reads it. Checks the
 * request on its own terms: JSON syntax, field types, known
 * datatypes, shape vs element count, binary sizes vs the bytes that follow
 * (missing, extra or short), JSON data only for datatypes that allow it, values
 * in range of their datatype. Returns 0 and fills *out, or an HTTP status (400;
 * 500 when out of memory) with *out zeroed and a message in err naming the
 * input and field at fault. */
int serve_request_parse(const void *body, size_t len, size_t header_len, serve_request *out,
                        char *err, size_t errlen);

/* Checks a parsed request against the model's configuration and puts its
 * inputs in the form the model takes: every input known, none given twice,
 * every non-optional one present, datatype equal, shape equal to the
 * configured dims (-1 matches any size) with, when max_batch_size > 0, a
 * leading batch dimension 1..max_batch_size that every input shares; inputs
 * with a configured reshape are reshaped (batch dimension kept). Requested
 * outputs must exist; class_count needs a numeric output; FP16/BF16 outputs
 * that would go back in JSON (binary_data false, or not said and
 * binary_data_output not set; all outputs when none is named) are refused
 * before the model runs, as serve_response_build would. On success returns 0
 * and sets *batch (1 when max_batch_size == 0). Otherwise returns 400 with a
 * message naming the input, the expected and the received shape (or
 * datatype), and saying when the batch dimension is the cause. */
int serve_request_check(serve_request *r, const serve_model_config *cfg, int *batch,
                        char *err, size_t errlen);

/* Reads a region's bytes: size bytes at offset of the region called name into
 * dst (NULL: only checks that the region has them). Returns 0, or an HTTP
 * status (400: no such region, or the range lies outside it) with err. */
typedef int (*serve_shm_read_fn)(void *ctx, const char *region, uint64_t offset, uint64_t size,
                                 void *dst, char *err, size_t errlen);

/* Makes the tensors of the inputs a parsed request has in shared memory, by
 * reading their bytes with read (numeric data copied as it is, BYTES parsed
 * from a copy as in binary form); each range is checked against its region
 * before anything is allocated for it. Returns 0 or an HTTP status with err. */
int serve_request_read_shm(serve_request *r, serve_shm_read_fn read, void *ctx, char *err,
                           size_t errlen);

void serve_request_free(serve_request *r);

/* One output to send back. */
typedef struct serve_response_output {
    const char *name;
    const kiln_tensor *t;        /* as the client sees it (config dims, batch
                                    dimension first when batching); any
                                    strides (a non-contiguous one is copied) */
    int binary;                  /* 1: binary data extension, 0: JSON "data" */
    int class_count;             /* > 0: classification, as Triton does it: the
                                    top K elements of each batch item (all its
                                    elements, flattened; for the usual
                                    [batch, classes] output the last
                                    dimension), sent as BYTES "value:index" or
                                    "value:index:label" of shape [batch, K]
                                    (batched) or [K]; K is capped at the
                                    elements per item. value is printed as C++
                                    std::to_string prints it ("%f" for floats,
                                    decimal integers); ties go to the lower
                                    index, NaN ranks last. */
    int batched;                 /* 1: the first dimension is the batch
                                    dimension (the model's max_batch_size > 0);
                                    only classification looks at it */
    int n_labels;
    const char *const *labels;   /* classification labels (index i: labels[i];
                                    none for i >= n_labels or ""), or NULL */
    const char *shm_region;      /* non-NULL: the data went to this shared
                                    memory region (serve_output_bytes): the
                                    response names it and its size instead */
    size_t shm_bytes;            /* bytes written there */
} serve_response_output;

/* The bytes of output o in binary form (what binary_data or a shared memory
 * region carries): *data points into o's tensor when it can (numeric and
 * contiguous), else into *owned (malloc'd; caller frees). Returns 0 or an
 * HTTP status with err, as serve_response_build would. */
int serve_output_bytes(const serve_response_output *o, const void **data, size_t *n, void **owned,
                       char *err, size_t errlen);

/* Builds a response body: the JSON header and, after it, the binary outputs
 * in order. Numbers read back to the same value (FP32 "%.9g", FP64 "%.17g",
 * integers exactly, floats always with a '.' or an exponent); NaN and
 * infinities are written NaN, Infinity, -Infinity, as Triton writes them
 * (rapidjson's kWriteNanAndInfFlag) and as tritonclient (python-rapidjson)
 * and Python's json read them. The body is NUL-terminated past *len. "id" is
 * sent only when id is non-empty, "model_version" only when version is not
 * NULL. *header_len is the JSON's length when any output is binary (the
 * value for the Inference-Header-Content-Length response header), else 0.
 * version is the model version as a string ("1"). *body is malloc'd (caller
 * frees). Returns 0, or 400 (an output that cannot be sent: FP16/BF16 in JSON,
 * class_count on a non-numeric output) / 500 (out of memory; an output that
 * is a sequence or of a dtype the protocol has no name for) with err filled. */
int serve_response_build(const char *model, const char *version, const char *id, int n,
                         const serve_response_output *outs, char **body, size_t *len,
                         size_t *header_len, char *err, size_t errlen);

/* {"error": "msg"} (malloc'd, *len its length); NULL when out of memory. */
char *serve_error_body(const char *msg, size_t *len);

#endif
