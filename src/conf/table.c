/*
 * conf/table.c - pass 2: the table engine and its setters.
 *
 * A mapping is walked with a table of keys (struct conf_key): a key that is
 * present runs its setter, an absent one runs it on its default text, and
 * unknown, duplicate and missing keys are found by the same walk.  A
 * setter checks one value, stores it at its offset and reports its own
 * errors; schema.c's tables say which setter each key has.  At the end,
 * the values by kind: what reload needs to compare, print and copy a key
 * whatever it is.
 */
#include "conf/internal.h"

#include "hep.h"
#include "invariant.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
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

size_t conf_named_pairs(struct parse *p, const struct node *map)
{
    conf_check_keys(p, map, NULL);
    if (map->nitems == 0)
        conf_error_key(p, map, "must not be empty");
    return map->nitems / 2;
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

#define FRACTION_DIGITS 6           /* millionths */

/* "1", "0.25", "0.000001": above 0, at most 1, at most six decimals. */
void conf_set_fraction(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a number above 0 and at most 1");
    if (text == NULL)
        return;
    uint64_t whole = 0, part = 0;
    size_t digits = 0;
    const char *q = text;
    bool ok = *q == '0' || *q == '1';
    if (ok)
        whole = (uint64_t)(*q++ - '0');
    if (ok && *q == '.') {
        for (q++; conf_is_digit(*q) && digits < FRACTION_DIGITS; q++, digits++)
            part = part * 10 + (uint64_t)(*q - '0');
        ok = digits > 0;
    }
    for (size_t d = digits; d < FRACTION_DIGITS; d++)
        part *= 10;
    uint64_t v = whole * CONF_MILLION + part;
    if (!ok || *q != '\0' || v == 0 || v > CONF_MILLION) {
        conf_error_value(p, n, "must be a number above 0 and at most 1, with at most %d decimals", FRACTION_DIGITS);
        return;
    }
    *(uint32_t *)conf_field_at(base, k->offset) = (uint32_t)v;
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
        if (k->flags & KEY_SECRET)
            conf_error_key(p, n, "must be 1 to %u bytes", CONF_STRING_MAX);
        else
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

/* true or false -> bool. */
void conf_set_bool(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be true or false");
    int v = text != NULL ? conf_parse_bool(text) : -1;
    if (text != NULL && v < 0)
        conf_error_value(p, n, "must be true or false");
    if (v >= 0)
        *(bool *)conf_field_at(base, k->offset) = v == 1;
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
            if (why != NULL && (k->flags & KEY_SECRET))
                conf_error_key(p, items[i], "%s", why);
            else if (why != NULL)
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
    if (x->tls != y->tls)
        return x->tls < y->tls ? -1 : 1;
    if (x->addr_len != y->addr_len)
        return x->addr_len < y->addr_len ? -1 : 1;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    int c = memcmp(x->addr, y->addr, x->addr_len);
    return c != 0 ? c : strcmp(x->host, y->host);
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
        if (sorted[i]->transport == 0 || addr_cmp(sorted[i - 1], sorted[i]) != 0)
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
    const char *why = conf_parse_target(text, a);
    if (why == NULL && a->port == 0)
        why = "has port 0";
    /* a name is not looked up here: what it stands for is known only when it is resolved */
    if (why == NULL && a->addr_len > 0 && addr_is_unspecified(a))
        why = "has an unspecified address (0.0.0.0 or ::)";
    if (why == NULL && a->addr_len > 0 && p->listen_sorted != NULL &&
        bsearch(a, p->listen_sorted, p->conf->nlisten, sizeof *p->listen_sorted, addr_find_cmp) != NULL)
        why = "is also a listen address (it would loop)";
    if (why != NULL)
        memset(a, 0, sizeof *a);    /* transport 0: left out of the duplicate check */
    return why;
}

/*
 * One listen item in map form, { address: ADDR, sources: {...}, tls: {...} },
 * into addr, sources and tls (each set when the listener has its own).
 */
static void set_listener_map(struct parse *p, struct node *item, struct conf_addr *addr,
                             struct conf_sources *sources, struct conf_tls *tls)
{
    conf_check_keys(p, item, conf_listener_keys);
    struct node *a = conf_map_get(item, "address"), *s = conf_map_get(item, "sources");
    struct node *t = conf_map_get(item, "tls");
    if (a == NULL) {
        conf_error_key(p, item, "needs address:");
    } else {
        size_t old = conf_path_push_key(p, "address", strlen("address"));
        const char *text = scalar_text(p, a, "must be an address");
        const char *why = text != NULL ? conf_parse_addr(text, addr) : NULL;
        if (why != NULL) {
            conf_error_value(p, a, "%s", why);
            memset(addr, 0, sizeof *addr);
        }
        conf_path_pop(p, old);
    }
    if (s != NULL) {
        size_t old = conf_path_push_key(p, "sources", strlen("sources"));
        conf_set_sources(p, s, &conf_listener_sources_key, sources);
        sources->set = true;
        conf_path_pop(p, old);
    }
    if (t != NULL) {
        size_t old = conf_path_push_key(p, "tls", strlen("tls"));
        conf_set_tls(p, t, &conf_listener_tls_key, tls);
        conf_path_pop(p, old);
    }
}

/*
 * listen: a list of "udp:ADDR:PORT" strings and { address:, sources:, tls: }
 * maps (a single string is a list of one).  listen_sources and listen_tls
 * get one entry per listener, set for those with their own section.
 */
void conf_set_listen(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    if (n->type == NODE_SEQUENCE && n->nitems > 0) {
        if ((c->listen = conf_calloc(n->nitems, sizeof *c->listen)) == NULL ||
            (c->listen_sources = conf_calloc(n->nitems, sizeof *c->listen_sources)) == NULL ||
            (c->listen_tls = conf_calloc(n->nitems, sizeof *c->listen_tls)) == NULL) {
            p->nomem = true;
            return;
        }
        c->nlisten = n->nitems;
        for (size_t i = 0; i < n->nitems; i++) {
            struct node *item = n->items[i];
            size_t old = conf_path_push_index(p, i);
            if (item->type == NODE_MAPPING) {
                set_listener_map(p, item, &c->listen[i], &c->listen_sources[i], &c->listen_tls[i]);
            } else {
                const char *text = scalar_text(p, item, "must be an address or a mapping with address:");
                const char *why = text != NULL ? conf_parse_addr(text, &c->listen[i]) : NULL;
                if (why != NULL) {
                    conf_error_value(p, item, "%s", why);
                    memset(&c->listen[i], 0, sizeof c->listen[i]);
                }
            }
            conf_path_pop(p, old);
        }
    } else {
        if (!parse_list(p, n, k, base, sizeof(struct conf_addr), parse_listen_elem, "must be an address"))
            return;
        if (c->nlisten > 0 && ((c->listen_sources = conf_calloc(c->nlisten, sizeof *c->listen_sources)) == NULL ||
                               (c->listen_tls = conf_calloc(c->nlisten, sizeof *c->listen_tls)) == NULL)) {
            p->nomem = true;
            return;
        }
    }
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

/* sources.auth_keys: 1 to CONF_STRING_MAX bytes each (chunk 0x000e); never quoted in errors. */
static const char *parse_auth_key(struct parse *p, const char *text, void *elem)
{
    size_t len = strlen(text);
    if (len == 0 || len > CONF_STRING_MAX) {
        snprintf(p->why, sizeof p->why, "must be 1 to %u bytes", CONF_STRING_MAX);
        return p->why;
    }
    if ((*(char **)elem = conf_strdup(text)) == NULL)
        p->nomem = true;
    return NULL;
}

void conf_set_auth_keys(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(char *), parse_auth_key, "must be a string");
}

/* The ids of one capture_ids entry, as a list key inside its binding. */
static const struct conf_key binding_ids_key = {
    .name = "ids", .offset = offsetof(struct conf_capture_binding, ids),
    .count_offset = offsetof(struct conf_capture_binding, nids), .flags = KEY_NONEMPTY,
    .kind = KIND_CAPTURE_IDS,
};

/*
 * A mapping of NAME: VALUE pairs read into an array of one element per pair
 * (zeroed), stored with its count at k; NULL when there is none (the error
 * reported) or out of memory.
 */
static void *pairs_array(struct parse *p, struct node *n, const struct conf_key *k, void *base, size_t elem_size,
                         size_t *npairs)
{
    if (!conf_expect_mapping(p, n))
        return NULL;
    *npairs = conf_named_pairs(p, n);
    if (*npairs == 0)
        return NULL;
    void *elems = conf_calloc(*npairs, elem_size);
    if (elems == NULL) {
        p->nomem = true;
        return NULL;
    }
    *(void **)conf_field_at(base, k->offset) = elems;
    *(size_t *)conf_field_at(base, k->count_offset) = *npairs;
    return elems;
}

/* What one NAME: VALUE pair of a mapping read by set_pairs() fills in. */
typedef void pair_setter(struct parse *p, struct node *key, struct node *value, void *elem);

/*
 * A mapping of NAME: VALUE pairs into an array of elem_size elements (see
 * pairs_array), each filled by set from its pair, with the pair's name in
 * the error path.
 */
static void set_pairs(struct parse *p, struct node *n, const struct conf_key *k, void *base, size_t elem_size,
                      pair_setter *set)
{
    size_t npairs;
    char *elems = pairs_array(p, n, k, base, elem_size, &npairs);
    if (elems == NULL)
        return;
    for (size_t i = 0; i < npairs; i++) {
        struct node *key = n->items[2 * i];
        if (key->type != NODE_SCALAR)
            continue;               /* conf_check_keys() said so */
        size_t old = conf_path_push_key(p, key->value, key->len);
        set(p, key, n->items[2 * i + 1], elems + i * elem_size);
        conf_path_pop(p, old);
    }
}

static void set_capture_binding(struct parse *p, struct node *key, struct node *ids, void *elem)
{
    struct conf_capture_binding *b = elem;
    const char *why = strlen(key->value) == key->len ? conf_parse_cidr(key->value, &b->cidr) : "contains a NUL byte";
    if (why != NULL)
        conf_error_key(p, key, "%s", why);
    conf_set_capture_ids(p, ids, &binding_ids_key, b);
}

/* sources.capture_ids: { CIDR: [ ID, ... ], ... } */
void conf_set_capture_bindings(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    set_pairs(p, n, k, base, sizeof(struct conf_capture_binding), set_capture_binding);
}

/* The ids of one client_capture_ids entry, as a list key inside its binding. */
static const struct conf_key subject_ids_key = {
    .name = "ids", .offset = offsetof(struct conf_subject_binding, ids),
    .count_offset = offsetof(struct conf_subject_binding, nids), .flags = KEY_NONEMPTY,
    .kind = KIND_CAPTURE_IDS,
};

static void set_subject_binding(struct parse *p, struct node *key, struct node *ids, void *elem)
{
    struct conf_subject_binding *b = elem;
    if (key->len == 0 || strlen(key->value) != key->len)
        conf_error_key(p, key, "must be a common name or a subject (CN=...,O=...)");
    else if ((b->subject = conf_strdup(key->value)) == NULL)
        p->nomem = true;
    conf_set_capture_ids(p, ids, &subject_ids_key, b);
}

/* tls.client_capture_ids: { SUBJECT: [ ID, ... ], ... } */
void conf_set_subject_bindings(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    set_pairs(p, n, k, base, sizeof(struct conf_subject_binding), set_subject_binding);
}

/* A tls: section: its keys, and where it starts, for the errors of loading its files. */
void conf_set_tls(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_tls *t = conf_field_at(base, k->offset);
    conf_parse_map(p, n, k->sub, t);
    if (n == NULL)
        return;                     /* absent: its keys' defaults */
    t->set = true;
    t->line = n->mark.line;
    t->col = n->mark.col;
}

/* ---- origin keys ------------------------------------------------------------------ */

static const char *parse_pattern_with(struct parse *p, const char *text, void *elem, bool caseless)
{
    if (text[0] == '\0' || (text[0] == PATTERN_REGEX_MARK && text[1] == '\0')) {
        snprintf(p->why, sizeof p->why, "must not be empty");
        return p->why;
    }
    char why[PATTERN_WHY_MAX + 32];
    int rc = pattern_compile(elem, text, caseless, why, sizeof why);
    if (rc == -2)
        p->nomem = true;
    if (rc == -1) {
        snprintf(p->why, sizeof p->why, "%s", why);
        return p->why;
    }
    return NULL;
}

static const char *parse_pattern(struct parse *p, const char *text, void *elem)
{
    return parse_pattern_with(p, text, elem, false);
}

static const char *parse_domain_pattern(struct parse *p, const char *text, void *elem)
{
    return parse_pattern_with(p, text, elem, true);
}

void conf_set_patterns(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(struct pattern), parse_pattern, "must be a string or ~REGEX");
}

void conf_set_domain_patterns(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    parse_list(p, n, k, base, sizeof(struct pattern), parse_domain_pattern, "must be a string or ~REGEX");
}

/* The values of one header: entry, as a list key inside it. */
static const struct conf_key header_values_key = {
    .name = "values", .offset = offsetof(struct conf_header_match, values),
    .count_offset = offsetof(struct conf_header_match, nvalues), .flags = KEY_NONEMPTY | KEY_MATCH,
    .kind = KIND_PATTERNS,
};

static void set_header_match(struct parse *p, struct node *key, struct node *values, void *elem)
{
    struct conf_header_match *h = elem;
    bool ok = strlen(key->value) == key->len && key->len > 0;
    for (size_t j = 0; ok && j < key->len; j++)
        ok = is_token_char(key->value[j]);
    if (!ok)
        conf_error_key(p, key, "is not a header name (a token)");
    else if ((h->name = conf_strdup(key->value)) == NULL)
        p->nomem = true;
    parse_list(p, values, &header_values_key, h, sizeof(struct pattern), parse_pattern, "must be a string or ~REGEX");
}

/* match header: { NAME: [ VALUE, ... ], ... }: a header name is a token. */
void conf_set_header_matches(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    set_pairs(p, n, k, base, sizeof(struct conf_header_match), set_header_match);
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

/* ---- metrics and control values ------------------------------------------------ */

#define ADDR_SCHEME_LEN 4               /* "tcp:", "udp:", "tls:" */

/*
 * metrics.listen: "127.0.0.1:9100" or "[::1]:9100", port 0 to 65535 (0: the
 * kernel picks), read by the grammar of listen addresses as a TCP one.  The
 * text is kept as written, without a scheme.
 */
void conf_set_host_port(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_addr *a = conf_field_at(base, k->offset);
    char buf[sizeof a->text + ADDR_SCHEME_LEN];
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0) {
        conf_error_value(p, n, "is empty");
        return;
    }
    if (strncmp(text, "tcp:", ADDR_SCHEME_LEN) == 0 || strncmp(text, "udp:", ADDR_SCHEME_LEN) == 0 ||
        strncmp(text, "tls:", ADDR_SCHEME_LEN) == 0) {
        conf_error_value(p, n, "must be HOST:PORT, without udp:, tcp: or tls:");
        return;
    }
    if (n->len >= sizeof a->text - ADDR_SCHEME_LEN) {
        conf_error_value(p, n, "is too long");
        return;
    }
    snprintf(buf, sizeof buf, "tcp:%s", text);
    const char *why = conf_parse_addr(buf, a);
    if (why != NULL) {
        conf_error_value(p, n, "%s", why);
        return;
    }
    memcpy(a->text, text, n->len + 1);
}

/* control.socket: bind() takes any path that fits sun_path, relative ones too. */
void conf_set_socket_path(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be a string");
    if (text == NULL)
        return;
    if (n->len == 0 || n->len > CONF_UNIX_PATH_MAX) {
        conf_error_value(p, n, "must be a path of 1 to %zu bytes", CONF_UNIX_PATH_MAX);
        return;
    }
    set_copy(p, text, k, base);
}

#define OCTAL_BITS 3

/* control.mode: octal digits as chmod takes them ("0660", "660"), permission bits only. */
void conf_set_mode(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    const char *text = scalar_text(p, n, "must be an octal mode");
    if (text == NULL)
        return;
    unsigned v = 0;
    bool ok = n->len > 0 && n->len <= CONF_MODE_DIGITS;
    for (size_t i = 0; ok && i < n->len; i++) {
        ok = text[i] >= '0' && text[i] <= '7';
        v = (v << OCTAL_BITS) | (unsigned)(text[i] - '0');
    }
    if (!ok || v > CONF_MODE_MAX) {
        conf_error_value(p, n, "must be an octal mode from 0000 to %04o", CONF_MODE_MAX);
        return;
    }
    *(unsigned *)conf_field_at(base, k->offset) = v;
}

/* ---- values by kind, for reload ------------------------------------------------- */

bool conf_addr_equal(const struct conf_addr *a, const struct conf_addr *b)
{
    return a->transport == b->transport && a->tls == b->tls && a->addr_len == b->addr_len && a->port == b->port &&
           a->addr_len <= CONF_ADDR_BYTES_MAX && memcmp(a->addr, b->addr, a->addr_len) == 0 &&
           strcmp(a->host, b->host) == 0;
}

static bool string_equal(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The element size of a list kind whose elements are compared as bytes; 0 for the others. */
static size_t plain_elem_size(enum conf_kind kind)
{
    switch (kind) {
    case KIND_PROTOS:
        return sizeof(unsigned);
    case KIND_CAPTURE_IDS:
        return sizeof(uint32_t);
    case KIND_CIDRS:
        return sizeof(struct conf_cidr);   /* zeroed before parsing: no stray bytes */
    case KIND_STATUSES:
        return sizeof(struct conf_status);
    default:
        return 0;
    }
}

static bool patterns_equal(const struct pattern *a, size_t na, const struct pattern *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!string_equal(a[i].text, b[i].text) || a[i].caseless != b[i].caseless)
            return false;
    return true;
}

static const void *list_at(const struct conf_key *k, const void *base, size_t *count)
{
    *count = *(const size_t *)conf_field_at((void *)base, k->count_offset);
    return *(const void *const *)conf_field_at((void *)base, k->offset);
}

static bool lists_equal(const struct conf_key *k, const void *base_a, const void *base_b,
                        const struct conf_pair *confs)
{
    size_t na, nb;
    const void *a = list_at(k, base_a, &na), *b = list_at(k, base_b, &nb);
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        bool same;
        switch (k->kind) {
        case KIND_ADDRS:
            same = conf_addr_equal(&((const struct conf_addr *)a)[i], &((const struct conf_addr *)b)[i]);
            break;
        case KIND_DEST_REFS: {
            size_t ia = ((const size_t *)a)[i], ib = ((const size_t *)b)[i];
            INVARIANT(ia < confs->a->ndests && ib < confs->b->ndests);
            same = ia < confs->a->ndests && ib < confs->b->ndests &&
                   string_equal(confs->a->dests[ia].name, confs->b->dests[ib].name);
            break;
        }
        case KIND_STRINGS:
            same = string_equal(((char *const *)a)[i], ((char *const *)b)[i]);
            break;
        case KIND_BINDINGS: {
            const struct conf_capture_binding *x = &((const struct conf_capture_binding *)a)[i];
            const struct conf_capture_binding *y = &((const struct conf_capture_binding *)b)[i];
            same = memcmp(&x->cidr, &y->cidr, sizeof x->cidr) == 0 && x->nids == y->nids &&
                   (x->nids == 0 || memcmp(x->ids, y->ids, x->nids * sizeof *x->ids) == 0);
            break;
        }
        case KIND_SUBJECT_BINDINGS: {
            const struct conf_subject_binding *x = &((const struct conf_subject_binding *)a)[i];
            const struct conf_subject_binding *y = &((const struct conf_subject_binding *)b)[i];
            same = string_equal(x->subject, y->subject) && x->nids == y->nids &&
                   (x->nids == 0 || memcmp(x->ids, y->ids, x->nids * sizeof *x->ids) == 0);
            break;
        }
        case KIND_ENDPOINTS:
            same = string_equal(((const struct conf_endpoint *)a)[i].text,
                                ((const struct conf_endpoint *)b)[i].text);
            break;
        case KIND_PATTERNS:
            same = patterns_equal(&((const struct pattern *)a)[i], 1, &((const struct pattern *)b)[i], 1);
            break;
        case KIND_HEADERS: {
            const struct conf_header_match *x = &((const struct conf_header_match *)a)[i];
            const struct conf_header_match *y = &((const struct conf_header_match *)b)[i];
            same = x->name != NULL && y->name != NULL && strcasecmp(x->name, y->name) == 0 &&
                   patterns_equal(x->values, x->nvalues, y->values, y->nvalues);
            break;
        }
        default: {
            size_t size = plain_elem_size(k->kind);
            INVARIANT(size > 0);
            same = memcmp((const char *)a + i * size, (const char *)b + i * size, size) == 0;
            break;
        }
        }
        if (!same)
            return false;
    }
    return true;
}

