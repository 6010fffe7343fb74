/*
 * test_engine_codec.c — engine snapshots and summary wire format:
 * random engines (several tenants, every type, late events, gaps) encode ->
 * decode -> every read (every window, all-time, series, stats) identical,
 * and both engines stay identical under the same further events; summary
 * round trips; every truncation and flipped bytes (with and without a fixed
 * CRC) rejected without a crash and without touching *out; config mismatch.
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
#include "common/nx_codec.h"
#include "common/nx_fs.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_topk.h"
#include "engine/nx_engine_int.h"
#include "engine_v4_events.h"

#define T0 1700000000000ll

static uint64_t rng_state;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double urand(void) { return (double)(rng() >> 11) * 0x1.0p-53; }

static int scale(void)
{
    const char *s = getenv("NX_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

static const nx_type types[] = {NX_TYPE_COUNTER, NX_TYPE_GAUGE, NX_TYPE_TIMER,
                                NX_TYPE_HISTOGRAM, NX_TYPE_DISTRIBUTION, NX_TYPE_SET};

/* Applies n random events to random streams of e; deterministic per seed. */
static void drive(nx_engine *e, uint64_t seed, int n, int64_t *now)
{
    uint64_t saved = rng_state;
    rng_state = seed;
    for (int i = 0; i < n; i++) {
        double r = urand();
        if (r < 0.002)
            *now += 2 * 3600 * 1000;
        else if (r < 0.02)
            *now += (int64_t)(rng() % 90000);
        else
            *now += (int64_t)(rng() % 300);
        char tid[16], key[32], mem[16];
        int tn = snprintf(tid, sizeof(tid), "t%u", (unsigned)(rng() % 4));
        nx_tenant *t;
        assert_int_equal(nx_engine_tenant(e, tid, (size_t)tn, &t), 0);
        unsigned si = (unsigned)(rng() % 12);
        nx_type ty = types[si % 6];
        int kn = snprintf(key, sizeof(key), "m%u|k:v", si);
        nx_stream *s;
        assert_int_equal(nx_tenant_stream(t, key, (size_t)kn, ty, &s), 0);
        nx_update u;
        memset(&u, 0, sizeof(u));
        u.weight = (double)(1 + rng() % 3);
        u.value = ty == NX_TYPE_COUNTER ? (double)(rng() % 10) : exp(urand() * 10 - 2);
        u.gauge_delta = ty == NX_TYPE_GAUGE && urand() < 0.3;
        double tr = urand();
        u.ts_ms = tr < 0.7 ? 0 : tr < 0.95 ? *now - (int64_t)(rng() % 60000) : *now - 70000;
        if (ty == NX_TYPE_SET) {
            u.member_len = (uint32_t)snprintf(mem, sizeof(mem), "u%u", (unsigned)(rng() % 500));
            u.member = mem;
        }
        int rc = nx_stream_update(s, &u, *now);
        assert_true(rc == 0 || rc == NX_ETOOLATE);
        if (urand() < 0.01) {
            nx_summary out;
            assert_int_equal(nx_stream_read(s, 60, *now, &out), 0);
            nx_summary_free(&out);
        }
    }
    rng_state = saved;
}

static void summary_equal(const nx_summary *a, const nx_summary *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->window_s, b->window_s);
    assert_memory_equal(&a->count, &b->count, sizeof(double));
    assert_memory_equal(&a->sum, &b->sum, sizeof(double));
    assert_memory_equal(&a->mean, &b->mean, sizeof(double));
    assert_memory_equal(&a->m2, &b->m2, sizeof(double));
    assert_true(a->min == b->min && a->max == b->max);
    assert_true(a->last == b->last && a->last_ts == b->last_ts && a->first_ts == b->first_ts);
    assert_true((a->dd == NULL) == (b->dd == NULL));
    for (double q = 0; q <= 1.0; q += 0.05) {
        double x = nx_summary_quantile(a, q), y = nx_summary_quantile(b, q);
        assert_true((isnan(x) && isnan(y)) || x == y);
    }
    double x = nx_summary_distinct(a), y = nx_summary_distinct(b);
    assert_true((isnan(x) && isnan(y)) || x == y);
    assert_true((a->topk == NULL) == (b->topk == NULL));
    if (a->topk) {
        nx_topk_item ia[128], ib[128];
        size_t na = nx_topk_list(a->topk, ia, 128), nb = nx_topk_list(b->topk, ib, 128);
        assert_int_equal(na, nb);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(ia[i].member_len, ib[i].member_len);
            assert_memory_equal(ia[i].member, ib[i].member, ia[i].member_len);
            assert_true(ia[i].count == ib[i].count && ia[i].error == ib[i].error);
        }
    }
}

typedef struct tcmp {
    nx_engine *b;
    int64_t now;
    nx_tenant *tb;
} tcmp;

static int cmp_stream2(nx_stream *sa, void *arg)
{
    tcmp *c = arg;
    size_t klen;
    const char *key = nx_stream_key(sa, &klen);
    nx_stream *sb = nx_tenant_stream_find(c->tb, key, klen);
    assert_non_null(sb);
    assert_int_equal(nx_stream_type(sa), nx_stream_type(sb));
    assert_int_equal(nx_stream_last_update(sa), nx_stream_last_update(sb));
    const nx_engine_config *cfg = nx_engine_config_of(c->b);
    for (uint32_t w = 0; w <= cfg->nwindows; w++) {
        uint32_t ws = w < cfg->nwindows ? cfg->windows[w].length_s : NX_WINDOW_ALL;
        nx_summary x, y;
        assert_int_equal(nx_stream_read(sa, ws, c->now, &x), 0);
        assert_int_equal(nx_stream_read(sb, ws, c->now, &y), 0);
        summary_equal(&x, &y);
        nx_summary_free(&x);
        nx_summary_free(&y);
    }
    static const uint32_t steps[] = {1, 10, 60, 300};
    for (size_t i = 0; i < 4; i++) {
        nx_point pa[400], pb[400];
        int64_t span = (int64_t)steps[i] * 300 * 1000;
        int na = nx_stream_series(sa, c->now - span, c->now + 1, steps[i], c->now, pa, 400);
        int nb = nx_stream_series(sb, c->now - span, c->now + 1, steps[i], c->now, pb, 400);
        assert_int_equal(na, nb);
        assert_true(na >= 0);
        for (int j = 0; j < na; j++) {
            assert_true(pa[j].ts_ms == pb[j].ts_ms && pa[j].count == pb[j].count &&
                        pa[j].sum == pb[j].sum && pa[j].min == pb[j].min &&
                        pa[j].max == pb[j].max);
        }
    }
    return 0;
}

static int cmp_tenant(nx_tenant *ta, void *arg)
{
    tcmp *c = arg;
    const char *id = nx_tenant_id(ta);
    nx_tenant *tb = nx_engine_tenant_find(c->b, id, strlen(id));
    assert_non_null(tb);
    nx_tenant_stats sa, sb;
    nx_tenant_get_stats(ta, &sa);
    nx_tenant_get_stats(tb, &sb);
    assert_int_equal(sa.streams, sb.streams);
    assert_int_equal(sa.events, sb.events);
    assert_int_equal(sa.rejected_late, sb.rejected_late);
    assert_int_equal(sa.rejected_quota, sb.rejected_quota);
    c->tb = tb;
    nx_tenant_foreach_stream(ta, cmp_stream2, c);
    nx_tenant_get_stats(ta, &sa);
    nx_tenant_get_stats(tb, &sb);
    /* sketch capacity may be tighter after a decode: bytes need not match */
    assert_true((sa.bytes > 0) == (sb.bytes > 0));
    return 0;
}

static void engines_equal(nx_engine *a, nx_engine *b, int64_t now)
{
    assert_int_equal(nx_engine_tenant_count(a), nx_engine_tenant_count(b));
    tcmp c = {b, now, NULL};
    nx_engine_foreach_tenant(a, cmp_tenant, &c);
}

