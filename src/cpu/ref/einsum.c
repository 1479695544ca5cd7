/* src/cpu/ref/einsum.c: reference kernel of Einsum.
 *
 * The equation is parsed into labels: letters a-z, A-Z, and one label per
 * dim covered by "..." (right-aligned across operands, broadcasting). Each
 * operand gets one element stride per label: the sum of the strides of its
 * axes carrying that label (so a repeated label walks a diagonal) and 0 for
 * labels it lacks or broadcasts. The output is every combination of the
 * output labels, each the sum over all combinations of the other labels of
 * the product of the operands.
 */
#include <stdio.h>
#include <string.h>

#include "ops/op.h"

#define EIN_LETTERS 52
#define EIN_MAX_LABELS (EIN_LETTERS + KILN_MAX_DIMS)
#define EIN_MAX_OPS 16

typedef struct ein_prob {
    int nops;
    int nout, nloop;                          /* output labels; all labels (output first) */
    int64_t size[EIN_MAX_LABELS];             /* per loop label */
    int64_t str[EIN_MAX_OPS][EIN_MAX_LABELS]; /* per operand, per loop label */
    int64_t out_size, sum_size;
} ein_prob;

static int ein_letter(char ch) {
    if (ch >= 'a' && ch <= 'z') return ch - 'a';
    if (ch >= 'A' && ch <= 'Z') return 26 + ch - 'A';
    return -1;
}

/* One term of the equation: labels of its axes ("..." as -1). */
typedef struct ein_term {
    int n, ell; /* n entries; ell: index of "..." or -1 */
    int lab[KILN_MAX_DIMS + 1];
} ein_term;

/* Parses s[0..len) into t; fails naming the term. */
static kiln_status ein_parse_term(const char *s, size_t len, const char *what, ein_term *t) {
    t->n = 0;
    t->ell = -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') continue;
        if (t->n > KILN_MAX_DIMS)
            return kiln__err(KILN_E_INVAL, "equation: %s has more than %d labels", what,
                             KILN_MAX_DIMS);
        if (s[i] == '.') {
            if (t->ell >= 0 || i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.')
                return kiln__err(KILN_E_INVAL, "equation: %s has a malformed or repeated '...'",
                                 what);
            t->ell = t->n;
            t->lab[t->n++] = -1;
            i += 2;
            continue;
        }
        int l = ein_letter(s[i]);
        if (l < 0)
            return kiln__err(KILN_E_INVAL,
                             "equation: %s has the character '%c', expected letters or '...'",
                             what, s[i]);
        t->lab[t->n++] = l;
    }
    return KILN_OK;
}

