/*
 * policy.c - first-match route selection over the configured routes.
 */
#include "policy.h"

#include <string.h>

#include "conf.h"
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
}

static bool method_listed(const struct conf_match *m, const struct policy_input *in)
{
    if (in->method == NULL)
        return false;
    for (size_t i = 0; i < m->nmethods; i++)
        if (strlen(m->methods[i]) == in->method_len &&
            memcmp(m->methods[i], in->method, in->method_len) == 0)
            return true;
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

long policy_match(const struct conf *conf, const struct policy_input *in)
{
    for (size_t i = 0; i < conf->nroutes; i++)
        if (route_matches(&conf->routes[i].match, in))
            return (long)i;
    return POLICY_DEFAULT;
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
