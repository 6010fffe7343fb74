/*
 * nx_tenants.c — the tenant registry in the daemon: startup, the shards'
 * tenant gate and events/s buckets, cross-shard delete and counts (see
 * nx_tenants.h for the design).
 */
#include "server/nx_tenants.h"
#include "common/nx_fs.h"
#include "server/nx_log.h"
#include "server/nx_server.h"
#include "server/nx_shard.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- startup ------------------------------------------------------------- */

int nx_tenants_open(const nx_config *cfg, nx_registry **out)
{
    *out = NULL;
    if (!cfg->data_dir[0]) {
        /* --data-dir off: nothing may be persisted, so no tenants can be
         * registered; the daemon runs in open mode (tenant `default` and
         * tokenless tenant ids, loopback), admin endpoints answer 403. */
        nx_log(NX_LOG_WARN, "no data directory: tenant registry disabled, open mode", NULL);
        return 0;
    }
    if (nx_mkdirs(cfg->data_dir, 0755) < 0) {
        nx_log(NX_LOG_ERROR, "cannot create data dir", "dir=\"%s\" errno=\"%s\"", cfg->data_dir,
               strerror(errno));
        return NX_EIO;
    }
    nx_registry_options o = {.data_dir = cfg->data_dir,
                             .default_policy = cfg->allow_default ? NX_DEFAULT_ON : NX_DEFAULT_AUTO};
    char err[512] = "";
    nx_registry *r = NULL;
    int rc = nx_registry_open(&o, &r, err, sizeof(err));
    if (rc) {
        nx_log(NX_LOG_ERROR, "cannot open the tenant registry", "error=\"%s\" detail=\"%s\"",
               nx_strerror(rc), err);
        return rc;
    }
    bool insecure = false;
    char used[PATH_MAX] = "";
    const char *env = getenv("NEXUS_ADMIN_TOKEN");
    rc = nx_registry_admin_setup(r, cfg->admin_token_file[0] ? cfg->admin_token_file : NULL, env,
                                 &insecure, used, sizeof(used), err, sizeof(err));
    if (rc) {
        nx_log(NX_LOG_ERROR, "cannot set up the admin token", "error=\"%s\" detail=\"%s\"",
               nx_strerror(rc), err);
        nx_registry_close(r);
        return rc;
    }
    if (insecure)
        nx_log(NX_LOG_WARN, "admin token file is readable by group or others (chmod 600)",
               "file=\"%s\"", used);
    nx_log(NX_LOG_INFO, "tenant registry open", "tenants=%zu admin_token=\"%s\" default_tenant=%s",
           nx_registry_count(r), used[0] ? used : "env NEXUS_ADMIN_TOKEN",
           cfg->allow_default ? "on" : (nx_registry_default_enabled(r) ? "auto(on)" : "auto(off)"));
    *out = r;
    return 0;
}

unsigned nx_tenants_home_shard(const char *id, int nshards)
{
    uint32_t h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (uint8_t)*id) * 16777619u;
    return nshards > 0 ? h % (unsigned)nshards : 0;
}

bool nx_tenants_embedded(nx_registry *reg)
{
    return !reg || (nx_registry_count(reg) == 0 && nx_registry_default_enabled(reg));
}

/* ---- shard side ----------------------------------------------------------- */

static int gate(void *arg, const nx_batch *b, const char *id, size_t len, nx_tenant_gate *g)
{
    nx_shard_tenants *st = arg;
    /* one atomic load when nothing changed; failure (ENOMEM) keeps the old buckets */
    (void)nx_registry_sync_limits(st->reg, st->rl, st->divisor, b->recv_ms * 1000000,
                                  &st->seen_gen);
    uint64_t gen = nx_registry_generation(st->reg);
    if (gen != st->mode_gen) { /* a later change moves gen again: never stale for long */
        st->mode_gen = gen;
        st->default_on = nx_registry_default_enabled(st->reg);
        st->embedded = nx_tenants_embedded(st->reg);
    }
    if (st->embedded) {
        /* no tenant registered: any valid id, sharing the default tenant's
         * quotas (num 0, unlimited unless configured) — no registry lock */
        g->num = 0;
        g->max_streams = st->dflt_max_streams;
        g->max_bytes = st->dflt_max_bytes;
        return NX_SD_OK;
    }
    nx_tenant_info info;
    if (nx_registry_get(st->reg, id, len, &info) != 0)
        return NX_SD_UNKNOWN_TENANT;
    if (info.num == 0 && !st->default_on)
        return NX_SD_UNKNOWN_TENANT;
    g->num = info.num;
    g->max_streams = info.quotas.max_streams ? info.quotas.max_streams : st->dflt_max_streams;
    g->max_bytes = info.quotas.max_bytes ? info.quotas.max_bytes : st->dflt_max_bytes;
    return NX_SD_OK;
}

static uint32_t take(void *arg, uint32_t num, uint32_t n, int64_t recv_ms)
{
    nx_shard_tenants *st = arg;
    return nx_rl_table_take(st->rl, num, recv_ms * 1000000, n);
}

int nx_shard_tenants_init(nx_shard_tenants *st, const nx_config *cfg, uint32_t divisor)
{
    memset(st, 0, sizeof(*st));
    nx_registry *reg = cfg->registry;
    st->dflt_max_streams = cfg->engine.max_streams_per_tenant;
    st->dflt_max_bytes = cfg->engine.max_bytes_per_tenant;
    if (!reg)
        return 0;
    if (divisor == 0 || divisor > NX_RL_MAX_DIVISOR)
        divisor = 1;
    st->reg = reg;
    st->divisor = divisor;
    st->seen_gen = UINT64_MAX; /* first batch loads the buckets and the mode */
    st->mode_gen = UINT64_MAX;
    return nx_rl_table_create(64, &st->rl);
}

