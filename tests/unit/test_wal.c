/*
 * test_wal.c — the per-shard write-ahead log on real files: append/replay
 * round trip, group commit, rotation and deletion, torn writes at every
 * offset of the last record, flipped bytes, a full disk, empty or missing
 * directories, and a log written in the version-1 format (crc32 records).
 */
#include "test_store_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>
#include <zlib.h>

#include "store/nx_wal.h"

/* Records the replayed batches (payloads are small: "b<lsn>..." strings). */
typedef struct seen {
    uint64_t n;
    uint64_t first, last;
    int bad;         /* a record did not match what was appended */
} seen;

static void quiet(void *arg, int level, const char *msg)
{
    (void)arg;
    (void)level;
    (void)msg;
}

static const nx_wal_options *opts(uint64_t seg, size_t buf)
{
    static __thread nx_wal_options o;
    memset(&o, 0, sizeof o);
    o.segment_bytes = seg;
    o.buffer_bytes = buf;
    o.shard = 3;
    o.log = quiet;
    return &o;
}

/* Deterministic content of batch `lsn`: payload length varies with lsn. */
static size_t payload_of(uint64_t lsn, uint8_t *buf)
{
    size_t n = 10 + (size_t)(lsn * 7919 % 50);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(lsn * 31 + i);
    return n;
}

static int append_n(nx_wal *w, uint64_t n)
{
    uint8_t p[128];
    for (uint64_t i = 0; i < n; i++) {
        uint64_t lsn = nx_wal_next_lsn(w);
        char tenant[16];
        int tl = snprintf(tenant, sizeof tenant, "t%u", (unsigned)(lsn % 5));
        nx_wal_record r = {
            .recv_ms = 1700000000000 + (int64_t)lsn,
            .format = (uint8_t)(lsn % 3),
            .source = 7,
            .tenant_len = (uint8_t)(lsn % 4 == 0 ? 0 : tl),
            .tenant = tenant,
            .payload = p,
            .payload_len = (uint32_t)payload_of(lsn, p),
        };
        uint64_t got;
        int rc = nx_wal_append(w, &r, &got);
        if (rc)
            return rc;
        if (got != lsn)
            return -100;
    }
    return 0;
}

static int check_cb(void *arg, const nx_wal_record *r)
{
    seen *s = arg;
    uint8_t p[128];
    size_t n = payload_of(r->lsn, p);
    char tenant[16];
    int tl = snprintf(tenant, sizeof tenant, "t%u", (unsigned)(r->lsn % 5));
    size_t etl = r->lsn % 4 == 0 ? 0 : (size_t)tl;
    if (r->payload_len != n || memcmp(r->payload, p, n) != 0 || r->recv_ms != 1700000000000 + (int64_t)r->lsn ||
        r->format != r->lsn % 3 || r->source != 7 || r->tenant_len != etl ||
        memcmp(r->tenant, tenant, etl) != 0)
        s->bad++;
    if (s->n && r->lsn != s->last + 1)
        s->bad++;
    if (!s->n)
        s->first = r->lsn;
    s->last = r->lsn;
    s->n++;
    return 0;
}

