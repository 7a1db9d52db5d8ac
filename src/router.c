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

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "conf.h"
#include "dedup.h"
#include "hash.h"
#include "hold.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "payload.h"
#include "policy.h"
#include "sip.h"
#include "store/store.h"

/* A Call-ID longer than limits.call_id_max becomes "~" + 32 hex digits. */
#define HASHED_KEY_PREFIX '~'
#define HASHED_KEY_LEN (1 + 32)
/* What the malformed-packet line counts: "1532 malformed HEP packets dropped from 10.0.0.3 in the last 10 s". */
#define ROUTER_DECODE_TALLY "malformed HEP packets dropped"
_Static_assert(HASHED_KEY_LEN == ROUTER_HASHED_KEY_LEN, "router.h says how long a hashed key is");
/* A fixed SipHash key: hashed call keys must be the same in every instance. */
static const uint8_t call_key_hash_key[HASH_SIPHASH_KEY_BYTES] = "heprouter-callid";

struct router {
    const struct conf *conf;
    struct store *store;
    struct hold *hold;
    struct metrics *m;
    struct router_dispatch dispatch;
    struct log_tally decode_tally;  /* malformed HEP, by sender, one line per log.interval */
    struct log_limit sip_limit;
    struct log_limit inflate_limit;
    struct payload_inflater *inflater;
    uint8_t *spare;                 /* an inflate buffer no packet holds */
    uint64_t now_ms;                /* clocks of the packet being routed */
    uint64_t wall_ms;
    const void *source;             /* its router_in.source, for dispatch.source and dispatch.admit */
    enum router_how how;            /* how the packet being sent was decided (for explain) */
    bool explain_paused;            /* router_pause_explain() */
    uint64_t explain_skipped;       /* decisions not told while paused */
    struct dedup *dedup;            /* the instance's dedup window, or NULL */
    struct list claims;             /* of router_claim: packets waiting for the shared dedup's answer */
    uint64_t claim_tokens;
    uint32_t prev_signature;        /* conf.origin_signature before the last reload; 0: none */
    int8_t remap[CONF_ORIGIN_ROUTES_MAX];   /* a bit under it -> the same route's bit now, or -1 */
    int8_t rate_remap[CONF_RATE_DESTS_MAX]; /* a refused bit under it -> the same destination's now */
    struct rate_bucket {            /* this worker's share of max_new_calls_per_s, by rate bit */
        bool primed;
        uint64_t milli;             /* thousandths of a call that may start now */
        uint64_t last_ms;
    } rate[CONF_RATE_DESTS_MAX];
};

#define RATE_MILLI 1000             /* a call, in rate_bucket.milli */

/* A packet waiting for the store's answer to a shared dedup claim (dedup.shared). */
struct router_claim {
    struct list_link link;
    uint64_t token;
    uint64_t received_wall_ms;
    size_t len;                     /* of the packet, at data */
    size_t klen;                    /* of its call key, after it */
    uint8_t data[];                 /* packet, call key, destination name and NUL */
};

/* HEPv1 has no time: it gets its arrival time (v2 and v3 carry theirs). */
static void stamp_arrival(struct hep_view *v, uint64_t recv_wall_ms)
{
    if (v->version < 3 && !(v->present & HEP_HAS_TS)) {
        v->ts_sec = (uint32_t)(recv_wall_ms / CLOCK_MS_PER_S);
        v->ts_usec = (uint32_t)(recv_wall_ms % CLOCK_MS_PER_S * CLOCK_US_PER_MS);
        v->present |= HEP_HAS_TS;
    }
}

/* A packet's identity hashed, each form at most once whatever its destinations. */
struct copy_hashes {
    bool local_done, shared_done;
    struct dedup_hash local;        /* under the instance's window's own key */
    struct dedup_hash shared;       /* under the key instances share */
};

/* What classify() learns about a packet. */
struct packet {
    struct hep_view view;
    struct sip_msg sip;
    bool is_sip;                    /* a scanned SIP message */
    uint64_t payload_hash;          /* SIP: hash_words64() of the payload, a call's duplicate marker */
    const char *key;                /* call key, NULL when uncorrelated */
    size_t klen;
    struct store_hint hint;         /* the store's, for key: hint_key() */
    char hashed[HASHED_KEY_LEN];
    uint8_t *inflated;              /* a compressed payload, inflated: packet_done() */
    struct sip_str text;            /* the SIP message scanned (inflated or not) */
    uint64_t received_wall_ms;
    enum router_how dropped;        /* classify() said false: ROUTER_HOW_DECODE_ERROR or ROUTER_HOW_REFUSED */
    int drop_error;                 /* the decode status or the admission verdict */
    bool drop_told;                 /* the explain hook is to be told of the drop */
    bool copy_hashed;               /* copy_hash is set: hashed on arrival (conf.dedup_any) */
    struct dedup_hash copy_hash;    /* its identity under the instance's dedup window's key */
};

#define ROUTER_HOW_NAME(name, text) text,
static const char *const router_how_names[] = { ROUTER_HOWS(ROUTER_HOW_NAME) };
#undef ROUTER_HOW_NAME

const char *router_how_name(enum router_how how)
{
    return (unsigned)how < ROUTER_HOW_COUNT ? router_how_names[how] : "?";
}

/* Completes e with what p says (NULL: not decoded) and tells the explain hook. */
static void tell(const struct router *r, const struct packet *p, struct router_explain *e)
{
    e->view = p != NULL ? &p->view : NULL;
    e->sip = p != NULL && p->is_sip ? &p->sip : NULL;
    e->key = p != NULL ? p->key : NULL;
    e->klen = p != NULL ? p->klen : 0;
    r->dispatch.explain(r->dispatch.explain_arg, e);
}

/*
 * Whether the explain hook is to be told of a decision: one branch when
 * there is no hook; while it is paused the decision is only counted.
 */
static inline bool telling(struct router *r)
{
    if (r->dispatch.explain == NULL)
        return false;
    if (!r->explain_paused)
        return true;
    r->explain_skipped++;
    return false;
}

