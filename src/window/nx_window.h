/*
 * nx_window.h — bucket accumulators, sliding windows and series tiers.
 *
 * Three building blocks of a stream (src/engine uses them; docs/engine.md
 * has the full picture):
 *
 *  nx_acc     one bucket: nx_moments + the type's sketches (DDSketch for
 *             timer/histogram/distribution, HLL + SpaceSaving for sets).
 *             Sketch pointers are NULL until the first event needs them, so
 *             an empty bucket costs sizeof(nx_acc) and nothing on the heap.
 *
 *  nx_window  a sliding window of N = length/bucket sub-buckets, kept as a
 *             ring of N+1 slots: N complete sub-buckets plus the partial
 *             current one. A read costs O(sketch size), independent of N:
 *               - invertible parts (count/sum/mean/m2 and the DDSketch) live
 *                 in one running aggregate `inv` over the N complete slots:
 *                 a slot is merged in once, when it completes, and
 *                 subtracted when it is evicted (nx_moments_sub,
 *                 nx_ddsketch_sub) — a bucket close costs one merge per
 *                 window (into the current slot), not two;
 *               - non-invertible parts (min, max, top-k) use Two-Stacks
 *                 over the N complete slots: the oldest `nfront` slots form
 *                 the front stack, each carrying the aggregate of itself and
 *                 every younger front slot (f*; for top-k the suffix is
 *                 built in the slot's own sketch, whose sub-bucket content is
 *                 never read again once on the front); the younger complete slots
 *                 form the back stack, summarised by one running aggregate
 *                 (b*). Evicting pops the front; an empty front is rebuilt
 *                 from the back ("flip", O(N) merges every N steps, so O(1)
 *                 amortized). The current slot is outside both stacks (it is
 *                 still changing) and is merged at read time.
 *               read = inv ⊕ current (moments, dd) + min/max/topk of
 *                      front-top ⊕ back ⊕ current.
 *             Windows keep NO HyperLogLog: a set stream's distinct counts
 *             over every window come from its one sliding HLL (nx_shll,
 *             src/engine), which costs O(1) per event instead of a dense
 *             HLL merge per sub-bucket, window and close. An accumulator
 *             folded or read here has its `hll` ignored / left NULL.
 *             Late events go straight into their slot and every aggregate
 *             that covers it (inv, back, or the front suffixes up to it).
 *             The slot ring is allocated on the first data and freed again
 *             when a long gap empties the whole window.
 *             Cascade: a window may hand each sub-bucket it completes to a
 *             sink (nx_window_sink) — the engine folds it into a coarser
 *             window whose sub-bucket width is a multiple of this one's, so
 *             a closed second is merged into the finest window only and
 *             reaches the coarser ones a sub-bucket at a time (docs/engine.md,
 *             "Window cascade"). A window fed that way lacks its feeder's
 *             current sub-bucket, which reads add (nx_window_read_current).
 *             `direct_k` marks sub-buckets that were fed directly instead
 *             (state decoded from a snapshot written before the cascade).
 *             Derived back (sets): the back stack's top-k need not be kept
 *             when the window feeds a window whose sub-bucket is g of its
 *             own, with n a multiple of g and n/g <= 2 (10 s/1 s -> 1 m/5 s
 *             -> 5 m/30 s -> 1 h/300 s: g = 5, 6, 10). If the back starts
 *             on a multiple of g, it is exactly whole sub-buckets of the fed
 *             window: its last one or two complete ones and its current one
 *             (which holds what this window has completed of it). A read
 *             merges those (nx_window_read's `fed`) instead of b*; a bucket
 *             close saves a top-k merge per window step (~20% of a set
 *             event). Flips keep the back's start aligned once it is (n is
 *             a multiple of g); a window whose back is not aligned (a new
 *             or restarted one) keeps b* and flips early at the first
 *             aligned step when its front is nearly spent (<= g slots), so
 *             the extra flip costs little. The fed window's sub-buckets it
 *             reads are its newest complete ones, which are never
 *             front-stack suffixes (a flip turns all but the youngest
 *             complete slot into suffixes, and the fed window has not
 *             stepped past the current chunk) and never evicted (n >= 2).
 *             Front holes (sets): a flip builds no suffix in the run of empty
 *             slots that starts at the oldest one (a young window's first flip
 *             found one or two sub-buckets and copied their suffix into every
 *             empty older slot: 10 top-k copies, ~35 KB, per 1 m window). The
 *             front top's suffix is then that of the oldest front slot past
 *             the run (`fskip`: O(1) reads); popping a hole only shrinks the
 *             run; a late event into a hole builds the suffixes it needs.
 *             Every front slot past the run holds its suffix, as before.
 *             Lazy front (sets): a flip with an empty front builds only the
 *             min/max suffixes and leaves the top-k ones to build
 *             (`flazy`: the front slots keep their own sub-buckets' top-k)
 *             until something needs them: a read, a late event into the
 *             front, an encoding, or a flip that finds front slots left
 *             (nx_window_front_build, the same merges in the same order as an
 *             eager flip's, over the slots still on the front, so answers,
 *             encodings and evolution are those of an eager flip). Popping
 *             front slots needs no suffix. A stream nobody reads pays no
 *             suffix merge at all (the 10 s window's flips were ~1 top-k
 *             merge per set stream-second, ~16% of bench_engine's set run); a
 *             read after a flip pays for the slots still on the front, once
 *             per flip period. A window read since its last flip (`fread`)
 *             builds at its next flip, as before, so a stream that is read
 *             regularly keeps reads that merge no suffix.
 *             Lazy inv (quantile types): a window of short sub-buckets
 *             (1 s: the 10 s window) keeps inv's DDSketch only while it is
 *             read. Kept, it costs a merge and a subtraction of a one-second
 *             sketch per stream-second; a window not read for n steps drops
 *             it (`ilazy`; the moments stay kept, they cost nothing). A read
 *             of a lazy window merges its n complete slots' sketches into a
 *             new inv (at most NX_WINDOW_LAZY_INV_N merges) and keeps it
 *             from then on; encoding writes the same merge without keeping
 *             it. A rebuilt inv holds the same bins as a kept one, except
 *             for the floating-point residue that subtractions of
 *             fractional weights leave in a kept one (a rebuilt one has
 *             none).
 *
 *             Wide current (sets): the current sub-bucket of a window fed
 *             by a cascade takes a sub-bucket of its feeder every feeder
 *             step (the 1 m window: a one-second top-k every second). Merged
 *             into a top-k of k counters, each of those merges past the
 *             first two or three was a selection of k among k + ~30
 *             candidates and ~30 replaced counters (bench_engine's set
 *             loop: 10,400 instructions per merge, 35% of the loop). So the
 *             current sub-bucket's top-k grows to NX_WINDOW_WIDE_TOPK x k
 *             counters while its content stays exact (it and what is merged
 *             into it never evicted, and their union fits), and is cut to k
 *             once, when the sub-bucket completes (nx_topk_set_capacity:
 *             the same k counters as merging its exact content into an
 *             empty top-k), or before a merge or a late event that would
 *             not keep it exact. Only the current sub-bucket is ever wide:
 *             complete ones, the stacks and reads have k counters. The cut
 *             keeps the k largest exact counts of the sub-bucket instead
 *             of the survivors of a chain of merges: the same guarantees
 *             (nx_topk.h), tighter counts. Snapshots write a wide current
 *             top-k as it is (engine version 10).
 *
 *  nx_tier    a ring of moment-only points {count, sum, min, max} at one
 *             resolution (e.g. 10 s x 360) for time-series reads. The ring
 *             grows on demand (a stream 5 minutes old holds 5 points of the
 *             60 s tier, not 1440) and is freed when every point has expired.
 *
 * Time is in whole seconds here; sub-bucket k of a window with bucket b
 * holds the seconds [k*b, (k+1)*b).
 */
