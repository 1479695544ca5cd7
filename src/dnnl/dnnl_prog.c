/* src/dnnl/dnnl_prog.c: programs of oneDNN primitives (dnnl_prog.h): errors,
 * memory bindings, steps, run, cost and attributes. */
#include <stdlib.h>
#include <string.h>

#include "dnnl/dnnl_prog.h"

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* ---- errors ---------------------------------------------------------------- */

kiln_status kiln__dnnl_check(dnnl_status_t s, const char *what) {
    switch (s) {
    case dnnl_success: return KILN_OK;
    case dnnl_unimplemented:
        return kiln__err(KILN_E_UNSUPPORTED, "oneDNN: %s: no implementation for this case", what);
    case dnnl_invalid_arguments:
        return kiln__err(KILN_E_UNSUPPORTED, "oneDNN: %s: invalid arguments", what);
    case dnnl_out_of_memory: return kiln__err(KILN_E_NOMEM, "oneDNN: %s: out of memory", what);
    default: return kiln__err(KILN_E_DEVICE, "oneDNN: %s failed (status %d)", what, (int)s);
    }
}

/* ---- programs --------------------------------------------------------------------- */

kiln_status kiln__dnnl_prog_new(const kiln__kctx *c, kiln__dnnl_prog **out) {
    *out = NULL;
    KILN__TRY(kiln__dnnl_load()); /* KILN_E_UNSUPPORTED when oneDNN is not loadable */
    dnnl_engine_t eng = kiln__dnnl_engine();
    kiln__dnnl_prog *p = calloc(1, sizeof *p);
    if (!p) return kiln__err(KILN_E_NOMEM, "out of memory");
    p->nth = c->nth_plan > 0 ? c->nth_plan : 1;
    kiln_status s = kiln__dnnl_check(
        kiln__dnnl.stream_create(&p->stream, eng, dnnl_stream_default_flags), "dnnl_stream_create");
    if (s != KILN_OK) {
        free(p);
        return s;
    }
    /* primitives created from here on balance their work for p->nth threads */
    kiln__dnnl_set_threads(p->nth);
    *out = p;
    return KILN_OK;
}

void kiln__dnnl_prog_free(void *kstate) {
    kiln__dnnl_prog *p = (kiln__dnnl_prog *)kstate;
    if (!p) return;
    for (int i = 0; i < p->n_step; i++) kiln__dnnl.primitive_destroy(p->steps[i].prim);
    for (int i = 0; i < p->n_mem; i++) kiln__dnnl.memory_destroy(p->mems[i].mem);
    for (int i = 0; i < p->n_owned; i++) kiln__aligned_free(p->owned[i]);
    if (p->stream) kiln__dnnl.stream_destroy(p->stream);
    free(p);
}

kiln_status kiln__dnnl_mem_add(kiln__dnnl_prog *p, const dnnl_memory_desc_t *md,
                               kiln__dnnl_bind bind, int index, int *out) {
    if (p->n_mem == KILN__DNNL_MAX_MEMS)
        return kiln__err(KILN_E_INTERNAL, "oneDNN program: more than %d memories",
                         KILN__DNNL_MAX_MEMS);
    kiln__dnnl_mem *m = &p->mems[p->n_mem];
    memset(m, 0, sizeof *m);
    m->bind = bind;
    m->index = index;
    size_t bytes = kiln__dnnl.memory_desc_get_size(md);
    void *handle = DNNL_MEMORY_NONE;
    if (bind == KILN__DNNL_BIND_OWNED) {
        if (p->n_owned == KILN__DNNL_MAX_OWNED)
            return kiln__err(KILN_E_INTERNAL, "oneDNN program: more than %d owned buffers",
                             KILN__DNNL_MAX_OWNED);
        if (!(handle = kiln__aligned_alloc(bytes ? bytes : 64))) return KILN_E_NOMEM;
        p->owned[p->n_owned++] = handle;
    } else if (bind == KILN__DNNL_BIND_SCRATCH) {
        m->offset = p->interm_bytes;
        p->interm_bytes += align64(bytes);
    }
    KILN__TRY(kiln__dnnl_check(kiln__dnnl.memory_create(&m->mem, md, kiln__dnnl_engine(), handle),
                               "dnnl_memory_create"));
    *out = p->n_mem++;
    return KILN_OK;
}

