/*
 * nx_tenant_api.c — tenant administration over HTTP and per-tenant stats
 * (see nx_tenant_api.h). Mutations go to the registry first (the source of
 * truth, persisted atomically); a delete then frees the tenant's engine
 * state on every shard through the mailboxes, so memory accounting returns
 * to what it was before the tenant existed. Shards notice every change by
 * the registry's generation counter on their next batch.
 */
#include "query/nx_tenant_api.h"
#include "query/nx_reply.h"
#include "query/nx_auth.h"
#include "server/nx_log.h"
#include "server/nx_tenants.h"

#include <stdlib.h>
#include <string.h>



static enum MHD_Result send_rc(struct MHD_Connection *c, int rc)
{
    switch (rc) {
    case NX_EINVAL: return nx_reply_error(c, 400, "bad_request", "invalid tenant id or quotas");
    case NX_ENOENT: return nx_reply_error(c, 404, "not_found", "no such tenant");
    case NX_EEXIST: return nx_reply_error(c, 409, "exists", "tenant already exists");
    case NX_EQUOTA: return nx_reply_error(c, 507, "registry_full", "tenant registry is full");
    default: return nx_reply_error(c, 500, nx_errname(rc), nx_strerror(rc));
    }
}

static json_t *quotas_json(const nx_quotas *q)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "events_per_s", (json_int_t)q->events_per_s,
                     "burst", (json_int_t)q->burst, "max_streams", (json_int_t)q->max_streams,
                     "max_bytes", (json_int_t)q->max_bytes, "http_requests_per_s",
                     (json_int_t)q->http_requests_per_s);
}

static json_t *info_json(const nx_tenant_info *t)
{
    return json_pack("{s:s,s:I,s:I,s:o}", "id", t->id, "num", (json_int_t)t->num, "created_ms",
                     (json_int_t)t->created_ms, "quotas", quotas_json(&t->quotas));
}

/* Fields present in o replace those of *q; unknown keys, negatives and
 * non-integers are errors. */
static int quotas_parse(json_t *o, nx_quotas *q)
{
    if (!json_is_object(o))
        return NX_EINVAL;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return NX_EINVAL;
        uint64_t x = (uint64_t)json_integer_value(v);
        if (!strcmp(k, "events_per_s")) q->events_per_s = x;
        else if (!strcmp(k, "burst")) q->burst = x;
        else if (!strcmp(k, "max_streams")) {
            if (x > UINT32_MAX)
                return NX_EINVAL;
            q->max_streams = (uint32_t)x;
        } else if (!strcmp(k, "max_bytes")) q->max_bytes = x;
        else if (!strcmp(k, "http_requests_per_s")) q->http_requests_per_s = x;
        else return NX_EINVAL;
    }
    return 0;
}

/* One {"id", "quotas"?} object -> create. *created filled on success. */
static int create_one(nx_registry *reg, json_t *o, unsigned flags, json_t **created)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!json_is_object(o) || !id)
        return NX_EINVAL;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) if (strcmp(k, "id") && strcmp(k, "quotas")) return NX_EINVAL;
    nx_quotas q = {0};
    json_t *qo = json_object_get(o, "quotas");
    if (qo && quotas_parse(qo, &q))
        return NX_EINVAL;
    nx_tenant_info info;
    char tok[NX_TOKEN_LEN + 1];
    int rc = nx_registry_create(reg, id, strlen(id), qo ? &q : NULL, flags, &info, tok);
    if (rc)
        return rc;
    *created = info_json(&info);
    json_object_set_new(*created, "token", json_string(tok));
    memset(tok, 0, sizeof(tok));
    return 0;
}