/* A packet not routed (held, not decoded, refused); error: the decode status or the verdict. */
static void explain(const struct router *r, const struct packet *p, enum router_how how, int error,
                    uint64_t received_wall_ms)
{
    char sender[ROUTER_SOURCE_MAX];
    struct router_explain e = {
        .how = how, .route = ROUTER_NO_ROUTE,
        .hep_error = how == ROUTER_HOW_DECODE_ERROR ? error : HEP_OK,
        .refused = how == ROUTER_HOW_REFUSED ? error : 0,
        .received_wall_ms = received_wall_ms,
    };
    if (how != ROUTER_HOW_HELD && r->dispatch.source != NULL)
        e.sender = r->dispatch.source(r->dispatch.source_arg, r->source, sender, sizeof sender);
    tell(r, p, &e);
}

/* A routed packet, some of whose copies may have been held back (dedup, max_new_calls_per_s). */
static void explain_routed(const struct router *r, const struct packet *p, long route, const char *method,
                           size_t mlen, const size_t *to, size_t nto, uint64_t deduplicated, uint64_t over_rate)
{
    struct router_explain e = {
        .how = r->how, .route = route, .method = method, .mlen = mlen, .to = to, .nto = nto,
        .deduplicated = deduplicated, .over_rate = over_rate, .received_wall_ms = p->received_wall_ms,
    };
    tell(r, p, &e);
}

static void hex64(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 0xf];
        v >>= 4;
    }
}

static void set_hashed_key(struct packet *p, const uint64_t h[2])
{
    p->hashed[0] = HASHED_KEY_PREFIX;
    hex64(p->hashed + 1, h[0]);
    hex64(p->hashed + 17, h[1]);
    p->key = p->hashed;
    p->klen = HASHED_KEY_LEN;
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
    set_hashed_key(p, h);
}

/*
 * The store works out what it can from the packet's call key while the
 * packet is still being classified (struct store_hint): its lookup in
 * decide() then finds the lines it reads on their way into the cache.
 */
static void hint_key(struct router *r, struct packet *p)
{
    store_hint(r->store, p->key, p->klen, &p->hint);
}

/*
 * A Call-ID with white space or folds inside is keyed by the hash of its
 * canonical form (every run of them one SP), so that one Call-ID folded
 * two ways is one call.
 */
static void set_key_lws(struct packet *p, const struct sip_str *call_id)
{
    struct hash_siphash hs;
    struct sip_str piece;
    size_t pos = 0;
    uint64_t h[2];
    hash_siphash128_init(&hs, call_key_hash_key);
    while (sip_lws_next(call_id, &pos, &piece))
        hash_siphash128_update(&hs, piece.ptr, piece.len);
    hash_siphash128_final(&hs, h);
    set_hashed_key(p, h);
}

static void on_store_answer(void *arg, const char *key, size_t klen, const struct store_entry *e,
                            uint64_t now_ms, uint64_t wall_ms);

/*
 * The store answered a shared dedup claim: the packet goes to its
 * destination unless another instance sent it first (claimed 0); with no
 * answer (-1) it goes, as a copy too many is better than a message lost.
 */
static void on_claim(void *arg, uint64_t token, int claimed, uint64_t now_ms, uint64_t wall_ms)
{
    struct router *r = arg;
    struct router_claim *c = NULL;
    struct list_link *pos;
    list_foreach(pos, &r->claims) {
        c = list_entry(pos, struct router_claim, link);
        if (c->token == token)
            break;
        c = NULL;
    }
    if (c == NULL)
        return;
    list_remove(&r->claims, &c->link);
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    const char *name = (const char *)c->data + c->len + c->klen;
    size_t di = r->conf->ndests;
    for (size_t i = 0; i < r->conf->ndests && di == r->conf->ndests; i++)
        if (strcmp(r->conf->dests[i].name, name) == 0)
            di = i;
    struct hep_view view;
    if (di == r->conf->ndests || hep_decode(c->data, c->len, &view) != HEP_OK) {
        free(c);                    /* the destination went at a reload */
        return;
    }
    stamp_arrival(&view, c->received_wall_ms);
    if (claimed == 0) {
        r->m->dests[di].deduplicated++;
    } else {
        r->dispatch.send(r->dispatch.arg, di, &view, c->klen > 0 ? (const char *)c->data + c->len : NULL, c->klen);
        r->dispatch.flush(r->dispatch.arg);
    }
    free(c);
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
    r->hold = hold_new(conf->orphans_max_held, conf->orphans_max_bytes, conf->orphans_wait_ms);
    r->inflater = payload_inflater_new();
    if (r->hold == NULL || r->inflater == NULL) {
        router_free(r);
        return NULL;
    }
    list_init(&r->claims);
    store_set_answer_fn(store, on_store_answer, r);
    store_set_claim_fn(store, on_claim, r);
    return r;
}

void router_set_conf(struct router *r, const struct conf *conf)
{
    if (conf->origin_signature != r->conf->origin_signature) {
        /* calls judged under the rules going away keep their routes' bits */
        r->prev_signature = r->conf->origin_signature;
        for (int b = 0; b < CONF_ORIGIN_ROUTES_MAX; b++)
            r->remap[b] = (int8_t)conf_origin_bit_after(r->conf, b, conf);
        for (int b = 0; b < CONF_RATE_DESTS_MAX; b++)
            r->rate_remap[b] = (int8_t)conf_rate_bit_after(r->conf, b, conf);
        memset(r->rate, 0, sizeof r->rate);     /* the limits start afresh */
    }
    r->conf = conf;
}

void router_set_dedup(struct router *r, struct dedup *d)
{
    r->dedup = d;
}

void router_set_explain(struct router *r, void (*fn)(void *explain_arg, const struct router_explain *e),
                        void *arg)
{
    r->dispatch.explain = fn;
    r->dispatch.explain_arg = arg;
}

void router_pause_explain(struct router *r, bool paused)
{
    r->explain_paused = paused;
}

uint64_t router_explain_skipped(const struct router *r)
{
    return r->explain_skipped;
}

