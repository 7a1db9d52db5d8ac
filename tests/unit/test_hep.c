/*
 * test_hep.c - unit tests for src/hep.c: every decode error, the edge cases
 * of each HEP version, encoding with overrides, and the packets captured
 * from Kamailio 5.6 siptrace (tests/data/kamailio/v{1,2,3}).
 */
#include "hep.h"
#include "unit.h"

#include <arpa/inet.h>
#include <stdint.h>

#define SIP_INVITE "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nCall-ID: abc@host\r\nCSeq: 1 INVITE\r\n\r\n"

/* ---- a tiny HEP3 builder for synthetic packets ---- */

struct pkt {
    uint8_t buf[HEP3_MAX_LEN + 1024];
    size_t len;
};

static void pkt_start(struct pkt *p)
{
    memcpy(p->buf, "HEP3", 4);
    p->len = HEP3_HDR_LEN;
}

static void pkt_chunk_v(struct pkt *p, uint16_t vendor, uint16_t type, const void *val, size_t vlen)
{
    size_t clen = HEP3_CHUNK_HDR_LEN + vlen;
    p->buf[p->len] = (uint8_t)(vendor >> 8);
    p->buf[p->len + 1] = (uint8_t)vendor;
    p->buf[p->len + 2] = (uint8_t)(type >> 8);
    p->buf[p->len + 3] = (uint8_t)type;
    p->buf[p->len + 4] = (uint8_t)(clen >> 8);
    p->buf[p->len + 5] = (uint8_t)clen;
    memcpy(p->buf + p->len + HEP3_CHUNK_HDR_LEN, val, vlen);
    p->len += clen;
}

static void pkt_chunk(struct pkt *p, uint16_t type, const void *val, size_t vlen)
{
    pkt_chunk_v(p, 0, type, val, vlen);
}

static void pkt_u8(struct pkt *p, uint16_t type, uint8_t v)
{
    pkt_chunk(p, type, &v, 1);
}

static void pkt_u16(struct pkt *p, uint16_t type, uint16_t v)
{
    uint16_t n = htons(v);
    pkt_chunk(p, type, &n, 2);
}

static void pkt_u32(struct pkt *p, uint16_t type, uint32_t v)
{
    uint32_t n = htonl(v);
    pkt_chunk(p, type, &n, 4);
}

static void pkt_finish(struct pkt *p)
{
    p->buf[4] = (uint8_t)(p->len >> 8);
    p->buf[5] = (uint8_t)p->len;
}

/* The chunks Kamailio 5.6 sends, in its order, for an IPv4 UDP SIP packet. */
static void pkt_kamailio_like(struct pkt *p, const char *payload)
{
    const uint8_t src[4] = { 10, 0, 0, 1 }, dst[4] = { 10, 0, 0, 2 };
    pkt_start(p);
    pkt_u8(p, HEP_CHUNK_FAMILY, HEP_AF_INET);
    pkt_u8(p, HEP_CHUNK_IP_PROTO, 17);
    pkt_chunk(p, HEP_CHUNK_SRC_IP4, src, 4);
    pkt_chunk(p, HEP_CHUNK_DST_IP4, dst, 4);
    pkt_u16(p, HEP_CHUNK_SRC_PORT, 5070);
    pkt_u16(p, HEP_CHUNK_DST_PORT, 5060);
    pkt_u32(p, HEP_CHUNK_TS_SEC, 1700000000u);
    pkt_u32(p, HEP_CHUNK_TS_USEC, 123456u);
    pkt_u8(p, HEP_CHUNK_PROTO_TYPE, HEP_PROTO_SIP);
    pkt_u32(p, HEP_CHUNK_CAPTURE_ID, 1);
    pkt_chunk(p, HEP_CHUNK_PAYLOAD, payload, strlen(payload));
    pkt_finish(p);
}

/* A v1 (or v2 with time block) IPv4 packet as struct hep_hdr lays it out. */
static size_t build_v12(uint8_t *b, int version, const char *payload)
{
    size_t off = 0;
    b[0] = (uint8_t)version;
    b[1] = HEP12_HLEN_IPV4;
    b[2] = HEP_AF_INET;
    b[3] = 17;
    b[4] = 0x13; b[5] = 0xc4;           /* 5060 */
    b[6] = 0x13; b[7] = 0xce;           /* 5070 */
    b[8] = 192; b[9] = 168; b[10] = 0; b[11] = 1;
    b[12] = 192; b[13] = 168; b[14] = 0; b[15] = 2;
    off = HEP12_HLEN_IPV4;
    if (version == 2) {
        /* seconds 0x01020304, usec 0x00050607, capture id 0x0809: little-endian */
        const uint8_t t[HEP2_TIME_LEN] = { 4, 3, 2, 1, 7, 6, 5, 0, 9, 8, 0, 0 };
        memcpy(b + off, t, sizeof t);
        off += sizeof t;
    }
    memcpy(b + off, payload, strlen(payload));
    return off + strlen(payload);
}

static int decode_pkt(struct pkt *p, struct hep_view *v)
{
    return hep_decode(p->buf, p->len, v);
}

/* ---- v3 decoding ---- */

static void test_v3_all_fields(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_kamailio_like(&p, SIP_INVITE);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.version, 3);
    CU_ASSERT_EQUAL(v.family, HEP_AF_INET);
    CU_ASSERT_EQUAL(v.ip_proto, 17);
    CU_ASSERT_EQUAL(v.addr_len, 4);
    CU_ASSERT_EQUAL(memcmp(v.src_ip, (uint8_t[]){ 10, 0, 0, 1 }, 4), 0);
    CU_ASSERT_EQUAL(memcmp(v.dst_ip, (uint8_t[]){ 10, 0, 0, 2 }, 4), 0);
    CU_ASSERT_EQUAL(v.src_port, 5070);
    CU_ASSERT_EQUAL(v.dst_port, 5060);
    CU_ASSERT_EQUAL(v.ts_sec, 1700000000u);
    CU_ASSERT_EQUAL(v.ts_usec, 123456u);
    CU_ASSERT_EQUAL(v.proto_type, HEP_PROTO_SIP);
    CU_ASSERT_EQUAL(v.capture_id, 1);
    CU_ASSERT_EQUAL(v.capture_id_len, 4);
    CU_ASSERT_EQUAL(v.payload.len, strlen(SIP_INVITE));
    CU_ASSERT_EQUAL(memcmp(v.payload.data, SIP_INVITE, v.payload.len), 0);
    CU_ASSERT_FALSE(v.compressed);
    CU_ASSERT_FALSE(v.present & HEP_HAS_CORRELATION_ID);
    CU_ASSERT_FALSE(v.present & HEP_HAS_AUTH_KEY);
    CU_ASSERT_PTR_EQUAL(v.raw.data, p.buf);
    CU_ASSERT_EQUAL(v.raw.len, p.len);
    /* 99 bytes of overhead without correlation id, as HEP.md observed */
    CU_ASSERT_EQUAL(p.len - strlen(SIP_INVITE), 99);
}