void nx_shard_tenants_free(nx_shard_tenants *st)
{
    if (st->rl)
        nx_rl_table_destroy(st->rl);
    st->rl = NULL;
}

void nx_shard_tenants_install(nx_shard_tenants *st, nx_applier *a)
{
    if (!st->reg)
        return;
    a->gate = gate;
    a->take = take;
    a->gate_arg = st;
}

typedef struct collect_ctx {
    nx_shard_tenants *st;
    nx_tenant_counts *v;
    size_t n, cap;
    int err;
} collect_ctx;

static int collect(nx_tenant *t, void *arg)
{
    collect_ctx *cc = arg;
    if (cc->n == cc->cap) {
        size_t nc = cc->cap ? cc->cap * 2 : 16;
        nx_tenant_counts *p = realloc(cc->v, nc * sizeof(*p));
        if (!p) {
            cc->err = NX_ENOMEM;
            return 1;
        }
        cc->v = p;
        cc->cap = nc;
    }
    nx_tenant_counts *c = &cc->v[cc->n++];
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", nx_tenant_id(t));
    nx_tenant_stats ts;
    nx_tenant_get_stats(t, &ts);
    c->streams = ts.streams;
    c->bytes = ts.bytes;
    c->events = ts.events;
    c->rejected_quota = ts.rejected_quota;
    nx_tenant_info info;
    if (cc->st->reg && nx_registry_get(cc->st->reg, c->id, strlen(c->id), &info) == 0) {
        c->num = info.num;
        nx_rl_counts rc;
        if (nx_rl_table_counts(cc->st->rl, info.num, &rc) == 0 && info.num != 0) {
            c->rate_accepted = rc.accepted;
            c->rate_dropped = rc.dropped;
        }
    }
    return 0;
}

int nx_shard_tenants_handle(nx_shard_tenants *st, nx_engine *e, nx_shard_msg *m)
{
    if (m->kind == NX_MSG_TENANT_DELETE) {
        assert(m->tenant);
        int rc = nx_engine_tenant_delete(e, m->tenant, m->tenant_len);
        if (st->rl && m->num != 0)
            (void)nx_rl_table_remove(st->rl, m->num);
        return rc == NX_ENOENT ? 0 : rc;
    }
    assert(m->kind == NX_MSG_TENANT_STATS);
    collect_ctx cc = {.st = st};
    if (m->tenant) {
        nx_tenant *t = nx_engine_tenant_find(e, m->tenant, m->tenant_len);
        if (t)
            collect(t, &cc);
    } else {
        nx_engine_foreach_tenant(e, collect, &cc);
    }
    m->tcounts = cc.v;
    m->ntcounts = cc.n;
    return cc.err;
}

/* ---- server side ---------------------------------------------------------- */

static int fan_out(nx_server *s, nx_shard_msg *m)
{
    int n = nx_server_nshards(s);
    nx_waiter w;
    nx_waiter_init(&w, n);
    for (int i = 0; i < n; i++) {
        m[i].waiter = &w;
        nx_shard_post(nx_server_shard(s, i), &m[i]);
    }
    nx_waiter_wait(&w);
    nx_waiter_destroy(&w);
    int rc = 0;
    for (int i = 0; i < n; i++)
        if (m[i].rc && !rc)
            rc = m[i].rc;
    return rc;
}

int nx_server_tenant_delete(nx_server *s, const char *id, uint32_t num)
{
    int n = nx_server_nshards(s);
    nx_shard_msg *m = calloc((size_t)n, sizeof(*m));
    if (!m)
        return NX_ENOMEM;
    for (int i = 0; i < n; i++) {
        m[i].kind = NX_MSG_TENANT_DELETE;
        m[i].tenant = id;
        m[i].tenant_len = strlen(id);
        m[i].num = num;
    }
    int rc = fan_out(s, m);
    free(m);
    return rc;
}

static int counts_cmp(const void *a, const void *b)
{
    return strcmp(((const nx_tenant_counts *)a)->id, ((const nx_tenant_counts *)b)->id);
}

int nx_server_tenant_counts(nx_server *s, const char *id, nx_tenant_counts **out, size_t *nout)
{
    int n = nx_server_nshards(s);
    nx_shard_msg *m = calloc((size_t)n, sizeof(*m));
    if (!m)
        return NX_ENOMEM;
    for (int i = 0; i < n; i++) {
        m[i].kind = NX_MSG_TENANT_STATS;
        m[i].tenant = id;
        m[i].tenant_len = id ? strlen(id) : 0;
    }
    int rc = fan_out(s, m);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += m[i].ntcounts;
    nx_tenant_counts *all = malloc((total ? total : 1) * sizeof(*all));
    if (!all && !rc)
        rc = NX_ENOMEM;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (all && m[i].ntcounts) {
            memcpy(all + k, m[i].tcounts, m[i].ntcounts * sizeof(*all));
            k += m[i].ntcounts;
        }
        free(m[i].tcounts);
    }
    free(m);
    if (rc) {
        free(all);
        return rc;
    }
    if (k)
        qsort(all, k, sizeof(*all), counts_cmp);
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
        if (w && strcmp(all[w - 1].id, all[i].id) == 0) {
            nx_tenant_counts *p = &all[w - 1];
            p->streams += all[i].streams;
            p->bytes += all[i].bytes;
            p->events += all[i].events;
            p->rejected_quota += all[i].rejected_quota;
            p->rate_accepted += all[i].rate_accepted;
            p->rate_dropped += all[i].rate_dropped;
            continue;
        }
        all[w++] = all[i];
    }
    *out = all;
    *nout = w;
    return 0;
}
