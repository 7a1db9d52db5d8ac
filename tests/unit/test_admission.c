/*
 * test_admission.c - unit tests for src/admission.c: the allowlist (IPv4,
 * IPv6, IPv4-mapped senders), auth keys (right, wrong, missing, rotated,
 * prefixes and extensions of a key), capture-id bindings, the order of
 * the checks, and the names the metrics use.
 */
#include "admission.h"
#include "conf.h"
#include "hep.h"
#include "unit.h"

#include <arpa/inet.h>

static struct conf_cidr cidr(const char *text)
{
    struct conf_cidr c;
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_cidr(text, &c));
    return c;
}

/* An address as bytes: 4 for IPv4, 16 for IPv6; *len set. */
static const uint8_t *addr(const char *text, unsigned *len)
{
    static uint8_t buf[16];
    if (inet_pton(AF_INET, text, buf) == 1) {
        *len = 4;
        return buf;
    }
    CU_ASSERT_FATAL(inet_pton(AF_INET6, text, buf) == 1);
    *len = 16;
    return buf;
}

/* A decoded view with only what admission reads: key and capture id. */
static struct hep_view view(const char *key, bool has_capture_id, uint32_t capture_id)
{
    struct hep_view v;
    memset(&v, 0, sizeof v);
    v.version = 3;
    if (key != NULL) {
        v.auth_key.data = (const uint8_t *)key;
        v.auth_key.len = strlen(key);
    }
    if (has_capture_id) {
        v.present |= HEP_HAS_CAPTURE_ID;
        v.capture_id = capture_id;
    }
    return v;
}

static enum admission_verdict check(const struct conf_sources *s, const char *from, const struct hep_view *v)
{
    unsigned len;
    const uint8_t *a = addr(from, &len);
    return admission_check(s, len, a, v);
}

static void test_no_rules_admit_everyone(void)
{
    struct conf_sources none;
    memset(&none, 0, sizeof none);
    struct hep_view v = view(NULL, false, 0);
    CU_ASSERT(!admission_has_rules(&none));
    CU_ASSERT(!admission_has_rules(NULL));
    CU_ASSERT_EQUAL(check(&none, "203.0.113.9", &v), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(NULL, "2001:db8::1", &v), ADMISSION_OK);
    unsigned len;
    const uint8_t *a = addr("198.51.100.1", &len);
    CU_ASSERT(admission_source_allowed(&none, len, a));
}

static void test_allowlist_admits_only_its_networks(void)
{
    struct conf_cidr allow[] = { cidr("10.0.0.0/8"), cidr("2001:db8:1::/48"), cidr("192.0.2.7") };
    struct conf_sources s = { .allow = allow, .nallow = 3 };
    struct hep_view v = view(NULL, false, 0);
    CU_ASSERT(admission_has_rules(&s));
    CU_ASSERT_EQUAL(check(&s, "10.20.30.40", &v), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "192.0.2.7", &v), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "192.0.2.8", &v), ADMISSION_NOT_ALLOWED);
    CU_ASSERT_EQUAL(check(&s, "11.0.0.1", &v), ADMISSION_NOT_ALLOWED);
    CU_ASSERT_EQUAL(check(&s, "2001:db8:1:ffff::1", &v), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "2001:db8:2::1", &v), ADMISSION_NOT_ALLOWED);
    /* a dual-stack socket reports IPv4 senders mapped: checked as IPv4 */
    CU_ASSERT_EQUAL(check(&s, "::ffff:10.1.2.3", &v), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "::ffff:11.1.2.3", &v), ADMISSION_NOT_ALLOWED);
    unsigned len;
    const uint8_t *a = addr("::ffff:10.9.9.9", &len);
    CU_ASSERT(admission_source_allowed(&s, len, a));
    a = addr("172.16.0.1", &len);
    CU_ASSERT(!admission_source_allowed(&s, len, a));
    CU_ASSERT_EQUAL(admission_check(&s, 0, NULL, &v), ADMISSION_NOT_ALLOWED);   /* no address: not allowed */
}

static void test_auth_keys_right_wrong_missing_and_rotated(void)
{
    char *keys[] = { "old-key-2026", "new-key-2027" };
    struct conf_sources s = { .auth_keys = keys, .nauth_keys = 2 };
    struct hep_view right_old = view("old-key-2026", false, 0), right_new = view("new-key-2027", false, 0);
    struct hep_view wrong = view("old-key-2025", false, 0), missing = view(NULL, false, 0);
    struct hep_view prefix = view("old-key-202", false, 0), longer = view("old-key-20266", false, 0);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &right_old), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &right_new), ADMISSION_OK);   /* rotation: both active */
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &wrong), ADMISSION_BAD_AUTH_KEY);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &prefix), ADMISSION_BAD_AUTH_KEY);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &longer), ADMISSION_BAD_AUTH_KEY);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &missing), ADMISSION_MISSING_AUTH_KEY);
    /* HEPv1/v2 carry no key: refused as missing */
    struct hep_view v2 = view(NULL, true, 1);
    v2.version = 2;
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &v2), ADMISSION_MISSING_AUTH_KEY);
}

