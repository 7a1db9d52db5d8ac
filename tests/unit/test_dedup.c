/*
 * test_dedup.c - unit tests for the window of sent packets (src/dedup.c):
 * the window (first arrival wins, a copy does not extend it, the end
 * boundary), the key (every identity field and the destination count, the
 * other kind's fields and where the bytes live do not, field boundaries
 * are kept), the memory bound (a table fed ten times its size stays its
 * size, overwrites expired entries before live ones and the oldest live
 * ones first), and workers checking the same keys at once.
 */
#include "dedup.h"
#include "hash.h"
#include "unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WINDOW          500
#define T0              100000      /* a start time well away from 0 */
#define DEST            3
#define SMALL           1024        /* max_entries of the bounded tests */
#define FLOOD_FACTOR    10
#define RECENT          16          /* newest keys a flooded table must still know */
#define THREADS         4
#define THREAD_KEYS     20000
#define FOREVER         (UINT64_C(1) << 40)

static const uint8_t ADDR_A4[4] = { 10, 0, 0, 1 };
static const uint8_t ADDR_B4[4] = { 10, 0, 0, 2 };
static const uint8_t ADDR_C4[4] = { 10, 0, 0, 3 };
static const uint8_t ADDR_A16[16] = { 10, 0, 0, 1 };   /* ADDR_A4 followed by zeros */
static const uint8_t ADDR_B16[16] = { 10, 0, 0, 2 };

static struct dedup_bytes str(const char *s)
{
    return (struct dedup_bytes){ s, strlen(s) };
}

/* Binary payloads: NUL bytes included. */
#define BIN(lit)        ((struct dedup_bytes){ lit, sizeof lit - 1 })
#define RTCP_SR         "\x80\xc8\x00\x06\x00\x00\x00\x01report"
#define RTCP_SR_CHANGED "\x80\xc8\x00\x06\x00\x00\x00\x02report"

/* An INVITE captured on 10.0.0.1:5060 -> 10.0.0.2:5060 over UDP. */
static struct dedup_identity invite(void)
{
    struct dedup_identity id;
    memset(&id, 0, sizeof id);
    id.kind = DEDUP_SIP;
    id.call_id = str("a84b4c76e66710@pc33.atlanta.example.com");
    id.cseq = 314159;
    id.cseq_method = str("INVITE");
    id.method = str("INVITE");
    id.status = 0;
    id.via_branch = str("z9hG4bK776asdhds");
    id.addr_len = 4;
    id.src_addr = ADDR_A4;
    id.dst_addr = ADDR_B4;
    id.src_port = 5060;
    id.dst_port = 5060;
    id.transport = 17;
    return id;
}

/* An RTCP report of the same call. */
static struct dedup_identity rtcp(void)
{
    struct dedup_identity id;
    memset(&id, 0, sizeof id);
    id.kind = DEDUP_OTHER;
    id.correlation_id = str("a84b4c76e66710@pc33.atlanta.example.com");
    id.proto_type = 5;
    id.payload = BIN(RTCP_SR);
    id.addr_len = 4;
    id.src_addr = ADDR_A4;
    id.dst_addr = ADDR_B4;
    id.src_port = 10001;
    id.dst_port = 20001;
    id.transport = 17;
    return id;
}

static bool same_key(const uint64_t a[2], const uint64_t b[2])
{
    return a[0] == b[0] && a[1] == b[1];
}

/* A key that needs no identity, the same in every run. */
static void synthetic_key(uint64_t i, uint64_t key[2])
{
    key[0] = hash_fmix64(i * 2 + 1);
    key[1] = hash_fmix64(i * 2 + 2);
}

/* --- the window ------------------------------------------------------------ */

static void test_copy_within_the_window_is_a_duplicate(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dedup_identity id = invite();
    uint64_t key[2];
    dedup_key(d, &id, DEST, key);

    CU_ASSERT_FALSE(dedup_check(d, key, T0, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, key, T0, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, key, T0 + 1, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, key, T0 + WINDOW - 1, WINDOW));
    /* Window over: sent again, and that arrival starts a new window. */
    CU_ASSERT_FALSE(dedup_check(d, key, T0 + WINDOW, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, key, T0 + 2 * WINDOW - 1, WINDOW));
    CU_ASSERT_FALSE(dedup_check(d, key, T0 + 2 * WINDOW, WINDOW));

    struct dedup_stats st;
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.checked, 7);
    CU_ASSERT_EQUAL(st.duplicates, 4);
    CU_ASSERT_EQUAL(st.entries, 1);
    CU_ASSERT_EQUAL(st.evicted_live, 0);
    dedup_free(d);
}

