/*
 * fuzz_segment.c - libFuzzer harness for the spool's record reader
 * (src/segment.c: segment_record_parse(), segment_resync()).
 *
 * The input is the records of a segment file, as the spool's reader sees
 * them after the header: it reads them the way spool.c does, a record at
 * a time, resyncing after damage, until the input is used up or ends
 * inside a record (SHORT: a torn tail).  Checked (any failure aborts):
 *   - every step makes progress, so the loop ends: an OK record's length
 *     and a resync's skip are above zero and within what is left;
 *   - an OK record lies within the input: its frame right after its
 *     header, as long as the header says, a whole HEP3 frame whose own
 *     length agrees, a target that fits its 16 bits;
 *   - an OK record written again with segment_record_write() gives the
 *     same bytes (the CRC, the reserved zeros and all);
 *   - resync stops at a record or at one that runs past the input (the
 *     parse there is not BAD), and skips no whole record on the way.
 *
 * Build (fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -std=c11 -D_GNU_SOURCE -I src fuzz/fuzz_segment.c src/segment.c src/hash.c \
 *       -lpthread -o fuzz_segment
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hep.h"
#include "segment.h"
#include "fuzz.h"

static uint8_t out[SEGMENT_RECORD_HEADER_LEN + HEP3_MAX_LEN];

static void check_record(const uint8_t *data, size_t size, size_t at, const struct segment_record *r, size_t used)
{
    CHECK(used == segment_record_len(r->len));
    CHECK(used > 0 && used <= size - at);
    CHECK(r->data == data + at + SEGMENT_RECORD_HEADER_LEN);
    CHECK(r->len >= HEP3_HDR_LEN && r->len <= HEP3_MAX_LEN);
    CHECK(memcmp(r->data, HEP3_MAGIC, sizeof HEP3_MAGIC - 1) == 0);
    CHECK(((size_t)r->data[4] << 8 | r->data[5]) == r->len);
    CHECK(r->target <= SEGMENT_ANY_TARGET);
    CHECK(segment_record_write(out, r) == used);
    CHECK(memcmp(out, data + at, used) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 0;
    while (at < size) {
        struct segment_record r;
        size_t used = 0;
        enum segment_status rc = segment_record_parse(data + at, size - at, &r, &used);
        if (rc == SEGMENT_SHORT)
            break;                  /* the input ends inside a record: a torn tail */
        if (rc == SEGMENT_OK) {
            check_record(data, size, at, &r, used);
            at += used;
            continue;
        }
        CHECK(rc == SEGMENT_BAD);
        size_t skip = segment_resync(data + at, size - at);
        CHECK(skip > 0 && skip <= size - at);
        for (size_t q = at + 1; q < at + skip; q++)
            CHECK(segment_record_parse(data + q, size - q, &r, &used) != SEGMENT_OK);
        at += skip;
        if (at < size)
            CHECK(segment_record_parse(data + at, size - at, &r, &used) != SEGMENT_BAD);
    }
    return 0;
}
