/*
 * ready.h - the "listening" lines a process writes once its sockets are bound.
 *
 * A readiness file tells whoever started a program (a test, a supervisor)
 * that it is ready and where it listens, which matters when it was given
 * port 0 and the kernel chose:
 *
 *   listening udp:127.0.0.1:40000
 *   listening tcp:[::1]:40001
 *
 * one line per listener, in the order they were configured.  heprouter
 * (--ready-file) and hepdump (--ready-file) write the same format, so one
 * reader serves both.  The file is written whole under a temporary name in
 * the same directory and renamed into place: a reader sees no file or the
 * whole file, never part of it.
 *
 * Nothing here logs: every function returns 0 or -1 with errno set, and
 * the caller says what failed.
 */
#ifndef HEPROUTER_READY_H
#define HEPROUTER_READY_H

#include <stddef.h>
#include <sys/socket.h>

/* Room for the longest text ready_format() writes with a transport of up
 * to 3 letters, NUL included:
 * "tcp:[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535". */
#define READY_ADDR_MAX 64

/* What starts each line of the file. */
#define READY_LINE_PREFIX "listening "

/*
 * Writes "TRANSPORT:ADDRESS:PORT" for a bound socket into buf: IPv4 as
 * "udp:127.0.0.1:9060", IPv6 in brackets as "tcp:[::1]:9060" (numeric,
 * no scope id).  transport is written as given ("udp", "tcp").  Returns 0;
 * -1 with errno EAFNOSUPPORT when sa is neither AF_INET nor AF_INET6, or
 * ENOSPC when the text does not fit in len bytes (READY_ADDR_MAX always
 * does for "udp" and "tcp"); buf then holds "" (len > 0).
 */
int ready_format(char *buf, size_t len, const char *transport, const struct sockaddr *sa);

/*
 * Writes path atomically with one line READY_LINE_PREFIX lines[i] per
 * entry: into "path.tmp.PID" (same directory, mode 0644 less the umask),
 * then renamed over path.  Returns 0, or -1 with errno from the step that
 * failed (ENAMETOOLONG for a path too long to add the suffix); the
 * temporary file is removed and path is left as it was.
 */
int ready_write(const char *path, const char *const *lines, size_t n);

/*
 * Removes path (a file ready_write() wrote) so that it no longer claims
 * readiness.  Returns 0, also when there was no such file; -1 with errno
 * otherwise.
 */
int ready_remove(const char *path);

#endif
