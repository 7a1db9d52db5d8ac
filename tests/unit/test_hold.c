/*
 * test_hold.c - unit tests for the orphan hold queue (src/hold.c): release
 * order within and across calls, take versus expire, the deadline
 * boundary, the max_held and max_bytes bounds, callbacks that add to or take from the
 * queue they are called from, flush, copies, and many calls at once.
 */
#include "hold.h"
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>

#define RELEASES_MAX    64
#define KEY_TEXT_MAX    32
#define PKT_TEXT_MAX    64
#define WAIT            50
#define MANY_CALLS      10000
#define PKTS_PER_CALL   3
#define SMALL_MAX_HELD  3
#define NO_LIMIT        SIZE_MAX

/* What one packet counts against max_bytes (hold.h). */
#define COST(key, pkt)  (strlen(key) + strlen(pkt) + HOLD_PKT_OVERHEAD)

/* What the callbacks saw, in order. */
struct release {
    char key[KEY_TEXT_MAX];
    size_t klen;
    char pkt[PKT_TEXT_MAX];
    size_t len;
    uint64_t since_ms;
    bool by_take;               /* released by a nested hold_take() */
};

struct recorder {
    struct release r[RELEASES_MAX];
    size_t n;
    struct hold *h;
    bool take_rest;             /* expire callback: take the rest of the call */
    int hold_again;             /* callbacks: hold one more packet under the same key, this many times */
    uint64_t now_ms;
};

static void record(struct recorder *rec, const char *key, size_t klen, const uint8_t *pkt, size_t len,
                   uint64_t held_since_ms, bool by_take)
{
    CU_ASSERT_FATAL(rec->n < RELEASES_MAX);
    struct release *r = &rec->r[rec->n++];
    CU_ASSERT_FATAL(klen < KEY_TEXT_MAX && len < PKT_TEXT_MAX);
    memcpy(r->key, key, klen);
    r->key[klen] = '\0';
    r->klen = klen;
    memcpy(r->pkt, pkt, len);
    r->pkt[len] = '\0';
    r->len = len;
    r->since_ms = held_since_ms;
    r->by_take = by_take;
}

static void on_take(void *arg, const char *key, size_t klen, const uint8_t *pkt, size_t len, uint64_t held_since_ms)
{
    record(arg, key, klen, pkt, len, held_since_ms, true);
}

/* The router's pattern: on a call's first expired packet, take the rest of it. */
static void on_release(void *arg, const char *key, size_t klen, const uint8_t *pkt, size_t len,
                       uint64_t held_since_ms)
{
    struct recorder *rec = arg;
    record(rec, key, klen, pkt, len, held_since_ms, false);
    if (rec->take_rest)
        hold_take(rec->h, key, klen, on_take, rec);
    if (rec->hold_again > 0) {
        rec->hold_again--;
        CU_ASSERT(hold_add(rec->h, key, klen, (const uint8_t *)"again", 5, rec->now_ms) == 0);
    }
}

static int add(struct hold *h, const char *key, const char *pkt, uint64_t now_ms)
{
    return hold_add(h, key, strlen(key), (const uint8_t *)pkt, strlen(pkt), now_ms);
}

static size_t take(struct hold *h, const char *key, struct recorder *rec)
{
    return hold_take(h, key, strlen(key), on_release, rec);
}

static int has(const struct hold *h, const char *key)
{
    return hold_has(h, key, strlen(key));
}

/* Asserts the recorded packets are exactly expect[], in order. */
static void assert_released(const struct recorder *rec, const char *const *expect, size_t n)
{
    CU_ASSERT_EQUAL_FATAL(rec->n, n);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_STRING_EQUAL(rec->r[i].pkt, expect[i]);
}

#define ASSERT_RELEASED(rec, ...)                                                       \
    do {                                                                                \
        static const char *const expect_[] = { __VA_ARGS__ };                           \
        assert_released((rec), expect_, sizeof expect_ / sizeof expect_[0]);            \
    } while (0)

static void hold_five(struct hold *h)
{
    add(h, "call-a", "a1", 0);
    add(h, "call-b", "b1", 1);
    add(h, "call-a", "a2", 2);
    add(h, "call-c", "c1", 3);
    add(h, "call-b", "b2", 4);
}

