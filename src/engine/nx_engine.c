/*
 * nx_engine.c — the engine facade: configuration, the tenant and stream
 * tables, event updates, window reads and series reads.
 *
 * Event path (nx_stream_update), per stream:
 *   1. reject NaN/Inf values and non-positive weights (NX_EINVAL), events
 *      older than now - late_tolerance (NX_ETOOLATE) or newer than
 *      now + future_tolerance (NX_EFUTURE); `now` is max(now_ms, the newest
 *      now_ms this stream saw) so a clock that steps back is harmless;
 *   2. sec == open_sec: update the open bucket only (the O(1) fast path; a
 *      quantile type's value is mapped to its bin, which waits in the
 *      stream's qbuf (10 bins; a full one moves to the stream's bin log)
 *      and reaches the open DDSketch with the rest of its second; a
 *      set member waits in the stream's member log and reaches the open
 *      top-k and the two HLLs with the rest of its second: nx_stream_drain;
 *      the common counter, quantile or set event, without a timestamp of
 *      its own, has a path of its own in nx_stream_update, the rest
 *      stream_update_any);
 *   3. sec > open_sec: CLOSE the open bucket — fold it once into every
 *      window's current sub-bucket, every tier's bucket and the all-time
 *      accumulator, clear it (its sketches keep their memory) — and open sec;
 *   4. sec < open_sec (late, within tolerance): the event goes straight into
 *      the sub-bucket of each window that still covers it, its tier buckets
 *      and the all-time accumulator.
 * The stream clock (open_sec) is the newest second among its events and
 * reads; reads close the open bucket when they come for a later second.
 *
 * Window coverage: a read at clock T (seconds) of a window length L, bucket
 * b, N = L/b, covers exactly the accepted events whose second lies in
 * [(floor(T/b) - N) * b, T]: the N complete sub-buckets before the current
 * one plus the current, partial one. It spans between L and L + b seconds
 * and slides in steps of b.
 *
 * Gauges: `last` is the value of the newest set (by event time; a late set
 * older than last_ts does not change it); a delta adds to the current last.
 * The moments of a gauge record the value after each event. Every read of a
 * gauge reports the current last/last_ts whatever the window.
 *
 * Memory accounting: a stream's bytes = its struct and key + one table slot
 * + its window/tier block + every sketch it owns. It is recomputed when a
 * pending ring is folded (at most 8 seconds stale), a late event
 * lands, or a read moves the windows (never per in-second event), and the
 * difference goes to the tenant's stats.
 */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/nx_codec.h"
#include "engine/nx_engine_int.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_topk.h"

/* `now` must be a sane epoch time: far from the int64 limits, so that
 * now +- tolerances and window arithmetic never overflow. */
#define NX_NOW_MAX 1000000000000000ll /* ms, ~ year 33658 */
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

uint64_t nx_hash_bytes(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

/* ---- configuration -------------------------------------------------------- */

void nx_engine_config_default(nx_engine_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->alpha = 0.01;
    cfg->ddsketch_max_bins = 2048;
    cfg->hll_precision = 14;
    cfg->topk_capacity = 64;
    cfg->late_tolerance_s = 60;
    cfg->future_tolerance_s = 10;
    cfg->nwindows = 4;
    cfg->windows[0] = (nx_window_spec){10, 1};
    cfg->windows[1] = (nx_window_spec){60, 5};
    cfg->windows[2] = (nx_window_spec){300, 30};
    cfg->windows[3] = (nx_window_spec){3600, 300};
    cfg->ntiers = 3;
    cfg->tiers[0] = (nx_tier_spec){1, 120};
    cfg->tiers[1] = (nx_tier_spec){10, 360};
    cfg->tiers[2] = (nx_tier_spec){60, 1440};
}

int nx_engine_cfg_check(const nx_engine_config *cfg)
{
    if (!cfg || !(cfg->alpha > 0 && cfg->alpha < 1) || cfg->ddsketch_max_bins < 16 ||
        cfg->hll_precision < 4 || cfg->hll_precision > 18 || cfg->topk_capacity == 0 ||
        cfg->nwindows > NX_MAX_WINDOWS || cfg->ntiers > NX_MAX_TIERS)
        return NX_EINVAL;
    for (uint32_t i = 0; i < cfg->nwindows; i++) {
        const nx_window_spec *w = &cfg->windows[i];
        if (w->bucket_s == 0 || w->length_s < w->bucket_s || w->length_s % w->bucket_s ||
            w->length_s / w->bucket_s > 100000 || (uint64_t)w->length_s + w->bucket_s > (1u << 30))
            return NX_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (cfg->windows[j].length_s == w->length_s)
                return NX_EINVAL; /* windows are selected by length */
    }
    for (uint32_t i = 0; i < cfg->ntiers; i++)
        if (cfg->tiers[i].step_s == 0 || cfg->tiers[i].buckets == 0 ||
            cfg->tiers[i].buckets > 10000000)
            return NX_EINVAL;
    return 0;
}

/* ---- open-addressing tables ------------------------------------------------ */

/* Returns the slot of (hash, key) or, if absent, the empty slot where it
 * would go; `eq` compares an object with the key. */
typedef bool (*nx_eq_fn)(const void *obj, const char *key, size_t len);

static uint32_t table_probe(const nx_table *tb, uint64_t h, const char *key, size_t len,
                            nx_eq_fn eq, bool *found)
{
    uint32_t mask = tb->cap - 1, i = (uint32_t)h & mask;
    for (;;) {
        if (!tb->slot[i].ptr) {
            *found = false;
            return i;
        }
        if (tb->slot[i].hash == h && eq(tb->slot[i].ptr, key, len)) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int table_grow(nx_table *tb)
{
    uint32_t ncap = tb->cap ? tb->cap * 2 : 8;
    nx_table_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return NX_ENOMEM;
    for (uint32_t i = 0; i < tb->cap; i++) {
        if (!tb->slot[i].ptr)
            continue;
        uint32_t j = (uint32_t)tb->slot[i].hash & (ncap - 1);
        while (ns[j].ptr)
            j = (j + 1) & (ncap - 1);
        ns[j] = tb->slot[i];
    }
    free(tb->slot);
    tb->slot = ns;
    tb->cap = ncap;
    return 0;
}

/* Room for one more entry (may rehash). */
static int table_reserve(nx_table *tb)
{
    if ((uint64_t)(tb->count + 1) * 4 > (uint64_t)tb->cap * 3)
        return table_grow(tb);
    return 0;
}

/* Removes slot i, shifting back the entries of its probe run. */
static void table_remove_at(nx_table *tb, uint32_t i)
{
    uint32_t mask = tb->cap - 1, j = i;
    tb->slot[i].ptr = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!tb->slot[j].ptr)
            break;
        uint32_t home = (uint32_t)tb->slot[j].hash & mask;
        /* can entry j move to the hole at i? yes unless home lies in (i, j] */
        bool stay = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (stay)
            continue;
        tb->slot[i].hash = tb->slot[j].hash;
        tb->slot[i].ptr = tb->slot[j].ptr;
        tb->slot[j].ptr = NULL;
        i = j;
    }
    tb->count--;
}

static void table_free(nx_table *tb)
{
    free(tb->slot);
    memset(tb, 0, sizeof(*tb));
}

/* ---- engine ----------------------------------------------------------------- */

/* Picks each window's feeder, all-time's (the window with the widest
 * sub-bucket: every closed second reaches it through its chain of feeders)
 * and the order windows advance in (see win_feeder). Feeders form a forest: a feeder's sub-bucket is narrower, or
 * equal and listed earlier, so there is no cycle; ordering by (bucket,
 * index) puts every feeder before the windows it feeds. */
static void cascade_plan(nx_engine *e)
{
    const nx_engine_config *c = &e->cfg;
    for (uint32_t j = 0; j < c->nwindows; j++) {
        uint32_t bj = c->windows[j].bucket_s;
        int best = -1;
        for (uint32_t i = 0; i < c->nwindows; i++) {
            uint32_t bi = c->windows[i].bucket_s;
            if (i == j || bj % bi || (bi == bj && i > j))
                continue;
            if (best < 0 || bi > c->windows[best].bucket_s)
                best = (int)i;
        }
        e->win_feeder[j] = (int8_t)best;
        e->win_order[j] = (uint8_t)j;
    }
    e->all_feeder = -1;
    for (uint32_t j = 0; j < c->nwindows; j++)
        if (e->all_feeder < 0 || c->windows[j].bucket_s > c->windows[e->all_feeder].bucket_s)
            e->all_feeder = (int8_t)j;
    for (uint32_t j = 0; j < c->nwindows; j++) {
        if (e->win_feeder[j] >= 0)
            e->win_feeds[e->win_feeder[j]] = true;
    }
    if (e->all_feeder >= 0)
        e->win_feeds[e->all_feeder] = true;
    for (uint32_t i = 0; i < c->nwindows; i++) {
        /* a fed window with sub-buckets of g of i's, n_i a multiple of g and
         * n_i / g <= 2, which keeps 2 complete sub-buckets or more */
        uint32_t ni = c->windows[i].length_s / c->windows[i].bucket_s;
        e->win_derive[i] = -1;
        e->win_bgroup[i] = 0;
        for (uint32_t j = 0; j < c->nwindows && e->win_derive[i] < 0; j++) {
            if (e->win_feeder[j] != (int8_t)i)
                continue;
            uint32_t g = c->windows[j].bucket_s / c->windows[i].bucket_s;
            if (ni % g == 0 && ni / g <= 2 && c->windows[j].length_s / c->windows[j].bucket_s >= 2) {
                e->win_derive[i] = (int8_t)j;
                e->win_bgroup[i] = g;
            }
        }
    }
    for (uint32_t a = 1; a < c->nwindows; a++) /* insertion sort by (bucket, index) */
        for (uint32_t b = a; b > 0; b--) {
            uint8_t x = e->win_order[b - 1], y = e->win_order[b];
            if (c->windows[x].bucket_s <= c->windows[y].bucket_s)
                break;
            e->win_order[b - 1] = y;
            e->win_order[b] = x;
        }
}

int nx_engine_create(const nx_engine_config *cfg, nx_engine **out)
{
    nx_engine_config def;
    if (!cfg) {
        nx_engine_config_default(&def);
        cfg = &def;
    }
    if (nx_engine_cfg_check(cfg))
        return NX_EINVAL;
    nx_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NX_ENOMEM;
    e->cfg = *cfg;
    e->ap.alpha = cfg->alpha;
    e->dd_inv_ln_gamma = nx_ddsketch_inv_ln_gamma(cfg->alpha);
    e->ap.dd_max_bins = cfg->ddsketch_max_bins;
    e->ap.hll_precision = cfg->hll_precision;
    e->ap.topk_capacity = cfg->topk_capacity;
    for (uint32_t i = 0; i < cfg->nwindows; i++) {
        uint32_t h = cfg->windows[i].length_s + cfg->windows[i].bucket_s;
        if (h > e->shll_horizon)
            e->shll_horizon = h;
    }
    cascade_plan(e);
    *out = e;
    return 0;
}

static void stream_destroy(nx_engine *e, nx_stream *s);
static void qlog_free(nx_stream *s);

static void tenant_destroy(nx_tenant *t)
{
    for (uint32_t i = 0; i < t->streams.cap; i++)
        if (t->streams.slot[i].ptr)
            stream_destroy(t->eng, t->streams.slot[i].ptr);
    table_free(&t->streams);
    free(t);
}

void nx_engine_destroy(nx_engine *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; i < e->tenants.cap; i++)
        if (e->tenants.slot[i].ptr)
            tenant_destroy(e->tenants.slot[i].ptr);
    table_free(&e->tenants);
    nx_engine_encode_abort(e);
    nx_topk_destroy(e->mlog_topk);
    free(e);
}

