/*
 * nexus.h — the public API of the NexusCore summary engine (libnexus).
 *
 * One nx_engine holds the summaries of one shard: a table of tenants, each
 * with a table of streams. A stream is (tenant, metric name, sorted tag set)
 * and has one StatsD type. Every event updates the stream's open one-second
 * bucket in O(1); closed buckets are folded into the sliding windows, the
 * series tiers and the all-time summary lazily, when the stream is next
 * touched or read. Nothing is recomputed from raw events.
 *
 * An engine is NOT thread-safe: it belongs to one shard thread. Other threads
 * ask the shard (through its mailbox) and receive nx_summary copies, which
 * they own and may merge freely (summaries of the same stream from different
 * shards merge exactly: that is how a query spans shards).
 *
 * Conventions (as in libuv): every function that can fail returns 0 or a
 * negative NX_E* code; results go to out-parameters; nx_strerror() names a
 * code. Time is milliseconds since the Unix epoch (int64_t), always passed in
 * by the caller so that the engine is deterministic (WAL replay relies on it).
 */
#ifndef NEXUS_H
#define NEXUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---------------------------------------------------------- */

enum {
    NX_OK = 0,
    NX_ENOMEM = -1,   /* allocation failed */
    NX_EINVAL = -2,   /* bad argument or malformed input */
    NX_ECORRUPT = -3, /* checksum or structure check failed while decoding */
    NX_ETOOLATE = -4, /* event timestamp older than the late tolerance */
    NX_EQUOTA = -5,   /* a tenant quota (streams, memory, rate) was hit */
    NX_ENOENT = -6,   /* no such tenant / stream / file */
    NX_ETYPE = -7,    /* stream exists with another type */
    NX_EVERSION = -8, /* encoded data of an unsupported version */
    NX_EIO = -9,      /* I/O error (errno is logged by the caller) */
    NX_ENOSPC = -10,  /* disk full */
    NX_EEXIST = -11,  /* already exists */
    NX_ETOOBIG = -12, /* input over a configured limit */
    NX_EAUTH = -13,   /* bad or missing credentials */
    NX_ETRAP = -14,   /* a Wasm isolate trapped */
    NX_ETIMEOUT = -15,/* deadline passed */
    NX_EFUTURE = -16, /* event timestamp too far in the future */
};

/* A short, static, human-readable description of an NX_E* code. */
const char *nx_strerror(int code);
/* A short, static, machine-readable name ("too_late", "quota", ...). */
const char *nx_errname(int code);

/* ---- stream types ---------------------------------------------------- */

typedef enum nx_type {
    NX_TYPE_NONE = 0,
    NX_TYPE_COUNTER = 1,      /* StatsD c  */
    NX_TYPE_GAUGE = 2,        /* StatsD g  */
    NX_TYPE_TIMER = 3,        /* StatsD ms */
    NX_TYPE_HISTOGRAM = 4,    /* StatsD h  */
    NX_TYPE_DISTRIBUTION = 5, /* DogStatsD d */
    NX_TYPE_SET = 6,          /* StatsD s  */
} nx_type;

/* "counter", "gauge", "timer", "histogram", "distribution", "set". */
const char *nx_type_name(nx_type t);
/* True for the types that keep a quantile sketch (timer, histogram, distribution). */
static inline bool nx_type_has_quantiles(nx_type t)
{
    return t == NX_TYPE_TIMER || t == NX_TYPE_HISTOGRAM || t == NX_TYPE_DISTRIBUTION;
}

/* ---- engine configuration -------------------------------------------- */

#define NX_MAX_WINDOWS 8
#define NX_MAX_TIERS 4

typedef struct nx_window_spec {
    uint32_t length_s; /* window length, e.g. 60 for "1m" */
    uint32_t bucket_s; /* sub-bucket size; length_s % bucket_s == 0 */
} nx_window_spec;

typedef struct nx_tier_spec {
    uint32_t step_s;   /* bucket width of this series tier */
    uint32_t buckets;  /* how many are retained (retention = step_s * buckets) */
} nx_tier_spec;

