/*
 * udpblast.c - send HEP packets at a fixed rate, for rate tests.
 *
 *   udpblast [-c COUNT] [-r PPS] [-b BATCH] [-t [-S MAXWRITE]] HOST PORT [FILE...]
 *
 * Each FILE holds one packet (e.g. tests/data/kamailio/v3/001.hep); the
 * files are sent in turn until COUNT packets are out.  Without files it
 * sends a built-in HEP3 SIP INVITE.  Packets go out in sendmmsg() batches
 * paced against a monotonic clock, so the average rate is PPS even when
 * the sleeps are coarse.
 *
 * -t sends over one TCP connection instead: each batch is written as one
 * stream of back-to-back packets, cut into writes of random size 1..MAXWRITE
 * with -S, so the receiver sees frames split across reads and many frames
 * per read.  (Only HEP3 is framed on TCP.)
 *
 * HOST is an address or a name; PORT and the numbers are read with
 * heprouter's own parser (conf_parse_number), so this links the core library.
 *
 * At the end it prints one JSON line: {"sent":N,"seconds":S,"pps":R}.
 * Exit 0, 1 on a send error, 2 on usage.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "conf.h"
#include "hep.h"

#define DEFAULT_COUNT   1000
#define DEFAULT_BATCH   16
#define MAX_BATCH       1024
#define MAX_PACKET      65507           /* largest UDP payload over IPv4 */
#define SNDBUF_BYTES    (4 * 1024 * 1024)
#define NSEC_PER_SEC    1000000000LL
#define SPLIT_SEED      12345u          /* fixed: runs are reproducible */
#define EXIT_SEND       1
#define EXIT_USAGE      2

struct packet {
    uint8_t *data;
    size_t len;
};

/* A HEP3 packet as Kamailio sends it (chunks 1-4, 7-12, 15), built at start. */
static const char builtin_sip[] =
    "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-udpblast-1\r\n"
    "From: <sip:alice@127.0.0.1>;tag=udpblast-from\r\n"
    "To: <sip:bob@127.0.0.1>\r\n"
    "Call-ID: udpblast-1@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@127.0.0.1:5070>\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static size_t put_chunk(uint8_t *p, uint16_t type, const void *value, size_t vlen)
{
    size_t len = HEP3_CHUNK_HDR_LEN + vlen;
    bytes_put_be16(p, 0);                   /* vendor: generic */
    bytes_put_be16(p + 2, type);
    bytes_put_be16(p + 4, (uint16_t)len);
    memcpy(p + HEP3_CHUNK_HDR_LEN, value, vlen);
    return len;
}

static struct packet builtin_packet(void)
{
    static uint8_t buf[1024];
    const uint8_t family = HEP_AF_INET, proto = 17, proto_type = HEP_PROTO_SIP;   /* 17: UDP */
    const uint8_t src[4] = { 127, 0, 0, 1 }, dst[4] = { 127, 0, 0, 1 };
    uint8_t sport[2], dport[2], sec[4], usec[4], capture_id[4];
    size_t n = HEP3_HDR_LEN;

    bytes_put_be16(sport, 5070);
    bytes_put_be16(dport, 5060);
    bytes_put_be32(sec, 0x66000000);
    bytes_put_be32(usec, 1);
    bytes_put_be32(capture_id, 1);
    memcpy(buf, HEP3_MAGIC, 4);
    n += put_chunk(buf + n, HEP_CHUNK_FAMILY, &family, 1);
    n += put_chunk(buf + n, HEP_CHUNK_IP_PROTO, &proto, 1);
    n += put_chunk(buf + n, HEP_CHUNK_SRC_IP4, src, sizeof(src));
    n += put_chunk(buf + n, HEP_CHUNK_DST_IP4, dst, sizeof(dst));
    n += put_chunk(buf + n, HEP_CHUNK_SRC_PORT, sport, sizeof(sport));
    n += put_chunk(buf + n, HEP_CHUNK_DST_PORT, dport, sizeof(dport));
    n += put_chunk(buf + n, HEP_CHUNK_TS_SEC, sec, sizeof(sec));
    n += put_chunk(buf + n, HEP_CHUNK_TS_USEC, usec, sizeof(usec));
    n += put_chunk(buf + n, HEP_CHUNK_PROTO_TYPE, &proto_type, 1);
    n += put_chunk(buf + n, HEP_CHUNK_CAPTURE_ID, capture_id, sizeof(capture_id));
    n += put_chunk(buf + n, HEP_CHUNK_PAYLOAD, builtin_sip, sizeof(builtin_sip) - 1);
    bytes_put_be16(buf + 4, (uint16_t)n);
    return (struct packet){ buf, n };
}

static bool read_packet(const char *path, struct packet *p)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "udpblast: %s: %s\n", path, strerror(errno));
        return false;
    }
    p->data = malloc(MAX_PACKET + 1);
    p->len = p->data == NULL ? 0 : fread(p->data, 1, MAX_PACKET + 1, f);
    fclose(f);
    if (p->len == 0 || p->len > MAX_PACKET) {
        fprintf(stderr, "udpblast: %s: empty or larger than %d bytes\n", path, MAX_PACKET);
        return false;
    }
    return true;
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * NSEC_PER_SEC + t.tv_nsec;
}

/* Writes the packets back to back, in pieces of 1..max_write bytes if set. */
static bool send_stream(int fd, const struct iovec *iov, int n, uint8_t *stream, size_t max_write)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        memcpy(stream + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    size_t off = 0;
    while (off < len) {
        size_t piece = len - off;
        if (max_write != 0 && piece > max_write)
            piece = (size_t)rand() % max_write + 1;
        ssize_t w = write(fd, stream + off, piece);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "udpblast: write: %s\n", strerror(errno));
            return false;
        }
        off += (size_t)w;
    }
    return true;
}

