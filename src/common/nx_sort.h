/*
 * nx_sort.h — sorting arrays of unsigned integer keys, ascending.
 *
 * Why not qsort: snapshot encodes put sketch contents in a canonical order
 * (a sliding HLL's live entries, a sparse HLL's registers), thousands of
 * keys per set stream, on the shard thread. glibc's qsort is a merge sort
 * that calls a comparator through a pointer for every comparison: in a
 * profile of the shard iterations slowed by a snapshot, msort and its
 * comparators were 14% of the samples. These are LSD radix sorts (8-bit
 * digits, a pass skipped when every key has the same digit: keys that use
 * few bits cost few passes), with insertion sort below NX_SORT_SMALL keys.
 *
 * Stable, O(n) per pass; the radix path needs n keys of scratch memory:
 * NX_ENOMEM (the array untouched) if it cannot be allocated.
 */
#ifndef NX_SORT_H
#define NX_SORT_H

#include <stddef.h>
#include <stdint.h>

#define NX_SORT_SMALL 48

int nx_sort_u64(uint64_t *v, size_t n);
int nx_sort_u32(uint32_t *v, size_t n);
/* The same with caller's scratch: tmp holds n keys (unused, may be NULL,
 * below NX_SORT_SMALL). No allocation, no failure. */
void nx_sort_u64_with(uint64_t *v, size_t n, uint64_t *tmp);
void nx_sort_u32_with(uint32_t *v, size_t n, uint32_t *tmp);

#endif
