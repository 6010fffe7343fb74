/*
 * test_topk.c — SpaceSaving on Zipf streams against exact counts: every
 * member with frequency > N/k is reported and count - error <= true <= count,
 * also after merges (N1 + N2, many shards); weights; codec round trip,
 * truncations and byte flips; bounded memory under churn.
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
#include <xxhash.h>

#include "common/nx_codec.h"
#include "sketch/nx_topk.h"
#include "test_topk_eq.h"

static uint64_t rng_state = 0x5eed5ull;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double urand(void) { return (double)(rng() >> 11) * 0x1.0p-53; }

static size_t test_n(void)
{
    const char *s = getenv("NX_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return (size_t)1000000 * (size_t)(v > 0 ? v : 1);
}

enum { U = 100000 }; /* universe */

typedef struct zipf {
    double *cdf;
    uint32_t *perm; /* rank -> member id, so different streams differ */
} zipf;

static void zipf_init(zipf *z, double s)
{
    z->cdf = malloc(U * sizeof *z->cdf);
    z->perm = malloc(U * sizeof *z->perm);
    assert_non_null(z->cdf);
    assert_non_null(z->perm);
    double acc = 0;
    for (int i = 0; i < U; i++) {
        acc += 1 / pow(i + 1, s);
        z->cdf[i] = acc;
        z->perm[i] = (uint32_t)i;
    }
    for (int i = 0; i < U; i++)
        z->cdf[i] /= acc;
    for (int i = U - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(rng() % (uint64_t)(i + 1)), t = z->perm[i];
        z->perm[i] = z->perm[j];
        z->perm[j] = t;
    }
}
static void zipf_free(zipf *z)
{
    free(z->cdf);
    free(z->perm);
}
static uint32_t zipf_draw(const zipf *z)
{
    double u = urand();
    uint32_t a = 0, b = U - 1;
    while (a < b) {
        uint32_t m = (a + b) / 2;
        if (z->cdf[m] < u)
            a = m + 1;
        else
            b = m;
    }
    return z->perm[a];
}

static int member(uint32_t id, char *buf)
{
    /* varying lengths exercise the arena */
    return snprintf(buf, 48, "m%u%.*s", id, (int)(id % 13), "-------------");
}

static uint32_t parse_id(const char *m, uint32_t len)
{
    char tmp[64];
    assert_true(len < sizeof tmp && len > 1);
    memcpy(tmp, m, len);
    tmp[len] = 0;
    return (uint32_t)strtoul(tmp + 1, NULL, 10);
}

/* Checks both guarantees of t against exact counts `truth` (total N). */
static void check_guarantees(const nx_topk *t, const double *truth, double N)
{
    uint32_t k = nx_topk_capacity(t);
    assert_true(fabs(nx_topk_total(t) - N) <= 1e-9 * N);
    nx_topk_item *items = malloc(k * sizeof *items);
    assert_non_null(items);
    size_t n = nx_topk_list(t, items, k);
    uint8_t *seen = calloc(U, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = parse_id(items[i].member, items[i].member_len);
        assert_true(id < U);
        char buf[64];
        int len = member(id, buf);
        assert_int_equal(len, items[i].member_len);
        assert_memory_equal(buf, items[i].member, (size_t)len);
        double tr = truth[id];
        double slack = 1e-9 * N;
        if (!(items[i].count - items[i].error <= tr + slack && tr <= items[i].count + slack))
            fail_msg("member %u: count %.1f error %.1f true %.1f", id, items[i].count,
                     items[i].error, tr);
        if (i > 0)
            assert_true(items[i - 1].count >= items[i].count);
        seen[id] = 1;
    }
    int heavy = 0;
    for (uint32_t id = 0; id < U; id++)
        if (truth[id] > N / k) {
            heavy++;
            if (!seen[id])
                fail_msg("member %u with frequency %.1f > N/k = %.1f not reported", id, truth[id],
                         N / k);
        }
    assert_true(heavy > 0);
    free(seen);
    free(items);
}

static void feed(nx_topk *t, const zipf *z, size_t n, double *truth, int weighted)
{
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        uint32_t id = zipf_draw(z);
        double w = weighted ? (double)(1 + rng() % 4) : 1.0;
        assert_int_equal(nx_topk_add(t, buf, (uint32_t)member(id, buf), w), 0);
        truth[id] += w;
    }
}

static void test_zipf(void **st)
{
    const double exps[] = {0.8, 1.1, 1.5};
    const uint32_t ks[] = {200, 64, 16};
    for (int e = 0; e < 3; e++) {
        zipf z;
        zipf_init(&z, exps[e]);
        nx_topk *t;
        assert_int_equal(nx_topk_create(ks[e], &t), 0);
        double *truth = calloc(U, sizeof *truth);
        assert_non_null(truth);
        size_t n = test_n();
        feed(t, &z, n, truth, e == 1);
        double N = 0;
        for (int i = 0; i < U; i++)
            N += truth[i];
        check_guarantees(t, truth, N);
        free(truth);
        nx_topk_destroy(t);
        zipf_free(&z);
    }
}

static void test_merge(void **st)
{
    enum { K = 50, SH = 8 };
    zipf z1, z2;
    zipf_init(&z1, 1.05);
    zipf_init(&z2, 1.2); /* different permutation: different heavy hitters */
    double *truth = calloc(U, sizeof *truth);
    assert_non_null(truth);
    nx_topk *a, *b;
    assert_int_equal(nx_topk_create(K, &a), 0);
    assert_int_equal(nx_topk_create(K, &b), 0);
    size_t n = test_n() / 2;
    feed(a, &z1, n, truth, 0);
    feed(b, &z2, n / 3, truth, 1);
    double N = nx_topk_total(a) + nx_topk_total(b);
    assert_int_equal(nx_topk_merge(a, b), 0);
    check_guarantees(a, truth, N);
    /* many shards, tree merge, mixed streams */
    memset(truth, 0, U * sizeof *truth);
    nx_topk *sh[SH];
    for (int i = 0; i < SH; i++) {
        assert_int_equal(nx_topk_create(K, &sh[i]), 0);
        feed(sh[i], i % 2 ? &z1 : &z2, n / SH, truth, i % 3 == 0);
    }
    N = 0;
    for (int i = 0; i < U; i++)
        N += truth[i];
    for (int stride = 1; stride < SH; stride *= 2)
        for (int i = 0; i + stride < SH; i += 2 * stride)
            assert_int_equal(nx_topk_merge(sh[i], sh[i + stride]), 0);
    check_guarantees(sh[0], truth, N);
    /* keep adding after a merge: still valid */
    feed(sh[0], &z1, n / 4, truth, 0);
    N = 0;
    for (int i = 0; i < U; i++)
        N += truth[i];
    check_guarantees(sh[0], truth, N);
    /* merging with a not-full one and with an empty one */
    nx_topk *small, *empty, *other;
    assert_int_equal(nx_topk_create(K, &small), 0);
    assert_int_equal(nx_topk_create(K, &empty), 0);
    char m7[64];
    assert_int_equal(nx_topk_add(small, m7, (uint32_t)member(7, m7), 3), 0);
    truth[7] += 3;
    N += 3;
    assert_int_equal(nx_topk_merge(small, sh[0]), 0);
    check_guarantees(small, truth, N);
    assert_int_equal(nx_topk_merge(small, empty), 0);
    check_guarantees(small, truth, N);
    /* another capacity: only a sketch that is not full (exact) merges */
    assert_int_equal(nx_topk_create(K + 1, &other), 0);
    for (uint32_t i = 0; i < K + 1; i++) {
        char m[64];
        assert_int_equal(nx_topk_add(other, m, (uint32_t)member(U - 1 - i, m), 1), 0);
    }
    assert_int_equal(nx_topk_merge(small, other), NX_EINVAL);
    nx_topk_destroy(other);
    nx_topk_destroy(small);
    nx_topk_destroy(empty);
    for (int i = 0; i < SH; i++)
        nx_topk_destroy(sh[i]);
    nx_topk_destroy(a);
    nx_topk_destroy(b);
    free(truth);
    zipf_free(&z1);
    zipf_free(&z2);
}

