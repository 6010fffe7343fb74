/*
 * test_ratelimit.c — token buckets with a fake clock: exact grant counts for
 * bursts, refill, fractional per-shard rates, reconfiguration, a clock going
 * backwards, overflow edges, and the per-shard table (incl. deletion churn
 * checked against a model).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "nexus.h"
#include "tenant/nx_ratelimit.h"

#define S 1000000000ll /* ns per second */
#define MS 1000000ll

static void test_burst_then_rate(void **st)
{
    (void)st;
    nx_rl rl;
    int64_t t = 5 * S;
    assert_int_equal(nx_rl_init(&rl, 100, 250, 1, t), 0);
    /* starts full: exactly the burst */
    assert_int_equal(nx_rl_take(&rl, t, 1000), 250);
    assert_int_equal(nx_rl_take(&rl, t, 1), 0);
    /* 10 ms at 100/s = exactly 1 token */
    assert_int_equal(nx_rl_take(&rl, t + 10 * MS, 5), 1);
    assert_int_equal(nx_rl_take(&rl, t + 10 * MS + 9 * MS, 5), 0);
    assert_int_equal(nx_rl_take(&rl, t + 20 * MS, 5), 1);
    /* one second later: 100 more, never more than the burst */
    assert_int_equal(nx_rl_take(&rl, t + 20 * MS + S, 1000), 100);
    assert_int_equal(nx_rl_take(&rl, t + 100 * S, 1000), 250);
    /* sustained: 10 s in 1 ms steps of 1 request each -> 10 * 100 accepted
     * (the bucket is empty at the start) */
    int64_t t0 = t + 100 * S;
    uint64_t ok = 0;
    for (int i = 1; i <= 10000; i++)
        ok += nx_rl_take(&rl, t0 + i * MS, 1);
    assert_int_equal(ok, 1000);
}

static void test_default_burst_and_unlimited(void **st)
{
    (void)st;
    nx_rl rl;
    assert_int_equal(nx_rl_init(&rl, 7, 0, 1, 0), 0); /* burst 0 = 1 s worth */
    assert_int_equal(nx_rl_take(&rl, 0, 100), 7);
    assert_int_equal(nx_rl_init(&rl, 0, 0, 1, 0), 0); /* unlimited */
    assert_int_equal(nx_rl_take(&rl, 0, 4000000000u), 4000000000u);
    assert_true(nx_rl_available(&rl, 0) == UINT64_MAX);
    assert_int_equal(nx_rl_init(&rl, NX_RL_MAX_RATE + 1, 0, 1, 0), NX_EINVAL);
    assert_int_equal(nx_rl_init(&rl, 1, NX_RL_MAX_BURST + 1, 1, 0), NX_EINVAL);
    assert_int_equal(nx_rl_init(&rl, 1, 1, 0, 0), NX_EINVAL);
    /* the largest parameters do not overflow over a long idle time */
    assert_int_equal(nx_rl_init(&rl, NX_RL_MAX_RATE, NX_RL_MAX_BURST, 1, 0), 0);
    assert_int_equal(nx_rl_take(&rl, 0, 4000000000u), 4000000000u);
    assert_int_equal(nx_rl_available(&rl, INT64_MAX), NX_RL_MAX_BURST);
}

static void test_divisor_exact(void **st)
{
    (void)st;
    /* 10/s split over 4 shards = 2.5/s per shard, burst 20/4 = 5 */
    nx_rl rl;
    assert_int_equal(nx_rl_init(&rl, 10, 20, 4, 0), 0);
    assert_int_equal(nx_rl_take(&rl, 0, 100), 5);
    uint64_t ok = 0;
    for (int i = 1; i <= 1000; i++) /* 100 s in 100 ms steps */
        ok += nx_rl_take(&rl, i * 100 * MS, 10);
    assert_int_equal(ok, 250);
    /* four such shards admit exactly the tenant's rate in total */
    nx_rl sh[4];
    for (int k = 0; k < 4; k++)
        assert_int_equal(nx_rl_init(&sh[k], 10, 20, 4, 0), 0);
    uint64_t tot = 0;
    for (int i = 0; i <= 1000; i++)
        for (int k = 0; k < 4; k++)
            tot += nx_rl_take(&sh[k], i * 100 * MS, 3);
    assert_int_equal(tot, 20 + 10 * 100);
    /* a burst smaller than the divisor still admits one event per shard */
    assert_int_equal(nx_rl_init(&rl, 1, 1, 8, 0), 0);
    assert_int_equal(nx_rl_take(&rl, 0, 5), 1);
    assert_int_equal(nx_rl_take(&rl, 7 * S, 5), 0); /* 1/8 per s: needs 8 s */
    assert_int_equal(nx_rl_take(&rl, 8 * S, 5), 1);
}

