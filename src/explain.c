/*
 * explain.c - heprouter --explain (see explain.h).
 */
#include "explain.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture.h"
#include "clock.h"
#include "conf.h"
#include "control.h"
#include "hep.h"
#include "metrics.h"
#include "policy.h"
#include "router.h"
#include "store/store.h"

#define EXPLAIN_TIME_MAX 32         /* "2026-12-06 12:00:00.123" */
#define EXPLAIN_ADDR_MAX (INET6_ADDRSTRLEN + 8)
#define EXPLAIN_LINE_MAX 160        /* the first line shown, at most */
#define EXPLAIN_RULE_MAX (PATH_MAX + 48)
#define EXPLAIN_V3 3

struct explain_run {
    const struct explain_options *o;
    const struct conf *conf;
    FILE *out;
    uint64_t *route_packets;        /* per route, then the default */
    uint64_t *dest_packets;
    uint64_t how[ROUTER_HOW_COUNT];
    uint64_t discarded;
};

static void format_time(uint64_t wall_ms, char *out, size_t len)
{
    time_t s = (time_t)(wall_ms / CLOCK_MS_PER_S);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, len, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03u", (unsigned)(wall_ms % CLOCK_MS_PER_S));
}

/* "10.0.0.1:5060", "[2001:db8::1]:5060", or "?" */
static void format_addr(const struct hep_view *v, const uint8_t *ip, unsigned port, char *out, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    int af = v->family == HEP_AF_INET6 ? AF_INET6 : AF_INET;
    if (ip == NULL || inet_ntop(af, ip, a, sizeof a) == NULL)
        snprintf(out, len, "?");
    else
        snprintf(out, len, af == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
}

/* The SIP start line without its version ("INVITE sip:bob@b", "407 Proxy Authentication Required"). */
static void format_first_line(const struct router_explain *e, char *out, size_t len)
{
    if (e->sip == NULL && e->view != NULL)
        snprintf(out, len, "HEP protocol %u", (unsigned)e->view->proto_type);
    else if (e->sip == NULL)
        snprintf(out, len, "-");
    else if (sip_is_reply(e->sip))
        snprintf(out, len, "%u %.*s", e->sip->status, (int)e->sip->reason.len, e->sip->reason.ptr);
    else
        snprintf(out, len, "%.*s %.*s", (int)e->sip->method_name.len, e->sip->method_name.ptr,
                 (int)e->sip->uri.len, e->sip->uri.ptr);
}

/* "route calls (FILE:LINE:COL)", "default", or "" when not routed. */
static void format_rule(const struct explain_run *x, long route, char *out, size_t len)
{
    if (route == ROUTER_NO_ROUTE)
        snprintf(out, len, "-");
    else if (route == POLICY_DEFAULT)
        snprintf(out, len, "default");
    else
        snprintf(out, len, "%s (%s:%zu:%zu)", x->conf->routes[route].name, x->conf->path,
                 x->conf->routes[route].line, x->conf->routes[route].col);
}

/* What destination di does to the packet on its way out ("" when nothing). */
static const char *dest_change(const struct explain_run *x, size_t di, const struct hep_view *v, char *buf,
                               size_t len)
{
    const struct conf_dest *d = &x->conf->dests[di];
    size_t n = 0;
    buf[0] = '\0';
    if (v->version < EXPLAIN_V3 && conf_dest_emits_v3(d))
        n += (size_t)snprintf(buf + n, len - n, "%sconverted to HEPv3", n > 0 ? ", " : "");
    if (d->set_capture_id && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%scapture id %" PRIu32, n > 0 ? ", " : "", d->capture_id);
    if ((d->node_name != NULL || d->auth_key != NULL || d->strip_auth_key) && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%schunks rewritten", n > 0 ? ", " : "");
    if (d->max_packet > 0 && v->raw.len > d->max_packet && n < len)
        snprintf(buf + n, len - n, "%sabove max_packet: not sent", n > 0 ? ", " : "");
    return buf;
}

static bool wanted(const struct explain_run *x, const struct router_explain *e)
{
    if (x->o->call_id == NULL)
        return true;
    size_t n = strlen(x->o->call_id);
    return e->sip != NULL && e->sip->call_id.len == n && memcmp(e->sip->call_id.ptr, x->o->call_id, n) == 0;
}

static void json_field(FILE *out, const char *key, const char *value, bool first)
{
    fprintf(out, "%s\"%s\":", first ? "" : ",", key);
    control_json_string(out, value, strlen(value));
}

static void print_json(struct explain_run *x, const struct router_explain *e, const char *t, const char *src,
                       const char *dst, const char *first_line, const char *rule)
{
    FILE *out = x->out;
    char change[EXPLAIN_LINE_MAX];
    fputc('{', out);
    json_field(out, "time", t, true);
    json_field(out, "src", src, false);
    json_field(out, "dst", dst, false);
    fputs(",\"call_id\":", out);
    if (e->sip != NULL)
        control_json_string(out, e->sip->call_id.ptr, e->sip->call_id.len);
    else if (e->key != NULL)
        control_json_string(out, e->key, e->klen);
    else
        fputs("null", out);
    json_field(out, "first_line", first_line, false);
    json_field(out, "how", router_how_name(e->how), false);
    fprintf(out, ",\"correlation_id\":%s", e->sip == NULL && e->key != NULL ? "true" : "false");
    json_field(out, "rule", rule, false);
    if (e->how == ROUTER_HOW_DECODE_ERROR)
        json_field(out, "error", hep_strerror(e->hep_error), false);
    fputs(",\"to\":[", out);
    for (size_t i = 0; i < e->nto; i++) {
        fprintf(out, "%s{", i > 0 ? "," : "");
        json_field(out, "destination", x->conf->dests[e->to[i]].name, true);
        json_field(out, "changes", dest_change(x, e->to[i], e->view, change, sizeof change), false);
        fputc('}', out);
    }
    fputs("]}\n", out);
}

static void print_text(struct explain_run *x, const struct router_explain *e, const char *t, const char *src,
                       const char *dst, const char *first_line, const char *rule)
{
    FILE *out = x->out;
    char change[EXPLAIN_LINE_MAX];
    fprintf(out, "%s %s -> %s ", t, src, dst);
    if (e->sip != NULL)
        fprintf(out, "%.*s", (int)e->sip->call_id.len, e->sip->call_id.ptr);
    else if (e->key != NULL)
        fprintf(out, "%.*s", (int)e->klen, e->key);
    else
        fputs("-", out);
    fprintf(out, " \"%s\" | %s%s", first_line, router_how_name(e->how),
            e->sip == NULL && e->key != NULL ? " (correlation id)" : "");
    if (e->how == ROUTER_HOW_DECODE_ERROR) {
        fprintf(out, ": %s | not routed\n", hep_strerror(e->hep_error));
        return;
    }
    if (e->how == ROUTER_HOW_HELD) {
        fprintf(out, " for its origin (orphans.wait_ms)\n");
        return;
    }
    fprintf(out, " | %s | ", rule);
    if (e->nto == 0)
        fputs(e->route == POLICY_DEFAULT ? "discarded (default lists no destination)\n" : "discarded (drop)\n", out);
    for (size_t i = 0; i < e->nto; i++) {
        dest_change(x, e->to[i], e->view, change, sizeof change);
        fprintf(out, "%s%s%s%s%s", i > 0 ? ", " : "-> ", x->conf->dests[e->to[i]].name,
                change[0] != '\0' ? " (" : "", change, change[0] != '\0' ? ")" : "");
    }
    if (e->nto > 0)
        fputc('\n', out);
}

static void on_explain(void *arg, const struct router_explain *e)
{
    struct explain_run *x = arg;
    if (e->how != ROUTER_HOW_HELD) {
        x->how[e->how]++;
        if (e->route != ROUTER_NO_ROUTE)
            x->route_packets[e->route == POLICY_DEFAULT ? x->conf->nroutes : (size_t)e->route]++;
        for (size_t i = 0; i < e->nto; i++)
            x->dest_packets[e->to[i]]++;
        if (e->route != ROUTER_NO_ROUTE && e->nto == 0)
            x->discarded++;
    }
    if (!wanted(x, e))
        return;
    char t[EXPLAIN_TIME_MAX], src[EXPLAIN_ADDR_MAX] = "?", dst[EXPLAIN_ADDR_MAX] = "?";
    char first_line[EXPLAIN_LINE_MAX], rule[EXPLAIN_RULE_MAX];
    format_time(e->received_wall_ms, t, sizeof t);
    if (e->view != NULL) {
        format_addr(e->view, e->view->src_ip, e->view->src_port, src, sizeof src);
        format_addr(e->view, e->view->dst_ip, e->view->dst_port, dst, sizeof dst);
    }
    format_first_line(e, first_line, sizeof first_line);
    format_rule(x, e->route, rule, sizeof rule);
    if (x->o->json)
        print_json(x, e, t, src, dst, first_line, rule);
    else
        print_text(x, e, t, src, dst, first_line, rule);
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
    struct router_dispatch d = { .send = no_send, .flush = no_flush, .explain = on_explain, .explain_arg = &x };
    struct router *r = NULL;
    int rc = 1;
    if (x.route_packets == NULL || x.dest_packets == NULL || store == NULL || metrics_init(&m, conf) != 0 ||
        (r = router_new(conf, store, &m, &d)) == NULL) {
        fprintf(err, "heprouter: out of memory\n");
        goto out;
    }
    /* the capture's clock: time never runs backwards, and held packets leave when it says */
    uint64_t now = 0;
    struct capture_packet p;
    int got;
    while ((got = capture_next(cap, &p)) > 0) {
        uint64_t t = (uint64_t)p.ts.tv_sec * CLOCK_MS_PER_S + (uint64_t)p.ts.tv_nsec / CLOCK_NS_PER_MS;
        if (t > now)
            now = t;
        router_timer(r, now, now);
        router_packet(r, p.data, p.len, now, now);
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
    if (store != NULL)
        store_free(store);
    metrics_free(&m);
    free(x.route_packets);
    free(x.dest_packets);
    capture_close(cap);
    conf_free(conf);
    return rc;
}