static void seg_file(char *out, size_t n, const char *dir, uint64_t first)
{
    snprintf(out, n, "%s/wal-%020llu.log", dir, (unsigned long long)first);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("wal");
    nx_wal *w;
    nx_wal_recovery rec;
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, NULL, NULL, &rec, &w), 0);
    assert_int_equal(rec.records, 0);
    assert_int_equal(nx_wal_next_lsn(w), 1);
    assert_int_equal(append_n(w, 1000), 0);
    uint64_t durable = 99;
    assert_int_equal(nx_wal_commit(w, true, &durable), 0);
    assert_int_equal(durable, 1000);
    nx_wal_close(w);

    seen s = {0};
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 1000);
    assert_int_equal(s.first, 1);
    assert_int_equal(s.last, 1000);
    assert_int_equal(s.bad, 0);
    assert_int_equal(rec.truncated_bytes, 0);
    assert_false(rec.gap);
    /* The writer continues after the last record. */
    assert_int_equal(nx_wal_next_lsn(w), 1001);
    assert_int_equal(append_n(w, 10), 0);
    nx_wal_close(w);

    /* Replay only what a snapshot at lsn 600 does not cover. */
    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 600, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 410);
    assert_int_equal(s.first, 601);
    assert_int_equal(s.last, 1010);
    assert_int_equal(s.bad, 0);
    assert_int_equal(rec.records, 1010);
    nx_wal_close(w);

    /* A snapshot newer than the log (WAL lost): LSNs continue after it. */
    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 5000, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(nx_wal_next_lsn(w), 5001);
    assert_int_equal(append_n(w, 5), 0);
    nx_wal_close(w);
    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 5000, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.first, 5001);
    assert_false(rec.gap);
    nx_wal_close(w);
    nx_wal_verify v;
    assert_int_equal(nx_wal_verify_dir(dir, &v), NX_ECORRUPT); /* 1011..5000 missing */
    assert_true(v.gap);
    ts_rmrf(dir);
    free(dir);
}

/* Bytes the file system has allocated to path (holes and preallocation:
 * st_blocks, not st_size). */
static long long allocated_bytes(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long long)st.st_blocks * 512;
}

/* Segments are allocated segment_bytes ahead of the writes (fallocate,
 * KEEP_SIZE: the size is still what was written), so a pwrite never
 * allocates blocks under the inode lock the background fdatasync holds;
 * the segment reopened after recovery is extended the same way, and replay
 * still sees exactly the records (the size, not the allocation, ends it). */