static void test_expire_releases_in_arrival_order_within_and_across_calls(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    hold_five(h);
    CU_ASSERT_EQUAL(hold_count(h), 5);
    CU_ASSERT_EQUAL(hold_expire(h, WAIT + 4, on_release, &rec), 5);
    ASSERT_RELEASED(&rec, "a1", "b1", "a2", "c1", "b2");
    CU_ASSERT_STRING_EQUAL(rec.r[0].key, "call-a");
    CU_ASSERT_STRING_EQUAL(rec.r[1].key, "call-b");
    CU_ASSERT_STRING_EQUAL(rec.r[3].key, "call-c");
    CU_ASSERT_EQUAL(hold_count(h), 0);
    CU_ASSERT_FALSE(has(h, "call-a"));
    hold_free(h);
}

static void test_take_releases_only_that_call_in_order(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    hold_five(h);
    CU_ASSERT_EQUAL(take(h, "call-a", &rec), 2);
    ASSERT_RELEASED(&rec, "a1", "a2");
    CU_ASSERT_EQUAL(hold_count(h), 3);
    CU_ASSERT_FALSE(has(h, "call-a"));
    CU_ASSERT_TRUE(has(h, "call-b"));
    CU_ASSERT_TRUE(has(h, "call-c"));
    CU_ASSERT_EQUAL(hold_next_deadline(h), 1 + WAIT);

    rec.n = 0;
    CU_ASSERT_EQUAL(hold_expire(h, WAIT + 4, on_release, &rec), 3);
    ASSERT_RELEASED(&rec, "b1", "c1", "b2");
    hold_free(h);
}

static void test_take_of_unknown_key_releases_nothing(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    CU_ASSERT_EQUAL(take(h, "call-a", &rec), 0);
    hold_five(h);
    CU_ASSERT_EQUAL(take(h, "call-z", &rec), 0);
    CU_ASSERT_EQUAL(rec.n, 0);
    CU_ASSERT_EQUAL(hold_count(h), 5);
    hold_free(h);
}

static void test_expire_releases_at_the_deadline_not_before(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    add(h, "call-a", "a1", 100);
    CU_ASSERT_EQUAL(hold_expire(h, 100 + WAIT - 1, on_release, &rec), 0);
    CU_ASSERT_EQUAL(hold_count(h), 1);
    CU_ASSERT_EQUAL(hold_expire(h, 100 + WAIT, on_release, &rec), 1);
    ASSERT_RELEASED(&rec, "a1");
    hold_free(h);
}

static void test_expire_stops_at_the_first_packet_not_due(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    add(h, "call-a", "a1", 0);
    add(h, "call-b", "b1", 10);
    add(h, "call-a", "a2", 20);
    CU_ASSERT_EQUAL(hold_expire(h, 10 + WAIT, on_release, &rec), 2);
    ASSERT_RELEASED(&rec, "a1", "b1");
    CU_ASSERT_EQUAL(hold_next_deadline(h), 20 + WAIT);
    CU_ASSERT_TRUE(has(h, "call-a"));
    CU_ASSERT_FALSE(has(h, "call-b"));
    hold_free(h);
}

