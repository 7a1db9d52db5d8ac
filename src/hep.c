/*
 * hep.c - HEP v1/v2/v3 decoder and HEPv3 encoder.
 *
 * The decoder is pure: it checks every length before reading, records
 * pointers into the caller's buffer and never allocates.  The encoder writes
 * into a caller-provided buffer; the same code path computes the size when
 * given no buffer, so hep_encoded_len() cannot disagree with hep_encode().
 */
#include "hep.h"

#include <string.h>

#include "bytes.h"

#define IPV4_ADDR_LEN 4u
#define IPV6_ADDR_LEN 16u

static int decode_v12(const uint8_t *buf, size_t len, struct hep_view *v)
{
    if (len < HEP12_HDR_LEN)
        return HEP_ERR_TRUNCATED;

    uint8_t hlen = buf[1];
    uint8_t family = buf[2];
    uint8_t addr_len;
    if (family == HEP_AF_INET) {
        addr_len = IPV4_ADDR_LEN;
        if (hlen != HEP12_HLEN_IPV4)
            return HEP_ERR_HDR_LEN;
    } else if (family == HEP_AF_INET6) {
        addr_len = IPV6_ADDR_LEN;
        if (hlen != HEP12_HLEN_IPV6)
            return HEP_ERR_HDR_LEN;
    } else {
        return HEP_ERR_FAMILY;
    }

    size_t payload_off = hlen + (v->version == 2 ? HEP2_TIME_LEN : 0);
    if (len < payload_off)
        return HEP_ERR_TRUNCATED;
    if (len == payload_off)
        return HEP_ERR_NO_PAYLOAD;

    v->family = family;
    v->ip_proto = buf[3];
    v->src_port = bytes_get_be16(buf + 4);
    v->dst_port = bytes_get_be16(buf + 6);
    v->addr_len = addr_len;
    v->src_ip = buf + HEP12_HDR_LEN;
    v->dst_ip = buf + HEP12_HDR_LEN + addr_len;
    v->proto_type = HEP_PROTO_SIP;
    v->present = HEP_HAS_FAMILY | HEP_HAS_IP_PROTO | HEP_HAS_SRC_IP | HEP_HAS_DST_IP |
                 HEP_HAS_SRC_PORT | HEP_HAS_DST_PORT | HEP_HAS_PROTO_TYPE | HEP_HAS_PAYLOAD;

    if (v->version == 2) {
        /* the time block is in the sender's byte order: little-endian (x86) */
        const uint8_t *t = buf + hlen;
        v->ts_sec = bytes_get_le32(t);
        v->ts_usec = bytes_get_le32(t + 4);
        v->capture_id = bytes_get_le16(t + 8);
        v->capture_id_len = 2;
        v->present |= HEP_HAS_TS | HEP_HAS_CAPTURE_ID;
    }
    v->payload.data = buf + payload_off;
    v->payload.len = len - payload_off;
    return HEP_OK;
}

/* Records an address chunk; all address chunks must have one size. */
static int set_addr(struct hep_view *v, const uint8_t **slot, uint32_t bit, uint32_t *present,
                    const uint8_t *value, uint8_t alen)
{
    if (v->addr_len != 0 && v->addr_len != alen)
        return HEP_ERR_ADDRESS;
    v->addr_len = alen;
    *slot = value;
    *present |= bit;
    return HEP_OK;
}

static void set_bytes(struct hep_bytes *slot, uint32_t bit, uint32_t *present, const uint8_t *value, size_t vlen)
{
    slot->data = value;
    slot->len = vlen;
    *present |= bit;
}

/* A fixed-size chunk's value must have exactly its size. */
#define NEED_SIZE(n)                                                            \
    if (vlen != (n))                                                            \
        return HEP_ERR_CHUNK_SIZE

/*
 * Checks and records one generic chunk (vendor 0), its field's bit added to
 * *present (a local of the caller's loop, not v->present: one register, not
 * a read and a write of memory per chunk); an unknown type is kept in
 * v->chunks only.
 */
