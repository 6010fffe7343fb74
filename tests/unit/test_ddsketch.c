/*
 * test_ddsketch.c — DDSketch quantiles against exact order statistics
 * (sorted copies) on uniform, lognormal, Pareto, bimodal and adversarial
 * inputs; merge == sketch of the union (same bins); sub undoes merge and
 * empties exactly; collapsing; weights; codec round trip, truncations and
 * byte flips.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/nx_codec.h"
#include "sketch/nx_ddsketch.h"

#include "test_rng.h"
static double urand(void) { return ((double)(rng() >> 11) + 0.5) * 0x1.0p-53; } /* (0,1) */
static double nrand(void) { return sqrt(-2 * log(urand())) * cos(2 * M_PI * urand()); }

static size_t test_n(void)
{
    return (size_t)1000000 * (size_t)scale();
}

static const double QS[] = {0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1};
#define NQ (sizeof QS / sizeof QS[0])

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Every quantile in QS is within alpha (plus float rounding) of the exact
 * order statistic x_(floor(q (n-1))). */
static void check_quantiles(const nx_ddsketch *s, const double *vals, size_t n, const char *what)
{
    double *sorted = malloc(n * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, vals, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_dbl);
    double alpha = nx_ddsketch_alpha(s);
    assert_true(nx_ddsketch_count(s) == (double)n);
    for (size_t i = 0; i < NQ; i++) {
        double q = QS[i];
        double want = sorted[(size_t)floor(q * (double)(n - 1))];
        double got = nx_ddsketch_quantile(s, q);
        double err = fabs(got - want);
        if (!(err <= alpha * fabs(want) * (1 + 1e-9) + 1e-300))
            fail_msg("%s: q=%g got %.17g want %.17g rel err %.3g > alpha %g", what, q, got, want,
                     err / fabs(want), alpha);
    }
    free(sorted);
}

typedef void (*gen_fn)(double *v, size_t n);

static void gen_uniform(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = urand() * 1000;
}
static void gen_lognormal(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = exp(1 + 2 * nrand());
}
static void gen_pareto(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = 1.0 / pow(urand(), 1 / 1.1);
}
static void gen_bimodal(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (rng() & 1) ? 10 + nrand() : 1e4 * (1 + 0.1 * nrand());
}
/* 1e-9..1e9 magnitudes, 30% one duplicate value, negatives, zeros, tiny
 * subnormals (-> zero bucket) */
static void gen_adversarial(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng() % 100;
        double mag = pow(10, -9 + 18 * urand());
        if (r < 30)
            v[i] = 42.0;
        else if (r < 40)
            v[i] = 0.0;
        else if (r < 42)
            v[i] = 1e-310; /* subnormal: counted as zero */
        else if (r < 65)
            v[i] = -mag;
        else
            v[i] = mag;
    }
}

static void run_dist(gen_fn gen, const char *name, double alpha, uint32_t max_bins)
{
    size_t n = test_n();
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    gen(v, n);
    nx_ddsketch *s;
    assert_int_equal(nx_ddsketch_create(alpha, max_bins, &s), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(nx_ddsketch_add(s, v[i], 1.0), 0);
    assert_false(nx_ddsketch_collapsed(s));
    /* a subnormal quantile is reported as 0: relative error 1 — so compare
     * against the data with subnormals mapped to zero */
    for (size_t i = 0; i < n; i++)
        if (fabs(v[i]) < DBL_MIN)
            v[i] = 0;
    check_quantiles(s, v, n, name);
    assert_true(nx_ddsketch_bytes(s) <= sizeof(double) * 2 * (max_bins + 16) + 256);
    nx_ddsketch_destroy(s);
    free(v);
}

static void test_uniform(void **st) { run_dist(gen_uniform, "uniform", 0.01, 2048); }
static void test_lognormal(void **st) { run_dist(gen_lognormal, "lognormal", 0.01, 2048); }
static void test_pareto(void **st) { run_dist(gen_pareto, "pareto", 0.01, 2048); }
static void test_bimodal(void **st) { run_dist(gen_bimodal, "bimodal", 0.01, 2048); }
/* 1e-9..1e9 needs ~2100 bins at 1%: give it room so nothing collapses */
static void test_adversarial(void **st) { run_dist(gen_adversarial, "adversarial", 0.01, 4096); }
static void test_other_alpha(void **st)
{
    run_dist(gen_lognormal, "lognormal a=5%", 0.05, 2048);
    run_dist(gen_adversarial, "adversarial a=0.2%", 0.002, 32768);
}

static void test_small_and_empty(void **st)
{
    nx_ddsketch *s;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &s), 0);
    assert_true(isnan(nx_ddsketch_quantile(s, 0.5)));
    assert_true(nx_ddsketch_count(s) == 0);
    assert_int_equal(nx_ddsketch_add(s, NAN, 1), NX_EINVAL);
    assert_int_equal(nx_ddsketch_add(s, INFINITY, 1), NX_EINVAL);
    assert_int_equal(nx_ddsketch_add(s, 1, 0), NX_EINVAL);
    assert_int_equal(nx_ddsketch_add(s, 1, -1), NX_EINVAL);
    assert_int_equal(nx_ddsketch_add(s, 5.0, 1), 0);
    for (size_t i = 0; i < NQ; i++)
        assert_true(fabs(nx_ddsketch_quantile(s, QS[i]) - 5.0) <= 0.05);
    assert_true(isnan(nx_ddsketch_quantile(s, 1.5)));
    assert_true(isnan(nx_ddsketch_quantile(s, -0.1)));
    /* extremes of the double range */
    assert_int_equal(nx_ddsketch_add(s, DBL_MAX, 1), 0);
    assert_int_equal(nx_ddsketch_add(s, -DBL_MAX, 1), 0);
    assert_int_equal(nx_ddsketch_add(s, DBL_MIN, 1), 0);
    assert_true(nx_ddsketch_quantile(s, 1) >= DBL_MAX * 0.98);
    assert_true(nx_ddsketch_quantile(s, 0) <= -DBL_MAX * 0.98);
    nx_ddsketch_clear(s);
    assert_true(isnan(nx_ddsketch_quantile(s, 0.5)));
    nx_ddsketch *bad;
    assert_int_equal(nx_ddsketch_create(0, 2048, &bad), NX_EINVAL);
    assert_int_equal(nx_ddsketch_create(0.01, 2, &bad), NX_EINVAL);
    nx_ddsketch *other;
    assert_int_equal(nx_ddsketch_create(0.02, 2048, &other), 0);
    assert_int_equal(nx_ddsketch_merge(s, other), NX_EINVAL);
    nx_ddsketch_destroy(other);
    nx_ddsketch_destroy(s);
}

