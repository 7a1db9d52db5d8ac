/*
 * log.c - leveled, optionally rate-limited logging to stderr.
 *
 * Lines start with a syslog priority prefix ("<3>", "<4>", ...) only when
 * stderr is the journal (JOURNAL_STREAM set by systemd), so they are
 * readable on a terminal and correctly classified under systemd.  One write()
 * per line keeps lines from several worker threads whole.  Lines are cut at
 * LOG_LINE_MAX bytes, except the body of log_write_body() (the counters),
 * which is written whole.
 */
#include "log.h"

#include "clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

int log_current_level = LOG_LEVEL_INFO;
static int log_journal = -1;        /* -1: not checked yet */

static const struct {
    const char *name;
    const char *journal_prefix;     /* sd-daemon(3) priority */
} levels[] = {
#define LOG_LEVEL_ROW(id, name, prefix) [LOG_LEVEL_##id] = { name, prefix },
    LOG_LEVELS(LOG_LEVEL_ROW)
#undef LOG_LEVEL_ROW
};

void log_set_level(int level)
{
    if (level >= 0 && level < LOG_LEVEL_COUNT)
        log_current_level = level;
}

static size_t prefix(int level, char *buf, size_t len)
{
    size_t n = 0;
    if (log_journal < 0)
        log_journal = getenv("JOURNAL_STREAM") != NULL;
    if (log_journal)
        n += (size_t)snprintf(buf, len, "%s", levels[level].journal_prefix);
    n += (size_t)snprintf(buf + n, len - n, "heprouter[%ld] %s: ", (long)getpid(), levels[level].name);
    return n < len ? n : len - 1;
}

/* Formats the prefix and message into line; returns the length, without a newline. */
static size_t format_head(int level, char *line, size_t size, const char *fmt, va_list ap)
{
    size_t n = prefix(level, line, size);
    if (n < size) {
        int w = vsnprintf(line + n, size - n, fmt, ap);
        if (w > 0)
            n += (size_t)w;
    }
    if (n >= size - 1)
        n = size - 2;               /* truncated: keep room for the newline */
    return n;
}

/*
 * One writev() per line.  A pipe or the journal's socket may take a long
 * line in parts: the rest follows at once, so only then can another
 * thread's line slip in.
 */
static void write_line(struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t w = writev(STDERR_FILENO, iov, iovcnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;                 /* nowhere to log to */
        size_t done = (size_t)w;
        while (iovcnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
}

static void emit(int level, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n = format_head(level, line, sizeof line, fmt, ap);
    line[n++] = '\n';
    struct iovec iov = { .iov_base = line, .iov_len = n };
    write_line(&iov, 1);
}

void log_write(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, fmt, ap);
    va_end(ap);
}

void log_write_body(int level, const char *body, size_t body_len, const char *fmt, ...)
{
    if (log_current_level < level)
        return;
    char head[LOG_LINE_MAX];
    char newline = '\n';
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_head(level, head, sizeof head, fmt, ap);
    va_end(ap);
    struct iovec iov[] = {
        { .iov_base = head, .iov_len = n },
        { .iov_base = (char *)body, .iov_len = body != NULL ? body_len : 0 },     /* writev() only reads it */
        { .iov_base = &newline, .iov_len = 1 },
    };
    write_line(iov, (int)(sizeof iov / sizeof iov[0]));
}

void log_ratelimited(struct log_limit *lim, uint64_t interval_ms, int level, const char *fmt, ...)
{
    if (log_current_level < level)
        return;
    uint64_t now = clock_mono_ms();
    if (now < lim->next_ms) {
        lim->suppressed++;
        return;
    }
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (lim->suppressed > 0)
        log_write(level, "%s (%llu similar messages suppressed)", msg,
                  (unsigned long long)lim->suppressed);
    else
        log_write(level, "%s", msg);
    lim->suppressed = 0;
    lim->next_ms = now + interval_ms;
}
