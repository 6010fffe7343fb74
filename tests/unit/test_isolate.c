/*
 * test_isolate.c — tenant summarizers as Wasm isolates (src/isolate).
 *
 * Real modules only: the C files in examples/udf/ and examples/udf/hostile/ are
 * compiled to .wasm by mk/udf.mk (clang --target=wasm32 + wasm-ld), and this
 * suite runs them through the whole path: validate, wasm2c, cc, dlopen,
 * instantiate. Correctness is checked against exact C computations; each
 * hostile module must be contained with the right error while a
 * well-behaved instance keeps answering correctly.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "isolate/nx_udf.h"
#include "isolate/nx_udf_rt.h"

#ifndef NX_UDF_WASM_DIR
#define NX_UDF_WASM_DIR "build/release/udf"
#endif

static char g_dir[256];
static nx_udf_cache *g_cache;

static uint8_t *load(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.wasm", NX_UDF_WASM_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (built by mk/udf.mk)", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static nx_udf_module *compile(const char *name)
{
    size_t n;
    uint8_t *w = load(name, &n);
    char err[NX_UDF_ERRLEN];
    nx_udf_module *m = NULL;
    int rc = nx_udf_compile(g_cache, w, n, &m, err, sizeof err);
    free(w);
    if (rc)
        fail_msg("compile %s: %d %s", name, rc, err);
    return m;
}

static nx_udf_instance *instance(nx_udf_module *m, const char *params)
{
    nx_udf_instance *in = NULL;
    char err[NX_UDF_ERRLEN];
    int rc = nx_udf_instance_create(m, NULL, params, params ? strlen(params) : 0, NULL, NULL,
                                    &in, err, sizeof err);
    if (rc)
        fail_msg("instance: %d %s", rc, err);
    return in;
}

/* A result field as a double (null -> NAN). */
static double field(nx_udf_instance *in, const char *name)
{
    char *js;
    size_t len;
    int rc = nx_udf_result(in, &js, &len);
    if (rc)
        fail_msg("result: %d %s", rc, nx_udf_instance_error(in));
    json_error_t je;
    json_t *doc = json_loads(js, 0, &je);
    assert_non_null(doc);
    json_t *v = json_object_get(doc, name);
    if (!v)
        fail_msg("no field %s in %s", name, js);
    double d = json_is_null(v) ? NAN : json_number_value(v);
    json_decref(doc);
    free(js);
    return d;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double urand(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

static int scale(void)
{
    const char *s = getenv("NX_TEST_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? v : 1;
}

/* ---- examples ---------------------------------------------------------- */

static double ewma_ref(const nx_udf_event *ev, size_t n, double halflife)
{
    int64_t T = ev[0].ts_ms;
    for (size_t i = 0; i < n; i++)
        T = ev[i].ts_ms > T ? ev[i].ts_ms : T;
    double lambda = log(2.0) / halflife, s = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        double f = exp(-lambda * (double)(T - ev[i].ts_ms));
        s += ev[i].weight * ev[i].value * f;
        w += ev[i].weight * f;
    }
    return s / w;
}

static void test_ewma(void **st)
{
    size_t n = 5000 * (size_t)scale();
    nx_udf_event *ev = malloc(n * sizeof *ev);
    assert_non_null(ev);
    for (size_t i = 0; i < n; i++) {
        ev[i].value = 100 + 50 * sin((double)i / 50) + urand() * 10;
        ev[i].ts_ms = 1700000000000 + (int64_t)i * 10 + (int64_t)(rnd() % 40); /* some disorder */
        ev[i].weight = 1 + (double)(rnd() % 3);
    }
    nx_udf_module *m = compile("ewma");
    nx_udf_instance *a = instance(m, "halflife_ms=500");
    assert_int_equal(nx_udf_update(a, ev, n), 0);
    double want = ewma_ref(ev, n, 500);
    double got = field(a, "ewma");
    assert_true(fabs(got - want) <= 1e-9 * fabs(want));
    assert_int_equal((int)field(a, "count"), (int)n);

    /* merge: two halves in two instances (two "shards") equal the whole */
    nx_udf_instance *b = instance(m, "halflife_ms=500");
    nx_udf_instance *c = instance(m, "halflife_ms=500");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(nx_udf_update(i % 2 ? b : c, &ev[i], 1), 0);
    uint8_t *snap;
    size_t sn;
    assert_int_equal(nx_udf_snapshot(c, &snap, &sn), 0);
    assert_int_equal(sn, 40);
    assert_int_equal(nx_udf_merge(b, snap, sn), 0);
    free(snap);
    got = field(b, "ewma");
    assert_true(fabs(got - want) <= 1e-9 * fabs(want));
    assert_int_equal((int)field(b, "count"), (int)n);

    /* snapshot/restore round trip into a fresh instance */
    nx_udf_instance *d = instance(m, "halflife_ms=500");
    assert_int_equal(nx_udf_snapshot(a, &snap, &sn), 0);
    assert_int_equal(nx_udf_restore(d, snap, sn), 0);
    free(snap);
    assert_true(field(d, "ewma") == field(a, "ewma"));
    /* a snapshot of the wrong size is a module error, not a trap */
    uint8_t junk[3] = {1, 2, 3};
    assert_int_equal(nx_udf_merge(d, junk, 3), NX_EINVAL);
    assert_false(nx_udf_instance_disabled(d));
    nx_udf_instance_destroy(a);
    nx_udf_instance_destroy(b);
    nx_udf_instance_destroy(c);
    nx_udf_instance_destroy(d);
    nx_udf_module_unref(m);
    free(ev);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_ref(const nx_udf_event *ev, size_t n, size_t window)
{
    size_t from = n > window ? n - window : 0, k = n - from;
    double *v = malloc(k * sizeof *v);
    for (size_t i = 0; i < k; i++)
        v[i] = ev[from + i].value;
    qsort(v, k, sizeof *v, cmp_d);
    double m = v[(k - 1) / 2];
    free(v);
    return m;
}

static void test_median(void **st)
{
    size_t n = 3000;
    nx_udf_event *ev = malloc(n * sizeof *ev);
    for (size_t i = 0; i < n; i++) {
        ev[i].value = floor(urand() * 1000);
        ev[i].ts_ms = 1000 + (int64_t)i;
        ev[i].weight = 1;
    }
    nx_udf_module *m = compile("median");
    nx_udf_instance *a = instance(m, "window=101");
    for (size_t done = 0; done < n; done += 37) {
        size_t k = n - done < 37 ? n - done : 37;
        assert_int_equal(nx_udf_update(a, ev + done, k), 0);
        assert_true(field(a, "median") == median_ref(ev, done + k, 101));
    }
    assert_int_equal((int)field(a, "n"), 101);

    /* merge two interleaved shards: union by time, newest 101 kept */
    nx_udf_instance *b = instance(m, "window=101");
    nx_udf_instance *c = instance(m, "window=101");
    for (size_t i = 0; i < n; i++)
        assert_int_equal(nx_udf_update((rnd() & 1) ? b : c, &ev[i], 1), 0);
    uint8_t *snap;
    size_t sn;
    assert_int_equal(nx_udf_snapshot(c, &snap, &sn), 0);
    assert_int_equal(nx_udf_merge(b, snap, sn), 0);
    free(snap);
    assert_true(field(b, "median") == median_ref(ev, n, 101));
    assert_int_equal((int)field(b, "n"), 101);
    nx_udf_instance_destroy(a);
    nx_udf_instance_destroy(b);
    nx_udf_instance_destroy(c);
    nx_udf_module_unref(m);
    free(ev);
}

static void test_threshold(void **st)
{
    nx_udf_module *m = compile("threshold");
    nx_udf_instance *a = instance(m, "threshold=250,min_count=10");
    nx_udf_instance *b = instance(m, "threshold=250,min_count=10");
    nx_udf_event ev[1000];
    int above = 0;
    double above_w = 0, total_w = 0;
    for (int i = 0; i < 1000; i++) {
        ev[i].value = (double)(rnd() % 1000);
        ev[i].ts_ms = 5000 + i;
        ev[i].weight = (double)(1 + rnd() % 4);
        above += ev[i].value > 250;
        above_w += ev[i].value > 250 ? ev[i].weight : 0;
        total_w += ev[i].weight;
    }
    assert_int_equal(nx_udf_update(a, ev, 1000), 0);
    assert_int_equal((int)field(a, "above"), above);
    assert_true(field(a, "above_weighted") == above_w);
    assert_int_equal((int)field(a, "total"), 1000);
    assert_true(fabs(field(a, "fraction") - above_w / total_w) < 1e-12);
    assert_int_equal((int)field(a, "alert"), 1);
    /* nothing above yet -> no alert; then merge a's state in */
    assert_int_equal((int)field(b, "alert"), 0);
    uint8_t *snap;
    size_t sn;
    assert_int_equal(nx_udf_snapshot(a, &snap, &sn), 0);
    assert_int_equal(nx_udf_merge(b, snap, sn), 0);
    assert_int_equal(nx_udf_merge(b, snap, sn), 0);
    free(snap);
    assert_int_equal((int)field(b, "above"), 2 * above);
    assert_int_equal((int)field(b, "total"), 2000);
    nx_udf_instance_destroy(a);
    nx_udf_instance_destroy(b);
    nx_udf_module_unref(m);
}

/* ---- hostile modules ---------------------------------------------------- */

/* A well-behaved witness instance: must stay exact through every attack. */
typedef struct witness {
    nx_udf_module *m;
    nx_udf_instance *in;
    int expect;
} witness;

static void witness_init(witness *w)
{
    w->m = compile("threshold");
    w->in = instance(w->m, "threshold=0.5");
    w->expect = 0;
}

static void witness_check(witness *w)
{
    nx_udf_event ev[10];
    for (int i = 0; i < 10; i++)
        ev[i] = (nx_udf_event){i % 2, 1000 + i, 1};
    assert_int_equal(nx_udf_update(w->in, ev, 10), 0);
    w->expect += 5;
    assert_int_equal((int)field(w->in, "above"), w->expect);
}

static void witness_done(witness *w)
{
    nx_udf_instance_destroy(w->in);
    nx_udf_module_unref(w->m);
}

static double elapsed_ms(struct timespec a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

/* Runs one update on a hostile module and expects a trap with `want_rc`
 * and `want_msg` in the error; the witness keeps working around it. */
static void expect_trap(const char *name, int want_rc, const char *want_msg, double *ms)
{
    witness w;
    witness_init(&w);
    witness_check(&w);
    nx_udf_module *m = compile(name);
    nx_udf_instance *in = instance(m, "");
    nx_udf_event ev = {1, 1, 1};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = nx_udf_update(in, &ev, 1);
    if (ms)
        *ms = elapsed_ms(t0);
    assert_int_equal(rc, want_rc);
    assert_true(nx_udf_instance_disabled(in));
    if (!strstr(nx_udf_instance_error(in), want_msg))
        fail_msg("%s: error '%s' lacks '%s'", name, nx_udf_instance_error(in), want_msg);
    nx_udf_instance_stats s;
    nx_udf_instance_get_stats(in, &s);
    assert_int_equal(s.traps, 1);
    /* disabled for good: every later call fails at once, same code */
    assert_int_equal(nx_udf_update(in, &ev, 1), want_rc);
    char *js;
    size_t len;
    assert_int_equal(nx_udf_result(in, &js, &len), want_rc);
    witness_check(&w);
    /* a fresh instance of the same module starts clean (and traps again) */
    nx_udf_instance *again = instance(m, "");
    assert_false(nx_udf_instance_disabled(again));
    assert_int_equal(nx_udf_update(again, &ev, 1), want_rc);
    nx_udf_instance_destroy(again);
    nx_udf_instance_destroy(in);
    nx_udf_module_unref(m);
    witness_check(&w);
    witness_done(&w);
}

static void test_hostile_oob(void **st)
{
    expect_trap("hostile/oob", NX_ETRAP, "out-of-bounds", NULL);
}

static void test_hostile_loop(void **st)
{
    double ms;
    expect_trap("hostile/loop", NX_ETIMEOUT, "CPU budget exceeded", &ms);
    print_message("infinite loop stopped after %.2f ms (budget 10 ms CPU)\n", ms);
    assert_true(ms < 100.0);
    assert_true(ms >= 9.0);
}

static void test_hostile_recursion(void **st)
{
    expect_trap("hostile/recurse", NX_ETRAP, "call stack exhausted", NULL);
}

static void test_hostile_divzero(void **st)
{
    expect_trap("hostile/divzero", NX_ETRAP, "divide by zero", NULL);
}

static void test_hostile_unreachable(void **st)
{
    expect_trap("hostile/unreachable", NX_ETRAP, "unreachable", NULL);
}

static void test_hostile_grow(void **st)
{
    witness w;
    witness_init(&w);
    nx_udf_module *m = compile("hostile/grow");
    nx_udf_limits lim;
    nx_udf_limits_default(&lim);
    lim.max_pages = 64; /* 4 MiB */
    /* each grow reads the CPU clock; where realloc copies (ASan) 256 grows
     * take seconds: this test is about the memory cap, not the budget */
    lim.cpu_budget_us = 20000000;
    nx_udf_instance *in = NULL;
    char err[NX_UDF_ERRLEN];
    assert_int_equal(nx_udf_instance_create(m, &lim, "", 0, NULL, NULL, &in, err, sizeof err), 0);
    nx_udf_event ev = {1, 1, 1};
    /* memory.grow past the cap returns -1 (per spec): no trap */
    assert_int_equal(nx_udf_update(in, &ev, 1), 0);
    assert_int_equal((int)field(in, "state"), 64);
    nx_udf_instance_stats s;
    nx_udf_instance_get_stats(in, &s);
    assert_int_equal(s.memory_bytes, 64u * 65536u);
    witness_check(&w);
    /* then a store one byte past the end: out-of-bounds trap */
    assert_int_equal(nx_udf_update(in, &ev, 1), NX_ETRAP);
    assert_non_null(strstr(nx_udf_instance_error(in), "out-of-bounds"));
    witness_check(&w);
    nx_udf_instance_destroy(in);
    /* default cap: 256 pages = 16 MiB */
    lim.max_pages = 256;
    assert_int_equal(nx_udf_instance_create(m, &lim, "", 0, NULL, NULL, &in, err, sizeof err), 0);
    assert_int_equal(nx_udf_update(in, &ev, 1), 0);
    assert_int_equal((int)field(in, "state"), 256);
    nx_udf_instance_destroy(in);
    nx_udf_module_unref(m);
    witness_done(&w);
}

static void test_hostile_bigmem(void **st)
{
    nx_udf_module *m = compile("hostile/bigmem");
    nx_udf_instance *in = NULL;
    char err[NX_UDF_ERRLEN] = "";
    assert_int_equal(nx_udf_instance_create(m, NULL, "", 0, NULL, NULL, &in, err, sizeof err),
                     NX_ETRAP);
    assert_null(in);
    assert_non_null(strstr(err, "memory limit"));
    nx_udf_limits lim;
    nx_udf_limits_default(&lim);
    lim.max_pages = 1024;
    assert_int_equal(nx_udf_instance_create(m, &lim, "", 0, NULL, NULL, &in, err, sizeof err), 0);
    nx_udf_instance_destroy(in);
    nx_udf_module_unref(m);
}

static void expect_reject(const uint8_t *w, size_t n, int want_rc, const char *want_msg)
{
    nx_udf_cache_stats before, after;
    nx_udf_cache_get_stats(g_cache, &before);
    char err[NX_UDF_ERRLEN] = "";
    nx_udf_module *m = NULL;
    int rc = nx_udf_compile(g_cache, w, n, &m, err, sizeof err);
    assert_int_equal(rc, want_rc);
    assert_null(m);
    if (!strstr(err, want_msg))
        fail_msg("error '%s' lacks '%s'", err, want_msg);
    nx_udf_cache_get_stats(g_cache, &after);
    assert_int_equal(after.failures, before.failures + 1);
}

static void test_hostile_import(void **st)
{
    size_t n;
    uint8_t *w = load("hostile/import", &n);
    expect_reject(w, n, NX_EINVAL, "import env.system is not allowed");
    free(w);
    w = load("hostile/badsig", &n);
    expect_reject(w, n, NX_EINVAL, "export nx_update must be a function");
    free(w);
}

static void test_malformed(void **st)
{
    expect_reject((const uint8_t *)"hello world, not wasm", 21, NX_EINVAL, "bad magic");
    size_t n;
    uint8_t *w = load("threshold", &n);
    expect_reject(w, n / 2, NX_EINVAL, "truncated");
    expect_reject(w, 8, NX_EINVAL, "no linear memory");
    /* structurally fine but invalid code: 0xff (no such opcode) over the
     * middle of the code section; our parser passes it, wasm2c refuses */
    uint8_t *bad = malloc(n);
    memcpy(bad, w, n);
    size_t off = 8, code_at = 0, code_len = 0;
    while (off < n) {
        uint8_t id = bad[off++];
        uint32_t size = 0;
        for (int sh = 0; off < n; sh += 7) {
            uint8_t b = bad[off++];
            size |= (uint32_t)(b & 0x7f) << sh;
            if (!(b & 0x80))
                break;
        }
        if (id == 10) {
            code_at = off;
            code_len = size;
        }
        off += size;
    }
    assert_true(code_len > 40);
    memset(bad + code_at + code_len / 2, 0xff, 8);
    char err[NX_UDF_ERRLEN] = "";
    nx_udf_module *m = NULL;
    int rc = nx_udf_compile(g_cache, bad, n, &m, err, sizeof err);
    assert_int_not_equal(rc, 0);
    assert_null(m);
    print_message("corrupted code rejected: %s\n", err);
    assert_non_null(strstr(err, "wasm2c failed"));
    free(bad);
    free(w);
    witness wi;
    witness_init(&wi);
    witness_check(&wi);
    witness_done(&wi);
}

/* ---- isolation, cache, async, threads ---------------------------------- */

static void count_log(void *arg, const char *msg, size_t len)
{
    if (len == 7 && memcmp(msg, "updated", 7) == 0)
        ++*(int *)arg;
}

static void test_no_shared_state(void **st)
{
    nx_udf_module *m = compile("hostile/logger");
    nx_udf_module *m2 = compile("hostile/logger"); /* same bytes: shared .so */
    assert_ptr_equal(m, m2);
    int logs_a = 0, logs_b = 0;
    nx_udf_instance *a, *b;
    char err[NX_UDF_ERRLEN];
    assert_int_equal(nx_udf_instance_create(m, NULL, "", 0, count_log, &logs_a, &a, err, sizeof err), 0);
    assert_int_equal(nx_udf_instance_create(m2, NULL, "", 0, count_log, &logs_b, &b, err, sizeof err), 0);
    nx_udf_event ev[3] = {{10, 1, 1}, {20, 2, 1}, {30, 3, 1}};
    assert_int_equal(nx_udf_update(a, ev, 3), 0);
    assert_int_equal(nx_udf_update(a, ev, 3), 0);
    assert_true(field(a, "state") == 120);
    assert_true(field(b, "state") == 0); /* tenant b sees none of a's data */
    assert_int_equal(nx_udf_update(b, ev, 1), 0);
    assert_true(field(b, "state") == 10);
    assert_true(field(a, "state") == 120);
    assert_int_equal(logs_a, 2);
    assert_int_equal(logs_b, 1);
    nx_udf_instance_destroy(a);
    nx_udf_instance_destroy(b);
    nx_udf_module_unref(m);
    nx_udf_module_unref(m2);
}

static void test_cache_hit(void **st)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/second", g_dir);
    nx_udf_cache *c;
    assert_int_equal(nx_udf_cache_open(dir, &c), 0);
    size_t n;
    uint8_t *w = load("moments", &n);
    nx_udf_module *m;
    char err[NX_UDF_ERRLEN];
    assert_int_equal(nx_udf_compile(c, w, n, &m, err, sizeof err), 0);
    nx_udf_cache_stats s;
    nx_udf_cache_get_stats(c, &s);
    assert_int_equal(s.compiles, 1);
    print_message("compile (wasm2c + cc -O2) took %.0f ms\n", s.last_compile_ms);
    nx_udf_module_unref(m);
    nx_udf_cache_close(c);
    /* a restart: the .so on disk is reused, no compiler runs */
    assert_int_equal(nx_udf_cache_open(dir, &c), 0);
    assert_int_equal(nx_udf_compile(c, w, n, &m, err, sizeof err), 0);
    nx_udf_module *m2;
    assert_int_equal(nx_udf_compile(c, w, n, &m2, err, sizeof err), 0);
    nx_udf_cache_get_stats(c, &s);
    assert_int_equal(s.compiles, 0);
    assert_int_equal(s.disk_hits, 1);
    assert_int_equal(s.mem_hits, 1);
    assert_int_equal(s.loaded, 1);
    nx_udf_instance *in = instance(m, "");
    nx_udf_event ev = {4, 1, 2};
    assert_int_equal(nx_udf_update(in, &ev, 1), 0);
    assert_true(field(in, "sum") == 8);
    nx_udf_instance_destroy(in);
    nx_udf_module_unref(m);
    nx_udf_module_unref(m2);
    nx_udf_cache_get_stats(c, &s);
    assert_int_equal(s.loaded, 0);
    nx_udf_cache_close(c);
    free(w);
}

typedef struct async_box {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
    nx_udf_module *m;
    char err[NX_UDF_ERRLEN];
} async_box;

static void on_compiled(void *arg, int rc, nx_udf_module *m, const char *err)
{
    async_box *b = arg;
    pthread_mutex_lock(&b->mu);
    b->rc = rc;
    b->m = m;
    snprintf(b->err, sizeof b->err, "%s", err);
    b->done++;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void test_async(void **st)
{
    async_box ok = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL, ""};
    async_box bad = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL, ""};
    size_t n;
    uint8_t *w = load("median", &n);
    assert_int_equal(nx_udf_compile_async(g_cache, w, n, on_compiled, &ok), 0);
    memset(w, 0, n); /* the cache copied the bytes */
    free(w);
    w = load("hostile/import", &n);
    assert_int_equal(nx_udf_compile_async(g_cache, w, n, on_compiled, &bad), 0);
    free(w);
    async_box *boxes[2] = {&ok, &bad};
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&boxes[i]->mu);
        while (!boxes[i]->done)
            pthread_cond_wait(&boxes[i]->cv, &boxes[i]->mu);
        pthread_mutex_unlock(&boxes[i]->mu);
    }
    assert_int_equal(ok.rc, 0);
    assert_non_null(ok.m);
    nx_udf_instance *in = instance(ok.m, "window=3");
    nx_udf_event ev[3] = {{5, 1, 1}, {1, 2, 1}, {3, 3, 1}};
    assert_int_equal(nx_udf_update(in, ev, 3), 0);
    assert_true(field(in, "median") == 3);
    nx_udf_instance_destroy(in);
    nx_udf_module_unref(ok.m);
    assert_int_equal(bad.rc, NX_EINVAL);
    assert_null(bad.m);
    assert_non_null(strstr(bad.err, "not allowed"));
}

