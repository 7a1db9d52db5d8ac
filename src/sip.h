/*
 * sip.h - SIP header scanner.
 *
 * sip_scan() reads just enough of a SIP message to route it: the start line,
 * Call-ID, CSeq, From/To tags and the top Via branch.  It does not allocate;
 * every string in struct sip_msg points into the scanned buffer.  The body is
 * never looked at.
 *
 * A header line the router does not need cannot fail the message: a line
 * without a colon or with a bad name is skipped and counted (skipped_lines),
 * so a message with good start line, Call-ID and CSeq is always SIP_OK.
 *
 * A Call-ID may carry folds or white space inside (the callid grammar has no
 * room for them; senders do it anyway).  Linear white space means one SP,
 * so SIP_F_CALL_ID_LWS marks such a Call-ID and sip_lws_next() walks its
 * canonical form without copying it, for a call key that does not depend on
 * how the sender folded it.
 */
#ifndef HEPROUTER_SIP_H
#define HEPROUTER_SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A length-carrying string pointing into the scanned buffer. */
struct sip_str {
    const char *ptr;
    size_t len;
};

/* Methods the router knows by name; anything else is SIP_METHOD_OTHER. */
enum sip_method {
    SIP_METHOD_NONE = 0,        /* not scanned / absent */
    SIP_METHOD_OTHER,
    SIP_METHOD_INVITE,
    SIP_METHOD_ACK,
    SIP_METHOD_BYE,
    SIP_METHOD_CANCEL,
    SIP_METHOD_REGISTER,
    SIP_METHOD_OPTIONS,
    SIP_METHOD_SUBSCRIBE,
    SIP_METHOD_NOTIFY,
    SIP_METHOD_PUBLISH,
    SIP_METHOD_MESSAGE,
    SIP_METHOD_INFO,
    SIP_METHOD_PRACK,
    SIP_METHOD_UPDATE,
    SIP_METHOD_REFER,
    SIP_METHOD_COUNT
};

enum sip_status {
    SIP_OK = 0,
    SIP_ERR_EMPTY,          /* zero-length input, or only CR/LF (keep-alive) */
    SIP_ERR_START_LINE,     /* start line is neither a request nor a status line */
    SIP_ERR_VERSION,        /* SIP version is not "SIP/2.0" */
    SIP_ERR_STATUS_CODE,    /* status code not three digits in 100..699 */
    SIP_ERR_HEADER,         /* no longer returned: bad header lines are skipped
                               and counted in sip_msg.skipped_lines.  Kept so
                               that the codes and the metric names keyed by
                               them ("bad_header") stay as they were */
    SIP_ERR_NO_CALL_ID,     /* no Call-ID / i: header, or an empty one */
    SIP_ERR_NO_CSEQ,        /* no CSeq header */
    SIP_ERR_CSEQ,           /* CSeq value is not "<number> <method>" or the
                               number does not fit in 32 bits */
    SIP_STATUS_COUNT
};

/* Message kind bits (sip_msg.flags). */
enum sip_flag {
    SIP_F_REQUEST = 1u << 0,
    SIP_F_REPLY = 1u << 1,
    SIP_F_ACK = 1u << 2,        /* request method is ACK (not set on replies) */
    SIP_F_CANCEL = 1u << 3,     /* request method is CANCEL (not set on replies) */
    SIP_F_TO_TAG = 1u << 4,     /* To header carries a tag parameter (its value
                                   may be empty if written ";tag=") */
    SIP_F_FROM_TAG = 1u << 5,   /* From header carries a tag parameter */
    SIP_F_VIA_BRANCH = 1u << 6, /* top Via value carries a branch parameter */
    SIP_F_CALL_ID_LWS = 1u << 7, /* call_id holds SP, HT, CR or LF inside (it is
                                    trimmed at both ends); key it by its
                                    canonical form, see sip_lws_next() */
};

struct sip_msg {
    unsigned flags;             /* enum sip_flag bits */
    enum sip_method method;     /* request method id (requests) */
    struct sip_str method_name; /* request method as written */
    struct sip_str uri;         /* request URI */
    unsigned status;            /* reply status code (replies) */
    struct sip_str reason;      /* reply reason phrase */
    struct sip_str call_id;
    uint32_t cseq;
    enum sip_method cseq_method;
    struct sip_str cseq_method_name;
    struct sip_str from;        /* the first From value (after the colon and white space); empty when absent */
    struct sip_str to;          /* the first To value */
    struct sip_str from_tag;    /* empty when absent */
    struct sip_str to_tag;      /* empty when absent; see SIP_F_TO_TAG */
    struct sip_str via_branch;  /* branch of the first Via, empty if absent */
    unsigned skipped_lines;     /* header lines skipped as malformed (no colon,
                                   bad name, or a folded line before the first
                                   header), each with its continuation lines */
};

