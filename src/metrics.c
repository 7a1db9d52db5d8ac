/*
 * metrics.c - allocation, summing and JSON output of the router's counters,
 * each made from the lists in metrics.h.
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

int metrics_init(struct metrics *m, const struct conf *conf)
{
    memset(m, 0, sizeof *m);
    m->ndests = conf->ndests;
    m->dests = calloc(conf->ndests ? conf->ndests : 1, sizeof *m->dests);
    m->dest_first_target = calloc(conf->ndests ? conf->ndests : 1, sizeof *m->dest_first_target);
    for (size_t i = 0; i < conf->ndests; i++) {
        m->dest_first_target[i] = m->ntargets;
        m->ntargets += conf->dests[i].ntargets;
    }
    m->targets = calloc(m->ntargets ? m->ntargets : 1, sizeof *m->targets);
    if (m->dests == NULL || m->dest_first_target == NULL || m->targets == NULL) {
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
    memset(m, 0, sizeof *m);
}

/* Each helper below is one list expanded: d is the struct written, s the one read. */
#define RESET(name, help) d->name = 0;
#define RESET_ARRAY(name, count, key, help) memset(d->name, 0, sizeof d->name);
#define ADD(name, help) d->name += s->name;
#define ADD_ARRAY(name, count, key, help) \
    for (size_t i = 0; i < (count); i++)  \
        d->name[i] += s->name[i];

static void reset_counters(struct metrics *d)
{
    METRICS_COUNTERS(RESET, RESET_ARRAY, RESET_ARRAY)
}

static void reset_dest(struct metrics_dest *d)
{
    METRICS_DEST_COUNTERS(RESET)
}

static void reset_target(struct metrics_target *d)
{
    METRICS_TARGET_COUNTERS(RESET)
}

static void add_counters(struct metrics *d, const struct metrics *s)
{
    METRICS_COUNTERS(ADD, ADD_ARRAY, ADD_ARRAY)
}

static void add_dest(struct metrics_dest *d, const struct metrics_dest *s)
{
    METRICS_DEST_COUNTERS(ADD)
}

static void add_target(struct metrics_target *d, const struct metrics_target *s)
{
    METRICS_TARGET_COUNTERS(ADD)
}

#undef RESET
#undef RESET_ARRAY
#undef ADD
#undef ADD_ARRAY

void metrics_reset(struct metrics *m)
{
    reset_counters(m);
    for (size_t i = 0; i < m->ndests; i++)
        reset_dest(&m->dests[i]);
    for (size_t i = 0; i < m->ntargets; i++)
        reset_target(&m->targets[i]);
}

/* store_evictions is summed like the rest; the main thread then sets it in the total. */
void metrics_add(struct metrics *dst, const struct metrics *src)
{
    add_counters(dst, src);
    for (size_t i = 0; i < dst->ndests && i < src->ndests; i++)
        add_dest(&dst->dests[i], &src->dests[i]);
    for (size_t i = 0; i < dst->ntargets && i < src->ntargets; i++)
        add_target(&dst->targets[i], &src->targets[i]);
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
#define JSON_COUNTER(name, help) json_u64(out, #name, s->name, first);
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
    METRICS_COUNTERS(JSON_COUNTER, JSON_SERIES, JSON_GROUP)
}

static void json_dest(FILE *out, const struct metrics_dest *s, int *first)
{
    METRICS_DEST_COUNTERS(JSON_COUNTER)
}

static void json_target(FILE *out, const struct metrics_target *s, int *first)
{
    METRICS_TARGET_COUNTERS(JSON_COUNTER)
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
    fputs("}}\n", out);
}
