/*
 * test_router.c - unit tests for src/router.c: the decisions, driven by the
 * packets Kamailio 5.6 sent for a real call (tests/data/kamailio/v3), with
 * the memory store and hold queue, and a recorder in place of sockets.
 *
 * The v3 capture holds, in order: 001 OPTIONS, 002 200, 003 REGISTER,
 * 004 401, 005 REGISTER, 006 200, 007 INVITE, 008 407, 009 ACK (of the 407),
 * 010 INVITE (with credentials), 011 100, 012 INVITE (relayed), 013 100,
 * 014/015 180, 016/017 200, 018 ACK, 019/020 BYE, 021/022 200 (to BYE).
 * load() checks each packet's CSeq method, so a re-capture that changes the
 * order fails loudly rather than testing the wrong thing.
 */
#include <limits.h>
#include <unistd.h>
#include <zlib.h>

#include "admission.h"
#include "conf.h"
#include "hep.h"
#include "metrics.h"
#include "router.h"
#include "sip.h"
#include "store/store.h"
#include "unit.h"

#define DEST_HOMER 0
#define DEST_VOIPMONITOR 1
#define DEST_LOGS 2
#define MAX_SENT 256
#define WAIT_MS 50
#define T0 1000000u             /* monotonic ms at the start of each test */
#define WALL0 1700000000000u
#define STEP_MS 1000u           /* between packets in the TTL tests */
#define INVENTED_METHODS 20000  /* beyond what the old per-stripe name tables kept (16 x 1,024) */
#define MANY_ROUTES 1100        /* beyond the old 1,024 route names of a one-stripe store */
#define GZIP_WINDOW_BITS (MAX_WBITS + 16)   /* deflateInit2(): gzip framing */

struct sent {
    size_t dest;
    bool has_ts;                /* the view handed to dispatch */
    uint32_t ts_sec;
    uint8_t *bytes;
    size_t len;
};

static struct sent sent[MAX_SENT];
static size_t nsent;
static struct conf *conf;
static struct store *store;
static struct metrics m;
static struct router *router;

static void record(void *arg, size_t di, const struct hep_view *v, const char *key, size_t klen)
{
    (void)arg;
    (void)key;
    (void)klen;
    CU_ASSERT_FATAL(nsent < MAX_SENT);
    sent[nsent].dest = di;
    sent[nsent].has_ts = (v->present & HEP_HAS_TS) != 0;
    sent[nsent].ts_sec = v->ts_sec;
    sent[nsent].bytes = malloc(v->raw.len);
    memcpy(sent[nsent].bytes, v->raw.data, v->raw.len);
    sent[nsent].len = v->raw.len;
    nsent++;
}

static void flush(void *arg)
{
    (void)arg;
}

/* What router_dispatch.explain() was told, in order. */
static enum router_how hows[MAX_SENT];
static long how_routes[MAX_SENT];
static char how_senders[MAX_SENT][ROUTER_SOURCE_MAX];
static size_t nhows;

static void record_explain(void *arg, const struct router_explain *e)
{
    (void)arg;
    CU_ASSERT_FATAL(nhows < MAX_SENT);
    hows[nhows] = e->how;
    snprintf(how_senders[nhows], ROUTER_SOURCE_MAX, "%s", e->sender != NULL ? e->sender : "");
    how_routes[nhows++] = e->route;
}

/* A batch's senders (router_in.source): a name each, and whether admission refuses it. */
struct test_source {
    const char *name;
    bool refused;
};

static const char *test_source(void *arg, const void *source, char *buf, size_t len)
{
    const struct test_source *src = source;
    (void)arg;
    if (src == NULL)
        return NULL;
    snprintf(buf, len, "%s", src->name);
    return buf;
}

static int test_admit(void *arg, const void *source, const struct hep_view *view)
{
    const struct test_source *src = source;
    (void)arg;
    (void)view;
    return src != NULL && src->refused ? ADMISSION_NOT_ALLOWED : ADMISSION_OK;
}

static void clear_sent(void)
{
    for (size_t i = 0; i < nsent; i++)
        free(sent[i].bytes);
    nsent = 0;
    nhows = 0;
}

/* The decisions told so far were want[0..n), in order. */
static void assert_hows(const enum router_how *want, size_t n)
{
    CU_ASSERT_EQUAL_FATAL(nhows, n);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(hows[i], want[i]);
}

/* The fixture: the router of the configuration at path, with a recorder for sockets. */
static int setup_with(const char *path)
{
    const struct router_dispatch d = { .send = record, .flush = flush, .explain = record_explain,
                                       .source = test_source, .admit = test_admit };
    conf = conf_load(path, stderr);
    if (conf == NULL)
        return -1;
    store = store_mem_from_conf(conf);
    if (store == NULL || metrics_init(&m, conf) != 0)
        return -1;
    router = router_new(conf, store, &m, &d);
    return router == NULL ? -1 : 0;
}

static int setup(void)
{
    return setup_with(TEST_UNIT_DIR "/router.yaml");
}

static void teardown(void)
{
    clear_sent();
    router_free(router);
    store_free(store);
    metrics_free(&m);
    conf_free(conf);
}

/* A captured packet, checked to be what the test expects it to be. */
struct pkt {
    uint8_t *data;
    size_t len;
};

