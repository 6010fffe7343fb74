/*
 * loadgen.c — nx-loadgen, the shared load generator of the benchmarks
 * (bench/ingest.sh for nexusd alone, bench/compare against statsd and Redis).
 *
 * What it does:
 *   - sends the seeded workload of bench/workload.h (T tenants x M metrics:
 *     counters, heavy-tailed timers, Zipf-ish sets, DogStatsD tag
 *     "#tenant:tNNNN") as StatsD lines over UDP, many lines per datagram
 *     (one tenant per datagram, like a real client; --mix-tenants mixes),
 *     through sendmmsg in batches, from one or more threads, at an offered
 *     rate (per-thread pacing, ~1 ms bursts) or as fast as possible, for a
 *     duration and/or a number of lines;
 *   - optionally measures HTTP query latency while it sends (--query URL):
 *     one keep-alive connection, GET at a fixed rate, p50/p99/max;
 *   - computes the EXACT aggregates of the events it sent (--expect FILE,
 *     JSON) so that bench/compare can score accuracy: totals by type,
 *     streams touched, per-stream count/sum/min/max, exact p50/p99 (as the
 *     [lo, hi] pair of sample values around rank q*(n-1)) and exact distinct
 *     counts for a sample of tenants' streams, and optionally per metric
 *     name across tenants (--expect-by-name, for systems without tenants).
 *
 * Determinism: events are a pure function of their index (workload.h). Work
 * is handed out in chunks through one atomic counter, and a claimed chunk is
 * always sent completely, so the events sent are exactly indices [0, sent)
 * whatever the thread count or when the run stopped. The expected-aggregate
 * pass regenerates that prefix after the run, so sending pays nothing for it.
 *
 * Output: one "name value unit" line per figure on stdout; errors on stderr.
 *
 * Trade-offs: UDP to loopback blocks in the kernel when the receiver is slow
 * only via the socket send buffer; what the receiver drops is its own loss,
 * which is the point (loss = sent - what the receiver says it received).
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

#define LG_MAX_BATCH 64
#define LG_MAX_THREADS 64
#define LG_SAMPLE_MAX 16

typedef struct lg_opts {
    const char *host, *port;
    uint64_t seed;
    uint32_t tenants, metrics;
    double zipf;
    bool mix_tenants;
    uint32_t dgram_bytes, lines_per_dgram;
    double rate;           /* lines/s, 0 = as fast as possible */
    double duration;       /* s, 0 = until --lines */
    uint64_t lines;        /* 0 = until --duration */
    int threads;
    int batch;             /* datagrams per sendmmsg */
    const char *expect_path;
    bool expect_only, expect_by_name;
    const char *query_url, *query_header;
    double query_rate, query_delay;
    bool query_print;
    int query_fifo; /* SCHED_FIFO priority of the query thread, 0 = as started */
} lg_opts;

typedef struct lg_shared {
    const lg_opts *o;
    const nxw *w;
    uint64_t limit;                /* events [0, limit) at most */
    uint32_t chunk_dgrams;
    atomic_uint_fast64_t next_chunk;
    atomic_int stop;
    atomic_int finished;            /* sender threads done */
} lg_shared;

typedef struct lg_thread {
    lg_shared *sh;
    int idx, fd;
    pthread_t tid;
    uint64_t lines, dgrams, bytes, refused, errors;
    int rc;
} lg_thread;

static double lg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void lg_sleep_until(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Connected UDP or TCP socket to host:port, or -1 (message on stderr). */
static int lg_connect(const char *host, const char *port, int socktype)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = socktype}, *res, *ai;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "nx-loadgen: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "nx-loadgen: connect %s:%s: %s\n", host, port, strerror(errno));
    return fd;
}

/* ---- sender ------------------------------------------------------------ */

