/* tests/unit/test_serve_codec.c: the KServe v2 request/response codec
 * (src/serve/infer_codec.c): JSON and binary inputs of every datatype, every
 * refusal with its message, checks against a model configuration, responses
 * in JSON, binary and classification form, and round trips. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "serve/infer_codec.h"

static char err[512];

static char *dupstr(const char *s) {
    char *d = malloc(strlen(s) + 1);
    assert_non_null(d);
    return strcpy(d, s);
}

/* Parses a whole-JSON body. */
static int parse(const char *json, serve_request *r) {
    return serve_request_parse(json, strlen(json), 0, r, err, sizeof err);
}

/* json followed by n binary bytes, parsed with the header length set. */
static int parse_bin(const char *json, const void *bin, size_t n, serve_request *r) {
    size_t h = strlen(json);
    char *body = malloc(h + n + 1);
    memcpy(body, json, h);
    if (n) memcpy(body + h, bin, n);
    int rc = serve_request_parse(body, h + n, h, r, err, sizeof err);
    free(body);
    return rc;
}

/* The request's input called name. */
static const kiln_tensor *input(const serve_request *r, const char *name) {
    for (int i = 0; i < r->n_inputs; i++)
        if (!strcmp(r->input_names[i], name)) return r->inputs[i];
    fail_msg("no input '%s'", name);
    return NULL;
}

static void assert_shape(const kiln_tensor *t, int ndim, const int64_t *dims) {
    assert_int_equal(kiln_tensor_ndim(t), ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(kiln_tensor_dims(t)[i], dims[i]);
}

static int is_zeroed(const serve_request *r) {
    static const serve_request zero;
    return !memcmp(r, &zero, sizeof zero);
}

/* ---- requests: JSON -------------------------------------------------------- */

static void test_json_every_dtype(void **state) {
    const char *j =
        "{\"id\":\"r1\",\"inputs\":["
        "{\"name\":\"b\",\"shape\":[3],\"datatype\":\"BOOL\",\"data\":[true,false,true]},"
        "{\"name\":\"u8\",\"shape\":[2],\"datatype\":\"UINT8\",\"data\":[0,255]},"
        "{\"name\":\"u16\",\"shape\":[2],\"datatype\":\"UINT16\",\"data\":[0,65535]},"
        "{\"name\":\"u32\",\"shape\":[2],\"datatype\":\"UINT32\",\"data\":[0,4294967295]},"
        "{\"name\":\"u64\",\"shape\":[3],\"datatype\":\"UINT64\","
        "\"data\":[0,18446744073709551615,9007199254740993]},"
        "{\"name\":\"i8\",\"shape\":[2],\"datatype\":\"INT8\",\"data\":[-128,127]},"
        "{\"name\":\"i16\",\"shape\":[2],\"datatype\":\"INT16\",\"data\":[-32768,32767]},"
        "{\"name\":\"i32\",\"shape\":[3],\"datatype\":\"INT32\",\"data\":[-2147483648,2147483647,2.0]},"
        "{\"name\":\"i64\",\"shape\":[3],\"datatype\":\"INT64\","
        "\"data\":[-9223372036854775808,9223372036854775807,-9007199254740993]},"
        "{\"name\":\"f32\",\"shape\":[4],\"datatype\":\"FP32\",\"data\":[0.1,-2.5e3,3.4028235e38,1]},"
        "{\"name\":\"f64\",\"shape\":[5],\"datatype\":\"FP64\","
        "\"data\":[0.1,NaN,Infinity,-Infinity,-1e-300]},"
        "{\"name\":\"s\",\"shape\":[3],\"datatype\":\"BYTES\",\"data\":[\"abc\",\"\",\"\\u00e9\\n\"]}"
        "]}";
    serve_request r;
    assert_int_equal(parse(j, &r), 0);
    assert_string_equal(r.id, "r1");
    assert_int_equal(r.n_inputs, 12);
    assert_int_equal(r.n_outputs, 0);

    const uint8_t *b = kiln_tensor_data(input(&r, "b"));
    assert_int_equal(kiln_tensor_dtype(input(&r, "b")), KILN_DTYPE_BOOL);
    assert_true(b[0] == 1 && b[1] == 0 && b[2] == 1);
    const uint8_t *u8 = kiln_tensor_data(input(&r, "u8"));
    assert_true(u8[0] == 0 && u8[1] == 255);
    const uint16_t *u16 = kiln_tensor_data(input(&r, "u16"));
    assert_int_equal(u16[1], 65535);
    const uint32_t *u32 = kiln_tensor_data(input(&r, "u32"));
    assert_true(u32[1] == 4294967295u);
    const uint64_t *u64 = kiln_tensor_data(input(&r, "u64"));
    assert_true(u64[0] == 0 && u64[1] == UINT64_MAX && u64[2] == 9007199254740993ull);
    const int8_t *i8 = kiln_tensor_data(input(&r, "i8"));
    assert_true(i8[0] == -128 && i8[1] == 127);
    const int16_t *i16 = kiln_tensor_data(input(&r, "i16"));
    assert_true(i16[0] == -32768 && i16[1] == 32767);
    const int32_t *i32 = kiln_tensor_data(input(&r, "i32"));
    assert_true(i32[0] == INT32_MIN && i32[1] == INT32_MAX && i32[2] == 2);
    const int64_t *i64 = kiln_tensor_data(input(&r, "i64"));
    assert_true(i64[0] == INT64_MIN && i64[1] == INT64_MAX && i64[2] == -9007199254740993ll);
    const float *f32 = kiln_tensor_data(input(&r, "f32"));
    assert_true(f32[0] == 0.1f && f32[1] == -2500.0f && f32[2] == 3.4028235e38f && f32[3] == 1.0f);
    const double *f64 = kiln_tensor_data(input(&r, "f64"));
    assert_true(f64[0] == 0.1 && isnan(f64[1]) && f64[2] == INFINITY && f64[3] == -INFINITY &&
                f64[4] == -1e-300);
    assert_int_equal(kiln_tensor_dtype(input(&r, "s")), KILN_DTYPE_STRING);
    char *const *s = kiln_tensor_data(input(&r, "s"));
    assert_string_equal(s[0], "abc");
    assert_string_equal(s[1], "");
    assert_string_equal(s[2], "\xc3\xa9\n");
    int64_t d3[] = {3};
    assert_shape(input(&r, "s"), 1, d3);
    serve_request_free(&r);
    assert_true(is_zeroed(&r));
}

static void test_json_nested_and_flat(void **state) {
    serve_request a, b, c, d;
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"INT32\","
                           "\"data\":[[1,2,3],[4,5,6]]}]}", &a), 0);
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"INT32\","
                           "\"data\":[1,2,3,4,5,6]}]}", &b), 0);
    /* Triton counts elements in row-major order whatever the nesting */
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"x\",\"shape\":[2,3],\"datatype\":\"INT32\","
                           "\"data\":[[[1],[2,3]],[],[4,[5,[6]]]]}]}", &c), 0);
    /* scalars and empty tensors */
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"s\",\"shape\":[],\"datatype\":\"FP32\",\"data\":[7]},"
                           "{\"name\":\"e\",\"shape\":[0,5],\"datatype\":\"FP32\",\"data\":[]},"
                           "{\"name\":\"z\",\"shape\":[3,0],\"datatype\":\"BYTES\",\"data\":[[],[],[]]}]}",
                           &d), 0);
    int64_t dims[] = {2, 3};
    assert_shape(a.inputs[0], 2, dims);
    assert_shape(b.inputs[0], 2, dims);
    assert_memory_equal(kiln_tensor_data(a.inputs[0]), kiln_tensor_data(b.inputs[0]), 6 * sizeof(int32_t));
    assert_memory_equal(kiln_tensor_data(a.inputs[0]), kiln_tensor_data(c.inputs[0]), 6 * sizeof(int32_t));
    assert_int_equal(((int32_t *)kiln_tensor_data(a.inputs[0]))[5], 6);
    assert_int_equal(kiln_tensor_ndim(d.inputs[0]), 0);
    assert_true(*(float *)kiln_tensor_data(d.inputs[0]) == 7.0f);
    assert_int_equal(kiln_tensor_numel(d.inputs[1]), 0);
    assert_int_equal(kiln_tensor_numel(d.inputs[2]), 0);
    serve_request_free(&a);
    serve_request_free(&b);
    serve_request_free(&c);
    serve_request_free(&d);
}

