/*
 * nx_wal.h — one shard's write-ahead log of ingested batches.
 *
 * The WAL logs BATCHES (one datagram / one TCP frame / one HTTP body), not
 * events, so one record costs one memcpy into the group buffer. Every record
 * gets a dense log sequence number (LSN, starting at 1; 0 means "nothing").
 *
 * Group commit, as the shard loop uses it:
 *
 *     nx_wal_append(w, &rec, &lsn)      for each batch received this wakeup
 *                                       (memcpy into the group buffer; a
 *                                        write() only when the buffer fills)
 *     ... apply the batch to the engine, remember (waiter, lsn) ...
 *     nx_wal_commit(w, sync, &durable)  once at the end of the wakeup:
 *                                       one write() of the buffer, and one
 *                                       fdatasync() when sync is true
 *     release every waiter with lsn <= durable (ack=durable) or
 *     lsn <= nx_wal_written_lsn(w) (ack=applied, once written to the kernel)
 *
 * Failure (ENOSPC, EIO, EFBIG on write): the WAL cuts the segment back to the
 * last whole record, forgets the records that did not reach the file (the
 * next append reuses their LSNs, so the log stays dense) and returns
 * NX_ENOSPC / NX_EIO; the caller must refuse (not ack) every batch with an
 * LSN above nx_wal_written_lsn(). A failed fdatasync() is different: the
 * kernel may have dropped dirty pages, so nothing written since the last good
 * sync can be trusted; the WAL becomes failed (every later call returns
 * NX_EIO) until the process restarts and recovers from disk ("fsyncgate").
 *
 * On disk: <dir>/wal-<first lsn, 20 digits>.log, append-only segments. Byte
 * layouts are documented at the top of nx_wal.c. Opening a WAL is also its
 * recovery: nx_wal_open() validates every segment, replays the records after
 * a given LSN through a callback, cuts a torn or corrupt tail off (logged;
 * never replayed) and positions the writer after the last valid record.
 */
#ifndef NX_WAL_H
#define NX_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nexus.h"
#include "store/nx_store_util.h"

#define NX_WAL_SEGMENT_DEFAULT (64u << 20)   /* bytes per segment file */
/* group-commit buffer: a full one is written from the middle of a batch,
 * and a 1 MiB pwrite() into fresh page cache took the shard 1-2 ms (this
 * VM's first touches), which a query arriving then waited out; 64 KiB
 * writes cost ~16x the syscalls (~1,000/s per shard at 3.5M lines/s) and
 * took the query p99 at 3.7M lines/s from 1.53-1.61 to 0.96-1.38 ms
 * (docs/benchmarks.md, twenty-first session) */
#define NX_WAL_BUFFER_DEFAULT (64u << 10)
#define NX_WAL_MAX_PAYLOAD (64u << 20)       /* larger batches are refused */
#define NX_WAL_MAX_TENANT 255

typedef struct nx_wal_options {
    uint64_t segment_bytes; /* rotate when a segment would exceed this; 0 = default */
    size_t buffer_bytes;    /* group buffer; 0 = default */
    uint32_t shard;         /* written into segment headers, checked on open */
    nx_store_log_fn log;
    void *log_arg;
} nx_wal_options;

/* One logged batch. On replay the pointers point into a read buffer that is
 * valid only during the callback. */
typedef struct nx_wal_record {
    uint64_t lsn;        /* filled by append / replay */
    int64_t recv_ms;     /* receive time: the "now" the batch was applied at */
    uint8_t format;      /* ingest format (StatsD text, NXB, ...), opaque here */
    uint8_t source;      /* listener kind, opaque here */
    uint8_t tenant_len;  /* default tenant of the listener (may be 0) */
    const char *tenant;
    const uint8_t *payload;
    uint32_t payload_len;
} nx_wal_record;

/* Called for each replayed record in LSN order; non-zero aborts the open. */
typedef int (*nx_wal_replay_fn)(void *arg, const nx_wal_record *r);