const nx_engine_config *nx_engine_config_of(const nx_engine *e)
{
    return &e->cfg;
}

static bool tenant_eq(const void *obj, const char *key, size_t len)
{
    const nx_tenant *t = obj;
    return t->id_len == len && memcmp(t->id, key, len) == 0;
}

static bool tenant_id_valid(const char *id, size_t n)
{
    if (n == 0 || n > NX_TENANT_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

nx_tenant *nx_engine_tenant_find(nx_engine *e, const char *id, size_t id_len)
{
    if (e->tenants.count == 0 || id_len == 0 || id_len > NX_TENANT_ID_MAX)
        return NULL;
    bool found;
    uint32_t i = table_probe(&e->tenants, nx_hash_bytes(id, id_len), id, id_len, tenant_eq, &found);
    return found ? e->tenants.slot[i].ptr : NULL;
}

int nx_engine_tenant(nx_engine *e, const char *id, size_t id_len, nx_tenant **out)
{
    if (!tenant_id_valid(id, id_len))
        return NX_EINVAL;
    nx_tenant *t = nx_engine_tenant_find(e, id, id_len);
    if (t) {
        *out = t;
        return 0;
    }
    if (table_reserve(&e->tenants))
        return NX_ENOMEM;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NX_ENOMEM;
    t->eng = e;
    t->late_ms = (int64_t)e->cfg.late_tolerance_s * 1000;
    t->future_ms = (int64_t)e->cfg.future_tolerance_s * 1000;
    t->max_streams = e->cfg.max_streams_per_tenant;
    t->max_bytes = e->cfg.max_bytes_per_tenant;
    t->hash = nx_hash_bytes(id, id_len);
    t->id_len = (uint8_t)id_len;
    memcpy(t->id, id, id_len);
    t->id[id_len] = 0;
    bool found;
    uint32_t i = table_probe(&e->tenants, t->hash, id, id_len, tenant_eq, &found);
    assert(!found);
    e->tenants.slot[i].hash = t->hash;
    e->tenants.slot[i].ptr = t;
    e->tenants.count++;
    if (e->on_tenant)
        e->on_tenant(e->on_tenant_arg, t->id, t->id_len);
    *out = t;
    return 0;
}

void nx_engine_on_tenant(nx_engine *e, void (*fn)(void *arg, const char *id, size_t id_len),
                         void *arg)
{
    e->on_tenant = fn;
    e->on_tenant_arg = arg;
    if (!fn)
        return;
    for (uint32_t i = 0; i < e->tenants.cap; i++) {
        const nx_tenant *t = e->tenants.slot[i].ptr;
        if (t)
            fn(arg, t->id, t->id_len);
    }
}

void nx_engine_inherit_hook(nx_engine *dst, const nx_engine *src)
{
    nx_engine_on_tenant(dst, src->on_tenant, src->on_tenant_arg);
}

int nx_engine_tenant_delete(nx_engine *e, const char *id, size_t id_len)
{
    if (e->tenants.count == 0 || id_len == 0 || id_len > NX_TENANT_ID_MAX)
        return NX_ENOENT;
    bool found;
    uint32_t i = table_probe(&e->tenants, nx_hash_bytes(id, id_len), id, id_len, tenant_eq, &found);
    if (!found)
        return NX_ENOENT;
    nx_tenant *t = e->tenants.slot[i].ptr;
    for (uint32_t k = 0; k < t->streams.cap; k++)
        if (t->streams.slot[k].ptr)
            nx_snap_touch(t->streams.slot[k].ptr);
    table_remove_at(&e->tenants, i);
    tenant_destroy(t);
    return 0;
}

void nx_engine_foreach_tenant(nx_engine *e, int (*fn)(nx_tenant *t, void *arg), void *arg)
{
    for (uint32_t i = 0; i < e->tenants.cap; i++)
        if (e->tenants.slot[i].ptr && fn(e->tenants.slot[i].ptr, arg))
            return;
}

size_t nx_engine_tenant_count(const nx_engine *e)
{
    return e->tenants.count;
}

uint64_t nx_engine_bytes(const nx_engine *e)
{
    uint64_t b = sizeof(*e) + (uint64_t)e->tenants.cap * (sizeof(uint64_t) + sizeof(void *));
    for (uint32_t i = 0; i < e->tenants.cap; i++) {
        const nx_tenant *t = e->tenants.slot[i].ptr;
        if (t)
            b += sizeof(*t) + t->st.bytes +
                 (uint64_t)t->streams.cap * (sizeof(uint64_t) + sizeof(void *)) -
                 (uint64_t)t->streams.count * (sizeof(uint64_t) + sizeof(void *));
    }
    return b;
}

const char *nx_tenant_id(const nx_tenant *t)
{
    return t->id;
}

/* O(streams): the per-event counters live in the streams (one cache line
 * less per event); stats are read rarely. */
void nx_tenant_get_stats(const nx_tenant *t, nx_tenant_stats *out)
{
    *out = t->st;
    out->streams = t->streams.count;
    for (uint32_t i = 0; i < t->streams.cap; i++)
        if (t->streams.slot[i].ptr)
            out->events += ((const nx_stream *)t->streams.slot[i].ptr)->events;
}

void nx_tenant_set_limits(nx_tenant *t, uint32_t max_streams, uint64_t max_bytes)
{
    t->max_streams = max_streams;
    t->max_bytes = max_bytes;
}

/* ---- stream keys -------------------------------------------------------------- */

static int tag_cmp(const void *a, const void *b)
{
    const nx_tag *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c || x->key_len != y->key_len)
        return c ? c : (x->key_len < y->key_len ? -1 : 1);
    size_t xl = x->value ? x->value_len : 0, yl = y->value ? y->value_len : 0;
    /* a valueless tag sorts before the same key with a value */
    if (!x->value || !y->value)
        return (x->value ? 1 : 0) - (y->value ? 1 : 0);
    n = xl < yl ? xl : yl;
    c = memcmp(x->value, y->value, n);
    if (c || xl == yl)
        return c;
    return xl < yl ? -1 : 1;
}

int nx_stream_key_build(const char *name, size_t name_len, nx_tag *tags, size_t ntags,
                        char *buf, size_t buf_size)
{
    if (!name || name_len == 0)
        return NX_EINVAL;
    if (ntags > 1)
        qsort(tags, ntags, sizeof(nx_tag), tag_cmp);
    size_t need = name_len;
    for (size_t i = 0; i < ntags; i++) {
        if (!tags[i].key || tags[i].key_len == 0)
            return NX_EINVAL;
        need += 1 + tags[i].key_len + (tags[i].value ? 1 + (size_t)tags[i].value_len : 0);
    }
    if (need + 1 > buf_size || need > NX_STREAM_KEY_MAX)
        return NX_ETOOBIG;
    char *p = buf;
    memcpy(p, name, name_len);
    p += name_len;
    for (size_t i = 0; i < ntags; i++) {
        *p++ = '|';
        memcpy(p, tags[i].key, tags[i].key_len);
        p += tags[i].key_len;
        if (tags[i].value) {
            *p++ = ':';
            memcpy(p, tags[i].value, tags[i].value_len);
            p += tags[i].value_len;
        }
    }
    *p = 0;
    assert((size_t)(p - buf) == need);
    return (int)need;
}

/* ---- streams -------------------------------------------------------------------- */

static bool stream_eq(const void *obj, const char *key, size_t len)
{
    const nx_stream *s = obj;
    return s->key_len == len && memcmp(s->key, key, len) == 0;
}

static size_t stream_base_bytes(const nx_stream *s)
{
    return sizeof(nx_stream) + s->key_len + 1 + sizeof(uint64_t) + sizeof(void *);
}

/* Rings of at most this many slots live inside the stream's hist block. */
#define NX_INLINE_RING_MAX 64

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* The hist block: nx_window[nwindows], nx_tier[ntiers], all-time's direct_k,
 * then (64-byte aligned) the rings of the windows small enough to be
 * inline. */
static size_t stream_hist_head_bytes(const nx_engine *e)
{
    return align64(sizeof(nx_window) * e->cfg.nwindows + sizeof(nx_tier) * e->cfg.ntiers +
                   sizeof(int64_t));
}

static size_t stream_hist_block_bytes(const nx_engine *e)
{
    size_t b = stream_hist_head_bytes(e);
    for (uint32_t i = 0; i < e->cfg.nwindows; i++) {
        uint32_t n = e->cfg.windows[i].length_s / e->cfg.windows[i].bucket_s + 1;
        if (n <= NX_INLINE_RING_MAX)
            b += sizeof(nx_wslot) * n;
    }
    return b;
}

void nx_stream_account(nx_stream *s)
{
    const nx_engine *e = s->eng;
    nx_acc open = nx_stream_open(s);
    uint64_t b = stream_base_bytes(s) + nx_acc_bytes(&open) + nx_acc_bytes(&s->all);
    if (s->shll)
        b += nx_shll_bytes(s->shll);
    if (s->type == NX_TYPE_SET)
        b += s->mlog.cap;
    else if (nx_type_has_quantiles((nx_type)s->type) && s->qlog)
        b += (1 + (size_t)s->qlog[0] * NX_QBUF_MAX) * sizeof(int32_t);
    if (s->win) {
        b += stream_hist_block_bytes(e);
        for (uint32_t i = 0; i < e->cfg.nwindows; i++)
            b += nx_window_bytes(&s->win[i]);
        const nx_tier *tr = nx_stream_tiers(e, s);
        for (uint32_t i = 0; i < e->cfg.ntiers; i++)
            b += nx_tier_bytes(&tr[i]);
    }
    if (s->pend) {
        uint32_t cap = nx_stream_pend_cap(s);
        b += cap * sizeof(nx_pend_slot);
        for (uint32_t i = 0; i < cap; i++) {
            nx_acc a = nx_stream_pend_get(s, i);
            b += nx_acc_bytes(&a);
        }
    }
    s->tenant->st.bytes += b - s->bytes;
    s->bytes = b;
}

int nx_stream_hist_alloc(nx_stream *s)
{
    if (s->win)
        return 0;
    const nx_engine *e = s->eng;
    s->win = aligned_alloc(64, stream_hist_block_bytes(e));
    if (!s->win)
        return NX_ENOMEM;
    char *ring = (char *)s->win + stream_hist_head_bytes(e);
    for (uint32_t i = 0; i < e->cfg.nwindows; i++) {
        uint32_t n = e->cfg.windows[i].length_s / e->cfg.windows[i].bucket_s + 1;
        nx_wslot *store = NULL;
        if (n <= NX_INLINE_RING_MAX) {
            store = (nx_wslot *)ring;
            ring += sizeof(nx_wslot) * n;
        }
        nx_window_init(&s->win[i], e->cfg.windows[i].length_s, e->cfg.windows[i].bucket_s, store);
        if (s->type == NX_TYPE_SET)
            s->win[i].bgroup = e->win_bgroup[i];
    }
    nx_tier *tr = nx_stream_tiers(e, s);
    for (uint32_t i = 0; i < e->cfg.ntiers; i++)
        nx_tier_init(&tr[i], e->cfg.tiers[i].step_s, e->cfg.tiers[i].buckets);
    *nx_stream_all_direct(e, s) = NX_WINDOW_NO_DIRECT;
    return 0;
}

int nx_stream_pend_alloc(nx_stream *s)
{
    if (s->pend)
        return 0;
    uint32_t cap = nx_stream_pend_cap(s);
    nx_pend_slot *pd = aligned_alloc(64, cap * sizeof *pd);
    if (!pd)
        return NX_ENOMEM;
    s->npend = 0;
    for (uint32_t i = 0; i < cap; i++) {
        pd[i].sec = 0;
        nx_moments_init(&pd[i].m);
        pd[i].sketch = NULL;
    }
    s->pend = pd;
    return 0;
}

/* Frees a set stream's (empty) member log. */
static void mlog_free(nx_stream *s)
{
    assert(s->type != NX_TYPE_SET || s->nqbuf == 0);
    if (s->type != NX_TYPE_SET)
        return;
    nx_buf_free(&s->mlog);
}

static void stream_pend_free(nx_stream *s)
{
    if (!s->pend)
        return;
    for (uint32_t i = 0, cap = nx_stream_pend_cap(s); i < cap; i++) {
        nx_acc a = nx_stream_pend_get(s, i);
        nx_acc_free(&a);
    }
    free(s->pend);
    s->pend = NULL;
    s->npend = 0;
}

static void stream_hist_free(const nx_engine *e, nx_stream *s)
{
    if (!s->win)
        return;
    for (uint32_t i = 0; i < e->cfg.nwindows; i++)
        nx_window_free(&s->win[i]);
    nx_tier *tr = nx_stream_tiers(e, s);
    for (uint32_t i = 0; i < e->cfg.ntiers; i++)
        nx_tier_free(&tr[i]);
    free(s->win);
    s->win = NULL;
    /* every window expired, and with them the sliding HLL's members but
     * those of the open second */
    if (s->shll && nx_shll_expire(s->shll, s->open_sec) == 0 && nx_shll_empty(s->shll)) {
        nx_shll_destroy(s->shll);
        s->shll = NULL;
    }
}

static void stream_destroy(nx_engine *e, nx_stream *s)
{
    stream_hist_free(e, s);
    stream_pend_free(s);
    nx_shll_destroy(s->shll);
    s->nqbuf = 0; /* a set's log entries go with it */
    mlog_free(s);
    s->nqlog = 0; /* and a quantile stream's bin log */
    qlog_free(s);
    nx_acc open = nx_stream_open(s);
    nx_acc_free(&open);
    nx_acc_free(&s->all);
    free(s);
}

int nx_tenant_stream_insert(nx_tenant *t, const char *key, size_t key_len, nx_type type,
                            nx_stream **out)
{
    if (key_len == 0 || key_len > NX_STREAM_KEY_MAX || type < NX_TYPE_COUNTER ||
        type > NX_TYPE_SET)
        return NX_EINVAL;
    if (table_reserve(&t->streams))
        return NX_ENOMEM;
    size_t sz = sizeof(nx_stream) + key_len + 1;
    sz = (sz + 63) & ~(size_t)63;
    nx_stream *s = aligned_alloc(64, sz);
    if (!s)
        return NX_ENOMEM;
    memset(s, 0, sizeof(*s));
    s->open_sec = INT64_MIN;
    s->type = (uint8_t)type;
    s->key_len = (uint16_t)key_len;
    nx_moments_init(&s->open_m); /* open_dd / open_topk: NULL (memset) */
    s->tenant = t;
    s->eng = t->eng;
    s->events = 0;
    s->max_now_ms = INT64_MIN;
    s->last_update_ms = 0;
    s->first_ts = 0;
    s->last = 0;
    s->last_ts = INT64_MIN;
    nx_acc_init(&s->all);
    s->hash = nx_hash_bytes(key, key_len);
    s->win = NULL;
    s->snap_epoch = t->eng->snap.epoch; /* not part of a snapshot in progress */
    memcpy(s->key, key, key_len);
    s->key[key_len] = 0;
    bool found;
    uint32_t i = table_probe(&t->streams, s->hash, key, key_len, stream_eq, &found);
    if (found) {
        free(s);
        return NX_EEXIST;
    }
    t->streams.slot[i].hash = s->hash;
    t->streams.slot[i].ptr = s;
    t->streams.count++;
    s->bytes = 0;
    nx_stream_account(s);
    *out = s;
    return 0;
}

nx_stream *nx_tenant_stream_find_hashed(const nx_tenant *t, const char *key, size_t key_len,
                                        uint64_t hash)
{
    if (t->streams.count == 0)
        return NULL;
    bool found;
    uint32_t i = table_probe(&t->streams, hash, key, key_len, stream_eq, &found);
    return found ? t->streams.slot[i].ptr : NULL;
}

nx_stream *nx_tenant_stream_find(nx_tenant *t, const char *key, size_t key_len)
{
    return nx_tenant_stream_find_hashed(t, key, key_len, nx_hash_bytes(key, key_len));
}

uint64_t nx_stream_key_hash(const char *key, size_t key_len)
{
    return nx_hash_bytes(key, key_len);
}

void nx_tenant_stream_prefetch(const nx_tenant *t, uint64_t hash)
{
    const nx_table *tb = &t->streams;
    if (tb->cap)
        __builtin_prefetch(&tb->slot[(uint32_t)hash & (tb->cap - 1)]);
}

/* Probes at most this many slots for a hint (a table is at most 3/4 full:
 * nearly every key sits within a few slots of its home). */
#define PREFETCH_PROBE_MAX 4
/* Lines of a stream's key (from key_len) that a hint fetches. */
#define PREFETCH_KEY_LINES 3

void nx_tenant_stream_prefetch_found(const nx_tenant *t, uint64_t hash, nx_type type,
                                     size_t key_len)
{
    const nx_table *tb = &t->streams;
    if (!tb->cap)
        return;
    uint32_t mask = tb->cap - 1, i = (uint32_t)hash & mask;
    for (int n = 0; n < PREFETCH_PROBE_MAX; n++, i = (i + 1) & mask) {
        const nx_table_slot *sl = &tb->slot[i];
        if (!sl->ptr)
            return;
        if (sl->hash != hash)
            continue;
        /* the key compare reads key_len and the key (its first lines: a
         * long key's compare streams on), the update the first lines
         * (nx_stream_prefetch_type) */
        const char *k = (const char *)sl->ptr + offsetof(nx_stream, key_len);
        const char *kend = (const char *)sl->ptr + offsetof(nx_stream, key) + key_len;
        uintptr_t a = (uintptr_t)k & ~(uintptr_t)63;
        for (int l = 0; l < PREFETCH_KEY_LINES && a < (uintptr_t)kend; l++, a += 64)
            __builtin_prefetch((const void *)a);
        nx_stream_prefetch_type(sl->ptr, type);
        return;
    }
}

int nx_tenant_stream_hashed(nx_tenant *t, const char *key, size_t key_len, uint64_t hash,
                            nx_type type, nx_stream **out)
{
    if (key_len == 0 || key_len > NX_STREAM_KEY_MAX || type < NX_TYPE_COUNTER ||
        type > NX_TYPE_SET)
        return NX_EINVAL;
    nx_stream *s = nx_tenant_stream_find_hashed(t, key, key_len, hash);
    if (s) {
        if (s->type != type) {
            t->st.rejected_type++;
            return NX_ETYPE;
        }
        *out = s;
        return 0;
    }
    if ((t->max_streams && t->streams.count >= t->max_streams) ||
        (t->max_bytes && t->st.bytes >= t->max_bytes)) {
        t->st.rejected_quota++;
        return NX_EQUOTA;
    }
    return nx_tenant_stream_insert(t, key, key_len, type, out);
}

int nx_tenant_stream(nx_tenant *t, const char *key, size_t key_len, nx_type type,
                     nx_stream **out)
{
    return nx_tenant_stream_hashed(t, key, key_len, nx_hash_bytes(key, key_len), type, out);
}

int nx_tenant_stream_delete(nx_tenant *t, const char *key, size_t key_len)
{
    if (t->streams.count == 0)
        return NX_ENOENT;
    bool found;
    uint32_t i = table_probe(&t->streams, nx_hash_bytes(key, key_len), key, key_len, stream_eq,
                             &found);
    if (!found)
        return NX_ENOENT;
    nx_stream *s = t->streams.slot[i].ptr;
    nx_snap_touch(s);
    table_remove_at(&t->streams, i);
    t->st.bytes -= s->bytes;
    t->st.events += s->events;
    stream_destroy(t->eng, s);
    return 0;
}

void nx_tenant_foreach_stream(nx_tenant *t, int (*fn)(nx_stream *s, void *arg), void *arg)
{
    for (uint32_t i = 0; i < t->streams.cap; i++)
        if (t->streams.slot[i].ptr && fn(t->streams.slot[i].ptr, arg))
            return;
}

const char *nx_stream_key(const nx_stream *s, size_t *len)
{
    if (len)
        *len = s->key_len;
    return s->key;
}

nx_type nx_stream_type(const nx_stream *s)
{
    return (nx_type)s->type;
}

int64_t nx_stream_last_update(const nx_stream *s)
{
    return s->last_update_ms;
}

/* ---- time ------------------------------------------------------------------------ */

static inline int64_t sec_of(int64_t ms)
{
    return nx_floordiv(ms, 1000);
}

/* ---- the window cascade ------------------------------------------------------------
 * A closed second is folded into the windows no other window feeds (with
 * the default windows: the 10 s one); every other window gets a
 * sub-bucket at a time from its feeder as the feeder completes it (1 s ->
 * 5 s -> 30 s -> 300 s), so a second costs about 1.2 window merges instead
 * of one per window. Invariants, for a window j fed by f:
 *   - every complete sub-bucket of f has been handed to j (folded into
 *     j's sub-bucket of the same seconds), unless j's sub-bucket of those
 *     seconds is direct (index < j.direct_k: it was fed closed seconds
 *     itself, e.g. by a version-4 snapshot; such a sub-bucket is never
 *     handed anything);
 *   - so j lacks exactly f's current sub-bucket (and, recursively, f's
 *     feeder's current one...), which lies inside j's current sub-bucket:
 *     a read of j adds them, up the chain, stopping after a window whose
 *     current sub-bucket is direct (it holds its feeder's already);
 *   - a late event goes into j itself when j is not fed or f's
 *     sub-bucket of its second is complete (handed on already) or j's is
 *     direct; otherwise it reaches j through f.
 * Windows advance feeders first (win_order), so f has handed on everything
 * before j moves past it. */

typedef struct nx_cascade {
    nx_stream *s;
    uint32_t from; /* the window whose sub-bucket is being handed on */
} nx_cascade;

static int cascade_hand_on(void *arg, int64_t sec, const nx_acc *slot);

/* The sink of window i (NULL when it feeds nothing). */
static inline const nx_window_sink *cascade_sink(const nx_engine *e, uint32_t i, nx_cascade *c,
                                                 nx_window_sink *sink)
{
    if (!e->win_feeds[i])
        return NULL;
    sink->fn = cascade_hand_on;
    sink->arg = c;
    int j = e->win_derive[i];
    sink->derive_ok = j >= 0 && c->s->win[j].direct_k == NX_WINDOW_NO_DIRECT;
    return sink;
}

/* The window a read of window i derives its back from (or NULL). */
static inline const nx_window *window_derive_from(const nx_stream *s, uint32_t i)
{
    int j = s->eng->win_derive[i];
    return j >= 0 ? &s->win[j] : NULL;
}

/* Folds a closed second, or a sub-bucket of i's feeder starting at sec,
 * into window i (which may hand on its own completed sub-buckets). */
static int window_fold(nx_stream *s, uint32_t i, int64_t sec, const nx_acc *a)
{
    const nx_engine *e = s->eng;
    nx_cascade c = {s, i};
    nx_window_sink sink;
    return nx_window_fold(&s->win[i], sec, a, &e->ap, cascade_sink(e, i, &c, &sink));
}

static int cascade_hand_on(void *arg, int64_t sec, const nx_acc *slot)
{
    const nx_cascade *c = arg;
    nx_stream *s = c->s;
    const nx_engine *e = s->eng;
    if ((int)c->from == e->all_feeder &&
        nx_window_index(&s->win[c->from], sec) >= *nx_stream_all_direct(e, s)) {
        int rc = nx_acc_merge(&s->all, slot, &e->ap);
        if (rc)
            return rc;
    }
    for (uint32_t j = 0; j < e->cfg.nwindows; j++) {
        if (e->win_feeder[j] != (int8_t)c->from ||
            nx_window_index(&s->win[j], sec) < s->win[j].direct_k)
            continue;
        int rc = window_fold(s, j, sec, slot);
        if (rc)
            return rc;
    }
    return 0;
}

/* Whether closed second `sec` goes into all-time directly. */
static bool all_fed_directly(const nx_engine *e, const nx_stream *s, int64_t sec)
{
    int f = e->all_feeder;
    int64_t direct = *nx_stream_all_direct(e, s);
    return f < 0 || (direct != NX_WINDOW_NO_DIRECT && nx_window_index(&s->win[f], sec) < direct);
}

/* Whether closed second `sec` goes into window j directly. */
static bool window_fed_directly(const nx_engine *e, const nx_stream *s, uint32_t j, int64_t sec)
{
    const nx_window *w = &s->win[j];
    return e->win_feeder[j] < 0 ||
           (w->direct_k != NX_WINDOW_NO_DIRECT && nx_window_index(w, sec) < w->direct_k);
}

/* out += what window j lacks of its own range: the current sub-buckets of
 * its feeders not handed on yet. */
static int window_read_feeders(const nx_stream *s, uint32_t j, nx_acc *out)
{
    const nx_engine *e = s->eng;
    int rc;
    while (!nx_window_direct(&s->win[j]) && e->win_feeder[j] >= 0) {
        j = (uint32_t)e->win_feeder[j];
        if ((rc = nx_window_read_current(&s->win[j], out, &e->ap)))
            return rc;
    }
    return 0;
}

/* Moves every window to second `sec`, feeders first. */
static int windows_advance(nx_stream *s, int64_t sec)
{
    const nx_engine *e = s->eng;
    for (uint32_t o = 0; o < e->cfg.nwindows; o++) {
        uint32_t i = e->win_order[o];
        nx_cascade c = {s, i};
        nx_window_sink sink;
        int rc = nx_window_advance(&s->win[i], sec, &e->ap, cascade_sink(e, i, &c, &sink));
        if (rc)
            return rc;
    }
    /* as a window's (window_moved): past it, the mark no longer matters */
    int64_t *ad = nx_stream_all_direct(e, s);
    if (e->all_feeder >= 0 && *ad <= s->win[e->all_feeder].cur_k)
        *ad = NX_WINDOW_NO_DIRECT;
    return 0;
}

/* out += all-time (which lacks its feeder chain's current sub-buckets). */
static int all_read(const nx_stream *s, nx_acc *out)
{
    const nx_engine *e = s->eng;
    int rc = nx_acc_merge(out, &s->all, &e->ap);
    if (!rc && nx_acc_empty(&s->all)) /* a set whose counts all wait in the cascade */
        rc = nx_acc_merge_distinct(out, &s->all, &e->ap);
    /* all-time's HLL is the sliding HLL's grave: the rest is in its pairs */
    if (!rc && s->shll && !out->hll)
        rc = nx_hll_create(e->cfg.hll_precision, &out->hll);
    if (!rc && s->shll)
        rc = nx_shll_fold(s->shll, out->hll);
    int f = e->all_feeder;
    if (rc || f < 0 || !s->win || s->win[f].cur_k < *nx_stream_all_direct(e, s))
        return rc;
    if ((rc = nx_window_read_current(&s->win[f], out, &e->ap)))
        return rc;
    return window_read_feeders(s, (uint32_t)f, out);
}

/* Moves windows and tiers to second `sec` (expiring what fell out) and frees
 * them and the pending ring when nothing is left (never while seconds are
 * pending, e.g. during a flush). */
static int hist_advance(nx_stream *s, int64_t sec)
{
    if (!s->win)
        return 0;
    const nx_engine *e = s->eng;
    bool empty = s->npend == 0;
    int rc = windows_advance(s, sec);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < e->cfg.nwindows; i++)
        if (s->win[i].nonempty)
            empty = false;
    nx_tier *tr = nx_stream_tiers(e, s);
    for (uint32_t i = 0; i < e->cfg.ntiers; i++) {
        nx_tier_advance(&tr[i], sec);
        if (tr[i].cap)
            empty = false;
    }
    if (empty) {
        stream_hist_free(e, s);
        stream_pend_free(s);
        if (s->nqbuf == 0)
            mlog_free(s);
        if (s->nqlog == 0)
            qlog_free(s);
    }
    return 0;
}

