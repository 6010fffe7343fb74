/*
 * nx_shll.c — sliding HyperLogLog (see nx_shll.h for the design).
 *
 * Invariants (checked by tests/unit/test_shll.c against a from-scratch HLL):
 *  - every live entry of register i lies in the probe run that starts at
 *    home(i) and ends at the first empty slot (linear probing; deletion by
 *    backward shift keeps this without tombstones);
 *  - no two live entries of one register dominate each other: for (t1, q1)
 *    and (t2, q2) of the same register, t1 < t2 implies q1 > q2;
 *  - n counts the occupied slots (expired entries included until dropped);
 *    n <= 3/4 cap after every insertion, n <= cap / 2 after a rebuild.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/nx_codec.h"
#include "common/nx_sort.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_shll.h"

#define SHLL_MIN_CAP 16u

typedef struct shll_ent {
    uint32_t key; /* (register << 6) | rank; 0 = empty (rank >= 1) */
    uint32_t sec; /* second mod 2^32 */
} shll_ent;

struct nx_shll {
    uint8_t p;
    uint8_t shift;     /* 32 - log2(cap) */
    uint32_t horizon;
    uint32_t n;        /* occupied slots */
    uint32_t cap;      /* 0 or a power of two */
    shll_ent *t;       /* sparse: every pair; dense: the overflow */
    uint32_t *head;    /* dense: per register its oldest pair, head_pack()ed; NULL: sparse */
    uint32_t nhead;    /* non-zero heads */
    int64_t clock;     /* newest `now` seen by raise */
    int64_t swept;     /* clock of the last nx_shll_maintain sweep */
    nx_hll *grave;     /* where pairs go before they can be dropped dead, or NULL */
    int64_t buried;    /* `now` of the last fold into the grave */
};

/* Dense heads pack the second in 26 bits: ages are taken modulo 2^26, exact
 * while every head is younger than 2^26 s (sweeps drop expired heads every
 * half horizon and a clock jump past the horizon drops everything). */
#define T26 0x3FFFFFFu
#define DENSE_MAX_HORIZON (1u << 24)

static inline uint32_t head_pack(uint32_t sec32, uint8_t rank)
{
    return ((sec32 & T26) << 6) | rank;
}

static inline uint32_t head_age(uint32_t h, uint32_t now32)
{
    return ((now32 & T26) - (h >> 6)) & T26;
}

/* Sparse -> dense above m/2 pairs (the table would then be ~8 bytes x 1.5
 * per pair; dense is 4 bytes per register plus the overflow), dense ->
 * sparse below m/8 (hysteresis). */
static inline uint32_t dense_at(const nx_shll *s) { return (1u << s->p) / 2; }
static inline uint32_t sparse_at(const nx_shll *s) { return (1u << s->p) / 8; }
/* Growing the table now (to twice its slots, 8 bytes each) would make it
 * bigger than the dense head array (4 bytes per register). */
static inline bool sparse_outgrows(const nx_shll *s)
{
    return (uint64_t)s->cap * 2 * sizeof(shll_ent) > ((uint64_t)sizeof(uint32_t) << s->p);
}

static inline uint32_t home(const nx_shll *s, uint32_t idx)
{
    return (idx * 0x9E3779B1u) >> s->shift;
}

/* Age of an entry at clock `now` (entries are never newer than now). */
static inline uint32_t age(uint32_t sec, uint32_t now)
{
    return now - sec;
}

static inline bool expired(const nx_shll *s, uint32_t sec, uint32_t now)
{
    return age(sec, now) >= s->horizon;
}

int nx_shll_create(uint8_t precision, uint32_t horizon_s, nx_shll **out)
{
    if (precision < 14 || precision > 18 || horizon_s == 0 || horizon_s > (1u << 30))
        return NX_EINVAL;
    nx_shll *s = calloc(1, sizeof *s);
    if (!s)
        return NX_ENOMEM;
    s->p = precision;
    s->horizon = horizon_s;
    *out = s;
    return 0;
}

