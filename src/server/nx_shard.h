/*
 * nx_shard.h — one shard: a pinned thread that owns one nx_engine.
 *
 * Shared-nothing: the engine, the receive buffers, the TCP connections and
 * the applier belong to the shard thread alone. Other threads talk to it
 * only through its mailbox (nx_shard_msg) and read its counters (relaxed
 * atomics written by the shard only, so readers see whole values, never a
 * torn one).
 *
 * Loop (level-triggered epoll over the shard's UDP socket, its TCP listening
 * socket and connections, the shared unix datagram socket, the mailbox
 * eventfd). Every wakeup does bounded work per source — at most
 * NX_UDP_ROUNDS recvmmsg calls, one read per TCP connection, NX_MBOX_BURST
 * messages — so no source starves the others. The clock is read once per
 * recvmmsg batch / TCP read and passed to the engine as the batch's recv_ms.
 */
#ifndef NX_SHARD_H
#define NX_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "nexus.h"
#include "server/nx_apply.h"
#include "server/nx_config.h"
#include "server/nx_durable.h"
#include "server/nx_mailbox.h"
#include "server/nx_prefault.h"
#include "server/nx_rt.h"

#define NX_UDP_ROUNDS 8
#define NX_MBOX_BURST 64

typedef enum nx_msg_kind {
    NX_MSG_STOP = 1,
    NX_MSG_INGEST,   /* apply batch, answer ingest result */
    NX_MSG_SUMMARY,  /* read one stream over a window */
    NX_MSG_STREAMS,  /* list a tenant's streams (optionally with window counts) */
    NX_MSG_SERIES,   /* points of one stream */
    NX_MSG_EXPORT,   /* every stream of every tenant (Prometheus) */
    NX_MSG_STATS,    /* engine-side counts (tenants, streams, bytes) */
    NX_MSG_SNAPSHOT, /* snapshot now, answer when it is on disk (lsn) */
    NX_MSG_UDF,      /* bind / unbind / results of UDF instances (udf: nx_udf_msg) */
    NX_MSG_TENANT_DELETE, /* free a tenant's state and bucket (server/nx_tenants.h) */
    NX_MSG_TENANT_STATS,  /* per-tenant counts (one tenant, or all when tenant is NULL) */
} nx_msg_kind;

/* One stream in a listing. */
typedef struct nx_stream_info {
    char *key;          /* owned */
    nx_type type;
    double count, sum;  /* over the asked window (when with_counts) */
    int64_t last_update;
} nx_stream_info;

/* One stream for /metrics: all-time summary plus the quantile window. */
typedef struct nx_export_entry {
    char *tenant;       /* owned */
    char *key;          /* owned */
    nx_type type;
    nx_summary all;
    nx_summary win;     /* quantile types only (else empty) */
} nx_export_entry;

typedef struct nx_engine_counts {
    uint64_t tenants, streams, bytes, events;
    uint64_t rejected_late, rejected_future, rejected_quota, rejected_type;
} nx_engine_counts;

typedef struct nx_shard_msg {
    nx_mbox_node node;  /* first: the mailbox links messages through it */
    int kind;
    nx_waiter *waiter;  /* signalled once the shard handled the message */
    int boosted;        /* set by nx_shard_post: the shard drops a boost after it */
    int rc;             /* 0 or NX_E* */
    int64_t now_ms;     /* the query's "now", the same for every shard */
    /* request */
    const char *tenant;
    size_t tenant_len;
    const char *key;
    size_t key_len;
    uint32_t window_s;
    int with_counts;
    int64_t from_ms, to_ms;
    uint32_t step_s;
    nx_batch batch;
    int ack;            /* NX_MSG_INGEST: nx_ack_mode (0 = applied) */
    /* answers (owned by the sender once the waiter fired) */
    nx_apply_result ingest;
    int found;
    nx_summary summary;
    nx_stream_info *streams;
    size_t nstreams;
    nx_point *points;
    size_t npoints;
    nx_export_entry *exp;
    size_t nexp;
    nx_engine_counts counts;
    uint64_t lsn;       /* NX_MSG_SNAPSHOT: LSN covered */
    void *udf;          /* NX_MSG_UDF: struct nx_udf_msg (server/nx_udfhost.h) */
    uint32_t num;                     /* tenant num (TENANT_DELETE) */
    struct nx_tenant_counts *tcounts; /* TENANT_STATS answer (malloc'ed) */
    size_t ntcounts;
} nx_shard_msg;

