/*
 * nx_steer.h — the kernel stage's user-space half: attach a steering
 * program to a SO_REUSEPORT group of UDP sockets (one socket per shard),
 * configure per-tenant owner shards and quotas, read the kernel's counters.
 *
 * Modes, chosen once at attach time (best first) and reported by
 * nx_steer_describe() so the daemon can log the choice:
 *   NX_STEER_EBPF  bpf/nx_steer.bpf.c via libbpf skeleton: NXB datagrams go
 *                  to their tenant's owner shard (configurable, default
 *                  tenant_num % n), per-tenant token buckets drop over-quota
 *                  datagrams in the kernel, per-CPU counters. Needs
 *                  CAP_BPF/CAP_NET_ADMIN (root).
 *   NX_STEER_CBPF  classic BPF via SO_ATTACH_REUSEPORT_CBPF (unprivileged):
 *                  NXB datagrams to socket tenant_num % n, StatsD text to
 *                  FNV-1a(tenant tag) % n (nx_steer_text_shard), others hashed.
 *                  No owner-shard override, no kernel quotas, no counters.
 *   NX_STEER_PLAIN the kernel's reuseport hash (4-tuple): every datagram
 *                  lands on some socket; tenants spread over shards.
 * In every mode the answers are the same: queries merge partial summaries
 * across shards; steering only makes a tenant's NXB events shard-local.
 *
 * The fds must be bound, in shard order, to the same address with
 * SO_REUSEPORT before the call (the cBPF program returns an index into the
 * kernel's group array, which is in bind order). The sockets stay owned by
 * the caller; nx_steer_detach() frees the program and maps only.
 * Not thread-safe for configuration; counter reads may run concurrently
 * with the datagram path (they read the kernel maps).
 */
#ifndef NX_STEER_H
#define NX_STEER_H

#include <stdint.h>
#include "nexus.h"

typedef enum nx_steer_mode {
    NX_STEER_AUTO = 0,  /* best available */
    NX_STEER_EBPF = 1,
    NX_STEER_CBPF = 2,
    NX_STEER_PLAIN = 3,
} nx_steer_mode;

typedef enum nx_steer_quota_kind {
    NX_STEER_QUOTA_KIND_NONE = 0,
    NX_STEER_QUOTA_KIND_EVENTS = 1, /* rate: events/s, burst: events */
    NX_STEER_QUOTA_KIND_BYTES = 2,  /* rate: payload bytes/s, burst: bytes */
} nx_steer_quota_kind;

typedef struct nx_steer nx_steer;

typedef struct nx_steer_counters {
    uint64_t accepted_pkts, accepted_events, accepted_bytes;
    uint64_t dropped_pkts, dropped_events, dropped_bytes; /* over quota */
} nx_steer_counters;

typedef struct nx_steer_global {
    uint64_t nxb_pkts;    /* NXB datagrams seen by the program */
    uint64_t other_pkts;  /* non-NXB without a tenant tag, flow-hash steered */
    uint64_t text_tenant_pkts; /* StatsD text steered by its `tenant:` tag */
    uint64_t select_err;  /* socket selection failed (kernel hash used) */
    uint64_t stats_full;  /* tenant counter table full */
    uint64_t dropped_pkts;/* over quota */
} nx_steer_global;

#define NX_STEER_MAX_SHARDS_API 64

/*
 * Attaches steering to the group fds[0..n) (n in 1..64). `want` =
 * NX_STEER_AUTO tries eBPF, then cBPF, then plain; a specific mode tries
 * that one and the ones after it. Fails only for bad arguments or
 * allocation failure: plain mode always works.
 */
int nx_steer_attach(const int *fds, uint32_t n, nx_steer_mode want, nx_steer **out);
void nx_steer_detach(nx_steer *s);

nx_steer_mode nx_steer_mode_of(const nx_steer *s);
const char *nx_steer_mode_name(nx_steer_mode m); /* "ebpf", "cbpf", "plain" */
/* e.g. "ebpf (4 shards)" or "cbpf (ebpf unavailable: Operation not permitted)". */
const char *nx_steer_describe(const nx_steer *s);

/*
 * Sets a tenant's owner shard and quota (eBPF mode only; NX_EINVAL in the
 * other modes, where the daemon must enforce quotas itself). kind NONE
 * removes the quota; rate 0 with a quota drops everything past the burst.
 * Changing the quota refills the bucket to `burst`.
 */
int nx_steer_set_tenant(nx_steer *s, uint32_t tenant_num, uint32_t shard,
                        nx_steer_quota_kind kind, uint64_t rate, uint64_t burst);
/* Forgets a tenant's configuration (back to tenant_num % n, no quota). */
int nx_steer_clear_tenant(nx_steer *s, uint32_t tenant_num);

/* The shard whose socket receives NXB datagrams of this tenant, or -1 when
 * the mode does not steer by tenant (plain). */
int nx_steer_shard_of(const nx_steer *s, uint32_t tenant_num);

/* The shard the eBPF program picks for a StatsD text datagram (the same
 * scan and hash, nx_steer_abi.h), or -1 when it has no tenant tag in its
 * first line's first NX_STEER_TEXT_SCAN bytes (then: flow hash). */
int nx_steer_text_shard(const void *payload, size_t len, uint32_t nshards);

/* Kernel counters summed over CPUs (eBPF mode; NX_EINVAL otherwise).
 * A tenant never seen reads as zeros. */
int nx_steer_tenant_counters(const nx_steer *s, uint32_t tenant_num, nx_steer_counters *out);
int nx_steer_shard_counters(const nx_steer *s, uint32_t shard, nx_steer_counters *out);
int nx_steer_global_counters(const nx_steer *s, nx_steer_global *out);

#endif
