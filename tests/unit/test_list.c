/*
 * test_list.c - unit tests for src/list.h, the intrusive doubly linked list.
 *
 * Every test checks the whole list after each step, both ways: first to
 * last through next, last to first through prev.
 */
#include "list.h"
#include "unit.h"

#include <stdbool.h>

#define ITEMS 5

/* An element on two lists at once; the links are not its first field. */
struct item {
    int value;
    struct list_link link;
    struct list_link other;
};

static void items_init(struct item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        items[i].value = (int)i;
        items[i].link.prev = items[i].link.next = NULL;
        items[i].other.prev = items[i].other.next = NULL;
    }
}

/* 1 when l holds exactly the values want[0..n), in that order, both ways. */
static int list_is(const struct list *l, const int *want, size_t n)
{
    size_t i = 0;
    const struct list_link *prev = NULL;
    for (struct list_link *e = list_first(l); e != NULL; e = list_next(e), i++) {
        if (i >= n || list_entry(e, struct item, link)->value != want[i] || list_prev(e) != prev)
            return 0;
        prev = e;
    }
    if (i != n || l->last != prev)
        return 0;
    for (struct list_link *e = l->last; e != NULL; e = list_prev(e)) {
        if (i == 0 || list_entry(e, struct item, link)->value != want[--i])
            return 0;
    }
    return i == 0 && list_empty(l) == (n == 0);
}

static void test_zeroed_list_is_empty(void)
{
    struct list l = { 0 };
    CU_ASSERT_TRUE(list_empty(&l));
    CU_ASSERT_PTR_NULL(list_first(&l));
    CU_ASSERT_PTR_NULL(list_first_entry(&l, struct item, link));
    CU_ASSERT_TRUE(list_is(&l, NULL, 0));

    struct item it;
    items_init(&it, 1);
    list_insert_tail(&l, &it.link);
    CU_ASSERT_FALSE(list_empty(&l));
    list_init(&l);
    CU_ASSERT_TRUE(list_empty(&l));
    CU_ASSERT_PTR_NULL(l.last);
}

static void test_insert_tail_keeps_order(void)
{
    struct list l = { 0 };
    struct item items[ITEMS];
    items_init(items, ITEMS);
    list_insert_tail(&l, &items[0].link);
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 0 }, 1));
    CU_ASSERT_PTR_EQUAL(list_first_entry(&l, struct item, link), &items[0]);
    for (size_t i = 1; i < ITEMS; i++)
        list_insert_tail(&l, &items[i].link);
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 0, 1, 2, 3, 4 }, ITEMS));
    CU_ASSERT_PTR_EQUAL(list_entry(l.last, struct item, link), &items[ITEMS - 1]);
}

static void test_insert_head_goes_first(void)
{
    struct list l = { 0 };
    struct item items[3];
    items_init(items, 3);
    list_insert_head(&l, &items[0].link);
    list_insert_head(&l, &items[1].link);
    list_insert_tail(&l, &items[2].link);
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 1, 0, 2 }, 3));
}

static void test_remove_head_middle_tail(void)
{
    struct list l = { 0 };
    struct item items[ITEMS];
    items_init(items, ITEMS);
    for (size_t i = 0; i < ITEMS; i++)
        list_insert_tail(&l, &items[i].link);

    list_remove(&l, &items[0].link);            /* head */
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 1, 2, 3, 4 }, 4));
    CU_ASSERT_PTR_NULL(items[0].link.prev);
    CU_ASSERT_PTR_NULL(items[0].link.next);
    list_remove(&l, &items[2].link);            /* middle */
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 1, 3, 4 }, 3));
    CU_ASSERT_PTR_NULL(items[2].link.prev);
    CU_ASSERT_PTR_NULL(items[2].link.next);
    list_remove(&l, &items[4].link);            /* tail */
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 1, 3 }, 2));
    list_remove(&l, &items[1].link);
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 3 }, 1));
    list_remove(&l, &items[3].link);            /* the only one */
    CU_ASSERT_TRUE(list_is(&l, NULL, 0));
    CU_ASSERT_PTR_NULL(l.first);
    CU_ASSERT_PTR_NULL(l.last);

    /* a removed element can go back on */
    list_insert_tail(&l, &items[2].link);
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 2 }, 1));
}

static void test_insert_after(void)
{
    struct list l = { 0 };
    struct item items[ITEMS];
    items_init(items, ITEMS);
    list_insert_tail(&l, &items[0].link);
    list_insert_tail(&l, &items[1].link);

    list_insert_after(&l, &items[0].link, &items[2].link);     /* middle */
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 0, 2, 1 }, 3));
    list_insert_after(&l, &items[1].link, &items[3].link);     /* after the last: the new last */
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 0, 2, 1, 3 }, 4));
    list_insert_after(&l, NULL, &items[4].link);               /* NULL: the new first */
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 4, 0, 2, 1, 3 }, 5));
}