/* Folds one closed second into the windows and all-time that take it
 * directly (the cascade brings it to the others) and the tiers. */
static int fold_second(nx_stream *s, int64_t sec, nx_acc *a)
{
    const nx_engine *e = s->eng;
    int rc;
    if ((rc = nx_stream_hist_alloc(s)) || (rc = hist_advance(s, sec)))
        return rc;
    nx_tier *tr = nx_stream_tiers(e, s);
    for (uint32_t i = 0; i < e->cfg.ntiers; i++)
        if ((rc = nx_tier_add(&tr[i], sec, &a->m)))
            return rc;
    if (all_fed_directly(e, s, sec) && (rc = nx_acc_merge(&s->all, a, &e->ap)))
        return rc;
    /* the last window to take it may take its sketches instead of a copy */
    int last = -1;
    for (uint32_t o = 0; o < e->cfg.nwindows; o++)
        if (window_fed_directly(e, s, e->win_order[o], sec))
            last = (int)o;
    for (int o = 0; o <= last; o++) {
        uint32_t i = e->win_order[o];
        if (!window_fed_directly(e, s, i, sec))
            continue;
        nx_cascade c = {s, i};
        nx_window_sink sink;
        const nx_window_sink *sk = cascade_sink(e, i, &c, &sink);
        rc = o == last ? nx_window_fold_move(&s->win[i], sec, a, &e->ap, sk)
                       : nx_window_fold(&s->win[i], sec, a, &e->ap, sk);
        if (rc)
            return rc;
    }
    return 0;
}

