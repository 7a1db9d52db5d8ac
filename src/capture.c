/*
 * capture.c - HEP packets out of pcap, pcapng and hepdump's JSON lines.
 * The rules (what is a packet, what is skipped) are in capture.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "capture.h"
#include "conf.h"
#include "framer.h"
#include "hep.h"

/* Link and network header sizes and field values (IEEE 802.3, RFC 791, 8200, 768, 9293). */
#define ETH_HDR_LEN         14u
#define VLAN_TAG_LEN        4u
#define ETHERTYPE_IPV4      0x0800u
#define ETHERTYPE_IPV6      0x86ddu
#define ETHERTYPE_VLAN      0x8100u
#define ETHERTYPE_QINQ      0x88a8u
#define SLL_HDR_LEN         16u
#define SLL_PROTO_OFF       14u
#define SLL2_HDR_LEN        20u
#define SLL2_PROTO_OFF      0u
#define IPV4_MIN_HDR        20u
#define IPV4_MF             0x2000u
#define IPV4_FRAG_OFF_MASK  0x1fffu
#define IPV6_HDR_LEN        40u
#define IPV6_EXT_HOP        0u
#define IPV6_EXT_ROUTING    43u
#define IPV6_EXT_FRAGMENT   44u
#define IPV6_EXT_DSTOPTS    60u
#define IPV6_EXT_UNIT       8u
#define UDP_HDR_LEN         8u
#define TCP_MIN_HDR         20u
#define TCP_FLAG_FIN        0x01u
#define TCP_FLAG_SYN        0x02u
#define TCP_FLAG_RST        0x04u
#define NSEC_PER_USEC       1000L
#define USEC_DIGITS         6

struct endpoint_pair {
    struct sockaddr_storage src, dst;
};

struct stream {
    struct endpoint_pair ends;
    struct framer framer;
    uint32_t next_seq;
    bool seq_known;                     /* next_seq is set */
    bool resync;                        /* drop bytes up to the next "HEP3" */
    bool closing;                       /* FIN or RST seen: freed once drained */
    struct stream *next;
};

struct capture {
    pcap_t *pcap;                       /* NULL: JSON lines from json */
    FILE *json;
    int link;
    struct capture_stats stats;
    struct stream *streams;
    /* the TCP stream being cut into frames, and its segment's bytes not yet fed */
    struct stream *cur;
    const uint8_t *rest;
    size_t rest_len;
    struct timespec cur_ts;
    char *line;                         /* JSON lines: getline() buffer */
    size_t line_cap;
    uint8_t *raw;                       /* JSON lines: the decoded packet */
    size_t raw_cap;
    char error[PCAP_ERRBUF_SIZE];
};

static const char *const skip_names[CAPTURE_SKIP_COUNT] = {
    [CAPTURE_SKIP_TRUNCATED] = "truncated",
    [CAPTURE_SKIP_LINK] = "link",
    [CAPTURE_SKIP_BAD_IP] = "bad_ip",
    [CAPTURE_SKIP_FRAGMENT] = "fragment",
    [CAPTURE_SKIP_NOT_UDP_TCP] = "not_udp_tcp",
    [CAPTURE_SKIP_BAD_L4] = "bad_l4",
    [CAPTURE_SKIP_TCP_RETRANSMIT] = "tcp_retransmit",
    [CAPTURE_SKIP_TCP_GAP] = "tcp_gap",
    [CAPTURE_SKIP_TCP_FRAMING] = "tcp_framing",
    [CAPTURE_SKIP_TCP_NO_MEMORY] = "tcp_no_memory",
    [CAPTURE_SKIP_BAD_LINE] = "bad_line",
};

const char *capture_skip_name(enum capture_skip why)
{
    return (unsigned)why < CAPTURE_SKIP_COUNT ? skip_names[why] : "unknown";
}

const struct capture_stats *capture_stats(const struct capture *c)
{
    return &c->stats;
}

const char *capture_error(const struct capture *c)
{
    return c->error;
}

static void skip(struct capture *c, enum capture_skip why)
{
    c->stats.skipped[why]++;
}

static bool link_supported(int link)
{
    switch (link) {
    case DLT_EN10MB:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
        return true;
    default:
        return false;
    }
}

