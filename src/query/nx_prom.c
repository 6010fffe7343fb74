/*
 * nx_prom.c — Prometheus text exposition (format 0.0.4) of every stream and
 * of nexusd's own counters. Must pass `promtool check metrics` (syntax AND
 * lint), so:
 *
 *   - metric and label names are sanitized to [a-z_][a-z0-9_]* : camelCase
 *     becomes snake_case, any other byte becomes '_', a leading digit gets a
 *     '_' prefix, ':' is replaced (reserved for recording rules), names
 *     starting with "nexusd_" get a "x_" prefix (nexusd's own namespace);
 *   - counters are `<name>_total` (counter), timers/histograms/distributions
 *     are summaries `<name>{quantile=...}`, `<name>_sum`, `<name>_count`,
 *     gauges are `<name>` (gauge, last value; `<name>_value` when the name
 *     ends in _count/_sum/_bucket/_total) and sets `<name>_distinct`
 *     (gauge, HyperLogLog estimate);
 *   - each family is written once, contiguously, with HELP and TYPE; when two
 *     streams map to one family name with different types, the later types
 *     get a `_<type>` suffix; exact duplicate series are dropped;
 *   - labels: tenant="...", then the stream's tags (valueless tags get
 *     "true"; a tag whose sanitized name clashes with one already present or
 *     with `quantile`/`tenant` is prefixed "tag_"); label values escaped
 *     (\\, \", \n).
 *
 * Quantiles come from the `prom-window` sliding window (default 1m: what
 * Prometheus expects from a summary), _sum/_count from the all-time summary
 * (monotonic, as Prometheus requires).
 */
#include "query/nx_prom.h"
#include "query/nx_kstage_http.h"
#include "query/nx_tenant_api.h"
#include "server/nx_log.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct series {
    char *family;   /* sanitized family base name (owned) */
    char *labels;   /* rendered label pairs without braces (owned) */
    nx_type type;
    const nx_export_entry *e;
} series;

/* camelCase -> camel_case, other bytes -> '_', lower case. */
static void sanitize(const char *in, size_t n, char *out, size_t cap, int metric)
{
    size_t o = 0;
    if (n && isdigit((unsigned char)in[0]) && o + 1 < cap)
        out[o++] = '_';
    for (size_t i = 0; i < n && o + 2 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'Z') {
            if (i && o && out[o - 1] != '_' &&
                ((in[i - 1] >= 'a' && in[i - 1] <= 'z') || (in[i - 1] >= '0' && in[i - 1] <= '9')))
                out[o++] = '_';
            out[o++] = (char)(c - 'A' + 'a');
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
            out[o++] = (char)c;
        } else if (!(o && out[o - 1] == '_')) {
            out[o++] = '_';
        }
    }
    if (o == 0)
        out[o++] = '_';
    out[o] = 0;
    (void)metric;
}

static void put_escaped(FILE *f, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\')
            fputs("\\\\", f);
        else if (c == '"')
            fputs("\\\"", f);
        else if (c == '\n')
            fputs("\\n", f);
        else
            fputc(c, f);
    }
}

static void put_num(FILE *f, double v)
{
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else
        fprintf(f, "%.17g", v);
}

/* tenant="t",k="v",... */
static char *render_labels(const nx_export_entry *e)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fputs("tenant=\"", f);
    put_escaped(f, e->tenant, strlen(e->tenant));
    fputc('"', f);
    char seen[64][128];
    int nseen = 0;
    size_t klen = strlen(e->key);
    const char *p = memchr(e->key, '|', klen), *end = e->key + klen;
    while (p && p < end) {
        p++;
        const char *nb = memchr(p, '|', (size_t)(end - p));
        const char *te = nb ? nb : end;
        const char *colon = memchr(p, ':', (size_t)(te - p));
        char name[128];
        sanitize(p, (size_t)((colon ? colon : te) - p), name, sizeof(name) - 4, 0);
        int clash = !strcmp(name, "tenant") || !strcmp(name, "quantile") || !strncmp(name, "__", 2);
        for (int i = 0; i < nseen && !clash; i++)
            clash = !strcmp(seen[i], name);
        if (clash) {
            char tmp[128];
            snprintf(tmp, sizeof(tmp), "tag_%.120s", name);
            memcpy(name, tmp, sizeof(name));
            for (int i = 0; i < nseen; i++)
                if (!strcmp(seen[i], name))
                    goto next; /* still clashes: drop this tag */
        }
        if (nseen < 64)
            memcpy(seen[nseen++], name, sizeof(name));
        else
            goto next;
        fprintf(f, ",%s=\"", name);
        if (colon)
            put_escaped(f, colon + 1, (size_t)(te - colon - 1));
        else
            fputs("true", f);
        fputc('"', f);
    next:
        p = nb;
    }
    fclose(f);
    return buf;
}

