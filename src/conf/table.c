/*
 * conf/table.c - pass 2: the table engine and its setters.
 *
 * A mapping is walked with a table of keys (struct conf_key): a key that is
 * present runs its setter, an absent one runs it on its default text, and
 * unknown, duplicate and missing keys are found by the same walk.  A
 * setter checks one value, stores it at its offset and reports its own
 * errors; schema.c's tables say which setter each key has.
 */
#include "conf/internal.h"

#include "hep.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the table engine --------------------------------------------------------- */

/*
 * The text of a scalar, or NULL after reporting why n is not one: `expect`
 * for a list or mapping, "has no value" for a null.
 */
static const char *scalar_text(struct parse *p, const struct node *n, const char *expect)
{
    if (n->type != NODE_SCALAR) {
        conf_error_key(p, n, "%s", expect);
        return NULL;
    }
    if (conf_node_is_null(n)) {
        conf_error_key(p, n, "has no value");
        return NULL;
    }
    if (strlen(n->value) != n->len) {
        conf_error_value(p, n, "contains a NUL byte");
        return NULL;
    }
    return n->value;
}

/* Reports what makes n unusable as a mapping; false then. */
bool conf_expect_mapping(struct parse *p, const struct node *n)
{
    if (n->type == NODE_MAPPING)
        return true;
    if (conf_node_is_null(n))
        conf_error_key(p, n, "has no value");
    else
        conf_error_key(p, n, "must be a mapping");
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
        if (conf_node_is(key, k->name))
            return true;
    return false;
}

/*
 * Reports keys that are not scalars, keys given twice and, with a table,
 * keys it does not know.  Sorting keeps this O(n log n) for big mappings.
 */
