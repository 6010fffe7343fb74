/*
 * nx_udf_http.c — HTTP handlers for tenant UDFs (see nx_udf_http.h).
 *
 *   PUT    /v1/udfs/NAME        body = .wasm (<= 4 MiB): validated at once
 *                               (400 + reason), compiled on the cache's
 *                               worker: 202 {"status":"compiling"}, or 200
 *                               {"status":"ready"} when the same bytes are
 *                               already loaded
 *   GET    /v1/udfs             the tenant's UDFs with status and bindings
 *   GET    /v1/udfs/NAME
 *   DELETE /v1/udfs/NAME        unbinds everywhere, forgets the upload
 *   POST   /v1/udfs/NAME/bind   {"metric"|"prefix": "...", "window": "all",
 *                               "params": {"k": v} | "k=v,..."}
 *
 * Bind and delete are synchronous fan-outs to every shard (the shards apply
 * them between two batches); when the call returns, every shard feeds the
 * new binding. Summary results: one message per shard returns each
 * matching instance's result JSON and, if the module merges, its snapshot;
 * with more than one shard holding the stream, a temporary instance in this
 * (HTTP) thread folds the snapshots in with nx_merge and gives the merged
 * result — under the same limits as a shard's instance.
 */
#include "query/nx_udf_http.h"
#include "query/nx_reply.h"
#include "isolate/nx_udf_rt.h"
#include "query/nx_auth.h"
#include "server/nx_udfhost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>



/* Posts one NX_MSG_UDF per shard and waits for all; m[i].udf = &u[i]. */
static void fan_out(nx_server *srv, nx_udf_msg *u)
{
    int n = nx_server_nshards(srv);
    nx_shard_msg *m = calloc((size_t)n, sizeof(*m));
    if (!m)
        return; /* callers see no parts */
    nx_waiter w;
    nx_waiter_init(&w, n);
    for (int i = 0; i < n; i++) {
        m[i].kind = NX_MSG_UDF;
        m[i].udf = &u[i];
        m[i].waiter = &w;
        nx_shard_post(nx_server_shard(srv, i), &m[i]);
    }
    nx_waiter_wait(&w);
    nx_waiter_destroy(&w);
    free(m);
}

static void fan_out_binding(nx_server *srv, int op, nx_udf_binding *b)
{
    int n = nx_server_nshards(srv);
    nx_udf_msg *u = calloc((size_t)n, sizeof(*u));
    if (!u)
        return;
    for (int i = 0; i < n; i++) {
        u[i].op = op;
        u[i].b = b;
    }
    fan_out(srv, u);
    free(u);
}

/* {"k": 1, "s": "x"} or "k=1,s=x" -> "k=1,s=x" (malloc'd); NULL if invalid. */
static char *params_text(json_t *p)
{
    if (!p || json_is_null(p))
        return strdup("");
    if (json_is_string(p))
        return strlen(json_string_value(p)) <= 4096 ? strdup(json_string_value(p)) : NULL;
    if (!json_is_object(p))
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    const char *k;
    json_t *v;
    int first = 1, bad = 0;
    json_object_foreach(p, k, v) {
        if (strpbrk(k, ",=") || !*k)
            bad = 1;
        fprintf(f, "%s%s=", first ? "" : ",", k);
        first = 0;
        if (json_is_number(v))
            fprintf(f, "%.17g", json_number_value(v));
        else if (json_is_string(v) && !strpbrk(json_string_value(v), ","))
            fputs(json_string_value(v), f);
        else if (json_is_boolean(v))
            fputs(json_is_true(v) ? "1" : "0", f);
        else
            bad = 1;
    }
    fclose(f);
    if (bad || len > 4096) {
        free(buf);
        return NULL;
    }
    return buf;
}