void nx_shll_destroy(nx_shll *s)
{
    if (!s)
        return;
    free(s->t);
    free(s->head);
    free(s);
}

static void put(nx_shll *s, shll_ent e)
{
    uint32_t mask = s->cap - 1, j = home(s, e.key >> 6);
    while (s->t[j].key)
        j = (j + 1) & mask;
    s->t[j] = e;
    s->n++;
}

/* Installs an empty table sized for `want` entries at load <= 1/2 (none
 * when want is 0) and hands back the old one, for the caller to refill
 * from and free. On ENOMEM nothing changes. */
static int table_swap(nx_shll *s, uint32_t want, shll_ent **old, uint32_t *oldcap)
{
    uint32_t cap = SHLL_MIN_CAP;
    while (cap < want * 2)
        cap *= 2;
    shll_ent *t = want ? calloc(cap, sizeof *t) : NULL;
    if (want && !t)
        return NX_ENOMEM;
    *old = s->t;
    *oldcap = s->cap;
    s->t = t;
    s->cap = want ? cap : 0;
    s->shift = (uint8_t)(32 - __builtin_ctz(cap));
    s->n = 0;
    return 0;
}

/* Rebuilds the table with the entries live at `now` plus room for `extra`
 * more, sized so that they fill at most half of it (or frees it when that
 * is nothing at all). */
static int rebuild(nx_shll *s, uint32_t now, uint32_t extra)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->t[i].key && !expired(s, s->t[i].sec, now))
            live++;
    shll_ent *old;
    uint32_t oldcap;
    int rc = table_swap(s, live + extra, &old, &oldcap);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].key && !expired(s, old[i].sec, now))
            put(s, old[i]);
    free(old);
    return 0;
}

/* Backward-shift deletion of slot j. */
static void remove_at(nx_shll *s, uint32_t j)
{
    uint32_t mask = s->cap - 1, i = j;
    for (;;) {
        s->t[i].key = 0;
        uint32_t k = i;
        for (;;) {
            k = (k + 1) & mask;
            if (!s->t[k].key) {
                s->n--;
                return;
            }
            uint32_t h = home(s, s->t[k].key >> 6);
            /* the entry at k may move to i when its home is not in (i, k] */
            bool stays = i <= k ? (h > i && h <= k) : (h > i || h <= k);
            if (!stays) {
                s->t[i] = s->t[k];
                i = k;
                break;
            }
        }
    }
}

/* The slot of the next pair of register idx in its probe run, starting at
 * slot j (which must lie in that run), or UINT32_MAX at the run's end. */
static uint32_t reg_scan(const nx_shll *s, uint32_t idx, uint32_t j)
{
    uint32_t mask = s->cap - 1;
    for (; s->t[j].key; j = (j + 1) & mask)
        if ((s->t[j].key >> 6) == idx)
            return j;
    return UINT32_MAX;
}

static inline uint32_t reg_first(const nx_shll *s, uint32_t idx)
{
    return s->cap ? reg_scan(s, idx, home(s, idx)) : UINT32_MAX;
}

/* The pair of register idx after the one at slot j, or UINT32_MAX. */
static inline uint32_t reg_next(const nx_shll *s, uint32_t idx, uint32_t j)
{
    return reg_scan(s, idx, (j + 1) & (s->cap - 1));
}

/* ---- dense representation ------------------------------------------------ */

/* Puts one more pair in the (overflow) table, growing it when needed. */
static int put_grow(nx_shll *s, shll_ent e, uint32_t now32)
{
    if ((uint64_t)(s->n + 1) * 4 > (uint64_t)s->cap * 3) {
        int rc = rebuild(s, now32, 1); /* drops the dead, leaves room for one */
        if (rc)
            return rc;
    }
    put(s, e);
    return 0;
}

