/*
 * test_ingest.c - unit tests for src/ingest.c: real loopback UDP and TCP
 * listeners driven by a libev loop with a deadline: delivery, limits,
 * frames cut off by the end of their connection, and what ingest_stop()
 * delivers before it closes every socket.  The framer on its own is
 * test_framer.c's.
 */
#include "bytes.h"
#include "conf.h"
#include "hep.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "unit.h"
#include "unit_ev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every loopback test gives up after this long. */
#define TEST_DEADLINE_S 2.0
/* Time for loopback sends to reach the receiving socket's queue, without running the loop. */
#define TEST_SETTLE_MS 20

/* limits.udp_coalesce_us in the coalescing test, and half of it: well above a loop's own time */
#define TEST_COALESCE_US 100000
#define TEST_COALESCE_HALF_S 0.05

#define TEST_MAX_FRAME 1024
#define TEST_MAX_PACKETS 64

/* ---- frames ---- */

/* A HEP3 frame of total length len, filled with a recognisable byte. */
static size_t make_frame(uint8_t *buf, size_t len, uint8_t fill)
{
    memcpy(buf, HEP3_MAGIC, 4);
    bytes_put_be16(buf + 4, (uint16_t)len);
    memset(buf + HEP3_HDR_LEN, fill, len - HEP3_HDR_LEN);
    return len;
}

/* ---- loopback: a real loop, real sockets ---- */

struct recorder {
    size_t packets;
    size_t batches;
    size_t lens[TEST_MAX_PACKETS];
    uint8_t first[TEST_MAX_PACKETS];        /* first body byte of each */
    int transport[TEST_MAX_PACKETS];
    uint16_t peer_port[TEST_MAX_PACKETS];
    bool in_batch;                          /* on_packet seen since the last batch end */
    bool order_ok;
};

static void on_packet(void *arg, const uint8_t *data, size_t len, const struct ingest_source *src)
{
    struct recorder *r = arg;
    r->in_batch = true;
    if (r->packets >= TEST_MAX_PACKETS)
        return;
    r->lens[r->packets] = len;
    r->first[r->packets] = len > HEP3_HDR_LEN ? data[HEP3_HDR_LEN] : 0;
    r->transport[r->packets] = src->transport;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)src->peer;
    r->peer_port[r->packets] = src->peer->sa_family == AF_INET ? ntohs(sin->sin_port) : 0;
    r->packets++;
}

static void on_batch_end(void *arg)
{
    struct recorder *r = arg;
    if (!r->in_batch)
        r->order_ok = false;                /* a batch end with no packet before it */
    r->in_batch = false;
    r->batches++;
}

struct wait_packets {
    struct recorder *r;
    size_t want;
};

static bool have_packets(void *arg)
{
    struct wait_packets *w = arg;
    return w->r->packets >= w->want;
}

static bool counter_nonzero(void *arg)
{
    return *(uint64_t *)arg > 0;
}

static struct conf_addr loopback(enum conf_transport transport)
{
    struct conf_addr a;
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(transport == CONF_TCP ? "tcp:127.0.0.1:0" : "udp:127.0.0.1:0", &a));
    return a;
}

static void test_conf(struct conf *c, struct conf_addr *listen, size_t nlisten)
{
    memset(c, 0, sizeof *c);
    c->listen = listen;
    c->nlisten = nlisten;
    c->tcp_max_connections = 4;
    c->tcp_max_frame = TEST_MAX_FRAME;
    c->tcp_idle_timeout_ms = 0;
    c->udp_batch = 4;
    c->udp_rcvbuf = 1 << 20;
    c->log_interval_ms = 1000;
}

/* A fixture: loop + ingest on the given listeners. */
struct fixture {
    struct ev_loop *loop;
    struct conf conf;
    struct conf_addr listen[2];
    struct metrics m;
    struct recorder rec;
    struct ingest *in;
};

static void fixture_start(struct fixture *fx)
{
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    CU_ASSERT_FATAL(fx->loop != NULL);
    CU_ASSERT_FATAL(metrics_init(&fx->m, &fx->conf) == 0);
    memset(&fx->rec, 0, sizeof fx->rec);
    fx->rec.order_ok = true;
    fx->in = ingest_new(fx->loop, &fx->conf, &fx->m, on_packet, on_batch_end, &fx->rec);
    CU_ASSERT_FATAL(fx->in != NULL);
}

