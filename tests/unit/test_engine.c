/*
 * test_engine.c — the engine facade: tenants and streams (create, find,
 * delete, type mismatch, quotas), memory accounting (back to baseline after
 * deletes, idle streams give their windows back, idle counter <= 512 bytes,
 * a young stream pays its pending ring but no windows until the first fold),
 * key canonicalisation, gauges (+/- deltas, late sets), sample-rate weights,
 * rejected inputs, series points from the right tier, summary merge,
 * prefetch hints that change nothing, the common event's own path.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nexus.h"

#define T0 1700000000000ll

static nx_engine *mk_engine(void)
{
    nx_engine *e;
    assert_int_equal(nx_engine_create(NULL, &e), 0);
    return e;
}

static int upd(nx_stream *s, double v, double w, int64_t ts, int64_t now)
{
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.value = v;
    u.weight = w;
    u.ts_ms = ts;
    return nx_stream_update(s, &u, now);
}

static int count_cb(nx_tenant *t, void *arg)
{
    (void)t;
    (*(int *)arg)++;
    return 0;
}
static int scount_cb(nx_stream *s, void *arg)
{
    (void)s;
    (*(int *)arg)++;
    return 0;
}

static void test_tenants(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *a, *b, *c;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &a), 0);
    assert_int_equal(nx_engine_tenant(e, "beta-1_x", 8, &b), 0);
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &c), 0);
    assert_ptr_equal(a, c);
    assert_string_equal(nx_tenant_id(b), "beta-1_x");
    assert_int_equal(nx_engine_tenant(e, "Bad!", 4, &c), NX_EINVAL);
    assert_int_equal(nx_engine_tenant(e, "", 0, &c), NX_EINVAL);
    char big[70];
    memset(big, 'a', sizeof(big));
    assert_int_equal(nx_engine_tenant(e, big, 65, &c), NX_EINVAL);
    assert_int_equal(nx_engine_tenant(e, big, 64, &c), 0);
    assert_int_equal(nx_engine_tenant_count(e), 3);
    assert_ptr_equal(nx_engine_tenant_find(e, "acme", 4), a);
    assert_null(nx_engine_tenant_find(e, "nope", 4));
    /* many tenants: table growth and backward-shift deletes */
    char id[32];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(id, sizeof(id), "t%d", i);
        assert_int_equal(nx_engine_tenant(e, id, (size_t)n, &c), 0);
    }
    for (int i = 0; i < 2000; i += 2) {
        int n = snprintf(id, sizeof(id), "t%d", i);
        assert_int_equal(nx_engine_tenant_delete(e, id, (size_t)n), 0);
        assert_int_equal(nx_engine_tenant_delete(e, id, (size_t)n), NX_ENOENT);
    }
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(id, sizeof(id), "t%d", i);
        nx_tenant *f = nx_engine_tenant_find(e, id, (size_t)n);
        if (i % 2)
            assert_non_null(f);
        else
            assert_null(f);
    }
    int cnt = 0;
    nx_engine_foreach_tenant(e, count_cb, &cnt);
    assert_int_equal(cnt, 1003);
    assert_int_equal(nx_engine_tenant_count(e), 1003);
    nx_engine_destroy(e);
}

static void test_keys(void **st)
{
    (void)st;
    char k1[128], k2[128];
    nx_tag t1[] = {{"route", 5, "/x", 2}, {"host", 4, "a", 1}, {"canary", 6, NULL, 0}};
    nx_tag t2[] = {{"host", 4, "a", 1}, {"canary", 6, NULL, 0}, {"route", 5, "/x", 2}};
    int n1 = nx_stream_key_build("api.latency", 11, t1, 3, k1, sizeof(k1));
    int n2 = nx_stream_key_build("api.latency", 11, t2, 3, k2, sizeof(k2));
    assert_true(n1 > 0);
    assert_int_equal(n1, n2);
    assert_string_equal(k1, "api.latency|canary|host:a|route:/x");
    assert_string_equal(k1, k2);
    assert_int_equal((int)strlen(k1), n1);
    nx_tag t3[] = {{"h", 1, "b", 1}, {"h", 1, "a", 1}};
    assert_int_equal(nx_stream_key_build("m", 1, t3, 2, k1, sizeof(k1)), 9);
    assert_string_equal(k1, "m|h:a|h:b");
    assert_int_equal(nx_stream_key_build("m", 1, NULL, 0, k1, sizeof(k1)), 1);
    assert_int_equal(nx_stream_key_build("", 0, NULL, 0, k1, sizeof(k1)), NX_EINVAL);
    assert_int_equal(nx_stream_key_build("api.latency", 11, t1, 3, k1, 10), NX_ETOOBIG);
    /* same stream whatever the tag order */
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_stream *a, *b;
    assert_int_equal(nx_engine_tenant(e, "x", 1, &t), 0);
    assert_int_equal(nx_tenant_stream(t, k2, (size_t)n2, NX_TYPE_TIMER, &a), 0);
    n1 = nx_stream_key_build("api.latency", 11, t1, 3, k1, sizeof(k1));
    assert_int_equal(nx_tenant_stream(t, k1, (size_t)n1, NX_TYPE_TIMER, &b), 0);
    assert_ptr_equal(a, b);
    size_t len;
    assert_string_equal(nx_stream_key(a, &len), k1);
    assert_int_equal(len, (size_t)n1);
    nx_engine_destroy(e);
}

