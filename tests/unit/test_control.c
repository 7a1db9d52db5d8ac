/*
 * test_control.c - unit tests for src/control.c (the control socket server)
 * and src/ctl.c (the `heprouter ctl` client), over a real Unix socket in a
 * temporary directory, the server on a libev loop in this process.
 */
#include "control.h"
#include "ctl.h"
#include "unit.h"
#include "unit_ev.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define LATER_MAX 16
#define LATER_DELAY_S 0.05
#define BIG_ANSWER 8192

static char dir[] = "/tmp/heprouter-test-control.XXXXXX";
static char sock_path[256];

struct fx;

/* A "later" command waiting for its timer. */
struct later {
    struct fx *fx;
    struct control_request *req;
    ev_timer timer;
    char text[64];
};

struct fx {
    struct ev_loop *loop;
    struct control *c;
    struct control_limits lim;
    struct later later[LATER_MAX];
    size_t nlater;
    struct control_request *held;
    struct control_stream *stream;  /* the "stream" command's */
    size_t stream_closed;           /* closed() calls */
    size_t stream_drained;          /* drained() calls */
};

/* ---- the test commands ---- */

static void answer_text(struct control_request *req, const char *key, const char *text)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"%s\":\"%s\"}", key, text);
    control_answer(req, buf, (size_t)n);
}

static void run_now(void *arg, const char *args, struct control_request *req)
{
    (void)arg;
    answer_text(req, "now", args);
}

static void later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct later *l = w->data;
    answer_text(l->req, "later", l->text);
    l->req = NULL;
}

static void run_later(void *arg, const char *args, struct control_request *req)
{
    struct fx *fx = arg;
    if (fx->nlater == LATER_MAX) {
        control_answer_error(req, "test: too many later");
        return;
    }
    struct later *l = &fx->later[fx->nlater++];
    l->fx = fx;
    l->req = req;
    snprintf(l->text, sizeof l->text, "%s", args);
    ev_timer_init(&l->timer, later_cb, LATER_DELAY_S, 0.);
    l->timer.data = l;
    ev_timer_start(fx->loop, &l->timer);
}

static void run_hold(void *arg, const char *args, struct control_request *req)
{
    (void)args;
    struct fx *fx = arg;
    fx->held = req;
}

static void run_big(void *arg, const char *args, struct control_request *req)
{
    (void)arg;
    (void)args;
    static char buf[BIG_ANSWER + 16];
    memcpy(buf, "{\"big\":\"", 8);
    memset(buf + 8, 'x', BIG_ANSWER);
    memcpy(buf + 8 + BIG_ANSWER, "\"}", 2);
    control_answer(req, buf, BIG_ANSWER + 10);
}

static void run_nested(void *arg, const char *args, struct control_request *req)
{
    (void)arg;
    (void)args;
    static const char json[] = "{\"result\":{\"error\":\"inner\"},\"list\":[\"error\"]}";
    control_answer(req, json, sizeof json - 1);
}

static void run_fail(void *arg, const char *args, struct control_request *req)
{
    (void)arg;
    control_answer_error(req, "bad \"%s\"\tthing", args);
}

#define STREAM_MAX_UNSENT 4096

static void stream_closed(void *arg)
{
    struct fx *fx = arg;
    fx->stream_closed++;
    fx->stream = NULL;
}

static void stream_drained(void *arg)
{
    struct fx *fx = arg;
    fx->stream_drained++;
}

static void run_stream(void *arg, const char *args, struct control_request *req)
{
    struct fx *fx = arg;
    (void)args;
    static const char json[] = "{\"stream\":true}";
    fx->stream = control_stream_open(req, json, sizeof json - 1, STREAM_MAX_UNSENT, stream_closed,
                                     stream_drained, fx);
}

