/*
 * nx_wal.c — per-shard write-ahead log: segments, group commit, recovery.
 *
 * Design (see nx_wal.h for the API contract):
 *  - Records are serialized straight into one group buffer (no per-record
 *    allocation, no syscall per record). The buffer reaches the kernel with
 *    one pwrite() per commit (or when it fills) and stable storage with one
 *    fdatasync() per commit(sync=true): that is the group commit. LSNs are
 *    dense, so "everything <= L is durable" is one integer.
 *  - Segments are created lazily, when the first record that belongs in them
 *    is written, and are named after that record's LSN; a new segment is
 *    started when the current one would exceed segment_bytes. The old one is
 *    fdatasync'ed before it is closed, and the directory is fsync'ed after a
 *    create, so a durable LSN never depends on an unsynced file or dirent.
 *  - Write-behind: every NX_WAL_WRITEBACK bytes written, sync_file_range()
 *    starts the kernel's writeback of them without waiting (RocksDB's
 *    bytes_per_sync), so the periodic or acked fdatasync() finds little
 *    dirty data and blocks the shard for a short time. It changes nothing
 *    about durability: only fdatasync() moves durable_lsn.
 *  - Sync behind (nx_wal_sync_behind, the periodic sync of traffic nobody
 *    waits for): the fdatasync runs on a helper thread (store/nx_syncer.h)
 *    while the owner goes on writing; durable_lsn moves when it ends. Once
 *    a WAL has synced behind, a rotation hands the old segment's sync to
 *    the helper too (it holds its own dup of the fd), so does the fsync of
 *    the directory after a segment is created, and so do the unlinks of
 *    segments a snapshot covers (nx_wal_remove_covered), and an inline sync
 *    (commit with sync, close) first waits for the helper's queue: the
 *    helper completes requests in file order, so durable_lsn still never
 *    covers an unsynced file.
 *  - Preallocation: a segment's blocks are allocated segment_bytes ahead
 *    when it is created or reopened (fallocate, KEEP_SIZE: the size stays
 *    what was written, so recovery is unchanged), so pwrite() never
 *    allocates under the inode lock that the helper's fdatasync holds.
 *  - pwrite() at an explicit offset (not O_APPEND): a short or failed write
 *    is undone by ftruncate() to the last whole record, so one ENOSPC never
 *    leaves garbage in the middle of the log.
 *  - Recovery reads each segment whole (at most segment_bytes + one record),
 *    checks every record (length bounds, CRC, LSN continuity) and stops at
 *    the first bad one. In the last segment that is a torn tail from a crash:
 *    it is cut off. Anywhere else it is real corruption: the segment is cut
 *    there and the later segments are renamed *.orphan (kept for forensics,
 *    never replayed: replaying past a hole would break exactly-once).
 *
 * Segment file header (24 bytes, little-endian):
 *   off  0  u32 magic 0x4C57584E ("NXWL")
 *   off  4  u8  version (2; 1 is still read and appended to)
 *   off  5  u8[3] zero
 *   off  8  u64 first_lsn (equals the number in the file name)
 *   off 16  u32 shard
 *   off 20  u32 crc32 (zlib) of bytes [0, 20)
 *
 * Record (27 + tenant_len + payload_len bytes):
 *   off  0  u32 len      number of bytes after the crc field (from off 8)
 *   off  4  u32 sum      version 2: the low 32 bits of XXH3-64 (libxxhash) of
 *                        bytes [8, 8+len) seeded with len; version 1: crc32
 *                        (zlib) of bytes [0, 4) followed by [8, 8+len). Both
 *                        cover the length (as the seed, or as bytes), so a
 *                        flipped length bit fails the check instead of
 *                        misframing silently. XXH3 because the WAL checksums
 *                        every ingested byte on the shard thread: zlib's
 *                        crc32 was 3.7% of nexusd's CPU at 2.5M lines/s,
 *                        XXH3 runs at memory speed.
 *   off  8  u64 lsn      previous record's lsn + 1 (segment's first_lsn first)
 *   off 16  i64 recv_ms  receive time, the engine's "now" for this batch
 *   off 24  u8  format   ingest format (opaque to the WAL)
 *   off 25  u8  source   listener kind (opaque to the WAL)
 *   off 26  u8  tenant_len
 *   off 27  tenant bytes, then payload bytes (len - 19 - tenant_len)
 */