static void test_add_is_refused_beyond_max_held(void)
{
    struct hold *h = hold_new(SMALL_MAX_HELD, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    CU_ASSERT_EQUAL(add(h, "call-a", "a1", 0), 0);
    CU_ASSERT_EQUAL(add(h, "call-b", "b1", 0), 0);
    CU_ASSERT_EQUAL(add(h, "call-a", "a2", 0), 0);
    CU_ASSERT_EQUAL(add(h, "call-c", "c1", 0), -1);
    CU_ASSERT_EQUAL(add(h, "call-a", "a3", 0), -1);
    CU_ASSERT_EQUAL(hold_count(h), SMALL_MAX_HELD);
    CU_ASSERT_FALSE(has(h, "call-c"));
    /* Room again once something is released. */
    take(h, "call-b", &rec);
    CU_ASSERT_EQUAL(add(h, "call-c", "c1", 0), 0);
    CU_ASSERT_EQUAL(hold_count(h), SMALL_MAX_HELD);
    hold_free(h);
}

static void test_zero_max_held_refuses_everything(void)
{
    struct hold *h = hold_new(0, NO_LIMIT, WAIT);
    CU_ASSERT_EQUAL(add(h, "call-a", "a1", 0), -1);
    CU_ASSERT_EQUAL(hold_count(h), 0);
    CU_ASSERT_EQUAL(hold_next_deadline(h), UINT64_MAX);
    hold_free(h);
}

static void test_add_is_refused_beyond_max_bytes(void)
{
    /* room for exactly three packets: the third fills the bound to the byte */
    size_t max_bytes = COST("call-a", "a1") + COST("call-b", "b1") + COST("call-a", "a2-longer");
    struct hold *h = hold_new(NO_LIMIT, max_bytes, WAIT);
    struct recorder rec = { .h = h };
    CU_ASSERT_EQUAL(add(h, "call-a", "a1", 0), 0);
    CU_ASSERT_EQUAL(hold_bytes(h), COST("call-a", "a1"));
    CU_ASSERT_EQUAL(add(h, "call-b", "b1", 0), 0);
    CU_ASSERT_EQUAL(add(h, "call-a", "a2-longer", 0), 0);
    CU_ASSERT_EQUAL(hold_bytes(h), max_bytes);
    /* not even an empty packet fits now: the overhead counts too */
    CU_ASSERT_EQUAL(hold_add(h, "", 0, NULL, 0, 0), -1);
    CU_ASSERT_EQUAL(add(h, "call-c", "c1", 0), -1);
    CU_ASSERT_EQUAL(hold_count(h), 3);
    CU_ASSERT_EQUAL(hold_bytes(h), max_bytes);
    CU_ASSERT_FALSE(has(h, "call-c"));

    /* releasing b1 frees exactly its bytes: c1 (same size) fits, a longer one does not */
    take(h, "call-b", &rec);
    CU_ASSERT_EQUAL(hold_bytes(h), max_bytes - COST("call-b", "b1"));
    CU_ASSERT_EQUAL(add(h, "call-c", "c1-longer", 0), -1);
    CU_ASSERT_EQUAL(add(h, "call-c", "c1", 0), 0);
    CU_ASSERT_EQUAL(hold_bytes(h), max_bytes);
    hold_free(h);
}

static void test_packet_larger_than_max_bytes_is_refused_on_an_empty_queue(void)
{
    static const uint8_t big[2 * HOLD_PKT_OVERHEAD];
    struct hold *h = hold_new(NO_LIMIT, sizeof big, WAIT);
    CU_ASSERT_EQUAL(hold_add(h, "call-a", 6, big, sizeof big, 0), -1);
    CU_ASSERT_EQUAL(hold_add(h, "call-a", 6, big, sizeof big - 6 - HOLD_PKT_OVERHEAD, 0), 0);
    CU_ASSERT_EQUAL(hold_bytes(h), sizeof big);
    /* lengths that would wrap the sum are refused, not wrapped */
    CU_ASSERT_EQUAL(hold_add(h, "call-b", SIZE_MAX - 1, big, 2, 0), -1);
    CU_ASSERT_EQUAL(hold_count(h), 1);
    hold_free(h);
}

static void test_bytes_go_back_down_on_release(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    CU_ASSERT_EQUAL(hold_bytes(h), 0);
    hold_five(h);
    size_t all = 2 * COST("call-a", "a1") + 2 * COST("call-b", "b1") + COST("call-c", "c1");
    CU_ASSERT_EQUAL(hold_bytes(h), all);

    take(h, "call-a", &rec);
    CU_ASSERT_EQUAL(hold_bytes(h), all - 2 * COST("call-a", "a1"));
    hold_expire(h, 3 + WAIT, on_release, &rec);     /* b1, c1 */
    CU_ASSERT_EQUAL(hold_bytes(h), COST("call-b", "b2"));
    hold_flush(h, NULL, NULL);
    CU_ASSERT_EQUAL(hold_bytes(h), 0);

    /* a callback that holds again counts its packet once */
    rec.hold_again = 1;
    add(h, "call-a", "a1", 0);
    hold_expire(h, WAIT, on_release, &rec);
    CU_ASSERT_EQUAL(hold_count(h), 1);
    CU_ASSERT_EQUAL(hold_bytes(h), COST("call-a", "again"));
    hold_flush(h, NULL, NULL);
    CU_ASSERT_EQUAL(hold_bytes(h), 0);
    hold_free(h);
}

static void test_expire_callback_may_take_the_rest_of_its_call(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h, .take_rest = true };
    add(h, "call-a", "a1", 0);
    add(h, "call-b", "b1", 1);
    add(h, "call-a", "a2", 2);
    add(h, "call-a", "a3", 100);            /* not due, taken anyway */
    add(h, "call-c", "c1", 100);
    CU_ASSERT_EQUAL(hold_expire(h, 2 + WAIT, on_release, &rec), 2);
    ASSERT_RELEASED(&rec, "a1", "a2", "a3", "b1");
    CU_ASSERT_FALSE(rec.r[0].by_take);
    CU_ASSERT_TRUE(rec.r[1].by_take);
    CU_ASSERT_TRUE(rec.r[2].by_take);
    CU_ASSERT_FALSE(rec.r[3].by_take);
    CU_ASSERT_EQUAL(hold_count(h), 1);
    CU_ASSERT_EQUAL(hold_next_deadline(h), 100 + WAIT);
    CU_ASSERT_FALSE(has(h, "call-a"));
    CU_ASSERT_TRUE(has(h, "call-c"));
    hold_free(h);
}

