/*
 * test_latency.c — the HTTP latency histograms (src/query/nx_latency.c):
 * route classes, bucket edges (an upper bound belongs to its bucket),
 * quantiles as bucket upper bounds against an exact computation, and the
 * Prometheus text (cumulative buckets, _count = +Inf bucket, _sum).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>

#include "query/nx_latency.h"
#include "test_rng.h"

static void test_routes(void **state)
{
    (void)state;
    assert_int_equal(nx_latency_route("/v1/summary"), NX_ROUTE_SUMMARY);
    assert_int_equal(nx_latency_route("/v1/series"), NX_ROUTE_SERIES);
    assert_int_equal(nx_latency_route("/v1/streams"), NX_ROUTE_STREAMS);
    assert_int_equal(nx_latency_route("/v1/ingest"), NX_ROUTE_INGEST);
    assert_int_equal(nx_latency_route("/metrics"), NX_ROUTE_METRICS);
    assert_int_equal(nx_latency_route("/v1/stats"), NX_ROUTE_STATS);
    assert_int_equal(nx_latency_route("/v1/subscribe"), NX_ROUTE_NONE);
    assert_int_equal(nx_latency_route("/v1/health"), NX_ROUTE_OTHER);
    assert_int_equal(nx_latency_route("/v1/summaryx"), NX_ROUTE_OTHER);
    assert_string_equal(nx_latency_route_name(NX_ROUTE_SUMMARY), "summary");
    assert_string_equal(nx_latency_route_name(NX_ROUTE_OTHER), "other");
}

static void test_bucket_edges(void **state)
{
    (void)state;
    nx_latency *l = calloc(1, sizeof(*l));
    /* exactly 1 ms is in the "le 1 ms" bucket, one ns more is not */
    nx_latency_record(l, NX_ROUTE_SUMMARY, 1000000);
    assert_int_equal(nx_latency_quantile_ns(l, NX_ROUTE_SUMMARY, 1.0), 1000000);
    nx_latency_record(l, NX_ROUTE_SUMMARY, 1000001);
    assert_int_equal(nx_latency_quantile_ns(l, NX_ROUTE_SUMMARY, 1.0), 1500000);
    assert_int_equal(nx_latency_quantile_ns(l, NX_ROUTE_SUMMARY, 0.5), 1000000);
    /* past the last finite bound: +Inf */
    nx_latency_record(l, NX_ROUTE_SERIES, 20000000000ull);
    assert_true(nx_latency_quantile_ns(l, NX_ROUTE_SERIES, 0.5) == UINT64_MAX);
    /* zero lands in the first bucket; NONE records nothing */
    nx_latency_record(l, NX_ROUTE_STATS, 0);
    assert_int_equal(nx_latency_quantile_ns(l, NX_ROUTE_STATS, 0.99), 50000);
    nx_latency_record(l, NX_ROUTE_NONE, 5);
    assert_int_equal(nx_latency_count(l, NX_ROUTE_SUMMARY), 2);
    assert_int_equal(nx_latency_count(l, NX_ROUTE_INGEST), 0);
    assert_int_equal(nx_latency_quantile_ns(l, NX_ROUTE_INGEST, 0.5), 0);
    /* bounds increase and end in +Inf */
    for (int i = 1; i < NX_LAT_NBUCKETS; i++)
        assert_true(nx_latency_bound_ns(i) > nx_latency_bound_ns(i - 1));
    assert_true(nx_latency_bound_ns(NX_LAT_NBUCKETS - 1) == UINT64_MAX);
    free(l);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The reported quantile is the upper bound of the bucket holding the exact
 * order statistic: >= it, and the previous bound is < it. */
static void test_quantiles_vs_exact(void **state)
{
    (void)state;
    nx_latency *l = calloc(1, sizeof(*l));
    enum { N = 20000 };
    uint64_t *v = malloc(N * sizeof(*v));
    rng_state = 7;
    for (int i = 0; i < N; i++) {
        /* log-uniform from 10 us to ~3 s */
        double u = (double)(rng() >> 11) / 9007199254740992.0;
        v[i] = (uint64_t)(10000.0 * pow(10.0, u * 5.5));
        nx_latency_record(l, NX_ROUTE_SUMMARY, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u64);
    const double qs[] = {0.01, 0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        size_t rank = (size_t)(qs[k] * N + 0.999999); /* ceil, 1-based */
        uint64_t exact = v[rank - 1];
        uint64_t got = nx_latency_quantile_ns(l, NX_ROUTE_SUMMARY, qs[k]);
        assert_true(got >= exact);
        int i = 0;
        while (nx_latency_bound_ns(i) != got)
            i++;
        assert_true(i == 0 || nx_latency_bound_ns(i - 1) < exact);
    }
    assert_int_equal(nx_latency_count(l, NX_ROUTE_SUMMARY), N);
    free(v);
    free(l);
}

static void test_prometheus_text(void **state)
{
    (void)state;
    nx_latency *l = calloc(1, sizeof(*l));
    nx_latency_record(l, NX_ROUTE_SUMMARY, 80000);   /* le 100 us */
    nx_latency_record(l, NX_ROUTE_SUMMARY, 900000);  /* le 1 ms */
    nx_latency_record(l, NX_ROUTE_SUMMARY, 1200000); /* le 1.5 ms */
    char *text = strdup("nexus_up 1\n");
    size_t len = strlen(text);
    assert_int_equal(nx_latency_prom_append(l, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    assert_true(strncmp(text, "nexus_up 1\n", 11) == 0);
    assert_non_null(strstr(text, "# TYPE nexusd_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(
        text, "nexusd_http_request_duration_seconds_bucket{route=\"summary\",le=\"5e-05\"} 0\n"));
    assert_non_null(strstr(
        text, "nexusd_http_request_duration_seconds_bucket{route=\"summary\",le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(
        text, "nexusd_http_request_duration_seconds_bucket{route=\"summary\",le=\"0.001\"} 2\n"));
    assert_non_null(strstr(
        text, "nexusd_http_request_duration_seconds_bucket{route=\"summary\",le=\"0.0015\"} 3\n"));
    assert_non_null(strstr(
        text, "nexusd_http_request_duration_seconds_bucket{route=\"summary\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "nexusd_http_request_duration_seconds_count{route=\"summary\"} 3\n"));
    assert_non_null(
        strstr(text, "nexusd_http_request_duration_seconds_sum{route=\"summary\"} 0.002180000\n"));
    assert_non_null(strstr(text, "nexusd_http_request_duration_seconds_count{route=\"ingest\"} 0\n"));
    /* one HELP and one TYPE line for the family */
    const char *p = text;
    int helps = 0;
    while ((p = strstr(p, "# HELP nexusd_http_request_duration_seconds")))
        helps++, p++;
    assert_int_equal(helps, 1);
    free(text);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_quantiles_vs_exact),
        cmocka_unit_test(test_prometheus_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