#include "store/nx_wal.h"
#include "store/nx_syncer.h"
#include "common/nx_codec.h"
#include "common/nx_fs.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define WAL_MAGIC 0x4C57584Eu
#define WAL_VERSION 2         /* what new segments are written as */
#define WAL_VERSION_MIN 1     /* the oldest one recovery reads */
#define SEG_HDR 24
#define REC_HDR 8            /* len + crc */
#define REC_FIXED 19         /* lsn + recv_ms + format + source + tenant_len */
#define REC_MIN (REC_HDR + REC_FIXED)
#define REC_MAX_LEN (REC_FIXED + NX_WAL_MAX_TENANT + NX_WAL_MAX_PAYLOAD)
#define NX_WAL_WRITEBACK (1u << 20) /* start writeback every 1 MiB written */

struct nx_wal {
    char *dir;
    nx_wal_options opt;
    int fd;                  /* current segment, -1 if none yet */
    uint64_t seg_first;      /* first LSN of the current segment */
    uint8_t seg_version;     /* its format version (record checksums) */
    uint64_t seg_size;       /* bytes in the current segment file */
    uint64_t wb_off;         /* writeback started up to here (sync_file_range) */
    uint8_t *buf;            /* group buffer */
    size_t buf_len, buf_cap;
    uint64_t next_lsn;       /* LSN of the next append */
    uint64_t written_lsn;    /* highest LSN in the file (kernel) */
    uint64_t durable_lsn;    /* highest LSN fdatasync'ed */
    uint64_t bytes_written;
    uint64_t *segs;          /* first LSNs of the segment files, ascending */
    size_t nsegs, segs_cap;
    int failed;              /* sticky NX_EIO after a failed fdatasync */
    nx_syncer *syncer;       /* sync behind; NULL until the first one */
    uint64_t unlink_failed_seen; /* the syncer's failed unlinks already logged */
};

/* Highest LSN on stable storage: synced inline or by the syncer. */
static uint64_t durable_now(const nx_wal *w)
{
    uint64_t d = w->durable_lsn;
    if (w->syncer) {
        uint64_t b = nx_syncer_done_lsn(w->syncer);
        if (b > d)
            d = b;
    }
    return d;
}

/* A failed sync behind fails the WAL as an inline one does; a failed
 * unlink behind (a covered segment left on disk) is logged. */
static int check_syncer(nx_wal *w)
{
    if (w->syncer && nx_syncer_unlink_failed(w->syncer) > w->unlink_failed_seen) {
        w->unlink_failed_seen = nx_syncer_unlink_failed(w->syncer);
        nx_store_logf(w->opt.log, w->opt.log_arg, 1,
                      "wal: %" PRIu64 " covered segment(s) could not be removed (left on disk)",
                      w->unlink_failed_seen);
    }
    if (!w->failed && w->syncer && nx_syncer_failed(w->syncer)) {
        nx_store_logf(w->opt.log, w->opt.log_arg, 2,
                      "wal fdatasync (behind) failed: the log is unusable until restart");
        w->failed = NX_EIO;
    }
    return w->failed;
}

/* ---- small encoders ---------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* The record checksum of segment format `version` (see the top). */
static uint32_t rec_sum(uint8_t version, const uint8_t *rec, uint32_t len)
{
    if (version >= 2)
        return (uint32_t)XXH3_64bits_withSeed(rec + REC_HDR, len, len);
    return nx_crc32_more(nx_crc32(rec, 4), rec + REC_HDR, len);
}

static void seg_header(uint8_t *h, uint64_t first_lsn, uint32_t shard)
{
    memset(h, 0, SEG_HDR);
    put32(h, WAL_MAGIC);
    h[4] = WAL_VERSION;
    put64(h + 8, first_lsn);
    put32(h + 16, shard);
    put32(h + 20, nx_crc32(h, 20));
}

static void seg_path(char *out, size_t n, const char *dir, uint64_t first)
{
    snprintf(out, n, "%s/wal-%020" PRIu64 ".log", dir, first);
}

/* ---- segment parsing (shared by recovery and verify) ------------------- */

typedef struct seg_scan {
    bool hdr_ok;
    uint64_t valid_end;      /* offset after the last valid record */
    uint64_t records;
    uint64_t last_lsn;       /* 0 if no record */
    uint8_t version;         /* the segment's format version (hdr_ok) */
    char why[128];           /* why the scan stopped early, "" if clean */
} seg_scan;

