/*
 * nx_udfhost.h — tenant UDFs (Wasm isolates, src/isolate) wired into nexusd.
 *
 * Two halves:
 *
 *  - nx_udf_host (one per daemon, any thread, one mutex): the compile cache
 *    (<data-dir>/udf-cache), the registry of uploaded modules per tenant
 *    (status compiling / ready / failed, persisted as
 *    <data-dir>/udfs/<tenant>/<NAME>.wasm and recompiled — normally a cache
 *    hit — at start-up) and the list of bindings. Compiles run on the
 *    cache's worker thread; its callback only fills the registry entry.
 *
 *  - nx_udf_shard (one per shard, shard thread only, no locks): the
 *    instances. A binding is PER STREAM: every shard creates one instance
 *    per (binding, stream it sees that matches), lazily, on the stream's
 *    first event after the bind. Events of matching streams are appended to
 *    the instance's buffer by the applier hook (nx_udf_shard_event) and
 *    passed to nx_udf_update once per ingest batch (nx_udf_shard_flush at
 *    the end of nx_shard_apply), never one call per event. A tenant without
 *    bindings costs one pointer compare per event; a stream of a tenant
 *    with bindings costs one hash probe per event.
 *
 * A trap or CPU overrun in any instance disables the whole binding (every
 * shard stops feeding it) and records the error, shown by GET /v1/udfs and
 * in /v1/summary. Windows: all-time only (documented in docs/udf.md).
 */
#ifndef NX_UDFHOST_H
#define NX_UDFHOST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "nexus.h"
#include "isolate/nx_udf.h"

#define NX_UDF_NAME_MAX 64
#define NX_UDF_MATCH_MAX 256
#define NX_UDF_MAX_INST 1024 /* instances per binding per shard */

typedef struct nx_udf_host nx_udf_host;
typedef struct nx_udf_shard nx_udf_shard;

/* One bind: immutable after creation except the atomics and `error`
 * (written once, under the host mutex, before `disabled` is set). */
typedef struct nx_udf_binding {
    _Atomic int refs;
    uint64_t id;
    char tenant[65];
    char name[NX_UDF_NAME_MAX + 1];
    char match[NX_UDF_MATCH_MAX + 1];
    int is_prefix;      /* match is a metric-name prefix, else an exact metric name */
    char *params;       /* "k=v,k2=v2" passed to nx_init */
    size_t params_len;
    nx_udf_module *module;
    _Atomic int disabled;
    char error[NX_UDF_ERRLEN];
    _Atomic uint64_t events, traps, errors, instances, over_limit;
} nx_udf_binding;

/* Per shard counters (shard writes, anyone reads). */
typedef struct nx_udf_shard_stats {
    _Atomic uint64_t events;   /* events passed to nx_udf_update */
    _Atomic uint64_t calls;    /* nx_udf_update calls (flushes) */
    _Atomic uint64_t traps;    /* traps (each disables its binding) */
    _Atomic uint64_t errors;   /* negative statuses from modules */
    _Atomic uint64_t instances;/* live instances */
} nx_udf_shard_stats;

int nx_udf_host_create(const char *data_dir, int nshards, nx_udf_host **out);
/* After the shards stopped. */
void nx_udf_host_destroy(nx_udf_host *h);
nx_udf_shard *nx_udf_host_shard(nx_udf_host *h, int i);

/* ---- shard thread ------------------------------------------------------ */

/* Applier hook (nx_applier.on_event): one applied value of stream `key`. */
void nx_udf_shard_event(void *arg, nx_tenant *t, const char *key, size_t key_len,
                        const nx_update *u, int64_t now_ms);
/* End of an ingest batch: one nx_udf_update per instance with events. */
void nx_udf_shard_flush(nx_udf_shard *us);

enum { NX_UDF_OP_BIND = 1, NX_UDF_OP_UNBIND, NX_UDF_OP_RESULT };

/* One shard's answer for one binding of a stream (NX_UDF_OP_RESULT). */
typedef struct nx_udf_part {
    nx_udf_binding *b;  /* a reference (released by nx_udf_parts_free) */
    char *json;         /* nx_udf_result, or NULL */
    uint8_t *snap;      /* nx_udf_snapshot when the module merges, or NULL */
    size_t snap_len;
} nx_udf_part;

/* The payload of an NX_MSG_UDF shard message. */
typedef struct nx_udf_msg {
    int op;
    nx_udf_binding *b;      /* BIND / UNBIND */
    const char *tenant;     /* RESULT */
    const char *key;
    size_t key_len;
    nx_udf_part *parts;     /* RESULT answer (owned by the sender) */
    size_t nparts;
} nx_udf_msg;

void nx_udf_shard_handle(nx_udf_shard *us, nx_udf_msg *m);
void nx_udf_parts_free(nx_udf_part *p, size_t n);

/* ---- HTTP side (any thread) -------------------------------------------- */

/* name: [A-Za-z0-9_.-]{1,64} */
int nx_udf_name_valid(const char *s);
/* Registers (and persists) an upload; *status_out: "compiling" or "ready".
 * NX_EINVAL/NX_ETOOBIG with err filled (validation), NX_EEXIST when the
 * name has bindings and the bytes differ. */
int nx_udf_host_put(nx_udf_host *h, const char *tenant, const char *name, const uint8_t *wasm,
                    size_t n, uint64_t *hash_out, const char **status_out, char *err,
                    size_t errlen);
/* {"name","hash","status","error"?,"size","bindings":[...]} or NULL if absent. */
json_t *nx_udf_host_describe(nx_udf_host *h, const char *tenant, const char *name);
json_t *nx_udf_host_list(nx_udf_host *h, const char *tenant);
/* Removes the entry; *unbind gets its bindings (references) to send to the
 * shards as NX_UDF_OP_UNBIND. NX_ENOENT if absent. */
int nx_udf_host_delete(nx_udf_host *h, const char *tenant, const char *name,
                       nx_udf_binding ***unbind, size_t *nunbind);
/* Creates a binding of a ready module (NX_ENOENT no such UDF, NX_EAGAIN-ish
 * NX_ETIMEOUT while compiling, NX_EINVAL failed module, NX_EEXIST same
 * matcher already bound: *out is then the existing binding). *out holds a
 * reference for the caller. */
int nx_udf_host_bind(nx_udf_host *h, const char *tenant, const char *name, const char *match,
                     int is_prefix, const char *params, nx_udf_binding **out, char *err,
                     size_t errlen);
int nx_udf_host_tenant_has_bindings(nx_udf_host *h, const char *tenant);
/* Disabled binding's error (copied under the lock), "" if enabled. */
void nx_udf_binding_error(nx_udf_host *h, nx_udf_binding *b, char *buf, size_t n);
void nx_udf_binding_ref(nx_udf_binding *b);
void nx_udf_binding_unref(nx_udf_binding *b);
/* {"events","calls","traps","errors","instances","disabled","bindings","modules",...} */
json_t *nx_udf_host_stats_json(nx_udf_host *h);

#endif