static void test_v3_ipv6_and_optional_chunks(void)
{
    struct pkt p;
    struct hep_view v;
    uint8_t s6[16] = { 0x20, 0x01, 0x0d, 0xb8 }, d6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, HEP_AF_INET6);
    pkt_u8(&p, HEP_CHUNK_IP_PROTO, 6);
    pkt_chunk(&p, HEP_CHUNK_SRC_IP6, s6, 16);
    pkt_chunk(&p, HEP_CHUNK_DST_IP6, d6, 16);
    pkt_u16(&p, HEP_CHUNK_CAPTURE_ID, 2001);           /* u16 capture id */
    pkt_u16(&p, HEP_CHUNK_KEEPALIVE, 30);
    pkt_chunk(&p, HEP_CHUNK_AUTH_KEY, "secret", 6);
    pkt_chunk(&p, HEP_CHUNK_CORRELATION_ID, "call-1@x", 8);
    pkt_u16(&p, HEP_CHUNK_VLAN, 42);
    pkt_chunk(&p, HEP_CHUNK_NODE_NAME, "node-a", 6);
    pkt_u8(&p, HEP_CHUNK_PROTO_TYPE, HEP_PROTO_RTCP);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD_GZ, "\x1f\x8b\x08", 3);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.family, HEP_AF_INET6);
    CU_ASSERT_EQUAL(v.ip_proto, 6);
    CU_ASSERT_EQUAL(v.addr_len, 16);
    CU_ASSERT_EQUAL(memcmp(v.src_ip, s6, 16), 0);
    CU_ASSERT_EQUAL(memcmp(v.dst_ip, d6, 16), 0);
    CU_ASSERT_EQUAL(v.capture_id, 2001);
    CU_ASSERT_EQUAL(v.capture_id_len, 2);
    CU_ASSERT_EQUAL(v.keepalive, 30);
    CU_ASSERT_EQUAL(v.vlan, 42);
    CU_ASSERT_EQUAL(v.auth_key.len, 6);
    CU_ASSERT_EQUAL(memcmp(v.auth_key.data, "secret", 6), 0);
    CU_ASSERT_EQUAL(v.correlation_id.len, 8);
    CU_ASSERT_EQUAL(memcmp(v.correlation_id.data, "call-1@x", 8), 0);
    CU_ASSERT_EQUAL(memcmp(v.node_name.data, "node-a", 6), 0);
    CU_ASSERT_EQUAL(v.proto_type, HEP_PROTO_RTCP);
    CU_ASSERT_TRUE(v.compressed);
    CU_ASSERT_EQUAL(v.payload.len, 3);
    CU_ASSERT_FALSE(v.present & HEP_HAS_TS);
    CU_ASSERT_FALSE(v.present & HEP_HAS_SRC_PORT);
}

static void test_v3_vendor_and_unknown_chunks_kept_and_iterated(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, HEP_AF_INET);
    pkt_chunk_v(&p, 0x0003, 0x0001, "vendor!", 7);     /* vendor chunk, type clash */
    pkt_chunk(&p, 0x0020, "\x01\x02", 2);              /* generic type unknown here */
    pkt_chunk(&p, 0x7fff, "", 0);                      /* empty unknown chunk */
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    /* the vendor chunk's type 1 must not be taken for the family chunk */
    CU_ASSERT_EQUAL(v.family, HEP_AF_INET);

    struct hep_chunk_iter it;
    struct hep_chunk c;
    const uint16_t vendors[] = { 0, 3, 0, 0, 0 };
    const uint16_t types[] = { 1, 1, 0x20, 0x7fff, 0x0f };
    const size_t lens[] = { 1, 7, 2, 0, 1 };
    int n = 0;
    hep_chunk_iter_init(&it, &v);
    while (hep_chunk_next(&it, &c)) {
        CU_ASSERT_FATAL(n < 5);
        CU_ASSERT_EQUAL(c.vendor, vendors[n]);
        CU_ASSERT_EQUAL(c.type, types[n]);
        CU_ASSERT_EQUAL(c.value.len, lens[n]);
        CU_ASSERT_TRUE(c.value.data >= p.buf && c.value.data + c.value.len <= p.buf + p.len);
        n++;
    }
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(memcmp(p.buf + 6 + 7 + 6, "vendor!", 7), 0);
}

static void test_v3_payload_only_is_valid(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_start(&p);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.present, HEP_HAS_PAYLOAD);
    CU_ASSERT_EQUAL(v.addr_len, 0);
}

/* ---- every error code ---- */

static void test_err_truncated(void)
{
    struct hep_view v;
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"", 0, &v), HEP_ERR_TRUNCATED);
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"HEP3", 4, &v), HEP_ERR_TRUNCATED);
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"HEP3\x00", 5, &v), HEP_ERR_TRUNCATED);
    /* v1 shorter than its 8-byte header, and shorter than its address block */
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"\x01\x10\x02\x11\x13\xc4", 6, &v), HEP_ERR_TRUNCATED);
    uint8_t b[64];
    size_t n = build_v12(b, 1, "");
    CU_ASSERT_EQUAL(hep_decode(b, n - 1, &v), HEP_ERR_TRUNCATED);
    n = build_v12(b, 2, "");
    CU_ASSERT_EQUAL(hep_decode(b, n - 1, &v), HEP_ERR_TRUNCATED);
}

static void test_err_bad_version(void)
{
    struct hep_view v;
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"HEP4\x00\x0a\x00\x00\x00\x00", 10, &v), HEP_ERR_VERSION);
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"INVITE sip:x SIP/2.0\r\n", 22, &v), HEP_ERR_VERSION);
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"\x03\x10\x02\x11\x00\x00\x00\x00", 8, &v), HEP_ERR_VERSION);
    CU_ASSERT_EQUAL(hep_decode((const uint8_t *)"\x00", 1, &v), HEP_ERR_TRUNCATED);
}

static void test_err_length_mismatch(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_kamailio_like(&p, SIP_INVITE);
    /* datagram longer than the declared length */
    CU_ASSERT_EQUAL(hep_decode(p.buf, p.len + 1, &v), HEP_ERR_LENGTH);
    /* datagram shorter than the declared length */
    CU_ASSERT_EQUAL(hep_decode(p.buf, p.len - 1, &v), HEP_ERR_LENGTH);
    /* declared length below the header */
    p.buf[4] = 0;
    p.buf[5] = 3;
    CU_ASSERT_EQUAL(hep_decode(p.buf, p.len, &v), HEP_ERR_LENGTH);
}

static void test_err_chunk_too_short(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_kamailio_like(&p, SIP_INVITE);
    /* first chunk (family) claims length 5 */
    p.buf[HEP3_HDR_LEN + 4] = 0;
    p.buf[HEP3_HDR_LEN + 5] = 5;
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_CHUNK_SHORT);
    p.buf[HEP3_HDR_LEN + 5] = 0;
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_CHUNK_SHORT);
}

static void test_err_chunk_overrun(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_kamailio_like(&p, SIP_INVITE);
    /* payload chunk (the last) claims one byte more than there is */
    size_t last = p.len - strlen(SIP_INVITE) - HEP3_CHUNK_HDR_LEN;
    size_t clen = strlen(SIP_INVITE) + HEP3_CHUNK_HDR_LEN + 1;
    p.buf[last + 4] = (uint8_t)(clen >> 8);
    p.buf[last + 5] = (uint8_t)clen;
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_CHUNK_OVERRUN);

    /* a partial chunk header at the end */
    pkt_kamailio_like(&p, SIP_INVITE);
    memcpy(p.buf + p.len, "\x00\x00\x00", 3);
    p.len += 3;
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_CHUNK_OVERRUN);
}

