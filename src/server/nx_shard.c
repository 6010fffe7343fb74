/*
 * nx_shard.c — the shard thread: receive, apply, answer (see nx_shard.h).
 *
 * Receive buffers: recv_batch slots of NX_DGRAM_MAX bytes each for
 * recvmmsg (64 x 64 KiB = 4 MiB of virtual memory per shard; only the pages
 * datagrams actually touch become resident), each with a cmsg buffer for the
 * SO_RXQ_OVFL drop counter. TCP connections get a 64 KiB (or 2 x max-line)
 * buffer each; a partial last line stays in it until the next read, a line
 * longer than the buffer is counted as too_long and skipped up to its '\n'.
 *
 * epoll tags: the event's u64 is (kind << 32 | index).
 */
#include "server/nx_shard.h"
#include "server/nx_durable.h"
#include "server/nx_kstage.h"
#include "server/nx_log.h"
#include "server/nx_nxb_tcp.h"
#include "server/nx_udfhost.h"
#include "server/nx_tenants.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <xxhash.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NX_DGRAM_MAX 65536
#define TAG_MBOX 1ull
#define TAG_UDP 2ull
#define TAG_UNIX 3ull
#define TAG_TCPL 4ull
#define TAG_CONN 5ull
#define TAG_NXBU 6ull
#define TAG_NXBL 7ull
#define TAG_NXBC 8ull

typedef struct conn {
    int fd;          /* -1: free slot */
    uint32_t len;    /* bytes buffered (a partial line) */
    int skipping;    /* discarding an over-long line up to its '\n' */
    char *buf;
} conn;

#define NX_TENANT_BITS (1u << 16)

static void tenant_seen(void *arg, const char *id, size_t len);

struct nx_shard {
    int id;
    const nx_config *cfg;
    nx_engine *engine;
    _Atomic uint64_t tenant_bits[NX_TENANT_BITS / 64]; /* nx_shard_may_have_tenant */
    nx_applier ap;
    nx_durable *dur;    /* WAL + snapshots (nx_durable.h) */
    nx_prefault *pf;    /* the thread's heap arena, or NULL (nx_prefault.h) */
    pthread_t thr;
    int started;
    int stopping;
    int epfd;
    nx_mailbox mb;
    nx_rt_boost boost;  /* raised while a poster waits for an answer */
    int udp_fd, tcp_fd, unix_fd;
    /* recvmmsg */
    uint32_t vlen;
    char *rbuf;
    struct mmsghdr *msgs;
    struct iovec *iov;
    char *cbuf;
    size_t cbuf_each;
    /* TCP */
    conn *conns;
    uint32_t nconns_max;
    uint32_t tcp_buf;
    /* rate-limited reject logging */
    int64_t last_log_s[NX_SD_NREASONS];
    uint64_t suppressed[NX_SD_NREASONS];
    nx_shard_stats st;
    /* NXB */
    int nxb_udp_fd, nxb_tcp_fd;
    nx_kstage *ks;
    nx_nxb_tcp *nxbt;
    nx_udf_shard *udf; /* owned by the server's nx_udf_host */
    nx_shard_tenants tn; /* tenant gate and events/s buckets */
};

