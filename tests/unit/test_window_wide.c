/*
 * test_window_wide.c — the wide current sub-bucket of a set window
 * (nx_window.h, "Wide current"), through the window API itself.
 *
 * A 1 m window of 5 s sub-buckets is fed one-second top-ks, as the cascade
 * feeds it. Checked here, exactly, against references built from the
 * definition (nx_topk_merge of exact content into an empty sketch):
 *   - while the seconds of the current sub-bucket fit, its top-k is wide
 *     and exact, and a read reports the exact k first members (error 0);
 *   - when the sub-bucket completes, its top-k has the engine's capacity
 *     and is the cut of its exact content;
 *   - a second that would overflow the wide top-k, or one that is full
 *     itself, finds it cut first, then merged into as before;
 *   - a late event into a wide current sub-bucket finds it cut first;
 *   - an encode/decode round trip keeps a wide current top-k, and a
 *     decoder whose format version does not allow one refuses it.
 * The property tests (test_window, test_window_derived) run it among
 * everything else; this one pins the mechanism down.
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

#include "nexus.h"
#include "common/nx_codec.h"
#include "sketch/nx_topk.h"
#include "window/nx_window.h"
#include "test_topk_eq.h"

#define LEN 60 /* the 1 m window */
#define SUB 5  /* of 5 s sub-buckets */
#define K 64
#define T0 1000 /* first second: sub-bucket 200 */

static const nx_acc_params P = {.alpha = 0.01, .dd_max_bins = 2048, .hll_precision = 14,
                                 .topk_capacity = K};

static int member(uint32_t id, char *buf)
{
    return snprintf(buf, 32, "user%u", id);
}

/* A second's top-k: members [first, first + n), member first + i with
 * weight 1 + i % 7 (ties among them), exact when n < K. */
static void second_acc(nx_acc *a, uint32_t first, uint32_t n)
{
    nx_acc_init(a);
    for (uint32_t i = 0; i < n; i++) {
        char m[32];
        int len = member(first + i, m);
        assert_int_equal(nx_acc_add_member_counts(a, &P, XXH3_64bits(m, (size_t)len), m,
                                                  (uint32_t)len, 1 + i % 7),
                         0);
    }
}

/* Folds the second into w and into the exact reference `whole` (capacity
 * 4K, never full here). */
static void fold_second(nx_window *w, nx_topk *whole, int64_t sec, uint32_t first, uint32_t n)
{
    nx_acc a;
    second_acc(&a, first, n);
    assert_int_equal(nx_window_fold(w, sec, &a, &P, NULL), 0);
    if (whole)
        assert_int_equal(nx_topk_merge(whole, a.topk), 0);
    nx_acc_free(&a);
}

static nx_topk *slot_topk(const nx_window *w, int64_t k)
{
    int64_t m = (int64_t)w->n + 1, r = k % m;
    return w->sk[r < 0 ? r + m : r].topk;
}

/* The definition: exact content cut to K (merged into an empty sketch). */
static nx_topk *cut(const nx_topk *exact)
{
    nx_topk *t;
    assert_int_equal(nx_topk_create(K, &t), 0);
    assert_int_equal(nx_topk_merge(t, exact), 0);
    return t;
}

static nx_topk *new_whole(void)
{
    nx_topk *t;
    assert_int_equal(nx_topk_create(4 * K, &t), 0);
    return t;
}

/* The window's read, its top-k against `want`. */
static void read_equals(nx_window *w, const nx_topk *want)
{
    nx_acc out;
    nx_acc_init(&out);
    assert_int_equal(nx_window_read(w, NULL, &out, &P), 0);
    topk_encodings_equal(out.topk, want);
    nx_acc_free(&out);
}

