/*
 * test_metrics.c - unit tests for src/metrics.c (the counters and their
 * JSON) and for the one log function that writes it, log_write_body() in
 * src/log.c: the counters line must be whole however many destinations
 * there are, while ordinary lines keep their cap.  The configuration is
 * built by hand so the tests do not depend on the YAML loader.
 *
 * The counter lists of metrics.h are held to two texts: the JSON line that
 * operators parse (tests/data/metrics/counters-2x2.json, written by the
 * hand-written metrics_write_json() the lists replaced, at a6ac675, for
 * the struct fill_counters() makes), and heprouter(8)'s COUNTERS section.
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

/* ---- the lists against the JSON line ---- */

/* Calls fn on every counter of m that the JSON line shows, in its order. */
typedef void counter_fn(uint64_t *v);

#define VISIT(name, help) fn(&s->name);
#define VISIT_ARRAY(name, count, key, help) \
    for (int i = 1; i < (count); i++)       \
        fn(&s->name[i]);

static void visit_counters(struct metrics *s, counter_fn *fn)
{
    METRICS_COUNTERS(VISIT, VISIT_ARRAY, VISIT_ARRAY)
}

static void visit_dest(struct metrics_dest *s, counter_fn *fn)
{
    METRICS_DEST_COUNTERS(VISIT)
}

static void visit_target(struct metrics_target *s, counter_fn *fn)
{
    METRICS_TARGET_COUNTERS(VISIT)
}

#undef VISIT
#undef VISIT_ARRAY

static void visit(struct metrics *m, counter_fn *fn)
{
    visit_counters(m, fn);
    for (size_t i = 0; i < m->ndests; i++) {
        visit_dest(&m->dests[i], fn);
        size_t end = i + 1 < m->ndests ? m->dest_first_target[i + 1] : m->ntargets;
        for (size_t t = m->dest_first_target[i]; t < end; t++)
            visit_target(&m->targets[t], fn);
    }
}

/* The k-th counter of the JSON line holds k * VALUE_STEP: distinct, most above 2^32. */
#define VALUE_STEP 1000000001ULL
#define COUNTERS_2X2 106            /* numbers in counters-2x2.json */
static uint64_t visited;

static void set_next(uint64_t *v)
{
    *v = ++visited * VALUE_STEP;
}

static void check_twice_next(uint64_t *v)
{
    CU_ASSERT_EQUAL(*v, 2 * ++visited * VALUE_STEP);
}

static void check_zero(uint64_t *v)
{
    visited++;
    CU_ASSERT_EQUAL(*v, 0);
}

static void fill_counters(struct metrics *m)
{
    visited = 0;
    visit(m, set_next);
}

/* The configuration of the fixture: 2 destinations of 2 targets. */
static void build_conf_2x2(void)
{
    static const char *const texts[2][2] = {
        { "udp:192.0.2.10:9060", "tcp:192.0.2.11:9061" },
        { "udp:[2001:db8::1]:9060", "tcp:[2001:db8::2]:9062" },
    };
    memset(&conf, 0, sizeof conf);
    memset(dests, 0, sizeof dests);
    snprintf(names[0], sizeof names[0], "homer");
    snprintf(names[1], sizeof names[1], "voipmonitor");
    for (size_t i = 0; i < 2; i++) {
        dests[i].name = names[i];
        dests[i].targets = targets[i];
        dests[i].ntargets = 2;
        for (size_t j = 0; j < 2; j++)
            CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(texts[i][j], &targets[i][j]));
    }
    conf.dests = dests;
    conf.ndests = 2;
}

/* TEST_DATA_DIR/relpath as a NUL-terminated string. */
static char *read_text(const char *relpath)
{
    size_t len = 0;
    unsigned char *data = unit_read_file(relpath, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    char *text = malloc(len + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    memcpy(text, data, len);
    text[len] = '\0';
    free(data);
    return text;
}

static void test_json_is_byte_identical_to_the_fixture(void)
{
    build_conf_2x2();
    struct metrics m;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&m, &conf), 0);
    fill_counters(&m);
    CU_ASSERT_EQUAL(visited, COUNTERS_2X2);
    size_t len = 0;
    char *json = json_of(&m, &len);
    char *want = read_text("metrics/counters-2x2.json");
    CU_ASSERT_EQUAL(len, strlen(want));
    CU_ASSERT_STRING_EQUAL(json, want);
    free(want);
    free(json);
    metrics_free(&m);
}

