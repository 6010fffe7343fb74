/*
 * nx_steer_abi.h — the contract between bpf/nx_steer.bpf.c (kernel) and
 * src/ingest/nx_steer.c (user space): map value layouts and constants.
 * Included by both sides, so it uses only <linux/types.h> types.
 *
 * Maps (all keyed by __u32):
 *   nx_socks        REUSEPORT_SOCKARRAY  shard -> socket of that shard
 *   nx_tenants      HASH                 tenant_num -> nx_steer_tenant_cfg
 *   nx_buckets      HASH                 tenant_num -> nx_steer_bucket
 *   nx_tenant_stats PERCPU_HASH          tenant_num -> nx_steer_ctr
 *   nx_shard_stats  PERCPU_ARRAY         shard -> nx_steer_ctr
 *   nx_global_stats PERCPU_ARRAY         NX_STEER_G_* -> __u64
 */
#ifndef NX_STEER_ABI_H
#define NX_STEER_ABI_H

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */

#define NX_STEER_MAX_SHARDS 64
#define NX_STEER_MAX_TENANTS 65536
#define NX_STEER_NXB_MAGIC 0x42584EA7u /* NX_NXB_MAGIC, LE bytes A7 'N' 'X' 'B' */
#define NX_STEER_NXB_TENANT_OFF 8      /* NX_NXB_OFF_TENANT */
#define NX_STEER_NXB_COUNT_OFF 12      /* NX_NXB_OFF_COUNT */
#define NX_STEER_NS 1000000000ull

/* quota kinds */
#define NX_STEER_QUOTA_NONE 0
#define NX_STEER_QUOTA_EVENTS 1 /* rate = events/s, burst = events */
#define NX_STEER_QUOTA_BYTES 2  /* rate = payload bytes/s, burst = bytes */

struct nx_steer_tenant_cfg {
    __u32 shard;     /* owner shard, < nshards */
    __u32 kind;      /* NX_STEER_QUOTA_* */
    __u64 rate;      /* tokens per second */
    __u64 burst_n;   /* bucket capacity in token-nanoseconds (burst * 1e9) */
    __u64 fill_ns;   /* burst_n / rate: refill time from empty to full */
};

/* Token bucket, in token-nanoseconds so that refill needs no division and
 * loses no fraction: tokens_n += elapsed_ns * rate (elapsed capped at
 * fill_ns, so the product never exceeds burst_n). */
struct nx_steer_bucket {
    struct bpf_spin_lock lock;
    __u32 pad;
    __u64 tokens_n;
    __u64 last_ns;   /* bpf_ktime_get_ns() = CLOCK_MONOTONIC */
};

struct nx_steer_ctr {
    __u64 accepted_pkts, accepted_events, accepted_bytes;
    __u64 dropped_pkts, dropped_events, dropped_bytes;
};

/* StatsD text: the owner shard of a datagram is FNV-1a-32 of the value of
 * its first line's DogStatsD `tenant:` tag (a tag = after '#' or ','),
 * modulo nshards. Only the first NX_STEER_TEXT_SCAN - 1 bytes are searched and
 * at most NX_STEER_TENANT_MAX bytes of the value hashed ([A-Za-z0-9_-]);
 * no tag there -> flow hash. Both sides use these definitions. */
#define NX_STEER_TEXT_SCAN 256
#define NX_STEER_TENANT_MAX 64
#define NX_STEER_FNV_INIT 2166136261u
#define NX_STEER_FNV_PRIME 16777619u

static inline int nx_steer_tenant_char(__u8 c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           (c >= 'A' && c <= 'Z');
}

/* global counters (index into nx_global_stats) */
#define NX_STEER_G_NXB 0          /* NXB datagrams seen */
#define NX_STEER_G_OTHER 1        /* non-NXB without a tenant tag: flow-hash steered */
#define NX_STEER_G_SELECT_ERR 2   /* bpf_sk_select_reuseport failed: kernel hash */
#define NX_STEER_G_STATS_FULL 3   /* tenant stats table full: not counted per tenant */
#define NX_STEER_G_DROPPED 4      /* datagrams dropped over quota */
#define NX_STEER_G_TEXT_TENANT 5  /* StatsD text steered by its tenant tag */
#define NX_STEER_G_N 6

#endif
