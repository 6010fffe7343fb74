/*
 * nx_snapshot.c — snapshot files and the background snapshot writer.
 *
 * File layout (little-endian), dir/snap-<lsn, 20 digits>.nxs:
 *   off  0  u32 magic 0x4E53584E ("NXSN")
 *   off  4  u8  version (2; 1 is still read)
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
 *   off 48  comp_len bytes: one zstd frame with the zstd content checksum
 *           (version 1: always with the content size; version 2: with it
 *           only when the writer knew it up front — a streamed snapshot
 *           does not — and then it must equal raw_len)
 * The file size must be exactly 48 + comp_len: a short file (torn write
 * that somehow got renamed) or trailing garbage is rejected.
 *
 * Writing is streamed (version 2): the header is written last, over a
 * zeroed placeholder, once the lengths and CRCs are known; the engine's
 * bytes arrive in pieces (nx_snapshotter_append) and go through one zstd
 * stream into a fixed output buffer and the file. No buffer of the whole
 * encoding or of the whole compressed file is needed: with one-shot writes
 * the shard's encode buffer and the writer's compressBound buffer were
 * ~1.1 GB of RSS at 2.5M lines/s, and their fresh pages a quarter of the
 * CPU of the shard iterations that a snapshot slowed.
 *
 * Trade-offs: zstd level 3 by default (fast, ~3-6x on sketches). Pieces
 * queue while the writer is behind (at worst the whole encoding, as before
 * streaming); pieces it is done with go back to the shard (a few kept,
 * the rest freed) so the encoder writes into warm pages. The queue, begin,
 * end and poll synchronize through one mutex (taken once per piece of
 * about a MiB, never per event) and poll reads an atomic "done" flag
 * without it.
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
#define SNAP_VERSION 2
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

/* One snapshot file being written: a zstd stream into out[], flushed to a
 * temporary file that close() renames into place. */
typedef struct snap_out {
    int fd;
    int rc;             /* first error; later calls do nothing */
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;      /* compressed bytes not yet written */
    size_t zcap, zlen;
    uint32_t raw_crc, comp_crc;
    uint64_t raw_len, comp_len;
    double compress_ms;
    uint32_t shard;
    uint64_t lsn;
    const char *dir;
    char tmp[4200], final[4200];
} snap_out;

#define SNAP_ZBUF (1u << 20)

static int snap_out_open(snap_out *o, ZSTD_CCtx *cctx, uint8_t *zbuf, const char *dir,
                         uint32_t shard, uint64_t lsn, int level)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->cctx = cctx;
    o->zbuf = zbuf;
    o->zcap = SNAP_ZBUF;
    o->shard = shard;
    o->lsn = lsn;
    o->dir = dir;
    o->raw_crc = o->comp_crc = nx_crc32(NULL, 0);
    snprintf(o->tmp, sizeof o->tmp, "%s/.snap-%020" PRIu64 ".tmp", dir, lsn);
    nx_snapshot_path(o->final, sizeof o->final, dir, lsn);
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)))
        return o->rc = NX_EINVAL;
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0)
        return o->rc = nx_store_errno(errno);
    uint8_t zero[SNAP_HDR] = {0}; /* the header's place, written at close */
    return o->rc = write_all(o->fd, zero, SNAP_HDR);
}

/* Writes out what zstd produced so far. */
static int snap_out_flush(snap_out *o)
{
    if (o->rc == NX_OK && o->zlen) {
        o->comp_crc = nx_crc32_more(o->comp_crc, o->zbuf, o->zlen);
        o->comp_len += o->zlen;
        o->rc = write_all(o->fd, o->zbuf, o->zlen);
    }
    o->zlen = 0;
    return o->rc;
}

/* Runs the stream over `n` raw bytes (mode ZSTD_e_continue) or to the end
 * of the frame (ZSTD_e_end, n = 0). */