static const char *suffix_of(nx_type t)
{
    switch (t) {
    case NX_TYPE_COUNTER: return "_total";
    case NX_TYPE_SET: return "_distinct";
    default: return "";
    }
}

static char *family_of(const nx_export_entry *e, const char *extra)
{
    size_t klen = strlen(e->key);
    const char *bar = memchr(e->key, '|', klen);
    size_t nl = bar ? (size_t)(bar - e->key) : klen;
    char base[600];
    sanitize(e->key, nl, base, 512, 1);
    size_t bl = strlen(base);
    const char *suf = suffix_of(e->type);
    /* don't double the suffix (a counter already called x_total) */
    if (*suf && bl >= strlen(suf) && !strcmp(base + bl - strlen(suf), suf))
        suf = "";
    /* promtool lint: only summaries/histograms may end in _count/_sum/_bucket */
    if (e->type == NX_TYPE_GAUGE && !*extra) {
        static const char *const res[] = {"_count", "_sum", "_bucket", "_total"};
        for (size_t i = 0; i < 4; i++)
            if (bl >= strlen(res[i]) && !strcmp(base + bl - strlen(res[i]), res[i]))
                suf = "_value";
    }
    char *out = malloc(bl + 64);
    if (!out)
        return NULL;
    snprintf(out, bl + 64, "%s%s%s%s", !strncmp(base, "nexusd_", 7) ? "x_" : "", base, extra, suf);
    return out;
}

static int series_cmp(const void *a, const void *b)
{
    const series *x = a, *y = b;
    int c = strcmp(x->family, y->family);
    if (c)
        return c;
    if (x->type != y->type)
        return (int)x->type - (int)y->type;
    return strcmp(x->labels, y->labels);
}

static const char *prom_type(nx_type t)
{
    switch (t) {
    case NX_TYPE_COUNTER: return "counter";
    case NX_TYPE_GAUGE:
    case NX_TYPE_SET: return "gauge";
    default: return "summary";
    }
}

static void write_series(FILE *f, const series *s, const nx_qlist *qs)
{
    const nx_export_entry *e = s->e;
    switch (s->type) {
    case NX_TYPE_COUNTER:
        fprintf(f, "%s{%s} ", s->family, s->labels);
        put_num(f, e->all.sum);
        fputc('\n', f);
        break;
    case NX_TYPE_GAUGE:
        fprintf(f, "%s{%s} ", s->family, s->labels);
        put_num(f, e->all.last);
        fputc('\n', f);
        break;
    case NX_TYPE_SET:
        fprintf(f, "%s{%s} ", s->family, s->labels);
        put_num(f, nx_summary_distinct(&e->all));
        fputc('\n', f);
        break;
    default: {
        const nx_summary *qsrc = e->win.window_s == NX_WINDOW_ALL ? &e->all : &e->win;
        for (size_t i = 0; i < qs->n; i++) {
            fprintf(f, "%s{%s,quantile=\"%g\"} ", s->family, s->labels, qs->q[i]);
            put_num(f, qsrc->count > 0 ? nx_summary_quantile(qsrc, qs->q[i]) : NAN);
            fputc('\n', f);
        }
        fprintf(f, "%s_sum{%s} ", s->family, s->labels);
        put_num(f, e->all.sum);
        fprintf(f, "\n%s_count{%s} ", s->family, s->labels);
        put_num(f, e->all.count);
        fputc('\n', f);
    }
    }
}

