/*
 * log.c - leveled, optionally rate-limited logging to stderr or syslog.
 *
 * stderr: lines start with a syslog priority prefix ("<3>", "<4>", ...) only
 * when stderr is the journal (JOURNAL_STREAM set by systemd), so they are
 * readable on a terminal and correctly classified under systemd.  One
 * write() per line keeps lines from several worker threads whole.
 *
 * syslog: one syslog(3) call per line, with the level's priority and the
 * facility given to log_open(); syslog adds the program name and pid, so the
 * line is only "LEVEL: message".
 *
 * Lines are cut at LOG_LINE_MAX bytes, except the body of log_write_body()
 * (the counters), which is written whole.
 */
#include "log.h"

#include "clock.h"
#include "hash.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define LOG_DURATION_MAX 32         /* "18446744073709551615 min" and a NUL */
#define LOG_IDENT_DEFAULT "heprouter"
#define LOG_IDENT_MAX 64

int log_current_level = LOG_LEVEL_INFO;
static int log_journal = -1;        /* -1: not checked yet */

/*
 * The target and the syslog facility in one word, so that a line reads both
 * at once: facility << 1 | target.  <syslog.h> facilities are multiples
 * of 8, so they fit.
 */
static atomic_int log_destination = LOG_TARGET_STDERR;

/*
 * openlog(3) keeps the ident pointer, not a copy, and another thread may be
 * inside syslog(3) reading it: a new ident goes to the buffer not in use,
 * and only then is openlog() called with it.
 */
static char log_idents[2][LOG_IDENT_MAX];
static unsigned log_ident_slot;
static bool log_syslog_open;

static const struct {
    const char *name;
    const char *journal_prefix;     /* sd-daemon(3) priority */
} levels[] = {
#define LOG_LEVEL_ROW(id, name, prefix) [LOG_LEVEL_##id] = { name, prefix },
    LOG_LEVELS(LOG_LEVEL_ROW)
#undef LOG_LEVEL_ROW
};

