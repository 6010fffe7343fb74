/*
 * nx_hll.c — HyperLogLog distinct counter (see nx_hll.h).
 *
 * Hashing: XXH3_64bits (libxxhash) of the member bytes. For precision p the
 * register index is the top p bits of the hash; the rank is 1 + the number
 * of leading zeros of the remaining q = 64 - p bits (q + 1 when they are all
 * zero), so ranks lie in 1..q+1 <= 51 and fit in 6 bits.
 *
 * Representations
 *   sparse: an open-addressing (linear probing) hash table of uint32 entries
 *           (index << 6) | rank, 0 = empty slot, load <= 3/4, starting at 16
 *           slots. add = O(1) expected, no sorting. It is converted to dense
 *           when doubling it would make it bigger than the dense registers
 *           (p = 14: at 1537 distinct registers, 8 KiB -> 12 KiB). Sparse
 *           keeps precision p, so converting changes no register: the
 *           estimate is exactly continuous across the transition.
 *   dense:  m = 2^p registers of 6 bits packed little-endian (register i is
 *           bits [6i, 6i+6) of the byte string, as in Redis), plus one pad
 *           byte so that a register is always read from two bytes.
 *           p = 14: 12289 bytes.
 *
 * Estimation: the "improved raw estimator" of O. Ertl, "New cardinality
 *   estimation algorithms for HyperLogLog sketches" (2017), Algorithm 6,
 *   computed from the histogram C[0..q+1] of register values. It needs no
 *   empirical bias tables, is unbiased from 0 to far beyond 2^64/1000, and
 *   behaves like linear counting for small cardinalities (the sigma term).
 *
 * Merge: register-wise maximum (sparse into sparse, sparse into dense, dense
 *   into sparse = densify then max). The merged sketch is exactly the
 *   sketch of the union, so estimates are identical.
 *
 * Serialized layout (the version is in the caller's frame):
 *   u8   p                  14..18
 *   u8   repr               0 = sparse, 1 = dense
 *   sparse: uvar n          number of non-zero registers (<= m)
 *           n times: uvar index delta (first: the index; then >= 1, so
 *                    indexes strictly increase and stay < m), u8 rank (1..q+1)
 *   dense:  m * 6 / 8 bytes, the packed registers (values 0..q+1)
 *   Anything else decodes to NX_ECORRUPT.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/nx_codec.h"
#include "common/nx_sort.h"
#include "sketch/nx_hll.h"

#define NX_HLL_MIN_P 14
#define NX_HLL_MAX_P 18

struct nx_hll {
    uint8_t p;
    uint8_t dense;
    uint32_t m;
    uint32_t n;        /* sparse: used slots */
    uint32_t cap;      /* sparse: slots (power of two) */
    uint32_t *sparse;  /* sparse table, NULL while empty */
    uint8_t *regs;     /* dense registers (m*6/8 + 1 bytes) */
};

static inline size_t dense_bytes(uint32_t m) { return (size_t)m * 6 / 8 + 1; }

static inline uint8_t reg_get(const uint8_t *r, uint32_t i)
{
    uint32_t bit = i * 6, b = bit >> 3, fb = bit & 7;
    unsigned v = (unsigned)r[b] | ((unsigned)r[b + 1] << 8);
    return (uint8_t)((v >> fb) & 63);
}

static inline void reg_set(uint8_t *r, uint32_t i, uint8_t val)
{
    uint32_t bit = i * 6, b = bit >> 3, fb = bit & 7;
    unsigned v = (unsigned)r[b] | ((unsigned)r[b + 1] << 8);
    v = (v & ~(63u << fb)) | ((unsigned)val << fb);
    r[b] = (uint8_t)v;
    r[b + 1] = (uint8_t)(v >> 8);
}

/* Largest sparse table: doubling past it would exceed the dense size. */
static inline int sparse_can_grow(const nx_hll *h, uint32_t newcap)
{
    return (size_t)newcap * sizeof(uint32_t) <= dense_bytes(h->m);
}

int nx_hll_create(uint8_t precision, nx_hll **out)
{
    if (precision < NX_HLL_MIN_P || precision > NX_HLL_MAX_P)
        return NX_EINVAL;
    nx_hll *h = calloc(1, sizeof *h);
    if (!h)
        return NX_ENOMEM;
    h->p = precision;
    h->m = 1u << precision;
    *out = h;
    return 0;
}