static void test_streams_types_quota(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_stream *s, *s2;
    nx_tenant_stats ts;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    assert_int_equal(nx_tenant_stream(t, "reqs", 4, NX_TYPE_COUNTER, &s), 0);
    assert_int_equal(nx_stream_type(s), NX_TYPE_COUNTER);
    assert_int_equal(nx_tenant_stream(t, "reqs", 4, NX_TYPE_GAUGE, &s2), NX_ETYPE);
    assert_int_equal(nx_tenant_stream(t, "reqs", 4, NX_TYPE_SET, &s2), NX_ETYPE);
    assert_int_equal(nx_tenant_stream(t, "reqs", 4, NX_TYPE_COUNTER, &s2), 0);
    assert_ptr_equal(s, s2);
    assert_int_equal(nx_tenant_stream(t, "x", 1, NX_TYPE_NONE, &s2), NX_EINVAL);
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.rejected_type, 2);
    assert_int_equal(ts.streams, 1);

    nx_tenant_set_limits(t, 5, 0);
    char key[16];
    for (int i = 0; i < 4; i++) {
        int n = snprintf(key, sizeof(key), "s%d", i);
        assert_int_equal(nx_tenant_stream(t, key, (size_t)n, NX_TYPE_TIMER, &s2), 0);
    }
    assert_int_equal(nx_tenant_stream(t, "s9", 2, NX_TYPE_TIMER, &s2), NX_EQUOTA);
    assert_int_equal(nx_tenant_stream(t, "s8", 2, NX_TYPE_TIMER, &s2), NX_EQUOTA);
    /* existing streams are still found */
    assert_int_equal(nx_tenant_stream(t, "s1", 2, NX_TYPE_TIMER, &s2), 0);
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.rejected_quota, 2);
    assert_int_equal(ts.streams, 5);
    int cnt = 0;
    nx_tenant_foreach_stream(t, scount_cb, &cnt);
    assert_int_equal(cnt, 5);

    /* byte quota */
    nx_tenant_set_limits(t, 0, ts.bytes);
    assert_int_equal(nx_tenant_stream(t, "s7", 2, NX_TYPE_TIMER, &s2), NX_EQUOTA);
    nx_tenant_set_limits(t, 0, ts.bytes + 100000);
    assert_int_equal(nx_tenant_stream(t, "s7", 2, NX_TYPE_TIMER, &s2), 0);
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.rejected_quota, 3);
    nx_engine_destroy(e);
}

static void test_memory_accounting(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_tenant_stats ts;
    /* the tenant table itself stays allocated after a delete: warm it up */
    assert_int_equal(nx_engine_tenant(e, "warm", 4, &t), 0);
    assert_int_equal(nx_engine_tenant_delete(e, "warm", 4), 0);
    uint64_t base = nx_engine_bytes(e);
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.bytes, 0);
    static const nx_type types[] = {NX_TYPE_COUNTER, NX_TYPE_GAUGE, NX_TYPE_TIMER,
                                    NX_TYPE_HISTOGRAM, NX_TYPE_DISTRIBUTION, NX_TYPE_SET};
    char key[32];
    int64_t now = T0;
    for (int i = 0; i < 60; i++) {
        int n = snprintf(key, sizeof(key), "m%d|host:h%d", i, i);
        nx_stream *s;
        nx_type ty = types[i % 6];
        assert_int_equal(nx_tenant_stream(t, key, (size_t)n, ty, &s), 0);
        for (int j = 0; j < 50; j++) {
            nx_update u = {.value = j * 1.5 + 1, .weight = 1, .ts_ms = 0};
            char mem[16];
            if (ty == NX_TYPE_SET) {
                u.member_len = (uint32_t)snprintf(mem, sizeof(mem), "u%d", j);
                u.member = mem;
            }
            assert_int_equal(nx_stream_update(s, &u, now + j * 300), 0);
        }
    }
    nx_tenant_get_stats(t, &ts);
    uint64_t active = ts.bytes;
    assert_true(active > 60 * 256);
    assert_true(nx_engine_bytes(e) > base + active);
    /* delete half the streams one by one: bytes drop by exactly their share */
    for (int i = 0; i < 60; i += 2) {
        int n = snprintf(key, sizeof(key), "m%d|host:h%d", i, i);
        assert_int_equal(nx_tenant_stream_delete(t, key, (size_t)n), 0);
        assert_int_equal(nx_tenant_stream_delete(t, key, (size_t)n), NX_ENOENT);
    }
    nx_tenant_get_stats(t, &ts);
    assert_true(ts.bytes < active && ts.bytes > 0);
    assert_int_equal(ts.streams, 30);
    for (int i = 1; i < 60; i += 2) {
        int n = snprintf(key, sizeof(key), "m%d|host:h%d", i, i);
        assert_int_equal(nx_tenant_stream_delete(t, key, (size_t)n), 0);
    }
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.bytes, 0);
    assert_int_equal(ts.streams, 0);
    assert_int_equal(nx_engine_tenant_delete(e, "acme", 4), 0);
    assert_int_equal(nx_engine_bytes(e), base);
    nx_engine_destroy(e);
}

/* Tenant "acme" of e and its counter stream `key`. */
static nx_stream *mk_counter(nx_engine *e, nx_tenant **t, const char *key)
{
    nx_stream *s;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, t), 0);
    assert_int_equal(nx_tenant_stream(*t, key, strlen(key), NX_TYPE_COUNTER, &s), 0);
    return s;
}

/* A young stream pays for its pending ring, not for windows: closing a few
 * seconds costs one 1,280-byte ring (16 seconds); the window/tier block
 * (kilobytes) comes with the first fold (here: a read), and reads see every
 * closed second. */
