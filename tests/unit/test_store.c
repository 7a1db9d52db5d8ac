/*
 * test_store.c - unit tests for the memory back-end of the call context
 * store (src/store/mem.c): first writer wins, expiry by the caller's clock
 * (lazy and swept), updates, the max_calls bound, many keys, several
 * threads at once, and the memory per call.  Method and route names come
 * from the read-only table given at creation (struct store_names): listed
 * names round-trip, any other method reads back as STORE_METHOD_UNLISTED,
 * a put with an unlisted route is refused, and what senders invent cannot
 * crowd out the real names (issue 11 item 2).
 */
#include "store/store.h"
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
#define KEYS_PER_THREAD     25000   /* even: half of each thread's calls use an unlisted method */
#define SHARED_KEYS         1000
#define SMALL_MAX_CALLS     4
#define BOUNDED_MAX_CALLS   100
#define STRIPED_MAX_CALLS   20000
#define ONE_STRIPE_MAX_CALLS 2000   /* below 2 x 1024 calls: a single stripe */
#define EXPIRE_CALLS_MAX    100000
#define CHURN_ROUNDS        20
#define CHURN_CALLS         19200   /* ~1200 per stripe: far from any growth threshold */
#define LISTED_NAMES_MAX    128     /* room in the tests' names table, per kind */
#define OVERLONG_EXTRA      8       /* bytes a listed name runs past the store's limit */
#define OLD_NAMES_PER_STRIPE 1024   /* the old per-stripe interning limit (STORE_MEM_NAMES_MAX) */
#define INVENTED_METHODS    20000   /* > 16 x OLD_NAMES_PER_STRIPE: filled every old table */
#define INVITE_CALLS        50
#define MANY_ROUTES         66000   /* > UINT16_MAX: route indexes need 32 bits */
#define GENERATED_NAME_MAX  16      /* "r65999", "m65535", "route-49", "worker-3" fit */

/* The standard methods and the other fixed names the tests store. */
static const char *const listed_methods[] = {
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY", "PUBLISH",
    "MESSAGE", "INFO", "REFER", "UPDATE", "PRACK", "invite", "",
};
static const char *const listed_routes[] = { "voipmonitor", "homer", "Homer", "presence", "" };

struct name_list {
    const char *v[LISTED_NAMES_MAX];
    size_t n;
};

static void name_list_add(struct name_list *l, const char *name)
{
    CU_ASSERT_FATAL(l->n < LISTED_NAMES_MAX);
    l->v[l->n++] = name;
}

/*
 * The names every store of these tests is made with: the fixed ones above;
 * "route-0".."route-49" and "worker-0".."worker-3"; the longest names a
 * call keeps ('M' and 'r'); and names longer than that ('X'), which the
 * store cuts exactly as it cuts a call's unterminated names.
 */
static const struct store_names *test_names(void)
{
    static char generated[ROUTES_USED + THREADS][GENERATED_NAME_MAX];
    static char longest_method[STORE_METHOD_MAX], longest_route[STORE_ROUTE_MAX];
    static char overlong_method[STORE_METHOD_MAX + OVERLONG_EXTRA];
    static char overlong_route[STORE_ROUTE_MAX + OVERLONG_EXTRA];
    static struct name_list methods, routes;
    static struct store_names names;
    if (names.nroutes > 0)
        return &names;

    for (size_t i = 0; i < sizeof listed_methods / sizeof listed_methods[0]; i++)
        name_list_add(&methods, listed_methods[i]);
    memset(longest_method, 'M', sizeof longest_method - 1);
    memset(overlong_method, 'X', sizeof overlong_method - 1);
    name_list_add(&methods, longest_method);
    name_list_add(&methods, overlong_method);

    for (size_t i = 0; i < sizeof listed_routes / sizeof listed_routes[0]; i++)
        name_list_add(&routes, listed_routes[i]);
    for (size_t i = 0; i < ROUTES_USED; i++) {
        snprintf(generated[i], sizeof generated[i], "route-%zu", i);
        name_list_add(&routes, generated[i]);
    }
    for (size_t t = 0; t < THREADS; t++) {
        snprintf(generated[ROUTES_USED + t], sizeof generated[ROUTES_USED + t], "worker-%zu", t);
        name_list_add(&routes, generated[ROUTES_USED + t]);
    }
    memset(longest_route, 'r', sizeof longest_route - 1);
    memset(overlong_route, 'X', sizeof overlong_route - 1);
    name_list_add(&routes, longest_route);
    name_list_add(&routes, overlong_route);

    names.methods = methods.v;
    names.nmethods = methods.n;
    names.routes = routes.v;
    names.nroutes = routes.n;
    return &names;
}

