/* tools/kiln/main.c: the `kiln` command; dispatches to one file per subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"info", kiln_cmd_info, "show a model's inputs, outputs, opsets, ops and parameters"},
    {"run", kiln_cmd_run, "run a model on .npy inputs and write .npy outputs"},
    {"bench", kiln_cmd_bench, "measure a model's latency and throughput (per-node profile)"},
    {"train", kiln_cmd_train, "train a classifier on IDX image data and export it to ONNX"},
    {"serve", kiln_cmd_serve, "serve a Triton model repository over KServe v2 HTTP"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: kiln [--version] [--help] <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'kiln <command> --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("kiln %s\n", KILN_VERSION_STRING);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