static void *lg_sender(void *arg)
{
    lg_thread *th = arg;
    lg_shared *sh = th->sh;
    const nxw *w = sh->w;
    const uint32_t group = w->group, nd = sh->chunk_dgrams;
    const size_t stride = sh->o->dgram_bytes + 2 * NXW_MAX_LINE + 64;
    char *buf = malloc(stride * nd);
    struct mmsghdr *msgs = calloc(nd, sizeof *msgs);
    struct iovec *iov = calloc(nd, sizeof *iov);
    if (!buf || !msgs || !iov) {
        fprintf(stderr, "nx-loadgen: out of memory\n");
        th->rc = -1;
        free(buf), free(msgs), free(iov);
        return NULL;
    }
    const uint64_t chunk_lines = (uint64_t)nd * group;
    const double per_thread_rate = sh->o->rate > 0 ? sh->o->rate / sh->o->threads : 0;
    const double t0 = lg_now();
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        uint64_t k = atomic_fetch_add(&sh->next_chunk, 1);
        uint64_t start = k * chunk_lines;
        if (start >= sh->limit)
            break;
        uint64_t end = start + chunk_lines < sh->limit ? start + chunk_lines : sh->limit;
        uint32_t n = 0;
        for (uint64_t g0 = start; g0 < end; g0 += group, n++) {
            assert(n < nd);
            uint64_t g1 = g0 + group < end ? g0 + group : end;
            uint32_t tenant = sh->o->mix_tenants ? 0 : nxw_group_tenant(w, g0 / group);
            char *p = buf + stride * n, *s = p;
            for (uint64_t i = g0; i < g1; i++) {
                nxw_event e;
                if (sh->o->mix_tenants)
                    nxw_event_at_t(w, i, nxw_group_tenant(w, i), &e);
                else
                    nxw_event_at_t(w, i, tenant, &e);
                p += nxw_format_line(w, &e, p);
            }
            iov[n].iov_base = s;
            iov[n].iov_len = (size_t)(p - s - 1); /* drop the last '\n' */
            memset(&msgs[n].msg_hdr, 0, sizeof msgs[n].msg_hdr);
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            th->bytes += iov[n].iov_len;
        }
        uint32_t done = 0;
        while (done < n) {
            int r = sendmmsg(th->fd, msgs + done, n - done, 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == ECONNREFUSED) { /* nobody listening: that datagram is lost */
                    th->refused++;
                    continue;
                }
                if (errno == ENOBUFS || errno == EAGAIN) {
                    usleep(50);
                    continue;
                }
                th->errors++;
                done++; /* count it as lost; never loop forever */
                continue;
            }
            done += (uint32_t)r;
        }
        th->dgrams += n;
        th->lines += end - start;
        if (per_thread_rate > 0) {
            double due = t0 + (double)th->lines / per_thread_rate;
            if (due > lg_now())
                lg_sleep_until(due);
        }
    }
    free(buf), free(msgs), free(iov);
    atomic_fetch_add(&sh->finished, 1);
    return NULL;
}

/* ---- HTTP query latency --------------------------------------------------- */

typedef struct lg_query {
    const lg_opts *o;
    lg_shared *sh;
    char host[256], port[16], path[2048];
    double *lat;     /* seconds */
    size_t n, cap;
    uint64_t errors, non200, reconnects;
    char *last_body;
    pthread_t tid;
    _Atomic bool fifo_on; /* the thread got --query-fifo */
} lg_query;

static int lg_parse_url(lg_query *q, const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hp[sizeof q->host];
    if (hl >= sizeof hp)
        return -1;
    memcpy(hp, p, hl);
    hp[hl] = 0;
    char *colon = strrchr(hp, ':');
    if (colon) {
        *colon = 0;
        snprintf(q->port, sizeof q->port, "%s", colon + 1);
    } else {
        snprintf(q->port, sizeof q->port, "80");
    }
    memcpy(q->host, hp, sizeof q->host);
    snprintf(q->path, sizeof q->path, "%s", slash ? slash : "/");
    return 0;
}

/* One GET on a keep-alive connection. Returns the status, or -1 on a
 * connection error (the caller reconnects). Sets *close_after. */