/* A memory store that knows every name the tests use. */
static struct store *store_with_test_names(size_t max_calls)
{
    struct store *s = store_mem_new(max_calls, test_names());
    CU_ASSERT_FATAL(s != NULL);
    return s;
}

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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "nobody@nowhere", 0, &out), 0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    put_str(s, "somebody@somewhere", &e, TTL, 0, NULL);
    CU_ASSERT_EQUAL(get_str(s, "nobody@nowhere", 0, &out), 0);
    store_free(s);
}

static void test_first_writer_wins(void)
{
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
    struct store_entry e;
    memset(&e, 'X', sizeof e);
    e.first_seen_ms = 0;
    e.flags = 0;
    e.last_hash = 0;
    CU_ASSERT_EQUAL(put_str(s, "call-1", &e, TTL, 0, NULL), 1);
    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "call-1", 0, &out), 1);
    /* Cut to the over-long 'X' names of the table, cut the same way: listed. */
    CU_ASSERT_EQUAL(strnlen(out.method, sizeof out.method), STORE_METHOD_MAX - 1);
    CU_ASSERT_EQUAL(strnlen(out.route, sizeof out.route), STORE_ROUTE_MAX - 1);
    CU_ASSERT_EQUAL(out.method[0], 'X');
    CU_ASSERT_EQUAL(out.route[0], 'X');
    CU_ASSERT_EQUAL(stats_of(s).unlisted, 0);
    store_free(s);
}

static void test_same_names_with_different_case_stay_apart(void)
{
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    CU_ASSERT_EQUAL(stats_of(s).unlisted, 0);
    store_free(s);
}

/* store_follow()'s judge for the hint test: a new TTL and last_hash, from the entry it is shown. */
static void touch_marks(void *arg, const struct store_entry *e, struct store_touch *t)
{
    (void)arg;
    t->ttl_ms = TTL;
    t->set = 0;
    t->clear = 0;
    t->last_hash = e->first_seen_ms + 1;
}

/*
 * Hints made before the calls are stored, and so before the stripes grow
 * under them, still find each call, with the same entry as a lookup
 * without a hint; a hint for a call not stored finds nothing.
 */
