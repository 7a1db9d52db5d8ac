/*
 * log.h - leveled logging to stderr (systemd-friendly: no timestamps, which
 * journald adds, and a priority prefix journald understands).
 *
 * The macros test the level before formatting, so a disabled debug line
 * costs one comparison.  log_ratelimited() keeps the packet path from
 * flooding the log: at most one line per key and interval, with a count of
 * what was suppressed.
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

extern int log_current_level;

void log_set_level(int level);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes one line made of the formatted head (bounded like any line) and
 * then body[0..body_len) whole, however long: for lines such as the
 * counters, whose length grows with the configuration.  Still one write per
 * line, so that lines from several threads do not interleave.  Checks the
 * level itself.
 */
void log_write_body(int level, const char *body, size_t body_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * State for one rate-limited message: at most one line per interval_ms; the
 * next line that gets through says how many were suppressed.
 */
struct log_limit {
    uint64_t next_ms;
    uint64_t suppressed;
};

/* Logs through *lim at most once per interval_ms (monotonic clock). */
void log_ratelimited(struct log_limit *lim, uint64_t interval_ms, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));


#define log_error(...) do { if (log_current_level >= LOG_LEVEL_ERROR) log_write(LOG_LEVEL_ERROR, __VA_ARGS__); } while (0)
#define log_warn(...) do { if (log_current_level >= LOG_LEVEL_WARN) log_write(LOG_LEVEL_WARN, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_current_level >= LOG_LEVEL_INFO) log_write(LOG_LEVEL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_current_level >= LOG_LEVEL_DEBUG) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
