/*
 * test_store_redis.c - unit tests for the Redis back-end of the call
 * context store (src/store/redis*.c), against real redis-server processes
 * started on free loopback ports: the value format, two stores ("two
 * instances") sharing calls, first writer wins, EXPIRE only when needed,
 * timeouts, Redis going away and coming back, AUTH and ACL users, the
 * in-flight bound, the cache (and running without it), Sentinel
 * fail-over, call keys escaped in log lines and the bound on a reply's
 * size.  Every process started here is stopped by its PID.
 */
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "clock.h"
#include "store/store.h"
#include "store/open.h"
#include "unit.h"
#include "unit_ev.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define REDIS_SERVER            "redis-server"
#define START_DEADLINE_S        5.0
#define STOP_DEADLINE_MS        2000
#define POLL_US                 5000
#define WAIT_S                  3.0     /* for anything that should happen within ms */
#define FAILOVER_WAIT_S         6.0     /* a Sentinel fail-over takes about a second */
#define MAX_PROCS               16
#define MAX_INSTANCES           8
#define MAX_ARGS                32
#define KEY_MAX                 128
#define SYNC_TIMEOUT_MS         1000
#define MS_PER_S                1000u
#define NS_PER_MS               1000000u
#define US_PER_MS               1000u

#define TTL_CALL_MS             3600000u
#define TTL_REGISTER_MS         7200000u
#define TTL_ENDED_MS            30000u
#define TTL_SHORT_MS            100000u
#define TTL_LONGER_MS           200000u
#define WRITE_DELAY_MS          200u    /* long enough that nothing goes out before it by chance */
#define WRITE_BATCH             4u      /* max_inflight in the write delay test: a full batch */
#define FIRST_SEEN_MS           UINT64_C(1700000000123)
#define SLOW_TIMEOUT_MS         50
#define PAUSE_MS                "300"
#define TIMEOUT_ANSWER_MAX_MS   250     /* timeout_ms 50 plus generous scheduling slack */
#define SMALL_INFLIGHT          3
#define SMALL_PENDING           2
#define SMALL_CACHE             2
#define MANY_CALLS              20000
#define MANY_INFLIGHT           500
#define STORE_TIMEOUT_MS        500     /* the defaults of the stores the tests open */
#define STORE_MAX_INFLIGHT      1000
#define STORE_MAX_PENDING       1000
#define STORE_CACHE_ENTRIES     1000
#define RECONNECT_MIN_MS        20
#define RECONNECT_MAX_MS        200
#define CONNECT_TIMEOUT_MS      1000    /* also the stall limit: above PAUSE_MS */
#define LOG_INTERVAL_MS         1000
#define SETTLE_S                0.02    /* long enough for anything wrongly sent to arrive */
#define TICK_S                  0.01
#define SHORT_RUN_S             0.05
#define DOWN_RUN_S              0.1     /* a few failed reconnects */
#define WRONG_AUTH_RUN_S        0.2     /* a few refused handshakes */
#define BAD_DB_INDEX            99u
#define STORE_MAX_REPLY_BYTES   65536u  /* store.redis.max_reply_bytes' default */
#define HUGE_VALUE_BYTES        (16u << 20)     /* planted under a call key: 16 MiB */
/* the cap, hiredis's doubling buffer and one 16 KiB read fit many times; 16 MiB read whole do not */
#define HEAP_GROWTH_MAX         (1u << 20)
#define LONG_KEY_BYTES          1000    /* a Call-ID longer than any log line shows */
#define RETRY_RUN_S             0.3     /* many reconnect backoffs: a retry loop would show */

static struct ev_loop *loop;
static char tmpdir[] = "/tmp/test_store_redis.XXXXXX";
static int main_port;                  /* the server most tests share */
static pid_t procs[MAX_PROCS];

static char host_loopback[] = "127.0.0.1";
static char host_name[] = "localhost";
static char host_unknown[] = "no-such-host.invalid";
static char key_prefix[] = "hrtest:";

/* ---- processes ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("free_port");
        exit(EXIT_FAILURE);
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static bool port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void proc_forget(pid_t pid)
{
    for (size_t i = 0; i < MAX_PROCS; i++)
        if (procs[i] == pid)
            procs[i] = 0;
}

static void proc_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    uint64_t end = now_ms() + STOP_DEADLINE_MS;
    while (waitpid(pid, NULL, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            break;
        }
        usleep(POLL_US);
    }
    proc_forget(pid);
}

static void proc_kill_hard(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    proc_forget(pid);
}

static void procs_stop_all(void)
{
    for (size_t i = 0; i < MAX_PROCS; i++)
        proc_stop(procs[i]);
}

/* Starts a Redis (or, with --sentinel, a Sentinel) and waits until it accepts; exits loudly if it cannot. */
static pid_t redis_spawn(int port, const char *conf_file, const char *const *extra)
{
    char portbuf[16], logpath[sizeof tmpdir + 32];
    const char *argv[MAX_ARGS];
    size_t n = 0;
    snprintf(portbuf, sizeof portbuf, "%d", port);
    snprintf(logpath, sizeof logpath, "%s/redis-%d.log", tmpdir, port);
    argv[n++] = REDIS_SERVER;
    if (conf_file != NULL)
        argv[n++] = conf_file;
    const char *common[] = { "--port", portbuf, "--bind", "127.0.0.1", "--dir", tmpdir };
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        argv[n++] = common[i];
    if (conf_file == NULL) {
        const char *data[] = { "--save", "", "--appendonly", "no" };
        for (size_t i = 0; i < sizeof data / sizeof data[0]; i++)
            argv[n++] = data[i];
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < MAX_ARGS - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(EXIT_FAILURE);
    }
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (size_t i = 0; i < MAX_PROCS; i++) {
        if (procs[i] == 0) {
            procs[i] = pid;
            break;
        }
    }
    uint64_t end = now_ms() + (uint64_t)(START_DEADLINE_S * MS_PER_S);
    while (!port_accepts(port)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            proc_forget(pid);
            fprintf(stderr, "FATAL: %s on port %d exited (status %d): is redis-server installed? see %s\n",
                    REDIS_SERVER, port, status, logpath);
            procs_stop_all();
            exit(EXIT_FAILURE);
        }
        if (now_ms() > end) {
            fprintf(stderr, "FATAL: %s on port %d does not accept connections; see %s\n", REDIS_SERVER, port,
                    logpath);
            procs_stop_all();
            exit(EXIT_FAILURE);
        }
        usleep(POLL_US);
    }
    return pid;
}

static pid_t redis_start(int port, const char *const *extra)
{
    return redis_spawn(port, NULL, extra);
}

/* ---- a synchronous connection, to look at what the store did ---- */