/* nx_shll_raise in the dense representation, in place. Register idx's pairs
 * are its head (the oldest) and its entries in the overflow table:
 *  1. a live pair at least as large and as recent drops the new one;
 *  2. overflow pairs the new one dominates, and dead ones, go;
 *  3. the oldest of the pairs left and the new one is the head, the others
 *     are in the overflow.
 * Only what changes is touched: one scan of the register's probe run does
 * 1 and 2 and finds the oldest pair left, then a removal or two and one
 * insertion (taking every pair out and putting the survivors back cost
 * ~15% of a set event). One scan is enough because a live pair the new one
 * dominates and a live pair that dominates the new one never coexist (the
 * first would dominate the second: the lists hold no such pairs), so what
 * the scan removed before it meets a dominating pair was dead. */
static int dense_raise(nx_shll *s, uint32_t idx, uint8_t rank, uint32_t sec32, uint32_t now32)
{
    uint32_t h = s->head[idx], hage = h ? head_age(h, now32) : 0;
    bool hlive = h && hage < s->horizon;
    uint32_t hsec = now32 - hage;
    uint8_t hq = (uint8_t)(h & 63);
    if (hlive && hq >= rank && (int32_t)(hsec - sec32) >= 0)
        return 0;
    /* the first pair that goes keeps its slot for the pair that comes; oj:
     * the oldest pair that stays (older than the new one), for step 3 */
    uint32_t keep = UINT32_MAX, oj = UINT32_MAX, oage = now32 - sec32;
    for (uint32_t j = reg_first(s, idx); j != UINT32_MAX;) {
        shll_ent e = s->t[j];
        bool gone = expired(s, e.sec, now32);
        uint8_t q = (uint8_t)(e.key & 63);
        int32_t d = (int32_t)(e.sec - sec32); /* > 0: e is newer */
        if (!gone && q >= rank && d >= 0) {
            if (keep != UINT32_MAX)
                remove_at(s, keep); /* dead: it goes all the same */
            return 0;
        }
        if (gone || (q <= rank && d <= 0)) {
            if (keep == UINT32_MAX) {
                keep = j;
                j = reg_next(s, idx, j);
                continue;
            }
            /* backward shift: only slots from j on move, so keep and oj stay */
            remove_at(s, j);
            j = reg_scan(s, idx, j); /* what moved into j is later in the run */
        } else {
            if (now32 - e.sec > oage) {
                oage = now32 - e.sec;
                oj = j;
            }
            j = reg_next(s, idx, j);
        }
    }
    shll_ent fresh = {(idx << 6) | rank, sec32};
    if (hlive && !(hq <= rank && (int32_t)(hsec - sec32) <= 0)) {
        /* the head stays, unless the new pair is older (a late event) */
        if (now32 - sec32 > hage) {
            s->head[idx] = head_pack(sec32, rank);
            fresh = (shll_ent){(idx << 6) | hq, hsec};
        }
        if (keep != UINT32_MAX) {
            s->t[keep] = fresh;
            return 0;
        }
        return put_grow(s, fresh, now32);
    }
    /* the head goes (dead or dominated): the oldest pair left (oj) takes it */
    if (!h)
        s->nhead++;
    if (oj == UINT32_MAX) {
        s->head[idx] = head_pack(sec32, rank);
        if (keep != UINT32_MAX)
            remove_at(s, keep);
        return 0;
    }
    /* the new pair takes the slot of the one that becomes the head */
    shll_ent o = s->t[oj];
    s->head[idx] = head_pack(o.sec, (uint8_t)(o.key & 63));
    s->t[oj] = fresh;
    if (keep != UINT32_MAX)
        remove_at(s, keep);
    return 0;
}

/* Sparse -> dense: each register's oldest live pair becomes its head, the
 * others go to a fresh overflow table. On ENOMEM it stays sparse. */
