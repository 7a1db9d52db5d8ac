/*
 * conf.h - the configuration: YAML file -> plain structs.
 *
 * conf_load() parses in three passes (YAML structure, values into structs,
 * cross-checks and defaults) and reports every error as
 * "FILE:LINE:COL: message".  The rest of the program never sees YAML.  Every
 * key, its type and its default live in one table in conf/schema.c; the man
 * page heprouter.yaml(5) and etc/heprouter.yaml follow that table.  The
 * loader itself is in src/conf/ (internal.h says which file does what).
 *
 * Reload: every key is marked in its table as changeable at reload or not.
 * A running process loads the new file, copies what needs a restart from
 * the running conf into it (conf_keep_restart_values), logs the differences
 * (conf_describe_changes, conf_restart_changes) and swaps.
 */
#ifndef HEPROUTER_CONF_H
#define HEPROUTER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pattern.h"
#include "sip.h"

/*
 * The longest names the configuration accepts: route and destination
 * names, and SIP methods in `method` lists.  What keeps names (the context
 * store) sizes its buffers from these.
 */
#define CONF_NAME_MAX       63
#define CONF_ORIGIN_ROUTES_MAX 64   /* routes with origin keys: a call keeps one bit each */
#define CONF_MILLION        1000000u    /* routes[].sample is kept in millionths */
#define CONF_RATE_DESTS_MAX 32      /* destinations with max_new_calls_per_s: a call keeps one bit each */
#define CONF_METHOD_MAX     31

/* node_name, auth_key, sources.auth_keys: bytes of a HEP chunk's value that a string key may set or require. */
#define CONF_STRING_MAX     255u

/* The longest store.redis.unix path: Linux's sun_path holds 108 bytes with the NUL. */
#define CONF_UNIX_PATH_MAX  ((size_t)107)

struct tls_set;

enum conf_transport {
    CONF_UDP = 1,
    CONF_TCP = 2,
};

#define CONF_ADDR_BYTES_MAX 16      /* an IPv6 address */

/* The longest DNS name a target may give, without the final dot. */
#define CONF_HOST_NAME_MAX  253u

/* Room for the longest address text, NUL included: "tcp:" NAME ":65535". */
#define CONF_ADDR_TEXT_SIZE (sizeof "tcp:" - 1 + CONF_HOST_NAME_MAX + sizeof ":65535")

/*
 * "udp:127.0.0.1:9060", "tcp:[::1]:9060": numeric addresses are kept as
 * bytes so that the core needs no socket header; the edge makes the socket
 * address (netaddr.h).  A target may name its host instead
 * ("tcp:collector.example.net:9060"): then addr_len is 0 and host holds the
 * name, which the edge resolves (resolve.h); the core never looks it up.
 */
struct conf_addr {
    enum conf_transport transport;
    bool tls;                       /* "tls:": a TCP stream inside TLS (transport CONF_TCP) */
    unsigned addr_len;              /* 4 (IPv4) or 16 (IPv6); 0: a name (host set) or not an address */
    uint8_t addr[CONF_ADDR_BYTES_MAX];  /* network byte order */
    unsigned port;
    char host[CONF_HOST_NAME_MAX + 1];  /* targets only: the DNS name; "" when numeric */
    char text[CONF_ADDR_TEXT_SIZE]; /* as written, for logs */
};

enum conf_balance {
    CONF_BALANCE_ALL = 0,           /* every target gets a copy */
    CONF_BALANCE_HASH,              /* one target, by Call-ID hash */
    CONF_BALANCE_ROUND_ROBIN,       /* one target, in turn */
    CONF_BALANCE_FAILOVER,          /* the first target that is up */
};

/* A destination's disk spool (spool.h); dir NULL: none. */
struct conf_spool {
    char *dir;
    size_t max_bytes;               /* shared evenly by the workers */
    uint64_t max_age_ms;
    uint64_t replay_rate;           /* packets per second */
    size_t max_unwritten;           /* bytes handed to the writer thread and not yet written */
};

/* tls.client_capture_ids: the capture ids a client certificate's subject may claim. */
struct conf_subject_binding {
    char *subject;                  /* a common name, or a whole subject in RFC 2253 form (it has '=') */
    uint32_t *ids;
    size_t nids;
};

