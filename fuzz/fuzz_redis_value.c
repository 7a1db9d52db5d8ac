/*
 * fuzz_redis_value.c - libFuzzer harness for the Redis value codec
 * (src/store/redis_value.c): other heprouter instances, or anyone who may
 * write to Redis, write the values a Redis store reads.
 *
 * The input is used twice:
 *   - as a value: redis_value_parse() must not read past it; when it
 *     parses, redis_value_format() must write it back, and that text must
 *     parse to the same entry and format to the same text again;
 *   - as the bytes of a struct store_entry (method and route possibly
 *     unterminated): when redis_value_format() writes it, the text must
 *     parse back to the entry (its known flags; last_hash is not kept).
 * Every format goes into buffers of exactly the sizes around the text's
 * length, on the heap, so a write past the end is an ASan report; a buffer
 * too small gives 0.  Any violation aborts.
 *
 * Build (fuzz/run does this):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -std=c11 -D_GNU_SOURCE -I src fuzz/fuzz_redis_value.c src/store/redis_value.c \
 *       -o fuzz_redis_value
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/redis_value.h"
#include "store/store.h"
#include "fuzz.h"


/* The value a parse of v[0..len) keeps, in a buffer of exactly len bytes. */
static int parse_exact(const char *v, size_t len, struct store_entry *out)
{
    char *copy = malloc(len > 0 ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, v, len);
    int rc = redis_value_parse(copy, len, out);
    free(copy);
    return rc;
}

/*
 * Formats e into buf (REDIS_VALUE_MAX bytes) and checks that every smaller
 * buffer is refused and that each large enough one holds the same text, a
 * heap buffer of exactly its size each time; the length, or 0.
 */
static size_t format_checked(const struct store_entry *e, char *buf)
{
    size_t n = redis_value_format(e, buf, REDIS_VALUE_MAX);
    if (n == 0)
        return 0;
    CHECK(n < REDIS_VALUE_MAX);
    CHECK(strlen(buf) == n);
    for (size_t len = 0; len <= n + 1; len++) {
        char *exact = malloc(len > 0 ? len : 1);
        CHECK(exact != NULL);
        size_t m = redis_value_format(e, len > 0 ? exact : NULL, len);
        if (len <= n) {
            CHECK(m == 0);
        } else {
            CHECK(m == n);
            CHECK(memcmp(exact, buf, n + 1) == 0);
        }
        free(exact);
    }
    return n;
}

static bool same_entry(const struct store_entry *a, const struct store_entry *b)
{
    return redis_value_same_origin(a, b) && a->flags == b->flags;
}

/* The input as a value. */
static void fuzz_value(const uint8_t *data, size_t size)
{
    struct store_entry e, again;
    char text[REDIS_VALUE_MAX], text2[REDIS_VALUE_MAX];

    if (parse_exact((const char *)data, size, &e) != 0)
        return;
    CHECK(e.method[0] != '\0' && e.route[0] != '\0');
    CHECK(strnlen(e.method, sizeof e.method) < sizeof e.method);
    CHECK(strnlen(e.route, sizeof e.route) < sizeof e.route);
    CHECK((e.flags & ~(unsigned)STORE_F_ALL) == 0);
    CHECK(e.last_hash == 0);
    size_t n = format_checked(&e, text);
    CHECK(n > 0);                       /* whatever parses can be written back */
    CHECK(n <= size);                   /* never longer: leading zeros and unknown flags go */
    CHECK(parse_exact(text, n, &again) == 0);
    CHECK(same_entry(&e, &again));
    CHECK(format_checked(&again, text2) == n);
    CHECK(memcmp(text, text2, n) == 0);
}

/* The input as an entry. */
static void fuzz_entry(const uint8_t *data, size_t size)
{
    struct store_entry e, back;
    char text[REDIS_VALUE_MAX];

    memset(&e, 0, sizeof e);
    memcpy(&e, data, size < sizeof e ? size : sizeof e);
    size_t n = format_checked(&e, text);
    if (n == 0)
        return;
    CHECK(parse_exact(text, n, &back) == 0);
    CHECK(strcmp(back.method, e.method) == 0);
    CHECK(strcmp(back.route, e.route) == 0);
    CHECK(back.first_seen_ms == e.first_seen_ms);
    CHECK(back.flags == (e.flags & STORE_F_ALL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_value(data, size);
    fuzz_entry(data, size);
    return 0;
}