static void fixture_stop(struct fixture *fx)
{
    ingest_free(fx->in);
    ev_loop_destroy(fx->loop);
    metrics_free(&fx->m);
}

static uint16_t bound_port(struct fixture *fx, size_t i)
{
    struct sockaddr_storage ss;
    socklen_t len;
    CU_ASSERT_FATAL(ingest_bound_addr(fx->in, i, &ss, &len) == 0);
    CU_ASSERT_FATAL(ss.ss_family == AF_INET);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static struct sockaddr_in loopback_port(uint16_t port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    return sin;
}

static int tcp_client(uint16_t port)
{
    struct sockaddr_in sin = loopback_port(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    return fd;
}

static bool send_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* True once the server closed fd (EOF or reset). */
static bool peer_closed(void *arg)
{
    int fd = *(int *)arg;
    uint8_t b;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static void test_bound_addr_resolves_port_zero(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_UDP);
    fx.listen[1] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 2);
    fixture_start(&fx);
    CU_ASSERT(bound_port(&fx, 0) != 0);
    CU_ASSERT(bound_port(&fx, 1) != 0);
    struct sockaddr_storage ss;
    socklen_t len;
    CU_ASSERT(ingest_bound_addr(fx.in, 2, &ss, &len) == -1);
    fixture_stop(&fx);
}

static void test_udp_datagrams_reach_callback(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_UDP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);
    struct sockaddr_in to = loopback_port(bound_port(&fx, 0));

    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(s >= 0);
    struct sockaddr_in from = loopback_port(0);
    CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&from, sizeof from) == 0);
    socklen_t flen = sizeof from;
    getsockname(s, (struct sockaddr *)&from, &flen);

    /* more datagrams than one recvmmsg batch (udp_batch = 4) */
    uint8_t buf[200];
    for (int i = 0; i < 10; i++) {
        size_t len = make_frame(buf, 50 + (size_t)i, (uint8_t)('A' + i));
        CU_ASSERT(sendto(s, buf, len, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)len);
    }
    struct wait_packets w = { &fx.rec, 10 };
    CU_ASSERT(unit_ev_run_until(fx.loop, have_packets, &w, TEST_DEADLINE_S));
    CU_ASSERT(fx.rec.packets == 10);
    for (size_t i = 0; i < fx.rec.packets; i++) {
        CU_ASSERT(fx.rec.lens[i] == 50 + i);
        CU_ASSERT(fx.rec.first[i] == 'A' + i);
        CU_ASSERT(fx.rec.transport[i] == CONF_UDP);
        CU_ASSERT(fx.rec.peer_port[i] == ntohs(from.sin_port));
    }
    /* one batch end per recvmmsg batch, each after its packets */
    CU_ASSERT(fx.rec.batches >= 3);
    CU_ASSERT(fx.rec.order_ok);
    CU_ASSERT(!fx.rec.in_batch);
    CU_ASSERT(fx.m.udp_oversize == 0);
    CU_ASSERT(fx.m.recv_errors == 0);
    close(s);
    fixture_stop(&fx);
}

static void test_tcp_frames_reach_callback(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);
    int c = tcp_client(bound_port(&fx, 0));

    /* three frames in one write, then one frame split over two writes */
    uint8_t buf[4 * TEST_MAX_FRAME];
    size_t off = 0;
    off += make_frame(buf + off, 100, 'a');
    off += make_frame(buf + off, 200, 'b');
    off += make_frame(buf + off, TEST_MAX_FRAME, 'c');
    CU_ASSERT(send_all(c, buf, off));
    struct wait_packets w = { &fx.rec, 3 };
    CU_ASSERT(unit_ev_run_until(fx.loop, have_packets, &w, TEST_DEADLINE_S));

    size_t len = make_frame(buf, 500, 'd');
    CU_ASSERT(send_all(c, buf, 3));
    unit_ev_run_for(fx.loop, 0.02);
    CU_ASSERT(fx.rec.packets == 3);
    CU_ASSERT(send_all(c, buf + 3, len - 3));
    w.want = 4;
    CU_ASSERT(unit_ev_run_until(fx.loop, have_packets, &w, TEST_DEADLINE_S));

    CU_ASSERT(fx.rec.packets == 4);
    CU_ASSERT(fx.rec.lens[0] == 100 && fx.rec.first[0] == 'a');
    CU_ASSERT(fx.rec.lens[1] == 200 && fx.rec.first[1] == 'b');
    CU_ASSERT(fx.rec.lens[2] == TEST_MAX_FRAME && fx.rec.first[2] == 'c');
    CU_ASSERT(fx.rec.lens[3] == 500 && fx.rec.first[3] == 'd');
    CU_ASSERT(fx.rec.transport[0] == CONF_TCP);
    CU_ASSERT(fx.rec.order_ok);
    CU_ASSERT(fx.m.tcp_accepted == 1);

    close(c);
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_closed, TEST_DEADLINE_S));
    CU_ASSERT(fx.m.tcp_closed == 1);
    CU_ASSERT(fx.m.tcp_bad_magic == 0 && fx.m.tcp_bad_length == 0);
    CU_ASSERT(fx.m.tcp_truncated == 0);     /* closed between frames */
    fixture_stop(&fx);
}