static void test_duplicate_does_not_extend_the_window(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    uint64_t key[2];
    synthetic_key(1, key);
    CU_ASSERT_FALSE(dedup_check(d, key, T0, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, key, T0 + WINDOW - 100, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, key, T0 + WINDOW - 1, WINDOW));
    /* Had the copies refreshed it, this would still be inside a window. */
    CU_ASSERT_FALSE(dedup_check(d, key, T0 + WINDOW, WINDOW));
    dedup_free(d);
}

static void test_same_identity_to_another_destination_is_sent(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    struct dedup_identity id = invite();
    uint64_t k1[2], k2[2];
    dedup_key(d, &id, 1, k1);
    dedup_key(d, &id, 2, k2);
    CU_ASSERT_FALSE(dedup_check(d, k1, T0, WINDOW));
    CU_ASSERT_FALSE(dedup_check(d, k2, T0, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, k1, T0 + 1, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, k2, T0 + 1, WINDOW));
    dedup_free(d);
}

static void test_zero_window_records_nothing(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    uint64_t key[2];
    synthetic_key(2, key);
    CU_ASSERT_FALSE(dedup_check(d, key, T0, 0));
    CU_ASSERT_FALSE(dedup_check(d, key, T0, 0));
    CU_ASSERT_FALSE(dedup_check(d, key, T0, WINDOW));
    struct dedup_stats st;
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.checked, 1);
    CU_ASSERT_EQUAL(st.entries, 1);
    dedup_free(d);
}

/* Workers read their clocks at slightly different moments. */
static void test_copy_stamped_before_the_first_is_a_duplicate(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    uint64_t key[2];
    synthetic_key(3, key);
    CU_ASSERT_FALSE(dedup_check(d, key, T0, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, key, T0 - 10, WINDOW));
    dedup_free(d);
}

static void test_time_zero_and_a_huge_window(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    uint64_t key[2];
    synthetic_key(4, key);
    CU_ASSERT_FALSE(dedup_check(d, key, 0, UINT64_MAX));
    CU_ASSERT_TRUE(dedup_check(d, key, UINT64_MAX - 1, UINT64_MAX));
    dedup_free(d);
}

/* --- the key --------------------------------------------------------------- */

typedef void (*change_fn)(struct dedup_identity *id);

static void change_call_id(struct dedup_identity *id) { id->call_id = str("a84b4c76e66711@pc33.atlanta.example.com"); }
static void change_cseq(struct dedup_identity *id) { id->cseq++; }
static void change_cseq_method(struct dedup_identity *id) { id->cseq_method = str("ACK"); }
static void change_method(struct dedup_identity *id) { id->method = str("ACK"); }
static void change_to_reply(struct dedup_identity *id) { id->method = str(""); id->status = 407; }
static void change_via_branch(struct dedup_identity *id) { id->via_branch = str("z9hG4bK776asdhdt"); }
static void drop_via_branch(struct dedup_identity *id) { id->via_branch = str(""); }
static void change_src_addr(struct dedup_identity *id) { id->src_addr = ADDR_C4; }
static void change_dst_addr(struct dedup_identity *id) { id->dst_addr = ADDR_C4; }
static void swap_addrs(struct dedup_identity *id) { id->src_addr = ADDR_B4; id->dst_addr = ADDR_A4; }
static void change_src_port(struct dedup_identity *id) { id->src_port = 5061; }
static void change_dst_port(struct dedup_identity *id) { id->dst_port = 5061; }
static void change_transport(struct dedup_identity *id) { id->transport = 6; }
static void change_family(struct dedup_identity *id)
{
    id->addr_len = 16;
    id->src_addr = ADDR_A16;
    id->dst_addr = ADDR_B16;
}
static void drop_addrs(struct dedup_identity *id) { id->addr_len = 0; id->src_addr = id->dst_addr = NULL; }

struct change {
    const char *what;
    change_fn fn;
};

