/*
 * test_steer.c — the kernel stage for real: a SO_REUSEPORT group of N UDP
 * sockets on 127.0.0.1, the real eBPF program (as root; CI runs as root),
 * NXB datagrams of several tenants from several source ports.
 * Proves: each tenant's datagrams arrive on exactly its owner socket; a
 * tenant over its quota is dropped in the kernel (kernel counters rise, the
 * sockets never see the datagrams) while another tenant gets all of its
 * own; the cBPF fallback steers by tenant too; plain mode delivers
 * everything somewhere; all three modes decode to the same per-tenant sums.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingest/nx_nxb.h"
#include "ingest/nx_steer.h"

#define NSOCK 4
#define NSEND 8
#define NTEN 10

typedef struct group {
    int fds[NSOCK];
    int senders[NSEND];
    struct sockaddr_in addr;
} group;

static void group_open(group *g)
{
    memset(g, 0, sizeof(*g));
    g->addr.sin_family = AF_INET;
    g->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < NSOCK; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        assert_true(fd >= 0);
        int one = 1, buf = 8 << 20;
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)))
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        assert_int_equal(bind(fd, (struct sockaddr *)&g->addr, sizeof(g->addr)), 0);
        if (i == 0) {
            socklen_t sl = sizeof(g->addr);
            assert_int_equal(getsockname(fd, (struct sockaddr *)&g->addr, &sl), 0);
        }
        g->fds[i] = fd;
    }
    for (int i = 0; i < NSEND; i++) {
        g->senders[i] = socket(AF_INET, SOCK_DGRAM, 0);
        assert_true(g->senders[i] >= 0);
    }
}

static void group_close(group *g)
{
    for (int i = 0; i < NSOCK; i++)
        close(g->fds[i]);
    for (int i = 0; i < NSEND; i++)
        close(g->senders[i]);
}

static uint8_t g_buf[2048], g_ev[2048];

/* An NXB batch of `events` counter increments of `value` for a tenant. */
static size_t make_batch(uint32_t tenant, int events, double value)
{
    nx_nxb_writer w;
    assert_int_equal(nx_nxb_writer_init(&w, g_buf, g_ev, sizeof(g_buf)), 0);
    nx_nxb_writer_reset(&w, tenant, 1, 0, 0);
    uint32_t c;
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_COUNTER, "hits|k:v", 8, &c), 0);
    for (int i = 0; i < events; i++)
        assert_int_equal(nx_nxb_writer_add(&w, c, value, 0, 1.0, 0), 0);
    size_t len;
    assert_int_equal(nx_nxb_writer_finish(&w, &len), 0);
    return len;
}

static void send_on(group *g, int sender, const void *p, size_t n)
{
    ssize_t r = sendto(g->senders[sender % NSEND], p, n, 0, (struct sockaddr *)&g->addr,
                       sizeof(g->addr));
    assert_int_equal(r, (ssize_t)n);
}

/* What arrived: per socket per tenant datagram counts and decoded sums. */
typedef struct rx {
    int pkts[NSOCK][NTEN + 1];   /* [NTEN] = non-NXB text */
    double sum[NTEN];            /* decoded event values per tenant */
    int total;
} rx;

static void drain(group *g, rx *r)
{
    static uint8_t b[65536];
    static nx_nxb_batch batch;
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < NSOCK; i++) {
        for (;;) {
            ssize_t n = recv(g->fds[i], b, sizeof(b), MSG_DONTWAIT);
            if (n < 0) {
                assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
                break;
            }
            r->total++;
            if (nx_nxb_decode(b, (size_t)n, &batch, NULL, NULL) == 0) {
                assert_true(batch.tenant_num < NTEN);
                r->pkts[i][batch.tenant_num]++;
                nx_nxb_iter it;
                nx_nxb_event ev;
                nx_nxb_iter_init(&it, &batch);
                while (nx_nxb_next(&it, &ev))
                    r->sum[batch.tenant_num] += ev.u.value;
            } else {
                r->pkts[i][NTEN]++;
            }
        }
    }
}

/* Sends K batches per tenant (3 events each) and 40 StatsD text datagrams,
 * rotating over the source sockets. */
#define K 50
static void send_mix(group *g)
{
    for (int k = 0; k < K; k++)
        for (uint32_t t = 0; t < NTEN; t++) {
            size_t len = make_batch(t, 3, (double)(t + 1));
            send_on(g, k + (int)t, g_buf, len);
        }
    for (int i = 0; i < 40; i++) {
        char line[64];
        int l = snprintf(line, sizeof(line), "text.metric:%d|c", i);
        send_on(g, i, line, (size_t)l);
    }
}

