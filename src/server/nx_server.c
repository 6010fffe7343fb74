/*
 * nx_server.c — shards, listeners, and cross-shard queries (see
 * nx_server.h).
 *
 * Every query allocates one nx_shard_msg per shard on the caller's heap,
 * posts them, waits on one latch, merges, frees. Merges: summaries with
 * nx_summary_merge; stream lists and exports by sorting the concatenation
 * and folding equal keys; series points by timestamp (count and sum add,
 * min/max combine).
 */
#include "server/nx_server.h"
#include "common/nx_fs.h"
#include "server/nx_kstage.h"
#include "server/nx_listener.h"
#include "server/nx_log.h"
#include "server/nx_rt.h"
#include "server/nx_udfhost.h"
#include "server/nx_tenants.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Upper bound on shard threads (the --shards flag's limit too). */
#define NX_SHARDS_MAX 256

struct nx_server {
    nx_config cfg;
    int n;
    nx_shard **shards;
    int unix_fd;
    int64_t start_ms;
    unsigned rr; /* round robin for small HTTP bodies (HTTP threads race on it harmlessly) */
    nx_kstage *ks;
    nx_udf_host *udf; /* tenant UDFs (Wasm); NULL if the cache cannot be opened */
    nx_prefault *pf;  /* shard heaps faulted in ahead of use; NULL: off */
};

nx_udf_host *nx_server_udf(nx_server *s) { return s->udf; }

int nx_server_nshards(const nx_server *s) { return s->n; }
const nx_config *nx_server_config(const nx_server *s) { return &s->cfg; }
nx_shard *nx_server_shard(nx_server *s, int i) { return s->shards[i]; }
int64_t nx_server_start_ms(const nx_server *s) { return s->start_ms; }
nx_kstage *nx_server_kstage(nx_server *s) { return s->ks; }
nx_prefault *nx_server_prefault(nx_server *s) { return s->pf; }

/* The NXB listeners: a steered UDP reuseport group and a TCP reuseport group
 * (the kernel balances connections over shards), one socket each per shard. */
