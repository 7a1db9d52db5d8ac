/*
 * test_policy.c - unit tests for src/policy.c: first match wins, every match
 * key, ANDed keys, and the default list.  The routes are built by hand so
 * the tests do not depend on the YAML loader.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf.h"
#include "hep.h"
#include "pattern.h"
#include "policy.h"
#include "unit.h"

static struct conf conf;
static struct conf_route routes[8];
static size_t to_a[] = { 0 }, to_b[] = { 1 }, to_ab[] = { 0, 1 }, to_default[] = { 1 };

static struct conf_cidr cidr(const char *text)
{
    struct conf_cidr c;
    memset(&c, 0, sizeof c);
    char ip[64];
    snprintf(ip, sizeof ip, "%s", text);
    char *slash = strchr(ip, '/');
    *slash = '\0';
    c.prefix = (unsigned)atoi(slash + 1);
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    c.addr_len = family == AF_INET6 ? 16 : 4;
    inet_pton(family, ip, c.addr);
    return c;
}

static void reset_routes(void)
{
    memset(&conf, 0, sizeof conf);
    memset(routes, 0, sizeof routes);
    conf.routes = routes;
    conf.default_to = to_default;
    conf.ndefault_to = 1;
}

static struct policy_input sip_input(const char *method)
{
    struct policy_input in;
    memset(&in, 0, sizeof in);
    in.method = method;
    in.method_len = method ? strlen(method) : 0;
    in.proto = HEP_PROTO_SIP;
    return in;
}

static char *invite_register[] = { "INVITE", "SUBSCRIBE" };
static char *reg_options[] = { "REGISTER", "OPTIONS" };

static void test_first_match_wins(void)
{
    reset_routes();
    routes[0] = (struct conf_route){ .name = "calls", .match = { .methods = invite_register, .nmethods = 2 },
                                     .to = to_ab, .nto = 2 };
    routes[1] = (struct conf_route){ .name = "any", .to = to_a, .nto = 1 };
    conf.nroutes = 2;
    struct policy_input in = sip_input("INVITE");
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    in = sip_input("SUBSCRIBE");
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    in = sip_input("REGISTER");
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 1);
    const size_t *to;
    size_t nto;
    policy_destinations(&conf, 0, &to, &nto);
    CU_ASSERT_EQUAL(nto, 2);
    CU_ASSERT_PTR_EQUAL(to, to_ab);
    CU_ASSERT_STRING_EQUAL(policy_route_name(&conf, 0), "calls");
}

static void test_no_match_gives_default(void)
{
    reset_routes();
    routes[0] = (struct conf_route){ .name = "r", .match = { .methods = reg_options, .nmethods = 2 },
                                     .to = to_a, .nto = 1 };
    conf.nroutes = 1;
    struct policy_input in = sip_input("INVITE");
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    const size_t *to;
    size_t nto;
    policy_destinations(&conf, POLICY_DEFAULT, &to, &nto);
    CU_ASSERT_PTR_EQUAL(to, to_default);
    CU_ASSERT_EQUAL(nto, 1);
    CU_ASSERT_STRING_EQUAL(policy_route_name(&conf, POLICY_DEFAULT), "default");
}

/*
 * A route index the policy never gave is a bug: a debug build (the
 * sanitizer build of the tests) aborts on it, a normal one falls back to
 * the default list rather than read out of bounds.
 */
static void test_route_index_out_of_range_is_an_invariant(void)
{
    reset_routes();
    conf.nroutes = 0;
    const size_t *to = NULL;
    size_t nto = 0;
#ifdef HEPROUTER_DEBUG
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        policy_destinations(&conf, 1, &to, &nto);
        _exit(0);
    }
    int status = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#else
    policy_destinations(&conf, 1, &to, &nto);
    CU_ASSERT_PTR_EQUAL(to, to_default);
    CU_ASSERT_EQUAL(nto, 1);
#endif
}