static void test_expire_callback_may_hold_again_without_looping(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, 0);
    struct recorder rec = { .h = h, .hold_again = 1, .now_ms = 5 };
    add(h, "call-a", "a1", 5);
    CU_ASSERT_EQUAL(hold_next_deadline(h), 5);
    /* The packet held from the callback is due too, but waits for the next pass. */
    CU_ASSERT_EQUAL(hold_expire(h, 5, on_release, &rec), 1);
    ASSERT_RELEASED(&rec, "a1");
    CU_ASSERT_EQUAL(hold_count(h), 1);
    CU_ASSERT_TRUE(has(h, "call-a"));
    CU_ASSERT_EQUAL(hold_expire(h, 5, on_release, &rec), 1);
    ASSERT_RELEASED(&rec, "a1", "again");
    CU_ASSERT_EQUAL(hold_count(h), 0);
    hold_free(h);
}

static void test_take_callback_may_hold_the_same_key_again(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h, .hold_again = 2, .now_ms = 7 };
    add(h, "call-a", "a1", 0);
    add(h, "call-a", "a2", 1);
    CU_ASSERT_EQUAL(take(h, "call-a", &rec), 2);
    ASSERT_RELEASED(&rec, "a1", "a2");
    CU_ASSERT_EQUAL(hold_count(h), 2);
    CU_ASSERT_TRUE(has(h, "call-a"));
    CU_ASSERT_EQUAL(hold_next_deadline(h), 7 + WAIT);
    rec.n = 0;
    CU_ASSERT_EQUAL(hold_take(h, "call-a", 6, on_take, &rec), 2);
    ASSERT_RELEASED(&rec, "again", "again");
    hold_free(h);
}

static void test_flush_releases_everything_in_arrival_order(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    hold_five(h);
    CU_ASSERT_EQUAL(hold_flush(h, on_release, &rec), 5);
    ASSERT_RELEASED(&rec, "a1", "b1", "a2", "c1", "b2");
    CU_ASSERT_EQUAL(hold_count(h), 0);
    CU_ASSERT_EQUAL(hold_next_deadline(h), UINT64_MAX);
    CU_ASSERT_EQUAL(hold_flush(h, on_release, &rec), 0);
    hold_free(h);
}

static void test_flush_without_callback_drops(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    hold_five(h);
    CU_ASSERT_EQUAL(hold_flush(h, NULL, NULL), 5);
    CU_ASSERT_EQUAL(hold_count(h), 0);
    CU_ASSERT_FALSE(has(h, "call-a"));
    hold_free(h);
}

static void test_next_deadline_is_the_oldest_packets(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    CU_ASSERT_EQUAL(hold_next_deadline(h), UINT64_MAX);
    add(h, "call-a", "a1", 10);
    add(h, "call-b", "b1", 20);
    CU_ASSERT_EQUAL(hold_next_deadline(h), 10 + WAIT);
    take(h, "call-a", &rec);
    CU_ASSERT_EQUAL(hold_next_deadline(h), 20 + WAIT);
    take(h, "call-b", &rec);
    CU_ASSERT_EQUAL(hold_next_deadline(h), UINT64_MAX);
    hold_free(h);
}

