/*
 * nx_auth.h — who is asking: resolves an HTTP request to a tenant id.
 *
 * The ONE place where credentials are checked; every tenant handler calls
 * nx_auth_resolve() first. The decision itself is nx_registry_resolve()
 * (src/tenant/nx_registry.h); this file adapts it to HTTP:
 *
 *   Authorization: Bearer <tenant token>  -> that tenant (403 bad_token if
 *                                            no tenant has it)
 *   Authorization: Bearer <admin token>   -> the tenant named by ?tenant=ID
 *                                            (admin tooling); without it 403
 *   no Authorization                      -> `default` while the default
 *                                            tenant is enabled AND the peer
 *                                            is loopback (127.0.0.0/8, ::1),
 *                                            else 401 missing_token
 *   ?tenant=ID / X-Nexus-Tenant: ID       -> must name the caller's own
 *                                            tenant (403 wrong_tenant),
 *                                            except in embedded-default mode
 *                                            (no tenant registered: any id,
 *                                            as before tenants existed)
 * then the tenant's HTTP request quota: 429 rate_limited + Retry-After.
 *
 * cfg->registry NULL (no registry: unit tests) keeps the old open mode:
 * ?tenant= / X-Nexus-Tenant / the configured default tenant.
 * The signature of nx_auth_resolve is unchanged from the open-mode version;
 * nx_auth_error gained retry_after_s (set with status 429).
 */
#ifndef NX_AUTH_H
#define NX_AUTH_H

#include <stdbool.h>
#include <stdint.h>
#include <microhttpd.h>
#include "server/nx_config.h"

typedef struct nx_auth_error {
    unsigned status;   /* HTTP status (400, 401, 403, 404, 429) */
    const char *code;  /* machine-readable: "missing_token", "bad_token", "wrong_tenant", ... */
    const char *msg;
    uint64_t retry_after_s; /* status 429: seconds (Retry-After) */
} nx_auth_error;

/* 0 and tenant filled (NUL-terminated, <= 64 chars), or NX_EAUTH / NX_EINVAL
 * / NX_EQUOTA / NX_ENOENT with *err filled. */
int nx_auth_resolve(const nx_config *cfg, struct MHD_Connection *c, char tenant[65],
                    nx_auth_error *err);

/* Admin endpoints: 0 if the request carries the admin token; NX_EAUTH with
 * 401 missing_token (no/invalid Authorization) or 403 bad_token. */
int nx_auth_admin(const nx_config *cfg, struct MHD_Connection *c, nx_auth_error *err);

/* Process-wide views (/v1/stats, /metrics): *global = true for the admin
 * token without ?tenant=, and for tokenless loopback requests in
 * embedded-default mode without ?tenant=; otherwise the request is resolved
 * like a tenant call (tenant filled, *global = false). */
int nx_auth_view(const nx_config *cfg, struct MHD_Connection *c, char tenant[65], bool *global,
                 nx_auth_error *err);

/* True if the connection's peer is 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
bool nx_auth_peer_loopback(struct MHD_Connection *c);

#endif