static int lg_http_get(lg_query *q, int fd, char *rbuf, size_t rcap, bool *close_after)
{
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: application/json\r\n%s%s"
                     "\r\n",
                     q->path, q->host, q->port, q->o->query_header ? q->o->query_header : "",
                     q->o->query_header ? "\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof req)
        return -1;
    for (int off = 0; off < n;) {
        ssize_t r = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (r <= 0)
            return -1;
        off += (int)r;
    }
    size_t have = 0;
    char *body = NULL;
    long clen = -1;
    bool chunked = false;
    int status = -1;
    *close_after = false;
    for (;;) {
        if (have + 1 >= rcap)
            return -1;
        ssize_t r = recv(fd, rbuf + have, rcap - have - 1, 0);
        if (r <= 0)
            return body && clen < 0 && !chunked ? status : -1;
        have += (size_t)r;
        rbuf[have] = 0;
        if (!body) {
            char *e = strstr(rbuf, "\r\n\r\n");
            if (!e)
                continue;
            body = e + 4;
            if (sscanf(rbuf, "HTTP/1.%*d %d", &status) != 1)
                return -1;
            for (char *h = strstr(rbuf, "\r\n"); h && h < e; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "content-length:", 15) == 0)
                    clen = strtol(h + 17, NULL, 10);
                else if (strncasecmp(h + 2, "transfer-encoding:", 18) == 0 &&
                         strstr(h + 20, "chunked") && strstr(h + 20, "chunked") < e)
                    chunked = true;
                else if (strncasecmp(h + 2, "connection:", 11) == 0 &&
                         strncasecmp(h + 13 + strspn(h + 13, " "), "close", 5) == 0)
                    *close_after = true;
            }
        }
        size_t blen = have - (size_t)(body - rbuf);
        if (clen >= 0 && blen >= (size_t)clen)
            break;
        if (chunked && blen >= 5 && memcmp(rbuf + have - 5, "0\r\n\r\n", 5) == 0)
            break;
    }
    if (q->o->query_print) {
        free(q->last_body);
        q->last_body = strdup(body);
    }
    return status;
}