static struct pkt load_v(int version, int n, const char *cseq_method)
{
    char rel[64];
    struct pkt p;
    struct hep_view v;
    struct sip_msg s;
    snprintf(rel, sizeof rel, "kamailio/v%d/%03d.hep", version, n);
    p.data = unit_read_file(rel, &p.len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.data);
    CU_ASSERT_EQUAL_FATAL(hep_decode(p.data, p.len, &v), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(sip_scan(v.payload.data, v.payload.len, &s), SIP_OK);
    CU_ASSERT_FATAL(s.cseq_method_name.len == strlen(cseq_method) &&
                    memcmp(s.cseq_method_name.ptr, cseq_method, s.cseq_method_name.len) == 0);
    return p;
}

static struct pkt load(int n, const char *cseq_method)
{
    return load_v(3, n, cseq_method);
}

static uint64_t now = T0;

static void feed(struct pkt p)
{
    router_packet(router, p.data, p.len, now, WALL0 + now);
}

static void advance(uint64_t ms)
{
    now += ms;
    router_timer(router, now, WALL0 + now);
}

/* Asserts that sent[i] went to dest and carries exactly p's bytes. */
static void assert_sent(size_t i, size_t dest, struct pkt p)
{
    CU_ASSERT_FATAL(i < nsent);
    CU_ASSERT_EQUAL(sent[i].dest, dest);
    CU_ASSERT_EQUAL(sent[i].len, p.len);
    CU_ASSERT(sent[i].len == p.len && memcmp(sent[i].bytes, p.data, p.len) == 0);
}

static void fresh(void)
{
    teardown();
    CU_ASSERT_EQUAL_FATAL(setup(), 0);
    now = T0;
}

#define FREE(p) free((p).data)

static void test_407_and_its_ack_follow_the_invite(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE"), ack = load(9, "ACK");
    feed(inv);
    feed(c407);
    feed(ack);
    CU_ASSERT_EQUAL(nsent, 3);
    assert_sent(0, DEST_VOIPMONITOR, inv);
    assert_sent(1, DEST_VOIPMONITOR, c407);
    assert_sent(2, DEST_VOIPMONITOR, ack);
    CU_ASSERT_EQUAL(m.calls_new, 1);
    CU_ASSERT_EQUAL(m.calls_followed, 2);
    CU_ASSERT_EQUAL(m.orphans_held, 0);
    FREE(inv); FREE(c407); FREE(ack);
}

static void test_whole_invite_call_goes_to_voipmonitor_only(void)
{
    fresh();
    static const char *const cseq[] = { "INVITE", "INVITE", "ACK", "INVITE", "INVITE", "INVITE",
                                        "INVITE", "INVITE", "INVITE", "INVITE", "INVITE", "ACK",
                                        "BYE", "BYE", "BYE", "BYE" };
    for (int n = 7; n <= 22; n++) {
        struct pkt p = load(n, cseq[n - 7]);
        feed(p);
        CU_ASSERT_EQUAL(nsent, (size_t)(n - 6));
        assert_sent(nsent - 1, DEST_VOIPMONITOR, p);
        FREE(p);
    }
    CU_ASSERT_EQUAL(m.calls_new, 1);
    CU_ASSERT_EQUAL(m.calls_followed, 15);
    CU_ASSERT_EQUAL(m.calls_fallback, 0);
}

/* A paused explain hook is told nothing; the decisions are counted, held ones twice (arrival, release). */
static void test_paused_explain_hook_only_counts_decisions(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE"), ack = load(9, "ACK");
    uint64_t before = router_explain_skipped(router);
    router_pause_explain(router, true);
    feed(c407);                 /* held: one decision */
    feed(inv);                  /* origin, and the 407 released: two */
    CU_ASSERT_EQUAL(nhows, 0);
    CU_ASSERT_EQUAL(nsent, 2);
    CU_ASSERT_EQUAL(router_explain_skipped(router) - before, 3);
    router_pause_explain(router, false);
    feed(ack);
    static const enum router_how want[] = { ROUTER_HOW_KNOWN };
    assert_hows(want, 1);
    CU_ASSERT_EQUAL(router_explain_skipped(router) - before, 3);
    FREE(inv); FREE(c407); FREE(ack);
}

static void test_register_and_options_go_to_homer(void)
{
    fresh();
    static const char *const cseq[] = { "OPTIONS", "OPTIONS", "REGISTER", "REGISTER", "REGISTER", "REGISTER" };
    for (int n = 1; n <= 6; n++) {
        struct pkt p = load(n, cseq[n - 1]);
        feed(p);
        assert_sent(nsent - 1, DEST_HOMER, p);
        FREE(p);
    }
    CU_ASSERT_EQUAL(nsent, 6);
    CU_ASSERT_EQUAL(m.calls_new, 2);
}

static void test_407_before_its_invite_waits_then_follows(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE"), ack = load(9, "ACK");
    feed(c407);
    feed(ack);
    CU_ASSERT_EQUAL(nsent, 0);
    CU_ASSERT_EQUAL(router_held(router), 2);
    /* first a look in the store at a third of the wait, then the deadline */
    CU_ASSERT_EQUAL(router_next_deadline(router), T0 + WAIT_MS / 3);
    advance(WAIT_MS / 2);
    CU_ASSERT_EQUAL(nsent, 0);
    feed(inv);
    /* the INVITE, then the held packets in arrival order */
    CU_ASSERT_EQUAL(nsent, 3);
    assert_sent(0, DEST_VOIPMONITOR, inv);
    assert_sent(1, DEST_VOIPMONITOR, c407);
    assert_sent(2, DEST_VOIPMONITOR, ack);
    CU_ASSERT_EQUAL(router_held(router), 0);
    CU_ASSERT_EQUAL(m.orphans_held, 2);
    CU_ASSERT_EQUAL(m.orphans_released_origin, 2);
    CU_ASSERT_EQUAL(m.orphans_released_fallback, 0);
    advance(WAIT_MS);
    CU_ASSERT_EQUAL(nsent, 3);
    static const enum router_how want[] = { ROUTER_HOW_HELD, ROUTER_HOW_HELD, ROUTER_HOW_ORIGIN,
                                            ROUTER_HOW_HELD_ORIGIN, ROUTER_HOW_HELD_ORIGIN };
    assert_hows(want, sizeof want / sizeof want[0]);
    CU_ASSERT_EQUAL(how_routes[0], ROUTER_NO_ROUTE);
    CU_ASSERT_EQUAL(how_routes[2], how_routes[3]);      /* the 407 took its INVITE's route */
    FREE(inv); FREE(c407); FREE(ack);
}

/*
 * A 407 then its INVITE in one read (one TCP write), with no timer between:
 * nothing is left waiting, no recheck either, so there is no deadline and
 * nothing for the worker to arm a timer for.
 */
static void test_orphan_released_in_the_same_batch_leaves_no_recheck(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE");
    feed(c407);
    CU_ASSERT_EQUAL(router_next_deadline(router), T0 + WAIT_MS / 3);
    feed(inv);
    CU_ASSERT_EQUAL(nsent, 2);
    CU_ASSERT_EQUAL(router_held(router), 0);
    CU_ASSERT_EQUAL(router_next_deadline(router), UINT64_MAX);
    FREE(inv); FREE(c407);
}

static void test_ack_of_unseen_407_takes_invite_fallback_and_is_stored(void)
{
    fresh();
    struct pkt ack = load(9, "ACK"), inv2 = load(10, "INVITE");
    feed(ack);
    CU_ASSERT_EQUAL(nsent, 0);
    advance(WAIT_MS - 1);
    CU_ASSERT_EQUAL(nsent, 0);
    advance(1);
    CU_ASSERT_EQUAL(nsent, 1);
    assert_sent(0, DEST_VOIPMONITOR, ack);
    CU_ASSERT_EQUAL(m.orphans_released_fallback, 1);
    CU_ASSERT_EQUAL(m.calls_fallback, 1);
    /* the stored decision carries the rest of the call */
    feed(inv2);
    assert_sent(1, DEST_VOIPMONITOR, inv2);
    CU_ASSERT_EQUAL(m.calls_followed, 1);
    CU_ASSERT_EQUAL(m.calls_new, 0);
    struct store_entry e;
    struct hep_view v;
    struct sip_msg s;
    hep_decode(ack.data, ack.len, &v);
    sip_scan(v.payload.data, v.payload.len, &s);
    CU_ASSERT_EQUAL_FATAL(store_get(store, s.call_id.ptr, s.call_id.len, now, &e), 1);
    CU_ASSERT_STRING_EQUAL(e.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(e.route, "calls");
    CU_ASSERT(e.flags & STORE_F_FALLBACK);
    static const enum router_how want[] = { ROUTER_HOW_HELD, ROUTER_HOW_HELD_FALLBACK, ROUTER_HOW_KNOWN };
    assert_hows(want, sizeof want / sizeof want[0]);
    FREE(ack); FREE(inv2);
}

static void test_bye_of_unknown_call_takes_invite_route(void)
{
    fresh();
    struct pkt bye = load(19, "BYE"), ok = load(21, "BYE");
    feed(bye);
    feed(ok);
    CU_ASSERT_EQUAL(nsent, 0);
    advance(WAIT_MS);
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(0, DEST_VOIPMONITOR, bye);
    assert_sent(1, DEST_VOIPMONITOR, ok);
    CU_ASSERT_EQUAL(m.orphans_released_fallback, 2);
    FREE(bye); FREE(ok);
}

static void test_orphan_options_reply_takes_its_own_method_route(void)
{
    fresh();
    struct pkt ok = load(2, "OPTIONS");
    feed(ok);
    advance(WAIT_MS);
    CU_ASSERT_EQUAL(nsent, 1);
    assert_sent(0, DEST_HOMER, ok);
    FREE(ok);
}

static const char *call_id_of(struct pkt p, size_t *len)
{
    struct hep_view v;
    struct sip_msg s;
    hep_decode(p.data, p.len, &v);
    sip_scan(v.payload.data, v.payload.len, &s);
    *len = s.call_id.len;
    return s.call_id.ptr;
}

/*
 * Feeds packets 7.. up to `upto` of the call and checks how long the call
 * lives after the last one.  Probing past the expiry removes the entry, so
 * each stage starts from a fresh store.
 */
static void check_call_lifetime(const int *seq, size_t nseq, uint64_t ttl_ms, bool ended)
{
    static const char *const cseq_of[23] = { [7] = "INVITE", [8] = "INVITE", [10] = "INVITE",
                                             [14] = "INVITE", [19] = "BYE", [21] = "BYE" };
    struct store_entry e;
    size_t cl = 0;
    const char *cid = NULL;
    fresh();
    struct pkt first = load(7, "INVITE");
    cid = call_id_of(first, &cl);
    for (size_t i = 0; i < nseq; i++) {
        struct pkt p = load(seq[i], cseq_of[seq[i]]);
        advance(STEP_MS);           /* expiry counts from the last packet */
        feed(p);
        FREE(p);
    }
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now + ttl_ms - 1, &e), 1);
    CU_ASSERT_EQUAL(!!(e.flags & STORE_F_ENDED), ended);
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now + ttl_ms + 1, &e), 0);
    FREE(first);
}

