/* src/ops/algo_registry.c: the algorithm table built from algos.def, lookup,
 * and the cost model algorithms rank themselves with (algo.h). */
#include <string.h>

#include "ops/algo.h"

const kiln__algo *const kiln__algos[] = {
#define KILN_ALGO(name) &kiln__algo_##name,
#include "cpu/kernels/algos.def"
#undef KILN_ALGO
    NULL,
};

const kiln__algo *kiln__algo_find(const char *name) {
    for (int i = 0; kiln__algos[i]; i++)
        if (strcmp(kiln__algos[i]->name, name) == 0) return kiln__algos[i];
    return NULL;
}

/* Rough figures of one core of this machine's EPYC: one 16-lane zmm FMA per
 * cycle, measured ~106 GFLOP/s f32 by bench/peak.c on a quiet moment; and
 * the memory bandwidth a core sees. Only the ranking of candidates depends
 * on them. */
#define PEAK_FLOPS_PER_CORE 106e9
#define BYTES_PER_S_PER_CORE 20e9

double kiln__cost_seconds(const kiln__kctx *c, double flops, double efficiency, double bytes) {
    int nth = c->nth_plan > 0 ? c->nth_plan : 1;
    if (efficiency <= 0) efficiency = 1e-3;
    return flops / (PEAK_FLOPS_PER_CORE * efficiency * nth) + bytes / (BYTES_PER_S_PER_CORE * nth);
}