static enum MHD_Result h_bind(nx_server *srv, nx_udf_host *h, struct MHD_Connection *c,
                              const char *tenant, const char *name, const char *body, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return nx_reply_error(c, 400, "bad_json", "expected {\"metric\": \"...\" | \"prefix\": \"...\", "
                                        "\"window\": \"all\", \"params\": {...}}");
    }
    const char *metric = json_string_value(json_object_get(root, "metric"));
    const char *prefix = json_string_value(json_object_get(root, "prefix"));
    json_t *wj = json_object_get(root, "window");
    const char *window = wj ? json_string_value(wj) : "all";
    enum MHD_Result ret;
    char *params = params_text(json_object_get(root, "params"));
    if ((!metric) == (!prefix) || !*(metric ? metric : prefix) ||
        strlen(metric ? metric : prefix) > NX_UDF_MATCH_MAX ||
        strpbrk(metric ? metric : prefix, "|\n")) {
        ret = nx_reply_error(c, 400, "bad_request", "exactly one of \"metric\" or \"prefix\" (a metric "
                                          "name or name prefix, <= 256 bytes) is required");
    } else if (!window || strcmp(window, "all")) {
        ret = nx_reply_error(c, 400, "bad_window",
                   "UDF bindings support window \"all\" only (all-time state; see docs/udf.md)");
    } else if (!params) {
        ret = nx_reply_error(c, 400, "bad_params",
                   "params must be an object of numbers/strings without ',' or a \"k=v,...\" text");
    } else {
        nx_udf_binding *b = NULL;
        char err[NX_UDF_ERRLEN + 64];
        int rc = nx_udf_host_bind(h, tenant, name, metric ? metric : prefix, prefix != NULL,
                                  params, &b, err, sizeof(err));
        if (rc == 0)
            fan_out_binding(srv, NX_UDF_OP_BIND, b);
        if (rc == 0 || rc == NX_EEXIST) {
            ret = nx_reply_json(c, rc == 0 ? 201 : 200,
                        json_pack("{s:s,s:I,s:s,s:s,s:s,s:s}", "name", name, "id",
                                  (json_int_t)b->id, b->is_prefix ? "prefix" : "metric",
                                  b->match, "window", "all", "params", b->params, "per",
                                  "stream"));
            nx_udf_binding_unref(b);
        } else if (rc == NX_ENOENT) {
            ret = nx_reply_error(c, 404, "not_found", err);
        } else if (rc == NX_ETIMEOUT) {
            ret = nx_reply_error(c, 409, "compiling", err);
        } else if (rc == NX_EINVAL) {
            ret = nx_reply_error(c, 409, "failed", err);
        } else {
            ret = nx_reply_error(c, 500, nx_errname(rc), nx_strerror(rc));
        }
    }
    free(params);
    json_decref(root);
    return ret;
}

enum MHD_Result nx_udf_http(nx_server *srv, struct MHD_Connection *c, const char *url,
                            const char *method, const char *body, size_t len, int too_big)
{
    nx_udf_host *h = nx_server_udf(srv);
    if (!h)
        return nx_reply_error(c, 503, "udf_unavailable", "UDFs are unavailable (no usable data dir)");
    char tenant[65];
    nx_auth_error ae;
    if (nx_auth_resolve(nx_server_config(srv), c, tenant, &ae) != 0)
        return nx_reply_error(c, ae.status, ae.code, ae.msg);
    const char *rest = url + strlen("/v1/udfs");
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!*rest || !strcmp(rest, "/")) {
        if (!get)
            return nx_reply_error(c, 405, "method_not_allowed", "use GET");
        return nx_reply_json(c, 200, nx_udf_host_list(h, tenant));
    }
    char name[NX_UDF_NAME_MAX + 2];
    const char *nm = rest + 1, *slash = strchr(nm, '/');
    size_t nl = slash ? (size_t)(slash - nm) : strlen(nm);
    if (nl > NX_UDF_NAME_MAX)
        return nx_reply_error(c, 400, "bad_name", "UDF names are [A-Za-z0-9_.-]{1,64}");
    memcpy(name, nm, nl);
    name[nl] = 0;
    if (!nx_udf_name_valid(name))
        return nx_reply_error(c, 400, "bad_name", "UDF names are [A-Za-z0-9_.-]{1,64}");
    if (slash) {
        if (strcmp(slash, "/bind"))
            return nx_reply_error(c, 404, "not_found", "no such endpoint (see docs/api.md)");
        if (strcmp(method, "POST"))
            return nx_reply_error(c, 405, "method_not_allowed", "use POST");
        if (too_big)
            return nx_reply_error(c, 413, "too_big", "request body over --max-body");
        return h_bind(srv, h, c, tenant, name, body, len);
    }
    if (get) {
        json_t *o = nx_udf_host_describe(h, tenant, name);
        return o ? nx_reply_json(c, 200, o) : nx_reply_error(c, 404, "not_found", "no such udf");
    }
    if (!strcmp(method, "DELETE")) {
        nx_udf_binding **v;
        size_t nv;
        if (nx_udf_host_delete(h, tenant, name, &v, &nv) != 0)
            return nx_reply_error(c, 404, "not_found", "no such udf");
        for (size_t i = 0; i < nv; i++) {
            fan_out_binding(srv, NX_UDF_OP_UNBIND, v[i]);
            nx_udf_binding_unref(v[i]);
        }
        free(v);
        return nx_reply_json(c, 200, json_pack("{s:s,s:b,s:I}", "name", name, "deleted", 1, "unbound",
                                       (json_int_t)nv));
    }
    if (strcmp(method, "PUT"))
        return nx_reply_error(c, 405, "method_not_allowed", "use GET, PUT or DELETE");
    if (too_big || len > NX_UDF_MAX_WASM)
        return nx_reply_error(c, 413, "too_big", "a module is at most 4 MiB");
    uint64_t hash = 0;
    const char *status = NULL;
    char err[NX_UDF_ERRLEN + 64] = "";
    int rc = nx_udf_host_put(h, tenant, name, (const uint8_t *)(body ? body : ""), len, &hash,
                             &status, err, sizeof(err));
    if (rc == NX_EINVAL || rc == NX_ETOOBIG)
        return nx_reply_error(c, 400, "invalid_module", err);
    if (rc == NX_EEXIST)
        return nx_reply_error(c, 409, "has_bindings", err);
    if (rc)
        return nx_reply_error(c, 500, nx_errname(rc), err[0] ? err : nx_strerror(rc));
    char hx[17];
    snprintf(hx, sizeof(hx), "%016llx", (unsigned long long)hash);
    int ready = !strcmp(status, "ready");
    return nx_reply_json(c, ready ? 200 : 202,
                 json_pack("{s:s,s:s,s:s}", "name", name, "hash", hx, "status", status));
}