static const struct control_command commands[] = {
    { "now", "now [TEXT]", "answers TEXT at once", run_now },
    { "later", "later [TEXT]", "answers TEXT from a timer", run_later },
    { "hold", "hold", "answers when the test says", run_hold },
    { "big", "big", "a long answer", run_big },
    { "nested", "nested", "an error key below the top level", run_nested },
    { "fail", "fail TEXT", "an error answer", run_fail },
    { "stream", "stream", "an answer, then lines", run_stream },
};

static const struct control_limits default_limits = {
    .mode = 0660, .max_clients = 2, .timeout_ms = 10000, .max_line = 64, .log_interval_ms = 10000,
};

static void fx_init(struct fx *fx)
{
    memset(fx, 0, sizeof *fx);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->lim = default_limits;
}

static bool fx_start(struct fx *fx)
{
    char why[512] = "";
    fx->c = control_new(fx->loop, sock_path, &fx->lim, commands, sizeof commands / sizeof commands[0], fx,
                        why, sizeof why);
    if (fx->c == NULL)
        fprintf(stderr, "control_new: %s\n", why);
    return fx->c != NULL;
}

static void fx_done(struct fx *fx)
{
    for (size_t i = 0; i < fx->nlater; i++)
        ev_timer_stop(fx->loop, &fx->later[i].timer);
    control_free(fx->c);
    for (size_t i = 0; i < fx->nlater; i++)
        if (fx->later[i].req != NULL)
            control_answer(fx->later[i].req, "{}", 2);
    if (fx->held != NULL)
        control_answer(fx->held, "{}", 2);
    ev_loop_destroy(fx->loop);
    unlink(sock_path);
}

/* ---- the client side ---- */

struct reader {
    int fd;
    char buf[1 << 20];
    size_t len;
    bool eof;
    size_t want_lines;
};

/* The test's socket address (the path is short: mkdtemp under /tmp). */
static struct sockaddr_un sock_addr(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t n = strlen(sock_path);
    if (n >= sizeof sa.sun_path)
        n = sizeof sa.sun_path - 1;
    memcpy(sa.sun_path, sock_path, n);
    return sa;
}

static int client_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = sock_addr();
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static bool client_send(int fd, const char *s)
{
    size_t len = strlen(s);
    return send(fd, s, len, MSG_NOSIGNAL) == (ssize_t)len;
}

static size_t count_lines(const struct reader *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->buf[i] == '\n';
    return n;
}

/* Reads what is there; true once want_lines lines came, or EOF. */
static bool reader_ready(void *arg)
{
    struct reader *r = arg;
    while (!r->eof && r->len < sizeof r->buf - 1) {
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - 1 - r->len, MSG_DONTWAIT);
        if (n > 0) {
            r->len += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            r->eof = true;
        } else {
            break;
        }
    }
    r->buf[r->len] = '\0';
    return r->eof || (r->want_lines > 0 && count_lines(r) >= r->want_lines);
}

static bool reader_eof(void *arg)
{
    struct reader *r = arg;
    reader_ready(r);
    return r->eof;
}

/* Runs the loop until the client got `lines` lines (or EOF); returns the text. */
static const char *read_lines(struct fx *fx, struct reader *r, size_t lines)
{
    r->want_lines = lines;
    unit_ev_run_until(fx->loop, reader_ready, r, 2.0);
    return r->buf;
}

static struct reader *reader_new(int fd)
{
    struct reader *r = calloc(1, sizeof *r);
    r->fd = fd;
    return r;
}

/* One command on a fresh connection; the answer lines into out. */
static void ask(struct fx *fx, const char *what, size_t lines, char *out, size_t outlen)
{
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, what));
    struct reader *r = reader_new(fd);
    const char *got = read_lines(fx, r, lines);
    size_t n = strlen(got) < outlen - 1 ? strlen(got) : outlen - 1;
    memcpy(out, got, n);
    out[n] = '\0';
    free(r);
    close(fd);
}

/* ---- server tests ---- */