static void test_wide_exact_then_cut(void **st)
{
    (void)st;
    nx_window w;
    nx_window_init(&w, LEN, SUB, NULL);
    nx_topk *whole = new_whole();
    /* five seconds of 40 members each, overlapping: 40..200 distinct */
    for (int64_t s = 0; s < SUB; s++) {
        fold_second(&w, whole, T0 + s, (uint32_t)s * 30, 40);
        nx_topk *cur = slot_topk(&w, w.cur_k);
        assert_int_equal(nx_topk_size(cur), nx_topk_size(whole));
        /* the first second fills it as it is; from the second on it is wide */
        assert_int_equal(nx_topk_capacity(cur), s == 0 ? K : 4 * K);
        nx_topk *want = cut(whole);
        read_equals(&w, want); /* exact: the K largest counts, error 0 */
        nx_topk_item it[K];
        size_t n = nx_topk_list(want, it, K);
        for (size_t i = 0; i < n; i++)
            assert_true(it[i].error == 0);
        nx_topk_destroy(want);
    }
    assert_true(nx_topk_size(whole) > K);
    /* the sub-bucket completes: cut to K, the same as the definition's */
    assert_int_equal(nx_window_advance(&w, T0 + SUB, &P, NULL), 0);
    nx_topk *done = slot_topk(&w, w.cur_k - 1), *want = cut(whole);
    assert_int_equal(nx_topk_capacity(done), K);
    topk_encodings_equal(done, want);
    read_equals(&w, want);
    nx_topk_destroy(want);
    nx_topk_destroy(whole);
    nx_window_free(&w);
}

static void test_overflow_and_full(void **st)
{
    (void)st;
    nx_window w;
    nx_window_init(&w, LEN, SUB, NULL);
    /* 4 seconds of 60 distinct members: 240 fit in 4K = 256... */
    nx_topk *whole = new_whole();
    for (int64_t s = 0; s < 4; s++)
        fold_second(&w, whole, T0 + s, (uint32_t)s * 60, 60);
    assert_int_equal(nx_topk_capacity(slot_topk(&w, w.cur_k)), 4 * K);
    /* ...16 more would fill it (256: no longer exact, as a full sketch's
     * counts are bounds): cut first, then merged as before */
    nx_topk *ref = cut(whole);
    nx_acc a;
    second_acc(&a, 240, 16);
    assert_int_equal(nx_topk_merge(ref, a.topk), 0);
    nx_acc_free(&a);
    fold_second(&w, NULL, T0 + 4, 240, 16);
    assert_int_equal(nx_topk_capacity(slot_topk(&w, w.cur_k)), K);
    topk_encodings_equal(slot_topk(&w, w.cur_k), ref);
    nx_topk_destroy(ref);
    nx_topk_destroy(whole);

    /* a full second (more members than K: cut to K, bounds not counts) */
    whole = new_whole();
    fold_second(&w, whole, T0 + 5, 1000, 30);
    fold_second(&w, whole, T0 + 6, 1030, 30);
    assert_int_equal(nx_topk_capacity(slot_topk(&w, w.cur_k)), 4 * K);
    ref = cut(whole);
    second_acc(&a, 2000, 100);
    assert_int_equal(nx_topk_size(a.topk), K); /* full */
    assert_int_equal(nx_topk_merge(ref, a.topk), 0);
    assert_int_equal(nx_window_fold(&w, T0 + 7, &a, &P, NULL), 0);
    nx_acc_free(&a);
    assert_int_equal(nx_topk_capacity(slot_topk(&w, w.cur_k)), K);
    topk_encodings_equal(slot_topk(&w, w.cur_k), ref);
    nx_topk_destroy(ref);
    nx_topk_destroy(whole);
    nx_window_free(&w);
}

static void test_late_into_wide(void **st)
{
    (void)st;
    nx_window w;
    nx_window_init(&w, LEN, SUB, NULL);
    nx_topk *whole = new_whole();
    fold_second(&w, whole, T0, 0, 50);
    fold_second(&w, whole, T0 + 1, 40, 50);
    assert_int_equal(nx_topk_capacity(slot_topk(&w, w.cur_k)), 4 * K);
    /* cut, then the event added as to any sketch of K */
    nx_topk *ref = cut(whole);
    assert_int_equal(nx_topk_add(ref, "late", 4, 2), 0);
    assert_int_equal(nx_window_add_late(&w, T0 + 1, &P, NX_TYPE_SET, 0, 2, "late", 4), 0);
    assert_int_equal(nx_topk_capacity(slot_topk(&w, w.cur_k)), K);
    topk_encodings_equal(slot_topk(&w, w.cur_k), ref);
    nx_topk_destroy(ref);
    nx_topk_destroy(whole);
    nx_window_free(&w);
}