static void test_err_fixed_chunk_size(void)
{
    static const struct {
        uint16_t type;
        size_t len;
    } bad[] = {
        { HEP_CHUNK_FAMILY, 2 }, { HEP_CHUNK_IP_PROTO, 0 }, { HEP_CHUNK_SRC_IP4, 16 },
        { HEP_CHUNK_DST_IP4, 3 }, { HEP_CHUNK_SRC_IP6, 4 }, { HEP_CHUNK_DST_IP6, 15 },
        { HEP_CHUNK_SRC_PORT, 4 }, { HEP_CHUNK_DST_PORT, 1 }, { HEP_CHUNK_TS_SEC, 8 },
        { HEP_CHUNK_TS_USEC, 2 }, { HEP_CHUNK_PROTO_TYPE, 4 }, { HEP_CHUNK_CAPTURE_ID, 3 },
        { HEP_CHUNK_CAPTURE_ID, 8 }, { HEP_CHUNK_KEEPALIVE, 4 }, { HEP_CHUNK_VLAN, 1 },
    };
    const uint8_t zeros[16] = { 0 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pkt p;
        struct hep_view v;
        pkt_start(&p);
        pkt_chunk(&p, bad[i].type, zeros, bad[i].len);
        pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
        pkt_finish(&p);
        CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_CHUNK_SIZE);
    }
}

/*
 * The most chunks a packet can hold: 10920 empty (header-only) chunks and a
 * one-byte payload, 65533 bytes.  Each is checked against what is left of
 * the packet, iterated once, and kept in order by an encode.
 */
#define MOST_EMPTY_CHUNKS ((HEP3_MAX_LEN - HEP3_HDR_LEN - HEP3_CHUNK_HDR_LEN - 1) / HEP3_CHUNK_HDR_LEN)
#define HEP_CHUNK_UNLISTED 0x0027

static void test_a_packet_of_the_most_chunks_decodes(void)
{
    static struct pkt p;
    static uint8_t out[HEP3_MAX_LEN + 1];
    struct hep_view v;
    pkt_start(&p);
    for (size_t i = 0; i < MOST_EMPTY_CHUNKS; i++)
        pkt_chunk(&p, HEP_CHUNK_UNLISTED, "", 0);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(MOST_EMPTY_CHUNKS, 10920);
    CU_ASSERT_EQUAL(p.len, 65533);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    struct hep_chunk_iter it;
    struct hep_chunk c;
    size_t n = 0;
    hep_chunk_iter_init(&it, &v);
    while (hep_chunk_next(&it, &c))
        n++;
    CU_ASSERT_EQUAL(n, MOST_EMPTY_CHUNKS + 1);
    /* a capture id added makes it too big: refused, never written past out */
    struct hep_overrides ov = { .set_capture_id = true, .capture_id = 7 };
    size_t len = 0;
    CU_ASSERT_EQUAL(hep_encode(&v, &ov, out, sizeof out, &len), HEP_ERR_TOO_BIG);
    CU_ASSERT_EQUAL(hep_encode(&v, NULL, out, sizeof out, &len), HEP_OK);
    CU_ASSERT_EQUAL(len, p.len);
    CU_ASSERT(memcmp(out, p.buf, len) == 0);
}

static void test_err_no_payload(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, HEP_AF_INET);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_NO_PAYLOAD);
    pkt_start(&p);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_NO_PAYLOAD);

    uint8_t b[64];
    size_t n = build_v12(b, 1, "");
    CU_ASSERT_EQUAL(hep_decode(b, n, &v), HEP_ERR_NO_PAYLOAD);
    n = build_v12(b, 2, "");
    CU_ASSERT_EQUAL(hep_decode(b, n, &v), HEP_ERR_NO_PAYLOAD);
}

static void test_err_family(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, 7);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_FAMILY);

    uint8_t b[64];
    size_t n = build_v12(b, 1, "x");
    b[2] = 7;
    CU_ASSERT_EQUAL(hep_decode(b, n, &v), HEP_ERR_FAMILY);
}

static void test_err_v12_header_length(void)
{
    struct hep_view v;
    uint8_t b[128];
    size_t n = build_v12(b, 1, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    b[1] = HEP12_HLEN_IPV6;         /* IPv4 family, IPv6 header length */
    CU_ASSERT_EQUAL(hep_decode(b, n, &v), HEP_ERR_HDR_LEN);
    b[1] = HEP12_HLEN_IPV4;
    b[2] = HEP_AF_INET6;            /* IPv6 family, IPv4 header length */
    CU_ASSERT_EQUAL(hep_decode(b, n, &v), HEP_ERR_HDR_LEN);
    b[2] = HEP_AF_INET;
    b[1] = 0;
    CU_ASSERT_EQUAL(hep_decode(b, n, &v), HEP_ERR_HDR_LEN);
}

static void test_err_address_mismatch(void)
{
    struct pkt p;
    struct hep_view v;
    const uint8_t a4[4] = { 1, 2, 3, 4 }, a6[16] = { 1 };
    /* IPv4 source with IPv6 destination */
    pkt_start(&p);
    pkt_chunk(&p, HEP_CHUNK_SRC_IP4, a4, 4);
    pkt_chunk(&p, HEP_CHUNK_DST_IP6, a6, 16);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_ADDRESS);
    /* family IPv6 with IPv4 addresses */
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, HEP_AF_INET6);
    pkt_chunk(&p, HEP_CHUNK_SRC_IP4, a4, 4);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_ADDRESS);
    /* family IPv4 with IPv6 addresses */
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, HEP_AF_INET);
    pkt_chunk(&p, HEP_CHUNK_DST_IP6, a6, 16);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "x", 1);
    pkt_finish(&p);
    CU_ASSERT_EQUAL(decode_pkt(&p, &v), HEP_ERR_ADDRESS);
}

static void test_every_status_has_distinct_text(void)
{
    for (int i = 0; i < HEP_STATUS_COUNT; i++) {
        CU_ASSERT_PTR_NOT_NULL(hep_strerror(i));
        CU_ASSERT_PTR_NOT_NULL(hep_status_name(i));
        for (int j = 0; j < i; j++) {
            CU_ASSERT_STRING_NOT_EQUAL(hep_strerror(i), hep_strerror(j));
            CU_ASSERT_STRING_NOT_EQUAL(hep_status_name(i), hep_status_name(j));
        }
    }
    CU_ASSERT_STRING_EQUAL(hep_strerror(-1), "unknown error");
    CU_ASSERT_STRING_EQUAL(hep_strerror(HEP_STATUS_COUNT), "unknown error");
    CU_ASSERT_STRING_EQUAL(hep_status_name(HEP_ERR_TRUNCATED), "truncated");
}

/* Every prefix of a valid packet fails cleanly (run under ASan, this proves no overread). */
static void test_every_truncation_fails_cleanly(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_kamailio_like(&p, SIP_INVITE);
    for (size_t n = 0; n < p.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
        memcpy(copy, p.buf, n);
        CU_ASSERT_NOT_EQUAL(hep_decode(copy, n, &v), HEP_OK);
        free(copy);
    }
}