/* A flush merges each pending second's sketch, closed up to
 * nx_stream_pend_cap() seconds ago and cold, into the windows: stream_flush
 * fetches its struct two seconds ahead (contents false) and what the merge
 * reads of it one second ahead (contents true: the struct is in cache by
 * then). Distributions 5.98 -> 6.26M updates/s (bench_engine, 4 pairs,
 * with the evictions' hint in nx_window.c). */
static void pend_prefetch(const nx_stream *s, uint32_t i, bool contents)
{
    const void *sk = s->pend[i].sketch; /* the type's: NULL for counters and gauges */
    if (!sk)
        return;
    if (s->type == NX_TYPE_SET) {
        if (contents)
            nx_topk_prefetch_merge(sk);
        else
            __builtin_prefetch(sk);
    } else {
        if (contents)
            nx_ddsketch_prefetch_read(sk);
        else
            nx_ddsketch_prefetch(sk);
    }
}

/* Folds every pending second, oldest first. On an error the seconds not yet
 * folded stay pending (the failed one is retried by the next flush). */
static int stream_flush(nx_stream *s)
{
    nx_pend_slot *pd = s->pend;
    if (s->npend == 0)
        return 0;
    uint32_t done = 0;
    int rc = 0;
    for (uint32_t i = 0; i < 2 && i < s->npend; i++)
        pend_prefetch(s, i, false);
    while (done < s->npend) {
        if (done + 2 < s->npend)
            pend_prefetch(s, done + 2, false);
        if (done + 1 < s->npend)
            pend_prefetch(s, done + 1, true);
        nx_acc a = nx_stream_pend_get(s, done);
        if ((rc = fold_second(s, pd[done].sec, &a)))
            break;
        nx_acc_clear(&a);
        nx_stream_pend_put(s, done++, &a);
    }
    if (done) {
        /* keep the ring's order: move what is left to the front */
        for (uint32_t i = done; i < s->npend; i++) {
            nx_pend_slot t = pd[i - done];
            pd[i - done] = pd[i];
            pd[i] = t;
        }
        s->npend -= done;
        int mrc = s->shll ? nx_shll_maintain(s->shll, s->open_sec) : 0;
        if (mrc && !rc)
            rc = mrc;
        /* the bytes figure follows the folds (a recount walks every window:
         * once per flush, so it is at most nx_stream_pend_cap() seconds stale;
         * reads, late events and deletes recount too) */
        nx_stream_account(s);
    }
    return rc;
}