/* The set path's batches: members tallied exactly into a scratch sketch of
 * another capacity (never full), merged into a k-counter sketch batch by
 * batch. Both guarantees hold at every batch, and with at most k distinct
 * members the result is exact. A tally into a full sketch adds as
 * nx_topk_add does. */
static void test_tally_batches(void **st)
{
    (void)st;
    enum { K = 64, B = 255 };
    double *truth = calloc(U, sizeof *truth);
    assert_non_null(truth);
    zipf z;
    zipf_init(&z, 1.1);
    nx_topk *t, *scratch;
    assert_int_equal(nx_topk_create(K, &t), 0);
    assert_int_equal(nx_topk_create(B + 1, &scratch), 0);
    double N = 0;
    for (int batch = 0; batch < 400; batch++) {
        nx_topk_clear(scratch);
        uint32_t n = 1 + (uint32_t)(rng() % B);
        double w = batch % 3 ? 1.0 : 0.5;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t id = zipf_draw(&z);
            char m[64];
            int len = member(id, m);
            assert_int_equal(nx_topk_tally(scratch, m, (uint32_t)len,
                                           XXH3_64bits(m, (size_t)len), w), 0);
            truth[id] += w;
            N += w;
        }
        assert_int_equal(nx_topk_merge(t, scratch), 0);
        check_guarantees(t, truth, N);
    }
    /* few members: exact */
    nx_topk *few;
    assert_int_equal(nx_topk_create(K, &few), 0);
    double exact[K] = {0};
    for (int batch = 0; batch < 50; batch++) {
        nx_topk_clear(scratch);
        for (uint32_t i = 0; i < 100; i++) {
            uint32_t id = (uint32_t)(rng() % K);
            char m[64];
            int len = member(id, m);
            assert_int_equal(nx_topk_tally(scratch, m, (uint32_t)len,
                                           XXH3_64bits(m, (size_t)len), 1), 0);
            exact[id] += 1;
        }
        assert_int_equal(nx_topk_merge(few, scratch), 0);
    }
    nx_topk_item items[K];
    size_t n = nx_topk_list(few, items, K);
    assert_int_equal(n, K);
    for (size_t i = 0; i < n; i++) {
        uint32_t id = parse_id(items[i].member, items[i].member_len);
        assert_true(id < K && items[i].count == exact[id] && items[i].error == 0);
    }
    /* a full sketch: a new member evicts, as an add does */
    nx_topk *a, *b;
    assert_int_equal(nx_topk_create(4, &a), 0);
    assert_int_equal(nx_topk_create(4, &b), 0);
    for (uint32_t i = 0; i < 40; i++) {
        char m[64];
        int len = member(i % 7 + (i % 3) * 7, m);
        assert_int_equal(nx_topk_tally(a, m, (uint32_t)len, XXH3_64bits(m, (size_t)len), 1), 0);
        assert_int_equal(nx_topk_add(b, m, (uint32_t)len, 1), 0);
    }
    nx_topk_item ia[4], ib[4];
    assert_int_equal(nx_topk_list(a, ia, 4), 4);
    assert_int_equal(nx_topk_list(b, ib, 4), 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ia[i].member_len, ib[i].member_len);
        assert_memory_equal(ia[i].member, ib[i].member, ia[i].member_len);
        assert_true(ia[i].count == ib[i].count && ia[i].error == ib[i].error);
    }
    assert_int_equal(nx_topk_tally(a, "x", 1, 1, 0), NX_EINVAL);
    nx_topk_destroy(a);
    nx_topk_destroy(b);
    nx_topk_destroy(few);
    nx_topk_destroy(t);
    nx_topk_destroy(scratch);
    zipf_free(&z);
    free(truth);
}

static void test_exact_when_small(void **st)
{
    nx_topk *t;
    assert_int_equal(nx_topk_create(4, &t), 0);
    assert_int_equal(nx_topk_add(t, "a", 1, 1), 0);
    assert_int_equal(nx_topk_add(t, "b", 1, 2), 0);
    assert_int_equal(nx_topk_add(t, "a", 1, 1), 0);
    assert_int_equal(nx_topk_add(t, "", 0, 1), 0); /* empty member is a member */
    assert_int_equal(nx_topk_add(t, "a", 1, 0), NX_EINVAL);
    assert_int_equal(nx_topk_add(t, "a", 1, NAN), NX_EINVAL);
    nx_topk_item it[8];
    assert_int_equal(nx_topk_list(t, it, 8), 3);
    assert_true(it[0].count == 2 && it[0].error == 0 && it[1].count == 2 && it[2].count == 1);
    assert_int_equal(it[2].member_len, 0);
    /* ties in candidate order: smaller XXH3 hash of the member first */
    const char *first = XXH3_64bits("a", 1) < XXH3_64bits("b", 1) ? "a" : "b";
    assert_memory_equal(it[0].member, first, 1);
    assert_int_equal(nx_topk_list(t, it, 1), 1);
    /* fill and evict: newcomer inherits the min count as error */
    assert_int_equal(nx_topk_add(t, "c", 1, 5), 0);
    assert_int_equal(nx_topk_add(t, "d", 1, 1), 0); /* evicts "" (count 1) */
    assert_int_equal(nx_topk_list(t, it, 8), 4);
    int found = 0;
    for (int i = 0; i < 4; i++)
        if (it[i].member_len == 1 && it[i].member[0] == 'd') {
            assert_true(it[i].count == 2 && it[i].error == 1);
            found = 1;
        }
    assert_true(found);
    assert_true(nx_topk_total(t) == 11);
    nx_topk_clear(t);
    assert_int_equal(nx_topk_list(t, it, 8), 0);
    assert_true(nx_topk_total(t) == 0);
    nx_topk_destroy(t);
    assert_int_equal(nx_topk_create(0, &t), NX_EINVAL);
}

