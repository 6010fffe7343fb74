/*
 * nx_nxb_tcp.c — NXB TCP connections of one shard (see nx_nxb_tcp.h).
 */
#include "server/nx_nxb_tcp.h"
#include "server/nx_log.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_INIT 65536u
#define OUT_CAP (256u * NX_NXB_ACK_LEN)

typedef struct nconn {
    int fd;             /* -1: free */
    int blocked;        /* out buffer full: waiting for EPOLLOUT */
    uint32_t gen;       /* bumped each time the slot takes a new connection */
    uint32_t pending;   /* deferred acks not yet answered */
    int closing;        /* EOF or out of sync: close once pending reaches 0 */
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint8_t out[OUT_CAP];
    uint32_t out_off, out_len;
} nconn;

struct nx_nxb_tcp {
    int epfd;
    uint64_t tag;
    uint32_t max;
    nconn *c;
    nx_shard_stats *st;
    nx_nxb_tcp_apply_fn fn;
    void *arg;
};

static inline void add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

int nx_nxb_tcp_create(int epfd, uint64_t tag_base, uint32_t max_conns, nx_shard_stats *st,
                      nx_nxb_tcp_apply_fn fn, void *arg, nx_nxb_tcp **out)
{
    nx_nxb_tcp *t = calloc(1, sizeof(*t));
    if (!t)
        return NX_ENOMEM;
    t->c = calloc(max_conns, sizeof(nconn));
    if (!t->c) {
        free(t);
        return NX_ENOMEM;
    }
    for (uint32_t i = 0; i < max_conns; i++)
        t->c[i].fd = -1;
    *t = (nx_nxb_tcp){.epfd = epfd, .tag = tag_base, .max = max_conns, .c = t->c, .st = st,
                      .fn = fn, .arg = arg};
    *out = t;
    return 0;
}

static void conn_close(nx_nxb_tcp *t, nconn *c)
{
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    uint32_t gen = c->gen; /* kept: a late deferred ack must not match the next connection */
    memset(c, 0, sizeof(*c));
    c->gen = gen;
    c->fd = -1;
    add(&t->st->nxb_tcp_conns, (uint64_t)-1);
}

void nx_nxb_tcp_destroy(nx_nxb_tcp *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->max; i++)
        if (t->c[i].fd >= 0)
            conn_close(t, &t->c[i]);
    free(t->c);
    free(t);
}

void nx_nxb_tcp_accept(nx_nxb_tcp *t, int listen_fd, int shard_id)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        uint32_t idx = 0;
        while (idx < t->max && t->c[idx].fd >= 0)
            idx++;
        uint8_t *in = idx < t->max ? malloc(IN_INIT) : NULL;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = t->tag | idx};
        if (!in || epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev)) {
            nx_log(NX_LOG_WARN, "refusing nxb tcp connection", "shard=%d open=%u", shard_id,
                   t->max);
            free(in);
            close(fd);
            add(&t->st->tcp_refused, 1);
            continue;
        }
        nconn *c = &t->c[idx];
        uint32_t gen = c->gen + 1;
        memset(c, 0, sizeof(*c));
        c->gen = gen;
        c->fd = fd;
        c->in = in;
        c->in_cap = IN_INIT;
        add(&t->st->nxb_tcp_conns, 1);
        add(&t->st->nxb_tcp_accepted, 1);
    }
}

/* Writes what the out buffer holds; 0, or -1 when the connection is dead. */
static int flush(nconn *c)
{
    while (c->out_len > c->out_off) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->out_off += (uint32_t)w;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    else if (c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return 0;
}

void nx_nxb_tcp_ack(nx_nxb_tcp *t, uint32_t idx, const nx_nxb_ack *ack)
{
    nconn *c = &t->c[idx];
    if (c->fd < 0)
        return;
    if (c->out_len + NX_NXB_ACK_LEN > OUT_CAP && flush(c) < 0)
        return; /* dead: the next event closes it */
    if (c->out_len + NX_NXB_ACK_LEN > OUT_CAP)
        return; /* unreachable: the reader stops before the buffer can overflow */
    nx_nxb_ack_encode(ack, c->out + c->out_len);
    c->out_len += NX_NXB_ACK_LEN;
    add(&t->st->nxb_acks, 1);
}

void nx_nxb_tcp_ack_deferred(nx_nxb_tcp *t, uint32_t idx, uint32_t gen, const nx_nxb_ack *ack)
{
    if (idx >= t->max || t->c[idx].fd < 0 || t->c[idx].gen != gen)
        return;
    nconn *c = &t->c[idx];
    assert(c->pending > 0);
    c->pending--;
    nx_nxb_tcp_ack(t, idx, ack);
    flush(c); /* an error shows at the connection's next event */
    if (c->closing && !c->pending)
        conn_close(t, c);
}

static void set_events(nx_nxb_tcp *t, uint32_t idx, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = t->tag | idx};
    epoll_ctl(t->epfd, EPOLL_CTL_MOD, t->c[idx].fd, &ev);
}