/* What hold_recheck() offered, and whether it should take the call then. */
struct rechecked {
    struct hold *h;
    char keys[RELEASES_MAX][KEY_TEXT_MAX];
    size_t n;
    bool take;
};

static void on_recheck(void *arg, const char *key, size_t klen)
{
    struct rechecked *rc = arg;
    CU_ASSERT_FATAL(rc->n < RELEASES_MAX && klen < KEY_TEXT_MAX);
    memcpy(rc->keys[rc->n], key, klen);
    rc->keys[rc->n][klen] = '\0';
    rc->n++;
    if (rc->take)
        hold_take(rc->h, key, klen, NULL, NULL);
}

static void test_rechecks_come_at_thirds_of_the_wait_once_per_call(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, 60);
    struct rechecked rc = { .h = h };
    CU_ASSERT_EQUAL(hold_next_recheck(h), UINT64_MAX);
    add(h, "call-a", "a1", 0);
    add(h, "call-a", "a2", 5);              /* same call: no second schedule */
    add(h, "call-b", "b1", 10);
    CU_ASSERT_EQUAL(hold_next_recheck(h), 20);
    CU_ASSERT_EQUAL(hold_recheck(h, 19, on_recheck, &rc), 0);
    CU_ASSERT_EQUAL(hold_recheck(h, 30, on_recheck, &rc), 2);
    CU_ASSERT_STRING_EQUAL(rc.keys[0], "call-a");
    CU_ASSERT_STRING_EQUAL(rc.keys[1], "call-b");
    CU_ASSERT_EQUAL(hold_next_recheck(h), 40);
    CU_ASSERT_EQUAL(hold_recheck(h, 50, on_recheck, &rc), 2);
    CU_ASSERT_EQUAL(hold_next_recheck(h), UINT64_MAX);   /* two rounds, then none */
    CU_ASSERT_EQUAL(hold_recheck(h, 1000, on_recheck, &rc), 0);
    CU_ASSERT_EQUAL(hold_count(h), 3);
    hold_free(h);
}

/*
 * A call's recheck goes with its last packet: taken, expired, or taken by
 * the recheck itself.  Nothing of it is left outside max_bytes.
 */
static void test_recheck_state_leaves_with_the_call(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, 60);
    struct rechecked rc = { .h = h, .take = true };
    struct recorder rec = { .h = h };
    add(h, "call-a", "a1", 0);
    take(h, "call-a", &rec);
    CU_ASSERT_EQUAL(hold_next_recheck(h), UINT64_MAX);
    CU_ASSERT_EQUAL(hold_bytes(h), 0);
    add(h, "call-b", "b1", 0);
    CU_ASSERT_EQUAL(hold_expire(h, 60, on_release, &rec), 1);
    CU_ASSERT_EQUAL(hold_next_recheck(h), UINT64_MAX);
    add(h, "call-c", "c1", 100);
    add(h, "call-c", "c2", 101);
    CU_ASSERT_EQUAL(hold_recheck(h, 120, on_recheck, &rc), 1);
    CU_ASSERT_EQUAL(hold_count(h), 0);
    CU_ASSERT_EQUAL(hold_next_recheck(h), UINT64_MAX);
    CU_ASSERT_EQUAL(hold_recheck(h, 1000, on_recheck, &rc), 0);
    hold_free(h);
}

static void test_zero_wait_is_due_at_once(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, 0);
    struct recorder rec = { .h = h };
    CU_ASSERT_EQUAL(add(h, "call-a", "a1", 5), 0);
    CU_ASSERT_EQUAL(hold_next_deadline(h), 5);
    CU_ASSERT_EQUAL(hold_expire(h, 4, on_release, &rec), 0);
    CU_ASSERT_EQUAL(hold_expire(h, 5, on_release, &rec), 1);
    hold_free(h);
}

