/* src/graph/passes/optimize.c: the pass driver (graph/optimize.h). */
#include <string.h>

#include "graph/passes/passes.h"

static const struct {
    const char *name;
    kiln__pass_fn fn;
} passes[KILN__N_PASSES] = {
    [KILN__PASS_IDENTITY] = {"identity", kiln__pass_identity},
    [KILN__PASS_DEAD] = {"dead", kiln__pass_dead},
    [KILN__PASS_QDQ] = {"qdq", kiln__pass_qdq},
    [KILN__PASS_FOLD] = {"fold", kiln__pass_fold},
    [KILN__PASS_BN] = {"bn", kiln__pass_bn},
    [KILN__PASS_LAYOUT] = {"layout", kiln__pass_layout},
    [KILN__PASS_GELU] = {"gelu", kiln__pass_gelu},
    [KILN__PASS_LAYERNORM] = {"layernorm", kiln__pass_layernorm},
    [KILN__PASS_ATTENTION] = {"attention", kiln__pass_attention},
    [KILN__PASS_MATMUL] = {"matmul", kiln__pass_matmul},
    [KILN__PASS_CONV] = {"conv", kiln__pass_conv},
    [KILN__PASS_GRAD] = {"grad", kiln__pass_grad},
    [KILN__PASS_NCHWC] = {"nchwc", kiln__pass_nchwc},
};

const char *kiln__pass_name(int id) {
    return id >= 0 && id < KILN__N_PASSES ? passes[id].name : "?";
}

/* Runs pass id unless disabled (then sweeps); returns its rewrites. */
static int run_pass(kiln__px *p, const kiln__opt_options *o, int id, kiln_status *s) {
    if (o->disable & (1u << id)) return 0;
    p->count = 0;
    *s = passes[id].fn(p);
    if (*s == KILN_OK) *s = kiln__px_sweep(p);
    if (o->stats) o->stats->rewrites[id] += p->count;
    return p->count;
}

/* Rounds over all passes; every round that rewrites something is followed
 * by another, up to this many (each rewrite removes nodes, so few are needed). */
#define MAX_ROUNDS 8

kiln_status kiln__graph_optimize(kiln_graph *g, const kiln__opt_options *o) {
    static const kiln__opt_options defaults = {0};
    if (!o) o = &defaults;
    if (o->stats) memset(o->stats, 0, sizeof *o->stats);
    /* shapes of intermediates, with symbolic dims: what shape-dependent
     * rewrites rely on. Where inference fails, values stay unannotated and the
     * passes that need them do not fire. */
    if (kiln_graph_infer_shapes(g) != KILN_OK) kiln__err_clear();
    kiln__px p;
    KILN__TRY(kiln__px_init(&p, g, o));
    kiln_status s = KILN_OK;
    for (int round = 0; round < MAX_ROUNDS && s == KILN_OK; round++) {
        int total = 0;
        for (int id = 0; id < KILN__N_PASSES && s == KILN_OK; id++) {
            if (id == KILN__PASS_NCHWC) continue;
            total += run_pass(&p, o, id, &s);
        }
        if (!total) break;
    }
    /* the layout pass works on the graph the others leave */
    if (s == KILN_OK) run_pass(&p, o, KILN__PASS_NCHWC, &s);
    kiln__px_free(&p);
    if (s != KILN_OK) return kiln__err_prefix(s, "graph optimization");
    return kiln__graph_compact(g);
}
