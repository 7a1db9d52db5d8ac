/*
 * router.c - decide where each packet goes (see router.h).
 *
 * The rules, in the order they apply to a packet:
 *  1. Malformed HEP is counted by reason and dropped.
 *  2. The call key is the SIP Call-ID, or for non-SIP HEP (RTCP, logs, ...)
 *     the correlation id.  A packet without one takes the route its own
 *     fields match (the `method` key never matches it).
 *  3. A known call: the packet follows it.  Its route is chosen with the
 *     call's origin method and the packet's own proto/address/status.
 *  4. An unknown call and a SIP request without To-tag that is not ACK or
 *     CANCEL: this is the call's origin.  Store it, send it, then release
 *     whatever of the call was held, in arrival order.
 *  5. Anything else of an unknown call waits in the hold queue; when the
 *     wait is over (or the queue is full) it takes the route of the method
 *     its CSeq implies (router_fallback_method), and for SIP that decision
 *     is stored for the rest of the call.
 * TTLs: ttl.register for REGISTER calls, ttl.call for others, refreshed on
 * activity; ttl.ended once a BYE got its 2xx or an INVITE a final failure;
 * a new request of the call (the INVITE retried after a 407) resets it.
 */
#include "router.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "hash.h"
#include "hold.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "sip.h"
#include "store.h"

/* A Call-ID longer than limits.call_id_max becomes "~" + 32 hex digits. */
#define HASHED_KEY_PREFIX '~'
#define HASHED_KEY_LEN (1 + 32)
/* A fixed SipHash key: hashed call keys must be the same in every instance. */
static const uint8_t call_key_hash_key[HASH_SIPHASH_KEY_BYTES] = "heprouter-callid";
#define MS_PER_S 1000u
#define US_PER_MS 1000u

struct router {
    const struct conf *conf;
    struct store *store;
    struct hold *hold;
    struct metrics *m;
    struct router_dispatch dispatch;
    struct log_limit decode_limit;
    struct log_limit sip_limit;
    uint64_t now_ms;                /* clocks of the packet being routed */
    uint64_t wall_ms;
};

/* What classify() learns about a packet. */
struct packet {
    struct hep_view view;
    struct sip_msg sip;
    bool is_sip;                    /* a scanned SIP message */
    const char *key;                /* call key, NULL when uncorrelated */
    size_t klen;
    char hashed[HASHED_KEY_LEN];
};

static void hex64(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 0xf];
        v >>= 4;
    }
}

/* Long Call-IDs are hashed (128 bits), never truncated into collisions. */
static void set_key(const struct router *r, struct packet *p, const uint8_t *key, size_t len)
{
    if (len <= r->conf->call_id_max) {
        p->key = (const char *)key;
        p->klen = len;
        return;
    }
    uint64_t h[2];
    hash_siphash128(call_key_hash_key, key, len, h);
    p->hashed[0] = HASHED_KEY_PREFIX;
    hex64(p->hashed + 1, h[0]);
    hex64(p->hashed + 17, h[1]);
    p->key = p->hashed;
    p->klen = HASHED_KEY_LEN;
}