static void test_ttls_follow_the_call(void)
{
    const int invite[] = { 7 };
    check_call_lifetime(invite, 1, conf->ttl_call_ms, false);
    /* the 407 is a final failure of the INVITE: ttl.ended */
    const int challenged[] = { 7, 8 };
    check_call_lifetime(challenged, 2, conf->ttl_ended_ms, true);
    /* the INVITE retried with credentials sets it back to ttl.call */
    const int retried[] = { 7, 8, 10 };
    check_call_lifetime(retried, 3, conf->ttl_call_ms, false);
    /* activity refreshes ttl.call */
    const int ringing[] = { 7, 8, 10, 14 };
    check_call_lifetime(ringing, 4, conf->ttl_call_ms, false);
    /* the 200 to BYE ends it */
    const int ended[] = { 7, 8, 10, 14, 19, 21 };
    check_call_lifetime(ended, 6, conf->ttl_ended_ms, true);
}

static void test_register_call_uses_register_ttl(void)
{
    fresh();
    struct pkt reg = load(3, "REGISTER");
    struct store_entry e;
    size_t cl;
    const char *cid = call_id_of(reg, &cl);
    feed(reg);
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now + conf->ttl_register_ms - 1, &e), 1);
    CU_ASSERT(e.flags & STORE_F_REGISTER);
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now + conf->ttl_register_ms + 1, &e), 0);
    FREE(reg);
}

/*
 * Builds a HEP3 packet of protocol `proto`: the type chunk, a correlation
 * id chunk when cid is not NULL, and the payload.
 */
static size_t build_hep(uint8_t *buf, uint8_t proto, const char *cid, size_t cl, const void *payload, size_t pl)
{
    size_t n = 6;
    memcpy(buf, "HEP3", 4);
    const uint8_t type_chunk[] = { 0, 0, 0, 0x0b, 0, 7, proto };
    memcpy(buf + n, type_chunk, sizeof type_chunk);
    n += sizeof type_chunk;
    if (cid != NULL) {
        const uint8_t corr[] = { 0, 0, 0, 0x11, (uint8_t)((cl + 6) >> 8), (uint8_t)(cl + 6) };
        memcpy(buf + n, corr, sizeof corr);
        memcpy(buf + n + 6, cid, cl);
        n += 6 + cl;
    }
    const uint8_t pay[] = { 0, 0, 0, 0x0f, (uint8_t)((pl + 6) >> 8), (uint8_t)(pl + 6) };
    memcpy(buf + n, pay, sizeof pay);
    memcpy(buf + n + 6, payload, pl);
    n += 6 + pl;
    buf[4] = (uint8_t)(n >> 8);
    buf[5] = (uint8_t)n;
    return n;
}

/* A HEP3 packet of protocol `proto` whose correlation id is cid. */
static size_t build_correlated(uint8_t *buf, uint8_t proto, const char *cid, size_t cl, const char *payload)
{
    return build_hep(buf, proto, cid, cl, payload, strlen(payload));
}

static void test_rtcp_follows_call_by_correlation_id(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE");
    size_t cl;
    const char *cid = call_id_of(inv, &cl);
    uint8_t buf[512];
    struct pkt rtcp = { buf, build_correlated(buf, HEP_PROTO_RTCP, cid, cl, "{\"type\":200}") };

    /* before its INVITE: held, then released with it */
    feed(rtcp);
    CU_ASSERT_EQUAL(nsent, 0);
    feed(inv);
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(0, DEST_VOIPMONITOR, inv);
    assert_sent(1, DEST_VOIPMONITOR, rtcp);
    /* during the call: follows at once */
    feed(rtcp);
    assert_sent(2, DEST_VOIPMONITOR, rtcp);
    CU_ASSERT_EQUAL(m.in_rtcp, 2);
    FREE(inv);
}

static void test_log_without_call_takes_its_own_route_and_is_not_stored(void)
{
    fresh();
    uint8_t buf[512];
    struct pkt log = { buf, build_correlated(buf, HEP_PROTO_LOG, "unknown-call", 12, "hello") };
    feed(log);
    advance(WAIT_MS);
    CU_ASSERT_EQUAL(nsent, 1);
    assert_sent(0, DEST_LOGS, log);
    struct store_entry e;
    CU_ASSERT_EQUAL(store_get(store, "unknown-call", 12, now, &e), 0);
}

static void test_exact_duplicates_are_counted_and_forwarded(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE");
    feed(inv);
    feed(inv);
    feed(c407);
    feed(c407);
    CU_ASSERT_EQUAL(nsent, 4);
    CU_ASSERT_EQUAL(m.duplicates, 2);
    assert_sent(1, DEST_VOIPMONITOR, inv);
    assert_sent(3, DEST_VOIPMONITOR, c407);
    FREE(inv); FREE(c407);
}

static void test_v1_and_v2_input_route_like_v3(void)
{
    for (int version = 1; version <= 2; version++) {
        fresh();
        struct pkt c407 = load_v(version, 8, "INVITE"), inv = load_v(version, 7, "INVITE");
        struct pkt reg = load_v(version, 3, "REGISTER");
        feed(c407);
        feed(inv);
        feed(reg);
        CU_ASSERT_EQUAL(nsent, 3);
        assert_sent(0, DEST_VOIPMONITOR, inv);
        assert_sent(1, DEST_VOIPMONITOR, c407);
        assert_sent(2, DEST_HOMER, reg);
        CU_ASSERT_EQUAL(m.in_version[version], 3);
        if (version == 1) {
            /* v1 has no time: a conversion writes when it was received, */
            CU_ASSERT_TRUE(sent[2].has_ts);
            CU_ASSERT_EQUAL(sent[2].ts_sec, (WALL0 + now) / 1000);
        } else {
            /* while v2 keeps its own */
            struct hep_view v;
            CU_ASSERT_EQUAL_FATAL(hep_decode(reg.data, reg.len, &v), HEP_OK);
            CU_ASSERT_EQUAL(sent[2].ts_sec, v.ts_sec);
        }
        FREE(c407); FREE(inv); FREE(reg);
    }
}