static void test_request_parameters(void **state) {
    serve_request r;
    assert_int_equal(parse("{\"id\":\"\",\"parameters\":{\"binary_data_output\":true,\"timeout\":2500,"
                           "\"priority\":1,\"sequence_id\":\"abc\",\"custom\":{\"x\":1},\"triton_x\":1},"
                           "\"model_name\":\"ignored\","
                           "\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
                           "\"parameters\":{\"other\":\"ignored\"}}],"
                           "\"outputs\":[{\"name\":\"a\"},{\"name\":\"b\",\"parameters\":{\"binary_data\":false}},"
                           "{\"name\":\"c\",\"parameters\":{\"binary_data\":true,\"classification\":3,"
                           "\"unknown\":null}}]}", &r), 0);
    assert_non_null(r.id);
    assert_string_equal(r.id, "");
    assert_int_equal(r.binary_data_output, 1);
    assert_int_equal(r.timeout_us, 2500);
    assert_int_equal(r.priority, 1);
    assert_int_equal(r.n_outputs, 3);
    assert_string_equal(r.outputs[0].name, "a");
    assert_int_equal(r.outputs[0].binary, -1);
    assert_int_equal(r.outputs[0].class_count, 0);
    assert_int_equal(r.outputs[1].binary, 0);
    assert_int_equal(r.outputs[2].binary, 1);
    assert_int_equal(r.outputs[2].class_count, 3);
    serve_request_free(&r);
    /* no id, no parameters, whitespace after the JSON */
    assert_int_equal(parse(" {\"inputs\":[]} \n", &r), 0);
    assert_null(r.id);
    assert_int_equal(r.binary_data_output, 0);
    assert_int_equal(r.timeout_us, 0);
    assert_int_equal(r.n_inputs, 0);
    serve_request_free(&r);
}

/* ---- requests: binary ------------------------------------------------------ */

static void test_binary_inputs(void **state) {
    /* FP32 [2,2], BYTES [3], FP16 [2], BF16 [2], BOOL [3], and a JSON input
     * between the binary ones */
    float f[4] = {1.5f, -2.0f, 0.25f, 1e-40f};
    uint8_t bytes[] = {3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0, 2, 0, 0, 0, 0xff, 'z'};
    uint16_t h[2] = {kiln_f32_to_f16(1.0f), kiln_f32_to_f16(-0.5f)};
    uint16_t bf[2] = {kiln_f32_to_bf16(3.0f), kiln_f32_to_bf16(-1.0f)};
    uint8_t bo[3] = {1, 0, 7};
    uint8_t bin[16 + sizeof bytes + 4 + 4 + 3];
    size_t at = 0;
    memcpy(bin + at, f, 16), at += 16;
    memcpy(bin + at, bytes, sizeof bytes), at += sizeof bytes;
    memcpy(bin + at, h, 4), at += 4;
    memcpy(bin + at, bf, 4), at += 4;
    memcpy(bin + at, bo, 3), at += 3;
    char json[1024];
    snprintf(json, sizeof json,
             "{\"inputs\":["
             "{\"name\":\"f\",\"shape\":[2,2],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":16}},"
             "{\"name\":\"j\",\"shape\":[2],\"datatype\":\"INT64\",\"data\":[5,6]},"
             "{\"name\":\"s\",\"shape\":[3],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":%zu}},"
             "{\"name\":\"h\",\"shape\":[2],\"datatype\":\"FP16\",\"parameters\":{\"binary_data_size\":4}},"
             "{\"name\":\"bf\",\"shape\":[1,2],\"datatype\":\"BF16\",\"parameters\":{\"binary_data_size\":4}},"
             "{\"name\":\"e\",\"shape\":[0],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":0}},"
             "{\"name\":\"b\",\"shape\":[3],\"datatype\":\"BOOL\",\"parameters\":{\"binary_data_size\":3}}"
             "]}", sizeof bytes);
    serve_request r;
    assert_int_equal(parse_bin(json, bin, at, &r), 0);
    assert_int_equal(r.n_inputs, 7);
    assert_memory_equal(kiln_tensor_data(input(&r, "f")), f, 16);
    assert_int_equal(((int64_t *)kiln_tensor_data(input(&r, "j")))[1], 6);
    char *const *s = kiln_tensor_data(input(&r, "s"));
    assert_string_equal(s[0], "abc");
    assert_string_equal(s[1], "");
    assert_string_equal(s[2], "\xffz");
    assert_int_equal(kiln_tensor_dtype(input(&r, "h")), KILN_DTYPE_F16);
    assert_memory_equal(kiln_tensor_data(input(&r, "h")), h, 4);
    assert_int_equal(kiln_tensor_dtype(input(&r, "bf")), KILN_DTYPE_BF16);
    assert_memory_equal(kiln_tensor_data(input(&r, "bf")), bf, 4);
    assert_int_equal(kiln_tensor_numel(input(&r, "e")), 0);
    const uint8_t *bb = kiln_tensor_data(input(&r, "b"));
    assert_true(bb[0] == 1 && bb[1] == 0 && bb[2] == 1); /* nonzero bytes are true */
    serve_request_free(&r);

    /* an empty binary input needs no header length (tritonclient sends it so) */
    const char *empty = "{\"inputs\":[{\"name\":\"e\",\"shape\":[0],\"datatype\":\"BYTES\","
                        "\"parameters\":{\"binary_data_size\":0}}]}";
    assert_int_equal(parse(empty, &r), 0);
    assert_int_equal(kiln_tensor_numel(r.inputs[0]), 0);
    serve_request_free(&r);
}

/* ---- requests: refusals ---------------------------------------------------- */

typedef struct bad_case {
    const char *json;
    const char *bin;      /* binary tail (may hold NULs: bin_len says) */
    size_t bin_len;
    int with_header;      /* give Inference-Header-Content-Length */
    const char *want;     /* in the message */
} bad_case;

