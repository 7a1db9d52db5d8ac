/*
 * explain.h - heprouter --explain: a capture run through the configured
 * policy, one line per decision.
 *
 * The packets of a capture (capture.h: pcap, pcapng, hepdump's JSON lines)
 * go through the same router as live traffic, with the memory store and
 * the capture's own clock: each packet's capture time drives the hold
 * queue's waits and the TTLs, and the held packets whose wait is over are
 * released before the next packet, as they would have been.  Nothing is
 * sent: router_dispatch.explain() tells how each packet was decided, and
 * that is printed, as text or (json) one JSON object per line, followed
 * by a summary per route, destination and outcome.
 */
#ifndef HEPROUTER_EXPLAIN_H
#define HEPROUTER_EXPLAIN_H

#include <stdbool.h>
#include <stdio.h>

struct explain_options {
    const char *conf_path;
    const char *capture_path;
    bool json;                      /* one JSON object per line */
    const char *call_id;            /* NULL: every packet; else only this Call-ID's */
};

/* Runs it, writing to out; 0, or 1 (with a message on err) when the configuration or capture cannot be read. */
int explain_run(const struct explain_options *o, FILE *out, FILE *err);

#endif
