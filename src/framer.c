/*
 * framer.c - HEP3 stream framing: bytes in, whole frames out.
 *
 * Pure: no sockets, no event loop, one buffer allocated at init.  The
 * stream's bytes are checked as they arrive, so that a sender that is not
 * speaking HEP3, or announces a frame larger than the limit, is refused on
 * the first bytes that show it instead of after a buffer's worth.
 */
#include "framer.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "hep.h"

int framer_init(struct framer *f, size_t max_frame)
{
    memset(f, 0, sizeof *f);
    f->max_frame = max_frame;
    /* a frame can never exceed the u16 length field, nor be under a header */
    f->cap = max_frame > HEP3_MAX_LEN ? HEP3_MAX_LEN : max_frame;
    if (f->cap < HEP3_HDR_LEN)
        f->cap = HEP3_HDR_LEN;
    f->buf = malloc(f->cap);
    return f->buf != NULL ? 0 : -1;
}

void framer_free(struct framer *f)
{
    free(f->buf);
    f->buf = NULL;
    f->start = f->end = 0;
}

/* Moves the unconsumed tail (at most one partial frame) to the front. */
static void compact(struct framer *f)
{
    if (f->start == 0)
        return;
    size_t n = f->end - f->start;
    if (n > 0)
        memmove(f->buf, f->buf + f->start, n);
    f->start = 0;
    f->end = n;
}

uint8_t *framer_space(struct framer *f, size_t *room)
{
    compact(f);
    *room = f->cap - f->end;
    return f->buf + f->end;
}

void framer_commit(struct framer *f, size_t n)
{
    f->end += n;
}

size_t framer_feed(struct framer *f, const uint8_t *data, size_t len)
{
    size_t room;
    uint8_t *p = framer_space(f, &room);
    size_t n = len < room ? len : room;
    if (n > 0)
        memcpy(p, data, n);
    f->end += n;
    return n;
}

enum framer_status framer_next(struct framer *f, const uint8_t **frame, size_t *len)
{
    const uint8_t *p = f->buf + f->start;
    size_t avail = f->end - f->start;
    size_t magic_len = sizeof HEP3_MAGIC - 1;

    /* check the magic as soon as its first byte is there: garbage fails fast */
    if (memcmp(p, HEP3_MAGIC, avail < magic_len ? avail : magic_len) != 0)
        return FRAMER_BAD_MAGIC;
    if (avail < HEP3_HDR_LEN)
        return FRAMER_NEED_MORE;
    size_t flen = bytes_get_be16(p + magic_len);
    if (flen < HEP3_HDR_LEN || flen > f->max_frame || flen > f->cap) {
        *len = flen;
        return FRAMER_BAD_LENGTH;
    }
    if (avail < flen)
        return FRAMER_NEED_MORE;
    *frame = p;
    *len = flen;
    f->start += flen;
    return FRAMER_OK;
}

size_t framer_pending(const struct framer *f)
{
    return f->end - f->start;
}