static int snap_out_compress(snap_out *o, const uint8_t *p, size_t n, ZSTD_EndDirective mode)
{
    if (o->rc)
        return o->rc;
    double t0 = nx_store_now_ms();
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer zo = {o->zbuf, o->zcap, o->zlen};
        size_t left = ZSTD_compressStream2(o->cctx, &zo, &in, mode);
        o->zlen = zo.pos;
        if (ZSTD_isError(left)) {
            o->rc = NX_EIO;
            break;
        }
        if (o->zlen == o->zcap && snap_out_flush(o))
            break;
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
            break;
    }
    o->compress_ms += nx_store_now_ms() - t0;
    return o->rc;
}

static int snap_out_add(snap_out *o, const uint8_t *p, size_t n)
{
    if (o->rc || n == 0)
        return o->rc;
    o->raw_crc = nx_crc32_more(o->raw_crc, p, n);
    o->raw_len += n;
    return snap_out_compress(o, p, n, ZSTD_e_continue);
}

/* Ends the frame, writes the header, syncs and renames: the snapshot
 * exists only if this returns NX_OK. */
static int snap_out_close(snap_out *o, nx_snapshot_meta *meta)
{
    if (snap_out_compress(o, NULL, 0, ZSTD_e_end) == NX_OK)
        snap_out_flush(o);
    if (o->rc == NX_OK) {
        uint8_t h[SNAP_HDR] = {0};
        put32(h, SNAP_MAGIC);
        h[4] = SNAP_VERSION;
        h[5] = SNAP_CODEC_ZSTD;
        put32(h + 8, o->shard);
        put32(h + 12, o->comp_crc);
        put64(h + 16, o->lsn);
        put64(h + 24, o->raw_len);
        put64(h + 32, o->comp_len);
        put32(h + 40, o->raw_crc);
        put32(h + 44, nx_crc32(h, 44));
        ssize_t k = pwrite(o->fd, h, SNAP_HDR, 0);
        if (k != SNAP_HDR)
            o->rc = k < 0 ? nx_store_errno(errno) : NX_EIO;
    }
    if (o->rc == NX_OK && fsync(o->fd) < 0)
        o->rc = nx_store_errno(errno);
    if (o->fd >= 0 && close(o->fd) < 0 && o->rc == NX_OK)
        o->rc = nx_store_errno(errno);
    o->fd = -1;
    if (o->rc == NX_OK && rename(o->tmp, o->final) < 0)
        o->rc = nx_store_errno(errno);
    if (o->rc) {
        unlink(o->tmp);
        return o->rc;
    }
    o->rc = nx_store_fsync_dir(o->dir);
    if (o->rc == NX_OK && meta) {
        meta->shard = o->shard;
        meta->lsn = o->lsn;
        meta->raw_len = o->raw_len;
        meta->comp_len = o->comp_len;
    }
    return o->rc;
}

/* Drops a snapshot being written (its temporary file goes). */
static void snap_out_abort(snap_out *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->tmp[0])
        unlink(o->tmp);
}

