/*
 * test_log.c - unit tests for logging (src/log.c): the stderr line and its
 * journal prefix per level, level filtering, the wording of rate-limited
 * repeats and of durations, tallies for one source, several and many,
 * flushing, and the syslog target (nothing on stderr, switching back, and
 * lines racing a switch).
 *
 * stderr is sent to a temporary file around each check (dup2).
 * JOURNAL_STREAM is set before the first line, so every stderr line carries
 * its priority prefix as under systemd.
 */
#include "log.h"
#include "unit.h"

#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#define SECOND          1000u
#define INTERVAL        (10 * SECOND)
#define START           (100 * SECOND)     /* a monotonic time well after boot */
#define DURATION_MAX    32
#define SYSLOG_PATH     "/dev/log"
#define SYSLOG_DGRAM    65536
#define SYSLOG_WAIT_MS  1000
#define RACE_THREADS    2
#define RACE_LINES      2000
#define RACE_SWITCHES   200
#define MANY_SOURCES    (LOG_TALLY_SUBJECTS + 4)
#define BODY_LEN        5000

struct capture {
    int fd;
    int saved;
};

/* Sends stderr to a fresh temporary file until capture_end(). */
static void capture_begin(struct capture *c)
{
    char path[] = "/tmp/test_log.XXXXXX";
    c->fd = mkstemp(path);
    CU_ASSERT_FATAL(c->fd >= 0);
    unlink(path);
    c->saved = dup(STDERR_FILENO);
    CU_ASSERT_FATAL(c->saved >= 0);
    CU_ASSERT_FATAL(dup2(c->fd, STDERR_FILENO) >= 0);
}

/* Restores stderr and returns what was written meanwhile (malloc'ed, NUL-terminated). */
static char *capture_end(struct capture *c)
{
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    off_t size = lseek(c->fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)size + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_EQUAL(pread(c->fd, buf, (size_t)size, 0), size);
    close(c->fd);
    return buf;
}

/* How many times needle occurs in haystack. */
static size_t count_of(const char *haystack, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* "<prefix>heprouter[PID] level: " as the journal reads it. */
static void expected_head(char *buf, size_t size, const char *prefix, const char *level)
{
    snprintf(buf, size, "%sheprouter[%ld] %s: ", prefix, (long)getpid(), level);
}

static void test_each_level_has_its_journal_prefix(void)
{
    log_set_level(LOG_LEVEL_DEBUG);
    struct capture c;
    capture_begin(&c);
    log_error("e %d", 1);
    log_warn("w %d", 2);
    log_info("i %d", 3);
    log_debug("d %d", 4);
    char *out = capture_end(&c);
    char want[256], line[512];
    const char *rows[][3] = {
        { "<3>", "error", "e 1" }, { "<4>", "warn", "w 2" }, { "<6>", "info", "i 3" }, { "<7>", "debug", "d 4" },
    };
    size_t off = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        expected_head(want, sizeof want, rows[i][0], rows[i][1]);
        snprintf(line, sizeof line, "%s%s\n", want, rows[i][2]);
        CU_ASSERT_NSTRING_EQUAL(out + off, line, strlen(line));
        off += strlen(line);
    }
    CU_ASSERT_EQUAL(strlen(out), off);      /* four lines, nothing else */
    free(out);
    log_set_level(LOG_LEVEL_INFO);
}

static void test_lines_below_the_level_are_not_written(void)
{
    log_set_level(LOG_LEVEL_WARN);
    struct log_limit lim = { 0 };
    struct log_tally t = { 0 };
    struct capture c;
    capture_begin(&c);
    log_debug("hidden debug");
    log_info("hidden info");
    log_ratelimited_at(&lim, INTERVAL, START, LOG_LEVEL_INFO, "hidden limited");
    log_tally(&t, INTERVAL, START, LOG_LEVEL_INFO, "hidden events", "10.0.0.3");
    log_tally_flush(&t, START + SECOND, LOG_LEVEL_INFO, "hidden events");
    log_write_body(LOG_LEVEL_INFO, "body", 4, "hidden body ");
    log_warn("shown warn");
    log_error("shown error");
    char *out = capture_end(&c);
    CU_ASSERT_PTR_NULL(strstr(out, "hidden"));
    CU_ASSERT_EQUAL(count_of(out, "shown"), 2);
    CU_ASSERT_EQUAL(count_of(out, "\n"), 2);
    CU_ASSERT_EQUAL(t.count, 0);            /* not even counted */
    free(out);
    log_set_level(LOG_LEVEL_INFO);
}

