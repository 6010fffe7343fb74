/*
 * nx_ratelimit.c — exact integer token buckets and a per-shard table of
 * them (see nx_ratelimit.h for the unit system and the sharding design).
 *
 * The table is open addressing with linear probing over a power-of-two array
 * of slots keyed by tenant num (num + 1 stored, so 0 marks an empty slot and
 * tenant 0, `default`, can have a bucket too); deletion uses backward-shift so
 * there are no tombstones and probe lengths stay short under churn. Load
 * factor <= 1/2.
 */
#include "tenant/nx_ratelimit.h"
#include "nexus.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define NX_RL_NS 1000000000ull

static int nx__rl_params(uint64_t rate, uint64_t burst, uint32_t divisor, uint64_t *cap,
                         uint64_t *cost)
{
    if (divisor == 0 || divisor > NX_RL_MAX_DIVISOR || rate > NX_RL_MAX_RATE ||
        burst > NX_RL_MAX_BURST)
        return NX_EINVAL;
    if (burst == 0)
        burst = rate ? rate : 1;
    *cost = NX_RL_NS * divisor;
    uint64_t c = burst * NX_RL_NS; /* <= 1e19 < 2^64 */
    *cap = c < *cost ? *cost : c;
    return 0;
}

int nx_rl_init(nx_rl *rl, uint64_t rate_per_s, uint64_t burst, uint32_t divisor,
               int64_t now_ns)
{
    uint64_t cap, cost;
    int rc = nx__rl_params(rate_per_s, burst, divisor, &cap, &cost);
    if (rc)
        return rc;
    rl->rate = rate_per_s;
    rl->cap = cap;
    rl->cost = cost;
    rl->level = cap;
    rl->last_ns = now_ns;
    return 0;
}

int nx_rl_reconfigure(nx_rl *rl, uint64_t rate_per_s, uint64_t burst, uint32_t divisor,
                      int64_t now_ns)
{
    uint64_t cap, cost;
    int rc = nx__rl_params(rate_per_s, burst, divisor, &cap, &cost);
    if (rc)
        return rc;
    (void)nx_rl_available(rl, now_ns); /* refill at the old rate first */
    /* keep the fraction held: level/cap, computed in long double to avoid
     * overflow of level * cap (both up to 1e19) */
    long double frac = rl->cap ? (long double)rl->level / (long double)rl->cap : 1.0L;
    rl->rate = rate_per_s;
    rl->cap = cap;
    rl->cost = cost;
    uint64_t lv = (uint64_t)(frac * (long double)cap);
    rl->level = lv > cap ? cap : lv;
    return 0;
}

/* Adds the tokens earned since last_ns. */
static void nx__rl_refill(nx_rl *rl, int64_t now_ns)
{
    assert(rl->level <= rl->cap);
    if (now_ns <= rl->last_ns)
        return; /* clock went backwards or no time passed: mint nothing */
    uint64_t elapsed = (uint64_t)(now_ns - rl->last_ns);
    rl->last_ns = now_ns;
    uint64_t need = rl->cap - rl->level;
    if (need == 0)
        return;
    /* elapsed * rate could overflow: compare against need / rate first */
    if (elapsed >= need / rl->rate + 1)
        rl->level = rl->cap;
    else
        rl->level += elapsed * rl->rate; /* < need + rate, no overflow */
    if (rl->level > rl->cap)
        rl->level = rl->cap;
}

uint32_t nx_rl_take(nx_rl *rl, int64_t now_ns, uint32_t n)
{
    if (rl->rate == 0)
        return n;
    nx__rl_refill(rl, now_ns);
    uint64_t have = rl->level / rl->cost;
    uint32_t grant = have < n ? (uint32_t)have : n;
    rl->level -= (uint64_t)grant * rl->cost;
    return grant;
}

uint64_t nx_rl_available(nx_rl *rl, int64_t now_ns)
{
    if (rl->rate == 0)
        return UINT64_MAX;
    nx__rl_refill(rl, now_ns);
    return rl->level / rl->cost;
}

uint64_t nx_rl_wait_s(nx_rl *rl, int64_t now_ns, uint32_t n)
{
    if (rl->rate == 0)
        return 0;
    nx__rl_refill(rl, now_ns);
    long double want = (long double)n * (long double)rl->cost;
    if (want <= (long double)rl->level)
        return 0;
    if (want > (long double)rl->cap)
        want = (long double)rl->cap; /* can never hold more than cap */
    long double ns = (want - (long double)rl->level) / (long double)rl->rate;
    uint64_t s = (uint64_t)(ns / 1e9L);
    return (long double)s * 1e9L < ns ? s + 1 : s;
}