static void test_key_compare_is_exact_bytes(void)
{
    char *keys[] = { "abc" };
    const uint8_t with_nul[] = { 'a', 'b', 'c', 0 };
    CU_ASSERT(admission_key_listed(keys, 1, (const uint8_t *)"abc", 3));
    CU_ASSERT(!admission_key_listed(keys, 1, with_nul, 4));              /* a trailing NUL is a byte */
    CU_ASSERT(!admission_key_listed(keys, 1, (const uint8_t *)"ABC", 3));
    CU_ASSERT(!admission_key_listed(keys, 1, (const uint8_t *)"", 0));
    CU_ASSERT(!admission_key_listed(keys, 0, (const uint8_t *)"abc", 3));
    /* every bit of every byte counts */
    for (int byte = 0; byte < 3; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t k[3] = { 'a', 'b', 'c' };
            k[byte] ^= (uint8_t)(1u << bit);
            CU_ASSERT(!admission_key_listed(keys, 1, k, 3));
        }
    }
}

/*
 * A key sent longer than any the configuration takes (255 bytes) is still
 * compared exactly: equal only to a key as long (fuzz_admission found the
 * fast path refusing it; fuzz/corpus-admission/finding-long-key-*).
 */
static void test_a_key_longer_than_255_bytes_is_still_compared(void)
{
    char long_key[360];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    char *keys[2] = { (char *)"short", long_key };
    uint8_t sent[sizeof long_key];
    memcpy(sent, long_key, sizeof long_key);
    CU_ASSERT(admission_key_listed(keys, 2, sent, sizeof long_key - 1));
    sent[300] = 'x';
    CU_ASSERT(!admission_key_listed(keys, 2, sent, sizeof long_key - 1));
    CU_ASSERT(!admission_key_listed(keys, 2, sent, sizeof long_key));    /* one byte longer */
    CU_ASSERT(!admission_key_listed(keys, 1, (const uint8_t *)long_key, sizeof long_key - 1));
}

static void test_capture_ids_bound_to_networks(void)
{
    uint32_t site_a[] = { 101, 102 }, site_b[] = { 201 }, both[] = { 999 };
    struct conf_capture_binding b[] = {
        { cidr("10.1.0.0/16"), site_a, 2 },
        { cidr("10.2.0.0/16"), site_b, 1 },
        { cidr("10.0.0.0/8"), both, 1 },            /* overlaps both: its ids add to theirs */
    };
    struct conf_sources s = { .capture_ids = b, .ncapture_ids = 3 };
    struct hep_view id101 = view(NULL, true, 101), id201 = view(NULL, true, 201);
    struct hep_view id999 = view(NULL, true, 999), none = view(NULL, false, 0);
    CU_ASSERT_EQUAL(check(&s, "10.1.0.5", &id101), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "10.1.0.5", &id201), ADMISSION_CAPTURE_ID_NOT_ALLOWED);
    CU_ASSERT_EQUAL(check(&s, "10.1.0.5", &id999), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "10.2.0.5", &id201), ADMISSION_OK);
    CU_ASSERT_EQUAL(check(&s, "10.2.0.5", &id101), ADMISSION_CAPTURE_ID_NOT_ALLOWED);
    CU_ASSERT_EQUAL(check(&s, "10.1.0.5", &none), ADMISSION_CAPTURE_ID_NOT_ALLOWED);  /* claims none */
    /* a source no binding covers is not restricted by them */
    CU_ASSERT_EQUAL(check(&s, "192.0.2.1", &id201), ADMISSION_OK);
}