/* The number in member "m<i>" (members are not NUL-terminated). */
static int member_no(const nx_topk_item *it)
{
    char b[8] = {0};
    assert_true(it->member_len > 1 && it->member_len < sizeof b && it->member[0] == 'm');
    memcpy(b, it->member + 1, it->member_len - 1);
    return atoi(b);
}

/* Members whose hashes share the table slot and the 15-bit tag kept in the
 * table entry (they differ in the middle bits), and two with one identical
 * 64-bit hash: lookups must still tell them apart by the full hash and the
 * bytes, through inserts, hits and evictions (backward-shift deletion in a
 * chain of colliding entries). Counts are checked against the truth: exact
 * while everything fits, SpaceSaving's bounds after evictions. */
static void test_colliding_hashes(void **st)
{
    (void)st;
    enum { K = 16, N = 40 };
    nx_topk *t;
    assert_int_equal(nx_topk_create(K, &t), 0);
    char names[N][16];
    uint64_t hash[N];
    double truth[N] = {0};
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        /* same top 15 bits, same low bits (slot), different middle bits */
        hash[i] = 0xABCD000000000000ull | ((uint64_t)(i / 2) << 24) | 5u;
    }
    /* m2j and m2j+1 share the whole hash */
    double total = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < K; i++) {
            double w = (double)(1 + (i + round) % 4);
            assert_int_equal(nx_topk_add_hash(t, names[i], (uint32_t)strlen(names[i]), hash[i], w), 0);
            truth[i] += w;
            total += w;
        }
    nx_topk_item it[N];
    size_t n = nx_topk_list(t, it, N);
    assert_int_equal(n, K);
    for (size_t j = 0; j < n; j++) {
        int i = member_no(&it[j]);
        assert_true(it[j].count == truth[i] && it[j].error == 0);
    }
    /* more colliding members than counters: evictions */
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < N; i++) {
            double w = (double)(1 + (i * 7 + round) % 5);
            assert_int_equal(nx_topk_add_hash(t, names[i], (uint32_t)strlen(names[i]), hash[i], w), 0);
            truth[i] += w;
            total += w;
        }
    n = nx_topk_list(t, it, N);
    assert_int_equal(n, K);
    double sum = 0;
    for (size_t j = 0; j < n; j++) {
        int i = member_no(&it[j]);
        for (size_t l = 0; l < j; l++)
            assert_false(it[l].member_len == it[j].member_len &&
                         !memcmp(it[l].member, it[j].member, it[j].member_len));
        assert_true(it[j].count >= truth[i] && it[j].count - it[j].error <= truth[i]);
        sum += it[j].count;
    }
    assert_true(sum == total && nx_topk_total(t) == total);
    nx_topk_destroy(t);
}

/* churn through many distinct members: memory stays bounded */
static void test_churn_memory(void **st)
{
    nx_topk *t;
    assert_int_equal(nx_topk_create(64, &t), 0);
    char buf[300];
    size_t max_bytes = 0;
    for (int i = 0; i < 300000; i++) {
        int len = snprintf(buf, sizeof buf, "%d", i);
        int extra = (int)(rng() % 200);
        memset(buf + len, 'x', (size_t)extra);
        len += extra;
        assert_int_equal(nx_topk_add(t, buf, (uint32_t)len, 1), 0);
        size_t b = nx_topk_bytes(t);
        if (b > max_bytes)
            max_bytes = b;
    }
    /* 64 members of <= 300 bytes: arena <= ~4x live, plus counters */
    assert_true(max_bytes < 64 * 300 * 4 + 64 * 64 + 1024);
    nx_topk *c;
    assert_int_equal(nx_topk_clone(t, &c), 0);
    nx_topk_item x[64], y[64];
    assert_int_equal(nx_topk_list(t, x, 64), 64);
    assert_int_equal(nx_topk_list(c, y, 64), 64);
    for (int i = 0; i < 64; i++) {
        assert_true(x[i].count == y[i].count && x[i].error == y[i].error);
        assert_int_equal(x[i].member_len, y[i].member_len);
        assert_memory_equal(x[i].member, y[i].member, x[i].member_len);
    }
    nx_topk_destroy(c);
    nx_topk_destroy(t);
}

