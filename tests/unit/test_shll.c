/*
 * test_shll.c — sliding HyperLogLog (src/sketch/nx_shll.h).
 *
 * Covers: reads over random event streams (hot/cold members, late seconds,
 * seconds at the horizon edge, clocks crossing 2^32) equal, register by
 * register and in estimate, an nx_hll rebuilt from scratch from the events
 * of [max(from, now - H + 1), now], with nx_shll_expire at checks, with
 * nx_shll_maintain after every event and with neither, and read() max-merges
 * into a non-empty out; the live entry count after
 * nx_shll_expire equals the size of the Pareto set of (second, rank) pairs
 * per register (no dominated pair is ever kept); entry bounds for repeats
 * and single-second bursts; expiry (total and partial) and byte accounting;
 * the codec (round trip, canonical bytes independent of insertion order,
 * every truncation, hand-made non-canonical inputs, random byte flips);
 * nx_shll_maintain's sweep schedule; argument checks and the horizon edge
 * for add and read, including from values down to INT64_MIN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xxhash.h>

#include "common/nx_codec.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_shll.h"

#include "test_rng.h"

static uint64_t member_hash(uint64_t m)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "member-%llu", (unsigned long long)m);
    return XXH3_64bits(buf, (size_t)n);
}

/* One event: its member hash, its second and the clock when it was added
 * (the clock never goes backwards, so `now` is non-decreasing along the
 * array and an event of second >= x has now >= x). */
typedef struct ev {
    uint64_t hash;
    int64_t sec;
    int64_t now;
} ev;

static int64_t lo_of(int64_t from, int64_t now, uint32_t horizon)
{
    int64_t lo = now - (int64_t)horizon + 1;
    return from > lo ? from : lo;
}

/* ref := ref + every event with a second in [max(from, now - H + 1), now]. */
static void ref_build(nx_hll *ref, const ev *evs, size_t nev, int64_t from, int64_t now,
                      uint32_t horizon)
{
    int64_t lo = lo_of(from, now, horizon);
    for (size_t i = nev; i-- > 0;) {
        if (evs[i].now < lo)
            break;
        if (evs[i].sec >= lo && evs[i].sec <= now)
            assert_int_equal(nx_hll_add_hash(ref, evs[i].hash), 0);
    }
}

static void assert_hll_equal(const nx_hll *got, const nx_hll *ref, const char *what, int64_t from,
                             int64_t now)
{
    uint8_t p = nx_hll_precision(ref);
    assert_int_equal(nx_hll_precision(got), p);
    for (uint32_t i = 0; i < (1u << p); i++) {
        uint8_t g = nx_hll_register(got, i), r = nx_hll_register(ref, i);
        if (g != r)
            fail_msg("%s: from=%lld now=%lld register %u: sliding %u, from scratch %u", what,
                     (long long)from, (long long)now, i, g, r);
    }
    if (nx_hll_estimate(got) != nx_hll_estimate(ref))
        fail_msg("%s: from=%lld now=%lld estimate %.6f != %.6f", what, (long long)from,
                 (long long)now, nx_hll_estimate(got), nx_hll_estimate(ref));
}

/* read(from, now) equals the from-scratch HLL; when seed > 0, out starts
 * with `seed` extra members (read max-merges into it). */
static void check_read(const nx_shll *s, const ev *evs, size_t nev, int64_t from, int64_t now,
                       uint32_t horizon, int seed)
{
    uint8_t p = nx_shll_precision(s);
    nx_hll *got, *ref;
    assert_int_equal(nx_hll_create(p, &got), 0);
    assert_int_equal(nx_hll_create(p, &ref), 0);
    for (int i = 0; i < seed; i++) {
        uint64_t h = rng();
        assert_int_equal(nx_hll_add_hash(got, h), 0);
        assert_int_equal(nx_hll_add_hash(ref, h), 0);
    }
    ref_build(ref, evs, nev, from, now, horizon);
    assert_int_equal(nx_shll_read(s, from, now, got), 0);
    assert_hll_equal(got, ref, "read", from, now);
    nx_hll_destroy(got);
    nx_hll_destroy(ref);
}

typedef struct pair {
    uint32_t idx;
    uint8_t rank;
    int64_t sec;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->idx != y->idx)
        return x->idx < y->idx ? -1 : 1;
    if (x->sec != y->sec)
        return x->sec > y->sec ? -1 : 1; /* newest first */
    return (x->rank < y->rank) - (x->rank > y->rank); /* largest first */
}

/* The number of (second, rank) pairs of the events in [now - H + 1, now]
 * that no other pair of the same register dominates (>= second and >= rank):
 * exactly what the lists hold once expired entries are dropped. */
static uint32_t pareto_count(const ev *evs, size_t nev, int64_t now, uint32_t horizon,
                             uint8_t p)
{
    int64_t lo = now - (int64_t)horizon + 1;
    size_t cap = 1024, n = 0;
    pair *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    for (size_t i = nev; i-- > 0;) {
        if (evs[i].now < lo)
            break;
        if (evs[i].sec < lo || evs[i].sec > now)
            continue;
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        nx_hll_split(p, evs[i].hash, &v[n].idx, &v[n].rank);
        v[n].sec = evs[i].sec;
        n++;
    }
    qsort(v, n, sizeof *v, cmp_pair);
    uint32_t count = 0;
    for (size_t i = 0; i < n;) {
        uint32_t idx = v[i].idx;
        int best = 0; /* largest rank among strictly newer seconds */
        while (i < n && v[i].idx == idx) {
            int64_t sec = v[i].sec;
            int top = v[i].rank; /* largest rank at this second */
            if (top > best) {
                count++;
                best = top;
            }
            while (i < n && v[i].idx == idx && v[i].sec == sec)
                i++;
        }
    }
    free(v);
    return count;
}

/* Table slots, from the byte count (8-byte entries over the empty size). */
static size_t table_slots(const nx_shll *s)
{
    nx_shll *f;
    assert_int_equal(nx_shll_create(nx_shll_precision(s), 1, &f), 0);
    size_t e = nx_shll_bytes(f), b = nx_shll_bytes(s);
    nx_shll_destroy(f);
    assert_true(b >= e && (b - e) % 8 == 0);
    return (b - e) / 8;
}

typedef struct stream {
    ev *evs;
    size_t n, cap;
    int64_t now;
} stream;

/* Appends one random event to st and adds it to s (when s is not NULL).
 * Members: half from a hot set of 200, half from a cold range of 2^20;
 * seconds: mostly now, 10% late by up to 30 s, 1% around the horizon edge. */
