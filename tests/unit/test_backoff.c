/*
 * test_backoff.c - unit tests for src/backoff.h, the reconnect delay.
 */
#include "backoff.h"
#include "unit.h"

#include <stdint.h>

/* 1 when the next n delays of b are want[0..n). */
static int delays_are(struct backoff *b, const uint64_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (backoff_next(b) != want[i])
            return 0;
    return 1;
}

static void test_first_delay_is_min(void)
{
    struct backoff b;
    backoff_init(&b, 100, 5000);
    CU_ASSERT_EQUAL(backoff_next(&b), 100);
}

static void test_doubles_then_capped_at_max(void)
{
    struct backoff b;
    backoff_init(&b, 100, 5000);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000 }, 9));

    /* a max the doubling lands on exactly */
    backoff_init(&b, 1, 8);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 1, 2, 4, 8, 8 }, 5));
}

static void test_reset_starts_again_from_min(void)
{
    struct backoff b;
    backoff_init(&b, 100, 5000);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 100, 200, 400 }, 3));
    backoff_reset(&b);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 100, 200 }, 2));

    /* from the cap too */
    for (int i = 0; i < 20; i++)
        backoff_next(&b);
    CU_ASSERT_EQUAL(backoff_next(&b), 5000);
    backoff_reset(&b);
    CU_ASSERT_EQUAL(backoff_next(&b), 100);
}

static void test_zero_min_taken_as_one(void)
{
    struct backoff b;
    backoff_init(&b, 0, 4);
    CU_ASSERT_EQUAL(b.min_ms, 1);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 1, 2, 4, 4 }, 4));
    backoff_init(&b, 0, 0);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 1, 1, 1 }, 3));
}

static void test_max_below_min_is_min(void)
{
    struct backoff b;
    backoff_init(&b, 100, 10);
    CU_ASSERT_EQUAL(b.max_ms, 100);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 100, 100, 100 }, 3));
    backoff_init(&b, 100, 100);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ 100, 100 }, 2));
}

static void test_no_overflow_near_uint64_max(void)
{
    struct backoff b;
    backoff_init(&b, UINT64_MAX / 2 + 1, UINT64_MAX);       /* doubling it would wrap to 0 */
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ UINT64_MAX / 2 + 1, UINT64_MAX, UINT64_MAX }, 3));

    backoff_init(&b, UINT64_MAX, UINT64_MAX);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ UINT64_MAX, UINT64_MAX }, 2));

    backoff_init(&b, UINT64_MAX - 1, 0);
    CU_ASSERT_TRUE(delays_are(&b, (const uint64_t[]){ UINT64_MAX - 1, UINT64_MAX - 1 }, 2));

    /* a long climb: never smaller than the last, never past the max, ends at the max */
    backoff_init(&b, 3, UINT64_MAX);
    uint64_t last = 0;
    for (int i = 0; i < 70; i++) {
        uint64_t d = backoff_next(&b);
        CU_ASSERT_TRUE(d >= last);
        last = d;
    }
    CU_ASSERT_EQUAL(last, UINT64_MAX);

    backoff_init(&b, 3, UINT64_MAX - 1);
    for (int i = 0; i < 70; i++)
        last = backoff_next(&b);
    CU_ASSERT_EQUAL(last, UINT64_MAX - 1);
}

/*
 * The rule the TCP destinations had before: min and max clamped (1, min),
 * then wait, double, cap.  Same delays for every configurable pair.
 */
static void test_same_delays_as_the_doubling_it_replaces(void)
{
    static const uint64_t pairs[][2] = {
        { 0, 0 }, { 0, 1 }, { 1, 1 }, { 1, 5000 }, { 100, 5000 }, { 100, 6400 }, { 100, 6399 },
        { 3, 7 }, { 5000, 100 }, { 250, 86400000 },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        uint64_t min = pairs[i][0] > 0 ? pairs[i][0] : 1;
        uint64_t max = pairs[i][1] > min ? pairs[i][1] : min;
        uint64_t old = min;
        struct backoff b;
        backoff_init(&b, pairs[i][0], pairs[i][1]);
        for (int n = 0; n < 40; n++) {
            CU_ASSERT_EQUAL(backoff_next(&b), old);
            old *= 2;
            if (old > max)
                old = max;
        }
    }
}

