/*
 * policy.h - which route a packet takes.
 *
 * Routes are tried in configuration order and the first whose match keys
 * all hold wins; none matching means the `default` destinations.  The
 * `method` key compares the method that started the call (the origin, or
 * the CSeq method of an orphan that took the fallback); the other keys look
 * at the packet itself.  Pure: no I/O, no allocation.
 */
#ifndef HEPROUTER_POLICY_H
#define HEPROUTER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

/* Fills the packet-level fields of *in from a decoded packet. */
void policy_input_from_view(struct policy_input *in, const struct hep_view *view);

/* Index of the first route matching *in, or POLICY_DEFAULT. */
long policy_match(const struct conf *conf, const struct policy_input *in);

/* The destination indexes of a route (POLICY_DEFAULT: the default list). */
void policy_destinations(const struct conf *conf, long route, const size_t **to, size_t *nto);

/* The route's name ("default" for POLICY_DEFAULT). */
const char *policy_route_name(const struct conf *conf, long route);

#endif