static void test_request_errors(void **state) {
#define IN(x) "{\"inputs\":[" x "]}"
#define X(shape, dt, data) "{\"name\":\"x\",\"shape\":" shape ",\"datatype\":\"" dt "\",\"data\":" data "}"
#define XB(shape, dt, size) \
    "{\"name\":\"x\",\"shape\":" shape ",\"datatype\":\"" dt "\",\"parameters\":{\"binary_data_size\":" size "}}"
    static const bad_case cases[] = {
        {"{\"inputs\":[", NULL, 0, 0, "malformed JSON"},
        {"[1,2]", NULL, 0, 0, "not a JSON object"},
        {"{}", NULL, 0, 0, "no 'inputs' array"},
        {"{\"inputs\":{}}", NULL, 0, 0, "no 'inputs' array"},
        {IN("1"), NULL, 0, 0, "inputs[0] is not an object"},
        {IN("{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}"), NULL, 0, 0, "inputs[0] has no 'name'"},
        {IN("{\"name\":\"x\",\"shape\":[1],\"data\":[1]}"), NULL, 0, 0, "input 'x' has no 'datatype'"},
        {IN(X("[1]", "FP8", "[1]")), NULL, 0, 0, "input 'x': unknown datatype 'FP8'"},
        {IN("{\"name\":\"x\",\"datatype\":\"FP32\",\"data\":[1]}"), NULL, 0, 0, "input 'x' has no 'shape'"},
        {IN(X("[-1]", "FP32", "[1]")), NULL, 0, 0, "input 'x': shape dimension 0 is not an integer"},
        {IN(X("[1.5]", "FP32", "[1]")), NULL, 0, 0, "input 'x': shape dimension 0"},
        {IN(X("[\"2\"]", "FP32", "[1]")), NULL, 0, 0, "input 'x': shape dimension 0"},
        {IN(X("[1,1,1,1,1,1,1,1,1,1,1,1,1]", "FP32", "[1]")), NULL, 0, 0, "input 'x': shape has more than 12"},
        {IN(X("[4294967296,4294967296,4294967296]", "FP32", "[1]")), NULL, 0, 0,
         "input 'x': shape [4294967296,4294967296,4294967296] has more elements than 64 bits"},
        /* a huge shape with little data is refused before anything is made */
        {IN(X("[1000000000000]", "FP32", "[1]")), NULL, 0, 0,
         "input 'x': 'data' holds 1 elements but shape [1000000000000] needs 1000000000000"},
        {IN(XB("[1000000000000]", "FP32", "4")), "abcd", 4, 1,
         "input 'x': binary_data_size is 4 but shape [1000000000000] of FP32 takes 4000000000000 bytes"},
        {IN(XB("[1152921504606846976,4]", "FP64", "8")), "abcdefgh", 8, 1, "takes more than"},
        {IN(X("[2]", "FP32", "[1,2,3]")), NULL, 0, 0, "input 'x': 'data' holds 3 elements but shape [2] needs 2"},
        {IN("{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}"), NULL, 0, 0,
         "input 'x': set exactly one of 'data' and 'binary_data_size' (in 'parameters'); it sets neither"},
        {IN("{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],"
            "\"parameters\":{\"binary_data_size\":4}}"), "abcd", 4, 1, "it sets both"},
        {IN(X("[1]", "FP32", "1")), NULL, 0, 0, "input 'x': 'data' is not an array"},
        {IN(X("[1]", "FP16", "[1]")), NULL, 0, 0,
         "receiving FP16 data via JSON is not supported: send input 'x' in the binary data format"},
        {IN(X("[1]", "BF16", "[1]")), NULL, 0, 0, "receiving BF16 data via JSON is not supported: send input 'x'"},
        {IN(X("[1]", "FP32",
              "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
              "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")), NULL, 0, 0,
         "input 'x': 'data' nests arrays more than 64 deep"},
        {IN(X("[1]", "BOOL", "[1]")), NULL, 0, 0, "input 'x': data element 0 is a number, expected true or false"},
        {IN(X("[2]", "UINT8", "[1,256]")), NULL, 0, 0, "input 'x': data element 1 is 256, out of range for UINT8"},
        {IN(X("[1]", "INT8", "[-129]")), NULL, 0, 0, "input 'x': data element 0 is -129, out of range for INT8"},
        {IN(X("[1]", "UINT32", "[-1]")), NULL, 0, 0, "out of range for UINT32"},
        {IN(X("[1]", "UINT64", "[18446744073709551616]")), NULL, 0, 0,
         "input 'x': data element 0 is 18446744073709551616, out of range for UINT64"},
        {IN(X("[1]", "INT64", "[9223372036854775808]")), NULL, 0, 0,
         "data element 0 is 9223372036854775808, out of range for INT64"},
        {IN(X("[1]", "INT64", "[1e300]")), NULL, 0, 0, "out of range for INT64"},
        {IN(X("[1]", "INT32", "[1.5]")), NULL, 0, 0, "input 'x': data element 0 is 1.5, not an integer (INT32)"},
        {IN(X("[1]", "INT32", "[NaN]")), NULL, 0, 0, "not an integer (INT32)"},
        {IN(X("[1]", "INT32", "[\"1\"]")), NULL, 0, 0, "data element 0 is a string, expected an integer (INT32)"},
        {IN(X("[1]", "FP32", "[null]")), NULL, 0, 0, "data element 0 is null, expected a number (FP32)"},
        {IN(X("[1]", "FP32", "[1e39]")), NULL, 0, 0, "data element 0 is 1e+39, out of range for FP32"},
        {IN(X("[1]", "BYTES", "[1]")), NULL, 0, 0, "data element 0 is a number, expected a string (BYTES)"},
        {IN(X("[1]", "BYTES", "[\"a\\u0000b\"]")), NULL, 0, 0, "\\u0000"},
        {IN(X("[2]", "FP32", "[NaNa,1]")), NULL, 0, 0, "malformed JSON"},
        {IN(X("[1]", "FP32", "[1NaN]")), NULL, 0, 0, "malformed JSON"},
        {IN(X("[1]", "FP32", "[0Infinity]")), NULL, 0, 0, "malformed JSON"},
        {IN(X("[1]", "FP32", "[1-Inf]")), NULL, 0, 0, "malformed JSON"},
        {IN(X("[1]", "FP32", "[\"a\"NaN]")), NULL, 0, 0, "malformed JSON"},
        {IN(X("[1]", "FP32", "[Infinit]")), NULL, 0, 0, "malformed JSON"},
        {IN(X("[1]", "FP32", "[1]")) "x", NULL, 0, 0, "unexpected text after the request's JSON"},
        {IN(XB("[2]", "FP32", "8")), "abcd", 4, 1,
         "input 'x': binary_data_size is 8 but only 4 bytes of binary data remain"},
        {IN(XB("[2]", "FP32", "4")), "abcd", 4, 1, "input 'x': binary_data_size is 4 but shape [2] of FP32 takes 8 bytes"},
        {IN(XB("[1]", "FP32", "4")), "abcdef", 6, 1, "unexpected additional input data: 2 bytes"},
        {IN(XB("[1]", "FP32", "4")), NULL, 0, 0, "input 'x': 'binary_data_size' needs the Inference-Header-Content-Length"},
        {IN(XB("[1]", "FP32", "-4")), "abcd", 4, 1, "input 'x': 'binary_data_size' is not a non-negative integer"},
        {IN(XB("[2]", "BYTES", "5")), "\1\0\0\0a", 5, 1, "input 'x': binary BYTES data holds 1 elements but shape [2] needs 2"},
        {IN(XB("[2]", "BYTES", "7")), "\1\0\0\0a\0\0", 7, 1, "input 'x': binary BYTES data ends inside the length of element 1"},
        {IN(XB("[1]", "BYTES", "6")), "\5\0\0\0ab", 6, 1, "input 'x': binary BYTES element 0 is 5 bytes long but only 2"},
        {IN(XB("[1]", "BYTES", "6")), "\2\0\0\0a\0", 6, 1, "input 'x': binary BYTES element 0 holds a NUL byte"},
        {IN("{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],\"parameters\":"
            "{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":4}}"), NULL, 0, 0,
         "input 'x': its data is in shared memory region 'r', so it may not also set 'data'"},
        {IN("{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":"
            "{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":4}}"), NULL, 0, 0,
         "input 'x': shared_memory_byte_size is 4 but shape [2] of FP32 takes 8 bytes"},
        {IN("{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"parameters\":"
            "{\"shared_memory_region\":\"r\"}}"), NULL, 0, 0,
         "input 'x': shared memory needs both 'shared_memory_region' and 'shared_memory_byte_size'"},
        {IN("{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"parameters\":"
            "{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":4,\"shared_memory_offset\":-1}}"),
         NULL, 0, 0, "input 'x': 'shared_memory_offset' is not a non-negative integer"},
        {IN(X("[1]", "FP32", "[1]")) ",\"outputs\":{}}", NULL, 0, 0, "unexpected text after the request's JSON"},
        {"{\"inputs\":[],\"outputs\":{}}", NULL, 0, 0, "'outputs' is not an array"},
        {"{\"inputs\":[],\"outputs\":[{\"name\":\"y\"},{\"name\":\"z\"},{\"name\":\"y\"}]}", NULL, 0, 0,
         "output 'y' is requested twice"},
        {"{\"inputs\":[],\"outputs\":[{\"parameters\":{}}]}", NULL, 0, 0, "outputs[0] has no 'name'"},
        {"{\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"parameters\":{\"classification\":-1}}]}", NULL, 0, 0,
         "output 'y': 'classification' is not an integer"},
        {"{\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":1}}]}", NULL, 0, 0,
         "output 'y': 'binary_data' is not true or false"},
        {"{\"inputs\":[],\"outputs\":[{\"name\":\"y\",\"parameters\":{\"shared_memory_region\":\"r\"}}]}",
         NULL, 0, 0, "output 'y': shared memory"},
        {"{\"inputs\":[],\"parameters\":{\"binary_data_output\":\"yes\"}}", NULL, 0, 0,
         "'binary_data_output' in 'parameters' is not true or false"},
        {"{\"inputs\":[],\"parameters\":{\"timeout\":-5}}", NULL, 0, 0, "'timeout' in 'parameters'"},
        {"{\"inputs\":[],\"parameters\":{\"priority\":\"high\"}}", NULL, 0, 0,
         "'priority' in 'parameters' is not a non-negative integer"},
        {"{\"inputs\":[],\"parameters\":[]}", NULL, 0, 0, "the request's 'parameters' is not an object"},
        {"{\"id\":5,\"inputs\":[]}", NULL, 0, 0, "the request's 'id' is not a string"},
    };
