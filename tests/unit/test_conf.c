/*
 * test_conf.c - unit tests for the configuration loader (src/conf/).
 *
 * Data-driven like pgbouncer's rule tests: every tests/conf/bad-NAME.yaml
 * must fail to load and print exactly tests/conf/bad-NAME.err, and every
 * tests/conf/good-NAME.yaml must load and print nothing.  The test runs
 * inside TEST_CONF_DIR and loads the fixtures by their bare names, which is
 * how the .err files spell them.  Around that: the sample etc/heprouter.yaml
 * and its values, every key of good-full.yaml, the defaults, the public
 * value parsers, unreadable files, and a failed allocation at every point of
 * a load (no crash, no leak: run under ASan or valgrind).  Then reload: the
 * file's hash, the exact lines conf_describe_changes() and
 * conf_restart_changes() write for pairs of files, and
 * conf_keep_restart_values().
 */
#include "conf.h"
#include "hash.h"
#include "log.h"
#include "unit.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <syslog.h>
#include <unistd.h>

#ifndef TEST_CONF_DIR
#error "TEST_CONF_DIR must name tests/conf"
#endif
#ifndef TEST_ETC_DIR
#error "TEST_ETC_DIR must name etc"
#endif

#define SAMPLE_PATH         TEST_ETC_DIR "/heprouter.yaml"
#define FULL_PATH           "good-full.yaml"
#define MINIMAL_PATH        "good-minimal.yaml"
#define REDIS_PATH          "good-redis.yaml"
#define REDIS_MINIMAL_PATH  "good-redis-minimal.yaml"
#define SENTINELS_PATH      "good-redis-sentinels.yaml"
#define UNIX_PATH           "good-redis-unix.yaml"
#define PASSWORD_MAX        1024    /* conf/internal.h: CONF_PASSWORD_MAX */
#define MANY_PATH           "bad-many.yaml"
#define FIXTURES_MIN        90      /* fewer means the directory was not found */
#define ALLOC_STEPS_MAX     100000  /* a load makes far fewer allocations */
#define FILE_LIMIT          (1024 * 1024)   /* conf/internal.h: CONF_FILE_MAX */

#define MS_S                UINT64_C(1000)
#define MS_M                (60 * MS_S)
#define MS_H                (60 * MS_M)

/* ---- helpers ------------------------------------------------------------------- */

/* Loads path; *out gets everything conf_load() printed (malloc'ed, never NULL). */
static struct conf *load(const char *path, char **out)
{
    size_t size = 0;
    *out = NULL;
    FILE *f = open_memstream(out, &size);
    CU_ASSERT_FATAL(f != NULL);
    struct conf *c = conf_load(path, f);
    fclose(f);
    CU_ASSERT_FATAL(*out != NULL);
    return c;
}

/* Loads a fixture that must load without a word. */
static struct conf *load_ok(const char *path)
{
    char *out;
    struct conf *c = load(path, &out);
    if (c == NULL || *out != '\0')
        fprintf(stderr, "\n%s: expected no output, got:\n%s", path, out);
    CU_ASSERT(*out == '\0');
    CU_ASSERT_FATAL(c != NULL);
    free(out);
    return c;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return NULL;
    }
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    int c;
    while ((c = getc(f)) != EOF)
        putc(c, m);
    fclose(m);
    fclose(f);
    return buf;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in the current directory (TEST_CONF_DIR) with prefix and suffix, sorted. */
static size_t list_fixtures(const char *prefix, const char *suffix, char ***names)
{
    DIR *d = opendir(".");
    CU_ASSERT_FATAL(d != NULL);
    size_t n = 0, cap = 0;
    *names = NULL;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || !has_suffix(e->d_name, suffix))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            *names = realloc(*names, cap * sizeof **names);
            CU_ASSERT_FATAL(*names != NULL);
        }
        (*names)[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(*names, n, sizeof **names, name_cmp);
    return n;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* "bad-x.yaml" -> "bad-x.err" */
static char *err_name(const char *yaml)
{
    size_t stem = strlen(yaml) - strlen(".yaml");
    char *name = malloc(stem + sizeof ".err");
    CU_ASSERT_FATAL(name != NULL);
    memcpy(name, yaml, stem);
    strcpy(name + stem, ".err");
    return name;
}

static void assert_addr(const struct conf_addr *a, enum conf_transport t, const char *ip, unsigned port)
{
    char buf[INET6_ADDRSTRLEN] = "";
    CU_ASSERT_EQUAL(a->transport, t);
    CU_ASSERT_EQUAL(a->port, port);
    CU_ASSERT(a->addr_len == sizeof(struct in_addr) || a->addr_len == sizeof(struct in6_addr));
    inet_ntop(a->addr_len == sizeof(struct in_addr) ? AF_INET : AF_INET6, a->addr, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, ip);
}

static void assert_cidr(const struct conf_cidr *c, int family, const char *ip, unsigned prefix)
{
    char buf[INET6_ADDRSTRLEN] = "";
    CU_ASSERT_EQUAL(c->addr_len, family == AF_INET6 ? 16u : 4u);
    inet_ntop(family, c->addr, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, ip);
    CU_ASSERT_EQUAL(c->prefix, prefix);
}

/* Writes len bytes to a new temporary file; path gets its name (PATH_MAX bytes). */
static void write_temp(char *path, const char *data, size_t len)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, PATH_MAX, "%s/test_conf.XXXXXX", dir != NULL && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, data, len) == (ssize_t)len);
    close(fd);
}

/* The defaults of store.redis and store.cache, whatever store.type is. */
static void assert_redis_defaults(const struct conf *c)
{
    const struct conf_redis *r = &c->redis;
    CU_ASSERT_STRING_EQUAL(r->host, "127.0.0.1");
    CU_ASSERT_PTR_NULL(r->unix_path);
    CU_ASSERT_EQUAL(r->port, 6379);
    CU_ASSERT_EQUAL(r->db, 0);
    CU_ASSERT_PTR_NULL(r->username);
    CU_ASSERT_PTR_NULL(r->password);
    CU_ASSERT_PTR_NULL(r->password_file);
    CU_ASSERT_STRING_EQUAL(r->prefix, "heprouter:");
    CU_ASSERT_EQUAL(r->timeout_ms, 50);
    CU_ASSERT_EQUAL(r->max_inflight, 10000);
    CU_ASSERT_EQUAL(r->max_pending_writes, 100000);
    CU_ASSERT_EQUAL(r->write_delay_ms, 1);
    CU_ASSERT_EQUAL(r->max_reply_bytes, 65536);
    CU_ASSERT_PTR_NULL(r->sentinels);
    CU_ASSERT_EQUAL(r->nsentinels, 0);
    CU_ASSERT_STRING_EQUAL(r->master_name, "mymaster");
    CU_ASSERT_EQUAL(c->cache_entries, 100000);
}

/* ---- fixtures ------------------------------------------------------------------ */

static void test_every_bad_fixture_prints_exactly_its_err_file(void)
{
    char **names;
    size_t n = list_fixtures("bad-", ".yaml", &names);
    CU_ASSERT(n >= FIXTURES_MIN);
    for (size_t i = 0; i < n; i++) {
        char *errfile = err_name(names[i]);
        char *expect = read_text(errfile);
        char *out;
        struct conf *c = load(names[i], &out);
        CU_ASSERT(c == NULL);
        CU_ASSERT(expect != NULL);
        if (expect != NULL && strcmp(expect, out) != 0)
            fprintf(stderr, "\n%s: expected (%s):\n%s--- got:\n%s", names[i], errfile, expect, out);
        CU_ASSERT(expect != NULL && strcmp(expect, out) == 0);
        conf_free(c);
        free(out);
        free(expect);
        free(errfile);
    }
    free_names(names, n);
}

static void test_every_err_file_has_its_fixture(void)
{
    char **names;
    size_t n = list_fixtures("", ".err", &names);
    CU_ASSERT(n >= FIXTURES_MIN);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT(strncmp(names[i], "bad-", strlen("bad-")) == 0);
        size_t stem = strlen(names[i]) - strlen(".err");
        char yaml[NAME_MAX + 1];
        snprintf(yaml, sizeof yaml, "%.*s.yaml", (int)stem, names[i]);
        if (access(yaml, R_OK) != 0)
            fprintf(stderr, "\n%s: no %s\n", names[i], yaml);
        CU_ASSERT(access(yaml, R_OK) == 0);
    }
    free_names(names, n);
}

static void test_every_good_fixture_loads_silently(void)
{
    char **names;
    size_t n = list_fixtures("good-", ".yaml", &names);
    CU_ASSERT(n >= 2);
    for (size_t i = 0; i < n; i++)
        conf_free(load_ok(names[i]));
    free_names(names, n);
}

static void test_the_same_file_gives_the_same_errors_twice(void)
{
    char *a, *b;
    CU_ASSERT(load(MANY_PATH, &a) == NULL);
    CU_ASSERT(load(MANY_PATH, &b) == NULL);
    CU_ASSERT_STRING_EQUAL(a, b);
    free(a);
    free(b);
}

static void test_a_null_error_stream_prints_nothing_and_still_fails(void)
{
    CU_ASSERT(conf_load(MANY_PATH, NULL) == NULL);
    CU_ASSERT(conf_load("no-such-file.yaml", NULL) == NULL);
}

/* ---- files that cannot be read ------------------------------------------------- */

static void test_a_missing_file_cannot_be_opened(void)
{
    char *out;
    CU_ASSERT(load("no-such-file.yaml", &out) == NULL);
    CU_ASSERT_STRING_EQUAL(out, "no-such-file.yaml: cannot open: No such file or directory\n");
    free(out);
}

static void test_a_directory_cannot_be_read(void)
{
    char *out;
    CU_ASSERT(load(".", &out) == NULL);
    CU_ASSERT_STRING_EQUAL(out, ".: cannot read: Is a directory\n");
    free(out);
}

static void test_a_file_above_one_mebibyte_is_refused(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/test_conf.XXXXXX", dir != NULL && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("listen: \"udp:127.0.0.1:9060\"\n", f);
    for (long i = ftell(f); i <= FILE_LIMIT; i++)
        putc(i % 64 == 63 ? '\n' : '#', f);
    fclose(f);

    char *out, expect[4200];
    snprintf(expect, sizeof expect, "%s: is larger than %d bytes\n", path, FILE_LIMIT);
    CU_ASSERT(load(path, &out) == NULL);
    CU_ASSERT_STRING_EQUAL(out, expect);
    free(out);
    unlink(path);
}

/* ---- out of memory --------------------------------------------------------------- */

/*
 * Fails allocation 1, 2, 3, ... of a load until the load gets through
 * without hitting the failure; every failed load must say "out of memory"
 * and return NULL.  ASan / valgrind report any leak on those paths.
 */
static void fail_every_allocation(const char *path, const char *clean_output, bool loads)
{
    unsigned long n;
    for (n = 1; n < ALLOC_STEPS_MAX; n++) {
        char *out;
        conf_fail_alloc(n);
        struct conf *c = load(path, &out);
        conf_fail_alloc(0);
        bool clean = strcmp(out, clean_output) == 0;
        if (!clean) {
            CU_ASSERT(c == NULL);
            CU_ASSERT(strstr(out, "out of memory\n") != NULL);
        }
        conf_free(c);
        free(out);
        if (clean) {
            CU_ASSERT((c != NULL) == loads);
            break;
        }
    }
    CU_ASSERT(n > 1);
    CU_ASSERT(n < ALLOC_STEPS_MAX);
}

static void test_out_of_memory_anywhere_fails_cleanly(void)
{
    fail_every_allocation(SAMPLE_PATH, "", true);
    char **names;
    size_t n = list_fixtures("good-", ".yaml", &names);
    for (size_t i = 0; i < n; i++)
        fail_every_allocation(names[i], "", true);
    free_names(names, n);

    /* every error path too */
    n = list_fixtures("bad-", ".yaml", &names);
    for (size_t i = 0; i < n; i++) {
        char *errfile = err_name(names[i]);
        char *expect = read_text(errfile);
        CU_ASSERT_FATAL(expect != NULL);
        fail_every_allocation(names[i], expect, false);
        free(expect);
        free(errfile);
    }
    free_names(names, n);
}

/* ---- values ---------------------------------------------------------------------- */

