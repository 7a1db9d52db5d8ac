/*
 * conf.c - the configuration: YAML file -> struct conf.
 *
 * Three passes, as in twemproxy:
 *   1. libyaml's event stream is loaded into a small tree of nodes that
 *      keeps the line and column of every node.  Anchors, aliases, tags and
 *      a second document are rejected here, so the later passes only see
 *      scalars, lists and mappings.
 *   2. The tree is walked with one key table per section: name, setter,
 *      offset of the field, default as text, range.  Unknown, duplicate and
 *      missing keys are found by the same walk; defaults are applied by
 *      running the key's own setter on its default text, so a default is
 *      written once, in the table.
 *   3. Cross-checks that need more than one key (destination names in
 *      routes and default, route names, reconnect_min <= reconnect_max,
 *      targets that are listen addresses, store.redis keys that exclude
 *      each other); store.redis.password_file is read then.
 *
 * Every error is collected with its position, and conf_load() prints them
 * sorted by position, one per line:
 *
 *     FILE:LINE:COL: PATH: PREDICATE
 *     FILE:LINE:COL: PATH "VALUE": PREDICATE
 *
 * PATH names the key as in `destinations.homer.targets[0]` (list indexes
 * count from 0; keys that are not plain names are quoted); VALUE is the
 * scalar as written, escaped and shortened.  Errors about the file itself
 * (unreadable, empty, YAML syntax) have no PATH.
 */
#include "conf.h"

#include "clock.h"
#include "hep.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <yaml.h>

/* ---- limits of the parser itself ------------------------------------------ */

#define CONF_FILE_MAX       (1024 * 1024)   /* bytes; a real config is a few KB */
#define CONF_ERRORS_MAX     50              /* errors printed; the rest are counted */
#define CONF_DEPTH_MAX      64              /* nesting of lists and mappings */
#define CONF_PATH_MAX       256             /* bytes of a key path in a message */
#define CONF_MSG_MAX        512             /* bytes of one message */
#define CONF_SHOW_MAX       64              /* bytes of a value quoted in a message */

/* ---- ranges of values ------------------------------------------------------ */

#define MS_PER_SECOND       ((uint64_t)CLOCK_MS_PER_S)
#define MS_PER_MINUTE       (60 * MS_PER_SECOND)
#define MS_PER_HOUR         (60 * MS_PER_MINUTE)
#define MS_PER_DAY          (24 * MS_PER_HOUR)

/* Names end up in the store's fixed-size entries and in metric names. */
#define CONF_STRING_MAX     255u            /* node_name, auth_key: bytes */

#define CONF_PORT_MAX       65535u
#define CONF_PORT_DIGITS    5
#define CONF_PREFIX_DIGITS  3
#define CONF_IPV4_BITS      32u
#define CONF_IPV6_BITS      128u
#define CONF_PROTO_MAX      255u            /* chunk 0x000b is a u8 */
#define CONF_STATUS_MIN     100u
#define CONF_STATUS_MAX     699u
#define CONF_STATUS_CLASS   100u            /* "4xx" spans 100 codes */
#define CONF_HEP_OUTPUT     3               /* the only version heprouter writes */

#define CONF_WORKERS_MAX    64u
#define CONF_COUNT_MAX      UINT64_C(1000000000)    /* store.max_calls, orphans.max_held */
#define CONF_TTL_MIN_MS     MS_PER_SECOND           /* Redis expiries are whole seconds */
#define CONF_TTL_MAX_MS     (365 * MS_PER_DAY)
#define CONF_WAIT_MAX_MS    (60 * MS_PER_SECOND)    /* orphans.wait_ms */
#define CONF_HELD_BYTES_MAX (UINT64_C(1) << 40)     /* orphans.max_bytes: 1 TiB */
#define CONF_CALL_ID_MIN    32u                     /* room for the hashed form */
#define CONF_TCP_CONN_MAX   1000000u
#define CONF_FD_RESERVE_MAX 1000000u                /* limits.fd_reserve */
#define CONF_UDP_BATCH_MAX  1024u                   /* UIO_MAXIOV: recvmmsg/sendmmsg cap */
#define CONF_RCVBUF_MAX     ((uint64_t)INT_MAX)     /* SO_RCVBUF takes an int */
#define CONF_QUEUE_MAX      (UINT64_C(1) << 30)     /* tcp_queue_bytes: 1 GiB */
#define CONF_IDLE_MAX_MS    MS_PER_DAY
#define CONF_TIMEOUT_MAX_MS MS_PER_HOUR             /* reconnect, connect, drain */
#define CONF_LOG_MAX_MS     MS_PER_DAY              /* log.interval, log.stats_interval */

/* store.redis, store.cache */
#define CONF_DB_MAX         1000000u                /* Redis allows more than 16 (`databases`) */
#define CONF_REDIS_WAIT_MAX_MS (60 * MS_PER_SECOND) /* store.redis.timeout_ms */
#define CONF_INFLIGHT_MAX   1000000u
#define CONF_PENDING_MAX    10000000u
#define CONF_REPLY_MIN      1024u                   /* store.redis.max_reply_bytes: a value is < 200 */
#define CONF_REPLY_MAX      (UINT64_C(1) << 30)     /* 1 GiB */
#define CONF_CACHE_MAX      100000000u
#define CONF_HOST_MAX       253u                    /* a DNS name, without the final dot */
#define CONF_LABEL_MAX      63u
#define CONF_PASSWORD_MAX   1024u                   /* store.redis.password and its file */
#define CONF_UNIX_PATH_MAX  (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* ---- the node tree ----------------------------------------------------------- */

enum node_type {
    NODE_SCALAR,
    NODE_SEQUENCE,
    NODE_MAPPING,
};

/* 1-based; {0, 0} for the synthetic nodes that carry defaults. */
struct mark {
    size_t line;
    size_t col;
};

struct node {
    enum node_type type;
    struct mark mark;
    bool plain;                     /* scalar written without quotes */
    char *value;                    /* scalar, NUL-terminated (may hold NULs) */
    size_t len;
    struct node **items;            /* sequence items; mapping: key, value, key, ... */
    size_t nitems;
    size_t cap;
};

/* ---- parse state ------------------------------------------------------------ */

struct conf_error {
    struct mark mark;
    size_t seq;                     /* order found, to keep the sort stable */
    char text[CONF_MSG_MAX];
};

struct parse {
    const char *file;
    struct conf *conf;
    struct conf_error *errors;      /* CONF_ERRORS_MAX of them, allocated on first use */
    size_t nerrors;
    size_t ndropped;                /* errors beyond CONF_ERRORS_MAX */
    struct mark first_dropped;
    bool nomem;
    bool dests_broken;              /* destinations unusable: skip name lookups */
    bool store_type_bad;            /* store.type refused: do not judge its sections by it */
    const struct node *dests_node;  /* the destinations mapping */
    bool *dest_seen;                /* per destination, while one to/default list is parsed */
    const struct conf_addr **listen_sorted;     /* for the "target is a listen address" check */
    char path[CONF_PATH_MAX];
    size_t pathlen;
    char why[CONF_MSG_MAX];         /* a predicate built with numbers in it */
};

/* Bounded append-only text. */
struct text {
    char *buf;
    size_t size;
    size_t len;
};

struct conf_key;

/* Reports its own errors; n is NULL only for sections that are absent. */
typedef void conf_setter(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/* Parses one list element from text into elem; NULL or a predicate. */
typedef const char *elem_parser(struct parse *p, const char *text, void *elem);

/* A value of an enumerated key. */
struct conf_name {
    const char *name;
    int value;
};

enum key_flag {
    KEY_REQUIRED = 1u << 0,
    KEY_NONEMPTY = 1u << 1,         /* lists */
    KEY_MATCH = 1u << 2,            /* match lists: say how to match anything */
};

/*
 * One configuration key.  Defaults live here and nowhere else: a key that is
 * absent gets its setter run on dflt.  A key without a default and not
 * required stays zero (a section gets its own keys' defaults).
 */
struct conf_key {
    const char *name;
    conf_setter *set;
    size_t offset;                  /* of the field (a list: of its pointer) */
    size_t count_offset;            /* lists: of the element count */
    const char *dflt;               /* default as text, NULL: none */
    uint64_t min;                   /* numbers and durations (ms) */
    uint64_t max;
    unsigned flags;                 /* enum key_flag */
    const struct conf_key *sub;     /* sections: their keys */
    const struct conf_name *names;  /* enumerations: the values, NULL-terminated */
};

_Static_assert(sizeof(enum conf_balance) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(((struct conf *)0)->store_type) == sizeof(int), "enum keys are stored as int");

/* ---- small helpers ------------------------------------------------------------ */

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

static void *conf_malloc(size_t size)
{
    return alloc_fails() ? NULL : malloc(size);
}

static void *conf_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : calloc(n, size);
}

static void *conf_realloc(void *ptr, size_t size)
{
    return alloc_fails() ? NULL : realloc(ptr, size);
}

static char *conf_strdup(const char *s)
{
    return alloc_fails() ? NULL : strdup(s);
}

static void *field(void *base, size_t offset)
{
    return (char *)base + offset;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_name_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
}

/* Destination and route names: what may appear bare in a key path. */
static bool is_name(const char *s, size_t len)
{
    if (len == 0 || len > CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(s[i]))
            return false;
    return true;
}

__attribute__((format(printf, 2, 3)))
static void text_add(struct text *t, const char *fmt, ...)
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
    text_add(t, "\"");
    for (size_t i = 0; i < show; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            text_add(t, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            text_add(t, "\\x%02x", c);
        else
            text_add(t, "%c", c);
    }
    text_add(t, show < len ? "...\"" : "\"");
}