struct capture *capture_open(const char *path, char *err, size_t errlen)
{
    struct capture *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(c);
        return NULL;
    }
    int first = fgetc(f);
    if (first == '{') {
        rewind(f);
        c->json = f;
        return c;
    }
    fclose(f);

    char ebuf[PCAP_ERRBUF_SIZE] = "";
    c->pcap = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (c->pcap == NULL) {
        snprintf(err, errlen, "%s: %s", path, ebuf);
        free(c);
        return NULL;
    }
    c->link = pcap_datalink(c->pcap);
    if (!link_supported(c->link)) {
        const char *name = pcap_datalink_val_to_name(c->link);
        snprintf(err, errlen, "%s: link type %s (%d) is not Ethernet, Linux cooked or raw IP",
                 path, name != NULL ? name : "unknown", c->link);
        pcap_close(c->pcap);
        free(c);
        return NULL;
    }
    return c;
}

static void stream_free(struct capture *c, struct stream *s)
{
    for (struct stream **pp = &c->streams; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    framer_free(&s->framer);
    free(s);
}

void capture_close(struct capture *c)
{
    if (c == NULL)
        return;
    while (c->streams != NULL)
        stream_free(c, c->streams);
    if (c->pcap != NULL)
        pcap_close(c->pcap);
    if (c->json != NULL)
        fclose(c->json);
    free(c->line);
    free(c->raw);
    free(c);
}

/* ------------------------------------------------------------- addresses */

static void set_addr(struct sockaddr_storage *ss, int family, const uint8_t *ip, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, ip, sizeof(sin->sin_addr));
        sin->sin_port = htons(port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, ip, sizeof(sin6->sin6_addr));
        sin6->sin6_port = htons(port);
    }
}

static bool same_ends(const struct endpoint_pair *a, const struct endpoint_pair *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

/* -------------------------------------------------------------- TCP streams */

static struct stream *stream_find(struct capture *c, const struct endpoint_pair *ends)
{
    for (struct stream *s = c->streams; s != NULL; s = s->next)
        if (same_ends(&s->ends, ends))
            return s;
    struct stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    if (framer_init(&s->framer, HEP3_MAX_LEN) != 0) {
        free(s);
        return NULL;
    }
    s->ends = *ends;
    s->next = c->streams;
    c->streams = s;
    return s;
}

/* Empties the framer (its fields are public): what it held is lost. */
static void stream_reset(struct stream *s)
{
    s->framer.start = s->framer.end = 0;
}

/* Position of "HEP3" in p[0..n), or n. */
static size_t find_magic(const uint8_t *p, size_t n)
{
    size_t m = sizeof(HEP3_MAGIC) - 1;
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, HEP3_MAGIC, m) == 0)
            return i;
    return n;
}

/*
 * Takes one segment's payload into its stream by sequence number and makes
 * it the stream being framed.
 */