static void test_young_stream_memory(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_tenant_stats ts;
    nx_stream *s = mk_counter(e, &t, "q");
    nx_tenant_get_stats(t, &ts);
    uint64_t fresh = ts.bytes;
    for (int sec = 0; sec < 4; sec++) /* seconds 0..2 closed, 3 open */
        assert_int_equal(upd(s, 2, 1, 0, T0 + sec * 1000), 0);
    nx_tenant_get_stats(t, &ts);
    uint64_t young = ts.bytes;
    assert_true(young > fresh && young - fresh <= 1280 + 64);
    nx_summary out;
    assert_int_equal(nx_stream_read(s, 10, T0 + 3500, &out), 0);
    assert_true(out.count == 4 && out.sum == 8);
    nx_summary_free(&out);
    nx_tenant_get_stats(t, &ts);
    assert_true(ts.bytes > young + 2048); /* the read folded: windows and tiers */
    print_message("fresh %llu, young (3 closed seconds) %llu, folded %llu bytes\n",
                  (unsigned long long)fresh, (unsigned long long)young,
                  (unsigned long long)ts.bytes);
    nx_engine_destroy(e);
}

/* An idle counter stream gives its windows and tiers back and costs <= 512 B. */
static void test_idle_memory(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_tenant_stats ts;
    nx_stream *s = mk_counter(e, &t, "http.requests|host:web-01|route:/api/v1/x");
    nx_tenant_get_stats(t, &ts);
    uint64_t fresh = ts.bytes;
    assert_true(fresh <= 512);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(upd(s, 1, 1, 0, T0 + i * 100), 0);
    nx_tenant_get_stats(t, &ts);
    uint64_t active = ts.bytes;
    assert_true(active > fresh);
    /* 25 hours later every window and tier expired */
    nx_summary out;
    int64_t later = T0 + 25ll * 3600 * 1000;
    assert_int_equal(nx_stream_read(s, 60, later, &out), 0);
    assert_true(out.count == 0);
    nx_summary_free(&out);
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.bytes, fresh);
    assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, later, &out), 0);
    assert_true(out.count == 5000 && out.sum == 5000);
    nx_summary_free(&out);
    print_message("idle counter stream: %llu bytes, active: %llu bytes\n",
                  (unsigned long long)fresh, (unsigned long long)active);
    nx_engine_destroy(e);
}

static void test_gauges(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_stream *s;
    nx_summary out;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    assert_int_equal(nx_tenant_stream(t, "temp", 4, NX_TYPE_GAUGE, &s), 0);
    int64_t now = T0;
    nx_update u = {.value = 10, .weight = 1};
    assert_int_equal(nx_stream_update(s, &u, now), 0);
    u.gauge_delta = 1;
    u.value = 5;
    assert_int_equal(nx_stream_update(s, &u, now + 100), 0); /* 15 */
    u.value = -3;
    assert_int_equal(nx_stream_update(s, &u, now + 200), 0); /* 12 */
    assert_int_equal(nx_stream_read(s, 10, now + 300, &out), 0);
    assert_true(out.last == 12);
    assert_true(out.last_ts == now + 200);
    assert_true(out.count == 3 && out.sum == 10 + 15 + 12);
    assert_true(out.min == 10 && out.max == 15);
    nx_summary_free(&out);
    /* a late set older than last_ts does not change last */
    u.gauge_delta = 0;
    u.value = 99;
    u.ts_ms = now + 2000 - 30000;
    assert_int_equal(nx_stream_update(s, &u, now + 2000), 0);
    assert_int_equal(nx_stream_read(s, 60, now + 2000, &out), 0);
    assert_true(out.last == 12);
    assert_true(out.count == 4 && out.max == 99);
    nx_summary_free(&out);
    /* a newer set does; a delta then applies to it */
    u.ts_ms = 0;
    u.value = 7;
    assert_int_equal(nx_stream_update(s, &u, now + 3000), 0);
    u.gauge_delta = 1;
    u.value = 1;
    assert_int_equal(nx_stream_update(s, &u, now + 3100), 0);
    assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, now + 3200, &out), 0);
    assert_true(out.last == 8 && out.last_ts == now + 3100);
    assert_true(out.count == 6);
    nx_summary_free(&out);
    nx_engine_destroy(e);
}