static const struct change sip_changes[] = {
    { "call_id", change_call_id },
    { "cseq", change_cseq },
    { "cseq_method", change_cseq_method },
    { "method", change_method },
    { "reply 407", change_to_reply },
    { "via_branch", change_via_branch },
    { "no via_branch", drop_via_branch },
    { "src_addr", change_src_addr },
    { "dst_addr", change_dst_addr },
    { "addresses swapped", swap_addrs },
    { "src_port", change_src_port },
    { "dst_port", change_dst_port },
    { "transport", change_transport },
    { "IPv6 with the same leading bytes", change_family },
    { "no addresses", drop_addrs },
};

#define NCHANGES (sizeof sip_changes / sizeof sip_changes[0])

/* Every field changed alone, and the destination, give keys different from each other and from the base. */
static void test_each_field_changes_the_key(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    uint64_t keys[NCHANGES + 2][2];
    struct dedup_identity base = invite();
    dedup_key(d, &base, DEST, keys[0]);
    dedup_key(d, &base, DEST + 1, keys[1]);
    for (size_t i = 0; i < NCHANGES; i++) {
        struct dedup_identity id = invite();
        sip_changes[i].fn(&id);
        dedup_key(d, &id, DEST, keys[i + 2]);
    }
    for (size_t i = 0; i < NCHANGES + 2; i++)
        for (size_t j = i + 1; j < NCHANGES + 2; j++)
            if (same_key(keys[i], keys[j])) {
                fprintf(stderr, "same key: change %zu and %zu\n", i, j);
                CU_FAIL("two identities share a key");
            }
    /* And a changed field is a new packet to the window. */
    CU_ASSERT_FALSE(dedup_check(d, keys[0], T0, WINDOW));
    for (size_t i = 1; i < NCHANGES + 2; i++)
        CU_ASSERT_FALSE(dedup_check(d, keys[i], T0, WINDOW));
    dedup_free(d);
}

/*
 * The key depends on the bytes, not on where they are: two copies of a
 * packet in two receive buffers (with whatever capture id, node name and
 * timestamp, which struct dedup_identity has no room for) give one key.
 */
static void test_copies_in_different_buffers_give_one_key(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    char call_id[64], cseq_method[8], method[8], branch[32];
    uint8_t src[4], dst[4];
    struct dedup_identity a = invite(), b = invite();
    memcpy(call_id, a.call_id.ptr, a.call_id.len);
    memcpy(cseq_method, a.cseq_method.ptr, a.cseq_method.len);
    memcpy(method, a.method.ptr, a.method.len);
    memcpy(branch, a.via_branch.ptr, a.via_branch.len);
    memcpy(src, ADDR_A4, sizeof src);
    memcpy(dst, ADDR_B4, sizeof dst);
    b.call_id.ptr = call_id;
    b.cseq_method.ptr = cseq_method;
    b.method.ptr = method;
    b.via_branch.ptr = branch;
    b.src_addr = src;
    b.dst_addr = dst;
    uint64_t ka[2], kb[2];
    dedup_key(d, &a, DEST, ka);
    dedup_key(d, &b, DEST, kb);
    CU_ASSERT_TRUE(same_key(ka, kb));
    CU_ASSERT_FALSE(dedup_check(d, ka, T0, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, kb, T0 + 3, WINDOW));
    dedup_free(d);
}

/* Each kind reads its own fields only: the other kind's are not inputs. */
static void test_fields_of_the_other_kind_are_not_read(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    uint64_t k1[2], k2[2];

    struct dedup_identity sip = invite();
    dedup_key(d, &sip, DEST, k1);
    sip.correlation_id = str("something");
    sip.proto_type = 1;
    sip.payload = str("INVITE sip:bob@biloxi.example.com SIP/2.0\r\n");
    dedup_key(d, &sip, DEST, k2);
    CU_ASSERT_TRUE(same_key(k1, k2));

    struct dedup_identity other = rtcp();
    dedup_key(d, &other, DEST, k1);
    other.call_id = str("x@y");
    other.cseq = 7;
    other.cseq_method = other.method = str("BYE");
    other.status = 200;
    other.via_branch = str("z9hG4bKx");
    dedup_key(d, &other, DEST, k2);
    CU_ASSERT_TRUE(same_key(k1, k2));
    dedup_free(d);
}

