/*
 * lockstat.c - the per-thread lock counters (see lockstat.h).
 */
#include "lockstat.h"

#include <stdio.h>

_Thread_local uint64_t lockstat_taken[LOCKSTAT_KIND_COUNT];

#define LOCKSTAT_NAME(id, name) [LOCKSTAT_##id] = name,
static const char *const lockstat_names[LOCKSTAT_KIND_COUNT] = { LOCKSTAT_KINDS(LOCKSTAT_NAME) };
#undef LOCKSTAT_NAME

char *lockstat_format(char *buf, size_t len)
{
    size_t at = 0;
    if (len > 0)
        buf[0] = '\0';
    for (int k = 0; k < LOCKSTAT_KIND_COUNT && at < len; k++) {
        int n = snprintf(buf + at, len - at, "%s%s=%llu", k > 0 ? " " : "", lockstat_names[k],
                         (unsigned long long)lockstat_taken[k]);
        if (n < 0)
            break;
        at += (size_t)n;
    }
    return buf;
}
