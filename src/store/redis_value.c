/*
 * redis_value.c - the value a Redis store keeps per call: writing it and
 * parsing it (see redis_value.h for the format).
 */
#include "store/redis_value.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define REDIS_KNOWN_FLAGS STORE_F_ALL

static bool redis_method_char(char c)
{
    return c > ' ' && c < 0x7f && c != REDIS_VALUE_SEP;
}

size_t redis_value_format(const struct store_entry *e, char *buf, size_t len)
{
    size_t mlen = strnlen(e->method, sizeof e->method);
    size_t rlen = strnlen(e->route, sizeof e->route);
    if (mlen == 0 || mlen == sizeof e->method || rlen == 0 || rlen == sizeof e->route)
        return 0;
    for (size_t i = 0; i < mlen; i++)
        if (!redis_method_char(e->method[i]))
            return 0;
    int n;
    if (e->origin_signature != 0)
        n = snprintf(buf, len, "%s%c%u%c%llu%c%s%c%llu%c%lu%c%lu%c%s", REDIS_VALUE_VERSION_ORIGIN, REDIS_VALUE_SEP,
                     e->flags & REDIS_KNOWN_FLAGS, REDIS_VALUE_SEP, (unsigned long long)e->first_seen_ms,
                     REDIS_VALUE_SEP, e->method, REDIS_VALUE_SEP, (unsigned long long)e->origin_bits,
                     REDIS_VALUE_SEP, (unsigned long)e->origin_signature, REDIS_VALUE_SEP,
                     (unsigned long)e->refused_dests, REDIS_VALUE_SEP, e->route);
    else
        n = snprintf(buf, len, "%s%c%u%c%llu%c%s%c%s", REDIS_VALUE_VERSION, REDIS_VALUE_SEP,
                     e->flags & REDIS_KNOWN_FLAGS, REDIS_VALUE_SEP, (unsigned long long)e->first_seen_ms,
                     REDIS_VALUE_SEP, e->method, REDIS_VALUE_SEP, e->route);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

bool redis_value_decimal(const char **p, const char *end, size_t max_digits, uint64_t *out)
{
    const char *q = *p;
    uint64_t v = 0;
    size_t n = 0;
    while (q < end && *q >= '0' && *q <= '9') {
        unsigned d = (unsigned)(*q - '0');
        if (++n > max_digits || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        q++;
    }
    if (n == 0)
        return false;
    *p = q;
    *out = v;
    return true;
}

static bool redis_expect_sep(const char **p, const char *end)
{
    if (*p == end || **p != REDIS_VALUE_SEP)
        return false;
    (*p)++;
    return true;
}

int redis_value_parse(const char *v, size_t len, struct store_entry *out)
{
    const char *p = v, *end = v + len;
    size_t vlen = strlen(REDIS_VALUE_VERSION);
    uint64_t flags, first_seen, bits = 0, signature = 0, refused = 0;
    _Static_assert(sizeof REDIS_VALUE_VERSION == sizeof REDIS_VALUE_VERSION_ORIGIN, "versions of one length");

    memset(out, 0, sizeof *out);
    if (len < vlen)
        return -1;
    bool origin = memcmp(p, REDIS_VALUE_VERSION_ORIGIN, vlen) == 0;
    if (!origin && memcmp(p, REDIS_VALUE_VERSION, vlen) != 0)
        return -1;
    p += vlen;
    if (!redis_expect_sep(&p, end) || !redis_value_decimal(&p, end, REDIS_FLAGS_DIGITS_MAX, &flags) ||
        flags > UINT_MAX || !redis_expect_sep(&p, end) ||
        !redis_value_decimal(&p, end, REDIS_MS_DIGITS_MAX, &first_seen) || !redis_expect_sep(&p, end))
        return -1;
    const char *method = p;
    while (p < end && *p != REDIS_VALUE_SEP) {
        if (!redis_method_char(*p))
            return -1;
        p++;
    }
    size_t mlen = (size_t)(p - method);
    if (mlen == 0 || mlen >= sizeof out->method || !redis_expect_sep(&p, end))
        return -1;
    if (origin && (!redis_value_decimal(&p, end, REDIS_BITS_DIGITS_MAX, &bits) || !redis_expect_sep(&p, end) ||
                   !redis_value_decimal(&p, end, REDIS_SIGNATURE_DIGITS_MAX, &signature) ||
                   signature == 0 || signature > UINT32_MAX || !redis_expect_sep(&p, end) ||
                   !redis_value_decimal(&p, end, REDIS_REFUSED_DIGITS_MAX, &refused) || refused > UINT32_MAX ||
                   !redis_expect_sep(&p, end)))
        return -1;
    size_t rlen = (size_t)(end - p);
    if (rlen == 0 || rlen >= sizeof out->route || memchr(p, '\0', rlen) != NULL)
        return -1;
    memcpy(out->method, method, mlen);
    memcpy(out->route, p, rlen);
    out->first_seen_ms = first_seen;
    out->flags = (unsigned)flags & REDIS_KNOWN_FLAGS;
    out->origin_bits = bits;
    out->origin_signature = (uint32_t)signature;
    out->refused_dests = (uint32_t)refused;
    return 0;
}

bool redis_value_same_origin(const struct store_entry *a, const struct store_entry *b)
{
    return a->first_seen_ms == b->first_seen_ms && strcmp(a->method, b->method) == 0 &&
           strcmp(a->route, b->route) == 0 && a->origin_bits == b->origin_bits &&
           a->origin_signature == b->origin_signature && a->refused_dests == b->refused_dests;
}