void conf_check_keys(struct parse *p, const struct node *map, const struct conf_key *table)
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
            conf_error_key(p, key, "keys must be scalars");
            continue;
        }
        keys[nscalars++] = key;
        if (table != NULL && !table_has(table, key)) {
            size_t old = conf_path_push_key(p, key->value, key->len);
            conf_error_key(p, key, "unknown key");
            conf_path_pop(p, old);
        }
    }
    if (nscalars > 1)
        qsort(keys, nscalars, sizeof *keys, key_cmp);
    size_t first = 0;
    for (size_t i = 1; i < nscalars; i++) {
        if (keys[i]->len == keys[first]->len &&
            memcmp(keys[i]->value, keys[first]->value, keys[i]->len) == 0) {
            size_t old = conf_path_push_key(p, keys[i]->value, keys[i]->len);
            conf_error_key(p, keys[i], "duplicate key (first at line %zu)", keys[first]->mark.line);
            conf_path_pop(p, old);
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
void conf_parse_map(struct parse *p, struct node *map, const struct conf_key *table, void *base)
{
    bool usable = true;
    if (map != NULL && !conf_expect_mapping(p, map)) {
        map = NULL;
        usable = false;
    }
    if (map != NULL)
        conf_check_keys(p, map, table);
    for (const struct conf_key *k = table; k->name != NULL; k++) {
        struct node *v = conf_map_get(map, k->name);
        size_t old = conf_path_push_key(p, k->name, strlen(k->name));
        if (v != NULL) {
            k->set(p, v, k, base);
        } else if (k->flags & KEY_REQUIRED) {
            if (map != NULL)
                conf_error_key(p, map, "is required");
        } else if (k->dflt != NULL) {
            struct node dflt = { .type = NODE_SCALAR, .value = (char *)k->dflt, .len = strlen(k->dflt) };
            k->set(p, &dflt, k, base);
        } else if (k->sub != NULL && usable) {
            k->set(p, NULL, k, base);
        }
        conf_path_pop(p, old);
    }
}

void conf_set_section(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    conf_parse_map(p, n, k->sub, conf_field_at(base, k->offset));
}

/* ---- scalar setters ----------------------------------------------------------- */

static bool get_number(struct parse *p, const struct node *n, const struct conf_key *k, uint64_t *out)
{
    const char *text = scalar_text(p, n, "must be an integer");
    if (text == NULL)
        return false;
    switch (conf_parse_number(text, k->min, k->max, out)) {
    case CONF_NUMBER_OK:
        return true;
    case CONF_NUMBER_SYNTAX:
        conf_error_value(p, n, "must be an integer");
        return false;
    default:
        conf_error_value(p, n, "must be between %" PRIu64 " and %" PRIu64, k->min, k->max);
        return false;
    }
}

/* Beyond SIZE_MAX (orphans.max_bytes on a 32-bit host) means "as much as can be". */
void conf_set_size(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    if (get_number(p, n, k, &v))
        *(size_t *)conf_field_at(base, k->offset) = v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

void conf_set_unsigned(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    if (get_number(p, n, k, &v))
        *(unsigned *)conf_field_at(base, k->offset) = (unsigned)v;
}

void conf_set_u64(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    if (get_number(p, n, k, &v))
        *(uint64_t *)conf_field_at(base, k->offset) = v;
}

static bool get_duration(struct parse *p, const struct node *n, const struct conf_key *k, uint64_t *ms)
{
    const char *text = scalar_text(p, n, "must be a duration");
    if (text == NULL)
        return false;
    const char *why = conf_parse_duration(text, ms);
    if (why != NULL) {
        conf_error_value(p, n, "%s", why);
        return false;
    }
    if (*ms < k->min || *ms > k->max) {
        char lo[CONF_DURATION_TEXT_MAX], hi[CONF_DURATION_TEXT_MAX];
        conf_error_value(p, n, "must be between %s and %s", conf_format_duration(k->min, lo, sizeof lo),
                         conf_format_duration(k->max, hi, sizeof hi));
        return false;
    }
    return true;
}

void conf_set_duration(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t ms;
    if (get_duration(p, n, k, &ms))
        *(uint64_t *)conf_field_at(base, k->offset) = ms;
}

/* "must be a, b or c" from a NULL-terminated table. */
static void error_names(struct parse *p, const struct node *n, const struct conf_name *names)
{
    char buf[CONF_MSG_MAX];
    struct text t = { buf, sizeof buf, 0 };
    buf[0] = '\0';
    conf_text_add(&t, "must be ");
    for (const struct conf_name *v = names; v->name != NULL; v++)
        conf_text_add(&t, "%s%s", v == names ? "" : v[1].name == NULL ? " or " : ", ", v->name);
    if (n->type == NODE_SCALAR)
        conf_error_value(p, n, "%s", buf);
    else
        conf_error_key(p, n, "%s", buf);
}

void conf_set_enum(struct parse *p, struct node *n, const struct conf_key *k, void *base)
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
            *(int *)conf_field_at(base, k->offset) = v->value;
            return;
        }
    }
    error_names(p, n, k->names);
}

/* node_name, auth_key: any bytes but NUL, 1 to CONF_STRING_MAX of them. */
void conf_set_string(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0 || n->len > CONF_STRING_MAX) {
        conf_error_value(p, n, "must be 1 to %u bytes", CONF_STRING_MAX);
        return;
    }
    char *copy = conf_strdup(text);
    if (copy == NULL) {
        p->nomem = true;
        return;
    }
    *(char **)conf_field_at(base, k->offset) = copy;
}

void conf_set_name(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (!conf_is_name(text, n->len)) {
        conf_error_value(p, n, CONF_NAME_PREDICATE, CONF_NAME_MAX);
        return;
    }
    char *copy = conf_strdup(text);
    if (copy == NULL) {
        p->nomem = true;
        return;
    }
    *(char **)conf_field_at(base, k->offset) = copy;
}

/* routes[].drop: only checked here; the route walk reads it. */
void conf_set_drop(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    (void)k;
    (void)base;
    const char *text = scalar_text(p, n, "must be true or false");
    if (text != NULL && conf_parse_bool(text) < 0)
        conf_error_value(p, n, "must be true or false");
}

