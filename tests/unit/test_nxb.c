/*
 * test_nxb.c — NXB codec: round trips of every event shape, CRC, TCP frame
 * splitting, ack frames, and rejection of malformed batches with the exact
 * counted reason (and valid batches after a bad one still decode). A random
 * mutation pass checks that garbage is rejected without reading out of
 * bounds (run under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/nx_nxb.h"
#include "nexus_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static uint8_t g_buf[NX_NXB_MAX_UDP], g_ev[NX_NXB_MAX_UDP];

/* A batch with one stream of each type and a mix of event encodings. */
static size_t build_mixed(uint8_t flags, uint64_t seq)
{
    nx_nxb_writer w;
    assert_int_equal(nx_nxb_writer_init(&w, g_buf, g_ev, sizeof(g_buf)), 0);
    nx_nxb_writer_reset(&w, 17, seq, 1700000000000LL, flags);
    uint32_t c, g, t, s;
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_COUNTER, "req|route:/x", 12, &c), 0);
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_GAUGE, "temp", 4, &g), 0);
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_TIMER, "lat|host:a", 10, &t), 0);
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_SET, "users", 5, &s), 0);
    assert_int_equal(nx_nxb_writer_add(&w, c, 1, 0, 1.0, 0), 0);
    assert_int_equal(nx_nxb_writer_add(&w, c, -300000, 0, 0.25, 0), 0);
    assert_int_equal(nx_nxb_writer_add(&w, g, 21.5, 1700000000500LL, 1.0, 0), 0);
    assert_int_equal(nx_nxb_writer_add(&w, g, -3, 1699999999000LL, 1.0, 1), 0);
    assert_int_equal(nx_nxb_writer_add(&w, t, 0.125, 0, 0.5, 0), 0);
    assert_int_equal(nx_nxb_writer_add(&w, t, 1e300, 0, 1.0, 0), 0);
    assert_int_equal(nx_nxb_writer_add_member(&w, s, "alice", 5, 0, 1.0), 0);
    assert_int_equal(nx_nxb_writer_add_member(&w, s, "", 0, 1700000000001LL, 1.0), 0);
    size_t len;
    assert_int_equal(nx_nxb_writer_finish(&w, &len), 0);
    return len;
}

static void test_roundtrip(void **state)
{
    (void)state;
    for (int crc = 0; crc < 2; crc++) {
        size_t len = build_mixed(crc ? NX_NXB_F_CRC : 0, 99);
        static nx_nxb_batch b;
        nx_nxb_stats st = {0};
        int why = -1;
        assert_int_equal(nx_nxb_decode(g_buf, len, &b, &st, &why), 0);
        assert_int_equal(why, NX_NXB_OK);
        assert_int_equal(b.tenant_num, 17);
        assert_int_equal(b.sequence, 99);
        assert_int_equal(b.event_count, 8);
        assert_int_equal(b.nstreams, 4);
        assert_int_equal(b.total_len, len);
        assert_int_equal(st.batches, 1);
        assert_int_equal(st.events, 8);
        assert_memory_equal(b.streams[0].key, "req|route:/x", 12);
        assert_int_equal(b.streams[3].type, NX_TYPE_SET);
        /* the tenant is at the fixed offset the kernel stage reads */
        uint32_t tn;
        memcpy(&tn, g_buf + NX_NXB_OFF_TENANT, 4);
        assert_int_equal(tn, 17);

        struct { uint32_t idx; double v, w; int64_t ts; int gd; const char *m; } exp[] = {
            {0, 1, 1, 1700000000000LL, 0, NULL},
            {0, -300000, 4, 1700000000000LL, 0, NULL},
            {1, 21.5, 1, 1700000000500LL, 0, NULL},
            {1, -3, 1, 1699999999000LL, 1, NULL},
            {2, 0.125, 2, 1700000000000LL, 0, NULL},
            {2, 1e300, 1, 1700000000000LL, 0, NULL},
            {3, 1, 1, 1700000000000LL, 0, "alice"},
            {3, 1, 1, 1700000000001LL, 0, ""},
        };
        nx_nxb_iter it;
        nx_nxb_event ev;
        nx_nxb_iter_init(&it, &b);
        for (size_t i = 0; i < 8; i++) {
            assert_int_equal(nx_nxb_next(&it, &ev), 1);
            assert_int_equal(ev.stream_idx, exp[i].idx);
            assert_true(ev.u.value == exp[i].v);
            assert_true(ev.u.weight == exp[i].w);
            assert_int_equal(ev.u.ts_ms, exp[i].ts);
            assert_int_equal(ev.u.gauge_delta, exp[i].gd);
            if (exp[i].m) {
                assert_int_equal(ev.u.member_len, strlen(exp[i].m));
                assert_memory_equal(ev.u.member, exp[i].m, ev.u.member_len);
            } else {
                assert_null(ev.u.member);
            }
        }
        assert_int_equal(nx_nxb_next(&it, &ev), 0);
    }
}

