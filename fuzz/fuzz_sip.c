/*
 * fuzz_sip.c - libFuzzer harness for the SIP scanner.
 *
 * Feeds arbitrary bytes to sip_scan() and checks what the router relies on:
 * the status is a known one, every returned string lies inside the input,
 * flags agree with the start line, SIP_OK always comes with a Call-ID, and
 * no more header lines are skipped than the input has.  The Call-ID's
 * canonical form, as sip_lws_next() walks it for the call key, is checked
 * piece by piece against a plain reimplementation.  Any violation aborts,
 * so libFuzzer keeps the input as a crash.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *       fuzz/fuzz_sip.c src/sip.c -o fuzz_sip
 */
#include "sip.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#define REPLY_CODE_MIN 100
#define REPLY_CODE_MAX 699

static void check(int ok)
{
    if (!ok)
        abort();
}

static bool is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Lines of the input: LF-terminated ones, and an unterminated last one. */
static size_t count_lines(const uint8_t *data, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n + (size > 0 && data[size - 1] != '\n');
}

static void check_inside(struct sip_str s, const uint8_t *data, size_t size)
{
    if (s.len == 0)
        return;
    const char *lo = (const char *)data;
    check(s.ptr != NULL);
    check(s.len <= size);
    check(s.ptr >= lo && s.ptr <= lo + (size - s.len));
}

/*
 * The Call-ID as the router keys it: sip_lws_next() pieces are non-empty,
 * lie inside the Call-ID or are the one static SP, the walk ends within
 * len + 1 pieces, and their concatenation is the canonical form (no SP at
 * either end, none doubled, no HT/CR/LF), built here independently.  The
 * LWS flag is set exactly when the trimmed Call-ID has white space inside.
 */
