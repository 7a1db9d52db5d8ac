/*
 * test_http.c - unit tests for src/http.c: a server on loopback with
 * handlers that return fixed bodies, asked by a plain socket client
 * written here (so that what is tested is the bytes on the wire, not a
 * client library's reading of them).
 */
#include "http.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"

#define MAX_CONNECTIONS 2
#define IDLE_TIMEOUT_MS 10000
#define READ_TIMEOUT_S 5            /* a test that hangs fails instead */
#define RESPONSE_MAX 262144
#define BIG_BODY 100000             /* several socket buffers' worth */
#define FREE_WITHIN_MS 1000
#define SHORT_TIMEOUT_MS 1000
#define QUIET_MS 300                /* long enough for an answer that should not come */

static const char metrics_body[] = "heprouter_up 1\n";
static const char readyz_body[] = "not ready: starting\n";
static int big;                     /* /metrics answers BIG_BODY bytes */

static int metrics_handler(void *arg, FILE *out)
{
    CU_ASSERT_PTR_EQUAL(arg, &big);
    if (big)
        for (int i = 0; i < BIG_BODY; i++)
            fputc('a' + i % 26, out);
    else
        fputs(metrics_body, out);
    return 200;
}

static int healthz_handler(void *arg, FILE *out)
{
    (void)arg;
    fputs("ok\n", out);
    return 200;
}

static int readyz_handler(void *arg, FILE *out)
{
    (void)arg;
    fputs(readyz_body, out);
    return 503;
}

static const struct http_handlers handlers = { metrics_handler, healthz_handler, readyz_handler, &big };

static struct http *start(const char *listen_text)
{
    struct conf_addr a;
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(listen_text, &a));
    char why[256] = "";
    struct http *h = http_new(&a, MAX_CONNECTIONS, IDLE_TIMEOUT_MS, &handlers, why, sizeof why);
    if (h == NULL)
        fprintf(stderr, "\n    http_new: %s", why);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_NOT_EQUAL(http_port(h), 0);
    return h;
}

/* A connected socket to the server on 127.0.0.1 (or ::1), or -1. */
static int dial(unsigned port, int v6)
{
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct timeval tv = { .tv_sec = READ_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc;
    if (v6) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
        sa.sin6_addr = in6addr_loopback;
        rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    } else {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    }
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *text)
{
    size_t len = strlen(text);
    CU_ASSERT_EQUAL_FATAL(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads until the server closes (or resets) the connection; the length read. */
static size_t read_all(int fd, char *buf, size_t size)
{
    size_t used = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + used, size - 1 - used, 0);
        if (n <= 0) {
            CU_ASSERT_TRUE(n == 0 || errno == ECONNRESET);     /* not a timeout */
            break;
        }
        used += (size_t)n;
        CU_ASSERT_FATAL(used < size - 1);
    }
    buf[used] = '\0';
    return used;
}

static char response[RESPONSE_MAX];

/* Sends request on a new connection and reads the whole response into response. */
static size_t ask(unsigned port, int v6, const char *request)
{
    int fd = dial(port, v6);
    CU_ASSERT_FATAL(fd >= 0);
    send_all(fd, request);
    size_t len = read_all(fd, response, sizeof response);
    close(fd);
    return len;
}

static size_t get(unsigned port, const char *path)
{
    char request[256];
    snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    return ask(port, 0, request);
}

