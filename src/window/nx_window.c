/*
 * nx_window.c — bucket accumulators, sliding windows (subtract-on-evict +
 * Two-Stacks) and series tiers. The design is at the top of nx_window.h;
 * this file adds the invariants the code keeps:
 *
 *  window, with c = cur_k:
 *    - complete sub-buckets are [c-n, c-1]; the current one is c; slot of
 *      sub-bucket k is slots[k mod (n+1)], so the slot of c-n-1 (just
 *      evicted) is the one the new current sub-bucket reuses;
 *    - front stack = complete sub-buckets [c-n, c-n+nfront-1]; slot i of it
 *      holds f* = aggregate of sub-buckets [i, c-n+nfront-1];
 *    - back stack = complete sub-buckets [c-n+nfront, c-1], aggregated in b*
 *      (a set's top-k there: in btopk, or, while bderived, in the fed
 *      window's sub-buckets; then c-n+nfront is a multiple of bgroup);
 *    - inv = moments (count/sum/mean/m2) and dd of the n complete slots
 *      (the current one joins when it completes);
 *    - nonempty = number of slots with data; 0 lets a long gap free the ring.
 *  A set stream's moments carry only count (sum/mean/m2 = 0, min/max = +-inf).
 *
 *  tier: points of indices (newest - buckets, newest] are retained; the
 *  ring holds (newest - cap, newest] and grows (never past `buckets`) before
 *  advancing would drop a retained point that has data (oldest tracks the
 *  oldest index written).
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "window/nx_window.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_topk.h"

/* modulo for possibly negative indices (nx_floordiv: nx_window.h) */
static inline uint32_t floormod(int64_t a, uint32_t m)
{
    int64_t r = a % (int64_t)m;
    if (r < 0)
        r += m;
    return (uint32_t)r;
}

/* ---- accumulators ------------------------------------------------------- */

void nx_acc_init(nx_acc *a)
{
    nx_moments_init(&a->m);
    a->dd = NULL;
    a->hll = NULL;
    a->topk = NULL;
}

void nx_acc_free(nx_acc *a)
{
    nx_ddsketch_destroy(a->dd);
    nx_hll_destroy(a->hll);
    nx_topk_destroy(a->topk);
    nx_acc_init(a);
}

void nx_acc_clear(nx_acc *a)
{
    nx_moments_init(&a->m);
    if (a->dd)
        nx_ddsketch_clear(a->dd);
    if (a->hll)
        nx_hll_clear(a->hll);
    if (a->topk)
        nx_topk_clear(a->topk);
}

static int ensure_dd(nx_ddsketch **d, const nx_acc_params *p)
{
    return *d ? 0 : nx_ddsketch_create(p->alpha, p->dd_max_bins, d);
}
static int ensure_hll(nx_hll **h, const nx_acc_params *p)
{
    return *h ? 0 : nx_hll_create(p->hll_precision, h);
}
static int ensure_topk(nx_topk **t, const nx_acc_params *p)
{
    return *t ? 0 : nx_topk_create(p->topk_capacity, t);
}

/* A set event's member goes to the top-k (windows keep no HLL). */
static int topk_add(nx_topk **t, const nx_acc_params *p, const char *member, uint32_t len,
                    double weight)
{
    int rc = ensure_topk(t, p);
    return rc ? rc : nx_topk_add(*t, member, len, weight);
}

int nx_acc_add_member(nx_acc *a, const nx_acc_params *p, uint64_t hash, const char *member,
                      uint32_t member_len, double weight)
{
    int rc = nx_acc_add_distinct(a, p, hash);
    return rc ? rc : nx_acc_add_member_counts(a, p, hash, member, member_len, weight);
}

int nx_acc_add_member_counts(nx_acc *a, const nx_acc_params *p, uint64_t hash,
                             const char *member, uint32_t member_len, double weight)
{
    int rc;
    if ((rc = ensure_topk(&a->topk, p)) ||
        (rc = nx_topk_add_hash(a->topk, member, member_len, hash, weight)))
        return rc;
    a->m.count += weight;
    return 0;
}

int nx_acc_add_distinct(nx_acc *a, const nx_acc_params *p, uint64_t hash)
{
    int rc = ensure_hll(&a->hll, p);
    return rc ? rc : nx_hll_add_hash(a->hll, hash);
}

int nx_acc_merge_distinct(nx_acc *dst, const nx_acc *src, const nx_acc_params *p)
{
    if (!src->hll)
        return 0;
    int rc = ensure_hll(&dst->hll, p);
    return rc ? rc : nx_hll_merge(dst->hll, src->hll);
}

int nx_acc_add(nx_acc *a, const nx_acc_params *p, nx_type type, double value,
               double weight, const char *member, uint32_t member_len)
{
    int rc;
    if (type == NX_TYPE_SET)
        return nx_acc_add_member(a, p, XXH3_64bits(member, member_len), member, member_len,
                                 weight);
    if (nx_type_has_quantiles(type)) {
        if ((rc = ensure_dd(&a->dd, p)) || (rc = nx_ddsketch_add(a->dd, value, weight)))
            return rc;
    }
    nx_moments_add(&a->m, value, weight);
    return 0;
}

