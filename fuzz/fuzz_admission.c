/*
 * fuzz_admission.c - libFuzzer harness for the admission checks
 * (src/admission.c: the source allowlist, auth keys, capture-id bindings;
 * conf_cidr_contains() and conf_cidr_any() of src/conf/grammar.c).
 *
 * The input's first bytes are a sources configuration and a sender
 * address, the rest is one HEP packet, decoded with hep_decode():
 *
 *   counts    1 byte: allow CIDRs (b & 7) % 5, auth keys (b >> 3) & 3,
 *             capture-id bindings (b >> 5) & 3
 *   allow     per CIDR: family (bit 0: IPv6), prefix (% 33 or % 129),
 *             the address (4 or 16 bytes; bits past the prefix cleared,
 *             as conf_parse_cidr() requires)
 *   keys      per key, a byte L: L < 0x80: L % 41 bytes follow (NUL taken
 *             as 0x01: a configured key is any bytes but NUL); L >= 0x80:
 *             the packet's own auth key, L & 3 choosing it as is, without
 *             its last byte, with one byte more, or with its first byte
 *             changed
 *   bindings  per binding: a CIDR as above, a count (% 4), that many
 *             capture ids (u32, big-endian)
 *   sender    a mode byte: (m & 3) 0 IPv4 (4 bytes follow), 1 IPv6 (16),
 *             2 IPv4-mapped IPv6 ::ffff:a.b.c.d (4), 3 IPv6 with ten zero
 *             bytes and six from the input (::XXXX:a.b.c.d, mapped or
 *             nearly); (m >> 2) & 7 == k > 0 starts from the address of
 *             the k-th CIDR (allow, then bindings) and the bytes that
 *             follow are XORed into it, so a sender inside a CIDR is one
 *             byte of zeros away
 *   packet    the rest
 *
 * Everything the checks read is on the heap at its exact size (lists,
 * keys, the sender's 4 or 16 bytes), so ASan sees a read past any of it.
 *
 * Checked against slow references written here (any difference aborts):
 *   - admission_check() gives the reference verdict: the allowlist by a
 *     bit-by-bit prefix compare after unmapping ::ffff:a.b.c.d, then the
 *     auth key (none in the packet: missing; else listed by equal length
 *     and memcmp), then the capture id (admission.h: a sender inside one
 *     or more binding CIDRs needs a capture id among their ids); a packet
 *     that fails to decode is checked as a view with nothing in it;
 *   - admission_source_allowed() agrees with the allowlist part, and
 *     allows everyone for no sources or an empty allowlist;
 *   - conf_cidr_contains() and conf_cidr_any() agree with the bit compare
 *     on the sender as given and unmapped;
 *   - admission_key_listed() agrees with equal length and memcmp on every
 *     suffix of the key list, for the packet's key, each configured key,
 *     each with a byte more, a byte less and its last byte changed, and
 *     slices of the packet; no keys lists nothing;
 *   - no sources admits everything; HEPv1/v2 carry no auth key; a verdict
 *     has a name.
 *
 * Build (fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -std=c11 -D_GNU_SOURCE -I src fuzz/fuzz_admission.c src/admission.c \
 *       src/hep.c src/conf/grammar.c -o fuzz_admission
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "conf.h"
#include "hep.h"
#include "fuzz.h"

#define FUZZ_MAX_ALLOW      4u      /* allow CIDRs: (b & 7) % (this + 1) */
#define FUZZ_MAX_KEYS       3u      /* auth keys: (b >> 3) & this */
#define FUZZ_MAX_BINDINGS   3u      /* capture-id bindings: (b >> 5) & this */
#define FUZZ_KEY_MAX_LEN    40u     /* a key from the input: L % (this + 1) bytes */
#define FUZZ_KEY_FROM_PACKET 0x80u  /* key byte: the packet's auth key, ... */
#define FUZZ_MAX_IDS        3u      /* ids per binding: b % (this + 1) */
#define FUZZ_V4_LEN         4u
#define FUZZ_V6_LEN         16u
#define FUZZ_MAPPED_LEN     12u     /* ::ffff: before a mapped IPv4 address */
#define FUZZ_NEAR_ZEROS     10u     /* sender mode 3: zero bytes, then six from the input */
#define FUZZ_MAX_PROBE      64u     /* longest packet slice tried as a key */

