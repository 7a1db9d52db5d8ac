/*
 * spool.c - a destination's disk spool (see spool.h).
 *
 * Positions: a record's position is (segment sequence << 32 | the file
 * offset just past it), so positions grow with the order of the records
 * across segments.  The reader keeps one buffer of the current segment,
 * refilled with pread(); the writer keeps one buffer of appended records,
 * written at spool_flush().  Both run on the destination's worker thread.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "hash.h"
#include "clock.h"
#include "hep.h"
#include "log.h"
#include "spool_writer.h"

#define SPOOL_DIR_MODE 0700
#define SPOOL_FILE_MODE 0600
#define SPOOL_LOCK_NAME "lock"
#define SPOOL_CURSOR_NAME "cursor"
#define SPOOL_CURSOR_MAGIC "HRCURSR1"
/* magic, then acked and queued of each track (be64 each), then the CRC32C of those */
#define SPOOL_CURSOR_LEN (8 + 2 * 8 * SPOOL_TRACKS + 4)
/*
 * Segment 0 is the front: what a TCP queue still held when heprouter
 * stopped (spool_keep_first()), replayed before every other segment.  It
 * has its own track of acked and queued positions; the other segments,
 * numbered from 1, share the main one.
 */
#define SPOOL_FRONT_SEQ 0u
enum { SPOOL_TRACK_MAIN, SPOOL_TRACK_FRONT, SPOOL_TRACKS };
#define SPOOL_POS_SHIFT 32
/* buffers hold a few maximal records: one read or write each */
#define SPOOL_BUF_BYTES (4u * (SEGMENT_RECORD_HEADER_LEN + HEP3_MAX_LEN))
/*
 * The calls with packets waiting (their 64-bit hashes, each with a count):
 * a live packet of such a call goes behind them into the spool, so a
 * call's packets keep their order, while every other call's go straight
 * on.  An open-addressing table, grown (and rid of calls whose count fell
 * to 0) at 3/4 full, emptied when the spool is; a count that cannot be
 * kept (ENOMEM) makes every call count as waiting until then, which only
 * sends live packets through the spool, in order.
 */
#define SPOOL_CALLS_MIN 1024u
#define SPOOL_CALLS_FILL_NUM 3u
#define SPOOL_CALLS_FILL_DEN 4u
#define SPOOL_CALL_EMPTY 0u         /* no call: a hash of 0 is taken as 1 */

struct spool_calls {
    uint64_t *hash;
    uint32_t *count;
    size_t cap;                     /* a power of 2 */
    size_t used;                    /* slots with a hash, counts of 0 included */
    bool all;                       /* out of memory: every call counts as waiting */
};

struct spool_seg {
    uint32_t seq;
    uint64_t size;                  /* bytes of the file once the writer has written all it was given */
    uint64_t on_disk;               /* bytes the writer reported written: what the reader may read */
    uint64_t waiting;               /* records not yet replayed */
    uint64_t created_s;
    uint64_t written_s;             /* last append */
    unsigned jobs;                  /* jobs handed to the writer, not yet taken back */
    bool unborn;                    /* its first job (which creates the file) is not handed over yet */
};

struct spool {
    char *name;                     /* the destination, for logs */
    char *base;                     /* DIR */
    char *dir;                      /* DIR/w<worker> */
    unsigned worker, nworkers;
    uint64_t max_bytes;             /* this worker's share */
    uint64_t max_unwritten;         /* bytes the writer may have in hand */
    uint64_t max_age_s;
    uint64_t seg_max;
    uint64_t log_interval_ms;
    bool opened;
    bool closing;                   /* spool_free(): the writer is stopping or stopped */
    bool broken;                    /* the directory could not be opened: every append is dropped */
    int lock_fd;
    int cursor_fd;

    struct spool_seg *segs;         /* oldest first; the last one is written to */
    size_t nsegs, segs_cap;
    uint32_t next_seq;

    struct spool_writer *writer;    /* the thread that writes the segments */
    bool active;                    /* the last segment takes appends */
    struct spool_job *fill;         /* records appended since the last spool_flush() */
    struct spool_job *spare;        /* jobs given back, for reuse */

    int rfd;                        /* the segment being replayed */
    uint32_t rseq;
    uint64_t roff;                  /* file offset of rbuf[rstart] */
    uint8_t *rbuf;
    size_t rstart, rlen;
    size_t peeked;                  /* bytes of the record spool_peek() returned; 0: none */
    bool in_damage;                 /* skipping a damaged stretch, already counted */

    /* per track: written to a socket, handed to a queue, as saved in the cursor */
    uint64_t acked[SPOOL_TRACKS], queued[SPOOL_TRACKS];
    uint64_t saved_acked[SPOOL_TRACKS], saved_queued[SPOOL_TRACKS];
    uint64_t resent_until[SPOOL_TRACKS];    /* replayed up to here: maybe sent before a restart */
    struct spool_calls calls;
    struct spool_stats st;
    struct log_limit error_limit;
    struct log_limit damage_limit;
};

#define SPOOL_DROP_LABEL(name, label) label,
static const char *const spool_drop_names[] = { SPOOL_DROPS(SPOOL_DROP_LABEL) };
#undef SPOOL_DROP_LABEL

const char *spool_drop_name(unsigned reason)
{
    return reason < SPOOL_DROP_COUNT ? spool_drop_names[reason] : "?";
}

static uint64_t pos_make(uint32_t seq, uint64_t off)
{
    return (uint64_t)seq << SPOOL_POS_SHIFT | off;
}

static uint32_t pos_seq(uint64_t pos)
{
    return (uint32_t)(pos >> SPOOL_POS_SHIFT);
}

