/*
 * nx_topk.c — SpaceSaving heavy hitters (see nx_topk.h for the guarantees).
 *
 * Structures (all owned by the sketch, grown lazily up to the capacity k so
 * that a set with three members does not pay for k counters):
 *   items[]  counters: count, error, XXH3 hash of the member, the member's
 *            offset/length in the arena, the counter's position in the heap.
 *   heap[]   binary min-heap of item indexes by count: the counter to evict
 *            is heap[0]; a hit increments a count and sifts it down,
 *            O(log k) worst case, usually 0-1 swaps. Lazy heap: a merge
 *            leaves it stale (heap_ok false) and the next add rebuilds it
 *            (Floyd, O(k)); window slots are merged into and read, never
 *            added to, and never pay for it.
 *   table[]  open-addressing (linear probing, backward-shift deletion) hash
 *            table, load <= 1/2: member lookup is O(1) expected. An entry
 *            is item index + 1 (17 bits; 0 = empty) and, above it, 15 bits
 *            of the member's hash (TK_TAG): a probe reads the counter only
 *            when the tags match, so a lookup that misses (most of a
 *            merge's: sets of distinct members) reads the table alone.
 *            Lazy too: a merge that replaced counters leaves it stale
 *            (table_ok false) and whatever looks a member up next (an add,
 *            a merge into the sketch) rebuilds it first (table_ensure). A
 *            window's front suffix is merged into once, then only merged
 *            from and read: it never pays for a table.
 *   arena    one byte buffer holding every monitored member. An eviction
 *            appends the new member and marks the old bytes dead; a full
 *            arena is compacted in place (amortized O(1) per byte, no
 *            allocation: window slots churn through members every second)
 *            and grows only when its live bytes fill more than half of it,
 *            to twice those (arena_put).
 *   add: one hash, one probe, no allocation once the k counters and the
 *   arena have reached their working size.
 *   frozen   a sketch that is only merged from and read for a while (a
 *            window's complete sub-bucket of 5 s or more: nx_window) gives
 *            back its heap and table and trims its counters and arena to
 *            what they hold (nx_topk_freeze): frozen = counters allocated
 *            (icap > 0) but no table. Whatever changes it next (an add, a
 *            tally, a merge or copy into it) thaws it first (thaw: a heap
 *            and a table again, rebuilt when next needed); reads, merges
 *            from it, encodings and clears need neither.
 *
 * Merge (Agarwal et al. 2012 / Cafaro et al.): with m_i = the minimum count
 * of side i when it is full (k counters used), else 0, each member of the
 * union gets count = c1' + c2' and error = e1' + e2', where c_i' / e_i' are
 * its count / error on side i or m_i when side i does not monitor it; the k
 * largest counts are kept (in candidate order, below). Both
 * guarantees then hold for N = N1 + N2: counts stay upper bounds and
 * count - error lower bounds; sum(counts) <= N is preserved, so the (k+1)-th
 * largest merged count is <= (N + m1 + m2)/(k+1) <= N/k and every member
 * with frequency > N/k is kept. Both sides must have the same capacity
 * (NX_EINVAL otherwise), unless src is not full: a sketch that has never
 * evicted is exact, m2 = 0, and the argument holds whatever its capacity
 * (a new member kept still displaces a dst counter >= m1, or dst had room
 * and m1 = 0, so the kept counts still sum to <= N).
 *
 * Candidate order, a total order on counters: larger count first, then
 *   smaller XXH3 hash of the member, then smaller member bytes (distinct
 *   members with equal 64-bit hashes are astronomically rare, but the order
 *   stays total). The heap uses the same order reversed, so the counter an
 *   add evicts is the LAST in candidate order — unique, whatever the layout
 *   of items, heap and table. The sketch's evolution therefore depends only
 *   on its logical content {(member, count, error)} and the inputs: a
 *   snapshot round trip (which rebuilds the layout) keeps evolving exactly
 *   like the original, and merges need not re-sort counters into a
 *   canonical layout.
 *
 * Members are at most NX_TOPK_MEMBER_MAX (65535) bytes (NX_ETOOBIG).
 *
 * Serialized layout (the version is in the caller's frame):
 *   uvar  capacity k           1..65536
 *   f64   total N              finite, >= 0
 *   uvar  n                    counters in use, <= k
 *   n times, in candidate order (decreasing count, then hash, bytes):
 *     uvar  member length      <= 65535
 *     bytes member             (distinct members)
 *     f64   count              finite, > 0
 *     f64   error              finite, 0 <= error <= count
 *   The sum of counts must not exceed N (beyond 1e-9 relative rounding).
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/nx_codec.h"
#include "sketch/nx_topk.h"

#define NX_TOPK_MAX_CAP 65536u

/* 32 bytes: members are at most 65535 bytes and capacities at most 65536,
 * so the length and the heap position fit 16 bits. */
typedef struct tk_item {
    double count, error;
    uint64_t hash;
    uint32_t off;
    uint16_t len;
    uint16_t heap_pos;
} tk_item;
_Static_assert(sizeof(tk_item) == 32, "tk_item is half a cache line");

struct nx_topk {
    uint32_t k;      /* capacity */
    uint32_t n;      /* counters in use */
    uint32_t icap;   /* allocated items/heap slots (<= k) */
    uint32_t tcap;   /* table slots (power of two, >= 2 * icap) */
    bool heap_ok;    /* heap[] orders the n counters (see "Lazy heap" at the top) */
    bool table_ok;   /* table[] indexes the n counters (see table[] at the top) */
    tk_item *items;
    uint32_t *heap;
    uint32_t *table;
    char *arena;
    size_t alen, acap, adead;
    double total;
};

/* A member's bytes. A sketch whose members are all empty (e.g. one decoded
 * from a snapshot) may have no arena at all: NULL + 0 is undefined in C. */
static inline const char *tk_member(const nx_topk *t, const tk_item *it)
{
    return t->arena ? t->arena + it->off : "";
}


/* ---- order ------------------------------------------------------------------ */

