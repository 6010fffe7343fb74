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
 * SCHED_IDLE priority (or real-time, below) keeps every reservation populated (a write fault per
 * 4 KiB page that changes no byte, 2 MB at a time; not MADV_POPULATE_WRITE,
 * which held mmap_lock while this thread was preempted, see nx_prefault.c)
 * up to `ahead` bytes past what jemalloc has been handed. Idle CPU pays the
 * first touches; when there is none, the background thread does not run and
 * the shard faults its pages itself, exactly as without this module. With
 * --realtime (nx_rt.h) the thread is SCHED_FIFO instead, below every query
 * path thread: it then keeps ahead at full load too, taking the CPU the
 * shards would have spent on those faults themselves, in 5-10 ms stalls a
 * query could wait behind.
 *
 * Trade-offs: up to `ahead` bytes per shard are resident before they are
 * used (at most NX_PF_TOTAL_MAX, 1 GiB, over all shards: more shards get
 * less each), plus at most one jemalloc grow step (capped at NX_PF_GROW_MAX) handed
 * out but not yet used; extents are never unmapped (jemalloc retains and
 * reuses them); jemalloc's decay still purges unused pages (MADV_FREE /
 * MADV_DONTNEED) as for its other arenas: keeping them instead (decay -1)
 * was measured and bought nothing (query p99 at 500k lines/s 2.0-2.2 ms vs
 * 1.4-1.5 ms with the decay, same RSS over 15 s). A reservation that is used
 * up falls back to plain mmap (no prefault) for the rest.
 *
 * Page size (--huge-pages, default no): the reservations are
 * MADV_NOHUGEPAGE. On this VM a fresh 2 MB transparent huge page takes 4-7
 * ms to fault in (0.46 GB/s), a 4 KiB page ~1.5 us (2.6-3.3 GB/s; scratch
 * test in docs/benchmarks.md, twenty-first session). A shard that outran
 * the prefault thread stalled 5-10 ms per huge page, and a query waiting on
 * it with it: at 3.5M lines/s, 4 KiB pages took the query p99 from 3.2-4.0
 * ms to 0.55-0.59 ms (4 runs each) and left the sender more CPU. Huge pages
 * save TLB misses once the state stops growing (bench_engine's counters ran
 * ~12% faster on them); --huge-pages yes brings them back.
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
 * allocator is not jemalloc, or opts->ahead_bytes is 0, *out is NULL and 0 is
 * returned (the reason is in *why, a static string). */
typedef struct nx_prefault_opts {
    size_t ahead_bytes; /* per shard (capped over all shards); 0 = off */
    int rt_prio;        /* the thread's SCHED_FIFO priority (nx_rt.h), 0 = SCHED_IDLE */
    int huge_pages;     /* shard heaps on 2 MB pages (see "Page size" above) */
} nx_prefault_opts;

int nx_prefault_create(int nshards, const nx_prefault_opts *opts, nx_prefault **out,
                       const char **why);
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