static int nxb_listeners(nx_server *s)
{
    int n = s->n, rc = 0;
    int *udp = malloc(sizeof(int) * (size_t)n), *tcp = malloc(sizeof(int) * (size_t)n);
    if (!udp || !tcp) {
        free(udp);
        free(tcp);
        return NX_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        udp[i] = tcp[i] = -1;
    if (s->cfg.nxb_udp[0]) {
        rc = nx_listener_udp_group(s->cfg.nxb_udp, n, s->cfg.rcvbuf, udp);
        if (!rc)
            rc = nx_kstage_attach(s->ks, NX_KS_NXB, udp, n);
    }
    if (!rc && s->cfg.nxb_tcp[0])
        rc = nx_listener_tcp_group(s->cfg.nxb_tcp, n, tcp);
    for (int i = 0; !rc && i < n; i++) {
        rc = nx_shard_set_nxb(s->shards[i], udp[i], tcp[i], s->ks);
        if (!rc)
            udp[i] = tcp[i] = -1;
    }
    for (int i = 0; i < n; i++) {
        if (udp[i] >= 0)
            close(udp[i]);
        if (tcp[i] >= 0)
            close(tcp[i]);
    }
    free(udp);
    free(tcp);
    return rc;
}

int nx_server_create(const nx_config *cfg, const nx_server_hooks *hooks, nx_server **out)
{
    nx_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NX_ENOMEM;
    s->cfg = *cfg;
    s->unix_fd = -1;
    s->n = cfg->shards;
    if (s->n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        s->n = c > 0 ? (int)c : 1;
    }
    if (s->n > NX_SHARDS_MAX)
        s->n = NX_SHARDS_MAX; /* --shards is capped at the same value */
    s->shards = calloc((size_t)s->n, sizeof(nx_shard *));
    int *udp = malloc(sizeof(int) * (size_t)s->n);
    int *tcp = malloc(sizeof(int) * (size_t)s->n);
    int rc = NX_ENOMEM;
    if (!s->shards || !udp || !tcp)
        goto fail;
    rc = nx_kstage_create(&s->cfg, s->n, &s->ks);
    if (rc)
        goto fail;
    for (int i = 0; i < s->n; i++)
        udp[i] = tcp[i] = -1;
    if (s->cfg.data_dir[0] && nx_mkdirs(s->cfg.data_dir, 0755) < 0) {
        nx_log(NX_LOG_ERROR, "cannot create data dir", "dir=\"%s\" errno=\"%s\"",
               s->cfg.data_dir, strerror(errno));
        rc = NX_EIO;
        goto fail;
    }
    rc = nx_durable_check_layout(s->cfg.data_dir, s->n);
    if (rc)
        goto fail;
    if (s->cfg.statsd_udp[0]) {
        rc = nx_listener_udp_group(s->cfg.statsd_udp, s->n, s->cfg.rcvbuf, udp);
        if (rc)
            goto fail;
        rc = nx_kstage_attach(s->ks, NX_KS_STATSD, udp, s->n);
        if (rc)
            goto fail_fds;
        if (hooks && hooks->udp_group) {
            rc = hooks->udp_group(hooks->arg, udp, s->n);
            if (rc)
                goto fail_fds;
        }
    }
    if (s->cfg.statsd_tcp[0]) {
        rc = nx_listener_tcp_group(s->cfg.statsd_tcp, s->n, tcp);
        if (rc)
            goto fail_fds;
    }
    if (s->cfg.statsd_unix[0]) {
        rc = nx_listener_unix_dgram(s->cfg.statsd_unix, s->cfg.rcvbuf, &s->unix_fd);
        if (rc)
            goto fail_fds;
    }
    const char *why = "--realtime no";
    if (s->cfg.realtime && nx_rt_available(&why) != 0)
        s->cfg.realtime = 0; /* what the HTTP threads and shards see too */
    if (s->cfg.realtime)
        nx_log(NX_LOG_INFO, "realtime on", "http_fifo=%d shard_fifo_while_queried=%d prefault_fifo=%d",
               NX_RT_HTTP, NX_RT_SHARD, NX_RT_PREFAULT);
    else
        nx_log(NX_LOG_INFO, "realtime off", "reason=\"%s\"", why);
    nx_prefault_opts pfo = {.ahead_bytes = (size_t)s->cfg.prefault_ahead_mb << 20,
                            .rt_prio = s->cfg.realtime ? NX_RT_PREFAULT : 0,
                            .huge_pages = s->cfg.huge_pages};
    rc = nx_prefault_create(s->n, &pfo, &s->pf, &why);
    if (rc)
        goto fail_fds;
    if (s->pf)
        nx_log(NX_LOG_INFO, "prefault on", "shards=%d ahead_mib=%u page=%s thread=%s", s->n,
               s->cfg.prefault_ahead_mb, s->cfg.huge_pages ? "2M" : "4K",
               s->cfg.realtime ? "fifo" : "idle");
    else
        nx_log(NX_LOG_INFO, "prefault off", "reason=\"%s\"", why);
    for (int i = 0; i < s->n; i++) {
        rc = nx_shard_create(i, &s->cfg, udp[i], tcp[i], s->unix_fd, &s->shards[i]);
        if (rc)
            goto fail_fds;
        udp[i] = tcp[i] = -1; /* owned by the shard now */
        nx_shard_set_prefault(s->shards[i], s->pf);
        nx_shard_set_realtime(s->shards[i], s->cfg.realtime ? NX_RT_SHARD : 0);
    }
    rc = nxb_listeners(s);
    if (rc)
        goto fail_fds;
    if (s->cfg.data_dir[0] && nx_udf_host_create(s->cfg.data_dir, s->n, &s->udf) == 0)
        for (int i = 0; i < s->n; i++)
            nx_shard_set_udf(s->shards[i], nx_udf_host_shard(s->udf, i));
    free(udp);
    free(tcp);
    *out = s;
    return 0;
fail_fds:
    for (int i = 0; i < s->n; i++) {
        if (udp[i] >= 0)
            close(udp[i]);
        if (tcp[i] >= 0)
            close(tcp[i]);
    }
fail:
    free(udp);
    free(tcp);
    nx_server_destroy(s);
    return rc;
}

int nx_server_start(nx_server *s)
{
    s->start_ms = nx_now_ms();
    for (int i = 0; i < s->n; i++) {
        int rc = nx_shard_start(s->shards[i]);
        if (rc)
            return rc;
    }
    return 0;
}

void nx_server_stop(nx_server *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->shards[i])
            nx_shard_stop(s->shards[i]);
}

