/*
 * control.c - the control socket server (control.h).
 *
 * Each client owns an input buffer of max_line + 2 bytes (a line, CR, LF),
 * an output buffer, and the list of its requests in the order the lines
 * came.  A request is answered at once or later; answers leave in order, so
 * an answered request waits behind an earlier unanswered one.  A request
 * outlives its client (and the control): when the client goes, unanswered
 * requests are detached and freed by their control_answer().
 *
 * The client is closed when: it sends a line longer than max_line (after the
 * error line is sent), it stays idle for timeout (no line, nothing waiting
 * to be answered or sent, and the last byte written or read that long ago),
 * more than max_line * CONTROL_QUEUE_LINES bytes of its output are still
 * unsent when another answer is ready (it does not read), a read or write
 * fails, or it closed its side and every answer went out.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "list.h"
#include "log.h"

/* Fairness on the main loop, as in ingest.c: level-triggered, the rest next time. */
#define CONTROL_READS_PER_WAKEUP 8
#define CONTROL_ACCEPTS_PER_WAKEUP 16

/* accept() out of descriptors or memory: stop watching for this long instead of spinning. */
#define CONTROL_ACCEPT_PAUSE_S 0.1

#define CONTROL_BACKLOG 16

struct control_client;

struct control_request {
    struct control_client *cl;      /* NULL once the client is gone */
    struct list_link link;          /* cl->requests */
    char *answer;                   /* with its "\n"; NULL until answered */
    size_t len;
};

struct control_client {
    struct control *c;
    struct list_link link;          /* c->clients */
    int fd;
    ev_io rio;
    ev_io wio;
    ev_timer idle;
    ev_tstamp last_active;

    char *in;                       /* max_line + 2 bytes */
    size_t inlen;
    char *out;
    size_t outlen, outoff, outcap;

    struct list requests;           /* oldest first */
    size_t nwaiting;                /* requests not yet answered */

    int busy;                       /* inside a callback that may run commands */
    bool doomed;                    /* close when busy drops to 0 */
    bool eof;                       /* no more input: close once all is answered and sent */
    struct control_stream *stream;  /* a stream (control_stream_open()), or NULL */
};

struct control_stream {
    struct control_client *cl;
    size_t max_unsent;
    void (*closed)(void *arg);      /* NULL once control_stream_close() was called */
    void (*drained)(void *arg);
    void *arg;
};

struct control {
    struct ev_loop *loop;
    struct control_limits lim;
    const struct control_command *cmds;
    size_t ncmds;
    void *arg;

    char *path;
    int fd;
    dev_t dev;                      /* of the socket file we bound */
    ino_t ino;
    ev_io io;
    ev_timer accept_pause;

    struct list clients;
    size_t nclients;
    struct log_limit accept_limit;
    struct log_limit io_limit;
};

static void client_close(struct control_client *cl);

/* ---- JSON ---- */

void control_json_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(out, "\\u%04x", ch);
            else
                fputc(ch, out);
        }
    }
    fputc('"', out);
}

/* ---- closing ---- */

/*
 * Closes now, or marks the client when a callback up the stack is still
 * using it (a command answered synchronously while its line is parsed).
 */
static void client_fail(struct control_client *cl)
{
    if (cl->busy > 0)
        cl->doomed = true;
    else
        client_close(cl);
}

static void client_close(struct control_client *cl)
{
    struct control *c = cl->c;
    ev_io_stop(c->loop, &cl->rio);
    ev_io_stop(c->loop, &cl->wio);
    ev_timer_stop(c->loop, &cl->idle);
    close(cl->fd);
    struct list_link *pos, *tmp;
    list_foreach_safe(pos, tmp, &cl->requests) {
        struct control_request *req = list_entry(pos, struct control_request, link);
        list_remove(&cl->requests, pos);
        if (req->answer != NULL) {
            free(req->answer);
            free(req);
        } else {
            req->cl = NULL;         /* its control_answer() frees it */
        }
    }
    list_remove(&c->clients, &cl->link);
    c->nclients--;
    if (cl->stream != NULL) {
        if (cl->stream->closed != NULL)
            cl->stream->closed(cl->stream->arg);
        free(cl->stream);
    }
    free(cl->in);
    free(cl->out);
    free(cl);
}