static void test_durations_are_worded_one_way(void)
{
    static const struct {
        uint64_t ms;
        const char *text;
    } rows[] = {
        { 0, "0 ms" }, { 250, "250 ms" }, { 999, "999 ms" }, { 1000, "1 s" }, { 2500, "2.5 s" },
        { 2549, "2.5 s" }, { 9999, "10 s" }, { 10000, "10 s" }, { 10499, "10 s" }, { 119000, "119 s" },
        { 120000, "2 min" }, { 3599000, "60 min" }, { 7200000, "2 h" }, { 86400000, "24 h" },
    };
    char buf[DURATION_MAX];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CU_ASSERT_PTR_EQUAL(log_duration(buf, sizeof buf, rows[i].ms), buf);
        CU_ASSERT_STRING_EQUAL(buf, rows[i].text);
    }
    char tiny[4];
    log_duration(tiny, sizeof tiny, 123456);
    CU_ASSERT_EQUAL(strlen(tiny), sizeof tiny - 1);     /* cut, terminated */
}

static void test_repeats_say_how_many_more_and_over_what_time(void)
{
    struct log_limit lim = { 0 };
    struct capture c;
    capture_begin(&c);
    log_ratelimited_at(&lim, INTERVAL, START, LOG_LEVEL_WARN, "bad packet from %s", "10.0.0.3");
    log_ratelimited_at(&lim, INTERVAL, START + 1, LOG_LEVEL_WARN, "bad packet from %s", "10.0.0.4");
    log_ratelimited_at(&lim, INTERVAL, START + INTERVAL - 1, LOG_LEVEL_WARN, "bad packet from %s", "10.0.0.5");
    log_ratelimited_at(&lim, INTERVAL, START + 2500 + INTERVAL, LOG_LEVEL_WARN, "bad packet from %s", "10.0.0.6");
    /* a line alone after a quiet interval has no count */
    log_ratelimited_at(&lim, INTERVAL, START + 2 * INTERVAL + 2500, LOG_LEVEL_WARN, "bad packet from %s",
                       "10.0.0.7");
    char *out = capture_end(&c);
    char head[256], want[1024];
    expected_head(head, sizeof head, "<4>", "warn");
    snprintf(want, sizeof want,
             "%sbad packet from 10.0.0.3\n"
             "%sbad packet from 10.0.0.6 (and 2 more like it in the last 13 s)\n"
             "%sbad packet from 10.0.0.7\n", head, head, head);
    CU_ASSERT_STRING_EQUAL(out, want);
    CU_ASSERT_EQUAL(lim.suppressed, 0);
    free(out);
}

static void test_repeats_within_a_second_say_ms(void)
{
    struct log_limit lim = { 0 };
    struct capture c;
    capture_begin(&c);
    log_ratelimited_at(&lim, 200, START, LOG_LEVEL_WARN, "refused");
    log_ratelimited_at(&lim, 200, START + 100, LOG_LEVEL_WARN, "refused");
    log_ratelimited_at(&lim, 200, START + 250, LOG_LEVEL_WARN, "refused");
    char *out = capture_end(&c);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "warn: refused (and 1 more like it in the last 250 ms)\n"));
    CU_ASSERT_EQUAL(count_of(out, "\n"), 2);
    free(out);
}

static void test_no_interval_means_every_line(void)
{
    struct log_limit lim = { 0 };
    struct capture c;
    capture_begin(&c);
    for (int i = 0; i < 3; i++)
        log_ratelimited_at(&lim, 0, START, LOG_LEVEL_WARN, "line %d", i);
    char *out = capture_end(&c);
    CU_ASSERT_EQUAL(count_of(out, "\n"), 3);
    CU_ASSERT_PTR_NULL(strstr(out, "more like it"));
    free(out);
}