/* Each tenant on exactly one socket: expect[t] (or any one if < 0). */
static void check_steered(const rx *r, const int *expect)
{
    for (int t = 0; t < NTEN; t++) {
        int where = -1, got = 0;
        for (int i = 0; i < NSOCK; i++) {
            if (r->pkts[i][t]) {
                if (where >= 0)
                    fail_msg("tenant %d arrived on sockets %d and %d", t, where, i);
                where = i;
                got = r->pkts[i][t];
            }
        }
        assert_int_equal(got, K);
        if (expect)
            assert_int_equal(where, expect[t]);
        assert_true(r->sum[t] == (double)K * 3 * (t + 1));
    }
}

static int have_root(void) { return geteuid() == 0; }

/* Opens a group and attaches the eBPF program (mode: AUTO or EBPF); skips
 * the test where eBPF cannot load, which as root must not happen. */
static nx_steer *open_ebpf_or_skip(group *g, nx_steer_mode mode)
{
    group_open(g);
    nx_steer *s;
    assert_int_equal(nx_steer_attach(g->fds, NSOCK, mode, &s), 0);
    if (nx_steer_mode_of(s) != NX_STEER_EBPF) {
        assert_false(have_root()); /* as root the eBPF program must load */
        nx_steer_detach(s);
        group_close(g);
        skip();
    }
    return s;
}

static void test_ebpf_steering(void **state)
{
    (void)state;
    group g;
    nx_steer *s = open_ebpf_or_skip(&g, NX_STEER_AUTO);
    printf("# steering: %s\n", nx_steer_describe(s));
    /* tenant 7 overrides its default shard (7 % 4 = 3) to shard 0 */
    assert_int_equal(nx_steer_set_tenant(s, 7, 0, NX_STEER_QUOTA_KIND_NONE, 0, 0), 0);
    assert_int_equal(nx_steer_set_tenant(s, 7, NSOCK, NX_STEER_QUOTA_KIND_NONE, 0, 0), NX_EINVAL);
    int expect[NTEN];
    for (int t = 0; t < NTEN; t++) {
        expect[t] = t == 7 ? 0 : t % NSOCK;
        assert_int_equal(nx_steer_shard_of(s, (uint32_t)t), expect[t]);
    }
    send_mix(&g);
    static rx r;
    drain(&g, &r);
    check_steered(&r, expect);
    int text = 0;
    for (int i = 0; i < NSOCK; i++)
        text += r.pkts[i][NTEN];
    assert_int_equal(text, 40);
    assert_int_equal(r.total, NTEN * K + 40);

    nx_steer_counters c;
    for (uint32_t t = 0; t < NTEN; t++) {
        assert_int_equal(nx_steer_tenant_counters(s, t, &c), 0);
        assert_int_equal(c.accepted_pkts, K);
        assert_int_equal(c.accepted_events, 3 * K);
        assert_int_equal(c.dropped_pkts, 0);
    }
    assert_int_equal(nx_steer_tenant_counters(s, 999, &c), 0); /* never seen: zeros */
    assert_int_equal(c.accepted_pkts, 0);
    uint64_t shard_pkts = 0;
    for (uint32_t i = 0; i < NSOCK; i++) {
        assert_int_equal(nx_steer_shard_counters(s, i, &c), 0);
        shard_pkts += c.accepted_pkts;
        /* per-shard counters match what the shard's socket received */
        int here = 0;
        for (int t = 0; t <= NTEN; t++)
            here += r.pkts[i][t];
        assert_int_equal(c.accepted_pkts, here);
    }
    assert_int_equal(shard_pkts, NTEN * K + 40);
    nx_steer_global gl;
    assert_int_equal(nx_steer_global_counters(s, &gl), 0);
    assert_int_equal(gl.nxb_pkts, NTEN * K);
    assert_int_equal(gl.other_pkts, 40);
    assert_int_equal(gl.select_err, 0);
    nx_steer_detach(s);
    group_close(&g);
}

/* StatsD text: every datagram of a tenant (tag anywhere in the first
 * line's tag list, any sending socket) lands on the socket that
 * nx_steer_text_shard names; the 40 tenants cover every socket; datagrams
 * without a tag, or with it only on a later line, are flow-hashed. */