#undef IN
#undef X
#undef XB
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_case *c = &cases[i];
        serve_request r;
        memset(&r, 0x5a, sizeof r);
        size_t h = strlen(c->json);
        char *body = malloc(h + c->bin_len + 1);
        memcpy(body, c->json, h);
        if (c->bin_len) memcpy(body + h, c->bin, c->bin_len);
        int rc = serve_request_parse(body, h + c->bin_len, c->with_header ? h : 0, &r, err, sizeof err);
        free(body);
        if (rc != 400 || !strstr(err, c->want))
            fail_msg("case %zu: %s\n  status %d, message: %s\n  expected: %s", i, c->json, rc, err, c->want);
        assert_true(is_zeroed(&r));
    }
}

static void test_request_errors_framing(void **state) {
    serve_request r;
    const char *j = "{\"inputs\":[]}";
    assert_int_equal(serve_request_parse(j, strlen(j), strlen(j) + 1, &r, err, sizeof err), 400);
    assert_non_null(strstr(err, "Inference-Header-Content-Length is 14 but the body has only 13 bytes"));
    assert_int_equal(serve_request_parse("", 0, 0, &r, err, sizeof err), 400);
    assert_non_null(strstr(err, "empty"));
    /* a NUL byte inside the JSON */
    const char nul[] = "{\"inputs\":[\0]}";
    assert_int_equal(serve_request_parse(nul, sizeof nul - 1, 0, &r, err, sizeof err), 400);
    assert_non_null(strstr(err, "NUL byte"));
    /* the header length cuts the JSON short */
    assert_int_equal(serve_request_parse(j, strlen(j), 5, &r, err, sizeof err), 400);
    assert_non_null(strstr(err, "malformed JSON"));
    /* deep nesting anywhere is refused without a crash */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    assert_int_equal(parse(deep, &r), 400);
    free(deep);
    /* a small err buffer is fine */
    char small[8];
    assert_int_equal(serve_request_parse("{", 1, 0, &r, small, sizeof small), 400);
    assert_int_equal(strlen(small), 7);
}

/* ---- checking against a configuration -------------------------------------- */

static serve_io mkio(const char *name, kiln_dtype dt, int ndim, const int64_t *dims) {
    serve_io io;
    memset(&io, 0, sizeof io);
    io.name = (char *)name;
    io.dtype = dt;
    io.ndim = ndim;
    memcpy(io.dims, dims, (size_t)ndim * sizeof *dims);
    return io;
}

/* Model "m": inputs x FP32 [1,28,28], ids INT64 [-1,4] reshaped to [4,-1],
 * mask BOOL [-1] optional; outputs prob FP32 [10], name BYTES [1]. */
static void make_config(serve_model_config *c, serve_io *in, serve_io *out, int max_batch) {
    memset(c, 0, sizeof *c);
    c->name = (char *)"m";
    c->max_batch_size = max_batch;
    in[0] = mkio("x", KILN_DTYPE_F32, 3, (int64_t[]){1, 28, 28});
    in[1] = mkio("ids", KILN_DTYPE_I64, 2, (int64_t[]){-1, 4});
    in[1].has_reshape = 1;
    in[1].reshape_ndim = 2;
    in[1].reshape[0] = 4;
    in[1].reshape[1] = -1;
    in[2] = mkio("mask", KILN_DTYPE_BOOL, 1, (int64_t[]){-1});
    in[2].optional = 1;
    out[0] = mkio("prob", KILN_DTYPE_F32, 1, (int64_t[]){10});
    out[1] = mkio("name", KILN_DTYPE_STRING, 1, (int64_t[]){1});
    c->n_inputs = 3;
    c->inputs = in;
    c->n_outputs = 2;
    c->outputs = out;
}

/* A request with input x of shape xs (binary zeros), ids of shape ids (zeros
 * 0..n-1 in JSON) and optionally mask, plus extra JSON text in "inputs". */
static int check_req(const serve_model_config *c, const char *x_shape, int64_t x_numel,
                     const char *ids_shape, int64_t ids_numel, const char *extra, const char *outputs,
                     serve_request *r, int *batch) {
    char json[4096];
    int at = snprintf(json, sizeof json,
                      "{\"inputs\":[{\"name\":\"x\",\"shape\":%s,\"datatype\":\"FP32\","
                      "\"parameters\":{\"binary_data_size\":%lld}},"
                      "{\"name\":\"ids\",\"shape\":%s,\"datatype\":\"INT64\",\"data\":[",
                      x_shape, (long long)(x_numel * 4), ids_shape);
    for (int64_t i = 0; i < ids_numel; i++) at += snprintf(json + at, sizeof json - at, "%s%lld", i ? "," : "", (long long)i);
    snprintf(json + at, sizeof json - at, "]}%s]%s%s}", extra ? extra : "", outputs ? ",\"outputs\":" : "",
             outputs ? outputs : "");
    void *zeros = calloc((size_t)x_numel * 4 + 1, 1);
    int rc = parse_bin(json, zeros, (size_t)x_numel * 4, r);
    free(zeros);
    if (rc) fail_msg("parse: %s", err);
    return serve_request_check(r, c, batch, err, sizeof err);
}

static void test_check_batching(void **state) {
    serve_model_config c;
    serve_io in[3], out[2];
    make_config(&c, in, out, 8);
    serve_request r;
    int batch = 0;
    /* batch 2, ids [2,3,4] -> reshape [2,4,3] (the -1 takes dims' -1: 3) */
    assert_int_equal(check_req(&c, "[2,1,28,28]", 2 * 784, "[2,3,4]", 24, NULL, NULL, &r, &batch), 0);
    assert_int_equal(batch, 2);
    int64_t want[] = {2, 4, 3};
    const kiln_tensor *ids = input(&r, "ids");
    assert_shape(ids, 3, want);
    assert_int_equal(((int64_t *)kiln_tensor_data(ids))[23], 23); /* same elements, same order */
    serve_request_free(&r);

    /* the optional input given, and outputs */
    assert_int_equal(check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4,
                               ",{\"name\":\"mask\",\"shape\":[1,2],\"datatype\":\"BOOL\",\"data\":[true,false]}",
                               "[{\"name\":\"prob\",\"parameters\":{\"classification\":3}},{\"name\":\"name\"}]",
                               &r, &batch), 0);
    assert_int_equal(batch, 1);
    serve_request_free(&r);

    /* shape messages */
    check_req(&c, "[2,3,28,28]", 2 * 3 * 784, "[2,1,4]", 8, NULL, NULL, &r, &batch);
    assert_string_equal(err, "input 'x': shape [2,3,28,28] does not match the model's [-1,1,28,28]: "
                             "dimension 1 is 3, expected 1");
    serve_request_free(&r);
    assert_int_equal(check_req(&c, "[9,1,28,28]", 9 * 784, "[9,1,4]", 36, NULL, NULL, &r, &batch), 400);
    assert_string_equal(err, "input 'x': batch size 9 exceeds max_batch_size 8 (the first dimension "
                             "is the batch dimension)");
    serve_request_free(&r);
    assert_int_equal(check_req(&c, "[0,1,28,28]", 0, "[0,1,4]", 0, NULL, NULL, &r, &batch), 400);
    assert_non_null(strstr(err, "input 'x': batch size 0 is below 1"));
    serve_request_free(&r);
    assert_int_equal(check_req(&c, "[2,1,28,28]", 2 * 784, "[3,1,4]", 12, NULL, NULL, &r, &batch), 400);
    assert_non_null(strstr(err, "inputs disagree on the batch dimension: input 'x' has batch size 2, "
                                "input 'ids' has 3"));
    serve_request_free(&r);
    assert_int_equal(check_req(&c, "[1,28,28]", 784, "[1,1,4]", 4, NULL, NULL, &r, &batch), 400);
    assert_string_equal(err, "input 'x': shape [1,28,28] does not match the model's [-1,1,28,28]: "
                             "3 dimensions, expected 4 (the first dimension is the batch dimension)");
    serve_request_free(&r);
    assert_int_equal(check_req(&c, "[1,1,28,28]", 784, "[1,1,5]", 5, NULL, NULL, &r, &batch), 400);
    assert_non_null(strstr(err, "input 'ids': shape [1,1,5] does not match the model's [-1,-1,4]: "
                                "dimension 2 is 5, expected 4"));
    serve_request_free(&r);
}

