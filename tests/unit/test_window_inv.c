/*
 * test_window_inv.c — a window's lazy DDSketch aggregate (nx_window.h,
 * "Lazy inv"), through the window API itself.
 *
 * A window of short sub-buckets (the 10 s window's 1 s ones) keeps inv's
 * DDSketch only while it is read: n unread steps drop it, a read rebuilds
 * it from the complete slots and keeps it again, an encoding writes the
 * rebuilt sketch without keeping it. Checked here:
 *   - which windows may be lazy (short sub-buckets, at most
 *     NX_WINDOW_LAZY_INV_N of them), and when a window drops and rebuilds;
 *   - a window read every step (inv kept) and its twin read only every 23
 *     steps (lazy most of the time) read the same bins, exactly, through
 *     gaps, restarts and late events into every sub-bucket they cover; the
 *     twin's encoding (while lazy) decodes to a window that reads the same;
 *   - a lazy window holds no inv sketch (its bytes are smaller);
 *   - with fractional weights the kept inv carries the subtractions'
 *     rounding residue and the rebuilt one does not: their counts agree to
 *     1e-9 relative.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "nexus.h"
#include "common/nx_codec.h"
#include "sketch/nx_ddsketch.h"
#include "window/nx_window.h"
#include "test_window_cfg.h"

#define N 10 /* 10 s window of 1 s sub-buckets */

static const nx_acc_params P = {.alpha = 0.01, .dd_max_bins = 2048, .hll_precision = 14,
                                 .topk_capacity = 64};

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

/* A one-second bucket of `nv` values (heavy-tailed, some negative and
 * zero) folded into second `sec` of both windows. */
static void fold_second(nx_window *a, nx_window *b, int64_t sec, uint64_t *x, double weight)
{
    nx_acc acc;
    nx_acc_init(&acc);
    for (uint64_t j = 0, nv = 1 + next(x) % 30; j < nv; j++) {
        uint64_t r = next(x);
        double v = r % 17 == 0 ? 0 : (double)(1 + r % 1000) * (r % 5 == 0 ? -1.5 : 0.75);
        assert_int_equal(nx_acc_add(&acc, &P, NX_TYPE_DISTRIBUTION, v, weight, NULL, 0), 0);
    }
    assert_int_equal(nx_window_fold(a, sec, &acc, &P, NULL), 0);
    assert_int_equal(nx_window_fold(b, sec, &acc, &P, NULL), 0);
    nx_acc_free(&acc);
}

static void read_window(nx_window *w, nx_acc *out)
{
    nx_acc_init(out);
    assert_int_equal(nx_window_read(w, NULL, out, &P), 0);
}

/* Two reads agree: moments exactly, DDSketch bins exactly (or, with
 * fractional weights, total count to 1e-9 relative). */
static void assert_same_read(nx_acc *a, nx_acc *b, bool exact)
{
    assert_true(a->m.count == b->m.count && a->m.sum == b->m.sum);
    assert_true(a->m.min == b->m.min && a->m.max == b->m.max);
    assert_true((a->dd != NULL) == (b->dd != NULL) || !(a->m.count > 0));
    if (!a->dd || !b->dd)
        return;
    if (exact) {
        assert_true(nx_ddsketch_equal(a->dd, b->dd));
    } else {
        double ca = nx_ddsketch_count(a->dd), cb = nx_ddsketch_count(b->dd);
        assert_true(fabs(ca - cb) <= 1e-9 * fmax(1, fabs(cb)));
    }
}

static void test_which_windows(void **st)
{
    (void)st;
    nx_window w;
    struct {
        uint32_t len, b;
        bool lazy;
    } c[] = {{10, 1, true}, {16, 1, true}, {8, 4, true}, {17, 1, false},
             {60, 5, false}, {300, 30, false}, {3600, 300, false}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        nx_window_init(&w, c[i].len, c[i].b, NULL);
        assert_int_equal(nx_window_inv_lazy_ok(&w), c[i].lazy);
        assert_int_equal(w.ilazy, c[i].lazy); /* a new window starts lazy */
        nx_window_free(&w);
    }
}