#define FIELD(type, base, k) (*(const type *)conf_field_at((void *)(base), (k)->offset))

bool conf_value_equal(const struct conf_key *k, const void *a, const void *b, const struct conf_pair *confs)
{
    switch (k->kind) {
    case KIND_SIZE:
        return FIELD(size_t, a, k) == FIELD(size_t, b, k);
    case KIND_UNSIGNED:
    case KIND_MODE:
        return FIELD(unsigned, a, k) == FIELD(unsigned, b, k);
    case KIND_U64:
    case KIND_DURATION:
        return FIELD(uint64_t, a, k) == FIELD(uint64_t, b, k);
    case KIND_ENUM:
    case KIND_INT:
        return FIELD(int, a, k) == FIELD(int, b, k);
    case KIND_STRING:
        return string_equal(FIELD(char *, a, k), FIELD(char *, b, k));
    case KIND_CAPTURE_ID: {
        const struct conf_dest *da = a, *db = b;
        return da->set_capture_id == db->set_capture_id &&
               (!da->set_capture_id || da->capture_id == db->capture_id);
    }
    case KIND_ADDR:
        return conf_addr_equal(&FIELD(struct conf_addr, a, k), &FIELD(struct conf_addr, b, k));
    case KIND_BOOL:
        return FIELD(bool, a, k) == FIELD(bool, b, k);
    case KIND_FRACTION:
        return FIELD(uint32_t, a, k) == FIELD(uint32_t, b, k);
    case KIND_ADDRS:
    case KIND_DEST_REFS:
    case KIND_STRINGS:
    case KIND_PROTOS:
    case KIND_CAPTURE_IDS:
    case KIND_CIDRS:
    case KIND_STATUSES:
    case KIND_ENDPOINTS:
    case KIND_BINDINGS:
    case KIND_SUBJECT_BINDINGS:
    case KIND_PATTERNS:
    case KIND_HEADERS:
        return lists_equal(k, a, b, confs);
    default:
        INVARIANT(k->kind == KIND_NONE);    /* sections, destinations, routes: schema.c */
        return true;
    }
}

