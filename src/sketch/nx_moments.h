/*
 * nx_moments.h — weighted count, sum, min, max, mean and variance.
 *
 * Welford's update generalised to weights (West 1979) and Chan et al.'s
 * pairwise merge, so that shards and buckets combine without the
 * catastrophic cancellation of the naive sum-of-squares formula. Count and
 * sum/mean/m2 are invertible (nx_moments_sub undoes a merge: that is what
 * subtract-on-evict windows use); min and max are not (windows keep them with
 * Two-Stacks).
 */
#ifndef NX_MOMENTS_H
#define NX_MOMENTS_H

#include <stdint.h>

typedef struct nx_moments {
    double count; /* sum of weights */
    double sum;   /* sum of weight * value */
    double mean;
    double m2;    /* sum of weight * (value - mean)^2 */
    double min, max;
} nx_moments;

void nx_moments_init(nx_moments *m);                 /* empty: min=+inf, max=-inf */
void nx_moments_add(nx_moments *m, double value, double weight);
void nx_moments_merge(nx_moments *dst, const nx_moments *src);
/* dst -= src for count/sum/mean/m2 (min/max untouched). Exact inverse of a
 * merge up to rounding; a result with count <= tiny resets to empty. */
void nx_moments_sub(nx_moments *dst, const nx_moments *src);
double nx_moments_variance(const nx_moments *m);     /* population variance */

struct nx_buf;
struct nx_rbuf;
int nx_moments_encode(const nx_moments *m, struct nx_buf *out);
int nx_moments_decode(struct nx_rbuf *in, nx_moments *out);

#endif
