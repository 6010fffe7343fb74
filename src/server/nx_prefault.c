/*
 * nx_prefault.c — per-shard jemalloc arenas over pre-populated reservations
 * (see nx_prefault.h for why and the trade-offs).
 *
 * Invariants, per region (one per shard):
 *   - base is 2 MB aligned; [base, base + size) is one MAP_NORESERVE
 *     read-write private anonymous mapping that lives until exit;
 *   - `handed` only grows (CAS in the alloc hook, which any thread allocating
 *     from the arena may run); [base, base + handed) belongs to jemalloc;
 *   - `ready` only grows and is written by the background thread alone;
 *     [base, base + ready) has been populated once (jemalloc may have purged
 *     parts of it since; populating is never repeated);
 *   - memory past `handed` has never been written, so the alloc hook can
 *     report it zeroed whether or not it was populated.
 * The hooks struct is the region's first member: a hook finds its region
 * from the extent_hooks_t pointer jemalloc passes back.
 */
#include "server/nx_prefault.h"
#include "common/nx_clock.h"
#include "server/nx_rt.h"
#include "nexus.h"

#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NX_PF_CHUNK (2u << 20)            /* populate step: one huge page */
#define NX_PF_RESERVE (64ull << 30)       /* virtual bytes per shard */
#define NX_PF_GROW_MAX (32u << 20)        /* jemalloc's largest grow step */
#define NX_PF_IDLE_NS 2000000             /* background sleep when all are ready */
#define NX_PF_TOTAL_MAX (1ull << 30)      /* populated-ahead bytes over all shards */

typedef int (*nx_mallctl_fn)(const char *, void *, size_t *, void *, size_t);

typedef struct nx_pf_region {
    extent_hooks_t hooks; /* first: hooks receive &hooks */
    uint8_t *base;
    size_t size;
    _Atomic size_t handed;
    _Atomic size_t ready;
    _Atomic uint64_t fallback;
    _Atomic uint64_t purged; /* bytes jemalloc gave back to the kernel */
    unsigned arena;
} nx_pf_region;

typedef void *(*nx_mallocx_fn)(size_t, int);

struct nx_prefault {
    int n;
    size_t ahead;
    int rt_prio;    /* SCHED_FIFO priority of the thread, 0 = SCHED_IDLE */
    int huge_pages; /* shard heaps on transparent huge pages */
    nx_mallctl_fn mallctl;
    nx_mallocx_fn mallocx;
    extent_hooks_t piece_hooks;
    unsigned piece_arena;
    bool has_piece_arena;
    nx_pf_region **regions;
    pthread_t thr;
    bool thr_started;
    _Atomic bool stop;
};

static inline nx_pf_region *region_of(extent_hooks_t *h)
{
    return (nx_pf_region *)h;
}

/* mmap of `size` bytes aligned to `alignment` (power of two, >= page). */
static void *mmap_aligned(size_t size, size_t alignment)
{
    size_t len = size + alignment;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)p + alignment - 1) & ~(uintptr_t)(alignment - 1);
    uint8_t *q = (uint8_t *)a;
    if (q > p)
        munmap(p, (size_t)(q - p));
    if (q + size < p + len)
        munmap(q + size, (size_t)(p + len - (q + size)));
    return q;
}

/* ---- extent hooks ---------------------------------------------------------- */

static void *hook_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment,
                        bool *zero, bool *commit, unsigned arena_ind)
{
    (void)arena_ind;
    nx_pf_region *r = region_of(h);
    if (new_addr)
        return NULL; /* no in-place growth: jemalloc then allocates elsewhere */
    if (alignment < 4096)
        alignment = 4096;
    size_t cur = atomic_load_explicit(&r->handed, memory_order_relaxed), off;
    do {
        off = (cur + alignment - 1) & ~(alignment - 1);
        if (off > r->size || size > r->size - off) {
            void *p = mmap_aligned(size, alignment); /* reservation used up */
            if (!p)
                return NULL;
            atomic_fetch_add_explicit(&r->fallback, size, memory_order_relaxed);
            *zero = true;
            *commit = true;
            return p;
        }
    } while (!atomic_compare_exchange_weak_explicit(&r->handed, &cur, off + size,
                                                    memory_order_release, memory_order_relaxed));
    *zero = true; /* never written before: fresh or populated zero pages */
    *commit = true;
    return r->base + off;
}