/* Every jittered delay lies in [d - d/2, d] of the schedule it follows. */
static void test_jitter_within_the_upper_half_of_the_schedule(void)
{
    static const uint64_t pairs[][2] = {
        { 1, 1 }, { 1, 8 }, { 2, 2 }, { 3, 7 }, { 100, 5000 }, { 250, 86400000 }, { UINT64_MAX, UINT64_MAX },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct backoff b, plain;
        backoff_init(&b, pairs[i][0], pairs[i][1]);
        backoff_init(&plain, pairs[i][0], pairs[i][1]);
        backoff_seed(&b, i);
        for (int n = 0; n < 200; n++) {
            uint64_t d = backoff_next(&plain);
            uint64_t j = backoff_next_jittered(&b);
            CU_ASSERT_TRUE(j >= d - d / 2);
            CU_ASSERT_TRUE(j <= d);
            CU_ASSERT_TRUE(j >= 1);
        }
    }
}

/* The draws spread over the range: both ends are reached, not one value. */
static void test_jitter_spreads_over_the_range(void)
{
    struct backoff b;
    uint64_t lo = UINT64_MAX, hi = 0;
    backoff_init(&b, 1000, 1000);
    backoff_seed(&b, 42);
    for (int n = 0; n < 1000; n++) {
        uint64_t j = backoff_next_jittered(&b);
        lo = j < lo ? j : lo;
        hi = j > hi ? j : hi;
    }
    CU_ASSERT_TRUE(lo >= 500 && lo < 550);
    CU_ASSERT_TRUE(hi <= 1000 && hi > 950);
}

/* Same seed, same waits; other seeds (even a zero one), other waits. */
static void test_jitter_follows_the_seed(void)
{
    struct backoff a, b, c, z;
    backoff_init(&a, 1000, 1000);
    backoff_init(&b, 1000, 1000);
    backoff_init(&c, 1000, 1000);
    backoff_init(&z, 1000, 1000);
    backoff_seed(&a, 7);
    backoff_seed(&b, 7);
    backoff_seed(&c, 8);
    backoff_seed(&z, 0);
    CU_ASSERT_NOT_EQUAL(z.rng, 0);
    int same_ab = 0, same_ac = 0, same_az = 0;
    for (int n = 0; n < 64; n++) {
        uint64_t ja = backoff_next_jittered(&a);
        same_ab += ja == backoff_next_jittered(&b);
        same_ac += ja == backoff_next_jittered(&c);
        same_az += ja == backoff_next_jittered(&z);
    }
    CU_ASSERT_EQUAL(same_ab, 64);
    CU_ASSERT_TRUE(same_ac < 8);
    CU_ASSERT_TRUE(same_az < 8);
}

/* Jitter does not change the schedule: reset still starts again from min. */
static void test_jitter_keeps_the_schedule(void)
{
    struct backoff b;
    backoff_init(&b, 100, 5000);
    backoff_seed(&b, 3);
    for (int n = 0; n < 10; n++)
        backoff_next_jittered(&b);
    CU_ASSERT_EQUAL(b.next_ms, 5000);
    backoff_reset(&b);
    uint64_t j = backoff_next_jittered(&b);
    CU_ASSERT_TRUE(j >= 50 && j <= 100);
    CU_ASSERT_EQUAL(b.next_ms, 200);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "the first delay is min", test_first_delay_is_min },
        { "doubles, then capped at max", test_doubles_then_capped_at_max },
        { "reset starts again from min", test_reset_starts_again_from_min },
        { "a zero min is taken as 1 ms", test_zero_min_taken_as_one },
        { "a max below min is min", test_max_below_min_is_min },
        { "no overflow near UINT64_MAX", test_no_overflow_near_uint64_max },
        { "the same delays as the doubling it replaces", test_same_delays_as_the_doubling_it_replaces },
        { "jitter stays within the upper half of the schedule", test_jitter_within_the_upper_half_of_the_schedule },
        { "jitter spreads over the range", test_jitter_spreads_over_the_range },
        { "jitter follows the seed", test_jitter_follows_the_seed },
        { "jitter keeps the schedule", test_jitter_keeps_the_schedule },
        { NULL, NULL },
    };
    return unit_run("backoff", tests);
}
