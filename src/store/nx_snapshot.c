/*
 * nx_snapshot.c — snapshot files and the background snapshot writer.
 *
 * File layout (little-endian), dir/snap-<lsn, 20 digits>.nxs:
 *   off  0  u32 magic 0x4E53584E ("NXSN")
 *   off  4  u8  version (1)
 *   off  5  u8  codec (1 = zstd)
 *   off  6  u16 zero
 *   off  8  u32 shard
 *   off 12  u32 comp_crc   crc32 (zlib) of the compressed bytes (so that even
 *                          a flip in a bit zstd ignores is caught)
 *   off 16  u64 lsn        WAL records with lsn <= this are in the snapshot
 *   off 24  u64 raw_len    length of the engine encoding
 *   off 32  u64 comp_len   length of the zstd frame that follows
 *   off 40  u32 raw_crc    crc32 (zlib) of the engine encoding
 *   off 44  u32 hdr_crc    crc32 (zlib) of bytes [0, 44)
 *   off 48  comp_len bytes: one zstd frame (content size and the zstd
 *           content checksum enabled)
 * The file size must be exactly 48 + comp_len: a short file (torn write
 * that somehow got renamed) or trailing garbage is rejected.
 *
 * Trade-offs: zstd level 3 by default (fast, ~3-6x on sketches); the whole
 * encoding is compressed in one call, so the writer thread needs raw + bound
 * bytes of memory at once. The shard thread is stalled only by
 * nx_engine_encode(); the writer thread owns the buffer after submit.
 * Submit/poll synchronize through one mutex (taken once per snapshot, never
 * per event) and an atomic "done" flag that poll reads without the lock.
 */
#include <sys/resource.h>
#include "store/nx_snapshot.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/nx_codec.h"

#define SNAP_MAGIC 0x4E53584Eu
#define SNAP_VERSION 1
#define SNAP_CODEC_ZSTD 1
#define SNAP_HDR 48

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

void nx_snapshot_path(char *out, size_t n, const char *dir, uint64_t lsn)
{
    snprintf(out, n, "%s/snap-%020" PRIu64 ".nxs", dir, lsn);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return nx_store_errno(errno);
        if (k == 0)
            return NX_EIO;
        p += k;
        n -= (size_t)k;
    }
    return NX_OK;
}

/* Compresses with cctx (reused by the background writer; NULL: one-off). */
static int snap_write(ZSTD_CCtx *cctx, const char *dir, uint32_t shard, uint64_t lsn,
                      const uint8_t *raw, size_t n, int level, nx_snapshot_meta *meta,
                      double *compress_ms)
{
    double t0 = nx_store_now_ms();
    size_t bound = ZSTD_compressBound(n);
    uint8_t *out = malloc(SNAP_HDR + bound);
    if (!out)
        return NX_ENOMEM;
    ZSTD_CCtx *own = NULL;
    if (!cctx && !(cctx = own = ZSTD_createCCtx())) {
        free(out);
        return NX_ENOMEM;
    }
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    size_t clen = ZSTD_compress2(cctx, out + SNAP_HDR, bound, raw, n);
    ZSTD_freeCCtx(own);
    if (ZSTD_isError(clen)) {
        free(out);
        return NX_EIO;
    }
    if (compress_ms)
        *compress_ms = nx_store_now_ms() - t0;
    uint8_t *h = out;
    memset(h, 0, SNAP_HDR);
    put32(h, SNAP_MAGIC);
    h[4] = SNAP_VERSION;
    h[5] = SNAP_CODEC_ZSTD;
    put32(h + 8, shard);
    put32(h + 12, nx_crc32(out + SNAP_HDR, clen));
    put64(h + 16, lsn);
    put64(h + 24, n);
    put64(h + 32, clen);
    put32(h + 40, nx_crc32(raw, n));
    put32(h + 44, nx_crc32(h, 44));

    char tmp[4200], final[4200];
    snprintf(tmp, sizeof tmp, "%s/.snap-%020" PRIu64 ".tmp", dir, lsn);
    nx_snapshot_path(final, sizeof final, dir, lsn);
    int rc = NX_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = nx_store_errno(errno);
    } else {
        rc = write_all(fd, out, SNAP_HDR + clen);
        if (rc == NX_OK && fsync(fd) < 0)
            rc = nx_store_errno(errno);
        if (close(fd) < 0 && rc == NX_OK)
            rc = nx_store_errno(errno);
        if (rc == NX_OK && rename(tmp, final) < 0)
            rc = nx_store_errno(errno);
        if (rc)
            unlink(tmp);
        else
            rc = nx_store_fsync_dir(dir);
    }
    free(out);
    if (rc == NX_OK && meta) {
        meta->shard = shard;
        meta->lsn = lsn;
        meta->raw_len = n;
        meta->comp_len = clen;
    }
    return rc;
}

