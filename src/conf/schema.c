/*
 * conf/schema.c - what heprouter's configuration is.
 *
 * The key tables (every key with its setter, default and range; the man
 * page heprouter.yaml(5) and etc/heprouter.yaml follow them), the sections
 * that need more than a table (store, destinations, routes), the pass 3
 * cross-checks, conf_load(), which runs the passes, and conf_free(); then
 * reload: the key tables walked over two configurations, to say what
 * changed and to keep what needs a restart.
 */
#include "conf/internal.h"

#include "hash.h"
#include "hep.h"
#include "invariant.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

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

static const struct conf_name tls_version_names[] = {
    { "1.2", CONF_TLS_1_2 },
    { "1.3", CONF_TLS_1_3 },
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

static const struct conf_name log_target_names[] = {
    { "stderr", CONF_LOG_STDERR },
    { "syslog", CONF_LOG_SYSLOG },
    { NULL, 0 },
};

/* The facilities a router's messages belong under (syslog(3)). */
static const struct conf_name facility_names[] = {
    { "daemon", LOG_DAEMON },
    { "user", LOG_USER },
    { "local0", LOG_LOCAL0 },
    { "local1", LOG_LOCAL1 },
    { "local2", LOG_LOCAL2 },
    { "local3", LOG_LOCAL3 },
    { "local4", LOG_LOCAL4 },
    { "local5", LOG_LOCAL5 },
    { "local6", LOG_LOCAL6 },
    { "local7", LOG_LOCAL7 },
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

/*
 * A number or duration field of struct conf.  fl is KEY_RELOAD for the keys
 * a running process may take from a new file, 0 for those that need a
 * restart.
 */
#define NUMBER(key, setter, kd, f, def, lo, hi, fl) \
    { .name = key, .set = setter, .kind = kd, .offset = CONF_FIELD(struct conf, f), .dflt = def, \
      .min = lo, .max = hi, .flags = fl }

/* A number field of struct conf_redis (all of store needs a restart). */
#define REDIS_NUMBER(key, setter, kd, f, def, lo, hi) \
    { .name = key, .set = setter, .kind = kd, .offset = CONF_FIELD(struct conf_redis, f), .dflt = def, \
      .min = lo, .max = hi }

/* See check_redis() for the keys that exclude each other. */
static const struct conf_key redis_keys[] = {
    /* set to NULL when unix is given */
    { .name = "host", .set = conf_set_host, .kind = KIND_STRING, .offset = CONF_FIELD(struct conf_redis, host),
      .dflt = "127.0.0.1" },
    /* absent: TCP to host:port */
    { .name = "unix", .set = conf_set_unix_path, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_redis, unix_path) },
    REDIS_NUMBER("port", conf_set_unsigned, KIND_UNSIGNED, port, "6379", 1, CONF_PORT_MAX),
    REDIS_NUMBER("db", conf_set_unsigned, KIND_UNSIGNED, db, "0", 0, CONF_DB_MAX),
    /* absent or "": no ACL user, no AUTH */
    { .name = "username", .set = conf_set_optional_token, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_redis, username) },
    { .name = "password", .set = conf_set_password, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_redis, password), .flags = KEY_SECRET },
    { .name = "password_file", .set = conf_set_path, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_redis, password_file) },
    { .name = "prefix", .set = conf_set_token, .kind = KIND_STRING, .offset = CONF_FIELD(struct conf_redis, prefix),
      .dflt = "heprouter:" },
    REDIS_NUMBER("timeout_ms", conf_set_u64, KIND_U64, timeout_ms, "50", 1, CONF_REDIS_WAIT_MAX_MS),
    REDIS_NUMBER("max_inflight", conf_set_size, KIND_SIZE, max_inflight, "10000", 1, CONF_INFLIGHT_MAX),
    REDIS_NUMBER("max_pending_writes", conf_set_size, KIND_SIZE, max_pending_writes, "100000", 0,
                 CONF_PENDING_MAX),
    REDIS_NUMBER("write_delay_ms", conf_set_u64, KIND_U64, write_delay_ms, "1", 0, CONF_WRITE_DELAY_MAX_MS),
    REDIS_NUMBER("max_reply_bytes", conf_set_size, KIND_SIZE, max_reply_bytes, "65536", CONF_REPLY_MIN,
                 CONF_REPLY_MAX),
    /* absent or []: connect to the server directly */
    { .name = "sentinels", .set = conf_set_sentinels, .kind = KIND_ENDPOINTS,
      .offset = CONF_FIELD(struct conf_redis, sentinels), .count_offset = CONF_FIELD(struct conf_redis, nsentinels) },
    { .name = "master_name", .set = conf_set_token, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_redis, master_name), .dflt = "mymaster" },
    KEY_END,
};

static const struct conf_key cache_keys[] = {
    NUMBER("entries", conf_set_size, KIND_SIZE, cache_entries, "100000", 0, CONF_CACHE_MAX, 0),
    KEY_END,
};

