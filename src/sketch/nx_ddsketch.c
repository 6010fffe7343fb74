/*
 * nx_ddsketch.c — relative-error quantile sketch (DDSketch; see nx_ddsketch.h).
 *
 * Mapping
 *   gamma = (1 + alpha) / (1 - alpha). A value x with |x| >= NX_DD_MIN_INDEXABLE
 *   (DBL_MIN, the smallest normal double) goes to key k = ceil(ln|x| / ln gamma);
 *   every x in (gamma^(k-1), gamma^k] is within relative error alpha of the
 *   bin's representative 2 gamma^k / (gamma + 1). Positive values live in
 *   `pos`, negative ones (by |x|) in `neg`, |x| < DBL_MIN in the zero count.
 *   The log is libm's log(): measured ~2x cheaper end to end than anything
 *   with a polynomial that would also need a corrected gamma, and exact bins
 *   make the merge-equals-union property trivial to reason about.
 *   alpha is restricted to [1e-4, 0.5], so every key fits in +-4e6 (int32).
 *
 * Quantile definition (as the reference implementation, DataDog/sketches-go):
 *   for q in [0,1], rank = q * (count - 1); walk the bins from the most
 *   negative value up (neg store by decreasing key, zero, pos store by
 *   increasing key) and return the representative of the first bin whose
 *   cumulative count exceeds rank. With unit weights this estimates the
 *   order statistic x_(floor(q*(n-1))) (0-based) within relative error alpha.
 *
 * Stores (one per sign)
 *   sparse: sorted int32 keys + double counts in one block, used while the
 *           key range is more than 1.5x the number of bins (dense would be
 *           bigger) or there are fewer than NX_DD_DENSE_MIN (16) bins.
 *           add = binary search (+ memmove for a new key).
 *           A merge of two sparse stores holding 32 or more entries
 *           together, over a key range of at most 8x that, makes dst dense
 *           first (merge_goes_dense): the stores merged into again and
 *           again (a window's aggregate, a coarser window's current
 *           sub-bucket) then cost O(src) per merge and subtraction, not
 *           O(dst + src).
 *   A dense store goes back to sparse when its keys are far too spread for
 *   it (range > 2.5x its non-zero bins): when an add must widen its array,
 *   and when it is cleared for reuse (judged by what it held). The gap
 *   between 1.5x and 2.5x keeps a store near one threshold from switching
 *   at every close. Why: bucket sketches are recycled between roles, and a
 *   one-second sketch of ~30 values (~30 bins over a range of ~100-150) was
 *   a 1-1.5 KB dense array forever; it is now a ~600-byte sparse one.
 *   dense:  doubles over keys [lo, lo + cap); add = one bounds check and one
 *           store. The array grows geometrically with slack on both sides,
 *           so once the range of the stream is covered no add allocates;
 *           nx_ddsketch_fit cuts it back to the used range (windows have
 *           it done, by nx_ddsketch_freeze, when a sub-bucket completes:
 *           store_fit says why).
 *   frozen: a dense store whose counts are floats, each exactly the double
 *           it stands for (nx_ddsketch_freeze: a window's complete
 *           sub-bucket of 5 s or more, NX_WINDOW_FREEZE_S); read like a
 *           dense store (STORE_FOREACH, dense_get, store_sub's fast
 *           path), turned back into doubles by every public function that
 *           writes it.
 *   Bound: the key range [min_key, max_key] of each store never exceeds
 *   max_bins. Past it the LOWEST VALUES are collapsed: the pos store folds
 *   its lowest keys into the bin max_key - max_bins + 1, the neg store its
 *   highest keys (most negative values) into min_key + max_bins - 1. Upper
 *   quantiles keep the guarantee; quantiles falling in a folded bin may not
 *   (nx_ddsketch_collapsed() reports it). Folding commutes with merging
 *   (fold(fold(a) + fold(b)) == fold(a + b), thresholds only rise), so merge
 *   stays exact even for collapsed sketches. Memory bound per sketch:
 *   2 * max_bins * 8 bytes + the struct (default 2048 bins: ~32 KiB).
 *
 * Subtraction (windows' subtract-on-evict): bin-wise, a result <= 1e-9 of
 *   the bin's previous count is residue and becomes 0; zero bins are
 *   dropped/trimmed; when no bin is left the sketch is exactly empty
 *   (count 0; the bin buffers are kept for reuse, as by nx_ddsketch_clear). A key of src outside dst's range (it was folded
 *   in dst) is subtracted from the fold bin.
 *
 * Serialized layout (little-endian; the version is in the caller's frame):
 *   f64   alpha                 in [1e-4, 0.5]
 *   uvar  max_bins              in [16, 65536]
 *   u8    flags                 bit 0: collapsed; other bits 0
 *   f64   zero_count            finite, >= 0
 *   store neg, then store pos:
 *     uvar  nbins               number of non-zero bins, <= max_bins
 *     if nbins > 0:
 *       svar  first key         (zigzag varint)
 *       f64   its count         finite, > 0
 *       (nbins - 1) times:
 *         uvar  key delta       >= 1 (keys strictly increasing)
 *         f64   count           finite, > 0
 *   Keys must lie in the mapping's key range and each store's range must be
 *   <= max_bins. Anything else decodes to NX_ECORRUPT.
 */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/nx_codec.h"
#include "common/nx_sort.h"
#include "sketch/nx_ddsketch.h"

#define NX_DD_MIN_ALPHA 1e-4
#define NX_DD_MAX_ALPHA 0.5
#define NX_DD_MIN_BINS 16u
#define NX_DD_MAX_BINS 65536u
#define NX_DD_MIN_INDEXABLE DBL_MIN
#define NX_DD_RESIDUE 1e-9
#define NX_DD_BATCH 16 /* values one add_packed call handles together */

typedef struct dd_store {
    double *counts; /* sparse: [cap] counts, then [cap] int32 keys; dense: [cap];
                     * frozen (f32): [cap] floats, read through dense_get() */
    int32_t *keys;  /* sparse only: points into the counts block */
    uint32_t n;     /* sparse: number of entries */
    uint32_t cap;   /* allocated slots */
    int32_t lo;     /* dense: key of counts[0] */
    int32_t min_key, max_key; /* range of used keys (valid when used) */
    double total;   /* sum of the bins, kept up to date (no walk per merge) */
    uint8_t dense;
    uint8_t used;      /* at least one key since the last clear */
    uint8_t fold_high; /* neg store: collapse the highest keys */
    uint8_t f32;       /* frozen: a dense store whose counts are floats, each
                        * exactly the double it stands for (store_freeze);
                        * only read — every writer thaws it first */
} dd_store;

struct nx_ddsketch {
    double alpha, gamma, ln_gamma, inv_ln_gamma, rep_factor;
    int32_t key_min, key_max; /* keys of DBL_MIN and DBL_MAX */
    uint32_t max_bins;
    double zero;
    double count;
    uint8_t collapsed;
    dd_store pos, neg;
};

/* ---- mapping ------------------------------------------------------------ */

static inline int32_t key_of(double inv_ln_gamma, double absx)
{
    return (int32_t)ceil(log(absx) * inv_ln_gamma);
}

static inline int32_t dd_key(const nx_ddsketch *s, double absx)
{
    return key_of(s->inv_ln_gamma, absx);
}

static double dd_value(const nx_ddsketch *s, int32_t key)
{
    double v = exp((double)key * s->ln_gamma) * s->rep_factor;
    return isfinite(v) ? v : DBL_MAX;
}

/* ---- stores ------------------------------------------------------------- */

static void store_free(dd_store *st)
{
    free(st->counts);
    uint8_t fh = st->fold_high;
    memset(st, 0, sizeof *st);
    st->fold_high = fh;
}

