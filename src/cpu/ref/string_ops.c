/* src/cpu/ref/string_ops.c: string ops of ai.onnx.
 *
 *   StringConcat      elementwise a + b with broadcasting
 *   StringNormalizer  stopword removal and case change of a [C] / [1,C] tensor
 *   StringSplit       split each element; pads the rows with ""
 *   RegexFullMatch    full match of each element against an RE2 pattern,
 *                     translated to a POSIX extended regex (glibc <regex.h>)
 *   TfIdfVectorizer   n-gram counts (with skips) of int or string rows
 *
 * STRING tensors hold one owned char* per element; kernels replace an output
 * element with kiln__str_set / kiln__str_take (core/elem.h; they free the
 * old string). These are the only mallocs of the kernels here (plus
 * regcomp's own in RegexFullMatch).
 */
#include <ctype.h>
#include <locale.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

#include "ops/op.h"

static inline const char *str_at(const kiln_tensor *t, int64_t i) {
    const char *s = ((char *const *)t->data)[i];
    return s ? s : "";
}

/* ---- StringConcat ---------------------------------------------------------- */

// X: string (broadcastable with Y), Y: string, Z: string of the broadcast shape
kiln_status kiln__infer_StringConcat(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->in[1];
    KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_STRING, 0));
    KILN__TRY(kiln__check_dtype(y, "Y", KILN_DTYPE_STRING, 0));
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(kiln__broadcast(x->ndim, x->dims, y->ndim, y->dims, &nd, dims));
    return kiln__out_shape(c, 0, KILN_DTYPE_STRING, nd, dims);
}

kiln_status kiln__ref_StringConcat(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->in[1];
    kiln_tensor *z = c->out[0];
    int64_t strides[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    kiln__bcast_strides(x->ndim, x->dims, z->ndim, z->dims, strides[0]);
    kiln__bcast_strides(y->ndim, y->dims, z->ndim, z->dims, strides[1]);
    kiln__iter it;
    kiln__iter_init(&it, z->ndim, z->dims, 2, strides);
    int64_t n = kiln__n(z);
    for (int64_t k = 0; k < n; k++, kiln__iter_next(&it)) {
        const char *a = str_at(x, it.off[0]), *b = str_at(y, it.off[1]);
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 1);
        if (s) {
            memcpy(s, a, la);
            memcpy(s + la, b, lb + 1);
        }
        KILN__TRY(kiln__str_take(z, k, s));
    }
    return KILN_OK;
}

/* ---- StringNormalizer ------------------------------------------------------- */

/* Decodes one UTF-8 sequence at s (n bytes left) into *cp; returns its length,
 * or 0 if it is not valid UTF-8. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    int len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3
            : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (size_t)len > n) return 0;
    uint32_t v = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static int utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

typedef enum { CASE_NONE, CASE_LOWER, CASE_UPPER } case_action;

/* Writes s with its case changed into out (if not NULL) and returns the
 * byte length. Code points are mapped with the C.UTF-8 locale when loc is not
 * 0, ASCII otherwise; bytes that are not valid UTF-8 are copied. */
static size_t str_change_case(const char *s, case_action action, locale_t loc, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        char buf[4];
        int len = utf8_decode(p + i, n - i, &cp);
        if (len == 0) {
            if (out) out[o] = (char)p[i];
            o++, i++;
            continue;
        }
        if (action != CASE_NONE) {
            if (loc)
                cp = (uint32_t)(action == CASE_LOWER ? towlower_l((wint_t)cp, loc)
                                                     : towupper_l((wint_t)cp, loc));
            else if (cp < 0x80)
                cp = (uint32_t)(action == CASE_LOWER ? tolower((int)cp) : toupper((int)cp));
        }
        int w = utf8_encode(cp, buf);
        if (out) memcpy(out + o, buf, (size_t)w);
        o += (size_t)w;
        i += (size_t)len;
    }
    if (out) out[o] = 0;
    return o;
}

typedef struct strnorm_params {
    case_action action;
    int case_sensitive;
    int n_stop;
    char *const *stop;
} strnorm_params;

