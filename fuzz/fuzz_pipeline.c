/*
 * fuzz_pipeline.c - libFuzzer harness for the whole decision path:
 * decode -> inflate -> classify -> store -> hold -> policy -> dispatch.
 *
 * The configuration is fixed (PIPELINE_CONF below, written to a temporary
 * file and loaded once with conf_load()); every input gets a fresh memory
 * store, metrics and router.  The input is a script of records, one opcode
 * byte each:
 *
 *   op & 3 == 0   packet: 2-byte big-endian length N, then N bytes (cut
 *                 short at the end of the input); the clock moves on by
 *                 op >> 2 ms (0..63) and the packet goes to router_packet()
 *   op & 3 == 1   the same, and the packet is fed twice (a retransmission)
 *   op & 3 == 2   the clock moves on by (op >> 2) * 8 ms (0..504), then
 *                 router_timer()
 *   op & 3 == 3   router_drain() (SIGTERM)
 *
 * and the run ends with a drain, as heprouter's exit does.  Each packet is
 * copied into a buffer of its own size, freed when router_packet() returns,
 * so ASan sees any read past it and any pointer the router keeps into it.
 *
 * Checked (any violation aborts): what dispatch is handed decodes with
 * hep_decode() and agrees with the view; its bytes are the packet being
 * routed, or a copy of one fed earlier (a held packet); they stay readable
 * and unchanged until flush() (or, for the packet being routed, until
 * router_packet() returns); the destination index and call key are sane;
 * the hold queue never holds more than orphans.max_held, and the memory
 * store never more than store.max_calls; after router_timer() nothing held
 * is past its deadline; after router_drain() nothing is held and nothing
 * is due; every held packet was released exactly once.
 *
 * Accounting, after every step: every packet fed is counted as malformed
 * (decode_errors), or decided once (a route's hits), or still held:
 * malformed + decided + held == packets_in, so none is lost and none
 * decided twice.  A decision is a drop (route_dropped, the routes without
 * destinations) or one send per destination of its route: the sends each
 * destination got equal the hits of the routes that name it.
 *
 * Build (fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -std=c11 -D_GNU_SOURCE -I src fuzz/fuzz_pipeline.c src/hash.c src/hep.c \
 *       src/payload.c src/sip.c src/log.c src/conf/grammar.c src/conf/diag.c \
 *       src/conf/tree.c src/conf/table.c src/conf/schema.c src/metrics.c src/policy.c \
 *       src/store/mem.c src/hold.c src/router.c -lyaml -lz -lpthread -o fuzz_pipeline
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "hash.h"
#include "hep.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "router.h"
#include "store/store.h"
#include "fuzz.h"

/*
 * Small bounds, so that a short input reaches them: 8 held packets, 16
 * calls, a 32-byte Call-ID cap (the smallest allowed), the shortest TTLs
 * allowed (ttl.ended: 1s), which a few timer records outlive.  Routes
 * cover method, status, proto and address matches, a fan-out, a hash
 * balance and a drop.
 */
static const char PIPELINE_CONF[] =
    "listen: [ \"udp:127.0.0.1:0\" ]\n"
    "store: { type: memory, max_calls: 16 }\n"
    "ttl: { call: 3s, register: 2s, ended: 1s }\n"
    "orphans: { wait_ms: 50, max_held: 8, max_bytes: 65535 }\n"
    "limits: { call_id_max: 32 }\n"
    "log: { level: error }\n"
    "destinations:\n"
    "  homer:       { targets: [ \"udp:127.0.0.1:9061\" ] }\n"
    "  voipmonitor: { targets: [ \"udp:127.0.0.1:9062\", \"udp:127.0.0.1:9064\" ],\n"
    "                 balance: hash, hep_version: 3 }\n"
    "  logs:        { targets: [ \"udp:127.0.0.1:9063\" ] }\n"
    "routes:\n"
    "  - name: challenges\n"
    "    match: { method: [ INVITE ], status: [ \"407\" ] }\n"
    "    to: [ voipmonitor, homer ]\n"
    "  - name: calls\n"
    "    match: { method: [ INVITE, SUBSCRIBE ] }\n"
    "    to: [ voipmonitor ]\n"
    "  - name: registrations\n"
    "    match: { method: [ REGISTER, OPTIONS ] }\n"
    "    to: [ homer ]\n"
    "  - name: logs\n"
    "    match: { proto: [ log ] }\n"
    "    to: [ logs ]\n"
    "  - name: lab-rtcp\n"
    "    match: { proto: [ rtcp ], src: [ \"10.0.0.0/8\" ] }\n"
    "    drop: true\n"
    "default: [ homer ]\n";

#define OP_KIND_MASK        3u
#define OP_FEED             0u
#define OP_FEED_TWICE       1u
#define OP_TIMER            2u
#define OP_DRAIN            3u
#define OP_ARG_SHIFT        2
#define TIMER_STEP_MS       8u
#define START_MONO_MS       UINT64_C(1000000)
#define START_WALL_MS       UINT64_C(1795692370000)    /* the captures' time */
#define HASHED_KEY_LEN      33u                         /* "~" + 32 hex digits (router.c) */
#define MAX_PENDING         1024u                       /* sends between two flushes */

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A packet of the input, by position, for matching held copies. */
struct fed {
    size_t off;
    size_t len;
};

