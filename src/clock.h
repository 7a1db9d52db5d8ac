/*
 * clock.h - the clocks heprouter reads, in milliseconds, and their units.
 *
 * Monotonic milliseconds drive every deadline (hold waits, TTLs, backoff);
 * wall milliseconds date what is kept or sent (a call's first sighting, a
 * HEPv1 packet converted to v3).  The edge reads the clocks and hands them
 * to the core, which reads none itself.
 */
#ifndef HEPROUTER_CLOCK_H
#define HEPROUTER_CLOCK_H

#include <stdint.h>
#include <time.h>

#define CLOCK_MS_PER_S  1000u
#define CLOCK_US_PER_MS 1000u
#define CLOCK_US_PER_S  (CLOCK_US_PER_MS * CLOCK_MS_PER_S)
#define CLOCK_NS_PER_MS 1000000u

/* The clock id in milliseconds. */
static inline uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * CLOCK_MS_PER_S + (uint64_t)ts.tv_nsec / CLOCK_NS_PER_MS;
}

static inline uint64_t clock_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

static inline uint64_t clock_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

/* Milliseconds as the seconds libev's timers take. */
static inline double clock_ms_to_s(uint64_t ms)
{
    return (double)ms / CLOCK_MS_PER_S;
}

/* Microseconds as the seconds libev takes. */
static inline double clock_us_to_s(uint64_t us)
{
    return (double)us / CLOCK_US_PER_S;
}

#endif