static kiln_status strnorm_parse(const kiln__kctx *c, strnorm_params *p) {
    const char *action = kiln__attr_s(c->node, "case_change_action", "NONE");
    if (strcmp(action, "NONE") == 0) p->action = CASE_NONE;
    else if (strcmp(action, "LOWER") == 0) p->action = CASE_LOWER;
    else if (strcmp(action, "UPPER") == 0) p->action = CASE_UPPER;
    else
        return kiln__err(KILN_E_INVAL, "attribute 'case_change_action' is '%s', expected NONE, "
                         "LOWER or UPPER", action);
    p->case_sensitive = kiln__attr_i(c->node, "is_case_sensitive", 0) != 0;
    p->n_stop = kiln__attr_strings(c->node, "stopwords", &p->stop);
    if (p->n_stop < 0) p->n_stop = 0;
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_STRING, 0));
    if (!(x->ndim == 1 || (x->ndim == 2 && x->dims[0] == 1))) {
        char got[128];
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected [C] or [1,C]",
                         kiln__shape_str(x->ndim, x->dims, got, sizeof got));
    }
    return KILN_OK;
}

/* 1 if s is a stopword (compared ASCII-case-insensitively unless
 * is_case_sensitive). */
static int strnorm_is_stop(const strnorm_params *p, const char *s) {
    for (int i = 0; i < p->n_stop; i++)
        if (p->case_sensitive ? strcmp(s, p->stop[i]) == 0 : strcasecmp(s, p->stop[i]) == 0)
            return 1;
    return 0;
}

// X: [C] or [1,C] string, Y: [K] or [1,K] string, K = kept elements (at least 1)
kiln_status kiln__infer_StringNormalizer(kiln__kctx *c) {
    strnorm_params p;
    KILN__TRY(strnorm_parse(c, &p));
    const kiln_tensor *x = c->in[0];
    int64_t n = kiln__n(x), kept = n;
    if (p.n_stop > 0) {
        KILN__NEED(c, 0);
        kept = 0;
        for (int64_t i = 0; i < n; i++) kept += !strnorm_is_stop(&p, str_at(x, i));
    }
    if (kept == 0) kept = 1; /* all dropped: one "" */
    int64_t dims[2] = {1, kept};
    return kiln__out_shape(c, 0, KILN_DTYPE_STRING, x->ndim, x->ndim == 1 ? dims + 1 : dims);
}

kiln_status kiln__ref_StringNormalizer(kiln__kctx *c) {
    strnorm_params p;
    KILN__TRY(strnorm_parse(c, &p));
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    int64_t n = kiln__n(x), o = 0;
    locale_t loc = p.action == CASE_NONE ? 0 : newlocale(LC_CTYPE_MASK, "C.UTF-8", 0);
    kiln_status st = KILN_OK;
    for (int64_t i = 0; i < n && st == KILN_OK; i++) {
        const char *s = str_at(x, i);
        if (strnorm_is_stop(&p, s)) continue;
        if (o >= kiln__n(y)) {
            st = kiln__err(KILN_E_SHAPE, "StringNormalizer output has %lld elements, too few",
                           (long long)kiln__n(y));
            break;
        }
        char *t = malloc(str_change_case(s, p.action, loc, NULL) + 1);
        if (t) str_change_case(s, p.action, loc, t);
        st = kiln__str_take(y, o++, t);
    }
    if (st == KILN_OK && o == 0) st = kiln__str_set(y, 0, "", 0);
    if (loc) freelocale(loc);
    return st;
}

/* ---- StringSplit ------------------------------------------------------------- */

typedef kiln_status (*split_emit_fn)(void *arg, int64_t k, const char *piece, size_t len);

/* Calls emit(arg, k, piece, len) (if emit is not NULL) for each piece k of s
 * split by delim, or by runs of whitespace when delim is "" (leading and
 * trailing whitespace dropped), with at most maxsplit splits (< 0: no
 * limit). Sets *count to the number of pieces. */