static void test_check_inputs_and_outputs(void **state) {
    serve_model_config c;
    serve_io in[3], out[2];
    make_config(&c, in, out, 8);
    serve_request r;
    int batch;
    /* unknown, given twice, wrong dtype, missing */
    check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4,
              ",{\"name\":\"y\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}", NULL, &r, &batch);
    assert_string_equal(err, "input 'y' is not an input of model 'm' (its inputs: x, ids, mask)");
    serve_request_free(&r);
    check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4,
              ",{\"name\":\"ids\",\"shape\":[1,1,4],\"datatype\":\"INT64\",\"data\":[1,2,3,4]}", NULL, &r,
              &batch);
    assert_string_equal(err, "input 'ids' is given twice");
    serve_request_free(&r);
    check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4,
              ",{\"name\":\"mask\",\"shape\":[1,1],\"datatype\":\"INT32\",\"data\":[1]}", NULL, &r, &batch);
    assert_string_equal(err, "input 'mask': datatype INT32 does not match the model's BOOL");
    serve_request_free(&r);
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"ids\",\"shape\":[1,1,4],\"datatype\":\"INT64\","
                           "\"data\":[1,2,3,4]}]}", &r), 0);
    assert_int_equal(serve_request_check(&r, &c, &batch, err, sizeof err), 400);
    assert_string_equal(err, "input 'x' of model 'm' is missing (its inputs: x, ids, mask)");
    serve_request_free(&r);
    /* outputs */
    check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4, NULL, "[{\"name\":\"nope\"}]", &r, &batch);
    assert_string_equal(err, "output 'nope' is not an output of model 'm' (its outputs: prob, name)");
    serve_request_free(&r);
    check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4, NULL,
              "[{\"name\":\"name\",\"parameters\":{\"classification\":2}}]", &r, &batch);
    assert_string_equal(err, "output 'name': classification needs a numeric output; its datatype is BYTES");
    serve_request_free(&r);
    /* FP16 outputs only in binary form: named in JSON, or all outputs in JSON */
    out[1].dtype = KILN_DTYPE_F16;
    check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4, NULL, "[{\"name\":\"name\"}]", &r, &batch);
    assert_string_equal(err, "sending FP16 data via JSON is not supported: ask for output 'name' in the "
                             "binary data format (\"binary_data\": true)");
    serve_request_free(&r);
    check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4, NULL, NULL, &r, &batch);
    assert_non_null(strstr(err, "sending FP16 data via JSON is not supported: ask for output 'name'"));
    serve_request_free(&r);
    assert_int_equal(check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4, NULL,
                               "[{\"name\":\"name\",\"parameters\":{\"binary_data\":true}},"
                               "{\"name\":\"prob\"}]", &r, &batch), 0);
    serve_request_free(&r);
    assert_int_equal(check_req(&c, "[1,1,28,28]", 784, "[1,1,4]", 4, NULL,
                               "[{\"name\":\"name\",\"parameters\":{\"classification\":1}}]", &r,
                               &batch), 0);
    serve_request_free(&r);
}

static void test_check_no_batching(void **state) {
    serve_model_config c;
    serve_io in[3], out[2];
    make_config(&c, in, out, 0);
    serve_request r;
    int batch = 0;
    /* no batch dimension: x is [1,28,28], ids [3,4] -> reshape [4,3] */
    assert_int_equal(check_req(&c, "[1,28,28]", 784, "[3,4]", 12, NULL, NULL, &r, &batch), 0);
    assert_int_equal(batch, 1);
    int64_t want[] = {4, 3};
    assert_shape(input(&r, "ids"), 2, want);
    serve_request_free(&r);
    check_req(&c, "[2,1,28,28]", 2 * 784, "[3,4]", 12, NULL, NULL, &r, &batch);
    assert_string_equal(err, "input 'x': shape [2,1,28,28] does not match the model's [1,28,28]: "
                             "4 dimensions, expected 3");
    serve_request_free(&r);
    /* a reshape that does not fit the elements */
    in[0].has_reshape = 1;
    in[0].reshape_ndim = 1;
    in[0].reshape[0] = 100;
    check_req(&c, "[1,28,28]", 784, "[3,4]", 12, NULL, NULL, &r, &batch);
    assert_non_null(strstr(err, "input 'x': shape [1,28,28] cannot take the configured reshape [100]"));
    serve_request_free(&r);
    in[0].reshape_ndim = 2;
    in[0].reshape[0] = -1;
    in[0].reshape[1] = 784;
    check_req(&c, "[1,28,28]", 784, "[3,4]", 12, NULL, NULL, &r, &batch);
    assert_non_null(strstr(err, "input 'x': the configured reshape [-1,784] has more variable dimensions"));
    serve_request_free(&r);
    /* BYTES inputs keep their strings through a reshape */
    in[0] = mkio("s", KILN_DTYPE_STRING, 2, (int64_t[]){2, 2});
    in[0].has_reshape = 1;
    in[0].reshape_ndim = 1;
    in[0].reshape[0] = 4;
    c.n_inputs = 1;
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"s\",\"shape\":[2,2],\"datatype\":\"BYTES\","
                           "\"data\":[[\"a\",\"b\"],[\"c\",\"d\"]]}]}", &r), 0);
    assert_int_equal(serve_request_check(&r, &c, &batch, err, sizeof err), 0);
    int64_t four[] = {4};
    assert_shape(r.inputs[0], 1, four);
    assert_string_equal(((char **)kiln_tensor_data(r.inputs[0]))[3], "d");
    serve_request_free(&r);
}

/* ---- responses ------------------------------------------------------------- */

static kiln_tensor *tensor(kiln_dtype dt, int ndim, const int64_t *dims, const void *data) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(dt, ndim, dims, &t), KILN_OK);
    int64_t n = kiln_tensor_numel(t);
    if (dt == KILN_DTYPE_STRING) {
        char **s = kiln_tensor_data(t);
        for (int64_t i = 0; i < n; i++) {
            free(s[i]);
            s[i] = dupstr(((const char *const *)data)[i]);
        }
    } else if (n) {
        memcpy(kiln_tensor_data(t), data, (size_t)n * kiln_dtype_size(dt));
    }
    return t;
}

/* The output object called name in a parsed response. */
static cJSON *out_json(cJSON *root, const char *name) {
    cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItem(root, "outputs"))
        if (!strcmp(cJSON_GetObjectItem(o, "name")->valuestring, name)) return o;
    fail_msg("no output '%s'", name);
    return NULL;
}