static void test_engine_roundtrip(void **st)
{
    (void)st;
    for (int round = 0; round < 3; round++) {
        rng_state = 1000 + (uint64_t)round;
        nx_engine *a;
        assert_int_equal(nx_engine_create(NULL, &a), 0);
        int64_t now = T0;
        drive(a, 77 + (uint64_t)round, 3000 * scale(), &now);
        nx_tenant *t;
        assert_int_equal(nx_engine_tenant(a, "quota", 5, &t), 0);
        nx_tenant_set_limits(t, 1, 0);
        nx_stream *s;
        assert_int_equal(nx_tenant_stream(t, "a", 1, NX_TYPE_COUNTER, &s), 0);
        assert_int_equal(nx_tenant_stream(t, "b", 1, NX_TYPE_COUNTER, &s), NX_EQUOTA);

        nx_buf buf = {0};
        assert_int_equal(nx_engine_encode(a, &buf), 0);
        nx_engine *b = NULL;
        assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &b), 0);
        assert_non_null(b);
        /* the quota limit survives */
        t = nx_engine_tenant_find(b, "quota", 5);
        assert_non_null(t);
        assert_int_equal(nx_tenant_stream(t, "b", 1, NX_TYPE_COUNTER, &s), NX_EQUOTA);
        t = nx_engine_tenant_find(a, "quota", 5);
        assert_int_equal(nx_tenant_stream(t, "b", 1, NX_TYPE_COUNTER, &s), NX_EQUOTA);
        engines_equal(a, b, now);
        engines_equal(b, a, now);
        /* the same future events keep them identical */
        int64_t now_a = now, now_b = now;
        drive(a, 555, 1500, &now_a);
        drive(b, 555, 1500, &now_b);
        assert_true(now_a == now_b);
        engines_equal(a, b, now_a);
        /* re-encoding the decoded engine decodes to an equal engine again */
        nx_buf buf2 = {0};
        assert_int_equal(nx_engine_encode(b, &buf2), 0);
        nx_engine *c = NULL;
        assert_int_equal(nx_engine_decode(NULL, buf2.data, buf2.len, &c), 0);
        engines_equal(b, c, now_a);
        nx_buf_free(&buf);
        nx_buf_free(&buf2);
        nx_engine_destroy(a);
        nx_engine_destroy(b);
        nx_engine_destroy(c);
    }
}

/* Closed seconds wait in the pending ring until a read or a full ring folds
 * them: a snapshot taken in between carries them, the decoded stream reads
 * the same, and the windows see them exactly once. */
static void test_engine_pending_roundtrip(void **st)
{
    (void)st;
    nx_engine *a;
    assert_int_equal(nx_engine_create(NULL, &a), 0);
    nx_tenant *t;
    assert_int_equal(nx_engine_tenant(a, "p", 1, &t), 0);
    nx_stream *s, *d;
    assert_int_equal(nx_tenant_stream(t, "lat", 3, NX_TYPE_TIMER, &s), 0);
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = 1;
    for (int sec = 0; sec < 6; sec++)
        for (int k = 0; k < 3; k++) {
            u.value = 10.0 * (sec + 1) + k;
            assert_int_equal(nx_stream_update(s, &u, T0 + sec * 1000 + k * 100), 0);
        }
    assert_non_null(nx_stream_pending(a, s));
    assert_int_equal(s->npend, 5); /* seconds 0..4 closed, 5 open */
    nx_buf buf = {0};
    assert_int_equal(nx_engine_encode(a, &buf), 0);
    nx_engine *b = NULL;
    assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &b), 0);
    nx_tenant *tb = nx_engine_tenant_find(b, "p", 1);
    assert_non_null(tb);
    d = nx_tenant_stream_find(tb, "lat", 3);
    assert_non_null(d);
    assert_int_equal(d->npend, 5);
    engines_equal(a, b, T0 + 5500);
    nx_summary out;
    assert_int_equal(nx_stream_read(d, 10, T0 + 5500, &out), 0);
    assert_true(out.count == 18 && out.min == 10 && out.max == 62);
    nx_summary_free(&out);
    assert_int_equal(d->npend, 0); /* the read folded them */
    nx_buf_free(&buf);
    nx_engine_destroy(b);
    nx_engine_destroy(a);
}

/* Ring lengths and phases: a stream's ring holds 16 closed seconds, a set
 * stream's 8, and a young stream folds only when its ring is full. Once
 * a ring's length old, each stream folds on its own phase (from its first
 * event time): streams busy every second spread their folds over the
 * ring's length instead of folding all in the same second. A snapshot
 * carries 16 pending seconds, and the decoded engine folds at the same
 * seconds and stays equal to the original. */
static void test_engine_ring_phases(void **st)
{
    (void)st;
    enum { NS = 64, SECS = 100 };
    nx_engine *a;
    assert_int_equal(nx_engine_create(NULL, &a), 0);
    nx_tenant *t;
    assert_int_equal(nx_engine_tenant(a, "p", 1, &t), 0);
    nx_stream *s[NS], *c;
    for (int i = 0; i < NS; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "lat%d", i);
        assert_int_equal(nx_tenant_stream(t, key, (size_t)n, NX_TYPE_TIMER, &s[i]), 0);
    }
    assert_int_equal(nx_tenant_stream(t, "c", 1, NX_TYPE_COUNTER, &c), 0);
    nx_stream *m;
    assert_int_equal(nx_tenant_stream(t, "m", 1, NX_TYPE_SET, &m), 0);
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = 1;
    u.member = "x";
    u.member_len = 1;
    int most = 0;
    for (int sec = 0; sec < SECS; sec++) {
        int folds = 0;
        for (int i = 0; i < NS; i++) {
            uint8_t before = s[i]->npend;
            u.value = 1 + sec + i;
            assert_int_equal(nx_stream_update(s[i], &u, T0 + sec * 1000 + i * 7), 0);
            if (s[i]->npend < before)
                folds++;
            assert_true(s[i]->npend <= NX_PENDING_LONG);
            if (sec == NX_PENDING_LONG)
                assert_int_equal(s[i]->npend, NX_PENDING_LONG); /* young: full */
        }
        assert_int_equal(nx_stream_update(c, &u, T0 + sec * 1000), 0);
        assert_int_equal(nx_stream_update(m, &u, T0 + sec * 1000), 0);
        assert_true(c->npend <= NX_PENDING_LONG && m->npend <= NX_PENDING_SET);
        if (sec > 2 * NX_PENDING_LONG && folds > most)
            most = folds;
        if (sec == NX_PENDING_LONG)
            assert_int_equal(c->npend, NX_PENDING_LONG); /* young: folds only when full */
        if (sec == NX_PENDING_SET)
            assert_int_equal(m->npend, NX_PENDING_SET);
    }
    /* 64 streams over 16 phases: ~4 a second, never all at once */
    assert_true(most > 0 && most <= NS / 4);
    /* a stream with 15 pending seconds round-trips them */
    nx_stream *q;
    assert_int_equal(nx_tenant_stream(t, "late", 4, NX_TYPE_DISTRIBUTION, &q), 0);
    for (int sec = 0; sec < 16; sec++) {
        u.value = sec;
        assert_int_equal(nx_stream_update(q, &u, T0 + (SECS + sec) * 1000), 0);
    }
    assert_int_equal(q->npend, 15);
    /* (not snapshot_stable: with 66 streams the decoded tenant's table
     * lists them in another order, so its encoding is not byte-equal) */
    nx_buf buf = {0};
    assert_int_equal(nx_engine_encode(a, &buf), 0);
    nx_engine *b = NULL;
    assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &b), 0);
    nx_buf_free(&buf);
    nx_stream *qb = nx_tenant_stream_find(nx_engine_tenant_find(b, "p", 1), "late", 4);
    assert_non_null(qb);
    assert_int_equal(qb->npend, 15);
    /* both engines go on folding at the same seconds */
    for (int sec = 16; sec < 60; sec++) {
        u.value = sec;
        assert_int_equal(nx_stream_update(q, &u, T0 + (SECS + sec) * 1000), 0);
        assert_int_equal(nx_stream_update(qb, &u, T0 + (SECS + sec) * 1000), 0);
        assert_int_equal(q->npend, qb->npend);
    }
    engines_equal(a, b, T0 + (SECS + 60) * 1000);
    nx_engine_destroy(b);
    nx_engine_destroy(a);
}

/* An engine with tenant "q" and its stream "lat" of `type`. */
static nx_stream *q_lat_stream(nx_type type, nx_engine **e, nx_tenant **t)
{
    assert_int_equal(nx_engine_create(NULL, e), 0);
    assert_int_equal(nx_engine_tenant(*e, "q", 1, t), 0);
    nx_stream *s;
    assert_int_equal(nx_tenant_stream(*t, "lat", 3, type, &s), 0);
    return s;
}

/* Rewrites a snapshot's version (the byte after the magic, and the CRC). */
static void relabel(nx_buf *buf, uint8_t version)
{
    buf->data[4] = version;
    uint32_t crc = nx_crc32(buf->data, buf->len - 4);
    memcpy(buf->data + buf->len - 4, &crc, 4);
}

/* `secs` seconds of one event each into a young counter and a young timer
 * (which fold only when their rings are full); returns the engine's
 * snapshot, rewritten as `version` (the byte after the magic, and the CRC). */
static nx_buf young_rings_snapshot(int secs, uint8_t version)
{
    nx_engine *a;
    nx_tenant *t;
    nx_stream *c = q_lat_stream(NX_TYPE_COUNTER, &a, &t), *q;
    assert_int_equal(nx_tenant_stream(t, "q", 1, NX_TYPE_TIMER, &q), 0);
    nx_update u;
    memset(&u, 0, sizeof u);
    u.weight = 1;
    for (int sec = 0; sec < secs; sec++) {
        u.value = sec;
        assert_int_equal(nx_stream_update(c, &u, T0 + sec * 1000), 0);
        assert_int_equal(nx_stream_update(q, &u, T0 + sec * 1000), 0);
    }
    assert_int_equal(c->npend, secs - 1);
    nx_buf buf = {0};
    assert_int_equal(nx_engine_encode(a, &buf), 0);
    assert_int_equal(buf.data[4], 10);
    relabel(&buf, version);
    nx_engine_destroy(a);
    return buf;
}