static void stream_step(stream *st, nx_shll *s, uint32_t horizon, unsigned advance_1_in)
{
    if (rng() % advance_1_in == 0)
        st->now += (int64_t)(rng() % 4);
    uint64_t m = rng() % 2 ? rng() % 200 : 1000 + rng() % (1u << 20);
    int64_t sec = st->now;
    uint64_t k = rng() % 100;
    if (k < 10)
        sec = st->now - (int64_t)(rng() % 31);
    else if (k == 10)
        sec = st->now - (int64_t)horizon - 3 + (int64_t)(rng() % 7);
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 4096;
        st->evs = realloc(st->evs, st->cap * sizeof *st->evs);
        assert_non_null(st->evs);
    }
    ev e = {member_hash(m), sec, st->now};
    st->evs[st->n++] = e;
    if (s)
        assert_int_equal(nx_shll_add_hash(s, e.hash, e.sec, e.now), 0);
}

static void check_all(nx_shll *s, const stream *st, uint32_t horizon, bool do_expire)
{
    int64_t now = st->now, h = (int64_t)horizon;
    /* random ranges, the edges, clamped ones and an empty one */
    const int64_t froms[] = {
        now - (int64_t)(rng() % horizon), now - (int64_t)(rng() % horizon), now,
        now - h + 1, now - h, now - h - 1 - (int64_t)(rng() % 1000), now - 3 * h, now + 1,
    };
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++)
        check_read(s, st->evs, st->n, froms[i], now, horizon, i == 0 ? 50 : 0);
    if (do_expire) {
        assert_int_equal(nx_shll_expire(s, now), 0);
        uint8_t p = nx_shll_precision(s);
        uint32_t want = pareto_count(st->evs, st->n, now, horizon, p);
        if (nx_shll_entries(s) != want)
            fail_msg("now=%lld: %u live entries, Pareto set has %u", (long long)now,
                     nx_shll_entries(s), want);
        assert_int_equal(nx_shll_empty(s), want == 0);
        /* memory follows the live pairs: a table of at most 32 bytes per
         * pair (load >= 1/4 after a rebuild), plus the dense heads */
        nx_shll *f;
        assert_int_equal(nx_shll_create(p, horizon, &f), 0);
        size_t over = nx_shll_bytes(s) - nx_shll_bytes(f);
        nx_shll_destroy(f);
        size_t m = (size_t)1 << p;
        assert_true(over <= 4 * m + 32 * ((size_t)nx_shll_entries(s) + 1) + 128);
        /* expiring changes no read */
        check_read(s, st->evs, st->n, now - (int64_t)(rng() % horizon), now, horizon, 0);
        check_read(s, st->evs, st->n, now - h, now, horizon, 0);
    }
}

/* 1. against a from-scratch recomputation */
enum { NO_SWEEP, EXPIRE_AT_CHECKS, MAINTAIN_EVERY_EVENT };

static const unsigned *g_rates; /* NULL: the default phases */
static void roundtrip(const nx_shll *s, uint32_t horizon, int64_t now, nx_buf *b);

static void property_run(uint8_t p, uint32_t horizon, int64_t start, size_t nev, int mode)
{
    nx_shll *s;
    assert_int_equal(nx_shll_create(p, horizon, &s), 0);
    bool do_expire = mode == EXPIRE_AT_CHECKS;
    stream st = {NULL, 0, 0, start};
    /* phases of different rates: ~2 to ~40 events per second, so windows
     * range from a few hundred entries (sparse reads) to dense ones */
    static const unsigned default_rates[] = {2, 4, 16, 64};
    const unsigned *rates = g_rates ? g_rates : default_rates;
    unsigned rate = 4;
    int checks = 0;
    for (size_t i = 0; i < nev; i++) {
        if (i % 5000 == 0)
            rate = rates[rng() % 4];
        stream_step(&st, s, horizon, rate);
        if (mode == MAINTAIN_EVERY_EVENT)
            assert_int_equal(nx_shll_maintain(s, st.now), 0);
        if (rng() % 2000 == 0 || (i + 1) % (nev / 10) == 0) { /* >= 10 checks */
            assert_int_equal(nx_shll_check(s, st.now), 0);
            check_all(s, &st, horizon, do_expire);
            checks++;
        }
    }
    check_all(s, &st, horizon, do_expire);
    /* at the end also after a final expire in both modes */
    check_all(s, &st, horizon, true);
    checks += 2;
    assert_true(checks >= 10);
    /* the clock moves on without events: windows empty out */
    st.now += horizon / 2;
    check_all(s, &st, horizon, do_expire);
    st.now += horizon;
    check_all(s, &st, horizon, true);
    assert_true(nx_shll_empty(s));
    free(st.evs);
    nx_shll_destroy(s);
}

static void test_property_expire(void **st)
{
    (void)st;
    property_run(14, 400, 1700000000, 40000 * (size_t)scale(), EXPIRE_AT_CHECKS);
}

static void test_property_no_expire(void **st)
{
    (void)st;
    property_run(14, 400, 1700000000, 40000 * (size_t)scale(), NO_SWEEP);
}

static void test_property_maintain(void **st)
{
    (void)st;
    property_run(14, 400, 1700000000, 30000 * (size_t)scale(), MAINTAIN_EVERY_EVENT);
}

/* Past m/2 pairs the sketch keeps each register's oldest pair in a dense
 * head array and the rest in the table; below m/8 it goes back. Phases of
 * ~1,000 and ~300 events per second (dense) alternate with ~1-10 (sparse
 * again once the dense ones expire), with every read checked. */
static void test_property_dense(void **st)
{
    (void)st;
    const int64_t now = 1700000000;
    nx_shll *s, *fresh;
    assert_int_equal(nx_shll_create(14, 400, &s), 0);
    assert_int_equal(nx_shll_create(14, 400, &fresh), 0);
    stream one = {NULL, 0, 0, now};
    for (int i = 0; i < 20000; i++) {
        ev e = {member_hash(5000000 + (uint64_t)i), now, now};
        if (one.n == one.cap) {
            one.cap = one.cap ? one.cap * 2 : 4096;
            one.evs = realloc(one.evs, one.cap * sizeof *one.evs);
            assert_non_null(one.evs);
        }
        one.evs[one.n++] = e;
        assert_int_equal(nx_shll_add_hash(s, e.hash, now, now), 0);
    }
    /* dense: the 64 KiB head array is there */
    assert_true(nx_shll_bytes(s) >= nx_shll_bytes(fresh) + 65536);
    check_all(s, &one, 400, true);
    nx_buf b = {0};
    roundtrip(s, 400, now, &b);
    nx_buf_free(&b);
    assert_int_equal(nx_shll_expire(s, now + 400), 0);
    assert_true(nx_shll_empty(s));
    assert_int_equal(nx_shll_bytes(s), nx_shll_bytes(fresh)); /* back to sparse, empty */
    free(one.evs);
    nx_shll_destroy(s);
    nx_shll_destroy(fresh);
    static const unsigned dense_rates[] = {1024, 2, 256, 16};
    g_rates = dense_rates;
    property_run(14, 400, now, 120000 * (size_t)scale(), EXPIRE_AT_CHECKS);
    property_run(14, 400, now, 80000 * (size_t)scale(), NO_SWEEP);
    property_run(14, 300, (int64_t)(1ull << 32) - 500, 60000, MAINTAIN_EVERY_EVENT);
    g_rates = NULL;
}

