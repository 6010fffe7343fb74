/*
 * nx_kstage_http.h — the kernel stage and NXB ingest as seen over HTTP:
 * the "kernel" object and per-shard "nxb" objects of GET /v1/stats, the
 * nexusd_nxb_* / nexusd_steer_* families of /metrics, and
 * PUT /v1/admin/quota. Kept apart from nx_http.c / nx_prom.c so those only
 * gain one call each. Reference: docs/nxb.md ("In the daemon").
 */
#ifndef NX_KSTAGE_HTTP_H
#define NX_KSTAGE_HTTP_H

#include <jansson.h>
#include <stdio.h>
#include <microhttpd.h>
#include "server/nx_server.h"

/* {"statsd": {...}, "nxb": {...}}: modes, descriptions, quotas, kernel
 * counters per tenant and per shard (eBPF). */
json_t *nx_kstage_stats_json(nx_server *srv);
/* The NXB counters of one shard. */
json_t *nx_shard_nxb_json(const nx_shard_stats *st);
/* Prometheus families (promtool-valid: HELP/TYPE once per family). */
void nx_kstage_prom(FILE *f, nx_server *srv);
/* PUT /v1/admin/quota?num=N&rate=R[&burst=B]: sets *status and returns the
 * answer (an error object for status >= 400). */
json_t *nx_kstage_quota_put(nx_server *srv, struct MHD_Connection *c, unsigned *status);

#endif