static int decode_generic_chunk(struct hep_view *v, uint32_t *present, uint16_t type, const uint8_t *val,
                                size_t vlen)
{
    switch (type) {
    case HEP_CHUNK_FAMILY:
        NEED_SIZE(1);
        v->family = val[0];
        *present |= HEP_HAS_FAMILY;
        break;
    case HEP_CHUNK_IP_PROTO:
        NEED_SIZE(1);
        v->ip_proto = val[0];
        *present |= HEP_HAS_IP_PROTO;
        break;
    case HEP_CHUNK_SRC_IP4:
        NEED_SIZE(IPV4_ADDR_LEN);
        return set_addr(v, &v->src_ip, HEP_HAS_SRC_IP, present, val, IPV4_ADDR_LEN);
    case HEP_CHUNK_DST_IP4:
        NEED_SIZE(IPV4_ADDR_LEN);
        return set_addr(v, &v->dst_ip, HEP_HAS_DST_IP, present, val, IPV4_ADDR_LEN);
    case HEP_CHUNK_SRC_IP6:
        NEED_SIZE(IPV6_ADDR_LEN);
        return set_addr(v, &v->src_ip, HEP_HAS_SRC_IP, present, val, IPV6_ADDR_LEN);
    case HEP_CHUNK_DST_IP6:
        NEED_SIZE(IPV6_ADDR_LEN);
        return set_addr(v, &v->dst_ip, HEP_HAS_DST_IP, present, val, IPV6_ADDR_LEN);
    case HEP_CHUNK_SRC_PORT:
        NEED_SIZE(2);
        v->src_port = bytes_get_be16(val);
        *present |= HEP_HAS_SRC_PORT;
        break;
    case HEP_CHUNK_DST_PORT:
        NEED_SIZE(2);
        v->dst_port = bytes_get_be16(val);
        *present |= HEP_HAS_DST_PORT;
        break;
    case HEP_CHUNK_TS_SEC:
        NEED_SIZE(4);
        v->ts_sec = bytes_get_be32(val);
        *present |= HEP_HAS_TS;
        break;
    case HEP_CHUNK_TS_USEC:
        NEED_SIZE(4);
        v->ts_usec = bytes_get_be32(val);
        break;
    case HEP_CHUNK_PROTO_TYPE:
        NEED_SIZE(1);
        v->proto_type = val[0];
        *present |= HEP_HAS_PROTO_TYPE;
        break;
    case HEP_CHUNK_CAPTURE_ID:
        if (vlen != 2 && vlen != 4)
            return HEP_ERR_CHUNK_SIZE;
        v->capture_id = vlen == 4 ? bytes_get_be32(val) : bytes_get_be16(val);
        v->capture_id_len = (uint8_t)vlen;
        *present |= HEP_HAS_CAPTURE_ID;
        break;
    case HEP_CHUNK_KEEPALIVE:
        NEED_SIZE(2);
        v->keepalive = bytes_get_be16(val);
        *present |= HEP_HAS_KEEPALIVE;
        break;
    case HEP_CHUNK_AUTH_KEY:
        set_bytes(&v->auth_key, HEP_HAS_AUTH_KEY, present, val, vlen);
        break;
    case HEP_CHUNK_PAYLOAD:
    case HEP_CHUNK_PAYLOAD_GZ:
        set_bytes(&v->payload, HEP_HAS_PAYLOAD, present, val, vlen);
        v->compressed = type == HEP_CHUNK_PAYLOAD_GZ;
        break;
    case HEP_CHUNK_CORRELATION_ID:
        set_bytes(&v->correlation_id, HEP_HAS_CORRELATION_ID, present, val, vlen);
        break;
    case HEP_CHUNK_VLAN:
        NEED_SIZE(2);
        v->vlan = bytes_get_be16(val);
        *present |= HEP_HAS_VLAN;
        break;
    case HEP_CHUNK_NODE_NAME:
        set_bytes(&v->node_name, HEP_HAS_NODE_NAME, present, val, vlen);
        break;
    default:
        break;      /* unknown generic chunk: kept in v->chunks */
    }
    return HEP_OK;
}