/* the clock crosses 2^32 (seconds are stored modulo 2^32), and p = 18 */
static void test_property_wrap_p18(void **st)
{
    (void)st;
    property_run(14, 400, (int64_t)(1ull << 32) - 3000, 20000, EXPIRE_AT_CHECKS);
    property_run(14, 300, (int64_t)(1ull << 32) - 3000, 20000, NO_SWEEP);
    property_run(14, 300, (int64_t)(1ull << 32) - 3000, 20000, MAINTAIN_EVERY_EVENT);
    property_run(18, 500, 1700000000, 20000, EXPIRE_AT_CHECKS);
}

/* 2. the lists stay small */
static void test_entries_bound(void **st)
{
    (void)st;
    const uint32_t H = 400;
    nx_shll *s;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    uint64_t h = member_hash(42);
    int64_t t0 = 1700000000;
    for (int64_t i = 0; i < 10000; i++) {
        assert_int_equal(nx_shll_add_hash(s, h, t0 + i, t0 + i), 0);
        assert_int_equal(nx_shll_entries(s), 1);
    }
    /* the same member late or at the same second changes nothing */
    assert_int_equal(nx_shll_add_hash(s, h, t0 + 9990, t0 + 9999), 0);
    assert_int_equal(nx_shll_add_hash(s, h, t0 + 9999, t0 + 9999), 0);
    assert_int_equal(nx_shll_entries(s), 1);
    nx_hll *out;
    assert_int_equal(nx_hll_create(14, &out), 0);
    assert_int_equal(nx_shll_read(s, t0 + 9999, t0 + 9999, out), 0);
    uint32_t idx;
    uint8_t rank;
    nx_hll_split(14, h, &idx, &rank);
    assert_int_equal(nx_hll_register(out, idx), rank);
    nx_hll_destroy(out);
    nx_shll_destroy(s);

    /* N distinct members at one second: one entry per register touched */
    static uint8_t touched[1u << 14];
    memset(touched, 0, sizeof touched);
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    uint32_t distinct = 0;
    for (uint64_t m = 0; m < 20000; m++) {
        uint64_t mh = member_hash(m + 1000000);
        nx_hll_split(14, mh, &idx, &rank);
        distinct += !touched[idx];
        touched[idx] = 1;
        assert_int_equal(nx_shll_add_hash(s, mh, t0, t0), 0);
        if (m % 1000 == 999)
            assert_int_equal(nx_shll_entries(s), distinct);
    }
    assert_int_equal(nx_shll_entries(s), distinct);
    assert_true(distinct > 10000 && distinct < 16384);
    nx_shll_destroy(s);

    /* one register, ranks falling with time: every pair is a possible maximum;
     * then one pair newer and larger than all replaces the whole list */
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(nx_shll_raise(s, 77, (uint8_t)(20 - i), t0 + i, t0 + i), 0);
    assert_int_equal(nx_shll_entries(s), 20);
    assert_int_equal(nx_hll_create(14, &out), 0);
    for (int i = 0; i < 20; i++) {
        nx_hll_clear(out);
        assert_int_equal(nx_shll_read(s, t0 + i, t0 + 19, out), 0);
        assert_int_equal(nx_hll_register(out, 77), 20 - i);
    }
    /* dominated pairs are not inserted; one dominating two replaces them */
    assert_int_equal(nx_shll_raise(s, 77, 15, t0 + 4, t0 + 19), 0);
    assert_int_equal(nx_shll_raise(s, 77, 10, t0 + 5, t0 + 19), 0);
    assert_int_equal(nx_shll_raise(s, 77, 1, t0 + 19, t0 + 19), 0);
    assert_int_equal(nx_shll_entries(s), 20);
    assert_int_equal(nx_shll_raise(s, 77, 16, t0 + 5, t0 + 19), 0);
    assert_int_equal(nx_shll_entries(s), 19);
    nx_hll_clear(out);
    assert_int_equal(nx_shll_read(s, t0 + 5, t0 + 19, out), 0);
    assert_int_equal(nx_hll_register(out, 77), 16);
    assert_int_equal(nx_shll_raise(s, 77, 20, t0 + 19, t0 + 19), 0);
    assert_int_equal(nx_shll_entries(s), 1);
    nx_hll_clear(out);
    assert_int_equal(nx_shll_read(s, t0 + 19, t0 + 19, out), 0);
    assert_int_equal(nx_hll_register(out, 77), 20);
    nx_hll_destroy(out);
    nx_shll_destroy(s);
}

static bool hll_all_zero(const nx_hll *h)
{
    for (uint32_t i = 0; i < (1u << nx_hll_precision(h)); i++)
        if (nx_hll_register(h, i))
            return false;
    return nx_hll_estimate(h) == 0;
}

