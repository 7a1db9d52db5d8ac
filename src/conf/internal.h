/*
 * conf/internal.h - what the files of the configuration loader share.
 *
 * Only src/conf/ includes this; the rest of the program sees conf.h.  The
 * loader reads a file in three passes, as in twemproxy:
 *   1. tree.c: libyaml's event stream is loaded into a small tree of nodes
 *      that keeps the line and column of every node.  Anchors, aliases,
 *      tags and a second document are rejected here, so the later passes
 *      only see scalars, lists and mappings.
 *   2. table.c, with the tables of schema.c: the tree is walked with one key
 *      table per section: name, setter, offset of the field, default as
 *      text, range.  Unknown, duplicate and missing keys are found by the
 *      same walk; defaults are applied by running the key's own setter on
 *      its default text, so a default is written once, in the table.
 *   3. schema.c: cross-checks that need more than one key (destination
 *      names in routes and default, route names, reconnect_min <=
 *      reconnect_max, targets that are listen addresses, store.redis keys
 *      that exclude each other); store.redis.password_file is read then.
 *
 * Every error is collected with its position (diag.c), and conf_load()
 * prints them sorted by position.
 *
 * Reload (schema.c walks the tables, table.c knows each kind of value):
 * every key has a kind (how its value is stored), so two configurations are
 * compared, printed and copied key by key without code per key; KEY_RELOAD
 * marks the keys a running process may take from a new file.  grammar.c holds the value grammars that
 * the setters share with the public parsers of conf.h (which the tools use).
 */
#ifndef HEPROUTER_CONF_INTERNAL_H
#define HEPROUTER_CONF_INTERNAL_H

#include "conf.h"

#include "clock.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
#define CONF_COALESCE_MAX_US UINT64_C(100000)       /* limits.udp_coalesce_us: 100 ms */
#define CONF_QUEUE_MAX      (UINT64_C(1) << 30)     /* tcp_queue_bytes: 1 GiB */
#define CONF_IDLE_MAX_MS    MS_PER_DAY
#define CONF_TIMEOUT_MAX_MS MS_PER_HOUR             /* reconnect, connect, drain */
#define CONF_KEEPALIVE_MAX_MS (32767 * MS_PER_SECOND) /* TCP_KEEPIDLE, TCP_KEEPINTVL: the kernel's limit */
#define CONF_KEEPALIVE_COUNT_MAX 127u               /* TCP_KEEPCNT: the kernel's limit */
#define CONF_LOG_MAX_MS     MS_PER_DAY              /* log.interval, log.stats_interval */
#define CONF_SPOOL_BYTES_MIN (UINT64_C(1) << 20)    /* spool.max_bytes: 1 MiB */
#define CONF_SPOOL_BYTES_MAX (UINT64_C(1) << 40)    /* spool.max_bytes: 1 TiB */
#define CONF_SPOOL_AGE_MAX_MS (365 * MS_PER_DAY)    /* spool.max_age */
#define CONF_SPOOL_RATE_MAX UINT64_C(10000000)      /* spool.replay_rate, packets per second */

/* metrics, control */
#define CONF_HTTP_CONN_MAX  100000u                 /* metrics.max_connections */
#define CONF_WAIT_LONG_MS   MS_PER_HOUR             /* metrics and control timeouts */
#define CONF_CLIENTS_MAX    1000u                   /* control.max_clients */
#define CONF_LINE_MIN       64u                     /* control.max_line: room for any command */
#define CONF_TAP_BUFFER_MIN 65536u                  /* control.tap_buffer: room for a few hundred lines */
#define CONF_DEDUP_ENTRIES_MIN 1024u                /* limits.dedup_entries: one stripe's worth */
#define CONF_DEDUP_WINDOW_MAX_MS UINT64_C(60000)    /* destinations.X.dedup.window_ms */
#define CONF_LINE_LIMIT     (UINT64_C(1) << 20)     /* control.max_line: 1 MiB */
#define CONF_MODE_MAX       0777u                   /* control.mode: permission bits only */
#define CONF_MODE_DIGITS    4                       /* "0660" */