/* Decodes the record at p (n bytes available) expecting `lsn`. Returns its
 * total size, or 0 if it is torn / corrupt (why says which). */
static size_t rec_parse(uint8_t version, const uint8_t *p, size_t n, uint64_t lsn,
                        nx_wal_record *r, char *why, size_t whyn)
{
    if (n < REC_HDR) {
        snprintf(why, whyn, "torn record header (%zu bytes)", n);
        return 0;
    }
    uint32_t len = get32(p);
    if (len < REC_FIXED || len > REC_MAX_LEN) {
        snprintf(why, whyn, "bad record length %" PRIu32, len);
        return 0;
    }
    if ((size_t)len > n - REC_HDR) {
        snprintf(why, whyn, "torn record (need %" PRIu32 " bytes, have %zu)", len, n - REC_HDR);
        return 0;
    }
    if (rec_sum(version, p, len) != get32(p + 4)) {
        snprintf(why, whyn, "record checksum mismatch");
        return 0;
    }
    uint64_t got = get64(p + 8);
    if (got != lsn) {
        snprintf(why, whyn, "lsn %" PRIu64 " where %" PRIu64 " was expected", got, lsn);
        return 0;
    }
    uint8_t tl = p[26];
    if ((uint32_t)tl > len - REC_FIXED) {
        snprintf(why, whyn, "tenant length past the record");
        return 0;
    }
    r->lsn = got;
    r->recv_ms = (int64_t)get64(p + 16);
    r->format = p[24];
    r->source = p[25];
    r->tenant_len = tl;
    r->tenant = (const char *)(p + 27);
    r->payload = p + 27 + tl;
    r->payload_len = len - REC_FIXED - tl;
    return REC_HDR + (size_t)len;
}

/* Scans one segment image. Calls fn for records with lsn > after (fn may be
 * NULL); a non-zero fn result stops the scan and is returned. */
static int seg_scan_buf(const uint8_t *p, size_t n, uint64_t name_lsn, uint32_t shard,
                        bool check_shard, uint64_t after, nx_wal_replay_fn fn, void *arg,
                        uint64_t *replayed, seg_scan *s)
{
    memset(s, 0, sizeof *s);
    if (n < SEG_HDR) {
        snprintf(s->why, sizeof s->why, "torn segment header (%zu bytes)", n);
        return 0;
    }
    if (get32(p) != WAL_MAGIC || p[4] < WAL_VERSION_MIN || p[4] > WAL_VERSION ||
        get64(p + 8) != name_lsn ||
        get32(p + 20) != nx_crc32(p, 20)) {
        snprintf(s->why, sizeof s->why, "bad segment header");
        return 0;
    }
    if (check_shard && get32(p + 16) != shard) {
        snprintf(s->why, sizeof s->why, "segment of shard %" PRIu32 ", expected %" PRIu32,
                 get32(p + 16), shard);
        return 0;
    }
    s->hdr_ok = true;
    s->version = p[4];
    size_t off = SEG_HDR;
    uint64_t lsn = name_lsn;
    while (off < n) {
        nx_wal_record r;
        size_t sz = rec_parse(s->version, p + off, n - off, lsn, &r, s->why, sizeof s->why);
        if (sz == 0)
            break;
        if (fn && r.lsn > after) {
            int rc = fn(arg, &r);
            if (rc)
                return rc;
            (*replayed)++;
        }
        s->records++;
        s->last_lsn = lsn;
        lsn++;
        off += sz;
    }
    s->valid_end = off;
    return 0;
}

/* The whole segment file; NX_* from errno. */
static int read_file(const char *path, uint8_t **out, size_t *n)
{
    char *b;
    if (nx_read_file(path, SIZE_MAX, &b, n) != 0)
        return nx_store_errno(errno);
    *out = (uint8_t *)b;
    return NX_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the wal-<lsn>.log files of dir, ascending. */
static int list_segments(const char *dir, uint64_t **out, size_t *n, size_t *cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return nx_store_errno(errno);
    struct dirent *de;
    int rc = NX_OK;
    while ((de = readdir(d)) != NULL) {
        uint64_t lsn;
        char tail[8];
        if (strlen(de->d_name) != 28 || sscanf(de->d_name, "wal-%20" SCNu64 ".%3s", &lsn, tail) != 2 ||
            strcmp(tail, "log") != 0 || strcmp(de->d_name + 24, ".log") != 0)
            continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            uint64_t *p = realloc(*out, nc * sizeof *p);
            if (!p) {
                rc = NX_ENOMEM;
                break;
            }
            *out = p;
            *cap = nc;
        }
        (*out)[(*n)++] = lsn;
    }
    closedir(d);
    if (rc == NX_OK && *n)
        qsort(*out, *n, sizeof **out, cmp_u64);
    return rc;
}