#ifndef NX_WINDOW_H
#define NX_WINDOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "nexus.h"
#include "sketch/nx_moments.h"

/* floor(a / b) for b > 0, a of either sign (seconds and sub-bucket
 * indices may be negative; C division truncates toward zero). */
static inline int64_t nx_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b < 0)
        q--;
    return q;
}

/* nx_floordiv(a, b) when the caller has a likely answer `guess`: one
 * multiplication instead of a 64-bit division when the answer is guess or
 * guess + 1 (a bucket close asks the windows and tiers for the index of a
 * second that is nearly always in their current sub-bucket or the next:
 * ~30 divisions per closed second otherwise). */
static inline int64_t nx_floordiv_near(int64_t a, int64_t b, int64_t guess)
{
    int64_t lo;
    if (!__builtin_mul_overflow(guess, b, &lo) && a >= lo) {
        /* a - lo in unsigned arithmetic: exact for lo <= a, even when the
         * signed difference would overflow (lo near INT64_MIN) */
        uint64_t off = (uint64_t)a - (uint64_t)lo;
        if (off < (uint64_t)b)
            return guess;
        if (off < 2 * (uint64_t)b)
            return guess + 1;
    }
    return nx_floordiv(a, b);
}

/* Parameters every accumulator of one engine shares. */
typedef struct nx_acc_params {
    double alpha;
    uint32_t dd_max_bins;
    uint8_t hll_precision;
    uint32_t topk_capacity;
} nx_acc_params;