#define HEP_VERSION_PREDICATE "must be 3 (output is HEPv3)"

void conf_set_hep_version(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    uint64_t v;
    const char *text = scalar_text(p, n, HEP_VERSION_PREDICATE);
    if (text == NULL)
        return;
    if (conf_parse_number(text, CONF_HEP_OUTPUT, CONF_HEP_OUTPUT, &v) != CONF_NUMBER_OK) {
        conf_error_value(p, n, HEP_VERSION_PREDICATE);
        return;
    }
    *(int *)conf_field_at(base, k->offset) = (int)v;
}

void conf_set_dest_capture_id(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_dest *d = base;
    uint64_t v;
    if (get_number(p, n, k, &v)) {
        d->capture_id = (uint32_t)v;
        d->set_capture_id = true;
    }
}

/* ---- list setters ------------------------------------------------------------- */

/* Parses one list element from text into elem; NULL or a predicate. */
typedef const char *elem_parser(struct parse *p, const char *text, void *elem);

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
        conf_error_key(p, n, "must be a list");
        return false;
    }
    if (conf_node_is_null(n)) {
        conf_error_key(p, n, "has no value");
        return false;
    }
    if (n->type == NODE_SEQUENCE) {
        items = n->items;
        nitems = n->nitems;
        single = false;
    }
    if (nitems == 0) {
        if (k->flags & KEY_NONEMPTY) {
            conf_error_key(p, n,
                           (k->flags & KEY_MATCH) ? "must not be empty (leave the key out to match anything)"
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
    *(void **)conf_field_at(base, k->offset) = elems;
    *(size_t *)conf_field_at(base, k->count_offset) = nitems;
    for (size_t i = 0; i < nitems; i++) {
        size_t old = single ? p->pathlen : conf_path_push_index(p, i);
        const char *text = scalar_text(p, items[i], expect);
        if (text != NULL) {
            const char *why = parse_elem(p, text, elems + i * elem_size);
            if (why != NULL)
                conf_error_value(p, items[i], "%s", why);
        }
        conf_path_pop(p, old);
    }
    return true;
}

static int addr_cmp(const struct conf_addr *x, const struct conf_addr *y)
{
    if (x->transport != y->transport)
        return x->transport < y->transport ? -1 : 1;
    if (x->addr_len != y->addr_len)
        return x->addr_len < y->addr_len ? -1 : 1;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    return memcmp(x->addr, y->addr, x->addr_len);
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
        if (sorted[i]->addr_len == 0 || addr_cmp(sorted[i - 1], sorted[i]) != 0)
            continue;
        size_t idx = (size_t)(sorted[i] - addrs);
        size_t old = conf_path_push_index(p, idx);
        conf_error_value(p, n->items[idx], "is listed twice");
        conf_path_pop(p, old);
    }
    free(sorted);
}

static const char *parse_listen_elem(struct parse *p, const char *text, void *elem)
{
    (void)p;
    return conf_parse_addr(text, elem);
}

/* 0.0.0.0 or :: */
static bool addr_is_unspecified(const struct conf_addr *a)
{
    for (unsigned i = 0; i < a->addr_len; i++)
        if (a->addr[i] != 0)
            return false;
    return true;
}

static int addr_find_cmp(const void *key, const void *elem)
{
    return addr_cmp(key, *(const struct conf_addr *const *)elem);
}

static const char *parse_target_elem(struct parse *p, const char *text, void *elem)
{
    struct conf_addr *a = elem;
    const char *why = conf_parse_addr(text, a);
    if (why == NULL && a->port == 0)
        why = "has port 0";
    if (why == NULL && addr_is_unspecified(a))
        why = "has an unspecified address (0.0.0.0 or ::)";
    if (why == NULL && p->listen_sorted != NULL &&
        bsearch(a, p->listen_sorted, p->conf->nlisten, sizeof *p->listen_sorted, addr_find_cmp) != NULL)
        why = "is also a listen address (it would loop)";
    if (why != NULL)
        memset(a, 0, sizeof *a);    /* addr_len 0: left out of the duplicate check */
    return why;
}

void conf_set_listen(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    if (!parse_list(p, n, k, base, sizeof(struct conf_addr), parse_listen_elem, "must be an address"))
        return;
    check_duplicate_addrs(p, n, c->listen, c->nlisten);
    if (c->nlisten > 0 && p->listen_sorted == NULL)
        p->listen_sorted = sort_addrs(p, c->listen, c->nlisten);
}

void conf_set_targets(struct parse *p, struct node *n, const struct conf_key *k, void *base)
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
        if (p->dests_broken || conf_map_get(p->dests_node, text) != NULL)
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
void conf_set_dest_refs(struct parse *p, struct node *n, const struct conf_key *k, void *base)
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
    return conf_is_alpha(c) || conf_is_digit(c) || (c != '\0' && strchr("-.!%*_+`'~", c) != NULL);
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
    if (conf_parse_number(text, 0, CONF_PROTO_MAX, &v) == CONF_NUMBER_OK) {
        *(unsigned *)elem = (unsigned)v;
        return NULL;
    }
    snprintf(p->why, sizeof p->why, "must be sip, rtcp, log or a number from 0 to %u", CONF_PROTO_MAX);
    return p->why;
}