int nx_acc_merge(nx_acc *dst, const nx_acc *src, const nx_acc_params *p)
{
    int rc;
    if (nx_acc_empty(src))
        return 0;
    if (src->dd) {
        if ((rc = ensure_dd(&dst->dd, p)) || (rc = nx_ddsketch_merge(dst->dd, src->dd)))
            return rc;
    }
    if (src->hll) {
        if ((rc = ensure_hll(&dst->hll, p)) || (rc = nx_hll_merge(dst->hll, src->hll)))
            return rc;
    }
    if (src->topk) {
        if ((rc = ensure_topk(&dst->topk, p)) || (rc = nx_topk_merge(dst->topk, src->topk)))
            return rc;
    }
    nx_moments_merge(&dst->m, &src->m);
    return 0;
}

size_t nx_acc_bytes(const nx_acc *a)
{
    size_t b = 0;
    if (a->dd)
        b += nx_ddsketch_bytes(a->dd);
    if (a->hll)
        b += nx_hll_bytes(a->hll);
    if (a->topk)
        b += nx_topk_bytes(a->topk);
    return b;
}

/* ---- sliding window ------------------------------------------------------ */

static void wslot_init(nx_wslot *s)
{
    nx_moments_init(&s->m);
    s->fmin = INFINITY;
    s->fmax = -INFINITY;
}

void nx_window_init(nx_window *w, uint32_t length_s, uint32_t bucket_s, nx_wslot *store)
{
    assert(bucket_s > 0 && length_s % bucket_s == 0 && length_s >= bucket_s);
    memset(w, 0, sizeof(*w));
    w->n = length_s / bucket_s;
    w->bucket_s = bucket_s;
    w->cur_k = INT64_MIN / 4;
    nx_acc_init(&w->inv);
    w->bmin = INFINITY;
    w->bmax = -INFINITY;
    w->store = store;
    w->direct_k = NX_WINDOW_NO_DIRECT;
    w->ilazy = nx_window_inv_lazy_ok(w);
}

static void window_free_data(nx_window *w)
{
    if (w->sk) {
        for (uint32_t i = 0; i <= w->n; i++) {
            nx_wsk *k = &w->sk[i];
            nx_ddsketch_destroy(k->dd);
            nx_topk_destroy(k->topk);
        }
        free(w->sk);
        w->sk = NULL;
    }
    if (w->slots != w->store)
        free(w->slots);
    w->slots = NULL;
    nx_acc_free(&w->inv);
    nx_topk_destroy(w->btopk);
    w->btopk = NULL;
    w->bmin = INFINITY;
    w->bmax = -INFINITY;
    w->nfront = 0;
    w->fskip = 0;
    w->flazy = 0;
    w->fread = 0;
    w->ilazy = nx_window_inv_lazy_ok(w);
    w->iquiet = 0;
    w->nonempty = 0;
    w->bderived = 0;
}

void nx_window_free(nx_window *w)
{
    window_free_data(w);
}

static inline uint32_t widx(const nx_window *w, int64_t k)
{
    return floormod(k, w->n + 1);
}

/* The sub-bucket of ring index i as an nx_acc (a view: store it back with
 * slot_store after changing it). */
static inline void slot_view(const nx_window *w, uint32_t i, nx_acc *a)
{
    a->m = w->slots[i].m;
    a->hll = NULL;
    if (w->sk) {
        a->dd = w->sk[i].dd;
        a->topk = w->sk[i].topk;
    } else {
        a->dd = NULL;
        a->topk = NULL;
    }
}

static inline void slot_store(nx_window *w, uint32_t i, const nx_acc *a)
{
    w->slots[i].m = a->m;
    if (w->sk) {
        w->sk[i].dd = a->dd;
        w->sk[i].topk = a->topk;
    }
    assert(!a->hll && (w->sk || (!a->dd && !a->topk)));
}

/* Allocates the ring (and its sketch array when the type has sketches). */
static int window_alloc(nx_window *w, bool sketches)
{
    if (!w->slots) {
        w->slots = w->store ? w->store : malloc(sizeof(nx_wslot) * (w->n + 1));
        if (!w->slots)
            return NX_ENOMEM;
        for (uint32_t i = 0; i <= w->n; i++)
            wslot_init(&w->slots[i]);
    }
    if (sketches && !w->sk) {
        w->sk = calloc(w->n + 1, sizeof(nx_wsk));
        if (!w->sk)
            return NX_ENOMEM;
    }
    return 0;
}

static void back_clear(nx_window *w)
{
    w->bmin = INFINITY;
    w->bmax = -INFINITY;
    if (w->btopk)
        nx_topk_clear(w->btopk);
}

/* Emptiness of a Two-Stacks aggregate: numeric types have min <= max once
 * they hold data; sets (whose min/max stay +-inf) have a non-zero top-k
 * total. Aggregates of sub-buckets that are not on their stack are stale
 * and never read. */
static inline bool topk_has(const nx_topk *t)
{
    return t && nx_topk_total(t) > 0;
}

/* One step of a suffix build, from the youngest front slot down: slot
 * i's top-k becomes the suffix of its sub-bucket and every younger front
 * one, whose suffix is in slot `next` (-1: i is the youngest). The suffix
 * is built in the slot's own top-k: once on the front stack, a
 * sub-bucket's own top-k is never read again. */