static void test_weights(void **st)
{
    nx_ddsketch *a, *b;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &a), 0);
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &b), 0);
    for (int i = 0; i < 1000; i++) {
        double x = exp(3 * nrand());
        assert_int_equal(nx_ddsketch_add(a, x, 4), 0); /* sample rate 0.25 */
        for (int j = 0; j < 4; j++)
            assert_int_equal(nx_ddsketch_add(b, x, 1), 0);
    }
    assert_true(nx_ddsketch_equal(a, b));
    for (size_t i = 0; i < NQ; i++)
        assert_true(nx_ddsketch_quantile(a, QS[i]) == nx_ddsketch_quantile(b, QS[i]));
    nx_ddsketch_destroy(a);
    nx_ddsketch_destroy(b);
}

/* merging K sketches of a partition equals the sketch of the union */
static void merge_partition(gen_fn gen, uint32_t max_bins, int expect_collapse)
{
    enum { K = 7 };
    size_t n = test_n() / 4;
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    gen(v, n);
    nx_ddsketch *all, *part[K], *m;
    assert_int_equal(nx_ddsketch_create(0.01, max_bins, &all), 0);
    for (int i = 0; i < K; i++)
        assert_int_equal(nx_ddsketch_create(0.01, max_bins, &part[i]), 0);
    /* skewed partition: part 0 gets a few values only (stays sparse) */
    for (size_t i = 0; i < n; i++) {
        int p = (i % 1000 == 0) ? 0 : 1 + (int)(rng() % (K - 1));
        assert_int_equal(nx_ddsketch_add(all, v[i], 1), 0);
        assert_int_equal(nx_ddsketch_add(part[p], v[i], 1), 0);
    }
    assert_int_equal(nx_ddsketch_create(0.01, max_bins, &m), 0);
    for (int i = 0; i < K; i++)
        assert_int_equal(nx_ddsketch_merge(m, part[i]), 0);
    assert_true(nx_ddsketch_equal(m, all));
    assert_true(nx_ddsketch_count(m) == nx_ddsketch_count(all));
    assert_int_equal(nx_ddsketch_collapsed(all), expect_collapse);
    for (size_t i = 0; i < NQ; i++)
        assert_true(nx_ddsketch_quantile(m, QS[i]) == nx_ddsketch_quantile(all, QS[i]));
    /* other order: sparse-into-dense and dense-into-sparse */
    nx_ddsketch *m2;
    assert_int_equal(nx_ddsketch_clone(part[0], &m2), 0);
    for (int i = K - 1; i >= 1; i--)
        assert_int_equal(nx_ddsketch_merge(m2, part[i]), 0);
    assert_true(nx_ddsketch_equal(m2, all));
    /* sub undoes merge: (all - part[i]) for each i, back to part 0 */
    for (int i = K - 1; i >= 1; i--)
        assert_int_equal(nx_ddsketch_sub(m2, part[i]), 0);
    if (!expect_collapse) {
        assert_true(nx_ddsketch_equal(m2, part[0]));
        for (size_t i = 0; i < NQ; i++)
            assert_true(nx_ddsketch_quantile(m2, QS[i]) == nx_ddsketch_quantile(part[0], QS[i]));
    }
    size_t held = nx_ddsketch_bytes(m2);
    assert_int_equal(nx_ddsketch_sub(m2, part[0]), 0);
    if (!expect_collapse) {
        assert_true(nx_ddsketch_count(m2) == 0);
        assert_true(isnan(nx_ddsketch_quantile(m2, 0.5)));
        nx_ddsketch *e;
        assert_int_equal(nx_ddsketch_create(0.01, max_bins, &e), 0);
        /* emptied, the storage is kept for reuse (and still counted) */
        assert_int_equal(nx_ddsketch_bytes(m2), held);
        assert_true(nx_ddsketch_bytes(m2) > nx_ddsketch_bytes(e));
        assert_true(nx_ddsketch_equal(m2, e));
        /* and refills like a fresh sketch */
        assert_int_equal(nx_ddsketch_merge(m2, part[0]), 0);
        assert_int_equal(nx_ddsketch_merge(e, part[0]), 0);
        assert_true(nx_ddsketch_equal(m2, e));
        assert_true(nx_ddsketch_count(m2) == nx_ddsketch_count(e));
        for (size_t i = 0; i < NQ; i++)
            assert_true(nx_ddsketch_quantile(m2, QS[i]) == nx_ddsketch_quantile(e, QS[i]));
        nx_ddsketch_destroy(e);
    }
    nx_ddsketch_destroy(m2);
    for (int i = 0; i < K; i++)
        nx_ddsketch_destroy(part[i]);
    nx_ddsketch_destroy(m);
    nx_ddsketch_destroy(all);
    free(v);
}

static void test_merge_union(void **st)
{
    merge_partition(gen_lognormal, 2048, 0);
    merge_partition(gen_adversarial, 4096, 0);
    merge_partition(gen_bimodal, 2048, 0);
}