static void test_released_bytes_are_the_copy_made_at_add(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    char key[] = "call-a";
    uint8_t pkt[] = "SIP/2.0 407 Proxy Authentication Required";
    CU_ASSERT_EQUAL(hold_add(h, key, strlen(key), pkt, sizeof pkt - 1, 0), 0);
    memset(pkt, 'x', sizeof pkt - 1);
    key[0] = 'X';
    CU_ASSERT_EQUAL(hold_expire(h, WAIT, on_release, &rec), 1);
    ASSERT_RELEASED(&rec, "SIP/2.0 407 Proxy Authentication Required");
    CU_ASSERT_STRING_EQUAL(rec.r[0].key, "call-a");
    CU_ASSERT_EQUAL(rec.r[0].len, sizeof pkt - 1);
    hold_free(h);
}

static void test_callback_gets_the_time_the_packet_was_held(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    add(h, "call-a", "a1", 1000);
    add(h, "call-a", "a2", 1017);
    add(h, "call-b", "b1", 1020);
    take(h, "call-a", &rec);
    hold_expire(h, UINT64_MAX, on_release, &rec);
    CU_ASSERT_EQUAL_FATAL(rec.n, 3);
    CU_ASSERT_EQUAL(rec.r[0].since_ms, 1000);
    CU_ASSERT_EQUAL(rec.r[1].since_ms, 1017);
    CU_ASSERT_EQUAL(rec.r[2].since_ms, 1020);
    hold_free(h);
}

static void test_keys_compare_as_exact_bytes(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    hold_add(h, "abc", 3, (const uint8_t *)"p1", 2, 0);
    hold_add(h, "abcd", 4, (const uint8_t *)"p2", 2, 0);
    hold_add(h, "ab\0c", 4, (const uint8_t *)"p3", 2, 0);
    hold_add(h, "", 0, (const uint8_t *)"p4", 2, 0);
    hold_add(h, "ab", 2, (const uint8_t *)"p5", 2, 0);
    CU_ASSERT_EQUAL(hold_take(h, "abc", 3, on_release, &rec), 1);
    CU_ASSERT_EQUAL(hold_take(h, "ab\0c", 4, on_release, &rec), 1);
    CU_ASSERT_EQUAL(hold_take(h, NULL, 0, on_release, &rec), 1);
    CU_ASSERT_EQUAL(hold_take(h, "ab\0d", 4, on_release, &rec), 0);
    ASSERT_RELEASED(&rec, "p1", "p3", "p4");
    CU_ASSERT_EQUAL(rec.r[2].klen, 0);
    CU_ASSERT_EQUAL(hold_count(h), 2);
    CU_ASSERT_TRUE(hold_has(h, "abcd", 4));
    CU_ASSERT_TRUE(hold_has(h, "ab", 2));
    hold_free(h);
}

static void test_empty_packet_is_held_and_released(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    struct recorder rec = { .h = h };
    CU_ASSERT_EQUAL(hold_add(h, "call-a", 6, NULL, 0, 0), 0);
    CU_ASSERT_EQUAL(take(h, "call-a", &rec), 1);
    CU_ASSERT_EQUAL(rec.r[0].len, 0);
    hold_free(h);
}

static size_t count_calls;

static void count_release(void *arg, const char *key, size_t klen, const uint8_t *pkt, size_t len,
                          uint64_t held_since_ms)
{
    (void)key;
    (void)klen;
    (void)held_since_ms;
    size_t *bad = arg;
    /* Each packet carries its call number and its position in the call. */
    unsigned call, seq;
    char text[PKT_TEXT_MAX];
    CU_ASSERT_FATAL(len < sizeof text);
    memcpy(text, pkt, len);
    text[len] = '\0';
    if (sscanf(text, "%u/%u", &call, &seq) != 2 || seq != count_calls % PKTS_PER_CALL)
        (*bad)++;
    count_calls++;
}

