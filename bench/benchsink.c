/*
 * benchsink.c - a counting HEP sink for bench/run.
 *
 *   benchsink -l [udp:|tcp:]ADDR:PORT [--expect inv,reg,opt] [-s SECONDS]
 *             [--idle SECONDS] [-o FILE] [-R RCVBUF] [-B BATCH]
 *
 * Receives UDP datagrams with recvmmsg() and counts packets and bytes; with
 * -l tcp:ADDR:PORT it accepts TCP connections instead (as a collector that
 * takes HEP3 over TCP does), cuts each stream into HEP3 frames with the
 * router's framer and counts each frame as it counts a datagram.  Each
 * packet is classified by the kind in hepgen's Call-IDs
 * ("<prefix>-<kind>-<seq>@hepgen", kind inv/reg/opt); with --expect, a packet
 * of another kind counts as misrouted.  Latency is the kernel's receive
 * time (SO_TIMESTAMPNS, CLOCK_REALTIME; over TCP the kernel's time of the
 * newest segment a read took in, which is when the frames it completed were
 * whole, or later) minus the HEP3 timestamp chunks 0x0009/0x000a, which hepgen
 * sets to its send time; it goes into a histogram of 1 us buckets up to
 * 10 s for p50/p99.  "seconds" runs from the first packet to the last.
 *
 * Port 0 binds any free port; the bound address goes to stderr as
 * "listening udp:ADDR:PORT" (or tcp:).  A TCP stream that is not HEP3 is
 * closed and counted in "bad_streams".  On SIGTERM/SIGINT, after -s SECONDS, or after
 * --idle SECONDS without a packet (once one arrived), it writes one JSON line
 * to -o FILE (default stdout) and exits 0:
 * {"packets":..,"bytes":..,"misrouted":..,"by_kind":{"inv":..,"reg":..,
 *  "opt":..,"other":..},"lat_samples":..,"lat_negative":..,"lat_p50_us":..,
 *  "lat_p99_us":..,"lat_max_us":..,"seconds":..}
 * SIGUSR1 writes the same line without exiting.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "framer.h"

#define SINK_BATCH_MAX 1024
#define SINK_DGRAM_MAX 65536
#define SINK_LAT_BUCKETS 10000000   /* 1 us each: 0..10 s, the last one is "10 s or more" */
#define SINK_TCP_CONNS_MAX 64       /* heprouter opens one per worker and target */
#define SINK_TICK_MS 100            /* how often -s and --idle are checked */

enum kind { KIND_INV, KIND_REG, KIND_OPT, KIND_OTHER, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = { "inv", "reg", "opt", "other" };

static volatile sig_atomic_t stop, report;

struct sink_stats {
    unsigned long long packets, bytes, misrouted, by_kind[KIND_COUNT];
    unsigned long long lat_samples, lat_negative, lat_max_us, bad_streams;
    uint32_t *lat_hist;
    struct timespec first, last;
};

static void on_stop(int sig) { (void)sig; stop = 1; }
static void on_report(int sig) { (void)sig; report = 1; }

/*
 * -l [udp:|tcp:]ADDR:PORT, a numeric IPv4 address (udp: when no transport
 * is given): the sink listens where a heprouter listen address would, read
 * by the same parser.
 */
static int parse_addr(const char *text, struct sockaddr_in *sa, bool *tcp)
{
    char spec[sizeof ((struct conf_addr *)0)->text];
    struct conf_addr a;
    bool bare = strncmp(text, "udp:", 4) != 0 && strncmp(text, "tcp:", 4) != 0;
    if (snprintf(spec, sizeof spec, "%s%s", bare ? "udp:" : "", text) >= (int)sizeof spec ||
        conf_parse_addr(spec, &a) != NULL || a.addr_len != sizeof sa->sin_addr)
        return -1;
    *tcp = a.transport == CONF_TCP;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)a.port);
    memcpy(&sa->sin_addr, a.addr, a.addr_len);
    return 0;
}