static void test_preallocated_segments(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("walpre");
    char probe[512];
    snprintf(probe, sizeof probe, "%s/probe", dir);
    int fd = open(probe, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    int can = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20) == 0;
    close(fd);
    unlink(probe);
    if (!can) {
        print_message("no fallocate on %s: skipped\n", dir);
        ts_rmrf(dir);
        free(dir);
        skip();
    }
    const uint64_t seg = 4u << 20;
    nx_wal *w;
    nx_wal_recovery rec;
    assert_int_equal(nx_wal_open(dir, opts(seg, 0), 0, NULL, NULL, &rec, &w), 0);
    assert_int_equal(append_n(w, 100), 0);
    uint64_t durable;
    assert_int_equal(nx_wal_commit(w, true, &durable), 0);
    char path[512];
    seg_file(path, sizeof path, dir, 1);
    long size = ts_file_size(path);
    assert_true(size > 0 && size < 16384);
    assert_true(allocated_bytes(path) >= (long long)seg);
    nx_wal_close(w);
    /* recovery reopens the tail segment and allocates ahead again */
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0); /* drops the allocation past the size */
    close(fd);
    assert_true(allocated_bytes(path) < (long long)seg);
    seen s = {0};
    assert_int_equal(nx_wal_open(dir, opts(seg, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_true(s.n == 100 && s.bad == 0 && rec.truncated_bytes == 0);
    assert_true(allocated_bytes(path) >= (long long)seg);
    assert_int_equal(append_n(w, 50), 0);
    assert_int_equal(nx_wal_commit(w, true, &durable), 0);
    assert_int_equal(durable, 150);
    nx_wal_close(w);
    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(seg, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_true(s.n == 150 && s.last == 150 && s.bad == 0 && rec.truncated_bytes == 0);
    nx_wal_close(w);
    ts_rmrf(dir);
    free(dir);
}

static void test_group_commit(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("wal");
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(0, 1 << 20), 0, NULL, NULL, NULL, &w), 0);
    assert_int_equal(append_n(w, 100), 0);
    /* Buffered only: nothing reached the kernel, nothing is durable. */
    assert_int_equal(nx_wal_written_lsn(w), 0);
    assert_int_equal(nx_wal_durable_lsn(w), 0);
    uint64_t d = 1;
    assert_int_equal(nx_wal_commit(w, false, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(nx_wal_written_lsn(w), 100);
    assert_int_equal(nx_wal_commit(w, true, &d), 0);
    assert_int_equal(d, 100);
    /* Commit with nothing new is a no-op. */
    assert_int_equal(nx_wal_commit(w, true, &d), 0);
    assert_int_equal(d, 100);
    nx_wal_close(w);

    /* A small buffer writes when full, without a commit. */
    assert_int_equal(nx_wal_open(dir, opts(0, 1024), 0, NULL, NULL, NULL, &w), 0);
    assert_int_equal(append_n(w, 100), 0);
    assert_true(nx_wal_written_lsn(w) > 100);
    assert_true(nx_wal_written_lsn(w) < 200);
    assert_int_equal(nx_wal_durable_lsn(w), 100);
    assert_int_equal(nx_wal_commit(w, true, &d), 0);
    assert_int_equal(d, 200);
    nx_wal_close(w);

    /* A record larger than the buffer still goes through. */
    assert_int_equal(nx_wal_open(dir, opts(0, 1024), 0, NULL, NULL, NULL, &w), 0);
    uint8_t *big = calloc(1, 100000);
    assert_non_null(big);
    nx_wal_record r = {.recv_ms = 1, .payload = big, .payload_len = 100000};
    uint64_t lsn;
    assert_int_equal(nx_wal_append(w, &r, &lsn), 0);
    assert_int_equal(lsn, 201);
    r.payload_len = NX_WAL_MAX_PAYLOAD + 1;
    assert_int_equal(nx_wal_append(w, &r, &lsn), NX_ETOOBIG);
    assert_int_equal(nx_wal_commit(w, true, &d), 0);
    assert_int_equal(d, 201);
    nx_wal_close(w);
    free(big);
    ts_rmrf(dir);
    free(dir);
}

static void test_rotation_and_removal(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("wal");
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(4096, 1000), 0, NULL, NULL, NULL, &w), 0);
    assert_int_equal(append_n(w, 500), 0);
    assert_int_equal(nx_wal_commit(w, true, NULL), 0);
    size_t segs = nx_wal_segment_count(w);
    assert_true(segs >= 8);
    /* No segment exceeds the limit. */
    nx_wal_verify v;
    assert_int_equal(nx_wal_verify_dir(dir, &v), 0);
    assert_int_equal(v.segments, segs);
    assert_int_equal(v.records, 500);
    assert_true(v.bytes <= segs * 4096);

    size_t removed = 0;
    assert_int_equal(nx_wal_remove_covered(w, 250, &removed), 0);
    assert_true(removed > 0);
    assert_int_equal(nx_wal_segment_count(w), segs - removed);
    /* Removing everything keeps the segment being written. */
    assert_int_equal(nx_wal_remove_covered(w, 10000, NULL), 0);
    assert_int_equal(nx_wal_segment_count(w), 1);
    assert_int_equal(append_n(w, 3), 0);
    nx_wal_close(w);
    assert_int_equal(nx_wal_verify_dir(dir, &v), 0);
    assert_int_equal(v.segments, 1);
    assert_int_equal(v.last_lsn, 503);

    ts_rmrf(dir);
    assert_int_equal(nx_wal_open(dir, opts(4096, 1000), 0, NULL, NULL, NULL, &w), 0);
    assert_int_equal(append_n(w, 500), 0);
    assert_int_equal(nx_wal_remove_covered(w, 250, &removed), 0);
    nx_wal_close(w);
    /* Recovery after the removal, from a snapshot at 250: exactly 251..500. */
    seen s = {0};
    nx_wal_recovery rec;
    assert_int_equal(nx_wal_open(dir, opts(4096, 1000), 250, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 250);
    assert_int_equal(s.first, 251);
    assert_int_equal(s.last, 500);
    assert_int_equal(s.bad, 0);
    assert_false(rec.gap);
    assert_true(rec.first_lsn <= 251);
    nx_wal_close(w);
    /* From an older snapshot whose records were removed: a gap is reported. */
    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(4096, 1000), 10, check_cb, &s, &rec, &w), 0);
    assert_true(rec.gap);
    nx_wal_close(w);
    ts_rmrf(dir);
    free(dir);
}