void nx_hll_destroy(nx_hll *h)
{
    if (!h)
        return;
    free(h->sparse);
    free(h->regs);
    free(h);
}

/* Empties the sketch, keeping its memory for reuse (a window slot is
 * cleared and refilled every bucket): a sparse table keeps its capacity, a
 * dense sketch stays dense with every register zero. */
void nx_hll_clear(nx_hll *h)
{
    if (h->dense) {
        memset(h->regs, 0, dense_bytes(h->m));
    } else if (h->n) {
        memset(h->sparse, 0, (size_t)h->cap * sizeof(uint32_t));
        h->n = 0;
    }
}

int nx_hll_clone(const nx_hll *h, nx_hll **out)
{
    nx_hll *c = malloc(sizeof *c);
    if (!c)
        return NX_ENOMEM;
    *c = *h;
    c->sparse = NULL;
    c->regs = NULL;
    if (h->sparse) {
        c->sparse = malloc((size_t)h->cap * sizeof(uint32_t));
        if (!c->sparse)
            goto fail;
        memcpy(c->sparse, h->sparse, (size_t)h->cap * sizeof(uint32_t));
    }
    if (h->regs) {
        c->regs = malloc(dense_bytes(h->m));
        if (!c->regs)
            goto fail;
        memcpy(c->regs, h->regs, dense_bytes(h->m));
    }
    *out = c;
    return 0;
fail:
    nx_hll_destroy(c);
    return NX_ENOMEM;
}

/* Converts to dense (no-op if dense). */
int nx_hll_densify(nx_hll *h)
{
    if (h->dense)
        return 0;
    uint8_t *r = calloc(1, dense_bytes(h->m));
    if (!r)
        return NX_ENOMEM;
    for (uint32_t i = 0; i < h->cap; i++) {
        uint32_t e = h->sparse[i];
        if (e)
            reg_set(r, e >> 6, (uint8_t)(e & 63));
    }
    free(h->sparse);
    h->sparse = NULL;
    h->n = h->cap = 0;
    h->regs = r;
    h->dense = 1;
    return 0;
}

/* Sparse table insert of (idx, rank) keeping the max; may grow or densify. */
static int sparse_set(nx_hll *h, uint32_t idx, uint8_t rank);

static int sparse_rehash(nx_hll *h, uint32_t newcap)
{
    uint32_t *t = calloc(newcap, sizeof *t);
    if (!t)
        return NX_ENOMEM;
    for (uint32_t i = 0; i < h->cap; i++) {
        uint32_t e = h->sparse[i];
        if (!e)
            continue;
        uint32_t s = (e >> 6) & (newcap - 1);
        while (t[s])
            s = (s + 1) & (newcap - 1);
        t[s] = e;
    }
    free(h->sparse);
    h->sparse = t;
    h->cap = newcap;
    return 0;
}

static int sparse_set(nx_hll *h, uint32_t idx, uint8_t rank)
{
    assert(!h->dense && rank >= 1 && rank <= 64 - h->p + 1 && idx < h->m);
    if (h->cap) {
        uint32_t mask = h->cap - 1, s = idx & mask;
        for (;;) {
            uint32_t e = h->sparse[s];
            if (!e)
                break;
            if ((e >> 6) == idx) {
                if ((e & 63) < rank)
                    h->sparse[s] = (idx << 6) | rank;
                return 0;
            }
            s = (s + 1) & mask;
        }
    }
    if ((uint64_t)(h->n + 1) * 4 > (uint64_t)h->cap * 3) {
        uint32_t newcap = h->cap ? h->cap * 2 : 16;
        int rc;
        if (!sparse_can_grow(h, newcap)) {
            rc = nx_hll_densify(h);
            if (rc)
                return rc;
            reg_set(h->regs, idx, rank);
            return 0;
        }
        rc = sparse_rehash(h, newcap);
        if (rc)
            return rc;
    }
    uint32_t mask = h->cap - 1, s = idx & mask;
    while (h->sparse[s])
        s = (s + 1) & mask;
    h->sparse[s] = (idx << 6) | rank;
    h->n++;
    return 0;
}