static void test_help_lists_commands(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    char out[4096];
    ask(&fx, "help\n", 1, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out,
        "{\"commands\":[{\"name\":\"help\",\"usage\":\"help\",\"help\":\"list the commands\"},"
        "{\"name\":\"now\",\"usage\":\"now [TEXT]\",\"help\":\"answers TEXT at once\"},"
        "{\"name\":\"later\",\"usage\":\"later [TEXT]\",\"help\":\"answers TEXT from a timer\"},"
        "{\"name\":\"hold\",\"usage\":\"hold\",\"help\":\"answers when the test says\"},"
        "{\"name\":\"big\",\"usage\":\"big\",\"help\":\"a long answer\"},"
        "{\"name\":\"nested\",\"usage\":\"nested\",\"help\":\"an error key below the top level\"},"
        "{\"name\":\"fail\",\"usage\":\"fail TEXT\",\"help\":\"an error answer\"},"
                          "{\"name\":\"stream\",\"usage\":\"stream\",\"help\":\"an answer, then lines\"}]}\n");
    fx_done(&fx);
}

static void test_unknown_command_and_empty_lines(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    char out[4096];
    /* empty and blank lines get no answer; CRLF ends a line; args are trimmed */
    ask(&fx, "\n  \r\nbo\"gus  x y \r\n  now   a  b  \n", 2, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out,
        "{\"error\":\"unknown command \\\"bo\\\"gus\\\"; try help\"}\n"
        "{\"now\":\"a  b\"}\n");
    ask(&fx, "fail x\n", 1, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "{\"error\":\"bad \\\"x\\\"\\tthing\"}\n");
    fx_done(&fx);
}

static void test_pipelined_answers_in_order(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    char out[4096];
    ask(&fx, "later 1\nnow 2\nlater 3\nnow 4\nhelp-me\nnow 5\n", 6, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out,
        "{\"later\":\"1\"}\n{\"now\":\"2\"}\n{\"later\":\"3\"}\n{\"now\":\"4\"}\n"
        "{\"error\":\"unknown command \\\"help-me\\\"; try help\"}\n{\"now\":\"5\"}\n");
    fx_done(&fx);
}

static void test_long_line_closes(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    char line[256];

    /* exactly max_line bytes (and CRLF) is a line */
    memset(line, 'a', 64);
    memcpy(line + 64, "\r\n", 3);
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, line));
    CU_ASSERT(client_send(fd, "now ok\n"));
    struct reader *r = reader_new(fd);
    read_lines(&fx, r, 2);
    CU_ASSERT_FALSE(r->eof);
    CU_ASSERT_EQUAL(count_lines(r), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->buf, "{\"now\":\"ok\"}\n"));

    /* one byte more: the error, then the connection closes, the rest unread */
    memset(line, 'b', 65);
    memcpy(line + 65, "\nnow never\n", 12);
    CU_ASSERT(client_send(fd, line));
    r->len = 0;
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, r, 2.0));
    CU_ASSERT_STRING_EQUAL(r->buf, "{\"error\":\"line longer than 64 bytes\"}\n");
    free(r);
    close(fd);

    /* no LF at all: the error as soon as the line cannot fit */
    fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    memset(line, 'c', 100);
    line[100] = '\0';
    CU_ASSERT(client_send(fd, line));
    r = reader_new(fd);
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, r, 2.0));
    CU_ASSERT_STRING_EQUAL(r->buf, "{\"error\":\"line longer than 64 bytes\"}\n");
    free(r);
    close(fd);
    fx_done(&fx);
}