/* Flushes the pending seconds, then moves windows and tiers to `sec`. */
static int stream_advance(nx_stream *s, int64_t sec)
{
    int rc = stream_flush(s);
    return rc ? rc : hist_advance(s, sec);
}

/* ---- the member log (sets; see nx_engine_int.h) ----------------------------------
 * An entry: the member's XXH3 hash (8 bytes), its length (4), its bytes,
 * padded to a multiple of 8 so the next hash is aligned. */
#define NX_MLOG_HEAD 12u

static inline uint32_t mlog_entry_bytes(uint32_t len)
{
    return (NX_MLOG_HEAD + len + 7u) & ~7u;
}

/* Reads the entry at `off`; returns the offset of the next one. */
static inline uint32_t mlog_entry(const nx_stream *s, uint32_t off, uint64_t *hash,
                                  const char **member, uint32_t *len)
{
    const uint8_t *e = s->mlog.data + off;
    memcpy(hash, e, sizeof *hash);
    memcpy(len, e + 8, sizeof *len);
    *member = (const char *)e + NX_MLOG_HEAD;
    return off + mlog_entry_bytes(*len);
}

static int stream_shll_ensure(nx_stream *s);

/* Members of the open second into the sliding HLL, or all-time's HLL when
 * the engine has no windows (so no sliding HLL). Idempotent: a drain that
 * fails may add them again. */
static int set_members_hll(nx_stream *s, const uint64_t *hs, uint32_t n)
{
    nx_engine *e = s->eng;
    int rc;
    if (e->shll_horizon) {
        if ((rc = stream_shll_ensure(s)))
            return rc;
        return nx_shll_add_hashes(s->shll, hs, n, s->open_sec, s->open_sec);
    }
    for (uint32_t i = 0; i < n; i++)
        if ((rc = nx_acc_add_distinct(&s->all, &e->ap, hs[i])))
            return rc;
    return 0;
}

/* Hint: the lines set_members_hll(s, hs, n) reads first. */
static void set_members_prefetch(const nx_stream *s, const uint64_t *hs, uint32_t n)
{
    if (s->eng->shll_horizon) {
        if (s->shll) /* else the first drain creates it */
            nx_shll_prefetch(s->shll, hs, n);
    } else if (s->all.hll) {
        for (uint32_t i = 0; i < n; i++)
            nx_hll_prefetch(s->all.hll, hs[i]);
    }
}

/* The open top-k, created when first needed. */
static int set_open_topk(nx_stream *s)
{
    return s->open_topk ? 0 : nx_topk_create(s->eng->ap.topk_capacity, &s->open_topk);
}

/* A member too long for any log goes straight in (the log is empty). */
static int set_member_apply(nx_stream *s, uint64_t h, const char *m, uint32_t len, double w)
{
    int rc;
    if ((rc = set_members_hll(s, &h, 1)) || (rc = set_open_topk(s)))
        return rc;
    return nx_topk_add_hash(s->open_topk, m, len, h, w);
}

/* A drain takes its members MLOG_CHUNK at a time, to the HLLs and then to
 * the top-k's tally, and asks for the HLL lines of the members MLOG_AHEAD
 * further on: all of a full log's at once (255 members, 2-3 lines each)
 * are more than the core keeps in flight, and the tally's work between
 * the adds is what hides their wait (one pass of HLL adds and then one of
 * tallies ran 15% slower, with 7% fewer instructions). */
#define MLOG_CHUNK 8u
#define MLOG_AHEAD 16u

/* The log's members go to the HLLs in order, and to the top-k as one
 * batch: tallied exactly into the engine's scratch sketch, which is then
 * merged into open_topk. Either step failing (NX_ENOMEM) leaves the log
 * whole for a retry: the HLL adds are idempotent, the scratch is thrown
 * away, and a merge is all or nothing. */
static int mlog_drain(nx_stream *s)
{
    nx_engine *e = s->eng;
    uint32_t n = s->nqbuf, off = 0;
    uint64_t hs[NX_MLOG_ENTRIES_MAX];
    const char *ms[NX_MLOG_ENTRIES_MAX];
    uint32_t lens[NX_MLOG_ENTRIES_MAX];
    int rc;
    if ((rc = set_open_topk(s)) ||
        (!e->mlog_topk && (rc = nx_topk_create(NX_MLOG_ENTRIES_MAX + 1, &e->mlog_topk))))
        return rc;
    for (uint32_t i = 0; i < n; i++)
        off = mlog_entry(s, off, &hs[i], &ms[i], &lens[i]);
    set_members_prefetch(s, hs, n < MLOG_AHEAD ? n : MLOG_AHEAD);
    nx_topk_prefetch_merge(s->open_topk);
    nx_topk *batch = e->mlog_topk;
    nx_topk_clear(batch);
    for (uint32_t c = 0; c < n; c += MLOG_CHUNK) {
        uint32_t c_n = n - c < MLOG_CHUNK ? n - c : MLOG_CHUNK;
        if (c + MLOG_AHEAD < n) {
            uint32_t a = c + MLOG_AHEAD, a_n = n - a < MLOG_CHUNK ? n - a : MLOG_CHUNK;
            set_members_prefetch(s, hs + a, a_n);
        }
        if ((rc = set_members_hll(s, hs + c, c_n)) ||
            (rc = nx_topk_tally_n(batch, ms + c, lens + c, hs + c, c_n, s->qbuf_w)))
            return rc;
    }
    if ((rc = nx_topk_merge(s->open_topk, batch)))
        return rc;
    s->mlog.len = 0;
    s->nqbuf = 0;
    return 0;
}

/* Writes an entry of `need` bytes (mlog_entry_bytes(len)) into the log,
 * which has room for it and takes weight w (nothing to drain). */