/* Counters written only by the shard thread. */
typedef struct nx_shard_stats {
    _Atomic uint64_t datagrams;     /* UDP + unix datagrams received */
    _Atomic uint64_t bytes;         /* payload bytes received (all sources) */
    _Atomic uint64_t tcp_reads;
    _Atomic uint64_t lines;         /* StatsD lines seen */
    _Atomic uint64_t events;        /* values applied */
    _Atomic uint64_t rejected;      /* lines/values refused */
    _Atomic uint64_t reasons[NX_SD_NREASONS];
    _Atomic uint64_t kernel_drops_udp;  /* SO_RXQ_OVFL of the shard's UDP socket */
    _Atomic uint64_t kernel_drops_unix; /* last SO_RXQ_OVFL seen on the unix socket */
    _Atomic uint64_t tcp_conns;     /* open StatsD TCP connections */
    _Atomic uint64_t tcp_accepted;
    _Atomic uint64_t tcp_refused;   /* over max-tcp-conns */
    _Atomic uint64_t messages;      /* mailbox messages handled */
    /* receive syscalls (recvmmsg calls, empty ones included) */
    _Atomic uint64_t recv_calls;    /* StatsD UDP + unix sockets */
    _Atomic uint64_t nxb_recv_calls;/* the NXB UDP socket */
    /* NXB (UDP datagrams and TCP frames) */
    _Atomic uint64_t nxb_datagrams;
    _Atomic uint64_t kernel_drops_nxb; /* SO_RXQ_OVFL of the NXB UDP socket */
    _Atomic uint64_t nxb_batches;   /* applied */
    _Atomic uint64_t nxb_events;    /* applied events (also in events) */
    _Atomic uint64_t nxb_rejected[NX_NXB_NREJECT]; /* whole batches, by reason */
    _Atomic uint64_t nxb_quota_dropped;        /* batches over a user-space quota */
    _Atomic uint64_t nxb_quota_dropped_events;
    _Atomic uint64_t nxb_tcp_conns, nxb_tcp_accepted, nxb_tcp_desync, nxb_acks;
} nx_shard_stats;

typedef struct nx_shard nx_shard;

/* fds are handed over (the shard closes them); -1 when absent. unix_fd is
 * shared and NOT closed by the shard. */
int nx_shard_create(int id, const nx_config *cfg, int udp_fd, int tcp_fd, int unix_fd,
                    nx_shard **out);
int nx_shard_start(nx_shard *sh);
/* Sends NX_MSG_STOP and joins the thread (messages queued before are answered). */
void nx_shard_stop(nx_shard *sh);
void nx_shard_destroy(nx_shard *sh);

/* Adds the shard's NXB sockets (handed over on success; -1 when absent)
 * and the kernel stage its quotas come from. Before nx_shard_start. */
struct nx_kstage;
int nx_shard_set_nxb(nx_shard *sh, int udp_fd, int tcp_fd, struct nx_kstage *ks);

void nx_shard_post(nx_shard *sh, nx_shard_msg *m);
const nx_shard_stats *nx_shard_get_stats(const nx_shard *sh);
int nx_shard_id(const nx_shard *sh);

/* The tenant filter: false only if this shard's engine never had a tenant
 * with this id (a bitmap of hashed ids, set by the shard before it applies
 * the tenant's first event, never cleared; read lock-free by query threads,
 * so point queries post only to shards that may hold the tenant). */
bool nx_shard_may_have_tenant(const nx_shard *sh, const char *id, size_t id_len);
/* Attaches the shard's UDF state (before start): events feed bound UDFs. */
struct nx_udf_shard;
/* Before start: the shard thread allocates from its nx_prefault arena
 * (NULL: the default heap). */
void nx_shard_set_prefault(nx_shard *sh, nx_prefault *pf);
/* SCHED_FIFO priority a shard runs at while it owes a waiting poster an
 * answer (nx_rt.h); 0 = never raised. Before nx_shard_start. */
void nx_shard_set_realtime(nx_shard *sh, int prio);
void nx_shard_set_udf(nx_shard *sh, struct nx_udf_shard *u);

/*
 * The apply path: every batch from every source goes through here (WAL
 * replay too). Shard thread only. Deterministic given the batch.
 */
int nx_shard_apply(nx_shard *sh, const nx_batch *b, nx_apply_result *res);

/*
 * The same path with an acknowledgement (HTTP ingest, NXB over TCP). Shard
 * thread only. Appends the batch to the WAL, THEN applies it (adds to *res).
 *   mode NX_ACK_NONE, done NULL: fire and forget (what nx_shard_apply does);
 *     applied even if the WAL refuses it (counted as `unlogged`).
 *   NX_ACK_APPLIED / NX_ACK_DURABLE: if the WAL refuses the batch (disk
 *     full, I/O error, > 64 MiB) returns NX_ENOSPC / NX_EIO / NX_ETOOBIG,
 *     the batch is NOT applied and done is never called. Otherwise returns 0
 *     and done(arg, rc, lsn) is called exactly once, on the shard thread, at
 *     the end of the current loop iteration: rc 0 once the record is in the
 *     kernel (APPLIED: survives kill -9) or fdatasync'ed (DURABLE: survives
 *     power loss; one fsync per iteration for every waiter = group commit),
 *     else the commit's error (the batch was applied in memory but must not
 *     be acknowledged).
 */
int nx_shard_submit(nx_shard *sh, const nx_batch *b, int mode, nx_apply_result *res,
                    nx_ack_fn done, void *arg);
const nx_durable_stats *nx_shard_durable_stats(const nx_shard *sh);

void nx_stream_infos_free(nx_stream_info *v, size_t n);
void nx_export_free(nx_export_entry *v, size_t n);

int64_t nx_now_ms(void);

#endif