struct router *router_new(const struct conf *conf, struct store *store, struct metrics *m,
                          const struct router_dispatch *dispatch)
{
    struct router *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->conf = conf;
    r->store = store;
    r->m = m;
    r->dispatch = *dispatch;
    r->hold = hold_new(conf->orphans_max_held, conf->orphans_wait_ms);
    if (r->hold == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    hold_free(r->hold);
    free(r);
}

size_t router_held(const struct router *r)
{
    return hold_count(r->hold);
}

uint64_t router_next_deadline(const struct router *r)
{
    return hold_next_deadline(r->hold);
}

static bool str_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

const char *router_fallback_method(const char *m, size_t len, size_t *out_len)
{
    static const char *const invite_only[] = { "ACK", "CANCEL", "BYE", "PRACK", "UPDATE", "INFO" };
    for (size_t i = 0; i < sizeof invite_only / sizeof invite_only[0]; i++) {
        if (str_is(m, len, invite_only[i])) {
            *out_len = strlen("INVITE");
            return "INVITE";
        }
    }
    *out_len = len;
    return m;
}

/* ---- classify ---- */

static void count_in(struct metrics *m, const struct hep_view *v)
{
    m->in_version[v->version]++;
    switch (v->proto_type) {
    case HEP_PROTO_SIP: m->in_sip++; break;
    case HEP_PROTO_RTCP: m->in_rtcp++; break;
    case HEP_PROTO_LOG: m->in_log++; break;
    default: m->in_other++; break;
    }
}

/*
 * Decodes and scans; false when the packet is dropped as malformed HEP.
 * HEPv1 carries no time: its time is when it was received (recv_wall_ms),
 * which is what a conversion to v3 writes.
 */
static bool classify(struct router *r, struct packet *p, const uint8_t *data, size_t len,
                     uint64_t recv_wall_ms, bool count)
{
    int rc = hep_decode(data, len, &p->view);
    if (rc == HEP_OK && p->view.version < 3 && !(p->view.present & HEP_HAS_TS)) {
        p->view.ts_sec = (uint32_t)(recv_wall_ms / MS_PER_S);
        p->view.ts_usec = (uint32_t)(recv_wall_ms % MS_PER_S * US_PER_MS);
        p->view.present |= HEP_HAS_TS;
    }
    if (rc != HEP_OK) {
        r->m->decode_errors[rc]++;
        log_ratelimited(&r->decode_limit, r->conf->log_interval_ms, LOG_LEVEL_WARN,
                        "dropped malformed HEP packet (%zu bytes): %s", len, hep_strerror(rc));
        return false;
    }
    if (count)
        count_in(r->m, &p->view);
    p->is_sip = false;
    p->key = NULL;
    p->klen = 0;
    if (p->view.proto_type == HEP_PROTO_SIP && !p->view.compressed) {
        rc = sip_scan(p->view.payload.data, p->view.payload.len, &p->sip);
        if (rc == SIP_OK) {
            p->is_sip = true;
            set_key(r, p, (const uint8_t *)p->sip.call_id.ptr, p->sip.call_id.len);
            return true;
        }
        if (count) {
            r->m->sip_errors[rc]++;
            log_ratelimited(&r->sip_limit, r->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "SIP payload not understood (%s): routed without call context",
                            sip_strerror(rc));
        }
    }
    if (p->view.correlation_id.len > 0)
        set_key(r, p, p->view.correlation_id.data, p->view.correlation_id.len);
    return true;
}

/* ---- dispatch ---- */

static void send_route(struct router *r, const struct packet *p, const char *method, size_t mlen)
{
    struct policy_input in;
    policy_input_from_view(&in, &p->view);
    in.method = method;
    in.method_len = mlen;
    in.status = p->is_sip && sip_is_reply(&p->sip) ? p->sip.status : 0;
    long route = policy_match(r->conf, &in);
    const size_t *to;
    size_t nto;
    policy_destinations(r->conf, route, &to, &nto);
    if (nto == 0) {
        r->m->route_dropped++;
        return;
    }
    for (size_t i = 0; i < nto; i++)
        r->dispatch.send(r->dispatch.arg, to[i], &p->view, p->key, p->klen);
}

/* ---- decide ---- */

static bool is_origin(const struct packet *p)
{
    const struct sip_msg *s = &p->sip;
    return p->is_sip && sip_is_request(s) && !(s->flags & (SIP_F_TO_TAG | SIP_F_ACK | SIP_F_CANCEL));
}

/* ttl.register or ttl.call, by what kind of call this is. */
static uint64_t live_ttl(const struct router *r, unsigned flags)
{
    return (flags & STORE_F_REGISTER) ? r->conf->ttl_register_ms : r->conf->ttl_call_ms;
}

/* A final answer that ends the call: 2xx to BYE, or >= 300 to INVITE. */
static bool ends_call(const struct packet *p)
{
    const struct sip_msg *s = &p->sip;
    if (!p->is_sip || !sip_is_reply(s))
        return false;
    if (s->cseq_method == SIP_METHOD_BYE)
        return s->status >= 200 && s->status < 300;
    return s->cseq_method == SIP_METHOD_INVITE && s->status >= 300;
}

static uint64_t payload_hash(const struct packet *p)
{
    return hash_fnv1a64(HASH_FNV64_OFFSET, p->view.payload.data, p->view.payload.len);
}

/* Updates the TTL and duplicate marker of a known call for this packet. */
static void touch_call(struct router *r, const struct packet *p, const struct store_entry *e)
{
    unsigned set = 0, clear = 0;
    uint64_t ttl, hash = e->last_hash;
    if (p->is_sip) {
        hash = payload_hash(p);
        if (hash == e->last_hash)
            r->m->duplicates++;
    }
    if (ends_call(p)) {
        ttl = r->conf->ttl_ended_ms;
        set = STORE_F_ENDED;
    } else if (is_origin(p)) {
        ttl = live_ttl(r, e->flags);
        clear = STORE_F_ENDED;
    } else if (e->flags & STORE_F_ENDED) {
        ttl = r->conf->ttl_ended_ms;    /* late packets of an ended call */
    } else {
        ttl = live_ttl(r, e->flags);
    }
    store_update(r->store, p->key, p->klen, ttl, set, clear, hash, r->now_ms);
}

static void release_held(struct router *r, const char *key, size_t klen, uint64_t *counter);

static void follow(struct router *r, const struct packet *p, const struct store_entry *e)
{
    r->m->calls_followed++;
    touch_call(r, p, e);
    send_route(r, p, e->method, strlen(e->method));
}

/*
 * Stores a new call decided by `method` (the origin's, or the fallback's);
 * when another worker or instance stored the call first, its entry wins and
 * the packet follows it instead.  Returns true when this packet created it.
 */
static bool create_call(struct router *r, const struct packet *p, const char *method, size_t mlen,
                        unsigned flags)
{
    struct store_entry e, winner;
    struct policy_input in;
    memset(&e, 0, sizeof e);
    if (mlen >= sizeof e.method)
        mlen = sizeof e.method - 1;
    memcpy(e.method, method, mlen);
    policy_input_from_view(&in, &p->view);
    in.method = method;
    in.method_len = mlen;
    in.status = 0;
    snprintf(e.route, sizeof e.route, "%s", policy_route_name(r->conf, policy_match(r->conf, &in)));
    e.first_seen_ms = r->wall_ms;
    e.flags = flags;
    if (str_is(method, mlen, "REGISTER"))
        e.flags |= STORE_F_REGISTER;
    e.last_hash = payload_hash(p);
    uint64_t ttl = live_ttl(r, e.flags);
    if (ends_call(p)) {
        e.flags |= STORE_F_ENDED;
        ttl = r->conf->ttl_ended_ms;
    }
    int rc = store_put(r->store, p->key, p->klen, &e, ttl, r->now_ms, &winner);
    if (rc == 0) {
        follow(r, p, &winner);
        return false;
    }
    /* rc < 0 (store full / no memory): the packet still goes where it should */
    send_route(r, p, e.method, mlen);
    return rc > 0;
}

/* The wait is over (or there is no room to wait): route by CSeq method. */
static void fallback(struct router *r, const struct packet *p)
{
    r->m->calls_fallback++;
    if (!p->is_sip) {
        /* no CSeq to go by and nothing worth storing: the packet's own match */
        send_route(r, p, NULL, 0);
        return;
    }
    size_t mlen;
    const char *method = router_fallback_method(p->sip.cseq_method_name.ptr,
                                                p->sip.cseq_method_name.len, &mlen);
    create_call(r, p, method, mlen, STORE_F_FALLBACK);
    release_held(r, p->key, p->klen, &r->m->orphans_released_fallback);
}

/* Routes a classified packet with a call key. */
static void decide(struct router *r, struct packet *p)
{
    struct store_entry e;
    if (store_get(r->store, p->key, p->klen, r->now_ms, &e)) {
        follow(r, p, &e);
        return;
    }
    if (is_origin(p)) {
        if (create_call(r, p, p->sip.method_name.ptr, p->sip.method_name.len, 0))
            r->m->calls_new++;
        release_held(r, p->key, p->klen, &r->m->orphans_released_origin);
        return;
    }
    if (r->conf->orphans_wait_ms > 0) {
        if (hold_add(r->hold, p->key, p->klen, p->view.raw.data, p->view.raw.len, r->now_ms) == 0) {
            r->m->orphans_held++;
            return;
        }
        r->m->orphans_queue_full++;
    }
    fallback(r, p);
}

void router_packet(struct router *r, const uint8_t *data, size_t len, uint64_t now_ms, uint64_t wall_ms)
{
    struct packet p;
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    r->m->packets_in++;
    r->m->bytes_in += len;
    if (!classify(r, &p, data, len, wall_ms, true))
        return;
    if (p.key == NULL) {
        r->m->uncorrelated++;
        send_route(r, &p, NULL, 0);
        return;
    }
    decide(r, &p);
}

/* ---- held packets ---- */

/* The wall-clock time of a held packet's arrival. */
static uint64_t received_wall_ms(const struct router *r, uint64_t held_since_ms)
{
    uint64_t waited = r->now_ms > held_since_ms ? r->now_ms - held_since_ms : 0;
    return r->wall_ms - waited;
}

/* Which counter on_release_known() bumps: released by origin or by fallback. */
struct release_ctx {
    struct router *r;
    uint64_t *counter;
};

/* A held packet whose call is now known: it follows, then its bytes go away. */
static void on_release_known(void *arg, const char *key, size_t klen, const uint8_t *pkt, size_t len,
                             uint64_t held_since_ms)
{
    struct release_ctx *ctx = arg;
    struct router *r = ctx->r;
    struct packet p;
    struct store_entry e;
    (void)key;
    (void)klen;
    (*ctx->counter)++;
    if (classify(r, &p, pkt, len, received_wall_ms(r, held_since_ms), false) && p.key != NULL) {
        if (store_get(r->store, p.key, p.klen, r->now_ms, &e))
            follow(r, &p, &e);
        else
            fallback(r, &p);        /* the entry vanished (store full): still deliver */
    }
    r->dispatch.flush(r->dispatch.arg);
}

static void release_held(struct router *r, const char *key, size_t klen, uint64_t *counter)
{
    struct release_ctx ctx = { r, counter };
    if (hold_has(r->hold, key, klen))
        hold_take(r->hold, key, klen, on_release_known, &ctx);
}

/* A held packet whose wait is over: maybe its origin was stored meanwhile. */
static void on_release_expired(void *arg, const char *key, size_t klen, const uint8_t *pkt, size_t len,
                               uint64_t held_since_ms)
{
    struct router *r = arg;
    struct packet p;
    struct store_entry e;
    (void)key;
    (void)klen;
    if (classify(r, &p, pkt, len, received_wall_ms(r, held_since_ms), false) && p.key != NULL) {
        if (store_get(r->store, p.key, p.klen, r->now_ms, &e)) {
            r->m->orphans_released_origin++;
            follow(r, &p, &e);
            release_held(r, p.key, p.klen, &r->m->orphans_released_origin);
        } else {
            r->m->orphans_released_fallback++;
            fallback(r, &p);
        }
    }
    r->dispatch.flush(r->dispatch.arg);
}

void router_timer(struct router *r, uint64_t now_ms, uint64_t wall_ms)
{
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    hold_expire(r->hold, now_ms, on_release_expired, r);
    store_expire(r->store, now_ms);
}

void router_drain(struct router *r, uint64_t now_ms, uint64_t wall_ms)
{
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    hold_flush(r->hold, on_release_expired, r);
}
