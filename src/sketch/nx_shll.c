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
    shll_ent *t;
    int64_t swept;     /* clock of the last nx_shll_maintain sweep */
};

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

/* Rebuilds the table with the entries live at `now` plus room for `extra`
 * more, sized so that they fill at most half of it (or frees it when that
 * is nothing at all). */
static int rebuild(nx_shll *s, uint32_t now, uint32_t extra)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->t[i].key && !expired(s, s->t[i].sec, now))
            live++;
    if (live + extra == 0) {
        free(s->t);
        s->t = NULL;
        s->cap = s->n = 0;
        return 0;
    }
    uint32_t cap = SHLL_MIN_CAP;
    while (cap < (live + extra) * 2)
        cap *= 2;
    shll_ent *old = s->t;
    uint32_t oldcap = s->cap;
    s->t = calloc(cap, sizeof *s->t);
    if (!s->t) {
        s->t = old;
        return NX_ENOMEM;
    }
    s->cap = cap;
    s->shift = (uint8_t)(32 - __builtin_ctz(cap));
    s->n = 0;
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

int nx_shll_raise(nx_shll *s, uint32_t idx, uint8_t rank, int64_t sec, int64_t now)
{
    uint32_t sec32 = (uint32_t)sec, now32 = (uint32_t)now;
    assert(idx < (1u << s->p) && rank >= 1 && rank <= 64 - s->p + 1 && sec <= now);
    if (now - sec >= (int64_t)s->horizon)
        return 0; /* could never be read */
    if (s->cap) {
        uint32_t mask = s->cap - 1;
    scan:
        for (uint32_t j = home(s, idx); s->t[j].key; j = (j + 1) & mask) {
            shll_ent e = s->t[j];
            if ((e.key >> 6) != idx)
                continue;
            uint8_t q = (uint8_t)(e.key & 63);
            int32_t d = (int32_t)(e.sec - sec32); /* > 0: e is newer */
            bool gone = expired(s, e.sec, now32);
            if (!gone && q >= rank && d >= 0)
                return 0; /* dominated: changes no range's maximum */
            if (gone || (q <= rank && d <= 0)) {
                remove_at(s, j); /* dominated by the new entry (or dead) */
                goto scan;
            }
        }
    }
    if ((uint64_t)(s->n + 1) * 4 > (uint64_t)s->cap * 3) {
        int rc = rebuild(s, now32, 1); /* drops the dead, leaves room for one */
        if (rc)
            return rc;
    }
    shll_ent e = {(idx << 6) | rank, sec32};
    put(s, e);
    return 0;
}

int nx_shll_add_hash(nx_shll *s, uint64_t hash, int64_t sec, int64_t now)
{
    uint32_t idx;
    uint8_t rank;
    nx_hll_split(s->p, hash, &idx, &rank);
    return nx_shll_raise(s, idx, rank, sec, now);
}

int nx_shll_read(const nx_shll *s, int64_t from, int64_t now, nx_hll *out)
{
    if (nx_hll_precision(out) != s->p)
        return NX_EINVAL;
    if (from > now || !s->cap)
        return 0;
    if (from <= now - (int64_t)s->horizon)
        from = now - s->horizon + 1; /* nothing older is kept (no overflow for any from) */
    uint32_t from32 = (uint32_t)from, now32 = (uint32_t)now;
    uint32_t span = now32 - from32; /* a range [from, now] of span + 1 seconds */
    /* a large result is built densely at once rather than sparse-then-dense */
    if (s->n > (1u << s->p) / 8) {
        int rc = nx_hll_densify(out);
        if (rc)
            return rc;
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

int nx_shll_expire(nx_shll *s, int64_t now)
{
    if (!s->cap)
        return 0;
    uint32_t now32 = (uint32_t)now, dead = 0;
    for (uint32_t i = 0; i < s->cap; i++)
        if (s->t[i].key && expired(s, s->t[i].sec, now32))
            dead++;
    return dead ? rebuild(s, now32, 0) : 0;
}

int nx_shll_maintain(nx_shll *s, int64_t now)
{
    if (now - s->swept < (int64_t)(s->horizon / 2 + 1))
        return 0;
    s->swept = now;
    return nx_shll_expire(s, now);
}

bool nx_shll_empty(const nx_shll *s)
{
    return s->n == 0;
}

size_t nx_shll_bytes(const nx_shll *s)
{
    return sizeof *s + (size_t)s->cap * sizeof(shll_ent);
}

uint8_t nx_shll_precision(const nx_shll *s)
{
    return s->p;
}

uint32_t nx_shll_entries(const nx_shll *s)
{
    return s->n;
}

/* ---- serialization ------------------------------------------------------- */

/* Canonical order: by register, then oldest first. */
static int cmp_ent(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int nx_shll_encode(const nx_shll *s, int64_t now, nx_buf *out)
{
    size_t start = out->len;
    uint32_t now32 = (uint32_t)now, live = 0;
    uint64_t *v = NULL;
    int rc;
    if (s->n) {
        v = malloc((size_t)s->n * sizeof *v);
        if (!v)
            return NX_ENOMEM;
        /* sort key: register, then age descending (oldest first) */
        for (uint32_t i = 0; i < s->cap; i++) {
            shll_ent e = s->t[i];
            if (!e.key || expired(s, e.sec, now32))
                continue;
            uint64_t a = age(e.sec, now32);
            v[live++] = ((uint64_t)(e.key >> 6) << 38) | ((uint64_t)(s->horizon - 1 - a) << 6) |
                        (e.key & 63);
        }
        qsort(v, live, sizeof *v, cmp_ent);
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
