/*
 * spool_writer.c - the thread that writes a spool's segment files (see
 * spool_writer.h).
 *
 * Two lists under one mutex: jobs to do (the worker appends, the thread
 * takes from the head) and jobs done (the thread appends, the worker takes
 * them all).  The thread keeps the segment it last wrote open.  A write
 * that fails part way is cut back to where the job began, so a segment
 * holds whole records only, whatever the error.
 */
#include "spool_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lockstat.h"
#include "segment.h"

#define SPOOL_SEG_FILE_MODE 0600

struct spool_job_list {
    struct spool_job *head;
    struct spool_job **tail;
};

struct spool_writer {
    char *dir;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct spool_job_list todo;
    struct spool_job_list done;
    bool stop;
    size_t pending;                 /* the worker's count: APPEND bytes submitted, not yet taken back */
    size_t jobs;                    /* the worker's count: jobs submitted, not yet taken back */
    int fd;                         /* thread only: the segment last written */
    uint32_t fd_seq;
};

void spool_segment_path(char *out, const char *dir, uint32_t seq)
{
    int n = snprintf(out, PATH_MAX, "%s/%08x" SPOOL_SEGMENT_SUFFIX, dir, (unsigned)seq);
    if (n < 0 || n >= PATH_MAX)
        out[0] = '\0';
}

static void list_init(struct spool_job_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static void list_push(struct spool_job_list *l, struct spool_job *job)
{
    job->next = NULL;
    *l->tail = job;
    l->tail = &job->next;
}

static void close_current(struct spool_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

int spool_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return n < 0 ? errno : ENOSPC;
        }
    }
    return 0;
}

static int do_append(struct spool_writer *w, const struct spool_job *job)
{
    if (w->fd < 0 || w->fd_seq != job->seq || job->created_s != 0) {
        close_current(w);
        char path[PATH_MAX];
        spool_segment_path(path, w->dir, job->seq);
        /* only a segment's first job creates it: a later one never makes a file without a header */
        int flags = O_WRONLY | O_APPEND | O_CLOEXEC | (job->created_s != 0 ? O_CREAT | O_TRUNC : 0);
        w->fd = open(path, flags, SPOOL_SEG_FILE_MODE);
        if (w->fd < 0)
            return errno;
        w->fd_seq = job->seq;
        if (job->created_s != 0) {
            uint8_t hdr[SEGMENT_HEADER_LEN];
            segment_header_write(hdr, job->created_s);
            int err = spool_write_all(w->fd, hdr, sizeof hdr);
            if (err != 0) {
                close_current(w);
                unlink(path);
                return err;
            }
        }
    }
    struct stat st;
    off_t start = fstat(w->fd, &st) == 0 ? st.st_size : -1;
    int err = spool_write_all(w->fd, job->data, job->len);
    if (err != 0 && job->created_s != 0) {
        /* a segment whose first records failed does not exist: the later jobs for it fail too */
        char path[PATH_MAX];
        spool_segment_path(path, w->dir, job->seq);
        close_current(w);
        unlink(path);
    } else if (err != 0 && start >= 0 && ftruncate(w->fd, start) != 0) {
        close_current(w);           /* part of a record on disk would read as damage: cut it off */
    }
    return err;
}

static void *writer_main(void *arg)
{
    struct spool_writer *w = arg;
    pthread_setname_np(pthread_self(), "spool writer");    /* heprouter(8), THREADS */
    lockstat_lock(&w->mu, LOCKSTAT_SPOOL);
    for (;;) {
        while (w->todo.head == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        struct spool_job *job = w->todo.head;
        if (job == NULL)
            break;                  /* stopping, and nothing left to write */
        w->todo.head = job->next;
        if (w->todo.head == NULL)
            w->todo.tail = &w->todo.head;
        pthread_mutex_unlock(&w->mu);
        if (job->kind == SPOOL_JOB_UNLINK) {
            char path[PATH_MAX];
            spool_segment_path(path, w->dir, job->seq);
            if (w->fd_seq == job->seq)
                close_current(w);
            job->err = unlink(path) == 0 || errno == ENOENT ? 0 : errno;
        } else {
            job->err = do_append(w, job);
        }
        lockstat_lock(&w->mu, LOCKSTAT_SPOOL);
        list_push(&w->done, job);
    }
    pthread_mutex_unlock(&w->mu);
    close_current(w);
    return NULL;
}

struct spool_writer *spool_writer_start(const char *dir)
{
    struct spool_writer *w = calloc(1, sizeof *w);
    if (w == NULL || (w->dir = strdup(dir)) == NULL) {
        free(w);
        errno = ENOMEM;
        return NULL;
    }
    w->fd = -1;
    list_init(&w->todo);
    list_init(&w->done);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int err = pthread_create(&w->thread, NULL, writer_main, w);
    if (err != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w->dir);
        free(w);
        errno = err;
        return NULL;
    }
    return w;
}

void spool_writer_submit(struct spool_writer *w, struct spool_job *job)
{
    if (job->kind == SPOOL_JOB_APPEND)
        w->pending += job->len;
    w->jobs++;
    lockstat_lock(&w->mu, LOCKSTAT_SPOOL);
    list_push(&w->todo, job);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

struct spool_job *spool_writer_done(struct spool_writer *w)
{
    lockstat_lock(&w->mu, LOCKSTAT_SPOOL);
    struct spool_job *jobs = w->done.head;
    list_init(&w->done);
    pthread_mutex_unlock(&w->mu);
    for (struct spool_job *j = jobs; j != NULL; j = j->next) {
        if (j->kind == SPOOL_JOB_APPEND)
            w->pending -= j->len;
        w->jobs--;
    }
    return jobs;
}

size_t spool_writer_pending(struct spool_writer *w)
{
    return w->pending;
}

size_t spool_writer_jobs(struct spool_writer *w)
{
    return w->jobs;
}

void spool_writer_stop(struct spool_writer *w)
{
    lockstat_lock(&w->mu, LOCKSTAT_SPOOL);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
}

void spool_writer_free(struct spool_writer *w)
{
    if (w == NULL)
        return;
    for (struct spool_job *j = w->done.head, *next; j != NULL; j = next) {
        next = j->next;
        free(j->data);
        free(j);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->dir);
    free(w);
}
