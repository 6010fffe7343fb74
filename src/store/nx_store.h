/*
 * nx_store.h — one shard's durability: recovery at start, WAL appends and
 * group commits, periodic background snapshots, WAL cleanup, offline verify.
 *
 * This is the thin layer the shard loop calls. It knows nothing about the
 * engine: the caller passes three callbacks (load a snapshot's bytes, apply
 * a replayed batch, encode the current state), so it is testable with plain
 * blobs and the engine glue is a few lines (see docs/durability.md):
 *
 *   open:   nx_store_open(&opt, &ops, shard, &rep, &st)
 *             = newest valid snapshot -> ops.load, older one on corruption
 *             + WAL records after its LSN -> ops.apply, in order, once each
 *   loop:   for each batch: nx_store_append(st, &rec, &lsn); apply; park waiter
 *           nx_store_commit(st, any_durable_waiter, &durable)  (end of wakeup)
 *           release acks; on an error refuse every waiter above
 *           nx_store_written_lsn()
 *           nx_store_tick(st, now_ms)   (snapshot when due / requested,
 *                                        collect finished ones, drop WAL)
 *   admin:  nx_store_request_snapshot(st) from any thread
 *
 * Directory layout: <data_dir>/shard-<i>/wal/wal-<lsn>.log and
 * <data_dir>/shard-<i>/snap/snap-<lsn>.nxs.
 */
#ifndef NX_STORE_H
#define NX_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "nexus.h"
#include "store/nx_snapshot.h"
#include "store/nx_wal.h"

typedef struct nx_store_options {
    const char *data_dir;
    uint32_t shard;
    uint64_t segment_bytes;       /* WAL segment size; 0 = 64 MiB */
    size_t buffer_bytes;          /* WAL group buffer; 0 = 64 KiB (NX_WAL_BUFFER_DEFAULT) */
    int zstd_level;               /* 0 = 3 */
    size_t keep_snapshots;        /* 0 = 2 */
    uint32_t snapshot_interval_ms;/* 0 = 60000; snapshot at most this often */
    uint64_t snapshot_wal_bytes;  /* 0 = 256 MiB: also snapshot after this much WAL
                                   * (or 2 x the last snapshot's raw size, if more) */
    size_t snapshot_piece_bytes;  /* 0 = 1 MiB: pieces of an incremental encoding
                                   * handed to the snapshot writer */
    nx_store_log_fn log;
    void *log_arg;
} nx_store_options;

typedef struct nx_store_ops {
    /* Replace the state with a snapshot's bytes; all-or-nothing (on error
     * the state must be unchanged: the store then tries an older one). */
    int (*load)(void *arg, const uint8_t *raw, size_t n, uint64_t lsn);
    /* Apply one replayed batch, exactly as when it was first received. */
    int (*apply)(void *arg, const nx_wal_record *r);
    /* Encode the current state (called on the shard thread). */
    int (*encode)(void *arg, nx_buf *out);
    /* Optional incremental encoding (both or neither): begin captures the
     * state of this instant while the owner keeps changing it; each step,
     * called from nx_store_tick, encodes about max_bytes more and sets
     * *done at the end. The bytes go to `sink` in pieces of about
     * chunk_bytes as they are encoded (between steps too), and the last
     * piece at the end — streamed to the snapshot writer — or, from an
     * owner that ignores the sink, in *out (empty on entry) from any step
     * (nx_engine_encode_begin/step). Without them a snapshot is one encode
     * call (the stall). */
    int (*encode_begin)(void *arg, size_t chunk_bytes, nx_encode_sink sink, void *sink_arg);
    int (*encode_step)(void *arg, size_t max_bytes, nx_buf *out, bool *done);
    void (*encode_abort)(void *arg); /* drop an unfinished one (store closed) */
    void *arg;
} nx_store_ops;

