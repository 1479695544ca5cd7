/* tools/kiln/cli_inputs.c: the input options shared by `kiln run` and
 * `kiln bench` (-i NAME=FILE.npy, --shape NAME=DIMS, --random, --seed) and
 * building the input tensors of a graph from them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static uint64_t rng_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    return *state = x;
}

/* floats uniform in [0,1), integers in [0,10), bools 0/1 */
static void fill_random(kiln_tensor *t, uint64_t *state) {
    int64_t n = kiln_tensor_numel(t);
    void *d = kiln_tensor_data(t);
    kiln_dtype dt = kiln_tensor_dtype(t);
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(rng_next(state) >> 11) / 9007199254740992.0;
        switch (dt) {
        case KILN_DTYPE_F32: ((float *)d)[i] = (float)u; break;
        case KILN_DTYPE_F64: ((double *)d)[i] = u; break;
        case KILN_DTYPE_F16: ((uint16_t *)d)[i] = kiln_f32_to_f16((float)u); break;
        case KILN_DTYPE_BF16: ((uint16_t *)d)[i] = kiln_f32_to_bf16((float)u); break;
        case KILN_DTYPE_BOOL: ((uint8_t *)d)[i] = u < 0.5; break;
        case KILN_DTYPE_I8: case KILN_DTYPE_U8: ((uint8_t *)d)[i] = (uint8_t)(u * 10); break;
        case KILN_DTYPE_I16: case KILN_DTYPE_U16: ((uint16_t *)d)[i] = (uint16_t)(u * 10); break;
        case KILN_DTYPE_I32: case KILN_DTYPE_U32: ((uint32_t *)d)[i] = (uint32_t)(u * 10); break;
        case KILN_DTYPE_I64: case KILN_DTYPE_U64: ((uint64_t *)d)[i] = (uint64_t)(u * 10); break;
        default: break;
        }
    }
}

static int parse_dims(const char *s, int64_t *dims, int *ndim) {
    *ndim = 0;
    if (!*s) return 0;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0 || *ndim >= KILN_MAX_DIMS) return -1;
        dims[(*ndim)++] = v;
        if (*end == 0) return 0;
        if (*end != ',') return -1;
        s = end + 1;
    }
}

/* Splits "NAME=VALUE" (arg is modified) into names[*n], values[*n]; counts it. */
static int split_pair(const char *cmd, const char *opt, const char *form, char *arg,
                      const char **names, const char **values, int *n) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || *n == KILN_CLI_MAX_INPUTS) {
        fprintf(stderr, "kiln %s: %s expects %s, got '%s'\n", cmd, opt, form, arg);
        return -1;
    }
    *eq = 0;
    names[*n] = arg;
    values[(*n)++] = eq + 1;
    return 0;
}

int kiln_cli_input_option(kiln_cli_inputs *in, const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    int has_val = *i + 1 < argc;
    if (!strcmp(a, "-i") && has_val)
        return split_pair(cmd, "-i", "NAME=FILE.npy", argv[++*i], in->file_names, in->files,
                          &in->n_files) ? -1 : 1;
    if (!strcmp(a, "--shape") && has_val)
        return split_pair(cmd, "--shape", "NAME=d0,d1,...", argv[++*i], in->shape_names,
                          in->shape_dims, &in->n_shapes) ? -1 : 1;
    if (!strcmp(a, "--seed") && has_val) {
        char *end;
        in->seed = strtoull(argv[++*i], &end, 10);
        if (*end) {
            fprintf(stderr, "kiln %s: --seed expects a number, got '%s'\n", cmd, argv[*i]);
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--random")) {
        in->random = 1;
        return 1;
    }
    return 0;
}

static int has_input(const kiln_graph *g, const char *name) {
    for (int i = 0; i < kiln_graph_num_inputs(g); i++) {
        kiln_value_info v;
        kiln_graph_input_info(g, i, &v);
        if (!strcmp(v.name, name)) return 1;
    }
    return 0;
}

int kiln_cli_prepare_inputs(kiln_cli_inputs *in, const char *cmd, const char *path,
                            const kiln_graph *g) {
    uint64_t state = in->seed * 0x9E3779B97F4A7C15ull + 1;
    kiln_status s;
    for (int k = 0; k < in->n_files; k++) {
        if (!has_input(g, in->file_names[k])) {
            fprintf(stderr, "kiln %s: error: %s has no input named '%s'\n", cmd, path, in->file_names[k]);
            return -1;
        }
        if ((s = kiln_tensor_load_npy(in->files[k], &in->tensors[in->n])) != KILN_OK)
            return kiln_cli_fail(cmd, s), -1;
        in->names[in->n++] = in->file_names[k];
    }
    for (int i = 0; i < kiln_graph_num_inputs(g); i++) {
        kiln_value_info v;
        kiln_graph_input_info(g, i, &v);
        int given = 0;
        for (int k = 0; k < in->n; k++) given |= !strcmp(in->names[k], v.name);
        if (given) continue;
        if (!in->random) {
            char d[256];
            kiln_cli_describe(&v, d, sizeof d);
            fprintf(stderr, "kiln %s: error: input '%s' (%s) not given: use -i %s=FILE.npy or --random\n",
                    cmd, v.name, d, v.name);
            return -1;
        }
        int64_t dims[KILN_MAX_DIMS];
        int ndim = v.ndim < 0 ? 0 : v.ndim;
        for (int d = 0; d < ndim; d++) dims[d] = v.dims[d] >= 0 ? v.dims[d] : 1;
        for (int k = 0; k < in->n_shapes; k++)
            if (!strcmp(in->shape_names[k], v.name) && parse_dims(in->shape_dims[k], dims, &ndim) != 0) {
                fprintf(stderr, "kiln %s: error: bad --shape for '%s': '%s'\n", cmd, v.name,
                        in->shape_dims[k]);
                return -1;
            }
        kiln_dtype dt = v.dtype == KILN_DTYPE_UNDEFINED ? KILN_DTYPE_F32 : v.dtype;
        if ((s = kiln_tensor_create(dt, ndim, dims, &in->tensors[in->n])) != KILN_OK)
            return kiln_cli_fail(cmd, s), -1;
        fill_random(in->tensors[in->n], &state);
        in->names[in->n++] = v.name;
    }
    return 0;
}

void kiln_cli_free_inputs(kiln_cli_inputs *in) {
    for (int k = 0; k < in->n; k++) kiln_tensor_free(in->tensors[k]);
    in->n = 0;
}