static void test_response_json(void **state) {
    float f[] = {0.1f, -0.0f, 1.0f, 3.4028235e38f, 1e-45f, NAN, INFINITY, -INFINITY};
    double d[] = {0.1, 1e300, -2.0};
    int64_t i64[] = {INT64_MIN, INT64_MAX};
    uint64_t u64[] = {UINT64_MAX, 0};
    uint8_t b[] = {1, 0, 2};
    int8_t i8[] = {-128, 127};
    const char *s[] = {"plain", "q\"b\\n\n\x01", ""};
    kiln_tensor *t[7] = {
        tensor(KILN_DTYPE_F32, 2, (int64_t[]){2, 4}, f), tensor(KILN_DTYPE_F64, 1, (int64_t[]){3}, d),
        tensor(KILN_DTYPE_I64, 1, (int64_t[]){2}, i64), tensor(KILN_DTYPE_U64, 1, (int64_t[]){2}, u64),
        tensor(KILN_DTYPE_BOOL, 1, (int64_t[]){3}, b), tensor(KILN_DTYPE_I8, 1, (int64_t[]){2}, i8),
        tensor(KILN_DTYPE_STRING, 1, (int64_t[]){3}, s),
    };
    const char *names[] = {"f", "d", "i64", "u64", "b", "i8", "s"};
    serve_response_output o[7];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 7; i++) o[i].name = names[i], o[i].t = t[i];
    char *body;
    size_t len, hlen;
    assert_int_equal(serve_response_build("m\"x", "1", "req-7", 7, o, &body, &len, &hlen, err, sizeof err), 0);
    assert_int_equal(hlen, 0);
    assert_int_equal(strlen(body), len);
    /* exact text of the numbers */
    assert_non_null(strstr(body, "\"data\":[0.100000001,-0.0,1.0,3.40282347e+38,1.40129846e-45,NaN,"
                                 "Infinity,-Infinity]"));
    assert_non_null(strstr(body, "\"data\":[-9223372036854775808,9223372036854775807]"));
    assert_non_null(strstr(body, "\"data\":[18446744073709551615,0]"));
    assert_non_null(strstr(body, "\"data\":[true,false,true]"));
    assert_non_null(strstr(body, "\"data\":[\"plain\",\"q\\\"b\\\\n\\n\\u0001\",\"\"]"));
    assert_non_null(strstr(body, "{\"name\":\"f\",\"datatype\":\"FP32\",\"shape\":[2,4],"));
    /* cJSON does not read NaN/Infinity: blank them to check the rest */
    char *plain = dupstr(body);
    for (char *p; (p = strstr(plain, "NaN")) || (p = strstr(plain, "Infinity"));)
        memset(p, ' ', *p == 'N' ? 3 : 8), *p = '0';
    cJSON *root = cJSON_Parse(plain);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "model_name")->valuestring, "m\"x");
    assert_string_equal(cJSON_GetObjectItem(root, "model_version")->valuestring, "1");
    assert_string_equal(cJSON_GetObjectItem(root, "id")->valuestring, "req-7");
    cJSON *jf = cJSON_GetObjectItem(out_json(root, "f"), "data");
    for (int i = 0; i < 5; i++) assert_true((float)cJSON_GetArrayItem(jf, i)->valuedouble == f[i]);
    cJSON *jd = cJSON_GetObjectItem(out_json(root, "d"), "data");
    for (int i = 0; i < 3; i++) assert_true(cJSON_GetArrayItem(jd, i)->valuedouble == d[i]);
    assert_string_equal(cJSON_GetObjectItem(out_json(root, "d"), "datatype")->valuestring, "FP64");
    cJSON *js = cJSON_GetObjectItem(out_json(root, "s"), "data");
    for (int i = 0; i < 3; i++) assert_string_equal(cJSON_GetArrayItem(js, i)->valuestring, s[i]);
    assert_string_equal(cJSON_GetObjectItem(out_json(root, "s"), "datatype")->valuestring, "BYTES");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(out_json(root, "i8"), "data"), 0)->valueint, -128);
    cJSON_Delete(root);
    free(plain);
    free(body);

    /* no id when there is none or it is empty; no version when NULL */
    assert_int_equal(serve_response_build("m", NULL, "", 1, o + 4, &body, &len, &hlen, err, sizeof err), 0);
    assert_string_equal(body, "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"b\",\"datatype\":\"BOOL\","
                              "\"shape\":[3],\"data\":[true,false,true]}]}");
    free(body);
    assert_int_equal(serve_response_build("m", "2", NULL, 0, NULL, &body, &len, &hlen, err, sizeof err), 0);
    assert_string_equal(body, "{\"model_name\":\"m\",\"model_version\":\"2\",\"outputs\":[]}");
    free(body);
    for (int i = 0; i < 7; i++) kiln_tensor_free(t[i]);
}

static void test_response_binary(void **state) {
    float f[] = {1, 2, 3, 4, 5, 6};
    uint16_t h[] = {0x3c00, 0xc000};
    uint8_t b[] = {0, 5};
    const char *s[] = {"ab", "", "xyz"};
    kiln_tensor *tf = tensor(KILN_DTYPE_F32, 2, (int64_t[]){2, 3}, f);
    kiln_tensor *th = tensor(KILN_DTYPE_F16, 1, (int64_t[]){2}, h);
    kiln_tensor *tb = tensor(KILN_DTYPE_BOOL, 1, (int64_t[]){2}, b);
    kiln_tensor *ts = tensor(KILN_DTYPE_STRING, 1, (int64_t[]){3}, s);
    /* a strided view: column 1 of f, [2,1] */
    kiln_tensor *col;
    assert_int_equal(kiln_tensor_slice_view(tf, 1, 1, 2, 1, &col), KILN_OK);
    serve_response_output o[] = {
        {.name = "f", .t = tf, .binary = 1},  {.name = "j", .t = tb, .binary = 0},
        {.name = "h", .t = th, .binary = 1},  {.name = "s", .t = ts, .binary = 1},
        {.name = "b", .t = tb, .binary = 1},  {.name = "col", .t = col, .binary = 1},
    };
    char *body;
    size_t len, hlen;
    assert_int_equal(serve_response_build("m", "1", NULL, 6, o, &body, &len, &hlen, err, sizeof err), 0);
    assert_true(hlen > 0 && hlen < len);
    assert_int_equal(len - hlen, 24 + 4 + (4 + 2 + 4 + 0 + 4 + 3) + 2 + 8);
    cJSON *root = cJSON_ParseWithLength(body, hlen);
    assert_non_null(root);
    cJSON *p = cJSON_GetObjectItem(out_json(root, "s"), "parameters");
    assert_int_equal(cJSON_GetObjectItem(p, "binary_data_size")->valueint, 17);
    assert_null(cJSON_GetObjectItem(out_json(root, "s"), "data"));
    assert_non_null(cJSON_GetObjectItem(out_json(root, "j"), "data"));
    assert_string_equal(cJSON_GetObjectItem(out_json(root, "h"), "datatype")->valuestring, "FP16");
    cJSON_Delete(root);
    const char *bin = body + hlen;
    assert_memory_equal(bin, f, 24);
    assert_memory_equal(bin + 24, h, 4);
    assert_memory_equal(bin + 28, "\2\0\0\0ab\0\0\0\0\3\0\0\0xyz", 17);
    assert_memory_equal(bin + 45, "\0\1", 2);
    float c[2];
    memcpy(c, bin + 47, 8);
    assert_true(c[0] == 2 && c[1] == 5);
    free(body);

    /* FP16 / BF16 cannot go in JSON */
    o[2].binary = 0;
    assert_int_equal(serve_response_build("m", "1", NULL, 3, o, &body, &len, &hlen, err, sizeof err), 400);
    assert_non_null(strstr(err, "sending FP16 data via JSON is not supported: ask for output 'h'"));
    assert_null(body);
    kiln_tensor_free(col);
    kiln_tensor_free(tf);
    kiln_tensor_free(th);
    kiln_tensor_free(tb);
    kiln_tensor_free(ts);
}