static void test_malformed_packets_are_counted_and_dropped(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE");
    feed(inv);
    uint8_t bad[64] = "HEP3";
    router_packet(router, bad, 3, now, WALL0);
    router_packet(router, bad, 10, now, WALL0);
    router_packet(router, (const uint8_t *)"garbage!", 8, now, WALL0);
    inv.data[5] ^= 1;           /* total length off by one */
    feed(inv);
    inv.data[5] ^= 1;
    feed(inv);
    CU_ASSERT_EQUAL(nsent, 2);
    CU_ASSERT_EQUAL(m.decode_errors[HEP_ERR_TRUNCATED], 1);
    CU_ASSERT_EQUAL(m.decode_errors[HEP_ERR_LENGTH], 2);
    CU_ASSERT_EQUAL(m.decode_errors[HEP_ERR_VERSION], 1);
    CU_ASSERT_EQUAL(m.packets_in, 6);
    static const enum router_how want[] = { ROUTER_HOW_ORIGIN, ROUTER_HOW_DECODE_ERROR, ROUTER_HOW_DECODE_ERROR,
                                            ROUTER_HOW_DECODE_ERROR, ROUTER_HOW_DECODE_ERROR, ROUTER_HOW_KNOWN };
    assert_hows(want, sizeof want / sizeof want[0]);
    FREE(inv);
}

/*
 * router_packets() decides a batch as router_packet() does its packets one
 * by one, though each packet is classified while the one before it still
 * waits to be routed: the same copies to the same places in the same
 * order, the same decisions told in that order, a packet not decoded or
 * refused among them told in its place, with its own sender.
 */
static void test_a_batch_routes_as_its_packets_one_by_one(void)
{
    enum { CALL = 16, FIRST = 7, BATCH = CALL + 2, GARBAGE_AT = 1, REFUSED_AT = 5 };
    static const char *const cseq[CALL] = { "INVITE", "INVITE", "ACK", "INVITE", "INVITE", "INVITE",
                                            "INVITE", "INVITE", "INVITE", "INVITE", "INVITE", "ACK",
                                            "BYE", "BYE", "BYE", "BYE" };
    struct pkt call[CALL];
    for (int i = 0; i < CALL; i++)
        call[i] = load(FIRST + i, cseq[i]);
    struct test_source senders[BATCH];
    char names[BATCH][ROUTER_SOURCE_MAX];
    struct router_in in[BATCH];
    for (int i = 0, c = 0; i < BATCH; i++) {
        snprintf(names[i], sizeof names[i], "sender-%d", i);
        senders[i] = (struct test_source){ names[i], i == REFUSED_AT };
        if (i == GARBAGE_AT)
            in[i] = (struct router_in){ (const uint8_t *)"garbage!", 8, &senders[i] };
        else if (i == REFUSED_AT)
            in[i] = (struct router_in){ call[1].data, call[1].len, &senders[i] };    /* the 407 again */
        else
            in[i] = (struct router_in){ call[c].data, call[c++].len, &senders[i] };
    }

    /* one by one, each with its sender as the only packet of a batch */
    fresh();
    for (int i = 0; i < BATCH; i++)
        router_packets(router, &in[i], 1, now, WALL0 + now);
    size_t n = nsent, told = nhows;
    struct sent one[MAX_SENT];
    enum router_how one_hows[MAX_SENT];
    char one_senders[MAX_SENT][ROUTER_SOURCE_MAX];
    memcpy(one, sent, n * sizeof *sent);
    memcpy(one_hows, hows, told * sizeof *hows);
    memcpy(one_senders, how_senders, sizeof one_senders);
    struct metrics before = m;
    nsent = 0;                  /* one[] keeps the bytes: freed below */

    fresh();
    router_packets(router, in, BATCH, now, WALL0 + now);
    CU_ASSERT_EQUAL(n, CALL);
    CU_ASSERT_EQUAL_FATAL(nsent, n);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(sent[i].dest, one[i].dest);
        CU_ASSERT(sent[i].len == one[i].len && memcmp(sent[i].bytes, one[i].bytes, one[i].len) == 0);
    }
    CU_ASSERT_EQUAL(told, BATCH);
    assert_hows(one_hows, told);
    CU_ASSERT_EQUAL(hows[GARBAGE_AT], ROUTER_HOW_DECODE_ERROR);
    CU_ASSERT_STRING_EQUAL(how_senders[GARBAGE_AT], names[GARBAGE_AT]);
    CU_ASSERT_EQUAL(hows[REFUSED_AT], ROUTER_HOW_REFUSED);
    CU_ASSERT_STRING_EQUAL(how_senders[REFUSED_AT], names[REFUSED_AT]);
    for (size_t i = 0; i < told; i++)
        CU_ASSERT_STRING_EQUAL(how_senders[i], one_senders[i]);
    CU_ASSERT_EQUAL(m.packets_in, before.packets_in);
    CU_ASSERT_EQUAL(m.calls_new, 1);
    CU_ASSERT_EQUAL(m.calls_followed, before.calls_followed);
    CU_ASSERT_EQUAL(m.decode_errors[HEP_ERR_VERSION], 1);
    for (size_t i = 0; i < n; i++)
        free(one[i].bytes);
    for (int i = 0; i < CALL; i++)
        FREE(call[i]);
}

/* A minimal HEP3 packet: protocol type SIP and the payload. */
static size_t build_sip(uint8_t *buf, const char *body, size_t bl)
{
    return build_hep(buf, HEP_PROTO_SIP, NULL, 0, body, bl);
}

/*
 * A request that starts a call with a method of the sender's choosing,
 * e.g. "X00042 sip:b@x SIP/2.0" with Call-ID "invented-42".
 */
static size_t build_origin(uint8_t *buf, const char *method, const char *cid)
{
    char body[512];
    int bl = snprintf(body, sizeof body,
                      "%s sip:b@x SIP/2.0\r\nCall-ID: %s\r\nCSeq: 1 %s\r\nFrom: <sip:a@x>;tag=1\r\n"
                      "To: <sip:b@x>\r\n\r\n", method, cid, method);
    return build_sip(buf, body, (size_t)bl);
}

/*
 * Senders cannot fill what the store keeps per call: after 20,000 calls
 * started with invented methods, an INVITE call still goes whole to
 * voipmonitor (the old store kept it as "OTHER": its 407 and ACK went to
 * the default route).
 */
static void test_invented_methods_do_not_misroute_later_calls(void)
{
    fresh();
    uint8_t buf[512];
    for (int i = 0; i < INVENTED_METHODS; i++) {
        char method[16], cid[32];
        snprintf(method, sizeof method, "X%05d", i);
        snprintf(cid, sizeof cid, "invented-%d", i);
        router_packet(router, buf, build_origin(buf, method, cid), now, WALL0 + now);
        clear_sent();
    }
    CU_ASSERT_EQUAL(m.calls_new, INVENTED_METHODS);
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE"), ack = load(9, "ACK");
    feed(inv);
    feed(c407);
    feed(ack);
    CU_ASSERT_EQUAL(nsent, 3);
    assert_sent(0, DEST_VOIPMONITOR, inv);
    assert_sent(1, DEST_VOIPMONITOR, c407);
    assert_sent(2, DEST_VOIPMONITOR, ack);
    FREE(inv); FREE(c407); FREE(ack);
}

/* A reply of the call `cid` to its CSeq method, e.g. "SIP/2.0 200 OK" ... "CSeq: 1 M0042". */
static size_t build_reply(uint8_t *buf, const char *method, const char *cid)
{
    char body[512];
    int bl = snprintf(body, sizeof body,
                      "SIP/2.0 200 OK\r\nCall-ID: %s\r\nCSeq: 1 %s\r\nFrom: <sip:a@x>;tag=1\r\n"
                      "To: <sip:b@x>;tag=2\r\n\r\n", cid, method);
    return build_sip(buf, body, (size_t)bl);
}

