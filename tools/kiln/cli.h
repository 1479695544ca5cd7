/* tools/kiln/cli.h: subcommands of the `kiln` command and shared helpers. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "kiln/kiln.h"

int kiln_cmd_info(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_bench(int argc, char **argv);
int kiln_cmd_train(int argc, char **argv);
int kiln_cmd_serve(int argc, char **argv);

/* Prints "kiln <cmd>: <what>: <last error>" to stderr and returns 1. */
int kiln_cli_fail(const char *cmd, kiln_status s);
/* The options every model command shares, for the end of its option chain:
 * -t N (into *threads) and the positional MODEL (into *path). Returns 1 if
 * argv[*i] was taken, -1 after printing a usage error (a bad -t, a second
 * MODEL, or an option nobody knows). */
int kiln_cli_common_option(const char *cmd, const char *help, int argc, char **argv, int *i,
                           int *threads, const char **path);
/* Planning options shared by run and bench: --precision P, --device D, --tune,
 * --timing-cache FILE, --reference, --no-graph-passes (into opt). Returns 1
 * if argv[*i] was one (value taken, *i advanced), 0 if not, -1 after printing
 * an error. */
int kiln_cli_plan_option(const char *cmd, int argc, char **argv, int *i, kiln_session_options *opt);
/* After parsing: --tune without --timing-cache uses the default cache file,
 * $XDG_CACHE_HOME/kiln/timing-cache.txt (else ~/.cache/...; its directory
 * created). Returns -1 after printing an error. */
int kiln_cli_plan_finish(const char *cmd, kiln_session_options *opt);
/* Help lines for the planning options. */
#define KILN_CLI_PLAN_HELP                                                                        \
    "  --precision P      fp32 (default), bf16 (bf16 products, f32 accumulation) or\n"           \
    "                     int8 (quantized QDQ/QLinear models on int8 products)\n"                \
    "  --device D         cpu (default) or cuda: nodes with a CUDA kernel run on GPU 0,\n"      \
    "                     the others on the CPU, with the copies between them planned\n"        \
    "  --tune             time every candidate algorithm of every node on the real\n"            \
    "                     shapes and keep the fastest; winners go to the timing cache\n"         \
    "  --timing-cache F   timing cache file to read (and, with --tune, to write);\n"             \
    "                     default with --tune: ~/.cache/kiln/timing-cache.txt\n"                 \
    "  --reference        run the graph as written on the reference kernels only\n"              \
    "  --no-graph-passes  fast algorithms, but no graph rewriting (fusion, folding)\n"

/* Per-node profiles (kiln bench --profile, kiln train --profile): sorts
 * p[0..n) slowest first; a node's GFLOP/s over its calls (0 if unknown);
 * prints p[0..n) as a table of op, node, algorithm, ms per run (of runs),
 * share of the total and GFLOP/s. */
void kiln_cli_profile_sort(kiln_node_profile *p, int n);
double kiln_cli_node_gflops(const kiln_node_profile *p);
void kiln_cli_profile_table(const kiln_node_profile *p, int n, int64_t runs);

/* Prints the usage to stderr and returns 2 if no MODEL was given, else 0. */
int kiln_cli_need_model(const char *help, const char *path);

/* mkdir -p: creates dir and its missing parents; -1 (errno set) on failure. */
int kiln_cli_mkdir_p(const char *dir);

/* Monotonic clock in milliseconds. */
double kiln_cli_now_ms(void);
/* SplitMix64's output function: a well-mixed 64-bit value of z. */
static inline uint64_t kiln_cli_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* SplitMix64: the next random value of the generator whose state is *s. */
static inline uint64_t kiln_cli_splitmix64(uint64_t *s) {
    return kiln_cli_mix64(*s += 0x9E3779B97F4A7C15ull);
}
/* Parses a positive thread count; returns -1 if invalid. */
int kiln_cli_threads(const char *s);
/* "float32[1,3,224,224]" style description of a value. */
void kiln_cli_describe(const kiln_value_info *v, char *buf, size_t len);

/* Input options shared by run and bench: -i NAME=FILE.npy, --shape
 * NAME=d0,d1,..., --random, --seed S. Zero-initialize, set seed = 1. */
#define KILN_CLI_MAX_INPUTS 256
typedef struct kiln_cli_inputs {
    int n_files, n_shapes, random;
    unsigned long long seed;
    const char *file_names[KILN_CLI_MAX_INPUTS], *files[KILN_CLI_MAX_INPUTS];
    const char *shape_names[KILN_CLI_MAX_INPUTS], *shape_dims[KILN_CLI_MAX_INPUTS];
    /* filled by kiln_cli_prepare_inputs */
    int n;
    const char *names[KILN_CLI_MAX_INPUTS];
    kiln_tensor *tensors[KILN_CLI_MAX_INPUTS];
} kiln_cli_inputs;
/* If argv[*i] is an input option, takes it (and its value, advancing *i):
 * returns 1; 0 if it is not one; -1 (message printed) if malformed. */
int kiln_cli_input_option(kiln_cli_inputs *in, const char *cmd, int argc, char **argv, int *i);
/* Loads the -i files and makes random tensors for the other inputs of g
 * (with --random; dynamic dims 1 unless --shape). Prints an error, returns -1. */
int kiln_cli_prepare_inputs(kiln_cli_inputs *in, const char *cmd, const char *path,
                            const kiln_graph *g);
void kiln_cli_free_inputs(kiln_cli_inputs *in);

#endif
