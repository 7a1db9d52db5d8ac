/*
 * tap.c - the live tap (see tap.h).
 *
 * A worker's queue is a byte ring of records (struct tap_record, then the
 * line), each starting on a TAP_ALIGN boundary; a record that would cross
 * the end is preceded by a skip record (id 0) to the end.  The worker
 * writes and then publishes head (release); the main thread reads up to
 * head and then publishes tail (release): neither waits for the other.
 * head and tail count bytes from the start and never wrap.
 */
#include "tap.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "decision.h"
#include "hep.h"
#include "list.h"
#include "lockstat.h"
#include "log.h"
#include "metrics.h"
#include "router.h"
#include "sip.h"

#define TAP_ALIGN 16                /* records start here; the ring's size is a multiple */
#define TAP_FORMS 2                 /* text, json */
#define TAP_DECIMAL_MAX 10          /* digits of a capture id (u32) */

/* What a tap asks for; every term set must match. */
struct tap_filter {
    bool json;
    char *call_id;                  /* NULL: any */
    size_t call_len;
    bool has_src;
    struct conf_cidr src;
    bool has_capture_id;
    uint32_t capture_id;
    char *method;                   /* NULL: any */
    size_t method_len;
};

/* One open tap as the main thread and the workers share it. */
struct tap_shared {
    uint64_t id;                    /* from 1; 0 marks a skip record */
    struct tap_filter f;
    atomic_bool stalled;            /* its reader's buffer filled: lines are lost unformatted */
    atomic_uint refs;               /* the reader's, and one per worker set holding it */
};

/* A worker's copy of the open taps. */
struct tap_entry {
    struct tap_shared *sh;
    uint64_t lost;                  /* lines lost since its last line was queued */
};

struct tap_set {
    size_t n;
    struct tap_entry e[];
};

struct tap_record {
    uint64_t id;
    uint32_t lost;                  /* lines lost before this one (at most UINT32_MAX) */
    uint32_t len;                   /* of the line that follows, newline included */
};
_Static_assert(sizeof(struct tap_record) == TAP_ALIGN, "a skip record fits any gap at the ring's end");

struct tap_ring {
    uint8_t *buf;
    size_t cap;
    _Atomic uint64_t head;          /* written by the worker */
    _Atomic uint64_t tail;          /* written by the main thread */
};

struct tap_worker {
    struct tap *t;
    struct ev_loop *loop;           /* NULL until tap_worker_start() */
    struct router *router;
    const struct conf *conf;
    struct metrics *m;
    ev_async changed;
    pthread_mutex_t lock;
    struct tap_set *pending;        /* under lock: the next set, NULL when none */
    struct tap_set *set;            /* the worker's own; NULL: no tap */
    bool paused;                    /* every tap of set stalled and unfiltered: the router's hook paused */
    uint64_t skipped_base;          /* router_explain_skipped() when it was paused */
    struct tap_ring ring;
    char text_buf[DECISION_TEXT_MAX];   /* a text line, formatted without a stream */
    FILE *fmt[TAP_FORMS];           /* memory streams, one line at a time */
    char *fmt_buf[TAP_FORMS];
    size_t fmt_size[TAP_FORMS];
};

/* A reader (main thread). */
struct tap_reader {
    struct list_link link;
    struct tap *t;
    struct tap_shared *sh;
    struct control_stream *stream;
    uint64_t lost;                  /* to report before its next line */
};

struct tap {
    struct ev_loop *loop;
    size_t buffer;
    ev_async wake;                  /* a worker queued lines */
    unsigned nworkers;
    struct tap_worker *workers;
    struct list readers;
    uint64_t next_id;
    atomic_uint_fast64_t lost;      /* by readers that did not keep up */
};

/* ---- shared taps and sets ---- */

static void filter_clear(struct tap_filter *f)
{
    free(f->call_id);
    free(f->method);
}