static redisContext *sync_open(int port)
{
    struct timeval tv = { SYNC_TIMEOUT_MS / MS_PER_S, SYNC_TIMEOUT_MS % MS_PER_S * US_PER_MS };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "sync connect to %d: %s\n", port, c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* Runs one command on a fresh connection; the reply (caller frees) or NULL. */
static redisReply *sync_cmd(int port, const char *fmt, ...)
{
    redisContext *c = sync_open(port);
    if (c == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static void sync_ok(int port, const char *cmd)
{
    redisReply *r = sync_cmd(port, cmd);
    CU_ASSERT_FATAL(r != NULL);
    if (r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "%s: %s\n", cmd, r->str);
    CU_ASSERT(r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* The value of <prefix><name>, malloc'ed, or NULL. */
static char *redis_value_key(int port, const char *name)
{
    redisReply *r = sync_cmd(port, "GET %s%s", key_prefix, name);
    char *v = NULL;
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = strdup(r->str);
    freeReplyObject(r);
    return v;
}

/* The value of <prefix>call:<key>, malloc'ed, or NULL. */
static char *redis_value(int port, const char *key)
{
    char name[KEY_MAX + sizeof "call:"];
    snprintf(name, sizeof name, "call:%s", key);
    return redis_value_key(port, name);
}

static long long redis_ttl(int port, const char *key)
{
    redisReply *r = sync_cmd(port, "TTL %scall:%s", key_prefix, key);
    long long t = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : LLONG_MIN;
    freeReplyObject(r);
    return t;
}

struct key_probe {
    int port;
    const char *key;
    const char *want;       /* NULL: any value */
};

static bool key_present(void *arg)
{
    const struct key_probe *p = arg;
    char *v = redis_value(p->port, p->key);
    bool ok = v != NULL && (p->want == NULL || strcmp(v, p->want) == 0);
    free(v);
    return ok;
}

static bool wait_key(int port, const char *key, const char *want)
{
    struct key_probe p = { port, key, want };
    return unit_ev_run_until(loop, key_present, &p, WAIT_S);
}

struct ttl_probe {
    int port;
    const char *key;
    long long lo, hi;
};

static bool ttl_within(void *arg)
{
    const struct ttl_probe *p = arg;
    long long t = redis_ttl(p->port, p->key);
    return t >= p->lo && t <= p->hi;
}

static bool wait_ttl(int port, const char *key, long long lo, long long hi)
{
    struct ttl_probe p = { port, key, lo, hi };
    bool ok = unit_ev_run_until(loop, ttl_within, &p, WAIT_S);
    if (!ok)
        fprintf(stderr, "TTL of %s is %lld, expected %lld..%lld\n", key, redis_ttl(port, key), lo, hi);
    return ok;
}

/* ---- stores ---- */

struct answers {
    unsigned n;
    unsigned nulls;
    struct store_entry e;
    char key[KEY_MAX];
};

/* How far behind the clocks an answer carries may be: they are read when it is given. */
#define ANSWER_CLOCK_SLACK_MS 1000u

static void on_answer(void *arg, const char *key, size_t klen, const struct store_entry *e,
                      uint64_t now_ms, uint64_t wall_ms)
{
    struct answers *a = arg;
    uint64_t mono = clock_mono_ms(), wall = clock_wall_ms();
    CU_ASSERT(now_ms <= mono && now_ms + ANSWER_CLOCK_SLACK_MS > mono);
    CU_ASSERT(wall_ms <= wall && wall_ms + ANSWER_CLOCK_SLACK_MS > wall);
    a->n++;
    if (e == NULL)
        a->nulls++;
    else
        a->e = *e;
    snprintf(a->key, sizeof a->key, "%.*s", (int)klen, key);
}

static bool answered(void *arg)
{
    return ((struct answers *)arg)->n > 0;
}

static void conf_init(struct conf *c, int port)
{
    memset(c, 0, sizeof *c);
    c->store_type = CONF_STORE_REDIS;
    c->redis.host = host_loopback;
    c->redis.port = (unsigned)port;
    c->redis.prefix = key_prefix;
    c->redis.timeout_ms = STORE_TIMEOUT_MS;
    c->redis.max_inflight = STORE_MAX_INFLIGHT;
    c->redis.max_pending_writes = STORE_MAX_PENDING;
    c->redis.max_reply_bytes = STORE_MAX_REPLY_BYTES;
    c->cache_entries = STORE_CACHE_ENTRIES;
    c->ttl_call_ms = TTL_CALL_MS;
    c->ttl_register_ms = TTL_REGISTER_MS;
    c->ttl_ended_ms = TTL_ENDED_MS;
    c->reconnect_min_ms = RECONNECT_MIN_MS;
    c->reconnect_max_ms = RECONNECT_MAX_MS;
    c->connect_timeout_ms = CONNECT_TIMEOUT_MS;
    c->log_interval_ms = LOG_INTERVAL_MS;
}

static struct store_entry entry(const char *method, const char *route, unsigned flags)
{
    struct store_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.method, sizeof e.method, "%s", method);
    snprintf(e.route, sizeof e.route, "%s", route);
    e.first_seen_ms = FIRST_SEEN_MS;
    e.flags = flags;
    return e;
}

static int put(struct store *s, const char *key, const struct store_entry *e, uint64_t ttl, uint64_t now,
               struct store_entry *winner)
{
    return store_put(s, key, strlen(key), e, ttl, now, winner);
}

static int get(struct store *s, const char *key, uint64_t now, struct store_entry *out)
{
    return store_get(s, key, strlen(key), now, out);
}

static int query(struct store *s, const char *key)
{
    return store_query(s, key, strlen(key), now_ms());
}

static int update(struct store *s, const char *key, uint64_t ttl, unsigned set, unsigned clear, uint64_t now)
{
    return store_update(s, key, strlen(key), ttl, set, clear, 0, now);
}

struct ready_probe {
    struct store *s;
    struct answers *a;
};

static bool probe_answered(void *arg)
{
    struct ready_probe *p = arg;
    if (p->a->n > 0)
        return true;
    if (query(p->s, "ready-probe") == 0)
        unit_ev_run_until(loop, answered, p->a, WAIT_S);
    return p->a->n > 0;
}

/*
 * A store and everything it points to (its conf, counters and answers).
 * They live in a static table, not on a test's stack: a test that stops at
 * a failed fatal assertion leaves a store that can still run on the loop
 * without touching freed memory, and main() closes what is left.
 */
struct instance {
    bool used;
    struct conf conf;
    struct metrics m;
    struct answers a;
    struct store *s;
};

static struct instance instances[MAX_INSTANCES];

static struct instance *instance_open(const struct conf *c)
{
    struct instance *in = NULL;
    for (size_t i = 0; i < MAX_INSTANCES && in == NULL; i++)
        if (!instances[i].used)
            in = &instances[i];
    CU_ASSERT_FATAL(in != NULL);
    memset(in, 0, sizeof *in);
    in->conf = *c;
    in->s = store_redis_new(&in->conf, loop, &in->m);
    CU_ASSERT_FATAL(in->s != NULL);
    in->used = true;
    store_set_answer_fn(in->s, on_answer, &in->a);
    return in;
}

static void instance_close(struct instance *in)
{
    if (in->used) {
        store_free(in->s);
        in->used = false;
    }
}

static void instances_close_all(void)
{
    for (size_t i = 0; i < MAX_INSTANCES; i++)
        instance_close(&instances[i]);
}

/* Opens a store on conf and waits until it answers a query; counters start at zero. */
static struct instance *instance_ready(const struct conf *c)
{
    struct instance *in = instance_open(c);
    struct ready_probe p = { in->s, &in->a };
    CU_ASSERT_FATAL(unit_ev_run_until(loop, probe_answered, &p, WAIT_S));
    memset(&in->m, 0, sizeof in->m);
    memset(&in->a, 0, sizeof in->a);
    return in;
}

static void flushdb(void)
{
    sync_ok(main_port, "FLUSHDB");
}

/* Stores value under <prefix>call:<key>, both binary (a Call-ID may hold any byte but NUL). */
static void sync_set_raw(int port, const char *key, size_t klen, const char *value, size_t vlen)
{
    redisReply *r = sync_cmd(port, "SET %scall:%b %b", key_prefix, key, klen, value, vlen);
    CU_ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

struct errors_probe {
    const struct metrics *m;
    uint64_t want;
};

static bool errors_reached(void *arg)
{
    const struct errors_probe *p = arg;
    return p->m->store_errors >= p->want;
}

/* ---- log lines ---- */

/*
 * What the store logs while a test looks: stderr (where log.c writes) goes
 * to a file, at level debug.  No fatal assertion between start and end: it
 * would leave stderr in the file.
 */
struct log_capture {
    int saved_fd;
    int saved_level;
    char path[sizeof tmpdir + 32];
};

static void capture_start(struct log_capture *cap)
{
    snprintf(cap->path, sizeof cap->path, "%s/captured.log", tmpdir);
    int fd = open(cap->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    cap->saved_fd = dup(STDERR_FILENO);
    CU_ASSERT_FATAL(cap->saved_fd >= 0);
    CU_ASSERT_FATAL(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    close(fd);
    cap->saved_level = log_current_level;
    log_set_level(LOG_LEVEL_DEBUG);
}

/* Restores stderr; returns what was logged (malloc'ed, NUL-terminated, never NULL) and its length. */
static char *capture_end(struct log_capture *cap, size_t *len)
{
    log_set_level(cap->saved_level);
    dup2(cap->saved_fd, STDERR_FILENO);
    close(cap->saved_fd);
    char *text = NULL;
    size_t used = 0;
    FILE *f = fopen(cap->path, "rb");
    if (f != NULL && fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        rewind(f);
        text = size >= 0 ? malloc((size_t)size + 1) : NULL;
        if (text != NULL)
            used = fread(text, 1, (size_t)size, f);
    }
    if (f != NULL)
        fclose(f);
    if (text == NULL)
        text = calloc(1, 1);
    CU_ASSERT_FATAL(text != NULL);
    text[used] = '\0';
    *len = used;
    unlink(cap->path);
    return text;
}

/* Says what a test found in a log line, without its control bytes reaching the terminal. */
static void print_escaped(const char *what, const char *p, size_t len)
{
    fprintf(stderr, "\n%s: ", what);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= ' ' && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

/*
 * Every line is one whole log line ("heprouter[pid] level: ...", perhaps
 * after a journal priority "<N>") of printable ASCII: nothing a key held
 * started a line of its own or reached a terminal raw.
 */
static bool log_lines_are_whole(const char *text, size_t len)
{
    static const char start[] = "heprouter[";
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return false;
        const char *q = p;
        if (nl - q > 3 && q[0] == '<' && q[2] == '>')
            q += 3;
        if ((size_t)(nl - q) < strlen(start) || strncmp(q, start, strlen(start)) != 0) {
            print_escaped("not a log line of its own", p, (size_t)(nl - p));
            return false;
        }
        for (q = p; q < nl; q++) {
            if ((unsigned char)*q < ' ' || (unsigned char)*q >= 0x7f) {
                print_escaped("a control or non-ASCII byte in a log line", p, (size_t)(nl - p));
                return false;
            }
        }
        p = nl + 1;
    }
    return true;
}

static size_t count_substr(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* ---- memory ---- */

/* The heap in use, sampled each time the loop is about to wait, and its peak. */
static struct heap_watch {
    ev_prepare w;
    size_t peak;
} heap_watch;

#ifdef __SANITIZE_ADDRESS__
/* ASan's allocator is not glibc's: ask it (GCC installs no header declaring this) */
size_t __sanitizer_get_current_allocated_bytes(void);

static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

static void on_heap_prepare(struct ev_loop *l, ev_prepare *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
    size_t n = heap_in_use();
    if (n > heap_watch.peak)
        heap_watch.peak = n;
}

/* Starts watching; returns the heap in use now. */
static size_t heap_watch_start(void)
{
    heap_watch.peak = heap_in_use();
    ev_prepare_init(&heap_watch.w, on_heap_prepare);
    ev_prepare_start(loop, &heap_watch.w);
    return heap_watch.peak;
}

/* Stops watching; returns the peak seen. */
static size_t heap_watch_stop(void)
{
    ev_prepare_stop(loop, &heap_watch.w);
    return heap_watch.peak;
}

/* ---- tests ---- */

static void test_value_round_trips_names_and_flags(void)
{
    struct conf c;
    flushdb();
    conf_init(&c, main_port);
    struct instance *ia = instance_ready(&c), *ib = instance_ready(&c);
    struct store *a = ia->s, *b = ib->s;
    /* a route name may hold the separator: it is the last field */
    struct store_entry e = entry("INVITE", "voip|monitor", STORE_F_FALLBACK | STORE_F_REGISTER);
    e.last_hash = 77;
    CU_ASSERT_EQUAL(put(a, "rt-1@host", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT(wait_key(main_port, "rt-1@host", "1|6|1700000000123|INVITE|voip|monitor"));
    CU_ASSERT(wait_ttl(main_port, "rt-1@host", TTL_CALL_MS / MS_PER_S - 5, TTL_CALL_MS / MS_PER_S));
    CU_ASSERT_EQUAL(ia->m.store_writes, 1);

    CU_ASSERT_EQUAL(query(b, "rt-1@host"), 0);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, answered, &ib->a, WAIT_S));
    CU_ASSERT_EQUAL(ib->a.n, 1);
    CU_ASSERT_EQUAL(ib->a.nulls, 0);
    CU_ASSERT_STRING_EQUAL(ib->a.key, "rt-1@host");
    CU_ASSERT_STRING_EQUAL(ib->a.e.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(ib->a.e.route, "voip|monitor");
    CU_ASSERT_EQUAL(ib->a.e.first_seen_ms, FIRST_SEEN_MS);
    CU_ASSERT_EQUAL(ib->a.e.flags, STORE_F_FALLBACK | STORE_F_REGISTER);
    CU_ASSERT_EQUAL(ib->a.e.origin_signature, 0);

    /* with origin keys: version 2 carries the origin bits and their signature */
    struct store_entry o = entry("INVITE", "tenant|a", 0);
    o.origin_bits = UINT64_C(0x8000000000000005);
    o.origin_signature = UINT32_MAX;
    o.refused_dests = 0x80000001u;
    CU_ASSERT_EQUAL(put(a, "rt-2@host", &o, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT(wait_key(main_port, "rt-2@host",
                       "2|0|1700000000123|INVITE|9223372036854775813|4294967295|2147483649|tenant|a"));
    ib->a.n = 0;
    CU_ASSERT_EQUAL(query(b, "rt-2@host"), 0);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, answered, &ib->a, WAIT_S));
    CU_ASSERT_STRING_EQUAL(ib->a.e.route, "tenant|a");
    CU_ASSERT_EQUAL(ib->a.e.origin_bits, UINT64_C(0x8000000000000005));
    CU_ASSERT_EQUAL(ib->a.e.origin_signature, UINT32_MAX);
    CU_ASSERT_EQUAL(ib->a.e.refused_dests, 0x80000001u);
    instance_close(ia);
    instance_close(ib);
}

/* What claim answers came, by token. */
struct claims {
    size_t n;
    uint64_t token[8];
    int claimed[8];
};

static void on_claimed(void *arg, uint64_t token, int claimed, uint64_t now_ms, uint64_t wall_ms)
{
    struct claims *c = arg;
    (void)now_ms;
    (void)wall_ms;
    CU_ASSERT_FATAL(c->n < 8);
    c->token[c->n] = token;
    c->claimed[c->n++] = claimed;
}

static bool claims_in(void *arg)
{
    return ((struct claims *)arg)->n >= 2;
}

#define CLAIM_TTL_MS 300

/* dedup.shared: the first instance to claim a key within its time wins, in one round trip each. */
static void test_claims_are_won_once_per_window(void)
{
    struct conf c;
    flushdb();
    conf_init(&c, main_port);
    struct instance *ia = instance_ready(&c), *ib = instance_ready(&c);
    struct claims ca = { 0 }, cb = { 0 };
    store_set_claim_fn(ia->s, on_claimed, &ca);
    store_set_claim_fn(ib->s, on_claimed, &cb);
    static const uint8_t key[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xff };
    CU_ASSERT_EQUAL(store_claim(ia->s, key, sizeof key, CLAIM_TTL_MS, now_ms(), 11), 0);
    CU_ASSERT_EQUAL(store_claim(ia->s, key, 8, CLAIM_TTL_MS, now_ms(), 12), 0);    /* another key */
    CU_ASSERT_FATAL(unit_ev_run_until(loop, claims_in, &ca, WAIT_S));
    CU_ASSERT_EQUAL(ca.token[0], 11);
    CU_ASSERT_EQUAL(ca.claimed[0], 1);
    CU_ASSERT_EQUAL(ca.token[1], 12);
    CU_ASSERT_EQUAL(ca.claimed[1], 1);
    /* the other instance, within the time: not its to send */
    CU_ASSERT_EQUAL(store_claim(ib->s, key, sizeof key, CLAIM_TTL_MS, now_ms(), 21), 0);
    CU_ASSERT_EQUAL(store_claim(ib->s, key, 8, CLAIM_TTL_MS, now_ms(), 22), 0);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, claims_in, &cb, WAIT_S));
    CU_ASSERT_EQUAL(cb.claimed[0], 0);
    CU_ASSERT_EQUAL(cb.claimed[1], 0);
    char *v = redis_value_key(main_port, "dedup:deadbeef0102030405060708090a0bff");
    CU_ASSERT_PTR_NOT_NULL(v);
    free(v);
    /* after it: claimed again */
    unit_ev_run_for(loop, (double)CLAIM_TTL_MS / 1000 + 0.1);
    cb.n = 0;
    CU_ASSERT_EQUAL(store_claim(ib->s, key, sizeof key, CLAIM_TTL_MS, now_ms(), 23), 0);
    CU_ASSERT_EQUAL(store_claim(ib->s, key, sizeof key, CLAIM_TTL_MS, now_ms(), 24), 0);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, claims_in, &cb, WAIT_S));
    CU_ASSERT_EQUAL(cb.claimed[0], 1);
    CU_ASSERT_EQUAL(cb.claimed[1], 0);
    instance_close(ia);
    instance_close(ib);
}

static void test_other_instance_learns_the_call_by_query(void)
{
    struct conf c;
    struct store_entry out, e = entry("INVITE", "voipmonitor", 0);
    flushdb();
    conf_init(&c, main_port);
    struct instance *ia = instance_ready(&c), *ib = instance_ready(&c);
    struct store *a = ia->s, *b = ib->s;
    CU_ASSERT_EQUAL(put(a, "inv-1@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT_EQUAL(get(a, "inv-1@pbx", now_ms(), &out), 1);     /* the cache, at once */
    CU_ASSERT(wait_key(main_port, "inv-1@pbx", NULL));

    CU_ASSERT_EQUAL(get(b, "inv-1@pbx", now_ms(), &out), 0);     /* b's cache does not know it */
    CU_ASSERT_EQUAL(ib->m.store_cache_misses, 1);
    CU_ASSERT_EQUAL(query(b, "inv-1@pbx"), 0);
    CU_ASSERT_EQUAL(ib->a.n, 0);                                   /* never from inside query() */
    CU_ASSERT_FATAL(unit_ev_run_until(loop, answered, &ib->a, WAIT_S));
    CU_ASSERT_EQUAL(ib->a.nulls, 0);
    CU_ASSERT_STRING_EQUAL(ib->a.e.route, "voipmonitor");
    CU_ASSERT_EQUAL(ib->m.store_lookups, 1);
    CU_ASSERT_EQUAL(ib->m.store_hits, 1);
    /* the answer filled b's cache */
    CU_ASSERT_EQUAL(get(b, "inv-1@pbx", now_ms(), &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "voipmonitor");
    CU_ASSERT_EQUAL(ib->m.store_cache_hits, 1);
    CU_ASSERT_EQUAL(store_count(b), 1);
    instance_close(ia);
    instance_close(ib);
}

static void test_query_of_an_unknown_call_answers_null(void)
{
    struct conf c;
    flushdb();
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    CU_ASSERT_EQUAL(query(s, "nobody@nowhere"), 0);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, answered, &in->a, WAIT_S));
    unit_ev_run_for(loop, SHORT_RUN_S);
    CU_ASSERT_EQUAL(in->a.n, 1);
    CU_ASSERT_EQUAL(in->a.nulls, 1);
    CU_ASSERT_EQUAL(in->m.store_misses, 1);
    CU_ASSERT_EQUAL(in->m.store_hits, 0);
    instance_close(in);
}

struct route_probe {
    struct store *s;
    const char *key;
    const char *route;
};

static bool cache_route_is(void *arg)
{
    struct route_probe *p = arg;
    struct store_entry out;
    return get(p->s, p->key, now_ms(), &out) == 1 && strcmp(out.route, p->route) == 0;
}

static void test_second_writer_follows_the_first(void)
{
    struct conf c;
    struct store_entry out, winner;
    struct store_entry first = entry("INVITE", "first", 0), second = entry("INVITE", "second", 0);
    second.first_seen_ms++;
    flushdb();
    conf_init(&c, main_port);
    struct instance *ia = instance_ready(&c), *ib = instance_ready(&c);
    struct store *a = ia->s, *b = ib->s;
    CU_ASSERT_EQUAL(put(a, "race@pbx", &first, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT(wait_key(main_port, "race@pbx", NULL));
    /* b decides locally at once (the packet is routed by it) ... */
    CU_ASSERT_EQUAL(put(b, "race@pbx", &second, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT_EQUAL(get(b, "race@pbx", now_ms(), &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "second");
    /* ... and the SET NX GET reply makes the rest of the call follow a's decision */
    struct route_probe p = { b, "race@pbx", "first" };
    CU_ASSERT(unit_ev_run_until(loop, cache_route_is, &p, WAIT_S));
    char *v = redis_value(main_port, "race@pbx");
    CU_ASSERT(v != NULL && strstr(v, "|first") != NULL);
    free(v);
    /* a later put in b: the cache answers with the winner */
    CU_ASSERT_EQUAL(put(b, "race@pbx", &second, TTL_CALL_MS, now_ms(), &winner), 0);
    CU_ASSERT_STRING_EQUAL(winner.route, "first");
    CU_ASSERT_EQUAL(ib->m.store_errors, 0);
    instance_close(ia);
    instance_close(ib);
}

static void test_update_sends_expire_only_when_the_ttl_runs_low(void)
{
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    flushdb();
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(put(s, "ttl@pbx", &e, TTL_SHORT_MS, t0, NULL), 1);
    CU_ASSERT(wait_key(main_port, "ttl@pbx", NULL));
    CU_ASSERT(wait_ttl(main_port, "ttl@pbx", TTL_SHORT_MS / MS_PER_S - 5, TTL_SHORT_MS / MS_PER_S));
    CU_ASSERT_EQUAL(in->m.store_writes, 1);
    /* packets while most of the TTL is left: nothing is sent */
    CU_ASSERT_EQUAL(update(s, "ttl@pbx", TTL_SHORT_MS, 0, 0, t0 + MS_PER_S), 1);
    CU_ASSERT_EQUAL(update(s, "ttl@pbx", TTL_SHORT_MS, 0, STORE_F_ENDED, t0 + 2 * MS_PER_S), 1);
    unit_ev_run_for(loop, SETTLE_S);
    CU_ASSERT_EQUAL(in->m.store_writes, 1);
    /* 60 s later (the caller's clock) less than half of the TTL is left: one EXPIRE */
    CU_ASSERT_EQUAL(update(s, "ttl@pbx", TTL_LONGER_MS, 0, 0, t0 + TTL_SHORT_MS * 6 / 10), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 2);
    CU_ASSERT(wait_ttl(main_port, "ttl@pbx", TTL_LONGER_MS / MS_PER_S - 5, TTL_LONGER_MS / MS_PER_S));
    CU_ASSERT_EQUAL(update(s, "ttl@pbx", TTL_LONGER_MS, 0, 0, t0 + TTL_SHORT_MS * 7 / 10), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 2);
    /* a call the store does not know */
    CU_ASSERT_EQUAL(update(s, "other@pbx", TTL_SHORT_MS, 0, 0, t0), 0);
    CU_ASSERT_EQUAL(in->m.store_writes, 2);
    instance_close(in);
}

/* Steady traffic, each packet well within half the TTL, keeps the key alive. */
static void test_steady_activity_refreshes_the_ttl_in_redis(void)
{
    struct conf c;
    struct store_entry e = entry("SUBSCRIBE", "presence", 0);
    flushdb();
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(put(s, "long@pbx", &e, TTL_SHORT_MS, t0, NULL), 1);
    /* a packet every 0.4 TTL for 2.8 TTLs: an EXPIRE at 0.8, 1.6 and 2.4 TTL */
    for (unsigned k = 1; k <= 7; k++)
        CU_ASSERT_EQUAL(update(s, "long@pbx", TTL_SHORT_MS, 0, 0, t0 + TTL_SHORT_MS * 4 * k / 10), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 4);
    CU_ASSERT(wait_ttl(main_port, "long@pbx", TTL_SHORT_MS / MS_PER_S - 5, TTL_SHORT_MS / MS_PER_S));
    instance_close(in);
}

static void test_ended_call_gets_the_short_ttl_and_a_restart_the_long_one(void)
{
    struct conf c;
    struct store_entry out, e = entry("INVITE", "voipmonitor", 0);
    flushdb();
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t0 = now_ms();
    /* INVITE, then its 407: ended */
    CU_ASSERT_EQUAL(put(s, "auth@pbx", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(update(s, "auth@pbx", TTL_ENDED_MS, STORE_F_ENDED, 0, t0 + 1), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 2);
    CU_ASSERT(wait_ttl(main_port, "auth@pbx", TTL_ENDED_MS / MS_PER_S - 5, TTL_ENDED_MS / MS_PER_S));
    CU_ASSERT_EQUAL(get(s, "auth@pbx", t0 + 2, &out), 1);
    CU_ASSERT_EQUAL(out.flags, STORE_F_ENDED);
    /* its ACK: still ended, nothing sent */
    CU_ASSERT_EQUAL(update(s, "auth@pbx", TTL_ENDED_MS, 0, 0, t0 + 3), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 2);
    /* the INVITE again, with credentials: alive again */
    CU_ASSERT_EQUAL(update(s, "auth@pbx", TTL_CALL_MS, 0, STORE_F_ENDED, t0 + 4), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 3);
    CU_ASSERT(wait_ttl(main_port, "auth@pbx", TTL_CALL_MS / MS_PER_S - 5, TTL_CALL_MS / MS_PER_S));
    /* the value keeps the flags it was written with */
    CU_ASSERT(wait_key(main_port, "auth@pbx", "1|0|1700000000123|INVITE|voipmonitor"));
    CU_ASSERT_EQUAL(in->m.store_errors, 0);
    instance_close(in);
}

/*
 * The store calls the router makes for two whole dialogs (router.c: put for
 * the origin, update for every later packet), and what reaches Redis.
 */
static void test_commands_per_dialog(void)
{
    struct conf c;
    struct store_entry inv = entry("INVITE", "voipmonitor", 0);
    struct store_entry reg = entry("REGISTER", "homer", STORE_F_REGISTER);
    flushdb();
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t = now_ms();

    /* INVITE, 407, ACK, INVITE (credentials), 100, 180, 200, ACK, BYE, 200 */
    CU_ASSERT_EQUAL(put(s, "inv@pbx", &inv, TTL_CALL_MS, t++, NULL), 1);                 /* SET */
    update(s, "inv@pbx", TTL_ENDED_MS, STORE_F_ENDED, 0, t++);                           /* EXPIRE */
    update(s, "inv@pbx", TTL_ENDED_MS, 0, 0, t++);
    update(s, "inv@pbx", TTL_CALL_MS, 0, STORE_F_ENDED, t++);                            /* EXPIRE */
    for (int i = 0; i < 5; i++)
        update(s, "inv@pbx", TTL_CALL_MS, 0, 0, t++);
    update(s, "inv@pbx", TTL_ENDED_MS, STORE_F_ENDED, 0, t++);                           /* EXPIRE */
    CU_ASSERT_EQUAL(in->m.store_writes, 4);

    /* REGISTER, 401, REGISTER (credentials), 200 */
    CU_ASSERT_EQUAL(put(s, "reg@pbx", &reg, TTL_REGISTER_MS, t++, NULL), 1);            /* SET */
    update(s, "reg@pbx", TTL_REGISTER_MS, 0, 0, t++);
    update(s, "reg@pbx", TTL_REGISTER_MS, 0, STORE_F_ENDED, t++);
    update(s, "reg@pbx", TTL_REGISTER_MS, 0, 0, t++);
    CU_ASSERT_EQUAL(in->m.store_writes, 5);

    CU_ASSERT(wait_ttl(main_port, "inv@pbx", TTL_ENDED_MS / MS_PER_S - 5, TTL_ENDED_MS / MS_PER_S));
    CU_ASSERT(wait_ttl(main_port, "reg@pbx", TTL_REGISTER_MS / MS_PER_S - 5, TTL_REGISTER_MS / MS_PER_S));
    CU_ASSERT_EQUAL(in->m.store_lookups, 0);
    CU_ASSERT_EQUAL(in->m.store_errors, 0);
    instance_close(in);
}

static void test_connects_over_a_unix_socket(void)
{
    static char path[sizeof tmpdir + 16];
    char err[512];
    struct conf c;
    struct store_entry e = entry("OPTIONS", "homer", 0);
    snprintf(path, sizeof path, "%s/main.sock", tmpdir);
    flushdb();
    conf_init(&c, 0);
    c.redis.host = NULL;
    c.redis.unix_path = path;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_OK);
    CU_ASSERT(strstr(err, "unix:") != NULL);
    struct instance *in = instance_ready(&c);
    CU_ASSERT_EQUAL(put(in->s, "opt@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT(wait_key(main_port, "opt@pbx", "1|0|1700000000123|OPTIONS|homer"));
    instance_close(in);
}

/* Names are resolved off the loop: the store opens at once, and works (or keeps trying). */
static void test_host_names_are_resolved_without_blocking(void)
{
    struct conf c;
    struct store_entry e = entry("OPTIONS", "homer", 0);
    flushdb();
    conf_init(&c, main_port);
    c.redis.host = host_name;
    struct instance *in = instance_ready(&c);
    CU_ASSERT_EQUAL(put(in->s, "named@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT(wait_key(main_port, "named@pbx", NULL));
    instance_close(in);

    c.redis.host = host_unknown;
    in = instance_open(&c);
    unit_ev_run_for(loop, SHORT_RUN_S);
    CU_ASSERT_EQUAL(query(in->s, "named@pbx"), -1);
    CU_ASSERT_EQUAL(put(in->s, "unnamed@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT_EQUAL(in->m.store_lost_writes, 0);
    instance_close(in);
    unit_ev_run_for(loop, SHORT_RUN_S);    /* a resolution left running ends by itself */
}

struct many_probe {
    struct instance *in;
    unsigned asked;
};

/* Asks about every call in turn, as fast as the in-flight bound lets it. */
static bool many_answered(void *arg)
{
    struct many_probe *p = arg;
    char key[KEY_MAX];
    while (p->asked < MANY_CALLS) {
        snprintf(key, sizeof key, "many-%u@pbx", p->asked);
        if (query(p->in->s, key) != 0)
            break;
        p->asked++;
    }
    return p->in->a.n == MANY_CALLS;
}

static bool many_written(void *arg)
{
    return ((struct instance *)arg)->m.store_writes == MANY_CALLS;
}

static bool nothing_pending(void *arg)
{
    return store_pending(((struct instance *)arg)->s) == 0;
}

struct writes_probe {
    const struct instance *in;
    uint64_t want;
};

static bool writes_reached(void *arg)
{
    const struct writes_probe *p = arg;
    return p->in->m.store_writes >= p->want;
}

/*
 * store.redis.write_delay_ms: writes wait and go out together; the 407's
 * "ended" and the INVITE with credentials that undoes it, inside the delay,
 * become part of the call's one SET; as many writes as may be in flight go at once.
 */
static void test_writes_wait_for_the_delay_and_go_out_together(void)
{
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    char key[KEY_MAX];
    flushdb();
    conf_init(&c, main_port);
    c.redis.write_delay_ms = WRITE_DELAY_MS;
    c.redis.max_inflight = WRITE_BATCH;
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(put(s, "batch@pbx", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(update(s, "batch@pbx", TTL_ENDED_MS, STORE_F_ENDED, 0, t0 + 1), 1);
    CU_ASSERT_EQUAL(update(s, "batch@pbx", TTL_CALL_MS, 0, STORE_F_ENDED, t0 + 2), 1);
    CU_ASSERT_EQUAL(put(s, "other@pbx", &e, TTL_CALL_MS, t0 + 3, NULL), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 0);             /* nothing sent yet */
    CU_ASSERT_EQUAL(store_pending(s), 2);               /* one write per call waits */
    struct writes_probe two = { in, 2 };
    CU_ASSERT_FATAL(unit_ev_run_until(loop, writes_reached, &two, WAIT_S));
    uint64_t waited = now_ms() - t0;
    CU_ASSERT(waited + 1 >= WRITE_DELAY_MS);
    CU_ASSERT_EQUAL(in->m.store_writes, 2);             /* two SETs: no EXPIRE for the flip-flop */
    CU_ASSERT(wait_key(main_port, "batch@pbx", "1|0|1700000000123|INVITE|voipmonitor"));
    CU_ASSERT(wait_ttl(main_port, "batch@pbx", TTL_CALL_MS / MS_PER_S - 5, TTL_CALL_MS / MS_PER_S));
    CU_ASSERT(wait_key(main_port, "other@pbx", "1|0|1700000000123|INVITE|voipmonitor"));
    printf("\n    2 writes waited %llu ms (write_delay_ms %u)", (unsigned long long)waited, WRITE_DELAY_MS);
    /* the next write waits the whole delay too, not what the timer had left, nor from the loop's last wakeup */
    usleep(WRITE_DELAY_MS * US_PER_MS / 2);
    uint64_t t1 = now_ms();
    CU_ASSERT_EQUAL(put(s, "next@pbx", &e, TTL_CALL_MS, t1, NULL), 1);
    unit_ev_run_for(loop, (double)WRITE_DELAY_MS / 4 / MS_PER_S);
    CU_ASSERT_EQUAL(in->m.store_writes, 2);
    struct writes_probe three = { in, 3 };
    CU_ASSERT_FATAL(unit_ev_run_until(loop, writes_reached, &three, WAIT_S));
    CU_ASSERT(now_ms() - t1 + 1 >= WRITE_DELAY_MS);
    /* a batch as large as max_inflight goes at once (once the first two are answered) */
    CU_ASSERT_FATAL(unit_ev_run_until(loop, nothing_pending, in, WAIT_S));
    for (unsigned i = 0; i < WRITE_BATCH; i++) {
        snprintf(key, sizeof key, "full-%u@pbx", i);
        CU_ASSERT_EQUAL(put(s, key, &e, TTL_CALL_MS, now_ms(), NULL), 1);
    }
    CU_ASSERT_EQUAL(in->m.store_writes, 3 + WRITE_BATCH);
    CU_ASSERT_EQUAL(in->m.store_lost_writes, 0);
    CU_ASSERT_EQUAL(in->m.store_errors, 0);
    instance_close(in);
}

/* Pipelined: writes queue behind the in-flight bound and none is lost; every call is found. */
static void test_many_calls_pipelined(void)
{
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    char key[KEY_MAX];
    flushdb();
    conf_init(&c, main_port);
    c.redis.max_inflight = MANY_INFLIGHT;
    c.redis.max_pending_writes = MANY_CALLS;
    c.cache_entries = MANY_CALLS;
    struct instance *ia = instance_ready(&c), *ib = instance_ready(&c);
    uint64_t t0 = now_ms();
    unsigned stored = 0;
    for (unsigned i = 0; i < MANY_CALLS; i++) {
        snprintf(key, sizeof key, "many-%u@pbx", i);
        stored += put(ia->s, key, &e, TTL_CALL_MS, t0, NULL) == 1;
    }
    CU_ASSERT_EQUAL(stored, MANY_CALLS);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, many_written, ia, WAIT_S));
    CU_ASSERT_EQUAL(ia->m.store_lost_writes, 0);
    struct many_probe p = { ib, 0 };
    CU_ASSERT(unit_ev_run_until(loop, many_answered, &p, WAIT_S));
    CU_ASSERT_EQUAL(ib->a.nulls, 0);
    CU_ASSERT_EQUAL(ib->m.store_hits, MANY_CALLS);
    CU_ASSERT_EQUAL(store_count(ib->s), MANY_CALLS);
    printf("\n    %u calls: written and found again in %llu ms\n", MANY_CALLS,
           (unsigned long long)(now_ms() - t0));
    instance_close(ia);
    instance_close(ib);
}

static void test_key_lost_by_redis_is_written_again(void)
{
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    flushdb();
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(put(s, "gone@pbx", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT(wait_key(main_port, "gone@pbx", NULL));
    sync_ok(main_port, "DEL hrtest:call:gone@pbx");
    /* the BYE's 200: EXPIRE finds nothing, so the call is stored again, ended */
    CU_ASSERT_EQUAL(update(s, "gone@pbx", TTL_ENDED_MS, STORE_F_ENDED, 0, t0 + 1), 1);
    CU_ASSERT(wait_key(main_port, "gone@pbx", "1|1|1700000000123|INVITE|voipmonitor"));
    CU_ASSERT(wait_ttl(main_port, "gone@pbx", TTL_ENDED_MS / MS_PER_S - 5, TTL_ENDED_MS / MS_PER_S));
    CU_ASSERT_EQUAL(in->m.store_writes, 3);
    instance_close(in);
}

static void test_slow_redis_answers_null_at_the_timeout(void)
{
    struct conf c;
    struct store_entry out;
    flushdb();
    conf_init(&c, main_port);
    c.redis.timeout_ms = SLOW_TIMEOUT_MS;
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    sync_ok(main_port, "SET hrtest:call:slow@pbx 1|0|1700000000123|INVITE|voipmonitor");
    sync_ok(main_port, "CLIENT PAUSE " PAUSE_MS);
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(query(s, "slow@pbx"), 0);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, answered, &in->a, WAIT_S));
    uint64_t took = now_ms() - t0;
    CU_ASSERT(took >= SLOW_TIMEOUT_MS && took < TIMEOUT_ANSWER_MAX_MS);
    CU_ASSERT_EQUAL(in->a.nulls, 1);
    CU_ASSERT_EQUAL(in->m.store_timeouts, 1);
    CU_ASSERT_EQUAL(get(s, "slow@pbx", now_ms(), &out), 0);
    /* the late reply fills the cache but is not a second answer */
    struct route_probe p = { s, "slow@pbx", "voipmonitor" };
    CU_ASSERT(unit_ev_run_until(loop, cache_route_is, &p, WAIT_S));
    CU_ASSERT_EQUAL(in->a.n, 1);
    CU_ASSERT_EQUAL(in->m.store_hits, 1);
    instance_close(in);
}

static void test_in_flight_bound_refuses_queries_and_queues_writes(void)
{
    struct conf c;
    struct store_entry e = entry("REGISTER", "homer", STORE_F_REGISTER);
    flushdb();
    conf_init(&c, main_port);
    c.redis.max_inflight = SMALL_INFLIGHT;
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    CU_ASSERT_EQUAL(query(s, "q1"), 0);
    CU_ASSERT_EQUAL(query(s, "q2"), 0);
    CU_ASSERT_EQUAL(query(s, "q3"), 0);
    CU_ASSERT_EQUAL(query(s, "q4"), -1);
    CU_ASSERT_EQUAL(in->m.store_unavailable, 1);
    CU_ASSERT_EQUAL(in->m.store_lookups, 3);
    /* a decision made now waits for room, it is not lost */
    CU_ASSERT_EQUAL(put(s, "reg@pbx", &e, TTL_REGISTER_MS, now_ms(), NULL), 1);
    CU_ASSERT_EQUAL(in->m.store_writes, 0);
    CU_ASSERT(wait_key(main_port, "reg@pbx", "1|4|1700000000123|REGISTER|homer"));
    CU_ASSERT_EQUAL(in->a.n, 3);
    CU_ASSERT_EQUAL(in->m.store_writes, 1);
    CU_ASSERT_EQUAL(in->m.store_lost_writes, 0);
    CU_ASSERT_EQUAL(query(s, "q5"), 0);
    instance_close(in);
}

static void test_without_cache_everything_goes_through_query(void)
{
    struct conf c;
    struct store_entry out, e = entry("INVITE", "voipmonitor", 0);
    flushdb();
    conf_init(&c, main_port);
    c.cache_entries = 0;
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(put(s, "nocache@pbx", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(get(s, "nocache@pbx", t0, &out), 0);
    CU_ASSERT_EQUAL(store_count(s), 0);
    CU_ASSERT(wait_key(main_port, "nocache@pbx", NULL));
    CU_ASSERT_EQUAL(query(s, "nocache@pbx"), 0);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, answered, &in->a, WAIT_S));
    CU_ASSERT_EQUAL(in->a.nulls, 0);
    CU_ASSERT_STRING_EQUAL(in->a.e.route, "voipmonitor");
    CU_ASSERT_EQUAL(get(s, "nocache@pbx", t0, &out), 0);
    /* a flag change still reaches Redis */
    CU_ASSERT_EQUAL(update(s, "nocache@pbx", TTL_ENDED_MS, STORE_F_ENDED, 0, t0 + 1), 0);
    CU_ASSERT(wait_ttl(main_port, "nocache@pbx", TTL_ENDED_MS / MS_PER_S - 5, TTL_ENDED_MS / MS_PER_S));
    CU_ASSERT_EQUAL(store_expire(s, t0 + TTL_CALL_MS), 0);
    instance_close(in);
}

static void test_malformed_values_are_unknown_calls(void)
{
    static const char *const bad[] = {
        "SET hrtest:call:bad1 garbage",
        "SET hrtest:call:bad2 3|0|1700000000123|INVITE|voipmonitor",    /* another version */
        "SET hrtest:call:bad3 1|0|1700000000123|INVITE|",               /* no route */
        "SET hrtest:call:bad4 1|x|1700000000123|INVITE|voipmonitor",    /* flags not a number */
        "SET hrtest:call:bad5 1|0|99999999999999999999999|INVITE|r",    /* first seen overflows */
        "SET hrtest:call:bad6 1|0|1|INVITEINVITEINVITEINVITEINVITEINVITE|r",  /* method too long */
        "SET hrtest:call:bad7 1|0|1|INVITE|rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",  /* route of 64 bytes: too long */
        "SET hrtest:call:bad8 2|0|1700000000123|INVITE|voipmonitor",    /* version 2 without origin bits */
        "SET hrtest:call:bad9 2|0|1|INVITE|5|0|0|r",                    /* signature 0 */
        "SET hrtest:call:bad10 2|0|1|INVITE|5|4294967296|0|r",          /* signature over 32 bits */
        "SET hrtest:call:bad11 2|0|1|INVITE|5|7|4294967296|r",          /* refused over 32 bits */
    };
    const size_t nbad = sizeof bad / sizeof bad[0];
    struct conf c;
    char key[KEY_MAX];
    flushdb();
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    for (size_t i = 0; i < nbad; i++) {
        sync_ok(main_port, bad[i]);
        snprintf(key, sizeof key, "bad%zu", i + 1);
        CU_ASSERT_EQUAL(query(s, key), 0);
    }
    uint64_t end = now_ms() + (uint64_t)(WAIT_S * MS_PER_S);
    while (in->a.n < nbad && now_ms() < end)
        unit_ev_run_for(loop, TICK_S);
    CU_ASSERT_EQUAL(in->a.n, nbad);
    CU_ASSERT_EQUAL(in->a.nulls, nbad);
    CU_ASSERT_EQUAL(in->m.store_errors, nbad);
    CU_ASSERT_EQUAL(in->m.store_hits, 0);
    CU_ASSERT_EQUAL(store_count(s), 0);
    instance_close(in);
}

static void test_cache_evicts_the_least_recent_and_expire_sweeps(void)
{
    struct conf c;
    struct store_entry out, e = entry("INVITE", "voipmonitor", 0);
    flushdb();
    conf_init(&c, main_port);
    c.cache_entries = SMALL_CACHE;
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(put(s, "k1", &e, TTL_ENDED_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(put(s, "k2", &e, TTL_ENDED_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(get(s, "k1", t0, &out), 1);                  /* k2 is now the least recent */
    CU_ASSERT_EQUAL(put(s, "k3", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(store_count(s), SMALL_CACHE);
    CU_ASSERT_EQUAL(get(s, "k2", t0, &out), 0);
    CU_ASSERT_EQUAL(get(s, "k1", t0, &out), 1);
    CU_ASSERT(wait_key(main_port, "k2", NULL));                  /* evicted here, still in Redis */
    CU_ASSERT_EQUAL(store_expire(s, t0 + TTL_ENDED_MS), 1);      /* k1 */
    CU_ASSERT_EQUAL(store_count(s), 1);
    CU_ASSERT_EQUAL(get(s, "k3", t0 + TTL_ENDED_MS, &out), 1);
    CU_ASSERT_EQUAL(get(s, "k3", t0 + TTL_CALL_MS, &out), 0);    /* lazily, on the way */
    CU_ASSERT_EQUAL(store_count(s), 0);
    instance_close(in);
}

static bool query_refused(void *arg)
{
    return query(arg, "down-probe") == -1;
}

static bool reconnected(void *arg)
{
    return ((struct metrics *)arg)->store_reconnects > 0;
}

static void test_redis_down_keeps_decisions_and_writes_them_when_back(void)
{
    struct conf c;
    struct store_entry out, e = entry("INVITE", "voipmonitor", 0);
    int port = free_port();
    pid_t pid = redis_start(port, NULL);
    conf_init(&c, port);
    c.redis.max_pending_writes = SMALL_PENDING;
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;

    /* a question on its way when Redis dies is answered, NULL */
    CU_ASSERT_EQUAL(query(s, "inflight@pbx"), 0);
    proc_kill_hard(pid);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, answered, &in->a, WAIT_S));
    CU_ASSERT_EQUAL(in->a.nulls, 1);
    CU_ASSERT(unit_ev_run_until(loop, query_refused, s, WAIT_S));
    CU_ASSERT(in->m.store_unavailable >= 1);

    /* decisions while down: cached at once, kept (the oldest beyond the bound lost) */
    uint64_t t0 = now_ms();
    CU_ASSERT_EQUAL(put(s, "down1@pbx", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(put(s, "down2@pbx", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(put(s, "down3@pbx", &e, TTL_CALL_MS, t0, NULL), 1);
    CU_ASSERT_EQUAL(update(s, "down3@pbx", TTL_ENDED_MS, STORE_F_ENDED, 0, t0 + 1), 1);  /* merged */
    CU_ASSERT_EQUAL(in->m.store_lost_writes, 1);
    CU_ASSERT_EQUAL(get(s, "down1@pbx", t0, &out), 1);
    unit_ev_run_for(loop, DOWN_RUN_S);

    pid = redis_start(port, NULL);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, reconnected, &in->m, WAIT_S));
    CU_ASSERT_EQUAL(in->m.store_reconnects, 1);
    CU_ASSERT(wait_key(port, "down2@pbx", NULL));
    CU_ASSERT(wait_key(port, "down3@pbx", "1|1|1700000000123|INVITE|voipmonitor"));
    CU_ASSERT(wait_ttl(port, "down3@pbx", TTL_ENDED_MS / MS_PER_S - 5, TTL_ENDED_MS / MS_PER_S));
    char *v = redis_value(port, "down1@pbx");
    CU_ASSERT_PTR_NULL(v);
    free(v);
    /* and the first call is written again at its next packet */
    CU_ASSERT_EQUAL(update(s, "down1@pbx", TTL_CALL_MS, 0, 0, t0 + 2), 1);
    CU_ASSERT(wait_key(port, "down1@pbx", NULL));
    CU_ASSERT_EQUAL(query(s, "down2@pbx"), 0);
    instance_close(in);
    proc_stop(pid);
}

/* The line of text that holds at, without its line end: its length. */
static size_t line_length_at(const char *text, const char *at)
{
    const char *bol = at, *eol = strchr(at, '\n');
    while (bol > text && bol[-1] != '\n')
        bol--;
    return (size_t)((eol != NULL ? eol : at + strlen(at)) - bol);
}

/*
 * Call-IDs come from the network: a key holding a line end, terminal
 * escapes, a byte that is no UTF-8, quotes or backslashes shows in a log
 * line quoted and escaped, and a long one cut, with its length.
 */
static void test_log_lines_show_call_keys_escaped(void)
{
    /* a GET answered with a malformed value: taken as unknown */
    static const char get_key[] = "esc\n\x1b[31mred\xff@pbx";
    static const char get_shown[] = "malformed value for call \"esc\\x0a\\x1b[31mred\\xff@pbx\": taken as unknown";
    /* a SET NX GET answered with one: the local decision kept */
    static const char set_key[] = "q\"b\\\r\n@pbx";
    static const char set_shown[] = "malformed value for call \"q\\\"b\\\\\\x0d\\x0a@pbx\": kept the local decision";
    /* another writer was first: its route name is escaped too */
    static const char won_key[] = "won\x1b]0;title\x07@pbx";
    static const char won_route[] = "r\x1b[0m";
    static const char won_value[] = "1|0|1700000000123|INVITE|r\x1b[0m";
    static const char won_shown[] =
        "call \"won\\x1b]0;title\\x07@pbx\" was stored first elsewhere (route \"r\\x1b[0m\"): following it";
    static const char garbage[] = "garbage";
    static char long_key[LONG_KEY_BYTES + 1];
    char long_shown[64];
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    struct log_capture cap;
    size_t len;

    memset(long_key, 'L', LONG_KEY_BYTES);
    long_key[LONG_KEY_BYTES - 1] = '\n';
    snprintf(long_shown, sizeof long_shown, "L\"... (%d bytes): taken as unknown", LONG_KEY_BYTES);
    flushdb();
    conf_init(&c, main_port);
    c.log_interval_ms = 0;                      /* every line: none suppressed */
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    sync_set_raw(main_port, get_key, strlen(get_key), garbage, strlen(garbage));
    sync_set_raw(main_port, set_key, strlen(set_key), garbage, strlen(garbage));
    sync_set_raw(main_port, won_key, strlen(won_key), won_value, strlen(won_value));
    sync_set_raw(main_port, long_key, LONG_KEY_BYTES, garbage, strlen(garbage));

    capture_start(&cap);
    CU_ASSERT_EQUAL(query(s, get_key), 0);
    CU_ASSERT_EQUAL(query(s, long_key), 0);
    CU_ASSERT_EQUAL(put(s, set_key, &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT_EQUAL(put(s, won_key, &e, TTL_CALL_MS, now_ms(), NULL), 1);
    struct errors_probe errors = { &in->m, 3 };
    struct route_probe won = { s, won_key, won_route };
    bool all_errors = unit_ev_run_until(loop, errors_reached, &errors, WAIT_S);
    bool followed = unit_ev_run_until(loop, cache_route_is, &won, WAIT_S);
    char *log = capture_end(&cap, &len);

    CU_ASSERT(all_errors);
    CU_ASSERT(followed);
    CU_ASSERT_EQUAL(in->m.store_errors, 3);
    CU_ASSERT_EQUAL(in->a.n, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, get_shown));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, set_shown));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, won_shown));
    const char *cut = strstr(log, long_shown);
    CU_ASSERT_PTR_NOT_NULL(cut);
    if (cut != NULL)
        CU_ASSERT(line_length_at(log, cut) < LONG_KEY_BYTES);
    CU_ASSERT_EQUAL(count_substr(log, "malformed value for call"), 3);
    CU_ASSERT(log_lines_are_whole(log, len));
    free(log);
    instance_close(in);
}

/*
 * hiredis reads a reply whole, whatever its size: a 16 MiB value planted
 * under a call key must not be buffered by each worker.  Once more than
 * max_reply_bytes of it are in, the connection is dropped, counted and
 * made again: a GET is answered "unknown", a SET NX GET keeps the local
 * decision and is not sent again (it would be dropped again, forever).  A
 * value under the cap but longer than any the store writes is merely
 * malformed.
 */
static void test_a_reply_above_max_reply_bytes_drops_the_connection(void)
{
    static const char good[] = "1|0|1700000000123|INVITE|voipmonitor";
    static const char dropped[] =
        "connection lost: the reply for call \"huge@pbx\" is longer than store.redis.max_reply_bytes";
    struct conf c;
    struct store_entry out, e = entry("INVITE", "local", 0);
    struct log_capture cap;
    size_t len;
    flushdb();
    conf_init(&c, main_port);
    c.log_interval_ms = 0;                      /* every line: none suppressed */
    char *big = malloc(HUGE_VALUE_BYTES);
    CU_ASSERT_FATAL(big != NULL);
    memset(big, 'x', HUGE_VALUE_BYTES);
    sync_set_raw(main_port, "huge@pbx", strlen("huge@pbx"), big, HUGE_VALUE_BYTES);
    sync_set_raw(main_port, "long@pbx", strlen("long@pbx"), big, STORE_MAX_REPLY_BYTES / 2);
    free(big);
    sync_set_raw(main_port, "normal@pbx", strlen("normal@pbx"), good, strlen(good));
    struct instance *in = instance_ready(&c);
    struct store *s = in->s;

    /* a GET: answered "unknown", the connection dropped and made again */
    capture_start(&cap);
    size_t base = heap_watch_start();
    CU_ASSERT_EQUAL(query(s, "huge@pbx"), 0);
    bool answer = unit_ev_run_until(loop, answered, &in->a, WAIT_S);
    bool again = unit_ev_run_until(loop, reconnected, &in->m, WAIT_S);
    size_t peak = heap_watch_stop();
    CU_ASSERT(answer);
    CU_ASSERT(again);
    CU_ASSERT_EQUAL(in->a.nulls, 1);
    CU_ASSERT_EQUAL(in->m.store_errors, 1);
    CU_ASSERT_EQUAL(in->m.store_reconnects, 1);
    CU_ASSERT_EQUAL(in->m.store_hits, 0);
    printf("\n    a %u-byte reply: the heap grew by at most %zu bytes\n", HUGE_VALUE_BYTES, peak - base);
    CU_ASSERT(peak - base < HEAP_GROWTH_MAX);

    /* connected again: a normal call is found */
    memset(&in->a, 0, sizeof in->a);
    CU_ASSERT_EQUAL(query(s, "normal@pbx"), 0);
    CU_ASSERT(unit_ev_run_until(loop, answered, &in->a, WAIT_S));
    CU_ASSERT_EQUAL(in->a.nulls, 0);
    CU_ASSERT_STRING_EQUAL(in->a.e.route, "voipmonitor");

    /* under the cap, longer than any value: malformed, the connection kept */
    memset(&in->a, 0, sizeof in->a);
    CU_ASSERT_EQUAL(query(s, "long@pbx"), 0);
    CU_ASSERT(unit_ev_run_until(loop, answered, &in->a, WAIT_S));
    CU_ASSERT_EQUAL(in->a.nulls, 1);
    CU_ASSERT_EQUAL(in->m.store_errors, 2);

    /* a SET NX GET answered with it: dropped once, the local decision kept, no retry loop */
    struct errors_probe errors = { &in->m, 3 };
    CU_ASSERT_EQUAL(put(s, "huge@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    bool set_dropped = unit_ev_run_until(loop, errors_reached, &errors, WAIT_S);
    unit_ev_run_for(loop, RETRY_RUN_S);
    char *log = capture_end(&cap, &len);
    CU_ASSERT(set_dropped);
    CU_ASSERT_EQUAL(in->m.store_errors, 3);
    CU_ASSERT_EQUAL(in->m.store_reconnects, 2);
    CU_ASSERT_EQUAL(in->m.store_lost_writes, 0);
    CU_ASSERT_EQUAL(get(s, "huge@pbx", now_ms(), &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "local");
    CU_ASSERT_EQUAL(count_substr(log, dropped), 2);
    CU_ASSERT(log_lines_are_whole(log, len));
    free(log);
    instance_close(in);
}

static void test_start_up_check_reports_what_an_operator_must_fix(void)
{
    static char good[] = "s3cret", wrong[] = "wrong", alice[] = "alice", alicepw[] = "alicepw",
                bob[] = "bob", carol[] = "carol", carolpw[] = "carolpw";
    const char *extra[] = { "--requirepass", good, NULL };
    char err[512], expect[128];
    struct conf c;
    int port = free_port();
    pid_t pid = redis_start(port, extra);
    redisContext *admin = sync_open(port);
    CU_ASSERT_FATAL(admin != NULL);
    freeReplyObject(redisCommand(admin, "AUTH %s", good));
    freeReplyObject(redisCommand(admin, "ACL SETUSER alice on >alicepw ~hrtest:* +@all"));
    freeReplyObject(redisCommand(admin, "ACL SETUSER carol on >carolpw ~elsewhere:* +@all"));
    redisFree(admin);
    conf_init(&c, port);
    snprintf(expect, sizeof expect, "redis 127.0.0.1:%d: AUTH failed: WRONGPASS", port);

    c.redis.password = good;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_OK);

    c.redis.password = wrong;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_REFUSED);
    CU_ASSERT(strncmp(err, expect, strlen(expect)) == 0);
    printf("\n    %s\n", err);

    c.redis.password = NULL;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_REFUSED);
    CU_ASSERT(strstr(err, "NOAUTH") != NULL);

    c.redis.password = good;
    c.redis.db = BAD_DB_INDEX;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_REFUSED);
    CU_ASSERT(strstr(err, "SELECT failed") != NULL);
    c.redis.db = 0;

    c.redis.username = alice;
    c.redis.password = alicepw;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_OK);
    c.redis.password = wrong;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_REFUSED);
    CU_ASSERT(strstr(err, "WRONGPASS") != NULL);
    c.redis.username = bob;                     /* no such user */
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_REFUSED);
    CU_ASSERT(strstr(err, "WRONGPASS") != NULL);
    c.redis.username = carol;                   /* may not touch our keys */
    c.redis.password = carolpw;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_REFUSED);
    CU_ASSERT(strstr(err, "NOPERM") != NULL);

    /* merely unreachable: heprouter starts on its cache and the fallback */
    c.redis.port = (unsigned)free_port();
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_UNREACHABLE);
    CU_ASSERT(strstr(err, "redis 127.0.0.1:") != NULL);
    proc_stop(pid);
}

static void test_stores_authenticate_with_user_and_password(void)
{
    static char good[] = "s3cret", wrong[] = "wrong", alice[] = "alice", alicepw[] = "alicepw";
    const char *extra[] = { "--requirepass", good, NULL };
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    int port = free_port();
    pid_t pid = redis_start(port, extra);
    redisContext *admin = sync_open(port);
    CU_ASSERT_FATAL(admin != NULL);
    freeReplyObject(redisCommand(admin, "AUTH %s", good));
    freeReplyObject(redisCommand(admin, "ACL SETUSER alice on >alicepw ~hrtest:* +@all"));
    redisFree(admin);

    conf_init(&c, port);
    c.redis.username = alice;
    c.redis.password = alicepw;
    c.redis.db = 1;
    struct instance *in = instance_ready(&c);
    CU_ASSERT_EQUAL(put(in->s, "acl@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    redisContext *check = sync_open(port);
    CU_ASSERT_FATAL(check != NULL);
    freeReplyObject(redisCommand(check, "AUTH %s", good));
    freeReplyObject(redisCommand(check, "SELECT 1"));
    redisReply *r = NULL;
    uint64_t end = now_ms() + (uint64_t)(WAIT_S * MS_PER_S);
    while (now_ms() < end) {
        unit_ev_run_for(loop, TICK_S);
        r = redisCommand(check, "GET hrtest:call:acl@pbx");
        if (r != NULL && r->type == REDIS_REPLY_STRING)
            break;
        freeReplyObject(r);
        r = NULL;
    }
    CU_ASSERT(r != NULL);                       /* in db 1, written as alice */
    freeReplyObject(r);
    redisFree(check);

    /* a wrong password: never ready, never blocking */
    conf_init(&c, port);
    c.redis.password = wrong;
    struct instance *w = instance_open(&c);
    unit_ev_run_for(loop, WRONG_AUTH_RUN_S);
    CU_ASSERT_EQUAL(query(w->s, "acl@pbx"), -1);
    CU_ASSERT_EQUAL(put(w->s, "wrong@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);  /* cached, kept */
    CU_ASSERT_EQUAL(w->m.store_reconnects, 0);
    CU_ASSERT_EQUAL(w->m.store_lost_writes, 0);
    instance_close(w);
    instance_close(in);
    proc_stop(pid);
}

static void test_free_with_commands_in_flight_calls_no_one(void)
{
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    conf_init(&c, main_port);
    struct instance *in = instance_ready(&c);
    CU_ASSERT_EQUAL(query(in->s, "bye@pbx"), 0);
    CU_ASSERT_EQUAL(put(in->s, "bye@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    instance_close(in);
    unit_ev_run_for(loop, SETTLE_S);
    CU_ASSERT_EQUAL(in->a.n, 0);        /* the table outlives the store */

    /* and a store that never reached its server */
    conf_init(&c, free_port());
    in = instance_open(&c);
    unit_ev_run_for(loop, SHORT_RUN_S);
    instance_close(in);
}

/* ---- Sentinel ---- */

static bool replica_linked(void *arg)
{
    int port = *(int *)arg;
    redisReply *r = sync_cmd(port, "INFO replication");
    bool ok = r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") != NULL;
    freeReplyObject(r);
    return ok;
}

/*
 * Asks the Sentinel for a fail-over; it refuses (NOGOODSLAVE) until it has
 * found the replica through the master and heard from it, so ask again.
 */
static bool sentinel_failover_started(void *arg)
{
    int port = *(int *)arg;
    redisReply *r = sync_cmd(port, "SENTINEL FAILOVER hrmaster");
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!ok)
        unit_ev_run_for(loop, SHORT_RUN_S);
    return ok;
}

static void test_sentinel_names_the_master_and_a_failover_is_followed(void)
{
    static char master_name[] = "hrmaster", unknown_name[] = "nosuchmaster";
    static char sentinel_host[] = "localhost", sentinel_text[32];     /* the store keeps pointing at them */
    static struct conf_endpoint sentinels[1] = { { .host = sentinel_host, .text = sentinel_text } };
    char conf_path[sizeof tmpdir + 32], replicaof[32], err[512];
    struct conf c;
    struct store_entry e = entry("INVITE", "voipmonitor", 0);
    int mport = free_port(), rport = free_port(), sport = free_port();

    const char *mextra[] = { "--repl-diskless-sync-delay", "0", NULL };   /* the default waits 5 s */
    pid_t mpid = redis_start(mport, mextra);
    snprintf(replicaof, sizeof replicaof, "127.0.0.1 %d", mport);
    const char *rextra[] = { "--replicaof", replicaof, NULL };
    pid_t rpid = redis_start(rport, rextra);
    CU_ASSERT_FATAL(unit_ev_run_until(loop, replica_linked, &rport, WAIT_S));

    snprintf(conf_path, sizeof conf_path, "%s/sentinel-%d.conf", tmpdir, sport);
    FILE *f = fopen(conf_path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "sentinel monitor %s 127.0.0.1 %d 1\n"
               "sentinel down-after-milliseconds %s 1000\n"
               "sentinel failover-timeout %s 2000\n", master_name, mport, master_name, master_name);
    fclose(f);
    const char *sextra[] = { "--sentinel", NULL };
    pid_t spid = redis_spawn(sport, conf_path, sextra);

    conf_init(&c, 0);
    c.redis.host = NULL;
    sentinels[0].port = (unsigned)sport;                /* a name: resolved off the loop */
    snprintf(sentinel_text, sizeof sentinel_text, "localhost:%d", sport);
    c.redis.sentinels = sentinels;
    c.redis.nsentinels = 1;
    c.redis.master_name = unknown_name;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_REFUSED);
    CU_ASSERT(strstr(err, "does not know master") != NULL);
    c.redis.master_name = master_name;
    CU_ASSERT_EQUAL(store_redis_check(&c, err, sizeof err), STORE_CHECK_OK);

    struct instance *in = instance_ready(&c);
    struct store *s = in->s;
    CU_ASSERT_EQUAL(put(s, "before@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT(wait_key(mport, "before@pbx", NULL));

    CU_ASSERT_FATAL(unit_ev_run_until(loop, sentinel_failover_started, &sport, WAIT_S));
    CU_ASSERT_FATAL(unit_ev_run_until(loop, reconnected, &in->m, FAILOVER_WAIT_S));
    CU_ASSERT_EQUAL(put(s, "after@pbx", &e, TTL_CALL_MS, now_ms(), NULL), 1);
    CU_ASSERT(wait_key(rport, "after@pbx", NULL));
    CU_ASSERT_EQUAL(in->m.store_lost_writes, 0);
    instance_close(in);
    proc_stop(spid);
    proc_stop(rpid);
    proc_stop(mpid);
}

static void remove_tmpdir(void)
{
    DIR *d = opendir(tmpdir);
    if (d == NULL)
        return;
    struct dirent *de;
    char path[sizeof tmpdir + 256];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "value round-trips names and flags", test_value_round_trips_names_and_flags },
        { "claims are won once per window", test_claims_are_won_once_per_window },
        { "other instance learns the call by query", test_other_instance_learns_the_call_by_query },
        { "query of an unknown call answers NULL", test_query_of_an_unknown_call_answers_null },
        { "second writer follows the first", test_second_writer_follows_the_first },
        { "update sends EXPIRE only when the TTL runs low",
          test_update_sends_expire_only_when_the_ttl_runs_low },
        { "steady activity refreshes the TTL in Redis", test_steady_activity_refreshes_the_ttl_in_redis },
        { "ended call gets the short TTL, a restart the long one",
          test_ended_call_gets_the_short_ttl_and_a_restart_the_long_one },
        { "commands per dialog: INVITE with 407 = 4, REGISTER = 1", test_commands_per_dialog },
        { "connects over a unix socket", test_connects_over_a_unix_socket },
        { "host names are resolved without blocking", test_host_names_are_resolved_without_blocking },
        { "many calls pipelined", test_many_calls_pipelined },
        { "writes wait for the delay and go out together", test_writes_wait_for_the_delay_and_go_out_together },
        { "key lost by Redis is written again", test_key_lost_by_redis_is_written_again },
        { "slow Redis answers NULL at the timeout", test_slow_redis_answers_null_at_the_timeout },
        { "in-flight bound refuses queries and queues writes",
          test_in_flight_bound_refuses_queries_and_queues_writes },
        { "without cache everything goes through query", test_without_cache_everything_goes_through_query },
        { "malformed values are unknown calls", test_malformed_values_are_unknown_calls },
        { "log lines show call keys escaped", test_log_lines_show_call_keys_escaped },
        { "a reply above max_reply_bytes drops the connection",
          test_a_reply_above_max_reply_bytes_drops_the_connection },
        { "cache evicts the least recent and expire sweeps",
          test_cache_evicts_the_least_recent_and_expire_sweeps },
        { "Redis down keeps decisions and writes them when back",
          test_redis_down_keeps_decisions_and_writes_them_when_back },
        { "start-up check reports what an operator must fix",
          test_start_up_check_reports_what_an_operator_must_fix },
        { "stores authenticate with user and password", test_stores_authenticate_with_user_and_password },
        { "free with commands in flight calls no one", test_free_with_commands_in_flight_calls_no_one },
        { "Sentinel names the master and a failover is followed",
          test_sentinel_names_the_master_and_a_failover_is_followed },
        { NULL, NULL },
    };
    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_LOG") != NULL ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    loop = ev_loop_new(EVFLAG_AUTO);
    main_port = free_port();
    char sock[sizeof tmpdir + 16];
    snprintf(sock, sizeof sock, "%s/main.sock", tmpdir);
    const char *main_extra[] = { "--unixsocket", sock, NULL };
    pid_t main_pid = redis_start(main_port, main_extra);
    int rc = unit_run("store_redis", tests);
    instances_close_all();
    proc_stop(main_pid);
    procs_stop_all();
    ev_loop_destroy(loop);
    remove_tmpdir();
    return rc;
}