void *kiln__dnnl_mem_data(const kiln__dnnl_prog *p, int mem) {
    void *h = NULL;
    kiln__dnnl.memory_get_data_handle(p->mems[mem].mem, &h);
    return h;
}

static const dnnl_memory_desc_t *mem_md(const kiln__dnnl_prog *p, int mem) {
    const dnnl_memory_desc_t *md = NULL;
    kiln__dnnl.memory_get_memory_desc(p->mems[mem].mem, &md);
    return md;
}

/* Appends pd's primitive; reference implementations only when allow_ref. */
static kiln_status step_add(kiln__dnnl_prog *p, const_dnnl_primitive_desc_t pd, int nargs,
                            const int *args, const int *mems, int allow_ref) {
    if (p->n_step == KILN__DNNL_MAX_STEPS || nargs + 1 > KILN__DNNL_MAX_ARGS)
        return kiln__err(KILN_E_INTERNAL, "oneDNN program: too many steps or arguments");
    const char *impl = NULL;
    kiln__dnnl.primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (!allow_ref && impl && strncmp(impl, "ref", 3) == 0)
        return kiln__err(KILN_E_UNSUPPORTED, "oneDNN has only its reference implementation (%s)",
                         impl);
    kiln__dnnl_step *st = &p->steps[p->n_step];
    memset(st, 0, sizeof *st);
    for (int i = 0; i < nargs; i++) {
        st->arg[i] = args[i];
        st->mem[i] = mems[i];
    }
    st->nargs = nargs;
    const dnnl_memory_desc_t *pad =
        kiln__dnnl.primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t pad_bytes = pad ? kiln__dnnl.memory_desc_get_size(pad) : 0;
    if (pad_bytes > 0) {
        int m;
        KILN__TRY(kiln__dnnl_mem_add(p, pad, KILN__DNNL_BIND_PAD, 0, &m));
        st->arg[st->nargs] = DNNL_ARG_SCRATCHPAD;
        st->mem[st->nargs++] = m;
        if (align64(pad_bytes) > p->pad_bytes) p->pad_bytes = align64(pad_bytes);
    }
    KILN__TRY(
        kiln__dnnl_check(kiln__dnnl.primitive_create(&st->prim, pd), "dnnl_primitive_create"));
    p->n_step++;
    return KILN_OK;
}

kiln_status kiln__dnnl_step_add(kiln__dnnl_prog *p, const_dnnl_primitive_desc_t pd, int nargs,
                                const int *args, const int *mems) {
    return step_add(p, pd, nargs, args, mems, 0);
}

/* A reorder primitive descriptor from src_md to dst_md (user scratchpad
 * when `user_pad`). */
static kiln_status reorder_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *src_md,
                              const dnnl_memory_desc_t *dst_md, int user_pad) {
    dnnl_primitive_attr_t attr = NULL;
    if (user_pad) KILN__TRY(kiln__dnnl_attr(&attr, NULL, 1.0f));
    dnnl_engine_t eng = kiln__dnnl_engine();
    dnnl_status_t ds = kiln__dnnl.reorder_primitive_desc_create(pd, src_md, eng, dst_md, eng, attr);
    if (attr) kiln__dnnl.primitive_attr_destroy(attr);
    return kiln__dnnl_check(ds, "reorder");
}

