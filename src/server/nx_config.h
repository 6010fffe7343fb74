/*
 * nx_config.h — nexusd's configuration: defaults, command-line flags and the
 * optional config file.
 *
 * Precedence: built-in defaults < config file (--config FILE) < flags. The
 * config file holds `key = value` lines whose keys are the long flag names
 * without the leading dashes (`http = 127.0.0.1:9090`); '#' starts a comment.
 * Both go through one table (nx_config_set), so every flag is a config key
 * and vice versa. A listener address of "" or "off" disables that listener.
 * Reference: docs/config.md.
 */
#ifndef NX_CONFIG_H
#define NX_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include "nexus.h"
#include "ingest/nx_statsd.h"

#define NX_ADDR_MAX 128
#define NX_NXB_TENANTS_MAX 64

/* One NXB tenant: numeric id -> tenant id (--nxb-tenant NUM:ID) and/or its
 * events/s quota (--tenant-quota NUM:RATE[:BURST]). Until the tenant
 * registry is wired, this table is the only source of NXB tenants besides
 * num 0 (= the default tenant). id "" = quota only. */
typedef struct nx_nxb_tenant_cfg {
    uint32_t num;
    char id[65];
    uint64_t rate, burst; /* events/s and events; rate 0 = no quota */
} nx_nxb_tenant_cfg;

typedef struct nx_config {
    char data_dir[PATH_MAX];
    char http[NX_ADDR_MAX];
    char statsd_udp[NX_ADDR_MAX];
    char statsd_tcp[NX_ADDR_MAX];
    char statsd_unix[PATH_MAX];
    char nxb_udp[NX_ADDR_MAX];
    char nxb_tcp[NX_ADDR_MAX];
    char admin_token_file[PATH_MAX];
    char default_tenant[65];
    int shards;               /* 0 = one per online CPU */
    int pin;                  /* pin shard i to CPU i % ncpu */
    int realtime;             /* SCHED_FIFO query path when permitted (nx_rt.h) */
    int huge_pages;           /* shard heaps on transparent huge pages (nx_prefault.h) */
    int log_level;
    nx_statsd_limits limits;
    uint32_t rcvbuf;          /* SO_RCVBUF of each UDP socket, bytes (0 = kernel default;
                               * default 64 MiB: see nx_listener.c) */
    uint32_t recv_batch;      /* datagrams per recvmmsg */
    uint32_t max_body;        /* bytes of an HTTP request body */
    uint32_t max_tcp_conns;   /* StatsD TCP connections per shard */
    uint32_t http_conns;      /* concurrent HTTP connections */
    uint32_t max_subscribers; /* concurrent SSE subscribers */
    uint32_t sse_max_per_sec; /* default pushes per second per subscriber */
    uint32_t sse_heartbeat_s; /* comment line when idle */
    uint32_t prom_window_s;   /* window of the quantiles in /metrics */
    int ack_durable;          /* default ack of HTTP ingest and NXB over TCP: 1 durable (fsynced), 0 applied */
    uint32_t snapshot_interval_ms; /* at most one snapshot per shard this often */
    uint32_t wal_sync_ms;     /* fdatasync un-synced WAL data at least this often */
    int snapshot_zstd_level;  /* zstd level of snapshots (negative: zstd's fast levels) */
    uint32_t prefault_ahead_mb; /* shard heap populated ahead of use, MiB (0 = off; nx_prefault.h) */
    char steer[8];            /* auto, ebpf, cbpf or plain (kernel stage of UDP groups) */
    uint32_t nxb_ntenants;
    nx_nxb_tenant_cfg nxb_tenants[NX_NXB_TENANTS_MAX];
    int allow_default;        /* tokenless `default` tenant (loopback) even with tenants */
    nx_engine_config engine;
    /* Runtime, not a config key: the tenant registry opened by nexusd's main
     * (src/server/nx_tenants.h), shared by the shards and the HTTP layer
     * through their config pointer. NULL = no registry: open mode. */
    struct nx_registry *registry;
} nx_config;

void nx_config_default(nx_config *c);
/* Sets one key (a long flag name without "--"); NX_EINVAL with a message in
 * err for an unknown key or bad value. */
int nx_config_set(nx_config *c, const char *key, const char *value, char *err, size_t errlen);
/* Loads a config file. */
int nx_config_load_file(nx_config *c, const char *path, char *err, size_t errlen);
/*
 * Parses argv: loads --config FILE first (wherever it is), then applies the
 * other flags ("--key value" or "--key=value"), then checks the listeners
 * (nx_config_check_listeners). Returns 0, 1 when --help or --version was
 * asked (usage printed), or NX_EINVAL (message in err).
 */
int nx_config_parse_args(nx_config *c, int argc, char **argv, char *err, size_t errlen);
void nx_config_usage(const char *prog);
/* NX_EINVAL (message in err) when two listeners of one protocol share a port
 * (same address, or one a wildcard): with SO_REUSEPORT both would bind and
 * the kernel would split the traffic between them. */
int nx_config_check_listeners(const nx_config *c, char *err, size_t errlen);
/* The entry of NXB tenant num, or NULL. */
const nx_nxb_tenant_cfg *nx_config_nxb_tenant(const nx_config *c, uint32_t num);

/* Parses "250ms", "10s", "5m", "1h" or plain seconds into milliseconds. */
int nx_parse_duration_ms(const char *s, uint32_t *out);
/* Parses "10s", "1m", "5m", "1h", "all" (NX_WINDOW_ALL) or plain seconds. */
int nx_parse_duration_s(const char *s, uint32_t *out);

#endif