static struct text path_text(struct parse *p)
{
    struct text t = { p->path, sizeof p->path, p->pathlen };
    return t;
}

/* Appends ".key" (or "key" at the top); returns the length to restore. */
static size_t path_push_key(struct parse *p, const char *key, size_t len)
{
    size_t old = p->pathlen;
    struct text t = path_text(p);
    if (old > 0)
        text_add(&t, ".");
    if (is_name(key, len))
        text_add(&t, "%s", key);
    else
        text_quote(&t, key, len);
    p->pathlen = t.len;
    return old;
}

static size_t path_push_index(struct parse *p, size_t i)
{
    size_t old = p->pathlen;
    struct text t = path_text(p);
    text_add(&t, "[%zu]", i);
    p->pathlen = t.len;
    return old;
}

static void path_pop(struct parse *p, size_t old)
{
    p->pathlen = old;
    p->path[old] = '\0';
}

/* ---- errors ------------------------------------------------------------------ */

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
        text_add(&t, "%s", p->path);
        if (value != NULL && value->type == NODE_SCALAR) {
            text_add(&t, " ");
            text_quote(&t, value->value, value->len);
        }
        text_add(&t, ": ");
    }
    if (t.len + 1 < t.size) {
        int n = vsnprintf(buf + t.len, t.size - t.len, fmt, ap);
        if (n > 0)
            t.len = t.len + (size_t)n < t.size ? t.len + (size_t)n : t.size - 1;
    }
    add_error(p, m, &t);
}

/* "PATH: MESSAGE", at n. */
__attribute__((format(printf, 3, 4)))
static void error_key(struct parse *p, const struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(p, n->mark, true, NULL, fmt, ap);
    va_end(ap);
}

/* "PATH "VALUE": MESSAGE", at n. */
__attribute__((format(printf, 3, 4)))
static void error_value(struct parse *p, const struct node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(p, n->mark, true, n, fmt, ap);
    va_end(ap);
}

/* "MESSAGE", at m: errors about the file rather than a key. */
__attribute__((format(printf, 3, 4)))
static void error_file(struct parse *p, struct mark m, const char *fmt, ...)
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

static void print_errors(struct parse *p, FILE *out)
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

/* ---- pass 1: YAML -> node tree -------------------------------------------- */

static struct mark mark_from_yaml(yaml_mark_t m)
{
    struct mark r = { m.line + 1, m.column + 1 };
    return r;
}

/* Reader errors carry a byte offset, not a mark. */
static struct mark mark_from_offset(const char *buf, size_t len, size_t offset)
{
    struct mark m = { 1, 1 };
    for (size_t i = 0; i < offset && i < len; i++) {
        if (buf[i] == '\n') {
            m.line++;
            m.col = 1;
        } else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
            m.col++;
        }
    }
    return m;
}

static void node_free(struct node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nitems; i++)
        node_free(n->items[i]);
    free(n->items);
    free(n->value);
    free(n);
}

static struct node *node_new(struct parse *p, enum node_type type, yaml_mark_t m)
{
    struct node *n = conf_calloc(1, sizeof *n);
    if (n == NULL) {
        p->nomem = true;
        return NULL;
    }
    n->type = type;
    n->mark = mark_from_yaml(m);
    return n;
}

static bool node_append(struct parse *p, struct node *parent, struct node *child)
{
    if (parent->nitems == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        struct node **items = conf_realloc(parent->items, cap * sizeof *items);
        if (items == NULL) {
            p->nomem = true;
            return false;
        }
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->nitems++] = child;
    return true;
}

static void report_yaml_error(struct parse *p, const yaml_parser_t *y, const char *buf, size_t len)
{
    const char *problem = y->problem != NULL ? y->problem : "unknown error";
    switch (y->error) {
    case YAML_MEMORY_ERROR:
        p->nomem = true;
        break;
    case YAML_READER_ERROR:
        error_file(p, mark_from_offset(buf, len, y->problem_offset), "invalid input: %s", problem);
        break;
    default:
        if (y->context != NULL)
            error_file(p, mark_from_yaml(y->problem_mark),
                       "YAML syntax error: %s (%s at line %zu, column %zu)", problem, y->context,
                       y->context_mark.line + 1, y->context_mark.column + 1);
        else
            error_file(p, mark_from_yaml(y->problem_mark), "YAML syntax error: %s", problem);
        break;
    }
}

/* Anchors and aliases would let one node appear under several keys: refused. */
static bool check_properties(struct parse *p, yaml_mark_t m, const yaml_char_t *anchor,
                             const yaml_char_t *tag)
{
    if (anchor != NULL) {
        error_file(p, mark_from_yaml(m), "anchors and aliases are not supported");
        return false;
    }
    if (tag != NULL) {
        error_file(p, mark_from_yaml(m), "tags are not supported");
        return false;
    }
    return true;
}

/*
 * Builds the tree of the only document in buf.  Returns NULL after reporting
 * when the YAML is unusable (syntax, anchors, tags, nesting, no document,
 * several documents).
 */
static struct node *load_tree(struct parse *p, const char *buf, size_t len)
{
    yaml_parser_t y;
    if (!yaml_parser_initialize(&y)) {
        p->nomem = true;
        return NULL;
    }
    yaml_parser_set_input_string(&y, (const unsigned char *)buf, len);

    struct node *stack[CONF_DEPTH_MAX];
    size_t depth = 0;
    struct node *root = NULL;
    size_t documents = 0;
    bool bad = false, done = false;

    while (!done && !p->nomem) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&y, &ev)) {
            report_yaml_error(p, &y, buf, len);
            bad = true;
            break;
        }
        struct node *n = NULL;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1) {
                error_file(p, mark_from_yaml(ev.start_mark), "only one YAML document is allowed");
                bad = done = true;
            }
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_ALIAS_EVENT:
            error_file(p, mark_from_yaml(ev.start_mark), "anchors and aliases are not supported");
            bad = true;
            n = node_new(p, NODE_SCALAR, ev.start_mark);
            break;
        case YAML_SCALAR_EVENT:
            if (!check_properties(p, ev.start_mark, ev.data.scalar.anchor, ev.data.scalar.tag))
                bad = true;
            n = node_new(p, NODE_SCALAR, ev.start_mark);
            if (n != NULL) {
                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->len = ev.data.scalar.length;
                n->value = conf_malloc(n->len + 1);
                if (n->value == NULL) {
                    p->nomem = true;
                    free(n);
                    n = NULL;
                    break;
                }
                memcpy(n->value, ev.data.scalar.value, n->len);
                n->value[n->len] = '\0';
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (!check_properties(p, ev.start_mark, ev.data.sequence_start.anchor,
                                  ev.data.sequence_start.tag))
                bad = true;
            n = node_new(p, NODE_SEQUENCE, ev.start_mark);
            break;
        case YAML_MAPPING_START_EVENT:
            if (!check_properties(p, ev.start_mark, ev.data.mapping_start.anchor,
                                  ev.data.mapping_start.tag))
                bad = true;
            n = node_new(p, NODE_MAPPING, ev.start_mark);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        if (n != NULL) {
            if (depth == 0) {
                root = n;
            } else if (!node_append(p, stack[depth - 1], n)) {
                node_free(n);
                n = NULL;
            }
            if (n != NULL && n->type != NODE_SCALAR) {
                if (depth == CONF_DEPTH_MAX) {
                    error_file(p, n->mark, "nesting is deeper than %d levels", CONF_DEPTH_MAX);
                    bad = done = true;
                } else {
                    stack[depth++] = n;
                }
            }
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y);

    if (bad || p->nomem) {
        node_free(root);
        return NULL;
    }
    if (root == NULL) {
        struct mark start = { 1, 1 };
        error_file(p, start, "the file is empty");
    }
    return root;
}

/* ---- pass 2: node tree -> struct conf -------------------------------------- */