/* A dense store whose content was far too sparse for it (range > 2.5 x
 * its non-zero bins: dense_too_sparse) becomes an empty sparse store with
 * room for that many bins; returns false (and changes nothing)
 * when it stays dense or the block cannot be had. */
static int store_make_sparse(dd_store *st, uint32_t nnz, bool keep);

static uint32_t dense_nonzero(const dd_store *st)
{
    uint32_t nnz = 0;
    if (st->used)
        for (int32_t k = st->min_key; k <= st->max_key; k++)
            nnz += st->counts[k - st->lo] > 0;
    return nnz;
}

/* The rule that keeps a store sparse: its key range is more than 1.5x its
 * non-zero bins (a dense array would be bigger). */
static inline bool sparse_worthy(uint64_t range, uint64_t nnz)
{
    return range * 2 > nnz * 3;
}

/* The rule that turns a dense store sparse again: its key range is more
 * than 2.5x its non-zero bins (the dense array is about twice the sparse
 * block). Between 1.5x and 2.5x a store keeps the representation it has,
 * so that a bucket sketch whose content hovers around one threshold does
 * not reallocate at every close. */
static inline bool dense_too_sparse(uint64_t range, uint64_t nnz)
{
    return range * 2 > nnz * 5;
}

static bool store_reset_to_sparse(dd_store *st)
{
    if (!st->used || st->max_key < st->min_key)
        return false;
    uint32_t nnz = dense_nonzero(st);
    /* nnz == 0: emptied by a subtraction, nothing to judge by: keep it */
    if (nnz == 0 || !dense_too_sparse((uint64_t)((int64_t)st->max_key - st->min_key + 1), nnz))
        return false;
    return store_make_sparse(st, nnz, false) == 0;
}

/* Empties the store. A sparse store keeps its block with n = 0. A dense
 * store stays dense, every bin zero and the sentinel range [INT32_MAX,
 * INT32_MIN], which the add fast paths extend like any other range — unless
 * what it held was far too sparse for it: then it becomes sparse again
 * (store_reset_to_sparse). Why: sketches are recycled between roles (the
 * open second, the pending ring, window slots) and a dense array never
 * shrinks, so a one-second sketch (~30 values, ~30 bins over a range of
 * ~150) that was ever dense stayed a 1.2-1.6 KB dense array for good, and
 * every merge into and subtraction from the 10 s window's aggregate walked
 * that whole range. The price is one allocation when a store's content
 * changes representation, not one per close.
 * Invariant used here: a dense store's non-zero bins lie in [min_key,
 * max_key] (every writer clamps to or extends that range, trims zero). */
static void store_reset(dd_store *st)
{
    if (st->dense && store_reset_to_sparse(st)) {
        st->used = 0;
        st->total = 0;
        return;
    }
    if (st->dense) {
        if (st->used && st->max_key >= st->min_key)
            memset(st->counts + (st->min_key - st->lo), 0,
                   (size_t)((int64_t)st->max_key - st->min_key + 1) * sizeof(double));
        st->min_key = INT32_MAX;
        st->max_key = INT32_MIN;
    } else {
        st->n = 0;
        st->min_key = st->max_key = 0;
    }
    st->used = 0;
    st->total = 0;
}

static size_t store_bytes(const dd_store *st)
{
    if (!st->counts)
        return 0;
    if (st->f32)
        return (size_t)st->cap * sizeof(float);
    return (size_t)st->cap * (st->dense ? sizeof(double) : sizeof(double) + sizeof(int32_t));
}

/* Calls fn(key, count) for each non-zero bin in increasing key order. */
#define STORE_FOREACH(st, KEY, CNT, BODY)                                              \
    do {                                                                               \
        if ((st)->f32) {                                                               \
            const float *f_ = (const float *)(const void *)(st)->counts;               \
            if ((st)->used)                                                            \
                for (int32_t KEY = (st)->min_key; KEY <= (st)->max_key; KEY++) {       \
                    double CNT = f_[KEY - (st)->lo];                                   \
                    if (CNT > 0) { BODY }                                              \
                }                                                                      \
        } else if ((st)->dense) {                                                      \
            if ((st)->used)                                                            \
                for (int32_t KEY = (st)->min_key; KEY <= (st)->max_key; KEY++) {       \
                    double CNT = (st)->counts[KEY - (st)->lo];                         \
                    if (CNT > 0) { BODY }                                              \
                }                                                                      \
        } else {                                                                       \
            for (uint32_t i_ = 0; i_ < (st)->n; i_++) {                                \
                int32_t KEY = (st)->keys[i_];                                          \
                double CNT = (st)->counts[i_];                                         \
                if (CNT > 0) { BODY }                                                  \
            }                                                                          \
        }                                                                              \
    } while (0)

/* The count of key k in a dense store (plain or frozen) whose array holds k. */
static inline double dense_get(const dd_store *st, int32_t k)
{
    return st->f32 ? (double)((const float *)(const void *)st->counts)[k - st->lo]
                   : st->counts[k - st->lo];
}

/* Fold bounds: given a candidate range [mn, mx], shrink it to max_bins per
 * the store's collapse direction. Returns 1 if it had to shrink. */
static int store_bound(const dd_store *st, uint32_t max_bins, int32_t *mn, int32_t *mx)
{
    if ((int64_t)*mx - *mn + 1 <= (int64_t)max_bins)
        return 0;
    if (st->fold_high)
        *mx = (int32_t)(*mn + (int64_t)max_bins - 1);
    else
        *mn = (int32_t)(*mx - (int64_t)max_bins + 1);
    return 1;
}

static inline int32_t clamp_key(int32_t k, int32_t mn, int32_t mx)
{
    return k < mn ? mn : (k > mx ? mx : k);
}

/* Rebuilds st as a dense store covering at least [mn, mx] (already within
 * max_bins), folding existing bins outside the range into its ends. */
static int store_make_dense(dd_store *st, uint32_t max_bins, int32_t mn, int32_t mx)
{
    assert(mx >= mn && (int64_t)mx - mn + 1 <= (int64_t)max_bins);
    uint32_t range = (uint32_t)((int64_t)mx - mn + 1);
    if (st->dense && !st->used && st->cap >= range) {
        /* an emptied dense store (all bins zero) that is wide enough:
         * re-centre it instead of reallocating */
        st->lo = (int32_t)(mn - (int64_t)(st->cap - range) / 2);
        st->min_key = mn;
        st->max_key = mx;
        st->used = 1;
        return 0;
    }
    if (st->dense && st->cap >= range && mn <= st->min_key && mx >= st->max_key) {
        /* the array is wide enough and nothing needs folding: slide the
         * used bins to re-centre instead of reallocating (window slots and
         * aggregates are refilled every second with slightly different
         * ranges; a calloc per merge showed up at ~10% of the profile) */
        int32_t lo = (int32_t)(mn - (int64_t)(st->cap - range) / 2);
        size_t len = (size_t)((int64_t)st->max_key - st->min_key + 1);
        double *from = st->counts + (st->min_key - st->lo);
        double *to = st->counts + (st->min_key - lo);
        memmove(to, from, len * sizeof(double));
        /* zero what the move left behind (bins outside the used range are
         * zero: the invariant of store_reset) */
        if (to < from) {
            double *z = to + len > from ? to + len : from;
            memset(z, 0, (size_t)(from + len - z) * sizeof(double));
        } else if (to > from) {
            double *ze = from + len < to ? from + len : to;
            memset(from, 0, (size_t)(ze - from) * sizeof(double));
        }
        st->lo = lo;
        st->min_key = mn;
        st->max_key = mx;
        return 0;
    }
    uint32_t cap = range + range / 4 + 8;
    if (st->dense && st->cap > cap)
        cap = st->cap;
    if (cap > max_bins + 16)
        cap = max_bins + 16;
    if (cap < range)
        cap = range;
    double *c = calloc(cap, sizeof *c);
    if (!c)
        return NX_ENOMEM;
    int32_t lo = (int32_t)(mn - (int64_t)(cap - range) / 2);
    STORE_FOREACH(st, k, v, { c[clamp_key(k, mn, mx) - lo] += v; });
    free(st->counts);
    st->counts = c;
    st->keys = NULL;
    st->cap = cap;
    st->n = 0;
    st->lo = lo;
    st->dense = 1;
    if (st->used) {
        st->min_key = clamp_key(st->min_key, mn, mx);
        st->max_key = clamp_key(st->max_key, mn, mx);
        if (mn < st->min_key)
            st->min_key = mn;
        if (mx > st->max_key)
            st->max_key = mx;
    } else {
        st->min_key = mn;
        st->max_key = mx;
    }
    st->used = 1;
    return 0;
}

