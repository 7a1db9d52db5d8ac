/*
 * decision.h - one routing decision (router_explain) as a line: what
 * `heprouter --explain` prints per packet and what a live tap streams.
 *
 * Text: time, source -> destination, Call-ID (or correlation id), the
 * first line, how the call was decided, the rule with its FILE:LINE:COL,
 * the destinations with what each changes; or why it was not routed.
 * JSON: one object with the same facts.  Written to a FILE; the text form
 * also into a buffer (decision_text(), for the live tap).
 */
#ifndef HEPROUTER_DECISION_H
#define HEPROUTER_DECISION_H

#include <stdbool.h>
#include <stdio.h>

#include "router.h"

struct conf;

/* Writes e, decided under conf, as one line with its newline. */
void decision_print(FILE *out, const struct conf *conf, const struct router_explain *e, bool json);

/* A text line of at most this many bytes is formatted without an allocation (most are < 400). */
#define DECISION_TEXT_MAX 2048

/*
 * The text line of e with its newline into buf[0..cap), without a FILE:
 * its length, or 0 when it does not fit (decision_print() writes any).
 */
size_t decision_text(char *buf, size_t cap, const struct conf *conf, const struct router_explain *e);

/* Whether e is a packet of call_id: its Call-ID, or the correlation id of a packet without one. */
bool decision_of_call(const struct router_explain *e, const char *call_id, size_t len);

#endif
