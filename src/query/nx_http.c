/*
 * nx_http.c — the HTTP API on libmicrohttpd (reference: docs/api.md).
 *
 * Threading: MHD runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION,
 * bounded by --http-conns). Handlers block while the shards answer through
 * their mailboxes, and an SSE stream blocks in its content reader between
 * pushes, so a thread per connection is the simple, correct model; a busy
 * /metrics scrape never delays a single-stream query.
 *
 * Request bodies (POST /v1/ingest) are accumulated in the per-request
 * context up to --max-body bytes; beyond that the rest is discarded and the
 * answer is 413.
 *
 * Every tenant handler first calls nx_auth_resolve() (the single auth
 * point). Errors are {"error": "...", "code": "..."} with a fitting status.
 *
 * SSE (GET /v1/subscribe): the content reader polls the merged summary at
 * most max_per_sec times per second, pushes `event: summary` when its JSON
 * changed, a `: heartbeat` comment when idle for --sse-heartbeat seconds,
 * and ends when the server stops. Disconnects are noticed on the next write;
 * the free callback releases the subscriber slot.
 */
#include "query/nx_http.h"
#include "common/nx_clock.h"
#include "query/nx_reply.h"
#include "query/nx_auth.h"
#include "query/nx_json.h"
#include "query/nx_latency.h"
#include "query/nx_kstage_http.h"
#include "query/nx_prom.h"
#include "query/nx_udf_http.h"
#include "server/nx_prefault.h"
#include "server/nx_rt.h"
#include "server/nx_udfhost.h"
#include "query/nx_tenant_api.h"
#include "server/nx_log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct nx_http {
    nx_server *srv;
    const nx_config *cfg;
    struct MHD_Daemon *d;
    atomic_int stopping;
    atomic_int subscribers;
    nx_latency lat; /* per-route answer times (/metrics, /v1/stats) */
};

typedef struct req_ctx {
    char *body;
    size_t len, cap;
    int too_big;
    nx_route route;   /* latency class of the request */
    uint64_t t0_ns;   /* CLOCK_MONOTONIC when its headers were in */
} req_ctx;

/* ---- responses ----------------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, char *text,
                                 size_t len, const char *ctype)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}



static const char *arg(struct MHD_Connection *c, const char *k)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

/* WAL refusals: the batch was not acknowledged (docs/durability.md). */
static enum MHD_Result send_store_error(struct MHD_Connection *c, int rc)
{
    if (rc == NX_ENOSPC)
        return nx_reply_error(c, 507, "no_space", "the data directory is full: batch not stored");
    if (rc == NX_EIO)
        return nx_reply_error(c, 503, "io_error", "write-ahead log I/O error: batch not stored");
    if (rc == NX_ETOOBIG)
        return nx_reply_error(c, 413, "too_big", "batch over the WAL record limit");
    return nx_reply_error(c, 500, nx_errname(rc), nx_strerror(rc));
}

/* ---- shared parameter parsing ---------------------------------------------- */

/* metric + tags -> canonical key into buf; 0 or an error already sent */
static int build_key(struct MHD_Connection *c, char *buf, size_t cap, int *klen,
                     enum MHD_Result *sent)
{
    const char *metric = arg(c, "metric");
    if (!metric || !*metric) {
        *sent = nx_reply_error(c, 400, "bad_request", "missing parameter: metric");
        return -1;
    }
    const char *tags = arg(c, "tags");
    nx_tag tv[64];
    size_t nt = 0;
    if (tags && *tags) {
        const char *p = tags;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t tl = comma ? (size_t)(comma - p) : strlen(p);
            if (tl == 0 || nt >= 64) {
                *sent = nx_reply_error(c, 400, "bad_tags", "tags must be k:v,k2:v2 (at most 64)");
                return -1;
            }
            const char *colon = memchr(p, ':', tl);
            tv[nt].key = p;
            tv[nt].key_len = (uint16_t)(colon ? (size_t)(colon - p) : tl);
            tv[nt].value = colon ? colon + 1 : NULL;
            tv[nt].value_len = (uint16_t)(colon ? tl - (size_t)(colon - p) - 1 : 0);
            nt++;
            p += tl;
            if (*p == ',')
                p++;
        }
    }
    int n = nx_stream_key_build(metric, strlen(metric), tv, nt, buf, cap);
    if (n < 0) {
        *sent = nx_reply_error(c, 400, "bad_request", "metric or tags too long or empty");
        return -1;
    }
    *klen = n;
    return 0;
}

static int window_ok(const nx_config *cfg, uint32_t w)
{
    if (w == NX_WINDOW_ALL)
        return 1;
    for (uint32_t i = 0; i < cfg->engine.nwindows; i++)
        if (cfg->engine.windows[i].length_s == w)
            return 1;
    return 0;
}

