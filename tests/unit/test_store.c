/*
 * test_store.c - unit tests for the memory back-end of the call context
 * store (src/store_mem.c): first writer wins, expiry by the caller's clock
 * (lazy and swept), updates, name interning and its limits, the max_calls
 * bound, many keys, several threads at once, and the memory per call.
 */
#include "store.h"
#include "unit.h"

#include <pthread.h>
#include <stdint.h>

#define KEY_MAX             64
#define MANY_KEYS           100000
#define MILLION_CALLS       1000000
#define SLOT_BYTES_MAX      64
#define BYTES_PER_CALL_MAX  256
#define TTL                 1000
#define ROUTES_USED         50
#define METHODS_USED        10
#define THREADS             4
#define KEYS_PER_THREAD     25000
#define SHARED_KEYS         1000
#define SMALL_MAX_CALLS     4
#define BOUNDED_MAX_CALLS   100
#define STRIPED_MAX_CALLS   20000
#define ONE_STRIPE_MAX_CALLS 2000   /* below 2 x 1024 calls: a single stripe */
#define NAMES_PER_TABLE     1024    /* STORE_MEM_NAMES_MAX */
#define DISTINCT_NAMES      1500
#define EXPIRE_CALLS_MAX    100000
#define CHURN_ROUNDS        20
#define CHURN_CALLS         19200   /* ~1200 per stripe: far from any growth threshold */

static struct store_entry entry(const char *method, const char *route, uint64_t first_seen_ms, unsigned flags,
                                uint64_t last_hash)
{
    struct store_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.method, sizeof e.method, "%s", method);
    snprintf(e.route, sizeof e.route, "%s", route);
    e.first_seen_ms = first_seen_ms;
    e.flags = flags;
    e.last_hash = last_hash;
    return e;
}

static size_t key_of(char *buf, size_t n)
{
    return (size_t)snprintf(buf, KEY_MAX, "%zx-4f2a9c@10.0.0.%zu", n * 2654435761u, n % 256);
}

static int put_str(struct store *s, const char *key, const struct store_entry *e, uint64_t ttl, uint64_t now,
                   struct store_entry *winner)
{
    return store_put(s, key, strlen(key), e, ttl, now, winner);
}

static int get_str(struct store *s, const char *key, uint64_t now, struct store_entry *out)
{
    return store_get(s, key, strlen(key), now, out);
}

static struct store_mem_stats stats_of(struct store *s)
{
    struct store_mem_stats st;
    CU_ASSERT_FATAL(store_mem_stats(s, &st) == 0);
    return st;
}

static void test_put_then_get_returns_the_entry(void)
{
    struct store *s = store_mem_new(0);
    CU_ASSERT_FATAL(s != NULL);
    struct store_entry e = entry("INVITE", "voipmonitor", 1700000000123u, STORE_F_FALLBACK, 0xfeedu);
    CU_ASSERT_EQUAL(put_str(s, "a84b4c76e66710@pc33", &e, TTL, 0, NULL), 1);
    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "a84b4c76e66710@pc33", 1, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(out.route, "voipmonitor");
    CU_ASSERT_EQUAL(out.first_seen_ms, 1700000000123u);
    CU_ASSERT_EQUAL(out.flags, STORE_F_FALLBACK);
    CU_ASSERT_EQUAL(out.last_hash, 0xfeedu);
    CU_ASSERT_EQUAL(store_count(s), 1);
    CU_ASSERT_STRING_EQUAL(s->ops->name, "memory");
    store_free(s);
}

static void test_get_of_unknown_key_misses(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "nobody@nowhere", 0, &out), 0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    put_str(s, "somebody@somewhere", &e, TTL, 0, NULL);
    CU_ASSERT_EQUAL(get_str(s, "nobody@nowhere", 0, &out), 0);
    store_free(s);
}

static void test_first_writer_wins(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry first = entry("INVITE", "voipmonitor", 10, 0, 1);
    struct store_entry second = entry("BYE", "homer", 20, STORE_F_FALLBACK, 2);
    struct store_entry winner;
    CU_ASSERT_EQUAL(put_str(s, "call-1", &first, TTL, 10, NULL), 1);
    CU_ASSERT_EQUAL(put_str(s, "call-1", &second, TTL, 20, &winner), 0);
    CU_ASSERT_STRING_EQUAL(winner.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(winner.route, "voipmonitor");
    CU_ASSERT_EQUAL(winner.first_seen_ms, 10);
    CU_ASSERT_EQUAL(winner.flags, 0);
    CU_ASSERT_EQUAL(winner.last_hash, 1);
    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "call-1", 30, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "voipmonitor");
    CU_ASSERT_EQUAL(store_count(s), 1);
    /* The losing put does not refresh the expiry either. */
    CU_ASSERT_EQUAL(get_str(s, "call-1", 10 + TTL, &out), 0);
    store_free(s);
}

