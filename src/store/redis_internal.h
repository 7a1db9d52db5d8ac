/*
 * redis_internal.h - what the Redis store's files share (edge): limits on
 * names and reasons, and the helpers both the link (redis_link.c) and the
 * start-up check (redis_check.c) or the store (redis.c) use.
 */
#ifndef HEPROUTER_STORE_REDIS_INTERNAL_H
#define HEPROUTER_STORE_REDIS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <hiredis/hiredis.h>

#define REDIS_NUM_MAX 24                    /* a decimal uint64_t and its NUL */
#define REDIS_HOST_MAX 256
#define REDIS_ADDR_TEXT_MAX (REDIS_HOST_MAX + 16)
#define REDIS_WHY_MAX (2 * REDIS_HOST_MAX)  /* a reason given to the logs */
#define REDIS_PORT_MAX 65535
#define REDIS_ARGC(argv) ((int)(sizeof(argv) / sizeof((argv)[0])))
#define REDIS_LOG_KEY_MAX 128               /* bytes of a call key a log line shows */
#define REDIS_LOG_ESCAPE_MAX 4              /* "\xHH": what one byte may become */
#define REDIS_LOG_CUT "\"... (%zu bytes)"   /* ends a key shown in part */
#define REDIS_LOG_CUT_MAX (sizeof REDIS_LOG_CUT + REDIS_NUM_MAX)
/* a call key as a log line shows it, quoted and escaped, NUL included */
#define REDIS_LOG_KEY_TEXT_MAX (1 + REDIS_LOG_ESCAPE_MAX * REDIS_LOG_KEY_MAX + REDIS_LOG_CUT_MAX)
/* a reason that may name a call key */
#define REDIS_WHY_KEY_MAX (REDIS_WHY_MAX + REDIS_LOG_KEY_TEXT_MAX)

/* An error reply whose code (its first word) is code. */
static inline bool redis_is_error(const redisReply *reply, const char *code)
{
    size_t n = strlen(code);
    return reply->type == REDIS_REPLY_ERROR && reply->len >= n && strncmp(reply->str, code, n) == 0 &&
           (reply->len == n || reply->str[n] == ' ');
}

/* A port as Redis replies give it, text[0..len) exactly; false when it is none (redis_link.c). */
bool redis_parse_port(const char *text, size_t len, int *port);

#endif