static int suffix_step(nx_window *w, const nx_acc_params *p, uint32_t i, int64_t next)
{
    nx_wsk *sk = &w->sk[i];
    const nx_wsk *nk = next >= 0 ? &w->sk[next] : NULL;
    bool mine = sk->topk && w->slots[i].m.count > 0, theirs = nk && topk_has(nk->topk);
    if (!theirs)
        return 0;
    int rc = ensure_topk(&sk->topk, p);
    if (rc)
        return rc;
    if (!mine)
        nx_topk_clear(sk->topk);
    return nx_topk_merge(sk->topk, nk->topk);
}

/* Sets: the next suffix step's destination is slot k - 1: its struct two
 * slots ahead, what it points to one ahead. */
static void suffix_prefetch(const nx_window *w, int64_t k, int64_t lo)
{
    if (k - 1 < lo)
        return;
    if (k - 2 >= lo && w->sk[widx(w, k - 2)].topk)
        __builtin_prefetch(w->sk[widx(w, k - 2)].topk);
    if (w->sk[widx(w, k - 1)].topk)
        nx_topk_prefetch_merge(w->sk[widx(w, k - 1)].topk);
}

int nx_window_front_build(nx_window *w, const nx_acc_params *p)
{
    if (!w->flazy)
        return 0;
    int64_t oldest = w->cur_k - (int64_t)w->n;
    int64_t f = oldest + (int64_t)w->fskip, fend = oldest + (int64_t)w->nfront;
    int64_t next = -1;
    for (int64_t k = fend - 1; k >= f; k--) {
        uint32_t i = widx(w, k);
        suffix_prefetch(w, k, f);
        int rc = suffix_step(w, p, i, next);
        if (rc)
            return rc;
        next = i;
    }
    w->flazy = 0;
    return 0;
}

/* Rebuilds the front stack from all n complete sub-buckets; the back
 * becomes empty, its top-k derived from now on when `derive`.
 * Usually the front is empty then, and a set's suffixes are left to build
 * until something needs them ("Lazy front" in nx_window.h): only the
 * min/max suffixes are built here. A flip that aligns the back (window_step)
 * may come while the front still holds sub-buckets [c-n, b-1]: a set's
 * top-k there is the suffix of [k, b-1] (built first if it was left to
 * build; its own content is gone), so it takes the new suffix of b
 * ([b, c-1]) instead of being rebuilt.
 * Suffixes start at f, the old front's top when it has one, else the oldest
 * non-empty back slot: the empty slots before f are front holes (nx_window.h)
 * and get no copy of f's suffix. */
static int window_flip(nx_window *w, const nx_acc_params *p, bool derive)
{
    int64_t c = w->cur_k, oldest = c - (int64_t)w->n;
    int64_t b = oldest + (int64_t)w->nfront; /* first back sub-bucket */
    int64_t f = oldest + (int64_t)w->fskip;  /* <= b: fskip <= nfront */
    int rc;
    if ((rc = nx_window_front_build(w, p)))
        return rc;
    if (f >= b)
        for (f = b; f < c && !(w->slots[widx(w, f)].m.count > 0); f++)
            ;
    /* left to build unless the window was read since its last flip: a
     * window that is read is likely read again before this flip period
     * ends, and a read that builds costs a merge per front slot */
    bool lazy = w->sk && w->nfront == 0 && !w->fread;
    int64_t next = -1, bslot = -1;
    bool topks = false; /* a set window's: quantile windows have none to build */
    for (int64_t k = c - 1; k >= oldest; k--) {
        uint32_t i = widx(w, k);
        nx_wslot *s = &w->slots[i];
        if (w->sk && !lazy)
            suffix_prefetch(w, k, oldest);
        if (lazy)
            topks |= w->sk[i].topk != NULL;
        s->fmin = s->m.min;
        s->fmax = s->m.max;
        if (next >= 0) {
            const nx_wslot *x = &w->slots[next];
            if (x->fmin < s->fmin)
                s->fmin = x->fmin;
            if (x->fmax > s->fmax)
                s->fmax = x->fmax;
        }
        if (!w->sk || lazy) {
            /* no top-k suffix now */
        } else if (k >= b && k >= f) {
            if ((rc = suffix_step(w, p, i, next)))
                return rc;
        } else if (k >= f && bslot >= 0 && topk_has(w->sk[bslot].topk)) {
            nx_wsk *sk = &w->sk[i]; /* a front slot: suffix of [k, b-1] */
            if ((rc = ensure_topk(&sk->topk, p)) ||
                (rc = nx_topk_merge(sk->topk, w->sk[bslot].topk)))
                return rc;
        }
        if (k == b)
            bslot = i;
        next = i;
    }
    w->nfront = w->n;
    w->fskip = (uint32_t)(f - oldest);
    w->flazy = lazy && topks;
    w->fread = 0;
    back_clear(w);
    w->bderived = derive;
    if (derive) { /* kept while the back was not aligned: unused from now on */
        nx_topk_destroy(w->btopk);
        w->btopk = NULL;
    }
    return 0;
}

static bool back_has(const nx_window *w)
{
    return w->bmin <= w->bmax || topk_has(w->btopk);
}

/* Hands the sub-bucket of ring index i (non-empty), which starts at
 * second sec, to the sink. */
static int window_hand_on(const nx_window *w, uint32_t i, int64_t sec, const nx_window_sink *sink)
{
    if (!sink || !(w->slots[i].m.count > 0))
        return 0;
    nx_acc a;
    slot_view(w, i, &a);
    return sink->fn(sink->arg, sec, &a);
}