/* Candidate order: < 0 when (ca, ha, ma) comes first (see the top). */
static inline int order(double ca, uint64_t ha, const char *ma, uint32_t la, double cb,
                        uint64_t hb, const char *mb, uint32_t lb)
{
    if (ca != cb)
        return ca > cb ? -1 : 1;
    if (ha != hb)
        return ha < hb ? -1 : 1;
    uint32_t l = la < lb ? la : lb;
    int c = l ? memcmp(ma, mb, l) : 0;
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

/* Heap order: a is evicted before b (a comes after b in candidate order). */
static inline bool evicts_first(const nx_topk *t, uint32_t a, uint32_t b)
{
    const tk_item *x = &t->items[a], *y = &t->items[b];
    if (x->count != y->count)
        return x->count < y->count;
    if (x->hash != y->hash)
        return x->hash > y->hash;
    return order(x->count, x->hash, tk_member(t, x), x->len, y->count, y->hash, tk_member(t, y),
                 y->len) > 0;
}

/* ---- heap ------------------------------------------------------------------ */

static inline void heap_place(nx_topk *t, uint32_t pos, uint32_t it)
{
    t->heap[pos] = it;
    t->items[it].heap_pos = (uint16_t)pos;
}

static void heap_up(nx_topk *t, uint32_t pos)
{
    uint32_t it = t->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!evicts_first(t, it, t->heap[parent]))
            break;
        heap_place(t, pos, t->heap[parent]);
        pos = parent;
    }
    heap_place(t, pos, it);
}

static void heap_down(nx_topk *t, uint32_t pos)
{
    uint32_t it = t->heap[pos];
    for (;;) {
        uint32_t l = 2 * pos + 1, r = l + 1, s = l;
        if (l >= t->n)
            break;
        if (r < t->n && evicts_first(t, t->heap[r], t->heap[l]))
            s = r;
        if (!evicts_first(t, t->heap[s], it))
            break;
        heap_place(t, pos, t->heap[s]);
        pos = s;
    }
    heap_place(t, pos, it);
}

/* Restores the heap after counts grew in place (Floyd's bottom-up build). */
static void heap_rebuild(nx_topk *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        t->heap[i] = i;
        t->items[i].heap_pos = (uint16_t)i;
    }
    for (uint32_t i = t->n / 2; i-- > 0;)
        heap_down(t, i);
    t->heap_ok = true;
}

/* ---- hash table -------------------------------------------------------------- */

/* A table entry: the tag of the hash (its top 15 bits; the slot comes from
 * its low bits) above item index + 1 (1..65536: 17 bits). */
#define TK_IDX_BITS 17
#define TK_IDX_MASK ((1u << TK_IDX_BITS) - 1)
#define TK_TAG(h) ((uint32_t)((h) >> (64 - (32 - TK_IDX_BITS))) << TK_IDX_BITS)
_Static_assert(NX_TOPK_MAX_CAP <= TK_IDX_MASK, "item index + 1 fits an entry");

static uint32_t table_find(const nx_topk *t, const char *m, uint32_t len, uint64_t h)
{
    if (!t->tcap)
        return UINT32_MAX;
    uint32_t mask = t->tcap - 1, s = (uint32_t)h & mask, tag = TK_TAG(h);
    for (;;) {
        uint32_t e = t->table[s];
        if (!e)
            return UINT32_MAX;
        if ((e & ~TK_IDX_MASK) == tag) {
            const tk_item *it = &t->items[(e & TK_IDX_MASK) - 1];
            if (it->hash == h && it->len == len &&
                (len == 0 || memcmp(tk_member(t, it), m, len) == 0))
                return (e & TK_IDX_MASK) - 1;
        }
        s = (s + 1) & mask;
    }
}

static void table_insert(nx_topk *t, uint32_t idx)
{
    uint64_t h = t->items[idx].hash;
    uint32_t mask = t->tcap - 1, s = (uint32_t)h & mask;
    while (t->table[s])
        s = (s + 1) & mask;
    t->table[s] = TK_TAG(h) | (idx + 1);
}

/* Makes a stale table (left by a merge) index the n counters again. */
static void table_ensure(nx_topk *t)
{
    if (t->table_ok)
        return;
    memset(t->table, 0, (size_t)t->tcap * sizeof *t->table);
    for (uint32_t i = 0; i < t->n; i++)
        table_insert(t, i);
    t->table_ok = true;
}

static void table_remove(nx_topk *t, uint32_t idx)
{
    uint32_t mask = t->tcap - 1, i = (uint32_t)t->items[idx].hash & mask;
    while ((t->table[i] & TK_IDX_MASK) != idx + 1) {
        assert(t->table[i] != 0);
        i = (i + 1) & mask;
    }
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t e = t->table[j];
        if (!e)
            break;
        uint32_t home = (uint32_t)t->items[(e & TK_IDX_MASK) - 1].hash & mask;
        /* move e back to i unless its home lies cyclically in (i, j] */
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t->table[i] = e;
            i = j;
        }
    }
    t->table[i] = 0;
}

/* Table slots for icap counters: a power of two, at least 16, load <= 1/2. */
static inline uint32_t table_cap(uint32_t icap)
{
    uint32_t tcap = 16;
    while (tcap < 2 * icap)
        tcap *= 2;
    return tcap;
}

/* Grows items/heap/table so that `want` (<= k) counters fit. */
static int reserve(nx_topk *t, uint32_t want)
{
    if (want <= t->icap)
        return 0;
    assert(want <= t->k);
    uint32_t icap = t->icap ? t->icap * 2 : 8;
    while (icap < want)
        icap *= 2;
    if (icap > t->k)
        icap = t->k;
    uint32_t tcap = table_cap(icap);
    tk_item *items = realloc(t->items, (size_t)icap * sizeof *items);
    if (!items)
        return NX_ENOMEM;
    t->items = items;
    uint32_t *heap = realloc(t->heap, (size_t)icap * sizeof *heap);
    if (!heap)
        return NX_ENOMEM;
    t->heap = heap;
    t->icap = icap;
    if (tcap != t->tcap) {
        uint32_t *table = calloc(tcap, sizeof *table);
        if (!table)
            return NX_ENOMEM;
        free(t->table);
        t->table = table;
        t->tcap = tcap;
        t->table_ok = false;
        table_ensure(t);
    }
    return 0;
}

/* ---- arena ------------------------------------------------------------------- */

/* Copies one member's bytes (non-overlapping). Members are mostly short
 * (user ids, hosts, paths): up to 16 bytes take two overlapping fixed-size
 * copies the compiler inlines, instead of a call to libc's memcpy per
 * member (~4% of the set loop in merges' arena_put and compactions). */
static inline void member_copy(char *dst, const char *src, uint32_t len)
{
    if (len >= 8 && len <= 16) {
        memcpy(dst, src, 8);
        memcpy(dst + len - 8, src + len - 8, 8);
    } else if (len >= 4 && len < 8) {
        memcpy(dst, src, 4);
        memcpy(dst + len - 4, src + len - 4, 4);
    } else if (len < 4) {
        for (uint32_t i = 0; i < len; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, len);
    }
}