static int densify(nx_shll *s, uint32_t now32)
{
    uint32_t m = 1u << s->p;
    uint32_t *head = calloc(m, sizeof *head);
    if (!head)
        return NX_ENOMEM;
    uint32_t nhead = 0, rest = 0;
    for (uint32_t i = 0; i < s->cap; i++) {
        shll_ent e = s->t[i];
        if (!e.key || expired(s, e.sec, now32))
            continue;
        uint32_t r = e.key >> 6;
        if (!head[r]) {
            head[r] = head_pack(e.sec, (uint8_t)(e.key & 63));
            nhead++;
        } else {
            rest++;
            if (now32 - e.sec > head_age(head[r], now32))
                head[r] = head_pack(e.sec, (uint8_t)(e.key & 63));
        }
    }
    shll_ent *old;
    uint32_t oldcap;
    if (table_swap(s, rest, &old, &oldcap)) {
        free(head);
        return NX_ENOMEM;
    }
    s->head = head;
    s->nhead = nhead;
    for (uint32_t i = 0; i < oldcap; i++) {
        shll_ent e = old[i];
        if (!e.key || expired(s, e.sec, now32))
            continue;
        /* a list holds each rank once: the head is the pair of its rank */
        if ((head[e.key >> 6] & 63) != (e.key & 63))
            put(s, e);
    }
    free(old);
    return 0;
}

/* Dense -> sparse: the heads join the table. */
static int sparsify(nx_shll *s, uint32_t now32)
{
    int rc = rebuild(s, now32, s->nhead);
    if (rc)
        return rc;
    uint32_t m = 1u << s->p;
    for (uint32_t r = 0; r < m; r++) {
        uint32_t h = s->head[r];
        if (!h)
            continue;
        uint32_t a = head_age(h, now32);
        if (a < s->horizon) {
            shll_ent e = {(r << 6) | (h & 63), now32 - a};
            put(s, e);
        }
    }
    free(s->head);
    s->head = NULL;
    s->nhead = 0;
    return 0;
}

/* Everything expired (the clock jumped past the horizon): start empty. */
static void reset(nx_shll *s)
{
    free(s->t);
    free(s->head);
    s->t = NULL;
    s->head = NULL;
    s->cap = s->n = s->nhead = 0;
}

/* ---- the grave ------------------------------------------------------------
 * With a grave (nx_shll_set_grave), what the sketch has ever held is the
 * grave's registers max the sketch's pairs, dead ones included. Invariant:
 * every pair ever inserted is in the sketch, or in the grave (folded), or
 * dominated by such a pair (same register, rank at least as large). A
 * dominated pair's rank is carried by the pair that dominates it; a pair
 * dropped dead must have been folded first, which these rules ensure:
 *   - every call that may drop pairs (raise, expire, maintain) folds the
 *     whole sketch first when the last fold is a half horizon old
 *     (grave_due), so that after it the last fold is younger than
 *     H2 = max(1, horizon / 2);
 *   - a pair raised at age >= horizon - H2 goes to the grave at once (it
 *     could die before the next fold), and one at age >= horizon only
 *     there (a window could never read it).
 * A pair raised at age < horizon - H2 and dropped dead at `now` was raised
 * more than H2 before now, so the fold that is younger than H2 came after
 * it, while it was held. Folding is idempotent (register maxima), so a
 * fold that fails part way (NX_ENOMEM growing a sparse grave) is simply
 * redone; the call then fails before dropping anything. */

static inline int64_t grave_half(const nx_shll *s)
{
    return s->horizon / 2 ? (int64_t)(s->horizon / 2) : 1;
}

/* out max= every pair at most `span` seconds old at now32 (heads and
 * overflow alike; UINT32_MAX: every pair, dead ones included). */
