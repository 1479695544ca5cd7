/* tools/kiln/cmd_info.c: `kiln info MODEL`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *help =
    "usage: kiln info MODEL.onnx [--shapes]\n"
    "\n"
    "Prints the model's inputs and outputs (dtype and shape; dynamic dims by name,\n"
    "'?' where unknown), opset imports, a histogram of the ops of its top-level\n"
    "graph, ops kiln cannot run (if any), and the parameter count and bytes of its\n"
    "initializers. Shapes the model does not declare are inferred, with dynamic\n"
    "dims carried through by name.\n"
    "\n"
    "  --shapes   also list every intermediate value with its inferred type\n";

typedef struct {
    const char *op;
    int count;
} op_count;

static int cmp_count(const void *a, const void *b) {
    const op_count *x = a, *y = b;
    if (x->count != y->count) return y->count - x->count;
    return strcmp(x->op, y->op);
}

/* Prints "title:" and one "  name: dtype[dims]" line per value. */
static void print_values(const kiln_graph *g, const char *title, int n,
                         kiln_status (*info)(const kiln_graph *, int, kiln_value_info *)) {
    char buf[1024];
    printf("%s:\n", title);
    for (int i = 0; i < n; i++) {
        kiln_value_info v;
        if (info(g, i, &v) != KILN_OK) continue;
        kiln_cli_describe(&v, buf, sizeof buf);
        printf("  %s: %s\n", v.name, buf);
    }
}

int kiln_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int shapes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--shapes")) {
            shapes = 1;
            continue;
        }
        if (argv[i][0] == '-' || path) {
            fprintf(stderr, "kiln info: unexpected argument '%s'\n%s", argv[i], help);
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        fputs(help, stderr);
        return 2;
    }
    kiln_graph *g;
    kiln_status s = kiln_graph_load_onnx(path, &g);
    if (s != KILN_OK) return kiln_cli_fail("info", s);
    if ((s = kiln_graph_infer_shapes(g)) != KILN_OK) {
        kiln_graph_free(g);
        return kiln_cli_fail("info", s);
    }
    char buf[1024];
    printf("model: %s\n", path);
    printf("opsets:");
    for (int i = 0; i < kiln_graph_num_opsets(g); i++) {
        const char *dom;
        int64_t ver;
        kiln_graph_opset(g, i, &dom, &ver);
        printf(" %s=%lld", dom[0] ? dom : "ai.onnx", (long long)ver);
    }
    printf("\n");
    print_values(g, "inputs", kiln_graph_num_inputs(g), kiln_graph_input_info);
    print_values(g, "outputs", kiln_graph_num_outputs(g), kiln_graph_output_info);
    if (shapes) print_values(g, "values", kiln_graph_num_values(g), kiln_graph_value_info);
    int nn = kiln_graph_num_nodes(g), nk = 0;
    op_count *hist = calloc((size_t)nn + 1, sizeof *hist);
    if (!hist) {
        kiln_graph_free(g);
        fprintf(stderr, "kiln info: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nn; i++) {
        const char *op = kiln_graph_node_op_type(g, i);
        int j = 0;
        while (j < nk && strcmp(hist[j].op, op)) j++;
        if (j == nk) hist[nk++].op = op;
        hist[j].count++;
    }
    qsort(hist, (size_t)nk, sizeof *hist, cmp_count);
    printf("nodes: %d\nops:\n", nn);
    for (int j = 0; j < nk; j++) printf("  %-24s %d\n", hist[j].op, hist[j].count);
    free(hist);
    if (kiln_graph_unsupported_ops(g, buf, sizeof buf) > 0) printf("unsupported ops: %s\n", buf);
    long long params = 0, bytes = 0;
    for (int i = 0; i < kiln_graph_num_initializers(g); i++) {
        const kiln_tensor *t = kiln_graph_initializer(g, i, NULL);
        params += kiln_tensor_numel(t);
        bytes += kiln_tensor_numel(t) * (long long)kiln_dtype_size(kiln_tensor_dtype(t));
    }
    printf("initializers: %d\nparameters: %lld (%.2f MB)\n", kiln_graph_num_initializers(g),
           params, bytes / 1e6);
    kiln_graph_free(g);
    return 0;
}