/* Version 10: a set window's current sub-bucket may hold a wide top-k
 * (nx_window.h, "Wide current"). A set stream with 40 members a second has
 * one in its 1 m window after a few seconds; its snapshot decodes and
 * answers alike, and the same bytes labelled version 9 are refused, as a
 * version 9 nexusd refuses them. */
static void test_engine_v10_wide(void **st)
{
    (void)st;
    nx_engine *a;
    nx_tenant *t;
    nx_stream *s = q_lat_stream(NX_TYPE_SET, &a, &t);
    nx_update u;
    memset(&u, 0, sizeof u);
    u.weight = 1;
    int64_t now = T0;
    bool wide = false;
    for (int sec = 0; sec < 40 && !wide; sec++) {
        for (int i = 0; i < 40; i++) {
            char m[32];
            u.member = m;
            u.member_len = (uint32_t)snprintf(m, sizeof m, "u%d", sec * 37 + i);
            now = T0 + sec * 1000 + i * 20;
            assert_int_equal(nx_stream_update(s, &u, now), 0);
        }
        for (uint32_t w = 0; s->win && w < a->cfg.nwindows; w++) {
            const nx_window *x = &s->win[w];
            const nx_topk *k = x->sk && x->slots ? x->sk[x->cur_k % (x->n + 1)].topk : NULL;
            wide = wide || (k && nx_topk_capacity(k) > a->cfg.topk_capacity);
        }
    }
    assert_true(wide);
    nx_buf buf = {0};
    assert_int_equal(nx_engine_encode(a, &buf), 0);
    nx_engine *b = NULL;
    assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &b), 0);
    engines_equal(a, b, now);
    nx_engine_destroy(b);
    b = NULL;
    relabel(&buf, 9);
    assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &b), NX_ECORRUPT);
    assert_null(b);
    nx_buf_free(&buf);
    nx_engine_destroy(a);
}

/* Version 9: counters' and gauges' rings hold 16 seconds, and a version 8
 * snapshot (which held at most 8 of theirs) still decodes; one claiming to
 * be version 8 with more is refused, as a version 8 nexusd refuses it. */
static void test_engine_v8_rings(void **st)
{
    (void)st;
    nx_buf v9 = young_rings_snapshot(13, 9), v8 = young_rings_snapshot(9, 8),
           bad = young_rings_snapshot(13, 8);
    nx_engine *b = NULL;
    assert_int_equal(nx_engine_decode(NULL, v9.data, v9.len, &b), 0);
    nx_tenant *t = nx_engine_tenant_find(b, "q", 1);
    assert_int_equal(nx_tenant_stream_find(t, "lat", 3)->npend, 12);
    assert_int_equal(nx_tenant_stream_find(t, "q", 1)->npend, 12);
    nx_engine_destroy(b);
    b = NULL;
    assert_int_equal(nx_engine_decode(NULL, v8.data, v8.len, &b), 0);
    t = nx_engine_tenant_find(b, "q", 1);
    assert_int_equal(nx_tenant_stream_find(t, "lat", 3)->npend, 8);
    nx_engine_destroy(b);
    b = NULL;
    assert_int_equal(nx_engine_decode(NULL, bad.data, bad.len, &b), NX_ECORRUPT);
    assert_null(b);
    nx_buf_free(&v9);
    nx_buf_free(&v8);
    nx_buf_free(&bad);
}

/* encode(a) == encode(decode(encode(a))); returns the decoded engine. */
static nx_engine *snapshot_stable(nx_engine *a)
{
    nx_buf buf = {0}, buf2 = {0};
    nx_engine *b = NULL;
    assert_int_equal(nx_engine_encode(a, &buf), 0);
    assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &b), 0);
    assert_int_equal(nx_engine_encode(b, &buf2), 0);
    assert_int_equal(buf.len, buf2.len);
    assert_memory_equal(buf.data, buf2.data, buf.len);
    nx_buf_free(&buf);
    nx_buf_free(&buf2);
    return b;
}

/* A quantile stream buffers up to NX_QBUF_MAX values (as packed bins) of its
 * open second before they reach its DDSketch, a set stream its members
 * before they reach its top-k and HLLs (nx_stream.qbuf / mlog). Whatever is buffered — none,
 * some, a full buffer, a change of weight that drains it — a snapshot
 * encodes exactly what one-by-one adds would have made (encode ==
 * encode(decode(encode))), reads of the original and the decoded engine
 * agree and see every event, and a late event after them lands too. */
static void qbuf_case(nx_type type, int n, int run)
{
    nx_engine *a;
    nx_tenant *t;
    nx_stream *s = q_lat_stream(type, &a, &t);
    nx_update u;
    memset(&u, 0, sizeof(u));
    char member[16];
    double total = 0;
    for (int i = 0; i < n; i++) {
        u.value = (i % 5 == 4) ? -(double)i : 1.5 * (double)(i + 1);
        u.weight = (i / run) % 2 ? 0.5 : 1.0; /* the weight changes after `run` events */
        u.member_len = (uint32_t)snprintf(member, sizeof member, "m%d", i % 11);
        u.member = member;
        total += u.weight;
        assert_int_equal(nx_stream_update(s, &u, T0 + 7000 + i), 0);
    }
    nx_engine *b = snapshot_stable(a);
    nx_stream *d = nx_tenant_stream_find(nx_engine_tenant_find(b, "q", 1), "lat", 3);
    assert_non_null(d);
    /* one more event, late (an earlier second), into both */
    u.value = 3.25;
    u.weight = 1;
    u.member = "late";
    u.member_len = 4;
    u.ts_ms = T0 + 5000;
    assert_int_equal(nx_stream_update(s, &u, T0 + 7100), 0);
    assert_int_equal(nx_stream_update(d, &u, T0 + 7100), 0);
    total += 1;
    static const uint32_t windows[] = {10, 60, NX_WINDOW_ALL};
    for (size_t w = 0; w < 3; w++) {
        nx_summary sa, sb;
        assert_int_equal(nx_stream_read(s, windows[w], T0 + 7500, &sa), 0);
        assert_int_equal(nx_stream_read(d, windows[w], T0 + 7500, &sb), 0);
        summary_equal(&sa, &sb);
        assert_true(sa.count == total);
        if (type == NX_TYPE_SET)
            assert_true(fabs(nx_summary_distinct(&sa) - (n < 11 ? n + 1 : 12)) < 0.5);
        else
            assert_true(sa.dd && nx_ddsketch_count(sa.dd) == total);
        nx_summary_free(&sa);
        nx_summary_free(&sb);
    }
    nx_engine_destroy(a);
    nx_engine_destroy(b);
}

static void test_engine_qbuf_roundtrip(void **st)
{
    (void)st;
    /* around the bin buffer's size (NX_QBUF_MAX 12, 14 before) and its
     * multiples, with the weight changing every 3 events or never */
    static const int counts[] = {1, 2, 6, 7, 8, 11, 12, 13, 14, 15, 23, 24, 25, 28, 29, 43};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        for (int run = 3; run <= 1000; run += 997) {
            qbuf_case(NX_TYPE_DISTRIBUTION, counts[c], run);
            qbuf_case(NX_TYPE_SET, counts[c], run);
        }
    }
}

/* A quantile stream's full bin buffers wait in its bin log (nx_stream.qlog)
 * until something drains the open second: its close, a read, a snapshot, a
 * change of weight, or a full log. The log grows (4, 8, ... NX_QLOG_MAX
 * buffers, its capacity always above what it holds) and is added to the
 * sketch in one sorted pass (every value positive) or in order (signs
 * mixed). Whatever the count, the open second's sketch is exactly the one
 * nx_ddsketch_add builds from the same values one by one, a snapshot in the
 * middle round-trips, the log's bytes are accounted, and deleting the
 * stream returns every byte. */