static int segs_push(nx_wal *w, uint64_t first)
{
    if (w->nsegs == w->segs_cap) {
        size_t nc = w->segs_cap ? w->segs_cap * 2 : 16;
        uint64_t *p = realloc(w->segs, nc * sizeof *p);
        if (!p)
            return NX_ENOMEM;
        w->segs = p;
        w->segs_cap = nc;
    }
    w->segs[w->nsegs++] = first;
    return NX_OK;
}

/* ---- writer ------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return nx_store_errno(errno);
        if (k == 0)
            return NX_EIO;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return NX_OK;
}

/* fsync of the WAL directory (a segment created or unlinked): behind when
 * the WAL syncs behind, queued after what came before it (a new segment's
 * entry is then on stable storage before any of its records counts as
 * durable: its own syncs are queued later), else inline. file_id names the
 * request for coalescing; lsn is what it makes durable (0: nothing new). */
static int sync_dir(nx_wal *w, uint64_t file_id, uint64_t lsn)
{
    if (w->syncer) {
        int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            int rc = nx_syncer_push_fsync(w->syncer, dfd, file_id, lsn);
            close(dfd);
            if (rc == 0)
                return NX_OK;
        }
        nx_syncer_wait_idle(w->syncer); /* inline, still in order */
    }
    return nx_store_fsync_dir(w->dir);
}

/* Allocates the segment's blocks up to segment_bytes ahead of the writes
 * (as unwritten extents, the file size unchanged). Without it every pwrite
 * into a new block reserved it under the inode's i_data_sem (ext4 delayed
 * allocation), which the helper's fdatasync holds for writing while it
 * allocates a second's worth of WAL: the shard blocked in pwrite for 14-25 ms
 * about once a second at 1M lines/s (sched_switch stacks:
 * ext4_da_get_block_prep -> down_write). Best effort: a file system without
 * fallocate (tmpfs before 2.6.38, some network ones) just writes as before. */
static void seg_preallocate(nx_wal *w, int fd, uint64_t from)
{
    uint64_t to = w->opt.segment_bytes;
    if (to > from)
        (void)fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from));
}

/* Creates the segment whose first record is written_lsn + 1. */
static int seg_create(nx_wal *w)
{
    assert(w->fd < 0);
    char path[4200];
    uint64_t first = w->written_lsn + 1;
    seg_path(path, sizeof path, w->dir, first);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return nx_store_errno(errno);
    uint8_t h[SEG_HDR];
    seg_header(h, first, w->opt.shard);
    int rc = write_all(fd, h, SEG_HDR, 0);
    if (rc == NX_OK)
        rc = sync_dir(w, UINT64_MAX - first, w->written_lsn);
    if (rc) {
        close(fd);
        unlink(path);
        return rc;
    }
    if ((rc = segs_push(w, first)) != NX_OK) {
        close(fd);
        unlink(path);
        return rc;
    }
    seg_preallocate(w, fd, SEG_HDR);
    w->fd = fd;
    w->seg_version = WAL_VERSION;
    w->seg_first = first;
    w->seg_size = SEG_HDR;
    w->wb_off = 0;
    w->bytes_written += SEG_HDR;
    return NX_OK;
}

/* Drops the buffered records after a failed write: their LSNs are reused. */
static void drop_buffer(nx_wal *w)
{
    w->buf_len = 0;
    w->next_lsn = w->written_lsn + 1;
}

