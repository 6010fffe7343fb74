/*
 * nx_steer.bpf.c — the kernel stage: an SK_REUSEPORT eBPF program attached
 * to the SO_REUSEPORT group of NXB/StatsD UDP sockets (one socket per shard).
 *
 * For every datagram the kernel is about to deliver to the group:
 *   1. Read 16 bytes at the start of the UDP payload (bpf_skb_load_bytes;
 *      in sk_reuseport programs skb->data is the UDP header, so the payload
 *      starts at offset 8 — checked by tests/unit/test_steer.c, which fails
 *      if any datagram lands on the wrong socket).
 *   2. Not NXB (StatsD text) -> the first line's DogStatsD `tenant:` tag
 *      (first 256 bytes) -> shard = FNV-1a(tenant) % nshards, so a tenant's
 *      datagrams meet on one core even when they come from one client
 *      socket (a flow hash would put one client's whole traffic on one
 *      shard); no tag -> flow hash % nshards. Either way any shard accepts
 *      any tenant: queries merge the shards' partial summaries.
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

/* The tenant-tag scan of a StatsD text datagram, one byte per bpf_loop
 * step (the verifier checks the step once instead of unrolling 256
 * iterations of data-dependent branches, which exceeds its budget). */
_Static_assert((NX_STEER_TEXT_SCAN & (NX_STEER_TEXT_SCAN - 1)) == 0, "scan size: power of two");
struct text_scan {
    __u8 buf[NX_STEER_TEXT_SCAN];
    __u32 len;     /* bytes loaded into buf */
    __u32 h, hn;   /* FNV-1a so far, bytes hashed */
    __u32 hashing; /* 0: searching; >1: skipping "tenant:"; 1: hashing the value */
};

static long text_scan_step(__u64 idx, void *arg)
{
    struct text_scan *t = arg;
    __u32 i = (__u32)idx;
    if (i >= t->len || i >= NX_STEER_TEXT_SCAN)
        return 1;
    /* the masks change nothing (i + 8 < NX_STEER_TEXT_SCAN where they are
     * used) but give the verifier bounds it cannot lose in a register copy */
#define TB(k) t->buf[(i + (k)) & (NX_STEER_TEXT_SCAN - 1)]
    __u8 c = TB(0);
    if (t->hashing > 1) { /* skipping the rest of "tenant:" */
        t->hashing--;
        return 0;
    }
    if (t->hashing == 1) {
        if (!nx_steer_tenant_char(c) || t->hn >= NX_STEER_TENANT_MAX)
            return 1;
        t->h = (t->h ^ c) * NX_STEER_FNV_PRIME;
        t->hn++;
        return 0;
    }
    if (c == '\n')
        return 1;
    if ((c == '#' || c == ',') && i + 8 < NX_STEER_TEXT_SCAN && i + 8 < t->len &&
        TB(1) == 't' && TB(2) == 'e' && TB(3) == 'n' && TB(4) == 'a' && TB(5) == 'n' &&
        TB(6) == 't' && TB(7) == ':')
        t->hashing = 8; /* skip 7 bytes, then hash */
    return 0;
#undef TB
}

/* The shard of a StatsD text datagram from its tenant tag; -1 if it has
 * none in the first NX_STEER_TEXT_SCAN bytes of its first line. */
static __always_inline int text_tenant_shard(struct sk_reuseport_md *md, __u32 plen, __u32 n,
                                             struct text_scan *t)
{
    /* at most NX_STEER_TEXT_SCAN - 1 bytes: the mask is the bound the
     * verifier sees on the helper's length */
    __u64 len = plen < NX_STEER_TEXT_SCAN - 1 ? plen : NX_STEER_TEXT_SCAN - 1;
    /* in asm so that the compiler cannot drop it as redundant */
    asm volatile("%[l] &= %[m]" : [l] "+r"(len) : [m] "i"(NX_STEER_TEXT_SCAN - 1));
    if (len < 9)
        return -1;
    if (bpf_skb_load_bytes(md, UDP_HLEN, t->buf, len))
        return -1;
    t->len = (__u32)len;
    t->h = NX_STEER_FNV_INIT;
    t->hn = 0;
    t->hashing = 0;
    bpf_loop(NX_STEER_TEXT_SCAN, text_scan_step, t, 0);
    if (t->hashing != 1 || t->hn == 0)
        return -1;
    return (int)(t->h % n);
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
        /* StatsD text (or anything else): by tenant tag, else flow hash */
        struct text_scan scan;
        int ts = text_tenant_shard(md, (__u32)bytes, n, &scan);
        if (ts >= 0) {
            gcount(NX_STEER_G_TEXT_TENANT);
            shard = (__u32)ts;
        } else {
            gcount(NX_STEER_G_OTHER);
            shard = md->hash % n;
        }
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