/* Moving bytes from one field to the next makes another key: ("ab", "c") is not ("a", "bc"). */
static void test_field_boundaries_are_kept(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    uint64_t k1[2], k2[2];
    struct dedup_identity a = invite(), b = invite();

    a.call_id = str("ab");
    a.cseq_method = str("c");
    b.call_id = str("a");
    b.cseq_method = str("bc");
    dedup_key(d, &a, DEST, k1);
    dedup_key(d, &b, DEST, k2);
    CU_ASSERT_FALSE(same_key(k1, k2));

    a = invite();
    b = invite();
    a.method = str("INVITEz9");
    a.via_branch = str("hG4bK");
    b.method = str("INVITE");
    b.via_branch = str("z9hG4bK");
    dedup_key(d, &a, DEST, k1);
    dedup_key(d, &b, DEST, k2);
    CU_ASSERT_FALSE(same_key(k1, k2));

    /* An empty field is not a missing one elsewhere: ("", "x") vs ("x", ""). */
    a = invite();
    b = invite();
    a.cseq_method = str("");
    a.method = str("x");
    b.cseq_method = str("x");
    b.method = str("");
    dedup_key(d, &a, DEST, k1);
    dedup_key(d, &b, DEST, k2);
    CU_ASSERT_FALSE(same_key(k1, k2));

    struct dedup_identity c = rtcp(), e = rtcp();
    c.correlation_id = str("call-1");
    c.payload = str("2report");
    e.correlation_id = str("call-12");
    e.payload = str("report");
    dedup_key(d, &c, DEST, k1);
    dedup_key(d, &e, DEST, k2);
    CU_ASSERT_FALSE(same_key(k1, k2));
    dedup_free(d);
}

/* RTCP and logs: correlation id, HEP type and payload bytes, and the hop. */
static void test_non_sip_identity(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    struct dedup_identity base = rtcp(), id;
    uint64_t kb[2], k[2];
    dedup_key(d, &base, DEST, kb);

    dedup_key(d, &base, DEST, k);
    CU_ASSERT_TRUE(same_key(kb, k));
    id = base;
    id.correlation_id = str("another-call@host");
    dedup_key(d, &id, DEST, k);
    CU_ASSERT_FALSE(same_key(kb, k));
    id = base;
    id.proto_type = 100;
    dedup_key(d, &id, DEST, k);
    CU_ASSERT_FALSE(same_key(kb, k));
    id = base;
    id.payload = BIN(RTCP_SR_CHANGED);
    dedup_key(d, &id, DEST, k);
    CU_ASSERT_FALSE(same_key(kb, k));
    id = base;
    id.src_port++;
    dedup_key(d, &id, DEST, k);
    CU_ASSERT_FALSE(same_key(kb, k));

    /* The same strings as SIP fields are another identity. */
    struct dedup_identity sip;
    memset(&sip, 0, sizeof sip);
    sip.kind = DEDUP_SIP;
    sip.call_id = base.correlation_id;
    sip.cseq_method = base.payload;
    sip.addr_len = base.addr_len;
    sip.src_addr = base.src_addr;
    sip.dst_addr = base.dst_addr;
    sip.src_port = base.src_port;
    sip.dst_port = base.dst_port;
    sip.transport = base.transport;
    dedup_key(d, &sip, DEST, k);
    CU_ASSERT_FALSE(same_key(kb, k));

    /* A log line sent twice is one. */
    struct dedup_identity log = rtcp();
    log.proto_type = 100;
    log.payload = str("{\"event\":\"dialog_start\"}");
    dedup_key(d, &log, DEST, k);
    CU_ASSERT_FALSE(dedup_check(d, k, T0, WINDOW));
    CU_ASSERT_TRUE(dedup_check(d, k, T0 + 20, WINDOW));
    dedup_free(d);
}

/* Keys are a table's own (random hash key): nobody outside can aim at a slot. */
static void test_two_tables_make_different_keys(void)
{
    struct dedup *a = dedup_new(SMALL, 0), *b = dedup_new(SMALL, 0);
    struct dedup_identity id = invite();
    uint64_t ka[2], kb[2];
    dedup_key(a, &id, DEST, ka);
    dedup_key(b, &id, DEST, kb);
    CU_ASSERT_FALSE(same_key(ka, kb));
    dedup_free(a);
    dedup_free(b);
}

/* --- bounds ---------------------------------------------------------------- */

