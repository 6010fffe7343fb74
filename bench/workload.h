/*
 * workload.h — the seeded benchmark workload shared by bench/loadgen.c
 * (StatsD lines over UDP for nexusd and statsd) and bench/redis_driver.c
 * (the same events as pipelined Redis commands).
 *
 * Design: the workload is a pure function of (seed, options, event index i),
 * so any process, any thread split and any later "expected aggregates" pass
 * sees the same events without storing them:
 *
 *   datagram  g = i / group          (group = lines per datagram; a real
 *                                     StatsD client packs one app's lines,
 *                                     so every line of a datagram belongs to
 *                                     one tenant; --mix-tenants sets group=1)
 *   tenant    = zipf_tab[top bits of mix(seed_t ^ g)]   Zipf(s) over T
 *                                     tenants, tenant 0 the busiest
 *   metric    = (mix(seed_e ^ i) high 32 bits * M) >> 32
 *   type      = by metric index: j%10 in 0..3 counter, 4..7 timer, 8..9 set
 *   value     = counter: 1 + (h & 7)
 *               timer:   timer_tab[h & 0xffff], a pre-formatted table of
 *                        heavy-tailed values (85% lognormal around 20 ms,
 *                        15% Pareto(50, 1.3), capped at 10^6), 3 decimals
 *               set:     member "u<k>", k = floor(P * u^3), u uniform in
 *                        [0,1): Zipf-ish, P = 1,000,000 members
 *
 * Line text: "bench.<kind>.m<j>:<value>|<type>|#tenant:t<NNNN>\n".
 * Values are stored as the double that strtod() gives for the exact text
 * sent, so expected aggregates are exact for what the receiver parses.
 *
 * Trade-offs: tables (Zipf 4 MiB, timers 64 Ki entries) make generation a
 * few nanoseconds per line at the cost of quantised distributions; the
 * workload is still exactly known, which is what accuracy needs.
 *
 * Everything here is static (header-only) so the two programs share it
 * without a library; nothing here is exported.
 */
#ifndef NX_BENCH_WORKLOAD_H
#define NX_BENCH_WORKLOAD_H

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NXW_ZIPF_BITS 20
#define NXW_TIMER_BITS 16
#define NXW_SET_POP 1000000u
#define NXW_MAX_LINE 96 /* upper bound of one formatted line, '\n' included */

enum { NXW_COUNTER = 0, NXW_TIMER = 1, NXW_SET = 2 };

typedef struct nxw_timer_val {
    double v;     /* strtod(s) */
    uint8_t len;  /* strlen(s) */
    char s[23];   /* decimal text, 3 decimals (16 bytes copied at once) */
} nxw_timer_val;

typedef struct nxw {
    uint64_t seed;
    uint32_t tenants, metrics, group;
    double zipf_s;
    uint64_t seed_t, seed_e;
    uint32_t *zipf_tab;            /* 2^ZIPF_BITS tenant ids */
    nxw_timer_val *timer_tab;      /* 2^TIMER_BITS values */
    uint8_t *mtype;                /* per metric index */
    int tenant_width;              /* digits in tenant ids */
    /* pre-formatted per metric: "bench.timer.m4:" and "|ms|#tenant:t" */
    char (*mname)[32];
    uint8_t *mname_len;
    char (*msuffix)[24];
    uint8_t *msuffix_len;
    char (*tname)[16];             /* "t0042" */
    uint8_t *tname_len;
} nxw;

typedef struct nxw_event {
    uint32_t tenant, metric;
    int type;
    uint32_t ival;     /* counter value, or set member id */
    uint32_t tidx;     /* timer table index */
} nxw_event;

/* splitmix64 finaliser: a bijective 64-bit mix. */
static inline uint64_t nxw_mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static inline double nxw_unit(uint64_t h) /* [0,1) from 53 bits */
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

static inline int nxw_type_of(uint32_t metric)
{
    static const uint8_t t[10] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2};
    return t[metric % 10];
}

static void nxw_free(nxw *w)
{
    free(w->zipf_tab);
    free(w->timer_tab);
    free(w->mtype);
    free(w->mname);
    free(w->mname_len);
    free(w->msuffix);
    free(w->msuffix_len);
    free(w->tname);
    free(w->tname_len);
    memset(w, 0, sizeof *w);
}

