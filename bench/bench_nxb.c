/*
 * bench_nxb.c — receive-path throughput of the kernel stage + NXB decoder,
 * in one run: NXB over UDP with eBPF tenant steering vs plain reuseport vs
 * StatsD text, with and without applying the events to an nx_engine.
 *
 * Setup: a SO_REUSEPORT group of NR (= 2, the cores here) UDP sockets on
 * 127.0.0.1, one receiver thread each doing recvmmsg(MSG_WAITFORONE, 64
 * messages) and decoding every datagram (nx_nxb_decode + iterating every
 * event; StatsD: nx_statsd_parse of every line + every value). One sender
 * thread with sendmmsg of pre-built datagrams for 64 tenants (16 streams
 * each: counters, integer and fractional timers). The sender keeps at most
 * a window of datagrams in flight (sent - received), so the run is
 * lossless by construction and the figure is what the receivers sustain;
 * any kernel drop would show as lost events (reported).
 *
 * Output, one figure per line (name value unit):
 *   <mode>.events_per_s, <mode>.recv_syscalls_per_1000_events, <mode>.lost
 * Env: NX_BENCH_EVENTS (events per mode, default 20M), NX_BENCH_ENGINE=0 to
 * skip the engine-apply modes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nexus.h"
#include "ingest/nx_nxb.h"
#include "ingest/nx_statsd.h"
#include "ingest/nx_steer.h"

#define NR 2
#define NTEN 64
#define VLEN 64

typedef struct mode {
    const char *name;
    nx_steer_mode steer;
    int statsd;       /* 1: StatsD text datagrams */
    size_t dgram;     /* datagram size */
    int engine;       /* 1: apply to an nx_engine */
} mode;

typedef struct shared {
    int fds[NR];
    struct sockaddr_in addr;
    const mode *m;
    atomic_ullong rx_dgrams;
    atomic_int stop;
} shared;

typedef struct rxstat {
    uint64_t events, dgrams, syscalls, bad;
} rxstat;

typedef struct rxarg {
    shared *sh;
    int idx;
    rxstat st;
} rxarg;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Applies one validated NXB batch to the engine; tenants cached by num. */
static uint64_t apply_nxb(nx_engine *e, nx_tenant **tcache, const nx_nxb_batch *b, int64_t now)
{
    nx_tenant *t = b->tenant_num < NTEN ? tcache[b->tenant_num] : NULL;
    if (!t) {
        char id[16];
        int l = snprintf(id, sizeof(id), "t%u", b->tenant_num);
        if (nx_engine_tenant(e, id, (size_t)l, &t))
            return 0;
        if (b->tenant_num < NTEN)
            tcache[b->tenant_num] = t;
    }
    nx_stream *ss[NX_NXB_MAX_STREAMS];
    for (uint32_t i = 0; i < b->nstreams; i++)
        if (nx_tenant_stream(t, b->streams[i].key, b->streams[i].key_len,
                             (nx_type)b->streams[i].type, &ss[i]))
            ss[i] = NULL;
    nx_nxb_iter it;
    nx_nxb_event ev;
    uint64_t n = 0;
    nx_nxb_iter_init(&it, b);
    while (nx_nxb_next(&it, &ev))
        if (ss[ev.stream_idx] && nx_stream_update(ss[ev.stream_idx], &ev.u, now) == 0)
            n++;
    return n;
}

/* Parses (and optionally applies) a StatsD datagram; returns events. */
static uint64_t do_statsd(nx_engine *e, nx_tenant *deft, const uint8_t *p, size_t n,
                          const nx_statsd_limits *lim, nx_tag *tags, int64_t now, uint64_t *bad)
{
    uint64_t ev = 0;
    const char *s = (const char *)p, *end = s + n;
    char key[512];
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
        nx_statsd_line l;
        if (len && nx_statsd_parse(s, len, lim, tags, &l) == 0) {
            nx_stream *st = NULL;
            if (e) {
                int kl = nx_stream_key_build(l.name, l.name_len, l.tags, l.ntags, key, sizeof(key));
                if (kl < 0 || nx_tenant_stream(deft, key, (size_t)kl, l.type, &st))
                    st = NULL;
            }
            uint32_t pos = 0;
            nx_statsd_value v;
            while (nx_statsd_value_next(&l, &pos, &v)) {
                ev++;
                if (st) {
                    nx_update u = {.value = v.value, .weight = 1.0 / l.rate, .ts_ms = l.ts_ms,
                                   .member = v.member, .member_len = v.member_len,
                                   .gauge_delta = v.delta};
                    nx_stream_update(st, &u, now);
                }
            }
        } else if (len) {
            (*bad)++;
        }
        s += len + 1;
    }
    return ev;
}