static int decode_v3(const uint8_t *buf, size_t len, struct hep_view *v)
{
    if (len < HEP3_HDR_LEN)
        return HEP_ERR_TRUNCATED;
    if (bytes_get_be16(buf + 4) != len)
        return HEP_ERR_LENGTH;

    const uint8_t *pos = buf + HEP3_HDR_LEN;
    const uint8_t *end = buf + len;
    uint32_t seen = 0;      /* HEP_CHUNK_BIT() of the generic types so far */
    uint32_t present = 0, repeated = 0;     /* v->present, v->repeated once the loop is over */
    v->chunks.data = pos;
    v->chunks.len = (size_t)(end - pos);
    while (pos < end) {
        if ((size_t)(end - pos) < HEP3_CHUNK_HDR_LEN)
            return HEP_ERR_CHUNK_OVERRUN;
        uint16_t vendor = bytes_get_be16(pos);
        uint16_t type = bytes_get_be16(pos + 2);
        uint16_t clen = bytes_get_be16(pos + 4);
        if (clen < HEP3_CHUNK_HDR_LEN)
            return HEP_ERR_CHUNK_SHORT;
        if (clen > (size_t)(end - pos))
            return HEP_ERR_CHUNK_OVERRUN;
        const uint8_t *val = pos + HEP3_CHUNK_HDR_LEN;
        size_t vlen = clen - HEP3_CHUNK_HDR_LEN;
        if (vendor == 0) {
            int rc = decode_generic_chunk(v, &present, type, val, vlen);
            if (rc != HEP_OK)
                return rc;
            if (type < 32) {
                repeated |= seen & HEP_CHUNK_BIT(type);
                seen |= HEP_CHUNK_BIT(type);
            }
        }
        pos += clen;
    }
    v->present = present;
    v->repeated = repeated;

    if (!(v->present & HEP_HAS_PAYLOAD))
        return HEP_ERR_NO_PAYLOAD;
    if (v->present & HEP_HAS_FAMILY) {
        if (v->family == HEP_AF_INET) {
            if (v->addr_len == IPV6_ADDR_LEN)
                return HEP_ERR_ADDRESS;
        } else if (v->family == HEP_AF_INET6) {
            if (v->addr_len == IPV4_ADDR_LEN)
                return HEP_ERR_ADDRESS;
        } else {
            return HEP_ERR_FAMILY;
        }
    }
    return HEP_OK;
}

int hep_decode(const uint8_t *buf, size_t len, struct hep_view *view)
{
    memset(view, 0, sizeof *view);
    view->raw.data = buf;
    view->raw.len = len;
    if (len >= 4 && memcmp(buf, HEP3_MAGIC, 4) == 0) {
        view->version = 3;
        return decode_v3(buf, len, view);
    }
    if (len == 0)
        return HEP_ERR_TRUNCATED;
    if (buf[0] == 1 || buf[0] == 2) {
        view->version = buf[0];
        return decode_v12(buf, len, view);
    }
    return len < HEP3_HDR_LEN ? HEP_ERR_TRUNCATED : HEP_ERR_VERSION;
}

void hep_chunk_iter_init(struct hep_chunk_iter *it, const struct hep_view *view)
{
    it->pos = view->chunks.data;
    it->end = view->chunks.data ? view->chunks.data + view->chunks.len : NULL;
}

bool hep_chunk_next(struct hep_chunk_iter *it, struct hep_chunk *chunk)
{
    if (it->pos == NULL || (size_t)(it->end - it->pos) < HEP3_CHUNK_HDR_LEN)
        return false;
    uint16_t clen = bytes_get_be16(it->pos + 4);
    if (clen < HEP3_CHUNK_HDR_LEN || clen > (size_t)(it->end - it->pos))
        return false;       /* only reachable for a view that failed to decode */
    chunk->vendor = bytes_get_be16(it->pos);
    chunk->type = bytes_get_be16(it->pos + 2);
    chunk->value.data = it->pos + HEP3_CHUNK_HDR_LEN;
    chunk->value.len = clen - HEP3_CHUNK_HDR_LEN;
    it->pos += clen;
    return true;
}

/* ---- encoding ---- */

/*
 * Writes chunks into out[0..cap).  With out == NULL it only counts, which is
 * how hep_encoded_len() shares the layout logic with hep_encode().
 */
struct emitter {
    uint8_t *out;
    size_t cap;
    size_t len;
};

static void emit_raw(struct emitter *e, const uint8_t *data, size_t n)
{
    if (e->out != NULL && e->len + n <= e->cap && n > 0)
        memcpy(e->out + e->len, data, n);
    e->len += n;
}

static void emit_chunk(struct emitter *e, uint16_t type, const uint8_t *value, size_t vlen)
{
    uint8_t hdr[HEP3_CHUNK_HDR_LEN];
    size_t clen = HEP3_CHUNK_HDR_LEN + vlen;
    bytes_put_be16(hdr, 0);
    bytes_put_be16(hdr + 2, type);
    /* An oversized chunk makes the whole packet too big; caught by the caller. */
    bytes_put_be16(hdr + 4, clen > HEP3_MAX_LEN ? 0 : (uint16_t)clen);
    emit_raw(e, hdr, sizeof hdr);
    emit_raw(e, value, vlen);
}