/* Sparse: grows the block to hold at least need entries. */
static int sparse_reserve(dd_store *st, uint32_t need)
{
    if (need <= st->cap)
        return 0;
    uint32_t cap = st->cap ? st->cap * 2 : 8;
    while (cap < need)
        cap *= 2;
    double *blk = malloc((size_t)cap * (sizeof(double) + sizeof(int32_t)));
    if (!blk)
        return NX_ENOMEM;
    int32_t *keys = (int32_t *)(blk + cap);
    if (st->n) {
        memcpy(blk, st->counts, st->n * sizeof(double));
        memcpy(keys, st->keys, st->n * sizeof(int32_t));
    }
    free(st->counts);
    st->counts = blk;
    st->keys = keys;
    st->cap = cap;
    return 0;
}

/* Sparse: index of the first key >= k. */
static uint32_t sparse_find(const dd_store *st, int32_t k)
{
    uint32_t a = 0, b = st->n;
    while (a < b) {
        uint32_t m = (a + b) / 2;
        if (st->keys[m] < k)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* Sparse: folds entries outside [mn, mx] into the end bins. */
static void sparse_fold(dd_store *st, int32_t mn, int32_t mx)
{
    uint32_t w = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        int32_t k = clamp_key(st->keys[i], mn, mx);
        if (w > 0 && st->keys[w - 1] == k) {
            st->counts[w - 1] += st->counts[i];
        } else {
            st->keys[w] = k;
            st->counts[w] = st->counts[i];
            w++;
        }
    }
    st->n = w;
    st->min_key = clamp_key(st->min_key, mn, mx);
    st->max_key = clamp_key(st->max_key, mn, mx);
}

/* Sparse -> dense when dense would not be bigger (range <= 1.5 bins) and
 * the store has NX_DD_DENSE_MIN bins: a store's first keys always span a
 * small range (one key: a range of 1), and densifying then made every
 * recycled one-second sketch go dense -> sparse -> grow, three allocations
 * per stream and second. */
#define NX_DD_DENSE_MIN 16u
static int sparse_maybe_densify(dd_store *st, uint32_t max_bins)
{
    if (st->n < NX_DD_DENSE_MIN ||
        sparse_worthy((uint64_t)((int64_t)st->max_key - st->min_key + 1), st->n))
        return 0;
    return store_make_dense(st, max_bins, st->min_key, st->max_key);
}

/* Dense -> sparse, with room for nnz + 1/4 bins (nnz: its non-zero bins):
 * with the same content (keys, range, total) when `keep`, else empty. */
static int store_make_sparse(dd_store *st, uint32_t nnz, bool keep)
{
    uint32_t cap = 8;
    while (cap < nnz + nnz / 4 + 1)
        cap *= 2;
    double *blk = malloc((size_t)cap * (sizeof(double) + sizeof(int32_t)));
    if (!blk)
        return NX_ENOMEM;
    int32_t *keys = (int32_t *)(blk + cap);
    uint32_t n = 0;
    if (keep)
        STORE_FOREACH(st, k, c, {
            keys[n] = k;
            blk[n++] = c;
        });
    free(st->counts);
    st->counts = blk;
    st->keys = keys;
    st->cap = cap;
    st->n = n;
    st->lo = 0;
    st->dense = 0;
    if (!keep || !st->used)
        st->min_key = st->max_key = 0;
    return 0;
}

/* Whether a dense array has slack worth a copy to fit it to `range`. */
static inline bool fit_has_slack(const dd_store *st, uint32_t range)
{
    return st->cap > range + range / 8 + 8;
}

/* Fits a dense store's array to its used range [min_key, max_key], or
 * makes it sparse with the same bins when that range is far too sparse for
 * an array (dense_too_sparse); cuts a sparse store's block to its entries.
 * Why: arrays only grow, with slack on both sides, and sketches are
 * recycled between roles, so a window slot that once held five minutes of
 * a wide stream kept that array when it later held thirty seconds (arrays
 * were 1.27-1.45x their used range over a timer stream's sketches), and a
 * sparse block doubles as it grows (up to 2x its entries). Left alone:
 * empty stores and those within 1/8 (+ a few entries) of what they hold.
 * Best effort: without memory nothing changes. */
static void store_fit(dd_store *st)
{
    if (!st->dense) {
        /* sparse: the block doubles as it grows; keep exactly its entries */
        if (!st->n || st->cap <= st->n + st->n / 8 + 4)
            return;
        double *blk = malloc((size_t)st->n * (sizeof(double) + sizeof(int32_t)));
        if (!blk)
            return;
        int32_t *keys = (int32_t *)(blk + st->n);
        memcpy(blk, st->counts, st->n * sizeof(double));
        memcpy(keys, st->keys, st->n * sizeof(int32_t));
        free(st->counts);
        st->counts = blk;
        st->keys = keys;
        st->cap = st->n;
        return;
    }
    if (st->f32 || !st->used || st->max_key < st->min_key)
        return;
    uint32_t range = (uint32_t)((int64_t)st->max_key - st->min_key + 1);
    if (!fit_has_slack(st, range))
        return;
    uint32_t nnz = dense_nonzero(st);
    if (nnz && dense_too_sparse(range, nnz)) {
        (void)store_make_sparse(st, nnz, true);
        return;
    }
    double *c = malloc((size_t)range * sizeof *c);
    if (!c)
        return;
    memcpy(c, st->counts + (st->min_key - st->lo), (size_t)range * sizeof *c);
    free(st->counts);
    st->counts = c;
    st->cap = range;
    st->lo = st->min_key;
}

/* Freezes a dense store: its counts, cut to the used range, become floats
 * when every one of them is exactly a float (integers below 2^24 are: every
 * event of weight 1 or an integer rate), half the bytes of a fitted array.
 * Nothing is rounded, so whatever reads it (a subtraction from a window's
 * aggregate, an encoding) sees the very doubles it held. Returns false
 * (and changes nothing) when it is not dense, a count is not a float,
 * store_fit would make it sparse, or without memory. */
static bool store_freeze(dd_store *st)
{
    if (st->f32)
        return true;
    if (!st->dense || !st->used || st->max_key < st->min_key)
        return false;
    uint32_t range = (uint32_t)((int64_t)st->max_key - st->min_key + 1);
    const double *c = st->counts + (st->min_key - st->lo);
    uint32_t nnz = 0;
    for (uint32_t i = 0; i < range; i++) {
        if ((double)(float)c[i] != c[i])
            return false;
        nnz += c[i] > 0;
    }
    if (nnz && fit_has_slack(st, range) && dense_too_sparse(range, nnz))
        return false; /* store_fit makes it sparse */
    float *f = malloc((size_t)range * sizeof *f);
    if (!f)
        return false;
    for (uint32_t i = 0; i < range; i++)
        f[i] = (float)c[i];
    free(st->counts);
    st->counts = (double *)(void *)f;
    st->cap = range;
    st->lo = st->min_key;
    st->f32 = 1;
    return true;
}

/* Back to doubles before anything writes the store. */
static int store_thaw(dd_store *st)
{
    if (!st->f32)
        return 0;
    double *c = malloc((size_t)st->cap * sizeof *c);
    if (!c)
        return NX_ENOMEM;
    const float *f = (const float *)(const void *)st->counts;
    for (uint32_t i = 0; i < st->cap; i++)
        c[i] = f[i];
    free(st->counts);
    st->counts = c;
    st->f32 = 0;
    return 0;
}

static int dd_thaw(nx_ddsketch *s)
{
    int rc = store_thaw(&s->pos);
    return rc ? rc : store_thaw(&s->neg);
}

/* Slow path of an add: key outside the dense array, or a sparse store. */
static int store_add_slow(dd_store *st, uint32_t max_bins, int32_t k, double w, uint8_t *collapsed)
{
    int32_t mn = st->used ? (k < st->min_key ? k : st->min_key) : k;
    int32_t mx = st->used ? (k > st->max_key ? k : st->max_key) : k;
    if (store_bound(st, max_bins, &mn, &mx))
        *collapsed = 1;
    k = clamp_key(k, mn, mx);
    if (st->dense) {
        if (k < st->lo || (int64_t)k >= (int64_t)st->lo + st->cap || mn < st->lo ||
            (int64_t)mx >= (int64_t)st->lo + st->cap || mn > st->min_key || mx < st->max_key) {
            /* the array must change: widen it, or, when the bins would be
             * far too sparse over the new range, go sparse (else a store
             * that was dense once stayed dense however spread its keys) */
            uint32_t nnz = dense_nonzero(st);
            int rc = dense_too_sparse((uint64_t)((int64_t)mx - mn + 1), nnz + 1ull)
                         ? store_make_sparse(st, nnz, true)
                         : store_make_dense(st, max_bins, mn, mx);
            if (rc)
                return rc;
        }
    }
    if (st->dense) {
        st->counts[k - st->lo] += w;
        st->min_key = mn;
        st->max_key = mx;
        st->used = 1;
        st->total += w;
        return 0;
    }
    if (st->used && (mn > st->min_key || mx < st->max_key))
        sparse_fold(st, mn, mx);
    uint32_t i = sparse_find(st, k);
    if (i < st->n && st->keys[i] == k) {
        st->counts[i] += w;
    } else {
        int rc = sparse_reserve(st, st->n + 1);
        if (rc)
            return rc;
        memmove(st->keys + i + 1, st->keys + i, (st->n - i) * sizeof(int32_t));
        memmove(st->counts + i + 1, st->counts + i, (st->n - i) * sizeof(double));
        st->keys[i] = k;
        st->counts[i] = w;
        st->n++;
    }
    st->min_key = mn;
    st->max_key = mx;
    st->used = 1;
    st->total += w;
    return sparse_maybe_densify(st, max_bins);
}

/* c plus r adds of w, rounded as r adds are. With w == 1 and c a whole
 * number below 2^52 (counts of events without sample rates) every partial
 * sum is exact, so one add of r is the same (r < 2^32). */
static inline double add_times(double c, double w, uint64_t r)
{
    if (w == 1 && c >= 0 && c < 0x1p52 && c == (double)(int64_t)c && r < (1ull << 32))
        return c + (double)r;
    for (; r > 0; r--)
        c += w;
    return c;
}

/* Adds m keys (ascending; with mult distinct, key k[j] mult[j] times;
 * without, repeats allowed, each once), each with weight w, to a
 * sparse store in one merge pass: the new ones counted, and the store's
 * entries and the new keys merged from the back, in place. One-by-one adds
 * paid a binary search and two memmoves per key; a one-second sketch gets
 * its values this way, from the stream's bin buffer and bin log. The bins,
 * counts (w added once per key, as one-by-one adds do, so the sums round
 * the same) and total are those one-by-one adds give; only the moment a
 * store turns dense may differ (checked once, at the end), which no reader
 * sees. Returns 1 when done, 0 when the caller must add one by one (a dense
 * store, or a range past max_bins: collapsing), or an error (nothing
 * added). */
static int sparse_add_sorted(dd_store *st, uint32_t max_bins, const int32_t *k,
                             const uint32_t *mult, uint32_t m, double w)
{
    if (st->dense || m == 0)
        return 0;
    int32_t mn = st->used && st->min_key < k[0] ? st->min_key : k[0];
    int32_t mx = st->used && st->max_key > k[m - 1] ? st->max_key : k[m - 1];
    if ((int64_t)mx - mn + 1 > (int64_t)max_bins)
        return 0;
    uint32_t n = st->n, fresh = 0;
    if (n == 0 && mult) {
        fresh = m; /* distinct keys into an empty store (a second's drain) */
    } else {
        for (uint32_t i = 0, j = 0; j < m;) { /* distinct keys the store does not hold */
            if (i < n && st->keys[i] < k[j]) {
                i++;
            } else {
                fresh += !(i < n && st->keys[i] == k[j]);
                int32_t key = k[j];
                while (j < m && k[j] == key)
                    j++;
            }
        }
    }
    int rc = sparse_reserve(st, n + fresh);
    if (rc)
        return rc;
    int64_t i = (int64_t)n - 1, j = (int64_t)m - 1, o = (int64_t)(n + fresh) - 1;
    while (j >= 0) {
        if (i >= 0 && st->keys[i] > k[j]) {
            st->keys[o] = st->keys[i];
            st->counts[o--] = st->counts[i--];
            continue;
        }
        double c = 0; /* a new key: 0 + w is w, as the first add stores */
        int32_t key = k[j];
        if (i >= 0 && st->keys[i] == key)
            c = st->counts[i--];
        for (; j >= 0 && k[j] == key; j--)
            c = add_times(c, w, mult ? mult[j] : 1);
        st->keys[o] = key;
        st->counts[o--] = c;
    }
    uint64_t events = 0;
    for (uint32_t j2 = 0; j2 < m; j2++)
        events += mult ? mult[j2] : 1;
    st->total = add_times(st->total, w, events);
    st->n = n + fresh;
    st->min_key = mn;
    st->max_key = mx;
    st->used = 1;
    /* without memory to turn dense it stays a valid sparse store (the next
     * add tries again): the keys are in */
    (void)sparse_maybe_densify(st, max_bins);
    return 1;
}

/* sparse_add_sorted of up to NX_DD_BATCH keys in any order. */
static int sparse_add_batch(dd_store *st, uint32_t max_bins, const int32_t *keys, uint32_t m,
                            double w)
{
    if (st->dense || m < 2 || m > NX_DD_BATCH)
        return 0;
    int32_t k[NX_DD_BATCH];
    for (uint32_t i = 0; i < m; i++) { /* insertion sort */
        uint32_t j = i;
        for (; j > 0 && k[j - 1] > keys[i]; j--)
            k[j] = k[j - 1];
        k[j] = keys[i];
    }
    return sparse_add_sorted(st, max_bins, k, NULL, m, w);
}

static inline int store_add(dd_store *st, uint32_t max_bins, int32_t k, double w, uint8_t *collapsed)
{
    if (st->dense) {
        int64_t i = (int64_t)k - st->lo;
        if (i >= 0 && i < st->cap && k >= st->min_key && k <= st->max_key) {
            st->counts[i] += w;
            st->total += w;
            return 0;
        }
        /* inside the array but outside the used range: cheap extension,
         * unless it would exceed max_bins */
        if (i >= 0 && i < st->cap && (int64_t)st->max_key - k < (int64_t)max_bins &&
            (int64_t)k - st->min_key < (int64_t)max_bins) {
            st->counts[i] += w;
            st->total += w;
            if (k < st->min_key)
                st->min_key = k;
            if (k > st->max_key)
                st->max_key = k;
            st->used = 1;
            return 0;
        }
    }
    return store_add_slow(st, max_bins, k, w, collapsed);
}

/* Drops zero bins of a sparse store / trims a dense store's range; frees
 * the store when nothing is left. */
static void store_trim(dd_store *st)
{
    if (!st->used)
        return;
    if (st->dense) {
        int32_t a = st->min_key, b = st->max_key;
        while (a <= b && !(st->counts[a - st->lo] > 0))
            st->counts[a++ - st->lo] = 0;
        while (b >= a && !(st->counts[b - st->lo] > 0))
            st->counts[b-- - st->lo] = 0;
        if (a > b) {
            store_reset(st);
            return;
        }
        st->min_key = a;
        st->max_key = b;
        return;
    }
    uint32_t w = 0;
    for (uint32_t i = 0; i < st->n; i++)
        if (st->counts[i] > 0) {
            st->keys[w] = st->keys[i];
            st->counts[w] = st->counts[i];
            w++;
        }
    st->n = w;
    if (w == 0) {
        store_reset(st);
        return;
    }
    st->min_key = st->keys[0];
    st->max_key = st->keys[w - 1];
}

static double store_total(const dd_store *st)
{
    return st->used ? st->total : 0;
}

/* Whether a merge of two sparse stores makes dst dense first. A sparse
 * merge walks (and moves) all of dst, O(n1 + n2); a dense one touches only
 * src's bins, O(n2). The stores merged into again and again — a window's
 * aggregate (one merge and one subtraction per sub-bucket), the current
 * sub-bucket of a window fed by a finer one (one merge per sub-bucket of
 * the feeder), a read's result — reach NX_DD_MERGE_DENSE_MIN entries
 * within seconds and then take the dense path for good; a store merged
 * into once (a one-second sketch) stays sparse. The range bound keeps a
 * wide, thin store sparse (dense would be more than ~5x its sparse block).
 * Complete window sub-buckets are fitted (by nx_ddsketch_freeze), which makes a
 * too sparse dense store sparse again, and a cleared store is judged by
 * what it held (store_reset_to_sparse), so memory stays as it was: bench
 * NX_BENCH_STEADY distribution stream 93.3 -> 96.0 KB. */
#define NX_DD_MERGE_DENSE_MIN 32u
static inline bool merge_goes_dense(const dd_store *dst, const dd_store *src, int32_t mn,
                                    int32_t mx)
{
    uint64_t n = (uint64_t)dst->n + src->n, range = (uint64_t)((int64_t)mx - mn + 1);
    return n >= NX_DD_MERGE_DENSE_MIN && range <= 8 * n;
}

/* dst += src, same max_bins. */
static int store_merge(dd_store *dst, const dd_store *src, uint32_t max_bins, uint8_t *collapsed)
{
    if (!src->used)
        return 0;
    int32_t mn = src->min_key, mx = src->max_key;
    if (dst->used) {
        if (dst->min_key < mn)
            mn = dst->min_key;
        if (dst->max_key > mx)
            mx = dst->max_key;
    }
    if (store_bound(dst, max_bins, &mn, &mx))
        *collapsed = 1;
    if (dst->dense || src->dense || merge_goes_dense(dst, src, mn, mx)) {
        if (!dst->dense || mn < dst->lo || (int64_t)mx >= (int64_t)dst->lo + dst->cap ||
            (dst->used && (mn > dst->min_key || mx < dst->max_key))) {
            int rc = store_make_dense(dst, max_bins, mn, mx);
            if (rc)
                return rc;
        }
        if (src->dense && !src->f32 && src->min_key >= mn && src->max_key <= mx) {
            /* no folding: a straight (vectorizable) bin-wise add; zero
             * bins add nothing (a frozen src takes the loop below) */
            double *d = dst->counts + (src->min_key - dst->lo);
            const double *sc = src->counts + (src->min_key - src->lo);
            uint32_t len = (uint32_t)((int64_t)src->max_key - src->min_key + 1);
            for (uint32_t x = 0; x < len; x++)
                d[x] += sc[x];
        } else {
            STORE_FOREACH(src, k, c, { dst->counts[clamp_key(k, mn, mx) - dst->lo] += c; });
        }
        dst->min_key = mn;
        dst->max_key = mx;
        dst->total = store_total(dst) + src->total;
        dst->used = 1;
        return 0;
    }
    /* both sparse: linear merge in place, from the top down (dst grows to
     * n1 + n2 entries first; the write position never passes the read
     * position of dst, and clamping is monotonic so equal keys are
     * adjacent), then the result is moved down to the start. */
    double total = store_total(dst) + src->total;
    uint32_t n1 = dst->n, n2 = src->n;
    int rc = sparse_reserve(dst, n1 + n2);
    if (rc)
        return rc;
    int64_t i = (int64_t)n1 - 1, j = (int64_t)n2 - 1;
    uint32_t w = n1 + n2; /* entries [w, n1 + n2) are written */
    while (i >= 0 || j >= 0) {
        int32_t k;
        double c;
        if (j < 0 || (i >= 0 && dst->keys[i] > src->keys[j])) {
            k = dst->keys[i];
            c = dst->counts[i--];
        } else if (i < 0 || src->keys[j] > dst->keys[i]) {
            k = src->keys[j];
            c = src->counts[j--];
        } else {
            k = dst->keys[i];
            c = dst->counts[i--] + src->counts[j--];
        }
        k = clamp_key(k, mn, mx);
        if (w < n1 + n2 && dst->keys[w] == k) {
            dst->counts[w] += c;
        } else {
            assert(w > 0 && (int64_t)w - 1 > i);
            w--;
            dst->keys[w] = k;
            dst->counts[w] = c;
        }
    }
    uint32_t n = n1 + n2 - w;
    if (w > 0) {
        memmove(dst->keys, dst->keys + w, n * sizeof(int32_t));
        memmove(dst->counts, dst->counts + w, n * sizeof(double));
    }
    dst->n = n;
    dst->used = 1;
    dst->min_key = mn;
    dst->max_key = mx;
    dst->total = total;
    return sparse_maybe_densify(dst, max_bins);
}

/* *bin -= c, a residue (<= NX_DD_RESIDUE of the old count) becoming 0;
 * *total follows. The one copy of store_sub's arithmetic (its fast path
 * and its general loop; a frozen src hands floats, each exactly its
 * double). */
static inline void sub_bin(double *bin, double c, double *total)
{
    double old = *bin, v = old - c;
    double nv = v <= NX_DD_RESIDUE * old ? 0 : v;
    *bin = nv;
    *total -= old - nv;
}

/* dst -= src, clamping residue; see the file comment. */
static void store_sub(dd_store *dst, const dd_store *src)
{
    if (!src->used || !dst->used)
        return;
    if (dst->dense && src->dense && src->min_key >= dst->min_key && src->max_key <= dst->max_key) {
        /* no clamping: one pass without a branch per bin (the general loop
         * below mispredicted on every other bin of a one-second sketch). A
         * zero bin of src changes nothing (old - 0 is old; a zero stays
         * zero) and subtracts exactly 0 from the total, so this is the
         * same arithmetic, in the same order, as the loop below. */
        double *d = dst->counts + (src->min_key - dst->lo);
        uint32_t len = (uint32_t)((int64_t)src->max_key - src->min_key + 1);
        double total = dst->total;
        if (src->f32) { /* a frozen window slot leaving its window: the same doubles */
            const float *sc = (const float *)(const void *)src->counts + (src->min_key - src->lo);
            for (uint32_t x = 0; x < len; x++)
                sub_bin(&d[x], sc[x], &total);
        } else {
            const double *sc = src->counts + (src->min_key - src->lo);
            for (uint32_t x = 0; x < len; x++)
                sub_bin(&d[x], sc[x], &total);
        }
        dst->total = total;
        store_trim(dst);
        return;
    }
    STORE_FOREACH(src, k, c, {
        int32_t kk = clamp_key(k, dst->min_key, dst->max_key);
        double *p = NULL;
        if (dst->dense) {
            p = &dst->counts[kk - dst->lo];
        } else {
            uint32_t i = sparse_find(dst, kk);
            if (i < dst->n && dst->keys[i] == kk)
                p = &dst->counts[i];
        }
        if (p)
            sub_bin(p, c, &dst->total);
    });
    store_trim(dst);
}

/* ---- public API ---------------------------------------------------------- */

/* ln((1 + alpha) / (1 - alpha)), one expression for the sketch and for
 * callers that pack bins without one (the bins must be bit for bit equal) */
static double ln_gamma_of(double alpha)
{
    return log1p(2 * alpha / (1 - alpha));
}

double nx_ddsketch_inv_ln_gamma(double alpha)
{
    return 1.0 / ln_gamma_of(alpha);
}

static void dd_init(nx_ddsketch *s, double alpha, uint32_t max_bins)
{
    memset(s, 0, sizeof *s);
    s->alpha = alpha;
    s->gamma = (1 + alpha) / (1 - alpha);
    s->ln_gamma = ln_gamma_of(alpha);
    s->inv_ln_gamma = 1.0 / s->ln_gamma;
    s->rep_factor = 2.0 / (1.0 + s->gamma);
    s->max_bins = max_bins;
    s->key_min = dd_key(s, NX_DD_MIN_INDEXABLE);
    s->key_max = dd_key(s, DBL_MAX);
    s->neg.fold_high = 1;
}

static int dd_params_ok(double alpha, uint32_t max_bins)
{
    return alpha >= NX_DD_MIN_ALPHA && alpha <= NX_DD_MAX_ALPHA && max_bins >= NX_DD_MIN_BINS &&
           max_bins <= NX_DD_MAX_BINS;
}

int nx_ddsketch_create(double alpha, uint32_t max_bins, nx_ddsketch **out)
{
    if (!dd_params_ok(alpha, max_bins))
        return NX_EINVAL;
    nx_ddsketch *s = malloc(sizeof *s);
    if (!s)
        return NX_ENOMEM;
    dd_init(s, alpha, max_bins);
    *out = s;
    return 0;
}

void nx_ddsketch_destroy(nx_ddsketch *s)
{
    if (!s)
        return;
    store_free(&s->pos);
    store_free(&s->neg);
    free(s);
}

/* Empties the sketch, keeping its bin buffers for reuse (alpha and max_bins
 * are kept; nx_ddsketch_bytes still counts the buffers). */
void nx_ddsketch_clear(nx_ddsketch *s)
{
    /* a frozen store is dropped: an empty store like a new sketch's */
    if (s->pos.f32)
        store_free(&s->pos);
    if (s->neg.f32)
        store_free(&s->neg);
    store_reset(&s->pos);
    store_reset(&s->neg);
    s->zero = 0;
    s->count = 0;
    s->collapsed = 0;
}

static int store_copy(dd_store *dst, const dd_store *src)
{
    *dst = *src;
    if (!src->counts)
        return 0;
    size_t sz = store_bytes(src);
    dst->counts = malloc(sz);
    if (!dst->counts)
        return NX_ENOMEM;
    memcpy(dst->counts, src->counts, sz);
    dst->keys = src->dense ? NULL : (int32_t *)(dst->counts + dst->cap);
    return 0;
}

int nx_ddsketch_clone(const nx_ddsketch *s, nx_ddsketch **out)
{
    nx_ddsketch *c = malloc(sizeof *c);
    if (!c)
        return NX_ENOMEM;
    *c = *s;
    c->pos.counts = c->neg.counts = NULL;
    if (store_copy(&c->pos, &s->pos) || store_copy(&c->neg, &s->neg)) {
        nx_ddsketch_destroy(c);
        return NX_ENOMEM;
    }
    *out = c;
    return 0;
}

/* Prefetches the dense bin key k of st would take (nothing for a sparse
 * store or a key outside the array: the add's slow path handles those). */
static inline void store_prefetch(const dd_store *st, int32_t k)
{
    int64_t i = (int64_t)k - st->lo;
    if (st->dense && i >= 0 && i < st->cap)
        __builtin_prefetch(st->counts + i, 1);
}

/* At most this many lines of one store: a one-second sketch's sparse
 * block (~30 bins: 4 lines of counts, 2 of keys) or a frozen 5 s one's
 * floats fit; a wide dense array is left to the hardware prefetcher, which
 * follows a sequential pass once it has started. */
#define NX_DD_PREFETCH_LINES 16u

static void store_prefetch_range(const void *base, size_t bytes)
{
    const char *p = base;
    size_t lines = (bytes + 63) / 64;
    if (lines > NX_DD_PREFETCH_LINES)
        lines = NX_DD_PREFETCH_LINES;
    for (size_t i = 0; i < lines; i++)
        __builtin_prefetch(p + i * 64);
}

static void store_prefetch_read(const dd_store *st)
{
    if (!st->used)
        return;
    if (!st->dense) {
        store_prefetch_range(st->counts, (size_t)st->n * sizeof(double));
        store_prefetch_range(st->keys, (size_t)st->n * sizeof(int32_t));
        return;
    }
    size_t each = st->f32 ? sizeof(float) : sizeof(double);
    const char *first = (const char *)st->counts + (size_t)(st->min_key - st->lo) * each;
    store_prefetch_range(first, ((size_t)((int64_t)st->max_key - st->min_key) + 1) * each);
}

void nx_ddsketch_prefetch(const nx_ddsketch *s)
{
    for (size_t off = 0; off < sizeof *s; off += 64)
        __builtin_prefetch((const char *)s + off);
}

void nx_ddsketch_prefetch_read(const nx_ddsketch *s)
{
    store_prefetch_read(&s->pos);
    store_prefetch_read(&s->neg);
}

/* packed = key * 4 + class; keys of accepted alphas stay far inside 2^28
 * (|key| <= 709.8 / ln(gamma) < 3.6e6 at alpha 1e-4) */
enum { PK_POS = 0, PK_NEG = 1, PK_ZERO = 2 };

int32_t nx_ddsketch_pack(double inv_ln_gamma, double value)
{
    if (value >= NX_DD_MIN_INDEXABLE)
        return key_of(inv_ln_gamma, value) * 4 + PK_POS;
    if (value <= -NX_DD_MIN_INDEXABLE)
        return key_of(inv_ln_gamma, -value) * 4 + PK_NEG;
    return PK_ZERO;
}

static inline uint32_t pk_class(int32_t p) { return (uint32_t)p & 3u; }
static inline int32_t pk_key(int32_t p) { return (p - (int32_t)pk_class(p)) / 4; }

int nx_ddsketch_add_packed(nx_ddsketch *s, const int32_t *packed, uint32_t n, double weight,
                           uint32_t *done)
{
    *done = 0;
    if (!isfinite(weight) || !(weight > 0))
        return NX_EINVAL;
    int thaw_rc = dd_thaw(s); /* a frozen sketch (a window's late event) */
    if (thaw_rc)
        return thaw_rc;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = pk_class(packed[i]);
        if (c != PK_ZERO)
            store_prefetch(c == PK_POS ? &s->pos : &s->neg, pk_key(packed[i]));
    }
    /* the common case: every value positive and the store sparse (a
     * one-second sketch): one merge pass */
    if (n <= NX_DD_BATCH && !s->pos.dense) {
        int32_t keys[NX_DD_BATCH];
        uint32_t m = 0;
        for (uint32_t i = 0; i < n && pk_class(packed[i]) == PK_POS; i++)
            keys[m++] = pk_key(packed[i]);
        int rc = m == n ? sparse_add_batch(&s->pos, s->max_bins, keys, m, weight) : 0;
        if (rc < 0)
            return rc;
        if (rc == 1) {
            for (uint32_t i = 0; i < n; i++)
                s->count += weight;
            *done = n;
            return 0;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        int rc = 0;
        uint32_t c = pk_class(packed[i]);
        if (c == PK_ZERO)
            s->zero += weight;
        else
            rc = store_add(c == PK_POS ? &s->pos : &s->neg, s->max_bins, pk_key(packed[i]), weight,
                           &s->collapsed);
        if (rc)
            return rc;
        s->count += weight;
        (*done)++;
    }
    return 0;
}

/* The distinct keys of n positive packed bins in ascending order (keys)
 * and how often each comes (mult), when the keys span fewer than
 * DD_NARROW_SPAN: a bitmap of the span and a count per key instead of a
 * sort. A second's ~30 values of a timer span ~100-450 keys at alpha 1%;
 * their insertion sort (~n^2/4 moves behind mispredicted compares) was 8%
 * of bench_engine's distribution run. Returns the number of distinct keys,
 * 0 when the span is wider (the caller sorts). n < 65536. */
#define DD_NARROW_SPAN 1024
static uint32_t keys_distinct_narrow(const int32_t *packed, uint32_t n, int32_t *keys,
                                     uint32_t *mult)
{
    int32_t mn = INT32_MAX, mx = INT32_MIN;
    for (uint32_t i = 0; i < n; i++) {
        int32_t k = pk_key(packed[i]);
        mn = k < mn ? k : mn;
        mx = k > mx ? k : mx;
    }
    if (n == 0 || n >= 65536 || (int64_t)mx - mn >= DD_NARROW_SPAN)
        return 0;
    uint32_t words = (uint32_t)(mx - mn) / 64 + 1;
    uint64_t bits[DD_NARROW_SPAN / 64];
    uint16_t cnt[DD_NARROW_SPAN]; /* set where bits says so */
    memset(bits, 0, words * sizeof bits[0]);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t o = (uint32_t)(pk_key(packed[i]) - mn);
        uint64_t b = 1ull << (o & 63);
        if (!(bits[o >> 6] & b)) {
            bits[o >> 6] |= b;
            cnt[o] = 0;
        }
        cnt[o]++;
    }
    uint32_t d = 0;
    for (uint32_t wi = 0; wi < words; wi++) {
        for (uint64_t x = bits[wi]; x; x &= x - 1) {
            uint32_t o = wi * 64 + (uint32_t)__builtin_ctzll(x);
            keys[d] = mn + (int32_t)o;
            mult[d++] = cnt[o];
        }
    }
    return d;
}