static void tcp_segment(struct capture *c, const struct endpoint_pair *ends, uint32_t seq,
                        unsigned flags, const uint8_t *payload, size_t len,
                        const struct timespec *ts)
{
    struct stream *s = stream_find(c, ends);
    if (s == NULL) {
        skip(c, CAPTURE_SKIP_TCP_NO_MEMORY);
        return;
    }
    if (flags & TCP_FLAG_SYN) {
        s->next_seq = seq + 1;
        s->seq_known = true;
        stream_reset(s);
        s->resync = false;
        s->closing = false;
        seq++;
    }
    if (len > 0) {
        if (!s->seq_known) {
            /* the capture began inside the stream: start at a frame */
            s->next_seq = seq;
            s->seq_known = true;
            s->resync = true;
        }
        int32_t off = (int32_t)(seq - s->next_seq);
        if (off > 0) {
            skip(c, CAPTURE_SKIP_TCP_GAP);
            stream_reset(s);
            s->resync = true;
            s->next_seq = seq;
            off = 0;
        }
        size_t old = (size_t)-(int64_t)off;
        if (old >= len) {
            skip(c, CAPTURE_SKIP_TCP_RETRANSMIT);
        } else {
            c->cur = s;
            c->rest = payload + old;
            c->rest_len = len - old;
            c->cur_ts = *ts;
            s->next_seq += (uint32_t)(len - old);
        }
    }
    if (flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
        s->closing = true;
    if (c->cur != s && s->closing) {
        if (framer_pending(&s->framer) != 0)
            skip(c, CAPTURE_SKIP_TCP_FRAMING);
        stream_free(c, s);
    }
}

/* Feeds the current segment's bytes; false when none are left. */
static bool tcp_feed(struct capture *c)
{
    struct stream *s = c->cur;
    if (s->resync && c->rest_len > 0) {
        size_t at = find_magic(c->rest, c->rest_len);
        c->rest += at;
        c->rest_len -= at;
        if (c->rest_len == 0)
            return false;
        s->resync = false;
    }
    if (c->rest_len == 0)
        return false;
    size_t n = framer_feed(&s->framer, c->rest, c->rest_len);
    c->rest += n;
    c->rest_len -= n;
    return n > 0;
}

/* The next frame of the current stream: true and *p set, or false when it needs another segment. */
static bool tcp_next_frame(struct capture *c, struct capture_packet *p)
{
    struct stream *s = c->cur;
    for (;;) {
        const uint8_t *frame;
        size_t len;
        enum framer_status st = framer_next(&s->framer, &frame, &len);
        if (st == FRAMER_OK) {
            p->data = frame;
            p->len = len;
            p->ts = c->cur_ts;
            p->src = s->ends.src;
            p->dst = s->ends.dst;
            p->transport = CAPTURE_TCP;
            return true;
        }
        if (st != FRAMER_NEED_MORE) {
            /* drop up to the next "HEP3" past the bad frame's first byte */
            skip(c, CAPTURE_SKIP_TCP_FRAMING);
            const uint8_t *held = s->framer.buf + s->framer.start;
            size_t n = framer_pending(&s->framer);
            size_t at = n > 0 ? 1 + find_magic(held + 1, n - 1) : 0;
            if (at < n) {
                s->framer.start += at;
                continue;
            }
            stream_reset(s);
            s->resync = true;
        }
        if (!tcp_feed(c))
            break;
    }
    c->cur = NULL;
    if (s->closing) {
        if (framer_pending(&s->framer) != 0)
            skip(c, CAPTURE_SKIP_TCP_FRAMING);
        stream_free(c, s);
    }
    return false;
}

/* ------------------------------------------------------------ one record */

/* Transport layer of one IP packet: a UDP packet in *p (true), or a TCP segment taken in. */
static bool transport(struct capture *c, int family, const uint8_t *src_ip, const uint8_t *dst_ip,
                      unsigned proto, const uint8_t *l4, size_t len, const struct timespec *ts,
                      struct capture_packet *p)
{
    if (proto == IPPROTO_UDP) {
        if (len < UDP_HDR_LEN) {
            skip(c, CAPTURE_SKIP_BAD_L4);
            return false;
        }
        size_t ulen = bytes_get_be16(l4 + 4);
        if (ulen < UDP_HDR_LEN || ulen > len) {
            skip(c, CAPTURE_SKIP_BAD_L4);
            return false;
        }
        set_addr(&p->src, family, src_ip, bytes_get_be16(l4));
        set_addr(&p->dst, family, dst_ip, bytes_get_be16(l4 + 2));
        p->data = l4 + UDP_HDR_LEN;
        p->len = ulen - UDP_HDR_LEN;
        p->ts = *ts;
        p->transport = CAPTURE_UDP;
        return true;
    }
    if (proto == IPPROTO_TCP) {
        size_t hlen = len >= TCP_MIN_HDR ? (size_t)(l4[12] >> 4) * 4 : 0;
        if (hlen < TCP_MIN_HDR || hlen > len) {
            skip(c, CAPTURE_SKIP_BAD_L4);
            return false;
        }
        struct endpoint_pair ends;
        set_addr(&ends.src, family, src_ip, bytes_get_be16(l4));
        set_addr(&ends.dst, family, dst_ip, bytes_get_be16(l4 + 2));
        tcp_segment(c, &ends, bytes_get_be32(l4 + 4), l4[13], l4 + hlen, len - hlen, ts);
        return false;
    }
    skip(c, CAPTURE_SKIP_NOT_UDP_TCP);
    return false;
}

static bool ipv4(struct capture *c, const uint8_t *ip, size_t len, const struct timespec *ts,
                 struct capture_packet *p)
{
    if (len < IPV4_MIN_HDR || (ip[0] >> 4) != 4) {
        skip(c, CAPTURE_SKIP_BAD_IP);
        return false;
    }
    size_t hlen = (size_t)(ip[0] & 0x0f) * 4;
    size_t total = bytes_get_be16(ip + 2);
    if (hlen < IPV4_MIN_HDR || total < hlen || total > len) {
        skip(c, CAPTURE_SKIP_BAD_IP);
        return false;
    }
    uint16_t frag = bytes_get_be16(ip + 6);
    if ((frag & IPV4_MF) || (frag & IPV4_FRAG_OFF_MASK)) {
        skip(c, CAPTURE_SKIP_FRAGMENT);
        return false;
    }
    return transport(c, AF_INET, ip + 12, ip + 16, ip[9], ip + hlen, total - hlen, ts, p);
}

static bool ipv6(struct capture *c, const uint8_t *ip, size_t len, const struct timespec *ts,
                 struct capture_packet *p)
{
    if (len < IPV6_HDR_LEN || (ip[0] >> 4) != 6) {
        skip(c, CAPTURE_SKIP_BAD_IP);
        return false;
    }
    size_t total = IPV6_HDR_LEN + bytes_get_be16(ip + 4);
    if (total > len) {
        skip(c, CAPTURE_SKIP_BAD_IP);
        return false;
    }
    unsigned next = ip[6];
    size_t off = IPV6_HDR_LEN;
    while (next == IPV6_EXT_HOP || next == IPV6_EXT_ROUTING || next == IPV6_EXT_DSTOPTS ||
           next == IPV6_EXT_FRAGMENT) {
        if (next == IPV6_EXT_FRAGMENT) {
            skip(c, CAPTURE_SKIP_FRAGMENT);
            return false;
        }
        if (total - off < IPV6_EXT_UNIT) {
            skip(c, CAPTURE_SKIP_BAD_IP);
            return false;
        }
        size_t ext = ((size_t)ip[off + 1] + 1) * IPV6_EXT_UNIT;
        if (total - off < ext) {
            skip(c, CAPTURE_SKIP_BAD_IP);
            return false;
        }
        next = ip[off];
        off += ext;
    }
    return transport(c, AF_INET6, ip + 8, ip + 24, next, ip + off, total - off, ts, p);
}

static bool ip_by_ethertype(struct capture *c, unsigned type, const uint8_t *ip, size_t len,
                            const struct timespec *ts, struct capture_packet *p)
{
    if (type == ETHERTYPE_IPV4)
        return ipv4(c, ip, len, ts, p);
    if (type == ETHERTYPE_IPV6)
        return ipv6(c, ip, len, ts, p);
    skip(c, CAPTURE_SKIP_LINK);
    return false;
}

/* One pcap record: true with a UDP packet in *p; TCP bytes go to their stream. */
static bool record(struct capture *c, const uint8_t *d, size_t len, const struct timespec *ts,
                   struct capture_packet *p)
{
    switch (c->link) {
    case DLT_EN10MB: {
        if (len < ETH_HDR_LEN) {
            skip(c, CAPTURE_SKIP_LINK);
            return false;
        }
        size_t off = ETH_HDR_LEN;
        unsigned type = bytes_get_be16(d + off - 2);
        while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ) {
            if (len - off < VLAN_TAG_LEN) {
                skip(c, CAPTURE_SKIP_LINK);
                return false;
            }
            type = bytes_get_be16(d + off + 2);
            off += VLAN_TAG_LEN;
        }
        return ip_by_ethertype(c, type, d + off, len - off, ts, p);
    }
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2: {
        size_t hlen = c->link == DLT_LINUX_SLL ? SLL_HDR_LEN : SLL2_HDR_LEN;
        size_t proto_off = c->link == DLT_LINUX_SLL ? SLL_PROTO_OFF : SLL2_PROTO_OFF;
        if (len < hlen) {
            skip(c, CAPTURE_SKIP_LINK);
            return false;
        }
        return ip_by_ethertype(c, bytes_get_be16(d + proto_off), d + hlen, len - hlen, ts, p);
    }
    default:                            /* raw IP: the version nibble says which */
        if (len >= 1 && (d[0] >> 4) == 4)
            return ipv4(c, d, len, ts, p);
        if (len >= 1 && (d[0] >> 4) == 6)
            return ipv6(c, d, len, ts, p);
        skip(c, CAPTURE_SKIP_BAD_IP);
        return false;
    }
}