static void codec_check(const nx_topk *t)
{
    nx_buf b = {0};
    assert_int_equal(nx_topk_encode(t, &b), 0);
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    nx_topk *d;
    assert_int_equal(nx_topk_decode(&r, &d), 0);
    assert_int_equal(r.n, 0);
    nx_buf b2 = {0};
    assert_int_equal(nx_topk_encode(d, &b2), 0);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    assert_true(nx_topk_total(d) == nx_topk_total(t));
    nx_topk_destroy(d);
    for (size_t len = 0; len < b.len; len++) {
        r = nx_rbuf_make(b.data, len);
        int rc = nx_topk_decode(&r, &d);
        if (rc == 0)
            fail_msg("truncation to %zu of %zu accepted", len, b.len);
        assert_int_equal(rc, NX_ECORRUPT);
    }
    uint8_t *tmp = malloc(b.len);
    assert_non_null(tmp);
    for (int it = 0; it < 4000; it++) {
        memcpy(tmp, b.data, b.len);
        int flips = 1 + (int)(rng() % 4);
        for (int f = 0; f < flips; f++)
            tmp[rng() % b.len] ^= (uint8_t)(1 + rng() % 255);
        r = nx_rbuf_make(tmp, b.len);
        int rc = nx_topk_decode(&r, &d);
        if (rc == 0) {
            nx_topk_item items[300];
            size_t n = nx_topk_list(d, items, 300);
            for (size_t i = 0; i < n; i++)
                assert_true(items[i].count >= items[i].error && items[i].error >= 0);
            assert_int_equal(nx_topk_add(d, "zz", 2, 1), 0);
            nx_topk *c;
            assert_int_equal(nx_topk_clone(d, &c), 0);
            (void)nx_topk_merge(c, t);
            nx_topk_destroy(c);
            nx_topk_destroy(d);
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
    nx_topk *t;
    assert_int_equal(nx_topk_create(32, &t), 0);
    codec_check(t);
    assert_int_equal(nx_topk_add(t, "x", 1, 2.5), 0);
    codec_check(t);
    zipf z;
    zipf_init(&z, 1.1);
    double *truth = calloc(U, sizeof *truth);
    assert_non_null(truth);
    feed(t, &z, 20000, truth, 0);
    codec_check(t);
    free(truth);
    zipf_free(&z);
    nx_topk_destroy(t);
    nx_buf b = {0};
    nx_buf_uvar(&b, 64);
    nx_buf_f64(&b, 10);
    nx_buf_uvar(&b, 1u << 30);
    nx_rbuf r = nx_rbuf_make(b.data, b.len);
    assert_int_equal(nx_topk_decode(&r, &t), NX_ECORRUPT);
    nx_buf_free(&b);
}

/* A candidate of the reference merge below. */
typedef struct ref_cand {
    char m[48];
    uint32_t len;
    uint64_t hash;
    double count, error;
} ref_cand;

static int ref_order(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    uint32_t l = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->m, y->m, l);
    return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

/* The hash a merge test gives member m: XXH3 (mode 0); one of 3 values,
 * so that distinct members share whole hashes (mode 1); or hashes that
 * differ only in their low 17 bits, which the merge's selection keys drop
 * (mode 2). nx_topk_add_hash takes the hash from the caller, so the
 * candidate order's tie-breaks can be forced. */
static uint64_t merge_hash(int mode, const char *m, uint32_t len)
{
    uint64_t h = XXH3_64bits(m, len);
    if (mode == 1)
        return 0x9E3779B97F4A7C15ull * (1 + h % 3);
    if (mode == 2)
        return 0xABCDEF0123400000ull | (h & 0x1FFFF);
    return h;
}

/* nx_topk_merge against its definition, computed from the two listings:
 * every member of the union with count c1' + c2' and error e1' + e2'
 * (a side that does not monitor it contributes its minimum when full, else
 * 0), the k first in candidate order. Exact: same counts and errors to the
 * bit, same members, over random fills, overlaps and capacities. Then an
 * add of a new member to the full result (the first add after a merge
 * rebuilds the heap) must evict exactly the last candidate. */
static void merge_rounds(int mode, int rounds)
{
    uint64_t x = 99 + (uint64_t)mode;
    const uint32_t caps[] = {1, 3, 8, 16, 64};
    for (int round = 0; round < rounds; round++) {
        uint32_t k = caps[round % 5];
        nx_topk *a, *b;
        assert_int_equal(nx_topk_create(k, &a), 0);
        assert_int_equal(nx_topk_create(k, &b), 0);
        uint32_t universe = 1 + (uint32_t)(round * 7 % (3 * k + 5));
        for (int side = 0; side < 2; side++) {
            int adds = (int)((round * 13 + side * 5) % (4 * k + 3));
            for (int i = 0; i < adds; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                char m[16];
                int n = snprintf(m, sizeof m, "m%u", (unsigned)((x >> 33) % universe));
                double w = (double)(1 + (x >> 20) % 3) * (side ? 1.0 : 0.5);
                assert_int_equal(nx_topk_add_hash(side ? b : a, m, (uint32_t)n,
                                                  merge_hash(mode, m, (uint32_t)n), w),
                                 0);
            }
        }
        if (round & 1) {
            /* every other round, dst is itself the result of a merge that
             * may have replaced counters (its table then stale until the
             * next lookup), with members src may monitor too */
            nx_topk *p;
            assert_int_equal(nx_topk_create(k, &p), 0);
            for (uint32_t i = 0; i < k; i++) {
                /* distinct: universe..1, then 2 universe..universe + 1, ... */
                unsigned id = (i / universe + 1) * universe - i % universe;
                char m[16];
                int n = snprintf(m, sizeof m, "m%u", id);
                assert_int_equal(
                    nx_topk_add_hash(p, m, (uint32_t)n, merge_hash(mode, m, (uint32_t)n), 0.75), 0);
            }
            assert_int_equal(nx_topk_merge(a, p), 0);
            nx_topk_destroy(p);
        }
        nx_topk_item la[64], lb[64], got[64];
        size_t na = nx_topk_list(a, la, 64), nb = nx_topk_list(b, lb, 64);
        double m1 = na == k ? la[na - 1].count : 0, m2 = nb == k ? lb[nb - 1].count : 0;
        ref_cand c[129];
        size_t nc = 0;
        for (size_t i = 0; i < na; i++) {
            ref_cand *r = &c[nc++];
            memcpy(r->m, la[i].member, la[i].member_len);
            r->len = la[i].member_len;
            r->hash = merge_hash(mode, r->m, r->len);
            r->count = la[i].count;
            r->error = la[i].error;
            size_t j = 0;
            while (j < nb && !(lb[j].member_len == r->len && !memcmp(lb[j].member, r->m, r->len)))
                j++;
            r->count += j < nb ? lb[j].count : m2;
            r->error += j < nb ? lb[j].error : m2;
        }
        for (size_t j = 0; j < nb; j++) {
            size_t i = 0;
            while (i < na && !(la[i].member_len == lb[j].member_len &&
                               !memcmp(la[i].member, lb[j].member, lb[j].member_len)))
                i++;
            if (i < na)
                continue;
            ref_cand *r = &c[nc++];
            memcpy(r->m, lb[j].member, lb[j].member_len);
            r->len = lb[j].member_len;
            r->hash = merge_hash(mode, r->m, r->len);
            r->count = lb[j].count + m1;
            r->error = lb[j].error + m1;
        }
        qsort(c, nc, sizeof c[0], ref_order);
        size_t want = nc < k ? nc : k;
        double total = nx_topk_total(a) + nx_topk_total(b);
        assert_int_equal(nx_topk_merge(a, b), 0);
        size_t n = nx_topk_list(a, got, 64);
        assert_int_equal(n, want);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(got[i].member_len, c[i].len);
            assert_memory_equal(got[i].member, c[i].m, c[i].len);
            assert_true(got[i].count == c[i].count);
            assert_true(got[i].error == c[i].error);
        }
        assert_true(nx_topk_total(a) == total);
        if (n == k) {
            /* a new member takes the last candidate's counter: count + 1,
             * error = its count */
            ref_cand *r = &c[k - 1];
            double last = r->count;
            r->len = (uint32_t)snprintf(r->m, sizeof r->m, "new%d", round);
            r->hash = merge_hash(mode, r->m, r->len);
            r->count = last + 1;
            r->error = last;
            assert_int_equal(nx_topk_add_hash(a, r->m, r->len, r->hash, 1), 0);
            qsort(c, k, sizeof c[0], ref_order);
        } else if (n) {
            /* and adds after the merge find its members */
            assert_int_equal(nx_topk_add_hash(a, got[0].member, got[0].member_len,
                                              merge_hash(mode, got[0].member, got[0].member_len), 1),
                             0);
            c[0].count += 1;
        }
        if (n) {
            nx_topk_item again[64];
            assert_int_equal(nx_topk_list(a, again, 64), n);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(again[i].member_len, c[i].len);
                assert_memory_equal(again[i].member, c[i].m, c[i].len);
                assert_true(again[i].count == c[i].count);
                assert_true(again[i].error == c[i].error);
            }
        }
        nx_topk_destroy(a);
        nx_topk_destroy(b);
    }
}