/* Writes the group buffer to the current segment (creating it if needed). */
static int flush(nx_wal *w)
{
    if (w->buf_len == 0)
        return NX_OK;
    int rc = NX_OK;
    if (w->fd < 0 && (rc = seg_create(w)) != NX_OK) {
        drop_buffer(w);
        return rc;
    }
    rc = write_all(w->fd, w->buf, w->buf_len, w->seg_size);
    if (rc) {
        /* Undo a partial write so the segment ends on a record boundary. */
        if (ftruncate(w->fd, (off_t)w->seg_size) < 0)
            w->failed = NX_EIO;
        nx_store_logf(w->opt.log, w->opt.log_arg, 2,
                      "wal write failed (%s): %" PRIu64 " record(s) from lsn %" PRIu64 " not logged",
                      nx_strerror(rc), w->next_lsn - w->written_lsn - 1, w->written_lsn + 1);
        drop_buffer(w);
        return w->failed ? w->failed : rc;
    }
    w->seg_size += w->buf_len;
    w->bytes_written += w->buf_len;
    w->written_lsn = w->next_lsn - 1;
    w->buf_len = 0;
    /* Once syncs run behind, the helper's fdatasync does this writing: here,
     * on the owner's thread, sync_file_range blocked 130-240 ms at a time
     * behind the helper's fdatasync under 2.7M lines/s (perf trace), while
     * the shard's UDP queue overflowed. */
    if (!w->syncer && w->seg_size - w->wb_off >= NX_WAL_WRITEBACK) {
        /* best effort: fdatasync reports any I/O error */
        (void)sync_file_range(w->fd, (off_t)w->wb_off, (off_t)(w->seg_size - w->wb_off),
                              SYNC_FILE_RANGE_WRITE);
        w->wb_off = w->seg_size;
    }
    return NX_OK;
}

static int sync_current(nx_wal *w)
{
    if (w->syncer) {
        nx_syncer_wait_idle(w->syncer); /* earlier segments first */
        if (check_syncer(w))
            return w->failed;
    }
    if (durable_now(w) >= w->written_lsn)
        return NX_OK;
    assert(w->fd >= 0);
    if (fdatasync(w->fd) < 0) {
        nx_store_logf(w->opt.log, w->opt.log_arg, 2,
                      "wal fdatasync failed (%s): the log is unusable until restart", strerror(errno));
        w->failed = NX_EIO;
        return NX_EIO;
    }
    w->durable_lsn = w->written_lsn;
    return NX_OK;
}

/* Finishes the current segment: flush, fdatasync, close. */
static int rotate(nx_wal *w)
{
    int rc = flush(w);
    if (rc)
        return rc;
    if (w->fd >= 0) {
        bool behind = w->syncer && durable_now(w) < w->written_lsn &&
                      nx_syncer_push(w->syncer, w->fd, w->seg_first, w->written_lsn,
                                     w->seg_size) == 0;
        if (!behind && (rc = sync_current(w)) != NX_OK)
            return rc;
        close(w->fd);
        w->fd = -1;
    }
    return NX_OK;
}

int nx_wal_append(nx_wal *w, const nx_wal_record *r, uint64_t *lsn)
{
    if (w->failed)
        return w->failed;
    if (r->payload_len > NX_WAL_MAX_PAYLOAD)
        return NX_ETOOBIG;
    if (r->tenant_len && !r->tenant)
        return NX_EINVAL;
    size_t rs = REC_MIN + (size_t)r->tenant_len + r->payload_len;
    uint64_t seg = (w->fd >= 0 ? w->seg_size : SEG_HDR) + w->buf_len;
    bool has_records = seg > SEG_HDR;
    int rc;
    if (has_records && seg + rs > w->opt.segment_bytes && (rc = rotate(w)) != NX_OK)
        return rc;
    if (w->buf_len + rs > w->buf_cap) {
        if ((rc = flush(w)) != NX_OK)
            return rc;
        if (rs > w->buf_cap) {
            uint8_t *nb = realloc(w->buf, rs);
            if (!nb)
                return NX_ENOMEM;
            w->buf = nb;
            w->buf_cap = rs;
        }
    }
    uint8_t *p = w->buf + w->buf_len;
    uint32_t len = (uint32_t)(rs - REC_HDR);
    put32(p, len);
    put64(p + 8, w->next_lsn);
    put64(p + 16, (uint64_t)r->recv_ms);
    p[24] = r->format;
    p[25] = r->source;
    p[26] = r->tenant_len;
    if (r->tenant_len)
        memcpy(p + 27, r->tenant, r->tenant_len);
    if (r->payload_len)
        memcpy(p + 27 + r->tenant_len, r->payload, r->payload_len);
    /* buffered records go to the open segment, or to a new one (current
     * version) created at the next flush */
    put32(p + 4, rec_sum(w->fd >= 0 ? w->seg_version : WAL_VERSION, p, len));
    w->buf_len += rs;
    if (lsn)
        *lsn = w->next_lsn;
    w->next_lsn++;
    return NX_OK;
}