static void test_hinted_lookups_find_what_plain_ones_find(void)
{
    enum { KEYS = MANY_KEYS / 4 };
    struct store *s = store_with_test_names(0);
    struct store_hint *hints = calloc(KEYS + 1, sizeof *hints);
    CU_ASSERT_FATAL(hints != NULL);
    char key[KEY_MAX];
    for (size_t i = 0; i <= KEYS; i++) {
        store_hint(s, key, key_of(key, i), &hints[i]);
        CU_ASSERT(hints[i].set);
    }
    size_t wrong = 0;
    for (size_t i = 0; i < KEYS; i++) {
        struct store_entry e = entry("INVITE", "voipmonitor", i, 0, 0);
        size_t klen = key_of(key, i);
        /* every other call stored without its hint */
        int rc = i % 2 ? store_put_hinted(s, key, klen, &hints[i], &e, TTL, 0, NULL)
                       : store_put(s, key, klen, &e, TTL, 0, NULL);
        wrong += rc != 1;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT(stats_of(s).slots > KEYS);    /* the stripes grew after the hints were made */
    for (size_t i = 0; i < KEYS; i++) {
        struct store_entry out, plain;
        size_t klen = key_of(key, i);
        if (store_follow_hinted(s, key, klen, &hints[i], 1, &out, touch_marks, NULL) != 1 ||
            out.first_seen_ms != i || store_get(s, key, klen, 1, &plain) != 1 || plain.last_hash != i + 1)
            wrong++;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    struct store_entry out, e = entry("INVITE", "voipmonitor", 0, 0, 0);
    size_t klen = key_of(key, KEYS);
    CU_ASSERT_EQUAL(store_follow_hinted(s, key, klen, &hints[KEYS], 1, &out, touch_marks, NULL), 0);
    CU_ASSERT_EQUAL(store_put_hinted(s, key, klen, &hints[KEYS], &e, TTL, 1, NULL), 1);
    CU_ASSERT_EQUAL(store_get(s, key, klen, 2, &out), 1);
    CU_ASSERT_EQUAL(store_count(s), KEYS + 1);
    free(hints);
    store_free(s);
}

static void test_expire_is_bounded_and_eventually_removes_all(void)
{
    struct store *s = store_with_test_names(0);
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

/*
 * The sweep follows the clock: a call made right after the last visits a
 * few slots per stripe, one made a whole pass later visits as many as the
 * bound allows, and calls at one instant still get through the table.
 */
static void test_expire_sweeps_in_proportion_to_time(void)
{
    struct store *s = store_with_test_names(0);
    char key[KEY_MAX];
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0);
    for (size_t i = 0; i < MANY_KEYS; i++)
        store_put(s, key, key_of(key, i), &e, TTL, 0, NULL);

    uint64_t t = 100 * TTL;
    size_t first = store_expire(s, t);              /* long after any sweep: a full share */
    size_t at_once = store_expire(s, t);            /* at the same instant: the fewest */
    size_t later = store_expire(s, t + 100 * TTL);  /* a whole pass later: a full share again */
    CU_ASSERT(first > 0);
    CU_ASSERT(at_once > 0);
    CU_ASSERT(at_once * 4 < first);
    CU_ASSERT(later * 4 > first * 3);
    size_t calls = 0;
    while (store_count(s) > 0 && calls < EXPIRE_CALLS_MAX) {
        store_expire(s, t + 100 * TTL);
        calls++;
    }
    CU_ASSERT_EQUAL(store_count(s), 0);
    store_free(s);
}

static void test_count_follows_puts_and_removals(void)
{
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(0);
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
    struct store *s = store_with_test_names(BOUNDED_MAX_CALLS);
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
    struct store *s = store_with_test_names(STRIPED_MAX_CALLS);
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
    struct store *s = store_with_test_names(SMALL_MAX_CALLS);
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
    struct store *s = store_with_test_names(SMALL_MAX_CALLS);
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
    struct store *s = store_with_test_names(ONE_STRIPE_MAX_CALLS);
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

/*
 * n names "<prefix>00000", "<prefix>00001", ...: the pointers and the texts
 * in one allocation, freed with free().
 */
static const char **numbered_names(const char *prefix, size_t n)
{
    const char **v = malloc(n * (sizeof *v + GENERATED_NAME_MAX));
    CU_ASSERT_FATAL(v != NULL);
    char *text = (char *)(v + n);
    for (size_t i = 0; i < n; i++, text += GENERATED_NAME_MAX) {
        int len = snprintf(text, GENERATED_NAME_MAX, "%s%05zu", prefix, i);
        if (len <= 0 || len >= GENERATED_NAME_MAX)
            CU_FAIL_FATAL("numbered name does not fit");
        v[i] = text;
    }
    return v;
}

/*
 * Issue 11 item 2: the old store interned methods per stripe, at most
 * 1,024 live names each, so once senders had filled the tables with
 * invented methods every real INVITE was stored as "OTHER" and routed as
 * one.  Now the invented ones are unlisted and INVITE stays INVITE.  The
 * INVITEs outlive the invented calls, so a bounded store evicts those.
 */
static void check_invented_methods_leave_invite_named(struct store *s)
{
    char key[KEY_MAX], method[STORE_METHOD_MAX];
    for (size_t i = 0; i < INVENTED_METHODS; i++) {
        snprintf(method, sizeof method, "X-INVENTED-%zu", i);
        struct store_entry e = entry(method, "homer", 0, 0, i);
        if (store_put(s, key, key_of(key, i), &e, TTL, 0, NULL) != 1) {
            CU_FAIL("put of a call with an invented method did not store");
            break;
        }
    }
    struct store_entry invite = entry("INVITE", "voipmonitor", 0, 0, 0);
    for (size_t i = 0; i < INVITE_CALLS; i++)
        CU_ASSERT_EQUAL(store_put(s, key, key_of(key, INVENTED_METHODS + i), &invite, 10 * TTL, 0, NULL), 1);

    size_t named = 0, held = 0, unlisted = 0;
    struct store_entry out;
    for (size_t i = 0; i < INVITE_CALLS; i++)
        if (store_get(s, key, key_of(key, INVENTED_METHODS + i), 1, &out) == 1 && strcmp(out.method, "INVITE") == 0
            && strcmp(out.route, "voipmonitor") == 0)
            named++;
    for (size_t i = 0; i < INVENTED_METHODS; i++) {
        if (store_get(s, key, key_of(key, i), 1, &out) != 1)
            continue;
        held++;
        if (strcmp(out.method, STORE_METHOD_UNLISTED) == 0 && strcmp(out.route, "homer") == 0 && out.last_hash == i)
            unlisted++;
    }
    CU_ASSERT_EQUAL(named, INVITE_CALLS);
    CU_ASSERT_EQUAL(unlisted, held);
    CU_ASSERT_EQUAL(held + INVITE_CALLS, store_count(s));
    struct store_mem_stats st = stats_of(s);
    CU_ASSERT_EQUAL(st.unlisted, INVENTED_METHODS);
    CU_ASSERT_EQUAL(st.unknown_routes, 0);
}

static void test_invented_methods_leave_invite_named_in_one_stripe(void)
{
    struct store *s = store_with_test_names(ONE_STRIPE_MAX_CALLS);
    CU_ASSERT_EQUAL_FATAL(stats_of(s).stripes, 1);
    check_invented_methods_leave_invite_named(s);
    CU_ASSERT_EQUAL(store_count(s), ONE_STRIPE_MAX_CALLS);
    CU_ASSERT_EQUAL(store_mem_evictions(s), INVENTED_METHODS + INVITE_CALLS - ONE_STRIPE_MAX_CALLS);
    store_free(s);
}

static void test_invented_methods_leave_invite_named_in_all_stripes(void)
{
    struct store *s = store_with_test_names(0);
    /* More than OLD_NAMES_PER_STRIPE invented methods in every stripe. */
    CU_ASSERT_FATAL(stats_of(s).stripes > 1);
    CU_ASSERT_FATAL(INVENTED_METHODS / stats_of(s).stripes > OLD_NAMES_PER_STRIPE);
    check_invented_methods_leave_invite_named(s);
    CU_ASSERT_EQUAL(store_count(s), INVENTED_METHODS + INVITE_CALLS);
    CU_ASSERT_EQUAL(store_mem_evictions(s), 0);
    store_free(s);
}

static void test_unlisted_method_reads_back_as_unlisted(void)
{
    struct store *s = store_with_test_names(0);
    /*
     * Unknown; a listed name in another case ("invite" is listed, "bye" is
     * not); a prefix and an extension of a listed name; the marker itself.
     */
    static const char *const unlisted[] = { "X-FOO", "bye", "INVIT", "INVITES", STORE_METHOD_UNLISTED };
    size_t n = sizeof unlisted / sizeof unlisted[0];
    char key[KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "unlisted-%zu", i);
        struct store_entry e = entry(unlisted[i], "presence", 0, STORE_F_FALLBACK, i);
        CU_ASSERT_EQUAL(put_str(s, key, &e, TTL, 0, NULL), 1);
        struct store_entry out;
        CU_ASSERT_EQUAL(get_str(s, key, 0, &out), 1);
        CU_ASSERT_STRING_EQUAL(out.method, STORE_METHOD_UNLISTED);
        CU_ASSERT_STRING_EQUAL(out.route, "presence");
        CU_ASSERT_EQUAL(out.flags, STORE_F_FALLBACK);
        CU_ASSERT_EQUAL(out.last_hash, i);
    }
    /* A losing put is told the winner's method as stored. */
    struct store_entry again = entry("INVITE", "voipmonitor", 0, 0, 0), winner;
    CU_ASSERT_EQUAL(put_str(s, "unlisted-0", &again, TTL, 0, &winner), 0);
    CU_ASSERT_STRING_EQUAL(winner.method, STORE_METHOD_UNLISTED);
    CU_ASSERT_STRING_EQUAL(winner.route, "presence");
    struct store_mem_stats st = stats_of(s);
    CU_ASSERT_EQUAL(st.unlisted, n);
    CU_ASSERT_EQUAL(st.calls, n);
    store_free(s);
}

/*
 * Issue 11 item 2, routes: the old store refused the calls of any route
 * beyond 1,024 live ones per stripe, and kept route indexes in 16 bits.
 * Each call is checked as soon as it is stored, then those still held.
 */
static void check_every_route_stores_its_calls(size_t max_calls)
{
    const char **routes = numbered_names("r", MANY_ROUTES);
    static const char *const methods[] = { "INVITE" };
    struct store_names names = { methods, 1, routes, MANY_ROUTES };
    struct store *s = store_mem_new(max_calls, &names);
    CU_ASSERT_FATAL(s != NULL);
    if (max_calls > 0)
        CU_ASSERT_EQUAL(stats_of(s).stripes, 1);
    char key[KEY_MAX];
    struct store_entry out;
    size_t stored = 0, read_back = 0;
    for (size_t i = 0; i < MANY_ROUTES; i++) {
        struct store_entry e = entry("INVITE", routes[i], 0, 0, i);
        size_t klen = key_of(key, i);
        if (store_put(s, key, klen, &e, TTL, 0, NULL) == 1)
            stored++;
        if (store_get(s, key, klen, 0, &out) == 1 && strcmp(out.route, routes[i]) == 0)
            read_back++;
    }
    CU_ASSERT_EQUAL(stored, MANY_ROUTES);
    CU_ASSERT_EQUAL(read_back, MANY_ROUTES);

    size_t held = 0, wrong = 0;
    for (size_t i = 0; i < MANY_ROUTES; i++) {
        if (store_get(s, key, key_of(key, i), 0, &out) != 1)
            continue;
        held++;
        if (strcmp(out.route, routes[i]) != 0 || out.last_hash != i || strcmp(out.method, "INVITE") != 0)
            wrong++;
    }
    CU_ASSERT_EQUAL(held, store_count(s));
    CU_ASSERT_EQUAL(held, max_calls > 0 ? max_calls : MANY_ROUTES);
    CU_ASSERT_EQUAL(wrong, 0);
    /* The newest call, of a route whose index needs more than 16 bits, is among them. */
    CU_ASSERT_EQUAL(store_get(s, key, key_of(key, MANY_ROUTES - 1), 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "r65999");
    CU_ASSERT_EQUAL(stats_of(s).unknown_routes, 0);
    store_free(s);
    free(routes);
}

static void test_66000_routes_each_store_their_calls_in_one_stripe(void)
{
    check_every_route_stores_its_calls(ONE_STRIPE_MAX_CALLS);
}

static void test_66000_routes_each_store_their_calls_in_all_stripes(void)
{
    check_every_route_stores_its_calls(0);
}

static void test_unknown_route_refuses_the_put(void)
{
    struct store *s = store_with_test_names(0);
    /* Unknown; a listed name in another case; a prefix and an extension of one. */
    static const char *const unknown[] = { "nowhere", "HOMER", "home", "homer2" };
    size_t n = sizeof unknown / sizeof unknown[0];
    char key[KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "refused-%zu", i);
        /* Refused before its method is looked at: not counted as unlisted. */
        struct store_entry e = entry(i % 2 ? "INVITE" : "X-FOO", unknown[i], 0, 0, 0);
        CU_ASSERT_EQUAL(put_str(s, key, &e, TTL, 0, NULL), -1);
    }
    struct store_mem_stats st = stats_of(s);
    CU_ASSERT_EQUAL(st.unknown_routes, n);
    CU_ASSERT_EQUAL(st.unlisted, 0);
    CU_ASSERT_EQUAL(st.calls, 0);
    CU_ASSERT_EQUAL(store_count(s), 0);
    /* A refused call is not half-stored: its key is free for a known route. */
    CU_ASSERT_EQUAL(get_str(s, "refused-0", 0, NULL), 0);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0), out;
    CU_ASSERT_EQUAL(put_str(s, "refused-0", &e, TTL, 0, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "refused-0", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "homer");
    CU_ASSERT_EQUAL(stats_of(s).unknown_routes, n);
    store_free(s);
}

/* Replaces the old test of names recycled once their calls expired: nothing is recycled now. */
static void test_listed_names_still_read_back_after_their_calls_expire(void)
{
    const struct store_names *names = test_names();
    struct store *s = store_with_test_names(ONE_STRIPE_MAX_CALLS);
    CU_ASSERT_FATAL(names->nmethods * names->nroutes <= ONE_STRIPE_MAX_CALLS);
    char key[KEY_MAX];
    for (size_t round = 0; round < 2; round++) {
        uint64_t now = round * TTL;
        size_t k = round * MANY_KEYS, wrong = 0;
        for (size_t m = 0; m < names->nmethods; m++) {
            for (size_t r = 0; r < names->nroutes; r++, k++) {
                /* entry() cuts the over-long names as the store cut them. */
                struct store_entry e = entry(names->methods[m], names->routes[r], 0, 0, k), out;
                size_t klen = key_of(key, k);
                if (store_put(s, key, klen, &e, TTL, now, NULL) != 1 || store_get(s, key, klen, now, &out) != 1
                    || strcmp(out.method, e.method) != 0 || strcmp(out.route, e.route) != 0)
                    wrong++;
            }
        }
        CU_ASSERT_EQUAL(wrong, 0);
        CU_ASSERT_EQUAL(store_count(s), names->nmethods * names->nroutes);
        while (store_count(s) > 0)
            store_expire(s, now + TTL);
    }
    struct store_mem_stats st = stats_of(s);
    CU_ASSERT_EQUAL(st.unlisted, 0);
    CU_ASSERT_EQUAL(st.unknown_routes, 0);
    CU_ASSERT_EQUAL(st.evictions, 0);
    store_free(s);
}

static void test_repeated_names_are_kept_once(void)
{
    static const char *const methods[] = { "INVITE", "BYE", "INVITE", "INVITE" };
    static const char *const routes[] = { "homer", "voipmonitor", "homer" };
    struct store_names names = { methods, 4, routes, 3 };
    struct store *s = store_mem_new(0, &names);
    CU_ASSERT_FATAL(s != NULL);
    struct store_entry invite = entry("INVITE", "homer", 0, 0, 0);
    struct store_entry bye = entry("BYE", "voipmonitor", 0, 0, 0);
    struct store_entry out;
    CU_ASSERT_EQUAL(put_str(s, "invite", &invite, TTL, 0, NULL), 1);
    CU_ASSERT_EQUAL(put_str(s, "bye", &bye, TTL, 0, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "invite", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(out.route, "homer");
    CU_ASSERT_EQUAL(get_str(s, "bye", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, "BYE");
    CU_ASSERT_STRING_EQUAL(out.route, "voipmonitor");
    CU_ASSERT_EQUAL(stats_of(s).unlisted, 0);
    store_free(s);
}

static void test_more_distinct_methods_than_the_limit_make_new_fail(void)
{
    size_t n = STORE_MEM_METHODS_MAX + 1;
    const char **methods = numbered_names("m", n);
    static const char *const routes[] = { "homer" };
    struct store_names names = { methods, STORE_MEM_METHODS_MAX, routes, 1 };

    /* At the limit: the first and the last method both keep their names. */
    struct store *s = store_mem_new(0, &names);
    CU_ASSERT_FATAL(s != NULL);
    static const size_t probe[] = { 0, STORE_MEM_METHODS_MAX - 1, STORE_MEM_METHODS_MAX };
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        char key[KEY_MAX];
        snprintf(key, sizeof key, "call-%zu", probe[i]);
        struct store_entry e = entry(methods[probe[i]], "homer", 0, 0, 0), out;
        CU_ASSERT_EQUAL(put_str(s, key, &e, TTL, 0, NULL), 1);
        CU_ASSERT_EQUAL(get_str(s, key, 0, &out), 1);
        CU_ASSERT_STRING_EQUAL(out.method, probe[i] < STORE_MEM_METHODS_MAX ? methods[probe[i]]
                                                                             : STORE_METHOD_UNLISTED);
    }
    CU_ASSERT_EQUAL(stats_of(s).unlisted, 1);
    store_free(s);

    /* A repeat does not count towards the limit. */
    const char *last = methods[STORE_MEM_METHODS_MAX];
    methods[STORE_MEM_METHODS_MAX] = methods[0];
    names.nmethods = n;
    s = store_mem_new(0, &names);
    CU_ASSERT(s != NULL);
    store_free(s);

    /* One distinct method more is refused. */
    methods[STORE_MEM_METHODS_MAX] = last;
    CU_ASSERT_EQUAL(store_mem_new(0, &names), NULL);
    free(methods);
}

static void test_names_are_copied_at_creation(void)
{
    static const char *const given_methods[] = { "INVITE", "X-CUSTOM" };
    static const char *const given_routes[] = { "homer", "voipmonitor" };
    enum { N = 2 };
    char **methods = calloc(N, sizeof *methods), **routes = calloc(N, sizeof *routes);
    CU_ASSERT_FATAL(methods != NULL && routes != NULL);
    for (size_t i = 0; i < N; i++) {
        methods[i] = strdup(given_methods[i]);
        routes[i] = strdup(given_routes[i]);
        CU_ASSERT_FATAL(methods[i] != NULL && routes[i] != NULL);
    }
    struct store_names names = { (const char *const *)methods, N, (const char *const *)routes, N };
    struct store *s = store_mem_new(0, &names);
    CU_ASSERT_FATAL(s != NULL);

    /* The caller reuses its names for something else, then frees them. */
    for (size_t i = 0; i < N; i++) {
        memset(methods[i], 'Z', strlen(methods[i]));
        memset(routes[i], 'Z', strlen(routes[i]));
    }
    struct store_entry custom = entry("X-CUSTOM", "voipmonitor", 0, 0, 1);
    CU_ASSERT_EQUAL(put_str(s, "before-free", &custom, TTL, 0, NULL), 1);
    for (size_t i = 0; i < N; i++) {
        free(methods[i]);
        free(routes[i]);
    }
    free(methods);
    free(routes);
    memset(&names, 0, sizeof names);
    struct store_entry invite = entry("INVITE", "homer", 0, 0, 2);
    CU_ASSERT_EQUAL(put_str(s, "after-free", &invite, TTL, 0, NULL), 1);

    struct store_entry out;
    CU_ASSERT_EQUAL(get_str(s, "before-free", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, "X-CUSTOM");
    CU_ASSERT_STRING_EQUAL(out.route, "voipmonitor");
    CU_ASSERT_EQUAL(get_str(s, "after-free", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, "INVITE");
    CU_ASSERT_STRING_EQUAL(out.route, "homer");
    CU_ASSERT_EQUAL(stats_of(s).unlisted, 0);
    store_free(s);
}

static void test_empty_names_list_no_method_and_no_route(void)
{
    static const char *const routes[] = { "homer" };
    struct store_names none = { NULL, 0, NULL, 0 };
    struct store *s = store_mem_new(0, &none);
    CU_ASSERT_FATAL(s != NULL);
    struct store_entry e = entry("INVITE", "homer", 0, 0, 0), empty = entry("", "", 0, 0, 0), out;
    CU_ASSERT_EQUAL(put_str(s, "call-1", &e, TTL, 0, NULL), -1);
    CU_ASSERT_EQUAL(put_str(s, "call-2", &empty, TTL, 0, NULL), -1);
    CU_ASSERT_EQUAL(stats_of(s).unknown_routes, 2);
    CU_ASSERT_EQUAL(store_count(s), 0);
    store_free(s);

    /* Routes but no methods: every call is stored, every method unlisted. */
    struct store_names routes_only = { NULL, 0, routes, 1 };
    s = store_mem_new(0, &routes_only);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_EQUAL(put_str(s, "call-1", &e, TTL, 0, NULL), 1);
    CU_ASSERT_EQUAL(get_str(s, "call-1", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.method, STORE_METHOD_UNLISTED);
    CU_ASSERT_STRING_EQUAL(out.route, "homer");
    CU_ASSERT_EQUAL(stats_of(s).unlisted, 1);
    store_free(s);
}

struct worker {
    pthread_t thread;
    struct store *s;
    size_t id;
    size_t own_failures;
    size_t shared_wins[SHARED_KEYS];
};

/*
 * Each thread stores its own keys, every other one with an unlisted method,
 * and races the others for the shared ones.
 */
static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char key[KEY_MAX], route[STORE_ROUTE_MAX], method[STORE_METHOD_MAX];
    snprintf(route, sizeof route, "worker-%zu", w->id);
    for (size_t i = 0; i < KEYS_PER_THREAD; i++) {
        snprintf(method, sizeof method, "X-WORKER-%zu-%zu", w->id, i);
        struct store_entry e = entry(i % 2 ? "INVITE" : method, route, i, 0, i);
        struct store_entry shared_e = entry("INVITE", route, i, 0, i);
        size_t klen = key_of(key, (w->id + 1) * MANY_KEYS + i);
        if (store_put(w->s, key, klen, &e, TTL, 0, NULL) != 1)
            w->own_failures++;
        store_update(w->s, key, klen, TTL, STORE_F_ENDED, 0, i + 1, 1);
        if (i % SHARED_KEYS == w->id)
            store_expire(w->s, 1);
        size_t shared = (i + w->id * 7) % SHARED_KEYS;
        klen = key_of(key, shared);
        struct store_entry winner;
        int rc = store_put(w->s, key, klen, &shared_e, TTL, 0, &winner);
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
    struct store *s = store_with_test_names(0);
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
                || strcmp(out.route, route) != 0 || out.last_hash != i + 1 || out.flags != STORE_F_ENDED
                || strcmp(out.method, i % 2 ? "INVITE" : STORE_METHOD_UNLISTED) != 0)
                bad_own++;
        }
    }
    CU_ASSERT_EQUAL(bad_shared, 0);
    CU_ASSERT_EQUAL(bad_own, 0);
    CU_ASSERT_EQUAL(stats_of(s).unlisted, THREADS * KEYS_PER_THREAD / 2);
    store_free(s);
}

static void test_slot_size_and_bytes_per_call_for_a_million_calls(void)
{
    struct store *s = store_with_test_names(0);
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

/*
 * A reload brings routes and methods the store has not seen: once added,
 * their calls are stored; calls stored before keep their names, and a
 * second add of the same names publishes nothing new.
 */
static void test_added_names_are_stored_and_old_calls_keep_theirs(void)
{
    static const char *const methods0[] = { "INVITE" };
    static const char *const routes0[] = { "calls", "(default)" };
    static const char *const methods1[] = { "PUBLISH", "X-CUSTOM", "INVITE" };
    static const char *const routes1[] = { "customer-b", "calls", "(default)" };
    struct store_names names0 = { methods0, 1, routes0, 2 };
    struct store_names names1 = { methods1, 3, routes1, 3 };
    struct store *s = store_mem_new(0, &names0);
    CU_ASSERT_FATAL(s != NULL);
    struct store_entry old = entry("INVITE", "calls", 1, 0, 7), fresh = entry("X-CUSTOM", "customer-b", 2, 0, 8);
    struct store_entry out;
    CU_ASSERT_EQUAL(put_str(s, "old@h", &old, TTL, 0, NULL), 1);
    CU_ASSERT_EQUAL(put_str(s, "new@h", &fresh, TTL, 0, NULL), -1);     /* route unknown yet */
    CU_ASSERT_EQUAL(stats_of(s).unknown_routes, 1);
    size_t bytes_before = stats_of(s).bytes;

    CU_ASSERT_EQUAL_FATAL(s->ops->add_names(s, &names1), 0);
    CU_ASSERT(stats_of(s).bytes > bytes_before);                        /* the old set stays too */
    CU_ASSERT_EQUAL(put_str(s, "new@h", &fresh, TTL, 0, NULL), 1);
    CU_ASSERT_EQUAL_FATAL(get_str(s, "new@h", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "customer-b");
    CU_ASSERT_STRING_EQUAL(out.method, "X-CUSTOM");
    CU_ASSERT_EQUAL_FATAL(get_str(s, "old@h", 0, &out), 1);
    CU_ASSERT_STRING_EQUAL(out.route, "calls");
    CU_ASSERT_STRING_EQUAL(out.method, "INVITE");

    size_t bytes_after = stats_of(s).bytes;
    CU_ASSERT_EQUAL(s->ops->add_names(s, &names1), 0);
    CU_ASSERT_EQUAL(stats_of(s).bytes, bytes_after);                    /* nothing new: no new set */
    store_free(s);
}

static const struct unit_test tests[] = {
    { "test_added_names_are_stored_and_old_calls_keep_theirs", test_added_names_are_stored_and_old_calls_keep_theirs },
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
    { "test_hinted_lookups_find_what_plain_ones_find", test_hinted_lookups_find_what_plain_ones_find },
    { "test_expire_is_bounded_and_eventually_removes_all", test_expire_is_bounded_and_eventually_removes_all },
    { "test_expire_sweeps_in_proportion_to_time", test_expire_sweeps_in_proportion_to_time },
    { "test_count_follows_puts_and_removals", test_count_follows_puts_and_removals },
    { "test_churn_reuses_slots_without_growing", test_churn_reuses_slots_without_growing },
    { "test_max_calls_bounds_count_and_counts_evictions", test_max_calls_bounds_count_and_counts_evictions },
    { "test_max_calls_is_shared_between_stripes", test_max_calls_is_shared_between_stripes },
    { "test_eviction_takes_the_soonest_expiring", test_eviction_takes_the_soonest_expiring },
    { "test_expired_calls_make_room_before_live_ones_are_evicted",
      test_expired_calls_make_room_before_live_ones_are_evicted },
    { "test_full_store_of_expired_calls_takes_new_ones_without_evicting",
      test_full_store_of_expired_calls_takes_new_ones_without_evicting },
    { "test_invented_methods_leave_invite_named_in_one_stripe",
      test_invented_methods_leave_invite_named_in_one_stripe },
    { "test_invented_methods_leave_invite_named_in_all_stripes",
      test_invented_methods_leave_invite_named_in_all_stripes },
    { "test_unlisted_method_reads_back_as_unlisted", test_unlisted_method_reads_back_as_unlisted },
    { "test_66000_routes_each_store_their_calls_in_one_stripe",
      test_66000_routes_each_store_their_calls_in_one_stripe },
    { "test_66000_routes_each_store_their_calls_in_all_stripes",
      test_66000_routes_each_store_their_calls_in_all_stripes },
    { "test_unknown_route_refuses_the_put", test_unknown_route_refuses_the_put },
    { "test_listed_names_still_read_back_after_their_calls_expire",
      test_listed_names_still_read_back_after_their_calls_expire },
    { "test_repeated_names_are_kept_once", test_repeated_names_are_kept_once },
    { "test_more_distinct_methods_than_the_limit_make_new_fail",
      test_more_distinct_methods_than_the_limit_make_new_fail },
    { "test_names_are_copied_at_creation", test_names_are_copied_at_creation },
    { "test_empty_names_list_no_method_and_no_route", test_empty_names_list_no_method_and_no_route },
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
