/*
 * http.c - the metrics endpoints served by libmicrohttpd: routing by path
 * and method, and response bodies built by the handlers into memory.
 */
#include "http.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf.h"
#include "log.h"
#include "netaddr.h"

#define HTTP_LOG_LINE_MAX 512       /* one libmicrohttpd message */
#define MS_PER_S 1000

struct http {
    struct MHD_Daemon *daemon;
    struct http_handlers handlers;
    unsigned port;
};

static const char not_found[] = "not found\n";
static const char not_allowed[] = "method not allowed\n";
static const char no_memory[] = "out of memory\n";

/*
 * libmicrohttpd's messages go to our log, never to stderr.  They are
 * warnings: a failure to start is also returned by http_new(), and the
 * rest are about one connection (a client gone mid-request).
 */
static void http_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[HTTP_LOG_LINE_MAX];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    log_warn("http: %s", line);
}

/* Queues a fixed body (not copied, not freed) with a text Content-Type. */
static enum MHD_Result queue_static(struct MHD_Connection *c, unsigned status, const char *body, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, HTTP_TEXT_CONTENT_TYPE);
    if (allow != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/*
 * Runs one handler into a memory stream and hands the body to
 * libmicrohttpd, which frees it (MHD_RESPMEM_MUST_FREE) once sent.
 */
static enum MHD_Result queue_handler(struct MHD_Connection *c, int (*fn)(void *, FILE *), void *arg,
                                     const char *content_type)
{
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (out == NULL)
        return queue_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR, no_memory, NULL);
    int status = fn(arg, out);
    if (fclose(out) != 0 || body == NULL) {
        free(body);
        return queue_static(c, MHD_HTTP_INTERNAL_SERVER_ERROR, no_memory, NULL);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/*
 * Answers on the first call for a request: the endpoints take no body, so
 * there is nothing to wait for (a POST's body is discarded by
 * libmicrohttpd after the 405).
 */
static enum MHD_Result http_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    struct http *h = cls;
    int (*fn)(void *, FILE *) = NULL;
    const char *content_type = HTTP_TEXT_CONTENT_TYPE;
    if (strcmp(url, "/metrics") == 0) {
        fn = h->handlers.metrics;
        content_type = HTTP_METRICS_CONTENT_TYPE;
    } else if (strcmp(url, "/healthz") == 0) {
        fn = h->handlers.healthz;
    } else if (strcmp(url, "/readyz") == 0) {
        fn = h->handlers.readyz;
    }
    if (fn == NULL)
        return queue_static(c, MHD_HTTP_NOT_FOUND, not_found, NULL);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return queue_static(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, "GET, HEAD");
    return queue_handler(c, fn, h->handlers.arg, content_type);
}

struct http *http_new(const struct conf_addr *listen, size_t max_connections, uint64_t timeout_ms,
                      const struct http_handlers *handlers, char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sslen = netaddr_from_conf(listen, &ss);
    if (sslen == 0) {
        snprintf(why, whylen, "%s: not an IP address", listen->text);
        return NULL;
    }
    if (max_connections == 0 || max_connections > UINT_MAX) {
        snprintf(why, whylen, "max_connections %zu is out of range", max_connections);
        return NULL;
    }
    uint64_t timeout_s = (timeout_ms + MS_PER_S - 1) / MS_PER_S;
    if (timeout_s > UINT_MAX)
        timeout_s = UINT_MAX;
    struct http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    h->handlers = *handlers;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    h->daemon = MHD_start_daemon(flags, (uint16_t)listen->port, NULL, NULL, http_request, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,     /* first: all messages */
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)timeout_s,
                                 MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(why, whylen, "cannot serve HTTP on %s%s%s", listen->text, errno ? ": " : "",
                 errno ? strerror(errno) : "");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : listen->port;
    return h;
}

unsigned http_port(const struct http *h)
{
    return h->port;
}

void http_free(struct http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