/* A send whose bytes must stay as they were until the next flush. */
struct pending {
    const uint8_t *data;
    size_t len;
    uint64_t hash;
};

/* Everything one run knows; dispatch gets a pointer to it. */
struct run {
    const uint8_t *input;           /* the fuzz input */
    size_t input_len;
    struct fed *fed;                /* packets fed so far */
    size_t nfed;
    const uint8_t *routing;         /* the packet router_packet() is routing, or NULL */
    size_t routing_len;
    struct pending pending[MAX_PENDING];
    size_t npending;
    struct router *router;
    struct metrics *m;
    uint64_t sends;
    uint64_t *dest_sends;           /* sends per destination, counted by on_send() */
};

static struct conf *conf;

static bool inside(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
    return p >= base && n <= size && (size_t)(p - base) <= size - n;
}

/* Every pending send's bytes are still readable (ASan) and unchanged. */
static void check_pending(struct run *run)
{
    for (size_t i = 0; i < run->npending; i++) {
        const struct pending *p = &run->pending[i];
        CHECK(hash_words64(p->data, p->len) == p->hash);
    }
    run->npending = 0;
}

/* Bytes handed to dispatch: the packet being routed, or a copy of one fed. */
static void check_origin(const struct run *run, const uint8_t *data, size_t len)
{
    if (run->routing != NULL && inside(data, len, run->routing, run->routing_len)) {
        CHECK(data == run->routing && len == run->routing_len);
        return;
    }
    for (size_t i = 0; i < run->nfed; i++) {
        const struct fed *f = &run->fed[i];
        if (f->len == len && memcmp(run->input + f->off, data, len) == 0)
            return;
    }
    fuzz_fail(__FILE__, __LINE__, "dispatched bytes are no packet of the input");
}

