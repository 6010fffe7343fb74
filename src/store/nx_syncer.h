/*
 * nx_syncer.h — fdatasync() on a helper thread, in order.
 *
 * Why: a shard thread that calls fdatasync() itself stops for as long as
 * the device takes — 6 to 13 ms per call measured on this project's VMs,
 * once per --wal-sync-interval per shard — and every query that reaches the
 * shard meanwhile waits too (it made most of bench/ingest.sh's query p99).
 * The WAL's periodic sync of fire-and-forget traffic needs nobody to wait
 * for it: it only bounds what a power loss can take. So the WAL hands it to
 * a syncer and goes on writing.
 *
 * How: a FIFO of up to NX_SYNCER_QUEUE requests {file, lsn}, each holding
 * its own dup() of the file descriptor (the WAL may close or rotate its fd
 * meanwhile; fdatasync of the dup syncs the same file). One thread takes the
 * requests in order, fdatasync()s, closes the dup and publishes the
 * request's lsn. Requests end in order, so "done_lsn = L" means every file
 * queued up to L is on stable storage — the WAL's durable_lsn invariant.
 * A request for the same file as the last one still waiting replaces its
 * lsn (coalescing: a slow device sees one sync per file, not a backlog).
 *
 * It also unlinks files nothing needs any more (WAL segments covered by a
 * snapshot), in the same order.
 *
 * After a sync it can drop the file's cached pages below a given offset
 * (posix_fadvise DONTNEED: clean pages only, whole pages only). A WAL is
 * written once and read only by recovery, and in a VM a write into a fresh
 * page-cache page costs like a first touch of guest memory: at 2.3M lines/s
 * the pwrite copy (copy_folio_from_iter_atomic) was 13.5% of the shards'
 * CPU, 2.5% once synced WAL pages were handed back and their frames reused.
 *
 * Errors: a failed fdatasync is sticky (nx_syncer_failed), as a failed
 * inline one is for the WAL: after it, nothing is claimed durable again.
 *
 * Thread safety: one producer (the WAL's owner thread) calls push, wait_idle
 * and destroy; done_lsn and failed may be read from anywhere.
 */
#ifndef NX_SYNCER_H
#define NX_SYNCER_H

#include <stdint.h>

#define NX_SYNCER_QUEUE 8

typedef struct nx_syncer nx_syncer;

/* Starts the thread. NX_ENOMEM, or NX_EIO if the thread cannot start. */
int nx_syncer_create(nx_syncer **out);
/* Queues fdatasync of fd's file that makes everything up to lsn durable
 * (file_id names the file, for coalescing); once it succeeded, the file's
 * cached pages below clean_end are dropped (0: none). Returns 0 when
 * queued, 1 when the queue is full, NX_EIO after a failure, or an
 * errno-derived error if dup() fails: on anything but 0 the caller syncs
 * inline (after nx_syncer_wait_idle, to keep the order). */
int nx_syncer_push(nx_syncer *s, int fd, uint64_t file_id, uint64_t lsn, uint64_t clean_end);
/* The same with fsync() (directories: a new file's entry). */
int nx_syncer_push_fsync(nx_syncer *s, int fd, uint64_t file_id, uint64_t lsn);
/* Queues unlink(path) (a file nothing needs any more, e.g. a WAL segment a
 * snapshot covers: unlinking 64 MiB files took the shard ~30 ms each); it
 * moves no lsn, and a failure is only counted. Same returns as push. */
int nx_syncer_push_unlink(nx_syncer *s, const char *path);
uint64_t nx_syncer_unlink_failed(const nx_syncer *s);
/* Highest lsn whose request (and every one before it) completed. */
uint64_t nx_syncer_done_lsn(const nx_syncer *s);
/* NX_EIO once an fdatasync failed, else 0. */
int nx_syncer_failed(const nx_syncer *s);
/* Returns when no request is queued or running. */
void nx_syncer_wait_idle(nx_syncer *s);
/* Finishes the queued requests, stops the thread, frees. NULL is a no-op. */
void nx_syncer_destroy(nx_syncer *s);

#endif