/* Sender address forms (mode byte & 3). */
enum sender_form {
    SENDER_V4 = 0,
    SENDER_V6,
    SENDER_MAPPED,      /* ::ffff:a.b.c.d */
    SENDER_NEAR,        /* ::XXXX:a.b.c.d: mapped when XXXX is ffff */
};

/* How a key taken from the packet is changed (key byte & 3). */
enum key_change {
    KEY_AS_IS = 0,
    KEY_SHORTER,
    KEY_LONGER,
    KEY_FIRST_CHANGED,
};

/* The unread part of the input; reads past its end give zeros. */
struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t take_byte(struct input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static void take_bytes(struct input *in, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = take_byte(in);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size);
    CHECK(p != NULL);
    return p;
}

/* ---- the references --------------------------------------------------------------- */

static unsigned bit_of(const uint8_t *addr, unsigned bit)
{
    return (addr[bit / 8] >> (7 - bit % 8)) & 1u;
}

/* Whether addr has the CIDR's family and its first prefix bits, one by one. */
static bool ref_in_cidr(const struct conf_cidr *c, unsigned addr_len, const uint8_t *addr)
{
    if (addr_len != c->addr_len)
        return false;
    for (unsigned bit = 0; bit < c->prefix; bit++)
        if (bit_of(c->addr, bit) != bit_of(addr, bit))
            return false;
    return true;
}

static bool ref_in_any(const struct conf_cidr *list, size_t n, unsigned addr_len, const uint8_t *addr)
{
    bool in = false;
    for (size_t i = 0; i < n; i++)
        in = in || ref_in_cidr(&list[i], addr_len, addr);
    return in;
}

/* ::ffff:a.b.c.d is a.b.c.d; anything else stays as it is. */
static void ref_unmap(unsigned *addr_len, const uint8_t **addr)
{
    if (*addr_len != FUZZ_V6_LEN)
        return;
    for (unsigned i = 0; i < FUZZ_MAPPED_LEN; i++) {
        uint8_t want = i < FUZZ_NEAR_ZEROS ? 0x00 : 0xff;
        if ((*addr)[i] != want)
            return;
    }
    *addr += FUZZ_MAPPED_LEN;
    *addr_len = FUZZ_V4_LEN;
}

static bool ref_key_listed(char *const *keys, size_t nkeys, const uint8_t *key, size_t len)
{
    bool listed = false;
    for (size_t k = 0; k < nkeys; k++)
        if (strlen(keys[k]) == len && (len == 0 || memcmp(keys[k], key, len) == 0))
            listed = true;
    return listed;
}

static enum admission_verdict ref_check(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr,
                                        const struct hep_view *v)
{
    ref_unmap(&addr_len, &addr);
    if (s->nallow > 0 && !ref_in_any(s->allow, s->nallow, addr_len, addr))
        return ADMISSION_NOT_ALLOWED;
    if (s->nauth_keys > 0) {
        if (v->auth_key.len == 0)
            return ADMISSION_MISSING_AUTH_KEY;
        if (!ref_key_listed(s->auth_keys, s->nauth_keys, v->auth_key.data, v->auth_key.len))
            return ADMISSION_BAD_AUTH_KEY;
    }
    bool bound = false, claimed = false;
    for (size_t i = 0; i < s->ncapture_ids; i++) {
        const struct conf_capture_binding *b = &s->capture_ids[i];
        if (!ref_in_cidr(&b->cidr, addr_len, addr))
            continue;
        bound = true;
        for (size_t j = 0; j < b->nids; j++)
            if ((v->present & HEP_HAS_CAPTURE_ID) && b->ids[j] == v->capture_id)
                claimed = true;
    }
    if (bound && !claimed)
        return ADMISSION_CAPTURE_ID_NOT_ALLOWED;
    return ADMISSION_OK;
}

