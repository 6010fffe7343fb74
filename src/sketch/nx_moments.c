/*
 * nx_moments.c — weighted count/sum/min/max/mean/variance (see nx_moments.h).
 *
 * Design
 *   add:   weighted Welford (West 1979). With W = count + w and
 *          d = x - mean:  mean += d * w / W;  m2 += w * d * (x - mean').
 *          One division per event, no cancellation of large squares.
 *   merge: Chan, Golub & LeVeque (1979). With n = na + nb, d = mb - ma:
 *          mean = ma + d * nb / n;  m2 = m2a + m2b + d^2 * na * nb / n.
 *   sub:   the algebraic inverse of merge. Given c = merge(a, b) and b,
 *          na = nc - nb, ma = (nc*mc - nb*mb) / na, m2a = m2c - m2b -
 *          (mb - ma)^2 * na * nb / nc, clamped at 0 (rounding residue).
 *          When na <= NX_MOMENTS_EPS * nc the result is the EMPTY moments
 *          (count = sum = mean = m2 = 0, min = +inf, max = -inf): a window
 *          that evicted everything is exactly empty, never "-1e-13 events".
 *          Otherwise min/max are left untouched (they are not invertible;
 *          windows keep them with Two-Stacks).
 *   Sample rates: the caller passes weight = 1/rate; count is then the
 *   estimated number of events, sum the estimated total, and the variance
 *   is the frequency-weighted population variance.
 *
 * Serialized layout (48 bytes, all little-endian IEEE-754 binary64; the
 * version lives in the caller's frame):
 *   off  0  f64 count   (finite, >= 0)
 *   off  8  f64 sum     (finite)
 *   off 16  f64 mean    (finite)
 *   off 24  f64 m2      (finite, >= 0)
 *   off 32  f64 min     (+inf when count == 0)
 *   off 40  f64 max     (-inf when count == 0)
 * Decoding checks these constraints (and min <= max when count > 0) and
 * returns NX_ECORRUPT otherwise.
 */
#include <assert.h>
#include <math.h>

#include "common/nx_codec.h"
#include "sketch/nx_moments.h"

/* Relative count below which a subtraction result is considered empty. */
#define NX_MOMENTS_EPS 1e-9

void nx_moments_init(nx_moments *m)
{
    m->count = 0;
    m->sum = 0;
    m->mean = 0;
    m->m2 = 0;
    m->min = INFINITY;
    m->max = -INFINITY;
}

void nx_moments_add(nx_moments *m, double value, double weight)
{
    if (!(weight > 0) || !isfinite(weight) || !isfinite(value))
        return;
    nx_moments_add_checked(m, value, weight);
    assert(m->count > 0 && m->min <= m->max);
}

void nx_moments_merge(nx_moments *dst, const nx_moments *src)
{
    if (!(src->count > 0))
        return;
    if (!(dst->count > 0)) {
        *dst = *src;
        return;
    }
    double na = dst->count, nb = src->count, n = na + nb;
    double d = src->mean - dst->mean;
    dst->mean += d * (nb / n);
    dst->m2 += src->m2 + d * d * (na / n) * nb;
    dst->count = n;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

void nx_moments_sub(nx_moments *dst, const nx_moments *src)
{
    if (!(src->count > 0))
        return;
    double nc = dst->count, nb = src->count;
    double na = nc - nb;
    if (!(na > NX_MOMENTS_EPS * nc)) {
        nx_moments_init(dst);
        return;
    }
    double ma = (nc * dst->mean - nb * src->mean) / na;
    double d = src->mean - ma;
    double m2 = dst->m2 - src->m2 - d * d * (na / nc) * nb;
    if (m2 < 0)
        m2 = 0;
    dst->count = na;
    dst->mean = ma;
    dst->m2 = m2;
    dst->sum -= src->sum;
}

double nx_moments_variance(const nx_moments *m)
{
    if (!(m->count > 0))
        return 0;
    double v = m->m2 / m->count;
    return v > 0 ? v : 0;
}

int nx_moments_encode(const nx_moments *m, struct nx_buf *out)
{
    int rc = nx_buf_reserve(out, 48);
    if (rc)
        return rc;
    nx_buf_f64(out, m->count);
    nx_buf_f64(out, m->sum);
    nx_buf_f64(out, m->mean);
    nx_buf_f64(out, m->m2);
    nx_buf_f64(out, m->min);
    nx_buf_f64(out, m->max);
    return 0;
}

int nx_moments_decode(struct nx_rbuf *in, nx_moments *out)
{
    nx_moments m;
    m.count = nx_rbuf_f64(in);
    m.sum = nx_rbuf_f64(in);
    m.mean = nx_rbuf_f64(in);
    m.m2 = nx_rbuf_f64(in);
    m.min = nx_rbuf_f64(in);
    m.max = nx_rbuf_f64(in);
    if (in->err)
        return NX_ECORRUPT;
    if (!isfinite(m.count) || m.count < 0 || !isfinite(m.sum) || !isfinite(m.mean) ||
        !isfinite(m.m2) || m.m2 < 0 || isnan(m.min) || isnan(m.max))
        return NX_ECORRUPT;
    if (m.count > 0) {
        if (!(m.min <= m.max) || !isfinite(m.min) || !isfinite(m.max))
            return NX_ECORRUPT;
    } else if (m.count == 0) {
        if (m.sum != 0 || m.mean != 0 || m.m2 != 0 || m.min != INFINITY || m.max != -INFINITY)
            return NX_ECORRUPT;
    }
    *out = m;
    return 0;
}
