/* src/serve/pbtxt.c: protobuf text format into a schema-less tree (pbtxt.h).
 *
 * A hand-written scanner over (text, len): every read checks pos < len, so the
 * input need not be NUL-terminated. Messages nest through recursion bounded by
 * PBTXT_MAX_DEPTH; lists are flattened into repeated entries of the field.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/pbtxt.h"

typedef struct parser {
    const char *s;
    size_t len, pos;
    int line, col;
    const char *path;
    char *err;
    size_t errlen;
    size_t nodes; /* made so far (PBTXT_MAX_NODES at most) */
} parser;

/* A growable byte buffer (string values). */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static int buf_put(buf *b, char c) {
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = c;
    b->p[b->n] = '\0';
    return 0;
}

const char *pbtxt_type_name(pbtxt_type t) {
    switch (t) {
    case PBTXT_NUMBER: return "number";
    case PBTXT_IDENT: return "identifier";
    case PBTXT_STRING: return "string";
    case PBTXT_MESSAGE: return "message";
    }
    return "?";
}

/* ---- errors ------------------------------------------------------------------ */

static kiln_status fail_at(parser *p, int line, int col, const char *fmt, ...) {
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "%s:%d:%d: ", p->path ? p->path : "<config>", line,
                         col);
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return KILN_E_FORMAT;
}

static kiln_status nomem(parser *p) {
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "%s: out of memory", p->path ? p->path : "<config>");
    return KILN_E_NOMEM;
}

/* How the character at pos reads in a message: 'c' or 0xNN, or "end of input". */
static const char *describe(const parser *p, char *tmp, size_t n) {
    if (p->pos >= p->len) return "end of input";
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c >= 0x21 && c < 0x7f)
        snprintf(tmp, n, "'%c'", c);
    else
        snprintf(tmp, n, "byte 0x%02x", c);
    return tmp;
}

/* ---- scanning ------------------------------------------------------------------ */

static int peek(const parser *p) { return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1; }
static int peek_at(const parser *p, size_t k) {
    return p->pos + k < p->len ? (unsigned char)p->s[p->pos + k] : -1;
}

static void advance(parser *p) {
    if (p->pos >= p->len) return;
    if (p->s[p->pos] == '\n') {
        p->line++;
        p->col = 1;
    } else {
        p->col++;
    }
    p->pos++;
}

static int is_ident_start(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_ident_char(int c) { return is_ident_start(c) || is_digit(c); }
static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Skips whitespace and # comments. */
static void skip_space(parser *p) {
    for (;;) {
        int c = peek(p);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            advance(p);
        } else if (c == '#') {
            while (p->pos < p->len && p->s[p->pos] != '\n') advance(p);
        } else {
            return;
        }
    }
}

/* ---- tree ---------------------------------------------------------------------- */

static void node_clear(pbtxt_node *n) {
    for (int i = 0; i < n->n_children; i++) node_clear(&n->children[i]);
    free(n->children);
    free(n->name);
    free(n->text);
    memset(n, 0, sizeof *n);
}

void pbtxt_free(pbtxt_node *root) {
    if (!root) return;
    node_clear(root);
    free(root);
}

/* Appends a zeroed child to parent (the array doubles at powers of two, so no
 * capacity is stored). Returns it, or NULL when out of memory. Pointers to
 * earlier children are invalidated. */
static pbtxt_node *add_child(pbtxt_node *parent) {
    int n = parent->n_children;
    if (n == INT32_MAX / 2) return NULL;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n == 0 ? 4 : (size_t)n * 2;
        pbtxt_node *c = realloc(parent->children, cap * sizeof *c);
        if (!c) return NULL;
        parent->children = c;
    }
    pbtxt_node *c = &parent->children[parent->n_children++];
    memset(c, 0, sizeof *c);
    return c;
}

/* A new child of msg for a field at line:col, within PBTXT_MAX_NODES. */
static kiln_status new_node(parser *p, pbtxt_node *msg, int line, int col, pbtxt_node **out) {
    if (++p->nodes > PBTXT_MAX_NODES)
        return fail_at(p, line, col, "more than %d fields and values in all", PBTXT_MAX_NODES);
    if (!(*out = add_child(msg))) return nomem(p);
    return KILN_OK;
}