/* Builds the tables. Returns 0, or -1 on allocation failure / bad args. */
static int nxw_init(nxw *w, uint64_t seed, uint32_t tenants, uint32_t metrics,
                    uint32_t group, double zipf_s)
{
    memset(w, 0, sizeof *w);
    if (tenants == 0 || tenants > 10000000u || metrics == 0 || metrics > 1000 ||
        group == 0 || zipf_s < 0)
        return -1;
    w->seed = seed;
    w->tenants = tenants;
    w->metrics = metrics;
    w->group = group;
    w->zipf_s = zipf_s;
    w->seed_t = nxw_mix(seed ^ 0x74656e616e74ull);
    w->seed_e = nxw_mix(seed ^ 0x6576656e7473ull);
    size_t zn = (size_t)1 << NXW_ZIPF_BITS, tn = (size_t)1 << NXW_TIMER_BITS;
    w->zipf_tab = malloc(zn * sizeof *w->zipf_tab);
    w->timer_tab = malloc(tn * sizeof *w->timer_tab);
    w->mtype = malloc(metrics);
    w->mname = malloc(metrics * sizeof *w->mname);
    w->mname_len = malloc(metrics);
    w->msuffix = malloc(metrics * sizeof *w->msuffix);
    w->msuffix_len = malloc(metrics);
    w->tname = malloc((size_t)tenants * sizeof *w->tname);
    w->tname_len = malloc(tenants);
    double *cdf = malloc((size_t)tenants * sizeof *cdf);
    if (!w->zipf_tab || !w->timer_tab || !w->mtype || !w->mname || !w->mname_len ||
        !w->msuffix || !w->msuffix_len || !w->tname || !w->tname_len || !cdf) {
        free(cdf);
        nxw_free(w);
        return -1;
    }
    /* Zipf table: slot k maps to the first tenant whose CDF exceeds (k+.5)/zn. */
    double tot = 0;
    for (uint32_t t = 0; t < tenants; t++) {
        tot += pow((double)t + 1.0, -zipf_s);
        cdf[t] = tot;
    }
    uint32_t t = 0;
    for (size_t k = 0; k < zn; k++) {
        double x = ((double)k + 0.5) / (double)zn * tot;
        while (t + 1 < tenants && cdf[t] < x)
            t++;
        w->zipf_tab[k] = t;
    }
    free(cdf);
    /* Timer values: heavy-tailed mix, deterministic from the seed. */
    for (size_t k = 0; k < tn; k++) {
        uint64_t h1 = nxw_mix(seed ^ (0x74696d65ull << 32) ^ k);
        uint64_t h2 = nxw_mix(h1);
        double u1 = nxw_unit(h1), u2 = nxw_unit(h2), v;
        if ((h2 & 0xff) < 218) { /* ~85%: lognormal(ln 20, 0.8) via Box-Muller */
            double z = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
            v = exp(log(20.0) + 0.8 * z);
        } else { /* ~15%: Pareto(x_m = 50, alpha = 1.3) */
            v = 50.0 / pow(1.0 - u1, 1.0 / 1.3);
        }
        if (v > 1e6)
            v = 1e6;
        if (v < 0.001)
            v = 0.001;
        nxw_timer_val *tv = &w->timer_tab[k];
        int n = snprintf(tv->s, sizeof tv->s, "%.3f", v);
        assert(n > 0 && n < (int)sizeof tv->s);
        tv->len = (uint8_t)n;
        tv->v = strtod(tv->s, NULL);
    }
    static const char *kind[3] = {"counter", "timer", "set"};
    static const char *code[3] = {"c", "ms", "s"};
    for (uint32_t j = 0; j < metrics; j++) {
        int ty = nxw_type_of(j);
        w->mtype[j] = (uint8_t)ty;
        int n = snprintf(w->mname[j], sizeof w->mname[j], "bench.%s.m%u:", kind[ty], j);
        w->mname_len[j] = (uint8_t)n;
        n = snprintf(w->msuffix[j], sizeof w->msuffix[j], "|%s|#tenant:", code[ty]);
        w->msuffix_len[j] = (uint8_t)n;
    }
    int width = 4;
    for (uint32_t x = tenants - 1; x >= 10000; x /= 10)
        width++;
    w->tenant_width = width;
    for (uint32_t i = 0; i < tenants; i++) {
        int n = snprintf(w->tname[i], sizeof w->tname[i], "t%0*u", width, i);
        w->tname_len[i] = (uint8_t)n;
    }
    return 0;
}

