/*
 * test_sip.c - unit tests for the SIP scanner (src/sip.c): every status
 * code, the header-syntax edge cases the router must survive (compact
 * forms, folding, bare LF, whitespace around colons, missing final CRLF),
 * From/To tag and top-Via rules, and the real Kamailio siptrace captures in
 * tests/data/kamailio/v{1,2,3}.
 */
#include "sip.h"
#include "unit.h"

#include <stdint.h>

/* HEP framing, enough to pull the SIP payload out of the captured vectors. */
#define HEP3_MAGIC          "HEP3"
#define HEP3_MAGIC_LEN      4
#define HEP3_HEADER_LEN     6       /* magic + u16 total length */
#define HEP3_CHUNK_HEADER_LEN 6     /* vendor, type, length (u16 each) */
#define HEP3_CHUNK_PAYLOAD  0x000f
#define HEP12_HDR_LEN_OFFSET 1      /* byte holding the v1/v2 header length */
#define HEP2_TIME_BLOCK_LEN 12      /* v2: sec, usec, capture id, padding */

#define MANIFEST_LINE_MAX   1024
#define MANIFEST_FIELDS_MAX 32
#define START_LINE_MAX      512
#define VECTOR_NAME_MAX     64
#define RELPATH_MAX         (VECTOR_NAME_MAX + 64)

/*
 * Each scan works on an exact-size heap copy of the text, so that a read past
 * the end is caught by AddressSanitizer or valgrind.  The copy lives until
 * the next scan, because the results point into it.
 */
static uint8_t *scan_copy;

static int scan_bytes(const void *data, size_t len, struct sip_msg *msg)
{
    free(scan_copy);
    scan_copy = malloc(len ? len : 1);
    CU_ASSERT_FATAL(scan_copy != NULL);
    memcpy(scan_copy, data, len);
    return sip_scan(scan_copy, len, msg);
}

static int scan(const char *text, struct sip_msg *msg)
{
    return scan_bytes(text, strlen(text), msg);
}

static bool str_is(struct sip_str s, const char *expect)
{
    size_t n = strlen(expect);
    return s.len == n && (n == 0 || memcmp(s.ptr, expect, n) == 0);
}

#define ASSERT_STR(s, expect) CU_ASSERT(str_is((s), (expect)))

/* A minimal valid request around the header lines given. */
#define REQ_LINE "INVITE sip:bob@example.com SIP/2.0\r\n"
#define CALL_ID_HDR "Call-ID: abc@host\r\n"
#define CSEQ_HDR "CSeq: 1 INVITE\r\n"

static const char invite[] =
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@biloxi.example.com>\r\n"
    "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 4\r\n"
    "\r\n"
    "v=0\n";

/* ---- start line ---------------------------------------------------------- */

static void test_empty_input_is_rejected(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(sip_scan(NULL, 0, &m), SIP_ERR_EMPTY);
    CU_ASSERT_EQUAL(scan("", &m), SIP_ERR_EMPTY);
}

static void test_keepalive_of_only_crlf_is_empty(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("\r\n\r\n", &m), SIP_ERR_EMPTY);
    CU_ASSERT_EQUAL(scan("\n", &m), SIP_ERR_EMPTY);
}

static void test_crlf_before_start_line_is_skipped(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("\r\n\r\n" REQ_LINE CALL_ID_HDR CSEQ_HDR "\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_INVITE);
}

static void test_invite_request_fields(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan(invite, &m), SIP_OK);
    CU_ASSERT(sip_is_request(&m));
    CU_ASSERT(!sip_is_reply(&m));
    CU_ASSERT_EQUAL(m.flags & (SIP_F_ACK | SIP_F_CANCEL | SIP_F_TO_TAG), 0);
    CU_ASSERT(m.flags & SIP_F_FROM_TAG);
    CU_ASSERT(m.flags & SIP_F_VIA_BRANCH);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_INVITE);
    ASSERT_STR(m.method_name, "INVITE");
    ASSERT_STR(m.uri, "sip:bob@biloxi.example.com");
    CU_ASSERT_EQUAL(m.status, 0);
    ASSERT_STR(m.call_id, "a84b4c76e66710@pc33.atlanta.example.com");
    CU_ASSERT_EQUAL(m.cseq, 314159);
    CU_ASSERT_EQUAL(m.cseq_method, SIP_METHOD_INVITE);
    ASSERT_STR(m.cseq_method_name, "INVITE");
    ASSERT_STR(m.from_tag, "1928301774");
    ASSERT_STR(m.to_tag, "");
    ASSERT_STR(m.via_branch, "z9hG4bK776asdhds");
}

static void test_407_status_line_and_reason(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan("SIP/2.0 407 Proxy Authentication Required\r\n"
                               "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
                               "From: <sip:a@x>;tag=f1\r\n"
                               "To: <sip:b@x>;tag=t1\r\n"
                               "Call-ID: c1\r\n"
                               "CSeq: 1 INVITE\r\n\r\n", &m), SIP_OK);
    CU_ASSERT(sip_is_reply(&m));
    CU_ASSERT(!sip_is_request(&m));
    CU_ASSERT_EQUAL(m.status, 407);
    ASSERT_STR(m.reason, "Proxy Authentication Required");
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_NONE);
    CU_ASSERT_EQUAL(m.cseq_method, SIP_METHOD_INVITE);
    CU_ASSERT(m.flags & SIP_F_TO_TAG);
    ASSERT_STR(m.to_tag, "t1");
}