/*
 * A policy with more routes than the old store had room for route names in
 * one stripe (max_calls 2000: a single stripe): every call is stored, and
 * its reply follows it without waiting in the hold queue.
 */
static void test_every_route_of_a_large_policy_is_stored(void)
{
    char path[PATH_MAX];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/test_router.XXXXXX", dir != NULL && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("listen: [ \"udp:127.0.0.1:0\" ]\nstore: { max_calls: 2000 }\norphans: { wait_ms: 50 }\n"
          "destinations:\n  homer: { targets: [ \"udp:127.0.0.1:9061\" ] }\n"
          "  voipmonitor: { targets: [ \"udp:127.0.0.1:9062\" ] }\nroutes:\n", f);
    for (int i = 0; i < MANY_ROUTES; i++)
        fprintf(f, "  - { name: r%04d, match: { method: [ M%04d ] }, to: [ voipmonitor ] }\n", i, i);
    fputs("default: [ homer ]\n", f);
    fclose(f);

    teardown();
    int rc = setup_with(path);
    unlink(path);
    CU_ASSERT_EQUAL_FATAL(rc, 0);

    uint8_t buf[512];
    for (int i = 0; i < MANY_ROUTES; i++) {
        char method[16], cid[32];
        snprintf(method, sizeof method, "M%04d", i);
        snprintf(cid, sizeof cid, "route-%d", i);
        router_packet(router, buf, build_origin(buf, method, cid), now, WALL0 + now);
        router_packet(router, buf, build_reply(buf, method, cid), now, WALL0 + now);
        CU_ASSERT_EQUAL(nsent, 2);
        CU_ASSERT(nsent == 2 && sent[0].dest == DEST_VOIPMONITOR && sent[1].dest == DEST_VOIPMONITOR);
        clear_sent();
    }
    CU_ASSERT_EQUAL(m.calls_new, MANY_ROUTES);
    CU_ASSERT_EQUAL(m.calls_followed, MANY_ROUTES);
    CU_ASSERT_EQUAL(m.orphans_held, 0);
    CU_ASSERT_EQUAL(m.calls_not_stored, 0);
    fresh();
}

/* Routes one HEP3 SIP packet per body, in order. */
static void feed_bodies(const char *const *bodies, size_t n)
{
    uint8_t buf[1024];
    for (size_t i = 0; i < n; i++)
        router_packet(router, buf, build_sip(buf, bodies[i], strlen(bodies[i])), now, WALL0 + now);
}

/* Everything sent so far, n packets, went to dest. */
static void assert_all_sent_to(size_t n, size_t dest)
{
    CU_ASSERT_EQUAL(nsent, n);
    for (size_t i = 0; i < nsent; i++)
        CU_ASSERT_EQUAL(sent[i].dest, dest);
}