/* Moves every live member to the front of the arena, in offset order (each
 * moves down or stays, so memmove in that order never overwrites a member
 * not yet moved): no allocation. */
static void arena_compact(nx_topk *t)
{
    /* usually the live members fit a stack buffer: gather them there in
     * counter order and copy them back, O(bytes); sorting counters by
     * offset (insertion sort, O(k^2)) was most of a compaction */
    char gather[4096];
    size_t live = 0;
    for (uint32_t i = 0; i < t->n; i++)
        live += t->items[i].len;
    if (live <= sizeof gather) {
        size_t pos = 0;
        for (uint32_t i = 0; i < t->n; i++) {
            tk_item *it = &t->items[i];
            if (it->len)
                member_copy(gather + pos, t->arena + it->off, it->len);
            it->off = (uint32_t)pos;
            pos += it->len;
        }
        if (pos)
            memcpy(t->arena, gather, pos);
        t->alen = pos;
        t->adead = 0;
        return;
    }
    uint32_t ord_buf[256];
    uint32_t *ord = t->n <= 256 ? ord_buf : malloc(t->n * sizeof *ord);
    if (!ord)
        return; /* no memory to sort: the caller grows instead */
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t j = i, it = i;
        for (; j > 0 && t->items[ord[j - 1]].off > t->items[it].off; j--)
            ord[j] = ord[j - 1];
        ord[j] = it;
    }
    size_t pos = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        tk_item *it = &t->items[ord[i]];
        if (it->len && it->off != pos)
            memmove(t->arena + pos, t->arena + it->off, it->len);
        it->off = (uint32_t)pos;
        pos += it->len;
    }
    if (ord != ord_buf)
        free(ord);
    t->alen = pos;
    t->adead = 0;
}

/* Copies member into the arena; returns its offset via *off. Out of room,
 * the arena is compacted when its live bytes and the member fill at most
 * half of it (a window slot's churn: reuse the buffer; a compaction copies
 * at most one byte per byte appended since the last), else compacted and
 * grown to twice its live bytes and the member's. Growing to twice the used
 * bytes, dead ones included, as before, left a sketch merged into once a
 * second with 30 new 10-byte members a ~2.5 KB arena for ~640 live bytes
 * (5.4 KB a sketch, 4.2 KB now); bench_engine's active set stream went
 * from 226,160 to 223,461 bytes, at the same speed. */
static int arena_put(nx_topk *t, const char *m, uint32_t len, uint32_t *off)
{
    bool grow = false;
    if (t->alen + len > t->acap) {
        grow = 2 * (t->alen - t->adead + len) > t->acap;
        if (t->adead)
            arena_compact(t);
    }
    if (grow || t->alen + len > t->acap) {
        size_t cap = 2 * (t->alen + len);
        if (cap < 64)
            cap = 64;
        char *a = realloc(t->arena, cap);
        if (a) {
            t->arena = a;
            t->acap = cap;
        } else if (t->alen + len > t->acap) { /* a growth for headroom may fail */
            return NX_ENOMEM;
        }
    }
    assert(t->alen + len <= t->acap && t->alen + len < UINT32_MAX);
    if (len) /* an arena may be NULL while every member is empty */
        member_copy(t->arena + t->alen, m, len);
    *off = (uint32_t)t->alen;
    t->alen += len;
    return 0;
}

/* Makes sure a merge's arena_put calls find room, compacting if need be
 * (so that they cannot fail once it has started changing dst): `peak` is
 * the most bytes of members the merge holds live at once. Past the
 * arena's size it grows now, compacted first, to twice that (exactly
 * that would take a realloc per merge of a growing sketch; twice costs
 * bench_engine's active set stream +2% of its bytes, 228 KB against 223
 * KB with the growths inside the merge); otherwise
 * nothing changes, and arena_put compacts and grows as it would have.
 * This relies on compaction freeing the dead bytes, which it always does
 * with up to 256 counters (stack buffers; the default k is 64); past that
 * it needs an allocation, and should that fail too a merge may still
 * stop part way under NX_ENOMEM. */
static int arena_room(nx_topk *t, size_t peak)
{
    if (peak <= t->acap)
        return 0;
    if (t->adead)
        arena_compact(t);
    size_t cap = 2 * peak > t->alen ? 2 * peak : t->alen;
    char *a = realloc(t->arena, cap < 64 ? 64 : cap);
    if (!a)
        return NX_ENOMEM;
    t->arena = a;
    t->acap = cap < 64 ? 64 : cap;
    return 0;
}

/* A frozen sketch gets a heap and a table again (see "frozen" at the top),
 * both stale unless it is empty. A no-op for any other sketch. */
static int thaw(nx_topk *t)
{
    if (t->table || t->icap == 0)
        return 0;
    uint32_t tcap = table_cap(t->icap);
    uint32_t *heap = realloc(t->heap, (size_t)t->icap * sizeof *heap);
    if (!heap)
        return NX_ENOMEM;
    t->heap = heap;
    uint32_t *table = calloc(tcap, sizeof *table);
    if (!table)
        return NX_ENOMEM;
    t->table = table;
    t->tcap = tcap;
    t->heap_ok = t->n == 0;
    t->table_ok = t->n == 0;
    return 0;
}

/* ---- public API -------------------------------------------------------------- */

int nx_topk_create(uint32_t capacity, nx_topk **out)
{
    if (capacity < 1 || capacity > NX_TOPK_MAX_CAP)
        return NX_EINVAL;
    nx_topk *t = calloc(1, sizeof *t);
    if (!t)
        return NX_ENOMEM;
    t->k = capacity;
    t->heap_ok = true;
    t->table_ok = true;
    *out = t;
    return 0;
}

static void topk_free_parts(nx_topk *t)
{
    free(t->items);
    free(t->heap);
    free(t->table);
    free(t->arena);
}

void nx_topk_destroy(nx_topk *t)
{
    if (!t)
        return;
    topk_free_parts(t);
    free(t);
}

void nx_topk_freeze(nx_topk *t)
{
    if (!t->table)
        return; /* frozen already, or never grown */
    if (t->adead)
        arena_compact(t);
    free(t->heap);
    free(t->table);
    t->heap = NULL;
    t->table = NULL;
    t->tcap = 0;
    t->heap_ok = t->n == 0;
    t->table_ok = t->n == 0;
    if (t->n == 0) {
        free(t->items);
        free(t->arena);
        t->items = NULL;
        t->arena = NULL;
        t->icap = 0;
        t->alen = t->acap = 0;
        return;
    }
    /* trimming is best effort: a failed shrink keeps the bigger block */
    tk_item *items = realloc(t->items, (size_t)t->n * sizeof *items);
    if (items) {
        t->items = items;
        t->icap = t->n;
    }
    if (t->alen && t->alen < t->acap) {
        char *a = realloc(t->arena, t->alen);
        if (a) {
            t->arena = a;
            t->acap = t->alen;
        }
    }
}

