/*
 * segment.h - the spool's on-disk format: segment files of records.
 *
 * A segment file starts with a header:
 *
 *   offset  size  field
 *   0       8     magic "HRSPOOL1"
 *   8       8     creation time, Unix seconds, big-endian
 *
 * then holds records back to back, each:
 *
 *   0       4     payload length N, big-endian (1 to HEP3_MAX_LEN)
 *   4       4     CRC32C of bytes 8 .. 20+N, big-endian
 *   8       8     call hash (FNV-1a of the call key: balance: hash keeps it)
 *   16      2     target index in its destination, SEGMENT_ANY_TARGET for
 *                 "whichever target the balance mode picks"
 *   18      2     zero (reserved)
 *   20      N     the HEP3 packet, byte for byte as it would have been sent
 *
 * A record's payload is always a whole HEP3 frame (a stream destination
 * emits nothing else), so its own length field repeats N: a reader that
 * lost its place (a damaged length) finds the next record by looking for a
 * record header whose CRC and frame agree.  Pure functions over bytes: no
 * I/O, so the unit tests and the fuzzer drive them directly.
 */
#ifndef HEPROUTER_SEGMENT_H
#define HEPROUTER_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEGMENT_MAGIC "HRSPOOL1"
#define SEGMENT_HEADER_LEN 16
#define SEGMENT_RECORD_HEADER_LEN 20
#define SEGMENT_ANY_TARGET 0xffffu

struct segment_record {
    uint64_t call_hash;
    unsigned target;                /* SEGMENT_ANY_TARGET or an index */
    const uint8_t *data;            /* the HEP3 frame, into the parsed bytes */
    size_t len;
};

enum segment_status {
    SEGMENT_OK = 0,                 /* a record, *used bytes long */
    SEGMENT_SHORT,                  /* the bytes end inside a record (more to read, or a torn tail) */
    SEGMENT_BAD,                    /* not a record: damaged bytes */
};

/* Writes a segment header to out (SEGMENT_HEADER_LEN bytes). */
void segment_header_write(uint8_t *out, uint64_t created_s);

/* true when p (len bytes) starts with a segment header; *created_s set then. */
bool segment_header_parse(const uint8_t *p, size_t len, uint64_t *created_s);

/* Bytes a record of a len-byte packet takes on disk. */
static inline size_t segment_record_len(size_t len)
{
    return SEGMENT_RECORD_HEADER_LEN + len;
}

/* Writes r to out, which has segment_record_len(r->len) bytes; returns that length. */
size_t segment_record_write(uint8_t *out, const struct segment_record *r);

/*
 * Parses the record at p (avail bytes).  SEGMENT_OK fills *r (pointing
 * into p) and *used; SEGMENT_SHORT when avail ends inside a plausible
 * record; SEGMENT_BAD when the bytes are not a record (a length out of
 * range, a CRC or a frame that disagrees).
 */
enum segment_status segment_record_parse(const uint8_t *p, size_t avail, struct segment_record *r, size_t *used);

/*
 * After SEGMENT_BAD at p: the offset of the next position in p (avail
 * bytes) where a whole valid record starts, or where one that runs past
 * avail may start (SEGMENT_SHORT there); avail when there is none.  Never
 * 0: the damaged byte is skipped.
 */
size_t segment_resync(const uint8_t *p, size_t avail);

#endif
