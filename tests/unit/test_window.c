/*
 * test_window.c — property test of the sliding windows, the series tiers
 * and all-time, through the engine API, against a from-scratch model.
 *
 * For each stream type, a random event stream (random values and weights,
 * timestamps at now, late within tolerance, too late, slightly and too far in
 * the future, random gaps including gaps longer than the longest window and
 * the longest tier retention) is applied while the model keeps the raw
 * accepted events. At random moments every window is read and compared with
 * a recomputation over exactly the events the window's definition covers:
 *     clock T = max(accepted event seconds, read seconds);
 *     window L/b covers the seconds [(floor(T/b) - L/b) * b, T].
 * count/sum to 1e-9 relative, min/max exactly, quantiles equal to a DDSketch
 * built from exactly those events (same alpha), distinct equal to an HLL of
 * exactly those members, every top-k count within the SpaceSaving bounds of
 * the exact frequency. Series points (10 s steps over the last 100 s) are
 * compared with the model too. Three window sets: the defaults (a cascade
 * chain 1 s -> 5 s -> 30 s -> 300 s), uneven ones, and a cascade tree.
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
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_topk.h"
#include "window/nx_window.h"
#include "test_window_cfg.h"

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

static void assert_rel_at(double got, double want, double tol, const char *what, int line)
{
    double d = fabs(got - want), m = fabs(want) > 1 ? fabs(want) : 1;
    if (!(d <= tol * m))
        fail_msg("line %d %s: got %.17g want %.17g", line, what, got, want);
}
#define assert_rel(g, w, t, what) assert_rel_at((g), (w), (t), (what), __LINE__)

#define NMEMBERS 300

typedef struct ev {
    int64_t sec;
    double v, w;
    uint32_t mem;
} ev;

typedef struct model {
    ev *evs;
    size_t n, cap;
    int64_t clock;      /* seconds */
    int64_t maxnow;     /* ms */
    double last;
    int64_t last_ts;
    /* all-time */
    double count, sum, min, max;
    nx_ddsketch *dd;
    nx_hll *hll;
} model;

static int64_t sec_of(int64_t ms)
{
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}
static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b) && (a < 0))
        q--;
    return q;
}

static void member_name(uint32_t m, char *buf, uint32_t *len)
{
    *len = (uint32_t)snprintf(buf, 16, "m%u", m);
}

static uint32_t zipf_member(void)
{
    /* skewed: a few heavy members, a long tail */
    double u = urand();
    return (uint32_t)(NMEMBERS * u * u * u);
}

