/*
 * bench_engine.c — engine hot path and memory.
 *
 * For each of counter, distribution and set: one engine with 10,000 tenants
 * x 10 streams of that type (100,000 streams), events pre-generated with a
 * uniformly random stream per event, `now` advancing 1 s of simulated time
 * per 3M events (so every stream closes its one-second bucket about once per
 * 30 of its events, as in production). A warm-up brings every stream to
 * steady state (130 simulated seconds at 2 events/s/stream, then 30 s of
 * the workload, so that sketches have grown to their working size: with 2 s,
 * set top-k and HLL growth — realloc and first-touch page faults — took a
 * third of the timed loop, and DDSketch bin arrays still widening (calloc +
 * page faults) half of it: distributions 1.9M updates/s after 10 s, 3.25M
 * after 40 s); then only the update loop is timed. The loop prefetches the
 * stream 16 events ahead with nx_stream_prefetch_type() (two lines for
 * counters, three for the others), as a batching ingest does, and for
 * quantile types calls nx_stream_prefetch_next() 4 events ahead. Also: the
 * same counter workload through the keyed
 * path (tenant lookup + stream lookup + update, one event at a time, and
 * counter_updates_keyed_batch: in chunks of 32 with the batch-lookup
 * prefetches of nexusd's apply path), bytes per stream (fresh,
 * idle, active), and the cost of 1m and 1h window reads; and
 * counter_memory_ceiling, the rate of a loop that only touches the same two
 * cache lines per event in the same pattern (what the machine's memory
 * allows the counter path at best), and distribution_memory_ceiling, the
 * same plus one random bin of a per-stream dense array per event (what a
 * per-stream DDSketch allows at best; see distribution_memory_ceiling()),
 * and set_memory_ceiling, the same for a set stream's state (see
 * set_memory_ceiling()). Last, each figure issue 2 sets a target for, and
 * each ceiling, as a share of that target: `<figure>_of_target x` (a rate
 * meets its target at >= 1, the idle stream's bytes at <= 1). A ceiling
 * is the memory traffic of the plainest design, per event, and nothing
 * else: one below 1 says that design cannot meet the target on this
 * machine; a design that batches (the engine's distributions at pace 150,
 * which put a second's bins in at once) can go past it.
 *
 * Output: `name value unit` lines. NX_BENCH_SCALE multiplies the timed
 * span (30 simulated seconds: 90M events at 10,000 tenants),
 * NX_BENCH_TENANTS sets the tenant count (10 streams each; default 10000),
 * NX_BENCH_PACE the events per stream per simulated second (default 30;
 * 150 is what one core at 15M updates/s over 100,000 streams sees in real
 * time: without NX_BENCH_PACE, distributions and sets also run at 150 and
 * print distribution_pace150_* and set_pace150_*),
 * NX_BENCH_WARM_S the slow warm-up seconds, NX_BENCH_WARM_RUN_S the
 * full-rate ones (default 30), NX_BENCH_ONLY=counter|distribution|set
 * runs one type (NX_BENCH_ONLY=ceilings: the three ceilings alone, ~1
 * min), NX_BENCH_STEADY=1 adds the bytes per stream once the 1 h
 * window is full (<type>_steady_stream_bytes; 100 streams, ~1 min), and
 * NX_BENCH_STEADY=only prints just those. Memory: set streams need
 * ~250 KB each ~190 s in (window top-k sketches, the sliding HLL), so
 * 100,000 of them need far more than a 24 GiB box: sets run with 1,000
 * tenants unless NX_BENCH_TENANTS says otherwise. The heap is on
 * transparent huge pages, as nexusd's (heap_on_thp(); NX_BENCH_THP=0:
 * 4 KiB pages).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "nexus.h"

#define PER_TENANT 10
static int TENANTS = 10000;     /* NX_BENCH_TENANTS */
static int WARM_S = 130;        /* NX_BENCH_WARM_S */
static int WARM_RUN_S = 30;     /* NX_BENCH_WARM_RUN_S */
/* Timed span in simulated seconds (x NX_BENCH_SCALE): 30 s holds every
 * finer sub-bucket period (1, 5, 30 s) exactly once, starting on a 30 s
 * boundary. A 3 s span (the old 9M events at 10,000 tenants) measured
 * whether a 30 s sub-bucket completed inside it or not: distributions
 * 1.3M vs 3.0M updates/s for warm-ups of 30 s and 40 s. */
#define TIMED_S 30.0
#define NSTREAMS (TENANTS * PER_TENANT)
/* 30 events per stream per simulated second (NX_BENCH_PACE): 3M/s for
 * 100,000 streams */
