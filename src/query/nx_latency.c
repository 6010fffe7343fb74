/*
 * nx_latency.c — per-route HTTP latency histograms (see nx_latency.h).
 */
#include "query/nx_latency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nexus.h"

/* upper bounds in microseconds; the +Inf bucket follows */
static const uint64_t bounds_us[NX_LAT_NBUCKETS - 1] = {
    50,    100,   200,    300,    400,    500,    750,     1000,    1500,    2000,    3000,
    5000,  10000, 25000,  50000,  100000, 250000, 500000,  1000000, 2500000, 5000000, 10000000,
};

static const char *const route_names[NX_NROUTES] = {
    "summary", "series", "streams", "ingest", "metrics", "stats", "other",
};

nx_route nx_latency_route(const char *url)
{
    static const struct {
        const char *path;
        nx_route r;
    } map[] = {
        {"/v1/summary", NX_ROUTE_SUMMARY}, {"/v1/series", NX_ROUTE_SERIES},
        {"/v1/streams", NX_ROUTE_STREAMS}, {"/v1/ingest", NX_ROUTE_INGEST},
        {"/metrics", NX_ROUTE_METRICS},    {"/v1/stats", NX_ROUTE_STATS},
        {"/v1/subscribe", NX_ROUTE_NONE},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(url, map[i].path))
            return map[i].r;
    return NX_ROUTE_OTHER;
}

const char *nx_latency_route_name(nx_route r)
{
    return r >= 0 && r < NX_NROUTES ? route_names[r] : "none";
}

uint64_t nx_latency_bound_ns(int i)
{
    return i >= 0 && i < NX_LAT_NBUCKETS - 1 ? bounds_us[i] * 1000 : UINT64_MAX;
}

void nx_latency_record(nx_latency *l, nx_route r, uint64_t ns)
{
    if (r < 0 || r >= NX_NROUTES)
        return;
    int i = 0;
    while (i < NX_LAT_NBUCKETS - 1 && ns > bounds_us[i] * 1000) /* le: upper bound included */
        i++;
    atomic_fetch_add_explicit(&l->count[r][i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->sum_ns[r], ns, memory_order_relaxed);
}

static void load_counts(const nx_latency *l, nx_route r, uint64_t c[NX_LAT_NBUCKETS])
{
    for (int i = 0; i < NX_LAT_NBUCKETS; i++)
        c[i] = atomic_load_explicit(&l->count[r][i], memory_order_relaxed);
}

uint64_t nx_latency_count(const nx_latency *l, nx_route r)
{
    if (r < 0 || r >= NX_NROUTES)
        return 0;
    uint64_t c[NX_LAT_NBUCKETS], n = 0;
    load_counts(l, r, c);
    for (int i = 0; i < NX_LAT_NBUCKETS; i++)
        n += c[i];
    return n;
}

uint64_t nx_latency_quantile_ns(const nx_latency *l, nx_route r, double q)
{
    if (r < 0 || r >= NX_NROUTES || !(q > 0) || q > 1)
        return 0;
    uint64_t c[NX_LAT_NBUCKETS], n = 0;
    load_counts(l, r, c);
    for (int i = 0; i < NX_LAT_NBUCKETS; i++)
        n += c[i];
    if (n == 0)
        return 0;
    /* the smallest bucket holding the ceil(q*n)-th fastest request */
    double rank = q * (double)n;
    uint64_t want = (uint64_t)rank;
    if ((double)want < rank)
        want++;
    uint64_t seen = 0;
    for (int i = 0; i < NX_LAT_NBUCKETS; i++) {
        seen += c[i];
        if (seen >= want)
            return nx_latency_bound_ns(i);
    }
    return UINT64_MAX;
}

int nx_latency_prom_append(const nx_latency *l, char **buf, size_t *len)
{
    /* a new text (open_memstream, as nx_prom.c writes its own), so that a
     * failure leaves the caller's untouched */
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    if (!f)
        return NX_ENOMEM;
    fwrite(*buf, 1, *len, f);
    fputs("# HELP nexusd_http_request_duration_seconds Time from a request's headers to the "
          "last byte of its answer, by route (SSE streams excluded).\n"
          "# TYPE nexusd_http_request_duration_seconds histogram\n",
          f);
    for (int r = 0; r < NX_NROUTES; r++) {
        uint64_t c[NX_LAT_NBUCKETS], cum = 0;
        load_counts(l, (nx_route)r, c);
        for (int i = 0; i < NX_LAT_NBUCKETS; i++) {
            cum += c[i];
            fprintf(f, "nexusd_http_request_duration_seconds_bucket{route=\"%s\",le=\"", route_names[r]);
            if (i < NX_LAT_NBUCKETS - 1)
                fprintf(f, "%g", (double)bounds_us[i] / 1e6);
            else
                fputs("+Inf", f);
            fprintf(f, "\"} %llu\n", (unsigned long long)cum);
        }
        fprintf(f,
                "nexusd_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n"
                "nexusd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                route_names[r],
                (double)atomic_load_explicit(&l->sum_ns[r], memory_order_relaxed) / 1e9,
                route_names[r], (unsigned long long)cum);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(out);
        return NX_ENOMEM;
    }
    free(*buf);
    *buf = out;
    *len = n;
    return 0;
}