/* ---- lazy inv (nx_window.h, "Lazy inv") ---------------------------------
 * Invariant: ilazy implies inv.dd == NULL and only nx_window_inv_lazy_ok
 * windows are ilazy; !ilazy means inv.dd is the DDSketch of the complete
 * slots (NULL while none had one). inv.m is kept either way. */

int nx_window_inv_sketch(const nx_window *w, nx_ddsketch **out)
{
    *out = NULL;
    if (!w->sk || !w->slots)
        return 0;
    for (int64_t k = w->cur_k - (int64_t)w->n; k < w->cur_k; k++) {
        uint32_t i = widx(w, k);
        const nx_ddsketch *d = w->sk[i].dd;
        if (!d || !(w->slots[i].m.count > 0))
            continue;
        int rc = *out ? nx_ddsketch_merge(*out, d) : nx_ddsketch_clone(d, out);
        if (rc) {
            nx_ddsketch_destroy(*out);
            *out = NULL;
            return rc;
        }
    }
    return 0;
}

/* A read of a lazy window: inv.dd from the complete slots, kept from now on. */
static int inv_build(nx_window *w)
{
    if (!w->ilazy)
        return 0;
    assert(!w->inv.dd);
    int rc = nx_window_inv_sketch(w, &w->inv.dd);
    if (rc)
        return rc;
    w->ilazy = 0;
    w->iquiet = 0;
    return 0;
}

/* One step of a kept inv: a window not read for n steps drops it. */
static void inv_age(nx_window *w)
{
    if (w->iquiet < w->n) {
        w->iquiet++;
        return;
    }
    nx_ddsketch_destroy(w->inv.dd);
    w->inv.dd = NULL;
    w->ilazy = 1;
}

/* A window of 1 s sub-buckets steps once per second of a flush (up to
 * the pending ring's length in a row), each step subtracting a cold sub-bucket
 * (closed n seconds ago) from inv: the next step's DDSketch struct is
 * fetched two steps ahead and its bins one step ahead (a sparse one-second
 * sketch's blocks are a dependent miss after the struct's), so the
 * subtraction finds them in cache. */
static void prefetch_evictions(const nx_window *w, int64_t c)
{
    const nx_ddsketch *d2 = w->sk[widx(w, c + 2 - (int64_t)w->n)].dd;
    const nx_ddsketch *d1 = w->sk[widx(w, c + 1 - (int64_t)w->n)].dd;
    if (d2)
        nx_ddsketch_prefetch(d2);
    if (d1 && w->slots[widx(w, c + 1 - (int64_t)w->n)].m.count > 0)
        nx_ddsketch_prefetch_read(d1);
}

/* One step: evict the oldest complete sub-bucket, push the current one to
 * the back stack (and hand it to the sink), and make the next sub-bucket
 * current. */
static int window_step(nx_window *w, const nx_acc_params *p, const nx_window_sink *sink)
{
    int rc;
    int64_t c = w->cur_k;
    uint32_t ei = widx(w, c - (int64_t)w->n);
    /* a flip at this step starts the back at sub-bucket c: derivable when
     * c is a multiple of bgroup (see "Derived back" in nx_window.h) */
    bool aligned = w->bgroup && floormod(c, w->bgroup) == 0 && sink && sink->derive_ok;
    bool flip = w->nfront == 0 && (back_has(w) || w->bderived);
    if (!flip && aligned && !w->bderived && w->nfront <= w->bgroup)
        flip = true; /* align early: the front would be spent within g steps */
    if (flip && (rc = window_flip(w, p, aligned)))
        return rc;
    if (w->nfront > 0)
        w->nfront--;
    if (w->fskip > 0)
        w->fskip--; /* a hole popped */
    if (!w->ilazy && nx_window_inv_lazy_ok(w))
        inv_age(w);
    if (w->sk && w->bucket_s == 1)
        prefetch_evictions(w, c);
    nx_wslot *e = &w->slots[ei];
    if (e->m.count > 0) {
        nx_moments_sub(&w->inv.m, &e->m);
        if (w->sk) {
            nx_wsk *sk = &w->sk[ei];
            if (sk->dd && w->inv.dd && (rc = nx_ddsketch_sub(w->inv.dd, sk->dd)))
                return rc;
            if (sk->dd)
                nx_ddsketch_clear(sk->dd);
        }
        nx_moments_init(&e->m);
        assert(w->nonempty > 0);
        w->nonempty--;
    }
    /* an empty sub-bucket's top-k may still hold its front suffix */
    if (w->sk && w->sk[ei].topk)
        nx_topk_clear(w->sk[ei].topk);
    /* push the current sub-bucket (now complete) onto the back stack, its
     * top-k cut to the engine's capacity first ("Wide current") */
    uint32_t ci = widx(w, c);
    const nx_wslot *s = &w->slots[ci];
    if (w->sk && w->sk[ci].topk && (rc = nx_topk_set_capacity(w->sk[ci].topk, p->topk_capacity)))
        return rc;
    if (s->m.count > 0) {
        nx_moments_merge(&w->inv.m, &s->m);
        if (w->sk && w->sk[ci].dd && !w->ilazy) {
            if ((rc = ensure_dd(&w->inv.dd, p)) ||
                (rc = nx_ddsketch_merge(w->inv.dd, w->sk[ci].dd)))
                return rc;
        }
        if (s->m.min < w->bmin)
            w->bmin = s->m.min;
        if (s->m.max > w->bmax)
            w->bmax = s->m.max;
        if (w->sk && w->sk[ci].topk && !w->bderived) {
            if ((rc = ensure_topk(&w->btopk, p)) ||
                (rc = nx_topk_merge(w->btopk, w->sk[ci].topk)))
                return rc;
        }
        if ((rc = window_hand_on(w, ci, c * (int64_t)w->bucket_s, sink)))
            return rc;
        /* complete: from now on read, subtracted and cleared (late events
         * aside), so its bins need only the room they take, as exact float
         * counts (half the bytes) where they are floats, which an add would
         * undo for one allocation; sub-buckets of 5 s and more (the 1 m, 5 m
         * and 1 h windows: most of a timer stream's bytes) */
        if (w->sk && w->sk[ci].dd && w->bucket_s >= NX_WINDOW_FREEZE_S)
            nx_ddsketch_freeze(w->sk[ci].dd);
        /* a set's: merged from (hand-on, reads) until evicted, into only
         * when a front suffix is built in it or a late event comes */
        if (w->sk && w->sk[ci].topk && w->bucket_s >= NX_WINDOW_FREEZE_S)
            nx_topk_freeze(w->sk[ci].topk);
    }
    w->cur_k = c + 1;
    return 0;
}

