/*
 * bench_sketch.c — single-core add throughput and memory of the sketches.
 *
 * Prints `name value unit` lines. Inputs are precomputed (1 Mi values /
 * members, cycled) so that the figures measure the sketches, not the
 * random number generator. NX_BENCH_OPS overrides the op count (default 2e7).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_moments.h"
#include "sketch/nx_topk.h"

#define NV (1u << 20)

static uint64_t rng_state = 42;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double urand(void) { return ((double)(rng() >> 11) + 0.5) * 0x1.0p-53; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_sketch: %s failed\n", what);
    exit(1);
}

int main(void)
{
    const char *e = getenv("NX_BENCH_OPS");
    size_t ops = e ? (size_t)atof(e) : 20000000;
    double *vals = malloc(NV * sizeof *vals);
    char (*members)[16] = malloc(NV * sizeof *members);
    uint8_t *mlen = malloc(NV);
    if (!vals || !members || !mlen)
        die("malloc");
    for (size_t i = 0; i < NV; i++) {
        /* lognormal latencies around 20 ms */
        vals[i] = exp(3 + 1.0 * sqrt(-2 * log(urand())) * cos(2 * M_PI * urand()));
        /* zipf-ish members: id = floor(1/u^1.2) over ~1e5 distinct */
        uint64_t id = (uint64_t)(1.0 / pow(urand(), 1.2)) % 100000;
        mlen[i] = (uint8_t)snprintf(members[i], sizeof members[i], "u%llu", (unsigned long long)id);
    }
    double sink = 0, t0, t1;

    /* DDSketch */
    nx_ddsketch *dd;
    if (nx_ddsketch_create(0.01, 2048, &dd))
        die("ddsketch_create");
    t0 = now();
    for (size_t i = 0; i < ops; i++)
        if (nx_ddsketch_add(dd, vals[i & (NV - 1)], 1.0))
            die("ddsketch_add");
    t1 = now();
    sink += nx_ddsketch_quantile(dd, 0.99);
    printf("ddsketch_add %.3g adds/s\n", ops / (t1 - t0));
    nx_ddsketch_destroy(dd);

    /* HLL: distinct 8-byte members (every add is a new item) */
    nx_hll *h;
    if (nx_hll_create(14, &h))
        die("hll_create");
    t0 = now();
    for (size_t i = 0; i < ops; i++) {
        uint64_t k = i;
        if (nx_hll_add(h, &k, sizeof k))
            die("hll_add");
    }
    t1 = now();
    sink += nx_hll_estimate(h);
    printf("hll_add %.3g adds/s\n", ops / (t1 - t0));
    nx_hll_destroy(h);

    /* HLL with short string members (as StatsD sets deliver them) */
    if (nx_hll_create(14, &h))
        die("hll_create");
    t0 = now();
    for (size_t i = 0; i < ops; i++)
        if (nx_hll_add(h, members[i & (NV - 1)], mlen[i & (NV - 1)]))
            die("hll_add");
    t1 = now();
    sink += nx_hll_estimate(h);
    printf("hll_add_string %.3g adds/s\n", ops / (t1 - t0));
    t0 = now();
    for (int i = 0; i < 1000; i++)
        sink += nx_hll_estimate(h);
    t1 = now();
    printf("hll_estimate_dense %.3g us\n", (t1 - t0) / 1000 * 1e6);
    nx_hll_destroy(h);

    /* SpaceSaving, k = 64, zipf-ish members */
    nx_topk *tk;
    if (nx_topk_create(64, &tk))
        die("topk_create");
    t0 = now();
    for (size_t i = 0; i < ops; i++)
        if (nx_topk_add(tk, members[i & (NV - 1)], mlen[i & (NV - 1)], 1.0))
            die("topk_add");
    t1 = now();
    sink += nx_topk_total(tk);
    printf("topk_add %.3g adds/s\n", ops / (t1 - t0));
    nx_topk_destroy(tk);

    /* moments */
    nx_moments m;
    nx_moments_init(&m);
    t0 = now();
    for (size_t i = 0; i < ops; i++)
        nx_moments_add(&m, vals[i & (NV - 1)], 1.0);
    t1 = now();
    sink += m.m2;
    printf("moments_add %.3g adds/s\n", ops / (t1 - t0));

    /* memory: empty and after 1000 values */
    if (nx_ddsketch_create(0.01, 2048, &dd) || nx_hll_create(14, &h) || nx_topk_create(64, &tk))
        die("create");
    printf("ddsketch_bytes_empty %zu bytes\n", nx_ddsketch_bytes(dd));
    printf("hll_bytes_empty %zu bytes\n", nx_hll_bytes(h));
    printf("topk_bytes_empty %zu bytes\n", nx_topk_bytes(tk));
    printf("moments_bytes %zu bytes\n", sizeof(nx_moments));
    for (size_t i = 0; i < 1000; i++) {
        if (nx_ddsketch_add(dd, vals[i], 1.0))
            die("ddsketch_add");
        uint64_t k = i;
        if (nx_hll_add(h, &k, sizeof k))
            die("hll_add");
        if (nx_topk_add(tk, members[i], mlen[i], 1.0))
            die("topk_add");
    }
    printf("ddsketch_bytes_1000 %zu bytes\n", nx_ddsketch_bytes(dd));
    printf("hll_bytes_1000 %zu bytes\n", nx_hll_bytes(h));
    printf("topk_bytes_1000 %zu bytes\n", nx_topk_bytes(tk));
    for (size_t i = 1000; i < 100000; i++) {
        uint64_t k = i;
        if (nx_hll_add(h, &k, sizeof k))
            die("hll_add");
    }
    printf("hll_bytes_dense %zu bytes\n", nx_hll_bytes(h));
    nx_ddsketch_destroy(dd);
    nx_hll_destroy(h);
    nx_topk_destroy(tk);
    fprintf(stderr, "(checksum %g)\n", sink);
    free(vals);
    free(members);
    free(mlen);
    return 0;
}