static int raise_pairs(const nx_shll *s, uint32_t now32, uint32_t span, nx_hll *out)
{
    /* a large result is built densely at once rather than sparse-then-dense */
    if (s->n + s->nhead > (1u << s->p) / 8) {
        int rc = nx_hll_densify(out);
        if (rc)
            return rc;
    }
    if (s->head) {
        for (uint32_t r = 0; r < (1u << s->p); r++) {
            uint32_t h = s->head[r];
            if (!h || head_age(h, now32) > span)
                continue;
            int rc = nx_hll_raise(out, r, (uint8_t)(h & 63));
            if (rc)
                return rc;
        }
    }
    for (uint32_t i = 0; i < s->cap; i++) {
        shll_ent e = s->t[i];
        if (!e.key || age(e.sec, now32) > span)
            continue;
        int rc = nx_hll_raise(out, e.key >> 6, (uint8_t)(e.key & 63));
        if (rc)
            return rc;
    }
    return 0;
}

int nx_shll_fold(const nx_shll *s, nx_hll *out)
{
    if (nx_hll_precision(out) != s->p)
        return NX_EINVAL;
    return raise_pairs(s, (uint32_t)s->clock, UINT32_MAX, out);
}

int nx_shll_bury(nx_shll *s, int64_t now)
{
    if (!s->grave)
        return 0;
    int rc = nx_shll_fold(s, s->grave);
    if (rc == 0 && now > s->buried)
        s->buried = now;
    return rc;
}

void nx_shll_set_grave(nx_shll *s, nx_hll *grave)
{
    assert(!grave || nx_hll_precision(grave) == s->p);
    s->grave = grave;
    s->buried = s->clock;
}

/* The fold a call that may drop pairs makes first (see "the grave"). */
static inline int grave_due(nx_shll *s, int64_t now)
{
    return s->grave && now - s->buried >= grave_half(s) ? nx_shll_bury(s, now) : 0;
}

/* What a raise at (sec, now) does before its pair: the grave's fold when
 * due; whether the pair also goes to the grave at once (it could die before
 * the next fold); whether it is raised at all (else it could never be
 * read), and then the clock. Every raise at the same (sec, now) decides
 * alike, and after the first none folds or moves the clock again: a batch
 * decides once. */
static int raise_begin(nx_shll *s, int64_t sec, int64_t now, bool *to_grave, bool *live)
{
    int rc = grave_due(s, now);
    if (rc)
        return rc;
    *to_grave = s->grave && now - sec >= (int64_t)s->horizon - grave_half(s);
    *live = now - sec < (int64_t)s->horizon;
    if (*live && now > s->clock) {
        if (now - s->clock >= (int64_t)s->horizon)
            reset(s);
        s->clock = now;
    }
    return 0;
}

/* The pair (idx, rank) at sec32 into the lists, the clock at now32 (after
 * raise_begin said it is live). */
static int raise_pair(nx_shll *s, uint32_t idx, uint8_t rank, uint32_t sec32, uint32_t now32)
{
    int rc;
    if (s->head)
        return dense_raise(s, idx, rank, sec32, now32);
    /* the first entry that goes keeps its slot for the new one: a member
     * seen again in a later second replaces its pair in place (one store)
     * instead of a backward-shift deletion and an insertion */
    uint32_t keep = UINT32_MAX;
    for (uint32_t j = reg_first(s, idx); j != UINT32_MAX;) {
        shll_ent e = s->t[j];
        uint8_t q = (uint8_t)(e.key & 63);
        int32_t d = (int32_t)(e.sec - sec32); /* > 0: e is newer */
        bool gone = expired(s, e.sec, now32);
        if (!gone && q >= rank && d >= 0) {
            if (keep != UINT32_MAX)
                remove_at(s, keep); /* dead: it goes all the same */
            return 0; /* dominated: changes no range's maximum */
        }
        if (gone || (q <= rank && d <= 0)) {
            /* dominated by the new entry (or dead) */
            if (keep == UINT32_MAX) {
                keep = j;
                j = reg_next(s, idx, j);
                continue;
            }
            remove_at(s, j);
            j = reg_scan(s, idx, j); /* what moved into j is later in the run */
        } else {
            j = reg_next(s, idx, j);
        }
    }
    if (keep != UINT32_MAX) {
        s->t[keep] = (shll_ent){(idx << 6) | rank, sec32};
        return 0;
    }
    if ((uint64_t)(s->n + 1) * 4 > (uint64_t)s->cap * 3) {
        /* a table grown past the dense form's head array (p = 14: 128 KiB
         * from ~6,100 pairs on, against 64 KiB + a small overflow) goes
         * dense instead */
        if (sparse_outgrows(s) && s->horizon < DENSE_MAX_HORIZON && densify(s, now32) == 0)
            return dense_raise(s, idx, rank, sec32, now32);
        rc = rebuild(s, now32, 1); /* drops the dead, leaves room for one */
        if (rc)
            return rc;
    }
    shll_ent e = {(idx << 6) | rank, sec32};
    put(s, e);
    if (s->n > dense_at(s) && s->horizon < DENSE_MAX_HORIZON)
        (void)densify(s, now32); /* ENOMEM: stays sparse, still right */
    return 0;
}

