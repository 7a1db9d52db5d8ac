/*
 * test_capture.c - capture.c: the Kamailio fixtures come back byte-identical
 * and in order from every kind of capture make_pcap.py writes (link types,
 * pcap and pcapng, IPv6, a TCP stream cut anyhow), with their addresses,
 * ports and times, and whatever is not a packet is counted by reason.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "capture.h"
#include "netaddr.h"
#include "unit.h"

#define LINE_MAX_LEN    (256u * 1024u)
#define ERR_LEN         512

static char dir[] = "/tmp/test_capture.XXXXXX";
static bool made;

/* Runs make_pcap.py once into a fresh directory. */
static bool make_captures(void)
{
    if (made)
        return true;
    if (mkdtemp(dir) == NULL)
        return false;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "python3 '%s' '%s' '%s'", TEST_MAKE_PCAP, TEST_DATA_DIR, dir);
    made = system(cmd) == 0;
    return made;
}

static void remove_captures(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* Number of v3 fixtures: 001.hep, 002.hep, ... */
static size_t fixture_count(void)
{
    size_t n = 0;
    for (;;) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/kamailio/v3/%03zu.hep", TEST_DATA_DIR, n + 1);
        if (access(path, R_OK) != 0)
            return n;
        n++;
    }
}

static bool same_addr(const struct sockaddr_storage *ss, const char *text)
{
    char buf[NETADDR_TEXT_MAX];
    netaddr_format((const struct sockaddr *)ss, buf, sizeof(buf));
    if (strcmp(buf, text) != 0) {
        fprintf(stderr, "address %s, expected %s\n", buf, text);
        return false;
    }
    return true;
}

/*
 * Reads NAME and checks it against NAME.expect; the first `fixtures`
 * packets must also be the v3 fixtures in order.
 */
static void check_capture(const char *name, size_t fixtures)
{
    CU_ASSERT_FATAL(make_captures());
    char path[4096], expect_path[4200], err[ERR_LEN];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(expect_path, sizeof(expect_path), "%s.expect", path);
    struct capture *c = capture_open(path, err, sizeof(err));
    if (c == NULL)
        fprintf(stderr, "%s\n", err);
    CU_ASSERT_FATAL(c != NULL);
    FILE *ef = fopen(expect_path, "r");
    CU_ASSERT_FATAL(ef != NULL);
    char *line = malloc(LINE_MAX_LEN);
    uint8_t *want = malloc(LINE_MAX_LEN / 2);
    CU_ASSERT_FATAL(line != NULL && want != NULL);

    uint64_t packets = 0, skipped[CAPTURE_SKIP_COUNT] = { 0 };
    while (fgets(line, (int)LINE_MAX_LEN, ef) != NULL) {
        char reason[64];
        unsigned long long n;
        if (sscanf(line, "skip %63s %llu", reason, &n) == 2) {
            bool known = false;
            for (int why = 0; why < CAPTURE_SKIP_COUNT; why++)
                if (strcmp(capture_skip_name(why), reason) == 0) {
                    skipped[why] = n;
                    known = true;
                }
            CU_ASSERT(known);
            continue;
        }
        char *hex = strtok(line, " ");
        char *sec = strtok(NULL, " "), *nsec = strtok(NULL, " ");
        char *tr = strtok(NULL, " "), *src = strtok(NULL, " "), *dst = strtok(NULL, " \n");
        CU_ASSERT_FATAL(dst != NULL);
        size_t len = strlen(hex) / 2;
        for (size_t i = 0; i < len; i++)
            want[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));

        struct capture_packet p;
        int rc = capture_next(c, &p);
        CU_ASSERT_EQUAL_FATAL(rc, 1);
        CU_ASSERT_EQUAL(p.len, len);
        CU_ASSERT(p.len == len && memcmp(p.data, want, len) == 0);
        if (packets < fixtures) {
            char rel[64];
            size_t flen;
            snprintf(rel, sizeof(rel), "kamailio/v3/%03llu.hep", (unsigned long long)packets + 1);
            unsigned char *fix = unit_read_file(rel, &flen);
            CU_ASSERT_FATAL(fix != NULL);
            CU_ASSERT(flen == p.len && memcmp(fix, p.data, flen) == 0);
            free(fix);
        }
        CU_ASSERT_EQUAL(p.ts.tv_sec, strtoll(sec, NULL, 10));
        CU_ASSERT_EQUAL(p.ts.tv_nsec, strtol(nsec, NULL, 10));
        CU_ASSERT_EQUAL(p.transport, strcmp(tr, "tcp") == 0 ? CAPTURE_TCP : CAPTURE_UDP);
        CU_ASSERT(same_addr(&p.src, src));
        CU_ASSERT(same_addr(&p.dst, dst));
        packets++;
    }
    struct capture_packet p;
    CU_ASSERT_EQUAL(capture_next(c, &p), 0);
    CU_ASSERT_EQUAL(capture_next(c, &p), 0);
    const struct capture_stats *st = capture_stats(c);
    CU_ASSERT_EQUAL(st->packets, packets);
    CU_ASSERT(packets >= fixtures);
    for (int why = 0; why < CAPTURE_SKIP_COUNT; why++) {
        if (st->skipped[why] != skipped[why])
            fprintf(stderr, "%s: %s %llu, expected %llu\n", name, capture_skip_name(why),
                    (unsigned long long)st->skipped[why], (unsigned long long)skipped[why]);
        CU_ASSERT_EQUAL(st->skipped[why], skipped[why]);
    }
    free(line);
    free(want);
    fclose(ef);
    capture_close(c);
}