static void bin_log_case(int n, int run, bool mixed)
{
    nx_engine *a;
    nx_tenant *t;
    nx_stream *s = q_lat_stream(NX_TYPE_DISTRIBUTION, &a, &t);
    nx_ddsketch *ref;
    assert_int_equal(nx_ddsketch_create(a->ap.alpha, a->ap.dd_max_bins, &ref), 0);
    nx_update u;
    memset(&u, 0, sizeof(u));
    double total = 0;
    uint64_t before_log = 0;
    for (int i = 0; i < n; i++) {
        double x = exp((double)((i * 7919) % 1000) / 90.0 - 3.0); /* 0.05 .. 3e3 */
        u.value = mixed && i % 7 == 3 ? -x : x;
        u.weight = (i / run) % 2 ? 0.5 : 1.0;
        if (i == (int)NX_QBUF_MAX && run > (int)NX_QBUF_MAX && n / 2 > i) {
            nx_stream_account(s);
            before_log = s->bytes;
        }
        assert_int_equal(nx_stream_update(s, &u, T0 + 7000 + (i % 1000)), 0);
        if (i == (int)NX_QBUF_MAX && run > (int)NX_QBUF_MAX && n / 2 > i) {
            /* the first full buffer moved to a fresh log of 4 buffers */
            assert_int_equal(s->nqlog, 1);
            nx_stream_account(s);
            assert_true(s->bytes - before_log == (1 + 4 * NX_QBUF_MAX) * sizeof(int32_t));
        }
        assert_int_equal(nx_ddsketch_add(ref, u.value, u.weight), 0);
        total += u.weight;
        if (s->qlog) {
            uint32_t cap = (uint32_t)s->qlog[0];
            assert_true(cap >= 4 && cap <= NX_QLOG_MAX && (cap & (cap - 1)) == 0);
            assert_true(s->nqlog < cap);
        } else {
            assert_int_equal(s->nqlog, 0);
        }
        if (i == n / 2) { /* a snapshot in the middle drains it, exactly */
            nx_engine_destroy(snapshot_stable(a));
            assert_int_equal(s->nqlog, 0);
            assert_int_equal(s->nqbuf, 0);
        }
    }
    assert_int_equal(nx_stream_drain(s), 0);
    assert_int_equal(s->nqlog, 0);
    assert_int_equal(s->nqbuf, 0);
    assert_non_null(s->open_dd);
    assert_true(nx_ddsketch_equal(s->open_dd, ref));
    nx_summary sum;
    assert_int_equal(nx_stream_read(s, 10, T0 + 7999, &sum), 0);
    assert_true(sum.count == total && sum.dd && nx_ddsketch_count(sum.dd) == total);
    nx_summary_free(&sum);
    assert_int_equal(nx_tenant_stream_delete(t, "lat", 3), 0);
    nx_tenant_stats ts;
    nx_tenant_get_stats(t, &ts);
    assert_true(ts.bytes == 0);
    nx_ddsketch_destroy(ref);
    nx_engine_destroy(a);
}

/* An idle quantile stream gives its bin log back with its windows, and its
 * bytes say so. */
static void test_engine_bin_log_idle(void **st)
{
    (void)st;
    nx_engine *a;
    nx_tenant *t;
    nx_stream *s = q_lat_stream(NX_TYPE_DISTRIBUTION, &a, &t);
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = 1;
    for (int i = 0; i < 50; i++) {
        u.value = 1.0 + i;
        assert_int_equal(nx_stream_update(s, &u, T0 + 7000 + i), 0);
    }
    assert_non_null(s->qlog);
    assert_true(s->nqlog >= 1);
    nx_summary out;
    assert_int_equal(nx_stream_read(s, 60, T0 + 7000 + 25ll * 3600 * 1000, &out), 0);
    assert_true(out.count == 0);
    nx_summary_free(&out);
    assert_null(s->qlog);
    assert_int_equal(s->nqlog, 0);
    uint64_t bytes = s->bytes;
    nx_stream_account(s);
    assert_true(s->bytes == bytes);
    assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, T0 + 7000 + 25ll * 3600 * 1000, &out), 0);
    assert_true(out.count == 50 && out.dd && nx_ddsketch_count(out.dd) == 50);
    nx_summary_free(&out);
    nx_engine_destroy(a);
}

static void test_engine_bin_log(void **st)
{
    (void)st;
    /* around the buffer (10) and the log's sizes (4, 8, ... 128 buffers;
     * 1,280 values fill it) */
    static const int counts[] = {9, 10, 11, 20, 21, 39, 40, 41, 51, 80, 81, 161,
                                 1279, 1280, 1281, 1291, 3001};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        bin_log_case(counts[c], 1 << 30, false);
        bin_log_case(counts[c], 1 << 30, true);
        bin_log_case(counts[c], 37, false); /* the weight changes every 37 */
        bin_log_case(counts[c], 37, true);
    }
}

/* Exact counts of set members: a list searched linearly (a test's few
 * hundred distinct members). */
typedef struct member_tally {
    char **m;
    uint32_t *len;
    double *w;
    size_t n;
} member_tally;

static void member_tally_add(member_tally *t, const char *m, uint32_t len, double w)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->len[i] == len && memcmp(t->m[i], m, len) == 0) {
            t->w[i] += w;
            return;
        }
    t->m = realloc(t->m, (t->n + 1) * sizeof *t->m);
    t->len = realloc(t->len, (t->n + 1) * sizeof *t->len);
    t->w = realloc(t->w, (t->n + 1) * sizeof *t->w);
    assert_true(t->m && t->len && t->w);
    t->m[t->n] = malloc(len ? len : 1);
    assert_non_null(t->m[t->n]);
    memcpy(t->m[t->n], m, len);
    t->len[t->n] = len;
    t->w[t->n++] = w;
}

static double member_tally_of(const member_tally *t, const char *m, uint32_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->len[i] == len && memcmp(t->m[i], m, len) == 0)
            return t->w[i];
    return 0;
}

/* SpaceSaving's guarantees of `topk` (capacity k) against exact counts of
 * total N: every reported count bounds its member's true weight from above
 * and count - error from below, and every member heavier than N/k is
 * reported. */
static void member_tally_check(const member_tally *t, const nx_topk *topk, double N)
{
    uint32_t k = nx_topk_capacity(topk);
    nx_topk_item *it = calloc(k, sizeof *it);
    assert_non_null(it);
    size_t n = nx_topk_list(topk, it, k);
    for (size_t i = 0; i < n; i++) {
        double tr = member_tally_of(t, it[i].member, it[i].member_len);
        assert_true(tr > 0 && it[i].count - it[i].error <= tr && tr <= it[i].count);
    }
    for (size_t j = 0; j < t->n; j++) {
        if (!(t->w[j] > N / k))
            continue;
        size_t i = 0;
        while (i < n && !(it[i].member_len == t->len[j] &&
                          memcmp(it[i].member, t->m[j], t->len[j]) == 0))
            i++;
        assert_true(i < n);
    }
    free(it);
}

static void member_tally_free(member_tally *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->m[i]);
    free(t->m);
    free(t->len);
    free(t->w);
}

/* *s := the set stream "users" of tenant `tenant` (one character), made
 * if need be. */
static void set_stream_open(nx_engine *e, const char *tenant, nx_stream **s)
{
    nx_tenant *t;
    assert_int_equal(nx_engine_tenant(e, tenant, 1, &t), 0);
    assert_int_equal(nx_tenant_stream(t, "users", 5, NX_TYPE_SET, s), 0);
}

/* A default engine with that stream, and an empty reference HLL (p 14). */
static void set_stream_new(const char *tenant, nx_engine **e, nx_stream **s, nx_hll **ref)
{
    assert_int_equal(nx_engine_create(NULL, e), 0);
    set_stream_open(*e, tenant, s);
    assert_int_equal(nx_hll_create(14, ref), 0);
}

/* A set stream logs the members of its open second (nx_stream.mlog) and
 * adds them to its HLLs later, in order, and to its top-k as batches (one
 * merge of their exact counts per drain). Whatever the log goes through —
 * more entries than it counts (NX_MLOG_ENTRIES_MAX), more bytes than it
 * holds (NX_MLOG_MAX), a member longer than any log, empty members, weight
 * changes, a read in the middle — the stream's count is every accepted
 * weight, its distinct count the reference HLL's, and its top-k keeps
 * SpaceSaving's guarantees against the exact counts (exactly those counts
 * with fewer members than k); a member over NX_TOPK_MEMBER_MAX is refused
 * and counts nowhere. */
