/*
 * nx_hll.h — HyperLogLog distinct counter, HLL++ style (Heule et al. 2013).
 *
 * Precision p (14..18), m = 2^p registers of 6 bits. Sparse representation
 * (a hash table of encoded (index, rank) entries at precision p) while small,
 * converted to dense when it would be bigger. Estimation: Ertl's improved
 * estimator (2017), which covers the linear-counting range and the large
 * range without bias tables. Hashes are 64-bit XXH3 (libxxhash).
 * Merge takes register-wise maxima: merge(A, B) is exactly the sketch of the
 * union. Not invertible (windows keep it with Two-Stacks).
 */
#ifndef NX_HLL_H
#define NX_HLL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "nexus.h"

struct nx_rbuf;

int nx_hll_create(uint8_t precision, nx_hll **out);
void nx_hll_destroy(nx_hll *h);
void nx_hll_clear(nx_hll *h);
int nx_hll_clone(const nx_hll *h, nx_hll **out);
int nx_hll_add(nx_hll *h, const void *member, size_t len);
int nx_hll_add_hash(nx_hll *h, uint64_t hash);
/* Hint: prefetches the cache line nx_hll_add_hash(h, hash) will touch
 * (batch adds issue every hint first, then the adds). */
void nx_hll_prefetch(const nx_hll *h, uint64_t hash);
/* The register index and rank nx_hll_add_hash derives from a hash: the top
 * p bits; 1 + the leading zeros of the rest (64 - p + 1 when all zero). */
static inline void nx_hll_split(uint8_t p, uint64_t hash, uint32_t *idx, uint8_t *rank)
{
    uint64_t rest = hash << p;
    *idx = (uint32_t)(hash >> (64 - p));
    *rank = rest ? (uint8_t)(__builtin_clzll(rest) + 1) : (uint8_t)(64 - p + 1);
}
/* register idx := max(register idx, rank) (rank in 1..64-p+1). */
int nx_hll_raise(nx_hll *h, uint32_t idx, uint8_t rank);
/* The value of register idx (0 if never raised). */
uint8_t nx_hll_register(const nx_hll *h, uint32_t idx);
int nx_hll_merge(nx_hll *dst, const nx_hll *src); /* NX_EINVAL if precisions differ */
double nx_hll_estimate(const nx_hll *h);
uint8_t nx_hll_precision(const nx_hll *h);
/* Converts to the dense representation now (no-op if dense). */
int nx_hll_densify(nx_hll *h);
bool nx_hll_is_dense(const nx_hll *h);
size_t nx_hll_bytes(const nx_hll *h);
int nx_hll_encode(const nx_hll *h, nx_buf *out);
int nx_hll_decode(struct nx_rbuf *in, nx_hll **out);

#endif
