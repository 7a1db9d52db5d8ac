/*
 * test_hash.c - unit tests for src/hash.c against published test vectors.
 */
#include "hash.h"
#include "unit.h"

static void test_fnv1a64_known_values(void)
{
    /* from the FNV reference test suite */
    CU_ASSERT_EQUAL(hash_fnv1a64(HASH_FNV64_OFFSET, "", 0), UINT64_C(0xcbf29ce484222325));
    CU_ASSERT_EQUAL(hash_fnv1a64(HASH_FNV64_OFFSET, "a", 1), UINT64_C(0xaf63dc4c8601ec8c));
    CU_ASSERT_EQUAL(hash_fnv1a64(HASH_FNV64_OFFSET, "foobar", 6), UINT64_C(0x85944171f73967e8));
    /* a different basis gives a different hash */
    CU_ASSERT_NOT_EQUAL(hash_fnv1a64(1, "a", 1), hash_fnv1a64(HASH_FNV64_OFFSET, "a", 1));
}

/* Reference SipHash-2-4-128 vectors: key 00..0f, message 00..(n-1). */
static void test_siphash128_reference_vectors(void)
{
    static const uint8_t want[][16] = {
        { 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93 },
        { 0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45 },
    };
    uint8_t key[HASH_SIPHASH_KEY_BYTES], msg[16];
    for (unsigned i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)i;
    for (unsigned i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;
    for (size_t n = 0; n < sizeof want / sizeof want[0]; n++) {
        uint64_t out[2];
        uint8_t got[16];
        hash_siphash128(key, msg, n, out);
        for (unsigned i = 0; i < 8; i++) {
            got[i] = (uint8_t)(out[0] >> (8 * i));
            got[8 + i] = (uint8_t)(out[1] >> (8 * i));
        }
        CU_ASSERT_EQUAL(memcmp(got, want[n], 16), 0);
    }
}

static void test_words64_sees_every_byte_and_the_length(void)
{
    uint8_t a[600], b[600];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = (uint8_t)(i * 7);
    memcpy(b, a, sizeof a);
    uint64_t h = hash_words64(a, sizeof a);
    CU_ASSERT_EQUAL(h, hash_words64(b, sizeof b));      /* deterministic */
    for (size_t i = 0; i < sizeof a; i += 37) {          /* any byte, words and tail */
        b[i] ^= 1;
        CU_ASSERT_NOT_EQUAL(hash_words64(b, sizeof b), h);
        b[i] ^= 1;
    }
    b[sizeof b - 1] ^= 0x80;
    CU_ASSERT_NOT_EQUAL(hash_words64(b, sizeof b), h);
    /* a zero byte appended changes the hash (the length is mixed in) */
    uint8_t z[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 0 };
    CU_ASSERT_NOT_EQUAL(hash_words64(z, 8), hash_words64(z, 9));
    CU_ASSERT_NOT_EQUAL(hash_words64("", 0), hash_words64(z + 8, 1));
}

static void test_random_keys_differ(void)
{
    uint8_t a[HASH_SIPHASH_KEY_BYTES], b[HASH_SIPHASH_KEY_BYTES];
    hash_random_key(a);
    hash_random_key(b);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "FNV-1a 64 known values", test_fnv1a64_known_values },
        { "SipHash-2-4-128 reference vectors", test_siphash128_reference_vectors },
        { "words64 sees every byte and the length", test_words64_sees_every_byte_and_the_length },
        { "random keys differ", test_random_keys_differ },
        { NULL, NULL },
    };
    return unit_run("hash", tests);
}
