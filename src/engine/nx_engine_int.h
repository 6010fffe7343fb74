/*
 * nx_engine_int.h — the engine's internal structures, shared by nx_engine.c
 * (tables, update, read, series) and nx_engine_codec.c (snapshots). Not part
 * of the public API: everything outside src/engine uses include/nexus.h.
 *
 * Layout choices (see docs/engine.md):
 *  - tables are open-addressing, linear probing, power-of-two capacity, load
 *    <= 3/4, deletion by backward shift (no tombstones); a slot is the 64-bit
 *    XXH3 hash and the object pointer side by side (16 bytes), so a lookup
 *    misses on one line for both (two parallel arrays cost two misses on
 *    the random-access ingest path) and touches an object only on a hash
 *    hit; the key bytes live inside the object.
 *  - a stream's first 64 bytes hold what an event of the open second touches
 *    (clock, type, the open bucket's moments), the next 64 the rest of what
 *    a counter or gauge event and its bucket close touch, the third the
 *    open second's buffer and sketch of the other types; the stream is
 *    64-byte aligned.
 *  - windows and tiers hang off `win`, allocated at the first fold (or late
 *    event) and freed again, with the pending ring, when everything in them
 *    expired: a stream idle for longer than the longest window and tier
 *    costs only its struct and key, and a young one that has not folded a
 *    second yet only its pending ring.
 *  - write-behind: a closed second does not go into windows, tiers and
 *    all-time at once; it waits in the stream's pending ring (`pend`, up
 *    to nx_stream_pend_cap() seconds: 16, 8 for sets) and the ring is
 *    folded in one go when it is full, on the stream's own phase of the
 *    ring's length (stream_flush_due: busy streams do not all fold in the
 *    same second), or before anything reads or changes the windows
 *    (reads, series, late events, snapshots see a flushed stream or
 *    encode the ring). Folding 8 or 16 seconds together touches each
 *    window, tier and all-time once instead of 8 or 16 times: a close
 *    writes one 64-byte slot, and the cache misses of the fold are shared
 *    by the ring's seconds. The result is the same state bit for bit as folding
 *    every second when it closes.
 */
#ifndef NX_ENGINE_INT_H
#define NX_ENGINE_INT_H

#include "nexus.h"
#include "window/nx_window.h"
#include "sketch/nx_shll.h"

#define NX_TENANT_ID_MAX 64
#define NX_STREAM_KEY_MAX 65535

typedef struct nx_table_slot {
    uint64_t hash;
    void *ptr;    /* NULL: empty */
} nx_table_slot;

typedef struct nx_table {
    nx_table_slot *slot;
    uint32_t cap; /* 0 or a power of two */
    uint32_t count;
} nx_table;