static int parse_window(struct MHD_Connection *c, const nx_config *cfg, const char *dflt,
                        uint32_t *w, enum MHD_Result *sent)
{
    const char *s = arg(c, "window");
    if (!s)
        s = dflt;
    if (nx_parse_duration_s(s, w) != 0 || !window_ok(cfg, *w)) {
        char msg[256];
        int n = snprintf(msg, sizeof(msg), "window must be all or one of:");
        for (uint32_t i = 0; i < cfg->engine.nwindows && n < 200; i++) {
            char wl[16];
            nx_window_label(cfg->engine.windows[i].length_s, wl, sizeof(wl));
            n += snprintf(msg + n, sizeof(msg) - (size_t)n, " %s", wl);
        }
        *sent = nx_reply_error(c, 400, "bad_window", msg);
        return -1;
    }
    return 0;
}

static enum MHD_Result send_auth_error(struct MHD_Connection *c, const nx_auth_error *e)
{
    if (e->status != 429)
        return nx_reply_error(c, e->status, e->code, e->msg);
    json_t *j = json_pack("{s:s,s:s,s:I}", "error", e->msg, "code", e->code, "retry_after",
                          (json_int_t)e->retry_after_s);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    char ra[24];
    snprintf(ra, sizeof(ra), "%llu", (unsigned long long)e->retry_after_s);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Retry-After", ra);
    enum MHD_Result ret = MHD_queue_response(c, 429, r);
    MHD_destroy_response(r);
    return ret;
}

static int auth(nx_http *h, struct MHD_Connection *c, char tenant[65], enum MHD_Result *sent)
{
    nx_auth_error e;
    if (nx_auth_resolve(h->cfg, c, tenant, &e) != 0) {
        *sent = send_auth_error(c, &e);
        return -1;
    }
    return 0;
}

/* ---- handlers ------------------------------------------------------------- */

static enum MHD_Result h_health(nx_http *h, struct MHD_Connection *c)
{
    int64_t now = nx_now_ms();
    return nx_reply_json(c, 200,
                     json_pack("{s:s,s:i,s:f}", "status", "ok", "shards",
                               nx_server_nshards(h->srv), "uptime_s",
                               (double)(now - nx_server_start_ms(h->srv)) / 1000.0));
}

static enum MHD_Result h_summary(nx_http *h, struct MHD_Connection *c)
{
    enum MHD_Result sent = MHD_NO;
    char tenant[65], key[8192];
    int klen;
    uint32_t w;
    nx_qlist q;
    if (auth(h, c, tenant, &sent) || build_key(c, key, sizeof(key), &klen, &sent) ||
        parse_window(c, h->cfg, "1m", &w, &sent))
        return sent;
    const char *qs = arg(c, "q");
    if (qs && *qs) {
        if (nx_qlist_parse(qs, &q) != 0)
            return nx_reply_error(c, 400, "bad_quantile", "q must be a comma list of numbers in [0,1]");
    } else {
        nx_qlist_default(&q);
    }
    const char *ks = arg(c, "k");
    size_t topk = ks ? (size_t)strtoul(ks, NULL, 10) : 10;
    int64_t now = nx_now_ms();
    nx_summary s;
    int rc = nx_server_summary(h->srv, tenant, key, (size_t)klen, w, now, &s);
    if (rc == NX_ENOENT)
        return nx_reply_error(c, 404, "not_found", "no such stream");
    if (rc)
        return nx_reply_error(c, 500, nx_errname(rc), nx_strerror(rc));
    json_t *j = nx_summary_json(tenant, key, (size_t)klen, &s, w, &q, topk, now);
    nx_summary_free(&s);
    nx_udf_summary_attach(h->srv, tenant, key, (size_t)klen, j);
    return nx_reply_json(c, 200, j);
}

static int by_count_desc(const void *a, const void *b)
{
    double x = ((const nx_stream_info *)a)->count, y = ((const nx_stream_info *)b)->count;
    return (x < y) - (x > y);
}

