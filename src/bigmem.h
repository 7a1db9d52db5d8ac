/*
 * bigmem.h - large zeroed tables, backed by huge pages where the kernel
 * offers them.
 *
 * A table of many megabytes read at random (the dedup window) costs a TLB
 * miss per access on 4 KiB pages, and in a virtual machine a TLB miss is a
 * two-level page walk: profiled, that stall was most of a dedup check.
 * bigmem_alloc() maps anonymous memory (zero, and resident only as it is
 * first written, like calloc) and, when the table spans BIGMEM_HUGE_PAGE
 * at least, aligns it to one and asks for transparent huge pages
 * (madvise(MADV_HUGEPAGE): used in the kernel's "always" and "madvise"
 * modes, ignored in "never").  Without the advice (another kernel) the
 * table is the same, on small pages.
 */
#ifndef HEPROUTER_BIGMEM_H
#define HEPROUTER_BIGMEM_H

#include <stddef.h>

#define BIGMEM_HUGE_PAGE ((size_t)2 << 20)  /* x86-64 and arm64's transparent huge page */

struct bigmem {
    void *ptr;                  /* the table: len bytes, zero, page-aligned (huge-page-aligned when that large) */
    size_t len;
    void *map;                  /* what was mapped, for bigmem_free() */
    size_t map_len;
};

/* Maps len bytes (len > 0) into *m.  Returns m->ptr, or NULL (ENOMEM) with *m zeroed. */
void *bigmem_alloc(struct bigmem *m, size_t len);

/* Unmaps what bigmem_alloc() mapped; a zeroed struct is fine. */
void bigmem_free(struct bigmem *m);

#endif