/* ---- v1 / v2 ---- */

static void test_v1_decode(void)
{
    uint8_t b[256];
    struct hep_view v;
    size_t n = build_v12(b, 1, SIP_INVITE);
    CU_ASSERT_EQUAL_FATAL(hep_decode(b, n, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.version, 1);
    CU_ASSERT_EQUAL(v.family, HEP_AF_INET);
    CU_ASSERT_EQUAL(v.ip_proto, 17);
    CU_ASSERT_EQUAL(v.src_port, 5060);
    CU_ASSERT_EQUAL(v.dst_port, 5070);
    CU_ASSERT_EQUAL(memcmp(v.src_ip, (uint8_t[]){ 192, 168, 0, 1 }, 4), 0);
    CU_ASSERT_EQUAL(memcmp(v.dst_ip, (uint8_t[]){ 192, 168, 0, 2 }, 4), 0);
    CU_ASSERT_FALSE(v.present & HEP_HAS_TS);
    CU_ASSERT_FALSE(v.present & HEP_HAS_CAPTURE_ID);
    CU_ASSERT_EQUAL(v.proto_type, HEP_PROTO_SIP);
    CU_ASSERT_EQUAL(v.payload.len, strlen(SIP_INVITE));
    CU_ASSERT_EQUAL(memcmp(v.payload.data, SIP_INVITE, v.payload.len), 0);
    struct hep_chunk_iter it;
    struct hep_chunk c;
    hep_chunk_iter_init(&it, &v);
    CU_ASSERT_FALSE(hep_chunk_next(&it, &c));
}

static void test_v2_time_block_is_little_endian(void)
{
    uint8_t b[256];
    struct hep_view v;
    size_t n = build_v12(b, 2, SIP_INVITE);
    CU_ASSERT_EQUAL_FATAL(hep_decode(b, n, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.version, 2);
    CU_ASSERT_EQUAL(v.ts_sec, 0x01020304u);
    CU_ASSERT_EQUAL(v.ts_usec, 0x00050607u);
    CU_ASSERT_EQUAL(v.capture_id, 0x0809u);
    CU_ASSERT_EQUAL(v.capture_id_len, 2);
    CU_ASSERT_EQUAL(v.payload.len, strlen(SIP_INVITE));
}

static void test_v2_ipv6(void)
{
    uint8_t b[256] = { 2, HEP12_HLEN_IPV6, HEP_AF_INET6, 6, 0x13, 0xc4, 0x23, 0x82 };
    struct hep_view v;
    b[8] = 0xfe;                        /* src fe..., dst ::1 */
    b[8 + 16 + 15] = 1;
    memset(b + HEP12_HLEN_IPV6, 0, HEP2_TIME_LEN);
    memcpy(b + HEP12_HLEN_IPV6 + HEP2_TIME_LEN, "OPTIONS", 7);
    CU_ASSERT_EQUAL_FATAL(hep_decode(b, HEP12_HLEN_IPV6 + HEP2_TIME_LEN + 7, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.family, HEP_AF_INET6);
    CU_ASSERT_EQUAL(v.addr_len, 16);
    CU_ASSERT_EQUAL(v.ip_proto, 6);
    CU_ASSERT_EQUAL(v.dst_port, 9090);
    CU_ASSERT_EQUAL(v.src_ip[0], 0xfe);
    CU_ASSERT_EQUAL(v.dst_ip[15], 1);
    CU_ASSERT_EQUAL(v.payload.len, 7);
}

/* ---- encoding ---- */

static uint8_t out[HEP3_MAX_LEN + 16];

static void test_unchanged_v3_is_not_reencoded(void)
{
    struct pkt p;
    struct hep_view v;
    size_t n;
    pkt_kamailio_like(&p, SIP_INVITE);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_FALSE(hep_encode_needed(&v, NULL));
    struct hep_overrides same = { .set_capture_id = true, .capture_id = 1 };
    CU_ASSERT_FALSE(hep_encode_needed(&v, &same));
    struct hep_overrides none = { 0 };
    CU_ASSERT_FALSE(hep_encode_needed(&v, &none));
    /* removing a chunk the packet does not have changes nothing */
    struct hep_overrides rm = { .auth_key = { .set = true } };
    CU_ASSERT_FALSE(hep_encode_needed(&v, &rm));
    CU_ASSERT_EQUAL(hep_encode(&v, NULL, out, sizeof out, &n), HEP_OK);
    CU_ASSERT_EQUAL(n, p.len);
    CU_ASSERT_EQUAL(memcmp(out, p.buf, n), 0);
    CU_ASSERT_EQUAL(hep_encoded_len(&v, NULL), p.len);
}

/* Checks that the fields no override touches are the same in both views. */
static void assert_same_fields(const struct hep_view *a, const struct hep_view *b)
{
    CU_ASSERT_EQUAL(a->family, b->family);
    CU_ASSERT_EQUAL(a->ip_proto, b->ip_proto);
    CU_ASSERT_EQUAL_FATAL(a->addr_len, b->addr_len);
    CU_ASSERT_EQUAL(a->present & (HEP_HAS_SRC_IP | HEP_HAS_DST_IP),
                    b->present & (HEP_HAS_SRC_IP | HEP_HAS_DST_IP));
    if (a->src_ip != NULL && b->src_ip != NULL) {
        CU_ASSERT_EQUAL(memcmp(a->src_ip, b->src_ip, a->addr_len), 0);
    }
    if (a->dst_ip != NULL && b->dst_ip != NULL) {
        CU_ASSERT_EQUAL(memcmp(a->dst_ip, b->dst_ip, a->addr_len), 0);
    }
    CU_ASSERT_EQUAL(a->src_port, b->src_port);
    CU_ASSERT_EQUAL(a->dst_port, b->dst_port);
    CU_ASSERT_EQUAL(a->proto_type, b->proto_type);
    CU_ASSERT_EQUAL(a->payload.len, b->payload.len);
    CU_ASSERT_EQUAL(memcmp(a->payload.data, b->payload.data, a->payload.len), 0);
}

static void test_v3_overrides_replace_in_place_and_add_before_payload(void)
{
    struct pkt p;
    struct hep_view v, w;
    size_t n;
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, HEP_AF_INET);
    pkt_u16(&p, HEP_CHUNK_CAPTURE_ID, 7);
    pkt_chunk(&p, HEP_CHUNK_NODE_NAME, "old", 3);
    pkt_chunk_v(&p, 0x1234, 0x0013, "vendor-node", 11);  /* vendor chunk with same type */
    pkt_chunk(&p, HEP_CHUNK_NODE_NAME, "dup", 3);        /* duplicate: dropped */
    pkt_chunk(&p, HEP_CHUNK_AUTH_KEY, "key", 3);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_chunk(&p, 0x0099, "after", 5);                   /* unknown after payload */
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);

    struct hep_overrides ov = {
        .set_capture_id = true, .capture_id = 0xdeadbeef,
        .node_name = { true, { (const uint8_t *)"router-1", 8 } },
        .auth_key = { true, { NULL, 0 } },                 /* remove */
        .correlation_id = { true, { (const uint8_t *)"cid", 3 } },
    };
    CU_ASSERT_TRUE(hep_encode_needed(&v, &ov));
    CU_ASSERT_EQUAL_FATAL(hep_encode(&v, &ov, out, sizeof out, &n), HEP_OK);
    CU_ASSERT_EQUAL(n, hep_encoded_len(&v, &ov));
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, n, &w), HEP_OK);
    CU_ASSERT_EQUAL(w.capture_id, 0xdeadbeef);
    CU_ASSERT_EQUAL(w.capture_id_len, 4);
    CU_ASSERT_EQUAL(w.node_name.len, 8);
    CU_ASSERT_EQUAL(memcmp(w.node_name.data, "router-1", 8), 0);
    CU_ASSERT_FALSE(w.present & HEP_HAS_AUTH_KEY);
    CU_ASSERT_EQUAL(memcmp(w.correlation_id.data, "cid", 3), 0);
    assert_same_fields(&v, &w);

    /* chunk order: family, capture id, node name, vendor, corr id, payload, unknown */
    const uint16_t want_types[] = { 0x0001, 0x000c, 0x0013, 0x0013, 0x0011, 0x000f, 0x0099 };
    const uint16_t want_vendor[] = { 0, 0, 0, 0x1234, 0, 0, 0 };
    struct hep_chunk_iter it;
    struct hep_chunk c;
    int i = 0;
    hep_chunk_iter_init(&it, &w);
    while (hep_chunk_next(&it, &c) && i < 7) {
        CU_ASSERT_EQUAL(c.type, want_types[i]);
        CU_ASSERT_EQUAL(c.vendor, want_vendor[i]);
        i++;
    }
    CU_ASSERT_EQUAL(i, 7);
}

