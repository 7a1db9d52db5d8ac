/*
 * sip.c - SIP header scanner.
 *
 * One pass over the start line and the header block of a SIP message, just
 * enough to route it: request method or status code, Call-ID, CSeq, From/To
 * tags and the top Via branch.  Nothing is allocated and nothing is copied:
 * every string in struct sip_msg points into the caller's buffer, which is
 * not NUL-terminated and is never read outside [0, len).
 *
 * The scanner is strict where routing depends on it (start line, Call-ID,
 * CSeq) and lenient where real senders differ: bare LF line ends, whitespace
 * around colons, folded lines, a header block that runs to the end of the
 * buffer without the final empty line.  A malformed header line is skipped
 * and counted, never fatal: one bad line the router does not need must not
 * take the message out of its call.
 */
#include "sip.h"

#include "bytes.h"

#include <limits.h>
#include <string.h>

#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define LF_VECTOR_BYTES 16
#endif

/* Compared case-insensitively, so written in lower case. */
#define VERSION_TEXT        "sip/2.0"
#define VERSION_PREFIX      "sip/"
#define LITERAL_LEN(s)      (sizeof s - 1)

#define STATUS_CODE_DIGITS  3
#define STATUS_CODE_MIN     100
#define STATUS_CODE_MAX     699

#define PARAM_TAG           "tag"
#define PARAM_BRANCH        "branch"

/* Headers the scanner looks at; everything else is only checked for a name and a colon. */
enum header_id {
    HDR_OTHER = 0,
    HDR_CALL_ID,
    HDR_CSEQ,
    HDR_FROM,
    HDR_TO,
    HDR_VIA
};

/* What the header pass has found so far, and what it looks for. */
struct scan_state {
    unsigned want;              /* enum sip_want */
    bool seen_call_id;
    bool seen_cseq;
    bool seen_from;
    bool seen_to;
    bool seen_via;
};

/* Known methods with their lengths, so that matching never calls strlen. */
struct method_entry {
    const char *name;
    size_t len;
};
#define METHOD(id, text) [id] = { text, LITERAL_LEN(text) }
static const struct method_entry methods[SIP_METHOD_COUNT] = {
    METHOD(SIP_METHOD_NONE, ""),
    METHOD(SIP_METHOD_OTHER, ""),
    METHOD(SIP_METHOD_INVITE, "INVITE"),
    METHOD(SIP_METHOD_ACK, "ACK"),
    METHOD(SIP_METHOD_BYE, "BYE"),
    METHOD(SIP_METHOD_CANCEL, "CANCEL"),
    METHOD(SIP_METHOD_REGISTER, "REGISTER"),
    METHOD(SIP_METHOD_OPTIONS, "OPTIONS"),
    METHOD(SIP_METHOD_SUBSCRIBE, "SUBSCRIBE"),
    METHOD(SIP_METHOD_NOTIFY, "NOTIFY"),
    METHOD(SIP_METHOD_PUBLISH, "PUBLISH"),
    METHOD(SIP_METHOD_MESSAGE, "MESSAGE"),
    METHOD(SIP_METHOD_INFO, "INFO"),
    METHOD(SIP_METHOD_PRACK, "PRACK"),
    METHOD(SIP_METHOD_UPDATE, "UPDATE"),
    METHOD(SIP_METHOD_REFER, "REFER"),
};
#undef METHOD

static const struct {
    const char *name;               /* for metrics */
    const char *text;               /* for people */
} statuses[SIP_STATUS_COUNT] = {
    [SIP_OK] = { "ok", "ok" },
    [SIP_ERR_EMPTY] = { "empty", "empty message" },
    [SIP_ERR_START_LINE] = { "bad_start_line", "bad start line" },
    [SIP_ERR_VERSION] = { "bad_version", "unsupported SIP version" },
    [SIP_ERR_STATUS_CODE] = { "bad_status_code", "bad status code" },
    [SIP_ERR_HEADER] = { "bad_header", "malformed header line" },  /* not returned */
    [SIP_ERR_NO_CALL_ID] = { "no_call_id", "missing or empty Call-ID" },
    [SIP_ERR_NO_CSEQ] = { "no_cseq", "missing CSeq" },
    [SIP_ERR_CSEQ] = { "bad_cseq", "bad CSeq value" },
};

/*
 * RFC 3261 token characters: alphanumerics and - . ! % * _ + ` ' ~, as a
 * table of the 256 byte values made by the compiler (one load per byte).
 */
#define TOKEN(c)                                                                                  \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= '0' && (c) <= '9') ||  \
     (c) == '-' || (c) == '.' || (c) == '!' || (c) == '%' || (c) == '*' || (c) == '_' ||        \
     (c) == '+' || (c) == '`' || (c) == '\'' || (c) == '~')