static void test_tcp_frame_cut_by_eof_is_counted(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);

    /* a whole frame, then half of one, then EOF */
    int c = tcp_client(bound_port(&fx, 0));
    uint8_t buf[300];
    size_t off = make_frame(buf, 100, 'w');
    make_frame(buf + off, 200, 'h');
    CU_ASSERT(send_all(c, buf, off + 100));
    close(c);
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_closed, TEST_DEADLINE_S));
    CU_ASSERT(fx.rec.packets == 1);
    CU_ASSERT(fx.rec.first[0] == 'w');
    CU_ASSERT(fx.m.tcp_truncated == 1);
    CU_ASSERT(fx.m.tcp_closed == 1);
    CU_ASSERT(fx.m.tcp_bad_magic == 0 && fx.m.tcp_bad_length == 0);

    /* a header cut short counts the same */
    fx.m.tcp_closed = 0;
    c = tcp_client(bound_port(&fx, 0));
    CU_ASSERT(send_all(c, (const uint8_t *)"HEP", 3));
    close(c);
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_closed, TEST_DEADLINE_S));
    CU_ASSERT(fx.m.tcp_truncated == 2);
    CU_ASSERT(fx.rec.packets == 1);
    fixture_stop(&fx);
}

static void test_tcp_bad_magic_closes_connection(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);
    int c = tcp_client(bound_port(&fx, 0));
    const char *http = "GET / HTTP/1.0\r\n\r\n";
    CU_ASSERT(send_all(c, (const uint8_t *)http, strlen(http)));
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_closed, &c, TEST_DEADLINE_S));
    CU_ASSERT(fx.m.tcp_bad_magic == 1);
    CU_ASSERT(fx.m.tcp_closed == 1);
    CU_ASSERT(fx.rec.packets == 0);
    close(c);
    fixture_stop(&fx);
}

static void test_tcp_bad_length_closes_connection(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);

    /* a good frame first: it is delivered before the connection closes */
    int c = tcp_client(bound_port(&fx, 0));
    uint8_t buf[64];
    size_t len = make_frame(buf, 40, 'z');
    uint8_t too_big[HEP3_HDR_LEN] = { 'H', 'E', 'P', '3', (TEST_MAX_FRAME + 1) >> 8, (TEST_MAX_FRAME + 1) & 0xff };
    memcpy(buf + len, too_big, sizeof too_big);
    CU_ASSERT(send_all(c, buf, len + sizeof too_big));
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_closed, &c, TEST_DEADLINE_S));
    CU_ASSERT(fx.m.tcp_bad_length == 1);
    CU_ASSERT(fx.rec.packets == 1);
    CU_ASSERT(fx.rec.batches == 1);
    close(c);

    c = tcp_client(bound_port(&fx, 0));
    CU_ASSERT(send_all(c, (const uint8_t *)"HEP3\x00\x03", 6));
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_closed, &c, TEST_DEADLINE_S));
    CU_ASSERT(fx.m.tcp_bad_length == 2);
    CU_ASSERT(fx.m.tcp_closed == 2);
    close(c);
    fixture_stop(&fx);
}