size_t router_call_key(const struct conf *conf, const char *call_id, size_t len, char *out, size_t outlen)
{
    struct router r = { .conf = conf };
    struct packet p;
    memset(&p, 0, sizeof p);
    bool lws = false;
    for (size_t i = 0; i < len && !lws; i++)
        lws = call_id[i] == ' ' || call_id[i] == '\t' || call_id[i] == '\r' || call_id[i] == '\n';
    struct sip_str id = { call_id, len };
    if (lws)
        set_key_lws(&p, &id);
    else
        set_key(&r, &p, (const uint8_t *)call_id, len);
    if (p.klen > outlen)
        return 0;
    memcpy(out, p.key, p.klen);
    return p.klen;
}

void router_free(struct router *r)
{
    if (r == NULL)
        return;
    log_tally_flush(&r->decode_tally, r->now_ms, LOG_LEVEL_WARN, ROUTER_DECODE_TALLY);
    struct list_link *pos, *tmp;
    list_foreach_safe(pos, tmp, &r->claims) {
        /* the store went without answering (an exit's drain ran out): counted as not sent */
        r->m->store_lost_writes++;
        list_remove(&r->claims, pos);
        free(list_entry(pos, struct router_claim, link));
    }
    hold_free(r->hold);
    payload_inflater_free(r->inflater);
    free(r->spare);
    free(r);
}

size_t router_held(const struct router *r)
{
    return hold_count(r->hold);
}