int nx_hll_raise(nx_hll *h, uint32_t idx, uint8_t rank)
{
    if (h->dense) {
        if (reg_get(h->regs, idx) < rank)
            reg_set(h->regs, idx, rank);
        return 0;
    }
    return sparse_set(h, idx, rank);
}

int nx_hll_add_hash(nx_hll *h, uint64_t hash)
{
    uint32_t idx;
    uint8_t rank;
    nx_hll_split(h->p, hash, &idx, &rank);
    return nx_hll_raise(h, idx, rank);
}

void nx_hll_prefetch(const nx_hll *h, uint64_t hash)
{
    uint32_t idx;
    uint8_t rank;
    nx_hll_split(h->p, hash, &idx, &rank);
    if (h->dense)
        __builtin_prefetch(h->regs + (idx * 6 >> 3), 1);
    else if (h->cap)
        __builtin_prefetch(h->sparse + (idx & (h->cap - 1)), 1);
}

uint8_t nx_hll_register(const nx_hll *h, uint32_t idx)
{
    if (idx >= h->m)
        return 0;
    if (h->dense)
        return reg_get(h->regs, idx);
    if (!h->cap)
        return 0;
    uint32_t mask = h->cap - 1;
    for (uint32_t s = idx & mask; h->sparse[s]; s = (s + 1) & mask)
        if ((h->sparse[s] >> 6) == idx)
            return (uint8_t)(h->sparse[s] & 63);
    return 0;
}

int nx_hll_add(nx_hll *h, const void *member, size_t len)
{
    return nx_hll_add_hash(h, XXH3_64bits(member, len));
}

int nx_hll_merge(nx_hll *dst, const nx_hll *src)
{
    if (dst->p != src->p)
        return NX_EINVAL;
    if (!src->dense) {
        for (uint32_t i = 0; i < src->cap; i++) {
            uint32_t e = src->sparse[i];
            if (!e)
                continue;
            if (dst->dense) {
                if (reg_get(dst->regs, e >> 6) < (e & 63))
                    reg_set(dst->regs, e >> 6, (uint8_t)(e & 63));
            } else {
                int rc = sparse_set(dst, e >> 6, (uint8_t)(e & 63));
                if (rc)
                    return rc;
            }
        }
        return 0;
    }
    int rc = nx_hll_densify(dst);
    if (rc)
        return rc;
    /* dense into dense: 4 registers (3 bytes) at a time, skipping groups
     * where src adds nothing (m is a multiple of 4 for p >= 14) */
    uint8_t *d = dst->regs;
    const uint8_t *sr = src->regs;
    for (uint32_t g = 0; g < dst->m / 4; g++, d += 3, sr += 3) {
        uint32_t sv = (uint32_t)sr[0] | ((uint32_t)sr[1] << 8) | ((uint32_t)sr[2] << 16);
        if (sv == 0)
            continue;
        uint32_t dv = (uint32_t)d[0] | ((uint32_t)d[1] << 8) | ((uint32_t)d[2] << 16);
        if (sv == dv)
            continue;
        uint32_t out = 0;
        for (int r = 0; r < 24; r += 6) {
            uint32_t a = (sv >> r) & 63, b = (dv >> r) & 63;
            out |= (a > b ? a : b) << r;
        }
        d[0] = (uint8_t)out;
        d[1] = (uint8_t)(out >> 8);
        d[2] = (uint8_t)(out >> 16);
    }
    return 0;
}

/* Ertl 2017, Algorithm 6 helpers. */
static double ertl_sigma(double x)
{
    if (x == 1)
        return INFINITY;
    double y = 1, z = x, zp;
    do {
        x *= x;
        zp = z;
        z += x * y;
        y += y;
    } while (z != zp);
    return z;
}

static double ertl_tau(double x)
{
    if (x == 0 || x == 1)
        return 0;
    double y = 1, z = 1 - x, zp;
    do {
        x = sqrt(x);
        zp = z;
        y *= 0.5;
        z -= (1 - x) * (1 - x) * y;
    } while (z != zp);
    return z / 3;
}

