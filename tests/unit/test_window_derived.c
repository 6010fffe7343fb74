/*
 * test_window_derived.c — set windows whose back stack's top-k is derived
 * from the window they feed (nx_window.h, "Derived back") against windows
 * that keep it.
 *
 * Two engines see the same set events: one as configured (a window whose
 * back can be read in the window it feeds does so), one with derivation
 * switched off (every back stack keeps its b*; white box: the engine's
 * cascade plan is edited). With fewer distinct members than the top-k
 * capacity no merge evicts anything, so both must answer every window read
 * with exactly the same counts, members, top-k counts and errors, however
 * the merges were grouped. Events come at now and late (into front, back
 * and current sub-buckets); gaps restart windows, whose backs then start
 * unaligned and must align with an early flip while the front still holds
 * suffixes; every window is read at random moments; the derived engine is
 * now and then replaced by its own snapshot round trip (engine versions 6+
 * encodes a derived back as has_btopk = 2). The test also checks that backs
 * were derived at all, for each window that can derive one.
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
#include "engine/nx_engine_int.h"
#include "sketch/nx_topk.h"
#include "test_rng.h"
#include "test_window_cfg.h"

#define NMEMBERS 40 /* < topk_capacity: no merge evicts */
#define KEY "logins|env:prod"

typedef struct side {
    nx_engine *e;
    nx_stream *s;
} side;

static void side_open(side *x)
{
    nx_tenant *t;
    assert_int_equal(nx_engine_tenant(x->e, "t", 1, &t), 0);
    assert_int_equal(nx_tenant_stream(t, KEY, strlen(KEY), NX_TYPE_SET, &x->s), 0);
}

static int by_member(const void *a, const void *b)
{
    const nx_topk_item *x = a, *y = b;
    uint32_t l = x->member_len < y->member_len ? x->member_len : y->member_len;
    int c = memcmp(x->member, y->member, l);
    return c ? c : (int)x->member_len - (int)y->member_len;
}

/* Both engines' reads of window w at now must be identical. */
static void compare_window(side *d, side *k, uint32_t window_s, int64_t now)
{
    nx_summary a, b;
    assert_int_equal(nx_stream_read(d->s, window_s, now, &a), 0);
    assert_int_equal(nx_stream_read(k->s, window_s, now, &b), 0);
    if (a.count != b.count)
        fail_msg("window %u: count %.17g, kept back says %.17g", window_s, a.count, b.count);
    assert_true((a.topk == NULL) == (b.topk == NULL));
    if (a.topk) {
        nx_topk_item ia[64], ib[64];
        size_t na = nx_topk_list(a.topk, ia, 64), nb = nx_topk_list(b.topk, ib, 64);
        if (na != nb)
            fail_msg("window %u: %zu members, kept back says %zu", window_s, na, nb);
        qsort(ia, na, sizeof ia[0], by_member);
        qsort(ib, nb, sizeof ib[0], by_member);
        for (size_t i = 0; i < na; i++) {
            assert_int_equal(by_member(&ia[i], &ib[i]), 0);
            if (ia[i].count != ib[i].count || ia[i].error != ib[i].error)
                fail_msg("window %u member %.*s: %.17g (err %g), kept back says %.17g (err %g)",
                         window_s, (int)ia[i].member_len, ia[i].member, ia[i].count,
                         ia[i].error, ib[i].count, ib[i].error);
        }
    }
    nx_summary_free(&a);
    nx_summary_free(&b);
}

static void roundtrip(side *d, const nx_engine_config *cfg)
{
    nx_buf buf = {0};
    assert_int_equal(nx_engine_encode(d->e, &buf), 0);
    assert_int_equal(buf.data[4], 10); /* frame version */
    nx_engine *f = NULL;
    assert_int_equal(nx_engine_decode(cfg, buf.data, buf.len, &f), 0);
    nx_buf_free(&buf);
    nx_engine_destroy(d->e);
    d->e = f;
    side_open(d);
}

static void run(const nx_engine_config *cfg, uint64_t seed)
{
    rng_state = seed;
    side d = {0}, k = {0};
    assert_int_equal(nx_engine_create(cfg, &d.e), 0);
    assert_int_equal(nx_engine_create(cfg, &k.e), 0);
    bool can_derive = false;
    for (uint32_t i = 0; i < cfg->nwindows; i++) {
        can_derive |= d.e->win_derive[i] >= 0;
        k.e->win_derive[i] = -1;
        k.e->win_bgroup[i] = 0;
    }
    assert_true(can_derive);
    side_open(&d);
    side_open(&k);
    uint32_t derived_seen[NX_MAX_WINDOWS] = {0};
    static const double weights[] = {1, 1, 1, 2, 0.5};
    int64_t now = 1700000000000ll + (int64_t)(rng() % 1000000);
    uint64_t reads = 0, trips = 0, late = 0;
    for (int n = 0; n < 30000 * scale(); n++) {
        uint64_t x = rng();
        if (x % 1000 == 0)
            now += (int64_t)(4000 + rng() % 400000); /* restarts windows */
        else
            now += (int64_t)(rng() % 150);
        nx_update u;
        memset(&u, 0, sizeof u);
        char m[16];
        u.member_len = (uint32_t)snprintf(m, sizeof m, "u%u", (unsigned)(rng() % NMEMBERS));
        u.member = m;
        u.weight = weights[rng() % 5];
        if (x % 10 < 3) { /* late, within the default 60 s tolerance */
            u.ts_ms = now - (int64_t)(rng() % 59000);
            late++;
        }
        int rd = nx_stream_update(d.s, &u, now), rk = nx_stream_update(k.s, &u, now);
        assert_int_equal(rd, rk);
        if (x % 97 == 0) {
            for (uint32_t w = 0; w < cfg->nwindows; w++)
                compare_window(&d, &k, cfg->windows[w].length_s, now);
            for (uint32_t w = 0; w < cfg->nwindows; w++)
                derived_seen[w] += d.s->win && d.s->win[w].bderived;
            reads++;
        }
        if (x % 1499 == 0) {
            roundtrip(&d, cfg);
            trips++;
        }
    }
    for (uint32_t w = 0; w < cfg->nwindows; w++) {
        if (d.e->win_derive[w] >= 0 && derived_seen[w] == 0)
            fail_msg("window %u/%u never derived its back", cfg->windows[w].length_s,
                     cfg->windows[w].bucket_s);
        if (d.e->win_derive[w] < 0)
            assert_int_equal(derived_seen[w], 0);
    }
    assert_true(reads > 100 && trips > 5 && late > 1000);
    nx_engine_destroy(d.e);
    nx_engine_destroy(k.e);
}

/* The defaults: 10 s/1 s -> 1 m/5 s -> 5 m/30 s -> 1 h/300 s derive with
 * g = 5, 6, 10 (n/g = 2, 2, 1); 1 h feeds only all-time and keeps b*. */
static void test_default_chain(void **st)
{
    (void)st;
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    run(&cfg, 101);
}

/* g = 1 (a window fed by one of the same width), a window that feeds two
 * (one of which it cannot derive from), windows that feed none. */
static void test_tree(void **st)
{
    (void)st;
    nx_engine_config cfg;
    test_window_cfg_tree(&cfg);
    run(&cfg, 202);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_chain),
        cmocka_unit_test(test_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