/* store.redis, store.cache */
#define CONF_DB_MAX         1000000u                /* Redis allows more than 16 (`databases`) */
#define CONF_REDIS_WAIT_MAX_MS (60 * MS_PER_SECOND) /* store.redis.timeout_ms */
#define CONF_INFLIGHT_MAX   1000000u
#define CONF_WRITE_DELAY_MAX_MS MS_PER_SECOND   /* store.redis.write_delay_ms */
#define CONF_PENDING_MAX    10000000u
#define CONF_REPLY_MIN      1024u                   /* store.redis.max_reply_bytes: a value is < 200 */
#define CONF_REPLY_MAX      (UINT64_C(1) << 30)     /* 1 GiB */
#define CONF_CACHE_MAX      100000000u
#define CONF_HOST_MAX       CONF_HOST_NAME_MAX      /* a DNS name, without the final dot */
#define CONF_LABEL_MAX      63u
#define CONF_PASSWORD_MAX   1024u                   /* store.redis.password and its file */

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

/* ---- parse state --------------------------------------------------------- */

struct conf_error;                  /* diag.c */

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

/* ---- key tables ---------------------------------------------------------- */

struct conf_key;

/* Reports its own errors; n is NULL only for sections that are absent. */
typedef void conf_setter(struct parse *p, struct node *n, const struct conf_key *k, void *base);

/* A value of an enumerated key. */
struct conf_name {
    const char *name;
    int value;
};

enum key_flag {
    KEY_REQUIRED = 1u << 0,
    KEY_NONEMPTY = 1u << 1,         /* lists */
    KEY_MATCH = 1u << 2,            /* match lists: say how to match anything */
    KEY_RELOAD = 1u << 3,           /* can change at reload; without it: needs a restart */
    KEY_SECRET = 1u << 4,           /* never printed: a change is "changed" */
};

/*
 * How a key's value is stored at its offset, so that reload compares,
 * prints and copies any key by its kind (table.c).
 */
enum conf_kind {
    KIND_NONE = 0,                  /* not stored (routes[].drop) */
    KIND_SECTION,                   /* k->sub at the offset */
    KIND_SIZE,                      /* size_t */
    KIND_UNSIGNED,                  /* unsigned */
    KIND_U64,                       /* uint64_t */
    KIND_DURATION,                  /* uint64_t ms, printed as written (4h, 250ms) */
    KIND_MODE,                      /* unsigned permission bits, printed in octal */
    KIND_ENUM,                      /* int, one of k->names */
    KIND_INT,                       /* int (hep_version) */
    KIND_STRING,                    /* char *, NULL: none */
    KIND_CAPTURE_ID,                /* struct conf_dest: set_capture_id and capture_id */
    KIND_ADDR,                      /* struct conf_addr; addr_len 0: off */
    KIND_ADDRS,                     /* struct conf_addr * and a count */
    KIND_DEST_REFS,                 /* size_t * indexes into conf.dests and a count */
    KIND_STRINGS,                   /* char ** and a count */
    KIND_PROTOS,                    /* unsigned * and a count */
    KIND_CAPTURE_IDS,               /* uint32_t * and a count */
    KIND_CIDRS,                     /* struct conf_cidr * and a count */
    KIND_STATUSES,                  /* struct conf_status * and a count */
    KIND_ENDPOINTS,                 /* struct conf_endpoint * and a count */
    KIND_BOOL,                      /* bool */
    KIND_BINDINGS,                  /* struct conf_capture_binding * and a count */
    KIND_SUBJECT_BINDINGS,          /* struct conf_subject_binding * and a count */
    KIND_PATTERNS,                  /* struct pattern * and a count */
    KIND_FRACTION,                  /* uint32_t millionths, 1 to CONF_MILLION (routes[].sample) */
    KIND_HEADERS,                   /* struct conf_header_match * and a count */
    KIND_DESTS,                     /* destinations: schema.c compares them */
    KIND_ROUTES,                    /* routes: schema.c compares them */
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
    enum conf_kind kind;            /* how the value is stored (reload) */
};

/* The field at offset bytes into base (struct conf_key.offset). */
static inline void *conf_field_at(void *base, size_t offset)
{
    return (char *)base + offset;
}

/* ---- grammar.c: value grammars ------------------------------------------- */