static void test_udp_pcap(void) { check_capture("udp.pcap", fixture_count()); }
static void test_udp_pcapng(void) { check_capture("udp.pcapng", fixture_count()); }
static void test_sll(void) { check_capture("sll.pcap", fixture_count()); }
static void test_sll2(void) { check_capture("sll2.pcap", fixture_count()); }
static void test_ipv6(void) { check_capture("ipv6.pcap", fixture_count()); }
static void test_raw_ip(void) { check_capture("raw.pcap", fixture_count()); }
static void test_tcp(void) { check_capture("tcp.pcap", fixture_count()); }
/* the fixtures are there, in order, but with a datagram of random bytes among them */
static void test_garbage(void) { check_capture("garbage.pcap", 0); }

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT(fwrite(data, 1, len, f) == len);
    fclose(f);
}

/* hepdump --raw lines: raw, t, peer and transport; lines without them are counted. */
static void test_json_lines(void)
{
    CU_ASSERT_FATAL(make_captures());
    size_t len;
    unsigned char *fix = unit_read_file("kamailio/v3/001.hep", &len);
    CU_ASSERT_FATAL(fix != NULL);
    char *text = malloc(len * 2 + 1024);
    CU_ASSERT_FATAL(text != NULL);
    size_t n = (size_t)sprintf(text, "{\"n\":1,\"t\":1700000001.000042,\"peer\":\"[2001:db8::1]:5060\","
                                     "\"transport\":\"tcp\",\"len\":%zu,\"version\":3,\"raw\":\"", len);
    for (size_t i = 0; i < len; i++)
        n += (size_t)sprintf(text + n, "%02x", fix[i]);
    n += (size_t)sprintf(text + n, "\"}\n{\"n\":2,\"t\":1.5,\"peer\":\"1.2.3.4:5\","
                                   "\"transport\":\"udp\",\"len\":4}\n");
    n += (size_t)sprintf(text + n, "{\"n\":3,\"t\":2.25,\"peer\":\"1.2.3.4:5\",\"transport\":\"udp\","
                                   "\"len\":2,\"raw\":\"4845\"}\n");
    char path[4096], err[ERR_LEN];
    snprintf(path, sizeof(path), "%s/lines.json", dir);
    write_file(path, text, n);

    struct capture *c = capture_open(path, err, sizeof(err));
    CU_ASSERT_FATAL(c != NULL);
    struct capture_packet p;
    CU_ASSERT_EQUAL_FATAL(capture_next(c, &p), 1);
    CU_ASSERT(p.len == len && memcmp(p.data, fix, len) == 0);
    CU_ASSERT_EQUAL(p.ts.tv_sec, 1700000001);
    CU_ASSERT_EQUAL(p.ts.tv_nsec, 42000);
    CU_ASSERT_EQUAL(p.transport, CAPTURE_TCP);
    CU_ASSERT(same_addr(&p.src, "[2001:db8::1]:5060"));
    CU_ASSERT_EQUAL(p.dst.ss_family, AF_UNSPEC);
    CU_ASSERT_EQUAL_FATAL(capture_next(c, &p), 1);
    CU_ASSERT(p.len == 2 && memcmp(p.data, "HE", 2) == 0);
    CU_ASSERT_EQUAL(p.ts.tv_sec, 2);
    CU_ASSERT_EQUAL(p.ts.tv_nsec, 250000000);
    CU_ASSERT_EQUAL(p.transport, CAPTURE_UDP);
    CU_ASSERT_EQUAL(capture_next(c, &p), 0);
    CU_ASSERT_EQUAL(capture_stats(c)->skipped[CAPTURE_SKIP_BAD_LINE], 1);
    CU_ASSERT_EQUAL(capture_stats(c)->records, 3);
    capture_close(c);
    free(text);
    free(fix);
}