#define TOKEN4(c)   TOKEN(c), TOKEN((c) + 1), TOKEN((c) + 2), TOKEN((c) + 3)
#define TOKEN16(c)  TOKEN4(c), TOKEN4((c) + 4), TOKEN4((c) + 8), TOKEN4((c) + 12)
#define TOKEN64(c)  TOKEN16(c), TOKEN16((c) + 16), TOKEN16((c) + 32), TOKEN16((c) + 48)

static const bool token_chars[UCHAR_MAX + 1] = { TOKEN64(0), TOKEN64(64), TOKEN64(128), TOKEN64(192) };

static bool is_token_char(unsigned char c)
{
    return token_chars[c];
}

static bool is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Linear white space inside a (possibly folded) header value. */
static bool is_lws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/*
 * True when [p, end) holds a byte <= SP.  SP, HT, CR and LF all are, and no
 * character a Call-ID may have is, so a false answer rules white space out
 * at eight bytes a step (the test for a zero byte in a word, shifted to SP).
 */
#define SWAR_ONES UINT64_C(0x0101010101010101)
#define SWAR_HIGHS UINT64_C(0x8080808080808080)

/* Nonzero when a byte of w is <= SP (the lowest flagged byte is exact). */
static uint64_t bytes_upto_space(uint64_t w)
{
    return (w - SWAR_ONES * ((uint64_t)' ' + 1)) & ~w & SWAR_HIGHS;
}

static bool has_byte_upto_space(const char *p, const char *end)
{
    uint64_t w;
    for (; end - p >= (ptrdiff_t)sizeof w; p += sizeof w) {
        memcpy(&w, p, sizeof w);
        if (bytes_upto_space(w))
            return true;
    }
    for (; p < end; p++)
        if ((unsigned char)*p <= ' ')
            return true;
    return false;
}

/*
 * The high bit of the bytes of w equal to c.  A byte above a true match may
 * be flagged too (the borrow runs on), never one below: the lowest flag is
 * exact.
 */
static uint64_t bytes_equal(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (SWAR_ONES * c);
    return (x - SWAR_ONES) & ~x & SWAR_HIGHS;
}

/* The first byte of [p, end) that is a, b or c, else end: eight bytes a step where words load little-endian. */
static const char *find_any3(const char *p, const char *end, char a, char b, char c)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    for (; end - p >= (ptrdiff_t)sizeof w; p += sizeof w) {
        memcpy(&w, p, sizeof w);
        uint64_t m = bytes_equal(w, (unsigned char)a) | bytes_equal(w, (unsigned char)b) |
                     bytes_equal(w, (unsigned char)c);
        if (m != 0)
            return p + (unsigned)__builtin_ctzll(m) / CHAR_BIT;
    }
#endif
    for (; p < end; p++)
        if (*p == a || *p == b || *p == c)
            return p;
    return end;
}

/*
 * Where an unquoted parameter value that starts at p stops: the first LWS
 * byte, ';' or ',' of [p, end), else end.  Eight bytes a step: a word is
 * looked at closely only when it holds a byte <= SP (LWS, or another
 * control byte, which belongs to the value), ';' or ','.
 */
static const char *value_stop(const char *p, const char *end)
{
    uint64_t w;
    for (; end - p >= (ptrdiff_t)sizeof w; p += sizeof w) {
        memcpy(&w, p, sizeof w);
        if (bytes_upto_space(w) | bytes_equal(w, ';') | bytes_equal(w, ','))
            break;
    }
    for (; p < end; p++)
        if (is_lws((unsigned char)*p) || *p == ';' || *p == ',')
            return p;
    return end;
}

/*
 * w with the bytes A-Z made lower case, eight at a time; every byte of w
 * is below 0x80.  A byte's high bit is set by adding 0x80 - 'A' when it is
 * 'A' or more, by adding 0x80 - 'Z' - 1 when it is more than 'Z' (no
 * carry leaves a byte below 0x80); both tests together pick the capitals,
 * whose high bit, moved to 0x20, lowers them.
 */
#define SWAR_CASE_SHIFT 2               /* 0x80 >> 2 == 0x20, the case bit */

static uint64_t swar_lower(uint64_t w)
{
    uint64_t ge_a = w + SWAR_ONES * (0x80 - 'A');
    uint64_t gt_z = w + SWAR_ONES * (0x80 - 'Z' - 1);
    return w | ((ge_a & ~gt_z & SWAR_HIGHS) >> SWAR_CASE_SHIFT);
}

/* Four to eight bytes as one word: the first four and the last four, overlapping when fewer than eight. */
static uint64_t load_4to8(const char *p, size_t len)
{
    const uint8_t *b = (const uint8_t *)p;
    return bytes_get_le32(b) | (uint64_t)bytes_get_le32(b + len - sizeof(uint32_t)) << 32;
}