/* Empties the sketch, keeping its counters, table and arena for reuse
 * (a window slot is cleared and refilled every bucket). */
void nx_topk_clear(nx_topk *t)
{
    if (t->n && t->table)
        memset(t->table, 0, (size_t)t->tcap * sizeof *t->table);
    t->n = 0;
    t->alen = 0;
    t->adead = 0;
    t->total = 0;
    t->heap_ok = true;
    t->table_ok = true;
}

/* A counter now monitors the member at arena offset `off`. */
static inline void item_set(tk_item *it, uint64_t h, uint32_t off, uint32_t len, double count,
                            double error)
{
    it->count = count;
    it->error = error;
    it->hash = h;
    it->off = off;
    it->len = (uint16_t)len;
}

/* Adds a new counter (member not monitored, n < k). */
/* Appends a counter for member m (not monitored, n < k) to items and the
 * table; *idx is its index. The heap is the caller's. */
static int counter_append(nx_topk *t, const char *m, uint32_t len, uint64_t h, double count,
                          double error, uint32_t *idx)
{
    int rc = reserve(t, t->n + 1);
    if (rc)
        return rc;
    uint32_t off;
    rc = arena_put(t, m, len, &off);
    if (rc)
        return rc;
    uint32_t i = t->n++;
    item_set(&t->items[i], h, off, len, count, error);
    table_insert(t, i);
    *idx = i;
    return 0;
}

static int topk_insert(nx_topk *t, const char *m, uint32_t len, uint64_t h, double count,
                       double error)
{
    assert(t->heap_ok);
    uint32_t i;
    int rc = counter_append(t, m, len, h, count, error, &i);
    if (rc)
        return rc;
    t->heap[i] = i;
    t->items[i].heap_pos = (uint16_t)i;
    heap_up(t, i);
    return 0;
}

/* Gives the heap's root counter (the one to evict) to member m with the
 * given count and error, and restores the heap. */
static int topk_replace_root(nx_topk *t, const char *m, uint32_t len, uint64_t h, double count,
                             double error)
{
    uint32_t v = t->heap[0], off;
    int rc = arena_put(t, m, len, &off);
    if (rc)
        return rc;
    tk_item *it = &t->items[v];
    table_remove(t, v);
    t->adead += it->len;
    item_set(it, h, off, len, count, error);
    table_insert(t, v);
    heap_down(t, 0);
    return 0;
}

int nx_topk_add(nx_topk *t, const char *member, uint32_t len, double weight)
{
    return nx_topk_add_hash(t, member, len, XXH3_64bits(member, len), weight);
}

int nx_topk_add_hash(nx_topk *t, const char *member, uint32_t len, uint64_t h, double weight)
{
    if (!(weight > 0) || !isfinite(weight))
        return NX_EINVAL;
    if (len > NX_TOPK_MEMBER_MAX)
        return NX_ETOOBIG;
    int rc = thaw(t);
    if (rc)
        return rc;
    if (!t->heap_ok)
        heap_rebuild(t); /* the first add after a merge */
    table_ensure(t);
    uint32_t i = table_find(t, member, len, h);
    if (i != UINT32_MAX) {
        t->items[i].count += weight;
        heap_down(t, t->items[i].heap_pos);
        t->total += weight;
        return 0;
    }
    if (t->n < t->k) {
        rc = topk_insert(t, member, len, h, weight, 0);
    } else {
        /* evict the minimum: the newcomer inherits its count as error */
        double c = t->items[t->heap[0]].count;
        rc = topk_replace_root(t, member, len, h, c + weight, c);
    }
    if (rc == 0)
        t->total += weight;
    return rc;
}

int nx_topk_tally_n(nx_topk *t, const char *const *members, const uint32_t *lens,
                    const uint64_t *hashes, uint32_t n, double weight)
{
    if (!(weight > 0) || !isfinite(weight))
        return NX_EINVAL;
    for (uint32_t j = 0; j < n; j++)
        if (lens[j] > NX_TOPK_MEMBER_MAX)
            return NX_ETOOBIG;
    int rc = thaw(t);
    if (rc)
        return rc;
    table_ensure(t); /* an add and a growth keep it so */
    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = table_find(t, members[j], lens[j], hashes[j]);
        if (i == UINT32_MAX && t->n == t->k) {
            if ((rc = nx_topk_add_hash(t, members[j], lens[j], hashes[j], weight)))
                return rc;
            continue;
        }
        if (i == UINT32_MAX && (rc = counter_append(t, members[j], lens[j], hashes[j], 0, 0, &i)))
            return rc;
        t->items[i].count += weight;
        t->heap_ok = false;
        t->total += weight;
    }
    return 0;
}

int nx_topk_tally(nx_topk *t, const char *member, uint32_t len, uint64_t h, double weight)
{
    return nx_topk_tally_n(t, &member, &len, &h, 1, weight);
}

double nx_topk_total(const nx_topk *t) { return t->total; }
uint32_t nx_topk_capacity(const nx_topk *t) { return t->k; }
uint32_t nx_topk_size(const nx_topk *t) { return t->n; }

size_t nx_topk_bytes(const nx_topk *t)
{
    return sizeof *t + (size_t)t->icap * (sizeof(tk_item) + (t->heap ? sizeof(uint32_t) : 0)) +
           (size_t)t->tcap * sizeof(uint32_t) + t->acap;
}

typedef struct tk_cand {
    const char *m;
    uint32_t len;
    uint64_t hash;
    double count, error;
} tk_cand;

/* Counter indices in candidate order: ord and tmp hold n entries. A merge
 * sort (runs of 8 by insertion) with the order inlined — qsort's
 * comparator calls, its copies and the candidate array's malloc were 12%
 * of a snapshot encode, every window slot's top-k being encoded in this
 * order. */