int nx_snapshot_write(const char *dir, uint32_t shard, uint64_t lsn, const uint8_t *raw,
                      size_t n, int zstd_level, nx_snapshot_meta *meta)
{
    return snap_write(NULL, dir, shard, lsn, raw, n, zstd_level, meta, NULL);
}

int nx_snapshot_read(const char *path, nx_buf *raw, nx_snapshot_meta *meta)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nx_store_errno(errno);
    int rc = NX_OK;
    uint8_t *file = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = nx_store_errno(errno);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    if (size < SNAP_HDR) {
        rc = NX_ECORRUPT;
        goto out;
    }
    if (!(file = malloc(size))) {
        rc = NX_ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t k = read(fd, file + got, size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? nx_store_errno(errno) : NX_ECORRUPT;
            goto out;
        }
        got += (size_t)k;
    }
    const uint8_t *h = file;
    if (get32(h) != SNAP_MAGIC || get32(h + 44) != nx_crc32(h, 44)) {
        rc = NX_ECORRUPT;
        goto out;
    }
    if (h[4] != SNAP_VERSION || h[5] != SNAP_CODEC_ZSTD) {
        rc = NX_EVERSION;
        goto out;
    }
    uint64_t raw_len = get64(h + 24), comp_len = get64(h + 32);
    if (comp_len != size - SNAP_HDR || get32(h + 12) != nx_crc32(file + SNAP_HDR, comp_len) ||
        ZSTD_getFrameContentSize(file + SNAP_HDR, comp_len) != raw_len || raw_len > SIZE_MAX / 2) {
        rc = NX_ECORRUPT;
        goto out;
    }
    raw->len = 0;
    if ((rc = nx_buf_reserve(raw, raw_len ? raw_len : 1)) != NX_OK)
        goto out;
    size_t dlen = ZSTD_decompress(raw->data, raw_len, file + SNAP_HDR, comp_len);
    if (ZSTD_isError(dlen) || dlen != raw_len || nx_crc32(raw->data, dlen) != get32(h + 40)) {
        rc = NX_ECORRUPT;
        goto out;
    }
    raw->len = dlen;
    if (meta) {
        meta->shard = get32(h + 8);
        meta->lsn = get64(h + 16);
        meta->raw_len = raw_len;
        meta->comp_len = comp_len;
    }
out:
    free(file);
    close(fd);
    return rc;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

int nx_snapshot_list(const char *dir, uint64_t **lsns, size_t *n)
{
    *lsns = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return nx_store_errno(errno);
    size_t cap = 0;
    int rc = NX_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t lsn;
        if (strlen(de->d_name) != 29 || strncmp(de->d_name, "snap-", 5) != 0 ||
            strcmp(de->d_name + 25, ".nxs") != 0 || sscanf(de->d_name + 5, "%20" SCNu64, &lsn) != 1)
            continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            uint64_t *p = realloc(*lsns, nc * sizeof *p);
            if (!p) {
                rc = NX_ENOMEM;
                break;
            }
            *lsns = p;
            cap = nc;
        }
        (*lsns)[(*n)++] = lsn;
    }
    closedir(d);
    if (rc) {
        free(*lsns);
        *lsns = NULL;
        *n = 0;
        return rc;
    }
    if (*n)
        qsort(*lsns, *n, sizeof **lsns, cmp_desc);
    return NX_OK;
}

int nx_snapshot_prune(const char *dir, size_t keep, uint64_t *oldest_kept)
{
    if (keep == 0)
        keep = 1;
    uint64_t *l;
    size_t n;
    int rc = nx_snapshot_list(dir, &l, &n);
    if (rc)
        return rc;
    bool changed = false;
    for (size_t i = keep; i < n; i++) {
        char p[4200];
        nx_snapshot_path(p, sizeof p, dir, l[i]);
        if (unlink(p) < 0 && errno != ENOENT && rc == NX_OK)
            rc = nx_store_errno(errno);
        changed = true;
    }
    if (oldest_kept)
        *oldest_kept = n ? l[(n < keep ? n : keep) - 1] : 0;
    free(l);
    /* Stray temporary files from a crash mid-write. */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            if (strncmp(de->d_name, ".snap-", 6) == 0 && len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
                char p[4200];
                snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                unlink(p);
                changed = true;
            }
        }
        closedir(d);
    }
    if (changed) {
        int r2 = nx_store_fsync_dir(dir);
        if (rc == NX_OK)
            rc = r2;
    }
    return rc;
}

/* ---- background writer -------------------------------------------------- */

