/*
 * policy.c - first-match route selection over the configured routes.
 */
#include "policy.h"

#include "bytes.h"

#include <string.h>
#include <strings.h>

#include "conf.h"
#include "hash.h"
#include "hep.h"
#include "invariant.h"

void policy_input_from_view(struct policy_input *in, const struct hep_view *v)
{
    in->proto = v->proto_type;
    in->has_capture_id = (v->present & HEP_HAS_CAPTURE_ID) != 0;
    in->capture_id = v->capture_id;
    in->addr_len = v->addr_len;
    in->src = v->src_ip;
    in->dst = v->dst_ip;
    in->origin_known = false;
    in->origin_bits = 0;
    in->in_sample_space = false;
    in->sample_point = 0;
}

static bool method_listed(const struct conf_match *m, const struct policy_input *in)
{
    if (in->method == NULL)
        return false;
    /* the first letters first: most listed methods are told apart there, without a call */
    char first = in->method_len > 0 ? in->method[0] : '\0';
    for (size_t i = 0; i < m->nmethods; i++) {
        const char *name = m->methods[i];
        if (name[0] == first && bytes_same(name, in->method, in->method_len) && name[in->method_len] == '\0')
            return true;
    }
    return false;
}

static bool proto_listed(const struct conf_match *m, unsigned proto)
{
    for (size_t i = 0; i < m->nprotos; i++)
        if (m->protos[i] == proto)
            return true;
    return false;
}

static bool capture_id_listed(const struct conf_match *m, const struct policy_input *in)
{
    if (!in->has_capture_id)
        return false;
    for (size_t i = 0; i < m->ncapture_ids; i++)
        if (m->capture_ids[i] == in->capture_id)
            return true;
    return false;
}

static bool status_listed(const struct conf_match *m, unsigned status)
{
    if (status == 0)
        return false;           /* `status` only ever matches replies */
    for (size_t i = 0; i < m->nstatus; i++)
        if (status >= m->status[i].lo && status <= m->status[i].hi)
            return true;
    return false;
}

static bool route_matches(const struct conf_match *m, const struct policy_input *in)
{
    return (m->nmethods == 0 || method_listed(m, in)) &&
           (m->nprotos == 0 || proto_listed(m, in->proto)) &&
           (m->ncapture_ids == 0 || capture_id_listed(m, in)) &&
           (m->nsrc == 0 || conf_cidr_any(m->src, m->nsrc, in->addr_len, in->src)) &&
           (m->ndst == 0 || conf_cidr_any(m->dst, m->ndst, in->addr_len, in->dst)) &&
           (m->nstatus == 0 || status_listed(m, in->status));
}

/* A route with origin keys matches only a call whose origin matched them; a sampled one, only calls in its sample. */
static bool call_holds(const struct conf_route *r, const struct policy_input *in)
{
    return (!r->origin || (in->origin_known && ((in->origin_bits >> r->origin_bit) & 1u))) &&
           (r->sample == 0 || r->sample >= CONF_MILLION || (in->in_sample_space && in->sample_point < r->sample));
}

/* Fixed: every instance must place a call at the same point. */
static const uint8_t sample_hash_key[HASH_SIPHASH_KEY_BYTES] = "heprouter-sample";

uint32_t policy_sample_point(const char *key, size_t klen)
{
    uint64_t h[2];
    hash_siphash128(sample_hash_key, key, klen, h);
    return (uint32_t)(h[0] % CONF_MILLION);
}

long policy_match(const struct conf *conf, const struct policy_input *in)
{
    bool no_origin = !in->origin_known || in->origin_bits == 0;
    size_t first = 0;
    if (no_origin && conf->nroutes > 0 && conf->routes[0].origin)
        first = conf->routes[0].next_plain;     /* the leading routes with origin keys, in one step */
    for (size_t i = first; i < conf->nroutes; i++) {
        const struct conf_route *r = &conf->routes[i];
        if (r->origin && no_origin && r->next_plain > i) {
            i = r->next_plain - 1;  /* none of the routes with origin keys up to it can match */
            continue;
        }
        if (call_holds(r, in) && route_matches(&r->match, in))
            return (long)i;
    }
    return POLICY_DEFAULT;
}

/*
 * The fields of an origin request the origin keys compare, read once; the
 * header lines too, in one walk, when a route reads them (user_agent,
 * header:): up to POLICY_ORIGIN_HEADERS of them, the rest walked again
 * only if a header key is still unanswered.
 */
#define POLICY_ORIGIN_HEADERS 64

struct origin_header {
    struct sip_str name, value;
};

struct origin_fields {
    struct sip_str ruri_user, ruri_domain, from_user, from_domain, to_user, to_domain, user_agent;
    const struct sip_byte_set *wanted;      /* first bytes of the header names read (conf) */
    bool headers_read;
    bool headers_cut;               /* more than POLICY_ORIGIN_HEADERS */
    size_t nheaders;
    struct origin_header headers[POLICY_ORIGIN_HEADERS];
};

static bool header_named(const struct sip_str *name, const char *want, size_t wlen)
{
    return name->len == wlen && strncasecmp(name->ptr, want, wlen) == 0;
}