static void shared_release(struct tap_shared *sh)
{
    if (sh != NULL && atomic_fetch_sub(&sh->refs, 1) == 1) {
        filter_clear(&sh->f);
        free(sh);
    }
}

static void set_free(struct tap_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        shared_release(set->e[i].sh);
    free(set);
}

/* The open taps, one reference each; NULL when out of memory. */
static struct tap_set *set_of_readers(struct tap *t)
{
    size_t n = 0;
    struct list_link *pos;
    list_foreach(pos, &t->readers)
        n++;
    struct tap_set *set = calloc(1, sizeof *set + n * sizeof set->e[0]);
    if (set == NULL)
        return NULL;
    list_foreach(pos, &t->readers) {
        struct tap_reader *r = list_entry(pos, struct tap_reader, link);
        atomic_fetch_add(&r->sh->refs, 1);
        set->e[set->n++].sh = r->sh;
    }
    return set;
}

/* Hands every worker the open taps; each swaps between two batches. */
static void publish(struct tap *t)
{
    for (unsigned i = 0; i < t->nworkers; i++) {
        struct tap_worker *tw = &t->workers[i];
        if (tw->loop == NULL)
            continue;
        struct tap_set *set = set_of_readers(t);
        if (set == NULL) {
            log_error("tap: out of memory: worker %u keeps its taps", i);
            continue;
        }
        lockstat_lock(&tw->lock, LOCKSTAT_TAP);
        struct tap_set *unseen = tw->pending;
        tw->pending = set;
        pthread_mutex_unlock(&tw->lock);
        set_free(unseen);
        ev_async_send(tw->loop, &tw->changed);
    }
}

/* ---- the worker's side ---- */

static bool method_is(const struct sip_str *m, const char *want, size_t len)
{
    return m->len == len && strncasecmp(m->ptr, want, len) == 0;
}

/* A tap with no term: every decision is its. */
static bool filter_is_empty(const struct tap_filter *f)
{
    return f->call_id == NULL && !f->has_src && !f->has_capture_id && f->method == NULL;
}

static bool filter_matches(const struct tap_filter *f, const struct router_explain *e)
{
    const struct hep_view *v = e->view;
    if (f->call_id != NULL && !decision_of_call(e, f->call_id, f->call_len))
        return false;
    if (f->has_src && (v == NULL || v->src_ip == NULL || !conf_cidr_contains(&f->src, v->addr_len, v->src_ip)))
        return false;
    if (f->has_capture_id && (v == NULL || v->capture_id_len == 0 || v->capture_id != f->capture_id))
        return false;
    if (f->method != NULL) {
        /* a reply matches the method of its CSeq */
        if (e->sip == NULL ||
            !method_is(sip_is_reply(e->sip) ? &e->sip->cseq_method_name : &e->sip->method_name, f->method,
                       f->method_len))
            return false;
    }
    return true;
}

static size_t align_up(size_t n)
{
    return (n + TAP_ALIGN - 1) / TAP_ALIGN * TAP_ALIGN;
}

/* Queues one line; false when the ring has no room (or the line is over half of it). */
static bool ring_push(struct tap_ring *r, uint64_t id, uint64_t lost, const char *line, size_t len)
{
    size_t need = align_up(sizeof(struct tap_record) + len);
    if (need > r->cap / 2)
        return false;
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t pos = (size_t)(h % r->cap);
    size_t skip = r->cap - pos < need ? r->cap - pos : 0;
    if (h - t + skip + need > r->cap)
        return false;
    if (skip > 0) {
        static const struct tap_record skip_record = { 0, 0, 0 };
        memcpy(r->buf + pos, &skip_record, sizeof skip_record);
        h += skip;
        pos = 0;
    }
    struct tap_record rec = { id, lost > UINT32_MAX ? UINT32_MAX : (uint32_t)lost, (uint32_t)len };
    memcpy(r->buf + pos, &rec, sizeof rec);
    memcpy(r->buf + pos + sizeof rec, line, len);
    atomic_store_explicit(&r->head, h + need, memory_order_release);
    return true;
}

