/*
 * bytes.h - reads and writes integers at unaligned byte positions.
 *
 * HEP and everything framed with it is big-endian (network order); the one
 * little-endian exception is the HEPv2 time block, written in the sender's
 * byte order (x86 in practice); the hashes read their input as
 * little-endian words too.  Written once here so that nobody shifts bytes
 * by hand.  Callers check the bounds.  Also the comparison of a few bytes
 * inline (bytes_same()), where a call to memcmp() would cost more than it.
 */
#ifndef HEPROUTER_BYTES_H
#define HEPROUTER_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t bytes_get_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t bytes_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void bytes_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void bytes_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint64_t bytes_get_be64(const uint8_t *p)
{
    return (uint64_t)bytes_get_be32(p) << 32 | bytes_get_be32(p + 4);
}

static inline void bytes_put_be64(uint8_t *p, uint64_t v)
{
    bytes_put_be32(p, (uint32_t)(v >> 32));
    bytes_put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t bytes_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static inline uint32_t bytes_get_le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void bytes_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/*
 * Eight bytes as a little-endian word (the hashes' byte order, the same on
 * every host): one load where the host is little-endian.
 */
static inline uint64_t bytes_get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* The n < 8 bytes at p as the low bytes of a little-endian word, the rest zero (p may be NULL when n is 0). */
static inline uint64_t bytes_get_le_tail(const uint8_t *p, size_t n)
{
    /* four to seven bytes: two loads of four that overlap (the same bytes OR'd twice); no call for a copy */
    if (n >= sizeof(uint32_t))
        return bytes_get_le32(p) | (uint64_t)bytes_get_le32(p + n - sizeof(uint32_t)) << (8 * (n - sizeof(uint32_t)));
    if (n == 0)
        return 0;
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) | (uint64_t)p[n - 1] << (8 * (n - 1));
}

/*
 * True when a[0..n) equals b[0..n), compared byte by byte up to the first
 * difference: for the short names of the packet path (methods), where
 * memcmp() would be a call.  A NUL-terminated a shorter than n stops the
 * loop at its NUL, so long as b has none.
 */
static inline bool bytes_same(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return false;
    return true;
}

#endif