int64_t nx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void st_add(_Atomic uint64_t *c, uint64_t v)
{
    /* single writer: a relaxed load + store is enough and avoids a locked op */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline void st_set(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static void on_reject(void *arg, int reason, const char *line, size_t len, int64_t now_ms)
{
    nx_shard *sh = arg;
    int64_t s = now_ms / 1000;
    if (sh->last_log_s[reason] == s) {
        sh->suppressed[reason]++;
        return;
    }
    sh->last_log_s[reason] = s;
    char esc[256];
    nx_log_escape(line, len < 160 ? len : 160, esc, sizeof(esc));
    nx_log(NX_LOG_WARN, "rejected statsd line", "shard=%d reason=%s suppressed=%llu len=%zu sample=%s",
           sh->id, nx_statsd_reason_name(reason), (unsigned long long)sh->suppressed[reason], len,
           esc);
    sh->suppressed[reason] = 0;
}

static void publish(nx_shard *sh, const nx_apply_result *r)
{
    st_add(&sh->st.lines, r->lines);
    st_add(&sh->st.events, r->events);
    if (r->rejected) {
        st_add(&sh->st.rejected, r->rejected);
        for (int i = 0; i < NX_SD_NREASONS; i++)
            if (r->reasons[i])
                st_add(&sh->st.reasons[i], r->reasons[i]);
    }
    if (r->nxb_batches)
        st_add(&sh->st.nxb_batches, r->nxb_batches);
    for (int i = 1; i < NX_NXB_NREJECT; i++)
        if (r->nxb_rejected[i])
            st_add(&sh->st.nxb_rejected[i], r->nxb_rejected[i]);
}

int nx_shard_apply(nx_shard *sh, const nx_batch *b, nx_apply_result *res)
{
    return nx_shard_submit(sh, b, NX_ACK_NONE, res, NULL, NULL);
}

int nx_shard_submit(nx_shard *sh, const nx_batch *b, int mode, nx_apply_result *res,
                    nx_ack_fn done, void *arg)
{
    assert(mode == NX_ACK_NONE || done);
    uint64_t lsn;
    int rc = nx_durable_log(sh->dur, b, &lsn); /* the WAL first */
    if (rc) {
        nx_durable_note_refused(sh->dur, rc, mode != NX_ACK_NONE);
        if (mode != NX_ACK_NONE)
            return rc; /* refused: neither applied nor acked */
    }
    rc = nx_applier_apply(&sh->ap, b, res);
    if (sh->udf)
        nx_udf_shard_flush(sh->udf); /* one nx_udf_update per instance per batch */
    if (done && rc == 0)
        rc = nx_durable_park(sh->dur, lsn, mode == NX_ACK_NONE ? NX_ACK_APPLIED : (nx_ack_mode)mode,
                             done, arg);
    return rc;
}

const nx_durable_stats *nx_shard_durable_stats(const nx_shard *sh)
{
    return nx_durable_get_stats(sh->dur);
}

void nx_shard_set_prefault(nx_shard *sh, nx_prefault *pf)
{
    assert(!sh->started);
    sh->pf = pf;
    if (pf) /* snapshot pieces on 4 KiB pages (nx_prefault.c) */
        nx_durable_set_piece_alloc(sh->dur, nx_prefault_piece_alloc, pf);
}

void nx_shard_set_realtime(nx_shard *sh, int prio)
{
    assert(!sh->started);
    nx_rt_boost_init(&sh->boost, prio);
}

void nx_shard_set_udf(nx_shard *sh, nx_udf_shard *u)
{
    assert(!sh->started);
    sh->udf = u;
    sh->ap.on_event = u ? nx_udf_shard_event : NULL;
    sh->ap.event_arg = u;
}

static int epoll_add(int epfd, int fd, uint64_t tag, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int nx_shard_create(int id, const nx_config *cfg, int udp_fd, int tcp_fd, int unix_fd,
                    nx_shard **out)
{
    nx_shard *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return NX_ENOMEM;
    sh->id = id;
    sh->cfg = cfg;
    sh->udp_fd = udp_fd;
    sh->tcp_fd = tcp_fd;
    sh->unix_fd = unix_fd;
    sh->epfd = -1;
    sh->mb.efd = -1;
    sh->nxb_udp_fd = sh->nxb_tcp_fd = -1;
    nx_rt_boost_init(&sh->boost, 0);
    int rc = nx_engine_create(&cfg->engine, &sh->engine);
    if (rc)
        goto fail;
    nx_engine_on_tenant(sh->engine, tenant_seen, sh);
    rc = nx_applier_init(&sh->ap, sh->engine, &cfg->limits);
    if (rc)
        goto fail;
    sh->ap.on_reject = on_reject;
    sh->ap.reject_arg = sh;
    /* the tenant gate first: WAL replay goes through it too (unknown and
     * deleted tenants stay rejected; replay skips the rate limit) */
    rc = nx_shard_tenants_init(&sh->tn, cfg, 1);
    if (rc)
        goto fail;
    nx_shard_tenants_install(&sh->tn, &sh->ap);
    rc = nx_durable_open(cfg, id, &sh->engine, &sh->ap, &sh->dur);
    if (rc)
        goto fail;
    sh->ap.nxb_cfg = cfg;
    rc = NX_ENOMEM;
    sh->vlen = cfg->recv_batch;
    sh->cbuf_each = CMSG_SPACE(sizeof(uint32_t));
    sh->rbuf = malloc((size_t)sh->vlen * NX_DGRAM_MAX);
    sh->msgs = calloc(sh->vlen, sizeof(*sh->msgs));
    sh->iov = calloc(sh->vlen, sizeof(*sh->iov));
    sh->cbuf = calloc(sh->vlen, sh->cbuf_each);
    sh->nconns_max = cfg->max_tcp_conns;
    sh->conns = calloc(sh->nconns_max, sizeof(conn));
    sh->tcp_buf = cfg->limits.max_line * 2 > 65536 ? cfg->limits.max_line * 2 : 65536;
    if (!sh->rbuf || !sh->msgs || !sh->iov || !sh->cbuf || !sh->conns)
        goto fail;
    for (uint32_t i = 0; i < sh->nconns_max; i++)
        sh->conns[i].fd = -1;
    rc = NX_EIO;
    if (nx_mailbox_init(&sh->mb))
        goto fail;
    sh->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sh->epfd < 0)
        goto fail;
    if (epoll_add(sh->epfd, sh->mb.efd, TAG_MBOX << 32, EPOLLIN))
        goto fail;
    if (udp_fd >= 0 && epoll_add(sh->epfd, udp_fd, TAG_UDP << 32, EPOLLIN))
        goto fail;
    if (tcp_fd >= 0 && epoll_add(sh->epfd, tcp_fd, TAG_TCPL << 32, EPOLLIN))
        goto fail;
    /* the unix socket is shared by every shard: wake only one per datagram */
    if (unix_fd >= 0 && epoll_add(sh->epfd, unix_fd, TAG_UNIX << 32, EPOLLIN | EPOLLEXCLUSIVE))
        goto fail;
    *out = sh;
    return 0;
fail:
    sh->udp_fd = sh->tcp_fd = -1; /* the caller still owns the fds on failure */
    nx_shard_destroy(sh);
    return rc;
}

void nx_shard_destroy(nx_shard *sh)
{
    if (!sh)
        return;
    assert(!sh->started);
    if (sh->conns)
        for (uint32_t i = 0; i < sh->nconns_max; i++)
            if (sh->conns[i].fd >= 0) {
                close(sh->conns[i].fd);
                free(sh->conns[i].buf);
            }
    if (sh->udp_fd >= 0)
        close(sh->udp_fd);
    if (sh->tcp_fd >= 0)
        close(sh->tcp_fd);
    nx_nxb_tcp_destroy(sh->nxbt);
    if (sh->nxb_udp_fd >= 0)
        close(sh->nxb_udp_fd);
    if (sh->nxb_tcp_fd >= 0)
        close(sh->nxb_tcp_fd);
    if (sh->epfd >= 0)
        close(sh->epfd);
    nx_mailbox_destroy(&sh->mb);
    nx_durable_close(sh->dur);
    nx_applier_free(&sh->ap);
    nx_shard_tenants_free(&sh->tn);
    if (sh->engine)
        nx_engine_destroy(sh->engine);
    free(sh->conns);
    free(sh->rbuf);
    free(sh->msgs);
    free(sh->iov);
    free(sh->cbuf);
    free(sh);
}

/* A poster that waits for the answer raises the shard until it has been
 * answered (nx_rt.h): fire-and-forget messages leave it alone. */
void nx_shard_post(nx_shard *sh, nx_shard_msg *m)
{
    m->boosted = m->waiter ? nx_rt_boost_take(&sh->boost) : 0;
    nx_mailbox_push(&sh->mb, &m->node);
}

const nx_shard_stats *nx_shard_get_stats(const nx_shard *sh)
{
    return &sh->st;
}

static inline uint32_t tenant_bit(const char *id, size_t len)
{
    return (uint32_t)XXH3_64bits(id, len) & (NX_TENANT_BITS - 1);
}

/* Engine hook: runs on the shard thread before the new tenant's first event
 * is applied; release, so a query thread that learns of that event (an
 * ingest ack) and then loads the word with acquire sees the bit. */
static void tenant_seen(void *arg, const char *id, size_t len)
{
    nx_shard *sh = arg;
    uint32_t b = tenant_bit(id, len);
    atomic_fetch_or_explicit(&sh->tenant_bits[b / 64], 1ull << (b % 64), memory_order_release);
}

bool nx_shard_may_have_tenant(const nx_shard *sh, const char *id, size_t id_len)
{
    uint32_t b = tenant_bit(id, id_len);
    uint64_t w = atomic_load_explicit(&((nx_shard *)sh)->tenant_bits[b / 64], memory_order_acquire);
    return (w >> (b % 64)) & 1;
}

int nx_shard_id(const nx_shard *sh)
{
    return sh->id;
}

/* ---- receive paths ---------------------------------------------------- */

static void handle(nx_shard *sh, nx_shard_msg *m);

/*
 * Answers queued messages between two datagrams, so a query never waits for
 * a whole receive burst (a recvmmsg batch of 64 full datagrams is ~2,000
 * lines, milliseconds of work). An empty check is one atomic load; the
 * eventfd stays set and is reset at the next epoll wakeup.
 */
static inline void poll_mailbox(nx_shard *sh)
{
    for (int i = 0; i < NX_MBOX_BURST; i++) {
        nx_mbox_node *n = nx_mailbox_pop(&sh->mb);
        if (!n)
            return;
        handle(sh, (nx_shard_msg *)n);
    }
}

static void nxb_dgram(nx_shard *sh, const uint8_t *p, size_t len, int64_t now,
                      nx_apply_result *res);

/* Reads up to NX_UDP_ROUNDS recvmmsg batches from fd. */
static void recv_dgrams(nx_shard *sh, int fd, uint8_t source, uint8_t format)
{
    for (int round = 0; round < NX_UDP_ROUNDS; round++) {
        for (uint32_t i = 0; i < sh->vlen; i++) {
            sh->iov[i].iov_base = sh->rbuf + (size_t)i * NX_DGRAM_MAX;
            sh->iov[i].iov_len = NX_DGRAM_MAX;
            struct msghdr *h = &sh->msgs[i].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_iov = &sh->iov[i];
            h->msg_iovlen = 1;
            h->msg_control = sh->cbuf + i * sh->cbuf_each;
            h->msg_controllen = sh->cbuf_each;
        }
        int n = recvmmsg(fd, sh->msgs, sh->vlen, MSG_DONTWAIT, NULL);
        st_add(format == NX_BATCH_NXB ? &sh->st.nxb_recv_calls : &sh->st.recv_calls, 1);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                nx_log(NX_LOG_WARN, "recvmmsg failed", "shard=%d errno=\"%s\"", sh->id,
                       strerror(errno));
            return;
        }
        int64_t now = nx_now_ms(); /* one clock read per batch */
        nx_apply_result res;
        memset(&res, 0, sizeof(res));
        uint64_t bytes = 0;
        uint32_t drops = 0;
        int have_drops = 0;
        for (int i = 0; i < n; i++) {
            struct msghdr *h = &sh->msgs[i].msg_hdr;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                    memcpy(&drops, CMSG_DATA(c), sizeof(drops));
                    have_drops = 1;
                }
            size_t len = sh->msgs[i].msg_len;
            bytes += len;
            if (format == NX_BATCH_NXB) {
                if (h->msg_flags & MSG_TRUNC)
                    res.nxb_rejected[NX_NXB_OVERSIZED]++;
                else
                    nxb_dgram(sh, (const uint8_t *)h->msg_iov->iov_base, len, now, &res);
                poll_mailbox(sh);
                continue;
            }
            if (h->msg_flags & MSG_TRUNC) {
                res.lines++;
                res.rejected++;
                res.reasons[NX_SD_TOO_LONG]++;
                continue;
            }
            nx_batch b = {.format = NX_BATCH_STATSD,
                          .source = source,
                          .tenant = sh->cfg->default_tenant,
                          .tenant_len = (uint8_t)strlen(sh->cfg->default_tenant),
                          .recv_ms = now,
                          .data = (const uint8_t *)h->msg_iov->iov_base,
                          .len = len};
            nx_shard_apply(sh, &b, &res);
            poll_mailbox(sh);
        }
        st_add(format == NX_BATCH_NXB ? &sh->st.nxb_datagrams : &sh->st.datagrams, (uint64_t)n);
        st_add(&sh->st.bytes, bytes);
        if (have_drops && format == NX_BATCH_NXB)
            st_set(&sh->st.kernel_drops_nxb, drops);
        else if (have_drops)
            st_set(source == NX_SRC_UDP ? &sh->st.kernel_drops_udp : &sh->st.kernel_drops_unix,
                   drops);
        publish(sh, &res);
        if ((uint32_t)n < sh->vlen)
            return;
    }
}