static void set_store_type(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_redis(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_cache(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/* type first: redis and cache look at it.  Nothing here changes at reload. */
static const struct conf_key store_keys[] = {
    { .name = "type", .set = set_store_type, .kind = KIND_ENUM, .offset = CONF_FIELD(struct conf, store_type),
      .dflt = "memory", .names = store_names },
    NUMBER("max_calls", conf_set_size, KIND_SIZE, store_max_calls, "2000000", 0, CONF_COUNT_MAX, 0),
    { .name = "redis", .set = set_redis, .kind = KIND_SECTION, .offset = CONF_FIELD(struct conf, redis),
      .sub = redis_keys },
    /* the fields are in struct conf itself */
    { .name = "cache", .set = set_cache, .kind = KIND_SECTION, .sub = cache_keys },
    KEY_END,
};

static const struct conf_key ttl_keys[] = {
    NUMBER("call", conf_set_duration, KIND_DURATION, ttl_call_ms, "4h", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS,
           KEY_RELOAD),
    NUMBER("register", conf_set_duration, KIND_DURATION, ttl_register_ms, "1h", CONF_TTL_MIN_MS,
           CONF_TTL_MAX_MS, KEY_RELOAD),
    NUMBER("ended", conf_set_duration, KIND_DURATION, ttl_ended_ms, "30s", CONF_TTL_MIN_MS, CONF_TTL_MAX_MS,
           KEY_RELOAD),
    KEY_END,
};

/* The hold queues are sized at start. */
static const struct conf_key orphans_keys[] = {
    NUMBER("wait_ms", conf_set_u64, KIND_U64, orphans_wait_ms, "50", 0, CONF_WAIT_MAX_MS, 0),
    NUMBER("max_held", conf_set_size, KIND_SIZE, orphans_max_held, "100000", 0, CONF_COUNT_MAX, 0),
    NUMBER("max_bytes", conf_set_size, KIND_SIZE, orphans_max_bytes, "67108864", HEP3_MAX_LEN,
           CONF_HELD_BYTES_MAX, 0),
    KEY_END,
};

/* What sizes sockets, descriptors and stored keys needs a restart; timeouts and queues do not. */
static const struct conf_key limits_keys[] = {
    NUMBER("call_id_max", conf_set_size, KIND_SIZE, call_id_max, "256", CONF_CALL_ID_MIN, HEP3_MAX_LEN, 0),
    NUMBER("tcp_max_connections", conf_set_size, KIND_SIZE, tcp_max_connections, "1024", 1, CONF_TCP_CONN_MAX,
           0),
    NUMBER("fd_reserve", conf_set_size, KIND_SIZE, fd_reserve, "64", 0, CONF_FD_RESERVE_MAX, 0),
    NUMBER("tcp_max_frame", conf_set_size, KIND_SIZE, tcp_max_frame, "65535", HEP3_HDR_LEN, HEP3_MAX_LEN,
           KEY_RELOAD),
    NUMBER("tcp_idle_timeout", conf_set_duration, KIND_DURATION, tcp_idle_timeout_ms, "10m", MS_PER_SECOND,
           CONF_IDLE_MAX_MS, KEY_RELOAD),
    NUMBER("tls_handshake_timeout", conf_set_duration, KIND_DURATION, tls_handshake_timeout_ms, "5s", 1,
           CONF_TIMEOUT_MAX_MS, KEY_RELOAD),
    NUMBER("udp_batch", conf_set_size, KIND_SIZE, udp_batch, "64", 1, CONF_UDP_BATCH_MAX, 0),
    NUMBER("udp_rcvbuf", conf_set_size, KIND_SIZE, udp_rcvbuf, "8388608", 0, CONF_RCVBUF_MAX, 0),
    NUMBER("udp_coalesce_us", conf_set_u64, KIND_U64, udp_coalesce_us, "250", 0, CONF_COALESCE_MAX_US,
           KEY_RELOAD),
    NUMBER("tcp_queue_bytes", conf_set_size, KIND_SIZE, tcp_queue_bytes, "4194304", HEP3_MAX_LEN,
           CONF_QUEUE_MAX, KEY_RELOAD),
    NUMBER("reconnect_min", conf_set_duration, KIND_DURATION, reconnect_min_ms, "100ms", 1,
           CONF_TIMEOUT_MAX_MS, KEY_RELOAD),
    NUMBER("reconnect_max", conf_set_duration, KIND_DURATION, reconnect_max_ms, "5s", 1, CONF_TIMEOUT_MAX_MS,
           KEY_RELOAD),
    NUMBER("connect_timeout", conf_set_duration, KIND_DURATION, connect_timeout_ms, "2s", 1,
           CONF_TIMEOUT_MAX_MS, KEY_RELOAD),
    /* outbound TCP: the kernel takes keepalive times in whole seconds */
    NUMBER("tcp_keepalive_idle", conf_set_duration, KIND_DURATION, tcp_keepalive_idle_ms, "30s", MS_PER_SECOND,
           CONF_KEEPALIVE_MAX_MS, KEY_RELOAD),
    NUMBER("tcp_keepalive_interval", conf_set_duration, KIND_DURATION, tcp_keepalive_interval_ms, "5s",
           MS_PER_SECOND, CONF_KEEPALIVE_MAX_MS, KEY_RELOAD),
    NUMBER("tcp_keepalive_count", conf_set_size, KIND_SIZE, tcp_keepalive_count, "3", 1,
           CONF_KEEPALIVE_COUNT_MAX, KEY_RELOAD),
    NUMBER("tcp_user_timeout", conf_set_duration, KIND_DURATION, tcp_user_timeout_ms, "20s", 0,
           CONF_TIMEOUT_MAX_MS, KEY_RELOAD),
    NUMBER("udp_refusals_down", conf_set_size, KIND_SIZE, udp_refusals_down, "3", 1, CONF_COUNT_MAX, KEY_RELOAD),
    NUMBER("drain_timeout", conf_set_duration, KIND_DURATION, drain_timeout_ms, "2s", 0, CONF_TIMEOUT_MAX_MS,
           KEY_RELOAD),
    NUMBER("dns_refresh", conf_set_duration, KIND_DURATION, dns_refresh_ms, "60s", MS_PER_SECOND,
           CONF_IDLE_MAX_MS, KEY_RELOAD),
    /* the window of every destination's dedup, one table for the instance */
    NUMBER("dedup_entries", conf_set_size, KIND_SIZE, dedup_entries, "1048576", CONF_DEDUP_ENTRIES_MIN,
           CONF_COUNT_MAX, 0),
    KEY_END,
};

/* Where the log goes is opened at start; how much is logged can change. */
static const struct conf_key log_keys[] = {
    { .name = "level", .set = conf_set_enum, .kind = KIND_ENUM, .offset = CONF_FIELD(struct conf, log_level),
      .dflt = "info", .names = level_names, .flags = KEY_RELOAD },
    NUMBER("interval", conf_set_duration, KIND_DURATION, log_interval_ms, "10s", 0, CONF_LOG_MAX_MS, KEY_RELOAD),
    NUMBER("stats_interval", conf_set_duration, KIND_DURATION, stats_interval_ms, "0", 0, CONF_LOG_MAX_MS,
           KEY_RELOAD),
    { .name = "target", .set = conf_set_enum, .kind = KIND_ENUM, .offset = CONF_FIELD(struct conf, log_target),
      .dflt = "stderr", .names = log_target_names },
    { .name = "facility", .set = conf_set_enum, .kind = KIND_ENUM,
      .offset = CONF_FIELD(struct conf, log_facility), .dflt = "daemon", .names = facility_names },
    KEY_END,
};

/* The HTTP server is started once; nothing here changes at reload. */
static const struct conf_key metrics_keys[] = {
    /* absent: no HTTP server */
    { .name = "listen", .set = conf_set_host_port, .kind = KIND_ADDR,
      .offset = CONF_FIELD(struct conf, metrics_listen) },
    NUMBER("health_timeout", conf_set_duration, KIND_DURATION, metrics_health_timeout_ms, "5s", MS_PER_SECOND,
           CONF_WAIT_LONG_MS, 0),
    NUMBER("max_connections", conf_set_size, KIND_SIZE, metrics_max_connections, "16", 1, CONF_HTTP_CONN_MAX,
           0),
    NUMBER("timeout", conf_set_duration, KIND_DURATION, metrics_timeout_ms, "10s", MS_PER_SECOND,
           CONF_WAIT_LONG_MS, 0),
    KEY_END,
};

/* The control socket is bound once; nothing here changes at reload. */
static const struct conf_key control_keys[] = {
    /* absent: no control socket */
    { .name = "socket", .set = conf_set_socket_path, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf, control_socket) },
    { .name = "mode", .set = conf_set_mode, .kind = KIND_MODE, .offset = CONF_FIELD(struct conf, control_mode),
      .dflt = "0660" },
    NUMBER("max_clients", conf_set_size, KIND_SIZE, control_max_clients, "8", 1, CONF_CLIENTS_MAX, 0),
    NUMBER("timeout", conf_set_duration, KIND_DURATION, control_timeout_ms, "5s", MS_PER_SECOND,
           CONF_WAIT_LONG_MS, 0),
    NUMBER("max_line", conf_set_size, KIND_SIZE, control_max_line, "4096", CONF_LINE_MIN, CONF_LINE_LIMIT, 0),
    NUMBER("tap_buffer", conf_set_size, KIND_SIZE, control_tap_buffer, "1048576", CONF_TAP_BUFFER_MIN,
           CONF_QUEUE_MAX, 0),
    KEY_END,
};

#define TLS_FIELD(f) CONF_FIELD(struct conf_tls, f)

/* The keys both kinds of tls: section have; the files are read again at every reload. */
#define TLS_COMMON_KEYS                                                                                        \
    /* absent: a listener needs one (its own or the top-level one); a target presents none */                 \
    { .name = "cert", .set = conf_set_path, .kind = KIND_STRING, .offset = TLS_FIELD(cert), .flags = KEY_RELOAD }, \
    { .name = "key", .set = conf_set_path, .kind = KIND_STRING, .offset = TLS_FIELD(key), .flags = KEY_RELOAD },   \
    /* absent: a listener trusts no client certificate, a target the system's CAs */                         \
    { .name = "ca", .set = conf_set_path, .kind = KIND_STRING, .offset = TLS_FIELD(ca), .flags = KEY_RELOAD },     \
    { .name = "min_version", .set = conf_set_enum, .kind = KIND_ENUM, .offset = TLS_FIELD(min_version),            \
      .dflt = "1.2", .names = tls_version_names, .flags = KEY_RELOAD }

/* tls: at the top (every tls: listener's default) and a listener's own. */
static const struct conf_key listener_tls_keys[] = {
    TLS_COMMON_KEYS,
    { .name = "require_client_cert", .set = conf_set_bool, .kind = KIND_BOOL,
      .offset = TLS_FIELD(require_client_cert), .dflt = "false", .flags = KEY_RELOAD },
    /* absent: a certificate may claim any capture id */
    { .name = "client_capture_ids", .set = conf_set_subject_bindings, .kind = KIND_SUBJECT_BINDINGS,
      .offset = TLS_FIELD(client_capture_ids), .count_offset = TLS_FIELD(nclient_capture_ids),
      .flags = KEY_RELOAD },
    KEY_END,
};

const struct conf_key conf_listener_tls_key = {
    .name = "tls", .set = conf_set_tls, .kind = KIND_SECTION, .sub = listener_tls_keys, .flags = KEY_RELOAD,
};

/* destinations.NAME.tls: how its tls: targets are spoken to. */
static const struct conf_key dest_tls_keys[] = {
    TLS_COMMON_KEYS,
    { .name = "verify", .set = conf_set_bool, .kind = KIND_BOOL, .offset = TLS_FIELD(verify), .dflt = "true",
      .flags = KEY_RELOAD },
    /* absent: the target's host name, or its address */
    { .name = "server_name", .set = conf_set_token, .kind = KIND_STRING, .offset = TLS_FIELD(server_name),
      .flags = KEY_RELOAD },
    KEY_END,
};

#define SPOOL_FIELD(f) CONF_FIELD(struct conf_spool, f)

/* destinations.NAME.dedup: absent, no deduplication. */
static const struct conf_key dedup_keys[] = {
    { .name = "window_ms", .set = conf_set_u64, .kind = KIND_U64, .offset = CONF_FIELD(struct conf_dest, dedup_window_ms),
      .min = 1, .max = CONF_DEDUP_WINDOW_MAX_MS, .flags = KEY_REQUIRED | KEY_RELOAD },
    /* the instances sharing the Redis store share the window */
    { .name = "shared", .set = conf_set_bool, .kind = KIND_BOOL, .offset = CONF_FIELD(struct conf_dest, dedup_shared),
      .dflt = "false", .flags = KEY_RELOAD },
    KEY_END,
};

/* destinations.NAME.spool; set_destinations() checks it needs a tcp: target and its own dir. */
static const struct conf_key spool_keys[] = {
    { .name = "dir", .set = conf_set_path, .kind = KIND_STRING, .offset = SPOOL_FIELD(dir),
      .flags = KEY_REQUIRED | KEY_RELOAD },
    { .name = "max_bytes", .set = conf_set_size, .kind = KIND_SIZE, .offset = SPOOL_FIELD(max_bytes),
      .dflt = "1073741824", .min = CONF_SPOOL_BYTES_MIN, .max = CONF_SPOOL_BYTES_MAX, .flags = KEY_RELOAD },
    { .name = "max_age", .set = conf_set_duration, .kind = KIND_DURATION, .offset = SPOOL_FIELD(max_age_ms),
      .dflt = "24h", .min = MS_PER_SECOND, .max = CONF_SPOOL_AGE_MAX_MS, .flags = KEY_RELOAD },
    { .name = "replay_rate", .set = conf_set_u64, .kind = KIND_U64, .offset = SPOOL_FIELD(replay_rate),
      .dflt = "20000", .min = 1, .max = CONF_SPOOL_RATE_MAX, .flags = KEY_RELOAD },
    { .name = "max_unwritten", .set = conf_set_size, .kind = KIND_SIZE, .offset = SPOOL_FIELD(max_unwritten),
      .dflt = "16777216", .min = CONF_SPOOL_BYTES_MIN, .max = CONF_QUEUE_MAX, .flags = KEY_RELOAD },
    KEY_END,
};

/* A destination changes at reload as a whole; every field is compared. */
static const struct conf_key dest_keys[] = {
    { .name = "targets", .set = conf_set_targets, .kind = KIND_ADDRS, .offset = CONF_FIELD(struct conf_dest, targets),
      .count_offset = CONF_FIELD(struct conf_dest, ntargets), .flags = KEY_REQUIRED | KEY_NONEMPTY | KEY_RELOAD },
    { .name = "balance", .set = conf_set_enum, .kind = KIND_ENUM, .offset = CONF_FIELD(struct conf_dest, balance),
      .dflt = "all", .names = balance_names, .flags = KEY_RELOAD },
    /* absent: 0, forward as received */
    { .name = "hep_version", .set = conf_set_hep_version, .kind = KIND_INT,
      .offset = CONF_FIELD(struct conf_dest, hep_version), .flags = KEY_RELOAD },
    /* absent: keep the packet's own */
    { .name = "capture_id", .set = conf_set_dest_capture_id, .kind = KIND_CAPTURE_ID,
      .offset = CONF_FIELD(struct conf_dest, capture_id), .min = 0, .max = UINT32_MAX, .flags = KEY_RELOAD },
    { .name = "node_name", .set = conf_set_string, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_dest, node_name), .flags = KEY_RELOAD },
    { .name = "auth_key", .set = conf_set_string, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_dest, auth_key), .flags = KEY_RELOAD | KEY_SECRET },
    /* see set_destinations(): not with auth_key */
    { .name = "strip_auth_key", .set = conf_set_bool, .kind = KIND_BOOL,
      .offset = CONF_FIELD(struct conf_dest, strip_auth_key), .dflt = "false", .flags = KEY_RELOAD },
    { .name = "max_packet", .set = conf_set_size, .kind = KIND_SIZE, .offset = CONF_FIELD(struct conf_dest, max_packet),
      .dflt = "65535", .min = HEP3_HDR_LEN, .max = HEP3_MAX_LEN, .flags = KEY_RELOAD },
    /* absent: no spool */
    { .name = "spool", .set = conf_set_section, .kind = KIND_SECTION, .offset = CONF_FIELD(struct conf_dest, spool),
      .sub = spool_keys, .flags = KEY_RELOAD },
    /* absent: every copy is sent; the section's keys sit in struct conf_dest itself */
    { .name = "dedup", .set = conf_set_section, .kind = KIND_SECTION, .sub = dedup_keys, .flags = KEY_RELOAD },
    /* absent: no limit */
    { .name = "max_new_calls_per_s", .set = conf_set_u64, .kind = KIND_U64,
      .offset = CONF_FIELD(struct conf_dest, max_new_calls_per_s), .min = 1, .max = CONF_COUNT_MAX,
      .flags = KEY_RELOAD },
    /* absent: verify the targets against the system's CAs and their names, present no certificate */
    { .name = "tls", .set = conf_set_tls, .kind = KIND_SECTION, .offset = CONF_FIELD(struct conf_dest, tls),
      .sub = dest_tls_keys, .flags = KEY_RELOAD },
    KEY_END,
};

