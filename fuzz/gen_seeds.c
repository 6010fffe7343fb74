/*
 * gen_seeds.c — writes the seed corpora for the binary fuzz targets from real
 * encoders (sketches, summaries, an engine, NXB batches, a WAL segment), so
 * the fuzzers start from valid inputs. Run via `make fuzz-seeds`; the output
 * under fuzz/corpus/ is committed. Text seeds (StatsD, tenants.json) are
 * written by hand there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "nexus.h"
#include "common/nx_codec.h"
#include "sketch/nx_ddsketch.h"
#include "sketch/nx_hll.h"
#include "sketch/nx_moments.h"
#include "sketch/nx_topk.h"
#include "ingest/nx_nxb.h"

static const char *g_root;

static void put(const char *target, const char *name, uint8_t sel, int use_sel,
                const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_root, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    if (use_sel)
        fputc(sel, f);
    fwrite(p, 1, n, f);
    fclose(f);
}

#define CHECK(x) do { if ((x) != 0) { fprintf(stderr, "failed: %s\n", #x); exit(1); } } while (0)

int main(int argc, char **argv)
{
    g_root = argc > 1 ? argv[1] : "fuzz/corpus";
    mkdir(g_root, 0755);
    nx_buf b = {0};

    /* sketches, with the selector byte of fuzz_sketch_decode */
    nx_ddsketch *dd;
    CHECK(nx_ddsketch_create(0.01, 2048, &dd));
    for (int i = 1; i <= 200; i++)
        CHECK(nx_ddsketch_add(dd, i * 1.5, 1));
    CHECK(nx_ddsketch_add(dd, -3, 1));
    CHECK(nx_ddsketch_add(dd, 0, 2));
    CHECK(nx_ddsketch_encode(dd, &b));
    put("fuzz_sketch_decode", "ddsketch", 0, 1, b.data, b.len);
    b.len = 0;
    nx_hll *h;
    CHECK(nx_hll_create(14, &h));
    for (uint64_t i = 0; i < 50; i++)
        CHECK(nx_hll_add_hash(h, i * 0x9E3779B97F4A7C15ull));
    CHECK(nx_hll_encode(h, &b));
    put("fuzz_sketch_decode", "hll_sparse", 1, 1, b.data, b.len);
    b.len = 0;
    nx_hll_destroy(h);
    CHECK(nx_hll_create(14, &h));
    for (uint64_t i = 0; i < 5000; i++)
        CHECK(nx_hll_add_hash(h, i * 0x9E3779B97F4A7C15ull));
    CHECK(nx_hll_densify(h));
    CHECK(nx_hll_encode(h, &b));
    put("fuzz_sketch_decode", "hll_dense", 1, 1, b.data, b.len);
    b.len = 0;
    nx_hll_destroy(h);
    nx_topk *t;
    CHECK(nx_topk_create(8, &t));
    for (int i = 0; i < 100; i++) {
        char m[16];
        int n = snprintf(m, sizeof m, "u%d", i % 13);
        CHECK(nx_topk_add(t, m, (uint32_t)n, 1));
    }
    CHECK(nx_topk_encode(t, &b));
    put("fuzz_sketch_decode", "topk", 2, 1, b.data, b.len);
    b.len = 0;
    nx_topk_destroy(t);
    nx_moments mo;
    nx_moments_init(&mo);
    nx_moments_add(&mo, 3.5, 1);
    nx_moments_add(&mo, 7, 2);
    CHECK(nx_moments_encode(&mo, &b));
    put("fuzz_sketch_decode", "moments", 3, 1, b.data, b.len);
    b.len = 0;
    nx_ddsketch_destroy(dd);

    /* an engine with one stream of each type, and its summaries */
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    nx_engine *e;
    CHECK(nx_engine_create(&cfg, &e));
    nx_tenant *ten;
    CHECK(nx_engine_tenant(e, "acme", 4, &ten));
    int64_t now = 1700000000000ll;
    const char *keys[] = {"c|env:x", "g", "t|route:/a", "h", "d", "s"};
    for (int ty = 1; ty <= 6; ty++) {
        nx_stream *s;
        CHECK(nx_tenant_stream(ten, keys[ty - 1], strlen(keys[ty - 1]), (nx_type)ty, &s));
        for (int i = 0; i < 30; i++) {
            char m[8];
            int n = snprintf(m, sizeof m, "m%d", i % 7);
            nx_update u = {.value = i * 2.5, .weight = 1, .ts_ms = now - 1000 * (i % 5),
                           .member = ty == 6 ? m : NULL, .member_len = ty == 6 ? (uint32_t)n : 0};
            CHECK(nx_stream_update(s, &u, now));
        }
        nx_summary sum;
        CHECK(nx_stream_read(s, NX_WINDOW_ALL, now, &sum));
        CHECK(nx_summary_encode(&sum, &b));
        char name[32];
        snprintf(name, sizeof name, "summary_%s", nx_type_name((nx_type)ty));
        put("fuzz_summary_decode", name, 0, 0, b.data, b.len);
        b.len = 0;
        nx_summary_free(&sum);
    }
    CHECK(nx_engine_encode(e, &b));
    put("fuzz_engine_decode", "engine_6types", 0, 0, b.data, b.len);
    b.len = 0;
    /* a set stream 70 s old: its windows' back stacks are derived from the
     * windows they feed (engine version 6, has_btopk = 2) */
    {
        nx_stream *s;
        CHECK(nx_tenant_stream(ten, "logins", 6, NX_TYPE_SET, &s));
        for (int i = 0; i < 700; i++) {
            char m[8];
            int n = snprintf(m, sizeof m, "u%d", (i * 7) % 23);
            nx_update u = {.weight = 1, .member = m, .member_len = (uint32_t)n};
            CHECK(nx_stream_update(s, &u, now + 100 * i));
        }
        nx_summary sum;
        CHECK(nx_stream_read(s, 10, now + 70000, &sum));
        nx_summary_free(&sum);
        CHECK(nx_engine_encode(e, &b));
        put("fuzz_engine_decode", "engine_set_derived", 0, 0, b.data, b.len);
        b.len = 0;
    }
    nx_engine_destroy(e);
    CHECK(nx_engine_create(&cfg, &e));
    CHECK(nx_engine_encode(e, &b));
    put("fuzz_engine_decode", "engine_empty", 0, 0, b.data, b.len);
    b.len = 0;
    nx_engine_destroy(e);

    /* NXB batches */
    static uint8_t buf[4096], evbuf[4096];
    nx_nxb_writer w;
    CHECK(nx_nxb_writer_init(&w, buf, evbuf, sizeof buf));
    for (int flags = 0; flags < 2; flags++) {
        nx_nxb_writer_reset(&w, 17, 42, now, (uint8_t)flags);
        uint32_t i0, i1, i2;
        CHECK(nx_nxb_writer_stream(&w, NX_TYPE_COUNTER, "req|route:/x", 12, &i0));
        CHECK(nx_nxb_writer_stream(&w, NX_TYPE_TIMER, "lat", 3, &i1));
        CHECK(nx_nxb_writer_stream(&w, NX_TYPE_SET, "users", 5, &i2));
        CHECK(nx_nxb_writer_add(&w, i0, 1, 0, 1, 0));
        CHECK(nx_nxb_writer_add(&w, i1, 12.75, now + 5, 0.5, 0));
        CHECK(nx_nxb_writer_add(&w, i0, -3, 0, 1, 0));
        CHECK(nx_nxb_writer_add_member(&w, i2, "alice", 5, 0, 1));
        size_t len;
        CHECK(nx_nxb_writer_finish(&w, &len));
        put("fuzz_nxb", flags ? "batch_crc" : "batch", 0, 0, buf, len);
    }
    nx_nxb_ack ack = {0};
    uint8_t ab[NX_NXB_ACK_LEN];
    nx_nxb_ack_encode(&ack, ab);
    put("fuzz_nxb", "ack", 0, 0, ab, sizeof ab);
    nx_buf_free(&b);
    return 0;
}