void nx_server_destroy(nx_server *s)
{
    if (!s)
        return;
    if (s->shards)
        for (int i = 0; i < s->n; i++)
            nx_shard_destroy(s->shards[i]);
    nx_udf_host_destroy(s->udf); /* after the shards: it owns their instances */
    for (int i = 0; s->pf && i < s->n; i++) {
        nx_prefault_stats ps;
        nx_prefault_get_stats(s->pf, i, &ps);
        nx_log(NX_LOG_INFO, "prefault totals",
               "shard=%d handed_mib=%llu ready_mib=%llu failed_mib=%llu purged_mib=%llu "
               "fallback_mib=%llu", i, (unsigned long long)(ps.handed >> 20),
               (unsigned long long)(ps.ready >> 20), (unsigned long long)(ps.failed >> 20),
               (unsigned long long)(ps.purged >> 20), (unsigned long long)(ps.fallback >> 20));
    }
    nx_prefault_destroy(s->pf);  /* after the shards: they allocate from it */
    free(s->shards);
    nx_kstage_destroy(s->ks); /* after the sockets closed: detaches the programs */
    if (s->unix_fd >= 0) {
        close(s->unix_fd);
        unlink(s->cfg.statsd_unix);
    }
    free(s);
}

/* ---- fan-out ------------------------------------------------------------ */

static nx_shard_msg *msgs_new(nx_server *s, int kind, int64_t now)
{
    nx_shard_msg *m = calloc((size_t)s->n, sizeof(*m));
    if (!m)
        return NULL;
    for (int i = 0; i < s->n; i++) {
        m[i].kind = kind;
        m[i].now_ms = now;
    }
    return m;
}

/* Posts m[i] to every shard i with sel[i] (sel NULL: all) and waits for
 * their answers; unselected messages stay as msgs_new left them (not
 * found, rc 0). */
static void fan_out_to(nx_server *s, nx_shard_msg *m, const bool *sel)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        k += !sel || sel[i];
    if (k == 0)
        return;
    nx_waiter w;
    nx_waiter_init(&w, k);
    for (int i = 0; i < s->n; i++) {
        if (sel && !sel[i])
            continue;
        m[i].waiter = &w;
        nx_shard_post(s->shards[i], &m[i]);
    }
    nx_waiter_wait(&w);
    nx_waiter_destroy(&w);
}

static void fan_out(nx_server *s, nx_shard_msg *m)
{
    fan_out_to(s, m, NULL);
}

/* A query about one tenant asks only the shards whose tenant filter says
 * they may hold it (with tenant-steered ingest, usually one): on a shard
 * that never saw the tenant the answer is "not found" anyway, and each
 * shard asked costs a wakeup and a mailbox round trip. */
static void fan_out_tenant(nx_server *s, nx_shard_msg *m, const char *tenant)
{
    bool sel[NX_SHARDS_MAX];
    size_t len = strlen(tenant);
    for (int i = 0; i < s->n; i++)
        sel[i] = nx_shard_may_have_tenant(s->shards[i], tenant, len);
    fan_out_to(s, m, sel);
}

/*
 * Concatenates the arrays every shard answered (parts[i], counts[i] items of
 * `each` bytes; each part is freed, its items move) into one array. On any
 * shard error or allocation failure everything is freed with free_items and
 * the first error is returned; *out is NULL when there are no items.
 */
