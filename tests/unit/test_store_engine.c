/*
 * test_store_engine.c — durability with the real engine: batches of events
 * (counters, timers, gauges, sets over many tenants and streams) go through
 * the WAL and into an nx_engine; snapshots are nx_engine_encode() bytes.
 * After a restart (snapshot + WAL tail) the recovered engine must answer
 * exactly like a reference engine that applied every batch once, directly:
 * same streams, same all-time and 1m summaries, same quantiles, same
 * distinct counts, and the same encoding.
 *
 * The batch payload here is a tiny test format (the daemon logs StatsD / NXB
 * bytes and replays them through nx_applier; this test stays independent of
 * the server): repeated { u8 type, u8 key_len, key, f64 value, u8 member_len,
 * member }, tenant = the record's tenant.
 */
#include "test_store_common.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/nx_codec.h"
#include "store/nx_store.h"

static void quiet(void *arg, int level, const char *msg)
{
    (void)arg;
    (void)level;
    (void)msg;
}

typedef struct eng {
    nx_engine_config cfg;
    nx_engine *e;
} eng;

static int eng_apply(void *arg, const nx_wal_record *r)
{
    eng *g = arg;
    nx_tenant *t;
    int rc = nx_engine_tenant(g->e, r->tenant, r->tenant_len, &t);
    if (rc)
        return rc;
    nx_rbuf in = nx_rbuf_make(r->payload, r->payload_len);
    while (in.n && !in.err) {
        uint8_t type = nx_rbuf_u8(&in);
        uint8_t kl = nx_rbuf_u8(&in);
        const uint8_t *key = nx_rbuf_take(&in, kl);
        double v = nx_rbuf_f64(&in);
        uint8_t ml = nx_rbuf_u8(&in);
        const uint8_t *mem = nx_rbuf_take(&in, ml);
        if (in.err)
            return NX_ECORRUPT;
        nx_stream *s;
        if ((rc = nx_tenant_stream(t, (const char *)key, kl, (nx_type)type, &s)) != 0)
            return rc;
        nx_update u = {.value = v, .weight = 1, .member = (const char *)mem, .member_len = ml};
        rc = nx_stream_update(s, &u, r->recv_ms);
        if (rc && rc != NX_ETOOLATE && rc != NX_EFUTURE)
            return rc;
    }
    return in.err ? NX_ECORRUPT : 0;
}

static int eng_encode(void *arg, nx_buf *out)
{
    eng *g = arg;
    return nx_engine_encode(g->e, out);
}

static int eng_encode_begin(void *arg, size_t chunk_bytes, nx_encode_sink sink, void *sink_arg)
{
    eng *g = arg;
    return nx_engine_encode_begin(g->e, chunk_bytes, sink, sink_arg);
}

static int eng_encode_step(void *arg, size_t max_bytes, nx_buf *out, bool *done)
{
    eng *g = arg;
    return nx_engine_encode_step(g->e, max_bytes, out, done);
}

static void eng_encode_abort(void *arg)
{
    eng *g = arg;
    nx_engine_encode_abort(g->e);
}

static int eng_load(void *arg, const uint8_t *raw, size_t n, uint64_t lsn)
{
    (void)lsn;
    eng *g = arg;
    nx_engine *e2;
    int rc = nx_engine_decode(&g->cfg, raw, n, &e2);
    if (rc)
        return rc;
    nx_engine_destroy(g->e);
    g->e = e2;
    return 0;
}

static void eng_init(eng *g)
{
    nx_engine_config_default(&g->cfg);
    assert_int_equal(nx_engine_create(&g->cfg, &g->e), 0);
}

/* Batch b: 40 events over 8 tenants x 20 metrics x 3 hosts x 5 types. */
static void make_batch(uint32_t b, nx_buf *p, char *tenant, uint8_t *tl, int64_t *recv)
{
    p->len = 0;
    *tl = (uint8_t)snprintf(tenant, 16, "ten%u", b % 8);
    *recv = 1700000000000 + (int64_t)b * 37;
    uint64_t x = b * 0x9E3779B97F4A7C15ull + 11;
    for (int i = 0; i < 40; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint8_t type = (uint8_t)(1 + x % 4); /* counter, gauge, timer, histogram */
        if (x % 7 == 0)
            type = NX_TYPE_SET;
        char key[64];
        int kl = snprintf(key, sizeof key, "m%u.%s|host:h%u", (unsigned)(x >> 8) % 20,
                          nx_type_name((nx_type)type), (unsigned)(x >> 20) % 3);
        double v = (double)((x >> 24) % 100000) / 10.0 + 0.1;
        char mem[16];
        int ml = type == NX_TYPE_SET ? snprintf(mem, sizeof mem, "u%u", (unsigned)(x >> 30) % 500) : 0;
        nx_buf_u8(p, type);
        nx_buf_u8(p, (uint8_t)kl);
        nx_buf_put(p, key, (size_t)kl);
        nx_buf_f64(p, v);
        nx_buf_u8(p, (uint8_t)ml);
        nx_buf_put(p, mem, (size_t)ml);
    }
}