/* Allowlist first, then the key, then the capture id: the first refusal is the reason. */
/* tls.client_capture_ids: a whole subject (with '=') or a common name; unlisted: none. */
static void test_certificate_subjects_are_bound_to_capture_ids(void)
{
    uint32_t a_ids[] = { 2001 }, b_ids[] = { 2002, 2003 };
    struct conf_subject_binding b[] = {
        { .subject = "kamailio-a", .ids = a_ids, .nids = 1 },
        { .subject = "CN=kamailio-b,O=Example", .ids = b_ids, .nids = 2 },
    };
    struct conf_tls t = { .client_capture_ids = b, .nclient_capture_ids = 2 };
    CU_ASSERT_PTR_EQUAL(admission_subject_binding(&t, "CN=kamailio-a,O=Other", "kamailio-a"), &b[0]);
    CU_ASSERT_PTR_EQUAL(admission_subject_binding(&t, "CN=kamailio-b,O=Example", "kamailio-b"), &b[1]);
    /* the whole subject must be equal: the same common name elsewhere is not it */
    CU_ASSERT_PTR_NULL(admission_subject_binding(&t, "CN=kamailio-b,O=Other", "kamailio-b"));
    /* a common name is not a subject, nor the other way round */
    CU_ASSERT_PTR_NULL(admission_subject_binding(&t, "CN=x", "CN=kamailio-b,O=Example"));
    CU_ASSERT_PTR_NULL(admission_subject_binding(&t, "CN=kamailio-a", "kamailio-A"));
    CU_ASSERT_PTR_NULL(admission_subject_binding(&t, "", ""));

    struct hep_view with_2003 = view(NULL, true, 2003), with_2001 = view(NULL, true, 2001);
    struct hep_view none = view(NULL, false, 0);
    CU_ASSERT_TRUE(admission_ids_claimed(b_ids, 2, &with_2003));
    CU_ASSERT_FALSE(admission_ids_claimed(b_ids, 2, &with_2001));
    CU_ASSERT_FALSE(admission_ids_claimed(b_ids, 2, &none));   /* no capture id claims none */
    CU_ASSERT_FALSE(admission_ids_claimed(NULL, 0, &with_2001)); /* a certificate not listed */
}

static void test_checks_run_in_order(void)
{
    struct conf_cidr allow[] = { cidr("10.0.0.0/8") };
    char *keys[] = { "k" };
    uint32_t ids[] = { 1 };
    struct conf_capture_binding b[] = { { cidr("10.0.0.0/8"), ids, 1 } };
    struct conf_sources s = { .allow = allow, .nallow = 1, .auth_keys = keys, .nauth_keys = 1,
                              .capture_ids = b, .ncapture_ids = 1 };
    struct hep_view bad_everything = view("x", true, 2), bad_id = view("k", true, 2);
    struct hep_view no_key = view(NULL, true, 2), good = view("k", true, 1);
    CU_ASSERT_EQUAL(check(&s, "192.0.2.1", &bad_everything), ADMISSION_NOT_ALLOWED);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &bad_everything), ADMISSION_BAD_AUTH_KEY);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &no_key), ADMISSION_MISSING_AUTH_KEY);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &bad_id), ADMISSION_CAPTURE_ID_NOT_ALLOWED);
    CU_ASSERT_EQUAL(check(&s, "10.0.0.1", &good), ADMISSION_OK);
}

static void test_verdict_names(void)
{
    CU_ASSERT_STRING_EQUAL(admission_verdict_name(ADMISSION_OK), "ok");
    CU_ASSERT_STRING_EQUAL(admission_verdict_name(ADMISSION_NOT_ALLOWED), "not_allowed");
    CU_ASSERT_STRING_EQUAL(admission_verdict_name(ADMISSION_BAD_AUTH_KEY), "bad_auth_key");
    CU_ASSERT_STRING_EQUAL(admission_verdict_name(ADMISSION_MISSING_AUTH_KEY), "missing_auth_key");
    CU_ASSERT_STRING_EQUAL(admission_verdict_name(ADMISSION_CAPTURE_ID_NOT_ALLOWED), "capture_id_not_allowed");
    CU_ASSERT_STRING_EQUAL(admission_verdict_name(ADMISSION_VERDICT_COUNT), "unknown");
    CU_ASSERT_STRING_EQUAL(admission_verdict_name(-1), "unknown");
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "no rules admit everyone", test_no_rules_admit_everyone },
        { "the allowlist admits only its networks", test_allowlist_admits_only_its_networks },
        { "auth keys: right, wrong, missing, rotated", test_auth_keys_right_wrong_missing_and_rotated },
        { "key comparison is exact bytes", test_key_compare_is_exact_bytes },
        { "a key longer than 255 bytes is still compared", test_a_key_longer_than_255_bytes_is_still_compared },
        { "capture ids are bound to networks", test_capture_ids_bound_to_networks },
        { "certificate subjects are bound to capture ids", test_certificate_subjects_are_bound_to_capture_ids },
        { "the checks run in order", test_checks_run_in_order },
        { "verdict names", test_verdict_names },
        { NULL, NULL },
    };
    return unit_run("admission", tests);
}
