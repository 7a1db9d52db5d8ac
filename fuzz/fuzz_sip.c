/*
 * fuzz_sip.c - libFuzzer harness for the SIP scanner.
 *
 * Feeds arbitrary bytes to sip_scan() and checks what the router relies on:
 * the status is a known one, every returned string lies inside the input,
 * flags agree with the start line, and SIP_OK always comes with a Call-ID.
 * Any violation aborts, so libFuzzer keeps the input as a crash.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *       fuzz/fuzz_sip.c src/sip.c -o fuzz_sip
 */
#include "sip.h"

#include <stdlib.h>

#define REPLY_CODE_MIN 100
#define REPLY_CODE_MAX 699

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
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

    if (rc == SIP_OK) {
        check(msg.call_id.len > 0);
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
