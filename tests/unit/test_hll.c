/*
 * test_hll.c — HyperLogLog accuracy (3 standard errors at log-spaced
 * checkpoints up to 1e7, near exact when small), merge == union, sparse ->
 * dense continuity, codec round trip, truncations and byte flips.
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

#include "common/nx_codec.h"
#include "sketch/nx_hll.h"

#include "test_rng.h"

static void add_item(nx_hll *h, uint64_t i)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "user-%llu", (unsigned long long)i);
    assert_int_equal(nx_hll_add(h, buf, (size_t)n), 0);
}

static void accuracy(uint8_t p, uint64_t nmax, uint64_t salt)
{
    nx_hll *h;
    assert_int_equal(nx_hll_create(p, &h), 0);
    assert_true(nx_hll_estimate(h) == 0);
    double se = 1.04 / sqrt((double)(1u << p));
    double next = 1;
    int checks = 0, was_dense = 0;
    for (uint64_t i = 1; i <= nmax; i++) {
        add_item(h, i + salt);
        if (i % 3 == 0)
            add_item(h, i + salt); /* duplicates do not count */
        if ((double)i >= next) {
            double est = nx_hll_estimate(h), n = (double)i;
            double err = fabs(est - n);
            if (err > 3 * se * n)
                fail_msg("p=%u n=%.0f est=%.1f rel err %.4f > 3 SE %.4f", p, n, est, err / n, 3 * se);
            if (n <= 100 && err > 0.5)
                fail_msg("p=%u n=%.0f est=%.3f: small cardinality not near exact", p, n, est);
            checks++;
            next = ceil(next * 1.2);
        }
        if (nx_hll_is_dense(h))
            was_dense = 1;
    }
    assert_true(was_dense);
    assert_true(checks > 20);
    nx_hll_destroy(h);
}

static void test_accuracy_p14(void **st) { accuracy(14, 10000000ull * (uint64_t)scale(), 0); }
static void test_accuracy_p16_18(void **st)
{
    accuracy(16, 400000, 1ull << 40);
    accuracy(18, 400000, 2ull << 40);
}