static void test_max_clients(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    int a = client_connect(), b = client_connect();
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    struct reader *ra = reader_new(a), *rb = reader_new(b);
    CU_ASSERT(client_send(a, "now a\n"));
    CU_ASSERT(client_send(b, "now b\n"));
    read_lines(&fx, ra, 1);
    read_lines(&fx, rb, 1);
    CU_ASSERT_STRING_EQUAL(ra->buf, "{\"now\":\"a\"}\n");
    CU_ASSERT_STRING_EQUAL(rb->buf, "{\"now\":\"b\"}\n");

    int c = client_connect();
    CU_ASSERT_FATAL(c >= 0);
    struct reader *rc = reader_new(c);
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, rc, 2.0));
    CU_ASSERT_STRING_EQUAL(rc->buf, "{\"error\":\"too many control clients (2)\"}\n");
    close(c);

    /* a slot freed is a slot again */
    close(a);
    unit_ev_run_for(fx.loop, 0.05);
    c = client_connect();
    CU_ASSERT_FATAL(c >= 0);
    memset(rc, 0, sizeof *rc);
    rc->fd = c;
    CU_ASSERT(client_send(c, "now c\n"));
    read_lines(&fx, rc, 1);
    CU_ASSERT_FALSE(rc->eof);
    CU_ASSERT_STRING_EQUAL(rc->buf, "{\"now\":\"c\"}\n");
    close(b);
    close(c);
    free(ra);
    free(rb);
    free(rc);
    fx_done(&fx);
}

static void test_idle_client_closed(void)
{
    struct fx fx;
    fx_init(&fx);
    fx.lim.timeout_ms = 200;
    CU_ASSERT_FATAL(fx_start(&fx));

    /* a partial line is no activity */
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, "now"));
    struct reader *r = reader_new(fd);
    ev_tstamp t0 = ev_time();
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, r, 2.0));
    CU_ASSERT(ev_time() - t0 >= 0.15);
    CU_ASSERT_EQUAL(r->len, 0);
    close(fd);

    /* a client waiting for an answer is not idle */
    fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    memset(r, 0, sizeof *r);
    r->fd = fd;
    CU_ASSERT(client_send(fd, "hold\n"));
    unit_ev_run_for(fx.loop, 0.5);
    CU_ASSERT_FALSE(reader_eof(r));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.held);
    control_answer(fx.held, "{\"held\":true}", 13);
    fx.held = NULL;
    read_lines(&fx, r, 1);
    CU_ASSERT_STRING_EQUAL(r->buf, "{\"held\":true}\n");
    CU_ASSERT_FALSE(r->eof);
    /* and idle again after it */
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, r, 2.0));
    free(r);
    close(fd);
    fx_done(&fx);
}

static void test_socket_mode(void)
{
    static const unsigned modes[] = { 0660, 0600, 0666 };
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct fx fx;
        fx_init(&fx);
        fx.lim.mode = modes[i];
        CU_ASSERT_FATAL(fx_start(&fx));
        struct stat st;
        CU_ASSERT_FATAL(stat(sock_path, &st) == 0);
        CU_ASSERT(S_ISSOCK(st.st_mode));
        CU_ASSERT_EQUAL(st.st_mode & 07777, modes[i]);
        fx_done(&fx);
    }
    /* the caller's umask is left as it was */
    CU_ASSERT_EQUAL(umask(old), 0);
}