/* Never unmap: jemalloc keeps the extent as retained and reuses it. */
static bool hook_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed,
                        unsigned arena_ind)
{
    (void)h, (void)addr, (void)size, (void)committed, (void)arena_ind;
    return true;
}

static void hook_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed,
                         unsigned arena_ind)
{
    (void)h, (void)addr, (void)size, (void)committed, (void)arena_ind;
}

/* jemalloc's purge hooks: false = done. */
static bool madvise_part(void *addr, size_t offset, size_t length, int advice)
{
    return madvise((uint8_t *)addr + offset, length, advice) != 0;
}

static bool purge(extent_hooks_t *h, void *addr, size_t offset, size_t length, int advice)
{
    atomic_fetch_add_explicit(&region_of(h)->purged, length, memory_order_relaxed);
    return madvise_part(addr, offset, length, advice);
}

static bool hook_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t offset,
                            size_t length, unsigned arena_ind)
{
    (void)size, (void)arena_ind;
    return purge(h, addr, offset, length, MADV_FREE);
}

static bool hook_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t offset,
                              size_t length, unsigned arena_ind)
{
    (void)size, (void)arena_ind;
    return purge(h, addr, offset, length, MADV_DONTNEED);
}

/* Split and merge only change jemalloc's bookkeeping: one mapping underneath. */
static bool hook_split(extent_hooks_t *h, void *addr, size_t size, size_t size_a, size_t size_b,
                       bool committed, unsigned arena_ind)
{
    (void)h, (void)addr, (void)size, (void)size_a, (void)size_b, (void)committed, (void)arena_ind;
    return false;
}

static bool hook_merge(extent_hooks_t *h, void *addr_a, size_t size_a, void *addr_b, size_t size_b,
                       bool committed, unsigned arena_ind)
{
    (void)h, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b, (void)committed,
        (void)arena_ind;
    return false;
}

/* ---- the snapshot piece arena (4 KiB pages) -------------------------------- */

/*
 * Snapshot pieces (~1.25 MiB each) are fresh memory whenever the snapshot
 * writer lags behind the shard's copy-on-write encodes, which is most of a
 * snapshot under load. From a shard arena each one cost a 2 MB huge-page
 * fault of ~5 ms on the shard (this VM zeroes huge pages at ~0.75 GB/s): the
 * query p99 during snapshots. This arena maps its extents with
 * MADV_NOHUGEPAGE, so a piece is faulted in 4 KiB at a time (~2 GB/s, no
 * single long stall); pieces are transient, so huge pages bought nothing.
 * Extents are retained and reused by jemalloc, like the shard arenas'.
 */
static void *piece_hook_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment,
                              bool *zero, bool *commit, unsigned arena_ind)
{
    (void)h, (void)arena_ind;
    if (new_addr)
        return NULL;
    void *p = mmap_aligned(size, alignment < 4096 ? 4096 : alignment);
    if (!p)
        return NULL;
    (void)madvise(p, size, MADV_NOHUGEPAGE);
    *zero = true;
    *commit = true;
    return p;
}

static bool piece_hook_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t offset,
                                  size_t length, unsigned arena_ind)
{
    (void)h, (void)size, (void)arena_ind;
    return madvise_part(addr, offset, length, MADV_FREE);
}

static bool piece_hook_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t offset,
                                    size_t length, unsigned arena_ind)
{
    (void)h, (void)size, (void)arena_ind;
    return madvise_part(addr, offset, length, MADV_DONTNEED);
}

static void piece_arena_create(nx_prefault *p)
{
    p->mallocx = (nx_mallocx_fn)dlsym(RTLD_DEFAULT, "mallocx");
    if (!p->mallocx)
        return;
    p->piece_hooks = (extent_hooks_t){
        .alloc = piece_hook_alloc,
        .dalloc = hook_dalloc, /* retained, reused */
        .destroy = hook_destroy,
        .purge_lazy = piece_hook_purge_lazy,
        .purge_forced = piece_hook_purge_forced,
        .split = hook_split,
        .merge = hook_merge,
    };
    extent_hooks_t *hp = &p->piece_hooks;
    size_t sz = sizeof p->piece_arena;
    p->has_piece_arena = p->mallctl("arenas.create", &p->piece_arena, &sz, &hp, sizeof hp) == 0;
}

