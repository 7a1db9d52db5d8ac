/*
 * test_metrics.c - unit tests for src/metrics.c (the counters and their
 * JSON) and for the one log function that writes it, log_write_body() in
 * src/log.c: the counters line must be whole however many destinations
 * there are, while ordinary lines keep their cap.  The configuration is
 * built by hand so the tests do not depend on the YAML loader.
 *
 * The counter lists of metrics.h are held to three texts: the JSON line that
 * operators parse (tests/data/metrics/counters-2x2.json, written by the
 * hand-written metrics_write_json() the lists replaced, at a6ac675, for
 * the struct fill_counters() makes), the Prometheus text of a small
 * configuration (tests/data/metrics/small.prom, which promtool must also
 * accept), and heprouter(8)'s METRICS section.
 */
#include <fcntl.h>
#include <sys/wait.h>
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

#define VISIT(name, ...) fn(&s->name);
#define VISIT_ARRAY(name, count, ...) \
    for (int i = 1; i < (count); i++) \
        fn(&s->name[i]);
#define NOTHING(...)

static void visit_counters(struct metrics *s, counter_fn *fn)
{
    METRICS_COUNTERS(NOTHING, VISIT, VISIT_ARRAY, VISIT_ARRAY, NOTHING)
}

static void visit_dest(struct metrics_dest *s, counter_fn *fn)
{
    METRICS_DEST_COUNTERS(VISIT, NOTHING)
}

static void visit_target(struct metrics_target *s, counter_fn *fn)
{
    METRICS_TARGET_COUNTERS(VISIT, NOTHING)
}

static void visit_route(struct metrics_route *s, counter_fn *fn)
{
    METRICS_ROUTE_COUNTERS(VISIT, NOTHING)
}

/* What the JSON line holds, in its order. */
static void visit(struct metrics *m, counter_fn *fn)
{
    visit_counters(m, fn);
    for (size_t i = 0; i < m->ndests; i++) {
        visit_dest(&m->dests[i], fn);
        size_t end = i + 1 < m->ndests ? m->dest_first_target[i + 1] : m->ntargets;
        for (size_t t = m->dest_first_target[i]; t < end; t++)
            visit_target(&m->targets[t], fn);
    }
    for (size_t i = 0; i < m->nroutes; i++)
        visit_route(&m->routes[i], fn);
}

/* The k-th counter of the JSON line holds k * VALUE_STEP: distinct, most above 2^32. */
#define VALUE_STEP 1000000001ULL
#define COUNTERS_2X2 163            /* numbers in counters-2x2.json */
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

/*
 * Splits subsection .SS sub of section .SH name of a man page (text is
 * changed) into its .TP paragraphs.
 */