static void test_reply_without_reason_phrase(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("SIP/2.0 200\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.status, 200);
    ASSERT_STR(m.reason, "");
    CU_ASSERT_EQUAL(scan("SIP/2.0 200 \r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.status, 200);
    ASSERT_STR(m.reason, "");
}

static void test_ack_request_sets_ack_flag(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("ACK sip:b@x SIP/2.0\r\n" CALL_ID_HDR "CSeq: 1 ACK\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_ACK);
    CU_ASSERT(m.flags & SIP_F_ACK);
    CU_ASSERT_FALSE(m.flags & SIP_F_CANCEL);
}

static void test_cancel_request_sets_cancel_flag(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("CANCEL sip:b@x SIP/2.0\r\n" CALL_ID_HDR "CSeq: 1 CANCEL\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_CANCEL);
    CU_ASSERT(m.flags & SIP_F_CANCEL);
    CU_ASSERT_FALSE(m.flags & SIP_F_ACK);
}

static void test_reply_to_cancel_is_not_flagged_cancel(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("SIP/2.0 200 OK\r\n" CALL_ID_HDR "CSeq: 1 CANCEL\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.cseq_method, SIP_METHOD_CANCEL);
    CU_ASSERT_FALSE(m.flags & (SIP_F_CANCEL | SIP_F_ACK | SIP_F_REQUEST));
}

static void test_unknown_method_is_other(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("FOO.BAR sip:b@x SIP/2.0\r\n" CALL_ID_HDR "CSeq: 7 FOO.BAR\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_OTHER);
    ASSERT_STR(m.method_name, "FOO.BAR");
    CU_ASSERT_EQUAL(m.cseq_method, SIP_METHOD_OTHER);
    ASSERT_STR(m.cseq_method_name, "FOO.BAR");
}

static void test_method_names_are_case_sensitive(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("invite sip:b@x SIP/2.0\r\n" CALL_ID_HDR "CSeq: 1 invite\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_OTHER);
    CU_ASSERT_EQUAL(m.cseq_method, SIP_METHOD_OTHER);
    CU_ASSERT_EQUAL(sip_method_from_name("Invite", 6), SIP_METHOD_OTHER);
    CU_ASSERT_EQUAL(sip_method_from_name("INVITE", 6), SIP_METHOD_INVITE);
}

static void test_method_name_round_trip(void)
{
    for (int i = SIP_METHOD_INVITE; i < SIP_METHOD_COUNT; i++) {
        const char *name = sip_method_name((enum sip_method)i);
        CU_ASSERT(name[0] != '\0');
        CU_ASSERT_EQUAL((int)sip_method_from_name(name, strlen(name)), i);
        /* A prefix of a known name is not that method. */
        CU_ASSERT_NOT_EQUAL((int)sip_method_from_name(name, strlen(name) - 1), i);
    }
    CU_ASSERT_STRING_EQUAL(sip_method_name(SIP_METHOD_NONE), "");
    CU_ASSERT_STRING_EQUAL(sip_method_name(SIP_METHOD_OTHER), "");
    CU_ASSERT_STRING_EQUAL(sip_method_name(SIP_METHOD_COUNT), "");
    CU_ASSERT_STRING_EQUAL(sip_method_name((enum sip_method)-1), "");
    CU_ASSERT_EQUAL(sip_method_from_name("", 0), SIP_METHOD_NONE);
    CU_ASSERT_EQUAL(sip_method_from_name(NULL, 0), SIP_METHOD_NONE);
    /* longer than a known name, or sharing only its first letter */
    CU_ASSERT_EQUAL(sip_method_from_name("INVITES", 7), SIP_METHOD_OTHER);
    CU_ASSERT_EQUAL(sip_method_from_name("INFORM", 6), SIP_METHOD_OTHER);
    CU_ASSERT_EQUAL(sip_method_from_name("I", 1), SIP_METHOD_OTHER);
    CU_ASSERT_EQUAL(sip_method_from_name("PING", 4), SIP_METHOD_OTHER);
    CU_ASSERT_EQUAL(sip_method_from_name("XINVITE", 7), SIP_METHOD_OTHER);
}

static void test_strerror_names_every_status(void)
{
    for (int i = 0; i < SIP_STATUS_COUNT; i++) {
        const char *text = sip_strerror(i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT(text[0] != '\0');
        CU_ASSERT_STRING_NOT_EQUAL(text, sip_strerror(SIP_STATUS_COUNT));
        const char *name = sip_status_name(i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(name);
        CU_ASSERT_STRING_NOT_EQUAL(name, sip_status_name(SIP_STATUS_COUNT));
        for (int j = 0; j < i; j++) {
            CU_ASSERT_STRING_NOT_EQUAL(text, sip_strerror(j));
            CU_ASSERT_STRING_NOT_EQUAL(name, sip_status_name(j));
        }
    }
    CU_ASSERT_STRING_EQUAL(sip_strerror(-1), sip_strerror(SIP_STATUS_COUNT));
    CU_ASSERT_STRING_EQUAL(sip_status_name(-1), "unknown");
    CU_ASSERT_STRING_EQUAL(sip_status_name(SIP_ERR_NO_CALL_ID), "no_call_id");
}

static void test_malformed_request_line_is_start_line_error(void)
{
    static const char *const lines[] = {
        "INVITE\r\n",                                /* no URI, no version */
        "INVITE sip:b@x\r\n",                        /* no version */
        "INVITE  sip:b@x SIP/2.0\r\n",               /* two spaces: empty URI */
        "INVITE sip:b@x  SIP/2.0\r\n",               /* two spaces before version */
        "INVITE sip:b@x SIP/2.0 extra\r\n",          /* trailing token */
        "INVITE sip:a b SIP/2.0\r\n",                /* space inside URI */
        "INV<ITE sip:b@x SIP/2.0\r\n",               /* not a token */
        " INVITE sip:b@x SIP/2.0\r\n",               /* leading space */
        "INVITE\tsip:b@x SIP/2.0\r\n",               /* tab, not SP */
        "GET / HTTP/1.1\r\n",                        /* not SIP at all */
        "\x01\x02\x03\r\n",                          /* binary */
    };
    struct sip_msg m;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char text[START_LINE_MAX];
        snprintf(text, sizeof text, "%s" CALL_ID_HDR CSEQ_HDR, lines[i]);
        CU_ASSERT_EQUAL(scan(text, &m), SIP_ERR_START_LINE);
        CU_ASSERT_FALSE(m.flags & (SIP_F_REQUEST | SIP_F_REPLY));
    }
}

static void test_other_sip_version_is_version_error(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("INVITE sip:b@x SIP/3.0\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_ERR_VERSION);
    CU_ASSERT_EQUAL(scan("INVITE sip:b@x SIP/2.00\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_ERR_VERSION);
    CU_ASSERT_EQUAL(scan("SIP/1.0 200 OK\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_ERR_VERSION);
    CU_ASSERT_EQUAL(scan("SIP/2.0x 200 OK\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_ERR_VERSION);
}

static void test_sip_version_is_case_insensitive(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("INVITE sip:b@x sip/2.0\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT(sip_is_request(&m));
    CU_ASSERT_EQUAL(scan("sip/2.0 180 Ringing\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.status, 180);
}

static void test_trailing_whitespace_on_start_line_is_ignored(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("BYE sip:b@x SIP/2.0 \t\r\n" CALL_ID_HDR "CSeq: 2 BYE\r\n", &m), SIP_OK);
    ASSERT_STR(m.uri, "sip:b@x");
}

static void test_bad_status_code_is_status_code_error(void)
{
    static const char *const lines[] = {
        "SIP/2.0 20 OK\r\n",
        "SIP/2.0 2000 OK\r\n",
        "SIP/2.0 2x0 OK\r\n",
        "SIP/2.0 099 Early\r\n",
        "SIP/2.0 700 Late\r\n",
        "SIP/2.0 000 Zero\r\n",
        "SIP/2.0  200 OK\r\n",
        "SIP/2.0 \r\n",
        "SIP/2.0\r\n",
        "SIP/2.0 OK\r\n",
        "SIP/2.0 200OK\r\n",
    };
    struct sip_msg m;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char text[START_LINE_MAX];
        snprintf(text, sizeof text, "%s" CALL_ID_HDR CSEQ_HDR, lines[i]);
        CU_ASSERT_EQUAL(scan(text, &m), SIP_ERR_STATUS_CODE);
    }
}

static void test_status_code_bounds_are_accepted(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("SIP/2.0 100 Trying\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.status, 100);
    CU_ASSERT_EQUAL(scan("SIP/2.0 699 Whatever\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.status, 699);
}

static void test_start_line_only_has_no_call_id(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("OPTIONS sip:b@x SIP/2.0", &m), SIP_ERR_NO_CALL_ID);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_OPTIONS);
}

/* ---- header syntax --------------------------------------------------------- */

/* The call key, CSeq number and method of the CALL_ID_HDR / CSEQ_HDR message. */
static void assert_call_kept(const struct sip_msg *m)
{
    ASSERT_STR(m->call_id, "abc@host");
    CU_ASSERT_EQUAL(m->cseq, 1);
    CU_ASSERT_EQUAL(m->cseq_method, SIP_METHOD_INVITE);
    CU_ASSERT_EQUAL(m->method, SIP_METHOD_INVITE);
}

static void test_line_without_colon_anywhere_is_skipped_and_counted(void)
{
    static const char *const texts[] = {
        REQ_LINE "X-Weird\r\n" CALL_ID_HDR CSEQ_HDR "\r\n",      /* before */
        REQ_LINE CALL_ID_HDR "X-Weird\r\n" CSEQ_HDR "\r\n",      /* between */
        REQ_LINE CALL_ID_HDR CSEQ_HDR "X-Weird\r\n\r\n",         /* after */
        REQ_LINE CALL_ID_HDR CSEQ_HDR "X-Weird",                 /* last, no CRLF */
        REQ_LINE CALL_ID_HDR "Max-Forwards 70\r\n" CSEQ_HDR,     /* value, no colon */
        REQ_LINE CALL_ID_HDR "X-Weird\n" CSEQ_HDR,                /* bare LF */
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct sip_msg m;
        CU_ASSERT_EQUAL(scan(texts[i], &m), SIP_OK);
        assert_call_kept(&m);
        CU_ASSERT_EQUAL(m.skipped_lines, 1);
    }
}

static void test_two_bad_lines_count_two(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "X-Weird\r\n" CALL_ID_HDR "X-Weirder\r\n" CSEQ_HDR "\r\n", &m),
                    SIP_OK);
    assert_call_kept(&m);
    CU_ASSERT_EQUAL(m.skipped_lines, 2);
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR "X-Weird\r\nX-Weird\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.skipped_lines, 2);
}

static void test_bad_line_with_folded_continuation_counts_once(void)
{
    struct sip_msg m;
    /* The continuation goes with the skipped line; the next header is read. */
    CU_ASSERT_EQUAL(scan(REQ_LINE "X-Weird\r\n more\r\n\tand more\r\n" CALL_ID_HDR CSEQ_HDR,
                         &m), SIP_OK);
    assert_call_kept(&m);
    CU_ASSERT_EQUAL(m.skipped_lines, 1);
    /* A header-looking continuation of a skipped line is not a header. */
    CU_ASSERT_EQUAL(scan(REQ_LINE "X-Weird\r\n Call-ID: folded-in\r\n" CALL_ID_HDR CSEQ_HDR,
                         &m), SIP_OK);
    assert_call_kept(&m);
    CU_ASSERT_EQUAL(m.skipped_lines, 1);
}

static void test_bad_header_name_is_skipped_and_counted(void)
{
    static const char *const lines[] = {
        ": no name\r\n",
        "X(y): z\r\n",
        "\x80X: z\r\n",
        "Bad Header: z\r\n",
    };
    struct sip_msg m;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char text[START_LINE_MAX];
        snprintf(text, sizeof text, REQ_LINE "%s" CALL_ID_HDR CSEQ_HDR, lines[i]);
        CU_ASSERT_EQUAL(scan(text, &m), SIP_OK);
        assert_call_kept(&m);
        CU_ASSERT_EQUAL(m.skipped_lines, 1);
    }
    /* A Call-ID whose name is broken is not a Call-ID. */
    CU_ASSERT_EQUAL(scan(REQ_LINE "Call ID: x\r\n" CSEQ_HDR, &m), SIP_ERR_NO_CALL_ID);
    CU_ASSERT_EQUAL(m.skipped_lines, 1);
}

/* Before the first header a folded line continues nothing: it is skipped like a bad line. */
static void test_folded_line_before_first_header_is_skipped_and_counted(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE " folded\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    assert_call_kept(&m);
    CU_ASSERT_EQUAL(m.skipped_lines, 1);
    CU_ASSERT_EQUAL(scan(REQ_LINE "\tfolded\r\n  twice\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    assert_call_kept(&m);
    CU_ASSERT_EQUAL(m.skipped_lines, 1);
}

/* Once Via, From, To, Call-ID and CSeq are read, the lines after them are not. */
static void test_scan_stops_after_the_headers_it_needs(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
                         "To: <sip:b@h>\r\n" CALL_ID_HDR CSEQ_HDR "X-Weird\r\nCall-ID: other\r\n\r\n", &m),
                    SIP_OK);
    assert_call_kept(&m);
    CU_ASSERT_EQUAL(m.skipped_lines, 0);
    CU_ASSERT(m.flags & SIP_F_VIA_BRANCH);
    CU_ASSERT(m.flags & SIP_F_FROM_TAG);
    /* one of the five missing: every line is read */
    CU_ASSERT_EQUAL(scan(REQ_LINE "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n" CALL_ID_HDR CSEQ_HDR
                         "X-Weird\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", &m), SIP_OK);
    assert_call_kept(&m);
    CU_ASSERT_EQUAL(m.skipped_lines, 1);
    CU_ASSERT(m.flags & SIP_F_VIA_BRANCH);
}

/* Tags and the Via branch are looked for only when asked. */
static void test_scan_for_finds_only_what_is_wanted(void)
{
    static const char reply[] = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                                "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n" CALL_ID_HDR CSEQ_HDR "\r\n";
    static const char request[] = REQ_LINE "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                                  "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\n" CALL_ID_HDR CSEQ_HDR "\r\n";
    struct sip_msg m;
    CU_ASSERT_EQUAL(sip_scan_for((const uint8_t *)reply, strlen(reply), SIP_WANT_REQUEST_TO_TAG, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.status, 200);
    ASSERT_STR(m.call_id, "abc@host");
    CU_ASSERT_EQUAL(m.flags & (SIP_F_FROM_TAG | SIP_F_TO_TAG | SIP_F_VIA_BRANCH), 0);
    CU_ASSERT_EQUAL(m.to_tag.len, 0);
    CU_ASSERT_EQUAL(sip_scan_for((const uint8_t *)request, strlen(request), SIP_WANT_REQUEST_TO_TAG, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.flags & (SIP_F_FROM_TAG | SIP_F_TO_TAG | SIP_F_VIA_BRANCH), SIP_F_TO_TAG);
    ASSERT_STR(m.to_tag, "2");
    CU_ASSERT_EQUAL(sip_scan_for((const uint8_t *)reply, strlen(reply), SIP_WANT_VIA_BRANCH, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.flags & (SIP_F_FROM_TAG | SIP_F_TO_TAG | SIP_F_VIA_BRANCH), SIP_F_VIA_BRANCH);
    ASSERT_STR(m.via_branch, "z9hG4bK1");
    CU_ASSERT_EQUAL(sip_scan_for((const uint8_t *)reply, strlen(reply), SIP_WANT_ALL, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.flags & (SIP_F_FROM_TAG | SIP_F_TO_TAG | SIP_F_VIA_BRANCH),
                    SIP_F_FROM_TAG | SIP_F_TO_TAG | SIP_F_VIA_BRANCH);
}

/*
 * sip_to_tag() finds, after a scan that did not look, the To-tag the scan
 * finds when asked: for every To value of the tag tests, the same answer.
 */
static void test_to_tag_asked_later_is_the_scans(void)
{
    static const char *const tos[] = {
        "<sip:b@x>",
        "<sip:b@x>;tag=tt",
        "<sip:b@x;tag=inside>",
        "\"B, ;tag=no\" <sip:b@x>;TAG=up",
        "sip:b@x;tag=spec",
        "<sip:b@x> ; tag = spaced ",
        "<sip:b@x>;tag=",
        "<sip:b@x\r\n >;tag=folded",
        "<sip:b@x",
    };
    char text[256];
    for (size_t i = 0; i < sizeof tos / sizeof tos[0]; i++) {
        int n = snprintf(text, sizeof text, REQ_LINE "To: %s\r\n" CALL_ID_HDR CSEQ_HDR "\r\n", tos[i]);
        struct sip_msg asked, later;
        CU_ASSERT_EQUAL_FATAL(sip_scan_for((const uint8_t *)text, (size_t)n, SIP_WANT_TO_TAG, &asked), SIP_OK);
        CU_ASSERT_EQUAL_FATAL(sip_scan_for((const uint8_t *)text, (size_t)n, 0, &later), SIP_OK);
        CU_ASSERT_EQUAL(later.flags & SIP_F_TO_TAG, 0);
        struct sip_str tag;
        bool found = sip_to_tag(&later, &tag);
        CU_ASSERT_EQUAL(found, (asked.flags & SIP_F_TO_TAG) != 0);
        CU_ASSERT(!found || (tag.len == asked.to_tag.len && memcmp(tag.ptr, asked.to_tag.ptr, tag.len) == 0));
    }
    struct sip_msg none;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR, &none), SIP_OK);
    struct sip_str tag;
    CU_ASSERT(!sip_to_tag(&none, &tag));        /* no To header at all */
}

static void test_bad_lines_do_not_excuse_a_bad_cseq(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "X-Weird\r\n" CALL_ID_HDR "CSeq: x INVITE\r\n", &m), SIP_ERR_CSEQ);
    CU_ASSERT_EQUAL(scan(REQ_LINE "X-Weird\r\n" CALL_ID_HDR "\r\n", &m), SIP_ERR_NO_CSEQ);
    CU_ASSERT_EQUAL(scan(REQ_LINE "X-Weird\r\n" CSEQ_HDR, &m), SIP_ERR_NO_CALL_ID);
}

static void test_well_formed_message_skips_nothing(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(invite, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.skipped_lines, 0);
    CU_ASSERT_EQUAL(scan(REQ_LINE "X-Weird\r\n" CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_EQUAL(scan(invite, &m), SIP_OK);
    CU_ASSERT_EQUAL(m.skipped_lines, 0);        /* reset by every scan */
}

static void test_header_names_are_case_insensitive(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan(REQ_LINE
                               "VIA: SIP/2.0/UDP h;BRANCH=z9hG4bKup\r\n"
                               "fRoM: <sip:a@x>;TAG=ft\r\n"
                               "tO: <sip:b@x>;Tag=tt\r\n"
                               "CALL-ID: upper\r\n"
                               "cseq: 9 INVITE\r\n", &m), SIP_OK);
    ASSERT_STR(m.call_id, "upper");
    CU_ASSERT_EQUAL(m.cseq, 9);
    ASSERT_STR(m.via_branch, "z9hG4bKup");
    ASSERT_STR(m.from_tag, "ft");
    ASSERT_STR(m.to_tag, "tt");
}

static void test_compact_call_id(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "i: compact@host\r\n" CSEQ_HDR, &m), SIP_OK);
    ASSERT_STR(m.call_id, "compact@host");
    CU_ASSERT_EQUAL(scan(REQ_LINE "I:UPPER\r\n" CSEQ_HDR, &m), SIP_OK);
    ASSERT_STR(m.call_id, "UPPER");
}

static void test_compact_from_to_via(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan("SIP/2.0 200 OK\r\n"
                               "v: SIP/2.0/TCP h:5060;branch=z9hG4bKc\r\n"
                               "f: <sip:a@x>;tag=cf\r\n"
                               "t: sip:b@x;tag=ct\r\n"
                               "i: cid\r\n"
                               "CSeq: 5 BYE\r\n", &m), SIP_OK);
    ASSERT_STR(m.via_branch, "z9hG4bKc");
    ASSERT_STR(m.from_tag, "cf");
    ASSERT_STR(m.to_tag, "ct");
    CU_ASSERT(m.flags & SIP_F_FROM_TAG);
    CU_ASSERT(m.flags & SIP_F_TO_TAG);
    CU_ASSERT(m.flags & SIP_F_VIA_BRANCH);
}

static void test_longer_names_with_compact_prefix_are_other_headers(void)
{
    struct sip_msg m;
    /* "Identity", "From-X", "Tox", "Vias" must not be taken for i/f/t/v. */
    CU_ASSERT_EQUAL(scan(REQ_LINE
                         "Identity: nope\r\n"
                         "From-X: <sip:a@x>;tag=no\r\n"
                         "Tox: <sip:b@x>;tag=no\r\n"
                         "Vias: SIP/2.0/UDP h;branch=no\r\n"
                         CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    ASSERT_STR(m.call_id, "abc@host");
    CU_ASSERT_EQUAL(m.flags & (SIP_F_FROM_TAG | SIP_F_TO_TAG | SIP_F_VIA_BRANCH), 0);
}

/*
 * A name is matched a word at a time, letters in either case: a byte that
 * differs from the name's only in the case bit, where the name has no
 * letter ('-' and ':'), makes another header or a line skipped; a line
 * shorter than a word is read the long way.
 */
static void test_names_one_case_bit_away_are_other_headers(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan(REQ_LINE
                               "Call\rid: no-cr\r\n"
                               "Call_ID: no-underscore\r\n"
                               "Via\x1a SIP/2.0/UDP h;branch=no\r\n"
                               "CSEQ\x1a 7 BYE\r\n"
                               "\x03" "all-ID: no-ctl\r\n"
                               "v: SIP/2.0/UDP h;branch=yes\r\n"
                               "CSeq: 3 INVITE\r\n"
                               "i:short", &m), SIP_OK);
    ASSERT_STR(m.call_id, "short");
    CU_ASSERT_EQUAL(m.cseq, 3);
    ASSERT_STR(m.via_branch, "yes");
    CU_ASSERT_EQUAL(m.skipped_lines, 4);
}

/*
 * Line ends are found sixteen bytes at a time: a padding header of every
 * length from 0 to 200 bytes puts the line ends after it at every offset
 * of a block and across blocks, and the message ends at every offset of
 * the last one (scan_bytes() gives the scanner an exact-size copy, so a
 * read past the end is caught under the sanitizers).
 */
static void test_line_ends_at_every_offset(void)
{
    char text[512], want_id[32];
    int bad = 0;
    for (int pad = 0; pad <= 200; pad++) {
        for (int bare = 0; bare < 2; bare++) {
            const char *eol = bare ? "\n" : "\r\n";
            int n = snprintf(text, sizeof text, "INVITE sip:b@x SIP/2.0%sX-Pad: %*s%sv: SIP/2.0/UDP h;branch=z9hG4bK%d%s"
                             "i: id-%d%sCSeq: %d BYE",
                             eol, pad, "", eol, pad, eol, pad, eol, pad + 1);
            CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof text);
            struct sip_msg m;
            snprintf(want_id, sizeof want_id, "id-%d", pad);
            if (scan_bytes(text, (size_t)n, &m) != SIP_OK || m.call_id.len != strlen(want_id) ||
                memcmp(m.call_id.ptr, want_id, m.call_id.len) != 0 || m.cseq != (uint32_t)pad + 1 ||
                !(m.flags & SIP_F_VIA_BRANCH) || m.skipped_lines != 0)
                bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_whitespace_around_colon(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan(REQ_LINE
                               "Call-ID  :   spaced@host  \r\n"
                               "CSeq\t:\t42\tBYE\t\r\n"
                               "Via :SIP/2.0/UDP h;branch=z9hG4bKws\r\n"
                               "To\t: <sip:b@x> ; tag = tws \r\n", &m), SIP_OK);
    ASSERT_STR(m.call_id, "spaced@host");
    CU_ASSERT_EQUAL(m.cseq, 42);
    CU_ASSERT_EQUAL(m.cseq_method, SIP_METHOD_BYE);
    ASSERT_STR(m.via_branch, "z9hG4bKws");
    ASSERT_STR(m.to_tag, "tws");
}

static void test_folded_via_branch(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE
                         "Via: SIP/2.0/UDP host.example.com\r\n"
                         "  ;received=10.0.0.1\r\n"
                         "\t;branch=z9hG4bKfold\r\n"
                         CALL_ID_HDR CSEQ_HDR "\r\n", &m), SIP_OK);
    ASSERT_STR(m.via_branch, "z9hG4bKfold");
}

static void test_folded_call_id_and_cseq(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE
                         "Call-ID:\r\n folded@host\r\n"
                         "CSeq: 17\r\n\tINVITE\r\n"
                         "\r\n", &m), SIP_OK);
    ASSERT_STR(m.call_id, "folded@host");
    CU_ASSERT_EQUAL(m.cseq, 17);
    CU_ASSERT_EQUAL(m.cseq_method, SIP_METHOD_INVITE);
}

static void test_folded_from_tag(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "From: \"Alice\"\r\n <sip:a@x>\r\n ;tag=foldtag\r\n"
                         "\r\n", &m), SIP_OK);
    ASSERT_STR(m.from_tag, "foldtag");
}

static void test_folded_header_with_bare_lf(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP h\n ;branch=z9hG4bKlf\n\n", &m), SIP_OK);
    ASSERT_STR(m.via_branch, "z9hG4bKlf");
}

static void test_bare_lf_line_endings(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan("BYE sip:b@x SIP/2.0\n"
                               "Via: SIP/2.0/UDP h;branch=z9hG4bKbare\n"
                               "Call-ID: lf@host\n"
                               "CSeq: 3 BYE\n"
                               "To: <sip:b@x>;tag=t\n"
                               "\n"
                               "body", &m), SIP_OK);
    ASSERT_STR(m.uri, "sip:b@x");
    ASSERT_STR(m.call_id, "lf@host");
    CU_ASSERT_EQUAL(m.cseq, 3);
    ASSERT_STR(m.to_tag, "t");
    ASSERT_STR(m.via_branch, "z9hG4bKbare");
}

static void test_mixed_line_endings(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan("SIP/2.0 486 Busy Here\n"
                         "Call-ID: mixed@host\r\n"
                         "CSeq: 1 INVITE\n"
                         "\r\n", &m), SIP_OK);
    ASSERT_STR(m.reason, "Busy Here");
    ASSERT_STR(m.call_id, "mixed@host");
}

static void test_headers_in_any_order(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan("SIP/2.0 180 Ringing\r\n"
                               "CSeq: 2 INVITE\r\n"
                               "Content-Length: 0\r\n"
                               "To: <sip:b@x>;tag=to1\r\n"
                               "Call-ID: order@host\r\n"
                               "Via: SIP/2.0/UDP h;branch=z9hG4bKo\r\n"
                               "From: <sip:a@x>;tag=fr1\r\n"
                               "\r\n", &m), SIP_OK);
    ASSERT_STR(m.call_id, "order@host");
    CU_ASSERT_EQUAL(m.cseq, 2);
    ASSERT_STR(m.to_tag, "to1");
    ASSERT_STR(m.from_tag, "fr1");
    ASSERT_STR(m.via_branch, "z9hG4bKo");
}

static void test_body_is_ignored(void)
{
    struct sip_msg m;
    /* Headers look-alikes and garbage after the empty line are not read. */
    CU_ASSERT_EQUAL(scan(REQ_LINE "Call-ID: head@host\r\n" CSEQ_HDR "\r\n"
                         "Call-ID: body@host\r\n"
                         "CSeq: garbage\r\n"
                         "no colon here\r\n", &m), SIP_OK);
    ASSERT_STR(m.call_id, "head@host");
    CU_ASSERT_EQUAL(m.cseq, 1);
}

static void test_headers_found_only_in_body_are_missing(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CSEQ_HDR "\r\n" CALL_ID_HDR, &m), SIP_ERR_NO_CALL_ID);
}

static void test_missing_final_empty_line_is_accepted(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CSEQ_HDR "Call-ID: last@host", &m), SIP_OK);
    ASSERT_STR(m.call_id, "last@host");
    CU_ASSERT_EQUAL(scan(REQ_LINE CSEQ_HDR "Call-ID: last@host\r", &m), SIP_OK);
    ASSERT_STR(m.call_id, "last@host");
    CU_ASSERT_EQUAL(scan(REQ_LINE CSEQ_HDR "Call-ID: last@host\r\n", &m), SIP_OK);
    ASSERT_STR(m.call_id, "last@host");
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR "CSeq: 8 INVITE", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.cseq, 8);
}

/* ---- Call-ID --------------------------------------------------------------- */

static void test_missing_call_id_is_no_call_id(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CSEQ_HDR "\r\n", &m), SIP_ERR_NO_CALL_ID);
    CU_ASSERT_EQUAL(m.cseq, 1);
}