static int PACE = 30;
#define EVENTS_PER_SEC ((long long)PACE * NSTREAMS)
#define T0 1700000000000ll

static uint64_t rng_state = 0x1234567;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: the machine is shared */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct bev {
    uint32_t stream;
    uint32_t member;
    double value;
} bev;

#define NMEMBERS 20000
static char members[NMEMBERS][12];
static uint32_t member_len[NMEMBERS];

static nx_stream **make_streams(nx_engine *e, nx_type type, const char *prefix)
{
    nx_stream **ss = malloc(sizeof(nx_stream *) * NSTREAMS);
    if (!ss)
        exit(1);
    for (int t = 0; t < TENANTS; t++) {
        char id[32], key[64];
        int n = snprintf(id, sizeof(id), "tenant-%d", t);
        nx_tenant *tn;
        if (nx_engine_tenant(e, id, (size_t)n, &tn))
            exit(1);
        for (int j = 0; j < PER_TENANT; j++) {
            int kn = snprintf(key, sizeof(key), "%s.%d|host:web-%02d|env:prod", prefix, j, j);
            if (nx_tenant_stream(tn, key, (size_t)kn, type, &ss[t * PER_TENANT + j]))
                exit(1);
        }
    }
    return ss;
}

static uint64_t engine_stream_bytes(nx_engine *e);

static int sum_cb(nx_tenant *t, void *arg)
{
    nx_tenant_stats st;
    nx_tenant_get_stats(t, &st);
    ((uint64_t *)arg)[0] += st.bytes;
    ((uint64_t *)arg)[1] += st.streams;
    return 0;
}

static uint64_t engine_stream_bytes(nx_engine *e)
{
    uint64_t acc[2] = {0, 0};
    nx_engine_foreach_tenant(e, sum_cb, acc);
    return acc[1] ? acc[0] / acc[1] : 0;
}

static void gen(bev *ev, size_t n, nx_type type)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng();
        ev[i].stream = (uint32_t)(r % NSTREAMS);
        ev[i].member = (uint32_t)((r >> 32) % NMEMBERS);
        if (type == NX_TYPE_COUNTER)
            ev[i].value = (double)(1 + (r >> 40) % 10);
        else { /* log-normal latencies: median 20 ms, sigma 0.6 (Box-Muller) */
            double u1 = ((double)((r >> 40) & 0xFFFFFF) + 0.5) / 16777216.0;
            double u2 = (double)(rng() >> 11) * 0x1.0p-53;
            ev[i].value = 20.0 * exp(0.6 * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
        }
    }
}

/* Events are pre-generated into a pool that the loops cycle through (the
 * pattern repeats every POOL events, far more than any cache holds). */
#define POOL_MAX (16u << 20)
static size_t pool_n;

/* NX_BENCH_PERF_CTL=FIFO: "enable" / "disable" are written to a perf
 * control fifo around each timed update loop, so that
 *   mkfifo /tmp/ctl; NX_BENCH_PERF_CTL=/tmp/ctl perf record -D -1 \
 *       --control fifo:/tmp/ctl bench_engine
 * profiles the timed loops and not the warm-up. */
static void perf_ctl(const char *cmd)
{
    const char *path = getenv("NX_BENCH_PERF_CTL");
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s\n", cmd);
        fclose(f);
    }
}

/* How far ahead run() reaches into the pool: the pool array holds this
 * many events past pool_n, a copy of its first ones (pool_alloc()), so
 * event i + d (d < POOL_AHEAD) sits at ev[i mod pool_n + d] unwrapped. */
#define POOL_AHEAD 64

static bev *pool_alloc(size_t n, nx_type type)
{
    bev *ev = malloc(sizeof(bev) * (n + POOL_AHEAD));
    if (!ev)
        exit(1);
    gen(ev, n, type);
    for (size_t d = 0; d < POOL_AHEAD; d++)
        ev[n + d] = ev[d % n];
    return ev;
}

/* Applies the n events at x (at most up to the pool's end) at `now`, with
 * the hints a batching ingest gives: each event's stream lines 16 events
 * ahead (nx_stream_prefetch_type), the entry of ss[] that names them 48
 * ahead, and for quantile types and sets the second stage 4 ahead. The
 * harness's own work per event is those three loads and the update's
 * arguments: the pool positions need no wrapping (POOL_AHEAD), no check
 * is made per event for the run's end (a hint past it costs nothing), and
 * counter events carry no member (a StatsD counter has none). */