static void test_method_is_case_sensitive_and_exact(void)
{
    reset_routes();
    routes[0] = (struct conf_route){ .name = "r", .match = { .methods = invite_register, .nmethods = 2 },
                                     .to = to_a, .nto = 1 };
    conf.nroutes = 1;
    const char *others[] = { "invite", "INVITEX", "INVIT", "" };
    for (size_t i = 0; i < 4; i++) {
        struct policy_input in = sip_input(others[i]);
        CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    }
    /* a packet with no known call method never matches a method list */
    struct policy_input in = sip_input(NULL);
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
}

static void test_proto_and_capture_id(void)
{
    unsigned protos[] = { HEP_PROTO_RTCP, HEP_PROTO_LOG };
    uint32_t ids[] = { 2001 };
    reset_routes();
    routes[0] = (struct conf_route){ .name = "rtcp", .match = { .protos = protos, .nprotos = 2 },
                                     .to = to_a, .nto = 1 };
    routes[1] = (struct conf_route){ .name = "node", .match = { .capture_ids = ids, .ncapture_ids = 1 },
                                     .to = to_b, .nto = 1 };
    conf.nroutes = 2;
    struct policy_input in = sip_input("INVITE");
    in.proto = HEP_PROTO_RTCP;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    in.proto = HEP_PROTO_SIP;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    in.has_capture_id = true;
    in.capture_id = 2001;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 1);
    in.capture_id = 2002;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    /* absent capture id never matches a capture_id list */
    in.has_capture_id = false;
    in.capture_id = 2001;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
}

static void test_src_and_dst_cidr(void)
{
    struct conf_cidr src[] = { cidr("10.0.0.0/8"), cidr("2001:db8::/32") };
    struct conf_cidr dst[] = { cidr("192.168.1.128/25") };
    reset_routes();
    routes[0] = (struct conf_route){ .name = "net", .match = { .src = src, .nsrc = 2, .dst = dst, .ndst = 1 },
                                     .to = to_a, .nto = 1 };
    conf.nroutes = 1;
    uint8_t s4[4] = { 10, 1, 2, 3 }, d4[4] = { 192, 168, 1, 200 }, d4_out[4] = { 192, 168, 1, 127 };
    struct policy_input in = sip_input("INVITE");
    in.addr_len = 4;
    in.src = s4;
    in.dst = d4;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    in.dst = d4_out;                /* both keys must hold */
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    uint8_t s4_out[4] = { 11, 0, 0, 1 };
    in.dst = d4;
    in.src = s4_out;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    /* no addresses: no match */
    in.addr_len = 0;
    in.src = in.dst = NULL;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);

    /* IPv6 source in the /32, and an IPv4 CIDR never matches an IPv6 address */
    struct conf_cidr any4[] = { cidr("0.0.0.0/0") };
    routes[0].match.dst = NULL;
    routes[0].match.ndst = 0;
    uint8_t s6[16], d6[16] = { 0 };
    inet_pton(AF_INET6, "2001:db8:ffff::1", s6);
    in.addr_len = 16;
    in.src = s6;
    in.dst = d6;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    routes[0].match.src = any4;
    routes[0].match.nsrc = 1;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
}

static void test_status_matches_replies_only(void)
{
    struct conf_status st[] = { { 407, 407 }, { 500, 599 } };
    char *inv[] = { "INVITE" };
    reset_routes();
    routes[0] = (struct conf_route){ .name = "fail", .match = { .methods = inv, .nmethods = 1,
                                                                 .status = st, .nstatus = 2 },
                                     .to = NULL, .nto = 0 };
    routes[1] = (struct conf_route){ .name = "calls", .match = { .methods = inv, .nmethods = 1 },
                                     .to = to_a, .nto = 1 };
    conf.nroutes = 2;
    struct policy_input in = sip_input("INVITE");
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 1);        /* request: status 0 */
    in.status = 407;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    in.status = 503;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    in.status = 401;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 1);
    in.status = 600;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 1);
    const size_t *to;
    size_t nto;
    policy_destinations(&conf, 0, &to, &nto);
    CU_ASSERT_EQUAL(nto, 0);        /* a discarding route */
}

