/* tests/unit/test_serve_config.c: Triton model configurations (config.pbtxt):
 * the protobuf text parser (every syntax form, every error with its
 * line:column, hostile nesting, input that is not NUL-terminated, every prefix
 * of a valid file and single-byte corruptions of it), the ModelConfig reader
 * (a realistic file with every accepted field, list forms, defaults, every
 * refusal naming its field and position), completion against small built
 * graphs (dynamic and fixed batch dimensions, reshapes of scalars, mismatch
 * errors naming model, tensor and field) and the JSON of the config endpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kiln/kiln.h"
#include "serve/model_config.h"
#include "serve/pbtxt.h"

#define assert_contains(hay, needle)                                                   \
    do {                                                                               \
        if (!strstr((hay), (needle))) {                                                \
            print_error("\"%s\"\n  does not contain \"%s\"\n", (hay), (needle));       \
            fail();                                                                    \
        }                                                                              \
    } while (0)

/* A copy of s of exactly strlen(s) bytes, no NUL after it (ASan sees any read past). */
static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static kiln_status parse_text(const char *text, serve_model_config *cfg, char *err, size_t errlen) {
    size_t n = strlen(text);
    char *copy = exact_copy(text, n);
    kiln_status st = serve_config_parse(copy, n, "m/config.pbtxt", cfg, err, errlen);
    free(copy);
    return st;
}

static int is_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* ---- pbtxt ---------------------------------------------------------------------- */

static const pbtxt_node *child(const pbtxt_node *n, int i) {
    assert_true(i < n->n_children);
    return &n->children[i];
}

static void test_pbtxt_forms(void **state) {
    const char *text =
        "# a comment\n"
        "name: \"m\"  # trailing comment\n"
        "max_batch_size: -8, ratio: 1.5e-3; hex: 0x1F\n"
        "flag: true enum: TYPE_FP32 neg: -inf\n"
        "dims: [ 1, -1, 3 ]\n"
        "empty: []\n"
        "msg { a: 1 }\n"
        "msg2: { b: 'x' }\n"
        "angle < c: 2 >\n"
        "input [ { name: \"i0\" }, < name: \"i1\" > ]\n"
        "s: \"tab\\there\\n\\\"q\\\" \\x41\\101\\u00e9\\U0001F600\" ' joined' \"\"\n"
        "nested { a { b { c: 1 } } }\n";
    size_t n = strlen(text);
    char *copy = exact_copy(text, n);
    pbtxt_node *root;
    char err[256];
    assert_int_equal(pbtxt_parse(copy, n, "t.pbtxt", &root, err, sizeof err), KILN_OK);
    free(copy);
    assert_int_equal(root->type, PBTXT_MESSAGE);
    const char *names[] = {"name", "max_batch_size", "ratio", "hex", "flag", "enum", "neg", "dims", "dims",
                           "dims", "msg", "msg2", "angle", "input", "input", "s", "nested"};
    int count = (int)(sizeof names / sizeof *names);
    assert_int_equal(root->n_children, count);
    for (int i = 0; i < count; i++) assert_string_equal(child(root, i)->name, names[i]);
    assert_int_equal(child(root, 0)->type, PBTXT_STRING);
    assert_string_equal(child(root, 0)->text, "m");
    assert_int_equal(child(root, 0)->line, 2);
    assert_int_equal(child(root, 0)->col, 1);
    assert_int_equal(child(root, 0)->vcol, 7);
    assert_int_equal(child(root, 1)->type, PBTXT_NUMBER);
    assert_string_equal(child(root, 1)->text, "-8");
    assert_string_equal(child(root, 2)->text, "1.5e-3");
    assert_int_equal(child(root, 2)->line, 3);
    assert_int_equal(child(root, 2)->col, 21);
    assert_string_equal(child(root, 3)->text, "0x1F");
    assert_int_equal(child(root, 4)->type, PBTXT_IDENT);
    assert_string_equal(child(root, 4)->text, "true");
    assert_string_equal(child(root, 5)->text, "TYPE_FP32");
    assert_int_equal(child(root, 6)->type, PBTXT_NUMBER);
    assert_string_equal(child(root, 6)->text, "-inf");
    assert_string_equal(child(root, 7)->text, "1");
    assert_string_equal(child(root, 8)->text, "-1");
    assert_string_equal(child(root, 9)->text, "3");
    assert_int_equal(child(root, 9)->line, 5); /* list entries keep the field's position */
    const pbtxt_node *msg = child(root, 10);
    assert_int_equal(msg->type, PBTXT_MESSAGE);
    assert_int_equal(msg->n_children, 1);
    assert_string_equal(child(msg, 0)->name, "a");
    assert_string_equal(child(child(root, 11), 0)->text, "x");
    assert_string_equal(child(child(root, 12), 0)->name, "c");
    assert_string_equal(child(child(root, 13), 0)->text, "i0");
    assert_string_equal(child(child(root, 14), 0)->text, "i1");
    const pbtxt_node *s = child(root, 15);
    const char want[] = "tab\there\n\"q\" AA\xC3\xA9\xF0\x9F\x98\x80 joined";
    assert_int_equal(s->len, sizeof want - 1);
    assert_memory_equal(s->text, want, sizeof want - 1);
    const pbtxt_node *c = child(child(child(child(root, 16), 0), 0), 0);
    assert_string_equal(c->name, "c");
    assert_int_equal(c->line, 12);
    pbtxt_free(root);

    /* empty input, only comments, a byte order mark */
    assert_int_equal(pbtxt_parse("", 0, "e", &root, err, sizeof err), KILN_OK);
    assert_int_equal(root->n_children, 0);
    pbtxt_free(root);
    assert_int_equal(pbtxt_parse("# x\n  # y", 9, "e", &root, err, sizeof err), KILN_OK);
    assert_int_equal(root->n_children, 0);
    pbtxt_free(root);
    assert_int_equal(pbtxt_parse("\xEF\xBB\xBF" "a: 1", 7, "e", &root, err, sizeof err), KILN_OK);
    assert_int_equal(root->n_children, 1);
    pbtxt_free(root);
    /* an embedded NUL in a string is kept with its length */
    assert_int_equal(pbtxt_parse("a: \"x\\0y\"", 9, "e", &root, err, sizeof err), KILN_OK);
    assert_int_equal(child(root, 0)->len, 3);
    assert_int_equal(child(root, 0)->text[1], '\0');
    pbtxt_free(root);
}