/* Counter of 1 per event, one stream: 2 bytes per event on the wire. */
static void test_compact_and_full(void **state)
{
    (void)state;
    nx_nxb_writer w;
    assert_int_equal(nx_nxb_writer_init(&w, g_buf, g_ev, 1400), 0);
    nx_nxb_writer_reset(&w, 3, 1, 0, 0);
    uint32_t c;
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_COUNTER, "hits", 4, &c), 0);
    size_t n = 0;
    int rc;
    while ((rc = nx_nxb_writer_add(&w, c, 1, 0, 1.0, 0)) == 0)
        n++;
    assert_int_equal(rc, NX_ETOOBIG);
    size_t len;
    assert_int_equal(nx_nxb_writer_finish(&w, &len), 0);
    assert_true(len <= 1400);
    assert_int_equal(n, (1400 - NX_NXB_HDR_LEN - 1 - 1 - 1 - 4) / 2);
    static nx_nxb_batch b;
    assert_int_equal(nx_nxb_decode(g_buf, len, &b, NULL, NULL), 0);
    assert_int_equal(b.event_count, n);

    /* >127 streams: the stream-count varint takes two bytes */
    assert_int_equal(nx_nxb_writer_init(&w, g_buf, g_ev, sizeof(g_buf)), 0);
    nx_nxb_writer_reset(&w, 4, 2, 0, NX_NXB_F_CRC);
    char key[32];
    for (int i = 0; i < 300; i++) {
        int kl = snprintf(key, sizeof(key), "s%d", i);
        uint32_t idx;
        assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_COUNTER, key, (size_t)kl, &idx), 0);
        assert_int_equal(idx, i);
        assert_int_equal(nx_nxb_writer_add(&w, idx, i, 0, 1.0, 0), 0);
    }
    assert_int_equal(nx_nxb_writer_finish(&w, &len), 0);
    assert_int_equal(nx_nxb_decode(g_buf, len, &b, NULL, NULL), 0);
    assert_int_equal(b.nstreams, 300);
    nx_nxb_iter it;
    nx_nxb_event ev;
    nx_nxb_iter_init(&it, &b);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(nx_nxb_next(&it, &ev), 1);
        assert_int_equal(ev.stream_idx, i);
        assert_true(ev.u.value == i);
        int kl = snprintf(key, sizeof(key), "s%d", i);
        assert_int_equal(b.streams[i].key_len, kl);
        assert_memory_equal(b.streams[i].key, key, (size_t)kl);
    }
}

static void test_writer_rejects(void **state)
{
    (void)state;
    nx_nxb_writer w;
    assert_int_equal(nx_nxb_writer_init(&w, g_buf, g_ev, 10), NX_EINVAL);
    assert_int_equal(nx_nxb_writer_init(&w, g_buf, g_ev, 4096), 0);
    uint32_t c, s;
    assert_int_equal(nx_nxb_writer_stream(&w, 9, "x", 1, &c), NX_EINVAL);
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_COUNTER, "", 0, &c), NX_EINVAL);
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_COUNTER, "x", 1, &c), 0);
    assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_SET, "u", 1, &s), 0);
    assert_int_equal(nx_nxb_writer_add(&w, 5, 1, 0, 1.0, 0), NX_EINVAL);
    assert_int_equal(nx_nxb_writer_add(&w, c, NAN, 0, 1.0, 0), NX_EINVAL);
    assert_int_equal(nx_nxb_writer_add(&w, c, 1, 0, 0.0, 0), NX_EINVAL);
    assert_int_equal(nx_nxb_writer_add(&w, c, 1, 0, 1.0, 1), NX_EINVAL); /* delta on counter */
    assert_int_equal(nx_nxb_writer_add(&w, s, 1, 0, 1.0, 0), NX_EINVAL); /* set needs member */
    assert_int_equal(nx_nxb_writer_add_member(&w, c, "m", 1, 0, 1.0), NX_EINVAL);
}

