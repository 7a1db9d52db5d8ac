/*
 * tls.c - OpenSSL 3 contexts for a configuration and non-blocking connections.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf.h"

/*
 * Bytes a connection's reads take from its socket at once: several of
 * Kamailio's records (one per packet), while most of a large record's body
 * is read straight into OpenSSL's own buffer, not copied twice.
 */
#define TLS_READ_BUFFER (TLS_RECORD_MAX / 4)

/* The TLS 1.3 cipher suites, in the order of preference (all of OpenSSL's default ones). */
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* Room for one error's text: OpenSSL's reason and the certificate check's. */
#define TLS_ERROR_MAX 256

/* The session id context a server's sessions carry (client certificates and resumption need one). */
static const unsigned char tls_session_context[] = "heprouter";

/* Shared by the listeners or targets using it, each holding a reference (workers: atomically). */
struct tls_ctx {
    SSL_CTX *ssl;
    atomic_uint refs;
};

_Static_assert(TLS_RECORD_MAX == SSL3_RT_MAX_PLAIN_LENGTH, "TLS_RECORD_MAX is a TLS record's plain text");

struct tls_set {
    struct tls_ctx **listeners;     /* nlisteners; NULL entries: not tls: */
    size_t nlisteners;
    struct tls_ctx **dests;         /* ndests; NULL entries: no tls: target */
    size_t ndests;
};

struct tls_conn {
    SSL *ssl;
    enum tls_failure failure;
    char error[TLS_ERROR_MAX];
};

/* ---- contexts ---- */

