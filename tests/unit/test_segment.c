/*
 * test_segment.c - unit tests for src/segment.c, the spool's on-disk
 * format, and hash_crc32c() that checks it: known CRC32C vectors, the
 * segment header, records written and parsed back, every truncation and
 * every single-bit flip of a record, and resync after damage.
 */
#include "hash.h"
#include "hep.h"
#include "segment.h"
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>

#define FRAME_MAX 2048u             /* the largest frame these tests build */
#define CALL_HASH UINT64_C(0x0123456789abcdef)
#define TARGET 3u
#define ZEROS_LEN 32u
#define GARBAGE_LEN 37u             /* garbage before a record: not a multiple of anything */

/*
 * A HEP3 frame of len bytes: "HEP3", its length, then filler bytes that
 * never spell "HEP3" (so resync finds only the frames meant).
 */
static size_t frame(uint8_t *out, size_t len, unsigned seed)
{
    memcpy(out, HEP3_MAGIC, 4);
    out[4] = (uint8_t)(len >> 8);
    out[5] = (uint8_t)len;
    for (size_t i = HEP3_HDR_LEN; i < len; i++)
        out[i] = (uint8_t)('a' + (seed + i) % 26);
    return len;
}

/* A whole record of a len-byte frame into out; returns its length. */
static size_t record(uint8_t *out, size_t len, unsigned seed, uint64_t call_hash, unsigned target)
{
    uint8_t f[FRAME_MAX];
    frame(f, len, seed);
    struct segment_record r = { .call_hash = call_hash, .target = target, .data = f, .len = len };
    size_t n = segment_record_write(out, &r);
    CU_ASSERT_EQUAL(n, segment_record_len(len));
    return n;
}

static void test_crc32c_known_vectors(void)
{
    static const uint8_t zeros[ZEROS_LEN];
    CU_ASSERT_EQUAL(hash_crc32c(0, "123456789", 9), 0xE3069283u);
    CU_ASSERT_EQUAL(hash_crc32c(0, zeros, sizeof zeros), 0x8A9136AAu);
    CU_ASSERT_EQUAL(hash_crc32c(0, "", 0), 0u);
}

/* Any split into pieces gives the one-shot value (the sliced loop and the byte loop agree). */
static void test_crc32c_incremental_equals_one_shot(void)
{
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    uint32_t whole = hash_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut++) {
        uint32_t c = hash_crc32c(hash_crc32c(0, buf, cut), buf + cut, sizeof buf - cut);
        CU_ASSERT_EQUAL(c, whole);
    }
    uint32_t c = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        c = hash_crc32c(c, buf + i, 1);
    CU_ASSERT_EQUAL(c, whole);
    CU_ASSERT_NOT_EQUAL(hash_crc32c(0, buf, sizeof buf - 1), whole);
}

static void test_segment_header_round_trip(void)
{
    uint8_t h[SEGMENT_HEADER_LEN + 1];
    segment_header_write(h, UINT64_C(1700000000));
    CU_ASSERT_EQUAL(memcmp(h, SEGMENT_MAGIC, 8), 0);
    uint64_t t = 0;
    CU_ASSERT_TRUE(segment_header_parse(h, SEGMENT_HEADER_LEN, &t));
    CU_ASSERT_EQUAL(t, UINT64_C(1700000000));
    segment_header_write(h, UINT64_MAX);
    CU_ASSERT_TRUE(segment_header_parse(h, sizeof h, &t));
    CU_ASSERT_EQUAL(t, UINT64_MAX);
    CU_ASSERT_FALSE(segment_header_parse(h, SEGMENT_HEADER_LEN - 1, &t));
    h[0] ^= 1;
    CU_ASSERT_FALSE(segment_header_parse(h, SEGMENT_HEADER_LEN, &t));
}