double nx_hll_estimate(const nx_hll *h)
{
    uint32_t C[66] = {0};
    int q = 64 - h->p;
    if (h->dense) {
        for (uint32_t i = 0; i < h->m; i++)
            C[reg_get(h->regs, i)]++;
    } else {
        C[0] = h->m - h->n;
        for (uint32_t i = 0; i < h->cap; i++)
            if (h->sparse[i])
                C[h->sparse[i] & 63]++;
    }
    double m = h->m;
    double z = m * ertl_tau(1 - C[q + 1] / m);
    for (int k = q; k >= 1; k--)
        z = 0.5 * (z + C[k]);
    z += m * ertl_sigma(C[0] / m);
    return (1 / (2 * log(2))) * m * m / z;
}

uint8_t nx_hll_precision(const nx_hll *h) { return h->p; }
bool nx_hll_is_dense(const nx_hll *h) { return h->dense != 0; }

size_t nx_hll_bytes(const nx_hll *h)
{
    return sizeof *h + (h->dense ? dense_bytes(h->m) : (size_t)h->cap * sizeof(uint32_t));
}

int nx_hll_encode(const nx_hll *h, nx_buf *out)
{
    size_t start = out->len;
    int rc = nx_buf_u8(out, h->p);
    if (rc == 0)
        rc = nx_buf_u8(out, h->dense);
    if (rc)
        goto fail;
    if (h->dense) {
        rc = nx_buf_put(out, h->regs, dense_bytes(h->m) - 1);
        if (rc)
            goto fail;
        return 0;
    }
    uint32_t *e = NULL;
    if (h->n) {
        e = malloc((size_t)h->n * sizeof *e);
        if (!e) {
            rc = NX_ENOMEM;
            goto fail;
        }
        uint32_t k = 0;
        for (uint32_t i = 0; i < h->cap; i++)
            if (h->sparse[i])
                e[k++] = h->sparse[i];
        assert(k == h->n);
        if ((rc = nx_sort_u32(e, h->n))) {
            free(e);
            goto fail;
        }
    }
    rc = nx_buf_uvar(out, h->n);
    uint32_t prev = 0;
    for (uint32_t i = 0; i < h->n && rc == 0; i++) {
        uint32_t idx = e[i] >> 6;
        rc = nx_buf_uvar(out, i ? idx - prev : idx);
        if (rc == 0)
            rc = nx_buf_u8(out, (uint8_t)(e[i] & 63));
        prev = idx;
    }
    free(e);
    if (rc == 0)
        return 0;
fail:
    out->len = start;
    return rc;
}

int nx_hll_decode(struct nx_rbuf *in, nx_hll **out)
{
    uint8_t p = nx_rbuf_u8(in);
    uint8_t repr = nx_rbuf_u8(in);
    if (in->err || p < NX_HLL_MIN_P || p > NX_HLL_MAX_P || repr > 1)
        return NX_ECORRUPT;
    uint8_t maxrank = (uint8_t)(64 - p + 1);
    nx_hll *h;
    int rc = nx_hll_create(p, &h);
    if (rc)
        return rc;
    if (repr == 1) {
        const uint8_t *raw = nx_rbuf_take(in, dense_bytes(h->m) - 1);
        if (!raw)
            goto corrupt;
        rc = nx_hll_densify(h);
        if (rc)
            goto fail;
        memcpy(h->regs, raw, dense_bytes(h->m) - 1);
        for (uint32_t i = 0; i < h->m; i++)
            if (reg_get(h->regs, i) > maxrank)
                goto corrupt;
    } else {
        uint64_t n = nx_rbuf_uvar(in);
        if (in->err || n > h->m || n > in->n / 2)
            goto corrupt;
        uint64_t idx = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t d = nx_rbuf_uvar(in);
            uint8_t r = nx_rbuf_u8(in);
            if (in->err || (i > 0 && d == 0) || d >= h->m)
                goto corrupt;
            idx += d;
            if (idx >= h->m || r < 1 || r > maxrank)
                goto corrupt;
            rc = sparse_set(h, (uint32_t)idx, r);
            if (rc)
                goto fail;
        }
    }
    *out = h;
    return 0;
corrupt:
    rc = NX_ECORRUPT;
fail:
    nx_hll_destroy(h);
    return rc;
}