uint64_t router_next_deadline(const struct router *r)
{
    uint64_t wait = hold_next_deadline(r->hold), recheck = hold_next_recheck(r->hold);
    return recheck < wait ? recheck : wait;
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

/* Gives back what classify() took for p; every classified packet ends here. */
static void packet_done(struct router *r, struct packet *p)
{
    if (p->inflated == NULL)
        return;
    if (r->spare == NULL)
        r->spare = p->inflated;
    else
        free(p->inflated);
    p->inflated = NULL;
}

/*
 * The SIP bytes of a compressed payload (chunk 0x0010), inflated into a
 * buffer p owns, at most a HEP3 packet's worth: the headers come first, and
 * no sender can make the router inflate more per packet.  False when they
 * cannot be had (not gzip/zlib, corrupt, out of memory).
 */
static bool inflate_payload(struct router *r, struct packet *p, struct sip_str *sip, bool count)
{
    uint8_t *buf = r->spare != NULL ? r->spare : malloc(HEP3_MAX_LEN);
    size_t n = 0;
    r->spare = NULL;
    if (buf == NULL || payload_inflate(r->inflater, p->view.payload.data, p->view.payload.len,
                                       buf, HEP3_MAX_LEN, &n) != 0) {
        r->spare = buf;
        if (count) {
            r->m->payload_inflate_errors++;
            log_ratelimited(&r->inflate_limit, r->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "compressed payload (%zu bytes) could not be inflated: "
                            "routed without call context", p->view.payload.len);
        }
        return false;
    }
    if (count)
        r->m->payload_inflated++;
    p->inflated = buf;
    sip->ptr = (const char *)buf;
    sip->len = n;
    return true;
}

/*
 * What the router reads of a SIP message besides its call key, CSeq and
 * first line: the top Via branch when a destination deduplicates
 * (identity_of()).  Whether a request carries a To-tag (an initial request
 * has none) is asked only of packets whose call is not known (is_origin()).
 */
static unsigned sip_wanted(const struct conf *conf)
{
    return conf->dedup_any ? SIP_WANT_VIA_BRANCH : 0;
}

/*
 * Decodes and scans; false when the packet is dropped as malformed HEP.
 * HEPv1 carries no time: its time is when it was received (recv_wall_ms),
 * which is what a conversion to v3 writes.  packet_done() must follow.
 */
static bool classify(struct router *r, struct packet *p, const uint8_t *data, size_t len,
                     uint64_t recv_wall_ms, bool count)
{
    p->inflated = NULL;
    p->received_wall_ms = recv_wall_ms;
    p->copy_hashed = false;
    int rc = hep_decode(data, len, &p->view);
    if (rc == HEP_OK)
        stamp_arrival(&p->view, recv_wall_ms);
    if (rc != HEP_OK) {
        r->m->decode_errors[rc]++;
        char src[ROUTER_SOURCE_MAX];
        const char *from = r->dispatch.source != NULL
                               ? r->dispatch.source(r->dispatch.source_arg, r->source, src, sizeof src)
                               : NULL;
        log_debug("dropped malformed HEP packet (%zu bytes) from %s: %s", len, from != NULL ? from : "?",
                  hep_strerror(rc));
        log_tally(&r->decode_tally, r->conf->log_interval_ms, r->now_ms, LOG_LEVEL_WARN,
                  ROUTER_DECODE_TALLY, from);
        p->dropped = ROUTER_HOW_DECODE_ERROR;
        p->drop_error = rc;
        p->drop_told = telling(r);
        return false;
    }
    if (count && r->dispatch.admit != NULL) {
        int verdict = r->dispatch.admit(r->dispatch.source_arg, r->source, &p->view);
        if (verdict != 0) {
            p->dropped = ROUTER_HOW_REFUSED;
            p->drop_error = verdict;
            p->drop_told = telling(r);
            if (p->drop_told) {
                /* scanned for the tap's line and its call filter only: a refused packet is never routed */
                p->is_sip = false;
                p->key = NULL;
                p->klen = 0;
                if (p->view.proto_type == HEP_PROTO_SIP && !p->view.compressed &&
                    sip_scan(p->view.payload.data, p->view.payload.len, &p->sip) == SIP_OK) {
                    p->is_sip = true;
                    p->key = p->sip.call_id.ptr;
                    p->klen = p->sip.call_id.len;
                } else if (p->view.correlation_id.len > 0) {
                    p->key = (const char *)p->view.correlation_id.data;
                    p->klen = p->view.correlation_id.len;
                }
            }
            return false;
        }
    }
    if (count)
        count_in(r->m, &p->view);
    p->is_sip = false;
    p->key = NULL;
    p->klen = 0;
    p->hint.set = false;
    struct sip_str sip = { (const char *)p->view.payload.data, p->view.payload.len };
    if (p->view.proto_type == HEP_PROTO_SIP && (!p->view.compressed || inflate_payload(r, p, &sip, count))) {
        rc = sip_scan_for((const uint8_t *)sip.ptr, sip.len, sip_wanted(r->conf), &p->sip);
        if (rc == SIP_OK) {
            p->is_sip = true;
            p->text = sip;
            if (count)
                r->m->sip_lines_skipped += p->sip.skipped_lines;
            if (p->sip.flags & SIP_F_CALL_ID_LWS)
                set_key_lws(p, &p->sip.call_id);
            else
                set_key(r, p, (const uint8_t *)p->sip.call_id.ptr, p->sip.call_id.len);
            hint_key(r, p);         /* before the payload hash, which then overlaps the store's fetch */
            p->payload_hash = hash_words64(p->view.payload.data, p->view.payload.len);
            return true;
        }
        if (count) {
            r->m->sip_errors[rc]++;
            log_ratelimited(&r->sip_limit, r->conf->log_interval_ms, LOG_LEVEL_WARN,
                            "SIP payload not understood (%s): routed without call context",
                            sip_strerror(rc));
        }
    }
    if (p->view.correlation_id.len > 0) {
        set_key(r, p, p->view.correlation_id.data, p->view.correlation_id.len);
        hint_key(r, p);
    }
    return true;
}

/* ---- dispatch ---- */

/*
 * What the call's origin matched, as the running rules number their bits:
 * judged under them, or under the rules before the last reload (moved to
 * the same routes' new bits); a call judged under other rules, or decided
 * by the fallback, has no origin for them.
 */
static void origin_input(const struct router *r, const struct store_entry *call, struct policy_input *in)
{
    uint32_t sig = r->conf->origin_signature;
    in->origin_known = false;
    in->origin_bits = 0;
    if (call == NULL || sig == 0 || (call->flags & STORE_F_FALLBACK) || call->origin_signature == 0)
        return;
    if (call->origin_signature == sig) {
        in->origin_known = true;
        in->origin_bits = call->origin_bits;
    } else if (call->origin_signature == r->prev_signature) {
        in->origin_known = true;
        for (int b = 0; b < CONF_ORIGIN_ROUTES_MAX; b++)
            if (((call->origin_bits >> b) & 1u) && r->remap[b] >= 0)
                in->origin_bits |= UINT64_C(1) << r->remap[b];
    }
}

/* The destinations (by rate bit now) whose limit refused the call when it started. */
static uint32_t refused_dests(const struct router *r, const struct store_entry *call)
{
    uint32_t sig = r->conf->origin_signature, out = 0;
    if (call == NULL || sig == 0 || call->refused_dests == 0)
        return 0;
    if (call->origin_signature == sig)
        return call->refused_dests;
    if (call->origin_signature != r->prev_signature)
        return 0;
    for (int b = 0; b < CONF_RATE_DESTS_MAX; b++)
        if (((call->refused_dests >> b) & 1u) && r->rate_remap[b] >= 0)
            out |= UINT32_C(1) << r->rate_remap[b];
    return out;
}

/*
 * A new call for destination d: whether this worker's share of
 * max_new_calls_per_s (the limit over conf.workers) has room, a token
 * bucket that holds a second's worth (at least one call).
 */
static bool rate_take(struct router *r, const struct conf_dest *d)
{
    struct rate_bucket *b = &r->rate[d->rate_bit];
    uint64_t workers = r->conf->workers > 0 ? r->conf->workers : 1;
    uint64_t per_s = d->max_new_calls_per_s * RATE_MILLI / workers;    /* thousandths of a call per second */
    uint64_t cap = per_s > RATE_MILLI ? per_s : RATE_MILLI;
    if (!b->primed) {
        b->primed = true;
        b->milli = cap;
    } else if (r->now_ms > b->last_ms) {
        uint64_t add = (r->now_ms - b->last_ms) * per_s / CLOCK_MS_PER_S;
        b->milli = b->milli + add > cap ? cap : b->milli + add;
    }
    b->last_ms = r->now_ms;
    if (b->milli < RATE_MILLI)
        return false;
    b->milli -= RATE_MILLI;
    return true;
}

/* The destinations of a new call's route whose limit has no room: counted, and kept with the call. */
static uint32_t refuse_over_rate(struct router *r, long route)
{
    const size_t *to;
    size_t nto;
    uint32_t refused = 0;
    if (r->conf->nrate_dests == 0)
        return 0;
    policy_destinations(r->conf, route, &to, &nto);
    for (size_t i = 0; i < nto; i++) {
        const struct conf_dest *d = &r->conf->dests[to[i]];
        if (d->max_new_calls_per_s > 0 && !(refused & (UINT32_C(1) << d->rate_bit)) && !rate_take(r, d)) {
            refused |= UINT32_C(1) << d->rate_bit;
            r->m->dests[to[i]].calls_over_rate++;
        }
    }
    return refused;
}

/* Where p's call falls for routes with `sample` (computed only when one has it). */
static void sample_input(const struct router *r, const struct packet *p, struct policy_input *in)
{
    if (r->conf->sampling && p->key != NULL) {
        in->in_sample_space = true;
        in->sample_point = policy_sample_point(p->key, p->klen);
    }
}

/*
 * Whether destination di was sent a copy of p within its dedup window
 * (then p is not sent again), else p is recorded as sent.  The copy's
 * identity is its SIP identity (RTCP and logs: correlation id, type and
 * payload) and its hop, not who captured it; the destination is keyed by
 * its name, which a reload does not renumber.
 */
static void identity_of(const struct packet *p, struct dedup_identity *id)
{
    const struct hep_view *v = &p->view;
    /* every field of the kind and of the hop set; the other kind's are not read */
    if (p->is_sip) {
        const struct sip_msg *s = &p->sip;
        id->kind = DEDUP_SIP;
        id->call_id = (struct dedup_bytes){ s->call_id.ptr, s->call_id.len };
        id->cseq = s->cseq;
        id->cseq_method = (struct dedup_bytes){ s->cseq_method_name.ptr, s->cseq_method_name.len };
        id->method = sip_is_request(s) ? (struct dedup_bytes){ s->method_name.ptr, s->method_name.len }
                                       : (struct dedup_bytes){ NULL, 0 };
        id->status = s->status;
        id->via_branch = (struct dedup_bytes){ s->via_branch.ptr, s->via_branch.len };
    } else {
        id->kind = DEDUP_OTHER;
        id->correlation_id = (struct dedup_bytes){ v->correlation_id.data, v->correlation_id.len };
        id->proto_type = v->proto_type;
        id->payload = (struct dedup_bytes){ v->payload.data, v->payload.len };
    }
    id->addr_len = v->addr_len;
    id->src_addr = v->src_ip;
    id->dst_addr = v->dst_ip;
    id->src_port = v->src_port;
    id->dst_port = v->dst_port;
    id->transport = v->ip_proto;
}


/* The identity under the instance's window's key, once per packet; its buckets asked of memory at once. */
static void hash_local(const struct router *r, const struct packet *p, struct dedup_hash *out)
{
    struct dedup_identity id;
    identity_of(p, &id);
    dedup_hash(r->dedup, &id, out);
}

static bool is_copy(const struct router *r, const struct packet *p, size_t di, struct copy_hashes *ch)
{
    const struct conf_dest *d = &r->conf->dests[di];
    uint64_t key[2];
    if (!ch->local_done) {
        hash_local(r, p, &ch->local);
        ch->local_done = true;
    }
    dedup_key_to(&ch->local, d->dedup_id, key);
    return dedup_check(r->dedup, key, r->now_ms, d->dedup_window_ms);
}

/*
 * dedup.shared: asks the Redis store whether another instance sent p to di
 * within the window; p goes (or not) when it answers (on_claim()), in the
 * order of the answers, which is the order asked.  false when it cannot be
 * asked (down, too many in flight, no memory): send p now.
 */
static bool claim_shared(struct router *r, const struct packet *p, size_t di, struct copy_hashes *ch)
{
    const struct conf_dest *d = &r->conf->dests[di];
    uint64_t key[2];
    uint8_t kbytes[sizeof key];
    if (!ch->shared_done) {
        struct dedup_identity id;
        identity_of(p, &id);
        dedup_shared_hash(&id, &ch->shared);
        ch->shared_done = true;
    }
    dedup_key_to(&ch->shared, d->dedup_id, key);
    bytes_put_be64(kbytes, key[0]);
    bytes_put_be64(kbytes + sizeof key[0], key[1]);
    size_t nlen = strlen(d->name) + 1;
    struct router_claim *c = malloc(sizeof *c + p->view.raw.len + p->klen + nlen);
    if (c == NULL)
        return false;
    c->token = ++r->claim_tokens;
    c->received_wall_ms = p->received_wall_ms;
    c->len = p->view.raw.len;
    c->klen = p->key != NULL ? p->klen : 0;
    memcpy(c->data, p->view.raw.data, c->len);
    if (c->klen > 0)
        memcpy(c->data + c->len, p->key, c->klen);
    memcpy(c->data + c->len + c->klen, d->name, nlen);
    if (store_claim(r->store, kbytes, sizeof kbytes, d->dedup_window_ms, r->now_ms, c->token) != 0) {
        free(c);
        return false;
    }
    list_insert_tail(&r->claims, &c->link);
    return true;
}

/* The length of a NUL-terminated name in an array of max bytes, counted inline: a short name's strlen() is a call. */
static size_t name_len(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n] != '\0')
        n++;
    return n;
}