static uint64_t pos_off(uint64_t pos)
{
    return pos & ((UINT64_C(1) << SPOOL_POS_SHIFT) - 1);
}

static unsigned track_of(uint32_t seq)
{
    return seq == SPOOL_FRONT_SEQ ? SPOOL_TRACK_FRONT : SPOOL_TRACK_MAIN;
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

/* The slot of hash h in a table of cap slots: where it is, or the empty one where it would go. */
static size_t calls_slot(const uint64_t *table, size_t cap, uint64_t h)
{
    size_t i = (size_t)hash_fmix64(h) & (cap - 1);
    while (table[i] != SPOOL_CALL_EMPTY && table[i] != h)
        i = (i + 1) & (cap - 1);
    return i;
}

/*
 * A call is waiting for one target: with balance: all, a target that is
 * down keeps its own copies, and the other targets' copies go on.
 */
#define SPOOL_CALL_TARGET_SHIFT 48

static uint64_t calls_key(uint64_t call_hash, unsigned target)
{
    uint64_t k = call_hash ^ (uint64_t)target << SPOOL_CALL_TARGET_SHIFT;
    return k != SPOOL_CALL_EMPTY ? k : SPOOL_CALL_EMPTY + 1;
}

static void calls_clear(struct spool_calls *c)
{
    free(c->hash);
    free(c->count);
    memset(c, 0, sizeof *c);
}

/* Rebuilds the table with room for twice its live calls; false on ENOMEM. */
static bool calls_grow(struct spool_calls *c)
{
    size_t live = 0;
    for (size_t i = 0; i < c->cap; i++)
        live += c->hash[i] != SPOOL_CALL_EMPTY && c->count[i] > 0;
    size_t cap = SPOOL_CALLS_MIN;
    while (cap * SPOOL_CALLS_FILL_NUM < (live + 1) * 2 * SPOOL_CALLS_FILL_DEN)
        cap *= 2;
    uint64_t *hash = calloc(cap, sizeof *hash);
    uint32_t *count = calloc(cap, sizeof *count);
    if (hash == NULL || count == NULL) {
        free(hash);
        free(count);
        return false;
    }
    for (size_t i = 0; i < c->cap; i++)
        if (c->hash[i] != SPOOL_CALL_EMPTY && c->count[i] > 0) {
            size_t j = calls_slot(hash, cap, c->hash[i]);
            hash[j] = c->hash[i];
            count[j] = c->count[i];
        }
    free(c->hash);
    free(c->count);
    c->hash = hash;
    c->count = count;
    c->cap = cap;
    c->used = live;
    return true;
}

static void calls_add(struct spool_calls *c, uint64_t call_hash, unsigned target)
{
    if (c->all)
        return;
    if ((c->used + 1) * SPOOL_CALLS_FILL_DEN > c->cap * SPOOL_CALLS_FILL_NUM && !calls_grow(c)) {
        calls_clear(c);
        c->all = true;
        return;
    }
    uint64_t h = calls_key(call_hash, target);
    size_t i = calls_slot(c->hash, c->cap, h);
    if (c->hash[i] == SPOOL_CALL_EMPTY) {
        c->hash[i] = h;
        c->used++;
    }
    c->count[i]++;
}

static void calls_sub(struct spool_calls *c, uint64_t call_hash, unsigned target)
{
    if (c->cap == 0)
        return;
    size_t i = calls_slot(c->hash, c->cap, calls_key(call_hash, target));
    if (c->hash[i] != SPOOL_CALL_EMPTY && c->count[i] > 0)
        c->count[i]--;
}

static bool calls_has(const struct spool_calls *c, uint64_t call_hash, unsigned target)
{
    if (c->all)
        return true;
    if (c->cap == 0)
        return false;
    size_t i = calls_slot(c->hash, c->cap, calls_key(call_hash, target));
    return c->hash[i] != SPOOL_CALL_EMPTY && c->count[i] > 0;
}

/* dir/name in out (PATH_MAX bytes); a path too long comes out empty, and opening it fails. */
static void path_join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX)
        out[0] = '\0';
}

static void seg_path(const struct spool *s, uint32_t seq, char *out)
{
    spool_segment_path(out, s->dir, seq);
}

struct spool *spool_new(const char *name, const struct conf_spool *c, unsigned worker, unsigned nworkers,
                        uint64_t log_interval_ms)
{
    struct spool *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->name = strdup(name);
    s->base = strdup(c->dir);
    s->rbuf = malloc(SPOOL_BUF_BYTES);
    if (s->name == NULL || s->base == NULL || s->rbuf == NULL ||
        asprintf(&s->dir, "%s/w%u", c->dir, worker) < 0) {
        s->dir = NULL;
        spool_free(s);
        return NULL;
    }
    s->worker = worker;
    s->nworkers = nworkers > 0 ? nworkers : 1;
    s->max_bytes = c->max_bytes / s->nworkers;
    s->max_unwritten = c->max_unwritten;
    s->max_age_s = c->max_age_ms / CLOCK_MS_PER_S;
    s->seg_max = s->max_bytes / SPOOL_SEGMENTS_PER_SPOOL;
    if (s->seg_max < SPOOL_SEGMENT_MIN)
        s->seg_max = SPOOL_SEGMENT_MIN;
    if (s->seg_max > SPOOL_SEGMENT_MAX)
        s->seg_max = SPOOL_SEGMENT_MAX;
    s->log_interval_ms = log_interval_ms;
    s->lock_fd = s->cursor_fd = s->rfd = -1;
    return s;
}

/* ---- segments ---- */

static struct spool_seg *seg_find(struct spool *s, uint32_t seq)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].seq == seq)
            return &s->segs[i];
    return NULL;
}