int nx_shll_raise(nx_shll *s, uint32_t idx, uint8_t rank, int64_t sec, int64_t now)
{
    assert(idx < (1u << s->p) && rank >= 1 && rank <= 64 - s->p + 1 && sec <= now);
    bool to_grave, live;
    int rc = raise_begin(s, sec, now, &to_grave, &live);
    if (rc)
        return rc;
    if (to_grave && (rc = nx_hll_raise(s->grave, idx, rank)))
        return rc;
    return live ? raise_pair(s, idx, rank, (uint32_t)sec, (uint32_t)now) : 0;
}

int nx_shll_add_hash(nx_shll *s, uint64_t hash, int64_t sec, int64_t now)
{
    uint32_t idx;
    uint8_t rank;
    nx_hll_split(s->p, hash, &idx, &rank);
    return nx_shll_raise(s, idx, rank, sec, now);
}

int nx_shll_add_hashes(nx_shll *s, const uint64_t *hashes, uint32_t n, int64_t sec, int64_t now)
{
    assert(sec <= now);
    if (n == 0)
        return 0;
    bool to_grave, live;
    int rc = raise_begin(s, sec, now, &to_grave, &live);
    if (rc)
        return rc;
    uint32_t sec32 = (uint32_t)sec, now32 = (uint32_t)now;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx;
        uint8_t rank;
        nx_hll_split(s->p, hashes[i], &idx, &rank);
        if (to_grave && (rc = nx_hll_raise(s->grave, idx, rank)))
            return rc;
        if (live && (rc = raise_pair(s, idx, rank, sec32, now32)))
            return rc;
    }
    return 0;
}

void nx_shll_prefetch(const nx_shll *s, const uint64_t *hashes, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx;
        uint8_t rank;
        nx_hll_split(s->p, hashes[i], &idx, &rank);
        if (s->head)
            __builtin_prefetch(s->head + idx, 1);
        /* a raise scans the register's whole probe run (sparse, or the
         * dense form's overflow), which leaves the home line when the home
         * lies in its second half: the line after it is fetched too (set
         * events at 150 per stream-second: 5.1-5.3M -> 5.7-5.9M/s; the
         * scan's loads had been 55% of nx_shll_raise) */
        if (s->cap) {
            uint32_t j = home(s, idx);
            __builtin_prefetch(s->t + j, 1);
            __builtin_prefetch(s->t + ((j + 4) & (s->cap - 1)), 1);
        }
    }
}

int nx_shll_read(const nx_shll *s, int64_t from, int64_t now, nx_hll *out)
{
    if (nx_hll_precision(out) != s->p)
        return NX_EINVAL;
    if (from > now || (!s->cap && !s->head))
        return 0;
    if (from <= now - (int64_t)s->horizon)
        from = now - s->horizon + 1; /* nothing older is kept (no overflow for any from) */
    uint32_t from32 = (uint32_t)from, now32 = (uint32_t)now;
    uint32_t span = now32 - from32; /* a range [from, now] of span + 1 seconds */
    return raise_pairs(s, now32, span, out);
}