struct nx_stream {
    /* ---- cache line 0: the in-second fast path ---- */
    int64_t open_sec;    /* second of the open bucket = the stream clock; INT64_MIN: none */
    uint8_t type;        /* nx_type */
    uint8_t nqbuf;       /* entries in qbuf (quantile types) / the member log (sets) */
    uint8_t npend;       /* closed seconds in pend (line 1) */
    uint8_t nqlog;       /* quantile types: full bin buffers moved to qlog (line 2) */
    uint32_t snap_epoch; /* != its tenant's snap_epoch while a snapshot is being
                          * encoded: still due in it (nx_engine_snap) */
    nx_moments open_m;   /* the open one-second bucket's moments; its sketch
                          * is open_dd / open_topk (line 2). The bucket as an
                          * nx_acc: nx_stream_open() / nx_stream_open_set() */
    /* ---- cache line 1: the rest of what a counter or gauge event touches,
     * and what its bucket close reads. With lines 0 and 1 a counter or
     * gauge stream needs no third line, ever: nx_stream_prefetch_type()
     * fetches two lines for them and three for the other types (bench_engine
     * counters: three lines per event cost ~25% more than two on the event
     * path alone, and a close that missed on a third line gave it back). ---- */
    int64_t max_now_ms;  /* newest now_ms seen (time never goes backwards) */
    int64_t last_update_ms;
    int64_t first_ts;    /* oldest accepted event time, 0 if none */
    uint64_t events;     /* accepted events (the tenant's stat sums these) */
    nx_engine *eng;      /* every event reads the snapshot flag there: one line
                          * for the whole engine, always in cache (a tenant's
                          * line is not when events of 10,000 tenants mix) */
    /* The pending ring: a close reads the pointer. Behind the cold stream
     * line and the ring's own first line it was a chain of three dependent
     * misses per closed second (a fifth of a counter stream's update time in
     * bench_engine); here it comes with the lines every event fetches. */
    struct nx_pend_slot *pend; /* closed seconds not yet folded: NULL until the
                          * first close, and again when idle */
    double last;         /* gauges */
    int64_t last_ts;     /* gauges: time of the newest set; INT64_MIN if none */
    /* ---- cache line 2: what events of the open second left for later.
     * Quantile types: the bins (nx_ddsketch_pack: key and sign, 4 bytes,
     * mapped with the engine's alpha when the event comes) of values not
     * yet in open_dd (already in open_m). Adding each value to the DDSketch
     * as it comes costs two dependent misses (sketch struct, then its bin)
     * per event; buffered, a second's bins (qbuf and the bin log, qlog)
     * reach the sketch together, in one sort and one merge
     * (nx_ddsketch_add_packed_all).
     * Sets: the member log, every member of the open second not yet in
     * open_topk, the sliding HLL and all-time's HLL (already in
     * open_m.count), in arrival order: hash, length and bytes (mlog_*
     * in nx_engine.c). Adding each member as it comes cost a chain of four
     * dependent misses per event in the top-k alone (struct, table, item,
     * member bytes: 30% of a set event's time); an event now only appends
     * to the log (stores, which do not wait for their line), and the drain
     * adds the second's members back to back to the HLLs, with every
     * register fetched in parallel first, and to the top-k as one batch:
     * tallied exactly into the engine's scratch sketch (mlog_topk), which
     * is merged into open_topk (a heap sift per member was 30% of a set
     * event at 150 events per stream-second).
     * Anything that reads or moves open_dd / open_topk, the sliding HLL or
     * all-time, or changes the clock, drains the buffer first
     * (nx_stream_drain); so does a snapshot encoding the stream. For
     * quantiles that is a change of representation, not of state: the
     * bins are those one-by-one adds give. For sets the HLLs and counts
     * are too; the top-k is within the same SpaceSaving bounds, but when
     * it is full, where a drain cuts the batches can change which members
     * it keeps (docs/engine.md, "Set members reach the top-k in
     * batches"). ---- */
    double qbuf_w;       /* the weight of every buffered value / logged member */
    union {              /* the open bucket's sketch; NULL until needed, and
                          * always for counters and gauges. The open bucket
                          * keeps no HLL (a set's members go to all-time's
                          * and the sliding HLL at once). */
        nx_ddsketch *open_dd; /* quantile types */
        nx_topk *open_topk;   /* sets */
    };
    union {
        struct {          /* quantile types */
            int32_t qbuf[10]; /* NX_QBUF_MAX packed bins */
            /* The bin log: a full qbuf whose weight is still qbuf_w moves
             * here (nqlog buffers of NX_QBUF_MAX, oldest first) rather than
             * into open_dd, and the drain adds the log and qbuf together
             * (nx_ddsketch_add_packed_all: one sort and one merge into the
             * sparse one-second sketch, instead of a merge pass per
             * buffer, each O(sketch), and a miss on the sketch for each).
             * qlog[0] is the capacity in buffers, a power of two >= 4, kept
             * > nqlog so that qbuf fits behind the log; the bins follow.
             * NULL until a buffer fills; freed when the stream is idle. */
            int32_t *qlog;
        };
        nx_buf mlog;      /* sets: the member log (nqbuf counts its entries);
                           * empty until the first member, freed when idle;
                           * cap <= NX_MLOG_MAX */
    };
    /* ---- cold ---- */
    nx_tenant *tenant;   /* read by events with a timestamp (tolerances) and
                          * bucket closes (stats, accounting) */
    nx_acc all;          /* all-time: what the window cascade handed on, or
                          * closed seconds when there are no windows, and late
                          * events; a set's HLL has every accepted member at
                          * once (the open bucket and windows keep none) */
    uint64_t hash;       /* XXH3 of the key */
    uint64_t bytes;      /* bytes accounted to the tenant for this stream */
    nx_window *win;      /* [nwindows] then nx_tier [ntiers]: NULL until the first
                          * fold, and again when idle */
    nx_shll *shll;       /* sets: distinct counts of every window (the windows
                          * keep none); NULL until the first member */
    uint16_t key_len;    /* read by lookups, which read the key next to it */
    char key[];          /* key_len bytes + NUL */
};

