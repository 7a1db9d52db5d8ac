/*
 * decision.c - a routing decision as a line (see decision.h).
 */
#include "decision.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
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

/* The facts of one decision as text, shared by both forms. */
struct decision_text {
    char time[DECISION_TIME_MAX];
    char src[DECISION_ADDR_MAX];
    char dst[DECISION_ADDR_MAX];
    char first_line[DECISION_LINE_MAX];
    char rule[DECISION_RULE_MAX];
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

/* "route calls (FILE:LINE:COL)", "default", or "-" when not routed. */
static void format_rule(const struct conf *conf, long route, char *out, size_t len)
{
    if (route == ROUTER_NO_ROUTE)
        snprintf(out, len, "-");
    else if (route == POLICY_DEFAULT)
        snprintf(out, len, "default");
    else
        snprintf(out, len, "%s (%s:%zu:%zu)", conf->routes[route].name, conf->path, conf->routes[route].line,
                 conf->routes[route].col);
}

static void format_all(const struct conf *conf, const struct router_explain *e, struct decision_text *t)
{
    format_time(e->received_wall_ms, t->time, sizeof t->time);
    snprintf(t->src, sizeof t->src, "?");
    snprintf(t->dst, sizeof t->dst, "?");
    if (e->view != NULL) {
        format_addr(e->view, e->view->src_ip, e->view->src_port, t->src, sizeof t->src);
        format_addr(e->view, e->view->dst_ip, e->view->dst_port, t->dst, sizeof t->dst);
    }
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
    fputs(",\"to\":[", out);
    for (size_t i = 0; i < e->nto; i++) {
        fprintf(out, "%s{", i > 0 ? "," : "");
        json_field(out, "destination", conf->dests[e->to[i]].name, true);
        json_field(out, "changes", dest_change(conf, e, i, change, sizeof change), false);
        fputc('}', out);
    }
    fputs("]}\n", out);
}

static void print_text(FILE *out, const struct conf *conf, const struct router_explain *e,
                       const struct decision_text *t)
{
    char change[DECISION_LINE_MAX];
    fprintf(out, "%s %s -> %s ", t->time, t->src, t->dst);
    if (e->sip != NULL)
        fprintf(out, "%.*s", (int)e->sip->call_id.len, e->sip->call_id.ptr);
    else if (e->key != NULL)
        fprintf(out, "%.*s", (int)e->klen, e->key);
    else
        fputs("-", out);
    fprintf(out, " \"%s\" | %s%s", t->first_line, router_how_name(e->how),
            e->sip == NULL && e->key != NULL ? " (correlation id)" : "");
    const char *why = not_routed_why(e);
    if (why != NULL) {
        fprintf(out, ": %s | not routed\n", why);
        return;
    }
    if (e->how == ROUTER_HOW_HELD) {
        fprintf(out, " for its origin (orphans.wait_ms)\n");
        return;
    }
    fprintf(out, " | %s | ", t->rule);
    if (e->nto == 0)
        fputs(e->route == POLICY_DEFAULT ? "discarded (default lists no destination)\n" : "discarded (drop)\n", out);
    for (size_t i = 0; i < e->nto; i++) {
        dest_change(conf, e, i, change, sizeof change);
        fprintf(out, "%s%s%s%s%s", i > 0 ? ", " : "-> ", conf->dests[e->to[i]].name,
                change[0] != '\0' ? " (" : "", change, change[0] != '\0' ? ")" : "");
    }
    if (e->nto > 0)
        fputc('\n', out);
}

void decision_print(FILE *out, const struct conf *conf, const struct router_explain *e, bool json)
{
    struct decision_text t;
    format_all(conf, e, &t);
    if (json)
        print_json(out, conf, e, &t);
    else
        print_text(out, conf, e, &t);
}

bool decision_of_call(const struct router_explain *e, const char *call_id, size_t len)
{
    if (e->sip != NULL)
        return e->sip->call_id.len == len && memcmp(e->sip->call_id.ptr, call_id, len) == 0;
    return e->key != NULL && e->klen == len && memcmp(e->key, call_id, len) == 0;
}