static kiln_status str_split(const char *s, const char *delim, int64_t maxsplit,
                             split_emit_fn emit, void *arg, int64_t *count) {
    int64_t k = 0;
    size_t dl = strlen(delim);
    if (dl > 0) {
        const char *p = s;
        for (;;) {
            const char *hit = (maxsplit < 0 || k < maxsplit) ? strstr(p, delim) : NULL;
            size_t len = hit ? (size_t)(hit - p) : strlen(p);
            if (emit) KILN__TRY(emit(arg, k, p, len));
            k++;
            if (!hit) break;
            p = hit + dl;
        }
    } else { /* whitespace: runs are one separator, no empty pieces */
        const char *p = s;
        while (*p && isspace((unsigned char)*p)) p++;
        while (*p) {
            const char *end = p;
            if (maxsplit >= 0 && k >= maxsplit) { /* the rest, less trailing spaces */
                end = p + strlen(p);
                while (end > p && isspace((unsigned char)end[-1])) end--;
            } else {
                while (*end && !isspace((unsigned char)*end)) end++;
            }
            if (emit) KILN__TRY(emit(arg, k, p, (size_t)(end - p)));
            k++;
            p = end;
            while (*p && isspace((unsigned char)*p)) p++;
        }
    }
    *count = k;
    return KILN_OK;
}

static kiln_status split_params(const kiln__kctx *c, const char **delim, int64_t *maxsplit) {
    KILN__TRY(kiln__check_dtype(c->in[0], "X", KILN_DTYPE_STRING, 0));
    *delim = kiln__attr_s(c->node, "delimiter", "");
    *maxsplit = kiln__attr_i(c->node, "maxsplit", -1);
    if (c->in[0]->ndim + 1 > KILN_MAX_DIMS)
        return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, at most %d supported",
                         c->in[0]->ndim, KILN_MAX_DIMS - 1);
    return KILN_OK;
}

// X: (d...) string; Y: (d..., M) string, M = most pieces of any element;
// Z: (d...) int64 number of pieces of each element
kiln_status kiln__infer_StringSplit(kiln__kctx *c) {
    const char *delim;
    int64_t maxsplit;
    KILN__TRY(split_params(c, &delim, &maxsplit));
    const kiln_tensor *x = c->in[0];
    int64_t n = kiln__n(x), most = 0;
    if (n > 0) KILN__NEED(c, 0);
    for (int64_t i = 0; i < n; i++) {
        int64_t k;
        KILN__TRY(str_split(str_at(x, i), delim, maxsplit, NULL, NULL, &k));
        if (k > most) most = k;
    }
    int64_t dims[KILN_MAX_DIMS];
    memcpy(dims, x->dims, sizeof(int64_t) * x->ndim);
    dims[x->ndim] = most;
    KILN__TRY(kiln__out_shape(c, 0, KILN_DTYPE_STRING, x->ndim + 1, dims));
    return kiln__out_shape(c, 1, KILN_DTYPE_I64, x->ndim, x->dims);
}

typedef struct split_row {
    kiln_tensor *y;
    int64_t base, width;
} split_row;

static kiln_status split_emit(void *arg, int64_t k, const char *piece, size_t len) {
    split_row *r = arg;
    if (k >= r->width)
        return kiln__err(KILN_E_SHAPE, "StringSplit output has %lld columns, too few",
                         (long long)r->width);
    return kiln__str_set(r->y, r->base + k, piece, len);
}

kiln_status kiln__ref_StringSplit(kiln__kctx *c) {
    const char *delim;
    int64_t maxsplit;
    KILN__TRY(split_params(c, &delim, &maxsplit));
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = kiln__out(c, 0), *lengths = kiln__out(c, 1);
    int64_t n = kiln__n(x), width = y ? y->dims[y->ndim - 1] : 0;
    for (int64_t i = 0; i < n; i++) {
        split_row row = {y, i * width, width};
        int64_t k;
        KILN__TRY(str_split(str_at(x, i), delim, maxsplit, y ? split_emit : NULL, &row, &k));
        for (int64_t j = k; y && j < width; j++) KILN__TRY(kiln__str_set(y, i * width + j, "", 0));
        if (lengths) ((int64_t *)lengths->data)[i] = k;
    }
    return KILN_OK;
}

/* ---- RegexFullMatch ----------------------------------------------------------- */

/* Appends s to the ERE being built; fails when it would not fit in cap. */
typedef struct ere_buf {
    char *out;
    size_t len, cap;
} ere_buf;