static void test_record_round_trip(void)
{
    static const size_t lens[] = { HEP3_HDR_LEN, HEP3_HDR_LEN + 1, 100, FRAME_MAX };
    static const unsigned targets[] = { 0, TARGET, SEGMENT_ANY_TARGET };
    uint8_t buf[SEGMENT_RECORD_HEADER_LEN + FRAME_MAX + 8];
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t j = 0; j < sizeof targets / sizeof targets[0]; j++) {
            uint64_t h = CALL_HASH ^ (uint64_t)(i * 31 + j);
            size_t n = record(buf, lens[i], (unsigned)i, h, targets[j]);
            uint8_t f[FRAME_MAX];
            frame(f, lens[i], (unsigned)i);
            /* trailing bytes (the next record) do not change the answer */
            for (size_t extra = 0; extra <= 8; extra += 8) {
                struct segment_record r;
                size_t used = 0;
                CU_ASSERT_EQUAL_FATAL(segment_record_parse(buf, n + extra, &r, &used), SEGMENT_OK);
                CU_ASSERT_EQUAL(used, n);
                CU_ASSERT_EQUAL(r.call_hash, h);
                CU_ASSERT_EQUAL(r.target, targets[j]);
                CU_ASSERT_EQUAL(r.len, lens[i]);
                CU_ASSERT_PTR_EQUAL(r.data, buf + SEGMENT_RECORD_HEADER_LEN);
                CU_ASSERT_EQUAL(memcmp(r.data, f, lens[i]), 0);
            }
        }
}

/* A reader that stops anywhere inside a record is told to read on, never that it is damaged. */
static void test_every_truncation_is_short(void)
{
    uint8_t buf[SEGMENT_RECORD_HEADER_LEN + 200];
    size_t n = record(buf, 200, 1, CALL_HASH, TARGET);
    for (size_t cut = 0; cut < n; cut++) {
        struct segment_record r;
        size_t used = 0;
        enum segment_status rc = segment_record_parse(buf, cut, &r, &used);
        CU_ASSERT_EQUAL(rc, SEGMENT_SHORT);
        if (rc != SEGMENT_SHORT)
            fprintf(stderr, "truncated to %zu bytes: status %d\n", cut, rc);
    }
}

/*
 * CRC32C catches every single-bit error: a flip anywhere is BAD (a length
 * made longer may also read as SHORT), never a record.
 */
static void test_every_bit_flip_is_caught(void)
{
    uint8_t good[SEGMENT_RECORD_HEADER_LEN + 64], buf[sizeof good];
    size_t n = record(good, 64, 2, CALL_HASH, TARGET);
    for (size_t bit = 0; bit < 8 * n; bit++) {
        memcpy(buf, good, n);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        struct segment_record r;
        size_t used = 0;
        enum segment_status rc = segment_record_parse(buf, n, &r, &used);
        bool in_length = bit / 8 < 4;
        bool longer = in_length && (buf[bit / 8] & (1u << (bit % 8))) != 0;
        CU_ASSERT(rc == SEGMENT_BAD || (longer && rc == SEGMENT_SHORT));
        if (!(rc == SEGMENT_BAD || (longer && rc == SEGMENT_SHORT)))
            fprintf(stderr, "bit %zu flipped: status %d\n", bit, rc);
    }
}

/* A reader's loop: parse, resync after BAD; the records found in order. */
static size_t read_all(const uint8_t *p, size_t avail, uint64_t *hashes, size_t max, unsigned *bad)
{
    size_t at = 0, found = 0;
    *bad = 0;
    while (at < avail) {
        struct segment_record r;
        size_t used = 0;
        enum segment_status rc = segment_record_parse(p + at, avail - at, &r, &used);
        if (rc == SEGMENT_SHORT)
            break;
        if (rc == SEGMENT_BAD) {
            (*bad)++;
            size_t skip = segment_resync(p + at, avail - at);
            CU_ASSERT_FATAL(skip > 0 && skip <= avail - at);
            at += skip;
            continue;
        }
        if (found < max)
            hashes[found] = r.call_hash;
        found++;
        at += used;
    }
    return found;
}