kiln_status kiln__dnnl_reorder_add(kiln__dnnl_prog *p, int src, int dst) {
    const dnnl_memory_desc_t *smd = mem_md(p, src), *dmd = mem_md(p, dst);
    dnnl_primitive_desc_t pd;
    KILN__TRY(reorder_pd(&pd, smd, dmd, 1));
    int args[2] = {DNNL_ARG_FROM, DNNL_ARG_TO}, mems[2] = {src, dst};
    kiln_status s = step_add(p, pd, 2, args, mems, 1);
    kiln__dnnl.primitive_desc_destroy(pd);
    p->cost_bytes += (double)kiln__dnnl.memory_desc_get_size(smd) +
                     (double)kiln__dnnl.memory_desc_get_size(dmd);
    return s;
}

kiln_status kiln__dnnl_const_add(kiln__dnnl_prog *p, const dnnl_memory_desc_t *user_md,
                                 const void *data, const dnnl_memory_desc_t *md, int *out) {
    int m;
    KILN__TRY(kiln__dnnl_mem_add(p, md, KILN__DNNL_BIND_OWNED, 0, &m));
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t user = NULL;
    kiln_status s = reorder_pd(&pd, user_md, md, 0);
    if (s == KILN_OK)
        s = kiln__dnnl_check(kiln__dnnl.primitive_create(&prim, pd),
                             "dnnl_primitive_create (reorder)");
    if (s == KILN_OK)
        s = kiln__dnnl_check(
            kiln__dnnl.memory_create(&user, user_md, kiln__dnnl_engine(), (void *)data),
            "dnnl_memory_create");
    if (s == KILN_OK) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, p->mems[m].mem}};
        s = kiln__dnnl_check(kiln__dnnl.primitive_execute(prim, p->stream, 2, args),
                             "reorder weights");
        if (s == KILN_OK)
            s = kiln__dnnl_check(kiln__dnnl.stream_wait(p->stream), "dnnl_stream_wait");
    }
    if (user) kiln__dnnl.memory_destroy(user);
    if (prim) kiln__dnnl.primitive_destroy(prim);
    if (pd) kiln__dnnl.primitive_desc_destroy(pd);
    if (s == KILN_OK) *out = m;
    return s;
}

kiln_status kiln__dnnl_operand(kiln__dnnl_prog *p, const dnnl_memory_desc_t *user_md,
                               const dnnl_memory_desc_t *md, kiln__dnnl_bind bind, int index,
                               int *mem, int *user) {
    KILN__TRY(kiln__dnnl_mem_add(p, user_md, bind, index, user));
    if (kiln__dnnl.memory_desc_equal(user_md, md)) {
        *mem = *user;
        return KILN_OK;
    }
    return kiln__dnnl_mem_add(p, md, KILN__DNNL_BIND_SCRATCH, 0, mem);
}

void kiln__dnnl_prog_finish(kiln__kctx *c, kiln__dnnl_prog *p) {
    size_t bytes = p->interm_bytes + p->pad_bytes;
    c->scratch_bytes = bytes ? bytes + 64 : 0; /* + slack to align c->scratch */
    c->kstate = p;
}

/* ---- run and cost ------------------------------------------------------------ */

kiln_status kiln__dnnl_run(kiln__kctx *c) {
    kiln__dnnl_prog *p = (kiln__dnnl_prog *)c->kstate;
    char *base = (char *)(((uintptr_t)c->scratch + 63) & ~(uintptr_t)63);
    kiln__dnnl_set_threads(p->nth);
    for (int i = 0; i < p->n_mem; i++) {
        kiln__dnnl_mem *m = &p->mems[i];
        void *h;
        switch (m->bind) {
        case KILN__DNNL_BIND_IN: h = c->in[m->index]->data; break;
        case KILN__DNNL_BIND_OUT: h = c->out[m->index]->data; break;
        case KILN__DNNL_BIND_SCRATCH: h = base + m->offset; break;
        case KILN__DNNL_BIND_PAD: h = base + p->interm_bytes; break;
        default: continue; /* OWNED: set at prepare */
        }
        KILN__TRY(kiln__dnnl_check(kiln__dnnl.memory_set_data_handle(m->mem, h),
                                   "dnnl_memory_set_data_handle"));
    }
    for (int i = 0; i < p->n_step; i++) {
        const kiln__dnnl_step *st = &p->steps[i];
        dnnl_exec_arg_t args[KILN__DNNL_MAX_ARGS];
        for (int k = 0; k < st->nargs; k++) {
            args[k].arg = st->arg[k];
            args[k].memory = p->mems[st->mem[k]].mem;
        }
        KILN__TRY(kiln__dnnl_check(
            kiln__dnnl.primitive_execute(st->prim, p->stream, st->nargs, args),
            "dnnl_primitive_execute"));
    }
    return kiln__dnnl_check(kiln__dnnl.stream_wait(p->stream), "dnnl_stream_wait");
}

