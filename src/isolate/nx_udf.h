/*
 * nx_udf.h — tenant summarizers (UDFs) as WebAssembly isolates in-process.
 *
 * Life of a module (docs/udf.md has the ABI and the reasoning):
 *   bytes --nx_udf_validate--> checked imports/exports
 *         --nx_udf_compile[_async]--> wasm2c -> fuel/limit rewrite -> cc -O2
 *           -shared -> <cache dir>/<xxh3(wasm)>-<xxh3(glue)>.so -> dlopen
 *         = nx_udf_module (refcounted, shared by every binding of the bytes)
 *   nx_udf_instance_create(module, limits, params)   one per binding, owned
 *         by one shard thread; nx_udf_update(batch), nx_udf_result(json),
 *         nx_udf_snapshot/restore/merge.
 *
 * Threading: an nx_udf_cache may be used from any thread (a mutex guards the
 * table of loaded modules; compiles are serialised on another mutex and, in
 * the async API, run on the cache's own worker thread). An instance belongs
 * to one thread at a time (the shard that owns the binding); instances of
 * the same module in different threads run concurrently without locks.
 *
 * Containment: any trap (out-of-bounds, divide by zero, unreachable, stack
 * exhaustion, CPU budget, memory limit) returns NX_ETRAP (NX_ETIMEOUT for
 * the CPU budget), disables the instance for good and records a readable
 * error (nx_udf_instance_error); later calls return the same code at once.
 * A module returning a negative status from nx_update etc. is an error
 * (NX_EINVAL, counted) but does not disable it.
 */
#ifndef NX_UDF_H
#define NX_UDF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nexus.h"

#define NX_UDF_MAX_WASM (4u << 20)      /* upload size cap: 4 MiB          */
#define NX_UDF_MAX_OUTPUT (1u << 20)    /* result / snapshot size cap      */
#define NX_UDF_ERRLEN 256

/* One event as a module receives it (= nx_event in include/nexus_udf.h). */
typedef struct nx_udf_event {
    double value;
    int64_t ts_ms;
    double weight;
} nx_udf_event;
_Static_assert(sizeof(nx_udf_event) == 24, "wasm ABI: 24-byte events");

typedef struct nx_udf_limits {
    uint32_t max_pages;    /* linear memory cap, 64 KiB pages (256 = 16 MiB) */
    uint32_t max_depth;    /* wasm call depth (default 1000)                 */
    uint32_t stack_kib;    /* native stack a call may use (default 256 KiB)  */
    uint32_t cpu_budget_us;/* thread CPU per update batch / call (10000)     */
    uint32_t fuel_chunk;   /* loop ticks between CPU-clock reads (4096)      */
    uint32_t batch_events; /* events copied per nx_update call (1024)        */
} nx_udf_limits;

void nx_udf_limits_default(nx_udf_limits *l);

/* ---- validation --------------------------------------------------------- */

typedef struct nx_udf_info {
    uint32_t flags;        /* NX_UDF_HAS_* (src/isolate/nx_udf_rt.h)  */
    bool imports_log;      /* imports nx.log                          */
    uint32_t nfuncs;       /* defined functions                       */
} nx_udf_info;

/*
 * Checks the structure the ABI needs before anything is compiled: wasm
 * magic/version, section bounds, imports (only nx.log(i32,i32)), a defined
 * memory exported as "memory", the required exports with their exact
 * signatures. wasm2c then validates the code itself. NX_EINVAL (or
 * NX_ETOOBIG) with a readable reason in err.
 */
int nx_udf_validate(const uint8_t *wasm, size_t n, nx_udf_info *info, char *err,
                    size_t errlen);

/* ---- compile cache ------------------------------------------------------ */

typedef struct nx_udf_cache nx_udf_cache;
typedef struct nx_udf_module nx_udf_module;

typedef struct nx_udf_cache_stats {
    uint64_t compiles;     /* wasm2c + cc runs                              */
    uint64_t disk_hits;    /* .so found in the cache dir, no compile        */
    uint64_t mem_hits;     /* module already loaded, shared                 */
    uint64_t failures;     /* rejected or failed compiles                   */
    uint64_t loaded;       /* modules currently loaded                      */
    double last_compile_ms;
} nx_udf_cache_stats;