bool nx_window_valid_at(const nx_window *w, int64_t sec)
{
    return w->cur_k <= nx_floordiv(sec, w->bucket_s);
}

/* A window that moved past direct_k is fed only by its cascade from now on
 * (a late event for an older sub-bucket finds the feeder's sub-bucket
 * complete, so it comes directly either way): forget the mark. */
static inline void window_moved(nx_window *w, int64_t k)
{
    w->cur_k = k;
    if (w->direct_k <= k)
        w->direct_k = NX_WINDOW_NO_DIRECT;
}

int nx_window_advance(nx_window *w, int64_t sec, const nx_acc_params *p,
                      const nx_window_sink *sink)
{
    int64_t k = nx_window_index(w, sec);
    int rc;
    if (k <= w->cur_k)
        return 0;
    if (w->nonempty == 0 || k - w->cur_k > (int64_t)w->n) {
        /* nothing survives: drop everything (idle streams give memory
         * back), after handing on the current sub-bucket (the complete
         * ones were handed on when they completed) */
        if (w->slots && (rc = window_hand_on(w, widx(w, w->cur_k),
                                             w->cur_k * (int64_t)w->bucket_s, sink)))
            return rc;
        window_free_data(w);
        window_moved(w, k);
        return 0;
    }
    while (w->cur_k < k) {
        if ((rc = window_step(w, p, sink)))
            return rc;
        if (w->nonempty == 0) {
            window_free_data(w);
            break;
        }
    }
    window_moved(w, k);
    return 0;
}

/* Moves the window to the sub-bucket of `sec` and makes sure its ring (and
 * sketch ring, if src has sketches) exists; *i = the current slot. */
static int fold_prepare(nx_window *w, int64_t sec, const nx_acc *src, const nx_acc_params *p,
                        const nx_window_sink *sink, uint32_t *i)
{
    int rc;
    if ((rc = nx_window_advance(w, sec, p, sink)))
        return rc;
    assert(nx_window_index(w, sec) == w->cur_k);
    if ((rc = window_alloc(w, src->dd || src->topk)))
        return rc;
    *i = widx(w, w->cur_k);
    return 0;
}

/* The current sub-bucket's top-k before src's is merged into it (see
 * "Wide current" in nx_window.h): widened while both are exact and their
 * union would stay exact in it, else back to the engine's capacity. */
static int current_topk_fit(nx_topk *t, const nx_topk *src, const nx_acc_params *p)
{
    if (!t || !src || nx_topk_size(t) == 0)
        return 0; /* an empty one takes src as it is (topk_fill) */
    uint32_t wide = nx_window_wide_topk(p);
    bool exact = nx_topk_size(src) < nx_topk_capacity(src) &&
                 nx_topk_size(t) < nx_topk_capacity(t) &&
                 (uint64_t)nx_topk_size(t) + nx_topk_size(src) < wide;
    return nx_topk_set_capacity(t, exact ? wide : p->topk_capacity);
}

/* Merges src (without its HLL: windows keep none, nx_shll) into slot i,
 * the current one. */
static int slot_merge(nx_window *w, uint32_t i, const nx_acc *src, const nx_acc_params *p)
{
    nx_acc a, bare = *src;
    bare.hll = NULL;
    slot_view(w, i, &a);
    bool was_empty = nx_acc_empty(&a);
    int rc = current_topk_fit(a.topk, src->topk, p);
    if (rc)
        return rc;
    rc = nx_acc_merge(&a, &bare, p);
    slot_store(w, i, &a);
    if (rc)
        return rc;
    /* the current sub-bucket joins `inv` when it completes (window_step) */
    if (was_empty)
        w->nonempty++;
    return 0;
}

int nx_window_fold(nx_window *w, int64_t sec, const nx_acc *src, const nx_acc_params *p,
                   const nx_window_sink *sink)
{
    uint32_t i;
    if (nx_acc_empty(src))
        return 0;
    int rc = fold_prepare(w, sec, src, p, sink, &i);
    return rc ? rc : slot_merge(w, i, src, p);
}

