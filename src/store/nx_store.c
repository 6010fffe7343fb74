/*
 * nx_store.c — one shard's durability façade: recovery, snapshot policy,
 * WAL cleanup and the offline verifier. See nx_store.h for the contract.
 *
 * Exactly-once: a snapshot is encoded on the shard thread between wakeups,
 * when every appended batch has been applied and nothing else has, and it
 * records nx_wal_last_lsn() at that instant. Recovery loads it and replays
 * precisely the records with a larger LSN. WAL segments are deleted only up
 * to the OLDEST snapshot kept, so falling back from a corrupt newest
 * snapshot to the previous one still finds every record it needs.
 *
 * Trade-off: the encode (the stall) is proportional to the engine's size;
 * compress, write and fsync run on the nx_snapshotter thread. Snapshots are
 * started at most every snapshot_interval_ms, and only when the WAL has grown
 * since the last one (an idle shard writes none), or when the WAL has grown by
 * the WAL threshold (bounding recovery time), or on request. The threshold
 * is max(snapshot_wal_bytes, 2 x the last snapshot's raw size): a snapshot
 * stalls the shard for time proportional to the state, so under heavy
 * ingest with a large state a fixed 256 MiB would snapshot every few
 * seconds and stall a double-digit share of the time; tying the WAL budget
 * to the state size keeps snapshot work at most about half the WAL volume
 * while replay stays bounded by about twice the snapshot's size (the
 * auto-rewrite-percentage idea of Redis's AOF).
 */
#include "store/nx_store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/nx_codec.h"

/* Pieces of the encoding streamed to the writer (the default of
 * snapshot_piece_bytes): large enough that the hand-over (a mutex and a
 * wake-up) is rare, small enough to stay warm in cache and in memory. */
#define NX_STORE_PIECE_BYTES (1u << 20)

struct nx_store {
    nx_store_options opt;
    nx_store_ops ops;
    char wal_dir[4096];
    char snap_dir[4096];
    nx_wal *wal;
    nx_snapshotter *snap;
    int64_t last_snap_ms;        /* now_ms of the last snapshot start; 0 none */
    uint64_t last_snap_lsn;      /* LSN covered by the newest snapshot */
    uint64_t wal_bytes_at_snap;  /* nx_wal_bytes_written() then */
    atomic_bool requested;
    bool encoding;               /* an incremental encode is in progress */
    atomic_uint_fast64_t done;
    nx_store_stats stats;
};

static int load_snapshots(nx_store *st, nx_store_recovery *rep)
{
    uint64_t *l = NULL;
    size_t n = 0;
    int rc = nx_snapshot_list(st->snap_dir, &l, &n);
    if (rc)
        return rc;
    rep->snapshots_found = (uint32_t)n;
    nx_buf raw = {0};
    for (size_t i = 0; i < n; i++) {
        char p[4200];
        nx_snapshot_path(p, sizeof p, st->snap_dir, l[i]);
        double t0 = nx_store_now_ms();
        nx_snapshot_meta m;
        rc = nx_snapshot_read(p, &raw, &m);
        if (rc == NX_OK && (m.lsn != l[i] || m.shard != st->opt.shard))
            rc = NX_ECORRUPT;
        if (rc == NX_OK && st->ops.load)
            rc = st->ops.load(st->ops.arg, raw.data, raw.len, m.lsn);
        if (rc == NX_ENOMEM)
            break;
        if (rc) {
            rep->snapshots_bad++;
            nx_store_logf(st->opt.log, st->opt.log_arg, 2,
                          "snapshot %s is unusable (%s)%s", p, nx_strerror(rc),
                          i + 1 < n ? "; falling back to the previous one" : "; no older snapshot");
            rc = NX_OK;
            continue;
        }
        rep->snapshot_lsn = m.lsn;
        rep->snapshot_raw_bytes = m.raw_len;
        rep->snapshot_ms = nx_store_now_ms() - t0;
        break;
    }
    nx_buf_free(&raw);
    free(l);
    return rc;
}