int nx_wal_commit(nx_wal *w, bool sync, uint64_t *durable)
{
    int rc = check_syncer(w);
    if (rc == NX_OK)
        rc = flush(w);
    if (rc == NX_OK && sync && w->fd >= 0)
        rc = sync_current(w);
    if (durable)
        *durable = durable_now(w);
    return rc;
}

int nx_wal_sync_behind(nx_wal *w)
{
    int rc = check_syncer(w);
    if (rc == NX_OK)
        rc = flush(w);
    if (rc != NX_OK || w->fd < 0 || durable_now(w) >= w->written_lsn)
        return rc;
    if (!w->syncer)
        (void)nx_syncer_create(&w->syncer); /* no thread: sync inline, as before */
    /* written pages are never rewritten: once synced, the helper drops
     * them from the page cache (nx_syncer.h says why) */
    if (w->syncer &&
        nx_syncer_push(w->syncer, w->fd, w->seg_first, w->written_lsn, w->seg_size) == 0)
        return NX_OK;
    return sync_current(w);
}

uint64_t nx_wal_next_lsn(const nx_wal *w) { return w->next_lsn; }
uint64_t nx_wal_last_lsn(const nx_wal *w) { return w->next_lsn - 1; }
uint64_t nx_wal_written_lsn(const nx_wal *w) { return w->written_lsn; }
uint64_t nx_wal_durable_lsn(const nx_wal *w) { return durable_now(w); }
uint64_t nx_wal_bytes_written(const nx_wal *w) { return w->bytes_written; }
size_t nx_wal_segment_count(const nx_wal *w) { return w->nsegs; }

int nx_wal_remove_covered(nx_wal *w, uint64_t covered_lsn, size_t *removed)
{
    size_t k = 0;
    /* Segment i holds [segs[i], segs[i+1]-1]; the last one is being written. */
    while (k + 1 < w->nsegs && w->segs[k + 1] - 1 <= covered_lsn)
        k++;
    size_t done = 0;
    int rc = NX_OK;
    bool behind = false; /* some unlinks went to the syncer */
    for (; done < k; done++) {
        char path[4200];
        seg_path(path, sizeof path, w->dir, w->segs[done]);
        if (w->syncer && nx_syncer_push_unlink(w->syncer, path) == 0) {
            behind = true;
            continue;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            rc = nx_store_errno(errno);
            break;
        }
    }
    if (done) {
        memmove(w->segs, w->segs + done, (w->nsegs - done) * sizeof *w->segs);
        w->nsegs -= done;
        /* behind the unlinks when they went behind */
        int r2 = behind ? sync_dir(w, UINT64_MAX, 0) : nx_store_fsync_dir(w->dir);
        if (rc == NX_OK)
            rc = r2;
    }
    if (removed)
        *removed = done;
    return rc;
}

void nx_wal_close(nx_wal *w)
{
    if (!w)
        return;
    if (!w->failed)
        (void)nx_wal_commit(w, true, NULL);
    nx_syncer_destroy(w->syncer); /* after its queue ran: the commit waited */
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w->segs);
    free(w->dir);
    free(w);
}

/* ---- open = recovery ---------------------------------------------------- */

static void orphan(nx_wal *w, uint64_t first)
{
    char a[4200], b[4210];
    seg_path(a, sizeof a, w->dir, first);
    snprintf(b, sizeof b, "%s.orphan", a);
    if (rename(a, b) < 0)
        nx_store_logf(w->opt.log, w->opt.log_arg, 2, "cannot rename %s: %s", a, strerror(errno));
}

