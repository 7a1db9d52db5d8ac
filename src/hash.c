/*
 * hash.c - FNV-1a and SipHash-2-4 (see hash.h).
 */
#include "hash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>

#define FNV64_PRIME UINT64_C(1099511628211)
#define SIPHASH_KEY_BYTES HASH_SIPHASH_KEY_BYTES
#define SIPHASH_C_ROUNDS 2
#define SIPHASH_D_ROUNDS 4
#define SIPHASH_WORD_BYTES 8
#define SIPHASH_LEN_SHIFT 56

#define WORDS64_SEED UINT64_C(0x9e3779b97f4a7c15)   /* 2^64 / golden ratio */
#define WORDS64_MUL UINT64_C(0xff51afd7ed558ccd)    /* murmur3 fmix64 constants */
#define WORDS64_MUL2 UINT64_C(0xc4ceb9fe1a85ec53)
#define WORDS64_SHIFT 33
#define WORD_BYTES 8

uint64_t hash_fmix64(uint64_t x)
{
    x ^= x >> WORDS64_SHIFT;
    x *= WORDS64_MUL;
    x ^= x >> WORDS64_SHIFT;
    x *= WORDS64_MUL2;
    x ^= x >> WORDS64_SHIFT;
    return x;
}

uint64_t hash_words64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = WORDS64_SEED ^ len;
    size_t i = 0;
    for (; i + WORD_BYTES <= len; i += WORD_BYTES) {
        uint64_t w;
        memcpy(&w, p + i, WORD_BYTES);
        h = hash_fmix64(h ^ w);
    }
    uint64_t tail = 0;
    for (size_t j = 0; i + j < len; j++)
        tail |= (uint64_t)p[i + j] << (8 * j);
    return hash_fmix64(h ^ tail);
}

uint64_t hash_fnv1a64(uint64_t basis, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = basis;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < SIPHASH_WORD_BYTES; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);       \
        v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                            \
        v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                            \
        v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);       \
    } while (0)

/*
 * SipHash-2-4 with its 128-bit output (Aumasson and Bernstein's reference
 * "siphash" with outlen 16): out[0] and out[1] are the two little-endian
 * halves of the reference's 16 output bytes.
 */
void hash_siphash128(const uint8_t k[HASH_SIPHASH_KEY_BYTES], const void *data, size_t len, uint64_t out[2])
{
    const uint8_t *in = data;
    uint64_t k0 = load_le64(k), k1 = load_le64(k + SIPHASH_WORD_BYTES);
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ k0;
    uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ k1;
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ k0;
    uint64_t v3 = UINT64_C(0x7465646279746573) ^ k1;
    v1 ^= 0xee;

    size_t whole = len - len % SIPHASH_WORD_BYTES;
    for (size_t off = 0; off < whole; off += SIPHASH_WORD_BYTES) {
        uint64_t m = load_le64(in + off);
        v3 ^= m;
        for (int r = 0; r < SIPHASH_C_ROUNDS; r++)
            SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << SIPHASH_LEN_SHIFT;
    for (size_t i = 0; i < len - whole; i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    for (int r = 0; r < SIPHASH_C_ROUNDS; r++)
        SIPROUND;
    v0 ^= b;

    v2 ^= 0xee;
    for (int r = 0; r < SIPHASH_D_ROUNDS; r++)
        SIPROUND;
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    for (int r = 0; r < SIPHASH_D_ROUNDS; r++)
        SIPROUND;
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}

#undef SIPROUND

/* Random hash key; falls back to the clock if the kernel has no entropy to give. */
void hash_random_key(uint8_t key[HASH_SIPHASH_KEY_BYTES])
{
    if (getrandom(key, SIPHASH_KEY_BYTES, GRND_NONBLOCK) == SIPHASH_KEY_BYTES)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_sec * UINT64_C(1000000007) ^ (uint64_t)ts.tv_nsec;
    uint64_t b = (uint64_t)(uintptr_t)key ^ rotl64(a, 29);
    for (unsigned i = 0; i < SIPHASH_WORD_BYTES; i++) {
        key[i] = (uint8_t)(a >> (8 * i));
        key[SIPHASH_WORD_BYTES + i] = (uint8_t)(b >> (8 * i));
    }
}

