/*
 * nx_ddsketch.h — relative-error quantile sketch (DDSketch, Masson et al.,
 * VLDB 2019).
 *
 * A value x > 0 goes to bin k = ceil(log_gamma(x)) with gamma = (1+a)/(1-a);
 * the bin's representative 2*gamma^k/(gamma+1) is within relative error a of
 * every value in the bin, so every quantile the sketch reports is within a of
 * the true sample of that rank. Negative values use a mirrored store; values
 * with |x| < min_indexable go to a zero bucket. Bin counts are doubles (sample
 * rates weight events by 1/r).
 *
 * Storage: sparse (sorted key/count pairs) while small, dense (contiguous
 * counts over [min_key, max_key]) once that is smaller. The number of bins is
 * bounded by max_bins: past it the LOWEST bins are collapsed into one (so the
 * upper quantiles — p99, p999 — keep their guarantee; low quantiles may lose
 * it, which is reported by nx_ddsketch_collapsed()).
 *
 * Merge is exact (bin-wise addition) for sketches with the same alpha.
 * nx_ddsketch_sub is the inverse of a merge (bin-wise subtraction, clamping
 * residue to zero), used by subtract-on-evict windows.
 */
#ifndef NX_DDSKETCH_H
#define NX_DDSKETCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "nexus.h"

struct nx_rbuf;

int nx_ddsketch_create(double alpha, uint32_t max_bins, nx_ddsketch **out);
void nx_ddsketch_destroy(nx_ddsketch *s);
void nx_ddsketch_clear(nx_ddsketch *s);
int nx_ddsketch_clone(const nx_ddsketch *s, nx_ddsketch **out);

/* Adds value with weight (> 0). NX_EINVAL for NaN/Inf. May allocate when the
 * sketch grows (amortized; no allocation once the range is covered). */
int nx_ddsketch_add(nx_ddsketch *s, double value, double weight);
/* Adds n values, each with the same weight: the same state as n calls of
 * nx_ddsketch_add in order, but the bins' cache lines are fetched together
 * (all keys first, then the adds), so one add's miss does not wait for the
 * previous one's. NX_EINVAL (nothing added) if weight or any value is
 * invalid. *done = how many were added (n on success; on an allocation
 * failure, the values before the one that failed). */
int nx_ddsketch_add_many(nx_ddsketch *s, const double *values, uint32_t n, double weight,
                         uint32_t *done);
/*
 * Packed bins: a value's bin computed from alpha alone, without the sketch,
 * so a caller can map values while the sketch's cache lines are still far
 * away and add them later. nx_ddsketch_pack(inv_ln_gamma, v) with
 * inv_ln_gamma = nx_ddsketch_inv_ln_gamma(alpha) gives key * 4 + class (0:
 * positive store, 1: negative store, 2: zero bucket) for a finite v, the
 * same bin nx_ddsketch_add takes; nx_ddsketch_add_packed(s, ...) then adds
 * them exactly like nx_ddsketch_add_many (s must have that alpha; weight
 * checked, NX_EINVAL adds nothing). add_many is pack + add_packed.
 */
double nx_ddsketch_inv_ln_gamma(double alpha);
int32_t nx_ddsketch_pack(double inv_ln_gamma, double value);
int nx_ddsketch_add_packed(nx_ddsketch *s, const int32_t *packed, uint32_t n, double weight,
                           uint32_t *done);
/* The same for any n, in one pass when it can: every value positive into a
 * sparse store (a one-second sketch's whole second at its close) sorts the
 * keys and merges them at once, instead of a merge pass per NX_DD_BATCH
 * values (each O(store)); otherwise NX_DD_BATCH at a time, in order. The
 * result is add_packed's. scratch: room for 2 * n keys. */
int nx_ddsketch_add_packed_all(nx_ddsketch *s, const int32_t *packed, uint32_t n, double weight,
                               uint32_t *scratch, uint32_t *done);
/* dst += src; NX_EINVAL if alphas differ. */
int nx_ddsketch_merge(nx_ddsketch *dst, const nx_ddsketch *src);
/* dst -= src (src must have been merged into dst before). */
int nx_ddsketch_sub(nx_ddsketch *dst, const nx_ddsketch *src);
/* Prefetches the bins a merge from s or a subtraction of s will read (at
 * most NX_DD_PREFETCH_LINES cache lines per store). Reads s's struct: have
 * it in cache first (a hint for a sketch about to be read, e.g. the window
 * sub-bucket the next step evicts). */
void nx_ddsketch_prefetch_read(const nx_ddsketch *s);
/* Prefetches s's struct (the first stage before nx_ddsketch_prefetch_read). */
void nx_ddsketch_prefetch(const nx_ddsketch *s);

double nx_ddsketch_quantile(const nx_ddsketch *s, double q); /* NAN if empty */
double nx_ddsketch_count(const nx_ddsketch *s);
double nx_ddsketch_alpha(const nx_ddsketch *s);
bool nx_ddsketch_collapsed(const nx_ddsketch *s);
size_t nx_ddsketch_bytes(const nx_ddsketch *s); /* heap bytes owned */
/* Shrinks the bin arrays and blocks to the bins the sketch holds (same
 * content; a later add grows them again). For a sketch that will mostly be
 * read and subtracted from now on (a window's complete sub-bucket). */
void nx_ddsketch_fit(nx_ddsketch *s);
/* nx_ddsketch_fit, then holds the counts as 4-byte floats when every one of
 * them is exactly a float (integer counts below 2^24: events of weight 1).
 * Nothing is rounded: reads, merges from it, subtractions of it and its
 * encoding see the same doubles. Anything that changes it (add, merge or
 * subtract into it) first turns it back (one allocation; NX_ENOMEM); a
 * clear drops its bins. For a window's complete sub-bucket, which is read
 * and subtracted from its window's aggregate once more, then cleared. */
void nx_ddsketch_freeze(nx_ddsketch *s);
uint32_t nx_ddsketch_max_bins(const nx_ddsketch *s);
/* Same alpha, max_bins, zero count and non-zero bins (exact comparison of
 * counts, whatever the sparse/dense representation). */
bool nx_ddsketch_equal(const nx_ddsketch *a, const nx_ddsketch *b);

int nx_ddsketch_encode(const nx_ddsketch *s, nx_buf *out);
int nx_ddsketch_decode(struct nx_rbuf *in, nx_ddsketch **out);

#endif
