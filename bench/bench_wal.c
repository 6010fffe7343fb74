/*
 * bench_wal.c — durability costs, one figure per line ("name value unit").
 *
 *   1. WAL group commit: batches of BATCH bytes (a StatsD datagram of ~10
 *      lines), GROUP batches per commit (one shard wakeup), for SECONDS each
 *      in `applied` mode (commit = one write(), no sync) and `durable` mode
 *      (commit = write() + fdatasync()). Prints batches/s, MB/s, p50/p99
 *      commit latency, and the durable/applied throughput ratio.
 *   2. Snapshot of a large engine: STREAMS counter/timer streams; encode ms
 *      (the shard-thread stall), compress+write+fsync ms (background), bytes.
 *   3. Recovery: read + decompress + decode of that snapshot, plus replay
 *      of the WAL written in step 1 (records/s through the CRC checks).
 *
 * Usage: bench_wal [DIR] [STREAMS] [SECONDS] [GROUP] [BATCH]
 *        defaults: /tmp, 200000, 2, 64, 512
 * DIR should be on the disk the daemon would use (tmpfs makes fsync free).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nx_codec.h"
#include "store/nx_store.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void rmrf(const char *d)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", d);
}

static void quiet(void *arg, int level, const char *msg)
{
    (void)arg;
    if (level > 0)
        fprintf(stderr, "%s\n", msg);
}

static double run_wal(const char *dir, bool sync, double seconds, int group, size_t batch,
                      const char *name)
{
    nx_wal_options o = {.log = quiet};
    nx_wal *w;
    if (nx_wal_open(dir, &o, 0, NULL, NULL, NULL, &w) != 0) {
        fprintf(stderr, "cannot open %s\n", dir);
        exit(1);
    }
    uint8_t *p = malloc(batch);
    for (size_t i = 0; i < batch; i++)
        p[i] = (uint8_t)("api.latency:12|ms|#route:/x\n"[i % 28]);
    size_t cap = 1 << 20, nlat = 0;
    double *lat = malloc(cap * sizeof *lat);
    nx_wal_record r = {.recv_ms = 1, .tenant = "default", .tenant_len = 7, .payload = p,
                       .payload_len = (uint32_t)batch};
    double t0 = nx_store_now_ms(), end = t0 + seconds * 1000;
    uint64_t n = 0;
    while (nx_store_now_ms() < end) {
        for (int i = 0; i < group; i++, n++)
            if (nx_wal_append(w, &r, NULL) != 0)
                exit(2);
        double c0 = nx_store_now_ms();
        if (nx_wal_commit(w, sync, NULL) != 0)
            exit(3);
        if (nlat < cap)
            lat[nlat++] = nx_store_now_ms() - c0;
    }
    double el = (nx_store_now_ms() - t0) / 1000;
    qsort(lat, nlat, sizeof *lat, cmp_d);
    double rate = (double)n / el;
    printf("wal_%s_batches_per_s %.0f batches/s\n", name, rate);
    printf("wal_%s_mb_per_s %.1f MB/s\n", name, rate * (double)batch / 1e6);
    printf("wal_%s_events_per_s %.0f events/s (10 lines per %zu-byte batch)\n", name, rate * 10, batch);
    printf("wal_%s_commit_p50 %.3f ms\n", name, lat[nlat / 2]);
    printf("wal_%s_commit_p99 %.3f ms\n", name, lat[nlat * 99 / 100]);
    printf("wal_%s_commits %zu count\n", name, nlat);
    nx_wal_close(w);
    free(lat);
    free(p);
    return rate;
}

static int noop(void *arg, const nx_wal_record *r)
{
    (*(uint64_t *)arg) += r->payload_len;
    return 0;
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "/tmp";
    long streams = argc > 2 ? atol(argv[2]) : 200000;
    double seconds = argc > 3 ? atof(argv[3]) : 2;
    int group = argc > 4 ? atoi(argv[4]) : 64;
    size_t batch = argc > 5 ? (size_t)atol(argv[5]) : 512;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/nx-bench-wal-%d", base, (int)getpid());
    char wal_a[4200], wal_d[4200], snap[4200];
    snprintf(wal_a, sizeof wal_a, "%s/applied", dir);
    snprintf(wal_d, sizeof wal_d, "%s/durable", dir);
    snprintf(snap, sizeof snap, "%s/snap", dir);
    printf("# dir %s, group %d batches/commit, batch %zu bytes, %.1f s per mode\n", dir, group, batch,
           seconds);

    double ra = run_wal(wal_a, false, seconds, group, batch, "applied");
    double rd = run_wal(wal_d, true, seconds, group, batch, "durable");
    printf("wal_durable_vs_applied %.2f ratio\n", rd / ra);
    /* Single-batch groups: what durable costs without group commit. */
    char wal_1[4200];
    snprintf(wal_1, sizeof wal_1, "%s/durable1", dir);
    run_wal(wal_1, true, seconds / 2, 1, batch, "durable_group1");

    /* Replay speed of the applied-mode log (CRC + parse, no-op apply). */
    uint64_t bytes = 0;
    nx_wal_recovery rec;
    nx_wal *w;
    nx_wal_options o = {.log = quiet};
    if (nx_wal_open(wal_a, &o, 0, noop, &bytes, &rec, &w) == 0) {
        printf("wal_replay_records_per_s %.0f records/s\n", (double)rec.replayed / (rec.ms / 1000));
        printf("wal_replay_mb_per_s %.0f MB/s\n", (double)bytes / 1e6 / (rec.ms / 1000));
        nx_wal_close(w);
    }

    /* A large engine: half counters, half timers with 8 samples. */
    nx_engine_config cfg;
    nx_engine_config_default(&cfg);
    nx_engine *e;
    if (nx_engine_create(&cfg, &e) != 0)
        return 1;
    double t0 = nx_store_now_ms();
    int64_t now = 1700000000000;
    nx_tenant *t = NULL;
    for (long i = 0; i < streams; i++) {
        if (i % 1000 == 0) {
            char id[32];
            int n = snprintf(id, sizeof id, "tenant%ld", i / 1000);
            if (nx_engine_tenant(e, id, (size_t)n, &t) != 0)
                return 1;
        }
        char key[64];
        int kl = snprintf(key, sizeof key, "metric.%ld|host:h%ld", i, i % 7);
        nx_type ty = i % 2 ? NX_TYPE_TIMER : NX_TYPE_COUNTER;
        nx_stream *s;
        if (nx_tenant_stream(t, key, (size_t)kl, ty, &s) != 0)
            return 1;
        for (int k = 0; k < (ty == NX_TYPE_TIMER ? 8 : 1); k++) {
            nx_update u = {.value = (double)(i % 1000 + k), .weight = 1};
            nx_stream_update(s, &u, now + k);
        }
    }
    printf("engine_build_ms %.0f ms (%ld streams, %.0f MB heap by nx_engine_bytes)\n",
           nx_store_now_ms() - t0, streams, (double)nx_engine_bytes(e) / 1e6);
    nx_buf raw = {0};
    t0 = nx_store_now_ms();
    if (nx_engine_encode(e, &raw) != 0)
        return 1;
    double enc = nx_store_now_ms() - t0;
    printf("snapshot_encode_ms %.1f ms (shard stall, %ld streams)\n", enc, streams);
    printf("snapshot_raw_bytes %zu bytes (%.0f bytes/stream)\n", raw.len, (double)raw.len / (double)streams);
    nx_snapshotter *sn;
    if (nx_snapshotter_start(snap, 0, 3, 2, quiet, NULL, &sn) != 0)
        return 1;
    size_t rawlen = raw.len;
    nx_snapshotter_submit(sn, &raw, 1);
    nx_snapshotter_wait(sn);
    nx_snapshot_result res;
    nx_snapshotter_poll(sn, &res);
    nx_snapshotter_stop(sn);
    printf("snapshot_write_ms %.1f ms (background: compress %.1f ms + write/fsync/rename)\n", res.write_ms,
           res.compress_ms);
    printf("snapshot_comp_bytes %" PRIu64 " bytes (ratio %.1f)\n", res.meta.comp_len,
           (double)rawlen / (double)(res.meta.comp_len ? res.meta.comp_len : 1));
    printf("snapshot_stall_share %.2f ratio (encode / (encode + background))\n", enc / (enc + res.write_ms));

    /* Recovery: read + decompress + decode. */
    char path[4400];
    nx_snapshot_path(path, sizeof path, snap, 1);
    nx_buf back = {0};
    t0 = nx_store_now_ms();
    if (nx_snapshot_read(path, &back, NULL) != 0)
        return 1;
    double rd_ms = nx_store_now_ms() - t0;
    nx_engine *e2;
    t0 = nx_store_now_ms();
    if (nx_engine_decode(&cfg, back.data, back.len, &e2) != 0)
        return 1;
    double dec = nx_store_now_ms() - t0;
    printf("recovery_snapshot_read_ms %.1f ms\n", rd_ms);
    printf("recovery_decode_ms %.1f ms\n", dec);
    printf("recovery_total_ms %.1f ms (%ld streams; x%.1f for 1M streams if linear: %.0f ms)\n", rd_ms + dec,
           streams, 1e6 / (double)streams, (rd_ms + dec) * 1e6 / (double)streams);
    nx_buf_free(&back);
    nx_engine_destroy(e2);
    nx_engine_destroy(e);
    rmrf(dir);
    return 0;
}