static const char *parse_capture_id(struct parse *p, const char *text, void *elem)
{
    uint64_t v;
    if (conf_parse_number(text, 0, UINT32_MAX, &v) == CONF_NUMBER_OK) {
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
    if (conf_is_digit(text[0]) && is_x(text[1]) && is_x(text[2]) && text[3] == '\0') {
        unsigned lo = (unsigned)(text[0] - '0') * CONF_STATUS_CLASS;
        if (lo >= CONF_STATUS_MIN && lo <= CONF_STATUS_MAX) {
            s->lo = lo;
            s->hi = lo + CONF_STATUS_CLASS - 1;
            return NULL;
        }
    } else if (conf_parse_number(text, CONF_STATUS_MIN, CONF_STATUS_MAX, &v) == CONF_NUMBER_OK) {
        s->lo = s->hi = (unsigned)v;
        return NULL;
    }
    snprintf(p->why, sizeof p->why, "must be a status code from %u to %u or a class from %uxx to %uxx",
             CONF_STATUS_MIN, CONF_STATUS_MAX, CONF_STATUS_MIN / CONF_STATUS_CLASS,
             CONF_STATUS_MAX / CONF_STATUS_CLASS);
    return p->why;
}

void conf_set_methods(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(char *), parse_method, "must be a method name");
}

void conf_set_protos(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(unsigned), parse_proto, "must be a protocol name or number");
}

void conf_set_capture_ids(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(uint32_t), parse_capture_id, "must be an integer");
}

void conf_set_cidrs(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(struct conf_cidr), parse_cidr_elem, "must be an address or CIDR");
}

void conf_set_statuses(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(struct conf_status), parse_status, "must be a status code or class");
}

/* ---- store.redis values --------------------------------------------------------- */

#define HOST_PREDICATE "must be a host name or a numeric IP address"
#define TOKEN_PREDICATE "must be 1 to %u bytes without spaces or control characters"
#define OPTIONAL_TOKEN_PREDICATE "must be at most %u bytes without spaces or control characters"

static void set_copy(struct parse *p, const char *text, const struct conf_key *k, void *base)
{
    char *copy = conf_strdup(text);
    if (copy == NULL) {
        p->nomem = true;
        return;
    }
    *(char **)conf_field_at(base, k->offset) = copy;
}

void conf_set_host(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (!conf_is_host(text, n->len)) {
        conf_error_value(p, n, HOST_PREDICATE);
        return;
    }
    set_copy(p, text, k, base);
}

void conf_set_unix_path(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (text[0] != '/' || n->len > CONF_UNIX_PATH_MAX) {
        conf_error_value(p, n, "must be an absolute path of at most %zu bytes", CONF_UNIX_PATH_MAX);
        return;
    }
    set_copy(p, text, k, base);
}