int nx_wal_open(const char *dir, const nx_wal_options *opt, uint64_t after_lsn,
                nx_wal_replay_fn fn, void *arg, nx_wal_recovery *rec, nx_wal **out)
{
    double t0 = nx_store_now_ms();
    nx_wal_recovery st;
    memset(&st, 0, sizeof st);
    int rc = nx_store_mkdirs(dir);
    if (rc)
        return rc;
    nx_wal *w = calloc(1, sizeof *w);
    if (!w)
        return NX_ENOMEM;
    w->fd = -1;
    if (opt)
        w->opt = *opt;
    if (w->opt.segment_bytes == 0)
        w->opt.segment_bytes = NX_WAL_SEGMENT_DEFAULT;
    if (w->opt.buffer_bytes == 0)
        w->opt.buffer_bytes = NX_WAL_BUFFER_DEFAULT;
    w->dir = strdup(dir);
    w->buf_cap = w->opt.buffer_bytes;
    w->buf = malloc(w->buf_cap);
    if (!w->dir || !w->buf) {
        nx_wal_close(w);
        return NX_ENOMEM;
    }

    uint64_t *segs = NULL;
    size_t nsegs = 0, cap = 0;
    if ((rc = list_segments(dir, &segs, &nsegs, &cap)) != NX_OK) {
        free(segs);
        nx_wal_close(w);
        return rc;
    }
    st.segments = nsegs;
    uint64_t expect = 0;     /* next LSN a segment must start with (0: any) */
    uint64_t last_valid = 0; /* highest valid LSN */
    uint64_t tail_end = 0;   /* valid end of the last kept segment */
    uint8_t tail_version = WAL_VERSION;
    bool stop = false;
    size_t kept = 0;
    for (size_t i = 0; i < nsegs && !stop; i++) {
        char path[4200];
        seg_path(path, sizeof path, dir, segs[i]);
        bool last = i + 1 == nsegs;
        if (expect && segs[i] != expect) {
            if (segs[i] < expect || segs[i] > after_lsn + 1) {
                nx_store_logf(w->opt.log, w->opt.log_arg, 2,
                              "wal %s: starts at lsn %" PRIu64 " but %" PRIu64
                              " was expected; it and later segments are not replayed",
                              path, segs[i], expect);
                if (segs[i] > expect)
                    st.gap = true;
                for (size_t j = i; j < nsegs; j++, st.orphaned_segments++)
                    orphan(w, segs[j]);
                break;
            }
        } else if (!expect && segs[i] > after_lsn + 1) {
            st.gap = true;
            nx_store_logf(w->opt.log, w->opt.log_arg, 2,
                          "wal starts at lsn %" PRIu64 " but the snapshot covers only up to %" PRIu64
                          ": lsns in between are missing",
                          segs[i], after_lsn);
        }
        uint8_t *img = NULL;
        size_t n = 0;
        if ((rc = read_file(path, &img, &n)) != NX_OK) {
            nx_store_logf(w->opt.log, w->opt.log_arg, 2, "wal %s: read failed: %s", path, nx_strerror(rc));
            goto fail;
        }
        seg_scan s;
        rc = seg_scan_buf(img, n, segs[i], w->opt.shard, true, after_lsn, fn, arg, &st.replayed, &s);
        free(img);
        if (rc)
            goto fail;
        st.records += s.records;
        if (s.records && !st.first_lsn)
            st.first_lsn = segs[i];
        if (s.records)
            last_valid = s.last_lsn;
        if (!s.hdr_ok) {
            /* Last segment: a header torn by a crash right after create,
             * drop the file. Elsewhere: corruption, keep it and the later
             * segments aside, never replay past it. */
            nx_store_logf(w->opt.log, w->opt.log_arg, last ? 1 : 2, "wal %s: %s, %s", path, s.why,
                          last ? "removed" : "it and later segments renamed *.orphan");
            st.truncated_bytes += n;
            if (last) {
                unlink(path);
            } else {
                for (size_t j = i; j < nsegs; j++, st.orphaned_segments++)
                    orphan(w, segs[j]);
            }
            stop = true;
            break;
        }
        segs[kept++] = segs[i];
        tail_end = s.valid_end;
        tail_version = s.version;
        expect = segs[i] + s.records;
        if (s.valid_end < n) {
            nx_store_logf(w->opt.log, w->opt.log_arg, last ? 1 : 2,
                          "wal %s: %s at offset %" PRIu64 "; truncating %zu byte(s)%s", path, s.why,
                          s.valid_end, n - (size_t)s.valid_end,
                          last ? " (torn tail)" : "; later segments are orphaned");
            if (truncate(path, (off_t)s.valid_end) < 0) {
                rc = nx_store_errno(errno);
                goto fail;
            }
            st.truncated_bytes += n - s.valid_end;
            if (!last) {
                for (size_t j = i + 1; j < nsegs; j++, st.orphaned_segments++)
                    orphan(w, segs[j]);
            }
            stop = true;
        }
    }
    if (st.truncated_bytes || st.orphaned_segments)
        (void)nx_store_fsync_dir(dir);

    /* Keep the list of segments that remain, and write after the last one. */
    for (size_t i = 0; i < kept; i++)
        if ((rc = segs_push(w, segs[i])) != NX_OK)
            goto fail;
    free(segs);
    segs = NULL;
    st.last_lsn = last_valid;
    uint64_t base = last_valid > after_lsn ? last_valid : after_lsn;
    w->next_lsn = base + 1;
    w->written_lsn = w->durable_lsn = base;
    if (kept && expect == base + 1) {
        char path[4200];
        seg_path(path, sizeof path, dir, w->segs[w->nsegs - 1]);
        w->fd = open(path, O_WRONLY | O_CLOEXEC);
        if (w->fd < 0) {
            rc = nx_store_errno(errno);
            goto fail;
        }
        w->seg_first = w->segs[w->nsegs - 1];
        w->seg_version = tail_version; /* a version-1 segment is continued as such */
        w->seg_size = tail_end;
        w->wb_off = tail_end;
        seg_preallocate(w, w->fd, tail_end);
        /* What we just read may be only in the page cache: make it durable
         * before anything is acknowledged on top of it. */
        if (fdatasync(w->fd) < 0) {
            rc = NX_EIO;
            goto fail;
        }
    }
    st.ms = nx_store_now_ms() - t0;
    nx_store_logf(w->opt.log, w->opt.log_arg, 0,
                  "wal %s: %" PRIu64 " segment(s), %" PRIu64 " record(s) [%" PRIu64 "..%" PRIu64
                  "], replayed %" PRIu64 " after lsn %" PRIu64 ", truncated %" PRIu64 " byte(s) in %.1f ms",
                  dir, st.segments, st.records, st.first_lsn, st.last_lsn, st.replayed, after_lsn,
                  st.truncated_bytes, st.ms);
    if (rec)
        *rec = st;
    *out = w;
    return NX_OK;
fail:
    free(segs);
    w->failed = rc ? rc : NX_EIO;
    nx_wal_close(w);
    return rc ? rc : NX_EIO;
}

