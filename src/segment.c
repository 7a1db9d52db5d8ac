/*
 * segment.c - the spool's record format (see segment.h).
 */
#include "segment.h"

#include <string.h>

#include "bytes.h"
#include "hash.h"
#include "hep.h"

#define MAGIC_LEN (sizeof SEGMENT_MAGIC - 1)
#define OFF_LEN 0
#define OFF_CRC 4
#define OFF_CALL_HASH 8
#define OFF_TARGET 16
#define OFF_RESERVED 18
#define RESERVED_LEN 2
#define MAGIC3_LEN (sizeof HEP3_MAGIC - 1)
#define CHECKED_FROM OFF_CALL_HASH  /* the CRC covers the record from here to its end */

void segment_header_write(uint8_t *out, uint64_t created_s)
{
    memcpy(out, SEGMENT_MAGIC, MAGIC_LEN);
    bytes_put_be64(out + MAGIC_LEN, created_s);
}

bool segment_header_parse(const uint8_t *p, size_t len, uint64_t *created_s)
{
    if (len < SEGMENT_HEADER_LEN || memcmp(p, SEGMENT_MAGIC, MAGIC_LEN) != 0)
        return false;
    *created_s = bytes_get_be64(p + MAGIC_LEN);
    return true;
}

size_t segment_record_write(uint8_t *out, const struct segment_record *r)
{
    bytes_put_be32(out + OFF_LEN, (uint32_t)r->len);
    bytes_put_be64(out + OFF_CALL_HASH, r->call_hash);
    bytes_put_be16(out + OFF_TARGET, (uint16_t)r->target);
    memset(out + OFF_RESERVED, 0, RESERVED_LEN);
    memcpy(out + SEGMENT_RECORD_HEADER_LEN, r->data, r->len);
    size_t total = segment_record_len(r->len);
    bytes_put_be32(out + OFF_CRC, hash_crc32c(0, out + CHECKED_FROM, total - CHECKED_FROM));
    return total;
}

/* What can be judged from the header and the frame's first bytes in view. */
static bool plausible(const uint8_t *p, size_t avail, size_t *len)
{
    if (avail < OFF_CRC)
        return true;                /* too little to judge */
    uint32_t n = bytes_get_be32(p + OFF_LEN);
    if (n < HEP3_HDR_LEN || n > HEP3_MAX_LEN)
        return false;
    *len = n;
    if (avail < SEGMENT_RECORD_HEADER_LEN)
        return true;
    if (p[OFF_RESERVED] != 0 || p[OFF_RESERVED + 1] != 0)
        return false;
    const uint8_t *frame = p + SEGMENT_RECORD_HEADER_LEN;
    size_t have = avail - SEGMENT_RECORD_HEADER_LEN;
    size_t magic = have < MAGIC3_LEN ? have : MAGIC3_LEN;
    if (memcmp(frame, HEP3_MAGIC, magic) != 0)
        return false;
    return have < HEP3_HDR_LEN || bytes_get_be16(frame + MAGIC3_LEN) == n;
}

enum segment_status segment_record_parse(const uint8_t *p, size_t avail, struct segment_record *r, size_t *used)
{
    size_t n = 0;
    if (!plausible(p, avail, &n))
        return SEGMENT_BAD;
    if (avail < SEGMENT_RECORD_HEADER_LEN || avail - SEGMENT_RECORD_HEADER_LEN < n)
        return SEGMENT_SHORT;
    size_t total = segment_record_len(n);
    if (hash_crc32c(0, p + CHECKED_FROM, total - CHECKED_FROM) != bytes_get_be32(p + OFF_CRC))
        return SEGMENT_BAD;
    r->call_hash = bytes_get_be64(p + OFF_CALL_HASH);
    r->target = bytes_get_be16(p + OFF_TARGET);
    r->data = p + SEGMENT_RECORD_HEADER_LEN;
    r->len = n;
    *used = total;
    return SEGMENT_OK;
}

size_t segment_resync(const uint8_t *p, size_t avail)
{
    /* a record starts SEGMENT_RECORD_HEADER_LEN bytes before a "HEP3" */
    for (size_t from = SEGMENT_RECORD_HEADER_LEN + 1; from < avail;) {
        const uint8_t *hit = memmem(p + from, avail - from, HEP3_MAGIC, MAGIC3_LEN);
        if (hit == NULL)
            break;
        size_t at = (size_t)(hit - p) - SEGMENT_RECORD_HEADER_LEN;
        struct segment_record r;
        size_t used;
        if (segment_record_parse(p + at, avail - at, &r, &used) != SEGMENT_BAD)
            return at;
        from = (size_t)(hit - p) + 1;
    }
    /* a record may start in the last bytes, before its whole "HEP3" is in view */
    size_t hidden = SEGMENT_RECORD_HEADER_LEN + MAGIC3_LEN;
    for (size_t at = avail > hidden ? avail - hidden : 1; at < avail; at++) {
        size_t n = 0;
        if (plausible(p + at, avail - at, &n))
            return at;
    }
    return avail;
}
