/*
 * nx_durable.c — the engine glue of src/store for one shard (see
 * nx_durable.h and docs/durability.md).
 *
 * Exactly-once: a batch is appended to the WAL before it is applied, and a
 * snapshot is encoded only between batches (nx_store_tick at the end of an
 * iteration, or an admin message handled between two batches), so the
 * snapshot at LSN L holds exactly the batches 1..L and recovery replays
 * L+1.. once each.
 *
 * Sync policy: fdatasync when an ack=durable batch waits (group commit: one
 * sync for every batch of the iteration, from every client), else when data
 * has been written but not synced for --wal-sync-interval (bounds what a
 * power loss takes from UDP / StatsD TCP / ack=applied traffic); that one
 * runs behind, on the WAL's helper thread (nx_wal_sync_behind), so the
 * shard never stops for it. A kill -9
 * loses nothing that reached write(): the page cache outlives the process.
 *
 * Errors: a refused append (disk full, failed WAL) refuses an acked batch
 * before it is applied. A failed commit answers every parked ack with the
 * error: those batches were applied in memory (queries may show them until
 * a restart) but are not acknowledged. Fire-and-forget batches are applied
 * even when the WAL refuses them (availability over durability for traffic
 * nobody can retry); they are counted in `unlogged`.
 */
#include "server/nx_durable.h"
#include "server/nx_log.h"
#include "store/nx_store.h"

#include <assert.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parked {
    uint64_t lsn;
    uint8_t mode;
    nx_ack_fn fn;
    void *arg;
} parked;

struct nx_durable {
    int shard;
    nx_store *st;                  /* NULL: durability off */
    nx_engine **engine;
    nx_applier *ap;
    const nx_engine_config *ecfg;
    uint32_t sync_ms;
    uint32_t snap_ms;
    double last_sync;              /* monotonic ms of the last fdatasync (or open) */
    parked *p;
    size_t np, cap;
    bool any_durable;
    int64_t last_err_log_s;
    nx_durable_stats stats;
};

