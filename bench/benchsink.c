/*
 * benchsink.c - a counting HEP sink for bench/run.
 *
 *   benchsink -l ADDR:PORT [--expect inv,reg,opt] [-s SECONDS] [--idle SECONDS]
 *             [-o FILE] [-R RCVBUF] [-B BATCH]
 *
 * Receives UDP datagrams with recvmmsg() and counts packets and bytes.  Each
 * datagram is classified by the kind in hepgen's Call-IDs
 * ("<prefix>-<kind>-<seq>@hepgen", kind inv/reg/opt); with --expect, a packet
 * of another kind counts as misrouted.  Latency is the kernel's receive
 * time (SO_TIMESTAMPNS, CLOCK_REALTIME) minus the HEP3 timestamp chunks
 * 0x0009/0x000a, which hepgen sets to its send time; it goes into a
 * histogram of 1 us buckets up to 10 s for p50/p99.
 *
 * Port 0 binds any free port; the bound address goes to stderr as
 * "listening udp:ADDR:PORT".  On SIGTERM/SIGINT, after -s SECONDS, or after
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

#define SINK_BATCH_MAX 1024
#define SINK_DGRAM_MAX 65536
#define SINK_LAT_BUCKETS 10000000   /* 1 us each: 0..10 s, the last one is "10 s or more" */

enum kind { KIND_INV, KIND_REG, KIND_OPT, KIND_OTHER, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = { "inv", "reg", "opt", "other" };

static volatile sig_atomic_t stop, report;

struct sink_stats {
    unsigned long long packets, bytes, misrouted, by_kind[KIND_COUNT];
    unsigned long long lat_samples, lat_negative, lat_max_us;
    uint32_t *lat_hist;
    struct timespec first, last;
};

static void on_stop(int sig) { (void)sig; stop = 1; }
static void on_report(int sig) { (void)sig; report = 1; }

/*
 * -l ADDR:PORT, a numeric IPv4 address: the sink listens where a heprouter
 * listen address "udp:ADDR:PORT" would, read by the same parser.
 */
static int parse_addr(const char *text, struct sockaddr_in *sa)
{
    char spec[sizeof ((struct conf_addr *)0)->text];
    struct conf_addr a;
    if (snprintf(spec, sizeof spec, "udp:%s", text) >= (int)sizeof spec || conf_parse_addr(spec, &a) != NULL ||
        a.addr_len != sizeof sa->sin_addr)
        return -1;
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
               "\"lat_p99_us\":%llu,\"lat_max_us\":%llu,\"seconds\":%.3f}\n",
            s->lat_samples, s->lat_negative, percentile(s, 0.50), percentile(s, 0.99),
            s->lat_max_us, secs);
    if (f != stdout)
        fclose(f);
    else
        fflush(f);
}

static void usage(void)
{
    fputs("usage: benchsink -l ADDR:PORT [--expect inv,reg,opt] [-s SECONDS] [--idle SECONDS]\n"
          "                 [-o FILE] [-R RCVBUF] [-B BATCH]\n", stderr);
    exit(2);
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
    bool have_l = false, expected[KIND_COUNT] = { true, true, true, true };
    double seconds = 0, idle = 0;
    const char *out_path = NULL;
    int rcvbuf = 64 << 20;
    unsigned batch = 256;
    int opt;
    while ((opt = getopt_long(argc, argv, "l:e:s:i:o:R:B:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': have_l = parse_addr(optarg, &listen_sa) == 0; if (!have_l) usage(); break;
        case 'e':
            for (int k = 0; k < KIND_COUNT; k++)
                expected[k] = strstr(optarg, kind_names[k]) != NULL;
            expected[KIND_OTHER] = true;    /* not hepgen's: not counted as misrouted */
            break;
        case 's': seconds = atof(optarg); break;
        case 'i': idle = atof(optarg); break;
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

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    struct timeval tick = { .tv_sec = 0, .tv_usec = 100000 };   /* to check -s and --idle */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
    if (bind(fd, (struct sockaddr *)&listen_sa, sizeof listen_sa) != 0) {
        perror("bind");
        return 1;
    }
    socklen_t salen = sizeof listen_sa;
    getsockname(fd, (struct sockaddr *)&listen_sa, &salen);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &listen_sa.sin_addr, host, sizeof host);
    fprintf(stderr, "listening udp:%s:%u\n", host, ntohs(listen_sa.sin_port));

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

    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct timespec last_rx_mono = start;
    while (!stop) {
        if (report) {
            report = 0;
            write_report(&st, out_path);
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
            double since_start = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
            double since_rx = (double)(now.tv_sec - last_rx_mono.tv_sec) +
                              (double)(now.tv_nsec - last_rx_mono.tv_nsec) / 1e9;
            if ((seconds > 0 && since_start >= seconds) || (idle > 0 && st.packets > 0 && since_rx >= idle))
                break;
            continue;
        }
        last_rx_mono = now;
        struct timespec fallback;
        clock_gettime(CLOCK_REALTIME, &fallback);
        for (int i = 0; i < n; i++) {
            const unsigned char *p = bufs[i];
            size_t len = msgs[i].msg_len;
            struct timespec rx = fallback;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL;
                 c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS)
                    memcpy(&rx, CMSG_DATA(c), sizeof rx);
            if (st.packets == 0)
                st.first = rx;
            st.last = rx;
            st.packets++;
            st.bytes += len;
            enum kind k = classify(p, len);
            st.by_kind[k]++;
            if (!expected[k])
                st.misrouted++;
            int64_t sent_us;
            if (hep3_time_us(p, len, &sent_us)) {
                int64_t lat = ((int64_t)rx.tv_sec * 1000000 + rx.tv_nsec / 1000) - sent_us;
                if (lat < 0) {
                    st.lat_negative++;
                    lat = 0;
                }
                if ((unsigned long long)lat > st.lat_max_us)
                    st.lat_max_us = (unsigned long long)lat;
                st.lat_hist[lat < SINK_LAT_BUCKETS ? lat : SINK_LAT_BUCKETS - 1]++;
                st.lat_samples++;
            }
        }
        double since_start = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (seconds > 0 && since_start >= seconds)
            break;
    }
    write_report(&st, out_path);
    free(st.lat_hist);
    return 0;
}