static void test_add_sums_and_reset_zeroes_every_counter(void)
{
    build_conf_2x2();
    struct metrics a, b;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&a, &conf), 0);
    CU_ASSERT_EQUAL_FATAL(metrics_init(&b, &conf), 0);
    fill_counters(&a);
    fill_counters(&b);
    metrics_add(&a, &b);
    visited = 0;
    visit(&a, check_twice_next);
    CU_ASSERT_EQUAL(visited, COUNTERS_2X2);
    metrics_reset(&a);
    visited = 0;
    visit(&a, check_zero);
    CU_ASSERT_EQUAL(visited, COUNTERS_2X2);
    metrics_free(&a);
    metrics_free(&b);
}

/* ---- the lists against heprouter(8) ---- */

#define WORD_MAX 40
#define WORDS_MAX 256
#define ENTRIES_MAX 32

struct words {
    size_t n;
    char w[WORDS_MAX][WORD_MAX];
};

/* Longer words are cut: no counter is that long. */
static void words_add(struct words *ws, const char *w, size_t len)
{
    CU_ASSERT_FATAL(ws->n < WORDS_MAX);
    if (len >= WORD_MAX)
        len = WORD_MAX - 1;
    memcpy(ws->w[ws->n], w, len);
    ws->w[ws->n][len] = '\0';
    ws->n++;
}

static void words_add_all(struct words *ws, const struct words *more)
{
    for (size_t i = 0; i < more->n; i++)
        words_add(ws, more->w[i], strlen(more->w[i]));
}

static int words_count(const struct words *ws, const char *w)
{
    int n = 0;
    for (size_t i = 0; i < ws->n; i++)
        n += strcmp(ws->w[i], w) == 0;
    return n;
}

/*
 * Appends the bold arguments of one man(7) line to ws: all of .B, the 1st,
 * 3rd, ... of .BR and .BI, the 2nd, 4th, ... of .RB and .IB.  An argument
 * is a word or a "quoted string".
 */
static void bold_words(const char *line, struct words *ws)
{
    int parity;
    if (strncmp(line, ".B ", 3) == 0)
        parity = -1;
    else if (strncmp(line, ".BR ", 4) == 0 || strncmp(line, ".BI ", 4) == 0)
        parity = 0;
    else if (strncmp(line, ".RB ", 4) == 0 || strncmp(line, ".IB ", 4) == 0)
        parity = 1;
    else
        return;
    const char *p = strchr(line, ' ');
    for (int arg = 0;; arg++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return;
        const char *start = p;
        size_t len;
        if (*p == '"') {
            start = ++p;
            while (*p != '"' && *p != '\0')
                p++;
            len = (size_t)(p - start);
            if (*p == '"')
                p++;
        } else {
            while (*p != ' ' && *p != '\0')
                p++;
            len = (size_t)(p - start);
        }
        if (parity < 0 || arg % 2 == parity)
            words_add(ws, start, len);
    }
}

/* One .TP paragraph: the bold words of its tag line and of its text. */
struct man_entry {
    struct words tag;
    struct words text[2];           /* [1]: from a line saying "per target" on */
};

/* Splits section .SH name of a man page (text is changed) into its .TP paragraphs. */
static size_t man_entries(char *text, const char *name, struct man_entry *entries, size_t max)
{
    size_t n = 0;
    int in_section = 0, tag_next = 0, part = 0;
    char *saveptr = NULL;
    for (char *line = strtok_r(text, "\n", &saveptr); line != NULL; line = strtok_r(NULL, "\n", &saveptr)) {
        if (strncmp(line, ".SH ", 4) == 0) {
            if (in_section)
                break;
            in_section = strcmp(line + 4, name) == 0;
        } else if (in_section && strcmp(line, ".TP") == 0) {
            CU_ASSERT_FATAL(n < max);
            memset(&entries[n++], 0, sizeof entries[0]);
            tag_next = 1;
            part = 0;
        } else if (in_section && n > 0) {
            if (strstr(line, "per target") != NULL)
                part = 1;
            bold_words(line, tag_next ? &entries[n - 1].tag : &entries[n - 1].text[part]);
            tag_next = 0;
        }
    }
    return n;
}

/* Adds the settings heprouter.yaml(5) defines: the first bold word of each .TP tag. */
static void setting_names(char *text, struct words *ws)
{
    char *saveptr = NULL;
    int tag_next = 0;
    for (char *line = strtok_r(text, "\n", &saveptr); line != NULL; line = strtok_r(NULL, "\n", &saveptr)) {
        if (tag_next) {
            struct words tag = { 0 };
            bold_words(line, &tag);
            if (tag.n > 0)
                words_add(ws, tag.w[0], strlen(tag.w[0]));
        }
        tag_next = strcmp(line, ".TP") == 0;
    }
}

static const struct man_entry *entry_tagged(const struct man_entry *entries, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (entries[i].tag.n == 1 && strcmp(entries[i].tag.w[0], name) == 0)
            return &entries[i];
    return NULL;
}