static void test_size_is_fixed_at_creation(void)
{
    CU_ASSERT_PTR_NULL(dedup_new(0, 0));
    dedup_free(NULL);

    struct dedup_stats st;
    struct dedup *d = dedup_new(1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.stripes, 1);
    CU_ASSERT_EQUAL(st.capacity, DEDUP_WAYS);
    dedup_free(d);

    d = dedup_new(1000000, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.stripes, DEDUP_STRIPES_DEFAULT);
    CU_ASSERT(st.capacity <= 1000000);
    CU_ASSERT(st.capacity > 1000000 - DEDUP_STRIPES_DEFAULT * DEDUP_WAYS);
    CU_ASSERT(st.bytes >= st.capacity * DEDUP_SLOT_BYTES);
    CU_ASSERT(st.bytes < st.capacity * DEDUP_SLOT_BYTES + 64 * 1024);
    CU_ASSERT_EQUAL(st.entries, 0);
    /* a table of many megabytes (huge pages where the kernel gives them) is zero and usable throughout */
    uint64_t key[2];
    unsigned fresh = 0, copies = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        synthetic_key(i, key);
        fresh += !dedup_check(d, key, T0, WINDOW);
        copies += dedup_check(d, key, T0 + 1, WINDOW);
    }
    CU_ASSERT_EQUAL(fresh, 20000);
    CU_ASSERT_EQUAL(copies, 20000);
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.entries, 20000);
    dedup_free(d);

    /* Small tables get fewer stripes than asked for, large ones at most DEDUP_STRIPES_MAX. */
    d = dedup_new(SMALL, 1000);
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.stripes, 1);
    CU_ASSERT_EQUAL(st.capacity, SMALL);
    dedup_free(d);
    d = dedup_new(1000000, 1000);
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.stripes, DEDUP_STRIPES_MAX);
    CU_ASSERT(st.capacity <= 1000000);
    dedup_free(d);
}

/* Ten times max_entries keys, all inside their window: the table stays its size and keeps the newest. */
static void test_flood_stays_bounded_and_keeps_recent_keys(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    struct dedup_stats before, after;
    dedup_stats(d, &before);
    uint64_t n = (uint64_t)FLOOD_FACTOR * SMALL, key[2];
    for (uint64_t i = 0; i < n; i++) {
        synthetic_key(i, key);
        CU_ASSERT_FALSE(dedup_check(d, key, T0 + i, FOREVER));
    }
    dedup_stats(d, &after);
    CU_ASSERT_EQUAL(after.bytes, before.bytes);
    CU_ASSERT_EQUAL(after.capacity, before.capacity);
    CU_ASSERT(after.entries <= after.capacity);
    /* Nothing expired: each key took an empty slot or overwrote a live entry. */
    CU_ASSERT_EQUAL(after.entries + after.evicted_live, n);
    CU_ASSERT(after.evicted_live >= n - after.capacity);
    CU_ASSERT_EQUAL(after.checked, n);
    CU_ASSERT_EQUAL(after.duplicates, 0);

    /* The newest keys are still there: the oldest go first. */
    for (uint64_t i = n - RECENT; i < n; i++) {
        synthetic_key(i, key);
        CU_ASSERT_TRUE(dedup_check(d, key, T0 + n, FOREVER));
    }
    /* And most of the last quarter of a table's worth. */
    unsigned found = 0, looked = 0;
    for (uint64_t i = n - RECENT; i-- > n - after.capacity / 4;) {
        synthetic_key(i, key);
        looked++;
        found += dedup_check(d, key, T0 + n, FOREVER);
    }
    CU_ASSERT(found * 100 >= looked * 95);
    dedup_free(d);
}

/* Entries whose window is over are taken before live ones. */
static void test_expired_entries_are_reused_before_live_ones(void)
{
    struct dedup *d = dedup_new(SMALL, 0);
    struct dedup_stats st;
    dedup_stats(d, &st);
    size_t cap = st.capacity;
    uint64_t key[2];
    for (uint64_t i = 0; i < cap / 2; i++) {
        synthetic_key(i, key);
        CU_ASSERT_FALSE(dedup_check(d, key, T0, 10));
    }
    /* Later, as many new keys again as fill the table, with a long window. */
    for (uint64_t i = cap; i < cap + cap / 2; i++) {
        synthetic_key(i, key);
        CU_ASSERT_FALSE(dedup_check(d, key, T0 + 100, FOREVER));
    }
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.evicted_live, 0);
    for (uint64_t i = cap; i < cap + cap / 2; i++) {
        synthetic_key(i, key);
        CU_ASSERT_TRUE(dedup_check(d, key, T0 + 200, FOREVER));
    }
    dedup_free(d);
}