static int gather(int n, void **parts, const size_t *counts, const int *rcs, size_t each,
                  void (*free_items)(void *v, size_t n), void **out, size_t *nout)
{
    size_t total = 0;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        total += counts[i];
        if (rcs[i] && !rc)
            rc = rcs[i];
    }
    uint8_t *all = NULL;
    if (!rc && total && !(all = malloc(total * each)))
        rc = NX_ENOMEM;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (rc) {
            free_items(parts[i], counts[i]);
            continue;
        }
        if (counts[i])
            memcpy(all + k * each, parts[i], counts[i] * each);
        k += counts[i];
        free(parts[i]);
    }
    if (rc) {
        free(all);
        return rc;
    }
    *out = all;
    *nout = k;
    return 0;
}

static void free_infos(void *v, size_t n) { nx_stream_infos_free(v, n); }
static void free_exports(void *v, size_t n) { nx_export_free(v, n); }

int nx_server_ingest(nx_server *s, const char *tenant, const char *body, size_t len,
                     nx_apply_result *res)
{
    return nx_server_ingest_ack(s, tenant, body, len,
                                s->cfg.ack_durable ? NX_ACK_DURABLE : NX_ACK_APPLIED, res);
}

int nx_server_snapshot(nx_server *s, uint64_t *lsns)
{
    nx_shard_msg *m = msgs_new(s, NX_MSG_SNAPSHOT, nx_now_ms());
    if (!m)
        return NX_ENOMEM;
    fan_out(s, m);
    int rc = 0;
    for (int i = 0; i < s->n; i++) {
        if (m[i].rc && !rc)
            rc = m[i].rc;
        if (lsns)
            lsns[i] = m[i].lsn;
    }
    free(m);
    return rc;
}

int nx_server_ingest_ack(nx_server *s, const char *tenant, const char *body, size_t len,
                         int ack, nx_apply_result *res)
{
    memset(res, 0, sizeof(*res));
    int n = s->n;
    nx_shard_msg *m = calloc((size_t)n, sizeof(*m));
    if (!m)
        return NX_ENOMEM;
    /* slices cut after a '\n' near every len/n bytes; small bodies: one shard */
    int used = 0;
    size_t pos = 0;
    int64_t now = nx_now_ms();
    int parts = len < 65536 ? 1 : n;
    int locked = !nx_tenants_embedded(s->cfg.registry);
    unsigned first = parts == 1 ? (__atomic_fetch_add(&s->rr, 1, __ATOMIC_RELAXED) % (unsigned)n) : 0;
    if (parts == 1 && locked) /* a token tenant's small bodies: its home shard (per-shard quotas) */
        first = nx_tenants_home_shard(tenant, n);
    for (int i = 0; i < parts && pos < len; i++) {
        size_t end = i == parts - 1 ? len : pos + (len - pos) / (size_t)(parts - i);
        if (end < len) {
            const char *nl = memchr(body + end, '\n', len - end);
            end = nl ? (size_t)(nl - body) + 1 : len;
        }
        nx_shard_msg *x = &m[used];
        x->kind = NX_MSG_INGEST;
        x->ack = ack;
        x->now_ms = now;
        x->batch = (nx_batch){.format = NX_BATCH_STATSD,
                              .source = NX_SRC_HTTP,
                              .tenant = tenant,
                              .tenant_len = (uint8_t)strlen(tenant),
                              .tenant_locked = (uint8_t)locked,
                              .recv_ms = now,
                              .data = (const uint8_t *)body + pos,
                              .len = end - pos};
        used++;
        pos = end;
    }
    nx_waiter w;
    nx_waiter_init(&w, used);
    for (int i = 0; i < used; i++) {
        m[i].waiter = &w;
        nx_shard_post(s->shards[(first + (unsigned)i) % (unsigned)n], &m[i]);
    }
    nx_waiter_wait(&w);
    nx_waiter_destroy(&w);
    int rc = 0;
    for (int i = 0; i < used; i++) {
        nx_apply_result_add(res, &m[i].ingest);
        if (m[i].rc)
            rc = m[i].rc;
    }
    free(m);
    return rc;
}

