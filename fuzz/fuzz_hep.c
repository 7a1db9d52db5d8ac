/*
 * fuzz_hep.c - libFuzzer harness for the HEP codec (src/hep.c).
 *
 * The input is one datagram.  hep_decode() must never read outside it (ASan
 * watches) and must return a known status.  Every chunk the iterator yields
 * must lie inside the input, and for a decoded packet the chunks must tile
 * it exactly and agree with the view.  A decoded packet is then encoded as
 * HEPv3 three ways - without overrides, with overrides that repeat what the
 * packet already carries, and with overrides taken from the input bytes -
 * into buffers of exactly hep_encoded_len() bytes, and decoded again: every
 * field must survive (overridden ones take the override), version becomes 3,
 * and an unchanged v3 packet comes out byte for byte.  Any violation aborts.
 *
 * Build (fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -I src fuzz/fuzz_hep.c src/hep.c -o fuzz_hep
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hep.h"
#include "fuzz.h"

#define FUZZ_MAX_SLICE  512u    /* longest override value taken from the input */
#define FNV_OFFSET      UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME       UINT64_C(0x100000001b3)

/* Override modes for one bytes chunk, chosen by two bits of the input. */
enum bytes_mode {
    MODE_KEEP = 0,      /* no override */
    MODE_REMOVE,        /* set, empty: remove the chunk */
    MODE_SLICE,         /* set to a slice of the input */
    MODE_SAME,          /* set to the value the packet already has */
};


/* True when p[0..n) lies inside [base, base + size). */
static int inside(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
    if (n == 0)
        return p == NULL || (p >= base && p <= base + size);
    return p != NULL && p >= base && n <= size && (size_t)(p - base) <= size - n;
}