/* Whether the client has nothing left to do and may go (after EOF). */
static bool client_finished(const struct control_client *cl)
{
    return list_empty(&cl->requests) && cl->outoff == cl->outlen;
}

/* ---- output ---- */

/* Writes what it can; closes on error, or when done after EOF. Returns false if closed or doomed. */
static bool client_flush(struct control_client *cl)
{
    struct control *c = cl->c;
    while (cl->outoff < cl->outlen) {
        ssize_t n = send(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            cl->outoff += (size_t)n;
            cl->last_active = ev_now(c->loop);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(c->loop, &cl->wio);
            return true;
        }
        if (errno == EPIPE || errno == ECONNRESET)
            log_debug("control: client went away before its answer");
        else
            log_ratelimited(&c->io_limit, c->lim.log_interval_ms, LOG_LEVEL_WARN,
                            "control: write: %s", strerror(errno));
        client_fail(cl);
        return false;
    }
    cl->outoff = cl->outlen = 0;
    ev_io_stop(c->loop, &cl->wio);
    if (cl->stream != NULL && cl->stream->drained != NULL)
        cl->stream->drained(cl->stream->arg);
    if (cl->eof && client_finished(cl)) {
        client_fail(cl);
        return false;
    }
    return true;
}

/* Appends len bytes to the output; false when out of memory. */
static bool client_append(struct control_client *cl, const char *p, size_t len)
{
    size_t pending = cl->outlen - cl->outoff;
    if (cl->outoff > 0 && cl->outlen + len > cl->outcap) {
        memmove(cl->out, cl->out + cl->outoff, pending);
        cl->outlen = pending;
        cl->outoff = 0;
    }
    if (cl->outlen + len > cl->outcap) {
        size_t cap = cl->outcap ? cl->outcap : 1024;
        while (cap < cl->outlen + len)
            cap *= 2;
        char *n = realloc(cl->out, cap);
        if (n == NULL)
            return false;
        cl->out = n;
        cl->outcap = cap;
    }
    memcpy(cl->out + cl->outlen, p, len);
    cl->outlen += len;
    return true;
}

/*
 * Appends an answer; false when what is already unsent is over the bound
 * (the client must go).  Checking before appending lets one long answer
 * (stats of a large configuration) reach a client that reads.
 */
static bool client_queue(struct control_client *cl, const char *p, size_t len)
{
    size_t bound = cl->c->lim.max_line * CONTROL_QUEUE_LINES;
    if (cl->outlen - cl->outoff > bound)
        return false;               /* one answer, however long, always fits an empty queue */
    return client_append(cl, p, len);
}

/* Moves the answered requests at the head of the list to the output, in order. */
static void client_release(struct control_client *cl)
{
    struct control *c = cl->c;
    struct control_request *req;
    bool queued = false;
    while ((req = list_first_entry(&cl->requests, struct control_request, link)) != NULL &&
           req->answer != NULL) {
        bool ok = client_queue(cl, req->answer, req->len);
        list_remove(&cl->requests, &req->link);
        free(req->answer);
        free(req);
        if (!ok) {
            log_ratelimited(&c->io_limit, c->lim.log_interval_ms, LOG_LEVEL_WARN,
                            "control: client closed: more than %zu bytes of answers unread",
                            c->lim.max_line * CONTROL_QUEUE_LINES);
            client_fail(cl);
            return;
        }
        queued = true;
    }
    if ((queued || cl->eof) && !client_flush(cl))
        return;                     /* closed, or to be closed */
    /* reading may have been paused while too many requests waited */
    if (!cl->eof && !cl->doomed && cl->nwaiting < CONTROL_QUEUE_LINES)
        ev_io_start(c->loop, &cl->rio);
}

