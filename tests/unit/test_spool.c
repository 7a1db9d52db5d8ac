/*
 * test_spool.c - unit tests for src/spool.c in a temporary directory:
 * records replayed in order and their segments deleted once acked, a
 * restart replaying what was not acked (and counting as resent what was
 * queued), the lock against a second user, max_bytes dropping the oldest,
 * torn and damaged segments (the damage skipped and counted once, the
 * records around it replayed), and worker 0 taking over the segments of a
 * worker that no longer exists.
 */
#include "hep.h"
#include "log.h"
#include "segment.h"
#include "spool.h"
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME "spooltest"
#define MIB (UINT64_C(1) << 20)
#define BIG_SPOOL (64u * MIB)       /* segments of 4 MiB: larger than the reader's buffer */
#define SMALL_SPOOL MIB             /* the smallest max_bytes: segments of 64 KiB */
/* a test appends faster than any disk writes: the writer may be behind by all of it */
#define UNWRITTEN (64u * MIB)
#define NO_MAX_AGE 0
#define LOG_INTERVAL_MS 1000
#define FRAME_LEN 1000u             /* a record of 1020 bytes on disk */
#define REC_LEN (SEGMENT_RECORD_HEADER_LEN + FRAME_LEN)
#define INDEX_AT HEP3_HDR_LEN       /* where a frame carries its record's number */
#define HASH_STEP UINT64_C(0x9e3779b97f4a7c15)
#define TARGETS 3u
#define BASE_LEN 64                 /* "/tmp/test_spool.XXXXXX" */
#define DIR_LEN 128                 /* BASE/wN */
#define PATH_LEN 512                /* BASE/wN/NAME.seg, any d_name */
#define MAX_SEGS 64

static char base[BASE_LEN];