/* Parses the equation against the inputs and fills p and the output shape. */
static kiln_status ein_setup(const kiln__kctx *c, ein_prob *p, int *ondim, int64_t *odims) {
    memset(p, 0, sizeof(*p));
    const char *eq = kiln__attr_s(c->node, "equation", NULL);
    if (!eq) return kiln__err(KILN_E_INVAL, "attribute 'equation' is required");
    if (c->n_in > EIN_MAX_OPS)
        return kiln__err(KILN_E_UNSUPPORTED, "%d operands, at most %d supported", c->n_in,
                         EIN_MAX_OPS);
    p->nops = c->n_in;
    kiln_dtype dt = c->in[0]->dtype;

    /* input terms, split on ',' up to "->" */
    const char *arrow = strstr(eq, "->"), *end = arrow ? arrow : eq + strlen(eq), *s = eq;
    ein_term terms[EIN_MAX_OPS];
    int nterm = 0;
    for (;;) {
        const char *comma = memchr(s, ',', end - s), *e = comma ? comma : end;
        if (nterm == p->nops)
            return kiln__err(KILN_E_INVAL, "equation '%s' has more terms than the %d inputs", eq,
                             p->nops);
        char what[32];
        snprintf(what, sizeof what, "term %d", nterm);
        KILN__TRY(ein_parse_term(s, e - s, what, &terms[nterm++]));
        if (!comma) break;
        s = comma + 1;
    }
    if (nterm != p->nops)
        return kiln__err(KILN_E_INVAL, "equation '%s' has %d terms for %d inputs", eq, nterm,
                         p->nops);

    /* label sizes; ellipsis dims become labels EIN_LETTERS + k, right-aligned */
    int64_t lsize[EIN_MAX_LABELS];
    int count[EIN_MAX_LABELS] = {0}, ell_rank = 0;
    for (int l = 0; l < EIN_MAX_LABELS; l++) lsize[l] = 1;
    int axis_lab[EIN_MAX_OPS][KILN_MAX_DIMS];
    for (int i = 0; i < p->nops; i++) {
        const kiln_tensor *t = c->in[i];
        if (t->dtype != dt)
            return kiln__err(KILN_E_TYPE, "input %d is %s, expected %s like input 0", i,
                             kiln_dtype_name(t->dtype), kiln_dtype_name(dt));
        int letters = terms[i].n - (terms[i].ell >= 0), ne = t->ndim - letters;
        if (ne < 0 || (terms[i].ell < 0 && ne != 0)) {
            char buf[96];
            return kiln__err(KILN_E_SHAPE, "input %d has shape %s, but its term has %d labels%s", i,
                             kiln__shape_str(t->ndim, t->dims, buf, sizeof buf), letters,
                             terms[i].ell >= 0 ? " and '...'" : "");
        }
        if (ne > ell_rank) ell_rank = ne;
    }
    for (int i = 0; i < p->nops; i++) {
        const kiln_tensor *t = c->in[i];
        int letters = terms[i].n - (terms[i].ell >= 0), ne = t->ndim - letters, ax = 0;
        for (int j = 0; j < terms[i].n; j++) {
            if (terms[i].lab[j] >= 0) {
                axis_lab[i][ax++] = terms[i].lab[j];
                continue;
            }
            for (int k = 0; k < ne; k++) axis_lab[i][ax++] = EIN_LETTERS + ell_rank - ne + k;
        }
        for (int a = 0; a < t->ndim; a++) {
            int l = axis_lab[i][a];
            int64_t d = t->dims[a];
            count[l]++;
            if (d != 1 && lsize[l] != 1 && d != lsize[l])
                return kiln__err(KILN_E_SHAPE,
                                 "input %d axis %d has size %lld but its label '%c' "
                                 "has size %lld elsewhere",
                                 i, a, (long long)d,
                                 l < EIN_LETTERS ? (l < 26 ? 'a' + l : 'A' + l - 26) : '.',
                                 (long long)lsize[l]);
            if (d != 1) lsize[l] = d;
        }
    }

    /* output labels: explicit after "->", else "..." then letters used once (ASCII order) */
    int order[EIN_MAX_LABELS], used[EIN_MAX_LABELS] = {0};
    p->nout = 0;
    if (arrow) {
        ein_term out;
        KILN__TRY(ein_parse_term(arrow + 2, strlen(arrow + 2), "the output", &out));
        for (int j = 0; j < out.n; j++) {
            if (out.lab[j] < 0) {
                for (int k = 0; k < ell_rank; k++) order[p->nout++] = EIN_LETTERS + k;
                continue;
            }
            int l = out.lab[j];
            if (!count[l] || used[l])
                return kiln__err(KILN_E_INVAL, "equation '%s': output label '%c' is %s", eq,
                                 l < 26 ? 'a' + l : 'A' + l - 26,
                                 used[l] ? "repeated" : "not in any input");
            used[l] = 1;
            order[p->nout++] = l;
        }
        for (int k = 0; k < ell_rank; k++) used[EIN_LETTERS + k] |= out.ell >= 0;
    } else {
        for (int k = 0; k < ell_rank; k++) {
            order[p->nout++] = EIN_LETTERS + k;
            used[EIN_LETTERS + k] = 1;
        }
        for (int l = 26; l < EIN_LETTERS; l++) /* uppercase sorts first in ASCII */
            if (count[l] == 1) order[p->nout++] = l, used[l] = 1;
        for (int l = 0; l < 26; l++)
            if (count[l] == 1) order[p->nout++] = l, used[l] = 1;
    }
    p->nloop = p->nout;
    for (int l = 0; l < EIN_MAX_LABELS; l++)
        if (count[l] && !used[l]) order[p->nloop++] = l;

    /* strides per operand per loop label */
    p->out_size = p->sum_size = 1;
    for (int j = 0; j < p->nloop; j++) {
        p->size[j] = lsize[order[j]];
        int64_t *prod = j < p->nout ? &p->out_size : &p->sum_size;
        if (!kiln__dims_mul(*prod, p->size[j], prod))
            return kiln__err(KILN_E_LIMIT, "equation '%s' loops over too many index combinations",
                             eq);
    }
    for (int i = 0; i < p->nops; i++) {
        const kiln_tensor *t = c->in[i];
        int64_t st[KILN_MAX_DIMS];
        kiln__contiguous_strides(t->ndim, t->dims, st);
        for (int j = 0; j < p->nloop; j++)
            for (int a = 0; a < t->ndim; a++)
                if (axis_lab[i][a] == order[j] && t->dims[a] != 1) p->str[i][j] += st[a];
    }
    *ondim = p->nout;
    memcpy(odims, p->size, p->nout * sizeof(int64_t));
    return KILN_OK;
}