static void test_get_after_expiry_misses_and_removes(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    struct store_entry out;
    put_str(s, "call-1", &e, TTL, 5000, NULL);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 5000 + TTL - 1, &out), 1);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 5000 + TTL, &out), 0);
    CU_ASSERT_EQUAL(store_count(s), 0);
    CU_ASSERT_EQUAL(stats_of(s).expired, 1);
    store_free(s);
}

static void test_put_over_expired_entry_stores_the_new_one(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry old = entry("REGISTER", "homer", 0, STORE_F_REGISTER, 1);
    struct store_entry fresh = entry("INVITE", "voipmonitor", 2 * TTL, 0, 2);
    struct store_entry out;
    put_str(s, "call-1", &old, TTL, 0, NULL);
    CU_ASSERT_EQUAL(put_str(s, "call-1", &fresh, TTL, 2 * TTL, &out), 1);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 2 * TTL, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(out.route, "voipmonitor");
    CU_ASSERT_EQUAL(out.flags, 0);
    CU_ASSERT_EQUAL(store_count(s), 1);
    store_free(s);
}

static void test_update_refreshes_expiry(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    struct store_entry out;
    put_str(s, "call-1", &e, TTL, 0, NULL);
    CU_ASSERT_EQUAL(store_update(s, "call-1", 6, TTL, 0, 0, 0, TTL - 100), 1);
    /* Past the original expiry, before the refreshed one. */
    CU_ASSERT_EQUAL(get_str(s, "call-1", TTL + 500, &out), 1);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 2 * TTL - 100, &out), 0);
    store_free(s);
}

static void test_update_can_shorten_expiry(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    struct store_entry out;
    put_str(s, "call-1", &e, 100 * TTL, 0, NULL);
    CU_ASSERT_EQUAL(store_update(s, "call-1", 6, TTL, STORE_F_ENDED, 0, 0, 10), 1);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 10 + TTL - 1, &out), 1);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 10 + TTL, &out), 0);
    store_free(s);
}

static void test_update_sets_and_clears_flags(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("INVITE", "homer", 0, STORE_F_FALLBACK, 0);
    struct store_entry out;
    put_str(s, "call-1", &e, TTL, 0, NULL);
    store_update(s, "call-1", 6, TTL, STORE_F_ENDED, 0, 0, 1);
    get_str(s, "call-1", 1, &out);
    CU_ASSERT_EQUAL(out.flags, STORE_F_FALLBACK | STORE_F_ENDED);
    store_update(s, "call-1", 6, TTL, 0, STORE_F_FALLBACK, 0, 1);
    get_str(s, "call-1", 1, &out);
    CU_ASSERT_EQUAL(out.flags, STORE_F_ENDED);
    /* Set and clear the same flag: clearing comes last. */
    store_update(s, "call-1", 6, TTL, STORE_F_REGISTER, STORE_F_REGISTER | STORE_F_ENDED, 0, 1);
    get_str(s, "call-1", 1, &out);
    CU_ASSERT_EQUAL(out.flags, 0);
    store_free(s);
}

static void test_update_records_last_hash_and_keeps_the_rest(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("SUBSCRIBE", "presence", 42, 0, 7);
    struct store_entry out;
    put_str(s, "call-1", &e, TTL, 0, NULL);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 0, &out), 1);
    CU_ASSERT_EQUAL(out.last_hash, 7);
    store_update(s, "call-1", 6, TTL, 0, 0, UINT64_C(0x0123456789abcdef), 1);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 1, &out), 1);
    CU_ASSERT_EQUAL(out.last_hash, UINT64_C(0x0123456789abcdef));
    CU_ASSERT_STRING_EQUAL(out.method, "SUBSCRIBE");
    CU_ASSERT_STRING_EQUAL(out.route, "presence");
    CU_ASSERT_EQUAL(out.first_seen_ms, 42);
    store_free(s);
}

