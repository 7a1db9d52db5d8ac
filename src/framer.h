/*
 * framer.h - HEP3 stream framing, without sockets.
 *
 * A HEP3 stream (TCP) is packets back to back, each starting with "HEP3"
 * and its u16 total length.  Each inbound TCP connection owns one framer;
 * the unit tests and fuzz/fuzz_framer.c drive it directly.  Bytes go in at
 * the end of one buffer of max_frame bytes, whole frames come out.  A frame
 * returned by framer_next() points into the buffer and stays valid until
 * the next framer_space() or framer_feed(), which move the unconsumed tail
 * to the front.
 */
#ifndef HEPROUTER_FRAMER_H
#define HEPROUTER_FRAMER_H

#include <stddef.h>
#include <stdint.h>

enum framer_status {
    FRAMER_OK = 0,                  /* *frame / *len hold one whole frame */
    FRAMER_NEED_MORE,               /* no whole frame buffered yet */
    FRAMER_BAD_MAGIC,               /* the stream does not start with "HEP3" */
    FRAMER_BAD_LENGTH,              /* total length < 6 or > max_frame */
};

struct framer {
    uint8_t *buf;
    size_t cap;                     /* max_frame, at least one HEP3 header */
    size_t start;                   /* first byte not yet returned as a frame */
    size_t end;                     /* one past the last byte received */
    size_t max_frame;
};

/* Allocates the buffer; 0, or -1 on ENOMEM. */
int framer_init(struct framer *f, size_t max_frame);

void framer_free(struct framer *f);

/*
 * Where the next read() goes (compacting first).  *room > 0 once
 * framer_next() has returned FRAMER_NEED_MORE.
 */
uint8_t *framer_space(struct framer *f, size_t *room);

/* Records that n bytes were written at framer_space(). */
void framer_commit(struct framer *f, size_t n);

/* Copies as much of data as fits; returns how many bytes were taken. */
size_t framer_feed(struct framer *f, const uint8_t *data, size_t len);

/*
 * Takes the next whole frame.  On BAD_MAGIC / BAD_LENGTH the stream cannot
 * be resynchronised: the caller closes the connection (the status repeats
 * on every later call, whatever is fed).  *len is the offending length on
 * BAD_LENGTH.
 */
enum framer_status framer_next(struct framer *f, const uint8_t **frame, size_t *len);

/* Bytes buffered but not yet returned as a frame. */
size_t framer_pending(const struct framer *f);

#endif