struct nx_snapshotter {
    char *dir;
    uint32_t shard;
    int level;
    size_t keep;
    nx_store_log_fn log;
    void *log_arg;
    ZSTD_CCtx *cctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Guarded by mu. */
    bool quit;
    bool pending;           /* a job is queued or running */
    nx_buf job;
    uint64_t job_lsn;
    nx_snapshot_result result;
    atomic_bool done;       /* result holds an unpolled outcome */
};

/* nice value of the snapshot thread (shards run at 0). */
#define NX_SNAPSHOT_NICE 10

static void *snapshotter_main(void *arg)
{
    nx_snapshotter *s = arg;
    /* background work (compress + write + fsync): named for top/perf, and
     * below the shard threads so that it never delays a datagram or a query
     * on a machine with more busy threads than cores (Linux: per-thread nice) */
    pthread_setname_np(pthread_self(), "nx-snapshot");
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), NX_SNAPSHOT_NICE);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->quit && !(s->pending && s->job.data))
            pthread_cond_wait(&s->cv, &s->mu);
        if (!(s->pending && s->job.data))
            break; /* quit with nothing to do */
        nx_buf job = s->job;
        uint64_t lsn = s->job_lsn;
        pthread_mutex_unlock(&s->mu);

        nx_snapshot_result r;
        memset(&r, 0, sizeof r);
        double t0 = nx_store_now_ms();
        r.rc = snap_write(s->cctx, s->dir, s->shard, lsn, job.data, job.len, s->level, &r.meta,
                          &r.compress_ms);
        if (r.rc == NX_OK)
            r.rc = nx_snapshot_prune(s->dir, s->keep, &r.oldest_kept);
        r.write_ms = nx_store_now_ms() - t0;
        if (r.rc)
            nx_store_logf(s->log, s->log_arg, 2, "snapshot at lsn %" PRIu64 " in %s failed: %s", lsn,
                          s->dir, nx_strerror(r.rc));
        nx_buf_free(&job);

        pthread_mutex_lock(&s->mu);
        s->job.data = NULL;
        s->job.len = s->job.cap = 0;
        s->result = r;
        s->pending = false;
        atomic_store_explicit(&s->done, true, memory_order_release);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int nx_snapshotter_start(const char *dir, uint32_t shard, int zstd_level, size_t keep,
                         nx_store_log_fn log, void *log_arg, nx_snapshotter **out)
{
    int rc = nx_store_mkdirs(dir);
    if (rc)
        return rc;
    nx_snapshotter *s = calloc(1, sizeof *s);
    if (!s)
        return NX_ENOMEM;
    s->dir = strdup(dir);
    s->cctx = ZSTD_createCCtx();
    s->shard = shard;
    s->level = zstd_level ? zstd_level : NX_SNAP_ZSTD_LEVEL_DEFAULT;
    s->keep = keep ? keep : NX_SNAP_KEEP_DEFAULT;
    s->log = log;
    s->log_arg = log_arg;
    atomic_init(&s->done, false);
    if (!s->dir || !s->cctx) {
        ZSTD_freeCCtx(s->cctx);
        free(s->dir);
        free(s);
        return NX_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, snapshotter_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        ZSTD_freeCCtx(s->cctx);
        free(s->dir);
        free(s);
        return NX_ENOMEM;
    }
    *out = s;
    return NX_OK;
}

int nx_snapshotter_submit(nx_snapshotter *s, nx_buf *raw, uint64_t lsn)
{
    if (!raw->data)
        return NX_EINVAL;
    pthread_mutex_lock(&s->mu);
    if (s->pending) {
        pthread_mutex_unlock(&s->mu);
        return NX_EEXIST;
    }
    s->job = *raw;
    s->job_lsn = lsn;
    s->pending = true;
    raw->data = NULL;
    raw->len = raw->cap = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NX_OK;
}

bool nx_snapshotter_busy(nx_snapshotter *s)
{
    pthread_mutex_lock(&s->mu);
    bool b = s->pending;
    pthread_mutex_unlock(&s->mu);
    return b;
}

bool nx_snapshotter_poll(nx_snapshotter *s, nx_snapshot_result *res)
{
    if (!atomic_load_explicit(&s->done, memory_order_acquire))
        return false;
    pthread_mutex_lock(&s->mu);
    *res = s->result;
    atomic_store_explicit(&s->done, false, memory_order_relaxed);
    pthread_mutex_unlock(&s->mu);
    return true;
}

void nx_snapshotter_wait(nx_snapshotter *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->pending)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void nx_snapshotter_stop(nx_snapshotter *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    nx_buf_free(&s->job);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    ZSTD_freeCCtx(s->cctx);
    free(s->dir);
    free(s);
}
