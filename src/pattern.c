/*
 * pattern.c - exact strings and PCRE2 regular expressions (see pattern.h).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pattern.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int pattern_compile(struct pattern *p, const char *text, bool caseless, char *why, size_t whylen)
{
    memset(p, 0, sizeof *p);
    p->text = strdup(text);
    if (p->text == NULL)
        return -2;
    p->len = strlen(text);
    p->caseless = caseless;
    if (text[0] != PATTERN_REGEX_MARK)
        return 0;
    p->regex = true;
    int err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)(text + 1), PCRE2_ZERO_TERMINATED, caseless ? PCRE2_CASELESS : 0,
                                     &err, &off, NULL);
    if (code == NULL) {
        PCRE2_UCHAR msg[PATTERN_WHY_MAX];
        pcre2_get_error_message(err, msg, sizeof msg);
        snprintf(why, whylen, "is not a valid regular expression: %s at offset %zu", (const char *)msg,
                 (size_t)off);
        free(p->text);
        p->text = NULL;
        return err == PCRE2_ERROR_NOMEMORY ? -2 : -1;
    }
    /* without the JIT (an unsupported platform) the interpreter matches the same */
    p->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    p->code = code;
    return 0;
}

/* Each thread's match data (one pair: a yes/no answer needs no more), freed when the thread ends. */
static pthread_key_t match_data_key;
static pthread_once_t match_data_once = PTHREAD_ONCE_INIT;

static void match_data_free(void *md)
{
    pcre2_match_data_free(md);
}

static void match_data_init(void)
{
    if (pthread_key_create(&match_data_key, match_data_free) != 0)
        match_data_key = 0;
}

/* The thread's match data once found: no key lookup per match. */
static _Thread_local pcre2_match_data *thread_match_data;

static pcre2_match_data *match_data(void)
{
    if (thread_match_data != NULL)
        return thread_match_data;
    pthread_once(&match_data_once, match_data_init);
    pcre2_match_data *md = pthread_getspecific(match_data_key);
    if (md == NULL && (md = pcre2_match_data_create(1, NULL)) != NULL &&
        pthread_setspecific(match_data_key, md) != 0) {
        pcre2_match_data_free(md);
        md = NULL;
    }
    thread_match_data = md;
    return md;
}

bool pattern_match(const struct pattern *p, const char *s, size_t len)
{
    if (!p->regex)
        return p->len == len &&
               (p->caseless ? strncasecmp(p->text, s, len) == 0 : memcmp(p->text, s, len) == 0);
    pcre2_match_data *md = match_data();
    if (md == NULL)
        return false;
    PCRE2_SPTR subject = (PCRE2_SPTR)(len > 0 ? s : "");
    if (p->jit)
        return pcre2_jit_match(p->code, subject, len, 0, 0, md, NULL) >= 0;
    return pcre2_match(p->code, subject, len, 0, 0, md, NULL) >= 0;
}

void pattern_free(struct pattern *p)
{
    free(p->text);
    if (p->code != NULL)
        pcre2_code_free(p->code);
    memset(p, 0, sizeof *p);
}
