/*
 * store.c - opens the call context store back-end the configuration names.
 *
 * The back-ends live in their own files (store_mem.c, store_redis.c) and
 * share nothing but struct store_ops; this file only picks one, so the unit
 * tests of a back-end link without the configuration or the logger.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "log.h"
#include "policy.h"
#include "sip.h"

int store_names_from_conf(const struct conf *conf, struct store_names *names)
{
    size_t nmethods = SIP_METHOD_COUNT, nroutes = conf->nroutes + 1;
    for (size_t i = 0; i < conf->nroutes; i++)
        nmethods += conf->routes[i].match.nmethods;
    const char **methods = calloc(nmethods, sizeof *methods);
    const char **routes = calloc(nroutes, sizeof *routes);
    if (methods == NULL || routes == NULL) {
        free(methods);
        free(routes);
        return -1;
    }
    size_t m = 0;
    for (int id = SIP_METHOD_OTHER + 1; id < SIP_METHOD_COUNT; id++)
        methods[m++] = sip_method_name((enum sip_method)id);
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct conf_match *match = &conf->routes[i].match;
        for (size_t j = 0; j < match->nmethods; j++)
            methods[m++] = match->methods[j];
        routes[i] = conf->routes[i].name;
    }
    routes[conf->nroutes] = policy_route_name(conf, POLICY_DEFAULT);
    names->methods = methods;
    names->nmethods = m;
    names->routes = routes;
    names->nroutes = nroutes;
    return 0;
}

void store_names_free(struct store_names *names)
{
    free((void *)names->methods);
    free((void *)names->routes);
    names->methods = names->routes = NULL;
    names->nmethods = names->nroutes = 0;
}

struct store *store_open(const struct conf *conf, struct ev_loop *loop, struct metrics *m)
{
    struct store *s;

    switch (conf->store_type) {
    case CONF_STORE_MEMORY: {
        struct store_names names;
        if (store_names_from_conf(conf, &names) != 0) {
            log_error("memory store: out of memory");
            return NULL;
        }
        s = store_mem_new(conf->store_max_calls, &names);
        if (s == NULL)
            log_error("memory store: out of memory, or more than %u method names in the routes",
                      STORE_MEM_METHODS_MAX);
        store_names_free(&names);
        return s;
    }
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