/* Formats e in one form (a text line into text_buf when it fits, else through the stream); the line, or NULL. */
static const char *format_line(struct tap_worker *tw, const struct router_explain *e, int form, size_t *len)
{
    if (form == 0 && (*len = decision_text(tw->text_buf, sizeof tw->text_buf, tw->conf, e)) > 0)
        return tw->text_buf;
    FILE *f = tw->fmt[form];
    rewind(f);
    decision_print(f, tw->conf, e, form == 1);
    if (fflush(f) != 0 || ferror(f))
        return NULL;
    long n = ftell(f);
    if (n <= 0)
        return NULL;
    *len = (size_t)n;
    return tw->fmt_buf[form];
}

/*
 * The hook is paused (the router only counts decisions) while every tap of
 * the worker's set matches every decision and its reader is stalled: then
 * each decision is a line lost by each of them, and nothing need be
 * filled, matched or formatted per packet.  A filtered tap keeps the hook:
 * its lost lines are only those that match.
 */
static void pause_if_all_stalled(struct tap_worker *tw)
{
    const struct tap_set *set = tw->set;
    for (size_t i = 0; i < set->n; i++) {
        const struct tap_shared *sh = set->e[i].sh;
        if (!filter_is_empty(&sh->f) || !atomic_load_explicit(&sh->stalled, memory_order_relaxed))
            return;
    }
    tw->paused = true;
    tw->skipped_base = router_explain_skipped(tw->router);
    router_pause_explain(tw->router, true);
}

/* While paused: the decisions skipped since the last count are lines each tap lost. */
static void count_skipped(struct tap_worker *tw)
{
    if (!tw->paused)
        return;
    uint64_t now = router_explain_skipped(tw->router);
    uint64_t skipped = now - tw->skipped_base;
    tw->skipped_base = now;
    for (size_t i = 0; tw->set != NULL && i < tw->set->n; i++)
        tw->set->e[i].lost += skipped;
    tw->m->tap_lost += skipped * (tw->set != NULL ? tw->set->n : 0);
}

/* Resumes the hook, counting the decisions skipped meanwhile. */
static void resume(struct tap_worker *tw)
{
    if (!tw->paused)
        return;
    count_skipped(tw);
    tw->paused = false;
    router_pause_explain(tw->router, false);
}

/* The router's explain hook while a tap is open: every matching tap gets its line. */
static void on_decision(void *arg, const struct router_explain *e)
{
    struct tap_worker *tw = arg;
    struct tap_set *set = tw->set;
    const char *line[TAP_FORMS] = { NULL, NULL };
    size_t len[TAP_FORMS] = { 0, 0 };
    bool queued = false;
    for (size_t i = 0; i < set->n; i++) {
        struct tap_entry *te = &set->e[i];
        const struct tap_filter *f = &te->sh->f;
        if (!filter_matches(f, e))
            continue;
        int form = f->json ? 1 : 0;
        if (!atomic_load_explicit(&te->sh->stalled, memory_order_relaxed) && line[form] == NULL)
            line[form] = format_line(tw, e, form, &len[form]);
        if (atomic_load_explicit(&te->sh->stalled, memory_order_relaxed) || line[form] == NULL ||
            !ring_push(&tw->ring, te->sh->id, te->lost, line[form], len[form])) {
            te->lost++;
            tw->m->tap_lost++;
            continue;
        }
        te->lost = 0;
        tw->m->tap_lines++;
        queued = true;
    }
    if (queued)
        ev_async_send(tw->t->loop, &tw->t->wake);
    else
        pause_if_all_stalled(tw);
}

