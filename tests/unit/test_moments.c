/*
 * test_moments.c — nx_moments against exact (long double, two-pass)
 * computations: shard merges equal the whole stream, sample-rate weights,
 * sub inverts merge, encode/decode round trip, truncation and byte flips.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/nx_codec.h"
#include "sketch/nx_moments.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
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

static void assert_rel_at(double got, double want, double tol, int line)
{
    double d = fabs(got - want), m = fabs(want) > 1 ? fabs(want) : 1;
    if (d > tol * m)
        fail_msg("line %d: got %.17g want %.17g (rel err %.3g > %.3g)", line, got, want, d / m, tol);
}
#define assert_rel(g, w, t) assert_rel_at((g), (w), (t), __LINE__)

/* exact weighted moments, two-pass in long double */
static void exact(const double *x, const double *w, size_t n, nx_moments *out)
{
    long double c = 0, s = 0;
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        c += w[i];
        s += (long double)w[i] * x[i];
        if (x[i] < mn)
            mn = x[i];
        if (x[i] > mx)
            mx = x[i];
    }
    long double mean = s / c, m2 = 0;
    for (size_t i = 0; i < n; i++)
        m2 += (long double)w[i] * (x[i] - mean) * (x[i] - mean);
    out->count = (double)c;
    out->sum = (double)s;
    out->mean = (double)mean;
    out->m2 = (double)m2;
    out->min = mn;
    out->max = mx;
}

static void assert_moments(const nx_moments *got, const nx_moments *want, double tol)
{
    assert_rel(got->count, want->count, tol);
    assert_rel(got->sum, want->sum, tol);
    assert_rel(got->mean, want->mean, tol);
    assert_rel(got->m2, want->m2, tol);
    assert_true(got->min == want->min);
    assert_true(got->max == want->max);
}

static void gen(double *x, double *w, size_t n, int weighted)
{
    for (size_t i = 0; i < n; i++) {
        /* large offset + small spread: the naive sum-of-squares fails here */
        x[i] = 1e6 + 10.0 * urand() + (i % 7 == 0 ? -3 : 0);
        w[i] = weighted ? 1.0 / (0.05 + 0.95 * urand()) : 1.0;
    }
}

static void test_whole_stream(void **st)
{
    size_t n = 200000 * (size_t)scale();
    double *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w);
    assert_non_null(x);
    assert_non_null(w);
    gen(x, w, n, 0);
    nx_moments m, e;
    nx_moments_init(&m);
    for (size_t i = 0; i < n; i++)
        nx_moments_add(&m, x[i], w[i]);
    exact(x, w, n, &e);
    assert_moments(&m, &e, 1e-9);
    assert_rel(nx_moments_variance(&m), e.m2 / e.count, 1e-9);
    free(x);
    free(w);
}

static void test_shard_merge(void **st)
{
    size_t n = 300000 * (size_t)scale();
    double *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w);
    assert_non_null(x);
    assert_non_null(w);
    gen(x, w, n, 1);
    nx_moments e;
    exact(x, w, n, &e);
    enum { SHARDS = 37 };
    nx_moments sh[SHARDS];
    for (int i = 0; i < SHARDS; i++)
        nx_moments_init(&sh[i]);
    for (size_t i = 0; i < n; i++)
        nx_moments_add(&sh[rng() % SHARDS], x[i], w[i]);
    /* merge in two different trees: left fold and pairwise */
    nx_moments fold;
    nx_moments_init(&fold);
    for (int i = 0; i < SHARDS; i++)
        nx_moments_merge(&fold, &sh[i]);
    assert_moments(&fold, &e, 1e-9);
    for (int stride = 1; stride < SHARDS; stride *= 2)
        for (int i = 0; i + stride < SHARDS; i += 2 * stride)
            nx_moments_merge(&sh[i], &sh[i + stride]);
    assert_moments(&sh[0], &e, 1e-9);
    /* merging an empty one changes nothing */
    nx_moments empty;
    nx_moments_init(&empty);
    nx_moments before = fold;
    nx_moments_merge(&fold, &empty);
    assert_memory_equal(&before, &fold, sizeof fold);
    free(x);
    free(w);
}

static void test_weights(void **st)
{
    /* weight 1/rate: value 2 at rate 0.25 == value 2 four times */
    nx_moments a, b;
    nx_moments_init(&a);
    nx_moments_init(&b);
    nx_moments_add(&a, 2.0, 1.0 / 0.25);
    nx_moments_add(&a, 10.0, 1.0);
    for (int i = 0; i < 4; i++)
        nx_moments_add(&b, 2.0, 1.0);
    nx_moments_add(&b, 10.0, 1.0);
    assert_moments(&a, &b, 1e-12);
    assert_rel(a.count, 5, 1e-15);
    assert_rel(a.sum, 18, 1e-15);
    assert_rel(a.mean, 3.6, 1e-15);
    /* population variance of {2,2,2,2,10}: mean 3.6, sum sq dev 51.2 */
    assert_rel(nx_moments_variance(&a), 51.2 / 5, 1e-12);
    /* invalid weights are ignored */
    nx_moments_add(&a, 99, 0);
    nx_moments_add(&a, 99, -1);
    nx_moments_add(&a, NAN, 1);
    assert_rel(a.count, 5, 1e-15);
    assert_true(a.max == 10);
}