static void test_empty_call_id_is_no_call_id(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "Call-ID:\r\n" CSEQ_HDR, &m), SIP_ERR_NO_CALL_ID);
    CU_ASSERT_EQUAL(scan(REQ_LINE "Call-ID:  \t \r\n" CSEQ_HDR, &m), SIP_ERR_NO_CALL_ID);
    CU_ASSERT_EQUAL(scan(REQ_LINE "i:\r\n \r\n" CSEQ_HDR, &m), SIP_ERR_NO_CALL_ID);
}

static void test_call_id_is_trimmed(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "Call-ID: \t trim@host \t \r\n" CSEQ_HDR, &m), SIP_OK);
    ASSERT_STR(m.call_id, "trim@host");
}

static void test_first_call_id_wins(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "Call-ID: first\r\n" CSEQ_HDR "i: second\r\n"
                         "Call-ID: third\r\n", &m), SIP_OK);
    ASSERT_STR(m.call_id, "first");
    CU_ASSERT_EQUAL(scan(REQ_LINE "i: first\r\n" "Call-ID: second\r\n" CSEQ_HDR, &m), SIP_OK);
    ASSERT_STR(m.call_id, "first");
}

/* Concatenates the canonical pieces of s into out (NUL-terminated); returns the piece count. */
static size_t canonical(struct sip_str s, char *out, size_t size)
{
    size_t pos = 0, used = 0, pieces = 0;
    struct sip_str piece;
    while (sip_lws_next(&s, &pos, &piece)) {
        CU_ASSERT_FATAL(piece.len > 0 && used + piece.len < size);
        memcpy(out + used, piece.ptr, piece.len);
        used += piece.len;
        pieces++;
    }
    out[used] = '\0';
    CU_ASSERT_FALSE(sip_lws_next(&s, &pos, &piece));    /* stays at the end */
    return pieces;
}