/* Between two batches: takes the main thread's new set, keeping what each tap lost. */
static void on_changed(struct ev_loop *loop, ev_async *a, int revents)
{
    struct tap_worker *tw = a->data;
    (void)loop;
    (void)revents;
    resume(tw);                     /* a reader drained, or the set changes: look again */
    lockstat_lock(&tw->lock, LOCKSTAT_TAP);
    struct tap_set *set = tw->pending;
    tw->pending = NULL;
    pthread_mutex_unlock(&tw->lock);
    if (set == NULL)
        return;
    for (size_t i = 0; tw->set != NULL && i < set->n; i++)
        for (size_t j = 0; j < tw->set->n; j++)
            if (tw->set->e[j].sh == set->e[i].sh)
                set->e[i].lost = tw->set->e[j].lost;
    set_free(tw->set);
    tw->set = set;
    router_set_explain(tw->router, set->n > 0 ? on_decision : NULL, tw);
}

struct tap_worker *tap_worker_of(struct tap *t, unsigned i)
{
    return i < t->nworkers ? &t->workers[i] : NULL;
}

void tap_worker_start(struct tap_worker *tw, struct ev_loop *loop, struct router *r, const struct conf *conf,
                      struct metrics *m)
{
    tw->router = r;
    tw->conf = conf;
    tw->m = m;
    ev_async_init(&tw->changed, on_changed);
    tw->changed.data = tw;
    ev_async_start(loop, &tw->changed);
    tw->loop = loop;
}

void tap_worker_set_conf(struct tap_worker *tw, const struct conf *conf)
{
    tw->conf = conf;
}

void tap_worker_count_lost(struct tap_worker *tw)
{
    if (tw != NULL && tw->loop != NULL)
        count_skipped(tw);
}

/* Every worker looks at its taps again between two batches (a reader drained). */
static void wake_workers(struct tap *t)
{
    for (unsigned i = 0; i < t->nworkers; i++)
        if (t->workers[i].loop != NULL)
            ev_async_send(t->workers[i].loop, &t->workers[i].changed);
}

/* ---- the main thread's side ---- */

static struct tap_reader *reader_of(struct tap *t, uint64_t id)
{
    struct list_link *pos;
    list_foreach(pos, &t->readers) {
        struct tap_reader *r = list_entry(pos, struct tap_reader, link);
        if (r->sh->id == id)
            return r;
    }
    return NULL;
}

/* A line the reader cannot take: counted, told before its next line, and the workers stop formatting. */
static void reader_lost(struct tap_reader *r, uint64_t n)
{
    r->lost += n;
    atomic_fetch_add(&r->t->lost, n);
    atomic_store_explicit(&r->sh->stalled, true, memory_order_relaxed);
}

static void deliver(struct tap_reader *r, uint32_t lost_before, const char *line, size_t len)
{
    r->lost += lost_before;
    if (r->lost > 0) {
        char notice[64];
        int n = r->sh->f.json ? snprintf(notice, sizeof notice, "{\"lost\":%" PRIu64 "}\n", r->lost)
                              : snprintf(notice, sizeof notice, "# %" PRIu64 " tap lines lost\n", r->lost);
        if (n <= 0 || (size_t)n >= sizeof notice || !control_stream_write(r->stream, notice, (size_t)n)) {
            reader_lost(r, 1);
            return;
        }
        r->lost = 0;
    }
    if (!control_stream_write(r->stream, line, len))
        reader_lost(r, 1);
}

/* Moves every queued line to its reader's stream (a closed tap's lines are dropped). */
static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    struct tap *t = a->data;
    (void)loop;
    (void)revents;
    for (unsigned i = 0; i < t->nworkers; i++) {
        struct tap_ring *ring = &t->workers[i].ring;
        uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
        while (tail < head) {
            size_t pos = (size_t)(tail % ring->cap);
            struct tap_record rec;
            memcpy(&rec, ring->buf + pos, sizeof rec);
            if (rec.id == 0) {
                tail += ring->cap - pos;
                continue;
            }
            struct tap_reader *r = reader_of(t, rec.id);
            if (r != NULL)
                deliver(r, rec.lost, (const char *)ring->buf + pos + sizeof rec, rec.len);
            tail += align_up(sizeof rec + rec.len);
        }
        atomic_store_explicit(&ring->tail, tail, memory_order_release);
    }
}