static struct spool_seg *seg_push(struct spool *s, uint32_t seq)
{
    if (s->nsegs == s->segs_cap) {
        size_t cap = s->segs_cap > 0 ? 2 * s->segs_cap : SPOOL_SEGMENTS_PER_SPOOL;
        struct spool_seg *n = realloc(s->segs, cap * sizeof *n);
        if (n == NULL)
            return NULL;
        s->segs = n;
        s->segs_cap = cap;
    }
    struct spool_seg *g = &s->segs[s->nsegs++];
    memset(g, 0, sizeof *g);
    g->seq = seq;
    if (seq >= s->next_seq)
        s->next_seq = seq + 1;
    return g;
}

static void reader_reset(struct spool *s, uint32_t seq)
{
    if (s->rfd >= 0)
        close(s->rfd);
    s->rfd = -1;
    s->rseq = seq;
    s->roff = SEGMENT_HEADER_LEN;
    /* a segment partly sent before a restart resumes where it was acked */
    uint64_t acked = s->acked[track_of(seq)];
    if (pos_seq(acked) == seq && pos_off(acked) > SEGMENT_HEADER_LEN)
        s->roff = pos_off(acked);
    s->rstart = s->rlen = 0;
    s->peeked = 0;
    s->in_damage = false;
}

static struct spool_job *job_get(struct spool *s)
{
    struct spool_job *j = s->spare;
    if (j != NULL) {
        s->spare = j->next;
    } else if ((j = calloc(1, sizeof *j)) == NULL || (j->data = malloc(SPOOL_BUF_BYTES)) == NULL) {
        free(j);
        return NULL;
    } else {
        j->cap = SPOOL_BUF_BYTES;
    }
    j->next = NULL;
    j->kind = SPOOL_JOB_APPEND;
    j->len = 0;
    j->records = 0;
    j->created_s = 0;
    j->err = 0;
    return j;
}

static void job_put(struct spool *s, struct spool_job *j)
{
    j->next = s->spare;
    s->spare = j;
}

static void jobs_free(struct spool_job *j)
{
    for (struct spool_job *next; j != NULL; j = next) {
        next = j->next;
        free(j->data);
        free(j);
    }
}

/* Deletes segment seq's file, after whatever the writer still has to write to it. */
static void seg_unlink(struct spool *s, uint32_t seq)
{
    char path[PATH_MAX];
    /* the front is written by spool_keep_first(), never by the writer: no order to keep */
    struct spool_job *j = s->writer != NULL && !s->closing && seq != SPOOL_FRONT_SEQ ? job_get(s) : NULL;
    if (j != NULL) {
        j->kind = SPOOL_JOB_UNLINK;
        j->seq = seq;
        spool_writer_submit(s->writer, j);
        return;
    }
    seg_path(s, seq, path);
    if (unlink(path) != 0 && errno != ENOENT)
        log_ratelimited(&s->error_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: spool: cannot delete %s: %s", s->name, path, strerror(errno));
}

/* Deletes segment i (0: the oldest); its waiting packets are counted under reason. */
static void seg_drop(struct spool *s, size_t i, unsigned reason)
{
    struct spool_seg *g = &s->segs[i];
    seg_unlink(s, g->seq);
    if (g->seq == SPOOL_FRONT_SEQ)
        s->acked[SPOOL_TRACK_FRONT] = s->queued[SPOOL_TRACK_FRONT] = s->resent_until[SPOOL_TRACK_FRONT] = 0;
    if (reason < SPOOL_DROP_COUNT && g->waiting > 0) {
        s->st.dropped[reason] += g->waiting;
        log_ratelimited(&s->error_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: spool: %llu packets dropped (%s)", s->name,
                        (unsigned long long)g->waiting, spool_drop_name(reason));
    }
    s->st.packets -= g->waiting;
    s->st.bytes -= g->size;
    if (i == s->nsegs - 1)
        s->active = false;
    if (s->fill != NULL && s->fill->seq == g->seq) {
        s->fill->len = 0;           /* its records were in g->waiting, counted above */
        s->fill->records = 0;
    }
    if (s->rseq == g->seq)
        reader_reset(s, g->seq + 1);
    memmove(s->segs + i, s->segs + i + 1, (s->nsegs - i - 1) * sizeof *s->segs);
    s->nsegs--;
    if (s->st.packets == 0)
        calls_clear(&s->calls);
}

/* ---- opening: the directory, the lock, the segments left by an earlier run ---- */

static int mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, SPOOL_DIR_MODE) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, SPOOL_DIR_MODE) != 0 && errno != EEXIST ? -1 : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The sequence numbers of dir's segments, sorted; -1 on error. */
static int list_segments(const char *dir, uint32_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned seq;
        char tail[SPOOL_SEGMENT_NAME_MAX];
        if (sscanf(e->d_name, "%8x%31s", &seq, tail) != 2 || strcmp(tail, SPOOL_SEGMENT_SUFFIX) != 0 ||
            strlen(e->d_name) != 8 + strlen(SPOOL_SEGMENT_SUFFIX))
            continue;
        if (*n == cap) {
            cap = cap > 0 ? 2 * cap : SPOOL_SEGMENTS_PER_SPOOL;
            uint32_t *m = realloc(*out, cap * sizeof *m);
            if (m == NULL) {
                closedir(d);
                return -1;
            }
            *out = m;
        }
        (*out)[(*n)++] = seq;
    }
    closedir(d);
    if (*n > 0)
        qsort(*out, *n, sizeof **out, cmp_u32);
    return 0;
}