static void test_many_calls_are_held_and_taken_apart(void)
{
    struct hold *h = hold_new(MANY_CALLS * PKTS_PER_CALL, NO_LIMIT, WAIT);
    char key[KEY_TEXT_MAX], pkt[PKT_TEXT_MAX];
    for (unsigned seq = 0; seq < PKTS_PER_CALL; seq++) {
        for (unsigned call = 0; call < MANY_CALLS; call++) {
            int klen = snprintf(key, sizeof key, "%u@host", call);
            int len = snprintf(pkt, sizeof pkt, "%u/%u", call, seq);
            CU_ASSERT_EQUAL_FATAL(hold_add(h, key, (size_t)klen, (const uint8_t *)pkt, (size_t)len, seq), 0);
        }
    }
    CU_ASSERT_EQUAL(hold_count(h), MANY_CALLS * PKTS_PER_CALL);
    CU_ASSERT_EQUAL(add(h, "one-more", "x", 0), -1);

    size_t bad = 0, taken = 0;
    count_calls = 0;
    for (unsigned call = 0; call < MANY_CALLS; call += 2) {
        int klen = snprintf(key, sizeof key, "%u@host", call);
        taken += hold_take(h, key, (size_t)klen, count_release, &bad);
    }
    CU_ASSERT_EQUAL(taken, MANY_CALLS / 2 * PKTS_PER_CALL);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(hold_count(h), MANY_CALLS / 2 * PKTS_PER_CALL);
    CU_ASSERT_FALSE(hold_has(h, "0@host", 6));
    CU_ASSERT_TRUE(hold_has(h, "1@host", 6));
    /* What is left comes out by deadline; hold_free() frees it otherwise. */
    CU_ASSERT_EQUAL(hold_expire(h, WAIT, NULL, NULL), MANY_CALLS / 2);
    CU_ASSERT_EQUAL(hold_count(h), MANY_CALLS / 2 * (PKTS_PER_CALL - 1));
    hold_free(h);
}

static void test_free_releases_held_packets_silently(void)
{
    struct hold *h = hold_new(NO_LIMIT, NO_LIMIT, WAIT);
    hold_five(h);
    hold_free(h);
    hold_free(NULL);
}

static const struct unit_test tests[] = {
    { "test_expire_releases_in_arrival_order_within_and_across_calls",
      test_expire_releases_in_arrival_order_within_and_across_calls },
    { "test_take_releases_only_that_call_in_order", test_take_releases_only_that_call_in_order },
    { "test_take_of_unknown_key_releases_nothing", test_take_of_unknown_key_releases_nothing },
    { "test_expire_releases_at_the_deadline_not_before", test_expire_releases_at_the_deadline_not_before },
    { "test_expire_stops_at_the_first_packet_not_due", test_expire_stops_at_the_first_packet_not_due },
    { "test_add_is_refused_beyond_max_held", test_add_is_refused_beyond_max_held },
    { "test_zero_max_held_refuses_everything", test_zero_max_held_refuses_everything },
    { "test_add_is_refused_beyond_max_bytes", test_add_is_refused_beyond_max_bytes },
    { "test_packet_larger_than_max_bytes_is_refused_on_an_empty_queue",
      test_packet_larger_than_max_bytes_is_refused_on_an_empty_queue },
    { "test_bytes_go_back_down_on_release", test_bytes_go_back_down_on_release },
    { "test_expire_callback_may_take_the_rest_of_its_call", test_expire_callback_may_take_the_rest_of_its_call },
    { "test_expire_callback_may_hold_again_without_looping",
      test_expire_callback_may_hold_again_without_looping },
    { "test_take_callback_may_hold_the_same_key_again", test_take_callback_may_hold_the_same_key_again },
    { "test_flush_releases_everything_in_arrival_order", test_flush_releases_everything_in_arrival_order },
    { "test_flush_without_callback_drops", test_flush_without_callback_drops },
    { "test_next_deadline_is_the_oldest_packets", test_next_deadline_is_the_oldest_packets },
    { "test_rechecks_come_at_thirds_of_the_wait_once_per_call",
      test_rechecks_come_at_thirds_of_the_wait_once_per_call },
    { "test_recheck_state_leaves_with_the_call", test_recheck_state_leaves_with_the_call },
    { "test_zero_wait_is_due_at_once", test_zero_wait_is_due_at_once },
    { "test_released_bytes_are_the_copy_made_at_add", test_released_bytes_are_the_copy_made_at_add },
    { "test_callback_gets_the_time_the_packet_was_held", test_callback_gets_the_time_the_packet_was_held },
    { "test_keys_compare_as_exact_bytes", test_keys_compare_as_exact_bytes },
    { "test_empty_packet_is_held_and_released", test_empty_packet_is_held_and_released },
    { "test_many_calls_are_held_and_taken_apart", test_many_calls_are_held_and_taken_apart },
    { "test_free_releases_held_packets_silently", test_free_releases_held_packets_silently },
    { NULL, NULL }
};

int main(void)
{
    return unit_run("hold", tests);
}