static void conn_close(nx_shard *sh, uint32_t idx)
{
    conn *c = &sh->conns[idx];
    epoll_ctl(sh->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    c->buf = NULL;
    c->fd = -1;
    c->len = 0;
    c->skipping = 0;
    st_add(&sh->st.tcp_conns, (uint64_t)-1);
}

static void accept_conns(nx_shard *sh)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(sh->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        uint32_t idx = 0;
        while (idx < sh->nconns_max && sh->conns[idx].fd >= 0)
            idx++;
        char *buf = idx < sh->nconns_max ? malloc(sh->tcp_buf) : NULL;
        if (!buf || epoll_add(sh->epfd, fd, (TAG_CONN << 32) | idx, EPOLLIN | EPOLLRDHUP)) {
            nx_log(NX_LOG_WARN, "refusing statsd tcp connection", "shard=%d open=%u", sh->id,
                   sh->nconns_max);
            free(buf);
            close(fd);
            st_add(&sh->st.tcp_refused, 1);
            continue;
        }
        sh->conns[idx] = (conn){.fd = fd, .buf = buf};
        st_add(&sh->st.tcp_conns, 1);
        st_add(&sh->st.tcp_accepted, 1);
    }
}

static void apply_text(nx_shard *sh, const char *p, size_t n, uint8_t source, int64_t now,
                       nx_apply_result *res)
{
    nx_batch b = {.format = NX_BATCH_STATSD,
                  .source = source,
                  .tenant = sh->cfg->default_tenant,
                  .tenant_len = (uint8_t)strlen(sh->cfg->default_tenant),
                  .recv_ms = now,
                  .data = (const uint8_t *)p,
                  .len = n};
    nx_shard_apply(sh, &b, res);
}

