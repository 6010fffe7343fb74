/*
 * nx_summary.c — owned summaries (what a read returns and shards exchange):
 * merge, derived statistics, and the stand-alone wire format.
 *
 * Merge: moments by Chan's pairwise formula, sketches by their exact merges
 * (DDSketch bin-wise, HLL register max, SpaceSaving mergeable summaries),
 * gauges keep the last value of the newer last_ts, first_ts the older one.
 *
 * Serialized summary (nx_summary_encode), inside an nx_codec frame
 *   u32 magic 0x4D53584E ("NXSM" in little-endian byte order) | u8 version 1 |
 *   payload | u32 crc32 of everything before:
 *   payload:
 *     u8   type            nx_type, 1..6
 *     uvar window_s        NX_WINDOW_ALL (0) or the window length
 *     f64  count, sum, mean, m2, min, max   (min/max may be +inf/-inf)
 *     f64  last
 *     svar last_ts
 *     svar first_ts
 *     u8   sketches        bit 0: dd, bit 1: hll, bit 2: topk
 *     [dd]   nx_ddsketch_encode bytes   (only timer/histogram/distribution)
 *     [hll]  nx_hll_encode bytes        (only set)
 *     [topk] nx_topk_encode bytes       (only set)
 *   Anything after the last sketch is an error. All numbers little-endian.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nx_codec.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_topk.h"
#include "sketch/nx_moments.h"
#include "window/nx_window.h"

#define NX_SUMMARY_MAGIC 0x4D53584Eu
#define NX_SUMMARY_VERSION 1

void nx_summary_init(nx_summary *s, nx_type type, uint32_t window_s)
{
    memset(s, 0, sizeof(*s));
    s->type = type;
    s->window_s = window_s;
    s->min = INFINITY;
    s->max = -INFINITY;
}

void nx_summary_free(nx_summary *s)
{
    if (!s)
        return;
    nx_ddsketch_destroy(s->dd);
    nx_hll_destroy(s->hll);
    nx_topk_destroy(s->topk);
    s->dd = NULL;
    s->hll = NULL;
    s->topk = NULL;
}

static void to_moments(const nx_summary *s, nx_moments *m)
{
    m->count = s->count;
    m->sum = s->sum;
    m->mean = s->mean;
    m->m2 = s->m2;
    m->min = s->min;
    m->max = s->max;
}

int nx_summary_merge(nx_summary *dst, const nx_summary *src)
{
    int rc;
    if (dst->type != src->type)
        return NX_EINVAL;
    /* allocate everything first so that a failure leaves dst unchanged */
    nx_ddsketch *dd = NULL;
    nx_hll *hll = NULL;
    nx_topk *topk = NULL;
    if (src->dd && !dst->dd && (rc = nx_ddsketch_clone(src->dd, &dd)))
        return rc;
    if (src->hll && !dst->hll && (rc = nx_hll_clone(src->hll, &hll)))
        goto fail;
    if (src->topk && !dst->topk && (rc = nx_topk_clone(src->topk, &topk)))
        goto fail;
    if (src->dd && dst->dd && (rc = nx_ddsketch_merge(dst->dd, src->dd)))
        goto fail;
    if (src->hll && dst->hll && (rc = nx_hll_merge(dst->hll, src->hll)))
        goto fail;
    if (src->topk && dst->topk && (rc = nx_topk_merge(dst->topk, src->topk)))
        goto fail;
    if (dd)
        dst->dd = dd;
    if (hll)
        dst->hll = hll;
    if (topk)
        dst->topk = topk;
    nx_moments a, b;
    to_moments(dst, &a);
    to_moments(src, &b);
    nx_moments_merge(&a, &b);
    dst->count = a.count;
    dst->sum = a.sum;
    dst->mean = a.mean;
    dst->m2 = a.m2;
    dst->min = a.min;
    dst->max = a.max;
    if (src->last_ts > dst->last_ts || (dst->last_ts == 0 && src->last_ts != 0)) {
        dst->last = src->last;
        dst->last_ts = src->last_ts;
    }
    if (src->first_ts && (!dst->first_ts || src->first_ts < dst->first_ts))
        dst->first_ts = src->first_ts;
    return 0;
fail:
    nx_ddsketch_destroy(dd);
    nx_hll_destroy(hll);
    nx_topk_destroy(topk);
    return rc;
}

double nx_summary_stddev(const nx_summary *s)
{
    if (!(s->count >= 1) || !(s->m2 > 0))
        return 0;
    return sqrt(s->m2 / s->count);
}