/* Appends and applies batches [from, to) to g (through the store) and ref;
 * with tick, the store ticks after every batch (an incremental snapshot in
 * progress then advances one step between batches). */
static void feed_ticking(nx_store *st, eng *g, eng *ref, uint32_t from, uint32_t to, bool tick)
{
    nx_buf p = {0};
    for (uint32_t b = from; b < to; b++) {
        char tenant[16];
        uint8_t tl;
        int64_t recv;
        make_batch(b, &p, tenant, &tl, &recv);
        nx_wal_record r = {.recv_ms = recv, .tenant = tenant, .tenant_len = tl, .payload = p.data,
                           .payload_len = (uint32_t)p.len};
        uint64_t lsn;
        assert_int_equal(nx_store_append(st, &r, &lsn), 0);
        assert_int_equal(eng_apply(g, &r), 0);
        assert_int_equal(eng_apply(ref, &r), 0);
        if (b % 16 == 15)
            assert_int_equal(nx_store_commit(st, false, NULL), 0);
        if (tick)
            assert_int_equal(nx_store_tick(st, recv), 0);
    }
    assert_int_equal(nx_store_commit(st, true, NULL), 0);
    nx_buf_free(&p);
}

static void feed(nx_store *st, eng *g, eng *ref, uint32_t from, uint32_t to)
{
    feed_ticking(st, g, ref, from, to, false);
}

typedef struct cmp_ctx {
    nx_engine *other;
    int64_t now;
    uint64_t streams;
    int diffs;
} cmp_ctx;

static int same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b || (isinf(a) && isinf(b) && (a > 0) == (b > 0));
}

static nx_tenant *g_cur_tenant_other;

static int cmp_stream(nx_stream *s, void *arg)
{
    cmp_ctx *c = arg;
    size_t kl;
    const char *k = nx_stream_key(s, &kl);
    nx_stream *o = nx_tenant_stream_find(g_cur_tenant_other, k, kl);
    c->streams++;
    if (!o || nx_stream_type(o) != nx_stream_type(s)) {
        c->diffs++;
        return 0;
    }
    uint32_t wins[] = {NX_WINDOW_ALL, 60};
    for (int w = 0; w < 2; w++) {
        nx_summary a, b;
        assert_int_equal(nx_stream_read(s, wins[w], c->now, &a), 0);
        assert_int_equal(nx_stream_read(o, wins[w], c->now, &b), 0);
        if (!same(a.count, b.count) || !same(a.sum, b.sum) || !same(a.min, b.min) || !same(a.max, b.max) ||
            !same(a.m2, b.m2) || !same(a.last, b.last) ||
            !same(nx_summary_quantile(&a, 0.5), nx_summary_quantile(&b, 0.5)) ||
            !same(nx_summary_quantile(&a, 0.99), nx_summary_quantile(&b, 0.99)) ||
            !same(nx_summary_distinct(&a), nx_summary_distinct(&b))) {
            if (c->diffs < 5)
                print_message("differs: %.*s window %u count %g vs %g sum %g vs %g\n", (int)kl, k, wins[w],
                              a.count, b.count, a.sum, b.sum);
            c->diffs++;
        }
        nx_summary_free(&a);
        nx_summary_free(&b);
    }
    return 0;
}

static int cmp_tenant(nx_tenant *t, void *arg)
{
    cmp_ctx *c = arg;
    const char *id = nx_tenant_id(t);
    g_cur_tenant_other = nx_engine_tenant_find(c->other, id, strlen(id));
    if (!g_cur_tenant_other) {
        c->diffs++;
        return 0;
    }
    nx_tenant_foreach_stream(t, cmp_stream, c);
    return 0;
}

/* Every stream of ref reads the same in got (and the counts match). */
static void expect_same(nx_engine *ref, nx_engine *got, int64_t now)
{
    assert_int_equal(nx_engine_tenant_count(ref), nx_engine_tenant_count(got));
    cmp_ctx c = {.other = got, .now = now};
    nx_engine_foreach_tenant(ref, cmp_tenant, &c);
    cmp_ctx c2 = {.other = ref, .now = now};
    nx_engine_foreach_tenant(got, cmp_tenant, &c2);
    assert_int_equal(c.diffs, 0);
    assert_int_equal(c2.diffs, 0);
    assert_int_equal(c.streams, c2.streams);
    assert_true(c.streams > 100);
}

