/*
 * test_netaddr.c - unit tests for src/netaddr.c: socket addresses and their text.
 */
#include "conf.h"
#include "netaddr.h"
#include "unit.h"

#include <arpa/inet.h>
#include <sys/un.h>

/* A configured address made into a socket address and written back as text. */
static void assert_round_trip(const char *configured, const char *want_text, int want_family)
{
    struct conf_addr a;
    struct sockaddr_storage ss;
    char text[NETADDR_TEXT_MAX];
    CU_ASSERT_PTR_NULL_FATAL(conf_parse_addr(configured, &a));
    socklen_t len = netaddr_from_conf(&a, &ss);
    CU_ASSERT_EQUAL(ss.ss_family, want_family);
    CU_ASSERT_EQUAL(len, want_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    CU_ASSERT_EQUAL(netaddr_port((const struct sockaddr *)&ss), a.port);
    CU_ASSERT_STRING_EQUAL(netaddr_format((const struct sockaddr *)&ss, text, sizeof text), want_text);
}

static void test_configured_addresses_become_socket_addresses(void)
{
    assert_round_trip("udp:127.0.0.1:9060", "127.0.0.1:9060", AF_INET);
    assert_round_trip("tcp:0.0.0.0:0", "0.0.0.0:0", AF_INET);
    assert_round_trip("udp:[::1]:65535", "[::1]:65535", AF_INET6);
    assert_round_trip("tcp:[2001:db8::7]:5060", "[2001:db8::7]:5060", AF_INET6);
}

static void test_an_empty_address_has_no_socket_address(void)
{
    struct conf_addr a;
    struct sockaddr_storage ss;
    memset(&a, 0, sizeof a);
    CU_ASSERT_EQUAL(netaddr_from_conf(&a, &ss), 0);
}

static void test_the_longest_text_fits(void)
{
    struct sockaddr_in6 s6;
    char text[NETADDR_TEXT_MAX];
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(65535);
    CU_ASSERT_EQUAL_FATAL(inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &s6.sin6_addr), 1);
    netaddr_format((const struct sockaddr *)&s6, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void test_other_families_and_null_say_so(void)
{
    struct sockaddr_un su;
    char text[NETADDR_TEXT_MAX];
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    CU_ASSERT_STRING_EQUAL(netaddr_format((const struct sockaddr *)&su, text, sizeof text), "(family 1)");
    CU_ASSERT_EQUAL(netaddr_port((const struct sockaddr *)&su), 0);
    CU_ASSERT_STRING_EQUAL(netaddr_format(NULL, text, sizeof text), "-");
}

static void test_a_short_buffer_is_cut_not_overrun(void)
{
    struct sockaddr_in s4;
    char text[8];
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = htons(9060);
    s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    netaddr_format((const struct sockaddr *)&s4, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "127.0.0");
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "configured addresses become socket addresses", test_configured_addresses_become_socket_addresses },
        { "an empty address has no socket address", test_an_empty_address_has_no_socket_address },
        { "the longest text fits", test_the_longest_text_fits },
        { "other families and NULL say so", test_other_families_and_null_say_so },
        { "a short buffer is cut, not overrun", test_a_short_buffer_is_cut_not_overrun },
        { NULL, NULL },
    };
    return unit_run("netaddr", tests);
}