int nx_window_fold_move(nx_window *w, int64_t sec, nx_acc *src, const nx_acc_params *p,
                        const nx_window_sink *sink)
{
    uint32_t i;
    if (nx_acc_empty(src))
        return 0;
    int rc = fold_prepare(w, sec, src, p, sink, &i);
    if (rc)
        return rc;
    if (w->slots[i].m.count > 0)
        return slot_merge(w, i, src, p);
    /* an empty current slot's sketches are empty (cleared when its
     * sub-bucket was evicted) or absent: trade them for src's */
    nx_acc old, mine = *src;
    mine.hll = NULL; /* windows keep no HLL (nx_shll) */
    slot_view(w, i, &old);
    slot_store(w, i, &mine);
    src->dd = old.dd;
    src->topk = old.topk;
    nx_moments_init(&src->m);
    w->nonempty++;
    return 0;
}

int nx_window_add_late(nx_window *w, int64_t sec, const nx_acc_params *p, nx_type type,
                       double value, double weight, const char *member, uint32_t member_len)
{
    int rc;
    int64_t k = nx_floordiv(sec, w->bucket_s);
    if (k > w->cur_k)
        return NX_EINVAL; /* the caller advances the window (and its cascade) first */
    int64_t c = w->cur_k;
    if (k < c - (int64_t)w->n)
        return 0; /* the window no longer covers it */
    if ((rc = window_alloc(w, type == NX_TYPE_SET || nx_type_has_quantiles(type))))
        return rc;
    int64_t j = k - (c - (int64_t)w->n); /* position among complete sub-buckets */
    bool front = k < c && j < (int64_t)w->nfront;
    /* a late event is added to the suffixes that cover it: built first (and
     * before the slot is viewed: the build may give it a top-k) */
    if (front && (rc = nx_window_front_build(w, p)))
        return rc;
    uint32_t i = widx(w, k);
    nx_acc a;
    slot_view(w, i, &a);
    bool was_empty = nx_acc_empty(&a);
    if (type == NX_TYPE_SET) {
        /* a front slot's top-k is its suffix: the loop below adds to it; a
         * wide current one is cut first (an add could fill it: "Wide
         * current") */
        if (k == c && a.topk)
            rc = nx_topk_set_capacity(a.topk, p->topk_capacity);
        if (!rc && !front)
            rc = topk_add(&a.topk, p, member, member_len, weight);
        if (!rc)
            a.m.count += weight;
    } else {
        rc = nx_acc_add(&a, p, type, value, weight, member, member_len);
    }
    slot_store(w, i, &a);
    if (rc)
        return rc;
    if (was_empty)
        w->nonempty++;
    if (k == c)
        return 0; /* the current sub-bucket is not in inv / the stacks yet */
    /* invertible aggregate */
    if (type == NX_TYPE_SET) {
        w->inv.m.count += weight;
    } else {
        if (nx_type_has_quantiles(type) && !w->ilazy) {
            if ((rc = ensure_dd(&w->inv.dd, p)) || (rc = nx_ddsketch_add(w->inv.dd, value, weight)))
                return rc;
        }
        nx_moments_add(&w->inv.m, value, weight);
    }
    if (front) {
        int64_t oldest = c - (int64_t)w->n, top = oldest + (int64_t)w->fskip;
        if (type == NX_TYPE_SET && k < top) {
            /* into a front hole: k and the holes after it get their
             * suffixes (copies of the front top's), k becomes the top */
            int64_t fend = oldest + (int64_t)w->nfront;
            for (int64_t x = top - 1; x >= k; x--) {
                nx_wsk *f = &w->sk[widx(w, x)];
                const nx_topk *y = x + 1 < fend ? w->sk[widx(w, x + 1)].topk : NULL;
                if ((rc = ensure_topk(&f->topk, p)))
                    return rc;
                nx_topk_clear(f->topk);
                if (topk_has(y) && (rc = nx_topk_merge(f->topk, y)))
                    return rc;
            }
            w->fskip = (uint32_t)(k - oldest);
            top = k;
        }
        /* front: every suffix from the top (sets; min/max: the oldest) up
         * to k covers it */
        for (int64_t x = type == NX_TYPE_SET ? top : oldest; x <= k; x++) {
            uint32_t fi = widx(w, x);
            if (type == NX_TYPE_SET) {
                nx_wsk *f = &w->sk[fi];
                if ((rc = topk_add(&f->topk, p, member, member_len, weight)))
                    return rc;
            } else {
                nx_wslot *f = &w->slots[fi];
                if (value < f->fmin)
                    f->fmin = value;
                if (value > f->fmax)
                    f->fmax = value;
            }
        }
    } else {
        if (type == NX_TYPE_SET) {
            /* a derived back gets it through the fed window, which takes
             * late events of this window's complete sub-buckets itself */
            if (!w->bderived && (rc = topk_add(&w->btopk, p, member, member_len, weight)))
                return rc;
        } else {
            if (value < w->bmin)
                w->bmin = value;
            if (value > w->bmax)
                w->bmax = value;
        }
    }
    return 0;
}

/* out's top-k += a derived back: the sub-buckets of `fed` that hold this
 * window's complete sub-buckets [B, c-1] (B = c-n+nfront, a multiple of
 * g): with n/g <= 2, the fed window's current one and its one or two
 * newest complete ones. */