int nx_ddsketch_add_packed_all(nx_ddsketch *s, const int32_t *packed, uint32_t n, double weight,
                               uint32_t *scratch, uint32_t *done)
{
    *done = 0;
    if (!isfinite(weight) || !(weight > 0))
        return NX_EINVAL;
    if (n > NX_DD_BATCH) {
        int rc = dd_thaw(s);
        if (rc)
            return rc;
        uint32_t i = 0;
        if (!s->pos.dense)
            while (i < n && pk_class(packed[i]) == PK_POS)
                i++;
        if (i == n) {
            /* every value positive, a sparse store: the distinct keys in
             * order with their multiplicities (a narrow range), else the
             * keys sorted (as unsigned, with the sign bit flipped), merged
             * in one pass */
            uint32_t d = keys_distinct_narrow(packed, n, (int32_t *)scratch, scratch + n);
            if (d > 0) {
                rc = sparse_add_sorted(&s->pos, s->max_bins, (const int32_t *)scratch,
                                       scratch + n, d, weight);
            } else {
                for (i = 0; i < n; i++)
                    scratch[i] = (uint32_t)pk_key(packed[i]) ^ 0x80000000u;
                nx_sort_u32_with(scratch, n, scratch + n);
                for (i = 0; i < n; i++)
                    scratch[i] ^= 0x80000000u;
                rc = sparse_add_sorted(&s->pos, s->max_bins, (const int32_t *)scratch, NULL, n,
                                       weight);
            }
            if (rc < 0)
                return rc;
            if (rc == 1) {
                for (i = 0; i < n; i++)
                    s->count += weight;
                *done = n;
                return 0;
            }
        }
    }
    /* a dense store (its adds are one bin each), mixed signs, or a range
     * past max_bins (collapsing, which depends on the order): in order,
     * NX_DD_BATCH at a time */
    while (*done < n) {
        uint32_t m = n - *done < NX_DD_BATCH ? n - *done : NX_DD_BATCH, added;
        int rc = nx_ddsketch_add_packed(s, packed + *done, m, weight, &added);
        *done += added;
        if (rc)
            return rc;
    }
    return 0;
}