static inline bool conf_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool conf_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Destination and route names: what may appear bare in a key path. */
bool conf_is_name(const char *s, size_t len);

#define CONF_DURATION_TEXT_MAX 32

/* "250ms", "30s", "5m", "4h": the largest unit that divides ms; returns buf. */
const char *conf_format_duration(uint64_t ms, char *buf, size_t size);

/* YAML 1.2 core schema booleans: 1 for true, 0 for false, -1 for neither. */
int conf_parse_bool(const char *s);

/* A host name, or an IPv4 or IPv6 address without brackets. */
bool conf_is_host(const char *s, size_t len);

/*
 * No spaces or control characters: key prefixes, ACL user and Sentinel
 * master names go into commands as they are.
 */
bool conf_is_token(const char *s, size_t len);

/*
 * A Sentinel's "host:port" or "[IPv6]:port": a host name or numeric
 * address, port 1 to 65535; NULL or a predicate.  (conf.h has the split.)
 */
const char *conf_check_endpoint(const char *text, struct conf_host_port *hp);

/* ---- diag.c: allocation, key paths, errors ------------------------------- */

/* malloc, calloc, realloc and strdup, but the n-th call fails after conf_fail_alloc(n). */
void *conf_malloc(size_t size);
void *conf_calloc(size_t n, size_t size);
void *conf_realloc(void *ptr, size_t size);
char *conf_strdup(const char *s);

/* Appends with printf; what does not fit is cut, and t stays NUL-terminated. */
__attribute__((format(printf, 2, 3)))
void conf_text_add(struct text *t, const char *fmt, ...);

/* Appends ".key" (or "key" at the top) to p->path; returns the length to restore. */
size_t conf_path_push_key(struct parse *p, const char *key, size_t len);

/* Appends "[i]" to p->path; returns the length to restore. */
size_t conf_path_push_index(struct parse *p, size_t i);

/* Cuts p->path back to a length that a push returned. */
void conf_path_pop(struct parse *p, size_t old);

/* "PATH: MESSAGE", at n. */
__attribute__((format(printf, 3, 4)))
void conf_error_key(struct parse *p, const struct node *n, const char *fmt, ...);

/* "PATH "VALUE": MESSAGE", at n (a list or mapping has no VALUE). */
__attribute__((format(printf, 3, 4)))
void conf_error_value(struct parse *p, const struct node *n, const char *fmt, ...);

/* "MESSAGE", at m: errors about the file rather than a key. */
__attribute__((format(printf, 3, 4)))
void conf_error_file(struct parse *p, struct mark m, const char *fmt, ...);

/* Sorts the errors by position and writes them as FILE:LINE:COL: lines (out NULL: none). */
void conf_print_errors(struct parse *p, FILE *out);

/* ---- tree.c: the node tree ----------------------------------------------- */

/*
 * Builds the tree of the only document in buf.  Returns NULL after reporting
 * when the YAML is unusable or the file is empty.
 */
struct node *conf_load_tree(struct parse *p, const char *buf, size_t len);

/* Frees n and everything under it; n may be NULL. */
void conf_node_free(struct node *n);

/* A plain empty, "~" or "null": the key is there but says nothing. */
bool conf_node_is_null(const struct node *n);

/* A scalar that is exactly s. */
bool conf_node_is(const struct node *n, const char *s);

/* The value of the first key `name` of map, or NULL (also when map is none). */
struct node *conf_map_get(const struct node *map, const char *name);

/* ---- table.c: the table engine and its setters --------------------------- */

/* Reports what makes n unusable as a mapping; false then. */
bool conf_expect_mapping(struct parse *p, const struct node *n);

/* Reports keys that are not scalars, keys given twice and, with a table, keys it does not know. */
void conf_check_keys(struct parse *p, const struct node *map, const struct conf_key *table);

/*
 * A mapping whose keys are names of the file's own (destinations,
 * capture_ids): duplicate and non-scalar keys reported, "must not be
 * empty" when it has none.  Returns its number of pairs.
 */
size_t conf_named_pairs(struct parse *p, const struct node *map);

/* Walks map with table into base; map NULL (the section is absent) applies the defaults only. */
void conf_parse_map(struct parse *p, struct node *map, const struct conf_key *table, void *base);