/*
 * Scans buf[0..len) (not NUL-terminated).  Returns SIP_OK or an enum
 * sip_status error.  *msg is always reset first; on error it keeps what was
 * scanned before the failure.  The first Call-ID, CSeq, From, To and Via
 * header wins; the scan stops once it has all five (the header lines after
 * them are not read), else at the first empty line or at the end of the
 * buffer.  A header line without a colon or with a bad name, and a folded
 * line before the first header, is skipped together with its folded
 * continuation lines and counted once in msg->skipped_lines (among the
 * lines read).
 */
int sip_scan(const uint8_t *buf, size_t len, struct sip_msg *msg);

/*
 * The parameters sip_scan_for() looks for only when asked: a reader that
 * does not need a value does not pay for finding it.
 */
enum sip_want {
    SIP_WANT_FROM_TAG = 1u << 0,
    SIP_WANT_TO_TAG = 1u << 1,          /* in every message */
    SIP_WANT_REQUEST_TO_TAG = 1u << 2,  /* in requests only (is it an initial request?) */
    SIP_WANT_VIA_BRANCH = 1u << 3,
    SIP_WANT_ALL = SIP_WANT_FROM_TAG | SIP_WANT_TO_TAG | SIP_WANT_VIA_BRANCH,
};

/*
 * sip_scan() that looks for the tags and the Via branch only as want (enum
 * sip_want bits) asks; those not asked for are reported absent.  Everything
 * else, the status returned included, is as sip_scan() has it, which is
 * sip_scan_for(buf, len, SIP_WANT_ALL, msg).
 */
int sip_scan_for(const uint8_t *buf, size_t len, unsigned want, struct sip_msg *msg);

/*
 * The tag parameter of msg's first To value (msg->to), found as
 * sip_scan_for() finds it when asked for: for a reader that needs it of
 * few of the messages it scans.  True when there is one, its value (maybe
 * empty) in *tag.  msg must come from a scan that returned SIP_OK, and its
 * bytes must still be there.
 */
bool sip_to_tag(const struct sip_msg *msg, struct sip_str *tag);

/*
 * Walks the canonical form of a header value: s without leading and trailing
 * SP/HT/CR/LF, and with every run of them inside replaced by one SP (RFC 3261
 * 25.1: linear white space, folding included, has the semantics of SP).  Set *pos to 0,
 * then call until it returns false; each call stores the next piece in
 * *piece and advances *pos.  A piece is either a run of bytes of s or the
 * single SP of a static string; pieces are never empty and nothing is
 * allocated.  For "abc\r\n @host" the pieces are "abc", " ", "@host".
 */
bool sip_lws_next(const struct sip_str *s, size_t *pos, struct sip_str *piece);

/*
 * Walks the header lines of the message buf[0..len): set *pos to 0, then
 * call until it returns false (the empty line ending the headers, or the
 * end).  Each call gives the next header's name and its value, without
 * leading and trailing white space and with its continuation lines.  Lines
 * sip_scan() skips are skipped.  Nothing is allocated.
 */
bool sip_header_next(const uint8_t *buf, size_t len, size_t *pos, struct sip_str *name, struct sip_str *value);

#define SIP_HEADER_USER_AGENT "user-agent"    /* the header user_agent: keys read, lower case */

/* A set of bytes: the first bytes of the header names sip_header_next_among() stops at. */
#define SIP_BYTE_SET_WORDS 4
struct sip_byte_set {
    uint64_t bits[SIP_BYTE_SET_WORDS];
};

/* Adds c to the set in both cases. */
void sip_byte_set_add_nocase(struct sip_byte_set *set, unsigned char c);

/*
 * sip_header_next(), giving only the headers whose name begins with a byte
 * of set: the other lines are passed over at the cost of finding their
 * end, their names and values not parsed.
 */
bool sip_header_next_among(const uint8_t *buf, size_t len, size_t *pos, const struct sip_byte_set *set,
                           struct sip_str *name, struct sip_str *value);

/* Whether name is the header full (lower case; case-insensitive) or its one-letter compact form ('\0': none). */
bool sip_header_is(const struct sip_str *name, const char *full, char compact);

/*
 * The user and host of a From or To value ("Alice" <sip:alice@a.example>;tag=1)
 * or of a request URI (sip:alice@a.example:5060;transport=udp): user is
 * empty when the URI has none; host ends at a port, a parameter or a
 * header.  Either is empty when v holds no such URI.
 */
void sip_uri_user_host(struct sip_str v, struct sip_str *user, struct sip_str *host);

/* Maps a method name (case-sensitive, as RFC 3261 says) to its id. */
enum sip_method sip_method_from_name(const char *name, size_t len);

/* The canonical name of a method id ("INVITE"), or "" for NONE/OTHER. */
const char *sip_method_name(enum sip_method method);

/* A short, stable description of a status. */
const char *sip_strerror(int status);

/* A short, stable identifier of a status, for metrics ("no_call_id"). */
const char *sip_status_name(int status);

static inline bool sip_is_request(const struct sip_msg *m) { return (m->flags & SIP_F_REQUEST) != 0; }
static inline bool sip_is_reply(const struct sip_msg *m) { return (m->flags & SIP_F_REPLY) != 0; }

#endif