static void test_sample_loads_with_its_documented_values(void)
{
    struct conf *c = load_ok(SAMPLE_PATH);
    CU_ASSERT_STRING_EQUAL(c->path, SAMPLE_PATH);

    CU_ASSERT_EQUAL_FATAL(c->nlisten, 2);
    assert_addr(&c->listen[0], CONF_UDP, "127.0.0.1", 9060);
    assert_addr(&c->listen[1], CONF_TCP, "127.0.0.1", 9060);
    CU_ASSERT_STRING_EQUAL(c->listen[0].text, "udp:127.0.0.1:9060");
    CU_ASSERT_EQUAL(c->workers, 1);

    CU_ASSERT_EQUAL_FATAL(c->ndests, 2);
    long homer = conf_dest_index(c, "homer"), voipmonitor = conf_dest_index(c, "voipmonitor");
    CU_ASSERT_EQUAL_FATAL(homer, 0);
    CU_ASSERT_EQUAL_FATAL(voipmonitor, 1);
    CU_ASSERT_EQUAL_FATAL(c->dests[0].ntargets, 1);
    assert_addr(&c->dests[0].targets[0], CONF_UDP, "127.0.0.1", 9061);
    CU_ASSERT_EQUAL(c->dests[0].hep_version, 0);
    CU_ASSERT_EQUAL_FATAL(c->dests[1].ntargets, 1);
    assert_addr(&c->dests[1].targets[0], CONF_UDP, "127.0.0.1", 9062);
    CU_ASSERT_EQUAL(c->dests[1].hep_version, 3);

    CU_ASSERT_EQUAL_FATAL(c->nroutes, 2);
    const struct conf_route *r = &c->routes[0];
    CU_ASSERT_STRING_EQUAL(r->name, "route-1");
    CU_ASSERT_EQUAL_FATAL(r->match.nmethods, 2);
    CU_ASSERT_STRING_EQUAL(r->match.methods[0], "INVITE");
    CU_ASSERT_STRING_EQUAL(r->match.methods[1], "SUBSCRIBE");
    CU_ASSERT_EQUAL(r->match.nprotos + r->match.ncapture_ids + r->match.nsrc + r->match.ndst +
                    r->match.nstatus, 0);
    CU_ASSERT_EQUAL_FATAL(r->nto, 2);
    CU_ASSERT_EQUAL(r->to[0], (size_t)voipmonitor);
    CU_ASSERT_EQUAL(r->to[1], (size_t)homer);
    r = &c->routes[1];
    CU_ASSERT_STRING_EQUAL(r->name, "route-2");
    CU_ASSERT_EQUAL_FATAL(r->match.nmethods, 2);
    CU_ASSERT_STRING_EQUAL(r->match.methods[0], "REGISTER");
    CU_ASSERT_STRING_EQUAL(r->match.methods[1], "OPTIONS");
    CU_ASSERT_EQUAL_FATAL(r->nto, 1);
    CU_ASSERT_EQUAL(r->to[0], (size_t)homer);

    CU_ASSERT_EQUAL_FATAL(c->ndefault_to, 1);
    CU_ASSERT_EQUAL(c->default_to[0], (size_t)homer);
    conf_free(c);
}

static void test_minimal_config_gets_every_default(void)
{
    struct conf *c = load_ok(MINIMAL_PATH);
    CU_ASSERT_EQUAL_FATAL(c->nlisten, 1);
    assert_addr(&c->listen[0], CONF_UDP, "127.0.0.1", 9060);
    CU_ASSERT_EQUAL(c->workers, 1);
    CU_ASSERT_EQUAL(c->store_type, CONF_STORE_MEMORY);
    CU_ASSERT_EQUAL(c->store_max_calls, 2000000);
    CU_ASSERT_EQUAL(c->ttl_call_ms, 4 * MS_H);
    CU_ASSERT_EQUAL(c->ttl_register_ms, 1 * MS_H);
    CU_ASSERT_EQUAL(c->ttl_ended_ms, 30 * MS_S);
    CU_ASSERT_EQUAL(c->orphans_wait_ms, 50);
    CU_ASSERT_EQUAL(c->orphans_max_held, 100000);
    CU_ASSERT_EQUAL(c->orphans_max_bytes, 67108864);
    CU_ASSERT_EQUAL(c->call_id_max, 256);
    CU_ASSERT_EQUAL(c->tcp_max_connections, 1024);
    CU_ASSERT_EQUAL(c->fd_reserve, 64);
    CU_ASSERT_EQUAL(c->tcp_max_frame, 65535);
    CU_ASSERT_EQUAL(c->tcp_idle_timeout_ms, 10 * MS_M);
    CU_ASSERT_EQUAL(c->udp_batch, 64);
    CU_ASSERT_EQUAL(c->udp_rcvbuf, 8388608);
    CU_ASSERT_EQUAL(c->udp_coalesce_us, 250);
    CU_ASSERT_EQUAL(c->tcp_queue_bytes, 4194304);
    CU_ASSERT_EQUAL(c->reconnect_min_ms, 100);
    CU_ASSERT_EQUAL(c->reconnect_max_ms, 5 * MS_S);
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 2 * MS_S);
    CU_ASSERT_EQUAL(c->tcp_keepalive_idle_ms, 30 * MS_S);
    CU_ASSERT_EQUAL(c->tcp_keepalive_interval_ms, 5 * MS_S);
    CU_ASSERT_EQUAL(c->tcp_keepalive_count, 3);
    CU_ASSERT_EQUAL(c->tcp_user_timeout_ms, 20 * MS_S);
    CU_ASSERT_EQUAL(c->udp_refusals_down, 3);
    CU_ASSERT_EQUAL(c->drain_timeout_ms, 2 * MS_S);
    CU_ASSERT_EQUAL(c->log_level, LOG_LEVEL_INFO);
    CU_ASSERT_EQUAL(c->log_interval_ms, 10 * MS_S);
    CU_ASSERT_EQUAL(c->stats_interval_ms, 0);
    CU_ASSERT_EQUAL(c->log_target, CONF_LOG_STDERR);
    CU_ASSERT_EQUAL(c->log_facility, LOG_DAEMON);
    CU_ASSERT_EQUAL(c->metrics_listen.addr_len, 0);     /* off */
    CU_ASSERT_EQUAL(c->metrics_health_timeout_ms, 5 * MS_S);
    CU_ASSERT_EQUAL(c->metrics_max_connections, 16);
    CU_ASSERT_EQUAL(c->metrics_timeout_ms, 10 * MS_S);
    CU_ASSERT_PTR_NULL(c->control_socket);               /* off */
    CU_ASSERT_EQUAL(c->control_mode, 0660);
    CU_ASSERT_EQUAL(c->control_max_clients, 8);
    CU_ASSERT_EQUAL(c->control_timeout_ms, 5 * MS_S);
    CU_ASSERT_EQUAL(c->control_max_line, 4096);
    CU_ASSERT_EQUAL(c->control_tap_buffer, 1048576);
    CU_ASSERT_EQUAL(c->dedup_entries, 1048576);
    assert_redis_defaults(c);

    CU_ASSERT_EQUAL_FATAL(c->ndests, 1);
    const struct conf_dest *d = &c->dests[0];
    CU_ASSERT_STRING_EQUAL(d->name, "homer");
    CU_ASSERT_EQUAL_FATAL(d->ntargets, 1);
    assert_addr(&d->targets[0], CONF_UDP, "127.0.0.1", 9061);
    CU_ASSERT_EQUAL(d->balance, CONF_BALANCE_ALL);
    CU_ASSERT_EQUAL(d->hep_version, 0);
    CU_ASSERT_FALSE(d->set_capture_id);
    CU_ASSERT_PTR_NULL(d->node_name);
    CU_ASSERT_PTR_NULL(d->auth_key);
    CU_ASSERT_EQUAL(d->max_packet, 65535);

    CU_ASSERT_EQUAL(c->nroutes, 0);
    CU_ASSERT_PTR_NULL(c->routes);
    CU_ASSERT_EQUAL(c->ndefault_to, 0);
    CU_ASSERT_PTR_NULL(c->default_to);
    conf_free(c);
}

/* The sample shows every scalar key at its default: it must agree with the table. */
static void test_sample_shows_the_defaults(void)
{
    struct conf *s = load_ok(SAMPLE_PATH);
    struct conf *m = load_ok(MINIMAL_PATH);
    CU_ASSERT_EQUAL(s->workers, m->workers);
    CU_ASSERT_EQUAL(s->store_type, m->store_type);
    CU_ASSERT_EQUAL(s->store_max_calls, m->store_max_calls);
    CU_ASSERT_EQUAL(s->ttl_call_ms, m->ttl_call_ms);
    CU_ASSERT_EQUAL(s->ttl_register_ms, m->ttl_register_ms);
    CU_ASSERT_EQUAL(s->ttl_ended_ms, m->ttl_ended_ms);
    CU_ASSERT_EQUAL(s->orphans_wait_ms, m->orphans_wait_ms);
    CU_ASSERT_EQUAL(s->orphans_max_held, m->orphans_max_held);
    CU_ASSERT_EQUAL(s->orphans_max_bytes, m->orphans_max_bytes);
    CU_ASSERT_EQUAL(s->call_id_max, m->call_id_max);
    CU_ASSERT_EQUAL(s->tcp_max_connections, m->tcp_max_connections);
    CU_ASSERT_EQUAL(s->fd_reserve, m->fd_reserve);
    CU_ASSERT_EQUAL(s->tcp_max_frame, m->tcp_max_frame);
    CU_ASSERT_EQUAL(s->tcp_idle_timeout_ms, m->tcp_idle_timeout_ms);
    CU_ASSERT_EQUAL(s->udp_batch, m->udp_batch);
    CU_ASSERT_EQUAL(s->udp_rcvbuf, m->udp_rcvbuf);
    CU_ASSERT_EQUAL(s->udp_coalesce_us, m->udp_coalesce_us);
    CU_ASSERT_EQUAL(s->tcp_queue_bytes, m->tcp_queue_bytes);
    CU_ASSERT_EQUAL(s->reconnect_min_ms, m->reconnect_min_ms);
    CU_ASSERT_EQUAL(s->reconnect_max_ms, m->reconnect_max_ms);
    CU_ASSERT_EQUAL(s->connect_timeout_ms, m->connect_timeout_ms);
    CU_ASSERT_EQUAL(s->tcp_keepalive_idle_ms, m->tcp_keepalive_idle_ms);
    CU_ASSERT_EQUAL(s->tcp_keepalive_interval_ms, m->tcp_keepalive_interval_ms);
    CU_ASSERT_EQUAL(s->tcp_keepalive_count, m->tcp_keepalive_count);
    CU_ASSERT_EQUAL(s->tcp_user_timeout_ms, m->tcp_user_timeout_ms);
    CU_ASSERT_EQUAL(s->udp_refusals_down, m->udp_refusals_down);
    CU_ASSERT_EQUAL(s->drain_timeout_ms, m->drain_timeout_ms);
    CU_ASSERT_EQUAL(s->log_level, m->log_level);
    CU_ASSERT_EQUAL(s->log_interval_ms, m->log_interval_ms);
    CU_ASSERT_EQUAL(s->stats_interval_ms, m->stats_interval_ms);
    CU_ASSERT_EQUAL(s->log_target, m->log_target);
    CU_ASSERT_EQUAL(s->log_facility, m->log_facility);
    CU_ASSERT_EQUAL(s->metrics_health_timeout_ms, m->metrics_health_timeout_ms);
    CU_ASSERT_EQUAL(s->metrics_max_connections, m->metrics_max_connections);
    CU_ASSERT_EQUAL(s->metrics_timeout_ms, m->metrics_timeout_ms);
    CU_ASSERT_EQUAL(s->control_mode, m->control_mode);
    CU_ASSERT_EQUAL(s->control_max_clients, m->control_max_clients);
    CU_ASSERT_EQUAL(s->control_timeout_ms, m->control_timeout_ms);
    CU_ASSERT_EQUAL(s->control_max_line, m->control_max_line);
    CU_ASSERT_EQUAL(s->control_tap_buffer, m->control_tap_buffer);
    CU_ASSERT_EQUAL(s->dedup_entries, m->dedup_entries);
    CU_ASSERT_EQUAL(s->dests[0].balance, m->dests[0].balance);
    CU_ASSERT_EQUAL(s->dests[0].max_packet, m->dests[0].max_packet);
    assert_redis_defaults(s);           /* its redis block is commented out */
    conf_free(s);
    conf_free(m);
}

/* The sidecar sample (README, heprouter(8)): a spool on its TCP destination, as its comments say. */
static void test_sidecar_sample_has_a_spool(void)
{
    struct conf *c = load_ok(TEST_ETC_DIR "/heprouter-sidecar.yaml");
    CU_ASSERT_EQUAL_FATAL(c->ndests, 1);
    CU_ASSERT_EQUAL(c->dests[0].targets[0].transport, CONF_TCP);
    CU_ASSERT_STRING_EQUAL(c->dests[0].spool.dir, "/var/lib/heprouter/spool/collector");
    CU_ASSERT_EQUAL(c->dests[0].spool.max_bytes, 1073741824u);
    CU_ASSERT_EQUAL(c->dests[0].spool.max_age_ms, 24u * 3600u * 1000u);
    CU_ASSERT_EQUAL(c->dests[0].spool.replay_rate, 20000u);
    conf_free(c);
}