void control_answer(struct control_request *req, const char *json, size_t len)
{
    if (req == NULL)
        return;
    struct control_client *cl = req->cl;
    if (cl == NULL) {
        free(req);
        return;
    }
    char *a = malloc(len + 1);
    if (a == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        a = malloc(sizeof oom);
        if (a == NULL) {
            list_remove(&cl->requests, &req->link);
            cl->nwaiting--;
            free(req);
            client_fail(cl);
            return;
        }
        memcpy(a, oom, sizeof oom);
        len = sizeof oom - 2;
    } else {
        memcpy(a, json, len);
        for (size_t i = 0; i < len; i++)
            if (a[i] == '\n')
                a[i] = ' ';
    }
    a[len] = '\n';
    req->answer = a;
    req->len = len + 1;
    cl->nwaiting--;
    if (!cl->doomed)
        client_release(cl);
}

void control_answer_error(struct control_request *req, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    char *json = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&json, &len);
    if (n < 0 || f == NULL) {
        if (f != NULL)
            fclose(f);
        free(json);
        free(n < 0 ? NULL : text);
        static const char oom[] = "{\"error\":\"out of memory\"}";
        control_answer(req, oom, sizeof oom - 1);
        return;
    }
    fputs("{\"error\":", f);
    control_json_string(f, text, (size_t)n);
    fputc('}', f);
    fclose(f);
    free(text);
    control_answer(req, json, len);
    free(json);
}

/* ---- streams ---- */

struct control_stream *control_stream_open(struct control_request *req, const char *json, size_t len,
                                           size_t max_unsent, void (*closed)(void *arg),
                                           void (*drained)(void *arg), void *arg)
{
    struct control_client *cl = req->cl;
    if (cl == NULL) {
        control_answer(req, json, len);     /* the client is gone: dropped */
        return NULL;
    }
    if (cl->eof || cl->doomed || cl->stream != NULL) {
        control_answer_error(req, "a stream needs a connection open both ways, and one stream per connection");
        return NULL;
    }
    struct control_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        control_answer_error(req, "out of memory");
        return NULL;
    }
    *s = (struct control_stream){ cl, max_unsent, closed, drained, arg };
    cl->stream = s;
    ev_timer_stop(cl->c->loop, &cl->idle);
    control_answer(req, json, len);
    return s;
}

bool control_stream_write(struct control_stream *s, const char *line, size_t len)
{
    struct control_client *cl = s->cl;
    if (cl->doomed || !list_empty(&cl->requests) || cl->outlen - cl->outoff + len > s->max_unsent ||
        !client_append(cl, line, len))
        return false;
    /* sent when the loop next turns: the lines of one wakeup leave together */
    ev_io_start(cl->c->loop, &cl->wio);
    return true;
}

size_t control_stream_unsent(const struct control_stream *s)
{
    return s->cl->outlen - s->cl->outoff;
}

void control_stream_close(struct control_stream *s)
{
    struct control_client *cl = s->cl;
    s->closed = NULL;
    cl->eof = true;                 /* what is queued goes out, then the client is closed */
    ev_io_stop(cl->c->loop, &cl->rio);
    if (client_finished(cl))
        client_fail(cl);
    else
        ev_io_start(cl->c->loop, &cl->wio);
}

/* ---- commands ---- */

static struct control_request *request_new(struct control_client *cl)
{
    struct control_request *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    req->cl = cl;
    list_insert_tail(&cl->requests, &req->link);
    cl->nwaiting++;
    return req;
}