/* Sync behind: fdatasync on the helper thread while appends, rotations
 * (small segments: the old segment's sync goes behind too) and removals
 * (unlinked behind) go on. durable_lsn never passes written_lsn and never goes back, reaches the
 * last LSN, and everything replays after close. */
static void test_sync_behind(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("wal");
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(4096, 1000), 0, NULL, NULL, NULL, &w), 0);
    uint64_t prev = 0;
    for (int i = 0; i < 60; i++) {
        assert_int_equal(append_n(w, 10), 0);
        assert_int_equal(nx_wal_sync_behind(w), 0);
        uint64_t d = nx_wal_durable_lsn(w);
        assert_true(d >= prev);
        assert_true(d <= nx_wal_written_lsn(w));
        assert_int_equal(nx_wal_written_lsn(w), (uint64_t)(i + 1) * 10);
        prev = d;
        if (i == 30)
            assert_int_equal(nx_wal_remove_covered(w, 200, NULL), 0);
    }
    /* the helper catches up on its own */
    for (int t = 0; t < 5000 && nx_wal_durable_lsn(w) < 600; t++)
        usleep(1000);
    assert_int_equal(nx_wal_durable_lsn(w), 600);
    /* an inline sync after syncs behind */
    assert_int_equal(append_n(w, 5), 0);
    uint64_t d = 0;
    assert_int_equal(nx_wal_commit(w, true, &d), 0);
    assert_int_equal(d, 605);
    assert_int_equal(append_n(w, 5), 0);
    assert_int_equal(nx_wal_sync_behind(w), 0);
    nx_wal_close(w); /* waits for the helper */
    nx_wal_verify v;
    assert_int_equal(nx_wal_verify_dir(dir, &v), 0);
    assert_int_equal(v.last_lsn, 610);
    seen s = {0};
    assert_int_equal(nx_wal_open(dir, opts(4096, 1000), 0, check_cb, &s, NULL, &w), 0);
    assert_int_equal(s.last, 610);
    assert_int_equal(s.bad, 0);
    assert_true(s.first <= 201);
    assert_true(s.first > 1); /* the removal, unlinked behind, happened */
    nx_wal_close(w);
    ts_rmrf(dir);
    free(dir);
}

/* Truncate the last record at every offset: replay stops before it, the
 * tail is cut, and the writer reuses its LSN. */
static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("wal");
    char pristine[512], seg[512];
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, NULL, NULL, NULL, &w), 0);
    assert_int_equal(append_n(w, 20), 0);
    assert_int_equal(nx_wal_commit(w, true, NULL), 0);
    long before_last = ts_file_size((seg_file(seg, sizeof seg, dir, 1), seg));
    assert_int_equal(append_n(w, 1), 0);
    nx_wal_close(w);
    long full = ts_file_size(seg);
    assert_true(full > before_last + 27);
    snprintf(pristine, sizeof pristine, "%s.pristine", dir);
    assert_int_equal(ts_copy(seg, pristine), 0);

    for (long cut = before_last; cut < full; cut++) {
        assert_int_equal(ts_copy(pristine, seg), 0);
        assert_int_equal(truncate(seg, cut), 0);
        seen s = {0};
        nx_wal_recovery rec;
        assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
        assert_int_equal(s.n, 20);
        assert_int_equal(s.last, 20);
        assert_int_equal(s.bad, 0);
        assert_int_equal(rec.truncated_bytes, (uint64_t)(cut - before_last));
        assert_int_equal(ts_file_size(seg), before_last);
        assert_int_equal(nx_wal_next_lsn(w), 21);
        assert_int_equal(append_n(w, 1), 0); /* lsn 21 again, same bytes */
        nx_wal_close(w);
        assert_int_equal(ts_file_size(seg), full);
        memset(&s, 0, sizeof s);
        assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
        assert_int_equal(s.n, 21);
        assert_int_equal(s.bad, 0);
        nx_wal_close(w);
    }
    /* A segment whose header was torn at creation is removed. */
    ts_rmrf(dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    seg_file(seg, sizeof seg, dir, 1);
    FILE *f = fopen(seg, "wb");
    fwrite("NXW", 1, 3, f);
    fclose(f);
    seen s = {0};
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, NULL, &w), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(append_n(w, 2), 0);
    nx_wal_close(w);
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, NULL, &w), 0);
    assert_int_equal(s.n, 2);
    nx_wal_close(w);
    unlink(pristine);
    ts_rmrf(dir);
    free(dir);
}