int nx_ddsketch_add_many(nx_ddsketch *s, const double *values, uint32_t n, double weight,
                         uint32_t *done)
{
    *done = 0;
    if (!isfinite(weight) || !(weight > 0))
        return NX_EINVAL;
    for (uint32_t i = 0; i < n; i++)
        if (!isfinite(values[i]))
            return NX_EINVAL;
    while (*done < n) {
        uint32_t m = n - *done < NX_DD_BATCH ? n - *done : NX_DD_BATCH, added;
        int32_t packed[NX_DD_BATCH];
        for (uint32_t i = 0; i < m; i++)
            packed[i] = nx_ddsketch_pack(s->inv_ln_gamma, values[*done + i]);
        int rc = nx_ddsketch_add_packed(s, packed, m, weight, &added);
        *done += added;
        if (rc)
            return rc;
    }
    return 0;
}

int nx_ddsketch_add(nx_ddsketch *s, double value, double weight)
{
    uint32_t done;
    return nx_ddsketch_add_many(s, &value, 1, weight, &done);
}

/* Sketches with different max_bins merge under dst's bound. */
int nx_ddsketch_merge(nx_ddsketch *dst, const nx_ddsketch *src)
{
    if (dst->alpha != src->alpha)
        return NX_EINVAL;
    int rc = dd_thaw(dst);
    if (rc)
        return rc;
    rc = store_merge(&dst->pos, &src->pos, dst->max_bins, &dst->collapsed);
    if (rc == 0)
        rc = store_merge(&dst->neg, &src->neg, dst->max_bins, &dst->collapsed);
    if (rc)
        return rc; /* dst may be partly merged; its count stays consistent */
    dst->zero += src->zero;
    dst->collapsed |= src->collapsed;
    dst->count = dst->zero + store_total(&dst->pos) + store_total(&dst->neg);
    return 0;
}