static int back_derived_merge(const nx_window *w, const nx_window *fed, nx_acc *out,
                              const nx_acc_params *p)
{
    int64_t c = w->cur_k, b = c - (int64_t)w->n + (int64_t)w->nfront, g = w->bgroup;
    if (b > c - 1 || !fed->slots || !fed->sk)
        return 0;
    assert(g > 0 && floormod(b, (uint32_t)g) == 0 && fed->cur_k == nx_floordiv(c, g));
    for (int64_t q = nx_floordiv(b, g); q <= nx_floordiv(c - 1, g); q++) {
        assert(q >= fed->cur_k - 2 && q >= fed->cur_k - (int64_t)fed->n);
        uint32_t i = widx(fed, q);
        if (!(fed->slots[i].m.count > 0) || !topk_has(fed->sk[i].topk))
            continue;
        int rc = ensure_topk(&out->topk, p);
        if (rc || (rc = nx_topk_merge(out->topk, fed->sk[i].topk)))
            return rc;
    }
    return 0;
}

int nx_window_read(nx_window *w, const nx_window *fed, nx_acc *out, const nx_acc_params *p)
{
    int rc;
    assert(nx_acc_empty(out));
    if (w->nonempty == 0 || !w->slots)
        return 0;
    if ((rc = nx_window_front_build(w, p)) || (rc = inv_build(w)))
        return rc;
    w->fread = 1;
    w->iquiet = 0;
    uint32_t ci = widx(w, w->cur_k);
    const nx_wslot *cur = &w->slots[ci];
    out->m = w->inv.m;
    if (!(out->m.count > 0))
        nx_moments_init(&out->m); /* rounding residue of subtractions */
    nx_moments_merge(&out->m, &cur->m);
    out->m.min = w->bmin;
    out->m.max = w->bmax;
    int64_t fi = w->nfront ? (int64_t)widx(w, w->cur_k - (int64_t)w->n) : -1;
    if (cur->m.count > 0) {
        if (cur->m.min < out->m.min)
            out->m.min = cur->m.min;
        if (cur->m.max > out->m.max)
            out->m.max = cur->m.max;
    }
    if (fi >= 0) {
        const nx_wslot *front = &w->slots[fi];
        if (front->fmin < out->m.min)
            out->m.min = front->fmin;
        if (front->fmax > out->m.max)
            out->m.max = front->fmax;
    }
    if (w->inv.dd && w->inv.m.count > 0) {
        if ((rc = nx_ddsketch_clone(w->inv.dd, &out->dd)))
            return rc;
    }
    if (w->sk && w->sk[ci].dd && cur->m.count > 0) {
        if ((rc = ensure_dd(&out->dd, p)) || (rc = nx_ddsketch_merge(out->dd, w->sk[ci].dd)))
            return rc;
    }
    if (w->sk) {
        const nx_topk *ts[3] = {NULL, NULL, NULL};
        if (w->sk[ci].topk && cur->m.count > 0)
            ts[0] = w->sk[ci].topk;
        int64_t ti = w->nfront > w->fskip
                         ? (int64_t)widx(w, w->cur_k - (int64_t)w->n + (int64_t)w->fskip)
                         : -1;
        if (ti >= 0 && topk_has(w->sk[ti].topk))
            ts[1] = w->sk[ti].topk; /* the front top's suffix (past the holes) */
        if (!w->bderived && topk_has(w->btopk))
            ts[2] = w->btopk;
        for (int i = 0; i < 3; i++) {
            if (!ts[i])
                continue;
            if ((rc = ensure_topk(&out->topk, p)) || (rc = nx_topk_merge(out->topk, ts[i])))
                return rc;
        }
        if (w->bderived) {
            if (!fed)
                return NX_EINVAL;
            if ((rc = back_derived_merge(w, fed, out, p)))
                return rc;
        }
    }
    if (!(out->m.count > 0)) {
        /* rounding left a vanishing count: report an empty window */
        nx_moments_init(&out->m);
    }
    return 0;
}

int nx_window_front_decoded(nx_window *w, nx_type type)
{
    w->fskip = 0;
    w->flazy = 0; /* snapshots hold built suffixes (nx_window_encode) */
    if (type != NX_TYPE_SET || !w->sk)
        return 0;
    int64_t oldest = w->cur_k - (int64_t)w->n;
    while (w->fskip < w->nfront) {
        uint32_t i = widx(w, oldest + (int64_t)w->fskip);
        if (topk_has(w->sk[i].topk))
            break;
        if (w->slots[i].m.count > 0)
            return NX_ECORRUPT; /* data without its suffix */
        w->fskip++;
    }
    return 0;
}

int nx_window_read_current(const nx_window *w, nx_acc *out, const nx_acc_params *p)
{
    if (!w->slots)
        return 0;
    uint32_t ci = widx(w, w->cur_k);
    if (!(w->slots[ci].m.count > 0))
        return 0;
    nx_acc a;
    slot_view(w, ci, &a);
    return nx_acc_merge(out, &a, p);
}

