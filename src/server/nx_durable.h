/*
 * nx_durable.h — a shard's durability glue: the engine side of src/store.
 *
 * src/store knows nothing about engines; this file owns one nx_store per
 * shard and supplies its three callbacks (load = nx_engine_decode and swap
 * the shard's engine, apply = the WAL record as an nx_batch through the same
 * nx_applier_apply as live traffic, encode = nx_engine_encode). It also
 * keeps the batches waiting for an ack and releases them at the end of each
 * shard loop iteration (group commit):
 *
 *   per batch (nx_shard_submit):  nx_durable_log()   WAL append FIRST
 *                                 apply to the engine
 *                                 nx_durable_park()  (waiter, lsn, mode)
 *   end of iteration:             nx_durable_flush() one write(), and one
 *                                 fdatasync() when a durable waiter is parked
 *                                 or un-synced data is older than
 *                                 --wal-sync-interval; then every waiter is
 *                                 answered (0, or the commit's error); then
 *                                 nx_store_tick() (snapshots, WAL cleanup)
 *
 * Every parked waiter is answered within the iteration that parked it, so
 * nothing survives between iterations and no list grows unbounded. With an
 * empty data dir (--data-dir off) durability is disabled: nothing is
 * logged, waiters are answered at the end of the iteration with rc 0.
 *
 * Shard thread only, except nx_durable_stats() readers (relaxed atomics).
 */
#ifndef NX_DURABLE_H
#define NX_DURABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "nexus.h"
#include "server/nx_apply.h"
#include "server/nx_config.h"

/* When an ingest batch is acknowledged. */
typedef enum nx_ack_mode {
    NX_ACK_NONE = 0,    /* fire and forget (UDP, StatsD TCP): nobody is told */
    NX_ACK_APPLIED = 1, /* applied + WAL record written to the kernel: survives kill -9 */
    NX_ACK_DURABLE = 2, /* + fdatasync'ed: survives power loss */
} nx_ack_mode;

/* Completion of an acked batch, called once on the shard thread: rc 0 or
 * the WAL's error (NX_ENOSPC, NX_EIO); lsn = the batch's WAL position (0
 * when durability is off). */
typedef void (*nx_ack_fn)(void *arg, int rc, uint64_t lsn);

typedef struct nx_durable_stats {
    _Atomic uint64_t last_lsn;      /* highest LSN appended */
    _Atomic uint64_t durable_lsn;   /* highest LSN fdatasync'ed */
    _Atomic uint64_t commits, syncs;
    _Atomic uint64_t refused;       /* acked batches refused (not applied, error answered) */
    _Atomic uint64_t failed_acks;   /* acked batches answered with a commit error */
    _Atomic uint64_t unlogged;      /* fire-and-forget batches applied without a WAL record */
    _Atomic uint64_t snapshots;     /* written since start */
    _Atomic uint64_t snapshot_lsn;  /* newest snapshot (recovered or written) */
    _Atomic uint64_t recovery_us;   /* time nx_store_open took */
    _Atomic uint64_t replayed;      /* WAL batches replayed at start */
} nx_durable_stats;

typedef struct nx_durable nx_durable;

/* Recovers the shard (snapshot + WAL tail) into *engine (swapped when a
 * snapshot is loaded; the applier's engine pointer follows). */
int nx_durable_open(const nx_config *cfg, int shard, nx_engine **engine, nx_applier *ap,
                    nx_durable **out);
/* Commits (fsync) and frees; answers nothing (call nx_durable_flush first). */
void nx_durable_close(nx_durable *d);

bool nx_durable_enabled(const nx_durable *d);
/* Snapshot pieces from alloc when the writer has none to give back
 * (nx_store_set_piece_alloc); no-op without durability. */
void nx_durable_set_piece_alloc(nx_durable *d, void *(*alloc)(void *arg, size_t bytes), void *arg);
/* WAL append; *lsn = its LSN. NX_ENOSPC / NX_EIO / NX_ETOOBIG on refusal. */
int nx_durable_log(nx_durable *d, const nx_batch *b, uint64_t *lsn);
/* Counts (and logs, rate-limited) a batch the WAL refused: acked ones are
 * refused, fire-and-forget ones applied in memory only ("unlogged"). */
void nx_durable_note_refused(nx_durable *d, int rc, bool acked);
/* Parks an ack until the end of the iteration. NX_ENOMEM if no room. */
int nx_durable_park(nx_durable *d, uint64_t lsn, nx_ack_mode mode, nx_ack_fn fn, void *arg);
/* End of a loop iteration: group commit, answer every parked ack, tick. */
void nx_durable_flush(nx_durable *d, int64_t now_ms);
/* epoll timeout that keeps the sync interval and the snapshot policy. */
int nx_durable_timeout_ms(const nx_durable *d);
/* Snapshot now and wait until it is on disk (admin, clean shutdown).
 * only_if_grown: skip (return 0) when nothing was logged since the newest
 * snapshot. *lsn (may be NULL) = the LSN the snapshot covers. */
int nx_durable_snapshot(nx_durable *d, bool only_if_grown, uint64_t *lsn);
const nx_durable_stats *nx_durable_get_stats(const nx_durable *d);
/* NX_EINVAL (logged) when data_dir holds shard-<i> with i >= nshards: its
 * WAL and snapshots would be silently ignored. */
int nx_durable_check_layout(const char *data_dir, int nshards);

#endif
