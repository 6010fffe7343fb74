/*
 * nx_kstage.c — steering per UDP group and NXB quotas (see nx_kstage.h).
 */
#include "server/nx_kstage.h"
#include "server/nx_log.h"
#include "tenant/nx_ratelimit.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct shard_rl {
    nx_rl_table *t;   /* owned by shard thread i */
    uint64_t gen;     /* generation of the table copied into t */
    char pad[48];     /* keep shards' entries on separate cache lines */
} shard_rl;

struct nx_kstage {
    int n;
    nx_steer_mode want;
    nx_steer *steer[NX_KS_NGROUPS];
    pthread_mutex_t mu;          /* quotas, nq, steer configuration */
    nx_kstage_quota *quotas;     /* NX_KSTAGE_MAX_QUOTAS, sorted by num */
    int nq;
    _Atomic uint64_t gen;        /* bumped on every quota change */
    shard_rl *rl;                /* n */
};

static nx_steer_mode mode_of(const char *s)
{
    if (!strcmp(s, "ebpf"))
        return NX_STEER_EBPF;
    if (!strcmp(s, "cbpf"))
        return NX_STEER_CBPF;
    if (!strcmp(s, "plain"))
        return NX_STEER_PLAIN;
    return NX_STEER_AUTO;
}

static int quota_find(const nx_kstage *ks, uint32_t num)
{
    for (int i = 0; i < ks->nq; i++)
        if (ks->quotas[i].num == num)
            return i;
    return -1;
}

/* Writes the entry (mutex held). */
static int quota_put(nx_kstage *ks, uint32_t num, uint64_t rate, uint64_t burst)
{
    int i = quota_find(ks, num);
    if (i < 0) {
        if (rate == 0)
            return 0;
        if (ks->nq == NX_KSTAGE_MAX_QUOTAS)
            return NX_ETOOBIG;
        i = ks->nq++;
        while (i > 0 && ks->quotas[i - 1].num > num) {
            ks->quotas[i] = ks->quotas[i - 1];
            i--;
        }
    }
    ks->quotas[i] = (nx_kstage_quota){.num = num, .rate = rate, .burst = burst};
    return 0;
}

int nx_kstage_create(const nx_config *cfg, int nshards, nx_kstage **out)
{
    nx_kstage *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return NX_ENOMEM;
    ks->n = nshards;
    ks->want = mode_of(cfg->steer);
    pthread_mutex_init(&ks->mu, NULL);
    ks->quotas = calloc(NX_KSTAGE_MAX_QUOTAS, sizeof(*ks->quotas));
    ks->rl = calloc((size_t)nshards, sizeof(*ks->rl));
    if (!ks->quotas || !ks->rl) {
        nx_kstage_destroy(ks);
        return NX_ENOMEM;
    }
    for (int i = 0; i < nshards; i++)
        if (nx_rl_table_create(16, &ks->rl[i].t)) {
            nx_kstage_destroy(ks);
            return NX_ENOMEM;
        }
    for (uint32_t i = 0; i < cfg->nxb_ntenants; i++) {
        const nx_nxb_tenant_cfg *t = &cfg->nxb_tenants[i];
        if (t->rate)
            quota_put(ks, t->num, t->rate, t->burst ? t->burst : t->rate);
    }
    atomic_store(&ks->gen, 1);
    *out = ks;
    return 0;
}

void nx_kstage_destroy(nx_kstage *ks)
{
    if (!ks)
        return;
    for (int g = 0; g < NX_KS_NGROUPS; g++)
        if (ks->steer[g])
            nx_steer_detach(ks->steer[g]);
    if (ks->rl)
        for (int i = 0; i < ks->n; i++)
            nx_rl_table_destroy(ks->rl[i].t);
    free(ks->rl);
    free(ks->quotas);
    pthread_mutex_destroy(&ks->mu);
    free(ks);
}

static int kernel_quota(nx_kstage *ks, uint32_t num, uint64_t rate, uint64_t burst)
{
    nx_steer *s = ks->steer[NX_KS_NXB];
    if (!s || nx_steer_mode_of(s) != NX_STEER_EBPF)
        return 0;
    uint32_t shard = (uint32_t)(num % (uint32_t)ks->n);
    if (rate == 0)
        return nx_steer_set_tenant(s, num, shard, NX_STEER_QUOTA_KIND_NONE, 0, 0);
    return nx_steer_set_tenant(s, num, shard, NX_STEER_QUOTA_KIND_EVENTS, rate, burst);
}

