/*
 * fuzz.h - what every libFuzzer harness of heprouter shares.
 *
 * CHECK(cond) states an invariant of the code under test: a false one
 * names the harness's line and aborts, which libFuzzer reports as a crash
 * and keeps the input of.
 */
#ifndef HEPROUTER_FUZZ_H
#define HEPROUTER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline _Noreturn void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    abort();
}

#define CHECK(cond) \
    do { \
        if (!(cond)) \
            fuzz_fail(__FILE__, __LINE__, #cond); \
    } while (0)

#endif