static inline void st_set(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline void st_add(_Atomic uint64_t *c, uint64_t v)
{
    st_set(c, atomic_load_explicit(c, memory_order_relaxed) + v);
}

static void store_log(void *arg, int level, const char *msg)
{
    nx_durable *d = arg;
    int l = level == 0 ? NX_LOG_INFO : level == 1 ? NX_LOG_WARN : NX_LOG_ERROR;
    char esc[1100];
    nx_log_escape(msg, strlen(msg), esc, sizeof(esc));
    nx_log(l, "store", "shard=%d detail=%s", d->shard, esc);
}

/* ---- nx_store callbacks ------------------------------------------------- */

static int ops_load(void *arg, const uint8_t *raw, size_t n, uint64_t lsn)
{
    nx_durable *d = arg;
    nx_engine *e = NULL;
    int rc = nx_engine_decode(d->ecfg, raw, n, &e);
    if (rc)
        return rc; /* state unchanged: the store tries an older snapshot */
    nx_engine_inherit_hook(e, *d->engine);
    nx_engine_destroy(*d->engine);
    *d->engine = e;
    d->ap->engine = e;
    st_set(&d->stats.snapshot_lsn, lsn);
    return 0;
}

/* The WAL record's source byte: the nx_batch source (1..5) in the low bits,
 * bit 7 set when the batch was tenant-locked (HTTP ingest with a token). */
#define NX_WAL_SRC_LOCKED 0x80

static int ops_apply(void *arg, const nx_wal_record *r)
{
    nx_durable *d = arg;
    /* A replayed batch was admitted when it was received: it skips the
     * rate limit (NX_SRC_REPLAY), but keeps its tenant lock, so a line
     * naming another tenant is refused again, never written there. */
    nx_batch b = {.format = r->format,
                  .source = NX_SRC_REPLAY,
                  .tenant_locked = (r->source & NX_WAL_SRC_LOCKED) != 0,
                  .tenant_len = r->tenant_len,
                  .tenant = r->tenant,
                  .recv_ms = r->recv_ms,
                  .data = r->payload,
                  .len = r->payload_len};
    nx_apply_result res;
    memset(&res, 0, sizeof(res));
    /* an unknown format is skipped, not fatal: the rest of the log still counts */
    int rc = nx_applier_apply(d->ap, &b, &res);
    if (rc)
        nx_log(NX_LOG_WARN, "replay: batch not applied", "shard=%d lsn=%llu error=%s", d->shard,
               (unsigned long long)r->lsn, nx_errname(rc));
    return 0;
}

static int ops_encode(void *arg, nx_buf *out)
{
    nx_durable *d = arg;
    return nx_engine_encode(*d->engine, out);
}

/* Incremental snapshots: the engine keeps ingesting while its state of the
 * begin instant is encoded step by step (copy-on-write per stream). */
static int ops_encode_begin(void *arg, size_t chunk_bytes, nx_encode_sink sink, void *sink_arg)
{
    nx_durable *d = arg;
    return nx_engine_encode_begin(*d->engine, chunk_bytes, sink, sink_arg);
}

static int ops_encode_step(void *arg, size_t max_bytes, nx_buf *out, bool *done)
{
    nx_durable *d = arg;
    return nx_engine_encode_step(*d->engine, max_bytes, out, done);
}

static void ops_encode_abort(void *arg)
{
    nx_durable *d = arg;
    nx_engine_encode_abort(*d->engine);
}

/* ---- lifecycle ------------------------------------------------------------ */

int nx_durable_open(const nx_config *cfg, int shard, nx_engine **engine, nx_applier *ap,
                    nx_durable **out)
{
    nx_durable *d = calloc(1, sizeof(*d));
    if (!d)
        return NX_ENOMEM;
    d->shard = shard;
    d->engine = engine;
    d->ap = ap;
    d->ecfg = &cfg->engine;
    d->sync_ms = cfg->wal_sync_ms ? cfg->wal_sync_ms : 1000;
    d->snap_ms = cfg->snapshot_interval_ms ? cfg->snapshot_interval_ms : 60000;
    d->cap = 64;
    d->p = malloc(d->cap * sizeof(*d->p));
    if (!d->p) {
        free(d);
        return NX_ENOMEM;
    }
    d->last_sync = nx_store_now_ms();
    if (!cfg->data_dir[0]) {
        *out = d;
        return 0;
    }
    nx_store_options opt = {.data_dir = cfg->data_dir,
                            .shard = (uint32_t)shard,
                            .snapshot_interval_ms = d->snap_ms,
                            /* the store reads 0 as its own default: zstd's 0 is 3 */
                            .zstd_level = cfg->snapshot_zstd_level ? cfg->snapshot_zstd_level : 3,
                            .log = store_log,
                            .log_arg = d};
    nx_store_ops ops = {.load = ops_load,
                        .apply = ops_apply,
                        .encode = ops_encode,
                        .encode_begin = ops_encode_begin,
                        .encode_step = ops_encode_step,
                        .encode_abort = ops_encode_abort,
                        .arg = d};
    nx_store_recovery rep;
    int rc = nx_store_open(&opt, &ops, &rep, &d->st);
    if (rc) {
        nx_log(NX_LOG_ERROR, "recovery failed", "shard=%d data_dir=\"%s\" error=%s", shard,
               cfg->data_dir, nx_errname(rc));
        free(d->p);
        free(d);
        return rc;
    }
    st_set(&d->stats.last_lsn, nx_store_last_lsn(d->st));
    st_set(&d->stats.durable_lsn, nx_store_durable_lsn(d->st));
    st_set(&d->stats.snapshot_lsn, rep.snapshot_lsn);
    st_set(&d->stats.recovery_us, (uint64_t)(rep.total_ms * 1000.0));
    st_set(&d->stats.replayed, rep.wal.replayed);
    nx_log(rep.wal.gap || rep.snapshots_bad || rep.wal.truncated_bytes ? NX_LOG_WARN : NX_LOG_INFO,
           "shard recovered",
           "shard=%d ms=%.1f snapshot_lsn=%llu snapshots_bad=%u replayed=%llu last_lsn=%llu "
           "truncated_bytes=%llu orphaned_segments=%llu gap=%d",
           shard, rep.total_ms, (unsigned long long)rep.snapshot_lsn, rep.snapshots_bad,
           (unsigned long long)rep.wal.replayed, (unsigned long long)nx_store_last_lsn(d->st),
           (unsigned long long)rep.wal.truncated_bytes,
           (unsigned long long)rep.wal.orphaned_segments, (int)rep.wal.gap);
    *out = d;
    return 0;
}

void nx_durable_close(nx_durable *d)
{
    if (!d)
        return;
    assert(d->np == 0);
    nx_store_close(d->st);
    free(d->p);
    free(d);
}

void nx_durable_set_piece_alloc(nx_durable *d, void *(*alloc)(void *arg, size_t bytes), void *arg)
{
    if (d->st)
        nx_store_set_piece_alloc(d->st, alloc, arg);
}

bool nx_durable_enabled(const nx_durable *d)
{
    return d->st != NULL;
}

const nx_durable_stats *nx_durable_get_stats(const nx_durable *d)
{
    return &d->stats;
}

/* ---- write path ------------------------------------------------------------ */


int nx_durable_log(nx_durable *d, const nx_batch *b, uint64_t *lsn)
{
    *lsn = 0;
    if (!d->st)
        return 0;
    if (b->len > NX_WAL_MAX_PAYLOAD)
        return NX_ETOOBIG;
    nx_wal_record r = {.recv_ms = b->recv_ms,
                       .format = b->format,
                       .source = (uint8_t)(b->source | (b->tenant_locked ? NX_WAL_SRC_LOCKED : 0)),
                       .tenant_len = b->tenant_len,
                       .tenant = b->tenant,
                       .payload = b->data,
                       .payload_len = (uint32_t)b->len};
    int rc = nx_store_append(d->st, &r, lsn);
    if (rc == 0)
        st_set(&d->stats.last_lsn, *lsn);
    return rc;
}

static void log_error(nx_durable *d, const char *what, int rc)
{
    /* at most one line per second per shard: a full disk must not flood the log */
    int64_t s = (int64_t)(nx_store_now_ms() / 1000.0);
    if (s == d->last_err_log_s)
        return;
    d->last_err_log_s = s;
    nx_log(NX_LOG_ERROR, what, "shard=%d error=%s refused=%llu failed_acks=%llu unlogged=%llu",
           d->shard, nx_errname(rc), (unsigned long long)d->stats.refused,
           (unsigned long long)d->stats.failed_acks, (unsigned long long)d->stats.unlogged);
}

void nx_durable_note_refused(nx_durable *d, int rc, bool acked)
{
    if (acked) {
        st_add(&d->stats.refused, 1);
        log_error(d, "WAL refused an acked batch; not applied, answered with the error", rc);
    } else {
        st_add(&d->stats.unlogged, 1);
        log_error(d, "WAL refused a fire-and-forget batch; applied in memory only", rc);
    }
}

int nx_durable_park(nx_durable *d, uint64_t lsn, nx_ack_mode mode, nx_ack_fn fn, void *arg)
{
    assert(fn);
    if (d->np == d->cap) {
        parked *np = realloc(d->p, d->cap * 2 * sizeof(*np));
        if (!np)
            return NX_ENOMEM;
        d->p = np;
        d->cap *= 2;
    }
    d->p[d->np++] = (parked){.lsn = lsn, .mode = (uint8_t)mode, .fn = fn, .arg = arg};
    if (mode == NX_ACK_DURABLE)
        d->any_durable = true;
    return 0;
}

void nx_durable_flush(nx_durable *d, int64_t now_ms)
{
    if (!d->st) {
        for (size_t i = 0; i < d->np; i++)
            d->p[i].fn(d->p[i].arg, 0, 0);
        d->np = 0;
        d->any_durable = false;
        return;
    }
    double now = nx_store_now_ms();
    uint64_t last = nx_store_last_lsn(d->st);
    /* acked batches wait for their fdatasync here (group commit); the
     * periodic one runs behind, on the WAL's helper thread: nobody waits for
     * it, and inline it stopped the shard (and its queries) 6-13 ms a time */
    bool sync = d->any_durable;
    bool behind = !sync && last > nx_store_durable_lsn(d->st) &&
                  now - d->last_sync >= (double)d->sync_ms;
    uint64_t durable = 0;
    int rc = nx_store_commit(d->st, sync, &durable);
    if (rc == 0 && behind)
        rc = nx_store_sync_behind(d->st);
    uint64_t written = nx_store_written_lsn(d->st);
    if (d->np || sync || behind)
        st_add(&d->stats.commits, 1);
    if ((sync || behind) && rc == 0) {
        d->last_sync = now;
        st_add(&d->stats.syncs, 1);
    }
    st_set(&d->stats.durable_lsn, durable);
    st_set(&d->stats.last_lsn, nx_store_last_lsn(d->st));
    for (size_t i = 0; i < d->np; i++) {
        parked *p = &d->p[i];
        uint64_t upto = p->mode == NX_ACK_DURABLE ? durable : written;
        int r = 0;
        if (p->lsn > upto) {
            /* only a failed commit leaves an ack unreleased */
            r = rc ? rc : NX_EIO;
            st_add(&d->stats.failed_acks, 1);
        }
        p->fn(p->arg, r, p->lsn);
    }
    if (rc)
        log_error(d, "WAL commit failed; un-written acks answered with the error", rc);
    d->np = 0;
    d->any_durable = false;
    int tr = nx_store_tick(d->st, now_ms);
    if (tr)
        log_error(d, "snapshot failed", tr);
    nx_store_stats ss;
    nx_store_get_stats(d->st, &ss);
    if (ss.snapshots != d->stats.snapshots) {
        st_set(&d->stats.snapshots, ss.snapshots);
        st_set(&d->stats.snapshot_lsn, ss.last_snapshot_lsn);
    }
}

int nx_durable_timeout_ms(const nx_durable *d)
{
    uint32_t t = 1000;
    if (d->st && d->sync_ms < t)
        t = d->sync_ms;
    if (d->st && d->snap_ms < t)
        t = d->snap_ms;
    if (d->st && nx_store_encoding(d->st))
        t = 1; /* an incremental snapshot advances one step per tick */
    return (int)t;
}

int nx_durable_snapshot(nx_durable *d, bool only_if_grown, uint64_t *lsn)
{
    if (lsn)
        *lsn = 0;
    if (!d->st)
        return NX_ENOENT;
    uint64_t last = nx_store_last_lsn(d->st);
    if (only_if_grown && last <= atomic_load(&d->stats.snapshot_lsn)) {
        if (lsn)
            *lsn = atomic_load(&d->stats.snapshot_lsn);
        return 0;
    }
    int rc = nx_store_snapshot_now(d->st, true);
    nx_store_stats ss;
    nx_store_get_stats(d->st, &ss);
    st_set(&d->stats.snapshots, ss.snapshots);
    if (rc == 0) {
        st_set(&d->stats.snapshot_lsn, ss.last_snapshot_lsn);
        if (lsn)
            *lsn = ss.last_snapshot_lsn;
    }
    return rc;
}

int nx_durable_check_layout(const char *data_dir, int nshards)
{
    if (!data_dir[0])
        return 0;
    DIR *dir = opendir(data_dir);
    if (!dir)
        return 0; /* created later */
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        int i;
        char extra;
        if (sscanf(de->d_name, "shard-%d%c", &i, &extra) == 1 && i >= nshards) {
            nx_log(NX_LOG_ERROR, "data dir holds more shards than configured",
                   "data_dir=\"%s\" found=%s shards=%d hint=\"restart with the same --shards\"",
                   data_dir, de->d_name, nshards);
            rc = NX_EINVAL;
        }
    }
    closedir(dir);
    return rc;
}