int nx_store_open(const nx_store_options *opt, const nx_store_ops *ops, nx_store_recovery *rep,
                  nx_store **out)
{
    double t0 = nx_store_now_ms();
    if (!opt || !opt->data_dir || !ops)
        return NX_EINVAL;
    nx_store *st = calloc(1, sizeof *st);
    if (!st)
        return NX_ENOMEM;
    st->opt = *opt;
    st->ops = *ops;
    atomic_init(&st->requested, false);
    atomic_init(&st->done, 0);
    if (!st->opt.snapshot_interval_ms)
        st->opt.snapshot_interval_ms = 60000;
    if (!st->opt.snapshot_wal_bytes)
        st->opt.snapshot_wal_bytes = 256ull << 20;
    if (!st->opt.keep_snapshots)
        st->opt.keep_snapshots = NX_SNAP_KEEP_DEFAULT;
    if (!st->opt.snapshot_piece_bytes)
        st->opt.snapshot_piece_bytes = NX_STORE_PIECE_BYTES;
    int n1 = snprintf(st->wal_dir, sizeof st->wal_dir, "%s/shard-%" PRIu32 "/wal", opt->data_dir, opt->shard);
    int n2 = snprintf(st->snap_dir, sizeof st->snap_dir, "%s/shard-%" PRIu32 "/snap", opt->data_dir, opt->shard);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof st->wal_dir || (size_t)n2 >= sizeof st->snap_dir) {
        free(st);
        return NX_EINVAL;
    }
    nx_store_recovery r;
    memset(&r, 0, sizeof r);
    int rc = nx_store_mkdirs(st->snap_dir);
    if (rc == NX_OK)
        rc = nx_store_mkdirs(st->wal_dir);
    if (rc == NX_OK)
        rc = load_snapshots(st, &r);
    nx_wal_options wo = {
        .segment_bytes = opt->segment_bytes,
        .buffer_bytes = opt->buffer_bytes,
        .shard = opt->shard,
        .log = opt->log,
        .log_arg = opt->log_arg,
    };
    if (rc == NX_OK)
        rc = nx_wal_open(st->wal_dir, &wo, r.snapshot_lsn, ops->apply, ops->arg, &r.wal, &st->wal);
    if (rc == NX_OK)
        rc = nx_snapshotter_start(st->snap_dir, opt->shard, opt->zstd_level, st->opt.keep_snapshots,
                                  opt->log, opt->log_arg, &st->snap);
    if (rc) {
        nx_store_logf(opt->log, opt->log_arg, 2, "shard %" PRIu32 ": recovery from %s failed: %s",
                      opt->shard, opt->data_dir, nx_strerror(rc));
        nx_wal_close(st->wal);
        free(st);
        return rc;
    }
    st->last_snap_lsn = r.snapshot_lsn;
    st->stats.last_raw_bytes = r.snapshot_raw_bytes;
    st->wal_bytes_at_snap = 0;
    r.total_ms = nx_store_now_ms() - t0;
    nx_store_logf(opt->log, opt->log_arg, r.wal.gap ? 2 : 0,
                  "shard %" PRIu32 ": recovered in %.1f ms: snapshot lsn %" PRIu64 " (%" PRIu64
                  " bytes, %.1f ms, %" PRIu32 " bad of %" PRIu32 "), replayed %" PRIu64
                  " batch(es) up to lsn %" PRIu64 " (%.1f ms)%s",
                  opt->shard, r.total_ms, r.snapshot_lsn, r.snapshot_raw_bytes, r.snapshot_ms,
                  r.snapshots_bad, r.snapshots_found, r.wal.replayed, nx_wal_last_lsn(st->wal),
                  r.wal.ms, r.wal.gap ? "; WAL GAP: batches were lost" : "");
    if (rep)
        *rep = r;
    *out = st;
    return NX_OK;
}

void nx_store_close(nx_store *st)
{
    if (!st)
        return;
    if (st->encoding && st->ops.encode_abort)
        st->ops.encode_abort(st->ops.arg);
    nx_snapshotter_stop(st->snap); /* drops a snapshot still being encoded */
    nx_wal_close(st->wal);
    free(st);
}

