/*
 * payload.c - inflating compressed HEP payloads (see payload.h), with zlib.
 *
 * One z_stream per worker, reset for each packet, so zlib's window and
 * state are allocated once and not per packet.
 */
#include "payload.h"

#include <stdlib.h>
#include <zlib.h>

/* windowBits for inflateInit2(): the largest window, gzip or zlib header detected. */
#define PAYLOAD_WINDOW_BITS     (MAX_WBITS + 32)

struct payload_inflater {
    z_stream zs;
};

struct payload_inflater *payload_inflater_new(void)
{
    struct payload_inflater *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    if (inflateInit2(&z->zs, PAYLOAD_WINDOW_BITS) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void payload_inflater_free(struct payload_inflater *z)
{
    if (z == NULL)
        return;
    inflateEnd(&z->zs);
    free(z);
}

int payload_inflate(struct payload_inflater *z, const uint8_t *in, size_t len,
                    uint8_t *out, size_t cap, size_t *out_len)
{
    if (len > UINT32_MAX || cap > UINT32_MAX || inflateReset(&z->zs) != Z_OK)
        return -1;
    z->zs.next_in = (Bytef *)(uintptr_t)in;     /* zlib does not write through next_in */
    z->zs.avail_in = (uInt)len;
    z->zs.next_out = out;
    z->zs.avail_out = (uInt)cap;
    int rc = inflate(&z->zs, Z_FINISH);
    *out_len = cap - z->zs.avail_out;
    /* Z_BUF_ERROR: out of input (truncated) or out of room (cut at cap) */
    if (rc == Z_STREAM_END || (rc == Z_BUF_ERROR && *out_len > 0))
        return 0;
    return -1;
}
