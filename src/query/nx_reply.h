/*
 * nx_reply.h — the one way the HTTP API answers with JSON: compact, reals
 * with 17 significant digits (a double survives the round trip), a final
 * newline for curl, Content-Type application/json and Cache-Control
 * no-store (some answers carry tokens; no answer is cacheable anyway).
 * Errors are {"error": message, "code": machine code} (docs/api.md).
 * Used by nx_http.c, nx_tenant_api.c and nx_udf_http.c.
 */
#ifndef NX_REPLY_H
#define NX_REPLY_H

#include <jansson.h>
#include <microhttpd.h>

/* Queues j (reference taken; NULL: MHD_NO, the allocation failed). */
enum MHD_Result nx_reply_json(struct MHD_Connection *c, unsigned status, json_t *j);
enum MHD_Result nx_reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                               const char *msg);

#endif