static size_t man_entries(char *text, const char *name, const char *sub, struct man_entry *entries, size_t max)
{
    size_t n = 0;
    int in_section = 0, in_sub = 0, tag_next = 0, part = 0;
    char *saveptr = NULL;
    for (char *line = strtok_r(text, "\n", &saveptr); line != NULL; line = strtok_r(NULL, "\n", &saveptr)) {
        if (strncmp(line, ".SH ", 4) == 0) {
            if (in_section)
                break;
            in_section = strcmp(line + 4, name) == 0;
        } else if (in_section && strncmp(line, ".SS ", 4) == 0) {
            if (in_sub)
                break;
            in_sub = strcmp(line + 4, sub) == 0;
        } else if (in_sub && strcmp(line, ".TP") == 0) {
            CU_ASSERT_FATAL(n < max);
            memset(&entries[n++], 0, sizeof entries[0]);
            tag_next = 1;
            part = 0;
        } else if (in_sub && n > 0) {
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

#define ADD_NAME(name, ...) words_add(ws, #name, strlen(#name));
#define ADD_NAME_ARRAY(name, count, key, help) words_add(ws, #name, strlen(#name));
#define ADD_KEYS(name, count, key, help) array_keys(ws, (count), key);
#define SKIP(...)

/* The keys at the top of the JSON line. */
static void top_keys(struct words *ws)
{
    METRICS_COUNTERS(SKIP, ADD_NAME, ADD_KEYS, ADD_NAME_ARRAY, SKIP)
    words_add(ws, "destinations", strlen("destinations"));
    words_add(ws, "routes", strlen("routes"));
}

static void dest_keys(struct words *ws)
{
    METRICS_DEST_COUNTERS(ADD_NAME, SKIP)
}

static void target_keys(struct words *ws)
{
    METRICS_TARGET_COUNTERS(ADD_NAME, SKIP)
}

static void route_keys(struct words *ws)
{
    METRICS_ROUTE_COUNTERS(ADD_NAME, SKIP)
}

#define MAN_JSON "The counters line"
#define MAN_PROMETHEUS "Prometheus"

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
    ncounters = man_entries(man8, "METRICS", MAN_JSON, counters, ENTRIES_MAX);
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
    check_named("METRICS tags", &tags, &top, &nothing_else);

    METRICS_COUNTERS(SKIP, SKIP, SKIP, CHECK_GROUP, SKIP)

    /* destinations: its counters, then "per target" the targets' */
    const struct man_entry *e = entry_tagged(counters, ncounters, "destinations");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    struct words want = { 0 };
    dest_keys(&want);
    check_named("destinations", &e->text[0], &want, &refs);
    memset(&want, 0, sizeof want);
    target_keys(&want);
    check_named("destinations, per target", &e->text[1], &want, &refs);

    /* routes: the routes' counters */
    e = entry_tagged(counters, ncounters, "routes");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    memset(&want, 0, sizeof want);
    route_keys(&want);
    check_named("routes", &e->text[0], &want, &refs);
}

#undef ADD_NAME
#undef ADD_NAME_ARRAY
#undef ADD_KEYS
#undef SKIP
#undef CHECK_GROUP

/* ---- the lists against Prometheus and heprouter(8)'s Prometheus families ---- */

#define FAMILIES_MAX 128
#define HELP_MAX 512

struct family {
    const char *name;
    const char *type;
    const char *labels;             /* "a,b", "" when none */
    const char *help;
};

static struct family families[FAMILIES_MAX];
static size_t nfamilies;

static void family_add(const char *name, const char *type, const char *labels, const char *help)
{
    CU_ASSERT_FATAL(nfamilies < FAMILIES_MAX);
    families[nfamilies++] = (struct family){ name, type, labels ? labels : "", help };
}

/* A function, so that a string literal can be tested for NULL without a warning. */
static int is_null(const char *s)
{
    return s == NULL;
}

static const char *top_type, *top_label;
static int top_open;                /* a family with a name is open */

#define FAM_TOP(prom, type, label, help)            \
    top_open = !is_null(prom);                      \
    top_type = (type);                              \
    top_label = (label);                            \
    if (top_open)                                   \
        family_add((prom), (type), (label), (help));
#define CHECK_COUNTER(name, value, help)                            \
    CU_ASSERT_STRING_EQUAL(top_type, "counter");                    \
    CU_ASSERT_EQUAL(is_null(top_label), is_null(value));
#define CHECK_SERIES(name, count, key, help) CU_ASSERT_FALSE(top_open);
#define CHECK_GROUP_FAMILY(name, count, key, help)                  \
    CU_ASSERT_TRUE(top_open);                                       \
    CU_ASSERT_STRING_EQUAL(top_type, "counter");                    \
    CU_ASSERT_FALSE(is_null(top_label));
#define CHECK_GAUGE(name, agg, value, help)                         \
    CU_ASSERT_TRUE(top_open);                                       \
    CU_ASSERT_STRING_EQUAL(top_type, "gauge");                      \
    CU_ASSERT_EQUAL(is_null(top_label), is_null(value));
#define FAM_DEST(name, prom, help) family_add((prom), "counter", METRICS_DEST_LABELS, (help));
#define FAM_DEST_GAUGE(name, agg, prom, help) family_add((prom), "gauge", METRICS_DEST_LABELS, (help));
#define FAM_TARGET(name, prom, help) family_add((prom), "counter", METRICS_TARGET_LABELS, (help));
#define FAM_TARGET_GAUGE(name, agg, prom, help) family_add((prom), "gauge", METRICS_TARGET_LABELS, (help));
#define FAM_LISTENER(name, prom, help) family_add((prom), "counter", METRICS_LISTENER_LABELS, (help));
#define FAM_ROUTE(name, prom, help) family_add((prom), "counter", METRICS_ROUTE_LABELS, (help));
#define FAM_ROUTE_GAUGE(name, agg, prom, help) family_add((prom), "gauge", METRICS_ROUTE_LABELS, (help));
#define FAM_PROCESS(prom, type, labels, help) family_add((prom), (type), (labels), (help));

/* Every family of every list, checking the top-level list's entries against their family. */
static void collect_families(void)
{
    nfamilies = 0;
    METRICS_PROCESS_FAMILIES(FAM_PROCESS)
    METRICS_LISTENER_COUNTERS(FAM_LISTENER)
    METRICS_COUNTERS(FAM_TOP, CHECK_COUNTER, CHECK_SERIES, CHECK_GROUP_FAMILY, CHECK_GAUGE)
    METRICS_ROUTE_COUNTERS(FAM_ROUTE, FAM_ROUTE_GAUGE)
    METRICS_DEST_COUNTERS(FAM_DEST, FAM_DEST_GAUGE)
    METRICS_TARGET_COUNTERS(FAM_TARGET, FAM_TARGET_GAUGE)
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void test_families_are_well_named(void)
{
    collect_families();
    CU_ASSERT_TRUE(nfamilies > 40);
    for (size_t i = 0; i < nfamilies; i++) {
        const struct family *f = &families[i];
        CU_ASSERT_EQUAL(strncmp(f->name, "heprouter_", strlen("heprouter_")), 0);
        CU_ASSERT_TRUE(strcmp(f->type, "counter") == 0 || strcmp(f->type, "gauge") == 0);
        if (ends_with(f->name, "_total") != (strcmp(f->type, "counter") == 0)) {
            fprintf(stderr, "\n    %s: a counter's name ends in _total, a gauge's does not", f->name);
            CU_FAIL("family name and type disagree");
        }
        CU_ASSERT_TRUE(strlen(f->help) > 0 && strlen(f->help) < HELP_MAX);
        CU_ASSERT_PTR_NULL(strpbrk(f->help, "\\\n"));
        for (size_t j = 0; j < i; j++)
            if (strcmp(families[j].name, f->name) == 0) {
                fprintf(stderr, "\n    %s named twice", f->name);
                CU_FAIL("a family is defined twice");
            }
    }
}

/* heprouter(8)'s tag line of a family: .BR name "{" a "," b "} type". */
static void man_tag(const struct family *f, char *buf, size_t size)
{
    if (f->labels[0] == '\0') {
        snprintf(buf, size, ".BR %s \" %s\"", f->name, f->type);
        return;
    }
    size_t used = (size_t)snprintf(buf, size, ".BR %s \"{\" ", f->name);
    for (const char *l = f->labels; *l != '\0';) {
        size_t len = strcspn(l, ",");
        used += (size_t)snprintf(buf + used, size - used, "%.*s ", (int)len, l);
        l += len;
        if (*l == ',') {
            used += (size_t)snprintf(buf + used, size - used, "\",\" ");
            l++;
        }
    }
    snprintf(buf + used, size - used, "\"} %s\"", f->type);
}

static void test_man_page_documents_every_family(void)
{
    collect_families();
    char *man8 = read_text("../../man/heprouter.8");
    char *sub = strstr(man8, "\n.SS " MAN_PROMETHEUS "\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
    sub++;
    char *end = strstr(sub + 1, "\n.S");    /* the next .SS or .SH */
    if (end != NULL)
        end[1] = '\0';
    size_t paragraphs = 0;
    for (const char *p = strstr(sub, "\n.TP\n"); p != NULL; p = strstr(p + 1, "\n.TP\n"))
        paragraphs++;
    CU_ASSERT_EQUAL(paragraphs, nfamilies);
    for (size_t i = 0; i < nfamilies; i++) {
        char tag[256], want[256 + HELP_MAX];
        man_tag(&families[i], tag, sizeof tag);
        snprintf(want, sizeof want, "\n.TP\n%s\n%s\n", tag, families[i].help);
        if (strstr(sub, want) == NULL) {
            fprintf(stderr, "\n    heprouter(8) " MAN_PROMETHEUS ": missing%s", want);
            CU_FAIL("a family is not documented with its type, labels and help");
        }
    }
    free(man8);
}

/* ---- Prometheus output ---- */

#define VISIT_GAUGE(name, ...) fn(&s->name);
#define VISIT_VERSIONS(name, ...)                   \
    for (int v = 0; v < METRICS_HEP_VERSIONS; v++)  \
        fn(&s->name[v]);

static void visit_top_gauges(struct metrics *s, counter_fn *fn)
{
    METRICS_COUNTERS(NOTHING, NOTHING, NOTHING, NOTHING, VISIT_GAUGE)
}

static void visit_target_gauges(struct metrics_target *s, counter_fn *fn)
{
    METRICS_TARGET_COUNTERS(NOTHING, VISIT_GAUGE)
}

static void visit_listener(struct metrics_listener *s, counter_fn *fn)
{
    METRICS_LISTENER_COUNTERS(VISIT_VERSIONS)
}


/* Every value of m: the JSON line's, then gauges, listeners, routes. */
static void visit_all(struct metrics *m, counter_fn *fn)
{
    visit(m, fn);
    visit_top_gauges(m, fn);
    for (size_t i = 0; i < m->ntargets; i++)
        visit_target_gauges(&m->targets[i], fn);
    for (size_t i = 0; i < m->nlisteners; i++)
        visit_listener(&m->listeners[i], fn);
}

static const char small_yaml[] =
    "listen: [ \"udp:127.0.0.1:9060\", \"tcp:[::1]:9061\" ]\n"
    "destinations:\n"
    "  homer: { targets: [ \"udp:192.0.2.10:9060\", \"tcp:192.0.2.11:9061\" ] }\n"
    "routes:\n"
    "  - name: calls\n"
    "    match: { method: [ INVITE ] }\n"
    "    to: [ homer ]\n"
    "default: [ homer ]\n";

/* Loads text as a configuration file through conf_load(). */
static struct conf *load_conf(const char *text)
{
    char path[] = "/tmp/test_metrics_conf.XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    struct conf *c = conf_load(path, stderr);
    unlink(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static char *prometheus_of(const struct metrics *m, const struct conf *c, const struct metrics_process *p,
                           size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    metrics_write_prometheus(m, c, p, f);
    CU_ASSERT_EQUAL_FATAL(fclose(f), 0);
    return buf;
}

#define PROMTOOL "/usr/bin/promtool"
#define PROMTOOL_LINE_MAX 1024

/* Runs `promtool check metrics` on text: it must exit 0 and say nothing. */
static void check_with_promtool(const char *text, size_t len)
{
    if (access(PROMTOOL, X_OK) != 0) {
        fprintf(stderr, "\n    %s is missing: install the prometheus package", PROMTOOL);
        CU_FAIL_FATAL("promtool is missing");
    }
    char path[] = "/tmp/test_metrics_prom.XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
    close(fd);
    char cmd[sizeof PROMTOOL + sizeof path + 64];
    snprintf(cmd, sizeof cmd, "%s check metrics < %s 2>&1", PROMTOOL, path);
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char line[PROMTOOL_LINE_MAX];
    int lines = 0;
    while (fgets(line, sizeof line, p) != NULL) {
        fprintf(stderr, "\n    promtool: %s", line);
        lines++;
    }
    int status = pclose(p);
    unlink(path);
    CU_ASSERT_TRUE(WIFEXITED(status));
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    CU_ASSERT_EQUAL(lines, 0);
}

static const struct metrics_process small_process = {
    .reloads_ok = 2,
    .reloads_failed = 1,
    .last_reload_s = 1700000000.25,
    .config_hash = "0123456789abcdef",
    .config_path = "/etc/heprouter.yaml",
    .version = "1.2.3",
    .calls_tracked = 42,
    .calls_tracked_known = true,
};

static void test_prometheus_is_byte_identical_to_the_fixture(void)
{
    struct conf *c = load_conf(small_yaml);
    struct metrics m;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&m, c), 0);
    CU_ASSERT_EQUAL(m.nlisteners, 2);
    CU_ASSERT_EQUAL(m.nroutes, 2);
    visited = 0;
    visit_all(&m, set_next);
    m.store_link_up = 1;
    m.targets[0].up = 1;
    m.targets[1].up = 0;
    size_t len = 0;
    char *text = prometheus_of(&m, c, &small_process, &len);
    char *want = read_text("metrics/small.prom");
    CU_ASSERT_EQUAL(len, strlen(want));
    CU_ASSERT_STRING_EQUAL(text, want);
    if (strcmp(text, want) != 0)
        fprintf(stderr, "\n    got:\n%s", text);
    check_with_promtool(text, len);
    free(want);
    free(text);
    metrics_free(&m);
    conf_free(c);
}

/* Every family the lists define has its HELP and TYPE in the output, once. */
static void test_prometheus_has_every_family(void)
{
    struct conf *c = load_conf(small_yaml);
    struct metrics m;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&m, c), 0);
    size_t len = 0;
    char *text = prometheus_of(&m, c, &small_process, &len);
    collect_families();
    for (size_t i = 0; i < nfamilies; i++) {
        char want[256];
        snprintf(want, sizeof want, "\n# TYPE %s %s\n", families[i].name, families[i].type);
        const char *at = strstr(text, want);
        if (at == NULL || strstr(at + 1, want) != NULL) {
            fprintf(stderr, "\n    %s: not written once", families[i].name);
            CU_FAIL("a family is not written once");
        }
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nheprouter_store_calls 42\n"));
    free(text);
    metrics_free(&m);
    conf_free(c);
}

static void test_prometheus_leaves_out_unknown_calls(void)
{
    struct conf *c = load_conf(small_yaml);
    struct metrics m;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&m, c), 0);
    struct metrics_process p = small_process;
    p.calls_tracked_known = false;
    size_t len = 0;
    char *text = prometheus_of(&m, c, &p, &len);
    CU_ASSERT_PTR_NULL(strstr(text, "heprouter_store_calls"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nheprouter_store_link_up 0\n"));
    free(text);
    metrics_free(&m);
    conf_free(c);
}

static void test_prometheus_escapes_label_values(void)
{
    static char name[] = "a\"b\\c\nd";
    static struct conf_addr target;
    static struct conf_dest dest;
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr("udp:192.0.2.1:9", &target));
    dest = (struct conf_dest){ .name = name, .targets = &target, .ntargets = 1 };
    struct conf c = { .dests = &dest, .ndests = 1 };
    struct metrics m;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&m, &c), 0);
    m.dests[0].packets = 5;
    struct metrics_process p = small_process;
    p.config_path = "/etc/\"odd\\dir\"\n/h.yaml";
    p.version = NULL;
    size_t len = 0;
    char *text = prometheus_of(&m, &c, &p, &len);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nheprouter_destination_packets_total{destination=\"a\\\"b\\\\c\\nd\"} 5\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(text, "\nheprouter_target_up{destination=\"a\\\"b\\\\c\\nd\",target=\"udp:192.0.2.1:9\"} 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "path=\"/etc/\\\"odd\\\\dir\\\"\\n/h.yaml\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nheprouter_build_info{version=\"\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nheprouter_route_packets_total{route=\"(default)\"} 0\n"));
    check_with_promtool(text, len);
    free(text);
    metrics_free(&m);
}