int nx_store_append(nx_store *st, const nx_wal_record *r, uint64_t *lsn)
{
    return nx_wal_append(st->wal, r, lsn);
}

int nx_store_commit(nx_store *st, bool sync, uint64_t *durable)
{
    return nx_wal_commit(st->wal, sync, durable);
}

int nx_store_sync_behind(nx_store *st)
{
    return nx_wal_sync_behind(st->wal);
}

uint64_t nx_store_written_lsn(const nx_store *st) { return nx_wal_written_lsn(st->wal); }
uint64_t nx_store_durable_lsn(const nx_store *st) { return nx_wal_durable_lsn(st->wal); }
uint64_t nx_store_last_lsn(const nx_store *st) { return nx_wal_last_lsn(st->wal); }
nx_wal *nx_store_wal(nx_store *st) { return st->wal; }

static void collect(nx_store *st)
{
    nx_snapshot_result r;
    if (!nx_snapshotter_poll(st->snap, &r))
        return;
    if (r.rc) {
        st->stats.snapshot_failures++;
        return;
    }
    st->stats.snapshots++;
    st->stats.last_snapshot_lsn = r.meta.lsn;
    st->stats.last_write_ms = r.write_ms;
    st->stats.last_compress_ms = r.compress_ms;
    st->stats.last_raw_bytes = r.meta.raw_len;
    st->stats.last_comp_bytes = r.meta.comp_len;
    size_t removed = 0;
    if (r.oldest_kept && nx_wal_remove_covered(st->wal, r.oldest_kept, &removed) != NX_OK)
        nx_store_logf(st->opt.log, st->opt.log_arg, 1, "shard %" PRIu32 ": removing old WAL segments failed",
                      st->opt.shard);
    st->stats.wal_segments_removed += removed;
    if (st->stats.last_encode_steps)
        nx_store_logf(st->opt.log, st->opt.log_arg, 0,
                      "shard %" PRIu32 ": snapshot lsn %" PRIu64 ": %" PRIu64 " -> %" PRIu64
                      " bytes, encode %.1f ms in %" PRIu32 " steps (longest %.1f ms: the shard stall), "
                      "write %.1f ms (background), %zu WAL segment(s) removed",
                      st->opt.shard, r.meta.lsn, r.meta.raw_len, r.meta.comp_len,
                      st->stats.last_encode_total_ms, st->stats.last_encode_steps,
                      st->stats.last_encode_ms, r.write_ms, removed);
    else
        nx_store_logf(st->opt.log, st->opt.log_arg, 0,
                      "shard %" PRIu32 ": snapshot lsn %" PRIu64 ": %" PRIu64 " -> %" PRIu64
                      " bytes, encode %.1f ms (shard stall), write %.1f ms (background), %zu WAL segment(s) removed",
                      st->opt.shard, r.meta.lsn, r.meta.raw_len, r.meta.comp_len, st->stats.last_encode_ms,
                      r.write_ms, removed);
    atomic_fetch_add(&st->done, 1);
}

/* WAL bytes since the last snapshot that make the next one due. */
static uint64_t wal_threshold(const nx_store *st)
{
    uint64_t t = st->opt.snapshot_wal_bytes, s2 = 2 * st->stats.last_raw_bytes;
    return s2 > t ? s2 : t;
}

/* Hands a finished encoding to the writer thread and records the start. */
static int submit_snapshot(nx_store *st, nx_buf *raw, uint64_t lsn, int64_t now_ms)
{
    int rc = nx_snapshotter_submit(st->snap, raw, lsn);
    nx_buf_free(raw);
    if (rc)
        return rc;
    st->last_snap_ms = now_ms;
    st->last_snap_lsn = lsn;
    return NX_OK;
}

/* Bytes per incremental step: ~1 ms of encoding on this hardware, so a
 * query or a datagram never waits behind more than that. */
#define NX_STORE_STEP_BYTES (128u << 10)

/* The encoding's pieces go to the writer thread as they fill. */
static int pass_piece(void *arg, nx_buf *piece)
{
    nx_store *st = arg;
    return nx_snapshotter_append(st->snap, piece);
}

