/*
 * http.h - the small HTTP server of the metrics endpoints (an edge module,
 * on libmicrohttpd).
 *
 * It serves GET and HEAD of /metrics, /healthz and /readyz from its own
 * thread (libmicrohttpd's internal epoll thread) and knows nothing of what
 * they say: the handlers write the bodies.  Anything else is 404, any other
 * method 405.
 */
#ifndef HEPROUTER_HTTP_H
#define HEPROUTER_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct conf_addr;

struct http_handlers {
    /*
     * Each writes the response body to out and returns the HTTP status
     * (200, 503).  Called on the HTTP thread: they must be thread-safe.
     */
    int (*metrics)(void *arg, FILE *out);
    int (*healthz)(void *arg, FILE *out);
    int (*readyz)(void *arg, FILE *out);
    void *arg;
};

/* The Content-Type of /metrics: the Prometheus text format 0.0.4. */
#define HTTP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define HTTP_TEXT_CONTENT_TYPE "text/plain; charset=utf-8"

struct http;

/*
 * Starts serving on listen (its bytes and port; port 0: the kernel's
 * choice) with libmicrohttpd's own polling thread (epoll), at most
 * max_connections connections at once (more wait in the kernel's accept
 * queue until one closes),
 * closing connections idle for timeout_ms (rounded up to whole seconds,
 * libmicrohttpd's unit).  Returns NULL with why filled on failure.
 */
struct http *http_new(const struct conf_addr *listen, size_t max_connections, uint64_t timeout_ms,
                      const struct http_handlers *h, char *why, size_t whylen);

/* The port bound (the kernel's choice when listen asked for 0). */
unsigned http_port(const struct http *h);

/* Stops the thread, closes the connections and the socket; NULL is a no-op. */
void http_free(struct http *h);

#endif