typedef struct nx_acc {
    nx_moments m;     /* sets: only count is used (min/max stay +-inf) */
    nx_ddsketch *dd;  /* quantile types; NULL until needed */
    nx_hll *hll;      /* sets; NULL until needed */
    nx_topk *topk;    /* sets; NULL until needed */
} nx_acc;

void nx_acc_init(nx_acc *a);
void nx_acc_free(nx_acc *a);
/* Empties the accumulator, keeping its sketches' memory for reuse. */
void nx_acc_clear(nx_acc *a);
static inline bool nx_acc_empty(const nx_acc *a)
{
    return !(a->m.count > 0);
}
/* Adds one event (value for numeric types; member for sets). */
int nx_acc_add(nx_acc *a, const nx_acc_params *p, nx_type type, double value,
               double weight, const char *member, uint32_t member_len);
/* Adds one set member whose XXH3 hash the caller already has. */
int nx_acc_add_member(nx_acc *a, const nx_acc_params *p, uint64_t hash, const char *member,
                      uint32_t member_len, double weight);
/* The same without the HLL: top-k and count only (the engine keeps a set
 * stream's distinct counts elsewhere: nx_acc_add_distinct on all-time, the
 * sliding HLL for windows). */
int nx_acc_add_member_counts(nx_acc *a, const nx_acc_params *p, uint64_t hash,
                             const char *member, uint32_t member_len, double weight);
/* Adds a member's hash to the accumulator's HLL only. */
int nx_acc_add_distinct(nx_acc *a, const nx_acc_params *p, uint64_t hash);
/* dst's HLL |= src's (nothing else; no-op when src has none). */
int nx_acc_merge_distinct(nx_acc *dst, const nx_acc *src, const nx_acc_params *p);
/* dst += src, allocating dst's sketches as needed. */
int nx_acc_merge(nx_acc *dst, const nx_acc *src, const nx_acc_params *p);
/* Heap bytes owned by the accumulator's sketches. */
size_t nx_acc_bytes(const nx_acc *a);

/* ---- sliding window ---------------------------------------------------- */

/* One sub-bucket's moments and its front-stack suffix min/max: 64 bytes. */
typedef struct nx_wslot {
    nx_moments m;      /* the sub-bucket (sets: count only) */
    double fmin, fmax; /* front stack: aggregate of this slot .. youngest front slot */
} nx_wslot;

/* The sketches of one sub-bucket, in a parallel array that only the types
 * with sketches allocate (counters and gauges pay 64 bytes per slot). */
typedef struct nx_wsk {
    nx_ddsketch *dd;
    nx_topk *topk;     /* sets: the sub-bucket's; on the front stack, its suffix */
} nx_wsk;