static void member_log_case(uint32_t prefixes)
{
    nx_engine *e;
    nx_stream *s;
    nx_hll *href;
    set_stream_new("m", &e, &s, &href);
    member_tally exact = {0};
    char *big = malloc(NX_TOPK_MEMBER_MAX + 2);
    assert_non_null(big);
    uint64_t r = 99;
    double total = 0;
    nx_update u;
    memset(&u, 0, sizeof(u));
    for (int i = 0; i < 900; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t kind = (uint32_t)(r >> 60), len;
        if (kind < 10)
            len = 1 + (uint32_t)(r >> 40) % 12;  /* short */
        else if (kind < 13)
            len = 1000 + (uint32_t)(r >> 40) % 2500; /* a few fill the log */
        else if (kind < 14)
            len = NX_MLOG_MAX + (uint32_t)(r >> 40) % 3000; /* longer than any log */
        else
            len = 0;
        /* many prefixes: counts repeat, the top-k evicts; at most 64: one
         * member per prefix (its length and bytes a function of it), exact */
        uint32_t id = (uint32_t)((r >> 8) % prefixes);
        if (prefixes <= 64)
            len = id % 10 == 9 ? 1500 + id * 40 : id % 10 == 8 ? 0 : 1 + id % 12;
        memset(big, 'a' + (int)((prefixes <= 64 ? id : r >> 20) % 26), len);
        char pre[16]; /* the id's digits lead, as many as fit in 7 bytes */
        int pn = snprintf(pre, sizeof pre, "%u", (unsigned)id);
        memcpy(big, pre, (size_t)(pn < 7 ? pn : 7) < len ? (size_t)(pn < 7 ? pn : 7) : len);
        u.member = big;
        u.member_len = len;
        u.weight = (i / 100) % 3 == 2 ? 0.25 : 1.0;
        assert_int_equal(nx_stream_update(s, &u, T0 + 3000 + i / 10), 0);
        member_tally_add(&exact, big, len, u.weight);
        assert_int_equal(nx_hll_add(href, big, len), 0);
        assert_true(s->mlog.cap <= NX_MLOG_MAX && s->mlog.len <= s->mlog.cap);
        total += u.weight;
        if (i == 450) { /* a read drains the log mid-second */
            nx_summary mid;
            assert_int_equal(nx_stream_read(s, 10, T0 + 3045, &mid), 0);
            assert_true(mid.count == total);
            nx_summary_free(&mid);
        }
    }
    u.member_len = NX_TOPK_MEMBER_MAX + 1;
    assert_int_equal(nx_stream_update(s, &u, T0 + 3090), NX_ETOOBIG);
    static const uint32_t windows[] = {10, NX_WINDOW_ALL};
    for (size_t w = 0; w < 2; w++) {
        nx_summary sm;
        assert_int_equal(nx_stream_read(s, windows[w], T0 + 3095, &sm), 0);
        assert_true(sm.count == total);
        assert_non_null(sm.topk);
        assert_true(nx_topk_total(sm.topk) == total);
        member_tally_check(&exact, sm.topk, total);
        nx_topk_item a[64];
        size_t na = nx_topk_list(sm.topk, a, 64);
        assert_true(prefixes > 64 ? exact.n > 64 : exact.n > 30 && exact.n <= prefixes);
        if (exact.n <= 64) { /* no eviction: exact counts, errors 0 */
            assert_int_equal(na, exact.n);
            for (size_t i = 0; i < na; i++)
                assert_true(a[i].error == 0 &&
                            a[i].count == member_tally_of(&exact, a[i].member, a[i].member_len));
        } else {
            assert_int_equal(na, 64);
        }
        assert_true(nx_summary_distinct(&sm) == nx_hll_estimate(href));
        nx_summary_free(&sm);
    }
    free(big);
    member_tally_free(&exact);
    nx_hll_destroy(href);
    nx_engine_destroy(e);
}

static void test_engine_member_log(void **st)
{
    (void)st;
    member_log_case(150); /* hundreds of distinct members */
    member_log_case(40);  /* 40 members */
}

/* A set stream's all-time distinct count is all-time's HLL (the sliding
 * HLL's grave) max the sliding HLL's pairs: over ~31 simulated hours (past
 * the 3,900 s horizon several times, so pairs die and are dropped), with
 * hot and cold members, late events, idle gaps longer than the horizon (one
 * past the 24 h tier: the windows and the sliding HLL are freed, and made
 * again) and snapshot round
 * trips now and then, the all-time read's registers are exactly those of a
 * reference HLL of every member accepted. */
/* e := its own snapshot round trip; s := the set stream "users" of "g". */
static void grave_roundtrip(nx_engine **e, nx_stream **s)
{
    nx_buf buf = {0};
    assert_int_equal(nx_engine_encode(*e, &buf), 0);
    nx_engine *d = NULL;
    assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &d), 0);
    nx_buf_free(&buf);
    nx_engine_destroy(*e);
    *e = d;
    set_stream_open(d, "g", s);
}

static void test_all_time_grave(void **st)
{
    (void)st;
    nx_engine *e;
    nx_stream *s;
    nx_hll *ref;
    set_stream_new("g", &e, &s, &ref);
    uint64_t r = 7;
    int64_t sec = 0;
    int checks = 0, trips = 0, gaps = 0, freed = 0;
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = 1;
    for (int iter = 0; iter < 16000; iter++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        if ((r >> 33) % 2400 == 0 || iter == 8000) {
            /* close the open second first: its flush finds the last sweep
             * recent and leaves the sliding HLL alone */
            nx_summary sm;
            sec += 1;
            assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, T0 + sec * 1000, &sm), 0);
            nx_summary_free(&sm);
            /* idle past the horizon (once past the 24 h tier too, so that
             * the stream frees its windows and sliding HLL): with nothing
             * to fold, the read moves the clock without touching the
             * sliding HLL, whose pairs died meanwhile; a snapshot at once
             * must still carry them */
            sec += iter == 8000 ? 90000 : 4000 + (int64_t)(r >> 40) % 2000;
            gaps++;
            assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, T0 + sec * 1000, &sm), 0);
            freed += !s->shll;
            assert_true(nx_summary_distinct(&sm) == nx_hll_estimate(ref));
            nx_summary_free(&sm);
            grave_roundtrip(&e, &s);
            assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, T0 + sec * 1000, &sm), 0);
            assert_true(nx_summary_distinct(&sm) == nx_hll_estimate(ref));
            nx_summary_free(&sm);
        } else {
            sec += 1;
        }
        for (uint64_t k = 0, n = (r >> 20) % 6; k < n; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            char m[24];
            int len = (r >> 63) ? snprintf(m, sizeof m, "hot%u", (unsigned)((r >> 30) % 50))
                                : snprintf(m, sizeof m, "c%u", (unsigned)((r >> 20) % 1000000));
            u.member = m;
            u.member_len = (uint32_t)len;
            /* 1 in 8 late, by up to 50 s (within the default tolerance) */
            u.ts_ms = (r >> 8) % 8 == 0 && sec > 50 ? T0 + (sec - (int64_t)((r >> 12) % 50)) * 1000 : 0;
            assert_int_equal(nx_stream_update(s, &u, T0 + sec * 1000), 0);
            assert_int_equal(nx_hll_add(ref, m, (size_t)len), 0);
        }
        if ((r >> 33) % 900 == 0) { /* a snapshot round trip */
            grave_roundtrip(&e, &s);
            trips++;
        }
        if ((r >> 33) % 700 == 0 || iter == 15999) {
            nx_summary sm;
            assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, T0 + sec * 1000, &sm), 0);
            assert_non_null(sm.hll);
            for (uint32_t i = 0; i < (1u << 14); i++)
                if (nx_hll_register(sm.hll, i) != nx_hll_register(ref, i))
                    fail_msg("second %lld register %u: %u read, %u added", (long long)sec, i,
                             nx_hll_register(sm.hll, i), nx_hll_register(ref, i));
            nx_summary_free(&sm);
            checks++;
        }
    }
    if (checks < 10 || trips < 5 || gaps < 2 || freed < 1)
        fail_msg("checks %d trips %d gaps %d freed %d", checks, trips, gaps, freed);
    nx_hll_destroy(ref);
    nx_engine_destroy(e);
}

/* Decodes tests/data/<name>, a snapshot the engine of `version` wrote. */
static nx_engine *decode_fixture(const char *name, int version)
{
    const char *root = getenv("NX_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", name);
    char *data;
    size_t len;
    if (nx_read_file(path, 1u << 22, &data, &len) != 0)
        fail_msg("cannot read %s (run from the repository root or set NX_ROOT)", path);
    assert_true(len > 4 && ((const uint8_t *)data)[4] == version);
    nx_engine *e = NULL;
    assert_int_equal(nx_engine_decode(NULL, (const uint8_t *)data, len, &e), 0);
    free(data);
    return e;
}

/* ---- version 3 snapshots of set streams ------------------------------------ */

/* tests/data/engine_v3_sets.bin was written by the version-3 engine
 * (tests/data/gen_engine_v3_sets.c.txt: 3 set streams, 7 minutes of events
 * including late ones, and 1-3 members never seen before in second 418,
 * still pending when the snapshot was taken: only its pending HLL knows
 * them); these are that engine's answers at v3_now_ms. */
static const long long v3_now_ms = 1700000419800ll;
static const struct { const char *key; unsigned window; double count, distinct; } v3_answers[] = {
    {"users", 10, 28, 19.011167488579069},
    {"users", 60, 199, 23.016274494223332},
    {"users", 300, 948, 31.029109496249266},
    {"users", 3600, 1255, 34.035280466483073},
    {"users", 0, 1255, 34.035280466483073},
    {"sessions|env:prod", 10, 40, 21.013675065122143},
    {"sessions|env:prod", 60, 210, 44.059537934590864},
    {"sessions|env:prod", 300, 990, 52.082420361583097},
    {"sessions|env:prod", 3600, 1276, 55.092050006300937},
    {"sessions|env:prod", 0, 1276, 55.092050006300937},
    {"ips", 10, 34, 29.025410802093777},
    {"ips", 60, 177, 60.109544202711227},
    {"ips", 300, 947, 72.158926838722422},
    {"ips", 3600, 1255, 76.177396427620465},
    {"ips", 0, 1255, 76.177396427620465},
};

/* Version 3 windows kept an HLL per sub-bucket; decoding rebuilds the
 * sliding HLL from them, each member as seen at its sub-bucket's last
 * second. Counts, all-time and the 1h window (whose 300 s sub-buckets every
 * finer sub-bucket nests in) must be exact; a finer window may count the
 * members of a coarser sub-bucket it overlaps, never fewer members (HLL
 * registers only grow) and never more than the 1h window. The migrated
 * engine then re-encodes (version 4) to the same answers and keeps taking
 * events. */
