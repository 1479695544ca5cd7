/* tests/fuzz/fuzz_onnx_load.c: libFuzzer harness for the ONNX loader.
 * Every input must load or fail with a status; never crash, hang or leak.
 * Models that load are also finalized for a session (plan-independent
 * checks: op resolution, unsupported-op scan). */
#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_graph *g = NULL;
    if (kiln_graph_load_onnx_buffer(data, size, "fuzz.onnx", NULL, &g) != KILN_OK) return 0;
    char buf[256];
    kiln_graph_unsupported_ops(g, buf, sizeof buf);
    for (int i = 0; i < kiln_graph_num_inputs(g); i++) {
        kiln_value_info v;
        kiln_graph_input_info(g, i, &v);
    }
    kiln_graph_free(g);
    return 0;
}