static void test_ebpf_text_tenant_steering(void **state)
{
    (void)state;
    group g;
    nx_steer *s = open_ebpf_or_skip(&g, NX_STEER_AUTO);
    enum { TEN = 40, PER = 6 };
    int expect[TEN], used[NSOCK] = {0};
    char dg[512];
    for (int t = 0; t < TEN; t++) {
        for (int k = 0; k < PER; k++) {
            int n = k % 3 == 0   ? snprintf(dg, sizeof dg, "api.hits:1|c|#tenant:t%04d\nx:2|g", t)
                    : k % 3 == 1 ? snprintf(dg, sizeof dg, "lat:%d|ms|@0.5|#env:prod,tenant:t%04d,az:b", k, t)
                                 : snprintf(dg, sizeof dg, "u:%d|s|#a:b,c:d,tenant:t%04d", k, t);
            int sh = nx_steer_text_shard(dg, (size_t)n, NSOCK);
            assert_true(sh >= 0 && sh < NSOCK);
            if (k == 0)
                expect[t] = sh;
            assert_int_equal(sh, expect[t]); /* the tag's value decides, not its place */
            send_on(&g, t + k, dg, (size_t)n);
        }
        used[expect[t]] = 1;
    }
    for (int i = 0; i < NSOCK; i++)
        assert_true(used[i]);
    /* no tag in the first line (or none at all): flow hash */
    int n1 = snprintf(dg, sizeof dg, "plain:1|c\nother:1|c|#tenant:t0001");
    int n2 = snprintf(dg + 256, 256, "plain:1|c|#mytenant:t0001");
    assert_int_equal(nx_steer_text_shard(dg, (size_t)n1, NSOCK), -1);
    assert_int_equal(nx_steer_text_shard(dg + 256, (size_t)n2, NSOCK), -1);
    send_on(&g, 0, dg, (size_t)n1);
    send_on(&g, 1, dg + 256, (size_t)n2);

    static uint8_t b[65536];
    int total = 0, tagged_ok = 0;
    for (int i = 0; i < NSOCK; i++) {
        for (;;) {
            ssize_t n = recv(g.fds[i], b, sizeof(b) - 1, MSG_DONTWAIT);
            if (n < 0)
                break;
            total++;
            b[n] = 0;
            const char *p = strstr((const char *)b, "tenant:t");
            int t;
            size_t first_line = strcspn((const char *)b, "\n");
            if (p && (size_t)(p - (const char *)b) < first_line &&
                sscanf(p, "tenant:t%d", &t) == 1 && (p[-1] == '#' || p[-1] == ',')) {
                if (i != expect[t])
                    fail_msg("tenant t%04d arrived on socket %d, expected %d", t, i, expect[t]);
                tagged_ok++;
            }
        }
    }
    assert_int_equal(total, TEN * PER + 2);
    assert_int_equal(tagged_ok, TEN * PER);
    nx_steer_global gl;
    assert_int_equal(nx_steer_global_counters(s, &gl), 0);
    assert_int_equal(gl.text_tenant_pkts, TEN * PER);
    assert_int_equal(gl.other_pkts, 2);
    nx_steer_detach(s);
    group_close(&g);
}

static void test_ebpf_quota(void **state)
{
    (void)state;
    group g;
    nx_steer *s = open_ebpf_or_skip(&g, NX_STEER_EBPF);
    /* tenant 5: 300 events burst, 1 event/s refill: exactly 30 batches of
     * 10 pass (a 10-event refill would take 10 s); tenant 8: bytes quota of
     * exactly 5 datagrams; tenant 6: no quota. */
    size_t len10 = make_batch(8, 10, 1.0);
    assert_int_equal(nx_steer_set_tenant(s, 5, 1, NX_STEER_QUOTA_KIND_EVENTS, 1, 300), 0);
    assert_int_equal(nx_steer_set_tenant(s, 8, 2, NX_STEER_QUOTA_KIND_BYTES, 1, 5 * len10), 0);
    for (int k = 0; k < 100; k++) {
        for (uint32_t t = 5; t <= 8; t++) {
            size_t len = make_batch(t, 10, 1.0);
            send_on(&g, k, g_buf, len);
        }
    }
    static rx r;
    drain(&g, &r);
    int got5 = 0, got6 = 0, got8 = 0;
    for (int i = 0; i < NSOCK; i++) {
        got5 += r.pkts[i][5];
        got6 += r.pkts[i][6];
        got8 += r.pkts[i][8];
    }
    assert_int_equal(got5, 30);
    assert_int_equal(r.pkts[1][5], 30);
    assert_int_equal(got6, 100);
    assert_int_equal(got8, 5);
    assert_int_equal(r.pkts[2][8], 5);
    nx_steer_counters c;
    assert_int_equal(nx_steer_tenant_counters(s, 5, &c), 0);
    assert_int_equal(c.accepted_pkts, 30);
    assert_int_equal(c.accepted_events, 300);
    assert_int_equal(c.dropped_pkts, 70);
    assert_int_equal(c.dropped_events, 700);
    assert_int_equal(nx_steer_tenant_counters(s, 8, &c), 0);
    assert_int_equal(c.accepted_pkts, 5);
    assert_int_equal(c.dropped_pkts, 95);
    assert_int_equal(c.dropped_bytes, 95 * len10);
    assert_int_equal(nx_steer_tenant_counters(s, 6, &c), 0);
    assert_int_equal(c.accepted_pkts, 100);
    assert_int_equal(c.dropped_pkts, 0);
    assert_int_equal(nx_steer_shard_counters(s, 1, &c), 0);
    assert_true(c.dropped_pkts == 70); /* shard 1 owns tenant 5 (and 9, silent here) */
    nx_steer_global gl;
    assert_int_equal(nx_steer_global_counters(s, &gl), 0);
    assert_int_equal(gl.dropped_pkts, 70 + 95);

    /* lifting the quota lets everything through again */
    assert_int_equal(nx_steer_set_tenant(s, 5, 1, NX_STEER_QUOTA_KIND_NONE, 0, 0), 0);
    for (int k = 0; k < 20; k++) {
        size_t len = make_batch(5, 10, 1.0);
        send_on(&g, k, g_buf, len);
    }
    drain(&g, &r);
    assert_int_equal(r.pkts[1][5], 20);
    assert_int_equal(r.total, 20);
    /* clearing tenant 8 sends it back to 8 % 4 = 0 without quota */
    assert_int_equal(nx_steer_clear_tenant(s, 8), 0);
    assert_int_equal(nx_steer_clear_tenant(s, 8), NX_ENOENT);
    for (int k = 0; k < 20; k++) {
        size_t len = make_batch(8, 10, 1.0);
        send_on(&g, k, g_buf, len);
    }
    drain(&g, &r);
    assert_int_equal(r.pkts[0][8], 20);
    nx_steer_detach(s);
    group_close(&g);
}