static void test_folded_call_id_has_lws_flag_and_single_space_form(void)
{
    static const char *const values[] = {
        "abc\r\n @host",
        "abc\r\n\t@host",
        "abc \t @host",
        "abc\n @host",
        "abc\r\n \r\n\t @host",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char text[START_LINE_MAX], form[START_LINE_MAX];
        snprintf(text, sizeof text, REQ_LINE "Call-ID: %s\r\n" CSEQ_HDR, values[i]);
        struct sip_msg m;
        CU_ASSERT_EQUAL(scan(text, &m), SIP_OK);
        ASSERT_STR(m.call_id, values[i]);           /* as written, for the router */
        CU_ASSERT(m.flags & SIP_F_CALL_ID_LWS);
        CU_ASSERT_EQUAL(canonical(m.call_id, form, sizeof form), 3);
        CU_ASSERT_STRING_EQUAL(form, "abc @host");
        CU_ASSERT_EQUAL(m.skipped_lines, 0);
    }
}

static void test_call_id_without_inner_lws_has_no_flag(void)
{
    struct sip_msg m;
    char form[START_LINE_MAX];
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_CALL_ID_LWS);
    CU_ASSERT_EQUAL(canonical(m.call_id, form, sizeof form), 1);
    CU_ASSERT_STRING_EQUAL(form, "abc@host");
    /* White space and folds around the value are trimmed, not inside it. */
    CU_ASSERT_EQUAL(scan(REQ_LINE "Call-ID:\r\n \t abc@host \r\n\t\r\n" CSEQ_HDR, &m), SIP_OK);
    ASSERT_STR(m.call_id, "abc@host");
    CU_ASSERT_FALSE(m.flags & SIP_F_CALL_ID_LWS);
    CU_ASSERT_EQUAL(scan(REQ_LINE "i: \t abc@host\t\r\n" CSEQ_HDR, &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_CALL_ID_LWS);
}

