/*
 * nx_reply.c — JSON answers of the HTTP API (see nx_reply.h).
 */
#include "query/nx_reply.h"

#include <stdlib.h>
#include <string.h>

enum MHD_Result nx_reply_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    if (!j)
        return MHD_NO;
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!s)
        return MHD_NO;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t) {
        s = t;
        s[n++] = '\n';
        s[n] = 0;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result nx_reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                               const char *msg)
{
    return nx_reply_json(c, status, json_pack("{s:s,s:s}", "error", msg, "code", code));
}