static void test_update_of_unknown_or_expired_key_returns_0(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    struct store_entry out;
    CU_ASSERT_EQUAL(store_update(s, "call-1", 6, TTL, STORE_F_ENDED, 0, 0, 0), 0);
    put_str(s, "call-1", &e, TTL, 0, NULL);
    CU_ASSERT_EQUAL(store_update(s, "call-1", 6, TTL, 0, 0, 0, TTL), 0);
    CU_ASSERT_EQUAL(store_count(s), 0);
    /* A late update does not bring the call back. */
    CU_ASSERT_EQUAL(get_str(s, "call-1", TTL, &out), 0);
    store_free(s);
}

static void test_longest_method_and_route_names_round_trip(void)
{
    struct store *s = store_mem_new(0);
    char method[STORE_METHOD_MAX], route[STORE_ROUTE_MAX];
    memset(method, 'M', sizeof method - 1);
    method[sizeof method - 1] = '\0';
    memset(route, 'r', sizeof route - 1);
    route[sizeof route - 1] = '\0';
    struct store_entry e = entry(method, route, 0, 0, 0);
    CU_ASSERT_EQUAL(strlen(e.method), STORE_METHOD_MAX - 1);
    CU_ASSERT_EQUAL(strlen(e.route), STORE_ROUTE_MAX - 1);
    CU_ASSERT_EQUAL(put_str(s, "long", &e, TTL, 0, NULL), 1);
    struct store_entry empty = entry("", "", 0, 0, 0);
    CU_ASSERT_EQUAL(put_str(s, "empty", &empty, TTL, 0, NULL), 1);

    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "long", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, method);
    CU_ASSERT_STRING_EQUAL(out.route, route);
    CU_ASSERT_EQUAL(get_str(s, "empty", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, "");
    CU_ASSERT_STRING_EQUAL(out.route, "");
    store_free(s);
}

static void test_unterminated_names_are_cut_to_fit(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e;
    memset(&e, 'X', sizeof e);
    e.first_seen_ms = 0;
    e.flags = 0;
    e.last_hash = 0;
    CU_ASSERT_EQUAL(put_str(s, "call-1", &e, TTL, 0, NULL), 1);
    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "call-1", 0, &out), 1);
    CU_ASSERT_EQUAL(strnlen(out.method, sizeof out.method), STORE_METHOD_MAX - 1);
    CU_ASSERT_EQUAL(strnlen(out.route, sizeof out.route), STORE_ROUTE_MAX - 1);
    store_free(s);
}