/* Sends p by the policy; call is its call's entry (NULL: no call context). */
static void send_route(struct router *r, const struct packet *p, const struct store_entry *call)
{
    struct policy_input in;
    const char *method = call != NULL ? call->method : NULL;
    size_t mlen = method != NULL ? name_len(method, sizeof call->method) : 0;
    policy_input_from_view(&in, &p->view);
    in.method = method;
    in.method_len = mlen;
    in.status = p->is_sip && sip_is_reply(&p->sip) ? p->sip.status : 0;
    origin_input(r, call, &in);
    sample_input(r, p, &in);
    long route = policy_match(r->conf, &in);
    const size_t *to;
    size_t nto;
    r->m->routes[route == POLICY_DEFAULT ? r->conf->nroutes : (size_t)route].hits++;
    policy_destinations(r->conf, route, &to, &nto);
    if (nto == 0)
        r->m->route_dropped++;
    uint64_t deduplicated = 0, over_rate = 0;
    uint32_t refused = refused_dests(r, call);
    struct copy_hashes ch;
    ch.local_done = p->copy_hashed;
    ch.shared_done = false;
    if (p->copy_hashed)
        ch.local = p->copy_hash;
    for (size_t i = 0; i < nto; i++) {
        const struct conf_dest *d = &r->conf->dests[to[i]];
        if (refused != 0 && d->max_new_calls_per_s > 0 && ((refused >> d->rate_bit) & 1u)) {
            r->m->dests[to[i]].packets_over_rate++;
            if (i < sizeof over_rate * CHAR_BIT)
                over_rate |= UINT64_C(1) << i;
            continue;
        }
        if (r->dedup != NULL && d->dedup_window_ms > 0 && is_copy(r, p, to[i], &ch)) {
            r->m->dests[to[i]].deduplicated++;
            if (i < sizeof deduplicated * CHAR_BIT)
                deduplicated |= UINT64_C(1) << i;
            continue;
        }
        if (d->dedup_shared && d->dedup_window_ms > 0 && store_is_shared(r->store) &&
            claim_shared(r, p, to[i], &ch))
            continue;               /* sent when the store answers */
        r->dispatch.send(r->dispatch.arg, to[i], &p->view, p->key, p->klen);
    }
    if (telling(r))
        explain_routed(r, p, route, method, mlen, to, nto, deduplicated, over_rate);
}

/* ---- decide ---- */

/* A request that starts a call: no ACK or CANCEL, no To-tag (looked for here, for the packets that get here only). */
static bool is_origin(const struct packet *p)
{
    const struct sip_msg *s = &p->sip;
    struct sip_str tag;
    return p->is_sip && sip_is_request(s) && !(s->flags & (SIP_F_ACK | SIP_F_CANCEL)) && !sip_to_tag(s, &tag);
}

static bool is_2xx(unsigned status)
{
    return status >= 200 && status < 300;
}