typedef struct nx_wal_recovery {
    uint64_t segments;     /* segment files found */
    uint64_t records;      /* valid records found */
    uint64_t replayed;     /* records passed to the callback (lsn > after) */
    uint64_t first_lsn;    /* lowest LSN on disk (0 if none) */
    uint64_t last_lsn;     /* highest valid LSN (0 if none) */
    uint64_t truncated_bytes; /* torn / corrupt tail cut off */
    uint64_t orphaned_segments; /* segments after a corrupt one, renamed *.orphan */
    bool gap;              /* records after `after` exist but after+1 is missing */
    double ms;             /* wall time of the scan + replay */
} nx_wal_recovery;

typedef struct nx_wal nx_wal;

/*
 * Opens (creating it if needed) the WAL in `dir`, replays every valid record
 * with lsn > after_lsn through fn (may be NULL), truncates a torn or corrupt
 * tail, and returns a writer whose next LSN is max(last valid, after_lsn) + 1.
 * rec (may be NULL) receives what recovery found.
 */
int nx_wal_open(const char *dir, const nx_wal_options *opt, uint64_t after_lsn,
                nx_wal_replay_fn fn, void *arg, nx_wal_recovery *rec, nx_wal **out);
/* Writes and fdatasyncs what is buffered (best effort), then frees. */
void nx_wal_close(nx_wal *w);

/* Appends one record to the group buffer; *lsn receives its LSN. May write()
 * (buffer full) or rotate the segment. NX_ETOOBIG for an oversize payload. */
int nx_wal_append(nx_wal *w, const nx_wal_record *r, uint64_t *lsn);
/* Writes the buffer; with sync, also fdatasync()s. *durable (may be NULL)
 * receives the highest LSN known to be on stable storage. */
int nx_wal_commit(nx_wal *w, bool sync, uint64_t *durable);
/* Writes the buffer and starts an fdatasync of it on a helper thread
 * (store/nx_syncer.h), returning at once: durable_lsn moves when the sync
 * ends. For the periodic sync that nobody waits for; falls back to an
 * inline sync when the helper cannot take it. */
int nx_wal_sync_behind(nx_wal *w);

uint64_t nx_wal_next_lsn(const nx_wal *w);    /* the LSN the next append gets */
uint64_t nx_wal_last_lsn(const nx_wal *w);    /* highest LSN appended */
uint64_t nx_wal_written_lsn(const nx_wal *w); /* highest LSN in the kernel */
uint64_t nx_wal_durable_lsn(const nx_wal *w); /* highest LSN fdatasync'ed */
/* Bytes written to segments since open (for snapshot policies). */
uint64_t nx_wal_bytes_written(const nx_wal *w);
size_t nx_wal_segment_count(const nx_wal *w);

/* Deletes every segment whose records all have lsn <= covered_lsn (never the
 * segment being written). Call with the LSN of the OLDEST snapshot kept, so
 * that falling back to it still finds its WAL tail. *removed may be NULL. */
int nx_wal_remove_covered(nx_wal *w, uint64_t covered_lsn, size_t *removed);

/* ---- offline inspection (nexus admin verify) -------------------------- */

typedef struct nx_wal_verify {
    uint64_t segments, records, bytes;
    uint64_t first_lsn, last_lsn;
    uint64_t bad_segments;   /* header invalid or a bad record inside */
    uint64_t torn_bytes;     /* bytes after the last valid record of the last segment */
    bool gap;                /* LSNs not contiguous across segments */
    char problem[256];       /* first problem found, "" if none */
} nx_wal_verify;

/* Read-only check of every segment in dir (nothing is truncated). Returns 0
 * if the log is clean, NX_ECORRUPT if a problem was found (see v->problem),
 * NX_ENOENT if dir does not exist, NX_EIO on read errors. */
int nx_wal_verify_dir(const char *dir, nx_wal_verify *v);

#endif /* NX_WAL_H */
