/* tests/fuzz/fuzz_serve_config.c: libFuzzer harness for config.pbtxt
 * (src/serve/pbtxt.c, model_config.c, model_config_json.c).
 *
 * Each input is parsed as a model's config.pbtxt; a configuration that parses
 * is printed as Triton's JSON, completed against a small model (x: f32
 * [N,3] -> Relu -> out0) and printed again; that JSON, read back as a load
 * request's config override (serve_config_parse_json) and completed again,
 * must print the same. Anything but a status with a message (a crash, a
 * leak, a failed JSON print of a completed configuration, a JSON form that
 * does not read back to itself) is a bug. Seeds and a dictionary: scripts/fuzz.sh 30
 * serve-config.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "serve/model_config.h"

static kiln_graph *model(void) {
    static kiln_graph *g;
    if (g) return g;
    int64_t dims[2] = {-1, 3};
    const char *dim_names[2] = {"N", NULL};
    const char *in[1] = {"x"}, *out[1] = {"out0"};
    if (kiln_graph_create(17, &g) != KILN_OK ||
        kiln_graph_add_input(g, "x", KILN_DTYPE_F32, 2, dims, dim_names) != KILN_OK ||
        kiln_graph_add_node(g, "Relu", NULL, 1, in, 1, out, NULL) != KILN_OK ||
        kiln_graph_add_output(g, "out0") != KILN_OK || kiln_graph_finish(g) != KILN_OK ||
        kiln_graph_infer_shapes(g) != KILN_OK)
        abort();
    return g;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    serve_model_config cfg;
    char err[512];
    if (serve_config_parse((const char *)data, size, "config.pbtxt", &cfg, err, sizeof err) != KILN_OK)
        return 0;
    cJSON_Delete(serve_config_to_json(&cfg));
    if (serve_config_complete(&cfg, model(), "m", err, sizeof err) == KILN_OK) {
        cJSON *j = serve_config_to_json(&cfg);
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        if (!text) abort(); /* a completed configuration always prints */
        serve_model_config back;
        if (serve_config_parse_json(text, strlen(text), "json", &back, err, sizeof err) != KILN_OK ||
            serve_config_complete(&back, model(), "m", err, sizeof err) != KILN_OK) {
            fprintf(stderr, "the JSON form does not read back: %s\n%s\n", err, text);
            abort();
        }
        cJSON *j2 = serve_config_to_json(&back);
        char *text2 = j2 ? cJSON_PrintUnformatted(j2) : NULL;
        if (!text2 || strcmp(text, text2)) {
            fprintf(stderr, "the JSON form reads back different:\n%s\n%s\n", text, text2);
            abort();
        }
        free(text2);
        cJSON_Delete(j2);
        serve_config_free(&back);
        free(text);
        cJSON_Delete(j);
    }
    serve_config_free(&cfg);
    return 0;
}
