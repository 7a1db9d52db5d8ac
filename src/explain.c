/*
 * explain.c - heprouter --explain (see explain.h).
 */
#include "explain.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "capture.h"
#include "clock.h"
#include "conf.h"
#include "control.h"
#include "decision.h"
#include "dedup.h"
#include "hep.h"
#include "metrics.h"
#include "netaddr.h"
#include "policy.h"
#include "router.h"
#include "store/store.h"

struct explain_run {
    const struct explain_options *o;
    const struct conf *conf;
    FILE *out;
    uint64_t *route_packets;        /* per route, then the default */
    uint64_t *dest_packets;
    uint64_t how[ROUTER_HOW_COUNT];
    uint64_t discarded;
    /* the packet being routed: who sent it, under which sources: rules */
    const struct capture_packet *packet;
    const struct conf_sources *sources;
    bool outside_allow;             /* its sender is not in sources.allow */
};

/*
 * The sources: rules a captured packet met: those of the listener it was
 * sent to (same transport and port, and the listener's address or a
 * wildcard; with no destination in the capture, the first listener of its
 * transport), else the top-level section.  TLS listeners are never
 * matched: a capture shows their streams encrypted.
 */
static const struct conf_sources *packet_sources(const struct conf *conf, const struct capture_packet *p)
{
    enum conf_transport tr = p->transport == CAPTURE_TCP ? CONF_TCP : CONF_UDP;
    const uint8_t *dst = NULL;
    unsigned dst_len = netaddr_bytes((const struct sockaddr *)&p->dst, &dst);
    unsigned dst_port = dst_len > 0 ? netaddr_port((const struct sockaddr *)&p->dst) : 0;
    for (size_t i = 0; i < conf->nlisten; i++) {
        const struct conf_addr *l = &conf->listen[i];
        if (l->transport != tr || l->tls)
            continue;
        if (dst_len > 0) {
            static const uint8_t any[CONF_ADDR_BYTES_MAX];
            bool wildcard = l->addr_len == 0 || memcmp(l->addr, any, l->addr_len) == 0;
            if (l->port != dst_port ||
                !(wildcard || (l->addr_len == dst_len && memcmp(l->addr, dst, dst_len) == 0)))
                continue;
        }
        return conf_listen_sources(conf, i);
    }
    return &conf->sources;
}

/* router_dispatch.source: the captured packet's outer source address. */
static const char *explain_source(void *arg, const void *source, char *buf, size_t len)
{
    const struct explain_run *x = arg;
    (void)source;                   /* router_packet()'s: none */
    return x->packet != NULL ? netaddr_format((const struct sockaddr *)&x->packet->src, buf, len) : NULL;
}

/* router_dispatch.admit: the rules that need the decoded packet, as a listener applies them. */
static int explain_admit(void *arg, const void *source, const struct hep_view *view)
{
    struct explain_run *x = arg;
    (void)source;
    if (x->outside_allow)
        return ADMISSION_NOT_ALLOWED;
    const uint8_t *addr = NULL;
    unsigned len = netaddr_bytes((const struct sockaddr *)&x->packet->src, &addr);
    return (int)admission_check_packet(x->sources, len, addr, view);
}

static void on_explain(void *arg, const struct router_explain *told)
{
    struct explain_run *x = arg;
    struct router_explain refused;
    const struct router_explain *e = told;
    if (told->how == ROUTER_HOW_DECODE_ERROR && x->outside_allow) {
        /* a listener drops a datagram from outside sources.allow before decoding it */
        refused = *told;
        refused.how = ROUTER_HOW_REFUSED;
        refused.hep_error = HEP_OK;
        refused.refused = ADMISSION_NOT_ALLOWED;
        e = &refused;
    }
    if (e->how != ROUTER_HOW_HELD) {
        x->how[e->how]++;
        if (e->route != ROUTER_NO_ROUTE)
            x->route_packets[e->route == POLICY_DEFAULT ? x->conf->nroutes : (size_t)e->route]++;
        for (size_t i = 0; i < e->nto; i++)
            if (i >= sizeof e->deduplicated * CHAR_BIT || !(((e->deduplicated | e->over_rate) >> i) & 1u))
                x->dest_packets[e->to[i]]++;
        if (e->route != ROUTER_NO_ROUTE && e->nto == 0)
            x->discarded++;
    }
    if (x->o->call_id == NULL || decision_of_call(e, x->o->call_id, strlen(x->o->call_id)))
        decision_print(x->out, x->conf, e, x->o->json);
}

/* Nothing leaves: the decisions are what is shown. */
static void no_send(void *arg, size_t di, const struct hep_view *view, const char *key, size_t klen)
{
    (void)arg;
    (void)di;
    (void)view;
    (void)key;
    (void)klen;
}

static void no_flush(void *arg)
{
    (void)arg;
}