int nx_ddsketch_sub(nx_ddsketch *dst, const nx_ddsketch *src)
{
    if (dst->alpha != src->alpha)
        return NX_EINVAL;
    int rc = dd_thaw(dst);
    if (rc)
        return rc;
    store_sub(&dst->pos, &src->pos);
    store_sub(&dst->neg, &src->neg);
    double z = dst->zero - src->zero;
    dst->zero = z <= NX_DD_RESIDUE * dst->zero ? 0 : z;
    dst->count = dst->zero + store_total(&dst->pos) + store_total(&dst->neg);
    if (!(dst->count > 0))
        nx_ddsketch_clear(dst);
    return 0;
}

double nx_ddsketch_quantile(const nx_ddsketch *s, double q)
{
    if (!(s->count > 0) || !(q >= 0 && q <= 1))
        return NAN;
    double rank = q * (s->count - 1);
    double cum = 0;
    const dd_store *neg = &s->neg, *pos = &s->pos;
    if (neg->used) {
        if (neg->dense) {
            for (int32_t k = neg->max_key; k >= neg->min_key; k--) {
                cum += dense_get(neg, k);
                if (cum > rank)
                    return -dd_value(s, k);
            }
        } else {
            for (uint32_t i = neg->n; i-- > 0;) {
                cum += neg->counts[i];
                if (cum > rank)
                    return -dd_value(s, neg->keys[i]);
            }
        }
    }
    cum += s->zero;
    if (cum > rank)
        return 0;
    int32_t last = 0;
    int have = 0;
    STORE_FOREACH(pos, k, c, {
        cum += c;
        last = k;
        have = 1;
        if (cum > rank)
            return dd_value(s, k);
    });
    /* rounding left cum <= rank: the maximum */
    if (have)
        return dd_value(s, last);
    if (s->zero > 0)
        return 0;
    return neg->used ? -dd_value(s, neg->dense ? neg->min_key : neg->keys[0]) : NAN;
}