size_t nx_window_bytes(const nx_window *w)
{
    size_t b = nx_acc_bytes(&w->inv);
    if (w->btopk)
        b += nx_topk_bytes(w->btopk);
    if (w->slots && w->slots != w->store)
        b += sizeof(nx_wslot) * (w->n + 1);
    if (w->sk) {
        b += sizeof(nx_wsk) * (w->n + 1);
        for (uint32_t i = 0; i <= w->n; i++) {
            const nx_wsk *k = &w->sk[i];
            if (k->dd)
                b += nx_ddsketch_bytes(k->dd);
            if (k->topk)
                b += nx_topk_bytes(k->topk);
        }
    }
    return b;
}

/* ---- series tiers ---------------------------------------------------------- */

#define TIER_INITIAL_CAP 4

static void tpoint_init(nx_tpoint *p)
{
    p->count = 0;
    p->sum = 0;
    p->min = INFINITY;
    p->max = -INFINITY;
}

void nx_tier_init(nx_tier *t, uint32_t step_s, uint32_t buckets)
{
    assert(step_s > 0 && buckets > 0);
    t->newest = INT64_MIN / 4;
    t->oldest = INT64_MIN / 4;
    t->step_s = step_s;
    t->buckets = buckets;
    t->cap = 0;
    t->pts = NULL;
}

void nx_tier_free(nx_tier *t)
{
    free(t->pts);
    t->pts = NULL;
    t->cap = 0;
}

/* Regrows the ring to newcap keeping the points of [lo, newest]. */
static int tier_grow(nx_tier *t, uint32_t newcap)
{
    assert(newcap > t->cap && newcap <= t->buckets);
    nx_tpoint *np = malloc(sizeof(nx_tpoint) * newcap);
    if (!np)
        return NX_ENOMEM;
    for (uint32_t i = 0; i < newcap; i++)
        tpoint_init(&np[i]);
    if (t->pts) {
        int64_t lo = t->newest - (int64_t)t->cap + 1;
        if (lo < t->oldest)
            lo = t->oldest;
        for (int64_t i = lo; i <= t->newest; i++)
            np[floormod(i, newcap)] = t->pts[floormod(i, t->cap)];
        free(t->pts);
    }
    t->pts = np;
    t->cap = newcap;
    return 0;
}

/* Makes sure indices [lo, newest] fit in the ring. */
static int tier_fit(nx_tier *t, int64_t lo)
{
    int64_t need = t->newest - lo + 1;
    if (need <= (int64_t)t->cap)
        return 0;
    uint32_t nc = t->cap ? t->cap * 2 : TIER_INITIAL_CAP;
    if ((int64_t)nc < need)
        nc = (uint32_t)need;
    if (nc > t->buckets)
        nc = t->buckets;
    return tier_grow(t, nc);
}

/* The tier index of second sec (its newest point's, nearly always). */
static inline int64_t tier_index(const nx_tier *t, int64_t sec)
{
    return nx_floordiv_near(sec, t->step_s, t->newest);
}

static void tier_advance_to(nx_tier *t, int64_t idx)
{
    if (!t->pts || idx - (int64_t)t->buckets >= t->newest) {
        nx_tier_free(t);
        t->newest = idx;
        t->oldest = idx;
        return;
    }
    int64_t lo = idx - (int64_t)t->buckets + 1;
    if (t->oldest < lo)
        t->oldest = lo;
    /* grow so that [oldest, idx] fits; if that fails, old points are lost
     * early (bounded memory wins over retention) */
    int64_t need = idx - t->oldest + 1;
    if (need > (int64_t)t->cap) {
        uint32_t nc = t->cap * 2;
        if ((int64_t)nc < need)
            nc = (uint32_t)need;
        if (nc > t->buckets)
            nc = t->buckets;
        if (tier_grow(t, nc) != 0 && t->oldest < idx - (int64_t)t->cap + 1)
            t->oldest = idx - (int64_t)t->cap + 1;
    }
    int64_t from = t->newest + 1;
    if (from < idx - (int64_t)t->cap + 1)
        from = idx - (int64_t)t->cap + 1;
    for (int64_t i = from; i <= idx; i++)
        tpoint_init(&t->pts[floormod(i, t->cap)]);
    t->newest = idx;
}

void nx_tier_advance(nx_tier *t, int64_t sec)
{
    int64_t idx = tier_index(t, sec);
    if (idx > t->newest)
        tier_advance_to(t, idx);
}

int nx_tier_add(nx_tier *t, int64_t sec, const nx_moments *m)
{
    if (!(m->count > 0))
        return 0;
    int64_t idx = tier_index(t, sec);
    if (idx > t->newest)
        tier_advance_to(t, idx);
    if (idx <= t->newest - (int64_t)t->buckets)
        return 0;
    if (!t->pts)
        t->oldest = idx;
    int64_t lo = idx < t->oldest ? idx : t->oldest;
    int rc = tier_fit(t, lo);
    if (rc)
        return rc;
    t->oldest = lo;
    nx_tpoint *p = &t->pts[floormod(idx, t->cap)];
    p->count += m->count;
    p->sum += m->sum;
    if (m->min < p->min)
        p->min = m->min;
    if (m->max > p->max)
        p->max = m->max;
    return 0;
}

const nx_tpoint *nx_tier_get(const nx_tier *t, int64_t idx)
{
    if (!t->pts || idx > t->newest || idx <= t->newest - (int64_t)t->buckets ||
        idx <= t->newest - (int64_t)t->cap || idx < t->oldest)
        return NULL;
    const nx_tpoint *p = &t->pts[floormod(idx, t->cap)];
    return p->count > 0 ? p : NULL;
}