static void test_tcp_connections_over_limit_are_refused(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fx.conf.tcp_max_connections = 1;
    fixture_start(&fx);
    uint16_t port = bound_port(&fx, 0);
    int c1 = tcp_client(port);
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_accepted, TEST_DEADLINE_S));
    int c2 = tcp_client(port);
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_closed, &c2, TEST_DEADLINE_S));
    CU_ASSERT(fx.m.tcp_rejected == 1);
    CU_ASSERT(fx.m.tcp_accepted == 1);

    /* the first connection still works */
    uint8_t buf[64];
    size_t len = make_frame(buf, 64, 'k');
    CU_ASSERT(send_all(c1, buf, len));
    struct wait_packets w = { &fx.rec, 1 };
    CU_ASSERT(unit_ev_run_until(fx.loop, have_packets, &w, TEST_DEADLINE_S));

    /* and once it is gone, a new one is accepted */
    close(c1);
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_closed, TEST_DEADLINE_S));
    int c3 = tcp_client(port);
    fx.m.tcp_accepted = 0;
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_accepted, TEST_DEADLINE_S));
    CU_ASSERT(fx.m.tcp_rejected == 1);
    close(c2);
    close(c3);
    fixture_stop(&fx);
}

static void test_tcp_idle_connection_is_closed(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fx.conf.tcp_idle_timeout_ms = 60;
    fixture_start(&fx);
    int c = tcp_client(bound_port(&fx, 0));
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_accepted, TEST_DEADLINE_S));

    /* activity keeps it open past the timeout */
    uint8_t buf[32];
    size_t len = make_frame(buf, 32, 'i');
    ev_tstamp last_sent = 0;
    for (int i = 0; i < 4; i++) {
        CU_ASSERT(send_all(c, buf, len));
        last_sent = ev_time();
        unit_ev_run_for(fx.loop, 0.03);
    }
    CU_ASSERT(fx.rec.packets == 4);
    CU_ASSERT(fx.m.tcp_idle_closed == 0);

    CU_ASSERT(unit_ev_run_until(fx.loop, peer_closed, &c, TEST_DEADLINE_S));
    CU_ASSERT(ev_time() - last_sent >= 0.05);
    CU_ASSERT(fx.m.tcp_idle_closed == 1);
    CU_ASSERT(fx.m.tcp_closed == 1);
    close(c);
    fixture_stop(&fx);
}

/* A frame trickled a byte at a time is not activity: it must complete within the idle timeout. */
static void test_tcp_trickled_frame_is_closed_at_the_idle_timeout(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fx.conf.tcp_idle_timeout_ms = 100;
    fixture_start(&fx);
    int c = tcp_client(bound_port(&fx, 0));
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_accepted, TEST_DEADLINE_S));

    uint8_t buf[64];
    size_t len = make_frame(buf, sizeof buf, 't');
    ev_tstamp first = ev_time();
    size_t sent = 0;
    /* a byte every 20 ms: 60 bytes would take 1.2 s, far past the 100 ms timeout */
    while (sent < len && !peer_closed(&c)) {
        if (send(c, buf + sent, 1, MSG_NOSIGNAL) != 1)
            break;
        sent++;
        unit_ev_run_for(fx.loop, 0.02);
    }
    CU_ASSERT(unit_ev_run_until(fx.loop, peer_closed, &c, TEST_DEADLINE_S));
    ev_tstamp took = ev_time() - first;
    CU_ASSERT(took >= 0.09);
    CU_ASSERT(took < 0.6);
    CU_ASSERT(sent < len);
    CU_ASSERT(fx.rec.packets == 0);
    CU_ASSERT(fx.m.tcp_idle_closed == 1);
    CU_ASSERT(fx.m.tcp_truncated == 1);
    close(c);
    fixture_stop(&fx);
}

/* Sends on a connected UDP socket until the ICMP port unreachable of an earlier send comes back. */
static bool udp_send_refused(int s, const uint8_t *buf, size_t len)
{
    ev_tstamp deadline = ev_time() + TEST_DEADLINE_S;
    while (ev_time() < deadline) {
        if (send(s, buf, len, 0) < 0)
            return errno == ECONNREFUSED;
        poll(NULL, 0, 1);
    }
    return false;
}

static void test_stop_closes_udp_sockets(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_UDP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);
    uint16_t port = bound_port(&fx, 0);
    struct sockaddr_in to = loopback_port(port);
    ingest_stop(fx.in);
    struct sockaddr_storage ss;
    socklen_t sslen;
    CU_ASSERT(ingest_bound_addr(fx.in, 0, &ss, &sslen) == -1);

    /* the kernel refuses instead of queueing for nobody */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(s >= 0);
    CU_ASSERT_FATAL(connect(s, (struct sockaddr *)&to, sizeof to) == 0);
    uint8_t buf[32];
    size_t len = make_frame(buf, 32, 's');
    CU_ASSERT(udp_send_refused(s, buf, len));
    close(s);

    /* and the port is free: a socket without SO_REUSEPORT can take it */
    s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT(bind(s, (struct sockaddr *)&to, sizeof to) == 0);
    close(s);

    unit_ev_run_for(fx.loop, 0.02);
    CU_ASSERT(fx.rec.packets == 0);
    ingest_stop(fx.in);                     /* a second stop does nothing */
    fixture_stop(&fx);
}