/*
 * True when p[0..len) equals the lower-case ASCII text s[0..slen),
 * ignoring the case of p.  Eight bytes a step, and four to eight in one;
 * a byte of p at 0x80 or above equals nothing in s.
 */
static inline bool equal_nocase(const char *p, size_t len, const char *s, size_t slen)
{
    if (len != slen)
        return false;
    size_t i = 0;
    for (; len - i >= sizeof(uint64_t); i += sizeof(uint64_t)) {
        uint64_t w = bytes_get_le64((const uint8_t *)p + i);
        if ((w & SWAR_HIGHS) || swar_lower(w) != bytes_get_le64((const uint8_t *)s + i))
            return false;
    }
    if (len - i >= sizeof(uint32_t)) {
        uint64_t w = load_4to8(p + i, len - i);
        return !(w & SWAR_HIGHS) && swar_lower(w) == load_4to8(s + i, len - i);
    }
    for (; i < len; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)s[i])
            return false;
    return true;
}

static const char *skip_lws(const char *p, const char *end)
{
    while (p < end && is_lws((unsigned char)*p))
        p++;
    return p;
}

static const char *skip_token(const char *p, const char *end)
{
    while (p < end && is_token_char((unsigned char)*p))
        p++;
    return p;
}

static struct sip_str make_str(const char *start, const char *stop)
{
    struct sip_str s = { start, (size_t)(stop - start) };
    return s;
}

/*
 * Skips a quoted-string whose opening quote is at p.  Returns the position
 * after the closing quote, or NULL when the string is not terminated before
 * end.  A backslash escapes the next character (quoted-pair).
 */
static const char *skip_quoted(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (end - p < 2)
                return NULL;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/*
 * Looks for the parameter `name` (lower case, matched case-insensitively) in
 * a ";name=value;..." list starting at p.  The list ends at end, at a comma
 * (the next value of a multi-value header such as Via) or at anything that
 * is not a parameter.  A quoted value is returned without its quotes; a
 * parameter without "=value" yields an empty value.
 */
static bool find_param(const char *p, const char *end, const char *name,
                       size_t name_len, struct sip_str *value)
{
    for (;;) {
        p = skip_lws(p, end);
        if (p >= end || *p != ';')
            return false;
        p = skip_lws(p + 1, end);
        const char *name_start = p;
        p = skip_token(p, end);
        const char *name_stop = p;
        const char *val_start = p, *val_stop = p;
        p = skip_lws(p, end);
        if (p < end && *p == '=') {
            p = skip_lws(p + 1, end);
            if (p < end && *p == '"') {
                const char *q = skip_quoted(p, end);
                if (q == NULL)
                    return false;
                val_start = p + 1;
                val_stop = q - 1;
                p = q;
            } else {
                val_start = p;
                p = value_stop(p, end);
                val_stop = p;
            }
        }
        if (equal_nocase(name_start, (size_t)(name_stop - name_start), name, name_len)) {
            *value = make_str(val_start, val_stop);
            return true;
        }
    }
}

/*
 * Finds the tag parameter of a From or To value.  In name-addr form the
 * header parameters follow the closing '>' (a "tag=" inside <...> belongs to
 * the URI and does not count).  In addr-spec form (no angle brackets) the URI
 * ends at the first ';' and what follows are header parameters (RFC 3261
 * section 20.10).
 */
static bool scan_tag(const char *p, const char *end, struct sip_str *tag)
{
    p = skip_lws(p, end);
    if (p < end && *p == '"') {
        p = skip_quoted(p, end);
        if (p == NULL)
            return false;
        p = skip_lws(p, end);
        if (p >= end || *p != '<')
            return false;
    } else {
        p = find_any3(p, end, '<', ';', ';');
    }
    if (p < end && *p == '<') {
        const char *close = memchr(p + 1, '>', (size_t)(end - p - 1));
        if (close == NULL)
            return false;
        p = close + 1;
    }
    return find_param(p, end, PARAM_TAG, LITERAL_LEN(PARAM_TAG), tag);
}

/*
 * Finds the branch of the first via-parm of a Via value.  sent-protocol and
 * sent-by hold neither ';' nor ',', so the first of those two ends them: a
 * comma first means the top via-parm has no parameters at all.
 */
static bool scan_via_branch(const char *p, const char *end, struct sip_str *branch)
{
    p = find_any3(p, end, ';', ',', ',');
    return find_param(p, end, PARAM_BRANCH, LITERAL_LEN(PARAM_BRANCH), branch);
}

/* CSeq = 1*DIGIT LWS Method; the number must fit in 32 bits. */
static int scan_cseq(const char *p, const char *end, struct sip_msg *msg)
{
    p = skip_lws(p, end);
    if (p >= end || !is_digit((unsigned char)*p))
        return SIP_ERR_CSEQ;
    uint64_t n = 0;
    for (; p < end && is_digit((unsigned char)*p); p++) {
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > UINT32_MAX)
            return SIP_ERR_CSEQ;
    }
    if (p >= end || !is_lws((unsigned char)*p))
        return SIP_ERR_CSEQ;
    p = skip_lws(p, end);
    const char *method = p;
    p = skip_token(p, end);
    if (p == method)
        return SIP_ERR_CSEQ;
    const char *method_end = p;
    if (skip_lws(p, end) != end)
        return SIP_ERR_CSEQ;
    msg->cseq = (uint32_t)n;
    msg->cseq_method_name = make_str(method, method_end);
    msg->cseq_method = sip_method_from_name(method, (size_t)(method_end - method));
    return SIP_OK;
}

