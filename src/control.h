/*
 * control.h - the control socket: a Unix stream socket on the main thread's
 * libev loop where an operator (or `heprouter ctl`) sends one command per
 * line and gets one JSON line back per command, in order.
 *
 * The module knows the protocol (lines, ordering, limits, the built-in
 * `help`); what a command does is the caller's: it hands a table of
 * commands, and each one answers with control_answer() at once or later
 * (a reload answers once every worker has swapped).  Nothing here blocks.
 */
#ifndef HEPROUTER_CONTROL_H
#define HEPROUTER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ev.h>

/*
 * A client with more than max_line * CONTROL_QUEUE_LINES bytes of answers
 * unsent when another answer is ready (it does not read) is closed; a client with CONTROL_QUEUE_LINES commands
 * still unanswered is not read from until some are answered.
 */
#define CONTROL_QUEUE_LINES 16

/* The configuration's control.* keys (heprouter.yaml(5)). */
struct control_limits {
    unsigned mode;                  /* of the socket file, e.g. 0660 */
    size_t max_clients;             /* more connections are refused with an error line */
    uint64_t timeout_ms;            /* a client idle this long is closed */
    size_t max_line;                /* a longer command line closes the connection */
    uint64_t log_interval_ms;       /* log.interval: at most one warning line per kind per interval */
};

struct control;

/* One command line being answered; owned by the module. */
struct control_request;

struct control_command {
    const char *name;               /* "stats" */
    const char *usage;              /* "call CALL-ID" */
    const char *help;               /* one line */
    /*
     * args: the rest of the line after the name, spaces trimmed ("" when
     * none).  Answer with control_answer() (or control_answer_error()) now
     * or later, exactly once: req stays valid until then.
     */
    void (*run)(void *arg, const char *args, struct control_request *req);
};

/*
 * Binds path and listens on loop.  A stale socket left at path by a
 * process that died is replaced; a path where another process listens, or
 * that is not a socket, is an error (nothing is unlinked).  cmds (and the
 * strings they point to) must outlive the control.  Returns NULL and a
 * reason in why on failure.
 */
struct control *control_new(struct ev_loop *loop, const char *path, const struct control_limits *lim,
                            const struct control_command *cmds, size_t ncmds, void *arg,
                            char *why, size_t whylen);

/*
 * Closes the clients and the socket and unlinks the path (if it is still
 * the socket this control bound).  Requests not yet answered stay valid;
 * their answers are dropped.  NULL is fine.
 */
void control_free(struct control *c);

/*
 * Answers req with json: one JSON object, without the final newline (the
 * module adds it; a newline inside is turned into a space).  Answers are
 * sent in the order of the commands.  Valid after the client went away or
 * the control was freed (the answer is dropped).  req is freed: do not use
 * it again.
 */
void control_answer(struct control_request *req, const char *json, size_t len);

/* Answers req with {"error":"..."}, the formatted text JSON-escaped. */
void control_answer_error(struct control_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A stream: a command whose answer is followed by lines for as long as
 * the client stays (a live tap).  control_stream_open() answers req with
 * json and turns its client into a stream: it sends no more commands (what
 * it writes is read and ignored), is never closed for idleness, and gets
 * every line control_stream_write() is given, in order, until it closes
 * the connection (or its side of it), or control_stream_close().  Then
 * closed(arg) is called once (not after control_stream_close()), and the
 * stream must not be used again.  drained(arg), when not NULL, is called
 * each time everything queued has been sent.  Call it from the command's
 * run(): closed() never comes before it returns.  Returns NULL, req
 * answered with an error, when the stream cannot be opened.
 */
struct control_stream;

struct control_stream *control_stream_open(struct control_request *req, const char *json, size_t len,
                                           size_t max_unsent, void (*closed)(void *arg),
                                           void (*drained)(void *arg), void *arg);

/*
 * Queues line[0..len) (its newline included) for the client; false, and
 * nothing queued, when more than max_unsent bytes already wait unsent or
 * the stream's answer has not gone out yet.  Never blocks.
 */
bool control_stream_write(struct control_stream *s, const char *line, size_t len);

/* Bytes queued and not yet sent. */
size_t control_stream_unsent(const struct control_stream *s);

/*
 * Ends the stream from this side: what is queued is sent, then its client
 * is closed (control_free() closes it at once); closed() is not called.
 */
void control_stream_close(struct control_stream *s);

/* Writes s[0..len) to out as a JSON string, quotes included. */
void control_json_string(FILE *out, const char *s, size_t len);

#endif