/* The first "-inv-", "-reg-" or "-opt-" in the datagram: hepgen's Call-ID. */
static enum kind classify(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i + 5 <= len; i++) {
        if (p[i] != '-' || p[i + 4] != '-')
            continue;
        if (memcmp(p + i + 1, "inv", 3) == 0)
            return KIND_INV;
        if (memcmp(p + i + 1, "reg", 3) == 0)
            return KIND_REG;
        if (memcmp(p + i + 1, "opt", 3) == 0)
            return KIND_OPT;
    }
    return KIND_OTHER;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The HEP3 timestamp in microseconds since the epoch; false without one. */
static bool hep3_time_us(const unsigned char *p, size_t len, int64_t *us)
{
    if (len < 6 || memcmp(p, "HEP3", 4) != 0)
        return false;
    bool have_s = false, have_us = false;
    uint32_t sec = 0, usec = 0;
    size_t off = 6;
    while (off + 6 <= len) {
        unsigned vendor = (unsigned)p[off] << 8 | p[off + 1];
        unsigned type = (unsigned)p[off + 2] << 8 | p[off + 3];
        size_t clen = (size_t)p[off + 4] << 8 | p[off + 5];
        if (clen < 6 || off + clen > len)
            return false;
        if (vendor == 0 && type == 0x0009 && clen == 10) {
            sec = be32(p + off + 6);
            have_s = true;
        } else if (vendor == 0 && type == 0x000a && clen == 10) {
            usec = be32(p + off + 6);
            have_us = true;
        }
        off += clen;
    }
    if (!have_s || !have_us)
        return false;
    *us = (int64_t)sec * 1000000 + usec;
    return true;
}

static unsigned long long percentile(const struct sink_stats *s, double q)
{
    if (s->lat_samples == 0)
        return 0;
    unsigned long long want = (unsigned long long)(q * (double)s->lat_samples + 0.999999);
    if (want < 1)
        want = 1;
    unsigned long long seen = 0;
    for (size_t i = 0; i < SINK_LAT_BUCKETS; i++) {
        seen += s->lat_hist[i];
        if (seen >= want)
            return i;
    }
    return SINK_LAT_BUCKETS - 1;
}

static void write_report(const struct sink_stats *s, const char *path)
{
    FILE *f = path != NULL ? fopen(path, "w") : stdout;
    if (f == NULL) {
        perror(path);
        return;
    }
    double secs = s->packets ? (double)(s->last.tv_sec - s->first.tv_sec) +
                               (double)(s->last.tv_nsec - s->first.tv_nsec) / 1e9 : 0.0;
    fprintf(f, "{\"packets\":%llu,\"bytes\":%llu,\"misrouted\":%llu,\"by_kind\":{",
            s->packets, s->bytes, s->misrouted);
    for (int k = 0; k < KIND_COUNT; k++)
        fprintf(f, "%s\"%s\":%llu", k ? "," : "", kind_names[k], s->by_kind[k]);
    fprintf(f, "},\"lat_samples\":%llu,\"lat_negative\":%llu,\"lat_p50_us\":%llu,"
               "\"lat_p99_us\":%llu,\"lat_max_us\":%llu,\"bad_streams\":%llu,\"seconds\":%.3f}\n",
            s->lat_samples, s->lat_negative, percentile(s, 0.50), percentile(s, 0.99),
            s->lat_max_us, s->bad_streams, secs);
    if (f != stdout)
        fclose(f);
    else
        fflush(f);
}

static void usage(void)
{
    fputs("usage: benchsink -l [udp:|tcp:]ADDR:PORT [--expect inv,reg,opt] [-s SECONDS]\n"
          "                 [--idle SECONDS] [-o FILE] [-R RCVBUF] [-B BATCH]\n", stderr);
    exit(2);
}

/* One packet (a datagram or a TCP frame) received at rx. */
static void count_packet(struct sink_stats *st, const bool *expected, const unsigned char *p, size_t len,
                         struct timespec rx)
{
    if (st->packets == 0)
        st->first = rx;
    st->last = rx;
    st->packets++;
    st->bytes += len;
    enum kind k = classify(p, len);
    st->by_kind[k]++;
    if (!expected[k])
        st->misrouted++;
    int64_t sent_us;
    if (hep3_time_us(p, len, &sent_us)) {
        int64_t lat = ((int64_t)rx.tv_sec * 1000000 + rx.tv_nsec / 1000) - sent_us;
        if (lat < 0) {
            st->lat_negative++;
            lat = 0;
        }
        if ((unsigned long long)lat > st->lat_max_us)
            st->lat_max_us = (unsigned long long)lat;
        st->lat_hist[lat < SINK_LAT_BUCKETS ? lat : SINK_LAT_BUCKETS - 1]++;
        st->lat_samples++;
    }
}