struct tls_ctx *tls_ctx_ref(struct tls_ctx *c)
{
    if (c != NULL)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void tls_ctx_unref(struct tls_ctx *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    SSL_CTX_free(c->ssl);
    free(c);
}

/*
 * One line "FILE:LINE:COL: tls: cannot load WHAT PATH: reason": the
 * system's error when a file could not be read, else OpenSSL's first reason
 * (the cause; the later ones say where it surfaced).
 */
static void load_error(FILE *err, const struct conf *conf, const struct conf_tls *t, const char *what,
                       const char *path)
{
    char reason[TLS_ERROR_MAX] = "unknown error";
    unsigned long e;
    bool system = false, first = true;
    while ((e = ERR_get_error()) != 0) {
        if (ERR_SYSTEM_ERROR(e)) {
            snprintf(reason, sizeof reason, "%s", strerror(ERR_GET_REASON(e)));
            system = true;
        } else if (!system && first) {
            first = false;
            const char *r = ERR_reason_error_string(e);
            snprintf(reason, sizeof reason, "%s", r != NULL ? r : "OpenSSL error");
        }
    }
    if (err != NULL)
        fprintf(err, "%s:%zu:%zu: tls: cannot load %s%s%s: %s\n", conf->path, t->line, t->col, what,
                path[0] != '\0' ? " " : "", path, reason);
}

/* A context that could not be made: the error said, the context freed; NULL. */
static SSL_CTX *ctx_failed(SSL_CTX *ssl, FILE *err, const struct conf *conf, const struct conf_tls *t,
                           const char *what, const char *path)
{
    load_error(err, conf, t, what, path);
    SSL_CTX_free(ssl);
    return NULL;
}

static int min_version(int v)
{
    return v == CONF_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/* What both kinds of context share: versions, modes, the certificate and key when given. */
static SSL_CTX *ctx_common(const SSL_METHOD *method, const struct conf *conf, const struct conf_tls *t, FILE *err)
{
    ERR_clear_error();
    SSL_CTX *ssl = SSL_CTX_new(method);
    if (ssl == NULL) {
        load_error(err, conf, t, "a TLS context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ssl, min_version(t->min_version));
    /*
     * Partial writes: a stream queue writes what the socket takes; the
     * moving buffer: a retried write may come from a ring that moved.  The
     * record buffers stay allocated (releasing them between records costs
     * a malloc and a free per record; about 34 KB per connection).  A peer
     * closing without close_notify is an end of file, not an error: HEP
     * senders do.  No renegotiation.
     */
    SSL_CTX_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ssl,
                        SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* TLS 1.3: AES-128-GCM first (10 rounds to AES-256's 14, the same GCM), as offered and as chosen */
    SSL_CTX_set_ciphersuites(ssl, TLS13_SUITES);
    if (t->cert != NULL && SSL_CTX_use_certificate_chain_file(ssl, t->cert) != 1)
        return ctx_failed(ssl, err, conf, t, "cert", t->cert);
    if (t->cert != NULL && SSL_CTX_use_PrivateKey_file(ssl, t->key, SSL_FILETYPE_PEM) != 1)
        return ctx_failed(ssl, err, conf, t, "key", t->key);
    if (t->cert != NULL && SSL_CTX_check_private_key(ssl) != 1)
        return ctx_failed(ssl, err, conf, t, "key (it does not match cert)", t->key);
    if (t->ca != NULL && SSL_CTX_load_verify_locations(ssl, t->ca, NULL) != 1)
        return ctx_failed(ssl, err, conf, t, "ca", t->ca);
    return ssl;
}

static struct tls_ctx *ctx_wrap(SSL_CTX *ssl)
{
    if (ssl == NULL)
        return NULL;
    struct tls_ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        SSL_CTX_free(ssl);
        return NULL;
    }
    c->ssl = ssl;
    atomic_init(&c->refs, 1);
    return c;
}

static struct tls_ctx *server_ctx(const struct conf *conf, const struct conf_tls *t, FILE *err)
{
    SSL_CTX *ssl = ctx_common(TLS_server_method(), conf, t, err);
    if (ssl == NULL)
        return NULL;
    SSL_CTX_set_session_id_context(ssl, tls_session_context, sizeof tls_session_context - 1);
    /*
     * No session tickets, no resumption: a HEP sender keeps its connection,
     * and a ticket it never reads would make its close a reset, which
     * throws away what it sent last (still in our receive queue).
     */
    SSL_CTX_set_num_tickets(ssl, 0);
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    int mode = SSL_VERIFY_NONE;
    if (t->ca != NULL) {
        /* ask for a certificate; one that is sent must chain to ca */
        mode = SSL_VERIFY_PEER;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ssl, names);
        ERR_clear_error();
    }
    if (t->require_client_cert)
        mode |= SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ssl, mode, NULL);
    return ctx_wrap(ssl);
}

static struct tls_ctx *client_ctx(const struct conf *conf, const struct conf_tls *t, FILE *err)
{
    SSL_CTX *ssl = ctx_common(TLS_client_method(), conf, t, err);
    if (ssl == NULL)
        return NULL;
    if (t->verify) {
        if (t->ca == NULL && SSL_CTX_set_default_verify_paths(ssl) != 1)
            return ctx_wrap(ctx_failed(ssl, err, conf, t, "the system's CA store", ""));
        SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    return ctx_wrap(ssl);
}

struct tls_set *tls_set_load(const struct conf *conf, FILE *err)
{
    struct tls_set *ts = calloc(1, sizeof *ts);
    if (ts == NULL)
        return NULL;
    bool failed = false;
    ts->nlisteners = conf->nlisten;
    ts->ndests = conf->ndests;
    ts->listeners = calloc(conf->nlisten ? conf->nlisten : 1, sizeof *ts->listeners);
    ts->dests = calloc(conf->ndests ? conf->ndests : 1, sizeof *ts->dests);
    if (ts->listeners == NULL || ts->dests == NULL) {
        if (err != NULL)
            fprintf(err, "%s: tls: out of memory\n", conf->path);
        tls_set_free(ts);
        return NULL;
    }
    /* listeners sharing the top-level section share one context (reported once) */
    struct tls_ctx *top = NULL;
    bool top_failed = false;
    for (size_t i = 0; i < conf->nlisten; i++) {
        if (!conf->listen[i].tls)
            continue;
        const struct conf_tls *t = conf_listen_tls(conf, i);
        if (t == &conf->tls) {
            if (top == NULL && !top_failed) {
                top = server_ctx(conf, t, err);
                top_failed = top == NULL;
            }
            ts->listeners[i] = tls_ctx_ref(top);
        } else {
            ts->listeners[i] = server_ctx(conf, t, err);
        }
        failed |= ts->listeners[i] == NULL;
    }
    tls_ctx_unref(top);
    for (size_t i = 0; i < conf->ndests; i++) {
        const struct conf_dest *d = &conf->dests[i];
        bool any = false;
        for (size_t j = 0; j < d->ntargets; j++)
            any |= d->targets[j].tls;
        if (!any)
            continue;
        ts->dests[i] = client_ctx(conf, &d->tls, err);
        failed |= ts->dests[i] == NULL;
    }
    if (failed) {
        tls_set_free(ts);
        return NULL;
    }
    return ts;
}

void tls_set_free(struct tls_set *ts)
{
    if (ts == NULL)
        return;
    for (size_t i = 0; ts->listeners != NULL && i < ts->nlisteners; i++)
        tls_ctx_unref(ts->listeners[i]);
    for (size_t i = 0; ts->dests != NULL && i < ts->ndests; i++)
        tls_ctx_unref(ts->dests[i]);
    free(ts->listeners);
    free(ts->dests);
    free(ts);
}

struct tls_ctx *tls_set_listener(const struct tls_set *ts, size_t i)
{
    return ts != NULL && i < ts->nlisteners ? ts->listeners[i] : NULL;
}

struct tls_ctx *tls_set_dest(const struct tls_set *ts, size_t di)
{
    return ts != NULL && di < ts->ndests ? ts->dests[di] : NULL;
}

/* ---- connections ---- */

/*
 * The socket under a connection: writes go to it straight, reads through a
 * buffer of TLS_READ_BUFFER bytes, so that one read() takes every record
 * the socket holds (Kamailio writes a record per packet) and OpenSSL
 * takes a record's header and body from memory.  (OpenSSL's own read-ahead
 * moves what is left of its buffer to the front after every record.)
 */
static int set_bios(SSL *ssl, int fd)
{
    BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE), *buf = BIO_new(BIO_f_buffer());
    if (sock == NULL || buf == NULL || BIO_set_read_buffer_size(buf, TLS_READ_BUFFER) != 1 ||
        BIO_up_ref(sock) != 1) {
        BIO_free(sock);
        BIO_free(buf);
        return -1;
    }
    BIO_push(buf, sock);
    SSL_set_bio(ssl, buf, sock);    /* each takes one of sock's two references */
    return 0;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, bool server, const char *server_name)
{
    struct tls_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    ERR_clear_error();
    c->ssl = SSL_new(ctx->ssl);     /* holds a reference to the context */
    if (c->ssl == NULL || set_bios(c->ssl, fd) != 0) {
        tls_conn_free(c);
        return NULL;
    }
    if (server) {
        SSL_set_accept_state(c->ssl);
        return c;
    }
    SSL_set_connect_state(c->ssl);
    if (server_name != NULL && server_name[0] != '\0') {
        unsigned char ip[sizeof(struct in6_addr)];
        bool is_ip = inet_pton(AF_INET, server_name, ip) == 1 || inet_pton(AF_INET6, server_name, ip) == 1;
        if (is_ip) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), server_name);
        } else {
            SSL_set_tlsext_host_name(c->ssl, server_name);
            SSL_set1_host(c->ssl, server_name);
        }
    }
    ERR_clear_error();
    return c;
}

void tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL) {
        if (SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl);   /* one try: the socket takes the alert now or never */
        SSL_free(c->ssl);
    }
    ERR_clear_error();
    free(c);
}

/* A failure's kind, from OpenSSL's reason and the certificate check's result. */
static enum tls_failure classify(int reason, long verify)
{
    switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return TLS_FAIL_NO_CERTIFICATE;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return TLS_FAIL_CERTIFICATE;
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return TLS_FAIL_NO_CERTIFICATE;
    default:
        return verify != X509_V_OK ? TLS_FAIL_CERTIFICATE : TLS_FAIL_PROTOCOL;
    }
}

/* Maps an SSL_* call's result; on failure, keeps why. */
static enum tls_status status_of(struct tls_conn *c, int rc)
{
    int e = SSL_get_error(c->ssl, rc);
    switch (e) {
    case SSL_ERROR_NONE:
        return TLS_OK;
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return TLS_CLOSED;
    case SSL_ERROR_SYSCALL: {
        int saved = errno;
        unsigned long q = ERR_get_error();
        ERR_clear_error();
        if (q == 0 && saved == 0)
            return TLS_CLOSED;
        c->failure = TLS_FAIL_PROTOCOL;
        snprintf(c->error, sizeof c->error, "%s", saved != 0 ? strerror(saved) : "system error");
        return TLS_FAILED;
    }
    default: {
        unsigned long q = ERR_peek_last_error();
        long verify = SSL_get_verify_result(c->ssl);
        int reason = ERR_GET_REASON(q);
        const char *why = ERR_reason_error_string(q);
        c->failure = classify(reason, verify);
        if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK)
            snprintf(c->error, sizeof c->error, "certificate verify failed: %s",
                     X509_verify_cert_error_string(verify));
        else
            snprintf(c->error, sizeof c->error, "%s", why != NULL ? why : "TLS error");
        ERR_clear_error();
        return TLS_FAILED;
    }
    }
}

