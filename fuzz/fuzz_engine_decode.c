/*
 * fuzz_engine_decode.c — libFuzzer target for nx_engine_decode (snapshots of
 * a whole shard engine, src/engine). Raw input and a frame-fixed copy; a
 * decoded engine is walked (every tenant and stream, all-time and every
 * default window read) and re-encoded.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include "nexus.h"
#include "fuzz_frame_fix.h"

static int read_stream(nx_stream *s, void *arg)
{
    (void)arg;
    /* all-time and every default window (a window read walks the Two-Stacks
     * state and, for sets, a derived back in the window it feeds) */
    static const uint32_t windows[] = {NX_WINDOW_ALL, 10, 60, 300, 3600};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        nx_summary out;
        if (nx_stream_read(s, windows[w], nx_stream_last_update(s) + 1000, &out) == 0) {
            (void)nx_summary_quantile(&out, 0.5);
            nx_summary_free(&out);
        }
    }
    return 0;
}

static int walk_tenant(nx_tenant *t, void *arg)
{
    nx_tenant_stats st;
    nx_tenant_get_stats(t, &st);
    nx_tenant_foreach_stream(t, read_stream, arg);
    return 0;
}

static void one(const nx_engine_config *cfg, const uint8_t *p, size_t n)
{
    nx_engine *e = NULL;
    if (nx_engine_decode(cfg, p, n, &e) != 0)
        return;
    (void)nx_engine_bytes(e);
    nx_buf b = {0};
    if (nx_engine_encode(e, &b) == 0) {
        nx_engine *e2 = NULL;
        int rc = nx_engine_decode(cfg, b.data, b.len, &e2);
        assert(rc == 0);
        if (rc == 0)
            nx_engine_destroy(e2);
    }
    nx_buf_free(&b);
    nx_engine_foreach_tenant(e, walk_tenant, NULL);
    nx_engine_destroy(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    one(&cfg, data, size);
    uint8_t *fixed = nx_fuzz_frame_fix(data, size, 0x4E45584Eu, 1);
    if (fixed) {
        one(&cfg, fixed, size);
        free(fixed);
    }
    return 0;
}