static const char *proto_name(unsigned proto)
{
    for (const struct conf_name *n = proto_names; n->name != NULL; n++)
        if ((unsigned)n->value == proto)
            return n->name;
    return NULL;
}

static void format_cidr(struct text *t, const struct conf_cidr *cidr)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(cidr->addr_len == CONF_IPV4_BITS / CHAR_BIT ? AF_INET : AF_INET6, cidr->addr, ip, sizeof ip);
    conf_text_add(t, "%s/%u", ip, cidr->prefix);
}

static void format_elem(struct text *t, const struct conf_key *k, const void *list, size_t i,
                        const struct conf *c)
{
    switch (k->kind) {
    case KIND_ADDRS:
        conf_text_add(t, "%s", ((const struct conf_addr *)list)[i].text);
        break;
    case KIND_DEST_REFS: {
        size_t d = ((const size_t *)list)[i];
        INVARIANT(d < c->ndests);
        conf_text_add(t, "%s", d < c->ndests && c->dests[d].name != NULL ? c->dests[d].name : "?");
        break;
    }
    case KIND_STRINGS:
        conf_text_add(t, "%s", ((char *const *)list)[i]);
        break;
    case KIND_PROTOS: {
        unsigned proto = ((const unsigned *)list)[i];
        const char *name = proto_name(proto);
        if (name != NULL)
            conf_text_add(t, "%s", name);
        else
            conf_text_add(t, "%u", proto);
        break;
    }
    case KIND_CAPTURE_IDS:
        conf_text_add(t, "%" PRIu32, ((const uint32_t *)list)[i]);
        break;
    case KIND_CIDRS:
        format_cidr(t, &((const struct conf_cidr *)list)[i]);
        break;
    case KIND_BINDINGS: {
        const struct conf_capture_binding *b = &((const struct conf_capture_binding *)list)[i];
        format_cidr(t, &b->cidr);
        conf_text_add(t, ":");
        for (size_t j = 0; j < b->nids; j++)
            conf_text_add(t, " %" PRIu32, b->ids[j]);
        break;
    }
    case KIND_SUBJECT_BINDINGS: {
        const struct conf_subject_binding *b = &((const struct conf_subject_binding *)list)[i];
        conf_text_add(t, "%s:", b->subject != NULL ? b->subject : "?");
        for (size_t j = 0; j < b->nids; j++)
            conf_text_add(t, " %" PRIu32, b->ids[j]);
        break;
    }
    case KIND_STATUSES: {
        const struct conf_status *s = &((const struct conf_status *)list)[i];
        if (s->lo == s->hi)
            conf_text_add(t, "%u", s->lo);
        else
            conf_text_add(t, "%uxx", s->lo / CONF_STATUS_CLASS);
        break;
    }
    case KIND_ENDPOINTS:
        conf_text_add(t, "%s", ((const struct conf_endpoint *)list)[i].text);
        break;
    case KIND_PATTERNS: {
        const char *text = ((const struct pattern *)list)[i].text;
        conf_text_add(t, "%s", text != NULL ? text : "?");     /* NULL: did not compile, reported */
        break;
    }
    case KIND_HEADERS: {
        const struct conf_header_match *h = &((const struct conf_header_match *)list)[i];
        conf_text_add(t, "%s:", h->name != NULL ? h->name : "?");
        for (size_t j = 0; j < h->nvalues; j++)
            conf_text_add(t, " %s", h->values[j].text != NULL ? h->values[j].text : "?");
        break;
    }
    default:
        INVARIANT(false);
        break;
    }
}