/* The built-in help: every command with its usage and one line. */
static void command_help(struct control *c, struct control_request *req)
{
    char *json = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&json, &len);
    if (f == NULL) {
        control_answer_error(req, "out of memory");
        return;
    }
    fputs("{\"commands\":[{\"name\":\"help\",\"usage\":\"help\",\"help\":\"list the commands\"}", f);
    for (size_t i = 0; i < c->ncmds; i++) {
        const struct control_command *cmd = &c->cmds[i];
        fputs(",{\"name\":", f);
        control_json_string(f, cmd->name, strlen(cmd->name));
        fputs(",\"usage\":", f);
        control_json_string(f, cmd->usage, strlen(cmd->usage));
        fputs(",\"help\":", f);
        control_json_string(f, cmd->help, strlen(cmd->help));
        fputc('}', f);
    }
    fputs("]}", f);
    if (fclose(f) != 0) {
        free(json);
        control_answer_error(req, "out of memory");
        return;
    }
    control_answer(req, json, len);
    free(json);
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Runs one command line (NUL-terminated, terminator removed). */
static void client_command(struct control_client *cl, char *line)
{
    struct control *c = cl->c;
    char *end = line + strlen(line);
    while (is_space(*line))
        line++;
    while (end > line && is_space(end[-1]))
        *--end = '\0';
    if (*line == '\0')
        return;                     /* empty lines are ignored */
    char *args = line;
    while (*args != '\0' && !is_space(*args))
        args++;
    if (*args != '\0') {
        *args++ = '\0';
        while (is_space(*args))
            args++;
    }
    struct control_request *req = request_new(cl);
    if (req == NULL) {
        client_fail(cl);
        return;
    }
    log_debug("control: command \"%s\"", line);
    if (strcmp(line, "help") == 0) {
        command_help(c, req);
        return;
    }
    for (size_t i = 0; i < c->ncmds; i++) {
        if (strcmp(line, c->cmds[i].name) == 0) {
            c->cmds[i].run(c->arg, args, req);
            return;
        }
    }
    control_answer_error(req, "unknown command \"%s\"; try help", line);
}

/* ---- input ---- */

/*
 * The bytes that cannot become a line of at most max_line: a line is
 * max_line bytes, then an optional CR, then LF.
 */
static bool line_too_long(const struct control_client *cl, size_t linelen)
{
    return linelen > cl->c->lim.max_line;
}

/* Answers "line longer than N bytes" and closes once that is sent. */
static void client_reject_line(struct control_client *cl)
{
    struct control *c = cl->c;
    cl->eof = true;
    cl->inlen = 0;
    ev_io_stop(c->loop, &cl->rio);
    struct control_request *req = request_new(cl);
    if (req == NULL) {
        client_fail(cl);
        return;
    }
    log_debug("control: client closed: line longer than %zu bytes", c->lim.max_line);
    control_answer_error(req, "line longer than %zu bytes", c->lim.max_line);
}

/* Runs every whole line in the buffer and keeps the partial one. */
static void client_parse(struct control_client *cl)
{
    size_t start = 0;
    if (cl->stream != NULL) {
        cl->inlen = 0;              /* a stream's client sends no more commands */
        return;
    }
    while (!cl->doomed && !cl->eof && cl->stream == NULL) {
        char *lf = memchr(cl->in + start, '\n', cl->inlen - start);
        if (lf == NULL)
            break;
        size_t len = (size_t)(lf - (cl->in + start));
        if (len > 0 && cl->in[start + len - 1] == '\r')
            len--;
        if (line_too_long(cl, len)) {
            client_reject_line(cl);
            return;
        }
        cl->in[start + len] = '\0';
        char *line = cl->in + start;
        start = (size_t)(lf - cl->in) + 1;
        cl->last_active = ev_now(cl->c->loop);
        client_command(cl, line);
    }
    if (cl->doomed || cl->eof)
        return;
    if (cl->stream != NULL) {
        cl->inlen = 0;
        return;
    }
    memmove(cl->in, cl->in + start, cl->inlen - start);
    cl->inlen -= start;
    /* the partial line: max_line bytes and a CR may still end well */
    size_t partial = cl->inlen;
    if (partial > 0 && cl->in[partial - 1] == '\r')
        partial--;
    if (line_too_long(cl, partial))
        client_reject_line(cl);
}

