/*
 * test_window_holes.c — front holes of a set window (nx_window.h, "Front
 * holes"), through the window API itself.
 *
 * A young window's first flip finds data in its newest sub-buckets only: the
 * empty slots before the first non-empty one get no suffix (fskip counts
 * them) instead of a copy each. Checked here, exactly:
 *   - the flip leaves the holes without a top-k and the window's bytes at
 *     what the sub-buckets with data need;
 *   - reads see every member (the front top is found past the holes) while
 *     the holes are popped one by one;
 *   - a late event into a hole builds the suffixes it needs and is read;
 *   - an encode/decode round trip recounts fskip and reads the same, and a
 *     decoded hole that holds data (a CRC-valid state no window can reach)
 *     is refused with NX_ECORRUPT.
 * The random property tests (test_window, test_window_derived) cover holes
 * among everything else; this one pins the mechanism down.
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
#include "test_window_cfg.h"

#define N 10 /* 10 s window of 1 s sub-buckets */

static const nx_acc_params P = {.alpha = 0.01, .dd_max_bins = 2048, .hll_precision = 14,
                                 .topk_capacity = 64};

static uint32_t ring(int64_t k)
{
    int64_t m = N + 1, r = k % m;
    return (uint32_t)(r < 0 ? r + m : r);
}

/* One member (weight 1) folded into the sub-bucket of second `sec`. */
static void fold_member(nx_window *w, int64_t sec, const char *m)
{
    nx_acc a;
    nx_acc_init(&a);
    size_t len = strlen(m);
    assert_int_equal(nx_acc_add_member_counts(&a, &P, XXH3_64bits(m, len), m, (uint32_t)len, 1),
                     0);
    assert_int_equal(nx_window_fold(w, sec, &a, &P, NULL), 0);
    nx_acc_free(&a);
}

/* The window's read: its total count and the count of member m (0: absent). */
static void read_counts(nx_window *w, double *total, double *of_m, const char *m)
{
    nx_acc out;
    nx_acc_init(&out);
    assert_int_equal(nx_window_read(w, NULL, &out, &P), 0);
    *total = out.m.count > 0 ? out.m.count : 0;
    *of_m = 0;
    if (out.topk) {
        nx_topk_item e[64];
        size_t n = nx_topk_list(out.topk, e, 64);
        for (size_t i = 0; i < n; i++)
            if (e[i].member_len == strlen(m) && memcmp(e[i].member, m, e[i].member_len) == 0)
                *of_m = e[i].count;
    }
    nx_acc_free(&out);
}

/* Sub-buckets 100 and 101 get members, then the window moves to 102: the
 * flip at that step finds slots 91..99 empty. */
static void young_window(nx_window *w)
{
    nx_window_init(w, N, 1, NULL);
    fold_member(w, 100, "alpha");
    fold_member(w, 101, "beta");
    assert_int_equal(nx_window_advance(w, 102, &P, NULL), 0);
}

static void test_flip_leaves_holes(void **st)
{
    (void)st;
    nx_window w;
    young_window(&w);
    /* flipped at c = 101 over [91, 100]: f = 100, fskip 9; then 91 popped */
    assert_int_equal(w.nfront, N - 1);
    assert_int_equal(w.fskip, 8);
    for (int64_t k = 92; k < 100; k++)
        assert_true(!w.sk[ring(k)].topk || nx_topk_total(w.sk[ring(k)].topk) == 0);
    int ntopk = 0;
    for (uint32_t i = 0; i <= N; i++)
        ntopk += w.sk[i].topk != NULL;
    assert_int_equal(ntopk, 2); /* sub-buckets 100 and 101 only, no copies */
    double total, a;
    read_counts(&w, &total, &a, "alpha");
    assert_true(total == 2 && a == 1);
    /* pop the holes one by one: the front top moves with them */
    for (int64_t s = 103; s <= 110; s++) {
        assert_int_equal(nx_window_advance(&w, s, &P, NULL), 0);
        read_counts(&w, &total, &a, "alpha");
        assert_true(total == 2 && a == 1);
    }
    assert_int_equal(w.fskip, 0); /* 100 is the oldest now */
    assert_int_equal(nx_window_advance(&w, 111, &P, NULL), 0);
    read_counts(&w, &total, &a, "alpha");
    assert_true(total == 1 && a == 0); /* 100 evicted, 101 left */
    nx_window_free(&w);
}

static void test_late_into_hole(void **st)
{
    (void)st;
    nx_window w;
    young_window(&w);
    /* window at 102: oldest complete sub-bucket 92, holes 92..99 */
    assert_int_equal(nx_window_add_late(&w, 95, &P, NX_TYPE_SET, 0, 2, "gamma", 5), 0);
    assert_int_equal(w.fskip, 95 - 92);
    double total, g, a;
    read_counts(&w, &total, &g, "gamma");
    read_counts(&w, &total, &a, "alpha");
    assert_true(total == 4 && g == 2 && a == 1);
    /* pop 92..95: gamma goes with 95, alpha stays */
    for (int64_t s = 103; s <= 106; s++)
        assert_int_equal(nx_window_advance(&w, s, &P, NULL), 0);
    read_counts(&w, &total, &g, "gamma");
    read_counts(&w, &total, &a, "alpha");
    assert_true(total == 2 && g == 0 && a == 1);
    /* a late event into the front past the holes reaches the suffixes */
    assert_int_equal(nx_window_add_late(&w, 100, &P, NX_TYPE_SET, 0, 1, "alpha", 5), 0);
    read_counts(&w, &total, &a, "alpha");
    assert_true(total == 3 && a == 2);
    nx_window_free(&w);
}