/* ---- verify ------------------------------------------------------------- */

int nx_wal_verify_dir(const char *dir, nx_wal_verify *v)
{
    memset(v, 0, sizeof *v);
    struct stat sb;
    if (stat(dir, &sb) < 0)
        return nx_store_errno(errno);
    uint64_t *segs = NULL;
    size_t n = 0, cap = 0;
    int rc = list_segments(dir, &segs, &n, &cap);
    if (rc) {
        free(segs);
        return rc;
    }
    v->segments = n;
    uint64_t expect = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        seg_path(path, sizeof path, dir, segs[i]);
        uint8_t *img = NULL;
        size_t len = 0;
        if ((rc = read_file(path, &img, &len)) != NX_OK) {
            snprintf(v->problem, sizeof v->problem, "%.120s: read failed", path);
            free(segs);
            return rc;
        }
        seg_scan s;
        uint64_t dummy = 0;
        (void)seg_scan_buf(img, len, segs[i], 0, false, 0, NULL, NULL, &dummy, &s);
        free(img);
        v->bytes += len;
        v->records += s.records;
        if (expect && segs[i] != expect && !v->gap) {
            v->gap = true;
            if (!v->problem[0])
                snprintf(v->problem, sizeof v->problem, "%.120s: starts at lsn %" PRIu64 ", expected %" PRIu64,
                         path, segs[i], expect);
        }
        if (s.records && !v->first_lsn)
            v->first_lsn = segs[i];
        if (s.records)
            v->last_lsn = s.last_lsn;
        expect = segs[i] + s.records;
        if (!s.hdr_ok || s.valid_end < len) {
            if (i + 1 == n && s.hdr_ok) {
                v->torn_bytes = len - s.valid_end;
            } else {
                v->bad_segments++;
            }
            if (!v->problem[0])
                snprintf(v->problem, sizeof v->problem, "%.120s: %.90s at offset %" PRIu64, path, s.why,
                         s.valid_end);
        }
    }
    free(segs);
    return v->problem[0] ? NX_ECORRUPT : NX_OK;
}