enum tls_status tls_handshake(struct tls_conn *c)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(c->ssl);
    return rc == 1 ? TLS_OK : status_of(c, rc);
}

/*
 * Reads and writes do not clear OpenSSL's error queue first, as it is
 * always left empty: every failure takes its errors out (status_of), and
 * nothing else on a worker's thread uses OpenSSL.
 */
enum tls_status tls_read(struct tls_conn *c, void *buf, size_t len, size_t *got)
{
    errno = 0;
    *got = 0;
    if (SSL_read_ex(c->ssl, buf, len, got) == 1)
        return TLS_OK;
    return status_of(c, 0);
}

enum tls_status tls_write(struct tls_conn *c, const void *buf, size_t len, size_t *put)
{
    errno = 0;
    *put = 0;
    if (SSL_write_ex(c->ssl, buf, len, put) == 1)
        return TLS_OK;
    return status_of(c, 0);
}

size_t tls_buffered(const struct tls_conn *c)
{
    int plain = SSL_pending(c->ssl);
    long raw = (long)BIO_pending(SSL_get_rbio(c->ssl));
    return (size_t)(plain > 0 ? plain : 0) + (size_t)(raw > 0 ? raw : 0);
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->error[0] != '\0' ? c->error : "TLS error";
}

enum tls_failure tls_conn_failure(const struct tls_conn *c)
{
    return c->failure;
}

const char *tls_conn_version(const struct tls_conn *c)
{
    return SSL_get_version(c->ssl);
}

bool tls_conn_peer(const struct tls_conn *c, char *subject, size_t subject_size, char *cn, size_t cn_size)
{
    subject[0] = '\0';
    cn[0] = '\0';
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    if (peer == NULL || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return false;
    X509_NAME *name = X509_get_subject_name(peer);
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio != NULL) {
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
        int n = BIO_read(bio, subject, (int)(subject_size > 1 ? subject_size - 1 : 0));
        subject[n > 0 ? n : 0] = '\0';
        BIO_free(bio);
    }
    int n = X509_NAME_get_text_by_NID(name, NID_commonName, cn, (int)cn_size);
    if (n < 0)
        cn[0] = '\0';
    ERR_clear_error();
    return true;
}