double nx_ddsketch_count(const nx_ddsketch *s) { return s->count; }
double nx_ddsketch_alpha(const nx_ddsketch *s) { return s->alpha; }
uint32_t nx_ddsketch_max_bins(const nx_ddsketch *s) { return s->max_bins; }
bool nx_ddsketch_collapsed(const nx_ddsketch *s) { return s->collapsed != 0; }

void nx_ddsketch_fit(nx_ddsketch *s)
{
    store_fit(&s->pos);
    store_fit(&s->neg);
}

/* A store that cannot be frozen is fitted instead (one copy either way). */
void nx_ddsketch_freeze(nx_ddsketch *s)
{
    if (!store_freeze(&s->pos))
        store_fit(&s->pos);
    if (!store_freeze(&s->neg))
        store_fit(&s->neg);
}

size_t nx_ddsketch_bytes(const nx_ddsketch *s)
{
    return sizeof *s + store_bytes(&s->pos) + store_bytes(&s->neg);
}

static int store_equal(const dd_store *a, const dd_store *b)
{
    /* compare the non-zero bins of two stores of any representation */
    size_t na = 0, nb = 0;
    STORE_FOREACH(a, k, c, { (void)k; (void)c; na++; });
    STORE_FOREACH(b, k, c, { (void)k; (void)c; nb++; });
    if (na != nb)
        return 0;
    int ok = 1;
    STORE_FOREACH(a, k, c, {
        double o = 0;
        if (b->dense) {
            if (b->used && k >= b->min_key && k <= b->max_key)
                o = dense_get(b, k);
        } else {
            uint32_t i = sparse_find(b, k);
            if (i < b->n && b->keys[i] == k)
                o = b->counts[i];
        }
        if (o != c)
            ok = 0;
    });
    return ok;
}

