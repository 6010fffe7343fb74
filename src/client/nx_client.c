/*
 * nx_client.c — libnexus-client (include/nexus_client.h): NXB batches over
 * UDP or TCP.
 *
 * A client owns one nx_nxb_writer over two buffers of batch_bytes and a
 * table of registered streams. Each stream remembers the generation of the
 * batch it was last declared in and its index there, so a stream is
 * declared at most once per batch and never when unused. When an event
 * does not fit, the batch is sent and the event retried in a fresh one.
 *
 * TCP: frames are written whole (a loop over partial writes); acks
 * (32-byte frames, nx_nxb.h) are read opportunistically after each send
 * (non-blocking) and synchronously in nx_client_wait_acks(). The daemon
 * acks in order, but the client only counts: it matches nothing by
 * sequence beyond checking the frame, so out-of-order acks are fine too.
 */
#include "nexus_client.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingest/nx_nxb.h"

typedef struct nxc_stream {
    char *key;
    uint16_t key_len;
    uint8_t type;
    uint32_t gen;   /* batch generation it is declared in (0 = never) */
    uint32_t idx;   /* its index in that batch */
} nxc_stream;

struct nx_client {
    nx_client_proto proto;
    int fd;
    uint32_t tenant_num;
    uint8_t flags;
    uint8_t *buf, *evbuf;
    size_t cap;
    nx_nxb_writer w;
    uint32_t gen;
    uint64_t seq;
    nxc_stream *streams;
    uint32_t nstreams, streams_cap;
    uint8_t ack[NX_NXB_ACK_LEN];
    size_t ack_have;
    int refused_since_wait;
    nx_client_stats st;
};

static void nxc_new_batch(nx_client *c)
{
    c->gen++;
    if (c->gen == 0)
        c->gen = 1;
    nx_nxb_writer_reset(&c->w, c->tenant_num, ++c->seq, 0, c->flags);
}

int nx_client_open(nx_client_proto proto, const char *host, uint16_t port,
                   const nx_client_opts *opts, nx_client **out)
{
    if (!host || !out || (proto != NX_CLIENT_UDP && proto != NX_CLIENT_TCP))
        return NX_EINVAL;
    nx_client_opts o = NX_CLIENT_OPTS_INIT;
    if (opts)
        o = *opts;
    size_t cap = o.batch_bytes ? o.batch_bytes : (proto == NX_CLIENT_UDP ? 1400 : 65536);
    if (cap < 64 || cap > (proto == NX_CLIENT_UDP ? NX_NXB_MAX_UDP : NX_NXB_MAX_FRAME))
        return NX_EINVAL;
    nx_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NX_ENOMEM;
    c->buf = malloc(cap);
    c->evbuf = malloc(cap);
    if (!c->buf || !c->evbuf) {
        free(c->buf);
        free(c->evbuf);
        free(c);
        return NX_ENOMEM;
    }
    c->fd = -1;
    c->proto = proto;
    c->cap = cap;
    c->tenant_num = o.tenant_num;
    c->flags = (uint8_t)((o.crc ? NX_NXB_F_CRC : 0) | (proto == NX_CLIENT_TCP ? NX_NXB_F_ACK : 0));
    int rc = nx_nxb_writer_init(&c->w, c->buf, c->evbuf, cap);
    assert(rc == 0);
    (void)rc;
    nxc_new_batch(c);

    char ports[8];
    snprintf(ports, sizeof(ports), "%u", port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = proto == NX_CLIENT_UDP ? SOCK_DGRAM : SOCK_STREAM;
    if (getaddrinfo(host, ports, &hints, &ai) != 0 || !ai) {
        nx_client_close(c);
        errno = EHOSTUNREACH;
        return NX_EIO;
    }
    c->fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            c->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    if (c->fd < 0) {
        int e = errno;
        nx_client_close(c);
        errno = e;
        return NX_EIO;
    }
    if (proto == NX_CLIENT_TCP) {
        int one = 1;
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    *out = c;
    return NX_OK;
}

/* Reads whatever ack bytes are available (or waits up to timeout_ms if
 * block); returns NX_OK, NX_EIO on EOF/error, NX_ECORRUPT on a bad frame. */
static int nxc_read_acks(nx_client *c, int timeout_ms)
{
    for (;;) {
        if (timeout_ms > 0) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            int pr = poll(&pfd, 1, timeout_ms);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0)
                return NX_OK;
        }
        ssize_t n = recv(c->fd, c->ack + c->ack_have, NX_NXB_ACK_LEN - c->ack_have, MSG_DONTWAIT);
        if (n == 0)
            return NX_EIO;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? NX_OK : NX_EIO;
        }
        c->ack_have += (size_t)n;
        if (c->ack_have < NX_NXB_ACK_LEN)
            continue;
        c->ack_have = 0;
        nx_nxb_ack a;
        if (nx_nxb_ack_decode(c->ack, NX_NXB_ACK_LEN, &a))
            return NX_ECORRUPT;
        if (a.status == 0) {
            c->st.batches_acked++;
            c->st.events_acked += a.events;
        } else {
            c->st.batches_refused++;
            c->st.last_refusal = a.status;
            c->refused_since_wait = 1;
        }
        return NX_OK; /* one frame at a time: the caller loops */
    }
}