static void read_headers(const struct policy_origin *o, struct origin_fields *f)
{
    size_t pos = 0;
    struct sip_str name, value;
    bool ua = false;
    f->headers_read = true;
    while (sip_header_next_among(o->sip, o->sip_len, &pos, f->wanted, &name, &value)) {
        if (!ua && header_named(&name, SIP_HEADER_USER_AGENT, sizeof SIP_HEADER_USER_AGENT - 1)) {
            f->user_agent = value;
            ua = true;
        }
        if (f->nheaders == POLICY_ORIGIN_HEADERS) {
            f->headers_cut = true;
            if (ua)
                break;
            continue;
        }
        f->headers[f->nheaders++] = (struct origin_header){ name, value };
    }
}

static void origin_fields(const struct conf *conf, const struct policy_origin *o, struct origin_fields *f)
{
    f->wanted = &conf->origin_header_first;
    f->headers_read = false;
    f->headers_cut = false;
    f->nheaders = 0;
    f->user_agent = (struct sip_str){ NULL, 0 };
    sip_uri_user_host(o->ruri, &f->ruri_user, &f->ruri_domain);
    sip_uri_user_host(o->from, &f->from_user, &f->from_domain);
    sip_uri_user_host(o->to, &f->to_user, &f->to_domain);
}

static const struct sip_str *user_agent(const struct policy_origin *o, struct origin_fields *f)
{
    if (!f->headers_read)
        read_headers(o, f);
    return &f->user_agent;
}

/* No values: the key is not given and holds; else one of them must match s. */
static bool any_pattern(const struct pattern *list, size_t n, const struct sip_str *s)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (pattern_match(&list[i], s->ptr, s->len))
            return true;
    return false;
}

/* header: { NAME: VALUES }: some header NAME of the message has a value that matches. */
static bool header_holds(const struct conf_header_match *h, const struct policy_origin *o, struct origin_fields *f)
{
    size_t wlen = strlen(h->name);
    if (!f->headers_read)
        read_headers(o, f);
    for (size_t i = 0; i < f->nheaders; i++)
        if (header_named(&f->headers[i].name, h->name, wlen) &&
            any_pattern(h->values, h->nvalues, &f->headers[i].value))
            return true;
    if (!f->headers_cut)
        return false;
    /* past the ones kept: walk again, skipping them */
    size_t pos = 0, n = 0;
    struct sip_str name, value;
    while (sip_header_next_among(o->sip, o->sip_len, &pos, f->wanted, &name, &value))
        if (n++ >= f->nheaders && header_named(&name, h->name, wlen) && any_pattern(h->values, h->nvalues, &value))
            return true;
    return false;
}

static bool origin_matches(const struct conf_match *m, struct origin_fields *f, const struct policy_origin *o)
{
    if (!any_pattern(m->ruri_user, m->nruri_user, &f->ruri_user) ||
        !any_pattern(m->ruri_domain, m->nruri_domain, &f->ruri_domain) ||
        !any_pattern(m->from_user, m->nfrom_user, &f->from_user) ||
        !any_pattern(m->from_domain, m->nfrom_domain, &f->from_domain) ||
        !any_pattern(m->to_user, m->nto_user, &f->to_user) ||
        !any_pattern(m->to_domain, m->nto_domain, &f->to_domain) ||
        (m->nuser_agent > 0 && !any_pattern(m->user_agent, m->nuser_agent, user_agent(o, f))))
        return false;
    if (m->norigin_src > 0 && !conf_cidr_any(m->origin_src, m->norigin_src, o->addr_len, o->src))
        return false;
    if (m->norigin_dst > 0 && !conf_cidr_any(m->origin_dst, m->norigin_dst, o->addr_len, o->dst))
        return false;
    for (size_t i = 0; i < m->nheaders; i++)
        if (!header_holds(&m->headers[i], o, f))
            return false;
    return true;
}

uint64_t policy_origin_bits(const struct conf *conf, const struct policy_origin *o)
{
    if (conf->norigin_routes == 0)
        return 0;
    struct origin_fields f;
    origin_fields(conf, o, &f);
    uint64_t bits = 0;
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct conf_route *r = &conf->routes[i];
        if (r->origin && origin_matches(&r->match, &f, o))
            bits |= UINT64_C(1) << r->origin_bit;
    }
    return bits;
}

void policy_destinations(const struct conf *conf, long route, const size_t **to, size_t *nto)
{
    INVARIANT(route == POLICY_DEFAULT || (route >= 0 && (size_t)route < conf->nroutes));
    if (route == POLICY_DEFAULT || route < 0 || (size_t)route >= conf->nroutes) {
        *to = conf->default_to;
        *nto = conf->ndefault_to;
    } else {
        *to = conf->routes[route].to;
        *nto = conf->routes[route].nto;
    }
}

const char *policy_route_name(const struct conf *conf, long route)
{
    if (route == POLICY_DEFAULT || route < 0 || (size_t)route >= conf->nroutes)
        return "default";
    return conf->routes[route].name;
}
