/* tests/models/roundtrip.c: kiln_roundtrip IN.onnx OUT.onnx — loads a model
 * with kiln's importer and writes it back with kiln's exporter (the models
 * test then checks that onnxruntime gives the same outputs on both). */
#include <stdio.h>

#include "kiln/kiln.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: kiln_roundtrip IN.onnx OUT.onnx\n");
        return 2;
    }
    kiln_graph *g;
    kiln_status s = kiln_graph_load_onnx(argv[1], &g);
    if (s == KILN_OK) s = kiln_graph_save_onnx(g, argv[2]);
    if (s != KILN_OK) {
        fprintf(stderr, "kiln_roundtrip: %s\n", kiln_last_error());
        return 1;
    }
    kiln_graph_free(g);
    return 0;
}