static void test_engine_v3_sets(void **st)
{
    (void)st;
    nx_engine *e = decode_fixture("engine_v3_sets.bin", 3);
    nx_tenant *t = nx_engine_tenant_find(e, "legacy", 6);
    assert_non_null(t);
    size_t n = sizeof v3_answers / sizeof v3_answers[0];
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            nx_stream *s = nx_tenant_stream_find(t, v3_answers[i].key, strlen(v3_answers[i].key));
            assert_non_null(s);
            nx_summary out, hour;
            assert_int_equal(nx_stream_read(s, v3_answers[i].window, v3_now_ms, &out), 0);
            assert_int_equal(nx_stream_read(s, 3600, v3_now_ms, &hour), 0);
            double got = nx_summary_distinct(&out), want = v3_answers[i].distinct;
            assert_true(out.count == v3_answers[i].count);
            if (v3_answers[i].window == 0 || v3_answers[i].window == 3600) {
                if (got != want)
                    fail_msg("%s window %u: distinct %.17g, v3 said %.17g", v3_answers[i].key,
                             v3_answers[i].window, got, want);
            } else if (!(got >= want && got <= nx_summary_distinct(&hour))) {
                fail_msg("%s window %u: distinct %.17g, v3 said %.17g (1h: %.17g)",
                         v3_answers[i].key, v3_answers[i].window, got, want,
                         nx_summary_distinct(&hour));
            }
            nx_summary_free(&out);
            nx_summary_free(&hour);
        }
        /* pass 2: the same answers from a re-encoding in the current version */
        nx_buf buf = {0};
        assert_int_equal(nx_engine_encode(e, &buf), 0);
        assert_int_equal(buf.data[4], 10); /* frame version */
        nx_engine *f = NULL;
        assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &f), 0);
        nx_buf_free(&buf);
        if (pass == 0)
            engines_equal(e, f, v3_now_ms);
        nx_engine_destroy(e);
        e = f;
        t = nx_engine_tenant_find(e, "legacy", 6);
        assert_non_null(t);
    }
    /* and it keeps going: a new member 20 s later is the 10 s window's only one */
    nx_stream *s = nx_tenant_stream_find(t, "ips", 3);
    nx_update u;
    memset(&u, 0, sizeof u);
    u.weight = 1;
    u.member = "brand-new";
    u.member_len = 9;
    assert_int_equal(nx_stream_update(s, &u, v3_now_ms + 20000), 0);
    nx_summary out;
    assert_int_equal(nx_stream_read(s, 10, v3_now_ms + 20000, &out), 0);
    assert_true(out.count == 1);
    assert_true(fabs(nx_summary_distinct(&out) - 1) < 0.01);
    nx_summary_free(&out);
    nx_engine_destroy(e);
}

/* ---- version 4 snapshots ---------------------------------------------------- */

/* Two window reads that must agree on everything but the top-k layout:
 * count/sum/mean/m2 to 1e-9, min/max and quantiles exactly, distinct
 * exactly, and every member both top-k lists report with counts whose
 * SpaceSaving ranges [count - error, count] overlap. */
static void summaries_agree(const nx_summary *a, const nx_summary *b, const char *what)
{
    double tol = 1e-9 * (fabs(a->count) > 1 ? fabs(a->count) : 1);
    if (!(fabs(a->count - b->count) <= tol))
        fail_msg("%s: count %.17g vs %.17g", what, a->count, b->count);
    if (!(fabs(a->sum - b->sum) <= 1e-9 * (fabs(a->sum) > 1 ? fabs(a->sum) : 1)))
        fail_msg("%s: sum %.17g vs %.17g", what, a->sum, b->sum);
    if (a->count > 0 && !(a->min == b->min && a->max == b->max))
        fail_msg("%s: min/max %.17g/%.17g vs %.17g/%.17g", what, a->min, a->max, b->min, b->max);
    for (double q = 0; q <= 1.0; q += 0.125) {
        double x = nx_summary_quantile(a, q), y = nx_summary_quantile(b, q);
        if (!((isnan(x) && isnan(y)) || x == y))
            fail_msg("%s: q%.3f %.17g vs %.17g", what, q, x, y);
    }
    double x = nx_summary_distinct(a), y = nx_summary_distinct(b);
    if (!((isnan(x) && isnan(y)) || x == y))
        fail_msg("%s: distinct %.17g vs %.17g", what, x, y);
    assert_true((a->topk == NULL) == (b->topk == NULL));
    if (a->topk) {
        nx_topk_item ia[128], ib[128];
        size_t na = nx_topk_list(a->topk, ia, 128), nb = nx_topk_list(b->topk, ib, 128);
        assert_true(na > 0 && nb > 0);
        for (size_t i = 0; i < na; i++)
            for (size_t j = 0; j < nb; j++) {
                if (ia[i].member_len != ib[j].member_len ||
                    memcmp(ia[i].member, ib[j].member, ia[i].member_len))
                    continue;
                if (ia[i].count - ia[i].error > ib[j].count + 1e-9 ||
                    ib[j].count - ib[j].error > ia[i].count + 1e-9)
                    fail_msg("%s: top-k %.*s %.17g(-%.17g) vs %.17g(-%.17g)", what,
                             (int)ia[i].member_len, ia[i].member, ia[i].count, ia[i].error,
                             ib[j].count, ib[j].error);
            }
    }
}

/* tests/data/engine_v4.bin holds phase A of engine_v4_events.h as the
 * version-4 engine encoded it (every window folded each second directly).
 * Decoded, then fed phase B, it must answer every window like an engine
 * that took A and B itself — in particular without counting twice the
 * seconds a coarse window held that its finer windows had not yet handed
 * up. Also through a re-encoding in the middle of the hand-over. */
static void test_engine_v4_migration(void **st)
{
    (void)st;
    nx_engine *old = decode_fixture("engine_v4.bin", 4), *ref = NULL;
    assert_int_equal(nx_engine_create(NULL, &ref), 0);
    nx_tenant *tr, *to = nx_engine_tenant_find(old, "legacy", 6);
    assert_non_null(to);
    assert_int_equal(nx_engine_tenant(ref, "legacy", 6, &tr), 0);
    nx_stream *so[3], *sr[3];
    for (int i = 0; i < 3; i++) {
        so[i] = nx_tenant_stream_find(to, v4_keys[i], strlen(v4_keys[i]));
        assert_non_null(so[i]);
        assert_int_equal(nx_tenant_stream(tr, v4_keys[i], strlen(v4_keys[i]), v4_types[i], &sr[i]),
                         0);
    }
    uint64_t st_ref = 4;
    assert_true(v4_feed(sr, 0, V4_SPLIT_SEC, &st_ref) >= 0);
    uint64_t st_old = st_ref;
    static const uint32_t wins[5] = {10, 60, 300, 3600, NX_WINDOW_ALL};
    int reads = 0;
    for (int sec = V4_SPLIT_SEC; sec < V4_END_SEC;) {
        int next = sec + 1 + (int)(sec * 7 % 19);
        if (next > V4_END_SEC)
            next = V4_END_SEC;
        int64_t na = v4_feed(sr, sec, next, &st_ref), nb = v4_feed(so, sec, next, &st_old);
        assert_true(na >= 0 && na == nb);
        for (int i = 0; i < 3; i++)
            for (int w = 0; w < 5; w++) {
                nx_summary x, y;
                char what[64];
                snprintf(what, sizeof what, "%s window %u at +%d s", v4_keys[i], wins[w], next);
                assert_int_equal(nx_stream_read(sr[i], wins[w], na, &x), 0);
                assert_int_equal(nx_stream_read(so[i], wins[w], na, &y), 0);
                summaries_agree(&x, &y, what);
                nx_summary_free(&x);
                nx_summary_free(&y);
                reads++;
            }
        if (sec < V4_SPLIT_SEC + 40 && next >= V4_SPLIT_SEC + 40) {
            /* re-encode in the middle of the hand-over */
            nx_buf buf = {0};
            assert_int_equal(nx_engine_encode(old, &buf), 0);
            nx_engine *f = NULL;
            assert_int_equal(nx_engine_decode(NULL, buf.data, buf.len, &f), 0);
            nx_buf_free(&buf);
            nx_engine_destroy(old);
            old = f;
            to = nx_engine_tenant_find(old, "legacy", 6);
            for (int i = 0; i < 3; i++)
                so[i] = nx_tenant_stream_find(to, v4_keys[i], strlen(v4_keys[i]));
        }
        sec = next;
    }
    assert_true(reads > 100);
    nx_engine_destroy(old);
    nx_engine_destroy(ref);
}

/* Incremental encoding: the bytes finished after many steps, while the
 * engine kept taking events, reads, stream and tenant deletes and new
 * tenants, decode to exactly the state of the begin instant (the same state
 * a one-shot encode taken at begin decodes to). */
/* A step ends after a bounded number of table slots even when it emitted
 * nothing: here every stream but the last few was encoded by copy-on-write,
 * so a byte-bounded step would walk all 20,000 in one go. The result is
 * still exactly the state at begin. */