/* A HEP3 SIP packet whose payload is gzip-compressed (chunk 0x0010). */
static size_t build_gzip_sip(uint8_t *buf, size_t cap, const char *body)
{
    uint8_t gz[1024];
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    CU_ASSERT_FATAL(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW_BITS, 8,
                                 Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)body;
    zs.avail_in = (uInt)strlen(body);
    zs.next_out = gz;
    zs.avail_out = sizeof gz;
    CU_ASSERT_FATAL(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    size_t gl = sizeof gz - zs.avail_out;
    deflateEnd(&zs);
    CU_ASSERT_FATAL(gl + 64 < cap);
    size_t n = build_sip(buf, (const char *)gz, gl);
    buf[n - gl - 6 + 3] = 0x10;     /* the payload chunk's type: 0x000f -> 0x0010 */
    return n;
}

/* A gzip-compressed INVITE call is routed like any other: whole to voipmonitor. */
static void test_compressed_call_is_inflated_and_follows_its_invite(void)
{
    fresh();
    static const char *const bodies[] = {
        "INVITE sip:b@x SIP/2.0\r\nCall-ID: gz-1@x\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>\r\nContent-Length: 0\r\n\r\n",
        "SIP/2.0 407 Proxy Authentication Required\r\nCall-ID: gz-1@x\r\nCSeq: 1 INVITE\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\r\n",
        "ACK sip:b@x SIP/2.0\r\nCall-ID: gz-1@x\r\nCSeq: 1 ACK\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\n\r\n",
    };
    uint8_t buf[2048];
    /* the 407 first: held, then released by its (compressed) INVITE */
    router_packet(router, buf, build_gzip_sip(buf, sizeof buf, bodies[1]), now, WALL0 + now);
    CU_ASSERT_EQUAL(router_held(router), 1);
    router_packet(router, buf, build_gzip_sip(buf, sizeof buf, bodies[0]), now, WALL0 + now);
    router_packet(router, buf, build_gzip_sip(buf, sizeof buf, bodies[2]), now, WALL0 + now);
    assert_all_sent_to(3, DEST_VOIPMONITOR);
    CU_ASSERT_EQUAL(m.payload_inflated, 3);
    CU_ASSERT_EQUAL(m.calls_new, 1);
    CU_ASSERT_EQUAL(m.orphans_released_origin, 1);
    CU_ASSERT_EQUAL(m.uncorrelated, 0);
    /* what cannot be inflated is counted and still routed, without call context */
    static const char bad[] = "not gzip at all";
    size_t n = build_sip(buf, bad, sizeof bad - 1);
    buf[n - (sizeof bad - 1) - 6 + 3] = 0x10;
    router_packet(router, buf, n, now, WALL0 + now);
    CU_ASSERT_EQUAL(nsent, 4);
    CU_ASSERT_EQUAL(m.payload_inflate_errors, 1);
    CU_ASSERT_EQUAL(m.uncorrelated, 1);
}

/*
 * A payload that inflates far beyond 65535 bytes (a 200,000-byte body
 * behind the headers, a few hundred bytes compressed) is inflated only as
 * far as the buffer goes: its headers are read, the call routed, and the
 * packet forwarded whole, as received.
 */
#define BIG_BODY 200000

static void test_a_payload_inflating_beyond_65535_bytes_is_cut_not_refused(void)
{
    fresh();
    static const char head[] = "INVITE sip:b@x SIP/2.0\r\nCall-ID: gz-big@x\r\nCSeq: 1 INVITE\r\n"
                               "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nContent-Length: 200000\r\n\r\n";
    char *body = malloc(sizeof head + BIG_BODY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    memcpy(body, head, sizeof head - 1);
    memset(body + sizeof head - 1, 'a', BIG_BODY);
    body[sizeof head - 1 + BIG_BODY] = '\0';
    uint8_t buf[2048];
    size_t n = build_gzip_sip(buf, sizeof buf, body);
    free(body);
    CU_ASSERT(n < 2048);
    router_packet(router, buf, n, now, WALL0 + now);
    assert_all_sent_to(1, DEST_VOIPMONITOR);
    CU_ASSERT_EQUAL(m.payload_inflated, 1);
    CU_ASSERT_EQUAL(m.payload_inflate_errors, 0);
    CU_ASSERT_EQUAL(m.calls_new, 1);
}

/*
 * A header line the router does not need cannot take a message out of its
 * call: the 407 with an "X-Weird" line (no colon) follows its INVITE.
 */
static void test_malformed_header_line_is_skipped_not_fatal(void)
{
    fresh();
    static const char *const bodies[] = {
        "INVITE sip:b@x SIP/2.0\r\nCall-ID: weird-1@x\r\nX-Weird\r\nCSeq: 1 INVITE\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n\r\n",
        "SIP/2.0 407 Proxy Authentication Required\r\nX-Weird\r\nCall-ID: weird-1@x\r\n"
        "CSeq: 1 INVITE\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\r\n",
        "ACK sip:b@x SIP/2.0\r\nCall-ID: weird-1@x\r\nCSeq: 1 ACK\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\nX-Weird\r\n\r\n",
    };
    feed_bodies(bodies, 3);
    assert_all_sent_to(3, DEST_VOIPMONITOR);
    CU_ASSERT_EQUAL(m.sip_lines_skipped, 3);
    CU_ASSERT_EQUAL(m.calls_new, 1);
    CU_ASSERT_EQUAL(m.calls_followed, 2);
    CU_ASSERT_EQUAL(m.uncorrelated, 0);
}

/* One Call-ID folded two ways, and written with one space, is one call. */
static void test_folded_call_id_is_one_call(void)
{
    fresh();
    static const char *const bodies[] = {
        "INVITE sip:b@x SIP/2.0\r\nCall-ID: fold-1\r\n @x\r\nCSeq: 1 INVITE\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n\r\n",
        "SIP/2.0 407 Proxy Authentication Required\r\nCall-ID: fold-1\r\n\t@x\r\nCSeq: 1 INVITE\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\r\n",
        "ACK sip:b@x SIP/2.0\r\nCall-ID: fold-1 @x\r\nCSeq: 1 ACK\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\n\r\n",
    };
    feed_bodies(bodies, 3);
    assert_all_sent_to(3, DEST_VOIPMONITOR);
    CU_ASSERT_EQUAL(m.calls_new, 1);
    CU_ASSERT_EQUAL(m.calls_followed, 2);
    CU_ASSERT_EQUAL(router_held(router), 0);
}

static void test_full_hold_queue_takes_fallback_at_once(void)
{
    fresh();
    /* max_held is 8: the ninth orphan goes out at once */
    uint8_t buf[16][512];
    for (int i = 0; i < 9; i++) {
        char body[256];
        int bl = snprintf(body, sizeof body,
                          "SIP/2.0 407 Proxy Authentication Required\r\nCall-ID: orphan-%d\r\n"
                          "CSeq: 1 INVITE\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\r\n", i);
        size_t n = build_sip(buf[i], body, (size_t)bl);
        router_packet(router, buf[i], n, now, WALL0);
    }
    CU_ASSERT_EQUAL(router_held(router), 8);
    CU_ASSERT_EQUAL(nsent, 1);
    CU_ASSERT_EQUAL(sent[0].dest, DEST_VOIPMONITOR);
    CU_ASSERT_EQUAL(m.orphans_queue_full, 1);
    advance(WAIT_MS);
    CU_ASSERT_EQUAL(nsent, 9);
    CU_ASSERT_EQUAL(router_held(router), 0);
}

static void test_long_call_ids_are_hashed_not_truncated(void)
{
    fresh();
    /* limits.call_id_max is 64: two Call-IDs that share their first 64+ bytes */
    char body[2][512];
    uint8_t buf[2][600];
    const char *methods[2] = { "REGISTER", "INVITE" };
    for (int i = 0; i < 2; i++) {
        int bl = snprintf(body[i], sizeof body[i],
                          "%s sip:x SIP/2.0\r\nCall-ID: %0100d-%d\r\nCSeq: 1 %s\r\n\r\n",
                          methods[i], 0, i, methods[i]);
        size_t n = build_sip(buf[i], body[i], (size_t)bl);
        router_packet(router, buf[i], n, now, WALL0);
    }
    CU_ASSERT_EQUAL(m.calls_new, 2);
    CU_ASSERT_EQUAL(nsent, 2);
    CU_ASSERT_EQUAL(sent[0].dest, DEST_HOMER);
    CU_ASSERT_EQUAL(sent[1].dest, DEST_VOIPMONITOR);
    CU_ASSERT_EQUAL(store_count(store), 2);
}

static void test_held_v1_packet_keeps_its_arrival_time(void)
{
    fresh();
    struct pkt c407 = load_v(1, 8, "INVITE"), inv = load_v(1, 7, "INVITE");
    /* arrive 10 ms before a second boundary, leave after it */
    advance(1000 - (WALL0 + now) % 1000 - 10);
    uint64_t arrival = WALL0 + now;
    feed(c407);
    advance(WAIT_MS - 10);
    feed(inv);
    CU_ASSERT_EQUAL_FATAL(nsent, 2);
    CU_ASSERT_TRUE(sent[1].has_ts);
    CU_ASSERT_EQUAL(sent[1].ts_sec, arrival / 1000);
    FREE(c407); FREE(inv);
}

static void test_drain_releases_everything_by_fallback(void)
{
    fresh();
    struct pkt c407 = load(8, "INVITE"), reg_ok = load(6, "REGISTER");
    feed(c407);
    feed(reg_ok);
    CU_ASSERT_EQUAL(nsent, 0);
    router_drain(router, now, WALL0 + now);
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(0, DEST_VOIPMONITOR, c407);
    assert_sent(1, DEST_HOMER, reg_ok);
    CU_ASSERT_EQUAL(router_held(router), 0);
    FREE(c407); FREE(reg_ok);
}

static void test_fallback_method_of_in_dialog_requests_is_invite(void)
{
    static const char *const invite_only[] = { "ACK", "CANCEL", "BYE", "PRACK", "UPDATE", "INFO" };
    static const char *const own[] = { "INVITE", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY", "MESSAGE" };
    size_t n;
    for (size_t i = 0; i < 6; i++) {
        CU_ASSERT_STRING_EQUAL(router_fallback_method(invite_only[i], strlen(invite_only[i]), &n), "INVITE");
        CU_ASSERT_EQUAL(n, 6);
        const char *m2 = router_fallback_method(own[i], strlen(own[i]), &n);
        CU_ASSERT_PTR_EQUAL(m2, own[i]);
        CU_ASSERT_EQUAL(n, strlen(own[i]));
    }
}

/*
 * A shared store as the router sees Redis: get() only knows what this
 * instance cached, query() asks "the other instances" (recorded here, and
 * answered when the test says so).  It wraps a memory store for the rest.
 */
struct shared_store {
    struct store base;
    struct store *local;
    store_answer_fn answer;
    void *answer_arg;
    char asked[16][128];
    uint64_t asked_at[16];
    size_t nasked;
};

static struct shared_store shared;

static int sh_get(struct store *s, const char *k, size_t kl, uint64_t now_ms, struct store_entry *out)
{
    return store_get(((struct shared_store *)s)->local, k, kl, now_ms, out);
}

static int sh_put(struct store *s, const char *k, size_t kl, const struct store_hint *hint,
                  const struct store_entry *e, uint64_t ttl, uint64_t now_ms, struct store_entry *winner)
{
    (void)hint;                     /* this store makes none */
    return store_put(((struct shared_store *)s)->local, k, kl, e, ttl, now_ms, winner);
}

static int sh_update(struct store *s, const char *k, size_t kl, uint64_t ttl, unsigned set, unsigned clear,
                     uint64_t h, uint64_t now_ms)
{
    return store_update(((struct shared_store *)s)->local, k, kl, ttl, set, clear, h, now_ms);
}

static size_t sh_expire(struct store *s, uint64_t now_ms)
{
    return store_expire(((struct shared_store *)s)->local, now_ms);
}

static size_t sh_count(struct store *s)
{
    return store_count(((struct shared_store *)s)->local);
}

static void sh_free(struct store *s)
{
    store_free(((struct shared_store *)s)->local);
}

static int sh_query(struct store *s, const char *k, size_t kl, uint64_t now_ms)
{
    struct shared_store *sh = (struct shared_store *)s;
    CU_ASSERT_FATAL(sh->nasked < 16 && kl < 128);
    memcpy(sh->asked[sh->nasked], k, kl);
    sh->asked[sh->nasked][kl] = '\0';
    sh->asked_at[sh->nasked++] = now_ms;
    return 0;
}

static void sh_set_answer_fn(struct store *s, store_answer_fn fn, void *arg)
{
    ((struct shared_store *)s)->answer = fn;
    ((struct shared_store *)s)->answer_arg = arg;
}

static const struct store_ops shared_ops = {
    .name = "shared-test",
    .get = sh_get,
    .put = sh_put,
    .update = sh_update,
    .expire = sh_expire,
    .count = sh_count,
    .free = sh_free,
    .query = sh_query,
    .set_answer_fn = sh_set_answer_fn,
};

/* Replaces the fixture's router with one on a shared store. */
static void fresh_shared(void)
{
    const struct router_dispatch d = { .send = record, .flush = flush };
    fresh();
    router_free(router);
    memset(&shared, 0, sizeof shared);
    shared.base.ops = &shared_ops;
    shared.local = store;               /* the fixture's memory store, freed by teardown */
    router = router_new(conf, &shared.base, &m, &d);
    CU_ASSERT_PTR_NOT_NULL_FATAL(router);
}

static void test_shared_store_is_asked_once_then_at_thirds_of_the_wait(void)
{
    fresh_shared();
    struct pkt c407 = load(8, "INVITE"), ack = load(9, "ACK");
    size_t cl;
    const char *cid = call_id_of(c407, &cl);
    feed(c407);
    feed(ack);
    CU_ASSERT_EQUAL_FATAL(shared.nasked, 1);        /* one question per call, not per packet */
    CU_ASSERT_EQUAL(strlen(shared.asked[0]), cl);
    CU_ASSERT_EQUAL(memcmp(shared.asked[0], cid, cl), 0);
    CU_ASSERT_EQUAL(router_next_deadline(router), T0 + WAIT_MS / 3);
    advance(WAIT_MS / 3);
    CU_ASSERT_EQUAL(shared.nasked, 2);
    CU_ASSERT_EQUAL(router_next_deadline(router), T0 + 2 * WAIT_MS / 3);
    advance(T0 + 2 * WAIT_MS / 3 - now - 1);
    CU_ASSERT_EQUAL(shared.nasked, 2);
    advance(1);
    CU_ASSERT_EQUAL(shared.nasked, 3);
    CU_ASSERT_EQUAL(router_next_deadline(router), T0 + WAIT_MS);
    CU_ASSERT_EQUAL(nsent, 0);
    advance(WAIT_MS);                   /* nobody knew: the fallback */
    CU_ASSERT_EQUAL(nsent, 2);
    CU_ASSERT_EQUAL(shared.nasked, 3);
    CU_ASSERT_EQUAL(m.orphans_released_fallback, 2);
    FREE(c407); FREE(ack);
}

static void test_shared_store_answer_releases_held_packets_in_order(void)
{
    fresh_shared();
    struct pkt c407 = load(8, "INVITE"), ack = load(9, "ACK"), inv2 = load(10, "INVITE");
    size_t cl;
    const char *cid = call_id_of(c407, &cl);
    feed(c407);
    feed(ack);
    /* another instance saw the INVITE and routed the call to "calls"; no cache here */
    struct store_entry e;
    memset(&e, 0, sizeof e);
    strcpy(e.method, "INVITE");
    strcpy(e.route, "calls");
    shared.answer(shared.answer_arg, cid, cl, NULL, now, WALL0 + now);     /* "unknown" changes nothing */
    CU_ASSERT_EQUAL(nsent, 0);
    shared.answer(shared.answer_arg, cid, cl, &e, now, WALL0 + now);
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(0, DEST_VOIPMONITOR, c407);
    assert_sent(1, DEST_VOIPMONITOR, ack);
    CU_ASSERT_EQUAL(m.orphans_released_origin, 2);
    CU_ASSERT_EQUAL(router_held(router), 0);
    /* the rechecks of a released call ask nothing */
    advance(WAIT_MS);
    CU_ASSERT_EQUAL(shared.nasked, 1);
    /* a late answer for a call no longer held does nothing */
    shared.answer(shared.answer_arg, cid, cl, &e, now, WALL0 + now);
    CU_ASSERT_EQUAL(nsent, 2);
    feed(inv2);                          /* an origin of a call the answer did not cache */
    CU_ASSERT_EQUAL(nsent, 3);
    assert_sent(2, DEST_VOIPMONITOR, inv2);
    FREE(c407); FREE(ack); FREE(inv2);
}

/* A SIP packet of the call `cid` with the given start line and CSeq. */
static size_t build_in_call(uint8_t *buf, const char *cid, size_t cl, const char *start, const char *cseq)
{
    char body[512];
    int bl = snprintf(body, sizeof body,
                      "%s\r\nCall-ID: %.*s\r\nCSeq: %s\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\r\n",
                      start, (int)cl, cid, cseq);
    return build_sip(buf, body, (size_t)bl);
}

static void test_rejected_reinvite_does_not_end_a_confirmed_call(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE"), ok = load(16, "INVITE");
    size_t cl;
    const char *cid = call_id_of(inv, &cl);
    uint8_t b[600];
    struct pkt r491 = { b, build_in_call(b, cid, cl, "SIP/2.0 491 Request Pending", "3 INVITE") };
    struct store_entry e;
    feed(inv);
    feed(ok);
    feed(r491);
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now + conf->ttl_ended_ms + 1, &e), 1);
    CU_ASSERT_FALSE(e.flags & STORE_F_ENDED);
    CU_ASSERT(e.flags & STORE_F_CONFIRMED);
    FREE(inv); FREE(ok);
}

static void test_forked_failure_then_200_keeps_the_call(void)
{
    fresh();
    struct pkt inv = load(7, "INVITE");
    size_t cl;
    const char *cid = call_id_of(inv, &cl);
    uint8_t b1[600], b2[600];
    struct pkt busy = { b1, build_in_call(b1, cid, cl, "SIP/2.0 486 Busy Here", "1 INVITE") };
    struct pkt ok = { b2, build_in_call(b2, cid, cl, "SIP/2.0 200 OK", "1 INVITE") };
    struct store_entry e;
    feed(inv);
    feed(busy);
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now, &e), 1);
    CU_ASSERT(e.flags & STORE_F_ENDED);
    feed(ok);
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now + conf->ttl_ended_ms + 1, &e), 1);
    CU_ASSERT_FALSE(e.flags & STORE_F_ENDED);
    FREE(inv);
}