/* Reads a cursor file: acked and queued positions per track; false when there is no valid one. */
static bool cursor_parse(int fd, uint64_t acked[SPOOL_TRACKS], uint64_t queued[SPOOL_TRACKS])
{
    uint8_t b[SPOOL_CURSOR_LEN];
    size_t body = SPOOL_CURSOR_LEN - sizeof(uint32_t), magic = sizeof SPOOL_CURSOR_MAGIC - 1;
    if (fd < 0 || pread(fd, b, sizeof b, 0) != (ssize_t)sizeof b || memcmp(b, SPOOL_CURSOR_MAGIC, magic) != 0 ||
        hash_crc32c(0, b, body) != bytes_get_be32(b + body))
        return false;
    for (unsigned t = 0; t < SPOOL_TRACKS; t++) {
        acked[t] = bytes_get_be64(b + magic + 16 * t);
        queued[t] = bytes_get_be64(b + magic + 16 * t + 8);
    }
    return true;
}

static void cursor_read(struct spool *s)
{
    if (!cursor_parse(s->cursor_fd, s->acked, s->queued))
        return;
    memcpy(s->saved_acked, s->acked, sizeof s->acked);
    memcpy(s->saved_queued, s->queued, sizeof s->queued);
    memcpy(s->resent_until, s->queued, sizeof s->queued);
}

/*
 * Worker 0 takes the segments of workers that no longer exist (fewer
 * workers than the last run), after its own: renamed into its directory.
 * Those their cursor says were sent are deleted; the one they were in the
 * middle of is replayed whole (its first packets a second time).
 */
static void adopt_orphans(struct spool *s, uint32_t *next)
{
    for (unsigned w = s->nworkers;; w++) {
        char odir[PATH_MAX], wname[SPOOL_SEGMENT_NAME_MAX];
        snprintf(wname, sizeof wname, "w%u", w);
        path_join(odir, s->base, wname);
        struct stat stt;
        if (stat(odir, &stt) != 0)
            return;
        uint32_t *seqs;
        size_t n;
        if (list_segments(odir, &seqs, &n) != 0)
            return;
        char f[PATH_MAX];
        path_join(f, odir, SPOOL_CURSOR_NAME);
        uint64_t acked[SPOOL_TRACKS] = { 0 }, queued[SPOOL_TRACKS];
        int cfd = open(f, O_RDONLY | O_CLOEXEC);
        cursor_parse(cfd, acked, queued);
        if (cfd >= 0)
            close(cfd);
        for (size_t i = 0; i < n; i++) {
            char from[PATH_MAX], to[PATH_MAX];
            spool_segment_path(from, odir, seqs[i]);
            if (seqs[i] != SPOOL_FRONT_SEQ && seqs[i] < pos_seq(acked[SPOOL_TRACK_MAIN])) {
                unlink(from);
                continue;
            }
            seg_path(s, (*next)++, to);
            if (rename(from, to) != 0)
                log_warn("destination %s: spool: cannot take over %s: %s", s->name, from, strerror(errno));
        }
        free(seqs);
        unlink(f);
        path_join(f, odir, SPOOL_LOCK_NAME);
        unlink(f);
        if (rmdir(odir) == 0)
            log_info("destination %s: spool: took over %zu segments of worker %u", s->name, n, w);
    }
}

