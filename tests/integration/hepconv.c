/*
 * hepconv.c - drives the HEP codec from the command line, for tests.
 *
 * The interoperability test (test_hepjs.sh) and the fuzz seeding script
 * (fuzz/run) need heprouter's own view of HEP files without linking to C:
 *
 *   hepconv decode FILE...
 *       One JSON object per line and file: every field hep_decode() found,
 *       or {"file": ..., "error": NAME, "error_text": TEXT} on failure.
 *       Exits 1 if any file failed to decode.
 *   hepconv encode [OPTIONS] IN OUT
 *       Decodes IN (v1, v2 or v3) and writes hep_encode()'s HEPv3 to OUT.
 *       --capture-id N       set chunk 0x000c (written as u32)
 *       --time SEC[.USEC]    set chunks 0x0009/0x000a (USEC: exactly 6 digits)
 *       --node-name S        set chunk 0x0013 ("" removes it)
 *       --auth-key S         set chunk 0x000e ("" removes it)
 *       --correlation-id S   set chunk 0x0011 ("" removes it)
 *   hepconv payload IN OUT
 *       Writes the payload bytes of IN to OUT (fuzz corpus seeding).
 *
 * JSON conventions: absent fields are left out; octet fields (auth_key,
 * correlation_id, node_name) are strings whose code points U+0000..U+00FF
 * are the bytes (latin1), so Buffer.from(s, "latin1") gives them back
 * exactly; the payload is hex; "chunks" lists [vendor, type, value length]
 * in wire order (v3 only).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "hep.h"

/* Larger than any HEP datagram or TCP frame (both are at most 64 KiB). */
#define HEPCONV_MAX_FILE    (1024u * 1024u)
#define HEPCONV_USEC_DIGITS 6

static const char *progname = "hepconv";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s decode FILE...\n"
            "       %s encode [--capture-id N] [--time SEC[.USEC]] [--node-name S]\n"
            "              [--auth-key S] [--correlation-id S] IN OUT\n"
            "       %s payload IN OUT\n",
            progname, progname, progname);
}

/*
 * Reads a whole file into a fresh buffer (*len bytes, allocated with at
 * least one byte so an empty file still gets a valid pointer).  Prints why
 * and returns NULL on failure.
 */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s: %s\n", progname, path, strerror(errno));
        return NULL;
    }
    uint8_t *buf = malloc(HEPCONV_MAX_FILE + 1);
    if (buf == NULL) {
        fprintf(stderr, "%s: out of memory\n", progname);
        fclose(f);
        return NULL;
    }
    size_t n = fread(buf, 1, HEPCONV_MAX_FILE + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "%s: %s: read error\n", progname, path);
        free(buf);
        return NULL;
    }
    if (n > HEPCONV_MAX_FILE) {
        fprintf(stderr, "%s: %s: larger than %u bytes\n", progname, path,
                HEPCONV_MAX_FILE);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s: %s\n", progname, path, strerror(errno));
        return -1;
    }
    size_t n = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || n != len) {
        fprintf(stderr, "%s: %s: write error\n", progname, path);
        return -1;
    }
    return 0;
}