/* The tenant of datagram (group) g. */
static inline uint32_t nxw_group_tenant(const nxw *w, uint64_t g)
{
    return w->zipf_tab[nxw_mix(w->seed_t ^ g) >> (64 - NXW_ZIPF_BITS)];
}

/* Event i, given its group's tenant (callers cache it per datagram). */
static inline void nxw_event_at_t(const nxw *w, uint64_t i, uint32_t tenant, nxw_event *e)
{
    uint64_t h = nxw_mix(w->seed_e ^ (i * 0xD1B54A32D192ED03ull));
    e->tenant = tenant;
    e->metric = (uint32_t)(((h >> 32) * (uint64_t)w->metrics) >> 32);
    e->type = w->mtype[e->metric];
    switch (e->type) {
    case NXW_COUNTER:
        e->ival = 1 + (uint32_t)(h & 7);
        break;
    case NXW_TIMER:
        e->tidx = (uint32_t)(h & ((1u << NXW_TIMER_BITS) - 1));
        break;
    default: {
        double u = (double)(uint32_t)h * (1.0 / 4294967296.0);
        e->ival = (uint32_t)((double)NXW_SET_POP * u * u * u);
        break;
    }
    }
}

static inline void nxw_event_at(const nxw *w, uint64_t i, nxw_event *e)
{
    nxw_event_at_t(w, i, nxw_group_tenant(w, i / w->group), e);
}

/* Writes decimal u at p, returns the length. */
static inline int nxw_utoa(char *p, uint32_t u)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (int k = 0; k < n; k++)
        p[k] = tmp[n - 1 - k];
    return n;
}

/* Writes the value text of e (no type) at p; returns its length (<= 16). */
static inline int nxw_value_text(const nxw *w, const nxw_event *e, char *p)
{
    switch (e->type) {
    case NXW_COUNTER:
        p[0] = (char)('0' + e->ival); /* 1..8 */
        return 1;
    case NXW_TIMER: {
        const nxw_timer_val *tv = &w->timer_tab[e->tidx];
        memcpy(p, tv->s, 16);
        return tv->len;
    }
    default:
        p[0] = 'u';
        return 1 + nxw_utoa(p + 1, e->ival);
    }
}

/* Formats e as one StatsD line at p (room for NXW_MAX_LINE); returns length. */
static inline int nxw_format_line(const nxw *w, const nxw_event *e, char *p)
{
    char *s = p;
    memcpy(p, w->mname[e->metric], 32);
    p += w->mname_len[e->metric];
    p += nxw_value_text(w, e, p);
    memcpy(p, w->msuffix[e->metric], 24);
    p += w->msuffix_len[e->metric];
    memcpy(p, w->tname[e->tenant], 16);
    p += w->tname_len[e->tenant];
    *p++ = '\n';
    assert(p - s <= NXW_MAX_LINE);
    return (int)(p - s);
}

/* Numeric value of e as the receiver parses it. */
static inline double nxw_value(const nxw *w, const nxw_event *e)
{
    if (e->type == NXW_TIMER)
        return w->timer_tab[e->tidx].v;
    return (double)e->ival;
}

/* Lines per datagram so that the longest possible line still fits in
 * dgram_bytes (what nx-loadgen packs; other drivers use it to reproduce the
 * same tenant per datagram). 0 if not even one line fits. */
static inline uint32_t nxw_lines_per_dgram(const nxw *w, uint32_t dgram_bytes)
{
    uint32_t maxlen = 0;
    for (uint32_t j = 0; j < w->metrics; j++) {
        uint32_t vmax = w->mtype[j] == NXW_COUNTER ? 1 : w->mtype[j] == NXW_SET ? 8 : 0;
        if (w->mtype[j] == NXW_TIMER)
            for (size_t k = 0; k < ((size_t)1 << NXW_TIMER_BITS); k++)
                if (w->timer_tab[k].len > vmax)
                    vmax = w->timer_tab[k].len;
        uint32_t l = w->mname_len[j] + vmax + w->msuffix_len[j] + w->tname_len[0] + 1;
        if (l > maxlen)
            maxlen = l;
    }
    return dgram_bytes / maxlen;
}

#endif