#define TK_RUN 8u
static void topk_order(const nx_topk *t, uint32_t *ord, uint32_t *tmp)
{
    uint32_t n = t->n;
    for (uint32_t lo = 0; lo < n; lo += TK_RUN) {
        uint32_t hi = lo + TK_RUN < n ? lo + TK_RUN : n;
        for (uint32_t i = lo; i < hi; i++) {
            uint32_t j = i;
            for (; j > lo && evicts_first(t, ord[j - 1], i); j--)
                ord[j] = ord[j - 1];
            ord[j] = i;
        }
    }
    uint32_t *a = ord, *b = tmp;
    for (uint32_t w = TK_RUN; w < n; w *= 2) {
        for (uint32_t lo = 0; lo < n; lo += 2 * w) {
            uint32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            uint32_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) /* a[j] first iff a[i] comes after it */
                b[k++] = evicts_first(t, a[i], a[j]) ? a[j++] : a[i++];
            while (i < mid)
                b[k++] = a[i++];
            while (j < hi)
                b[k++] = a[j++];
        }
        uint32_t *x = a;
        a = b;
        b = x;
    }
    if (a != ord)
        memcpy(ord, a, n * sizeof *ord);
}

/* The counters as candidates, in candidate order. Caller frees. */
static tk_cand *topk_cands(const nx_topk *t)
{
    tk_cand *c = malloc(((size_t)t->n + 1) * sizeof *c);
    uint32_t *ord = malloc(((size_t)t->n + 1) * 2 * sizeof *ord);
    if (!c || !ord) {
        free(c);
        free(ord);
        return NULL;
    }
    topk_order(t, ord, ord + t->n);
    for (uint32_t i = 0; i < t->n; i++) {
        const tk_item *it = &t->items[ord[i]];
        c[i] = (tk_cand){tk_member(t, it), it->len, it->hash, it->count, it->error};
    }
    free(ord);
    return c;
}