/* collapsing commutes with merging, and upper quantiles keep the bound */
static void test_collapse(void **st)
{
    merge_partition(gen_adversarial, 64, 1);
    size_t n = 200000;
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    nx_ddsketch *s;
    assert_int_equal(nx_ddsketch_create(0.01, 100, &s), 0);
    for (size_t i = 0; i < n; i++) {
        v[i] = pow(10, 6 * urand()); /* 1..1e6 needs ~700 bins */
        assert_int_equal(nx_ddsketch_add(s, v[i], 1), 0);
    }
    assert_true(nx_ddsketch_collapsed(s));
    assert_true(nx_ddsketch_bytes(s) <= 200 + 8 * (100 + 16));
    qsort(v, n, sizeof *v, cmp_dbl);
    /* bins cover gamma^100 ~ 7.4x below the max: q >= 0.9 is safe */
    const double hq[] = {0.9, 0.99, 0.999, 1};
    for (int i = 0; i < 4; i++) {
        double want = v[(size_t)floor(hq[i] * (double)(n - 1))];
        double got = nx_ddsketch_quantile(s, hq[i]);
        assert_true(fabs(got - want) <= 0.01 * want * (1 + 1e-9));
    }
    /* the low quantiles are the fold bin: NOT within alpha, reported */
    assert_true(nx_ddsketch_quantile(s, 0) > 2 * v[0]);
    nx_ddsketch_destroy(s);
    free(v);
}

/* a window of buckets with fractional weights: the evicted sketch becomes
 * exactly empty */
static void test_sub_window(void **st)
{
    enum { B = 30, WIN = 5 };
    nx_ddsketch *bucket[B], *win;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &win), 0);
    size_t empty_bytes = nx_ddsketch_bytes(win);
    for (int i = 0; i < B; i++) {
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &bucket[i]), 0);
        for (int j = 0; j < 3000; j++) {
            double x = (rng() % 10 == 0 ? -1 : 1) * exp(2 * nrand() + i * 0.1);
            assert_int_equal(nx_ddsketch_add(bucket[i], x, 1.0 / 0.3), 0);
        }
        assert_int_equal(nx_ddsketch_merge(win, bucket[i]), 0);
        if (i >= WIN)
            assert_int_equal(nx_ddsketch_sub(win, bucket[i - WIN]), 0);
        /* compare with a freshly merged window */
        nx_ddsketch *fresh;
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &fresh), 0);
        for (int j = i >= WIN ? i - WIN + 1 : 0; j <= i; j++)
            assert_int_equal(nx_ddsketch_merge(fresh, bucket[j]), 0);
        assert_true(fabs(nx_ddsketch_count(win) - nx_ddsketch_count(fresh)) <=
                    1e-9 * nx_ddsketch_count(fresh));
        for (size_t q = 0; q < NQ; q++)
            assert_true(nx_ddsketch_quantile(win, QS[q]) == nx_ddsketch_quantile(fresh, QS[q]));
        nx_ddsketch_destroy(fresh);
    }
    for (int i = B - WIN; i < B; i++)
        assert_int_equal(nx_ddsketch_sub(win, bucket[i]), 0);
    assert_true(nx_ddsketch_count(win) == 0);
    assert_true(isnan(nx_ddsketch_quantile(win, 0.5)));
    /* emptied: storage kept for the next window contents, still counted */
    assert_true(nx_ddsketch_bytes(win) > empty_bytes);
    for (int i = 0; i < B; i++)
        nx_ddsketch_destroy(bucket[i]);
    nx_ddsketch_destroy(win);
}

static void codec_check(const nx_ddsketch *s)
{
    nx_buf b = {0};
    assert_int_equal(nx_ddsketch_encode(s, &b), 0);
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    nx_ddsketch *d;
    assert_int_equal(nx_ddsketch_decode(&r, &d), 0);
    assert_int_equal(r.n, 0);
    assert_true(nx_ddsketch_equal(s, d));
    assert_true(nx_ddsketch_count(s) == nx_ddsketch_count(d));
    assert_int_equal(nx_ddsketch_collapsed(s), nx_ddsketch_collapsed(d));
    for (size_t i = 0; i < NQ; i++) {
        double x = nx_ddsketch_quantile(s, QS[i]), y = nx_ddsketch_quantile(d, QS[i]);
        assert_true(x == y || (isnan(x) && isnan(y)));
    }
    nx_buf b2 = {0};
    assert_int_equal(nx_ddsketch_encode(d, &b2), 0);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    nx_ddsketch_destroy(d);
    /* every truncation rejected */
    for (size_t len = 0; len < b.len; len++) {
        r = nx_rbuf_make(b.data, len);
        int rc = nx_ddsketch_decode(&r, &d);
        if (rc == 0)
            fail_msg("truncation to %zu of %zu accepted", len, b.len);
        assert_int_equal(rc, NX_ECORRUPT);
    }
    /* byte flips: rejected or a valid sketch */
    uint8_t *tmp = malloc(b.len);
    assert_non_null(tmp);
    int iters = b.len > 2000 ? 2000 : 5000;
    for (int it = 0; it < iters; it++) {
        flip_bytes(tmp, b.data, b.len);
        r = nx_rbuf_make(tmp, b.len);
        int rc = nx_ddsketch_decode(&r, &d);
        if (rc == 0) {
            double c = nx_ddsketch_count(d);
            assert_true(isfinite(c) && c >= 0);
            for (size_t i = 0; i < NQ; i++)
                (void)nx_ddsketch_quantile(d, QS[i]);
            assert_int_equal(nx_ddsketch_add(d, 1.5, 1), 0);
            nx_ddsketch *c2;
            assert_int_equal(nx_ddsketch_clone(d, &c2), 0);
            assert_int_equal(nx_ddsketch_merge(c2, d), 0);
            assert_int_equal(nx_ddsketch_sub(c2, d), 0);
            nx_ddsketch_destroy(c2);
            nx_ddsketch_destroy(d);
        } else {
            assert_true(rc == NX_ECORRUPT);
        }
    }
    free(tmp);
    nx_buf_free(&b);
    nx_buf_free(&b2);
}

/* A reused dense sketch (the window slots' pattern: clear, refill with a
 * different range, merge ranges reaching past either end of the array)
 * equals one built from scratch over the same values, whether the store
 * slides its bins in place or reallocates. */