/*
 * Checks that the bold words of one place of heprouter(8) name every key of
 * want once, and nothing else but the words of also (references).
 */
static void check_named(const char *where, const struct words *named, const struct words *want,
                        const struct words *also)
{
    for (size_t i = 0; i < want->n; i++) {
        int times = words_count(named, want->w[i]);
        if (times != 1) {
            fprintf(stderr, "\n    heprouter(8) %s: \"%s\" named %d times", where, want->w[i], times);
            CU_FAIL("a counter is not documented once");
        }
    }
    for (size_t i = 0; i < named->n; i++)
        if (words_count(want, named->w[i]) == 0 && words_count(also, named->w[i]) == 0) {
            fprintf(stderr, "\n    heprouter(8) %s: \"%s\" is no counter", where, named->w[i]);
            CU_FAIL("a counter is documented that does not exist");
        }
}

/* The keys of an array of the lists: key(1) .. key(count - 1). */
static void array_keys(struct words *ws, int count, const char *(*key)(int))
{
    for (int i = 1; i < count; i++)
        words_add(ws, key(i), strlen(key(i)));
}

#define ADD_NAME(name, help) words_add(ws, #name, strlen(#name));
#define ADD_NAME_ARRAY(name, count, key, help) words_add(ws, #name, strlen(#name));
#define ADD_KEYS(name, count, key, help) array_keys(ws, (count), key);
#define SKIP(...)

/* The keys at the top of the JSON line. */
static void top_keys(struct words *ws)
{
    METRICS_COUNTERS(ADD_NAME, ADD_KEYS, ADD_NAME_ARRAY)
    words_add(ws, "destinations", strlen("destinations"));
}

static void dest_keys(struct words *ws)
{
    METRICS_DEST_COUNTERS(ADD_NAME)
}

static void target_keys(struct words *ws)
{
    METRICS_TARGET_COUNTERS(ADD_NAME)
}

static struct man_entry counters[ENTRIES_MAX];
static size_t ncounters;
static struct words refs;           /* other counters, and settings of heprouter.yaml(5) */

/* A GROUP's paragraph names each of its keys once. */
static void check_group(const char *name, int count, const char *(*key)(int))
{
    const struct man_entry *e = entry_tagged(counters, ncounters, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    struct words want = { 0 };
    array_keys(&want, count, key);
    check_named(name, &e->text[0], &want, &refs);
    CU_ASSERT_EQUAL(e->text[1].n, 0);
}

#define CHECK_GROUP(name, count, key, help) check_group(#name, (count), key);

static void test_man_page_documents_every_counter(void)
{
    char *man8 = read_text("../../man/heprouter.8");
    ncounters = man_entries(man8, "COUNTERS", counters, ENTRIES_MAX);
    free(man8);
    CU_ASSERT_FATAL(ncounters > 0);

    struct words top = { 0 }, tags = { 0 };
    top_keys(&top);
    memset(&refs, 0, sizeof refs);
    words_add_all(&refs, &top);
    char *yaml5 = read_text("../../man/heprouter.yaml.5");
    setting_names(yaml5, &refs);
    free(yaml5);
    CU_ASSERT_FATAL(words_count(&refs, "max_packet") == 1);

    /* every top-level key is one paragraph's tag, and every tag is one */
    for (size_t i = 0; i < ncounters; i++)
        words_add_all(&tags, &counters[i].tag);
    static const struct words nothing_else;
    check_named("COUNTERS tags", &tags, &top, &nothing_else);

    METRICS_COUNTERS(SKIP, SKIP, CHECK_GROUP)

    /* destinations: its counters, then "per target" the targets' */
    const struct man_entry *e = entry_tagged(counters, ncounters, "destinations");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    struct words want = { 0 };
    dest_keys(&want);
    check_named("destinations", &e->text[0], &want, &refs);
    memset(&want, 0, sizeof want);
    target_keys(&want);
    check_named("destinations, per target", &e->text[1], &want, &refs);
}

#undef ADD_NAME
#undef ADD_NAME_ARRAY
#undef ADD_KEYS
#undef SKIP
#undef CHECK_GROUP

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
        { "JSON is byte-identical to the fixture", test_json_is_byte_identical_to_the_fixture },
        { "add sums and reset zeroes every counter", test_add_sums_and_reset_zeroes_every_counter },
        { "heprouter(8) documents every counter", test_man_page_documents_every_counter },
        { "log_write_body writes the body whole", test_body_is_written_whole },
        { "ordinary lines keep their cap", test_ordinary_lines_keep_their_cap },
        { "log_write_body respects the level", test_body_respects_the_level },
        { NULL, NULL },
    };
    return unit_run("metrics", tests);
}
