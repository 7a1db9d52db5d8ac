/*
 * hep.h - HEP v1/v2/v3 codec.
 *
 * hep_decode() turns a received datagram or TCP frame into a read-only view
 * whose byte fields point into the caller's buffer: nothing is copied or
 * allocated, and nothing outside [buf, buf + len) is read.  hep_encode()
 * writes HEPv3 from a view, optionally overriding a few chunks; it is how
 * v1/v2 input is converted and how a destination rewrites capture id, node
 * name, auth key or correlation id.
 */
#ifndef HEPROUTER_HEP_H
#define HEPROUTER_HEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol constants (HEP.md), not tunables. */
#define HEP3_MAGIC          "HEP3"
#define HEP3_HDR_LEN        6u          /* "HEP3" + u16 total length */
#define HEP3_CHUNK_HDR_LEN  6u          /* vendor, type, length: u16 each */
#define HEP3_MAX_LEN        65535u      /* total length is a u16 */
#define HEP12_HDR_LEN       8u          /* version, hlen, family, proto, ports */
#define HEP12_HLEN_IPV4     16u
#define HEP12_HLEN_IPV6     40u
#define HEP2_TIME_LEN       12u         /* sec, usec, capture id, padding */

/* Generic chunk types (vendor 0). */
enum hep_chunk_type {
    HEP_CHUNK_FAMILY = 0x0001,
    HEP_CHUNK_IP_PROTO = 0x0002,
    HEP_CHUNK_SRC_IP4 = 0x0003,
    HEP_CHUNK_DST_IP4 = 0x0004,
    HEP_CHUNK_SRC_IP6 = 0x0005,
    HEP_CHUNK_DST_IP6 = 0x0006,
    HEP_CHUNK_SRC_PORT = 0x0007,
    HEP_CHUNK_DST_PORT = 0x0008,
    HEP_CHUNK_TS_SEC = 0x0009,
    HEP_CHUNK_TS_USEC = 0x000a,
    HEP_CHUNK_PROTO_TYPE = 0x000b,
    HEP_CHUNK_CAPTURE_ID = 0x000c,
    HEP_CHUNK_KEEPALIVE = 0x000d,
    HEP_CHUNK_AUTH_KEY = 0x000e,
    HEP_CHUNK_PAYLOAD = 0x000f,
    HEP_CHUNK_PAYLOAD_GZ = 0x0010,
    HEP_CHUNK_CORRELATION_ID = 0x0011,
    HEP_CHUNK_VLAN = 0x0012,
    HEP_CHUNK_NODE_NAME = 0x0013,
};

/* One bit per generic chunk type below 32 (hep_view.repeated). */
#define HEP_CHUNK_BIT(type) (1u << (type))

/* Protocol type values (chunk 0x000b) the router names. */
enum hep_proto_type {
    HEP_PROTO_SIP = 1,
    HEP_PROTO_RTCP = 5,
    HEP_PROTO_LOG = 100,
};

#define HEP_AF_INET   2u
#define HEP_AF_INET6  10u

/* Every way decoding or encoding can fail; hep_strerror() names each. */
enum hep_status {
    HEP_OK = 0,
    HEP_ERR_TRUNCATED,      /* shorter than the fixed header */
    HEP_ERR_VERSION,        /* no "HEP3" magic and first byte not 1 or 2 */
    HEP_ERR_LENGTH,         /* v3 total length differs from the buffer */
    HEP_ERR_HDR_LEN,        /* v1/v2 header length does not match family */
    HEP_ERR_FAMILY,         /* address family neither 2 nor 10 */
    HEP_ERR_CHUNK_SHORT,    /* chunk length field < 6 */
    HEP_ERR_CHUNK_OVERRUN,  /* chunk runs past the end of the packet */
    HEP_ERR_CHUNK_SIZE,     /* fixed-size generic chunk with the wrong size */
    HEP_ERR_NO_PAYLOAD,     /* no payload (0x000f / 0x0010), or empty v1/v2 */
    HEP_ERR_ADDRESS,        /* address chunks disagree with the family */
    HEP_ERR_NO_SPACE,       /* encode: output buffer too small */
    HEP_ERR_TOO_BIG,        /* encode: result would exceed 65535 bytes */
    HEP_STATUS_COUNT
};

/* Which optional fields a view carries (hep_view.present). */
enum hep_field {
    HEP_HAS_FAMILY = 1u << 0,
    HEP_HAS_IP_PROTO = 1u << 1,
    HEP_HAS_SRC_IP = 1u << 2,
    HEP_HAS_DST_IP = 1u << 3,
    HEP_HAS_SRC_PORT = 1u << 4,
    HEP_HAS_DST_PORT = 1u << 5,
    HEP_HAS_TS = 1u << 6,           /* seconds (usec may be absent: 0) */
    HEP_HAS_PROTO_TYPE = 1u << 7,
    HEP_HAS_CAPTURE_ID = 1u << 8,
    HEP_HAS_KEEPALIVE = 1u << 9,
    HEP_HAS_AUTH_KEY = 1u << 10,
    HEP_HAS_CORRELATION_ID = 1u << 11,
    HEP_HAS_VLAN = 1u << 12,
    HEP_HAS_NODE_NAME = 1u << 13,
    HEP_HAS_PAYLOAD = 1u << 14,
};