static void test_reuse_shifting_ranges(void **st)
{
    (void)st;
    nx_ddsketch *reused, *fresh, *part;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &reused), 0);
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &part), 0);
    uint64_t seed = 99;
    for (int round = 0; round < 200; round++) {
        nx_ddsketch_clear(reused);
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &fresh), 0);
        /* a centre that wanders over three decades, narrow and wide spreads */
        double centre = pow(10.0, (double)(round % 7) / 2.0);
        for (int m = 0; m < 6; m++) {
            nx_ddsketch_clear(part);
            double spread = (m % 3 == 0) ? 1.05 : (m % 3 == 1 ? 3.0 : 40.0);
            double shift = (m & 1) ? spread : 1.0 / spread;
            for (int i = 0; i < 40; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                double u = (double)(seed >> 11) * 0x1.0p-53;
                double v = centre * shift * pow(spread, 2 * u - 1);
                assert_int_equal(nx_ddsketch_add(part, v, 1), 0);
                assert_int_equal(nx_ddsketch_add(fresh, v, 1), 0);
            }
            assert_int_equal(nx_ddsketch_merge(reused, part), 0);
        }
        assert_true(nx_ddsketch_equal(reused, fresh));
        nx_ddsketch_destroy(fresh);
    }
    nx_ddsketch_destroy(reused);
    nx_ddsketch_destroy(part);
}

/* nx_ddsketch_add_many is n adds in order: the same bins and counts, in
 * sparse and dense stores, with negative values, zeros and collapsing (a
 * 64-bin bound), in batches of every size up to and past its internal
 * chunk; invalid input adds nothing. */
static void test_add_many(void **st)
{
    (void)st;
    for (uint32_t bins = 64; bins <= 2048; bins *= 32) {
        nx_ddsketch *one, *many;
        assert_int_equal(nx_ddsketch_create(0.01, bins, &one), 0);
        assert_int_equal(nx_ddsketch_create(0.01, bins, &many), 0);
        double vals[40];
        for (int round = 0; round < 300; round++) {
            uint32_t n = (uint32_t)(rng() % 40);
            double w = (round % 3) ? 1.0 : 0.25 * (double)(1 + round % 7);
            for (uint32_t i = 0; i < n; i++) {
                uint64_t r = rng() % 10;
                vals[i] = r == 0 ? 0.0 : r == 1 ? -exp(3 * nrand()) : exp(4 * nrand());
                assert_int_equal(nx_ddsketch_add(one, vals[i], w), 0);
            }
            uint32_t done = 99;
            assert_int_equal(nx_ddsketch_add_many(many, vals, n, w, &done), 0);
            assert_int_equal(done, n);
            assert_true(nx_ddsketch_equal(one, many));
            assert_true(nx_ddsketch_count(one) == nx_ddsketch_count(many));
        }
        assert_true(nx_ddsketch_collapsed(many) == (bins == 64));
        double bad[3] = {1.0, NAN, 2.0};
        uint32_t done = 99;
        double before = nx_ddsketch_count(many);
        assert_int_equal(nx_ddsketch_add_many(many, bad, 3, 1.0, &done), NX_EINVAL);
        assert_int_equal(done, 0);
        assert_int_equal(nx_ddsketch_add_many(many, vals, 1, 0.0, &done), NX_EINVAL);
        assert_int_equal(nx_ddsketch_add_many(many, vals, 1, INFINITY, &done), NX_EINVAL);
        assert_true(nx_ddsketch_count(many) == before);
        nx_ddsketch_destroy(one);
        nx_ddsketch_destroy(many);
    }
}

/* A batch of positive values into a sparse store is merged in one pass
 * (sparse_add_batch): it must leave exactly what one-by-one adds leave —
 * bins, counts bit for bit (weights like 0.1 added once per value, repeats
 * of a key included), total, count and encoding — for batches of 2..16
 * values, narrow (repeats) and wide (spread, new keys among old), into
 * fresh, growing, cleared and collapsing (64-bin) sketches. */