/* ---- building the configuration ------------------------------------------------------ */

static void take_cidr(struct input *in, struct conf_cidr *c)
{
    memset(c, 0, sizeof *c);
    c->addr_len = (take_byte(in) & 1) ? FUZZ_V6_LEN : FUZZ_V4_LEN;
    c->prefix = take_byte(in) % (c->addr_len * 8 + 1);
    take_bytes(in, c->addr, c->addr_len);
    for (unsigned bit = c->prefix; bit < c->addr_len * 8; bit++)
        c->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
}

/* A configured key: a C string of the bytes given, NUL taken as 0x01. */
static char *key_string(const uint8_t *bytes, size_t len)
{
    char *key = xcalloc(len + 1, 1);
    for (size_t i = 0; i < len; i++)
        key[i] = bytes[i] != 0 ? (char)bytes[i] : '\x01';
    return key;
}

static char *packet_key(uint8_t how, struct hep_bytes pk)
{
    uint8_t *buf = xcalloc(pk.len + 1, 1);
    size_t len = pk.len;
    if (len > 0)
        memcpy(buf, pk.data, len);
    switch (how & 3) {
    case KEY_SHORTER:
        if (len > 0)
            len--;
        break;
    case KEY_LONGER:
        buf[len++] = 'k';
        break;
    case KEY_FIRST_CHANGED:
        if (len > 0)
            buf[0] ^= 0x01;
        break;
    default:
        break;
    }
    char *key = key_string(buf, len);
    free(buf);
    return key;
}

static void free_sources(struct conf_sources *s)
{
    for (size_t i = 0; i < s->nauth_keys; i++)
        free(s->auth_keys[i]);
    for (size_t i = 0; i < s->ncapture_ids; i++)
        free(s->capture_ids[i].ids);
    free(s->allow);
    free(s->auth_keys);
    free(s->capture_ids);
}

/* The sender: addr_len bytes in a buffer of its own. */
static uint8_t *take_sender(struct input *in, const struct conf_sources *s, unsigned *addr_len)
{
    uint8_t mode = take_byte(in), base[FUZZ_V6_LEN] = { 0 }, x[FUZZ_V6_LEN] = { 0 };
    size_t k = (mode >> 2) & 7;
    const struct conf_cidr *from = NULL;
    if (k > 0 && k - 1 < s->nallow)
        from = &s->allow[k - 1];
    else if (k > 0 && k - 1 - s->nallow < s->ncapture_ids)
        from = &s->capture_ids[k - 1 - s->nallow].cidr;
    /* the CIDR's address as IPv6: an IPv4 one in the last four bytes */
    if (from != NULL)
        memcpy(base + FUZZ_V6_LEN - from->addr_len, from->addr, from->addr_len);

    switch ((enum sender_form)(mode & 3)) {
    case SENDER_V4:
        *addr_len = FUZZ_V4_LEN;
        take_bytes(in, x + FUZZ_MAPPED_LEN, FUZZ_V4_LEN);
        break;
    case SENDER_V6:
        *addr_len = FUZZ_V6_LEN;
        take_bytes(in, x, FUZZ_V6_LEN);
        break;
    case SENDER_MAPPED:
        *addr_len = FUZZ_V6_LEN;
        memset(base, 0, FUZZ_MAPPED_LEN);
        base[FUZZ_NEAR_ZEROS] = base[FUZZ_NEAR_ZEROS + 1] = 0xff;
        take_bytes(in, x + FUZZ_MAPPED_LEN, FUZZ_V4_LEN);
        break;
    case SENDER_NEAR:
        *addr_len = FUZZ_V6_LEN;
        memset(base, 0, FUZZ_MAPPED_LEN);
        take_bytes(in, x + FUZZ_NEAR_ZEROS, FUZZ_V6_LEN - FUZZ_NEAR_ZEROS);
        break;
    }
    uint8_t *addr = xcalloc(*addr_len, 1);
    for (unsigned i = 0; i < *addr_len; i++) {
        unsigned at = FUZZ_V6_LEN - *addr_len + i;
        addr[i] = base[at] ^ x[at];
    }
    return addr;
}