static void dir_make(void)
{
    snprintf(base, sizeof base, "/tmp/test_spool.XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(base));
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void dir_remove(void)
{
    CU_ASSERT_EQUAL(nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static struct spool *open_spool(unsigned worker, unsigned nworkers, uint64_t max_bytes)
{
    struct conf_spool c = { .dir = base, .max_bytes = max_bytes, .max_age_ms = NO_MAX_AGE,
                            .replay_rate = 1, .max_unwritten = UNWRITTEN };
    struct spool *s = spool_new(NAME, &c, worker, nworkers, LOG_INTERVAL_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

/* Record number i: a HEP3 frame carrying i, whose bytes never spell "HEP3" elsewhere; by spool_append or another. */
static void append_with(struct spool *s, uint32_t i, void (*add)(struct spool *, const struct segment_record *))
{
    uint8_t f[FRAME_LEN];
    memcpy(f, HEP3_MAGIC, 4);
    f[4] = (uint8_t)(FRAME_LEN >> 8);
    f[5] = (uint8_t)FRAME_LEN;
    for (unsigned k = 0; k < 4; k++)
        f[INDEX_AT + k] = (uint8_t)(i >> (24 - 8 * k));
    for (size_t k = INDEX_AT + 4; k < FRAME_LEN; k++)
        f[k] = (uint8_t)('a' + (i + k) % 26);
    struct segment_record r = { .call_hash = i * HASH_STEP, .target = i % TARGETS, .data = f, .len = FRAME_LEN };
    add(s, &r);
}

static void append(struct spool *s, uint32_t i)
{
    append_with(s, i, spool_append);
}

static uint32_t index_of(const struct segment_record *r)
{
    const uint8_t *p = r->data + INDEX_AT;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Replays up to max records (their numbers into got), checking each is
 * whole and what was appended; *pos: the position of the last.
 */
static size_t replay(struct spool *s, uint32_t *got, size_t max, uint64_t *pos)
{
    size_t n = 0;
    struct segment_record r;
    spool_drain(s);                 /* what was appended is on disk: the reader sees it */
    while (n < max && spool_peek(s, &r)) {
        uint32_t i = index_of(&r);
        CU_ASSERT_EQUAL(r.len, FRAME_LEN);
        CU_ASSERT_EQUAL(r.call_hash, i * HASH_STEP);
        CU_ASSERT_EQUAL(r.target, i % TARGETS);
        CU_ASSERT_EQUAL(memcmp(r.data, HEP3_MAGIC, 4), 0);
        got[n++] = i;
        uint64_t p = spool_consume(s);
        if (pos != NULL)
            *pos = p;
    }
    return n;
}

/* The segment files of worker w, sorted, as full paths; returns how many. */
static size_t segments(unsigned w, char paths[][PATH_LEN], size_t max)
{
    char dir[DIR_LEN];
    snprintf(dir, sizeof dir, "%s/w%u", base, w);
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    if (n < 0)
        return 0;
    size_t found = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list[i]->d_name);
        if (len > 4 && strcmp(list[i]->d_name + len - 4, ".seg") == 0 && found < max)
            snprintf(paths[found++], PATH_LEN, "%s/%s", dir, list[i]->d_name);
        free(list[i]);
    }
    free(list);
    return found;
}

static off_t file_size(const char *path)
{
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    return st.st_size;
}

/* XORs len bytes of path from off with 0xff. */
static void damage(const char *path, off_t off, size_t len)
{
    int fd = open(path, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t *b = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(pread(fd, b, len, off), (ssize_t)len);
    for (size_t i = 0; i < len; i++)
        b[i] ^= 0xff;
    CU_ASSERT_EQUAL(pwrite(fd, b, len, off), (ssize_t)len);
    free(b);
    close(fd);
}

/* Writes records 0 .. n-1 in a spool of max_bytes and closes it: a run before a restart. */
static void earlier_run(uint32_t n, uint64_t max_bytes)
{
    struct spool *s = open_spool(0, 1, max_bytes);
    for (uint32_t i = 0; i < n; i++)
        append(s, i);
    spool_drain(s);
    CU_ASSERT_EQUAL(spool_stats(s)->written, n);
    spool_free(s);
}

/* Replays everything of a restarted spool; got[] holds each number at most once. */
static size_t replay_after_restart(uint64_t max_bytes, uint32_t *got, size_t max, uint64_t *damaged)
{
    struct spool *s = open_spool(0, 1, max_bytes);
    size_t n = replay(s, got, max, NULL);
    CU_ASSERT_FALSE(spool_waiting(s));
    CU_ASSERT_EQUAL(spool_stats(s)->packets, 0);
    CU_ASSERT_EQUAL(spool_stats(s)->replayed, n);
    *damaged = spool_stats(s)->damaged;
    spool_free(s);
    return n;
}

/* got[0 .. n-1] is 0 .. total-1 without the numbers in [skip_from, skip_to). */
static void assert_all_but(const uint32_t *got, size_t n, uint32_t total, uint32_t skip_from, uint32_t skip_to)
{
    CU_ASSERT_EQUAL_FATAL(n, total - (skip_to - skip_from));
    uint32_t want = 0;
    for (size_t k = 0; k < n; k++, want++) {
        if (want == skip_from)
            want = skip_to;
        CU_ASSERT_EQUAL(got[k], want);
        if (got[k] != want) {
            fprintf(stderr, "record %zu: %u, expected %u\n", k, got[k], want);
            return;
        }
    }
}

static void test_append_replay_ack_deletes(void)
{
    enum { N = 50 };
    dir_make();
    struct spool *s = open_spool(0, 1, BIG_SPOOL);
    CU_ASSERT_FALSE(spool_waiting(s));
    for (uint32_t i = 0; i < N; i++)
        append(s, i);
    CU_ASSERT_TRUE(spool_waiting(s));
    CU_ASSERT_TRUE(spool_holds_call(s, 7 * HASH_STEP, 7 % TARGETS));
    CU_ASSERT_FALSE(spool_holds_call(s, 7 * HASH_STEP, 7 % TARGETS + 1));    /* another target's copy goes on */
    spool_drain(s);
    char paths[MAX_SEGS][PATH_LEN];
    CU_ASSERT_EQUAL_FATAL(segments(0, paths, MAX_SEGS), 1);
    CU_ASSERT_EQUAL(file_size(paths[0]), SEGMENT_HEADER_LEN + N * REC_LEN);
    const struct spool_stats *st = spool_stats(s);
    CU_ASSERT_EQUAL(st->written, N);
    CU_ASSERT_EQUAL(st->packets, N);
    CU_ASSERT_EQUAL(st->bytes, SEGMENT_HEADER_LEN + N * REC_LEN);
    CU_ASSERT_NOT_EQUAL(st->oldest_s, 0);

    uint32_t got[N + 1];
    uint64_t pos = 0;
    CU_ASSERT_EQUAL(replay(s, got, N + 1, &pos), N);
    assert_all_but(got, N, N, N, N);
    CU_ASSERT_FALSE(spool_waiting(s));
    CU_ASSERT_FALSE(spool_holds_call(s, 7 * HASH_STEP, 7 % TARGETS));
    CU_ASSERT_EQUAL(segments(0, paths, MAX_SEGS), 1);      /* not acked yet */
    spool_ack(s, pos);
    spool_drain(s);                 /* the writer deletes it */
    CU_ASSERT_EQUAL(segments(0, paths, MAX_SEGS), 0);
    st = spool_stats(s);
    CU_ASSERT_EQUAL(st->replayed, N);
    CU_ASSERT_EQUAL(st->resent, 0);
    CU_ASSERT_EQUAL(st->damaged, 0);
    CU_ASSERT_EQUAL(st->bytes, 0);
    CU_ASSERT_EQUAL(st->oldest_s, 0);

    /* appends after that start a new segment, replayed in turn */
    append(s, N);
    CU_ASSERT_EQUAL(replay(s, got, N, &pos), 1);
    CU_ASSERT_EQUAL(got[0], N);
    spool_ack(s, pos);
    spool_drain(s);
    CU_ASSERT_EQUAL(segments(0, paths, MAX_SEGS), 0);
    spool_free(s);
    dir_remove();
}

/* All acked: a restart finds nothing, and no segment file is left.  Removes the directory. */
static void assert_nothing_left(void)
{
    uint32_t got[1];
    struct spool *s = open_spool(0, 1, BIG_SPOOL);
    CU_ASSERT_EQUAL(replay(s, got, 1, NULL), 0);
    CU_ASSERT_FALSE(spool_waiting(s));
    spool_free(s);
    char paths[MAX_SEGS][PATH_LEN];
    CU_ASSERT_EQUAL(segments(0, paths, MAX_SEGS), 0);
    dir_remove();
}

static void test_restart_replays_what_was_not_acked(void)
{
    enum { N = 10, ACKED = 3, QUEUED = 6 };
    dir_make();
    struct spool *s = open_spool(0, 1, BIG_SPOOL);
    for (uint32_t i = 0; i < N; i++)
        append(s, i);
    uint32_t got[N + 1];
    uint64_t acked = 0, queued = 0;
    CU_ASSERT_EQUAL(replay(s, got, ACKED, &acked), ACKED);
    CU_ASSERT_EQUAL(replay(s, got, QUEUED - ACKED, &queued), QUEUED - ACKED);
    CU_ASSERT(queued > acked);
    spool_ack(s, acked);            /* as the destination does: saves how far it was queued too */
    spool_free(s);

    s = open_spool(0, 1, BIG_SPOOL);
    size_t n = replay(s, got, N + 1, &queued);
    assert_all_but(got, n, N, 0, ACKED);
    const struct spool_stats *st = spool_stats(s);
    CU_ASSERT_EQUAL(st->replayed, N - ACKED);
    CU_ASSERT_EQUAL(st->resent, QUEUED - ACKED);
    CU_ASSERT_EQUAL(st->written, 0);
    spool_ack(s, queued);
    spool_free(s);

    assert_nothing_left();
}

/*
 * What a TCP queue held at exit (spool_keep_first) is replayed first at the
 * next start, and resumes where it was acked after another restart.
 */
static void test_the_front_goes_first(void)
{
    enum { N = 10, SENT = 3, FRONT = 100, NFRONT = 3 };
    dir_make();
    struct spool *s = open_spool(0, 1, BIG_SPOOL);
    for (uint32_t i = 0; i < N; i++)
        append(s, i);
    uint32_t got[N + NFRONT + 1];
    uint64_t pos = 0;
    CU_ASSERT_EQUAL(replay(s, got, SENT, &pos), SENT);
    spool_ack(s, pos);
    for (uint32_t i = 0; i < NFRONT; i++)
        append_with(s, FRONT + i, spool_keep_first);
    spool_free(s);

    s = open_spool(0, 1, BIG_SPOOL);
    CU_ASSERT_EQUAL(replay(s, got, 1, &pos), 1);
    CU_ASSERT_EQUAL(got[0], FRONT);
    spool_ack(s, pos);              /* the first of the front was written */
    spool_free(s);

    s = open_spool(0, 1, BIG_SPOOL);
    size_t n = replay(s, got, N + NFRONT + 1, &pos);
    CU_ASSERT_EQUAL_FATAL(n, NFRONT - 1 + N - SENT);
    for (size_t k = 0; k < n; k++)
        CU_ASSERT_EQUAL(got[k], k < NFRONT - 1 ? FRONT + 1 + k : SENT + k - (NFRONT - 1));
    CU_ASSERT_EQUAL(spool_stats(s)->resent, 0);
    spool_ack(s, pos);
    spool_free(s);
    assert_nothing_left();
}

static void test_a_spool_in_use_is_locked(void)
{
    dir_make();
    struct spool *a = open_spool(0, 1, BIG_SPOOL);
    append(a, 0);
    struct spool *b = open_spool(0, 1, BIG_SPOOL);
    append(b, 1);
    append(b, 2);
    const struct spool_stats *st = spool_stats(b);
    CU_ASSERT_EQUAL(st->dropped[SPOOL_DROP_WRITE_ERROR], 2);
    CU_ASSERT_EQUAL(st->written, 0);
    CU_ASSERT_FALSE(spool_waiting(b));
    struct segment_record r;
    CU_ASSERT_FALSE(spool_peek(b, &r));
    spool_free(b);
    /* the first one still works, its record kept */
    uint32_t got[2];
    CU_ASSERT_EQUAL(replay(a, got, 2, NULL), 1);
    CU_ASSERT_EQUAL(got[0], 0);
    CU_ASSERT_EQUAL(spool_stats(a)->dropped[SPOOL_DROP_WRITE_ERROR], 0);
    spool_free(a);
    dir_remove();
}

static void test_max_bytes_drops_the_oldest(void)
{
    enum { N = 2 * SMALL_SPOOL / REC_LEN };
    dir_make();
    struct spool *s = open_spool(0, 1, SMALL_SPOOL);
    for (uint32_t i = 0; i < N; i++)
        append(s, i);
    spool_drain(s);
    const struct spool_stats *st = spool_stats(s);
    uint64_t dropped = st->dropped[SPOOL_DROP_MAX_BYTES];
    CU_ASSERT(dropped >= N - SMALL_SPOOL / REC_LEN);
    CU_ASSERT(dropped < N);
    CU_ASSERT(st->bytes <= SMALL_SPOOL);
    CU_ASSERT_EQUAL(st->written, N);
    CU_ASSERT_EQUAL(st->packets, N - dropped);
    CU_ASSERT_EQUAL(st->dropped[SPOOL_DROP_WRITE_ERROR] + st->dropped[SPOOL_DROP_DISK_FULL], 0);
    CU_ASSERT_EQUAL(st->dropped[SPOOL_DROP_SLOW_DISK], 0);
    static uint32_t got[N];
    size_t n = replay(s, got, N, NULL);
    assert_all_but(got, n, N, 0, (uint32_t)dropped);
    spool_free(s);
    dir_remove();
}

/* A segment cut inside a record: what comes before and the later segments are replayed; the torn one counted once. */
static void test_a_torn_segment(void)
{
    enum { N = 150 };
    dir_make();
    earlier_run(N, SMALL_SPOOL);
    char paths[MAX_SEGS][PATH_LEN];
    CU_ASSERT_FATAL(segments(0, paths, MAX_SEGS) >= 3);
    off_t size = file_size(paths[0]);
    uint32_t first = (uint32_t)((size - SEGMENT_HEADER_LEN) / REC_LEN);   /* records in the first segment */
    CU_ASSERT_EQUAL_FATAL(truncate(paths[0], size - REC_LEN / 2), 0);

    static uint32_t got[N];
    uint64_t damaged = 0;
    size_t n = replay_after_restart(SMALL_SPOOL, got, N, &damaged);
    assert_all_but(got, n, N, first - 1, first);
    CU_ASSERT_EQUAL(damaged, 1);
    dir_remove();
}

/* Bytes damaged in a segment: resync finds the records after them; each damaged stretch counted once. */
static void test_damaged_bytes_are_skipped(void)
{
    enum { N = 150, HIT = 10 };
    dir_make();
    earlier_run(N, SMALL_SPOOL);
    char paths[MAX_SEGS][PATH_LEN];
    CU_ASSERT_FATAL(segments(0, paths, MAX_SEGS) >= 2);
    /* record HIT's payload */
    damage(paths[0], SEGMENT_HEADER_LEN + HIT * REC_LEN + REC_LEN / 2, 4);
    static uint32_t got[N];
    uint64_t damaged = 0;
    size_t n = replay_after_restart(SMALL_SPOOL, got, N, &damaged);
    assert_all_but(got, n, N, HIT, HIT + 1);
    CU_ASSERT_EQUAL(damaged, 1);
    dir_remove();

    /* the end of record HIT and the header of the next one */
    dir_make();
    earlier_run(N, SMALL_SPOOL);
    CU_ASSERT_FATAL(segments(0, paths, MAX_SEGS) >= 2);
    damage(paths[0], SEGMENT_HEADER_LEN + (HIT + 1) * REC_LEN - 10, 20);
    n = replay_after_restart(SMALL_SPOOL, got, N, &damaged);
    assert_all_but(got, n, N, HIT, HIT + 2);
    CU_ASSERT_EQUAL(damaged, 1);
    dir_remove();
}

/* The last record of a segment damaged: the next segment follows, the damage counted once. */
static void test_damage_at_the_end_of_a_segment(void)
{
    enum { N = 150 };
    dir_make();
    earlier_run(N, SMALL_SPOOL);
    char paths[MAX_SEGS][PATH_LEN];
    CU_ASSERT_FATAL(segments(0, paths, MAX_SEGS) >= 2);
    off_t size = file_size(paths[0]);
    uint32_t first = (uint32_t)((size - SEGMENT_HEADER_LEN) / REC_LEN);
    damage(paths[0], size - REC_LEN / 2, 4);
    static uint32_t got[N];
    uint64_t damaged = 0;
    size_t n = replay_after_restart(SMALL_SPOOL, got, N, &damaged);
    assert_all_but(got, n, N, first - 1, first);
    CU_ASSERT_EQUAL(damaged, 1);
    dir_remove();
}

/* A damaged stretch longer than what the reader reads at once is still one stretch. */
static void test_a_long_damaged_stretch(void)
{
    enum { N = 1500, FROM = 100, TO = 900 };
    dir_make();
    earlier_run(N, BIG_SPOOL);
    char paths[MAX_SEGS][PATH_LEN];
    CU_ASSERT_EQUAL_FATAL(segments(0, paths, MAX_SEGS), 1);
    /* records FROM .. TO-1 whole, about 800 KB */
    damage(paths[0], SEGMENT_HEADER_LEN + FROM * REC_LEN, (TO - FROM) * REC_LEN);
    static uint32_t got[N];
    uint64_t damaged = 0;
    size_t n = replay_after_restart(BIG_SPOOL, got, N, &damaged);
    assert_all_but(got, n, N, FROM, TO);
    CU_ASSERT_EQUAL(damaged, 1);
    dir_remove();
}

/* Worker 0 of one takes over what worker 1 of two left, after its own. */
static void test_worker_zero_adopts_orphans(void)
{
    enum { OWN = 3, ORPHANS = 5 };
    dir_make();
    struct spool *w0 = open_spool(0, 2, BIG_SPOOL);
    struct spool *w1 = open_spool(1, 2, BIG_SPOOL);
    for (uint32_t i = 0; i < OWN; i++)
        append(w0, i);
    for (uint32_t i = OWN; i < OWN + ORPHANS; i++)
        append(w1, i);
    spool_free(w0);
    spool_free(w1);
    char paths[MAX_SEGS][PATH_LEN];
    CU_ASSERT_EQUAL(segments(1, paths, MAX_SEGS), 1);

    struct spool *s = open_spool(0, 1, BIG_SPOOL);
    uint32_t got[OWN + ORPHANS + 1];
    uint64_t pos = 0;
    size_t n = replay(s, got, OWN + ORPHANS + 1, &pos);
    assert_all_but(got, n, OWN + ORPHANS, 0, 0);
    CU_ASSERT_EQUAL(spool_stats(s)->damaged, 0);
    spool_ack(s, pos);
    spool_free(s);
    char w1dir[DIR_LEN];
    snprintf(w1dir, sizeof w1dir, "%s/w1", base);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(w1dir, &st), 0);        /* taken over whole */
    CU_ASSERT_EQUAL(segments(0, paths, MAX_SEGS), 0);
    dir_remove();
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);         /* the damage warnings are expected */
    static const struct unit_test tests[] = {
        { "append, replay, ack deletes", test_append_replay_ack_deletes },
        { "a restart replays what was not acked", test_restart_replays_what_was_not_acked },
        { "the front goes first", test_the_front_goes_first },
        { "a spool in use is locked", test_a_spool_in_use_is_locked },
        { "max_bytes drops the oldest", test_max_bytes_drops_the_oldest },
        { "a torn segment", test_a_torn_segment },
        { "damaged bytes are skipped", test_damaged_bytes_are_skipped },
        { "damage at the end of a segment", test_damage_at_the_end_of_a_segment },
        { "a long damaged stretch", test_a_long_damaged_stretch },
        { "worker 0 adopts orphans", test_worker_zero_adopts_orphans },
        { NULL, NULL },
    };
    return unit_run("spool", tests);
}