/* Saves the cursor when it changed. */
static void cursor_write(struct spool *s)
{
    if (s->cursor_fd < 0 || (memcmp(s->acked, s->saved_acked, sizeof s->acked) == 0 &&
                             memcmp(s->queued, s->saved_queued, sizeof s->queued) == 0))
        return;
    uint8_t b[SPOOL_CURSOR_LEN];
    size_t body = SPOOL_CURSOR_LEN - sizeof(uint32_t), magic = sizeof SPOOL_CURSOR_MAGIC - 1;
    memcpy(b, SPOOL_CURSOR_MAGIC, magic);
    for (unsigned t = 0; t < SPOOL_TRACKS; t++) {
        bytes_put_be64(b + magic + 16 * t, s->acked[t]);
        bytes_put_be64(b + magic + 16 * t + 8, s->queued[t]);
    }
    bytes_put_be32(b + body, hash_crc32c(0, b, body));
    if (pwrite(s->cursor_fd, b, sizeof b, 0) != (ssize_t)sizeof b) {
        log_ratelimited(&s->error_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: spool: cannot save the cursor: %s", s->name, strerror(errno));
        return;
    }
    memcpy(s->saved_acked, s->acked, sizeof s->acked);
    memcpy(s->saved_queued, s->queued, sizeof s->queued);
}

/*
 * Counts the records of a segment left by an earlier run from offset from
 * (their calls too), reading it through; damage is judged later, by the
 * reader, and counted once there.
 */
static void seg_scan(struct spool *s, struct spool_seg *g, uint64_t from)
{
    char path[PATH_MAX];
    seg_path(s, g->seq, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    uint8_t hdr[SEGMENT_HEADER_LEN];
    g->size = g->on_disk = (uint64_t)st.st_size;
    g->written_s = (uint64_t)st.st_mtime;
    g->created_s = pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr && segment_header_parse(hdr, sizeof hdr, &g->created_s)
                       ? g->created_s
                       : g->written_s;
    uint64_t off = from > SEGMENT_HEADER_LEN ? from : SEGMENT_HEADER_LEN;
    size_t len = 0;
    for (;;) {
        ssize_t n = pread(fd, s->rbuf + len, SPOOL_BUF_BYTES - len, (off_t)(off + len));
        if (n <= 0)
            break;
        len += (size_t)n;
        size_t at = 0;
        while (at < len) {
            struct segment_record r;
            size_t used;
            enum segment_status rc = segment_record_parse(s->rbuf + at, len - at, &r, &used);
            if (rc == SEGMENT_SHORT)
                break;
            if (rc == SEGMENT_BAD) {
                at += segment_resync(s->rbuf + at, len - at);
                continue;
            }
            g->waiting++;
            calls_add(&s->calls, r.call_hash, r.target);
            at += used;
        }
        memmove(s->rbuf, s->rbuf + at, len - at);
        off += at;
        len -= at;
    }
    close(fd);
    s->st.packets += g->waiting;
    s->st.bytes += g->size;
}

static void spool_open(struct spool *s)
{
    s->opened = true;
    char path[PATH_MAX];
    if (mkdir_parents(s->dir) != 0) {
        log_error("destination %s: spool: cannot create %s: %s; packets it would keep are dropped", s->name,
                  s->dir, strerror(errno));
        s->broken = true;
        return;
    }
    path_join(path, s->dir, SPOOL_LOCK_NAME);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, SPOOL_FILE_MODE);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("destination %s: spool: %s: %s; packets it would keep are dropped", s->name, path,
                  errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        s->broken = true;
        return;
    }
    path_join(path, s->dir, SPOOL_CURSOR_NAME);
    s->cursor_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, SPOOL_FILE_MODE);
    if (s->cursor_fd < 0)
        log_warn("destination %s: spool: %s: %s; a restart replays everything kept", s->name, path,
                 strerror(errno));
    else
        cursor_read(s);

    uint32_t *seqs;
    size_t n;
    if (list_segments(s->dir, &seqs, &n) != 0) {
        log_error("destination %s: spool: cannot read %s: %s", s->name, s->dir, strerror(errno));
        s->broken = true;
        return;
    }
    uint32_t next = pos_seq(s->acked[SPOOL_TRACK_MAIN]) + 1;
    if (n > 0 && seqs[n - 1] + 1 > next)
        next = seqs[n - 1] + 1;
    if (s->worker == 0) {
        uint32_t first_adopted = next;
        adopt_orphans(s, &next);
        if (next != first_adopted) {
            free(seqs);
            if (list_segments(s->dir, &seqs, &n) != 0)
                n = 0, seqs = NULL;
        }
    }
    /* segments behind the acked position were all sent */
    for (size_t i = 0; i < n; i++) {
        uint64_t acked = s->acked[track_of(seqs[i])];
        if (seqs[i] != SPOOL_FRONT_SEQ && seqs[i] < pos_seq(acked)) {
            seg_path(s, seqs[i], path);
            unlink(path);
            continue;
        }
        struct spool_seg *g = seg_push(s, seqs[i]);
        if (g == NULL)
            break;
        seg_scan(s, g, seqs[i] == pos_seq(acked) ? pos_off(acked) : 0);
    }
    free(seqs);
    if (s->next_seq < next)
        s->next_seq = next;
    /* the segment the last run was in the middle of, if it was all sent since */
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].seq == pos_seq(s->acked[SPOOL_TRACK_MAIN]) && s->segs[i].waiting == 0)
            seg_drop(s, i--, SPOOL_DROP_COUNT);
    if ((s->writer = spool_writer_start(s->dir)) == NULL) {
        log_error("destination %s: spool: cannot start its writer: %s; packets it would keep are dropped",
                  s->name, strerror(errno));
        s->broken = true;
        return;
    }
    if (s->nsegs > 0) {
        reader_reset(s, s->segs[0].seq);
        log_info("destination %s: spool: %llu packets (%llu bytes) kept by an earlier run, replayed when a "
                 "target is up",
                 s->name, (unsigned long long)s->st.packets, (unsigned long long)s->st.bytes);
    } else {
        reader_reset(s, s->next_seq);
    }
}

static void spool_harvest(struct spool *s);

void spool_free(struct spool *s)
{
    if (s == NULL)
        return;
    if (s->writer != NULL) {
        s->closing = true;          /* the last batch goes whatever the writer's backlog; unlinks are done here */
        spool_flush(s);
        spool_writer_stop(s->writer);
        spool_harvest(s);           /* what the writer did last counts */
        spool_writer_free(s->writer);
    }
    if (s->opened && !s->broken)
        cursor_write(s);
    if (s->rfd >= 0)
        close(s->rfd);
    if (s->cursor_fd >= 0)
        close(s->cursor_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->segs);
    if (s->fill != NULL)
        jobs_free(s->fill);
    jobs_free(s->spare);
    free(s->rbuf);
    calls_clear(&s->calls);
    free(s->name);
    free(s->base);
    free(s->dir);
    free(s);
}

/* ---- writing ---- */

static unsigned drop_reason(int err)
{
    return err == ENOSPC || err == EDQUOT ? SPOOL_DROP_DISK_FULL : SPOOL_DROP_WRITE_ERROR;
}

/*
 * The records of a job (len bytes, records packets, into segment g) will
 * never be on disk: undo what spool_append() counted, count them dropped.
 */
static void records_lost(struct spool *s, struct spool_seg *g, const struct spool_job *j, unsigned reason,
                         const char *why)
{
    s->st.dropped[reason] += j->records;
    s->st.packets -= j->records;
    g->waiting -= j->records;
    g->size -= j->len;
    s->st.bytes -= j->len;
    log_ratelimited(&s->error_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                    "destination %s: spool: %s: %llu packets dropped (%s)", s->name, why,
                    (unsigned long long)j->records, spool_drop_name(reason));
}

