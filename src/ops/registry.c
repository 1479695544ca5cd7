/* src/ops/registry.c: the op table built from ops.def, and lookup. */
#include <string.h>

#include "ops/op.h"

const kiln__op_def kiln__ops[] = {
#define KILN_OP(name, domain, min_in, max_in, min_out, max_out, flags) \
    {#name, domain, min_in, max_in, min_out, max_out, flags, kiln__infer_##name, kiln__ref_##name},
#include "ops/ops.def"
#undef KILN_OP
    {NULL, NULL, 0, 0, 0, 0, 0, NULL, NULL},
};

const int kiln__n_ops = (int)(sizeof(kiln__ops) / sizeof(kiln__ops[0])) - 1;

int kiln__op_find(const char *domain, const char *op_type) {
    if (!domain || strcmp(domain, "ai.onnx") == 0) domain = "";
    for (int i = 0; i < kiln__n_ops; i++)
        if (strcmp(kiln__ops[i].name, op_type) == 0 && strcmp(kiln__ops[i].domain, domain) == 0)
            return i;
    return -1;
}
