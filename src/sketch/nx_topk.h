/*
 * nx_topk.h — heavy hitters with SpaceSaving (Metwally et al. 2005).
 *
 * k counters; an unmonitored item replaces the minimum counter and inherits
 * its count as its error. Guarantees, for a stream of total weight N: every
 * item with true frequency > N/k is monitored; for each monitored item,
 * count - error <= true <= count. Merge (Agarwal et al. 2012, "Mergeable
 * summaries"): counts of common items add, an item missing from one side
 * gets that side's minimum added to count and error, then the k largest are
 * kept — the merged summary keeps the same guarantee for N = N1 + N2.
 * Not invertible (windows keep it with Two-Stacks).
 */
#ifndef NX_TOPK_H
#define NX_TOPK_H

#include <stddef.h>
#include <stdint.h>
#include "nexus.h"

struct nx_rbuf;

typedef struct nx_topk_item {
    const char *member; /* owned by the sketch; valid until it changes */
    uint32_t member_len;
    double count;       /* upper bound of the true frequency */
    double error;       /* count - error is a lower bound */
} nx_topk_item;

int nx_topk_create(uint32_t capacity, nx_topk **out);
void nx_topk_destroy(nx_topk *t);
void nx_topk_clear(nx_topk *t);
/* Gives back what only changes need (the heap, the lookup table, spare
 * counters and arena bytes) from a sketch that will be merged from and read
 * for a while; whatever changes it next takes them back first. Its content
 * and answers do not change. */
void nx_topk_freeze(nx_topk *t);
int nx_topk_clone(const nx_topk *t, nx_topk **out);
int nx_topk_add(nx_topk *t, const char *member, uint32_t len, double weight);
/* nx_topk_add with the member's XXH3_64bits hash already computed (the set
 * path hashes a member once for its HLL, sliding HLL and top-k). */
/* Members longer than this are refused (NX_ETOOBIG). */
#define NX_TOPK_MEMBER_MAX 65535u
int nx_topk_add_hash(nx_topk *t, const char *member, uint32_t len, uint64_t hash,
                     double weight);
/* Exact counting for a batch: nx_topk_add_hash without the heap's upkeep
 * (it is rebuilt when next needed). While the sketch has fewer than k
 * members it never evicts, so it holds the exact counts of what was
 * tallied (errors 0); full, a new member is added as by nx_topk_add_hash.
 * The set path tallies a batch of members into a scratch sketch of room
 * enough and merges that into the stream's (nx_topk_merge): one merge per
 * batch instead of a heap sift per member. */
int nx_topk_tally(nx_topk *t, const char *member, uint32_t len, uint64_t hash, double weight);
/* n tallies at once, as n nx_topk_tally calls in order would make them,
 * with the weight, the lengths and the sketch's state checked once (a
 * drained member log, a few members at a time). On an error the members
 * before the failing one are in; nothing is when a length or the weight is
 * refused. */
int nx_topk_tally_n(nx_topk *t, const char *const *members, const uint32_t *lens,
                    const uint64_t *hashes, uint32_t n, double weight);
/* dst += src. Both have the same capacity, or src is not full (it has
 * never evicted: it is exact, and its capacity may be any); else
 * NX_EINVAL. All or nothing: on NX_ENOMEM dst is unchanged. */
int nx_topk_merge(nx_topk *dst, const nx_topk *src);
/* Hint: prefetches what a merge reads of t (its counters, table and member
 * bytes; reads the sketch's struct). A loop of merges calls it for the
 * next merge's sketches while the current one runs. */
void nx_topk_prefetch_merge(const nx_topk *t);
/* dst = src, reusing dst's storage (same capacity, else NX_EINVAL). */
int nx_topk_copy(nx_topk *dst, const nx_topk *src);
double nx_topk_total(const nx_topk *t);  /* N: total weight seen */
uint32_t nx_topk_capacity(const nx_topk *t);
uint32_t nx_topk_size(const nx_topk *t); /* counters in use (< capacity: exact) */
/* Gives a sketch that was never full (fewer counters than its capacity: it
 * has never evicted, so it is exact) the capacity k. With more than k
 * counters it keeps its k first candidates (largest counts), which is what
 * merging it into an empty sketch of capacity k would keep, in place: one
 * selection, no copy. A window's current set sub-bucket collects its
 * sub-buckets exactly in a wider sketch and is cut to the engine's
 * capacity when it completes (nx_window.h, "Wide current"). A no-op when
 * the capacity is k already; NX_EINVAL when the sketch is full (its
 * counts are bounds that a wider capacity would no longer cover) or k is
 * out of range; NX_ENOMEM leaves the sketch unchanged. */
int nx_topk_set_capacity(nx_topk *t, uint32_t k);
/* Writes up to max items, by decreasing count; returns how many. */
size_t nx_topk_list(const nx_topk *t, nx_topk_item *out, size_t max);
size_t nx_topk_bytes(const nx_topk *t);
int nx_topk_encode(const nx_topk *t, nx_buf *out);
int nx_topk_decode(struct nx_rbuf *in, nx_topk **out);

#endif