static void test_weights_rates_rejects(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_stream *c, *d, *set;
    nx_summary out;
    nx_tenant_stats ts;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    assert_int_equal(nx_tenant_stream(t, "c", 1, NX_TYPE_COUNTER, &c), 0);
    assert_int_equal(nx_tenant_stream(t, "d", 1, NX_TYPE_DISTRIBUTION, &d), 0);
    assert_int_equal(nx_tenant_stream(t, "s", 1, NX_TYPE_SET, &set), 0);
    int64_t now = T0;
    /* counter with @0.1: each event counts as 10 increments of value */
    for (int i = 0; i < 100; i++)
        assert_int_equal(upd(c, 2, 10, 0, now + i * 100), 0);
    assert_int_equal(nx_stream_read(c, 60, now + 10000, &out), 0);
    assert_true(out.count == 1000 && out.sum == 2000);
    assert_true(fabs(nx_summary_rate(&out, 60) - 2000.0 / 60) < 1e-12);
    nx_summary_free(&out);
    assert_int_equal(nx_stream_read(c, NX_WINDOW_ALL, now + 10000, &out), 0);
    assert_true(out.first_ts == now);
    assert_true(fabs(nx_summary_rate(&out, (now + 10000 - out.first_ts) / 1000.0) - 200) < 1e-9);
    nx_summary_free(&out);
    /* distribution: weights shift quantiles */
    assert_int_equal(upd(d, 1, 1, 0, now), 0);
    assert_int_equal(upd(d, 100, 99, 0, now), 0);
    assert_int_equal(nx_stream_read(d, 10, now, &out), 0);
    assert_true(out.count == 100);
    double p50 = nx_summary_quantile(&out, 0.5);
    assert_true(fabs(p50 - 100) <= 1.0 + 1e-9);
    assert_true(fabs(nx_summary_quantile(&out, 0.0) - 1) <= 0.01 + 1e-9);
    assert_true(isnan(nx_summary_quantile(&out, 1.5)));
    assert_true(isnan(nx_summary_distinct(&out)));
    assert_true(nx_summary_stddev(&out) > 0);
    nx_summary_free(&out);
    /* sets */
    for (int i = 0; i < 1000; i++) {
        char m[16];
        nx_update u = {.weight = 1};
        u.member_len = (uint32_t)snprintf(m, sizeof(m), "user%d", i % 100);
        u.member = m;
        assert_int_equal(nx_stream_update(set, &u, now + i), 0);
    }
    assert_int_equal(nx_stream_read(set, 60, now + 1000, &out), 0);
    assert_true(out.count == 1000);
    assert_true(fabs(nx_summary_distinct(&out) - 100) < 2);
    assert_true(fabs(nx_summary_rate(&out, 60) - 1000.0 / 60) < 1e-9);
    nx_summary_free(&out);
    /* rejects */
    assert_int_equal(upd(c, NAN, 1, 0, now), NX_EINVAL);
    assert_int_equal(upd(c, INFINITY, 1, 0, now), NX_EINVAL);
    assert_int_equal(upd(c, 1, 0, 0, now), NX_EINVAL);
    assert_int_equal(upd(c, 1, -1, 0, now), NX_EINVAL);
    nx_update nomember = {.weight = 1};
    assert_int_equal(nx_stream_update(set, &nomember, now), NX_EINVAL);
    assert_int_equal(upd(c, 1, 1, now + 20000 - 61000, now + 20000), NX_ETOOLATE);
    assert_int_equal(upd(c, 1, 1, now + 20000 + 11000, now + 20000), NX_EFUTURE);
    /* a clock that steps back is treated as the stream's newest now */
    assert_int_equal(upd(c, 1, 1, now + 20000 - 50000, now + 5000), 0);
    assert_int_equal(upd(c, 1, 1, now + 20000 - 70000, now + 5000), NX_ETOOLATE);
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.rejected_late, 2);
    assert_int_equal(ts.rejected_future, 1);
    assert_int_equal(ts.events, 100 + 2 + 1000 + 1);
    assert_int_equal(nx_stream_last_update(c), now + 9900);
    assert_int_equal(nx_stream_read(c, 42, now, &out), NX_EINVAL);
    /* absurd times never overflow: rejected */
    assert_int_equal(upd(c, 1, 1, INT64_MAX, now + 20000), NX_EFUTURE);
    assert_int_equal(upd(c, 1, 1, INT64_MIN, now + 20000), NX_ETOOLATE);
    assert_int_equal(upd(c, 1, 1, 0, INT64_MAX), NX_EINVAL);
    assert_int_equal(upd(c, 1, 1, 0, -5), NX_EINVAL);
    assert_int_equal(nx_stream_read(c, 60, INT64_MAX, &out), NX_EINVAL);
    nx_engine_destroy(e);
}

/* Series: points per step from the finest tier that covers `from`. */
static void test_series(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    nx_stream *s;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    assert_int_equal(nx_tenant_stream(t, "lat", 3, NX_TYPE_TIMER, &s), 0);
    int64_t start = (T0 / 60000) * 60000; /* minute aligned */
    /* 3 hours, one event every 2 s, value = minute index */
    int64_t now = start;
    for (int i = 0; i < 3 * 3600 / 2; i++) {
        now = start + (int64_t)i * 2000;
        assert_int_equal(upd(s, (double)(i / 30), 1, 0, now), 0);
    }
    nx_point pts[512];
    /* last 2 hours at 60 s: only the 60 s tier retains it */
    int n = nx_stream_series(s, now - 7200000, now + 1, 60, now, pts, 512);
    assert_true(n >= 120 && n <= 121);
    for (int i = 0; i < n; i++) {
        int64_t minute = (pts[i].ts_ms - start) / 60000;
        assert_true(pts[i].ts_ms % 60000 == 0);
        assert_true(pts[i].count == 30);
        assert_true(pts[i].min == (double)minute && pts[i].max == (double)minute);
        assert_true(pts[i].sum == 30.0 * (double)minute);
    }
    /* last 100 s at 1 s: 1 s tier; every other second has one event */
    n = nx_stream_series(s, now - 100000, now + 1, 1, now, pts, 512);
    assert_true(n >= 50 && n <= 51);
    for (int i = 0; i < n; i++)
        assert_true(pts[i].count == 1 && (pts[i].ts_ms - start) % 2000 == 0);
    /* 10 s steps over 30 min: 10 s tier, 5 events per point */
    n = nx_stream_series(s, now - 1800000, now + 1, 10, now, pts, 512);
    assert_true(n >= 180 && n <= 181);
    for (int i = 1; i < n - 1; i++)
        assert_true(pts[i].count == 5);
    /* max bounds the output */
    assert_int_equal(nx_stream_series(s, now - 1800000, now + 1, 10, now, pts, 7), 7);
    assert_int_equal(nx_stream_series(s, now, now - 1, 10, now, pts, 7), NX_EINVAL);
    assert_int_equal(nx_stream_series(s, now - 1000, now + 1, 10, now, pts, 7), 0 + 1);
    nx_engine_destroy(e);
}