/* ---- values --------------------------------------------------------------------- */

/* Reads a run of identifier characters at pos into a new string. */
static char *take_ident(parser *p) {
    size_t start = p->pos;
    while (is_ident_char(peek(p))) advance(p);
    size_t n = p->pos - start;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, p->s + start, n);
    s[n] = '\0';
    return s;
}

/* One quoted string at pos (the quote), decoded and appended to b. */
static kiln_status take_string(parser *p, buf *b) {
    int line = p->line, col = p->col, quote = peek(p);
    advance(p);
    for (;;) {
        int c = peek(p);
        if (c < 0) return fail_at(p, line, col, "unterminated string (no closing %c)", quote);
        if (c == '\n') return fail_at(p, p->line, p->col, "newline in a string (opened at %d:%d): strings cannot span lines", line, col);
        if (c == quote) {
            advance(p);
            return KILN_OK;
        }
        if (c != '\\') {
            if (buf_put(b, (char)c)) return nomem(p);
            advance(p);
            continue;
        }
        int eline = p->line, ecol = p->col;
        advance(p);
        int e = peek(p);
        if (e < 0) return fail_at(p, line, col, "unterminated string (no closing %c)", quote);
        unsigned long v;
        switch (e) {
        case 'n': v = '\n'; advance(p); break;
        case 't': v = '\t'; advance(p); break;
        case 'r': v = '\r'; advance(p); break;
        case 'a': v = '\a'; advance(p); break;
        case 'b': v = '\b'; advance(p); break;
        case 'f': v = '\f'; advance(p); break;
        case 'v': v = '\v'; advance(p); break;
        case '\\': case '\'': case '"': case '?': v = (unsigned long)e; advance(p); break;
        case 'x': case 'X': {
            advance(p);
            int k = 0;
            v = 0;
            while (k < 2 && hex_value(peek(p)) >= 0) {
                v = v * 16 + (unsigned long)hex_value(peek(p));
                advance(p);
                k++;
            }
            if (k == 0) return fail_at(p, eline, ecol, "\\x needs a hex digit");
            break;
        }
        case 'u': case 'U': {
            int need = e == 'u' ? 4 : 8;
            advance(p);
            v = 0;
            for (int k = 0; k < need; k++) {
                int h = hex_value(peek(p));
                if (h < 0) return fail_at(p, eline, ecol, "\\%c needs %d hex digits", e, need);
                v = v * 16 + (unsigned long)h;
                advance(p);
            }
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                return fail_at(p, eline, ecol, "\\%c%0*lX is not a Unicode code point", e, need, v);
            /* UTF-8 */
            char u[4];
            int nu;
            if (v < 0x80) { u[0] = (char)v; nu = 1; }
            else if (v < 0x800) { u[0] = (char)(0xC0 | (v >> 6)); u[1] = (char)(0x80 | (v & 0x3F)); nu = 2; }
            else if (v < 0x10000) { u[0] = (char)(0xE0 | (v >> 12)); u[1] = (char)(0x80 | ((v >> 6) & 0x3F)); u[2] = (char)(0x80 | (v & 0x3F)); nu = 3; }
            else { u[0] = (char)(0xF0 | (v >> 18)); u[1] = (char)(0x80 | ((v >> 12) & 0x3F)); u[2] = (char)(0x80 | ((v >> 6) & 0x3F)); u[3] = (char)(0x80 | (v & 0x3F)); nu = 4; }
            for (int k = 0; k < nu; k++)
                if (buf_put(b, u[k])) return nomem(p);
            continue;
        }
        default:
            if (e >= '0' && e <= '7') {
                v = 0;
                for (int k = 0; k < 3 && peek(p) >= '0' && peek(p) <= '7'; k++) {
                    v = v * 8 + (unsigned long)(peek(p) - '0');
                    advance(p);
                }
                if (v > 255) return fail_at(p, eline, ecol, "octal escape \\%lo is above \\377", v);
                break;
            }
            if (e >= 0x21 && e < 0x7f) return fail_at(p, eline, ecol, "unknown escape \\%c in a string", e);
            return fail_at(p, eline, ecol, "unknown escape (\\ then byte 0x%02x) in a string", e);
        }
        if (buf_put(b, (char)v)) return nomem(p);
    }
}

