/*
 * invariant.h - loud internal invariants in debug builds.
 *
 * INVARIANT(cond) states what only a bug in heprouter can make false (an
 * index out of range, a count gone negative), never anything input can
 * cause.  Built with --enable-debug (the sanitizer builds of the test
 * command and the fuzzers are), a false one names itself and aborts, so the
 * bug is seen; in a normal build it costs nothing, and the defensive check
 * written after it keeps the process running.
 */
#ifndef HEPROUTER_INVARIANT_H
#define HEPROUTER_INVARIANT_H

#ifdef HEPROUTER_DEBUG
#include <stdio.h>
#include <stdlib.h>

static inline _Noreturn void invariant_failed(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "heprouter: invariant failed: %s (%s:%d, %s)\n", cond, file, line, func);
    abort();
}

#define INVARIANT(cond) ((cond) ? (void)0 : invariant_failed(#cond, __FILE__, __LINE__, __func__))
#else
#define INVARIANT(cond) ((void)0)
#endif

#endif
