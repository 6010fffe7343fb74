/*
 * fuzz_summary_decode.c — libFuzzer target for nx_summary_decode (src/engine,
 * the shard-to-shard and cluster summary format). Feeds the raw input and a
 * copy with magic/version/crc fixed (fuzz_frame_fix.h). A decoded summary is
 * queried, merged with itself, re-encoded and decoded again.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include "nexus.h"
#include "fuzz_frame_fix.h"

static void one(const uint8_t *p, size_t n)
{
    nx_summary s, s2;
    if (nx_summary_decode(p, n, &s) != 0)
        return;
    (void)nx_summary_quantile(&s, 0.99);
    (void)nx_summary_distinct(&s);
    (void)nx_summary_stddev(&s);
    (void)nx_summary_rate(&s, 60);
    nx_buf b = {0};
    if (nx_summary_encode(&s, &b) == 0) {
        int rc = nx_summary_decode(b.data, b.len, &s2);
        assert(rc == 0);
        if (rc == 0) {
            (void)nx_summary_merge(&s2, &s);
            nx_summary_free(&s2);
        }
    }
    nx_buf_free(&b);
    nx_summary_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    uint8_t *fixed = nx_fuzz_frame_fix(data, size, 0x4D53584Eu, 1);
    if (fixed) {
        one(fixed, size);
        free(fixed);
    }
    return 0;
}