static void *rx_main(void *arg)
{
    rxarg *ra = arg;
    shared *sh = ra->sh;
    const mode *m = sh->m;
    size_t bufsz = m->dgram + 64;
    uint8_t *bufs = malloc(VLEN * bufsz);
    nx_nxb_batch *b = malloc(sizeof(*b));
    struct mmsghdr msgs[VLEN];
    struct iovec iov[VLEN];
    nx_engine *e = NULL;
    nx_tenant *tcache[NTEN] = {0}, *deft = NULL;
    nx_statsd_limits lim;
    nx_statsd_limits_default(&lim);
    nx_tag *tags = calloc(lim.max_tags + 1, sizeof(nx_tag));
    if (!bufs || !b || !tags)
        abort();
    if (m->engine) {
        nx_engine_config cfg;
        nx_engine_config_default(&cfg);
        if (nx_engine_create(&cfg, &e) || nx_engine_tenant(e, "default", 7, &deft))
            abort();
    }
    for (int i = 0; i < VLEN; i++) {
        iov[i].iov_base = bufs + (size_t)i * bufsz;
        iov[i].iov_len = bufsz;
    }
    int fd = sh->fds[ra->idx];
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        for (int i = 0; i < VLEN; i++) {
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, VLEN, MSG_WAITFORONE, NULL);
        ra->st.syscalls++;
        if (n <= 0)
            continue; /* SO_RCVTIMEO: check stop */
        int64_t now = now_ms();
        for (int i = 0; i < n; i++) {
            const uint8_t *p = iov[i].iov_base;
            size_t len = msgs[i].msg_len;
            if (m->statsd) {
                ra->st.events += do_statsd(e, deft, p, len, &lim, tags, now, &ra->st.bad);
            } else if (nx_nxb_decode(p, len, b, NULL, NULL) == 0) {
                if (e) {
                    ra->st.events += apply_nxb(e, tcache, b, now);
                } else {
                    nx_nxb_iter it;
                    nx_nxb_event ev;
                    double sink = 0;
                    nx_nxb_iter_init(&it, b);
                    while (nx_nxb_next(&it, &ev))
                        sink += ev.u.value;
                    __asm__ volatile("" : : "g"(&sink) : "memory");
                    ra->st.events += b->event_count;
                }
            } else {
                ra->st.bad++;
            }
        }
        ra->st.dgrams += (uint64_t)n;
        atomic_fetch_add_explicit(&sh->rx_dgrams, (unsigned long long)n, memory_order_release);
    }
    nx_engine_destroy(e);
    free(tags);
    free(b);
    free(bufs);
    return NULL;
}