/* The real clock: the second line of a pair within an hour is held back. */
static void test_ratelimited_reads_the_monotonic_clock(void)
{
    struct log_limit lim = { 0 };
    struct capture c;
    capture_begin(&c);
    log_ratelimited(&lim, 3600 * SECOND, LOG_LEVEL_WARN, "once");
    log_ratelimited(&lim, 3600 * SECOND, LOG_LEVEL_WARN, "once");
    char *out = capture_end(&c);
    CU_ASSERT_EQUAL(count_of(out, "once"), 1);
    CU_ASSERT_EQUAL(lim.suppressed, 1);
    free(out);
}

static void test_tally_of_one_source_is_one_line_per_window(void)
{
    struct log_tally t = { 0 };
    struct capture c;
    capture_begin(&c);
    for (uint64_t i = 0; i < 1532; i++)
        log_tally(&t, INTERVAL, START + i * 5, LOG_LEVEL_WARN, "malformed packets dropped", "10.0.0.3");
    char *quiet = capture_end(&c);
    CU_ASSERT_STRING_EQUAL(quiet, "");      /* the window is not over */
    free(quiet);

    capture_begin(&c);
    log_tally(&t, INTERVAL, START + INTERVAL, LOG_LEVEL_WARN, "malformed packets dropped", "10.0.0.3");
    log_tally_flush(&t, START + INTERVAL + 2500, LOG_LEVEL_WARN, "malformed packets dropped");
    log_tally_flush(&t, START + 3 * INTERVAL, LOG_LEVEL_WARN, "malformed packets dropped");
    char *out = capture_end(&c);
    char head[256], want[1024];
    expected_head(head, sizeof head, "<4>", "warn");
    snprintf(want, sizeof want,
             "%s1532 malformed packets dropped from 10.0.0.3 in the last 10 s\n"
             "%s1 malformed packets dropped from 10.0.0.3 in the last 2.5 s\n", head, head);
    CU_ASSERT_STRING_EQUAL(out, want);      /* the second flush had nothing */
    CU_ASSERT_EQUAL(t.count, 0);
    free(out);
}

static void test_tally_of_several_sources_names_the_first(void)
{
    static const char *const from[] = { "10.0.0.3", "10.0.0.4", "10.0.0.3", "10.0.0.5", "10.0.0.4", "10.0.0.3" };
    struct log_tally t = { 0 };
    struct capture c;
    capture_begin(&c);
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++)
        log_tally(&t, INTERVAL, START + i, LOG_LEVEL_WARN, "malformed packets dropped", from[i]);
    log_tally_flush(&t, START + INTERVAL, LOG_LEVEL_WARN, "malformed packets dropped");
    /* two sources: "1 other" */
    log_tally(&t, INTERVAL, START + INTERVAL, LOG_LEVEL_WARN, "connections refused", "[2001:db8::1]:5060");
    log_tally(&t, INTERVAL, START + INTERVAL + 1, LOG_LEVEL_WARN, "connections refused", "10.0.0.9:5060");
    log_tally_flush(&t, START + INTERVAL + 250, LOG_LEVEL_WARN, "connections refused");
    char *out = capture_end(&c);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "warn: 6 malformed packets dropped from 3 sources (10.0.0.3 and 2 others) "
                                       "in the last 10 s\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "warn: 2 connections refused from 2 sources ([2001:db8::1]:5060 and 1 other) "
                                       "in the last 250 ms\n"));
    CU_ASSERT_EQUAL(count_of(out, "\n"), 2);
    free(out);
}