static void check_call_id(const struct sip_msg *msg)
{
    const struct sip_str *id = &msg->call_id;
    size_t lo = 0, hi = id->len;
    while (lo < hi && is_lws(id->ptr[lo]))
        lo++;
    while (hi > lo && is_lws(id->ptr[hi - 1]))
        hi--;
    /* the scanner stores it trimmed */
    check(lo == 0 && hi == id->len);

    bool has_lws = false;
    for (size_t i = lo; i < hi; i++)
        has_lws = has_lws || is_lws(id->ptr[i]);
    check(!!(msg->flags & SIP_F_CALL_ID_LWS) == has_lws);

    char *want = malloc(id->len + 1);
    char *got = malloc(id->len + 1);
    check(want != NULL && got != NULL);
    size_t nwant = 0;
    for (size_t i = lo; i < hi; i++) {
        if (!is_lws(id->ptr[i]))
            want[nwant++] = id->ptr[i];
        else if (!is_lws(id->ptr[i - 1]))
            want[nwant++] = ' ';
    }

    const char *space = NULL;
    struct sip_str piece;
    size_t pos = 0, npieces = 0, ngot = 0, last_pos = 0;
    while (sip_lws_next(id, &pos, &piece)) {
        check(++npieces <= id->len + 1);
        check(pos > last_pos && pos <= id->len);
        last_pos = pos;
        check(piece.len > 0 && piece.ptr != NULL);
        const char *base = id->ptr;
        bool inside = piece.ptr >= base && piece.len <= id->len &&
                      piece.ptr <= base + (id->len - piece.len);
        if (!inside) {
            check(piece.len == 1 && piece.ptr[0] == ' ');
            check(space == NULL || space == piece.ptr);
            space = piece.ptr;
        }
        check(ngot + piece.len <= id->len);
        memcpy(got + ngot, piece.ptr, piece.len);
        ngot += piece.len;
    }
    /* done stays done */
    check(!sip_lws_next(id, &pos, &piece));

    check(ngot == nwant && memcmp(got, want, ngot) == 0);
    if (ngot > 0)
        check(got[0] != ' ' && got[ngot - 1] != ' ');
    for (size_t i = 0; i < ngot; i++) {
        check(got[i] != '\t' && got[i] != '\r' && got[i] != '\n');
        check(i == 0 || got[i] != ' ' || got[i - 1] != ' ');
    }
    /* without white space inside, the canonical form is the Call-ID itself */
    if (!has_lws)
        check(npieces == 1 && ngot == id->len);
    free(want);
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sip_msg msg;
    int rc = sip_scan(data, size, &msg);
    check(rc >= SIP_OK && rc < SIP_STATUS_COUNT);
    check(sip_strerror(rc)[0] != '\0');

    const struct sip_str all[] = {
        msg.method_name, msg.uri, msg.reason, msg.call_id,
        msg.cseq_method_name, msg.from_tag, msg.to_tag, msg.via_branch,
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        check_inside(all[i], data, size);

    /* A message is a request or a reply, never both. */
    check(!(sip_is_request(&msg) && sip_is_reply(&msg)));
    if (msg.flags & (SIP_F_ACK | SIP_F_CANCEL))
        check(sip_is_request(&msg));
    /* A value is only reported with its presence flag. */
    if (!(msg.flags & SIP_F_TO_TAG))
        check(msg.to_tag.len == 0);
    if (!(msg.flags & SIP_F_FROM_TAG))
        check(msg.from_tag.len == 0);
    if (!(msg.flags & SIP_F_VIA_BRANCH))
        check(msg.via_branch.len == 0);
    /* Asked for fewer parameters, the scan finds the same message, those parameters absent. */
    static const unsigned wants[] = { 0, SIP_WANT_REQUEST_TO_TAG, SIP_WANT_REQUEST_TO_TAG | SIP_WANT_VIA_BRANCH };
    for (size_t i = 0; i < sizeof wants / sizeof wants[0]; i++) {
        struct sip_msg part;
        check(sip_scan_for(data, size, wants[i], &part) == rc);
        unsigned params = SIP_F_FROM_TAG | SIP_F_TO_TAG | SIP_F_VIA_BRANCH;
        check((part.flags & ~params) == (msg.flags & ~params));
        check(part.call_id.ptr == msg.call_id.ptr && part.call_id.len == msg.call_id.len);
        check(part.cseq == msg.cseq && part.cseq_method == msg.cseq_method && part.status == msg.status);
        check(part.method == msg.method && part.skipped_lines == msg.skipped_lines);
        check(part.from.len == msg.from.len && part.to.len == msg.to.len);
        check(!(part.flags & SIP_F_FROM_TAG) && part.from_tag.len == 0);
        bool to_tag = (wants[i] & SIP_WANT_REQUEST_TO_TAG) && sip_is_request(&msg);
        check((part.flags & SIP_F_TO_TAG) == (to_tag ? (msg.flags & SIP_F_TO_TAG) : 0u));
        check((part.flags & SIP_F_VIA_BRANCH) ==
              ((wants[i] & SIP_WANT_VIA_BRANCH) ? (msg.flags & SIP_F_VIA_BRANCH) : 0u));
    }
    /* Header lines are skipped, never failed; each is at least one line. */
    check(rc != SIP_ERR_HEADER);
    size_t lines = count_lines(data, size);
    check(msg.skipped_lines <= lines);

    if (rc == SIP_OK) {
        check(msg.call_id.len > 0);
        /* the start line, Call-ID and CSeq are lines that were not skipped */
        check(msg.skipped_lines + 3 <= lines);
        check_call_id(&msg);
        check(sip_is_request(&msg) || sip_is_reply(&msg));
        check(msg.cseq_method_name.len > 0);
        check(msg.cseq_method == sip_method_from_name(msg.cseq_method_name.ptr,
                                                      msg.cseq_method_name.len));
        if (sip_is_reply(&msg)) {
            check(msg.status >= REPLY_CODE_MIN && msg.status <= REPLY_CODE_MAX);
        } else {
            check(msg.method_name.len > 0 && msg.uri.len > 0);
            check(msg.method == sip_method_from_name(msg.method_name.ptr,
                                                     msg.method_name.len));
        }
    }
    return 0;
}