/* Applies every complete frame in the buffer while there is room for its
 * ack. Returns -1 when the stream is out of sync (close it), 1 when it
 * stopped for lack of ack room with frames left, else 0. */
static int frames(nx_nxb_tcp *t, uint32_t idx, int64_t now)
{
    nconn *c = &t->c[idx];
    uint32_t off = 0;
    int rc = 0;
    for (;;) {
        /* room for this frame's ack and every deferred one still to come */
        if (c->out_len + ((size_t)c->pending + 1) * NX_NXB_ACK_LEN > OUT_CAP) {
            rc = 1;
            break;
        }
        int reason = 0;
        long fl = nx_nxb_frame_len(c->in + off, c->in_len - off, NX_NXB_MAX_FRAME, &reason);
        if (fl < 0) {
            if (reason > 0 && reason < NX_NXB_NREASONS)
                add(&t->st->nxb_rejected[reason], 1);
            add(&t->st->nxb_tcp_desync, 1);
            rc = -1;
            break;
        }
        if (fl == 0 || (uint32_t)fl > c->in_len - off) {
            if (fl > 0 && (uint32_t)fl > c->in_cap) {
                uint8_t *nb = realloc(c->in, (size_t)fl);
                if (!nb) {
                    rc = -1;
                    break;
                }
                c->in = nb;
                c->in_cap = (uint32_t)fl;
            }
            break;
        }
        const uint8_t *p = c->in + off;
        nx_nxb_ack ack = {0};
        memcpy(&ack.tenant_num, p + NX_NXB_OFF_TENANT, 4);
        memcpy(&ack.sequence, p + 16, 8);
        if (t->fn(t->arg, p, (size_t)fl, now, idx, c->gen, &ack) == 0)
            nx_nxb_tcp_ack(t, idx, &ack);
        else
            c->pending++;
        off += (uint32_t)fl;
    }
    if (off && off < c->in_len)
        memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return rc;
}

/* Closes a connection that will be read no more (EOF, out of sync) once its
 * deferred acks are out: until then it only waits for them, reading nothing. */
static void conn_finish(nx_nxb_tcp *t, uint32_t idx)
{
    nconn *c = &t->c[idx];
    flush(c); /* acks of what was applied, best effort */
    if (!c->pending) {
        conn_close(t, c);
        return;
    }
    c->closing = 1;
    set_events(t, idx, 0); /* EPOLLHUP/EPOLLERR still wake us */
}

/* Applies buffered frames, flushing acks in between, until the frames run
 * out or the client stops reading acks (then waits for EPOLLOUT). Returns -1
 * when the connection is dead (close it now), -2 when the stream is out of
 * sync (finish it: acks of the frames before it still go out). */
static int pump(nx_nxb_tcp *t, uint32_t idx, int64_t now)
{
    nconn *c = &t->c[idx];
    for (;;) {
        int rc = frames(t, idx, now);
        if (rc < 0) {
            nx_log(NX_LOG_WARN, "closing nxb tcp connection: stream out of sync", NULL);
            return -2;
        }
        if (flush(c) < 0)
            return -1;
        if (rc == 0)
            break;
        if (c->out_len + ((size_t)c->pending + 1) * NX_NXB_ACK_LEN > OUT_CAP) {
            if (!c->blocked) {
                c->blocked = 1;
                set_events(t, idx, EPOLLOUT | EPOLLRDHUP);
            }
            return 0;
        }
    }
    if (c->blocked) {
        c->blocked = 0;
        set_events(t, idx, EPOLLIN | EPOLLRDHUP);
    }
    return 0;
}

void nx_nxb_tcp_event(nx_nxb_tcp *t, uint32_t idx, uint32_t events)
{
    if (idx >= t->max || t->c[idx].fd < 0)
        return;
    nconn *c = &t->c[idx];
    int64_t now = nx_now_ms();
    if (c->closing) {
        if (events & (EPOLLHUP | EPOLLERR))
            conn_close(t, c); /* the peer is gone: its acks have nowhere to go */
        return;
    }
    if (c->blocked) {
        int rc = pump(t, idx, now);
        if (rc == -1)
            conn_close(t, c);
        else if (rc == -2)
            conn_finish(t, idx);
        return; /* read again on the next EPOLLIN */
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    assert(c->in_len < c->in_cap); /* pump() consumed every complete frame */
    ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        conn_finish(t, idx);
        return;
    }
    add(&t->st->bytes, (uint64_t)r);
    add(&t->st->tcp_reads, 1);
    c->in_len += (uint32_t)r;
    int rc = pump(t, idx, now);
    if (rc == -1)
        conn_close(t, c);
    else if (rc == -2)
        conn_finish(t, idx);
}