/* A plain empty, "~" or "null": the key is there but says nothing. */
static bool node_is_null(const struct node *n)
{
    if (n->type != NODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
           strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

static bool node_is(const struct node *n, const char *s)
{
    return n->type == NODE_SCALAR && n->len == strlen(s) && memcmp(n->value, s, n->len) == 0;
}

/* The value of the first key `name` of map, or NULL. */
static struct node *map_get(const struct node *map, const char *name)
{
    if (map == NULL || map->type != NODE_MAPPING)
        return NULL;
    for (size_t i = 0; i + 1 < map->nitems; i += 2)
        if (node_is(map->items[i], name))
            return map->items[i + 1];
    return NULL;
}

/*
 * The text of a scalar, or NULL after reporting why n is not one: `expect`
 * for a list or mapping, "has no value" for a null.
 */
static const char *scalar_text(struct parse *p, const struct node *n, const char *expect)
{
    if (n->type != NODE_SCALAR) {
        error_key(p, n, "%s", expect);
        return NULL;
    }
    if (node_is_null(n)) {
        error_key(p, n, "has no value");
        return NULL;
    }
    if (strlen(n->value) != n->len) {
        error_value(p, n, "contains a NUL byte");
        return NULL;
    }
    return n->value;
}

/* Reports what makes n unusable as a mapping; false then. */
static bool expect_mapping(struct parse *p, const struct node *n)
{
    if (n->type == NODE_MAPPING)
        return true;
    if (node_is_null(n))
        error_key(p, n, "has no value");
    else
        error_key(p, n, "must be a mapping");
    return false;
}

static int key_cmp(const void *a, const void *b)
{
    const struct node *x = *(const struct node *const *)a, *y = *(const struct node *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->value, y->value, n);
    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    if (x->mark.line != y->mark.line)
        return x->mark.line < y->mark.line ? -1 : 1;
    return x->mark.col < y->mark.col ? -1 : x->mark.col > y->mark.col;
}

static bool table_has(const struct conf_key *table, const struct node *key)
{
    for (const struct conf_key *k = table; k->name != NULL; k++)
        if (node_is(key, k->name))
            return true;
    return false;
}

/*
 * Reports keys that are not scalars, keys given twice and, with a table,
 * keys it does not know.  Sorting keeps this O(n log n) for big mappings.
 */
static void check_keys(struct parse *p, const struct node *map, const struct conf_key *table)
{
    size_t npairs = map->nitems / 2, nscalars = 0;
    struct node **keys = npairs ? conf_malloc(npairs * sizeof *keys) : NULL;
    if (npairs > 0 && keys == NULL) {
        p->nomem = true;
        return;
    }
    for (size_t i = 0; i < npairs; i++) {
        struct node *key = map->items[2 * i];
        if (key->type != NODE_SCALAR) {
            error_key(p, key, "keys must be scalars");
            continue;
        }
        keys[nscalars++] = key;
        if (table != NULL && !table_has(table, key)) {
            size_t old = path_push_key(p, key->value, key->len);
            error_key(p, key, "unknown key");
            path_pop(p, old);
        }
    }
    if (nscalars > 1)
        qsort(keys, nscalars, sizeof *keys, key_cmp);
    size_t first = 0;
    for (size_t i = 1; i < nscalars; i++) {
        if (keys[i]->len == keys[first]->len &&
            memcmp(keys[i]->value, keys[first]->value, keys[i]->len) == 0) {
            size_t old = path_push_key(p, keys[i]->value, keys[i]->len);
            error_key(p, keys[i], "duplicate key (first at line %zu)", keys[first]->mark.line);
            path_pop(p, old);
        } else {
            first = i;
        }
    }
    free(keys);
}

/*
 * Walks map with table into base.  map NULL (the section is absent) applies
 * the defaults only.
 */
static void parse_map(struct parse *p, struct node *map, const struct conf_key *table, void *base)
{
    bool usable = true;
    if (map != NULL && !expect_mapping(p, map)) {
        map = NULL;
        usable = false;
    }
    if (map != NULL)
        check_keys(p, map, table);
    for (const struct conf_key *k = table; k->name != NULL; k++) {
        struct node *v = map_get(map, k->name);
        size_t old = path_push_key(p, k->name, strlen(k->name));
        if (v != NULL) {
            k->set(p, v, k, base);
        } else if (k->flags & KEY_REQUIRED) {
            if (map != NULL)
                error_key(p, map, "is required");
        } else if (k->dflt != NULL) {
            struct node dflt = { .type = NODE_SCALAR, .value = (char *)k->dflt, .len = strlen(k->dflt) };
            k->set(p, &dflt, k, base);
        } else if (k->sub != NULL && usable) {
            k->set(p, NULL, k, base);
        }
        path_pop(p, old);
    }
}

static void set_section(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_map(p, n, k->sub, field(base, k->offset));
}

/* ---- scalar setters ----------------------------------------------------------- */

enum number_status {
    NUMBER_OK,
    NUMBER_SYNTAX,
    NUMBER_RANGE,
};

/* Decimal digits only; "-5" and overflow are out of range rather than syntax. */
static enum number_status parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    bool negative = *s == '-';
    if (negative)
        s++;
    if (!is_digit(*s))
        return NUMBER_SYNTAX;
    uint64_t v = 0;
    bool big = false;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            big = true;
        else
            v = v * 10 + d;
    }
    if (*s != '\0')
        return NUMBER_SYNTAX;
    if (big || (negative && v != 0) || v < min || v > max)
        return NUMBER_RANGE;
    *out = v;
    return NUMBER_OK;
}

static bool get_number(struct parse *p, const struct node *n, const struct conf_key *k, uint64_t *out)
{
    const char *text = scalar_text(p, n, "must be an integer");
    if (text == NULL)
        return false;
    switch (parse_number(text, k->min, k->max, out)) {
    case NUMBER_OK:
        return true;
    case NUMBER_SYNTAX:
        error_value(p, n, "must be an integer");
        return false;
    default:
        error_value(p, n, "must be between %" PRIu64 " and %" PRIu64, k->min, k->max);
        return false;
    }
}

/* Beyond SIZE_MAX (orphans.max_bytes on a 32-bit host) means "as much as can be". */
static void set_size(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    if (get_number(p, n, k, &v))
        *(size_t *)field(base, k->offset) = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

static void set_unsigned(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    if (get_number(p, n, k, &v))
        *(unsigned *)field(base, k->offset) = (unsigned)v;
}

static void set_u64(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    if (get_number(p, n, k, &v))
        *(uint64_t *)field(base, k->offset) = v;
}

/* "250ms", "30s", "5m", "4h": the largest unit that divides ms. */
static const char *format_duration(uint64_t ms, char *buf, size_t size)
{
    if (ms != 0 && ms % MS_PER_HOUR == 0)
        snprintf(buf, size, "%" PRIu64 "h", ms / MS_PER_HOUR);
    else if (ms != 0 && ms % MS_PER_MINUTE == 0)
        snprintf(buf, size, "%" PRIu64 "m", ms / MS_PER_MINUTE);
    else if (ms % MS_PER_SECOND == 0)
        snprintf(buf, size, "%" PRIu64 "s", ms / MS_PER_SECOND);
    else
        snprintf(buf, size, "%" PRIu64 "ms", ms);
    return buf;
}

#define DURATION_TEXT_MAX 32

static bool get_duration(struct parse *p, const struct node *n, const struct conf_key *k, uint64_t *ms)
{
    const char *text = scalar_text(p, n, "must be a duration");
    if (text == NULL)
        return false;
    const char *why = conf_parse_duration(text, ms);
    if (why != NULL) {
        error_value(p, n, "%s", why);
        return false;
    }
    if (*ms < k->min || *ms > k->max) {
        char lo[DURATION_TEXT_MAX], hi[DURATION_TEXT_MAX];
        error_value(p, n, "must be between %s and %s", format_duration(k->min, lo, sizeof lo),
                    format_duration(k->max, hi, sizeof hi));
        return false;
    }
    return true;
}

static void set_duration(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t ms;
    if (get_duration(p, n, k, &ms))
        *(uint64_t *)field(base, k->offset) = ms;
}

/* "must be a, b or c" from a NULL-terminated table. */
static void error_names(struct parse *p, const struct node *n, const struct conf_name *names)
{
    char buf[CONF_MSG_MAX];
    struct text t = { buf, sizeof buf, 0 };
    buf[0] = '\0';
    text_add(&t, "must be ");
    for (const struct conf_name *v = names; v->name != NULL; v++)
        text_add(&t, "%s%s", v == names ? "" : v[1].name == NULL ? " or " : ", ", v->name);
    if (n->type == NODE_SCALAR)
        error_value(p, n, "%s", buf);
    else
        error_key(p, n, "%s", buf);
}

static void set_enum(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    if (n->type != NODE_SCALAR) {
        error_names(p, n, k->names);
        return;
    }
    const char *text = scalar_text(p, n, "");
    if (text == NULL)
        return;
    for (const struct conf_name *v = k->names; v->name != NULL; v++) {
        if (strcmp(text, v->name) == 0) {
            *(int *)field(base, k->offset) = v->value;
            return;
        }
    }
    error_names(p, n, k->names);
}

/* node_name, auth_key: any bytes but NUL, 1 to CONF_STRING_MAX of them. */
static void set_string(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0 || n->len > CONF_STRING_MAX) {
        error_value(p, n, "must be 1 to %u bytes", CONF_STRING_MAX);
        return;
    }
    char *copy = conf_strdup(text);
    if (copy == NULL) {
        p->nomem = true;
        return;
    }
    *(char **)field(base, k->offset) = copy;
}

#define NAME_PREDICATE "must be 1 to %d letters, digits, '-' or '_'"

static void set_name(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (!is_name(text, n->len)) {
        error_value(p, n, NAME_PREDICATE, CONF_NAME_MAX);
        return;
    }
    char *copy = conf_strdup(text);
    if (copy == NULL) {
        p->nomem = true;
        return;
    }
    *(char **)field(base, k->offset) = copy;
}

/* YAML 1.2 core schema booleans. */
static int parse_bool(const char *s)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return 1;
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return 0;
    return -1;
}

/* routes[].drop: only checked here; the route walk reads it. */
static void set_drop(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    (void)k;
    (void)base;
    const char *text = scalar_text(p, n, "must be true or false");
    if (text != NULL && parse_bool(text) < 0)
        error_value(p, n, "must be true or false");
}

#define HEP_VERSION_PREDICATE "must be 3 (output is HEPv3)"

static void set_hep_version(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    const char *text = scalar_text(p, n, HEP_VERSION_PREDICATE);
    if (text == NULL)
        return;
    if (parse_number(text, CONF_HEP_OUTPUT, CONF_HEP_OUTPUT, &v) != NUMBER_OK) {
        error_value(p, n, HEP_VERSION_PREDICATE);
        return;
    }
    *(int *)field(base, k->offset) = (int)v;
}

static void set_dest_capture_id(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_dest *d = base;
    uint64_t v;
    if (get_number(p, n, k, &v)) {
        d->capture_id = (uint32_t)v;
        d->set_capture_id = true;
    }
}

/* ---- list setters ------------------------------------------------------------- */

/*
 * A list of scalars; a single scalar is a list of one.  Allocates the
 * elements (zeroed) and stores pointer and count even when some elements
 * fail, so conf_free() finds everything.  Returns false when the node is
 * not a list at all.
 */