static inline void mlog_put(nx_stream *s, uint64_t h, const char *m, uint32_t len, uint32_t need,
                            double w)
{
    uint8_t *p = s->mlog.data + s->mlog.len;
    memcpy(p, &h, sizeof h);
    memcpy(p + 8, &len, sizeof len);
    memcpy(p + NX_MLOG_HEAD, m, len);
    s->mlog.len += need;
    s->qbuf_w = w;
    s->nqbuf++;
}

/* Whether the log takes an entry of `need` bytes and weight w as it is:
 * no drain first (mlog_append's conditions; its byte limit holds as the
 * log's capacity is at most NX_MLOG_MAX), no growth. */
static inline bool mlog_has_room(const nx_stream *s, uint32_t need, double w)
{
    return s->nqbuf < NX_MLOG_ENTRIES_MAX && (s->nqbuf == 0 || s->qbuf_w == w) &&
           s->mlog.len + need <= s->mlog.cap;
}

/* Logs one member of the open second (its weight is already in open_m). */
static int mlog_append(nx_stream *s, uint64_t h, const char *m, uint32_t len, double w)
{
    int rc;
    uint32_t need = mlog_entry_bytes(len);
    if (s->nqbuf && (s->nqbuf == NX_MLOG_ENTRIES_MAX || s->qbuf_w != w ||
                     s->mlog.len + need > NX_MLOG_MAX) &&
        (rc = nx_stream_drain(s)))
        return rc;
    if (need > NX_MLOG_MAX) /* longer than any log: straight in (the log is empty) */
        return set_member_apply(s, h, m, len, w);
    /* grows by doubling from 256: stays <= NX_MLOG_MAX (a power of two) */
    if ((rc = nx_buf_reserve(&s->mlog, need)))
        return rc;
    mlog_put(s, h, m, len, need, w);
    return 0;
}

int nx_stream_drain(nx_stream *s)
{
    if (!s->nqbuf && !s->nqlog) /* nqlog: quantile types only */
        return 0;
    if (s->type == NX_TYPE_SET)
        return mlog_drain(s);
    const nx_engine *e = s->eng;
    uint32_t done = 0;
    int rc = 0;
    if (!s->open_dd && (rc = nx_ddsketch_create(e->ap.alpha, e->ap.dd_max_bins, &s->open_dd)))
        return rc;
    if (!s->nqlog) {
        rc = nx_ddsketch_add_packed(s->open_dd, s->qbuf, s->nqbuf, s->qbuf_w, &done);
        if (done < s->nqbuf)
            memmove(s->qbuf, s->qbuf + done, (s->nqbuf - done) * sizeof(s->qbuf[0]));
        s->nqbuf = (uint8_t)(s->nqbuf - done);
        return rc;
    }
    /* the log, then qbuf behind it (the log has room: qlog[0] > nqlog) */
    int32_t *bins = s->qlog + 1;
    uint32_t n = s->nqlog * NX_QBUF_MAX;
    memcpy(bins + n, s->qbuf, s->nqbuf * sizeof(s->qbuf[0]));
    n += s->nqbuf;
    uint32_t scratch[2 * NX_QLOG_MAX * NX_QBUF_MAX];
    rc = nx_ddsketch_add_packed_all(s->open_dd, bins, n, s->qbuf_w, scratch, &done);
    /* what was not added (an allocation failed) stays, in order: whole
     * buffers in the log (fewer than its capacity), the rest (at most a
     * buffer: n <= (capacity - 1) * NX_QBUF_MAX + NX_QBUF_MAX) in qbuf */
    uint32_t left = n - done, whole = left / NX_QBUF_MAX;
    if (whole >= (uint32_t)s->qlog[0])
        whole = (uint32_t)s->qlog[0] - 1;
    memmove(s->qbuf, bins + done + whole * NX_QBUF_MAX,
            (left - whole * NX_QBUF_MAX) * sizeof(s->qbuf[0]));
    if (whole)
        memmove(bins, bins + done, whole * NX_QBUF_MAX * sizeof(bins[0]));
    s->nqlog = (uint8_t)whole;
    s->nqbuf = (uint8_t)(left - whole * NX_QBUF_MAX);
    return rc;
}

/* Moves the full bin buffer to the bin log (nx_stream.qlog); false when
 * the log is at NX_QLOG_MAX or cannot grow: the caller drains instead. */
static bool qlog_spill(nx_stream *s)
{
    uint32_t n = s->nqlog;
    /* qlog[0] is a power of two >= 4 and > nqlog: it can only be
     * nqlog + 1 when that is a power of two */
    if (!s->qlog || ((n + 1) >= 4 && ((n + 1) & n) == 0 && (uint32_t)s->qlog[0] == n + 1)) {
        uint32_t cap = s->qlog ? (uint32_t)s->qlog[0] * 2 : 4;
        if (cap > NX_QLOG_MAX)
            return false;
        int32_t *q = realloc(s->qlog, (1 + (size_t)cap * NX_QBUF_MAX) * sizeof(int32_t));
        if (!q)
            return false;
        q[0] = (int32_t)cap;
        s->qlog = q;
    }
    memcpy(s->qlog + 1 + n * NX_QBUF_MAX, s->qbuf, sizeof(s->qbuf));
    s->nqlog = (uint8_t)(n + 1);
    s->nqbuf = 0;
    return true;
}

static void qlog_free(nx_stream *s)
{
    assert(!nx_type_has_quantiles((nx_type)s->type) || s->nqlog == 0);
    if (!nx_type_has_quantiles((nx_type)s->type))
        return;
    free(s->qlog);
    s->qlog = NULL;
}

/* Whether the ring is to be folded before the open second joins it: when
 * it is full, or, once the stream is a ring's length old, when the open
 * second is on the stream's own phase of the ring's length. Streams busy
 * every second would otherwise all fold in the same second, a fold storm
 * every 8 or 16 seconds (a latency spike in nexusd, and a bias in a
 * benchmark whose span is not a multiple of the ring). The phase comes from
 * the stream's first event time, a part of its state in the lines a close
 * reads: equal states fold at the same seconds (their snapshots, which
 * hold the ring, stay equal). A young stream folds only when its ring is
 * full (or read), so that one which closes a few seconds and goes quiet
 * never pays for its window block. When a ring folds changes no answer
 * (same folds, same order). */
static inline bool stream_flush_due(const nx_stream *s, uint32_t cap)
{
    if (s->npend == cap)
        return true;
    if (!s->npend || s->open_sec - sec_of(s->first_ts) < (int64_t)cap)
        return false;
    uint64_t phase = ((uint64_t)s->first_ts * 0x9E3779B97F4A7C15ull) >> 32;
    return (((uint64_t)s->open_sec + phase) & (cap - 1)) == 0;
}

/* Hands the open bucket to the pending ring (folding the ring first when it
 * is full or due) and leaves an empty one, with recycled sketches, open. */
static int stream_close(nx_stream *s)
{
    int rc;
    if ((rc = nx_stream_drain(s)))
        return rc; /* before the clock moves: buffered members are of open_sec */
    if (!(s->open_m.count > 0)) /* nx_acc_empty */
        return 0;
    bool fresh = s->pend == NULL;
    if ((rc = nx_stream_pend_alloc(s)))
        return rc;
    nx_pend_slot *pd = s->pend;
    if (stream_flush_due(s, nx_stream_pend_cap(s)) && (rc = stream_flush(s)))
        return rc;
    uint32_t n = s->npend++;
    if (s->type == NX_TYPE_SET || nx_type_has_quantiles((nx_type)s->type)) {
        nx_acc t = nx_stream_pend_get(s, n);
        nx_acc o = nx_stream_open(s);
        pd[n].sec = s->open_sec;
        nx_stream_pend_put(s, n, &o);
        nx_stream_open_set(s, &t);
    } else {
        /* nothing to recycle (their accumulators never hold sketches;
         * nx_acc_decode refuses any): one line of stores */
        pd[n] = (nx_pend_slot){.sec = s->open_sec, .m = s->open_m, .sketch = NULL};
        nx_moments_init(&s->open_m);
    }
    if (fresh)
        nx_stream_account(s);
    return 0;
}

/* Moves the stream clock to `sec` (closing the open bucket if it is older). */
static int stream_tick(nx_stream *s, int64_t sec)
{
    if (sec <= s->open_sec)
        return 0;
    int rc = stream_close(s);
    s->open_sec = sec;
    return rc;
}

void nx_stream_prefetch_next(const nx_stream *s, int64_t now_ms)
{
    bool closes = now_ms >= 0 && sec_of(now_ms) > s->open_sec;
    const nx_pend_slot *pd = s->pend;
    if (closes && pd && s->npend < nx_stream_pend_cap(s))
        __builtin_prefetch(&pd[s->npend], 1); /* the close's slot: one line */
    if (s->type == NX_TYPE_SET && s->mlog.data)
        /* the member log's next entry: written by the event (a line that
         * was cold since the stream's previous event) */
        __builtin_prefetch(s->mlog.data + s->mlog.len, 1);
    if (nx_type_has_quantiles((nx_type)s->type) && s->open_dd && closes &&
        (s->nqbuf || s->nqlog)) {
        /* the drain reads the sketch's header and stores (two lines) and
         * the bin log */
        __builtin_prefetch(s->open_dd, 1);
        __builtin_prefetch((const char *)s->open_dd + 64, 1);
        if (s->nqlog)
            __builtin_prefetch(s->qlog, 1);
    } else if (nx_type_has_quantiles((nx_type)s->type) && s->nqbuf == NX_QBUF_MAX && s->qlog) {
        /* the full buffer moves to the bin log's tail (qlog_spill) */
        const int32_t *tail = s->qlog + 1 + (size_t)s->nqlog * NX_QBUF_MAX;
        __builtin_prefetch(tail, 1);
        __builtin_prefetch(tail + NX_QBUF_MAX - 1, 1);
    }
}

