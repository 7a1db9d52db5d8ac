/*
 * spool_writer.h - the thread that writes a spool's segment files.
 *
 * The spool (spool.h) runs on its worker's thread, which routes packets
 * and must never wait for a disk: a write() into the page cache is quick,
 * but one that meets the kernel's dirty-page throttling, or a slow or
 * stalled file system, sleeps.  So the worker hands whole batches of
 * records to this thread, which creates, appends to and deletes the
 * segment files, in the order given, and hands each job back with its
 * result; the worker accounts for it later (spool_writer_done()).
 */
#ifndef HEPROUTER_SPOOL_WRITER_H
#define HEPROUTER_SPOOL_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A segment file's name: eight hexadecimal digits of its sequence number and this. */
#define SPOOL_SEGMENT_SUFFIX ".seg"
#define SPOOL_SEGMENT_NAME_MAX 32

enum spool_job_kind {
    SPOOL_JOB_APPEND = 0,           /* data to segment seq (created first, header and all, when created_s != 0) */
    SPOOL_JOB_UNLINK,               /* delete segment seq */
};

struct spool_job {
    struct spool_job *next;
    enum spool_job_kind kind;
    uint32_t seq;
    uint64_t created_s;             /* APPEND: nonzero for the segment's first job */
    uint8_t *data;
    size_t len, cap;
    uint64_t records;               /* what data holds, for the caller's accounting */
    int err;                        /* the result: 0 or an errno; nothing of data is on disk then */
};

struct spool_writer;

/* Starts the thread writing in dir; NULL (errno set) when it cannot. */
struct spool_writer *spool_writer_start(const char *dir);

/* Queues job; the thread owns it until spool_writer_done() gives it back. */
void spool_writer_submit(struct spool_writer *w, struct spool_job *job);

/* The jobs finished since the last call, in order (a list through next); NULL: none. */
struct spool_job *spool_writer_done(struct spool_writer *w);

/* Bytes of APPEND jobs submitted and not yet given back. */
size_t spool_writer_pending(struct spool_writer *w);

/* Jobs of any kind submitted and not yet given back. */
size_t spool_writer_jobs(struct spool_writer *w);

/* Writes what is queued and stops the thread; spool_writer_done() then gives back the last jobs. */
void spool_writer_stop(struct spool_writer *w);

/* Frees a stopped writer, and the finished jobs not taken back. */
void spool_writer_free(struct spool_writer *w);

/* write() until all of len bytes are written: 0, or an errno (ENOSPC for a write of 0). */
int spool_write_all(int fd, const uint8_t *p, size_t len);

/* Segment seq's path in dir (PATH_MAX bytes; empty when too long). */
void spool_segment_path(char *out, const char *dir, uint32_t seq);

#endif