/* One read from a TCP connection; applies the complete lines. */
static void conn_read(nx_shard *sh, uint32_t idx)
{
    conn *c = &sh->conns[idx];
    ssize_t r = read(c->fd, c->buf + c->len, sh->tcp_buf - c->len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    int64_t now = nx_now_ms();
    nx_apply_result res;
    memset(&res, 0, sizeof(res));
    if (r <= 0) {
        /* EOF: the last line needs no '\n' */
        if (c->len && !c->skipping)
            apply_text(sh, c->buf, c->len, NX_SRC_TCP, now, &res);
        publish(sh, &res);
        conn_close(sh, idx);
        return;
    }
    st_add(&sh->st.bytes, (uint64_t)r);
    st_add(&sh->st.tcp_reads, 1);
    size_t start = c->len;
    c->len += (uint32_t)r;
    size_t from = 0;
    if (c->skipping) {
        char *nl = memchr(c->buf + start, '\n', c->len - start);
        if (!nl) {
            c->len = 0;
            return;
        }
        c->skipping = 0;
        from = (size_t)(nl - c->buf) + 1;
    }
    /* last '\n' in the buffer */
    char *last = NULL;
    for (size_t i = c->len; i > from; i--)
        if (c->buf[i - 1] == '\n') {
            last = c->buf + i - 1;
            break;
        }
    if (last) {
        apply_text(sh, c->buf + from, (size_t)(last - c->buf) + 1 - from, NX_SRC_TCP, now, &res);
        from = (size_t)(last - c->buf) + 1;
    }
    size_t rest = c->len - from;
    if (rest == sh->tcp_buf) {
        /* a line longer than the buffer: count it once, skip to its end */
        res.lines++;
        res.rejected++;
        res.reasons[NX_SD_TOO_LONG]++;
        on_reject(sh, NX_SD_TOO_LONG, c->buf, 64, now);
        c->skipping = 1;
        rest = 0;
    } else if (rest && from) {
        memmove(c->buf, c->buf + from, rest);
    }
    c->len = (uint32_t)rest;
    publish(sh, &res);
}

/* ---- NXB ----------------------------------------------------------------- */

/*
 * One NXB batch from either transport: the user-space quota (a no-op for
 * UDP under eBPF, which the kernel already charged), then the apply path.
 * The tenant number and event count are read at their fixed offsets; a
 * batch too short to hold them is left to the decoder to reject.
 */
static int nxb_batch(nx_shard *sh, const uint8_t *p, size_t len, int64_t now, int udp,
                     nx_apply_result *res, nx_ack_mode mode, nx_ack_fn done, void *arg)
{
    if (len >= NX_NXB_HDR_LEN && sh->ks) {
        uint32_t num, count;
        memcpy(&num, p + NX_NXB_OFF_TENANT, 4);
        memcpy(&count, p + NX_NXB_OFF_COUNT, 4);
        if (count <= NX_NXB_MAX_EVENTS && !nx_kstage_admit(sh->ks, sh->id, num, count, now, udp)) {
            st_add(&sh->st.nxb_quota_dropped, 1);
            st_add(&sh->st.nxb_quota_dropped_events, count);
            res->nxb_last_status = (uint8_t)(100 - NX_EQUOTA);
            res->nxb_last_applied = 0;
            return NX_EQUOTA;
        }
    }
    uint64_t before = res->events;
    nx_batch b = {.format = NX_BATCH_NXB,
                  .source = udp ? NX_SRC_UDP : NX_SRC_TCP,
                  .tenant = sh->cfg->default_tenant,
                  .tenant_len = (uint8_t)strlen(sh->cfg->default_tenant),
                  .recv_ms = now,
                  .data = p,
                  .len = len};
    int rc = nx_shard_submit(sh, &b, mode, res, done, arg);
    st_add(&sh->st.nxb_events, res->events - before);
    return rc;
}

static void nxb_dgram(nx_shard *sh, const uint8_t *p, size_t len, int64_t now,
                      nx_apply_result *res)
{
    nxb_batch(sh, p, len, now, 1, res, NX_ACK_NONE, NULL, NULL);
}

/* An NXB TCP ack waiting for the group commit that covers its batch. */
typedef struct nxb_pending {
    nx_shard *sh;
    uint32_t conn, gen;
    nx_nxb_ack ack;
} nxb_pending;

/* Released by the shard's end-of-iteration commit (nx_durable_flush), first
 * in first out, so acks leave in batch order. rc != 0: the commit failed and
 * the batch is not safe: the client is told (status 100 + error). */
static void nxb_ack_done(void *arg, int rc, uint64_t lsn)
{
    (void)lsn;
    nxb_pending *pd = arg;
    if (rc) {
        pd->ack.status = (uint8_t)(100 - rc);
        pd->ack.events = 0;
    }
    if (pd->sh->nxbt)
        nx_nxb_tcp_ack_deferred(pd->sh->nxbt, pd->conn, pd->gen, &pd->ack);
    free(pd);
}

/* nx_nxb_tcp's apply callback: one frame into the WAL and the engine; its ack
 * is answered when the group commit covering it is written or fsynced. */
static int nxb_frame(void *arg, const uint8_t *p, size_t n, int64_t now, uint32_t conn_idx,
                     uint32_t gen, nx_nxb_ack *ack)
{
    nx_shard *sh = arg;
    nx_apply_result res;
    memset(&res, 0, sizeof(res));
    nxb_pending *pd = malloc(sizeof(*pd)); /* per batch, not per event */
    if (!pd) {
        ack->status = (uint8_t)(100 - NX_ENOMEM);
        return 0;
    }
    *pd = (nxb_pending){.sh = sh, .conn = conn_idx, .gen = gen, .ack = *ack};
    nx_ack_mode mode = sh->cfg->ack_durable ? NX_ACK_DURABLE : NX_ACK_APPLIED;
    int rc = nxb_batch(sh, p, n, now, 0, &res, mode, nxb_ack_done, pd);
    publish(sh, &res);
    /* the callback fires at the end of this loop iteration: fill it now */
    pd->ack.status = res.nxb_last_status;
    pd->ack.events = res.nxb_last_applied;
    if (rc == 0)
        return NX_NXB_TCP_DEFERRED; /* parked by nx_shard_submit (also a rejected batch) */
    /* Refused before apply (quota, WAL full): nothing to wait for, but the
     * answer queues behind the parked acks of earlier batches (lsn 0 is
     * released by the same commit), so acks stay in batch order. */
    if (!pd->ack.status)
        pd->ack.status = (uint8_t)(100 - rc);
    if (nx_durable_park(sh->dur, 0, NX_ACK_APPLIED, nxb_ack_done, pd) == 0)
        return NX_NXB_TCP_DEFERRED;
    *ack = pd->ack;
    free(pd);
    return 0;
}

int nx_shard_set_nxb(nx_shard *sh, int udp_fd, int tcp_fd, nx_kstage *ks)
{
    assert(!sh->started);
    sh->ks = ks;
    if (tcp_fd >= 0 && !sh->nxbt) {
        int rc = nx_nxb_tcp_create(sh->epfd, TAG_NXBC << 32, sh->nconns_max, &sh->st, nxb_frame,
                                   sh, &sh->nxbt);
        if (rc)
            return rc;
    }
    if (udp_fd >= 0 && epoll_add(sh->epfd, udp_fd, TAG_NXBU << 32, EPOLLIN))
        return NX_EIO;
    if (tcp_fd >= 0 && epoll_add(sh->epfd, tcp_fd, TAG_NXBL << 32, EPOLLIN)) {
        if (udp_fd >= 0)
            epoll_ctl(sh->epfd, EPOLL_CTL_DEL, udp_fd, NULL);
        return NX_EIO;
    }
    sh->nxb_udp_fd = udp_fd;
    sh->nxb_tcp_fd = tcp_fd;
    return 0;
}

/* ---- queries ----------------------------------------------------------- */

typedef struct list_ctx {
    nx_shard_msg *m;
    size_t cap;
    int err;
    nx_tenant *tenant;
} list_ctx;

static int grow(void **v, size_t *cap, size_t n, size_t each)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*v, nc * each);
    if (!p)
        return NX_ENOMEM;
    *v = p;
    *cap = nc;
    return 0;
}

