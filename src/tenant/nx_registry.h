/*
 * nx_registry.h — the tenant registry: who exists, their secrets and quotas,
 * and the one place that decides who a request acts for.
 *
 * A tenant: id [a-z0-9_-]{1,64}; `num`, a u32 unique for the life of the data
 * directory (never reused, even after a delete: NXB headers and the kernel
 * stage's maps name tenants by num, and a recycled num would hand a deleted
 * tenant's in-flight traffic to a new one); the SHA-256 of its token (never
 * the token); quotas; creation time. num 0 is the embedded `default` tenant,
 * which is not stored and cannot be created, deleted or given a token.
 *
 * Persistence: <data-dir>/tenants.json (format at the top of nx_registry.c),
 * rewritten whole and atomically on each change (temp file, fsync, rename,
 * fsync dir) — or, with NX_REG_NOSYNC, only on nx_registry_flush() so bulk
 * creation of 10,000 tenants does not cost 10,000 fsyncs. Loading validates
 * everything; a corrupt file is an error with a message, never a partial
 * registry (nexusd must refuse to start).
 *
 * Threads: HTTP threads and shards read, admin calls write. Reads take a
 * pthread rwlock in read mode (uncontended: ~20 ns); this is off the per-event
 * hot path — shards keep their own per-shard copies of the event buckets
 * (nx_rl_table, refreshed by nx_registry_sync_limits when the registry's
 * generation counter moves, which is one atomic load per batch). Readers get
 * copies (nx_tenant_info), never pointers into the registry, so a concurrent
 * delete cannot leave anyone with a dangling pointer. The file write happens
 * after the write lock is released (under a separate persist mutex; a newer
 * state supersedes an older one), so readers never wait for an fsync.
 *
 * Authentication policy lives in ONE function, nx_registry_resolve():
 *   bearer token present  -> the tenant whose hash matches, else 403
 *   no token              -> `default` iff default is enabled AND the peer is
 *                            loopback, else 401
 *   default enabled       =  NX_DEFAULT_ON (--allow-default), or
 *                            NX_DEFAULT_AUTO and no tenant exists yet.
 * The admin token (nx_registry_admin_setup) only passes nx_registry_is_admin
 * and is never a tenant credential.
 */
#ifndef NX_REGISTRY_H
#define NX_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tenant/nx_ratelimit.h"
#include "tenant/nx_token.h"

#define NX_TENANT_ID_MAX 64
#define NX_REGISTRY_MAX_TENANTS 1000000u
#define NX_DEFAULT_TENANT "default"
#define NX_REGISTRY_FILE "tenants.json"
#define NX_ADMIN_TOKEN_FILE "admin.token"

/* 0 means unlimited for every field. */
typedef struct nx_quotas {
    uint64_t events_per_s;        /* accepted events per second */
    uint64_t burst;               /* bucket size in events; 0 = events_per_s */
    uint32_t max_streams;         /* engine: nx_tenant_set_limits */
    uint64_t max_bytes;           /* engine: nx_tenant_set_limits */
    uint64_t http_requests_per_s; /* HTTP API requests per second */
} nx_quotas;

typedef struct nx_tenant_info {
    char id[NX_TENANT_ID_MAX + 1];
    uint32_t num;
    nx_quotas quotas;
    int64_t created_ms;
} nx_tenant_info;

typedef enum nx_default_policy {
    NX_DEFAULT_AUTO = 0, /* default tenant on while no tenant exists */
    NX_DEFAULT_ON = 1,   /* --allow-default: on even with tenants (still loopback only) */
    NX_DEFAULT_OFF = 2,  /* never */
} nx_default_policy;

typedef struct nx_registry_options {
    const char *data_dir;             /* NULL: in memory only (tests, fuzzing) */
    nx_default_policy default_policy;
    nx_quotas default_quotas;         /* for tenants created without quotas, and `default` */
} nx_registry_options;

typedef struct nx_registry nx_registry;

/* flags for mutations */
#define NX_REG_NOSYNC 1u /* change memory only; persist at nx_registry_flush() */

/* Bearer check outcome for the HTTP layer. */
typedef struct nx_auth_result {
    unsigned status;  /* 401 or 403 (0 on success) */
    const char *code; /* "missing_token", "bad_token", "default_disabled", "not_loopback" */
    const char *msg;
} nx_auth_result;

/* Opens the registry: loads <data_dir>/tenants.json if it exists (creating
 * data_dir is the caller's job). On NX_ECORRUPT / NX_EVERSION / NX_EIO, err
 * (if not NULL) says what is wrong, with the file name. */
int nx_registry_open(const nx_registry_options *opt, nx_registry **out, char *err,
                     size_t errlen);
/* Builds a registry from JSON text (what open() does with the file's bytes);
 * used by the fuzzer. opt->data_dir may be NULL. */
int nx_registry_parse(const nx_registry_options *opt, const char *json, size_t len,
                      nx_registry **out, char *err, size_t errlen);
void nx_registry_close(nx_registry *r);

/* Serializes the registry's persistent state (what tenants.json holds). */
int nx_registry_to_json(nx_registry *r, char **out, size_t *len);

/* True if id is [a-z0-9_-]{1,64}. */
bool nx_registry_id_valid(const char *id, size_t len);

