/*
 * capture.h - HEP packets read back out of a packet capture file.
 *
 * An edge module (it reads files, through libpcap): the way to look at
 * what an agent sent after the fact, with the same decoder as live.
 *
 * Input, told apart by the file's first byte:
 *   - pcap or pcapng (libpcap reads both), link types Ethernet (with
 *     802.1Q / 802.1ad VLAN tags), Linux cooked (SLL and SLL2) and raw IP;
 *     IPv4 and IPv6 (hop-by-hop, routing and destination options headers
 *     are walked).  A UDP datagram's payload is one packet, whatever it
 *     holds: deciding whether it is HEP is the decoder's job, as for a
 *     listening socket.  A TCP stream (one per address/port 4-tuple and
 *     direction) is put back in sequence order and cut into HEP3 frames by
 *     the framer (framer.h).  A segment that overlaps bytes already taken
 *     (a retransmission) gives only its new bytes.  A segment that starts
 *     past the next expected byte (out of order, or lost by the capture)
 *     is not held back: the bytes in between are lost, the partial frame
 *     is dropped and the stream resynchronises on the next "HEP3" found at
 *     the start of a segment's remaining bytes or inside it (a magic split
 *     across two segments is not seen).  Where the framing breaks (bad
 *     magic or length) the stream goes on at the next "HEP3" after the
 *     bad frame's start.
 *   - hepdump's JSON lines (a file starting with '{'), written with --raw:
 *     "raw" is the packet, "t" its time, "peer" and "transport" where it
 *     came from; the destination is not in those lines (AF_UNSPEC).
 *
 * Not done: IP fragment reassembly (fragments are counted and skipped),
 * holding out-of-order TCP segments.  Whatever is skipped is counted by
 * reason in struct capture_stats; no input makes it fail other than an
 * unreadable file.
 */
#ifndef HEPROUTER_CAPTURE_H
#define HEPROUTER_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

enum capture_transport { CAPTURE_UDP, CAPTURE_TCP };

/* One HEP packet; data stays valid until the next capture_next() or capture_close(). */
struct capture_packet {
    const uint8_t *data;
    size_t len;                         /* as sent: the datagram or the HEP3 frame */
    struct timespec ts;                 /* capture time (wall clock); TCP: of the
                                           segment that completed the frame */
    struct sockaddr_storage src;        /* outer source address and port */
    struct sockaddr_storage dst;        /* outer destination; AF_UNSPEC when unknown */
    enum capture_transport transport;
};

/* Why a record, or part of one, gave no packet. */
enum capture_skip {
    CAPTURE_SKIP_TRUNCATED,             /* record shorter on file than on the wire */
    CAPTURE_SKIP_LINK,                  /* link header short, or not carrying IP */
    CAPTURE_SKIP_BAD_IP,                /* IP header malformed or longer than the record */
    CAPTURE_SKIP_FRAGMENT,              /* an IP fragment (not reassembled) */
    CAPTURE_SKIP_NOT_UDP_TCP,           /* another IP protocol (ICMP, ...) */
    CAPTURE_SKIP_BAD_L4,                /* UDP/TCP header malformed or cut short */
    CAPTURE_SKIP_TCP_RETRANSMIT,        /* segment whose bytes were all taken before */
    CAPTURE_SKIP_TCP_GAP,               /* segment past the next expected byte */
    CAPTURE_SKIP_TCP_FRAMING,           /* stream bytes that were not a HEP3 frame */
    CAPTURE_SKIP_TCP_NO_MEMORY,         /* no memory for one more stream */
    CAPTURE_SKIP_BAD_LINE,              /* JSON line without a usable raw/peer/t */
    CAPTURE_SKIP_COUNT
};

struct capture_stats {
    uint64_t records;                   /* pcap records or JSON lines read */
    uint64_t packets;                   /* packets returned */
    uint64_t skipped[CAPTURE_SKIP_COUNT];
};

struct capture;

/*
 * Opens a capture; NULL with the reason in err (always NUL-terminated when
 * errlen > 0) if it cannot be read or its link type is not one above.
 */
struct capture *capture_open(const char *path, char *err, size_t errlen);

/*
 * The next packet: 1 and *p filled, 0 at the end of the file, -1 on a read
 * error (capture_error() says which).  A TCP frame still buffered at the
 * end of the file is counted as TCP_FRAMING.
 */
int capture_next(struct capture *c, struct capture_packet *p);

const struct capture_stats *capture_stats(const struct capture *c);

/* What went wrong on the last -1; "" otherwise. */
const char *capture_error(const struct capture *c);

/* "truncated", "tcp_gap", ...: the name of the reason, for reports. */
const char *capture_skip_name(enum capture_skip why);

void capture_close(struct capture *c);

#endif