bool nx_ddsketch_equal(const nx_ddsketch *a, const nx_ddsketch *b)
{
    return a->alpha == b->alpha && a->max_bins == b->max_bins && a->zero == b->zero &&
           store_equal(&a->pos, &b->pos) && store_equal(&a->neg, &b->neg);
}

/* ---- codec --------------------------------------------------------------- */

static int store_encode(const dd_store *st, nx_buf *out)
{
    uint64_t n = 0;
    STORE_FOREACH(st, k, c, { (void)k; (void)c; n++; });
    int rc = nx_buf_uvar(out, n);
    int first = 1;
    int32_t prev = 0;
    STORE_FOREACH(st, k, c, {
        if (rc == 0)
            rc = first ? nx_buf_svar(out, k) : nx_buf_uvar(out, (uint64_t)((int64_t)k - prev));
        if (rc == 0)
            rc = nx_buf_f64(out, c);
        first = 0;
        prev = k;
    });
    return rc;
}

int nx_ddsketch_encode(const nx_ddsketch *s, nx_buf *out)
{
    size_t start = out->len;
    int rc = nx_buf_f64(out, s->alpha);
    if (rc == 0)
        rc = nx_buf_uvar(out, s->max_bins);
    if (rc == 0)
        rc = nx_buf_u8(out, s->collapsed ? 1 : 0);
    if (rc == 0)
        rc = nx_buf_f64(out, s->zero);
    if (rc == 0)
        rc = store_encode(&s->neg, out);
    if (rc == 0)
        rc = store_encode(&s->pos, out);
    if (rc)
        out->len = start;
    return rc;
}

static int store_decode(nx_ddsketch *s, dd_store *st, nx_rbuf *in)
{
    uint64_t n = nx_rbuf_uvar(in);
    if (in->err || n > s->max_bins || n > in->n / 9)
        return NX_ECORRUPT;
    if (n == 0)
        return 0;
    int64_t key = nx_rbuf_svar(in);
    int64_t first = key;
    int rc = sparse_reserve(st, (uint32_t)n);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < n; i++) {
        if (i > 0) {
            uint64_t d = nx_rbuf_uvar(in);
            if (d == 0 || d > (uint64_t)s->max_bins)
                return NX_ECORRUPT;
            key += (int64_t)d;
        }
        double c = nx_rbuf_f64(in);
        if (in->err || !(c > 0) || !isfinite(c) || key < s->key_min || key > s->key_max ||
            key - first >= (int64_t)s->max_bins)
            return NX_ECORRUPT;
        st->keys[i] = (int32_t)key;
        st->counts[i] = c;
        st->total += c;
    }
    st->n = (uint32_t)n;
    st->used = 1;
    st->min_key = (int32_t)first;
    st->max_key = (int32_t)key;
    return sparse_maybe_densify(st, s->max_bins);
}

int nx_ddsketch_decode(struct nx_rbuf *in, nx_ddsketch **out)
{
    double alpha = nx_rbuf_f64(in);
    uint64_t max_bins = nx_rbuf_uvar(in);
    uint8_t flags = nx_rbuf_u8(in);
    double zero = nx_rbuf_f64(in);
    if (in->err || !(alpha >= NX_DD_MIN_ALPHA && alpha <= NX_DD_MAX_ALPHA) ||
        max_bins < NX_DD_MIN_BINS || max_bins > NX_DD_MAX_BINS || (flags & ~1u) ||
        !isfinite(zero) || zero < 0)
        return NX_ECORRUPT;
    nx_ddsketch *s;
    int rc = nx_ddsketch_create(alpha, (uint32_t)max_bins, &s);
    if (rc)
        return rc;
    s->collapsed = flags & 1;
    s->zero = zero;
    rc = store_decode(s, &s->neg, in);
    if (rc == 0)
        rc = store_decode(s, &s->pos, in);
    if (rc) {
        nx_ddsketch_destroy(s);
        return rc;
    }
    s->count = s->zero + store_total(&s->pos) + store_total(&s->neg);
    if (!isfinite(s->count)) {
        nx_ddsketch_destroy(s);
        return NX_ECORRUPT;
    }
    *out = s;
    return 0;
}