static void test_stop_delivers_datagrams_already_queued(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_UDP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);
    struct sockaddr_in to = loopback_port(bound_port(&fx, 0));
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(s >= 0);

    /* queued while the loop does not run: more than one batch (udp_batch = 4) */
    uint8_t buf[100];
    for (int i = 0; i < 10; i++) {
        size_t len = make_frame(buf, 40 + (size_t)i, (uint8_t)('A' + i));
        CU_ASSERT(sendto(s, buf, len, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)len);
    }
    poll(NULL, 0, TEST_SETTLE_MS);
    ingest_stop(fx.in);
    CU_ASSERT(fx.rec.packets == 10);
    for (size_t i = 0; i < fx.rec.packets; i++)
        CU_ASSERT(fx.rec.lens[i] == 40 + i && fx.rec.first[i] == 'A' + i);
    CU_ASSERT(fx.rec.batches >= 3);
    CU_ASSERT(fx.rec.order_ok);
    CU_ASSERT(!fx.rec.in_batch);
    close(s);
    fixture_stop(&fx);
}

static void test_stop_refuses_tcp_connects(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);
    struct sockaddr_in to = loopback_port(bound_port(&fx, 0));
    ingest_stop(fx.in);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(c >= 0);
    errno = 0;
    CU_ASSERT(connect(c, (struct sockaddr *)&to, sizeof to) == -1);
    CU_ASSERT(errno == ECONNREFUSED);
    close(c);
    CU_ASSERT(fx.m.tcp_accepted == 0);
    fixture_stop(&fx);
}

/* How many recorded packets have this first body byte. */
static size_t count_first(const struct recorder *r, uint8_t first)
{
    size_t n = 0;
    for (size_t i = 0; i < r->packets; i++)
        n += r->first[i] == first;
    return n;
}

/*
 * What the kernel already took in is delivered: whole frames on an open
 * connection, a connection still waiting in the accept queue; a partial
 * frame is counted.  Then both connections are closed.
 */
static void test_stop_delivers_tcp_frames_already_received(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 1);
    fixture_start(&fx);
    uint16_t port = bound_port(&fx, 0);
    int c1 = tcp_client(port);
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_accepted, TEST_DEADLINE_S));

    /* from here on the loop does not run */
    uint8_t buf[400];
    size_t off = make_frame(buf, 100, 'a');
    off += make_frame(buf + off, 120, 'b');
    make_frame(buf + off, 150, 'x');
    CU_ASSERT(send_all(c1, buf, off + 50));         /* a, b and the start of x */
    int c2 = tcp_client(port);                      /* never accepted by the loop */
    off = make_frame(buf, 80, 'c');
    CU_ASSERT(send_all(c2, buf, off));
    poll(NULL, 0, TEST_SETTLE_MS);

    ingest_stop(fx.in);
    CU_ASSERT(fx.rec.packets == 3);
    CU_ASSERT(count_first(&fx.rec, 'a') == 1);
    CU_ASSERT(count_first(&fx.rec, 'b') == 1);
    CU_ASSERT(count_first(&fx.rec, 'c') == 1);
    CU_ASSERT(count_first(&fx.rec, 'x') == 0);
    CU_ASSERT(fx.rec.order_ok);
    CU_ASSERT(!fx.rec.in_batch);
    CU_ASSERT(fx.m.tcp_accepted == 2);
    CU_ASSERT(fx.m.tcp_truncated == 1);
    CU_ASSERT(fx.m.tcp_closed == 2);
    CU_ASSERT(peer_closed(&c1));
    CU_ASSERT(peer_closed(&c2));
    close(c1);
    close(c2);
    fixture_stop(&fx);
}