/* What cannot be read says why, and a file cut inside a record is an error, not a crash. */
static void test_bad_files(void)
{
    CU_ASSERT_FATAL(make_captures());
    char path[4096], err[ERR_LEN];

    snprintf(path, sizeof(path), "%s/missing.pcap", dir);
    CU_ASSERT(capture_open(path, err, sizeof(err)) == NULL);
    CU_ASSERT(strstr(err, "missing.pcap") != NULL);

    snprintf(path, sizeof(path), "%s/junk.pcap", dir);
    write_file(path, "not a capture at all, no", 24);
    CU_ASSERT(capture_open(path, err, sizeof(err)) == NULL);
    CU_ASSERT(err[0] != '\0');

    /* a pcap header of IEEE 802.11 (link type 105) */
    static const uint8_t wifi[24] = { 0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0xff, 0xff, 0, 0, 105, 0, 0, 0 };
    snprintf(path, sizeof(path), "%s/wifi.pcap", dir);
    write_file(path, wifi, sizeof(wifi));
    CU_ASSERT(capture_open(path, err, sizeof(err)) == NULL);
    CU_ASSERT(strstr(err, "link type") != NULL);

    /* udp.pcap cut in the middle of its third record */
    char whole[4096];
    snprintf(whole, sizeof(whole), "%s/udp.pcap", dir);
    FILE *f = fopen(whole, "rb");
    CU_ASSERT_FATAL(f != NULL);
    uint8_t buf[2048];
    size_t got = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    CU_ASSERT_FATAL(got == sizeof(buf));
    snprintf(path, sizeof(path), "%s/cut.pcap", dir);
    write_file(path, buf, sizeof(buf));
    struct capture *c = capture_open(path, err, sizeof(err));
    CU_ASSERT_FATAL(c != NULL);
    struct capture_packet p;
    int rc, n = 0;
    while ((rc = capture_next(c, &p)) == 1)
        n++;
    CU_ASSERT(n >= 1);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT(capture_error(c)[0] != '\0');
    capture_close(c);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "Ethernet IPv4 UDP, 802.1Q tags (pcap)", test_udp_pcap },
        { "the same as pcapng", test_udp_pcapng },
        { "Linux cooked SLL, nanosecond pcap", test_sll },
        { "Linux cooked SLL2", test_sll2 },
        { "IPv6 with a hop-by-hop header", test_ipv6 },
        { "raw IP", test_raw_ip },
        { "TCP: split, glued, repeated, overlapping and lost segments", test_tcp },
        { "garbage counted by reason", test_garbage },
        { "hepdump JSON lines", test_json_lines },
        { "unreadable and cut files", test_bad_files },
        { NULL, NULL },
    };
    int rc = unit_run("capture", tests);
    if (made)
        remove_captures();
    return rc;
}