/* How a packet changes its call's flags. */
struct life {
    unsigned set;
    unsigned clear;
};

/*
 * A 2xx to BYE ends the call.  A final failure (>= 300) of an INVITE ends
 * it unless a 2xx to an INVITE confirmed it: a rejected re-INVITE does not
 * end a call, nor does a forked branch's 486 once another branch answered.
 * A 2xx to INVITE confirms the call and undoes an end (the 486 of one
 * branch before the 200 of another).  A new request other than ACK, CANCEL
 * and BYE undoes an end: the INVITE retried with credentials after a 407.
 */
static struct life call_life(const struct packet *p, unsigned flags)
{
    struct life l = { 0, 0 };
    const struct sip_msg *s = &p->sip;
    if (!p->is_sip)
        return l;
    if (sip_is_reply(s)) {
        if (s->cseq_method == SIP_METHOD_BYE && is_2xx(s->status)) {
            l.set = STORE_F_ENDED;
        } else if (s->cseq_method == SIP_METHOD_INVITE && is_2xx(s->status)) {
            l.set = STORE_F_CONFIRMED;
            l.clear = STORE_F_ENDED;
        } else if (s->cseq_method == SIP_METHOD_INVITE && s->status >= 300 &&
                   !(flags & STORE_F_CONFIRMED)) {
            l.set = STORE_F_ENDED;
        }
    } else if (!(s->flags & (SIP_F_ACK | SIP_F_CANCEL)) && s->method != SIP_METHOD_BYE) {
        l.clear = STORE_F_ENDED;
    }
    return l;
}

/* A packet of a known call, for touch(). */
struct touching {
    struct router *r;
    const struct packet *p;
};

/* The TTL, flags and duplicate marker a known call takes from this packet (store_touch_fn). */
static void touch(void *arg, const struct store_entry *e, struct store_touch *t)
{
    const struct touching *tc = arg;
    t->last_hash = e->last_hash;
    if (tc->p->is_sip) {
        t->last_hash = tc->p->payload_hash;
        if (tc->p->payload_hash == e->last_hash)
            tc->r->m->duplicates++;
    }
    struct life l = call_life(tc->p, e->flags);
    t->set = l.set;
    t->clear = l.clear;
    t->ttl_ms = store_ttl(tc->r->conf, (e->flags | l.set) & ~l.clear);
}

/* Updates the TTL, flags and duplicate marker of a known call for this packet. */
static void touch_call(struct router *r, const struct packet *p, const struct store_entry *e)
{
    struct touching tc = { r, p };
    struct store_touch t;
    touch(&tc, e, &t);
    store_update(r->store, p->key, p->klen, t.ttl_ms, t.set, t.clear, t.last_hash, r->now_ms);
}

static void release_held(struct router *r, const char *key, size_t klen, uint64_t *counter,
                         const struct store_entry *known);

/* Sends a packet of a known call; r->how says how it came to be known. */
static void follow(struct router *r, const struct packet *p, const struct store_entry *e)
{
    r->m->calls_followed++;
    touch_call(r, p, e);
    send_route(r, p, e);
}

/*
 * Stores the call as decided by `method` (the origin's, or the fallback's)
 * and fills *use with the entry the call now has: this one, or the one
 * another worker or instance stored first, which wins.  Returns 1 when this
 * packet created the call, 0 when another had, -1 when the store could not
 * take it (*use is this packet's decision then, so it is still delivered).
 */
static int store_call(struct router *r, const struct packet *p, const char *method, size_t mlen,
                      unsigned flags, struct store_entry *use)
{
    struct store_entry e;
    struct policy_input in;
    memset(&e, 0, sizeof e);
    if (mlen >= sizeof e.method)
        mlen = sizeof e.method - 1;
    memcpy(e.method, method, mlen);
    policy_input_from_view(&in, &p->view);
    in.method = method;
    in.method_len = mlen;
    in.status = 0;
    sample_input(r, p, &in);
    if (!(flags & STORE_F_FALLBACK) && r->conf->origin_signature != 0) {
        /* the origin request: its origin keys are judged once, for the whole call */
        struct policy_origin o = { (const uint8_t *)p->text.ptr, p->text.len, p->sip.uri, p->sip.from, p->sip.to,
                                   p->view.addr_len, p->view.src_ip, p->view.dst_ip };
        e.origin_bits = policy_origin_bits(r->conf, &o);
        in.origin_known = true;
        in.origin_bits = e.origin_bits;
    }
    e.origin_signature = r->conf->origin_signature;
    long route = policy_match(r->conf, &in);
    const char *route_name = policy_route_name(r->conf, route);
    memcpy(e.route, route_name, strnlen(route_name, sizeof e.route - 1));     /* e is zeroed: NUL-terminated */
    e.refused_dests = refuse_over_rate(r, route);
    e.first_seen_ms = r->wall_ms;
    if (str_is(method, mlen, "REGISTER"))
        flags |= STORE_F_REGISTER;
    struct life l = call_life(p, flags);
    e.flags = (flags | l.set) & ~l.clear;
    e.last_hash = p->payload_hash;
    int rc = store_put_hinted(r->store, p->key, p->klen, &p->hint, &e, store_ttl(r->conf, e.flags), r->now_ms, use);
    if (rc < 0)
        r->m->calls_not_stored++;
    if (rc != 0)
        *use = e;
    return rc;
}

/* Routes an origin: stores the call, sends it, then whatever waited for it. */
static void originate(struct router *r, const struct packet *p)
{
    struct store_entry use;
    int rc = store_call(r, p, p->sip.method_name.ptr, p->sip.method_name.len, 0, &use);
    if (rc == 0) {
        r->how = ROUTER_HOW_KNOWN;
        follow(r, p, &use);         /* another worker or instance was first */
    } else {
        if (rc > 0)
            r->m->calls_new++;
        r->how = ROUTER_HOW_ORIGIN;
        send_route(r, p, &use);
    }
    /* with the entry in hand: a cache-less store's get() would not know it */
    release_held(r, p->key, p->klen, &r->m->orphans_released_origin, &use);
}

