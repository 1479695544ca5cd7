/* tests/fuzz/fuzz_serve_request.c: libFuzzer harness for the inference
 * request/response codec (src/serve/infer_codec.c).
 *
 * Input: byte 0 picks the framing and the model. Bit 0 set: bytes 1-2 are the
 * Inference-Header-Content-Length (little-endian; it may exceed the body) and
 * the body starts at byte 3; clear: no header, the body starts at byte 1. Bit
 * 1 picks the model: set, batching (max_batch_size 8), clear, none. Bits 2-7
 * vary which outputs go back in binary form.
 *
 * Each input is parsed; inputs in shared memory are read from a fake region
 * "r" of 256 bytes (0, 1, ..., 255); a parsed request is checked against the model
 * (inputs x FP32 [4] (batched: [-1,4]), ids INT64 [-1,2] reshaped to [2,-1],
 * s BYTES [1] optional, h FP16 [2] optional; outputs y FP32 [3], n BYTES [1]);
 * then its inputs, checked (and so reshaped) or not, go back as the outputs
 * of a response (classification as the request's outputs ask), and a
 * response without classification is read back as a request ("outputs"
 * renamed "inputs"): every value must survive. Anything else than a status
 * with a message, a crash, a leak or a changed value is a bug.
 *
 * Seeds (scripts/fuzz.sh can write them; \x.. are bytes):
 *   \x00{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2.5,NaN,-Infinity]},
 *        {"name":"ids","shape":[1,3,2],"datatype":"INT64","data":[[1,2],[3,4],[5,-9223372036854775808]]}]}
 *   \x02 the same (batching model)
 *   \x01<len LE16>{"id":"7","inputs":[{"name":"s","shape":[2],"datatype":"BYTES",
 *        "parameters":{"binary_data_size":11}}],"outputs":[{"name":"s","parameters":{"binary_data":true}}]}
 *        \x02\x00\x00\x00hi\x01\x00\x00\x00!
 *   \x03<len LE16>{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}},
 *        {"name":"ids","shape":[2,1,2],"datatype":"UINT64","data":[18446744073709551615,0,1,2]}],
 *        "outputs":[{"name":"x","parameters":{"classification":3}}],"parameters":{"timeout":5}}<32 bytes>
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/infer_codec.h"

static serve_io io(const char *name, kiln_dtype dt, int ndim, int64_t d0, int64_t d1) {
    serve_io x;
    memset(&x, 0, sizeof x);
    x.name = (char *)name;
    x.dtype = dt;
    x.ndim = ndim;
    x.dims[0] = d0;
    x.dims[1] = d1;
    return x;
}

/* The model, batching (max_batch_size 8) or not. */
static const serve_model_config *model(int batching) {
    static serve_model_config cfg[2];
    static serve_io in[2][4], out[2][2];
    static int made;
    if (!made) {
        for (int b = 0; b < 2; b++) {
            in[b][0] = io("x", KILN_DTYPE_F32, 1, 4, 0);
            in[b][1] = io("ids", KILN_DTYPE_I64, 2, -1, 2);
            in[b][1].has_reshape = 1;
            in[b][1].reshape_ndim = 2;
            in[b][1].reshape[0] = 2;
            in[b][1].reshape[1] = -1;
            in[b][2] = io("s", KILN_DTYPE_STRING, 1, 1, 0);
            in[b][2].optional = 1;
            in[b][3] = io("h", KILN_DTYPE_F16, 1, 2, 0);
            in[b][3].optional = 1;
            out[b][0] = io("y", KILN_DTYPE_F32, 1, 3, 0);
            out[b][1] = io("n", KILN_DTYPE_STRING, 1, 1, 0);
            cfg[b].name = (char *)"fuzz";
            cfg[b].max_batch_size = b ? 8 : 0;
            cfg[b].n_inputs = 4;
            cfg[b].inputs = in[b];
            cfg[b].n_outputs = 2;
            cfg[b].outputs = out[b];
        }
        made = 1;
    }
    return &cfg[batching];
}

/* Same values (NaN equal to NaN: JSON does not keep NaN payloads). */
static int same_tensor(const kiln_tensor *a, const kiln_tensor *b) {
    kiln_dtype dt = kiln_tensor_dtype(a);
    if (dt != kiln_tensor_dtype(b) || kiln_tensor_ndim(a) != kiln_tensor_ndim(b)) return 0;
    for (int d = 0; d < kiln_tensor_ndim(a); d++)
        if (kiln_tensor_dims(a)[d] != kiln_tensor_dims(b)[d]) return 0;
    int64_t n = kiln_tensor_numel(a);
    const void *x = kiln_tensor_data(a), *y = kiln_tensor_data(b);
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case KILN_DTYPE_STRING:
            if (strcmp(((char *const *)x)[i], ((char *const *)y)[i])) return 0;
            break;
        case KILN_DTYPE_F32: {
            float p = ((const float *)x)[i], q = ((const float *)y)[i];
            if (isnan(p) ? !isnan(q) : memcmp(&p, &q, sizeof p)) return 0;
            break;
        }
        case KILN_DTYPE_F64: {
            double p = ((const double *)x)[i], q = ((const double *)y)[i];
            if (isnan(p) ? !isnan(q) : memcmp(&p, &q, sizeof p)) return 0;
            break;
        }
        default: {
            size_t es = kiln_dtype_size(dt);
            if (memcmp((const char *)x + i * es, (const char *)y + i * es, es)) return 0;
        }
        }
    }
    return 1;
}

