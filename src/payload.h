/*
 * payload.h - compressed HEP payloads (chunk 0x0010) made readable.
 *
 * Some agents send the SIP message gzip- or zlib-compressed.  The router
 * forwards the packet as it came, but to find its call it must read the
 * SIP headers, so it inflates the payload into a buffer of its own first.
 * The output is bounded (the headers come first; a body cut off at the
 * bound does not matter to the scanner), so a small packet cannot make the
 * router inflate without end (a "zip bomb").  Pure: no I/O.
 */
#ifndef HEPROUTER_PAYLOAD_H
#define HEPROUTER_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

struct payload_inflater;

/* One per worker; NULL on ENOMEM. */
struct payload_inflater *payload_inflater_new(void);

void payload_inflater_free(struct payload_inflater *z);

/*
 * Inflates gzip or zlib data in[0..len) into out[0..cap): 0 and *out_len
 * set (output beyond cap is cut off, and so is what truncated input could
 * not finish), or -1 when the data is neither gzip nor zlib, is corrupt,
 * or gives nothing.
 */
int payload_inflate(struct payload_inflater *z, const uint8_t *in, size_t len,
                    uint8_t *out, size_t cap, size_t *out_len);

#endif