/* ---- summing: gauges and configurations that differ ---- */

static void test_gauges_sum_and_min(void)
{
    build_conf_2x2();
    struct metrics w[3], snap, total;
    static const uint64_t up[3] = { 1, 0, 1 }, queued[3] = { 5, 6, 7 }, held[3] = { 2, 3, 4 };
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(metrics_init(&w[i], &conf), 0);
        w[i].targets[1].up = up[i];
        w[i].targets[2].up = 1;
        w[i].targets[1].queue_packets = queued[i];
        w[i].targets[1].queue_bytes = 100 * queued[i];
        w[i].orphans_held_now = held[i];
        w[i].store_link_up = 1;
        w[i].calls_new = 1;
    }
    CU_ASSERT_EQUAL_FATAL(metrics_init(&snap, &conf), 0);
    CU_ASSERT_EQUAL_FATAL(metrics_init(&total, &conf), 0);
    for (int i = 0; i < 3; i++) {
        /* as main.c publishes a worker's snapshot, then sums them */
        metrics_reset(&snap);
        metrics_add(&snap, &w[i]);
        CU_ASSERT_EQUAL(snap.targets[1].up, up[i]);
        metrics_add(&total, &snap);
    }
    CU_ASSERT_EQUAL(total.targets[1].up, 0);
    CU_ASSERT_EQUAL(total.targets[2].up, 1);
    CU_ASSERT_EQUAL(total.targets[0].up, 0);
    CU_ASSERT_EQUAL(total.targets[1].queue_packets, 18);
    CU_ASSERT_EQUAL(total.targets[1].queue_bytes, 1800);
    CU_ASSERT_EQUAL(total.orphans_held_now, 9);
    CU_ASSERT_EQUAL(total.store_link_up, 1);
    CU_ASSERT_EQUAL(total.calls_new, 3);

    /* a retired total adds its counts, not its gauges */
    struct metrics retired;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&retired, &conf), 0);
    retired.targets[2].up = 0;
    retired.targets[1].queue_packets = 1000;
    retired.store_link_up = 0;
    retired.calls_new = 10;
    metrics_keep_counters_only(&retired);
    metrics_reset(&total);
    metrics_add(&total, &retired);
    metrics_add(&total, &w[2]);
    CU_ASSERT_EQUAL(total.targets[2].up, 1);
    CU_ASSERT_EQUAL(total.targets[1].queue_packets, 7);
    CU_ASSERT_EQUAL(total.store_link_up, 1);
    CU_ASSERT_EQUAL(total.calls_new, 11);
    metrics_add(&total, &w[1]);
    CU_ASSERT_EQUAL(total.targets[1].up, 0);
    CU_ASSERT_EQUAL(total.targets[1].queue_packets, 13);

    for (int i = 0; i < 3; i++)
        metrics_free(&w[i]);
    metrics_free(&snap);
    metrics_free(&total);
    metrics_free(&retired);
}

