/*
 * nx_steer.bpf.c — the kernel stage: an SK_REUSEPORT eBPF program attached
 * to the SO_REUSEPORT group of NXB/StatsD UDP sockets (one socket per shard).
 *
 * For every datagram the kernel is about to deliver to the group:
 *   1. Read 16 bytes at the start of the UDP payload (bpf_skb_load_bytes;
 *      in sk_reuseport programs skb->data is the UDP header, so the payload
 *      starts at offset 8 — checked by tests/unit/test_steer.c, which fails
 *      if any datagram lands on the wrong socket).
 *   2. Not NXB (no magic, too short: StatsD text) -> shard = flow hash %
 *      nshards. Such a tenant's streams are spread over shards; queries
 *      merge the partial summaries (summaries are mergeable exactly).
 *   3. NXB -> tenant_num at payload offset 8 -> nx_tenants gives the owner
 *      shard (default tenant_num % nshards) and the quota; the token bucket
 *      in nx_buckets is charged the batch's event count (or payload bytes);
 *      over quota -> SK_DROP (the datagram never reaches a socket buffer).
 *   4. bpf_sk_select_reuseport(nx_socks[shard]); on error SK_PASS without a
 *      selection, i.e. the kernel's own reuseport hash (counted).
 * Counters: per-tenant and per-shard accepted/dropped packets, events and
 * bytes in per-CPU maps (no atomics, no shared cache lines; user space sums
 * the CPUs), plus a few global counters.
 *
 * Concurrency: datagrams of one tenant can be processed on several CPUs at
 * once, so the bucket carries a bpf_spin_lock; the critical section is a
 * handful of arithmetic instructions (no helper calls inside). Per-CPU
 * buckets would avoid the lock but split the quota unevenly across CPUs.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "nx_steer_abi.h"

#define UDP_HLEN 8

const volatile __u32 nshards = 1; /* set by the loader before load */

struct {
    __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
    __uint(max_entries, NX_STEER_MAX_SHARDS);
    __type(key, __u32);
    __type(value, __u64);
} nx_socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, NX_STEER_MAX_TENANTS);
    __type(key, __u32);
    __type(value, struct nx_steer_tenant_cfg);
} nx_tenants SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, NX_STEER_MAX_TENANTS);
    __type(key, __u32);
    __type(value, struct nx_steer_bucket);
} nx_buckets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, NX_STEER_MAX_TENANTS);
    __type(key, __u32);
    __type(value, struct nx_steer_ctr);
} nx_tenant_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NX_STEER_MAX_SHARDS);
    __type(key, __u32);
    __type(value, struct nx_steer_ctr);
} nx_shard_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NX_STEER_G_N);
    __type(key, __u32);
    __type(value, __u64);
} nx_global_stats SEC(".maps");

struct nxb_head {
    __u32 magic;
    __u8 version, flags;
    __u16 header_len;
    __u32 tenant_num;
    __u32 event_count;
};

static __always_inline void gcount(__u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(&nx_global_stats, &idx);
    if (v)
        *v += 1;
}

static __always_inline void ctr_add(struct nx_steer_ctr *c, int ok, __u64 events, __u64 bytes)
{
    if (!c)
        return;
    if (ok) {
        c->accepted_pkts++;
        c->accepted_events += events;
        c->accepted_bytes += bytes;
    } else {
        c->dropped_pkts++;
        c->dropped_events += events;
        c->dropped_bytes += bytes;
    }
}

static __always_inline struct nx_steer_ctr *tenant_ctr(__u32 tenant)
{
    struct nx_steer_ctr *c = bpf_map_lookup_elem(&nx_tenant_stats, &tenant);
    if (c)
        return c;
    struct nx_steer_ctr zero = {};
    bpf_map_update_elem(&nx_tenant_stats, &tenant, &zero, BPF_NOEXIST); /* may race: fine */
    c = bpf_map_lookup_elem(&nx_tenant_stats, &tenant);
    if (!c)
        gcount(NX_STEER_G_STATS_FULL);
    return c;
}

/* Charges `cost` tokens; 1 if they were available. */
static __always_inline int bucket_take(__u32 tenant, const struct nx_steer_tenant_cfg *cfg,
                                       __u64 cost)
{
    __u64 now = bpf_ktime_get_ns();
    struct nx_steer_bucket *b = bpf_map_lookup_elem(&nx_buckets, &tenant);
    if (!b) {
        struct nx_steer_bucket init = {};
        init.tokens_n = cfg->burst_n;
        init.last_ns = now;
        bpf_map_update_elem(&nx_buckets, &tenant, &init, BPF_NOEXIST);
        b = bpf_map_lookup_elem(&nx_buckets, &tenant);
        if (!b)
            return 1; /* table full: fail open, the daemon still counts */
    }
    __u64 rate = cfg->rate, burst_n = cfg->burst_n, fill_ns = cfg->fill_ns;
    __u64 need = cost * NX_STEER_NS;
    int ok;
    bpf_spin_lock(&b->lock);
    __u64 el = now > b->last_ns ? now - b->last_ns : 0;
    if (el > fill_ns)
        el = fill_ns;
    __u64 t = b->tokens_n + el * rate;
    if (t > burst_n)
        t = burst_n;
    if (now > b->last_ns)
        b->last_ns = now;
    ok = t >= need;
    if (ok)
        t -= need;
    b->tokens_n = t;
    bpf_spin_unlock(&b->lock);
    return ok;
}

SEC("sk_reuseport")
int nx_steer(struct sk_reuseport_md *md)
{
    __u32 n = nshards;
    if (n == 0 || n > NX_STEER_MAX_SHARDS)
        return SK_PASS;
    __u64 bytes = md->len > UDP_HLEN ? md->len - UDP_HLEN : 0;
    struct nxb_head h;
    __u32 shard;
    if (bpf_skb_load_bytes(md, UDP_HLEN, &h, sizeof(h)) || h.magic != NX_STEER_NXB_MAGIC) {
        /* StatsD text (or anything else): spread by flow hash */
        gcount(NX_STEER_G_OTHER);
        shard = md->hash % n;
        ctr_add(bpf_map_lookup_elem(&nx_shard_stats, &shard), 1, 0, bytes);
    } else {
        gcount(NX_STEER_G_NXB);
        __u32 tenant = h.tenant_num;
        __u64 events = h.event_count;
        struct nx_steer_tenant_cfg *cfg = bpf_map_lookup_elem(&nx_tenants, &tenant);
        int ok = 1;
        shard = tenant % n;
        if (cfg) {
            if (cfg->shard < n)
                shard = cfg->shard;
            if (cfg->kind == NX_STEER_QUOTA_EVENTS)
                ok = bucket_take(tenant, cfg, events);
            else if (cfg->kind == NX_STEER_QUOTA_BYTES)
                ok = bucket_take(tenant, cfg, bytes);
        }
        ctr_add(tenant_ctr(tenant), ok, events, bytes);
        ctr_add(bpf_map_lookup_elem(&nx_shard_stats, &shard), ok, events, bytes);
        if (!ok) {
            gcount(NX_STEER_G_DROPPED);
            return SK_DROP;
        }
    }
    if (bpf_sk_select_reuseport(md, &nx_socks, &shard, 0))
        gcount(NX_STEER_G_SELECT_ERR);
    return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