static bool parse_list(struct parse *p, struct node *n, const struct conf_key *k, void *base,
                       size_t elem_size, elem_parser *parse_elem, const char *expect)
{
    struct node **items = &n;
    size_t nitems = 1;
    bool single = true;

    if (n->type == NODE_MAPPING) {
        error_key(p, n, "must be a list");
        return false;
    }
    if (node_is_null(n)) {
        error_key(p, n, "has no value");
        return false;
    }
    if (n->type == NODE_SEQUENCE) {
        items = n->items;
        nitems = n->nitems;
        single = false;
    }
    if (nitems == 0) {
        if (k->flags & KEY_NONEMPTY) {
            error_key(p, n, (k->flags & KEY_MATCH) ? "must not be empty (leave the key out to match anything)"
                                                   : "must not be empty");
            return false;
        }
        return true;
    }
    char *elems = conf_calloc(nitems, elem_size);
    if (elems == NULL) {
        p->nomem = true;
        return false;
    }
    *(void **)field(base, k->offset) = elems;
    *(size_t *)field(base, k->count_offset) = nitems;
    for (size_t i = 0; i < nitems; i++) {
        size_t old = single ? p->pathlen : path_push_index(p, i);
        const char *text = scalar_text(p, items[i], expect);
        if (text != NULL) {
            const char *why = parse_elem(p, text, elems + i * elem_size);
            if (why != NULL)
                error_value(p, items[i], "%s", why);
        }
        path_pop(p, old);
    }
    return true;
}

static int addr_cmp(const struct conf_addr *x, const struct conf_addr *y)
{
    if (x->transport != y->transport)
        return x->transport < y->transport ? -1 : 1;
    if (x->salen != y->salen)
        return x->salen < y->salen ? -1 : 1;
    return memcmp(&x->sa, &y->sa, x->salen);
}

/* Ties are broken by position in the array, so the later of two equal ones is found. */
static int addr_ptr_cmp(const void *a, const void *b)
{
    const struct conf_addr *x = *(const struct conf_addr *const *)a;
    const struct conf_addr *y = *(const struct conf_addr *const *)b;
    int c = addr_cmp(x, y);
    if (c != 0)
        return c;
    return x < y ? -1 : x > y;
}

static const struct conf_addr **sort_addrs(struct parse *p, const struct conf_addr *addrs, size_t n)
{
    const struct conf_addr **sorted = conf_malloc(n * sizeof *sorted);
    if (sorted == NULL) {
        p->nomem = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = &addrs[i];
    qsort(sorted, n, sizeof *sorted, addr_ptr_cmp);
    return sorted;
}

/* "is listed twice" for every address equal to an earlier one of the same list. */
static void check_duplicate_addrs(struct parse *p, struct node *n, const struct conf_addr *addrs,
                                  size_t count)
{
    if (n->type != NODE_SEQUENCE || count < 2)
        return;
    const struct conf_addr **sorted = sort_addrs(p, addrs, count);
    if (sorted == NULL)
        return;
    for (size_t i = 1; i < count; i++) {
        if (sorted[i]->salen == 0 || addr_cmp(sorted[i - 1], sorted[i]) != 0)
            continue;
        size_t idx = (size_t)(sorted[i] - addrs);
        size_t old = path_push_index(p, idx);
        error_value(p, n->items[idx], "is listed twice");
        path_pop(p, old);
    }
    free(sorted);
}

static const char *parse_listen_elem(struct parse *p, const char *text, void *elem)
{
    (void)p;
    return conf_parse_addr(text, elem);
}

static bool addr_is_unspecified(const struct conf_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
}

static in_port_t addr_port(const struct conf_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

static int addr_find_cmp(const void *key, const void *elem)
{
    return addr_cmp(key, *(const struct conf_addr *const *)elem);
}

static const char *parse_target_elem(struct parse *p, const char *text, void *elem)
{
    struct conf_addr *a = elem;
    const char *why = conf_parse_addr(text, a);
    if (why == NULL && addr_port(a) == 0)
        why = "has port 0";
    if (why == NULL && addr_is_unspecified(a))
        why = "has an unspecified address (0.0.0.0 or ::)";
    if (why == NULL && p->listen_sorted != NULL &&
        bsearch(a, p->listen_sorted, p->conf->nlisten, sizeof *p->listen_sorted, addr_find_cmp) != NULL)
        why = "is also a listen address (it would loop)";
    if (why != NULL)
        memset(a, 0, sizeof *a);    /* salen 0: left out of the duplicate check */
    return why;
}

static void set_listen(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    if (!parse_list(p, n, k, base, sizeof(struct conf_addr), parse_listen_elem, "must be an address"))
        return;
    check_duplicate_addrs(p, n, c->listen, c->nlisten);
    if (c->nlisten > 0 && p->listen_sorted == NULL)
        p->listen_sorted = sort_addrs(p, c->listen, c->nlisten);
}

static void set_targets(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_dest *d = base;
    if (parse_list(p, n, k, base, sizeof(struct conf_addr), parse_target_elem, "must be an address"))
        check_duplicate_addrs(p, n, d->targets, d->ntargets);
}

static const char *parse_dest_ref(struct parse *p, const char *text, void *elem)
{
    long i = conf_dest_index(p->conf, text);
    if (i < 0) {
        /* a destination whose name was refused is not unknown */
        if (p->dests_broken || map_get(p->dests_node, text) != NULL)
            return NULL;
        return "is not a defined destination";
    }
    if (p->dest_seen[i])
        return "is listed twice";
    p->dest_seen[i] = true;
    *(size_t *)elem = (size_t)i;
    return NULL;
}

/* routes[].to and default: destination names -> indexes into conf.dests. */
static void set_dest_refs(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    size_t ndests = p->conf->ndests;
    p->dest_seen = conf_calloc(ndests ? ndests : 1, sizeof *p->dest_seen);
    if (p->dest_seen == NULL) {
        p->nomem = true;
        return;
    }
    parse_list(p, n, k, base, sizeof(size_t), parse_dest_ref, "must be a destination name");
    free(p->dest_seen);
    p->dest_seen = NULL;
}

/* RFC 3261 token characters. */
static bool is_token_char(char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("-.!%*_+`'~", c) != NULL);
}

static const char *parse_method(struct parse *p, const char *text, void *elem)
{
    size_t len = strlen(text);
    bool ok = len > 0 && len <= CONF_METHOD_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = is_token_char(text[i]) && !(text[i] >= 'a' && text[i] <= 'z');
    if (!ok) {
        snprintf(p->why, sizeof p->why,
                 "is not a SIP method (an upper-case token of 1 to %d characters)", CONF_METHOD_MAX);
        return p->why;
    }
    char *copy = conf_strdup(text);
    if (copy == NULL)
        p->nomem = true;
    *(char **)elem = copy;
    return NULL;
}

static const struct conf_name proto_names[] = {
    { "sip", HEP_PROTO_SIP },
    { "rtcp", HEP_PROTO_RTCP },
    { "log", HEP_PROTO_LOG },
    { NULL, 0 },
};

static const char *parse_proto(struct parse *p, const char *text, void *elem)
{
    uint64_t v;
    for (const struct conf_name *n = proto_names; n->name != NULL; n++) {
        if (strcmp(text, n->name) == 0) {
            *(unsigned *)elem = (unsigned)n->value;
            return NULL;
        }
    }
    if (parse_number(text, 0, CONF_PROTO_MAX, &v) == NUMBER_OK) {
        *(unsigned *)elem = (unsigned)v;
        return NULL;
    }
    snprintf(p->why, sizeof p->why, "must be sip, rtcp, log or a number from 0 to %u", CONF_PROTO_MAX);
    return p->why;
}

static const char *parse_capture_id(struct parse *p, const char *text, void *elem)
{
    uint64_t v;
    if (parse_number(text, 0, UINT32_MAX, &v) == NUMBER_OK) {
        *(uint32_t *)elem = (uint32_t)v;
        return NULL;
    }
    snprintf(p->why, sizeof p->why, "must be an integer from 0 to %" PRIu32, UINT32_MAX);
    return p->why;
}

static const char *parse_cidr_elem(struct parse *p, const char *text, void *elem)
{
    (void)p;
    return conf_parse_cidr(text, elem);
}

static bool is_x(char c)
{
    return c == 'x' || c == 'X';
}

/* "407" or a class "4xx". */
static const char *parse_status(struct parse *p, const char *text, void *elem)
{
    struct conf_status *s = elem;
    uint64_t v;
    if (is_digit(text[0]) && is_x(text[1]) && is_x(text[2]) && text[3] == '\0') {
        unsigned lo = (unsigned)(text[0] - '0') * CONF_STATUS_CLASS;
        if (lo >= CONF_STATUS_MIN && lo <= CONF_STATUS_MAX) {
            s->lo = lo;
            s->hi = lo + CONF_STATUS_CLASS - 1;
            return NULL;
        }
    } else if (parse_number(text, CONF_STATUS_MIN, CONF_STATUS_MAX, &v) == NUMBER_OK) {
        s->lo = s->hi = (unsigned)v;
        return NULL;
    }
    snprintf(p->why, sizeof p->why, "must be a status code from %u to %u or a class from %uxx to %uxx",
             CONF_STATUS_MIN, CONF_STATUS_MAX, CONF_STATUS_MIN / CONF_STATUS_CLASS,
             CONF_STATUS_MAX / CONF_STATUS_CLASS);
    return p->why;
}

static void set_methods(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(char *), parse_method, "must be a method name");
}

static void set_protos(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(unsigned), parse_proto, "must be a protocol name or number");
}