static void test_add_packed_batch(void **st)
{
    (void)st;
    static const double weights[] = {1.0, 0.1, 0.25, 3.0};
    for (uint32_t bins = 64; bins <= 2048; bins *= 32) {
        double ilg = nx_ddsketch_inv_ln_gamma(0.01);
        nx_ddsketch *one, *batch;
        assert_int_equal(nx_ddsketch_create(0.01, bins, &one), 0);
        assert_int_equal(nx_ddsketch_create(0.01, bins, &batch), 0);
        for (int round = 0; round < 2000; round++) {
            if (round % 50 == 0) {
                nx_ddsketch_clear(one);
                nx_ddsketch_clear(batch);
            }
            uint32_t n = 2 + (uint32_t)(rng() % 15);
            double w = weights[rng() % 4], spread = (round % 4 == 0) ? 0.05 : (round % 4) * 1.5;
            int32_t packed[16];
            for (uint32_t i = 0; i < n; i++) {
                double v = 20.0 * exp(spread * nrand());
                packed[i] = nx_ddsketch_pack(ilg, v);
                uint32_t done = 0;
                assert_int_equal(nx_ddsketch_add_packed(one, &packed[i], 1, w, &done), 0);
                assert_int_equal(done, 1);
            }
            uint32_t done = 0;
            assert_int_equal(nx_ddsketch_add_packed(batch, packed, n, w, &done), 0);
            assert_int_equal(done, n);
            assert_true(nx_ddsketch_equal(one, batch));
            assert_true(nx_ddsketch_count(one) == nx_ddsketch_count(batch));
        }
        nx_buf a = {0}, b = {0};
        assert_int_equal(nx_ddsketch_encode(one, &a), 0);
        assert_int_equal(nx_ddsketch_encode(batch, &b), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        for (int i = 0; i <= 10; i++) {
            double q = i / 10.0;
            assert_true(nx_ddsketch_quantile(one, q) == nx_ddsketch_quantile(batch, q));
        }
        nx_buf_free(&a);
        nx_buf_free(&b);
        nx_ddsketch_destroy(one);
        nx_ddsketch_destroy(batch);
    }
}

/* Packed bins mapped with nx_ddsketch_inv_ln_gamma(alpha) alone (no
 * sketch), as the engine maps timer values when they come: each value's
 * sketch of one reports it within alpha, at every accepted alpha and at the
 * ends of the double range (|x| < DBL_MIN is the zero bucket), the class
 * and key survive packing (negative keys included), and a bad weight adds
 * nothing. */
/* A store is sparse while its keys are spread (range > 1.5 x bins) or it
 * has fewer than 16 bins, and a dense store whose keys come (or came, before
 * a clear) far too spread goes sparse again: a one-second sketch of 30
 * spread values is ~600 bytes, not a 1.5 KB array, whether it is fresh,
 * recycled after dense content, or was dense before its range widened —
 * and in every case it holds exactly what a fresh sketch of the same
 * values holds. */
static void test_sparse_when_spread(void **st)
{
    (void)st;
    double spread[30], tight[400];
    for (int i = 0; i < 30; i++)
        spread[i] = pow(1.1, i); /* keys ~4.8 apart: range ~140 for 30 bins */
    for (int i = 0; i < 400; i++)
        tight[i] = 100.0 + i * 0.25; /* ~35 keys in a row: dense */
    nx_ddsketch *ref, *d;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &ref), 0);
    for (int i = 0; i < 30; i++)
        assert_int_equal(nx_ddsketch_add(ref, spread[i], 1), 0);
    assert_true(nx_ddsketch_bytes(ref) < 800);
    /* recycled: dense content, cleared, then spread values */
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &d), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 400; i++)
            assert_int_equal(nx_ddsketch_add(d, tight[i] * (1 + round), 1), 0);
        assert_true(nx_ddsketch_bytes(d) > 450); /* dense: 192 + (35 * 1.25 + 8) * 8 */
        nx_ddsketch_clear(d);
        for (int i = 29; i >= 0; i--)
            assert_int_equal(nx_ddsketch_add(d, spread[i], 1), 0);
        assert_true(nx_ddsketch_equal(d, ref));
        assert_true(nx_ddsketch_bytes(d) < 800);
        for (int q = 0; q <= 10; q++)
            assert_true(nx_ddsketch_quantile(d, q / 10.0) == nx_ddsketch_quantile(ref, q / 10.0));
        nx_ddsketch_clear(d);
    }
    /* widened by a merge, then cleared: ~65 keys over a range of ~600 */
    for (int i = 0; i < 400; i++)
        assert_int_equal(nx_ddsketch_add(d, tight[i], 1), 0);
    nx_ddsketch *far;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &far), 0);
    for (int i = 0; i < 30; i++)
        assert_int_equal(nx_ddsketch_add(far, spread[i] * 1e6, 1), 0);
    assert_int_equal(nx_ddsketch_merge(d, far), 0);
    size_t wide = nx_ddsketch_bytes(d);
    assert_true(wide > 4000);
    nx_ddsketch_clear(d); /* goes sparse, room for ~65 bins */
    assert_true(nx_ddsketch_bytes(d) < wide / 2);
    assert_int_equal(nx_ddsketch_merge(d, far), 0);
    assert_true(nx_ddsketch_equal(d, far));
    nx_ddsketch_destroy(far);
    nx_ddsketch_destroy(d);
    /* widened: dense first (20 bins in a row), then keys far apart */
    nx_ddsketch *w, *w2;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &w), 0);
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &w2), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(nx_ddsketch_add(w, pow(1.0202, i) * 7, 1), 0);
    for (int i = 0; i < 30; i++)
        assert_int_equal(nx_ddsketch_add(w, spread[i] * 1e3, 2), 0);
    for (int i = 29; i >= 0; i--)
        assert_int_equal(nx_ddsketch_add(w2, spread[i] * 1e3, 2), 0);
    for (int i = 19; i >= 0; i--)
        assert_int_equal(nx_ddsketch_add(w2, pow(1.0202, i) * 7, 1), 0);
    assert_true(nx_ddsketch_equal(w, w2));
    assert_true(nx_ddsketch_count(w) == 80);
    assert_true(nx_ddsketch_bytes(w) < 1200);
    /* and merging the sparse pieces gives the dense union */
    nx_ddsketch *u;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &u), 0);
    assert_int_equal(nx_ddsketch_merge(u, w), 0);
    assert_int_equal(nx_ddsketch_merge(u, ref), 0);
    assert_true(nx_ddsketch_count(u) == 110);
    assert_int_equal(nx_ddsketch_sub(u, ref), 0);
    assert_true(nx_ddsketch_equal(u, w));
    nx_ddsketch_destroy(u);
    nx_ddsketch_destroy(w);
    nx_ddsketch_destroy(w2);
    nx_ddsketch_destroy(ref);
}

/* A sparse store that merges make hold NX_DD_MERGE_DENSE_MIN (32) entries
 * or more goes dense (later merges and subtractions touch only the bins of
 * what comes in) unless its range is wider than 8x its entries; either way
 * it holds exactly what adding every value holds, and subtracting a piece
 * gives back the rest. */
static void test_merge_target_dense(void **st)
{
    (void)st;
    for (int wide = 0; wide < 2; wide++) {
        double step = wide ? 1.5 : 1.1; /* keys ~20 apart (thin) or ~4.8 apart */
        nx_ddsketch *a, *b, *c, *sum, *ref;
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &a), 0);
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &b), 0);
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &c), 0);
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &sum), 0);
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &ref), 0);
        for (int i = 0; i < 20; i++) {
            double x = pow(step, 2 * i), y = pow(step, 2 * i + 1);
            assert_int_equal(nx_ddsketch_add(a, x, 1), 0);
            assert_int_equal(nx_ddsketch_add(b, y, 2), 0);
            assert_int_equal(nx_ddsketch_add(c, x, 3), 0); /* same keys as a */
            assert_int_equal(nx_ddsketch_add(ref, x, 4), 0);
            assert_int_equal(nx_ddsketch_add(ref, y, 2), 0);
        }
        assert_int_equal(nx_ddsketch_merge(sum, a), 0);
        assert_true(nx_ddsketch_bytes(sum) < 800); /* 20 entries: sparse */
        assert_int_equal(nx_ddsketch_merge(sum, b), 0); /* 40 entries */
        if (wide)
            assert_true(nx_ddsketch_bytes(sum) < 1200); /* range ~800: stays sparse */
        else
            assert_true(nx_ddsketch_bytes(sum) > 1500); /* range ~190: dense */
        assert_int_equal(nx_ddsketch_merge(sum, c), 0);
        assert_true(nx_ddsketch_equal(sum, ref));
        for (int q = 0; q <= 20; q++)
            assert_true(nx_ddsketch_quantile(sum, q / 20.0) == nx_ddsketch_quantile(ref, q / 20.0));
        assert_int_equal(nx_ddsketch_sub(sum, b), 0);
        assert_int_equal(nx_ddsketch_sub(sum, c), 0);
        assert_true(nx_ddsketch_equal(sum, a));
        nx_ddsketch_destroy(a);
        nx_ddsketch_destroy(b);
        nx_ddsketch_destroy(c);
        nx_ddsketch_destroy(sum);
        nx_ddsketch_destroy(ref);
    }
}