/* Compares a window read with the model's recomputation. */
static void check_window(nx_stream *s, nx_type type, const model *md, const nx_window_spec *ws,
                         int64_t now_ms, const nx_engine_config *cfg)
{
    nx_summary out;
    int rc = nx_stream_read(s, ws->length_s, now_ms, &out);
    assert_int_equal(rc, 0);
    int64_t T = md->clock;
    int64_t start = (floordiv(T, ws->bucket_s) - ws->length_s / ws->bucket_s) * ws->bucket_s;
    double count = 0, sum = 0, mn = INFINITY, mx = -INFINITY;
    nx_ddsketch *dd = NULL;
    nx_hll *hll = NULL;
    double freq[NMEMBERS];
    memset(freq, 0, sizeof(freq));
    if (nx_type_has_quantiles(type))
        assert_int_equal(nx_ddsketch_create(cfg->alpha, cfg->ddsketch_max_bins, &dd), 0);
    if (type == NX_TYPE_SET)
        assert_int_equal(nx_hll_create(cfg->hll_precision, &hll), 0);
    for (size_t i = 0; i < md->n; i++) {
        const ev *e = &md->evs[i];
        if (e->sec < start || e->sec > T)
            continue;
        count += e->w;
        if (type == NX_TYPE_SET) {
            char buf[16];
            uint32_t len;
            member_name(e->mem, buf, &len);
            nx_hll_add(hll, buf, len);
            freq[e->mem] += e->w;
            continue;
        }
        sum += e->v * e->w;
        if (e->v < mn)
            mn = e->v;
        if (e->v > mx)
            mx = e->v;
        if (dd)
            nx_ddsketch_add(dd, e->v, e->w);
    }
    assert_rel(out.count, count, 1e-9, "count");
    if (type != NX_TYPE_SET) {
        assert_rel(out.sum, sum, 1e-9, "sum");
        if (count > 0) {
            if (out.min != mn || out.max != mx)
                fail_msg("window %u min/max: got %.17g/%.17g want %.17g/%.17g", ws->length_s,
                         out.min, out.max, mn, mx);
            assert_rel(out.mean, sum / count, 1e-9, "mean");
        }
    }
    if (type == NX_TYPE_GAUGE) {
        assert_true(out.last == md->last);
        assert_true(out.last_ts == md->last_ts);
    }
    if (dd) {
        static const double qs[] = {0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1};
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
            double a = nx_summary_quantile(&out, qs[i]), b = nx_ddsketch_quantile(dd, qs[i]);
            if (count == 0) {
                assert_true(isnan(a) || out.dd == NULL);
                continue;
            }
            if (!(fabs(a - b) <= 1e-9 * fabs(b)))
                fail_msg("window %u q%.2f: got %.17g want %.17g", ws->length_s, qs[i], a, b);
        }
        nx_ddsketch_destroy(dd);
    }
    if (hll) {
        double a = nx_summary_distinct(&out), b = count > 0 ? nx_hll_estimate(hll) : 0;
        if (a != b)
            fail_msg("window %u distinct: got %.17g want %.17g", ws->length_s, a, b);
        nx_hll_destroy(hll);
        if (count > 0) {
            assert_non_null(out.topk);
            nx_topk_item items[256];
            size_t k = nx_topk_list(out.topk, items, 256);
            assert_true(k > 0 && k <= cfg->topk_capacity);
            for (size_t i = 0; i < k; i++) {
                char buf[17];
                memcpy(buf, items[i].member, items[i].member_len);
                buf[items[i].member_len] = 0;
                uint32_t m = (uint32_t)atoi(buf + 1);
                assert_true(m < NMEMBERS);
                double t = freq[m];
                if (!(items[i].count - items[i].error <= t + 1e-9 && t <= items[i].count + 1e-9))
                    fail_msg("window %u topk %s: count %.17g error %.17g true %.17g",
                             ws->length_s, buf, items[i].count, items[i].error, t);
            }
        }
    }
    nx_summary_free(&out);
}

static void check_all(nx_stream *s, nx_type type, const model *md, int64_t now_ms)
{
    nx_summary out;
    assert_int_equal(nx_stream_read(s, NX_WINDOW_ALL, now_ms, &out), 0);
    assert_rel(out.count, md->count, 1e-9, "all count");
    if (type != NX_TYPE_SET && md->count > 0) {
        assert_rel(out.sum, md->sum, 1e-9, "all sum");
        assert_true(out.min == md->min && out.max == md->max);
    }
    if (md->dd && md->count > 0) {
        for (double q = 0; q <= 1.0; q += 0.125) {
            double a = nx_summary_quantile(&out, q), b = nx_ddsketch_quantile(md->dd, q);
            assert_true(fabs(a - b) <= 1e-9 * fabs(b));
        }
    }
    if (md->hll && md->count > 0)
        assert_true(nx_summary_distinct(&out) == nx_hll_estimate(md->hll));
    nx_summary_free(&out);
}

/* Series at 10 s steps over [T-100 s, T+1 s): finest tier (1 s) covers it. */
static void check_series(nx_stream *s, nx_type type, const model *md, int64_t now_ms)
{
    int64_t T = md->clock;
    int64_t from = (T - 100) * 1000, to = (T + 1) * 1000;
    nx_point pts[32];
    int n = nx_stream_series(s, from, to, 10, now_ms, pts, 32);
    assert_true(n >= 0);
    int64_t lo = floordiv(T - 100, 10) * 10;
    struct {
        double c, s, mn, mx;
    } b[16];
    for (int i = 0; i < 16; i++) {
        b[i].c = 0;
        b[i].s = 0;
        b[i].mn = INFINITY;
        b[i].mx = -INFINITY;
    }
    for (size_t i = 0; i < md->n; i++) {
        const ev *e = &md->evs[i];
        if (e->sec < lo || e->sec > T)
            continue;
        int j = (int)((e->sec - lo) / 10);
        assert_true(j < 16);
        b[j].c += e->w;
        if (type != NX_TYPE_SET) {
            b[j].s += e->v * e->w;
            if (e->v < b[j].mn)
                b[j].mn = e->v;
            if (e->v > b[j].mx)
                b[j].mx = e->v;
        }
    }
    int k = 0;
    for (int j = 0; j < 16; j++) {
        if (!(b[j].c > 0))
            continue;
        assert_true(k < n);
        assert_true(pts[k].ts_ms == (lo + 10 * j) * 1000);
        assert_rel(pts[k].count, b[j].c, 1e-9, "series count");
        if (type != NX_TYPE_SET) {
            assert_rel(pts[k].sum, b[j].s, 1e-9, "series sum");
            assert_true(pts[k].min == b[j].mn && pts[k].max == b[j].mx);
        }
        k++;
    }
    assert_int_equal(k, n);
}

