/*
 * decision.c - a routing decision as a line (see decision.h).
 */
#include "decision.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "clock.h"
#include "conf.h"
#include "control.h"
#include "hep.h"
#include "policy.h"

#define DECISION_TIME_MAX 32        /* "2026-12-06 12:00:00.123" */
#define DECISION_ADDR_MAX (INET6_ADDRSTRLEN + 8)
#define DECISION_LINE_MAX 160       /* the first line shown, at most */
#define DECISION_RULE_MAX (PATH_MAX + 48)
#define DECISION_V3 3
#define DECISION_DIGITS_MAX 20      /* a uint64_t in decimal */
#define DECISION_MS_DIGITS 3

/* The facts of one decision as text, shared by both forms. */
struct decision_text {
    char time[DECISION_TIME_MAX];
    char src[DECISION_ADDR_MAX];
    char dst[DECISION_ADDR_MAX];
    char first_line[DECISION_LINE_MAX];
    char rule[DECISION_RULE_MAX];
};

/*
 * A fixed buffer written from its start, cut (never overrun) when full: the
 * parts of a line, formatted by hand.  A live tap formats a line per
 * decision it streams, so this is kept well below the cost of routing the
 * packet (snprintf() and inet_ntop() cost several times more).
 */
struct text {
    char *p;
    size_t len, cap;                /* cap includes the NUL */
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->len + 1 >= t->cap)
        return;
    if (n > t->cap - 1 - t->len)
        n = t->cap - 1 - t->len;
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void put_str(struct text *t, const char *s)
{
    put(t, s, strlen(s));
}

