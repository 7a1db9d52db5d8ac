/*
 * tap.h - the live tap: `tap [json] [call CALL-ID] [src CIDR] [capture_id N]
 * [method METHOD]` on the control socket streams, as they are made, the
 * routing decisions that match, in the lines `heprouter --explain` prints
 * (decision.h).
 *
 * The main thread owns the taps (one control stream each); every worker
 * holds a copy of the open taps' filters, swapped between two batches when
 * a tap opens or closes, and sets the router's explain hook only while
 * one is open: with none, a packet costs the router's one branch.  A
 * worker formats a matching decision once per form and puts the line on
 * its own queue to the main thread (single producer, single consumer,
 * control.tap_buffer bytes); the main thread moves the lines to the
 * readers' streams (control.tap_buffer bytes each).  Nothing waits: a line
 * that finds its queue or its reader's buffer full is lost and counted
 * (tap_lost), and the reader gets "# N tap lines lost" (json: {"lost":N})
 * before its next line.  A reader whose buffer filled is marked stalled
 * until it has read everything: meanwhile the workers count its lines lost
 * without formatting them, so a reader that never reads costs a filter
 * check per packet.
 */
#ifndef HEPROUTER_TAP_H
#define HEPROUTER_TAP_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "control.h"

struct conf;
struct metrics;
struct router;

/* What `help` shows for the command. */
#define TAP_USAGE "tap [json] [call CALL-ID] [src CIDR] [capture_id N] [method METHOD]"

struct tap;
struct tap_worker;

/* On the main loop, for nworkers workers; buffer is control.tap_buffer.  NULL when out of memory. */
struct tap *tap_new(struct ev_loop *main_loop, unsigned nworkers, size_t buffer);

/*
 * Once the workers' threads have ended (their loops still exist): closes
 * the readers' streams, detaches the workers' hooks and frees it all.
 * Before control_free().  NULL is fine.
 */
void tap_free(struct tap *t);

/* Worker i's side. */
struct tap_worker *tap_worker_of(struct tap *t, unsigned i);

/*
 * Attaches worker i's side to its loop (before its thread runs): the
 * router's hook is set and removed there, lines are formatted with conf,
 * and m counts tap_lines and tap_lost.
 */
void tap_worker_start(struct tap_worker *tw, struct ev_loop *loop, struct router *r, const struct conf *conf,
                      struct metrics *m);

/* A reload in the worker's thread: later lines are formatted with conf. */
void tap_worker_set_conf(struct tap_worker *tw, const struct conf *conf);

/*
 * In the worker's thread, before its counters are published: the lines
 * lost while the router's hook is paused (every tap's reader stalled) are
 * counted so far.  NULL is fine.
 */
void tap_worker_count_lost(struct tap_worker *tw);

/* The `tap` command (main thread): opens a stream, or answers an error. */
void tap_command(struct tap *t, const char *args, struct control_request *req);

/* Lines the main thread lost for readers that did not keep up (any thread). */
uint64_t tap_lost_by_readers(const struct tap *t);

#endif
