/*
 * hash.c - FNV-1a, SipHash-2-4 (one-shot and streaming) and SipHash-1-3
 * (one-shot), the payload hash and CRC32C (see hash.h).
 */
#include "hash.h"

#include "bytes.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define FNV64_PRIME UINT64_C(1099511628211)
#define SIPHASH_KEY_BYTES HASH_SIPHASH_KEY_BYTES
#define SIPHASH_C_ROUNDS 2                  /* SipHash-2-4 */
#define SIPHASH_D_ROUNDS 4
#define SIPHASH13_C_ROUNDS 1                /* SipHash-1-3 */
#define SIPHASH13_D_ROUNDS 3
#define SIPHASH_WORD_BYTES 8
#define SIPHASH_LEN_SHIFT 56

#define WORDS64_SEED UINT64_C(0x9e3779b97f4a7c15)   /* 2^64 / golden ratio */
#define WORD_BYTES 8
#define WORDS64_BLOCK (4 * WORD_BYTES)

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

/*
 * Thirty-two bytes a step: each pair of words, offset by a constant, is
 * multiplied to 128 bits and folded (hash_mul_fold), independent of what
 * came before, so the multiplications overlap; only the XOR into the state
 * and one multiplication of it (which makes the order of the steps count)
 * wait for the previous step.  The second pair's product is rotated half
 * way round, so that the two pairs of a step are not interchangeable.  A
 * last step takes the rest: the last 32 bytes, overlapping the step
 * before, or, for less than 32 bytes in all, the bytes padded with zeros;
 * the length is in the seed.
 */
static inline uint64_t words64_step(uint64_t h, const uint8_t *p)
{
    uint64_t a = hash_mul_fold(bytes_get_le64(p) ^ HASH_FMIX64_MUL, bytes_get_le64(p + WORD_BYTES) ^ HASH_FMIX64_MUL2);
    uint64_t b = hash_mul_fold(bytes_get_le64(p + 2 * WORD_BYTES) ^ HASH_FMIX64_MUL,
                               bytes_get_le64(p + 3 * WORD_BYTES) ^ HASH_FMIX64_MUL2);
    return (h ^ a ^ rotl64(b, HASH_WORD_BITS / 2)) * WORDS64_SEED;
}

uint64_t hash_words64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = WORDS64_SEED ^ len;
    size_t i = 0;
    for (; i + WORDS64_BLOCK <= len; i += WORDS64_BLOCK)
        h = words64_step(h, p + i);
    if (i < len && len >= WORDS64_BLOCK) {
        h = words64_step(h, p + len - WORDS64_BLOCK);      /* the last block, overlapping the one before */
    } else if (i < len) {
        uint8_t rest[WORDS64_BLOCK] = { 0 };
        memcpy(rest, p + i, len - i);
        h = words64_step(h, rest);
    }
    return hash_fmix64(h);
}

/* CRC32C: the reflected Castagnoli polynomial, a table of 8 x 256 words (slicing by 8). */
#define CRC32C_POLY UINT32_C(0x82f63b78)
#define CRC32C_SLICES 8
#define CRC32C_BYTE_VALUES 256

static uint32_t crc32c_table[CRC32C_SLICES][CRC32C_BYTE_VALUES];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
    for (uint32_t b = 0; b < CRC32C_BYTE_VALUES; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][b] = c;
    }
    for (uint32_t b = 0; b < CRC32C_BYTE_VALUES; b++)
        for (int s = 1; s < CRC32C_SLICES; s++)
            crc32c_table[s][b] = (crc32c_table[s - 1][b] >> 8) ^ crc32c_table[0][crc32c_table[s - 1][b] & 0xff];
}

uint32_t hash_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    pthread_once(&crc32c_once, crc32c_init);
    crc = ~crc;
    for (; len >= CRC32C_SLICES; len -= CRC32C_SLICES, p += CRC32C_SLICES) {
        uint32_t lo = crc ^ bytes_get_le32(p);
        crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
              crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
              crc32c_table[3][p[4]] ^ crc32c_table[2][p[5]] ^ crc32c_table[1][p[6]] ^ crc32c_table[0][p[7]];
    }
    while (len-- > 0)
        crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
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

static inline void siphash_round(uint64_t v[4])
{
    v[0] += v[1]; v[1] = rotl64(v[1], 13); v[1] ^= v[0]; v[0] = rotl64(v[0], 32);
    v[2] += v[3]; v[3] = rotl64(v[3], 16); v[3] ^= v[2];
    v[0] += v[3]; v[3] = rotl64(v[3], 21); v[3] ^= v[0];
    v[2] += v[1]; v[1] = rotl64(v[1], 17); v[1] ^= v[2]; v[2] = rotl64(v[2], 32);
}