static void test_stale_socket_replaced(void)
{
    /* a socket file nobody listens on, as a killed process leaves it */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = sock_addr();
    CU_ASSERT_FATAL(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
    close(s);
    struct stat before;
    CU_ASSERT_FATAL(stat(sock_path, &before) == 0);

    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    char out[256];
    ask(&fx, "now x\n", 1, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "{\"now\":\"x\"}\n");
    fx_done(&fx);
}

static void test_regular_file_refused(void)
{
    FILE *f = fopen(sock_path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("keep me", f);
    fclose(f);
    struct fx fx;
    fx_init(&fx);
    char why[512] = "";
    fx.c = control_new(fx.loop, sock_path, &fx.lim, commands, 1, &fx, why, sizeof why);
    CU_ASSERT_PTR_NULL(fx.c);
    char want[512];
    snprintf(want, sizeof want, "%s exists and is not a socket", sock_path);
    CU_ASSERT_STRING_EQUAL(why, want);
    char buf[32] = "";
    f = fopen(sock_path, "r");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
    CU_ASSERT_STRING_EQUAL(buf, "keep me");
    fx_done(&fx);
}

static void test_second_server_refused(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    char why[512] = "";
    struct control *second = control_new(fx.loop, sock_path, &fx.lim, commands, 1, &fx, why, sizeof why);
    CU_ASSERT_PTR_NULL(second);
    char want[512];
    snprintf(want, sizeof want, "another process listens on %s", sock_path);
    CU_ASSERT_STRING_EQUAL(why, want);
    /* the first still serves, its socket untouched */
    char out[256];
    ask(&fx, "now still\n", 1, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "{\"now\":\"still\"}\n");
    fx_done(&fx);
}

static void test_free_unlinks_only_its_socket(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    unit_ev_run_for(fx.loop, 0.02);
    control_free(fx.c);
    fx.c = NULL;
    struct stat st;
    CU_ASSERT(stat(sock_path, &st) != 0 && errno == ENOENT);
    /* its clients are closed */
    struct reader *r = reader_new(fd);
    CU_ASSERT(reader_eof(r));
    free(r);
    close(fd);

    /* a file put in its place meanwhile is not ours to remove */
    CU_ASSERT_FATAL(fx_start(&fx));
    CU_ASSERT_FATAL(unlink(sock_path) == 0);
    FILE *f = fopen(sock_path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fclose(f);
    control_free(fx.c);
    fx.c = NULL;
    CU_ASSERT(stat(sock_path, &st) == 0 && S_ISREG(st.st_mode));
    fx_done(&fx);
}

static void test_answer_after_client_gone(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));

    /* the client resets before the answer */
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, "hold\n"));
    unit_ev_run_for(fx.loop, 0.05);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.held);
    close(fd);
    unit_ev_run_for(fx.loop, 0.05);
    control_answer(fx.held, "{\"late\":1}", 10);
    fx.held = NULL;
    unit_ev_run_for(fx.loop, 0.05);

    /* the client only closed its sending side: it still gets the answers */
    fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, "later x\nnow y"));
    CU_ASSERT(shutdown(fd, SHUT_WR) == 0);
    struct reader *r = reader_new(fd);
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, r, 2.0));
    CU_ASSERT_STRING_EQUAL(r->buf, "{\"later\":\"x\"}\n{\"now\":\"y\"}\n");
    free(r);
    close(fd);

    /* the control is freed before the answer */
    fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, "hold\n"));
    unit_ev_run_for(fx.loop, 0.05);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.held);
    control_free(fx.c);
    fx.c = NULL;
    control_answer(fx.held, "{\"late\":2}", 10);
    fx.held = NULL;
    close(fd);
    fx_done(&fx);
}

static void test_client_not_reading_closed(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    int sndbuf = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
    enum { ASKED = 400 };
    static char many[ASKED * 4 + 1];
    for (int i = 0; i < ASKED; i++)
        memcpy(many + i * 4, "big\n", 4);
    CU_ASSERT(client_send(fd, many));
    unit_ev_run_for(fx.loop, 0.3);
    /* now read: some answers, then the close */
    struct reader *r = reader_new(fd);
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, r, 3.0));
    size_t got = count_lines(r);
    CU_ASSERT(got > 0);
    CU_ASSERT(got < ASKED);
    free(r);
    close(fd);

    /* one answer longer than the bound reaches a client that reads */
    char out[BIG_ANSWER + 64];
    ask(&fx, "big\n", 1, out, sizeof out);
    CU_ASSERT_EQUAL(strlen(out), BIG_ANSWER + 11);
    fx_done(&fx);
}

/* ---- streams ---- */