int nx_server_summary(nx_server *s, const char *tenant, const char *key, size_t key_len,
                      uint32_t window_s, int64_t now_ms, nx_summary *out)
{
    nx_shard_msg *m = msgs_new(s, NX_MSG_SUMMARY, now_ms);
    if (!m)
        return NX_ENOMEM;
    for (int i = 0; i < s->n; i++) {
        m[i].tenant = tenant;
        m[i].tenant_len = strlen(tenant);
        m[i].key = key;
        m[i].key_len = key_len;
        m[i].window_s = window_s;
    }
    fan_out_tenant(s, m, tenant);
    int rc = NX_ENOENT, found = 0, type_clash = 0;
    for (int i = 0; i < s->n; i++) {
        if (m[i].rc && rc == NX_ENOENT)
            rc = m[i].rc;
        if (!m[i].found)
            continue;
        if (!found) {
            *out = m[i].summary; /* take ownership */
            found = 1;
            continue;
        }
        if (out->type != m[i].summary.type) {
            type_clash = 1; /* same key with two types on two shards: keep the first */
        } else {
            int mr = nx_summary_merge(out, &m[i].summary);
            if (mr)
                rc = mr;
        }
        nx_summary_free(&m[i].summary);
    }
    (void)type_clash;
    free(m);
    if (found && (rc == NX_ENOENT || rc == 0))
        return 0;
    if (found)
        nx_summary_free(out);
    return rc;
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const nx_stream_info *)a)->key, ((const nx_stream_info *)b)->key);
}

int nx_server_streams(nx_server *s, const char *tenant, const char *prefix, int with_counts,
                      uint32_t window_s, int64_t now_ms, nx_stream_info **out, size_t *nout)
{
    nx_shard_msg *m = msgs_new(s, NX_MSG_STREAMS, now_ms);
    if (!m)
        return NX_ENOMEM;
    for (int i = 0; i < s->n; i++) {
        m[i].tenant = tenant;
        m[i].tenant_len = strlen(tenant);
        m[i].key = prefix;
        m[i].key_len = strlen(prefix);
        m[i].with_counts = with_counts;
        m[i].window_s = window_s;
    }
    fan_out_tenant(s, m, tenant);
    void *parts[NX_SHARDS_MAX];
    size_t counts[NX_SHARDS_MAX];
    int rcs[NX_SHARDS_MAX];
    for (int i = 0; i < s->n; i++) {
        parts[i] = m[i].streams;
        counts[i] = m[i].nstreams;
        rcs[i] = m[i].rc;
    }
    free(m);
    void *v = NULL;
    size_t k = 0;
    int rc = gather(s->n, parts, counts, rcs, sizeof(nx_stream_info), free_infos, &v, &k);
    if (rc)
        return rc;
    nx_stream_info *all = v;
    if (k)
        qsort(all, k, sizeof(*all), info_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (w && strcmp(all[w - 1].key, all[i].key) == 0) {
            all[w - 1].count += all[i].count;
            all[w - 1].sum += all[i].sum;
            if (all[i].last_update > all[w - 1].last_update)
                all[w - 1].last_update = all[i].last_update;
            free(all[i].key);
            continue;
        }
        all[w++] = all[i];
    }
    *out = all;
    *nout = w;
    return 0;
}

static int point_cmp(const void *a, const void *b)
{
    int64_t x = ((const nx_point *)a)->ts_ms, y = ((const nx_point *)b)->ts_ms;
    return (x > y) - (x < y);
}

