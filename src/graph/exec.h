/* src/graph/exec.h: plans and their execution.
 *
 * A plan is a graph compiled for one signature of input dtypes and shapes:
 * every value gets a state (constant, arena slot, or dynamic) and every node a
 * step. Values whose shapes are known at plan time live in one arena at
 * offsets from a liveness-based planner; values computable at plan time
 * (initializers, shape subgraphs, Constant nodes) are folded; values whose
 * shapes depend on data get grow-only heap buffers and their nodes re-infer
 * shapes when they run.
 *
 * Graph input order for plans: the graph's formal inputs (g->inputs) then its
 * outer-scope captures (g->outer), so subgraph bodies run like any graph.
 */
#ifndef KILN_EXEC_H
#define KILN_EXEC_H

#include "graph/ir.h"
#include "graph/select.h"
#include "ops/op.h"

typedef struct kiln__plan kiln__plan;

/* A session: a graph, a thread pool and a cache of plans per signature. */
typedef struct kiln__runner {
    const kiln_graph *g;
    kiln__pool *pool;   /* shared with sub-runners; owned if owns_pool */
    int owns_pool;
    int threads;
    size_t memory_limit; /* arena bytes a plan may take (0: unlimited) */
    kiln__plan **plans; /* most recently used first */
    int n_plans;
    kiln__plan *last;   /* plan of the last successful run */
    kiln__select_opts sel; /* algorithm choice (precision, tuning, cache); sub-runners inherit it */
    struct kiln__node_time {
        double seconds;
        int64_t calls;
    } *prof; /* per node while profiling (kiln__runner_profile), else NULL */
} kiln__runner;

/* pool NULL: creates one with threads threads. */
kiln_status kiln__runner_init(kiln__runner *r, const kiln_graph *g, kiln__pool *pool,
                              int threads);
void kiln__runner_free(kiln__runner *r);
/* Runs with positional inputs: g->n_inputs formal inputs, then g->n_outer
 * captures. NULL entries are allowed only for absent optional values. */
kiln_status kiln__runner_run(kiln__runner *r, int n, const kiln_tensor *const *inputs);
/* Builds (or finds) the plan for inputs' dtypes and shapes without running
 * it (data unused). */
kiln_status kiln__runner_plan(kiln__runner *r, int n, const kiln_tensor *const *inputs);
/* Output i of the last run (valid until the next run). */
kiln_tensor *kiln__runner_output(const kiln__runner *r, int i);

/* Turns per-node timing on (counters reset to 0) or off. */
kiln_status kiln__runner_profile(kiln__runner *r, int on);
/* 1 if node was evaluated at plan time in the last run's plan. */
int kiln__runner_folded(const kiln__runner *r, int node);
/* The algorithm that runs node in the last run's plan (NULL: the reference
 * kernel) and the operations of one run of it (0 if unknown). */
const kiln__algo *kiln__runner_algo(const kiln__runner *r, int node);
double kiln__runner_flops(const kiln__runner *r, int node);

/* Shape inference only: plans g for the input headers in (positional, as
 * kiln__runner_run; data NULL) without placing buffers and without failing on
 * nodes whose shapes cannot be inferred. types[v] (one per value of g) gets
 * the dtype and shape of value v; ndim -1 where it depends on data or could
 * not be inferred. Header-only: types own nothing. */
kiln_status kiln__infer_types(const kiln_graph *g, int n, const kiln_tensor *const *in,
                              kiln_tensor *types);

/* Bytes of the arena of the last run's plan (0 if none); data pointer of the
 * arena, to check that runs of a cached plan do not reallocate. For tests. */
size_t kiln__runner_arena_bytes(const kiln__runner *r);
const void *kiln__runner_arena_base(const kiln__runner *r);
/* Number of plans cached. */
int kiln__runner_num_plans(const kiln__runner *r);

/* For control-flow kernels: the runner of subgraph body, created on first
 * use and kept in the node's state until the enclosing plan is freed. */
kiln_status kiln__subgraph_runner(kiln__kctx *c, const kiln_graph *body, kiln__runner **out);

#endif
