/*
 * nx_auth.h — who is asking: resolves an HTTP request to a tenant id.
 *
 * The ONE place where credentials are checked; every tenant handler calls it
 * first. Today (embedded default, no tenant tokens configured) nexusd
 * listens on loopback and every request acts for the configured default
 * tenant, or for the tenant named by `?tenant=ID` / `X-Nexus-Tenant: ID`
 * (open mode only). Token authentication (`Authorization: Bearer <token>`
 * -> tenant) plugs in here without touching the handlers.
 */
#ifndef NX_AUTH_H
#define NX_AUTH_H

#include <microhttpd.h>
#include "server/nx_config.h"

typedef struct nx_auth_error {
    unsigned status;   /* HTTP status (401, 403, 400) */
    const char *code;  /* machine-readable: "unauthorized", "bad_tenant" */
    const char *msg;
} nx_auth_error;

/* 0 and tenant filled (NUL-terminated, <= 64 chars), or NX_EAUTH / NX_EINVAL
 * with *err filled. */
int nx_auth_resolve(const nx_config *cfg, struct MHD_Connection *c, char tenant[65],
                    nx_auth_error *err);

#endif