static void test_cidr_prefix_edges(void)
{
    struct conf_cidr c[] = { cidr("192.168.1.0/23") };
    reset_routes();
    routes[0] = (struct conf_route){ .name = "r", .match = { .src = c, .nsrc = 1 }, .to = to_a, .nto = 1 };
    conf.nroutes = 1;
    struct policy_input in = sip_input("INVITE");
    uint8_t a[4] = { 192, 168, 0, 255 }, b[4] = { 192, 168, 1, 0 }, d[4] = { 0 };
    in.addr_len = 4;
    in.dst = d;
    in.src = a;                     /* /23 of 192.168.1.0 is 192.168.0.0 - 192.168.1.255 */
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    in.src = b;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 0);
    uint8_t e[4] = { 192, 168, 2, 0 };
    in.src = e;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
}

static void test_input_from_view(void)
{
    struct hep_view v;
    uint8_t s[4] = { 1, 2, 3, 4 }, d[4] = { 5, 6, 7, 8 };
    memset(&v, 0, sizeof v);
    v.proto_type = HEP_PROTO_RTCP;
    v.present = HEP_HAS_CAPTURE_ID;
    v.capture_id = 9;
    v.addr_len = 4;
    v.src_ip = s;
    v.dst_ip = d;
    struct policy_input in;
    memset(&in, 0, sizeof in);
    policy_input_from_view(&in, &v);
    CU_ASSERT_EQUAL(in.proto, HEP_PROTO_RTCP);
    CU_ASSERT_TRUE(in.has_capture_id);
    CU_ASSERT_EQUAL(in.capture_id, 9);
    CU_ASSERT_EQUAL(in.addr_len, 4);
    CU_ASSERT_PTR_EQUAL(in.src, s);
    CU_ASSERT_PTR_EQUAL(in.dst, d);
}

/* ---- origin keys ---- */

static struct pattern compiled(const char *text, bool caseless)
{
    struct pattern p;
    char why[PATTERN_WHY_MAX];
    CU_ASSERT_EQUAL_FATAL(pattern_compile(&p, text, caseless, why, sizeof why), 0);
    return p;
}

static const char origin_msg[] =
    "INVITE sip:+15551234@B.example.net:5060;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.1.2.3;branch=z9hG4bK1\r\n"
    "f: \"Alice\" <sip:alice@A.Example>;tag=1\r\n"
    "To: sip:bob@b.example.net\r\n"
    "X-Tenant:  gold \r\n"
    "User-Agent: Linphone/5.0\r\n"
    " (folded)\r\n"
    "Call-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n"
    "X-Tenant: not-a-header\r\n";

static struct policy_origin origin_of(const char *msg, const uint8_t *src)
{
    struct policy_origin o;
    memset(&o, 0, sizeof o);
    o.sip = (const uint8_t *)msg;
    o.sip_len = strlen(msg);
    const char *sp = strchr(msg, ' ');
    o.ruri.ptr = sp + 1;
    o.ruri.len = (size_t)(strchr(sp + 1, ' ') - (sp + 1));
    struct sip_msg m;
    CU_ASSERT_EQUAL_FATAL(sip_scan((const uint8_t *)msg, strlen(msg), &m), SIP_OK);
    o.from = m.from;
    o.to = m.to;
    o.addr_len = 4;
    o.src = src;
    o.dst = src;
    return o;
}