#define COMPACT_NAME_LEN    1               /* "i", "f", "t", "v" */
#define NAME_IS(p, len, lit) equal_nocase((p), (len), (lit), LITERAL_LEN(lit))

/* The headers of interest, full and compact names (lower case), each once. */
#define KNOWN_HEADERS(X)                                                        \
    X("via", HDR_VIA) X("from", HDR_FROM) X("to", HDR_TO) X("call-id", HDR_CALL_ID) \
    X("cseq", HDR_CSEQ) X("v", HDR_VIA) X("f", HDR_FROM) X("t", HDR_TO) X("i", HDR_CALL_ID)

/* Identifies a header of interest by its whole name. */
static enum header_id header_id(const char *name, size_t len)
{
#define NAME_TO_ID(lit, id)                                                     \
    if (NAME_IS(name, len, lit))                                                \
        return id;
    KNOWN_HEADERS(NAME_TO_ID)
#undef NAME_TO_ID
    return HDR_OTHER;
}

/*
 * A lower-case name and a colon as one little-endian word (NAME_WORD), the
 * case bit of each of its letters (NAME_FOLD) and the bytes they cover
 * (NAME_MASK): constants, written out byte by byte from the literal.
 */
#define LIT_AT(lit, i)                                                          \
    ((i) < LITERAL_LEN(lit) ? (uint64_t)(unsigned char)(lit)[(i) < LITERAL_LEN(lit) ? (i) : 0] : 0)
#define LIT_BYTE(lit, i)    (((i) == LITERAL_LEN(lit) ? (uint64_t)':' : LIT_AT(lit, i)) << (CHAR_BIT * (i)))
#define LIT_CASE(lit, i)                                                        \
    (LIT_AT(lit, i) >= 'a' && LIT_AT(lit, i) <= 'z' ? (uint64_t)('a' - 'A') << (CHAR_BIT * (i)) : 0)
#define NAME_WORD(lit)                                                                          \
    (LIT_BYTE(lit, 0) | LIT_BYTE(lit, 1) | LIT_BYTE(lit, 2) | LIT_BYTE(lit, 3) | LIT_BYTE(lit, 4) | \
     LIT_BYTE(lit, 5) | LIT_BYTE(lit, 6) | LIT_BYTE(lit, 7))
#define NAME_FOLD(lit)                                                                          \
    (LIT_CASE(lit, 0) | LIT_CASE(lit, 1) | LIT_CASE(lit, 2) | LIT_CASE(lit, 3) | LIT_CASE(lit, 4) | \
     LIT_CASE(lit, 5) | LIT_CASE(lit, 6))
#define NAME_MASK(lit)                                                                          \
    (LITERAL_LEN(lit) + 1 >= sizeof(uint64_t) ? ~UINT64_C(0) : (UINT64_C(1) << (CHAR_BIT * (LITERAL_LEN(lit) + 1))) - 1)

_Static_assert(LITERAL_LEN("call-id:") == sizeof(uint64_t), "the longest name and its colon fit one word");

/*
 * The headers of interest as they are nearly always written: the name
 * right before its colon.  Reads the first word of the line [p, end) and,
 * when it starts so, sets *id and returns the position after the colon;
 * otherwise (another header, white space before the colon, a line shorter
 * than a word) returns NULL, and header_name() reads the line.
 */
static const char *known_header(const char *p, const char *end, enum header_id *id)
{
    if (end - p < (ptrdiff_t)sizeof(uint64_t))
        return NULL;
    uint64_t w = bytes_get_le64((const uint8_t *)p);
#define WORD_TO_ID(lit, hid)                                                    \
    if (((w | NAME_FOLD(lit)) & NAME_MASK(lit)) == NAME_WORD(lit)) {            \
        *id = hid;                                                              \
        return p + LITERAL_LEN(lit) + 1;                                        \
    }
    KNOWN_HEADERS(WORD_TO_ID)
#undef WORD_TO_ID
    return NULL;
}