static void emit_u8(struct emitter *e, uint16_t type, uint8_t v)
{
    emit_chunk(e, type, &v, 1);
}

static void emit_u16(struct emitter *e, uint16_t type, uint16_t v)
{
    uint8_t b[2];
    bytes_put_be16(b, v);
    emit_chunk(e, type, b, sizeof b);
}

static void emit_u32(struct emitter *e, uint16_t type, uint32_t v)
{
    uint8_t b[4];
    bytes_put_be32(b, v);
    emit_chunk(e, type, b, sizeof b);
}

static void emit_bytes(struct emitter *e, uint16_t type, struct hep_bytes b)
{
    emit_chunk(e, type, b.data, b.len);
}

/* Override bookkeeping: which overridden chunk types are still to be written. */
enum pending {
    PEND_CAPTURE_ID = 1u << 0,
    PEND_TS_SEC = 1u << 1,
    PEND_TS_USEC = 1u << 2,
    PEND_NODE_NAME = 1u << 3,
    PEND_AUTH_KEY = 1u << 4,
    PEND_CORRELATION_ID = 1u << 5,
};

static unsigned pending_bit(uint16_t type)
{
    switch (type) {
    case HEP_CHUNK_CAPTURE_ID: return PEND_CAPTURE_ID;
    case HEP_CHUNK_TS_SEC: return PEND_TS_SEC;
    case HEP_CHUNK_TS_USEC: return PEND_TS_USEC;
    case HEP_CHUNK_NODE_NAME: return PEND_NODE_NAME;
    case HEP_CHUNK_AUTH_KEY: return PEND_AUTH_KEY;
    case HEP_CHUNK_CORRELATION_ID: return PEND_CORRELATION_ID;
    default: return 0;
    }
}

static unsigned overridden(const struct hep_overrides *ov)
{
    unsigned set = 0;
    if (ov == NULL)
        return 0;
    if (ov->set_capture_id)
        set |= PEND_CAPTURE_ID;
    if (ov->set_time)
        set |= PEND_TS_SEC | PEND_TS_USEC;
    if (ov->node_name.set)
        set |= PEND_NODE_NAME;
    if (ov->auth_key.set)
        set |= PEND_AUTH_KEY;
    if (ov->correlation_id.set)
        set |= PEND_CORRELATION_ID;
    return set;
}

/* The same set as HEP_CHUNK_BIT()s, to compare with hep_view.repeated. */
static uint32_t overridden_types(const struct hep_overrides *ov)
{
    uint32_t set = 0;
    if (ov == NULL)
        return 0;
    if (ov->set_capture_id)
        set |= HEP_CHUNK_BIT(HEP_CHUNK_CAPTURE_ID);
    if (ov->set_time)
        set |= HEP_CHUNK_BIT(HEP_CHUNK_TS_SEC) | HEP_CHUNK_BIT(HEP_CHUNK_TS_USEC);
    if (ov->node_name.set)
        set |= HEP_CHUNK_BIT(HEP_CHUNK_NODE_NAME);
    if (ov->auth_key.set)
        set |= HEP_CHUNK_BIT(HEP_CHUNK_AUTH_KEY);
    if (ov->correlation_id.set)
        set |= HEP_CHUNK_BIT(HEP_CHUNK_CORRELATION_ID);
    return set;
}

static void emit_override_bytes(struct emitter *e, uint16_t type, const struct hep_bytes_override *o)
{
    if (o->value.len > 0)
        emit_bytes(e, type, o->value);
}

/* Writes the override for one chunk type (a removal writes nothing). */
static void emit_override(struct emitter *e, const struct hep_overrides *ov, unsigned bit)
{
    switch (bit) {
    case PEND_CAPTURE_ID: emit_u32(e, HEP_CHUNK_CAPTURE_ID, ov->capture_id); break;
    case PEND_TS_SEC: emit_u32(e, HEP_CHUNK_TS_SEC, ov->ts_sec); break;
    case PEND_TS_USEC: emit_u32(e, HEP_CHUNK_TS_USEC, ov->ts_usec); break;
    case PEND_NODE_NAME: emit_override_bytes(e, HEP_CHUNK_NODE_NAME, &ov->node_name); break;
    case PEND_AUTH_KEY: emit_override_bytes(e, HEP_CHUNK_AUTH_KEY, &ov->auth_key); break;
    case PEND_CORRELATION_ID:
        emit_override_bytes(e, HEP_CHUNK_CORRELATION_ID, &ov->correlation_id);
        break;
    default: break;
    }
}