/* "[a, b]"; an empty match list is "any" (it matches anything). */
static void format_list(struct text *t, const struct conf_key *k, const void *base, const struct conf *c)
{
    size_t n;
    const void *list = list_at(k, base, &n);
    if (n == 0 && (k->flags & KEY_MATCH)) {
        conf_text_add(t, "any");
        return;
    }
    conf_text_add(t, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            conf_text_add(t, ", ");
        format_elem(t, k, list, i, c);
    }
    conf_text_add(t, "]");
}

static const char *kind_enum_name(const struct conf_name *names, int value)
{
    for (const struct conf_name *n = names; n->name != NULL; n++)
        if (n->value == value)
            return n->name;
    return "?";
}

void conf_value_format(struct text *t, const struct conf_key *k, const void *base, const struct conf *c)
{
    char buf[CONF_DURATION_TEXT_MAX];
    switch (k->kind) {
    case KIND_SIZE:
        conf_text_add(t, "%zu", FIELD(size_t, base, k));
        break;
    case KIND_UNSIGNED:
        conf_text_add(t, "%u", FIELD(unsigned, base, k));
        break;
    case KIND_MODE:
        conf_text_add(t, "%04o", FIELD(unsigned, base, k));
        break;
    case KIND_U64:
        conf_text_add(t, "%" PRIu64, FIELD(uint64_t, base, k));
        break;
    case KIND_DURATION:
        conf_text_add(t, "%s", conf_format_duration(FIELD(uint64_t, base, k), buf, sizeof buf));
        break;
    case KIND_ENUM:
        conf_text_add(t, "%s", kind_enum_name(k->names, FIELD(int, base, k)));
        break;
    case KIND_INT:
        conf_text_add(t, "%d", FIELD(int, base, k));
        break;
    case KIND_STRING: {
        const char *s = FIELD(char *, base, k);
        if (s == NULL)
            conf_text_add(t, "none");
        for (; s != NULL && *s != '\0'; s++) {   /* one log line, whatever node_name holds */
            unsigned char ch = (unsigned char)*s;
            if (ch < 0x20 || ch == 0x7f)
                conf_text_add(t, "\\x%02x", ch);
            else
                conf_text_add(t, "%c", ch);
        }
        break;
    }
    case KIND_CAPTURE_ID: {
        const struct conf_dest *d = base;
        if (d->set_capture_id)
            conf_text_add(t, "%" PRIu32, d->capture_id);
        else
            conf_text_add(t, "keep");
        break;
    }
    case KIND_ADDR: {
        const struct conf_addr *a = &FIELD(struct conf_addr, base, k);
        conf_text_add(t, "%s", a->addr_len != 0 ? a->text : "off");
        break;
    }
    case KIND_BOOL:
        conf_text_add(t, "%s", FIELD(bool, base, k) ? "true" : "false");
        break;
    case KIND_FRACTION: {
        uint32_t v = FIELD(uint32_t, base, k);
        conf_text_add(t, "%u.%06u", v / CONF_MILLION, v % CONF_MILLION);
        break;
    }
    case KIND_ADDRS:
    case KIND_DEST_REFS:
    case KIND_STRINGS:
    case KIND_PROTOS:
    case KIND_CAPTURE_IDS:
    case KIND_CIDRS:
    case KIND_STATUSES:
    case KIND_ENDPOINTS:
    case KIND_BINDINGS:
    case KIND_SUBJECT_BINDINGS:
    case KIND_PATTERNS:
    case KIND_HEADERS:
        format_list(t, k, base, c);
        break;
    default:
        INVARIANT(false);
        break;
    }
}

