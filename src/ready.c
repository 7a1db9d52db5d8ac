/*
 * ready.c - the "listening" lines a process writes once its sockets are bound.
 *
 * See ready.h for the format and the contract.  Kept free of the rest of
 * heprouter (no logging, no configuration) so that the tools can link it;
 * addresses are written as netaddr.h writes them in the logs.
 */
#include "ready.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "netaddr.h"

int ready_format(char *buf, size_t len, const char *transport, const struct sockaddr *sa)
{
    char where[NETADDR_TEXT_MAX];

    if (len > 0)
        buf[0] = '\0';
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    int n = snprintf(buf, len, "%s:%s", transport, netaddr_format(sa, where, sizeof where));
    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            buf[0] = '\0';
        errno = ENOSPC;
        return -1;
    }
    return 0;
}

/* Writes the lines to a new file tmp; -1 with errno on any failure. */
static int ready_write_tmp(const char *tmp, const char *const *lines, size_t n)
{
    FILE *f = fopen(tmp, "we");     /* e: O_CLOEXEC */
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (fprintf(f, "%s%s\n", READY_LINE_PREFIX, lines[i]) < 0)
            break;
    int failed = ferror(f);
    int saved = errno;
    if (fclose(f) != 0)
        return -1;
    if (failed) {
        errno = saved != 0 ? saved : EIO;
        return -1;
    }
    return 0;
}

int ready_write(const char *path, const char *const *lines, size_t n)
{
    char tmp[PATH_MAX];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (ready_write_tmp(tmp, lines, n) != 0 || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

int ready_remove(const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;
    return 0;
}