/* Opens (creating it, mode 0700) a cache directory, e.g. <data>/udf-cache,
 * and starts its compile worker thread. */
int nx_udf_cache_open(const char *dir, nx_udf_cache **out);
/* Stops the worker (pending jobs complete with NX_EIO first). Modules still
 * referenced stay loaded until their last unref. */
void nx_udf_cache_close(nx_udf_cache *c);
void nx_udf_cache_get_stats(nx_udf_cache *c, nx_udf_cache_stats *out);

/*
 * Synchronous compile (tests, CLI, start-up): validates, looks the content
 * hash up in memory and on disk, compiles on a miss, loads. On success *out
 * holds a reference (nx_udf_module_unref). On failure err says why.
 */
int nx_udf_compile(nx_udf_cache *c, const uint8_t *wasm, size_t n, nx_udf_module **out,
                   char *err, size_t errlen);

/*
 * Asynchronous compile: copies the bytes, queues the job and returns at
 * once; the compile worker calls cb(arg, rc, module, err) when done — on the
 * WORKER thread, so cb should only hand the result over (e.g. post it to a
 * shard mailbox). On rc == 0 cb receives a reference it must release.
 */
typedef void (*nx_udf_compile_cb)(void *arg, int rc, nx_udf_module *m, const char *err);
int nx_udf_compile_async(nx_udf_cache *c, const uint8_t *wasm, size_t n,
                         nx_udf_compile_cb cb, void *arg);

void nx_udf_module_ref(nx_udf_module *m);
void nx_udf_module_unref(nx_udf_module *m);
uint64_t nx_udf_module_hash(const nx_udf_module *m); /* XXH3-64 of the wasm */
uint32_t nx_udf_module_flags(const nx_udf_module *m); /* NX_UDF_HAS_* */

/* ---- instances ---------------------------------------------------------- */

typedef struct nx_udf_instance nx_udf_instance;

typedef struct nx_udf_instance_stats {
    uint64_t calls;        /* module calls made                            */
    uint64_t events;       /* events passed to nx_update                   */
    uint64_t errors;       /* negative statuses returned by the module     */
    uint64_t traps;        /* 0 or 1: a trap disables the instance         */
    uint64_t cpu_checks;   /* times the fuel chunk ran out (clock reads)   */
    uint64_t logs;         /* nx.log calls                                 */
    int last_trap;         /* trap code (nx_udf_rt.h), 0 if none           */
    uint32_t memory_bytes; /* current linear memory size                   */
    size_t host_bytes;     /* host-side bytes of this instance (approx.)   */
} nx_udf_instance_stats;

/*
 * Instantiates the module (fresh memory and globals: instances never share
 * state) and calls nx_init(params). log, if not NULL, receives nx.log lines.
 * On a trap or an nx_init error, nothing is created and err says why.
 */
int nx_udf_instance_create(nx_udf_module *m, const nx_udf_limits *lim, const char *params,
                           size_t params_len,
                           void (*log)(void *arg, const char *msg, size_t len),
                           void *log_arg, nx_udf_instance **out, char *err,
                           size_t errlen);
void nx_udf_instance_destroy(nx_udf_instance *inst);

/* Feeds n events, batch_events at a time, all under one CPU budget. */
int nx_udf_update(nx_udf_instance *inst, const nx_udf_event *ev, size_t n);
/* The module's result as a JSON object text, malloc'd and NUL-terminated
 * (NXR1 records become {"name": number|null}). Caller frees. */
int nx_udf_result(nx_udf_instance *inst, char **json, size_t *len);
/* The module's state (needs nx_snapshot; NX_EINVAL otherwise), malloc'd. */
int nx_udf_snapshot(nx_udf_instance *inst, uint8_t **out, size_t *len);
int nx_udf_restore(nx_udf_instance *inst, const uint8_t *p, size_t n);
/* Folds a snapshot of another instance of the same module into this one. */
int nx_udf_merge(nx_udf_instance *inst, const uint8_t *p, size_t n);

bool nx_udf_instance_disabled(const nx_udf_instance *inst);
/* "" while healthy; else e.g. "trap in nx_update: CPU budget exceeded". */
const char *nx_udf_instance_error(const nx_udf_instance *inst);
void nx_udf_instance_get_stats(const nx_udf_instance *inst, nx_udf_instance_stats *out);

#endif