void *nx_prefault_piece_alloc(void *arg, size_t size)
{
    nx_prefault *p = arg;
    if (!p || !p->has_piece_arena)
        return NULL;
    return p->mallocx(size, (int)(MALLOCX_ARENA(p->piece_arena) | MALLOCX_TCACHE_NONE));
}

/* ---- background populating ------------------------------------------------- */

/*
 * Faults [p, p + len) in with one atomic "or 0" per 4 KiB page: a write
 * fault (the page is allocated and zeroed, a 2 MB huge page at once where
 * THP applies) that never changes a byte, so it is harmless on a page the
 * shard was handed and is writing meanwhile. Not MADV_POPULATE_WRITE: that
 * holds the process's mmap_lock for reading while it zeroes, and this thread
 * runs at SCHED_IDLE, so it was preempted holding it; every mmap, munmap or
 * madvise(MADV_HUGEPAGE) of another thread (jemalloc's, a shard's, the
 * snapshot writer's) then queued behind it, for 60-525 ms under ingest load
 * (perf trace), long enough for the shards' UDP queues to overflow. A page
 * fault takes only the faulting mapping's own lock (per-VMA locking), which
 * nobody else's mmap or madvise needs. The cost: out of memory is now the
 * kernel's OOM handling, as for the shard's own first touch of the page a
 * moment later, where MADV_POPULATE_WRITE returned ENOMEM.
 */
static void touch_pages(uint8_t *p, size_t len)
{
    for (size_t off = 0; off < len; off += 4096)
        __atomic_fetch_or(p + off, (uint8_t)0, __ATOMIC_RELAXED);
}

/* One step for one region: populates the next chunk if it is behind. */
static bool populate_step(nx_pf_region *r, size_t ahead)
{
    size_t handed = atomic_load_explicit(&r->handed, memory_order_acquire);
    size_t ready = atomic_load_explicit(&r->ready, memory_order_relaxed);
    size_t want = handed > r->size - ahead ? r->size : handed + ahead;
    if (ready >= want)
        return false;
    size_t len = want - ready < NX_PF_CHUNK ? want - ready : NX_PF_CHUNK;
    touch_pages(r->base + ready, len);
    atomic_store_explicit(&r->ready, ready + len, memory_order_relaxed);
    return true;
}