/* A second router on the same memory store: another worker. */
static struct router *second_worker(void)
{
    const struct router_dispatch d = { .send = record, .flush = flush };
    return router_new(conf, store, &m, &d);
}

static void test_origin_stored_by_another_worker_releases_at_the_first_look(void)
{
    fresh();
    struct router *b = second_worker();
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE");
    router_packet(b, c407.data, c407.len, now, WALL0 + now);    /* held on worker B */
    feed(inv);                                                  /* stored by worker A */
    CU_ASSERT_EQUAL(nsent, 1);
    now += WAIT_MS / 3;
    router_timer(b, now, WALL0 + now);
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(1, DEST_VOIPMONITOR, c407);
    CU_ASSERT_EQUAL(m.orphans_released_origin, 1);
    CU_ASSERT_EQUAL(m.orphans_released_fallback, 0);
    CU_ASSERT_EQUAL(router_held(b), 0);
    router_free(b);
    FREE(inv); FREE(c407);
}

static void test_later_packet_of_a_known_call_does_not_overtake_held_ones(void)
{
    fresh();
    struct router *b = second_worker();
    struct pkt inv = load(7, "INVITE"), c407 = load(8, "INVITE"), ack = load(9, "ACK");
    router_packet(b, c407.data, c407.len, now, WALL0 + now);    /* held on worker B */
    feed(inv);                                                  /* stored by worker A */
    router_packet(b, ack.data, ack.len, now, WALL0 + now);      /* B finds the call */
    CU_ASSERT_EQUAL(nsent, 3);
    assert_sent(1, DEST_VOIPMONITOR, c407);
    assert_sent(2, DEST_VOIPMONITOR, ack);
    router_free(b);
    FREE(inv); FREE(c407); FREE(ack);
}

