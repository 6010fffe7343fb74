/*
 * redis_driver.c — nx-redis-driver: sends the benchmark workload of
 * bench/workload.h to a Redis server the way a Redis user would keep the same
 * summaries, so bench/compare can measure Redis on exactly the events that
 * nx-loadgen sends to nexusd and statsd.
 *
 * Commands, one per event (the keys a Redis user would choose):
 *   counter  HINCRBY c:<tenant> <metric> <value>      one hash per tenant
 *   timer    RPUSH   ms:<tenant>:<metric> <value>     every value kept, so
 *                                                      p50/p99 are exact at
 *                                                      read time (LRANGE+sort)
 *   set      PFADD   s:<tenant>:<metric> <member>     HyperLogLog distinct
 *
 * Pipelining: each connection thread claims chunks of --pipeline events from
 * one atomic counter, formats the chunk as RESP into one buffer, appends it to
 * hiredis's output buffer and reads the previous chunk's replies while Redis
 * works on this one (two chunks in flight). A claimed chunk is always
 * completed, so the events applied are exactly indices [0, sent) — the same
 * prefix nx-loadgen --expect-only --lines <sent> describes.
 *
 * Output: "name value unit" lines (events, elapsed, rate, error replies).
 * Trade-off: RESP is formatted by hand (no printf per command) so the client
 * is not the bottleneck on a 2-core machine; replies are parsed by hiredis.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "workload.h"

#define RD_MAX_CONNS 64

typedef struct rd_shared {
    const nxw *w;
    const char *host;
    int port;
    uint64_t limit;
    uint32_t pipeline;
    atomic_uint_fast64_t next_chunk;
} rd_shared;

typedef struct rd_thread {
    rd_shared *sh;
    pthread_t tid;
    uint64_t events, err_replies;
    int rc;
} rd_thread;

static double rd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Appends one RESP bulk string. */
static inline char *rd_bulk(char *p, const char *s, size_t n)
{
    *p++ = '$';
    p += nxw_utoa(p, (uint32_t)n);
    *p++ = '\r', *p++ = '\n';
    memcpy(p, s, n);
    p += n;
    *p++ = '\r', *p++ = '\n';
    return p;
}

/* Formats event e as one RESP command at p; returns the new end. */
static char *rd_format(const nxw *w, const nxw_event *e, char *p)
{
    char key[96], val[24];
    const char *mn = w->mname[e->metric];
    size_t mlen = (size_t)w->mname_len[e->metric] - 1; /* without ':' */
    size_t vlen = (size_t)nxw_value_text(w, e, val);
    size_t kl;
    switch (e->type) {
    case NXW_COUNTER:
        kl = 2;
        memcpy(key, "c:", 2);
        memcpy(key + kl, w->tname[e->tenant], w->tname_len[e->tenant]);
        kl += w->tname_len[e->tenant];
        memcpy(p, "*4\r\n$7\r\nHINCRBY\r\n", 17);
        p += 17;
        p = rd_bulk(p, key, kl);
        p = rd_bulk(p, mn, mlen);
        return rd_bulk(p, val, vlen);
    case NXW_TIMER:
        memcpy(p, "*3\r\n$5\r\nRPUSH\r\n", 15);
        p += 15;
        memcpy(key, "ms:", 3);
        kl = 3;
        break;
    default:
        memcpy(p, "*3\r\n$5\r\nPFADD\r\n", 15);
        p += 15;
        memcpy(key, "s:", 2);
        kl = 2;
        break;
    }
    memcpy(key + kl, w->tname[e->tenant], w->tname_len[e->tenant]);
    kl += w->tname_len[e->tenant];
    key[kl++] = ':';
    memcpy(key + kl, mn, mlen);
    kl += mlen;
    p = rd_bulk(p, key, kl);
    return rd_bulk(p, val, vlen);
}

/* Reads n replies; counts error replies. Returns 0 or -1 on a connection error. */
static int rd_read_replies(redisContext *c, uint32_t n, rd_thread *th)
{
    for (uint32_t k = 0; k < n; k++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK || !r) {
            fprintf(stderr, "nx-redis-driver: %s\n", c->errstr);
            return -1;
        }
        if (((redisReply *)r)->type == REDIS_REPLY_ERROR) {
            if (th->err_replies++ == 0)
                fprintf(stderr, "nx-redis-driver: error reply: %s\n", ((redisReply *)r)->str);
        }
        freeReplyObject(r);
    }
    return 0;
}