static void set_capture_ids(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(uint32_t), parse_capture_id, "must be an integer");
}

static void set_cidrs(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(struct conf_cidr), parse_cidr_elem, "must be an address or CIDR");
}

static void set_statuses(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(struct conf_status), parse_status, "must be a status code or class");
}

/* ---- store.redis values --------------------------------------------------------- */

#define HOST_PREDICATE "must be a host name or a numeric IP address"
#define TOKEN_PREDICATE "must be 1 to %u bytes without spaces or control characters"
#define OPTIONAL_TOKEN_PREDICATE "must be at most %u bytes without spaces or control characters"

/*
 * A DNS name: dot-separated labels of letters, digits, '-' (not first or
 * last) and '_' (container names have it); the last label is not all digits,
 * so a mistyped address such as 10.0.0.300 is not taken for a name.
 */
static bool is_host_name(const char *s, size_t len)
{
    if (len == 0 || len > CONF_HOST_MAX)
        return false;
    size_t start = 0;
    bool numeric = false;           /* the label just ended */
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!is_name_char(s[i]))
                return false;
            continue;
        }
        size_t label = i - start;
        if (label == 0 || label > CONF_LABEL_MAX || s[start] == '-' || s[i - 1] == '-')
            return false;
        numeric = true;
        for (size_t j = start; j < i; j++)
            numeric = numeric && is_digit(s[j]);
        start = i + 1;
    }
    return !numeric;
}

/* A host name, or an IPv4 or IPv6 address without brackets. */
static bool is_host(const char *s, size_t len)
{
    char host[CONF_HOST_MAX + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    if (is_host_name(s, len))
        return true;
    if (len == 0 || len >= sizeof host)
        return false;
    memcpy(host, s, len);
    host[len] = '\0';
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* Key prefixes, ACL user and Sentinel master names go into commands as they are. */
static bool is_token(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

static void set_copy(struct parse *p, const char *text, const struct conf_key *k, void *base)
{
    char *copy = conf_strdup(text);
    if (copy == NULL) {
        p->nomem = true;
        return;
    }
    *(char **)field(base, k->offset) = copy;
}

static void set_host(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (!is_host(text, n->len)) {
        error_value(p, n, HOST_PREDICATE);
        return;
    }
    set_copy(p, text, k, base);
}

static void set_unix_path(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (text[0] != '/' || n->len > CONF_UNIX_PATH_MAX) {
        error_value(p, n, "must be an absolute path of at most %zu bytes", CONF_UNIX_PATH_MAX);
        return;
    }
    set_copy(p, text, k, base);
}

/* store.redis.prefix, master_name. */
static void set_token(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0 || n->len > CONF_STRING_MAX || !is_token(text, n->len)) {
        error_value(p, n, TOKEN_PREDICATE, CONF_STRING_MAX);
        return;
    }
    set_copy(p, text, k, base);
}

/* store.redis.username: "" is none (the field stays NULL). */
static void set_optional_token(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len > CONF_STRING_MAX || !is_token(text, n->len)) {
        error_value(p, n, OPTIONAL_TOKEN_PREDICATE, CONF_STRING_MAX);
        return;
    }
    if (n->len > 0)
        set_copy(p, text, k, base);
}

/*
 * store.redis.password: "" is none.  Its errors never quote the value, so a
 * password does not end up in a log.
 */
static void set_password(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    if (n->type != NODE_SCALAR) {
        error_key(p, n, "must be a string");
        return;
    }
    if (node_is_null(n)) {
        error_key(p, n, "has no value");
        return;
    }
    if (strlen(n->value) != n->len) {
        error_key(p, n, "contains a NUL byte");
        return;
    }
    if (n->len > CONF_PASSWORD_MAX) {
        error_key(p, n, "must be at most %u bytes", CONF_PASSWORD_MAX);
        return;
    }
    if (n->len > 0)
        set_copy(p, n->value, k, base);
}

/* store.redis.password_file: checked and read once all of store.redis is known. */
static void set_path(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0) {
        error_value(p, n, "is empty");
        return;
    }
    set_copy(p, text, k, base);
}

/* A "host:port" or "[IPv6]:port" split in place (host is not NUL-terminated). */
struct host_port {
    const char *host;
    size_t hlen;
    bool bracketed;
    unsigned port;
};

/* Splits text and reads its port (0 to 65535); NULL or a predicate. */
static const char *split_host_port(const char *text, struct host_port *hp)
{
    const char *port;
    uint64_t portnum;

    hp->host = text;
    hp->bracketed = *text == '[';
    if (hp->bracketed) {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return "has an unclosed [";
        hp->host++;
        hp->hlen = (size_t)(close - hp->host);
        if (close[1] != ':')
            return "has no port";
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL)
            return "has no port";
        hp->hlen = (size_t)(colon - text);
        if (memchr(text, ':', hp->hlen) != NULL)
            return "needs [brackets] around an IPv6 address";
        port = colon + 1;
    }
    if (!is_digit(port[0]) || strlen(port) > CONF_PORT_DIGITS ||
        parse_number(port, 0, CONF_PORT_MAX, &portnum) != NUMBER_OK)
        return "has an invalid port";
    hp->port = (unsigned)portnum;
    return NULL;
}

/* "host:port" or "[IPv6]:port", port 1 to 65535; kept as written. */
static const char *parse_sentinel(struct parse *p, const char *text, void *elem)
{
    struct host_port hp;
    const char *why;
    (void)p;

    if (*text == '\0')
        return "is empty";
    if ((why = split_host_port(text, &hp)) != NULL)
        return why;
    if (hp.port == 0)
        return "has port 0";

    if (hp.bracketed) {
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (hp.hlen >= sizeof addr)
            return "is not a numeric IP address";
        memcpy(addr, hp.host, hp.hlen);
        addr[hp.hlen] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return "is not a numeric IP address";
    } else if (!is_host(hp.host, hp.hlen)) {
        return "has an invalid host name";
    }

    char *copy = conf_strdup(text);
    if (copy == NULL)
        p->nomem = true;
    *(char **)elem = copy;
    return NULL;
}

static int sentinel_ptr_cmp(const void *a, const void *b)
{
    char **x = *(char **const *)a, **y = *(char **const *)b;
    int c = strcasecmp(*x, *y);         /* host names are case-insensitive */
    if (c != 0)
        return c;
    return x < y ? -1 : x > y;
}

static void set_sentinels(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_redis *r = base;
    if (!parse_list(p, n, k, base, sizeof(char *), parse_sentinel, "must be a host:port") ||
        n->type != NODE_SEQUENCE || r->nsentinels < 2)
        return;
    char ***sorted = conf_malloc(r->nsentinels * sizeof *sorted);
    if (sorted == NULL) {
        p->nomem = true;
        return;
    }
    size_t count = 0;
    for (size_t i = 0; i < r->nsentinels; i++)
        if (r->sentinels[i] != NULL)
            sorted[count++] = &r->sentinels[i];
    if (count > 1)
        qsort(sorted, count, sizeof *sorted, sentinel_ptr_cmp);
    for (size_t i = 1; i < count; i++) {
        if (strcasecmp(*sorted[i - 1], *sorted[i]) != 0)
            continue;
        size_t idx = (size_t)(sorted[i] - r->sentinels);
        size_t old = path_push_index(p, idx);
        error_value(p, n->items[idx], "is listed twice");
        path_pop(p, old);
    }
    free(sorted);
}

/* ---- key tables --------------------------------------------------------------- */

#define KEY_END { .name = NULL }

static const struct conf_name store_names[] = {
    { "memory", CONF_STORE_MEMORY },
    { "redis", CONF_STORE_REDIS },
    { NULL, 0 },
};

static const struct conf_name balance_names[] = {
    { "all", CONF_BALANCE_ALL },
    { "hash", CONF_BALANCE_HASH },
    { "round_robin", CONF_BALANCE_ROUND_ROBIN },
    { "failover", CONF_BALANCE_FAILOVER },
    { NULL, 0 },
};

static const struct conf_name level_names[] = {
    { "error", LOG_LEVEL_ERROR },
    { "warn", LOG_LEVEL_WARN },
    { "info", LOG_LEVEL_INFO },
    { "debug", LOG_LEVEL_DEBUG },
    { NULL, 0 },
};

#define CONF_FIELD(type, f) offsetof(type, f)

/* A number or duration field of struct conf. */
#define NUMBER(key, setter, f, def, lo, hi) \
    { .name = key, .set = setter, .offset = CONF_FIELD(struct conf, f), .dflt = def, .min = lo, .max = hi }

/* A number field of struct conf_redis. */
#define REDIS_NUMBER(key, setter, f, def, lo, hi) \
    { .name = key, .set = setter, .offset = CONF_FIELD(struct conf_redis, f), .dflt = def, .min = lo, .max = hi }