static void test_ack(void **state)
{
    (void)state;
    uint8_t f[NX_NXB_ACK_LEN];
    nx_nxb_ack a = {.status = 0, .tenant_num = 42, .events = 600, .sequence = 0x1122334455667788ULL};
    nx_nxb_ack_encode(&a, f);
    nx_nxb_ack d;
    assert_int_equal(nx_nxb_ack_decode(f, sizeof(f), &d), 0);
    assert_int_equal(d.status, 0);
    assert_int_equal(d.tenant_num, 42);
    assert_int_equal(d.events, 600);
    assert_true(d.sequence == 0x1122334455667788ULL);
    assert_int_equal(nx_nxb_ack_decode(f, 31, &d), NX_EINVAL);
    for (int i = 0; i < NX_NXB_ACK_LEN; i++) {
        uint8_t g[NX_NXB_ACK_LEN];
        memcpy(g, f, sizeof(g));
        g[i] ^= 0x10;
        assert_true(nx_nxb_ack_decode(g, sizeof(g), &d) < 0);
    }
    a.status = NX_NXB_BAD_STREAM_REF;
    nx_nxb_ack_encode(&a, f);
    assert_int_equal(nx_nxb_ack_decode(f, sizeof(f), &d), 0);
    assert_int_equal(d.status, NX_NXB_BAD_STREAM_REF);
}

/* Decode a copy of the mixed batch after `mutate`; expect `reason`, then a
 * valid batch must still decode with the same stats object. */