/* Summaries of the same stream on two shards merge into the whole. */
static void test_summary_merge(void **st)
{
    (void)st;
    nx_engine *e1 = mk_engine(), *e2 = mk_engine(), *e3 = mk_engine();
    nx_tenant *t1, *t2, *t3;
    nx_stream *s1, *s2, *s3;
    assert_int_equal(nx_engine_tenant(e1, "a", 1, &t1), 0);
    assert_int_equal(nx_engine_tenant(e2, "a", 1, &t2), 0);
    assert_int_equal(nx_engine_tenant(e3, "a", 1, &t3), 0);
    assert_int_equal(nx_tenant_stream(t1, "x", 1, NX_TYPE_TIMER, &s1), 0);
    assert_int_equal(nx_tenant_stream(t2, "x", 1, NX_TYPE_TIMER, &s2), 0);
    assert_int_equal(nx_tenant_stream(t3, "x", 1, NX_TYPE_TIMER, &s3), 0);
    for (int i = 0; i < 2000; i++) {
        double v = 1 + (i * 7919 % 1000);
        assert_int_equal(upd(i % 2 ? s1 : s2, v, 1, 0, T0 + i * 10), 0);
        assert_int_equal(upd(s3, v, 1, 0, T0 + i * 10), 0);
    }
    nx_summary a, b, c;
    int64_t now = T0 + 20000;
    assert_int_equal(nx_stream_read(s1, 60, now, &a), 0);
    assert_int_equal(nx_stream_read(s2, 60, now, &b), 0);
    assert_int_equal(nx_stream_read(s3, 60, now, &c), 0);
    assert_int_equal(nx_summary_merge(&a, &b), 0);
    assert_true(a.count == c.count && a.sum == c.sum && a.min == c.min && a.max == c.max);
    assert_true(fabs(a.mean - c.mean) < 1e-9 * c.mean);
    assert_true(fabs(nx_summary_stddev(&a) - nx_summary_stddev(&c)) < 1e-9 * nx_summary_stddev(&c));
    for (double q = 0; q <= 1; q += 0.05)
        assert_true(nx_summary_quantile(&a, q) == nx_summary_quantile(&c, q));
    nx_summary empty;
    nx_summary_init(&empty, NX_TYPE_TIMER, 60);
    assert_int_equal(nx_summary_merge(&empty, &c), 0);
    assert_true(empty.count == c.count && nx_summary_quantile(&empty, 0.5) == nx_summary_quantile(&c, 0.5));
    nx_summary other;
    nx_summary_init(&other, NX_TYPE_SET, 60);
    assert_int_equal(nx_summary_merge(&other, &c), NX_EINVAL);
    nx_summary_free(&empty);
    nx_summary_free(&a);
    nx_summary_free(&b);
    nx_summary_free(&c);
    nx_engine_destroy(e1);
    nx_engine_destroy(e2);
    nx_engine_destroy(e3);
}

static void test_config(void **st)
{
    (void)st;
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    assert_true(cfg.alpha == 0.01 && cfg.nwindows == 4 && cfg.ntiers == 3);
    assert_int_equal(cfg.windows[1].length_s, 60);
    assert_int_equal(cfg.windows[1].bucket_s, 5);
    nx_engine *e;
    cfg.windows[0].bucket_s = 3; /* 10 % 3 != 0 */
    assert_int_equal(nx_engine_create(&cfg, &e), NX_EINVAL);
    nx_engine_config_default(&cfg);
    cfg.alpha = 0;
    assert_int_equal(nx_engine_create(&cfg, &e), NX_EINVAL);
    nx_engine_config_default(&cfg);
    cfg.nwindows = 1;
    cfg.windows[0] = (nx_window_spec){120, 10};
    assert_int_equal(nx_engine_create(&cfg, &e), 0);
    assert_int_equal(nx_engine_config_of(e)->windows[0].length_s, 120);
    nx_tenant *t;
    nx_stream *s;
    nx_summary out;
    assert_int_equal(nx_engine_tenant(e, "a", 1, &t), 0);
    assert_int_equal(nx_tenant_stream(t, "c", 1, NX_TYPE_COUNTER, &s), 0);
    assert_int_equal(upd(s, 1, 1, 0, T0), 0);
    assert_int_equal(nx_stream_read(s, 60, T0, &out), NX_EINVAL);
    assert_int_equal(nx_stream_read(s, 120, T0, &out), 0);
    assert_true(out.count == 1 && out.window_s == 120);
    nx_summary_free(&out);
    nx_engine_destroy(e);
}

static int upd_member(nx_stream *s, double v, double w, int64_t ts, int64_t now);

/* An engine without windows keeps a set's distinct count in all-time's HLL
 * alone (no sliding HLL): drains add their members there. It answers as
 * the default engine (sliding HLL and its grave) does for the same events:
 * the same registers, so the same estimate, read mid-second and after
 * closes; 260 members in a second fill the member log past its 255
 * entries (a drain within the second). */
static void test_set_no_windows(void **st)
{
    (void)st;
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    cfg.nwindows = 0;
    nx_engine *e[2];
    nx_stream *s[2];
    assert_int_equal(nx_engine_create(&cfg, &e[0]), 0);
    assert_int_equal(nx_engine_create(NULL, &e[1]), 0);
    for (int k = 0; k < 2; k++) {
        nx_tenant *t;
        assert_int_equal(nx_engine_tenant(e[k], "a", 1, &t), 0);
        assert_int_equal(nx_tenant_stream(t, "users", 5, NX_TYPE_SET, &s[k]), 0);
    }
    int v = 0;
    for (int sec = 0; sec < 4; sec++) {
        int n = sec == 1 ? 260 : 50 + sec;
        for (int i = 0; i < n; i++, v++)
            for (int k = 0; k < 2; k++)
                assert_int_equal(upd_member(s[k], (double)(v % 300), 1, 0, T0 + sec * 1000 + i), 0);
        nx_summary a, b;
        assert_int_equal(nx_stream_read(s[0], NX_WINDOW_ALL, T0 + sec * 1000 + 999, &a), 0);
        assert_int_equal(nx_stream_read(s[1], NX_WINDOW_ALL, T0 + sec * 1000 + 999, &b), 0);
        assert_true(a.count == (double)v && b.count == (double)v);
        assert_true(nx_summary_distinct(&a) == nx_summary_distinct(&b));
        assert_true(fabs(nx_summary_distinct(&a) - (v < 300 ? v : 300)) <= 3);
        nx_summary_free(&a);
        nx_summary_free(&b);
    }
    nx_engine_destroy(e[0]);
    nx_engine_destroy(e[1]);
}

