/*
 * metrics.c - allocation, summing (also across two configurations), JSON
 * line and Prometheus text of the router's counters and gauges, each made
 * from the lists in metrics.h.  Nothing here runs on the packet path.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

const char *metrics_in_version_name(int version)
{
    static const char *const names[METRICS_HEP_VERSIONS] = { "in_v0", "in_v1", "in_v2", "in_v3" };
    if (version < 0 || version >= METRICS_HEP_VERSIONS)
        return "unknown";
    return names[version];
}

const char *metrics_version_label(int version)
{
    static const char *const names[METRICS_HEP_VERSIONS] = { "other", "1", "2", "3" };
    if (version < 0 || version >= METRICS_HEP_VERSIONS)
        return "other";
    return names[version];
}

/* calloc of at least one element, so that an empty array is not NULL. */
static void *alloc_array(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

int metrics_init(struct metrics *m, const struct conf *conf)
{
    memset(m, 0, sizeof *m);
    m->ndests = conf->ndests;
    m->dests = alloc_array(conf->ndests, sizeof *m->dests);
    m->dest_first_target = alloc_array(conf->ndests, sizeof *m->dest_first_target);
    if (m->dest_first_target != NULL)
        for (size_t i = 0; i < conf->ndests; i++) {
            m->dest_first_target[i] = m->ntargets;
            m->ntargets += conf->dests[i].ntargets;
        }
    m->targets = alloc_array(m->ntargets, sizeof *m->targets);
    m->nlisteners = conf->nlisten;
    m->listeners = alloc_array(conf->nlisten, sizeof *m->listeners);
    m->nroutes = conf->nroutes + 1;
    m->routes = alloc_array(m->nroutes, sizeof *m->routes);
    if (m->dests == NULL || m->dest_first_target == NULL || m->targets == NULL || m->listeners == NULL
        || m->routes == NULL) {
        metrics_free(m);
        return -1;
    }
    return 0;
}

void metrics_free(struct metrics *m)
{
    free(m->dests);
    free(m->dest_first_target);
    free(m->targets);
    free(m->listeners);
    free(m->routes);
    memset(m, 0, sizeof *m);
}

/* What metrics_add() does with the gauges of one struct. */
enum gauges {
    GAUGES_SKIP,                    /* src is counters only */
    GAUGES_COPY,                    /* dst holds no reading yet */
    GAUGES_COMBINE,                 /* metrics_sum / metrics_min */
};

/* Each helper below is one list expanded: d is the struct written, s the one read. */
#define RESET(name, ...) d->name = 0;
#define RESET_ARRAY(name, ...) memset(d->name, 0, sizeof d->name);
#define ADD(name, ...) d->name += s->name;
#define ADD_ARRAY(name, count, ...)      \
    for (size_t i = 0; i < (count); i++) \
        d->name[i] += s->name[i];
#define ADD_VERSIONS(name, ...) ADD_ARRAY(name, METRICS_HEP_VERSIONS)
#define ADD_GAUGE(name, agg, ...)              \
    if (g == GAUGES_COPY)                      \
        d->name = s->name;                     \
    else if (g == GAUGES_COMBINE)              \
        d->name = metrics_##agg(d->name, s->name);
#define NOTHING(...)

static void reset_counters(struct metrics *d)
{
    METRICS_COUNTERS(NOTHING, RESET, RESET_ARRAY, RESET_ARRAY, RESET)
}

static void add_counters(struct metrics *d, const struct metrics *s, enum gauges g)
{
    METRICS_COUNTERS(NOTHING, ADD, ADD_ARRAY, ADD_ARRAY, ADD_GAUGE)
}

static void add_dest(struct metrics_dest *d, const struct metrics_dest *s, enum gauges g)
{
    (void)g;
    METRICS_DEST_COUNTERS(ADD, ADD_GAUGE)
}

static void add_target(struct metrics_target *d, const struct metrics_target *s, enum gauges g)
{
    METRICS_TARGET_COUNTERS(ADD, ADD_GAUGE)
}

static void add_listener(struct metrics_listener *d, const struct metrics_listener *s)
{
    METRICS_LISTENER_COUNTERS(ADD_VERSIONS)
}

static void add_route(struct metrics_route *d, const struct metrics_route *s, enum gauges g)
{
    (void)g;
    METRICS_ROUTE_COUNTERS(ADD, ADD_GAUGE)
}

#undef RESET
#undef RESET_ARRAY
#undef ADD
#undef ADD_ARRAY
#undef ADD_VERSIONS
#undef ADD_GAUGE

void metrics_reset(struct metrics *m)
{
    reset_counters(m);
    memset(m->dests, 0, m->ndests * sizeof *m->dests);
    memset(m->targets, 0, m->ntargets * sizeof *m->targets);
    memset(m->listeners, 0, m->nlisteners * sizeof *m->listeners);
    memset(m->routes, 0, m->nroutes * sizeof *m->routes);
    m->gauge_readings = 0;
    m->counters_only = false;
}

void metrics_keep_counters_only(struct metrics *m)
{
    m->counters_only = true;
}

/*
 * Decides what src's gauges do to dst's, and counts the reading: a struct
 * that never received one (a worker's own) is one reading.
 */
static enum gauges gauges_begin(struct metrics *dst, const struct metrics *src)
{
    if (src->counters_only)
        return GAUGES_SKIP;
    enum gauges g = dst->gauge_readings == 0 ? GAUGES_COPY : GAUGES_COMBINE;
    dst->gauge_readings += src->gauge_readings ? src->gauge_readings : 1;
    return g;
}

/* store_evictions is summed like the rest; the main thread then sets it in the total. */
void metrics_add(struct metrics *dst, const struct metrics *src)
{
    enum gauges g = gauges_begin(dst, src);
    add_counters(dst, src, g);
    for (size_t i = 0; i < dst->ndests && i < src->ndests; i++)
        add_dest(&dst->dests[i], &src->dests[i], g);
    for (size_t i = 0; i < dst->ntargets && i < src->ntargets; i++)
        add_target(&dst->targets[i], &src->targets[i], g);
    for (size_t i = 0; i < dst->nlisteners && i < src->nlisteners; i++)
        add_listener(&dst->listeners[i], &src->listeners[i]);
    for (size_t i = 0; i < dst->nroutes && i < src->nroutes; i++)
        add_route(&dst->routes[i], &src->routes[i], g);
}

/* The index of the listener of conf written as text, or -1. */
static long listener_index(const struct conf *conf, const char *text)
{
    for (size_t i = 0; i < conf->nlisten; i++)
        if (strcmp(conf->listen[i].text, text) == 0)
            return (long)i;
    return -1;
}

/* The index of route name in conf's metrics (conf->nroutes: the default), or -1. */
static long route_index(const struct conf *conf, const char *name)
{
    for (size_t i = 0; i < conf->nroutes; i++)
        if (strcmp(conf->routes[i].name, name) == 0)
            return (long)i;
    return -1;
}

static long target_index(const struct conf_dest *d, const char *text)
{
    for (size_t i = 0; i < d->ntargets; i++)
        if (strcmp(d->targets[i].text, text) == 0)
            return (long)i;
    return -1;
}

void metrics_add_mapped(struct metrics *dst, const struct conf *dconf, const struct metrics *src,
                        const struct conf *sconf)
{
    if (dconf == sconf) {
        metrics_add(dst, src);
        return;
    }
    enum gauges g = gauges_begin(dst, src);
    add_counters(dst, src, g);
    for (size_t i = 0; i < src->ndests && i < sconf->ndests; i++) {
        long di = conf_dest_index(dconf, sconf->dests[i].name);
        if (di < 0 || (size_t)di >= dst->ndests)
            continue;
        add_dest(&dst->dests[di], &src->dests[i], g);
        const struct conf_dest *sd = &sconf->dests[i], *dd = &dconf->dests[di];
        for (size_t j = 0; j < sd->ntargets; j++) {
            long dj = target_index(dd, sd->targets[j].text);
            if (dj >= 0)
                add_target(&dst->targets[dst->dest_first_target[di] + (size_t)dj],
                           &src->targets[src->dest_first_target[i] + j], g);
        }
    }
    for (size_t i = 0; i < src->nlisteners && i < sconf->nlisten; i++) {
        long di = listener_index(dconf, sconf->listen[i].text);
        if (di >= 0 && (size_t)di < dst->nlisteners)
            add_listener(&dst->listeners[di], &src->listeners[i]);
    }
    for (size_t i = 0; i < src->nroutes && i <= sconf->nroutes; i++) {
        long di = i == sconf->nroutes ? (long)dconf->nroutes : route_index(dconf, sconf->routes[i].name);
        if (di >= 0 && (size_t)di < dst->nroutes)
            add_route(&dst->routes[di], &src->routes[i], g);
    }
}

/* Writes "name": after a comma unless it is its object's first key. */
static void json_key(FILE *out, const char *name, int *first)
{
    fprintf(out, "%s\"%s\":", *first ? "" : ",", name);
    *first = 0;
}

static void json_u64(FILE *out, const char *name, uint64_t v, int *first)
{
    json_key(out, name, first);
    fprintf(out, "%" PRIu64, v);
}

/* Elements 1..count-1 of an array, element i under the key key(i). */
static void json_keyed(FILE *out, const uint64_t *v, int count, const char *(*key)(int), int *first)
{
    for (int i = 1; i < count; i++)
        json_u64(out, key(i), v[i], first);
}

/* Each helper below is one list expanded: s is the struct read, first its object's flag. */
#define JSON_COUNTER(name, ...) json_u64(out, #name, s->name, first);
#define JSON_SERIES(name, count, key, help) json_keyed(out, s->name, (count), key, first);
#define JSON_GROUP(name, count, key, help)                    \
    do {                                                      \
        int group_first = 1;                                  \
        json_key(out, #name, first);                          \
        fputc('{', out);                                      \
        json_keyed(out, s->name, (count), key, &group_first); \
        fputc('}', out);                                      \
    } while (0);

static void json_counters(FILE *out, const struct metrics *s, int *first)
{
    METRICS_COUNTERS(NOTHING, JSON_COUNTER, JSON_SERIES, JSON_GROUP, NOTHING)
}

static void json_dest(FILE *out, const struct metrics_dest *s, int *first)
{
    METRICS_DEST_COUNTERS(JSON_COUNTER, NOTHING)
}

static void json_target(FILE *out, const struct metrics_target *s, int *first)
{
    METRICS_TARGET_COUNTERS(JSON_COUNTER, NOTHING)
}

static void json_route(FILE *out, const struct metrics_route *s, int *first)
{
    METRICS_ROUTE_COUNTERS(JSON_COUNTER, NOTHING)
}

#undef JSON_COUNTER
#undef JSON_SERIES
#undef JSON_GROUP

void metrics_write_json(const struct metrics *m, const struct conf *conf, FILE *out)
{
    int first = 1;
    fputc('{', out);
    json_counters(out, m, &first);
    json_key(out, "destinations", &first);
    fputc('{', out);
    int first_dest = 1;
    for (size_t i = 0; i < m->ndests && i < conf->ndests; i++) {
        json_key(out, conf->dests[i].name, &first_dest);
        fputc('{', out);
        first = 1;
        json_dest(out, &m->dests[i], &first);
        json_key(out, "targets", &first);
        fputc('{', out);
        int first_target = 1;
        for (size_t j = 0; j < conf->dests[i].ntargets; j++) {
            json_key(out, conf->dests[i].targets[j].text, &first_target);
            fputc('{', out);
            first = 1;
            json_target(out, &m->targets[m->dest_first_target[i] + j], &first);
            fputc('}', out);
        }
        fputs("}}", out);
    }
    fputc('}', out);
    /* per route, in the configuration's order, then the default list */
    first = 0;
    json_key(out, "routes", &first);
    fputc('{', out);
    int first_route = 1;
    for (size_t i = 0; i < m->nroutes && i <= conf->nroutes; i++) {
        json_key(out, i < conf->nroutes ? conf->routes[i].name : METRICS_DEFAULT_ROUTE, &first_route);
        fputc('{', out);
        first = 1;
        json_route(out, &m->routes[i], &first);
        fputc('}', out);
    }
    fputs("}}\n", out);
}

/* ---- Prometheus text exposition format 0.0.4 ---- */

/*
 * Writes s with each character of specials (a subset of backslash, double
 * quote, newline) escaped; the runs between them go out whole.
 */
static void prom_escape(FILE *out, const char *s, const char *specials)
{
    while (*s != '\0') {
        size_t run = strcspn(s, specials);
        fwrite(s, 1, run, out);
        s += run;
        if (*s == '\0')
            break;
        fputs(*s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", out);
        s++;
    }
}

/* A label value: backslash, double quote and newline escaped. */
static void prom_label_value(FILE *out, const char *v)
{
    prom_escape(out, v != NULL ? v : "", "\\\"\n");
}

/* HELP text: backslash and newline escaped. */
static void prom_header(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s ", name);
    prom_escape(out, help, "\\\n");
    fprintf(out, "\n# TYPE %s %s\n", name, type);
}

/* The labels of one sample: names[i]="values[i]"; n may be 0. */
struct prom_labels {
    size_t n;
    const char *names[3];
    const char *values[3];
};

static void prom_name_labels(FILE *out, const char *name, const struct prom_labels *l)
{
    fputs(name, out);
    if (l->n == 0)
        return;
    fputc('{', out);
    for (size_t i = 0; i < l->n; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", l->names[i]);
        prom_label_value(out, l->values[i]);
        fputc('"', out);
    }
    fputc('}', out);
}

static void prom_u64(FILE *out, const char *name, const struct prom_labels *l, uint64_t v)
{
    prom_name_labels(out, name, l);
    fprintf(out, " %" PRIu64 "\n", v);
}

/* One label, or none when label is NULL. */
static struct prom_labels prom_one(const char *label, const char *value)
{
    struct prom_labels l = { 0 };
    if (label != NULL) {
        l.n = 1;
        l.names[0] = label;
        l.values[0] = value;
    }
    return l;
}

/*
 * The top-level list: FAMILY opens a family (fam, label) that the entries
 * after it write their samples into; fam NULL means JSON only.
 */
#define PROM_FAMILY(prom, type, label_name, help) \
    fam = (prom);                                 \
    label = (label_name);                         \
    if (fam != NULL)                              \
        prom_header(out, fam, (type), (help));
#define PROM_SCALAR(name, value, help)                \
    if (fam != NULL) {                                \
        struct prom_labels l = prom_one(label, value); \
        prom_u64(out, fam, &l, s->name);              \
    }
#define PROM_GAUGE(name, agg, value, help) PROM_SCALAR(name, value, help)
#define PROM_ARRAY(name, count, key, help)                   \
    if (fam != NULL)                                         \
        for (int i = 1; i < (count); i++) {                  \
            struct prom_labels l = prom_one(label, key(i));  \
            prom_u64(out, fam, &l, s->name[i]);              \
        }

static void prom_counters(FILE *out, const struct metrics *s)
{
    const char *fam = NULL, *label = NULL;
    METRICS_COUNTERS(PROM_FAMILY, PROM_SCALAR, PROM_ARRAY, PROM_ARRAY, PROM_GAUGE)
}

#undef PROM_FAMILY
#undef PROM_SCALAR
#undef PROM_GAUGE
#undef PROM_ARRAY

/* Each family of a per-destination list: its header, then one sample per destination. */
#define PROM_DEST_ENTRY(field, prom, type, help)                       \
    prom_header(out, (prom), (type), (help));                        \
    for (size_t i = 0; i < m->ndests && i < conf->ndests; i++) {     \
        struct prom_labels l = prom_one("destination", conf->dests[i].name); \
        prom_u64(out, (prom), &l, m->dests[i].field);                 \
    }
#define PROM_DEST(name, prom, help) PROM_DEST_ENTRY(name, prom, "counter", help)
#define PROM_DEST_GAUGE(name, agg, prom, help) PROM_DEST_ENTRY(name, prom, "gauge", help)

static void prom_dests(FILE *out, const struct metrics *m, const struct conf *conf)
{
    METRICS_DEST_COUNTERS(PROM_DEST, PROM_DEST_GAUGE)
}

#undef PROM_DEST_ENTRY
#undef PROM_DEST
#undef PROM_DEST_GAUGE

/* Writes the sample value(target) of family prom for every target of m, with its labels. */
static void prom_each_target(FILE *out, const struct metrics *m, const struct conf *conf, const char *prom,
                             uint64_t (*value)(const struct metrics_target *))
{
    for (size_t i = 0; i < m->ndests && i < conf->ndests; i++)
        for (size_t j = 0; j < conf->dests[i].ntargets && m->dest_first_target[i] + j < m->ntargets; j++) {
            struct prom_labels l = { 2, { "destination", "target" },
                                     { conf->dests[i].name, conf->dests[i].targets[j].text } };
            prom_u64(out, prom, &l, value(&m->targets[m->dest_first_target[i] + j]));
        }
}

#define TARGET_VALUE(name, ...)                                       \
    static uint64_t target_##name(const struct metrics_target *t)     \
    {                                                                 \
        return t->name;                                               \
    }
METRICS_TARGET_COUNTERS(TARGET_VALUE, TARGET_VALUE)
#undef TARGET_VALUE

#define PROM_TARGET(name, prom, help)                \
    prom_header(out, (prom), "counter", (help));     \
    prom_each_target(out, m, conf, (prom), target_##name);
#define PROM_TARGET_GAUGE(name, agg, prom, help)     \
    prom_header(out, (prom), "gauge", (help));       \
    prom_each_target(out, m, conf, (prom), target_##name);

static void prom_targets(FILE *out, const struct metrics *m, const struct conf *conf)
{
    METRICS_TARGET_COUNTERS(PROM_TARGET, PROM_TARGET_GAUGE)
}

#undef PROM_TARGET
#undef PROM_TARGET_GAUGE

#define PROM_LISTENER(field, prom, help)                                               \
    prom_header(out, (prom), "counter", (help));                                     \
    for (size_t i = 0; i < m->nlisteners && i < conf->nlisten; i++)                  \
        for (int v = 1; v <= METRICS_HEP_VERSIONS; v++) {                            \
            int version = v % METRICS_HEP_VERSIONS; /* 1, 2, 3, then 0: "other" */   \
            struct prom_labels l = { 2, { "listener", "version" },                   \
                                     { conf->listen[i].text, metrics_version_label(version) } }; \
            prom_u64(out, (prom), &l, m->listeners[i].field[version]);                \
        }

static void prom_listeners(FILE *out, const struct metrics *m, const struct conf *conf)
{
    METRICS_LISTENER_COUNTERS(PROM_LISTENER)
}

#undef PROM_LISTENER

#define PROM_ROUTE_ENTRY(field, prom, type, help)                                              \
    prom_header(out, (prom), (type), (help));                                                \
    for (size_t i = 0; i < m->nroutes && i <= conf->nroutes; i++) {                          \
        struct prom_labels l =                                                               \
            prom_one("route", i == conf->nroutes ? METRICS_DEFAULT_ROUTE : conf->routes[i].name); \
        prom_u64(out, (prom), &l, m->routes[i].field);                                        \
    }
#define PROM_ROUTE(name, prom, help) PROM_ROUTE_ENTRY(name, prom, "counter", help)
#define PROM_ROUTE_GAUGE(name, agg, prom, help) PROM_ROUTE_ENTRY(name, prom, "gauge", help)

static void prom_routes(FILE *out, const struct metrics *m, const struct conf *conf)
{
    METRICS_ROUTE_COUNTERS(PROM_ROUTE, PROM_ROUTE_GAUGE)
}

#undef PROM_ROUTE_ENTRY
#undef PROM_ROUTE
#undef PROM_ROUTE_GAUGE

/* The process families, in the order of METRICS_PROCESS_FAMILIES. */
enum process_family {
    PF_BUILD_INFO,
    PF_CONFIG_INFO,
    PF_RELOADS,
    PF_LAST_RELOAD,
    PF_STORE_CALLS,
    PF_COUNT,
};

struct family_doc {
    const char *name;
    const char *type;
    const char *labels;
    const char *help;
};

#define PROCESS_DOC(prom, type, labels, help) { prom, type, labels, help },
static const struct family_doc process_docs[] = { METRICS_PROCESS_FAMILIES(PROCESS_DOC) };
#undef PROCESS_DOC

_Static_assert(sizeof process_docs / sizeof process_docs[0] == PF_COUNT, "one enum process_family per family");

static void prom_process_header(FILE *out, enum process_family f)
{
    prom_header(out, process_docs[f].name, process_docs[f].type, process_docs[f].help);
}

static void prom_process(FILE *out, const struct metrics_process *p)
{
    const char *name = process_docs[PF_BUILD_INFO].name;
    prom_process_header(out, PF_BUILD_INFO);
    struct prom_labels l = prom_one("version", p->version);
    prom_u64(out, name, &l, 1);

    name = process_docs[PF_CONFIG_INFO].name;
    prom_process_header(out, PF_CONFIG_INFO);
    l = (struct prom_labels){ 2, { "hash", "path" }, { p->config_hash, p->config_path } };
    prom_u64(out, name, &l, 1);

    name = process_docs[PF_RELOADS].name;
    prom_process_header(out, PF_RELOADS);
    l = prom_one("result", "ok");
    prom_u64(out, name, &l, p->reloads_ok);
    l = prom_one("result", "failed");
    prom_u64(out, name, &l, p->reloads_failed);

    prom_process_header(out, PF_LAST_RELOAD);
    fprintf(out, "%s %.3f\n", process_docs[PF_LAST_RELOAD].name, p->last_reload_s);

    if (p->calls_tracked_known) {
        name = process_docs[PF_STORE_CALLS].name;
        prom_process_header(out, PF_STORE_CALLS);
        l = prom_one(NULL, NULL);
        prom_u64(out, name, &l, p->calls_tracked);
    }
}

void metrics_write_prometheus(const struct metrics *m, const struct conf *conf, const struct metrics_process *p,
                              FILE *out)
{
    prom_process(out, p);
    prom_listeners(out, m, conf);
    prom_counters(out, m);
    prom_routes(out, m, conf);
    prom_dests(out, m, conf);
    prom_targets(out, m, conf);
}