static void test_pbtxt_errors(void **state) {
    static const struct {
        const char *text, *where, *msg;
    } cases[] = {
        {"a: \"abc", "p:1:4:", "unterminated string"},
        {"a: 'abc\"", "p:1:4:", "unterminated string"},
        {"a: \"ab\ncd\"", "p:1:7:", "newline in a string"},
        {"a: \"\\q\"", "p:1:5:", "unknown escape \\q"},
        {"a: \"\\x\"", "p:1:5:", "\\x needs a hex digit"},
        {"a: \"\\u12\"", "p:1:5:", "\\u needs 4 hex digits"},
        {"a: \"\\uD800\"", "p:1:5:", "not a Unicode code point"},
        {"a: \"\\777\"", "p:1:5:", "above \\377"},
        {"a: \"\\", "p:1:4:", "unterminated string"},
        {"m {\n  a: 1\n", "p:1:3:", "message 'm' is not closed"},
        {"m < a: 1 }", "p:1:10:", "closed by another bracket"},
        {"a: 1 }", "p:1:6:", "no message is open"},
        {"a 1", "p:1:3:", "expected ':' or '{' after the field name"},
        {"a", "p:1:2:", "the input ends after the field name"},
        {"a:", "p:1:3:", "the input ends where its value should be"},
        {"a: }", "p:1:4:", "expected a value, found '}'"},
        {"a [1, 2]", "p:1:1:", "a list of values needs ':'"},
        {"a: [1, 2", "p:1:4:", "unterminated list"},
        {"a: [1 2]", "p:1:7:", "expected ',' or ']' in a list, found '2'"},
        {"a: [1,]", "p:1:7:", "expected a value, found ']'"},
        {"[ext.field]: 1", "p:1:1:", "extension and Any fields"},
        {"a: - 1", "p:1:4:", "'-' is not followed by a number"},
        {"1: 2", "p:1:1:", "expected a field name, found '1'"},
        {"a: 1\n\x01", "p:2:1:", "expected a field name, found byte 0x01"},
        {"a: @", "p:1:4:", "expected a value, found '@'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i].text);
        char *copy = exact_copy(cases[i].text, n);
        pbtxt_node *root = (pbtxt_node *)1;
        char err[256];
        kiln_status st = pbtxt_parse(copy, n, "p", &root, err, sizeof err);
        free(copy);
        if (st != KILN_E_FORMAT) print_error("case %zu (%s): status %d\n", i, cases[i].text, st);
        assert_int_equal(st, KILN_E_FORMAT);
        assert_null(root);
        assert_contains(err, cases[i].where);
        assert_contains(err, cases[i].msg);
    }
}

/* Nesting to PBTXT_MAX_DEPTH parses; one more is an error, however deep the
 * input goes (no stack blowup on a million brackets). */
static void test_pbtxt_depth(void **state) {
    size_t deep = 1000000;
    char *text = malloc(deep * 4 + 16);
    assert_non_null(text);
    char err[256];
    pbtxt_node *root;
    for (int depth = PBTXT_MAX_DEPTH; depth <= PBTXT_MAX_DEPTH + 1; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++) n += (size_t)sprintf(text + n, "a{");
        for (int i = 0; i < depth; i++) text[n++] = '}';
        kiln_status st = pbtxt_parse(text, n, "d", &root, err, sizeof err);
        if (depth == PBTXT_MAX_DEPTH) {
            assert_int_equal(st, KILN_OK);
            pbtxt_free(root);
        } else {
            assert_int_equal(st, KILN_E_FORMAT);
            assert_contains(err, "nested deeper than 64");
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < deep; i++) text[n++] = 'a', text[n++] = '{';
    assert_int_equal(pbtxt_parse(text, n, "d", &root, err, sizeof err), KILN_E_FORMAT);
    assert_contains(err, "d:1:130:"); /* at the 65th { */
    n = 0;
    for (size_t i = 0; i < deep; i++) text[n++] = 'a', text[n++] = ':', text[n++] = '[', text[n++] = '{';
    assert_int_equal(pbtxt_parse(text, n, "d", &root, err, sizeof err), KILN_E_FORMAT);
    assert_contains(err, "nested deeper than 64");
    /* and no more than PBTXT_MAX_NODES fields in all */
    n = (size_t)sprintf(text, "a: [0");
    for (size_t i = 0; i < (size_t)PBTXT_MAX_NODES; i++) text[n++] = ',', text[n++] = '0';
    text[n++] = ']';
    assert_int_equal(pbtxt_parse(text, n, "d", &root, err, sizeof err), KILN_E_FORMAT);
    assert_contains(err, "d:1:1: more than 1048576 fields and values in all");
    assert_int_equal(pbtxt_parse(text, n - 3, "d", &root, err, sizeof err), KILN_E_FORMAT); /* unterminated */
    text[n - 3] = ']';
    assert_int_equal(pbtxt_parse(text, n - 2, "d", &root, err, sizeof err), KILN_OK); /* exactly the cap */
    assert_int_equal(root->n_children, PBTXT_MAX_NODES);
    pbtxt_free(root);
    free(text);
}

/* ---- a realistic configuration ---------------------------------------------------------- */

static const char full_config[] =
    "# ResNet-style model served by kiln\n"
    "name: \"resnet\"\n"
    "platform: \"onnxruntime_onnx\"\n"
    "backend: \"onnxruntime\"\n"
    "max_batch_size: 8\n"
    "default_model_filename: \"resnet50.onnx\"\n"
    "version_policy: { specific: { versions: [1, 3] } }\n"
    "input [\n"
    "  {\n"
    "    name: \"data\"\n"
    "    data_type: TYPE_FP32\n"
    "    format: FORMAT_NONE\n"
    "    dims: [ 3, 224, 224 ]\n"
    "  },\n"
    "  {\n"
    "    name: 'mask'\n"
    "    data_type: TYPE_BOOL\n"
    "    dims: [ -1 ]\n"
    "    optional: true\n"
    "  }\n"
    "]\n"
    "input {\n"
    "  name: \"scalar_in\"\n"
    "  data_type: TYPE_INT64\n"
    "  dims: 1\n"
    "  reshape: { shape: [ ] }\n"
    "}\n"
    "output [\n"
    "  {\n"
    "    name: \"probs\"\n"
    "    data_type: TYPE_FP32\n"
    "    dims: [ 1000 ]\n"
    "    label_filename: \"labels.txt\"\n"
    "  }\n"
    "]\n"
    "output <\n"
    "  name: \"feat\"\n"
    "  data_type: TYPE_FP16\n"
    "  dims: [ 2, 1024 ]\n"
    "  reshape { shape: [ 2048 ] }\n"
    ">\n"
    "dynamic_batching {\n"
    "  preferred_batch_size: [ 4, 8 ]\n"
    "  max_queue_delay_microseconds: 100\n"
    "  preserve_ordering: false\n"
    "  priority_levels: 0\n"
    "  default_queue_policy {\n"
    "    timeout_action: DELAY\n"
    "    default_timeout_microseconds: 5000\n"
    "    allow_timeout_override: true\n"
    "    max_queue_size: 64\n"
    "  }\n"
    "}\n"
    "instance_group [\n"
    "  { name: \"cpu_a\" count: 2 kind: KIND_CPU },\n"
    "  { count: 1, kind: KIND_CPU, passive: false, host_policy: \"\" }\n"
    "]\n"
    "parameters { key: \"precision\" value: { string_value: \"bf16\" } }\n"
    "parameters: [ { key: \"threads\", value { string_value: \"3\" } },\n"
    "  { key: \"note\" value: { string_value: \"tab\\there \\\"q\\\" \\x41\\101\" } } ]\n"
    "model_warmup [\n"
    "  {\n"
    "    name: \"zeros\"\n"
    "    batch_size: 2\n"
    "    inputs {\n"
    "      key: \"data\"\n"
    "      value: { data_type: TYPE_FP32 dims: [3, 224, 224] zero_data: true }\n"
    "    }\n"
    "    inputs {\n"
    "      key: \"scalar_in\"\n"
    "      value: { data_type: TYPE_INT64 dims: [1] random_data: true }\n"
    "    }\n"
    "    count: 3\n"
    "  },\n"
    "  {\n"
    "    name: \"file\"\n"
    "    inputs [{ key: \"data\" value: { data_type: TYPE_FP32 dims: [3, 224, 224]\n"
    "              input_data_file: \"data.bin\" } }]\n"
    "  }\n"
    "]\n"
    "model_transaction_policy { decoupled: false }\n"
    "response_cache { enable: false }\n"
    "optimization { }\n"
    "batch_input [ ]\n"
    "runtime: \"\"\n";

static void test_parse_full(void **state) {
    serve_model_config cfg;
    char err[512];
    kiln_status st = parse_text(full_config, &cfg, err, sizeof err);
    if (st) print_error("%s\n", err);
    assert_int_equal(st, KILN_OK);
    assert_string_equal(cfg.name, "resnet");
    assert_string_equal(cfg.platform, "onnxruntime_onnx");
    assert_string_equal(cfg.backend, "onnxruntime");
    assert_string_equal(cfg.default_model_filename, "resnet50.onnx");
    assert_int_equal(cfg.max_batch_size, 8);
    assert_true(cfg.max_batch_size_given);
    assert_int_equal(cfg.version_policy, SERVE_VERSIONS_SPECIFIC);
    assert_int_equal(cfg.n_versions, 2);
    assert_int_equal(cfg.versions[0], 1);
    assert_int_equal(cfg.versions[1], 3);

    assert_int_equal(cfg.n_inputs, 3);
    assert_string_equal(cfg.inputs[0].name, "data");
    assert_int_equal(cfg.inputs[0].dtype, KILN_DTYPE_F32);
    assert_int_equal(cfg.inputs[0].ndim, 3);
    assert_int_equal(cfg.inputs[0].dims[2], 224);
    assert_false(cfg.inputs[0].optional);
    assert_false(cfg.inputs[0].has_reshape);
    assert_string_equal(cfg.inputs[1].name, "mask");
    assert_int_equal(cfg.inputs[1].dtype, KILN_DTYPE_BOOL);
    assert_int_equal(cfg.inputs[1].dims[0], -1);
    assert_true(cfg.inputs[1].optional);
    assert_int_equal(cfg.inputs[2].dtype, KILN_DTYPE_I64);
    assert_int_equal(cfg.inputs[2].ndim, 1);
    assert_true(cfg.inputs[2].has_reshape);
    assert_int_equal(cfg.inputs[2].reshape_ndim, 0);

    assert_int_equal(cfg.n_outputs, 2);
    assert_string_equal(cfg.outputs[0].label_filename, "labels.txt");
    assert_int_equal(cfg.outputs[0].dims[0], 1000);
    assert_int_equal(cfg.outputs[1].dtype, KILN_DTYPE_F16);
    assert_true(cfg.outputs[1].has_reshape);
    assert_int_equal(cfg.outputs[1].reshape_ndim, 1);
    assert_int_equal(cfg.outputs[1].reshape[0], 2048);
    assert_null(cfg.outputs[1].label_filename);

    assert_true(cfg.dynamic_batching);
    assert_int_equal(cfg.n_preferred, 2);
    assert_int_equal(cfg.preferred_batch_sizes[0], 4);
    assert_int_equal(cfg.preferred_batch_sizes[1], 8);
    assert_int_equal(cfg.max_queue_delay_us, 100);
    assert_int_equal(cfg.queue_policy.timeout_action_delay, 1);
    assert_int_equal(cfg.queue_policy.default_timeout_us, 5000);
    assert_true(cfg.queue_policy.allow_timeout_override);
    assert_int_equal(cfg.queue_policy.max_queue_size, 64);

    assert_int_equal(cfg.n_instance_groups, 2);
    assert_int_equal(cfg.instance_count, 3);
    assert_string_equal(cfg.instance_kind, "KIND_CPU");
    assert_string_equal(cfg.instance_groups[0].name, "cpu_a");
    assert_null(cfg.instance_groups[1].name);

    assert_int_equal(cfg.n_parameters, 3);
    assert_string_equal(cfg.param_keys[0], "precision");
    assert_string_equal(cfg.param_values[0], "bf16");
    assert_int_equal(cfg.precision, KILN_PRECISION_BF16);
    assert_int_equal(cfg.threads, 3);
    assert_string_equal(cfg.param_keys[2], "note");
    assert_string_equal(cfg.param_values[2], "tab\there \"q\" AA");

    assert_int_equal(cfg.n_warmup, 2);
    assert_string_equal(cfg.warmup[0].name, "zeros");
    assert_int_equal(cfg.warmup[0].batch_size, 2);
    assert_int_equal(cfg.warmup[0].count, 3);
    assert_int_equal(cfg.warmup[0].n_inputs, 2);
    assert_string_equal(cfg.warmup[0].inputs[0].name, "data");
    assert_int_equal(cfg.warmup[0].inputs[0].data, SERVE_WARMUP_ZERO);
    assert_int_equal(cfg.warmup[0].inputs[0].ndim, 3);
    assert_int_equal(cfg.warmup[0].inputs[1].data, SERVE_WARMUP_RANDOM);
    assert_int_equal(cfg.warmup[0].inputs[1].dtype, KILN_DTYPE_I64);
    assert_int_equal(cfg.warmup[1].batch_size, 1);
    assert_int_equal(cfg.warmup[1].count, 1);
    assert_int_equal(cfg.warmup[1].inputs[0].data, SERVE_WARMUP_FILE);
    assert_string_equal(cfg.warmup[1].inputs[0].input_data_file, "data.bin");
    serve_config_free(&cfg);
    assert_true(is_zero(&cfg, sizeof cfg));
}

static void test_parse_defaults_and_forms(void **state) {
    serve_model_config cfg, init;
    char err[512];
    /* an empty file parses to serve_config_init's defaults */
    assert_int_equal(serve_config_parse("", 0, "e", &cfg, err, sizeof err), KILN_OK);
    serve_config_init(&init);
    assert_memory_equal(&cfg, &init, sizeof cfg);
    assert_null(cfg.name);
    assert_null(cfg.default_model_filename);
    assert_int_equal(cfg.max_batch_size, 0);
    assert_false(cfg.max_batch_size_given);
    assert_int_equal(cfg.instance_count, 1);
    assert_string_equal(cfg.instance_kind, "KIND_CPU");
    assert_int_equal(cfg.version_policy, SERVE_VERSIONS_LATEST);
    assert_int_equal(cfg.latest_num_versions, 1);
    assert_int_equal(cfg.precision, KILN_PRECISION_FP32);
    assert_int_equal(cfg.threads, 0);
    serve_config_free(&cfg);

    /* repeated entries, list forms and their mixtures all read the same */
    const char *a = "input { name: \"x\" dims: 1 dims: 2 } input { name: \"y\" dims: 3 }\n"
                    "version_policy { latest { num_versions: 2 } }";
    const char *b = "input: [ { name: \"x\", dims: [1, 2] }, { name: \"y\"; dims: [3] } ],\n"
                    "version_policy: < latest: < num_versions: 0x2 > >";
    for (int k = 0; k < 2; k++) {
        assert_int_equal(parse_text(k ? b : a, &cfg, err, sizeof err), KILN_OK);
        assert_int_equal(cfg.n_inputs, 2);
        assert_int_equal(cfg.inputs[0].ndim, 2);
        assert_int_equal(cfg.inputs[0].dims[1], 2);
        assert_string_equal(cfg.inputs[1].name, "y");
        assert_int_equal(cfg.inputs[1].dims[0], 3);
        assert_int_equal(cfg.inputs[0].dtype, KILN_DTYPE_UNDEFINED); /* not given: completion fills it */
        assert_int_equal(cfg.latest_num_versions, 2);
        serve_config_free(&cfg);
    }
    /* enums by number, booleans as 1/True, all-versions policy, GPU groups */
    assert_int_equal(parse_text("input { name: \"x\" data_type: 11 optional: True }\n"
                                "version_policy: { all: {} }\n"
                                "instance_group { kind: KIND_GPU count: 3 gpus: [0] }\n"
                                "instance_group { kind: 1 }\n"
                                "backend: \"kiln\"\n"
                                "parameters { key: \"intra_op_thread_count\" value { string_value: \"5\" } }",
                                &cfg, err, sizeof err),
                     KILN_OK);
    assert_int_equal(cfg.inputs[0].dtype, KILN_DTYPE_F32);
    assert_true(cfg.inputs[0].optional);
    assert_int_equal(cfg.version_policy, SERVE_VERSIONS_ALL);
    assert_string_equal(cfg.instance_kind, "KIND_GPU");
    assert_int_equal(cfg.instance_count, 4);
    assert_int_equal(cfg.instance_groups[0].n_gpus, 1);
    assert_string_equal(cfg.backend, "kiln");
    assert_int_equal(cfg.threads, 5);
    serve_config_free(&cfg);
    /* a group without kind is KIND_AUTO (Triton's default) */
    assert_int_equal(parse_text("instance_group [{ count: 2 }]", &cfg, err, sizeof err), KILN_OK);
    assert_string_equal(cfg.instance_kind, "KIND_AUTO");
    assert_int_equal(cfg.instance_count, 2);
    serve_config_free(&cfg);
    /* harmless defaults of fields kiln does not implement are accepted */
    assert_int_equal(parse_text("model_transaction_policy { }\n"
                                "response_cache { enable: false }\n"
                                "model_operations { } model_repository_agents { } model_metrics { }\n"
                                "batch_output [] cc_model_filenames [] metric_tags []\n"
                                "dynamic_batching { default_priority_level: 0 }\n"
                                "input { name: \"x\" is_shape_tensor: false allow_ragged_batch: false\n"
                                "        is_non_linear_format_io: false format: FORMAT_NONE }\n"
                                "output { name: \"y\" label_filename: \"\" }",
                                &cfg, err, sizeof err),
                     KILN_OK);
    assert_true(cfg.dynamic_batching);
    assert_null(cfg.outputs[0].label_filename);
    serve_config_free(&cfg);
    assert_int_equal(parse_text("max_batch_size: 4 dynamic_batching { priority_levels: 3 default_priority_level: 2 }",
                                &cfg, err, sizeof err),
                     KILN_OK);
    assert_int_equal(cfg.priority_levels, 3);
    assert_int_equal(cfg.default_priority_level, 2);
    assert_int_equal(cfg.n_level_policies, 0);
    cJSON *pj = serve_config_to_json(&cfg);
    char *ptext = cJSON_PrintUnformatted(pj);
    assert_non_null(strstr(ptext, "\"priority_levels\":3,\"default_priority_level\":2"));
    free(ptext);
    cJSON_Delete(pj);
    serve_config_free(&cfg);
    /* a queue policy per level; the levels without one take default_queue_policy */
    assert_int_equal(parse_text("max_batch_size: 4 dynamic_batching { priority_levels: 3 default_priority_level: 2\n"
                                "  default_queue_policy { max_queue_size: 9 }\n"
                                "  priority_queue_policy { key: 1 value { max_queue_size: 1 timeout_action: DELAY\n"
                                "    default_timeout_microseconds: 70 } } }",
                                &cfg, err, sizeof err),
                     KILN_OK);
    assert_int_equal(cfg.n_level_policies, 1);
    assert_int_equal(serve_config_queue_policy(&cfg, 1)->max_queue_size, 1);
    assert_int_equal(serve_config_queue_policy(&cfg, 1)->timeout_action_delay, 1);
    assert_int_equal(serve_config_queue_policy(&cfg, 1)->default_timeout_us, 70);
    assert_int_equal(serve_config_queue_policy(&cfg, 2)->max_queue_size, 9);
    assert_int_equal(serve_config_queue_policy(&cfg, 3)->max_queue_size, 9);
    pj = serve_config_to_json(&cfg);
    ptext = cJSON_PrintUnformatted(pj);
    assert_non_null(strstr(ptext, "\"priority_queue_policy\":{\"1\":{\"timeout_action\":\"DELAY\","
                                  "\"default_timeout_microseconds\":70,\"allow_timeout_override\":false,"
                                  "\"max_queue_size\":1}}"));
    serve_config_free(&cfg);
    /* and the JSON form reads back to the same */
    assert_int_equal(serve_config_parse_json(ptext, strlen(ptext), "req", &cfg, err, sizeof err), KILN_OK);
    assert_int_equal(cfg.n_level_policies, 1);
    assert_int_equal(serve_config_queue_policy(&cfg, 1)->max_queue_size, 1);
    assert_int_equal(serve_config_queue_policy(&cfg, 2)->max_queue_size, 9);
    free(ptext);
    cJSON_Delete(pj);
    serve_config_free(&cfg);
}

/* Every refusal: status, "PATH:LINE:COL:" and the words naming the field. */
static void test_parse_errors(void **state) {
    static const struct {
        const char *text;
        kiln_status st;
        const char *where, *msg;
    } cases[] = {
        /* unknown fields */
        {"nmae: \"x\"", KILN_E_FORMAT, ":1:1:", "unknown field 'nmae' (Triton's ModelConfig"},
        {"input { name: \"x\" dim: [1] }", KILN_E_FORMAT, ":1:19:", "input 'x': unknown field 'dim'"},
        {"input { name: \"x\" label_filename: \"l\" }", KILN_E_FORMAT, ":1:19:", "unknown field 'label_filename'"},
        {"output { name: \"y\" optional: true }", KILN_E_FORMAT, ":1:20:", "unknown field 'optional'"},
        {"dynamic_batching { max_delay: 1 }", KILN_E_FORMAT, ":1:20:", "unknown field 'max_delay'"},
        {"input { name: \"x\" reshape { dims: [1] } }", KILN_E_FORMAT, ":1:29:", "unknown field 'dims' in reshape"},
        {"version_policy { newest {} }", KILN_E_FORMAT, ":1:18:", "unknown field 'newest'"},
        {"parameters { key: \"a\" val { string_value: \"b\" } }", KILN_E_FORMAT, ":1:23:", "unknown field 'val'"},
        /* unsupported fields */
        {"sequence_batching { }", KILN_E_UNSUPPORTED, ":1:1:", "field 'sequence_batching' is not supported"},
        {"ensemble_scheduling { step [] }", KILN_E_UNSUPPORTED, ":1:1:", "'ensemble_scheduling' is not supported"},
        {"model_transaction_policy { decoupled: true }", KILN_E_UNSUPPORTED, ":1:28:", "'decoupled' is not supported"},
        {"response_cache { enable: true }", KILN_E_UNSUPPORTED, ":1:18:", "'enable' is not supported"},
        {"input { name: \"x\"\n format: FORMAT_NHWC dims: [2, 2] }", KILN_E_FORMAT, ":2:2:",
         "input 'x': FORMAT_NHWC needs 3 dims (without the batch dimension), not 2"},
        {"input { name: \"x\" format: FORMAT_NWC }", KILN_E_FORMAT, ":1:27:", "'FORMAT_NWC' is not a value"},
        {"platform: \"tensorrt_plan\"", KILN_E_UNSUPPORTED, ":1:11:", "kiln serves ONNX models"},
        {"platform: \"pytorch_libtorch\"", KILN_E_UNSUPPORTED, ":1:11:", "platform 'pytorch_libtorch'"},
        {"backend: \"python\"", KILN_E_UNSUPPORTED, ":1:10:", "backend 'python' is not supported: kiln serves ONNX"},
        {"batch_input [{ kind: BATCH_ELEMENT_COUNT }]", KILN_E_UNSUPPORTED, ":1:1:", "'batch_input'"},
        {"optimization { graph { level: 1 } }", KILN_E_UNSUPPORTED, ":1:16:", "optimization: field 'graph'"},
        {"instance_group { kind: KIND_MODEL }", KILN_E_UNSUPPORTED, ":1:18:", "'kind' is not supported"},
        {"instance_group { kind: KIND_GPU gpus: [0, 1] }", KILN_E_UNSUPPORTED, ":1:43:", "GPU 0 only, not GPU 1"},
        {"instance_group { rate_limiter { priority: 2 } }", KILN_E_UNSUPPORTED, ":1:18:", "'rate_limiter'"},
        {"instance_group { passive: true }", KILN_E_UNSUPPORTED, ":1:18:", "'passive'"},
        {"instance_group { host_policy: \"p\" }", KILN_E_UNSUPPORTED, ":1:18:", "'host_policy'"},
        {"instance_group { profile: \"0\" }", KILN_E_UNSUPPORTED, ":1:18:", "'profile'"},
        {"instance_group { kind: KIND_CPU }\ninstance_group { kind: KIND_GPU }", KILN_E_UNSUPPORTED, ":2:1:",
         "kind KIND_GPU differs"},
        {"max_batch_size: 4 dynamic_batching { priority_levels: 2 }", KILN_E_FORMAT, ":1:38:",
         "default_priority_level must be in 1..2 (priority_levels), it is 0"},
        {"max_batch_size: 4 dynamic_batching { priority_levels: 2 default_priority_level: 3 }", KILN_E_FORMAT,
         ":1:57:", "default_priority_level must be in 1..2"},
        {"max_batch_size: 4 dynamic_batching { default_priority_level: 1 }", KILN_E_FORMAT, ":1:38:",
         "default_priority_level 1 needs priority_levels >= 1"},
        {"max_batch_size: 4 dynamic_batching { preserve_ordering: true }", KILN_E_UNSUPPORTED, ":1:38:",
         "'preserve_ordering'"},
        {"max_batch_size: 4 dynamic_batching { priority_queue_policy { key: 1 value { } } }", KILN_E_FORMAT,
         ":1:67:", "priority_queue_policy names level 1, but priority_levels is 0"},
        {"max_batch_size: 4 dynamic_batching { priority_levels: 2 default_priority_level: 1\n"
         "  priority_queue_policy { key: 2 } priority_queue_policy { key: 2 } }", KILN_E_FORMAT, ":2:65:",
         "level 2 is given twice"},
        {"max_batch_size: 4 dynamic_batching { priority_levels: 2 default_priority_level: 1\n"
         "  priority_queue_policy { key: 0 value { max_queue_size: 1 } } }", KILN_E_FORMAT, ":2:32:",
         "outside [1, 2147483647]"},
        {"max_batch_size: 4 dynamic_batching { priority_levels: 2 default_priority_level: 1\n"
         "  priority_queue_policy { key: 1 value { timeout_action: WAIT } } }", KILN_E_FORMAT, ":2:58:",
         "'WAIT' is not a value of field 'timeout_action'"},
        {"input { name: \"x\" allow_ragged_batch: true }", KILN_E_UNSUPPORTED, ":1:19:", "'allow_ragged_batch'"},
        {"output { name: \"x\" is_shape_tensor: true }", KILN_E_UNSUPPORTED, ":1:20:", "'is_shape_tensor'"},
        {"input { name: \"x\" is_non_linear_format_io: true }", KILN_E_UNSUPPORTED, ":1:19:",
         "'is_non_linear_format_io'"},
        {"runtime: \"libtriton_onnxruntime.so\"", KILN_E_UNSUPPORTED, ":1:1:", "'runtime'"},
        {"cc_model_filenames { key: \"7.5\" value: \"m.plan\" }", KILN_E_UNSUPPORTED, ":1:1:", "'cc_model_filenames'"},
        {"metric_tags { key: \"a\" value: \"b\" }", KILN_E_UNSUPPORTED, ":1:1:", "'metric_tags'"},
        {"model_operations { op_library_filename: \"libx.so\" }", KILN_E_UNSUPPORTED, ":1:1:", "'model_operations'"},
        {"model_repository_agents { agents [{ name: \"checksum\" }] }", KILN_E_UNSUPPORTED, ":1:1:",
         "'model_repository_agents'"},
        /* bad enums */
        {"input { name: \"x\" data_type: TYPE_FLOAT32 }", KILN_E_FORMAT, ":1:30:",
         "'TYPE_FLOAT32' is not a value of field 'data_type' (expected one of TYPE_INVALID, TYPE_BOOL"},
        {"input { name: \"x\" data_type: \"TYPE_FP32\" }", KILN_E_FORMAT, ":1:30:", "enum name without quotes"},
        {"input { name: \"x\" data_type: 15 }", KILN_E_FORMAT, ":1:30:", "'15' is not a value"},
        {"instance_group { kind: KIND_TPU }", KILN_E_FORMAT, ":1:24:", "'KIND_TPU' is not a value of field 'kind'"},
        {"max_batch_size: 1 dynamic_batching { default_queue_policy { timeout_action: RETRY } }", KILN_E_FORMAT,
         ":1:77:", "'RETRY' is not a value of field 'timeout_action' (expected one of REJECT, DELAY)"},
        {"input { name: \"x\" optional: yes }", KILN_E_FORMAT, ":1:29:", "takes true or false, found 'yes'"},
        /* bad numbers */
        {"max_batch_size: 1.5", KILN_E_FORMAT, ":1:17:", "takes an integer, found '1.5'"},
        {"max_batch_size: -1", KILN_E_FORMAT, ":1:17:", "max_batch_size must be >= 0"},
        {"max_batch_size: \"8\"", KILN_E_FORMAT, ":1:17:", "takes an integer, found string '8'"},
        {"max_batch_size: 99999999999", KILN_E_FORMAT, ":1:17:", "outside [0, 2147483647]"},
        {"max_batch_size: 99999999999999999999999", KILN_E_FORMAT, ":1:17:", "outside"},
        {"max_batch_size: 08", KILN_E_FORMAT, ":1:17:", "takes an integer, found '08'"},
        {"max_batch_size { }", KILN_E_FORMAT, ":1:16:", "takes an integer, not a message"},
        {"input { name: \"x\" dims: [3, 0] }", KILN_E_FORMAT, ":1:29:", "does not allow 0"},
        {"input { name: \"x\" dims: [-2] }", KILN_E_FORMAT, ":1:26:", "-2 is not a dimension"},
        {"input { name: \"x\" dims: [1,1,1,1,1,1,1,1,1,1,1,1,1] }", KILN_E_FORMAT, ":1:50:", "more than 12 dimensions"},
        {"instance_group { count: 0 }", KILN_E_FORMAT, ":1:25:", "'count' is 0, outside [1, 1024]"},
        {"version_policy { latest { num_versions: 0 } }", KILN_E_FORMAT, ":1:41:", "outside [1,"},
        {"version_policy { specific { versions: -1 } }", KILN_E_FORMAT, ":1:39:", "outside [0,"},
        /* duplicates and choices */
        {"max_batch_size: 1\nmax_batch_size: 2", KILN_E_FORMAT, ":2:1:", "'max_batch_size' is given twice"},
        {"input { name: \"a\" name: \"b\" }", KILN_E_FORMAT, ":1:19:", "'name' is given twice"},
        {"input { name: \"a\" } input { name: \"a\" }", KILN_E_FORMAT, ":1:21:", "input 'a' is configured twice"},
        {"version_policy { all {} latest {} }", KILN_E_FORMAT, ":1:25:", "takes one of latest, all or specific"},
        {"version_policy { specific { } }", KILN_E_FORMAT, ":1:18:", "lists no versions"},
        {"max_batch_size: 2 dynamic_batching {}\nsequence_batching {}", KILN_E_FORMAT, ":2:1:", "are one choice"},
        /* batching rules */
        {"max_batch_size: 4 dynamic_batching { preferred_batch_size: [2, 8] }", KILN_E_FORMAT, ":1:64:",
         "preferred_batch_size 8 is above max_batch_size 4"},
        {"dynamic_batching { preferred_batch_size: 0 }", KILN_E_FORMAT, ":1:42:", "outside [1,"},
        {"dynamic_batching { }\nmax_batch_size: 0", KILN_E_FORMAT, ":1:1:", "dynamic_batching needs max_batch_size > 0"},
        /* reshape */
        {"input { name: \"x\" dims: [4] reshape { shape: [3] } }", KILN_E_FORMAT, ":1:29:",
         "dims and reshape hold different numbers of elements"},
        {"input { name: \"x\" dims: [2, -1] reshape { shape: [-1, 2] } }", KILN_E_FORMAT, ":1:33:",
         "between their -1 dimensions"},
        {"input { name: \"x\" dims: [-1, -1] reshape { shape: [-1] } }", KILN_E_FORMAT, ":1:34:",
         "different numbers of -1 dimensions"},
        {"input { name: \"x\" reshape { shape: [1] } }", KILN_E_FORMAT, ":1:19:", "reshape needs 'dims'"},
        {"max_batch_size: 0 input { name: \"x\" dims: [1] reshape { shape: [] } }", KILN_E_FORMAT, ":1:47:",
         "an empty reshape (a scalar) needs max_batch_size > 0"},
        /* names and files */
        {"input { dims: [1] }", KILN_E_FORMAT, ":1:1:", "input #1: must specify 'name'"},
        {"input { name: \"a\\0b\" }", KILN_E_FORMAT, ":1:15:", "holds a NUL byte"},
        {"input { name: \"a\\xffb\" }", KILN_E_FORMAT, ":1:15:", "field 'name' is not valid UTF-8"},
        {"input { name: \"\\xc0\\xaf\" }", KILN_E_FORMAT, ":1:15:", "not valid UTF-8"}, /* overlong '/' */
        {"input { name: \"\\xed\\xa0\\x80\" }", KILN_E_FORMAT, ":1:15:", "not valid UTF-8"}, /* a surrogate */
        {"output { name: \"y\" label_filename: \"../../etc/passwd\" }", KILN_E_FORMAT, ":1:36:",
         "must be a path relative to its directory"},
        {"default_model_filename: \"/abs/model.onnx\"", KILN_E_FORMAT, ":1:25:", "'default_model_filename' must be a path"},
        {"instance_group { kind: KIND_CPU gpus: 0 }", KILN_E_FORMAT, ":1:33:", "gpus cannot be given for KIND_CPU"},
        /* parameters */
        {"parameters { key: \"precision\" value: { string_value: \"fp64\" } }", KILN_E_FORMAT, ":1:54:",
         "parameters 'precision'"},
        {"parameters { key: \"threads\" value: { string_value: \"0\" } }", KILN_E_FORMAT, ":1:52:",
         "'0' is not a positive integer"},
        {"parameters { key: \"threads\" value: { string_value: \"2x\" } }", KILN_E_FORMAT, ":1:52:",
         "'2x' is not a positive integer"},
        {"parameters { key: \"threads\" value { string_value: \"2\" } }\n"
         "parameters { key: \"intra_op_thread_count\" value { string_value: \"4\" } }", KILN_E_FORMAT, ":2:65:",
         "contradicts the thread count already given (2)"},
        {"parameters { key: \"a\" }\nparameters { key: \"a\" }", KILN_E_FORMAT, ":2:14:", "key 'a' is given twice"},
        {"parameters { value { string_value: \"v\" } }", KILN_E_FORMAT, ":1:1:", "an entry without 'key'"},
        {"parameters { key: \"a\" value { string_value: \"b\" string_value: \"c\" } }", KILN_E_FORMAT, ":1:49:",
         "'string_value' is given twice"},
        /* warm-up */
        {"model_warmup { inputs { key: \"x\" value: { data_type: TYPE_FP32 dims: [1] } } }", KILN_E_FORMAT,
         ":1:34:", "must give zero_data, random_data or input_data_file"},
        {"model_warmup { inputs { key: \"x\" value: { dims: [1] zero_data: true } } }", KILN_E_FORMAT, ":1:34:",
         "must specify 'data_type'"},
        {"model_warmup { inputs { key: \"x\" value: { data_type: TYPE_FP32 zero_data: false } } }", KILN_E_FORMAT,
         ":1:75:", "'zero_data: false' chooses no data"},
        {"model_warmup { inputs { key: \"x\" value: { data_type: TYPE_FP32 zero_data: true random_data: true } } }",
         KILN_E_FORMAT, ":1:80:", "'zero_data' and 'random_data' are one choice"},
        {"model_warmup { name: \"w\" inputs { key: \"x\" value: { data_type: TYPE_FP32 input_data_file: \"/x\" } } }",
         KILN_E_FORMAT, ":1:91:", "must be a path relative"},
        {"model_warmup { inputs { value: { data_type: TYPE_FP32 zero_data: true } } }", KILN_E_FORMAT, ":1:16:",
         "an entry without 'key'"},
        {"model_warmup { inputs { key: \"x\" value { data_type: TYPE_FP32 zero_data: true } }\n"
         "               inputs { key: \"x\" value { data_type: TYPE_FP32 zero_data: true } } }",
         KILN_E_FORMAT, ":2:30:", "key 'x' is given twice"},
        {"max_batch_size: 2 model_warmup { batch_size: 3 }", KILN_E_FORMAT, ":1:46:",
         "batch_size 3 is above max_batch_size 2"},
        {"max_batch_size: 0 model_warmup { name: \"w\" batch_size: 2 }", KILN_E_FORMAT, ":1:56:",
         "model_warmup 'w': batch_size 2 is above 1"},
        {"model_warmup { batch_size: 0 }", KILN_E_FORMAT, ":1:28:", "outside [1,"},
        {"model_warmup { inputs { key: \"x\" value: { data_type: TYPE_FP32 dims: [-1] zero_data: true } } }",
         KILN_E_FORMAT, ":1:71:", "outside [0,"},
        /* syntax errors come through with the path */
        {"input { name: \"x\"", KILN_E_FORMAT, "m/config.pbtxt:1:7:", "message 'input' is not closed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        serve_model_config cfg;
        char err[512];
        memset(&cfg, 0x5a, sizeof cfg);
        kiln_status st = parse_text(cases[i].text, &cfg, err, sizeof err);
        if (st != cases[i].st) print_error("case %zu (%s): status %d, %s\n", i, cases[i].text, st, err);
        assert_int_equal(st, cases[i].st);
        assert_true(is_zero(&cfg, sizeof cfg));
        assert_contains(err, "m/config.pbtxt:");
        assert_contains(err, cases[i].where);
        assert_contains(err, cases[i].msg);
    }
}

/* Every prefix of the full file, and the file with any one byte replaced by
 * a troublesome character, parses or fails cleanly (ASan watches the reads:
 * each buffer holds exactly its bytes). */
static void test_prefixes_and_corruptions(void **state) {
    size_t len = strlen(full_config);
    int ok = 0, failed = 0;
    char err[512];
    for (size_t n = 0; n <= len; n++) {
        char *copy = exact_copy(full_config, n);
        serve_model_config cfg;
        kiln_status st = serve_config_parse(copy, n, "m/config.pbtxt", &cfg, err, sizeof err);
        free(copy);
        if (st == KILN_OK) {
            ok++;
            serve_config_free(&cfg);
        } else {
            failed++;
            assert_true(st == KILN_E_FORMAT || st == KILN_E_UNSUPPORTED);
            assert_true(is_zero(&cfg, sizeof cfg));
            assert_true(!strncmp(err, "m/config.pbtxt:", 15));
        }
    }
    assert_true(ok > 10); /* prefixes ending between fields are whole configurations */
    assert_true(failed > (int)len / 2);
    static const char bad[] = {'{', '}', '<', '>', '[', ']', '"', '\'', ':', ',', '#', '\\', '-', '\n', '\0', 'x', '\xff'};
    char *copy = malloc(len);
    assert_non_null(copy);
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < sizeof bad; k++) {
            memcpy(copy, full_config, len);
            copy[i] = bad[k];
            serve_model_config cfg;
            kiln_status st = serve_config_parse(copy, len, "c", &cfg, err, sizeof err);
            if (st == KILN_OK) serve_config_free(&cfg);
            else assert_true(is_zero(&cfg, sizeof cfg) && err[0]);
        }
    free(copy);
}

/* ---- completion against built graphs ------------------------------------------------- */

/* inputs named in[i] (dtype f32, shape shapes[i] with -1 dynamic, named "N"),
 * each through Relu to out<i>; or, with add, in[0] + in[1] -> out0. */
static kiln_graph *relu_graph(int n, const char *const *names, const int *ndims, const int64_t (*shapes)[4],
                              int add) {
    kiln_graph *g;
    assert_int_equal(kiln_graph_create(17, &g), KILN_OK);
    for (int i = 0; i < n; i++) {
        const char *dn[4] = {"N", NULL, NULL, NULL};
        assert_int_equal(kiln_graph_add_input(g, names[i], KILN_DTYPE_F32, ndims[i], shapes[i], dn), KILN_OK);
    }
    char out[32];
    if (add) {
        const char *ins[2] = {names[0], names[1]}, *outs[1] = {"out0"};
        assert_int_equal(kiln_graph_add_node(g, "Add", NULL, 2, ins, 1, outs, NULL), KILN_OK);
        assert_int_equal(kiln_graph_add_output(g, "out0"), KILN_OK);
    } else {
        for (int i = 0; i < n; i++) {
            snprintf(out, sizeof out, "out%d", i);
            const char *ins[1] = {names[i]}, *outs[1] = {out};
            assert_int_equal(kiln_graph_add_node(g, "Relu", NULL, 1, ins, 1, outs, NULL), KILN_OK);
            assert_int_equal(kiln_graph_add_output(g, out), KILN_OK);
        }
    }
    assert_int_equal(kiln_graph_finish(g), KILN_OK);
    assert_int_equal(kiln_graph_infer_shapes(g), KILN_OK);
    return g;
}

static kiln_status complete_text(const char *text, const kiln_graph *g, serve_model_config *cfg, char *err,
                                 size_t errlen) {
    kiln_status st = parse_text(text, cfg, err, errlen);
    if (st) {
        print_error("%s\n", err);
        return st;
    }
    return serve_config_complete(cfg, g, "m", err, errlen);
}

static void test_complete_dynamic_batch(void **state) {
    const char *names[] = {"x"};
    int nd[] = {2};
    const int64_t shapes[][4] = {{-1, 3}};
    kiln_graph *g = relu_graph(1, names, nd, shapes, 0);
    kiln_value_info vi;
    assert_int_equal(kiln_graph_output_info(g, 0, &vi), KILN_OK); /* how a dynamic dim reads */
    assert_int_equal(vi.ndim, 2);
    assert_true(vi.dims[0] < 0);
    assert_int_equal(vi.dims[1], 3);

    serve_model_config cfg;
    char err[512];
    /* no config.pbtxt: everything from the model, batching on (Triton's default 4) */
    serve_config_init(&cfg);
    assert_int_equal(serve_config_complete(&cfg, g, "m", err, sizeof err), KILN_OK);
    assert_string_equal(cfg.name, "m");
    assert_string_equal(cfg.platform, "onnxruntime_onnx");
    assert_string_equal(cfg.backend, "onnxruntime");
    assert_string_equal(cfg.default_model_filename, "model.onnx");
    assert_int_equal(cfg.max_batch_size, 4);
    assert_true(cfg.dynamic_batching);
    assert_int_equal(cfg.n_inputs, 1);
    assert_string_equal(cfg.inputs[0].name, "x");
    assert_int_equal(cfg.inputs[0].dtype, KILN_DTYPE_F32);
    assert_int_equal(cfg.inputs[0].ndim, 1);
    assert_int_equal(cfg.inputs[0].dims[0], 3);
    assert_int_equal(cfg.n_outputs, 1);
    assert_string_equal(cfg.outputs[0].name, "out0");
    assert_int_equal(cfg.outputs[0].ndim, 1);
    assert_int_equal(cfg.outputs[0].dims[0], 3);
    assert_int_equal(cfg.n_instance_groups, 1);
    assert_string_equal(cfg.instance_groups[0].name, "m");
    assert_string_equal(cfg.instance_groups[0].kind, "KIND_CPU");
    serve_config_free(&cfg);

    /* max_batch_size given, inputs and outputs given: no dynamic batching added */
    assert_int_equal(complete_text("max_batch_size: 16 input { name: \"x\" data_type: TYPE_FP32 dims: [3] }\n"
                                   "output { name: \"out0\" data_type: TYPE_FP32 dims: [3] }",
                                   g, &cfg, err, sizeof err),
                     KILN_OK);
    assert_int_equal(cfg.max_batch_size, 16);
    assert_false(cfg.dynamic_batching);
    serve_config_free(&cfg);
    /* max_batch_size given, outputs left out: auto-complete runs, batching on */
    assert_int_equal(complete_text("max_batch_size: 16", g, &cfg, err, sizeof err), KILN_OK);
    assert_true(cfg.dynamic_batching);
    serve_config_free(&cfg);
    /* max_batch_size 1: no dynamic batching (Triton turns it on above 1) */
    assert_int_equal(complete_text("max_batch_size: 1", g, &cfg, err, sizeof err), KILN_OK);
    assert_false(cfg.dynamic_batching);
    serve_config_free(&cfg);
    /* max_batch_size 0 on a batchable model: dims are the full shape */
    assert_int_equal(complete_text("max_batch_size: 0", g, &cfg, err, sizeof err), KILN_OK);
    assert_int_equal(cfg.inputs[0].ndim, 2);
    assert_int_equal(cfg.inputs[0].dims[0], -1);
    assert_false(cfg.dynamic_batching);
    serve_config_free(&cfg);
    /* full-rank dims without max_batch_size: the model is taken as not batching */
    assert_int_equal(complete_text("input { name: \"x\" dims: [-1, 3] }", g, &cfg, err, sizeof err), KILN_OK);
    assert_int_equal(cfg.max_batch_size, 0);
    assert_int_equal(cfg.inputs[0].dtype, KILN_DTYPE_F32); /* filled in */
    serve_config_free(&cfg);
    /* a configured dim more restrictive than the model's is fine */
    assert_int_equal(complete_text("max_batch_size: 0 input { name: \"x\" dims: [5, 3] }", g, &cfg, err, sizeof err),
                     KILN_OK);
    serve_config_free(&cfg);
    /* partial dynamic_batching with auto max_batch_size keeps its settings */
    assert_int_equal(complete_text("dynamic_batching { max_queue_delay_microseconds: 50 preferred_batch_size: 2 }",
                                   g, &cfg, err, sizeof err),
                     KILN_OK);
    assert_int_equal(cfg.max_batch_size, 4);
    assert_int_equal(cfg.max_queue_delay_us, 50);
    serve_config_free(&cfg);
    kiln_graph_free(g);
}

static void test_complete_fixed_and_scalars(void **state) {
    serve_model_config cfg;
    char err[512];
    {
        const char *names[] = {"x"};
        int nd[] = {2};
        const int64_t shapes[][4] = {{2, 3}};
        kiln_graph *g = relu_graph(1, names, nd, shapes, 0);
        serve_config_init(&cfg);
        assert_int_equal(serve_config_complete(&cfg, g, "m", err, sizeof err), KILN_OK);
        assert_int_equal(cfg.max_batch_size, 0);
        assert_false(cfg.dynamic_batching);
        assert_int_equal(cfg.inputs[0].ndim, 2);
        assert_int_equal(cfg.inputs[0].dims[0], 2);
        assert_int_equal(cfg.outputs[0].dims[1], 3);
        serve_config_free(&cfg);
        kiln_graph_free(g);
    }
    {   /* rank 1 [N]: dims [1] reshaped to [] per batch item, as Triton completes it */
        const char *names[] = {"a"};
        int nd[] = {1};
        const int64_t shapes[][4] = {{-1}};
        kiln_graph *g = relu_graph(1, names, nd, shapes, 0);
        serve_config_init(&cfg);
        assert_int_equal(serve_config_complete(&cfg, g, "m", err, sizeof err), KILN_OK);
        assert_int_equal(cfg.max_batch_size, 4);
        assert_int_equal(cfg.inputs[0].ndim, 1);
        assert_int_equal(cfg.inputs[0].dims[0], 1);
        assert_true(cfg.inputs[0].has_reshape);
        assert_int_equal(cfg.inputs[0].reshape_ndim, 0);
        serve_config_free(&cfg);
        kiln_graph_free(g);
    }
    {   /* a scalar input: no batching, dims [1] */
        const char *names[] = {"s"};
        int nd[] = {0};
        const int64_t shapes[][4] = {{0}};
        kiln_graph *g = relu_graph(1, names, nd, shapes, 0);
        serve_config_init(&cfg);
        assert_int_equal(serve_config_complete(&cfg, g, "m", err, sizeof err), KILN_OK);
        assert_int_equal(cfg.max_batch_size, 0);
        assert_int_equal(cfg.inputs[0].ndim, 1);
        assert_int_equal(cfg.inputs[0].dims[0], 1);
        assert_true(cfg.inputs[0].has_reshape);
        serve_config_free(&cfg);
        assert_int_equal(complete_text("max_batch_size: 0 input { name: \"s\" dims: [1] }", g, &cfg, err, sizeof err),
                         KILN_OK);
        assert_true(cfg.inputs[0].has_reshape); /* the server reshapes [1] to the scalar */
        serve_config_free(&cfg);
        assert_int_equal(complete_text("input { name: \"s\" dims: [2] }", g, &cfg, err, sizeof err), KILN_E_INVAL);
        assert_contains(err, "model 'm': input 's': the model's input is a scalar; dims must be [1], not [2]");
        serve_config_free(&cfg);
        assert_int_equal(complete_text("max_batch_size: 2", g, &cfg, err, sizeof err), KILN_E_INVAL);
        assert_contains(err, "input 's': max_batch_size is 2 but the model's input is a scalar");
        serve_config_free(&cfg);
        kiln_graph_free(g);
    }
    {   /* an image model as Triton's examples configure it: format, output reshape, labels */
        const char *names[] = {"data"};
        int nd[] = {4};
        const int64_t shapes[][4] = {{-1, 3, 2, 2}};
        kiln_graph *g = relu_graph(1, names, nd, shapes, 0);
        assert_int_equal(complete_text("name: \"m\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size : 1\n"
                                       "input [ { name: \"data\" data_type: TYPE_FP32 format: FORMAT_NCHW\n"
                                       "          dims: [ 3, 2, 2 ] } ]\n"
                                       "output [ { name: \"out0\" data_type: TYPE_FP32 dims: [ 12 ]\n"
                                       "           reshape { shape: [ 3, 2, 2 ] } label_filename: \"labels.txt\" } ]",
                                       g, &cfg, err, sizeof err),
                         KILN_OK);
        assert_int_equal(cfg.inputs[0].format, 2);
        assert_false(cfg.dynamic_batching); /* inputs and outputs given, max_batch_size 1 */
        cJSON *j = serve_config_to_json(&cfg);
        char *text = cJSON_PrintUnformatted(j);
        assert_contains(text, "\"format\":\"FORMAT_NCHW\",\"dims\":[3,2,2]");
        assert_contains(text, "\"dims\":[12],\"reshape\":{\"shape\":[3,2,2]},\"label_filename\":\"labels.txt\"");
        free(text);
        cJSON_Delete(j);
        serve_config_free(&cfg);
        kiln_graph_free(g);
    }
    {   /* reshape on a batched two-input model */
        const char *names[] = {"p", "q"};
        int nd[] = {3, 3};
        const int64_t shapes[][4] = {{-1, 2, 3}, {-1, 2, 3}};
        kiln_graph *g = relu_graph(2, names, nd, shapes, 1);
        assert_int_equal(complete_text("max_batch_size: 8\n"
                                       "input { name: \"p\" data_type: TYPE_FP32 dims: [6] reshape { shape: [2, 3] } }",
                                       g, &cfg, err, sizeof err),
                         KILN_OK);
        assert_int_equal(cfg.n_inputs, 2); /* q added from the model */
        assert_string_equal(cfg.inputs[1].name, "q");
        assert_int_equal(cfg.inputs[1].ndim, 2);
        assert_int_equal(cfg.inputs[0].dims[0], 6);
        assert_true(cfg.dynamic_batching);
        serve_config_free(&cfg);
        assert_int_equal(complete_text("input { name: \"p\" dims: [6] reshape { shape: [3, 2] } }", g, &cfg, err,
                                       sizeof err),
                         KILN_E_INVAL);
        assert_contains(err, "model 'm': input 'p': reshape [3, 2] does not match the model's shape [-1, 2, 3] "
                             "(its first dimension is the batch): dimension 1 is 3 in the configuration, 2 in the model");
        serve_config_free(&cfg);
        kiln_graph_free(g);
    }
}

static void test_complete_errors(void **state) {
    const char *names[] = {"x"};
    int nd[] = {2};
    const int64_t shapes[][4] = {{-1, 3}};
    kiln_graph *g = relu_graph(1, names, nd, shapes, 0);
    const int64_t fixed_shapes[][4] = {{2, 3}};
    kiln_graph *fixed = relu_graph(1, names, nd, fixed_shapes, 0);
    static const struct {
        const char *text;
        int fixed;
        const char *msg;
    } cases[] = {
        {"name: \"other\"", 0, "model 'm': name: the configuration says 'other' but the model's directory is 'm'"},
        {"input { name: \"y\" }", 0, "model 'm': input 'y' of the configuration is not an input of the model (it has 'x')"},
        {"output { name: \"z\" }", 0, "model 'm': output 'z' of the configuration is not an output of the model"},
        {"input { name: \"x\" data_type: TYPE_FP16 }", 0,
         "model 'm': input 'x': data_type is TYPE_FP16 in the configuration but TYPE_FP32 in the model"},
        {"max_batch_size: 4 input { name: \"x\" dims: [4] }", 0,
         "model 'm': input 'x': dims [4] does not match the model's shape [-1, 3] (its first dimension is the "
         "batch): dimension 1 is 4 in the configuration, 3 in the model"},
        {"max_batch_size: 4 input { name: \"x\" dims: [-1] }", 0, "dimension 1 is -1 in the configuration, 3 in the model"},
        {"max_batch_size: 4 input { name: \"x\" dims: [1, 3] }", 0,
         "model 'm': input 'x': dims [1, 3] plus the batch dimension (max_batch_size > 0) has rank 3 but the "
         "model's input has rank 2 (shape [-1, 3])"},
        {"max_batch_size: 0 output { name: \"out0\" dims: [3] }", 0,
         "output 'out0': dims [3] has rank 1 but the model's output has rank 2"},
        {"max_batch_size: 2", 1,
         "model 'm': input 'x': max_batch_size is 2 but the model's first dimension is fixed at 2 (shape [2, 3]), "
         "not a batch dimension: set max_batch_size: 0"},
        {"dynamic_batching { }", 1, "model 'm': dynamic_batching: needs max_batch_size > 0, and the model cannot batch"},
        {"dynamic_batching { preferred_batch_size: 8 }", 0,
         "model 'm': dynamic_batching: preferred_batch_size 8 is above max_batch_size 4"},
        {"model_warmup { name: \"w\" batch_size: 5 }", 0, "model 'm': model_warmup 'w': batch_size 5 is above max_batch_size 4"},
        {"model_warmup { name: \"w\" inputs { key: \"nope\" value { data_type: TYPE_FP32 dims: [3] zero_data: true } } }",
         0, "model 'm': model_warmup 'w': input 'nope' is not an input of the model"},
        {"model_warmup { name: \"w\" inputs { key: \"x\" value { data_type: TYPE_INT32 dims: [3] zero_data: true } } }",
         0, "model_warmup 'w' input 'x': data_type TYPE_INT32, but the input is TYPE_FP32"},
        {"model_warmup { name: \"w\" inputs { key: \"x\" value { data_type: TYPE_FP32 dims: [4] zero_data: true } } }",
         0, "model_warmup 'w' input 'x': dims [4] do not fit the input's dims [3]"},
        {"model_warmup { name: \"w\" }", 0, "model 'm': model_warmup 'w': gives no data for input 'x'"},
        {"input { name: \"x\" format: FORMAT_NCHW }", 0,
         "model 'm': input 'x': FORMAT_NCHW needs 3 dims (without the batch dimension), not [3]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        serve_model_config cfg;
        char err[512];
        assert_int_equal(parse_text(cases[i].text, &cfg, err, sizeof err), KILN_OK);
        kiln_status st = serve_config_complete(&cfg, cases[i].fixed ? fixed : g, "m", err, sizeof err);
        if (st != KILN_E_INVAL) print_error("case %zu (%s): status %d %s\n", i, cases[i].text, st, err);
        assert_int_equal(st, KILN_E_INVAL);
        assert_contains(err, cases[i].msg);
        serve_config_free(&cfg);
    }
    /* warm-up that fits completes */
    serve_model_config cfg;
    char err[512];
    assert_int_equal(complete_text("model_warmup { name: \"w\" batch_size: 4 count: 2\n"
                                   "  inputs { key: \"x\" value { data_type: TYPE_FP32 dims: [3] random_data: true } } }",
                                   g, &cfg, err, sizeof err),
                     KILN_OK);
    serve_config_free(&cfg);
    kiln_graph_free(g);
    kiln_graph_free(fixed);
}

/* ---- JSON -------------------------------------------------------------------------------- */

static void test_json(void **state) {
    const char *names[] = {"x"};
    int nd[] = {2};
    const int64_t shapes[][4] = {{-1, 3}};
    kiln_graph *g = relu_graph(1, names, nd, shapes, 0);
    serve_model_config cfg;
    char err[512];
    serve_config_init(&cfg);
    assert_int_equal(serve_config_complete(&cfg, g, "m", err, sizeof err), KILN_OK);
    cJSON *j = serve_config_to_json(&cfg);
    assert_non_null(j);
    char *text = cJSON_PrintUnformatted(j);
    assert_string_equal(
        text,
        "{\"name\":\"m\",\"platform\":\"onnxruntime_onnx\",\"backend\":\"onnxruntime\",\"runtime\":\"\","
        "\"version_policy\":{\"latest\":{\"num_versions\":1}},\"max_batch_size\":4,"
        "\"input\":[{\"name\":\"x\",\"data_type\":\"TYPE_FP32\",\"format\":\"FORMAT_NONE\",\"dims\":[3],"
        "\"is_shape_tensor\":false,\"allow_ragged_batch\":false,\"optional\":false,\"is_non_linear_format_io\":false}],"
        "\"output\":[{\"name\":\"out0\",\"data_type\":\"TYPE_FP32\",\"dims\":[3],\"label_filename\":\"\","
        "\"is_shape_tensor\":false,\"is_non_linear_format_io\":false}],"
        "\"batch_input\":[],\"batch_output\":[],"
        "\"dynamic_batching\":{\"preferred_batch_size\":[4],\"max_queue_delay_microseconds\":0,"
        "\"preserve_ordering\":false,\"priority_levels\":0,\"default_priority_level\":0,\"priority_queue_policy\":{}},"
        "\"instance_group\":[{\"name\":\"m\",\"kind\":\"KIND_CPU\",\"count\":1,\"gpus\":[],\"secondary_devices\":[],"
        "\"profile\":[],\"passive\":false,\"host_policy\":\"\"}],"
        "\"default_model_filename\":\"model.onnx\",\"cc_model_filenames\":{},\"metric_tags\":{},\"parameters\":{},"
        "\"model_warmup\":[]}");
    free(text);
    cJSON_Delete(j);
    serve_config_free(&cfg);

    /* the rich parts: reshape, labels, queue policy, groups, parameters, warm-up, versions */
    assert_int_equal(complete_text("max_batch_size: 8 version_policy { specific { versions: [2, 5] } }\n"
                                   "input { name: \"x\" dims: [3] reshape { shape: [3] } optional: true }\n"
                                   "output { name: \"out0\" label_filename: \"l.txt\" }\n"
                                   "dynamic_batching { preferred_batch_size: [2, 8] max_queue_delay_microseconds: 7\n"
                                   "  default_queue_policy { timeout_action: DELAY max_queue_size: 9 } }\n"
                                   "instance_group [{ count: 2 kind: KIND_GPU gpus: [0] }, { kind: KIND_GPU }]\n"
                                   "parameters { key: \"precision\" value { string_value: \"int8\" } }\n"
                                   "model_warmup { name: \"w\" batch_size: 2 inputs { key: \"x\" value {\n"
                                   "  data_type: TYPE_FP32 dims: [3] input_data_file: \"x.bin\" } } }",
                                   g, &cfg, err, sizeof err),
                     KILN_OK);
    j = serve_config_to_json(&cfg);
    assert_non_null(j);
    text = cJSON_PrintUnformatted(j);
    assert_contains(text, "\"version_policy\":{\"specific\":{\"versions\":[2,5]}}");
    assert_contains(text, "\"dims\":[3],\"reshape\":{\"shape\":[3]},\"is_shape_tensor\":false,"
                          "\"allow_ragged_batch\":false,\"optional\":true");
    assert_contains(text, "\"label_filename\":\"l.txt\"");
    assert_contains(text, "\"preferred_batch_size\":[2,8],\"max_queue_delay_microseconds\":7");
    assert_contains(text, "\"default_queue_policy\":{\"timeout_action\":\"DELAY\",\"default_timeout_microseconds\":0,"
                          "\"allow_timeout_override\":false,\"max_queue_size\":9}");
    assert_contains(text, "\"instance_group\":[{\"name\":\"m_0\",\"kind\":\"KIND_GPU\",\"count\":2,\"gpus\":[0],");
    assert_contains(text, "{\"name\":\"m_1\",\"kind\":\"KIND_GPU\",\"count\":1,\"gpus\":[],");
    assert_contains(text, "\"parameters\":{\"precision\":{\"string_value\":\"int8\"}}");
    assert_contains(text, "\"model_warmup\":[{\"name\":\"w\",\"batch_size\":2,\"inputs\":{\"x\":{\"data_type\":"
                          "\"TYPE_FP32\",\"dims\":[3],\"input_data_file\":\"x.bin\"}},\"count\":1}]");
    assert_int_equal(cfg.instance_count, 3);
    assert_int_equal(cfg.precision, KILN_PRECISION_INT8);
    cJSON_Delete(j);
    serve_config_free(&cfg);

    /* the JSON form read back (a load request's "config") gives the same
     * configuration: completed again, the same JSON */
    serve_model_config back;
    kiln_status st = serve_config_parse_json(text, strlen(text), "req", &back, err, sizeof err);
    if (st) print_error("%s\n", err);
    assert_int_equal(st, KILN_OK);
    assert_int_equal(serve_config_complete(&back, g, "m", err, sizeof err), KILN_OK);
    j = serve_config_to_json(&back);
    char *text2 = cJSON_PrintUnformatted(j);
    assert_string_equal(text2, text);
    free(text2);
    free(text);
    cJSON_Delete(j);
    serve_config_free(&back);

    /* JSON's own forms: enum names and 64-bit integers as strings, maps as
     * objects, {} / [] / null as not given */
    const char *forms = "{\"max_batch_size\":\"4\",\"input\":[{\"name\":\"x\",\"data_type\":\"TYPE_INT64\","
                        "\"dims\":[\"2\",3]}],\"dynamic_batching\":{\"max_queue_delay_microseconds\":\"250\"},"
                        "\"cc_model_filenames\":{},\"batch_input\":[],\"runtime\":null,"
                        "\"parameters\":{\"threads\":{\"string_value\":\"2\"}}}";
    st = serve_config_parse_json(forms, strlen(forms), "req", &back, err, sizeof err);
    if (st) print_error("%s\n", err);
    assert_int_equal(st, KILN_OK);
    assert_int_equal(back.max_batch_size, 4);
    assert_int_equal(back.n_inputs, 1);
    assert_int_equal(back.inputs[0].dtype, KILN_DTYPE_I64);
    assert_int_equal(back.inputs[0].ndim, 2);
    assert_int_equal(back.inputs[0].dims[0], 2);
    assert_int_equal(back.threads, 2);
    serve_config_free(&back);
    /* refusals name the field, with the source and no line:col */
    const struct { const char *json, *msg; } bad[] = {
        {"[1]", "req: not a JSON object"},
        {"{\"max_batch_size\":\"x\"}", "req: config: field 'max_batch_size' takes an integer, found string 'x'"},
        {"{\"input\":[{\"name\":\"x\",\"data_type\":\"TYPE_NOPE\"}]}", "'TYPE_NOPE' is not a value of field 'data_type'"},
        {"{\"input\":[[1]]}", "req: field 'input': an array inside an array"},
        {"{\"sequence_batching\":{\"max_sequence_idle_microseconds\":5}}", "field 'sequence_batching' is not supported"},
        {"{\"name\":7}", "field 'name' takes a quoted string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_not_equal(serve_config_parse_json(bad[i].json, strlen(bad[i].json), "req", &back, err,
                                                     sizeof err),
                             KILN_OK);
        if (!strstr(err, bad[i].msg)) print_error("%s: got '%s'\n", bad[i].json, err);
        assert_non_null(strstr(err, bad[i].msg));
        assert_string_equal(strncmp(err, "req: ", 5) ? err : "req: ", "req: ");
    }
    kiln_graph_free(g);
}

static void test_dtype_names(void **state) {
    assert_int_equal(serve_dtype_from_config("TYPE_FP32"), KILN_DTYPE_F32);
    assert_int_equal(serve_dtype_from_config("TYPE_STRING"), KILN_DTYPE_STRING);
    assert_int_equal(serve_dtype_from_config("TYPE_BF16"), KILN_DTYPE_BF16);
    assert_int_equal(serve_dtype_from_config("TYPE_INVALID"), KILN_DTYPE_UNDEFINED);
    assert_int_equal(serve_dtype_from_config("FP32"), KILN_DTYPE_UNDEFINED);
    assert_int_equal(serve_dtype_from_config(NULL), KILN_DTYPE_UNDEFINED);
    assert_string_equal(serve_dtype_config_name(KILN_DTYPE_U16), "TYPE_UINT16");
    assert_null(serve_dtype_config_name(KILN_DTYPE_F8E5M2));
    assert_null(serve_dtype_config_name(KILN_DTYPE_UNDEFINED));
    assert_int_equal(serve_dtype_from_wire("BYTES"), KILN_DTYPE_STRING);
    assert_int_equal(serve_dtype_from_wire("INT64"), KILN_DTYPE_I64);
    assert_int_equal(serve_dtype_from_wire("TYPE_INT64"), KILN_DTYPE_UNDEFINED);
    assert_string_equal(serve_dtype_wire_name(KILN_DTYPE_STRING), "BYTES");
    assert_string_equal(serve_dtype_wire_name(KILN_DTYPE_F16), "FP16");
    assert_null(serve_dtype_wire_name(KILN_DTYPE_I4));
    /* every Triton type round-trips */
    const char *all[] = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                         "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        kiln_dtype dt = serve_dtype_from_wire(all[i]);
        assert_int_not_equal(dt, KILN_DTYPE_UNDEFINED);
        assert_string_equal(serve_dtype_wire_name(dt), all[i]);
        assert_int_equal(serve_dtype_from_config(serve_dtype_config_name(dt)), dt);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbtxt_forms),
        cmocka_unit_test(test_pbtxt_errors),
        cmocka_unit_test(test_pbtxt_depth),
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_defaults_and_forms),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_prefixes_and_corruptions),
        cmocka_unit_test(test_complete_dynamic_batch),
        cmocka_unit_test(test_complete_fixed_and_scalars),
        cmocka_unit_test(test_complete_errors),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_dtype_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