static kiln_status ere_put(ere_buf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap)
        return kiln__err(KILN_E_LIMIT, "attribute 'pattern' is too long to translate");
    memcpy(b->out + b->len, s, n + 1);
    b->len += n;
    return KILN_OK;
}

static kiln_status ere_putc(ere_buf *b, char ch) {
    char s[2] = {ch, 0};
    return ere_put(b, s);
}

/* Bytes of translated pattern per input byte, at most (see re2_to_ere). */
#define ERE_EXPANSION 16

/* Translates an RE2 bracket expression starting after '[' at *pp. Escaped
 * '-', ']' and '^' are moved to their POSIX-literal positions. */
static kiln_status re2_bracket_to_ere(const char **pp, ere_buf *b) {
    const char *p = *pp;
    int lit_hyphen = 0, lit_rbracket = 0, lit_caret = 0;
    KILN__TRY(ere_putc(b, '['));
    if (*p == '^') {
        KILN__TRY(ere_putc(b, '^'));
        p++;
    }
    size_t items_at = b->len;
    if (*p == ']') { /* a leading ']' is literal in both syntaxes */
        lit_rbracket = 1;
        p++;
    }
    while (*p && *p != ']') {
        if (p[0] == '[' && p[1] == ':') { /* POSIX class [:name:] */
            const char *end = strstr(p + 2, ":]");
            if (!end) return kiln__err(KILN_E_INVAL, "attribute 'pattern' has an unclosed [:class:]");
            for (; p < end + 2; p++) KILN__TRY(ere_putc(b, *p));
            continue;
        }
        if (*p != '\\') {
            if (*p == '^' && b->len == items_at) lit_caret = 1; /* keep it from negating */
            else KILN__TRY(ere_putc(b, *p));
            p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'd': KILN__TRY(ere_put(b, "[:digit:]")); break;
        case 'w': KILN__TRY(ere_put(b, "[:alnum:]_")); break;
        case 's': KILN__TRY(ere_put(b, "[:space:]")); break;
        case 'n': KILN__TRY(ere_putc(b, '\n')); break;
        case 't': KILN__TRY(ere_putc(b, '\t')); break;
        case 'r': KILN__TRY(ere_putc(b, '\r')); break;
        case '-': lit_hyphen = 1; break;
        case ']': lit_rbracket = 1; break;
        case '^': lit_caret = 1; break;
        case 0: return kiln__err(KILN_E_INVAL, "attribute 'pattern' ends inside a bracket");
        default:
            if (isalnum((unsigned char)e))
                return kiln__err(KILN_E_UNSUPPORTED, "attribute 'pattern': escape \\%c inside "
                                 "[...] has no POSIX equivalent", e);
            KILN__TRY(ere_putc(b, e)); /* \. \\ \[ ... are literals */
        }
    }
    if (*p != ']') return kiln__err(KILN_E_INVAL, "attribute 'pattern' has an unclosed '['");
    if (lit_rbracket) { /* ']' must come first among the items */
        if (b->len + 2 > b->cap) return kiln__err(KILN_E_LIMIT, "attribute 'pattern' is too long");
        memmove(b->out + items_at + 1, b->out + items_at, b->len - items_at + 1);
        b->out[items_at] = ']';
        b->len++;
    }
    if (lit_caret) KILN__TRY(ere_putc(b, '^')); /* not first: literal */
    if (lit_hyphen) KILN__TRY(ere_putc(b, '-')); /* last: literal */
    KILN__TRY(ere_putc(b, ']'));
    *pp = p + 1;
    return KILN_OK;
}

/* Translates the RE2 pattern re into an anchored POSIX ERE "^(...)$" (glibc
 * extensions \b \B kept). Lazy quantifiers become greedy (a full match does
 * not depend on greediness); non-capturing and named groups become plain
 * groups. Constructs with no POSIX equivalent (lookaround, flags, \p, \x...)
 * fail with KILN_E_UNSUPPORTED. */