static void test_full_config_sets_every_key(void)
{
    struct conf *c = load_ok(FULL_PATH);
    CU_ASSERT_EQUAL_FATAL(c->nlisten, 3);
    assert_addr(&c->listen[0], CONF_UDP, "127.0.0.1", 9060);
    assert_addr(&c->listen[1], CONF_TCP, "::1", 9070);
    assert_addr(&c->listen[2], CONF_UDP, "0.0.0.0", 0);
    CU_ASSERT_STRING_EQUAL(c->listen[1].text, "tcp:[::1]:9070");
    CU_ASSERT_EQUAL(c->workers, 4);
    CU_ASSERT_EQUAL(c->store_type, CONF_STORE_MEMORY);
    CU_ASSERT_EQUAL(c->store_max_calls, 5000);
    CU_ASSERT_EQUAL(c->ttl_call_ms, 2 * MS_H);
    CU_ASSERT_EQUAL(c->ttl_register_ms, 30 * MS_M);
    CU_ASSERT_EQUAL(c->ttl_ended_ms, 45 * MS_S);
    CU_ASSERT_EQUAL(c->orphans_wait_ms, 0);
    CU_ASSERT_EQUAL(c->orphans_max_held, 10);
    CU_ASSERT_EQUAL(c->orphans_max_bytes, 65535);
    CU_ASSERT_EQUAL(c->call_id_max, 128);
    CU_ASSERT_EQUAL(c->tcp_max_connections, 16);
    CU_ASSERT_EQUAL(c->fd_reserve, 32);
    CU_ASSERT_EQUAL(c->tcp_max_frame, 8192);
    CU_ASSERT_EQUAL(c->tcp_idle_timeout_ms, 90 * MS_S);
    CU_ASSERT_EQUAL(c->udp_batch, 8);
    CU_ASSERT_EQUAL(c->udp_rcvbuf, 0);
    CU_ASSERT_EQUAL(c->udp_coalesce_us, 40);
    CU_ASSERT_EQUAL(c->tcp_queue_bytes, 65535);
    CU_ASSERT_EQUAL(c->reconnect_min_ms, 250);
    CU_ASSERT_EQUAL(c->reconnect_max_ms, 1 * MS_M);
    CU_ASSERT_EQUAL(c->connect_timeout_ms, 1500);
    CU_ASSERT_EQUAL(c->tcp_keepalive_idle_ms, 1 * MS_M);
    CU_ASSERT_EQUAL(c->tcp_keepalive_interval_ms, 10 * MS_S);
    CU_ASSERT_EQUAL(c->tcp_keepalive_count, 5);
    CU_ASSERT_EQUAL(c->tcp_user_timeout_ms, 0);
    CU_ASSERT_EQUAL(c->udp_refusals_down, 1);
    CU_ASSERT_EQUAL(c->drain_timeout_ms, 0);
    CU_ASSERT_EQUAL(c->log_level, LOG_LEVEL_DEBUG);
    CU_ASSERT_EQUAL(c->log_interval_ms, 1 * MS_M);
    CU_ASSERT_EQUAL(c->stats_interval_ms, 15 * MS_S);
    CU_ASSERT_EQUAL(c->log_target, CONF_LOG_SYSLOG);
    CU_ASSERT_EQUAL(c->log_facility, LOG_LOCAL3);
    CU_ASSERT_EQUAL(c->metrics_listen.transport, CONF_TCP);
    assert_addr(&c->metrics_listen, CONF_TCP, "::1", 0);
    CU_ASSERT_STRING_EQUAL(c->metrics_listen.text, "[::1]:0");
    CU_ASSERT_EQUAL(c->metrics_health_timeout_ms, 2 * MS_S);
    CU_ASSERT_EQUAL(c->metrics_max_connections, 4);
    CU_ASSERT_EQUAL(c->metrics_timeout_ms, 30 * MS_S);
    CU_ASSERT_STRING_EQUAL(c->control_socket, "heprouter.sock");
    CU_ASSERT_EQUAL(c->control_mode, 0600);
    CU_ASSERT_EQUAL(c->control_max_clients, 2);
    CU_ASSERT_EQUAL(c->control_timeout_ms, 1 * MS_M);
    CU_ASSERT_EQUAL(c->control_max_line, 64);

    CU_ASSERT_EQUAL_FATAL(c->ndests, 4);
    const struct conf_dest *d = &c->dests[0];
    CU_ASSERT_STRING_EQUAL(d->name, "homer");
    CU_ASSERT_EQUAL_FATAL(d->ntargets, 1);
    assert_addr(&d->targets[0], CONF_UDP, "127.0.0.1", 9061);
    d = &c->dests[1];
    CU_ASSERT_STRING_EQUAL(d->name, "voipmonitor");
    CU_ASSERT_EQUAL_FATAL(d->ntargets, 2);
    assert_addr(&d->targets[0], CONF_TCP, "127.0.0.1", 9062);
    assert_addr(&d->targets[1], CONF_TCP, "2001:db8::1", 9062);
    CU_ASSERT_EQUAL(d->balance, CONF_BALANCE_FAILOVER);
    CU_ASSERT_EQUAL(d->hep_version, 3);
    CU_ASSERT_TRUE(d->set_capture_id);
    CU_ASSERT_EQUAL(d->capture_id, UINT32_MAX);
    CU_ASSERT_STRING_EQUAL(d->node_name, "edge-1");
    CU_ASSERT_STRING_EQUAL(d->auth_key, "s3cret key");
    CU_ASSERT_EQUAL(d->max_packet, 8192);
    d = &c->dests[2];
    CU_ASSERT_STRING_EQUAL(d->name, "archive");
    CU_ASSERT_EQUAL(d->ntargets, 3);
    CU_ASSERT_EQUAL(d->balance, CONF_BALANCE_HASH);
    CU_ASSERT_FALSE(d->set_capture_id);
    d = &c->dests[3];
    CU_ASSERT_STRING_EQUAL(d->name, "spread");
    CU_ASSERT_EQUAL(d->ntargets, 2);
    CU_ASSERT_EQUAL(d->balance, CONF_BALANCE_ROUND_ROBIN);
    CU_ASSERT_TRUE(d->set_capture_id);
    CU_ASSERT_EQUAL(d->capture_id, 0);

    CU_ASSERT_EQUAL_FATAL(c->nroutes, 5);
    const struct conf_match *m = &c->routes[0].match;
    CU_ASSERT_STRING_EQUAL(c->routes[0].name, "calls");
    CU_ASSERT_EQUAL_FATAL(m->nmethods, 2);
    CU_ASSERT_STRING_EQUAL(m->methods[0], "INVITE");
    CU_ASSERT_STRING_EQUAL(m->methods[1], "SUBSCRIBE");
    CU_ASSERT_EQUAL_FATAL(m->nprotos, 4);
    CU_ASSERT_EQUAL(m->protos[0], 1);
    CU_ASSERT_EQUAL(m->protos[1], 5);
    CU_ASSERT_EQUAL(m->protos[2], 100);
    CU_ASSERT_EQUAL(m->protos[3], 32);
    CU_ASSERT_EQUAL_FATAL(m->ncapture_ids, 2);
    CU_ASSERT_EQUAL(m->capture_ids[0], 0);
    CU_ASSERT_EQUAL(m->capture_ids[1], 2001);
    CU_ASSERT_EQUAL_FATAL(m->nsrc, 2);
    assert_cidr(&m->src[0], AF_INET, "10.0.0.0", 8);
    assert_cidr(&m->src[1], AF_INET6, "2001:db8::", 32);
    CU_ASSERT_EQUAL_FATAL(m->ndst, 2);
    assert_cidr(&m->dst[0], AF_INET, "192.0.2.1", 32);
    assert_cidr(&m->dst[1], AF_INET6, "::1", 128);
    CU_ASSERT_EQUAL_FATAL(m->nstatus, 2);
    CU_ASSERT_EQUAL(m->status[0].lo, 407);
    CU_ASSERT_EQUAL(m->status[0].hi, 407);
    CU_ASSERT_EQUAL(m->status[1].lo, 400);
    CU_ASSERT_EQUAL(m->status[1].hi, 499);
    CU_ASSERT_EQUAL_FATAL(c->routes[0].nto, 2);
    CU_ASSERT_EQUAL(c->routes[0].to[0], 1);
    CU_ASSERT_EQUAL(c->routes[0].to[1], 0);

    CU_ASSERT_EQUAL_FATAL(c->routes[1].nto, 1);
    CU_ASSERT_EQUAL(c->routes[1].to[0], 0);
    CU_ASSERT_EQUAL_FATAL(c->routes[3].match.nstatus, 1);
    CU_ASSERT_EQUAL(c->routes[3].match.status[0].lo, 200);
    CU_ASSERT_EQUAL(c->routes[3].match.status[0].hi, 299);
    m = &c->routes[4].match;
    CU_ASSERT_EQUAL(m->nmethods + m->nprotos + m->ncapture_ids + m->nsrc + m->ndst + m->nstatus, 0);
    CU_ASSERT_EQUAL_FATAL(c->routes[4].nto, 2);
    CU_ASSERT_EQUAL(c->routes[4].to[0], 2);
    CU_ASSERT_EQUAL(c->routes[4].to[1], 3);

    CU_ASSERT_EQUAL_FATAL(c->ndefault_to, 1);
    CU_ASSERT_EQUAL(c->default_to[0], 2);
    conf_free(c);
}

static void test_unnamed_routes_are_named_route_n_from_one(void)
{
    struct conf *c = load_ok(FULL_PATH);
    CU_ASSERT_EQUAL_FATAL(c->nroutes, 5);
    CU_ASSERT_STRING_EQUAL(c->routes[0].name, "calls");
    CU_ASSERT_STRING_EQUAL(c->routes[1].name, "route-2");
    CU_ASSERT_STRING_EQUAL(c->routes[2].name, "route-3");
    CU_ASSERT_STRING_EQUAL(c->routes[3].name, "quiet");
    CU_ASSERT_STRING_EQUAL(c->routes[4].name, "route-5");
    conf_free(c);
}

static void test_empty_to_and_drop_true_discard(void)
{
    struct conf *c = load_ok(FULL_PATH);
    CU_ASSERT_EQUAL_FATAL(c->nroutes, 5);
    CU_ASSERT_EQUAL(c->routes[2].nto, 0);       /* to: [] */
    CU_ASSERT_EQUAL(c->routes[3].nto, 0);       /* drop: true */
    CU_ASSERT_EQUAL(c->routes[4].nto, 2);       /* drop: false with to */
    conf_free(c);
}

static void test_dest_index_finds_names(void)
{
    struct conf *c = load_ok(FULL_PATH);
    CU_ASSERT_EQUAL(conf_dest_index(c, "homer"), 0);
    CU_ASSERT_EQUAL(conf_dest_index(c, "voipmonitor"), 1);
    CU_ASSERT_EQUAL(conf_dest_index(c, "spread"), 3);
    CU_ASSERT_EQUAL(conf_dest_index(c, "Homer"), -1);
    CU_ASSERT_EQUAL(conf_dest_index(c, ""), -1);
    conf_free(c);
}

/* ---- store.redis ------------------------------------------------------------------ */

static void test_type_redis_alone_takes_every_redis_default(void)
{
    struct conf *c = load_ok(REDIS_MINIMAL_PATH);
    CU_ASSERT_EQUAL(c->store_type, CONF_STORE_REDIS);
    CU_ASSERT_EQUAL(c->store_max_calls, 2000000);
    assert_redis_defaults(c);
    conf_free(c);
}

static void test_redis_config_sets_every_tcp_key(void)
{
    struct conf *c = load_ok(REDIS_PATH);
    const struct conf_redis *r = &c->redis;
    CU_ASSERT_EQUAL(c->store_type, CONF_STORE_REDIS);
    CU_ASSERT_EQUAL(c->store_max_calls, 1000);
    CU_ASSERT_STRING_EQUAL(r->host, "redis.example.internal");
    CU_ASSERT_PTR_NULL(r->unix_path);
    CU_ASSERT_EQUAL(r->port, 6380);
    CU_ASSERT_EQUAL(r->db, 1000000);
    CU_ASSERT_STRING_EQUAL(r->username, "heprouter");
    CU_ASSERT_STRING_EQUAL(r->password, "s3cret: pass");
    CU_ASSERT_PTR_NULL(r->password_file);
    CU_ASSERT_STRING_EQUAL(r->prefix, "hr{eu-1}:");
    CU_ASSERT_EQUAL(r->timeout_ms, 60000);
    CU_ASSERT_EQUAL(r->max_inflight, 1);
    CU_ASSERT_EQUAL(r->max_pending_writes, 0);
    CU_ASSERT_EQUAL(r->write_delay_ms, 1000);
    CU_ASSERT_EQUAL(r->nsentinels, 0);
    CU_ASSERT_STRING_EQUAL(r->master_name, "mymaster");
    CU_ASSERT_EQUAL(c->cache_entries, 0);
    conf_free(c);
}

/* A Sentinel: kept as written (for the logs), host and port parsed once, here. */
static void assert_endpoint(const struct conf_endpoint *e, const char *text, const char *host, unsigned port)
{
    CU_ASSERT_STRING_EQUAL(e->text, text);
    CU_ASSERT_STRING_EQUAL(e->host, host);
    CU_ASSERT_EQUAL(e->port, port);
}