/* A scalar value at pos into n (n->name already set). */
static kiln_status take_scalar(parser *p, pbtxt_node *n, const char *field) {
    char tmp[32];
    int c = peek(p);
    n->vline = p->line;
    n->vcol = p->col;
    if (c == '"' || c == '\'') {
        buf b = {0};
        kiln_status st;
        do {
            if ((st = take_string(p, &b)) != KILN_OK) {
                free(b.p);
                return st;
            }
            skip_space(p);
        } while (peek(p) == '"' || peek(p) == '\'');
        if (!b.p && !(b.p = calloc(1, 1))) return nomem(p);
        n->type = PBTXT_STRING;
        n->text = b.p;
        n->len = b.n;
        return KILN_OK;
    }
    if (c == '-' || is_digit(c) || (c == '.' && is_digit(peek_at(p, 1)))) {
        size_t start = p->pos;
        if (c == '-') {
            advance(p);
            int d = peek(p);
            if (!is_digit(d) && !(d == '.' && is_digit(peek_at(p, 1))) && !is_ident_start(d))
                return fail_at(p, n->vline, n->vcol, "field '%s': '-' is not followed by a number", field);
        }
        if (is_ident_start(peek(p))) { /* -inf, -nan */
            while (is_ident_char(peek(p))) advance(p);
        } else {
            int hex = peek(p) == '0' && (peek_at(p, 1) == 'x' || peek_at(p, 1) == 'X');
            for (;;) {
                int d = peek(p);
                if (is_ident_char(d) || d == '.') {
                    advance(p);
                } else if ((d == '+' || d == '-') && !hex && p->pos > start &&
                           (p->s[p->pos - 1] == 'e' || p->s[p->pos - 1] == 'E')) {
                    advance(p);
                } else {
                    break;
                }
            }
        }
        size_t len = p->pos - start;
        if (!(n->text = malloc(len + 1))) return nomem(p);
        memcpy(n->text, p->s + start, len);
        n->text[len] = '\0';
        n->len = len;
        n->type = PBTXT_NUMBER;
        return KILN_OK;
    }
    if (is_ident_start(c)) {
        if (!(n->text = take_ident(p))) return nomem(p);
        n->len = strlen(n->text);
        n->type = PBTXT_IDENT;
        return KILN_OK;
    }
    if (c < 0) return fail_at(p, p->line, p->col, "field '%s': the input ends where its value should be", field);
    return fail_at(p, p->line, p->col, "field '%s': expected a value, found %s", field,
                   describe(p, tmp, sizeof tmp));
}

static kiln_status parse_body(parser *p, pbtxt_node *msg, int close, int depth);

/* A message value at pos ('{' or '<') into n. */
static kiln_status take_message(parser *p, pbtxt_node *n, int depth) {
    n->type = PBTXT_MESSAGE;
    n->vline = p->line;
    n->vcol = p->col;
    if (depth + 1 > PBTXT_MAX_DEPTH)
        return fail_at(p, p->line, p->col, "field '%s': messages nested deeper than %d", n->name,
                       PBTXT_MAX_DEPTH);
    int close = peek(p) == '{' ? '}' : '>';
    advance(p);
    return parse_body(p, n, close, depth + 1);
}