/* ---- table ------------------------------------------------------------- */

typedef struct nx_rl_slot {
    uint64_t key; /* num + 1; 0 = empty */
    nx_rl rl;
    nx_rl_counts counts;
} nx_rl_slot;

struct nx_rl_table {
    nx_rl_slot *slots;
    size_t mask; /* nslots - 1 */
    size_t used;
};

static size_t nx__rl_hash(uint64_t key, size_t mask)
{
    /* Fibonacci hashing: nums are dense small integers */
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & mask;
}

int nx_rl_table_create(size_t capacity_hint, nx_rl_table **out)
{
    size_t n = 16;
    while (n < capacity_hint * 2 && n < ((size_t)1 << 30))
        n <<= 1;
    nx_rl_table *t = calloc(1, sizeof *t);
    if (!t)
        return NX_ENOMEM;
    t->slots = calloc(n, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return NX_ENOMEM;
    }
    t->mask = n - 1;
    *out = t;
    return 0;
}

void nx_rl_table_destroy(nx_rl_table *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}

static nx_rl_slot *nx__rl_find(const nx_rl_table *t, uint64_t key)
{
    for (size_t i = nx__rl_hash(key, t->mask);; i = (i + 1) & t->mask) {
        nx_rl_slot *s = &t->slots[i];
        if (s->key == key)
            return s;
        if (s->key == 0)
            return NULL;
    }
}

static int nx__rl_grow(nx_rl_table *t)
{
    size_t n = (t->mask + 1) * 2;
    nx_rl_slot *ns = calloc(n, sizeof *ns);
    if (!ns)
        return NX_ENOMEM;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i].key)
            continue;
        size_t j = nx__rl_hash(t->slots[i].key, n - 1);
        while (ns[j].key)
            j = (j + 1) & (n - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->mask = n - 1;
    return 0;
}

int nx_rl_table_set(nx_rl_table *t, uint32_t num, uint64_t rate_per_s, uint64_t burst,
                    uint32_t divisor, int64_t now_ns)
{
    uint64_t key = (uint64_t)num + 1;
    nx_rl_slot *s = nx__rl_find(t, key);
    if (s)
        return nx_rl_reconfigure(&s->rl, rate_per_s, burst, divisor, now_ns);
    nx_rl rl;
    int rc = nx_rl_init(&rl, rate_per_s, burst, divisor, now_ns);
    if (rc)
        return rc;
    if ((t->used + 1) * 2 > t->mask + 1 && (rc = nx__rl_grow(t)) != 0)
        return rc;
    size_t i = nx__rl_hash(key, t->mask);
    while (t->slots[i].key)
        i = (i + 1) & t->mask;
    t->slots[i].key = key;
    t->slots[i].rl = rl;
    memset(&t->slots[i].counts, 0, sizeof t->slots[i].counts);
    t->used++;
    return 0;
}

int nx_rl_table_remove(nx_rl_table *t, uint32_t num)
{
    nx_rl_slot *s = nx__rl_find(t, (uint64_t)num + 1);
    if (!s)
        return NX_ENOENT;
    /* backward-shift deletion */
    size_t i = (size_t)(s - t->slots);
    for (;;) {
        t->slots[i].key = 0;
        size_t j = i;
        for (;;) {
            j = (j + 1) & t->mask;
            if (!t->slots[j].key) {
                t->used--;
                return 0;
            }
            size_t home = nx__rl_hash(t->slots[j].key, t->mask);
            /* can slot j move to i? yes unless home lies cyclically in (i, j] */
            bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays)
                break;
        }
        t->slots[i] = t->slots[j];
        i = j;
    }
}

uint32_t nx_rl_table_take(nx_rl_table *t, uint32_t num, int64_t now_ns, uint32_t n)
{
    nx_rl_slot *s = nx__rl_find(t, (uint64_t)num + 1);
    if (!s)
        return n;
    uint32_t g = nx_rl_take(&s->rl, now_ns, n);
    s->counts.accepted += g;
    s->counts.dropped += n - g;
    return g;
}

int nx_rl_table_counts(const nx_rl_table *t, uint32_t num, nx_rl_counts *out)
{
    const nx_rl_slot *s = nx__rl_find(t, (uint64_t)num + 1);
    if (!s)
        return NX_ENOENT;
    *out = s->counts;
    return 0;
}

size_t nx_rl_table_size(const nx_rl_table *t)
{
    return t->used;
}

void nx_rl_table_foreach(const nx_rl_table *t,
                         void (*fn)(uint32_t num, const nx_rl_counts *c, void *arg),
                         void *arg)
{
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].key)
            fn((uint32_t)(t->slots[i].key - 1), &t->slots[i].counts, arg);
}