/* ------------------------------------------------------------- JSON lines */

/* The text after "key": in line, or NULL.  Bare quotes only delimit keys and values. */
static const char *json_value(const char *line, const char *key)
{
    const char *at = strstr(line, key);
    return at != NULL ? at + strlen(key) : NULL;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* "1712345678.123456" into *ts. */
static bool json_time(const char *v, struct timespec *ts)
{
    char *end;
    errno = 0;
    unsigned long long sec = strtoull(v, &end, 10);
    if (end == v || errno != 0)
        return false;
    long usec = 0;
    if (*end == '.') {
        int digits = 0;
        for (end++; *end >= '0' && *end <= '9'; end++) {
            if (digits < USEC_DIGITS) {
                usec = usec * 10 + (*end - '0');
                digits++;
            }
        }
        for (; digits < USEC_DIGITS; digits++)
            usec *= 10;
    }
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = usec * NSEC_PER_USEC;
    return true;
}

/* "1.2.3.4:5" or "[::1]:5" up to the closing quote. */
static bool json_peer(const char *v, struct sockaddr_storage *ss)
{
    const char *q = strchr(v, '"');
    char text[INET6_ADDRSTRLEN + sizeof "[]:65535"];
    if (q == NULL || (size_t)(q - v) >= sizeof(text))
        return false;
    memcpy(text, v, (size_t)(q - v));
    text[q - v] = '\0';
    struct conf_host_port hp;
    if (conf_split_host_port(text, &hp) != NULL || hp.hlen >= INET6_ADDRSTRLEN)
        return false;
    char host[INET6_ADDRSTRLEN];
    memcpy(host, hp.host, hp.hlen);
    host[hp.hlen] = '\0';
    uint8_t ip[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, ip) == 1)
        set_addr(ss, AF_INET, ip, (uint16_t)hp.port);
    else if (inet_pton(AF_INET6, host, ip) == 1)
        set_addr(ss, AF_INET6, ip, (uint16_t)hp.port);
    else
        return false;
    return true;
}