static double g_sums[3][NTEN];

static void run_mode(nx_steer_mode m, int idx)
{
    group g;
    group_open(&g);
    nx_steer *s;
    assert_int_equal(nx_steer_attach(g.fds, NSOCK, m, &s), 0);
    printf("# steering: %s\n", nx_steer_describe(s));
    assert_int_equal(nx_steer_mode_of(s), m);
    if (m != NX_STEER_EBPF)
        assert_int_equal(nx_steer_set_tenant(s, 1, 0, NX_STEER_QUOTA_KIND_EVENTS, 1, 1), NX_EINVAL);
    send_mix(&g);
    static rx r;
    drain(&g, &r);
    assert_int_equal(r.total, NTEN * K + 40); /* nothing lost in any mode */
    if (m == NX_STEER_CBPF) {
        int expect[NTEN];
        for (int t = 0; t < NTEN; t++) {
            expect[t] = t % NSOCK;
            assert_int_equal(nx_steer_shard_of(s, (uint32_t)t), expect[t]);
        }
        check_steered(&r, expect);
    } else if (m == NX_STEER_PLAIN) {
        assert_int_equal(nx_steer_shard_of(s, 3), -1);
    }
    for (int t = 0; t < NTEN; t++)
        g_sums[idx][t] = r.sum[t];
    nx_steer_detach(s);
    group_close(&g);
}

static void test_cbpf_and_plain_same_answers(void **state)
{
    (void)state;
    run_mode(NX_STEER_CBPF, 1);
    run_mode(NX_STEER_PLAIN, 2);
    nx_steer *s;
    group g;
    group_open(&g);
    assert_int_equal(nx_steer_attach(g.fds, NSOCK, NX_STEER_AUTO, &s), 0);
    nx_steer_mode m = nx_steer_mode_of(s);
    nx_steer_detach(s);
    group_close(&g);
    run_mode(m, 0);
    for (int t = 0; t < NTEN; t++) {
        assert_true(g_sums[0][t] == (double)K * 3 * (t + 1));
        assert_true(g_sums[1][t] == g_sums[0][t]);
        assert_true(g_sums[2][t] == g_sums[0][t]);
    }
}

static void test_bad_args(void **state)
{
    (void)state;
    nx_steer *s;
    int fd = -1;
    assert_int_equal(nx_steer_attach(NULL, 1, NX_STEER_AUTO, &s), NX_EINVAL);
    assert_int_equal(nx_steer_attach(&fd, 0, NX_STEER_AUTO, &s), NX_EINVAL);
    assert_int_equal(nx_steer_attach(&fd, 65, NX_STEER_AUTO, &s), NX_EINVAL);
    assert_string_equal(nx_steer_mode_name(NX_STEER_CBPF), "cbpf");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ebpf_steering),
        cmocka_unit_test(test_ebpf_text_tenant_steering),
        cmocka_unit_test(test_ebpf_quota),
        cmocka_unit_test(test_cbpf_and_plain_same_answers),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