static void test_override_of_chunk_after_payload_replaces_it(void)
{
    struct pkt p;
    struct hep_view v, w;
    size_t n;
    pkt_start(&p);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_chunk(&p, HEP_CHUNK_CORRELATION_ID, "old-cid", 7);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    struct hep_overrides ov = { .correlation_id = { true, { (const uint8_t *)"new", 3 } } };
    CU_ASSERT_EQUAL_FATAL(hep_encode(&v, &ov, out, sizeof out, &n), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, n, &w), HEP_OK);
    CU_ASSERT_EQUAL(w.correlation_id.len, 3);
    CU_ASSERT_EQUAL(memcmp(w.correlation_id.data, "new", 3), 0);
    CU_ASSERT_EQUAL(n, p.len - 4);      /* one correlation chunk, 4 bytes shorter */
}

static void test_removing_a_present_empty_chunk_removes_it(void)
{
    struct pkt p;
    struct hep_view v, w;
    size_t n;
    pkt_start(&p);
    pkt_chunk(&p, HEP_CHUNK_AUTH_KEY, "", 0);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_TRUE(v.present & HEP_HAS_AUTH_KEY);
    struct hep_overrides ov = { .auth_key = { .set = true } };
    CU_ASSERT_TRUE(hep_encode_needed(&v, &ov));
    CU_ASSERT_EQUAL_FATAL(hep_encode(&v, &ov, out, sizeof out, &n), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, n, &w), HEP_OK);
    CU_ASSERT_FALSE(w.present & HEP_HAS_AUTH_KEY);
    CU_ASSERT_EQUAL(n, p.len - HEP3_CHUNK_HDR_LEN);
}

/* ---- repeated chunks ---- */

/* Counts the generic chunks of one type in a view; *last gets the last one. */
static int count_chunks(const struct hep_view *v, uint16_t type, struct hep_bytes *last)
{
    struct hep_chunk_iter it;
    struct hep_chunk c;
    int n = 0;
    hep_chunk_iter_init(&it, v);
    while (hep_chunk_next(&it, &c)) {
        if (c.vendor == 0 && c.type == type) {
            if (last != NULL)
                *last = c.value;
            n++;
        }
    }
    return n;
}

/* Encodes v with ov, checks the length hep_encoded_len() promised, decodes into *w. */
static void encode_and_decode(const struct hep_view *v, const struct hep_overrides *ov,
                              struct hep_view *w)
{
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(hep_encode(v, ov, out, sizeof out, &n), HEP_OK);
    CU_ASSERT_EQUAL(n, hep_encoded_len(v, ov));
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, n, w), HEP_OK);
}

static void test_decoder_records_repeated_generic_chunk_types(void)
{
    struct pkt p;
    struct hep_view v;
    pkt_start(&p);
    pkt_u32(&p, HEP_CHUNK_CAPTURE_ID, 7);
    pkt_chunk(&p, HEP_CHUNK_NODE_NAME, "a", 1);
    pkt_chunk_v(&p, 0x1234, HEP_CHUNK_NODE_NAME, "v", 1);   /* vendor: not generic */
    pkt_chunk(&p, 0x0099, "x", 1);                          /* type >= 32: no bit */
    pkt_chunk(&p, 0x0099, "y", 1);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_u16(&p, HEP_CHUNK_CAPTURE_ID, 4242);                /* after the payload */
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.repeated, HEP_CHUNK_BIT(HEP_CHUNK_CAPTURE_ID));
    /* the fields keep holding the last occurrence */
    CU_ASSERT_EQUAL(v.capture_id, 4242);
    CU_ASSERT_EQUAL(v.capture_id_len, 2);

    pkt_kamailio_like(&p, SIP_INVITE);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_EQUAL(v.repeated, 0);
}

static void test_repeated_capture_id_is_rewritten_once(void)
{
    struct pkt p;
    struct hep_view v, w;
    struct hep_bytes last = { NULL, 0 };
    pkt_start(&p);
    pkt_u8(&p, HEP_CHUNK_FAMILY, HEP_AF_INET);
    pkt_u32(&p, HEP_CHUNK_CAPTURE_ID, 7);
    pkt_u32(&p, HEP_CHUNK_CAPTURE_ID, 4242);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);

    struct hep_overrides ov = { .set_capture_id = true, .capture_id = 4242 };
    CU_ASSERT_TRUE(hep_encode_needed(&v, &ov));
    encode_and_decode(&v, &ov, &w);
    CU_ASSERT_EQUAL(w.repeated, 0);
    CU_ASSERT_EQUAL(count_chunks(&w, HEP_CHUNK_CAPTURE_ID, &last), 1);
    CU_ASSERT_EQUAL_FATAL(last.len, 4);
    CU_ASSERT_EQUAL(memcmp(last.data, "\x00\x00\x10\x92", 4), 0);
    CU_ASSERT_EQUAL(w.capture_id, 4242);
    CU_ASSERT_EQUAL(hep_encoded_len(&v, &ov), p.len - HEP3_CHUNK_HDR_LEN - 4);
    assert_same_fields(&v, &w);
}