/*
 * Reads the name of the logical header line [p, end) into *name.  Returns
 * the position after its colon, or NULL when the line does not start with a
 * token followed (after optional white space) by a colon: a line to skip.
 */
static const char *header_name(const char *p, const char *end, struct sip_str *name)
{
    const char *start = p;
    p = skip_token(p, end);
    if (p == start)
        return NULL;
    *name = make_str(start, p);
    p = skip_lws(p, end);
    if (p >= end || *p != ':')
        return NULL;
    return p + 1;
}

/* Stores the trimmed Call-ID value [p, end) and flags white space left inside. */
static void scan_call_id(const char *p, const char *end, struct sip_msg *msg)
{
    p = skip_lws(p, end);
    while (end > p && is_lws((unsigned char)end[-1]))
        end--;
    msg->call_id = make_str(p, end);
    if (!has_byte_upto_space(p, end))
        return;                         /* the common case, eight bytes a step */
    for (; p < end; p++) {
        if (is_lws((unsigned char)*p)) {
            msg->flags |= SIP_F_CALL_ID_LWS;
            break;
        }
    }
}

/*
 * Handles the value [p, end) of one logical header line, folded continuation
 * lines included.  Only the first occurrence of each header of interest
 * counts.
 */
static int scan_header(enum header_id id, const char *p, const char *end,
                       struct sip_msg *msg, struct scan_state *st)
{
    switch (id) {
    case HDR_CALL_ID:
        if (!st->seen_call_id) {
            st->seen_call_id = true;
            scan_call_id(p, end, msg);
        }
        break;
    case HDR_CSEQ:
        if (!st->seen_cseq) {
            st->seen_cseq = true;
            int rc = scan_cseq(p, end, msg);
            if (rc != SIP_OK)
                return rc;
        }
        break;
    case HDR_FROM:
        if (!st->seen_from) {
            st->seen_from = true;
            msg->from = make_str(skip_lws(p, end), end);
            if ((st->want & SIP_WANT_FROM_TAG) && scan_tag(p, end, &msg->from_tag))
                msg->flags |= SIP_F_FROM_TAG;
        }
        break;
    case HDR_TO:
        if (!st->seen_to) {
            st->seen_to = true;
            msg->to = make_str(skip_lws(p, end), end);
            bool want = (st->want & SIP_WANT_TO_TAG) ||
                        ((st->want & SIP_WANT_REQUEST_TO_TAG) && (msg->flags & SIP_F_REQUEST));
            if (want && scan_tag(p, end, &msg->to_tag))
                msg->flags |= SIP_F_TO_TAG;
        }
        break;
    case HDR_VIA:
        if (!st->seen_via) {
            st->seen_via = true;
            if ((st->want & SIP_WANT_VIA_BRANCH) && scan_via_branch(p, end, &msg->via_branch))
                msg->flags |= SIP_F_VIA_BRANCH;
        }
        break;
    case HDR_OTHER:
        break;
    }
    return SIP_OK;
}

/* True when [p, end) starts with "SIP/", in any case. */
static bool has_sip_prefix(const char *p, const char *end)
{
    size_t n = LITERAL_LEN(VERSION_PREFIX);
    return (size_t)(end - p) >= n && equal_nocase(p, n, VERSION_PREFIX, n);
}

/* "SIP/2.0"; the version string is case-insensitive (RFC 3261 7.1). */
static bool is_sip_version(const char *p, size_t len)
{
    return equal_nocase(p, len, VERSION_TEXT, LITERAL_LEN(VERSION_TEXT));
}

/* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
static int scan_status_line(const char *p, const char *end, struct sip_msg *msg)
{
    const char *version = p;
    while (p < end && *p != ' ')
        p++;
    if (!is_sip_version(version, (size_t)(p - version)))
        return SIP_ERR_VERSION;
    if (p < end)
        p++;
    unsigned code = 0;
    for (int i = 0; i < STATUS_CODE_DIGITS; i++, p++) {
        if (p >= end || !is_digit((unsigned char)*p))
            return SIP_ERR_STATUS_CODE;
        code = code * 10 + (unsigned)(*p - '0');
    }
    if (p < end && *p != ' ')
        return SIP_ERR_STATUS_CODE;
    if (code < STATUS_CODE_MIN || code > STATUS_CODE_MAX)
        return SIP_ERR_STATUS_CODE;
    if (p < end)
        p++;
    msg->flags |= SIP_F_REPLY;
    msg->status = code;
    msg->reason = make_str(p, end);
    return SIP_OK;
}

/* Request-Line = Method SP Request-URI SP SIP-Version */
static int scan_request_line(const char *p, const char *end, struct sip_msg *msg)
{
    const char *method = p;
    p = skip_token(p, end);
    const char *method_end = p;
    if (p == method || p >= end || *p != ' ')
        return SIP_ERR_START_LINE;
    const char *uri = ++p;
    p = find_any3(p, end, ' ', '\t', '\t');
    const char *uri_end = p;
    if (p == uri || p >= end || *p != ' ')
        return SIP_ERR_START_LINE;
    p++;
    if (memchr(p, ' ', (size_t)(end - p)) != NULL || !has_sip_prefix(p, end))
        return SIP_ERR_START_LINE;
    if (!is_sip_version(p, (size_t)(end - p)))
        return SIP_ERR_VERSION;

    msg->method_name = make_str(method, method_end);
    msg->method = sip_method_from_name(method, (size_t)(method_end - method));
    msg->uri = make_str(uri, uri_end);
    msg->flags |= SIP_F_REQUEST;
    if (msg->method == SIP_METHOD_ACK)
        msg->flags |= SIP_F_ACK;
    else if (msg->method == SIP_METHOD_CANCEL)
        msg->flags |= SIP_F_CANCEL;
    return SIP_OK;
}

/*
 * The first LF of [p, end), else end.  Where SSE2 is there (every x86-64
 * build) sixteen bytes are compared at a time inline: a header line is a
 * few dozen bytes, and a call to memchr() per line cost more than the
 * search itself (perf: memchr() was 6 % of the user-space samples, the
 * loop inline adds none to the scan's).  The last bytes, fewer than
 * sixteen, and other machines: memchr().  Nothing at or after end is read.
 */
static const char *find_lf(const char *p, const char *end)
{
#ifdef LF_VECTOR_BYTES
    const __m128i lf = _mm_set1_epi8('\n');
    for (; end - p >= LF_VECTOR_BYTES; p += LF_VECTOR_BYTES) {
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), lf));
        if (m != 0)
            return p + __builtin_ctz(m);
    }
#endif
    const char *q = memchr(p, '\n', (size_t)(end - p));
    return q != NULL ? q : end;
}

/*
 * Returns the end of the line starting at p (the position of its LF, or end)
 * and stores in *content_end where its content stops (before a CR+LF).
 */
static const char *line_end(const char *p, const char *end, const char **content_end)
{
    const char *stop = find_lf(p, end);
    *content_end = (stop > p && stop[-1] == '\r') ? stop - 1 : stop;
    return stop;
}

bool sip_to_tag(const struct sip_msg *msg, struct sip_str *tag)
{
    *tag = make_str(NULL, NULL);
    return msg->to.ptr != NULL && scan_tag(msg->to.ptr, msg->to.ptr + msg->to.len, tag);
}

int sip_scan(const uint8_t *buf, size_t len, struct sip_msg *msg)
{
    return sip_scan_for(buf, len, SIP_WANT_ALL, msg);
}

int sip_scan_for(const uint8_t *buf, size_t len, unsigned want, struct sip_msg *msg)
{
    memset(msg, 0, sizeof *msg);
    if (buf == NULL || len == 0)
        return SIP_ERR_EMPTY;

    const char *p = (const char *)buf;
    const char *end = p + len;

    /* RFC 3261 7.5: CRLFs before the start line are ignored (keep-alives). */
    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    if (p == end)
        return SIP_ERR_EMPTY;

    const char *content_end;
    const char *eol = line_end(p, end, &content_end);
    while (content_end > p && is_wsp((unsigned char)content_end[-1]))
        content_end--;
    int rc = has_sip_prefix(p, content_end)
        ? scan_status_line(p, content_end, msg)
        : scan_request_line(p, content_end, msg);
    if (rc != SIP_OK)
        return rc;

    /*
     * Headers, up to the first empty line or the end of the buffer.  A line
     * that starts with white space continues the one before; before the
     * first header there is none, so it is skipped like a line without a
     * name or colon, together with its own continuation lines.
     */
    struct scan_state st = { .want = want };
    p = eol < end ? eol + 1 : end;
    while (p < end) {
        eol = line_end(p, end, &content_end);
        if (content_end == p)
            break;
        bool orphan = is_wsp((unsigned char)*p);
        const char *next = eol < end ? eol + 1 : end;
        while (next < end && is_wsp((unsigned char)*next)) {
            eol = line_end(next, end, &content_end);
            next = eol < end ? eol + 1 : end;
        }
        enum header_id id = HDR_OTHER;
        const char *value = orphan ? NULL : known_header(p, content_end, &id);
        if (value == NULL && !orphan) {
            struct sip_str name;
            value = header_name(p, content_end, &name);
            if (value != NULL)
                id = header_id(name.ptr, name.len);
        }
        if (value == NULL) {
            msg->skipped_lines++;
        } else {
            rc = scan_header(id, value, content_end, msg, &st);
            if (rc != SIP_OK)
                return rc;
            if (st.seen_call_id && st.seen_cseq && st.seen_from && st.seen_to && st.seen_via)
                break;                  /* nothing further is read */
        }
        p = next;
    }

    if (msg->call_id.len == 0)
        return SIP_ERR_NO_CALL_ID;
    if (!st.seen_cseq)
        return SIP_ERR_NO_CSEQ;
    return SIP_OK;
}