/* 3. expiry */
static void test_expire(void **st)
{
    (void)st;
    const uint32_t H = 400;
    nx_shll *s, *fresh;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    assert_int_equal(nx_shll_create(14, H, &fresh), 0);
    size_t empty_bytes = nx_shll_bytes(fresh);
    assert_true(nx_shll_empty(fresh));
    assert_int_equal(nx_shll_entries(fresh), 0);
    /* expiring an empty sketch is a no-op */
    assert_int_equal(nx_shll_expire(fresh, 123), 0);
    assert_int_equal(nx_shll_bytes(fresh), empty_bytes);

    stream strm = {NULL, 0, 0, 1700000000};
    for (int i = 0; i < 30000; i++)
        stream_step(&strm, s, H, 8);
    int64_t now = strm.now;
    assert_false(nx_shll_empty(s));
    assert_true(nx_shll_bytes(s) > empty_bytes);

    /* partial: the clock moves by H/2; exactly the live ones stay */
    int64_t now2 = now + H / 2;
    const int64_t froms[] = {now2 - H + 1, now2 - H / 2, now2 - H / 4, now2 - 7, now2 - H - 5};
    enum { NF = sizeof froms / sizeof froms[0] };
    nx_hll *before[NF];
    for (int i = 0; i < NF; i++) {
        assert_int_equal(nx_hll_create(14, &before[i]), 0);
        assert_int_equal(nx_shll_read(s, froms[i], now2, before[i]), 0);
    }
    uint32_t n_before = nx_shll_entries(s);
    assert_int_equal(nx_shll_expire(s, now2), 0);
    uint32_t want = pareto_count(strm.evs, strm.n, now2, H, 14);
    assert_true(want > 0 && want < n_before);
    assert_int_equal(nx_shll_entries(s), want);
    /* shrunk to fit: a power of two >= 2 x live, and not oversized */
    size_t slots = table_slots(s);
    assert_true(slots >= 2 * (size_t)want && slots <= 8 * (size_t)want);
    for (int i = 0; i < NF; i++) {
        nx_hll *after;
        assert_int_equal(nx_hll_create(14, &after), 0);
        assert_int_equal(nx_shll_read(s, froms[i], now2, after), 0);
        assert_hll_equal(after, before[i], "partial expire", froms[i], now2);
        nx_hll_destroy(after);
        nx_hll_destroy(before[i]);
        check_read(s, strm.evs, strm.n, froms[i], now2, H, 0);
    }
    /* expiring again at the same time changes nothing */
    assert_int_equal(nx_shll_expire(s, now2), 0);
    assert_int_equal(nx_shll_entries(s), want);

    /* total: every entry is older than the horizon at now + H */
    assert_int_equal(nx_shll_expire(s, now + H), 0);
    assert_true(nx_shll_empty(s));
    assert_int_equal(nx_shll_entries(s), 0);
    assert_int_equal(nx_shll_bytes(s), empty_bytes);
    nx_hll *out;
    assert_int_equal(nx_hll_create(14, &out), 0);
    assert_int_equal(nx_shll_read(s, now + 1, now + H, out), 0);
    assert_true(hll_all_zero(out));
    assert_int_equal(nx_shll_read(s, 0, now + H, out), 0);
    assert_true(hll_all_zero(out));
    /* the boundary: an entry of second now is live at now + H - 1 only */
    assert_int_equal(nx_shll_add_hash(s, member_hash(1), now + H, now + H), 0);
    assert_int_equal(nx_shll_expire(s, now + 2 * H - 1), 0);
    assert_int_equal(nx_shll_entries(s), 1);
    assert_int_equal(nx_shll_read(s, now + H, now + 2 * H - 1, out), 0);
    assert_false(hll_all_zero(out));
    assert_int_equal(nx_shll_expire(s, now + 2 * H), 0);
    assert_true(nx_shll_empty(s));
    assert_int_equal(nx_shll_bytes(s), empty_bytes);
    /* an expired entry met by an add to its register is dropped then */
    int64_t t = now + 2 * H;
    assert_int_equal(nx_shll_raise(s, 9, 30, t, t), 0);
    assert_int_equal(nx_shll_raise(s, 9, 1, t + H, t + H), 0);
    assert_int_equal(nx_shll_entries(s), 1);
    assert_int_equal(nx_shll_expire(s, t + H), 0);
    assert_int_equal(nx_shll_entries(s), 1);
    assert_int_equal(nx_shll_expire(s, t + 2 * H), 0);
    assert_true(nx_shll_empty(s));
    /* usable again after being emptied */
    nx_hll_clear(out);
    assert_int_equal(nx_shll_add_hash(s, member_hash(2), now + 3 * H, now + 3 * H), 0);
    assert_int_equal(nx_shll_entries(s), 1);
    assert_int_equal(nx_shll_read(s, now + 3 * H, now + 3 * H, out), 0);
    assert_false(hll_all_zero(out));
    nx_hll_destroy(out);
    free(strm.evs);
    nx_shll_destroy(s);
    nx_shll_destroy(fresh);
}

/* nx_shll_maintain: a sweep (nx_shll_expire) once the last one is over
 * half a horizon old; in between it drops nothing */
static void test_maintain(void **st)
{
    (void)st;
    const uint32_t H = 400;
    const int64_t t = 1700000000;
    nx_shll *s;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    assert_int_equal(nx_shll_maintain(s, t), 0); /* empty: a sweep of nothing */
    assert_true(nx_shll_empty(s));
    /* registers 1..50 at t, 51..100 at t + 100 (distinct registers, so no
     * entry drops another) */
    for (uint32_t i = 1; i <= 100; i++) {
        int64_t sec = i <= 50 ? t : t + 100;
        assert_int_equal(nx_shll_raise(s, i, 3, sec, sec), 0);
    }
    assert_int_equal(nx_shll_maintain(s, t + 100), 0); /* too soon */
    assert_int_equal(nx_shll_entries(s), 100);
    assert_int_equal(nx_shll_maintain(s, t + 400), 0); /* sweeps: 1..50 dead */
    assert_int_equal(nx_shll_entries(s), 50);
    for (uint32_t i = 101; i <= 150; i++)
        assert_int_equal(nx_shll_raise(s, i, 3, t + 450, t + 450), 0);
    /* at t + 500, 51..100 are dead, but the last sweep is 100 s old */
    assert_int_equal(nx_shll_maintain(s, t + 500), 0);
    assert_int_equal(nx_shll_entries(s), 100);
    nx_hll *o;
    assert_int_equal(nx_hll_create(14, &o), 0);
    assert_int_equal(nx_shll_read(s, t, t + 500, o), 0);
    for (uint32_t i = 1; i <= 150; i++)
        assert_int_equal(nx_hll_register(o, i), i <= 100 ? 0 : 3);
    assert_int_equal(nx_shll_maintain(s, t + 650), 0); /* 250 s: sweeps */
    assert_int_equal(nx_shll_entries(s), 50);
    nx_hll_clear(o);
    assert_int_equal(nx_shll_read(s, t, t + 650, o), 0);
    for (uint32_t i = 1; i <= 150; i++)
        assert_int_equal(nx_hll_register(o, i), i <= 100 ? 0 : 3);
    assert_int_equal(nx_shll_maintain(s, t + 860), 0); /* 210 s: sweeps */
    assert_true(nx_shll_empty(s));
    nx_hll_destroy(o);
    nx_shll_destroy(s);
}

/* reads of a and b agree for several ranges ending at now */
static void assert_reads_equal(const nx_shll *a, const nx_shll *b, int64_t now, uint32_t horizon)
{
    const int64_t froms[] = {now, now - 1, now - (int64_t)horizon / 3, now - (int64_t)horizon + 1,
                             now - (int64_t)horizon - 10};
    uint8_t p = nx_shll_precision(a);
    assert_int_equal(nx_shll_precision(b), p);
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) {
        nx_hll *x, *y;
        assert_int_equal(nx_hll_create(p, &x), 0);
        assert_int_equal(nx_hll_create(p, &y), 0);
        assert_int_equal(nx_shll_read(a, froms[i], now, x), 0);
        assert_int_equal(nx_shll_read(b, froms[i], now, y), 0);
        assert_hll_equal(y, x, "decoded", froms[i], now);
        nx_hll_destroy(x);
        nx_hll_destroy(y);
    }
}

/* encode; decode (consuming everything); equal reads; canonical re-encoding */
static void roundtrip(const nx_shll *s, uint32_t horizon, int64_t now, nx_buf *b)
{
    uint8_t p = nx_shll_precision(s);
    b->len = 0;
    assert_int_equal(nx_shll_encode(s, now, b), 0);
    nx_rbuf r = nx_rbuf_make(b->data, b->len);
    nx_shll *d;
    assert_int_equal(nx_shll_decode(&r, p, horizon, now, &d), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.err, 0);
    assert_reads_equal(s, d, now, horizon);
    nx_buf b2 = {0};
    assert_int_equal(nx_shll_encode(d, now, &b2), 0);
    assert_int_equal(b2.len, b->len);
    assert_memory_equal(b2.data, b->data, b->len);
    nx_buf_free(&b2);
    nx_shll_destroy(d);
}