static int list_stream(nx_stream *s, void *arg)
{
    list_ctx *lc = arg;
    nx_shard_msg *m = lc->m;
    size_t klen;
    const char *key = nx_stream_key(s, &klen);
    if (m->key_len && (klen < m->key_len || memcmp(key, m->key, m->key_len) != 0))
        return 0;
    if (grow((void **)&m->streams, &lc->cap, m->nstreams, sizeof(nx_stream_info))) {
        lc->err = NX_ENOMEM;
        return 1;
    }
    nx_stream_info *in = &m->streams[m->nstreams];
    memset(in, 0, sizeof(*in));
    in->key = strndup(key, klen);
    if (!in->key) {
        lc->err = NX_ENOMEM;
        return 1;
    }
    in->type = nx_stream_type(s);
    in->last_update = nx_stream_last_update(s);
    m->nstreams++;
    if (m->with_counts) {
        nx_summary sum;
        if (nx_stream_read(s, m->window_s, m->now_ms, &sum) == 0) {
            in->count = sum.count;
            in->sum = sum.sum;
            nx_summary_free(&sum);
        }
    }
    return 0;
}

static int export_stream(nx_stream *s, void *arg)
{
    list_ctx *lc = arg;
    nx_shard_msg *m = lc->m;
    if (grow((void **)&m->exp, &lc->cap, m->nexp, sizeof(nx_export_entry))) {
        lc->err = NX_ENOMEM;
        return 1;
    }
    nx_export_entry *e = &m->exp[m->nexp];
    memset(e, 0, sizeof(*e));
    size_t klen;
    const char *key = nx_stream_key(s, &klen);
    e->type = nx_stream_type(s);
    e->key = strndup(key, klen);
    e->tenant = strdup(nx_tenant_id(lc->tenant));
    nx_summary_init(&e->all, e->type, NX_WINDOW_ALL);
    nx_summary_init(&e->win, e->type, m->window_s);
    if (!e->key || !e->tenant) {
        free(e->key);
        free(e->tenant);
        lc->err = NX_ENOMEM;
        return 1;
    }
    m->nexp++;
    nx_summary_free(&e->all);
    int rc = nx_stream_read(s, NX_WINDOW_ALL, m->now_ms, &e->all);
    if (rc) {
        nx_summary_init(&e->all, e->type, NX_WINDOW_ALL);
        lc->err = rc;
        return 1;
    }
    if (nx_type_has_quantiles(e->type) && m->window_s != NX_WINDOW_ALL) {
        nx_summary_free(&e->win);
        rc = nx_stream_read(s, m->window_s, m->now_ms, &e->win);
        if (rc) {
            nx_summary_init(&e->win, e->type, m->window_s);
            lc->err = rc;
            return 1;
        }
    }
    return 0;
}