static int roundtrip(nx_window *w, bool wide, nx_window *out)
{
    nx_buf buf = {0};
    assert_int_equal(nx_window_front_build(w, &P), 0); /* the format holds suffixes */
    assert_int_equal(nx_window_encode(w, &buf), 0);
    nx_rbuf in = {buf.data, buf.len, 0};
    nx_window_init(out, LEN, SUB, NULL);
    int rc = nx_window_decode(&in, out, &P, NX_TYPE_SET, wide, NULL, NULL);
    if (rc == 0)
        assert_int_equal(in.n, 0);
    nx_buf_free(&buf);
    return rc;
}

static void test_codec(void **st)
{
    (void)st;
    nx_window w, d;
    nx_window_init(&w, LEN, SUB, NULL);
    nx_topk *whole = new_whole();
    fold_second(&w, whole, T0, 0, 50);
    fold_second(&w, whole, T0 + 1, 40, 50);
    assert_int_equal(nx_topk_capacity(slot_topk(&w, w.cur_k)), 4 * K);
    assert_int_equal(roundtrip(&w, true, &d), 0);
    topk_encodings_equal(slot_topk(&d, d.cur_k), slot_topk(&w, w.cur_k));
    /* and they go on alike: another second, then the cut */
    fold_second(&w, whole, T0 + 2, 80, 50);
    fold_second(&d, NULL, T0 + 2, 80, 50);
    assert_int_equal(nx_window_advance(&w, T0 + SUB, &P, NULL), 0);
    assert_int_equal(nx_window_advance(&d, T0 + SUB, &P, NULL), 0);
    nx_topk *want = cut(whole);
    topk_encodings_equal(slot_topk(&w, w.cur_k - 1), want);
    topk_encodings_equal(slot_topk(&d, d.cur_k - 1), want);
    nx_topk_destroy(want);
    nx_window_free(&d);
    /* a format without wide top-ks: refused */
    fold_second(&w, NULL, T0 + SUB, 0, 50);
    fold_second(&w, NULL, T0 + SUB + 1, 40, 50);
    assert_int_equal(roundtrip(&w, false, &d), NX_ECORRUPT);
    nx_window_free(&d);
    /* a wide one that is full (its counts are bounds, past capacity k:
     * no window writes one): refused */
    nx_topk *full;
    assert_int_equal(nx_topk_create(4 * K, &full), 0);
    for (uint32_t i = 0; i < 300; i++) {
        char m[32];
        int len = member(i, m);
        assert_int_equal(nx_topk_add(full, m, (uint32_t)len, 1), 0);
    }
    assert_int_equal(nx_topk_size(full), 4 * K);
    int64_t m = (int64_t)w.n + 1;
    nx_wsk *cur = &w.sk[w.cur_k % m];
    nx_topk *was = cur->topk;
    cur->topk = full;
    assert_int_equal(roundtrip(&w, true, &d), NX_ECORRUPT);
    nx_window_free(&d);
    cur->topk = was;
    nx_topk_destroy(full);
    /* a cut one decodes either way */
    assert_int_equal(nx_window_advance(&w, T0 + 2 * SUB, &P, NULL), 0);
    assert_int_equal(roundtrip(&w, false, &d), 0);
    nx_window_free(&d);
    nx_topk_destroy(whole);
    nx_window_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wide_exact_then_cut),
        cmocka_unit_test(test_overflow_and_full),
        cmocka_unit_test(test_late_into_wide),
        cmocka_unit_test(test_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