static void emit_pending(struct emitter *e, const struct hep_overrides *ov, unsigned *pending)
{
    for (unsigned bit = 1; *pending != 0; bit <<= 1) {
        if (*pending & bit) {
            emit_override(e, ov, bit);
            *pending &= ~bit;
        }
    }
}

/*
 * v3 input: copies every chunk in order.  An overridden chunk is written
 * where the packet first had it and any repeat of it is dropped; overrides
 * for chunks the packet lacks go just before the payload, which stays last
 * as Kamailio sends it.
 */
static void emit_v3_chunks(struct emitter *e, const struct hep_view *v, const struct hep_overrides *ov)
{
    const unsigned ovset = overridden(ov);
    unsigned pending = ovset;
    struct hep_chunk_iter it;
    struct hep_chunk c;

    hep_chunk_iter_init(&it, v);
    while (hep_chunk_next(&it, &c)) {
        unsigned bit = c.vendor == 0 ? pending_bit(c.type) : 0;
        if (bit & ovset) {
            if (pending & bit) {
                emit_override(e, ov, bit);
                pending &= ~bit;
            }
            continue;
        }
        if (c.vendor == 0 && (c.type == HEP_CHUNK_PAYLOAD || c.type == HEP_CHUNK_PAYLOAD_GZ))
            emit_pending(e, ov, &pending);
        emit_raw(e, c.value.data - HEP3_CHUNK_HDR_LEN, c.value.len + HEP3_CHUNK_HDR_LEN);
    }
    emit_pending(e, ov, &pending);
}

/* v1/v2 input: builds the chunks Kamailio would send, in its order. */
static void emit_v12_chunks(struct emitter *e, const struct hep_view *v, const struct hep_overrides *ov)
{
    unsigned pending = overridden(ov);
    bool v6 = v->family == HEP_AF_INET6;

    emit_u8(e, HEP_CHUNK_FAMILY, v->family);
    emit_u8(e, HEP_CHUNK_IP_PROTO, v->ip_proto);
    emit_chunk(e, v6 ? HEP_CHUNK_SRC_IP6 : HEP_CHUNK_SRC_IP4, v->src_ip, v->addr_len);
    emit_chunk(e, v6 ? HEP_CHUNK_DST_IP6 : HEP_CHUNK_DST_IP4, v->dst_ip, v->addr_len);
    emit_u16(e, HEP_CHUNK_SRC_PORT, v->src_port);
    emit_u16(e, HEP_CHUNK_DST_PORT, v->dst_port);
    if (pending & PEND_TS_SEC) {
        emit_override(e, ov, PEND_TS_SEC);
        emit_override(e, ov, PEND_TS_USEC);
        pending &= ~(unsigned)(PEND_TS_SEC | PEND_TS_USEC);
    } else if (v->present & HEP_HAS_TS) {
        emit_u32(e, HEP_CHUNK_TS_SEC, v->ts_sec);
        emit_u32(e, HEP_CHUNK_TS_USEC, v->ts_usec);
    }
    emit_u8(e, HEP_CHUNK_PROTO_TYPE, v->proto_type);
    if (pending & PEND_CAPTURE_ID) {
        emit_override(e, ov, PEND_CAPTURE_ID);
        pending &= ~(unsigned)PEND_CAPTURE_ID;
    } else if (v->present & HEP_HAS_CAPTURE_ID) {
        emit_u32(e, HEP_CHUNK_CAPTURE_ID, v->capture_id);
    }
    emit_pending(e, ov, &pending);
    emit_bytes(e, HEP_CHUNK_PAYLOAD, v->payload);
}

static int encode(const struct hep_view *v, const struct hep_overrides *ov, struct emitter *e)
{
    if (!hep_encode_needed(v, ov)) {
        emit_raw(e, v->raw.data, v->raw.len);
        return HEP_OK;
    }
    uint8_t hdr[HEP3_HDR_LEN];
    memcpy(hdr, HEP3_MAGIC, 4);
    bytes_put_be16(hdr + 4, 0);          /* patched once the length is known */
    emit_raw(e, hdr, sizeof hdr);
    if (v->version == 3)
        emit_v3_chunks(e, v, ov);
    else
        emit_v12_chunks(e, v, ov);
    if (e->len > HEP3_MAX_LEN)
        return HEP_ERR_TOO_BIG;
    if (e->out != NULL && e->len <= e->cap)
        bytes_put_be16(e->out + 4, (uint16_t)e->len);
    return HEP_OK;
}