#define BYTE_SET_WORD_BITS 64u

static bool byte_set_has(const struct sip_byte_set *set, unsigned char c)
{
    return (set->bits[c / BYTE_SET_WORD_BITS] >> (c % BYTE_SET_WORD_BITS)) & 1u;
}

void sip_byte_set_add_nocase(struct sip_byte_set *set, unsigned char c)
{
    unsigned char low = lower(c);
    unsigned char both[] = { low, low >= 'a' && low <= 'z' ? (unsigned char)(low - 'a' + 'A') : low };
    for (size_t i = 0; i < sizeof both; i++)
        set->bits[both[i] / BYTE_SET_WORD_BITS] |= UINT64_C(1) << (both[i] % BYTE_SET_WORD_BITS);
}

/* The walk of sip_header_next(); set NULL: every header. */
static bool header_walk(const uint8_t *buf, size_t len, size_t *pos, const struct sip_byte_set *set,
                        struct sip_str *name, struct sip_str *value)
{
    const char *start = (const char *)buf, *end = start + len;
    const char *p = start + *pos, *content_end;
    if (buf == NULL || *pos > len)
        return false;
    if (*pos == 0) {
        /* the start line, after any CRLFs before it */
        while (p < end && (*p == '\r' || *p == '\n'))
            p++;
        const char *eol = line_end(p, end, &content_end);
        p = eol < end ? eol + 1 : end;
    }
    while (p < end) {
        unsigned char first = (unsigned char)*p;
        if (set != NULL && first != '\r' && first != '\n' && !byte_set_has(set, first)) {
            /* a line not asked for, or a continuation of one (SP and HT start no name): passed over */
            const char *lf = find_lf(p, end);
            p = lf < end ? lf + 1 : end;
            continue;
        }
        const char *eol = line_end(p, end, &content_end);
        if (content_end == p) {
            *pos = len;             /* the empty line: no more headers */
            return false;
        }
        bool orphan = is_wsp((unsigned char)*p);
        const char *next = eol < end ? eol + 1 : end;
        while (next < end && is_wsp((unsigned char)*next)) {
            eol = line_end(next, end, &content_end);
            next = eol < end ? eol + 1 : end;
        }
        const char *v = orphan ? NULL : header_name(p, content_end, name);
        p = next;
        if (v == NULL)
            continue;
        v = skip_lws(v, content_end);
        const char *stop = content_end;
        while (stop > v && is_lws((unsigned char)stop[-1]))
            stop--;
        *value = make_str(v, stop);
        *pos = (size_t)(p - start);
        return true;
    }
    *pos = len;
    return false;
}

bool sip_header_next(const uint8_t *buf, size_t len, size_t *pos, struct sip_str *name, struct sip_str *value)
{
    return header_walk(buf, len, pos, NULL, name, value);
}

bool sip_header_next_among(const uint8_t *buf, size_t len, size_t *pos, const struct sip_byte_set *set,
                           struct sip_str *name, struct sip_str *value)
{
    return header_walk(buf, len, pos, set, name, value);
}

bool sip_header_is(const struct sip_str *name, const char *full, char compact)
{
    if (compact != '\0' && name->len == COMPACT_NAME_LEN && lower((unsigned char)name->ptr[0]) == compact)
        return true;
    return equal_nocase(name->ptr, name->len, full, strlen(full));
}