/*
 * No origin to wait for any longer (the wait is over, or no room to wait):
 * SIP takes the route of the method its CSeq implies, and that decision is
 * stored for the rest of the call; anything else takes its own match.  The
 * call's other held packets leave with it, in arrival order: before it when
 * they are older (held_are_older), after it otherwise.
 */
static void fallback(struct router *r, const struct packet *p, bool held_are_older)
{
    struct store_entry use;
    r->m->calls_fallback++;
    if (!p->is_sip) {
        send_route(r, p, NULL);
        return;
    }
    size_t mlen;
    const char *method = router_fallback_method(p->sip.cseq_method_name.ptr,
                                                p->sip.cseq_method_name.len, &mlen);
    store_call(r, p, method, mlen, STORE_F_FALLBACK, &use);
    enum router_how how = r->how;
    if (held_are_older)
        release_held(r, p->key, p->klen, &r->m->orphans_released_fallback, &use);
    r->how = how;
    send_route(r, p, &use);
    if (!held_are_older)
        release_held(r, p->key, p->klen, &r->m->orphans_released_fallback, &use);
}

/*
 * A held call's recheck is due (hold.h): another worker, or another
 * instance sharing the store, may have stored its origin meanwhile.
 */
static void on_recheck(void *arg, const char *key, size_t klen)
{
    struct router *r = arg;
    struct store_entry e;
    if (store_get(r->store, key, klen, r->now_ms, &e))
        release_held(r, key, klen, &r->m->orphans_released_origin, &e);
    else if (store_is_shared(r->store))
        store_query(r->store, key, klen, r->now_ms);
}

/* Routes a classified packet with a call key. */
static void decide(struct router *r, struct packet *p)
{
    struct store_entry e;
    if (!hold_has(r->hold, p->key, p->klen)) {
        /* the usual case: nothing of the call waits; look it up and touch it at once */
        struct touching tc = { r, p };
        if (store_follow_hinted(r->store, p->key, p->klen, &p->hint, r->now_ms, &e, touch, &tc)) {
            r->how = ROUTER_HOW_KNOWN;
            r->m->calls_followed++;
            send_route(r, p, &e);
            return;
        }
    } else if (store_get(r->store, p->key, p->klen, r->now_ms, &e)) {
        /* the origin reached the store through another worker: older packets first */
        release_held(r, p->key, p->klen, &r->m->orphans_released_origin, &e);
        r->how = ROUTER_HOW_KNOWN;
        follow(r, p, &e);
        return;
    }
    if (is_origin(p)) {
        originate(r, p);
        return;
    }
    if (r->conf->orphans_wait_ms > 0) {
        bool first = !hold_has(r->hold, p->key, p->klen);
        if (hold_add(r->hold, p->key, p->klen, p->view.raw.data, p->view.raw.len, r->now_ms) == 0) {
            r->m->orphans_held++;
            if (first && store_is_shared(r->store))
                store_query(r->store, p->key, p->klen, r->now_ms);
            if (telling(r))
                explain(r, p, ROUTER_HOW_HELD, HEP_OK, p->received_wall_ms);
            return;
        }
        r->m->orphans_queue_full++;
    }
    r->how = ROUTER_HOW_FALLBACK;
    fallback(r, p, true);
}

/*
 * A received packet's first half: counted, decoded, admitted, scanned,
 * and what its routing will read (its call's slot in the store, its
 * dedup buckets) set on its way into the cache.  Changes nothing a later
 * packet's first half reads, so router_packets() runs it one packet ahead
 * of the second half.  False: dropped (p->dropped says why).
 */
static bool packet_begin(struct router *r, struct packet *p, const uint8_t *data, size_t len)
{
    r->m->packets_in++;
    r->m->bytes_in += len;
    if (!classify(r, p, data, len, r->wall_ms, true))
        return false;
    if (r->dedup != NULL && r->conf->dedup_any) {
        hash_local(r, p, &p->copy_hash);    /* the window's buckets arrive while the call is looked up */
        p->copy_hashed = true;
    }
    return true;
}

/* The second half: decided and sent, or its drop told; in the order the packets came. */
static void packet_finish(struct router *r, struct packet *p, bool classified)
{
    if (!classified) {
        if (p->drop_told)
            explain(r, p->dropped == ROUTER_HOW_DECODE_ERROR ? NULL : p, p->dropped, p->drop_error,
                    p->received_wall_ms);
        return;
    }
    if (p->key == NULL) {
        r->m->uncorrelated++;
        r->how = ROUTER_HOW_NO_KEY;
        send_route(r, p, NULL);
    } else {
        decide(r, p);
    }
    packet_done(r, p);
}

void router_packet(struct router *r, const uint8_t *data, size_t len, uint64_t now_ms, uint64_t wall_ms)
{
    struct router_in in = { data, len, NULL };
    router_packets(r, &in, 1, now_ms, wall_ms);
}

void router_packets(struct router *r, const struct router_in *in, size_t n, uint64_t now_ms, uint64_t wall_ms)
{
    struct packet p[2];
    bool classified[2] = { false, false };
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    for (size_t i = 0; i <= n; i++) {
        if (i < n) {
            r->source = in[i].source;
            classified[i % 2] = packet_begin(r, &p[i % 2], in[i].data, in[i].len);
        }
        if (i > 0) {
            r->source = in[i - 1].source;
            packet_finish(r, &p[(i - 1) % 2], classified[(i - 1) % 2]);
        }
    }
    r->source = NULL;
}

/* ---- held packets ---- */

/* The wall-clock time of a held packet's arrival. */
static uint64_t received_wall_ms(const struct router *r, uint64_t held_since_ms)
{
    uint64_t waited = r->now_ms > held_since_ms ? r->now_ms - held_since_ms : 0;
    return r->wall_ms - waited;
}

/*
 * Which counter on_release_known() bumps (released by origin or by
 * fallback), and the call's entry when the caller has it in hand (a shared
 * store's answer, which a cache-less store cannot give back by get()).
 */