static void test_repeated_capture_id_after_payload_is_dropped(void)
{
    struct pkt p;
    struct hep_view v, w;
    pkt_start(&p);
    pkt_u16(&p, HEP_CHUNK_CAPTURE_ID, 7);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_u32(&p, HEP_CHUNK_CAPTURE_ID, 4242);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);

    struct hep_overrides ov = { .set_capture_id = true, .capture_id = 4242 };
    CU_ASSERT_TRUE(hep_encode_needed(&v, &ov));
    encode_and_decode(&v, &ov, &w);
    CU_ASSERT_EQUAL(count_chunks(&w, HEP_CHUNK_CAPTURE_ID, NULL), 1);
    CU_ASSERT_EQUAL(w.capture_id, 4242);
    CU_ASSERT_EQUAL(w.capture_id_len, 4);
}

/* A bytes chunk sent as [stale, wanted]; o (a field of *ov) sets wanted. */
static void check_repeated_bytes_rewritten_once(uint16_t type, struct hep_overrides *ov,
                                                struct hep_bytes_override *o)
{
    struct pkt p;
    struct hep_view v, w;
    struct hep_bytes last = { NULL, 0 };
    pkt_start(&p);
    pkt_chunk(&p, type, "stale", 5);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_chunk(&p, type, "wanted", 6);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);

    o->set = true;
    o->value.data = (const uint8_t *)"wanted";
    o->value.len = 6;
    CU_ASSERT_TRUE(hep_encode_needed(&v, ov));
    encode_and_decode(&v, ov, &w);
    CU_ASSERT_EQUAL(w.repeated, 0);
    CU_ASSERT_EQUAL(count_chunks(&w, type, &last), 1);
    CU_ASSERT_EQUAL_FATAL(last.len, 6);
    CU_ASSERT_EQUAL(memcmp(last.data, "wanted", 6), 0);
    /* written where the packet first had it: before the payload */
    CU_ASSERT_EQUAL(hep_encoded_len(&v, ov), p.len - HEP3_CHUNK_HDR_LEN - 5);
    CU_ASSERT_EQUAL(memcmp(out + HEP3_HDR_LEN + HEP3_CHUNK_HDR_LEN, "wanted", 6), 0);

    /* removing a repeated chunk removes every occurrence */
    o->value.data = NULL;
    o->value.len = 0;
    CU_ASSERT_TRUE(hep_encode_needed(&v, ov));
    encode_and_decode(&v, ov, &w);
    CU_ASSERT_EQUAL(count_chunks(&w, type, NULL), 0);
}

static void test_repeated_node_name_is_rewritten_once(void)
{
    struct hep_overrides ov = { 0 };
    check_repeated_bytes_rewritten_once(HEP_CHUNK_NODE_NAME, &ov, &ov.node_name);
}

static void test_repeated_auth_key_is_rewritten_once(void)
{
    struct hep_overrides ov = { 0 };
    check_repeated_bytes_rewritten_once(HEP_CHUNK_AUTH_KEY, &ov, &ov.auth_key);
}

static void test_repeated_correlation_id_is_rewritten_once(void)
{
    struct hep_overrides ov = { 0 };
    check_repeated_bytes_rewritten_once(HEP_CHUNK_CORRELATION_ID, &ov, &ov.correlation_id);
}

static void test_repeated_time_is_rewritten_once(void)
{
    struct pkt p;
    struct hep_view v, w;
    pkt_start(&p);
    pkt_u32(&p, HEP_CHUNK_TS_SEC, 1);
    pkt_u32(&p, HEP_CHUNK_TS_USEC, 2);
    pkt_u32(&p, HEP_CHUNK_TS_SEC, 1700000000u);
    pkt_u32(&p, HEP_CHUNK_TS_USEC, 5);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);

    struct hep_overrides ov = { .set_time = true, .ts_sec = 1700000000u, .ts_usec = 5 };
    CU_ASSERT_TRUE(hep_encode_needed(&v, &ov));
    encode_and_decode(&v, &ov, &w);
    CU_ASSERT_EQUAL(w.repeated, 0);
    CU_ASSERT_EQUAL(count_chunks(&w, HEP_CHUNK_TS_SEC, NULL), 1);
    CU_ASSERT_EQUAL(count_chunks(&w, HEP_CHUNK_TS_USEC, NULL), 1);
    CU_ASSERT_EQUAL(w.ts_sec, 1700000000u);
    CU_ASSERT_EQUAL(w.ts_usec, 5);
}

/* Skips the generic chunks of one type; returns false at the end. */
static bool next_other_chunk(struct hep_chunk_iter *it, struct hep_chunk *c, uint16_t skip)
{
    while (hep_chunk_next(it, c))
        if (c->vendor != 0 || c->type != skip)
            return true;
    return false;
}

static void test_repeated_chunk_not_overridden_is_kept_byte_for_byte(void)
{
    struct pkt p;
    struct hep_view v, w;
    pkt_start(&p);
    pkt_u32(&p, HEP_CHUNK_CAPTURE_ID, 7);
    pkt_chunk(&p, HEP_CHUNK_NODE_NAME, "node-a", 6);
    pkt_chunk_v(&p, 0x1234, HEP_CHUNK_CAPTURE_ID, "vendor", 6);
    pkt_chunk(&p, HEP_CHUNK_NODE_NAME, "node-b", 6);
    pkt_chunk_v(&p, 0x1234, HEP_CHUNK_CAPTURE_ID, "vendor", 6);
    pkt_chunk(&p, 0x0099, "unknown", 7);
    pkt_chunk(&p, 0x0099, "unknown", 7);
    pkt_u32(&p, HEP_CHUNK_CAPTURE_ID, 4242);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, "SIP", 3);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);

    /* a repeat of a chunk no override touches forces nothing */
    struct hep_overrides remove_absent = { .auth_key = { .set = true } };
    CU_ASSERT_FALSE(hep_encode_needed(&v, &remove_absent));

    struct hep_overrides ov = { .set_capture_id = true, .capture_id = 4242 };
    CU_ASSERT_TRUE(hep_encode_needed(&v, &ov));
    encode_and_decode(&v, &ov, &w);
    CU_ASSERT_EQUAL(count_chunks(&w, HEP_CHUNK_CAPTURE_ID, NULL), 1);
    CU_ASSERT_EQUAL(count_chunks(&w, HEP_CHUNK_NODE_NAME, NULL), 2);
    CU_ASSERT_EQUAL(w.repeated, HEP_CHUNK_BIT(HEP_CHUNK_NODE_NAME));

    /* every other chunk, in order, byte for byte */
    struct hep_chunk_iter a, b;
    struct hep_chunk ca, cb;
    int n = 0;
    hep_chunk_iter_init(&a, &v);
    hep_chunk_iter_init(&b, &w);
    while (next_other_chunk(&a, &ca, HEP_CHUNK_CAPTURE_ID)) {
        CU_ASSERT_FATAL(next_other_chunk(&b, &cb, HEP_CHUNK_CAPTURE_ID));
        CU_ASSERT_EQUAL(ca.vendor, cb.vendor);
        CU_ASSERT_EQUAL(ca.type, cb.type);
        CU_ASSERT_EQUAL_FATAL(ca.value.len, cb.value.len);
        CU_ASSERT_EQUAL(memcmp(ca.value.data, cb.value.data, ca.value.len), 0);
        n++;
    }
    CU_ASSERT_FALSE(next_other_chunk(&b, &cb, HEP_CHUNK_CAPTURE_ID));
    CU_ASSERT_EQUAL(n, 7);
}