int nx_kstage_attach(nx_kstage *ks, nx_kstage_group g, const int *fds, int n)
{
    assert(g >= 0 && g < NX_KS_NGROUPS && !ks->steer[g]);
    static const char *const names[] = {"statsd-udp", "nxb-udp"};
    int rc = nx_steer_attach(fds, (uint32_t)n, ks->want, &ks->steer[g]);
    if (rc) {
        /* e.g. more shards than the programs support: kernel hash it is */
        nx_log(NX_LOG_WARN, "steering not attached", "group=%s shards=%d err=%s mode=plain",
               names[g], n, nx_errname(rc));
        ks->steer[g] = NULL;
        return 0;
    }
    nx_log(NX_LOG_INFO, "kernel stage", "group=%s steer=%s wanted=%s detail=\"%s\"", names[g],
           nx_steer_mode_name(nx_steer_mode_of(ks->steer[g])),
           ks->want == NX_STEER_AUTO ? "auto" : nx_steer_mode_name(ks->want),
           nx_steer_describe(ks->steer[g]));
    if (g == NX_KS_NXB) {
        pthread_mutex_lock(&ks->mu);
        for (int i = 0; i < ks->nq; i++) {
            rc = kernel_quota(ks, ks->quotas[i].num, ks->quotas[i].rate, ks->quotas[i].burst);
            if (rc)
                nx_log(NX_LOG_WARN, "kernel quota not set", "num=%u err=%s", ks->quotas[i].num,
                       nx_errname(rc));
        }
        pthread_mutex_unlock(&ks->mu);
    }
    return 0;
}

const nx_steer *nx_kstage_steer(const nx_kstage *ks, nx_kstage_group g)
{
    return ks->steer[g];
}

const char *nx_kstage_mode_name(const nx_kstage *ks, nx_kstage_group g)
{
    return ks->steer[g] ? nx_steer_mode_name(nx_steer_mode_of(ks->steer[g])) : "off";
}

int nx_kstage_set_quota(nx_kstage *ks, uint32_t num, uint64_t rate, uint64_t burst)
{
    if (burst == 0)
        burst = rate;
    if (rate > NX_RL_MAX_RATE || burst > NX_RL_MAX_BURST)
        return NX_EINVAL;
    pthread_mutex_lock(&ks->mu);
    int rc = quota_put(ks, num, rate, burst);
    if (!rc)
        rc = kernel_quota(ks, num, rate, burst);
    atomic_fetch_add(&ks->gen, 1);
    pthread_mutex_unlock(&ks->mu);
    return rc;
}

int nx_kstage_quotas(nx_kstage *ks, nx_kstage_quota *out, int max)
{
    pthread_mutex_lock(&ks->mu);
    int n = ks->nq < max ? ks->nq : max;
    memcpy(out, ks->quotas, (size_t)n * sizeof(*out));
    pthread_mutex_unlock(&ks->mu);
    return n;
}

/* Copies the quota table into shard i's buckets (shard thread, on change). */
static void reload(nx_kstage *ks, shard_rl *r, int64_t now_ns)
{
    nx_steer *s = ks->steer[NX_KS_NXB];
    uint32_t div = s && nx_steer_mode_of(s) == NX_STEER_PLAIN ? (uint32_t)ks->n : 1;
    pthread_mutex_lock(&ks->mu);
    r->gen = atomic_load(&ks->gen);
    for (int i = 0; i < ks->nq; i++)
        nx_rl_table_set(r->t, ks->quotas[i].num, ks->quotas[i].rate, ks->quotas[i].burst, div,
                        now_ns);
    pthread_mutex_unlock(&ks->mu);
}

int nx_kstage_admit(nx_kstage *ks, int shard, uint32_t num, uint32_t events, int64_t now_ms,
                    int udp)
{
    assert(shard >= 0 && shard < ks->n);
    if (udp) {
        const nx_steer *s = ks->steer[NX_KS_NXB];
        if (s && nx_steer_mode_of(s) == NX_STEER_EBPF)
            return 1; /* the kernel charged it already */
    }
    shard_rl *r = &ks->rl[shard];
    int64_t now_ns = now_ms * 1000000;
    if (atomic_load_explicit(&ks->gen, memory_order_acquire) != r->gen)
        reload(ks, r, now_ns);
    if (events == 0)
        return 1;
    return nx_rl_table_take(r->t, num, now_ns, events) == events;
}