static void reader_free(struct tap_reader *r)
{
    shared_release(r->sh);
    free(r);
}

static void on_reader_closed(void *arg)
{
    struct tap_reader *r = arg;
    struct tap *t = r->t;
    log_info("tap %" PRIu64 " closed (%" PRIu64 " lines lost)", r->sh->id, r->lost);
    list_remove(&t->readers, &r->link);
    reader_free(r);
    publish(t);
}

/* Everything the reader was sent is read: the workers format its lines again. */
static void on_reader_drained(void *arg)
{
    struct tap_reader *r = arg;
    atomic_store_explicit(&r->sh->stalled, false, memory_order_relaxed);
    wake_workers(r->t);             /* after the store: a worker paused on the old value resumes */
}

static char *copy_word(const char *w, size_t *len)
{
    *len = strlen(w);
    return strdup(w);
}

/* Parses the command's words into f; NULL, or why not. */
static const char *filter_parse(char *args, struct tap_filter *f, char *why, size_t whylen)
{
    char *save = NULL;
    for (char *w = strtok_r(args, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (strcmp(w, "json") == 0) {
            f->json = true;
            continue;
        }
        if (strcmp(w, "call") != 0 && strcmp(w, "method") != 0 && strcmp(w, "src") != 0 &&
            strcmp(w, "capture_id") != 0) {
            snprintf(why, whylen, "unknown term \"%s\"; usage: %s", w, TAP_USAGE);
            return why;
        }
        char *value = strtok_r(NULL, " \t", &save);
        bool dup = false;
        if (value == NULL) {
            snprintf(why, whylen, "%s needs a value; usage: %s", w, TAP_USAGE);
            return why;
        }
        if (strcmp(w, "call") == 0) {
            dup = f->call_id != NULL;
            free(f->call_id);
            if ((f->call_id = copy_word(value, &f->call_len)) == NULL)
                return "out of memory";
        } else if (strcmp(w, "method") == 0) {
            dup = f->method != NULL;
            free(f->method);
            if ((f->method = copy_word(value, &f->method_len)) == NULL)
                return "out of memory";
        } else if (strcmp(w, "src") == 0) {
            dup = f->has_src;
            const char *bad = conf_parse_cidr(value, &f->src);
            if (bad != NULL) {
                snprintf(why, whylen, "src %s: %s", value, bad);
                return why;
            }
            f->has_src = true;
        } else if (strcmp(w, "capture_id") == 0) {
            char *end;
            unsigned long long id = strtoull(value, &end, 10);
            dup = f->has_capture_id;
            if (*end != '\0' || value[0] < '0' || value[0] > '9' || strlen(value) > TAP_DECIMAL_MAX ||
                id > UINT32_MAX) {
                snprintf(why, whylen, "capture_id %s: not a number from 0 to %" PRIu32, value, UINT32_MAX);
                return why;
            }
            f->capture_id = (uint32_t)id;
            f->has_capture_id = true;
        }
        if (dup) {
            snprintf(why, whylen, "%s given twice", w);
            return why;
        }
    }
    return NULL;
}

void tap_command(struct tap *t, const char *args, struct control_request *req)
{
    char why[256];
    char *words = strdup(args);
    struct tap_shared *sh = calloc(1, sizeof *sh);
    struct tap_reader *r = calloc(1, sizeof *r);
    if (words == NULL || sh == NULL || r == NULL) {
        free(words);
        free(sh);
        free(r);
        control_answer_error(req, "out of memory");
        return;
    }
    const char *bad = filter_parse(words, &sh->f, why, sizeof why);
    free(words);
    char *json = NULL;
    size_t len = 0;
    FILE *f = bad == NULL ? open_memstream(&json, &len) : NULL;
    if (bad != NULL || f == NULL) {
        filter_clear(&sh->f);
        free(sh);
        free(r);
        control_answer_error(req, "%s", bad != NULL ? bad : "out of memory");
        return;
    }
    sh->id = ++t->next_id;
    atomic_init(&sh->stalled, false);
    atomic_init(&sh->refs, 1);
    r->t = t;
    r->sh = sh;
    fprintf(f, "{\"tap\":%" PRIu64 ",\"filter\":", sh->id);
    control_json_string(f, args, strlen(args));
    fprintf(f, ",\"format\":\"%s\",\"stream\":true}", sh->f.json ? "json" : "text");
    if (fclose(f) != 0) {
        free(json);
        reader_free(r);
        control_answer_error(req, "out of memory");
        return;
    }
    r->stream = control_stream_open(req, json, len, t->buffer, on_reader_closed, on_reader_drained, r);
    free(json);
    if (r->stream == NULL) {
        reader_free(r);
        return;
    }
    list_insert_tail(&t->readers, &r->link);
    log_info("tap %" PRIu64 " opened: %s", sh->id, args[0] != '\0' ? args : "every packet");
    publish(t);
}

uint64_t tap_lost_by_readers(const struct tap *t)
{
    return t != NULL ? atomic_load(&((struct tap *)t)->lost) : 0;
}

/* ---- life ---- */

static int worker_init(struct tap *t, struct tap_worker *tw)
{
    tw->t = t;
    pthread_mutex_init(&tw->lock, NULL);
    tw->ring.cap = t->buffer / TAP_ALIGN * TAP_ALIGN;
    tw->ring.buf = malloc(tw->ring.cap);
    atomic_init(&tw->ring.head, 0);
    atomic_init(&tw->ring.tail, 0);
    if (tw->ring.buf == NULL)
        return -1;
    for (int k = 0; k < TAP_FORMS; k++)
        if ((tw->fmt[k] = open_memstream(&tw->fmt_buf[k], &tw->fmt_size[k])) == NULL)
            return -1;
    return 0;
}

static void worker_fini(struct tap_worker *tw)
{
    if (tw->loop != NULL) {
        ev_async_stop(tw->loop, &tw->changed);
        router_set_explain(tw->router, NULL, NULL);
    }
    set_free(tw->pending);
    set_free(tw->set);
    free(tw->ring.buf);
    for (int k = 0; k < TAP_FORMS; k++) {
        if (tw->fmt[k] != NULL)
            fclose(tw->fmt[k]);
        free(tw->fmt_buf[k]);
    }
    pthread_mutex_destroy(&tw->lock);
}

struct tap *tap_new(struct ev_loop *main_loop, unsigned nworkers, size_t buffer)
{
    struct tap *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->loop = main_loop;
    t->buffer = buffer;
    t->nworkers = nworkers;
    atomic_init(&t->lost, 0);
    list_init(&t->readers);
    t->workers = calloc(nworkers, sizeof *t->workers);
    if (t->workers == NULL) {
        free(t);
        return NULL;
    }
    for (unsigned i = 0; i < nworkers; i++) {
        if (worker_init(t, &t->workers[i]) != 0) {
            t->nworkers = i + 1;
            tap_free(t);
            return NULL;
        }
    }
    ev_async_init(&t->wake, on_wake);
    t->wake.data = t;
    ev_async_start(main_loop, &t->wake);
    return t;
}

void tap_free(struct tap *t)
{
    if (t == NULL)
        return;
    if (ev_is_active(&t->wake))
        ev_async_stop(t->loop, &t->wake);
    struct list_link *pos, *tmp;
    list_foreach_safe(pos, tmp, &t->readers) {
        struct tap_reader *r = list_entry(pos, struct tap_reader, link);
        list_remove(&t->readers, pos);
        control_stream_close(r->stream);
        reader_free(r);
    }
    for (unsigned i = 0; i < t->nworkers; i++)
        worker_fini(&t->workers[i]);
    free(t->workers);
    free(t);
}
