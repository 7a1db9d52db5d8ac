/*
 * relay_ref.c - the reference relay for bench/run: the floor heprouter is
 * measured against.
 *
 *   relay_ref -l ADDR:PORT -a ADDR:PORT -b ADDR:PORT [-B BATCH] [-R RCVBUF]
 *
 * What a user could write in an afternoon: one thread, one UDP socket in,
 * recvmmsg() a batch, find "CSeq:" (case-insensitive) anywhere in each
 * datagram and read the method after the number; INVITE, ACK, BYE, CANCEL,
 * PRACK, UPDATE and INFO go to -a (voipmonitor), everything else to -b
 * (homer); sendmmsg() the unchanged bytes.  No call memory: a 407 carries
 * "CSeq: n INVITE" and the ACK "CSeq: n ACK", so for the hepgen mix this
 * routes exactly like heprouter's "INVITE calls to voipmonitor, REGISTER and
 * OPTIONS to homer".  It does not decode HEP, convert versions, handle TCP,
 * compact headers or compressed payloads.
 *
 * Port 0 in -l binds any free port; the bound address goes to stderr as
 * "listening udp:ADDR:PORT".  SIGTERM/SIGINT: prints one JSON line of
 * counters to stdout and exits 0.
 *
 * It stands alone on purpose, its own ADDR:PORT parser included: no
 * heprouter header or library, plain gcc (bench/run).  It is the floor, so
 * it must not borrow heprouter's code; benchsink, a measuring tool, does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_BATCH_MAX 1024
#define RELAY_DGRAM_MAX 65536

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

static int parse_addr(const char *text, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof host)
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* True when the CSeq method of this datagram belongs to an INVITE dialog. */
static bool is_call_method(const unsigned char *p, size_t len)
{
    static const char *const call_methods[] = {
        "INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE", "INFO",
    };
    for (size_t i = 0; i + 5 <= len; i++) {
        if ((p[i] | 0x20) != 'c' || strncasecmp((const char *)p + i, "cseq:", 5) != 0)
            continue;
        size_t j = i + 5;
        while (j < len && (p[j] == ' ' || p[j] == '\t'))
            j++;
        while (j < len && p[j] >= '0' && p[j] <= '9')
            j++;
        while (j < len && (p[j] == ' ' || p[j] == '\t'))
            j++;
        size_t m = j;
        while (m < len && p[m] >= 'A' && p[m] <= 'Z')
            m++;
        for (size_t k = 0; k < sizeof call_methods / sizeof call_methods[0]; k++)
            if (strlen(call_methods[k]) == m - j && memcmp(p + j, call_methods[k], m - j) == 0)
                return true;
        return false;
    }
    return false;
}

static void usage(void)
{
    fputs("usage: relay_ref -l ADDR:PORT -a ADDR:PORT -b ADDR:PORT [-B BATCH] [-R RCVBUF]\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    struct sockaddr_in listen_sa, to_a, to_b;
    bool have_l = false, have_a = false, have_b = false;
    unsigned batch = 64;
    int rcvbuf = 8 << 20;      /* heprouter's default udp_rcvbuf */
    int opt;
    while ((opt = getopt(argc, argv, "l:a:b:B:R:")) != -1) {
        switch (opt) {
        case 'l': have_l = parse_addr(optarg, &listen_sa) == 0; if (!have_l) usage(); break;
        case 'a': have_a = parse_addr(optarg, &to_a) == 0; if (!have_a) usage(); break;
        case 'b': have_b = parse_addr(optarg, &to_b) == 0; if (!have_b) usage(); break;
        case 'B': batch = (unsigned)atoi(optarg); break;
        case 'R': rcvbuf = atoi(optarg); break;
        default: usage();
        }
    }
    if (!have_l || !have_a || !have_b || batch < 1 || batch > RELAY_BATCH_MAX)
        usage();

    struct sigaction sa = { .sa_handler = on_stop };    /* no SA_RESTART: recvmmsg returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int in = socket(AF_INET, SOCK_DGRAM, 0);
    int out = socket(AF_INET, SOCK_DGRAM, 0);
    if (in < 0 || out < 0) {
        perror("socket");
        return 1;
    }
    if (setsockopt(in, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(in, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int sndbuf = 8 << 20;
    if (setsockopt(out, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
        setsockopt(out, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (bind(in, (struct sockaddr *)&listen_sa, sizeof listen_sa) != 0) {
        perror("bind");
        return 1;
    }
    socklen_t salen = sizeof listen_sa;
    getsockname(in, (struct sockaddr *)&listen_sa, &salen);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &listen_sa.sin_addr, host, sizeof host);
    fprintf(stderr, "listening udp:%s:%u\n", host, ntohs(listen_sa.sin_port));

    static unsigned char bufs[RELAY_BATCH_MAX][RELAY_DGRAM_MAX];
    static struct iovec iov[RELAY_BATCH_MAX];
    static struct mmsghdr in_msgs[RELAY_BATCH_MAX], out_msgs[RELAY_BATCH_MAX];
    for (unsigned i = 0; i < batch; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = RELAY_DGRAM_MAX;
        in_msgs[i].msg_hdr.msg_iov = &iov[i];
        in_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    static struct iovec out_iov[RELAY_BATCH_MAX];
    unsigned long long received = 0, to_a_count = 0, to_b_count = 0, send_errors = 0;

    while (!stop) {
        int n = recvmmsg(in, in_msgs, batch, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("recvmmsg");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            size_t len = in_msgs[i].msg_len;
            bool call = is_call_method(bufs[i], len);
            out_iov[i].iov_base = bufs[i];
            out_iov[i].iov_len = len;
            memset(&out_msgs[i].msg_hdr, 0, sizeof out_msgs[i].msg_hdr);
            out_msgs[i].msg_hdr.msg_iov = &out_iov[i];
            out_msgs[i].msg_hdr.msg_iovlen = 1;
            out_msgs[i].msg_hdr.msg_name = call ? &to_a : &to_b;
            out_msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
            if (call)
                to_a_count++;
            else
                to_b_count++;
        }
        received += (unsigned long long)n;
        int done = 0;
        while (done < n) {
            int s = sendmmsg(out, out_msgs + done, (unsigned)(n - done), 0);
            if (s < 0) {
                if (errno == EINTR)
                    continue;
                send_errors++;      /* drop this datagram, go on with the rest */
                done++;
                continue;
            }
            done += s;
        }
    }
    printf("{\"received\":%llu,\"to_a\":%llu,\"to_b\":%llu,\"send_errors\":%llu}\n",
           received, to_a_count, to_b_count, send_errors);
    return 0;
}