static void expect_reject(uint8_t *p, size_t n, int reason, nx_nxb_stats *st)
{
    static nx_nxb_batch b;
    int why = -1;
    uint64_t before = st->rejected[reason];
    if (nx_nxb_decode(p, n, &b, st, &why) == 0)
        fail_msg("expected %s, but the batch decoded", nx_nxb_reason_name(reason));
    if (why != reason)
        fail_msg("expected %s, got %s", nx_nxb_reason_name(reason), nx_nxb_reason_name(why));
    assert_int_equal(st->rejected[reason], before + 1);
    uint64_t ok = st->batches;
    size_t len = build_mixed(0, 7);
    assert_int_equal(nx_nxb_decode(g_buf, len, &b, st, &why), 0);
    assert_int_equal(st->batches, ok + 1);
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void test_malformed(void **state)
{
    (void)state;
    nx_nxb_stats st = {0};
    static uint8_t m[NX_NXB_MAX_UDP + 64];
    size_t len = build_mixed(0, 1);
    const size_t body = NX_NXB_HDR_LEN; /* nstreams byte */

#define FRESH() (build_mixed(0, 1), memcpy(m, g_buf, len))
    FRESH(); m[0] = 'f'; expect_reject(m, len, NX_NXB_BAD_MAGIC, &st);
    expect_reject((uint8_t *)"foo:1|c\nbar:2|c", 15, NX_NXB_BAD_MAGIC, &st);
    FRESH(); m[4] = 2; expect_reject(m, len, NX_NXB_BAD_VERSION, &st);
    FRESH(); m[5] = 0x80; expect_reject(m, len, NX_NXB_BAD_HEADER, &st);
    FRESH(); m[6] = 12; m[7] = 0; expect_reject(m, len, NX_NXB_BAD_HEADER, &st);
    FRESH(); expect_reject(m, 3, NX_NXB_TRUNCATED, &st);
    FRESH(); expect_reject(m, 39, NX_NXB_TRUNCATED, &st);
    /* every strict prefix is truncated */
    for (size_t n = NX_NXB_HDR_LEN; n < len; n++) {
        FRESH();
        expect_reject(m, n, NX_NXB_TRUNCATED, &st);
    }
    /* every prefix with a consistent total_len is rejected too (never ok) */
    for (size_t n = NX_NXB_HDR_LEN; n < len; n++) {
        FRESH();
        put32(m + NX_NXB_OFF_TOTAL, (uint32_t)n);
        static nx_nxb_batch b;
        int why;
        assert_true(nx_nxb_decode(m, n, &b, &st, &why) < 0);
        assert_true(why == NX_NXB_TRUNCATED || why == NX_NXB_COUNT_MISMATCH ||
                    why == NX_NXB_BAD_STREAM);
    }
    FRESH(); m[len] = 0; expect_reject(m, len + 1, NX_NXB_OVERSIZED, &st);
    FRESH(); put32(m + NX_NXB_OFF_TOTAL, NX_NXB_MAX_FRAME + 1);
    expect_reject(m, len, NX_NXB_OVERSIZED, &st);
    FRESH(); put32(m + NX_NXB_OFF_COUNT, NX_NXB_MAX_EVENTS + 1);
    expect_reject(m, len, NX_NXB_TOO_MANY_EVENTS, &st);
    FRESH(); put32(m + NX_NXB_OFF_COUNT, 9); expect_reject(m, len, NX_NXB_COUNT_MISMATCH, &st);
    FRESH(); put32(m + NX_NXB_OFF_COUNT, 7); expect_reject(m, len, NX_NXB_COUNT_MISMATCH, &st);
    /* stream table: nstreams 4 -> 5 makes the first event byte a type */
    FRESH(); m[body] = 0x7f; m[body + 1] = 0x7f;
    expect_reject(m, len, NX_NXB_BAD_STREAM, &st);
    FRESH(); m[body] = 0x81; m[body + 1] = 0x10; /* 2049 streams */
    expect_reject(m, len, NX_NXB_TOO_MANY_STREAMS, &st);
    FRESH(); m[body + 1] = 0; expect_reject(m, len, NX_NXB_BAD_STREAM, &st); /* type 0 */
    FRESH(); m[body + 2] = 0; expect_reject(m, len, NX_NXB_BAD_STREAM, &st); /* empty key */
    /* events: find the first event (after the table) */
    FRESH();
    size_t ev0 = body + 1;
    for (int i = 0; i < 4; i++)
        ev0 += 2 + m[ev0 + 1];
    FRESH(); m[ev0] = 9 << 2; expect_reject(m, len, NX_NXB_BAD_STREAM_REF, &st);
    /* the first event is "counter 1": head 0x00, svar 0x02; make it an
     * f64 NaN by building a one-event batch */
    {
        nx_nxb_writer w;
        assert_int_equal(nx_nxb_writer_init(&w, m, g_ev, 4096), 0);
        nx_nxb_writer_reset(&w, 1, 1, 0, NX_NXB_F_CRC);
        uint32_t t;
        assert_int_equal(nx_nxb_writer_stream(&w, NX_TYPE_TIMER, "t", 1, &t), 0);
        assert_int_equal(nx_nxb_writer_add(&w, t, 0.5, 0, 0.5, 0), 0);
        size_t l1;
        assert_int_equal(nx_nxb_writer_finish(&w, &l1), 0);
        uint8_t one[128];
        memcpy(one, m, l1);
        /* layout: hdr | 01 | 03 01 't' | head(0x03) ext(0x02) f64 f64 */
        assert_int_equal(one[44], 0x03);
        double nan = NAN, two = 2.0;
        memcpy(m, one, l1); memcpy(m + 46, &nan, 8);
        expect_reject(m, l1, NX_NXB_BAD_CHECKSUM, &st);
        memcpy(m, one, l1); m[5] = 0; memcpy(m + 46, &nan, 8);
        expect_reject(m, l1, NX_NXB_BAD_VALUE, &st);
        memcpy(m, one, l1); m[5] = 0; memcpy(m + 54, &two, 8);
        expect_reject(m, l1, NX_NXB_BAD_VALUE, &st); /* rate 2 */
        memcpy(m, one, l1); m[5] = 0; m[45] = 0x40;
        expect_reject(m, l1, NX_NXB_BAD_VALUE, &st); /* unknown ext bit */
        memcpy(m, one, l1); m[5] = 0; m[45] = 0x06;
        expect_reject(m, l1, NX_NXB_BAD_VALUE, &st); /* gauge delta on timer */
        memcpy(m, one, l1); m[5] = 0;
        static nx_nxb_batch b;
        assert_int_equal(nx_nxb_decode(m, l1, &b, &st, NULL), 0); /* crc off: fine */
    }
    uint64_t total = 0;
    for (int r = 1; r < NX_NXB_NREASONS; r++)
        total += st.rejected[r];
    assert_int_equal(st.rejected[NX_NXB_OK], 0);
    assert_true(total > 2 * (len - NX_NXB_HDR_LEN));
    assert_string_equal(nx_nxb_reason_name(NX_NXB_BAD_STREAM_REF), "bad_stream_ref");
#undef FRESH
}

/* A TCP byte stream of several batches, delivered in odd-sized chunks. */
static void test_tcp_frames(void **state)
{
    (void)state;
    static uint8_t stream[1 << 16];
    size_t slen = 0, lens[5];
    for (int i = 0; i < 5; i++) {
        lens[i] = build_mixed(NX_NXB_F_ACK | NX_NXB_F_CRC, 1000 + (uint64_t)i);
        memcpy(stream + slen, g_buf, lens[i]);
        slen += lens[i];
    }
    static uint8_t rx[1 << 16];
    size_t have = 0, off = 0, got = 0, chunk = 7;
    while (off < slen || have) {
        size_t c = off + chunk <= slen ? chunk : slen - off;
        memcpy(rx + have, stream + off, c);
        have += c;
        off += c;
        chunk = chunk * 3 % 97 + 1;
        for (;;) {
            int why;
            long fl = nx_nxb_frame_len(rx, have, NX_NXB_MAX_FRAME, &why);
            assert_true(fl >= 0);
            if (fl == 0 || (size_t)fl > have)
                break;
            static nx_nxb_batch b;
            assert_int_equal(nx_nxb_decode(rx, (size_t)fl, &b, NULL, NULL), 0);
            assert_int_equal(b.sequence, 1000 + got);
            assert_true(b.flags & NX_NXB_F_ACK);
            assert_int_equal((size_t)fl, lens[got]);
            got++;
            memmove(rx, rx + fl, have - (size_t)fl);
            have -= (size_t)fl;
        }
        if (off == slen && have == 0)
            break;
    }
    assert_int_equal(got, 5);
    int why;
    assert_true(nx_nxb_frame_len((const uint8_t *)"GET / HTTP/1.1\r\n", 16, NX_NXB_MAX_FRAME, &why) < 0);
    assert_int_equal(why, NX_NXB_BAD_MAGIC);
    size_t len = build_mixed(0, 1);
    assert_int_equal(nx_nxb_frame_len(g_buf, 10, NX_NXB_MAX_FRAME, &why), 0);
    assert_true(nx_nxb_frame_len(g_buf, len, 64, &why) < 0); /* over the limit */
    assert_int_equal(why, NX_NXB_OVERSIZED);
}

/* Random mutations: every outcome is ok or a named reason; ASan checks bounds. */
static void test_mutations(void **state)
{
    (void)state;
    const char *sc = getenv("NX_TEST_SCALE");
    int scale = sc ? atoi(sc) : 1;
    if (scale < 1)
        scale = 1;
    size_t len = build_mixed(0, 1);
    static uint8_t orig[1024];
    memcpy(orig, g_buf, len);
    nx_nxb_stats st = {0};
    srand(12345);
    int trials = 20000 * scale;
    for (int i = 0; i < trials; i++) {
        uint8_t *m = malloc(len); /* exact size: ASan catches any overread */
        assert_non_null(m);
        memcpy(m, orig, len);
        int flips = 1 + rand() % 4;
        for (int f = 0; f < flips; f++)
            m[NX_NXB_HDR_LEN / 2 + (size_t)rand() % (len - NX_NXB_HDR_LEN / 2)] ^= (uint8_t)(1 + rand() % 255);
        static nx_nxb_batch b;
        int why = -1;
        int rc = nx_nxb_decode(m, len, &b, &st, &why);
        if (rc == 0) { /* iterate fully: must yield exactly event_count */
            nx_nxb_iter it;
            nx_nxb_event ev;
            uint32_t k = 0;
            nx_nxb_iter_init(&it, &b);
            while (nx_nxb_next(&it, &ev))
                k++;
            assert_int_equal(k, b.event_count);
        } else {
            assert_true(why > 0 && why < NX_NXB_NREASONS);
        }
        free(m);
    }
    uint64_t total = st.batches;
    for (int r = 1; r < NX_NXB_NREASONS; r++)
        total += st.rejected[r];
    assert_int_equal(total, (uint64_t)trials);
}


/* ---- libnexus-client over real loopback sockets ------------------------- */

static int bind_loopback(int type, uint16_t *port)
{
    int fd = socket(AF_INET, type, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t sl = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    *port = ntohs(a.sin_port);
    int buf = 8 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
    return fd;
}

static void test_client_udp(void **state)
{
    (void)state;
    uint16_t port;
    int rfd = bind_loopback(SOCK_DGRAM, &port);
    nx_client *c;
    nx_client_opts o = NX_CLIENT_OPTS_INIT;
    o.tenant_num = 23;
    o.crc = 1;
    assert_int_equal(nx_client_open(NX_CLIENT_UDP, "127.0.0.1", port, &o, &c), 0);
    uint32_t sid[3];
    assert_int_equal(nx_client_stream(c, NX_TYPE_COUNTER, "a", 1, &sid[0]), 0);
    assert_int_equal(nx_client_stream(c, NX_TYPE_TIMER, "b|x:y", 5, &sid[1]), 0);
    assert_int_equal(nx_client_stream(c, NX_TYPE_SET, "u", 1, &sid[2]), 0);
    const int N = 5000;
    for (int i = 0; i < N; i++) {
        assert_int_equal(nx_client_add(c, sid[0], 1, 0, 1.0, 0), 0);
        assert_int_equal(nx_client_add(c, sid[1], i * 0.5, 0, 1.0, 0), 0);
        char m[16];
        int ml = snprintf(m, sizeof(m), "m%d", i % 10);
        assert_int_equal(nx_client_set_add(c, sid[2], m, (size_t)ml), 0);
    }
    assert_int_equal(nx_client_flush(c), 0);
    nx_client_stats cs;
    nx_client_get_stats(c, &cs);
    assert_int_equal(cs.events_sent, 3 * N);
    assert_true(cs.batches_sent > 3 * N * 2 / 1400);
    static uint8_t d[65536];
    static nx_nxb_batch b;
    double sums[3] = {0};
    uint64_t cnt[3] = {0}, batches = 0;
    nx_nxb_stats st = {0};
    for (;;) {
        ssize_t n = recv(rfd, d, sizeof(d), MSG_DONTWAIT);
        if (n < 0)
            break;
        assert_true(n <= 1400);
        assert_int_equal(nx_nxb_decode(d, (size_t)n, &b, &st, NULL), 0);
        assert_int_equal(b.tenant_num, 23);
        assert_int_equal(b.sequence, ++batches); /* in order on loopback */
        nx_nxb_iter it;
        nx_nxb_event ev;
        nx_nxb_iter_init(&it, &b);
        while (nx_nxb_next(&it, &ev)) {
            const nx_nxb_stream *s = &b.streams[ev.stream_idx];
            int k = s->key[0] == 'a' ? 0 : s->key[0] == 'b' ? 1 : 2;
            cnt[k]++;
            sums[k] += k == 2 ? (double)(ev.u.member[1] - '0') : ev.u.value;
        }
    }
    assert_int_equal(batches, cs.batches_sent);
    assert_int_equal(cnt[0], N);
    assert_int_equal(cnt[1], N);
    assert_int_equal(cnt[2], N);
    assert_true(sums[0] == N);
    assert_true(sums[1] == 0.5 * N * (N - 1) / 2);
    assert_true(sums[2] == 4.5 * N);
    assert_int_equal(nx_client_wait_acks(c, 10), 0);
    nx_client_close(c);
    close(rfd);
}

/* A minimal NXB TCP server: decode frames, ack each; refuse sequence 3. */
typedef struct tcp_srv {
    int lfd;
    uint64_t events;
    uint64_t frames;
} tcp_srv;

static void *tcp_srv_main(void *arg)
{
    tcp_srv *sv = arg;
    int fd = accept(sv->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    uint8_t *rx = malloc(NX_NXB_MAX_FRAME + 65536);
    nx_nxb_batch *b = malloc(sizeof(*b));
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, rx + have, NX_NXB_MAX_FRAME + 65536 - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
        for (;;) {
            int why;
            long fl = nx_nxb_frame_len(rx, have, NX_NXB_MAX_FRAME, &why);
            if (fl <= 0 || (size_t)fl > have)
                break;
            nx_nxb_ack a = {0};
            if (nx_nxb_decode(rx, (size_t)fl, b, NULL, &why) == 0) {
                a.tenant_num = b->tenant_num;
                a.sequence = b->sequence;
                a.events = b->event_count;
                if (b->sequence == 3) {
                    a.status = 100 - NX_EQUOTA;
                    a.events = 0;
                } else {
                    sv->events += b->event_count;
                }
            } else {
                a.status = (uint8_t)why;
            }
            sv->frames++;
            uint8_t f[NX_NXB_ACK_LEN];
            nx_nxb_ack_encode(&a, f);
            if (send(fd, f, sizeof(f), MSG_NOSIGNAL) != (ssize_t)sizeof(f))
                goto out;
            memmove(rx, rx + fl, have - (size_t)fl);
            have -= (size_t)fl;
        }
    }
out:
    free(rx);
    free(b);
    close(fd);
    return NULL;
}

static void test_client_tcp_acks(void **state)
{
    (void)state;
    uint16_t port;
    tcp_srv sv = {0};
    sv.lfd = bind_loopback(SOCK_STREAM, &port);
    assert_int_equal(listen(sv.lfd, 4), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, tcp_srv_main, &sv), 0);
    nx_client *c;
    nx_client_opts o = NX_CLIENT_OPTS_INIT;
    o.tenant_num = 5;
    o.batch_bytes = 4096;
    assert_int_equal(nx_client_open(NX_CLIENT_TCP, "127.0.0.1", port, &o, &c), 0);
    uint32_t g;
    assert_int_equal(nx_client_stream(c, NX_TYPE_GAUGE, "temp|room:1", 11, &g), 0);
    const int N = 20000;
    for (int i = 0; i < N; i++)
        assert_int_equal(nx_client_add(c, g, i % 3 ? 1.25 : -2, 0, 1.0, i % 2), 0);
    assert_int_equal(nx_client_flush(c), 0);
    assert_int_equal(nx_client_wait_acks(c, 5000), NX_EQUOTA); /* batch 3 refused */
    nx_client_stats cs;
    nx_client_get_stats(c, &cs);
    assert_true(cs.batches_sent > 3);
    assert_int_equal(cs.batches_acked + cs.batches_refused, cs.batches_sent);
    assert_int_equal(cs.batches_refused, 1);
    assert_int_equal(cs.last_refusal, 100 - NX_EQUOTA);
    assert_int_equal(cs.events_sent, N);
    assert_int_equal(cs.events_acked, sv.events);
    assert_true(cs.events_acked < (uint64_t)N);
    /* a second round is fully acked */
    for (int i = 0; i < 100; i++)
        assert_int_equal(nx_client_add(c, g, 1, 0, 1.0, 0), 0);
    assert_int_equal(nx_client_flush(c), 0);
    assert_int_equal(nx_client_wait_acks(c, 5000), 0);
    nx_client_close(c);
    pthread_join(th, NULL);
    close(sv.lfd);
    assert_int_equal(sv.frames, cs.batches_sent + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_compact_and_full),
        cmocka_unit_test(test_writer_rejects), cmocka_unit_test(test_ack),
        cmocka_unit_test(test_malformed),   cmocka_unit_test(test_tcp_frames),
        cmocka_unit_test(test_mutations),   cmocka_unit_test(test_client_udp),
        cmocka_unit_test(test_client_tcp_acks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