/* See check_redis() for the keys that exclude each other. */
static const struct conf_key redis_keys[] = {
    /* set to NULL when unix is given */
    { .name = "host", .set = set_host, .offset = CONF_FIELD(struct conf_redis, host), .dflt = "127.0.0.1" },
    /* absent: TCP to host:port */
    { .name = "unix", .set = set_unix_path, .offset = CONF_FIELD(struct conf_redis, unix_path) },
    REDIS_NUMBER("port", set_unsigned, port, "6379", 1, CONF_PORT_MAX),
    REDIS_NUMBER("db", set_unsigned, db, "0", 0, CONF_DB_MAX),
    /* absent or "": no ACL user, no AUTH */
    { .name = "username", .set = set_optional_token, .offset = CONF_FIELD(struct conf_redis, username) },
    { .name = "password", .set = set_password, .offset = CONF_FIELD(struct conf_redis, password) },
    { .name = "password_file", .set = set_path, .offset = CONF_FIELD(struct conf_redis, password_file) },
    { .name = "prefix", .set = set_token, .offset = CONF_FIELD(struct conf_redis, prefix), .dflt = "heprouter:" },
    REDIS_NUMBER("timeout_ms", set_u64, timeout_ms, "50", 1, CONF_REDIS_WAIT_MAX_MS),
    REDIS_NUMBER("max_inflight", set_size, max_inflight, "10000", 1, CONF_INFLIGHT_MAX),
    REDIS_NUMBER("max_pending_writes", set_size, max_pending_writes, "100000", 0, CONF_PENDING_MAX),
    REDIS_NUMBER("max_reply_bytes", set_size, max_reply_bytes, "65536", CONF_REPLY_MIN, CONF_REPLY_MAX),
    /* absent or []: connect to the server directly */
    { .name = "sentinels", .set = set_sentinels, .offset = CONF_FIELD(struct conf_redis, sentinels),
      .count_offset = CONF_FIELD(struct conf_redis, nsentinels) },
    { .name = "master_name", .set = set_token, .offset = CONF_FIELD(struct conf_redis, master_name),
      .dflt = "mymaster" },
    KEY_END,
};

static const struct conf_key cache_keys[] = {
    NUMBER("entries", set_size, cache_entries, "100000", 0, CONF_CACHE_MAX),
    KEY_END,
};

static void set_store_type(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_redis(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_cache(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/* type first: redis and cache look at it. */
static const struct conf_key store_keys[] = {
    { .name = "type", .set = set_store_type, .offset = CONF_FIELD(struct conf, store_type), .dflt = "memory",
      .names = store_names },
    NUMBER("max_calls", set_size, store_max_calls, "2000000", 0, CONF_COUNT_MAX),
    { .name = "redis", .set = set_redis, .offset = CONF_FIELD(struct conf, redis), .sub = redis_keys },
    /* the fields are in struct conf itself */
    { .name = "cache", .set = set_cache, .sub = cache_keys },
    KEY_END,
};

static const struct conf_key ttl_keys[] = {
    NUMBER("call", set_duration, ttl_call_ms, "4h", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS),
    NUMBER("register", set_duration, ttl_register_ms, "1h", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS),
    NUMBER("ended", set_duration, ttl_ended_ms, "30s", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS),
    KEY_END,
};

static const struct conf_key orphans_keys[] = {
    NUMBER("wait_ms", set_u64, orphans_wait_ms, "50", 0, CONF_WAIT_MAX_MS),
    NUMBER("max_held", set_size, orphans_max_held, "100000", 0, CONF_COUNT_MAX),
    NUMBER("max_bytes", set_size, orphans_max_bytes, "67108864", HEP3_MAX_LEN, CONF_HELD_BYTES_MAX),
    KEY_END,
};

static const struct conf_key limits_keys[] = {
    NUMBER("call_id_max", set_size, call_id_max, "256", CONF_CALL_ID_MIN, HEP3_MAX_LEN),
    NUMBER("tcp_max_connections", set_size, tcp_max_connections, "1024", 1, CONF_TCP_CONN_MAX),
    NUMBER("fd_reserve", set_size, fd_reserve, "64", 0, CONF_FD_RESERVE_MAX),
    NUMBER("tcp_max_frame", set_size, tcp_max_frame, "65535", HEP3_HDR_LEN, HEP3_MAX_LEN),
    NUMBER("tcp_idle_timeout", set_duration, tcp_idle_timeout_ms, "10m", MS_PER_SECOND, CONF_IDLE_MAX_MS),
    NUMBER("udp_batch", set_size, udp_batch, "64", 1, CONF_UDP_BATCH_MAX),
    NUMBER("udp_rcvbuf", set_size, udp_rcvbuf, "8388608", 0, CONF_RCVBUF_MAX),
    NUMBER("tcp_queue_bytes", set_size, tcp_queue_bytes, "4194304", HEP3_MAX_LEN, CONF_QUEUE_MAX),
    NUMBER("reconnect_min", set_duration, reconnect_min_ms, "100ms", 1, CONF_TIMEOUT_MAX_MS),
    NUMBER("reconnect_max", set_duration, reconnect_max_ms, "5s", 1, CONF_TIMEOUT_MAX_MS),
    NUMBER("connect_timeout", set_duration, connect_timeout_ms, "2s", 1, CONF_TIMEOUT_MAX_MS),
    NUMBER("drain_timeout", set_duration, drain_timeout_ms, "2s", 0, CONF_TIMEOUT_MAX_MS),
    KEY_END,
};

static const struct conf_key log_keys[] = {
    { .name = "level", .set = set_enum, .offset = CONF_FIELD(struct conf, log_level), .dflt = "info",
      .names = level_names },
    NUMBER("interval", set_duration, log_interval_ms, "10s", 0, CONF_LOG_MAX_MS),
    NUMBER("stats_interval", set_duration, stats_interval_ms, "0", 0, CONF_LOG_MAX_MS),
    KEY_END,
};

static const struct conf_key dest_keys[] = {
    { .name = "targets", .set = set_targets, .offset = CONF_FIELD(struct conf_dest, targets),
      .count_offset = CONF_FIELD(struct conf_dest, ntargets), .flags = KEY_REQUIRED | KEY_NONEMPTY },
    { .name = "balance", .set = set_enum, .offset = CONF_FIELD(struct conf_dest, balance), .dflt = "all",
      .names = balance_names },
    /* absent: 0, forward as received */
    { .name = "hep_version", .set = set_hep_version, .offset = CONF_FIELD(struct conf_dest, hep_version) },
    /* absent: keep the packet's own */
    { .name = "capture_id", .set = set_dest_capture_id, .offset = CONF_FIELD(struct conf_dest, capture_id),
      .min = 0, .max = UINT32_MAX },
    { .name = "node_name", .set = set_string, .offset = CONF_FIELD(struct conf_dest, node_name) },
    { .name = "auth_key", .set = set_string, .offset = CONF_FIELD(struct conf_dest, auth_key) },
    { .name = "max_packet", .set = set_size, .offset = CONF_FIELD(struct conf_dest, max_packet),
      .dflt = "65535", .min = HEP3_HDR_LEN, .max = HEP3_MAX_LEN },
    KEY_END,
};

#define MATCH_LIST(key, setter, f, nf) \
    { .name = key, .set = setter, .offset = CONF_FIELD(struct conf_match, f), \
      .count_offset = CONF_FIELD(struct conf_match, nf), .flags = KEY_NONEMPTY | KEY_MATCH }

static const struct conf_key match_keys[] = {
    MATCH_LIST("method", set_methods, methods, nmethods),
    MATCH_LIST("proto", set_protos, protos, nprotos),
    MATCH_LIST("capture_id", set_capture_ids, capture_ids, ncapture_ids),
    MATCH_LIST("src", set_cidrs, src, nsrc),
    MATCH_LIST("dst", set_cidrs, dst, ndst),
    MATCH_LIST("status", set_statuses, status, nstatus),
    KEY_END,
};

static const struct conf_key route_keys[] = {
    /* absent: "route-N", N counting from 1 (see set_routes) */
    { .name = "name", .set = set_name, .offset = CONF_FIELD(struct conf_route, name) },
    /* absent: matches every call */
    { .name = "match", .set = set_section, .offset = CONF_FIELD(struct conf_route, match),
      .sub = match_keys },
    /* absent: needs drop: true */
    { .name = "to", .set = set_dest_refs, .offset = CONF_FIELD(struct conf_route, to),
      .count_offset = CONF_FIELD(struct conf_route, nto) },
    { .name = "drop", .set = set_drop },
    KEY_END,
};

static void set_destinations(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_routes(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/* The order matters: listen before destinations (loop check), destinations before routes. */
static const struct conf_key top_keys[] = {
    { .name = "listen", .set = set_listen, .offset = CONF_FIELD(struct conf, listen),
      .count_offset = CONF_FIELD(struct conf, nlisten), .flags = KEY_REQUIRED | KEY_NONEMPTY },
    NUMBER("workers", set_unsigned, workers, "1", 1, CONF_WORKERS_MAX),
    { .name = "store", .set = set_section, .sub = store_keys },
    { .name = "ttl", .set = set_section, .sub = ttl_keys },
    { .name = "orphans", .set = set_section, .sub = orphans_keys },
    { .name = "limits", .set = set_section, .sub = limits_keys },
    { .name = "log", .set = set_section, .sub = log_keys },
    { .name = "destinations", .set = set_destinations, .flags = KEY_REQUIRED },
    /* absent: no routes, every call takes default */
    { .name = "routes", .set = set_routes },
    /* absent: calls no route matched are discarded */
    { .name = "default", .set = set_dest_refs, .offset = CONF_FIELD(struct conf, default_to),
      .count_offset = CONF_FIELD(struct conf, ndefault_to) },
    KEY_END,
};

/* ---- store ------------------------------------------------------------------------ */

static void set_store_type(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    size_t before = p->nerrors + p->ndropped;
    set_enum(p, n, k, base);
    if (p->nerrors + p->ndropped != before)
        p->store_type_bad = true;
}

/*
 * store.redis and store.cache with type memory would be ignored: an error,
 * so that nobody believes the router shares its calls.  Absent, they still
 * get their defaults.
 */
static bool store_section_unused(struct parse *p, const struct node *n)
{
    if (n == NULL || p->store_type_bad || p->conf->store_type == CONF_STORE_REDIS)
        return false;
    error_key(p, n, "is only used with type: redis");
    return true;
}

static void set_cache(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    if (!store_section_unused(p, n))
        set_section(p, n, k, base);
}

static const struct conf_key *table_key(const struct conf_key *table, const char *name)
{
    while (strcmp(table->name, name) != 0)
        table++;
    return table;
}

/* "KEY: cannot be used with OTHER" at key `name` of map. */
static void error_excludes(struct parse *p, const struct node *map, const char *name, const char *other)
{
    size_t old = path_push_key(p, name, strlen(name));
    error_value(p, map_get(map, name), "cannot be used with %s", other);
    path_pop(p, old);
}

/*
 * The first line of store.redis.password_file, without its line end (\n or
 * \r\n), becomes the password.  Errors name the file, never its content.
 */
static void read_password(struct parse *p, const struct node *n, struct conf_redis *r)
{
    size_t old = path_push_key(p, "password_file", strlen("password_file"));
    FILE *f = fopen(r->password_file, "r");
    if (f == NULL) {
        error_value(p, n, "cannot open: %s", strerror(errno));
        path_pop(p, old);
        return;
    }
    char line[CONF_PASSWORD_MAX + 2];   /* + 1: a \r to strip; + 1: the NUL */
    size_t len = 0;
    bool nul = false, longer = false;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (len == sizeof line - 1) {
            longer = true;
            break;
        }
        nul = nul || c == '\0';
        line[len++] = (char)c;
    }
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (len > 0 && line[len - 1] == '\r' && !longer)
        len--;
    line[len] = '\0';
    if (failed)
        error_value(p, n, "cannot read: %s", strerror(saved));
    else if (longer || len > CONF_PASSWORD_MAX)
        error_value(p, n, "has a first line longer than %u bytes", CONF_PASSWORD_MAX);
    else if (nul)
        error_value(p, n, "has a NUL byte in its first line");
    else if (len == 0)
        error_value(p, n, "has an empty first line");
    else if ((r->password = conf_strdup(line)) == NULL)
        p->nomem = true;
    explicit_bzero(line, sizeof line);
    path_pop(p, old);
}

/*
 * Keys that would be ignored are errors: with sentinels the master is found
 * through them (host, port and unix are unused); with unix there is no
 * host:port; master_name needs sentinels; password and password_file are
 * two sources of one value.  host and port at their defaults are not
 * counted as given.
 */
static void check_redis(struct parse *p, const struct node *map, struct conf_redis *r)
{
    const struct node *sentinels = map_get(map, "sentinels");
    bool has_sentinels = sentinels != NULL && !(sentinels->type == NODE_SEQUENCE && sentinels->nitems == 0);
    bool has_unix = map_get(map, "unix") != NULL;
    uint64_t port_default;
    bool other_host = map_get(map, "host") != NULL && r->host != NULL &&
                      strcmp(r->host, table_key(redis_keys, "host")->dflt) != 0;
    bool other_port = map_get(map, "port") != NULL && r->port != 0 &&
                      parse_number(table_key(redis_keys, "port")->dflt, 0, CONF_PORT_MAX, &port_default) ==
                          NUMBER_OK && r->port != port_default;

    if (has_sentinels && has_unix)
        error_excludes(p, map, "unix", "sentinels");
    if (other_host && (has_sentinels || has_unix))
        error_excludes(p, map, "host", has_sentinels ? "sentinels" : "unix");
    if (other_port && (has_sentinels || has_unix))
        error_excludes(p, map, "port", has_sentinels ? "sentinels" : "unix");
    if (!has_sentinels && map_get(map, "master_name") != NULL) {
        size_t old = path_push_key(p, "master_name", strlen("master_name"));
        error_value(p, map_get(map, "master_name"), "is only used with sentinels");
        path_pop(p, old);
    }
    if (r->unix_path != NULL) {
        free(r->host);
        r->host = NULL;
    }
    const struct node *file = map_get(map, "password_file");
    if (file != NULL && r->password_file != NULL) {
        if (map_get(map, "password") != NULL)
            error_excludes(p, map, "password_file", "password");
        else
            read_password(p, file, r);
    }
}

static void set_redis(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    if (store_section_unused(p, n))
        return;
    struct conf_redis *r = field(base, k->offset);
    parse_map(p, n, k->sub, r);
    if (n != NULL && n->type == NODE_MAPPING)
        check_redis(p, n, r);
}

/* ---- destinations and routes --------------------------------------------------- */

static void set_destinations(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    (void)k;
    if (!expect_mapping(p, n)) {
        p->dests_broken = true;
        return;
    }
    check_keys(p, n, NULL);
    size_t npairs = n->nitems / 2;
    if (npairs == 0) {
        error_key(p, n, "must not be empty");
        return;
    }
    c->dests = conf_calloc(npairs, sizeof *c->dests);
    if (c->dests == NULL) {
        p->nomem = true;
        return;
    }
    c->ndests = npairs;
    for (size_t i = 0; i < npairs; i++) {
        struct node *key = n->items[2 * i];
        struct conf_dest *d = &c->dests[i];
        if (key->type != NODE_SCALAR) {
            p->dests_broken = true;     /* reported by check_keys */
            continue;
        }
        size_t old = path_push_key(p, key->value, key->len);
        if (!is_name(key->value, key->len))
            error_key(p, key, NAME_PREDICATE, CONF_NAME_MAX);
        else if ((d->name = conf_strdup(key->value)) == NULL) {
            p->nomem = true;
        }
        parse_map(p, n->items[2 * i + 1], dest_keys, d);
        path_pop(p, old);
    }
}

/* A route sends somewhere (to) or discards (drop: true), never both, never neither. */
static void check_route_action(struct parse *p, struct node *route)
{
    struct node *to = map_get(route, "to");
    struct node *drop = map_get(route, "drop");
    int drop_value = 0;
    if (drop != NULL) {
        if (drop->type != NODE_SCALAR || node_is_null(drop) || strlen(drop->value) != drop->len)
            return;                     /* reported by set_drop */
        drop_value = parse_bool(drop->value);
        if (drop_value < 0)
            return;
    }
    if (to != NULL && drop_value == 1)
        error_key(p, drop, "has both to and drop: true");
    else if (to == NULL && drop_value == 0)
        error_key(p, route, "needs to or drop: true");
}

static int route_ptr_cmp(const void *a, const void *b)
{
    const struct conf_route *x = *(const struct conf_route *const *)a;
    const struct conf_route *y = *(const struct conf_route *const *)b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x < y ? -1 : x > y;
}

/* Reported on the route whose name was written (a default name is unique by itself). */
static void check_route_names(struct parse *p, struct node *n, struct conf *c)
{
    const struct conf_route **sorted = conf_malloc(c->nroutes * sizeof *sorted);
    if (sorted == NULL) {
        p->nomem = true;
        return;
    }
    size_t count = 0;
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].name != NULL)
            sorted[count++] = &c->routes[i];
    qsort(sorted, count, sizeof *sorted, route_ptr_cmp);
    for (size_t i = 1; i < count; i++) {
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) != 0)
            continue;
        size_t first = (size_t)(sorted[i - 1] - c->routes), later = (size_t)(sorted[i] - c->routes);
        struct node *name = map_get(n->items[later], "name");
        size_t at = later, other = first;
        if (name == NULL) {             /* the later one has the default name */
            name = map_get(n->items[first], "name");
            at = first;
            other = later;
        }
        if (name == NULL)
            continue;
        size_t old = path_push_index(p, at);
        size_t old2 = path_push_key(p, "name", strlen("name"));
        error_value(p, name, "is also the name of routes[%zu]", other);
        path_pop(p, old2);
        path_pop(p, old);
    }
    free(sorted);
}