_Static_assert(__builtin_offsetof(struct nx_stream, last_ts) + sizeof(int64_t) <= 128,
               "what a counter or gauge event and its close touch fits the stream's first two cache lines");
/* The open bucket as an accumulator: a copy of its moments and sketch
 * pointer (the stream keeps them apart, so that a counter's open moments
 * and its close's pending-ring pointer share two cache lines). Give a
 * changed copy back with nx_stream_open_set(). */
static inline nx_acc nx_stream_open(const nx_stream *s)
{
    nx_acc a = {.m = s->open_m};
    if (s->type == NX_TYPE_SET)
        a.topk = s->open_topk;
    else if (nx_type_has_quantiles((nx_type)s->type))
        a.dd = s->open_dd;
    /* counters and gauges have no sketch: their third line is not read */
    return a;
}

/* Makes `a` the stream's open bucket; `a` holds no HLL, and no sketch but
 * the stream type's (nx_acc_decode refuses others). */
static inline void nx_stream_open_set(nx_stream *s, const nx_acc *a)
{
    s->open_m = a->m;
    if (s->type == NX_TYPE_SET)
        s->open_topk = a->topk;
    else if (nx_type_has_quantiles((nx_type)s->type))
        s->open_dd = a->dd;
}

#define NX_QBUF_MAX 10u
#define NX_QLOG_MAX 128u /* buffers in the bin log, at most (a power of two) */
#define NX_MLOG_MAX 4096u      /* a longer log is drained first */
#define NX_MLOG_ENTRIES_MAX 255u /* nqbuf is a uint8_t */
_Static_assert(__builtin_offsetof(struct nx_stream, qbuf_w) == 128 &&
                   sizeof(((struct nx_stream *)0)->qbuf) == NX_QBUF_MAX * sizeof(int32_t) &&
                   __builtin_offsetof(struct nx_stream, tenant) == 192,
               "the open-second buffer and the open sketch are the stream's third cache line");

/* Adds what the stream's open-second buffer holds (qbuf / the member log)
 * to its sketches. On an error the entries not added stay buffered (a set's
 * whole log: its members reach the HLLs before the top-k, adding one to an
 * HLL again is harmless — HLL adds are idempotent — and the top-k takes
 * the log in one merge, which is all or nothing). */
int nx_stream_drain(nx_stream *s);

/* Closed seconds not yet folded (see the header comment): a ring of
 * nx_stream_pend_cap() slots, one cache line each (64-byte aligned), so a
 * close writes exactly one line. As `int64_t sec[16]` ahead of 72-byte
 * nx_accs it wrote three (the seconds' line and the two an accumulator
 * straddles), each cold since the stream's previous close. Invariants,
 * with n = the stream's npend: slot[0].sec < ... < slot[n-1].sec < the
 * stream's open_sec; slots 0..n-1 are non-empty; slots n.. are empty but
 * may keep a sketch for reuse (a close swaps the open bucket with slot n,
 * so it allocates nothing; types without sketches have none to reuse, and
 * their close only writes). A slot holds only the stream type's sketch
 * (the open bucket keeps no HLL): nx_stream_pend_get() gives it as an
 * nx_acc. */
#define NX_PENDING_LONG 16 /* seconds the ring of a stream of any type but sets holds */
#define NX_PENDING_SET 8   /* ... and a set stream's */
#define NX_PENDING_MAX 16  /* the most of any type (snapshots hold no more) */
_Static_assert(NX_PENDING_LONG <= NX_PENDING_MAX && NX_PENDING_SET <= NX_PENDING_MAX &&
                   !(NX_PENDING_LONG & (NX_PENDING_LONG - 1)) &&
                   !(NX_PENDING_SET & (NX_PENDING_SET - 1)),
               "ring lengths are powers of two (stream_flush_due masks)");
typedef struct nx_pend_slot {
    int64_t sec;
    nx_moments m;
    void *sketch; /* quantile types: an nx_ddsketch, sets: an nx_topk, else NULL */
} nx_pend_slot;
_Static_assert(sizeof(nx_pend_slot) == 64, "a pending second is one cache line");