typedef struct nx_window {
    int64_t cur_k;     /* index of the current (partial) sub-bucket */
    uint32_t n;        /* complete sub-buckets kept (length/bucket) */
    uint32_t bucket_s; /* sub-bucket width */
    uint32_t nfront;   /* oldest complete slots that are on the front stack */
    uint32_t nonempty; /* slots holding data (0: the window is empty) */
    nx_acc inv;        /* moments + dd of the n complete slots (subtract on evict) */
    double bmin, bmax; /* back stack aggregate */
    nx_topk *btopk;
    nx_wslot *slots;   /* ring of n+1, slot of sub-bucket k = k mod (n+1); NULL when empty */
    nx_wsk *sk;        /* parallel ring of sketches; NULL for counters/gauges */
    nx_wslot *store;   /* memory for the ring inside the owner's block, or NULL */
    int64_t direct_k;  /* sub-buckets with index < direct_k are (or were) fed directly,
                        * not by a cascade; NX_WINDOW_NO_DIRECT when none is */
    uint32_t bgroup : 31; /* sets: g when the back's top-k can be derived from the fed
                        * window (see "Derived back" above), else 0; set by the owner */
    uint32_t bderived : 1; /* this flip period's back top-k is derived, not in btopk */
    uint32_t fskip : 24; /* sets: the oldest fskip front slots are empty and hold no
                        * suffix; the front top's suffix is in slot c-n+fskip
                        * (see "Front holes" above) */
    uint32_t flazy : 1; /* sets: the front's top-k suffixes are not built yet: its
                        * slots hold their own sub-buckets (see "Lazy front") */
    uint32_t fread : 1; /* read since the last flip: the next flip builds its
                        * suffixes at once (see "Lazy front") */
    uint32_t ilazy : 1; /* inv.dd is not kept (NULL): a read merges the complete
                        * slots' sketches (see "Lazy inv"); only windows that
                        * nx_window_inv_lazy_ok allows */
    uint32_t iquiet : 5; /* steps since the last read, up to n (while !ilazy) */
} nx_window;
/* fskip <= nfront <= n <= 100,000 (nx_engine_create refuses more): 24 bits. */

#define NX_WINDOW_NO_DIRECT (INT64_MIN / 4)

/* Where a window hands each sub-bucket it completes (or drops while still
 * current, when a long gap empties it): `sec` is the sub-bucket's first
 * second, `slot` a read-only view of it (moments and sketches, no HLL). */
typedef struct nx_window_sink {
    int (*fn)(void *arg, int64_t sec, const nx_acc *slot);
    void *arg;
    bool derive_ok; /* the fed window a derived back reads holds exactly the
                     * sub-buckets handed to it (none of it is direct) */
} nx_window_sink;

/* The invariant a decoded window must satisfy before use: its current
 * sub-bucket is not after the stream clock's (a snapshot that passed its
 * CRC but breaks it is rejected, not trusted into an assert). */
bool nx_window_valid_at(const nx_window *w, int64_t sec);

/* store: room for n+1 slots that the window may use for its ring instead of
 * allocating one (the engine keeps all rings of a stream in one block, so a
 * bucket close touches one or two pages), or NULL. */
/* The DDSketch of a complete sub-bucket of NX_WINDOW_FREEZE_S seconds or
 * more is frozen (nx_ddsketch_freeze: float counts, or, when a count is not
 * a float, fitted to its bins). Shorter sub-buckets are left alone:
 * their sketches are recycled within seconds and would grow back, an
 * allocation or three per stream and second (bench_engine distributions
 * -3% when the 1 s sub-buckets of the 10 s window were fitted too, -4%
 * when frozen). Freezing the 5 s ones too (30 s before): bench_engine
 * distributions +4-7% and 12% fewer active bytes (59.9 -> 52.6 KB), 96.0 ->
 * 86.6 KB at steady state; each is recycled only every 65 s. */
#define NX_WINDOW_FREEZE_S 5u

/* Windows whose DDSketch aggregate `inv` is only kept while they are read
 * ("Lazy inv" above): sub-buckets shorter than NX_WINDOW_FREEZE_S (their
 * inv costs a merge and a subtraction per stream-second) and at most
 * NX_WINDOW_LAZY_INV_N of them (a read that rebuilds inv merges that many
 * sketches: still O(sketch size)). */
#define NX_WINDOW_LAZY_INV_N 16u
static inline bool nx_window_inv_lazy_ok(const nx_window *w)
{
    return w->bucket_s < NX_WINDOW_FREEZE_S && w->n <= NX_WINDOW_LAZY_INV_N;
}

/* A wide current top-k ("Wide current" above) has this many times the
 * engine's capacity (at most NX_WINDOW_WIDE_MAX counters). 4: a 5 s
 * sub-bucket of a set stream with up to ~50 distinct members a second
 * stays exact until it completes. */