static void test_resync_after_garbage_and_damage(void)
{
    enum { RECORDS = 4, LEN = 300 };
    uint8_t buf[GARBAGE_LEN + RECORDS * (SEGMENT_RECORD_HEADER_LEN + LEN)];
    size_t off[RECORDS + 1];
    /* garbage (with a stray "HEP3" that is no record), then records */
    for (size_t i = 0; i < GARBAGE_LEN; i++)
        buf[i] = (uint8_t)(0xA5 ^ i);
    memcpy(buf + 25, HEP3_MAGIC, 4);
    size_t at = GARBAGE_LEN;
    for (unsigned i = 0; i < RECORDS; i++) {
        off[i] = at;
        at += record(buf + at, LEN, i, CALL_HASH + i, TARGET);
    }
    off[RECORDS] = at;
    size_t total = at;

    CU_ASSERT_EQUAL(segment_resync(buf, total), GARBAGE_LEN);
    uint64_t h[RECORDS + 1];
    unsigned bad;
    CU_ASSERT_EQUAL(read_all(buf, total, h, RECORDS + 1, &bad), RECORDS);
    CU_ASSERT_EQUAL(bad, 1);
    CU_ASSERT_EQUAL(h[0], CALL_HASH);
    CU_ASSERT_EQUAL(h[RECORDS - 1], CALL_HASH + RECORDS - 1);

    /* the second record damaged (a payload byte, then its length): the third is next */
    buf[off[1] + SEGMENT_RECORD_HEADER_LEN + LEN / 2] ^= 0x10;
    CU_ASSERT_EQUAL(segment_resync(buf + off[1], total - off[1]), off[2] - off[1]);
    CU_ASSERT_EQUAL(read_all(buf + GARBAGE_LEN, total - GARBAGE_LEN, h, RECORDS, &bad), RECORDS - 1);
    CU_ASSERT_EQUAL(bad, 1);
    CU_ASSERT_EQUAL(h[0], CALL_HASH);
    CU_ASSERT_EQUAL(h[1], CALL_HASH + 2);
    CU_ASSERT_EQUAL(h[2], CALL_HASH + 3);
    buf[off[1] + 2] ^= 0x40;
    CU_ASSERT_EQUAL(segment_resync(buf + off[1], total - off[1]), off[2] - off[1]);

    /* the last record cut short after damage: resync points at it, and it reads as SHORT */
    size_t cut = off[3] + SEGMENT_RECORD_HEADER_LEN + 10;
    size_t r2 = segment_resync(buf + off[1], cut - off[1]);
    CU_ASSERT_EQUAL(r2, off[2] - off[1]);
    buf[off[2] + 5] ^= 1;       /* and the third damaged too: the torn fourth is next */
    CU_ASSERT_EQUAL(segment_resync(buf + off[2], cut - off[2]), off[3] - off[2]);
    struct segment_record r;
    size_t used;
    CU_ASSERT_EQUAL(segment_record_parse(buf + off[3], cut - off[3], &r, &used), SEGMENT_SHORT);
}

/* Nothing to find: the end (or a position in the last bytes, where a record may begin), never 0. */
static void test_resync_without_a_record(void)
{
    uint8_t buf[512];
    memset(buf, 0, sizeof buf);
    for (size_t avail = 1; avail <= sizeof buf; avail++) {
        size_t at = segment_resync(buf, avail);
        CU_ASSERT(at > 0 && at <= avail);
        /* all zeros: a length of 0 is no record until the last 3 bytes, which cannot be judged */
        CU_ASSERT(at == avail || at + 4 > avail);
    }
    /* a length that no frame can have, everywhere */
    memset(buf, 0xff, sizeof buf);
    for (size_t avail = 1; avail <= sizeof buf; avail++) {
        size_t at = segment_resync(buf, avail);
        CU_ASSERT(at > 0 && at <= avail);
        CU_ASSERT(at == avail || at + 4 > avail);
        struct segment_record r;
        size_t used;
        if (at < avail)
            CU_ASSERT_EQUAL(segment_record_parse(buf + at, avail - at, &r, &used), SEGMENT_SHORT);
    }
    CU_ASSERT_EQUAL(segment_resync(buf, 1), 1);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "crc32c: known vectors", test_crc32c_known_vectors },
        { "crc32c: incremental equals one-shot", test_crc32c_incremental_equals_one_shot },
        { "segment header round trip", test_segment_header_round_trip },
        { "record round trip", test_record_round_trip },
        { "every truncation is SHORT", test_every_truncation_is_short },
        { "every bit flip is caught", test_every_bit_flip_is_caught },
        { "resync after garbage and damage", test_resync_after_garbage_and_damage },
        { "resync without a record", test_resync_without_a_record },
        { NULL, NULL },
    };
    return unit_run("segment", tests);
}