static void run_batch(nx_stream **ss, const bev *x, size_t n, nx_update *u, int64_t now,
                      nx_type kind, bool second_stage)
{
    bool with_member = kind == NX_TYPE_SET;
    for (const bev *end = x + n; x < end; x++) {
        nx_stream_prefetch_type(ss[x[16].stream], kind);
        __builtin_prefetch(&ss[x[48].stream]);
        if (second_stage)
            nx_stream_prefetch_next(ss[x[4].stream], now);
        u->value = x->value;
        if (with_member) {
            u->member = members[x->member];
            u->member_len = member_len[x->member];
        }
        if (nx_stream_update(ss[x->stream], u, now) != 0) {
            fprintf(stderr, "update failed\n");
            exit(1);
        }
    }
}

/* Runs events [from, to) of the pool with now advancing; returns seconds.
 * ss[] is the harness's: a batching ingest holds its batch's resolved
 * stream pointers in a small array, always in cache, while the 800 KB ss[]
 * is pushed out by the bucket closes, and its load stalled the stream
 * prefetch that needs its value (hence its own hint, 48 events ahead). */
static double run(nx_stream **ss, const bev *ev, size_t from, size_t to, int64_t base_ms)
{
    nx_type kind = nx_stream_type(ss[0]);
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = 1;
    /* the second-stage hint pays for its call with quantile types (their
     * drains) and sets (their member log); with counters it cost ~7%
     * (three pairs). nexusd's apply path gives it to every type but
     * counters and gauges. */
    bool second_stage = nx_type_has_quantiles(kind) || kind == NX_TYPE_SET;
    double t0 = now_s();
    size_t at = from % pool_n;
    for (size_t i = from; i < to;) {
        /* batches of 64 events: the clock is read once per batch, as the
         * ingest reads it once per received batch (not a division per
         * event) */
        size_t stop = (i | 63) + 1 < to ? (i | 63) + 1 : to;
        int64_t now = base_ms + (int64_t)i * 1000 / EVENTS_PER_SEC;
        while (i < stop) { /* one piece, or two where the pool wraps */
            size_t n = stop - i < pool_n - at ? stop - i : pool_n - at;
            run_batch(ss, ev + at, n, &u, now, kind, second_stage);
            i += n;
            if ((at += n) == pool_n)
                at = 0;
        }
    }
    return now_s() - t0;
}

static void read_cost(const char *name, nx_stream **ss, uint32_t window, int64_t now, int n)
{
    double t0 = now_s();
    double sink = 0;
    for (int i = 0; i < n; i++) {
        nx_summary out;
        if (nx_stream_read(ss[rng() % NSTREAMS], window, now, &out))
            exit(1);
        sink += out.count;
        nx_summary_free(&out);
    }
    double dt = now_s() - t0;
    printf("read_%s_ns %.0f ns/read\n", name, dt / n * 1e9);
    if (sink < 0)
        printf("#\n");
}

/* Runs one type's engine; returns its updates/s (millions) and, for
 * counters, the bytes of an idle stream in *idle_bytes. */