/* A connected UDP or TCP socket to HOST:PORT, or -1 after saying why. */
static int open_socket(const char *host, const char *port, bool tcp, bool no_delay)
{
    int socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_NUMERICSERV }, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "udpblast: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, socktype, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "udpblast: %s:%s: %s\n", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    int sndbuf = SNDBUF_BYTES, one = 1;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    /* Small writes go out as they are, so frames really arrive split. */
    if (tcp && no_delay)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/*
 * Sends count packets, cycling through packets[], paced at rate per second
 * (0: as fast as possible).  stream != NULL means TCP.  Returns how many
 * were sent; fewer than count after a send error.
 */
static long long blast(int fd, const struct packet *packets, int n_packets, long long count,
                       long long rate, int batch, uint8_t *stream, size_t max_write)
{
    static struct mmsghdr msgs[MAX_BATCH];
    static struct iovec iov[MAX_BATCH];
    long long sent = 0, start = now_ns();
    int next = 0;

    srand(SPLIT_SEED);
    while (sent < count) {
        /* Packets due by now on the schedule, at most one batch. */
        long long want = batch;
        if (rate > 0) {
            long long due = (now_ns() - start) * rate / NSEC_PER_SEC + 1;
            if (due <= sent) {
                long long wake = start + (sent * NSEC_PER_SEC) / rate;
                struct timespec ts = { (time_t)(wake / NSEC_PER_SEC), (long)(wake % NSEC_PER_SEC) };
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
                continue;
            }
            if (due - sent < want)
                want = due - sent;
        }
        if (count - sent < want)
            want = count - sent;
        for (int i = 0; i < want; i++) {
            const struct packet *p = &packets[(next + i) % n_packets];
            iov[i].iov_base = p->data;
            iov[i].iov_len = p->len;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = (int)want;
        if (stream != NULL) {
            if (!send_stream(fd, iov, n, stream, max_write))
                return sent;
        } else {
            n = sendmmsg(fd, msgs, (unsigned)want, 0);
            if (n < 0) {
                /* A loopback receiver that is not there yet gives ECONNREFUSED. */
                if (errno == EINTR || errno == ENOBUFS || errno == ECONNREFUSED)
                    continue;
                fprintf(stderr, "udpblast: sendmmsg: %s\n", strerror(errno));
                return sent;
            }
        }
        sent += n;
        next = (int)((next + n) % n_packets);
    }
    return sent;
}

static void usage(void)
{
    fprintf(stderr, "usage: udpblast [-c COUNT] [-r PPS (0: no limit)] [-b BATCH] [-t [-S MAXWRITE]]\n"
                    "                HOST PORT [FILE...]\n");
    exit(EXIT_USAGE);
}

/* The configuration's number grammar (conf_parse_number). */
static long long parse_num(const char *text, long long min, long long max)
{
    uint64_t v;
    if (conf_parse_number(text, (uint64_t)min, (uint64_t)max, &v) != CONF_NUMBER_OK)
        usage();
    return (long long)v;
}

int main(int argc, char **argv)
{
    long long count = DEFAULT_COUNT, rate = 0;
    int batch = DEFAULT_BATCH, ch;
    bool tcp = false;
    size_t max_write = 0;

    while ((ch = getopt(argc, argv, "c:r:b:tS:")) != -1) {
        switch (ch) {
        case 't': tcp = true; break;
        case 'S': max_write = (size_t)parse_num(optarg, 1, 1 << 20); break;
        case 'c': count = parse_num(optarg, 1, 1LL << 40); break;
        case 'r': rate = parse_num(optarg, 0, 100000000); break;
        case 'b': batch = (int)parse_num(optarg, 1, MAX_BATCH); break;
        default: usage();
        }
    }
    if (argc - optind < 2)
        usage();
    const char *host = argv[optind], *port = argv[optind + 1];
    parse_num(port, 0, UINT16_MAX);     /* a number: HOST alone may be a name */
    int n_files = argc - optind - 2;
    int n_packets = n_files > 0 ? n_files : 1;

    int status = EXIT_SEND, fd = -1;
    uint8_t *stream = NULL;
    struct packet *packets = calloc((size_t)n_packets, sizeof(*packets));
    if (packets == NULL)
        goto done;
    if (n_files == 0)
        packets[0] = builtin_packet();
    for (int i = 0; i < n_files; i++) {
        if (!read_packet(argv[optind + 2 + i], &packets[i])) {
            status = EXIT_USAGE;
            goto done;
        }
    }
    fd = open_socket(host, port, tcp, max_write != 0);
    if (fd < 0)
        goto done;
    stream = tcp ? malloc((size_t)batch * MAX_PACKET) : NULL;
    if (tcp && stream == NULL)
        goto done;

    long long start = now_ns();
    long long sent = blast(fd, packets, n_packets, count, rate, batch, stream, max_write);
    if (sent == count) {
        double seconds = (double)(now_ns() - start) / NSEC_PER_SEC;
        printf("{\"sent\":%lld,\"seconds\":%.3f,\"pps\":%.0f}\n", sent, seconds,
               seconds > 0 ? (double)sent / seconds : 0.0);
        status = 0;
    }

done:
    if (fd >= 0)
        close(fd);
    free(stream);
    /* The built-in packet is static; file packets were malloc'ed. */
    for (int i = 0; packets != NULL && i < n_files; i++)
        free(packets[i].data);
    free(packets);
    return status;
}