/* Flip one bit anywhere in record 11 of 20: replay stops at 10, record 11
 * and everything after it are cut (never replayed). */
static void test_flipped_bytes(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("wal");
    char pristine[512], seg[512];
    nx_wal *w;
    long off10 = 0, off11 = 0;
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, NULL, NULL, NULL, &w), 0);
    seg_file(seg, sizeof seg, dir, 1);
    assert_int_equal(append_n(w, 10), 0);
    assert_int_equal(nx_wal_commit(w, false, NULL), 0);
    off10 = ts_file_size(seg);
    assert_int_equal(append_n(w, 1), 0);
    assert_int_equal(nx_wal_commit(w, false, NULL), 0);
    off11 = ts_file_size(seg);
    assert_int_equal(append_n(w, 9), 0);
    nx_wal_close(w);
    snprintf(pristine, sizeof pristine, "%s.pristine", dir);
    assert_int_equal(ts_copy(seg, pristine), 0);
    for (long off = off10; off < off11; off++) {
        for (int bit = 0; bit < 8; bit += 3) {
            assert_int_equal(ts_copy(pristine, seg), 0);
            assert_int_equal(ts_flip(seg, off, (unsigned char)(1u << bit)), 0);
            nx_wal_verify v;
            assert_int_equal(nx_wal_verify_dir(dir, &v), NX_ECORRUPT);
            assert_int_equal(v.records, 10);
            seen s = {0};
            nx_wal_recovery rec;
            assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
            assert_int_equal(s.n, 10);
            assert_int_equal(s.last, 10);
            assert_int_equal(s.bad, 0);
            assert_int_equal(ts_file_size(seg), off10);
            nx_wal_close(w);
        }
    }
    /* Header corruption in a segment in the middle: it and the later
     * segments are kept aside (.orphan), the earlier ones replay. */
    ts_rmrf(dir);
    assert_int_equal(nx_wal_open(dir, opts(2048, 512), 0, NULL, NULL, NULL, &w), 0);
    assert_int_equal(append_n(w, 200), 0);
    nx_wal_close(w);
    nx_wal_verify v;
    assert_int_equal(nx_wal_verify_dir(dir, &v), 0);
    assert_true(v.segments >= 4);
    /* Find the second segment by replaying everything and looking at files. */
    uint64_t second = 0;
    for (uint64_t l = 2; l <= 200 && !second; l++) {
        seg_file(seg, sizeof seg, dir, l);
        if (ts_file_size(seg) > 0)
            second = l;
    }
    assert_true(second > 1);
    assert_int_equal(ts_flip(seg, 9, 0x01), 0); /* first_lsn field */
    assert_int_equal(nx_wal_verify_dir(dir, &v), NX_ECORRUPT);
    assert_true(v.bad_segments >= 1);
    seen s = {0};
    nx_wal_recovery rec;
    assert_int_equal(nx_wal_open(dir, opts(2048, 512), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, second - 1);
    assert_int_equal(s.bad, 0);
    assert_true(rec.orphaned_segments >= 2);
    assert_int_equal(nx_wal_next_lsn(w), second);
    nx_wal_close(w);
    char orph[600];
    snprintf(orph, sizeof orph, "%s.orphan", seg);
    assert_true(ts_file_size(orph) > 0);
    unlink(pristine);
    ts_rmrf(dir);
    free(dir);
}