/* The strings of a BYTES output (JSON or binary) of a response. */
static void class_strings(const char *body, size_t len, size_t hlen, const char *name, char out[][64],
                          int *n, int64_t *shape, int *ndim) {
    cJSON *root = cJSON_ParseWithLength(body, hlen ? hlen : len);
    assert_non_null(root);
    cJSON *o = out_json(root, name);
    assert_string_equal(cJSON_GetObjectItem(o, "datatype")->valuestring, "BYTES");
    cJSON *sh = cJSON_GetObjectItem(o, "shape");
    *ndim = cJSON_GetArraySize(sh);
    for (int i = 0; i < *ndim; i++) shape[i] = (int64_t)cJSON_GetArrayItem(sh, i)->valuedouble;
    cJSON *data = cJSON_GetObjectItem(o, "data");
    *n = 0;
    if (data) {
        cJSON *v;
        cJSON_ArrayForEach(v, data) snprintf(out[(*n)++], 64, "%s", v->valuestring);
    } else { /* binary: the only binary output in these tests */
        size_t size = (size_t)cJSON_GetObjectItem(cJSON_GetObjectItem(o, "parameters"), "binary_data_size")->valuedouble;
        assert_int_equal(len - hlen, size);
        for (size_t off = hlen; off < len;) {
            uint32_t l;
            memcpy(&l, body + off, 4);
            snprintf(out[(*n)++], 64, "%.*s", (int)l, body + off + 4);
            off += 4 + l;
        }
    }
    cJSON_Delete(root);
}

static void test_classification(void **state) {
    /* [2,4] batched: item 0 ties 0.5 at 1 and 3; item 1 has a NaN */
    float f[] = {0.1f, 0.5f, 0.2f, 0.5f, NAN, 3.0f, -1.0f, 2.5f};
    kiln_tensor *t = tensor(KILN_DTYPE_F32, 2, (int64_t[]){2, 4}, f);
    const char *labels[] = {"cat", "dog", "", "fish"};
    serve_response_output o = {.name = "prob", .t = t, .class_count = 2, .batched = 1};
    char *body;
    size_t len, hlen;
    char s[16][64];
    int n, nd;
    int64_t shape[4];
    assert_int_equal(serve_response_build("m", "1", NULL, 1, &o, &body, &len, &hlen, err, sizeof err), 0);
    class_strings(body, len, hlen, "prob", s, &n, shape, &nd);
    assert_int_equal(nd, 2);
    assert_true(shape[0] == 2 && shape[1] == 2);
    assert_int_equal(n, 4);
    assert_string_equal(s[0], "0.500000:1");
    assert_string_equal(s[1], "0.500000:3");
    assert_string_equal(s[2], "3.000000:1");
    assert_string_equal(s[3], "2.500000:3");
    free(body);

    /* labels (an empty one gives none), binary form */
    o.labels = labels;
    o.n_labels = 4;
    o.binary = 1;
    o.class_count = 3;
    assert_int_equal(serve_response_build("m", "1", NULL, 1, &o, &body, &len, &hlen, err, sizeof err), 0);
    assert_true(hlen > 0);
    class_strings(body, len, hlen, "prob", s, &n, shape, &nd);
    assert_int_equal(n, 6);
    assert_string_equal(s[0], "0.500000:1:dog");
    assert_string_equal(s[1], "0.500000:3:fish");
    assert_string_equal(s[2], "0.200000:2");
    assert_string_equal(s[3], "3.000000:1:dog");
    assert_string_equal(s[5], "-1.000000:2"); /* NaN ranks last */
    free(body);

    /* not batched: the whole tensor, shape [K]; K capped at the elements */
    o.batched = 0;
    o.binary = 0;
    o.class_count = 100;
    o.labels = NULL;
    assert_int_equal(serve_response_build("m", "1", NULL, 1, &o, &body, &len, &hlen, err, sizeof err), 0);
    class_strings(body, len, hlen, "prob", s, &n, shape, &nd);
    assert_int_equal(nd, 1);
    assert_int_equal(shape[0], 8);
    assert_int_equal(n, 8);
    assert_string_equal(s[0], "3.000000:5");
    assert_string_equal(s[7], "nan:4");
    free(body);
    kiln_tensor_free(t);

    /* integers print as integers; labels past n_labels give none */
    int64_t iv[] = {-5, 9000000000000000001, 7};
    t = tensor(KILN_DTYPE_I64, 1, (int64_t[]){3}, iv);
    serve_response_output oi = {.name = "i", .t = t, .class_count = 2, .labels = labels, .n_labels = 2};
    assert_int_equal(serve_response_build("m", "1", NULL, 1, &oi, &body, &len, &hlen, err, sizeof err), 0);
    class_strings(body, len, hlen, "i", s, &n, shape, &nd);
    assert_string_equal(s[0], "9000000000000000001:1:dog");
    assert_string_equal(s[1], "7:2");
    free(body);
    kiln_tensor_free(t);

    /* not on BYTES or BOOL */
    const char *str[] = {"a"};
    t = tensor(KILN_DTYPE_STRING, 1, (int64_t[]){1}, str);
    serve_response_output os = {.name = "s", .t = t, .class_count = 1};
    assert_int_equal(serve_response_build("m", "1", NULL, 1, &os, &body, &len, &hlen, err, sizeof err), 400);
    assert_string_equal(err, "output 's': classification needs a numeric output; its datatype is BYTES");
    kiln_tensor_free(t);
}

/* Builds a response from tensors, turns it into a request ("outputs" ->
 * "inputs") and parses it back: every value must come back bit for bit. */
static void test_round_trip(void **state) {
    enum { N = 1000 };
    float *f = malloc(N * sizeof *f);
    double *d = malloc(N * sizeof *d);
    uint64_t *u = malloc(N * sizeof *u);
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        uint32_t a = (x = x * 1664525u + 1013904223u), c = (x = x * 1664525u + 1013904223u);
        uint32_t fb = a;
        memcpy(&f[i], &fb, 4);
        uint64_t db = ((uint64_t)a << 32) | c;
        memcpy(&d[i], &db, 8);
        u[i] = db;
        if (isnan(f[i])) f[i] = (float)i; /* NaN payloads do not survive text */
        if (isnan(d[i])) d[i] = -(double)i;
    }
    f[0] = NAN, f[1] = -INFINITY, f[2] = -0.0f;
    const char *s[] = {"x", "\"quoted\"\t", "\xe2\x82\xac", ""};
    kiln_tensor *t[4] = {tensor(KILN_DTYPE_F32, 2, (int64_t[]){10, N / 10}, f),
                         tensor(KILN_DTYPE_F64, 1, (int64_t[]){N}, d),
                         tensor(KILN_DTYPE_U64, 1, (int64_t[]){N}, u),
                         tensor(KILN_DTYPE_STRING, 2, (int64_t[]){2, 2}, s)};
    const char *names[] = {"f", "d", "u", "s"};
    for (int binary = 0; binary < 2; binary++) {
        serve_response_output o[4];
        memset(o, 0, sizeof o);
        for (int i = 0; i < 4; i++) o[i].name = names[i], o[i].t = t[i], o[i].binary = binary && i != 1;
        char *body;
        size_t len, hlen;
        assert_int_equal(serve_response_build("m", "1", "id", 4, o, &body, &len, &hlen, err, sizeof err), 0);
        char *at = strstr(body, ",\"outputs\":[");
        assert_non_null(at);
        memmove(at + 2, at + 3, len - (size_t)(at + 3 - body)); /* "outputs" -> "utputs" */
        memcpy(at + 2, "inputs", 6);
        len--;
        serve_request r;
        assert_int_equal(serve_request_parse(body, len, hlen ? hlen - 1 : 0, &r, err, sizeof err), 0);
        assert_string_equal(r.id, "id");
        assert_int_equal(r.n_inputs, 4);
        for (int i = 0; i < 4; i++) {
            assert_string_equal(r.input_names[i], names[i]);
            assert_int_equal(kiln_tensor_dtype(r.inputs[i]), kiln_tensor_dtype(t[i]));
            assert_shape(r.inputs[i], kiln_tensor_ndim(t[i]), kiln_tensor_dims(t[i]));
        }
        const float *rf = kiln_tensor_data(r.inputs[0]);
        assert_true(isnan(rf[0]));
        assert_memory_equal(rf + 1, f + 1, (N - 1) * sizeof *f); /* -0.0 keeps its sign */
        assert_memory_equal(kiln_tensor_data(r.inputs[1]), d, N * sizeof *d);
        assert_memory_equal(kiln_tensor_data(r.inputs[2]), u, N * sizeof *u);
        char **rs = kiln_tensor_data(r.inputs[3]);
        for (int i = 0; i < 4; i++) assert_string_equal(rs[i], s[i]);
        serve_request_free(&r);
        free(body);
    }
    for (int i = 0; i < 4; i++) kiln_tensor_free(t[i]);
    free(f);
    free(d);
    free(u);
}