/* TLS protocol versions, as min_version names them. */
enum conf_tls_version {
    CONF_TLS_1_2 = 0,
    CONF_TLS_1_3,
};

/*
 * tls: the certificates of tls: listeners (the top-level section, or a
 * listener's own) or of a destination's tls: targets.  The files are read
 * by the edge (tls.h), at start and at every reload; paths are kept here.
 */
struct conf_tls {
    bool set;                       /* written (a listener's own replaces the top-level one) */
    char *cert;                     /* PEM chain, leaf first; NULL: none */
    char *key;                      /* PEM private key */
    char *ca;                       /* PEM CA bundle; NULL: listeners trust none, targets the system's */
    int min_version;                /* enum conf_tls_version */
    /* listeners */
    bool require_client_cert;
    struct conf_subject_binding *client_capture_ids;
    size_t nclient_capture_ids;
    /* destinations */
    bool verify;                    /* the peer's chain, dates and name */
    char *server_name;              /* SNI and the name verified; NULL: the target's */
    size_t line, col;               /* where the section starts in conf.path (errors loading the files) */
};

struct conf_dest {
    char *name;
    struct conf_addr *targets;
    size_t ntargets;
    enum conf_balance balance;
    int hep_version;                /* 0: forward as received; 3: convert */
    bool set_capture_id;
    uint32_t capture_id;
    char *node_name;                /* NULL: keep */
    char *auth_key;                 /* NULL: keep */
    bool strip_auth_key;            /* without auth_key: remove the sender's key */
    size_t max_packet;              /* larger packets are counted, not sent */
    struct conf_spool spool;
    uint64_t dedup_window_ms;       /* dedup.window_ms; 0: off */
    bool dedup_shared;              /* dedup.shared: the window is the Redis store's, for every instance */
    uint32_t dedup_id;              /* the destination in a dedup key: a hash of its name, which a reload keeps */
    uint64_t max_new_calls_per_s;   /* 0: no limit */
    unsigned rate_bit;              /* with a limit: its bit in a call's refused mask */
    struct conf_tls tls;            /* for its tls: targets */
};

struct conf_cidr {
    unsigned addr_len;              /* 4 (IPv4) or 16 (IPv6): bytes of addr in use */
    uint8_t addr[CONF_ADDR_BYTES_MAX];
    unsigned prefix;
};

/* sources.capture_ids: the capture ids a source inside cidr may claim. */
struct conf_capture_binding {
    struct conf_cidr cidr;
    uint32_t *ids;
    size_t nids;
};

/*
 * sources: who may send to a listener (the top-level section, or a
 * listener's own).  Every list empty: everyone, with any key or none.
 */
struct conf_sources {
    bool set;                       /* a listener's own section was written (it replaces the top-level one) */
    struct conf_cidr *allow;        /* none: every source */
    size_t nallow;
    char **auth_keys;               /* auth_keys, then auth_keys_file's keys; none: no key required */
    size_t nauth_keys;
    char *auth_keys_file;           /* read at load and at every reload; NULL: none */
    struct conf_capture_binding *capture_ids;
    size_t ncapture_ids;
};

/* Status class or code: "407" -> [407,407], "4xx" -> [400,499]. */
struct conf_status {
    unsigned lo;
    unsigned hi;
};

/* All lists optional; an empty list matches anything; present lists are ANDed. */
/* header: { NAME: [VALUES] } of a match: the values one header of the origin is compared with. */
struct conf_header_match {
    char *name;                     /* compared ignoring case */
    struct pattern *values;
    size_t nvalues;
};

