/*
 * test_apply.c — a batch applies exactly as its lines one by one.
 *
 * nx_applier_apply() keeps per-batch state (the tenant of the previous line,
 * the gate's answer for it) and works in chunks of up to NX_APPLY_CHUNK
 * lines, each line in three stages (parse and prefetch the table slot; find
 * the stream and prefetch it; apply), ending a chunk early when its keys
 * fill the key arena. The reference is the same applier fed one line per
 * batch, where no state carries over. Random datagrams (several tenants and metrics, every type,
 * gauge deltas, sample rates, multi-value lines, malformed lines, type
 * clashes, a stream quota and an events/s quota in the gate) must give the
 * same results (lines, events, rejections by reason) and byte-identical
 * engine encodings. Gauges make order visible: their last value is the last
 * line's. test_chunks_and_long_keys sends datagrams of up to 120 lines, some
 * with ~1.5 KB metric names, so that chunks end both on the line count and
 * on the arena.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nexus.h"
#include "server/nx_apply.h"
#include "test_rng.h"


/* The gate: tenant tN has number N, at most 12 streams (of 15 it sees); take() grants from a
 * per-tenant budget of 120 events (deterministic, so both runs agree). */
typedef struct gate_state {
    uint32_t budget[8];
} gate_state;

static int gate(void *arg, const nx_batch *b, const char *id, size_t len, nx_tenant_gate *g)
{
    (void)arg;
    (void)b;
    if (len != 2 || id[0] != 't' || id[1] < '0' || id[1] > '7')
        return NX_SD_UNKNOWN_TENANT;
    g->num = (uint32_t)(id[1] - '0');
    g->max_streams = 12;
    g->max_bytes = 0;
    return NX_SD_OK;
}

static uint32_t take(void *arg, uint32_t num, uint32_t n, int64_t recv_ms)
{
    (void)recv_ms;
    gate_state *gs = arg;
    uint32_t k = n < gs->budget[num] ? n : gs->budget[num];
    gs->budget[num] -= k;
    return k;
}

/* One random line into p; returns its length. long_names: some metric
 * names are ~1.5 KB (still one of a few streams per tenant). */
static int random_line(char *p, size_t cap, int long_names)
{
    static const char *types[] = {"c", "g", "ms", "h", "d", "s"};
    uint64_t r = rng();
    if (r % 23 == 0)
        return snprintf(p, cap, "garbage-%u", (unsigned)(r >> 8) % 100);
    int metric = (int)((r >> 8) % 5), type;
    static const int base[5] = {0, 1, 2, 4, 5}; /* m0 c, m1 g, m2 ms, m3 d, m4 s */
    type = base[metric];
    if (r % 17 == 0) /* the same metric with another type: a clash */
        type = (type + 1 + (int)((r >> 40) % 5)) % 6;
    int n = snprintf(p, cap, "m%d", metric);
    if (long_names && (r >> 60) % 2 == 0) {
        memset(p + n, 'x', 1500);
        n += 1500;
    }
    n += snprintf(p + n, cap - (size_t)n, ":");
    int nv = 1 + (int)((r >> 24) % 3);
    for (int i = 0; i < nv; i++) {
        uint64_t v = rng();
        if (type == 5)
            n += snprintf(p + n, cap - (size_t)n, "%suser%u", i ? ":" : "", (unsigned)(v % 50));
        else if (type == 1 && v % 3 == 0)
            n += snprintf(p + n, cap - (size_t)n, "%s%c%u", i ? ":" : "", v % 2 ? '+' : '-',
                          (unsigned)(v >> 8) % 10);
        else
            n += snprintf(p + n, cap - (size_t)n, "%s%.3f", i ? ":" : "",
                          (double)(v % 100000) / 7.0);
    }
    n += snprintf(p + n, cap - (size_t)n, "|%s", types[type]);
    if (type != 1 && (r >> 32) % 4 == 0)
        n += snprintf(p + n, cap - (size_t)n, "|@0.5");
    if ((r >> 36) % 8 != 0) /* else the listener's default tenant t0 */
        n += snprintf(p + n, cap - (size_t)n, "|#host:h%u,tenant:t%u", (unsigned)(r >> 44) % 3,
                      (unsigned)(r >> 48) % 8 + ((r >> 56) % 29 == 0 ? 1 : 0));
    return n;
}

typedef struct side {
    nx_engine *e;
    nx_applier ap;
    gate_state gs;
    nx_apply_result res;
} side;

static void side_init(side *sd)
{
    nx_statsd_limits lim;
    nx_statsd_limits_default(&lim);
    assert_int_equal(nx_engine_create(NULL, &sd->e), 0);
    assert_int_equal(nx_applier_init(&sd->ap, sd->e, &lim), 0);
    for (int i = 0; i < 8; i++)
        sd->gs.budget[i] = 120;
    sd->ap.gate = gate;
    sd->ap.take = take;
    sd->ap.gate_arg = &sd->gs;
    memset(&sd->res, 0, sizeof(sd->res));
}