/* Takes back what the writer finished: written bytes become readable, failures are counted. */
static void spool_harvest(struct spool *s)
{
    if (s->writer == NULL)
        return;
    for (struct spool_job *j = spool_writer_done(s->writer), *next; j != NULL; j = next) {
        next = j->next;
        size_t i = 0;
        while (i < s->nsegs && s->segs[i].seq != j->seq)
            i++;
        struct spool_seg *g = i < s->nsegs ? &s->segs[i] : NULL;   /* NULL: dropped since, counted then */
        if (j->kind == SPOOL_JOB_UNLINK) {
            if (j->err != 0)
                log_ratelimited(&s->error_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                                "destination %s: spool: cannot delete segment %08x: %s", s->name, j->seq,
                                strerror(j->err));
        } else if (g != NULL) {
            g->jobs--;
            if (j->err == 0) {
                g->on_disk += j->len + (j->created_s != 0 ? SEGMENT_HEADER_LEN : 0);
            } else {
                char why[PATH_MAX + 64];
                snprintf(why, sizeof why, "cannot write to %s: %s", s->dir, strerror(j->err));
                records_lost(s, g, j, drop_reason(j->err), why);
                if (j->created_s != 0) {
                    /* no file (the writer removes it): the next append starts a segment anew */
                    g->size -= SEGMENT_HEADER_LEN;
                    s->st.bytes -= SEGMENT_HEADER_LEN;
                    if (i == s->nsegs - 1)
                        s->active = false;
                }
                if (g->on_disk == 0 && g->waiting == 0 && g->jobs == 0)
                    seg_drop(s, i, SPOOL_DROP_COUNT);
            }
        }
        job_put(s, j);
    }
}

void spool_flush(struct spool *s)
{
    spool_harvest(s);
    struct spool_job *j = s->fill;
    if (j == NULL || j->len == 0)
        return;
    struct spool_seg *g = seg_find(s, j->seq);
    if (g == NULL) {                /* dropped while it filled: counted then */
        s->fill = NULL;
        job_put(s, j);
        return;
    }
    if (!s->closing && spool_writer_pending(s->writer) + j->len > s->max_unwritten) {
        /* the disk does not keep up: never wait for it */
        records_lost(s, g, j, SPOOL_DROP_SLOW_DISK, "the writer is behind by spool.max_unwritten");
        j->len = 0;
        j->records = 0;
        g->unborn |= j->created_s != 0;    /* the next job makes the file */
        return;                     /* kept as the fill; a segment's first job keeps its created_s */
    }
    s->fill = NULL;
    g->jobs++;
    g->written_s = now_s();
    spool_writer_submit(s->writer, j);
}

/* Starts a new segment to append to (its file is made by the writer's first job for it). */
static bool seg_start(struct spool *s)
{
    struct spool_seg *g = seg_push(s, s->next_seq);
    if (g == NULL)
        return false;
    g->size = SEGMENT_HEADER_LEN;
    g->created_s = g->written_s = now_s();
    g->unborn = true;
    s->st.bytes += SEGMENT_HEADER_LEN;
    s->active = true;
    return true;
}

void spool_append(struct spool *s, const struct segment_record *r)
{
    if (!s->opened)
        spool_open(s);
    size_t need = segment_record_len(r->len);
    if (s->broken) {
        s->st.dropped[SPOOL_DROP_WRITE_ERROR]++;
        return;
    }
    if (s->fill != NULL && s->fill->len + need > s->fill->cap)
        spool_flush(s);
    if (s->active && s->segs[s->nsegs - 1].size + need > s->seg_max) {
        spool_flush(s);
        s->active = false;
    }
    /* room under max_bytes: the oldest segments go, never the one written to */
    while (s->st.bytes + need + SEGMENT_HEADER_LEN > s->max_bytes && s->nsegs > (s->active ? 1u : 0u))
        seg_drop(s, 0, SPOOL_DROP_MAX_BYTES);
    if ((!s->active && !seg_start(s)) || (s->fill == NULL && (s->fill = job_get(s)) == NULL)) {
        s->st.dropped[SPOOL_DROP_WRITE_ERROR]++;
        log_ratelimited(&s->error_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: spool: out of memory; packets dropped", s->name);
        return;
    }
    struct spool_seg *g = &s->segs[s->nsegs - 1];
    if (s->fill->len > 0 && s->fill->seq != g->seq) {
        /* records of a segment the writer gave up on go to it first (and fail there, counted) */
        spool_flush(s);
        if (s->fill == NULL && (s->fill = job_get(s)) == NULL) {
            s->st.dropped[SPOOL_DROP_WRITE_ERROR]++;
            return;
        }
        g = &s->segs[s->nsegs - 1];
    }
    struct spool_job *j = s->fill;
    if (j->len == 0) {
        j->seq = g->seq;
        j->created_s = g->unborn ? g->created_s : 0;
        g->unborn = false;
    }
    j->len += segment_record_write(j->data + j->len, r);
    j->records++;
    g->size += need;
    g->waiting++;
    s->st.bytes += need;
    s->st.packets++;
    s->st.written++;
    calls_add(&s->calls, r->call_hash, r->target);
}

/* A front segment in the list, before every other; NULL on ENOMEM.  Its file is the caller's. */
static struct spool_seg *front_add(struct spool *s, uint64_t now)
{
    if (seg_push(s, SPOOL_FRONT_SEQ) == NULL)
        return NULL;
    struct spool_seg front = s->segs[s->nsegs - 1];
    memmove(s->segs + 1, s->segs, (s->nsegs - 1) * sizeof *s->segs);
    s->segs[0] = front;
    s->segs[0].size = s->segs[0].on_disk = SEGMENT_HEADER_LEN;
    s->segs[0].created_s = now;
    s->st.bytes += SEGMENT_HEADER_LEN;
    return &s->segs[0];
}

/* Appends r to the front's file (made, header first, when fresh); 0 or an errno, nothing written then. */
static int front_write(const char *path, bool fresh, uint64_t now, const struct segment_record *r)
{
    size_t need = segment_record_len(r->len);
    uint8_t *rec = malloc(need > SEGMENT_HEADER_LEN ? need : SEGMENT_HEADER_LEN);
    if (rec == NULL)
        return ENOMEM;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (fresh ? O_TRUNC : 0), SPOOL_FILE_MODE);
    int err = fd < 0 ? errno : 0;
    if (err == 0 && fresh) {
        segment_header_write(rec, now);
        err = spool_write_all(fd, rec, SEGMENT_HEADER_LEN);
    }
    struct stat st;
    if (err == 0 && (err = fstat(fd, &st) != 0 ? errno : 0) == 0 &&
        (err = spool_write_all(fd, rec, segment_record_write(rec, r))) != 0 && ftruncate(fd, st.st_size) != 0)
        err = errno;                /* and a partial record may be left: read as damage, skipped */
    if (fd >= 0)
        close(fd);
    if (err != 0 && fresh)
        unlink(path);
    free(rec);
    return err;
}

