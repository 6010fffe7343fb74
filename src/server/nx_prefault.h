/*
 * nx_prefault.h — shard heaps whose pages are faulted in ahead of use, off
 * the shard threads.
 *
 * Why: the summaries of a loaded nexusd grow for the first hour (windows fill
 * up), ~100 MB/s at 2M lines/s. Every new page is zeroed on first touch, and
 * under a hypervisor that first touch costs ~20x a native one (the host backs
 * the guest page on demand): bench/ingest.sh measured ~28% of the shard
 * threads' CPU in clear_page, in 2 MB (huge page) stalls of ~5 ms that also
 * made the query p99.
 *
 * How: when the process's allocator is jemalloc (the release nexusd links it;
 * found at run time with dlsym("mallctl"), so the ASan build and the tests,
 * on glibc malloc, simply run without), each shard thread gets its own
 * jemalloc arena whose extent hooks hand out memory from one large
 * MAP_NORESERVE reservation, bump-allocated upwards. One background thread at
 * SCHED_IDLE priority keeps every reservation populated (a write fault per
 * 4 KiB page that changes no byte, 2 MB at a time; not MADV_POPULATE_WRITE,
 * which held mmap_lock while this thread was preempted, see nx_prefault.c)
 * up to `ahead` bytes past what jemalloc has been handed. Idle CPU pays the
 * first touches; when there is none, the background thread does not run and
 * the shard faults its pages itself, exactly as without this module.
 *
 * Trade-offs: up to `ahead` bytes per shard are resident before they are
 * used (at most NX_PF_TOTAL_MAX, 1 GiB, over all shards: more shards get
 * less each), plus at most one jemalloc grow step (capped at NX_PF_GROW_MAX) handed
 * out but not yet used; extents are never unmapped (jemalloc retains and
 * reuses them); jemalloc's decay still purges unused pages (MADV_FREE /
 * MADV_DONTNEED) as for its other arenas: keeping them instead (decay -1)
 * was measured and bought nothing (query p99 at 500k lines/s 2.0-2.2 ms vs
 * 1.4-1.5 ms with the decay, same RSS over 15 s). A reservation that is used up falls back to
 * plain mmap (no prefault) for the rest.
 */
#ifndef NX_PREFAULT_H
#define NX_PREFAULT_H

#include <stddef.h>
#include <stdint.h>

typedef struct nx_prefault nx_prefault;

typedef struct nx_prefault_stats {
    uint64_t handed;    /* bytes of the reservation given to jemalloc */
    uint64_t ready;     /* bytes of the reservation populated */
    uint64_t fallback;  /* bytes served by plain mmap (reservation used up) */
    uint64_t failed;    /* always 0 since populating is by touch (kept for /v1/stats) */
    uint64_t purged;    /* bytes jemalloc returned to the kernel (MADV_FREE/DONTNEED) */
} nx_prefault_stats;

/* Sets up nshards reservations and starts the background thread. When the
 * allocator is not jemalloc, or ahead_bytes is 0, *out is NULL and 0 is
 * returned (the reason is in *why, a static string). */
int nx_prefault_create(int nshards, size_t ahead_bytes, nx_prefault **out, const char **why);
/* Makes the calling thread allocate from shard `shard`'s arena. No-op for
 * p == NULL. */
int nx_prefault_bind(nx_prefault *p, int shard);
void nx_prefault_get_stats(const nx_prefault *p, int shard, nx_prefault_stats *out);
/* A snapshot piece of `size` bytes from an arena on 4 KiB pages, freeable
 * with free() (arg: the nx_prefault); NULL when there is no such arena.
 * See nx_prefault.c, "the snapshot piece arena". */
void *nx_prefault_piece_alloc(void *arg, size_t size);
/* Stops the background thread. The reservations stay mapped: jemalloc's
 * arenas still own memory in them until the process exits. */
void nx_prefault_destroy(nx_prefault *p);

#endif