/* Drops the snapshot being encoded (after its error). */
static void drop_encoding(nx_store *st, bool engine_still_encoding)
{
    if (engine_still_encoding && st->ops.encode_abort)
        st->ops.encode_abort(st->ops.arg);
    st->encoding = false;
    nx_snapshotter_end(st->snap, true);
    st->stats.snapshot_failures++;
}

/* One step of the incremental encode in progress (max_bytes SIZE_MAX:
 * finish it now); pieces reach the writer through pass_piece, or here. */
static int step_encode(nx_store *st, size_t max_bytes)
{
    bool done = false;
    nx_buf rest = {0}; /* bytes of an owner that does not use the sink */
    double t0 = nx_store_now_ms();
    int rc = st->ops.encode_step(st->ops.arg, max_bytes, &rest, &done);
    bool engine_on = rc == NX_OK && !done; /* an engine error ends its encoding */
    if (rc == NX_OK && rest.len)
        rc = nx_snapshotter_append(st->snap, &rest); /* rest: empty or a spare */
    nx_buf_free(&rest);
    double dt = nx_store_now_ms() - t0;
    st->stats.last_encode_total_ms += dt;
    st->stats.last_encode_steps++;
    if (dt > st->stats.last_encode_ms)
        st->stats.last_encode_ms = dt;
    if (rc) {
        drop_encoding(st, engine_on);
        nx_store_logf(st->opt.log, st->opt.log_arg, 2, "shard %" PRIu32 ": snapshot encode failed: %s",
                      st->opt.shard, nx_strerror(rc));
        return rc;
    }
    if (!done)
        return NX_OK;
    st->encoding = false;
    nx_snapshotter_end(st->snap, false);
    return NX_OK;
}

static int start_snapshot(nx_store *st, int64_t now_ms)
{
    /* Everything covered must at least be in the kernel before the snapshot
     * claims it; an error here just means we retry later. */
    int rc = nx_wal_commit(st->wal, false, NULL);
    if (rc)
        return rc;
    if (st->ops.encode_begin && st->ops.encode_step) {
        uint64_t lsn = nx_wal_last_lsn(st->wal);
        if ((rc = nx_snapshotter_begin(st->snap, lsn)))
            return rc;
        if ((rc = st->ops.encode_begin(st->ops.arg, st->opt.snapshot_piece_bytes, pass_piece, st))) {
            nx_snapshotter_end(st->snap, true);
            return rc;
        }
        st->encoding = true;
        st->stats.last_encode_ms = 0;
        st->stats.last_encode_total_ms = 0;
        st->stats.last_encode_steps = 0;
        /* the WAL budget counts from the instant the state was captured */
        st->wal_bytes_at_snap = nx_wal_bytes_written(st->wal);
        st->last_snap_ms = now_ms;
        st->last_snap_lsn = lsn;
        return NX_OK;
    }
    st->stats.last_encode_steps = 0;
    st->stats.last_encode_total_ms = 0;
    double t0 = nx_store_now_ms();
    nx_buf raw = {0};
    /* room for the last size + 1/8: no realloc copies of a few hundred MB
     * while the state grows steadily (if it fails, the buffer just grows) */
    if (st->stats.last_raw_bytes)
        (void)nx_buf_reserve(&raw, st->stats.last_raw_bytes + st->stats.last_raw_bytes / 8);
    rc = st->ops.encode ? st->ops.encode(st->ops.arg, &raw) : NX_EINVAL;
    st->stats.last_encode_ms = nx_store_now_ms() - t0;
    if (rc == NX_OK && !raw.data)
        rc = nx_buf_reserve(&raw, 1);
    if (rc) {
        nx_buf_free(&raw);
        nx_store_logf(st->opt.log, st->opt.log_arg, 2, "shard %" PRIu32 ": snapshot encode failed: %s",
                      st->opt.shard, nx_strerror(rc));
        st->stats.snapshot_failures++;
        return rc;
    }
    uint64_t lsn = nx_wal_last_lsn(st->wal);
    rc = submit_snapshot(st, &raw, lsn, now_ms);
    if (rc == NX_OK)
        st->wal_bytes_at_snap = nx_wal_bytes_written(st->wal);
    return rc;
}