/* A full disk: the failing append/commit returns NX_ENOSPC, nothing past
 * the written LSN is reported durable, the file holds only whole records,
 * and the log works again once space is freed. */
static void test_enospc(void **state)
{
    (void)state;
    char *mnt = ts_tmpdir("walfull");
    struct rlimit saved;
    int kind = ts_small_disk(mnt, 256 * 1024, &saved);
    if (!kind) {
        print_message("cannot make a small disk (no mount, no rlimit): skipped\n");
        rmdir(mnt);
        free(mnt);
        skip();
    }
    print_message("small disk: %s\n", kind == 1 ? "tmpfs 256 KiB" : "RLIMIT_FSIZE 256 KiB stand-in");
    char dir[512], filler[512];
    snprintf(dir, sizeof dir, "%s/wal", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    /* The rlimit is per file, so make the segment limit larger than it. */
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(64u << 20, 8192), 0, NULL, NULL, NULL, &w), 0);
    uint8_t p[1000];
    memset(p, 'x', sizeof p);
    nx_wal_record r = {.recv_ms = 5, .payload = p, .payload_len = sizeof p};
    int rc = 0;
    uint64_t durable = 0, acked = 0, appended = 0;
    for (int i = 0; i < 100000 && rc == 0; i++) {
        uint64_t lsn;
        rc = nx_wal_append(w, &r, &lsn);
        if (rc)
            break;
        appended = lsn;
        if (i % 10 == 9) {
            rc = nx_wal_commit(w, true, &durable);
            if (rc == 0)
                acked = durable; /* a waiter <= durable gets its ack */
        }
    }
    assert_int_equal(rc, NX_ENOSPC);
    /* Nothing beyond what reached the disk may be acknowledged. */
    assert_true(nx_wal_durable_lsn(w) <= nx_wal_written_lsn(w));
    assert_true(nx_wal_written_lsn(w) < appended + 1);
    assert_true(acked <= nx_wal_written_lsn(w));
    assert_int_equal(nx_wal_next_lsn(w), nx_wal_written_lsn(w) + 1);
    uint64_t written = nx_wal_written_lsn(w);
    /* Still (nearly) full: the space the cut-off partial write used may
     * take a record or two, then single commits fail again. */
    uint64_t lsn;
    rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++) {
        rc = nx_wal_append(w, &r, &lsn);
        if (rc == 0)
            rc = nx_wal_commit(w, true, &durable);
    }
    assert_int_equal(rc, NX_ENOSPC);
    assert_true(nx_wal_written_lsn(w) >= written);
    assert_int_equal(nx_wal_next_lsn(w), nx_wal_written_lsn(w) + 1);
    assert_int_equal(nx_wal_durable_lsn(w), nx_wal_written_lsn(w));
    written = nx_wal_written_lsn(w);
    nx_wal_close(w);
    /* The log on the full disk holds exactly the written records, whole. */
    nx_wal_verify v;
    assert_int_equal(nx_wal_verify_dir(dir, &v), 0);
    assert_int_equal(v.records, written);
    assert_int_equal(v.torn_bytes, 0);
    (void)filler;
    ts_small_disk_end(mnt, kind, &saved);
    ts_rmrf(mnt);
    free(mnt);
}