static void test_origin_keys_exact_and_regex(void)
{
    reset_routes();
    struct pattern dom[] = { compiled("x.example", true), compiled("a.example", true) };
    struct pattern ruser[] = { compiled("~^\\+1", false) };
    struct pattern gold[] = { compiled("gold", false) };
    struct pattern silver[] = { compiled("silver", false) };
    struct pattern ua[] = { compiled("~^Linphone/5", false) };
    struct pattern touser[] = { compiled("Bob", false) };          /* exact users keep their case */
    struct pattern after[] = { compiled("not-a-header", false) };  /* after the headers: the body */
    struct conf_header_match tenant_gold = { "x-tenant", gold, 1 }, tenant_silver = { "X-TENANT", silver, 1 };
    struct conf_header_match in_body = { "X-Tenant", after, 1 };
    struct conf_cidr ten = cidr("10.0.0.0/8"), other = cidr("192.0.2.0/24");
    for (unsigned i = 0; i < 7; i++) {
        routes[i].origin = true;
        routes[i].origin_bit = i;
        routes[i].to = to_a;
        routes[i].nto = 1;
    }
    routes[0].match.from_domain = dom;
    routes[0].match.nfrom_domain = 2;
    routes[1].match.ruri_user = ruser;
    routes[1].match.nruri_user = 1;
    routes[1].match.user_agent = ua;
    routes[1].match.nuser_agent = 1;
    routes[2].match.headers = &tenant_gold;
    routes[2].match.nheaders = 1;
    routes[2].match.origin_src = &ten;
    routes[2].match.norigin_src = 1;
    routes[3].match.headers = &tenant_silver;
    routes[3].match.nheaders = 1;
    routes[4].match.to_user = touser;
    routes[4].match.nto_user = 1;
    routes[5].match.headers = &in_body;
    routes[5].match.nheaders = 1;
    routes[6].match.origin_src = &other;
    routes[6].match.norigin_src = 1;
    conf.nroutes = 7;
    conf.norigin_routes = 7;
    conf_origin_headers(&conf);
    uint8_t src[4] = { 10, 1, 2, 3 };
    struct policy_origin o = origin_of(origin_msg, src);
    CU_ASSERT_EQUAL(policy_origin_bits(&conf, &o), 0x7u);

    /* the answer holds for every packet of the call, with the packet's own keys */
    struct policy_input in = sip_input("INVITE");
    in.origin_known = true;
    in.origin_bits = 0x4u;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 2);
    in.origin_bits = 0;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    /* no origin (the CSeq fallback): no route with origin keys matches */
    in.origin_known = false;
    in.origin_bits = 0x7u;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), POLICY_DEFAULT);
    /* a route without origin keys does not care */
    routes[7].to = to_b;
    routes[7].nto = 1;
    conf.nroutes = 8;
    CU_ASSERT_EQUAL(policy_match(&conf, &in), 7);
    for (size_t i = 0; i < 2; i++)
        pattern_free(&dom[i]);
    struct pattern *one[] = { ruser, gold, silver, ua, touser, after };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        pattern_free(one[i]);
}

