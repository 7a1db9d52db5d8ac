/*
 * admission.h - who may send: the source allowlist, HEP auth keys and the
 * capture ids a source may claim (sources: in heprouter.yaml(5)).
 *
 * Pure checks on a packet's sender address and its decoded HEP view; no
 * I/O.  The edge calls admission_source_allowed() when a TCP connection is
 * accepted and admission_check() for every packet of a listener that has
 * rules, before the router sees it.  Auth keys are compared in constant
 * time: how long a check takes depends on the configured keys, never on
 * how much of a key a sender got right.
 */
#ifndef HEPROUTER_ADMISSION_H
#define HEPROUTER_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "hep.h"

/* Why a packet is refused: id, and the name metrics and logs use. */
#define ADMISSION_REASONS(X)                                    \
    X(NOT_ALLOWED, "not_allowed")                               \
    X(MISSING_AUTH_KEY, "missing_auth_key")                     \
    X(BAD_AUTH_KEY, "bad_auth_key")                             \
    X(CAPTURE_ID_NOT_ALLOWED, "capture_id_not_allowed")

enum admission_verdict {
    ADMISSION_OK = 0,
#define ADMISSION_ID(id, name) ADMISSION_##id,
    ADMISSION_REASONS(ADMISSION_ID)
#undef ADMISSION_ID
    ADMISSION_VERDICT_COUNT
};

/* "not_allowed", ...; "ok" for ADMISSION_OK, "unknown" out of range. */
const char *admission_verdict_name(int verdict);

/* Whether any rule applies at all (then every packet is checked). */
bool admission_has_rules(const struct conf_sources *s);

/*
 * The allowlist alone, for a TCP connection at accept: addr is addr_len
 * (4 or 16) bytes in network order.  An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, from a dual-stack socket) is checked as IPv4.
 */
bool admission_source_allowed(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr);

/*
 * The rules that need the decoded packet, in order: the auth key (HEPv1/v2
 * carry none: refused as missing when keys are required), then the
 * capture id.  For the edge that has applied the allowlist already.
 */
enum admission_verdict admission_check_packet(const struct conf_sources *s, unsigned addr_len,
                                              const uint8_t *addr, const struct hep_view *v);

/* Whether the packet rules (keys, capture ids) apply at all. */
bool admission_has_packet_rules(const struct conf_sources *s);

/*
 * Every rule, in order: the allowlist, then the auth key (HEPv1/v2 carry
 * none: refused as missing when keys are required), then the capture id
 * (a source inside one or more capture_ids CIDRs may claim only their ids;
 * a packet without a capture id claims none of them).
 */
enum admission_verdict admission_check(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr,
                                       const struct hep_view *v);

/*
 * tls.client_capture_ids: the entry of a client certificate, by its whole
 * subject in RFC 2253 form ("CN=kamailio-a,O=Example": entries with '=')
 * or by its common name (the others); NULL when neither is listed.
 */
const struct conf_subject_binding *admission_subject_binding(const struct conf_tls *t, const char *subject,
                                                             const char *cn);

/*
 * Whether a packet claims one of ids[0..n) as its capture id (a packet
 * without a capture id claims none): what a certificate bound to them may send.
 */
bool admission_ids_claimed(const uint32_t *ids, size_t n, const struct hep_view *v);

/*
 * Whether key[0..len) is one of keys, comparing every byte of every
 * configured key whatever the input, so the time taken says nothing about
 * the key sent.
 */
bool admission_key_listed(char *const *keys, size_t nkeys, const uint8_t *key, size_t len);

#endif