static int nxc_send_all(nx_client *c, const uint8_t *p, size_t n)
{
    if (c->proto == NX_CLIENT_UDP) {
        ssize_t r;
        do
            r = send(c->fd, p, n, 0);
        while (r < 0 && errno == EINTR);
        return r == (ssize_t)n ? NX_OK : NX_EIO;
    }
    while (n) {
        ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return NX_EIO;
        }
        p += r;
        n -= (size_t)r;
    }
    return NX_OK;
}

int nx_client_flush(nx_client *c)
{
    if (c->w.nevents == 0)
        return NX_OK;
    size_t len;
    int rc = nx_nxb_writer_finish(&c->w, &len);
    if (rc)
        return rc;
    uint32_t events = c->w.nevents;
    rc = nxc_send_all(c, c->buf, len);
    nxc_new_batch(c);
    if (rc)
        return rc;
    c->st.batches_sent++;
    c->st.events_sent += events;
    c->st.bytes_sent += len;
    if (c->proto == NX_CLIENT_TCP) { /* drain acks so the server never blocks on us */
        uint64_t before;
        do {
            before = c->st.batches_acked + c->st.batches_refused;
            if ((rc = nxc_read_acks(c, 0)))
                return rc;
        } while (c->st.batches_acked + c->st.batches_refused != before);
    }
    return NX_OK;
}

int nx_client_stream(nx_client *c, nx_type type, const char *key, size_t key_len, uint32_t *sid)
{
    if (type < NX_TYPE_COUNTER || type > NX_TYPE_SET || !key || key_len == 0 ||
        key_len > NX_NXB_MAX_KEY || !sid)
        return NX_EINVAL;
    if (c->nstreams == c->streams_cap) {
        uint32_t ncap = c->streams_cap ? c->streams_cap * 2 : 16;
        nxc_stream *ns = realloc(c->streams, ncap * sizeof(*ns));
        if (!ns)
            return NX_ENOMEM;
        c->streams = ns;
        c->streams_cap = ncap;
    }
    char *k = malloc(key_len);
    if (!k)
        return NX_ENOMEM;
    memcpy(k, key, key_len);
    nxc_stream *s = &c->streams[c->nstreams];
    s->key = k;
    s->key_len = (uint16_t)key_len;
    s->type = (uint8_t)type;
    s->gen = 0;
    s->idx = 0;
    *sid = c->nstreams++;
    return NX_OK;
}

/* Makes sure stream sid is declared in the current batch. */
static int nxc_declare(nx_client *c, nxc_stream *s)
{
    if (s->gen == c->gen)
        return NX_OK;
    int rc = nx_nxb_writer_stream(&c->w, (nx_type)s->type, s->key, s->key_len, &s->idx);
    if (rc == NX_OK)
        s->gen = c->gen;
    return rc;
}

static int nxc_add(nx_client *c, uint32_t sid, double value, const char *member, size_t mlen,
                   int64_t ts_ms, double rate, int gauge_delta)
{
    if (sid >= c->nstreams)
        return NX_EINVAL;
    nxc_stream *s = &c->streams[sid];
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = nxc_declare(c, s);
        if (rc == NX_OK)
            rc = member ? nx_nxb_writer_add_member(&c->w, s->idx, member, mlen, ts_ms, rate)
                        : nx_nxb_writer_add(&c->w, s->idx, value, ts_ms, rate, gauge_delta);
        if (rc != NX_ETOOBIG || attempt == 1)
            return rc;
        if (c->w.nevents > 0) {
            if ((rc = nx_client_flush(c)))
                return rc;
        } else {
            nxc_new_batch(c); /* only declarations: start clean */
        }
    }
    return NX_ETOOBIG; /* not reached */
}

int nx_client_add(nx_client *c, uint32_t sid, double value, int64_t ts_ms, double rate,
                  int gauge_delta)
{
    return nxc_add(c, sid, value, NULL, 0, ts_ms, rate, gauge_delta);
}

int nx_client_set_add(nx_client *c, uint32_t sid, const char *member, size_t len)
{
    if (!member)
        return NX_EINVAL;
    return nxc_add(c, sid, 0.0, member, len, 0, 1.0, 0);
}

int nx_client_wait_acks(nx_client *c, int timeout_ms)
{
    if (c->proto != NX_CLIENT_TCP)
        return NX_OK;
    while (c->st.batches_acked + c->st.batches_refused < c->st.batches_sent) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return NX_ETIMEOUT;
        int rc = nxc_read_acks(c, 0);
        if (rc)
            return rc;
    }
    int refused = c->refused_since_wait;
    c->refused_since_wait = 0;
    return refused ? NX_EQUOTA : NX_OK;
}

void nx_client_get_stats(const nx_client *c, nx_client_stats *out) { *out = c->st; }

void nx_client_close(nx_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0) {
        (void)nx_client_flush(c);
        close(c->fd);
    }
    for (uint32_t i = 0; i < c->nstreams; i++)
        free(c->streams[i].key);
    free(c->streams);
    free(c->buf);
    free(c->evbuf);
    free(c);
}