static void *lg_querier(void *arg)
{
    lg_query *q = arg;
    if (q->o->query_fifo > 0) {
        /* the query client measures nexusd, not its own wait for a core
         * behind the sender: it runs as nexusd's HTTP threads do */
        struct sched_param sp = {.sched_priority = q->o->query_fifo};
        int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
        if (rc)
            fprintf(stderr, "nx-loadgen: --query-fifo %d: %s (query thread stays as it was)\n",
                    q->o->query_fifo, strerror(rc));
        else
            atomic_store(&q->fifo_on, true);
    }
    size_t rcap = 1 << 20;
    char *rbuf = malloc(rcap);
    if (!rbuf)
        return NULL;
    double start = lg_now() + q->o->query_delay, period = 1.0 / q->o->query_rate;
    lg_sleep_until(start);
    int fd = -1;
    for (uint64_t k = 0; !atomic_load(&q->sh->stop); k++) {
        lg_sleep_until(start + (double)k * period);
        if (atomic_load(&q->sh->stop))
            break;
        double t = lg_now();
        if (fd < 0) {
            fd = lg_connect(q->host, q->port, SOCK_STREAM);
            if (fd < 0) {
                q->errors++;
                continue;
            }
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            q->reconnects++;
        }
        bool close_after;
        int st = lg_http_get(q, fd, rbuf, rcap, &close_after);
        double dt = lg_now() - t;
        if (st < 0) {
            q->errors++;
            close(fd);
            fd = -1;
            continue;
        }
        if (st != 200)
            q->non200++;
        if (q->n == q->cap) {
            size_t nc = q->cap ? q->cap * 2 : 4096;
            double *nl = realloc(q->lat, nc * sizeof *nl);
            if (!nl)
                break;
            q->lat = nl, q->cap = nc;
        }
        q->lat[q->n++] = dt;
        if (close_after) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    free(rbuf);
    return NULL;
}

static int lg_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- expected aggregates ------------------------------------------------ */

typedef struct lg_acc {
    uint64_t count;
    long double sum;
    double min, max;
    uint32_t *hist;    /* timers: count per timer-table index */
    uint64_t *bits;    /* sets: membership bitmap over the population */
} lg_acc;

static int lg_acc_init(lg_acc *a, int type)
{
    memset(a, 0, sizeof *a);
    a->min = INFINITY, a->max = -INFINITY;
    if (type == NXW_TIMER)
        a->hist = calloc((size_t)1 << NXW_TIMER_BITS, sizeof *a->hist);
    else if (type == NXW_SET)
        a->bits = calloc(NXW_SET_POP / 64 + 1, sizeof *a->bits);
    return (type == NXW_TIMER && !a->hist) || (type == NXW_SET && !a->bits) ? -1 : 0;
}

static inline void lg_acc_add(lg_acc *a, const nxw *w, const nxw_event *e)
{
    double v = nxw_value(w, e);
    a->count++;
    if (e->type != NXW_SET) {
        a->sum += v;
        if (v < a->min)
            a->min = v;
        if (v > a->max)
            a->max = v;
    }
    if (a->hist)
        a->hist[e->tidx]++;
    if (a->bits)
        a->bits[e->ival >> 6] |= 1ull << (e->ival & 63);
}

/* Timer-table indices sorted by value (for exact quantiles from histograms). */
static const nxw *lg_sort_w;
static int lg_cmp_tidx(const void *a, const void *b)
{
    double x = lg_sort_w->timer_tab[*(const uint32_t *)a].v;
    double y = lg_sort_w->timer_tab[*(const uint32_t *)b].v;
    return x < y ? -1 : x > y;
}

/* Sample value at rank r (0-based) of the histogram. */
static double lg_rank_value(const lg_acc *a, const nxw *w, const uint32_t *order, uint64_t r)
{
    uint64_t c = 0;
    for (size_t k = 0; k < ((size_t)1 << NXW_TIMER_BITS); k++) {
        c += a->hist[order[k]];
        if (c > r)
            return w->timer_tab[order[k]].v;
    }
    return NAN;
}

static void lg_acc_json(FILE *f, const lg_acc *a, const nxw *w, const uint32_t *order, int type)
{
    static const char *tn[3] = {"counter", "timer", "set"};
    fprintf(f, "\"type\": \"%s\", \"count\": %llu", tn[type], (unsigned long long)a->count);
    if (type != NXW_SET && a->count)
        fprintf(f, ", \"sum\": %.17Lg, \"min\": %.17g, \"max\": %.17g", a->sum, a->min, a->max);
    if (type == NXW_TIMER && a->count) {
        static const double qs[] = {0.5, 0.9, 0.99};
        fprintf(f, ", \"q\": {");
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            double pos = qs[i] * (double)(a->count - 1);
            uint64_t lo = (uint64_t)floor(pos), hi = (uint64_t)ceil(pos);
            fprintf(f, "%s\"%g\": [%.17g, %.17g]", i ? ", " : "", qs[i],
                    lg_rank_value(a, w, order, lo), lg_rank_value(a, w, order, hi));
        }
        fprintf(f, "}");
    }
    if (type == NXW_SET) {
        uint64_t d = 0;
        for (size_t k = 0; k < NXW_SET_POP / 64 + 1; k++)
            d += (uint64_t)__builtin_popcountll(a->bits[k]);
        fprintf(f, ", \"distinct\": %llu", (unsigned long long)d);
    }
}