/* The hex string up to the closing quote into c->raw. */
static bool json_raw(struct capture *c, const char *v, size_t *len)
{
    const char *q = strchr(v, '"');
    if (q == NULL || (q - v) % 2 != 0)
        return false;
    size_t n = (size_t)(q - v) / 2;
    if (n > c->raw_cap) {
        uint8_t *nb = realloc(c->raw, n);
        if (nb == NULL)
            return false;
        c->raw = nb;
        c->raw_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(v[2 * i]), lo = hex_value(v[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        c->raw[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n;
    return true;
}

static int json_next(struct capture *c, struct capture_packet *p)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&c->line, &c->line_cap, c->json);
        if (n < 0) {
            if (ferror(c->json)) {
                snprintf(c->error, sizeof(c->error), "read: %s", strerror(errno ? errno : EIO));
                return -1;
            }
            return 0;
        }
        c->stats.records++;
        const char *t = json_value(c->line, "\"t\":");
        const char *peer = json_value(c->line, "\"peer\":\"");
        const char *tr = json_value(c->line, "\"transport\":\"");
        const char *raw = json_value(c->line, "\"raw\":\"");
        memset(p, 0, sizeof(*p));
        if (t == NULL || peer == NULL || tr == NULL || raw == NULL || !json_time(t, &p->ts) ||
            !json_peer(peer, &p->src) || !json_raw(c, raw, &p->len)) {
            skip(c, CAPTURE_SKIP_BAD_LINE);
            continue;
        }
        p->transport = strncmp(tr, "tcp\"", 4) == 0 ? CAPTURE_TCP : CAPTURE_UDP;
        p->data = c->raw;
        c->stats.packets++;
        return 1;
    }
}

/* ------------------------------------------------------------------ next */

int capture_next(struct capture *c, struct capture_packet *p)
{
    c->error[0] = '\0';
    if (c->json != NULL)
        return json_next(c, p);
    for (;;) {
        if (c->cur != NULL && tcp_next_frame(c, p)) {
            c->stats.packets++;
            return 1;
        }
        struct pcap_pkthdr *h;
        const u_char *d;
        int rc = pcap_next_ex(c->pcap, &h, &d);
        if (rc == PCAP_ERROR_BREAK) {
            /* the end: frames left unfinished in open streams are lost */
            for (struct stream *s = c->streams; s != NULL; s = s->next)
                if (framer_pending(&s->framer) != 0)
                    skip(c, CAPTURE_SKIP_TCP_FRAMING);
            while (c->streams != NULL)
                stream_free(c, c->streams);
            return 0;
        }
        if (rc != 1) {
            snprintf(c->error, sizeof(c->error), "%s", pcap_geterr(c->pcap));
            return -1;
        }
        c->stats.records++;
        if (h->caplen < h->len) {
            skip(c, CAPTURE_SKIP_TRUNCATED);
            continue;
        }
        struct timespec ts = { .tv_sec = h->ts.tv_sec, .tv_nsec = (long)h->ts.tv_usec };
        memset(p, 0, sizeof(*p));
        if (record(c, d, h->caplen, &ts, p)) {
            c->stats.packets++;
            return 1;
        }
    }
}