#define MATCH_LIST(key, setter, kd, f, nf) \
    { .name = key, .set = setter, .kind = kd, .offset = CONF_FIELD(struct conf_match, f), \
      .count_offset = CONF_FIELD(struct conf_match, nf), .flags = KEY_NONEMPTY | KEY_MATCH | KEY_RELOAD }

static const struct conf_key match_keys[] = {
    MATCH_LIST("method", conf_set_methods, KIND_STRINGS, methods, nmethods),
    MATCH_LIST("proto", conf_set_protos, KIND_PROTOS, protos, nprotos),
    MATCH_LIST("capture_id", conf_set_capture_ids, KIND_CAPTURE_IDS, capture_ids, ncapture_ids),
    MATCH_LIST("src", conf_set_cidrs, KIND_CIDRS, src, nsrc),
    MATCH_LIST("dst", conf_set_cidrs, KIND_CIDRS, dst, ndst),
    MATCH_LIST("status", conf_set_statuses, KIND_STATUSES, status, nstatus),
    /* the origin keys (ORIGIN_KEYS below): judged on the call's origin request */
    MATCH_LIST("ruri_user", conf_set_patterns, KIND_PATTERNS, ruri_user, nruri_user),
    MATCH_LIST("ruri_domain", conf_set_domain_patterns, KIND_PATTERNS, ruri_domain, nruri_domain),
    MATCH_LIST("from_user", conf_set_patterns, KIND_PATTERNS, from_user, nfrom_user),
    MATCH_LIST("from_domain", conf_set_domain_patterns, KIND_PATTERNS, from_domain, nfrom_domain),
    MATCH_LIST("to_user", conf_set_patterns, KIND_PATTERNS, to_user, nto_user),
    MATCH_LIST("to_domain", conf_set_domain_patterns, KIND_PATTERNS, to_domain, nto_domain),
    MATCH_LIST("user_agent", conf_set_patterns, KIND_PATTERNS, user_agent, nuser_agent),
    MATCH_LIST("header", conf_set_header_matches, KIND_HEADERS, headers, nheaders),
    MATCH_LIST("origin_src", conf_set_cidrs, KIND_CIDRS, origin_src, norigin_src),
    MATCH_LIST("origin_dst", conf_set_cidrs, KIND_CIDRS, origin_dst, norigin_dst),
    KEY_END,
};