/* narrow: quantile values within ~17 DDSketch keys (100-140), so that
 * window sketches are dense and the complete sub-buckets of 30 s and more
 * are frozen (nx_ddsketch_freeze) and, by late events, thawed again. */
static void run_property_cfg(nx_type type, uint64_t seed, const nx_engine_config *cfgp,
                             bool narrow)
{
    rng_state = seed;
    nx_engine_config cfg = *cfgp;
    nx_engine *e;
    assert_int_equal(nx_engine_create(&cfg, &e), 0);
    nx_tenant *t;
    assert_int_equal(nx_engine_tenant(e, "acme", 4, &t), 0);
    nx_stream *s;
    assert_int_equal(nx_tenant_stream(t, "m|k:v", 5, type, &s), 0);

    model md;
    memset(&md, 0, sizeof(md));
    md.clock = INT64_MIN;
    md.maxnow = INT64_MIN;
    md.last_ts = INT64_MIN;
    md.min = INFINITY;
    md.max = -INFINITY;
    if (nx_type_has_quantiles(type))
        assert_int_equal(nx_ddsketch_create(cfg.alpha, cfg.ddsketch_max_bins, &md.dd), 0);
    if (type == NX_TYPE_SET)
        assert_int_equal(nx_hll_create(cfg.hll_precision, &md.hll), 0);

    static const double weights[] = {1, 1, 1, 1, 2, 4, 10, 0.5};
    int64_t now = 1700000000000ll + (int64_t)(rng() % 1000000);
    size_t nevents = 10000 * (size_t)scale();
    uint64_t late = 0, future = 0, reads = 0, gaps = 0;
    for (size_t i = 0; i < nevents; i++) {
        /* advance now */
        double r = urand();
        if (r < 0.0008) {
            now += (int64_t)(25 + rng() % 10) * 3600 * 1000; /* > every tier's retention */
            gaps++;
        } else if (r < 0.002) {
            now += (int64_t)(3600 + rng() % 2000) * 1000; /* > the longest window */
            gaps++;
        } else if (r < 0.02) {
            now += (int64_t)(rng() % 120000);
        } else {
            now += (int64_t)(rng() % 400);
        }
        if (now > md.maxnow)
            md.maxnow = now;
        /* timestamp */
        int64_t ts;
        double tr = urand();
        if (tr < 0.5)
            ts = 0;
        else if (tr < 0.8)
            ts = now - (int64_t)(rng() % 3000);
        else if (tr < 0.92)
            ts = now - (int64_t)(rng() % 60001); /* late, within tolerance */
        else if (tr < 0.95)
            ts = now - 60001 - (int64_t)(rng() % 200000); /* too late */
        else if (tr < 0.98)
            ts = now + (int64_t)(rng() % 10001); /* future, within tolerance */
        else
            ts = now + 10001 + (int64_t)(rng() % 50000); /* too far ahead */
        int64_t ets = ts ? ts : now;
        nx_update u;
        memset(&u, 0, sizeof(u));
        u.weight = weights[rng() % 8];
        u.ts_ms = ts;
        char mbuf[16];
        uint32_t mem = 0;
        switch (type) {
        case NX_TYPE_COUNTER:
            u.value = (double)(1 + rng() % 10);
            break;
        case NX_TYPE_GAUGE:
            u.gauge_delta = urand() < 0.3;
            u.value = u.gauge_delta ? (double)((int)(rng() % 21) - 10) : (double)(rng() % 1000);
            break;
        case NX_TYPE_SET:
            mem = zipf_member();
            member_name(mem, mbuf, &u.member_len);
            u.member = mbuf;
            break;
        default:
            if (narrow) {
                u.value = 100 + urand() * 40;
                break;
            }
            u.value = exp(urand() * 12 - 3);
            if (urand() < 0.05)
                u.value = -u.value;
            if (urand() < 0.02)
                u.value = 0;
            break;
        }
        int rc = nx_stream_update(s, &u, now);
        int64_t mnow = md.maxnow;
        if (ets < mnow - 60000) {
            assert_int_equal(rc, NX_ETOOLATE);
            late++;
            continue;
        }
        if (ets > mnow + 10000) {
            assert_int_equal(rc, NX_EFUTURE);
            future++;
            continue;
        }
        assert_int_equal(rc, 0);
        ev x = {sec_of(ets), u.value, u.weight, mem};
        if (type == NX_TYPE_GAUGE) {
            if (u.gauge_delta) {
                x.v = md.last + u.value;
                md.last = x.v;
                if (ets > md.last_ts)
                    md.last_ts = ets;
            } else if (ets >= md.last_ts) {
                md.last = u.value;
                md.last_ts = ets;
            }
        }
        if (x.sec > md.clock)
            md.clock = x.sec;
        if (md.n == md.cap) {
            md.cap = md.cap ? md.cap * 2 : 1024;
            md.evs = realloc(md.evs, md.cap * sizeof(ev));
            assert_non_null(md.evs);
        }
        md.evs[md.n++] = x;
        md.count += x.w;
        if (type != NX_TYPE_SET) {
            md.sum += x.v * x.w;
            if (x.v < md.min)
                md.min = x.v;
            if (x.v > md.max)
                md.max = x.v;
        }
        if (md.dd)
            nx_ddsketch_add(md.dd, x.v, x.w);
        if (md.hll)
            nx_hll_add(md.hll, u.member, u.member_len);

        if (urand() < 0.01) {
            /* read at a moment slightly after now, sometimes later */
            int64_t rnow = now + (urand() < 0.3 ? (int64_t)(rng() % 20000) : 0);
            if (rnow > md.maxnow)
                md.maxnow = rnow;
            now = md.maxnow;
            if (sec_of(md.maxnow) > md.clock)
                md.clock = sec_of(md.maxnow);
            for (uint32_t w = 0; w < cfg.nwindows; w++)
                check_window(s, type, &md, &cfg.windows[w], rnow, &cfg);
            check_all(s, type, &md, rnow);
            check_series(s, type, &md, rnow);
            reads++;
            /* prune events no window can cover any more */
            size_t k = 0;
            for (size_t j = 0; j < md.n; j++)
                if (md.evs[j].sec >= md.clock - 8000)
                    md.evs[k++] = md.evs[j];
            md.n = k;
        }
    }
    nx_tenant_stats st;
    nx_tenant_get_stats(t, &st);
    assert_int_equal(st.rejected_late, late);
    assert_int_equal(st.rejected_future, future);
    assert_true(reads > 20 && late > 0 && future > 0);
    (void)gaps;
    free(md.evs);
    nx_ddsketch_destroy(md.dd);
    nx_hll_destroy(md.hll);
    nx_engine_destroy(e);
}