static void side_free(side *sd)
{
    nx_applier_free(&sd->ap);
    nx_engine_destroy(sd->e);
}

static void apply(side *sd, const char *data, size_t len, int64_t now)
{
    nx_batch b = {.format = NX_BATCH_STATSD, .source = NX_SRC_UDP, .tenant = "t0",
                  .tenant_len = 2, .recv_ms = now, .data = (const uint8_t *)data, .len = len};
    assert_int_equal(nx_applier_apply(&sd->ap, &b, &sd->res), 0);
}

/* rounds x 30 random datagrams of 1..max_lines lines, whole vs line by line. */
static void batches_vs_lines(int rounds, int max_lines, int long_names)
{
    static char buf[262144];
    for (int round = 0; round < rounds; round++) {
        rng_state = 0xA11CE + (uint64_t)round + (uint64_t)long_names * 1000;
        side whole, single;
        side_init(&whole);
        side_init(&single);
        int64_t now = 1700000000000ll;
        uint64_t chunks_by_arena = 0;
        for (int dgram = 0; dgram < 30; dgram++) {
            size_t n = 0, room = 0;
            int nlines = 1 + (int)(rng() % (uint64_t)max_lines), in_chunk = 0;
            for (int i = 0; i < nlines; i++) {
                size_t l0 = n;
                n += (size_t)random_line(buf + n, sizeof(buf) - n - 2, long_names);
                /* the applier's arena rule (nx_apply.c key_bound), counted
                 * to show that this workload reaches it */
                size_t bound = n - l0 + 2 * (64 + 1) + 16;
                if (in_chunk == NX_APPLY_CHUNK || room < bound) {
                    if (in_chunk && in_chunk < NX_APPLY_CHUNK)
                        chunks_by_arena++;
                    in_chunk = 0;
                    room = whole.ap.key_cap;
                }
                in_chunk++;
                room -= n - l0 + 1;
                buf[n++] = rng() % 11 ? '\n' : '\r';
                if (buf[n - 1] == '\r')
                    buf[n++] = '\n';
            }
            apply(&whole, buf, n, now);
            /* the reference: each line its own batch */
            for (size_t p = 0; p < n;) {
                const char *nl = memchr(buf + p, '\n', n - p);
                size_t e = nl ? (size_t)(nl - buf) + 1 : n;
                apply(&single, buf + p, e - p, now);
                p = e;
            }
            now += (int64_t)(rng() % 700);
        }
        assert_int_equal(whole.res.lines, single.res.lines);
        assert_int_equal(whole.res.events, single.res.events);
        assert_int_equal(whole.res.rejected, single.res.rejected);
        for (int r = 0; r < NX_SD_NREASONS; r++)
            assert_int_equal(whole.res.reasons[r], single.res.reasons[r]);
        /* the workload reaches the interesting cases */
        assert_true(whole.res.events > 400);
        assert_true(whole.res.reasons[NX_SD_TYPE_MISMATCH] > 0);
        assert_true(whole.res.reasons[NX_SD_QUOTA] > 0);
        assert_true(whole.res.reasons[NX_SD_RATE_LIMITED] > 0);
        if (long_names)
            assert_true(chunks_by_arena > 0);
        nx_buf a = {0}, b = {0};
        assert_int_equal(nx_engine_encode(whole.e, &a), 0);
        assert_int_equal(nx_engine_encode(single.e, &b), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        nx_buf_free(&a);
        nx_buf_free(&b);
        side_free(&whole);
        side_free(&single);
    }
}

static void test_batch_equals_line_by_line(void **state)
{
    (void)state;
    batches_vs_lines(20, 40, 0);
}

static void test_chunks_and_long_keys(void **state)
{
    (void)state;
    batches_vs_lines(6, 120, 1);
}

/* Gauges: the last line of a batch wins, also on consecutive lines. */
static void test_gauge_order(void **state)
{
    (void)state;
    side sd;
    side_init(&sd);
    sd.ap.gate = NULL;
    sd.ap.take = NULL;
    const char *batch = "g:5|g\ng:+2|g\nc:1|c\ng:9|g\ng:-4|g\nc:2|c\n";
    apply(&sd, batch, strlen(batch), 1700000000000ll);
    nx_tenant *t = nx_engine_tenant_find(sd.e, "t0", 2);
    assert_non_null(t);
    nx_stream *g = nx_tenant_stream_find(t, "g", 1), *c = nx_tenant_stream_find(t, "c", 1);
    assert_non_null(g);
    assert_non_null(c);
    nx_summary out;
    assert_int_equal(nx_stream_read(g, NX_WINDOW_ALL, 1700000000000ll, &out), 0);
    assert_true(out.last == 5.0);
    nx_summary_free(&out);
    assert_int_equal(nx_stream_read(c, NX_WINDOW_ALL, 1700000000000ll, &out), 0);
    assert_true(out.sum == 3.0);
    nx_summary_free(&out);
    assert_int_equal(sd.res.events, 6);
    side_free(&sd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_line_by_line),
        cmocka_unit_test(test_chunks_and_long_keys),
        cmocka_unit_test(test_gauge_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