/* Both sketches encode to the same bytes (the same counters in candidate
 * order) and hold the same total. */
/* A merge into an empty sketch from one that was never full and fits in it
 * (a second's drained batch, tallied into 256 counters, into the second's
 * top-k of 64) copies the counters at once (topk_fill). The result must be
 * what tallying src's counters into dst gives, and so must its evolution:
 * a second merge (its lookups need the table the fill left to rebuild) and
 * adds that evict (the heap). dst is reused, cleared, frozen or new. */
static void test_fill_from_exact(void **st)
{
    (void)st;
    enum { K = 64, B = 256 };
    nx_topk *batch, *more, *dst;
    assert_int_equal(nx_topk_create(B, &batch), 0);
    assert_int_equal(nx_topk_create(B, &more), 0);
    assert_int_equal(nx_topk_create(K, &dst), 0);
    for (int round = 0; round < 300; round++) {
        nx_topk *b = batch;
        for (int side = 0; side < 2; side++, b = more) {
            nx_topk_clear(b);
            uint32_t distinct = 1 + (uint32_t)(rng() % K), n = distinct * (1 + (uint32_t)(rng() % 3));
            double w = (round + side) % 3 ? 1.0 : 0.25;
            for (uint32_t i = 0; i < n; i++) {
                char m[64];
                int len = member((uint32_t)(rng() % distinct) + (uint32_t)round * 50, m);
                assert_int_equal(
                    nx_topk_tally(b, m, (uint32_t)len, XXH3_64bits(m, (size_t)len), w), 0);
            }
        }
        nx_topk_clear(dst);
        if (round % 4 == 1)
            nx_topk_freeze(dst);
        if (round % 4 == 2) {
            nx_topk_destroy(dst);
            assert_int_equal(nx_topk_create(K, &dst), 0);
        }
        /* the reference: batch's counters tallied one by one */
        nx_topk *ref;
        assert_int_equal(nx_topk_create(K, &ref), 0);
        nx_topk_item it[B];
        size_t n = nx_topk_list(batch, it, B);
        assert_true(n <= K);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(nx_topk_tally(ref, it[i].member, it[i].member_len,
                                           XXH3_64bits(it[i].member, it[i].member_len),
                                           it[i].count),
                             0);
        assert_int_equal(nx_topk_merge(dst, batch), 0);
        topk_encodings_equal(dst, ref);
        if (round & 1) { /* else the adds come straight after the fill */
            assert_int_equal(nx_topk_merge(dst, more), 0);
            assert_int_equal(nx_topk_merge(ref, more), 0);
            topk_encodings_equal(dst, ref);
        }
        for (int i = 0; i < 200; i++) {
            char m[64];
            int len = member((uint32_t)(rng() % 400) + (uint32_t)round * 50, m);
            assert_int_equal(nx_topk_add(dst, m, (uint32_t)len, 1), 0);
            assert_int_equal(nx_topk_add(ref, m, (uint32_t)len, 1), 0);
        }
        topk_encodings_equal(dst, ref);
        nx_topk_destroy(ref);
    }
    nx_topk_destroy(dst);
    nx_topk_destroy(more);
    nx_topk_destroy(batch);
}

/* Tallies `distinct` (< cap) random members, some many times, into a new
 * exact sketch of capacity cap; ids from base on; weights 1 or 0.5. */
static nx_topk *exact_batch(uint32_t cap, uint32_t distinct, uint32_t base)
{
    nx_topk *b;
    assert_int_equal(nx_topk_create(cap, &b), 0);
    for (uint32_t i = 0; i < 3 * distinct; i++) {
        char m[64];
        uint32_t id = i < distinct ? i : (uint32_t)(rng() % distinct) / (1 + (uint32_t)(rng() % 3));
        int len = member(base + id, m);
        double w = rng() & 1 ? 1.0 : 0.5;
        assert_int_equal(nx_topk_tally(b, m, (uint32_t)len, XXH3_64bits(m, (size_t)len), w), 0);
    }
    assert_int_equal(nx_topk_size(b), distinct);
    return b;
}

/* nx_topk_set_capacity: a window's current set sub-bucket is widened while
 * it is exact and cut back when it completes (nx_window.h, "Wide
 * current"). A sketch that took exact batches in a wider capacity, then
 * was cut to K, must be exactly what merging the batches' union into an
 * empty sketch of K gives (the same counters, errors, bytes), and evolve
 * like it; widening and narrowing without a cut change nothing else; a
 * full sketch (whose counts are bounds) refuses a new capacity. */
