/*
 * test_metrics.c - unit tests for src/metrics.c (the counters and their
 * JSON) and for the one log function that writes it, log_write_body() in
 * src/log.c: the counters line must be whole however many destinations
 * there are, while ordinary lines keep their cap.  The configuration is
 * built by hand so the tests do not depend on the YAML loader.
 */
#include <fcntl.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "unit.h"

#define MANY_DESTS 12
#define TARGETS_EACH 3
#define LONG_BODY 10000             /* well past one ordinary log line (2048) */

static struct conf conf;
static struct conf_dest dests[MANY_DESTS];
static struct conf_addr targets[MANY_DESTS][TARGETS_EACH];
static char names[MANY_DESTS][32];

/* MANY_DESTS destinations of TARGETS_EACH UDP targets each. */
static void build_conf(void)
{
    memset(&conf, 0, sizeof conf);
    memset(dests, 0, sizeof dests);
    for (size_t i = 0; i < MANY_DESTS; i++) {
        snprintf(names[i], sizeof names[i], "capture-backend-%zu", i + 1);
        dests[i].name = names[i];
        dests[i].targets = targets[i];
        dests[i].ntargets = TARGETS_EACH;
        for (size_t j = 0; j < TARGETS_EACH; j++) {
            char text[sizeof targets[i][j].text];
            snprintf(text, sizeof text, "udp:127.0.0.%zu:9", 2 + i * TARGETS_EACH + j);
            CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(text, &targets[i][j]));
        }
    }
    conf.dests = dests;
    conf.ndests = MANY_DESTS;
}

static char *json_of(const struct metrics *m, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    metrics_write_json(m, &conf, f);
    fclose(f);
    return buf;
}

/* Brackets balance and close at the end: the object is whole. */
static int json_closes_at_end(const char *s, size_t len)
{
    int depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '{')
            depth++;
        else if (s[i] == '}' && --depth == 0)
            return i + 2 == len && s[i + 1] == '\n';
    }
    return 0;
}

static void test_json_names_every_destination_and_target(void)
{
    build_conf();
    struct metrics m;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&m, &conf), 0);
    CU_ASSERT_EQUAL(m.ntargets, MANY_DESTS * TARGETS_EACH);
    m.targets[m.ntargets - 1].packets = 7;
    size_t len = 0;
    char *json = json_of(&m, &len);
    CU_ASSERT_TRUE(len > 2048);
    CU_ASSERT_TRUE(json_closes_at_end(json, len));
    for (size_t i = 0; i < MANY_DESTS; i++) {
        char key[sizeof names + sizeof targets[i][0].text];
        snprintf(key, sizeof key, "\"%s\":{", names[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(json, key));
        for (size_t j = 0; j < TARGETS_EACH; j++) {
            snprintf(key, sizeof key, "\"%s\":{", targets[i][j].text);
            CU_ASSERT_PTR_NOT_NULL(strstr(json, key));
        }
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"udp:127.0.0.37:9\":{\"packets\":7,"));
    free(json);
    metrics_free(&m);
}

/* The counters the router bumps and the one main.c fills from the store. */
static void test_json_has_the_issue_11_counters(void)
{
    build_conf();
    struct metrics a, b;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&a, &conf), 0);
    CU_ASSERT_EQUAL_FATAL(metrics_init(&b, &conf), 0);
    a.sip_lines_skipped = 1;
    a.payload_inflated = 2;
    a.payload_inflate_errors = 3;
    a.calls_not_stored = 4;
    b.sip_lines_skipped = 10;
    b.payload_inflated = 20;
    b.payload_inflate_errors = 30;
    b.calls_not_stored = 40;
    metrics_add(&a, &b);
    a.store_evictions = 900;
    size_t len = 0;
    char *json = json_of(&a, &len);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"sip_lines_skipped\":11,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"payload_inflated\":22,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"payload_inflate_errors\":33,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"calls_not_stored\":44,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"store_evictions\":900,"));
    free(json);
    metrics_reset(&a);
    CU_ASSERT_EQUAL(a.sip_lines_skipped + a.payload_inflated + a.payload_inflate_errors + a.calls_not_stored
                    + a.store_evictions, 0);
    metrics_free(&a);
    metrics_free(&b);
}

/*
 * Runs fn with stderr sent to a temporary file and returns what it wrote
 * (NUL-terminated, malloc'ed).
 */
static char *capture_stderr(void (*fn)(void), size_t *len)
{
    char path[] = "/tmp/test_metrics.XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    CU_ASSERT_FATAL(saved >= 0);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t size = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)size + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_EQUAL(pread(fd, buf, (size_t)size, 0), size);
    close(fd);
    *len = (size_t)size;
    return buf;
}

static char long_body[LONG_BODY + 1];

static void write_long_body(void)
{
    log_write_body(LOG_LEVEL_INFO, long_body, LONG_BODY, "stats (%s): ", "test");
}

static void write_long_message(void)
{
    log_info("%s", long_body);
}

static void test_body_is_written_whole(void)
{
    memset(long_body, 'x', LONG_BODY);
    long_body[LONG_BODY - 1] = '}';
    size_t len = 0;
    char *out = capture_stderr(write_long_body, &len);
    const char *head = strstr(out, "info: stats (test): xxx");
    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    CU_ASSERT_EQUAL(strlen(head), strlen("info: stats (test): ") + LONG_BODY + 1);
    CU_ASSERT_EQUAL(out[len - 2], '}');
    CU_ASSERT_EQUAL(out[len - 1], '\n');
    CU_ASSERT_PTR_EQUAL(strchr(out, '\n'), out + len - 1);     /* one line */
    free(out);
}

static void test_ordinary_lines_keep_their_cap(void)
{
    memset(long_body, 'x', LONG_BODY);
    size_t len = 0;
    char *out = capture_stderr(write_long_message, &len);
    CU_ASSERT_TRUE(len > 0 && len <= 2048);
    CU_ASSERT_EQUAL(out[len - 1], '\n');
    free(out);
}

static void test_body_respects_the_level(void)
{
    int level = log_current_level;
    log_set_level(LOG_LEVEL_WARN);
    size_t len = 0;
    char *out = capture_stderr(write_long_body, &len);
    CU_ASSERT_EQUAL(len, 0);
    free(out);
    log_set_level(level);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "JSON names every destination and target", test_json_names_every_destination_and_target },
        { "JSON has the issue 11 counters", test_json_has_the_issue_11_counters },
        { "log_write_body writes the body whole", test_body_is_written_whole },
        { "ordinary lines keep their cap", test_ordinary_lines_keep_their_cap },
        { "log_write_body respects the level", test_body_respects_the_level },
        { NULL, NULL },
    };
    return unit_run("metrics", tests);
}
