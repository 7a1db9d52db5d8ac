/*
 * conf/schema.c - what heprouter's configuration is.
 *
 * The key tables (every key with its setter, default and range; the man
 * page heprouter.yaml(5) and etc/heprouter.yaml follow them), the sections
 * that need more than a table (store, destinations, routes), the pass 3
 * cross-checks, and conf_load(), which runs the passes, and conf_free().
 */
#include "conf/internal.h"

#include "hep.h"
#include "log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key tables --------------------------------------------------------------- */

/* conf_set_enum() writes an int. */
_Static_assert(sizeof(enum conf_balance) == sizeof(int), "enum keys are stored as int");
_Static_assert(sizeof(((struct conf *)0)->store_type) == sizeof(int), "enum keys are stored as int");

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
#define LEVEL_NAME(id, name, prefix) { name, LOG_LEVEL_##id },
    LOG_LEVELS(LEVEL_NAME)
#undef LEVEL_NAME
    { NULL, 0 },
};

/* The name of value in a NULL-terminated table, or "?" (not a value of it). */
static const char *enum_name(const struct conf_name *names, int value)
{
    for (const struct conf_name *n = names; n->name != NULL; n++)
        if (n->value == value)
            return n->name;
    return "?";
}

const char *conf_balance_name(enum conf_balance b)
{
    return enum_name(balance_names, (int)b);
}

const char *conf_store_type_name(int type)
{
    return enum_name(store_names, type);
}

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
    { .name = "host", .set = conf_set_host, .offset = CONF_FIELD(struct conf_redis, host),
      .dflt = "127.0.0.1" },
    /* absent: TCP to host:port */
    { .name = "unix", .set = conf_set_unix_path, .offset = CONF_FIELD(struct conf_redis, unix_path) },
    REDIS_NUMBER("port", conf_set_unsigned, port, "6379", 1, CONF_PORT_MAX),
    REDIS_NUMBER("db", conf_set_unsigned, db, "0", 0, CONF_DB_MAX),
    /* absent or "": no ACL user, no AUTH */
    { .name = "username", .set = conf_set_optional_token, .offset = CONF_FIELD(struct conf_redis, username) },
    { .name = "password", .set = conf_set_password, .offset = CONF_FIELD(struct conf_redis, password) },
    { .name = "password_file", .set = conf_set_path, .offset = CONF_FIELD(struct conf_redis, password_file) },
    { .name = "prefix", .set = conf_set_token, .offset = CONF_FIELD(struct conf_redis, prefix),
      .dflt = "heprouter:" },
    REDIS_NUMBER("timeout_ms", conf_set_u64, timeout_ms, "50", 1, CONF_REDIS_WAIT_MAX_MS),
    REDIS_NUMBER("max_inflight", conf_set_size, max_inflight, "10000", 1, CONF_INFLIGHT_MAX),
    REDIS_NUMBER("max_pending_writes", conf_set_size, max_pending_writes, "100000", 0, CONF_PENDING_MAX),
    REDIS_NUMBER("max_reply_bytes", conf_set_size, max_reply_bytes, "65536", CONF_REPLY_MIN, CONF_REPLY_MAX),
    /* absent or []: connect to the server directly */
    { .name = "sentinels", .set = conf_set_sentinels, .offset = CONF_FIELD(struct conf_redis, sentinels),
      .count_offset = CONF_FIELD(struct conf_redis, nsentinels) },
    { .name = "master_name", .set = conf_set_token, .offset = CONF_FIELD(struct conf_redis, master_name),
      .dflt = "mymaster" },
    KEY_END,
};

static const struct conf_key cache_keys[] = {
    NUMBER("entries", conf_set_size, cache_entries, "100000", 0, CONF_CACHE_MAX),
    KEY_END,
};