/* The first of the match keys judged on the origin request (match_keys from here on). */
#define ORIGIN_KEYS "ruri_user"

/* Whether the route has an origin key: it gets a bit in each call's origin mask. */
static bool route_has_origin_keys(const struct conf_route *r)
{
    bool origin = false;
    for (const struct conf_key *k = match_keys; k->name != NULL; k++) {
        origin = origin || strcmp(k->name, ORIGIN_KEYS) == 0;
        if (origin && *(const size_t *)conf_field_at((void *)&r->match, k->count_offset) > 0)
            return true;
    }
    return false;
}

/*
 * Numbers the routes with origin keys (at most CONF_ORIGIN_ROUTES_MAX) and
 * the destinations with max_new_calls_per_s (at most CONF_RATE_DESTS_MAX),
 * and signs them: the names and origin keys of those routes, and the
 * destinations' names, in order.  A call stored under another signature was
 * judged by other rules (a reload).
 */
void conf_origin_headers(struct conf *c)
{
    memset(&c->origin_header_first, 0, sizeof c->origin_header_first);
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct conf_match *m = &c->routes[i].match;
        if (!c->routes[i].origin)
            continue;
        for (size_t k = 0; k < m->nheaders; k++)
            if (m->headers[k].name != NULL && m->headers[k].name[0] != '\0')
                sip_byte_set_add_nocase(&c->origin_header_first, (unsigned char)m->headers[k].name[0]);
        if (m->nuser_agent > 0)
            sip_byte_set_add_nocase(&c->origin_header_first, (unsigned char)SIP_HEADER_USER_AGENT[0]);
    }
}

static void number_call_bits(struct parse *p, const struct node *root, struct conf *c)
{
    const struct node *n = conf_map_get(root, "routes");
    uint64_t h = HASH_FNV64_OFFSET;
    char buf[CONF_LINE_MAX];
    for (size_t i = 0; i < c->nroutes; i++) {
        struct conf_route *r = &c->routes[i];
        if (!route_has_origin_keys(r))
            continue;
        if (c->norigin_routes == CONF_ORIGIN_ROUTES_MAX) {
            size_t old = conf_path_push_key(p, "routes", strlen("routes"));
            size_t old2 = conf_path_push_index(p, i);
            conf_error_key(p, n != NULL && i < n->nitems ? n->items[i] : root,
                           "is one route with origin keys too many (at most %d)", CONF_ORIGIN_ROUTES_MAX);
            conf_path_pop(p, old2);
            conf_path_pop(p, old);
            continue;
        }
        r->origin = true;
        r->origin_bit = (unsigned)c->norigin_routes++;
        h = hash_fnv1a64(h, r->name != NULL ? r->name : "", r->name != NULL ? strlen(r->name) + 1 : 1);
        bool origin = false;
        for (const struct conf_key *k = match_keys; k->name != NULL; k++) {
            origin = origin || strcmp(k->name, ORIGIN_KEYS) == 0;
            if (!origin)
                continue;
            struct text t = { buf, sizeof buf, 0 };
            buf[0] = '\0';
            conf_text_add(&t, "%s=", k->name);
            conf_value_format(&t, k, &r->match, c);
            h = hash_fnv1a64(h, buf, t.len + 1);
        }
    }
    conf_origin_headers(c);
    /* a call whose origin matched no route with origin keys skips them all at once */
    for (size_t i = c->nroutes, next = c->nroutes; i-- > 0;) {
        c->routes[i].next_plain = next;
        if (!c->routes[i].origin)
            next = i;
    }
    for (size_t i = 0; i < c->ndests; i++) {
        struct conf_dest *d = &c->dests[i];
        if (d->name != NULL)
            d->dedup_id = (uint32_t)hash_fnv1a64(HASH_FNV64_OFFSET, d->name, strlen(d->name));
        c->dedup_any = c->dedup_any || d->dedup_window_ms > 0;
        if (d->max_new_calls_per_s == 0)
            continue;
        if (c->nrate_dests == CONF_RATE_DESTS_MAX) {
            conf_error_file(p, p->dests_node != NULL ? p->dests_node->mark : root->mark,
                            "destinations: more than %d have max_new_calls_per_s", CONF_RATE_DESTS_MAX);
            break;
        }
        d->rate_bit = (unsigned)c->nrate_dests++;
    }
    /* the destinations' names too: a call's refused mask is by their order */
    for (size_t i = 0; c->nrate_dests > 0 && i < c->ndests; i++)
        if (c->dests[i].name != NULL)     /* NULL: a bad name, reported (the file will not load) */
            h = hash_fnv1a64(h, c->dests[i].name, strlen(c->dests[i].name) + 1);
    c->origin_signature = c->norigin_routes > 0 || c->nrate_dests > 0 ? (uint32_t)(hash_fmix64(h) | 1u) : 0;
}

static const struct conf_key route_keys[] = {
    /* absent: "route-N", N counting from 1 (see set_routes); routes are paired by it at reload */
    { .name = "name", .set = conf_set_name, .kind = KIND_STRING, .offset = CONF_FIELD(struct conf_route, name),
      .flags = KEY_RELOAD },
    /* absent: matches every call */
    { .name = "match", .set = conf_set_section, .kind = KIND_SECTION,
      .offset = CONF_FIELD(struct conf_route, match), .sub = match_keys, .flags = KEY_RELOAD },
    /* absent: needs drop: true */
    { .name = "to", .set = conf_set_dest_refs, .kind = KIND_DEST_REFS, .offset = CONF_FIELD(struct conf_route, to),
      .count_offset = CONF_FIELD(struct conf_route, nto), .flags = KEY_RELOAD },
    /* read into to (none) */
    { .name = "drop", .set = conf_set_drop, .kind = KIND_NONE, .flags = KEY_RELOAD },
    /* the share of calls the route may match, by a hash of the Call-ID */
    { .name = "sample", .set = conf_set_fraction, .kind = KIND_FRACTION, .offset = CONF_FIELD(struct conf_route, sample),
      .dflt = "1", .flags = KEY_RELOAD },
    KEY_END,
};

/* sources: the top-level section and a listener's own; all of it changes at reload. */
static const struct conf_key sources_keys[] = {
    /* absent: every source */
    { .name = "allow", .set = conf_set_cidrs, .kind = KIND_CIDRS, .offset = CONF_FIELD(struct conf_sources, allow),
      .count_offset = CONF_FIELD(struct conf_sources, nallow), .flags = KEY_NONEMPTY | KEY_RELOAD },
    /* absent (and no auth_keys_file): no key required */
    { .name = "auth_keys", .set = conf_set_auth_keys, .kind = KIND_STRINGS,
      .offset = CONF_FIELD(struct conf_sources, auth_keys), .count_offset = CONF_FIELD(struct conf_sources, nauth_keys),
      .flags = KEY_NONEMPTY | KEY_RELOAD | KEY_SECRET },
    /* read by conf_set_sources(), its keys appended to auth_keys */
    { .name = "auth_keys_file", .set = conf_set_path, .kind = KIND_STRING,
      .offset = CONF_FIELD(struct conf_sources, auth_keys_file), .flags = KEY_RELOAD },
    /* absent: any source may claim any capture id */
    { .name = "capture_ids", .set = conf_set_capture_bindings, .kind = KIND_BINDINGS,
      .offset = CONF_FIELD(struct conf_sources, capture_ids),
      .count_offset = CONF_FIELD(struct conf_sources, ncapture_ids), .flags = KEY_RELOAD },
    KEY_END,
};

const struct conf_key conf_listener_sources_key = {
    .name = "sources", .set = conf_set_sources, .kind = KIND_SECTION, .sub = sources_keys, .flags = KEY_RELOAD,
};