void sip_uri_user_host(struct sip_str v, struct sip_str *user, struct sip_str *host)
{
    const char *p = v.ptr, *end = v.ptr + v.len;
    *user = make_str(p, p);
    *host = make_str(p, p);
    if (v.len == 0)
        return;                     /* no such header (and no pointer to search) */
    p = skip_lws(p, end);
    /* name-addr: the URI is inside <...>, after an optional display name */
    if (p < end && *p == '"') {
        p = skip_quoted(p, end);
        if (p == NULL)
            return;
    }
    const char *lt = memchr(p, '<', (size_t)(end - p));
    if (lt != NULL) {
        const char *gt = memchr(lt + 1, '>', (size_t)(end - lt - 1));
        if (gt == NULL)
            return;
        p = lt + 1;
        end = gt;
    } else {
        /* addr-spec: header parameters start at the first ';' (RFC 3261 20.10) */
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (semi != NULL)
            end = semi;
    }
    /* the scheme ("sip:", "sips:", "tel:") */
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon == NULL)
        return;
    p = colon + 1;
    /* userinfo ends at the last '@' before any parameter or header: one pass finds both */
    const char *stop = p, *at = NULL;
    for (;;) {
        stop = find_any3(stop, end, ';', '?', '@');
        if (stop == end || *stop != '@')
            break;
        at = stop++;
    }
    if (at != NULL) {
        const char *u_end = memchr(p, ':', (size_t)(at - p));  /* user:password */
        *user = make_str(p, u_end != NULL ? u_end : at);
        p = at + 1;
    }
    const char *h = p;
    if (h < stop && *h == '[') {
        const char *rb = memchr(h, ']', (size_t)(stop - h));
        p = rb != NULL ? rb + 1 : stop;
    } else {
        const char *colon2 = memchr(p, ':', (size_t)(stop - p));    /* a port */
        p = colon2 != NULL ? colon2 : stop;
    }
    *host = make_str(h, p);
}

bool sip_lws_next(const struct sip_str *s, size_t *pos, struct sip_str *piece)
{
    static const char space[] = " ";
    size_t i = *pos;
    if (i < s->len && is_lws((unsigned char)s->ptr[i])) {
        size_t run = i;
        while (run < s->len && is_lws((unsigned char)s->ptr[run]))
            run++;
        bool inside = i > 0 && run < s->len;
        *pos = run;
        if (inside) {
            *piece = make_str(space, space + LITERAL_LEN(space));
            return true;
        }
        i = run;                        /* leading or trailing: not part of the value */
    }
    if (i >= s->len)
        return false;
    size_t stop = i;
    while (stop < s->len && !is_lws((unsigned char)s->ptr[stop]))
        stop++;
    *piece = make_str(s->ptr + i, s->ptr + stop);
    *pos = stop;
    return true;
}

/* m when name[0..len) is its name, else the other one of the two (SIP_METHOD_OTHER when there is none). */
static enum sip_method method_if(const char *name, size_t len, enum sip_method m, enum sip_method other)
{
    if (methods[m].len == len && bytes_same(methods[m].name, name, len))
        return m;
    if (other != SIP_METHOD_OTHER && methods[other].len == len && bytes_same(methods[other].name, name, len))
        return other;
    return SIP_METHOD_OTHER;
}

/*
 * The known methods by their first letter, at most two each, then one
 * comparison with the name (methods[], the only spelling of each): no walk
 * through the table.  The unit test sends every name of the table through.
 */
enum sip_method sip_method_from_name(const char *name, size_t len)
{
    if (name == NULL || len == 0)
        return SIP_METHOD_NONE;
    switch (name[0]) {
    case 'A': return method_if(name, len, SIP_METHOD_ACK, SIP_METHOD_OTHER);
    case 'B': return method_if(name, len, SIP_METHOD_BYE, SIP_METHOD_OTHER);
    case 'C': return method_if(name, len, SIP_METHOD_CANCEL, SIP_METHOD_OTHER);
    case 'I': return method_if(name, len, SIP_METHOD_INVITE, SIP_METHOD_INFO);
    case 'M': return method_if(name, len, SIP_METHOD_MESSAGE, SIP_METHOD_OTHER);
    case 'N': return method_if(name, len, SIP_METHOD_NOTIFY, SIP_METHOD_OTHER);
    case 'O': return method_if(name, len, SIP_METHOD_OPTIONS, SIP_METHOD_OTHER);
    case 'P': return method_if(name, len, SIP_METHOD_PUBLISH, SIP_METHOD_PRACK);
    case 'R': return method_if(name, len, SIP_METHOD_REGISTER, SIP_METHOD_REFER);
    case 'S': return method_if(name, len, SIP_METHOD_SUBSCRIBE, SIP_METHOD_OTHER);
    case 'U': return method_if(name, len, SIP_METHOD_UPDATE, SIP_METHOD_OTHER);
    default: return SIP_METHOD_OTHER;
    }
}

const char *sip_method_name(enum sip_method method)
{
    if ((int)method < 0 || method >= SIP_METHOD_COUNT)
        return "";
    return methods[method].name;
}

const char *sip_strerror(int status)
{
    if (status < 0 || status >= SIP_STATUS_COUNT)
        return "unknown status";
    return statuses[status].text;
}

const char *sip_status_name(int status)
{
    if (status < 0 || status >= SIP_STATUS_COUNT)
        return "unknown";
    return statuses[status].name;
}
