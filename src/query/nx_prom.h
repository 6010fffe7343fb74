/*
 * nx_prom.h — Prometheus text exposition of every stream of every tenant
 * plus nexusd's own counters (naming rules at the top of nx_prom.c).
 */
#ifndef NX_PROM_H
#define NX_PROM_H

#include <stddef.h>
#include <stdint.h>
#include "query/nx_json.h"
#include "server/nx_server.h"

/* Renders /metrics into a malloc'd buffer (*out, free()). */
int nx_prom_render(nx_server *srv, int64_t now_ms, char **out, size_t *out_len);
/* Same, for one tenant only (its streams and per-tenant counters, no
 * process-wide counters); tenant NULL = nx_prom_render. */
int nx_prom_render_for(nx_server *srv, const char *tenant, int64_t now_ms, char **out,
                       size_t *out_len);

#endif