struct conf_match {
    char **methods;                 /* origin method of the call */
    size_t nmethods;
    unsigned *protos;               /* HEP protocol type: sip=1, rtcp=5, log=100, or a number */
    size_t nprotos;
    uint32_t *capture_ids;
    size_t ncapture_ids;
    struct conf_cidr *src;          /* of the traced packet */
    size_t nsrc;
    struct conf_cidr *dst;
    size_t ndst;
    struct conf_status *status;     /* replies only */
    size_t nstatus;
    /* origin keys: judged once on the call's origin request, remembered for the call */
    struct pattern *ruri_user;
    size_t nruri_user;
    struct pattern *ruri_domain;    /* caseless */
    size_t nruri_domain;
    struct pattern *from_user;
    size_t nfrom_user;
    struct pattern *from_domain;    /* caseless */
    size_t nfrom_domain;
    struct pattern *to_user;
    size_t nto_user;
    struct pattern *to_domain;      /* caseless */
    size_t nto_domain;
    struct pattern *user_agent;
    size_t nuser_agent;
    struct conf_header_match *headers;
    size_t nheaders;
    struct conf_cidr *origin_src;   /* of the origin request */
    size_t norigin_src;
    struct conf_cidr *origin_dst;
    size_t norigin_dst;
};

struct conf_route {
    char *name;                     /* "name:" or "route-N" (1-based) */
    struct conf_match match;
    size_t *to;                     /* indexes into conf.dests */
    size_t nto;                     /* 0 (to: [] or drop: true) discards */
    size_t line, col;               /* where it starts in conf.path, as errors say it (explain) */
    uint32_t sample;                /* millionths of the calls it may match (CONF_MILLION, or 0 unset: all) */
    bool origin;                    /* it has origin keys, and then: */
    unsigned origin_bit;            /* its bit in a call's origin mask */
    size_t next_plain;              /* the next route without origin keys (nroutes: none) */
};

/* A server named by host and port: "10.0.0.1:26379", "[::1]:26379", "redis-a:26380". */
struct conf_endpoint {
    char *host;                     /* a name, or a numeric IP address without brackets */
    unsigned port;                  /* 1 to 65535 */
    char *text;                     /* as written, for logs */
};

/* store.redis: where the shared call context lives (store.type redis). */
struct conf_redis {
    char *host;                     /* numeric IP or name; NULL when unix is set */
    char *unix_path;                /* `unix:` socket path, or NULL */
    unsigned port;
    unsigned db;
    char *username;                 /* Redis 6+ ACL user, NULL: none */
    char *password;                 /* NULL: no AUTH; read from password_file when given */
    char *password_file;
    char *prefix;                   /* key prefix, "heprouter:" */
    uint64_t timeout_ms;            /* a lookup slower than this takes the fallback */
    size_t max_inflight;            /* commands in flight per connection; beyond: fallback */
    size_t max_pending_writes;      /* decisions kept while Redis is down, written when back */
    uint64_t write_delay_ms;        /* writes wait this long to go out together (0: at once) */
    size_t max_reply_bytes;         /* more of one unfinished reply drops the connection (0: no cap) */
    struct conf_endpoint *sentinels; /* Sentinels; none: connect directly */
    size_t nsentinels;
    char *master_name;              /* Sentinel master name */
};

enum conf_log_target {
    CONF_LOG_STDERR = 0,
    CONF_LOG_SYSLOG,
};

/* Room for conf.hash_text: 16 hex digits and the NUL. */
#define CONF_HASH_TEXT_SIZE 17

struct conf {
    char *path;                     /* the file loaded */
    uint64_t hash;                  /* of the file's bytes as read: its identity, not a security hash */
    char hash_text[CONF_HASH_TEXT_SIZE];    /* hash as 16 lowercase hex digits */

    struct conf_addr *listen;
    size_t nlisten;
    struct conf_sources *listen_sources;    /* nlisten of them: a listener's own (set) or not */
    struct conf_sources sources;    /* the top-level section */
    struct conf_tls *listen_tls;    /* nlisten of them: a listener's own tls: (set) or not */
    struct conf_tls tls;            /* the top-level section: every tls: listener's default */
    struct tls_set *tls_set;        /* the certificates loaded for this configuration: made, used and
                                       freed by the edge (tls.h); NULL: not loaded */
    unsigned workers;

    /* privileges: dropped once listeners are bound and files opened */
    char *user;                     /* NULL: keep the user heprouter was started as */
    char *group;                    /* NULL: the user's primary group */
    bool allow_root;                /* the packet path may run as root */

    enum { CONF_STORE_MEMORY = 0, CONF_STORE_REDIS } store_type;

    /* ttl: durations in milliseconds */
    uint64_t ttl_call_ms;
    uint64_t ttl_register_ms;
    uint64_t ttl_ended_ms;

