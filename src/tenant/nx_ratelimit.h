/*
 * nx_ratelimit.h — token buckets for per-tenant quotas (events/s, HTTP
 * requests/s), exact integer arithmetic, time passed in by the caller.
 *
 * Design
 * - A bucket holds at most `burst` tokens and refills at `rate` tokens/s.
 *   Levels are integers in units of 1/(1e9 * divisor) token, time in ns:
 *   each ns adds `rate` units, a token costs 1e9 * divisor units, so a bucket
 *   split over `divisor` shards refills at exactly rate/divisor tokens/s
 *   with no rounding drift (a fake clock gives exact, reproducible counts:
 *   the unit tests rely on it).
 * - nx_rl is single-owner and lock-free by construction: no atomics. Shards
 *   are single-threaded, so the user-space event limiter is one nx_rl_table
 *   per shard (a tenant -> bucket hash table) holding rate/nshards (divisor =
 *   nshards) when a tenant's traffic is spread over all shards (plain
 *   SO_REUSEPORT hashing), or the full rate (divisor = 1) when the eBPF/cBPF
 *   stage steers each tenant to its owning shard. A per-shard bucket never
 *   holds less than one token, so a tiny burst split over many shards still
 *   admits events (effective burst is then up to nshards tokens; documented
 *   in docs/tenants.md).
 * - The HTTP request limiter lives in the registry (nx_registry_http_admit),
 *   one bucket per tenant behind a per-tenant spin flag: HTTP threads are
 *   few and the critical section is a dozen instructions.
 * - Batch first (DPDK style): nx_rl_take(n) grants up to n tokens and returns
 *   how many, so a datagram of n lines costs one call.
 * - rate == 0 means unlimited. burst == 0 means "one second's worth".
 * - The clock may go backwards (CLOCK_REALTIME steps): refill then adds
 *   nothing and the stored time is kept, so no tokens are minted.
 */
#ifndef NX_RATELIMIT_H
#define NX_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NX_RL_MAX_RATE 1000000000ull   /* tokens/s */
#define NX_RL_MAX_BURST 10000000000ull /* tokens: burst * 1e9 must fit u64 */
#define NX_RL_MAX_DIVISOR 4096u

typedef struct nx_rl {
    uint64_t level;  /* units (see above), <= cap */
    uint64_t cap;    /* max(burst * 1e9, cost) */
    uint64_t rate;   /* units per ns == tokens per second; 0 = unlimited */
    uint64_t cost;   /* units per token: 1e9 * divisor */
    int64_t last_ns; /* time of the last refill */
} nx_rl;

/* Starts full. NX_EINVAL if rate/burst/divisor are over the limits above or
 * divisor is 0. */
int nx_rl_init(nx_rl *rl, uint64_t rate_per_s, uint64_t burst, uint32_t divisor,
               int64_t now_ns);
/* Changes rate/burst/divisor, keeping the fraction of tokens held (so a
 * quota change neither mints a burst nor empties the bucket). */
int nx_rl_reconfigure(nx_rl *rl, uint64_t rate_per_s, uint64_t burst, uint32_t divisor,
                      int64_t now_ns);
/* Grants up to n tokens; returns how many (0..n). */
uint32_t nx_rl_take(nx_rl *rl, int64_t now_ns, uint32_t n);
static inline bool nx_rl_admit(nx_rl *rl, int64_t now_ns)
{
    return nx_rl_take(rl, now_ns, 1) == 1;
}
/* Whole tokens available now (after refill). UINT64_MAX when unlimited. */
uint64_t nx_rl_available(nx_rl *rl, int64_t now_ns);
/* Seconds until n tokens are available (for Retry-After), rounded up; 0 if
 * available now. */
uint64_t nx_rl_wait_s(nx_rl *rl, int64_t now_ns, uint32_t n);

/* ---- per-shard table: tenant num -> bucket + counters ---------------- */

typedef struct nx_rl_table nx_rl_table;

typedef struct nx_rl_counts {
    uint64_t accepted; /* tokens granted */
    uint64_t dropped;  /* tokens refused */
} nx_rl_counts;

int nx_rl_table_create(size_t capacity_hint, nx_rl_table **out);
void nx_rl_table_destroy(nx_rl_table *t);
/* Adds or reconfigures the bucket of tenant `num` (rate 0 removes the limit
 * but keeps the counters). Allocates only when the table grows. */
int nx_rl_table_set(nx_rl_table *t, uint32_t num, uint64_t rate_per_s, uint64_t burst,
                    uint32_t divisor, int64_t now_ns);
/* Forgets a tenant (deleted). NX_ENOENT if absent. */
int nx_rl_table_remove(nx_rl_table *t, uint32_t num);
/* The hot-path call: grants up to n events of tenant `num`; tenants without
 * a bucket are unlimited (all n granted, not counted). No allocation, no
 * lock, no syscall. */
uint32_t nx_rl_table_take(nx_rl_table *t, uint32_t num, int64_t now_ns, uint32_t n);
/* Counters of one tenant; NX_ENOENT if it has no bucket. */
int nx_rl_table_counts(const nx_rl_table *t, uint32_t num, nx_rl_counts *out);
size_t nx_rl_table_size(const nx_rl_table *t);
/* Calls fn for each tenant num in the table (fn may not modify the table). */
void nx_rl_table_foreach(const nx_rl_table *t,
                         void (*fn)(uint32_t num, const nx_rl_counts *c, void *arg),
                         void *arg);

#endif
