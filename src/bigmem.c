/*
 * bigmem.c - large zeroed tables on huge pages (see bigmem.h).
 */
#include "bigmem.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void bigmem_populate(struct bigmem *m)
{
    if (m->ptr == NULL)
        return;
#ifdef MADV_POPULATE_WRITE
    if (madvise(m->ptr, m->len, MADV_POPULATE_WRITE) == 0)
        return;
#endif
    long page = sysconf(_SC_PAGESIZE);
    size_t step = page > 0 ? (size_t)page : BIGMEM_SMALL_PAGE;
    for (size_t at = 0; at < m->len; at += step)
        ((volatile char *)m->ptr)[at] = 0;
}

void *bigmem_alloc(struct bigmem *m, size_t len)
{
    memset(m, 0, sizeof *m);
    if (len == 0 || len > SIZE_MAX - 2 * BIGMEM_HUGE_PAGE)
        return NULL;
    /* a huge table: room to align its start, its end rounded up to a whole huge page (address space, not memory) */
    bool huge = len >= BIGMEM_HUGE_PAGE;
    size_t whole = huge ? (len + BIGMEM_HUGE_PAGE - 1) & ~(BIGMEM_HUGE_PAGE - 1) : len;
    size_t map_len = huge ? whole + BIGMEM_HUGE_PAGE : len;
    void *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    uintptr_t at = (uintptr_t)map;
    if (huge) {
        at = (at + BIGMEM_HUGE_PAGE - 1) & ~(uintptr_t)(BIGMEM_HUGE_PAGE - 1);
#ifdef MADV_HUGEPAGE
        (void)madvise((void *)at, whole, MADV_HUGEPAGE);    /* advice: the table works without it */
#endif
    }
    *m = (struct bigmem){ (void *)at, len, map, map_len };
    return m->ptr;
}

void bigmem_free(struct bigmem *m)
{
    if (m->map != NULL)
        munmap(m->map, m->map_len);
    memset(m, 0, sizeof *m);
}