static void test_stream_lines_follow_the_answer(void)
{
    struct fx fx;
    fx_init(&fx);
    fx.lim.timeout_ms = 100;        /* a stream is not idle while it waits for lines */
    CU_ASSERT_FATAL(fx_start(&fx));
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, "stream\nnow ignored\n"));
    struct reader *r = reader_new(fd);
    CU_ASSERT_STRING_EQUAL(read_lines(&fx, r, 1), "{\"stream\":true}\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.stream);
    unit_ev_run_for(fx.loop, 0.3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.stream);
    CU_ASSERT(control_stream_write(fx.stream, "one\n", 4));
    CU_ASSERT(control_stream_write(fx.stream, "two\n", 4));
    CU_ASSERT_STRING_EQUAL(read_lines(&fx, r, 3), "{\"stream\":true}\none\ntwo\n");
    CU_ASSERT(fx.stream_drained > 0);
    CU_ASSERT_EQUAL(fx.stream_closed, 0);

    /* the client goes: closed() once */
    close(fd);
    unit_ev_run_for(fx.loop, 0.1);
    CU_ASSERT_EQUAL(fx.stream_closed, 1);
    CU_ASSERT_PTR_NULL(fx.stream);
    free(r);

    /* closed from this side: the client sees EOF, closed() is not called */
    fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(client_send(fd, "stream\n"));
    r = reader_new(fd);
    read_lines(&fx, r, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.stream);
    control_stream_close(fx.stream);
    fx.stream = NULL;
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_eof, r, 2.0));
    CU_ASSERT_EQUAL(fx.stream_closed, 1);
    free(r);
    close(fd);
    fx_done(&fx);
}

static void test_stream_bounded_for_a_client_not_reading(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    int fd = client_connect();
    CU_ASSERT_FATAL(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    CU_ASSERT(client_send(fd, "stream\n"));
    struct reader *r = reader_new(fd);
    read_lines(&fx, r, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.stream);
    /* write until refused, letting the loop send what the socket takes */
    static const char line[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
    size_t accepted = 0, refused = 0;
    for (int round = 0; round < 200 && refused == 0; round++) {
        for (int i = 0; i < 10; i++) {
            if (control_stream_write(fx.stream, line, sizeof line - 1))
                accepted++;
            else
                refused++;
        }
        CU_ASSERT(control_stream_unsent(fx.stream) <= STREAM_MAX_UNSENT);
        unit_ev_run_for(fx.loop, 0.01);
    }
    CU_ASSERT(refused > 0);
    CU_ASSERT(accepted > STREAM_MAX_UNSENT / (sizeof line - 1));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.stream);     /* not closed: it only loses lines */
    /* the client reads everything: drained, and lines are taken again */
    size_t drained = fx.stream_drained;
    r->want_lines = accepted + 1;
    CU_ASSERT(unit_ev_run_until(fx.loop, reader_ready, r, 3.0));
    CU_ASSERT_EQUAL(count_lines(r), accepted + 1);
    CU_ASSERT(fx.stream_drained > drained);
    CU_ASSERT(control_stream_write(fx.stream, line, sizeof line - 1));
    free(r);
    close(fd);
    unit_ev_run_for(fx.loop, 0.1);
    CU_ASSERT_EQUAL(fx.stream_closed, 1);
    fx_done(&fx);
}

/* ---- ctl ---- */

struct ctl_run {
    int status;
    char out[4096];
    char err[4096];
};

static bool child_done(void *arg)
{
    pid_t *pid = arg;
    int st;
    pid_t got = waitpid(*pid, &st, WNOHANG);
    if (got == *pid) {
        *pid = st;
        return true;
    }
    return false;
}

static void slurp_fd(int fd, char *buf, size_t size)
{
    size_t len = 0;
    ssize_t n;
    while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
}

/* Runs ctl_main(argv) in a child while the server runs here. */
static void run_ctl(struct fx *fx, char **argv, struct ctl_run *res)
{
    int out[2], err[2];
    CU_ASSERT_FATAL(pipe(out) == 0 && pipe(err) == 0);
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]);
        close(err[0]);
        int rc = ctl_main(argc, argv);
        fflush(NULL);
        _exit(rc);
    }
    close(out[1]);
    close(err[1]);
    pid_t wait_for = pid;
    bool done = unit_ev_run_until(fx->loop, child_done, &wait_for, 5.0);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    CU_ASSERT_FATAL(done);
    CU_ASSERT_FATAL(WIFEXITED(wait_for));
    res->status = WEXITSTATUS(wait_for);
    slurp_fd(out[0], res->out, sizeof res->out);
    slurp_fd(err[0], res->err, sizeof res->err);
    close(out[0]);
    close(err[0]);
}