/*
 * Creates tenant `id` with quotas q (NULL: the default quotas). Fills *info
 * and token (the plaintext, NUL-terminated: shown once, never stored).
 * NX_EINVAL bad id/quotas, NX_EEXIST id taken (or "default"), NX_EQUOTA
 * registry full, NX_EIO persist failed (the tenant is then not created).
 */
int nx_registry_create(nx_registry *r, const char *id, size_t len, const nx_quotas *q,
                       unsigned flags, nx_tenant_info *info, char token[NX_TOKEN_LEN + 1]);
/* Deletes; *info (may be NULL) receives what it was (the caller frees the
 * tenant's engine state on every shard and drops its buckets). NX_ENOENT. */
int nx_registry_delete(nx_registry *r, const char *id, size_t len, unsigned flags,
                       nx_tenant_info *info);
/* New token; the old one stops working immediately. */
int nx_registry_rotate(nx_registry *r, const char *id, size_t len, unsigned flags,
                       char token[NX_TOKEN_LEN + 1]);
int nx_registry_set_quotas(nx_registry *r, const char *id, size_t len, const nx_quotas *q,
                           unsigned flags);
/* Writes tenants.json now if anything changed since the last write. */
int nx_registry_flush(nx_registry *r);

/* Lookups (copies). "default" / num 0 resolve to the embedded default. */
int nx_registry_get(nx_registry *r, const char *id, size_t len, nx_tenant_info *out);
int nx_registry_get_num(nx_registry *r, uint32_t num, nx_tenant_info *out);
/* All stored tenants (not `default`), sorted by num; *out is malloc'ed. */
int nx_registry_list(nx_registry *r, nx_tenant_info **out, size_t *n);
size_t nx_registry_count(nx_registry *r);
/* Incremented by every change; shards compare it to refresh their copies. */
uint64_t nx_registry_generation(nx_registry *r);
bool nx_registry_default_enabled(nx_registry *r);

/* Token -> tenant. 0 or NX_EAUTH. Constant-time hash comparison. */
int nx_registry_authenticate(nx_registry *r, const char *token, size_t len,
                             nx_tenant_info *out);

/* Parses an Authorization header value "Bearer <token>" (scheme
 * case-insensitive). 0 with *tok and *len pointing into hdr, NX_EINVAL otherwise. */
int nx_registry_bearer(const char *hdr, const char **tok, size_t *len);

/* THE policy decision (see top of file). bearer NULL = no Authorization. */
int nx_registry_resolve(nx_registry *r, const char *bearer, size_t len, bool peer_is_loopback,
                        nx_tenant_info *out, nx_auth_result *why);

/*
 * Admin token: from token_file (if not NULL), else env_token (the value of
 * NEXUS_ADMIN_TOKEN, if not NULL/empty), else <data_dir>/admin.token, which
 * is generated (0600, "nxa_" + 64 hex) if absent. Tokens are trimmed of
 * trailing whitespace and must be 16..256 printable bytes. *insecure is set
 * when the file is readable by group/others (caller logs a warning).
 * used_path (may be NULL, size PATH_MAX) receives the file used, "" for env.
 */
int nx_registry_admin_setup(nx_registry *r, const char *token_file, const char *env_token,
                            bool *insecure, char *used_path, size_t used_len, char *err,
                            size_t errlen);
bool nx_registry_is_admin(nx_registry *r, const char *token, size_t len);

/* Admits one HTTP request of tenant num at now_ns against its
 * http_requests_per_s. 0 or NX_EQUOTA (*retry_after_s filled, may be NULL);
 * NX_ENOENT for an unknown num. Thread-safe. */
int nx_registry_http_admit(nx_registry *r, uint32_t num, int64_t now_ns,
                           uint64_t *retry_after_s);

/*
 * Refreshes a shard's event buckets from the registry if its generation
 * moved since *seen_gen (one atomic load otherwise): every tenant with
 * events_per_s > 0 gets a bucket of rate/divisor, deleted tenants' buckets
 * are removed. divisor = number of shards a tenant's events spread over
 * (nshards with plain SO_REUSEPORT, 1 with eBPF/cBPF steering).
 */
int nx_registry_sync_limits(nx_registry *r, nx_rl_table *t, uint32_t divisor, int64_t now_ns,
                            uint64_t *seen_gen);

/*
 * Change observer (one per registry; NULL to clear): called after every
 * successful create, delete and quota change (set_quotas), outside the
 * registry's locks, on the thread that made the change, with a copy of the
 * tenant as it is now (as it was, for a delete). For whoever mirrors tenants
 * or quotas elsewhere, e.g. the kernel stage's per-tenant maps: look tenants
 * up by num with nx_registry_get_num, walk all with nx_registry_foreach.
 * Token rotations do not call it (no quota or num changes). Set it before
 * the registry is shared between threads.
 */
typedef enum nx_registry_op {
    NX_REG_OP_CREATE = 1,
    NX_REG_OP_DELETE = 2,
    NX_REG_OP_QUOTAS = 3,
} nx_registry_op;
typedef void (*nx_registry_observer)(void *arg, nx_registry_op op, const nx_tenant_info *t);
void nx_registry_set_observer(nx_registry *r, nx_registry_observer fn, void *arg);

/* Calls fn(info) for each stored tenant under the read lock (fn must not call
 * back into the registry's writers). Stops when fn returns non-zero. */
void nx_registry_foreach(nx_registry *r, int (*fn)(const nx_tenant_info *t, void *arg),
                         void *arg);

#endif