/* A length-carrying byte string pointing into someone else's buffer. */
struct hep_bytes {
    const uint8_t *data;
    size_t len;
};

/*
 * A decoded packet.  Byte fields point into the decoded buffer, which must
 * outlive the view.  Addresses are 4 (family 2) or 16 (family 10) bytes.
 * When a v3 packet repeats a generic chunk, the fields hold its last
 * occurrence and repeated has the type's HEP_CHUNK_BIT().
 */
struct hep_view {
    struct hep_bytes raw;       /* the whole packet */
    uint8_t version;            /* 1, 2 or 3 */
    uint8_t family;             /* HEP_AF_INET / HEP_AF_INET6, 0 if absent */
    uint8_t ip_proto;           /* 17 UDP, 6 TCP, 22 Kamailio TLS/WS, ... */
    uint8_t proto_type;         /* chunk 0x000b; 1 (SIP) for v1/v2 */
    uint32_t present;           /* enum hep_field bits */
    uint32_t repeated;          /* HEP_CHUNK_BIT() of generic types sent twice or more */
    const uint8_t *src_ip;      /* addr_len bytes, NULL if absent */
    const uint8_t *dst_ip;
    uint8_t addr_len;           /* 4 or 16, 0 if no address */
    uint8_t capture_id_len;     /* 2 or 4 as sent, 0 if absent */
    uint16_t src_port;
    uint16_t dst_port;
    uint16_t keepalive;
    uint16_t vlan;
    uint32_t ts_sec;
    uint32_t ts_usec;
    uint32_t capture_id;
    struct hep_bytes auth_key;
    struct hep_bytes correlation_id;
    struct hep_bytes node_name;
    struct hep_bytes payload;   /* SIP bytes, or gzip data if compressed */
    bool compressed;            /* payload came from chunk 0x0010 */
    struct hep_bytes chunks;    /* v3: every chunk, for hep_chunk_next() */
};

/* One chunk as it appears in a v3 packet. */
struct hep_chunk {
    uint16_t vendor;
    uint16_t type;
    struct hep_bytes value;     /* without the 6-byte chunk header */
};

/* Iterates over all chunks of a decoded v3 packet, vendor ones included. */
struct hep_chunk_iter {
    const uint8_t *pos;
    const uint8_t *end;
};

/*
 * Chunks hep_encode() should set instead of copying.  A bytes override with
 * set == true and len == 0 removes the chunk.  An overridden chunk type
 * leaves as exactly one chunk (or none, for a removal) however often the
 * packet carried it; other chunks, repeated or not, are copied as they are.
 */
struct hep_bytes_override {
    bool set;
    struct hep_bytes value;
};

struct hep_overrides {
    bool set_capture_id;
    uint32_t capture_id;        /* written as u32 */
    bool set_time;              /* e.g. receive time for v1 input */
    uint32_t ts_sec;
    uint32_t ts_usec;
    struct hep_bytes_override node_name;
    struct hep_bytes_override auth_key;
    struct hep_bytes_override correlation_id;
};

/* Decodes buf[0..len) into *view.  Returns HEP_OK or an error code. */
int hep_decode(const uint8_t *buf, size_t len, struct hep_view *view);

/* Starts iteration over the chunks of a view (none for v1/v2). */
void hep_chunk_iter_init(struct hep_chunk_iter *it, const struct hep_view *view);

/* Stores the next chunk in *chunk and returns true, or returns false. */
bool hep_chunk_next(struct hep_chunk_iter *it, struct hep_chunk *chunk);

/*
 * True when encoding the view with these overrides would produce different
 * bytes than view->raw: the input is v1/v2, an override changes a chunk, or
 * the packet repeats a chunk type an override sets (the encoding keeps one).
 * ov may be NULL.  When false, forward view->raw as it is.
 */
bool hep_encode_needed(const struct hep_view *view, const struct hep_overrides *ov);

/*
 * Writes the view as HEPv3 into out[0..cap), applying ov (may be NULL), and
 * stores the length in *out_len.  An unchanged v3 packet is copied as is.
 * Returns HEP_OK, HEP_ERR_NO_SPACE or HEP_ERR_TOO_BIG.
 */
int hep_encode(const struct hep_view *view, const struct hep_overrides *ov,
               uint8_t *out, size_t cap, size_t *out_len);

/* The size hep_encode() needs for this view and overrides. */
size_t hep_encoded_len(const struct hep_view *view, const struct hep_overrides *ov);

/* A short, stable name for a status ("truncated header", ...). */
const char *hep_strerror(int status);

/*
 * The HEP version a packet claims, from its first bytes alone (1, 2, 3),
 * or 0 when it looks like none: for the per-listener counters, before
 * anything is decoded.
 */
static inline int hep_peek_version(const uint8_t *data, size_t len)
{
    if (len >= 4 && data[0] == 'H' && data[1] == 'E' && data[2] == 'P' && data[3] == '3')
        return 3;
    if (len >= 1 && (data[0] == 1 || data[0] == 2))
        return data[0];
    return 0;
}

/* A short, stable identifier for metrics ("truncated", "bad_version", ...). */
const char *hep_status_name(int status);

#endif