/* Builds one datagram per tenant (events in cnt[t]); returns the last count. */
static uint32_t build_dgrams(const mode *m, uint8_t **dg, size_t *len, uint32_t *cnt)
{
    uint32_t evs = 0;
    uint8_t *ev = malloc(m->dgram);
    for (uint32_t t = 0; t < NTEN; t++) {
        dg[t] = malloc(m->dgram);
        uint32_t n = 0;
        if (m->statsd) {
            size_t off = 0;
            for (uint32_t i = 0;; i++) {
                char line[96];
                int l;
                switch (i % 4) {
                case 0: l = snprintf(line, sizeof(line), "app.requests:1|c|#route:/r%u,t:%u\n", i % 16, t); break;
                case 1: l = snprintf(line, sizeof(line), "app.latency:%u|ms|#route:/r%u,t:%u\n", 5 + i % 300, i % 16, t); break;
                case 2: l = snprintf(line, sizeof(line), "app.bytes:%u|c|#t:%u\n", 100 + i, t); break;
                default: l = snprintf(line, sizeof(line), "app.db:%u.%u|ms|#t:%u\n", i % 50, i % 10, t); break;
                }
                if (off + (size_t)l > m->dgram)
                    break;
                memcpy(dg[t] + off, line, (size_t)l);
                off += (size_t)l;
                n++;
            }
            len[t] = off;
        } else {
            nx_nxb_writer w;
            nx_nxb_writer_init(&w, dg[t], ev, m->dgram);
            nx_nxb_writer_reset(&w, t, 1, 0, 0);
            uint32_t sid[16];
            for (uint32_t s = 0; s < 16; s++) {
                char key[64];
                int kl = s < 8 ? snprintf(key, sizeof(key), "app.requests|route:/r%u", s)
                               : snprintf(key, sizeof(key), "app.latency|route:/r%u", s);
                nx_nxb_writer_stream(&w, s < 8 ? NX_TYPE_COUNTER : NX_TYPE_TIMER, key, (size_t)kl, &sid[s]);
            }
            for (uint32_t i = 0;; i++) {
                uint32_t s = i % 16;
                double v = s < 8 ? 1.0 : (i % 3 ? (double)(5 + i % 300) : (i % 50) + 0.25);
                if (nx_nxb_writer_add(&w, sid[s], v, 0, 1.0, 0))
                    break;
                n++;
            }
            nx_nxb_writer_finish(&w, &len[t]);
        }
        cnt[t] = n;
        evs = n;
    }
    free(ev);
    return evs;
}

