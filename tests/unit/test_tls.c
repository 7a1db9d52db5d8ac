/*
 * test_tls.c - unit tests for src/tls.c: a configuration's certificates
 * loaded (and the errors of those that do not load), and handshakes between
 * its server and client contexts over a socket pair, both ends non-blocking
 * and driven in turn as an event loop would: what completes, what fails and
 * how each failure is classified, the peer's subject, data both ways.
 *
 * The certificates are made by tests/tls/mkcerts.sh (the openssl command)
 * in a directory of their own, once per run.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "tls.h"
#include "unit.h"

#define STEPS_MAX 64                /* handshake turns before a test gives up */
#define PATH_SIZE 4096

static char certs[PATH_SIZE];       /* the certificates' directory */
static char yaml[2 * PATH_SIZE];    /* the configuration written for a test */

static void make_certs(void)
{
    if (certs[0] != '\0')
        return;
    char tmpl[] = "/tmp/heprouter-test-tls-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpl));
    snprintf(certs, sizeof certs, "%s", tmpl);
    char cmd[2 * PATH_SIZE];
    snprintf(cmd, sizeof cmd, "bash '%s/../tls/mkcerts.sh' '%s' >/dev/null", TEST_UNIT_DIR, certs);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "\n%s: exit status %d (is the openssl command installed?)\n", cmd, rc);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

/* tmpl with every '@' replaced by the certificates' directory. */
static void expand(const char *tmpl, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = tmpl; *p != '\0' && n + 1 < size; p++) {
        if (*p != '@') {
            out[n++] = *p;
            continue;
        }
        size_t len = strlen(certs);
        CU_ASSERT_FATAL(n + len + 1 < size);
        memcpy(out + n, certs, len);
        n += len;
    }
    out[n] = '\0';
}

/*
 * A configuration with a tls: listener whose section is listener_tls and a
 * destination with a tls: target whose section is dest_tls ("" for none);
 * '@' in either stands for the certificates' directory.  err (may be NULL)
 * gets what loading says.  NULL when it does not load.
 */
static struct conf *load(const char *listener_tls, const char *dest_tls, char **err)
{
    make_certs();
    char a[2 * PATH_SIZE], b[2 * PATH_SIZE];
    expand(listener_tls, a, sizeof a);
    expand(dest_tls, b, sizeof b);
    expand("@/test.yaml", yaml, sizeof yaml);
    FILE *f = fopen(yaml, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f,
            "listen:\n"
            "  - address: tls:127.0.0.1:19061\n"
            "    tls: %s\n"
            "destinations:\n"
            "  d:\n"
            "    targets: [ \"tls:127.0.0.1:19062\" ]\n"
            "%s%s\n"
            "default: [ d ]\n",
            a, b[0] != '\0' ? "    tls: " : "", b);
    fclose(f);
    size_t len = 0;
    char *text = NULL;
    FILE *out = open_memstream(&text, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    struct conf *c = conf_load(yaml, out);
    if (c != NULL && (c->tls_set = tls_set_load(c, out)) == NULL) {
        conf_free(c);
        c = NULL;
    }
    fclose(out);
    if (err != NULL)
        *err = text;
    else
        free(text);
    return c;
}

static void unload(struct conf *c)
{
    if (c == NULL)
        return;
    tls_set_free(c->tls_set);
    conf_free(c);
}

/* The two ends of one connection. */
struct pair {
    int fd[2];                      /* 0: the server's, 1: the client's */
    struct tls_conn *server, *client;
    enum tls_status server_st, client_st;
};

static void pair_open(struct pair *p, struct conf *c, const char *server_name)
{
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    p->server = tls_conn_new(tls_set_listener(c->tls_set, 0), p->fd[0], true, NULL);
    p->client = tls_conn_new(tls_set_dest(c->tls_set, 0), p->fd[1], false, server_name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->server);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p->client);
    p->server_st = p->client_st = TLS_WANT_READ;
}

static void pair_close(struct pair *p)
{
    tls_conn_free(p->server);
    tls_conn_free(p->client);
    close(p->fd[0]);
    close(p->fd[1]);
}

static bool waiting(enum tls_status st)
{
    return st == TLS_WANT_READ || st == TLS_WANT_WRITE;
}