static void *prefault_main(void *arg)
{
    nx_prefault *p = arg;
    pthread_setname_np(pthread_self(), "nx-prefault");
    if (p->rt_prio) { /* ahead of the shards even when no core is idle (nx_rt.h) */
        if (nx_rt_set(0, p->rt_prio, 1))
            p->rt_prio = 0;
    }
    if (!p->rt_prio) {
        struct sched_param sp = {.sched_priority = 0};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp); /* idle CPU only */
    }
    while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
        int64_t t0 = nx_mono_ns();
        bool busy = false;
        for (int i = 0; i < p->n; i++)
            busy |= populate_step(p->regions[i], p->ahead);
        int64_t pause = NX_PF_IDLE_NS;
        if (busy) /* real-time: sleep as long as we ran, so that a core never
                   * gives us more than half its time (a shard pinned there
                   * would starve: 570 ms once, catching up 96 MB); at
                   * SCHED_IDLE there is nothing to leave to anyone */
            pause = p->rt_prio ? nx_mono_ns() - t0 : 0;
        if (pause > 0) {
            struct timespec ts = {pause / 1000000000, pause % 1000000000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- setup ------------------------------------------------------------------ */

static int region_create(nx_prefault *p, nx_pf_region **out)
{
    nx_pf_region *r = calloc(1, sizeof *r);
    if (!r)
        return NX_ENOMEM;
    r->hooks = (extent_hooks_t){
        .alloc = hook_alloc,
        .dalloc = hook_dalloc,
        .destroy = hook_destroy,
        .commit = NULL, /* memory is always committed: */
        .decommit = NULL, /* opt out of decommit */
        .purge_lazy = hook_purge_lazy,
        .purge_forced = hook_purge_forced,
        .split = hook_split,
        .merge = hook_merge,
    };
    r->size = NX_PF_RESERVE;
    r->base = mmap_aligned(r->size, NX_PF_CHUNK);
    if (!r->base) {
        free(r);
        return NX_ENOMEM;
    }
    /* see nx_prefault.h, "Page size"; NOHUGEPAGE also when the system's
     * THP mode is "always" */
    (void)madvise(r->base, r->size, p->huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    extent_hooks_t *hp = &r->hooks;
    size_t sz = sizeof r->arena;
    if (p->mallctl("arenas.create", &r->arena, &sz, &hp, sizeof hp)) {
        munmap(r->base, r->size);
        free(r);
        return NX_EIO;
    }
    /* bound what is handed out but unused: jemalloc's retained-extent growth
     * is geometric by default */
    char name[64];
    size_t lim = NX_PF_GROW_MAX;
    snprintf(name, sizeof name, "arena.%u.retain_grow_limit", r->arena);
    (void)p->mallctl(name, NULL, NULL, &lim, sizeof lim);
    *out = r;
    return 0;
}

int nx_prefault_create(int nshards, const nx_prefault_opts *opts, nx_prefault **out,
                       const char **why)
{
    size_t ahead_bytes = opts->ahead_bytes;
    *out = NULL;
    *why = NULL;
    if (ahead_bytes == 0) {
        *why = "disabled (--prefault-ahead 0)";
        return 0;
    }
    nx_mallctl_fn mallctl = (nx_mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    if (!mallctl) {
        *why = "the allocator is not jemalloc";
        return 0;
    }
    nx_prefault *p = calloc(1, sizeof *p);
    if (!p)
        return NX_ENOMEM;
    p->n = nshards;
    p->rt_prio = opts->rt_prio;
    p->huge_pages = opts->huge_pages;
    /* many shards share the cap, so a 64-core box does not fault in 4 GiB
     * of unused heap at start */
    if ((uint64_t)ahead_bytes * (uint64_t)nshards > NX_PF_TOTAL_MAX)
        ahead_bytes = (size_t)(NX_PF_TOTAL_MAX / (uint64_t)nshards);
    p->ahead = (ahead_bytes + NX_PF_CHUNK - 1) & ~(size_t)(NX_PF_CHUNK - 1);
    p->mallctl = mallctl;
    p->regions = calloc((size_t)nshards, sizeof *p->regions);
    if (!p->regions) {
        free(p);
        return NX_ENOMEM;
    }
    for (int i = 0; i < nshards; i++) {
        int rc = region_create(p, &p->regions[i]);
        if (rc) {
            /* regions already registered with jemalloc stay (arenas cannot
             * be unhooked); nothing is bound to them */
            *why = rc == NX_ENOMEM ? "cannot reserve address space" : "arenas.create failed";
            p->n = i;
            nx_prefault_destroy(p);
            return 0;
        }
    }
    piece_arena_create(p); /* without it pieces come from the shard arenas */
    if (pthread_create(&p->thr, NULL, prefault_main, p)) {
        *why = "cannot start the background thread";
        nx_prefault_destroy(p);
        return 0;
    }
    p->thr_started = true;
    *out = p;
    return 0;
}

int nx_prefault_bind(nx_prefault *p, int shard)
{
    if (!p || shard < 0 || shard >= p->n)
        return 0;
    unsigned a = p->regions[shard]->arena;
    return p->mallctl("thread.arena", NULL, NULL, &a, sizeof a) ? NX_EIO : 0;
}

void nx_prefault_get_stats(const nx_prefault *p, int shard, nx_prefault_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!p || shard < 0 || shard >= p->n)
        return;
    nx_pf_region *r = p->regions[shard];
    out->handed = atomic_load_explicit(&r->handed, memory_order_relaxed);
    out->ready = atomic_load_explicit(&r->ready, memory_order_relaxed);
    out->fallback = atomic_load_explicit(&r->fallback, memory_order_relaxed);
    out->failed = 0; /* touching cannot be refused (touch_pages) */
    out->purged = atomic_load_explicit(&r->purged, memory_order_relaxed);
}

void nx_prefault_destroy(nx_prefault *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    if (p->thr_started)
        pthread_join(p->thr, NULL);
    /* the regions (and their hooks) stay: jemalloc arenas point at them */
}
