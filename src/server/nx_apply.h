/*
 * nx_apply.h — applying one ingest batch to one engine.
 *
 * A batch is what one receive produced: a datagram, the complete lines of
 * one TCP read, an HTTP body (or a shard's slice of it), a replayed WAL
 * record. nx_applier_apply() is the ONLY way events enter an engine, and it
 * is deterministic given (format, default tenant, recv_ms, payload): it
 * reads no clock (recv_ms is "now" for the engine) and no other state, so
 * replaying a WAL of batches through it rebuilds the same summaries.
 *
 * StatsD payloads are split into lines ('\n', optional '\r'); each line is
 * parsed (ingest/nx_statsd.h), its key built into a scratch arena, its
 * tenant and stream looked up (created on first use) and each value applied,
 * in chunks of up to NX_APPLY_CHUNK lines whose stream lookups are
 * prefetched ahead of their updates (see nx_apply.c). Nothing is allocated
 * per line except what the engine allocates for a new tenant or stream.
 */
#ifndef NX_APPLY_H
#define NX_APPLY_H

#include <stddef.h>
#include <stdint.h>
#include "nexus.h"
#include "ingest/nx_nxb.h"
#include "ingest/nx_statsd.h"
#include "server/nx_config.h"

/* NXB batch rejections: the nx_nxb_reason values, plus tenant numbers
 * nexusd does not know (the kernel stage never checks that). */
#define NX_NXB_UNKNOWN_TENANT NX_NXB_NREASONS
#define NX_NXB_NREJECT (NX_NXB_NREASONS + 1)
/* "unknown_tenant" or nx_nxb_reason_name(). */
const char *nx_nxb_reject_name(int reason);

typedef enum nx_batch_format {
    NX_BATCH_STATSD = 1, /* StatsD / DogStatsD text lines */
    NX_BATCH_NXB = 2,    /* NXB binary batch (ingest/nx_nxb.h) */
} nx_batch_format;

typedef enum nx_batch_source {
    NX_SRC_UDP = 1,
    NX_SRC_TCP = 2,
    NX_SRC_UNIX = 3,
    NX_SRC_HTTP = 4,
    NX_SRC_REPLAY = 5,
} nx_batch_source;

typedef struct nx_batch {
    uint8_t format;      /* nx_batch_format */
    uint8_t source;      /* nx_batch_source */
    uint8_t tenant_len;  /* default tenant for lines without a tenant tag */
    uint8_t tenant_locked; /* 1: every line belongs to `tenant` (HTTP ingest with a
                            * token); a tenant tag naming another is rejected */
    const char *tenant;
    int64_t recv_ms;     /* receive time: the engine's "now" for this batch */
    const uint8_t *data;
    size_t len;
} nx_batch;

/* Outcome of applying batches (accumulates over calls). events counts
 * values applied; rejected counts lines refused by the parser plus values
 * refused by the engine, by reason. */
typedef struct nx_apply_result {
    uint64_t lines;
    uint64_t events;
    uint64_t rejected;
    uint64_t reasons[NX_SD_NREASONS];
    /* NXB: batches applied, batches rejected whole (by NX_NXB_* reason), and
     * the outcome of the LAST NXB batch for its TCP ack: status 0, a reject
     * reason, or 100 + (-NX_E*) when the engine refused some events (then
     * last_applied < its event count). */
    uint64_t nxb_batches;
    uint64_t nxb_rejected[NX_NXB_NREJECT];
    uint8_t nxb_last_status;
    uint32_t nxb_last_applied;
} nx_apply_result;

/* Called for each rejected line (for rate-limited logging). */
typedef void (*nx_reject_fn)(void *arg, int reason, const char *line, size_t len, int64_t now_ms);

/*
 * Optional tenant gate (the tenant registry, server/nx_tenants.h). `gate` is
 * called once per batch and tenant (the applier caches the answer for the
 * rest of the batch) BEFORE the engine tenant is found or created: it
 * returns NX_SD_OK and fills *g (the tenant's num and engine limits, applied
 * with nx_tenant_set_limits), or the reason to reject the line
 * (NX_SD_UNKNOWN_TENANT). `take` grants up to n events of tenant num against
 * its events/s quota (not called for NX_SRC_REPLAY: a replayed batch was
 * admitted when it was received); refused values are counted as
 * NX_SD_RATE_LIMITED and never create a stream. With a gate the applier's
 * outcome also depends on the gate's state (registry, buckets).
 */
typedef struct nx_tenant_gate {
    uint32_t num;
    uint32_t max_streams; /* 0 = unlimited */
    uint64_t max_bytes;   /* 0 = unlimited */
} nx_tenant_gate;
typedef int (*nx_gate_fn)(void *arg, const nx_batch *b, const char *id, size_t len,
                          nx_tenant_gate *g);
typedef uint32_t (*nx_take_fn)(void *arg, uint32_t num, uint32_t n, int64_t recv_ms);

/* Lines of a batch parsed before the first of them is applied; how many
 * lines ahead of its update a stream's lines are prefetched, and how many
 * ahead what the update touches beyond them (bench_statsd
 * statsd_apply_warm_rate, measured side by side: +13% for the first, 4
 * ahead beating 8 and 32; +7% more for the second). */
#define NX_APPLY_CHUNK 32
#define NX_APPLY_AHEAD 4
#define NX_APPLY_NEXT 2
/* Key arena beyond the longest line's key: the keys of a chunk of short
 * lines fit (~40 bytes each + the per-line bound, nx_apply.c key_bound). */
#define NX_APPLY_KEY_ROOM 16384

typedef struct nx_applier {
    nx_engine *engine;
    nx_statsd_limits lim;
    nx_tag *tags;        /* lim.max_tags + 1 */
    char *key;           /* arena for the canonical keys of a chunk */
    size_t key_cap;
    struct nx_apply_line *lines; /* NX_APPLY_CHUNK lines between stages */
    nx_reject_fn on_reject;
    void *reject_arg;
    /* NXB: the decoded batch (~16 KB) and its streams, reused per batch;
     * tenant numbers other than 0 are resolved through nxb_cfg (may be NULL:
     * then only num 0 = the batch's default tenant is known). */
    nx_nxb_batch *nxb;
    nx_stream **nxb_streams;
    int *nxb_serr;       /* per declared stream: 0 or the lookup's NX_E* */
    const nx_config *nxb_cfg;
    /* Called after each applied value (feeds bound UDFs, server/nx_udfhost.h);
     * NULL = none. key is the stream's canonical key. */
    void (*on_event)(void *arg, nx_tenant *t, const char *key, size_t key_len,
                     const nx_update *u, int64_t now_ms);
    void *event_arg;
    char nxb_tenant[72];    /* NXB: id of a registry tenant number, per batch */
    struct nx_tenant_gate nxb_gate;
    nx_gate_fn gate;     /* NULL: every valid tenant id is accepted, unlimited */
    nx_take_fn take;
    void *gate_arg;
} nx_applier;

int nx_applier_init(nx_applier *a, nx_engine *e, const nx_statsd_limits *lim);
void nx_applier_free(nx_applier *a);
/* Applies the batch; adds to *res. NX_EINVAL for an unknown format. */
int nx_applier_apply(nx_applier *a, const nx_batch *b, nx_apply_result *res);

void nx_apply_result_add(nx_apply_result *dst, const nx_apply_result *src);

#endif