/* One field at pos (its name) appended to msg. */
static kiln_status parse_field(parser *p, pbtxt_node *msg, int depth) {
    char tmp[32];
    int line = p->line, col = p->col;
    int c = peek(p);
    if (c == '[')
        return fail_at(p, line, col, "extension and Any fields ([...]) are not supported");
    if (!is_ident_start(c))
        return fail_at(p, line, col, "expected a field name, found %s", describe(p, tmp, sizeof tmp));
    char *name = take_ident(p);
    if (!name) return nomem(p);
    skip_space(p);
    int colon = peek(p) == ':';
    if (colon) {
        advance(p);
        skip_space(p);
    }
    c = peek(p);
    kiln_status st = KILN_OK;
    if (c == '[') {
        int lline = p->line, lcol = p->col;
        advance(p);
        skip_space(p);
        if (peek(p) == ']') {
            advance(p);
            free(name);
            return KILN_OK; /* an empty list: no entries */
        }
        for (;;) {
            skip_space(p);
            int ic = peek(p);
            if (ic != '{' && ic != '<' && !colon) {
                st = fail_at(p, line, col, "field '%s': a list of values needs ':' after the field name", name);
                break;
            }
            pbtxt_node *item;
            if ((st = new_node(p, msg, line, col, &item)) != KILN_OK) break;
            if (!(item->name = strdup(name))) {
                st = nomem(p);
                break;
            }
            item->line = line;
            item->col = col;
            st = ic == '{' || ic == '<' ? take_message(p, item, depth) : take_scalar(p, item, name);
            if (st != KILN_OK) break;
            skip_space(p);
            if (peek(p) == ',') {
                advance(p);
                continue;
            }
            if (peek(p) == ']') {
                advance(p);
                break;
            }
            if (peek(p) < 0)
                st = fail_at(p, lline, lcol, "field '%s': unterminated list (no closing ']')", name);
            else
                st = fail_at(p, p->line, p->col, "field '%s': expected ',' or ']' in a list, found %s",
                             name, describe(p, tmp, sizeof tmp));
            break;
        }
        free(name);
        return st;
    }
    pbtxt_node *n;
    if ((st = new_node(p, msg, line, col, &n)) != KILN_OK) {
        free(name);
        return st;
    }
    n->name = name;
    n->line = line;
    n->col = col;
    if (c == '{' || c == '<') return take_message(p, n, depth);
    if (!colon) {
        if (c < 0) return fail_at(p, p->line, p->col, "field '%s': the input ends after the field name", name);
        return fail_at(p, p->line, p->col, "field '%s': expected ':' or '{' after the field name, found %s",
                       name, describe(p, tmp, sizeof tmp));
    }
    return take_scalar(p, n, name);
}

/* Fields up to close ('}' or '>'; 0: the end of input) into msg. */
static kiln_status parse_body(parser *p, pbtxt_node *msg, int close, int depth) {
    char tmp[32];
    int line = p->line, col = p->col - 1;
    for (;;) {
        skip_space(p);
        int c = peek(p);
        if (c < 0) {
            if (!close) return KILN_OK;
            return fail_at(p, line, col, "message '%s' is not closed (no '%c' before the end of input)",
                           msg->name, close);
        }
        if (close && c == close) {
            advance(p);
            return KILN_OK;
        }
        if (c == '}' || c == '>')
            return fail_at(p, p->line, p->col, "unexpected %s%s", describe(p, tmp, sizeof tmp),
                           close ? " (the message is closed by another bracket)" : " (no message is open)");
        kiln_status st = parse_field(p, msg, depth);
        if (st != KILN_OK) return st;
        skip_space(p);
        if (peek(p) == ',' || peek(p) == ';') advance(p);
    }
}

kiln_status pbtxt_parse(const char *text, size_t len, const char *path, pbtxt_node **out,
                        char *err, size_t errlen) {
    parser p = {.s = text ? text : "", .len = text ? len : 0, .line = 1, .col = 1, .path = path,
                .err = err, .errlen = errlen};
    *out = NULL;
    if (err && errlen) err[0] = '\0';
    pbtxt_node *root = calloc(1, sizeof *root);
    if (!root || !(root->name = strdup(""))) {
        free(root);
        return nomem(&p);
    }
    root->type = PBTXT_MESSAGE;
    root->line = root->col = root->vline = root->vcol = 1;
    /* a UTF-8 byte order mark */
    if (p.len >= 3 && !memcmp(p.s, "\xEF\xBB\xBF", 3)) p.pos = 3;
    kiln_status st = parse_body(&p, root, 0, 0);
    if (st != KILN_OK) {
        pbtxt_free(root);
        return st;
    }
    *out = root;
    return KILN_OK;
}