int nx_store_tick(nx_store *st, int64_t now_ms)
{
    collect(st);
    if (st->encoding)
        return step_encode(st, NX_STORE_STEP_BYTES);
    if (nx_snapshotter_busy(st->snap))
        return NX_OK;
    bool req = atomic_exchange(&st->requested, false);
    bool grown = nx_wal_last_lsn(st->wal) > st->last_snap_lsn;
    bool due = grown && (now_ms - st->last_snap_ms >= (int64_t)st->opt.snapshot_interval_ms ||
                         nx_wal_bytes_written(st->wal) - st->wal_bytes_at_snap >= wal_threshold(st));
    if (!st->last_snap_ms && !req && grown) {
        /* First tick after open: start the interval clock instead of
         * snapshotting immediately (recovery just replayed the tail). */
        st->last_snap_ms = now_ms;
        due = nx_wal_bytes_written(st->wal) - st->wal_bytes_at_snap >= wal_threshold(st);
    }
    if (!req && !due)
        return NX_OK;
    int rc = start_snapshot(st, now_ms);
    return rc == NX_EEXIST ? NX_OK : rc;
}

void nx_store_set_piece_alloc(nx_store *st, void *(*alloc)(void *arg, size_t bytes), void *arg)
{
    /* the engine encodes into pieces of chunk + chunk / 4 (snap_pass_piece) */
    size_t b = st->opt.snapshot_piece_bytes;
    nx_snapshotter_set_piece_alloc(st->snap, alloc, arg, b + b / 4);
}

void nx_store_request_snapshot(nx_store *st)
{
    atomic_store(&st->requested, true);
}

int nx_store_snapshot_now(nx_store *st, bool wait)
{
    /* an incremental encode in progress is finished first: the writer
     * takes one snapshot at a time */
    if (st->encoding && wait) {
        int r0 = step_encode(st, SIZE_MAX);
        if (r0 && r0 != NX_EEXIST)
            return r0;
    }
    if (wait)
        nx_snapshotter_wait(st->snap);
    collect(st);
    if (st->encoding)
        return NX_EEXIST;
    uint64_t before = atomic_load(&st->done);
    uint64_t fails = st->stats.snapshot_failures;
    int rc = start_snapshot(st, st->last_snap_ms);
    if (rc == NX_OK && st->encoding && wait)
        rc = step_encode(st, SIZE_MAX); /* asked to wait: no point in slicing */
    if (rc || !wait)
        return rc;
    nx_snapshotter_wait(st->snap);
    collect(st);
    if (atomic_load(&st->done) == before) {
        assert(st->stats.snapshot_failures > fails);
        return NX_EIO;
    }
    return NX_OK;
}

uint64_t nx_store_snapshots_done(const nx_store *st)
{
    return atomic_load(&((nx_store *)st)->done);
}

bool nx_store_encoding(const nx_store *st)
{
    return st->encoding;
}

void nx_store_get_stats(const nx_store *st, nx_store_stats *out)
{
    *out = st->stats;
}

/* ---- verify ------------------------------------------------------------- */

static void vprob(nx_store_verify_report *rep, FILE *out, const char *what, const char *msg)
{
    rep->problems++;
    if (out)
        fprintf(out, "PROBLEM %s: %s\n", what, msg);
}