typedef struct thr_arg {
    nx_udf_module *m;
    int loops;
    double sum;
    int rc;
} thr_arg;

static void *good_thread(void *p)
{
    thr_arg *a = p;
    nx_udf_instance *in = NULL;
    char err[NX_UDF_ERRLEN];
    a->rc = nx_udf_instance_create(a->m, NULL, "", 0, NULL, NULL, &in, err, sizeof err);
    if (a->rc)
        return NULL;
    nx_udf_event ev[256];
    for (int i = 0; i < 256; i++)
        ev[i] = (nx_udf_event){i, i, 1};
    for (int l = 0; l < a->loops && a->rc == 0; l++)
        a->rc = nx_udf_update(in, ev, 256);
    char *js;
    size_t len;
    if (a->rc == 0 && (a->rc = nx_udf_result(in, &js, &len)) == 0) {
        json_t *d = json_loads(js, 0, NULL);
        a->sum = json_number_value(json_object_get(d, "sum"));
        json_decref(d);
        free(js);
    }
    nx_udf_instance_destroy(in);
    return NULL;
}

static void *bad_thread(void *p)
{
    thr_arg *a = p;
    for (int l = 0; l < a->loops; l++) {
        nx_udf_instance *in = NULL;
        char err[NX_UDF_ERRLEN];
        a->rc = nx_udf_instance_create(a->m, NULL, "", 0, NULL, NULL, &in, err, sizeof err);
        if (a->rc)
            return NULL;
        nx_udf_event ev = {1, 1, 1};
        a->rc = nx_udf_update(in, &ev, 1);
        nx_udf_instance_destroy(in);
        if (a->rc != NX_ETRAP)
            return NULL;
    }
    a->rc = 0;
    return NULL;
}