#define NX_WINDOW_WIDE_TOPK 4u
#define NX_WINDOW_WIDE_MAX 65536u
static inline uint32_t nx_window_wide_topk(const nx_acc_params *p)
{
    uint64_t w = (uint64_t)NX_WINDOW_WIDE_TOPK * p->topk_capacity;
    return w < NX_WINDOW_WIDE_MAX ? (uint32_t)w : NX_WINDOW_WIDE_MAX;
}

void nx_window_init(nx_window *w, uint32_t length_s, uint32_t bucket_s, nx_wslot *store);
void nx_window_free(nx_window *w);
/* Moves the window so that second `sec`'s sub-bucket is current. Never moves
 * backwards. Every non-empty sub-bucket that completes on the way (and a
 * non-empty current one a gap throws away) goes to `sink`, if not NULL,
 * oldest first. */
int nx_window_advance(nx_window *w, int64_t sec, const nx_acc_params *p,
                      const nx_window_sink *sink);
/* Folds a closed bucket (or a finer window's sub-bucket) starting at second
 * `sec` (>= the current sub-bucket's start) into the window, advancing it
 * first (sink as for nx_window_advance). */
int nx_window_fold(nx_window *w, int64_t sec, const nx_acc *src, const nx_acc_params *p,
                   const nx_window_sink *sink);
/* nx_window_fold for the last use of src: when the current sub-bucket is
 * empty, src's sketches become the sub-bucket's (no merge) and src is left
 * empty with the sub-bucket's old, empty sketches (for reuse); otherwise
 * it merges as nx_window_fold and leaves src as it was. src's HLL, if any,
 * stays in src. */
int nx_window_fold_move(nx_window *w, int64_t sec, nx_acc *src, const nx_acc_params *p,
                        const nx_window_sink *sink);
/* Adds one late event of second `sec` (any sub-bucket the window still
 * covers; older ones are ignored and 0 is returned; one after the current
 * sub-bucket is NX_EINVAL: advance the window first). */
int nx_window_add_late(nx_window *w, int64_t sec, const nx_acc_params *p, nx_type type,
                       double value, double weight, const char *member, uint32_t member_len);
/* out = the whole window (out must be empty: nx_acc_init'ed). `fed` is the
 * window w hands its sub-buckets to when w->bgroup is set (its back's top-k
 * may be derived from it), else NULL. Builds the front's suffixes first when
 * a flip left them to build (nx_window_front_build): the window's answers
 * and evolution do not change, only when that work is done. */
int nx_window_read(nx_window *w, const nx_window *fed, nx_acc *out, const nx_acc_params *p);
/* Builds the top-k suffixes of the front stack that the last flip left to
 * build (w->flazy; no-op otherwise). Reads, late events into the front,
 * the next flip and encoding need them ("Lazy front" above). */
int nx_window_front_build(nx_window *w, const nx_acc_params *p);
/* *out = a new DDSketch of the complete sub-buckets (what a kept inv.dd
 * holds; NULL when none has a sketch). For a lazy inv ("Lazy inv"). */
int nx_window_inv_sketch(const nx_window *w, nx_ddsketch **out);
/* out += the current sub-bucket (what a cascade has not handed on yet). */
int nx_window_read_current(const nx_window *w, nx_acc *out, const nx_acc_params *p);
/* The index of the sub-bucket holding second `sec`. */
static inline int64_t nx_window_index(const nx_window *w, int64_t sec)
{
    return nx_floordiv_near(sec, w->bucket_s, w->cur_k);
}
/* True while the current sub-bucket is fed directly (see direct_k). */
static inline bool nx_window_direct(const nx_window *w)
{
    return w->cur_k < w->direct_k;
}
size_t nx_window_bytes(const nx_window *w);
/* First second the window covers when its current sub-bucket is cur_k. */
static inline int64_t nx_window_start_sec(const nx_window *w)
{
    return (w->cur_k - (int64_t)w->n) * (int64_t)w->bucket_s;
}

/* ---- series tier --------------------------------------------------------- */

typedef struct nx_tpoint {
    double count, sum, min, max;
} nx_tpoint;

typedef struct nx_tier {
    int64_t newest;   /* index (sec / step) of the newest bucket */
    int64_t oldest;   /* oldest index written since the ring was (re)started */
    uint32_t step_s;
    uint32_t buckets; /* retention in buckets */
    uint32_t cap;     /* ring capacity (<= buckets); 0 = not allocated */
    nx_tpoint *pts;   /* point of index i at pts[i mod cap] */
} nx_tier;