static int bytes_eq(struct hep_bytes a, struct hep_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void check_status(int rc)
{
    CHECK(rc >= 0 && rc < HEP_STATUS_COUNT);
    CHECK(hep_strerror(rc) != NULL && hep_strerror(rc)[0] != '\0');
    CHECK(hep_status_name(rc) != NULL && hep_status_name(rc)[0] != '\0');
}

/* The iterator stays inside the input, even for a view that failed. */
static size_t check_chunks_inside(const struct hep_view *v, const uint8_t *data, size_t size)
{
    struct hep_chunk_iter it;
    struct hep_chunk c;
    size_t n = 0;

    hep_chunk_iter_init(&it, v);
    while (hep_chunk_next(&it, &c)) {
        CHECK(inside(c.value.data - HEP3_CHUNK_HDR_LEN, c.value.len + HEP3_CHUNK_HDR_LEN,
                     data, size));
        CHECK(++n <= size / HEP3_CHUNK_HDR_LEN);
    }
    return n;
}

/*
 * A decoded view: pointers inside the input, presence bits consistent, and
 * (v3) the chunks tile the packet and the view holds the last chunk of each
 * generic type, as the decoder documents by example.
 */
static void check_view(const struct hep_view *v, const uint8_t *data, size_t size)
{
    CHECK(v->raw.data == data && v->raw.len == size);
    CHECK(v->version >= 1 && v->version <= 3);
    CHECK(v->present & HEP_HAS_PAYLOAD);
    CHECK(inside(v->payload.data, v->payload.len, data, size));
    CHECK(inside(v->auth_key.data, v->auth_key.len, data, size));
    CHECK(inside(v->correlation_id.data, v->correlation_id.len, data, size));
    CHECK(inside(v->node_name.data, v->node_name.len, data, size));
    CHECK(v->addr_len == 0 || v->addr_len == 4 || v->addr_len == 16);
    CHECK(!(v->present & HEP_HAS_SRC_IP) == (v->src_ip == NULL));
    CHECK(!(v->present & HEP_HAS_DST_IP) == (v->dst_ip == NULL));
    CHECK((v->src_ip == NULL && v->dst_ip == NULL) == (v->addr_len == 0));
    if (v->src_ip != NULL)
        CHECK(inside(v->src_ip, v->addr_len, data, size));
    if (v->dst_ip != NULL)
        CHECK(inside(v->dst_ip, v->addr_len, data, size));
    if (v->present & HEP_HAS_FAMILY) {
        CHECK(v->family == HEP_AF_INET || v->family == HEP_AF_INET6);
        if (v->addr_len != 0)
            CHECK(v->addr_len == (v->family == HEP_AF_INET ? 4 : 16));
    }
    CHECK((v->capture_id_len != 0) == !!(v->present & HEP_HAS_CAPTURE_ID));
    CHECK(v->capture_id_len == 0 || v->capture_id_len == 2 || v->capture_id_len == 4);
    if (v->capture_id_len == 2)
        CHECK(v->capture_id <= UINT16_MAX);

    if (v->version != 3) {
        CHECK(data[0] == v->version);
        CHECK(v->chunks.data == NULL && check_chunks_inside(v, data, size) == 0);
        CHECK(v->payload.len > 0 && v->payload.data + v->payload.len == data + size);
        CHECK(!v->compressed);
        CHECK(v->family == HEP_AF_INET || v->family == HEP_AF_INET6);
        return;
    }

    CHECK(size >= HEP3_HDR_LEN && memcmp(data, HEP3_MAGIC, 4) == 0);
    CHECK(((size_t)data[4] << 8 | data[5]) == size);
    check_chunks_inside(v, data, size);

    struct hep_chunk_iter it;
    struct hep_chunk c;
    const uint8_t *expect = data + HEP3_HDR_LEN;
    const uint8_t *payload = NULL, *auth = NULL, *corr = NULL, *node = NULL;
    int gz = 0;

    hep_chunk_iter_init(&it, v);
    while (hep_chunk_next(&it, &c)) {
        CHECK(c.value.data == expect + HEP3_CHUNK_HDR_LEN);
        expect = c.value.data + c.value.len;
        if (c.vendor != 0)
            continue;
        switch (c.type) {
        case HEP_CHUNK_PAYLOAD:
        case HEP_CHUNK_PAYLOAD_GZ:
            payload = c.value.data;
            gz = c.type == HEP_CHUNK_PAYLOAD_GZ;
            break;
        case HEP_CHUNK_AUTH_KEY: auth = c.value.data; break;
        case HEP_CHUNK_CORRELATION_ID: corr = c.value.data; break;
        case HEP_CHUNK_NODE_NAME: node = c.value.data; break;
        default: break;
        }
    }
    CHECK(expect == data + size);
    CHECK(payload == v->payload.data && gz == v->compressed);
    CHECK(auth == ((v->present & HEP_HAS_AUTH_KEY) ? v->auth_key.data : NULL));
    CHECK(corr == ((v->present & HEP_HAS_CORRELATION_ID) ? v->correlation_id.data : NULL));
    CHECK(node == ((v->present & HEP_HAS_NODE_NAME) ? v->node_name.data : NULL));
}

static void check_bytes_field(const struct hep_view *in, const struct hep_view *out,
                              uint32_t bit, struct hep_bytes was, struct hep_bytes now,
                              const struct hep_bytes_override *o)
{
    if (o != NULL && o->set) {
        if (o->value.len == 0) {
            CHECK(!(out->present & bit));
        } else {
            CHECK(out->present & bit);
            CHECK(bytes_eq(now, o->value));
        }
        return;
    }
    CHECK((in->present & bit) == (out->present & bit));
    if (in->present & bit)
        CHECK(bytes_eq(was, now));
}

/* out is the decode of hep_encode(in, ov): every field as expected. */
static void check_transformed(const struct hep_view *in, const struct hep_view *out,
                              const struct hep_overrides *ov)
{
    const uint32_t same_bits = HEP_HAS_FAMILY | HEP_HAS_IP_PROTO | HEP_HAS_SRC_IP |
                               HEP_HAS_DST_IP | HEP_HAS_SRC_PORT | HEP_HAS_DST_PORT |
                               HEP_HAS_PROTO_TYPE | HEP_HAS_KEEPALIVE | HEP_HAS_VLAN |
                               HEP_HAS_PAYLOAD;

    CHECK(out->version == 3);
    CHECK((in->present & same_bits) == (out->present & same_bits));
    CHECK(in->family == out->family && in->ip_proto == out->ip_proto);
    CHECK(in->addr_len == out->addr_len);
    if (in->src_ip != NULL)
        CHECK(memcmp(in->src_ip, out->src_ip, in->addr_len) == 0);
    if (in->dst_ip != NULL)
        CHECK(memcmp(in->dst_ip, out->dst_ip, in->addr_len) == 0);
    CHECK(in->src_port == out->src_port && in->dst_port == out->dst_port);
    CHECK(in->proto_type == out->proto_type);
    CHECK(in->keepalive == out->keepalive && in->vlan == out->vlan);
    CHECK(bytes_eq(in->payload, out->payload) && in->compressed == out->compressed);

    if (ov != NULL && ov->set_time) {
        CHECK(out->present & HEP_HAS_TS);
        CHECK(out->ts_sec == ov->ts_sec && out->ts_usec == ov->ts_usec);
    } else {
        CHECK((in->present & HEP_HAS_TS) == (out->present & HEP_HAS_TS));
        CHECK(in->ts_sec == out->ts_sec && in->ts_usec == out->ts_usec);
    }
    if (ov != NULL && ov->set_capture_id) {
        CHECK(out->present & HEP_HAS_CAPTURE_ID);
        CHECK(out->capture_id == ov->capture_id && out->capture_id_len == 4);
    } else {
        CHECK((in->present & HEP_HAS_CAPTURE_ID) == (out->present & HEP_HAS_CAPTURE_ID));
        CHECK(in->capture_id == out->capture_id);
        /* v3 is copied as sent; v1/v2's u16 is written as u32. */
        if (in->present & HEP_HAS_CAPTURE_ID)
            CHECK(out->capture_id_len == (in->version == 3 ? in->capture_id_len : 4));
    }
    check_bytes_field(in, out, HEP_HAS_NODE_NAME, in->node_name, out->node_name,
                      ov ? &ov->node_name : NULL);
    check_bytes_field(in, out, HEP_HAS_AUTH_KEY, in->auth_key, out->auth_key,
                      ov ? &ov->auth_key : NULL);
    check_bytes_field(in, out, HEP_HAS_CORRELATION_ID, in->correlation_id,
                      out->correlation_id, ov ? &ov->correlation_id : NULL);
}

/* Types a set of overrides replaces (vendor 0), as a bit per type < 32. */
static uint32_t overridden_types(const struct hep_overrides *ov)
{
    uint32_t t = 0;
    if (ov == NULL)
        return 0;
    if (ov->set_capture_id)
        t |= 1u << HEP_CHUNK_CAPTURE_ID;
    if (ov->set_time)
        t |= 1u << HEP_CHUNK_TS_SEC | 1u << HEP_CHUNK_TS_USEC;
    if (ov->node_name.set)
        t |= 1u << HEP_CHUNK_NODE_NAME;
    if (ov->auth_key.set)
        t |= 1u << HEP_CHUNK_AUTH_KEY;
    if (ov->correlation_id.set)
        t |= 1u << HEP_CHUNK_CORRELATION_ID;
    return t;
}

static int is_replaced(const struct hep_chunk *c, uint32_t types)
{
    return c->vendor == 0 && c->type < 32 && (types >> c->type & 1u);
}

/* v3: every chunk no override touches is kept, in order, byte for byte. */
static void check_untouched_chunks(const struct hep_view *in, const struct hep_view *out,
                                   const struct hep_overrides *ov)
{
    uint32_t types = overridden_types(ov);
    struct hep_chunk_iter a, b;
    struct hep_chunk ca, cb;

    hep_chunk_iter_init(&a, in);
    hep_chunk_iter_init(&b, out);
    for (;;) {
        bool more_a, more_b;
        while ((more_a = hep_chunk_next(&a, &ca)) && is_replaced(&ca, types))
            ;
        while ((more_b = hep_chunk_next(&b, &cb)) && is_replaced(&cb, types))
            ;
        CHECK(more_a == more_b);
        if (!more_a)
            return;
        CHECK(ca.vendor == cb.vendor && ca.type == cb.type && bytes_eq(ca.value, cb.value));
    }
}

/*
 * Encodes view with ov into a buffer of exactly hep_encoded_len() bytes,
 * decodes the result and checks it against the view.
 */
static void round_trip(const struct hep_view *v, const struct hep_overrides *ov)
{
    bool needed = hep_encode_needed(v, ov);
    size_t need = hep_encoded_len(v, ov);
    size_t out_len = 1;

    if (v->version != 3)
        CHECK(needed);
    if (ov == NULL)
        CHECK(needed == (v->version != 3));

    if (need > HEP3_MAX_LEN) {
        CHECK(needed);
        uint8_t small[1];
        CHECK(hep_encode(v, ov, small, sizeof small, &out_len) == HEP_ERR_TOO_BIG);
        CHECK(out_len == 0);
        return;
    }
    CHECK(need >= HEP3_HDR_LEN + HEP3_CHUNK_HDR_LEN);

    /* One byte short: refused, nothing written past the end (ASan). */
    uint8_t *out = malloc(need);
    CHECK(out != NULL);
    CHECK(hep_encode(v, ov, out, need - 1, &out_len) == HEP_ERR_NO_SPACE);
    CHECK(out_len == 0);

    int rc = hep_encode(v, ov, out, need, &out_len);
    CHECK(rc == HEP_OK);
    CHECK(out_len == need);
    CHECK(memcmp(out, HEP3_MAGIC, 4) == 0);
    CHECK(((size_t)out[4] << 8 | out[5]) == out_len);
    if (!needed)
        CHECK(out_len == v->raw.len && memcmp(out, v->raw.data, out_len) == 0);
    else if (v->version == 3)
        CHECK(out_len != v->raw.len || memcmp(out, v->raw.data, out_len) != 0);

    struct hep_view w;
    rc = hep_decode(out, out_len, &w);
    CHECK(rc == HEP_OK);
    check_view(&w, out, out_len);
    check_transformed(v, &w, ov);
    if (v->version == 3)
        check_untouched_chunks(v, &w, ov);
    CHECK((w.repeated & overridden_types(ov)) == 0);

    /* Our own output is stable: re-encoding it without overrides copies it. */
    CHECK(!hep_encode_needed(&w, NULL));
    CHECK(hep_encoded_len(&w, NULL) == out_len);
    free(out);
}

static uint64_t fnv1a(const uint8_t *data, size_t size)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* A slice of the input picked by the hash; long ones can overflow 64 KiB. */
static struct hep_bytes slice(const uint8_t *data, size_t size, uint64_t h, bool whole)
{
    struct hep_bytes b;
    size_t off = (size_t)(h % size);
    size_t max = size - off;
    b.data = data + off;
    b.len = whole ? max : (size_t)((h >> 20) % (max < FUZZ_MAX_SLICE ? max + 1 : FUZZ_MAX_SLICE));
    return b;
}

static void set_bytes_override(struct hep_bytes_override *o, unsigned mode,
                               struct hep_bytes current, bool present,
                               struct hep_bytes some_slice)
{
    switch (mode) {
    case MODE_REMOVE:
        o->set = true;
        o->value.data = NULL;
        o->value.len = 0;
        break;
    case MODE_SLICE:
        o->set = true;
        o->value = some_slice;
        break;
    case MODE_SAME:
        o->set = true;
        o->value = present ? current : some_slice;
        break;
    default:
        break;
    }
}

/* Overrides chosen by the input's last two bytes, values from its hash. */
static void derived_overrides(const struct hep_view *v, const uint8_t *data, size_t size,
                              struct hep_overrides *ov)
{
    uint8_t sel = data[size - 1];
    uint8_t sel2 = size >= 2 ? data[size - 2] : 0;
    uint64_t h = fnv1a(data, size);

    memset(ov, 0, sizeof *ov);
    if (sel & 1u) {
        ov->set_capture_id = true;
        ov->capture_id = (sel2 & 1u) ? v->capture_id : (uint32_t)(h >> 32);
    }
    if (sel & 2u) {
        ov->set_time = true;
        ov->ts_sec = (sel2 & 2u) ? v->ts_sec : (uint32_t)h;
        ov->ts_usec = (sel2 & 2u) ? v->ts_usec : (uint32_t)(h >> 40);
    }
    set_bytes_override(&ov->node_name, (sel >> 2) & 3u, v->node_name,
                       v->present & HEP_HAS_NODE_NAME, slice(data, size, h, false));
    set_bytes_override(&ov->auth_key, (sel >> 4) & 3u, v->auth_key,
                       v->present & HEP_HAS_AUTH_KEY, slice(data, size, h >> 7, false));
    set_bytes_override(&ov->correlation_id, (sel >> 6) & 3u, v->correlation_id,
                       v->present & HEP_HAS_CORRELATION_ID,
                       slice(data, size, h >> 13, (sel2 & 4u) != 0));
}

/* Overrides that repeat what a v3 packet carries: must not change a byte. */
static void same_overrides(const struct hep_view *v, struct hep_overrides *ov)
{
    memset(ov, 0, sizeof *ov);
    if (v->capture_id_len == 4) {
        ov->set_capture_id = true;
        ov->capture_id = v->capture_id;
    }
    if (v->present & HEP_HAS_TS) {
        ov->set_time = true;
        ov->ts_sec = v->ts_sec;
        ov->ts_usec = v->ts_usec;
    }
    if ((v->present & HEP_HAS_NODE_NAME) && v->node_name.len > 0)
        set_bytes_override(&ov->node_name, MODE_SAME, v->node_name, true, v->node_name);
    if ((v->present & HEP_HAS_AUTH_KEY) && v->auth_key.len > 0)
        set_bytes_override(&ov->auth_key, MODE_SAME, v->auth_key, true, v->auth_key);
    if ((v->present & HEP_HAS_CORRELATION_ID) && v->correlation_id.len > 0)
        set_bytes_override(&ov->correlation_id, MODE_SAME, v->correlation_id, true,
                           v->correlation_id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hep_view v;
    int rc = hep_decode(data, size, &v);

    check_status(rc);
    CHECK(rc != HEP_ERR_NO_SPACE && rc != HEP_ERR_TOO_BIG);
    if (rc != HEP_OK) {
        check_chunks_inside(&v, data, size);
        return 0;
    }
    check_view(&v, data, size);

    struct hep_view again;
    CHECK(hep_decode(data, size, &again) == HEP_OK);
    CHECK(again.present == v.present && bytes_eq(again.payload, v.payload));

    round_trip(&v, NULL);

    struct hep_overrides ov;
    derived_overrides(&v, data, size, &ov);
    round_trip(&v, &ov);

    if (v.version == 3) {
        same_overrides(&v, &ov);
        /* unchanged, unless a repeat of an overridden type must go */
        CHECK(hep_encode_needed(&v, &ov) == ((v.repeated & overridden_types(&ov)) != 0));
        round_trip(&v, &ov);
    }
    return 0;
}