/* The tenant hook sees every tenant once: existing ones when it is set,
 * new ones as they are created (not on lookups), and an engine that
 * inherits it replays its own tenants. */
typedef struct seen {
    int n;
    char last[80];
} seen;

static void on_tenant(void *arg, const char *id, size_t len)
{
    seen *s = arg;
    s->n++;
    snprintf(s->last, sizeof s->last, "%.*s", (int)len, id);
}

static void test_tenant_hook(void **state)
{
    (void)state;
    nx_engine *e, *f;
    nx_tenant *t;
    assert_int_equal(nx_engine_create(NULL, &e), 0);
    assert_int_equal(nx_engine_tenant(e, "alpha", 5, &t), 0);
    seen s = {0};
    nx_engine_on_tenant(e, on_tenant, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.last, "alpha");
    assert_int_equal(nx_engine_tenant(e, "beta", 4, &t), 0);
    assert_int_equal(nx_engine_tenant(e, "beta", 4, &t), 0); /* found: no call */
    assert_int_equal(s.n, 2);
    assert_string_equal(s.last, "beta");
    assert_int_equal(nx_engine_create(NULL, &f), 0);
    assert_int_equal(nx_engine_tenant(f, "gamma", 5, &t), 0);
    nx_engine_inherit_hook(f, e);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.last, "gamma");
    nx_engine_on_tenant(e, NULL, NULL);
    assert_int_equal(nx_engine_tenant(e, "delta", 5, &t), 0);
    assert_int_equal(s.n, 3);
    nx_engine_destroy(e);
    nx_engine_destroy(f);
}

/* The prefetch hints only read: a stream given every hint before every
 * update (fresh, in-second, closing, draining, flushing, after a gap that
 * frees its windows) ends exactly like its twin that got none. Under ASan
 * this also checks that nx_stream_prefetch_next reads nothing it should
 * not (a NULL ring or sketch, a full ring). */
static void test_prefetch_hints(void **st)
{
    (void)st;
    static const nx_type types[] = {NX_TYPE_COUNTER, NX_TYPE_GAUGE, NX_TYPE_TIMER, NX_TYPE_SET};
    nx_engine *e = mk_engine();
    nx_tenant *t;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        nx_stream *hinted, *plain;
        char key[16];
        snprintf(key, sizeof key, "h%zu", k);
        assert_int_equal(nx_tenant_stream(t, key, strlen(key), types[k], &hinted), 0);
        nx_stream_prefetch_next(hinted, T0); /* fresh: no ring, no sketch */
        key[0] = 'p';
        assert_int_equal(nx_tenant_stream(t, key, strlen(key), types[k], &plain), 0);
        uint64_t x = 12345;
        int64_t now = T0;
        for (int i = 0; i < 3000; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            /* mostly 1-30 ms apart; now and then a gap past every window */
            now += (i % 997 == 996) ? 4000000 : (int64_t)(x >> 59) + 1;
            nx_update u;
            memset(&u, 0, sizeof u);
            u.value = (double)(x >> 40) / 1024.0;
            u.weight = 1;
            char m[8];
            snprintf(m, sizeof m, "m%u", (unsigned)(x >> 58));
            u.member = types[k] == NX_TYPE_SET ? m : NULL;
            u.member_len = types[k] == NX_TYPE_SET ? (uint32_t)strlen(m) : 0;
            nx_stream_prefetch(hinted);
            nx_stream_prefetch_type(hinted, types[k]);
            nx_stream_prefetch_next(hinted, now);
            assert_int_equal(nx_stream_update(hinted, &u, now), 0);
            assert_int_equal(nx_stream_update(plain, &u, now), 0);
        }
        static const uint32_t windows[] = {NX_WINDOW_ALL, 10, 60, 3600};
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            nx_summary a, b;
            assert_int_equal(nx_stream_read(hinted, windows[w], now, &a), 0);
            assert_int_equal(nx_stream_read(plain, windows[w], now, &b), 0);
            nx_buf ea = {0}, eb = {0};
            assert_int_equal(nx_summary_encode(&a, &ea), 0);
            assert_int_equal(nx_summary_encode(&b, &eb), 0);
            assert_true(a.count > 0 || windows[w] == 10);
            assert_int_equal(ea.len, eb.len);
            assert_memory_equal(ea.data, eb.data, ea.len);
            nx_buf_free(&ea);
            nx_buf_free(&eb);
            nx_summary_free(&a);
            nx_summary_free(&b);
        }
    }
    nx_engine_destroy(e);
}

/* Twin engines hold the same state: their snapshots are byte-equal. */
static void encodings_equal(nx_engine *a, nx_engine *b)
{
    nx_buf x = {0}, y = {0};
    assert_int_equal(nx_engine_encode(a, &x), 0);
    assert_int_equal(nx_engine_encode(b, &y), 0);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.data, y.data, x.len);
    nx_buf_free(&x);
    nx_buf_free(&y);
}

/* nx_stream_update for a set stream: member m<v> (v's integer part), or
 * none when v is not finite (refused either way). */