/* syslog(3) priorities, the same numbers as the journal prefixes above. */
static const int syslog_priority[LOG_LEVEL_COUNT] = {
    [LOG_LEVEL_ERROR] = LOG_ERR,
    [LOG_LEVEL_WARN] = LOG_WARNING,
    [LOG_LEVEL_INFO] = LOG_INFO,
    [LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

_Static_assert(LOG_TARGET_SYSLOG == 1, "log_destination keeps the target in one bit");

void log_set_level(int level)
{
    if (level >= 0 && level < LOG_LEVEL_COUNT)
        log_current_level = level;
}

void log_open(int target, int facility, const char *ident)
{
    if (target != LOG_TARGET_SYSLOG) {
        log_close();
        return;
    }
    if (ident == NULL)
        ident = LOG_IDENT_DEFAULT;
    unsigned slot = log_ident_slot;
    if (!log_syslog_open || strcmp(log_idents[slot], ident) != 0) {
        slot = !slot;
        snprintf(log_idents[slot], sizeof log_idents[slot], "%s", ident);
        log_ident_slot = slot;
    }
    /* open before the lines are sent there; glibc's openlog() and syslog() share a lock */
    openlog(log_idents[slot], LOG_PID | LOG_NDELAY, facility);
    log_syslog_open = true;
    atomic_store(&log_destination, (facility & LOG_FACMASK) << 1 | LOG_TARGET_SYSLOG);
}

void log_close(void)
{
    atomic_store(&log_destination, LOG_TARGET_STDERR);
    if (log_syslog_open) {
        /* a line that read the old target reopens the connection in syslog(): whole, not lost */
        closelog();
        log_syslog_open = false;
    }
}

/* The stderr prefix: the journal's priority when it is the journal, then "heprouter[PID] LEVEL: ". */
static size_t stderr_prefix(int level, char *buf, size_t len)
{
    size_t n = 0;
    if (log_journal < 0)
        log_journal = getenv("JOURNAL_STREAM") != NULL;
    if (log_journal)
        n += (size_t)snprintf(buf, len, "%s", levels[level].journal_prefix);
    n += (size_t)snprintf(buf + n, len - n, "heprouter[%ld] %s: ", (long)getpid(), levels[level].name);
    return n < len ? n : len - 1;
}

/*
 * Formats the prefix and message into line; returns the length, without a
 * newline.  syslog adds the program and pid itself: only the level is
 * written before the message then.
 */
static size_t format_head(int dest, int level, char *line, size_t size, const char *fmt, va_list ap)
{
    size_t n;
    if ((dest & LOG_TARGET_SYSLOG) != 0) {
        int w = snprintf(line, size, "%s: ", levels[level].name);
        n = w > 0 ? (size_t)w : 0;
    } else {
        n = stderr_prefix(level, line, size);
    }
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

/* One syslog message of head and body, the facility taken from dest. */
static void send_syslog(int dest, int level, const char *head, size_t head_len, const char *body,
                        size_t body_len)
{
    int pri = (dest >> 1) | syslog_priority[level];
    if (body_len > INT_MAX)
        body_len = INT_MAX;
    syslog(pri, "%.*s%.*s", (int)head_len, head, (int)body_len, body != NULL ? body : "");
}

static void emit(int level, const char *fmt, va_list ap)
{
    if (level < 0 || level >= LOG_LEVEL_COUNT)
        level = LOG_LEVEL_ERROR;
    int dest = atomic_load_explicit(&log_destination, memory_order_acquire);
    char line[LOG_LINE_MAX];
    size_t n = format_head(dest, level, line, sizeof line, fmt, ap);
    if ((dest & LOG_TARGET_SYSLOG) != 0) {
        send_syslog(dest, level, line, n, NULL, 0);
        return;
    }
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
    if (log_current_level < level || level < 0)
        return;
    int dest = atomic_load_explicit(&log_destination, memory_order_acquire);
    char head[LOG_LINE_MAX];
    char newline = '\n';
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_head(dest, level, head, sizeof head, fmt, ap);
    va_end(ap);
    if (body == NULL)
        body_len = 0;
    if ((dest & LOG_TARGET_SYSLOG) != 0) {
        send_syslog(dest, level, head, n, body, body_len);
        return;
    }
    struct iovec iov[] = {
        { .iov_base = head, .iov_len = n },
        { .iov_base = (char *)body, .iov_len = body_len },     /* writev() only reads it */
        { .iov_base = &newline, .iov_len = 1 },
    };
    write_line(iov, (int)(sizeof iov / sizeof iov[0]));
}

char *log_duration(char *buf, size_t size, uint64_t ms)
{
    const uint64_t s = CLOCK_MS_PER_S;
    const uint64_t tenth = s / 10, minute = 60 * s, hour = 60 * minute;
    if (ms < s) {
        snprintf(buf, size, "%" PRIu64 " ms", ms);
    } else if (ms < 10 * s) {
        uint64_t tenths = (ms + tenth / 2) / tenth;
        if (tenths % 10 == 0)
            snprintf(buf, size, "%" PRIu64 " s", tenths / 10);
        else
            snprintf(buf, size, "%" PRIu64 ".%" PRIu64 " s", tenths / 10, tenths % 10);
    } else if (ms < 2 * minute) {
        snprintf(buf, size, "%" PRIu64 " s", (ms + s / 2) / s);
    } else if (ms < 2 * hour) {
        snprintf(buf, size, "%" PRIu64 " min", (ms + minute / 2) / minute);
    } else {
        snprintf(buf, size, "%" PRIu64 " h", (ms + hour / 2) / hour);
    }
    return buf;
}

/* The monotonic interval from since to now, worded; 0 when the clock went back. */
static char *elapsed(char *buf, size_t size, uint64_t since_ms, uint64_t now_ms)
{
    return log_duration(buf, size, now_ms > since_ms ? now_ms - since_ms : 0);
}

/*
 * The line that gets through says how many did not and over which time
 * (since the previous line), so the operator can tell a rate: "(and 1532
 * more like it in the last 10 s)".
 */
static void ratelimited(struct log_limit *lim, uint64_t interval_ms, uint64_t now_ms, int level,
                        const char *fmt, va_list ap)
{
    if (log_current_level < level)
        return;
    if (lim->written && now_ms >= lim->last_ms && now_ms - lim->last_ms < interval_ms) {
        lim->suppressed++;
        return;
    }
    char msg[LOG_LINE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (lim->written && lim->suppressed > 0) {
        char since[LOG_DURATION_MAX];
        log_write(level, "%s (and %" PRIu64 " more like it in the last %s)", msg, lim->suppressed,
                  elapsed(since, sizeof since, lim->last_ms, now_ms));
    } else {
        log_write(level, "%s", msg);
    }
    lim->suppressed = 0;
    lim->last_ms = now_ms;
    lim->written = true;
}

void log_ratelimited(struct log_limit *lim, uint64_t interval_ms, int level, const char *fmt, ...)
{
    if (log_current_level < level)
        return;
    va_list ap;
    va_start(ap, fmt);
    ratelimited(lim, interval_ms, clock_mono_ms(), level, fmt, ap);
    va_end(ap);
}

void log_ratelimited_at(struct log_limit *lim, uint64_t interval_ms, uint64_t now_ms, int level,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ratelimited(lim, interval_ms, now_ms, level, fmt, ap);
    va_end(ap);
}

/* Remembers subject as one of the window's, cheaply when it is the same as the last one. */
static void tally_subject(struct log_tally *t, const char *subject)
{
    size_t len = strlen(subject);
    uint64_t h = hash_fnv1a64(HASH_FNV64_OFFSET, subject, len);
    if (t->have_last && h == t->last_hash)
        return;
    t->last_hash = h;
    t->have_last = true;
    if (t->first[0] == '\0') {
        /* the window's first subject: the only copy made */
        snprintf(t->first, sizeof t->first, "%s", subject);
    }
    for (unsigned i = 0; i < t->nsubjects; i++)
        if (t->hashes[i] == h)
            return;
    if (t->nsubjects < LOG_TALLY_SUBJECTS)
        t->hashes[t->nsubjects++] = h;
    else
        t->more_subjects = true;
}

/*
 * "1532 malformed packets dropped from 10.0.0.3 in the last 10 s", or with
 * several subjects "from 3 sources (10.0.0.3 and 2 others)", or with more
 * than the table holds "from more than 16 sources (10.0.0.3 and others)".
 */
static void tally_write(struct log_tally *t, uint64_t now_ms, int level, const char *what_plural)
{
    char since[LOG_DURATION_MAX + sizeof " in the last "] = "";
    if (now_ms > t->window_start_ms) {
        char d[LOG_DURATION_MAX];
        log_duration(d, sizeof d, now_ms - t->window_start_ms);
        snprintf(since, sizeof since, " in the last %s", d);
    }
    const char *what = what_plural != NULL ? what_plural : "events";
    if (t->nsubjects == 0)
        log_write(level, "%" PRIu64 " %s%s", t->count, what, since);
    else if (t->more_subjects)
        log_write(level, "%" PRIu64 " %s from more than %u sources (%s and others)%s",
                  t->count, what, t->nsubjects, t->first, since);
    else if (t->nsubjects > 1)
        log_write(level, "%" PRIu64 " %s from %u sources (%s and %u other%s)%s",
                  t->count, what, t->nsubjects, t->first, t->nsubjects - 1,
                  t->nsubjects - 1 == 1 ? "" : "s", since);
    else
        log_write(level, "%" PRIu64 " %s from %s%s", t->count, what, t->first, since);
}

static void tally_reset(struct log_tally *t)
{
    t->count = 0;
    t->nsubjects = 0;
    t->more_subjects = false;
    t->have_last = false;
    t->first[0] = '\0';
}

void log_tally(struct log_tally *t, uint64_t interval_ms, uint64_t now_ms, int level,
               const char *what_plural, const char *subject)
{
    if (log_current_level < level)
        return;
    if (t->count > 0 && (now_ms < t->window_start_ms || now_ms - t->window_start_ms >= interval_ms)) {
        tally_write(t, now_ms, level, what_plural);
        tally_reset(t);
    }
    if (t->count == 0)
        t->window_start_ms = now_ms;
    t->count++;
    if (subject != NULL)
        tally_subject(t, subject);
    if (interval_ms == 0) {
        /* no rate limit: every event has its line */
        tally_write(t, now_ms, level, what_plural);
        tally_reset(t);
    }
}

void log_tally_flush(struct log_tally *t, uint64_t now_ms, int level, const char *what_plural)
{
    if (t->count == 0)
        return;
    if (log_current_level >= level)
        tally_write(t, now_ms, level, what_plural);
    tally_reset(t);
}

void log_tally_tick(struct log_tally *t, uint64_t interval_ms, uint64_t now_ms, int level, const char *what_plural)
{
    if (t->count > 0 && now_ms - t->window_start_ms >= interval_ms)
        log_tally_flush(t, now_ms, level, what_plural);
}