static int lg_expect(const lg_opts *o, const nxw *w, uint64_t n, const char *path)
{
    uint32_t sample_t[LG_SAMPLE_MAX];
    int ns = 0;
    static const uint32_t ranks[] = {0, 1, 2, 5, 10, 100, 1000, 9999};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++)
        if (ranks[i] < w->tenants)
            sample_t[ns++] = ranks[i];
    uint32_t M = w->metrics;
    int rc = -1;
    int32_t *slot = malloc(w->tenants * sizeof *slot);
    lg_acc *sacc = calloc((size_t)ns * M, sizeof *sacc);
    lg_acc *nacc = calloc(M, sizeof *nacc);
    size_t nstreams = (size_t)w->tenants * M;
    uint64_t *touched = calloc(nstreams / 64 + 1, sizeof *touched);
    uint64_t *ttouched = calloc(w->tenants / 64 + 1, sizeof *ttouched);
    uint32_t *order = malloc(((size_t)1 << NXW_TIMER_BITS) * sizeof *order);
    FILE *f = NULL;
    if (!slot || !sacc || !nacc || !touched || !ttouched || !order)
        goto out;
    for (uint32_t t = 0; t < w->tenants; t++)
        slot[t] = -1;
    for (int s = 0; s < ns; s++) {
        slot[sample_t[s]] = s;
        for (uint32_t j = 0; j < M; j++)
            if (lg_acc_init(&sacc[(size_t)s * M + j], w->mtype[j]) < 0)
                goto out;
    }
    for (uint32_t j = 0; j < M; j++)
        if (lg_acc_init(&nacc[j], o->expect_by_name ? w->mtype[j] : NXW_COUNTER) < 0)
            goto out;
    uint64_t by_type[3] = {0};
    long double sum_type[3] = {0};
    uint32_t tenant = 0;
    for (uint64_t i = 0; i < n; i++) {
        nxw_event e;
        if (o->mix_tenants) {
            nxw_event_at_t(w, i, nxw_group_tenant(w, i), &e);
        } else {
            if (i % w->group == 0)
                tenant = nxw_group_tenant(w, i / w->group);
            nxw_event_at_t(w, i, tenant, &e);
        }
        by_type[e.type]++;
        if (e.type != NXW_SET)
            sum_type[e.type] += nxw_value(w, &e);
        size_t sid = (size_t)e.tenant * M + e.metric;
        touched[sid >> 6] |= 1ull << (sid & 63);
        ttouched[e.tenant >> 6] |= 1ull << (e.tenant & 63);
        lg_acc_add(&nacc[e.metric], w, &e);
        if (slot[e.tenant] >= 0)
            lg_acc_add(&sacc[(size_t)slot[e.tenant] * M + e.metric], w, &e);
    }
    uint64_t st = 0, tt = 0;
    for (size_t k = 0; k < nstreams / 64 + 1; k++)
        st += (uint64_t)__builtin_popcountll(touched[k]);
    for (size_t k = 0; k < w->tenants / 64 + 1; k++)
        tt += (uint64_t)__builtin_popcountll(ttouched[k]);
    for (uint32_t k = 0; k < (1u << NXW_TIMER_BITS); k++)
        order[k] = k;
    lg_sort_w = w;
    qsort(order, (size_t)1 << NXW_TIMER_BITS, sizeof *order, lg_cmp_tidx);

    f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        fprintf(stderr, "nx-loadgen: %s: %s\n", path, strerror(errno));
        goto out;
    }
    fprintf(f,
            "{\"workload\": {\"seed\": %llu, \"tenants\": %u, \"metrics\": %u, \"zipf\": %g, "
            "\"lines_per_dgram\": %u, \"mix_tenants\": %s, \"tag\": \"tenant\"},\n",
            (unsigned long long)w->seed, w->tenants, M, w->zipf_s, w->group,
            o->mix_tenants ? "true" : "false");
    fprintf(f, " \"lines\": %llu, \"streams_touched\": %llu, \"tenants_touched\": %llu,\n",
            (unsigned long long)n, (unsigned long long)st, (unsigned long long)tt);
    fprintf(f,
            " \"by_type\": {\"counter\": {\"lines\": %llu, \"sum\": %.17Lg}, \"timer\": "
            "{\"lines\": %llu, \"sum\": %.17Lg}, \"set\": {\"lines\": %llu}},\n",
            (unsigned long long)by_type[0], sum_type[0], (unsigned long long)by_type[1],
            sum_type[1], (unsigned long long)by_type[2]);
    fprintf(f, " \"streams\": [");
    bool first = true;
    for (int s = 0; s < ns; s++)
        for (uint32_t j = 0; j < M; j++) {
            const lg_acc *a = &sacc[(size_t)s * M + j];
            if (!a->count)
                continue;
            fprintf(f, "%s\n  {\"tenant\": \"%s\", \"metric\": \"bench.%s.m%u\", ",
                    first ? "" : ",", w->tname[sample_t[s]],
                    w->mtype[j] == NXW_COUNTER ? "counter" : w->mtype[j] == NXW_TIMER ? "timer" : "set",
                    j);
            lg_acc_json(f, a, w, order, w->mtype[j]);
            fprintf(f, "}");
            first = false;
        }
    fprintf(f, "],\n \"by_name\": [");
    for (uint32_t j = 0; j < M; j++) {
        int ty = o->expect_by_name ? w->mtype[j] : NXW_COUNTER;
        fprintf(f, "%s\n  {\"metric\": \"bench.%s.m%u\", ", j ? "," : "",
                w->mtype[j] == NXW_COUNTER ? "counter" : w->mtype[j] == NXW_TIMER ? "timer" : "set", j);
        if (ty == NXW_COUNTER && w->mtype[j] == NXW_SET)
            fprintf(f, "\"type\": \"set\", \"count\": %llu", (unsigned long long)nacc[j].count);
        else if (ty == NXW_COUNTER && w->mtype[j] == NXW_TIMER)
            fprintf(f, "\"type\": \"timer\", \"count\": %llu, \"sum\": %.17Lg",
                    (unsigned long long)nacc[j].count, nacc[j].sum);
        else
            lg_acc_json(f, &nacc[j], w, order, ty);
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
    rc = 0;
out:
    if (f && f != stdout)
        fclose(f);
    if (sacc)
        for (size_t k = 0; k < (size_t)ns * M; k++)
            free(sacc[k].hist), free(sacc[k].bits);
    if (nacc)
        for (uint32_t j = 0; j < M; j++)
            free(nacc[j].hist), free(nacc[j].bits);
    free(slot), free(sacc), free(nacc), free(touched), free(ttouched), free(order);
    return rc;
}

