/*
 * hash.h - the hash functions the router shares.
 *
 * Where a hash must be the same in every process and run: FNV-1a (64 bit)
 * for balance: hash and the memory store's name tables, hash_words64() for
 * duplicate detection, and SipHash-2-4 under a fixed key for the call keys
 * of Call-IDs longer than limits.call_id_max (128 bits: no collisions by
 * accident).  Where keys come from the network and a bucket is chosen by
 * them, a random key, so nobody can craft keys that share one: SipHash-1-3
 * for the memory store's slots (looked up for every packet) and SipHash-2-4
 * for the hold queue's calls.  SipHash also
 * comes in a streaming form, for a key that is hashed in pieces without
 * being copied together first (a Call-ID with its folds replaced by single
 * spaces).  CRC32C checks the spool's records for torn and damaged bytes.
 */
#ifndef HEPROUTER_HASH_H
#define HEPROUTER_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV64_OFFSET UINT64_C(14695981039346656037)
#define HASH_SIPHASH_KEY_BYTES 16

/* FNV-1a over data, starting from basis (HASH_FNV64_OFFSET for the standard one). */
uint64_t hash_fnv1a64(uint64_t basis, const void *data, size_t len);

/*
 * A fast 64-bit hash, sixteen bytes a step, for telling packets apart
 * where nobody gains by crafting collisions (duplicate detection): FNV-1a
 * goes a byte at a time, and a word at a time through murmur3's finaliser
 * (one chain of multiplications) still showed in profiles of the packet
 * path.  Stable across runs and instances of one version.
 */
uint64_t hash_words64(const void *data, size_t len);

#define HASH_FMIX64_MUL UINT64_C(0xff51afd7ed558ccd)    /* murmur3 fmix64 constants */
#define HASH_FMIX64_MUL2 UINT64_C(0xc4ceb9fe1a85ec53)
#define HASH_FMIX64_SHIFT 33
#define HASH_WORD_BITS 64

/* murmur3's 64-bit finaliser: every input bit affects every output bit.  Inline: it runs per word. */
static inline uint64_t hash_fmix64(uint64_t x)
{
    x ^= x >> HASH_FMIX64_SHIFT;
    x *= HASH_FMIX64_MUL;
    x ^= x >> HASH_FMIX64_SHIFT;
    x *= HASH_FMIX64_MUL2;
    x ^= x >> HASH_FMIX64_SHIFT;
    return x;
}

/*
 * a * b to 128 bits, the two halves folded by XOR (wyhash's mixing step):
 * every bit of either input reaches most bits of the result.  One
 * multiplication where the platform has 64x64->128; four otherwise.
 */
static inline uint64_t hash_mul_fold(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> HASH_WORD_BITS);
#else
    const uint64_t half = UINT32_MAX;
    const unsigned shift = HASH_WORD_BITS / 2;
    uint64_t alo = a & half, ahi = a >> shift, blo = b & half, bhi = b >> shift;
    uint64_t ll = alo * blo, lh = alo * bhi, hl = ahi * blo, hh = ahi * bhi;
    uint64_t mid = (ll >> shift) + (lh & half) + (hl & half);
    uint64_t lo = (ll & half) | mid << shift;
    uint64_t hi = hh + (lh >> shift) + (hl >> shift) + (mid >> shift);
    return lo ^ hi;
#endif
}

/* SipHash-2-4, 128-bit output: out[0], out[1] are the reference's two little-endian halves. */
void hash_siphash128(const uint8_t key[HASH_SIPHASH_KEY_BYTES], const void *data, size_t len,
                     uint64_t out[2]);

/*
 * SipHash-1-3, 128-bit output, laid out as hash_siphash128()'s: the same
 * algorithm with one round per word and three at the end, as hash tables
 * use it (Python's str, Rust's HashMap); about a third cheaper for a Call-ID.
 * The memory store's key: under a random key, it never leaves the process.
 */
void hash_siphash13_128(const uint8_t key[HASH_SIPHASH_KEY_BYTES], const void *data, size_t len,
                        uint64_t out[2]);

/*
 * Streaming SipHash-2-4-128: init, any number of updates, one final.  The
 * result is exactly hash_siphash128() of the concatenated bytes, however
 * they were split.  The state lives wherever the caller puts it (on the
 * stack); nothing is allocated.  Its fields are private to hash.c.
 */
struct hash_siphash {
    uint64_t v[4];              /* the four state words */
    uint64_t tail;              /* pending bytes of an unfinished word, little-endian */
    size_t len;                 /* bytes hashed so far */
};

void hash_siphash128_init(struct hash_siphash *h, const uint8_t key[HASH_SIPHASH_KEY_BYTES]);
void hash_siphash128_update(struct hash_siphash *h, const void *data, size_t len);
/* Writes the hash to out (as hash_siphash128() does); h must be initialised again before reuse. */
void hash_siphash128_final(struct hash_siphash *h, uint64_t out[2]);

/*
 * CRC32C (Castagnoli, as in iSCSI and ext4): the checksum of the spool's
 * records.  crc is the running value (0 to start); pass the result back in
 * to continue over the next piece.
 */
uint32_t hash_crc32c(uint32_t crc, const void *data, size_t len);

/* Fills key with random bytes (getrandom, else the clock). */
void hash_random_key(uint8_t key[HASH_SIPHASH_KEY_BYTES]);

#endif
