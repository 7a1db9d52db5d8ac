/*
 * hepgen.c - HEP load generator for the benchmarks and the smoke tests.
 *
 * It replays the real Kamailio captures in tests/data/kamailio/vN as a mix
 * of calls: OPTIONS (2 packets), REGISTER with its 401 (4) and INVITE with
 * the stateless 407, ACK, authenticated INVITE, 100/180/200, ACK and BYE/200
 * (16).  Every call gets its own fixed-length Call-ID
 * "<prefix>-<inv|reg|opt>-<10 digits>@hepgen", so the packets are built once
 * at startup (templates) and only the digits and the timestamp are patched
 * per packet.  A window of calls is sent round robin, so the packets of one
 * call are spread out like real traffic but stay in order (except the
 * optional 407-before-INVITE reorder).  Packets go out in sendmmsg() batches
 * (writev() on TCP), paced with clock_nanosleep() to the target rate.
 *
 * With --compress the SIP payload goes gzip-compressed in chunk 0x0010.  It
 * is compressed once per template too: the Call-ID digits sit uncompressed
 * in a stored block of their own (see gzip_payload()), so per packet they
 * are patched like the rest and only the gzip CRC-32 is recomputed, from a
 * table, with ten XORs.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "bytes.h"
#include "conf.h"
#include "hep.h"
#include "payload.h"
#include "sip.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#ifndef HEPGEN_DATA_DIR
#define HEPGEN_DATA_DIR ""
#endif

#define PROG "hepgen"

#define EXIT_OK         0
#define EXIT_RUNTIME    1
#define EXIT_USAGE      2

#define MAX_DESTS       64
#define MAX_BATCH       1024
#define DEFAULT_BATCH   32
#define CALL_WINDOW     64      /* calls in flight, sent round robin */
#define DRAIN_PER_CALL  32      /* window <= rate / 32: -s drains in ~0.25 s */
#define SEQ_DIGITS      10
#define MAX_PREFIX      64
#define MAX_PKT         65535
#define BATCH_MAX_NS    2000000L    /* a paced batch covers at most 2 ms */
#define SNDBUF_BYTES    (4 * 1024 * 1024)
#define NSEC_PER_SEC    1000000000L
#define GZIP_WINDOW_BITS (MAX_WBITS + 16)   /* deflateInit2(): gzip wrapper */

enum kind { KIND_INVITE, KIND_REGISTER, KIND_OPTIONS, KIND_COUNT };

static const char *const kind_name[KIND_COUNT] = { "invite", "register", "options" };
static const char *const kind_tag[KIND_COUNT] = { "inv", "reg", "opt" };

/* Capture files of each kind, in call order (tests/data/kamailio/README.md). */
static const int kind_first[KIND_COUNT] = { 7, 3, 1 };
static const int kind_npkts[KIND_COUNT] = { 16, 4, 2 };
#define MAX_CALL_PKTS 16

/*
 * The gzip trailer of a compressed payload, patched with the digits.  For a
 * fixed length CRC-32 is affine over GF(2): the CRC of the payload with
 * digits d0..d9 is the CRC with all zeros ('0') XOR, for each position i,
 * the change digit d_i makes there on its own.
 */
struct gz_patch {
    size_t crc_off;                         /* the trailer's CRC-32 (LE) in the packet */
    uint32_t crc_zero;                      /* CRC-32 of the payload with "0000000000" */
    uint32_t crc_digit[SEQ_DIGITS][10];     /* change of digit d at position i */
};

/* One prebuilt packet: patch the Call-ID digits and the timestamp. */
struct tmpl {
    uint8_t *data;
    size_t len;
    size_t digits[2];       /* offsets of the seq digits (payload, correlation id) */
    int ndigits;
    size_t ts_off;          /* v3: value of TS_SEC (TS_USEC follows) / v2: time block */
    bool has_ts;
    struct gz_patch *gz;    /* payload in a PAYLOAD_GZ chunk (--compress), else NULL */
};

struct dest {
    char text[300];
    bool tcp;
    int fd;
    /* pending batch */
    struct mmsghdr *msgs;
    struct iovec *iov;
    uint8_t *buf;           /* batch slots of slot_size bytes */
    const struct tmpl **tp; /* template of each pending packet */
    uint8_t *kind;          /* call kind of each pending packet */
    int pending;
};

struct call {
    enum kind kind;
    bool active;
    bool reorder;
    int next;               /* index of the next packet in the call */
    int dest;
    uint64_t seq;
};

