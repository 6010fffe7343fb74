/*
 * fuzz_sketch_decode.c — libFuzzer target for the sketch decoders
 * (src/sketch: DDSketch, HyperLogLog, SpaceSaving top-k, moments). Byte 0
 * picks the decoder; the rest is its input. A decoded sketch is queried,
 * re-encoded and decoded again (must succeed: what we accept we can write).
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include "common/nx_codec.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_moments.h"
#include "sketch/nx_topk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    nx_rbuf in = nx_rbuf_make(data + 1, size - 1);
    nx_buf out = {0};
    switch (data[0] % 4) {
    case 0: {
        nx_ddsketch *s = NULL, *s2 = NULL;
        if (nx_ddsketch_decode(&in, &s) != 0)
            break;
        (void)nx_ddsketch_quantile(s, 0.5);
        (void)nx_ddsketch_quantile(s, 0.99);
        (void)nx_ddsketch_count(s);
        if (nx_ddsketch_encode(s, &out) == 0) {
            nx_rbuf again = nx_rbuf_make(out.data, out.len);
            int rc = nx_ddsketch_decode(&again, &s2);
            assert(rc == 0);
            (void)rc;
            nx_ddsketch_merge(s2, s);
            nx_ddsketch_destroy(s2);
        }
        nx_ddsketch_destroy(s);
        break;
    }
    case 1: {
        nx_hll *h = NULL, *h2 = NULL;
        if (nx_hll_decode(&in, &h) != 0)
            break;
        (void)nx_hll_estimate(h);
        if (nx_hll_encode(h, &out) == 0) {
            nx_rbuf again = nx_rbuf_make(out.data, out.len);
            int rc = nx_hll_decode(&again, &h2);
            assert(rc == 0);
            (void)rc;
            nx_hll_merge(h2, h);
            nx_hll_densify(h2);
            (void)nx_hll_estimate(h2);
            nx_hll_destroy(h2);
        }
        nx_hll_destroy(h);
        break;
    }
    case 2: {
        nx_topk *t = NULL, *t2 = NULL;
        if (nx_topk_decode(&in, &t) != 0)
            break;
        nx_topk_item items[16];
        (void)nx_topk_list(t, items, 16);
        if (nx_topk_encode(t, &out) == 0) {
            nx_rbuf again = nx_rbuf_make(out.data, out.len);
            int rc = nx_topk_decode(&again, &t2);
            assert(rc == 0);
            (void)rc;
            nx_topk_merge(t2, t);
            nx_topk_destroy(t2);
        }
        nx_topk_destroy(t);
        break;
    }
    case 3: {
        nx_moments m;
        if (nx_moments_decode(&in, &m) != 0)
            break;
        nx_moments m2 = m;
        nx_moments_merge(&m2, &m);
        nx_moments_sub(&m2, &m);
        if (nx_moments_encode(&m, &out) == 0) {
            nx_rbuf again = nx_rbuf_make(out.data, out.len);
            int rc = nx_moments_decode(&again, &m2);
            assert(rc == 0);
            (void)rc;
        }
        break;
    }
    }
    nx_buf_free(&out);
    return 0;
}