/* Turns both handshakes until neither waits any more (or STEPS_MAX turns). */
static void pair_handshake(struct pair *p)
{
    for (int i = 0; i < STEPS_MAX && (waiting(p->server_st) || waiting(p->client_st)); i++) {
        if (waiting(p->client_st))
            p->client_st = tls_handshake(p->client);
        if (waiting(p->server_st))
            p->server_st = tls_handshake(p->server);
    }
}

/* Reads into buf until len bytes came or the connection has nothing more now. */
static size_t read_all(struct tls_conn *c, uint8_t *buf, size_t len)
{
    size_t done = 0, got = 0;
    while (done < len && tls_read(c, buf + done, len - done, &got) == TLS_OK)
        done += got;
    return done;
}

static const char *const server_tls =
    "{ cert: @/server.pem, key: @/server.key, ca: @/ca.pem, require_client_cert: true }";
static const char *const client_tls = "{ ca: @/ca.pem, cert: @/client.pem, key: @/client.key }";

static void test_a_handshake_completes_and_carries_data_both_ways(void)
{
    struct conf *c = load(server_tls, client_tls, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct pair p;
    pair_open(&p, c, "localhost");
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.client_st, TLS_OK);
    CU_ASSERT_EQUAL(p.server_st, TLS_OK);
    CU_ASSERT_STRING_EQUAL(tls_conn_version(p.server), "TLSv1.3");

    char subject[TLS_SUBJECT_MAX], cn[TLS_SUBJECT_MAX];
    CU_ASSERT_TRUE(tls_conn_peer(p.server, subject, sizeof subject, cn, sizeof cn));
    CU_ASSERT_STRING_EQUAL(subject, "CN=kamailio-a,O=heprouter tests");
    CU_ASSERT_STRING_EQUAL(cn, "kamailio-a");

    /* more than one record (16384 bytes) of frames, written as a target writes */
    static uint8_t out[3 * TLS_RECORD_MAX + 100], in[sizeof out];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 7 + 3);
    size_t sent = 0, got = 0;
    for (int i = 0; i < STEPS_MAX && (sent < sizeof out || got < sizeof out); i++) {
        size_t put = 0;
        if (sent < sizeof out) {
            enum tls_status st = tls_write(p.client, out + sent, sizeof out - sent, &put);
            CU_ASSERT(st == TLS_OK || waiting(st));
            CU_ASSERT(put <= TLS_RECORD_MAX);
            sent += put;
        }
        got += read_all(p.server, in + got, sizeof in - got);
    }
    CU_ASSERT_EQUAL(sent, sizeof out);
    CU_ASSERT_EQUAL(got, sizeof out);
    CU_ASSERT(memcmp(in, out, sizeof out) == 0);
    CU_ASSERT_EQUAL(tls_buffered(p.server), 0);

    /* the server may speak too; a close_notify reads as closed */
    size_t put = 0;
    CU_ASSERT_EQUAL(tls_write(p.server, "ok", 2, &put), TLS_OK);
    uint8_t two[2];
    CU_ASSERT_EQUAL(read_all(p.client, two, 1), 1);
    CU_ASSERT_EQUAL(tls_buffered(p.client), 1);     /* the rest, taken from the socket already */
    CU_ASSERT_EQUAL(read_all(p.client, two + 1, 1), 1);
    CU_ASSERT(memcmp(two, "ok", 2) == 0);
    CU_ASSERT_EQUAL(tls_buffered(p.client), 0);
    tls_conn_free(p.client);
    p.client = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(tls_read(p.server, in, sizeof in, &n), TLS_CLOSED);
    pair_close(&p);
    unload(c);
}

/* A numeric target is checked against the IP addresses of the certificate. */
static void test_a_numeric_target_is_checked_by_its_address(void)
{
    struct conf *c = load(server_tls, client_tls, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct pair p;
    pair_open(&p, c, "127.0.0.1");
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.client_st, TLS_OK);
    pair_close(&p);
    pair_open(&p, c, "127.0.0.2");
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.client_st, TLS_FAILED);
    CU_ASSERT_EQUAL(tls_conn_failure(p.client), TLS_FAIL_CERTIFICATE);
    CU_ASSERT_PTR_NOT_NULL(strstr(tls_conn_error(p.client), "IP address mismatch"));
    pair_close(&p);
    unload(c);
}

