/*
 * nx_latency.h — how long the HTTP API takes to answer, per route.
 *
 * One fixed-bucket histogram per route class (summary, series, streams,
 * ingest, metrics, stats, other), counted from the moment libmicrohttpd
 * hands over a request's headers to the moment the last byte of its answer
 * is written to the socket (the completion callback). That is the server's
 * share of a query's latency: what the client adds (its own wake-ups, the
 * loopback) is not in it, and the shard's mailbox wait is.
 *
 * The buckets are fixed and fine around a millisecond (the p99
 * target): 50, 100, 200, 300, 400, 500, 750 us, 1, 1.5, 2, 3, 5, 10, 25,
 * 50, 100, 250, 500 ms, 1, 2.5, 5, 10 s and +Inf. A quantile read from
 * them is the upper bound of the bucket it falls in, so "p99 <= 750 us"
 * is exact and the value is never an underestimate.
 *
 * Every HTTP connection thread records into the same histograms with
 * relaxed atomic adds (no lock: two adds per request, a few dozen ns);
 * readers see each counter whole, and counts and sums that may be one
 * request apart — fine for a scrape.
 */
#ifndef NX_LATENCY_H
#define NX_LATENCY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nx_route {
    NX_ROUTE_NONE = -1, /* not recorded (SSE streams: their length is the client's) */
    NX_ROUTE_SUMMARY = 0,
    NX_ROUTE_SERIES,
    NX_ROUTE_STREAMS,
    NX_ROUTE_INGEST,
    NX_ROUTE_METRICS,
    NX_ROUTE_STATS,
    NX_ROUTE_OTHER,
    NX_NROUTES
} nx_route;

#define NX_LAT_NBUCKETS 23 /* the last one is +Inf */

typedef struct nx_latency {
    _Atomic uint64_t count[NX_NROUTES][NX_LAT_NBUCKETS];
    _Atomic uint64_t sum_ns[NX_NROUTES];
} nx_latency;

/* The route class of a request path ("/v1/summary" -> NX_ROUTE_SUMMARY). */
nx_route nx_latency_route(const char *url);
const char *nx_latency_route_name(nx_route r);
/* Upper bound of bucket i in nanoseconds (UINT64_MAX for +Inf). */
uint64_t nx_latency_bound_ns(int i);

/* Records one request of route r that took ns nanoseconds (r NONE: no-op). */
void nx_latency_record(nx_latency *l, nx_route r, uint64_t ns);
/* Requests of route r recorded so far. */
uint64_t nx_latency_count(const nx_latency *l, nx_route r);
/* The q-quantile (0 < q <= 1) of route r as its bucket's upper bound in
 * nanoseconds; 0 when nothing was recorded, UINT64_MAX past the last
 * finite bucket. */
uint64_t nx_latency_quantile_ns(const nx_latency *l, nx_route r, double q);
/* Appends the Prometheus histogram nexusd_http_request_duration_seconds
 * (HELP, TYPE, _bucket/_sum/_count per route) to the NUL-terminated text
 * *buf of *len bytes, growing it with realloc. Returns 0 or NX_ENOMEM
 * (*buf is then unchanged and still owned by the caller). */
int nx_latency_prom_append(const nx_latency *l, char **buf, size_t *len);

#endif