static double bench_type(nx_type type, const char *name, double timed_s, uint64_t *idle_bytes)
{
    nx_engine *e;
    if (nx_engine_create(NULL, &e))
        exit(1);
    nx_stream **ss = make_streams(e, type, name);
    printf("%s_fresh_stream_bytes %" PRIu64 " bytes\n", name, engine_stream_bytes(e));
    size_t warm = (size_t)WARM_RUN_S * (size_t)EVENTS_PER_SEC;
    size_t nev = warm + (size_t)(timed_s * (double)EVENTS_PER_SEC);
    pool_n = nev < POOL_MAX ? nev : POOL_MAX;
    bev *ev = pool_alloc(pool_n, type);
    /* warm-up to steady state: 130 simulated seconds in which every stream
     * gets 2 events per second (windows, tier rings and sketches reach their
     * steady size), then WARM_RUN_S seconds of the real workload */
    int64_t base = T0;
    for (int sec = 0; sec < WARM_S; sec++) {
        nx_update u;
        memset(&u, 0, sizeof(u));
        u.weight = 1;
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < NSTREAMS; j++) {
                const bev *x = &ev[((size_t)(sec * 2 + k) * NSTREAMS / 4 + (size_t)j) % pool_n];
                u.value = x->value;
                u.member = members[x->member];
                u.member_len = member_len[x->member];
                if (nx_stream_update(ss[j], &u, base + sec * 1000 + k * 400))
                    exit(1);
            }
    }
    base += (int64_t)WARM_S * 1000;
    run(ss, ev, 0, warm, base);
    perf_ctl("enable");
    double dt = run(ss, ev, warm, nev, base);
    perf_ctl("disable");
    double rate = (double)(nev - warm) / dt / 1e6;
    printf("%s_updates %.2f Mupdates/s/core\n", name, rate);
    int64_t end = base + (int64_t)nev * 1000 / EVENTS_PER_SEC;
    char rname[64];
    snprintf(rname, sizeof rname, "1m_%s", name);
    read_cost(rname, ss, 60, end, 20000);
    snprintf(rname, sizeof rname, "1h_%s", name);
    read_cost(rname, ss, 3600, end, 20000);
    snprintf(rname, sizeof rname, "all_%s", name);
    read_cost(rname, ss, NX_WINDOW_ALL, end, 20000);
    printf("%s_active_stream_bytes %" PRIu64 " bytes\n", name, engine_stream_bytes(e));
    printf("%s_engine_bytes %.1f MiB\n", name, nx_engine_bytes(e) / 1048576.0);
    if (type == NX_TYPE_COUNTER) {
        /* keyed path: tenant + stream lookups per event, as ingest does */
        char (*keys)[64] = malloc(sizeof(*keys) * NSTREAMS);
        char (*ids)[32] = malloc(sizeof(*ids) * (size_t)TENANTS);
        uint8_t *klen = malloc(NSTREAMS), *ilen = malloc((size_t)TENANTS);
        if (!keys || !ids || !klen || !ilen)
            exit(1);
        for (int t = 0; t < TENANTS; t++) {
            ilen[t] = (uint8_t)snprintf(ids[t], 32, "tenant-%d", t);
            for (int j = 0; j < PER_TENANT; j++)
                klen[t * PER_TENANT + j] = (uint8_t)snprintf(
                    keys[t * PER_TENANT + j], 64, "%s.%d|host:web-%02d|env:prod", name, j, j);
        }
        nx_update u;
        memset(&u, 0, sizeof(u));
        u.weight = 1;
        base = end + 1000;
        double t0 = now_s();
        /* 9M events are plenty for a loop this slow (a lookup miss each) */
        size_t kend = nev - warm > 9000000 ? warm + 9000000 : nev;
        for (size_t i = warm; i < kend; i++) {
            const bev *x = &ev[i % pool_n];
            uint32_t sidx = x->stream, tidx = sidx / PER_TENANT;
            nx_tenant *tn = nx_engine_tenant_find(e, ids[tidx], ilen[tidx]);
            nx_stream *s;
            if (!tn || nx_tenant_stream(tn, keys[sidx], klen[sidx], NX_TYPE_COUNTER, &s))
                exit(1);
            u.value = x->value;
            if (nx_stream_update(s, &u, base + (int64_t)i * 1000 / EVENTS_PER_SEC))
                exit(1);
        }
        double kt = now_s() - t0;
        printf("counter_updates_keyed %.2f Mupdates/s/core\n", (double)(kend - warm) / kt / 1e6);
        /* the same through the batch-lookup API in chunks of 32, as
         * nexusd's StatsD apply path (src/server/nx_apply.c) does */
        enum { CHUNK = 32, AHEAD = 4 };
        nx_tenant *ct[CHUNK];
        uint64_t ch[CHUNK];
        base = base + (int64_t)kend * 1000 / EVENTS_PER_SEC + 1000;
        t0 = now_s();
        for (size_t c0 = warm; c0 < kend; c0 += CHUNK) {
            size_t n = kend - c0 < CHUNK ? kend - c0 : CHUNK;
            for (size_t k = 0; k < n; k++) {
                uint32_t sidx = ev[(c0 + k) % pool_n].stream, tidx = sidx / PER_TENANT;
                if (!(ct[k] = nx_engine_tenant_find(e, ids[tidx], ilen[tidx])))
                    exit(1);
                ch[k] = nx_stream_key_hash(keys[sidx], klen[sidx]);
                nx_tenant_stream_prefetch(ct[k], ch[k]);
            }
            for (size_t k = 0; k < n + AHEAD; k++) {
                if (k < n) {
                    uint32_t sidx = ev[(c0 + k) % pool_n].stream;
                    nx_tenant_stream_prefetch_found(ct[k], ch[k], NX_TYPE_COUNTER, klen[sidx]);
                }
                if (k < AHEAD)
                    continue;
                size_t j = k - AHEAD, i = c0 + j;
                const bev *x = &ev[i % pool_n];
                nx_stream *s;
                if (nx_tenant_stream_hashed(ct[j], keys[x->stream], klen[x->stream], ch[j],
                                            NX_TYPE_COUNTER, &s))
                    exit(1);
                u.value = x->value;
                if (nx_stream_update(s, &u, base + (int64_t)i * 1000 / EVENTS_PER_SEC))
                    exit(1);
            }
        }
        kt = now_s() - t0;
        printf("counter_updates_keyed_batch %.2f Mupdates/s/core\n",
               (double)(kend - warm) / kt / 1e6);
        free(keys);
        free(ids);
        free(klen);
        free(ilen);
        /* idle: 25 h later every window and tier has expired */
        int64_t later = base + 25ll * 3600 * 1000;
        for (int i = 0; i < NSTREAMS; i++) {
            nx_summary out;
            if (nx_stream_read(ss[i], 60, later, &out))
                exit(1);
            nx_summary_free(&out);
        }
        *idle_bytes = engine_stream_bytes(e);
        printf("counter_idle_stream_bytes %" PRIu64 " bytes\n", *idle_bytes);
    }
    free(ev);
    free(ss);
    nx_engine_destroy(e);
    return rate;
}