/* After ENOSPC on the tmpfs, freeing space lets the log continue densely. */
static void test_enospc_recovers(void **state)
{
    (void)state;
    char *mnt = ts_tmpdir("walfull2");
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=131072") != 0) {
        rmdir(mnt);
        free(mnt);
        skip();
    }
    char dir[512], filler[512];
    snprintf(dir, sizeof dir, "%s/wal", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    FILE *f = fopen(filler, "wb");
    assert_non_null(f);
    static char blk[4096];
    memset(blk, 1, sizeof blk);
    for (int i = 0; i < 16; i++)
        fwrite(blk, 1, sizeof blk, f);
    fclose(f);
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(64u << 20, 4096), 0, NULL, NULL, NULL, &w), 0);
    uint8_t p[700];
    memset(p, 'y', sizeof p);
    nx_wal_record r = {.recv_ms = 9, .payload = p, .payload_len = sizeof p};
    int rc = 0;
    uint64_t lsn;
    while ((rc = nx_wal_append(w, &r, &lsn)) == 0 && (rc = nx_wal_commit(w, true, NULL)) == 0)
        ;
    assert_int_equal(rc, NX_ENOSPC);
    uint64_t written = nx_wal_written_lsn(w);
    assert_true(written > 10);
    unlink(filler);
    assert_int_equal(nx_wal_append(w, &r, &lsn), 0);
    assert_int_equal(lsn, written + 1);
    assert_int_equal(nx_wal_commit(w, true, NULL), 0);
    nx_wal_close(w);
    seen s = {0};
    nx_wal_recovery rec;
    assert_int_equal(nx_wal_open(dir, opts(64u << 20, 4096), 0, NULL, &s, &rec, &w), 0);
    assert_int_equal(rec.records, written + 1);
    assert_int_equal(rec.truncated_bytes, 0);
    nx_wal_close(w);
    umount2(mnt, MNT_DETACH);
    ts_rmrf(mnt);
    free(mnt);
}

static void test_empty_and_missing(void **state)
{
    (void)state;
    char *base = ts_tmpdir("wal");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/a/b/c/wal", base);
    nx_wal_verify v;
    assert_int_equal(nx_wal_verify_dir(dir, &v), NX_ENOENT);
    seen s = {0};
    nx_wal_recovery rec;
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(rec.segments, 0);
    assert_int_equal(nx_wal_segment_count(w), 0);
    /* Closing an unused WAL leaves no file behind. */
    nx_wal_close(w);
    assert_int_equal(nx_wal_verify_dir(dir, &v), 0);
    assert_int_equal(v.segments, 0);
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(append_n(w, 3), 0);
    nx_wal_close(w);
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 3);
    nx_wal_close(w);
    /* A path that is a file, not a directory. */
    char file[600];
    snprintf(file, sizeof file, "%s/plain", base);
    FILE *f = fopen(file, "w");
    fclose(f);
    assert_int_not_equal(nx_wal_open(file, opts(0, 0), 0, NULL, NULL, NULL, &w), 0);
    ts_rmrf(base);
    free(base);
}

/* A callback error aborts the open (the caller cannot apply the log). */
static int fail_at_5(void *arg, const nx_wal_record *r)
{
    (void)arg;
    return r->lsn == 5 ? NX_ENOMEM : 0;
}

static void test_replay_error_propagates(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("wal");
    nx_wal *w;
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, NULL, NULL, NULL, &w), 0);
    assert_int_equal(append_n(w, 10), 0);
    nx_wal_close(w);
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, fail_at_5, NULL, NULL, &w), NX_ENOMEM);
    /* Nothing was truncated by the failed open. */
    nx_wal_verify v;
    assert_int_equal(nx_wal_verify_dir(dir, &v), 0);
    assert_int_equal(v.records, 10);
    ts_rmrf(dir);
    free(dir);
}

/* Writes a version-1 segment (crc32 checksums, as before version 2) holding
 * the records 1..n of append_n's scheme. */