static void test_tally_of_many_sources_says_more_than(void)
{
    struct log_tally t = { 0 };
    char addr[LOG_TALLY_SUBJECT_MAX];
    struct capture c;
    capture_begin(&c);
    for (unsigned i = 0; i < MANY_SOURCES; i++) {
        snprintf(addr, sizeof addr, "192.0.2.%u", i + 1);
        log_tally(&t, INTERVAL, START, LOG_LEVEL_WARN, "packets from unknown senders dropped", addr);
    }
    log_tally_flush(&t, START + 3 * SECOND, LOG_LEVEL_WARN, "packets from unknown senders dropped");
    char *out = capture_end(&c);
    char want[256];
    snprintf(want, sizeof want, "warn: %u packets from unknown senders dropped from more than %u sources "
             "(192.0.2.1 and others) in the last 3 s\n", MANY_SOURCES, LOG_TALLY_SUBJECTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    free(out);
}

static void test_tally_without_subject_and_without_interval(void)
{
    struct log_tally t = { 0 };
    struct capture c;
    capture_begin(&c);
    log_tally(&t, INTERVAL, START, LOG_LEVEL_INFO, "held packets released by their fallback", NULL);
    log_tally(&t, INTERVAL, START + 1, LOG_LEVEL_INFO, "held packets released by their fallback", NULL);
    log_tally(&t, INTERVAL, START + 2, LOG_LEVEL_INFO, "held packets released by their fallback", NULL);
    log_tally_flush(&t, START + 2 * SECOND, LOG_LEVEL_INFO, "held packets released by their fallback");
    /* interval 0, no rate limit: a line per event, at once */
    log_tally(&t, 0, START, LOG_LEVEL_INFO, "bad frames", "10.0.0.3");
    log_tally(&t, 0, START, LOG_LEVEL_INFO, "bad frames", "10.0.0.4");
    char *out = capture_end(&c);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: 3 held packets released by their fallback in the last 2 s\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: 1 bad frames from 10.0.0.3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: 1 bad frames from 10.0.0.4\n"));
    CU_ASSERT_EQUAL(count_of(out, "\n"), 3);
    CU_ASSERT_EQUAL(t.count, 0);
    free(out);
}

/* A long subject is cut to the tally's buffer, never overflowing it. */
static void test_tally_cuts_a_long_subject(void)
{
    char subject[3 * LOG_TALLY_SUBJECT_MAX];
    memset(subject, 'a', sizeof subject - 1);
    subject[sizeof subject - 1] = '\0';
    struct log_tally t = { 0 };
    log_tally(&t, INTERVAL, START, LOG_LEVEL_WARN, "x", subject);
    CU_ASSERT_EQUAL(strlen(t.first), LOG_TALLY_SUBJECT_MAX - 1);
    struct capture c;
    capture_begin(&c);
    log_tally_flush(&t, START + SECOND, LOG_LEVEL_WARN, "x");
    char *out = capture_end(&c);
    CU_ASSERT_EQUAL(count_of(out, "\n"), 1);
    free(out);
}

static char body[BODY_LEN + 1];

/*
 * Binds /dev/log as a syslog daemon would, when none is there (this test
 * machine has no syslog daemon and no /dev/log).  Returns the socket, or
 * -1 when a daemon owns it.
 */
static int syslog_listen(void)
{
    struct stat st;
    if (stat(SYSLOG_PATH, &st) == 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", SYSLOG_PATH);
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The next datagram on fd (NUL-terminated in buf), or "" after SYSLOG_WAIT_MS. */
static void syslog_receive(int fd, char *buf, size_t size)
{
    buf[0] = '\0';
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, SYSLOG_WAIT_MS) != 1)
        return;
    ssize_t n = recv(fd, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
}

/*
 * With syslog as the target nothing goes to stderr.  When /dev/log can be
 * bound here (no syslog daemon, as on the build machines), the messages are
 * read back: facility and priority, ident and pid, the level, and the body
 * of log_write_body() in the same one message.  Where a daemon owns
 * /dev/log, the messages go to it and only stderr is checked.
 */
static void test_syslog_target_writes_nothing_to_stderr(void)
{
    int fd = syslog_listen();
    memset(body, 'x', BODY_LEN);
    body[BODY_LEN - 1] = '}';
    struct capture c;
    capture_begin(&c);
    log_open(LOG_TARGET_SYSLOG, LOG_LOCAL3, "heprouter-test");
    log_warn("hello %s", "syslog");
    log_write_body(LOG_LEVEL_INFO, body, BODY_LEN, "stats (%s): ", "test");
    char *out = capture_end(&c);
    CU_ASSERT_STRING_EQUAL(out, "");
    free(out);
    if (fd >= 0) {
        static char dgram[SYSLOG_DGRAM];
        char want[256];
        syslog_receive(fd, dgram, sizeof dgram);
        snprintf(want, sizeof want, "heprouter-test[%ld]: warn: hello syslog", (long)getpid());
        CU_ASSERT_NSTRING_EQUAL(dgram, "<156>", 5);         /* local3 (152) | warning (4) */
        CU_ASSERT_PTR_NOT_NULL(strstr(dgram, want));
        syslog_receive(fd, dgram, sizeof dgram);
        CU_ASSERT_NSTRING_EQUAL(dgram, "<158>", 5);         /* local3 | info (6) */
        const char *stats = strstr(dgram, "info: stats (test): xxx");
        CU_ASSERT_PTR_NOT_NULL(stats);
        if (stats != NULL)
            CU_ASSERT_EQUAL(strlen(stats), strlen("info: stats (test): ") + BODY_LEN);
        /* a new facility and ident at reload */
        log_open(LOG_TARGET_SYSLOG, LOG_DAEMON, "heprouter-reloaded");
        log_error("after reload");
        syslog_receive(fd, dgram, sizeof dgram);
        CU_ASSERT_NSTRING_EQUAL(dgram, "<27>", 4);          /* daemon (24) | err (3) */
        CU_ASSERT_PTR_NOT_NULL(strstr(dgram, "heprouter-reloaded["));
        CU_ASSERT_PTR_NOT_NULL(strstr(dgram, "error: after reload"));
        log_close();
        close(fd);
        unlink(SYSLOG_PATH);
    }
    log_close();
    capture_begin(&c);
    log_warn("back on stderr");
    out = capture_end(&c);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<4>heprouter["));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "warn: back on stderr\n"));
    free(out);
}

static void *log_lines(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACE_LINES; i++)
        log_warn("race line %d of a worker", i);
    return NULL;
}

/*
 * Lines racing log_open() (a reload) go whole to one target or the other:
 * no crash, and every line that reached stderr is complete.  Run it under
 * the sanitizers to see the rest.
 */
static void test_lines_racing_a_target_switch_stay_whole(void)
{
    pthread_t threads[RACE_THREADS];
    struct capture c;
    capture_begin(&c);
    for (int i = 0; i < RACE_THREADS; i++)
        CU_ASSERT_FATAL(pthread_create(&threads[i], NULL, log_lines, NULL) == 0);
    for (int i = 0; i < RACE_SWITCHES; i++) {
        log_open(i % 2 == 0 ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR, LOG_USER, i % 4 == 0 ? "a" : "b");
        usleep(50);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(threads[i], NULL);
    log_close();
    log_warn("the end");
    char *out = capture_end(&c);
    size_t lines = count_of(out, "\n");
    CU_ASSERT_EQUAL(count_of(out, "warn: race line "), lines - 1);
    CU_ASSERT_EQUAL(count_of(out, " of a worker\n"), lines - 1);
    CU_ASSERT_EQUAL(count_of(out, "<4>heprouter["), lines);
    CU_ASSERT_TRUE(lines > 1);              /* some went to stderr */
    CU_ASSERT_TRUE(lines <= RACE_THREADS * RACE_LINES + 1);
    free(out);
}

int main(void)
{
    /* as under systemd: the priority prefix on every stderr line */
    setenv("JOURNAL_STREAM", "8:12345", 1);
    static const struct unit_test tests[] = {
        { "each level has its journal prefix", test_each_level_has_its_journal_prefix },
        { "lines below the level are not written", test_lines_below_the_level_are_not_written },
        { "durations are worded one way", test_durations_are_worded_one_way },
        { "repeats say how many more and over what time", test_repeats_say_how_many_more_and_over_what_time },
        { "repeats within a second say ms", test_repeats_within_a_second_say_ms },
        { "no interval means every line", test_no_interval_means_every_line },
        { "log_ratelimited reads the monotonic clock", test_ratelimited_reads_the_monotonic_clock },
        { "tally of one source is one line per window", test_tally_of_one_source_is_one_line_per_window },
        { "tally of several sources names the first", test_tally_of_several_sources_names_the_first },
        { "tally of many sources says more than", test_tally_of_many_sources_says_more_than },
        { "tally without subject and without interval", test_tally_without_subject_and_without_interval },
        { "tally cuts a long subject", test_tally_cuts_a_long_subject },
        { "syslog target writes nothing to stderr", test_syslog_target_writes_nothing_to_stderr },
        { "lines racing a target switch stay whole", test_lines_racing_a_target_switch_stay_whole },
        { NULL, NULL },
    };
    return unit_run("log", tests);
}