/* A shared memory region "r" of 256 bytes (0, 1, 2, ...) for inputs that name
 * one: what serve_request_read_shm copies from. */
static int fake_shm_read(void *ctx, const char *region, uint64_t offset, uint64_t size, void *dst,
                         char *err, size_t errlen) {
    (void)ctx;
    static uint8_t bytes[256];
    for (int i = 0; i < 256; i++) bytes[i] = (uint8_t)i;
    if (strcmp(region, "r") || offset > sizeof bytes || size > sizeof bytes - offset) {
        snprintf(err, errlen, "no such region or range");
        return 400;
    }
    if (dst) memcpy(dst, bytes + offset, (size_t)size);
    return 0;
}

/* Reads a response body back as a request and compares with the outputs. */
static void read_back(char *body, size_t len, size_t hlen, const serve_response_output *o, int n) {
    char *at = strstr(body, ",\"outputs\":[");
    if (!at || (hlen && (size_t)(at - body) >= hlen)) abort();
    memmove(at + 2, at + 3, len - (size_t)(at + 3 - body)); /* "outputs" -> "inputs" */
    memcpy(at + 2, "inputs", 6);
    serve_request r;
    char err[256];
    if (serve_request_parse(body, len - 1, hlen ? hlen - 1 : 0, &r, err, sizeof err) != 0) {
        fprintf(stderr, "response not readable: %s\n", err);
        abort();
    }
    if (r.n_inputs != n) abort();
    for (int i = 0; i < n; i++)
        if (strcmp(r.input_names[i], o[i].name) || !same_tensor(r.inputs[i], o[i].t)) {
            fprintf(stderr, "output '%s' changed on the way back\n", o[i].name);
            abort();
        }
    serve_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t mode = data[0];
    size_t skip = 1, hlen = 0;
    if (mode & 1) {
        if (size < 3) return 0;
        hlen = (size_t)data[1] | (size_t)data[2] << 8;
        skip = 3;
    }
    const uint8_t *body = data + skip;
    size_t len = size - skip;
    char err[512];
    serve_request r;
    int rc = serve_request_parse(body, len, hlen, &r, err, sizeof err);
    static const serve_request zero;
    if (rc) {
        if ((rc != 400 && rc != 500) || !err[0] || memcmp(&r, &zero, sizeof r)) abort();
        return 0;
    }
    if (r.input_shm && (rc = serve_request_read_shm(&r, fake_shm_read, NULL, err, sizeof err))) {
        if ((rc != 400 && rc != 500) || !err[0]) abort();
        serve_request_free(&r);
        return 0;
    }
    int batch = 0;
    rc = serve_request_check(&r, model((mode >> 1) & 1), &batch, err, sizeof err);
    if (rc ? rc != 400 || !err[0] : batch < 1 || batch > 8) abort();

    /* the inputs go back as outputs */
    serve_response_output *o = calloc((size_t)(r.n_inputs > 0 ? r.n_inputs : 1), sizeof *o);
    if (!o) abort();
    static const char *const labels[] = {"zero", "one", "", "three"};
    int classify = 0;
    for (int i = 0; i < r.n_inputs; i++) {
        kiln_dtype dt = kiln_tensor_dtype(r.inputs[i]);
        o[i].name = r.input_names[i];
        o[i].t = r.inputs[i];
        o[i].binary = dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16 || ((mode >> 2) + i) % 2;
        o[i].batched = (mode >> 3) & 1;
        o[i].labels = labels;
        o[i].n_labels = 4;
        for (int k = 0; k < r.n_outputs; k++)
            if (!strcmp(r.outputs[k].name, o[i].name) && r.outputs[k].class_count > 0 &&
                dt != KILN_DTYPE_STRING && dt != KILN_DTYPE_BOOL) {
                o[i].class_count = r.outputs[k].class_count;
                classify = 1;
            }
    }
    char *out = NULL;
    size_t out_len = 0, out_hlen = 0;
    rc = serve_response_build("fuzz", "1", r.id, r.n_inputs, o, &out, &out_len, &out_hlen, err, sizeof err);
    if (rc) {
        fprintf(stderr, "response refused: %s\n", err);
        abort();
    }
    if (out_hlen > out_len || out[out_len] != '\0') abort();
    if (!classify) read_back(out, out_len, out_hlen, o, r.n_inputs);
    free(out);
    free(o);
    size_t elen;
    char *e = serve_error_body(err, &elen);
    free(e);
    serve_request_free(&r);
    return 0;
}