static void test_sub_inverts_merge(void **st)
{
    size_t n = 100000;
    double *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w);
    assert_non_null(x);
    assert_non_null(w);
    gen(x, w, n, 1);
    nx_moments a, b, ea;
    nx_moments_init(&a);
    nx_moments_init(&b);
    for (size_t i = 0; i < n / 2; i++)
        nx_moments_add(&a, x[i], w[i]);
    for (size_t i = n / 2; i < n; i++)
        nx_moments_add(&b, x[i] + 3, w[i]);
    exact(x, w, n / 2, &ea);
    nx_moments c = a;
    nx_moments_merge(&c, &b);
    nx_moments_sub(&c, &b);
    assert_rel(c.count, ea.count, 1e-9);
    assert_rel(c.sum, ea.sum, 1e-9);
    assert_rel(c.mean, ea.mean, 1e-9);
    assert_rel(c.m2, ea.m2, 1e-9);
    /* a far-away b: m2 of the merge is dominated by the between-group
     * term, and sub can only recover a's m2 to ~1e-16 of the merged m2
     * (inherent in floating point); check exactly that bound */
    nx_moments far;
    nx_moments_init(&far);
    for (size_t i = n / 2; i < n; i++)
        nx_moments_add(&far, x[i] * 3 - 5, w[i]);
    c = a;
    nx_moments_merge(&c, &far);
    double merged_m2 = c.m2;
    nx_moments_sub(&c, &far);
    assert_rel(c.count, ea.count, 1e-9);
    assert_rel(c.mean, ea.mean, 1e-9);
    assert_true(fabs(c.m2 - ea.m2) <= 1e-14 * merged_m2);
    /* sliding window: add buckets, evict the oldest, compare with exact */
    enum { B = 50, WIN = 8 };
    nx_moments bucket[B], win;
    nx_moments_init(&win);
    size_t per = n / B;
    for (int i = 0; i < B; i++) {
        nx_moments_init(&bucket[i]);
        for (size_t j = 0; j < per; j++)
            nx_moments_add(&bucket[i], x[i * per + j], w[i * per + j]);
        nx_moments_merge(&win, &bucket[i]);
        if (i >= WIN)
            nx_moments_sub(&win, &bucket[i - WIN]);
        int lo = i >= WIN ? i - WIN + 1 : 0;
        nx_moments e;
        exact(x + lo * per, w + lo * per, (size_t)(i - lo + 1) * per, &e);
        assert_rel(win.count, e.count, 1e-9);
        assert_rel(win.sum, e.sum, 1e-9);
        assert_rel(win.mean, e.mean, 1e-9);
        assert_rel(win.m2, e.m2, 1e-7);
    }
    /* subtracting everything leaves exactly empty */
    nx_moments all;
    nx_moments_init(&all);
    nx_moments_merge(&all, &a);
    nx_moments_merge(&all, &b);
    nx_moments_sub(&all, &b);
    nx_moments_sub(&all, &a);
    nx_moments empty;
    nx_moments_init(&empty);
    assert_true(all.count == 0 && all.sum == 0 && all.mean == 0 && all.m2 == 0);
    assert_true(isinf(all.min) && all.min > 0 && isinf(all.max) && all.max < 0);
    free(x);
    free(w);
}

static void test_codec(void **st)
{
    nx_moments m, d;
    nx_moments_init(&m);
    nx_buf b = {0};
    /* empty round trip */
    assert_int_equal(nx_moments_encode(&m, &b), 0);
    assert_int_equal(b.len, 48);
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    assert_int_equal(nx_moments_decode(&r, &d), 0);
    assert_memory_equal(&m, &d, sizeof m);
    for (int i = 0; i < 1000; i++)
        nx_moments_add(&m, urand() * 100 - 50, 1 + (i % 3));
    b.len = 0;
    assert_int_equal(nx_moments_encode(&m, &b), 0);
    r = nx_rbuf_make(b.data, b.len);
    assert_int_equal(nx_moments_decode(&r, &d), 0);
    assert_memory_equal(&m, &d, sizeof m);
    assert_int_equal(r.n, 0);
    /* every truncation is rejected */
    for (size_t len = 0; len < b.len; len++) {
        r = nx_rbuf_make(b.data, len);
        assert_int_equal(nx_moments_decode(&r, &d), NX_ECORRUPT);
    }
    /* byte flips: rejected or a valid object */
    for (int it = 0; it < 20000; it++) {
        uint8_t tmp[48];
        memcpy(tmp, b.data, 48);
        int flips = 1 + (int)(rng() % 3);
        for (int f = 0; f < flips; f++)
            tmp[rng() % 48] ^= (uint8_t)(1 + rng() % 255);
        r = nx_rbuf_make(tmp, 48);
        int rc = nx_moments_decode(&r, &d);
        if (rc == 0) {
            assert_true(isfinite(d.count) && d.count >= 0 && d.m2 >= 0);
            assert_true(nx_moments_variance(&d) >= 0);
        } else {
            assert_int_equal(rc, NX_ECORRUPT);
        }
    }
    nx_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_stream),
        cmocka_unit_test(test_shard_merge),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_sub_inverts_merge),
        cmocka_unit_test(test_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
