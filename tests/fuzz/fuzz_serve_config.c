/* tests/fuzz/fuzz_serve_config.c: libFuzzer harness for config.pbtxt
 * (src/serve/pbtxt.c, model_config.c, model_config_json.c).
 *
 * Each input is parsed as a model's config.pbtxt; a configuration that parses
 * is printed as Triton's JSON, completed against a small model (x: f32
 * [N,3] -> Relu -> out0) and printed again. Anything but a status with a
 * message (a crash, a leak, a failed JSON print of a completed
 * configuration) is a bug. Seeds and a dictionary: scripts/fuzz.sh 30
 * serve-config.
 */
#include <stdint.h>
#include <stdlib.h>

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
        free(text);
        cJSON_Delete(j);
    }
    serve_config_free(&cfg);
    return 0;
}
