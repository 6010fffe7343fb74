/*
 * nx_udf_http.h — the /v1/udfs endpoints and the "udfs" member of
 * /v1/summary (reference: docs/api.md, docs/udf.md).
 */
#ifndef NX_UDF_HTTP_H
#define NX_UDF_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include "server/nx_server.h"

/* url starts with "/v1/udfs". body: the request body (PUT: the .wasm). */
enum MHD_Result nx_udf_http(nx_server *srv, struct MHD_Connection *c, const char *url,
                            const char *method, const char *body, size_t len, int too_big);

/*
 * Adds "udfs": {"NAME": result} to a summary object when the tenant has
 * bindings matching the stream: the shards' results merged with the
 * module's nx_merge (or listed per shard when it has none), or
 * {"error": ..., "disabled": true} for a disabled binding.
 */
void nx_udf_summary_attach(nx_server *srv, const char *tenant, const char *key, size_t key_len,
                           json_t *summary);

#endif