static void test_v1_converts_to_v3(void)
{
    uint8_t b[256];
    struct hep_view v, w;
    size_t n = build_v12(b, 1, SIP_INVITE), m;
    CU_ASSERT_EQUAL_FATAL(hep_decode(b, n, &v), HEP_OK);
    CU_ASSERT_TRUE(hep_encode_needed(&v, NULL));
    struct hep_overrides ov = { .set_time = true, .ts_sec = 1700000001u, .ts_usec = 5 };
    CU_ASSERT_EQUAL_FATAL(hep_encode(&v, &ov, out, sizeof out, &m), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, m, &w), HEP_OK);
    CU_ASSERT_EQUAL(w.version, 3);
    assert_same_fields(&v, &w);
    CU_ASSERT_EQUAL(w.ts_sec, 1700000001u);
    CU_ASSERT_EQUAL(w.ts_usec, 5);
    CU_ASSERT_FALSE(w.present & HEP_HAS_CAPTURE_ID);
    /* same overhead as Kamailio's own v3 without capture id */
    CU_ASSERT_EQUAL(m - strlen(SIP_INVITE), 99 - 10);

    /* without a time override, v1 has no time chunks */
    CU_ASSERT_EQUAL_FATAL(hep_encode(&v, NULL, out, sizeof out, &m), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, m, &w), HEP_OK);
    CU_ASSERT_FALSE(w.present & HEP_HAS_TS);
}

static void test_v2_converts_to_v3_with_overrides(void)
{
    uint8_t b[256];
    struct hep_view v, w;
    size_t n = build_v12(b, 2, SIP_INVITE), m;
    CU_ASSERT_EQUAL_FATAL(hep_decode(b, n, &v), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(hep_encode(&v, NULL, out, sizeof out, &m), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, m, &w), HEP_OK);
    CU_ASSERT_EQUAL(w.version, 3);
    assert_same_fields(&v, &w);
    CU_ASSERT_EQUAL(w.ts_sec, 0x01020304u);
    CU_ASSERT_EQUAL(w.ts_usec, 0x00050607u);
    CU_ASSERT_EQUAL(w.capture_id, 0x0809u);
    CU_ASSERT_EQUAL(w.capture_id_len, 4);
    CU_ASSERT_EQUAL(m - strlen(SIP_INVITE), 99);

    struct hep_overrides ov = {
        .set_capture_id = true, .capture_id = 99,
        .auth_key = { true, { (const uint8_t *)"pw", 2 } },
        .node_name = { true, { (const uint8_t *)"n1", 2 } },
    };
    CU_ASSERT_EQUAL_FATAL(hep_encode(&v, &ov, out, sizeof out, &m), HEP_OK);
    CU_ASSERT_EQUAL_FATAL(hep_decode(out, m, &w), HEP_OK);
    CU_ASSERT_EQUAL(w.capture_id, 99);
    CU_ASSERT_EQUAL(memcmp(w.auth_key.data, "pw", 2), 0);
    CU_ASSERT_EQUAL(memcmp(w.node_name.data, "n1", 2), 0);
    CU_ASSERT_EQUAL(w.ts_sec, 0x01020304u);
    assert_same_fields(&v, &w);
}

static void test_encode_errors(void)
{
    struct pkt p;
    struct hep_view v;
    size_t n = 1;
    pkt_kamailio_like(&p, SIP_INVITE);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    CU_ASSERT_EQUAL(hep_encode(&v, NULL, out, p.len - 1, &n), HEP_ERR_NO_SPACE);
    CU_ASSERT_EQUAL(n, 0);

    /* a v1 payload that does not fit a HEP3 packet once chunk headers are added */
    size_t big = HEP3_MAX_LEN - 40;
    uint8_t *b = malloc(HEP12_HLEN_IPV4 + big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    build_v12(b, 1, "");
    memset(b + HEP12_HLEN_IPV4, 'x', big);
    CU_ASSERT_EQUAL_FATAL(hep_decode(b, HEP12_HLEN_IPV4 + big, &v), HEP_OK);
    CU_ASSERT_EQUAL(hep_encode(&v, NULL, out, sizeof out, &n), HEP_ERR_TOO_BIG);
    free(b);

    /* a maximum-size v3 packet that gains a chunk */
    pkt_start(&p);
    static char payload[HEP3_MAX_LEN];
    size_t plen = HEP3_MAX_LEN - HEP3_HDR_LEN - HEP3_CHUNK_HDR_LEN;
    memset(payload, 'y', plen);
    pkt_chunk(&p, HEP_CHUNK_PAYLOAD, payload, plen);
    pkt_finish(&p);
    CU_ASSERT_EQUAL_FATAL(p.len, HEP3_MAX_LEN);
    CU_ASSERT_EQUAL_FATAL(decode_pkt(&p, &v), HEP_OK);
    struct hep_overrides ov = { .node_name = { true, { (const uint8_t *)"n", 1 } } };
    CU_ASSERT_EQUAL(hep_encode(&v, &ov, out, sizeof out, &n), HEP_ERR_TOO_BIG);
    /* ... while forwarding it unchanged still works */
    CU_ASSERT_EQUAL(hep_encode(&v, NULL, out, sizeof out, &n), HEP_OK);
    CU_ASSERT_EQUAL(n, HEP3_MAX_LEN);
}

/* ---- real Kamailio 5.6 vectors ---- */

#define MANIFEST_COLS 17
#define MAX_LINE 4096

/* Splits a TSV line in place; returns the number of fields. */
static int split_tsv(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static int column(char **hdr, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(hdr[i], name) == 0)
            return i;
    return -1;
}

static void format_ip(const struct hep_view *v, const uint8_t *a, char *buf, size_t len)
{
    inet_ntop(v->addr_len == 16 ? AF_INET6 : AF_INET, a, buf, (socklen_t)len);
}

/* Finds "\r\nName: " (exact case, as Kamailio writes it) in the payload. */
static int payload_has(const struct hep_view *v, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= v->payload.len; i++)
        if (memcmp(v->payload.data + i, needle, nl) == 0)
            return 1;
    return 0;
}