void spool_keep_first(struct spool *s, const struct segment_record *r)
{
    if (!s->opened)
        spool_open(s);
    size_t need = segment_record_len(r->len);
    uint64_t now = now_s();
    bool fresh = s->nsegs == 0 || s->segs[0].seq != SPOOL_FRONT_SEQ;
    char path[PATH_MAX];
    seg_path(s, SPOOL_FRONT_SEQ, path);
    int err = s->broken ? EBADF : front_write(path, fresh, now, r);
    struct spool_seg *g = err != 0 ? NULL : fresh ? front_add(s, now) : &s->segs[0];
    if (g == NULL) {
        s->st.dropped[err != 0 ? drop_reason(err) : SPOOL_DROP_WRITE_ERROR]++;
        log_ratelimited(&s->error_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                        "destination %s: spool: cannot keep a queued packet in %s: %s", s->name, path,
                        strerror(err != 0 ? err : ENOMEM));
        return;
    }
    if (fresh)                      /* a new front starts its track again */
        s->acked[SPOOL_TRACK_FRONT] = s->queued[SPOOL_TRACK_FRONT] = s->resent_until[SPOOL_TRACK_FRONT] = 0;
    g->size += need;
    g->on_disk += need;
    g->waiting++;
    g->written_s = now;
    s->st.bytes += need;
    s->st.packets++;
    s->st.written++;
    calls_add(&s->calls, r->call_hash, r->target);
}

void spool_drain(struct spool *s)
{
    if (!s->opened)
        spool_open(s);
    spool_flush(s);
    const struct timespec poll = { 0, (long)SPOOL_DRAIN_POLL_MS * CLOCK_NS_PER_MS };
    while (s->writer != NULL && spool_writer_jobs(s->writer) > 0) {
        nanosleep(&poll, NULL);
        spool_harvest(s);
    }
    spool_harvest(s);
}

bool spool_waiting(const struct spool *s)
{
    return s->st.packets > 0;
}

bool spool_holds_call(const struct spool *s, uint64_t call_hash, unsigned target)
{
    if (s->st.packets == 0)
        return false;
    /* what a TCP queue held at the last stop has no call hash: everything waits behind it */
    if (s->nsegs > 0 && s->segs[0].seq == SPOOL_FRONT_SEQ && s->segs[0].waiting > 0)
        return true;
    return calls_has(&s->calls, call_hash, target);
}

/* ---- replay ---- */

/* true while g may still grow: appended to, or with records not yet written. */
static bool seg_writing(const struct spool *s, const struct spool_seg *g)
{
    return (g == &s->segs[s->nsegs - 1] && s->active) || g->jobs > 0 ||
           (s->fill != NULL && s->fill->len > 0 && s->fill->seq == g->seq);
}

/* Nothing more of g can be read now: what is appended goes to the writer, and is read once written. */
static bool reader_waits(struct spool *s, const struct spool_seg *g)
{
    if (s->fill != NULL && s->fill->len > 0 && s->fill->seq == g->seq)
        spool_flush(s);
    return false;
}

/*
 * Counts a damaged stretch once: resync may stop in its last bytes (a
 * record could start there) or at the end of the buffer, and the parse
 * that follows fails again on the same stretch.
 */
static void reader_damage(struct spool *s, const char *what)
{
    if (s->in_damage)
        return;
    s->in_damage = true;
    s->st.damaged++;
    log_ratelimited(&s->damage_limit, s->log_interval_ms, LOG_LEVEL_WARN,
                    "destination %s: spool: segment %08x: %s at offset %llu, skipped", s->name, s->rseq, what,
                    (unsigned long long)(s->roff + s->rstart));
}

/* The reader leaves g for the next segment; the records g still counted are lost to damage. */
static void reader_abandon(struct spool *s, struct spool_seg *g)
{
    s->st.packets -= g->waiting;
    g->waiting = 0;
    if (s->st.packets == 0)
        calls_clear(&s->calls);
    reader_reset(s, g->seq + 1);
}

