/*
 * redis_check.c - the start-up check of a Redis store, synchronous, before
 * the workers run (store_check()).
 *
 * It asks the Sentinels for the master when there are some, connects once
 * with hiredis's blocking API, and sends what the store will send: AUTH,
 * SELECT, PING, ROLE (Sentinel), then SET NX GET and EXPIRE on a key of the
 * store's own prefix (ACL key patterns).  An error an operator must fix
 * (wrong password, unknown user, bad db, Redis older than 7.0) refuses to
 * start; a server that cannot be reached, or answers that it is starting,
 * busy or between masters, is unreachable: the caller starts anyway and the
 * workers run on their cache and the fallback until it answers.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "store/open.h"
#include "store/redis_internal.h"

#define REDIS_CHECK_KEY "check"             /* <prefix>check: the start-up write test */
#define REDIS_CHECK_TTL_S "1"
#define REDIS_CHECK_ARGC_MAX 8              /* arguments of one start-up check command */
#define REDIS_CHECK_SET "SET NX GET"        /* how the check names its SET (Redis >= 7.0) */

struct redis_check {
    const struct conf *conf;
    redisContext *c;
    char where[REDIS_ADDR_TEXT_MAX];    /* "redis 127.0.0.1:6379" */
    char *errbuf;
    size_t errlen;
};

static struct timeval redis_timeval(uint64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / CLOCK_MS_PER_S);
    tv.tv_usec = (suseconds_t)(ms % CLOCK_MS_PER_S * CLOCK_US_PER_MS);
    return tv;
}

/* Errors that pass by themselves: the server is starting, busy or between masters. */
static bool redis_transient(const redisReply *reply)
{
    return redis_is_error(reply, "LOADING") || redis_is_error(reply, "BUSY") ||
           redis_is_error(reply, "MASTERDOWN") || redis_is_error(reply, "TRYAGAIN");
}

static int redis_check_unreachable(struct redis_check *k, const char *why)
{
    snprintf(k->errbuf, k->errlen, "%s: %s", k->where, why);
    return 0;
}

/*
 * Runs one command of the check: 1 with *out when it succeeded, 0 when the
 * server could not be asked (warned), -1 when it refused (reason in errbuf).
 */
static int redis_check_cmd(struct redis_check *k, const char *what, int argc, const char **argv,
                           redisReply **out)
{
    size_t argvlen[REDIS_CHECK_ARGC_MAX];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(k->c, argc, argv, argvlen);
    *out = NULL;
    if (reply == NULL) {
        char why[REDIS_WHY_MAX];
        snprintf(why, sizeof why, "%s: %s", what, k->c->errstr);
        return redis_check_unreachable(k, why);
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (redis_transient(reply)) {
            char why[REDIS_WHY_MAX];
            snprintf(why, sizeof why, "%s: %s", what, reply->str);
            freeReplyObject(reply);
            return redis_check_unreachable(k, why);
        }
        if (redis_is_error(reply, "ERR") && strstr(reply->str, "syntax") != NULL &&
            strcmp(what, REDIS_CHECK_SET) == 0)
            snprintf(k->errbuf, k->errlen, "%s: needs Redis 7.0 or later (%s failed: %s)", k->where, what,
                     reply->str);
        else
            snprintf(k->errbuf, k->errlen, "%s: %s failed: %s", k->where, what, reply->str);
        freeReplyObject(reply);
        return -1;
    }
    *out = reply;
    return 1;
}

/* Asks the Sentinels in turn for the master: 1 and host/port, 0 (none reachable), -1. */
static int redis_check_sentinels(const struct conf *conf, char *host, size_t hlen, int *port, char *errbuf,
                                 size_t errlen)
{
    const struct conf_redis *rc = &conf->redis;
    struct timeval tv = redis_timeval(conf->connect_timeout_ms);
    char refused[REDIS_ADDR_TEXT_MAX * 2] = "";
    for (size_t i = 0; i < rc->nsentinels; i++) {
        const struct conf_endpoint *sentinel = &rc->sentinels[i];
        redisContext *c = redisConnectWithTimeout(sentinel->host, (int)sentinel->port, tv);
        if (c == NULL || c->err) {
            log_warn("redis sentinel %s: %s", sentinel->text, c != NULL ? c->errstr : "out of memory");
            redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        redisReply *reply = redisCommand(c, "SENTINEL get-master-addr-by-name %s", rc->master_name);
        if (reply == NULL) {
            log_warn("redis sentinel %s: %s", sentinel->text, c->errstr);
        } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                   reply->element[0]->type == REDIS_REPLY_STRING &&
                   reply->element[1]->type == REDIS_REPLY_STRING && reply->element[0]->len < hlen &&
                   redis_parse_port(reply->element[1]->str, reply->element[1]->len, port)) {
            memcpy(host, reply->element[0]->str, reply->element[0]->len + 1);
            freeReplyObject(reply);
            redisFree(c);
            return 1;
        } else if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(refused, sizeof refused, "redis sentinel %s: SENTINEL get-master-addr-by-name failed: %s",
                     sentinel->text, reply->str);
        } else {
            snprintf(refused, sizeof refused, "redis sentinel %s: does not know master \"%s\"",
                     sentinel->text, rc->master_name);
        }
        freeReplyObject(reply);
        redisFree(c);
    }
    if (refused[0] != '\0') {
        snprintf(errbuf, errlen, "%s", refused);
        return -1;
    }
    snprintf(errbuf, errlen, "redis: no Sentinel reachable");
    return 0;
}