int nx_snapshot_write(const char *dir, uint32_t shard, uint64_t lsn, const uint8_t *raw,
                      size_t n, int zstd_level, nx_snapshot_meta *meta)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    uint8_t *zbuf = malloc(SNAP_ZBUF);
    int rc = NX_ENOMEM;
    if (cctx && zbuf) {
        snap_out o;
        if ((rc = snap_out_open(&o, cctx, zbuf, dir, shard, lsn, zstd_level)) == NX_OK &&
            (rc = ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cctx, n)) ? NX_EINVAL : NX_OK) == NX_OK &&
            (rc = snap_out_add(&o, raw, n)) == NX_OK)
            rc = snap_out_close(&o, meta);
        if (rc)
            snap_out_abort(&o);
    }
    free(zbuf);
    ZSTD_freeCCtx(cctx);
    return rc;
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
    if ((h[4] != 1 && h[4] != SNAP_VERSION) || h[5] != SNAP_CODEC_ZSTD) {
        rc = NX_EVERSION;
        goto out;
    }
    uint64_t raw_len = get64(h + 24), comp_len = get64(h + 32);
    /* a streamed (version 2) frame may not carry its content size */
    unsigned long long csize = comp_len == size - SNAP_HDR
                                   ? ZSTD_getFrameContentSize(file + SNAP_HDR, comp_len)
                                   : ZSTD_CONTENTSIZE_ERROR;
    bool size_ok = csize == raw_len || (h[4] >= 2 && csize == ZSTD_CONTENTSIZE_UNKNOWN);
    if (comp_len != size - SNAP_HDR || get32(h + 12) != nx_crc32(file + SNAP_HDR, comp_len) ||
        !size_ok || raw_len > SIZE_MAX / 2) {
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

/* Pieces the writer is done with, kept for the shard to encode into
 * (nx_snapshotter_append hands one back per piece it takes). */
#define NX_SNAP_SPARES 4

struct nx_snapshotter {
    char *dir;
    uint32_t shard;
    int level;
    size_t keep;
    nx_store_log_fn log;
    void *log_arg;
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Guarded by mu. */
    bool quit;
    bool pending;           /* a snapshot was begun and is not finished */
    bool ending;            /* ... and every piece of it was appended */
    bool aborting;          /* ... or it is to be dropped */
    uint64_t job_lsn;
    nx_buf *queue;          /* appended pieces not yet written, FIFO */
    size_t qhead, qlen, qcap;
    nx_buf spare[NX_SNAP_SPARES];
    size_t nspare;
    nx_snapshot_result result;
    atomic_bool done;       /* result holds an unpolled outcome */
    void *(*piece_alloc)(void *arg, size_t bytes); /* NULL: none */
    void *piece_arg;
    size_t piece_bytes;
};

/* nice value of the snapshot thread (shards run at 0). */
#define NX_SNAPSHOT_NICE 10

/* Keeps an empty piece for reuse, or frees it. Called with mu held. */
static void keep_spare(nx_snapshotter *s, nx_buf *b)
{
    if (s->nspare < NX_SNAP_SPARES && b->data) {
        b->len = 0;
        s->spare[s->nspare++] = *b;
    } else {
        nx_buf_free(b);
    }
    memset(b, 0, sizeof *b);
}

/* Writes one snapshot: pieces as they come, then the end (or the abort). */
static void write_one(nx_snapshotter *s)
{
    uint64_t lsn = s->job_lsn;
    pthread_mutex_unlock(&s->mu);
    nx_snapshot_result r;
    memset(&r, 0, sizeof r);
    double busy = 0, t0 = nx_store_now_ms();
    snap_out o;
    snap_out_open(&o, s->cctx, s->zbuf, s->dir, s->shard, lsn, s->level);
    busy += nx_store_now_ms() - t0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->qlen) {
            nx_buf piece = s->queue[s->qhead];
            s->qhead = (s->qhead + 1) % s->qcap;
            s->qlen--;
            pthread_mutex_unlock(&s->mu);
            t0 = nx_store_now_ms();
            snap_out_add(&o, piece.data, piece.len); /* after an error: nothing */
            busy += nx_store_now_ms() - t0;
            pthread_mutex_lock(&s->mu);
            keep_spare(s, &piece);
            continue;
        }
        if (s->aborting || s->ending || s->quit)
            break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    bool finish = s->ending && !s->aborting;
    pthread_mutex_unlock(&s->mu);
    t0 = nx_store_now_ms();
    if (finish) {
        r.rc = snap_out_close(&o, &r.meta);
        if (r.rc == NX_OK)
            r.rc = nx_snapshot_prune(s->dir, s->keep, &r.oldest_kept);
    }
    if (!finish || r.rc != NX_OK)
        snap_out_abort(&o);
    r.write_ms = busy + (nx_store_now_ms() - t0);
    r.compress_ms = o.compress_ms;
    if (r.rc)
        nx_store_logf(s->log, s->log_arg, 2, "snapshot at lsn %" PRIu64 " in %s failed: %s", lsn,
                      s->dir, nx_strerror(r.rc));
    pthread_mutex_lock(&s->mu);
    if (finish) { /* an abort has no outcome to poll: its owner gave up on it */
        s->result = r;
        atomic_store_explicit(&s->done, true, memory_order_release);
    }
    s->pending = s->ending = s->aborting = false;
    pthread_cond_broadcast(&s->cv);
}

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
        while (!s->quit && !s->pending)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->pending)
            break; /* quit with nothing to do */
        write_one(s); /* returns with mu held */
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
    s->zbuf = malloc(SNAP_ZBUF);
    s->shard = shard;
    s->level = zstd_level ? zstd_level : NX_SNAP_ZSTD_LEVEL_DEFAULT;
    s->keep = keep ? keep : NX_SNAP_KEEP_DEFAULT;
    s->log = log;
    s->log_arg = log_arg;
    atomic_init(&s->done, false);
    if (!s->dir || !s->cctx || !s->zbuf) {
        ZSTD_freeCCtx(s->cctx);
        free(s->zbuf);
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
        free(s->zbuf);
        free(s->dir);
        free(s);
        return NX_ENOMEM;
    }
    *out = s;
    return NX_OK;
}

