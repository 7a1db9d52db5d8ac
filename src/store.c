/*
 * store.c - opens the call context store back-end the configuration names.
 *
 * The back-ends live in their own files (store_mem.c, store_redis.c) and
 * share nothing but struct store_ops; this file only picks one, so the unit
 * tests of a back-end link without the configuration or the logger.
 */
#include "store.h"

#include <stdio.h>

#include "conf.h"
#include "log.h"

struct store *store_open(const struct conf *conf, struct ev_loop *loop, struct metrics *m)
{
    struct store *s;

    switch (conf->store_type) {
    case CONF_STORE_MEMORY:
        s = store_mem_new(conf->store_max_calls);
        if (s == NULL)
            log_error("memory store: out of memory");
        return s;
    case CONF_STORE_REDIS:
        return store_redis_new(conf, loop, m);
    }
    log_error("unknown store type %d", (int)conf->store_type);
    return NULL;
}

int store_check(const struct conf *conf, char *errbuf, size_t errlen)
{
    if (conf->store_type != CONF_STORE_REDIS) {
        snprintf(errbuf, errlen, "ok");
        return 0;
    }
    return store_redis_check(conf, errbuf, errlen);
}
