/*
 * nx_server.h — the daemon's core: N shards, their listeners, and the
 * fan-out/merge of queries across shards.
 *
 * Queries: a request is posted to EVERY shard's mailbox (a StatsD stream's
 * datagrams may land on any shard), each shard answers with owned copies
 * (nx_summary, stream lists, points) computed at one shared `now`, and the
 * caller merges them (nx_summary_merge is exact). Each answer is a
 * consistent snapshot of its shard: the shard handles the message between
 * two batches, never in the middle of one.
 *
 * Ingest over HTTP: the body is cut at line boundaries into one slice per
 * shard, each slice goes through that shard's nx_shard_apply (the same path
 * as UDP), and the call returns when every shard has applied its slice — so
 * a query issued afterwards sees the events.
 *
 * Hooks: udp_group is called once with the StatsD UDP reuseport group right
 * after it is created and before any shard runs.
 *
 * Kernel stage: the server owns an nx_kstage (server/nx_kstage.h) for its
 * whole life; it steers the StatsD UDP group and the NXB UDP group
 * (--steer) and holds the NXB quotas. HTTP reaches it through
 * nx_server_kstage() for /v1/stats, /metrics and PUT /v1/admin/quota.
 */
#ifndef NX_SERVER_H
#define NX_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "nexus.h"
#include "server/nx_config.h"
#include "server/nx_shard.h"

typedef struct nx_server_hooks {
    int (*udp_group)(void *arg, const int *fds, int n);
    void *arg;
} nx_server_hooks;

typedef struct nx_server nx_server;

int nx_server_create(const nx_config *cfg, const nx_server_hooks *hooks, nx_server **out);
int nx_server_start(nx_server *s);
/* Stops and joins the shards (call after the HTTP server has stopped). */
void nx_server_stop(nx_server *s);
void nx_server_destroy(nx_server *s);

int nx_server_nshards(const nx_server *s);
const nx_config *nx_server_config(const nx_server *s);
nx_shard *nx_server_shard(nx_server *s, int i);
int64_t nx_server_start_ms(const nx_server *s);
struct nx_kstage *nx_server_kstage(nx_server *s);
/* The shard heaps' prefault reservoir, or NULL when off (nx_prefault.h). */
struct nx_prefault *nx_server_prefault(nx_server *s);
/* Tenant UDFs (server/nx_udfhost.h), NULL when disabled. */
struct nx_udf_host;
struct nx_udf_host *nx_server_udf(nx_server *s);

/* Applies StatsD lines for a tenant; returns when every shard is done
 * (acknowledged with the configured default mode, --ack). */
int nx_server_ingest(nx_server *s, const char *tenant, const char *body, size_t len,
                     nx_apply_result *res);
/* The same with an explicit nx_ack_mode (NX_ACK_APPLIED / NX_ACK_DURABLE):
 * returns 0 once every slice is applied and, for durable, fsynced; else the
 * WAL's error (NX_ENOSPC, NX_EIO, NX_ETOOBIG). A body >= 64 KiB is cut into
 * one slice per shard: on an error some slices may have been applied. */
int nx_server_ingest_ack(nx_server *s, const char *tenant, const char *body, size_t len,
                         int ack, nx_apply_result *res);
/* Snapshots every shard now and waits until they are on disk; lsns (may be
 * NULL, one per shard) receive the LSN each snapshot covers. NX_ENOENT when
 * durability is off (no data dir). */
int nx_server_snapshot(nx_server *s, uint64_t *lsns);
/* Merged summary of one stream; NX_ENOENT when no shard has it. */
int nx_server_summary(nx_server *s, const char *tenant, const char *key, size_t key_len,
                      uint32_t window_s, int64_t now_ms, nx_summary *out);
/* Merged list of a tenant's streams with key prefix (may be ""), sorted by
 * key; with_counts adds count/sum over window_s. */
int nx_server_streams(nx_server *s, const char *tenant, const char *prefix, int with_counts,
                      uint32_t window_s, int64_t now_ms, nx_stream_info **out, size_t *n);
/* Merged points (by timestamp) of one stream; NX_ENOENT when absent. */
int nx_server_series(nx_server *s, const char *tenant, const char *key, size_t key_len,
                     int64_t from_ms, int64_t to_ms, uint32_t step_s, int64_t now_ms,
                     nx_point **out, size_t *n);
/* Every stream of every tenant, merged, sorted by (tenant, key). */
int nx_server_export(nx_server *s, uint32_t window_s, int64_t now_ms, nx_export_entry **out,
                     size_t *n);
/* Engine-side counts of shard i (via its mailbox). */
int nx_server_engine_counts(nx_server *s, nx_engine_counts *per_shard);

#endif