/* Shard threads run instances concurrently; traps in one thread (thread-
 * local jmp_buf) never land in another. */
static void test_threads(void **st)
{
    nx_udf_module *good = compile("moments");
    nx_udf_module *bad = compile("hostile/recurse");
    thr_arg g1 = {good, 200, 0, -1}, g2 = {good, 200, 0, -1}, b1 = {bad, 20, 0, -1};
    pthread_t t1, t2, t3;
    pthread_create(&t1, NULL, good_thread, &g1);
    pthread_create(&t2, NULL, good_thread, &g2);
    pthread_create(&t3, NULL, bad_thread, &b1);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_join(t3, NULL);
    assert_int_equal(g1.rc, 0);
    assert_int_equal(g2.rc, 0);
    assert_int_equal(b1.rc, 0);
    assert_true(g1.sum == 200.0 * (255.0 * 256 / 2));
    assert_true(g2.sum == g1.sum);
    nx_udf_module_unref(good);
    nx_udf_module_unref(bad);
}

static int setup(void **st)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/nx_test_isolate.XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/cache", g_dir);
    return nx_udf_cache_open(dir, &g_cache);
}

static int teardown(void **st)
{
    nx_udf_cache_stats s;
    nx_udf_cache_get_stats(g_cache, &s);
    assert_int_equal(s.loaded, 0); /* every module reference was released */
    nx_udf_cache_close(g_cache);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ewma),
        cmocka_unit_test(test_median),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_hostile_oob),
        cmocka_unit_test(test_hostile_loop),
        cmocka_unit_test(test_hostile_recursion),
        cmocka_unit_test(test_hostile_divzero),
        cmocka_unit_test(test_hostile_unreachable),
        cmocka_unit_test(test_hostile_grow),
        cmocka_unit_test(test_hostile_bigmem),
        cmocka_unit_test(test_hostile_import),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_no_shared_state),
        cmocka_unit_test(test_cache_hit),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