static void test_insert_after_null_on_empty_list(void)
{
    struct list l = { 0 };
    struct item it;
    items_init(&it, 1);
    list_insert_after(&l, NULL, &it.link);
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 0 }, 1));
}

/* A mark that walks forward, as the Redis store's requeued writes use it. */
static void test_insert_after_a_moving_mark(void)
{
    struct list l = { 0 };
    struct item items[ITEMS];
    items_init(items, ITEMS);
    list_insert_tail(&l, &items[3].link);
    list_insert_tail(&l, &items[4].link);
    struct list_link *mark = NULL;
    for (size_t i = 0; i < 3; i++) {
        list_insert_after(&l, mark, &items[i].link);
        mark = &items[i].link;
    }
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 0, 1, 2, 3, 4 }, ITEMS));
}

static void test_foreach_safe_removes_while_iterating(void)
{
    struct list l = { 0 };
    struct item items[ITEMS];
    items_init(items, ITEMS);
    for (size_t i = 0; i < ITEMS; i++)
        list_insert_tail(&l, &items[i].link);

    struct list_link *pos, *tmp;
    int seen = 0;
    list_foreach_safe(pos, tmp, &l) {
        struct item *it = list_entry(pos, struct item, link);
        CU_ASSERT_EQUAL(it->value, seen);
        seen++;
        if (it->value % 2 == 0)
            list_remove(&l, pos);
    }
    CU_ASSERT_EQUAL(seen, ITEMS);
    CU_ASSERT_TRUE(list_is(&l, (const int[]){ 1, 3 }, 2));

    seen = 0;
    list_foreach_safe(pos, tmp, &l) {
        list_remove(&l, pos);
        pos->next = pos->prev = pos;            /* as if freed: the loop must not read it again */
        seen++;
    }
    CU_ASSERT_EQUAL(seen, 2);
    CU_ASSERT_TRUE(list_is(&l, NULL, 0));

    seen = 0;
    list_foreach_safe(pos, tmp, &l)
        seen++;
    CU_ASSERT_EQUAL(seen, 0);
}

static void test_foreach_safe_frees_every_element(void)
{
    struct list l = { 0 };
    for (int i = 0; i < ITEMS; i++) {
        struct item *it = calloc(1, sizeof *it);
        CU_ASSERT_PTR_NOT_NULL_FATAL(it);
        it->value = i;
        list_insert_tail(&l, &it->link);
    }
    struct list_link *pos, *tmp;
    int sum = 0;
    list_foreach_safe(pos, tmp, &l) {
        struct item *it = list_entry(pos, struct item, link);
        sum += it->value;
        free(it);
    }
    CU_ASSERT_EQUAL(sum, 0 + 1 + 2 + 3 + 4);
}

static void test_one_element_on_two_lists(void)
{
    struct list a = { 0 }, b = { 0 };
    struct item items[3];
    items_init(items, 3);
    for (size_t i = 0; i < 3; i++) {
        list_insert_tail(&a, &items[i].link);
        list_insert_head(&b, &items[i].other);
    }
    list_remove(&b, &items[1].other);
    CU_ASSERT_TRUE(list_is(&a, (const int[]){ 0, 1, 2 }, 3));
    CU_ASSERT_PTR_EQUAL(list_first_entry(&b, struct item, other), &items[2]);
    CU_ASSERT_PTR_EQUAL(list_entry(list_next(list_first(&b)), struct item, other), &items[0]);
    CU_ASSERT_PTR_NULL(list_next(list_next(list_first(&b))));
}

int main(void)
{
    static const struct unit_test tests[] = {
        { "a zeroed list is empty", test_zeroed_list_is_empty },
        { "insert at the tail keeps arrival order", test_insert_tail_keeps_order },
        { "insert at the head goes first", test_insert_head_goes_first },
        { "remove the head, a middle one, the tail, the only one", test_remove_head_middle_tail },
        { "insert after an element, after the last, after NULL", test_insert_after },
        { "insert after NULL on an empty list", test_insert_after_null_on_empty_list },
        { "insert after a mark that moves forward", test_insert_after_a_moving_mark },
        { "foreach_safe: removing the current element", test_foreach_safe_removes_while_iterating },
        { "foreach_safe: freeing every element", test_foreach_safe_frees_every_element },
        { "one element on two lists", test_one_element_on_two_lists },
        { NULL, NULL },
    };
    return unit_run("list", tests);
}