static enum MHD_Result h_streams(nx_http *h, struct MHD_Connection *c)
{
    enum MHD_Result sent = MHD_NO;
    char tenant[65];
    if (auth(h, c, tenant, &sent))
        return sent;
    const char *prefix = arg(c, "prefix");
    const char *top = arg(c, "top");
    const char *wa = arg(c, "window");
    int with_counts = top || wa;
    uint32_t w = 10;
    if (with_counts && parse_window(c, h->cfg, "10s", &w, &sent))
        return sent;
    int64_t now = nx_now_ms();
    nx_stream_info *v;
    size_t n;
    int rc = nx_server_streams(h->srv, tenant, prefix ? prefix : "", with_counts, w, now, &v, &n);
    if (rc)
        return nx_reply_error(c, 500, nx_errname(rc), nx_strerror(rc));
    size_t limit = n;
    if (top) {
        if (n)
            qsort(v, n, sizeof(*v), by_count_desc);
        size_t t = (size_t)strtoul(top, NULL, 10);
        if (t < limit)
            limit = t;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < limit; i++) {
        size_t nl;
        json_t *tags = nx_key_tags(v[i].key, strlen(v[i].key), &nl);
        json_t *o = json_pack("{s:s,s:s%,s:o,s:s,s:I}", "key", v[i].key, "metric", v[i].key, nl,
                              "tags", tags, "type", nx_type_name(v[i].type), "last_update",
                              (json_int_t)v[i].last_update);
        if (o && with_counts) {
            json_object_set_new(o, "count", nx_json_num(v[i].count));
            json_object_set_new(o, "sum", nx_json_num(v[i].sum));
            json_object_set_new(o, "rate", nx_json_num(w ? v[i].count / w : 0));
        }
        if (o)
            json_array_append_new(arr, o);
    }
    nx_stream_infos_free(v, n);
    json_t *res = json_pack("{s:s,s:I,s:o}", "tenant", tenant, "count", (json_int_t)n, "streams", arr);
    if (res && with_counts) {
        char wl[16];
        nx_window_label(w, wl, sizeof(wl));
        json_object_set_new(res, "window", json_string(wl));
    }
    return nx_reply_json(c, 200, res);
}

/* seconds or milliseconds since the epoch (values > 1e11 are ms) */
static int parse_time(const char *s, int64_t dflt, int64_t *out)
{
    if (!s) {
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0)
        return -1;
    *out = v > 1e11 ? (int64_t)v : (int64_t)(v * 1000.0);
    return 0;
}

static enum MHD_Result h_series(nx_http *h, struct MHD_Connection *c)
{
    enum MHD_Result sent = MHD_NO;
    char tenant[65], key[8192];
    int klen;
    if (auth(h, c, tenant, &sent) || build_key(c, key, sizeof(key), &klen, &sent))
        return sent;
    int64_t now = nx_now_ms(), from, to;
    uint32_t step = 1;
    const char *st = arg(c, "step");
    if (parse_time(arg(c, "to"), now, &to) || parse_time(arg(c, "from"), now - 300000, &from) ||
        from >= to || (st && (nx_parse_duration_s(st, &step) || step == 0)))
        return nx_reply_error(c, 400, "bad_range",
                          "from < to (Unix seconds or ms) and step (seconds, e.g. 10s) required");
    if ((to - from) / ((int64_t)step * 1000) > 100000)
        return nx_reply_error(c, 400, "bad_range", "more than 100000 points");
    nx_point *p;
    size_t n;
    int rc = nx_server_series(h->srv, tenant, key, (size_t)klen, from, to, step, now, &p, &n);
    if (rc == NX_ENOENT)
        return nx_reply_error(c, 404, "not_found", "no such stream");
    if (rc)
        return nx_reply_error(c, rc == NX_EINVAL ? 400 : 500, nx_errname(rc), nx_strerror(rc));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_pack("{s:I,s:o,s:o,s:o,s:o}", "ts", (json_int_t)p[i].ts_ms, "count",
                              nx_json_num(p[i].count), "sum", nx_json_num(p[i].sum), "min",
                              nx_json_num(p[i].min), "max", nx_json_num(p[i].max));
        if (o)
            json_array_append_new(arr, o);
    }
    free(p);
    size_t nl;
    json_t *tags = nx_key_tags(key, (size_t)klen, &nl);
    return nx_reply_json(c, 200,
                     json_pack("{s:s,s:s%,s:o,s:I,s:I,s:i,s:o}", "tenant", tenant, "metric", key,
                               nl, "tags", tags, "from", (json_int_t)from, "to", (json_int_t)to,
                               "step", (int)step, "points", arr));
}