/*
 * The flag is found wherever the white space stands: in the eight-byte
 * steps or the tail, and next to bytes above 0x7f, which are not white.
 */
static void test_call_id_lws_found_at_every_position(void)
{
    struct sip_msg m;
    char msg[256], cid[24];
    static const char ws[] = { ' ', '\t' };
    for (size_t at = 1; at + 1 < sizeof cid - 1; at++) {
        for (size_t k = 0; k < sizeof ws; k++) {
            memset(cid, 'a', sizeof cid - 1);
            cid[sizeof cid - 1] = '\0';
            cid[0] = (char)0xc3;                /* a UTF-8 lead byte: not white space */
            cid[at] = ws[k];
            snprintf(msg, sizeof msg, REQ_LINE "Call-ID: %s\r\n" CSEQ_HDR, cid);
            CU_ASSERT_EQUAL(scan(msg, &m), SIP_OK);
            CU_ASSERT(m.flags & SIP_F_CALL_ID_LWS);
        }
    }
    memset(cid, (char)0xff, sizeof cid - 1);
    snprintf(msg, sizeof msg, REQ_LINE "Call-ID: %s\r\n" CSEQ_HDR, cid);
    CU_ASSERT_EQUAL(scan(msg, &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_CALL_ID_LWS);
}

static void test_lws_pieces_drop_white_space_at_both_ends(void)
{
    static const struct {
        const char *value;
        const char *form;
        size_t pieces;
    } cases[] = {
        { "", "", 0 },
        { " \t\r\n", "", 0 },
        { "a", "a", 1 },
        { "\r\n a", "a", 1 },
        { "a \r\n", "a", 1 },
        { "  a \t b\r\n c  ", "a b c", 5 },
        { "a\tb", "a b", 3 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sip_str s = { cases[i].value, strlen(cases[i].value) };
        char form[START_LINE_MAX];
        CU_ASSERT_EQUAL(canonical(s, form, sizeof form), cases[i].pieces);
        CU_ASSERT_STRING_EQUAL(form, cases[i].form);
    }
    /* Pieces of the value point into it; only the single SP does not. */
    const char value[] = "ab\r\n cd";
    struct sip_str s = { value, sizeof value - 1 }, piece;
    size_t pos = 0;
    CU_ASSERT_FATAL(sip_lws_next(&s, &pos, &piece));
    CU_ASSERT(piece.ptr == value && piece.len == 2);
    CU_ASSERT_FATAL(sip_lws_next(&s, &pos, &piece));
    CU_ASSERT(piece.len == 1 && piece.ptr[0] == ' ');
    CU_ASSERT_FATAL(sip_lws_next(&s, &pos, &piece));
    CU_ASSERT(piece.ptr == value + 5 && piece.len == 2);
    CU_ASSERT_FALSE(sip_lws_next(&s, &pos, &piece));
}

/* ---- CSeq ------------------------------------------------------------------ */

static void test_missing_cseq_is_no_cseq(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR "\r\n", &m), SIP_ERR_NO_CSEQ);
    ASSERT_STR(m.call_id, "abc@host");
}

static void test_call_id_is_checked_before_cseq(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE "Max-Forwards: 70\r\n\r\n", &m), SIP_ERR_NO_CALL_ID);
}

static void test_malformed_cseq_is_cseq_error(void)
{
    static const char *const values[] = {
        "",
        "   ",
        "INVITE",
        "1",
        "1 ",
        "1INVITE",
        "-1 INVITE",
        "x1 INVITE",
        "1 INVITE extra",
        "1 INV<ITE",
        "1 2 INVITE",
        "4294967296 INVITE",            /* UINT32_MAX + 1 */
        "99999999999999999999999 INVITE",
    };
    struct sip_msg m;
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char text[START_LINE_MAX];
        snprintf(text, sizeof text, REQ_LINE CALL_ID_HDR "CSeq: %s\r\n\r\n", values[i]);
        CU_ASSERT_EQUAL(scan(text, &m), SIP_ERR_CSEQ);
    }
}

static void test_cseq_number_range(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR "CSeq: 4294967295 INVITE\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.cseq, UINT32_MAX);
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR "CSeq: 0 INVITE\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.cseq, 0);
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR "CSeq: 000000000000000012 INVITE\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.cseq, 12);
}

static void test_first_cseq_wins(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR "CSeq: 5 INVITE\r\nCSeq: junk\r\n", &m), SIP_OK);
    CU_ASSERT_EQUAL(m.cseq, 5);
}

/* ---- Via ------------------------------------------------------------------- */

static void test_top_via_is_first_value_of_comma_list(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP p1:5060;branch=z9hG4bKtop;rport,"
                         " SIP/2.0/UDP p2;branch=z9hG4bKsecond\r\n", &m), SIP_OK);
    ASSERT_STR(m.via_branch, "z9hG4bKtop");
}

static void test_top_via_is_first_via_header(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE
                         "Via: SIP/2.0/UDP p1;branch=z9hG4bKfirst\r\n"
                         CALL_ID_HDR
                         "v: SIP/2.0/UDP p2;branch=z9hG4bKsecond\r\n"
                         CSEQ_HDR, &m), SIP_OK);
    ASSERT_STR(m.via_branch, "z9hG4bKfirst");
}

static void test_top_via_without_branch_ignores_later_values(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP p1;rport, SIP/2.0/UDP p2;branch=z9hG4bKno\r\n"
                         "Via: SIP/2.0/UDP p3;branch=z9hG4bKno\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_VIA_BRANCH);
    ASSERT_STR(m.via_branch, "");
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP p1, SIP/2.0/UDP p2;branch=z9hG4bKno\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_VIA_BRANCH);
}

static void test_via_branch_among_other_params(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP [2001:db8::1]:5060;rport=5060;received=[2001:db8::2]"
                         ";x=\"a,b;branch=quoted\";Branch=z9hG4bKreal;ttl=3\r\n", &m), SIP_OK);
    ASSERT_STR(m.via_branch, "z9hG4bKreal");
}

static void test_via_quoted_branch_value_is_unquoted(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP h;branch=\"z9hG4bKq\"\r\n", &m), SIP_OK);
    ASSERT_STR(m.via_branch, "z9hG4bKq");
}

static void test_via_unterminated_quote_gives_no_branch(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP h;x=\"open;branch=z9hG4bKno\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_VIA_BRANCH);
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "Via: SIP/2.0/UDP h;x=\"esc\\", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_VIA_BRANCH);
}

/* ---- From / To tags -------------------------------------------------------- */

static void test_to_without_tag_has_no_flag(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "To: \"Bob\" <sip:bob@x;transport=udp>;foo=bar\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_TO_TAG);
    ASSERT_STR(m.to_tag, "");
}

static void test_tag_inside_uri_is_not_a_header_tag(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "To: <sip:bob@x;tag=inuri>\r\n"
                         "From: <sip:a@x;tag=inuri>;tag=real\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_TO_TAG);
    ASSERT_STR(m.from_tag, "real");
}

static void test_quoted_display_name_with_separators(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "From: \"A <b>; tag=no \\\"q\\\"\" <sip:a@x>;tag=yes\r\n", &m), SIP_OK);
    ASSERT_STR(m.from_tag, "yes");
}

static void test_unquoted_display_name(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "To: Bob Smith <sip:bob@x>;tag=bs\r\n", &m), SIP_OK);
    ASSERT_STR(m.to_tag, "bs");
}

static void test_addr_spec_params_are_header_params(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "To: sip:bob@x;tag=addrspec\r\n"
                         "From: sip:alice@x ;user=phone; tag=fa\r\n", &m), SIP_OK);
    ASSERT_STR(m.to_tag, "addrspec");
    ASSERT_STR(m.from_tag, "fa");
}

static void test_tag_param_name_is_case_insensitive(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR "To: <sip:b@x>;TAG=CaseKept\r\n", &m), SIP_OK);
    ASSERT_STR(m.to_tag, "CaseKept");
}

static void test_tag_among_other_params(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "To: <sip:b@x>;foo;tagx=no;x-tag=no;tag=mid;bar=\"q\"\r\n", &m), SIP_OK);
    ASSERT_STR(m.to_tag, "mid");
}

static void test_empty_tag_still_counts_as_present(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR "To: <sip:b@x>;tag=\r\n", &m), SIP_OK);
    CU_ASSERT(m.flags & SIP_F_TO_TAG);
    ASSERT_STR(m.to_tag, "");
}