int nx_snapshotter_begin(nx_snapshotter *s, uint64_t lsn)
{
    pthread_mutex_lock(&s->mu);
    if (s->pending) {
        pthread_mutex_unlock(&s->mu);
        return NX_EEXIST;
    }
    s->job_lsn = lsn;
    s->pending = true;
    s->ending = s->aborting = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NX_OK;
}

int nx_snapshotter_append(nx_snapshotter *s, nx_buf *piece)
{
    pthread_mutex_lock(&s->mu);
    int rc = NX_OK;
    if (!s->pending || s->ending || s->aborting) {
        rc = NX_EINVAL;
    } else if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? 2 * s->qcap : 16;
        nx_buf *q = malloc(cap * sizeof *q);
        if (!q) {
            rc = NX_ENOMEM;
        } else {
            for (size_t i = 0; i < s->qlen; i++)
                q[i] = s->queue[(s->qhead + i) % s->qcap];
            free(s->queue);
            s->queue = q;
            s->qcap = cap;
            s->qhead = 0;
        }
    }
    if (rc == NX_OK) {
        s->queue[(s->qhead + s->qlen) % s->qcap] = *piece;
        s->qlen++;
        if (s->nspare) /* a piece the writer is done with, to encode into */
            *piece = s->spare[--s->nspare];
        else
            memset(piece, 0, sizeof *piece);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == NX_OK && !piece->data && s->piece_alloc) {
        piece->data = s->piece_alloc(s->piece_arg, s->piece_bytes);
        piece->cap = piece->data ? s->piece_bytes : 0;
    }
    return rc;
}

void nx_snapshotter_set_piece_alloc(nx_snapshotter *s, void *(*alloc)(void *arg, size_t bytes),
                                    void *arg, size_t bytes)
{
    s->piece_alloc = alloc;
    s->piece_arg = arg;
    s->piece_bytes = bytes;
}

void nx_snapshotter_end(nx_snapshotter *s, bool abort)
{
    pthread_mutex_lock(&s->mu);
    if (s->pending) {
        if (abort)
            s->aborting = true;
        else
            s->ending = true;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

int nx_snapshotter_submit(nx_snapshotter *s, nx_buf *raw, uint64_t lsn)
{
    if (!raw->data)
        return NX_EINVAL;
    int rc = nx_snapshotter_begin(s, lsn);
    if (rc)
        return rc;
    if ((rc = nx_snapshotter_append(s, raw))) {
        nx_snapshotter_end(s, true);
        return rc;
    }
    nx_buf_free(raw); /* a spare it handed back: not needed here */
    nx_snapshotter_end(s, false);
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
    while (s->pending && (s->ending || s->aborting))
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
    for (size_t i = 0; i < s->qlen; i++)
        nx_buf_free(&s->queue[(s->qhead + i) % s->qcap]);
    free(s->queue);
    for (size_t i = 0; i < s->nspare; i++)
        nx_buf_free(&s->spare[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    ZSTD_freeCCtx(s->cctx);
    free(s->zbuf);
    free(s->dir);
    free(s);
}