/* Bytes per stream once the longest window is full: 100 streams of the type
 * fed 30 events per second for 3,900 simulated seconds (1h window + its
 * sub-bucket), members from the same 20,000. The active figures above are
 * taken ~160 s in, long before a 1 h window fills. */
static void steady_bytes(nx_type type, const char *name)
{
    nx_engine *e;
    nx_tenant *t;
    if (nx_engine_create(NULL, &e) || nx_engine_tenant(e, "steady", 6, &t))
        exit(1);
    enum { NS = 100, RATE = 30, SECS = 3900 };
    nx_stream *ss[NS];
    for (int i = 0; i < NS; i++) {
        char key[32];
        int kn = snprintf(key, sizeof(key), "%s.%d", name, i);
        if (nx_tenant_stream(t, key, (size_t)kn, type, &ss[i]))
            exit(1);
    }
    nx_update u;
    memset(&u, 0, sizeof(u));
    u.weight = 1;
    bev ev;
    for (int sec = 0; sec < SECS; sec++)
        for (int k = 0; k < RATE; k++)
            for (int i = 0; i < NS; i++) {
                gen(&ev, 1, type);
                u.value = ev.value;
                u.member = members[ev.member];
                u.member_len = member_len[ev.member];
                if (nx_stream_update(ss[i], &u, T0 + sec * 1000ll + k * (1000 / RATE)))
                    exit(1);
            }
    for (int i = 0; i < NS; i++) { /* a read recounts the bytes after a flush */
        nx_summary out;
        if (nx_stream_read(ss[i], 60, T0 + SECS * 1000ll, &out))
            exit(1);
        nx_summary_free(&out);
    }
    printf("%s_steady_stream_bytes %" PRIu64 " bytes\n", name, engine_stream_bytes(e));
    nx_engine_destroy(e);
}

/* The ceilings' blocks: NSTREAMS zeroed, 64-byte aligned blocks of `bytes`
 * each, allocated one by one in stream order (as the engine's streams are). */
static char **ceiling_blocks(size_t bytes)
{
    char **blk = malloc(sizeof(char *) * NSTREAMS);
    if (!blk)
        exit(1);
    for (int i = 0; i < NSTREAMS; i++) {
        if (!(blk[i] = aligned_alloc(64, bytes)))
            exit(1);
        memset(blk[i], 0, bytes);
    }
    return blk;
}

/* The ceilings' events: nev of the type, as the engine runs get them. */
static bev *ceiling_events(size_t nev, nx_type type)
{
    bev *ev = malloc(sizeof(bev) * nev);
    if (!ev)
        exit(1);
    gen(ev, nev, type);
    return ev;
}

static void ceiling_free(char **blk, bev *ev)
{
    for (int i = 0; i < NSTREAMS; i++)
        free(blk[i]);
    free(blk);
    free(ev);
}

/* The memory ceiling of the counter path: the same random access pattern
 * over NSTREAMS separately allocated 320-byte blocks (a stream's size, in
 * the order streams are created), each event reading and writing two cache
 * lines of its block (as a counter update touches the stream's first two),
 * prefetched 16 events ahead as in run(), and nothing else. No engine can
 * apply these events faster on this machine than this loop. */
static double memory_ceiling(size_t nev)
{
    enum { BLOCK = 320 };
    char **blk = ceiling_blocks(BLOCK);
    bev *ev = ceiling_events(nev, NX_TYPE_COUNTER);
    double rate = 0;
    for (int pass = 0; pass < 2; pass++) { /* the first pass warms up */
        double t0 = now_s();
        for (size_t i = 0; i < nev; i++) {
            if (i + 16 < nev) {
                __builtin_prefetch(blk[ev[i + 16].stream], 1);
                __builtin_prefetch(blk[ev[i + 16].stream] + 64, 1);
            }
            char *b = blk[ev[i].stream];
            *(double *)(b + 16) += ev[i].value; /* line 0: the open bucket's sum */
            *(uint64_t *)(b + 64 + 24) += 1;    /* line 1: the event count */
        }
        double dt = now_s() - t0;
        rate = (double)nev / dt / 1e6;
    }
    printf("counter_memory_ceiling %.2f Mupdates/s/core\n", rate);
    ceiling_free(blk, ev);
    return rate;
}