/* The body of response: what follows the blank line. */
static const char *body_of(const char *resp)
{
    const char *end = strstr(resp, "\r\n\r\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(end);
    return end + 4;
}

/* Whether the header block of resp has the line "name: value" (name case as sent). */
static int has_header(const char *resp, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    const char *end = strstr(resp, "\r\n\r\n");
    const char *at = strstr(resp, want);
    return at != NULL && end != NULL && at <= end;
}

static void test_metrics_answers_with_its_content_type(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    get(http_port(h), "/metrics");
    CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 200 OK\r\n", 17), 0);
    CU_ASSERT_TRUE(has_header(response, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    CU_ASSERT_TRUE(has_header(response, "Content-Length: 15"));
    CU_ASSERT_STRING_EQUAL(body_of(response), metrics_body);
    http_free(h);
}

static void test_healthz_and_readyz_say_their_status(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    get(http_port(h), "/healthz");
    CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 200 OK\r\n", 17), 0);
    CU_ASSERT_TRUE(has_header(response, "Content-Type: text/plain; charset=utf-8"));
    CU_ASSERT_STRING_EQUAL(body_of(response), "ok\n");
    get(http_port(h), "/readyz");
    CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 503 Service Unavailable\r\n", 34), 0);
    CU_ASSERT_TRUE(has_header(response, "Content-Type: text/plain; charset=utf-8"));
    CU_ASSERT_STRING_EQUAL(body_of(response), readyz_body);
    http_free(h);
}

static void test_other_paths_are_404(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    static const char *const paths[] = { "/", "/metrics/x", "/metric", "/HEALTHZ" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        get(http_port(h), paths[i]);
        CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 404 Not Found\r\n", 24), 0);
    }
    http_free(h);
}

static void test_post_is_405_with_allow(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    ask(http_port(h), 0,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc");
    CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 405 Method Not Allowed\r\n", 33), 0);
    CU_ASSERT_TRUE(has_header(response, "Allow: GET, HEAD"));
    ask(http_port(h), 0, "DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 405 Method Not Allowed\r\n", 33), 0);
    http_free(h);
}

static void test_head_has_no_body(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    size_t len = ask(http_port(h), 0, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 200 OK\r\n", 17), 0);
    CU_ASSERT_TRUE(has_header(response, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    CU_ASSERT_STRING_EQUAL(body_of(response), "");
    CU_ASSERT_TRUE(len > 0 && len == strlen(response));
    http_free(h);
}

static void test_a_big_body_comes_whole(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    big = 1;
    get(http_port(h), "/metrics");
    big = 0;
    const char *body = body_of(response);
    CU_ASSERT_EQUAL_FATAL(strlen(body), BIG_BODY);
    for (int i = 0; i < BIG_BODY; i++)
        if (body[i] != 'a' + i % 26) {
            CU_FAIL("body differs");
            break;
        }
    http_free(h);
}

static void test_ipv6_loopback(void)
{
    struct http *h = start("tcp:[::1]:0");
    ask(http_port(h), 1, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CU_ASSERT_STRING_EQUAL(body_of(response), "ok\n");
    CU_ASSERT_EQUAL(dial(http_port(h), 0), -1);     /* not on IPv4 */
    http_free(h);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_read_timeout_ms(int fd, unsigned ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    CU_ASSERT_EQUAL(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
}

static void test_max_connections_is_honoured(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    unsigned port = http_port(h);
    int held[MAX_CONNECTIONS];
    for (int i = 0; i < MAX_CONNECTIONS; i++) {
        held[i] = dial(port, 0);
        CU_ASSERT_FATAL(held[i] >= 0);
        send_all(held[i], "GET /metrics HTTP/1.1\r\n");     /* unfinished: the connection stays */
    }
    /* one more waits, unanswered, while the others are held */
    int waiting = dial(port, 0);
    CU_ASSERT_FATAL(waiting >= 0);
    send_all(waiting, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    set_read_timeout_ms(waiting, QUIET_MS);
    char c;
    errno = 0;
    CU_ASSERT_EQUAL(recv(waiting, &c, 1, 0), -1);
    CU_ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);

    /* one held closes: the waiting one is served */
    close(held[0]);
    set_read_timeout_ms(waiting, READ_TIMEOUT_S * 1000);
    read_all(waiting, response, sizeof response);
    close(waiting);
    CU_ASSERT_EQUAL(strncmp(response, "HTTP/1.1 200 OK\r\n", 17), 0);
    CU_ASSERT_STRING_EQUAL(body_of(response), "ok\n");

    /* the one still held is answered when it finishes its request */
    send_all(held[1], "Host: x\r\nConnection: close\r\n\r\n");
    read_all(held[1], response, sizeof response);
    CU_ASSERT_STRING_EQUAL(body_of(response), metrics_body);
    close(held[1]);
    http_free(h);
}

static void test_free_returns_promptly(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    unsigned port = http_port(h);
    int idle = dial(port, 0);
    CU_ASSERT_FATAL(idle >= 0);
    send_all(idle, "GET /metrics HTTP/1.1\r\n");
    get(port, "/healthz");                          /* the idle one is accepted by now */
    uint64_t start_ms = now_ms();
    http_free(h);
    CU_ASSERT_TRUE(now_ms() - start_ms < FREE_WITHIN_MS);
    CU_ASSERT_EQUAL(read_all(idle, response, sizeof response), 0);  /* closed, unanswered */
    close(idle);
    CU_ASSERT_EQUAL(dial(port, 0), -1);             /* nobody listens */
    http_free(NULL);
}

static void test_idle_connections_are_closed(void)
{
    struct conf_addr a;
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr("tcp:127.0.0.1:0", &a));
    char why[256] = "";
    struct http *h = http_new(&a, MAX_CONNECTIONS, SHORT_TIMEOUT_MS, &handlers, why, sizeof why);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int idle = dial(http_port(h), 0);
    CU_ASSERT_FATAL(idle >= 0);
    uint64_t start_ms = now_ms();
    CU_ASSERT_EQUAL(read_all(idle, response, sizeof response), 0);  /* closed before READ_TIMEOUT_S */
    uint64_t took = now_ms() - start_ms;
    CU_ASSERT_TRUE(took >= SHORT_TIMEOUT_MS - QUIET_MS);
    CU_ASSERT_TRUE(took < (uint64_t)READ_TIMEOUT_S * 1000);
    close(idle);
    http_free(h);
}

static void test_new_says_why_it_fails(void)
{
    struct http *h = start("tcp:127.0.0.1:0");
    char text[64];
    snprintf(text, sizeof text, "tcp:127.0.0.1:%u", http_port(h));
    struct conf_addr a;
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(text, &a));
    char why[256] = "";
    CU_ASSERT_PTR_NULL(http_new(&a, MAX_CONNECTIONS, IDLE_TIMEOUT_MS, &handlers, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, text));
    http_free(h);

    struct conf_addr none = { 0 };
    why[0] = '\0';
    CU_ASSERT_PTR_NULL(http_new(&none, MAX_CONNECTIONS, IDLE_TIMEOUT_MS, &handlers, why, sizeof why));
    CU_ASSERT_TRUE(strlen(why) > 0);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "/metrics answers with its content type", test_metrics_answers_with_its_content_type },
        { "/healthz and /readyz say their status", test_healthz_and_readyz_say_their_status },
        { "other paths are 404", test_other_paths_are_404 },
        { "POST is 405 with Allow", test_post_is_405_with_allow },
        { "HEAD has no body", test_head_has_no_body },
        { "a big body comes whole", test_a_big_body_comes_whole },
        { "IPv6 loopback", test_ipv6_loopback },
        { "max_connections is honoured", test_max_connections_is_honoured },
        { "http_free returns promptly", test_free_returns_promptly },
        { "idle connections are closed", test_idle_connections_are_closed },
        { "http_new says why it fails", test_new_says_why_it_fails },
        { NULL, NULL },
    };
    return unit_run("http", tests);
}