/* ingest_free() after ingest_stop() must not close the descriptors again: they may be reused by now. */
static void test_free_after_stop_closes_nothing_twice(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_UDP);
    fx.listen[1] = loopback(CONF_TCP);
    test_conf(&fx.conf, fx.listen, 2);
    fixture_start(&fx);
    int c = tcp_client(bound_port(&fx, 1));
    CU_ASSERT(unit_ev_run_until(fx.loop, counter_nonzero, &fx.m.tcp_accepted, TEST_DEADLINE_S));
    ingest_stop(fx.in);

    /* the lowest free descriptors: the ones ingest_stop() just closed */
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
    ingest_free(fx.in);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(fds[i] >= 0 && fcntl(fds[i], F_GETFD) != -1);
        close(fds[i]);
    }
    close(c);
    ev_loop_destroy(fx.loop);
    metrics_free(&fx.m);
}

/*
 * [::] (bound IPv6-only) and 0.0.0.0 on the same port coexist, as two
 * listen entries or two workers do; each family reaches its own socket.
 * Skipped when the host has no IPv6 loopback.
 */
static void test_udp_ipv6_any_and_ipv4_share_a_port(void)
{
    int probe = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 lo6;
    memset(&lo6, 0, sizeof lo6);
    lo6.sin6_family = AF_INET6;
    lo6.sin6_addr = in6addr_loopback;
    if (probe < 0 || bind(probe, (struct sockaddr *)&lo6, sizeof lo6) != 0) {
        if (probe >= 0)
            close(probe);
        return;
    }
    close(probe);

    struct fixture v6, v4;
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr("udp:[::]:0", &v6.listen[0]));
    test_conf(&v6.conf, v6.listen, 1);
    fixture_start(&v6);
    struct sockaddr_storage ss;
    socklen_t sslen;
    CU_ASSERT_FATAL(ingest_bound_addr(v6.in, 0, &ss, &sslen) == 0);
    uint16_t port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);

    char any4[sizeof v4.listen[0].text];
    snprintf(any4, sizeof any4, "udp:0.0.0.0:%u", (unsigned)port);
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(any4, &v4.listen[0]));
    test_conf(&v4.conf, v4.listen, 1);
    v4.loop = ev_loop_new(EVFLAG_AUTO);
    CU_ASSERT_FATAL(metrics_init(&v4.m, &v4.conf) == 0);
    memset(&v4.rec, 0, sizeof v4.rec);
    v4.in = ingest_new(v4.loop, &v4.conf, &v4.m, on_packet, on_batch_end, &v4.rec);
    CU_ASSERT_FATAL(v4.in != NULL);

    uint8_t buf[32];
    size_t len = make_frame(buf, 32, '4');
    int s4 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to4 = loopback_port(port);
    for (int i = 0; i < 8; i++)
        sendto(s4, buf, len, 0, (struct sockaddr *)&to4, sizeof to4);
    int s6 = socket(AF_INET6, SOCK_DGRAM, 0);
    lo6.sin6_port = htons(port);
    make_frame(buf, 32, '6');
    CU_ASSERT(sendto(s6, buf, len, 0, (struct sockaddr *)&lo6, sizeof lo6) == (ssize_t)len);

    struct wait_packets w4 = { &v4.rec, 8 }, w6 = { &v6.rec, 1 };
    CU_ASSERT(unit_ev_run_until(v4.loop, have_packets, &w4, TEST_DEADLINE_S));
    CU_ASSERT(unit_ev_run_until(v6.loop, have_packets, &w6, TEST_DEADLINE_S));
    unit_ev_run_for(v6.loop, 0.02);
    CU_ASSERT(v4.rec.packets == 8);
    CU_ASSERT(v6.rec.packets == 1);
    CU_ASSERT(v6.rec.first[0] == '6');
    close(s4);
    close(s6);
    fixture_stop(&v4);
    fixture_stop(&v6);
}

static void test_bind_failure_returns_null(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_UDP);
    test_conf(&fx.conf, fx.listen, 1);
    /* an address this host does not have */
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr("udp:192.0.2.1:0", &fx.listen[0]));
    fx.loop = ev_loop_new(EVFLAG_AUTO);
    CU_ASSERT_FATAL(metrics_init(&fx.m, &fx.conf) == 0);
    struct recorder rec;
    memset(&rec, 0, sizeof rec);
    CU_ASSERT(ingest_new(fx.loop, &fx.conf, &fx.m, on_packet, on_batch_end, &rec) == NULL);
    ev_loop_destroy(fx.loop);
    metrics_free(&fx.m);
}

/*
 * A reload keeps listener A (datagrams queued on its socket before the
 * reload arrive after it), removes B (what it queued is handed out at
 * once, then its port refuses) and adds C.  Counters follow by listener.
 */