static void *rd_run(void *arg)
{
    rd_thread *th = arg;
    rd_shared *sh = th->sh;
    const nxw *w = sh->w;
    redisContext *c = redisConnect(sh->host, sh->port);
    if (!c || c->err) {
        fprintf(stderr, "nx-redis-driver: connect %s:%d: %s\n", sh->host, sh->port,
                c ? c->errstr : "out of memory");
        th->rc = -1;
        if (c)
            redisFree(c);
        return NULL;
    }
    char *buf = malloc((size_t)sh->pipeline * 160);
    if (!buf) {
        th->rc = -1;
        redisFree(c);
        return NULL;
    }
    uint32_t pending = 0, pending_events = 0;
    for (;;) {
        uint64_t k = atomic_fetch_add(&sh->next_chunk, 1);
        uint64_t start = k * sh->pipeline;
        if (start >= sh->limit)
            break;
        uint64_t end = start + sh->pipeline < sh->limit ? start + sh->pipeline : sh->limit;
        char *p = buf;
        for (uint64_t i = start; i < end; i++) {
            nxw_event e;
            nxw_event_at(w, i, &e);
            p = rd_format(w, &e, p);
            assert((size_t)(p - buf) <= (size_t)sh->pipeline * 160);
        }
        if (redisAppendFormattedCommand(c, buf, (size_t)(p - buf)) != REDIS_OK) {
            th->rc = -1;
            break;
        }
        /* Reading the previous chunk's replies first flushes this chunk. */
        if (pending && rd_read_replies(c, pending, th) < 0) {
            th->rc = -1;
            break;
        }
        th->events += pending_events;
        pending = pending_events = (uint32_t)(end - start);
    }
    if (th->rc == 0 && pending) {
        if (rd_read_replies(c, pending, th) < 0)
            th->rc = -1;
        else
            th->events += pending_events;
    }
    free(buf);
    redisFree(c);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 6379, conns = 1;
    uint64_t seed = 1, lines = 0;
    uint32_t tenants = 10000, metrics = 10, dgram_bytes = 1400, lpd = 0, pipeline = 1000;
    double zipf = 1.0;
    static const struct option lo[] = {
        {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'}, {"seed", 1, 0, 's'},
        {"tenants", 1, 0, 'T'}, {"metrics", 1, 0, 'M'}, {"zipf", 1, 0, 'z'},
        {"dgram-bytes", 1, 0, 'd'}, {"lines-per-dgram", 1, 0, 'L'}, {"lines", 1, 0, 'n'},
        {"pipeline", 1, 0, 'P'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (o) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'T': tenants = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'M': metrics = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'z': zipf = strtod(optarg, NULL); break;
        case 'd': dgram_bytes = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'L': lpd = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': lines = strtoull(optarg, NULL, 10); break;
        case 'P': pipeline = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'h':
            printf("usage: nx-redis-driver --lines N [--host H] [--port P] [--conns C]\n"
                   "       [--pipeline P] [--seed S] [--tenants T] [--metrics M] [--zipf S]\n"
                   "       [--dgram-bytes B | --lines-per-dgram L]  (same workload as nx-loadgen)\n");
            return 0;
        default: return 2;
        }
    }
    if (!lines || conns < 1 || conns > RD_MAX_CONNS || pipeline < 1 || pipeline > 1000000) {
        fprintf(stderr, "nx-redis-driver: need --lines N, 1 <= --conns <= 64, --pipeline >= 1\n");
        return 2;
    }
    nxw w;
    if (nxw_init(&w, seed, tenants, metrics, 1, zipf) < 0) {
        fprintf(stderr, "nx-redis-driver: bad workload options or out of memory\n");
        return 2;
    }
    w.group = lpd ? lpd : nxw_lines_per_dgram(&w, dgram_bytes);
    if (!w.group) {
        fprintf(stderr, "nx-redis-driver: no line fits in --dgram-bytes\n");
        nxw_free(&w);
        return 2;
    }
    rd_shared sh = {.w = &w, .host = host, .port = port, .limit = lines, .pipeline = pipeline};
    rd_thread th[RD_MAX_CONNS];
    memset(th, 0, sizeof th);
    double t0 = rd_now();
    for (int i = 0; i < conns; i++) {
        th[i].sh = &sh;
        if (pthread_create(&th[i].tid, NULL, rd_run, &th[i]) != 0) {
            fprintf(stderr, "nx-redis-driver: pthread_create failed\n");
            return 1;
        }
    }
    uint64_t events = 0, errs = 0;
    int rc = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i].tid, NULL);
        events += th[i].events;
        errs += th[i].err_replies;
        rc |= th[i].rc;
    }
    double el = rd_now() - t0;
    printf("redis_conns %d connections\n", conns);
    printf("redis_pipeline %u commands\n", pipeline);
    printf("lines_per_dgram %u lines\n", w.group);
    printf("events_applied %llu events\n", (unsigned long long)events);
    printf("error_replies %llu replies\n", (unsigned long long)errs);
    printf("elapsed %.3f s\n", el);
    printf("apply_rate %.0f events/s\n", el > 0 ? (double)events / el : 0);
    nxw_free(&w);
    return rc || errs ? 1 : 0;
}