static void test_sentinels_are_kept_as_written_and_the_password_file_is_read(void)
{
    struct conf *c = load_ok(SENTINELS_PATH);
    const struct conf_redis *r = &c->redis;
    CU_ASSERT_EQUAL(c->store_type, CONF_STORE_REDIS);
    CU_ASSERT_EQUAL_FATAL(r->nsentinels, 4);
    assert_endpoint(&r->sentinels[0], "10.0.0.1:26379", "10.0.0.1", 26379);
    assert_endpoint(&r->sentinels[1], "[2001:db8::7]:26380", "2001:db8::7", 26380);
    assert_endpoint(&r->sentinels[2], "sentinel-2.example:1", "sentinel-2.example", 1);
    assert_endpoint(&r->sentinels[3], "redis_sentinel:65535", "redis_sentinel", 65535);
    CU_ASSERT_STRING_EQUAL(r->master_name, "eu-1");
    CU_ASSERT_PTR_NULL(r->username);                /* "" */
    CU_ASSERT_STRING_EQUAL(r->password_file, "redis-password.txt");
    CU_ASSERT_STRING_EQUAL(r->password, "pass word #1");  /* the first line only */
    CU_ASSERT_STRING_EQUAL(r->host, "127.0.0.1");
    CU_ASSERT_EQUAL(r->port, 6379);
    CU_ASSERT_EQUAL(c->cache_entries, 100000000);
    conf_free(c);
}

static void test_sentinel_hosts_and_ports_come_out_parsed(void)
{
    static const char yaml[] =
        "listen: \"udp:127.0.0.1:9060\"\n"
        "destinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n"
        "store: { type: redis, redis: { sentinels: [ \"[::1]:26379\", \"redis-a:26380\" ] } }\n";
    char path[PATH_MAX];
    write_temp(path, yaml, sizeof yaml - 1);
    struct conf *c = load_ok(path);
    const struct conf_redis *r = &c->redis;
    CU_ASSERT_EQUAL_FATAL(r->nsentinels, 2);
    assert_endpoint(&r->sentinels[0], "[::1]:26379", "::1", 26379);
    assert_endpoint(&r->sentinels[1], "redis-a:26380", "redis-a", 26380);
    conf_free(c);
    unlink(path);
}

static void test_a_unix_socket_leaves_no_host(void)
{
    struct conf *c = load_ok(UNIX_PATH);
    const struct conf_redis *r = &c->redis;
    CU_ASSERT_STRING_EQUAL(r->unix_path, "/run/redis/redis-server.sock");
    CU_ASSERT_PTR_NULL(r->host);
    CU_ASSERT_EQUAL(r->port, 6379);
    CU_ASSERT_PTR_NULL(r->password);                /* "" */
    CU_ASSERT_PTR_NULL(r->sentinels);               /* [] */
    CU_ASSERT_EQUAL(r->nsentinels, 0);
    conf_free(c);
}

/* The bounds: 65535 (one largest packet) in good-full.yaml, 1 TiB here. */
static void test_orphans_max_bytes_takes_up_to_one_tebibyte(void)
{
    struct conf *c = load_ok("good-orphans-max-bytes.yaml");
    uint64_t tib = UINT64_C(1) << 40;
    CU_ASSERT_EQUAL(c->orphans_max_bytes, tib > SIZE_MAX ? SIZE_MAX : (size_t)tib);
    CU_ASSERT_EQUAL(c->orphans_max_held, 100000);
    conf_free(c);
}

static void test_host_takes_a_bare_ipv6_address(void)
{
    struct conf *c = load_ok("good-redis-ipv6.yaml");
    CU_ASSERT_STRING_EQUAL(c->redis.host, "::1");
    conf_free(c);
}

/* store.redis.max_reply_bytes: from 1024 (a stored value is under 200 bytes) to 1 GiB. */
static void test_max_reply_bytes_takes_1024_to_one_gibibyte(void)
{
    static const struct {
        const char *value;
        size_t expect;              /* 0: refused with error */
        const char *error;
    } cases[] = {
        { "1024", 1024, NULL },
        { "1073741824", 1073741824, NULL },
        { "1023", 0, ": store.redis.max_reply_bytes \"1023\": must be between 1024 and 1073741824\n" },
        { "1073741825", 0, ": store.redis.max_reply_bytes \"1073741825\": must be between 1024 and 1073741824\n" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[PATH_MAX], yaml[512], *out;
        snprintf(yaml, sizeof yaml,
                 "listen: \"udp:127.0.0.1:9060\"\n"
                 "destinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n"
                 "store: { type: redis, redis: { max_reply_bytes: %s } }\n", cases[i].value);
        write_temp(path, yaml, strlen(yaml));
        struct conf *c = load(path, &out);
        if (cases[i].error == NULL) {
            CU_ASSERT_STRING_EQUAL(out, "");
            CU_ASSERT(c != NULL && c->redis.max_reply_bytes == cases[i].expect);
        } else {
            CU_ASSERT_PTR_NULL(c);
            CU_ASSERT_PTR_NOT_NULL(strstr(out, cases[i].error));
        }
        conf_free(c);
        free(out);
        unlink(path);
    }
}

/*
 * Loads a redis configuration whose password_file holds data; returns the
 * password (malloc'ed) or NULL, and in *out what conf_load() printed.
 */
static char *load_password_file(const char *data, size_t len, char **out)
{
    char pwpath[PATH_MAX], confpath[PATH_MAX];
    write_temp(pwpath, data, len);
    char *yaml = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&yaml, &size);
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "listen: \"udp:127.0.0.1:9060\"\n"
               "destinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n"
               "store: { type: redis, redis: { password_file: \"%s\" } }\n", pwpath);
    fclose(f);
    write_temp(confpath, yaml, strlen(yaml));
    struct conf *c = load(confpath, out);
    char *password = c != NULL && c->redis.password != NULL ? strdup(c->redis.password) : NULL;
    if (c != NULL) {
        CU_ASSERT_STRING_EQUAL(c->redis.password_file, pwpath);
    }
    conf_free(c);
    unlink(pwpath);
    unlink(confpath);
    free(yaml);
    return password;
}

static void assert_password_file(const char *data, size_t len, const char *expect)
{
    char *out;
    char *password = load_password_file(data, len, &out);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(password);
    CU_ASSERT_STRING_EQUAL(password, expect);
    free(password);
    free(out);
}

static void test_the_password_file_line_end_is_stripped(void)
{
    assert_password_file("pw\n", 3, "pw");
    assert_password_file("pw\r\n", 4, "pw");
    assert_password_file("pw", 2, "pw");                /* no line end at all */
    assert_password_file("pw\r", 3, "pw");
    assert_password_file("p\rw\n", 4, "p\rw");          /* only a final \r goes */
    assert_password_file(" pw \n", 5, " pw ");          /* spaces are kept */
    assert_password_file("pw\nsecond\n", 10, "pw");
}

static void test_the_password_file_takes_up_to_1024_bytes(void)
{
    char data[PASSWORD_MAX + 3], expect[PASSWORD_MAX + 1];
    memset(data, 'x', sizeof data);
    memset(expect, 'x', PASSWORD_MAX);
    expect[PASSWORD_MAX] = '\0';
    memcpy(data + PASSWORD_MAX, "\r\n", 2);
    assert_password_file(data, PASSWORD_MAX + 2, expect);
    data[PASSWORD_MAX] = '\n';
    assert_password_file(data, PASSWORD_MAX + 1, expect);
    assert_password_file(data, PASSWORD_MAX, expect);

    char *out;
    memcpy(data + PASSWORD_MAX + 1, "\r\n", 2);     /* 1025 bytes, then \r\n */
    data[PASSWORD_MAX] = 'x';
    CU_ASSERT_PTR_NULL(load_password_file(data, sizeof data, &out));
    CU_ASSERT(strstr(out, ": has a first line longer than 1024 bytes\n") != NULL);
    free(out);
}

static void test_password_errors_never_show_the_password(void)
{
    char *out;
    CU_ASSERT_PTR_NULL(load("bad-redis-password-too-long.yaml", &out));
    CU_ASSERT(strstr(out, "ppp") == NULL);
    free(out);
    CU_ASSERT_PTR_NULL(load("bad-redis-password-nul.yaml", &out));
    CU_ASSERT(strstr(out, "s3cret") == NULL);
    free(out);
    CU_ASSERT_PTR_NULL(load_password_file("abc\0def\n", 8, &out));
    CU_ASSERT(strstr(out, "abc") == NULL);
    CU_ASSERT(strstr(out, ": has a NUL byte in its first line\n") != NULL);
    free(out);
}

static void test_conf_free_accepts_null(void)
{
    conf_free(NULL);
}

/* ---- conf_parse_duration ------------------------------------------------------- */

static void assert_duration(const char *text, uint64_t expect)
{
    uint64_t ms = 12345;
    const char *why = conf_parse_duration(text, &ms);
    if (why != NULL)
        fprintf(stderr, "\n\"%s\": %s\n", text, why);
    CU_ASSERT_PTR_NULL(why);
    CU_ASSERT_EQUAL(ms, expect);
}

static void assert_bad_duration(const char *text, const char *expect)
{
    uint64_t ms = 12345;
    const char *why = conf_parse_duration(text, &ms);
    CU_ASSERT_PTR_NOT_NULL_FATAL(why);
    CU_ASSERT_STRING_EQUAL(why, expect);
    CU_ASSERT_EQUAL(ms, 12345);                 /* untouched on error */
}

static void test_durations_take_ms_s_m_h_and_bare_seconds(void)
{
    assert_duration("250ms", 250);
    assert_duration("30s", 30 * MS_S);
    assert_duration("5m", 5 * MS_M);
    assert_duration("4h", 4 * MS_H);
    assert_duration("10", 10 * MS_S);
    assert_duration("0", 0);
    assert_duration("0ms", 0);
    assert_duration("007s", 7 * MS_S);
    assert_duration("18446744073709551615ms", UINT64_MAX);
    assert_duration("5124095576030h", UINT64_C(5124095576030) * MS_H);
}

static void test_bad_durations_say_why(void)
{
    assert_bad_duration("", "is empty");
    assert_bad_duration("1.5s", "is not a valid duration");
    assert_bad_duration("-1s", "is not a valid duration");
    assert_bad_duration("+1s", "is not a valid duration");
    assert_bad_duration(" 5s", "is not a valid duration");
    assert_bad_duration("5s ", "is not a valid duration");
    assert_bad_duration("5 s", "is not a valid duration");
    assert_bad_duration("ms", "is not a valid duration");
    assert_bad_duration("1h30m", "is not a valid duration");
    assert_bad_duration("5x", "has an unknown unit (use ms, s, m or h)");
    assert_bad_duration("5S", "has an unknown unit (use ms, s, m or h)");
    assert_bad_duration("5sec", "has an unknown unit (use ms, s, m or h)");
    assert_bad_duration("2d", "has an unknown unit (use ms, s, m or h)");
    assert_bad_duration("18446744073709551616ms", "is too large");
    assert_bad_duration("18446744073709551615", "is too large");
    assert_bad_duration("5124095576031h", "is too large");
    assert_bad_duration("99999999999999999999999999h", "is too large");
}

/* ---- conf_parse_addr ------------------------------------------------------------ */

