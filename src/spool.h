/*
 * spool.h - a destination's disk spool: what its stream targets cannot
 * take waits here, survives a restart, and is replayed in order.
 *
 * One spool per destination and worker, in DIR/w<worker>/ (a lock file
 * keeps a second process out): append-only segment files (segment.h) named
 * by a hexadecimal sequence number, and a cursor file saying how far the
 * packets were written to a socket ("acked") and how far they were handed
 * to a TCP queue ("queued").  Appends are gathered per batch and handed
 * to a writer thread (spool_writer.h) at spool_flush(), one write() per
 * batch, so the worker never waits for the disk; the reader replays what
 * the writer reported written.  Nothing is fsync'ed: a process crash
 * (kill -9) loses nothing the kernel was given, a power cut may.  When the
 * writer is behind by spool.max_unwritten bytes, new batches are dropped
 * (slow_disk) rather than waited for.  At start
 * the segments are scanned, the acked ones deleted, and replay resumes at
 * the acked position; what lies between acked and queued may already have
 * been sent, and is counted as resent when it is replayed again.
 *
 * What a TCP queue still holds at exit goes to segment 0, the front,
 * replayed first at the next start (it has its own acked and queued
 * positions in the cursor).
 *
 * A segment holds about max_bytes/16 per worker (between SPOOL_SEGMENT_MIN
 * and SPOOL_SEGMENT_MAX bytes); past max_bytes (shared evenly by the
 * workers) the oldest segment goes, and so does every segment last written
 * more than max_age ago; their unreplayed packets are counted as dropped.
 * The spool opens its files at first use, on its worker's thread (after
 * the privilege drop).  No libev: the destination drives it.
 */
#ifndef HEPROUTER_SPOOL_H
#define HEPROUTER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "segment.h"

#define SPOOL_SEGMENT_MIN (64u * 1024u)
#define SPOOL_SEGMENT_MAX (64u * 1024u * 1024u)
#define SPOOL_SEGMENTS_PER_SPOOL 16u
#define SPOOL_DRAIN_POLL_MS 1u

/* Why packets left the spool without being sent: X(name, label) */
#define SPOOL_DROPS(X)                                                                                       \
    X(SPOOL_DROP_MAX_BYTES, "max_bytes")     /* oldest segment deleted to stay under max_bytes */          \
    X(SPOOL_DROP_MAX_AGE, "max_age")         /* segment last written more than max_age ago */              \
    X(SPOOL_DROP_DISK_FULL, "disk_full")     /* ENOSPC / EDQUOT: not written */                            \
    X(SPOOL_DROP_WRITE_ERROR, "write_error") /* any other failure to write (or open the directory) */   \
    X(SPOOL_DROP_SLOW_DISK, "slow_disk")     /* the writer thread is behind by spool.max_unwritten */

#define SPOOL_DROP_ENUM(name, label) name,
enum spool_drop { SPOOL_DROPS(SPOOL_DROP_ENUM) SPOOL_DROP_COUNT };
#undef SPOOL_DROP_ENUM

const char *spool_drop_name(unsigned reason);

/* Cumulative counts and the state now; the destination turns them into metrics. */
struct spool_stats {
    uint64_t written;               /* packets appended (the dropped counts say which were not kept) */
    uint64_t replayed;              /* packets handed back to a target */
    uint64_t resent;                /* of those, replayed after a restart that may have gone out before */
    uint64_t damaged;               /* damaged or torn stretches skipped */
    uint64_t dropped[SPOOL_DROP_COUNT];
    uint64_t packets;               /* waiting now */
    uint64_t bytes;                 /* on disk now */
    uint64_t oldest_s;              /* Unix time the oldest waiting segment was started; 0: none */
};

struct spool;

/*
 * A spool for destination name as c says, for worker of nworkers (worker 0
 * also takes over what workers >= nworkers left behind).  Nothing is
 * opened yet.  NULL on ENOMEM.
 */
struct spool *spool_new(const char *name, const struct conf_spool *c, unsigned worker, unsigned nworkers,
                        uint64_t log_interval_ms);

/* Writes what is buffered, saves the cursor, closes the files. */
void spool_free(struct spool *s);

/* Appends one record (gathered until spool_flush()); counted as dropped when it cannot be kept. */
void spool_append(struct spool *s, const struct segment_record *r);

/*
 * At exit: keeps r in the front segment, which the next run replays before
 * every other one (what a TCP queue still held is older than what the spool
 * kept).  Written at once, one write() per record.
 */
void spool_keep_first(struct spool *s, const struct segment_record *r);

/* Hands the records gathered to the writer thread, and takes back what it finished. */
void spool_flush(struct spool *s);

/*
 * Hands over what is gathered and waits until the writer has written
 * everything it holds (polling every SPOOL_DRAIN_POLL_MS).  For the unit
 * tests: the packet path never calls it.
 */
void spool_drain(struct spool *s);

/* true when packets wait (or are buffered). */
bool spool_waiting(const struct spool *s);

/*
 * true when a packet of the call whose hash is call_hash waits for target
 * (an index, or SEGMENT_ANY_TARGET): the call's next packet for it goes
 * behind.  Also true for every call while packets kept at the last stop
 * (without their call) wait.
 */
bool spool_holds_call(const struct spool *s, uint64_t call_hash, unsigned target);

/*
 * The next packet to replay, in order: true and *r (valid until the next
 * spool_* call), or false when nothing can be read now.
 */
bool spool_peek(struct spool *s, struct segment_record *r);

/* The packet spool_peek() returned was queued for a target; returns its position (for spool_ack()). */
uint64_t spool_consume(struct spool *s);

/*
 * Every packet up to position pos was written to a socket: segments
 * behind it are deleted, and the cursor saved.
 */
void spool_ack(struct spool *s, uint64_t pos);

/* Deletes segments older than max_age; call it now and then. */
void spool_expire(struct spool *s);

const struct spool_stats *spool_stats(const struct spool *s);

#endif