static kiln_status re2_to_ere(const char *re, ere_buf *b) {
    KILN__TRY(ere_put(b, "^("));
    int after_quant = 0; /* previous token was a quantifier */
    for (const char *p = re; *p;) {
        int quant = 0;
        if (*p == '\\') {
            char e = p[1];
            static const char *const classes[][2] = {
                {"d", "[[:digit:]]"}, {"D", "[^[:digit:]]"}, {"w", "[[:alnum:]_]"},
                {"W", "[^[:alnum:]_]"}, {"s", "[[:space:]]"}, {"S", "[^[:space:]]"},
                {"b", "\\b"}, {"B", "\\B"}, {"A", "^"}, {"z", "$"},
                {"n", "\n"}, {"t", "\t"}, {"r", "\r"}, {"f", "\f"}, {"v", "\v"},
            };
            const char *rep = NULL;
            for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
                if (e && classes[i][0][0] == e) rep = classes[i][1];
            if (rep) {
                KILN__TRY(ere_put(b, rep));
            } else if (e == 0) {
                return kiln__err(KILN_E_INVAL, "attribute 'pattern' ends with '\\'");
            } else if (isalnum((unsigned char)e)) {
                return kiln__err(KILN_E_UNSUPPORTED, "attribute 'pattern': escape \\%c has no "
                                 "POSIX equivalent", e);
            } else if (strchr(".[](){}*+?|^$\\", e)) {
                KILN__TRY(ere_putc(b, '\\'));
                KILN__TRY(ere_putc(b, e));
            } else {
                KILN__TRY(ere_putc(b, e));
            }
            p += 2;
        } else if (*p == '[') {
            p++;
            KILN__TRY(re2_bracket_to_ere(&p, b));
        } else if (p[0] == '(' && p[1] == '?') {
            if (p[2] == ':') {
                p += 3;
            } else if ((p[2] == 'P' && p[3] == '<') || (p[2] == '<' && p[3] != '=' && p[3] != '!')) {
                const char *end = strchr(p, '>');
                if (!end) return kiln__err(KILN_E_INVAL, "attribute 'pattern' has an unclosed group name");
                p = end + 1;
            } else {
                return kiln__err(KILN_E_UNSUPPORTED, "attribute 'pattern': '(?%c' has no POSIX "
                                 "equivalent", p[2] ? p[2] : ' ');
            }
            KILN__TRY(ere_putc(b, '('));
        } else if (*p == '?' && after_quant) {
            p++; /* lazy marker */
        } else {
            quant = *p == '*' || *p == '+' || *p == '?' || *p == '}';
            KILN__TRY(ere_putc(b, *p));
            p++;
        }
        after_quant = quant;
    }
    return ere_put(b, ")$");
}

static kiln_status regex_compile(const kiln__kctx *c, regex_t *rx) {
    const char *pattern = kiln__attr_s(c->node, "pattern", NULL);
    if (!pattern) return kiln__err(KILN_E_INVAL, "attribute 'pattern' is required");
    size_t need = strlen(pattern) * ERE_EXPANSION + 8;
    if (c->scratch_bytes < need)
        return kiln__err(KILN_E_INTERNAL, "RegexFullMatch scratch is %zu bytes, needs %zu",
                         c->scratch_bytes, need);
    ere_buf b = {c->scratch, 0, c->scratch_bytes};
    KILN__TRY(re2_to_ere(pattern, &b));
    int rc = regcomp(rx, b.out, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, rx, msg, sizeof msg);
        return kiln__err(KILN_E_INVAL, "attribute 'pattern' '%s' does not compile (as POSIX "
                         "'%s'): %s", pattern, b.out, msg);
    }
    return KILN_OK;
}

// X: (d...) string, Y: (d...) bool
kiln_status kiln__infer_RegexFullMatch(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_STRING, 0));
    const char *pattern = kiln__attr_s(c->node, "pattern", NULL);
    if (!pattern) return kiln__err(KILN_E_INVAL, "attribute 'pattern' is required");
    c->scratch_bytes = strlen(pattern) * ERE_EXPANSION + 8;
    return kiln__out_shape(c, 0, KILN_DTYPE_BOOL, x->ndim, x->dims);
}

kiln_status kiln__ref_RegexFullMatch(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    regex_t rx;
    KILN__TRY(regex_compile(c, &rx));
    int64_t n = kiln__n(x);
    for (int64_t i = 0; i < n; i++)
        ((uint8_t *)y->data)[i] = regexec(&rx, str_at(x, i), 0, NULL, 0) == 0;
    regfree(&rx);
    return KILN_OK;
}