static enum MHD_Result h_create(nx_server *srv, struct MHD_Connection *c, const char *body,
                                size_t len)
{
    nx_registry *reg = nx_server_config(srv)->registry;
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return nx_reply_error(c, 400, "bad_json", "expected {\"id\": ...} or {\"tenants\": [...]}");
    }
    json_t *arr = json_object_get(root, "tenants");
    if (!arr) {
        json_t *out = NULL;
        int rc = create_one(reg, root, 0, &out);
        json_decref(root);
        if (rc)
            return send_rc(c, rc);
        nx_log(NX_LOG_INFO, "tenant created", "id=%s num=%lld",
               json_string_value(json_object_get(out, "id")),
               (long long)json_integer_value(json_object_get(out, "num")));
        return nx_reply_json(c, 201, out);
    }
    if (!json_is_array(arr) || json_object_size(root) != 1) {
        json_decref(root);
        return nx_reply_error(c, 400, "bad_json", "expected {\"tenants\": [{\"id\": ...}, ...]}");
    }
    /* bulk: memory only per tenant, one atomic write at the end; stops at the
     * first error (the ones before it exist and are returned with it) */
    json_t *created = json_array();
    size_t i;
    json_t *o;
    int rc = 0;
    size_t failed_at = 0;
    json_array_foreach(arr, i, o) {
        json_t *one = NULL;
        rc = create_one(reg, o, NX_REG_NOSYNC, &one);
        if (rc) {
            failed_at = i;
            break;
        }
        json_array_append_new(created, one);
    }
    int frc = nx_registry_flush(reg);
    json_decref(root);
    nx_log(NX_LOG_INFO, "tenants created (bulk)", "n=%zu", json_array_size(created));
    if (frc) {
        json_decref(created);
        return send_rc(c, frc);
    }
    if (rc) {
        json_t *e = json_pack("{s:s,s:s,s:I,s:o}", "error", "bulk create stopped at an entry",
                              "code", rc == NX_EEXIST ? "exists" : "bad_request", "index",
                              (json_int_t)failed_at, "created", created);
        return nx_reply_json(c, rc == NX_EEXIST ? 409 : 400, e);
    }
    return nx_reply_json(c, 201, json_pack("{s:o}", "created", created));
}

static json_t *counts_json(const nx_tenant_counts *t)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "streams", (json_int_t)t->streams,
                     "summary_bytes", (json_int_t)t->bytes, "events", (json_int_t)t->events,
                     "rejected_quota", (json_int_t)t->rejected_quota, "rate_accepted",
                     (json_int_t)t->rate_accepted, "rate_limited", (json_int_t)t->rate_dropped);
}

static json_t *tenant_counts(nx_server *srv, const char *id)
{
    nx_tenant_counts *v = NULL;
    size_t n = 0;
    nx_tenant_counts zero;
    memset(&zero, 0, sizeof(zero));
    if (nx_server_tenant_counts(srv, id, &v, &n) != 0)
        return NULL;
    json_t *j = counts_json(n ? &v[0] : &zero);
    free(v);
    return j;
}

json_t *nx_tenant_stats_json(nx_server *srv, const char *tenant)
{
    nx_registry *reg = nx_server_config(srv)->registry;
    json_t *o = tenant_counts(srv, tenant);
    if (!o)
        return NULL;
    json_object_set_new(o, "tenant", json_string(tenant));
    nx_tenant_info info;
    if (reg && nx_registry_get(reg, tenant, strlen(tenant), &info) == 0) {
        json_object_set_new(o, "num", json_integer((json_int_t)info.num));
        json_object_set_new(o, "quotas", quotas_json(&info.quotas));
    }
    return o;
}

json_t *nx_tenants_counts_json(nx_server *srv)
{
    nx_tenant_counts *v = NULL;
    size_t n = 0;
    if (nx_server_tenant_counts(srv, NULL, &v, &n) != 0)
        return json_null();
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = counts_json(&v[i]);
        json_object_set_new(o, "tenant", json_string(v[i].id));
        json_object_set_new(o, "num", json_integer((json_int_t)v[i].num));
        json_array_append_new(arr, o);
    }
    free(v);
    return arr;
}

void nx_tenant_prom(FILE *f, nx_server *srv, const char *tenant)
{
    nx_tenant_counts *v = NULL;
    size_t n = 0;
    if (nx_server_tenant_counts(srv, tenant, &v, &n) != 0)
        return;
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } fams[] = {
        {"nexusd_tenant_events_total", "counter", "Values applied, per tenant.",
         offsetof(nx_tenant_counts, events)},
        {"nexusd_tenant_rate_limited_total", "counter",
         "Values refused by the tenant's events/s quota.", offsetof(nx_tenant_counts, rate_dropped)},
        {"nexusd_tenant_quota_rejected_total", "counter",
         "New streams refused by the tenant's stream/memory quota.",
         offsetof(nx_tenant_counts, rejected_quota)},
        {"nexusd_tenant_streams", "gauge", "Streams of the tenant (summed over shards).",
         offsetof(nx_tenant_counts, streams)},
        {"nexusd_tenant_memory_bytes", "gauge", "Heap bytes of the tenant's summaries.",
         offsetof(nx_tenant_counts, bytes)},
    };
    for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fams[k].name, fams[k].help, fams[k].name,
                fams[k].type);
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s{tenant=\"%s\"} %llu\n", fams[k].name, v[i].id,
                    (unsigned long long)*(const uint64_t *)((const char *)&v[i] + fams[k].off));
    }
    free(v);
}

