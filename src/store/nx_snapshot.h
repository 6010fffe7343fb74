/*
 * nx_snapshot.h — snapshot files of one shard's engine state, and the
 * background thread that compresses and writes them.
 *
 * A snapshot is <dir>/snap-<lsn, 20 digits>.nxs: a checksummed header plus
 * the zstd-compressed bytes of nx_engine_encode() (to this module they are an
 * opaque blob), covering exactly the WAL records with lsn <= the snapshot's
 * lsn. Files are written atomically: a temporary file, write, fsync, rename,
 * fsync of the directory; a crash leaves either the old set of snapshots or
 * the new one, plus at worst a stray temporary file that the next prune
 * removes. Byte layout at the top of nx_snapshot.c.
 *
 * The engine is not thread-safe, so encoding happens on the shard thread;
 * everything after that (compress, write, fsync, rename, prune) runs on an
 * nx_snapshotter thread, so the shard stalls only for the encode. The
 * encoding can be streamed to the thread in pieces as it is produced.
 */
#ifndef NX_SNAPSHOT_H
#define NX_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nexus.h"
#include "store/nx_store_util.h"

#define NX_SNAP_KEEP_DEFAULT 2
#define NX_SNAP_ZSTD_LEVEL_DEFAULT 3

typedef struct nx_snapshot_meta {
    uint32_t shard;
    uint64_t lsn;       /* WAL records with lsn <= this are included */
    uint64_t raw_len;   /* bytes of the engine encoding */
    uint64_t comp_len;  /* bytes after zstd */
} nx_snapshot_meta;

/* dir/snap-<lsn>.nxs into out. */
void nx_snapshot_path(char *out, size_t n, const char *dir, uint64_t lsn);

/* Compresses raw and writes it atomically as dir/snap-<lsn>.nxs. */
int nx_snapshot_write(const char *dir, uint32_t shard, uint64_t lsn, const uint8_t *raw,
                      size_t n, int zstd_level, nx_snapshot_meta *meta);

/* Reads and fully validates a snapshot file (header CRC, sizes, zstd frame,
 * CRC of the decompressed bytes); on success raw holds the engine bytes
 * (caller frees with nx_buf_free). NX_ECORRUPT / NX_EVERSION / NX_EIO. */
int nx_snapshot_read(const char *path, nx_buf *raw, nx_snapshot_meta *meta);

/* The LSNs of dir's snapshot files, NEWEST FIRST (*lsns: caller frees). */
int nx_snapshot_list(const char *dir, uint64_t **lsns, size_t *n);

/* Keeps the newest `keep` snapshots, deletes older ones and stray temporary
 * files; *oldest_kept (may be NULL) receives the LSN of the oldest snapshot
 * kept (0 if none), the bound up to which WAL segments may be deleted. */
int nx_snapshot_prune(const char *dir, size_t keep, uint64_t *oldest_kept);

/* ---- background writer -------------------------------------------------- */

typedef struct nx_snapshot_result {
    int rc;             /* 0 or the NX_E* code of the failed write */
    nx_snapshot_meta meta;
    uint64_t oldest_kept; /* after pruning; 0 if the write failed */
    double write_ms;    /* compress + write + fsync + rename + prune */
    double compress_ms;
} nx_snapshot_result;

typedef struct nx_snapshotter nx_snapshotter;

int nx_snapshotter_start(const char *dir, uint32_t shard, int zstd_level, size_t keep,
                         nx_store_log_fn log, void *log_arg, nx_snapshotter **out);
/* A snapshot streamed in pieces: begin (NX_EEXIST while the previous one
 * is still pending), any number of appends, then end. The thread
 * compresses and writes each piece as it comes, so the whole encoding
 * never has to exist in memory.
 * append: ownership of the piece's memory moves to the thread; *piece is
 *   replaced by an empty buffer, with the capacity of a piece the thread
 *   is done with when it has one (encode into it: warm pages). NX_EINVAL
 *   when no snapshot is open for pieces.
 * end(abort = false): the pieces so far are the whole encoding; the file
 *   is finished, synced and renamed into place, and poll reports it.
 * end(abort = true): the snapshot is dropped (its temporary file too);
 *   poll reports nothing for it. */
int nx_snapshotter_begin(nx_snapshotter *s, uint64_t lsn);
int nx_snapshotter_append(nx_snapshotter *s, nx_buf *piece);
/* When the thread has no piece to give back, append hands back a buffer of
 * `bytes` from alloc(arg, bytes) instead of an empty one (memory that
 * free() and realloc() accept; NULL from alloc: an empty buffer, as
 * without). nexusd passes an allocator on 4 KiB pages
 * (nx_prefault_piece_alloc): fresh pieces from the shard's huge-page heap
 * cost one ~5 ms fault each. Call before the first snapshot. */
void nx_snapshotter_set_piece_alloc(nx_snapshotter *s, void *(*alloc)(void *arg, size_t bytes),
                                    void *arg, size_t bytes);
void nx_snapshotter_end(nx_snapshotter *s, bool abort);
/* begin + append + end: hands a whole encoding to the thread (ownership
 * of raw's memory moves: raw is reset to empty). NX_EEXIST if the
 * previous one is still pending (raw is left untouched then). */
int nx_snapshotter_submit(nx_snapshotter *s, nx_buf *raw, uint64_t lsn);
/* True while a snapshot is pending (begun and not yet finished). */
bool nx_snapshotter_busy(nx_snapshotter *s);
/* If a write finished since the last poll, fills *res and returns true.
 * Cheap when nothing finished (one atomic load, no lock). */
bool nx_snapshotter_poll(nx_snapshotter *s, nx_snapshot_result *res);
/* Waits for an ended snapshot (if any) to be written. One still open for
 * pieces is not waited for: only its owner can end it. */
void nx_snapshotter_wait(nx_snapshotter *s);
/* Finishes an ended snapshot, drops one still open for pieces, stops the
 * thread, frees. */
void nx_snapshotter_stop(nx_snapshotter *s);

#endif /* NX_SNAPSHOT_H */