/* store.redis.prefix, master_name. */
void conf_set_token(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0 || n->len > CONF_STRING_MAX || !conf_is_token(text, n->len)) {
        conf_error_value(p, n, TOKEN_PREDICATE, CONF_STRING_MAX);
        return;
    }
    set_copy(p, text, k, base);
}

/* store.redis.username: "" is none (the field stays NULL). */
void conf_set_optional_token(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len > CONF_STRING_MAX || !conf_is_token(text, n->len)) {
        conf_error_value(p, n, OPTIONAL_TOKEN_PREDICATE, CONF_STRING_MAX);
        return;
    }
    if (n->len > 0)
        set_copy(p, text, k, base);
}

/*
 * store.redis.password: "" is none.  Its errors never quote the value, so a
 * password does not end up in a log.
 */
void conf_set_password(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    if (n->type != NODE_SCALAR) {
        conf_error_key(p, n, "must be a string");
        return;
    }
    if (conf_node_is_null(n)) {
        conf_error_key(p, n, "has no value");
        return;
    }
    if (strlen(n->value) != n->len) {
        conf_error_key(p, n, "contains a NUL byte");
        return;
    }
    if (n->len > CONF_PASSWORD_MAX) {
        conf_error_key(p, n, "must be at most %u bytes", CONF_PASSWORD_MAX);
        return;
    }
    if (n->len > 0)
        set_copy(p, n->value, k, base);
}

/* store.redis.password_file: checked and read once all of store.redis is known. */
void conf_set_path(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0) {
        conf_error_value(p, n, "is empty");
        return;
    }
    set_copy(p, text, k, base);
}

/* "host:port" or "[IPv6]:port", port 1 to 65535: host and port, and the text as written. */
static const char *parse_sentinel(struct parse *p, const char *text, void *elem)
{
    struct conf_endpoint *e = elem;
    struct conf_host_port hp;
    const char *why = conf_check_endpoint(text, &hp);
    if (why != NULL)
        return why;
    e->port = hp.port;
    if ((e->host = conf_malloc(hp.hlen + 1)) == NULL || (e->text = conf_strdup(text)) == NULL) {
        p->nomem = true;
        return NULL;
    }
    memcpy(e->host, hp.host, hp.hlen);
    e->host[hp.hlen] = '\0';
    return NULL;
}

static int sentinel_ptr_cmp(const void *a, const void *b)
{
    const struct conf_endpoint *x = *(const struct conf_endpoint *const *)a;
    const struct conf_endpoint *y = *(const struct conf_endpoint *const *)b;
    int c = strcasecmp(x->text, y->text);     /* host names are case-insensitive */
    if (c != 0)
        return c;
    return x < y ? -1 : x > y;
}

void conf_set_sentinels(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_redis *r = base;
    if (!parse_list(p, n, k, base, sizeof(struct conf_endpoint), parse_sentinel, "must be a host:port") ||
        n->type != NODE_SEQUENCE || r->nsentinels < 2)
        return;
    const struct conf_endpoint **sorted = conf_malloc(r->nsentinels * sizeof *sorted);
    if (sorted == NULL) {
        p->nomem = true;
        return;
    }
    size_t count = 0;
    for (size_t i = 0; i < r->nsentinels; i++)
        if (r->sentinels[i].text != NULL)
            sorted[count++] = &r->sentinels[i];
    if (count > 1)
        qsort(sorted, count, sizeof *sorted, sentinel_ptr_cmp);
    for (size_t i = 1; i < count; i++) {
        if (strcasecmp(sorted[i - 1]->text, sorted[i]->text) != 0)
            continue;
        size_t idx = (size_t)(sorted[i] - r->sentinels);
        size_t old = conf_path_push_index(p, idx);
        conf_error_value(p, n->items[idx], "is listed twice");
        conf_path_pop(p, old);
    }
    free(sorted);
}