    /* orphans */
    uint64_t orphans_wait_ms;
    size_t orphans_max_held;
    size_t orphans_max_bytes;       /* per worker, bookkeeping included (hold.h) */

    /* limits */
    size_t call_id_max;             /* longer Call-IDs are hashed */
    size_t store_max_calls;         /* memory store: beyond it, oldest-expiring evicted */
    size_t dedup_entries;           /* limits.dedup_entries: the instance's dedup window, in packets */
    struct conf_redis redis;        /* store.redis */
    size_t cache_entries;           /* store.cache.entries: in-process cache before Redis (0: off) */
    size_t tcp_max_connections;     /* per listener per worker; main.c lowers it to fit RLIMIT_NOFILE */
    size_t fd_reserve;              /* descriptors kept free beyond those counted (RLIMIT_NOFILE budget) */
    size_t tcp_max_frame;           /* larger HEP3 frames close the connection */
    uint64_t tcp_idle_timeout_ms;   /* inbound connections silent this long are closed */
    uint64_t tls_handshake_timeout_ms;  /* a TLS handshake, inbound or outbound, not done by then is closed */
    size_t udp_batch;               /* datagrams per recvmmsg / sendmmsg */
    size_t udp_rcvbuf;              /* SO_RCVBUF for listeners, bytes (0: kernel default) */
    uint64_t udp_coalesce_us;       /* a worker busy with UDP polls at most once per this (0: no wait) */
    size_t tcp_queue_bytes;         /* per outbound TCP target */
    uint64_t reconnect_min_ms;      /* outbound TCP backoff */
    uint64_t reconnect_max_ms;
    uint64_t connect_timeout_ms;
    uint64_t tcp_keepalive_idle_ms;     /* outbound TCP: silence before the first keepalive probe */
    uint64_t tcp_keepalive_interval_ms; /* between probes */
    size_t tcp_keepalive_count;         /* probes unanswered before the connection is dropped */
    uint64_t tcp_user_timeout_ms;       /* TCP_USER_TIMEOUT: sent data unacknowledged this long drops it */
    size_t udp_refusals_down;           /* outbound UDP: refusals in a row that take a target down */
    uint64_t drain_timeout_ms;      /* SIGTERM: how long queues may flush */
    uint64_t dns_refresh_ms;        /* targets named by DNS are looked up again this often */

    /* log */
    int log_level;                  /* enum log_level */
    uint64_t log_interval_ms;       /* rate limit for per-packet warnings */
    uint64_t stats_interval_ms;     /* 0: no periodic counter line */
    int log_target;                 /* enum conf_log_target */
    int log_facility;               /* <syslog.h> LOG_DAEMON, LOG_USER, LOG_LOCAL0..7 */

    /* metrics: the Prometheus HTTP endpoint */
    struct conf_addr metrics_listen;    /* transport CONF_TCP; addr_len 0: off */
    uint64_t metrics_health_timeout_ms; /* /healthz fails when a worker has not answered within it */
    size_t metrics_max_connections;
    uint64_t metrics_timeout_ms;        /* idle HTTP connections are closed */

    /* control: the Unix control socket */
    char *control_socket;           /* NULL: off */
    unsigned control_mode;          /* permission bits of the socket file */
    size_t control_max_clients;
    uint64_t control_timeout_ms;    /* idle clients are closed */
    size_t control_max_line;        /* longest command line, bytes */
    size_t control_tap_buffer;      /* tap lines waiting, per worker and per tap reader, bytes */

    struct conf_dest *dests;
    size_t ndests;
    struct conf_route *routes;
    size_t nroutes;
    size_t norigin_routes;          /* routes with origin keys: bits 0..n-1 of a call's origin mask */
    size_t nrate_dests;             /* destinations with max_new_calls_per_s: bits 0..n-1 of a call's refused mask */
    uint32_t origin_signature;      /* of those routes (names and origin keys) and the destinations'
                                       names, when either kind of bit is in use; else 0 */
    bool sampling;                  /* some route has sample below 1 */
    bool dedup_any;                 /* some destination has a dedup window */
    struct sip_byte_set origin_header_first; /* first bytes of the header names origin keys read (conf_origin_headers) */
    size_t *default_to;             /* destinations for calls no route matched */
    size_t ndefault_to;
};