#define ROUTE_NAME_FORMAT "route-%zu"

static void set_routes(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    (void)k;
    if (n->type != NODE_SEQUENCE) {
        error_key(p, n, node_is_null(n) ? "has no value" : "must be a list");
        return;
    }
    if (n->nitems == 0)
        return;
    c->routes = conf_calloc(n->nitems, sizeof *c->routes);
    if (c->routes == NULL) {
        p->nomem = true;
        return;
    }
    c->nroutes = n->nitems;
    for (size_t i = 0; i < n->nitems; i++) {
        struct conf_route *r = &c->routes[i];
        struct node *item = n->items[i];
        size_t old = path_push_index(p, i);
        parse_map(p, item, route_keys, r);
        if (item->type == NODE_MAPPING)
            check_route_action(p, item);
        if (r->name == NULL && map_get(item, "name") == NULL) {
            char buf[sizeof ROUTE_NAME_FORMAT + 3 * sizeof(size_t)];
            snprintf(buf, sizeof buf, ROUTE_NAME_FORMAT, i + 1);
            if ((r->name = conf_strdup(buf)) == NULL)
                p->nomem = true;
        }
        path_pop(p, old);
    }
    check_route_names(p, n, c);
}

/* ---- pass 3: cross-checks ------------------------------------------------------ */

/* True when key `name` of table is absent from map or was accepted by its setter. */
static bool key_accepted(const struct node *map, const struct conf_key *table, const char *name)
{
    const struct node *n = map_get(map, name);
    if (n == NULL)
        return true;
    const struct conf_key *k = table;
    while (strcmp(k->name, name) != 0)
        k++;
    uint64_t ms;
    return n->type == NODE_SCALAR && !node_is_null(n) && strlen(n->value) == n->len &&
           conf_parse_duration(n->value, &ms) == NULL && ms >= k->min && ms <= k->max;
}