static void test_set_capacity(void **st)
{
    (void)st;
    enum { K = 64, W = 256 };
    for (int round = 0; round < 200; round++) {
        uint32_t base = (uint32_t)round * 40;
        nx_topk *wide, *whole, *ref;
        assert_int_equal(nx_topk_create(K, &wide), 0);
        assert_int_equal(nx_topk_create(W, &whole), 0);
        assert_int_equal(nx_topk_create(K, &ref), 0);
        /* batches of overlapping members, as seconds of a sub-bucket */
        int nb = 1 + round % 5;
        for (int b = 0; b < nb; b++) {
            nx_topk *x = exact_batch(K, 1 + (uint32_t)(rng() % 50), base + (uint32_t)b * 20);
            if (b == 1)
                assert_int_equal(nx_topk_set_capacity(wide, W), 0);
            assert_int_equal(nx_topk_merge(wide, x), 0);
            assert_int_equal(nx_topk_merge(whole, x), 0);
            nx_topk_destroy(x);
        }
        assert_true(nx_topk_size(wide) < nx_topk_capacity(wide));
        if (round % 4 == 3)
            nx_topk_freeze(wide);
        assert_int_equal(nx_topk_merge(ref, whole), 0); /* the definition: a cut */
        assert_int_equal(nx_topk_set_capacity(wide, K), 0);
        assert_int_equal(nx_topk_capacity(wide), K);
        topk_encodings_equal(wide, ref);
        /* the dropped members' bytes are dead: frozen, both hold the same */
        nx_topk_freeze(wide);
        nx_topk_freeze(ref);
        assert_int_equal(nx_topk_bytes(wide), nx_topk_bytes(ref));
        /* evolution: a merge of a full sketch, then adds that evict */
        nx_topk *full = exact_batch(W, 100, base + 7);
        nx_topk *full64;
        assert_int_equal(nx_topk_create(K, &full64), 0);
        assert_int_equal(nx_topk_merge(full64, full), 0);
        assert_int_equal(nx_topk_size(full64), K);
        if (round & 1) {
            assert_int_equal(nx_topk_merge(wide, full64), 0);
            assert_int_equal(nx_topk_merge(ref, full64), 0);
            topk_encodings_equal(wide, ref);
        }
        for (int i = 0; i < 150; i++) {
            char m[64];
            int len = member(base + (uint32_t)(rng() % 300), m);
            assert_int_equal(nx_topk_add(wide, m, (uint32_t)len, 1), 0);
            assert_int_equal(nx_topk_add(ref, m, (uint32_t)len, 1), 0);
        }
        topk_encodings_equal(wide, ref);
        /* full now: its capacity stays */
        assert_int_equal(nx_topk_set_capacity(wide, K), 0);
        assert_int_equal(nx_topk_set_capacity(wide, W), NX_EINVAL);
        assert_int_equal(nx_topk_set_capacity(full64, W), NX_EINVAL);
        assert_int_equal(nx_topk_capacity(wide), K);
        topk_encodings_equal(wide, ref);
        nx_topk_destroy(full);
        nx_topk_destroy(full64);
        nx_topk_destroy(wide);
        nx_topk_destroy(whole);
        nx_topk_destroy(ref);
    }
    /* a cut that drops only counters past K (the first K are the largest):
     * their bytes are dead too */
    nx_topk *c, *r;
    assert_int_equal(nx_topk_create(W, &c), 0);
    assert_int_equal(nx_topk_create(K, &r), 0);
    for (uint32_t i = 0; i < 100; i++) {
        char m[64];
        int len = member(i, m);
        assert_int_equal(
            nx_topk_tally(c, m, (uint32_t)len, XXH3_64bits(m, (size_t)len), i < K ? 3 : 1), 0);
    }
    assert_int_equal(nx_topk_merge(r, c), 0);
    size_t before = nx_topk_bytes(c); /* 128 counters allocated for 100 */
    assert_int_equal(nx_topk_set_capacity(c, K), 0);
    assert_true(nx_topk_bytes(c) <= before - (128 - K) * 32); /* the spare ones given back */
    topk_encodings_equal(c, r);
    nx_topk_freeze(c);
    nx_topk_freeze(r);
    assert_int_equal(nx_topk_bytes(c), nx_topk_bytes(r));
    nx_topk_destroy(c);
    nx_topk_destroy(r);
    /* no cut: widened and narrowed back, a sketch of n <= K is unchanged */
    nx_topk *a = exact_batch(K, 40, 1), *b;
    assert_int_equal(nx_topk_clone(a, &b), 0);
    assert_int_equal(nx_topk_set_capacity(a, W), 0);
    assert_int_equal(nx_topk_capacity(a), W);
    assert_int_equal(nx_topk_set_capacity(a, 0), NX_EINVAL);
    assert_int_equal(nx_topk_set_capacity(a, 65537), NX_EINVAL);
    assert_int_equal(nx_topk_set_capacity(a, K), 0);
    topk_encodings_equal(a, b);
    nx_topk_destroy(a);
    nx_topk_destroy(b);
}

static void test_merge_matches_definition(void **st)
{
    (void)st;
    merge_rounds(0, 400);
}

/* The same with forced hash ties: whole-hash collisions between distinct
 * members (the member bytes decide) and hashes equal in all but the bits
 * the selection keys leave out (the whole hash decides). */
static void test_merge_hash_ties(void **st)
{
    (void)st;
    merge_rounds(1, 400);
    merge_rounds(2, 400);
}

/* Listing and encoding give the counters in candidate order (count
 * descending, then XXH3 hash ascending) for sizes around the sort's runs
 * of 8 and its merge widths, with many equal counts. */
static void test_candidate_order(void **st)
{
    (void)st;
    const uint32_t caps[] = {1, 2, 7, 8, 9, 16, 17, 63, 64, 65, 200};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        uint32_t k = caps[c];
        nx_topk *t;
        assert_int_equal(nx_topk_create(k, &t), 0);
        for (uint32_t i = 0; i < 3 * k; i++) { /* counts 1..4: ties everywhere */
            char m[16];
            int n = snprintf(m, sizeof m, "m%u", i % (k + 3));
            assert_int_equal(nx_topk_add(t, m, (uint32_t)n, 1 + (i * 7919) % 4), 0);
        }
        nx_topk_item *it = calloc(k, sizeof *it);
        size_t n = nx_topk_list(t, it, k);
        assert_int_equal(n, k);
        for (size_t i = 1; i < n; i++) {
            uint64_t ha = XXH3_64bits(it[i - 1].member, it[i - 1].member_len);
            uint64_t hb = XXH3_64bits(it[i].member, it[i].member_len);
            assert_true(it[i - 1].count > it[i].count || (it[i - 1].count == it[i].count && ha < hb));
        }
        nx_buf b = {0};
        assert_int_equal(nx_topk_encode(t, &b), 0);
        nx_rbuf r = nx_rbuf_make(b.data, b.len);
        assert_int_equal(nx_rbuf_uvar(&r), k);
        (void)nx_rbuf_f64(&r);
        assert_int_equal(nx_rbuf_uvar(&r), n);
        for (size_t i = 0; i < n; i++) { /* the same order in the encoding */
            size_t len;
            const uint8_t *m = nx_rbuf_bytes(&r, &len, NX_TOPK_MEMBER_MAX);
            assert_int_equal(len, it[i].member_len);
            assert_memory_equal(m, it[i].member, len);
            assert_true(nx_rbuf_f64(&r) == it[i].count);
            assert_true(nx_rbuf_f64(&r) == it[i].error);
        }
        assert_int_equal(r.err, 0);
        assert_int_equal(r.n, 0);
        nx_buf_free(&b);
        free(it);
        nx_topk_destroy(t);
    }
}

/* Regression (fuzz/crashes/fuzz_summary_decode-topk-null-offset): a sketch
 * whose only members are empty strings owns no arena; listing, merging and a
 * codec round trip must not compute NULL + 0 (UBSan aborts on it). */
static void test_empty_members_without_arena(void **st)
{
    (void)st;
    nx_topk *a, *b, *d;
    assert_int_equal(nx_topk_create(8, &a), 0);
    assert_int_equal(nx_topk_create(8, &b), 0);
    assert_int_equal(nx_topk_add(a, "", 0, 3.0), 0);
    assert_int_equal(nx_topk_add(b, "", 0, 2.0), 0);
    nx_topk_item items[8];
    assert_int_equal(nx_topk_list(a, items, 8), 1);
    assert_int_equal(items[0].member_len, 0);
    assert_true(items[0].count == 3.0);
    assert_int_equal(nx_topk_merge(a, b), 0);
    assert_int_equal(nx_topk_list(a, items, 8), 1);
    assert_true(items[0].count == 5.0);
    nx_buf buf = {0};
    assert_int_equal(nx_topk_encode(a, &buf), 0);
    nx_rbuf r = nx_rbuf_make(buf.data, buf.len);
    assert_int_equal(nx_topk_decode(&r, &d), 0);
    assert_int_equal(nx_topk_list(d, items, 8), 1);
    assert_true(items[0].count == 5.0);
    nx_buf_free(&buf);
    nx_topk_destroy(a);
    nx_topk_destroy(b);
    nx_topk_destroy(d);
}