double kiln__dnnl_cost(const kiln__kctx *c) {
    const kiln__dnnl_prog *p = (const kiln__dnnl_prog *)c->kstate;
    return kiln__cost_seconds(c, p->cost_flops, p->cost_eff, p->cost_bytes);
}

static double fill(double x, double t) {
    double tiles = (double)(int64_t)((x + t - 1) / t);
    return x > 0 ? x / (tiles * t) : 1.0;
}

double kiln__dnnl_gemm_eff(double m, double n, double k) {
    return 0.6 * fill(m, 8) * fill(n, 16) * (k / (k + 8.0));
}

/* ---- attributes ------------------------------------------------------------------ */

kiln_status kiln__dnnl_post_act(dnnl_post_ops_t po, const kiln__act *act) {
    dnnl_alg_kind_t alg;
    float alpha = 0.0f, beta = 0.0f;
    switch (act->kind) {
    case KILN__ACT_NONE: return KILN_OK;
    case KILN__ACT_RELU: alg = dnnl_eltwise_relu; break;
    case KILN__ACT_CLIP:
        alg = dnnl_eltwise_clip;
        alpha = act->lo;
        beta = act->hi;
        break;
    case KILN__ACT_GELU: alg = dnnl_eltwise_gelu_erf; break;
    case KILN__ACT_GELU_TANH: alg = dnnl_eltwise_gelu_tanh; break;
    case KILN__ACT_SILU:
        alg = dnnl_eltwise_swish; /* x * sigmoid(alpha x) */
        alpha = 1.0f;
        break;
    default: return kiln__err(KILN_E_UNSUPPORTED, "oneDNN: activation %d", (int)act->kind);
    }
    return kiln__dnnl_check(kiln__dnnl.post_ops_append_eltwise(po, 1.0f, alg, alpha, beta),
                            "eltwise post-op");
}

kiln_status kiln__dnnl_attr(dnnl_primitive_attr_t *attr, const_dnnl_post_ops_t po, float alpha) {
    KILN__TRY(
        kiln__dnnl_check(kiln__dnnl.primitive_attr_create(attr), "dnnl_primitive_attr_create"));
    dnnl_status_t s =
        kiln__dnnl.primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success && po) s = kiln__dnnl.primitive_attr_set_post_ops(*attr, po);
    if (s == dnnl_success && alpha != 1.0f)
        s = kiln__dnnl.primitive_attr_set_output_scales(*attr, 1, 0, &alpha);
    if (s != dnnl_success) {
        kiln__dnnl.primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return kiln__dnnl_check(s, "primitive attributes");
}

kiln_status kiln__dnnl_md_plain(dnnl_memory_desc_t *md, int ndim, const int64_t *dims,
                                dnnl_data_type_t dt) {
    if (ndim < 1 || ndim > DNNL_MAX_NDIMS)
        return kiln__err(KILN_E_UNSUPPORTED, "oneDNN: rank %d", ndim);
    dnnl_dims_t d, str;
    dnnl_dim_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        d[i] = dims[i];
        str[i] = s;
        s *= dims[i] > 0 ? dims[i] : 1;
    }
    return kiln__dnnl_check(kiln__dnnl.memory_desc_init_by_strides(md, ndim, d, dt, str),
                            "memory descriptor");
}