typedef struct nx_engine_config {
    double alpha;               /* DDSketch relative accuracy, default 0.01 */
    uint32_t ddsketch_max_bins; /* bound on bins per sketch, default 2048 */
    uint8_t hll_precision;      /* HyperLogLog precision p, default 14 */
    uint32_t topk_capacity;     /* SpaceSaving counters per set, default 64 */
    uint32_t late_tolerance_s;  /* events older than now - this are rejected, default 60 */
    uint32_t future_tolerance_s;/* events newer than now + this are rejected, default 10 */
    uint32_t nwindows;          /* default 4: 10s/1s, 1m/5s, 5m/30s, 1h/5m */
    nx_window_spec windows[NX_MAX_WINDOWS];
    uint32_t ntiers;            /* default 3: 1s x 120, 10s x 360, 60s x 1440 */
    nx_tier_spec tiers[NX_MAX_TIERS];
    uint32_t max_streams_per_tenant; /* 0 = unlimited (default) */
    uint64_t max_bytes_per_tenant;   /* 0 = unlimited (default) */
} nx_engine_config;

/* Fills *cfg with the defaults documented above. */
void nx_engine_config_default(nx_engine_config *cfg);

/* ---- engine, tenants, streams ---------------------------------------- */

typedef struct nx_engine nx_engine;
typedef struct nx_tenant nx_tenant;
typedef struct nx_stream nx_stream;

int nx_engine_create(const nx_engine_config *cfg, nx_engine **out);
void nx_engine_destroy(nx_engine *e);
const nx_engine_config *nx_engine_config_of(const nx_engine *e);

/* Calls fn(arg, id, id_len) for every tenant now and for each one created
 * later (one hook per engine; fn NULL removes it). For owners that index
 * tenants outside the engine, e.g. nexusd's per-shard tenant filter, which
 * lets a point query skip the shards that never saw its tenant.
 * nx_engine_inherit_hook gives dst src's hook (and calls it for dst's
 * tenants): for an engine that replaces another (snapshot recovery). */
void nx_engine_on_tenant(nx_engine *e, void (*fn)(void *arg, const char *id, size_t id_len),
                         void *arg);
void nx_engine_inherit_hook(nx_engine *dst, const nx_engine *src);

/* Finds the tenant with this id, creating it if absent. */
int nx_engine_tenant(nx_engine *e, const char *id, size_t id_len, nx_tenant **out);
/* Finds a tenant; NULL if absent. */
nx_tenant *nx_engine_tenant_find(nx_engine *e, const char *id, size_t id_len);
/* Deletes a tenant and frees all its streams. NX_ENOENT if absent. */
int nx_engine_tenant_delete(nx_engine *e, const char *id, size_t id_len);
/* Calls fn for each tenant; stops early when fn returns non-zero. */
void nx_engine_foreach_tenant(nx_engine *e, int (*fn)(nx_tenant *t, void *arg), void *arg);
size_t nx_engine_tenant_count(const nx_engine *e);
/* Heap bytes of the whole engine: every tenant's stream bytes plus the tables. */
uint64_t nx_engine_bytes(const nx_engine *e);

const char *nx_tenant_id(const nx_tenant *t);
/* Per-tenant accounting, kept up to date by the engine. */
typedef struct nx_tenant_stats {
    uint64_t streams;       /* live streams */
    uint64_t bytes;         /* heap bytes owned by this tenant's streams */
    uint64_t events;        /* events accepted (unweighted) */
    uint64_t rejected_late; /* events rejected: older than late tolerance */
    uint64_t rejected_future;
    uint64_t rejected_quota;/* new streams refused by max_streams / max_bytes */
    uint64_t rejected_type; /* events whose type mismatched the stream */
} nx_tenant_stats;
void nx_tenant_get_stats(const nx_tenant *t, nx_tenant_stats *out);
void nx_tenant_set_limits(nx_tenant *t, uint32_t max_streams, uint64_t max_bytes);