void nx_tier_init(nx_tier *t, uint32_t step_s, uint32_t buckets);
void nx_tier_free(nx_tier *t);
/* Moves the newest bucket to sec's (expiring old points; frees the ring
 * when everything expired). */
void nx_tier_advance(nx_tier *t, int64_t sec);
/* Adds moments to the bucket of second sec (ignored when out of retention). */
int nx_tier_add(nx_tier *t, int64_t sec, const nx_moments *m);
/* The point of bucket index idx, or NULL if not retained/empty. */
const nx_tpoint *nx_tier_get(const nx_tier *t, int64_t idx);
static inline size_t nx_tier_bytes(const nx_tier *t)
{
    return (size_t)t->cap * sizeof(nx_tpoint);
}

/* ---- serialization (used by the engine snapshot, src/engine) -------------
 * nx_acc:    f64 count, sum, mean, m2, min, max | u8 mask (1 dd, 2 hll,
 *            4 topk) | the present sketches' own encodings, in that order.
 * nx_window: svar cur_k | uvar nfront | uvar nonempty | acc inv | f64 bmin |
 *            f64 bmax | u8 has_btopk [topk] (engine version >= 6: 2 = the
 *            back's top-k is derived from the fed window, no topk) |
 *            u8 has_slots | if has_slots, n+1 slots in ring order, each:
 *            acc a (no hll; a front-stack slot's top-k is its suffix;
 *            an empty top-k is left out) |
 *            f64 fmin | f64 fmax
 *            (engine version >= 10: a set window's current slot's top-k
 *            may have nx_window_wide_topk counters of capacity, fewer of
 *            them in use: "Wide current". Every other top-k has the
 *            engine's capacity.)
 *            (engine version >= 7: a set window's oldest front slots may be
 *            empty with no top-k, the front holes; the first front slot
 *            with a non-empty top-k is the front top. Decoding recounts
 *            fskip from that and refuses a hole that holds data.)
 *            Engine snapshots up to version 3 also had u8 has_bhll [hll]
 *            before has_btopk, an hll in set slots, and after fmax u8
 *            has_fhll [hll] and u8 has_ftopk [topk] (the suffix, which then
 *            replaces a front slot's own top-k; other slots' is stale and
 *            dropped): nx_window_decode reads them when given a
 *            `legacy` callback and hands it each slot's HLL with the last
 *            second the slot covers (the engine turns them into its
 *            sliding HLL); the suffix and back HLLs are dropped.
 * nx_tier:   svar newest | svar oldest | uvar cap | cap x (f64 count, sum,
 *            min, max) in ring order.
 * Decoders check every count and index against the configuration (nfront <=
 * n, nonempty equals the non-empty slots, cap <= buckets, sketch alpha /
 * precision / capacity equal to the engine's, sketches only where the type
 * has them) and return NX_ECORRUPT (or NX_ENOMEM); the object being decoded
 * must then be freed by the caller. */
struct nx_rbuf;
int nx_acc_encode(const nx_acc *a, nx_buf *out);
int nx_acc_decode(struct nx_rbuf *in, nx_acc *a, const nx_acc_params *p, nx_type type);
/* NX_EINVAL while w->flazy: call nx_window_front_build first (the format
 * holds the front's suffixes). */
int nx_window_encode(const nx_window *w, nx_buf *out);
typedef int (*nx_window_legacy_hll_fn)(void *arg, const nx_hll *slot, int64_t last_sec);
/* wide: the format's version allows a wide current top-k (engine version
 * 10 on; refused as corrupt otherwise). */
int nx_window_decode(struct nx_rbuf *in, nx_window *w, const nx_acc_params *p, nx_type type,
                     bool wide, nx_window_legacy_hll_fn legacy, void *legacy_arg);
/* After decoding a window's slots: fskip := the leading front slots
 * without a suffix (sets), NX_ECORRUPT when one of them holds data. */
int nx_window_front_decoded(nx_window *w, nx_type type);
int nx_tier_encode(const nx_tier *t, nx_buf *out);
int nx_tier_decode(struct nx_rbuf *in, nx_tier *t);

#endif