/* Reuse after a clear: n lognormal values (median m) into both sketches,
 * which must then be equal. */
static void reuse_both(nx_ddsketch *a, nx_ddsketch *b, int n, double m)
{
    for (int i = 0; i < n; i++) {
        double v = m * exp(nrand());
        assert_int_equal(nx_ddsketch_add(a, v, 1), 0);
        assert_int_equal(nx_ddsketch_add(b, v, 1), 0);
    }
    assert_true(nx_ddsketch_equal(a, b));
}

/* nx_ddsketch_fit: same bins, smaller arrays; a fitted sketch then goes on
 * (adds outside and inside its range, merges, subtractions, clear and
 * reuse) exactly as an unfitted copy does. Covers the array that shrinks
 * to its range, the one too sparse for an array (made sparse), a sparse
 * block cut to its entries, negative values, and sketches fit leaves alone
 * (empty, tight). */
static void test_fit(void **st)
{
    (void)st;
    for (int round = 0; round < 40; round++) {
        nx_ddsketch *a, *b, *other;
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &a), 0);
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &other), 0);
        /* a wide past: many values over 1e-3..1e6, then cleared (the
         * arrays keep their width), then a narrow present */
        for (int i = 0; i < 5000; i++) {
            double v = exp(urand() * 20 - 7);
            assert_int_equal(nx_ddsketch_add(a, (i & 7) == 0 ? -v : v, 1), 0);
        }
        nx_ddsketch_clear(a);
        int n = 10 + (int)(rng() % 3000);
        double spread = round % 3 == 0 ? 0.05 : round % 3 == 1 ? 0.6 : 4.0;
        for (int i = 0; i < n; i++) {
            double v = 50 * exp(spread * nrand());
            assert_int_equal(nx_ddsketch_add(a, (round & 1) && i % 5 == 0 ? -v : v, 1 + (i % 3)), 0);
        }
        assert_int_equal(nx_ddsketch_clone(a, &b), 0);
        size_t before = nx_ddsketch_bytes(a);
        nx_ddsketch_fit(a);
        assert_true(nx_ddsketch_bytes(a) <= before);
        assert_true(nx_ddsketch_equal(a, b));
        for (size_t q = 0; q < NQ; q++)
            assert_true(nx_ddsketch_quantile(a, QS[q]) == nx_ddsketch_quantile(b, QS[q]));
        nx_ddsketch_fit(a); /* idempotent */
        assert_true(nx_ddsketch_equal(a, b));
        /* what a window does next: late adds, merge, subtract, clear, reuse */
        for (int i = 0; i < 50; i++) {
            double v = exp(urand() * 16 - 4);
            assert_int_equal(nx_ddsketch_add(a, v, 1), 0);
            assert_int_equal(nx_ddsketch_add(b, v, 1), 0);
            assert_int_equal(nx_ddsketch_add(other, v * 3, 2), 0);
        }
        assert_true(nx_ddsketch_equal(a, b));
        assert_int_equal(nx_ddsketch_merge(a, other), 0);
        assert_int_equal(nx_ddsketch_merge(b, other), 0);
        assert_true(nx_ddsketch_equal(a, b));
        nx_ddsketch_fit(a);
        assert_int_equal(nx_ddsketch_sub(a, other), 0);
        assert_int_equal(nx_ddsketch_sub(b, other), 0);
        assert_true(nx_ddsketch_equal(a, b));
        assert_true(nx_ddsketch_count(a) == nx_ddsketch_count(b));
        nx_ddsketch_clear(a);
        nx_ddsketch_clear(b);
        reuse_both(a, b, 200, 7);
        nx_ddsketch_destroy(a);
        nx_ddsketch_destroy(b);
        nx_ddsketch_destroy(other);
    }
    /* the shrink itself: a 5,000-value wide sketch cleared and refilled
     * with ~40 adjacent keys fits in well under half its bytes */
    nx_ddsketch *w;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &w), 0);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(nx_ddsketch_add(w, exp(urand() * 20 - 7), 1), 0);
    nx_ddsketch_clear(w);
    for (int i = 0; i < 400; i++)
        assert_int_equal(nx_ddsketch_add(w, 100.0 + i * 0.5, 1), 0);
    size_t wide = nx_ddsketch_bytes(w);
    nx_ddsketch_fit(w);
    assert_true(nx_ddsketch_bytes(w) < wide / 2);
    /* sparse: 70 keys far apart in a block grown to 128 entries */
    nx_ddsketch *sp, *sp_ref;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &sp), 0);
    for (int i = 0; i < 70; i++)
        assert_int_equal(nx_ddsketch_add(sp, pow(1.1, i), 1 + i % 2), 0);
    assert_int_equal(nx_ddsketch_clone(sp, &sp_ref), 0);
    size_t grown = nx_ddsketch_bytes(sp);
    nx_ddsketch_fit(sp);
    assert_true(nx_ddsketch_bytes(sp) <= grown - 50 * 12);
    assert_true(nx_ddsketch_equal(sp, sp_ref));
    assert_int_equal(nx_ddsketch_add(sp, 1e5, 1), 0); /* grows again */
    assert_int_equal(nx_ddsketch_add(sp_ref, 1e5, 1), 0);
    assert_true(nx_ddsketch_equal(sp, sp_ref));
    nx_ddsketch_destroy(sp);
    nx_ddsketch_destroy(sp_ref);
    /* empty: nothing to fit, nothing changes */
    nx_ddsketch_clear(w);
    size_t empty = nx_ddsketch_bytes(w);
    nx_ddsketch_fit(w);
    assert_int_equal(nx_ddsketch_bytes(w), empty);
    assert_true(nx_ddsketch_count(w) == 0);
    nx_ddsketch_destroy(w);
}