/* 4. codec round trip */
static void test_codec_roundtrip(void **st)
{
    (void)st;
    const uint32_t H = 400;
    nx_buf b = {0};
    nx_shll *s;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    /* empty: p and a zero count */
    roundtrip(s, H, 1700000000, &b);
    assert_int_equal(b.len, 2);
    assert_int_equal(b.data[0], 14);
    assert_int_equal(b.data[1], 0);

    stream strm = {NULL, 0, 0, 1700000000};
    for (int i = 0; i < 20000; i++) {
        stream_step(&strm, s, H, 8);
        if (i == 10 || i == 300 || i == 5000)
            roundtrip(s, H, strm.now, &b);
    }
    int64_t now = strm.now;
    roundtrip(s, H, now, &b);
    /* encoding a later clock leaves out what expired meanwhile */
    nx_buf late = {0};
    roundtrip(s, H, now + H / 2, &late);
    assert_true(late.len < b.len);
    /* an entry takes at least 3 bytes */
    assert_true(b.len >= 2 + 3 * (size_t)pareto_count(strm.evs, strm.n, now, H, 14));

    /* canonical: the same events in another order (added with the final
     * clock, so none is dropped on the way) encode to the same bytes */
    nx_shll *a1, *a2;
    assert_int_equal(nx_shll_create(14, H, &a1), 0);
    assert_int_equal(nx_shll_create(14, H, &a2), 0);
    size_t n = strm.n;
    size_t *perm = malloc(n * sizeof *perm);
    assert_non_null(perm);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng() % (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nx_shll_add_hash(a1, strm.evs[i].hash, strm.evs[i].sec, now), 0);
        const ev *e = &strm.evs[perm[i]];
        assert_int_equal(nx_shll_add_hash(a2, e->hash, e->sec, now), 0);
    }
    nx_buf e1 = {0}, e2 = {0};
    assert_int_equal(nx_shll_encode(a1, now, &e1), 0);
    assert_int_equal(nx_shll_encode(a2, now, &e2), 0);
    assert_int_equal(e1.len, e2.len);
    assert_memory_equal(e1.data, e2.data, e1.len);
    /* and match the sketch fed in clock order */
    assert_int_equal(e1.len, b.len);
    assert_memory_equal(e1.data, b.data, b.len);
    assert_int_equal(nx_shll_entries(a1), nx_shll_entries(a2));

    /* nested in a frame: encode appends, decode stops at its end */
    nx_buf f = {0};
    assert_int_equal(nx_buf_u32(&f, 0xdeadbeef), 0);
    assert_int_equal(nx_shll_encode(s, now, &f), 0);
    assert_int_equal(nx_buf_u8(&f, 0x77), 0);
    assert_int_equal(f.len, 4 + b.len + 1);
    assert_memory_equal(f.data + 4, b.data, b.len);
    nx_rbuf r = nx_rbuf_make(f.data + 4, f.len - 4);
    nx_shll *d;
    assert_int_equal(nx_shll_decode(&r, 14, H, now, &d), 0);
    assert_int_equal(r.n, 1);
    assert_reads_equal(s, d, now, H);
    nx_shll_destroy(d);

    /* p = 18 and extreme hashes (rank 64 - p + 1, last register) */
    nx_shll *s18;
    assert_int_equal(nx_shll_create(18, 1u << 30, &s18), 0);
    assert_int_equal(nx_shll_add_hash(s18, 0, now - 5, now), 0);
    assert_int_equal(nx_shll_add_hash(s18, UINT64_MAX << 46, now - (1 << 29), now), 0);
    assert_int_equal(nx_shll_add_hash(s18, UINT64_MAX, now, now), 0); /* rank 1, newer */
    assert_int_equal(nx_shll_entries(s18), 3);
    nx_hll *o18;
    assert_int_equal(nx_hll_create(18, &o18), 0);
    assert_int_equal(nx_shll_read(s18, now - (1 << 29), now, o18), 0);
    assert_int_equal(nx_hll_register(o18, 0), 47);
    assert_int_equal(nx_hll_register(o18, (1u << 18) - 1), 47);
    nx_hll_destroy(o18);
    roundtrip(s18, 1u << 30, now, &b);
    nx_shll_destroy(s18);

    free(perm);
    nx_buf_free(&e1);
    nx_buf_free(&e2);
    nx_buf_free(&f);
    nx_buf_free(&late);
    nx_buf_free(&b);
    free(strm.evs);
    nx_shll_destroy(a1);
    nx_shll_destroy(a2);
    nx_shll_destroy(s);
}

static int decode_bytes(const nx_buf *b, uint8_t p, uint32_t horizon, int64_t now)
{
    nx_rbuf r = nx_rbuf_make(b->data, b->len);
    nx_shll *d = NULL;
    int rc = nx_shll_decode(&r, p, horizon, now, &d);
    if (rc == 0)
        nx_shll_destroy(d);
    return rc;
}

/* a hand-made encoding: p, count, then (idx, rank, age) triples */
static int decode_triples(uint8_t p, uint64_t count, const uint64_t (*t)[3], size_t n,
                          uint32_t horizon)
{
    nx_buf b = {0};
    assert_int_equal(nx_buf_u8(&b, p), 0);
    assert_int_equal(nx_buf_uvar(&b, count), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nx_buf_uvar(&b, t[i][0]), 0);
        assert_int_equal(nx_buf_u8(&b, (uint8_t)t[i][1]), 0);
        assert_int_equal(nx_buf_uvar(&b, t[i][2]), 0);
    }
    int rc = decode_bytes(&b, 14, horizon, 1700000000);
    nx_buf_free(&b);
    return rc;
}