static void test_error_body(void **state) {
    size_t len;
    char *b = serve_error_body("input 'x': \"bad\"\n", &len);
    assert_string_equal(b, "{\"error\":\"input 'x': \\\"bad\\\"\\n\"}");
    assert_int_equal(len, strlen(b));
    free(b);
}

/* A region "r" of 64 bytes (0, 1, ..., 63) for the shared memory test. */
static int shm_read_r(void *ctx, const char *region, uint64_t offset, uint64_t size, void *dst,
                      char *e, size_t elen) {
    int *calls = ctx;
    ++*calls;
    uint8_t bytes[64];
    for (int i = 0; i < 64; i++) bytes[i] = (uint8_t)i;
    if (strcmp(region, "r") || offset > 64 || size > 64 - offset) {
        snprintf(e, elen, "no region '%s' of that range", region);
        return 400;
    }
    if (dst) memcpy(dst, bytes + offset, (size_t)size);
    return 0;
}

static void test_shared_memory(void **state) {
    (void)state;
    /* x: INT32 [2] at offset 8 of "r"; s: BYTES [1] read from a region holding
     * the element "ab" (length 2 little-endian, then 'a' 'b') is not in "r",
     * so a region named "q" is refused; y: an output to "r" at 16 */
    serve_request r;
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"INT32\","
                           "\"parameters\":{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":8,"
                           "\"shared_memory_offset\":8}},"
                           "{\"name\":\"z\",\"shape\":[1],\"datatype\":\"INT32\",\"data\":[5]}],"
                           "\"outputs\":[{\"name\":\"y\",\"parameters\":{\"shared_memory_region\":\"r\","
                           "\"shared_memory_byte_size\":12,\"shared_memory_offset\":16}}]}", &r), 0);
    assert_non_null(r.input_shm);
    assert_null(r.inputs[0]); /* not read yet */
    assert_string_equal(r.input_shm[0].ref.region, "r");
    assert_int_equal(r.input_shm[0].ref.offset, 8);
    assert_null(r.input_shm[1].ref.region);
    assert_string_equal(r.outputs[0].shm.region, "r");
    assert_int_equal(r.outputs[0].shm.offset, 16);
    assert_int_equal(r.outputs[0].shm.byte_size, 12);
    int calls = 0;
    assert_int_equal(serve_request_read_shm(&r, shm_read_r, &calls, err, sizeof err), 0);
    assert_int_equal(calls, 2); /* the range checked, then read */
    int32_t want[2];
    const uint8_t raw[8] = {8, 9, 10, 11, 12, 13, 14, 15};
    memcpy(want, raw, 8);
    assert_memory_equal(kiln_tensor_data(r.inputs[0]), want, 8);
    serve_request_free(&r);

    /* BYTES from a region, and a region the reader does not know */
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\","
                           "\"parameters\":{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":5}}]}",
                           &r), 0);
    /* bytes 0..4 of "r": length 0x03020100 > the 1 byte left: refused */
    assert_int_equal(serve_request_read_shm(&r, shm_read_r, &calls, err, sizeof err), 400);
    assert_ptr_equal(strstr(err, "input 's': binary BYTES element 0 is"), err);
    serve_request_free(&r);
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\","
                           "\"parameters\":{\"shared_memory_region\":\"q\",\"shared_memory_byte_size\":4}}]}",
                           &r), 0);
    assert_int_equal(serve_request_read_shm(&r, shm_read_r, &calls, err, sizeof err), 400);
    assert_string_equal(err, "input 'x': no region 'q' of that range");
    serve_request_free(&r);
    /* a size past the region is refused before anything is allocated for it */
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\","
                           "\"parameters\":{\"shared_memory_region\":\"r\","
                           "\"shared_memory_byte_size\":9007199254740993}}]}", &r),
                     0);
    assert_int_equal(serve_request_read_shm(&r, shm_read_r, &calls, err, sizeof err), 400);
    assert_string_equal(err, "input 's': no region 'r' of that range");
    serve_request_free(&r);
    assert_int_equal(parse("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\","
                           "\"parameters\":{\"shared_memory_region\":\"q\",\"shared_memory_byte_size\":4}}]}",
                           &r), 0);
    assert_int_equal(serve_request_read_shm(&r, shm_read_r, &calls, err, sizeof err), 400);
    /* checking a request whose shared memory input was not read refuses it */
    serve_io in = {.name = (char *)"x", .dtype = KILN_DTYPE_F32, .ndim = 1, .dims = {1}};
    serve_model_config cfg = {.name = (char *)"m", .n_inputs = 1, .inputs = &in};
    int batch;
    assert_int_equal(serve_request_check(&r, &cfg, &batch, err, sizeof err), 400);
    assert_non_null(strstr(err, "shared memory data has not been read"));
    serve_request_free(&r);

    /* responses: an output sent to shared memory names the region and size only */
    float f[] = {1, 2, 3};
    kiln_tensor *tf = tensor(KILN_DTYPE_F32, 1, (int64_t[]){3}, f);
    serve_response_output o = {.name = "y", .t = tf, .binary = 1};
    const void *data;
    size_t n;
    void *owned;
    assert_int_equal(serve_output_bytes(&o, &data, &n, &owned, err, sizeof err), 0);
    assert_int_equal(n, 12);
    assert_null(owned); /* the tensor's own bytes */
    assert_ptr_equal(data, kiln_tensor_data(tf));
    o.shm_region = "r";
    o.shm_bytes = n;
    char *body;
    size_t len, hlen;
    assert_int_equal(serve_response_build("m", "1", NULL, 1, &o, &body, &len, &hlen, err, sizeof err), 0);
    assert_int_equal(hlen, 0); /* nothing binary follows */
    assert_non_null(strstr(body, "\"parameters\":{\"shared_memory_region\":\"r\",\"shared_memory_byte_size\":12}"));
    assert_null(strstr(body, "\"data\""));
    free(body);
    kiln_tensor_free(tf);
    const char *sv[] = {"ab"};
    kiln_tensor *ts = tensor(KILN_DTYPE_STRING, 1, (int64_t[]){1}, sv);
    serve_response_output os = {.name = "s", .t = ts};
    assert_int_equal(serve_output_bytes(&os, &data, &n, &owned, err, sizeof err), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(data, "\2\0\0\0ab", 6);
    assert_ptr_equal(data, owned);
    free(owned);
    kiln_tensor_free(ts);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_every_dtype),
        cmocka_unit_test(test_json_nested_and_flat),
        cmocka_unit_test(test_request_parameters),
        cmocka_unit_test(test_binary_inputs),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_request_errors_framing),
        cmocka_unit_test(test_check_batching),
        cmocka_unit_test(test_check_inputs_and_outputs),
        cmocka_unit_test(test_check_no_batching),
        cmocka_unit_test(test_response_json),
        cmocka_unit_test(test_response_binary),
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_shared_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