static void endpoints_free(struct conf_endpoint *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].host);
        free(e[i].text);
    }
    free(e);
}

void conf_value_free(const struct conf_key *k, void *base)
{
    void *field = conf_field_at(base, k->offset);
    switch (k->kind) {
    case KIND_STRING: {
        char *s = *(char **)field;
        if (s != NULL && (k->flags & KEY_SECRET))
            explicit_bzero(s, strlen(s));
        free(s);
        *(char **)field = NULL;
        break;
    }
    case KIND_ENDPOINTS:
        endpoints_free(*(struct conf_endpoint **)field, *(size_t *)conf_field_at(base, k->count_offset));
        *(struct conf_endpoint **)field = NULL;
        *(size_t *)conf_field_at(base, k->count_offset) = 0;
        break;
    case KIND_ADDRS:
        free(*(struct conf_addr **)field);
        *(struct conf_addr **)field = NULL;
        *(size_t *)conf_field_at(base, k->count_offset) = 0;
        break;
    default:
        break;
    }
}

static struct conf_endpoint *endpoints_copy(const struct conf_endpoint *src, size_t n)
{
    struct conf_endpoint *e = conf_calloc(n, sizeof *e);
    if (e == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        e[i].port = src[i].port;
        if ((e[i].host = conf_strdup(src[i].host)) == NULL || (e[i].text = conf_strdup(src[i].text)) == NULL) {
            endpoints_free(e, n);
            return NULL;
        }
    }
    return e;
}