static int upd_member(nx_stream *s, double v, double w, int64_t ts, int64_t now)
{
    nx_update u;
    memset(&u, 0, sizeof(u));
    char m[32];
    if (isfinite(v)) {
        u.member = m;
        u.member_len = (uint32_t)snprintf(m, sizeof m, "m%d", (int)v);
    }
    u.value = 0;
    u.weight = w;
    u.ts_ms = ts;
    return nx_stream_update(s, &u, now);
}

/* The counter, quantile and set events' own path (nx_stream_update) has exactly
 * the effects of the general one. Twin engines get the same events (two
 * counters, a timer, a distribution, a histogram, a set); one without
 * timestamps (most of them take the fast path), the other with each event's
 * effective time as its timestamp (every one takes the general path, same
 * meaning). Now goes back at times (the clamp), jumps past every window,
 * weights are fractional, some events are invalid, reads drain quantile
 * streams' buffers mid-second, and an incremental snapshot is in progress
 * for a while (the general path writes the stream's pre-image). Both engines' snapshots are byte-equal at the end,
 * and so are their streams' event counts and last-update times. */
static void test_event_fast_path(void **st)
{
    (void)st;
    enum { NS = 6, N = 24000 };
    static const nx_type types[NS] = {NX_TYPE_COUNTER,      NX_TYPE_COUNTER,   NX_TYPE_TIMER,
                                      NX_TYPE_DISTRIBUTION, NX_TYPE_HISTOGRAM, NX_TYPE_SET};
    nx_engine *e[2] = {mk_engine(), mk_engine()};
    nx_stream *s[2][NS];
    for (int k = 0; k < 2; k++) {
        nx_tenant *t;
        assert_int_equal(nx_engine_tenant(e[k], "acme", 4, &t), 0);
        for (int i = 0; i < NS; i++) {
            char key[8];
            int n = snprintf(key, sizeof key, "c%d", i);
            assert_int_equal(nx_tenant_stream(t, key, (size_t)n, types[i], &s[k][i]), 0);
        }
    }
    static const double weights[] = {1, 0.25, 1.0 / 3};
    int64_t now = T0, newest[NS];
    for (int i = 0; i < NS; i++)
        newest[i] = INT64_MIN;
    uint64_t x = 777;
    nx_buf snap[2] = {{0}, {0}};
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t r = (uint32_t)(x >> 33);
        if (r % 5003 == 0)
            now += 5000000; /* past every window */
        else if (r % 97 == 0)
            now -= 1500; /* behind the streams' newest: clamped */
        else
            now += (int64_t)(r % 40);
        int j = (int)((x >> 20) % NS);
        double v = (double)(int64_t)((x >> 8) % 2001 - 1000) / 8.0;
        if (r % 211 == 0)
            v = NAN;
        int64_t eff = now > newest[j] ? now : newest[j];
        if (isfinite(v))
            newest[j] = eff;
        if (i == N / 3) /* a snapshot in progress on both for a while */
            for (int k = 0; k < 2; k++)
                assert_int_equal(nx_engine_encode_begin(e[k], 0, NULL, NULL), 0);
        if (i == N / 2)
            for (int k = 0; k < 2; k++) {
                bool done = false;
                while (!done)
                    assert_int_equal(nx_engine_encode_step(e[k], 4096, &snap[k], &done), 0);
            }
        /* mostly weight 1: a quantile stream takes the fast path while its
         * buffer's weight stays the event's (a set's: its member log's) */
        double wt = r % 10 == 0 ? weights[1 + (r / 10) % 2] : weights[0];
        int (*up)(nx_stream *, double, double, int64_t, int64_t) =
            types[j] == NX_TYPE_SET ? upd_member : upd;
        int ra = up(s[0][j], v, wt, 0, now);
        int rb = up(s[1][j], v, wt, eff, now);
        assert_int_equal(ra, rb);
        assert_int_equal(ra, isfinite(v) ? 0 : NX_EINVAL);
        if (r % 37 == 0) /* a read drains the buffer mid-second */
            for (int k = 0; k < 2; k++) {
                nx_summary out;
                assert_int_equal(nx_stream_read(s[k][j], 10, now, &out), 0);
                nx_summary_free(&out);
            }
    }
    assert_int_equal(snap[0].len, snap[1].len);
    assert_memory_equal(snap[0].data, snap[1].data, snap[0].len);
    for (int i = 0; i < NS; i++)
        assert_int_equal(nx_stream_last_update(s[0][i]), nx_stream_last_update(s[1][i]));
    encodings_equal(e[0], e[1]);
    nx_summary a;
    assert_int_equal(nx_stream_read(s[0][0], NX_WINDOW_ALL, now, &a), 0);
    assert_true(a.count > 100); /* the events landed */
    nx_summary_free(&a);
    assert_int_equal(nx_stream_read(s[0][NS - 1], NX_WINDOW_ALL, now, &a), 0);
    assert_true(a.count > 100 && nx_summary_distinct(&a) > 100); /* the set's too */
    nx_summary_free(&a);
    for (int k = 0; k < 2; k++) {
        nx_buf_free(&snap[k]);
        nx_engine_destroy(e[k]);
    }
}

/* A set's member log fills within a second: by entries (255 short
 * members: a uint8_t count) or by bytes (long ones). The fast path must
 * leave both to the general path (which drains first), so twin engines,
 * one with timestamps (every event on the general path), stay byte-equal
 * and count every event. */