/* nx_ddsketch_freeze: exact float counts, the same sketch for every reader
 * (bins, quantiles, encoding, clone, merges from it, subtraction of it from
 * an aggregate), half the bytes; anything writing it thaws it first; a clear
 * drops it; counts that are not exactly floats stay doubles. */
static void test_freeze(void **st)
{
    (void)st;
    for (int round = 0; round < 30; round++) {
        nx_ddsketch *a, *ref, *agg, *agg_ref;
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &a), 0);
        int n = 200 + (int)(rng() % 5000);
        for (int i = 0; i < n; i++) {
            double v = 100 + urand() * 60;
            assert_int_equal(nx_ddsketch_add(a, (round & 1) && i % 4 == 0 ? -v : v,
                                             i % 7 == 0 ? 0.5 : 1 + (i % 3)), 0);
        }
        assert_int_equal(nx_ddsketch_clone(a, &ref), 0);
        nx_ddsketch_fit(ref);
        size_t fitted = nx_ddsketch_bytes(ref);
        nx_ddsketch_freeze(a);
        size_t frozen = nx_ddsketch_bytes(a);
        assert_true(frozen < fitted);
        assert_true(nx_ddsketch_equal(a, ref) && nx_ddsketch_equal(ref, a));
        assert_true(nx_ddsketch_count(a) == nx_ddsketch_count(ref));
        for (size_t q = 0; q < NQ; q++)
            assert_true(nx_ddsketch_quantile(a, QS[q]) == nx_ddsketch_quantile(ref, QS[q]));
        nx_buf ea = {0}, er = {0};
        assert_int_equal(nx_ddsketch_encode(a, &ea), 0);
        assert_int_equal(nx_ddsketch_encode(ref, &er), 0);
        assert_int_equal(ea.len, er.len);
        assert_memory_equal(ea.data, er.data, ea.len);
        nx_buf_free(&ea);
        nx_buf_free(&er);
        nx_ddsketch *c;
        assert_int_equal(nx_ddsketch_clone(a, &c), 0);
        assert_int_equal(nx_ddsketch_bytes(c), frozen);
        assert_true(nx_ddsketch_equal(c, ref));
        /* a window's aggregate: merged with it, then it subtracted again */
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &agg), 0);
        assert_int_equal(nx_ddsketch_create(0.01, 2048, &agg_ref), 0);
        for (int i = 0; i < 300; i++) {
            double v = 90 + urand() * 80;
            assert_int_equal(nx_ddsketch_add(agg, v, 1), 0);
            assert_int_equal(nx_ddsketch_add(agg_ref, v, 1), 0);
        }
        assert_int_equal(nx_ddsketch_merge(agg, a), 0);
        assert_int_equal(nx_ddsketch_merge(agg_ref, ref), 0);
        assert_true(nx_ddsketch_equal(agg, agg_ref));
        assert_int_equal(nx_ddsketch_sub(agg, a), 0);
        assert_int_equal(nx_ddsketch_sub(agg_ref, ref), 0);
        assert_true(nx_ddsketch_equal(agg, agg_ref));
        assert_true(nx_ddsketch_count(agg) == nx_ddsketch_count(agg_ref));
        /* frozen on both sides, and frozen as the destination */
        assert_int_equal(nx_ddsketch_merge(c, a), 0); /* c thaws */
        assert_int_equal(nx_ddsketch_merge(agg_ref, ref), 0);
        assert_int_equal(nx_ddsketch_sub(agg_ref, ref), 0);
        assert_true(nx_ddsketch_count(c) == 2 * nx_ddsketch_count(ref));
        assert_int_equal(nx_ddsketch_sub(c, a), 0);
        assert_true(nx_ddsketch_equal(c, ref));
        /* a late event: the add thaws it and lands like on the copy */
        assert_int_equal(nx_ddsketch_add(a, 1e6, 3), 0);
        assert_int_equal(nx_ddsketch_add(ref, 1e6, 3), 0);
        assert_true(nx_ddsketch_equal(a, ref));
        nx_ddsketch_freeze(a);
        nx_ddsketch_freeze(a); /* idempotent */
        nx_ddsketch_fit(a);    /* leaves a frozen sketch alone */
        assert_true(nx_ddsketch_equal(a, ref));
        /* evicted: cleared, then reused like a new sketch */
        nx_ddsketch_clear(a);
        nx_ddsketch_clear(ref);
        assert_true(nx_ddsketch_count(a) == 0 && nx_ddsketch_equal(a, ref));
        reuse_both(a, ref, 100, 3);
        nx_ddsketch_destroy(a);
        nx_ddsketch_destroy(ref);
        nx_ddsketch_destroy(c);
        nx_ddsketch_destroy(agg);
        nx_ddsketch_destroy(agg_ref);
    }
    /* counts that are not exactly floats (sample rate 1/3) stay doubles */
    nx_ddsketch *t;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &t), 0);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(nx_ddsketch_add(t, 100 + (i % 40), 1.0 / 3.0), 0);
    nx_ddsketch_fit(t);
    size_t before = nx_ddsketch_bytes(t);
    nx_ddsketch_freeze(t);
    assert_int_equal(nx_ddsketch_bytes(t), before);
    nx_ddsketch_destroy(t);
}