struct release_ctx {
    struct router *r;
    uint64_t *counter;
    const struct store_entry *known;
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
    r->how = ctx->counter == &r->m->orphans_released_origin ? ROUTER_HOW_HELD_ORIGIN : ROUTER_HOW_HELD_FALLBACK;
    if (classify(r, &p, pkt, len, received_wall_ms(r, held_since_ms), false) && p.key != NULL) {
        if (ctx->known != NULL)
            follow(r, &p, ctx->known);
        else if (store_get(r->store, p.key, p.klen, r->now_ms, &e))
            follow(r, &p, &e);
        else
            fallback(r, &p, false);     /* the entry vanished (store full): still deliver */
    }
    packet_done(r, &p);
    r->dispatch.flush(r->dispatch.arg);
}

/* Sends every packet held under key, oldest first, as packets of a known call. */
static void release_held(struct router *r, const char *key, size_t klen, uint64_t *counter,
                         const struct store_entry *known)
{
    struct release_ctx ctx = { r, counter, known };
    enum router_how how = r->how;
    if (hold_has(r->hold, key, klen))
        hold_take(r->hold, key, klen, on_release_known, &ctx);
    r->how = how;
}

/*
 * A shared store answered a query: a known call releases what waited for
 * it.  Answers come from the store's own I/O, between packets, with the
 * clocks the store read.
 */
static void on_store_answer(void *arg, const char *key, size_t klen, const struct store_entry *e,
                            uint64_t now_ms, uint64_t wall_ms)
{
    struct router *r = arg;
    if (e == NULL || !hold_has(r->hold, key, klen))
        return;
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    release_held(r, key, klen, &r->m->orphans_released_origin, e);
}

/* Copies of the packets held for one call, taken out of the hold queue. */
struct held_group {
    struct router *r;
    uint8_t **data;
    size_t *len;
    uint64_t *since;
    size_t n;
    size_t cap;
};

/* Out of memory while grouping: the packet goes out now, by its own match. */
static void send_ungrouped(struct router *r, const uint8_t *pkt, size_t len, uint64_t held_since_ms)
{
    struct packet p;
    if (classify(r, &p, pkt, len, received_wall_ms(r, held_since_ms), false))
        send_route(r, &p, NULL);
    packet_done(r, &p);
    r->dispatch.flush(r->dispatch.arg);
}

static void on_collect(void *arg, const char *key, size_t klen, const uint8_t *pkt, size_t len,
                       uint64_t held_since_ms)
{
    struct held_group *g = arg;
    (void)key;
    (void)klen;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 4;
        uint8_t **d = realloc(g->data, cap * sizeof *d);
        if (d != NULL)
            g->data = d;
        size_t *l = realloc(g->len, cap * sizeof *l);
        if (l != NULL)
            g->len = l;
        uint64_t *t = realloc(g->since, cap * sizeof *t);
        if (t != NULL)
            g->since = t;
        if (d == NULL || l == NULL || t == NULL) {
            send_ungrouped(g->r, pkt, len, held_since_ms);
            return;
        }
        g->cap = cap;
    }
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        send_ungrouped(g->r, pkt, len, held_since_ms);
        return;
    }
    memcpy(copy, pkt, len);
    g->data[g->n] = copy;
    g->len[g->n] = len;
    g->since[g->n] = held_since_ms;
    g->n++;
}

/*
 * A non-SIP packet (RTCP, log) whose wait is over while SIP packets of its
 * call still wait behind it: the first of those decides for the whole
 * group, so the call does not split across back-ends.
 */
static void expire_group(struct router *r, const struct packet *first)
{
    struct held_group g = { r, NULL, NULL, NULL, 0, 0 };
    size_t taken = hold_take(r->hold, first->key, first->klen, on_collect, &g);
    struct store_entry use;
    bool decided = false;
    struct packet p;

    r->m->orphans_released_fallback += taken;
    for (size_t i = 0; i < g.n && !decided; i++) {
        if (classify(r, &p, g.data[i], g.len[i], received_wall_ms(r, g.since[i]), false) && p.is_sip) {
            size_t mlen;
            const char *method = router_fallback_method(p.sip.cseq_method_name.ptr,
                                                        p.sip.cseq_method_name.len, &mlen);
            r->m->calls_fallback++;
            store_call(r, &p, method, mlen, STORE_F_FALLBACK, &use);
            decided = true;
        }
        packet_done(r, &p);
    }
    if (decided)
        follow(r, first, &use);
    else
        send_route(r, first, NULL);
    for (size_t i = 0; i < g.n; i++) {
        if (classify(r, &p, g.data[i], g.len[i], received_wall_ms(r, g.since[i]), false)) {
            if (decided)
                follow(r, &p, &use);
            else
                send_route(r, &p, NULL);
        }
        packet_done(r, &p);
        r->dispatch.flush(r->dispatch.arg);
        free(g.data[i]);
    }
    free(g.data);
    free(g.len);
    free(g.since);
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
        r->how = ROUTER_HOW_HELD_FALLBACK;
        if (store_get(r->store, p.key, p.klen, r->now_ms, &e)) {
            r->m->orphans_released_origin++;
            r->how = ROUTER_HOW_HELD_ORIGIN;
            follow(r, &p, &e);
            release_held(r, p.key, p.klen, &r->m->orphans_released_origin, &e);
        } else if (!p.is_sip && hold_has(r->hold, p.key, p.klen)) {
            r->m->orphans_released_fallback++;
            expire_group(r, &p);
        } else {
            r->m->orphans_released_fallback++;
            fallback(r, &p, false);
        }
    }
    packet_done(r, &p);
    r->dispatch.flush(r->dispatch.arg);
}

void router_logs(struct router *r, uint64_t now_ms)
{
    log_tally_tick(&r->decode_tally, r->conf->log_interval_ms, now_ms, LOG_LEVEL_WARN, ROUTER_DECODE_TALLY);
}

void router_timer(struct router *r, uint64_t now_ms, uint64_t wall_ms)
{
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    hold_recheck(r->hold, now_ms, on_recheck, r);
    hold_expire(r->hold, now_ms, on_release_expired, r);
}

void router_drain(struct router *r, uint64_t now_ms, uint64_t wall_ms)
{
    r->now_ms = now_ms;
    r->wall_ms = wall_ms;
    hold_flush(r->hold, on_release_expired, r);
}