static void test_set_fast_path_full_log(void **st)
{
    (void)st;
    nx_engine *e[2] = {mk_engine(), mk_engine()};
    nx_stream *s[2];
    for (int k = 0; k < 2; k++) {
        nx_tenant *t;
        assert_int_equal(nx_engine_tenant(e[k], "acme", 4, &t), 0);
        assert_int_equal(nx_tenant_stream(t, "users", 5, NX_TYPE_SET, &s[k]), 0);
    }
    int n = 0;
    for (int sec = 0; sec < 3; sec++)
        for (int i = 0; i < 700; i++, n++) {
            nx_update u;
            memset(&u, 0, sizeof u);
            char m[64];
            u.member = m;
            u.member_len = sec == 1 ? (uint32_t)snprintf(m, sizeof m, "a-rather-long-member-%d", i)
                                    : (uint32_t)snprintf(m, sizeof m, "m%d", i % 300);
            u.weight = 1;
            int64_t now = T0 + sec * 1000 + i;
            assert_int_equal(nx_stream_update(s[0], &u, now), 0);
            u.ts_ms = now;
            assert_int_equal(nx_stream_update(s[1], &u, now), 0);
        }
    encodings_equal(e[0], e[1]);
    nx_summary a;
    assert_int_equal(nx_stream_read(s[0], NX_WINDOW_ALL, T0 + 3000, &a), 0);
    assert_true(a.count == n);
    nx_summary_free(&a);
    for (int k = 0; k < 2; k++)
        nx_engine_destroy(e[k]);
}

/* The batch-lookup API: the hashed calls find, create and refuse exactly
 * as the plain ones (the table grows under them), and the lookup hints are
 * harmless on an empty tenant, with any hash, any type. */
static void test_hashed_lookups(void **st)
{
    (void)st;
    nx_engine *e = mk_engine();
    nx_tenant *t;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    nx_tenant_stream_prefetch(t, 42); /* no table yet */
    nx_tenant_stream_prefetch_found(t, 42, NX_TYPE_TIMER, 3);
    assert_null(nx_tenant_stream_find_hashed(t, "abc", 3, nx_stream_key_hash("abc", 3)));
    nx_stream *made[300];
    for (int i = 0; i < 300; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "metric.%d|host:h%d", i, i % 7);
        uint64_t h = nx_stream_key_hash(key, (size_t)n);
        nx_type type = (nx_type)(NX_TYPE_COUNTER + i % 4);
        nx_tenant_stream_prefetch(t, h);
        nx_tenant_stream_prefetch_found(t, h, type, (size_t)n);
        nx_tenant_stream_prefetch_found(t, h ^ 1, type, (size_t)n); /* a wrong hash */
        assert_int_equal(nx_tenant_stream_hashed(t, key, (size_t)n, h, type, &made[i]), 0);
        nx_stream *again;
        assert_int_equal(nx_tenant_stream_hashed(t, key, (size_t)n, h, type, &again), 0);
        assert_ptr_equal(again, made[i]);
        assert_int_equal(nx_tenant_stream_hashed(t, key, (size_t)n, h,
                                                 (nx_type)(NX_TYPE_COUNTER + (i + 1) % 4), &again),
                         NX_ETYPE);
    }
    for (int i = 0; i < 300; i++) {
        size_t n;
        const char *key = nx_stream_key(made[i], &n);
        uint64_t h = nx_stream_key_hash(key, n);
        nx_tenant_stream_prefetch_found(t, h, nx_stream_type(made[i]), n);
        assert_ptr_equal(nx_tenant_stream_find_hashed(t, key, n, h), made[i]);
        assert_ptr_equal(nx_tenant_stream_find(t, key, n), made[i]);
    }
    /* a hash that is not the key's: the find misses, the create refuses */
    {
        size_t n;
        const char *key = nx_stream_key(made[7], &n);
        uint64_t wrong = nx_stream_key_hash(key, n) ^ 0x5555;
        nx_stream *s;
        assert_null(nx_tenant_stream_find_hashed(t, key, n, wrong));
        assert_int_equal(nx_tenant_stream_hashed(t, key, n, wrong, nx_stream_type(made[7]), &s),
                         NX_EEXIST);
    }
    /* a long key: the hint fetches its first lines only */
    {
        char big[3000];
        memset(big, 'k', sizeof big);
        uint64_t h = nx_stream_key_hash(big, sizeof big);
        nx_stream *s, *again;
        assert_int_equal(nx_tenant_stream_hashed(t, big, sizeof big, h, NX_TYPE_TIMER, &s), 0);
        nx_tenant_stream_prefetch_found(t, h, NX_TYPE_TIMER, sizeof big);
        assert_int_equal(nx_tenant_stream_hashed(t, big, sizeof big, h, NX_TYPE_TIMER, &again), 0);
        assert_ptr_equal(s, again);
        assert_int_equal(nx_tenant_stream_delete(t, big, sizeof big), 0);
    }
    nx_tenant_stats ts;
    nx_tenant_get_stats(t, &ts);
    assert_int_equal(ts.streams, 300);
    assert_int_equal(ts.rejected_type, 300);
    nx_tenant_set_limits(t, 300, 0);
    nx_stream *s;
    assert_int_equal(nx_tenant_stream_hashed(t, "new", 3, nx_stream_key_hash("new", 3),
                                             NX_TYPE_COUNTER, &s),
                     NX_EQUOTA);
    nx_engine_destroy(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_hook),
        cmocka_unit_test(test_hashed_lookups),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_streams_types_quota),
        cmocka_unit_test(test_memory_accounting),
        cmocka_unit_test(test_idle_memory),
        cmocka_unit_test(test_young_stream_memory),
        cmocka_unit_test(test_gauges),
        cmocka_unit_test(test_weights_rates_rejects),
        cmocka_unit_test(test_series),
        cmocka_unit_test(test_summary_merge),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_set_no_windows),
        cmocka_unit_test(test_prefetch_hints),
        cmocka_unit_test(test_event_fast_path),
        cmocka_unit_test(test_set_fast_path_full_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