static void test_malformed_name_addr_gives_no_tag(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR "To: <sip:b@x;tag=t\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_TO_TAG);
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR "To: \"open <sip:b@x>;tag=t\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_TO_TAG);
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR "To: \"name\" sip:b@x;tag=t\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_TO_TAG);
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR "To:\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_TO_TAG);
}

static void test_first_to_header_wins(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan(REQ_LINE CALL_ID_HDR CSEQ_HDR
                         "To: <sip:b@x>\r\n" "t: <sip:b@x>;tag=late\r\n", &m), SIP_OK);
    CU_ASSERT_FALSE(m.flags & SIP_F_TO_TAG);
}

/* ---- robustness ------------------------------------------------------------ */

static void test_result_is_reset_between_scans(void)
{
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(scan(invite, &m), SIP_OK);
    CU_ASSERT_EQUAL(scan("garbage\r\n", &m), SIP_ERR_START_LINE);
    CU_ASSERT_EQUAL(m.flags, 0);
    CU_ASSERT_EQUAL(m.method, SIP_METHOD_NONE);
    CU_ASSERT_EQUAL(m.call_id.len, 0);
    CU_ASSERT_EQUAL(m.cseq, 0);
    CU_ASSERT_EQUAL(m.via_branch.len, 0);
}

static void test_nul_bytes_do_not_end_the_scan(void)
{
    static const char text[] = REQ_LINE "X-Bin: a\0b\r\n" CALL_ID_HDR CSEQ_HDR;
    struct sip_msg m;
    CU_ASSERT_EQUAL(scan_bytes(text, sizeof text - 1, &m), SIP_OK);
    ASSERT_STR(m.call_id, "abc@host");
}

static bool str_inside(struct sip_str s, const uint8_t *buf, size_t len)
{
    if (s.len == 0)
        return true;
    const char *lo = (const char *)buf;
    return s.ptr >= lo && s.len <= len && s.ptr <= lo + len - s.len;
}

/*
 * Every prefix of a full message is scanned from an exact-size buffer: a read
 * past the end would be caught by ASan/valgrind, and every result must stay
 * inside the prefix.
 */
static void test_every_truncation_stays_in_bounds(void)
{
    size_t total = strlen(invite);
    for (size_t n = 0; n <= total; n++) {
        struct sip_msg m;
        int rc = scan_bytes(invite, n, &m);
        CU_ASSERT(rc >= SIP_OK && rc < SIP_STATUS_COUNT);
        CU_ASSERT_NOT_EQUAL(rc, SIP_ERR_HEADER);    /* no longer returned */
        const struct sip_str all[] = { m.method_name, m.uri, m.reason, m.call_id,
                                       m.cseq_method_name, m.from_tag, m.to_tag,
                                       m.via_branch };
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            CU_ASSERT(str_inside(all[i], scan_copy, n));
        if (rc == SIP_OK)
            CU_ASSERT(m.call_id.len > 0);
    }
}

/* ---- real Kamailio captures -------------------------------------------------- */

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Returns the SIP payload of a captured HEP packet, or NULL. */
static const uint8_t *hep_payload(int version, const uint8_t *buf, size_t len, size_t *plen)
{
    if (version == 3) {
        if (len < HEP3_HEADER_LEN || memcmp(buf, HEP3_MAGIC, HEP3_MAGIC_LEN) != 0)
            return NULL;
        size_t total = be16(buf + HEP3_MAGIC_LEN);
        if (total > len)
            return NULL;
        for (size_t off = HEP3_HEADER_LEN; off + HEP3_CHUNK_HEADER_LEN <= total;) {
            unsigned type = be16(buf + off + 2);
            size_t clen = be16(buf + off + 4);
            if (clen < HEP3_CHUNK_HEADER_LEN || off + clen > total)
                return NULL;
            if (type == HEP3_CHUNK_PAYLOAD) {
                *plen = clen - HEP3_CHUNK_HEADER_LEN;
                return buf + off + HEP3_CHUNK_HEADER_LEN;
            }
            off += clen;
        }
        return NULL;
    }
    if (len <= HEP12_HDR_LEN_OFFSET)
        return NULL;
    size_t off = buf[HEP12_HDR_LEN_OFFSET];
    if (version == 2)
        off += HEP2_TIME_BLOCK_LEN;
    if (off > len)
        return NULL;
    *plen = len - off;
    return buf + off;
}

/* Splits a tab-separated line in place, keeping empty fields. */
static int split_tabs(char *line, char **fields, int max)
{
    int n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

static int column(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* Rebuilds the start line from the scan result. */
static void start_line_of(const struct sip_msg *m, char *out, size_t size)
{
    if (sip_is_reply(m))
        snprintf(out, size, "SIP/2.0 %u %.*s", m->status, (int)m->reason.len, m->reason.ptr);
    else
        snprintf(out, size, "%.*s %.*s SIP/2.0", (int)m->method_name.len, m->method_name.ptr,
                 (int)m->uri.len, m->uri.ptr);
}

/*
 * Scans every packet listed in tests/data/kamailio/vN/manifest.tsv and checks
 * the start line, Call-ID and CSeq against the manifest, plus what is true of
 * every Kamailio/sipp packet: a From tag and a z9hG4bK top Via branch.
 */
static void check_vectors(int version)
{
    char relpath[RELPATH_MAX];
    snprintf(relpath, sizeof relpath, "kamailio/v%d/manifest.tsv", version);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TEST_DATA_DIR, relpath);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);

    char header[MANIFEST_LINE_MAX], line[MANIFEST_LINE_MAX];
    char *names[MANIFEST_FIELDS_MAX], *fields[MANIFEST_FIELDS_MAX];
    int ncols = 0, rows = 0;
    int c_file = -1, c_first = -1, c_cid = -1, c_num = -1, c_method = -1, c_len = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (ncols == 0) {
            memcpy(header, line, sizeof header);
            ncols = split_tabs(header, names, MANIFEST_FIELDS_MAX);
            c_file = column(names, ncols, "file");
            c_first = column(names, ncols, "first_line");
            c_cid = column(names, ncols, "call_id");
            c_num = column(names, ncols, "cseq_num");
            c_method = column(names, ncols, "cseq_method");
            c_len = column(names, ncols, "payload_len");
            CU_ASSERT_FATAL(c_file >= 0 && c_first >= 0 && c_cid >= 0 && c_num >= 0 &&
                            c_method >= 0 && c_len >= 0);
            continue;
        }
        CU_ASSERT_EQUAL_FATAL(split_tabs(line, fields, MANIFEST_FIELDS_MAX), ncols);
        snprintf(relpath, sizeof relpath, "kamailio/v%d/%s", version, fields[c_file]);
        size_t len = 0, plen = 0;
        unsigned char *buf = unit_read_file(relpath, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        const uint8_t *payload = hep_payload(version, buf, len, &plen);
        CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
        CU_ASSERT_EQUAL(plen, strtoul(fields[c_len], NULL, 10));

        struct sip_msg m;
        int rc = scan_bytes(payload, plen, &m);
        CU_ASSERT_EQUAL(rc, SIP_OK);
        if (rc != SIP_OK)
            fprintf(stderr, "\n  %s: %s\n", relpath, sip_strerror(rc));
        char start[START_LINE_MAX];
        start_line_of(&m, start, sizeof start);
        CU_ASSERT_STRING_EQUAL(start, fields[c_first]);
        ASSERT_STR(m.call_id, fields[c_cid]);
        CU_ASSERT_EQUAL(m.cseq, strtoul(fields[c_num], NULL, 10));
        ASSERT_STR(m.cseq_method_name, fields[c_method]);
        CU_ASSERT_STRING_EQUAL(sip_method_name(m.cseq_method), fields[c_method]);
        CU_ASSERT(m.flags & SIP_F_FROM_TAG);
        CU_ASSERT(m.flags & SIP_F_VIA_BRANCH);
        CU_ASSERT_FALSE(m.flags & SIP_F_CALL_ID_LWS);
        CU_ASSERT_EQUAL(m.skipped_lines, 0);
        CU_ASSERT(m.via_branch.len > strlen("z9hG4bK") &&
                  memcmp(m.via_branch.ptr, "z9hG4bK", strlen("z9hG4bK")) == 0);
        free(buf);
        rows++;
    }
    fclose(f);
    CU_ASSERT(rows > 0);
}

static void test_kamailio_v3_vectors_match_manifest(void)
{
    check_vectors(3);
}

static void test_kamailio_v2_vectors_match_manifest(void)
{
    check_vectors(2);
}

static void test_kamailio_v1_vectors_match_manifest(void)
{
    check_vectors(1);
}

/* One captured packet of the v3 capture, scanned, with its manifest row. */
struct vector {
    char file[VECTOR_NAME_MAX];
    unsigned src_port, dst_port;
    uint8_t *payload;               /* exact-size copy; msg points into it */
    struct sip_msg msg;
};

#define CAPTURE_MAX 256

/*
 * Loads and scans the whole v3 capture.  The checks built on it relate
 * packets to each other (a reply to the request of its hop, an ACK to its
 * 407) instead of naming tags and branches, which change with every capture.
 */