static void fill(nx_topk *t, int n, uint32_t base)
{
    char m[48];
    for (int i = 0; i < n; i++) {
        uint32_t id = base + (uint32_t)(rng() % (uint64_t)(n + 1));
        int len = member(id, m);
        assert_int_equal(nx_topk_add(t, m, (uint32_t)len, 1 + (double)(rng() % 3)), 0);
    }
}

/* nx_topk_copy (and a merge into an empty sketch, which is one): the copy
 * encodes to the same bytes as its source and keeps evolving exactly like
 * it, whatever dst held before (fresh, smaller arrays, larger arrays: the
 * table is then rebuilt, not copied) and whether src's table is stale (src
 * the result of a merge that replaced counters: dst must not copy that
 * table, and both must rebuild it before their next lookup); capacities
 * must match. */
static void test_copy(void **st)
{
    (void)st;
    static const int src_n[] = {0, 1, 5, 17, 40, 64, 300};
    static const int dst_n[] = {-1, 0, 3, 64, 300}; /* -1: a fresh sketch */
    for (int stale = 0; stale < 2; stale++) {
        for (size_t a = 0; a < sizeof src_n / sizeof *src_n; a++) {
            for (size_t b = 0; b < sizeof dst_n / sizeof *dst_n; b++) {
                nx_topk *src, *dst, *via_merge;
                assert_int_equal(nx_topk_create(64, &src), 0);
                assert_int_equal(nx_topk_create(64, &dst), 0);
                assert_int_equal(nx_topk_create(64, &via_merge), 0);
                fill(src, src_n[a], 1000); /* 300 adds churn: evictions, dead arena bytes */
                if (stale && src_n[a] > 0) {
                    /* 64 distinct members more: the union exceeds k, the merge
                     * replaces counters and leaves src's table stale */
                    nx_topk *other;
                    assert_int_equal(nx_topk_create(64, &other), 0);
                    char m[48];
                    for (uint32_t i = 0; i < 64; i++) {
                        int len = member(9000 + i, m);
                        assert_int_equal(nx_topk_add(other, m, (uint32_t)len, 2), 0);
                    }
                    assert_int_equal(nx_topk_merge(src, other), 0);
                    nx_topk_destroy(other);
                }
                if (dst_n[b] >= 0) {
                    fill(dst, dst_n[b], 5000);
                    fill(via_merge, dst_n[b], 5000);
                    nx_topk_clear(dst);
                    nx_topk_clear(via_merge);
                }
                assert_int_equal(nx_topk_copy(dst, src), 0);
                topk_encodings_equal(dst, src);
                assert_int_equal(nx_topk_merge(via_merge, src), 0);
                topk_encodings_equal(via_merge, src);
                /* the same adds (old members and new ones) keep them equal */
                uint64_t seed = rng_state;
                fill(src, 200, 1020);
                rng_state = seed;
                fill(dst, 200, 1020);
                rng_state = seed;
                fill(via_merge, 200, 1020);
                for (uint32_t i = 0; i < 64; i += 3) { /* the members a merge brought */
                    char m[48];
                    int len = member(9000 + i, m);
                    assert_int_equal(nx_topk_add(src, m, (uint32_t)len, 1), 0);
                    assert_int_equal(nx_topk_add(dst, m, (uint32_t)len, 1), 0);
                    assert_int_equal(nx_topk_add(via_merge, m, (uint32_t)len, 1), 0);
                }
                topk_encodings_equal(dst, src);
                topk_encodings_equal(via_merge, src);
                nx_topk_destroy(src);
                nx_topk_destroy(dst);
                nx_topk_destroy(via_merge);
            }
        }
    }
    nx_topk *x, *y;
    assert_int_equal(nx_topk_create(8, &x), 0);
    assert_int_equal(nx_topk_create(16, &y), 0);
    assert_int_equal(nx_topk_add(y, "a", 1, 1), 0);
    assert_int_equal(nx_topk_copy(x, y), NX_EINVAL);
    nx_topk_destroy(x);
    nx_topk_destroy(y);
}

/* A frozen sketch (nx_topk_freeze: no heap, no table, trimmed counters and
 * arena) answers and encodes as before, and whatever it goes through next
 * (adds of old and new members, tallies, merges into it and from it,
 * copies to and from it, clears, freezing again) leaves it equal, byte for
 * byte, to a twin that was never frozen. Every size, from empty to churned
 * by 300 adds; 400 random steps each, the frozen side refrozen at random. */
