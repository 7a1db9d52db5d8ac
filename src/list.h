/*
 * list.h - an intrusive doubly linked list.
 *
 * The element embeds a struct list_link; a struct list names the first and
 * the last link.  Nothing is allocated: every operation rewrites a few
 * pointers in O(1), and an element is on as many lists as it has links.
 *
 * The contract:
 * - A zeroed struct list is an empty one (calloc() is enough; list_init()
 *   for the rest).  No link points back at the list, so the struct holding
 *   it may be copied or moved, but then only the copy is the list.
 * - A link is on at most one list at a time, and removing it takes that
 *   list.  Whether an element is on a list is its owner's to know: a link
 *   list_remove() cleared looks like the only link of a list.
 * - list_insert_after() with after NULL inserts at the head; after must
 *   otherwise be on the same list.
 * - list_first(), list_next() and list_prev() return NULL past either end.
 * - list_entry() turns a link back into its element (offsetof); the link
 *   must not be NULL.  list_first_entry() is NULL for an empty list.
 * - list_foreach_safe() walks from the first link to the last; its body may
 *   remove (and free) the current element, and nothing else of the list.
 *
 * Core code: no I/O, no allocation, nothing but <stddef.h> and <stdbool.h>.
 */
#ifndef HEPROUTER_LIST_H
#define HEPROUTER_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_link {
    struct list_link *prev;
    struct list_link *next;
};

struct list {
    struct list_link *first;
    struct list_link *last;
};

static inline void list_init(struct list *l)
{
    l->first = l->last = NULL;
}

static inline bool list_empty(const struct list *l)
{
    return l->first == NULL;
}

static inline struct list_link *list_first(const struct list *l)
{
    return l->first;
}

static inline struct list_link *list_next(const struct list_link *e)
{
    return e->next;
}

static inline struct list_link *list_prev(const struct list_link *e)
{
    return e->prev;
}

/* Puts e right after `after` (on l), or at the head when after is NULL. */
static inline void list_insert_after(struct list *l, struct list_link *after, struct list_link *e)
{
    e->prev = after;
    e->next = after != NULL ? after->next : l->first;
    if (e->prev != NULL)
        e->prev->next = e;
    else
        l->first = e;
    if (e->next != NULL)
        e->next->prev = e;
    else
        l->last = e;
}

static inline void list_insert_head(struct list *l, struct list_link *e)
{
    list_insert_after(l, NULL, e);
}

static inline void list_insert_tail(struct list *l, struct list_link *e)
{
    list_insert_after(l, l->last, e);
}

/* Takes e off l and clears its link. */
static inline void list_remove(struct list *l, struct list_link *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        l->first = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        l->last = e->prev;
    e->prev = e->next = NULL;
}

/* The element of type `type` whose field `member` is the link (not NULL). */
#define list_entry(link, type, member) \
    ((type *)(void *)((char *)(link) - offsetof(type, member)))

/* list_entry() of a link that may be NULL, evaluated once. */
static inline void *list_entry_at(struct list_link *link, size_t offset)
{
    return link != NULL ? (void *)((char *)link - offset) : NULL;
}

/* The first element of l, or NULL when l is empty. */
#define list_first_entry(l, type, member) \
    ((type *)list_entry_at(list_first(l), offsetof(type, member)))

/* For each link `pos` of l, first to last; the body must not remove it. */
#define list_foreach(pos, l) for ((pos) = (l)->first; (pos) != NULL; (pos) = (pos)->next)

/* For each link `pos` of l, first to last; tmp keeps the next one, so the body may remove pos. */
#define list_foreach_safe(pos, tmp, l) \
    for ((pos) = (l)->first; (pos) != NULL && ((tmp) = (pos)->next, true); (pos) = (tmp))

#endif