static int verify_shard(const char *shard_dir, uint32_t shard, nx_store_verify_report *rep, FILE *out)
{
    char wal_dir[4300], snap_dir[4300];
    snprintf(wal_dir, sizeof wal_dir, "%.4200s/wal", shard_dir);
    snprintf(snap_dir, sizeof snap_dir, "%.4200s/snap", shard_dir);
    nx_wal_verify v;
    int rc = nx_wal_verify_dir(wal_dir, &v);
    bool bad = false;
    if (rc == NX_ENOENT) {
        memset(&v, 0, sizeof v);
    } else if (rc == NX_ECORRUPT) {
        if (v.bad_segments || v.gap) {
            vprob(rep, out, wal_dir, v.problem);
            bad = true;
        } else if (out) {
            fprintf(out, "note %s: torn tail of %" PRIu64 " byte(s) (a crash mid-write; recovery cuts it)\n",
                    wal_dir, v.torn_bytes);
        }
    } else if (rc) {
        vprob(rep, out, wal_dir, nx_strerror(rc));
        bad = true;
    }
    rep->segments += v.segments;
    rep->records += v.records;
    rep->wal_bytes += v.bytes;
    rep->bad_segments += v.bad_segments;
    rep->torn_bytes += v.torn_bytes;
    rep->gaps += v.gap;

    uint64_t *l = NULL;
    size_t n = 0;
    uint64_t newest_ok = 0, oldest_ok = 0;
    rc = nx_snapshot_list(snap_dir, &l, &n);
    if (rc && rc != NX_ENOENT) {
        vprob(rep, out, snap_dir, nx_strerror(rc));
        bad = true;
    }
    nx_buf raw = {0};
    for (size_t i = 0; i < n; i++) {
        char p[4400];
        nx_snapshot_path(p, sizeof p, snap_dir, l[i]);
        nx_snapshot_meta m;
        rep->snapshots++;
        rc = nx_snapshot_read(p, &raw, &m);
        if (rc == NX_OK && (m.lsn != l[i] || m.shard != shard))
            rc = NX_ECORRUPT;
        if (rc) {
            rep->bad_snapshots++;
            vprob(rep, out, p, nx_strerror(rc));
            bad = true;
            continue;
        }
        if (!newest_ok)
            newest_ok = m.lsn;
        oldest_ok = m.lsn;
    }
    nx_buf_free(&raw);
    free(l);
    /* The WAL must continue where the snapshot we would load stops. */
    if (v.first_lsn && v.first_lsn > newest_ok + 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "WAL starts at lsn %" PRIu64 " but the newest valid snapshot covers %" PRIu64,
                 v.first_lsn, newest_ok);
        vprob(rep, out, shard_dir, msg);
        rep->gaps++;
        bad = true;
    }
    if (out)
        fprintf(out, "shard %" PRIu32 ": %s; wal %" PRIu64 " segment(s), %" PRIu64 " record(s), lsn %" PRIu64
                "..%" PRIu64 ", %" PRIu64 " bytes; %zu snapshot(s), newest valid lsn %" PRIu64
                ", oldest valid lsn %" PRIu64 "\n",
                shard, bad ? "PROBLEMS" : "ok", v.segments, v.records, v.first_lsn, v.last_lsn, v.bytes, n,
                newest_ok, oldest_ok);
    return bad ? NX_ECORRUPT : NX_OK;
}

int nx_store_verify(const char *data_dir, nx_store_verify_report *rep, FILE *out)
{
    memset(rep, 0, sizeof *rep);
    DIR *d = opendir(data_dir);
    if (!d) {
        int rc = nx_store_errno(errno);
        if (out)
            fprintf(out, "PROBLEM %s: %s\n", data_dir, strerror(errno));
        return rc;
    }
    int result = NX_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint32_t shard;
        char extra;
        if (sscanf(de->d_name, "shard-%" SCNu32 "%c", &shard, &extra) != 1)
            continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", data_dir, de->d_name);
        struct stat sb;
        if (stat(p, &sb) < 0 || !S_ISDIR(sb.st_mode))
            continue;
        rep->shards++;
        if (verify_shard(p, shard, rep, out) != NX_OK)
            result = NX_ECORRUPT;
    }
    closedir(d);
    if (out)
        fprintf(out, "verify %s: %s (%" PRIu32 " shard(s), %" PRIu64 " segment(s), %" PRIu64
                " record(s), %" PRIu64 " snapshot(s), %" PRIu64 " problem(s))\n",
                data_dir, result ? "FAILED" : "ok", rep->shards, rep->segments, rep->records,
                rep->snapshots, rep->problems);
    return result;
}
