/*
 * bigmem.h - large zeroed tables, backed by huge pages where the kernel
 * offers them.
 *
 * A table of many megabytes read at random (the dedup window) costs a TLB
 * miss per access on 4 KiB pages, and in a virtual machine a TLB miss is a
 * two-level page walk: profiled, that stall was most of a dedup check.
 * bigmem_alloc() maps anonymous memory (zero) and, when the table spans
 * BIGMEM_HUGE_PAGE at least, aligns it to one and asks for transparent
 * huge pages (madvise(MADV_HUGEPAGE): used in the kernel's "always" and
 * "madvise" modes, ignored in "never").  Without the advice (another
 * kernel) the table is the same, on small pages.  It becomes resident as
 * it is first written, like calloc, or at once by bigmem_populate().
 */
#ifndef HEPROUTER_BIGMEM_H
#define HEPROUTER_BIGMEM_H

#include <stddef.h>

#define BIGMEM_HUGE_PAGE ((size_t)2 << 20)  /* x86-64 and arm64's transparent huge page */
#define BIGMEM_SMALL_PAGE ((size_t)4 << 10) /* their small page, when sysconf() cannot tell */

struct bigmem {
    void *ptr;                  /* the table: len bytes, zero, page-aligned (huge-page-aligned when that large) */
    size_t len;
    void *map;                  /* what was mapped, for bigmem_free() */
    size_t map_len;
};

/* Maps len bytes (len > 0) into *m.  Returns m->ptr, or NULL (ENOMEM) with *m zeroed. */
void *bigmem_alloc(struct bigmem *m, size_t len);

/*
 * Makes the whole table resident now (its contents unchanged), rather than
 * page by page under the first packets: a table read at random is all
 * touched within seconds anyway, and a first touch on the packet path (a
 * huge page zeroed, or compacted for) held the first packets up for tens
 * of milliseconds.  MADV_POPULATE_WRITE (Linux 5.14) does it in one call;
 * elsewhere a write of zero to each page.
 */
void bigmem_populate(struct bigmem *m);

/* Unmaps what bigmem_alloc() mapped; a zeroed struct is fine. */
void bigmem_free(struct bigmem *m);

#endif
