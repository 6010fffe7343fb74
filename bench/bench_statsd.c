/*
 * bench_statsd.c — single-thread cost of the StatsD ingest path, split into
 * its stages so the daemon's per-line budget can be attributed:
 *
 *   statsd_parse_rate   lines/s through nx_statsd_parse + value iteration
 *   statsd_key_rate     ... + nx_stream_key_build (the canonical key)
 *   statsd_apply_rate   lines/s through nx_applier_apply into one engine
 *                       (tenant + stream lookup/creation + engine update),
 *                       first pass: every stream is created
 *   statsd_apply_warm_rate  the same datagrams again, the 5th pass: streams
 *                       exist, buckets close (simulated time runs at ~3M
 *                       lines/s), windows and sketches are growing
 *
 * Workload: 10,000 tenants x 10 metrics (4 counters, 4 timers, 2 sets) with
 * a `#tenant:tNNNN,host:h1` tag, one tenant per datagram of 33 lines (~1400
 * bytes) like bench/ingest.sh. NX_TEST_SCALE multiplies the line count.
 * Output: one "name value unit" line per figure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/nx_statsd.h"
#include "server/nx_apply.h"

/* passes over the same datagrams after the first; the last one is timed */
#define WARM_PASSES 4

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    const char *sc = getenv("NX_TEST_SCALE");
    size_t nlines = 2000000 * (size_t)(sc && atoi(sc) > 0 ? atoi(sc) : 1);
    char *buf = malloc(nlines * 64);
    size_t *dg = malloc((nlines / 33 + 2) * sizeof(size_t));
    if (!buf || !dg)
        return 1;
    size_t len = 0, ndg = 0;
    unsigned x = 12345, tenant = 0;
    for (size_t i = 0; i < nlines; i++) {
        x = x * 1103515245u + 12345u;
        if (i % 33 == 0) { /* one tenant per datagram, as StatsD clients send */
            dg[ndg++] = len;
            tenant = (x >> 8) % 10000;
        }
        unsigned metric = (x >> 4) % 10;
        const char *type = metric < 4 ? "c" : metric < 8 ? "ms" : "s";
        if (metric >= 8)
            len += (size_t)sprintf(buf + len, "m%u:u%u|s|#tenant:t%04u,host:h1\n", metric, x % 100000, tenant);
        else
            len += (size_t)sprintf(buf + len, "m%u:%u.%u|%s|#tenant:t%04u,host:h1\n", metric,
                                   x % 200, x % 10, type, tenant);
    }
    dg[ndg] = len;
    nx_statsd_limits lim;
    nx_statsd_limits_default(&lim);
    nx_tag tags[65];
    char key[8192];
    double sink = 0;

    for (int stage = 0; stage < 2; stage++) {
        double t0 = now_s();
        size_t ok = 0;
        const char *p = buf, *end = buf + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            nx_statsd_line l;
            if (nx_statsd_parse(p, (size_t)(nl - p), &lim, tags, &l) == NX_SD_OK) {
                uint32_t pos = 0;
                nx_statsd_value v;
                while (nx_statsd_value_next(&l, &pos, &v))
                    sink += v.value;
                if (stage == 1)
                    sink += nx_stream_key_build(l.name, l.name_len, l.tags, l.ntags, key, sizeof(key));
                ok++;
            }
            p = nl + 1;
        }
        double dt = now_s() - t0;
        printf("%s %.0f lines/s\n", stage ? "statsd_key_rate" : "statsd_parse_rate", (double)ok / dt);
    }

    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    nx_engine *e;
    nx_applier ap;
    if (nx_engine_create(&cfg, &e) || nx_applier_init(&ap, e, &lim))
        return 1;
    nx_apply_result res;
    memset(&res, 0, sizeof(res));
    /* now advances 1 s per 90,000 datagrams (~3M lines/s, bench/ingest.sh's
     * target), so later passes close buckets as the daemon does */
    int64_t now = 1700000000000LL;
    for (int pass = 0; pass < 1 + WARM_PASSES; pass++) {
        uint64_t ev0 = res.events;
        double t0 = now_s();
        for (size_t d = 0; d < ndg; d++) {
            nx_batch b = {.format = NX_BATCH_STATSD, .source = NX_SRC_UDP, .tenant = "default",
                          .tenant_len = 7, .recv_ms = now + (int64_t)(d * 1000 / 90000),
                          .data = (const uint8_t *)buf + dg[d], .len = dg[d + 1] - dg[d]};
            nx_applier_apply(&ap, &b, &res);
        }
        double dt = now_s() - t0;
        now += (int64_t)(ndg * 1000 / 90000) + 1;
        if (pass == 0)
            printf("statsd_apply_rate %.0f lines/s\n", (double)(res.events - ev0) / dt);
        else if (pass == WARM_PASSES)
            printf("statsd_apply_warm_rate %.0f lines/s\n", (double)(res.events - ev0) / dt);
    }
    printf("statsd_apply_rejected %llu lines\n", (unsigned long long)res.rejected);
    printf("statsd_apply_tenants %zu tenants\n", nx_engine_tenant_count(e));
    nx_applier_free(&ap);
    nx_engine_destroy(e);
    free(buf);
    free(dg);
    return sink == 42 ? 2 : 0;
}
