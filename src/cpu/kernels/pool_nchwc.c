/* src/cpu/kernels/pool_nchwc.c: the algorithm pool_nchwc of kiln.PoolNCHWc
 * (src/ops/nchwc.h), f32 on AVX-512 (rows in x86/pool_nchwc_avx512.c):
 * max and average pools, plain and global, in the blocked layout, so a
 * chain of blocked convolutions keeps its layout through its pools. Sums
 * in f32 (the reference: double). Threads (KILN_OPF_PARALLEL) split the
 * output rows (image, block, row). */
#include <stdlib.h>

#include "cpu/kernels/conv_nchwc.h"
#include "ops/algo.h"

static kiln_status pool_prepare(kiln__kctx *c) {
    if (!kiln__cpu_has_avx512f()) return KILN_E_UNSUPPORTED;
    kiln__nchwc_pool *g = malloc(sizeof *g);
    if (!g) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln_status st = kiln__nchwc_pool_read(c, g);
    if (st != KILN_OK) {
        free(g);
        return st;
    }
    c->kstate = g;
    c->flops = (double)g->N * g->CB * 16 * g->P * g->Q * g->R * g->S;
    return KILN_OK;
}

static double pool_cost(const kiln__kctx *c) {
    return kiln__cost_seconds(c, c->flops, 0.1,
                              4.0 * (double)kiln__n(c->in[0]) + 4.0 * (double)kiln__n(c->out[0]));
}

static kiln_status pool_run(kiln__kctx *c) {
#ifdef KILN__NCHWC_X86
    const kiln__nchwc_pool *g = c->kstate;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    const int64_t tail = g->C % 16;
    const uint16_t last = (uint16_t)(tail ? (1u << tail) - 1u : 0xffffu);
    int64_t lo, hi;
    kiln__split(g->N * g->CB * g->P, c->ith, c->nth, &lo, &hi);
    for (int64_t row = lo; row < hi; row++) {
        const int64_t nb = row / g->P, cb = nb % g->CB;
        kiln__nchwc_pool_row_avx512(g, x + nb * g->H * g->W * 16, y + row * g->Q * 16,
                                    row % g->P, cb == g->CB - 1 ? last : 0xffff);
    }
    return KILN_OK;
#else
    (void)c;
    return kiln__err(KILN_E_UNSUPPORTED, "pool_nchwc needs AVX-512");
#endif
}

const kiln__algo kiln__algo_pool_nchwc = {"pool_nchwc", "kiln", "PoolNCHWc", KILN_OPF_PARALLEL,
                                          pool_prepare, pool_cost, pool_run, free};