/* --- threads --------------------------------------------------------------- */

struct worker {
    struct dedup *d;
    unsigned index;
    atomic_uint *sent;          /* per key: how many workers were told "not a duplicate" */
    unsigned duplicates;
};

/* Every worker checks every key, starting at its own offset, as workers receiving copies would. */
static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char call_id[32];
    for (unsigned n = 0; n < THREAD_KEYS; n++) {
        unsigned k = (n + w->index * (THREAD_KEYS / THREADS)) % THREAD_KEYS;
        struct dedup_identity id = invite();
        int len = snprintf(call_id, sizeof call_id, "%u@host", k / 4);
        id.call_id = (struct dedup_bytes){ call_id, (size_t)len };
        id.cseq = k % 4;
        uint64_t key[2];
        dedup_key(w->d, &id, DEST, key);
        if (dedup_check(w->d, key, T0 + n / 100, WINDOW * 1000))
            w->duplicates++;
        else
            atomic_fetch_add(&w->sent[k], 1);
    }
    return NULL;
}

static void test_workers_send_each_key_exactly_once(void)
{
    struct dedup *d = dedup_new((size_t)THREAD_KEYS * 4, 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    atomic_uint *sent = calloc(THREAD_KEYS, sizeof *sent);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sent);
    struct worker w[THREADS];
    pthread_t tid[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .d = d, .index = i, .sent = sent };
        CU_ASSERT_EQUAL_FATAL(pthread_create(&tid[i], NULL, worker_run, &w[i]), 0);
    }
    unsigned duplicates = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        duplicates += w[i].duplicates;
    }
    unsigned wrong = 0;
    for (unsigned k = 0; k < THREAD_KEYS; k++)
        wrong += atomic_load(&sent[k]) != 1;
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(duplicates, (THREADS - 1) * THREAD_KEYS);

    struct dedup_stats st;
    dedup_stats(d, &st);
    CU_ASSERT_EQUAL(st.checked, (uint64_t)THREADS * THREAD_KEYS);
    CU_ASSERT_EQUAL(st.duplicates, (uint64_t)(THREADS - 1) * THREAD_KEYS);
    CU_ASSERT_EQUAL(st.entries, THREAD_KEYS);
    CU_ASSERT_EQUAL(st.evicted_live, 0);
    free(sent);
    dedup_free(d);
}

static const struct unit_test tests[] = {
    { "test_copy_within_the_window_is_a_duplicate", test_copy_within_the_window_is_a_duplicate },
    { "test_duplicate_does_not_extend_the_window", test_duplicate_does_not_extend_the_window },
    { "test_same_identity_to_another_destination_is_sent", test_same_identity_to_another_destination_is_sent },
    { "test_zero_window_records_nothing", test_zero_window_records_nothing },
    { "test_copy_stamped_before_the_first_is_a_duplicate", test_copy_stamped_before_the_first_is_a_duplicate },
    { "test_time_zero_and_a_huge_window", test_time_zero_and_a_huge_window },
    { "test_each_field_changes_the_key", test_each_field_changes_the_key },
    { "test_copies_in_different_buffers_give_one_key", test_copies_in_different_buffers_give_one_key },
    { "test_fields_of_the_other_kind_are_not_read", test_fields_of_the_other_kind_are_not_read },
    { "test_field_boundaries_are_kept", test_field_boundaries_are_kept },
    { "test_non_sip_identity", test_non_sip_identity },
    { "test_two_tables_make_different_keys", test_two_tables_make_different_keys },
    { "test_size_is_fixed_at_creation", test_size_is_fixed_at_creation },
    { "test_flood_stays_bounded_and_keeps_recent_keys", test_flood_stays_bounded_and_keeps_recent_keys },
    { "test_expired_entries_are_reused_before_live_ones", test_expired_entries_are_reused_before_live_ones },
    { "test_workers_send_each_key_exactly_once", test_workers_send_each_key_exactly_once },
    { NULL, NULL }
};

int main(void)
{
    return unit_run("dedup", tests);
}