/* Both snapshot modes must give the same recoveries: the one-shot encode,
 * and the incremental one (state != NULL), whose first snapshot (lsn 240)
 * is encoded step by step WHILE batches 240..399 are applied: recovery from
 * it (the corrupt-newest fallback below) replays 280 batches onto it and
 * must match the reference exactly. */
static void test_engine_snapshot_and_replay(void **state)
{
    bool incremental = *state != NULL;
    char *dir = ts_tmpdir("steng");
    eng g, ref;
    eng_init(&g);
    eng_init(&ref);
    nx_store_ops ops = {.load = eng_load, .apply = eng_apply, .encode = eng_encode, .arg = &g};
    if (incremental) {
        ops.encode_begin = eng_encode_begin;
        ops.encode_step = eng_encode_step;
        ops.encode_abort = eng_encode_abort;
    }
    nx_store_options o = {.data_dir = dir, .shard = 0, .segment_bytes = 65536, .log = quiet};
    if (incremental)
        o.snapshot_piece_bytes = 512; /* many pieces streamed to the writer */
    nx_store *st;
    assert_int_equal(nx_store_open(&o, &ops, NULL, &st), 0);
    feed(st, &g, &ref, 0, 240);
    if (incremental) {
        nx_store_request_snapshot(st);
        assert_int_equal(nx_store_tick(st, 1700000000000), 0); /* begins at lsn 240 */
        assert_true(nx_store_encoding(st));
        feed_ticking(st, &g, &ref, 240, 400, true);
        for (int i = 0; i < 5000 && (nx_store_encoding(st) || nx_store_snapshots_done(st) < 1); i++) {
            usleep(1000);
            assert_int_equal(nx_store_tick(st, 1700000000000), 0);
        }
        assert_int_equal(nx_store_snapshots_done(st), 1);
        nx_store_stats s1;
        nx_store_get_stats(st, &s1);
        assert_int_equal(s1.last_snapshot_lsn, 240);
        assert_true(s1.last_encode_steps > 3); /* it really was sliced */
        print_message("incremental snapshot: %u steps, longest %.2f ms, total %.2f ms\n",
                      s1.last_encode_steps, s1.last_encode_ms, s1.last_encode_total_ms);
    } else {
        assert_int_equal(nx_store_snapshot_now(st, true), 0);
        feed(st, &g, &ref, 240, 400);
    }
    assert_int_equal(nx_store_snapshot_now(st, true), 0);
    feed(st, &g, &ref, 400, 520);
    nx_store_stats ss;
    nx_store_get_stats(st, &ss);
    print_message("engine snapshot: %llu -> %llu bytes, encode %.2f ms, write %.2f ms\n",
                  (unsigned long long)ss.last_raw_bytes, (unsigned long long)ss.last_comp_bytes,
                  ss.last_encode_ms, ss.last_write_ms);
    nx_store_close(st);
    int64_t now = 1700000000000 + 520 * 37 + 1000;

    /* Restart: snapshot at lsn 400 + 120 replayed batches. */
    nx_engine_destroy(g.e);
    eng_init(&g);
    nx_store_recovery rep;
    assert_int_equal(nx_store_open(&o, &ops, &rep, &st), 0);
    assert_int_equal(rep.snapshot_lsn, 400);
    assert_int_equal(rep.wal.replayed, 120);
    expect_same(ref.e, g.e, now);
    /* Identical state encodes identically. */
    nx_buf a = {0}, b = {0};
    assert_int_equal(nx_engine_encode(ref.e, &a), 0);
    assert_int_equal(nx_engine_encode(g.e, &b), 0);
    assert_int_equal(a.len, b.len);
    nx_buf_free(&a);
    nx_buf_free(&b);
    nx_store_close(st);

    /* Corrupt newest snapshot: fall back to lsn 240 and replay 280. */
    char p[600];
    snprintf(p, sizeof p, "%s/shard-0/snap/snap-%020d.nxs", dir, 400);
    assert_int_equal(ts_flip(p, 100, 0x80), 0);
    nx_engine_destroy(g.e);
    eng_init(&g);
    assert_int_equal(nx_store_open(&o, &ops, &rep, &st), 0);
    assert_int_equal(rep.snapshot_lsn, 240);
    assert_int_equal(rep.wal.replayed, 280);
    expect_same(ref.e, g.e, now);
    nx_store_close(st);

    nx_engine_destroy(g.e);
    nx_engine_destroy(ref.e);
    ts_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_engine_snapshot_and_replay, NULL),
        cmocka_unit_test_prestate(test_engine_snapshot_and_replay, (void *)1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
