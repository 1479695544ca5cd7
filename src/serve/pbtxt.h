/* src/serve/pbtxt.h: protobuf text format (what config.pbtxt files hold),
 * parsed into a tree without a schema.
 *
 * The grammar read (a superset is not accepted; anything else is an error):
 *
 *   message := { field [',' | ';'] }*
 *   field   := NAME ':' scalar
 *            | NAME [':'] ( '{' message '}' | '<' message '>' )
 *            | NAME [':'] '[' [ item { ',' item } ] ']'
 *   item    := scalar | '{' message '}' | '<' message '>'
 *   scalar  := NUMBER | IDENT | STRING { STRING }     (adjacent strings join)
 *
 * NUMBER is a decimal, hex or octal integer or a float, with an optional '-'
 * ("-inf" and "-nan" are NUMBERs too); IDENT an identifier (enum names,
 * true, false); STRING is double- or single-quoted with C escapes (\n \t \r
 * \a \b \f \v \\ \' \" \? \ooo \xHH \uHHHH \UHHHHHHHH). '#' starts a comment
 * to the end of the line. A list `dims: [1, 2]` becomes repeated entries (two
 * nodes named dims), exactly as `dims: 1 dims: 2` does.
 *
 * The input need not be NUL-terminated and is never read past len. Nesting
 * is limited to PBTXT_MAX_DEPTH messages and the tree to PBTXT_MAX_NODES
 * nodes; errors (never an abort) say "PATH:LINE:COL: what".
 */
#ifndef KILN_SERVE_PBTXT_H
#define KILN_SERVE_PBTXT_H

#include <stddef.h>

#include "kiln/status.h"

#define PBTXT_MAX_DEPTH 64
#define PBTXT_MAX_NODES (1 << 20) /* fields and list entries in all */

typedef enum pbtxt_type {
    PBTXT_NUMBER = 0, /* text: as written, e.g. "-3", "0x1f", "1.5e3", "inf" */
    PBTXT_IDENT,      /* text: the identifier, e.g. "TYPE_FP32", "true" */
    PBTXT_STRING,     /* text: the decoded bytes (len of them; may hold NULs) */
    PBTXT_MESSAGE,    /* children */
} pbtxt_type;

typedef struct pbtxt_node {
    char *name;                  /* the field name (owned); "" for the root */
    pbtxt_type type;
    char *text;                  /* scalars: owned, NUL-terminated after len bytes */
    size_t len;
    int n_children;
    struct pbtxt_node *children; /* messages: owned array */
    int line, col;               /* where the field name starts (1-based) */
    int vline, vcol;             /* where the value starts */
} pbtxt_node;

/* Parses len bytes of text. path is only used in messages. On success *out
 * is the root message (caller frees with pbtxt_free). On failure returns
 * KILN_E_FORMAT (or KILN_E_NOMEM), *out is NULL and err holds
 * "PATH:LINE:COL: message". */
kiln_status pbtxt_parse(const char *text, size_t len, const char *path, pbtxt_node **out,
                        char *err, size_t errlen);

/* Frees a tree from pbtxt_parse; NULL is a no-op. */
void pbtxt_free(pbtxt_node *root);

/* "number", "identifier", "string", "message". */
const char *pbtxt_type_name(pbtxt_type t);

#endif