static size_t load_capture(struct vector *v, size_t max)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/kamailio/v3/manifest.tsv", TEST_DATA_DIR);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char header[MANIFEST_LINE_MAX], line[MANIFEST_LINE_MAX];
    char *names[MANIFEST_FIELDS_MAX], *fields[MANIFEST_FIELDS_MAX];
    int ncols = 0, c_file = -1, c_src = -1, c_dst = -1;
    size_t n = 0;
    while (n < max && fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (ncols == 0) {
            memcpy(header, line, sizeof header);
            ncols = split_tabs(header, names, MANIFEST_FIELDS_MAX);
            c_file = column(names, ncols, "file");
            c_src = column(names, ncols, "src_port");
            c_dst = column(names, ncols, "dst_port");
            CU_ASSERT_FATAL(c_file >= 0 && c_src >= 0 && c_dst >= 0);
            continue;
        }
        CU_ASSERT_EQUAL_FATAL(split_tabs(line, fields, MANIFEST_FIELDS_MAX), ncols);
        struct vector *vec = &v[n];
        snprintf(vec->file, sizeof vec->file, "%s", fields[c_file]);
        vec->src_port = (unsigned)strtoul(fields[c_src], NULL, 10);
        vec->dst_port = (unsigned)strtoul(fields[c_dst], NULL, 10);
        char relpath[RELPATH_MAX];
        snprintf(relpath, sizeof relpath, "kamailio/v3/%s", vec->file);
        size_t len = 0, plen = 0;
        unsigned char *buf = unit_read_file(relpath, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        const uint8_t *payload = hep_payload(3, buf, len, &plen);
        CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
        vec->payload = malloc(plen ? plen : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(vec->payload);
        memcpy(vec->payload, payload, plen);
        free(buf);
        CU_ASSERT_EQUAL(sip_scan(vec->payload, plen, &vec->msg), SIP_OK);
        n++;
    }
    fclose(f);
    CU_ASSERT(n > 0);
    return n;
}

static void free_capture(struct vector *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].payload);
}

static bool str_eq(struct sip_str a, struct sip_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool same_transaction(const struct sip_msg *a, const struct sip_msg *b)
{
    return str_eq(a->call_id, b->call_id) && a->cseq == b->cseq &&
        str_eq(a->cseq_method_name, b->cseq_method_name);
}

/*
 * A reply carries the Via list of its request on the same hop, so its top
 * branch is that request's top branch.  Replies from the UAS carry two Via
 * values (Kamailio's first, joined by a comma): picking the second would give
 * the UAC's branch and fail here.
 */
static void test_kamailio_reply_top_via_matches_request_on_its_hop(void)
{
    static struct vector v[CAPTURE_MAX];
    size_t n = load_capture(v, CAPTURE_MAX);
    size_t matched = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sip_is_reply(&v[i].msg))
            continue;
        for (size_t j = 0; j < n; j++) {
            if (!sip_is_request(&v[j].msg) || v[j].src_port != v[i].dst_port ||
                v[j].dst_port != v[i].src_port || !same_transaction(&v[i].msg, &v[j].msg))
                continue;
            CU_ASSERT(v[i].msg.flags & SIP_F_VIA_BRANCH);
            CU_ASSERT(str_eq(v[i].msg.via_branch, v[j].msg.via_branch));
            if (!str_eq(v[i].msg.via_branch, v[j].msg.via_branch))
                fprintf(stderr, "\n  %s vs %s: top Via branch differs\n", v[i].file, v[j].file);
            matched++;
            break;
        }
    }
    CU_ASSERT(matched > 0);
    free_capture(v, n);
}

/*
 * The scenario's dialog rules: initial requests have no To tag, in-dialog
 * requests (ACK, BYE) have one; the 407 is answered by an ACK with the same
 * To tag, From tag and branch (RFC 3261 17.1.1.3).
 */
static void test_kamailio_to_tags_follow_the_dialog(void)
{
    static struct vector v[CAPTURE_MAX];
    size_t n = load_capture(v, CAPTURE_MAX);
    size_t acks_of_407 = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sip_msg *m = &v[i].msg;
        if (sip_is_request(m)) {
            bool in_dialog = m->method == SIP_METHOD_ACK || m->method == SIP_METHOD_BYE;
            CU_ASSERT_EQUAL((m->flags & SIP_F_TO_TAG) != 0, in_dialog);
            CU_ASSERT_EQUAL((m->flags & SIP_F_ACK) != 0, m->method == SIP_METHOD_ACK);
            continue;
        }
        if (m->status != 407)
            continue;
        CU_ASSERT(m->flags & SIP_F_TO_TAG);
        CU_ASSERT_EQUAL(m->cseq_method, SIP_METHOD_INVITE);
        for (size_t j = 0; j < n; j++) {
            const struct sip_msg *ack = &v[j].msg;
            if (ack->method != SIP_METHOD_ACK || ack->cseq != m->cseq ||
                !str_eq(ack->call_id, m->call_id))
                continue;
            CU_ASSERT(ack->flags & SIP_F_ACK);
            CU_ASSERT(str_eq(ack->to_tag, m->to_tag));
            CU_ASSERT(str_eq(ack->from_tag, m->from_tag));
            CU_ASSERT(str_eq(ack->via_branch, m->via_branch));
            acks_of_407++;
        }
    }
    CU_ASSERT(acks_of_407 > 0);
    free_capture(v, n);
}