static void write_v1_segment(const char *dir, uint64_t n)
{
    char path[4200];
    seg_file(path, sizeof path, dir, 1);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t h[24] = {0};
    uint32_t magic = 0x4C57584Eu, shard = 3;
    uint64_t first = 1;
    memcpy(h, &magic, 4);
    h[4] = 1;
    memcpy(h + 8, &first, 8);
    memcpy(h + 16, &shard, 4);
    uint32_t hc = (uint32_t)crc32(0L, h, 20);
    memcpy(h + 20, &hc, 4);
    assert_int_equal(fwrite(h, 1, 24, f), 24);
    for (uint64_t lsn = 1; lsn <= n; lsn++) {
        uint8_t r[256], p[128];
        char tenant[16];
        int tl = snprintf(tenant, sizeof tenant, "t%u", (unsigned)(lsn % 5));
        uint8_t etl = (uint8_t)(lsn % 4 == 0 ? 0 : tl);
        size_t pl = payload_of(lsn, p);
        uint32_t len = (uint32_t)(19 + etl + pl);
        int64_t recv = 1700000000000 + (int64_t)lsn;
        memcpy(r, &len, 4);
        memcpy(r + 8, &lsn, 8);
        memcpy(r + 16, &recv, 8);
        r[24] = (uint8_t)(lsn % 3);
        r[25] = 7;
        r[26] = etl;
        memcpy(r + 27, tenant, etl);
        memcpy(r + 27 + etl, p, pl);
        uLong c = crc32(0L, r, 4);
        uint32_t crc = (uint32_t)crc32(c, r + 8, len);
        memcpy(r + 4, &crc, 4);
        assert_int_equal(fwrite(r, 1, 8 + len, f), 8 + len);
    }
    assert_int_equal(fclose(f), 0);
}

static uint8_t seg_version_of(const char *dir, uint64_t first)
{
    char path[4200];
    seg_file(path, sizeof path, dir, first);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t h[5];
    assert_int_equal(fread(h, 1, 5, f), 5);
    fclose(f);
    return h[4];
}

/* A log written before version 2 (crc32 records) is replayed, continued in
 * its own format (a reopen replays old and new records alike), and the next
 * segment is version 2; a bit flipped in a version-1 record is still caught. */
static void test_version1_segment(void **state)
{
    (void)state;
    char *dir = ts_tmpdir("walv1");
    write_v1_segment(dir, 40);
    nx_wal *w;
    nx_wal_recovery rec;
    seen s = {0};
    assert_int_equal(nx_wal_open(dir, opts(0, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 40);
    assert_int_equal(s.bad, 0);
    assert_int_equal(rec.truncated_bytes, 0);
    assert_int_equal(append_n(w, 10), 0); /* into the version-1 segment */
    assert_int_equal(nx_wal_commit(w, true, NULL), 0);
    nx_wal_close(w);
    assert_int_equal(seg_version_of(dir, 1), 1);

    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(2048, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 50);
    assert_int_equal(s.bad, 0);
    assert_int_equal(rec.truncated_bytes, 0);
    assert_int_equal(append_n(w, 10), 0); /* past 2 KiB already: a new segment */
    assert_int_equal(nx_wal_commit(w, true, NULL), 0);
    nx_wal_close(w);
    uint64_t second = 0; /* the segment after the version-1 one */
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        unsigned long long first;
        if (sscanf(de->d_name, "wal-%llu.log", &first) == 1 && first > 1)
            second = first;
    }
    closedir(d);
    assert_int_equal(second, 51);
    assert_int_equal(seg_version_of(dir, second), 2);

    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(2048, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 60);
    assert_int_equal(s.first, 1);
    assert_int_equal(s.bad, 0);
    nx_wal_close(w);

    /* a flipped payload byte in the version-1 segment's last record */
    char path[4200];
    seg_file(path, sizeof path, dir, 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, st.st_size - 1), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, st.st_size - 1), 1);
    close(fd);
    memset(&s, 0, sizeof s);
    assert_int_equal(nx_wal_open(dir, opts(2048, 0), 0, check_cb, &s, &rec, &w), 0);
    assert_int_equal(s.n, 49); /* replay stops before the damaged record */
    assert_int_equal(s.bad, 0);
    assert_true(rec.orphaned_segments >= 1); /* what follows a hole is never replayed */
    nx_wal_close(w);
    ts_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_preallocated_segments),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_rotation_and_removal),
        cmocka_unit_test(test_sync_behind),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_enospc_recovers),
        cmocka_unit_test(test_empty_and_missing),
        cmocka_unit_test(test_replay_error_propagates),
        cmocka_unit_test(test_version1_segment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