/* EOF: a last line without LF still counts; then answer what is left and go. */
static void client_eof(struct control_client *cl)
{
    ev_io_stop(cl->c->loop, &cl->rio);
    if (cl->inlen > 0 && cl->stream == NULL) {
        size_t len = cl->inlen;
        if (cl->in[len - 1] == '\r')
            len--;
        cl->in[len] = '\0';
        cl->inlen = 0;
        client_command(cl, cl->in);
    }
    cl->eof = true;
    if (!cl->doomed && (cl->stream != NULL || client_finished(cl)))
        client_fail(cl);            /* a stream ends when its client closes its side */
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    struct control_client *cl = w->data;
    struct control *c = cl->c;
    size_t cap = c->lim.max_line + 2;

    cl->busy++;
    for (int r = 0; r < CONTROL_READS_PER_WAKEUP && !cl->doomed && !cl->eof; r++) {
        if (cl->nwaiting >= CONTROL_QUEUE_LINES) {
            ev_io_stop(c->loop, &cl->rio);  /* resumed by client_release() */
            break;
        }
        ssize_t n = read(cl->fd, cl->in + cl->inlen, cap - cl->inlen);
        if (n > 0) {
            cl->inlen += (size_t)n;
            client_parse(cl);
            continue;
        }
        if (n == 0) {
            client_eof(cl);
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        if (errno == ECONNRESET)
            log_debug("control: client reset the connection");
        else
            log_ratelimited(&c->io_limit, c->lim.log_interval_ms, LOG_LEVEL_WARN,
                            "control: read: %s", strerror(errno));
        cl->doomed = true;
        break;
    }
    if (--cl->busy == 0 && cl->doomed)
        client_close(cl);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    client_flush(w->data);
}

/*
 * Lazily re-armed as in ingest.c.  A client waiting for an answer, or with
 * answers not yet sent, is not idle: the first is ours to finish, the
 * second is bounded by the output cap.  Except that output not moving for
 * the timeout also closes: a client that does not read.
 */
static void client_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct control_client *cl = w->data;
    ev_tstamp timeout = (ev_tstamp)cl->c->lim.timeout_ms / 1000.;
    if (cl->stream != NULL)
        return;                     /* a stream waits for its lines: not idle */
    if (cl->nwaiting > 0)
        cl->last_active = ev_now(loop);
    ev_tstamp left = cl->last_active + timeout - ev_now(loop);
    if (left > 0) {
        w->repeat = left;
        ev_timer_again(loop, w);
        return;
    }
    log_debug("control: idle client closed");
    client_close(cl);
}

static int client_open(struct control *c, int fd)
{
    struct control_client *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return -1;
    cl->in = malloc(c->lim.max_line + 2);
    if (cl->in == NULL) {
        free(cl);
        return -1;
    }
    cl->c = c;
    cl->fd = fd;
    cl->last_active = ev_now(c->loop);
    ev_io_init(&cl->rio, client_read_cb, fd, EV_READ);
    cl->rio.data = cl;
    ev_io_init(&cl->wio, client_write_cb, fd, EV_WRITE);
    cl->wio.data = cl;
    ev_init(&cl->idle, client_idle_cb);
    cl->idle.data = cl;
    ev_io_start(c->loop, &cl->rio);
    if (c->lim.timeout_ms > 0) {
        cl->idle.repeat = (ev_tstamp)c->lim.timeout_ms / 1000.;
        ev_timer_again(c->loop, &cl->idle);
    }
    list_insert_tail(&c->clients, &cl->link);
    c->nclients++;
    return 0;
}

/* ---- listening ---- */

/*
 * Over max_clients: one error line and close.  The socket's buffer is
 * empty, so a short line goes out whole without blocking.
 */
