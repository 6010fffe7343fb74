/*
 * nx_tenant_api.h — the tenant admin API (/v1/tenants...) and the
 * per-tenant views of /v1/stats and /metrics (reference: docs/api.md,
 * docs/tenants.md).
 *
 * Admin endpoints (admin token; 401 missing_token / 403 bad_token):
 *   POST   /v1/tenants              {"id", "quotas"?} -> 201 {"id","num","token",...}
 *                                   {"tenants": [{"id", "quotas"?}, ...]} bulk:
 *                                   one registry write for all -> 201 {"created": [...]}
 *   GET    /v1/tenants              every tenant (no tokens)
 *   GET    /v1/tenants/ID           one tenant + its counts
 *   DELETE /v1/tenants/ID           registry entry, then engine state and
 *                                   buckets on every shard
 *   POST   /v1/tenants/ID/rotate    new token (the old one stops working)
 *   PUT    /v1/tenants/ID/quotas    {"events_per_s", ...} (fields given replace)
 * Errors: 400 bad id / body, 404 unknown tenant, 409 exists, 507 registry full.
 */
#ifndef NX_TENANT_API_H
#define NX_TENANT_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include "server/nx_server.h"

/* Handles a request whose url starts with /v1/tenants. */
enum MHD_Result nx_tenant_api(nx_server *srv, struct MHD_Connection *c, const char *url,
                              const char *method, const char *body, size_t len);

/* /v1/stats as seen by one tenant: only its own counts and quotas. */
json_t *nx_tenant_stats_json(nx_server *srv, const char *tenant);
/* Every tenant with state, for the admin view (/v1/stats?tenants=1). */
json_t *nx_tenants_counts_json(nx_server *srv);
/* Per-tenant counters in Prometheus text (tenant NULL: every tenant). */
void nx_tenant_prom(FILE *f, nx_server *srv, const char *tenant);

#endif