/* ---- TfIdfVectorizer --------------------------------------------------------- */

typedef enum { TFIDF_TF, TFIDF_IDF, TFIDF_TFIDF } tfidf_mode;

typedef struct tfidf_params {
    tfidf_mode mode;
    int64_t min_n, max_n, max_skip;
    int n_counts, n_indexes, n_pool, n_weights;
    const int64_t *counts, *indexes, *pool_ints;
    char *const *pool_strs;
    const float *weights;
    int64_t out_size; /* max(ngram_indexes) + 1 */
    int64_t rows, cols;
} tfidf_params;

static kiln_status tfidf_parse(const kiln__kctx *c, tfidf_params *p) {
    const kiln__node *node = c->node;
    memset(p, 0, sizeof *p);
    const char *mode = kiln__attr_s(node, "mode", "");
    if (strcmp(mode, "TF") == 0) p->mode = TFIDF_TF;
    else if (strcmp(mode, "IDF") == 0) p->mode = TFIDF_IDF;
    else if (strcmp(mode, "TFIDF") == 0) p->mode = TFIDF_TFIDF;
    else return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected TF, IDF or TFIDF", mode);
    p->min_n = kiln__attr_i(node, "min_gram_length", 0);
    p->max_n = kiln__attr_i(node, "max_gram_length", 0);
    p->max_skip = kiln__attr_i(node, "max_skip_count", 0);
    if (p->min_n < 1 || p->max_n < p->min_n || p->max_skip < 0)
        return kiln__err(KILN_E_INVAL, "attributes min_gram_length %lld, max_gram_length %lld, "
                         "max_skip_count %lld: expected 1 <= min <= max and skip >= 0",
                         (long long)p->min_n, (long long)p->max_n, (long long)p->max_skip);
    p->n_counts = kiln__attr_ints(node, "ngram_counts", &p->counts);
    p->n_indexes = kiln__attr_ints(node, "ngram_indexes", &p->indexes);
    int n_ints = kiln__attr_ints(node, "pool_int64s", &p->pool_ints);
    int n_strs = kiln__attr_strings(node, "pool_strings", &p->pool_strs);
    p->n_weights = kiln__attr_floats(node, "weights", &p->weights);
    if (p->n_weights < 0) p->n_weights = 0;
    if (p->n_counts < 0 || p->n_indexes < 1)
        return kiln__err(KILN_E_INVAL, "attributes 'ngram_counts' and 'ngram_indexes' are required");
    if ((n_ints >= 0) == (n_strs >= 0))
        return kiln__err(KILN_E_INVAL, "exactly one of 'pool_int64s' and 'pool_strings' is required");
    p->n_pool = n_ints >= 0 ? n_ints : n_strs;
    for (int i = 0; i < p->n_counts; i++)
        if (p->counts[i] < 0 || p->counts[i] > p->n_pool || (i && p->counts[i] < p->counts[i - 1]))
            return kiln__err(KILN_E_INVAL, "attribute 'ngram_counts'[%d] = %lld is not a "
                             "non-decreasing offset into the pool of %d", i,
                             (long long)p->counts[i], p->n_pool);
    p->out_size = 0;
    for (int i = 0; i < p->n_indexes; i++) {
        if (p->indexes[i] < 0 || p->indexes[i] >= KILN__MAX_NUMEL)
            return kiln__err(KILN_E_INVAL, "attribute 'ngram_indexes'[%d] = %lld is out of range",
                             i, (long long)p->indexes[i]);
        if (p->indexes[i] + 1 > p->out_size) p->out_size = p->indexes[i] + 1;
    }

    const kiln_tensor *x = c->in[0];
    if (n_ints >= 0)
        KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_I32, KILN_DTYPE_I64, 0));
    else
        KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_STRING, 0));
    if (x->ndim == 1 || x->ndim == 0) {
        p->rows = 1;
        p->cols = kiln__n(x);
    } else if (x->ndim == 2) {
        p->rows = x->dims[0];
        p->cols = x->dims[1];
    } else {
        char got[128];
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected [C] or [N,C]",
                         kiln__shape_str(x->ndim, x->dims, got, sizeof got));
    }
    /* The pool has no n-grams longer than n_counts, and a skip of cols or more
     * fits no n-gram of 2+ items in a row: clamp so hostile lengths and skips
     * cost no empty passes (nor overflow skip * (n - 1)). */
    if (p->max_n > p->n_counts) p->max_n = p->n_counts;
    if (p->max_skip > p->cols) p->max_skip = p->cols;
    return KILN_OK;
}