static void test_merge_union(void **st)
{
    enum { K = 5 };
    nx_hll *part[K], *all, *m;
    for (int i = 0; i < K; i++)
        assert_int_equal(nx_hll_create(14, &part[i]), 0);
    assert_int_equal(nx_hll_create(14, &all), 0);
    /* sizes from tiny (sparse) to big (dense), overlapping ranges */
    const uint64_t sizes[K] = {10, 500, 3000, 50000, 200000};
    for (int i = 0; i < K; i++)
        for (uint64_t j = 0; j < sizes[i]; j++) {
            uint64_t item = j * (uint64_t)(i + 1); /* overlaps between parts */
            add_item(part[i], item);
            add_item(all, item);
        }
    assert_false(nx_hll_is_dense(part[0]));
    assert_true(nx_hll_is_dense(part[4]));
    /* several orders: sparse into sparse, sparse into dense, dense into sparse */
    const int orders[3][K] = {{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {1, 0, 4, 2, 3}};
    for (int o = 0; o < 3; o++) {
        assert_int_equal(nx_hll_create(14, &m), 0);
        for (int i = 0; i < K; i++)
            assert_int_equal(nx_hll_merge(m, part[orders[o][i]]), 0);
        assert_true(nx_hll_estimate(m) == nx_hll_estimate(all));
        nx_hll_destroy(m);
    }
    /* merge of two sparse ones stays exact too */
    assert_int_equal(nx_hll_clone(part[0], &m), 0);
    assert_int_equal(nx_hll_merge(m, part[1]), 0);
    nx_hll *u;
    assert_int_equal(nx_hll_create(14, &u), 0);
    for (uint64_t j = 0; j < sizes[0]; j++)
        add_item(u, j);
    for (uint64_t j = 0; j < sizes[1]; j++)
        add_item(u, j * 2);
    assert_true(nx_hll_estimate(m) == nx_hll_estimate(u));
    nx_hll_destroy(u);
    nx_hll_destroy(m);
    nx_hll *p16;
    assert_int_equal(nx_hll_create(16, &p16), 0);
    assert_int_equal(nx_hll_merge(p16, all), NX_EINVAL);
    nx_hll_destroy(p16);
    for (int i = 0; i < K; i++)
        nx_hll_destroy(part[i]);
    nx_hll_destroy(all);
}

static void test_transition(void **st)
{
    nx_hll *h;
    assert_int_equal(nx_hll_create(14, &h), 0);
    double prev = 0;
    int transitions = 0;
    size_t bytes_sparse_max = 0;
    for (uint64_t i = 1; i <= 5000; i++) {
        int was = nx_hll_is_dense(h);
        nx_hll *before = NULL;
        if (!was)
            assert_int_equal(nx_hll_clone(h, &before), 0);
        add_item(h, i);
        double est = nx_hll_estimate(h);
        /* an estimate never drops and moves by at most ~1 per new item */
        assert_true(est >= prev - 1e-9);
        assert_true(est - prev <= 1.5);
        if (!was) {
            if (nx_hll_bytes(h) > bytes_sparse_max && !nx_hll_is_dense(h))
                bytes_sparse_max = nx_hll_bytes(h);
            if (nx_hll_is_dense(h)) {
                /* the conversion changed no register: the old sparse
                 * registers densified + the same item give the same estimate */
                transitions++;
                assert_int_equal(nx_hll_densify(before), 0);
                add_item(before, i);
                assert_true(nx_hll_estimate(before) == est);
            } else if (i % 64 == 0) {
                add_item(before, i);
                assert_int_equal(nx_hll_densify(before), 0);
                assert_true(nx_hll_estimate(before) == est);
            }
            nx_hll_destroy(before);
        }
        prev = est;
    }
    assert_int_equal(transitions, 1);
    /* sparse never costs more than dense */
    nx_hll *d;
    assert_int_equal(nx_hll_create(14, &d), 0);
    assert_int_equal(nx_hll_densify(d), 0);
    assert_true(bytes_sparse_max <= nx_hll_bytes(d));
    nx_hll_destroy(d);
    nx_hll_destroy(h);
}

static void codec_check(const nx_hll *h)
{
    nx_buf b = {0};
    assert_int_equal(nx_hll_encode(h, &b), 0);
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    nx_hll *d;
    assert_int_equal(nx_hll_decode(&r, &d), 0);
    assert_int_equal(r.n, 0);
    assert_true(nx_hll_estimate(d) == nx_hll_estimate(h));
    assert_int_equal(nx_hll_is_dense(d), nx_hll_is_dense(h));
    nx_buf b2 = {0};
    assert_int_equal(nx_hll_encode(d, &b2), 0);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    nx_hll_destroy(d);
    for (size_t len = 0; len < b.len; len += (b.len > 4000 ? 1 + rng() % 7 : 1)) {
        r = nx_rbuf_make(b.data, len);
        int rc = nx_hll_decode(&r, &d);
        if (rc == 0)
            fail_msg("truncation to %zu of %zu accepted", len, b.len);
        assert_int_equal(rc, NX_ECORRUPT);
    }
    uint8_t *tmp = malloc(b.len);
    assert_non_null(tmp);
    int iters = b.len > 4000 ? 300 : 3000;
    for (int it = 0; it < iters; it++) {
        flip_bytes(tmp, b.data, b.len);
        r = nx_rbuf_make(tmp, b.len);
        int rc = nx_hll_decode(&r, &d);
        if (rc == 0) {
            double e = nx_hll_estimate(d);
            assert_true(e >= 0 && !isnan(e));
            add_item(d, 12345);
            nx_hll *c;
            assert_int_equal(nx_hll_clone(d, &c), 0);
            assert_int_equal(nx_hll_merge(c, h),
                             nx_hll_precision(c) == nx_hll_precision(h) ? 0 : NX_EINVAL);
            nx_hll_destroy(c);
            nx_hll_destroy(d);
        } else {
            assert_int_equal(rc, NX_ECORRUPT);
        }
    }
    free(tmp);
    nx_buf_free(&b);
    nx_buf_free(&b2);
}

static void test_codec(void **st)
{
    nx_hll *h;
    assert_int_equal(nx_hll_create(14, &h), 0);
    codec_check(h);
    for (uint64_t i = 0; i < 300; i++)
        add_item(h, i);
    codec_check(h);
    for (uint64_t i = 0; i < 100000; i++)
        add_item(h, i);
    codec_check(h);
    nx_hll_destroy(h);
    /* absurd sparse count */
    nx_buf b = {0};
    nx_buf_u8(&b, 14);
    nx_buf_u8(&b, 0);
    nx_buf_uvar(&b, 1u << 30);
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    assert_int_equal(nx_hll_decode(&r, &h), NX_ECORRUPT);
    nx_buf_free(&b);
    assert_int_equal(nx_hll_create(13, &h), NX_EINVAL);
    assert_int_equal(nx_hll_create(19, &h), NX_EINVAL);
}

int main(void)
{
    rng_state = 0xabcdefull;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accuracy_p14), cmocka_unit_test(test_accuracy_p16_18),
        cmocka_unit_test(test_merge_union),  cmocka_unit_test(test_transition),
        cmocka_unit_test(test_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