int nx_shll_expire(nx_shll *s, int64_t now)
{
    uint32_t now32 = (uint32_t)now, dead = 0;
    int rc = grave_due(s, now);
    if (rc)
        return rc;
    if (s->head) {
        for (uint32_t r = 0; r < (1u << s->p); r++) {
            uint32_t h = s->head[r];
            if (h && head_age(h, now32) >= s->horizon) {
                s->head[r] = 0;
                s->nhead--;
            }
        }
    }
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->t[i].key && expired(s, s->t[i].sec, now32))
            dead++;
    rc = dead ? rebuild(s, now32, 0) : 0;
    if (rc == 0 && s->head && s->n + s->nhead < sparse_at(s))
        rc = sparsify(s, now32);
    return rc;
}

int nx_shll_maintain(nx_shll *s, int64_t now)
{
    if (now - s->swept < (int64_t)(s->horizon / 2 + 1))
        return 0;
    s->swept = now;
    return nx_shll_expire(s, now);
}

/* The pairs of register r, head included: ages at now32 and ranks. */
static uint32_t reg_pairs(const nx_shll *s, uint32_t r, uint32_t now32, uint32_t *age_out,
                          uint8_t *q_out, uint32_t max)
{
    uint32_t n = 0;
    if (s->head && s->head[r] && n < max) {
        age_out[n] = head_age(s->head[r], now32);
        q_out[n++] = (uint8_t)(s->head[r] & 63);
    }
    for (uint32_t j = reg_first(s, r); j != UINT32_MAX && n < max; j = reg_next(s, r, j)) {
        age_out[n] = age(s->t[j].sec, now32);
        q_out[n++] = (uint8_t)(s->t[j].key & 63);
    }
    return n;
}

int nx_shll_check(const nx_shll *s, int64_t now)
{
    uint32_t now32 = (uint32_t)now, occupied = 0, heads = 0;
    for (uint32_t i = 0; i < s->cap; i++) {
        if (!s->t[i].key)
            continue;
        occupied++;
        /* reachable: the probe run from its register's home gets to it */
        uint32_t r = s->t[i].key >> 6, j = reg_first(s, r);
        while (j != UINT32_MAX && j != i)
            j = reg_next(s, r, j);
        if (j != i)
            return NX_ECORRUPT;
    }
    if (occupied != s->n || (s->cap && (uint64_t)s->n * 4 > (uint64_t)s->cap * 3))
        return NX_ECORRUPT;
    uint32_t m = 1u << s->p;
    for (uint32_t r = 0; r < m; r++) {
        if (s->head && s->head[r])
            heads++;
        uint32_t ages[64];
        uint8_t qs[64];
        uint32_t n = reg_pairs(s, r, now32, ages, qs, 64);
        if (n == 64)
            return NX_ECORRUPT; /* a list holds each rank at most once: <= 51 */
        for (uint32_t a = 0; a < n; a++) {
            /* dense: the head is the oldest pair of its register */
            if (s->head && a > 0 && (!s->head[r] || ages[a] >= ages[0]))
                return NX_ECORRUPT;
            for (uint32_t b = 0; b < n; b++) {
                bool live = ages[a] < s->horizon && ages[b] < s->horizon;
                /* b at least as recent and as large as a: a is dominated */
                if (a != b && live && ages[b] <= ages[a] && qs[b] >= qs[a])
                    return NX_ECORRUPT;
            }
        }
    }
    return s->head && heads != s->nhead ? NX_ECORRUPT : 0;
}

bool nx_shll_empty(const nx_shll *s)
{
    return s->n == 0 && s->nhead == 0;
}