/* The memory ceiling of the distribution path: what the machine allows a
 * per-stream dense DDSketch at best. Each stream is one block: 3 lines (the
 * stream struct's hot lines, prefetched 16 events ahead like the real loop)
 * followed right away by 256 bins (a steady-state DDSketch at alpha 1% spans
 * ~150-250 bins for these values). An event updates moments in line 0 and
 * adds 1 to its value's bin: one random line per event that no prefetch 16
 * events ahead can name (its address needs the value and the block), as in
 * the engine, but with no sketch struct, no buffer, no bucket close, no
 * window fold and ~1/60 of the engine's memory per stream (fewer TLB
 * misses). It bounds a design that puts each value into its bin as it
 * comes. The engine buffers a second's bins and puts them in together
 * (docs/engine.md, "The bin log"): at pace 30 it stays below this, at
 * pace 150 (five times the bins per stream-second) it goes past it
 * (12.49M against 9.89M in the thirty-first session's run). */
static double distribution_memory_ceiling(size_t nev)
{
    enum { HDR = 192, NBINS = 256 };
    char **blk = ceiling_blocks(HDR + NBINS * sizeof(double));
    bev *ev = ceiling_events(nev, NX_TYPE_DISTRIBUTION);
    const double inv_ln_gamma = 1.0 / log((1 + 0.01) / (1 - 0.01));
    double rate = 0;
    for (int pass = 0; pass < 2; pass++) { /* the first pass warms up */
        double t0 = now_s();
        for (size_t i = 0; i < nev; i++) {
            if (i + 16 < nev)
                for (int l = 0; l < HDR; l += 64)
                    __builtin_prefetch(blk[ev[i + 16].stream] + l, 1);
            char *b = blk[ev[i].stream];
            double v = ev[i].value, *m = (double *)(b + 16);
            m[0] += 1;     /* count */
            m[1] += v;     /* sum */
            m[2] += v * v; /* (stands for the Welford update) */
            int32_t key = (int32_t)ceil(log(v) * inv_ln_gamma);
            ((double *)(b + HDR))[(uint32_t)key % NBINS] += 1;
        }
        double dt = now_s() - t0;
        rate = (double)nev / dt / 1e6;
    }
    printf("distribution_memory_ceiling %.2f Mupdates/s/core\n", rate);
    ceiling_free(blk, ev);
    return rate;
}

/* nexusd's shards allocate from jemalloc arenas over memory madvised
 * MADV_HUGEPAGE (src/server/nx_prefault.c): their streams, windows and
 * sketches sit on 2 MiB pages. The bench measures the engine the same way:
 * it re-executes itself once with glibc's malloc on transparent huge pages
 * (the glibc.malloc.hugetlb=1 tunable, glibc >= 2.35). On 4 KiB pages every
 * random stream access also misses the TLB: counters ~19M instead of ~23M
 * updates/s in the same session. NX_BENCH_THP=0 keeps 4 KiB pages. */
static void heap_on_thp(char **argv)
{
    const char *want = getenv("NX_BENCH_THP"), *t = getenv("GLIBC_TUNABLES");
    if ((want && !strcmp(want, "0")) || (t && strstr(t, "glibc.malloc.hugetlb")))
        return;
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s%sglibc.malloc.hugetlb=1", t ? t : "", t ? ":" : "");
    if (n < 0 || (size_t)n >= sizeof buf || setenv("GLIBC_TUNABLES", buf, 1))
        return;
    char self[4096]; /* the real path: exec'ing /proc/self/exe renames the process "exe" */
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0) {
        self[len] = 0;
        execv(self, argv);
    }
    fprintf(stderr, "bench_engine: re-exec on huge pages failed; 4 KiB pages\n");
}

/* The memory ceiling of the set path: what the machine allows a set event
 * at best with the state a set stream must keep. Each set stream is a
 * block of 3 header lines (prefetched 16 events ahead, as in run()), a
 * 16 KiB dense HLL (precision 14: all-time's distinct count), a 32 KiB
 * table standing for the sliding HLL (one 8-byte register pair per event,
 * as nx_shll's dense overflow) and a 64-counter top-k (a 128-slot table and
 * 32-byte counters). An event's member is hashed (XXH3) 8 events ahead and
 * the lines its hash names are prefetched; the event then touches one
 * random line of the sliding HLL's (the pair) and of the top-k's (the
 * table slot and its counter). All-time's HLL takes up its 16 KiB but no
 * event touches it: since the twenty-fifth session it is the sliding HLL's
 * grave, filled by folds every half horizon (docs/engine.md, "All-time
 * through the grave"); until the thirty-first session this loop also
 * raised one of its registers per event (6.6-10.7M/s on the EPYC VMs).
 * No bucket close, no window, no merge. Like the distribution ceiling it
 * bounds the plainest design, not every one (the engine logs a second's
 * members and tallies them together); the engine has stayed well below
 * it. As many streams as the set run (10,000 at its default 1,000
 * tenants: set_tenants()). */