static void test_pack_extremes(void **st)
{
    (void)st;
    static const double alphas[] = {1e-4, 0.01, 0.3, 0.5};
    static const double vals[] = {1.0, -1.0, 0.0, -0.0, 1e-300, -1e-300, DBL_MIN, -DBL_MIN,
                                  DBL_MAX, -DBL_MAX, 4.9e-324, 0.37, -123456.789, 3e150};
    for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; a++) {
        double inv = nx_ddsketch_inv_ln_gamma(alphas[a]);
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            nx_ddsketch *s;
            assert_int_equal(nx_ddsketch_create(alphas[a], 2048, &s), 0);
            int32_t p[2] = {nx_ddsketch_pack(inv, vals[i]), nx_ddsketch_pack(inv, vals[i])};
            uint32_t done = 99;
            assert_int_equal(nx_ddsketch_add_packed(s, p, 2, 0.0, &done), NX_EINVAL);
            assert_int_equal(done, 0);
            assert_true(nx_ddsketch_count(s) == 0);
            assert_int_equal(nx_ddsketch_add_packed(s, p, 2, 1.5, &done), 0);
            assert_int_equal(done, 2);
            assert_true(nx_ddsketch_count(s) == 3.0);
            double v = vals[i], q = nx_ddsketch_quantile(s, 0.5);
            if (fabs(v) < DBL_MIN)
                assert_true(q == 0);
            else
                assert_true(fabs(q - v) <= alphas[a] * fabs(v) * (1 + 1e-12));
            nx_ddsketch_destroy(s);
        }
    }
}

/* nx_ddsketch_add_packed_all, whatever path it takes (distinct keys of a
 * narrow span counted in a bitmap, a wide span sorted, mixed signs in
 * order), builds exactly the sketch one-by-one adds build: same bins, same
 * counts to the last bit (fractional weights, many repeats of each key),
 * into an empty sketch and into one that already holds keys whose counts
 * are not whole (where r adds of 1 are not one add of r). */
static void test_add_packed_all(void **st)
{
    (void)st;
    static const double spans[] = {0.5, 6, 25}; /* ln(max/min): ~50 to ~1,250 keys */
    static const uint32_t counts[] = {17, 30, 200, 1290};
    static const double weights[] = {1, 0.1, 1.0 / 3.0};
    uint64_t x = 12345;
    uint32_t scratch[2 * 1290];
    int32_t packed[1290];
    for (size_t a = 0; a < 3; a++) {
        for (size_t c = 0; c < 4; c++) {
            for (size_t w = 0; w < 3; w++) {
                for (int pre = 0; pre < 2; pre++) {
                    for (int mixed = 0; mixed < 2; mixed++) {
                        nx_ddsketch *s, *ref;
                        assert_int_equal(nx_ddsketch_create(0.01, 2048, &s), 0);
                        assert_int_equal(nx_ddsketch_create(0.01, 2048, &ref), 0);
                        double inv = nx_ddsketch_inv_ln_gamma(0.01);
                        for (int i = 0; pre && i < 40; i += 5) {
                            /* keys already held (few: the store stays
                             * sparse), with counts that are not whole:
                             * adds of weight 1 to them round */
                            double v = exp(spans[a] * (double)i / 39.0);
                            assert_int_equal(nx_ddsketch_add(s, v, 1.0 / 3.0), 0);
                            assert_int_equal(nx_ddsketch_add(ref, v, 1.0 / 3.0), 0);
                        }
                        uint32_t n = counts[c];
                        for (uint32_t i = 0; i < n; i++) {
                            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                            /* 40 distinct values per span: repeats */
                            double v = exp(spans[a] * (double)(x % 40) / 39.0);
                            if (mixed && i % 5 == 2)
                                v = -v;
                            packed[i] = nx_ddsketch_pack(inv, v);
                            assert_int_equal(nx_ddsketch_add(ref, v, weights[w]), 0);
                        }
                        uint32_t done = 0;
                        assert_int_equal(
                            nx_ddsketch_add_packed_all(s, packed, n, weights[w], scratch, &done), 0);
                        assert_int_equal(done, n);
                        assert_true(nx_ddsketch_equal(s, ref));
                        assert_true(nx_ddsketch_count(s) == nx_ddsketch_count(ref));
                        nx_ddsketch_destroy(s);
                        nx_ddsketch_destroy(ref);
                    }
                }
            }
        }
    }
}

static void test_codec(void **st)
{
    nx_ddsketch *s;
    assert_int_equal(nx_ddsketch_create(0.01, 2048, &s), 0);
    codec_check(s); /* empty */
    assert_int_equal(nx_ddsketch_add(s, 3.0, 1), 0);
    assert_int_equal(nx_ddsketch_add(s, -7e5, 2.5), 0);
    assert_int_equal(nx_ddsketch_add(s, 0, 1), 0);
    codec_check(s); /* sparse */
    for (int i = 0; i < 20000; i++)
        assert_int_equal(nx_ddsketch_add(s, (rng() & 1 ? 1 : -1) * exp(2 * nrand()), 1), 0);
    codec_check(s); /* dense */
    nx_ddsketch_destroy(s);
    assert_int_equal(nx_ddsketch_create(0.03, 32, &s), 0);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(nx_ddsketch_add(s, exp(4 * nrand()), 1), 0);
    assert_true(nx_ddsketch_collapsed(s));
    codec_check(s); /* collapsed */
    nx_ddsketch_destroy(s);
    /* absurd sizes */
    nx_buf b = {0};
    nx_buf_f64(&b, 0.01);
    nx_buf_uvar(&b, 2048);
    nx_buf_u8(&b, 0);
    nx_buf_f64(&b, 0);
    nx_buf_uvar(&b, 1u << 30); /* 2^30 bins claimed */
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    nx_ddsketch *d;
    assert_int_equal(nx_ddsketch_decode(&r, &d), NX_ECORRUPT);
    nx_buf_free(&b);
}

int main(void)
{
    rng_state = 0x1234567ull;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),      cmocka_unit_test(test_lognormal),
        cmocka_unit_test(test_pareto),       cmocka_unit_test(test_bimodal),
        cmocka_unit_test(test_adversarial),  cmocka_unit_test(test_other_alpha),
        cmocka_unit_test(test_small_and_empty), cmocka_unit_test(test_weights),
        cmocka_unit_test(test_merge_union),  cmocka_unit_test(test_collapse),
        cmocka_unit_test(test_sub_window),   cmocka_unit_test(test_codec),
        cmocka_unit_test(test_reuse_shifting_ranges), cmocka_unit_test(test_add_many),
        cmocka_unit_test(test_pack_extremes), cmocka_unit_test(test_sparse_when_spread),
        cmocka_unit_test(test_merge_target_dense),
        cmocka_unit_test(test_add_packed_batch), cmocka_unit_test(test_add_packed_all),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_freeze),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