#define CONF_NAME_PREDICATE "must be 1 to %d letters, digits, '-' or '_'"

/* The setters that the key tables name; k->min and k->max bound numbers and durations (ms). */
conf_setter conf_set_section;           /* a mapping: k->sub into the field */
conf_setter conf_set_size;              /* an integer -> size_t (beyond SIZE_MAX: SIZE_MAX) */
conf_setter conf_set_unsigned;          /* an integer -> unsigned */
conf_setter conf_set_u64;               /* an integer -> uint64_t */
conf_setter conf_set_duration;          /* a duration -> uint64_t ms */
conf_setter conf_set_enum;              /* one of k->names -> int */
conf_setter conf_set_string;            /* node_name, auth_key: a copy */
conf_setter conf_set_name;              /* a route name: a copy */
conf_setter conf_set_drop;              /* routes[].drop: checked, not stored */
conf_setter conf_set_hep_version;       /* 3 -> int */
conf_setter conf_set_dest_capture_id;   /* base is a struct conf_dest */
conf_setter conf_set_listen;            /* base is the struct conf; sorts p->listen_sorted */
conf_setter conf_set_targets;           /* base is a struct conf_dest */
conf_setter conf_set_dest_refs;         /* destination names -> indexes into conf.dests */
conf_setter conf_set_methods;           /* match lists */
conf_setter conf_set_protos;
conf_setter conf_set_capture_ids;
conf_setter conf_set_cidrs;
conf_setter conf_set_statuses;
conf_setter conf_set_host;              /* store.redis */
conf_setter conf_set_unix_path;
conf_setter conf_set_token;
conf_setter conf_set_optional_token;
conf_setter conf_set_password;
conf_setter conf_set_path;
conf_setter conf_set_sentinels;         /* base is a struct conf_redis */
conf_setter conf_set_host_port;         /* metrics.listen: "IPv4:port" or "[IPv6]:port" -> TCP conf_addr */
conf_setter conf_set_socket_path;       /* control.socket: a path of 1 to CONF_UNIX_PATH_MAX bytes */
conf_setter conf_set_mode;              /* control.mode: "0660" -> unsigned */
conf_setter conf_set_bool;              /* true / false -> bool */
conf_setter conf_set_auth_keys;         /* sources.auth_keys: char ** and a count */
conf_setter conf_set_capture_bindings;  /* sources.capture_ids: { CIDR: [ID, ...] } */
conf_setter conf_set_subject_bindings;  /* tls.client_capture_ids: { SUBJECT: [ID, ...] } */
conf_setter conf_set_tls;               /* a tls: section (struct conf_tls): its keys and where it starts */
conf_setter conf_set_patterns;          /* origin keys: exact strings or "~REGEX" */
conf_setter conf_set_fraction;          /* "0.25": a share, to millionths */
conf_setter conf_set_domain_patterns;   /* the same, ignoring case */
conf_setter conf_set_header_matches;    /* match header: { NAME: [VALUES] } */
conf_setter conf_set_sources;           /* a sources: section, then its auth_keys_file (schema.c) */

/* listen items in map form: address, sources (schema.c). */
extern const struct conf_key conf_listener_keys[];
/* A listener's sources: section, stored at offset 0 of its struct conf_sources. */
extern const struct conf_key conf_listener_sources_key;
extern const struct conf_key conf_listener_tls_key;

/* ---- table.c: values by kind, for reload ---------------------------------- */

/* The confs whose destinations the KIND_DEST_REFS values of a and b name. */
struct conf_pair {
    const struct conf *a;
    const struct conf *b;
};

/* The value of k at base_a equals the one at base_b. */
bool conf_value_equal(const struct conf_key *k, const void *base_a, const void *base_b,
                      const struct conf_pair *confs);

/* Appends the value of k at base as the file would say it; c names destinations. */
void conf_value_format(struct text *t, const struct conf_key *k, const void *base, const struct conf *c);

/* Replaces the value of k at dst with a deep copy of the one at src; 0, or -1 when out of memory. */
int conf_value_copy(const struct conf_key *k, void *dst, const void *src);

/* Frees what the value of k at base owns and zeroes it (strings and lists). */
void conf_value_free(const struct conf_key *k, void *base);

#endif
