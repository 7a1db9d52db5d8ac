/*
 * test_resolve.c - unit tests for src/resolve.c: names looked up on a
 * thread, answers on the loop.  "localhost" comes from /etc/hosts and
 * "does-not-exist.invalid" never resolves (RFC 6761), so no name server is
 * needed.
 */
#include "netaddr.h"
#include "resolve.h"
#include "unit.h"
#include "unit_ev.h"

#include <netdb.h>

#define LOCALHOST "localhost"
#define NO_SUCH_NAME "does-not-exist.invalid"
#define PORT 9063u
#define REFRESH_MS 50u              /* short, so refreshes come within a test */
#define RETRY_MIN_MS 20u
#define RETRY_MAX_MS 40u
#define WAIT_S 5.0                  /* answers come in milliseconds; this bounds a failure */

struct answers {
    unsigned ok;
    unsigned failed;
    char last[NETADDR_TEXT_MAX];
    char error[128];
    struct resolve_watch *free_me;  /* freed by the callback itself */
};

static void on_answer(void *arg, const struct sockaddr *sa, socklen_t salen, const char *error)
{
    struct answers *a = arg;
    if (error != NULL) {
        CU_ASSERT_PTR_NULL(sa);
        CU_ASSERT_EQUAL(salen, 0);
        a->failed++;
        snprintf(a->error, sizeof a->error, "%s", error);
    } else {
        CU_ASSERT_PTR_NOT_NULL_FATAL(sa);
        CU_ASSERT(salen > 0);
        a->ok++;
        netaddr_format(sa, a->last, sizeof a->last);
    }
    if (a->free_me != NULL) {
        resolve_watch_free(a->free_me);
        a->free_me = NULL;
    }
}

static bool answered(void *arg)
{
    const struct answers *a = arg;
    return a->ok + a->failed > 0;
}

static bool answered_twice(void *arg)
{
    const struct answers *a = arg;
    return a->ok + a->failed >= 2;
}

/* What getaddrinfo() gives first for name: what the resolver must hand over. */
static void first_address(const char *name, int socktype, char *text, size_t len)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    snprintf(port, sizeof port, "%u", PORT);
    CU_ASSERT_EQUAL_FATAL(getaddrinfo(name, port, &hints, &res), 0);
    netaddr_format(res->ai_addr, text, len);
    freeaddrinfo(res);
}

static void test_a_name_resolves_to_its_first_address(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct resolver *r = resolver_new(loop, REFRESH_MS * 1000, RETRY_MIN_MS, RETRY_MAX_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    char want[NETADDR_TEXT_MAX];
    first_address(LOCALHOST, SOCK_STREAM, want, sizeof want);

    struct answers a = { 0 };
    struct resolve_watch *w = resolve_watch_new(r, LOCALHOST, PORT, SOCK_STREAM, on_answer, &a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(a.ok + a.failed, 0);       /* never answered inside the call */
    CU_ASSERT(unit_ev_run_until(loop, answered, &a, WAIT_S));
    CU_ASSERT_EQUAL(a.ok, 1);
    CU_ASSERT_EQUAL(a.failed, 0);
    CU_ASSERT_STRING_EQUAL(a.last, want);

    /* asked again: one more answer; asking twice while queued gives one */
    resolve_now(w);
    resolve_now(w);
    CU_ASSERT(unit_ev_run_until(loop, answered_twice, &a, WAIT_S));
    unit_ev_run_for(loop, 0.05);
    CU_ASSERT_EQUAL(a.ok, 2);
    resolve_watch_free(w);
    resolver_free(r);
    ev_loop_destroy(loop);
}

static void test_a_name_is_refreshed_periodically(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct resolver *r = resolver_new(loop, REFRESH_MS, RETRY_MIN_MS, RETRY_MAX_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct answers a = { 0 };
    struct resolve_watch *w = resolve_watch_new(r, LOCALHOST, PORT, SOCK_DGRAM, on_answer, &a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT(unit_ev_run_until(loop, answered_twice, &a, WAIT_S));
    CU_ASSERT_EQUAL(a.failed, 0);
    resolve_watch_free(w);
    resolver_free(r);
    ev_loop_destroy(loop);
}

static void test_a_failure_is_retried_with_the_backoff(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    /* a refresh far away: only the retry backoff can bring the second answer */
    struct resolver *r = resolver_new(loop, 3600u * 1000, RETRY_MIN_MS, RETRY_MAX_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct answers a = { 0 };
    struct resolve_watch *w = resolve_watch_new(r, NO_SUCH_NAME, PORT, SOCK_STREAM, on_answer, &a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT(unit_ev_run_until(loop, answered_twice, &a, WAIT_S));
    CU_ASSERT_EQUAL(a.ok, 0);
    CU_ASSERT(a.failed >= 2);
    CU_ASSERT(a.error[0] != '\0');
    resolve_watch_free(w);
    resolver_free(r);
    ev_loop_destroy(loop);
}

static void test_a_freed_watch_is_never_answered(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct resolver *r = resolver_new(loop, REFRESH_MS, RETRY_MIN_MS, RETRY_MAX_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct answers gone = { 0 }, kept = { 0 };
    struct resolve_watch *w = resolve_watch_new(r, LOCALHOST, PORT, SOCK_STREAM, on_answer, &gone);
    struct resolve_watch *k = resolve_watch_new(r, LOCALHOST, PORT, SOCK_STREAM, on_answer, &kept);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    resolve_watch_free(w);                      /* queued: freed when its lookup comes back */
    CU_ASSERT(unit_ev_run_until(loop, answered, &kept, WAIT_S));
    unit_ev_run_for(loop, 0.05);
    CU_ASSERT_EQUAL(gone.ok + gone.failed, 0);

    /* a callback may free its own watch: nothing comes after */
    kept.free_me = k;
    unsigned before = kept.ok;
    CU_ASSERT(unit_ev_run_until(loop, answered_twice, &kept, WAIT_S));
    CU_ASSERT_EQUAL(kept.ok, before + 1);
    unit_ev_run_for(loop, 3.0 * REFRESH_MS / 1000);
    CU_ASSERT_EQUAL(kept.ok, before + 1);
    resolver_free(r);
    ev_loop_destroy(loop);
}

static void test_freeing_the_resolver_does_not_wait_for_a_lookup(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct resolver *r = resolver_new(loop, REFRESH_MS, RETRY_MIN_MS, RETRY_MAX_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct answers a = { 0 };
    struct resolve_watch *w = resolve_watch_new(r, LOCALHOST, PORT, SOCK_STREAM, on_answer, &a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    resolve_watch_free(w);                      /* still queued or being looked up */
    resolver_free(r);                           /* the thread frees what is left */
    unit_ev_run_for(loop, 0.05);
    CU_ASSERT_EQUAL(a.ok + a.failed, 0);
    ev_loop_destroy(loop);
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "a name resolves to its first address", test_a_name_resolves_to_its_first_address },
        { "a name is refreshed periodically", test_a_name_is_refreshed_periodically },
        { "a failure is retried with the backoff", test_a_failure_is_retried_with_the_backoff },
        { "a freed watch is never answered", test_a_freed_watch_is_never_answered },
        { "freeing the resolver does not wait for a lookup", test_freeing_the_resolver_does_not_wait_for_a_lookup },
        { NULL, NULL },
    };
    return unit_run("resolve", tests);
}