/*
 * Loads and checks path.  On success returns a conf and writes nothing; on
 * failure returns NULL after writing one "FILE:LINE:COL: message" line per
 * error to err (NULL: write nothing), sorted by position, at most 50 plus a
 * count of the rest.  Only a file that cannot be read at all, and running
 * out of memory, give "FILE: message" without a position.  The messages are
 * listed in heprouter.yaml(5).  Safe to call from any thread.
 */
struct conf *conf_load(const char *path, FILE *err);

void conf_free(struct conf *conf);

/* The names the configuration gives these values ("round_robin", "redis"). */
const char *conf_balance_name(enum conf_balance b);
const char *conf_store_type_name(int type);

/* The tls: section of listener i: its own if it has one, else the top-level one. */
const struct conf_tls *conf_listen_tls(const struct conf *conf, size_t i);

/* The sources: rules of listener i: its own section if it has one, else the top-level one. */
const struct conf_sources *conf_listen_sources(const struct conf *conf, size_t i);

/* Looks up a destination by name; returns its index or -1. */
long conf_dest_index(const struct conf *conf, const char *name);

/*
 * The value grammars.  The configuration's setters and the tools (hepdump,
 * hepgen, the benchmark's sink, the test helpers) share these, so a port,
 * a number or an address reads the same everywhere.  Each returns NULL or a
 * short predicate ("has an invalid port") to print after the value, or a
 * status when the caller words the error itself.
 */

enum conf_number_status {
    CONF_NUMBER_OK,
    CONF_NUMBER_SYNTAX,
    CONF_NUMBER_RANGE,
};

/*
 * Parses decimal digits only, min to max.  "-5" and overflow are out of
 * range rather than syntax ("-0" is 0).  *out is set on success only.
 */
enum conf_number_status conf_parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/*
 * Parses a byte count with an optional binary suffix: "65536", "64K",
 * "8M" (either case), min to max bytes; otherwise as conf_parse_number().
 * The configuration's sizes are plain numbers; hepdump --rcvbuf takes this.
 */