static void corrupt_check(const nx_shll *s, uint32_t horizon, int64_t now, int iters)
{
    nx_buf b = {0};
    assert_int_equal(nx_shll_encode(s, now, &b), 0);
    uint8_t p = nx_shll_precision(s);
    nx_rbuf r;
    nx_shll *d;
    /* every truncation */
    for (size_t len = 0; len < b.len; len++) {
        r = nx_rbuf_make(b.data, len);
        d = NULL;
        int rc = nx_shll_decode(&r, p, horizon, now, &d);
        if (rc == 0) {
            nx_shll_destroy(d);
            fail_msg("truncation to %zu of %zu bytes accepted", len, b.len);
        }
        assert_int_equal(rc, NX_ECORRUPT);
    }
    /* the wrong precision, either side */
    assert_int_equal(decode_bytes(&b, p == 14 ? 15 : 14, horizon, now), NX_ECORRUPT);
    b.data[0] ^= 3;
    assert_int_equal(decode_bytes(&b, p, horizon, now), NX_ECORRUPT);
    b.data[0] ^= 3;
    assert_int_equal(decode_bytes(&b, p, horizon, now), 0);
    /* random flips: no crash, a leak or a read out of bounds; what is
     * accepted is a working sketch with a consistent round trip */
    uint8_t *tmp = malloc(b.len);
    assert_non_null(tmp);
    for (int it = 0; it < iters; it++) {
        flip_bytes(tmp, b.data, b.len);
        r = nx_rbuf_make(tmp, b.len);
        d = NULL;
        int rc = nx_shll_decode(&r, p, horizon, now, &d);
        if (rc != 0) {
            assert_int_equal(rc, NX_ECORRUPT);
            continue;
        }
        nx_hll *o;
        assert_int_equal(nx_hll_create(p, &o), 0);
        assert_int_equal(nx_shll_read(d, now - horizon, now, o), 0);
        assert_true(nx_hll_estimate(o) >= 0);
        nx_hll_destroy(o);
        assert_int_equal(nx_shll_add_hash(d, rng(), now, now), 0);
        nx_buf e = {0};
        assert_int_equal(nx_shll_encode(d, now, &e), 0);
        nx_rbuf r2 = nx_rbuf_make(e.data, e.len);
        nx_shll *d2;
        assert_int_equal(nx_shll_decode(&r2, p, horizon, now, &d2), 0);
        assert_int_equal(r2.n, 0);
        assert_reads_equal(d, d2, now, horizon);
        nx_shll_destroy(d2);
        nx_buf_free(&e);
        assert_int_equal(nx_shll_expire(d, now + horizon), 0);
        assert_true(nx_shll_empty(d));
        nx_shll_destroy(d);
    }
    free(tmp);
    nx_buf_free(&b);
}