/* ---- the checks ------------------------------------------------------------------- */

/* admission_key_listed() against the reference, for key and every suffix of the list. */
static void check_key(const struct conf_sources *s, const uint8_t *key, size_t len)
{
    uint8_t *copy = xcalloc(len, 1);
    if (len > 0)
        memcpy(copy, key, len);
    CHECK(!admission_key_listed(NULL, 0, copy, len));
    for (size_t from = 0; from < s->nauth_keys; from++)
        CHECK(admission_key_listed(s->auth_keys + from, s->nauth_keys - from, copy, len) ==
              ref_key_listed(s->auth_keys + from, s->nauth_keys - from, copy, len));
    free(copy);
}

static void check_keys(const struct conf_sources *s, const struct hep_view *v, const uint8_t *packet, size_t plen)
{
    check_key(s, v->auth_key.data, v->auth_key.len);
    for (size_t k = 0; k < s->nauth_keys; k++) {
        size_t len = strlen(s->auth_keys[k]);
        uint8_t *buf = xcalloc(len + 1, 1);
        memcpy(buf, s->auth_keys[k], len);
        CHECK(admission_key_listed(s->auth_keys, s->nauth_keys, buf, len));
        check_key(s, buf, len);
        if (len > 0) {
            check_key(s, buf, len - 1);
            buf[len - 1] ^= 0x80;
            check_key(s, buf, len);
            buf[len - 1] ^= 0x80;
        }
        check_key(s, buf, len + 1);     /* with a NUL after it */
        free(buf);
    }
    /* the packet's head and tail as keys, as long as the configured ones */
    for (size_t k = 0; k < s->nauth_keys; k++) {
        size_t len = strlen(s->auth_keys[k]);
        if (len <= plen) {
            check_key(s, packet, len);
            check_key(s, packet + plen - len, len);
        }
    }
    check_key(s, packet, plen < FUZZ_MAX_PROBE ? plen : FUZZ_MAX_PROBE);
}

static void check_addr(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr)
{
    const uint8_t *plain = addr;
    unsigned plain_len = addr_len;
    ref_unmap(&plain_len, &plain);

    for (size_t i = 0; i < s->nallow; i++) {
        CHECK(conf_cidr_contains(&s->allow[i], addr_len, addr) == ref_in_cidr(&s->allow[i], addr_len, addr));
        CHECK(conf_cidr_contains(&s->allow[i], plain_len, plain) ==
              ref_in_cidr(&s->allow[i], plain_len, plain));
    }
    for (size_t i = 0; i < s->ncapture_ids; i++)
        CHECK(conf_cidr_contains(&s->capture_ids[i].cidr, plain_len, plain) ==
              ref_in_cidr(&s->capture_ids[i].cidr, plain_len, plain));
    CHECK(conf_cidr_any(s->allow, s->nallow, addr_len, addr) == ref_in_any(s->allow, s->nallow, addr_len, addr));
    CHECK(conf_cidr_any(s->allow, s->nallow, plain_len, plain) ==
          ref_in_any(s->allow, s->nallow, plain_len, plain));

    bool allowed = s->nallow == 0 || ref_in_any(s->allow, s->nallow, plain_len, plain);
    CHECK(admission_source_allowed(s, addr_len, addr) == allowed);
    CHECK(admission_source_allowed(NULL, addr_len, addr));
}

