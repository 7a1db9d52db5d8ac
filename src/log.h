/*
 * log.h - leveled logging to stderr or syslog.
 *
 * stderr is systemd-friendly: no timestamps, which journald adds, and a
 * priority prefix journald understands.  syslog goes through syslog(3) with
 * the level's priority and the configured facility.
 *
 * The macros test the level before formatting, so a disabled debug line
 * costs one comparison.  Two helpers keep the packet path from flooding the
 * log: log_ratelimited() writes at most one line per key and interval and
 * says how many more like it there were; a log_tally counts events (and
 * their senders) and writes one summary line per interval.
 */
#ifndef HEPROUTER_LOG_H
#define HEPROUTER_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The levels, most severe first: id, the name log.level takes, and the
 * syslog priority prefix (sd-daemon(3)) used when stderr is the journal.
 */
#define LOG_LEVELS(X)                   \
    X(ERROR, "error", "<3>")            \
    X(WARN, "warn", "<4>")              \
    X(INFO, "info", "<6>")              \
    X(DEBUG, "debug", "<7>")

enum log_level {
#define LOG_LEVEL_ID(id, name, prefix) LOG_LEVEL_##id,
    LOG_LEVELS(LOG_LEVEL_ID)
#undef LOG_LEVEL_ID
    LOG_LEVEL_COUNT
};

/*
 * Where lines go.  The values are those of the configuration's log.target
 * (CONF_LOG_STDERR = 0, CONF_LOG_SYSLOG = 1), so conf->log_target can be
 * passed to log_open() as it is.
 */
enum log_target {
    LOG_TARGET_STDERR = 0,
    LOG_TARGET_SYSLOG = 1,
};

/*
 * The least important level written.  Read without a lock by every thread
 * (an int, written whole by log_set_level() from the main thread): a
 * reload that changes it takes effect for each thread within a few lines.
 */
extern int log_current_level;

void log_set_level(int level);

/*
 * Sends the following lines to target: LOG_TARGET_STDERR, or
 * LOG_TARGET_SYSLOG with facility (a <syslog.h> LOG_DAEMON, LOG_USER,
 * LOG_LOCAL0..7) and ident (the program name syslog puts before the pid;
 * copied, NULL for "heprouter").  Call it from one thread at a time (start
 * and reload, in the main thread); other threads may log meanwhile: each of
 * their lines goes whole to the old target or to the new one, never lost
 * half-way nor crashing.  An unknown target is taken as stderr.
 */
void log_open(int target, int facility, const char *ident);

/* Back to stderr, and closes the syslog connection if one was open. */
void log_close(void);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes one line made of the formatted head (bounded like any line) and
 * then body[0..body_len) whole, however long: for lines such as the
 * counters, whose length grows with the configuration.  Still one write per
 * line (one syslog message), so that lines from several threads do not
 * interleave.  Checks the level itself.  A syslog daemon may cut a long
 * message at its own limit (rsyslog: 8 KiB by default).
 */
void log_write_body(int level, const char *body, size_t body_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * A duration worded for an operator, the one wording every log line uses:
 * "250 ms" below a second, "2.5 s" below 10 s, "10 s" below two minutes,
 * "5 min" below two hours, then "3 h".  Writes at most size bytes (NUL
 * included) and returns buf.
 */
char *log_duration(char *buf, size_t size, uint64_t ms);

/*
 * State for one rate-limited message: at most one line per interval_ms; the
 * next line that gets through ends with "(and N more like it in the last
 * 10 s)", the time since the previous line.  Zeroed = nothing logged yet.
 */
struct log_limit {
    uint64_t last_ms;               /* when the last line was written */
    uint64_t suppressed;            /* lines not written since */
    bool written;                   /* last_ms is set */
};

/* Logs through *lim at most once per interval_ms (monotonic clock). */
void log_ratelimited(struct log_limit *lim, uint64_t interval_ms, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* log_ratelimited() at a given monotonic time now_ms (for callers that have read the clock, and tests). */
void log_ratelimited_at(struct log_limit *lim, uint64_t interval_ms, uint64_t now_ms, int level,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Longest subject kept whole: an IPv6 address with brackets and port fits. */
#define LOG_TALLY_SUBJECT_MAX 64
/* Distinct subjects told apart per window; beyond, a line says "more than". */
#define LOG_TALLY_SUBJECTS 16

/*
 * A tally counts events of one kind (malformed packets, refused
 * connections, ...) and writes one line per window of interval_ms:
 *
 *   1532 malformed packets dropped from 10.0.0.3 in the last 10 s
 *   1532 malformed packets dropped from 3 sources (10.0.0.3 and 2 others) in the last 10 s
 *
 * Cheap per event: a level test, a counter, a hash of the subject compared
 * with the previous one's (and, when it differs, a look in a table of
 * LOG_TALLY_SUBJECTS hashes); nothing is formatted and only the window's
 * first subject is copied.  Not locked: give each worker thread its own.
 * Zeroed = empty.
 */
struct log_tally {
    uint64_t window_start_ms;       /* first event of the window */
    uint64_t count;                 /* events in the window; 0: no window open */
    uint64_t last_hash;             /* hash of the latest event's subject */
    uint64_t hashes[LOG_TALLY_SUBJECTS];    /* distinct subjects seen in the window */
    unsigned nsubjects;             /* used entries of hashes */
    bool more_subjects;             /* some did not fit in hashes */
    bool have_last;                 /* last_hash is set */
    char first[LOG_TALLY_SUBJECT_MAX];      /* the window's first subject, "" if none yet */
};

/*
 * Counts one event about subject (a source address such as "10.0.0.3"; may
 * be NULL: not from anyone in particular).  When the window open for
 * interval_ms (monotonic now_ms) is over, first writes its line at level:
 * "<count> <what_plural> from ... in the last 10 s", so what_plural reads
 * after a number ("malformed packets dropped").  interval_ms 0 (no rate
 * limit): a line per event, without "in the last".  Does nothing when level
 * is not logged.
 */
void log_tally(struct log_tally *t, uint64_t interval_ms, uint64_t now_ms, int level,
               const char *what_plural, const char *subject);

/*
 * Writes what is pending, whatever the window's age, and empties the tally:
 * called from a timer (every interval) so that the last window is not lost
 * when the events stop, and at exit.
 */
void log_tally_flush(struct log_tally *t, uint64_t now_ms, int level, const char *what_plural);

/* log_tally_flush() once the open window is interval_ms old: from a periodic timer. */
void log_tally_tick(struct log_tally *t, uint64_t interval_ms, uint64_t now_ms, int level, const char *what_plural);


#define log_error(...) do { if (log_current_level >= LOG_LEVEL_ERROR) log_write(LOG_LEVEL_ERROR, __VA_ARGS__); } while (0)
#define log_warn(...) do { if (log_current_level >= LOG_LEVEL_WARN) log_write(LOG_LEVEL_WARN, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_current_level >= LOG_LEVEL_INFO) log_write(LOG_LEVEL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_current_level >= LOG_LEVEL_DEBUG) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