/*
 * The three steps of SipHash-c-d-128, shared by the one-shot and the
 * streaming form and by both round counts, so that the algorithm is
 * written once.  Being static inline, with the round counts constant where
 * they are called, they compile into the one-shot loop as if written out
 * there.
 */
static inline void siphash_init(uint64_t v[4], const uint8_t k[SIPHASH_KEY_BYTES])
{
    uint64_t k0 = bytes_get_le64(k), k1 = bytes_get_le64(k + SIPHASH_WORD_BYTES);
    v[0] = UINT64_C(0x736f6d6570736575) ^ k0;
    v[1] = UINT64_C(0x646f72616e646f6d) ^ k1;
    v[2] = UINT64_C(0x6c7967656e657261) ^ k0;
    v[3] = UINT64_C(0x7465646279746573) ^ k1;
    v[1] ^= 0xee;                               /* 128-bit output */
}

static inline void siphash_compress(uint64_t v[4], uint64_t m, int c_rounds)
{
    v[3] ^= m;
    for (int r = 0; r < c_rounds; r++)
        siphash_round(v);
    v[0] ^= m;
}

/* last: the final bytes (fewer than eight) with the length in the top byte. */
static inline void siphash_finish(uint64_t v[4], uint64_t last, int c_rounds, int d_rounds, uint64_t out[2])
{
    siphash_compress(v, last, c_rounds);
    v[2] ^= 0xee;
    for (int r = 0; r < d_rounds; r++)
        siphash_round(v);
    out[0] = v[0] ^ v[1] ^ v[2] ^ v[3];
    v[1] ^= 0xdd;
    for (int r = 0; r < d_rounds; r++)
        siphash_round(v);
    out[1] = v[0] ^ v[1] ^ v[2] ^ v[3];
}

static inline void siphash_oneshot(const uint8_t k[SIPHASH_KEY_BYTES], const void *data, size_t len,
                                   int c_rounds, int d_rounds, uint64_t out[2])
{
    const uint8_t *in = data;
    uint64_t v[4];
    siphash_init(v, k);
    size_t whole = len - len % SIPHASH_WORD_BYTES;
    for (size_t off = 0; off < whole; off += SIPHASH_WORD_BYTES)
        siphash_compress(v, bytes_get_le64(in + off), c_rounds);
    uint64_t last = (uint64_t)len << SIPHASH_LEN_SHIFT | bytes_get_le_tail(in + whole, len - whole);
    siphash_finish(v, last, c_rounds, d_rounds, out);
}

/*
 * SipHash-2-4 with its 128-bit output (Aumasson and Bernstein's reference
 * "siphash" with outlen 16): out[0] and out[1] are the two little-endian
 * halves of the reference's 16 output bytes.  Kept apart from the streaming
 * form, which carries a partial word between calls: this one is on the
 * packet path and needs none of that.
 */
void hash_siphash128(const uint8_t k[HASH_SIPHASH_KEY_BYTES], const void *data, size_t len, uint64_t out[2])
{
    siphash_oneshot(k, data, len, SIPHASH_C_ROUNDS, SIPHASH_D_ROUNDS, out);
}

void hash_siphash13_128(const uint8_t k[HASH_SIPHASH_KEY_BYTES], const void *data, size_t len, uint64_t out[2])
{
    siphash_oneshot(k, data, len, SIPHASH13_C_ROUNDS, SIPHASH13_D_ROUNDS, out);
}

void hash_siphash128_init(struct hash_siphash *h, const uint8_t key[HASH_SIPHASH_KEY_BYTES])
{
    siphash_init(h->v, key);
    h->tail = 0;
    h->len = 0;
}

/* Bytes are gathered into h->tail until a word is complete, then compressed. */
void hash_siphash128_update(struct hash_siphash *h, const void *data, size_t len)
{
    const uint8_t *in = data;
    size_t fill = h->len % SIPHASH_WORD_BYTES;
    h->len += len;
    if (fill != 0) {
        for (; fill < SIPHASH_WORD_BYTES && len > 0; fill++, len--)
            h->tail |= (uint64_t)*in++ << (8 * fill);
        if (fill < SIPHASH_WORD_BYTES)
            return;
        siphash_compress(h->v, h->tail, SIPHASH_C_ROUNDS);
        h->tail = 0;
    }
    for (; len >= SIPHASH_WORD_BYTES; in += SIPHASH_WORD_BYTES, len -= SIPHASH_WORD_BYTES)
        siphash_compress(h->v, bytes_get_le64(in), SIPHASH_C_ROUNDS);
    h->tail = bytes_get_le_tail(in, len);   /* a word boundary here: tail was 0 */
}

void hash_siphash128_final(struct hash_siphash *h, uint64_t out[2])
{
    siphash_finish(h->v, h->tail | (uint64_t)h->len << SIPHASH_LEN_SHIFT, SIPHASH_C_ROUNDS, SIPHASH_D_ROUNDS, out);
}

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

