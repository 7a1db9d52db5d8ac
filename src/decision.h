/*
 * decision.h - one routing decision (router_explain) as a line: what
 * `heprouter --explain` prints per packet and what a live tap streams.
 *
 * Text: time, source -> destination, Call-ID (or correlation id), the
 * first line, how the call was decided, the rule with its FILE:LINE:COL,
 * the destinations with what each changes; or why it was not routed.
 * JSON: one object with the same facts.  Writes to a FILE only.
 */
#ifndef HEPROUTER_DECISION_H
#define HEPROUTER_DECISION_H

#include <stdbool.h>
#include <stdio.h>

#include "router.h"

struct conf;

/* Writes e, decided under conf, as one line with its newline. */
void decision_print(FILE *out, const struct conf *conf, const struct router_explain *e, bool json);

/* Whether e is a packet of call_id: its Call-ID, or the correlation id of a packet without one. */
bool decision_of_call(const struct router_explain *e, const char *call_id, size_t len);

#endif
