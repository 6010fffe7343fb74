/*
 * nx_udf_rt.h — the private ABI between the host (libnexus, nx_udf.c) and the
 * per-module glue that is compiled INTO every tenant module's shared object
 * (src/isolate/rt/nx_udf_glue.c.in).
 *
 * This header is compiled twice: normally into libnexus, and at run time
 * (its text is embedded into libnexus by mk/udf.mk and written next to the
 * wasm2c output) into each module .so. It must therefore stay freestanding:
 * only <stdint.h> and <stddef.h>.
 *
 * Why a glue layer inside the .so instead of calling the wasm2c exports
 * directly: the wasm2c runtime (trap jmp_buf, call-depth counter, func-type
 * registry) is process-global in Debian's wasm-rt-impl.c and not thread-safe.
 * Every module .so instead carries its own private runtime (hidden symbols,
 * one translation unit) whose only mutable global is a _Thread_local jmp_buf
 * and a _Thread_local "current instance" pointer, both touched only when a
 * call starts, traps, or allocates memory. The hot per-instance counters
 * (fuel, call depth, native stack limit) live in the instance itself. The
 * host reaches the module only through one exported symbol,
 * NX_UDF_VTABLE_SYM, a table of the functions below.
 *
 * Bump NX_UDF_GLUE_ABI when anything here changes: it is part of the cache
 * key of compiled modules, so stale .so files are never loaded.
 */
#ifndef NX_UDF_RT_H
#define NX_UDF_RT_H

#include <stddef.h>
#include <stdint.h>

#define NX_UDF_GLUE_ABI 4u
#define NX_UDF_VTABLE_SYM "nx_udf_module_vtable"

/* Which module export nx_udf_vtable.call() invokes. */
enum nx_udf_fn {
    NX_UDF_FN_BUFFER = 0,   /* nx_buffer(u32 bytes) -> u32 ptr            */
    NX_UDF_FN_INIT = 1,     /* nx_init(u32 params, u32 len) -> i32         */
    NX_UDF_FN_UPDATE = 2,   /* nx_update(u32 events, u32 count) -> i32     */
    NX_UDF_FN_MERGE = 3,    /* nx_merge(u32 state, u32 len) -> i32         */
    NX_UDF_FN_RESULT = 4,   /* nx_result(u32 out, u32 cap) -> i32 len      */
    NX_UDF_FN_SNAPSHOT = 5, /* nx_snapshot(u32 out, u32 cap) -> i32 len    */
    NX_UDF_FN_RESTORE = 6,  /* nx_restore(u32 state, u32 len) -> i32       */
    NX_UDF_FN_COUNT = 7
};

/* Bits of nx_udf_vtable.flags: optional exports present. */
#define NX_UDF_HAS_MERGE 1u
#define NX_UDF_HAS_SNAPSHOT 2u
#define NX_UDF_HAS_RESTORE 4u

/*
 * Trap codes returned by call()/instantiate(). 1..8 are wasm_rt_trap_t of
 * wabt 1.0.32 (OOB=1, INT_OVERFLOW=2, DIV_BY_ZERO=3, INVALID_CONVERSION=4,
 * UNREACHABLE=5, CALL_INDIRECT=6, UNCAUGHT_EXCEPTION=7, EXHAUSTION=8); the
 * glue adds its own above 64.
 */
#define NX_UDF_TRAP_CPU 65    /* fuel ran out and the CPU deadline passed  */
#define NX_UDF_TRAP_MEMLIMIT 66 /* initial memory above the page limit     */
#define NX_UDF_TRAP_NOMEM 67  /* host allocation for the instance failed   */

/* Limits and host hooks of one instance; owned by the host, read by glue. */
typedef struct nx_udf_ctl {
    uint32_t max_pages;      /* linear memory cap (64 KiB pages)           */
    uint32_t max_depth;      /* wasm call depth cap                        */
    uint32_t stack_bytes;    /* native stack the module may use per call   */
    uint32_t fuel_chunk;     /* ticks between two CPU-clock reads          */
    int64_t budget_ns;       /* thread CPU time per host operation         */
    int64_t deadline_ns;     /* thread CPU clock at which a running call
                                traps; 0 = not started yet: the host zeroes
                                it per operation (no clock read), the glue
                                sets it the first time a fuel chunk runs
                                out, so short calls never read the clock   */
    void (*log)(void *arg, const char *msg, size_t len); /* nx.log import  */
    void *log_arg;
    /* written by the glue: */
    uint64_t clock_reads;    /* how many times fuel ran out (CPU checks)   */
    uint64_t logs;           /* nx.log calls                               */
} nx_udf_ctl;

typedef struct nx_udf_vtable {
    uint32_t abi;            /* NX_UDF_GLUE_ABI                             */
    uint32_t flags;          /* NX_UDF_HAS_*                                */
    size_t inst_size;        /* bytes the host allocates per instance       */
    void (*init_module)(void);
    /* Instantiates into inst (inst_size zeroed bytes). 0 or a trap code. */
    int (*instantiate)(void *inst, nx_udf_ctl *ctl);
    void (*destroy)(void *inst);
    /* Calls export fn with (a, b); its i32 result in *ret. 0 or trap code. */
    int (*call)(void *inst, int fn, uint32_t a, uint32_t b, int32_t *ret);
    /* The instance's linear memory (valid until the next call). */
    uint8_t *(*memory)(void *inst, uint32_t *size);
    const char *(*trap_name)(int code);
} nx_udf_vtable;

#endif