/* When to stop: after -s SECONDS, or --idle SECONDS without a packet once one arrived. */
struct sink_limits {
    double seconds, idle;
    struct timespec start, last_rx;
};

static double since(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static bool limits_reached(const struct sink_limits *l, const struct sink_stats *st, const struct timespec *now)
{
    return (l->seconds > 0 && since(&l->start, now) >= l->seconds) ||
           (l->idle > 0 && st->packets > 0 && since(&l->last_rx, now) >= l->idle);
}

static int run_udp(int fd, struct sink_stats *st, const bool *expected, struct sink_limits *lim, unsigned batch,
                   const char *out_path)
{
    static unsigned char bufs[SINK_BATCH_MAX][SINK_DGRAM_MAX];
    static char cbufs[SINK_BATCH_MAX][CMSG_SPACE(sizeof(struct timespec))];
    static struct iovec iov[SINK_BATCH_MAX];
    static struct mmsghdr msgs[SINK_BATCH_MAX];
    for (unsigned i = 0; i < batch; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = SINK_DGRAM_MAX;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct timespec now;
    while (!stop) {
        if (report) {
            report = 0;
            write_report(st, out_path);
        }
        for (unsigned i = 0; i < batch; i++) {
            msgs[i].msg_hdr.msg_control = cbufs[i];
            msgs[i].msg_hdr.msg_controllen = sizeof cbufs[i];
        }
        int n = recvmmsg(fd, msgs, batch, MSG_WAITFORONE, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (n < 0) {
            if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                perror("recvmmsg");
                return 1;
            }
            if (limits_reached(lim, st, &now))
                break;
            continue;
        }
        lim->last_rx = now;
        struct timespec fallback;
        clock_gettime(CLOCK_REALTIME, &fallback);
        for (int i = 0; i < n; i++) {
            struct timespec rx = fallback;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL;
                 c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS)
                    memcpy(&rx, CMSG_DATA(c), sizeof rx);
            count_packet(st, expected, bufs[i], msgs[i].msg_len, rx);
        }
        if (lim->seconds > 0 && since(&lim->start, &now) >= lim->seconds)
            break;
    }
    return 0;
}

/*
 * Reads what connection fd has into its framer and counts the whole
 * frames; false when the connection is done (closed by the peer, an error,
 * or a stream that is not HEP3).  Their receive time is the kernel's for
 * the newest segment of the read (SO_TIMESTAMPNS on a TCP socket), not
 * when the read returned: on a busy machine the sink itself may wait
 * milliseconds for a CPU, which is not the sender's latency.
 */
static bool tcp_read(int fd, struct framer *fr, struct sink_stats *st, const bool *expected)
{
    size_t room;
    uint8_t *at = framer_space(fr, &room);
    struct iovec iov = { at, room };
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    framer_commit(fr, (size_t)n);
    struct timespec rx;
    clock_gettime(CLOCK_REALTIME, &rx);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS)
            memcpy(&rx, CMSG_DATA(c), sizeof rx);
    const uint8_t *frame;
    size_t len;
    enum framer_status fs;
    while ((fs = framer_next(fr, &frame, &len)) == FRAMER_OK)
        count_packet(st, expected, frame, len, rx);
    if (fs != FRAMER_NEED_MORE) {
        st->bad_streams++;
        return false;
    }
    return true;
}