static void test_ctl_exit_statuses(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    struct ctl_run res;

    char *ok[] = { "ctl", "-s", sock_path, "now", "hello", "world", NULL };
    run_ctl(&fx, ok, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_OK);
    CU_ASSERT_STRING_EQUAL(res.out, "{\"now\":\"hello world\"}\n");
    CU_ASSERT_STRING_EQUAL(res.err, "");

    /* -s wins over -c; -c without a readable configuration fails */
    char noconf[300];
    snprintf(noconf, sizeof noconf, "%s/none.yaml", dir);
    char *both[] = { "ctl", "-c", noconf, "-s", sock_path, "now", "s", NULL };
    run_ctl(&fx, both, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_OK);
    CU_ASSERT_STRING_EQUAL(res.out, "{\"now\":\"s\"}\n");
    char *conf_only[] = { "ctl", "-c", noconf, "now", NULL };
    run_ctl(&fx, conf_only, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_FAIL);
    CU_ASSERT_STRING_EQUAL(res.out, "");
    CU_ASSERT_PTR_NOT_NULL(strstr(res.err, noconf));

    /* an answer completed later, and a long option */
    char *later[] = { "ctl", "--socket", sock_path, "later", "-x", NULL };
    run_ctl(&fx, later, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_OK);
    CU_ASSERT_STRING_EQUAL(res.out, "{\"later\":\"-x\"}\n");

    char *unknown[] = { "ctl", "-s", sock_path, "bogus", NULL };
    run_ctl(&fx, unknown, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_FAIL);
    CU_ASSERT_STRING_EQUAL(res.out, "{\"error\":\"unknown command \\\"bogus\\\"; try help\"}\n");
    CU_ASSERT_STRING_EQUAL(res.err, "heprouter ctl: unknown command \"bogus\"; try help\n");

    /* "error" below the top level is not an error answer */
    char *nested[] = { "ctl", "-s", sock_path, "nested", NULL };
    run_ctl(&fx, nested, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_OK);

    char nowhere[300];
    snprintf(nowhere, sizeof nowhere, "%s/nope.sock", dir);
    char *noconn[] = { "ctl", "-s", nowhere, "now", NULL };
    run_ctl(&fx, noconn, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_FAIL);
    CU_ASSERT_STRING_EQUAL(res.out, "");
    char want[512];
    snprintf(want, sizeof want, "heprouter ctl: cannot connect to %s: %s\n", nowhere, strerror(ENOENT));
    CU_ASSERT_STRING_EQUAL(res.err, want);

    /* the server holds the answer: -T bounds the wait */
    char *slow[] = { "ctl", "-s", sock_path, "-T", "0.2", "hold", NULL };
    run_ctl(&fx, slow, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_FAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(res.err, "timed out waiting for the answer"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx.held);
    control_answer(fx.held, "{}", 2);
    fx.held = NULL;

    char *nocmd[] = { "ctl", "-s", sock_path, NULL };
    run_ctl(&fx, nocmd, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_USAGE);
    char *badT[] = { "ctl", "-T", "soon", "now", NULL };
    run_ctl(&fx, badT, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_USAGE);
    char *newline[] = { "ctl", "-s", sock_path, "now", "a\nhold", NULL };
    run_ctl(&fx, newline, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_USAGE);
    CU_ASSERT_PTR_NULL(fx.held);
    char *badopt[] = { "ctl", "-q", "now", NULL };
    run_ctl(&fx, badopt, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_USAGE);
    fx_done(&fx);
}

/* Feeds fx's stream while a ctl child reads it: a notice first, then "line N". */
struct feeder {
    struct fx *fx;
    ev_timer timer;
    unsigned n;
};

static void feed_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct feeder *f = w->data;
    if (f->fx->stream == NULL)
        return;
    char line[32];
    int len = f->n == 0 ? snprintf(line, sizeof line, "# 1 tap lines lost\n")
                        : snprintf(line, sizeof line, "line %u\n", f->n);
    if (control_stream_write(f->fx->stream, line, (size_t)len))
        f->n++;
}

