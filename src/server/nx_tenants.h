/*
 * nx_tenants.h — the tenant registry (src/tenant) wired into the daemon:
 * startup, the shards' per-batch tenant gate, and cross-shard tenant
 * operations (delete, per-tenant counts).
 *
 * Startup (nx_tenants_open, called by nexusd's main before the server is
 * created): creates the data directory, opens <data-dir>/tenants.json
 * (a corrupt file is fatal: never run with a partial registry), sets up the
 * admin token (--admin-token-file, else env NEXUS_ADMIN_TOKEN, else
 * <data-dir>/admin.token, generated if absent; never from argv) and logs
 * where it is. The registry then travels in nx_config.registry.
 *
 * Shards (nx_shard_tenants): each shard owns an nx_rl_table (tenant num ->
 * events/s bucket) and installs a gate on its applier. User-space quotas
 * (events/s, max_streams, max_bytes) are PER SHARD, each with the full
 * quota (divisor 1): exact whenever a tenant's traffic reaches one shard
 * (eBPF/cBPF steering, one StatsD client socket — SO_REUSEPORT hashes a
 * socket to one shard —, HTTP ingest, which goes to the tenant's home
 * shard), at most nshards times the quota when plain SO_REUSEPORT spreads
 * many client sockets of one tenant over every shard. The alternative,
 * rate/nshards per shard, never over-admits but gives a single client a
 * fraction of its quota; isolation (others unaffected) holds either way. Once per batch and
 * tenant the gate (1) refreshes the buckets if the registry's generation
 * moved (one atomic load otherwise), (2) looks the tenant up: registered
 * tenants pass with their num and engine limits (max_streams, max_bytes,
 * applied to the engine tenant right away, so a quota change takes effect
 * on the tenant's next batch); `default` passes only while the default
 * tenant is enabled; any other valid id passes only in embedded-default
 * mode (no tenant registered, default not disabled) — else the line is
 * rejected as unknown_tenant and no engine state is created. Then every
 * line takes its values from the tenant's bucket (rate_limited when empty).
 * Cost per batch: one registry read lock per distinct tenant; per event:
 * one bucket probe, no lock, no allocation.
 *
 * Kernel stage (NXB/eBPF steering, wired separately): mirror the registry
 * with nx_registry_set_observer (create/delete/quota changes),
 * nx_registry_get_num and nx_registry_foreach; when the kernel enforces
 * events/s, the user-space buckets are redundant but harmless.
 */
#ifndef NX_TENANTS_H
#define NX_TENANTS_H

#include <stddef.h>
#include <stdint.h>
#include "nexus.h"
#include "server/nx_apply.h"
#include "server/nx_config.h"
#include "tenant/nx_registry.h"

struct nx_server;
struct nx_shard_msg;

/* Opens the registry and the admin token for cfg (logs every failure).
 * 0 or a negative NX_E* code: nexusd must then exit non-zero. */
int nx_tenants_open(const nx_config *cfg, nx_registry **out);

/* Embedded-default mode: no registry, or no tenant registered and the
 * default tenant not disabled. Any valid tenant id is then accepted (StatsD
 * `tenant:` tags, HTTP `?tenant=` on loopback), as before tenants existed. */
bool nx_tenants_embedded(nx_registry *reg);

/* The shard that takes a token tenant's small HTTP ingest bodies (FNV-1a of
 * the id): user-space quotas are per shard, so keeping a tenant on one shard
 * makes max_streams / max_bytes / events/s exact for HTTP ingest. */
unsigned nx_tenants_home_shard(const char *id, int nshards);

/* ---- shard side ----------------------------------------------------------- */

typedef struct nx_shard_tenants {
    nx_registry *reg; /* NULL: no gate (open mode) */
    nx_rl_table *rl;
    uint64_t seen_gen;
    uint32_t divisor;
    uint64_t mode_gen; /* registry generation of the two flags below */
    bool embedded;     /* nx_tenants_embedded() */
    bool default_on;   /* nx_registry_default_enabled() */
    uint32_t dflt_max_streams; /* engine config: when a quota is 0 */
    uint64_t dflt_max_bytes;
} nx_shard_tenants;

/* Uses cfg->registry (NULL: nothing is installed). divisor: each shard's
 * bucket holds rate/divisor (1 today, see above; 0 is taken as 1). A quota
 * of 0 (unlimited) for max_streams / max_bytes falls back to the engine's
 * --max-streams-per-tenant / max_bytes_per_tenant. */
int nx_shard_tenants_init(nx_shard_tenants *st, const nx_config *cfg, uint32_t divisor);
void nx_shard_tenants_free(nx_shard_tenants *st);
/* Installs the gate on the shard's applier (no-op without a registry). */
void nx_shard_tenants_install(nx_shard_tenants *st, nx_applier *a);

/* What one tenant did (one shard's part, or merged over all shards). */
typedef struct nx_tenant_counts {
    char id[NX_TENANT_ID_MAX + 1];
    uint32_t num;            /* 0 for `default` and unregistered (embedded mode) */
    uint64_t streams, bytes; /* engine accounting */
    uint64_t events;         /* values applied */
    uint64_t rejected_quota; /* new streams refused by max_streams / max_bytes */
    uint64_t rate_accepted;  /* events/s bucket: values granted */
    uint64_t rate_dropped;   /* values refused (rate_limited) */
} nx_tenant_counts;

/* Shard thread: answers NX_MSG_TENANT_DELETE / NX_MSG_TENANT_STATS. */
int nx_shard_tenants_handle(nx_shard_tenants *st, nx_engine *e, struct nx_shard_msg *m);

/* ---- server side (fan-out over every shard's mailbox) ------------------- */

/* Frees tenant id's engine state and events/s bucket on every shard. */
int nx_server_tenant_delete(struct nx_server *s, const char *id, uint32_t num);
/* Per-tenant counts merged over shards, sorted by id; id NULL = every
 * tenant with state. *out is malloc'ed (free()). A tenant without state
 * yields n == 0. */
int nx_server_tenant_counts(struct nx_server *s, const char *id, nx_tenant_counts **out,
                            size_t *n);

#endif