/* ---- main ------------------------------------------------------------------ */

static void lg_usage(FILE *f)
{
    fprintf(f,
            "usage: nx-loadgen [options]\n"
            "  --host H --port P        UDP target (127.0.0.1 8125)\n"
            "  --tenants T --metrics M  workload size (10000 x 10)\n"
            "  --seed S                 workload seed (1)\n"
            "  --zipf S                 tenant popularity skew, 0 = uniform (1.0)\n"
            "  --mix-tenants            lines of many tenants per datagram\n"
            "  --dgram-bytes B          max datagram payload (1400; e.g. 8192 on loopback)\n"
            "  --lines-per-dgram L      override lines per datagram\n"
            "  --rate R                 offered lines/s, 0 = as fast as possible (0)\n"
            "  --duration S             seconds to send\n"
            "  --lines N                lines to send\n"
            "  --threads K              sender threads (1)\n"
            "  --batch B                datagrams per sendmmsg (auto, <= 64)\n"
            "  --expect FILE            write exact aggregates of what was sent (JSON, - = stdout)\n"
            "  --expect-only            compute --lines N expectations without sending\n"
            "  --expect-by-name         also exact quantiles/distinct per metric name\n"
            "  --query URL              measure GET latency during the run\n"
            "  --query-header 'K: V'    extra request header\n"
            "  --query-rate Q           queries/s (100)\n"
            "  --query-delay S          start queries after S seconds (0.5)\n"
            "  --query-print            print the last response body\n"
            "  --query-fifo P           run the query thread at SCHED_FIFO priority P\n"
            "                           (needs CAP_SYS_NICE; 0 = as started, the default)\n");
}

