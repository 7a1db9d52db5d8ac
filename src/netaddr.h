/*
 * netaddr.h - socket addresses at the edge: their text, and the socket
 * address of a configured one.
 *
 * The configuration (conf.h) keeps an address as bytes, a length and a
 * port, so the core needs no socket header; the modules that open sockets
 * (ingest, dest, the tools) turn it into a struct sockaddr here, and write
 * every peer and bound address the same way: "127.0.0.1:9060",
 * "[::1]:9060".
 */
#ifndef HEPROUTER_NETADDR_H
#define HEPROUTER_NETADDR_H

#include <stddef.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct conf_addr;

/* Room for the longest text netaddr_format() writes, NUL included. */
#define NETADDR_TEXT_MAX (INET6_ADDRSTRLEN + sizeof "[]:65535")

/*
 * Writes sa as "1.2.3.4:5060" or "[::1]:5060" (numeric, no scope id) into
 * buf, "-" for NULL and "(family N)" for another family, cut to fit len
 * (> 0).  Returns buf.
 */
const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len);

/* The port of an IPv4 or IPv6 socket address; 0 for another family. */
unsigned netaddr_port(const struct sockaddr *sa);

/* The address bytes of sa (network order) in *bytes: 4 (IPv4), 16 (IPv6), or 0 (other). */
unsigned netaddr_bytes(const struct sockaddr *sa, const uint8_t **bytes);

/* Fills ss with a's address and port; returns its length (0: a holds no address). */
socklen_t netaddr_from_conf(const struct conf_addr *a, struct sockaddr_storage *ss);

#endif