static void test_a_server_of_another_name_is_refused(void)
{
    struct conf *c = load("{ cert: @/other.pem, key: @/other.key }", "{ ca: @/ca.pem }", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct pair p;
    pair_open(&p, c, "localhost");
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.client_st, TLS_FAILED);
    CU_ASSERT_EQUAL(tls_conn_failure(p.client), TLS_FAIL_CERTIFICATE);
    CU_ASSERT_PTR_NOT_NULL(strstr(tls_conn_error(p.client), "hostname mismatch"));
    /* the server hears the client's alert: a certificate failure on its side too */
    CU_ASSERT_EQUAL(p.server_st, TLS_FAILED);
    CU_ASSERT_EQUAL(tls_conn_failure(p.server), TLS_FAIL_CERTIFICATE);
    pair_close(&p);
    /* verify: false encrypts without knowing who listens */
    unload(c);
    c = load("{ cert: @/other.pem, key: @/other.key }", "{ verify: false }", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    pair_open(&p, c, "localhost");
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.client_st, TLS_OK);
    CU_ASSERT_EQUAL(p.server_st, TLS_OK);
    pair_close(&p);
    unload(c);
}

/* Client certificates: expired, from a CA nobody trusts, none at all. */
static void test_bad_client_certificates_are_classified(void)
{
    static const struct {
        const char *client;
        enum tls_failure failure;
        const char *why;
    } cases[] = {
        { "{ ca: @/ca.pem, cert: @/expired.pem, key: @/expired.key }", TLS_FAIL_CERTIFICATE,
          "certificate has expired" },
        { "{ ca: @/ca.pem, cert: @/rogue.pem, key: @/rogue.key }", TLS_FAIL_CERTIFICATE,
          "unable to get local issuer certificate" },
        { "{ ca: @/ca.pem }", TLS_FAIL_NO_CERTIFICATE, "peer did not return a certificate" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct conf *c = load(server_tls, cases[i].client, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        struct pair p;
        pair_open(&p, c, "localhost");
        pair_handshake(&p);
        CU_ASSERT_EQUAL(p.server_st, TLS_FAILED);
        CU_ASSERT_EQUAL(tls_conn_failure(p.server), cases[i].failure);
        if (strstr(tls_conn_error(p.server), cases[i].why) == NULL)
            fprintf(stderr, "\ncase %zu: %s (expected %s)\n", i, tls_conn_error(p.server), cases[i].why);
        CU_ASSERT_PTR_NOT_NULL(strstr(tls_conn_error(p.server), cases[i].why));
        pair_close(&p);
        unload(c);
    }
}

static void test_plaintext_is_a_protocol_failure(void)
{
    struct conf *c = load(server_tls, client_tls, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct pair p;
    pair_open(&p, c, "localhost");
    static const char hep[] = "HEP3\x00\x20 plain HEP sent to a TLS port";
    CU_ASSERT_EQUAL(write(p.fd[1], hep, sizeof hep - 1), (ssize_t)(sizeof hep - 1));
    CU_ASSERT_EQUAL(tls_handshake(p.server), TLS_FAILED);
    CU_ASSERT_EQUAL(tls_conn_failure(p.server), TLS_FAIL_PROTOCOL);
    pair_close(&p);

    /* closed before a word: a protocol failure too, never a wait */
    pair_open(&p, c, "localhost");
    shutdown(p.fd[1], SHUT_WR);
    CU_ASSERT_EQUAL(tls_handshake(p.server), TLS_CLOSED);
    pair_close(&p);
    unload(c);
}

/* A server with min_version 1.3 refuses a client that speaks at most 1.2. */
static void test_min_version_is_enforced(void)
{
    struct conf *c = load("{ cert: @/server.pem, key: @/server.key, min_version: \"1.3\" }",
                          "{ ca: @/ca.pem }", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    int fd[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0);
    struct tls_conn *server = tls_conn_new(tls_set_listener(c->tls_set, 0), fd[0], true, NULL);
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    SSL_CTX_set_max_proto_version(old, TLS1_2_VERSION);
    SSL *client = SSL_new(old);
    SSL_set_fd(client, fd[1]);
    SSL_set_connect_state(client);
    enum tls_status st = TLS_WANT_READ;
    int crc = -1;
    for (int i = 0; i < STEPS_MAX && waiting(st); i++) {
        crc = SSL_do_handshake(client);
        st = tls_handshake(server);
    }
    CU_ASSERT_EQUAL(st, TLS_FAILED);
    CU_ASSERT_EQUAL(tls_conn_failure(server), TLS_FAIL_PROTOCOL);
    CU_ASSERT_PTR_NOT_NULL(strstr(tls_conn_error(server), "unsupported protocol"));
    CU_ASSERT_NOT_EQUAL(crc, 1);
    ERR_clear_error();
    SSL_free(client);
    SSL_CTX_free(old);
    tls_conn_free(server);
    close(fd[0]);
    close(fd[1]);
    unload(c);
}

/* Files that do not load: one line each at the section's place, the system's reason. */
static void test_files_that_do_not_load_are_errors_at_their_section(void)
{
    char *err = NULL;
    struct conf *c = load("{ cert: @/server.pem, key: @/missing.key }", "{ ca: @/nothing.pem }", &err);
    CU_ASSERT_PTR_NULL(c);
    char tmpl[PATH_SIZE], want[4 * PATH_SIZE];
    snprintf(tmpl, sizeof tmpl,
             "@/test.yaml:3:10: tls: cannot load key @/missing.key: No such file or directory\n"
             "@/test.yaml:7:10: tls: cannot load ca @/nothing.pem: No such file or directory\n");
    expand(tmpl, want, sizeof want);
    CU_ASSERT_STRING_EQUAL(err, want);
    if (strcmp(err, want) != 0)
        fprintf(stderr, "\ngot:\n%s\nwant:\n%s", err, want);
    free(err);

    /* a key that is not the certificate's */
    c = load("{ cert: @/server.pem, key: @/client.key }", client_tls, &err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "key values mismatch"));
    free(err);

    /* no TLS anywhere: an empty set */
    struct conf plain;
    memset(&plain, 0, sizeof plain);
    struct tls_set *ts = tls_set_load(&plain, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ts);
    CU_ASSERT_PTR_NULL(tls_set_listener(ts, 0));
    CU_ASSERT_PTR_NULL(tls_set_dest(ts, 0));
    tls_set_free(ts);
}

/* A context outlives its set while a holder keeps a reference (a reload). */
static void test_a_context_outlives_its_set(void)
{
    struct conf *c = load(server_tls, client_tls, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct tls_ctx *kept = tls_ctx_ref(tls_set_dest(c->tls_set, 0));
    struct tls_ctx *server = tls_ctx_ref(tls_set_listener(c->tls_set, 0));
    unload(c);
    int fd[2];
    CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0);
    struct pair p = {
        .fd = { fd[0], fd[1] },
        .server = tls_conn_new(server, fd[0], true, NULL),
        .client = tls_conn_new(kept, fd[1], false, "localhost"),
        .server_st = TLS_WANT_READ,
        .client_st = TLS_WANT_READ,
    };
    tls_ctx_unref(kept);            /* the connections hold theirs */
    tls_ctx_unref(server);
    pair_handshake(&p);
    CU_ASSERT_EQUAL(p.client_st, TLS_OK);
    CU_ASSERT_EQUAL(p.server_st, TLS_OK);
    pair_close(&p);
}

static void remove_certs(void)
{
    if (certs[0] == '\0')
        return;
    char cmd[PATH_SIZE + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
    if (system(cmd) != 0)
        fprintf(stderr, "%s failed\n", cmd);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "a handshake completes and carries data both ways", test_a_handshake_completes_and_carries_data_both_ways },
        { "a numeric target is checked by its address", test_a_numeric_target_is_checked_by_its_address },
        { "a server of another name is refused", test_a_server_of_another_name_is_refused },
        { "bad client certificates are classified", test_bad_client_certificates_are_classified },
        { "plaintext is a protocol failure", test_plaintext_is_a_protocol_failure },
        { "min_version is enforced", test_min_version_is_enforced },
        { "files that do not load are errors at their section",
          test_files_that_do_not_load_are_errors_at_their_section },
        { "a context outlives its set", test_a_context_outlives_its_set },
        { NULL, NULL },
    };
    int rc = unit_run("tls", tests);
    remove_certs();
    return rc;
}