static void test_reload_keeps_adds_and_removes_listeners(void)
{
    struct fixture fx;
    struct conf next;
    struct conf_addr next_listen[2];
    fx.listen[0] = loopback(CONF_UDP);
    fx.listen[1] = loopback(CONF_UDP);
    test_conf(&fx.conf, fx.listen, 2);
    fixture_start(&fx);
    uint16_t port_a = bound_port(&fx, 0), port_b = bound_port(&fx, 1);
    fx.listen[0].port = port_a;             /* as main.c pins port 0 */
    fx.listen[1].port = port_b;
    next_listen[0] = fx.listen[0];
    next_listen[1] = loopback(CONF_UDP);
    test_conf(&next, next_listen, 2);

    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(s >= 0);
    struct sockaddr_in to_a = loopback_port(port_a), to_b = loopback_port(port_b);
    uint8_t buf[64];
    size_t len = make_frame(buf, 40, 'a');
    for (int i = 0; i < 3; i++)
        CU_ASSERT(sendto(s, buf, len, 0, (struct sockaddr *)&to_a, sizeof to_a) == (ssize_t)len);
    len = make_frame(buf, 41, 'b');
    for (int i = 0; i < 2; i++)
        CU_ASSERT(sendto(s, buf, len, 0, (struct sockaddr *)&to_b, sizeof to_b) == (ssize_t)len);
    poll(NULL, 0, TEST_SETTLE_MS);

    struct metrics moved;
    CU_ASSERT_FATAL(metrics_init(&moved, &next) == 0);
    metrics_add_mapped(&moved, &next, &fx.m, &fx.conf);
    metrics_free(&fx.m);
    fx.m = moved;
    CU_ASSERT(ingest_reconfigure(fx.in, &fx.conf, &next) == 0);
    CU_ASSERT(fx.rec.packets == 2);                 /* B's, handed out as it closed */
    CU_ASSERT(fx.rec.first[0] == 'b' && fx.rec.first[1] == 'b');
    CU_ASSERT(bound_port(&fx, 0) == port_a);
    uint16_t port_c = bound_port(&fx, 1);
    CU_ASSERT(port_c != 0 && port_c != port_b);

    struct wait_packets w = { &fx.rec, 5 };
    CU_ASSERT(unit_ev_run_until(fx.loop, have_packets, &w, TEST_DEADLINE_S));
    for (size_t i = 2; i < 5; i++)
        CU_ASSERT(fx.rec.first[i] == 'a');      /* queued on A's kept socket */
    struct sockaddr_in to_c = loopback_port(port_c);
    len = make_frame(buf, 42, 'c');
    CU_ASSERT(sendto(s, buf, len, 0, (struct sockaddr *)&to_c, sizeof to_c) == (ssize_t)len);
    w.want = 6;
    CU_ASSERT(unit_ev_run_until(fx.loop, have_packets, &w, TEST_DEADLINE_S));
    CU_ASSERT(fx.rec.first[5] == 'c');
    CU_ASSERT(fx.m.listeners[0].packets[3] == 3);   /* A: HEP3, counted before and after */
    CU_ASSERT(fx.m.listeners[1].packets[3] == 1);   /* C */

    int refused = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(connect(refused, (struct sockaddr *)&to_b, sizeof to_b) == 0);
    CU_ASSERT(udp_send_refused(refused, buf, len));
    close(refused);
    close(s);
    fx.conf = next;                         /* fixture_stop() frees what conf lays out */
    fixture_stop(&fx);
}

/* Sends n datagrams from s to port and lets them reach its queue. */
static void send_datagrams(int s, uint16_t port, int n)
{
    struct sockaddr_in to = loopback_port(port);
    uint8_t buf[64];
    size_t len = make_frame(buf, 40, 'q');
    for (int i = 0; i < n; i++)
        CU_ASSERT(sendto(s, buf, len, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)len);
    poll(NULL, 0, TEST_SETTLE_MS);
}

/* One loop iteration (there is no timer: it returns once the datagram queued is read); its seconds. */
static double run_once_timed(struct ev_loop *loop)
{
    ev_tstamp t0 = ev_time();
    ev_run(loop, EVRUN_ONCE);
    return ev_time() - t0;
}

/*
 * A wakeup that reads more than one datagram makes the loop wait out
 * udp_coalesce_us before it polls again, unless it ended such a wait; one
 * that reads a single datagram, a reload, or 0 in the configuration turns
 * the wait off.
 */
