/*
 * unit_ev.h - running a libev loop in a unit test, bounded in time: until a
 * condition holds (or a deadline passes), or for a fixed time.  A short
 * repeating timer keeps ev_run(EVRUN_ONCE) from blocking while nothing
 * happens, so the clock is checked often.
 */
#ifndef HEPROUTER_TEST_UNIT_EV_H
#define HEPROUTER_TEST_UNIT_EV_H

#include <stdbool.h>

#include <ev.h>

#define UNIT_EV_TICK_S 0.005

static inline void unit_ev_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

/* Runs loop until cond(arg) holds or deadline_s seconds pass; returns cond. */
static inline bool unit_ev_run_until(struct ev_loop *loop, bool (*cond)(void *), void *arg,
                                     double deadline_s)
{
    ev_timer tick;
    ev_timer_init(&tick, unit_ev_tick, UNIT_EV_TICK_S, UNIT_EV_TICK_S);
    ev_timer_start(loop, &tick);
    ev_tstamp deadline = ev_time() + deadline_s;
    bool ok;
    while (!(ok = cond(arg)) && ev_time() < deadline)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
    return ok;
}

/* Runs loop for a fixed time (to show that nothing happens, or to let retries run). */
static inline void unit_ev_run_for(struct ev_loop *loop, double seconds)
{
    ev_timer tick;
    ev_timer_init(&tick, unit_ev_tick, UNIT_EV_TICK_S, UNIT_EV_TICK_S);
    ev_timer_start(loop, &tick);
    ev_tstamp end = ev_time() + seconds;
    while (ev_time() < end)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &tick);
}

#endif