static void test_full_queue_sends_the_calls_older_held_packets_first(void)
{
    fresh();
    struct pkt c407 = load(8, "INVITE"), ack = load(9, "ACK");
    uint8_t other[7][600];
    feed(c407);
    for (int i = 0; i < 7; i++) {
        char cid[32];
        int cl = snprintf(cid, sizeof cid, "other-%d", i);
        struct pkt o = { other[i], build_in_call(other[i], cid, (size_t)cl, "SIP/2.0 180 Ringing", "1 INVITE") };
        feed(o);
    }
    CU_ASSERT_EQUAL_FATAL(router_held(router), 8);
    feed(ack);                      /* no room: fallback now, the held 407 first */
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(0, DEST_VOIPMONITOR, c407);
    assert_sent(1, DEST_VOIPMONITOR, ack);
    CU_ASSERT_EQUAL(m.orphans_queue_full, 1);
    FREE(c407); FREE(ack);
}

static void test_rtcp_waiting_before_a_407_takes_the_407s_route(void)
{
    fresh();
    struct pkt c407 = load(8, "INVITE");
    size_t cl;
    const char *cid = call_id_of(c407, &cl);
    uint8_t buf[512];
    struct pkt rtcp = { buf, build_correlated(buf, HEP_PROTO_RTCP, cid, cl, "{\"type\":200}") };
    feed(rtcp);
    advance(1);
    feed(c407);
    advance(WAIT_MS);
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(0, DEST_VOIPMONITOR, rtcp);
    assert_sent(1, DEST_VOIPMONITOR, c407);
    struct store_entry e;
    CU_ASSERT_EQUAL(store_get(store, cid, cl, now, &e), 1);
    CU_ASSERT_STRING_EQUAL(e.method, "INVITE");
    FREE(c407);
}

/* The shared store with a cache that never knows anything (cache.entries 0). */
static int miss_get(struct store *st, const char *k, size_t kl, uint64_t now_ms, struct store_entry *out)
{
    (void)st; (void)k; (void)kl; (void)now_ms; (void)out;
    return 0;
}

static void test_origin_releases_held_packets_without_a_cache(void)
{
    fresh_shared();
    static struct store_ops cacheless;
    cacheless = shared_ops;
    cacheless.get = miss_get;
    shared.base.ops = &cacheless;
    struct pkt inv = load(7, "INVITE");
    size_t cl;
    const char *cid = call_id_of(inv, &cl);
    uint8_t buf[512];
    struct pkt rtcp = { buf, build_correlated(buf, HEP_PROTO_RTCP, cid, cl, "{\"type\":200}") };
    feed(rtcp);
    feed(inv);
    CU_ASSERT_EQUAL(nsent, 2);
    assert_sent(0, DEST_VOIPMONITOR, inv);
    assert_sent(1, DEST_VOIPMONITOR, rtcp);
    CU_ASSERT_EQUAL(m.calls_fallback, 0);
    CU_ASSERT_EQUAL(m.orphans_released_origin, 1);
    FREE(inv);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "407 and its ACK follow the INVITE", test_407_and_its_ack_follow_the_invite },
        { "whole INVITE call goes to voipmonitor only", test_whole_invite_call_goes_to_voipmonitor_only },
        { "REGISTER and OPTIONS go to homer", test_register_and_options_go_to_homer },
        { "407 before its INVITE waits, then follows", test_407_before_its_invite_waits_then_follows },
        { "a paused explain hook only counts decisions", test_paused_explain_hook_only_counts_decisions },
        { "an orphan released in the same batch leaves no recheck", test_orphan_released_in_the_same_batch_leaves_no_recheck },
        { "invented methods do not misroute later calls", test_invented_methods_do_not_misroute_later_calls },
        { "every route of a large policy is stored", test_every_route_of_a_large_policy_is_stored },
        { "a compressed call is inflated and follows its INVITE", test_compressed_call_is_inflated_and_follows_its_invite },
        { "a malformed header line is skipped, not fatal", test_malformed_header_line_is_skipped_not_fatal },
        { "a payload inflating beyond 65535 bytes is cut, not refused",
          test_a_payload_inflating_beyond_65535_bytes_is_cut_not_refused },
        { "a folded Call-ID is one call", test_folded_call_id_is_one_call },
        { "ACK of an unseen 407 takes the INVITE fallback, stored", test_ack_of_unseen_407_takes_invite_fallback_and_is_stored },
        { "BYE of an unknown call takes the INVITE route", test_bye_of_unknown_call_takes_invite_route },
        { "orphan OPTIONS reply takes its own method's route", test_orphan_options_reply_takes_its_own_method_route },
        { "TTLs follow the call", test_ttls_follow_the_call },
        { "REGISTER call uses ttl.register", test_register_call_uses_register_ttl },
        { "RTCP follows its call by correlation id", test_rtcp_follows_call_by_correlation_id },
        { "log without a call takes its own route, not stored", test_log_without_call_takes_its_own_route_and_is_not_stored },
        { "exact duplicates are counted and forwarded", test_exact_duplicates_are_counted_and_forwarded },
        { "v1 and v2 input route like v3", test_v1_and_v2_input_route_like_v3 },
        { "malformed packets are counted and dropped", test_malformed_packets_are_counted_and_dropped },
        { "a batch routes as its packets one by one", test_a_batch_routes_as_its_packets_one_by_one },
        { "full hold queue takes the fallback at once", test_full_hold_queue_takes_fallback_at_once },
        { "long Call-IDs are hashed, not truncated", test_long_call_ids_are_hashed_not_truncated },
        { "held v1 packet keeps its arrival time", test_held_v1_packet_keeps_its_arrival_time },
        { "shared store is asked once, then at thirds of the wait", test_shared_store_is_asked_once_then_at_thirds_of_the_wait },
        { "shared store answer releases held packets in order", test_shared_store_answer_releases_held_packets_in_order },
        { "rejected re-INVITE does not end a confirmed call", test_rejected_reinvite_does_not_end_a_confirmed_call },
        { "forked failure then 200 keeps the call", test_forked_failure_then_200_keeps_the_call },
        { "origin stored by another worker releases at the first look", test_origin_stored_by_another_worker_releases_at_the_first_look },
        { "later packet of a known call does not overtake held ones", test_later_packet_of_a_known_call_does_not_overtake_held_ones },
        { "full queue sends the call's older held packets first", test_full_queue_sends_the_calls_older_held_packets_first },
        { "RTCP waiting before a 407 takes the 407's route", test_rtcp_waiting_before_a_407_takes_the_407s_route },
        { "origin releases held packets without a cache", test_origin_releases_held_packets_without_a_cache },
        { "drain releases everything by fallback", test_drain_releases_everything_by_fallback },
        { "fallback method of in-dialog requests is INVITE", test_fallback_method_of_in_dialog_requests_is_invite },
        { NULL, NULL },
    };
    if (setup() != 0) {
        fprintf(stderr, "test_router: setup failed\n");
        return EXIT_FAILURE;
    }
    int rc = unit_run("router", tests);
    teardown();
    return rc;
}