/*
 * Canonical stream key: the metric name, then for each tag (sorted by key,
 * then value) a '|' followed by "k:v" (or just "k" for a valueless tag).
 * E.g. "api.latency|host:a|route:/x". nx_stream_key_build() sorts the tags
 * it is given and writes the key into buf (NUL-terminated); it returns the
 * key length, or NX_ETOOBIG if buf is too small, NX_EINVAL for an empty name.
 * The key is the identity of a stream everywhere (engine, WAL, snapshots,
 * HTTP API).
 */
typedef struct nx_tag {
    const char *key;
    uint16_t key_len;
    const char *value; /* may be NULL for a valueless tag */
    uint16_t value_len;
} nx_tag;
int nx_stream_key_build(const char *name, size_t name_len, nx_tag *tags, size_t ntags,
                        char *buf, size_t buf_size);

/*
 * Finds the stream with this canonical key, creating it with `type` if
 * absent. NX_ETYPE if it exists with another type; NX_EQUOTA if creating it
 * would exceed the tenant's stream or memory limit (counted in the stats).
 */
int nx_tenant_stream(nx_tenant *t, const char *key, size_t key_len, nx_type type,
                     nx_stream **out);
nx_stream *nx_tenant_stream_find(nx_tenant *t, const char *key, size_t key_len);
/*
 * Batch lookups, for a caller that applies many events at once (nexusd's
 * StatsD path, src/server/nx_apply.c): hash each key once with
 * nx_stream_key_hash(); nx_tenant_stream_prefetch() fetches the table slot
 * the lookup will probe first; a few events later
 * nx_tenant_stream_prefetch_found() reads that slot and fetches the lines of
 * the stream it names that the lookup's key compare and an update of `type`
 * touch; nx_tenant_stream_find_hashed() and nx_tenant_stream_hashed() are
 * nx_tenant_stream_find() and nx_tenant_stream() with the hash given, which
 * must be nx_stream_key_hash() of that key (with another, the find misses
 * and the create answers NX_EEXIST). The prefetches are only hints: any
 * key, any tenant, any time.
 */
uint64_t nx_stream_key_hash(const char *key, size_t key_len);
void nx_tenant_stream_prefetch(const nx_tenant *t, uint64_t hash);
void nx_tenant_stream_prefetch_found(const nx_tenant *t, uint64_t hash, nx_type type,
                                     size_t key_len);
nx_stream *nx_tenant_stream_find_hashed(const nx_tenant *t, const char *key, size_t key_len,
                                        uint64_t hash);
int nx_tenant_stream_hashed(nx_tenant *t, const char *key, size_t key_len, uint64_t hash,
                            nx_type type, nx_stream **out);
/* Deletes one stream and gives its bytes back to the tenant. NX_ENOENT if absent. */
int nx_tenant_stream_delete(nx_tenant *t, const char *key, size_t key_len);
/* Calls fn for each stream of the tenant; stops early when fn returns non-zero.
 * fn must not create or delete streams of this tenant. */
void nx_tenant_foreach_stream(nx_tenant *t, int (*fn)(nx_stream *s, void *arg), void *arg);

const char *nx_stream_key(const nx_stream *s, size_t *len);
nx_type nx_stream_type(const nx_stream *s);
/* Time of the newest event applied to the stream (ms), 0 if none. */
int64_t nx_stream_last_update(const nx_stream *s);

/* One event for one stream. */
typedef struct nx_update {
    double value;        /* counter increment, gauge value or delta, sample */
    double weight;       /* 1/sample_rate; must be > 0 (1 for unsampled) */
    int64_t ts_ms;       /* event time; 0 = "now" as passed to the call */
    const char *member;  /* set member (NX_TYPE_SET), else NULL */
    uint32_t member_len;
    uint8_t gauge_delta; /* 1: value is a +N/-N delta to the gauge */
} nx_update;