static struct {
    /* options */
    char *dest_text[MAX_DESTS];
    int ndests;
    double rate;
    uint64_t max_packets;
    double max_seconds;
    unsigned mix[KIND_COUNT];
    unsigned reorder_pct;
    int hep_version;
    const char *data_dir;
    int batch;
    const char *prefix;
    bool compress;
    const char *auth_key;   /* --auth-key: chunk 0x000e in every HEPv3 packet, or NULL */
    bool quiet;
    /* state */
    struct tmpl tmpl[KIND_COUNT][MAX_CALL_PKTS];
    size_t slot_size;
    struct dest dests[MAX_DESTS];
    struct call window[CALL_WINDOW];
    int mix_credit[KIND_COUNT];
    uint64_t next_seq;
    uint64_t planned;           /* packets of calls started */
    uint64_t sent, bytes, errors;
    uint64_t calls[KIND_COUNT], packets[KIND_COUNT];
    uint64_t reorder_acc;
    int batch_pending;
    int batch_eff;
    int window_size;
    struct timespec t_start;
} g = {
    .mix = { 70, 20, 10 },
    .hep_version = 3,
    .batch = DEFAULT_BATCH,
    .prefix = "hg",
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* "hepgen: message", then trailer, on stderr; exits with code. */
static void vfail(int code, const char *trailer, const char *fmt, va_list ap) __attribute__((noreturn));

static void vfail(int code, const char *trailer, const char *fmt, va_list ap)
{
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputs(trailer, stderr);
    exit(code);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(EXIT_RUNTIME, "\n", fmt, ap);
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void info(const char *fmt, ...)
{
    va_list ap;
    if (g.quiet)
        return;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------- options */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " -d ADDR [-d ADDR]... (-n PACKETS | -s SECONDS) [options]\n"
        "Send a mix of HEP calls built from the Kamailio captures.\n"
        "\n"
        "  -d, --dest ADDR        udp:HOST:PORT or tcp:HOST:PORT; repeatable (calls\n"
        "                         are spread over them round robin)\n"
        "  -r, --rate PPS         target rate in packets/s (0 = as fast as possible; default 0)\n"
        "  -n, --packets N        send at most N packets (whole calls only)\n"
        "  -s, --seconds S        start calls for S seconds, then finish those in flight\n"
        "      --mix SPEC         share of calls by kind (default invite=70,register=20,options=10)\n"
        "      --reorder PCT      percent of INVITE calls whose 407 goes before the INVITE (default 0)\n"
        "      --hep-version V    1, 2 or 3: which captures to send (default 3; 1/2 UDP only)\n"
        "      --data DIR         captures directory holding v1/ v2/ v3/ (default %s)\n"
        "      --batch N          packets per sendmmsg() (1..%d, default %d)\n"
        "      --prefix STR       Call-ID prefix (default \"hg\")\n"
        "      --compress         send the SIP payload gzip-compressed in chunk 0x0010\n"
        "                         instead of 0x000f (HEPv3 only)\n"
        "      --auth-key KEY     add KEY as the authentication key chunk 0x000e, before\n"
        "                         the payload (HEPv3 only)\n"
        "  -q, --quiet            no informational messages on stderr\n"
        "  -h, --help             this help\n"
        "  -V, --version          print the version\n"
        "At exit one JSON line on stdout: sent, bytes, seconds, rate, calls, packets, errors,\n"
        "compress.\n",
        HEPGEN_DATA_DIR[0] ? HEPGEN_DATA_DIR : "none: --data is required",
        MAX_BATCH, DEFAULT_BATCH);
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(EXIT_USAGE, "\nTry '" PROG " --help'.\n", fmt, ap);
}

/* The configuration's number grammar (conf_parse_number), without its "-0". */
static uint64_t parse_u64(const char *opt, const char *text, uint64_t min, uint64_t max)
{
    uint64_t v;
    if (!isdigit((unsigned char)text[0]))
        usage_error("%s: expected an integer, got \"%s\"", opt, text);
    if (conf_parse_number(text, min, max, &v) != CONF_NUMBER_OK)
        usage_error("%s: expected an integer in %llu..%llu, got \"%s\"", opt,
                    (unsigned long long)min, (unsigned long long)max, text);
    return v;
}

static double parse_positive(const char *opt, const char *text, bool zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= 0) || v > 1e9 || (!zero_ok && v == 0))
        usage_error("%s: expected a %s number, got \"%s\"", opt,
                    zero_ok ? "non-negative" : "positive", text);
    return v;
}

static void parse_mix(const char *text)
{
    char *copy = strdup(text);
    unsigned mix[KIND_COUNT] = { 0, 0, 0 };
    bool seen[KIND_COUNT] = { false, false, false };
    char *save = NULL;
    if (copy == NULL)
        die("out of memory");
    for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL)
            usage_error("--mix \"%s\": \"%s\" is not KIND=SHARE", text, item);
        *eq = '\0';
        int k;
        for (k = 0; k < KIND_COUNT; k++)
            if (strcmp(item, kind_name[k]) == 0)
                break;
        if (k == KIND_COUNT)
            usage_error("--mix \"%s\": unknown kind \"%s\" (invite, register, options)", text, item);
        if (seen[k])
            usage_error("--mix \"%s\": \"%s\" given twice", text, item);
        seen[k] = true;
        mix[k] = (unsigned)parse_u64("--mix", eq + 1, 0, 1000000);
    }
    free(copy);
    if (mix[0] + mix[1] + mix[2] == 0)
        usage_error("--mix \"%s\": all shares are zero", text);
    memcpy(g.mix, mix, sizeof(mix));
}

static void parse_prefix(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || n > MAX_PREFIX)
        usage_error("--prefix: expected 1..%d characters, got %zu", MAX_PREFIX, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_' && c != '+')
            usage_error("--prefix \"%s\": only letters, digits and - . _ + are allowed", text);
    }
    g.prefix = text;
}

