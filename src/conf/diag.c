/*
 * conf/diag.c - what the loader says about a file.
 *
 * Errors are collected with their position while the passes run (at most
 * CONF_ERRORS_MAX; the rest are counted), and printed sorted by position,
 * one per line:
 *
 *     FILE:LINE:COL: PATH: PREDICATE
 *     FILE:LINE:COL: PATH "VALUE": PREDICATE
 *
 * PATH names the key as in `destinations.homer.targets[0]` (list indexes
 * count from 0; keys that are not plain names are quoted); VALUE is the
 * scalar as written, escaped and shortened.  Errors about the file itself
 * (unreadable, empty, YAML syntax) have no PATH.
 *
 * The loader allocates through conf_malloc() and its siblings, here, so
 * that tests can fail the n-th allocation.
 */
#include "conf/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation ---------------------------------------------------------- */

/*
 * Allocation goes through these so that tests can fail the n-th one
 * (conf_fail_alloc) and walk every out-of-memory path.
 */
static unsigned long alloc_fail_at;
static unsigned long alloc_count;

void conf_fail_alloc(unsigned long n)
{
    alloc_fail_at = n;
    alloc_count = 0;
}

static bool alloc_fails(void)
{
    return alloc_fail_at != 0 && ++alloc_count == alloc_fail_at;
}

void *conf_malloc(size_t size)
{
    return alloc_fails() ? NULL : malloc(size);
}

void *conf_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : calloc(n, size);
}

void *conf_realloc(void *ptr, size_t size)
{
    return alloc_fails() ? NULL : realloc(ptr, size);
}

char *conf_strdup(const char *s)
{
    return alloc_fails() ? NULL : strdup(s);
}

/* ---- text and key paths ------------------------------------------------ */

void conf_text_add(struct text *t, const char *fmt, ...)
{
    if (t->len + 1 >= t->size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    t->len += (size_t)n;
    if (t->len >= t->size)
        t->len = t->size - 1;
}

/* Appends s as a double-quoted string with escapes, shortened to CONF_SHOW_MAX bytes. */
static void text_quote(struct text *t, const char *s, size_t len)
{
    size_t show = len;
    if (show > CONF_SHOW_MAX) {
        show = CONF_SHOW_MAX;
        while (show > 0 && ((unsigned char)s[show] & 0xc0) == 0x80)
            show--;                 /* do not cut a UTF-8 sequence */
    }
    conf_text_add(t, "\"");
    for (size_t i = 0; i < show; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            conf_text_add(t, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            conf_text_add(t, "\\x%02x", c);
        else
            conf_text_add(t, "%c", c);
    }
    conf_text_add(t, show < len ? "...\"" : "\"");
}

static struct text path_text(struct parse *p)
{
    struct text t = { p->path, sizeof p->path, p->pathlen };
    return t;
}

/* Appends ".key" (or "key" at the top); returns the length to restore. */
size_t conf_path_push_key(struct parse *p, const char *key, size_t len)
{
    size_t old = p->pathlen;
    struct text t = path_text(p);
    if (old > 0)
        conf_text_add(&t, ".");
    if (conf_is_name(key, len))
        conf_text_add(&t, "%s", key);
    else
        text_quote(&t, key, len);
    p->pathlen = t.len;
    return old;
}

size_t conf_path_push_index(struct parse *p, size_t i)
{
    size_t old = p->pathlen;
    struct text t = path_text(p);
    conf_text_add(&t, "[%zu]", i);
    p->pathlen = t.len;
    return old;
}

void conf_path_pop(struct parse *p, size_t old)
{
    p->pathlen = old;
    p->path[old] = '\0';
}

/* ---- errors ------------------------------------------------------------------ */

struct conf_error {
    struct mark mark;
    size_t seq;                     /* order found, to keep the sort stable */
    char text[CONF_MSG_MAX];
};

static void add_error(struct parse *p, struct mark m, const struct text *msg)
{
    if (p->errors == NULL) {
        p->errors = conf_calloc(CONF_ERRORS_MAX, sizeof *p->errors);
        if (p->errors == NULL) {
            p->nomem = true;
            return;
        }
    }
    if (p->nerrors == CONF_ERRORS_MAX) {
        if (p->ndropped++ == 0)
            p->first_dropped = m;
        return;
    }
    struct conf_error *e = &p->errors[p->nerrors];
    e->mark = m;
    e->seq = p->nerrors;
    memcpy(e->text, msg->buf, msg->len + 1);
    p->nerrors++;
}

/* The one formatter: [PATH[ "VALUE"]: ]MESSAGE. */
__attribute__((format(printf, 5, 0)))
static void verror(struct parse *p, struct mark m, bool with_path, const struct node *value,
                   const char *fmt, va_list ap)
{
    char buf[CONF_MSG_MAX];
    struct text t = { buf, sizeof buf, 0 };
    buf[0] = '\0';
    if (with_path && p->pathlen > 0) {
        conf_text_add(&t, "%s", p->path);
        if (value != NULL && value->type == NODE_SCALAR) {
            conf_text_add(&t, " ");
            text_quote(&t, value->value, value->len);
        }
        conf_text_add(&t, ": ");
    }
    if (t.len + 1 < t.size) {
        int n = vsnprintf(buf + t.len, t.size - t.len, fmt, ap);
        if (n > 0)
            t.len = t.len + (size_t)n < t.size ? t.len + (size_t)n : t.size - 1;
    }
    add_error(p, m, &t);
}

/* "PATH: MESSAGE", at n. */
void conf_error_key(struct parse *p, const struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(p, n->mark, true, NULL, fmt, ap);
    va_end(ap);
}

/* "PATH "VALUE": MESSAGE", at n. */
void conf_error_value(struct parse *p, const struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(p, n->mark, true, n, fmt, ap);
    va_end(ap);
}

/* "MESSAGE", at m: errors about the file rather than a key. */
void conf_error_file(struct parse *p, struct mark m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(p, m, false, NULL, fmt, ap);
    va_end(ap);
}

static int error_cmp(const void *a, const void *b)
{
    const struct conf_error *x = a, *y = b;
    if (x->mark.line != y->mark.line)
        return x->mark.line < y->mark.line ? -1 : 1;
    if (x->mark.col != y->mark.col)
        return x->mark.col < y->mark.col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void conf_print_errors(struct parse *p, FILE *out)
{
    if (p->nerrors > 0)
        qsort(p->errors, p->nerrors, sizeof *p->errors, error_cmp);
    if (out == NULL)
        return;
    for (size_t i = 0; i < p->nerrors; i++)
        fprintf(out, "%s:%zu:%zu: %s\n", p->file, p->errors[i].mark.line, p->errors[i].mark.col,
                p->errors[i].text);
    if (p->ndropped > 0)
        fprintf(out, "%s:%zu:%zu: too many errors: %zu more not shown\n", p->file,
                p->first_dropped.line, p->first_dropped.col, p->ndropped);
    if (p->nomem)
        fprintf(out, "%s: out of memory\n", p->file);
}