/* Slot i as an accumulator (a copy: give a changed one back with
 * nx_stream_pend_put). */
static inline nx_acc nx_stream_pend_get(const nx_stream *s, uint32_t i)
{
    const nx_pend_slot *p = &s->pend[i];
    nx_acc a = {.m = p->m};
    if (s->type == NX_TYPE_SET)
        a.topk = p->sketch;
    else if (nx_type_has_quantiles((nx_type)s->type))
        a.dd = p->sketch;
    return a;
}

/* Makes `a` slot i's accumulator; `a` holds no sketch but the stream
 * type's. */
static inline void nx_stream_pend_put(nx_stream *s, uint32_t i, const nx_acc *a)
{
    nx_pend_slot *p = &s->pend[i];
    p->m = a->m;
    p->sketch = s->type == NX_TYPE_SET ? (void *)a->topk : (void *)a->dd;
}

/* The seconds a stream's pending ring holds. A fold's cost is mostly per
 * fold (misses on the window block, the tiers' points and the window
 * sketches), so a longer ring shares it among more seconds: quantile
 * streams gained with 16 (bench_engine distributions), and so did counters
 * on a machine with slow memory (+16%, 12 pairs; docs/engine.md "Counters
 * fold 16 seconds at a time"), for 576 more bytes per active stream. Sets
 * keep 8: they gained less than their ring slots' top-k sketches cost in
 * bytes (+14% a stream; docs/engine.md, "Ring lengths per type"). */
static inline uint32_t nx_stream_pend_cap(const nx_stream *s)
{
    return s->type == NX_TYPE_SET ? NX_PENDING_SET : NX_PENDING_LONG;
}

struct nx_tenant {
    /* ---- first line: what every event of the tenant reads ---- */
    nx_engine *eng;
    int64_t late_ms, future_ms;
    uint32_t snap_idx;   /* position in the header list of that snapshot */
    nx_tenant_stats st;  /* .events: events of deleted streams; .streams unused */
    uint32_t max_streams;
    uint64_t max_bytes;
    uint64_t hash;
    nx_table streams;
    uint8_t id_len;
    char id[NX_TENANT_ID_MAX + 1];
};

/*
 * An incremental snapshot (nx_engine_encode_begin/step): the encoding of
 * the state at the instant of begin, produced over many steps while the
 * engine keeps changing — copy-on-write at stream granularity.
 *  - begin writes the header and every tenant's header (ids, limits,
 *    stats, stream counts) at once — small — and bumps `epoch`;
 *  - a stream is due while its snap_epoch differs from `epoch`; streams
 *    created after begin get the new epoch, so they are not part of it;
 *  - before anything changes a due stream (update, read, series, delete,
 *    tenant delete) the engine encodes it as it still is (snap_touch);
 *  - steps encode due streams in table order up to a byte budget; tables
 *    that rehash or shift under the cursor only mean another sweep;
 *  - when `due` reaches 0 the frame is closed and handed out; with a sink,
 *    what is encoded goes to it whenever it reaches the chunk size (the
 *    CRC runs over every piece), so no buffer of the whole state exists.
 * Every stream of the begin instant is thus encoded exactly once, in the
 * state it had then. An error on a mutation path never fails the mutation:
 * it is kept in `err` and returned by the final step.
 */
typedef struct nx_engine_snap {
    bool active;
    int err;
    uint32_t epoch;
    uint64_t due;        /* streams of the begin instant not yet encoded */
    uint32_t cur_t, cur_s;
    uint64_t emitted;    /* streams encoded since the cursor last wrapped */
    size_t frame_start;
    size_t chunk;        /* pieces of at least this go to the sink */
    nx_encode_sink sink; /* NULL: everything at the end, from the last step */
    void *sink_arg;
    uint64_t passed;     /* bytes handed to the sink so far */
    uint32_t crc;        /* CRC of the frame so far: the pieces handed out and
                          * buf[0, crc_upto) (from frame_start in the first) */
    size_t crc_upto;
    nx_buf buf;
} nx_engine_snap;

