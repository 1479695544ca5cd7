/* tests/fuzz/fuzz_onnx_run.c: libFuzzer harness for the whole path a model
 * takes: load, plan (every op's shape rule on hostile attributes and shapes)
 * and run (every kernel), on small inputs of the declared types. Every input
 * must end in a status; never a crash, hang, leak or out-of-bounds access. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kiln/kiln.h"

#define MAX_IN 16
#define MAX_ELEMS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_graph *g = NULL;
    if (kiln_graph_load_onnx_buffer(data, size, "fuzz.onnx", NULL, &g) != KILN_OK) return 0;
    kiln_session *s = NULL;
    kiln_session_options opt = {1, 16 << 20}; /* 1 thread, 16 MB of values */
    const char *names[MAX_IN];
    kiln_tensor *in[MAX_IN] = {0};
    int n = kiln_graph_num_inputs(g);
    if (n > MAX_IN || kiln_session_create(g, &opt, &s) != KILN_OK) goto done;
    for (int i = 0; i < n; i++) {
        kiln_value_info v;
        kiln_graph_input_info(g, i, &v);
        int64_t dims[KILN_MAX_DIMS], total = 1;
        int ndim = v.ndim < 0 ? 1 : v.ndim;
        for (int d = 0; d < ndim; d++) {
            dims[d] = v.ndim < 0 || v.dims[d] < 0 ? 2 : v.dims[d];
            total *= dims[d] ? dims[d] : 1;
            if (total > MAX_ELEMS) goto done;
        }
        kiln_dtype dt = v.dtype == KILN_DTYPE_UNDEFINED ? KILN_DTYPE_F32 : v.dtype;
        if (kiln_tensor_create(dt, ndim, dims, &in[i]) != KILN_OK) goto done;
        if (dt != KILN_DTYPE_STRING) {
            /* small deterministic values from the input bytes: the low byte of
             * each element only, so integers stay in 0..63 (trip counts, repeats
             * and sizes read from inputs stay small) */
            uint8_t *p = kiln_tensor_data(in[i]);
            size_t es = kiln_dtype_size(dt);
            for (int64_t k = 0; k < kiln_tensor_numel(in[i]); k++)
                p[k * es] = size ? data[((size_t)k * 7 + i) % size] & 0x3f : 0;
        }
        names[i] = v.name;
    }
    kiln_session_run(s, n, names, (const kiln_tensor *const *)in);
done:
    for (int i = 0; i < MAX_IN; i++) kiln_tensor_free(in[i]);
    kiln_session_free(s);
    kiln_graph_free(g);
    return 0;
}