static void test_freeze(void **st)
{
    (void)st;
    static const int sizes[] = {0, 1, 5, 17, 40, 64, 300};
    char m[48];
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        nx_topk *plain, *frozen, *other;
        assert_int_equal(nx_topk_create(64, &plain), 0);
        fill(plain, sizes[z], 1000);
        assert_int_equal(nx_topk_clone(plain, &frozen), 0);
        size_t before = nx_topk_bytes(frozen);
        nx_topk_freeze(frozen);
        nx_topk_freeze(frozen); /* twice: a no-op */
        topk_encodings_equal(plain, frozen);
        if (sizes[z] > 0)
            assert_true(nx_topk_bytes(frozen) < before);
        assert_int_equal(nx_topk_create(64, &other), 0);
        for (int step = 0; step < 400; step++) {
            uint64_t r = rng() % 9;
            uint32_t id = 1000 + (uint32_t)(rng() % 400);
            int len = member(id, m);
            double w = 1 + (double)(rng() % 3);
            if (r <= 1) {
                assert_int_equal(nx_topk_add(plain, m, (uint32_t)len, w), 0);
                assert_int_equal(nx_topk_add(frozen, m, (uint32_t)len, w), 0);
            } else if (r == 2) {
                uint64_t h = XXH3_64bits(m, (size_t)len);
                assert_int_equal(nx_topk_tally(plain, m, (uint32_t)len, h, w), 0);
                assert_int_equal(nx_topk_tally(frozen, m, (uint32_t)len, h, w), 0);
            } else if (r == 3) { /* merged into */
                nx_topk_clear(other);
                fill(other, 1 + (int)(rng() % 100), 1200);
                assert_int_equal(nx_topk_merge(plain, other), 0);
                assert_int_equal(nx_topk_merge(frozen, other), 0);
            } else if (r == 4) { /* merged from and copied from */
                nx_topk *x, *y, *cx, *cy;
                assert_int_equal(nx_topk_create(64, &x), 0);
                assert_int_equal(nx_topk_create(64, &y), 0);
                uint64_t seed = rng_state;
                fill(x, 50, 1100);
                rng_state = seed;
                fill(y, 50, 1100);
                assert_int_equal(nx_topk_merge(x, plain), 0);
                assert_int_equal(nx_topk_merge(y, frozen), 0);
                topk_encodings_equal(x, y);
                assert_int_equal(nx_topk_clone(plain, &cx), 0);
                assert_int_equal(nx_topk_clone(frozen, &cy), 0);
                topk_encodings_equal(cx, cy);
                assert_int_equal(nx_topk_copy(x, plain), 0);
                assert_int_equal(nx_topk_copy(y, frozen), 0);
                topk_encodings_equal(x, y);
                /* a sketch copied from a frozen one takes adds as well */
                assert_int_equal(nx_topk_add(cx, m, (uint32_t)len, w), 0);
                assert_int_equal(nx_topk_add(cy, m, (uint32_t)len, w), 0);
                topk_encodings_equal(cx, cy);
                /* so does a small one (8 counters, a 16-slot table) that
                 * grows to take a frozen one's, whose trimmed counters
                 * come without a table to size its own by */
                nx_topk_destroy(cx);
                nx_topk_destroy(cy);
                assert_int_equal(nx_topk_create(64, &cx), 0);
                assert_int_equal(nx_topk_create(64, &cy), 0);
                fill(cx, 3, 1400);
                fill(cy, 3, 1400);
                nx_topk_freeze(cx);
                assert_int_equal(nx_topk_add(cx, "s", 1, 1), 0); /* thawed: 8 and 16 */
                assert_int_equal(nx_topk_add(cy, "s", 1, 1), 0);
                assert_int_equal(nx_topk_copy(cx, plain), 0);
                assert_int_equal(nx_topk_copy(cy, frozen), 0);
                assert_int_equal(nx_topk_add(cx, m, (uint32_t)len, w), 0);
                assert_int_equal(nx_topk_add(cy, m, (uint32_t)len, w), 0);
                topk_encodings_equal(cx, cy);
                nx_topk_destroy(x);
                nx_topk_destroy(y);
                nx_topk_destroy(cx);
                nx_topk_destroy(cy);
            } else if (r == 5) { /* a copy into each (the frozen one's storage) */
                nx_topk_clear(other);
                fill(other, (int)(rng() % 120), 1300);
                assert_int_equal(nx_topk_copy(plain, other), 0);
                assert_int_equal(nx_topk_copy(frozen, other), 0);
            } else if (r == 6 && rng() % 8 == 0) {
                nx_topk_clear(plain);
                nx_topk_clear(frozen);
            } else {
                nx_topk_freeze(frozen);
            }
            topk_encodings_equal(plain, frozen);
            nx_topk_item a[64], b[64];
            size_t na = nx_topk_list(plain, a, 64), nb = nx_topk_list(frozen, b, 64);
            assert_int_equal(na, nb);
            for (size_t i = 0; i < na; i++)
                assert_true(a[i].count == b[i].count && a[i].error == b[i].error &&
                            a[i].member_len == b[i].member_len &&
                            memcmp(a[i].member, b[i].member, a[i].member_len) == 0);
        }
        nx_topk_destroy(plain);
        nx_topk_destroy(frozen);
        nx_topk_destroy(other);
    }
}

/* nx_topk_tally_n = nx_topk_tally member by member: twins fed random
 * batches (0..20 members, one weight each) of a small exact sketch, a full
 * one that evicts, and after freezes; encodings equal after every batch. A
 * batch with a member too long is refused whole, and a bad weight too. */
static void test_tally_n(void **st)
{
    (void)st;
    static const uint32_t caps[] = {300, 16};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        nx_topk *a, *b;
        assert_int_equal(nx_topk_create(caps[c], &a), 0);
        assert_int_equal(nx_topk_create(caps[c], &b), 0);
        char buf[20][64];
        const char *ms[20];
        uint32_t lens[20];
        uint64_t hs[20];
        bool evicted = false;
        for (int round = 0; round < 400; round++) {
            uint32_t n = (uint32_t)(rng() % 21);
            double w = (double)(1 + rng() % 3) / (rng() % 2 ? 1 : 4);
            for (uint32_t i = 0; i < n; i++) {
                int len = member((uint32_t)(rng() % 250), buf[i]);
                ms[i] = buf[i];
                lens[i] = (uint32_t)len;
                hs[i] = XXH3_64bits(buf[i], (size_t)len);
                assert_int_equal(nx_topk_tally(b, ms[i], lens[i], hs[i], w), 0);
            }
            assert_int_equal(nx_topk_tally_n(a, ms, lens, hs, n, w), 0);
            topk_encodings_equal(a, b);
            if (rng() % 10 == 0) {
                nx_topk_freeze(a);
                nx_topk_freeze(b);
            }
            evicted |= nx_topk_size(a) == caps[c] && nx_topk_total(a) > 0;
        }
        assert_true(caps[c] == 300 ? nx_topk_size(a) == 250 : evicted);
        /* refused whole: a member too long, a weight not > 0 */
        nx_buf before = {0}, after = {0};
        assert_int_equal(nx_topk_encode(a, &before), 0);
        lens[1] = NX_TOPK_MEMBER_MAX + 1;
        lens[0] = 3;
        assert_int_equal(nx_topk_tally_n(a, ms, lens, hs, 2, 1), NX_ETOOBIG);
        lens[1] = 3;
        assert_int_equal(nx_topk_tally_n(a, ms, lens, hs, 2, 0), NX_EINVAL);
        assert_int_equal(nx_topk_tally_n(a, ms, lens, hs, 2, NAN), NX_EINVAL);
        assert_int_equal(nx_topk_encode(a, &after), 0);
        assert_int_equal(before.len, after.len);
        assert_memory_equal(before.data, after.data, before.len);
        nx_buf_free(&before);
        nx_buf_free(&after);
        nx_topk_destroy(a);
        nx_topk_destroy(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zipf),          cmocka_unit_test(test_merge),
        cmocka_unit_test(test_exact_when_small), cmocka_unit_test(test_tally_batches),
        cmocka_unit_test(test_colliding_hashes), cmocka_unit_test(test_churn_memory),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_candidate_order),
        cmocka_unit_test(test_merge_matches_definition),
        cmocka_unit_test(test_fill_from_exact),
        cmocka_unit_test(test_set_capacity),
        cmocka_unit_test(test_tally_n),
        cmocka_unit_test(test_merge_hash_ties),
        cmocka_unit_test(test_empty_members_without_arena),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_freeze),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
