/*
 * metrics.c - allocation, summing and JSON output of the router's counters.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

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

void metrics_reset(struct metrics *m)
{
    memset(m, 0, offsetof(struct metrics, ndests));
    memset(m->dests, 0, m->ndests * sizeof *m->dests);
    memset(m->targets, 0, m->ntargets * sizeof *m->targets);
}

/* Adds bytes / 8 consecutive uint64_t counters. */
static void add_u64s(void *dst, const void *src, size_t bytes)
{
    uint64_t *d = dst;
    const uint64_t *s = src;
    for (size_t i = 0; i < bytes / sizeof(uint64_t); i++)
        d[i] += s[i];
}

void metrics_add(struct metrics *dst, const struct metrics *src)
{
    /* every field before ndests is a uint64_t counter or an array of them */
    add_u64s(dst, src, offsetof(struct metrics, ndests));
    for (size_t i = 0; i < dst->ndests && i < src->ndests; i++)
        add_u64s(&dst->dests[i], &src->dests[i], sizeof dst->dests[i]);
    for (size_t i = 0; i < dst->ntargets && i < src->ntargets; i++)
        add_u64s(&dst->targets[i], &src->targets[i], sizeof dst->targets[i]);
}

static void kv(FILE *out, const char *name, uint64_t v, int *first)
{
    fprintf(out, "%s\"%s\":%" PRIu64, *first ? "" : ",", name, v);
    *first = 0;
}

void metrics_write_json(const struct metrics *m, const struct conf *conf, FILE *out)
{
    int first = 1;
    fputc('{', out);
    kv(out, "packets_in", m->packets_in, &first);
    kv(out, "bytes_in", m->bytes_in, &first);
    kv(out, "in_v1", m->in_version[1], &first);
    kv(out, "in_v2", m->in_version[2], &first);
    kv(out, "in_v3", m->in_version[3], &first);
    kv(out, "in_sip", m->in_sip, &first);
    kv(out, "in_rtcp", m->in_rtcp, &first);
    kv(out, "in_log", m->in_log, &first);
    kv(out, "in_other", m->in_other, &first);
    fputs(",\"decode_errors\":{", out);
    first = 1;
    for (int i = 1; i < HEP_STATUS_COUNT; i++)
        kv(out, hep_status_name(i), m->decode_errors[i], &first);
    fputc('}', out);
    first = 0;
    kv(out, "payload_inflated", m->payload_inflated, &first);
    kv(out, "payload_inflate_errors", m->payload_inflate_errors, &first);
    kv(out, "udp_oversize", m->udp_oversize, &first);
    kv(out, "recv_errors", m->recv_errors, &first);
    kv(out, "tcp_accepted", m->tcp_accepted, &first);
    kv(out, "tcp_rejected", m->tcp_rejected, &first);
    kv(out, "tcp_bad_magic", m->tcp_bad_magic, &first);
    kv(out, "tcp_bad_length", m->tcp_bad_length, &first);
    kv(out, "tcp_idle_closed", m->tcp_idle_closed, &first);
    kv(out, "tcp_truncated", m->tcp_truncated, &first);
    kv(out, "tcp_closed", m->tcp_closed, &first);
    fputs(",\"sip_errors\":{", out);
    first = 1;
    for (int i = 1; i < SIP_STATUS_COUNT; i++)
        kv(out, sip_status_name(i), m->sip_errors[i], &first);
    fputc('}', out);
    first = 0;
    kv(out, "sip_lines_skipped", m->sip_lines_skipped, &first);
    kv(out, "calls_new", m->calls_new, &first);
    kv(out, "calls_followed", m->calls_followed, &first);
    kv(out, "calls_fallback", m->calls_fallback, &first);
    kv(out, "calls_not_stored", m->calls_not_stored, &first);
    kv(out, "uncorrelated", m->uncorrelated, &first);
    kv(out, "duplicates", m->duplicates, &first);
    kv(out, "route_dropped", m->route_dropped, &first);
    kv(out, "store_lookups", m->store_lookups, &first);
    kv(out, "store_hits", m->store_hits, &first);
    kv(out, "store_misses", m->store_misses, &first);
    kv(out, "store_timeouts", m->store_timeouts, &first);
    kv(out, "store_errors", m->store_errors, &first);
    kv(out, "store_writes", m->store_writes, &first);
    kv(out, "store_lost_writes", m->store_lost_writes, &first);
    kv(out, "store_reconnects", m->store_reconnects, &first);
    kv(out, "store_unavailable", m->store_unavailable, &first);
    kv(out, "store_cache_hits", m->store_cache_hits, &first);
    kv(out, "store_cache_misses", m->store_cache_misses, &first);
    kv(out, "store_evictions", m->store_evictions, &first);
    kv(out, "orphans_held", m->orphans_held, &first);
    kv(out, "orphans_released_origin", m->orphans_released_origin, &first);
    kv(out, "orphans_released_fallback", m->orphans_released_fallback, &first);
    kv(out, "orphans_queue_full", m->orphans_queue_full, &first);
    fputs(",\"destinations\":{", out);
    for (size_t i = 0; i < m->ndests && i < conf->ndests; i++) {
        const struct metrics_dest *d = &m->dests[i];
        fprintf(out, "%s\"%s\":{", i ? "," : "", conf->dests[i].name);
        first = 1;
        kv(out, "packets", d->packets, &first);
        kv(out, "bytes", d->bytes, &first);
        kv(out, "converted", d->converted, &first);
        kv(out, "too_big", d->too_big, &first);
        kv(out, "encode_errors", d->encode_errors, &first);
        fputs(",\"targets\":{", out);
        for (size_t j = 0; j < conf->dests[i].ntargets; j++) {
            const struct metrics_target *t = &m->targets[m->dest_first_target[i] + j];
            fprintf(out, "%s\"%s\":{", j ? "," : "", conf->dests[i].targets[j].text);
            first = 1;
            kv(out, "packets", t->packets, &first);
            kv(out, "bytes", t->bytes, &first);
            kv(out, "send_errors", t->send_errors, &first);
            kv(out, "queue_drops", t->queue_drops, &first);
            kv(out, "down_drops", t->down_drops, &first);
            kv(out, "exit_drops", t->exit_drops, &first);
            kv(out, "connects", t->connects, &first);
            kv(out, "disconnects", t->disconnects, &first);
            fputc('}', out);
        }
        fputs("}}", out);
    }
    fputs("}}\n", out);
}