/* Two configurations by hand: a before and after a reload. */
struct hand_conf {
    struct conf conf;
    struct conf_addr listen[2];
    struct conf_dest dests[3];
    struct conf_addr targets[3][2];
    struct conf_route routes[2];
};

static void hand_conf(struct hand_conf *h, const char *const *listen, size_t nlisten, const char *const *dest_names,
                      const char *const (*target_texts)[2], const size_t *ntargets, size_t ndests,
                      const char *const *route_names, size_t nroutes)
{
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < nlisten; i++)
        CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(listen[i], &h->listen[i]));
    for (size_t i = 0; i < ndests; i++) {
        h->dests[i].name = (char *)dest_names[i];
        h->dests[i].targets = h->targets[i];
        h->dests[i].ntargets = ntargets[i];
        for (size_t j = 0; j < ntargets[i]; j++)
            CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(target_texts[i][j], &h->targets[i][j]));
    }
    for (size_t i = 0; i < nroutes; i++)
        h->routes[i].name = (char *)route_names[i];
    h->conf.listen = h->listen;
    h->conf.nlisten = nlisten;
    h->conf.dests = h->dests;
    h->conf.ndests = ndests;
    h->conf.routes = h->routes;
    h->conf.nroutes = nroutes;
}

static void test_add_mapped_matches_by_name(void)
{
    static const char *const listen_a[] = { "udp:127.0.0.1:9060", "tcp:127.0.0.1:9061" };
    static const char *const dests_a[] = { "homer", "voip" };
    static const char *const targets_a[][2] = { { "udp:192.0.2.1:9", "udp:192.0.2.2:9" }, { "udp:192.0.2.3:9" } };
    static const size_t ntargets_a[] = { 2, 1 };
    static const char *const routes_a[] = { "calls", "regs" };
    static const char *const listen_b[] = { "tcp:127.0.0.1:9061", "udp:127.0.0.1:9999" };
    static const char *const dests_b[] = { "voip", "homer", "new" };
    static const char *const targets_b[][2] = {
        { "udp:192.0.2.3:9", "udp:192.0.2.4:9" }, { "udp:192.0.2.2:9" }, { "udp:192.0.2.5:9" }
    };
    static const size_t ntargets_b[] = { 2, 1, 1 };
    static const char *const routes_b[] = { "regs", "other" };
    static struct hand_conf a, b;
    hand_conf(&a, listen_a, 2, dests_a, targets_a, ntargets_a, 2, routes_a, 2);
    hand_conf(&b, listen_b, 2, dests_b, targets_b, ntargets_b, 3, routes_b, 2);

    struct metrics src, dst;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&src, &a.conf), 0);
    CU_ASSERT_EQUAL_FATAL(metrics_init(&dst, &b.conf), 0);
    src.calls_new = 9;
    src.dests[0].packets = 10;      /* homer */
    src.dests[1].packets = 20;      /* voip */
    src.targets[0].packets = 1;     /* homer udp:192.0.2.1:9, gone */
    src.targets[1].packets = 2;     /* homer udp:192.0.2.2:9 */
    src.targets[1].queue_packets = 4;
    src.targets[2].packets = 3;     /* voip udp:192.0.2.3:9 */
    src.targets[2].up = 1;
    src.listeners[0].packets[3] = 100;  /* gone */
    src.listeners[1].packets[1] = 200;
    src.listeners[1].bytes[1] = 2000;
    src.routes[0].hits = 5;         /* calls, gone */
    src.routes[1].hits = 6;         /* regs */
    src.routes[2].hits = 7;         /* default */
    dst.dests[0].packets = 1;
    dst.calls_new = 1;

    metrics_add_mapped(&dst, &b.conf, &src, &a.conf);
    CU_ASSERT_EQUAL(dst.calls_new, 10);
    CU_ASSERT_EQUAL(dst.dests[0].packets, 21);      /* voip */
    CU_ASSERT_EQUAL(dst.dests[1].packets, 10);      /* homer */
    CU_ASSERT_EQUAL(dst.dests[2].packets, 0);       /* new */
    CU_ASSERT_EQUAL(dst.targets[0].packets, 3);     /* voip udp:192.0.2.3:9 */
    CU_ASSERT_EQUAL(dst.targets[0].up, 1);
    CU_ASSERT_EQUAL(dst.targets[1].packets, 0);     /* voip udp:192.0.2.4:9 */
    CU_ASSERT_EQUAL(dst.targets[2].packets, 2);     /* homer udp:192.0.2.2:9 */
    CU_ASSERT_EQUAL(dst.targets[2].queue_packets, 4);
    CU_ASSERT_EQUAL(dst.targets[3].packets, 0);     /* new */
    CU_ASSERT_EQUAL(dst.listeners[0].packets[1], 200);
    CU_ASSERT_EQUAL(dst.listeners[0].bytes[1], 2000);
    CU_ASSERT_EQUAL(dst.listeners[0].packets[3] + dst.listeners[1].packets[3], 0);
    CU_ASSERT_EQUAL(dst.routes[0].hits, 6);         /* regs */
    CU_ASSERT_EQUAL(dst.routes[1].hits, 0);         /* other */
    CU_ASSERT_EQUAL(dst.routes[2].hits, 7);         /* default */

    /* the same configuration: metrics_add() */
    struct metrics same, added;
    CU_ASSERT_EQUAL_FATAL(metrics_init(&same, &a.conf), 0);
    CU_ASSERT_EQUAL_FATAL(metrics_init(&added, &a.conf), 0);
    metrics_add_mapped(&same, &a.conf, &src, &a.conf);
    metrics_add(&added, &src);
    size_t len_same = 0, len_added = 0;
    char *text_same = prometheus_of(&same, &a.conf, &small_process, &len_same);
    char *text_added = prometheus_of(&added, &a.conf, &small_process, &len_added);
    CU_ASSERT_STRING_EQUAL(text_same, text_added);
    CU_ASSERT_PTR_NOT_NULL(strstr(text_same, "heprouter_route_packets_total{route=\"calls\"} 5\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(text_same, "heprouter_received_packets_total{listener=\"udp:127.0.0.1:9060\",version=\"3\"} 100\n"));
    free(text_same);
    free(text_added);
    metrics_free(&same);
    metrics_free(&added);
    metrics_free(&src);
    metrics_free(&dst);
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
        { "JSON is byte-identical to the fixture", test_json_is_byte_identical_to_the_fixture },
        { "add sums and reset zeroes every counter", test_add_sums_and_reset_zeroes_every_counter },
        { "heprouter(8) documents every counter", test_man_page_documents_every_counter },
        { "families are well named", test_families_are_well_named },
        { "heprouter(8) documents every family", test_man_page_documents_every_family },
        { "Prometheus text is byte-identical to the fixture", test_prometheus_is_byte_identical_to_the_fixture },
        { "Prometheus text has every family once", test_prometheus_has_every_family },
        { "Prometheus text leaves out unknown calls", test_prometheus_leaves_out_unknown_calls },
        { "Prometheus label values are escaped", test_prometheus_escapes_label_values },
        { "gauges sum and min", test_gauges_sum_and_min },
        { "add_mapped matches by name", test_add_mapped_matches_by_name },
        { "log_write_body writes the body whole", test_body_is_written_whole },
        { "ordinary lines keep their cap", test_ordinary_lines_keep_their_cap },
        { "log_write_body respects the level", test_body_respects_the_level },
        { NULL, NULL },
    };
    return unit_run("metrics", tests);
}