/* inputs: any number of tensors of one numeric dtype; y: the output labels'
 * sizes, same dtype. */
kiln_status kiln__infer_Einsum(kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "Inputs", KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_F16,
                                KILN_DTYPE_BF16, KILN_DTYPE_I8, KILN_DTYPE_U8, KILN_DTYPE_I16,
                                KILN_DTYPE_U16, KILN_DTYPE_I32, KILN_DTYPE_U32, KILN_DTYPE_I64,
                                KILN_DTYPE_U64, 0));
    ein_prob p;
    int nd;
    int64_t dims[EIN_MAX_LABELS];
    KILN__TRY(ein_setup(c, &p, &nd, dims));
    if (nd > KILN_MAX_DIMS)
        return kiln__err(KILN_E_UNSUPPORTED, "output rank %d exceeds %d", nd, KILN_MAX_DIMS);
    return kiln__out_shape(c, 0, c->in[0]->dtype, nd, dims);
}

/* y[o] = sum over the summed labels s of prod_i X_i[o, s]: floats in
 * double, integers in wrapping int64. */
kiln_status kiln__ref_Einsum(kiln__kctx *c) {
    ein_prob p;
    int nd;
    int64_t dims[EIN_MAX_LABELS];
    KILN__TRY(ein_setup(c, &p, &nd, dims));
    kiln_tensor *y = c->out[0];
    kiln_dtype dt = y->dtype;
    int ints = !kiln__dtype_is_float(dt), nops = p.nops, nsum = p.nloop - p.nout;
    const int64_t *ssize = p.size + p.nout;
    int64_t lo, hi;
    kiln__split(p.out_size, c->ith, c->nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        int64_t base[EIN_MAX_OPS] = {0}, rem = o;
        for (int j = p.nout - 1; j >= 0; j--) {
            int64_t idx = rem % p.size[j];
            rem /= p.size[j];
            for (int i = 0; i < nops; i++) base[i] += idx * p.str[i][j];
        }
        double acc = 0;
        uint64_t iacc = 0;
        int64_t sidx[EIN_MAX_LABELS] = {0}, off[EIN_MAX_OPS];
        memcpy(off, base, sizeof off);
        for (int64_t s = 0; s < p.sum_size; s++) {
            if (ints) {
                uint64_t prod = 1;
                for (int i = 0; i < nops; i++)
                    prod *= (uint64_t)kiln__ld_i(dt, c->in[i]->data, off[i]);
                iacc += prod;
            } else {
                double prod = 1;
                for (int i = 0; i < nops; i++) prod *= kiln__elem_ld_f(dt, c->in[i]->data, off[i]);
                acc += prod;
            }
            for (int j = nsum - 1; j >= 0; j--) { /* next summed index, offsets in step */
                if (++sidx[j] < ssize[j]) {
                    for (int i = 0; i < nops; i++) off[i] += p.str[i][p.nout + j];
                    break;
                }
                sidx[j] = 0;
                for (int i = 0; i < nops; i++) off[i] -= (ssize[j] - 1) * p.str[i][p.nout + j];
            }
        }
        if (ints)
            kiln__st_i(dt, y->data, o, (int64_t)iacc);
        else
            kiln__st_f(dt, y->data, o, acc);
    }
    return KILN_OK;
}