size_t nx_shll_bytes(const nx_shll *s)
{
    return sizeof *s + (size_t)s->cap * sizeof(shll_ent) +
           (s->head ? ((size_t)1 << s->p) * sizeof(uint32_t) : 0);
}

uint8_t nx_shll_precision(const nx_shll *s)
{
    return s->p;
}

uint32_t nx_shll_entries(const nx_shll *s)
{
    return s->n + s->nhead;
}

/* ---- serialization ------------------------------------------------------- */

/* Canonical order: by register, then oldest first (the keys below sort so). */
int nx_shll_encode(const nx_shll *s, int64_t now, nx_buf *out)
{
    size_t start = out->len;
    uint32_t now32 = (uint32_t)now, live = 0;
    uint64_t *v = NULL;
    int rc;
    if (s->n + s->nhead) {
        v = malloc((size_t)(s->n + s->nhead) * sizeof *v);
        if (!v)
            return NX_ENOMEM;
        for (uint32_t r = 0; s->head && r < (1u << s->p); r++) {
            uint32_t h = s->head[r];
            if (!h || head_age(h, now32) >= s->horizon)
                continue;
            uint64_t a = head_age(h, now32);
            v[live++] = ((uint64_t)r << 38) | ((uint64_t)(s->horizon - 1 - a) << 6) | (h & 63);
        }
        /* sort key: register, then age descending (oldest first) */
        for (uint32_t i = 0; i < s->cap; i++) {
            shll_ent e = s->t[i];
            if (!e.key || expired(s, e.sec, now32))
                continue;
            uint64_t a = age(e.sec, now32);
            v[live++] = ((uint64_t)(e.key >> 6) << 38) | ((uint64_t)(s->horizon - 1 - a) << 6) |
                        (e.key & 63);
        }
        if ((rc = nx_sort_u64(v, live)))
            goto done;
    }
    if ((rc = nx_buf_u8(out, s->p)) || (rc = nx_buf_uvar(out, live)))
        goto done;
    for (uint32_t i = 0; i < live; i++) {
        uint64_t a = s->horizon - 1 - ((v[i] >> 6) & ((1ull << 32) - 1));
        if ((rc = nx_buf_uvar(out, v[i] >> 38)) || (rc = nx_buf_u8(out, (uint8_t)(v[i] & 63))) ||
            (rc = nx_buf_uvar(out, a)))
            goto done;
    }
done:
    free(v);
    if (rc)
        out->len = start;
    return rc;
}

int nx_shll_decode(struct nx_rbuf *in, uint8_t precision, uint32_t horizon_s, int64_t now,
                   nx_shll **out)
{
    uint8_t p = nx_rbuf_u8(in);
    uint64_t n = nx_rbuf_uvar(in);
    /* an entry takes at least 3 bytes */
    if (in->err || p != precision || n > in->n / 3)
        return NX_ECORRUPT;
    nx_shll *s;
    int rc = nx_shll_create(precision, horizon_s, &s);
    if (rc)
        return rc;
    uint64_t pidx = 0, page = 0;
    uint8_t prank = 0;
    uint8_t maxrank = (uint8_t)(64 - p + 1);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t idx = nx_rbuf_uvar(in);
        uint8_t r = nx_rbuf_u8(in);
        uint64_t a = nx_rbuf_uvar(in);
        bool same = i > 0 && idx == pidx;
        if (in->err || idx >= (1u << p) || r < 1 || r > maxrank || a >= horizon_s ||
            (i > 0 && idx < pidx) || (same && (a >= page || r >= prank)))
            goto corrupt;
        /* canonical lists are free of dominated pairs: raise inserts each */
        if ((rc = nx_shll_raise(s, (uint32_t)idx, r, now - (int64_t)a, now)))
            goto fail;
        pidx = idx;
        page = a;
        prank = r;
    }
    *out = s;
    return 0;
corrupt:
    rc = NX_ECORRUPT;
fail:
    nx_shll_destroy(s);
    return rc;
}