int nx_server_series(nx_server *s, const char *tenant, const char *key, size_t key_len,
                     int64_t from_ms, int64_t to_ms, uint32_t step_s, int64_t now_ms,
                     nx_point **out, size_t *nout)
{
    nx_shard_msg *m = msgs_new(s, NX_MSG_SERIES, now_ms);
    if (!m)
        return NX_ENOMEM;
    for (int i = 0; i < s->n; i++) {
        m[i].tenant = tenant;
        m[i].tenant_len = strlen(tenant);
        m[i].key = key;
        m[i].key_len = key_len;
        m[i].from_ms = from_ms;
        m[i].to_ms = to_ms;
        m[i].step_s = step_s;
    }
    fan_out_tenant(s, m, tenant);
    size_t total = 0;
    int rc = 0, found = 0;
    for (int i = 0; i < s->n; i++) {
        total += m[i].npoints;
        found |= m[i].found;
        if (m[i].rc)
            rc = m[i].rc;
    }
    nx_point *all = malloc((total ? total : 1) * sizeof(*all));
    if (!all)
        rc = NX_ENOMEM;
    size_t k = 0;
    for (int i = 0; i < s->n; i++) {
        if (all && !rc) {
            if (m[i].npoints)
                memcpy(all + k, m[i].points, m[i].npoints * sizeof(*all));
            k += m[i].npoints;
        }
        free(m[i].points);
    }
    free(m);
    if (!rc && !found)
        rc = NX_ENOENT;
    if (rc) {
        free(all);
        return rc;
    }
    qsort(all, k, sizeof(*all), point_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (w && all[w - 1].ts_ms == all[i].ts_ms) {
            nx_point *p = &all[w - 1];
            p->count += all[i].count;
            p->sum += all[i].sum;
            p->min = fmin(p->min, all[i].min);
            p->max = fmax(p->max, all[i].max);
            continue;
        }
        all[w++] = all[i];
    }
    *out = all;
    *nout = w;
    return 0;
}

static int exp_cmp(const void *a, const void *b)
{
    const nx_export_entry *x = a, *y = b;
    int c = strcmp(x->tenant, y->tenant);
    return c ? c : strcmp(x->key, y->key);
}

int nx_server_export(nx_server *s, uint32_t window_s, int64_t now_ms, nx_export_entry **out,
                     size_t *nout)
{
    nx_shard_msg *m = msgs_new(s, NX_MSG_EXPORT, now_ms);
    if (!m)
        return NX_ENOMEM;
    for (int i = 0; i < s->n; i++)
        m[i].window_s = window_s;
    fan_out(s, m);
    void *parts[NX_SHARDS_MAX];
    size_t counts[NX_SHARDS_MAX];
    int rcs[NX_SHARDS_MAX];
    for (int i = 0; i < s->n; i++) {
        parts[i] = m[i].exp;
        counts[i] = m[i].nexp;
        rcs[i] = m[i].rc;
    }
    free(m);
    void *v = NULL;
    size_t k = 0;
    int rc = gather(s->n, parts, counts, rcs, sizeof(nx_export_entry), free_exports, &v, &k);
    if (rc)
        return rc;
    nx_export_entry *all = v;
    if (k)
        qsort(all, k, sizeof(*all), exp_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        nx_export_entry *prev = w ? &all[w - 1] : NULL;
        if (prev && exp_cmp(prev, &all[i]) == 0 && prev->type == all[i].type) {
            int r1 = nx_summary_merge(&prev->all, &all[i].all);
            int r2 = nx_summary_merge(&prev->win, &all[i].win);
            if ((r1 || r2) && !rc)
                rc = r1 ? r1 : r2;
            free(all[i].key);
            free(all[i].tenant);
            nx_summary_free(&all[i].all);
            nx_summary_free(&all[i].win);
            continue;
        }
        all[w++] = all[i];
    }
    if (rc) {
        nx_export_free(all, w);
        return rc;
    }
    *out = all;
    *nout = w;
    return 0;
}

int nx_server_engine_counts(nx_server *s, nx_engine_counts *per_shard)
{
    nx_shard_msg *m = msgs_new(s, NX_MSG_STATS, nx_now_ms());
    if (!m)
        return NX_ENOMEM;
    fan_out(s, m);
    for (int i = 0; i < s->n; i++)
        per_shard[i] = m[i].counts;
    free(m);
    return 0;
}