static int export_tenant(nx_tenant *t, void *arg)
{
    list_ctx *lc = arg;
    lc->tenant = t;
    nx_tenant_foreach_stream(t, export_stream, lc);
    return lc->err != 0;
}

static int count_tenant(nx_tenant *t, void *arg)
{
    nx_engine_counts *c = arg;
    nx_tenant_stats ts;
    nx_tenant_get_stats(t, &ts);
    c->tenants++;
    c->streams += ts.streams;
    c->bytes += ts.bytes;
    c->events += ts.events;
    c->rejected_late += ts.rejected_late;
    c->rejected_future += ts.rejected_future;
    c->rejected_quota += ts.rejected_quota;
    c->rejected_type += ts.rejected_type;
    return 0;
}

/* Ack of an HTTP ingest slice: the sender may free m once the waiter fires. */
static void ingest_done(void *arg, int rc, uint64_t lsn)
{
    nx_shard_msg *m = arg;
    (void)lsn;
    m->rc = rc;
    nx_waiter_done(m->waiter);
}

static void handle(nx_shard *sh, nx_shard_msg *m)
{
    int parked = 0;
    int boosted = m->boosted; /* m may be gone once its waiter fired */
    m->rc = 0;
    nx_tenant *t = NULL;
    if (m->tenant)
        t = nx_engine_tenant_find(sh->engine, m->tenant, m->tenant_len);
    switch (m->kind) {
    case NX_MSG_STOP:
        sh->stopping = 1;
        break;
    case NX_MSG_INGEST:
        memset(&m->ingest, 0, sizeof(m->ingest));
        m->rc = nx_shard_submit(sh, &m->batch,
                                !m->waiter ? NX_ACK_NONE : m->ack ? m->ack : NX_ACK_APPLIED,
                                &m->ingest, m->waiter ? ingest_done : NULL, m);
        parked = m->rc == 0 && m->waiter; /* answered by nx_durable_flush */
        publish(sh, &m->ingest);
        st_add(&sh->st.bytes, m->batch.len);
        break;
    case NX_MSG_SNAPSHOT:
        m->rc = nx_durable_snapshot(sh->dur, false, &m->lsn);
        break;
    case NX_MSG_SUMMARY: {
        m->found = 0;
        nx_stream *s = t ? nx_tenant_stream_find(t, m->key, m->key_len) : NULL;
        if (s) {
            m->rc = nx_stream_read(s, m->window_s, m->now_ms, &m->summary);
            m->found = m->rc == 0;
        }
        break;
    }
    case NX_MSG_STREAMS:
        if (t) {
            list_ctx lc = {.m = m};
            nx_tenant_foreach_stream(t, list_stream, &lc);
            m->rc = lc.err;
        }
        break;
    case NX_MSG_SERIES: {
        nx_stream *s = t ? nx_tenant_stream_find(t, m->key, m->key_len) : NULL;
        m->found = s != NULL;
        if (!s)
            break;
        size_t max = (size_t)((m->to_ms - m->from_ms) / ((int64_t)m->step_s * 1000)) + 2;
        if (max > 1000000)
            max = 1000000;
        m->points = calloc(max, sizeof(nx_point));
        if (!m->points) {
            m->rc = NX_ENOMEM;
            break;
        }
        int n = nx_stream_series(s, m->from_ms, m->to_ms, m->step_s, m->now_ms, m->points, max);
        if (n < 0)
            m->rc = n;
        else
            m->npoints = (size_t)n;
        break;
    }
    case NX_MSG_EXPORT: {
        list_ctx lc = {.m = m};
        nx_engine_foreach_tenant(sh->engine, export_tenant, &lc);
        m->rc = lc.err;
        break;
    }
    case NX_MSG_STATS:
        memset(&m->counts, 0, sizeof(m->counts));
        nx_engine_foreach_tenant(sh->engine, count_tenant, &m->counts);
        break;
    case NX_MSG_UDF:
        if (sh->udf && m->udf)
            nx_udf_shard_handle(sh->udf, m->udf);
        break;
    case NX_MSG_TENANT_DELETE:
    case NX_MSG_TENANT_STATS:
        m->rc = nx_shard_tenants_handle(&sh->tn, sh->engine, m);
        break;
    default:
        m->rc = NX_EINVAL;
    }
    st_add(&sh->st.messages, 1);
    nx_waiter *w = m->waiter;
    /* m may be freed by its sender as soon as the waiter fires */
    if (w && !parked)
        nx_waiter_done(w);
    if (boosted)
        nx_rt_boost_drop(&sh->boost);
}