/* 1 if item xi of X equals pool item pi. */
static int tfidf_eq(const tfidf_params *p, const kiln_tensor *x, int64_t xi, int64_t pi) {
    if (p->pool_strs) return strcmp(str_at(x, xi), p->pool_strs[pi]) == 0;
    return kiln__ld_i(x->dtype, x->data, xi) == p->pool_ints[pi];
}

/* Counts, into freq[out_size], the pool n-grams of size n found in row r
 * with items skip apart. Pool n-gram ordinals (in pool order, over all
 * sizes) index ngram_indexes; a repeated pool n-gram counts for its last
 * occurrence. */
static void tfidf_count(const tfidf_params *p, const kiln_tensor *x, int64_t r, int64_t n,
                        int64_t skip, float *freq) {
    int64_t ordinal = 0, seg_lo = 0, seg_hi = 0;
    for (int i = 0; i < p->n_counts; i++) { /* segment i holds (i+1)-grams */
        int64_t lo = p->counts[i], hi = i + 1 < p->n_counts ? p->counts[i + 1] : p->n_pool;
        if (i + 1 == n) {
            seg_lo = lo;
            seg_hi = hi;
            break;
        }
        ordinal += (hi - lo) / (i + 1);
    }
    int64_t grams = (seg_hi - seg_lo) / n;
    for (int64_t start = 0; start + skip * (n - 1) < p->cols; start++) {
        int64_t found = -1;
        for (int64_t g = 0; g < grams; g++) {
            int same = 1;
            for (int64_t k = 0; same && k < n; k++)
                same = tfidf_eq(p, x, r * p->cols + start + k * skip, seg_lo + g * n + k);
            if (same) found = g;
        }
        if (found >= 0 && ordinal + found < p->n_indexes) freq[p->indexes[ordinal + found]] += 1;
    }
}

// X: [C] or [N,C] int32/int64/string; Y: [out_size] or [N,out_size] f32,
// out_size = max(ngram_indexes) + 1
kiln_status kiln__infer_TfIdfVectorizer(kiln__kctx *c) {
    tfidf_params p;
    KILN__TRY(tfidf_parse(c, &p));
    int64_t dims[2] = {p.rows, p.out_size};
    c->scratch_bytes = sizeof(float) * (size_t)p.out_size;
    if (c->in[0]->ndim == 2) return kiln__out_shape(c, 0, KILN_DTYPE_F32, 2, dims);
    return kiln__out_shape(c, 0, KILN_DTYPE_F32, 1, dims + 1);
}

kiln_status kiln__ref_TfIdfVectorizer(kiln__kctx *c) {
    tfidf_params p;
    KILN__TRY(tfidf_parse(c, &p));
    const kiln_tensor *x = c->in[0];
    float *y = c->out[0]->data;
    memset(y, 0, sizeof(float) * (size_t)(p.rows * p.out_size));
    float *counts = c->scratch; /* (out_size) */
    for (int64_t r = 0; r < p.rows; r++) {
        memset(counts, 0, sizeof(float) * (size_t)p.out_size);
        for (int64_t n = p.min_n; n <= p.max_n; n++)
            for (int64_t skip = 1; skip <= (n == 1 ? 1 : p.max_skip + 1); skip++)
                tfidf_count(&p, x, r, n, skip, counts);
        /* weights[k] belongs to pool n-gram k, whose column is ngram_indexes[k] */
        float *row = y + r * p.out_size;
        for (int k = 0; k < p.n_indexes; k++) {
            int64_t j = p.indexes[k];
            float w = k < p.n_weights ? p.weights[k] : 1.0f;
            switch (p.mode) {
            case TFIDF_TF: row[j] = counts[j]; break;
            case TFIDF_IDF: row[j] = counts[j] > 0 ? w : 0.0f; break;
            case TFIDF_TFIDF: row[j] = counts[j] * w; break;
            }
        }
    }
    return KILN_OK;
}