static bool bytes_eq(struct hep_bytes a, struct hep_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void on_send(void *arg, size_t di, const struct hep_view *view, const char *key, size_t klen)
{
    struct run *run = arg;
    const uint8_t *data = view->raw.data;
    size_t len = view->raw.len;

    CHECK(di < conf->ndests);
    CHECK(data != NULL && len > 0);
    check_origin(run, data, len);

    struct hep_view again;
    CHECK(hep_decode(data, len, &again) == HEP_OK);
    CHECK(again.version == view->version && again.proto_type == view->proto_type);
    CHECK(again.payload.data == view->payload.data && again.payload.len == view->payload.len);
    CHECK(again.compressed == view->compressed);
    CHECK(bytes_eq(again.correlation_id, view->correlation_id));
    /* v1/v2 get the receive time when they carry none; nothing else changes */
    CHECK((again.present & ~(uint32_t)HEP_HAS_TS) == (view->present & ~(uint32_t)HEP_HAS_TS));
    if (again.present & HEP_HAS_TS)
        CHECK(again.ts_sec == view->ts_sec && again.ts_usec == view->ts_usec);

    if (key != NULL) {
        CHECK(klen > 0);
        CHECK(klen <= conf->call_id_max || klen == HASHED_KEY_LEN);
        (void)hash_words64(key, klen);      /* readable (ASan) */
    } else {
        CHECK(klen == 0);
    }

    CHECK(router_held(run->router) <= conf->orphans_max_held);
    CHECK(run->npending < MAX_PENDING);
    run->pending[run->npending].data = data;
    run->pending[run->npending].len = len;
    run->pending[run->npending].hash = hash_words64(data, len);
    run->npending++;
    run->m->dests[di].packets++;
    run->m->dests[di].bytes += len;
    run->dest_sends[di]++;
    run->sends++;
}

static void on_flush(void *arg)
{
    check_pending(arg);
}

/*
 * Every packet fed is malformed, decided once or held; every decision is a
 * drop or one send per destination of its route.
 */
static void check_accounting(const struct run *run)
{
    const struct metrics *m = run->m;
    uint64_t malformed = 0, decided = 0, dropped = 0, sends = 0;

    for (size_t i = 1; i < HEP_STATUS_COUNT; i++)
        malformed += m->decode_errors[i];
    CHECK(m->packets_in == run->nfed);
    CHECK(m->nroutes == conf->nroutes + 1);
    for (size_t ri = 0; ri < m->nroutes; ri++) {
        const size_t *to;
        size_t nto;
        uint64_t hits = m->routes[ri].hits;
        policy_destinations(conf, ri == conf->nroutes ? POLICY_DEFAULT : (long)ri, &to, &nto);
        decided += hits;
        if (nto == 0)
            dropped += hits;
        sends += hits * nto;
    }
    CHECK(malformed + decided + router_held(run->router) == m->packets_in);
    CHECK(dropped == m->route_dropped);
    CHECK(sends == run->sends);
    for (size_t di = 0; di < conf->ndests; di++) {
        uint64_t want = 0;
        for (size_t ri = 0; ri < m->nroutes; ri++) {
            const size_t *to;
            size_t nto;
            policy_destinations(conf, ri == conf->nroutes ? POLICY_DEFAULT : (long)ri, &to, &nto);
            for (size_t k = 0; k < nto; k++)
                if (to[k] == di)
                    want += m->routes[ri].hits;
        }
        CHECK(run->dest_sends[di] == want);
    }
}

/* After every step: the bounds hold and every packet is accounted for. */
static void check_bounds(struct run *run, struct store *store)
{
    CHECK(router_held(run->router) <= conf->orphans_max_held);
    CHECK(conf->store_max_calls == 0 || store_count(store) <= conf->store_max_calls);
    if (router_held(run->router) == 0)
        CHECK(router_next_deadline(run->router) == UINT64_MAX);
    check_accounting(run);
}

static void feed(struct run *run, struct store *store, size_t off, size_t len,
                 uint64_t now, uint64_t wall)
{
    /* a buffer of exactly the packet's size; one byte when empty */
    uint8_t *buf = malloc(len > 0 ? len : 1);
    CHECK(buf != NULL);
    if (len > 0)
        memcpy(buf, run->input + off, len);
    run->fed[run->nfed].off = off;
    run->fed[run->nfed].len = len;
    run->nfed++;

    run->routing = buf;
    run->routing_len = len;
    router_packet(run->router, buf, len, now, wall);
    check_pending(run);             /* the ingest flushes after its batch */
    run->routing = NULL;
    free(buf);
    check_bounds(run, store);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz_pipeline.XXXXXX.yaml",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    int fd = mkstemps(path, (int)strlen(".yaml"));
    CHECK(fd >= 0);
    size_t n = sizeof PIPELINE_CONF - 1;
    CHECK(write(fd, PIPELINE_CONF, n) == (ssize_t)n);
    CHECK(close(fd) == 0);
    conf = conf_load(path, stderr);
    unlink(path);
    CHECK(conf != NULL);
    CHECK(conf->store_type == CONF_STORE_MEMORY && conf->orphans_max_held > 0);
    log_set_level(LOG_LEVEL_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run run;
    struct metrics m;
    uint64_t now = START_MONO_MS, wall = START_WALL_MS;

    memset(&run, 0, sizeof run);
    run.input = data;
    run.input_len = size;
    /* a record of 3 bytes feeds at most 2 packets */
    run.fed = calloc(2 * (size / 3) + 1, sizeof *run.fed);
    CHECK(run.fed != NULL);
    run.dest_sends = calloc(conf->ndests, sizeof *run.dest_sends);
    CHECK(run.dest_sends != NULL);

    struct store *store = store_mem_from_conf(conf);
    CHECK(store != NULL);
    CHECK(metrics_init(&m, conf) == 0);
    run.m = &m;
    struct router_dispatch dispatch = { .send = on_send, .flush = on_flush, .arg = &run };
    run.router = router_new(conf, store, &m, &dispatch);
    CHECK(run.router != NULL);

    size_t i = 0;
    while (i < size) {
        unsigned op = data[i++];
        unsigned arg = op >> OP_ARG_SHIFT;
        switch (op & OP_KIND_MASK) {
        case OP_FEED:
        case OP_FEED_TWICE: {
            if (size - i < 2) {
                i = size;
                break;
            }
            size_t len = (size_t)data[i] << 8 | data[i + 1];
            i += 2;
            if (len > size - i)
                len = size - i;
            now += arg;
            wall += arg;
            feed(&run, store, i, len, now, wall);
            if ((op & OP_KIND_MASK) == OP_FEED_TWICE)
                feed(&run, store, i, len, now, wall);
            i += len;
            break;
        }
        case OP_TIMER:
            now += (uint64_t)arg * TIMER_STEP_MS;
            wall += (uint64_t)arg * TIMER_STEP_MS;
            router_timer(run.router, now, wall);
            check_pending(&run);
            CHECK(router_next_deadline(run.router) > now);     /* nothing held past its wait */
            check_bounds(&run, store);
            break;
        default:
            router_drain(run.router, now, wall);
            check_pending(&run);
            CHECK(router_held(run.router) == 0);
            check_bounds(&run, store);
            break;
        }
    }

    router_drain(run.router, now, wall);
    check_pending(&run);
    CHECK(router_held(run.router) == 0);
    CHECK(router_next_deadline(run.router) == UINT64_MAX);
    CHECK(m.packets_in == run.nfed);
    /* every held packet left the queue once, one way or the other */
    CHECK(m.orphans_held == m.orphans_released_origin + m.orphans_released_fallback);
    check_bounds(&run, store);

    router_free(run.router);
    store_free(store);
    metrics_free(&m);
    free(run.fed);
    free(run.dest_sends);
    return 0;
}

/* conf lives as long as the process; free it at exit so LSan stays quiet about it. */
__attribute__((destructor)) static void free_conf(void)
{
    conf_free(conf);
    conf = NULL;
}