static enum MHD_Result h_metrics(nx_http *h, struct MHD_Connection *c)
{
    char *text, tenant[65];
    size_t len;
    bool global;
    nx_auth_error e;
    if (nx_auth_view(h->cfg, c, tenant, &global, &e) != 0)
        return send_auth_error(c, &e);
    int rc = nx_prom_render_for(h->srv, global ? NULL : tenant, nx_now_ms(), &text, &len);
    if (!rc && global && (rc = nx_latency_prom_append(&h->lat, &text, &len)))
        free(text);
    if (rc)
        return nx_reply_error(c, 500, nx_errname(rc), nx_strerror(rc));
    return send_text(c, 200, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

static json_t *reasons_json(const uint64_t *reasons)
{
    json_t *o = json_object();
    for (int r = 1; r < NX_SD_NREASONS; r++)
        if (reasons[r])
            json_object_set_new(o, nx_statsd_reason_name(r), json_integer((json_int_t)reasons[r]));
    return o;
}

/* Per-shard WAL / snapshot counters (nx_durable.h). */
static json_t *durability_json(nx_http *h)
{
    json_t *a = json_array();
    for (int i = 0; i < nx_server_nshards(h->srv); i++) {
        const nx_durable_stats *d = nx_shard_durable_stats(nx_server_shard(h->srv, i));
#define L(f) (json_int_t)atomic_load_explicit(&d->f, memory_order_relaxed)
        json_array_append_new(
            a, json_pack("{s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "shard", i,
                         "last_lsn", L(last_lsn), "durable_lsn", L(durable_lsn), "commits",
                         L(commits), "syncs", L(syncs), "refused", L(refused), "failed_acks",
                         L(failed_acks), "unlogged", L(unlogged), "snapshots", L(snapshots),
                         "snapshot_lsn", L(snapshot_lsn), "recovery_us", L(recovery_us),
                         "replayed", L(replayed)));
#undef L
    }
    return a;
}

/* Per-shard prefault reservoir (nx_prefault.h), or null when off. */
static json_t *prefault_json(nx_http *h)
{
    nx_prefault *pf = nx_server_prefault(h->srv);
    if (!pf)
        return json_null();
    json_t *a = json_array();
    for (int i = 0; i < nx_server_nshards(h->srv); i++) {
        nx_prefault_stats ps;
        nx_prefault_get_stats(pf, i, &ps);
        json_array_append_new(
            a, json_pack("{s:i,s:I,s:I,s:I,s:I,s:I}", "shard", i, "handed_bytes",
                         (json_int_t)ps.handed, "ready_bytes", (json_int_t)ps.ready,
                         "populate_failed_bytes", (json_int_t)ps.failed, "purged_bytes",
                         (json_int_t)ps.purged, "fallback_bytes", (json_int_t)ps.fallback));
    }
    return a;
}

/* Per route: requests answered and bucket upper bounds of p50/p99/p999 in
 * microseconds (nx_latency.h). Routes with no request are left out. */
static json_t *latency_json(nx_http *h)
{
    json_t *o = json_object();
    for (int r = 0; r < NX_NROUTES; r++) {
        uint64_t n = nx_latency_count(&h->lat, (nx_route)r);
        if (!n)
            continue;
        json_t *q = json_pack("{s:I}", "requests", (json_int_t)n);
        static const struct {
            const char *name;
            double q;
        } qs[] = {{"p50_us_le", 0.5}, {"p99_us_le", 0.99}, {"p999_us_le", 0.999}};
        for (size_t i = 0; q && i < sizeof(qs) / sizeof(qs[0]); i++) {
            uint64_t ns = nx_latency_quantile_ns(&h->lat, (nx_route)r, qs[i].q);
            json_object_set_new(q, qs[i].name,
                                ns == UINT64_MAX ? json_null() : json_integer((json_int_t)(ns / 1000)));
        }
        json_object_set_new(o, nx_latency_route_name((nx_route)r), q);
    }
    return o;
}

static enum MHD_Result h_stats(nx_http *h, struct MHD_Connection *c)
{
    char tenant[65];
    bool global;
    nx_auth_error e;
    if (nx_auth_view(h->cfg, c, tenant, &global, &e) != 0)
        return send_auth_error(c, &e);
    if (!global) /* a tenant sees only its own counts */
        return nx_reply_json(c, 200, nx_tenant_stats_json(h->srv, tenant));
    int n = nx_server_nshards(h->srv);
    nx_engine_counts *ec = calloc((size_t)n, sizeof(*ec));
    if (!ec)
        return nx_reply_error(c, 500, "nomem", "out of memory");
    nx_server_engine_counts(h->srv, ec);
    json_t *shards = json_array();
    uint64_t tot[8] = {0};
    uint64_t reasons[NX_SD_NREASONS] = {0};
    for (int i = 0; i < n; i++) {
        const nx_shard_stats *st = nx_shard_get_stats(nx_server_shard(h->srv, i));
#define L(f) atomic_load_explicit(&st->f, memory_order_relaxed)
        uint64_t r[NX_SD_NREASONS] = {0};
        for (int k = 1; k < NX_SD_NREASONS; k++) {
            r[k] = L(reasons[k]);
            reasons[k] += r[k];
        }
        json_t *o = json_pack(
            "{s:i,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "shard", i,
            "datagrams", (json_int_t)L(datagrams), "bytes", (json_int_t)L(bytes), "lines",
            (json_int_t)L(lines), "events", (json_int_t)L(events), "rejected",
            (json_int_t)L(rejected), "rejected_by_reason", reasons_json(r), "kernel_drops_udp",
            (json_int_t)L(kernel_drops_udp), "kernel_drops_unix",
            (json_int_t)L(kernel_drops_unix), "tcp_connections", (json_int_t)L(tcp_conns),
            "tcp_accepted", (json_int_t)L(tcp_accepted), "tenants", (json_int_t)ec[i].tenants,
            "streams", (json_int_t)ec[i].streams, "summary_bytes", (json_int_t)ec[i].bytes,
            "messages", (json_int_t)L(messages));
        if (o) {
            json_object_set_new(o, "recv_calls", json_integer((json_int_t)L(recv_calls)));
            json_object_set_new(o, "nxb", nx_shard_nxb_json(st));
        }
        tot[0] += L(datagrams);
        tot[1] += L(bytes);
        tot[2] += L(lines);
        tot[3] += L(events);
        tot[4] += L(rejected);
        tot[5] += L(kernel_drops_udp) + L(kernel_drops_unix);
        tot[6] += ec[i].streams;
        tot[7] += ec[i].bytes;
#undef L
        if (o)
            json_array_append_new(shards, o);
    }
    free(ec);
    long pages = 0, rss = 0;
    FILE *sm = fopen("/proc/self/statm", "r");
    if (sm) {
        if (fscanf(sm, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(sm);
    }
    json_t *totals = json_pack("{s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I}", "datagrams",
                               (json_int_t)tot[0], "bytes", (json_int_t)tot[1], "lines",
                               (json_int_t)tot[2], "events", (json_int_t)tot[3], "rejected",
                               (json_int_t)tot[4], "rejected_by_reason", reasons_json(reasons),
                               "kernel_drops", (json_int_t)tot[5], "streams", (json_int_t)tot[6],
                               "summary_bytes", (json_int_t)tot[7]);
    json_t *out = json_pack("{s:f,s:i,s:I,s:i,s:o,s:o}", "uptime_s",
                            (double)(nx_now_ms() - nx_server_start_ms(h->srv)) / 1000.0,
                            "shards", n, "rss_bytes", (json_int_t)rss * sysconf(_SC_PAGESIZE),
                            "subscribers", atomic_load(&h->subscribers), "totals", totals,
                            "per_shard", shards);
    if (out) {
        json_object_set_new(out, "durability", durability_json(h));
        json_object_set_new(out, "kernel", nx_kstage_stats_json(h->srv));
        json_object_set_new(out, "prefault", prefault_json(h));
        json_object_set_new(out, "http", latency_json(h));
    }
    if (out && nx_server_udf(h->srv))
        json_object_set_new(out, "udf", nx_udf_host_stats_json(nx_server_udf(h->srv)));
    if (out && arg(c, "tenants")) /* per-tenant counts (admin view) */
        json_object_set_new(out, "tenants", nx_tenants_counts_json(h->srv));
    return nx_reply_json(c, 200, out);
}

/* JSON ingest: {"events":[{metric,type,value,tags,rate,ts,delta}]} -> StatsD lines */
static const char *type_code(const char *t)
{
    static const char *const map[][2] = {
        {"counter", "c"}, {"c", "c"}, {"gauge", "g"}, {"g", "g"}, {"timer", "ms"},
        {"ms", "ms"}, {"histogram", "h"}, {"h", "h"}, {"distribution", "d"}, {"d", "d"},
        {"set", "s"}, {"s", "s"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(map[i][0], t))
            return map[i][1];
    return NULL;
}

static int text_ok(const char *s, int allow_colon)
{
    for (; *s; s++)
        if (*s == '|' || *s == '\n' || *s == ',' || *s == '#' || (!allow_colon && *s == ':'))
            return 0;
    return 1;
}

static int json_to_lines(const char *body, size_t len, char **out, size_t *out_len,
                         nx_apply_result *pre, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (!root) {
        snprintf(err, errlen, "invalid JSON: %s (line %d)", je.text, je.line);
        return NX_EINVAL;
    }
    json_t *evs = json_is_array(root) ? root : json_object_get(root, "events");
    if (!json_is_array(evs)) {
        json_decref(root);
        snprintf(err, errlen, "expected {\"events\": [...]}");
        return NX_EINVAL;
    }
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) {
        json_decref(root);
        return NX_ENOMEM;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev) {
        int reason = NX_SD_OK;
        const char *metric = json_string_value(json_object_get(ev, "metric"));
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *tc = type ? type_code(type) : NULL;
        json_t *val = json_object_get(ev, "value");
        json_t *tags = json_object_get(ev, "tags");
        json_t *rate = json_object_get(ev, "rate");
        json_t *ts = json_object_get(ev, "ts");
        int delta = json_is_true(json_object_get(ev, "delta"));
        if (!json_is_object(ev) || !metric || !*metric || !text_ok(metric, 0) || strchr(metric, '@'))
            reason = metric ? NX_SD_BAD_NAME : NX_SD_BAD_FORMAT;
        else if (!tc)
            reason = NX_SD_BAD_TYPE;
        else if (!strcmp(tc, "s") ? !(json_is_string(val) || json_is_number(val))
                                  : !json_is_number(val))
            reason = NX_SD_BAD_VALUE;
        else if (json_is_string(val) && (strchr(json_string_value(val), '\n') || !*json_string_value(val)))
            reason = NX_SD_BAD_VALUE;
        else if (rate && !json_is_number(rate))
            reason = NX_SD_BAD_RATE;
        else if (ts && !json_is_integer(ts))
            reason = NX_SD_BAD_TIMESTAMP;
        else if (tags && !json_is_object(tags))
            reason = NX_SD_BAD_TAGS;
        if (!reason && tags) {
            const char *k;
            json_t *v;
            json_object_foreach(tags, k, v) {
                if (!*k || !text_ok(k, 0) || !json_is_string(v) || !text_ok(json_string_value(v), 1))
                    reason = NX_SD_BAD_TAGS;
            }
        }
        if (reason) {
            pre->lines++;
            pre->rejected++;
            pre->reasons[reason]++;
            continue;
        }
        fputs(metric, f);
        fputc(':', f);
        if (json_is_string(val)) {
            fputs(json_string_value(val), f);
        } else {
            double d = json_number_value(val);
            fprintf(f, delta && d >= 0 ? "+%.17g" : "%.17g", d);
        }
        fprintf(f, "|%s", tc);
        if (rate)
            fprintf(f, "|@%.17g", json_number_value(rate));
        if (tags && json_object_size(tags)) {
            const char *k;
            json_t *v;
            char sep = '#';
            fputc('|', f);
            json_object_foreach(tags, k, v) {
                fprintf(f, "%c%s:%s", sep, k, json_string_value(v));
                sep = ',';
            }
        }
        if (ts)
            fprintf(f, "|T%lld", (long long)json_integer_value(ts));
        fputc('\n', f);
    }
    fclose(f);
    json_decref(root);
    *out = buf;
    *out_len = blen;
    return 0;
}

static enum MHD_Result h_ingest(nx_http *h, struct MHD_Connection *c, req_ctx *rq)
{
    enum MHD_Result sent = MHD_NO;
    char tenant[65];
    if (auth(h, c, tenant, &sent))
        return sent;
    if (rq->too_big)
        return nx_reply_error(c, 413, "too_big", "request body over --max-body");
    const char *am = arg(c, "ack");
    int ack = h->cfg->ack_durable ? NX_ACK_DURABLE : NX_ACK_APPLIED;
    if (am && !strcmp(am, "durable"))
        ack = NX_ACK_DURABLE;
    else if (am && !strcmp(am, "applied"))
        ack = NX_ACK_APPLIED;
    else if (am)
        return nx_reply_error(c, 400, "bad_ack", "ack must be durable or applied");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    size_t off = 0;
    while (off < rq->len && (rq->body[off] == ' ' || rq->body[off] == '\n' || rq->body[off] == '\t'))
        off++;
    int is_json = (ct && strstr(ct, "json")) || (off < rq->len && (rq->body[off] == '{' || rq->body[off] == '['));
    nx_apply_result res, pre;
    memset(&pre, 0, sizeof(pre));
    int rc;
    if (is_json) {
        char *lines = NULL, err[256];
        size_t ll = 0;
        rc = json_to_lines(rq->body ? rq->body : "", rq->len, &lines, &ll, &pre, err, sizeof(err));
        if (rc == NX_EINVAL)
            return nx_reply_error(c, 400, "bad_json", err);
        if (rc)
            return nx_reply_error(c, 500, nx_errname(rc), nx_strerror(rc));
        rc = nx_server_ingest_ack(h->srv, tenant, lines, ll, ack, &res);
        free(lines);
    } else {
        rc = nx_server_ingest_ack(h->srv, tenant, rq->body ? rq->body : "", rq->len, ack, &res);
    }
    if (rc)
        return send_store_error(c, rc);
    nx_apply_result_add(&res, &pre);
    return nx_reply_json(c, 200,
                     json_pack("{s:I,s:I,s:I,s:o}", "accepted", (json_int_t)res.events,
                               "rejected", (json_int_t)res.rejected, "lines",
                               (json_int_t)res.lines, "errors", reasons_json(res.reasons)));
}

/* ---- admin ------------------------------------------------------------------ */

/* POST /v1/admin/snapshot: snapshot every shard now, answer when on disk.
 * Auth: nx_auth_resolve as every endpoint today (issue 6 will require the
 * admin token here). */
static enum MHD_Result h_admin_snapshot(nx_http *h, struct MHD_Connection *c)
{
    enum MHD_Result sent = MHD_NO;
    char tenant[65];
    if (auth(h, c, tenant, &sent))
        return sent;
    int n = nx_server_nshards(h->srv);
    uint64_t *lsns = calloc((size_t)n, sizeof(*lsns));
    if (!lsns)
        return nx_reply_error(c, 500, "nomem", "out of memory");
    int64_t t0 = nx_now_ms();
    int rc = nx_server_snapshot(h->srv, lsns);
    if (rc) {
        free(lsns);
        if (rc == NX_ENOENT)
            return nx_reply_error(c, 409, "no_data_dir", "durability is off (no --data-dir)");
        return send_store_error(c, rc);
    }
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:i,s:I}", "shard", i, "lsn", (json_int_t)lsns[i]));
    free(lsns);
    return nx_reply_json(c, 200, json_pack("{s:o,s:I}", "shards", a, "ms", (json_int_t)(nx_now_ms() - t0)));
}

/* ---- SSE ------------------------------------------------------------------ */

typedef struct sse {
    nx_http *h;
    char tenant[65];
    char key[8192];
    size_t key_len;
    uint32_t window_s;
    nx_qlist q;
    uint32_t interval_ms;
    int64_t last_poll, last_write;
    char *last_json;  /* last pushed summary (to detect changes) */
    char *out;        /* pending bytes */
    size_t out_len, out_off;
    uint64_t seq;
} sse;

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void sse_set_out(sse *x, char *s, size_t n)
{
    free(x->out);
    x->out = s;
    x->out_len = n;
    x->out_off = 0;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    sse *x = cls;
    (void)pos;
    for (;;) {
        if (x->out && x->out_off < x->out_len) {
            size_t n = x->out_len - x->out_off;
            if (n > max)
                n = max;
            memcpy(buf, x->out + x->out_off, n);
            x->out_off += n;
            return (ssize_t)n;
        }
        if (atomic_load(&x->h->stopping))
            return MHD_CONTENT_READER_END_OF_STREAM;
        int64_t now = nx_now_ms();
        int64_t due = x->last_poll + x->interval_ms;
        if (now < due) {
            sleep_ms(due - now < 100 ? due - now : 100);
            continue;
        }
        x->last_poll = now;
        nx_summary s;
        int rc = nx_server_summary(x->h->srv, x->tenant, x->key, x->key_len, x->window_s, now, &s);
        if (rc == 0) {
            json_t *j = nx_summary_json(x->tenant, x->key, x->key_len, &s, x->window_s, &x->q, 10, now);
            nx_summary_free(&s);
            /* compare without "rate" for windows? no: a changed rate is a change */
            char *js = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
            json_decref(j);
            if (js && (!x->last_json || strcmp(js, x->last_json) != 0)) {
                char *msg = NULL;
                int n = asprintf(&msg, "id: %llu\nevent: summary\ndata: %s\n\n",
                                 (unsigned long long)++x->seq, js);
                free(x->last_json);
                x->last_json = js;
                if (n > 0) {
                    sse_set_out(x, msg, (size_t)n);
                    x->last_write = now;
                }
                continue;
            }
            free(js);
        }
        if (now - x->last_write >= (int64_t)x->h->cfg->sse_heartbeat_s * 1000) {
            char *hb = strdup(": heartbeat\n\n");
            if (hb) {
                sse_set_out(x, hb, strlen(hb));
                x->last_write = now;
            }
        }
    }
}

static void sse_free(void *cls)
{
    sse *x = cls;
    atomic_fetch_sub(&x->h->subscribers, 1);
    free(x->last_json);
    free(x->out);
    free(x);
}

static enum MHD_Result h_subscribe(nx_http *h, struct MHD_Connection *c)
{
    enum MHD_Result sent = MHD_NO;
    sse *x = calloc(1, sizeof(*x));
    if (!x)
        return nx_reply_error(c, 500, "nomem", "out of memory");
    int klen;
    if (auth(h, c, x->tenant, &sent) || build_key(c, x->key, sizeof(x->key), &klen, &sent) ||
        parse_window(c, h->cfg, "1m", &x->window_s, &sent)) {
        free(x);
        return sent;
    }
    x->key_len = (size_t)klen;
    const char *qs = arg(c, "q");
    if (qs && *qs ? nx_qlist_parse(qs, &x->q) != 0 : (nx_qlist_default(&x->q), 0)) {
        free(x);
        return nx_reply_error(c, 400, "bad_quantile", "q must be a comma list of numbers in [0,1]");
    }
    uint32_t mps = h->cfg->sse_max_per_sec;
    const char *m = arg(c, "max_per_sec");
    if (m) {
        long v = strtol(m, NULL, 10);
        if (v < 1 || v > 1000) {
            free(x);
            return nx_reply_error(c, 400, "bad_request", "max_per_sec must be in [1, 1000]");
        }
        mps = (uint32_t)v;
    }
    x->interval_ms = 1000 / mps;
    if (atomic_fetch_add(&h->subscribers, 1) >= (int)h->cfg->max_subscribers) {
        atomic_fetch_sub(&h->subscribers, 1);
        free(x);
        return nx_reply_error(c, 503, "too_many_subscribers", "subscriber limit reached");
    }
    x->h = h;
    x->last_write = nx_now_ms();
    x->out = strdup(": subscribed\nretry: 1000\n\n");
    x->out_len = x->out ? strlen(x->out) : 0;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, sse_reader, x, sse_free);
    if (!r) {
        sse_free(x);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- dispatch ------------------------------------------------------------- */

static enum MHD_Result dispatch(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    nx_http *h = cls;
    (void)version;
    int is_post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!*con_cls) {
        req_ctx *rq = calloc(1, sizeof(*rq));
        if (!rq)
            return MHD_NO;
        rq->t0_ns = nx_mono_ns();
        rq->route = nx_latency_route(url);
        *con_cls = rq;
        return MHD_YES;
    }
    req_ctx *rq = *con_cls;
    if (*upload_size) {
        if (!rq->too_big) {
            if (rq->len + *upload_size > h->cfg->max_body) {
                rq->too_big = 1;
                free(rq->body);
                rq->body = NULL;
                rq->len = rq->cap = 0;
            } else {
                if (rq->len + *upload_size > rq->cap) {
                    size_t nc = rq->cap ? rq->cap : 4096;
                    while (nc < rq->len + *upload_size)
                        nc *= 2;
                    char *nb = realloc(rq->body, nc);
                    if (!nb)
                        return MHD_NO;
                    rq->body = nb;
                    rq->cap = nc;
                }
                memcpy(rq->body + rq->len, upload, *upload_size);
                rq->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int is_get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    if (!strncmp(url, "/v1/tenants", 11) && (url[11] == 0 || url[11] == '/')) {
        if (rq->too_big)
            return nx_reply_error(c, 413, "too_big", "request body over --max-body");
        return nx_tenant_api(h->srv, c, url, method, rq->body, rq->len);
    }
    if (!strcmp(url, "/v1/ingest")) {
        if (!is_post)
            return nx_reply_error(c, 405, "method_not_allowed", "use POST");
        return h_ingest(h, c, rq);
    }
    if (!strcmp(url, "/v1/admin/snapshot")) {
        if (!is_post)
            return nx_reply_error(c, 405, "method_not_allowed", "use POST");
        return h_admin_snapshot(h, c);
    }
    if (!strcmp(url, "/v1/admin/quota")) {
        if (strcmp(method, MHD_HTTP_METHOD_PUT) != 0)
            return nx_reply_error(c, 405, "method_not_allowed", "use PUT");
        unsigned status;
        json_t *j = nx_kstage_quota_put(h->srv, c, &status);
        return nx_reply_json(c, status, j);
    }
    if (!strncmp(url, "/v1/udfs", 8) && (url[8] == 0 || url[8] == '/'))
        return nx_udf_http(h->srv, c, url, method, rq->body, rq->len, rq->too_big);
    /* bulk: answers that render every stream of a tenant or of the server
     * (tens of ms of CPU with 100,000 streams) run at normal priority, so
     * a scrape never holds a core at real-time priority (nx_rt.h) */
    static const struct {
        const char *path;
        enum MHD_Result (*fn)(nx_http *, struct MHD_Connection *);
        bool bulk;
    } gets[] = {
        {"/v1/health", h_health, false}, {"/v1/summary", h_summary, false},
        {"/v1/streams", h_streams, true}, {"/v1/series", h_series, false},
        {"/v1/subscribe", h_subscribe, false}, {"/metrics", h_metrics, true},
        {"/v1/stats", h_stats, true},
    };
    for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++)
        if (!strcmp(url, gets[i].path)) {
            if (!is_get)
                return nx_reply_error(c, 405, "method_not_allowed", "use GET");
            bool lower = gets[i].bulk && h->cfg->realtime;
            if (lower)
                (void)nx_rt_set(0, 0, 0);
            enum MHD_Result r = gets[i].fn(h, c);
            if (lower)
                (void)nx_rt_set(0, NX_RT_HTTP, 0);
            return r;
        }
    return nx_reply_error(c, 404, "not_found", "no such endpoint (see docs/api.md)");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    nx_http *h = cls;
    (void)c;
    req_ctx *rq = *con_cls;
    if (rq && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        nx_latency_record(&h->lat, rq->route, nx_mono_ns() - rq->t0_ns);
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    nx_log(NX_LOG_WARN, "http", "detail=\"%s\"", msg);
}

int nx_http_start(nx_server *srv, int listen_fd, nx_http **out)
{
    nx_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NX_ENOMEM;
    h->srv = srv;
    h->cfg = nx_server_config(srv);
    /* libmicrohttpd's threads (the listener, one per connection) inherit
     * the policy of the thread that starts them: NX_RT_HTTP (nx_rt.h) */
    nx_rt_saved saved;
    int rt = h->cfg->realtime && nx_rt_push(NX_RT_HTTP, &saved) == 0;
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_AUTO | MHD_USE_ERROR_LOG,
                            0, NULL, NULL, dispatch, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                            MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_NOTIFY_COMPLETED,
                            completed, h, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)h->cfg->http_conns, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)120, MHD_OPTION_END);
    if (rt)
        nx_rt_pop(&saved);
    if (!h->d) {
        free(h);
        return NX_EIO;
    }
    *out = h;
    return 0;
}

void nx_http_stop(nx_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    MHD_stop_daemon(h->d);
    free(h);
}