static void check_reconnect(struct parse *p, const struct node *root)
{
    const struct conf *c = p->conf;
    struct node *limits = map_get(root, "limits");
    struct node *lo = map_get(limits, "reconnect_min"), *hi = map_get(limits, "reconnect_max");
    if (!key_accepted(limits, limits_keys, "reconnect_min") ||
        !key_accepted(limits, limits_keys, "reconnect_max"))
        return;                         /* already reported */
    if (c->reconnect_min_ms <= c->reconnect_max_ms)
        return;
    char buf[DURATION_TEXT_MAX];
    size_t old = path_push_key(p, "limits", strlen("limits"));
    if (lo != NULL) {
        size_t old2 = path_push_key(p, "reconnect_min", strlen("reconnect_min"));
        error_value(p, lo, "must not be greater than limits.reconnect_max (%s)",
                    format_duration(c->reconnect_max_ms, buf, sizeof buf));
        path_pop(p, old2);
    } else if (hi != NULL) {
        size_t old2 = path_push_key(p, "reconnect_max", strlen("reconnect_max"));
        error_value(p, hi, "must not be less than limits.reconnect_min (%s)",
                    format_duration(c->reconnect_min_ms, buf, sizeof buf));
        path_pop(p, old2);
    }
    path_pop(p, old);
}

/* ---- loading ------------------------------------------------------------------ */

#define READ_CHUNK 4096

/* Reads the whole file (at most CONF_FILE_MAX bytes) into a NUL-terminated buffer. */
static char *read_file(struct parse *p, FILE *out, size_t *len)
{
    FILE *f = fopen(p->file, "rb");
    if (f == NULL) {
        if (out != NULL)
            fprintf(out, "%s: cannot open: %s\n", p->file, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t used = 0, cap = 0;
    for (;;) {
        if (used == cap) {
            size_t grown = cap ? 2 * cap : READ_CHUNK;
            char *more = conf_realloc(buf, grown + 1);     /* + 1: the NUL */
            if (more == NULL) {
                p->nomem = true;
                break;
            }
            buf = more;
            cap = grown;
        }
        size_t got = fread(buf + used, 1, cap - used, f);
        used += got;
        if (got == 0 || used > CONF_FILE_MAX)
            break;
    }
    int failed = ferror(f), saved = errno;
    fclose(f);
    if (p->nomem) {
        free(buf);
        return NULL;
    }
    if (failed) {
        if (out != NULL)
            fprintf(out, "%s: cannot read: %s\n", p->file, strerror(saved));
        free(buf);
        return NULL;
    }
    if (used > CONF_FILE_MAX) {
        if (out != NULL)
            fprintf(out, "%s: is larger than %d bytes\n", p->file, CONF_FILE_MAX);
        free(buf);
        return NULL;
    }
    buf[used] = '\0';
    *len = used;
    return buf;
}

struct conf *conf_load(const char *path, FILE *err)
{
    struct parse p = { .file = path };
    struct conf *conf = NULL;
    size_t len = 0;
    char *buf = read_file(&p, err, &len);
    struct node *root = NULL;

    if (buf != NULL)
        root = load_tree(&p, buf, len);
    if (root != NULL && root->type != NODE_MAPPING)
        error_file(&p, root->mark, "the top level must be a mapping");
    else if (root != NULL && (conf = conf_calloc(1, sizeof *conf)) == NULL)
        p.nomem = true;
    if (conf != NULL) {
        p.conf = conf;
        if ((conf->path = conf_strdup(path)) == NULL)
            p.nomem = true;
        p.dests_node = map_get(root, "destinations");
        if (p.dests_node == NULL || p.dests_node->type != NODE_MAPPING)
            p.dests_broken = true;      /* reported; do not also call every name unknown */
        parse_map(&p, root, top_keys, conf);
        check_reconnect(&p, root);
    }

    bool failed = buf == NULL || p.nerrors > 0 || p.ndropped > 0 || p.nomem || conf == NULL;
    print_errors(&p, err);
    free(p.errors);
    free(p.listen_sorted);
    node_free(root);
    free(buf);
    if (failed) {
        conf_free(conf);
        return NULL;
    }
    return conf;
}

static void match_free(struct conf_match *m)
{
    for (size_t i = 0; i < m->nmethods; i++)
        free(m->methods[i]);
    free(m->methods);
    free(m->protos);
    free(m->capture_ids);
    free(m->src);
    free(m->dst);
    free(m->status);
}

static void redis_free(struct conf_redis *r)
{
    free(r->host);
    free(r->unix_path);
    free(r->username);
    if (r->password != NULL) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->password_file);
    free(r->prefix);
    for (size_t i = 0; i < r->nsentinels; i++)
        free(r->sentinels[i]);
    free(r->sentinels);
    free(r->master_name);
}

void conf_free(struct conf *conf)
{
    if (conf == NULL)
        return;
    for (size_t i = 0; i < conf->ndests; i++) {
        struct conf_dest *d = &conf->dests[i];
        free(d->name);
        free(d->targets);
        free(d->node_name);
        free(d->auth_key);
    }
    free(conf->dests);
    for (size_t i = 0; i < conf->nroutes; i++) {
        struct conf_route *r = &conf->routes[i];
        free(r->name);
        match_free(&r->match);
        free(r->to);
    }
    free(conf->routes);
    free(conf->default_to);
    free(conf->listen);
    redis_free(&conf->redis);
    free(conf->path);
    free(conf);
}

long conf_dest_index(const struct conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->ndests; i++)
        if (conf->dests[i].name != NULL && strcmp(conf->dests[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* ---- public value parsers ------------------------------------------------------ */

#define ADDR_UDP_PREFIX "udp:"
#define ADDR_TCP_PREFIX "tcp:"
#define ADDR_PREFIX_LEN 4

static const char *parse_addr(const char *text, struct conf_addr *out)
{
    char host[INET6_ADDRSTRLEN];
    size_t len = strlen(text);

    if (len == 0)
        return "is empty";
    if (len >= sizeof out->text)
        return "is too long";
    if (strncmp(text, ADDR_UDP_PREFIX, ADDR_PREFIX_LEN) == 0)
        out->transport = CONF_UDP;
    else if (strncmp(text, ADDR_TCP_PREFIX, ADDR_PREFIX_LEN) == 0)
        out->transport = CONF_TCP;
    else
        return "must start with udp: or tcp:";

    struct host_port hp;
    const char *why = split_host_port(text + ADDR_PREFIX_LEN, &hp);
    if (why != NULL)
        return why;
    unsigned portnum = hp.port;
    size_t hlen = hp.hlen;
    bool bracketed = hp.bracketed;
    const char *h = hp.host;

    if (hlen >= sizeof host)
        return "is not a numeric IP address";
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (bracketed) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return "is not a numeric IP address";
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)portnum);
        out->salen = sizeof *sin6;
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return "is not a numeric IP address";
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)portnum);
        out->salen = sizeof *sin;
    }
    memcpy(out->text, text, len + 1);
    return NULL;
}

/* On failure *out is all zeroes (transport 0): never mistaken for an address. */
const char *conf_parse_addr(const char *text, struct conf_addr *out)
{
    memset(out, 0, sizeof *out);
    const char *why = parse_addr(text, out);
    if (why != NULL)
        memset(out, 0, sizeof *out);
    return why;
}

const char *conf_parse_cidr(const char *text, struct conf_cidr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - text) : strlen(text);

    memset(out, 0, sizeof *out);
    if (*text == '\0')
        return "is empty";
    if (hlen == 0 || hlen >= sizeof host)
        return "is not a numeric IP address";
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    unsigned bits;
    int family;
    if (memchr(host, ':', hlen) != NULL) {
        family = AF_INET6;
        bits = CONF_IPV6_BITS;
    } else {
        family = AF_INET;
        bits = CONF_IPV4_BITS;
    }
    out->addr_len = bits / CHAR_BIT;
    if (inet_pton(family, host, out->addr) != 1) {
        memset(out, 0, sizeof *out);
        return "is not a numeric IP address";
    }
    out->prefix = bits;
    if (slash != NULL) {
        const char *s = slash + 1;
        size_t plen = strlen(s);
        unsigned prefix = 0;
        bool ok = plen > 0 && plen <= CONF_PREFIX_DIGITS;
        for (size_t i = 0; ok && i < plen; i++) {
            ok = is_digit(s[i]);
            prefix = prefix * 10 + (unsigned)(s[i] - '0');
        }
        if (!ok || prefix > bits) {
            memset(out, 0, sizeof *out);
            return "has an invalid prefix length";
        }
        out->prefix = prefix;
    }
    for (unsigned bit = out->prefix; bit < bits; bit++) {
        if (out->addr[bit / CHAR_BIT] & (0x80u >> (bit % CHAR_BIT))) {
            memset(out, 0, sizeof *out);
            return "has host bits set";
        }
    }
    return NULL;
}

const char *conf_parse_duration(const char *text, uint64_t *ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {
        { "ms", 1 },
        { "s", MS_PER_SECOND },
        { "m", MS_PER_MINUTE },
        { "h", MS_PER_HOUR },
        { "", MS_PER_SECOND },          /* a bare number is seconds */
    };

    if (*text == '\0')
        return "is empty";
    if (!is_digit(*text))
        return "is not a valid duration";
    const char *s = text;
    uint64_t v = 0;
    bool big = false;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            big = true;
        else
            v = v * 10 + d;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s, units[i].suffix) == 0) {
            if (big || v > UINT64_MAX / units[i].ms)
                return "is too large";
            *ms = v * units[i].ms;
            return NULL;
        }
    }
    const char *unit = s;
    while (is_alpha(*s))
        s++;
    if (s > unit && *s == '\0')
        return "has an unknown unit (use ms, s, m or h)";
    return "is not a valid duration";
}