/* One count of a summary list: JSON "name":n, or text " name n" (" \"name\" n;" for words). */
static void summary_count(const struct explain_run *x, bool first, const char *name, bool words, uint64_t n)
{
    if (x->o->json) {
        if (!first)
            fputc(',', x->out);
        control_json_string(x->out, name, strlen(name));
        fprintf(x->out, ":%" PRIu64, n);
    } else {
        fprintf(x->out, words ? " \"%s\" %" PRIu64 ";" : " %s %" PRIu64, name, n);
    }
}

static void print_summary(const struct explain_run *x, const struct capture_stats *cs)
{
    FILE *out = x->out;
    bool json = x->o->json;
    if (json)
        fputs("{\"summary\":{\"routes\":{", out);
    else
        fprintf(out, "# summary: %" PRIu64 " packets read from the capture\n# routes:", cs->packets);
    for (size_t i = 0; i <= x->conf->nroutes; i++)
        summary_count(x, i == 0, i < x->conf->nroutes ? x->conf->routes[i].name : "default", false,
                      x->route_packets[i]);
    fputs(json ? "},\"destinations\":{" : "\n# destinations:", out);
    for (size_t i = 0; i < x->conf->ndests; i++)
        summary_count(x, i == 0, x->conf->dests[i].name, false, x->dest_packets[i]);
    fputs(json ? "},\"outcomes\":{" : "\n# outcomes:", out);
    for (int h = 0; h < ROUTER_HOW_COUNT; h++)
        if (h != ROUTER_HOW_HELD)   /* a held packet's outcome is counted when it leaves */
            summary_count(x, h == 0, router_how_name((enum router_how)h), true, x->how[h]);
    if (json)
        fprintf(out, ",\"discarded\":%" PRIu64 "}}}\n", x->discarded);
    else
        fprintf(out, " discarded %" PRIu64 "\n", x->discarded);
    for (int k = 0; k < CAPTURE_SKIP_COUNT && !json; k++)
        if (cs->skipped[k] > 0)
            fprintf(out, "# capture: %" PRIu64 " skipped (%s)\n", cs->skipped[k],
                    capture_skip_name((enum capture_skip)k));
}

int explain_run(const struct explain_options *o, FILE *out, FILE *err)
{
    char why[PATH_MAX + 64];
    struct conf *conf = conf_load(o->conf_path, err);
    if (conf == NULL) {
        fprintf(err, "%s: configuration has errors\n", o->conf_path);
        return 1;
    }
    struct capture *cap = capture_open(o->capture_path, why, sizeof why);
    if (cap == NULL) {
        fprintf(err, "heprouter: %s\n", why);
        conf_free(conf);
        return 1;
    }
    struct explain_run x = { .o = o, .conf = conf, .out = out };
    struct metrics m;
    memset(&m, 0, sizeof m);
    x.route_packets = calloc(conf->nroutes + 1, sizeof *x.route_packets);
    x.dest_packets = calloc(conf->ndests > 0 ? conf->ndests : 1, sizeof *x.dest_packets);
    struct store *store = store_mem_from_conf(conf);     /* the memory store, whatever store: says */
    struct dedup *dedup = dedup_new(conf->dedup_entries, 0);
    struct router_dispatch d = { .send = no_send, .flush = no_flush, .source = explain_source,
                                 .admit = explain_admit, .source_arg = &x,
                                 .explain = on_explain, .explain_arg = &x };
    struct router *r = NULL;
    int rc = 1;
    if (x.route_packets == NULL || x.dest_packets == NULL || store == NULL || dedup == NULL ||
        metrics_init(&m, conf) != 0 || (r = router_new(conf, store, &m, &d)) == NULL) {
        fprintf(err, "heprouter: out of memory\n");
        goto out;
    }
    router_set_dedup(r, dedup);
    /* the capture's clock: time never runs backwards, and held packets leave when it says */
    uint64_t now = 0;
    struct capture_packet p;
    int got;
    while ((got = capture_next(cap, &p)) > 0) {
        uint64_t t = (uint64_t)p.ts.tv_sec * CLOCK_MS_PER_S + (uint64_t)p.ts.tv_nsec / CLOCK_NS_PER_MS;
        if (t > now)
            now = t;
        router_timer(r, now, now);
        const uint8_t *addr = NULL;
        unsigned alen = netaddr_bytes((const struct sockaddr *)&p.src, &addr);
        x.packet = &p;
        x.sources = packet_sources(conf, &p);
        x.outside_allow = !admission_source_allowed(x.sources, alen, addr);
        router_packet(r, p.data, p.len, now, now);
        x.outside_allow = false;
    }
    if (got < 0) {
        fprintf(err, "heprouter: %s: %s\n", o->capture_path, capture_error(cap));
        goto out;
    }
    /* after the last packet, the waits run out as they would have */
    router_timer(r, now + conf->orphans_wait_ms, now + conf->orphans_wait_ms);
    router_drain(r, now + conf->orphans_wait_ms, now + conf->orphans_wait_ms);
    print_summary(&x, capture_stats(cap));
    rc = 0;
out:
    router_free(r);
    dedup_free(dedup);
    if (store != NULL)
        store_free(store);
    metrics_free(&m);
    free(x.route_packets);
    free(x.dest_packets);
    capture_close(cap);
    conf_free(conf);
    return rc;
}