static void run_property(nx_type type, uint64_t seed)
{
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    run_property_cfg(type, seed, &cfg, false);
}

/* Another shape: a ring too big to live in the stream's block (600/5: 121
 * slots), uneven windows, a short late tolerance, other tiers. */
static void run_property_alt(nx_type type, uint64_t seed, bool narrow)
{
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    cfg.nwindows = 4;
    cfg.windows[0] = (nx_window_spec){3, 3};
    cfg.windows[1] = (nx_window_spec){120, 2};
    cfg.windows[2] = (nx_window_spec){600, 5};
    cfg.windows[3] = (nx_window_spec){7200, 600};
    cfg.ntiers = 2;
    cfg.tiers[0] = (nx_tier_spec){1, 200};
    cfg.tiers[1] = (nx_tier_spec){5, 1000};
    cfg.topk_capacity = 16;
    run_property_cfg(type, seed, &cfg, narrow);
}

/* The tree-shaped cascade of test_window_cfg.h, with 8 top-k counters. */
static void run_property_tree(nx_type type, uint64_t seed, bool narrow)
{
    nx_engine_config cfg;
    test_window_cfg_tree(&cfg);
    cfg.topk_capacity = 8;
    run_property_cfg(type, seed, &cfg, narrow);
}

static void test_tree_counter(void **st) { (void)st; run_property_tree(NX_TYPE_COUNTER, 21, false); }
static void test_tree_timer(void **st) { (void)st; run_property_tree(NX_TYPE_TIMER, 22, false); }
static void test_tree_set(void **st) { (void)st; run_property_tree(NX_TYPE_SET, 23, false); }
static void test_tree_timer_narrow(void **st) { (void)st; run_property_tree(NX_TYPE_TIMER, 24, true); }