struct nx_engine {
    nx_engine_config cfg;
    nx_acc_params ap;
    uint32_t shll_horizon; /* longest window + its sub-bucket (0: no windows) */
    /* The window cascade (docs/engine.md): win_feeder[j] is the window whose
     * completed sub-buckets feed window j (the one with the widest
     * sub-bucket that divides j's, strictly narrower or equal and listed
     * earlier), or -1 when closed seconds feed j directly; win_order lists
     * the windows feeders first, the order they are advanced in. */
    int8_t win_feeder[NX_MAX_WINDOWS];
    uint8_t win_order[NX_MAX_WINDOWS];
    int8_t all_feeder;     /* the window whose sub-buckets feed all-time (the
                            * widest); -1: closed seconds do (no windows) */
    bool win_feeds[NX_MAX_WINDOWS]; /* window i feeds a window or all-time */
    /* Derived back (sets; nx_window.h): win_derive[i] is the window i feeds
     * whose sub-buckets hold i's back stack (its sub-bucket is
     * win_bgroup[i] of i's, a divisor of i's n with n / g <= 2), or -1. */
    int8_t win_derive[NX_MAX_WINDOWS];
    uint32_t win_bgroup[NX_MAX_WINDOWS];
    nx_table tenants;
    double dd_inv_ln_gamma; /* nx_ddsketch_pack's mapping of ap.alpha: read by
                             * every timer event, next to the snapshot flag */
    nx_engine_snap snap;
    /* Scratch of a set stream's drain: its log's members tallied exactly
     * (capacity NX_MLOG_ENTRIES_MAX + 1, never full), then merged into the
     * stream's open_topk. Created at the first drain, reused: an engine is
     * one shard's, used by one thread. */
    nx_topk *mlog_topk;
    void (*on_tenant)(void *arg, const char *id, size_t id_len);
    void *on_tenant_arg;
};

/* Encodes a due stream into the snapshot in progress (nx_engine_codec.c). */
void nx_engine_snap_emit(nx_engine *e, nx_stream *s);
/* Call before changing anything a snapshot encodes of s. */
static inline void nx_snap_touch(nx_stream *s)
{
    nx_engine *e = s->eng;
    if (__builtin_expect(e->snap.active, 0) && s->snap_epoch != e->snap.epoch)
        nx_engine_snap_emit(e, s);
}

static inline nx_tier *nx_stream_tiers(const nx_engine *e, const nx_stream *s)
{
    return (nx_tier *)(s->win + e->cfg.nwindows);
}

/* all-time's direct_k, in its feeder's sub-bucket indices (as a window's:
 * nx_window.h), right after the tiers in the hist block. */
static inline int64_t *nx_stream_all_direct(const nx_engine *e, const nx_stream *s)
{
    return (int64_t *)(nx_stream_tiers(e, s) + e->cfg.ntiers);
}

/* The pending ring (its own allocation: a young stream that has closed a
 * few seconds but never folded them pays 1 KiB, not the window block).
 * NULL before the first close. */
static inline nx_pend_slot *nx_stream_pending(const nx_engine *e, const nx_stream *s)
{
    (void)e;
    return s->pend;
}

/* Internal helpers shared with the codec. */
uint64_t nx_hash_bytes(const void *p, size_t n);
int nx_engine_cfg_check(const nx_engine_config *cfg);
/* Allocates the window/tier block of a stream if absent. */
int nx_stream_hist_alloc(nx_stream *s);
/* Allocates the pending ring of a stream if absent. */
int nx_stream_pend_alloc(nx_stream *s);
/* Adds every register of h to the stream's sliding HLL as seen at second
 * `sec` (decoding snapshots of version <= 3, whose windows kept HLLs). */
int nx_stream_shll_absorb(nx_stream *s, const nx_hll *h, int64_t sec);
/* A decoded set stream's sliding HLL gets all-time's HLL as its grave
 * (nx_shll_set_grave; created empty if all-time has none): snapshots hold
 * a complete all-time HLL, so it holds every pair the sketch does. */
int nx_stream_grave_attach(nx_stream *s);
/* Recomputes s->bytes and moves the difference into its tenant's stats. */
void nx_stream_account(nx_stream *s);
/* Creates a stream without quota checks (snapshot restore). */
int nx_tenant_stream_insert(nx_tenant *t, const char *key, size_t key_len, nx_type type,
                            nx_stream **out);

#endif