static void test_clock_backwards(void **st)
{
    (void)st;
    nx_rl rl;
    assert_int_equal(nx_rl_init(&rl, 1000, 10, 1, 100 * S), 0);
    assert_int_equal(nx_rl_take(&rl, 100 * S, 10), 10);
    /* the clock steps back an hour: nothing minted, and coming back to the
     * old time does not mint the "elapsed" hour either */
    assert_int_equal(nx_rl_take(&rl, 100 * S - 3600 * S, 10), 0);
    assert_int_equal(nx_rl_take(&rl, 100 * S, 10), 0);
    assert_int_equal(nx_rl_take(&rl, 100 * S + 3 * MS, 10), 3);
}

static void test_reconfigure_and_wait(void **st)
{
    (void)st;
    nx_rl rl;
    assert_int_equal(nx_rl_init(&rl, 100, 100, 1, 0), 0);
    assert_int_equal(nx_rl_take(&rl, 0, 50), 50); /* half full */
    assert_int_equal(nx_rl_reconfigure(&rl, 10, 1000, 1, 0), 0);
    assert_int_equal(nx_rl_available(&rl, 0), 500); /* still half */
    assert_int_equal(nx_rl_take(&rl, 0, 500), 500);
    assert_int_equal(nx_rl_wait_s(&rl, 0, 1), 1);   /* 0.1 s -> 1 */
    assert_int_equal(nx_rl_wait_s(&rl, 0, 25), 3);  /* 2.5 s -> 3 */
    assert_int_equal(nx_rl_wait_s(&rl, 3 * S, 25), 0);
}

static void test_table(void **st)
{
    (void)st;
    nx_rl_table *t;
    assert_int_equal(nx_rl_table_create(4, &t), 0);
    /* unknown tenants are unlimited and not counted */
    assert_int_equal(nx_rl_table_take(t, 42, 0, 1000), 1000);
    nx_rl_counts c;
    assert_int_equal(nx_rl_table_counts(t, 42, &c), NX_ENOENT);
    assert_int_equal(nx_rl_table_set(t, 0, 5, 5, 1, 0), 0); /* num 0 = default */
    assert_int_equal(nx_rl_table_set(t, 7, 100, 100, 1, 0), 0);
    assert_int_equal(nx_rl_table_take(t, 0, 0, 50), 5);
    assert_int_equal(nx_rl_table_take(t, 7, 0, 1000), 100);
    assert_int_equal(nx_rl_table_counts(t, 7, &c), 0);
    assert_int_equal(c.accepted, 100);
    assert_int_equal(c.dropped, 900);
    assert_int_equal(nx_rl_table_counts(t, 0, &c), 0);
    assert_int_equal(c.accepted, 5);
    assert_int_equal(c.dropped, 45);
    assert_int_equal(nx_rl_table_remove(t, 7), 0);
    assert_int_equal(nx_rl_table_remove(t, 7), NX_ENOENT);
    assert_int_equal(nx_rl_table_take(t, 7, 0, 1000), 1000);
    nx_rl_table_destroy(t);
}

/* Many inserts and deletes against a model: every present num has its own
 * bucket (distinct burst = num % 97 + 1), absent ones are unlimited. */
static void test_table_churn(void **st)
{
    (void)st;
    nx_rl_table *t;
    assert_int_equal(nx_rl_table_create(1, &t), 0);
    enum { N = 5000 };
    unsigned char *present = calloc(N, 1);
    assert_non_null(present);
    uint64_t x = 88172645463325252ull;
    size_t live = 0;
    for (int step = 0; step < 40000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t num = (uint32_t)(x % N);
        if (present[num]) {
            assert_int_equal(nx_rl_table_remove(t, num), 0);
            present[num] = 0;
            live--;
        } else {
            assert_int_equal(nx_rl_table_set(t, num, 1, num % 97 + 1, 1, 0), 0);
            present[num] = 1;
            live++;
        }
    }
    assert_int_equal(nx_rl_table_size(t), live);
    for (uint32_t num = 0; num < N; num++) {
        uint32_t want = present[num] ? num % 97 + 1 : 100000;
        assert_int_equal(nx_rl_table_take(t, num, 0, 100000), want);
    }
    free(present);
    nx_rl_table_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_default_burst_and_unlimited),
        cmocka_unit_test(test_divisor_exact),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_reconfigure_and_wait),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