/* The copy is made before the old value goes, so a failure leaves dst as it was. */
int conf_value_copy(const struct conf_key *k, void *dst, const void *src)
{
    void *to = conf_field_at(dst, k->offset);
    const void *from = conf_field_at((void *)src, k->offset);
    switch (k->kind) {
    case KIND_SIZE:
        memcpy(to, from, sizeof(size_t));
        return 0;
    case KIND_UNSIGNED:
    case KIND_MODE:
        memcpy(to, from, sizeof(unsigned));
        return 0;
    case KIND_U64:
    case KIND_DURATION:
        memcpy(to, from, sizeof(uint64_t));
        return 0;
    case KIND_ENUM:
    case KIND_INT:
        memcpy(to, from, sizeof(int));
        return 0;
    case KIND_BOOL:
        memcpy(to, from, sizeof(bool));
        return 0;
    case KIND_ADDR:
        memcpy(to, from, sizeof(struct conf_addr));
        return 0;
    case KIND_STRING: {
        const char *s = *(char *const *)from;
        char *copy = NULL;
        if (s != NULL && (copy = conf_strdup(s)) == NULL)
            return -1;
        conf_value_free(k, dst);
        *(char **)to = copy;
        return 0;
    }
    case KIND_ENDPOINTS: {
        size_t n;
        const struct conf_endpoint *list = list_at(k, src, &n);
        struct conf_endpoint *copy = NULL;
        if (n > 0 && (copy = endpoints_copy(list, n)) == NULL)
            return -1;
        conf_value_free(k, dst);
        *(struct conf_endpoint **)to = copy;
        *(size_t *)conf_field_at(dst, k->count_offset) = n;
        return 0;
    }
    case KIND_ADDRS: {
        size_t n;
        const struct conf_addr *list = list_at(k, src, &n);
        struct conf_addr *copy = NULL;
        if (n > 0 && (copy = conf_malloc(n * sizeof *copy)) == NULL)
            return -1;
        if (n > 0)
            memcpy(copy, list, n * sizeof *copy);
        conf_value_free(k, dst);
        *(struct conf_addr **)to = copy;
        *(size_t *)conf_field_at(dst, k->count_offset) = n;
        return 0;
    }
    default:
        /* lists of indexes or names have no meaning in another conf: never kept */
        INVARIANT(false);
        return -1;
    }
}