/* listen: items in map form; conf_set_listen() reads them. */
const struct conf_key conf_listener_keys[] = {
    { .name = "address", .kind = KIND_NONE },
    { .name = "sources", .kind = KIND_NONE },
    { .name = "tls", .kind = KIND_NONE },
    KEY_END,
};

static void set_destinations(struct parse *p, struct node *n, const struct conf_key *k, void *base);
static void set_routes(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/*
 * The order matters: listen before destinations (loop check), destinations
 * before routes.  It is also the order in which reload reports changes.
 */
static const struct conf_key top_keys[] = {
    { .name = "listen", .set = conf_set_listen, .kind = KIND_ADDRS, .offset = CONF_FIELD(struct conf, listen),
      .count_offset = CONF_FIELD(struct conf, nlisten), .flags = KEY_REQUIRED | KEY_NONEMPTY | KEY_RELOAD },
    /* absent: every source, no key, any capture id (a listener's own section replaces it) */
    { .name = "sources", .set = conf_set_sources, .kind = KIND_SECTION, .offset = CONF_FIELD(struct conf, sources),
      .sub = sources_keys, .flags = KEY_RELOAD },
    /* absent: tls: listeners need their own */
    { .name = "tls", .set = conf_set_tls, .kind = KIND_SECTION, .offset = CONF_FIELD(struct conf, tls),
      .sub = listener_tls_keys, .flags = KEY_RELOAD },
    NUMBER("workers", conf_set_unsigned, KIND_UNSIGNED, workers, "1", 1, CONF_WORKERS_MAX, 0),
    /* absent: keep the user heprouter was started as (-u overrides) */
    { .name = "user", .set = conf_set_token, .kind = KIND_STRING, .offset = CONF_FIELD(struct conf, user) },
    /* absent: the user's primary group */
    { .name = "group", .set = conf_set_token, .kind = KIND_STRING, .offset = CONF_FIELD(struct conf, group) },
    { .name = "allow_root", .set = conf_set_bool, .kind = KIND_BOOL, .offset = CONF_FIELD(struct conf, allow_root),
      .dflt = "false" },
    { .name = "store", .set = conf_set_section, .kind = KIND_SECTION, .sub = store_keys },
    { .name = "ttl", .set = conf_set_section, .kind = KIND_SECTION, .sub = ttl_keys },
    { .name = "orphans", .set = conf_set_section, .kind = KIND_SECTION, .sub = orphans_keys },
    { .name = "limits", .set = conf_set_section, .kind = KIND_SECTION, .sub = limits_keys },
    { .name = "log", .set = conf_set_section, .kind = KIND_SECTION, .sub = log_keys },
    /* absent: no /metrics, /healthz, /readyz */
    { .name = "metrics", .set = conf_set_section, .kind = KIND_SECTION, .sub = metrics_keys },
    /* absent: no control socket */
    { .name = "control", .set = conf_set_section, .kind = KIND_SECTION, .sub = control_keys },
    { .name = "destinations", .set = set_destinations, .kind = KIND_DESTS, .flags = KEY_REQUIRED | KEY_RELOAD },
    /* absent: no routes, every call takes default */
    { .name = "routes", .set = set_routes, .kind = KIND_ROUTES, .flags = KEY_RELOAD },
    /* absent: calls no route matched are discarded */
    { .name = "default", .set = conf_set_dest_refs, .kind = KIND_DEST_REFS,
      .offset = CONF_FIELD(struct conf, default_to), .count_offset = CONF_FIELD(struct conf, ndefault_to),
      .flags = KEY_RELOAD },
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
 * Opens path, the value n of key `name`, with the key pushed on p->path
 * (*old restores it: the caller pops once done); NULL after reporting why.
 */
static FILE *open_key_file(struct parse *p, const struct node *n, const char *name, const char *path, size_t *old)
{
    *old = conf_path_push_key(p, name, strlen(name));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        conf_error_value(p, n, "cannot open: %s", strerror(errno));
        conf_path_pop(p, *old);
    }
    return f;
}

/*
 * The first line of store.redis.password_file, without its line end (\n or
 * \r\n), becomes the password.  Errors name the file, never its content.
 */
static void read_password(struct parse *p, const struct node *n, struct conf_redis *r)
{
    size_t old;
    FILE *f = open_key_file(p, n, "password_file", r->password_file, &old);
    if (f == NULL)
        return;
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

/* A spool keeps what stream targets cannot take, so it needs one; two spools never share a directory. */
static void check_spool(struct parse *p, struct node *map, const struct conf *c, size_t di)
{
    const struct conf_dest *d = &c->dests[di];
    struct node *spool = conf_map_get(map, "spool");
    if (d->spool.dir == NULL || spool == NULL)
        return;
    if (!conf_dest_has_tcp(d))
        conf_error_key(p, spool, "needs a tcp: target (UDP targets never wait)");
    for (size_t i = 0; i < di; i++)
        if (c->dests[i].spool.dir != NULL && strcmp(c->dests[i].spool.dir, d->spool.dir) == 0)
            conf_error_value(p, conf_map_get(spool, "dir"), "is the spool of destination %s too", c->dests[i].name);
}

static void set_destinations(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf *c = base;
    (void)k;
    if (!conf_expect_mapping(p, n)) {
        p->dests_broken = true;
        return;
    }
    size_t npairs = conf_named_pairs(p, n);
    if (npairs == 0)
        return;
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
        if (d->strip_auth_key && d->auth_key != NULL)
            error_excludes(p, n->items[2 * i + 1], "strip_auth_key", "auth_key (which replaces the key anyway)");
        check_spool(p, n->items[2 * i + 1], c, i);
        if (d->dedup_shared && !p->store_type_bad && c->store_type != CONF_STORE_REDIS) {
            struct node *shared = conf_map_get(conf_map_get(n->items[2 * i + 1], "dedup"), "shared");
            size_t old2 = conf_path_push_key(p, "dedup", strlen("dedup"));
            size_t old3 = conf_path_push_key(p, "shared", strlen("shared"));
            conf_error_key(p, shared != NULL ? shared : n->items[2 * i + 1], "is only used with type: redis");
            conf_path_pop(p, old3);
            conf_path_pop(p, old2);
        }
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
        r->line = item->mark.line;
        r->col = item->mark.col;
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
    for (size_t i = 0; i < c->nroutes; i++)
        c->sampling = c->sampling || (c->routes[i].sample > 0 && c->routes[i].sample < CONF_MILLION);
}

int conf_rate_bit_after(const struct conf *old, int bit, const struct conf *next)
{
    for (size_t i = 0; i < old->ndests; i++) {
        const struct conf_dest *was = &old->dests[i];
        if (was->max_new_calls_per_s == 0 || (int)was->rate_bit != bit)
            continue;
        for (size_t j = 0; j < next->ndests; j++)
            if (next->dests[j].max_new_calls_per_s > 0 && strcmp(next->dests[j].name, was->name) == 0)
                return (int)next->dests[j].rate_bit;
        return -1;
    }
    return -1;
}

int conf_origin_bit_after(const struct conf *old, int bit, const struct conf *next)
{
    const struct conf_route *was = NULL;
    for (size_t i = 0; i < old->nroutes && was == NULL; i++)
        if (old->routes[i].origin && (int)old->routes[i].origin_bit == bit)
            was = &old->routes[i];
    if (was == NULL)
        return -1;
    struct conf_pair confs = { old, next };
    for (size_t i = 0; i < next->nroutes; i++) {
        const struct conf_route *now = &next->routes[i];
        if (!now->origin || strcmp(now->name, was->name) != 0)
            continue;
        bool origin = false, same = true;
        for (const struct conf_key *k = match_keys; k->name != NULL && same; k++) {
            origin = origin || strcmp(k->name, ORIGIN_KEYS) == 0;
            same = !origin || conf_value_equal(k, &was->match, &now->match, &confs);
        }
        return same ? (int)now->origin_bit : -1;
    }
    return -1;
}

/* ---- sources ------------------------------------------------------------------- */

/* Appends key (len bytes, no NUL) to s->auth_keys. */
static bool add_auth_key(struct parse *p, struct conf_sources *s, const char *key, size_t len)
{
    char **more = conf_realloc(s->auth_keys, (s->nauth_keys + 1) * sizeof *more);
    char *copy = more != NULL ? conf_malloc(len + 1) : NULL;
    if (more != NULL)
        s->auth_keys = more;
    if (copy == NULL) {
        p->nomem = true;
        return false;
    }
    memcpy(copy, key, len);
    copy[len] = '\0';
    s->auth_keys[s->nauth_keys++] = copy;
    return true;
}

/*
 * sources.auth_keys_file: one key per line (a \r before the \n is cut);
 * empty lines and lines starting with '#' are skipped.  Errors name the
 * file and the line, never a key.  A file without keys is an error: an
 * empty list would let every sender in.
 */
static void read_auth_keys(struct parse *p, const struct node *n, struct conf_sources *s)
{
    size_t old;
    FILE *f = open_key_file(p, n, "auth_keys_file", s->auth_keys_file, &old);
    if (f == NULL)
        return;
    char line[CONF_STRING_MAX + 2];     /* + 1: a \r to cut; + 1: the NUL */
    size_t len = 0, lineno = 1, keys = 0, total = 0;
    bool longer = false, nul = false, bad = false;
    int c;
    for (;;) {
        c = getc(f);
        if (c != EOF && ++total > CONF_FILE_MAX) {
            conf_error_value(p, n, "is larger than %d bytes", CONF_FILE_MAX);
            bad = true;
            break;
        }
        if (c != EOF && c != '\n') {
            if (len < sizeof line - 1)
                line[len++] = (char)c;
            else
                longer = true;
            nul = nul || c == '\0';
            continue;
        }
        if (len > 0 && line[len - 1] == '\r' && !longer)
            len--;
        if (longer || len > CONF_STRING_MAX) {
            conf_error_value(p, n, "line %zu: a key is at most %u bytes", lineno, CONF_STRING_MAX);
            bad = true;
        } else if (nul) {
            conf_error_value(p, n, "line %zu: has a NUL byte", lineno);
            bad = true;
        } else if (len > 0 && line[0] != '#') {
            if (!add_auth_key(p, s, line, len))
                break;
            keys++;
        }
        if (c == EOF)
            break;
        len = 0;
        longer = nul = false;
        lineno++;
    }
    int failed = ferror(f), saved = errno;
    fclose(f);
    explicit_bzero(line, sizeof line);
    if (failed)
        conf_error_value(p, n, "cannot read: %s", strerror(saved));
    else if (keys == 0 && !bad && !p->nomem)
        conf_error_value(p, n, "has no keys (one per line; lines starting with # are comments)");
    conf_path_pop(p, old);
}

void conf_set_sources(struct parse *p, struct node *n, const struct conf_key *k, void *base)
{
    struct conf_sources *s = conf_field_at(base, k->offset);
    size_t before = p->nerrors + p->ndropped;
    conf_set_section(p, n, k, base);
    if (s->auth_keys_file != NULL && p->nerrors + p->ndropped == before)
        read_auth_keys(p, conf_map_get(n, "auth_keys_file"), s);
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

/* The rules one tls: section keeps by itself (n: the section, or NULL when absent). */
static void check_tls_section(struct parse *p, struct node *n, const struct conf_tls *t)
{
    if (n == NULL || !t->set)
        return;
    if ((t->cert == NULL) != (t->key == NULL))
        conf_error_key(p, n, t->cert == NULL ? "has key but no cert" : "has cert but no key");
    if (t->require_client_cert && t->ca == NULL)
        conf_error_key(p, n, "needs ca with require_client_cert (the CAs client certificates must chain to)");
    if (t->nclient_capture_ids > 0 && !t->require_client_cert)
        conf_error_key(p, conf_map_get(n, "client_capture_ids"), "needs require_client_cert: true");
}

/*
 * A tls: listener needs a certificate and its key (its own tls: or the
 * top-level one); a listener's own tls: is for a tls: address only, a
 * destination's for tls: targets.
 */
static void check_tls(struct parse *p, struct node *root, const struct conf *c)
{
    struct node *listen = conf_map_get(root, "listen");
    size_t old = conf_path_push_key(p, "tls", strlen("tls"));
    check_tls_section(p, conf_map_get(root, "tls"), &c->tls);
    conf_path_pop(p, old);
    old = conf_path_push_key(p, "listen", strlen("listen"));
    for (size_t i = 0; c->listen_tls != NULL && i < c->nlisten; i++) {
        struct node *item = listen != NULL && listen->type == NODE_SEQUENCE && i < listen->nitems
                                ? listen->items[i] : listen;
        struct node *own = item != NULL && item->type == NODE_MAPPING ? conf_map_get(item, "tls") : NULL;
        size_t old2 = conf_path_push_index(p, i);
        const struct conf_tls *t = conf_listen_tls(c, i);
        if (c->listen[i].tls && (t->cert == NULL || t->key == NULL) && item != NULL)
            conf_error_value(p, item, "needs a certificate: tls: { cert:, key: } (its own or the top-level one)");
        if (!c->listen[i].tls && c->listen_tls[i].set && c->listen[i].transport != 0)
            conf_error_key(p, own, "is only used with a tls: address");
        size_t old3 = conf_path_push_key(p, "tls", strlen("tls"));
        check_tls_section(p, own, &c->listen_tls[i]);
        conf_path_pop(p, old3);
        conf_path_pop(p, old2);
    }
    conf_path_pop(p, old);
    struct node *dests = conf_map_get(root, "destinations");
    for (size_t i = 0; dests != NULL && dests->type == NODE_MAPPING && i < c->ndests; i++) {
        const struct conf_dest *d = &c->dests[i];
        struct node *own = conf_map_get(dests->items[2 * i + 1], "tls");
        if (own == NULL || d->name == NULL)
            continue;
        old = conf_path_push_key(p, "destinations", strlen("destinations"));
        size_t old2 = conf_path_push_key(p, d->name, strlen(d->name));
        size_t old3 = conf_path_push_key(p, "tls", strlen("tls"));
        bool any = false;
        for (size_t j = 0; j < d->ntargets; j++)
            any |= d->targets[j].tls;
        if (!any)
            conf_error_key(p, own, "is only used with tls: targets");
        check_tls_section(p, own, &d->tls);
        conf_path_pop(p, old3);
        conf_path_pop(p, old2);
        conf_path_pop(p, old);
    }
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
        check_tls(&p, root, conf);
        number_call_bits(&p, root, conf);
    }

    if (conf != NULL) {
        /* FNV-1a 64 (hash.h): an identity for logs and metrics, not a security hash */
        conf->hash = hash_fnv1a64(HASH_FNV64_OFFSET, buf, len);
        snprintf(conf->hash_text, sizeof conf->hash_text, "%016" PRIx64, conf->hash);
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
    struct pattern *lists[] = { m->ruri_user, m->ruri_domain, m->from_user, m->from_domain,
                                m->to_user,   m->to_domain,   m->user_agent };
    size_t counts[] = { m->nruri_user, m->nruri_domain, m->nfrom_user, m->nfrom_domain,
                        m->nto_user,   m->nto_domain,   m->nuser_agent };
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        for (size_t i = 0; lists[l] != NULL && i < counts[l]; i++)
            pattern_free(&lists[l][i]);
        free(lists[l]);
    }
    for (size_t i = 0; m->headers != NULL && i < m->nheaders; i++) {
        free(m->headers[i].name);
        for (size_t j = 0; m->headers[i].values != NULL && j < m->headers[i].nvalues; j++)
            pattern_free(&m->headers[i].values[j]);
        free(m->headers[i].values);
    }
    free(m->headers);
    free(m->origin_src);
    free(m->origin_dst);
}

static void sources_free(struct conf_sources *s)
{
    for (size_t i = 0; i < s->nauth_keys; i++) {
        if (s->auth_keys[i] != NULL)
            explicit_bzero(s->auth_keys[i], strlen(s->auth_keys[i]));
        free(s->auth_keys[i]);
    }
    free(s->auth_keys);
    free(s->auth_keys_file);
    free(s->allow);
    for (size_t i = 0; i < s->ncapture_ids; i++)
        free(s->capture_ids[i].ids);
    free(s->capture_ids);
}

static void tls_free(struct conf_tls *t)
{
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t->server_name);
    for (size_t i = 0; i < t->nclient_capture_ids; i++) {
        free(t->client_capture_ids[i].subject);
        free(t->client_capture_ids[i].ids);
    }
    free(t->client_capture_ids);
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
        free(d->spool.dir);
        tls_free(&d->tls);
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
    for (size_t i = 0; conf->listen_sources != NULL && i < conf->nlisten; i++)
        sources_free(&conf->listen_sources[i]);
    free(conf->listen_sources);
    sources_free(&conf->sources);
    for (size_t i = 0; conf->listen_tls != NULL && i < conf->nlisten; i++)
        tls_free(&conf->listen_tls[i]);
    free(conf->listen_tls);
    tls_free(&conf->tls);
    free(conf->listen);
    free(conf->user);
    free(conf->group);
    redis_free(&conf->redis);
    free(conf->control_socket);
    free(conf->path);
    free(conf);
}

const struct conf_tls *conf_listen_tls(const struct conf *conf, size_t i)
{
    if (conf->listen_tls != NULL && i < conf->nlisten && conf->listen_tls[i].set)
        return &conf->listen_tls[i];
    return &conf->tls;
}

const struct conf_sources *conf_listen_sources(const struct conf *conf, size_t i)
{
    if (conf->listen_sources != NULL && i < conf->nlisten && conf->listen_sources[i].set)
        return &conf->listen_sources[i];
    return &conf->sources;
}

long conf_dest_index(const struct conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->ndests; i++)
        if (conf->dests[i].name != NULL && strcmp(conf->dests[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* ---- reload ---------------------------------------------------------------------- */

/* Where the lines of one report go. */
struct lines {
    conf_line_fn fn;
    void *arg;
    size_t count;
};

static void emit(struct lines *l, const char *line)
{
    if (l->fn != NULL)
        l->fn(l->arg, line);
    l->count++;
}

/* A line under construction, CONF_LINE_MAX bytes at most. */
struct line {
    char buf[CONF_LINE_MAX];
    struct text t;
};

static struct text *line_start(struct line *ln)
{
    ln->buf[0] = '\0';
    ln->t = (struct text){ ln->buf, sizeof ln->buf, 0 };
    return &ln->t;
}

/* "HEAD KEY END OLD -> NEW" (a secret: "... changed"), then tail; end is ": " or " ". */
static void emit_change(struct lines *l, const char *head, const struct conf_key *k, const char *end,
                        const void *a, const void *b, const struct conf_pair *confs, const char *tail)
{
    struct line ln;
    struct text *t = line_start(&ln);
    conf_text_add(t, "%s%s%s", head, k->name, end);
    if (k->flags & KEY_SECRET) {
        conf_text_add(t, "changed%s", tail);
    } else {
        conf_value_format(t, k, a, confs->a);
        conf_text_add(t, " -> ");
        conf_value_format(t, k, b, confs->b);
        conf_text_add(t, "%s", tail);
    }
    emit(l, ln.buf);
}

/* head + name + sep: the text before the keys of a section. */
static void section_head(char *buf, size_t size, const char *head, const char *name, const char *sep)
{
    snprintf(buf, size, "%s%s%s", head, name, sep);
}

#define HEAD_MAX (CONF_PATH_MAX + 2 * CONF_NAME_MAX)

static void describe_listen(struct lines *l, const struct conf_key *k, const struct conf *a,
                            const struct conf *b);
static void describe_dests(struct lines *l, const struct conf_pair *confs);
static void describe_routes(struct lines *l, const struct conf_pair *confs);

/*
 * The reloadable keys of table at base_a and base_b, in table order; head
 * goes before each key ("ttl.", "route x: match "), sep between a section
 * and its keys, end after a key (": " at the top, " " within a route or
 * destination: "route x: to [a] -> [b]").
 */
static void describe_keys(struct lines *l, const struct conf_key *table, const void *base_a,
                          const void *base_b, const struct conf_pair *confs, const char *head, const char *sep,
                          const char *end)
{
    for (const struct conf_key *k = table; k->name != NULL; k++) {
        if (k->kind == KIND_SECTION) {
            char sub[HEAD_MAX];
            section_head(sub, sizeof sub, head, k->name, sep);
            describe_keys(l, k->sub, (const char *)base_a + k->offset, (const char *)base_b + k->offset, confs,
                          sub, sep, end);
            continue;
        }
        INVARIANT(k->kind != KIND_NONE || k->set == conf_set_drop);    /* every stored key has a kind */
        if (!(k->flags & KEY_RELOAD))
            continue;
        if (k->kind == KIND_DESTS)
            describe_dests(l, confs);
        else if (k->kind == KIND_ROUTES)
            describe_routes(l, confs);
        else if (k->kind == KIND_ADDRS && table == top_keys)
            describe_listen(l, k, confs->a, confs->b);
        else if (!conf_value_equal(k, base_a, base_b, confs))
            emit_change(l, head, k, end, base_a, base_b, confs, "");
    }
}

/* Index of a in list[0..n), or n. */
static size_t addr_index(const struct conf_addr *a, const struct conf_addr *list, size_t n)
{
    size_t i = 0;
    while (i < n && !conf_addr_equal(a, &list[i]))
        i++;
    return i;
}

static bool tls_equal(const struct conf_tls *x, const struct conf_tls *y)
{
    if (x->set != y->set)
        return false;
    for (const struct conf_key *k = listener_tls_keys; k->name != NULL; k++)
        if (!conf_value_equal(k, x, y, NULL))
            return false;
    return true;
}

static bool sources_equal(const struct conf_sources *x, const struct conf_sources *y)
{
    if (x->set != y->set)
        return false;
    for (const struct conf_key *k = sources_keys; k->name != NULL; k++)
        if (!conf_value_equal(k, x, y, NULL))
            return false;
    return true;
}

/*
 * listen is a set of sockets: each one opened or closed is a line, and a
 * kept one whose own sources: changed ("own" or not, or what it says).
 */
static void describe_listen(struct lines *l, const struct conf_key *k, const struct conf *a,
                            const struct conf *b)
{
    struct line ln;
    for (size_t i = 0; i < a->nlisten; i++) {
        size_t j = addr_index(&a->listen[i], b->listen, b->nlisten);
        if (j < b->nlisten && a->listen_sources != NULL && b->listen_sources != NULL &&
            !sources_equal(&a->listen_sources[i], &b->listen_sources[j])) {
            conf_text_add(line_start(&ln), "%s %s: sources changed", k->name, a->listen[i].text);
            emit(l, ln.buf);
        }
        if (j < b->nlisten && a->listen_tls != NULL && b->listen_tls != NULL &&
            !tls_equal(&a->listen_tls[i], &b->listen_tls[j])) {
            conf_text_add(line_start(&ln), "%s %s: tls changed", k->name, a->listen[i].text);
            emit(l, ln.buf);
        }
        if (j < b->nlisten)
            continue;
        conf_text_add(line_start(&ln), "%s %s: removed", k->name, a->listen[i].text);
        emit(l, ln.buf);
    }
    for (size_t i = 0; i < b->nlisten; i++) {
        if (addr_index(&b->listen[i], a->listen, a->nlisten) < a->nlisten)
            continue;
        conf_text_add(line_start(&ln), "%s %s: added", k->name, b->listen[i].text);
        emit(l, ln.buf);
    }
}

/* Every key of table (its sections' too) has the same value in a and b. */
static bool keys_equal(const struct conf_key *table, const void *a, const void *b, const struct conf_pair *confs)
{
    for (const struct conf_key *k = table; k->name != NULL; k++) {
        bool same = k->kind == KIND_SECTION
                        ? keys_equal(k->sub, (const char *)a + k->offset, (const char *)b + k->offset, confs)
                        : conf_value_equal(k, a, b, confs);
        if (!same)
            return false;
    }
    return true;
}

bool conf_dest_has_tcp(const struct conf_dest *d)
{
    for (size_t j = 0; j < d->ntargets; j++)
        if (d->targets[j].transport == CONF_TCP)
            return true;
    return false;
}

bool conf_dest_rewrites(const struct conf_dest *d)
{
    return d->set_capture_id || d->node_name != NULL || d->auth_key != NULL || d->strip_auth_key;
}

bool conf_dest_emits_v3(const struct conf_dest *d)
{
    return d->hep_version == CONF_HEP_OUTPUT || conf_dest_rewrites(d) || conf_dest_has_tcp(d);
}

bool conf_dest_equal(const struct conf_dest *a, const struct conf_dest *b)
{
    struct conf_pair none = { NULL, NULL };    /* no destination references in a destination */
    if (a->name == NULL || b->name == NULL ? a->name != b->name : strcmp(a->name, b->name) != 0)
        return false;
    return keys_equal(dest_keys, a, b, &none);
}

/* Destinations are paired by name: removed ones first, then the new file's in its order. */
static void describe_dests(struct lines *l, const struct conf_pair *confs)
{
    const struct conf *a = confs->a, *b = confs->b;
    struct line ln;
    for (size_t i = 0; i < a->ndests; i++) {
        if (conf_dest_index(b, a->dests[i].name) >= 0)
            continue;
        conf_text_add(line_start(&ln), "destination %s: removed", a->dests[i].name);
        emit(l, ln.buf);
    }
    for (size_t i = 0; i < b->ndests; i++) {
        const struct conf_dest *nd = &b->dests[i];
        long j = conf_dest_index(a, nd->name);
        if (j < 0) {
            conf_text_add(line_start(&ln), "destination %s: added", nd->name);
            emit(l, ln.buf);
            continue;
        }
        char head[HEAD_MAX];
        section_head(head, sizeof head, "destination ", nd->name, ": ");
        describe_keys(l, dest_keys, &a->dests[j], nd, confs, head, " ", " ");
    }
}

static long route_index(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].name != NULL && strcmp(c->routes[i].name, name) == 0)
            return (long)i;
    return -1;
}

static const struct conf_key *key_named(const struct conf_key *table, const char *name)
{
    const struct conf_key *k = table;
    while (k->name != NULL && strcmp(k->name, name) != 0)
        k++;
    INVARIANT(k->name != NULL);
    return k;
}

/* "(method [INVITE], to [homer])": the match lists given, then where it sends ("drop": nowhere). */
static void describe_new_route(struct text *t, const struct conf_route *r, const struct conf *c)
{
    conf_text_add(t, " (");
    for (const struct conf_key *k = match_keys; k->name != NULL; k++) {
        if (*(const size_t *)conf_field_at((void *)&r->match, k->count_offset) == 0)
            continue;
        conf_text_add(t, "%s ", k->name);
        conf_value_format(t, k, &r->match, c);
        conf_text_add(t, ", ");
    }
    if (r->nto == 0) {
        conf_text_add(t, "drop)");
        return;
    }
    const struct conf_key *to = key_named(route_keys, "to");
    conf_text_add(t, "%s ", to->name);
    conf_value_format(t, to, r, c);
    conf_text_add(t, ")");
}

/* "[a, b]": the routes of c that the other conf also has, in c's order. */
static void format_common_routes(struct text *t, const struct conf *c, const struct conf *other)
{
    bool first = true;
    conf_text_add(t, "[");
    for (size_t i = 0; i < c->nroutes; i++) {
        if (route_index(other, c->routes[i].name) < 0)
            continue;
        conf_text_add(t, "%s%s", first ? "" : ", ", c->routes[i].name);
        first = false;
    }
    conf_text_add(t, "]");
}

/* The routes both have, in a different order: which one matches first may have changed. */
static bool routes_reordered(const struct conf *a, const struct conf *b)
{
    size_t j = 0;
    for (size_t i = 0; i < a->nroutes; i++) {
        if (route_index(b, a->routes[i].name) < 0)
            continue;
        while (j < b->nroutes && route_index(a, b->routes[j].name) < 0)
            j++;
        if (j == b->nroutes || strcmp(a->routes[i].name, b->routes[j].name) != 0)
            return true;
        j++;
    }
    return false;
}

/*
 * Routes are paired by name (an unnamed one is route-N, so inserting one
 * renames those after it): removed ones, then the new file's in its order,
 * then a change of order among those in both.
 */
static void describe_routes(struct lines *l, const struct conf_pair *confs)
{
    const struct conf *a = confs->a, *b = confs->b;
    struct line ln;
    for (size_t i = 0; i < a->nroutes; i++) {
        if (route_index(b, a->routes[i].name) >= 0)
            continue;
        conf_text_add(line_start(&ln), "route %s: removed", a->routes[i].name);
        emit(l, ln.buf);
    }
    for (size_t i = 0; i < b->nroutes; i++) {
        const struct conf_route *nr = &b->routes[i];
        long j = route_index(a, nr->name);
        if (j < 0) {
            struct text *t = line_start(&ln);
            conf_text_add(t, "route %s: added", nr->name);
            describe_new_route(t, nr, b);
            emit(l, ln.buf);
            continue;
        }
        char head[HEAD_MAX];
        section_head(head, sizeof head, "route ", nr->name, ": ");
        describe_keys(l, route_keys, &a->routes[j], nr, confs, head, " ", " ");
    }
    if (routes_reordered(a, b)) {
        struct text *t = line_start(&ln);
        conf_text_add(t, "routes reordered: ");
        format_common_routes(t, a, b);
        conf_text_add(t, " -> ");
        format_common_routes(t, b, a);
        emit(l, ln.buf);
    }
}

size_t conf_describe_changes(const struct conf *old, const struct conf *new, conf_line_fn fn, void *arg)
{
    struct lines l = { fn, arg, 0 };
    struct conf_pair confs = { old, new };
    describe_keys(&l, top_keys, old, new, &confs, "", ".", ": ");
    return l.count;
}

/* The keys of table without KEY_RELOAD whose values differ, with what is kept. */
static void restart_keys(struct lines *l, const struct conf_key *table, const void *base_a, const void *base_b,
                         const struct conf_pair *confs, const char *head)
{
    for (const struct conf_key *k = table; k->name != NULL; k++) {
        if (k->kind == KIND_SECTION) {
            char sub[HEAD_MAX];
            section_head(sub, sizeof sub, head, k->name, ".");
            restart_keys(l, k->sub, (const char *)base_a + k->offset, (const char *)base_b + k->offset, confs,
                         sub);
            continue;
        }
        if ((k->flags & KEY_RELOAD) || k->kind == KIND_NONE || conf_value_equal(k, base_a, base_b, confs))
            continue;
        struct line kept;
        struct text *t = line_start(&kept);
        if (k->flags & KEY_SECRET) {
            conf_text_add(t, " (needs a restart; the old value kept)");
        } else {
            conf_text_add(t, " (needs a restart; ");
            conf_value_format(t, k, base_a, confs->a);
            conf_text_add(t, " kept)");
        }
        emit_change(l, head, k, ": ", base_a, base_b, confs, kept.buf);
    }
}

size_t conf_restart_changes(const struct conf *old, const struct conf *new, conf_line_fn fn, void *arg)
{
    struct lines l = { fn, arg, 0 };
    struct conf_pair confs = { old, new };
    restart_keys(&l, top_keys, old, new, &confs, "");
    return l.count;
}

static int keep_keys(const struct conf_key *table, void *next, const void *running)
{
    for (const struct conf_key *k = table; k->name != NULL; k++) {
        if (k->kind == KIND_SECTION) {
            if (keep_keys(k->sub, (char *)next + k->offset, (const char *)running + k->offset) != 0)
                return -1;
            continue;
        }
        if ((k->flags & KEY_RELOAD) || k->kind == KIND_NONE)
            continue;
        if (conf_value_copy(k, next, running) != 0)
            return -1;
    }
    return 0;
}

int conf_keep_restart_values(struct conf *next, const struct conf *running)
{
    return keep_keys(top_keys, next, running);
}