static void test_engine_step_slot_bound(void **st)
{
    (void)st;
    nx_engine *a;
    nx_tenant *t;
    assert_int_equal(nx_engine_create(NULL, &a), 0);
    assert_int_equal(nx_engine_tenant(a, "one", 3, &t), 0);
    enum { NS = 20000 };
    nx_stream **ss = calloc(NS, sizeof *ss);
    assert_non_null(ss);
    nx_update u = {.value = 1, .weight = 1};
    for (int i = 0; i < NS; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "c%d", i);
        assert_int_equal(nx_tenant_stream(t, key, (size_t)n, NX_TYPE_COUNTER, &ss[i]), 0);
        assert_int_equal(nx_stream_update(ss[i], &u, T0), 0);
    }
    nx_buf at_begin = {0}, inc = {0};
    assert_int_equal(nx_engine_encode(a, &at_begin), 0);
    assert_int_equal(nx_engine_encode_begin(a, 0, NULL, NULL), 0);
    u.value = 5;
    for (int i = 0; i < NS - 3; i++) /* copy-on-write encodes them now */
        assert_int_equal(nx_stream_update(ss[i], &u, T0 + 10), 0);
    bool done = false;
    int steps = 0;
    while (!done) {
        assert_int_equal(nx_engine_encode_step(a, 1u << 30, &inc, &done), 0);
        steps++;
        assert_true(steps < 1000);
    }
    assert_true(steps >= NS / 4096); /* bounded walks, not one */
    nx_engine *from_inc = NULL, *from_begin = NULL;
    assert_int_equal(nx_engine_decode(NULL, inc.data, inc.len, &from_inc), 0);
    assert_int_equal(nx_engine_decode(NULL, at_begin.data, at_begin.len, &from_begin), 0);
    engines_equal(from_begin, from_inc, T0 + 1000);
    nx_engine_destroy(from_inc);
    nx_engine_destroy(from_begin);
    nx_buf_free(&at_begin);
    nx_buf_free(&inc);
    free(ss);
    nx_engine_destroy(a);
}

static void test_engine_incremental_encode(void **st)
{
    (void)st;
    for (int round = 0; round < 3; round++) {
        rng_state = 5000 + (uint64_t)round;
        nx_engine *a;
        assert_int_equal(nx_engine_create(NULL, &a), 0);
        int64_t now = T0;
        drive(a, 900 + (uint64_t)round, 4000 * scale(), &now);
        nx_buf at_begin = {0};
        assert_int_equal(nx_engine_encode(a, &at_begin), 0);
        int64_t begin_now = now;
        assert_int_equal(nx_engine_encode_begin(a, 0, NULL, NULL), 0);
        assert_true(nx_engine_encoding(a));
        assert_int_equal(nx_engine_encode_begin(a, 0, NULL, NULL), NX_EEXIST);
        nx_buf inc = {0};
        bool done = false;
        int steps = 0;
        for (int k = 0; !done; k++) {
            /* mutate between steps: events and reads on random streams */
            drive(a, 7000 + (uint64_t)(round * 1000 + k), 40, &now);
            if (k == 0) /* all its streams still due */
                assert_int_equal(nx_engine_tenant_delete(a, "t2", 2), 0);
            if (k == 1) {
                nx_tenant *t = nx_engine_tenant_find(a, "t1", 2);
                assert_non_null(t);
                assert_int_equal(nx_tenant_stream_delete(t, "m11|k:v", 7), 0);
            }
            if (k == 2) {
                nx_tenant *t;
                nx_stream *s;
                assert_int_equal(nx_engine_tenant(a, "late-newcomer", 13, &t), 0);
                assert_int_equal(nx_tenant_stream(t, "x", 1, NX_TYPE_COUNTER, &s), 0);
            }
            assert_int_equal(nx_engine_encode_step(a, 2048, &inc, &done), 0);
            steps++;
            assert_true(steps < 100000);
        }
        assert_false(nx_engine_encoding(a));
        assert_true(steps > 3); /* really incremental */
        nx_engine *from_inc = NULL, *from_begin = NULL;
        assert_int_equal(nx_engine_decode(NULL, inc.data, inc.len, &from_inc), 0);
        assert_int_equal(nx_engine_decode(NULL, at_begin.data, at_begin.len, &from_begin), 0);
        assert_null(nx_engine_tenant_find(from_inc, "late-newcomer", 13));
        engines_equal(from_begin, from_inc, begin_now + 1000);
        engines_equal(from_inc, from_begin, begin_now + 1000);
        /* a one-step encode right away equals a one-shot encode */
        nx_buf one = {0}, again = {0};
        assert_int_equal(nx_engine_encode_begin(a, 0, NULL, NULL), 0);
        assert_int_equal(nx_engine_encode_step(a, SIZE_MAX, &one, &done), 0);
        assert_true(done);
        assert_int_equal(nx_engine_encode(a, &again), 0);
        assert_int_equal(one.len, again.len);
        assert_memory_equal(one.data, again.data, one.len);
        /* abort leaves the engine able to begin again */
        assert_int_equal(nx_engine_encode_begin(a, 0, NULL, NULL), 0);
        nx_engine_encode_abort(a);
        assert_false(nx_engine_encoding(a));
        nx_buf_free(&one);
        nx_buf_free(&again);
        nx_buf_free(&inc);
        nx_buf_free(&at_begin);
        nx_engine_destroy(from_inc);
        nx_engine_destroy(from_begin);
        nx_engine_destroy(a);
    }
}

/* The sink of test_engine_chunked_encode: appends each piece to `whole`,
 * and hands every other piece's memory back to be encoded on. */
typedef struct chunk_sink {
    nx_buf whole;
    size_t chunk;
    int pieces, reused, small, fail_at;
    uint8_t *handed_back;
} chunk_sink;

static int collect_piece(void *arg, nx_buf *piece)
{
    chunk_sink *c = arg;
    if (c->fail_at && c->pieces + 1 == c->fail_at)
        return NX_ENOMEM;
    if (piece->len < c->chunk)
        c->small++; /* only the last may be */
    if (c->handed_back && piece->data == c->handed_back)
        c->reused++;
    c->pieces++;
    assert_int_equal(nx_buf_put(&c->whole, piece->data, piece->len), 0);
    if (c->pieces % 2) {
        piece->len = 0;
        c->handed_back = piece->data;
    } else {
        nx_buf_free(piece);
    }
    return 0;
}

/* A chunked incremental encoding: pieces of at least the chunk size go to
 * the sink as they fill — in steps and in copy-on-write encodes on updates
 * between them — buffers handed back are encoded on, and the pieces'
 * concatenation is the encoding of the begin instant (compared by
 * decoding: streams come in another order). A failing sink fails it. */
static void test_engine_chunked_encode(void **st)
{
    (void)st;
    enum { CHUNK = 4096 };
    rng_state = 777;
    nx_engine *a;
    assert_int_equal(nx_engine_create(NULL, &a), 0);
    int64_t now = T0;
    drive(a, 4242, 4000 * scale(), &now);
    nx_tenant *bulk; /* many small streams besides drive's few large ones */
    assert_int_equal(nx_engine_tenant(a, "bulk", 4, &bulk), 0);
    for (int i = 0; i < 3000; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "c%d", i);
        nx_stream *s;
        nx_update u = {.value = i, .weight = 1};
        assert_int_equal(nx_tenant_stream(bulk, key, (size_t)n, types[i % 6], &s), 0);
        if (types[i % 6] == NX_TYPE_SET) {
            u.member = key;
            u.member_len = (uint32_t)n;
        }
        assert_int_equal(nx_stream_update(s, &u, now), 0);
    }
    nx_buf at_begin = {0}, out = {0};
    assert_int_equal(nx_engine_encode(a, &at_begin), 0);
    int64_t begin_now = now;
    chunk_sink c = {.chunk = CHUNK};
    assert_int_equal(nx_engine_encode_begin(a, CHUNK, NULL, NULL), NX_EINVAL);
    assert_int_equal(nx_engine_encode_begin(a, 0, collect_piece, &c), NX_EINVAL);
    assert_int_equal(nx_engine_encode_begin(a, CHUNK, collect_piece, &c), 0);
    bool done = false;
    int between = 0;
    for (int k = 0; !done; k++) {
        int before = c.pieces;
        drive(a, 9000 + (uint64_t)k, 40, &now);
        between += c.pieces > before; /* copy-on-write filled a piece */
        assert_int_equal(nx_engine_encode_step(a, 1024, &out, &done), 0);
        assert_int_equal(out.len, 0); /* everything went to the sink */
        assert_true(k < 1000000);
    }
    print_message("chunked encode: %d pieces (%d filled between steps), %zu bytes\n", c.pieces,
                  between, c.whole.len);
    assert_true(c.pieces > 20);
    assert_true(between > 0);
    assert_true(c.reused > 1);
    assert_true(c.small <= 1);
    assert_int_equal(c.whole.len, at_begin.len); /* same streams, same bytes each */
    nx_engine *from_inc = NULL, *from_begin = NULL;
    assert_int_equal(nx_engine_decode(NULL, c.whole.data, c.whole.len, &from_inc), 0);
    assert_int_equal(nx_engine_decode(NULL, at_begin.data, at_begin.len, &from_begin), 0);
    engines_equal(from_begin, from_inc, begin_now + 1000);
    engines_equal(from_inc, from_begin, begin_now + 1000);
    /* one flipped byte anywhere in the concatenation is caught by the CRC */
    c.whole.data[c.whole.len / 2] ^= 0x40;
    nx_engine *bad = NULL;
    assert_int_not_equal(nx_engine_decode(NULL, c.whole.data, c.whole.len, &bad), 0);
    assert_null(bad);
    nx_engine_destroy(from_inc);
    nx_engine_destroy(from_begin);
    nx_buf_free(&c.whole);
    /* a sink that fails: the final step reports it, and the engine can
     * begin again */
    chunk_sink f = {.chunk = CHUNK, .fail_at = 3};
    assert_int_equal(nx_engine_encode_begin(a, CHUNK, collect_piece, &f), 0);
    int rc = 0;
    for (done = false; !done && rc == 0;)
        rc = nx_engine_encode_step(a, 1024, &out, &done);
    assert_int_equal(rc, NX_ENOMEM);
    assert_false(nx_engine_encoding(a));
    assert_int_equal(f.pieces, 2);
    nx_buf_free(&f.whole);
    assert_int_equal(nx_engine_encode_begin(a, 0, NULL, NULL), 0);
    nx_engine_encode_abort(a);
    nx_buf_free(&at_begin);
    nx_engine_destroy(a);
}