static bool bytes_equal(struct hep_bytes a, struct hep_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* True when the override would change what the packet carries. */
static bool bytes_override_changes(const struct hep_bytes_override *o, const struct hep_view *v,
                                   uint32_t bit, struct hep_bytes current)
{
    if (!o->set)
        return false;
    if (!(v->present & bit))
        return o->value.len > 0;
    /* removing a present chunk changes the bytes even when it is empty */
    return o->value.len == 0 || !bytes_equal(o->value, current);
}

bool hep_encode_needed(const struct hep_view *v, const struct hep_overrides *ov)
{
    if (v->version != 3)
        return true;
    if (ov == NULL)
        return false;
    /* the view holds only the last of a repeated chunk; the encoding keeps one */
    if (v->repeated & overridden_types(ov))
        return true;
    if (ov->set_capture_id &&
        !(v->capture_id_len == 4 && v->capture_id == ov->capture_id))
        return true;
    if (ov->set_time && !((v->present & HEP_HAS_TS) && v->ts_sec == ov->ts_sec &&
                          v->ts_usec == ov->ts_usec))
        return true;
    return bytes_override_changes(&ov->node_name, v, HEP_HAS_NODE_NAME, v->node_name) ||
           bytes_override_changes(&ov->auth_key, v, HEP_HAS_AUTH_KEY, v->auth_key) ||
           bytes_override_changes(&ov->correlation_id, v, HEP_HAS_CORRELATION_ID,
                                  v->correlation_id);
}

size_t hep_encoded_len(const struct hep_view *view, const struct hep_overrides *ov)
{
    struct emitter e = { NULL, 0, 0 };
    (void)encode(view, ov, &e);
    return e.len;
}

int hep_encode(const struct hep_view *view, const struct hep_overrides *ov,
               uint8_t *out, size_t cap, size_t *out_len)
{
    size_t need = hep_encoded_len(view, ov);
    *out_len = 0;
    if (need > HEP3_MAX_LEN && hep_encode_needed(view, ov))
        return HEP_ERR_TOO_BIG;
    if (need > cap)
        return HEP_ERR_NO_SPACE;
    struct emitter e = { out, cap, 0 };
    int rc = encode(view, ov, &e);
    if (rc == HEP_OK)
        *out_len = e.len;
    return rc;
}

/* ---- names ---- */

static const struct {
    const char *name;
    const char *text;
} status_names[HEP_STATUS_COUNT] = {
    [HEP_OK] = { "ok", "ok" },
    [HEP_ERR_TRUNCATED] = { "truncated", "truncated header" },
    [HEP_ERR_VERSION] = { "bad_version", "bad magic or version" },
    [HEP_ERR_LENGTH] = { "length_mismatch", "total length does not match packet size" },
    [HEP_ERR_HDR_LEN] = { "bad_header_length", "v1/v2 header length does not match family" },
    [HEP_ERR_FAMILY] = { "bad_family", "address family is neither IPv4 nor IPv6" },
    [HEP_ERR_CHUNK_SHORT] = { "chunk_too_short", "chunk length below 6" },
    [HEP_ERR_CHUNK_OVERRUN] = { "chunk_overrun", "chunk runs past the end of the packet" },
    [HEP_ERR_CHUNK_SIZE] = { "bad_chunk_size", "fixed-size chunk has the wrong size" },
    [HEP_ERR_NO_PAYLOAD] = { "no_payload", "missing payload" },
    [HEP_ERR_ADDRESS] = { "bad_address", "address chunks do not match the family" },
    [HEP_ERR_NO_SPACE] = { "no_space", "output buffer too small" },
    [HEP_ERR_TOO_BIG] = { "too_big", "encoded packet exceeds 65535 bytes" },
};

const char *hep_strerror(int status)
{
    if (status < 0 || status >= HEP_STATUS_COUNT)
        return "unknown error";
    return status_names[status].text;
}

const char *hep_status_name(int status)
{
    if (status < 0 || status >= HEP_STATUS_COUNT)
        return "unknown";
    return status_names[status].name;
}