static void assert_bad_addr(const char *text, const char *expect)
{
    struct conf_addr a;
    memset(&a, 0x5a, sizeof a);
    const char *why = conf_parse_addr(text, &a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(why);
    if (strcmp(why, expect) != 0)
        fprintf(stderr, "\n\"%s\": %s (expected %s)\n", text, why, expect);
    CU_ASSERT_STRING_EQUAL(why, expect);
    CU_ASSERT_EQUAL(a.transport, 0);            /* zeroed on error */
    CU_ASSERT_EQUAL(a.addr_len, 0);
}

static void test_addresses_are_numeric_with_transport_and_port(void)
{
    struct conf_addr a;
    CU_ASSERT_PTR_NULL(conf_parse_addr("udp:127.0.0.1:9060", &a));
    assert_addr(&a, CONF_UDP, "127.0.0.1", 9060);
    CU_ASSERT_STRING_EQUAL(a.text, "udp:127.0.0.1:9060");
    CU_ASSERT_PTR_NULL(conf_parse_addr("tcp:[2001:db8::1]:65535", &a));
    assert_addr(&a, CONF_TCP, "2001:db8::1", 65535);
    CU_ASSERT_PTR_NULL(conf_parse_addr("tcp:0.0.0.0:0", &a));
    assert_addr(&a, CONF_TCP, "0.0.0.0", 0);
    CU_ASSERT_PTR_NULL(conf_parse_addr("udp:[::]:9060", &a));
    assert_addr(&a, CONF_UDP, "::", 9060);
    CU_ASSERT_PTR_NULL(conf_parse_addr("udp:[::ffff:192.0.2.1]:1", &a));
    assert_addr(&a, CONF_UDP, "::ffff:192.0.2.1", 1);
    const char *longest = "tcp:[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535";
    CU_ASSERT_PTR_NULL(conf_parse_addr(longest, &a));
    CU_ASSERT_STRING_EQUAL(a.text, longest);
    CU_ASSERT_FALSE(a.tls);
    /* tls: is a TCP stream inside TLS, never equal to the tcp: one on the same port */
    struct conf_addr t;
    CU_ASSERT_PTR_NULL(conf_parse_addr("tls:[::1]:9061", &t));
    assert_addr(&t, CONF_TCP, "::1", 9061);
    CU_ASSERT_TRUE(t.tls);
    CU_ASSERT_STRING_EQUAL(t.text, "tls:[::1]:9061");
    CU_ASSERT_PTR_NULL(conf_parse_addr("tcp:[::1]:9061", &a));
    CU_ASSERT_FALSE(conf_addr_equal(&a, &t));
    CU_ASSERT_PTR_NULL(conf_parse_target("tls:homer.example:9061", &t));
    CU_ASSERT_TRUE(t.tls);
    CU_ASSERT_STRING_EQUAL(t.host, "homer.example");
}

/* tls: sections: the top-level default, a listener's own, a destination's, with their defaults. */
static void test_tls_sections_load_with_their_defaults(void)
{
    char *out = NULL;
    struct conf *c = load(TEST_CONF_DIR "/good-tls.yaml", &out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(out, "");
    free(out);
    CU_ASSERT_EQUAL_FATAL(c->nlisten, 3);
    CU_ASSERT_FALSE(c->listen[0].tls);
    CU_ASSERT_TRUE(c->listen[1].tls);
    CU_ASSERT_TRUE(c->listen[2].tls);
    const struct conf_tls *top = conf_listen_tls(c, 1), *own = conf_listen_tls(c, 2);
    CU_ASSERT_PTR_EQUAL(top, &c->tls);
    CU_ASSERT_STRING_EQUAL(top->cert, "/etc/heprouter/tls/hep.pem");
    CU_ASSERT_PTR_NULL(top->ca);
    CU_ASSERT_FALSE(top->require_client_cert);
    CU_ASSERT_EQUAL(top->min_version, CONF_TLS_1_2);
    CU_ASSERT_EQUAL(top->line, 6);          /* its first key */
    CU_ASSERT_PTR_EQUAL(own, &c->listen_tls[2]);
    CU_ASSERT_TRUE(own->require_client_cert);
    CU_ASSERT_EQUAL(own->min_version, CONF_TLS_1_3);
    CU_ASSERT_EQUAL_FATAL(own->nclient_capture_ids, 2);
    CU_ASSERT_STRING_EQUAL(own->client_capture_ids[0].subject, "kamailio-a");
    CU_ASSERT_EQUAL_FATAL(own->client_capture_ids[1].nids, 2);
    CU_ASSERT_STRING_EQUAL(own->client_capture_ids[1].subject, "CN=kamailio-b,O=Example");
    CU_ASSERT_EQUAL(own->client_capture_ids[1].ids[1], 2003);
    const struct conf_dest *d = &c->dests[0];
    CU_ASSERT_TRUE(d->targets[0].tls);
    CU_ASSERT_TRUE(d->tls.set);
    CU_ASSERT_TRUE(d->tls.verify);      /* the default */
    CU_ASSERT_STRING_EQUAL(d->tls.server_name, "homer.example.net");
    CU_ASSERT_FALSE(c->dests[1].tls.set);
    CU_ASSERT_TRUE(c->dests[1].tls.verify);
    CU_ASSERT_EQUAL(c->tls_handshake_timeout_ms, 1500);
    conf_free(c);
}

static void test_bad_addresses_say_why(void)
{
    assert_bad_addr("", "is empty");
    assert_bad_addr("127.0.0.1:9060", "must start with udp:, tcp: or tls:");
    assert_bad_addr("UDP:127.0.0.1:9060", "must start with udp:, tcp: or tls:");
    assert_bad_addr("sctp:127.0.0.1:9060", "must start with udp:, tcp: or tls:");
    assert_bad_addr("udp:127.0.0.1", "has no port");
    assert_bad_addr("udp:[::1]", "has no port");
    assert_bad_addr("udp:[::1]9060", "has no port");
    assert_bad_addr("udp:127.0.0.1:", "has an invalid port");
    assert_bad_addr("udp:127.0.0.1:65536", "has an invalid port");
    assert_bad_addr("udp:127.0.0.1:100000", "has an invalid port");
    assert_bad_addr("udp:127.0.0.1:-1", "has an invalid port");
    assert_bad_addr("udp:127.0.0.1: 80", "has an invalid port");
    assert_bad_addr("udp:127.0.0.1:80x", "has an invalid port");
    assert_bad_addr("udp:[::1:9060", "has an unclosed [");
    assert_bad_addr("udp:::1:9060", "needs [brackets] around an IPv6 address");
    assert_bad_addr("udp:127.0.0.256:9060", "is not a numeric IP address");
    assert_bad_addr("udp:localhost:9060", "is not a numeric IP address");
    assert_bad_addr("udp::9060", "is not a numeric IP address");
    assert_bad_addr("udp:[127.0.0.1]:9060", "is not a numeric IP address");
    assert_bad_addr("udp:[fe80::1%eth0]:9060", "is not a numeric IP address");
    assert_bad_addr("udp:[]:9060", "is not a numeric IP address");
    assert_bad_addr("udp:[1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa]:9060",
                    "is not a numeric IP address");
    char longtext[sizeof((struct conf_addr *)0)->text + 1];
    memset(longtext, '1', sizeof longtext - 1);
    memcpy(longtext, "udp:", 4);
    longtext[sizeof longtext - 1] = '\0';
    assert_bad_addr(longtext, "is too long");
}

/* ---- targets named by DNS -------------------------------------------------------- */

static void assert_bad_target(const char *text, const char *expect)
{
    struct conf_addr a;
    memset(&a, 0x5a, sizeof a);
    const char *why = conf_parse_target(text, &a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(why);
    if (strcmp(why, expect) != 0)
        fprintf(stderr, "\n\"%s\": %s (expected %s)\n", text, why, expect);
    CU_ASSERT_STRING_EQUAL(why, expect);
    CU_ASSERT_EQUAL(a.transport, 0);
    CU_ASSERT_STRING_EQUAL(a.host, "");
}

static void test_targets_may_name_their_host(void)
{
    struct conf_addr a;
    CU_ASSERT_PTR_NULL(conf_parse_target("tcp:collector.example.net:9061", &a));
    CU_ASSERT_EQUAL(a.transport, CONF_TCP);
    CU_ASSERT_EQUAL(a.addr_len, 0);         /* resolved at the edge, never here */
    CU_ASSERT_STRING_EQUAL(a.host, "collector.example.net");
    CU_ASSERT_EQUAL(a.port, 9061);
    CU_ASSERT_STRING_EQUAL(a.text, "tcp:collector.example.net:9061");
    CU_ASSERT_PTR_NULL(conf_parse_target("udp:localhost:1", &a));
    CU_ASSERT_EQUAL(a.transport, CONF_UDP);
    CU_ASSERT_STRING_EQUAL(a.host, "localhost");
    CU_ASSERT_PTR_NULL(conf_parse_target("udp:homer_1.svc-2.example:65535", &a));
    CU_ASSERT_STRING_EQUAL(a.host, "homer_1.svc-2.example");

    /* a numeric address stays numeric, with no name */
    CU_ASSERT_PTR_NULL(conf_parse_target("udp:127.0.0.1:9061", &a));
    assert_addr(&a, CONF_UDP, "127.0.0.1", 9061);
    CU_ASSERT_STRING_EQUAL(a.host, "");
    CU_ASSERT_PTR_NULL(conf_parse_target("tcp:[::1]:9061", &a));
    assert_addr(&a, CONF_TCP, "::1", 9061);

    /* the longest name: 253 bytes in labels of at most 63 */
    char name[CONF_HOST_NAME_MAX + 2], text[CONF_ADDR_TEXT_SIZE + 1];
    memset(name, 'a', sizeof name);
    for (size_t i = 63; i < CONF_HOST_NAME_MAX; i += 64)
        name[i] = '.';
    name[CONF_HOST_NAME_MAX] = '\0';
    snprintf(text, sizeof text, "tcp:%s:65535", name);
    CU_ASSERT_PTR_NULL(conf_parse_target(text, &a));
    CU_ASSERT_STRING_EQUAL(a.host, name);
    CU_ASSERT_STRING_EQUAL(a.text, text);
    name[CONF_HOST_NAME_MAX] = 'a';     /* 254 */
    name[CONF_HOST_NAME_MAX + 1] = '\0';
    snprintf(text, sizeof text, "tcp:%s:9", name);
    assert_bad_target(text, "is not a numeric IP address or a host name");

    assert_bad_target("udp:10.0.0.300:9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp:-homer.example:9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp:homer-.example:9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp:homer..example:9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp:homer.example.:9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp:homer example:9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp:[homer.example]:9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp::9061", "is not a numeric IP address or a host name");
    assert_bad_target("udp:homer.example", "has no port");
    assert_bad_target("sctp:homer.example:9061", "must start with udp:, tcp: or tls:");

    /* listen addresses stay numeric */
    assert_bad_addr("udp:localhost:9060", "is not a numeric IP address");
}

/* ---- conf_parse_number, conf_parse_size, conf_split_host_port --------------------- */

static void assert_number(const char *text, uint64_t min, uint64_t max, enum conf_number_status expect,
                          uint64_t value)
{
    uint64_t v = 12345;
    enum conf_number_status st = conf_parse_number(text, min, max, &v);
    if (st != expect)
        fprintf(stderr, "\n\"%s\": status %d (expected %d)\n", text, (int)st, (int)expect);
    CU_ASSERT_EQUAL(st, expect);
    CU_ASSERT_EQUAL(v, expect == CONF_NUMBER_OK ? value : 12345);  /* set on success only */
}

static void test_numbers_are_decimal_digits_within_bounds(void)
{
    assert_number("0", 0, 10, CONF_NUMBER_OK, 0);
    assert_number("007", 0, 10, CONF_NUMBER_OK, 7);
    assert_number("-0", 0, 10, CONF_NUMBER_OK, 0);
    assert_number("18446744073709551615", 0, UINT64_MAX, CONF_NUMBER_OK, UINT64_MAX);
    assert_number("11", 0, 10, CONF_NUMBER_RANGE, 0);
    assert_number("0", 1, 10, CONF_NUMBER_RANGE, 0);
    assert_number("-5", 0, 10, CONF_NUMBER_RANGE, 0);
    assert_number("18446744073709551616", 0, UINT64_MAX, CONF_NUMBER_RANGE, 0);
    assert_number("", 0, 10, CONF_NUMBER_SYNTAX, 0);
    assert_number("-", 0, 10, CONF_NUMBER_SYNTAX, 0);
    assert_number("+5", 0, 10, CONF_NUMBER_SYNTAX, 0);
    assert_number(" 5", 0, 10, CONF_NUMBER_SYNTAX, 0);
    assert_number("5 ", 0, 10, CONF_NUMBER_SYNTAX, 0);
    assert_number("5x", 0, 10, CONF_NUMBER_SYNTAX, 0);
    assert_number("5K", 0, 10000, CONF_NUMBER_SYNTAX, 0);
    assert_number("99999999999999999999x", 0, UINT64_MAX, CONF_NUMBER_SYNTAX, 0);
}

static void assert_size(const char *text, uint64_t max, enum conf_number_status expect, uint64_t value)
{
    uint64_t v = 12345;
    CU_ASSERT_EQUAL(conf_parse_size(text, 1, max, &v), expect);
    CU_ASSERT_EQUAL(v, expect == CONF_NUMBER_OK ? value : 12345);
}

static void test_sizes_take_k_and_m_suffixes(void)
{
    assert_size("65536", INT_MAX, CONF_NUMBER_OK, 65536);
    assert_size("64K", INT_MAX, CONF_NUMBER_OK, 64 * 1024);
    assert_size("64k", INT_MAX, CONF_NUMBER_OK, 64 * 1024);
    assert_size("8M", INT_MAX, CONF_NUMBER_OK, 8 * 1024 * 1024);
    assert_size("8m", INT_MAX, CONF_NUMBER_OK, 8 * 1024 * 1024);
    assert_size("2097151K", INT_MAX, CONF_NUMBER_OK, UINT64_C(2097151) * 1024);
    assert_size("2097152K", INT_MAX, CONF_NUMBER_RANGE, 0);
    assert_size("2048M", INT_MAX, CONF_NUMBER_RANGE, 0);
    assert_size("0", INT_MAX, CONF_NUMBER_RANGE, 0);
    assert_size("0K", INT_MAX, CONF_NUMBER_RANGE, 0);
    assert_size("18446744073709551615M", UINT64_MAX, CONF_NUMBER_RANGE, 0);
    assert_size("", INT_MAX, CONF_NUMBER_SYNTAX, 0);
    assert_size("K", INT_MAX, CONF_NUMBER_SYNTAX, 0);
    assert_size("8G", INT_MAX, CONF_NUMBER_SYNTAX, 0);
    assert_size("8KB", INT_MAX, CONF_NUMBER_SYNTAX, 0);
    assert_size("8 K", INT_MAX, CONF_NUMBER_SYNTAX, 0);
}

static void assert_split(const char *text, const char *host, bool bracketed, unsigned port)
{
    struct conf_host_port hp;
    CU_ASSERT_PTR_NULL_FATAL(conf_split_host_port(text, &hp));
    CU_ASSERT_EQUAL(hp.hlen, strlen(host));
    CU_ASSERT(strncmp(hp.host, host, hp.hlen) == 0);
    CU_ASSERT_EQUAL(hp.bracketed, bracketed);
    CU_ASSERT_EQUAL(hp.port, port);
}

static void assert_bad_split(const char *text, const char *expect)
{
    struct conf_host_port hp;
    const char *why = conf_split_host_port(text, &hp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(why);
    CU_ASSERT_STRING_EQUAL(why, expect);
}

static void test_host_port_splits_names_addresses_and_brackets(void)
{
    assert_split("127.0.0.1:9060", "127.0.0.1", false, 9060);
    assert_split("redis-a:26380", "redis-a", false, 26380);
    assert_split("[::1]:26379", "::1", true, 26379);
    assert_split("localhost:0", "localhost", false, 0);
    assert_split(":65535", "", false, 65535);
    assert_split("[]:1", "", true, 1);
    assert_bad_split("localhost", "has no port");
    assert_bad_split("[::1]", "has no port");
    assert_bad_split("[::1:9060", "has an unclosed [");
    assert_bad_split("::1:9060", "needs [brackets] around an IPv6 address");
    assert_bad_split("localhost:", "has an invalid port");
    assert_bad_split("localhost:65536", "has an invalid port");
    assert_bad_split("localhost:009060", "has an invalid port");
    assert_bad_split("localhost:+1", "has an invalid port");
    assert_bad_split("localhost:-1", "has an invalid port");
}

/* ---- conf_parse_cidr ----------------------------------------------------------- */

static void assert_bad_cidr(const char *text, const char *expect)
{
    struct conf_cidr c;
    const char *why = conf_parse_cidr(text, &c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(why);
    if (strcmp(why, expect) != 0)
        fprintf(stderr, "\n\"%s\": %s (expected %s)\n", text, why, expect);
    CU_ASSERT_STRING_EQUAL(why, expect);
}

static void test_cidrs_and_bare_addresses(void)
{
    struct conf_cidr c;
    CU_ASSERT_PTR_NULL(conf_parse_cidr("10.0.0.0/8", &c));
    assert_cidr(&c, AF_INET, "10.0.0.0", 8);
    CU_ASSERT_PTR_NULL(conf_parse_cidr("192.0.2.1", &c));
    assert_cidr(&c, AF_INET, "192.0.2.1", 32);
    CU_ASSERT_PTR_NULL(conf_parse_cidr("0.0.0.0/0", &c));
    assert_cidr(&c, AF_INET, "0.0.0.0", 0);
    CU_ASSERT_PTR_NULL(conf_parse_cidr("192.0.2.128/25", &c));
    assert_cidr(&c, AF_INET, "192.0.2.128", 25);
    CU_ASSERT_PTR_NULL(conf_parse_cidr("::1", &c));
    assert_cidr(&c, AF_INET6, "::1", 128);
    CU_ASSERT_PTR_NULL(conf_parse_cidr("2001:db8::/32", &c));
    assert_cidr(&c, AF_INET6, "2001:db8::", 32);
    CU_ASSERT_PTR_NULL(conf_parse_cidr("::/0", &c));
    assert_cidr(&c, AF_INET6, "::", 0);
    CU_ASSERT_PTR_NULL(conf_parse_cidr("2001:db8::8000/113", &c));
    assert_cidr(&c, AF_INET6, "2001:db8::8000", 113);
}

static void test_bad_cidrs_say_why(void)
{
    assert_bad_cidr("", "is empty");
    assert_bad_cidr("10.0.0.1/8", "has host bits set");
    assert_bad_cidr("192.0.2.129/25", "has host bits set");
    assert_bad_cidr("2001:db8::1/32", "has host bits set");
    assert_bad_cidr("2001:db8::4000/113", "has host bits set");
    assert_bad_cidr("10.0.0.0/33", "has an invalid prefix length");
    assert_bad_cidr("::/129", "has an invalid prefix length");
    assert_bad_cidr("10.0.0.0/", "has an invalid prefix length");
    assert_bad_cidr("10.0.0.0/-1", "has an invalid prefix length");
    assert_bad_cidr("10.0.0.0/8/8", "has an invalid prefix length");
    assert_bad_cidr("10.0.0.0/0008", "has an invalid prefix length");
    assert_bad_cidr("/8", "is not a numeric IP address");
    assert_bad_cidr("10.0.0/8", "is not a numeric IP address");
    assert_bad_cidr("example.com", "is not a numeric IP address");
    assert_bad_cidr("fe80::1%eth0", "is not a numeric IP address");
    assert_bad_cidr("[::1]", "is not a numeric IP address");
}


/* ---- metrics, control, log target --------------------------------------------- */

/* Writes text to a temporary file, loads it; *path keeps the name (caller unlinks). */
static struct conf *load_text(const char *text, char *path, char **out)
{
    write_temp(path, text, strlen(text));
    return load(path, out);
}

#define BASE_TEXT "listen: \"udp:127.0.0.1:9060\"\ndestinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n"

/* A spool needs a tcp: target, and its own directory. */
static void test_spool_needs_tcp_and_its_own_dir(void)
{
    static const char *const bad[] = {
        "listen: [ \"udp:127.0.0.1:19600\" ]\n"
        "destinations:\n  a: { targets: [ \"udp:127.0.0.1:19601\" ], spool: { dir: /tmp/s } }\n",
        "listen: [ \"udp:127.0.0.1:19600\" ]\n"
        "destinations:\n  a: { targets: [ \"tcp:127.0.0.1:19601\" ], spool: { dir: /tmp/s } }\n"
        "  b: { targets: [ \"tcp:127.0.0.1:19602\" ], spool: { dir: /tmp/s } }\n",
        "listen: [ \"udp:127.0.0.1:19600\" ]\n"
        "destinations:\n  a: { targets: [ \"tcp:127.0.0.1:19601\" ], spool: { max_bytes: 1048576 } }\n",
    };
    static const char *const why[] = { "needs a tcp: target", "is the spool of destination a too", "is required" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[PATH_MAX], *out;
        struct conf *c = load_text(bad[i], path, &out);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, why[i]));
        free(out);
        conf_free(c);
        unlink(path);
    }
}

#define NAMED_TARGETS \
    "listen: \"udp:127.0.0.1:9060\"\n" \
    "destinations:\n" \
    "  homer: { targets: [ \"tcp:collector.example.net:9061\", \"udp:localhost:9061\" ] }\n" \
    "  other: { targets: [ \"tcp:collector.example.net:9062\" ] }\n"

static void test_named_targets_load_and_compare_by_name(void)
{
    char path[PATH_MAX], path2[PATH_MAX], *out;
    struct conf *a = load_text(NAMED_TARGETS, path, &out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_STRING_EQUAL(out, "");
    free(out);
    unlink(path);
    CU_ASSERT_EQUAL_FATAL(a->ndests, 2);
    CU_ASSERT_STRING_EQUAL(a->dests[0].targets[0].host, "collector.example.net");
    CU_ASSERT_STRING_EQUAL(a->dests[0].targets[1].host, "localhost");
    CU_ASSERT_EQUAL(a->dns_refresh_ms, 60 * 1000);

    struct conf *b = load_text(NAMED_TARGETS, path2, &out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    free(out);
    unlink(path2);
    CU_ASSERT(conf_dest_equal(&a->dests[0], &b->dests[0]));     /* unchanged text: kept at reload */
    CU_ASSERT(conf_addr_equal(&a->dests[0].targets[0], &b->dests[0].targets[0]));
    CU_ASSERT_FALSE(conf_addr_equal(&a->dests[0].targets[0], &a->dests[1].targets[0]));   /* port */
    strcpy(b->dests[0].targets[0].host, "collector.example.org");
    CU_ASSERT_FALSE(conf_addr_equal(&a->dests[0].targets[0], &b->dests[0].targets[0]));
    CU_ASSERT_FALSE(conf_dest_equal(&a->dests[0], &b->dests[0]));
    conf_free(a);
    conf_free(b);
}

static void test_metrics_listen_takes_ipv4_ipv6_and_port_0(void)
{
    static const struct { const char *value, *ip; unsigned port; } cases[] = {
        { "127.0.0.1:9100", "127.0.0.1", 9100 },
        { "0.0.0.0:0", "0.0.0.0", 0 },
        { "[::]:65535", "::", 65535 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512], path[PATH_MAX], *out;
        snprintf(text, sizeof text, BASE_TEXT "metrics: { listen: \"%s\" }\n", cases[i].value);
        struct conf *c = load_text(text, path, &out);
        CU_ASSERT_STRING_EQUAL(out, "");
        CU_ASSERT_FATAL(c != NULL);
        assert_addr(&c->metrics_listen, CONF_TCP, cases[i].ip, cases[i].port);
        CU_ASSERT_STRING_EQUAL(c->metrics_listen.text, cases[i].value);
        conf_free(c);
        free(out);
        unlink(path);
    }
}

static void test_control_socket_takes_up_to_107_bytes(void)
{
    char sock[200], text[512], path[PATH_MAX], *out;
    memset(sock, 'x', 107);
    sock[0] = '/';
    sock[107] = '\0';
    snprintf(text, sizeof text, BASE_TEXT "control: { socket: \"%s\" }\n", sock);
    struct conf *c = load_text(text, path, &out);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_STRING_EQUAL(c->control_socket, sock);
    conf_free(c);
    free(out);
    unlink(path);

    sock[107] = 'x';
    sock[108] = '\0';
    snprintf(text, sizeof text, BASE_TEXT "control: { socket: \"%s\" }\n", sock);
    CU_ASSERT(load_text(text, path, &out) == NULL);
    CU_ASSERT(strstr(out, ":3:20: control.socket \"/xxx") != NULL);
    CU_ASSERT(strstr(out, "must be a path of 1 to 107 bytes\n") != NULL);
    free(out);
    unlink(path);
}

static void test_control_mode_is_octal_up_to_0777(void)
{
    static const struct { const char *value; unsigned mode; } cases[] = {
        { "\"0660\"", 0660 }, { "\"600\"", 0600 }, { "0777", 0777 }, { "\"0\"", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512], path[PATH_MAX], *out;
        snprintf(text, sizeof text, BASE_TEXT "control: { mode: %s }\n", cases[i].value);
        struct conf *c = load_text(text, path, &out);
        CU_ASSERT_STRING_EQUAL(out, "");
        CU_ASSERT_FATAL(c != NULL);
        CU_ASSERT_EQUAL(c->control_mode, cases[i].mode);
        conf_free(c);
        free(out);
        unlink(path);
    }
}

static void test_log_facility_names_are_the_syslog_values(void)
{
    static const struct { const char *name; int value; } cases[] = {
        { "daemon", LOG_DAEMON }, { "user", LOG_USER }, { "local0", LOG_LOCAL0 }, { "local7", LOG_LOCAL7 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512], path[PATH_MAX], *out;
        snprintf(text, sizeof text, BASE_TEXT "log: { target: syslog, facility: %s }\n", cases[i].name);
        struct conf *c = load_text(text, path, &out);
        CU_ASSERT_STRING_EQUAL(out, "");
        CU_ASSERT_FATAL(c != NULL);
        CU_ASSERT_EQUAL(c->log_target, CONF_LOG_SYSLOG);
        CU_ASSERT_EQUAL(c->log_facility, cases[i].value);
        conf_free(c);
        free(out);
        unlink(path);
    }
}

/* ---- the file's hash --------------------------------------------------------------- */

static void test_the_hash_is_fnv1a_of_the_bytes_and_stable(void)
{
    struct conf *a = load_ok(FULL_PATH), *b = load_ok(FULL_PATH);
    char *bytes = read_text(FULL_PATH);
    CU_ASSERT_FATAL(bytes != NULL);
    char expect[17];
    uint64_t h = hash_fnv1a64(HASH_FNV64_OFFSET, bytes, strlen(bytes));
    snprintf(expect, sizeof expect, "%016" PRIx64, h);
    CU_ASSERT_EQUAL(a->hash, h);
    CU_ASSERT_EQUAL(a->hash, b->hash);
    CU_ASSERT_STRING_EQUAL(a->hash_text, expect);
    CU_ASSERT_STRING_EQUAL(a->hash_text, b->hash_text);
    CU_ASSERT_EQUAL(strlen(a->hash_text), 16);
    CU_ASSERT_EQUAL(strspn(a->hash_text, "0123456789abcdef"), 16);
    free(bytes);
    conf_free(a);
    conf_free(b);
}

static void test_one_byte_more_gives_another_hash(void)
{
    char p1[PATH_MAX], p2[PATH_MAX], *o1, *o2;
    struct conf *a = load_text(BASE_TEXT, p1, &o1);
    struct conf *b = load_text(BASE_TEXT "\n", p2, &o2);
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    CU_ASSERT_NOT_EQUAL(a->hash, b->hash);
    CU_ASSERT_STRING_NOT_EQUAL(a->hash_text, b->hash_text);
    CU_ASSERT_EQUAL(conf_describe_changes(a, b, NULL, NULL), 0);    /* same meaning */
    CU_ASSERT_EQUAL(conf_restart_changes(a, b, NULL, NULL), 0);
    conf_free(a);
    conf_free(b);
    free(o1);
    free(o2);
    unlink(p1);
    unlink(p2);
}

/* ---- sources ---------------------------------------------------------------------- */

#define SOURCES_TEXT \
    "listen:\n" \
    "  - \"udp:127.0.0.1:9060\"\n" \
    "  - address: \"tcp:127.0.0.1:9061\"\n" \
    "    sources: { allow: [ \"127.0.0.2\" ] }\n" \
    "  - { address: \"udp:[::1]:9062\", sources: {} }\n" \
    "sources:\n" \
    "  allow: [ 10.0.0.0/8, \"fd00::/8\" ]\n" \
    "  auth_keys: [ k-old, k-new ]\n" \
    "  capture_ids: { 10.1.0.0/16: [ 2001, 2002 ], 10.2.0.0/16: 7 }\n" \
    "destinations: { homer: { targets: \"udp:127.0.0.1:9070\", strip_auth_key: true } }\n" \
    "user: nobody\n" \
    "group: \"65534\"\n" \
    "allow_root: true\n"

static void test_sources_apply_per_listener(void)
{
    char path[PATH_MAX], *out;
    struct conf *c = load_text(SOURCES_TEXT, path, &out);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->nlisten, 3);
    assert_addr(&c->listen[1], CONF_TCP, "127.0.0.1", 9061);
    const struct conf_sources *top = conf_listen_sources(c, 0);
    CU_ASSERT_PTR_EQUAL(top, &c->sources);
    CU_ASSERT_EQUAL(top->nallow, 2);
    CU_ASSERT_EQUAL(top->allow[1].addr_len, 16);
    CU_ASSERT_EQUAL(top->allow[1].prefix, 8);
    CU_ASSERT_EQUAL_FATAL(top->nauth_keys, 2);
    CU_ASSERT_STRING_EQUAL(top->auth_keys[1], "k-new");
    CU_ASSERT_EQUAL_FATAL(top->ncapture_ids, 2);
    CU_ASSERT_EQUAL(top->capture_ids[0].cidr.prefix, 16);
    CU_ASSERT_EQUAL_FATAL(top->capture_ids[0].nids, 2);
    CU_ASSERT_EQUAL(top->capture_ids[0].ids[1], 2002);
    CU_ASSERT_EQUAL_FATAL(top->capture_ids[1].nids, 1);     /* a single id is a list of one */
    CU_ASSERT_EQUAL(top->capture_ids[1].ids[0], 7);
    const struct conf_sources *own = conf_listen_sources(c, 1);
    CU_ASSERT_PTR_EQUAL(own, &c->listen_sources[1]);
    CU_ASSERT_EQUAL(own->nallow, 1);
    CU_ASSERT_EQUAL(own->allow[0].prefix, 32);
    CU_ASSERT_EQUAL(own->nauth_keys, 0);                    /* replaces the top level as a whole */
    const struct conf_sources *open_one = conf_listen_sources(c, 2);
    CU_ASSERT(open_one->set);
    CU_ASSERT_EQUAL(open_one->nallow + open_one->nauth_keys + open_one->ncapture_ids, 0);
    CU_ASSERT(c->dests[0].strip_auth_key);
    CU_ASSERT_STRING_EQUAL(c->user, "nobody");
    CU_ASSERT_STRING_EQUAL(c->group, "65534");
    CU_ASSERT(c->allow_root);
    conf_free(c);
    free(out);
    unlink(path);
}

/* Loads a configuration whose sources.auth_keys_file holds data; *out gets what conf_load() printed. */
static struct conf *load_keys_file(const char *data, size_t len, char **out)
{
    char kpath[PATH_MAX], confpath[PATH_MAX], yaml[3 * PATH_MAX];
    write_temp(kpath, data, len);
    snprintf(yaml, sizeof yaml,
             "listen: \"udp:127.0.0.1:9060\"\n"
             "sources: { auth_keys: [ inline ], auth_keys_file: \"%s\" }\n"
             "destinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n", kpath);
    write_temp(confpath, yaml, strlen(yaml));
    struct conf *c = load(confpath, out);
    unlink(kpath);
    unlink(confpath);
    return c;
}

static void test_auth_keys_file_adds_one_key_per_line(void)
{
    char *out;
    static const char data[] = "# rotated 2026-12\nk1\n\n  k 2  \r\nk3";
    struct conf *c = load_keys_file(data, sizeof data - 1, &out);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL_FATAL(c->sources.nauth_keys, 4);
    CU_ASSERT_STRING_EQUAL(c->sources.auth_keys[0], "inline");
    CU_ASSERT_STRING_EQUAL(c->sources.auth_keys[1], "k1");
    CU_ASSERT_STRING_EQUAL(c->sources.auth_keys[2], "  k 2  ");     /* only the \r goes */
    CU_ASSERT_STRING_EQUAL(c->sources.auth_keys[3], "k3");          /* no line end at all */
    conf_free(c);
    free(out);
}

static void test_auth_keys_file_bounds(void)
{
    char *out, *data = malloc(FILE_LIMIT + 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    /* a key of 255 bytes is taken, 256 are refused, and the error shows neither */
    memset(data, 'k', 300);
    data[255] = '\n';
    struct conf *c = load_keys_file(data, 256, &out);
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_EQUAL(c != NULL ? strlen(c->sources.auth_keys[1]) : 0, 255);
    conf_free(c);
    free(out);
    data[255] = 'k';
    data[256] = '\n';
    CU_ASSERT_PTR_NULL(load_keys_file(data, 257, &out));
    CU_ASSERT(strstr(out, ": line 1: a key is at most 255 bytes\n") != NULL);
    CU_ASSERT(strstr(out, "kkkk") == NULL);
    free(out);
    /* no keys at all: refused rather than letting everyone in */
    CU_ASSERT_PTR_NULL(load_keys_file("# none yet\n\n", 12, &out));
    CU_ASSERT(strstr(out, ": has no keys (one per line; lines starting with # are comments)\n") != NULL);
    free(out);
    CU_ASSERT_PTR_NULL(load_keys_file("ok\nsec\0ret\n", 11, &out));
    CU_ASSERT(strstr(out, ": line 2: has a NUL byte\n") != NULL);
    CU_ASSERT(strstr(out, "sec") == NULL);
    free(out);
    /* more than 1 MiB */
    memset(data, '#', FILE_LIMIT + 2);
    CU_ASSERT_PTR_NULL(load_keys_file(data, FILE_LIMIT + 2, &out));
    CU_ASSERT(strstr(out, ": is larger than 1048576 bytes\n") != NULL);
    free(out);
    free(data);
    /* a file that is not there */
    char path[PATH_MAX];
    CU_ASSERT_PTR_NULL(load_text("listen: \"udp:127.0.0.1:9060\"\n"
                                 "sources: { auth_keys_file: /nonexistent/keys }\n"
                                 "destinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n",
                                 path, &out));
    CU_ASSERT(strstr(out, "sources.auth_keys_file \"/nonexistent/keys\": cannot open: No such file or directory\n") !=
              NULL);
    free(out);
    unlink(path);
}

static void test_auth_key_errors_never_show_the_key(void)
{
    char path[PATH_MAX], *out, yaml[1024], key[300];
    memset(key, 'q', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf(yaml, sizeof yaml,
             "listen: \"udp:127.0.0.1:9060\"\n"
             "sources: { auth_keys: [ \"%s\", \"\" ] }\n"
             "destinations: { homer: { targets: \"udp:127.0.0.1:9061\", auth_key: \"%s\" } }\n", key, key);
    CU_ASSERT_PTR_NULL(load_text(yaml, path, &out));
    CU_ASSERT(strstr(out, "sources.auth_keys[0]: must be 1 to 255 bytes\n") != NULL);
    CU_ASSERT(strstr(out, "sources.auth_keys[1]: must be 1 to 255 bytes\n") != NULL);
    CU_ASSERT(strstr(out, "destinations.homer.auth_key: must be 1 to 255 bytes\n") != NULL);
    CU_ASSERT(strstr(out, "qqq") == NULL);
    free(out);
    unlink(path);
}

/* ---- reload ---------------------------------------------------------------------- */

/* The lines of a report, each ended by a newline. */
struct report {
    char *buf;
    size_t size;
    FILE *f;
};

static void report_line(void *arg, const char *line)
{
    struct report *r = arg;
    fprintf(r->f, "%s\n", line);
}

/* Loads two texts; *describe and *restart get the two reports (malloc'ed). */
static void compare_texts(const char *old_text, const char *new_text, char **describe, char **restart)
{
    char p1[PATH_MAX], p2[PATH_MAX], *o1, *o2;
    struct conf *a = load_text(old_text, p1, &o1), *b = load_text(new_text, p2, &o2);
    if (*o1 != '\0' || *o2 != '\0')
        fprintf(stderr, "\n%s%s", o1, o2);
    CU_ASSERT_FATAL(a != NULL && b != NULL);
    struct report r = { NULL, 0, NULL };
    r.f = open_memstream(&r.buf, &r.size);
    size_t n = conf_describe_changes(a, b, report_line, &r);
    fclose(r.f);
    *describe = r.buf;
    size_t lines = 0;
    for (const char *s = r.buf; *s != '\0'; s++)
        lines += *s == '\n';
    CU_ASSERT_EQUAL(n, lines);
    r.f = open_memstream(&r.buf, &r.size);
    n = conf_restart_changes(a, b, report_line, &r);
    fclose(r.f);
    *restart = r.buf;
    lines = 0;
    for (const char *s = r.buf; *s != '\0'; s++)
        lines += *s == '\n';
    CU_ASSERT_EQUAL(n, lines);
    conf_free(a);
    conf_free(b);
    free(o1);
    free(o2);
    unlink(p1);
    unlink(p2);
}

static void assert_report(const char *got, const char *expect)
{
    if (strcmp(got, expect) != 0)
        fprintf(stderr, "\nexpected:\n%s--- got:\n%s", expect, got);
    CU_ASSERT_STRING_EQUAL(got, expect);
}

#define RELOAD_OLD \
    "listen: [ \"udp:127.0.0.1:9060\", \"tcp:0.0.0.0:9060\" ]\n" \
    "ttl: { call: 2h }\n" \
    "log: { level: info }\n" \
    "destinations:\n" \
    "  homer: { targets: \"udp:10.0.0.1:9060\" }\n" \
    "  voipmonitor: { targets: \"udp:10.0.0.3:9060\", hep_version: 3 }\n" \
    "  old: { targets: \"udp:10.0.0.9:9060\" }\n" \
    "routes:\n" \
    "  - name: invite-calls\n" \
    "    match: { method: INVITE }\n" \
    "    to: [ voipmonitor ]\n" \
    "  - { name: gone, match: { method: OPTIONS }, to: homer }\n" \
    "  - { name: a, match: { method: [ REGISTER ], src: 10.0.0.0/8 }, to: homer }\n" \
    "  - { name: b, to: homer }\n" \
    "default: homer\n"

/* The destinations in another order (indexes differ), new ones, changed ones. */
#define RELOAD_NEW \
    "listen: [ \"udp:127.0.0.1:9060\", \"udp:0.0.0.0:9061\" ]\n" \
    "ttl: { call: 4h }\n" \
    "log: { level: debug }\n" \
    "destinations:\n" \
    "  new: { targets: \"udp:10.0.0.7:9060\" }\n" \
    "  homer: { targets: \"udp:10.0.0.2:9060\" }\n" \
    "  voipmonitor: { targets: \"udp:10.0.0.3:9060\", hep_version: 3, balance: hash, auth_key: k }\n" \
    "routes:\n" \
    "  - { name: b, to: homer }\n" \
    "  - name: invite-calls\n" \
    "    match: { method: [ INVITE, BYE ] }\n" \
    "    to: [ voipmonitor, homer ]\n" \
    "  - { name: a, match: { method: [ REGISTER ], src: 10.0.0.0/8, status: 4xx }, to: homer }\n" \
    "  - { name: new-customer, match: { method: INVITE, proto: [ sip, 32 ] }, to: homer }\n" \
    "  - { name: quiet, drop: true }\n" \
    "default: voipmonitor\n"

static void test_describe_changes_names_every_reloadable_difference(void)
{
    char *describe, *restart;
    compare_texts(RELOAD_OLD, RELOAD_NEW, &describe, &restart);
    assert_report(describe,
                  "listen tcp:0.0.0.0:9060: removed\n"
                  "listen udp:0.0.0.0:9061: added\n"
                  "ttl.call: 2h -> 4h\n"
                  "log.level: info -> debug\n"
                  "destination old: removed\n"
                  "destination new: added\n"
                  "destination homer: targets [udp:10.0.0.1:9060] -> [udp:10.0.0.2:9060]\n"
                  "destination voipmonitor: balance all -> hash\n"
                  "destination voipmonitor: auth_key changed\n"
                  "route gone: removed\n"
                  "route invite-calls: match method [INVITE] -> [INVITE, BYE]\n"
                  "route invite-calls: to [voipmonitor] -> [voipmonitor, homer]\n"
                  "route a: match status any -> [4xx]\n"
                  "route new-customer: added (method [INVITE], proto [sip, 32], to [homer])\n"
                  "route quiet: added (drop)\n"
                  "routes reordered: [invite-calls, a, b] -> [b, invite-calls, a]\n"
                  "default: [homer] -> [voipmonitor]\n");
    assert_report(restart, "");
    free(describe);
    free(restart);
}

static void test_sources_changes_are_described(void)
{
    char *describe, *restart;
    compare_texts("listen: [ \"udp:127.0.0.1:9060\", { address: \"tcp:127.0.0.1:9061\", sources: { allow: 10.0.0.1 } } ]\n"
                  "sources: { allow: 10.0.0.0/8, auth_keys: [ a ] }\n"
                  "destinations: { homer: { targets: \"udp:10.0.0.1:9060\" } }\n",
                  "listen: [ \"udp:127.0.0.1:9060\", { address: \"tcp:127.0.0.1:9061\", sources: { allow: 10.0.0.2 } } ]\n"
                  "sources: { allow: [ 10.0.0.0/8, \"::1\" ], auth_keys: [ a, b ], capture_ids: { 10.0.0.0/8: [ 1, 2 ] } }\n"
                  "destinations: { homer: { targets: \"udp:10.0.0.1:9060\", strip_auth_key: true } }\n"
                  "user: nobody\n",
                  &describe, &restart);
    assert_report(describe,
                  "listen tcp:127.0.0.1:9061: sources changed\n"
                  "sources.allow: [10.0.0.0/8] -> [10.0.0.0/8, ::1/128]\n"
                  "sources.auth_keys: changed\n"
                  "sources.capture_ids: [] -> [10.0.0.0/8: 1 2]\n"
                  "destination homer: strip_auth_key false -> true\n");
    assert_report(restart, "user: none -> nobody (needs a restart; none kept)\n");
    free(describe);
    free(restart);
}

static void test_identical_files_have_no_changes(void)
{
    char *describe, *restart;
    compare_texts(RELOAD_OLD, RELOAD_OLD, &describe, &restart);
    assert_report(describe, "");
    assert_report(restart, "");
    free(describe);
    free(restart);

    struct conf *a = load_ok(FULL_PATH), *b = load_ok(FULL_PATH);
    CU_ASSERT_EQUAL(conf_describe_changes(a, b, NULL, NULL), 0);
    CU_ASSERT_EQUAL(conf_restart_changes(a, b, NULL, NULL), 0);
    for (size_t i = 0; i < a->ndests; i++)
        CU_ASSERT(conf_dest_equal(&a->dests[i], &b->dests[i]));
    CU_ASSERT_FALSE(conf_dest_equal(&a->dests[0], &b->dests[1]));
    CU_ASSERT(conf_addr_equal(&a->listen[1], &b->listen[1]));
    CU_ASSERT_FALSE(conf_addr_equal(&a->listen[0], &b->listen[2]));
    conf_free(a);
    conf_free(b);
}

#define RESTART_OLD \
    "listen: \"udp:127.0.0.1:9060\"\n" \
    "workers: 2\n" \
    "destinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n"

#define RESTART_NEW \
    "listen: \"udp:127.0.0.1:9060\"\n" \
    "workers: 4\n" \
    "store: { type: redis, redis: { sentinels: [ \"10.0.0.1:26379\", \"[::1]:26380\" ], password: pw } }\n" \
    "limits: { udp_batch: 32, tcp_queue_bytes: 65536, connect_timeout: 250ms }\n" \
    "log: { target: syslog }\n" \
    "metrics: { listen: \"127.0.0.1:9100\", timeout: 30s }\n" \
    "control: { socket: /run/heprouter.sock, mode: \"0600\" }\n" \
    "destinations: { homer: { targets: \"udp:127.0.0.1:9061\" } }\n"

static void test_restart_changes_name_what_is_kept(void)
{
    char *describe, *restart;
    compare_texts(RESTART_OLD, RESTART_NEW, &describe, &restart);
    assert_report(describe,
                  "limits.tcp_queue_bytes: 4194304 -> 65536\n"
                  "limits.connect_timeout: 2s -> 250ms\n");
    assert_report(restart,
                  "workers: 2 -> 4 (needs a restart; 2 kept)\n"
                  "store.type: memory -> redis (needs a restart; memory kept)\n"
                  "store.redis.password: changed (needs a restart; the old value kept)\n"
                  "store.redis.sentinels: [] -> [10.0.0.1:26379, [::1]:26380] (needs a restart; [] kept)\n"
                  "limits.udp_batch: 64 -> 32 (needs a restart; 64 kept)\n"
                  "log.target: stderr -> syslog (needs a restart; stderr kept)\n"
                  "metrics.listen: off -> 127.0.0.1:9100 (needs a restart; off kept)\n"
                  "metrics.timeout: 10s -> 30s (needs a restart; 10s kept)\n"
                  "control.socket: none -> /run/heprouter.sock (needs a restart; none kept)\n"
                  "control.mode: 0660 -> 0600 (needs a restart; 0660 kept)\n");
    free(describe);
    free(restart);
}

/* Loads both texts; keeps running's restart values in next and checks the result. */
static void keep_and_check(const char *running_text, const char *next_text)
{
    char p1[PATH_MAX], p2[PATH_MAX], *o1, *o2;
    struct conf *running = load_text(running_text, p1, &o1), *next = load_text(next_text, p2, &o2);
    CU_ASSERT_FATAL(running != NULL && next != NULL);
    size_t reload_lines = conf_describe_changes(running, next, NULL, NULL);
    CU_ASSERT(conf_restart_changes(running, next, NULL, NULL) > 0);
    CU_ASSERT_EQUAL(conf_keep_restart_values(next, running), 0);
    CU_ASSERT_EQUAL(conf_restart_changes(running, next, NULL, NULL), 0);
    CU_ASSERT_EQUAL(conf_describe_changes(running, next, NULL, NULL), reload_lines);
    CU_ASSERT_EQUAL(next->workers, running->workers);
    CU_ASSERT_EQUAL(next->store_type, running->store_type);
    CU_ASSERT_EQUAL(next->redis.nsentinels, running->redis.nsentinels);
    CU_ASSERT(next->redis.sentinels == NULL || next->redis.sentinels != running->redis.sentinels);
    CU_ASSERT(next->redis.prefix != running->redis.prefix);     /* a copy */
    CU_ASSERT(next->control_socket == NULL || next->control_socket != running->control_socket);
    conf_free(running);
    conf_free(next);
    free(o1);
    free(o2);
    unlink(p1);
    unlink(p2);
}

static void test_kept_restart_values_leave_no_restart_change(void)
{
    keep_and_check(RESTART_OLD, RESTART_NEW);   /* strings and lists in next are freed */
    keep_and_check(RESTART_NEW, RESTART_OLD);   /* strings and lists are copied in */
}

/* Every allocation of conf_keep_restart_values() failing in turn: -1, and both still free cleanly. */
static void test_keeping_values_out_of_memory_is_safe(void)
{
    char p1[PATH_MAX], p2[PATH_MAX], *o1, *o2;
    unsigned long n;
    int rc = -1;
    for (n = 1; n < ALLOC_STEPS_MAX && rc != 0; n++) {
        struct conf *running = load_text(RESTART_NEW, p1, &o1), *next = load_text(RESTART_OLD, p2, &o2);
        CU_ASSERT_FATAL(running != NULL && next != NULL);
        conf_fail_alloc(n);
        rc = conf_keep_restart_values(next, running);
        conf_fail_alloc(0);
        if (rc == 0) {
            CU_ASSERT_EQUAL(conf_restart_changes(running, next, NULL, NULL), 0);
        } else {
            CU_ASSERT_EQUAL(rc, -1);
        }
        conf_free(running);
        conf_free(next);
        free(o1);
        free(o2);
        unlink(p1);
        unlink(p2);
    }
    CU_ASSERT(n > 2);           /* at least one allocation failed first */
    CU_ASSERT_EQUAL(rc, 0);
}

int main(void)
{
    if (chdir(TEST_CONF_DIR) != 0) {
        perror(TEST_CONF_DIR);
        return EXIT_FAILURE;
    }
    static const struct unit_test tests[] = {
        { "every bad fixture prints exactly its .err file",
          test_every_bad_fixture_prints_exactly_its_err_file },
        { "every .err file has its fixture", test_every_err_file_has_its_fixture },
        { "every good fixture loads silently", test_every_good_fixture_loads_silently },
        { "the same file gives the same errors twice", test_the_same_file_gives_the_same_errors_twice },
        { "a NULL error stream prints nothing and still fails",
          test_a_null_error_stream_prints_nothing_and_still_fails },
        { "a missing file cannot be opened", test_a_missing_file_cannot_be_opened },
        { "a directory cannot be read", test_a_directory_cannot_be_read },
        { "a file above one mebibyte is refused", test_a_file_above_one_mebibyte_is_refused },
        { "out of memory anywhere fails cleanly", test_out_of_memory_anywhere_fails_cleanly },
        { "sample loads with its documented values", test_sample_loads_with_its_documented_values },
        { "minimal config gets every default", test_minimal_config_gets_every_default },
        { "sample shows the defaults", test_sample_shows_the_defaults },
        { "sidecar sample has a spool", test_sidecar_sample_has_a_spool },
        { "spool needs tcp and its own dir", test_spool_needs_tcp_and_its_own_dir },
        { "full config sets every key", test_full_config_sets_every_key },
        { "orphans.max_bytes takes up to 1 TiB", test_orphans_max_bytes_takes_up_to_one_tebibyte },
        { "unnamed routes are named route-N from 1", test_unnamed_routes_are_named_route_n_from_one },
        { "to: [] and drop: true discard", test_empty_to_and_drop_true_discard },
        { "conf_dest_index finds names", test_dest_index_finds_names },
        { "type redis alone takes every redis default", test_type_redis_alone_takes_every_redis_default },
        { "redis config sets every TCP key", test_redis_config_sets_every_tcp_key },
        { "sentinels are kept as written and the password file is read",
          test_sentinels_are_kept_as_written_and_the_password_file_is_read },
        { "sentinel hosts and ports come out parsed", test_sentinel_hosts_and_ports_come_out_parsed },
        { "a unix socket leaves no host", test_a_unix_socket_leaves_no_host },
        { "host takes a bare IPv6 address", test_host_takes_a_bare_ipv6_address },
        { "max_reply_bytes takes 1024 to 1 GiB", test_max_reply_bytes_takes_1024_to_one_gibibyte },
        { "the password file's line end is stripped", test_the_password_file_line_end_is_stripped },
        { "the password file takes up to 1024 bytes", test_the_password_file_takes_up_to_1024_bytes },
        { "password errors never show the password", test_password_errors_never_show_the_password },
        { "conf_free accepts NULL", test_conf_free_accepts_null },
        { "durations take ms, s, m, h and bare seconds", test_durations_take_ms_s_m_h_and_bare_seconds },
        { "bad durations say why", test_bad_durations_say_why },
        { "addresses are numeric with transport and port",
          test_addresses_are_numeric_with_transport_and_port },
        { "bad addresses say why", test_bad_addresses_say_why },
        { "tls: sections load with their defaults", test_tls_sections_load_with_their_defaults },
        { "targets may name their host", test_targets_may_name_their_host },
        { "named targets load and compare by name", test_named_targets_load_and_compare_by_name },
        { "numbers are decimal digits within bounds", test_numbers_are_decimal_digits_within_bounds },
        { "sizes take K and M suffixes", test_sizes_take_k_and_m_suffixes },
        { "host:port splits names, addresses and brackets",
          test_host_port_splits_names_addresses_and_brackets },
        { "CIDRs and bare addresses", test_cidrs_and_bare_addresses },
        { "bad CIDRs say why", test_bad_cidrs_say_why },
        { "metrics.listen takes IPv4, IPv6 and port 0", test_metrics_listen_takes_ipv4_ipv6_and_port_0 },
        { "control.socket takes up to 107 bytes", test_control_socket_takes_up_to_107_bytes },
        { "control.mode is octal up to 0777", test_control_mode_is_octal_up_to_0777 },
        { "log.facility names are the syslog values", test_log_facility_names_are_the_syslog_values },
        { "the hash is FNV-1a of the bytes and stable", test_the_hash_is_fnv1a_of_the_bytes_and_stable },
        { "one byte more gives another hash", test_one_byte_more_gives_another_hash },
        { "describe_changes names every reloadable difference",
          test_describe_changes_names_every_reloadable_difference },
        { "identical files have no changes", test_identical_files_have_no_changes },
        { "sources changes are described", test_sources_changes_are_described },
        { "sources apply per listener", test_sources_apply_per_listener },
        { "auth_keys_file adds one key per line", test_auth_keys_file_adds_one_key_per_line },
        { "auth_keys_file bounds", test_auth_keys_file_bounds },
        { "auth key errors never show the key", test_auth_key_errors_never_show_the_key },
        { "restart changes name what is kept", test_restart_changes_name_what_is_kept },
        { "kept restart values leave no restart change", test_kept_restart_values_leave_no_restart_change },
        { "keeping values out of memory is safe", test_keeping_values_out_of_memory_is_safe },
        { NULL, NULL },
    };
    return unit_run("conf", tests);
}