static void test_alt_counter(void **st) { (void)st; run_property_alt(NX_TYPE_COUNTER, 11, false); }
static void test_alt_distribution(void **st) { (void)st; run_property_alt(NX_TYPE_DISTRIBUTION, 12, false); }
static void test_alt_set(void **st) { (void)st; run_property_alt(NX_TYPE_SET, 13, false); }
static void test_alt_timer_narrow(void **st) { (void)st; run_property_alt(NX_TYPE_TIMER, 14, true); }

/* nx_floordiv_near (the windows' and tiers' index without a division when
 * the caller's guess is right or one short) equals floor division for
 * every guess, right or wrong, near or far, and every sign. */
static void test_floordiv_near(void **st)
{
    (void)st;
    static const int64_t bs[] = {1, 5, 10, 30, 60, 300, 3600, 86400};
    static const int64_t far[] = {INT64_MIN / 4, INT64_MAX / 4, INT64_MIN / 2 + 1, 0};
    uint64_t r = 12345;
    for (int i = 0; i < 200000; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int64_t b = bs[(r >> 33) % 8];
        int64_t a = (int64_t)(r >> 20) % 5000000 - 1000000;
        int64_t q = floordiv(a, b);
        int64_t g = (i & 3) == 3 ? far[(r >> 40) % 4] : q + (int64_t)((r >> 50) % 5) - 2;
        assert_int_equal(nx_floordiv_near(a, b, g), q);
    }
    assert_int_equal(nx_floordiv_near(INT64_MAX / 2, 1000, INT64_MAX / 2000), floordiv(INT64_MAX / 2, 1000));
    /* a window's initial cur_k (INT64_MIN / 4) times a width of 4 is
     * INT64_MIN itself: a - lo does not fit a signed 64-bit integer */
    for (int64_t b = 1; b <= 8; b++)
        for (int64_t a = -3; a <= 3; a++) {
            assert_int_equal(nx_floordiv_near(a * 1000003, b, INT64_MIN / b), floordiv(a * 1000003, b));
            assert_int_equal(nx_floordiv_near(a * 1000003, b, INT64_MIN / 4), floordiv(a * 1000003, b));
        }
}

static void test_counter(void **st) { (void)st; run_property(NX_TYPE_COUNTER, 1); }
static void test_gauge(void **st) { (void)st; run_property(NX_TYPE_GAUGE, 2); }
static void test_timer(void **st) { (void)st; run_property(NX_TYPE_TIMER, 3); }
static void test_histogram(void **st) { (void)st; run_property(NX_TYPE_HISTOGRAM, 4); }
static void test_distribution(void **st) { (void)st; run_property(NX_TYPE_DISTRIBUTION, 5); }
static void test_set(void **st) { (void)st; run_property(NX_TYPE_SET, 6); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_floordiv_near),
        cmocka_unit_test(test_tree_counter), cmocka_unit_test(test_tree_timer),
        cmocka_unit_test(test_tree_set),  cmocka_unit_test(test_tree_timer_narrow),
        cmocka_unit_test(test_alt_timer_narrow),
        cmocka_unit_test(test_counter),   cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_timer),     cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_distribution), cmocka_unit_test(test_set),
        cmocka_unit_test(test_alt_counter), cmocka_unit_test(test_alt_distribution),
        cmocka_unit_test(test_alt_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