double nx_summary_rate(const nx_summary *s, double seconds)
{
    if (!(seconds > 0))
        return 0;
    return (s->type == NX_TYPE_COUNTER ? s->sum : s->count) / seconds;
}

double nx_summary_quantile(const nx_summary *s, double q)
{
    if (!s->dd || !(q >= 0 && q <= 1))
        return NAN;
    return nx_ddsketch_quantile(s->dd, q);
}

double nx_summary_distinct(const nx_summary *s)
{
    if (s->type != NX_TYPE_SET)
        return NAN;
    return s->hll ? nx_hll_estimate(s->hll) : 0;
}

int nx_summary_encode(const nx_summary *s, nx_buf *out)
{
    size_t start, len0 = out->len;
    int rc;
    if ((rc = nx_frame_begin(out, NX_SUMMARY_MAGIC, NX_SUMMARY_VERSION, &start)))
        return rc;
    uint8_t mask = (s->dd ? 1 : 0) | (s->hll ? 2 : 0) | (s->topk ? 4 : 0);
    if ((rc = nx_buf_u8(out, (uint8_t)s->type)) || (rc = nx_buf_uvar(out, s->window_s)) ||
        (rc = nx_buf_f64(out, s->count)) || (rc = nx_buf_f64(out, s->sum)) ||
        (rc = nx_buf_f64(out, s->mean)) || (rc = nx_buf_f64(out, s->m2)) ||
        (rc = nx_buf_f64(out, s->min)) || (rc = nx_buf_f64(out, s->max)) ||
        (rc = nx_buf_f64(out, s->last)) || (rc = nx_buf_svar(out, s->last_ts)) ||
        (rc = nx_buf_svar(out, s->first_ts)) || (rc = nx_buf_u8(out, mask)))
        goto fail;
    if (s->dd && (rc = nx_ddsketch_encode(s->dd, out)))
        goto fail;
    if (s->hll && (rc = nx_hll_encode(s->hll, out)))
        goto fail;
    if (s->topk && (rc = nx_topk_encode(s->topk, out)))
        goto fail;
    if ((rc = nx_frame_end(out, start)))
        goto fail;
    return 0;
fail:
    out->len = len0;
    return rc;
}

int nx_summary_decode(const uint8_t *p, size_t n, nx_summary *out)
{
    nx_rbuf in;
    int rc = nx_frame_open(p, n, NX_SUMMARY_MAGIC, NX_SUMMARY_VERSION, &in);
    if (rc)
        return rc;
    nx_summary s;
    uint8_t type = nx_rbuf_u8(&in);
    uint64_t window_s = nx_rbuf_uvar(&in);
    if (in.err || type < NX_TYPE_COUNTER || type > NX_TYPE_SET || window_s > UINT32_MAX)
        return NX_ECORRUPT;
    nx_summary_init(&s, (nx_type)type, (uint32_t)window_s);
    s.count = nx_rbuf_f64(&in);
    s.sum = nx_rbuf_f64(&in);
    s.mean = nx_rbuf_f64(&in);
    s.m2 = nx_rbuf_f64(&in);
    s.min = nx_rbuf_f64(&in);
    s.max = nx_rbuf_f64(&in);
    s.last = nx_rbuf_f64(&in);
    s.last_ts = nx_rbuf_svar(&in);
    s.first_ts = nx_rbuf_svar(&in);
    uint8_t mask = nx_rbuf_u8(&in);
    if (in.err)
        return NX_ECORRUPT;
    if (!(s.count >= 0) || !isfinite(s.count) || !isfinite(s.sum) || !isfinite(s.mean) ||
        !(s.m2 >= 0) || !isfinite(s.m2) || isnan(s.min) || isnan(s.max) || !isfinite(s.last))
        return NX_ECORRUPT;
    if (mask & ~7u)
        return NX_ECORRUPT;
    bool q = nx_type_has_quantiles(s.type), set = s.type == NX_TYPE_SET;
    if (((mask & 1) && !q) || ((mask & 6) && !set) || ((mask & 2) != 0) != ((mask & 4) != 0))
        return NX_ECORRUPT;
    rc = 0;
    if ((mask & 1) && (rc = nx_ddsketch_decode(&in, &s.dd)))
        goto fail;
    if ((mask & 2) && (rc = nx_hll_decode(&in, &s.hll)))
        goto fail;
    if ((mask & 4) && (rc = nx_topk_decode(&in, &s.topk)))
        goto fail;
    if (in.err || in.n != 0) {
        rc = NX_ECORRUPT;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    nx_summary_free(&s);
    return rc == NX_ENOMEM ? rc : NX_ECORRUPT;
}