/* ---- updates ------------------------------------------------------------------------- */

int nx_stream_grave_attach(nx_stream *s)
{
    int rc;
    if (!s->shll)
        return 0;
    if (!s->all.hll && (rc = nx_hll_create(s->eng->cfg.hll_precision, &s->all.hll)))
        return rc;
    nx_shll_set_grave(s->shll, s->all.hll);
    return 0;
}

/* The stream's sliding HLL, created when first needed with all-time's HLL
 * as its grave: all-time's distinct count is that HLL max the sliding one's
 * pairs (all_read), so a member costs one sketch update, not two. */
static int stream_shll_ensure(nx_stream *s)
{
    const nx_engine *e = s->eng;
    int rc;
    if (s->shll)
        return 0;
    if ((rc = nx_shll_create(e->cfg.hll_precision, e->shll_horizon, &s->shll)))
        return rc;
    if ((rc = nx_stream_grave_attach(s))) {
        nx_shll_destroy(s->shll);
        s->shll = NULL;
    }
    return rc;
}

/* A set member's hash goes to the sliding HLL (every window's distinct
 * count, and all-time's through its grave) at its second; without windows
 * (no sliding HLL) the caller adds it to all-time's HLL itself. */
static int stream_shll_add(nx_stream *s, uint64_t hash, int64_t sec)
{
    const nx_engine *e = s->eng;
    int rc;
    if (!e->shll_horizon)
        return 0; /* no windows */
    if ((rc = stream_shll_ensure(s)))
        return rc;
    return nx_shll_add_hash(s->shll, hash, sec, s->open_sec);
}

int nx_stream_shll_absorb(nx_stream *s, const nx_hll *h, int64_t sec)
{
    const nx_engine *e = s->eng;
    int rc;
    if (!e->shll_horizon || sec > s->open_sec || s->open_sec - sec >= e->shll_horizon)
        return 0;
    if ((rc = stream_shll_ensure(s)))
        return rc;
    uint32_t m = 1u << nx_hll_precision(h);
    for (uint32_t i = 0; i < m; i++) {
        uint8_t r = nx_hll_register(h, i);
        if (r && (rc = nx_shll_raise(s->shll, i, r, sec, s->open_sec)))
            return rc;
    }
    return 0;
}

static int stream_add_late(nx_stream *s, int64_t sec, double v, double w, const nx_update *u)
{
    const nx_engine *e = s->eng;
    nx_type type = (nx_type)s->type;
    int rc;
    if ((rc = nx_stream_drain(s)))
        return rc;
    uint64_t hash = type == NX_TYPE_SET ? XXH3_64bits(u->member, u->member_len) : 0;
    if (type == NX_TYPE_SET && (rc = stream_shll_add(s, hash, sec)))
        return rc;
    if ((rc = stream_advance(s, s->open_sec)))
        return rc;
    if (!s->win) {
        /* a fresh block: its windows start at the stream clock */
        if ((rc = nx_stream_hist_alloc(s)) || (rc = windows_advance(s, s->open_sec)))
            return rc;
    }
    for (uint32_t i = 0; i < e->cfg.nwindows; i++) {
        int f = e->win_feeder[i];
        if (!window_fed_directly(e, s, i, sec) &&
            nx_window_index(&s->win[f], sec) >= s->win[f].cur_k)
            continue; /* it reaches window i through f's current sub-bucket */
        if ((rc = nx_window_add_late(&s->win[i], sec, &e->ap, type, v, w, u->member,
                                     u->member_len)))
            return rc;
    }
    nx_moments m;
    nx_moments_init(&m);
    if (type == NX_TYPE_SET)
        m.count = w;
    else
        nx_moments_add(&m, v, w);
    nx_tier *tr = nx_stream_tiers(e, s);
    for (uint32_t i = 0; i < e->cfg.ntiers; i++)
        if ((rc = nx_tier_add(&tr[i], sec, &m)))
            return rc;
    int f = e->all_feeder;
    bool all_direct = all_fed_directly(e, s, sec) ||
                      nx_window_index(&s->win[f], sec) < s->win[f].cur_k;
    if (type == NX_TYPE_SET) {
        /* all-time's distinct count has the member now (through the
         * sliding HLL, or its own HLL without one); the counts may come
         * through the cascade */
        if ((!s->shll && (rc = nx_acc_add_distinct(&s->all, &e->ap, hash))) ||
            (all_direct && (rc = nx_acc_add_member_counts(&s->all, &e->ap, hash, u->member,
                                                          u->member_len, w))))
            return rc;
    } else if (all_direct && (rc = nx_acc_add(&s->all, &e->ap, type, v, w, NULL, 0))) {
        return rc;
    }
    nx_stream_account(s);
    return 0;
}

/* Every event but the common counter and quantile ones (nx_stream_update). */
static __attribute__((noinline)) int stream_update_any(nx_stream *s, const nx_update *u,
                                                       int64_t now_ms)
{
    double v = u->value, w = u->weight;
    if (UNLIKELY(!(w > 0) || !isfinite(w) || !isfinite(v)))
        return NX_EINVAL;
    if (UNLIKELY(s->type == NX_TYPE_SET && (!u->member || u->member_len > NX_TOPK_MEMBER_MAX)))
        return u->member ? NX_ETOOBIG : NX_EINVAL;
    if (UNLIKELY(now_ms < 0 || now_ms > NX_NOW_MAX))
        return NX_EINVAL;
    nx_snap_touch(s);
    if (UNLIKELY(now_ms < s->max_now_ms))
        now_ms = s->max_now_ms;
    else
        s->max_now_ms = now_ms;
    int64_t ts = now_ms;
    if (u->ts_ms) {
        /* an event without a timestamp is at now: never too late or early
         * (so most events do not read their tenant) */
        nx_tenant *tn = s->tenant;
        ts = u->ts_ms;
        if (UNLIKELY(ts < now_ms - tn->late_ms)) {
            tn->st.rejected_late++;
            return NX_ETOOLATE;
        }
        if (UNLIKELY(ts > now_ms + tn->future_ms)) {
            tn->st.rejected_future++;
            return NX_EFUTURE;
        }
    }
    int64_t sec = sec_of(ts);
    if (UNLIKELY(ts > s->last_update_ms))
        s->last_update_ms = ts;
    if (UNLIKELY(ts < s->first_ts || s->first_ts == 0))
        s->first_ts = ts;
    s->events++;
    nx_type type = (nx_type)s->type;
    if (LIKELY(sec == s->open_sec && type == NX_TYPE_COUNTER)) {
        nx_moments_add_checked(&s->open_m, v, w);
        return 0;
    }
    int rc;
    if (type == NX_TYPE_GAUGE) {
        if (u->gauge_delta) {
            v = s->last + v;
            if (!isfinite(v))
                return NX_EINVAL;
            s->last = v;
            if (ts > s->last_ts)
                s->last_ts = ts;
        } else if (ts >= s->last_ts) {
            s->last = v;
            s->last_ts = ts;
        }
    }
    if (sec > s->open_sec) {
        if ((rc = stream_tick(s, sec)))
            return rc;
    } else if (sec < s->open_sec) {
        return stream_add_late(s, sec, v, w, u);
    }
    if (nx_type_has_quantiles(type)) {
        if (s->nqbuf == NX_QBUF_MAX && s->qbuf_w == w)
            (void)qlog_spill(s); /* else the drain below */
        if ((s->nqbuf == NX_QBUF_MAX || (s->qbuf_w != w && (s->nqbuf || s->nqlog))) &&
            (rc = nx_stream_drain(s)))
            return rc;
        s->qbuf[s->nqbuf++] = nx_ddsketch_pack(s->eng->dd_inv_ln_gamma, v);
        s->qbuf_w = w;
        nx_moments_add_checked(&s->open_m, v, w);
        return 0;
    }
    if (type == NX_TYPE_SET) {
        /* the member waits in the log (sec == open_sec here) */
        uint64_t h = XXH3_64bits(u->member, u->member_len);
        if ((rc = mlog_append(s, h, u->member, u->member_len, w)))
            return rc;
        s->open_m.count += w;
        return 0;
    }
    /* counters and gauges: their open bucket is its moments (v and w were
     * checked above; a gauge delta's sum too) */
    nx_moments_add_checked(&s->open_m, v, w);
    return 0;
}

/* The common event of a counter, a quantile type or a set gets a path of its own:
 * no timestamp of its own (so it is at now), now not behind the stream's
 * newest (no clamp), in the open second, valid, no snapshot being written;
 * for a quantile type also room in the bin buffer and the buffer's weight
 * (nothing to drain or spill), for a set room in the member log as it is
 * (mlog_has_room: nothing to drain, no growth). It has exactly the effects
 * stream_update_any() gives such an event, in fewer instructions: no
 * registers to save for a counter (the general path is a tail call), no
 * floor division (now >= 0), none of the other types' tests. bench_engine
 * (callgrind): counters ~100 -> ~70 instructions per event in
 * nx_stream_update, distributions -5.7% in all (docs/engine.md, "Counters
 * fold 16 seconds at a time; a path of its own for the common event"). */
static inline bool stream_event_common(nx_stream *s, const nx_update *u, int64_t now_ms, double v,
                                       double w)
{
    return u->ts_ms == 0 && now_ms >= s->max_now_ms && (uint64_t)now_ms <= (uint64_t)NX_NOW_MAX &&
           (uint64_t)now_ms / 1000 == (uint64_t)s->open_sec && w > 0 && isfinite(w) &&
           isfinite(v) && !s->eng->snap.active;
}

/* What every event of stream_event_common() does to the stream's clock,
 * times and count. */
static inline void stream_event_account(nx_stream *s, int64_t now_ms)
{
    s->max_now_ms = now_ms;
    if (now_ms > s->last_update_ms)
        s->last_update_ms = now_ms;
    if (now_ms < s->first_ts || s->first_ts == 0)
        s->first_ts = now_ms;
    s->events++;
}