/* A header beyond the ones kept from the walk is still found. */
static void test_origin_header_after_many(void)
{
    reset_routes();
    struct pattern gold[] = { compiled("gold", false) };
    struct pattern ua[] = { compiled("~^late", false) };
    struct conf_header_match tenant = { "X-Tenant", gold, 1 };
    routes[0].origin = true;
    routes[0].origin_bit = 0;
    routes[0].match.headers = &tenant;
    routes[0].match.nheaders = 1;
    routes[1].origin = true;
    routes[1].origin_bit = 1;
    routes[1].match.user_agent = ua;
    routes[1].match.nuser_agent = 1;
    conf.nroutes = 2;
    conf.norigin_routes = 2;
    conf_origin_headers(&conf);
    static char msg[8192];
    size_t n = (size_t)snprintf(msg, sizeof msg, "INVITE sip:a@b SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(msg + n, sizeof msg - n, "X-Filler-%d: %d\r\n", i, i);
    n += (size_t)snprintf(msg + n, sizeof msg - n, "X-Tenant: gold\r\nUser-Agent: late/1\r\n\r\n");
    uint8_t src[4] = { 10, 0, 0, 1 };
    struct policy_origin o = origin_of(msg, src);
    CU_ASSERT_EQUAL(policy_origin_bits(&conf, &o), 0x3u);
    pattern_free(&gold[0]);
    pattern_free(&ua[0]);
}

static void test_pattern_exact_regex_and_case(void)
{
    struct pattern p = compiled("a.example", true);
    CU_ASSERT_TRUE(pattern_match(&p, "A.EXAMPLE", 9));
    CU_ASSERT_FALSE(pattern_match(&p, "a.example.net", 13));
    CU_ASSERT_FALSE(pattern_match(&p, "a.exampl", 8));
    pattern_free(&p);
    p = compiled("Alice", false);
    CU_ASSERT_FALSE(pattern_match(&p, "alice", 5));
    pattern_free(&p);
    p = compiled("~^b\\.example$", true);
    CU_ASSERT_TRUE(pattern_match(&p, "B.Example", 9));
    CU_ASSERT_FALSE(pattern_match(&p, "bxexample", 9));
    CU_ASSERT_FALSE(pattern_match(&p, "b.example.net", 13));
    pattern_free(&p);
    p = compiled("~gold", false);                   /* unanchored: anywhere */
    CU_ASSERT_TRUE(pattern_match(&p, "tenant-gold-1", 13));
    CU_ASSERT_FALSE(pattern_match(&p, "tenant-go", 9));   /* the length bounds it, not a NUL */
    pattern_free(&p);
    char why[PATTERN_WHY_MAX];
    CU_ASSERT_EQUAL(pattern_compile(&p, "~a(", false, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "at offset 2"));
}

#define SAMPLE_CALLS 100000

static void test_sample_takes_its_share_of_calls_whole(void)
{
    reset_routes();
    routes[0].sample = CONF_MILLION / 4;        /* sample: 0.25 */
    routes[0].to = to_a;
    routes[0].nto = 1;
    conf.nroutes = 1;
    conf.sampling = true;
    size_t in_sample = 0;
    for (unsigned i = 0; i < SAMPLE_CALLS; i++) {
        char id[64];
        int n = snprintf(id, sizeof id, "%08x-%u@pbx.example", i * 2654435761u, i);
        struct policy_input in = sip_input("INVITE");
        in.in_sample_space = true;
        in.sample_point = policy_sample_point(id, (size_t)n);
        CU_ASSERT(in.sample_point < CONF_MILLION);
        /* the same point every time: every packet, worker and instance decides alike */
        CU_ASSERT_EQUAL(policy_sample_point(id, (size_t)n), in.sample_point);
        long got = policy_match(&conf, &in);
        in_sample += got == 0;
        /* outside the sample the call goes on to the next routes (here the default) */
        CU_ASSERT(got == 0 || got == POLICY_DEFAULT);
    }
    double share = (double)in_sample / SAMPLE_CALLS;
    printf("\n    sample 0.25: %.4f of %d calls ", share, SAMPLE_CALLS);
    CU_ASSERT(share > 0.24 && share < 0.26);
    /* a packet without a call key is in no sample */
    struct policy_input none = sip_input("INVITE");
    CU_ASSERT_EQUAL(policy_match(&conf, &none), POLICY_DEFAULT);
    /* pinned: a change of the hash would split calls between instances of two versions */
    CU_ASSERT_EQUAL(policy_sample_point("inv-1-11219@127.0.0.1", 21), 75035);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "first match wins", test_first_match_wins },
        { "no match gives the default list", test_no_match_gives_default },
        { "method is case-sensitive and exact", test_method_is_case_sensitive_and_exact },
        { "proto and capture_id", test_proto_and_capture_id },
        { "src and dst CIDR, ANDed", test_src_and_dst_cidr },
        { "status matches replies only", test_status_matches_replies_only },
        { "CIDR prefix edges", test_cidr_prefix_edges },
        { "input from a decoded view", test_input_from_view },
        { "a route index out of range is an invariant", test_route_index_out_of_range_is_an_invariant },
        { "origin keys, exact and regex, judged once", test_origin_keys_exact_and_regex },
        { "patterns: exact, regex, case", test_pattern_exact_regex_and_case },
        { "a header after many others is found", test_origin_header_after_many },
        { "sample takes its share of calls, whole", test_sample_takes_its_share_of_calls_whole },
        { NULL, NULL },
    };
    return unit_run("policy", tests);
}
