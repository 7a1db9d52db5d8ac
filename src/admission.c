/*
 * admission.c - the checks of admission.h: allowlist, auth keys, capture
 * ids.  No allocation, no I/O.
 */
#include "admission.h"

#include <string.h>

const char *admission_verdict_name(int verdict)
{
    static const char *const names[ADMISSION_VERDICT_COUNT] = {
        "ok",
#define ADMISSION_NAME(id, name) name,
        ADMISSION_REASONS(ADMISSION_NAME)
#undef ADMISSION_NAME
    };
    if (verdict < 0 || verdict >= ADMISSION_VERDICT_COUNT)
        return "unknown";
    return names[verdict];
}

bool admission_has_rules(const struct conf_sources *s)
{
    return s != NULL && (s->nallow > 0 || s->nauth_keys > 0 || s->ncapture_ids > 0);
}

/* ::ffff:a.b.c.d, as a dual-stack socket reports an IPv4 sender, is a.b.c.d. */
static void unmap_v4(unsigned *addr_len, const uint8_t **addr)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (*addr_len == 16 && *addr != NULL && memcmp(*addr, mapped, sizeof mapped) == 0) {
        *addr += sizeof mapped;
        *addr_len = 4;
    }
}

bool admission_source_allowed(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr)
{
    if (s == NULL || s->nallow == 0)
        return true;
    unmap_v4(&addr_len, &addr);
    return conf_cidr_any(s->allow, s->nallow, addr_len, addr);
}

/* diff == 0 -> 1, else 0, without a branch on diff. */
static inline uint64_t is_zero(uint64_t diff)
{
    return 1u & (((diff | (0 - diff)) >> 63) ^ 1u);
}

/*
 * A key sent longer than CONF_STRING_MAX, which the configuration refuses
 * for its keys: byte by byte, still without an early exit, equal only to a
 * key as long.
 */
static bool long_key_listed(char *const *keys, size_t nkeys, const uint8_t *key, size_t len)
{
    uint64_t found = 0;
    for (size_t k = 0; k < nkeys; k++) {
        const uint8_t *want = (const uint8_t *)keys[k];
        size_t wlen = strlen(keys[k]), n = wlen < len ? wlen : len;
        uint64_t diff = wlen != len;
        for (size_t i = 0; i < n; i++)
            diff |= (uint64_t)(want[i] ^ key[i]);
        found |= is_zero(diff);
    }
    return found != 0;
}

/*
 * The key sent, zero-padded to CONF_STRING_MAX bytes, is compared with
 * every byte of every configured key, eight at a time, folding the
 * differences: no early exit, no branch on a byte.  The time taken depends
 * on the configured keys alone (and on whether the key sent is longer than
 * any can be).
 */
bool admission_key_listed(char *const *keys, size_t nkeys, const uint8_t *key, size_t len)
{
    uint8_t sent[CONF_STRING_MAX];
    if (len > sizeof sent)
        return long_key_listed(keys, nkeys, key, len);
    memset(sent, 0, sizeof sent);
    if (len > 0)
        memcpy(sent, key, len);
    uint64_t found = 0;
    for (size_t k = 0; k < nkeys; k++) {
        const uint8_t *want = (const uint8_t *)keys[k];
        size_t wlen = strlen(keys[k]), i = 0;
        uint64_t diff = wlen != len, a, b;
        if (wlen > sizeof sent)
            wlen = sizeof sent;     /* longer than the key sent: unequal by length already */
        for (; i + sizeof a <= wlen; i += sizeof a) {
            memcpy(&a, want + i, sizeof a);
            memcpy(&b, sent + i, sizeof b);
            diff |= a ^ b;
        }
        if (i < wlen && wlen >= sizeof a) {
            /* the last eight bytes, overlapping what was compared: no byte loop */
            memcpy(&a, want + wlen - sizeof a, sizeof a);
            memcpy(&b, sent + wlen - sizeof b, sizeof b);
            diff |= a ^ b;
        } else {
            for (; i < wlen; i++)
                diff |= (uint64_t)(want[i] ^ sent[i]);
        }
        found |= is_zero(diff);
    }
    return found != 0;              /* the key sent is in the packet buffer anyway: no need to wipe sent */
}

static bool capture_id_allowed(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr,
                               const struct hep_view *v)
{
    bool bound = false;
    for (size_t i = 0; i < s->ncapture_ids; i++) {
        const struct conf_capture_binding *b = &s->capture_ids[i];
        if (!conf_cidr_contains(&b->cidr, addr_len, addr))
            continue;
        bound = true;
        if (admission_ids_claimed(b->ids, b->nids, v))
            return true;
    }
    return !bound;
}

const struct conf_subject_binding *admission_subject_binding(const struct conf_tls *t, const char *subject,
                                                             const char *cn)
{
    for (size_t i = 0; i < t->nclient_capture_ids; i++) {
        const struct conf_subject_binding *b = &t->client_capture_ids[i];
        const char *have = strchr(b->subject, '=') != NULL ? subject : cn;
        if (have != NULL && strcmp(have, b->subject) == 0)
            return b;
    }
    return NULL;
}

bool admission_ids_claimed(const uint32_t *ids, size_t n, const struct hep_view *v)
{
    if (!(v->present & HEP_HAS_CAPTURE_ID))
        return false;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == v->capture_id)
            return true;
    return false;
}

bool admission_has_packet_rules(const struct conf_sources *s)
{
    return s != NULL && (s->nauth_keys > 0 || s->ncapture_ids > 0);
}

enum admission_verdict admission_check(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr,
                                       const struct hep_view *v)
{
    if (!admission_source_allowed(s, addr_len, addr))
        return ADMISSION_NOT_ALLOWED;
    return admission_check_packet(s, addr_len, addr, v);
}

enum admission_verdict admission_check_packet(const struct conf_sources *s, unsigned addr_len,
                                              const uint8_t *addr, const struct hep_view *v)
{
    if (s == NULL)
        return ADMISSION_OK;
    unmap_v4(&addr_len, &addr);
    if (s->nauth_keys > 0) {
        if (v->auth_key.len == 0)
            return ADMISSION_MISSING_AUTH_KEY;
        if (!admission_key_listed(s->auth_keys, s->nauth_keys, v->auth_key.data, v->auth_key.len))
            return ADMISSION_BAD_AUTH_KEY;
    }
    if (s->ncapture_ids > 0 && !capture_id_allowed(s, addr_len, addr, v))
        return ADMISSION_CAPTURE_ID_NOT_ALLOWED;
    return ADMISSION_OK;
}