/* v in decimal, at least width digits (zeros before). */
static void put_uint(struct text *t, uint64_t v, unsigned width)
{
    char d[DECISION_DIGITS_MAX];
    size_t n = 0;
    do {
        d[sizeof d - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while ((v > 0 || n < width) && n < sizeof d);
    put(t, d + sizeof d - n, n);
}

static struct text text_on(char *buf, size_t cap)
{
    buf[0] = '\0';
    return (struct text){ buf, 0, cap };
}

/* "2026-12-06 12:00:00.123" (UTC); the seconds are formatted once per second and thread. */
static void format_time(uint64_t wall_ms, char *out, size_t len)
{
    static _Thread_local struct {
        time_t sec;
        char text[DECISION_TIME_MAX];
    } last = { (time_t)-1, "" };
    time_t s = (time_t)(wall_ms / CLOCK_MS_PER_S);
    if (s != last.sec) {
        struct tm tm;
        gmtime_r(&s, &tm);
        if (strftime(last.text, sizeof last.text, "%Y-%m-%d %H:%M:%S", &tm) == 0)
            last.text[0] = '\0';
        last.sec = s;
    }
    struct text t = text_on(out, len);
    put_str(&t, last.text);
    put(&t, ".", 1);
    put_uint(&t, wall_ms % CLOCK_MS_PER_S, DECISION_MS_DIGITS);
}

/* "10.0.0.1:5060", "[2001:db8::1]:5060", or "?" */
static void format_addr(const struct hep_view *v, const uint8_t *ip, unsigned port, char *out, size_t len)
{
    struct text t = text_on(out, len);
    char a[INET6_ADDRSTRLEN];
    if (ip == NULL) {
        put(&t, "?", 1);
    } else if (v->family != HEP_AF_INET6) {
        for (int i = 0; i < 4; i++) {
            if (i > 0)
                put(&t, ".", 1);
            put_uint(&t, ip[i], 1);
        }
        put(&t, ":", 1);
        put_uint(&t, port, 1);
    } else if (inet_ntop(AF_INET6, ip, a, sizeof a) == NULL) {
        put(&t, "?", 1);
    } else {
        put(&t, "[", 1);
        put_str(&t, a);
        put(&t, "]:", 2);
        put_uint(&t, port, 1);
    }
}

/* The SIP start line without its version ("INVITE sip:bob@b", "407 Proxy Authentication Required"). */
static void format_first_line(const struct router_explain *e, char *out, size_t len)
{
    struct text t = text_on(out, len);
    if (e->sip == NULL && e->view != NULL) {
        put_str(&t, "HEP protocol ");
        put_uint(&t, e->view->proto_type, 1);
    } else if (e->sip == NULL) {
        put(&t, "-", 1);
    } else if (sip_is_reply(e->sip)) {
        put_uint(&t, e->sip->status, 1);
        put(&t, " ", 1);
        put(&t, e->sip->reason.ptr, e->sip->reason.len);
    } else {
        put(&t, e->sip->method_name.ptr, e->sip->method_name.len);
        put(&t, " ", 1);
        put(&t, e->sip->uri.ptr, e->sip->uri.len);
    }
}

/* "calls (FILE:LINE:COL)", "default", or "-" when not routed. */
static void format_rule(const struct conf *conf, long route, char *out, size_t len)
{
    struct text t = text_on(out, len);
    if (route == ROUTER_NO_ROUTE) {
        put(&t, "-", 1);
    } else if (route == POLICY_DEFAULT) {
        put_str(&t, "default");
    } else {
        put_str(&t, conf->routes[route].name);
        put(&t, " (", 2);
        put_str(&t, conf->path);
        put(&t, ":", 1);
        put_uint(&t, conf->routes[route].line, 1);
        put(&t, ":", 1);
        put_uint(&t, conf->routes[route].col, 1);
        put(&t, ")", 1);
    }
}

static void format_all(const struct conf *conf, const struct router_explain *e, struct decision_text *t)
{
    format_time(e->received_wall_ms, t->time, sizeof t->time);
    format_addr(e->view, e->view != NULL ? e->view->src_ip : NULL, e->view != NULL ? e->view->src_port : 0,
                t->src, sizeof t->src);
    format_addr(e->view, e->view != NULL ? e->view->dst_ip : NULL, e->view != NULL ? e->view->dst_port : 0,
                t->dst, sizeof t->dst);
    format_first_line(e, t->first_line, sizeof t->first_line);
    format_rule(conf, e->route, t->rule, sizeof t->rule);
}

/* What the i-th destination does to the packet on its way out ("" when nothing). */
static const char *dest_change(const struct conf *conf, const struct router_explain *e, size_t i, char *buf,
                               size_t len)
{
    const struct conf_dest *d = &conf->dests[e->to[i]];
    const struct hep_view *v = e->view;
    size_t n = 0;
    buf[0] = '\0';
    if (i < sizeof e->deduplicated * CHAR_BIT && ((e->deduplicated >> i) & 1u)) {
        snprintf(buf, len, "a copy went there within dedup.window_ms: not sent");
        return buf;
    }
    if (i < sizeof e->over_rate * CHAR_BIT && ((e->over_rate >> i) & 1u)) {
        snprintf(buf, len, "the call started over max_new_calls_per_s: not sent");
        return buf;
    }
    if (v->version < DECISION_V3 && conf_dest_emits_v3(d))
        n += (size_t)snprintf(buf + n, len - n, "%sconverted to HEPv3", n > 0 ? ", " : "");
    if (d->set_capture_id && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%scapture id %" PRIu32, n > 0 ? ", " : "", d->capture_id);
    if ((d->node_name != NULL || d->auth_key != NULL || d->strip_auth_key) && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%schunks rewritten", n > 0 ? ", " : "");
    if (d->max_packet > 0 && v->raw.len > d->max_packet && n < len)
        snprintf(buf + n, len - n, "%sabove max_packet: not sent", n > 0 ? ", " : "");
    return buf;
}

/* Why a packet was not routed at all, or NULL. */
static const char *not_routed_why(const struct router_explain *e)
{
    if (e->how == ROUTER_HOW_DECODE_ERROR)
        return hep_strerror(e->hep_error);
    if (e->how == ROUTER_HOW_REFUSED)
        return admission_verdict_name(e->refused);
    return NULL;
}

static void json_field(FILE *out, const char *key, const char *value, bool first)
{
    fprintf(out, "%s\"%s\":", first ? "" : ",", key);
    control_json_string(out, value, strlen(value));
}

static void print_json(FILE *out, const struct conf *conf, const struct router_explain *e,
                       const struct decision_text *t)
{
    char change[DECISION_LINE_MAX];
    fputc('{', out);
    json_field(out, "time", t->time, true);
    json_field(out, "src", t->src, false);
    json_field(out, "dst", t->dst, false);
    fputs(",\"call_id\":", out);
    if (e->sip != NULL)
        control_json_string(out, e->sip->call_id.ptr, e->sip->call_id.len);
    else if (e->key != NULL)
        control_json_string(out, e->key, e->klen);
    else
        fputs("null", out);
    json_field(out, "first_line", t->first_line, false);
    json_field(out, "how", router_how_name(e->how), false);
    fprintf(out, ",\"correlation_id\":%s", e->sip == NULL && e->key != NULL ? "true" : "false");
    json_field(out, "rule", t->rule, false);
    const char *why = not_routed_why(e);
    if (why != NULL)
        json_field(out, "error", why, false);
    if (e->sender != NULL)
        json_field(out, "sender", e->sender, false);
    fputs(",\"to\":[", out);
    for (size_t i = 0; i < e->nto; i++) {
        fprintf(out, "%s{", i > 0 ? "," : "");
        json_field(out, "destination", conf->dests[e->to[i]].name, true);
        json_field(out, "changes", dest_change(conf, e, i, change, sizeof change), false);
        fputc('}', out);
    }
    fputs("]}\n", out);
}

/* The text line into t: the parts put one after the other, no format strings. */
static void put_text(struct text *t, const struct conf *conf, const struct router_explain *e,
                     const struct decision_text *d)
{
    char change[DECISION_LINE_MAX];
    put_str(t, d->time);
    put(t, " ", 1);
    put_str(t, d->src);
    put(t, " -> ", 4);
    put_str(t, d->dst);
    put(t, " ", 1);
    if (e->sip != NULL)
        put(t, e->sip->call_id.ptr, e->sip->call_id.len);
    else if (e->key != NULL)
        put(t, e->key, e->klen);
    else
        put(t, "-", 1);
    put(t, " \"", 2);
    put_str(t, d->first_line);
    put(t, "\" | ", 4);
    put_str(t, router_how_name(e->how));
    if (e->sip == NULL && e->key != NULL)
        put_str(t, " (correlation id)");
    const char *why = not_routed_why(e);
    if (why != NULL) {
        put(t, ": ", 2);
        put_str(t, why);
        if (e->sender != NULL) {
            put_str(t, " (sender ");
            put_str(t, e->sender);
            put(t, ")", 1);
        }
        put_str(t, " | not routed\n");
        return;
    }
    if (e->how == ROUTER_HOW_HELD) {
        put_str(t, " for its origin (orphans.wait_ms)\n");
        return;
    }
    put(t, " | ", 3);
    put_str(t, d->rule);
    put(t, " | ", 3);
    if (e->nto == 0)
        put_str(t, e->route == POLICY_DEFAULT ? "discarded (default lists no destination)\n" : "discarded (drop)\n");
    for (size_t i = 0; i < e->nto; i++) {
        dest_change(conf, e, i, change, sizeof change);
        put_str(t, i > 0 ? ", " : "-> ");
        put_str(t, conf->dests[e->to[i]].name);
        if (change[0] != '\0') {
            put(t, " (", 2);
            put_str(t, change);
            put(t, ")", 1);
        }
    }
    if (e->nto > 0)
        put(t, "\n", 1);
}

size_t decision_text(char *buf, size_t cap, const struct conf *conf, const struct router_explain *e)
{
    struct decision_text d;
    if (cap == 0)
        return 0;
    format_all(conf, e, &d);
    struct text t = text_on(buf, cap);
    put_text(&t, conf, e, &d);
    return t.len + 1 < cap ? t.len : 0;     /* a full buffer may have cut the line */
}

/* The text line to out: formatted on the stack, or in a buffer as long as its parts can make it. */
static void print_text(FILE *out, const struct conf *conf, const struct router_explain *e)
{
    char line[DECISION_TEXT_MAX];
    size_t n = decision_text(line, sizeof line, conf, e);
    if (n > 0) {
        fwrite(line, 1, n, out);
        return;
    }
    size_t cap = sizeof(struct decision_text) + DECISION_TEXT_MAX + (e->sip != NULL ? e->sip->call_id.len : e->klen);
    for (size_t i = 0; i < e->nto; i++)
        cap += strlen(conf->dests[e->to[i]].name) + DECISION_LINE_MAX + sizeof " (), ";
    char *big = malloc(cap);
    if (big == NULL)
        return;
    n = decision_text(big, cap, conf, e);
    fwrite(big, 1, n, out);
    free(big);
}

void decision_print(FILE *out, const struct conf *conf, const struct router_explain *e, bool json)
{
    if (!json) {
        print_text(out, conf, e);
        return;
    }
    struct decision_text t;
    format_all(conf, e, &t);
    print_json(out, conf, e, &t);
}

bool decision_of_call(const struct router_explain *e, const char *call_id, size_t len)
{
    if (e->sip != NULL)
        return e->sip->call_id.len == len && memcmp(e->sip->call_id.ptr, call_id, len) == 0;
    return e->key != NULL && e->klen == len && memcmp(e->key, call_id, len) == 0;
}