static void drain_mailbox(nx_shard *sh, int limit)
{
    nx_mailbox_ack(&sh->mb);
    for (int i = 0; limit < 0 || i < limit; i++) {
        nx_mbox_node *n = nx_mailbox_pop(&sh->mb);
        if (!n)
            return;
        handle(sh, (nx_shard_msg *)n);
    }
    /* more left: make sure we come back */
    uint64_t one = 1;
    ssize_t w = write(sh->mb.efd, &one, sizeof(one));
    (void)w;
}

static void *shard_main(void *arg)
{
    nx_shard *sh = arg;
    char name[16];
    snprintf(name, sizeof(name), "nx-shard-%d", sh->id);
    pthread_setname_np(pthread_self(), name);
    nx_rt_boost_bind(&sh->boost);
    if (nx_prefault_bind(sh->pf, sh->id))
        nx_log(NX_LOG_WARN, "prefault arena not bound", "shard=%d", sh->id);
    struct epoll_event evs[64];
    while (!sh->stopping) {
        int n = epoll_wait(sh->epfd, evs, 64, nx_durable_timeout_ms(sh->dur));
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64 >> 32;
            uint32_t idx = (uint32_t)evs[i].data.u64;
            switch (tag) {
            case TAG_MBOX: drain_mailbox(sh, NX_MBOX_BURST); break;
            case TAG_UDP: recv_dgrams(sh, sh->udp_fd, NX_SRC_UDP, NX_BATCH_STATSD); break;
            case TAG_UNIX: recv_dgrams(sh, sh->unix_fd, NX_SRC_UNIX, NX_BATCH_STATSD); break;
            case TAG_NXBU: recv_dgrams(sh, sh->nxb_udp_fd, NX_SRC_UDP, NX_BATCH_NXB); break;
            case TAG_NXBL: nx_nxb_tcp_accept(sh->nxbt, sh->nxb_tcp_fd, sh->id); break;
            case TAG_NXBC: nx_nxb_tcp_event(sh->nxbt, idx, evs[i].events); break;
            case TAG_TCPL: accept_conns(sh); break;
            case TAG_CONN:
                if (idx < sh->nconns_max && sh->conns[idx].fd >= 0)
                    conn_read(sh, idx);
                break;
            }
        }
        nx_durable_flush(sh->dur, nx_now_ms()); /* group commit, acks, snapshots */
    }
    /* answer whatever is still queued so no sender waits forever */
    drain_mailbox(sh, -1);
    nx_durable_flush(sh->dur, nx_now_ms());
    /* clean shutdown: a final snapshot, so the next start replays nothing */
    if (nx_durable_enabled(sh->dur)) {
        uint64_t lsn;
        int rc = nx_durable_snapshot(sh->dur, true, &lsn);
        nx_log(rc ? NX_LOG_ERROR : NX_LOG_INFO, "shutdown snapshot", "shard=%d lsn=%llu error=%s",
               sh->id, (unsigned long long)lsn, rc ? nx_errname(rc) : "none");
    }
    return NULL;
}

int nx_shard_start(nx_shard *sh)
{
    if (pthread_create(&sh->thr, NULL, shard_main, sh) != 0)
        return NX_EIO;
    sh->started = 1;
    if (sh->cfg->pin) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(sh->id % ncpu, &set);
            if (pthread_setaffinity_np(sh->thr, sizeof(set), &set) != 0)
                nx_log(NX_LOG_WARN, "cannot pin shard", "shard=%d", sh->id);
        }
    }
    return 0;
}

void nx_shard_stop(nx_shard *sh)
{
    if (!sh->started)
        return;
    nx_shard_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = NX_MSG_STOP;
    nx_shard_post(sh, &m);
    pthread_join(sh->thr, NULL);
    sh->started = 0;
}

void nx_stream_infos_free(nx_stream_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].key);
    free(v);
}

void nx_export_free(nx_export_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].tenant);
        nx_summary_free(&v[i].all);
        nx_summary_free(&v[i].win);
    }
    free(v);
}