/* The fast paths below are out of line, each in its own function, so that
 * each stays a leaf: the set path's XXH3, inlined with the others, made the
 * compiler save five registers on entry to every update (~12 of a counter
 * event's ~86 instructions). Each tail-calls the next when its event is
 * not its kind (docs/engine.md, "The common event's own path"). */

/* A set's common event: its member into the member log. */
static __attribute__((noinline)) int stream_update_member(nx_stream *s, const nx_update *u,
                                                          int64_t now_ms)
{
    double v = u->value, w = u->weight;
    if (u->member && u->member_len <= NX_TOPK_MEMBER_MAX &&
        mlog_has_room(s, mlog_entry_bytes(u->member_len), w) &&
        stream_event_common(s, u, now_ms, v, w)) {
        stream_event_account(s, now_ms);
        mlog_put(s, XXH3_64bits(u->member, u->member_len), u->member, u->member_len,
                 mlog_entry_bytes(u->member_len), w);
        s->open_m.count += w;
        return 0;
    }
    return stream_update_any(s, u, now_ms);
}

/* A quantile type's common event: its bin into the stream's bin buffer. */
static __attribute__((noinline)) int stream_update_binned(nx_stream *s, const nx_update *u,
                                                          int64_t now_ms)
{
    double v = u->value, w = u->weight;
    nx_type type = (nx_type)s->type;
    if (nx_type_has_quantiles(type) && s->nqbuf < NX_QBUF_MAX &&
        (s->qbuf_w == w || (s->nqbuf == 0 && s->nqlog == 0)) &&
        stream_event_common(s, u, now_ms, v, w)) {
        stream_event_account(s, now_ms);
        nx_moments_add_checked(&s->open_m, v, w);
        s->qbuf[s->nqbuf++] = nx_ddsketch_pack(s->eng->dd_inv_ln_gamma, v);
        s->qbuf_w = w;
        return 0;
    }
    if (type == NX_TYPE_SET)
        return stream_update_member(s, u, now_ms);
    return stream_update_any(s, u, now_ms);
}

int nx_stream_update(nx_stream *s, const nx_update *u, int64_t now_ms)
{
    double v = u->value, w = u->weight;
    if (LIKELY(s->type == NX_TYPE_COUNTER && stream_event_common(s, u, now_ms, v, w))) {
        stream_event_account(s, now_ms);
        nx_moments_add_checked(&s->open_m, v, w);
        return 0;
    }
    return stream_update_binned(s, u, now_ms);
}

/* ---- reads ---------------------------------------------------------------------------- */

/* Brings the stream to read time: clock = max(clock, now), windows moved. */
static int stream_sync(nx_stream *s, int64_t now_ms)
{
    if (now_ms < 0 || now_ms > NX_NOW_MAX)
        return NX_EINVAL;
    nx_snap_touch(s);
    if (now_ms > s->max_now_ms)
        s->max_now_ms = now_ms;
    int64_t sec = sec_of(s->max_now_ms);
    int rc;
    if (s->open_sec == INT64_MIN)
        return 0; /* never saw an event: nothing to move */
    if ((rc = nx_stream_drain(s)))
        return rc;
    if ((rc = stream_tick(s, sec)))
        return rc;
    if ((rc = stream_advance(s, s->open_sec)))
        return rc;
    nx_stream_account(s);
    return 0;
}

static int summary_from_acc(nx_summary *out, nx_acc *a)
{
    out->count = a->m.count;
    out->sum = a->m.sum;
    out->min = a->m.min;
    out->max = a->m.max;
    out->mean = a->m.mean;
    out->m2 = a->m.m2;
    out->dd = a->dd;
    out->hll = a->hll;
    out->topk = a->topk;
    a->dd = NULL;
    a->hll = NULL;
    a->topk = NULL;
    return 0;
}

int nx_stream_read(nx_stream *s, uint32_t window_s, int64_t now_ms, nx_summary *out)
{
    const nx_engine *e = s->eng;
    int widx = -1;
    if (window_s != NX_WINDOW_ALL) {
        for (uint32_t i = 0; i < e->cfg.nwindows; i++)
            if (e->cfg.windows[i].length_s == window_s)
                widx = (int)i;
        if (widx < 0)
            return NX_EINVAL;
    }
    int rc = stream_sync(s, now_ms);
    if (rc)
        return rc;
    nx_acc a;
    nx_acc_init(&a);
    int64_t start_ms = 0;
    if (widx < 0) {
        rc = all_read(s, &a);
    } else if (s->win) {
        rc = nx_window_read(&s->win[widx], window_derive_from(s, (uint32_t)widx), &a, &e->ap);
        if (!rc)
            rc = window_read_feeders(s, (uint32_t)widx, &a);
        start_ms = nx_window_start_sec(&s->win[widx]) * 1000;
    }
    if (!rc) {
        nx_acc open = nx_stream_open(s);
        rc = nx_acc_merge(&a, &open, &e->ap);
    }
    if (!rc && widx >= 0 && s->shll && a.m.count > 0) {
        /* the windows and the open bucket keep no HLL: the sliding one has
         * every second (the window was moved to open_sec by stream_sync) */
        const nx_window_spec *ws = &e->cfg.windows[widx];
        int64_t from = (nx_floordiv(s->open_sec, ws->bucket_s) - ws->length_s / ws->bucket_s) *
                       (int64_t)ws->bucket_s;
        if (!a.hll)
            rc = nx_hll_create(e->cfg.hll_precision, &a.hll);
        if (!rc)
            rc = nx_shll_read(s->shll, from, s->open_sec, a.hll);
    }
    if (rc) {
        nx_acc_free(&a);
        return rc;
    }
    nx_summary_init(out, (nx_type)s->type, window_s);
    summary_from_acc(out, &a);
    if (s->type == NX_TYPE_GAUGE && s->last_ts != INT64_MIN) {
        out->last = s->last;
        out->last_ts = s->last_ts;
    }
    if (out->count > 0)
        out->first_ts = s->first_ts > start_ms ? s->first_ts : start_ms;
    return 0;
}

/* Picks the tier for a series read (see nexus.h). */
static int series_tier(const nx_engine *e, const nx_stream *s, int64_t from_ms, uint32_t step_s)
{
    int best = -1, longest = -1;
    int64_t clock = s->open_sec;
    for (uint32_t i = 0; i < e->cfg.ntiers; i++) {
        const nx_tier_spec *ts = &e->cfg.tiers[i];
        if (step_s % ts->step_s)
            continue;
        int64_t oldest_idx = (clock < 0 ? 0 : clock) / ts->step_s - ts->buckets + 1;
        int64_t ret = (int64_t)ts->step_s * ts->buckets;
        bool covers = sec_of(from_ms) >= oldest_idx * (int64_t)ts->step_s;
        if (covers && (best < 0 || ts->step_s < e->cfg.tiers[best].step_s))
            best = (int)i;
        if (longest < 0 || ret > (int64_t)e->cfg.tiers[longest].step_s * e->cfg.tiers[longest].buckets)
            longest = (int)i;
    }
    return best >= 0 ? best : longest;
}

int nx_stream_series(nx_stream *s, int64_t from_ms, int64_t to_ms, uint32_t step_s,
                     int64_t now_ms, nx_point *out, size_t max)
{
    const nx_engine *e = s->eng;
    if (step_s == 0 || to_ms < from_ms || (max && !out))
        return NX_EINVAL;
    int rc = stream_sync(s, now_ms);
    if (rc)
        return rc;
    int ti = series_tier(e, s, from_ms, step_s);
    if (ti < 0)
        return NX_EINVAL;
    if (!s->win && !(s->open_m.count > 0))
        return 0;
    const nx_tier_spec *spec = &e->cfg.tiers[ti];
    const nx_tier *tr = s->win ? &nx_stream_tiers(e, s)[ti] : NULL;
    int64_t st = spec->step_s;
    /* tier buckets starting in [from aligned down to step_s, to) */
    int64_t lo = sec_of(from_ms), hi = sec_of(to_ms - 1);
    if (lo < 0)
        lo = 0;
    if (hi < lo)
        return 0;
    lo = lo / step_s * step_s;
    int64_t lo_idx = lo / st, hi_idx = hi / st;
    int64_t open_idx = s->open_sec / st;
    int64_t oldest = tr ? tr->newest - (int64_t)tr->buckets + 1 : open_idx;
    if (lo_idx < oldest)
        lo_idx = oldest;
    if (hi_idx > open_idx)
        hi_idx = open_idx;
    size_t n = 0;
    nx_point cur;
    bool have = false;
    for (int64_t idx = lo_idx; idx <= hi_idx; idx++) {
        nx_tpoint p = {0, 0, INFINITY, -INFINITY};
        const nx_tpoint *tp = tr ? nx_tier_get(tr, idx) : NULL;
        if (tp)
            p = *tp;
        if (idx == open_idx && s->open_m.count > 0) {
            p.count += s->open_m.count;
            p.sum += s->open_m.sum;
            if (s->open_m.min < p.min)
                p.min = s->open_m.min;
            if (s->open_m.max > p.max)
                p.max = s->open_m.max;
        }
        if (!(p.count > 0))
            continue;
        int64_t bucket_ms = (idx * st) / step_s * step_s * 1000;
        if (have && cur.ts_ms != bucket_ms) {
            if (n < max)
                out[n] = cur;
            n++;
            have = false;
        }
        if (!have) {
            cur = (nx_point){bucket_ms, 0, 0, INFINITY, -INFINITY};
            have = true;
        }
        cur.count += p.count;
        cur.sum += p.sum;
        if (p.min < cur.min)
            cur.min = p.min;
        if (p.max > cur.max)
            cur.max = p.max;
    }
    if (have) {
        if (n < max)
            out[n] = cur;
        n++;
    }
    return (int)(n < max ? n : max);
}