/* 5. corrupt input */
static void test_codec_corrupt(void **st)
{
    (void)st;
    const uint32_t H = 400;
    nx_shll *s;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    corrupt_check(s, H, 1700000000, 200);
    stream strm = {NULL, 0, 0, 1700000000};
    for (int i = 0; i < 200; i++)
        stream_step(&strm, s, H, 4);
    corrupt_check(s, H, strm.now, 3000);
    for (int i = 0; i < 20000; i++)
        stream_step(&strm, s, H, 16);
    corrupt_check(s, H, strm.now, 300);
    free(strm.evs);
    nx_shll_destroy(s);

    /* hand-made inputs: a valid list, then one defect each */
    const uint64_t ok[][3] = {{5, 9, 300}, {5, 4, 10}, {5, 1, 0}, {6, 2, 7}, {16383, 51, 399}};
    assert_int_equal(decode_triples(14, 5, ok, 5, H), 0);
    assert_int_equal(decode_triples(14, 4, ok, 5, H), 0); /* trailing bytes are the caller's */
    assert_int_equal(decode_triples(14, 6, ok, 5, H), NX_ECORRUPT);    /* count too big */
    assert_int_equal(decode_triples(14, 1u << 30, ok, 5, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(15, 5, ok, 5, H), NX_ECORRUPT);    /* precision */
    const uint64_t age_up[][3] = {{5, 9, 10}, {5, 4, 300}};  /* newer before older */
    const uint64_t rank_up[][3] = {{5, 4, 300}, {5, 9, 10}}; /* older one dominated */
    const uint64_t dup[][3] = {{5, 4, 10}, {5, 4, 10}};
    const uint64_t same_age[][3] = {{5, 9, 10}, {5, 4, 10}};
    const uint64_t same_rank[][3] = {{5, 4, 300}, {5, 4, 10}};
    const uint64_t reg_down[][3] = {{6, 2, 7}, {5, 9, 300}};
    const uint64_t rank0[][3] = {{5, 0, 3}};
    const uint64_t rank_big[][3] = {{5, 52, 3}}; /* 64 - 14 + 1 = 51 is the largest */
    const uint64_t old[][3] = {{5, 3, 400}};     /* age == horizon */
    const uint64_t idx_big[][3] = {{16384, 3, 1}};
    assert_int_equal(decode_triples(14, 2, age_up, 2, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 2, rank_up, 2, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 2, dup, 2, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 2, same_age, 2, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 2, same_rank, 2, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 2, reg_down, 2, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 1, rank0, 1, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 1, rank_big, 1, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 1, old, 1, H), NX_ECORRUPT);
    assert_int_equal(decode_triples(14, 1, idx_big, 1, H), NX_ECORRUPT);
    /* the same ones are fine with a longer horizon / at the edge */
    assert_int_equal(decode_triples(14, 1, old, 1, H + 1), 0);
}

/* 6. argument checks */
static void test_args(void **st)
{
    (void)st;
    nx_shll *s = NULL;
    assert_int_equal(nx_shll_create(13, 400, &s), NX_EINVAL);
    assert_int_equal(nx_shll_create(19, 400, &s), NX_EINVAL);
    assert_int_equal(nx_shll_create(14, 0, &s), NX_EINVAL);
    assert_int_equal(nx_shll_create(14, (1u << 30) + 1, &s), NX_EINVAL);
    assert_null(s);
    for (uint8_t p = 14; p <= 18; p++) {
        assert_int_equal(nx_shll_create(p, 1u << 30, &s), 0);
        assert_int_equal(nx_shll_precision(s), p);
        nx_shll_destroy(s);
    }
    nx_shll_destroy(NULL);

    const uint32_t H = 400;
    const int64_t now = 1700000000;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    nx_hll *h16, *h14;
    assert_int_equal(nx_hll_create(16, &h16), 0);
    assert_int_equal(nx_hll_create(14, &h14), 0);
    assert_int_equal(nx_shll_read(s, now - 10, now, h16), NX_EINVAL); /* empty */
    assert_int_equal(nx_shll_add_hash(s, member_hash(1), now, now), 0);
    assert_int_equal(nx_shll_read(s, now - 10, now, h16), NX_EINVAL);
    assert_true(hll_all_zero(h16));
    assert_int_equal(nx_shll_read(s, now - 10, now, h14), 0);
    assert_false(hll_all_zero(h14));

    /* an add older than the horizon is ignored; the edge second is kept */
    uint32_t n0 = nx_shll_entries(s);
    size_t b0 = nx_shll_bytes(s);
    for (uint64_t m = 100; m < 200; m++)
        assert_int_equal(nx_shll_add_hash(s, member_hash(m), now - H, now), 0);
    assert_int_equal(nx_shll_add_hash(s, member_hash(7), now - 10 * (int64_t)H, now), 0);
    assert_int_equal(nx_shll_entries(s), n0);
    assert_int_equal(nx_shll_bytes(s), b0);
    nx_hll_clear(h14);
    assert_int_equal(nx_shll_read(s, now - 100 * (int64_t)H, now, h14), 0);
    nx_hll *one;
    assert_int_equal(nx_hll_create(14, &one), 0);
    assert_int_equal(nx_hll_add_hash(one, member_hash(1)), 0);
    assert_hll_equal(h14, one, "ignored adds", now - 100 * (int64_t)H, now);
    uint64_t edge = member_hash(1000);
    assert_int_equal(nx_shll_add_hash(s, edge, now - H + 1, now), 0);
    assert_int_equal(nx_shll_entries(s), n0 + 1);
    nx_hll_clear(h14);
    assert_int_equal(nx_shll_read(s, now - H + 1, now - H + 1, h14), 0);
    nx_hll_clear(one);
    assert_int_equal(nx_hll_add_hash(one, edge), 0);
    assert_hll_equal(h14, one, "edge second", now - H + 1, now);
    /* from > now reads nothing and leaves out as it was */
    assert_int_equal(nx_shll_read(s, now + 1, now, h14), 0);
    assert_hll_equal(h14, one, "from > now", now + 1, now);
    /* one second later the edge entry is gone */
    nx_hll_clear(h14);
    assert_int_equal(nx_shll_read(s, now - H, now + 1, h14), 0);
    nx_hll_clear(one);
    assert_int_equal(nx_hll_add_hash(one, member_hash(1)), 0);
    assert_hll_equal(h14, one, "edge expired", now - H, now + 1);
    nx_hll_destroy(one);
    nx_hll_destroy(h14);
    nx_hll_destroy(h16);
    nx_shll_destroy(s);
}

/* Dense, a register whose head (its oldest pair) is dead while a newer
 * pair of it lives in the overflow table: a new pair makes that pair the
 * head and takes its slot, and reads see all three as they should. Also a
 * register whose every pair the new one dominates (replaced in place). */
static void test_dense_dead_head(void **st)
{
    (void)st;
    const uint32_t H = 10, R = 77, Q = 78;
    nx_shll *s;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    /* every register at second 100 (rank 9): past m/2 pairs, dense */
    for (uint32_t i = 0; i < (1u << 14); i++)
        assert_int_equal(nx_shll_raise(s, i, 9, 100, 100), 0);
    assert_int_equal(nx_shll_raise(s, R, 5, 105, 105), 0); /* R's overflow pair */
    assert_int_equal(nx_shll_raise(s, Q, 4, 103, 105), 0); /* Q's overflow pair */
    /* at 112 the heads (100) are dead, R's pair of 105 is not */
    assert_int_equal(nx_shll_raise(s, R, 3, 112, 112), 0);
    /* Q: the new pair dominates the live one (rank 4 at 103): in its place */
    assert_int_equal(nx_shll_raise(s, Q, 6, 112, 112), 0);
    static const struct {
        int64_t from;
        uint8_t r, q;
    } want[] = {{112, 3, 6}, {106, 3, 6}, {105, 5, 6}, {103, 5, 6}, {0, 5, 6}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        nx_hll *h;
        assert_int_equal(nx_hll_create(14, &h), 0);
        assert_int_equal(nx_shll_read(s, want[k].from, 112, h), 0);
        assert_int_equal(nx_hll_register(h, R), want[k].r);
        assert_int_equal(nx_hll_register(h, Q), want[k].q);
        assert_int_equal(nx_hll_register(h, R + 2), 0); /* dead: 100 < 112 - 10 + 1 */
        nx_hll_destroy(h);
    }
    /* a later pair of R at 114 (rank 2), then expiry of 105 at 115 */
    assert_int_equal(nx_shll_raise(s, R, 2, 114, 114), 0);
    nx_hll *h;
    assert_int_equal(nx_hll_create(14, &h), 0);
    assert_int_equal(nx_shll_read(s, 0, 115, h), 0);
    assert_int_equal(nx_hll_register(h, R), 3);
    nx_hll_destroy(h);
    nx_shll_destroy(s);
}

/* from far before the horizon (down to INT64_MIN) is clamped like any
 * other; an expired entry not yet dropped must not come back */
static void test_read_extreme_from(void **st)
{
    (void)st;
    const uint32_t H = 400;
    const int64_t now = 1700000000;
    nx_shll *s;
    assert_int_equal(nx_shll_create(14, H, &s), 0);
    uint64_t old = member_hash(1), f1 = member_hash(3), f2 = member_hash(4), cur = member_hash(2);
    /* the clock moves in steps shorter than the horizon (a longer jump
     * would drop everything at once), so the expired pairs stay */
    assert_int_equal(nx_shll_add_hash(s, old, now - 1000, now - 1000), 0);
    assert_int_equal(nx_shll_add_hash(s, f1, now - 650, now - 650), 0);
    assert_int_equal(nx_shll_add_hash(s, f2, now - 300, now - 300), 0);
    assert_int_equal(nx_shll_add_hash(s, cur, now, now), 0);
    assert_int_equal(nx_shll_entries(s), 4); /* old and f1 are not dropped yet */
    nx_hll *ref;
    assert_int_equal(nx_hll_create(14, &ref), 0);
    assert_int_equal(nx_hll_add_hash(ref, f2), 0);
    assert_int_equal(nx_hll_add_hash(ref, cur), 0);
    const int64_t froms[] = {now - H, now - 1000, 0, -1, INT64_MIN / 2, INT64_MIN + 1, INT64_MIN};
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) {
        nx_hll *o;
        assert_int_equal(nx_hll_create(14, &o), 0);
        assert_int_equal(nx_shll_read(s, froms[i], now, o), 0);
        assert_hll_equal(o, ref, "extreme from", froms[i], now);
        nx_hll_destroy(o);
    }
    nx_hll_destroy(ref);
    nx_shll_destroy(s);
}

/* With a grave (nx_shll_set_grave), the grave and the sketch's pairs
 * (nx_shll_fold) hold, register by register, exactly an HLL of every
 * member ever added, at any age: pairs dropped dead went to the grave
 * first. Random streams (hot and cold members, late seconds, 1% around the
 * horizon edge), rates from sparse to dense, clock jumps past the horizon,
 * and each of: no sweeps, nx_shll_expire now and then, nx_shll_maintain
 * after every event. */