static void run_mode(const mode *m, uint64_t target_events)
{
    shared sh;
    memset(&sh, 0, sizeof(sh));
    sh.m = m;
    sh.addr.sin_family = AF_INET;
    sh.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < NR; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1, rb = 64 << 20;
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof(rb)))
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
        struct timeval tv = {0, 20000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (bind(fd, (struct sockaddr *)&sh.addr, sizeof(sh.addr))) {
            perror("bind");
            exit(1);
        }
        if (i == 0) {
            socklen_t sl = sizeof(sh.addr);
            getsockname(fd, (struct sockaddr *)&sh.addr, &sl);
        }
        sh.fds[i] = fd;
    }
    nx_steer *st = NULL;
    nx_steer_attach(sh.fds, NR, m->steer, &st);
    uint8_t *dg[NTEN];
    size_t len[NTEN];
    uint32_t cnt[NTEN];
    uint32_t per = build_dgrams(m, dg, len, cnt);
    uint64_t ndg = (target_events + per - 1) / per, sent_ev = 0;

    rxarg ra[NR];
    pthread_t th[NR];
    for (int i = 0; i < NR; i++) {
        memset(&ra[i], 0, sizeof(ra[i]));
        ra[i].sh = &sh;
        ra[i].idx = i;
        pthread_create(&th[i], NULL, rx_main, &ra[i]);
    }
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    int sb = 64 << 20;
    setsockopt(tx, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof(sb));
    connect(tx, (struct sockaddr *)&sh.addr, sizeof(sh.addr));
    /* in flight: about 16 MB per receiver worth of datagrams */
    uint64_t window = (uint64_t)(16u << 20) * NR / (m->dgram + 1024);
    struct mmsghdr msgs[32];
    struct iovec iov[32];
    double t0 = mono_s();
    uint64_t sent = 0, tsys = 0;
    while (sent < ndg) {
        uint64_t rx = atomic_load_explicit(&sh.rx_dgrams, memory_order_acquire);
        if (sent - rx + 32 > window) {
            sched_yield();
            continue;
        }
        int k = 0;
        for (; k < 32 && sent + (uint64_t)k < ndg; k++) {
            uint32_t t = (uint32_t)((sent + (uint64_t)k) % NTEN);
            iov[k].iov_base = dg[t];
            iov[k].iov_len = len[t];
            memset(&msgs[k].msg_hdr, 0, sizeof(msgs[k].msg_hdr));
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(tx, msgs, (unsigned)k, 0);
        tsys++;
        if (r > 0) {
            for (int j = 0; j < r; j++)
                sent_ev += cnt[(sent + (uint64_t)j) % NTEN];
            sent += (uint64_t)r;
        }
        else if (r < 0 && errno != EINTR && errno != EAGAIN && errno != ENOBUFS) {
            perror("sendmmsg");
            break;
        }
    }
    /* wait for the receivers (or 1 s without progress: loss) */
    uint64_t last = 0;
    double lastt = mono_s();
    for (;;) {
        uint64_t rx = atomic_load_explicit(&sh.rx_dgrams, memory_order_acquire);
        if (rx >= sent)
            break;
        if (rx != last) {
            last = rx;
            lastt = mono_s();
        } else if (mono_s() - lastt > 1.0) {
            break;
        }
        sched_yield();
    }
    double el = mono_s() - t0;
    atomic_store(&sh.stop, 1);
    rxstat tot = {0};
    for (int i = 0; i < NR; i++) {
        pthread_join(th[i], NULL);
        tot.events += ra[i].st.events;
        tot.dgrams += ra[i].st.dgrams;
        tot.syscalls += ra[i].st.syscalls;
        tot.bad += ra[i].st.bad;
    }
    printf("# %s: steering=%s, %u events/datagram (%zu bytes), %llu datagrams, "
           "per-receiver datagrams %llu/%llu, sender syscalls %llu\n",
           m->name, nx_steer_describe(st), per, len[0], (unsigned long long)sent,
           (unsigned long long)ra[0].st.dgrams, (unsigned long long)ra[1].st.dgrams,
           (unsigned long long)tsys);
    printf("%s.events_per_s %.0f events/s\n", m->name, (double)tot.events / el);
    printf("%s.recv_syscalls_per_1000_events %.4f syscalls\n", m->name,
           1000.0 * (double)tot.syscalls / (double)(tot.events ? tot.events : 1));
    /* with the engine, events counts applied updates; loss is by datagram */
    printf("%s.lost %lld %s\n", m->name,
           m->engine ? (long long)(sent - tot.dgrams) : (long long)sent_ev - (long long)tot.events,
           m->engine ? "datagrams" : "events");
    if (tot.bad)
        printf("%s.bad_datagrams_or_lines %llu\n", m->name, (unsigned long long)tot.bad);
    fflush(stdout);
    nx_steer_detach(st);
    close(tx);
    for (int i = 0; i < NR; i++)
        close(sh.fds[i]);
    for (int t = 0; t < NTEN; t++)
        free(dg[t]);
}

int main(void)
{
    const char *ev = getenv("NX_BENCH_EVENTS");
    uint64_t target = ev ? strtoull(ev, NULL, 10) : 20000000ull;
    const char *en = getenv("NX_BENCH_ENGINE");
    int engine = !(en && en[0] == '0');
    const mode modes[] = {
        {"nxb_ebpf_64k", NX_STEER_EBPF, 0, 65000, 0},
        {"nxb_plain_64k", NX_STEER_PLAIN, 0, 65000, 0},
        {"nxb_ebpf_1400", NX_STEER_EBPF, 0, 1400, 0},
        {"nxb_plain_1400", NX_STEER_PLAIN, 0, 1400, 0},
        {"statsd_plain_1400", NX_STEER_PLAIN, 1, 1400, 0},
        {"statsd_plain_64k", NX_STEER_PLAIN, 1, 65000, 0},
        {"nxb_ebpf_64k_engine", NX_STEER_EBPF, 0, 65000, 1},
        {"nxb_ebpf_1400_engine", NX_STEER_EBPF, 0, 1400, 1},
        {"statsd_plain_1400_engine", NX_STEER_PLAIN, 1, 1400, 1},
    };
    printf("# bench_nxb: %d receiver threads (recvmmsg x%d), 1 sender (sendmmsg x32), "
           "%d tenants, %llu events per mode; decode = validate + iterate every event\n",
           NR, VLEN, NTEN, (unsigned long long)target);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (modes[i].engine && !engine)
            continue;
        run_mode(&modes[i], modes[i].engine ? target / 4 : target);
    }
    return 0;
}