enum conf_number_status conf_parse_size(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* "host:port" or "[IPv6]:port", split in place. */
struct conf_host_port {
    const char *host;               /* into the text, not NUL-terminated, no brackets */
    size_t hlen;                    /* may be 0 */
    bool bracketed;
    unsigned port;                  /* 0 to 65535 */
};

/*
 * Splits text and reads its port (1 to 5 digits, 0 to 65535); NULL or a
 * predicate.  The host is not checked: callers that resolve names hand it
 * to getaddrinfo(), the others parse it as an address.
 */
const char *conf_split_host_port(const char *text, struct conf_host_port *hp);

/*
 * Parses "udp:1.2.3.4:5" / "tcp:[::1]:5"; returns NULL or a short predicate.
 * Port 0 is accepted here (listen allows it, targets do not).  On failure
 * *out is all zeroes.
 */
const char *conf_parse_addr(const char *text, struct conf_addr *out);

/*
 * Parses a destination target: what conf_parse_addr() takes, or a DNS name
 * in place of the address ("tcp:collector.example.net:9060", letters,
 * digits, '-', '_' and dots, at most CONF_HOST_NAME_MAX bytes, the last
 * label not all digits).  A name is only checked for its form, never looked
 * up: out->host gets it and out->addr_len is 0.
 */
const char *conf_parse_target(const char *text, struct conf_addr *out);

/*
 * Parses "250ms", "30s", "5m", "4h" (a bare number is seconds; whole numbers
 * only, so "1.5s" is refused); NULL or a predicate.  *ms is set on success only.
 */
const char *conf_parse_duration(const char *text, uint64_t *ms);

/*
 * Parses "10.0.0.0/8", "::1", "2001:db8::/32" (a bare address is /32 or
 * /128; bits set beyond the prefix are refused); NULL or a predicate.
 */
const char *conf_parse_cidr(const char *text, struct conf_cidr *out);

/* Whether addr (addr_len bytes, network order; NULL: none) is inside c. */
bool conf_cidr_contains(const struct conf_cidr *c, unsigned addr_len, const uint8_t *addr);

/* Whether addr is inside any of list[0..n). */
bool conf_cidr_any(const struct conf_cidr *list, size_t n, unsigned addr_len, const uint8_t *addr);

/*
 * Sets origin_header_first from the routes with origin keys: the first
 * byte of each header: name and of User-Agent when a route has user_agent,
 * in both cases.  Loading does it; so does a configuration built by hand.
 */
void conf_origin_headers(struct conf *c);

/* ---- reload ---------------------------------------------------------------- */

/*
 * The origin bit in next of the route that has origin bit `bit` in old: the
 * route of the same name, when its origin keys are the same; else -1.
 */
int conf_origin_bit_after(const struct conf *old, int bit, const struct conf *next);

/* The rate bit in next of the destination that has rate bit `bit` in old (by name), or -1. */
int conf_rate_bit_after(const struct conf *old, int bit, const struct conf *next);

/* Receives one line of conf_describe_changes() or conf_restart_changes(), without a newline. */
typedef void (*conf_line_fn)(void *arg, const char *line);

/*
 * One line per difference an operator cares about between two loaded
 * configurations, in words, for every key that can change at reload:
 *   "listen udp:0.0.0.0:9061: added", "listen tcp:0.0.0.0:9060: removed",
 *   "destination homer: targets [udp:10.0.0.1:9060] -> [udp:10.0.0.2:9060]",
 *   "destination x: balance hash -> all", "destination x: added" / "removed",
 *   "route invite-calls: to [voipmonitor] -> [voipmonitor, homer]",
 *   "route x: match method [INVITE] -> [INVITE, BYE]" (an absent list is "any"),
 *   "route new-customer: added (method [INVITE], to [homer])", "route x: removed",
 *   "routes reordered: [a, b] -> [b, a]" (the routes in both, as the order
 *   decides which matches first), "default: [homer] -> [voipmonitor]",
 *   "ttl.call: 2h -> 4h", "log.level: info -> debug".
 * Destinations and routes are paired by name.  Durations are written as in
 * the file (4h, 250ms), sizes as numbers; secrets (auth_key) as "changed".
 * Lines are cut at CONF_LINE_MAX bytes.  Returns the number of lines.
 */
size_t conf_describe_changes(const struct conf *old, const struct conf *new, conf_line_fn fn, void *arg);

/*
 * One line per key that cannot change at reload and differs:
 *   "workers: 2 -> 4 (needs a restart; 2 kept)".
 * Returns the number of lines.
 */
size_t conf_restart_changes(const struct conf *old, const struct conf *new, conf_line_fn fn, void *arg);

/*
 * Copies the value of every key that cannot change at reload from running
 * into next (strings and lists deep-copied, e.g. store.redis.*), so next can
 * replace running while the process keeps what needs a restart.  Returns 0,
 * or -1 when out of memory (next then holds a mix of both, and is still safe
 * to conf_free()).
 */
int conf_keep_restart_values(struct conf *next, const struct conf *running);

/* Same transport, address bytes or host name, and port (the text is not compared). */
bool conf_addr_equal(const struct conf_addr *a, const struct conf_addr *b);

/* Every field equal, name included, targets in the same order. */
bool conf_dest_equal(const struct conf_dest *a, const struct conf_dest *b);

/* The destination has a tcp: target (a stream: framed by the HEP3 length; a spool may keep for it). */
bool conf_dest_has_tcp(const struct conf_dest *d);

/* The destination rewrites chunks (capture_id, node_name, auth_key, strip_auth_key). */
bool conf_dest_rewrites(const struct conf_dest *d);

/*
 * The destination emits HEPv3 whatever it receives: hep_version 3, a chunk
 * rewrite (the packet is re-encoded), or a tcp: target.
 */
bool conf_dest_emits_v3(const struct conf_dest *d);

/* The longest line the reload functions hand over, NUL included. */
#define CONF_LINE_MAX 4096

/*
 * For tests only: from now on, the n-th memory allocation made by conf_load()
 * or conf_keep_restart_values() fails (n = 0: none does), so every
 * out-of-memory path can be walked.
 * Not thread-safe; the router never calls it.
 */
void conf_fail_alloc(unsigned long n);

#endif