static void check_vectors(int version)
{
    char mpath[256], line[MAX_LINE], hline[MAX_LINE];
    snprintf(mpath, sizeof mpath, "%s/kamailio/v%d/manifest.tsv", TEST_DATA_DIR, version);
    FILE *m = fopen(mpath, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char *hdr[32], *f[32];
    int nh = 0, rows = 0;
    while (fgets(hline, sizeof hline, m) != NULL) {
        if (hline[0] != '#') {
            nh = split_tsv(hline, hdr, 32);
            break;
        }
    }
    int c_file = column(hdr, nh, "file"), c_ver = column(hdr, nh, "version");
    int c_fam = column(hdr, nh, "family"), c_proto = column(hdr, nh, "ip_proto");
    int c_sip = column(hdr, nh, "src_ip"), c_sport = column(hdr, nh, "src_port");
    int c_dip = column(hdr, nh, "dst_ip"), c_dport = column(hdr, nh, "dst_port");
    int c_ts = column(hdr, nh, "ts_sec"), c_cap = column(hdr, nh, "capture_id");
    int c_pt = column(hdr, nh, "proto_type"), c_plen = column(hdr, nh, "payload_len");
    int c_corr = column(hdr, nh, "correlation_id"), c_first = column(hdr, nh, "first_line");
    int c_cid = column(hdr, nh, "call_id");
    CU_ASSERT_FATAL(c_file >= 0 && c_ver >= 0 && c_fam >= 0 && c_proto >= 0 && c_sip >= 0 &&
                    c_sport >= 0 && c_dip >= 0 && c_dport >= 0 && c_ts >= 0 && c_cap >= 0 &&
                    c_pt >= 0 && c_plen >= 0 && c_corr >= 0 && c_first >= 0 && c_cid >= 0);

    while (fgets(line, sizeof line, m) != NULL) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int n = split_tsv(line, f, 32);
        CU_ASSERT_FATAL(n >= nh);
        char rel[256];
        size_t len;
        snprintf(rel, sizeof rel, "kamailio/v%d/%s", version, f[c_file]);
        uint8_t *buf = unit_read_file(rel, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        struct hep_view v;
        int rc = hep_decode(buf, len, &v);
        CU_ASSERT_EQUAL(rc, HEP_OK);
        if (rc != HEP_OK) {
            fprintf(stderr, "%s: %s\n", rel, hep_strerror(rc));
            free(buf);
            continue;
        }
        char ip[64];
        CU_ASSERT_EQUAL(v.version, atoi(f[c_ver]));
        CU_ASSERT_EQUAL(v.family, atoi(f[c_fam]));
        CU_ASSERT_EQUAL(v.ip_proto, atoi(f[c_proto]));
        format_ip(&v, v.src_ip, ip, sizeof ip);
        CU_ASSERT_STRING_EQUAL(ip, f[c_sip]);
        format_ip(&v, v.dst_ip, ip, sizeof ip);
        CU_ASSERT_STRING_EQUAL(ip, f[c_dip]);
        CU_ASSERT_EQUAL(v.src_port, atoi(f[c_sport]));
        CU_ASSERT_EQUAL(v.dst_port, atoi(f[c_dport]));
        CU_ASSERT_EQUAL(v.ts_sec, strtoul(f[c_ts], NULL, 10));
        if (version >= 2) {
            CU_ASSERT_EQUAL(v.capture_id, strtoul(f[c_cap], NULL, 10));
        } else {
            CU_ASSERT_FALSE(v.present & HEP_HAS_CAPTURE_ID);
        }
        if (version == 3)
            CU_ASSERT_EQUAL(v.proto_type, atoi(f[c_pt]));
        CU_ASSERT_EQUAL(v.payload.len, strtoul(f[c_plen], NULL, 10));
        CU_ASSERT_EQUAL(v.correlation_id.len, strlen(f[c_corr]));
        if (v.correlation_id.len > 0)
            CU_ASSERT_EQUAL(memcmp(v.correlation_id.data, f[c_corr], v.correlation_id.len), 0);
        /* the payload is the SIP message: its first line and Call-ID */
        size_t fl = strlen(f[c_first]);
        CU_ASSERT_TRUE(v.payload.len > fl && memcmp(v.payload.data, f[c_first], fl) == 0 &&
                       v.payload.data[fl] == '\r');
        CU_ASSERT_TRUE(payload_has(&v, f[c_cid]));

        /* and converting it to v3 keeps every field */
        size_t olen;
        struct hep_view w;
        CU_ASSERT_EQUAL_FATAL(hep_encode(&v, NULL, out, sizeof out, &olen), HEP_OK);
        CU_ASSERT_EQUAL_FATAL(hep_decode(out, olen, &w), HEP_OK);
        assert_same_fields(&v, &w);
        CU_ASSERT_EQUAL(w.ts_sec, v.ts_sec);
        if (version == 3)
            CU_ASSERT_EQUAL(memcmp(out, buf, len), 0);
        free(buf);
        rows++;
    }
    fclose(m);
    CU_ASSERT(rows > 0);
}

static void test_kamailio_v1_vectors(void) { check_vectors(1); }
static void test_kamailio_v2_vectors(void) { check_vectors(2); }
static void test_kamailio_v3_vectors(void) { check_vectors(3); }

int main(void)
{
    static const struct unit_test tests[] = {
        { "v3 decodes every field", test_v3_all_fields },
        { "v3 IPv6 and optional chunks", test_v3_ipv6_and_optional_chunks },
        { "v3 vendor and unknown chunks kept and iterated", test_v3_vendor_and_unknown_chunks_kept_and_iterated },
        { "v3 payload-only packet is valid", test_v3_payload_only_is_valid },
        { "error: truncated", test_err_truncated },
        { "error: bad version", test_err_bad_version },
        { "error: total length mismatch", test_err_length_mismatch },
        { "error: chunk length below 6", test_err_chunk_too_short },
        { "error: chunk past the end", test_err_chunk_overrun },
        { "error: fixed-size chunk with wrong size", test_err_fixed_chunk_size },
        { "error: missing payload", test_err_no_payload },
        { "a packet of the most chunks decodes", test_a_packet_of_the_most_chunks_decodes },
        { "error: bad family", test_err_family },
        { "error: v1/v2 header length", test_err_v12_header_length },
        { "error: address chunks disagree with family", test_err_address_mismatch },
        { "every status has a distinct text", test_every_status_has_distinct_text },
        { "every truncation fails cleanly", test_every_truncation_fails_cleanly },
        { "v1 decodes", test_v1_decode },
        { "v2 time block is little-endian", test_v2_time_block_is_little_endian },
        { "v2 IPv6", test_v2_ipv6 },
        { "unchanged v3 is not re-encoded", test_unchanged_v3_is_not_reencoded },
        { "v3 overrides replace in place", test_v3_overrides_replace_in_place_and_add_before_payload },
        { "override of a chunk after the payload replaces it", test_override_of_chunk_after_payload_replaces_it },
        { "removing a present empty chunk removes it", test_removing_a_present_empty_chunk_removes_it },
        { "decoder records repeated generic chunk types", test_decoder_records_repeated_generic_chunk_types },
        { "repeated capture id is rewritten once", test_repeated_capture_id_is_rewritten_once },
        { "repeated capture id after the payload is dropped", test_repeated_capture_id_after_payload_is_dropped },
        { "repeated node name is rewritten once", test_repeated_node_name_is_rewritten_once },
        { "repeated auth key is rewritten once", test_repeated_auth_key_is_rewritten_once },
        { "repeated correlation id is rewritten once", test_repeated_correlation_id_is_rewritten_once },
        { "repeated time is rewritten once", test_repeated_time_is_rewritten_once },
        { "repeated chunk not overridden is kept byte for byte", test_repeated_chunk_not_overridden_is_kept_byte_for_byte },
        { "v1 converts to v3", test_v1_converts_to_v3 },
        { "v2 converts to v3 with overrides", test_v2_converts_to_v3_with_overrides },
        { "encode errors", test_encode_errors },
        { "Kamailio 5.6 hep_version=1 vectors", test_kamailio_v1_vectors },
        { "Kamailio 5.6 hep_version=2 vectors", test_kamailio_v2_vectors },
        { "Kamailio 5.6 hep_version=3 vectors", test_kamailio_v3_vectors },
        { NULL, NULL },
    };
    return unit_run("hep", tests);
}