static void grave_run(uint32_t horizon, int mode, size_t nev, const unsigned *rates)
{
    nx_shll *s;
    nx_hll *grave, *ever;
    assert_int_equal(nx_shll_create(14, horizon, &s), 0);
    assert_int_equal(nx_hll_create(14, &grave), 0);
    assert_int_equal(nx_hll_create(14, &ever), 0);
    nx_shll_set_grave(s, grave);
    stream st = {NULL, 0, 0, 1700000000};
    unsigned rate = rates[0];
    int checks = 0, jumps = 0;
    for (size_t i = 0; i < nev; i++) {
        if (i % 5000 == 0)
            rate = rates[rng() % 4];
        if (i % 7919 == 7918) {
            st.now += (int64_t)horizon + (int64_t)(rng() % (2 * horizon));
            jumps++;
        }
        stream_step(&st, s, horizon, rate);
        assert_int_equal(nx_hll_add_hash(ever, st.evs[st.n - 1].hash), 0);
        if (mode == MAINTAIN_EVERY_EVENT)
            assert_int_equal(nx_shll_maintain(s, st.now), 0);
        else if (mode == EXPIRE_AT_CHECKS && rng() % 700 == 0)
            assert_int_equal(nx_shll_expire(s, st.now), 0);
        if (rng() % 1500 == 0 || i + 1 == nev) {
            nx_hll *all;
            assert_int_equal(nx_hll_create(14, &all), 0);
            assert_int_equal(nx_hll_merge(all, grave), 0);
            assert_int_equal(nx_shll_fold(s, all), 0);
            for (uint32_t r = 0; r < (1u << 14); r++)
                if (nx_hll_register(all, r) != nx_hll_register(ever, r))
                    fail_msg("register %u: %u held, %u ever added (event %zu)", r,
                             nx_hll_register(all, r), nx_hll_register(ever, r), i);
            nx_hll_destroy(all);
            checks++;
        }
    }
    assert_true(checks >= 10 && jumps >= 1);
    free(st.evs);
    nx_shll_destroy(s);
    nx_hll_destroy(grave);
    nx_hll_destroy(ever);
}

static void test_grave(void **st)
{
    (void)st;
    static const unsigned sparse_rates[] = {2, 4, 16, 64};
    static const unsigned dense_rates[] = {1024, 2, 256, 16};
    grave_run(400, NO_SWEEP, 60000 * (size_t)scale(), sparse_rates);
    grave_run(400, EXPIRE_AT_CHECKS, 60000 * (size_t)scale(), sparse_rates);
    grave_run(300, MAINTAIN_EVERY_EVENT, 60000 * (size_t)scale(), dense_rates);
    grave_run(7, NO_SWEEP, 40000 * (size_t)scale(), sparse_rates); /* a horizon of seconds */
    grave_run(4, EXPIRE_AT_CHECKS, 20000 * (size_t)scale(), sparse_rates);
}

/* nx_shll_add_hashes(batch) = nx_shll_add_hash for each hash in order:
 * twin sketches, each with its own grave, one fed event by event and one
 * by batches of 0..255 hashes of one second (mostly now, some late, some
 * around the horizon edge and the grave's "could die before the next fold"
 * age, some older than the horizon), with clock steps, jumps past the
 * horizon, and sweeps on both. After every batch the two encode to the
 * same bytes and take as many, their graves hold the same registers, and
 * the batched one keeps its invariants. Rates go from sparse to dense and back. */
static void add_hashes_run(uint32_t horizon, int nbatch)
{
    nx_shll *one, *bat, *fresh;
    nx_hll *g1, *g2;
    assert_int_equal(nx_shll_create(14, horizon, &one), 0);
    assert_int_equal(nx_shll_create(14, horizon, &bat), 0);
    assert_int_equal(nx_shll_create(14, horizon, &fresh), 0);
    assert_int_equal(nx_hll_create(14, &g1), 0);
    assert_int_equal(nx_hll_create(14, &g2), 0);
    nx_shll_set_grave(one, g1);
    nx_shll_set_grave(bat, g2);
    int64_t now = 1700000000, h = (int64_t)horizon;
    uint64_t hs[255];
    nx_buf b1 = {0}, b2 = {0};
    bool dense = false, grave_young = false;
    for (int i = 0; i < nbatch; i++) {
        uint64_t k = rng() % 100;
        if (k < 2)
            now += h + (int64_t)(rng() % (uint64_t)(2 * h)); /* past the horizon */
        else if (k < 60)
            now += (int64_t)(rng() % 3);
        int64_t sec = now;
        k = rng() % 100;
        if (k < 15)
            sec = now - (int64_t)(rng() % (uint64_t)h); /* late, maybe to the grave at once */
        else if (k < 20)
            sec = now - h - 2 + (int64_t)(rng() % 5); /* the horizon's edge */
        else if (k < 22)
            sec = now - 3 * h;
        grave_young |= sec < now && now - sec < h;
        uint32_t n = (uint32_t)(rng() % 256);
        bool hot = rng() % 4 == 0; /* mostly fresh members: the pairs pile up */
        for (uint32_t j = 0; j < n; j++) {
            uint64_t m = hot ? rng() % 300 : 1000 + rng() % (1u << 22);
            hs[j] = member_hash(m);
            assert_int_equal(nx_shll_add_hash(one, hs[j], sec, now), 0);
        }
        nx_shll_prefetch(bat, hs, n);
        assert_int_equal(nx_shll_add_hashes(bat, hs, n, sec, now), 0);
        if (rng() % 50 == 0) {
            assert_int_equal(nx_shll_maintain(one, now), 0);
            assert_int_equal(nx_shll_maintain(bat, now), 0);
        }
        assert_int_equal(nx_shll_check(bat, now), 0);
        b1.len = b2.len = 0;
        assert_int_equal(nx_shll_encode(one, now, &b1), 0);
        assert_int_equal(nx_shll_encode(bat, now, &b2), 0);
        if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len))
            fail_msg("batch %d (n %u, sec now-%lld): the batched sketch differs", i, n,
                     (long long)(now - sec));
        assert_int_equal(nx_shll_bytes(bat), nx_shll_bytes(one)); /* dead pairs alike */
        for (uint32_t r = 0; r < (1u << 14); r++)
            if (nx_hll_register(g1, r) != nx_hll_register(g2, r))
                fail_msg("batch %d: grave register %u: %u one by one, %u batched", i, r,
                         nx_hll_register(g1, r), nx_hll_register(g2, r));
        dense |= nx_shll_bytes(bat) >= nx_shll_bytes(fresh) + 65536;
    }
    assert_true(dense && grave_young);
    nx_buf_free(&b1);
    nx_buf_free(&b2);
    nx_shll_destroy(one);
    nx_shll_destroy(bat);
    nx_shll_destroy(fresh);
    nx_hll_destroy(g1);
    nx_hll_destroy(g2);
}

static void test_add_hashes(void **st)
{
    (void)st;
    add_hashes_run(400, 600);
    add_hashes_run(7, 600); /* a horizon of seconds: late pairs go to the grave at once */
}

int main(void)
{
    rng_state = 0x5111ab1eull;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_property_expire),
        cmocka_unit_test(test_property_dense),
        cmocka_unit_test(test_property_no_expire),
        cmocka_unit_test(test_property_maintain),
        cmocka_unit_test(test_maintain),
        cmocka_unit_test(test_property_wrap_p18),
        cmocka_unit_test(test_entries_bound),
        cmocka_unit_test(test_expire),
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_codec_corrupt),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_read_extreme_from),
        cmocka_unit_test(test_dense_dead_head),
        cmocka_unit_test(test_grave),
        cmocka_unit_test(test_add_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