/* Ends fx's stream from the server's side after one line. */
static void close_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct feeder *f = w->data;
    if (f->fx->stream == NULL)
        return;
    control_stream_write(f->fx->stream, "last\n", 5);
    control_stream_close(f->fx->stream);
    f->fx->stream = NULL;
}

static void test_ctl_stream(void)
{
    struct fx fx;
    fx_init(&fx);
    CU_ASSERT_FATAL(fx_start(&fx));
    struct feeder f = { .fx = &fx };
    ev_timer_init(&f.timer, feed_cb, 0.01, 0.01);
    f.timer.data = &f;
    ev_timer_start(fx.loop, &f.timer);
    struct ctl_run res;

    /* -n counts lines, not notices; the answer goes to stderr */
    char *counted[] = { "ctl", "-s", sock_path, "-n", "3", "stream", NULL };
    run_ctl(&fx, counted, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_OK);
    CU_ASSERT_STRING_EQUAL(res.out, "# 1 tap lines lost\nline 1\nline 2\nline 3\n");
    CU_ASSERT_STRING_EQUAL(res.err, "heprouter ctl: {\"stream\":true}\n");
    unit_ev_run_for(fx.loop, 0.05);
    CU_ASSERT_EQUAL(fx.stream_closed, 1);

    /* -T: the lines that came in that time, then exit 0 */
    f.n = 1;
    char *timed[] = { "ctl", "-s", sock_path, "-T", "0.3", "stream", NULL };
    run_ctl(&fx, timed, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(res.out, "line 1\nline 2\n"));

    /* the router ends the stream: exit 1, said on stderr */
    ev_timer_stop(fx.loop, &f.timer);
    unit_ev_run_for(fx.loop, 0.05);
    ev_timer_init(&f.timer, close_cb, 0.01, 0.01);
    ev_timer_start(fx.loop, &f.timer);
    char *ended[] = { "ctl", "-s", sock_path, "stream", NULL };
    run_ctl(&fx, ended, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_FAIL);
    CU_ASSERT_STRING_EQUAL(res.out, "last\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(res.err, "the router ended the stream"));

    char *badn[] = { "ctl", "-n", "0", "stream", NULL };
    run_ctl(&fx, badn, &res);
    CU_ASSERT_EQUAL(res.status, CTL_EXIT_USAGE);
    ev_timer_stop(fx.loop, &f.timer);
    fx_done(&fx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    snprintf(sock_path, sizeof sock_path, "%s/control.sock", dir);
    static const struct unit_test tests[] = {
        { "help lists the commands", test_help_lists_commands },
        { "unknown command, empty lines, CRLF, trimmed args", test_unknown_command_and_empty_lines },
        { "pipelined commands answered in order", test_pipelined_answers_in_order },
        { "a line longer than max_line closes", test_long_line_closes },
        { "max_clients", test_max_clients },
        { "an idle client is closed, a waiting one is not", test_idle_client_closed },
        { "the socket file gets control.mode", test_socket_mode },
        { "a stale socket is replaced", test_stale_socket_replaced },
        { "a regular file is refused and kept", test_regular_file_refused },
        { "a second server on the same path is refused", test_second_server_refused },
        { "control_free unlinks its own socket only", test_free_unlinks_only_its_socket },
        { "an answer after the client or control is gone", test_answer_after_client_gone },
        { "a client that does not read is closed", test_client_not_reading_closed },
        { "ctl: output and exit statuses", test_ctl_exit_statuses },
        { "a stream: lines after the answer, closed either side", test_stream_lines_follow_the_answer },
        { "a stream to a client not reading is bounded, not closed", test_stream_bounded_for_a_client_not_reading },
        { "ctl: a stream's lines, -n and -T", test_ctl_stream },
        { NULL, NULL },
    };
    int rc = unit_run("control", tests);
    unlink(sock_path);
    rmdir(dir);
    return rc;
}