static void test_same_names_with_different_case_stay_apart(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry upper = entry("INVITE", "Homer", 0, 0, 0);
    struct store_entry lower = entry("invite", "homer", 0, 0, 0);
    struct store_entry out;
    put_str(s, "upper", &upper, TTL, 0, NULL);
    put_str(s, "lower", &lower, TTL, 0, NULL);
    get_str(s, "upper", 0, &out);
    CU_ASSERT_STRING_EQUAL(out.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(out.route, "Homer");
    get_str(s, "lower", 0, &out);
    CU_ASSERT_STRING_EQUAL(out.method, "invite");
    CU_ASSERT_STRING_EQUAL(out.route, "homer");
    store_free(s);
}

static void test_keys_compare_as_exact_bytes(void)
{
    struct store *s = store_mem_new(0);
    static const char keys[][8] = { "abc", "abcd", "ab\0c", "ab\0d", "" };
    static const size_t lens[] = { 3, 4, 4, 4, 0 };
    size_t nkeys = sizeof lens / sizeof lens[0];
    for (size_t i = 0; i < nkeys; i++) {
        char route[16];
        snprintf(route, sizeof route, "route-%zu", i);
        struct store_entry e = entry("INVITE", route, 0, 0, i);
        CU_ASSERT_EQUAL(store_put(s, keys[i], lens[i], &e, TTL, 0, NULL), 1);
    }
    CU_ASSERT_EQUAL(store_count(s), nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        struct store_entry out;
        CU_ASSERT_EQUAL(store_get(s, keys[i], lens[i], 0, &out), 1);
        CU_ASSERT_EQUAL(out.last_hash, i);
    }
    CU_ASSERT_EQUAL(store_get(s, "ab", 2, 0, NULL), 0);
    store_free(s);
}

static void test_many_keys_keep_distinct_results(void)
{
    struct store *s = store_mem_new(0);
    static const char *const methods[METHODS_USED] = {
        "INVITE", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY",
        "PUBLISH", "MESSAGE", "INFO", "REFER", "UPDATE",
    };
    char key[KEY_MAX], route[STORE_ROUTE_MAX];
    for (size_t i = 0; i < MANY_KEYS; i++) {
        snprintf(route, sizeof route, "route-%zu", i % ROUTES_USED);
        struct store_entry e = entry(methods[i % METHODS_USED], route, i, (unsigned)(i % 8), i * 31);
        size_t klen = key_of(key, i);
        if (store_put(s, key, klen, &e, TTL, 0, NULL) != 1) {
            CU_FAIL("put of a new key did not store");
            break;
        }
    }
    CU_ASSERT_EQUAL(store_count(s), MANY_KEYS);
    size_t wrong = 0;
    for (size_t i = 0; i < MANY_KEYS; i++) {
        struct store_entry out;
        size_t klen = key_of(key, i);
        snprintf(route, sizeof route, "route-%zu", i % ROUTES_USED);
        if (store_get(s, key, klen, 1, &out) != 1 || out.first_seen_ms != i || out.last_hash != i * 31
            || out.flags != i % 8 || strcmp(out.method, methods[i % METHODS_USED]) != 0
            || strcmp(out.route, route) != 0)
            wrong++;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(stats_of(s).evictions, 0);
    store_free(s);
}

static void test_expire_is_bounded_and_eventually_removes_all(void)
{
    struct store *s = store_mem_new(0);
    char key[KEY_MAX];
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    for (size_t i = 0; i < MANY_KEYS; i++)
        store_put(s, key, key_of(key, i), &e, i % 2 ? TTL : 10 * TTL, 0, NULL);

    /* Before anything is due nothing goes. */
    CU_ASSERT_EQUAL(store_expire(s, TTL - 1), 0);

    size_t first = store_expire(s, TTL);
    CU_ASSERT(first > 0);
    CU_ASSERT(first < MANY_KEYS / 2);       /* one call does not sweep the whole table */
    size_t removed = first, calls = 1;
    while (store_count(s) > MANY_KEYS / 2 && calls < EXPIRE_CALLS_MAX) {
        removed += store_expire(s, TTL);
        calls++;
    }
    CU_ASSERT_EQUAL(removed, MANY_KEYS / 2);
    CU_ASSERT_EQUAL(store_count(s), MANY_KEYS / 2);
    /* Sweeping on leaves the live half alone. */
    for (size_t n = 0; n < calls; n++)
        CU_ASSERT_EQUAL_FATAL(store_expire(s, TTL), 0);
    size_t live = 0;
    for (size_t i = 0; i < MANY_KEYS; i++)
        live += (size_t)store_get(s, key, key_of(key, i), TTL, NULL);
    CU_ASSERT_EQUAL(live, MANY_KEYS / 2);

    calls = 0;
    while (store_count(s) > 0 && calls < EXPIRE_CALLS_MAX) {
        store_expire(s, 10 * TTL);
        calls++;
    }
    CU_ASSERT_EQUAL(store_count(s), 0);
    CU_ASSERT_EQUAL(stats_of(s).expired, MANY_KEYS);
    store_free(s);
}

static void test_count_follows_puts_and_removals(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    CU_ASSERT_EQUAL(store_count(s), 0);
    put_str(s, "a", &e, TTL, 0, NULL);
    put_str(s, "b", &e, 2 * TTL, 0, NULL);
    put_str(s, "b", &e, 2 * TTL, 0, NULL);
    CU_ASSERT_EQUAL(store_count(s), 2);
    /* Expired but not yet swept still counts. */
    CU_ASSERT_EQUAL(store_count(s), 2);
    store_get(s, "a", 1, TTL, NULL);
    CU_ASSERT_EQUAL(store_count(s), 1);
    while (store_expire(s, 2 * TTL) == 0 && store_count(s) > 0)
        ;
    CU_ASSERT_EQUAL(store_count(s), 0);
    store_free(s);
}

static void test_churn_reuses_slots_without_growing(void)
{
    struct store *s = store_mem_new(0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    char key[KEY_MAX];
    size_t slots = 0;
    for (size_t round = 0; round < CHURN_ROUNDS; round++) {
        uint64_t now = round * 2 * TTL;
        for (size_t i = 0; i < CHURN_CALLS; i++)
            store_put(s, key, key_of(key, round * MANY_KEYS + i), &e, TTL, now, NULL);
        CU_ASSERT_EQUAL(store_count(s), CHURN_CALLS);
        while (store_count(s) > 0)
            store_expire(s, now + TTL);
        struct store_mem_stats st = stats_of(s);
        if (round == 0)
            slots = st.slots;
        CU_ASSERT_EQUAL(st.slots, slots);
    }
    store_free(s);
}

static void test_max_calls_bounds_count_and_counts_evictions(void)
{
    struct store *s = store_mem_new(BOUNDED_MAX_CALLS);
    char key[KEY_MAX];
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    for (size_t i = 0; i < 3 * BOUNDED_MAX_CALLS; i++) {
        CU_ASSERT_EQUAL(store_put(s, key, key_of(key, i), &e, TTL + i, 0, NULL), 1);
        CU_ASSERT(store_count(s) <= BOUNDED_MAX_CALLS);
        /* The call just stored is never the one evicted. */
        CU_ASSERT_EQUAL(store_get(s, key, key_of(key, i), 0, NULL), 1);
    }
    CU_ASSERT_EQUAL(store_count(s), BOUNDED_MAX_CALLS);
    CU_ASSERT_EQUAL(store_mem_evictions(s), 2 * BOUNDED_MAX_CALLS);
    store_free(s);
}

static void test_max_calls_is_shared_between_stripes(void)
{
    struct store *s = store_mem_new(STRIPED_MAX_CALLS);
    CU_ASSERT(stats_of(s).stripes > 1);
    char key[KEY_MAX];
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    for (size_t i = 0; i < 2 * STRIPED_MAX_CALLS; i++)
        store_put(s, key, key_of(key, i), &e, TTL, 0, NULL);
    size_t n = store_count(s);
    CU_ASSERT(n <= STRIPED_MAX_CALLS);
    CU_ASSERT(n >= STRIPED_MAX_CALLS - STRIPED_MAX_CALLS / 100);
    CU_ASSERT_EQUAL(store_mem_evictions(s), 2 * STRIPED_MAX_CALLS - n);
    store_free(s);
}

static void test_eviction_takes_the_soonest_expiring(void)
{
    struct store *s = store_mem_new(SMALL_MAX_CALLS);
    static const uint64_t ttls[SMALL_MAX_CALLS] = { 4 * TTL, TTL, 3 * TTL, 2 * TTL };
    static const char *const keys[SMALL_MAX_CALLS] = { "c0", "c1", "c2", "c3" };
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    for (size_t i = 0; i < SMALL_MAX_CALLS; i++)
        put_str(s, keys[i], &e, ttls[i], 0, NULL);
    CU_ASSERT_EQUAL(put_str(s, "c4", &e, 5 * TTL, 0, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "c1", 0, NULL), 0);
    CU_ASSERT_EQUAL(get_str(s, "c0", 0, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "c2", 0, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "c3", 0, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "c4", 0, NULL), 1);
    CU_ASSERT_EQUAL(store_mem_evictions(s), 1);
    store_free(s);
}

static void test_expired_calls_make_room_before_live_ones_are_evicted(void)
{
    struct store *s = store_mem_new(SMALL_MAX_CALLS);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    put_str(s, "c0", &e, 4 * TTL, 0, NULL);
    put_str(s, "c1", &e, TTL, 0, NULL);
    put_str(s, "c2", &e, 3 * TTL, 0, NULL);
    put_str(s, "c3", &e, 2 * TTL, 0, NULL);
    /* At 2 * TTL, c1 and c3 are due. */
    CU_ASSERT_EQUAL(put_str(s, "c4", &e, TTL, 2 * TTL, NULL), 1);
    CU_ASSERT_EQUAL(put_str(s, "c5", &e, TTL, 2 * TTL, NULL), 1);
    CU_ASSERT_EQUAL(store_mem_evictions(s), 0);
    CU_ASSERT_EQUAL(stats_of(s).expired, 2);
    CU_ASSERT_EQUAL(get_str(s, "c0", 2 * TTL, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "c2", 2 * TTL, NULL), 1);
    store_free(s);
}

static void test_full_store_of_expired_calls_takes_new_ones_without_evicting(void)
{
    struct store *s = store_mem_new(ONE_STRIPE_MAX_CALLS);
    char key[KEY_MAX];
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    for (size_t i = 0; i < ONE_STRIPE_MAX_CALLS; i++)
        store_put(s, key, key_of(key, i), &e, TTL, 0, NULL);
    /* No sweep ran: every new call has to find an expired one to replace. */
    for (size_t i = 0; i < ONE_STRIPE_MAX_CALLS; i++)
        CU_ASSERT_EQUAL(store_put(s, key, key_of(key, ONE_STRIPE_MAX_CALLS + i), &e, TTL, TTL, NULL), 1);
    CU_ASSERT_EQUAL(store_count(s), ONE_STRIPE_MAX_CALLS);
    CU_ASSERT_EQUAL(store_mem_evictions(s), 0);
    CU_ASSERT_EQUAL(stats_of(s).expired, ONE_STRIPE_MAX_CALLS);
    store_free(s);
}

static void test_full_method_table_stores_the_overflow_name(void)
{
    struct store *s = store_mem_new(ONE_STRIPE_MAX_CALLS);
    CU_ASSERT_EQUAL_FATAL(stats_of(s).stripes, 1);
    char key[KEY_MAX], method[STORE_METHOD_MAX];
    for (size_t i = 0; i < DISTINCT_NAMES; i++) {
        snprintf(method, sizeof method, "X-METHOD-%zu", i);
        struct store_entry e = entry(method, "homer", 0, 0, 0);
        CU_ASSERT_EQUAL(store_put(s, key, key_of(key, i), &e, TTL, 0, NULL), 1);
    }
    /* A method already interned still gets its own name. */
    struct store_entry known = entry("X-METHOD-7", "homer", 0, 0, 0);
    CU_ASSERT_EQUAL(put_str(s, "known", &known, TTL, 0, NULL), 1);

    size_t named = 0, other = 0;
    for (size_t i = 0; i < DISTINCT_NAMES; i++) {
        struct store_entry out;
        CU_ASSERT_EQUAL(store_get(s, key, key_of(key, i), 0, &out), 1);
        snprintf(method, sizeof method, "X-METHOD-%zu", i);
        if (strcmp(out.method, method) == 0)
            named++;
        else if (strcmp(out.method, STORE_METHOD_OVERFLOW) == 0)
            other++;
        CU_ASSERT_STRING_EQUAL(out.route, "homer");
    }
    CU_ASSERT_EQUAL(named, NAMES_PER_TABLE);
    CU_ASSERT_EQUAL(other, DISTINCT_NAMES - NAMES_PER_TABLE);
    CU_ASSERT_EQUAL(stats_of(s).method_overflows, DISTINCT_NAMES - NAMES_PER_TABLE);
    struct store_entry out;
    get_str(s, "known", 0, &out);
    CU_ASSERT_STRING_EQUAL(out.method, "X-METHOD-7");
    store_free(s);
}

static void test_method_names_are_recycled_once_their_calls_expire(void)
{
    struct store *s = store_mem_new(ONE_STRIPE_MAX_CALLS);
    char key[KEY_MAX], method[STORE_METHOD_MAX];
    for (size_t i = 0; i < NAMES_PER_TABLE; i++) {
        snprintf(method, sizeof method, "OLD-%zu", i);
        struct store_entry e = entry(method, "homer", 0, 0, 0);
        store_put(s, key, key_of(key, i), &e, TTL, 0, NULL);
    }
    while (store_count(s) > 0)
        store_expire(s, TTL);
    for (size_t i = 0; i < NAMES_PER_TABLE; i++) {
        snprintf(method, sizeof method, "NEW-%zu", i);
        struct store_entry e = entry(method, "homer", 0, 0, 0);
        store_put(s, key, key_of(key, NAMES_PER_TABLE + i), &e, TTL, TTL, NULL);
    }
    size_t named = 0;
    for (size_t i = 0; i < NAMES_PER_TABLE; i++) {
        struct store_entry out;
        snprintf(method, sizeof method, "NEW-%zu", i);
        if (store_get(s, key, key_of(key, NAMES_PER_TABLE + i), TTL, &out) == 1 && strcmp(out.method, method) == 0)
            named++;
    }
    CU_ASSERT_EQUAL(named, NAMES_PER_TABLE);
    CU_ASSERT_EQUAL(stats_of(s).method_overflows, 0);
    store_free(s);
}

static void test_full_route_table_refuses_the_put(void)
{
    struct store *s = store_mem_new(ONE_STRIPE_MAX_CALLS);
    char key[KEY_MAX], route[STORE_ROUTE_MAX];
    size_t stored = 0, refused = 0;
    for (size_t i = 0; i < DISTINCT_NAMES; i++) {
        snprintf(route, sizeof route, "route-%zu", i);
        struct store_entry e = entry("INVITE", route, 0, 0, 0);
        int rc = store_put(s, key, key_of(key, i), &e, TTL, 0, NULL);
        if (rc == 1)
            stored++;
        else if (rc == -1)
            refused++;
    }
    CU_ASSERT_EQUAL(stored, NAMES_PER_TABLE);
    CU_ASSERT_EQUAL(refused, DISTINCT_NAMES - NAMES_PER_TABLE);
    CU_ASSERT_EQUAL(store_count(s), NAMES_PER_TABLE);
    CU_ASSERT_EQUAL(stats_of(s).route_overflows, DISTINCT_NAMES - NAMES_PER_TABLE);
    /* A refused call is not half-stored. */
    CU_ASSERT_EQUAL(store_get(s, key, key_of(key, DISTINCT_NAMES - 1), 0, NULL), 0);
    /* Known routes still work. */
    struct store_entry e = entry("INVITE", "route-3", 0, 0, 0);
    CU_ASSERT_EQUAL(put_str(s, "late", &e, TTL, 0, NULL), 1);
    store_free(s);
}

struct worker {
    pthread_t thread;
    struct store *s;
    size_t id;
    size_t own_failures;
    size_t shared_wins[SHARED_KEYS];
};

/* Each thread stores its own keys and races the others for the shared ones. */
static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char key[KEY_MAX], route[STORE_ROUTE_MAX];
    snprintf(route, sizeof route, "worker-%zu", w->id);
    for (size_t i = 0; i < KEYS_PER_THREAD; i++) {
        struct store_entry e = entry("INVITE", route, i, 0, i);
        size_t klen = key_of(key, (w->id + 1) * MANY_KEYS + i);
        if (store_put(w->s, key, klen, &e, TTL, 0, NULL) != 1)
            w->own_failures++;
        store_update(w->s, key, klen, TTL, STORE_F_ENDED, 0, i + 1, 1);
        if (i % SHARED_KEYS == w->id)
            store_expire(w->s, 1);
        size_t shared = (i + w->id * 7) % SHARED_KEYS;
        klen = key_of(key, shared);
        struct store_entry winner;
        int rc = store_put(w->s, key, klen, &e, TTL, 0, &winner);
        if (rc == 1)
            w->shared_wins[shared]++;
        else if (rc != 0)
            w->own_failures++;
        struct store_entry out;
        if (store_get(w->s, key, klen, 1, &out) != 1 || strncmp(out.route, "worker-", 7) != 0)
            w->own_failures++;
    }
    return NULL;
}

static void test_threads_lose_no_puts_and_one_writer_wins(void)
{
    struct store *s = store_mem_new(0);
    static struct worker workers[THREADS];
    for (size_t t = 0; t < THREADS; t++) {
        memset(&workers[t], 0, sizeof workers[t]);
        workers[t].s = s;
        workers[t].id = t;
        CU_ASSERT_FATAL(pthread_create(&workers[t].thread, NULL, worker_run, &workers[t]) == 0);
    }
    for (size_t t = 0; t < THREADS; t++)
        pthread_join(workers[t].thread, NULL);

    for (size_t t = 0; t < THREADS; t++)
        CU_ASSERT_EQUAL(workers[t].own_failures, 0);
    CU_ASSERT_EQUAL(store_count(s), THREADS * KEYS_PER_THREAD + SHARED_KEYS);

    char key[KEY_MAX], route[STORE_ROUTE_MAX];
    size_t bad_shared = 0, bad_own = 0;
    for (size_t k = 0; k < SHARED_KEYS; k++) {
        size_t wins = 0, winner = THREADS;
        for (size_t t = 0; t < THREADS; t++) {
            wins += workers[t].shared_wins[k];
            if (workers[t].shared_wins[k])
                winner = t;
        }
        struct store_entry out;
        snprintf(route, sizeof route, "worker-%zu", winner);
        if (wins != 1 || store_get(s, key, key_of(key, k), 1, &out) != 1 || strcmp(out.route, route) != 0)
            bad_shared++;
    }
    for (size_t t = 0; t < THREADS; t++) {
        snprintf(route, sizeof route, "worker-%zu", t);
        for (size_t i = 0; i < KEYS_PER_THREAD; i++) {
            struct store_entry out;
            if (store_get(s, key, key_of(key, (t + 1) * MANY_KEYS + i), 1, &out) != 1
                || strcmp(out.route, route) != 0 || out.last_hash != i + 1 || out.flags != STORE_F_ENDED)
                bad_own++;
        }
    }
    CU_ASSERT_EQUAL(bad_shared, 0);
    CU_ASSERT_EQUAL(bad_own, 0);
    store_free(s);
}

static void test_slot_size_and_bytes_per_call_for_a_million_calls(void)
{
    struct store *s = store_mem_new(0);
    char key[KEY_MAX];
    struct store_entry e = entry("INVITE", "voipmonitor", 0, 0, 0);
    for (size_t i = 0; i < MILLION_CALLS; i++)
        store_put(s, key, key_of(key, i), &e, TTL, 0, NULL);
    struct store_mem_stats st = stats_of(s);
    CU_ASSERT_EQUAL(st.calls, MILLION_CALLS);
    CU_ASSERT(st.slot_bytes <= SLOT_BYTES_MAX);
    double per_call = (double)st.bytes / MILLION_CALLS;
    printf("\n    %zu-byte slots, %zu slots in %zu stripes, %zu bytes: %.1f bytes per call (1M calls) ",
           st.slot_bytes, st.slots, st.stripes, st.bytes, per_call);
    CU_ASSERT(per_call <= BYTES_PER_CALL_MAX);
    store_free(s);
}

static void test_stats_refuse_other_back_ends(void)
{
    struct store_mem_stats st;
    CU_ASSERT_EQUAL(store_mem_stats(NULL, &st), -1);
    CU_ASSERT_EQUAL(store_mem_evictions(NULL), 0);
}

static const struct unit_test tests[] = {
    { "test_put_then_get_returns_the_entry", test_put_then_get_returns_the_entry },
    { "test_get_of_unknown_key_misses", test_get_of_unknown_key_misses },
    { "test_first_writer_wins", test_first_writer_wins },
    { "test_get_after_expiry_misses_and_removes", test_get_after_expiry_misses_and_removes },
    { "test_put_over_expired_entry_stores_the_new_one", test_put_over_expired_entry_stores_the_new_one },
    { "test_update_refreshes_expiry", test_update_refreshes_expiry },
    { "test_update_can_shorten_expiry", test_update_can_shorten_expiry },
    { "test_update_sets_and_clears_flags", test_update_sets_and_clears_flags },
    { "test_update_records_last_hash_and_keeps_the_rest", test_update_records_last_hash_and_keeps_the_rest },
    { "test_update_of_unknown_or_expired_key_returns_0", test_update_of_unknown_or_expired_key_returns_0 },
    { "test_longest_method_and_route_names_round_trip", test_longest_method_and_route_names_round_trip },
    { "test_unterminated_names_are_cut_to_fit", test_unterminated_names_are_cut_to_fit },
    { "test_same_names_with_different_case_stay_apart", test_same_names_with_different_case_stay_apart },
    { "test_keys_compare_as_exact_bytes", test_keys_compare_as_exact_bytes },
    { "test_many_keys_keep_distinct_results", test_many_keys_keep_distinct_results },
    { "test_expire_is_bounded_and_eventually_removes_all", test_expire_is_bounded_and_eventually_removes_all },
    { "test_count_follows_puts_and_removals", test_count_follows_puts_and_removals },
    { "test_churn_reuses_slots_without_growing", test_churn_reuses_slots_without_growing },
    { "test_max_calls_bounds_count_and_counts_evictions", test_max_calls_bounds_count_and_counts_evictions },
    { "test_max_calls_is_shared_between_stripes", test_max_calls_is_shared_between_stripes },
    { "test_eviction_takes_the_soonest_expiring", test_eviction_takes_the_soonest_expiring },
    { "test_expired_calls_make_room_before_live_ones_are_evicted",
      test_expired_calls_make_room_before_live_ones_are_evicted },
    { "test_full_store_of_expired_calls_takes_new_ones_without_evicting",
      test_full_store_of_expired_calls_takes_new_ones_without_evicting },
    { "test_full_method_table_stores_the_overflow_name", test_full_method_table_stores_the_overflow_name },
    { "test_method_names_are_recycled_once_their_calls_expire",
      test_method_names_are_recycled_once_their_calls_expire },
    { "test_full_route_table_refuses_the_put", test_full_route_table_refuses_the_put },
    { "test_threads_lose_no_puts_and_one_writer_wins", test_threads_lose_no_puts_and_one_writer_wins },
    { "test_slot_size_and_bytes_per_call_for_a_million_calls",
      test_slot_size_and_bytes_per_call_for_a_million_calls },
    { "test_stats_refuse_other_back_ends", test_stats_refuse_other_back_ends },
    { NULL, NULL }
};

int main(void)
{
    return unit_run("store", tests);
}
