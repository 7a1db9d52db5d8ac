/*
 * lockstat.h - the locks heprouter takes, counted per thread.
 *
 * Workers scale only as far as they share nothing: every lock one can
 * take is taken through lockstat_lock(), which counts it in a counter of
 * the calling thread (a thread-local increment, no shared line touched),
 * by the lock's kind.  A worker logs its counts at exit (log level debug)
 * beside the packets it read, and a test checks the locks per packet
 * (tests/integration/test_workers.sh): the store's stripes, the dedup
 * window's stripes when a destination deduplicates, and nothing else on
 * the packet path.
 */
#ifndef HEPROUTER_LOCKSTAT_H
#define HEPROUTER_LOCKSTAT_H

#include <pthread.h>
#include <stdint.h>

/* The kinds of lock, and their names in the log line. */
#define LOCKSTAT_KINDS(X)                                                      \
    X(STORE, "store")           /* a memory store stripe */                    \
    X(DEDUP, "dedup")           /* a dedup window stripe (a spin lock) */      \
    X(SNAPSHOT, "snapshot")     /* a worker's published counters */           \
    X(APP, "app")               /* the main thread's state */                  \
    X(TAP, "tap")               /* a worker's pending taps */                  \
    X(SPOOL, "spool")           /* a spool's writer thread */                  \
    X(RESOLVE, "resolve")       /* the DNS resolver thread */                  \
    X(REDIS, "redis")           /* a Redis store command's answer */

#define LOCKSTAT_ID(id, name) LOCKSTAT_##id,
enum lockstat_kind { LOCKSTAT_KINDS(LOCKSTAT_ID) LOCKSTAT_KIND_COUNT };
#undef LOCKSTAT_ID

extern _Thread_local uint64_t lockstat_taken[LOCKSTAT_KIND_COUNT];

static inline void lockstat_count(enum lockstat_kind kind)
{
    lockstat_taken[kind]++;
}

static inline void lockstat_lock(pthread_mutex_t *m, enum lockstat_kind kind)
{
    lockstat_count(kind);
    pthread_mutex_lock(m);
}

/* lockstat_format()'s text at most: every name, '=' and 20 digits, and spaces */
#define LOCKSTAT_TEXT_MAX 256

/* "store=N dedup=N ..." of the calling thread's counts into buf (cut at len); returns buf. */
char *lockstat_format(char *buf, size_t len);

#endif