static void refuse_client(struct control *c, int fd)
{
    char line[128];
    int n = snprintf(line, sizeof line, "{\"error\":\"too many control clients (%zu)\"}\n",
                     c->lim.max_clients);
    if (n > 0 && (size_t)n < sizeof line && send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("control: refusing a client: %s", strerror(errno));
    close(fd);
    log_ratelimited(&c->accept_limit, c->lim.log_interval_ms, LOG_LEVEL_WARN,
                    "control: client refused: already %zu clients (control.max_clients)",
                    c->lim.max_clients);
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct control *c = w->data;
    ev_io_start(loop, &c->io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct control *c = w->data;
    for (int k = 0; k < CONTROL_ACCEPTS_PER_WAKEUP; k++) {
        int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            log_ratelimited(&c->accept_limit, c->lim.log_interval_ms, LOG_LEVEL_WARN,
                            "control %s: accept: %s (pausing)", c->path, strerror(errno));
            ev_io_stop(loop, &c->io);
            ev_timer_set(&c->accept_pause, CONTROL_ACCEPT_PAUSE_S, 0.);
            ev_timer_start(loop, &c->accept_pause);
            return;
        }
        if (c->nclients >= c->lim.max_clients) {
            refuse_client(c, fd);
            continue;
        }
        if (client_open(c, fd) != 0) {
            log_ratelimited(&c->accept_limit, c->lim.log_interval_ms, LOG_LEVEL_WARN,
                            "control: out of memory for a client");
            close(fd);
        }
    }
}

/*
 * What is at path: nothing (0), a stale socket that was removed (0), or a
 * reason not to touch it (-1).  A connect() that succeeds, or finds the
 * backlog full (EAGAIN), means a live server.
 */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *why, size_t whylen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why, whylen, "%s exists and is not a socket", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int err = errno;
    close(fd);
    if (rc == 0 || err == EAGAIN) {
        snprintf(why, whylen, "another process listens on %s", path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        snprintf(why, whylen, "%s: connect: %s", path, strerror(err));
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(why, whylen, "%s: removing the stale socket: %s", path, strerror(errno));
        return -1;
    }
    log_info("control: removed the stale socket %s", path);
    return 0;
}

/*
 * bind() creates the file with whatever mode the process umask leaves; the
 * mode is set by chmod() and only then listen() is called: until listen()
 * every connect() is refused, so no one gets in through the umask's mode
 * (and the umask, process-wide, is left alone).
 */
static int bind_socket(struct control *c, const struct sockaddr_un *sa, char *why, size_t whylen)
{
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (bind(c->fd, (const struct sockaddr *)sa, sizeof *sa) != 0) {
        snprintf(why, whylen, "bind %s: %s", c->path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(c->path, &st) != 0) {
        snprintf(why, whylen, "%s: %s", c->path, strerror(errno));
        unlink(c->path);
        return -1;
    }
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    if (chmod(c->path, (mode_t)c->lim.mode) != 0 || listen(c->fd, CONTROL_BACKLOG) != 0) {
        snprintf(why, whylen, "%s: %s", c->path, strerror(errno));
        unlink(c->path);
        return -1;
    }
    return 0;
}

struct control *control_new(struct ev_loop *loop, const char *path, const struct control_limits *lim,
                            const struct control_command *cmds, size_t ncmds, void *arg,
                            char *why, size_t whylen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof sa.sun_path) {
        snprintf(why, whylen, "control socket path %s: empty or longer than %zu bytes",
                 path != NULL ? path : "(none)", sizeof sa.sun_path - 1);
        return NULL;
    }
    if (lim->max_line == 0 || lim->max_clients == 0 || lim->mode > 07777) {
        snprintf(why, whylen, "control: invalid limits");
        return NULL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

    struct control *c = calloc(1, sizeof *c);
    if (c == NULL || (c->path = strdup(path)) == NULL) {
        free(c);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    c->loop = loop;
    c->lim = *lim;
    c->cmds = cmds;
    c->ncmds = ncmds;
    c->arg = arg;
    c->fd = -1;
    list_init(&c->clients);
    if (clear_stale(path, &sa, why, whylen) != 0 || bind_socket(c, &sa, why, whylen) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        free(c->path);
        free(c);
        return NULL;
    }
    ev_io_init(&c->io, accept_cb, c->fd, EV_READ);
    c->io.data = c;
    ev_init(&c->accept_pause, accept_pause_cb);
    c->accept_pause.data = c;
    ev_io_start(loop, &c->io);
    return c;
}

void control_free(struct control *c)
{
    if (c == NULL)
        return;
    struct list_link *pos, *tmp;
    list_foreach_safe(pos, tmp, &c->clients)
        client_close(list_entry(pos, struct control_client, link));
    ev_io_stop(c->loop, &c->io);
    ev_timer_stop(c->loop, &c->accept_pause);
    close(c->fd);
    /* only our own socket: someone may have replaced it since */
    struct stat st;
    if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path);
    free(c->path);
    free(c);
}