/* Writes bytes as a JSON string, one code point per byte (latin1). */
static void json_string(const uint8_t *data, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        uint8_t c = data[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20 || c >= 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void json_bytes(const char *key, const uint8_t *data, size_t len)
{
    printf(",\"%s\":", key);
    json_string(data, len);
}

static void json_hex(const char *key, const uint8_t *data, size_t len)
{
    printf(",\"%s\":\"", key);
    for (size_t i = 0; i < len; i++) {
        printf("%02x", data[i]);
    }
    putchar('"');
}

/* Writes a file name as a JSON string (ASCII control bytes escaped). */
static void json_name(const char *name)
{
    printf("{\"file\":");
    json_string((const uint8_t *)name, strlen(name));
}

/* An address as inet_ntop() text; hex if its length is neither 4 nor 16. */
static void json_address(const char *key, const uint8_t *addr, uint8_t addr_len)
{
    char text[INET6_ADDRSTRLEN];
    int af = addr_len == 16 ? AF_INET6 : AF_INET;

    if (addr_len != 4 && addr_len != 16) {
        json_hex(key, addr, addr_len);
        return;
    }
    if (inet_ntop(af, addr, text, sizeof(text)) == NULL) {
        json_hex(key, addr, addr_len);
        return;
    }
    printf(",\"%s\":\"%s\"", key, text);
}

static void json_view(const struct hep_view *v)
{
    printf(",\"version\":%u,\"len\":%zu", v->version, v->raw.len);
    if (v->present & HEP_HAS_FAMILY) {
        printf(",\"family\":%u", v->family);
    }
    if (v->present & HEP_HAS_IP_PROTO) {
        printf(",\"ip_proto\":%u", v->ip_proto);
    }
    if ((v->present & HEP_HAS_SRC_IP) && v->src_ip != NULL) {
        json_address("src", v->src_ip, v->addr_len);
    }
    if ((v->present & HEP_HAS_DST_IP) && v->dst_ip != NULL) {
        json_address("dst", v->dst_ip, v->addr_len);
    }
    if (v->present & HEP_HAS_SRC_PORT) {
        printf(",\"sport\":%u", v->src_port);
    }
    if (v->present & HEP_HAS_DST_PORT) {
        printf(",\"dport\":%u", v->dst_port);
    }
    if (v->present & HEP_HAS_TS) {
        printf(",\"ts_sec\":%" PRIu32 ",\"ts_usec\":%" PRIu32, v->ts_sec,
               v->ts_usec);
    }
    if (v->present & HEP_HAS_PROTO_TYPE) {
        printf(",\"proto_type\":%u", v->proto_type);
    }
    if (v->present & HEP_HAS_CAPTURE_ID) {
        printf(",\"capture_id\":%" PRIu32 ",\"capture_id_len\":%u",
               v->capture_id, v->capture_id_len);
    }
    if (v->present & HEP_HAS_KEEPALIVE) {
        printf(",\"keepalive\":%u", v->keepalive);
    }
    if (v->present & HEP_HAS_VLAN) {
        printf(",\"vlan\":%u", v->vlan);
    }
    if (v->present & HEP_HAS_AUTH_KEY) {
        json_bytes("auth_key", v->auth_key.data, v->auth_key.len);
    }
    if (v->present & HEP_HAS_CORRELATION_ID) {
        json_bytes("correlation_id", v->correlation_id.data,
                   v->correlation_id.len);
    }
    if (v->present & HEP_HAS_NODE_NAME) {
        json_bytes("node_name", v->node_name.data, v->node_name.len);
    }
    if (v->present & HEP_HAS_PAYLOAD) {
        printf(",\"compressed\":%s,\"payload_len\":%zu",
               v->compressed ? "true" : "false", v->payload.len);
        json_hex("payload_hex", v->payload.data, v->payload.len);
    }
    if (v->version == 3) {
        struct hep_chunk_iter it;
        struct hep_chunk chunk;
        const char *sep = "";

        printf(",\"chunks\":[");
        hep_chunk_iter_init(&it, v);
        while (hep_chunk_next(&it, &chunk)) {
            printf("%s[%u,%u,%zu]", sep, chunk.vendor, chunk.type,
                   chunk.value.len);
            sep = ",";
        }
        putchar(']');
    }
}

static int cmd_decode(int argc, char **argv)
{
    int failures = 0;

    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        size_t len;
        uint8_t *buf = read_file(argv[i], &len);
        if (buf == NULL) {
            failures++;
            continue;
        }
        struct hep_view view;
        int rc = hep_decode(buf, len, &view);
        json_name(argv[i]);
        if (rc == HEP_OK) {
            json_view(&view);
        } else {
            printf(",\"error\":\"%s\",\"error_text\":\"%s\"",
                   hep_status_name(rc), hep_strerror(rc));
            failures++;
        }
        printf("}\n");
        free(buf);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: write error on stdout\n", progname);
        return 1;
    }
    return failures == 0 ? 0 : 1;
}

/*
 * Parses a decimal u32 with the configuration's number grammar
 * (conf_parse_number); rejects signs ("-0" too), spaces, empty input and
 * overflow.
 */
static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;
    if (*s < '0' || *s > '9' || conf_parse_number(s, 0, UINT32_MAX, &v) != CONF_NUMBER_OK) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* SEC or SEC.USEC with exactly six microsecond digits. */
static int parse_time(const char *s, uint32_t *sec, uint32_t *usec)
{
    char text[32];
    size_t n = strlen(s);

    if (n >= sizeof(text)) {
        return -1;
    }
    memcpy(text, s, n + 1);
    char *dot = strchr(text, '.');
    *usec = 0;
    if (dot != NULL) {
        *dot = '\0';
        if (strlen(dot + 1) != HEPCONV_USEC_DIGITS
            || parse_u32(dot + 1, usec) != 0) {
            return -1;
        }
    }
    return parse_u32(text, sec);
}

static void set_bytes(struct hep_bytes_override *o, const char *s)
{
    o->set = true;
    o->value.data = (const uint8_t *)s;
    o->value.len = strlen(s);
}

enum encode_option {
    OPT_CAPTURE_ID = 1,
    OPT_TIME,
    OPT_NODE_NAME,
    OPT_AUTH_KEY,
    OPT_CORRELATION_ID,
};

static int cmd_encode(int argc, char **argv)
{
    static const struct option options[] = {
        { "capture-id", required_argument, NULL, OPT_CAPTURE_ID },
        { "time", required_argument, NULL, OPT_TIME },
        { "node-name", required_argument, NULL, OPT_NODE_NAME },
        { "auth-key", required_argument, NULL, OPT_AUTH_KEY },
        { "correlation-id", required_argument, NULL, OPT_CORRELATION_ID },
        { NULL, 0, NULL, 0 },
    };
    struct hep_overrides ov;
    int opt;

    memset(&ov, 0, sizeof(ov));
    optind = 0;         /* argv[0] is "encode"; 0 also resets getopt */
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_CAPTURE_ID:
            if (parse_u32(optarg, &ov.capture_id) != 0) {
                fprintf(stderr, "%s: --capture-id \"%s\": not a u32\n",
                        progname, optarg);
                return 2;
            }
            ov.set_capture_id = true;
            break;
        case OPT_TIME:
            if (parse_time(optarg, &ov.ts_sec, &ov.ts_usec) != 0) {
                fprintf(stderr, "%s: --time \"%s\": expected SEC or "
                        "SEC.USEC (6 digits)\n", progname, optarg);
                return 2;
            }
            ov.set_time = true;
            break;
        case OPT_NODE_NAME:
            set_bytes(&ov.node_name, optarg);
            break;
        case OPT_AUTH_KEY:
            set_bytes(&ov.auth_key, optarg);
            break;
        case OPT_CORRELATION_ID:
            set_bytes(&ov.correlation_id, optarg);
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    const char *in_path = argv[optind];
    const char *out_path = argv[optind + 1];

    size_t len;
    uint8_t *in = read_file(in_path, &len);
    if (in == NULL) {
        return 1;
    }
    int status = 1;
    uint8_t *out = NULL;
    struct hep_view view;
    int rc = hep_decode(in, len, &view);
    if (rc != HEP_OK) {
        fprintf(stderr, "%s: %s: cannot decode: %s (%s)\n", progname,
                in_path, hep_strerror(rc), hep_status_name(rc));
        goto done;
    }
    size_t need = hep_encoded_len(&view, &ov);
    out = malloc(need > 0 ? need : 1);
    if (out == NULL) {
        fprintf(stderr, "%s: out of memory\n", progname);
        goto done;
    }
    size_t out_len = 0;
    rc = hep_encode(&view, &ov, out, need, &out_len);
    if (rc != HEP_OK) {
        fprintf(stderr, "%s: %s: cannot encode: %s (%s)\n", progname,
                in_path, hep_strerror(rc), hep_status_name(rc));
        goto done;
    }
    if (out_len != need) {
        fprintf(stderr, "%s: %s: hep_encode wrote %zu bytes, "
                "hep_encoded_len said %zu\n", progname, in_path, out_len, need);
        goto done;
    }
    if (write_file(out_path, out, out_len) == 0) {
        status = 0;
    }
done:
    free(out);
    free(in);
    return status;
}

static int cmd_payload(int argc, char **argv)
{
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    size_t len;
    uint8_t *in = read_file(argv[0], &len);
    if (in == NULL) {
        return 1;
    }
    int status = 1;
    struct hep_view view;
    int rc = hep_decode(in, len, &view);
    if (rc != HEP_OK) {
        fprintf(stderr, "%s: %s: cannot decode: %s (%s)\n", progname,
                argv[0], hep_strerror(rc), hep_status_name(rc));
    } else if (write_file(argv[1], view.payload.data, view.payload.len) == 0) {
        status = 0;
    }
    free(in);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "decode") == 0) {
        return cmd_decode(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "encode") == 0) {
        return cmd_encode(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "payload") == 0) {
        return cmd_payload(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "%s: unknown command \"%s\"\n", progname, cmd);
    usage(stderr);
    return 2;
}