enum { SC_HDR = 192, SC_HLL = 16384, SC_SHLL = 32768, SC_TABLE = 128, SC_ITEMS = 64,
       SC_T_OFF = SC_HDR + SC_HLL + SC_SHLL, SC_I_OFF = SC_T_OFF + SC_TABLE * 4 };

/* Hashes event x's member and prefetches the lines the hash names. */
static uint64_t set_ceiling_ahead(char **blk, const bev *x)
{
    const char *b = blk[x->stream];
    uint64_t h = XXH3_64bits(members[x->member], member_len[x->member]);
    __builtin_prefetch(b + SC_HDR + SC_HLL + ((h >> 20) & (SC_SHLL / 8 - 1)) * 8, 1);
    __builtin_prefetch(b + SC_T_OFF + ((uint32_t)h & (SC_TABLE - 1)) * 4, 1);
    return h;
}

/* Set runs and the set ceiling use 1,000 tenants unless NX_BENCH_TENANTS
 * says otherwise: ~250 KB per set stream ~190 s in, 100,000 of them would
 * not fit this 24 GiB machine. */
static void set_tenants(void)
{
    if (!getenv("NX_BENCH_TENANTS"))
        TENANTS = 1000;
}

static double set_memory_ceiling(size_t nev)
{
    char **blk = ceiling_blocks(SC_I_OFF + SC_ITEMS * 32);
    bev *ev = ceiling_events(nev, NX_TYPE_SET);
    double rate = 0;
    for (int pass = 0; pass < 2; pass++) { /* the first pass warms up */
        double t0 = now_s();
        uint64_t hr[16]; /* hashes of events i .. i + 8 */
        for (size_t a = 0; a < 8 && a < nev; a++)
            hr[a] = set_ceiling_ahead(blk, &ev[a]);
        for (size_t i = 0; i < nev; i++) {
            if (i + 16 < nev)
                for (int l = 0; l < SC_HDR; l += 64)
                    __builtin_prefetch(blk[ev[i + 16].stream] + l, 1);
            if (i + 8 < nev)
                hr[(i + 8) & 15] = set_ceiling_ahead(blk, &ev[i + 8]);
            char *b = blk[ev[i].stream];
            uint64_t h = hr[i & 15];
            uint8_t rank = (uint8_t)(__builtin_clzll(h << 14 | 1) + 1);
            uint64_t *pair = (uint64_t *)(b + SC_HDR + SC_HLL) + ((h >> 20) & (SC_SHLL / 8 - 1));
            *pair = (*pair & ~0xFFull) | rank;
            uint32_t *slot = (uint32_t *)(b + SC_T_OFF) + ((uint32_t)h & (SC_TABLE - 1));
            uint32_t it = *slot ? *slot - 1 : (uint32_t)(h >> 32) % SC_ITEMS;
            *slot = it + 1;
            double *count = (double *)(b + SC_I_OFF + it * 32);
            *count += 1;
            ((double *)(b + 16))[0] += 1; /* the open second's count */
        }
        double dt = now_s() - t0;
        rate = (double)nev / dt / 1e6;
    }
    printf("set_memory_ceiling %.2f Mupdates/s/core\n", rate);
    ceiling_free(blk, ev);
    return rate;
}

/* The same run at 150 events per stream-second: what one core taking 15M
 * updates/s over 100,000 streams sees in real time (the engine's cost is
 * part per event, part per stream-second, so the rate depends on the pace).
 * Only when NX_BENCH_PACE does not set the pace of every run. */
static double bench_at_pace150(nx_type type, const char *name, double timed_s)
{
    if (getenv("NX_BENCH_PACE"))
        return 0;
    PACE = 150;
    double rate = bench_type(type, name, timed_s, NULL);
    PACE = 30;
    return rate;
}

/* Issue 2's targets for this benchmark (updates/s/core, and the bytes of an
 * idle counter stream). */
#define TARGET_COUNTER 30.0
#define TARGET_DISTRIBUTION 15.0
#define TARGET_SET 15.0
#define TARGET_IDLE_BYTES 512.0

/* One `<figure>_of_target` line: the figure as a share of its target (a
 * rate meets it at >= 1, a size at <= 1); nothing for a figure not run. */