bool spool_peek(struct spool *s, struct segment_record *r)
{
    if (!s->opened)
        spool_open(s);
    spool_harvest(s);
    while (!s->broken) {
        struct spool_seg *g = NULL;
        for (size_t i = 0; i < s->nsegs && g == NULL; i++)
            if (s->segs[i].seq >= s->rseq)
                g = &s->segs[i];
        if (g == NULL)
            return false;
        if (g->seq != s->rseq)
            reader_reset(s, g->seq);
        if (g->on_disk == 0) {      /* its file is not written yet, or never will be */
            if (seg_writing(s, g))
                return reader_waits(s, g);
            reader_reset(s, g->seq + 1);
            continue;
        }
        if (s->rfd < 0) {
            char path[PATH_MAX];
            seg_path(s, g->seq, path);
            s->rfd = open(path, O_RDONLY | O_CLOEXEC);
            if (s->rfd < 0) {
                reader_damage(s, strerror(errno));
                reader_abandon(s, g);
                continue;
            }
        }
        size_t used;
        enum segment_status rc = segment_record_parse(s->rbuf + s->rstart, s->rlen, r, &used);
        if (rc == SEGMENT_OK) {
            s->in_damage = false;
            s->peeked = used;
            return true;
        }
        if (rc == SEGMENT_BAD) {
            reader_damage(s, "damaged record");
            size_t skip = segment_resync(s->rbuf + s->rstart, s->rlen);
            s->rstart += skip;
            s->rlen -= skip;
            continue;
        }
        /* SEGMENT_SHORT: read on */
        uint64_t end = g->on_disk;
        uint64_t have = s->roff + s->rstart + s->rlen;
        if (have < end) {
            memmove(s->rbuf, s->rbuf + s->rstart, s->rlen);
            s->roff += s->rstart;
            s->rstart = 0;
            size_t want = SPOOL_BUF_BYTES - s->rlen;
            if (want > end - have)
                want = (size_t)(end - have);
            ssize_t n = pread(s->rfd, s->rbuf + s->rlen, want, (off_t)have);
            if (n > 0) {
                s->rlen += (size_t)n;
                continue;
            }
            reader_damage(s, n < 0 ? strerror(errno) : "end of file before its known size");
        } else if (seg_writing(s, g)) {
            return reader_waits(s, g);  /* replayed up to what is written */
        } else if (s->rlen > 0) {
            reader_damage(s, "torn record at the end");
        }
        /* this segment is done: what it still counted was damaged */
        reader_abandon(s, g);
    }
    return false;
}

uint64_t spool_consume(struct spool *s)
{
    struct segment_record r;
    size_t used = s->peeked;
    if (used > 0 && segment_record_parse(s->rbuf + s->rstart, s->rlen, &r, &used) == SEGMENT_OK) {
        calls_sub(&s->calls, r.call_hash, r.target);
        s->rstart += used;
        s->rlen -= used;
        struct spool_seg *g = seg_find(s, s->rseq);
        if (g != NULL && g->waiting > 0)
            g->waiting--;
        if (s->st.packets > 0)
            s->st.packets--;
        if (s->st.packets == 0)
            calls_clear(&s->calls);     /* nothing waits: every call goes straight on */
        s->st.replayed++;
    }
    s->peeked = 0;
    uint64_t pos = pos_make(s->rseq, s->roff + s->rstart);
    unsigned t = track_of(s->rseq);
    if (pos <= s->resent_until[t])
        s->st.resent++;
    if (pos > s->queued[t])
        s->queued[t] = pos;
    return pos;
}

/* The front was replayed and written whole: it goes (seg_drop() starts its track again). */
static void front_done(struct spool *s)
{
    seg_drop(s, 0, SPOOL_DROP_COUNT);
}

void spool_ack(struct spool *s, uint64_t pos)
{
    if (!s->opened || s->broken)
        return;
    unsigned t = track_of(pos_seq(pos));
    bool front = s->nsegs > 0 && s->segs[0].seq == SPOOL_FRONT_SEQ;
    if (pos > s->acked[t] && (t == SPOOL_TRACK_MAIN || front))     /* a front gone since: nothing to ack */
        s->acked[t] = pos;
    if (front && t == SPOOL_TRACK_FRONT && pos_off(pos) >= s->segs[0].size && s->segs[0].waiting == 0)
        front_done(s);
    else if (front && t == SPOOL_TRACK_MAIN && pos_seq(pos) != SPOOL_FRONT_SEQ)
        front_done(s);              /* batches are acked in order: the front went before */
    uint64_t main = s->acked[SPOOL_TRACK_MAIN];
    size_t first = s->nsegs > 0 && s->segs[0].seq == SPOOL_FRONT_SEQ;
    while (s->nsegs > first && s->segs[first].seq < pos_seq(main) && s->segs[first].seq < s->rseq)
        seg_drop(s, first, SPOOL_DROP_COUNT);
    /* all sent: the last segment goes too, and the next append starts a new one */
    if (s->nsegs == 1 && s->st.packets == 0 && s->segs[0].jobs == 0 && s->segs[0].on_disk == s->segs[0].size &&
        (s->fill == NULL || s->fill->len == 0) && s->segs[0].seq == pos_seq(main) &&
        pos_off(main) == s->segs[0].size) {
        seg_drop(s, 0, SPOOL_DROP_COUNT);
        reader_reset(s, s->next_seq);
    }
    cursor_write(s);
}

void spool_expire(struct spool *s)
{
    if (!s->opened || s->broken || s->max_age_s == 0)
        return;
    uint64_t now = now_s();
    spool_harvest(s);
    while (s->nsegs > 0 && s->segs[0].written_s + s->max_age_s < now) {
        bool last = s->nsegs == 1;
        seg_drop(s, 0, SPOOL_DROP_MAX_AGE);
        if (last)
            reader_reset(s, s->next_seq);
    }
}

const struct spool_stats *spool_stats(const struct spool *s)
{
    struct spool *w = (struct spool *)s;
    w->st.oldest_s = 0;
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i].waiting > 0) {
            w->st.oldest_s = s->segs[i].created_s;
            break;
        }
    return &s->st;
}