size_t nx_topk_list(const nx_topk *t, nx_topk_item *out, size_t max)
{
    tk_cand *c = topk_cands(t);
    size_t n = t->n < max ? t->n : max;
    if (!c) {
        /* no memory to sort: report the counters unsorted rather than nothing */
        for (size_t i = 0; i < n; i++) {
            const tk_item *it = &t->items[i];
            out[i] = (nx_topk_item){tk_member(t, it), it->len, it->count, it->error};
        }
        return n;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (nx_topk_item){c[i].m, c[i].len, c[i].count, c[i].error};
    free(c);
    return n;
}

int nx_topk_clone(const nx_topk *t, nx_topk **out)
{
    nx_topk *c;
    int rc = nx_topk_create(t->k, &c);
    if (rc == 0 && (rc = nx_topk_copy(c, t)) != 0)
        nx_topk_destroy(c);
    if (rc == 0)
        *out = c;
    return rc;
}

/* Makes the empty dst hold room for src's counters, table and arena as
 * they are (dst stays a valid empty sketch if this fails). */
static int copy_reserve(nx_topk *dst, const nx_topk *src)
{
    if (dst->icap < src->icap) {
        tk_item *items = realloc(dst->items, (size_t)src->icap * sizeof *items);
        if (!items)
            return NX_ENOMEM;
        dst->items = items;
        uint32_t *heap = realloc(dst->heap, (size_t)src->icap * sizeof *heap);
        if (!heap)
            return NX_ENOMEM;
        dst->heap = heap;
        dst->icap = src->icap;
    }
    /* a table as big as src's (its copy fits), and never below 2 * icap:
     * a frozen src has none, and dst's counters may have just grown. A dst
     * that had none stays without (frozen: thawed when next changed). */
    uint32_t tcap = src->tcap;
    if ((dst->table || tcap) && tcap < table_cap(dst->icap))
        tcap = table_cap(dst->icap);
    if (dst->tcap < tcap) {
        uint32_t *table = calloc(tcap, sizeof *table);
        if (!table)
            return NX_ENOMEM;
        free(dst->table);
        dst->table = table;
        dst->tcap = tcap;
    }
    if (dst->acap < src->alen) {
        char *a = realloc(dst->arena, src->acap);
        if (!a)
            return NX_ENOMEM;
        dst->arena = a;
        dst->acap = src->acap;
    }
    return 0;
}

/* dst = src, in dst's storage, layout included: a few block copies instead
 * of a counter-by-counter rebuild (the layout does not matter: see
 * "Candidate order" at the top). Window slots are refilled from other
 * sketches every second (a cleared slot taking its first sub-bucket, a
 * read's first part). Both must have the same capacity (NX_EINVAL). On an
 * error dst is left empty. */
int nx_topk_copy(nx_topk *dst, const nx_topk *src)
{
    if (dst->k != src->k)
        return NX_EINVAL;
    assert(dst != src);
    nx_topk_clear(dst);
    if (src->n) {
        int rc = thaw(dst);
        if (rc || (rc = copy_reserve(dst, src)))
            return rc;
        memcpy(dst->items, src->items, (size_t)src->n * sizeof *dst->items);
        if (src->heap) /* a frozen src has none: dst's is rebuilt when needed */
            memcpy(dst->heap, src->heap, (size_t)src->n * sizeof *dst->heap);
        dst->heap_ok = src->heap_ok && src->heap;
        if (src->alen)
            memcpy(dst->arena, src->arena, src->alen);
        dst->alen = src->alen;
        dst->adead = src->adead;
        dst->n = src->n;
        if (dst->tcap == src->tcap && src->table_ok) {
            memcpy(dst->table, src->table, (size_t)src->tcap * sizeof *dst->table);
        } else { /* no copy of a stale table: dst's is rebuilt when needed */
            dst->table_ok = false;
        }
    }
    dst->total = src->total;
    return 0;
}

/* m_i of the merge: the smallest count when the sketch is full, else 0. */
static double topk_min(const nx_topk *t)
{
    if (t->n < t->k)
        return 0;
    if (t->heap_ok)
        return t->items[t->heap[0]].count;
    double m = t->items[0].count;
    for (uint32_t i = 1; i < t->n; i++)
        m = t->items[i].count < m ? t->items[i].count : m;
    return m;
}

void nx_topk_prefetch_merge(const nx_topk *t)
{
    for (size_t i = 0; i < (size_t)t->n * sizeof(tk_item); i += 64)
        __builtin_prefetch((const char *)t->items + i);
    for (size_t i = 0; i < (size_t)t->tcap * sizeof(uint32_t); i += 64)
        __builtin_prefetch((const char *)t->table + i);
    for (size_t i = 0; i < t->alen; i += 64)
        __builtin_prefetch(t->arena + i);
}

/* A candidate of a merge, 16 bytes (the selection moves them around): the
 * bits of its merged count (a positive double, so that they compare as the
 * counts do) and, above its ref, the top 47 bits of its hash. The ref says
 * where its member is: a dst counter index, or TK_FROM_SRC | a src counter
 * index (< 65536 both). */
typedef struct tk_key {
    uint64_t count;
    uint64_t hash_ref;
} tk_key;
#define TK_REF_BITS 17
#define TK_FROM_SRC (1u << 16)

static inline tk_key key_make(double count, uint64_t hash, uint32_t ref)
{
    tk_key x;
    memcpy(&x.count, &count, sizeof count);
    x.hash_ref = (hash >> TK_REF_BITS) << TK_REF_BITS | ref;
    return x;
}

static inline double key_count(const tk_key *x)
{
    double c;
    memcpy(&c, &x->count, sizeof c);
    return c;
}

static inline uint32_t key_ref(const tk_key *x)
{
    return (uint32_t)(x->hash_ref & ((1u << TK_REF_BITS) - 1));
}

/* The counter a candidate's member comes from. */
static inline const tk_item *key_item(const nx_topk *dst, const nx_topk *src, const tk_key *x)
{
    uint32_t ref = key_ref(x);
    return ref & TK_FROM_SRC ? &src->items[ref & ~TK_FROM_SRC] : &dst->items[ref];
}

/* Candidate order of two candidates whose counts and top hash bits are
 * equal: the whole hashes, then the member bytes, decide. */
static bool __attribute__((noinline)) key_tie_before(const nx_topk *dst, const nx_topk *src,
                                                     const tk_key *a, const tk_key *b)
{
    const tk_item *x = key_item(dst, src, a), *y = key_item(dst, src, b);
    const nx_topk *tx = key_ref(a) & TK_FROM_SRC ? src : dst;
    const nx_topk *ty = key_ref(b) & TK_FROM_SRC ? src : dst;
    return order(key_count(a), x->hash, tk_member(tx, x), x->len, key_count(b), y->hash,
                 tk_member(ty, y), y->len) < 0;
}

/* a comes before b in candidate order; computed without a data-dependent
 * branch, as the comparisons of a merge are coin flips to a branch
 * predictor (the tie branch is all but never taken). */
static inline bool key_before(const nx_topk *dst, const nx_topk *src, const tk_key *a,
                              const tk_key *b)
{
    uint64_t ha = a->hash_ref >> TK_REF_BITS, hb = b->hash_ref >> TK_REF_BITS;
    bool same_count = a->count == b->count;
    if (__builtin_expect(same_count & (ha == hb), 0))
        return key_tie_before(dst, src, a, b);
    return (a->count > b->count) | (same_count & (ha < hb));
}

/* Moves the median of c[x], c[y], c[z] in candidate order to c[z]. */
static void key_median_last(const nx_topk *dst, const nx_topk *src, tk_key *c, uint32_t x,
                            uint32_t y, uint32_t z)
{
    tk_key t;
    if (key_before(dst, src, &c[y], &c[x]))
        t = c[x], c[x] = c[y], c[y] = t;
    /* c[x] before c[y] */
    if (key_before(dst, src, &c[z], &c[x]))
        t = c[z], c[z] = c[x], c[x] = t; /* z was first: x is the median */
    else if (key_before(dst, src, &c[y], &c[z]))
        t = c[z], c[z] = c[y], c[y] = t; /* z was last: y is the median */
}

static int key_cmp_r(const void *a, const void *b, void *arg)
{
    const nx_topk *const *ds = arg;
    if (key_before(ds[0], ds[1], a, b))
        return -1;
    return key_before(ds[0], ds[1], b, a);
}

/* Reorders c[0..n) so that c[0..k) are its k first candidates in candidate
 * order (0 < k < n): quickselect, median-of-three pivots, a branch-free
 * Lomuto partition (c[lo..store) before the pivot, c[store..i) not). After
 * 64 rounds, which random data never needs, the rest is sorted instead
 * (qsort_r: O(n log n) whatever the input). */
static void keys_select(tk_key *c, uint32_t n, uint32_t k, const nx_topk *dst, const nx_topk *src)
{
    uint32_t lo = 0, hi = n;
    for (int round = 0; hi - lo > 1; round++) {
        if (round == 64) {
            const nx_topk *ds[2] = {dst, src};
            qsort_r(c + lo, hi - lo, sizeof *c, key_cmp_r, ds);
            return;
        }
        key_median_last(dst, src, c, lo, lo + (hi - lo) / 2, hi - 1);
        tk_key p = c[hi - 1];
        uint32_t store = lo;
        for (uint32_t i = lo; i < hi - 1; i++) {
            tk_key x = c[i];
            bool b = key_before(dst, src, &x, &p);
            c[i] = c[store];
            c[store] = x;
            store += b;
        }
        c[hi - 1] = c[store];
        c[store] = p;
        /* c[0..store) come before c[store] and c(store..n) after it */
        if (store == k || store + 1 == k)
            return;
        if (k < store)
            hi = store;
        else
            lo = store + 1;
    }
}

/* The most bytes of members dst's arena holds live during step 4 of a
 * merge (below): each given member's bytes are put before those of the
 * counter it replaces die. */
static size_t merge_peak(const nx_topk *dst, const nx_topk *src, const tk_key *give,
                         uint32_t ngive, const uint8_t *keep, uint32_t nc)
{
    size_t live = dst->alen - dst->adead, peak = live;
    uint32_t g = 0;
    if (nc > dst->k)
        for (uint32_t i = 0; i < dst->n && g < ngive; i++) {
            if (keep[i])
                continue;
            size_t len = key_item(dst, src, &give[g++])->len;
            peak = live + len > peak ? live + len : peak;
            live = live + len - dst->items[i].len;
        }
    for (; g < ngive; g++)
        live += key_item(dst, src, &give[g])->len;
    return live > peak ? live : peak;
}

/* nx_topk_merge into an empty dst from a src that was never full and fits
 * in dst (a second's drained batch, tallied exactly in a sketch of 256
 * counters, into the second's empty top-k of 64). Then m1 = m2 = 0 and
 * every candidate is kept: the result is src's counters as they are, which
 * the general merge appends one by one in src's order (a key each, an
 * arena_put each: ~3,200 instructions for a batch of 30 members). Here the
 * counters and the arena (no dead bytes in it) are copied at once; the
 * heap and the table are rebuilt when next needed, as after the general
 * merge. The sketch's content is the same, so is its evolution (see
 * "Candidate order" at the top). */
static int topk_fill(nx_topk *dst, const nx_topk *src)
{
    /* only a clear empties a sketch, and it empties the arena too */
    assert(src->n > 0 && dst->n == 0 && dst->alen == 0);
    int rc;
    if ((rc = thaw(dst)) || (rc = reserve(dst, src->n)) || (rc = arena_room(dst, src->alen)))
        return rc;
    memcpy(dst->items, src->items, (size_t)src->n * sizeof *dst->items);
    if (src->alen) /* a sketch of empty members may have no arena */
        memcpy(dst->arena, src->arena, src->alen);
    dst->alen = src->alen;
    dst->n = src->n;
    dst->heap_ok = false;
    dst->table_ok = false;
    dst->total += src->total;
    return 0;
}

/* Keeps the k first candidates of the n > k counters of an exact sketch
 * (see nx_topk_set_capacity): a selection over keys made from the counters
 * themselves, then the kept counters past k move into the places of the
 * dropped ones before k. Their bytes stay where they are; the dropped
 * ones' are dead (compacted by a later arena_put). */
static int topk_cut(nx_topk *t, uint32_t k)
{
    uint32_t n = t->n;
    assert(k > 0 && k < n && n < t->k);
    int rc = thaw(t);
    if (rc)
        return rc;
    tk_key key_buf[512];
    uint8_t keep_buf[512];
    tk_key *keys = n <= 512 ? key_buf : malloc((size_t)n * sizeof *keys);
    uint8_t *keep = n <= 512 ? keep_buf : calloc(n, 1);
    if (!keys || !keep) {
        rc = NX_ENOMEM;
        goto done;
    }
    if (keep == keep_buf)
        memset(keep, 0, n);
    for (uint32_t i = 0; i < n; i++)
        keys[i] = key_make(t->items[i].count, t->items[i].hash, i);
    keys_select(keys, n, k, t, t);
    for (uint32_t i = 0; i < k; i++)
        keep[key_ref(&keys[i])] = 1;
    /* as many kept counters lie past k as dropped ones before it */
    uint32_t hole = 0;
    for (uint32_t i = k; i < n; i++) {
        if (!keep[i]) {
            t->adead += t->items[i].len;
            continue;
        }
        while (keep[hole])
            hole++;
        assert(hole < k);
        t->adead += t->items[hole].len;
        t->items[hole] = t->items[i];
        keep[hole] = 1;
    }
    t->n = k;
    t->heap_ok = false;
    t->table_ok = false;
done:
    if (keys != key_buf)
        free(keys);
    if (keep != keep_buf)
        free(keep);
    return rc;
}

int nx_topk_set_capacity(nx_topk *t, uint32_t k)
{
    if (k == t->k)
        return 0;
    if (k < 1 || k > NX_TOPK_MAX_CAP || t->n >= t->k)
        return NX_EINVAL;
    int rc;
    if (t->n > k && (rc = topk_cut(t, k)))
        return rc;
    if (t->icap > k) {
        /* counters and heap shrink to k (best effort: a failed shrink keeps
         * the bigger block); the table, >= 2 * icap, is big enough */
        tk_item *items = realloc(t->items, (size_t)k * sizeof *items);
        if (items)
            t->items = items;
        if (t->heap) {
            uint32_t *heap = realloc(t->heap, (size_t)k * sizeof *heap);
            if (heap)
                t->heap = heap;
        }
        t->icap = k;
    }
    t->k = k;
    return 0;
}

/*
 * Merge, in dst's own storage. The result is the k first candidates of the
 * union (counts and errors as described at the top):
 *   1. each src counter is looked up in dst (at[]);
 *   2. room for the counters the result takes from src is made before
 *      anything changes;
 *   3. dst's counters are updated in place (+ the src count where src
 *      monitors them, else + m2);
 *   4. if dst's counters and the members only src monitors (count + m1)
 *      fit in k, the latter are appended; otherwise a selection
 *      (keys_select, O(k) expected) finds the k first candidates, the src
 *      members among them take the places of the dst counters that are not
 *      and free counters, and the table is rebuilt. The arena has room
 *      for the members' bytes by then (arena_room, with step 2's
 *      reserve): a merge is all or nothing, so a caller may retry one
 *      that failed (NX_ENOMEM) without counting anything twice.
 * src may be of another capacity when it is not full: it has never
 * evicted, so m2 = 0 bounds what it does not monitor, and the proof at the
 * top holds unchanged (the set path merges a batch tallied exactly into a
 * scratch sketch larger than k: nx_topk_tally; into an empty dst that is
 * topk_fill).
 * The heap is left to be rebuilt by the next add ("Lazy heap" at the top):
 * most merged sketches (window slots) are only merged and read. Cost: one
 * dst lookup per src counter and O(k) expected; the heap-based merge
 * before (each src-only member offered to the heap's root, O(log k) per
 * replacement with a mispredicted branch per level) took 4.5-6.9 us for two
 * full 64-counter sketches of distinct members.
 */
int nx_topk_merge(nx_topk *dst, const nx_topk *src)
{
    if (dst->k != src->k && src->n >= src->k)
        return NX_EINVAL;
    assert(dst != src);
    if (src->n == 0) {
        dst->total += src->total;
        return 0;
    }
    if (dst->n == 0 && dst->k == src->k) { /* the union is src's counters as they are */
        double total = dst->total;
        int rc = nx_topk_copy(dst, src);
        dst->total = rc ? total : total + src->total;
        return rc;
    }
    if (dst->n == 0 && src->n <= dst->k && src->n < src->k && src->adead == 0)
        return topk_fill(dst, src);
    int trc = thaw(dst);
    if (trc)
        return trc;
    table_ensure(dst);
    double m1 = topk_min(dst), m2 = topk_min(src);
    uint32_t nd = dst->n, ns = src->n;
    uint32_t at_buf[256];
    uint8_t hit_buf[2 * 256];
    tk_key key_buf[512];
    uint32_t *at = ns <= 256 ? at_buf : malloc(ns * sizeof *at);
    /* hit[i]: src monitors dst counter i too; keep[i]: the result keeps it */
    uint8_t *hit = nd <= 256 ? hit_buf : malloc(2 * (size_t)nd);
    tk_key *keys = nd + ns <= 512 ? key_buf : malloc((size_t)(nd + ns) * sizeof *keys);
    int rc = NX_ENOMEM;
    if (!at || !hit || !keys)
        goto done;
    uint8_t *keep = hit + nd;
    memset(hit, 0, 2 * (size_t)nd);
    /* 1. where each src counter sits in dst (UINT32_MAX: nowhere) */
    uint32_t nnew = 0;
    for (uint32_t j = 0; j < ns; j++) {
        const tk_item *it = &src->items[j];
        at[j] = nd ? table_find(dst, tk_member(src, it), it->len, it->hash) : UINT32_MAX;
        if (at[j] != UINT32_MAX)
            hit[at[j]] = 1;
        else
            keys[nd + nnew++] = key_make(it->count + m1, it->hash, TK_FROM_SRC | j);
    }
    /* 2. the candidates, which of them src gives, and room for them */
    uint32_t nc = nd + nnew, nkeep = nc < dst->k ? nc : dst->k;
    const tk_key *give = keys + nd; /* the src members the result takes */
    uint32_t ngive = nnew;
    if (nc > dst->k) {
        for (uint32_t i = 0; i < nd; i++) {
            const tk_item *d = &dst->items[i];
            double c = d->count + (hit[i] ? 0 : m2); /* as step 3 will make it */
            keys[i] = key_make(c, d->hash, i);
        }
        for (uint32_t j = 0; j < ns; j++) /* step 3's hit counts */
            if (at[j] != UINT32_MAX)
                keys[at[j]] = key_make(dst->items[at[j]].count + src->items[j].count,
                                       dst->items[at[j]].hash, at[j]);
        keys_select(keys, nc, dst->k, dst, src);
        /* keys[0..k) are the result: its src members to the front */
        ngive = 0;
        for (uint32_t i = 0; i < dst->k; i++) {
            if (key_ref(&keys[i]) & TK_FROM_SRC)
                keys[ngive++] = keys[i];
            else
                keep[key_ref(&keys[i])] = 1;
        }
        give = keys;
    }
    if ((rc = reserve(dst, nkeep)) != 0 || (rc = arena_room(dst, merge_peak(dst, src, give, ngive, keep, nc))) != 0)
        goto done; /* nothing changed */
    /* 3. counts in place */
    if (m2 > 0) {
        for (uint32_t i = 0; i < nd; i++) {
            if (!hit[i]) {
                dst->items[i].count += m2;
                dst->items[i].error += m2;
            }
        }
    }
    for (uint32_t j = 0; j < ns; j++) {
        if (at[j] == UINT32_MAX)
            continue;
        tk_item *d = &dst->items[at[j]];
        d->count += src->items[j].count;
        d->error += src->items[j].error;
    }
    dst->heap_ok = false;
    /* 4. the src members in: into dropped counters, then free ones (the
     * arena has room for their bytes: arena_put cannot fail here) */
    uint32_t g = 0, off;
    if (nc > dst->k) {
        for (uint32_t i = 0; i < nd && g < ngive; i++) {
            if (keep[i])
                continue;
            tk_item *d = &dst->items[i];
            const tk_item *it = key_item(dst, src, &give[g]);
            if ((rc = arena_put(dst, tk_member(src, it), it->len, &off)) != 0)
                break;
            dst->adead += d->len;
            item_set(d, it->hash, off, it->len, key_count(&give[g]), it->error + m1);
            g++;
        }
    }
    for (; g < ngive && rc == 0; g++) {
        const tk_item *it = key_item(dst, src, &give[g]);
        if ((rc = arena_put(dst, tk_member(src, it), it->len, &off)) != 0)
            break;
        tk_item *d = &dst->items[dst->n++];
        item_set(d, it->hash, off, it->len, key_count(&give[g]), it->error + m1);
        if (nc <= dst->k && nd > 0)
            table_insert(dst, (uint32_t)(d - dst->items));
    }
    /* counters replaced, or an empty dst filled (a drained batch into a
     * second's top-k, which is mostly only merged from later): the table
     * is rebuilt when next needed */
    if (nc > dst->k || (nd == 0 && ngive > 0))
        dst->table_ok = false;
    if (rc == 0)
        dst->total += src->total;
done:
    if (at && at != at_buf)
        free(at);
    if (hit && hit != hit_buf)
        free(hit);
    if (keys && keys != key_buf)
        free(keys);
    return rc;
}

/* ---- codec ------------------------------------------------------------------- */

int nx_topk_encode(const nx_topk *t, nx_buf *out)
{
    uint32_t ord_buf[2 * 256];
    uint32_t *ord = t->n <= 256 ? ord_buf : malloc((size_t)t->n * 2 * sizeof *ord);
    if (!ord)
        return NX_ENOMEM;
    topk_order(t, ord, ord + t->n);
    size_t start = out->len;
    int rc = nx_buf_uvar(out, t->k);
    if (rc == 0)
        rc = nx_buf_f64(out, t->total);
    if (rc == 0)
        rc = nx_buf_uvar(out, t->n);
    for (uint32_t i = 0; i < t->n && rc == 0; i++) {
        const tk_item *it = &t->items[ord[i]];
        rc = nx_buf_bytes(out, tk_member(t, it), it->len);
        if (rc == 0)
            rc = nx_buf_f64(out, it->count);
        if (rc == 0)
            rc = nx_buf_f64(out, it->error);
    }
    if (ord != ord_buf)
        free(ord);
    if (rc)
        out->len = start;
    return rc;
}

int nx_topk_decode(struct nx_rbuf *in, nx_topk **out)
{
    uint64_t k = nx_rbuf_uvar(in);
    double total = nx_rbuf_f64(in);
    uint64_t n = nx_rbuf_uvar(in);
    if (in->err || k < 1 || k > NX_TOPK_MAX_CAP || !isfinite(total) || total < 0 || n > k ||
        n > in->n / 17)
        return NX_ECORRUPT;
    nx_topk *t;
    int rc = nx_topk_create((uint32_t)k, &t);
    if (rc)
        return rc;
    double sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *m = nx_rbuf_bytes(in, &len, NX_TOPK_MEMBER_MAX);
        double c = nx_rbuf_f64(in), e = nx_rbuf_f64(in);
        if (in->err || !isfinite(c) || !(c > 0) || !isfinite(e) || e < 0 || e > c)
            goto corrupt;
        uint64_t h = XXH3_64bits(m, len);
        if (table_find(t, (const char *)m, (uint32_t)len, h) != UINT32_MAX)
            goto corrupt; /* duplicate member */
        rc = topk_insert(t, (const char *)m, (uint32_t)len, h, c, e);
        if (rc)
            goto fail;
        sum += c;
    }
    if (sum > total * (1 + 1e-9) + 1e-9)
        goto corrupt;
    t->total = total;
    *out = t;
    return 0;
corrupt:
    rc = NX_ECORRUPT;
fail:
    nx_topk_destroy(t);
    return rc;
}
