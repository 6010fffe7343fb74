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
/* Adds one value with weight w (1/sample_rate); a non-positive or
 * non-finite weight or a non-finite value is ignored. */
void nx_moments_add(nx_moments *m, double value, double weight);

/* nx_moments_add for a caller that has checked value and weight already
 * (the engine's per-event path): inline, no checks. Weighted Welford (West
 * 1979): with W = count + w and d = x - mean, mean += d * w / W and
 * m2 += w * d * (x - mean'). */
static inline void nx_moments_add_checked(nx_moments *m, double value, double weight)
{
    double n = m->count + weight;
    double d = value - m->mean;
    double mean = m->mean + d * (weight / n);
    double m2 = m->m2 + weight * d * (value - mean);
    m->m2 = m2 < 0 ? 0 : m2; /* rounding when the value equals the mean */
    m->mean = mean;
    m->count = n;
    m->sum += weight * value;
    m->min = value < m->min ? value : m->min;
    m->max = value > m->max ? value : m->max;
}
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