enum MHD_Result nx_tenant_api(nx_server *srv, struct MHD_Connection *c, const char *url,
                              const char *method, const char *body, size_t len)
{
    const nx_config *cfg = nx_server_config(srv);
    nx_auth_error e;
    if (nx_auth_admin(cfg, c, &e) != 0)
        return nx_reply_error(c, e.status, e.code, e.msg);
    nx_registry *reg = cfg->registry;
    const char *rest = url + strlen("/v1/tenants");
    if (!*rest || !strcmp(rest, "/")) {
        if (!strcmp(method, "POST"))
            return h_create(srv, c, body, len);
        if (strcmp(method, "GET"))
            return nx_reply_error(c, 405, "method_not_allowed", "use GET or POST");
        nx_tenant_info *v;
        size_t n;
        int rc = nx_registry_list(reg, &v, &n);
        if (rc)
            return send_rc(c, rc);
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, info_json(&v[i]));
        free(v);
        return nx_reply_json(c, 200, json_pack("{s:I,s:o,s:b}", "count", (json_int_t)n, "tenants",
                                           arr, "default_enabled",
                                           nx_registry_default_enabled(reg)));
    }
    if (*rest != '/')
        return nx_reply_error(c, 404, "not_found", "no such endpoint (see docs/api.md)");
    const char *id = rest + 1;
    const char *slash = strchr(id, '/');
    size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
    char tid[NX_TENANT_ID_MAX + 1];
    if (!nx_registry_id_valid(id, idlen))
        return nx_reply_error(c, 400, "bad_tenant", "tenant ids are [a-z0-9_-]{1,64}");
    memcpy(tid, id, idlen);
    tid[idlen] = 0;
    const char *sub = slash ? slash : "";
    nx_tenant_info info;
    if (!*sub && !strcmp(method, "GET")) {
        int rc = nx_registry_get(reg, tid, idlen, &info);
        if (rc)
            return send_rc(c, rc);
        json_t *o = info_json(&info);
        json_t *cnt = tenant_counts(srv, tid);
        if (cnt)
            json_object_set_new(o, "stats", cnt);
        return nx_reply_json(c, 200, o);
    }
    if (!*sub && !strcmp(method, "DELETE")) {
        memset(&info, 0, sizeof(info));
        int rc = nx_registry_delete(reg, tid, idlen, 0, &info);
        if (rc == 0 || (rc == NX_EIO && info.num)) /* gone from memory: free its state */
            nx_server_tenant_delete(srv, tid, info.num);
        if (rc)
            return send_rc(c, rc);
        nx_log(NX_LOG_INFO, "tenant deleted", "id=%s num=%u", tid, info.num);
        return nx_reply_json(c, 200, json_pack("{s:s,s:I}", "deleted", tid, "num",
                                           (json_int_t)info.num));
    }
    if (!strcmp(sub, "/rotate") && !strcmp(method, "POST")) {
        char tok[NX_TOKEN_LEN + 1];
        int rc = nx_registry_rotate(reg, tid, idlen, 0, tok);
        if (rc == 0)
            rc = nx_registry_get(reg, tid, idlen, &info);
        if (rc)
            return send_rc(c, rc);
        json_t *o = json_pack("{s:s,s:I,s:s}", "id", tid, "num", (json_int_t)info.num, "token", tok);
        memset(tok, 0, sizeof(tok));
        return nx_reply_json(c, 200, o);
    }
    if (!strcmp(sub, "/quotas") && (!strcmp(method, "PUT") || !strcmp(method, "POST"))) {
        int rc = nx_registry_get(reg, tid, idlen, &info);
        if (rc)
            return send_rc(c, rc);
        json_t *root = json_loadb(body ? body : "", len, 0, NULL);
        nx_quotas q = info.quotas;
        rc = quotas_parse(root, &q);
        json_decref(root);
        if (rc)
            return nx_reply_error(c, 400, "bad_quotas",
                              "expected {\"events_per_s\", \"burst\", \"max_streams\", "
                              "\"max_bytes\", \"http_requests_per_s\"} (integers >= 0)");
        rc = nx_registry_set_quotas(reg, tid, idlen, &q, 0);
        if (rc)
            return send_rc(c, rc);
        return nx_reply_json(c, 200, json_pack("{s:s,s:o}", "id", tid, "quotas", quotas_json(&q)));
    }
    return nx_reply_error(c, 405, "method_not_allowed",
                      "GET/DELETE /v1/tenants/ID, POST /v1/tenants/ID/rotate, PUT /v1/tenants/ID/quotas");
}