static void set_store_type(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_redis(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_cache(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/* type first: redis and cache look at it. */
static const struct conf_key store_keys[] = {
    { .name = "type", .set = set_store_type, .offset = CONF_FIELD(struct conf, store_type), .dflt = "memory",
      .names = store_names },
    NUMBER("max_calls", conf_set_size, store_max_calls, "2000000", 0, CONF_COUNT_MAX),
    { .name = "redis", .set = set_redis, .offset = CONF_FIELD(struct conf, redis), .sub = redis_keys },
    /* the fields are in struct conf itself */
    { .name = "cache", .set = set_cache, .sub = cache_keys },
    KEY_END,
};

static const struct conf_key ttl_keys[] = {
    NUMBER("call", conf_set_duration, ttl_call_ms, "4h", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS),
    NUMBER("register", conf_set_duration, ttl_register_ms, "1h", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS),
    NUMBER("ended", conf_set_duration, ttl_ended_ms, "30s", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS),
    KEY_END,
};

static const struct conf_key orphans_keys[] = {
    NUMBER("wait_ms", conf_set_u64, orphans_wait_ms, "50", 0, CONF_WAIT_MAX_MS),
    NUMBER("max_held", conf_set_size, orphans_max_held, "100000", 0, CONF_COUNT_MAX),
    NUMBER("max_bytes", conf_set_size, orphans_max_bytes, "67108864", HEP3_MAX_LEN, CONF_HELD_BYTES_MAX),
    KEY_END,
};

static const struct conf_key limits_keys[] = {
    NUMBER("call_id_max", conf_set_size, call_id_max, "256", CONF_CALL_ID_MIN, HEP3_MAX_LEN),
    NUMBER("tcp_max_connections", conf_set_size, tcp_max_connections, "1024", 1, CONF_TCP_CONN_MAX),
    NUMBER("fd_reserve", conf_set_size, fd_reserve, "64", 0, CONF_FD_RESERVE_MAX),
    NUMBER("tcp_max_frame", conf_set_size, tcp_max_frame, "65535", HEP3_HDR_LEN, HEP3_MAX_LEN),
    NUMBER("tcp_idle_timeout", conf_set_duration, tcp_idle_timeout_ms, "10m", MS_PER_SECOND,
           CONF_IDLE_MAX_MS),
    NUMBER("udp_batch", conf_set_size, udp_batch, "64", 1, CONF_UDP_BATCH_MAX),
    NUMBER("udp_rcvbuf", conf_set_size, udp_rcvbuf, "8388608", 0, CONF_RCVBUF_MAX),
    NUMBER("tcp_queue_bytes", conf_set_size, tcp_queue_bytes, "4194304", HEP3_MAX_LEN, CONF_QUEUE_MAX),
    NUMBER("reconnect_min", conf_set_duration, reconnect_min_ms, "100ms", 1, CONF_TIMEOUT_MAX_MS),
    NUMBER("reconnect_max", conf_set_duration, reconnect_max_ms, "5s", 1, CONF_TIMEOUT_MAX_MS),
    NUMBER("connect_timeout", conf_set_duration, connect_timeout_ms, "2s", 1, CONF_TIMEOUT_MAX_MS),
    NUMBER("drain_timeout", conf_set_duration, drain_timeout_ms, "2s", 0, CONF_TIMEOUT_MAX_MS),
    KEY_END,
};

static const struct conf_key log_keys[] = {
    { .name = "level", .set = conf_set_enum, .offset = CONF_FIELD(struct conf, log_level), .dflt = "info",
      .names = level_names },
    NUMBER("interval", conf_set_duration, log_interval_ms, "10s", 0, CONF_LOG_MAX_MS),
    NUMBER("stats_interval", conf_set_duration, stats_interval_ms, "0", 0, CONF_LOG_MAX_MS),
    KEY_END,
};

static const struct conf_key dest_keys[] = {
    { .name = "targets", .set = conf_set_targets, .offset = CONF_FIELD(struct conf_dest, targets),
      .count_offset = CONF_FIELD(struct conf_dest, ntargets), .flags = KEY_REQUIRED | KEY_NONEMPTY },
    { .name = "balance", .set = conf_set_enum, .offset = CONF_FIELD(struct conf_dest, balance), .dflt = "all",
      .names = balance_names },
    /* absent: 0, forward as received */
    { .name = "hep_version", .set = conf_set_hep_version,
      .offset = CONF_FIELD(struct conf_dest, hep_version) },
    /* absent: keep the packet's own */
    { .name = "capture_id", .set = conf_set_dest_capture_id,
      .offset = CONF_FIELD(struct conf_dest, capture_id), .min = 0, .max = UINT32_MAX },
    { .name = "node_name", .set = conf_set_string, .offset = CONF_FIELD(struct conf_dest, node_name) },
    { .name = "auth_key", .set = conf_set_string, .offset = CONF_FIELD(struct conf_dest, auth_key) },
    { .name = "max_packet", .set = conf_set_size, .offset = CONF_FIELD(struct conf_dest, max_packet),
      .dflt = "65535", .min = HEP3_HDR_LEN, .max = HEP3_MAX_LEN },
    KEY_END,
};

#define MATCH_LIST(key, setter, f, nf) \
    { .name = key, .set = setter, .offset = CONF_FIELD(struct conf_match, f), \
      .count_offset = CONF_FIELD(struct conf_match, nf), .flags = KEY_NONEMPTY | KEY_MATCH }

static const struct conf_key match_keys[] = {
    MATCH_LIST("method", conf_set_methods, methods, nmethods),
    MATCH_LIST("proto", conf_set_protos, protos, nprotos),
    MATCH_LIST("capture_id", conf_set_capture_ids, capture_ids, ncapture_ids),
    MATCH_LIST("src", conf_set_cidrs, src, nsrc),
    MATCH_LIST("dst", conf_set_cidrs, dst, ndst),
    MATCH_LIST("status", conf_set_statuses, status, nstatus),
    KEY_END,
};

static const struct conf_key route_keys[] = {
    /* absent: "route-N", N counting from 1 (see set_routes) */
    { .name = "name", .set = conf_set_name, .offset = CONF_FIELD(struct conf_route, name) },
    /* absent: matches every call */
    { .name = "match", .set = conf_set_section, .offset = CONF_FIELD(struct conf_route, match),
      .sub = match_keys },
    /* absent: needs drop: true */
    { .name = "to", .set = conf_set_dest_refs, .offset = CONF_FIELD(struct conf_route, to),
      .count_offset = CONF_FIELD(struct conf_route, nto) },
    { .name = "drop", .set = conf_set_drop },
    KEY_END,
};

static void set_destinations(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_routes(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/* The order matters: listen before destinations (loop check), destinations before routes. */
static const struct conf_key top_keys[] = {
    { .name = "listen", .set = conf_set_listen, .offset = CONF_FIELD(struct conf, listen),
      .count_offset = CONF_FIELD(struct conf, nlisten), .flags = KEY_REQUIRED | KEY_NONEMPTY },
    NUMBER("workers", conf_set_unsigned, workers, "1", 1, CONF_WORKERS_MAX),
    { .name = "store", .set = conf_set_section, .sub = store_keys },
    { .name = "ttl", .set = conf_set_section, .sub = ttl_keys },
    { .name = "orphans", .set = conf_set_section, .sub = orphans_keys },
    { .name = "limits", .set = conf_set_section, .sub = limits_keys },
    { .name = "log", .set = conf_set_section, .sub = log_keys },
    { .name = "destinations", .set = set_destinations, .flags = KEY_REQUIRED },
    /* absent: no routes, every call takes default */
    { .name = "routes", .set = set_routes },
    /* absent: calls no route matched are discarded */
    { .name = "default", .set = conf_set_dest_refs, .offset = CONF_FIELD(struct conf, default_to),
      .count_offset = CONF_FIELD(struct conf, ndefault_to) },
    KEY_END,
};

/* ---- store ------------------------------------------------------------------------ */

static void set_store_type(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    size_t before = p->nerrors + p->ndropped;
    conf_set_enum(p, n, k, base);
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
    conf_error_key(p, n, "is only used with type: redis");
    return true;
}

static void set_cache(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    if (!store_section_unused(p, n))
        conf_set_section(p, n, k, base);
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
    size_t old = conf_path_push_key(p, name, strlen(name));
    conf_error_value(p, conf_map_get(map, name), "cannot be used with %s", other);
    conf_path_pop(p, old);
}

/*
 * The first line of store.redis.password_file, without its line end (\n or
 * \r\n), becomes the password.  Errors name the file, never its content.
 */
static void read_password(struct parse *p, const struct node *n, struct conf_redis *r)
{
    size_t old = conf_path_push_key(p, "password_file", strlen("password_file"));
    FILE *f = fopen(r->password_file, "r");
    if (f == NULL) {
        conf_error_value(p, n, "cannot open: %s", strerror(errno));
        conf_path_pop(p, old);
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
        conf_error_value(p, n, "cannot read: %s", strerror(saved));
    else if (longer || len > CONF_PASSWORD_MAX)
        conf_error_value(p, n, "has a first line longer than %u bytes", CONF_PASSWORD_MAX);
    else if (nul)
        conf_error_value(p, n, "has a NUL byte in its first line");
    else if (len == 0)
        conf_error_value(p, n, "has an empty first line");
    else if ((r->password = conf_strdup(line)) == NULL)
        p->nomem = true;
    explicit_bzero(line, sizeof line);
    conf_path_pop(p, old);
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
    const struct node *sentinels = conf_map_get(map, "sentinels");
    bool has_sentinels = sentinels != NULL && !(sentinels->type == NODE_SEQUENCE && sentinels->nitems == 0);
    bool has_unix = conf_map_get(map, "unix") != NULL;
    uint64_t port_default;
    bool other_host = conf_map_get(map, "host") != NULL && r->host != NULL &&
                      strcmp(r->host, table_key(redis_keys, "host")->dflt) != 0;
    bool other_port = conf_map_get(map, "port") != NULL && r->port != 0 &&
                      conf_parse_number(table_key(redis_keys, "port")->dflt, 0, CONF_PORT_MAX,
                                        &port_default) == CONF_NUMBER_OK &&
                      r->port != port_default;

    if (has_sentinels && has_unix)
        error_excludes(p, map, "unix", "sentinels");
    if (other_host && (has_sentinels || has_unix))
        error_excludes(p, map, "host", has_sentinels ? "sentinels" : "unix");
    if (other_port && (has_sentinels || has_unix))
        error_excludes(p, map, "port", has_sentinels ? "sentinels" : "unix");
    if (!has_sentinels && conf_map_get(map, "master_name") != NULL) {
        size_t old = conf_path_push_key(p, "master_name", strlen("master_name"));
        conf_error_value(p, conf_map_get(map, "master_name"), "is only used with sentinels");
        conf_path_pop(p, old);
    }
    if (r->unix_path != NULL) {
        free(r->host);
        r->host = NULL;
    }
    const struct node *file = conf_map_get(map, "password_file");
    if (file != NULL && r->password_file != NULL) {
        if (conf_map_get(map, "password") != NULL)
            error_excludes(p, map, "password_file", "password");
        else
            read_password(p, file, r);
    }
}

static void set_redis(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    if (store_section_unused(p, n))
        return;
    struct conf_redis *r = conf_field_at(base, k->offset);
    conf_parse_map(p, n, k->sub, r);
    if (n != NULL && n->type == NODE_MAPPING)
        check_redis(p, n, r);
}

/* ---- destinations and routes --------------------------------------------------- */

static void set_destinations(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    (void)k;
    if (!conf_expect_mapping(p, n)) {
        p->dests_broken = true;
        return;
    }
    conf_check_keys(p, n, NULL);
    size_t npairs = n->nitems / 2;
    if (npairs == 0) {
        conf_error_key(p, n, "must not be empty");
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
            p->dests_broken = true;     /* reported by conf_check_keys */
            continue;
        }
        size_t old = conf_path_push_key(p, key->value, key->len);
        if (!conf_is_name(key->value, key->len))
            conf_error_key(p, key, CONF_NAME_PREDICATE, CONF_NAME_MAX);
        else if ((d->name = conf_strdup(key->value)) == NULL) {
            p->nomem = true;
        }
        conf_parse_map(p, n->items[2 * i + 1], dest_keys, d);
        conf_path_pop(p, old);
    }
}

/* A route sends somewhere (to) or discards (drop: true), never both, never neither. */
static void check_route_action(struct parse *p, struct node *route)
{
    struct node *to = conf_map_get(route, "to");
    struct node *drop = conf_map_get(route, "drop");
    int drop_value = 0;
    if (drop != NULL) {
        if (drop->type != NODE_SCALAR || conf_node_is_null(drop) || strlen(drop->value) != drop->len)
            return;                     /* reported by conf_set_drop */
        drop_value = conf_parse_bool(drop->value);
        if (drop_value < 0)
            return;
    }
    if (to != NULL && drop_value == 1)
        conf_error_key(p, drop, "has both to and drop: true");
    else if (to == NULL && drop_value == 0)
        conf_error_key(p, route, "needs to or drop: true");
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
        struct node *name = conf_map_get(n->items[later], "name");
        size_t at = later, other = first;
        if (name == NULL) {             /* the later one has the default name */
            name = conf_map_get(n->items[first], "name");
            at = first;
            other = later;
        }
        if (name == NULL)
            continue;
        size_t old = conf_path_push_index(p, at);
        size_t old2 = conf_path_push_key(p, "name", strlen("name"));
        conf_error_value(p, name, "is also the name of routes[%zu]", other);
        conf_path_pop(p, old2);
        conf_path_pop(p, old);
    }
    free(sorted);
}

#define ROUTE_NAME_FORMAT "route-%zu"

static void set_routes(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    (void)k;
    if (n->type != NODE_SEQUENCE) {
        conf_error_key(p, n, conf_node_is_null(n) ? "has no value" : "must be a list");
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
        size_t old = conf_path_push_index(p, i);
        conf_parse_map(p, item, route_keys, r);
        if (item->type == NODE_MAPPING)
            check_route_action(p, item);
        if (r->name == NULL && conf_map_get(item, "name") == NULL) {
            char buf[sizeof ROUTE_NAME_FORMAT + 3 * sizeof(size_t)];
            snprintf(buf, sizeof buf, ROUTE_NAME_FORMAT, i + 1);
            if ((r->name = conf_strdup(buf)) == NULL)
                p->nomem = true;
        }
        conf_path_pop(p, old);
    }
    check_route_names(p, n, c);
}

/* ---- pass 3: cross-checks ------------------------------------------------------ */

/* True when key `name` of table is absent from map or was accepted by its setter. */
static bool key_accepted(const struct node *map, const struct conf_key *table, const char *name)
{
    const struct node *n = conf_map_get(map, name);
    if (n == NULL)
        return true;
    const struct conf_key *k = table;
    while (strcmp(k->name, name) != 0)
        k++;
    uint64_t ms;
    return n->type == NODE_SCALAR && !conf_node_is_null(n) && strlen(n->value) == n->len &&
           conf_parse_duration(n->value, &ms) == NULL && ms >= k->min && ms <= k->max;
}

static void check_reconnect(struct parse *p, const struct node *root)
{
    const struct conf *c = p->conf;
    struct node *limits = conf_map_get(root, "limits");
    struct node *lo = conf_map_get(limits, "reconnect_min"), *hi = conf_map_get(limits, "reconnect_max");
    if (!key_accepted(limits, limits_keys, "reconnect_min") ||
        !key_accepted(limits, limits_keys, "reconnect_max"))
        return;                         /* already reported */
    if (c->reconnect_min_ms <= c->reconnect_max_ms)
        return;
    char buf[CONF_DURATION_TEXT_MAX];
    size_t old = conf_path_push_key(p, "limits", strlen("limits"));
    if (lo != NULL) {
        size_t old2 = conf_path_push_key(p, "reconnect_min", strlen("reconnect_min"));
        conf_error_value(p, lo, "must not be greater than limits.reconnect_max (%s)",
                         conf_format_duration(c->reconnect_max_ms, buf, sizeof buf));
        conf_path_pop(p, old2);
    } else if (hi != NULL) {
        size_t old2 = conf_path_push_key(p, "reconnect_max", strlen("reconnect_max"));
        conf_error_value(p, hi, "must not be less than limits.reconnect_min (%s)",
                         conf_format_duration(c->reconnect_min_ms, buf, sizeof buf));
        conf_path_pop(p, old2);
    }
    conf_path_pop(p, old);
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
        root = conf_load_tree(&p, buf, len);
    if (root != NULL && root->type != NODE_MAPPING)
        conf_error_file(&p, root->mark, "the top level must be a mapping");
    else if (root != NULL && (conf = conf_calloc(1, sizeof *conf)) == NULL)
        p.nomem = true;
    if (conf != NULL) {
        p.conf = conf;
        if ((conf->path = conf_strdup(path)) == NULL)
            p.nomem = true;
        p.dests_node = conf_map_get(root, "destinations");
        if (p.dests_node == NULL || p.dests_node->type != NODE_MAPPING)
            p.dests_broken = true;      /* reported; do not also call every name unknown */
        conf_parse_map(&p, root, top_keys, conf);
        check_reconnect(&p, root);
    }

    bool failed = buf == NULL || p.nerrors > 0 || p.ndropped > 0 || p.nomem || conf == NULL;
    conf_print_errors(&p, err);
    free(p.errors);
    free(p.listen_sorted);
    conf_node_free(root);
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
    for (size_t i = 0; i < r->nsentinels; i++) {
        free(r->sentinels[i].host);
        free(r->sentinels[i].text);
    }
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