static void roundtrip(nx_window *w, nx_window *out, int want_rc)
{
    nx_buf buf = {0};
    if (w->flazy) { /* suffixes left to build by a flip: not encodable yet */
        assert_int_equal(nx_window_encode(w, &buf), NX_EINVAL);
        assert_int_equal(nx_window_front_build(w, &P), 0);
    }
    assert_int_equal(nx_window_encode(w, &buf), 0);
    nx_rbuf in = {buf.data, buf.len, 0};
    nx_window_init(out, N, 1, NULL);
    int rc = nx_window_decode(&in, out, &P, NX_TYPE_SET, true, NULL, NULL);
    assert_int_equal(rc, want_rc);
    if (rc == 0)
        assert_int_equal(in.n, 0);
    nx_buf_free(&buf);
}

static void test_codec(void **st)
{
    (void)st;
    nx_window w, d;
    young_window(&w);
    roundtrip(&w, &d, 0);
    assert_int_equal(d.fskip, w.fskip);
    double t1, t2, a1, a2;
    read_counts(&w, &t1, &a1, "alpha");
    read_counts(&d, &t2, &a2, "alpha");
    assert_true(t1 == t2 && a1 == a2 && a1 == 1);
    nx_window_free(&d);
    /* a hole that holds data but no suffix: refused */
    nx_wslot *h = &w.slots[ring(94)];
    h->m.count = 1;
    w.nonempty++;
    roundtrip(&w, &d, NX_ECORRUPT);
    nx_window_free(&d);
    h->m.count = 0;
    w.nonempty--;
    nx_window_free(&w);
}

/* A flip leaves the front's top-k suffixes to build (nx_window.h, "Lazy
 * front"); building them later must give exactly what building them at the
 * flip gives. Window e is read after every step (so its flips build their
 * suffixes at once: it was read since the last one), window l only at
 * checkpoints (nx_window_front_build, which leaves its flips lazy). 300
 * members against 64 counters (merges evict, so their order shows), gaps
 * (holes, restarts) and late events into every sub-bucket the window
 * covers, front ones included. At each checkpoint both encode byte for
 * byte the same (l building its suffixes there, as a snapshot does). */
static void test_lazy_equals_eager(void **st)
{
    (void)st;
    nx_window e, l;
    nx_window_init(&e, N, 1, NULL);
    nx_window_init(&l, N, 1, NULL);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int64_t sec = 5000;
    int lazy_seen = 0, checks = 0, late = 0;
    for (int step = 0; step < 6000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* restarts (a gap past the window frees its slots and their
         * top-ks), and short gaps: empty slots amid the front */
        sec = test_window_twin_sec(sec, x, N);
        for (uint64_t j = 0, nm = 1 + (x >> 16) % 40; j < nm; j++) {
            char m[16];
            snprintf(m, sizeof m, "m%u", (unsigned)((x >> 24) * (j + 1) % 300));
            fold_member(&e, sec, m);
            fold_member(&l, sec, m);
        }
        for (uint64_t j = 0, nl = (x >> 40) % 8 == 0 ? 2 : 0; j < nl; j++) {
            char m[16];
            int len = snprintf(m, sizeof m, "m%u", (unsigned)((x >> 20) * (j + 3) % 300));
            int64_t ls = sec - (int64_t)((x >> (44 + j)) % (N + 1));
            assert_int_equal(nx_window_add_late(&e, ls, &P, NX_TYPE_SET, 0, 1, m, (uint32_t)len), 0);
            assert_int_equal(nx_window_add_late(&l, ls, &P, NX_TYPE_SET, 0, 1, m, (uint32_t)len), 0);
            late++;
        }
        /* e is read every step: its flips build at once (fread) */
        assert_false(e.flazy);
        double total, c;
        read_counts(&e, &total, &c, "m1");
        assert_false(e.flazy);
        lazy_seen += l.flazy;
        if (step % 5 == 4) {
            assert_int_equal(nx_window_front_build(&l, &P), 0);
            nx_buf be = {0}, bl = {0};
            assert_int_equal(nx_window_encode(&e, &be), 0);
            assert_int_equal(nx_window_encode(&l, &bl), 0);
            assert_int_equal(be.len, bl.len);
            assert_memory_equal(be.data, bl.data, be.len);
            nx_buf_free(&be);
            nx_buf_free(&bl);
            checks++;
        }
    }
    assert_true(lazy_seen > 2000 && checks > 1000 && late > 1000);
    nx_window_free(&e);
    nx_window_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flip_leaves_holes),
        cmocka_unit_test(test_late_into_hole),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_lazy_equals_eager),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