static bool str_is_text(struct sip_str s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

static void test_header_walk_gives_names_and_values(void)
{
    static const char msg[] = "\r\nINVITE sip:a@b SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                              "no colon here\r\n"
                              "X-Long:  one\r\n two \r\n"
                              "f:<sip:x@y>\r\n"
                              "\r\n"
                              "Body: not a header\r\n";
    size_t pos = 0;
    struct sip_str name, value;
    CU_ASSERT_TRUE_FATAL(sip_header_next((const uint8_t *)msg, strlen(msg), &pos, &name, &value));
    CU_ASSERT_TRUE(str_is_text(name, "Via"));
    CU_ASSERT_TRUE(str_is_text(value, "SIP/2.0/UDP h;branch=z9hG4bK1"));
    CU_ASSERT_TRUE_FATAL(sip_header_next((const uint8_t *)msg, strlen(msg), &pos, &name, &value));
    CU_ASSERT_TRUE(str_is_text(name, "X-Long"));
    CU_ASSERT_TRUE(str_is_text(value, "one\r\n two"));          /* with its continuation */
    CU_ASSERT_TRUE_FATAL(sip_header_next((const uint8_t *)msg, strlen(msg), &pos, &name, &value));
    CU_ASSERT_TRUE(sip_header_is(&name, "from", 'f'));
    CU_ASSERT_FALSE(sip_header_is(&name, "to", 't'));
    CU_ASSERT_TRUE(str_is_text(value, "<sip:x@y>"));
    CU_ASSERT_FALSE(sip_header_next((const uint8_t *)msg, strlen(msg), &pos, &name, &value));
    CU_ASSERT_FALSE(sip_header_next((const uint8_t *)msg, strlen(msg), &pos, &name, &value));
    /* every truncation stays in bounds */
    for (size_t len = 0; len <= strlen(msg); len++) {
        char *copy = malloc(len ? len : 1);
        memcpy(copy, msg, len);
        pos = 0;
        int n = 0;
        while (sip_header_next((const uint8_t *)copy, len, &pos, &name, &value) && n < 10)
            n++;
        CU_ASSERT(n <= 3);
        free(copy);
    }
}

/* The walk among some names: the others passed over, continuations included; both cases of a first byte. */
static void test_header_walk_among_first_bytes(void)
{
    static const char msg[] = "INVITE sip:a@b SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                              "Xtra: folded\r\n x-not: a header\r\n"
                              "user-agent: one\r\n"
                              "From: <sip:x@y>\r\n"
                              " Unrelated: continuation\r\n"
                              "USER-AGENT: two\r\n"
                              "\r\n"
                              "User-Agent: in the body\r\n";
    struct sip_byte_set set;
    memset(&set, 0, sizeof set);
    sip_byte_set_add_nocase(&set, 'U');
    sip_byte_set_add_nocase(&set, 'x');
    size_t pos = 0, n = 0;
    struct sip_str name, value;
    const char *want[][2] = { { "Xtra", "folded\r\n x-not: a header" }, { "user-agent", "one" },
                              { "USER-AGENT", "two" } };
    while (sip_header_next_among((const uint8_t *)msg, strlen(msg), &pos, &set, &name, &value)) {
        CU_ASSERT_FATAL(n < sizeof want / sizeof want[0]);
        CU_ASSERT_TRUE(str_is_text(name, want[n][0]));
        CU_ASSERT_TRUE(str_is_text(value, want[n][1]));
        n++;
    }
    CU_ASSERT_EQUAL(n, sizeof want / sizeof want[0]);
    /* an empty set gives nothing */
    memset(&set, 0, sizeof set);
    pos = 0;
    CU_ASSERT_FALSE(sip_header_next_among((const uint8_t *)msg, strlen(msg), &pos, &set, &name, &value));
}

static void test_uri_user_and_host(void)
{
    static const struct {
        const char *in, *user, *host;
    } cases[] = {
        { "\"Alice <x>\" <sip:alice@a.example>;tag=1", "alice", "a.example" },
        { "<sips:bob:secret@[2001:db8::1]:5061;transport=tls>", "bob", "[2001:db8::1]" },
        { "sip:+15551234@gw.example:5060;user=phone", "+15551234", "gw.example" },
        { "sip:carol@c.example;tag=9", "carol", "c.example" },
        { "Dave <sip:d.example>", "", "d.example" },
        { "sip:e@e.example?Subject=x", "e", "e.example" },
        { "<sip:averyverylonguser.name@sub.domain.example.com:5060;transport=tcp>", "averyverylonguser.name",
          "sub.domain.example.com" },
        { "sip:first.part@second.part@host.example.org;x=1", "first.part@second.part", "host.example.org" },
        { "sip:longlonglonglonguser@hostname.example?Subject=x", "longlonglonglonguser", "hostname.example" },
        { "sip:hostonly.example.net;transport=tls;user@param", "", "hostonly.example.net" },
        { "sip:user:secret@host.example:5060", "user", "host.example" },
        { "sip:a:b@c:d@e.example:5070;x=1", "a", "e.example" },
        { "<sip:[::1]:5060>", "", "[::1]" },
        { "sip:h.example:5060", "", "h.example" },
        { "<sip:broken@x", "", "" },
        { "no uri at all", "", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sip_str v = { cases[i].in, strlen(cases[i].in) }, user, host;
        sip_uri_user_host(v, &user, &host);
        CU_ASSERT_TRUE(str_is_text(user, cases[i].user));
        CU_ASSERT_TRUE(str_is_text(host, cases[i].host));
        if (!str_is_text(user, cases[i].user) || !str_is_text(host, cases[i].host))
            printf("\n    %s: user \"%.*s\" host \"%.*s\"", cases[i].in, (int)user.len, user.ptr, (int)host.len,
                   host.ptr);
    }
}

static const struct unit_test tests[] = {
    { "test_empty_input_is_rejected", test_empty_input_is_rejected },
    { "test_keepalive_of_only_crlf_is_empty", test_keepalive_of_only_crlf_is_empty },
    { "test_crlf_before_start_line_is_skipped", test_crlf_before_start_line_is_skipped },
    { "test_invite_request_fields", test_invite_request_fields },
    { "test_407_status_line_and_reason", test_407_status_line_and_reason },
    { "test_reply_without_reason_phrase", test_reply_without_reason_phrase },
    { "test_ack_request_sets_ack_flag", test_ack_request_sets_ack_flag },
    { "test_cancel_request_sets_cancel_flag", test_cancel_request_sets_cancel_flag },
    { "test_reply_to_cancel_is_not_flagged_cancel", test_reply_to_cancel_is_not_flagged_cancel },
    { "test_unknown_method_is_other", test_unknown_method_is_other },
    { "test_method_names_are_case_sensitive", test_method_names_are_case_sensitive },
    { "test_method_name_round_trip", test_method_name_round_trip },
    { "test_strerror_names_every_status", test_strerror_names_every_status },
    { "test_malformed_request_line_is_start_line_error", test_malformed_request_line_is_start_line_error },
    { "test_other_sip_version_is_version_error", test_other_sip_version_is_version_error },
    { "test_sip_version_is_case_insensitive", test_sip_version_is_case_insensitive },
    { "test_trailing_whitespace_on_start_line_is_ignored", test_trailing_whitespace_on_start_line_is_ignored },
    { "test_bad_status_code_is_status_code_error", test_bad_status_code_is_status_code_error },
    { "test_status_code_bounds_are_accepted", test_status_code_bounds_are_accepted },
    { "test_start_line_only_has_no_call_id", test_start_line_only_has_no_call_id },
    { "test_line_without_colon_anywhere_is_skipped_and_counted", test_line_without_colon_anywhere_is_skipped_and_counted },
    { "test_two_bad_lines_count_two", test_two_bad_lines_count_two },
    { "test_bad_line_with_folded_continuation_counts_once", test_bad_line_with_folded_continuation_counts_once },
    { "test_bad_header_name_is_skipped_and_counted", test_bad_header_name_is_skipped_and_counted },
    { "test_folded_line_before_first_header_is_skipped_and_counted", test_folded_line_before_first_header_is_skipped_and_counted },
    { "test_scan_stops_after_the_headers_it_needs", test_scan_stops_after_the_headers_it_needs },
    { "test_scan_for_finds_only_what_is_wanted", test_scan_for_finds_only_what_is_wanted },
    { "test_bad_lines_do_not_excuse_a_bad_cseq", test_bad_lines_do_not_excuse_a_bad_cseq },
    { "test_well_formed_message_skips_nothing", test_well_formed_message_skips_nothing },
    { "test_header_names_are_case_insensitive", test_header_names_are_case_insensitive },
    { "test_compact_call_id", test_compact_call_id },
    { "test_compact_from_to_via", test_compact_from_to_via },
    { "test_longer_names_with_compact_prefix_are_other_headers", test_longer_names_with_compact_prefix_are_other_headers },
    { "test_to_tag_asked_later_is_the_scans", test_to_tag_asked_later_is_the_scans },
    { "test_names_one_case_bit_away_are_other_headers", test_names_one_case_bit_away_are_other_headers },
    { "test_line_ends_at_every_offset", test_line_ends_at_every_offset },
    { "test_whitespace_around_colon", test_whitespace_around_colon },
    { "test_folded_via_branch", test_folded_via_branch },
    { "test_folded_call_id_and_cseq", test_folded_call_id_and_cseq },
    { "test_folded_from_tag", test_folded_from_tag },
    { "test_folded_header_with_bare_lf", test_folded_header_with_bare_lf },
    { "test_bare_lf_line_endings", test_bare_lf_line_endings },
    { "test_mixed_line_endings", test_mixed_line_endings },
    { "test_headers_in_any_order", test_headers_in_any_order },
    { "test_body_is_ignored", test_body_is_ignored },
    { "test_headers_found_only_in_body_are_missing", test_headers_found_only_in_body_are_missing },
    { "test_missing_final_empty_line_is_accepted", test_missing_final_empty_line_is_accepted },
    { "test_missing_call_id_is_no_call_id", test_missing_call_id_is_no_call_id },
    { "test_empty_call_id_is_no_call_id", test_empty_call_id_is_no_call_id },
    { "test_call_id_is_trimmed", test_call_id_is_trimmed },
    { "test_first_call_id_wins", test_first_call_id_wins },
    { "test_folded_call_id_has_lws_flag_and_single_space_form", test_folded_call_id_has_lws_flag_and_single_space_form },
    { "test_call_id_without_inner_lws_has_no_flag", test_call_id_without_inner_lws_has_no_flag },
    { "test_call_id_lws_found_at_every_position", test_call_id_lws_found_at_every_position },
    { "test_lws_pieces_drop_white_space_at_both_ends", test_lws_pieces_drop_white_space_at_both_ends },
    { "test_missing_cseq_is_no_cseq", test_missing_cseq_is_no_cseq },
    { "test_call_id_is_checked_before_cseq", test_call_id_is_checked_before_cseq },
    { "test_malformed_cseq_is_cseq_error", test_malformed_cseq_is_cseq_error },
    { "test_cseq_number_range", test_cseq_number_range },
    { "test_first_cseq_wins", test_first_cseq_wins },
    { "test_top_via_is_first_value_of_comma_list", test_top_via_is_first_value_of_comma_list },
    { "test_top_via_is_first_via_header", test_top_via_is_first_via_header },
    { "test_top_via_without_branch_ignores_later_values", test_top_via_without_branch_ignores_later_values },
    { "test_via_branch_among_other_params", test_via_branch_among_other_params },
    { "test_via_quoted_branch_value_is_unquoted", test_via_quoted_branch_value_is_unquoted },
    { "test_via_unterminated_quote_gives_no_branch", test_via_unterminated_quote_gives_no_branch },
    { "test_to_without_tag_has_no_flag", test_to_without_tag_has_no_flag },
    { "test_tag_inside_uri_is_not_a_header_tag", test_tag_inside_uri_is_not_a_header_tag },
    { "test_quoted_display_name_with_separators", test_quoted_display_name_with_separators },
    { "test_unquoted_display_name", test_unquoted_display_name },
    { "test_addr_spec_params_are_header_params", test_addr_spec_params_are_header_params },
    { "test_tag_param_name_is_case_insensitive", test_tag_param_name_is_case_insensitive },
    { "test_tag_among_other_params", test_tag_among_other_params },
    { "test_empty_tag_still_counts_as_present", test_empty_tag_still_counts_as_present },
    { "test_malformed_name_addr_gives_no_tag", test_malformed_name_addr_gives_no_tag },
    { "test_first_to_header_wins", test_first_to_header_wins },
    { "test_result_is_reset_between_scans", test_result_is_reset_between_scans },
    { "test_nul_bytes_do_not_end_the_scan", test_nul_bytes_do_not_end_the_scan },
    { "test_every_truncation_stays_in_bounds", test_every_truncation_stays_in_bounds },
    { "test_kamailio_v3_vectors_match_manifest", test_kamailio_v3_vectors_match_manifest },
    { "test_kamailio_v2_vectors_match_manifest", test_kamailio_v2_vectors_match_manifest },
    { "test_kamailio_v1_vectors_match_manifest", test_kamailio_v1_vectors_match_manifest },
    { "test_kamailio_reply_top_via_matches_request_on_its_hop", test_kamailio_reply_top_via_matches_request_on_its_hop },
    { "test_kamailio_to_tags_follow_the_dialog", test_kamailio_to_tags_follow_the_dialog },
    { "test_header_walk_gives_names_and_values", test_header_walk_gives_names_and_values },
    { "test_header_walk_among_first_bytes", test_header_walk_among_first_bytes },
    { "test_uri_user_and_host", test_uri_user_and_host },
    { NULL, NULL }
};

int main(void)
{
    int rc = unit_run("sip", tests);
    free(scan_copy);
    return rc;
}