static void check_verdict(const struct conf_sources *s, unsigned addr_len, const uint8_t *addr,
                          const struct hep_view *v)
{
    enum admission_verdict got = admission_check(s, addr_len, addr, v);
    enum admission_verdict want = ref_check(s, addr_len, addr, v);
    if (got != want) {
        fprintf(stderr, "admission_check: %s, the reference: %s\n", admission_verdict_name(got),
                admission_verdict_name(want));
        CHECK(got == want);
    }
    CHECK(strcmp(admission_verdict_name(got), "unknown") != 0);
    CHECK((got == ADMISSION_NOT_ALLOWED) == !admission_source_allowed(s, addr_len, addr));
    CHECK(admission_check(NULL, addr_len, addr, v) == ADMISSION_OK);
    if (s->nallow > 0 || s->nauth_keys > 0 || s->ncapture_ids > 0)
        CHECK(admission_has_rules(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = { data, size };
    struct conf_sources s;
    uint8_t key_from_packet[FUZZ_MAX_KEYS] = { 0 };   /* per key: 0, or its key byte */
    uint8_t counts = take_byte(&in);

    memset(&s, 0, sizeof s);
    s.nallow = (counts & 7) % (FUZZ_MAX_ALLOW + 1);
    s.nauth_keys = (counts >> 3) & FUZZ_MAX_KEYS;
    s.ncapture_ids = (counts >> 5) & FUZZ_MAX_BINDINGS;
    s.allow = s.nallow > 0 ? xcalloc(s.nallow, sizeof *s.allow) : NULL;
    s.auth_keys = s.nauth_keys > 0 ? xcalloc(s.nauth_keys, sizeof *s.auth_keys) : NULL;
    s.capture_ids = s.ncapture_ids > 0 ? xcalloc(s.ncapture_ids, sizeof *s.capture_ids) : NULL;

    for (size_t i = 0; i < s.nallow; i++)
        take_cidr(&in, &s.allow[i]);
    for (size_t i = 0; i < s.nauth_keys; i++) {
        uint8_t l = take_byte(&in), bytes[FUZZ_KEY_MAX_LEN];
        if (l & FUZZ_KEY_FROM_PACKET) {
            key_from_packet[i] = l;         /* once the packet is decoded */
            continue;
        }
        size_t len = l % (FUZZ_KEY_MAX_LEN + 1);
        take_bytes(&in, bytes, len);
        s.auth_keys[i] = key_string(bytes, len);
    }
    for (size_t i = 0; i < s.ncapture_ids; i++) {
        struct conf_capture_binding *b = &s.capture_ids[i];
        take_cidr(&in, &b->cidr);
        b->nids = take_byte(&in) % (FUZZ_MAX_IDS + 1);
        b->ids = b->nids > 0 ? xcalloc(b->nids, sizeof *b->ids) : NULL;
        for (size_t j = 0; j < b->nids; j++) {
            uint8_t id[4];
            take_bytes(&in, id, sizeof id);
            b->ids[j] = (uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 | (uint32_t)id[2] << 8 | id[3];
        }
    }
    unsigned addr_len;
    uint8_t *addr = take_sender(&in, &s, &addr_len);

    /* the packet: a view with nothing in it when it does not decode */
    struct hep_view v;
    if (hep_decode(in.p, in.n, &v) != HEP_OK)
        memset(&v, 0, sizeof v);
    if (v.version == 1 || v.version == 2)
        CHECK(v.auth_key.len == 0);
    for (size_t i = 0; i < s.nauth_keys; i++)
        if (key_from_packet[i] != 0)
            s.auth_keys[i] = packet_key(key_from_packet[i], v.auth_key);

    check_addr(&s, addr_len, addr);
    check_verdict(&s, addr_len, addr, &v);
    check_keys(&s, &v, in.p, in.n);

    free(addr);
    free_sources(&s);
    return 0;
}