static void parse_args(int argc, char **argv)
{
    enum { OPT_MIX = 256, OPT_REORDER, OPT_VERSION, OPT_DATA, OPT_BATCH, OPT_PREFIX, OPT_COMPRESS, OPT_AUTH_KEY };
    static const struct option longopts[] = {
        { "dest", required_argument, NULL, 'd' },
        { "rate", required_argument, NULL, 'r' },
        { "packets", required_argument, NULL, 'n' },
        { "seconds", required_argument, NULL, 's' },
        { "mix", required_argument, NULL, OPT_MIX },
        { "reorder", required_argument, NULL, OPT_REORDER },
        { "hep-version", required_argument, NULL, OPT_VERSION },
        { "data", required_argument, NULL, OPT_DATA },
        { "batch", required_argument, NULL, OPT_BATCH },
        { "prefix", required_argument, NULL, OPT_PREFIX },
        { "compress", no_argument, NULL, OPT_COMPRESS },
        { "auth-key", required_argument, NULL, OPT_AUTH_KEY },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    bool have_n = false, have_s = false;
    while ((c = getopt_long(argc, argv, "d:r:n:s:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (g.ndests == MAX_DESTS)
                usage_error("at most %d -d destinations", MAX_DESTS);
            g.dest_text[g.ndests++] = optarg;
            break;
        case 'r': g.rate = parse_positive("-r", optarg, true); break;
        case 'n':
            g.max_packets = parse_u64("-n", optarg, 1, UINT64_MAX / 2);
            have_n = true;
            break;
        case 's':
            g.max_seconds = parse_positive("-s", optarg, false);
            have_s = true;
            break;
        case OPT_MIX: parse_mix(optarg); break;
        case OPT_REORDER: g.reorder_pct = (unsigned)parse_u64("--reorder", optarg, 0, 100); break;
        case OPT_VERSION: g.hep_version = (int)parse_u64("--hep-version", optarg, 1, 3); break;
        case OPT_DATA: g.data_dir = optarg; break;
        case OPT_BATCH: g.batch = (int)parse_u64("--batch", optarg, 1, MAX_BATCH); break;
        case OPT_PREFIX: parse_prefix(optarg); break;
        case OPT_COMPRESS: g.compress = true; break;
        case OPT_AUTH_KEY: g.auth_key = optarg; break;
        case 'q': g.quiet = true; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case 'V': printf(PROG " (heprouter) %s\n", PACKAGE_VERSION); exit(EXIT_OK);
        default: usage_error("unknown or incomplete option");
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
    if (g.ndests == 0)
        usage_error("at least one -d ADDR is required");
    if (have_n == have_s)
        usage_error("give exactly one of -n PACKETS and -s SECONDS");
    if (g.auth_key != NULL && (g.hep_version != 3 || *g.auth_key == '\0' || strlen(g.auth_key) > CONF_STRING_MAX))
        usage_error("--auth-key: 1 to %u bytes, HEPv3 only (v1 and v2 have no key chunk)", CONF_STRING_MAX);
    if (g.compress && g.hep_version != 3)
        usage_error("--compress: HEPv%d has no chunk 0x0010: use --hep-version 3", g.hep_version);
    if (g.data_dir == NULL) {
        if (HEPGEN_DATA_DIR[0] == '\0')
            usage_error("no built-in captures directory: use --data DIR");
        g.data_dir = HEPGEN_DATA_DIR;
    }
    char dir[PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof(dir), "%s/v%d", g.data_dir, g.hep_version);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        usage_error("no captures directory %s (use --data DIR)", dir);
}

/* -------------------------------------------------------------- templates */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    uint8_t *buf = malloc(MAX_PKT + 1);
    if (buf == NULL)
        die("out of memory");
    size_t n = fread(buf, 1, MAX_PKT + 1, f);
    if (ferror(f) || n == 0 || n > MAX_PKT)
        die("%s: cannot read a HEP datagram (%zu bytes)", path, n);
    fclose(f);
    *len = n;
    return buf;
}

/*
 * Copies the SIP payload to out with the Call-ID header value replaced by
 * cid; returns the new length and the offset of cid in out (*cid_at).
 */
static size_t rewrite_payload(const char *path, const uint8_t *p, size_t n, const char *cid,
                              uint8_t *out, size_t *cid_at)
{
    size_t i = 0, cid_len = strlen(cid);
    while (i < n) {
        size_t eol = i;
        while (eol < n && p[eol] != '\n')
            eol++;
        size_t line_len = eol - i;
        if (line_len == 0 || (line_len == 1 && p[i] == '\r'))
            break;          /* end of headers */
        size_t name_len = 0;
        if (line_len > 8 && strncasecmp((const char *)p + i, "Call-ID:", 8) == 0)
            name_len = 8;
        else if (line_len > 2 && strncasecmp((const char *)p + i, "i:", 2) == 0)
            name_len = 2;
        if (name_len > 0) {
            size_t v = i + name_len;
            while (v < eol && (p[v] == ' ' || p[v] == '\t'))
                v++;
            size_t ve = eol;
            while (ve > v && (p[ve - 1] == '\r' || p[ve - 1] == ' ' || p[ve - 1] == '\t'))
                ve--;
            memcpy(out, p, v);
            memcpy(out + v, cid, cid_len);
            memcpy(out + v + cid_len, p + ve, n - ve);
            *cid_at = v;
            return v + cid_len + (n - ve);
        }
        i = eol + 1;
    }
    die("%s: no Call-ID header in the SIP payload", path);
}

/* Offset of the seq digits inside a Call-ID "<prefix>-<tag>-<digits>@hepgen". */
static size_t digits_offset(void)
{
    return strlen(g.prefix) + 1 + 3 + 1;
}

/*
 * Writes call number seq into a copy of template t at p: the Call-ID digits
 * and, for a gzip payload, the CRC-32 of its trailer.
 */
static void patch_seq(uint8_t *p, const struct tmpl *t, uint64_t seq)
{
    char digits[SEQ_DIGITS];
    for (int i = SEQ_DIGITS - 1; i >= 0; i--) {
        digits[i] = (char)('0' + seq % 10);
        seq /= 10;
    }
    for (int i = 0; i < t->ndigits; i++)
        memcpy(p + t->digits[i], digits, SEQ_DIGITS);
    if (t->gz != NULL) {
        uint32_t crc = t->gz->crc_zero;
        for (int i = 0; i < SEQ_DIGITS; i++)
            crc ^= t->gz->crc_digit[i][digits[i] - '0'];
        bytes_put_le32(p + t->gz->crc_off, crc);
    }
}

/* One deflate() step over in[0..len) that must not run out of room. */
static int deflate_part(const char *path, z_stream *zs, const uint8_t *in, size_t len, int flush)
{
    zs->next_in = (Bytef *)(uintptr_t)in;   /* zlib does not write through next_in */
    zs->avail_in = (uInt)len;
    int rc = deflate(zs, flush);
    if ((rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) || zs->avail_in != 0 ||
        zs->avail_out == 0)
        die("%s: gzip: deflate failed (%s)", path,
            zs->msg != NULL ? zs->msg : "the compressed payload does not fit");
    return rc;
}

/*
 * Compresses the SIP payload plain[0..len), Call-ID digits at plain + at,
 * as gzip into out[0..cap); returns its length, sets *out_at to where the
 * digits are in out, and fills gz (crc_off relative to out).  Three parts:
 * the head at the default level and a full flush; the digits at level 0,
 * so they stay as they are in a stored block, and a full flush; the rest at
 * the default level.  A full flush ends on a byte boundary and forgets the
 * data before it, so nothing after the digits refers back to them and
 * patching them changes nothing else.
 */
static size_t gzip_payload(const char *path, const uint8_t *plain, size_t len, size_t at,
                           uint8_t *out, size_t cap, size_t *out_at, struct gz_patch *gz)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (at + SEQ_DIGITS > len || len > UINT32_MAX || cap > UINT32_MAX)
        die("%s: gzip: bad payload", path);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW_BITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        die("%s: gzip: deflateInit2 failed", path);
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate_part(path, &zs, plain, at, Z_FULL_FLUSH);
    size_t stored_at = zs.total_out;
    if (deflateParams(&zs, Z_NO_COMPRESSION, Z_DEFAULT_STRATEGY) != Z_OK)
        die("%s: gzip: deflateParams failed", path);
    deflate_part(path, &zs, plain + at, SEQ_DIGITS, Z_FULL_FLUSH);
    size_t stored_end = zs.total_out;
    if (deflateParams(&zs, Z_DEFAULT_COMPRESSION, Z_DEFAULT_STRATEGY) != Z_OK)
        die("%s: gzip: deflateParams failed", path);
    if (deflate_part(path, &zs, plain + at + SEQ_DIGITS, len - at - SEQ_DIGITS, Z_FINISH) !=
        Z_STREAM_END)
        die("%s: gzip: the compressed payload does not fit", path);
    size_t n = zs.total_out;
    deflateEnd(&zs);

    const uint8_t *d = memmem(out + stored_at, stored_end - stored_at, plain + at, SEQ_DIGITS);
    if (d == NULL || n < stored_end + 8)
        die("%s: gzip: no stored block with the Call-ID digits", path);
    *out_at = (size_t)(d - out);

    /* the trailer: CRC-32 then length, little-endian (RFC 1952) */
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        die("out of memory");
    memcpy(copy, plain, len);
    gz->crc_off = n - 8;
    gz->crc_zero = (uint32_t)crc32(0L, copy, (uInt)len);
    for (int i = 0; i < SEQ_DIGITS; i++) {
        if (copy[at + i] != '0')
            die("%s: gzip: template digits are not zeros", path);
        for (int v = 0; v < 10; v++) {
            copy[at + i] = (uint8_t)('0' + v);
            gz->crc_digit[i][v] = (uint32_t)crc32(0L, copy, (uInt)len) ^ gz->crc_zero;
        }
        copy[at + i] = '0';
    }
    free(copy);
    return n;
}

/*
 * Checks a built packet with the router's own decoder, inflater and SIP
 * scanner: it must decode and carry Call-ID cid.
 */
static void check_packet(const char *path, const uint8_t *pkt, size_t len, const char *cid,
                         struct payload_inflater *z)
{
    struct hep_view v;
    struct sip_msg m;
    size_t cid_len = strlen(cid);
    int rc = hep_decode(pkt, len, &v);
    if (rc != HEP_OK)
        die("%s: rewritten packet does not decode: %s", path, hep_strerror(rc));
    const uint8_t *sip = v.payload.data;
    size_t sip_len = v.payload.len;
    uint8_t *buf = NULL;
    if (v.compressed) {
        buf = malloc(MAX_PKT + 1);
        if (buf == NULL)
            die("out of memory");
        /* room for more than any payload: the inflater reaches the trailer and checks the CRC */
        if (z == NULL || payload_inflate(z, v.payload.data, v.payload.len, buf, MAX_PKT + 1,
                                         &sip_len) != 0 || sip_len > MAX_PKT)
            die("%s: the compressed payload does not inflate", path);
        sip = buf;
    }
    if (sip_scan(sip, sip_len, &m) != SIP_OK || m.call_id.len != cid_len ||
        memcmp(m.call_id.ptr, cid, cid_len) != 0)
        die("%s: rewritten packet has the wrong Call-ID", path);
    free(buf);
}

static void build_tmpl(struct tmpl *t, const char *path, const char *cid,
                       struct payload_inflater *z)
{
    size_t n, cid_at = 0;
    uint8_t *in = read_file(path, &n);
    uint8_t *out = malloc(MAX_PKT + 256 + HEP3_CHUNK_HDR_LEN + CONF_STRING_MAX);
    uint8_t *plain = NULL;
    if (out == NULL)
        die("out of memory");
    size_t cid_len = strlen(cid), o = 0;
    memset(t, 0, sizeof(*t));

    if (g.hep_version == 3) {
        if (n < HEP3_HDR_LEN || memcmp(in, HEP3_MAGIC, 4) != 0)
            die("%s: not a HEP3 packet", path);
        o = HEP3_HDR_LEN;
        size_t i = HEP3_HDR_LEN;
        while (i < n) {
            if (n - i < HEP3_CHUNK_HDR_LEN)
                die("%s: truncated chunk at offset %zu", path, i);
            uint16_t vendor = bytes_get_be16(in + i), type = bytes_get_be16(in + i + 2);
            size_t clen = bytes_get_be16(in + i + 4);
            if (clen < HEP3_CHUNK_HDR_LEN || clen > n - i)
                die("%s: bad chunk length at offset %zu", path, i);
            const uint8_t *val = in + i + HEP3_CHUNK_HDR_LEN;
            size_t vlen = clen - HEP3_CHUNK_HDR_LEN;
            if (g.auth_key != NULL && vendor == 0 &&
                (type == HEP_CHUNK_PAYLOAD || type == HEP_CHUNK_PAYLOAD_GZ)) {
                size_t klen = strlen(g.auth_key);   /* where Kamailio puts it: before the payload */
                bytes_put_be16(out + o, 0);
                bytes_put_be16(out + o + 2, HEP_CHUNK_AUTH_KEY);
                bytes_put_be16(out + o + 4, (uint16_t)(klen + HEP3_CHUNK_HDR_LEN));
                memcpy(out + o + HEP3_CHUNK_HDR_LEN, g.auth_key, klen);
                o += HEP3_CHUNK_HDR_LEN + klen;
            }
            size_t oval = o + HEP3_CHUNK_HDR_LEN;  /* where the value goes in out */
            memcpy(out + o, in + i, HEP3_CHUNK_HDR_LEN);
            if (vendor == 0 && type == HEP_CHUNK_CORRELATION_ID) {
                memcpy(out + oval, cid, cid_len);
                t->digits[t->ndigits++] = oval + digits_offset();
                vlen = cid_len;
            } else if (vendor == 0 && type == HEP_CHUNK_PAYLOAD && g.compress) {
                size_t at = 0;
                if (t->gz != NULL)
                    die("%s: two payload chunks", path);
                plain = malloc(MAX_PKT + 256);
                t->gz = malloc(sizeof(*t->gz));
                if (plain == NULL || t->gz == NULL)
                    die("out of memory");
                size_t plain_len = rewrite_payload(path, val, vlen, cid, plain, &cid_at);
                vlen = gzip_payload(path, plain, plain_len, cid_at + digits_offset(), out + oval,
                                    MAX_PKT + 256 - oval, &at, t->gz);
                bytes_put_be16(out + o + 2, HEP_CHUNK_PAYLOAD_GZ);
                t->digits[t->ndigits++] = oval + at;
                t->gz->crc_off += oval;
            } else if (vendor == 0 && type == HEP_CHUNK_PAYLOAD) {
                vlen = rewrite_payload(path, val, vlen, cid, out + oval, &cid_at);
                t->digits[t->ndigits++] = oval + cid_at + digits_offset();
            } else {
                if (vendor == 0 && type == HEP_CHUNK_TS_SEC && vlen == 4) {
                    t->ts_off = oval;
                    t->has_ts = true;
                }
                memcpy(out + oval, val, vlen);
            }
            if (vlen + HEP3_CHUNK_HDR_LEN > HEP3_MAX_LEN)
                die("%s: chunk too long after the Call-ID rewrite", path);
            bytes_put_be16(out + o + 4, (uint16_t)(vlen + HEP3_CHUNK_HDR_LEN));
            o = oval + vlen;
            i += clen;
        }
        if (o > HEP3_MAX_LEN)
            die("%s: packet too long after the Call-ID rewrite", path);
        memcpy(out, HEP3_MAGIC, 4);
        bytes_put_be16(out + 4, (uint16_t)o);
        /* TS_USEC must follow TS_SEC for the patch: its type after TS_SEC's 4 bytes */
        if (t->has_ts && bytes_get_be16(out + t->ts_off + 4 + 2) != HEP_CHUNK_TS_USEC)
            t->has_ts = false;
    } else {
        if (n < HEP12_HDR_LEN || in[0] != g.hep_version)
            die("%s: not a HEPv%d packet", path, g.hep_version);
        size_t hl = in[1];
        size_t head = hl + (g.hep_version == 2 ? HEP2_TIME_LEN : 0);
        if (hl < HEP12_HDR_LEN || head > n)
            die("%s: bad header length %zu", path, hl);
        memcpy(out, in, head);
        o = head + rewrite_payload(path, in + head, n - head, cid, out + head, &cid_at);
        t->digits[t->ndigits++] = head + cid_at + digits_offset();
        if (g.hep_version == 2) {
            t->ts_off = hl;
            t->has_ts = true;
        }
    }
    if (t->ndigits == 0)
        die("%s: no SIP payload", path);

    check_packet(path, out, o, cid, z);
    if (t->gz != NULL) {
        /* and as the send loop patches it, with other digits and their CRC */
        uint64_t seq = 9081726354ULL;
        char cid_seq[128];
        uint8_t *copy = malloc(o);
        if (copy == NULL)
            die("out of memory");
        memcpy(copy, out, o);
        patch_seq(copy, t, seq);
        snprintf(cid_seq, sizeof(cid_seq), "%.*s%0*llu%s", (int)digits_offset(), cid, SEQ_DIGITS,
                 (unsigned long long)seq, cid + digits_offset() + SEQ_DIGITS);
        check_packet(path, copy, o, cid_seq, z);
        free(copy);
    }
    free(plain);
    free(in);
    t->data = out;
    t->len = o;
}

static void load_templates(void)
{
    char path[PATH_MAX], cid[128];
    size_t max_len = 0;
    struct payload_inflater *z = NULL;
    if (g.compress && (z = payload_inflater_new()) == NULL)
        die("out of memory");
    for (int k = 0; k < KIND_COUNT; k++) {
        snprintf(cid, sizeof(cid), "%s-%s-%0*d@hepgen", g.prefix, kind_tag[k], SEQ_DIGITS, 0);
        for (int i = 0; i < kind_npkts[k]; i++) {
            int r = snprintf(path, sizeof(path), "%s/v%d/%03d.hep", g.data_dir, g.hep_version,
                             kind_first[k] + i);
            if (r < 0 || (size_t)r >= sizeof(path))
                die("--data: path too long");
            build_tmpl(&g.tmpl[k][i], path, cid, z);
            if (g.tmpl[k][i].len > max_len)
                max_len = g.tmpl[k][i].len;
        }
    }
    payload_inflater_free(z);
    g.slot_size = (max_len + 63) & ~(size_t)63;
    info("templates: %s/v%d, %d+%d+%d packets%s, largest %zu bytes", g.data_dir, g.hep_version,
         kind_npkts[0], kind_npkts[1], kind_npkts[2], g.compress ? " (gzip payloads)" : "",
         max_len);
}

/* ----------------------------------------------------------- destinations */

/*
 * "udp:HOST:PORT" / "tcp:HOST:PORT": the split and the port are the
 * configuration's grammar (conf_split_host_port); HOST may be a name, so it
 * is resolved here.
 */
static void open_dest(struct dest *d, const char *text)
{
    char host[256], port[16];       /* port: an unsigned in decimal */
    struct conf_host_port hp;
    snprintf(d->text, sizeof(d->text), "%s", text);
    if (strncmp(text, "udp:", 4) == 0) {
        d->tcp = false;
    } else if (strncmp(text, "tcp:", 4) == 0) {
        d->tcp = true;
    } else {
        usage_error("-d \"%s\": expected udp:HOST:PORT or tcp:HOST:PORT", text);
    }
    const char *why = conf_split_host_port(text + 4, &hp);
    if (why != NULL)
        usage_error("-d \"%s\": %s", text, why);
    if (hp.hlen == 0 || hp.hlen >= sizeof(host))
        usage_error("-d \"%s\": bad host", text);
    memcpy(host, hp.host, hp.hlen);
    host[hp.hlen] = '\0';
    if (hp.port == 0)
        usage_error("-d \"%s\": port must be 1..65535", text);
    snprintf(port, sizeof(port), "%u", hp.port);
    if (d->tcp && g.hep_version != 3)
        usage_error("-d \"%s\": HEPv%d has no TCP framing: use udp", text, g.hep_version);

    struct addrinfo hints, *ai;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = d->tcp ? SOCK_STREAM : SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        usage_error("-d \"%s\": %s", text, gai_strerror(rc));
    d->fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (d->fd < 0)
        die("%s: socket: %s", text, strerror(errno));
    int sz = SNDBUF_BYTES;
    (void)setsockopt(d->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    if (connect(d->fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("%s: connect: %s", text, strerror(errno));
    freeaddrinfo(ai);
    if (d->tcp) {
        int one = 1;
        (void)setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

/* The batch of a destination: slots sized for the largest template. */
static void alloc_batch(struct dest *d)
{
    d->msgs = calloc((size_t)g.batch, sizeof(*d->msgs));
    d->iov = calloc((size_t)g.batch, sizeof(*d->iov));
    d->tp = calloc((size_t)g.batch, sizeof(*d->tp));
    d->kind = calloc((size_t)g.batch, sizeof(*d->kind));
    d->buf = malloc((size_t)g.batch * g.slot_size);
    if (d->msgs == NULL || d->iov == NULL || d->tp == NULL || d->kind == NULL || d->buf == NULL)
        die("out of memory");
    for (int i = 0; i < g.batch; i++) {
        d->iov[i].iov_base = d->buf + (size_t)i * g.slot_size;
        d->msgs[i].msg_hdr.msg_iov = &d->iov[i];
        d->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    info("destination %s", d->text);
}

/* --------------------------------------------------------------- sending */

/* The send time goes into every pending packet just before it leaves. */
static void stamp(struct dest *d)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint32_t sec = (uint32_t)now.tv_sec, usec = (uint32_t)(now.tv_nsec / 1000);
    for (int i = 0; i < d->pending; i++) {
        const struct tmpl *t = d->tp[i];
        if (!t->has_ts)
            continue;
        uint8_t *p = d->iov[i].iov_base;
        if (g.hep_version == 3) {
            bytes_put_be32(p + t->ts_off, sec);
            bytes_put_be32(p + t->ts_off + 4 + HEP3_CHUNK_HDR_LEN, usec);  /* TS_USEC's value */
        } else {
            bytes_put_le32(p + t->ts_off, sec);
            bytes_put_le32(p + t->ts_off + 4, usec);
        }
    }
}

static void count_sent(struct dest *d, int i)
{
    g.sent++;
    g.bytes += d->iov[i].iov_len;
    g.packets[d->kind[i]]++;
}

static void flush_udp(struct dest *d)
{
    int i = 0;
    while (i < d->pending) {
        int r = sendmmsg(d->fd, d->msgs + i, (unsigned)(d->pending - i), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* the first message failed (e.g. ECONNREFUSED): skip it */
            g.errors++;
            i++;
            continue;
        }
        for (int j = 0; j < r; j++)
            count_sent(d, i + j);
        i += r;
    }
}

static void flush_tcp(struct dest *d)
{
    struct iovec *iov = d->iov;
    int niov = d->pending;
    size_t total = 0;
    for (int i = 0; i < niov; i++)
        total += iov[i].iov_len;
    /* writev changes iov_base/len on partial writes: restore afterwards */
    struct iovec saved[MAX_BATCH];
    memcpy(saved, iov, (size_t)niov * sizeof(*iov));
    int first = 0;
    size_t done = 0;
    while (done < total && first < niov) {
        ssize_t w = writev(d->fd, iov + first, niov - first > IOV_MAX ? IOV_MAX : niov - first);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            g.errors += (uint64_t)(niov - first);
            info("%s: write: %s", d->text, strerror(errno));
            break;
        }
        done += (size_t)w;
        size_t left = (size_t)w;
        while (first < niov && left >= iov[first].iov_len) {
            left -= iov[first].iov_len;
            first++;
        }
        if (left > 0) {
            iov[first].iov_base = (uint8_t *)iov[first].iov_base + left;
            iov[first].iov_len -= left;
        }
    }
    memcpy(iov, saved, (size_t)niov * sizeof(*iov));
    for (int i = 0; i < first; i++)
        count_sent(d, i);
}

static void flush_all(void)
{
    for (int k = 0; k < g.ndests; k++) {
        struct dest *d = &g.dests[k];
        if (d->pending == 0)
            continue;
        stamp(d);
        if (d->tcp)
            flush_tcp(d);
        else
            flush_udp(d);
        d->pending = 0;
    }
    g.batch_pending = 0;
}

static void queue_packet(struct call *c, int idx)
{
    struct dest *d = &g.dests[c->dest];
    const struct tmpl *t = &g.tmpl[c->kind][idx];
    uint8_t *p = d->iov[d->pending].iov_base;
    memcpy(p, t->data, t->len);
    patch_seq(p, t, c->seq);
    d->iov[d->pending].iov_len = t->len;
    d->tp[d->pending] = t;
    d->kind[d->pending] = (uint8_t)c->kind;
    d->pending++;
    g.batch_pending++;
}

/* Smooth weighted round robin: exact shares, evenly spread. */
static enum kind next_kind(void)
{
    int total = 0, best = -1;
    for (int k = 0; k < KIND_COUNT; k++) {
        if (g.mix[k] == 0)
            continue;
        g.mix_credit[k] += (int)g.mix[k];
        total += (int)g.mix[k];
        if (best < 0 || g.mix_credit[k] > g.mix_credit[best])
            best = k;
    }
    g.mix_credit[best] -= total;
    return (enum kind)best;
}

static double elapsed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - g.t_start.tv_sec) + (double)(now.tv_nsec - g.t_start.tv_nsec) / 1e9;
}

/* Starts a call in slot c if the stop condition allows; false when not. */
static bool start_call(struct call *c)
{
    if (g_stop)
        return false;
    if (g.max_seconds > 0 && elapsed() >= g.max_seconds)
        return false;
    enum kind k = next_kind();
    if (g.max_packets > 0 && g.planned + (uint64_t)kind_npkts[k] > g.max_packets) {
        /* the drawn kind does not fit: the shortest one that does */
        int fit = -1;
        for (int j = KIND_COUNT - 1; j >= 0; j--)
            if (g.mix[j] > 0 && g.planned + (uint64_t)kind_npkts[j] <= g.max_packets &&
                (fit < 0 || kind_npkts[j] < kind_npkts[fit]))
                fit = j;
        if (fit < 0)
            return false;
        k = (enum kind)fit;
    }
    c->kind = k;
    c->active = true;
    c->next = 0;
    c->seq = g.next_seq++;
    c->dest = (int)(c->seq % (uint64_t)g.ndests);
    c->reorder = false;
    if (k == KIND_INVITE && g.reorder_pct > 0) {
        /* spread evenly: exactly PCT of every 100 INVITE calls */
        g.reorder_acc += g.reorder_pct;
        if (g.reorder_acc >= 100) {
            g.reorder_acc -= 100;
            c->reorder = true;
        }
    }
    g.planned += (uint64_t)kind_npkts[k];
    g.calls[k]++;
    return true;
}

/* Index of the capture packet sent as the call's Nth packet. */
static int packet_index(const struct call *c, int n)
{
    if (c->reorder && n < 2)
        return 1 - n;   /* 407 (1) first, then the INVITE (0) */
    return n;
}

static void pace(void)
{
    if (g.rate <= 0)
        return;
    /* due time of the next packet: start + sent / rate */
    double due = (double)(g.sent + g.errors) / g.rate;
    struct timespec ts = g.t_start;
    long long ns = (long long)(due * 1e9);
    ts.tv_sec += (time_t)(ns / NSEC_PER_SEC);
    ts.tv_nsec += (long)(ns % NSEC_PER_SEC);
    if (ts.tv_nsec >= NSEC_PER_SEC) {
        ts.tv_sec++;
        ts.tv_nsec -= NSEC_PER_SEC;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !g_stop)
        ;
}

static void run(void)
{
    int active = 0;
    for (int i = 0; i < g.window_size; i++)
        if (start_call(&g.window[i]))
            active++;
    pace();
    while (active > 0 && !g_stop) {
        for (int i = 0; i < g.window_size && !g_stop; i++) {
            struct call *c = &g.window[i];
            if (!c->active)
                continue;
            queue_packet(c, packet_index(c, c->next));
            if (++c->next == kind_npkts[c->kind]) {
                c->active = false;
                if (start_call(c))
                    c->active = true;
                else
                    active--;
            }
            if (g.batch_pending >= g.batch_eff) {
                flush_all();
                pace();
            }
        }
    }
    if (!g_stop)
        flush_all();
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    for (int i = 0; i < g.ndests; i++)
        open_dest(&g.dests[i], g.dest_text[i]);
    load_templates();
    for (int i = 0; i < g.ndests; i++)
        alloc_batch(&g.dests[i]);

    /* a paced batch covers at most BATCH_MAX_NS, so low rates stay smooth */
    g.batch_eff = g.batch;
    if (g.rate > 0) {
        double per = g.rate * (double)BATCH_MAX_NS / 1e9;
        if (per < g.batch_eff)
            g.batch_eff = per < 1 ? 1 : (int)per;
    }

    /* fewer calls in flight at low rates, so -s ends soon after S */
    g.window_size = CALL_WINDOW;
    if (g.rate > 0 && g.rate / DRAIN_PER_CALL < CALL_WINDOW)
        g.window_size = g.rate < DRAIN_PER_CALL ? 1 : (int)(g.rate / DRAIN_PER_CALL);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    clock_gettime(CLOCK_MONOTONIC, &g.t_start);
    run();
    double secs = elapsed();

    printf("{\"sent\":%llu,\"bytes\":%llu,\"seconds\":%.3f,\"rate\":%.0f,"
           "\"calls\":{\"invite\":%llu,\"register\":%llu,\"options\":%llu},"
           "\"packets\":{\"invite\":%llu,\"register\":%llu,\"options\":%llu},\"errors\":%llu,"
           "\"compress\":%s}\n",
           (unsigned long long)g.sent, (unsigned long long)g.bytes, secs,
           secs > 0 ? (double)g.sent / secs : 0.0,
           (unsigned long long)g.calls[0], (unsigned long long)g.calls[1],
           (unsigned long long)g.calls[2], (unsigned long long)g.packets[0],
           (unsigned long long)g.packets[1], (unsigned long long)g.packets[2],
           (unsigned long long)g.errors, g.compress ? "true" : "false");
    fflush(stdout);
    for (int i = 0; i < g.ndests; i++)
        close(g.dests[i].fd);
    return g.errors > 0 && g.sent == 0 ? EXIT_RUNTIME : EXIT_OK;
}
