/*
 * nx_kstage.h — the daemon's kernel stage: steering programs on the UDP
 * reuseport groups (ingest/nx_steer.h) and per-tenant NXB quotas, for the
 * daemon's lifetime.
 *
 * Two groups are steered: the StatsD UDP group (text has no fixed-offset
 * tenant, so the program sends it by flow hash; queries merge shards) and
 * the NXB UDP group (tenant number at offset 8 -> owner shard = num % n).
 * The mode (--steer auto|ebpf|cbpf|plain) is chosen once per group at
 * start and logged with the reason (nx_steer_describe()).
 *
 * Quotas (events/s per NXB tenant number, from --tenant-quota or
 * PUT /v1/admin/quota) are enforced where the mode allows:
 *   - eBPF: in the kernel, per datagram (over quota -> SK_DROP, counted in
 *     the BPF maps); user space does not charge those datagrams again.
 *   - cBPF / plain, and every NXB TCP batch (the kernel never sees TCP
 *     frames): in user space, a per-shard nx_rl_table (src/tenant) checked
 *     once per batch before it is applied. With cBPF a tenant's datagrams
 *     reach one shard, so that shard holds the whole rate; in plain mode
 *     they spread over all shards, so each holds rate/n (nx_ratelimit.h's
 *     divisor). A batch is admitted whole or dropped whole.
 * The quota table is written under a mutex by the HTTP/config side and
 * bumps a generation counter; each shard compares the generation once per
 * batch (one relaxed atomic load) and copies the table into its own
 * buckets only when it changed, so the hot path takes no lock.
 */
#ifndef NX_KSTAGE_H
#define NX_KSTAGE_H

#include <stdint.h>
#include "ingest/nx_steer.h"
#include "server/nx_config.h"

typedef enum nx_kstage_group { NX_KS_STATSD = 0, NX_KS_NXB = 1, NX_KS_NGROUPS } nx_kstage_group;

#define NX_KSTAGE_MAX_QUOTAS 1024

typedef struct nx_kstage_quota {
    uint32_t num;
    uint64_t rate, burst; /* events/s, events; rate 0 = none */
} nx_kstage_quota;

typedef struct nx_kstage nx_kstage;

/* Quotas start from cfg->nxb_tenants; nshards = the number of shards. */
int nx_kstage_create(const nx_config *cfg, int nshards, nx_kstage **out);
/* Detaches the programs (after the shards stopped) and frees. */
void nx_kstage_destroy(nx_kstage *ks);

/* Attaches steering to a group (fds in shard order) and logs the mode.
 * Never fails for lack of privilege (falls back); NX_EINVAL for bad args. */
int nx_kstage_attach(nx_kstage *ks, nx_kstage_group g, const int *fds, int n);
/* The group's steering or NULL (not attached: listener off). */
const nx_steer *nx_kstage_steer(const nx_kstage *ks, nx_kstage_group g);
/* "ebpf", "cbpf", "plain" or "off". */
const char *nx_kstage_mode_name(const nx_kstage *ks, nx_kstage_group g);

/* Sets (rate > 0) or removes (rate 0) tenant num's quota; burst 0 = rate.
 * In eBPF mode also programs the kernel bucket. NX_EINVAL for values over
 * the limits, NX_ETOOBIG when the table is full. Thread-safe. */
int nx_kstage_set_quota(nx_kstage *ks, uint32_t num, uint64_t rate, uint64_t burst);
/* Copies up to max entries (sorted by num) into out; returns the count. */
int nx_kstage_quotas(nx_kstage *ks, nx_kstage_quota *out, int max);

/*
 * Shard thread `shard` only: may a batch of `events` events of tenant num
 * be applied? udp: it came through the (possibly kernel-limited) UDP group.
 * Returns 1 (admitted) or 0 (over quota: drop it and count it).
 */
int nx_kstage_admit(nx_kstage *ks, int shard, uint32_t num, uint32_t events, int64_t now_ms,
                    int udp);

#endif
