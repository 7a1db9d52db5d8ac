/*
 * policy.h - which route a packet takes.
 *
 * Routes are tried in configuration order and the first whose match keys
 * all hold wins; none matching means the `default` destinations.  The
 * `method` key compares the method that started the call (the origin, or
 * the CSeq method of an orphan that took the fallback); the origin keys
 * (ruri_user ... origin_dst) were judged once on the call's origin request
 * (policy_origin_bits()) and the call remembers the answer, one bit per
 * route that has them; the other keys look at the packet itself.  Pure: no
 * I/O; a regular expression's match data is the only allocation.
 */
#ifndef HEPROUTER_POLICY_H
#define HEPROUTER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sip.h"

struct conf;
struct hep_view;

#define POLICY_DEFAULT (-1L)        /* no route matched: the `default` list */

/* What the match keys look at. */
struct policy_input {
    const char *method;             /* the call's origin method; NULL if unknown */
    size_t method_len;
    unsigned proto;                 /* HEP protocol type (chunk 0x000b) */
    bool has_capture_id;
    uint32_t capture_id;
    unsigned addr_len;              /* 4 or 16; 0 when the packet carries none */
    const uint8_t *src;             /* NULL when absent */
    const uint8_t *dst;
    unsigned status;                /* SIP reply status; 0 for anything else */
    bool in_sample_space;           /* the packet has a call key, and then: */
    uint32_t sample_point;          /* policy_sample_point() of it */
    bool origin_known;              /* the call's origin was seen (not the fallback, not uncorrelated) */
    uint64_t origin_bits;           /* then: policy_origin_bits() of it */
};

/* What the origin keys look at: the call's origin request. */
struct policy_origin {
    const uint8_t *sip;             /* the SIP message (header: looks there) */
    size_t sip_len;
    struct sip_str ruri;            /* its request URI */
    struct sip_str from;            /* its From and To values (sip_msg); User-Agent is looked for when a route asks */
    struct sip_str to;
    unsigned addr_len;              /* 4 or 16; 0 when the packet carries none */
    const uint8_t *src;
    const uint8_t *dst;
};

/*
 * Where a call falls in [0, CONF_MILLION): a keyed hash of its call key,
 * the same in every worker and instance, so a route with `sample` takes a
 * call whole or not at all.
 */
uint32_t policy_sample_point(const char *key, size_t klen);

/* Bit conf->routes[i].origin_bit is set for each route with origin keys that all hold for o. */
uint64_t policy_origin_bits(const struct conf *conf, const struct policy_origin *o);

/* Fills the packet-level fields of *in from a decoded packet. */
void policy_input_from_view(struct policy_input *in, const struct hep_view *view);

/* Index of the first route matching *in, or POLICY_DEFAULT. */
long policy_match(const struct conf *conf, const struct policy_input *in);

/* The destination indexes of a route (POLICY_DEFAULT: the default list). */
void policy_destinations(const struct conf *conf, long route, const size_t **to, size_t *nto);

/* The route's name ("default" for POLICY_DEFAULT). */
const char *policy_route_name(const struct conf *conf, long route);

#endif