static void own_stats(FILE *f, nx_server *srv, int64_t now)
{
    int n = nx_server_nshards(srv);
    nx_engine_counts *ec = calloc((size_t)n, sizeof(*ec));
    if (ec)
        nx_server_engine_counts(srv, ec);
#define FAM(name, type, help) fprintf(f, "# HELP " name " " help "\n# TYPE " name " " type "\n")
#define PER_SHARD(name, field)                                                                   \
    for (int i = 0; i < n; i++)                                                                  \
        fprintf(f, name "{shard=\"%d\"} %llu\n", i,                                              \
                (unsigned long long)atomic_load_explicit(                                        \
                    &nx_shard_get_stats(nx_server_shard(srv, i))->field, memory_order_relaxed))
    FAM("nexusd_events_total", "counter", "Values applied to summaries.");
    PER_SHARD("nexusd_events_total", events);
    FAM("nexusd_lines_total", "counter", "StatsD lines received.");
    PER_SHARD("nexusd_lines_total", lines);
    FAM("nexusd_datagrams_total", "counter", "UDP and unix datagrams received.");
    PER_SHARD("nexusd_datagrams_total", datagrams);
    FAM("nexusd_received_bytes_total", "counter", "Payload bytes received.");
    PER_SHARD("nexusd_received_bytes_total", bytes);
    FAM("nexusd_rejected_total", "counter", "Lines or values rejected, by reason.");
    for (int i = 0; i < n; i++) {
        const nx_shard_stats *st = nx_shard_get_stats(nx_server_shard(srv, i));
        for (int r = 1; r < NX_SD_NREASONS; r++)
            fprintf(f, "nexusd_rejected_total{shard=\"%d\",reason=\"%s\"} %llu\n", i,
                    nx_statsd_reason_name(r),
                    (unsigned long long)atomic_load_explicit(&st->reasons[r], memory_order_relaxed));
    }
    FAM("nexusd_kernel_drops_total", "counter", "Datagrams the kernel dropped (SO_RXQ_OVFL).");
    for (int i = 0; i < n; i++) {
        const nx_shard_stats *st = nx_shard_get_stats(nx_server_shard(srv, i));
        fprintf(f, "nexusd_kernel_drops_total{shard=\"%d\",socket=\"udp\"} %llu\n", i,
                (unsigned long long)atomic_load_explicit(&st->kernel_drops_udp, memory_order_relaxed));
        fprintf(f, "nexusd_kernel_drops_total{shard=\"%d\",socket=\"unix\"} %llu\n", i,
                (unsigned long long)atomic_load_explicit(&st->kernel_drops_unix, memory_order_relaxed));
    }
    FAM("nexusd_tcp_connections", "gauge", "Open StatsD TCP connections.");
    PER_SHARD("nexusd_tcp_connections", tcp_conns);
    if (ec) {
        FAM("nexusd_tenants", "gauge", "Tenants with state on a shard.");
        for (int i = 0; i < n; i++)
            fprintf(f, "nexusd_tenants{shard=\"%d\"} %llu\n", i, (unsigned long long)ec[i].tenants);
        FAM("nexusd_streams", "gauge", "Streams held by a shard.");
        for (int i = 0; i < n; i++)
            fprintf(f, "nexusd_streams{shard=\"%d\"} %llu\n", i, (unsigned long long)ec[i].streams);
        FAM("nexusd_stream_memory_bytes", "gauge", "Heap bytes owned by summaries.");
        for (int i = 0; i < n; i++)
            fprintf(f, "nexusd_stream_memory_bytes{shard=\"%d\"} %llu\n", i, (unsigned long long)ec[i].bytes);
    }
    long pages = 0, rss = 0;
    FILE *sm = fopen("/proc/self/statm", "r");
    if (sm) {
        if (fscanf(sm, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(sm);
    }
    FAM("nexusd_resident_memory_bytes", "gauge", "Resident set size of the process.");
    fprintf(f, "nexusd_resident_memory_bytes %lld\n", (long long)rss * sysconf(_SC_PAGESIZE));
    FAM("nexusd_uptime_seconds", "gauge", "Seconds since start.");
    fprintf(f, "nexusd_uptime_seconds %.3f\n", (double)(now - nx_server_start_ms(srv)) / 1000.0);
    free(ec);
#undef FAM
#undef PER_SHARD
}

int nx_prom_render(nx_server *srv, int64_t now_ms, char **out, size_t *out_len)
{
    return nx_prom_render_for(srv, NULL, now_ms, out, out_len);
}

int nx_prom_render_for(nx_server *srv, const char *tenant, int64_t now_ms, char **out,
                       size_t *out_len)
{
    const nx_config *cfg = nx_server_config(srv);
    nx_export_entry *ents = NULL;
    size_t n = 0;
    int rc = nx_server_export(srv, cfg->prom_window_s, now_ms, &ents, &n);
    if (rc)
        return rc;
    if (tenant) { /* keep only that tenant's streams */
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(ents[i].tenant, tenant))
                ents[w++] = ents[i];
            else {
                free(ents[i].key);
                free(ents[i].tenant);
                nx_summary_free(&ents[i].all);
                nx_summary_free(&ents[i].win);
            }
        }
        n = w;
    }
    series *ss = calloc(n ? n : 1, sizeof(*ss));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = ss ? open_memstream(&buf, &len) : NULL;
    if (!f) {
        free(ss);
        nx_export_free(ents, n);
        return NX_ENOMEM;
    }
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        ss[ns].e = &ents[i];
        ss[ns].type = ents[i].type;
        ss[ns].family = family_of(&ents[i], "");
        ss[ns].labels = render_labels(&ents[i]);
        if (!ss[ns].family || !ss[ns].labels) {
            free(ss[ns].family);
            free(ss[ns].labels);
            continue;
        }
        ns++;
    }
    qsort(ss, ns, sizeof(*ss), series_cmp);
    /* families with several types: rename all but the first type */
    int renamed = 0;
    for (size_t i = 1; i < ns; i++) {
        size_t j = i;
        while (j > 0 && !strcmp(ss[j - 1].family, ss[i].family) && ss[j - 1].type == ss[i].type)
            j--;
        if (j > 0 && !strcmp(ss[j - 1].family, ss[i].family) && ss[j - 1].type != ss[i].type) {
            char extra[32];
            snprintf(extra, sizeof(extra), "_%s", nx_type_name(ss[i].type));
            char *nf = family_of(ss[i].e, extra);
            if (nf) {
                free(ss[i].family);
                ss[i].family = nf;
                renamed = 1;
            }
        }
    }
    if (renamed)
        qsort(ss, ns, sizeof(*ss), series_cmp);
    nx_qlist qs;
    nx_qlist_default(&qs);
    const char *cur = NULL;
    nx_type cur_type = NX_TYPE_NONE;
    for (size_t i = 0; i < ns; i++) {
        if (cur && !strcmp(cur, ss[i].family)) {
            if (cur_type != ss[i].type)
                continue; /* still clashing after renaming: drop */
            if (!strcmp(ss[i - 1].labels, ss[i].labels))
                continue; /* duplicate series after sanitizing */
        } else {
            cur = ss[i].family;
            cur_type = ss[i].type;
            fprintf(f, "# HELP %s NexusCore %s stream %s.\n# TYPE %s %s\n", cur,
                    nx_type_name(cur_type), cur, cur, prom_type(cur_type));
        }
        write_series(f, &ss[i], &qs);
    }
    if (!tenant) {
        own_stats(f, srv, now_ms);
        nx_kstage_prom(f, srv);
    }
    nx_tenant_prom(f, srv, tenant);
    fclose(f);
    for (size_t i = 0; i < ns; i++) {
        free(ss[i].family);
        free(ss[i].labels);
    }
    free(ss);
    nx_export_free(ents, n);
    *out = buf;
    *out_len = len;
    return 0;
}