/* Reads every window and all-time of every stream (after a decode that
 * accepted corrupted bytes: a query must not crash either). */
typedef struct read_all_arg {
    int64_t now;
    int reads;
} read_all_arg;

static int read_all_stream(nx_stream *s, void *arg)
{
    read_all_arg *r = arg;
    static const uint32_t windows[] = {NX_WINDOW_ALL, 10, 60, 300, 3600};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        nx_summary out;
        if (nx_stream_read(s, windows[w], r->now, &out) == 0) {
            nx_summary_free(&out);
            r->reads++;
        }
    }
    return 0;
}

static int read_all_tenant(nx_tenant *t, void *arg)
{
    nx_tenant_foreach_stream(t, read_all_stream, arg);
    return 0;
}

static void test_engine_corrupt(void **st)
{
    (void)st;
    rng_state = 42;
    nx_engine *a;
    assert_int_equal(nx_engine_create(NULL, &a), 0);
    int64_t now = T0;
    drive(a, 9, 400, &now);
    nx_buf buf = {0};
    assert_int_equal(nx_engine_encode(a, &buf), 0);
    nx_engine *sentinel = (nx_engine *)(uintptr_t)0x1234, *out = sentinel;
    /* every truncation */
    size_t step = buf.len > 4000 ? buf.len / 4000 : 1;
    for (size_t n = 0; n < buf.len; n += step) {
        assert_true(nx_engine_decode(NULL, buf.data, n, &out) < 0);
        assert_ptr_equal(out, sentinel);
    }
    /* flipped bytes: the CRC catches them */
    uint8_t *copy = malloc(buf.len);
    assert_non_null(copy);
    for (int i = 0; i < 300; i++) {
        memcpy(copy, buf.data, buf.len);
        size_t pos = (size_t)(rng() % buf.len);
        copy[pos] ^= (uint8_t)(1 + rng() % 255);
        assert_true(nx_engine_decode(NULL, copy, buf.len, &out) < 0);
        assert_ptr_equal(out, sentinel);
    }
    /* flipped bytes with a recomputed CRC: structure checks, never a crash */
    int rejected = 0, accepted = 0;
    for (int i = 0; i < 400 * scale(); i++) {
        memcpy(copy, buf.data, buf.len);
        int flips = 1 + (int)(rng() % 3);
        for (int f = 0; f < flips; f++) {
            size_t pos = 5 + (size_t)(rng() % (buf.len - 9));
            copy[pos] ^= (uint8_t)(1 + rng() % 255);
        }
        uint32_t crc = nx_crc32(copy, buf.len - 4);
        memcpy(copy + buf.len - 4, &crc, 4);
        nx_engine *o = NULL;
        int rc = nx_engine_decode(NULL, copy, buf.len, &o);
        if (rc < 0) {
            assert_null(o);
            rejected++;
        } else {
            /* a flip inside a value may still be a valid engine: use it */
            accepted++;
            nx_buf b2 = {0};
            assert_int_equal(nx_engine_encode(o, &b2), 0);
            nx_buf_free(&b2);
            read_all_arg ra = {now, 0};
            nx_engine_foreach_tenant(o, read_all_tenant, &ra);
            nx_engine_destroy(o);
        }
    }
    assert_true(rejected > 0);
    print_message("corrupted snapshots: %d rejected, %d decoded as valid\n", rejected, accepted);
    /* garbage */
    for (int i = 0; i < 200; i++) {
        size_t n = (size_t)(rng() % 2000);
        for (size_t j = 0; j < n && j < buf.len; j++)
            copy[j] = (uint8_t)rng();
        assert_true(nx_engine_decode(NULL, copy, n < buf.len ? n : buf.len, &out) < 0);
    }
    assert_ptr_equal(out, sentinel);
    /* another window configuration cannot restore this state */
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    cfg.windows[1].bucket_s = 10;
    assert_int_equal(nx_engine_decode(&cfg, buf.data, buf.len, &out), NX_EINVAL);
    /* tolerances and limits may change */
    nx_engine_config_default(&cfg);
    cfg.late_tolerance_s = 120;
    cfg.max_streams_per_tenant = 3;
    assert_int_equal(nx_engine_decode(&cfg, buf.data, buf.len, &out), 0);
    assert_ptr_not_equal(out, sentinel);
    nx_engine_destroy(out);
    free(copy);
    nx_buf_free(&buf);
    nx_engine_destroy(a);
}

static void test_summary_roundtrip(void **st)
{
    (void)st;
    rng_state = 7;
    nx_engine *a;
    assert_int_equal(nx_engine_create(NULL, &a), 0);
    int64_t now = T0;
    drive(a, 3, 2000, &now);
    nx_tenant *t = nx_engine_tenant_find(a, "t1", 2);
    assert_non_null(t);
    for (unsigned si = 0; si < 12; si++) {
        char key[32];
        int kn = snprintf(key, sizeof(key), "m%u|k:v", si);
        nx_stream *s = nx_tenant_stream_find(t, key, (size_t)kn);
        if (!s)
            continue;
        nx_summary x, y;
        assert_int_equal(nx_stream_read(s, si % 2 ? 60 : NX_WINDOW_ALL, now, &x), 0);
        nx_buf buf = {0};
        assert_int_equal(nx_summary_encode(&x, &buf), 0);
        assert_int_equal(nx_summary_decode(buf.data, buf.len, &y), 0);
        summary_equal(&x, &y);
        nx_summary_free(&y);
        /* truncations and flips */
        nx_summary z;
        memset(&z, 0xAB, sizeof(z));
        nx_summary zc = z;
        for (size_t n = 0; n < buf.len; n++)
            assert_true(nx_summary_decode(buf.data, n, &z) < 0);
        for (size_t i = 0; i < buf.len; i++) {
            buf.data[i] ^= 0x5A;
            assert_true(nx_summary_decode(buf.data, buf.len, &z) < 0);
            buf.data[i] ^= 0x5A;
        }
        assert_memory_equal(&z, &zc, sizeof(z));
        nx_buf_free(&buf);
        nx_summary_free(&x);
    }
    /* an empty summary */
    nx_summary e0, e1;
    nx_summary_init(&e0, NX_TYPE_SET, 0);
    nx_buf buf = {0};
    assert_int_equal(nx_summary_encode(&e0, &buf), 0);
    assert_int_equal(nx_summary_decode(buf.data, buf.len, &e1), 0);
    summary_equal(&e0, &e1);
    nx_buf_free(&buf);
    nx_engine_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_roundtrip),
        cmocka_unit_test(test_engine_v8_rings),
        cmocka_unit_test(test_engine_v10_wide),
        cmocka_unit_test(test_engine_pending_roundtrip),
        cmocka_unit_test(test_engine_ring_phases),
        cmocka_unit_test(test_engine_qbuf_roundtrip),
        cmocka_unit_test(test_engine_bin_log),
        cmocka_unit_test(test_engine_bin_log_idle),
        cmocka_unit_test(test_engine_member_log),
        cmocka_unit_test(test_all_time_grave),
        cmocka_unit_test(test_engine_incremental_encode),
        cmocka_unit_test(test_engine_step_slot_bound),
        cmocka_unit_test(test_engine_chunked_encode),
        cmocka_unit_test(test_engine_corrupt),
        cmocka_unit_test(test_engine_v3_sets),
        cmocka_unit_test(test_engine_v4_migration),
        cmocka_unit_test(test_summary_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