static int run_tcp(int lfd, struct sink_stats *st, const bool *expected, struct sink_limits *lim,
                   const char *out_path)
{
    /* pfd[0] is the listening socket, pfd[1..nconn] the connections, fr[i] the framer of pfd[i] */
    static struct pollfd pfd[1 + SINK_TCP_CONNS_MAX];
    static struct framer fr[1 + SINK_TCP_CONNS_MAX];
    nfds_t nconn = 0;
    pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
    struct timespec now;
    int rc = 0;
    while (!stop) {
        if (report) {
            report = 0;
            write_report(st, out_path);
        }
        int n = poll(pfd, 1 + nconn, SINK_TICK_MS);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (n < 0 && errno != EINTR) {
            perror("poll");
            rc = 1;
            break;
        }
        for (nfds_t i = 1; n > 0 && i <= nconn; i++) {
            if (pfd[i].revents == 0)
                continue;
            lim->last_rx = now;
            if (tcp_read(pfd[i].fd, &fr[i], st, expected))
                continue;
            close(pfd[i].fd);
            framer_free(&fr[i]);
            pfd[i] = pfd[nconn];
            fr[i] = fr[nconn];
            nconn--;
            i--;
        }
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0 && nconn == SINK_TCP_CONNS_MAX) {
                fputs("benchsink: too many connections\n", stderr);
                close(c);
            } else if (c >= 0 && framer_init(&fr[nconn + 1], SINK_DGRAM_MAX) != 0) {
                perror("framer_init");
                close(c);
            } else if (c >= 0) {
                int one = 1;
                setsockopt(c, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
                nconn++;
                pfd[nconn] = (struct pollfd){ .fd = c, .events = POLLIN };
            }
        }
        if (limits_reached(lim, st, &now))
            break;
    }
    for (nfds_t i = 1; i <= nconn; i++) {
        close(pfd[i].fd);
        framer_free(&fr[i]);
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "expect", required_argument, NULL, 'e' },
        { "seconds", required_argument, NULL, 's' },
        { "idle", required_argument, NULL, 'i' },
        { "output", required_argument, NULL, 'o' },
        { "rcvbuf", required_argument, NULL, 'R' },
        { "batch", required_argument, NULL, 'B' },
        { NULL, 0, NULL, 0 },
    };
    struct sockaddr_in listen_sa;
    bool have_l = false, tcp = false, expected[KIND_COUNT] = { true, true, true, true };
    struct sink_limits lim = { 0 };
    const char *out_path = NULL;
    int rcvbuf = 64 << 20;
    unsigned batch = 256;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:e:s:i:o:R:B:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': have_l = parse_addr(optarg, &listen_sa, &tcp) == 0; if (!have_l) usage(); break;
        case 'e':
            for (int k = 0; k < KIND_COUNT; k++)
                expected[k] = strstr(optarg, kind_names[k]) != NULL;
            expected[KIND_OTHER] = true;    /* not hepgen's: not counted as misrouted */
            break;
        case 's': lim.seconds = atof(optarg); break;
        case 'i': lim.idle = atof(optarg); break;
        case 'o': out_path = optarg; break;
        case 'R': rcvbuf = atoi(optarg); break;
        case 'B': batch = (unsigned)atoi(optarg); break;
        default: usage();
        }
    }
    if (!have_l || batch < 1 || batch > SINK_BATCH_MAX)
        usage();

    struct sigaction sa = { .sa_handler = on_stop };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction sr = { .sa_handler = on_report };
    sigaction(SIGUSR1, &sr, NULL);

    struct sink_stats st = { 0 };
    st.lat_hist = calloc(SINK_LAT_BUCKETS, sizeof *st.lat_hist);
    if (st.lat_hist == NULL) {
        perror("calloc");
        return 1;
    }

    int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    if (tcp) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    } else {
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        struct timeval tick = { .tv_sec = 0, .tv_usec = SINK_TICK_MS * 1000 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
    }
    if (bind(fd, (struct sockaddr *)&listen_sa, sizeof listen_sa) != 0 || (tcp && listen(fd, SOMAXCONN) != 0)) {
        perror("bind");
        return 1;
    }
    socklen_t salen = sizeof listen_sa;
    getsockname(fd, (struct sockaddr *)&listen_sa, &salen);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &listen_sa.sin_addr, host, sizeof host);
    fprintf(stderr, "listening %s:%s:%u\n", tcp ? "tcp" : "udp", host, ntohs(listen_sa.sin_port));

    clock_gettime(CLOCK_MONOTONIC, &lim.start);
    lim.last_rx = lim.start;
    int rc = tcp ? run_tcp(fd, &st, expected, &lim, out_path) : run_udp(fd, &st, expected, &lim, batch, out_path);
    if (rc == 0)
        write_report(&st, out_path);
    free(st.lat_hist);
    return rc;
}