/* Folds the parts' snapshots into a fresh instance of b's module. */
static json_t *merged_result(nx_udf_binding *b, nx_udf_part **p, size_t n, char *err,
                             size_t errlen)
{
    nx_udf_limits lim;
    nx_udf_limits_default(&lim);
    nx_udf_instance *in;
    if (nx_udf_instance_create(b->module, &lim, b->params, b->params_len, NULL, NULL, &in, err,
                               errlen))
        return NULL;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = nx_udf_merge(in, p[i]->snap, p[i]->snap_len);
    char *js = NULL;
    size_t jl;
    if (!rc)
        rc = nx_udf_result(in, &js, &jl);
    json_t *o = NULL;
    if (rc)
        snprintf(err, errlen, "merge failed: %s",
                 *nx_udf_instance_error(in) ? nx_udf_instance_error(in) : nx_strerror(rc));
    else
        o = json_loads(js, 0, NULL);
    free(js);
    nx_udf_instance_destroy(in);
    return o;
}

void nx_udf_summary_attach(nx_server *srv, const char *tenant, const char *key, size_t key_len,
                           json_t *summary)
{
    nx_udf_host *h = nx_server_udf(srv);
    if (!h || !summary || !nx_udf_host_tenant_has_bindings(h, tenant))
        return;
    int ns = nx_server_nshards(srv);
    nx_udf_msg *u = calloc((size_t)ns, sizeof(*u));
    if (!u)
        return;
    for (int i = 0; i < ns; i++) {
        u[i].op = NX_UDF_OP_RESULT;
        u[i].tenant = tenant;
        u[i].key = key;
        u[i].key_len = key_len;
    }
    fan_out(srv, u);
    size_t total = 0;
    for (int i = 0; i < ns; i++)
        total += u[i].nparts;
    nx_udf_part **all = total ? calloc(total, sizeof(*all)) : NULL;
    int *shard_of = total ? calloc(total, sizeof(int)) : NULL;
    json_t *udfs = json_object();
    if (total && all && shard_of) {
        size_t k = 0;
        for (int i = 0; i < ns; i++)
            for (size_t j = 0; j < u[i].nparts; j++) {
                shard_of[k] = i;
                all[k++] = &u[i].parts[j];
            }
        /* group by binding: O(total^2), total = shards x bindings of one stream */
        for (size_t i = 0; i < total; i++) {
            nx_udf_binding *b = all[i]->b;
            int seen = 0;
            for (size_t j = 0; j < i && !seen; j++)
                seen = all[j]->b == b;
            if (seen)
                continue;
            nx_udf_part *grp[256];
            int gshard[256];
            size_t ng = 0, nsnap = 0, njson = 0;
            for (size_t j = i; j < total && ng < 256; j++)
                if (all[j]->b == b) {
                    gshard[ng] = shard_of[j];
                    grp[ng++] = all[j];
                    nsnap += all[j]->snap != NULL;
                    njson += all[j]->json != NULL;
                }
            char err[NX_UDF_ERRLEN + 64] = "";
            json_t *res = NULL;
            nx_udf_binding_error(h, b, err, sizeof(err));
            if (err[0]) {
                res = json_pack("{s:s,s:b}", "error", err, "disabled", 1);
            } else if (njson != ng) {
                res = json_pack("{s:s}", "error", "the module's nx_result failed");
            } else if (ng == 1) {
                res = json_loads(grp[0]->json, 0, NULL);
            } else if (nsnap == ng) {
                res = merged_result(b, grp, ng, err, sizeof(err));
                if (!res)
                    res = json_pack("{s:s}", "error", err);
            } else {
                json_t *arr = json_array();
                for (size_t j = 0; j < ng; j++)
                    json_array_append_new(arr, json_pack("{s:i,s:o}", "shard", gshard[j],
                                                         "result",
                                                         json_loads(grp[j]->json, 0, NULL)));
                res = json_pack("{s:b,s:o}", "merged", 0, "per_shard", arr);
            }
            char keyname[NX_UDF_NAME_MAX + 32];
            snprintf(keyname, sizeof(keyname), "%s", b->name);
            if (json_object_get(udfs, keyname))
                snprintf(keyname, sizeof(keyname), "%s#%llu", b->name, (unsigned long long)b->id);
            json_object_set_new(udfs, keyname, res ? res : json_null());
        }
    }
    free(all);
    free(shard_of);
    for (int i = 0; i < ns; i++)
        nx_udf_parts_free(u[i].parts, u[i].nparts);
    free(u);
    if (json_object_size(udfs))
        json_object_set_new(summary, "udfs", udfs);
    else
        json_decref(udfs);
}