/*
 * Applies one event. O(1): touches only the stream's open bucket unless the
 * event is late (then the bucket it belongs to, still O(1) amortized).
 * NX_ETOOLATE / NX_EFUTURE reject (and count) out-of-tolerance timestamps;
 * NX_EINVAL rejects NaN/Inf values and non-positive weights.
 */
int nx_stream_update(nx_stream *s, const nx_update *u, int64_t now_ms);
/* Hint for batch ingest: prefetches what nx_stream_update(s) touches first
 * (the stream's first three cache lines: the third holds a timer's buffered
 * DDSketch bins or a set's buffered member hashes). Call it a few events
 * ahead. */
static inline void nx_stream_prefetch(const nx_stream *s)
{
    __builtin_prefetch((const char *)s, 1);
    __builtin_prefetch((const char *)s + 64, 1);
    __builtin_prefetch((const char *)s + 128, 1);
}
/* Second stage, for a caller that prefetched the stream's lines a while
 * ago (~16 events) and will update it soon (~4 events ahead): reads those
 * lines and prefetches what the update at now_ms will touch beyond them —
 * the pending ring's slot when it closes the open second, the open
 * DDSketch when it will add the buffered bins, a set's member log entry.
 * Only a hint: any stream, any time. It pays for its call with timers,
 * histograms and distributions (bench_engine distributions +8%) and sets
 * (+1.9%), not with counters (-7%). */
void nx_stream_prefetch_next(const nx_stream *s, int64_t now_ms);
/* The same for a caller that knows the stream's type (the event's, which
 * must match it): a counter or gauge event, and its bucket close, touch only
 * the first two lines, so only those are fetched. */
static inline void nx_stream_prefetch_type(const nx_stream *s, nx_type type)
{
    __builtin_prefetch((const char *)s, 1);
    __builtin_prefetch((const char *)s + 64, 1);
    if (type != NX_TYPE_COUNTER && type != NX_TYPE_GAUGE)
        __builtin_prefetch((const char *)s + 128, 1);
}

/* ---- summaries --------------------------------------------------------- */

typedef struct nx_ddsketch nx_ddsketch; /* src/sketch/nx_ddsketch.h */
typedef struct nx_hll nx_hll;           /* src/sketch/nx_hll.h */
typedef struct nx_topk nx_topk;         /* src/sketch/nx_topk.h */

/* Window selector: NX_WINDOW_ALL or a window length in seconds that matches
 * one of the engine's configured windows. */
#define NX_WINDOW_ALL 0u

/*
 * A self-contained, owned summary of one stream over one window. Fields a
 * type lacks are zero / NULL. Summaries of the same stream from several
 * shards merge exactly with nx_summary_merge().
 */
typedef struct nx_summary {
    nx_type type;
    uint32_t window_s;   /* NX_WINDOW_ALL or the window length */
    double count;        /* weighted number of events */
    double sum;          /* weighted sum (counters: sum of increments) */
    double min, max;     /* +inf/-inf when count == 0 */
    double mean;         /* running mean (Welford) */
    double m2;           /* sum of squared deviations (Welford/Chan) */
    double last;         /* gauges: value at last_ts */
    int64_t last_ts;     /* gauges: time of the last set (ms) */
    int64_t first_ts;    /* time of the first event covered (ms), all-time rate */
    nx_ddsketch *dd;     /* quantile types, else NULL */
    nx_hll *hll;         /* sets, else NULL */
    nx_topk *topk;       /* sets, else NULL */
} nx_summary;

void nx_summary_init(nx_summary *s, nx_type type, uint32_t window_s);
void nx_summary_free(nx_summary *s);
/* dst += src (same type). Allocates dst's sketches when it has none. */
int nx_summary_merge(nx_summary *dst, const nx_summary *src);
double nx_summary_stddev(const nx_summary *s); /* population stddev, 0 if count < 1 */
/* Events (counters: increments) per second over `seconds`. */
double nx_summary_rate(const nx_summary *s, double seconds);
/* Quantile q in [0,1] of the quantile sketch; NAN if none/empty. */
double nx_summary_quantile(const nx_summary *s, double q);
/* Distinct-count estimate of a set; NAN for other types. */
double nx_summary_distinct(const nx_summary *s);