typedef struct nx_store_recovery {
    uint64_t snapshot_lsn;     /* LSN of the snapshot loaded, 0 if none */
    uint32_t snapshots_found;
    uint32_t snapshots_bad;    /* skipped: corrupt or refused by ops.load */
    uint64_t snapshot_raw_bytes;
    nx_wal_recovery wal;
    double snapshot_ms;        /* read + decompress + load */
    double total_ms;
} nx_store_recovery;

typedef struct nx_store_stats {
    uint64_t snapshots;        /* written since open */
    uint64_t snapshot_failures;
    uint64_t last_snapshot_lsn;
    double last_encode_ms;     /* the shard-thread stall: the whole encode, or with
                                * incremental encoding the longest step */
    double last_encode_total_ms; /* incremental: the steps' sum (CPU on the shard) */
    uint32_t last_encode_steps;
    double last_write_ms;      /* background: compress + write + fsync + prune */
    double last_compress_ms;
    uint64_t last_raw_bytes, last_comp_bytes;
    uint64_t wal_segments_removed;
} nx_store_stats;

typedef struct nx_store nx_store;

int nx_store_open(const nx_store_options *opt, const nx_store_ops *ops, nx_store_recovery *rep,
                  nx_store **out);
/* Commits (with fsync) and waits for a snapshot in flight, then frees. */
void nx_store_close(nx_store *st);

int nx_store_append(nx_store *st, const nx_wal_record *r, uint64_t *lsn);
int nx_store_commit(nx_store *st, bool sync, uint64_t *durable);
/* nx_wal_sync_behind: write, and fdatasync on a helper thread. */
int nx_store_sync_behind(nx_store *st);
uint64_t nx_store_written_lsn(const nx_store *st);
uint64_t nx_store_durable_lsn(const nx_store *st);
uint64_t nx_store_last_lsn(const nx_store *st);
nx_wal *nx_store_wal(nx_store *st);

/* Housekeeping between wakeups: collects a finished snapshot (then deletes
 * the WAL segments older than the oldest snapshot kept) and starts a new one
 * when requested or due. Returns an error only for a failed encode. */
int nx_store_tick(nx_store *st, int64_t now_ms);
/* Where snapshot pieces come from when the writer has none to give back
 * (nx_snapshotter_set_piece_alloc). */
void nx_store_set_piece_alloc(nx_store *st, void *(*alloc)(void *arg, size_t bytes), void *arg);
/* Thread-safe: the next tick starts a snapshot regardless of the policy. */
void nx_store_request_snapshot(nx_store *st);
/* Shard thread: encode now and hand it to the writer; wait = block until it
 * is on disk (tests, shutdown, admin). NX_EEXIST if one is in flight and
 * !wait. */
int nx_store_snapshot_now(nx_store *st, bool wait);
/* Thread-safe: number of snapshots completed (successfully) since open. */
uint64_t nx_store_snapshots_done(const nx_store *st);
/* True while an incremental snapshot encode is in progress (the owner
 * should tick often: each tick encodes one step). */
bool nx_store_encoding(const nx_store *st);
void nx_store_get_stats(const nx_store *st, nx_store_stats *out);

/* ---- offline verify (nexus admin verify) -------------------------------- */

typedef struct nx_store_verify_report {
    uint32_t shards;
    uint64_t segments, records, wal_bytes;
    uint64_t bad_segments, torn_bytes, gaps;
    uint64_t snapshots, bad_snapshots;
    uint64_t problems;  /* number of problem lines written */
} nx_store_verify_report;

/* Checks every shard-<i> directory under data_dir: every WAL segment and
 * record, and every snapshot (fully decompressed and CRC-checked). Writes
 * one line per shard and per problem to out (may be NULL). Read-only.
 * Returns 0 if everything is valid (a torn tail in a WAL's last segment is
 * reported but is what a crash leaves, and recovery cuts it: still 0),
 * NX_ECORRUPT if anything else is wrong, NX_ENOENT if data_dir is missing. */
int nx_store_verify(const char *data_dir, nx_store_verify_report *rep, FILE *out);

#endif /* NX_STORE_H */