static void test_udp_busy_wakeup_coalesces(void)
{
    struct fixture fx;
    fx.listen[0] = loopback(CONF_UDP);
    test_conf(&fx.conf, fx.listen, 1);
    fx.conf.udp_coalesce_us = TEST_COALESCE_US;
    fixture_start(&fx);
    uint16_t port = bound_port(&fx, 0);
    fx.listen[0].port = port;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(s >= 0);

    /* quiet: one datagram per wakeup, never a wait */
    send_datagrams(s, port, 1);
    CU_ASSERT(run_once_timed(fx.loop) < TEST_COALESCE_HALF_S);
    send_datagrams(s, port, 1);
    CU_ASSERT(run_once_timed(fx.loop) < TEST_COALESCE_HALF_S);
    CU_ASSERT(fx.rec.packets == 2);

    /* busy: three waiting at once, so the next poll comes udp_coalesce_us after that wakeup */
    send_datagrams(s, port, 3);
    run_once_timed(fx.loop);
    CU_ASSERT(fx.rec.packets == 5);
    send_datagrams(s, port, 1);
    CU_ASSERT(run_once_timed(fx.loop) >= TEST_COALESCE_HALF_S);
    CU_ASSERT(fx.rec.packets == 6);
    /* that wakeup found one: no wait after it */
    send_datagrams(s, port, 1);
    CU_ASSERT(run_once_timed(fx.loop) < TEST_COALESCE_HALF_S);
    CU_ASSERT(fx.rec.packets == 7);
    /* busy, then three more after the wait: that wakeup ended a wait, so no second one */
    send_datagrams(s, port, 3);
    run_once_timed(fx.loop);
    send_datagrams(s, port, 3);
    CU_ASSERT(run_once_timed(fx.loop) >= TEST_COALESCE_HALF_S);
    send_datagrams(s, port, 1);
    CU_ASSERT(run_once_timed(fx.loop) < TEST_COALESCE_HALF_S);
    CU_ASSERT(fx.rec.packets == 14);

    /* busy again, then a reload to 0: no wait, and none after the next busy wakeup */
    send_datagrams(s, port, 3);
    run_once_timed(fx.loop);
    struct conf next = fx.conf;
    next.udp_coalesce_us = 0;
    CU_ASSERT(ingest_reconfigure(fx.in, &fx.conf, &next) == 0);
    send_datagrams(s, port, 3);
    CU_ASSERT(run_once_timed(fx.loop) < TEST_COALESCE_HALF_S);
    send_datagrams(s, port, 1);
    CU_ASSERT(run_once_timed(fx.loop) < TEST_COALESCE_HALF_S);
    CU_ASSERT(fx.rec.packets == 21);
    CU_ASSERT(fx.m.recv_errors == 0);
    close(s);
    fixture_stop(&fx);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "bound addr resolves port 0", test_bound_addr_resolves_port_zero },
        { "reload keeps, adds and removes listeners", test_reload_keeps_adds_and_removes_listeners },
        { "udp datagrams reach the callback", test_udp_datagrams_reach_callback },
        { "udp busy wakeup coalesces", test_udp_busy_wakeup_coalesces },
        { "tcp frames reach the callback", test_tcp_frames_reach_callback },
        { "tcp bad magic closes the connection", test_tcp_bad_magic_closes_connection },
        { "tcp bad length closes the connection", test_tcp_bad_length_closes_connection },
        { "tcp connections over the limit are refused", test_tcp_connections_over_limit_are_refused },
        { "tcp idle connection is closed", test_tcp_idle_connection_is_closed },
        { "tcp frame cut by EOF is counted", test_tcp_frame_cut_by_eof_is_counted },
        { "tcp trickled frame is closed at the idle timeout", test_tcp_trickled_frame_is_closed_at_the_idle_timeout },
        { "stop closes udp sockets", test_stop_closes_udp_sockets },
        { "stop delivers datagrams already queued", test_stop_delivers_datagrams_already_queued },
        { "stop refuses tcp connects", test_stop_refuses_tcp_connects },
        { "stop delivers tcp frames already received", test_stop_delivers_tcp_frames_already_received },
        { "free after stop closes nothing twice", test_free_after_stop_closes_nothing_twice },
        { "udp [::] and 0.0.0.0 share a port", test_udp_ipv6_any_and_ipv4_share_a_port },
        { "bind failure returns NULL", test_bind_failure_returns_null },
        { NULL, NULL },
    };
    return unit_run("ingest", tests);
}