/*
 * Reads a stream over a window at time now_ms into *out (initialised by the
 * callee; free with nx_summary_free). The read advances the stream's windows
 * to now_ms first (that is why the stream is not const). Cost: O(size of
 * the sketches), independent of the number of buckets the window spans.
 * NX_EINVAL if window_s is not a configured window.
 */
int nx_stream_read(nx_stream *s, uint32_t window_s, int64_t now_ms, nx_summary *out);

/* One point of a time series (moments of one tier bucket). */
typedef struct nx_point {
    int64_t ts_ms;  /* bucket start */
    double count, sum, min, max;
} nx_point;

/*
 * Points for [from_ms, to_ms) at `step_s` resolution, using the finest tier
 * whose step divides step_s and whose retention covers from_ms (coarser
 * tiers otherwise). Writes at most max points to out; returns the number
 * written (>= 0) or an NX_E* code. Buckets with no events are omitted.
 */
int nx_stream_series(nx_stream *s, int64_t from_ms, int64_t to_ms, uint32_t step_s,
                     int64_t now_ms, nx_point *out, size_t max);

/* ---- serialization ----------------------------------------------------- */

/*
 * Growable output buffer used by every encoder. Encoders append; on
 * allocation failure they return NX_ENOMEM and leave len unchanged.
 */
typedef struct nx_buf {
    uint8_t *data;
    size_t len, cap;
} nx_buf;
void nx_buf_free(nx_buf *b);

/* A summary on its own (shard-to-shard, cluster). Versioned, checksummed. */
int nx_summary_encode(const nx_summary *s, nx_buf *out);
int nx_summary_decode(const uint8_t *p, size_t n, nx_summary *out);

/*
 * The whole engine (snapshots): every tenant, stream, window and tier, so
 * that a decoded engine answers every query exactly as the encoded one.
 * Decoding garbage returns an error (never crashes, never half-fills: on
 * error *out is untouched).
 */
int nx_engine_encode(const nx_engine *e, nx_buf *out);
/* Incremental encoding, for snapshots that must not stall the shard: begin
 * captures the state of this instant (tenant headers now, each stream
 * copy-on-write: encoded before anything changes it, or by a later step);
 * the engine stays fully usable meanwhile. Each step encodes about
 * max_bytes more, or stops after visiting a few thousand streams (SIZE_MAX:
 * everything left), and sets *done at the end. The bytes are the same kind
 * nx_engine_encode gives (nx_engine_decode reads both):
 *  - without a sink (chunk_bytes 0, sink NULL), all of them in *out when
 *    *done (*out must be empty on every step);
 *  - with one, in pieces: whenever about chunk_bytes are encoded — in a
 *    step or in a copy-on-write encode on an update — and at the end, the
 *    sink gets the piece in *piece, takes its bytes, and leaves *piece
 *    empty (len 0), maybe with the memory of a piece it is done with, to
 *    encode on. The pieces in order are the encoding. A sink error fails
 *    the encoding (the final step returns it).
 * Errors: NX_EEXIST (begin while one is in progress), NX_EINVAL (a sink
 * without a chunk size or the reverse; step with none in progress, or with
 * *out not empty, which changes nothing), NX_ENOMEM; after any other error
 * the encoding is over. */
typedef int (*nx_encode_sink)(void *arg, nx_buf *piece);
int nx_engine_encode_begin(nx_engine *e, size_t chunk_bytes, nx_encode_sink sink,
                           void *sink_arg);
int nx_engine_encode_step(nx_engine *e, size_t max_bytes, nx_buf *out, bool *done);
void nx_engine_encode_abort(nx_engine *e);
bool nx_engine_encoding(const nx_engine *e);
int nx_engine_decode(const nx_engine_config *cfg, const uint8_t *p, size_t n, nx_engine **out);

#ifdef __cplusplus
}
#endif
#endif /* NEXUS_H */