static void print_of_target(const char *figure, double value, double target)
{
    if (value > 0)
        printf("%s_of_target %.2f x\n", figure, value / target);
}

int main(int argc, char **argv)
{
    (void)argc;
    heap_on_thp(argv);
    const char *sc = getenv("NX_BENCH_SCALE");
    double scale = sc ? atof(sc) : 1;
    if (!(scale > 0))
        scale = 1;
    double timed_s = TIMED_S * scale;
    size_t nev = (size_t)(9e6 * scale);
    setvbuf(stdout, NULL, _IOLBF, 0);
    {
        const char *t = getenv("GLIBC_TUNABLES");
        printf("heap_huge_pages %s\n", t && strstr(t, "glibc.malloc.hugetlb=1") ? "madvise" : "off");
    }
    if (getenv("NX_BENCH_TENANTS") && atoi(getenv("NX_BENCH_TENANTS")) > 0)
        TENANTS = atoi(getenv("NX_BENCH_TENANTS"));
    if (getenv("NX_BENCH_PACE") && atoi(getenv("NX_BENCH_PACE")) > 0)
        PACE = atoi(getenv("NX_BENCH_PACE"));
    if (getenv("NX_BENCH_WARM_S") && atoi(getenv("NX_BENCH_WARM_S")) >= 0)
        WARM_S = atoi(getenv("NX_BENCH_WARM_S"));
    if (getenv("NX_BENCH_WARM_RUN_S") && atoi(getenv("NX_BENCH_WARM_RUN_S")) > 0)
        WARM_RUN_S = atoi(getenv("NX_BENCH_WARM_RUN_S"));
    for (int i = 0; i < NMEMBERS; i++)
        member_len[i] = (uint32_t)snprintf(members[i], sizeof(members[i]), "user%d", i);
    const char *only = getenv("NX_BENCH_ONLY");
    const char *steady = getenv("NX_BENCH_STEADY");
    if (steady && !strcmp(steady, "only"))
        goto steady_only;
    /* the figures that issue 2 sets targets for, and their ceilings */
    double counter = 0, counter_ceil = 0, dist = 0, dist150 = 0, dist_ceil = 0, set = 0,
           set150 = 0, set_ceil = 0;
    uint64_t idle = 0;
    if (only && !strcmp(only, "ceilings")) { /* the ceilings alone (~1 min) */
        counter_ceil = memory_ceiling(nev);
        dist_ceil = distribution_memory_ceiling(nev);
        set_tenants();
        set_ceil = set_memory_ceiling(nev);
        goto targets;
    }
    if (!only || !strcmp(only, "counter")) {
        counter = bench_type(NX_TYPE_COUNTER, "counter", timed_s, &idle);
        counter_ceil = memory_ceiling(nev);
    }
    if (!only || !strcmp(only, "distribution")) {
        dist = bench_type(NX_TYPE_DISTRIBUTION, "distribution", timed_s, NULL);
        dist_ceil = distribution_memory_ceiling(nev);
        dist150 = bench_at_pace150(NX_TYPE_DISTRIBUTION, "distribution_pace150", timed_s);
    }
    if (!only || !strcmp(only, "set")) {
        set_tenants();
        printf("set_tenants %d\n", TENANTS);
        set = bench_type(NX_TYPE_SET, "set", timed_s, NULL);
        set_ceil = set_memory_ceiling(nev);
        set150 = bench_at_pace150(NX_TYPE_SET, "set_pace150", timed_s);
    }
targets:
    print_of_target("counter_updates", counter, TARGET_COUNTER);
    print_of_target("counter_memory_ceiling", counter_ceil, TARGET_COUNTER);
    print_of_target("counter_idle_stream_bytes", (double)idle, TARGET_IDLE_BYTES);
    print_of_target("distribution_updates", dist, TARGET_DISTRIBUTION);
    print_of_target("distribution_pace150_updates", dist150, TARGET_DISTRIBUTION);
    print_of_target("distribution_memory_ceiling", dist_ceil, TARGET_DISTRIBUTION);
    print_of_target("set_updates", set, TARGET_SET);
    print_of_target("set_pace150_updates", set150, TARGET_SET);
    print_of_target("set_memory_ceiling", set_ceil, TARGET_SET);
steady_only:
    if (steady) {
        if (!only || !strcmp(only, "counter"))
            steady_bytes(NX_TYPE_COUNTER, "counter");
        if (!only || !strcmp(only, "distribution"))
            steady_bytes(NX_TYPE_DISTRIBUTION, "distribution");
        if (!only || !strcmp(only, "set"))
            steady_bytes(NX_TYPE_SET, "set");
    }
    return 0;
}