/* Drop after n unread steps, rebuild at a read, drop again. */
static void test_drop_and_rebuild(void **st)
{
    (void)st;
    nx_window w, twin;
    nx_window_init(&w, N, 1, NULL);
    nx_window_init(&twin, 60, 5, NULL); /* never lazy: a reference */
    uint64_t x = 7;
    int64_t sec = 1000;
    for (int i = 0; i < 3 * N; i++)
        fold_second(&w, &twin, sec++, &x, 1);
    assert_true(w.ilazy && w.inv.dd == NULL);
    assert_true(!twin.ilazy && twin.inv.dd != NULL);
    nx_acc r;
    read_window(&w, &r);
    assert_true(!w.ilazy && w.inv.dd != NULL);
    assert_true(r.dd && nx_ddsketch_count(r.dd) == r.m.count);
    nx_acc_free(&r);
    size_t kept = nx_window_bytes(&w);
    /* n steps unread keep it; the next one drops it */
    for (int i = 0; i < N; i++) {
        fold_second(&w, &twin, sec++, &x, 1);
        assert_false(w.ilazy);
    }
    fold_second(&w, &twin, sec++, &x, 1);
    assert_true(w.ilazy && w.inv.dd == NULL);
    assert_true(nx_window_bytes(&w) < kept);
    /* a read every n steps keeps it */
    for (int i = 0; i < 5 * N; i++) {
        fold_second(&w, &twin, sec++, &x, 1);
        if (i % N == 0) {
            read_window(&w, &r);
            nx_acc_free(&r);
        }
        assert_true(i == 0 || !w.ilazy);
    }
    nx_window_free(&w);
    nx_window_free(&twin);
}

static void roundtrip_read(nx_window *w, nx_acc *out)
{
    nx_buf buf = {0};
    assert_int_equal(nx_window_encode(w, &buf), 0);
    nx_rbuf in = {buf.data, buf.len, 0};
    nx_window d;
    nx_window_init(&d, N, 1, NULL);
    assert_int_equal(nx_window_decode(&in, &d, &P, NX_TYPE_DISTRIBUTION, true, NULL, NULL), 0);
    assert_int_equal(in.n, 0);
    assert_false(d.ilazy); /* a decoded inv is kept */
    read_window(&d, out);
    nx_window_free(&d);
    nx_buf_free(&buf);
}

/* e is read every step (its inv is kept), l every 23 (lazy between). */
static void twins(double weight, bool exact)
{
    nx_window e, l;
    nx_window_init(&e, N, 1, NULL);
    nx_window_init(&l, N, 1, NULL);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int64_t sec = 5000;
    int lazy_seen = 0, checks = 0, late = 0;
    for (int step = 0; step < 4000; step++) {
        sec = test_window_twin_sec(sec, next(&x), N);
        fold_second(&e, &l, sec, &x, weight);
        if (next(&x) % 6 == 0) { /* late events into any covered sub-bucket */
            int64_t ls = sec - (int64_t)(next(&x) % (N + 1));
            double v = (double)(next(&x) % 5000) / 7.0;
            assert_int_equal(nx_window_add_late(&e, ls, &P, NX_TYPE_DISTRIBUTION, v, weight,
                                                NULL, 0), 0);
            assert_int_equal(nx_window_add_late(&l, ls, &P, NX_TYPE_DISTRIBUTION, v, weight,
                                                NULL, 0), 0);
            late++;
        }
        nx_acc re;
        read_window(&e, &re);
        assert_false(e.ilazy);
        if (l.ilazy) {
            assert_null(l.inv.dd);
            lazy_seen++;
        }
        if (step % 23 == 22) {
            nx_acc rd, rl;
            bool was_lazy = l.ilazy;
            roundtrip_read(&l, &rd); /* encoded while (mostly) lazy */
            assert_int_equal(l.ilazy, was_lazy); /* encoding keeps nothing */
            read_window(&l, &rl);
            assert_false(l.ilazy);
            assert_same_read(&re, &rl, exact);
            assert_same_read(&re, &rd, exact);
            nx_acc_free(&rd);
            nx_acc_free(&rl);
            checks++;
        }
        nx_acc_free(&re);
    }
    assert_true(lazy_seen > 2000 && checks > 150 && late > 500);
    nx_window_free(&e);
    nx_window_free(&l);
}

static void test_lazy_reads_kept(void **st)
{
    (void)st;
    twins(1, true);
    twins(3, true);
}

static void test_fractional_weights(void **st)
{
    (void)st;
    twins(1.0 / 3.0, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_which_windows),
        cmocka_unit_test(test_drop_and_rebuild),
        cmocka_unit_test(test_lazy_reads_kept),
        cmocka_unit_test(test_fractional_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