/* The internal 1 (passed), 0 (unreachable), -1 (refused) as the interface's answer. */
static enum store_check_result redis_check_result(int st)
{
    return st > 0 ? STORE_CHECK_OK : st == 0 ? STORE_CHECK_UNREACHABLE : STORE_CHECK_REFUSED;
}

enum store_check_result store_redis_check(const struct conf *conf, char *errbuf, size_t errlen)
{
    const struct conf_redis *rc = &conf->redis;
    struct timeval tv = redis_timeval(conf->connect_timeout_ms);
    struct redis_check k = { .conf = conf, .errbuf = errbuf, .errlen = errlen };
    char host[REDIS_HOST_MAX];
    int port = (int)rc->port;
    redisReply *reply;
    int st;

    if (errbuf == NULL)
        k.errlen = 0;
    if (rc->nsentinels > 0) {
        if (rc->master_name == NULL) {
            snprintf(errbuf, k.errlen, "redis: Sentinels given without a master name");
            return STORE_CHECK_REFUSED;
        }
        st = redis_check_sentinels(conf, host, sizeof host, &port, errbuf, k.errlen);
        if (st <= 0)
            return redis_check_result(st);
        snprintf(k.where, sizeof k.where, "redis %s:%d", host, port);
        k.c = redisConnectWithTimeout(host, port, tv);
    } else if (rc->unix_path != NULL) {
        snprintf(k.where, sizeof k.where, "redis unix:%s", rc->unix_path);
        k.c = redisConnectUnixWithTimeout(rc->unix_path, tv);
    } else if (rc->host != NULL) {
        snprintf(k.where, sizeof k.where, "redis %s:%u", rc->host, rc->port);
        k.c = redisConnectWithTimeout(rc->host, port, tv);
    } else {
        snprintf(errbuf, k.errlen, "redis: neither a host nor a unix socket given");
        return STORE_CHECK_REFUSED;
    }
    if (k.c == NULL || k.c->err) {
        st = redis_check_unreachable(&k, k.c != NULL ? k.c->errstr : "out of memory");
        redisFree(k.c);
        return redis_check_result(st);
    }
    redisSetTimeout(k.c, tv);

    char db[REDIS_NUM_MAX], key[REDIS_HOST_MAX];
    snprintf(db, sizeof db, "%u", rc->db);
    snprintf(key, sizeof key, "%s%s", rc->prefix != NULL ? rc->prefix : "", REDIS_CHECK_KEY);
    const char *auth_user[] = { "AUTH", rc->username, rc->password };
    const char *auth[] = { "AUTH", rc->password };
    const char *select_db[] = { "SELECT", db };
    const char *ping[] = { "PING" };
    /* the commands the store sends, on a key of its own prefix (ACL key patterns) */
    const char *set[] = { "SET", key, "1", "NX", "EX", REDIS_CHECK_TTL_S, "GET" };
    const char *expire[] = { "EXPIRE", key, REDIS_CHECK_TTL_S };
    const char *role[] = { "ROLE" };

    st = 1;
    if (rc->password != NULL && rc->username != NULL)
        st = redis_check_cmd(&k, "AUTH", REDIS_ARGC(auth_user), auth_user, &reply);
    else if (rc->password != NULL)
        st = redis_check_cmd(&k, "AUTH", REDIS_ARGC(auth), auth, &reply);
    if (st == 1 && rc->password != NULL)
        freeReplyObject(reply);
    if (st == 1 && rc->db != 0 && (st = redis_check_cmd(&k, "SELECT", REDIS_ARGC(select_db), select_db, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1 && (st = redis_check_cmd(&k, "PING", REDIS_ARGC(ping), ping, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1 && rc->nsentinels > 0 && (st = redis_check_cmd(&k, "ROLE", REDIS_ARGC(role), role, &reply)) == 1) {
        bool master = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                      reply->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(reply->element[0]->str, "master") == 0;
        freeReplyObject(reply);
        if (!master)
            st = redis_check_unreachable(&k, "the Sentinels' master is not a master (fail-over under way?)");
    }
    if (st == 1 && (st = redis_check_cmd(&k, REDIS_CHECK_SET, REDIS_ARGC(set), set, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1 && (st = redis_check_cmd(&k, "EXPIRE", REDIS_ARGC(expire), expire, &reply)) == 1)
        freeReplyObject(reply);
    if (st == 1)
        snprintf(errbuf, k.errlen, "%s: ok", k.where);
    redisFree(k.c);
    return redis_check_result(st);
}