int main(int argc, char **argv)
{
    lg_opts o = {.host = "127.0.0.1", .port = "8125", .seed = 1, .tenants = 10000, .metrics = 10,
                 .zipf = 1.0, .dgram_bytes = 1400, .threads = 1, .query_rate = 100,
                 .query_delay = 0.5};
    enum { O_HOST = 256, O_PORT, O_TEN, O_MET, O_SEED, O_ZIPF, O_MIX, O_DG, O_LPD, O_RATE, O_DUR,
           O_LINES, O_THR, O_BATCH, O_EXP, O_EXPONLY, O_EXPNAME, O_Q, O_QH, O_QR, O_QD, O_QP,
           O_QF };
    static const struct option lo[] = {
        {"host", 1, 0, O_HOST}, {"port", 1, 0, O_PORT}, {"tenants", 1, 0, O_TEN},
        {"metrics", 1, 0, O_MET}, {"seed", 1, 0, O_SEED}, {"zipf", 1, 0, O_ZIPF},
        {"mix-tenants", 0, 0, O_MIX}, {"dgram-bytes", 1, 0, O_DG},
        {"lines-per-dgram", 1, 0, O_LPD}, {"rate", 1, 0, O_RATE}, {"duration", 1, 0, O_DUR},
        {"lines", 1, 0, O_LINES}, {"threads", 1, 0, O_THR}, {"batch", 1, 0, O_BATCH},
        {"expect", 1, 0, O_EXP}, {"expect-only", 0, 0, O_EXPONLY},
        {"expect-by-name", 0, 0, O_EXPNAME}, {"query", 1, 0, O_Q}, {"query-header", 1, 0, O_QH},
        {"query-rate", 1, 0, O_QR}, {"query-delay", 1, 0, O_QD}, {"query-print", 0, 0, O_QP},
        {"query-fifo", 1, 0, O_QF},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case O_HOST: o.host = optarg; break;
        case O_PORT: o.port = optarg; break;
        case O_TEN: o.tenants = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_MET: o.metrics = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_SEED: o.seed = strtoull(optarg, NULL, 10); break;
        case O_ZIPF: o.zipf = strtod(optarg, NULL); break;
        case O_MIX: o.mix_tenants = true; break;
        case O_DG: o.dgram_bytes = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_LPD: o.lines_per_dgram = (uint32_t)strtoul(optarg, NULL, 10); break;
        case O_RATE: o.rate = strtod(optarg, NULL); break;
        case O_DUR: o.duration = strtod(optarg, NULL); break;
        case O_LINES: o.lines = strtoull(optarg, NULL, 10); break;
        case O_THR: o.threads = atoi(optarg); break;
        case O_BATCH: o.batch = atoi(optarg); break;
        case O_EXP: o.expect_path = optarg; break;
        case O_EXPONLY: o.expect_only = true; break;
        case O_EXPNAME: o.expect_by_name = true; break;
        case O_Q: o.query_url = optarg; break;
        case O_QH: o.query_header = optarg; break;
        case O_QR: o.query_rate = strtod(optarg, NULL); break;
        case O_QD: o.query_delay = strtod(optarg, NULL); break;
        case O_QP: o.query_print = true; break;
        case O_QF: o.query_fifo = atoi(optarg); break;
        case 'h': lg_usage(stdout); return 0;
        default: lg_usage(stderr); return 2;
        }
    }
    if (o.threads < 1 || o.threads > LG_MAX_THREADS || o.dgram_bytes < 128 ||
        o.dgram_bytes > 65000 || o.rate < 0 || o.duration < 0 || o.query_rate <= 0 ||
        o.query_fifo < 0 || o.query_fifo > 99 || o.batch < 0 || o.batch > LG_MAX_BATCH) {
        fprintf(stderr, "nx-loadgen: bad option value\n");
        return 2;
    }
    if (!o.lines && !o.duration) {
        fprintf(stderr, "nx-loadgen: give --duration and/or --lines\n");
        return 2;
    }
    if (o.expect_only && (!o.lines || !o.expect_path)) {
        fprintf(stderr, "nx-loadgen: --expect-only needs --lines and --expect\n");
        return 2;
    }

    /* Lines per datagram from the longest line this workload can produce. */
    nxw w;
    if (nxw_init(&w, o.seed, o.tenants, o.metrics, 1, o.zipf) < 0) {
        fprintf(stderr, "nx-loadgen: bad workload options or out of memory\n");
        return 2;
    }
    uint32_t fit = nxw_lines_per_dgram(&w, o.dgram_bytes);
    uint32_t group = o.lines_per_dgram ? o.lines_per_dgram : fit;
    if (group < 1 || group > fit) {
        fprintf(stderr, "nx-loadgen: --lines-per-dgram %u does not fit %u bytes\n", group,
                o.dgram_bytes);
        nxw_free(&w);
        return 2;
    }
    w.group = group; /* packing; tenant per datagram unless --mix-tenants */

    if (o.expect_only) {
        int rc = lg_expect(&o, &w, o.lines, o.expect_path);
        nxw_free(&w);
        return rc ? 1 : 0;
    }

    lg_shared sh = {.o = &o, .w = &w};
    sh.limit = o.lines ? o.lines : UINT64_MAX;
    if (o.rate > 0 && o.duration > 0) {
        uint64_t l = (uint64_t)(o.rate * o.duration);
        if (l < sh.limit)
            sh.limit = l;
    }
    uint32_t nd = (uint32_t)o.batch;
    if (!nd) { /* about 1 ms of the thread's offered rate per syscall */
        double per_ms = o.rate > 0 ? o.rate / o.threads / group / 1000.0 : LG_MAX_BATCH;
        nd = per_ms < 1 ? 1 : per_ms > LG_MAX_BATCH ? LG_MAX_BATCH : (uint32_t)per_ms;
    }
    sh.chunk_dgrams = nd;
    lg_thread th[LG_MAX_THREADS];
    memset(th, 0, sizeof th);
    for (int i = 0; i < o.threads; i++) {
        th[i].sh = &sh;
        th[i].idx = i;
        th[i].fd = lg_connect(o.host, o.port, SOCK_DGRAM);
        if (th[i].fd < 0)
            return 1;
        int sz = 8 << 20;
        setsockopt(th[i].fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    lg_query q = {.o = &o, .sh = &sh};
    if (o.query_url && lg_parse_url(&q, o.query_url) < 0) {
        fprintf(stderr, "nx-loadgen: bad --query URL\n");
        return 2;
    }
    double t0 = lg_now();
    for (int i = 0; i < o.threads; i++)
        if (pthread_create(&th[i].tid, NULL, lg_sender, &th[i]) != 0) {
            fprintf(stderr, "nx-loadgen: pthread_create failed\n");
            return 1;
        }
    if (o.query_url && pthread_create(&q.tid, NULL, lg_querier, &q) != 0) {
        fprintf(stderr, "nx-loadgen: pthread_create failed\n");
        return 1;
    }
    if (o.duration > 0) {
        /* With a line limit as well, stop at whichever comes first; a
         * rate-limited run that cannot keep up gets 50% grace, then stops. */
        double until = t0 + o.duration * (o.rate > 0 && o.lines == 0 ? 1.5 : 1.0);
        while (lg_now() < until && atomic_load(&sh.finished) < o.threads)
            usleep(1000);
        atomic_store(&sh.stop, 1);
    }
    uint64_t lines = 0, dgrams = 0, bytes = 0, refused = 0, errors = 0;
    for (int i = 0; i < o.threads; i++) {
        pthread_join(th[i].tid, NULL);
        lines += th[i].lines, dgrams += th[i].dgrams, bytes += th[i].bytes;
        refused += th[i].refused, errors += th[i].errors;
        close(th[i].fd);
    }
    double el = lg_now() - t0;
    atomic_store(&sh.stop, 1);
    if (o.query_url)
        pthread_join(q.tid, NULL);

    printf("lines_sent %llu lines\n", (unsigned long long)lines);
    printf("dgrams_sent %llu datagrams\n", (unsigned long long)dgrams);
    printf("bytes_sent %llu bytes\n", (unsigned long long)bytes);
    printf("lines_per_dgram %u lines\n", group);
    printf("elapsed %.3f s\n", el);
    printf("offered_rate %.0f lines/s\n", o.rate);
    printf("send_rate %.0f lines/s\n", el > 0 ? (double)lines / el : 0);
    printf("send_refused %llu datagrams\n", (unsigned long long)refused);
    printf("send_errors %llu datagrams\n", (unsigned long long)errors);
    if (o.query_url) {
        qsort(q.lat, q.n, sizeof *q.lat, lg_cmp_double);
        printf("query_count %zu queries\n", q.n);
        printf("query_errors %llu queries\n", (unsigned long long)q.errors);
        printf("query_non200 %llu queries\n", (unsigned long long)q.non200);
        printf("query_fifo %d priority\n", atomic_load(&q.fifo_on) ? o.query_fifo : 0);
        if (q.n) {
            printf("query_p50 %.1f us\n", q.lat[(size_t)(0.5 * (double)(q.n - 1))] * 1e6);
            printf("query_p99 %.1f us\n", q.lat[(size_t)(0.99 * (double)(q.n - 1))] * 1e6);
            printf("query_max %.1f us\n", q.lat[q.n - 1] * 1e6);
        }
        if (q.last_body)
            printf("# last response: %s\n", q.last_body);
        free(q.lat);
        free(q.last_body);
    }
    fflush(stdout);
    int rc = 0;
    if (o.expect_path) {
        double te = lg_now();
        rc = lg_expect(&o, &w, lines, o.expect_path);
        fprintf(stderr, "nx-loadgen: expected aggregates in %.2f s\n", lg_now() - te);
    }
    nxw_free(&w);
    return rc ? 1 : (errors ? 1 : 0);
}
