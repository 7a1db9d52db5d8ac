/*
 * open.c - opens the call context store back-end the configuration names
 * (the edge: a Redis store needs the worker's libev loop).
 *
 * The back-ends live in their own files (mem.c in the core, redis*.c here
 * at the edge) and share nothing but struct store_ops; this file only
 * picks one.
 */
#include "store/open.h"

#include <stdio.h>

#include "conf.h"
#include "log.h"
#include "store/store.h"

struct store *store_open(const struct conf *conf, struct ev_loop *loop, struct metrics *m)
{
    switch (conf->store_type) {
    case CONF_STORE_MEMORY:
        return store_mem_from_conf(conf);
    case CONF_STORE_REDIS:
        return store_redis_new(conf, loop, m);
    }
    log_error("unknown store type %d", (int)conf->store_type);
    return NULL;
}

enum store_check_result store_check(const struct conf *conf, char *errbuf, size_t errlen)
{
    if (conf->store_type != CONF_STORE_REDIS) {
        snprintf(errbuf, errlen, "ok");
        return STORE_CHECK_OK;
    }
    return store_redis_check(conf, errbuf, errlen);
}
